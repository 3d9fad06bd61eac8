/* Probes and metrics over HTTP (libmicrohttpd, its own thread), one endpoint per process:
 *   GET /healthz  liveness: 200 while the main loop turns, 503 once it has been stuck
 *                 longer than the stall limit (a handler blocked, a deadlock)
 *   GET /readyz   readiness: 200 when every named check is true (bus, redis...), else 503;
 *                 the body says which check fails, as JSON
 *   GET /metrics  the qp_metrics registry in the Prometheus text format
 * Started by the shared loops (qp_service_run, the bus) when --http / QP_HTTP is set. */
#ifndef QP_HEALTH_H
#define QP_HEALTH_H
#include <stdbool.h>

/* Listens on "host:port" (port 0: an ephemeral port; host "*" or "0.0.0.0": every
 * IPv4 address). Logs and returns the bound port, or -1 with the reason logged. A second
 * call while running returns the running port. */
int qp_health_start (const char *listen);
void qp_health_stop (void);
/* The bound port, or -1 when not running. */
int qp_health_port (void);

/* Sets a readiness check (created on first use); ready when all are true. */
void qp_health_check (const char *name, bool ok);
/* The main loop is alive (call at least once a second). */
void qp_health_tick (void);
/* Liveness fails after this long without a tick (default 60 s: above a Redis failover). */
void qp_health_set_stall_ms (int ms);
/* Same answers as the endpoints, for in-process use. */
bool qp_health_ready (void);
bool qp_health_alive (void);
#endif
