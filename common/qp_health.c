/* The probe endpoint: libmicrohttpd parses HTTP; we only route three paths. */
#include "qp_health.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include <czmq.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_CHECKS 8

static struct MHD_Daemon *s_daemon;
static int s_port = -1;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[32];
    bool ok;
} s_checks[MAX_CHECKS];
static size_t s_n_checks;
static _Atomic int64_t s_last_tick;
static _Atomic int s_stall_ms = 60000;

void qp_health_check (const char *name, bool ok)
{
    pthread_mutex_lock (&s_lock);
    size_t i = 0;
    while (i < s_n_checks && strcmp (s_checks[i].name, name) != 0)
        i++;
    if (i == s_n_checks && s_n_checks < MAX_CHECKS)
        snprintf (s_checks[s_n_checks++].name, sizeof s_checks[0].name, "%s", name);
    if (i < s_n_checks)
        s_checks[i].ok = ok;
    pthread_mutex_unlock (&s_lock);
}

void qp_health_tick (void) { s_last_tick = zclock_mono (); }
void qp_health_set_stall_ms (int ms) { s_stall_ms = ms; }
int qp_health_port (void) { return s_port; }

bool qp_health_alive (void)
{
    return s_last_tick == 0 || zclock_mono () - s_last_tick <= s_stall_ms;
}

static char *s_ready_json (bool *ready)
{
    char *json = NULL;
    size_t size = 0;
    FILE *f = open_memstream (&json, &size);
    *ready = true;
    pthread_mutex_lock (&s_lock);
    fputs ("{\"checks\":{", f);
    for (size_t i = 0; i < s_n_checks; i++) {
        fprintf (f, "%s\"%s\":%s", i ? "," : "", s_checks[i].name,
                 s_checks[i].ok ? "true" : "false");
        *ready = *ready && s_checks[i].ok;
    }
    pthread_mutex_unlock (&s_lock);
    fprintf (f, "},\"ready\":%s}\n", *ready ? "true" : "false");
    fclose (f);
    return json;
}

bool qp_health_ready (void)
{
    bool ready;
    free (s_ready_json (&ready));
    return ready;
}

static enum MHD_Result s_answer (struct MHD_Connection *conn, unsigned status, char *body,
                                 const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header (r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response (conn, status, r);
    MHD_destroy_response (r);
    return rc;
}

static enum MHD_Result s_request (void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    (void) cls, (void) version, (void) upload, (void) upload_size, (void) state;
    if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0)
        return s_answer (conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup ("GET only\n"), "text/plain");
    if (!strcmp (url, "/metrics"))
        return s_answer (conn, MHD_HTTP_OK, qp_metrics_render (),
                         "text/plain; version=0.0.4; charset=utf-8");
    if (!strcmp (url, "/healthz") || !strcmp (url, "/livez")) {
        bool alive = qp_health_alive ();
        return s_answer (conn, alive ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                         strdup (alive ? "alive\n" : "main loop stalled\n"), "text/plain");
    }
    if (!strcmp (url, "/readyz")) {
        bool ready;
        char *json = s_ready_json (&ready);
        return s_answer (conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, json,
                         "application/json");
    }
    return s_answer (conn, MHD_HTTP_NOT_FOUND, strdup ("/healthz, /readyz or /metrics\n"),
                     "text/plain");
}

int qp_health_start (const char *listen)
{
    if (s_daemon)
        return s_port;
    const char *colon = listen ? strrchr (listen, ':') : NULL;
    if (!colon || !colon[1]) {
        qp_log_error ("http_config", "http address \"%s\" is not host:port", listen ? listen : "");
        return -1;
    }
    char host[256];
    snprintf (host, sizeof host, "%.*s", (int) (colon - listen), listen);
    if (host[0] == '[' && host[strlen (host) - 1] == ']') { /* [::1]:9100 */
        memmove (host, host + 1, strlen (host));
        host[strlen (host) - 1] = 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    bool any = !host[0] || !strcmp (host, "*");
    int gai = getaddrinfo (any ? "0.0.0.0" : host, colon + 1, &hints, &ai);
    if (gai != 0) {
        qp_log_error ("http_config", "http address \"%s\": %s", listen, gai_strerror (gai));
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The HTTP thread must not take SIGINT/SIGTERM/SIGHUP: the main loop handles them. */
    sigset_t block, old;
    sigemptyset (&block);
    sigaddset (&block, SIGINT);
    sigaddset (&block, SIGTERM);
    sigaddset (&block, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &block, &old);
    s_daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_request, NULL, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned) 64, MHD_OPTION_END);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    freeaddrinfo (ai);
    if (!s_daemon) {
        qp_log_error ("http_failed", "cannot listen for HTTP on %s", listen);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (s_daemon, MHD_DAEMON_INFO_BIND_PORT);
    s_port = info ? info->port : -1;
    if (!s_last_tick)
        qp_health_tick ();
    qp_log_info ("http_listening", "probes and metrics on %s, port %d", listen, s_port);
    return s_port;
}

void qp_health_stop (void)
{
    if (s_daemon)
        MHD_stop_daemon (s_daemon);
    s_daemon = NULL;
    s_port = -1;
}
