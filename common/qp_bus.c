/* Client side of QPB/1. */
#include "qp_bus.h"
#include "qp_log.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct qp_bus_client {
    zsock_t *dealer;
    char *service; /* registered service name, or NULL */
    long window;   /* flow control: work the bus may have given us unreturned; 0: off */
    long owed;     /* work handled whose credit has not gone back yet */
};

void qp_bus_socket_defaults (zsock_t *sock)
{
    zsock_set_sndhwm (sock, QPB_HWM);
    zsock_set_rcvhwm (sock, QPB_HWM);
    zsock_set_linger (sock, 500);
}

static struct {
    char *endpoint;
    zcert_t *client, *server;
} s_curve;

int qp_bus_curve_client (const char *endpoint, const char *client_cert, const char *server_cert)
{
    zcert_t *client = zcert_load (client_cert);
    zcert_t *server = client ? zcert_load (server_cert) : NULL;
    if (!client || !server) {
        qp_log_error ("curve_keys", "cannot read %s", client ? server_cert : client_cert);
        zcert_destroy (&client);
        return -1;
    }
    zcert_destroy (&s_curve.client);
    zcert_destroy (&s_curve.server);
    free (s_curve.endpoint);
    s_curve.endpoint = strdup (endpoint);
    s_curve.client = client;
    s_curve.server = server;
    return 0;
}

qp_bus_client_t *qp_bus_client_new (const char *endpoint)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer)
        return NULL;
    qp_bus_socket_defaults (dealer);
    if (s_curve.endpoint && !strcmp (s_curve.endpoint, endpoint)) {
        zcert_apply (s_curve.client, dealer);
        zsock_set_curve_serverkey (dealer, zcert_public_txt (s_curve.server));
    }
    zsock_set_reconnect_ivl (dealer, 100);
    zsock_set_reconnect_ivl_max (dealer, 1000);
    if (zsock_connect (dealer, "%s", endpoint) != 0) {
        zsock_destroy (&dealer);
        return NULL;
    }
    qp_bus_client_t *self = calloc (1, sizeof *self);
    assert (self);
    self->dealer = dealer;
    return self;
}

void qp_bus_client_destroy (qp_bus_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_bus_client_t *self = *self_p;
    zsock_destroy (&self->dealer);
    free (self->service);
    free (self);
    *self_p = NULL;
}

zsock_t *qp_bus_client_socket (qp_bus_client_t *self) { return self->dealer; }

/* [QPB1][cmd][arg][count]: arg and count only when given (count only when >= 0). */
static int s_send_command (qp_bus_client_t *self, const char *cmd, const char *arg, long count)
{
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, cmd);
    if (arg)
        zmsg_addstr (m, arg);
    if (arg && count >= 0)
        zmsg_addstrf (m, "%ld", count);
    return zmsg_send (&m, self->dealer);
}

static int s_send_control (qp_bus_client_t *self, const char *cmd, const char *arg)
{
    return s_send_command (self, cmd, arg, -1);
}

/* READY carries the window when flow controlled. */
static int s_send_ready (qp_bus_client_t *self)
{
    return s_send_command (self, QPB_READY, self->service, self->window > 0 ? self->window : -1);
}

int qp_bus_client_ready (qp_bus_client_t *self, const char *service)
{
    free (self->service);
    self->service = strdup (service);
    return s_send_ready (self);
}

void qp_bus_client_heartbeat (qp_bus_client_t *self)
{
    if (self->service) {
        s_send_ready (self);
        qp_bus_client_credit (self);
    }
}

long qp_bus_window (void)
{
    const char *v = getenv ("QP_BUS_WINDOW");
    if (!v)
        return QPB_WINDOW_DEFAULT;
    char *end = NULL;
    errno = 0;
    long n = strtol (v, &end, 10);
    if (errno || !*v || *end || n < 0 || n > QPB_WINDOW_MAX) {
        qp_log_warn ("bad_setting", "QP_BUS_WINDOW \"%.32s\" is not an integer in [0, %d]: "
                     "window %d", v, QPB_WINDOW_MAX, QPB_WINDOW_DEFAULT);
        return QPB_WINDOW_DEFAULT;
    }
    return n;
}

void qp_bus_client_window (qp_bus_client_t *self, long window)
{
    self->window = window > 0 && window <= QPB_WINDOW_MAX ? window : 0;
}

void qp_bus_client_credit (qp_bus_client_t *self)
{
    if (self->owed > 0 && self->service)
        s_send_command (self, QPB_CREDIT, self->service, self->owed);
    self->owed = 0;
}

void qp_bus_client_done (qp_bus_client_t *self)
{
    /* A quarter of the window: the bus still has three quarters on their way to us, so
     * the worker never waits for its own credit to travel. */
    long batch = self->window / 4 > 0 ? self->window / 4 : 1;
    if (++self->owed >= batch)
        qp_bus_client_credit (self);
}

void qp_bus_client_bye (qp_bus_client_t *self)
{
    if (self->service)
        s_send_control (self, QPB_BYE, self->service);
}

int qp_bus_client_send (qp_bus_client_t *self, const char *service, zmsg_t **frames_p)
{
    zmsg_t *m = *frames_p;
    *frames_p = NULL;
    zmsg_pushstr (m, service);
    zmsg_pushstr (m, QPB_SEND);
    zmsg_pushstr (m, QPB_PROTOCOL);
    return zmsg_send (&m, self->dealer);
}

int qp_bus_client_reply (qp_bus_client_t *self, zframe_t *to, zmsg_t **frames_p)
{
    zmsg_t *m = *frames_p;
    *frames_p = NULL;
    zframe_t *dup = zframe_dup (to);
    zmsg_prepend (m, &dup);
    zmsg_pushstr (m, QPB_REPLY);
    zmsg_pushstr (m, QPB_PROTOCOL);
    return zmsg_send (&m, self->dealer);
}

void qp_bus_frame_clear (qp_bus_frame_t *f)
{
    zframe_destroy (&f->from);
    zframe_destroy (&f->type);
    zframe_destroy (&f->envelope);
    free (f->error_code);
    free (f->text);
    memset (f, 0, sizeof *f);
}

/* Parses frame set m (destroyed) into out: 0, or -1 when it does not follow QPB/1. */
static int s_client_parse (qp_bus_client_t *self, zmsg_t *m, qp_bus_frame_t *out)
{
    int rc = -1;
    char *proto = zmsg_popstr (m);
    char *kind = zmsg_popstr (m);
    if (!proto || !kind || strcmp (proto, QPB_PROTOCOL) != 0) {
        qp_log_warn ("bus_frame_dropped", "frame set from the bus does not follow %s",
                     QPB_PROTOCOL);
        goto cleanup;
    }
    /* Callers handle work like any delivery; work says it took credit. */
    out->work = !strcmp (kind, QPB_WORK);
    snprintf (out->kind, sizeof out->kind, "%s", out->work ? QPB_DELIVER : kind);
    if (!strcmp (out->kind, QPB_DELIVER) && zmsg_size (m) == 3) {
        out->from = zmsg_pop (m);
        out->type = zmsg_pop (m);
        out->envelope = zmsg_pop (m);
        rc = 0;
    } else if (!strcmp (kind, QPB_ERROR)) {
        out->error_code = zmsg_popstr (m);
        out->text = zmsg_popstr (m);
        rc = 0;
    } else if (!strcmp (kind, QPB_STATUS)) {
        out->text = zmsg_popstr (m);
        rc = 0;
    } else {
        qp_log_warn ("bus_frame_dropped", "unexpected %s frame set with %zu frames", kind,
                     zmsg_size (m));
        if (out->work) /* dropped work is done work: its credit goes back */
            qp_bus_client_done (self);
        out->work = false;
    }
cleanup:
    free (proto);
    free (kind);
    zmsg_destroy (&m);
    return rc;
}

int qp_bus_client_recv (qp_bus_client_t *self, qp_bus_frame_t *out)
{
    memset (out, 0, sizeof *out);
    zmsg_t *m = zmsg_recv (self->dealer);
    return m ? s_client_parse (self, m, out) : -1;
}

int qp_bus_client_recv_nowait (qp_bus_client_t *self, qp_bus_frame_t *out)
{
    memset (out, 0, sizeof *out);
    zmsg_t *m = zmsg_recv_nowait (self->dealer);
    if (!m)
        return 1;
    return s_client_parse (self, m, out);
}

char *qp_bus_status (const char *work_endpoint, int timeout_ms)
{
    qp_bus_client_t *c = qp_bus_client_new (work_endpoint);
    if (!c)
        return NULL;
    char *text = NULL;
    s_send_control (c, QPB_STATUS, NULL);
    zpoller_t *poller = zpoller_new (c->dealer, NULL);
    if (zpoller_wait (poller, timeout_ms)) {
        qp_bus_frame_t f;
        if (qp_bus_client_recv (c, &f) == 0 && !strcmp (f.kind, QPB_STATUS)) {
            text = f.text;
            f.text = NULL;
        }
        qp_bus_frame_clear (&f);
    }
    zpoller_destroy (&poller);
    zsock_set_linger (c->dealer, 0);
    qp_bus_client_destroy (&c);
    return text;
}
