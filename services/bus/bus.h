/* qp-bus: the one process that binds. Routes work to exactly one worker of a service
 * (round robin over live workers, queued while a service has none), forwards events from
 * publishers to subscribers, and republishes everything on a capture tap. */
#ifndef QP_BUS_SERVER_H
#define QP_BUS_SERVER_H
#include <czmq.h>

typedef struct {
    const char *work;      /* bind endpoints */
    const char *partner;
    const char *publish;
    const char *subscribe;
    const char *capture;
    long queue_max;        /* messages kept per service while it has no worker */
    long event_pipe;       /* events held for each subscriber (publish side), 0: 1,000,000 */
    /* When set, the partner endpoint uses CURVE: the bus's key pair is CURVE_DIR/bus.cert
     * (+ _secret), the agencies' public certificates CURVE_DIR/agencies/AGENCY.cert, each with
     * the metadata agency = "BPIFRANCE" (qp-keygen writes them). */
    const char *curve_dir;
} qp_bus_server_config_t;

typedef struct qp_bus_server qp_bus_server_t;

qp_bus_server_t *qp_bus_server_new (const qp_bus_server_config_t *config);
void qp_bus_server_destroy (qp_bus_server_t **self_p);
/* Runs until SIGINT/SIGTERM. Returns 0. */
int qp_bus_server_run (qp_bus_server_t *self);
#endif
