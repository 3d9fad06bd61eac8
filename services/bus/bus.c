/* The bus's routing loop: one thread, one poller over five sockets. */
#include "bus.h"
#include "qp_bus.h"
#include "qp_config.h"
#include "qp_health.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include "qp_message.h"
#include <ctype.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>

#define DRAIN_BATCH 64 /* messages taken from one ready socket before polling again */
#define OWED_MAX 1024   /* requesters remembered per partner worker (short-lived clients) */

typedef struct {
    zframe_t *identity;  /* routing id on its socket */
    zsock_t *socket;     /* work or partner ROUTER */
    char peer[64];       /* origin tag + hex identity: key in workers and "from" in DELIVER */
    char *service;
    int64_t expiry;
    uint64_t delivered;
    long window;         /* flow control: most WORK not returned as CREDIT; 0: none */
    long inflight;       /* WORK sent and not returned as CREDIT yet */
    zhash_t *owed;       /* partner workers: requester peer -> requests not REPLYed yet */
} worker_t;

typedef struct {
    char *name;
    zlistx_t *workers;   /* worker_t *, borrowed from server->workers; round robin */
    zlist_t *queue;      /* waiting_t *: messages waiting for a worker with credit */
    uint64_t routed;
} service_t;

/* A message waiting in a service's queue: its frames [from][type][env] in one allocation.
 * As a zmsg_t (a list, three frames, their zmq_msg_t) a 300-byte message weighed 2.1 KB in
 * the queue; the backlog of a burst now waits in the bus, so this is what it costs. */
typedef struct {
    size_t size[3];
    byte data[];
} waiting_t;

/* The loop's sockets, in the order it serves them. */
enum { SOCK_WORK, SOCK_PARTNER, SOCK_XSUB, SOCK_XPUB, SOCK_CAPTURE, SOCK_COUNT };

struct qp_bus_server {
    zsock_t *work, *partner, *xsub, *xpub, *capture;
    zsock_t *sockets[SOCK_COUNT]; /* the five above, by SOCK_* */
    /* Sockets to read before sleeping: ready ones, and ones sent on since they last said
     * EAGAIN (a send may take in their "readable" signal, leaving the fd quiet). */
    unsigned unread;
    zactor_t *auth;      /* ZAP handler for the partner endpoint's CURVE, or NULL */
    zcert_t *cert;       /* the bus's CURVE key pair */
    zhash_t *services;   /* name -> service_t */
    zhash_t *workers;    /* peer -> worker_t */
    long queue_max;
    uint64_t seq;        /* capture sequence number */
    long capture_topics; /* subscriptions on the capture tap (XPUB): none, nothing built */
    uint64_t events;
};

/* Every send of the loop goes through here: the socket must be read again before the
 * loop sleeps on its fd. */
static int s_send (qp_bus_server_t *self, zmsg_t **m_p, zsock_t *sock)
{
    for (int i = 0; i < SOCK_COUNT; i++)
        if (self->sockets[i] == sock)
            self->unread |= 1u << i;
    return zmsg_send (m_p, sock);
}

/* [identity][QPB1][cmd] then the frames of *m_p (taken when sent), to a peer of a ROUTER.
 * The routing frames go out straight from their bytes, not as frames pushed on the
 * message (three allocations each time). With router mandatory an unknown peer fails on
 * the first frame, before anything is sent, and the message stays whole. */
static int s_send_to (qp_bus_server_t *self, zsock_t *sock, zframe_t *identity,
                      const char *cmd, zmsg_t **m_p)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, zframe_data (identity), zframe_size (identity), ZMQ_SNDMORE) < 0)
        return -1;
    zmq_send (handle, QPB_PROTOCOL, strlen (QPB_PROTOCOL), ZMQ_SNDMORE);
    zmq_send (handle, cmd, strlen (cmd), ZMQ_SNDMORE);
    return s_send (self, m_p, sock);
}

static void s_worker_destroy (void *arg)
{
    worker_t *w = arg;
    zframe_destroy (&w->identity);
    zhash_destroy (&w->owed);
    free (w->service);
    free (w);
}

static void s_service_destroy (void *arg)
{
    service_t *s = arg;
    zlistx_destroy (&s->workers);
    waiting_t *w;
    while ((w = zlist_pop (s->queue)))
        free (w);
    zlist_destroy (&s->queue);
    free (s->name);
    free (s);
}

/* origin + the identity in upper-case hex (as zframe_strhex), cut to fit size; by hand:
 * it runs for every frame set. */
static void s_peer_name (char *out, size_t size, char origin, zframe_t *identity)
{
    static const char digits[] = "0123456789ABCDEF";
    const byte *id = zframe_data (identity);
    size_t n = zframe_size (identity), at = 0;
    out[at++] = origin;
    for (size_t i = 0; i < n && at + 2 < size; i++) {
        out[at++] = digits[id[i] >> 4];
        out[at++] = digits[id[i] & 15];
    }
    out[at] = 0;
}

static int s_hex_digit (char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : -1;
}

/* Peer name -> (socket, identity frame). */
static zsock_t *s_peer_socket (qp_bus_server_t *self, const char *peer, zframe_t **identity)
{
    if (!peer || (peer[0] != 'W' && peer[0] != 'P'))
        return NULL;
    const char *hex = peer + 1;
    size_t n = strlen (hex);
    if (n == 0 || n % 2 || n > 60)
        return NULL;
    byte buf[32];
    for (size_t i = 0; i < n / 2; i++) {
        int hi = s_hex_digit (hex[2 * i]), lo = s_hex_digit (hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return NULL;
        buf[i] = (byte) (hi << 4 | lo);
    }
    *identity = zframe_new (buf, n / 2);
    return peer[0] == 'W' ? self->work : self->partner;
}

static service_t *s_service (qp_bus_server_t *self, const char *name)
{
    service_t *s = zhash_lookup (self->services, name);
    if (!s) {
        s = calloc (1, sizeof *s);
        assert (s);
        s->name = strdup (name);
        s->workers = zlistx_new ();
        s->queue = zlist_new ();
        zhash_insert (self->services, name, s);
        zhash_freefn (self->services, name, s_service_destroy);
    }
    return s;
}

/* [seq, origin, type, env, destination]: the destination (service of a SEND, peer of a
 * REPLY, empty for an event) comes last so that readers of the first four frames are
 * unaffected; a replay needs it to re-inject work to the right service. */
static void s_capture (qp_bus_server_t *self, const char *origin, zframe_t *type, zframe_t *env,
                       const char *destination)
{
    /* Numbered even when nobody listens: a recorder that joins sees the gap as a late
     * join (its first seq), as before. */
    uint64_t v = ++self->seq;
    if (self->capture_topics <= 0)
        return; /* no copy of the message for nobody */
    byte seq[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        seq[i] = (byte) (v & 0xff);
    /* type and env go out as shares of the routed message's own buffers (ZFRAME_REUSE:
     * zmq_msg_copy counts references), not as copies. */
    void *handle = zsock_resolve (self->capture);
    self->unread |= 1u << SOCK_CAPTURE;
    zmq_send (handle, seq, sizeof seq, ZMQ_SNDMORE);
    zmq_send (handle, origin, strlen (origin), ZMQ_SNDMORE);
    zframe_send (&type, self->capture, ZFRAME_MORE | ZFRAME_REUSE);
    zframe_send (&env, self->capture, ZFRAME_MORE | ZFRAME_REUSE);
    zmq_send (handle, destination, strlen (destination), 0);
}

/* Every refusal is counted as the services count theirs (qp_errors_total by reason). */
static void s_error (qp_bus_server_t *self, zsock_t *sock, zframe_t *identity, const char *code,
                     const char *fmt, ...)
{
    char labels[128];
    qp_metrics_labels (labels, sizeof labels, "service", "bus", "reason", code, NULL);
    qp_metric_add (qp_metrics_counter ("qp_errors_total",
                                       "messages refused or answered with an error, by reason",
                                       labels),
                   1);
    char detail[256];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (detail, sizeof detail, fmt, ap);
    va_end (ap);
    zmsg_t *m = zmsg_new ();
    zmsg_addmem (m, zframe_data (identity), zframe_size (identity));
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, QPB_ERROR);
    zmsg_addstr (m, code);
    zmsg_addstr (m, detail);
    s_send (self, &m, sock);
    zmsg_destroy (&m);
}

static void s_worker_remove (qp_bus_server_t *self, worker_t *w)
{
    service_t *s = zhash_lookup (self->services, w->service);
    if (s) {
        void *h = zlistx_find (s->workers, w);
        if (h)
            zlistx_delete (s->workers, h);
    }
    qp_log_info ("worker_left", "worker %s of %s left routing", w->peer, w->service);
    zhash_delete (self->workers, w->peer);
}

/* One more request from peer that worker w may answer with a REPLY. Short-lived clients
 * each leave an entry until the worker leaves: past OWED_MAX they are all forgotten. */
static void s_owe (worker_t *w, const char *peer)
{
    uintptr_t n = w->owed ? (uintptr_t) zhash_lookup (w->owed, peer) : 0;
    if (!n && w->owed && zhash_size (w->owed) >= OWED_MAX)
        zhash_destroy (&w->owed);
    if (!w->owed)
        w->owed = zhash_new ();
    if (n)
        zhash_update (w->owed, peer, (void *) (n + 1));
    else
        zhash_insert (w->owed, peer, (void *) (uintptr_t) 1);
}

/* Takes one owed request of peer off worker w's account; false if it owes none. */
static bool s_repay (worker_t *w, const char *peer)
{
    uintptr_t n = w && w->owed ? (uintptr_t) zhash_lookup (w->owed, peer) : 0;
    if (n > 1)
        zhash_update (w->owed, peer, (void *) (n - 1));
    else if (n == 1)
        zhash_delete (w->owed, peer);
    return n > 0;
}

/* Delivers [from][type][env] (taken) to one live worker of s with credit; false if none
 * took it. */
static bool s_deliver (qp_bus_server_t *self, service_t *s, zmsg_t **frames_p)
{
    int64_t now = zclock_mono ();
    /* Each worker is looked at once: the ones without credit are passed over. */
    for (size_t tries = zlistx_size (s->workers); tries > 0 && zlistx_size (s->workers) > 0;
         tries--) {
        worker_t *w = zlistx_first (s->workers);
        /* Rotate for round robin. */
        zlistx_move_end (s->workers, zlistx_cursor (s->workers));
        if (w->expiry < now) {
            s_worker_remove (self, w);
            continue;
        }
        if (w->window && w->inflight >= w->window)
            continue;
        /* No copy of the envelope: the routing frames go out in front of the message
         * itself, which stays whole when the peer is gone (s_send_to). */
        zmsg_t *m = *frames_p;
        /* A partner may REPLY only to whoever asked it: note the requester (first frame). */
        char from[64] = "";
        if (w->socket == self->partner) {
            zframe_t *f = zmsg_first (m);
            size_t n = f && zframe_size (f) < sizeof from ? zframe_size (f) : 0;
            memcpy (from, n ? zframe_data (f) : (byte *) "", n);
            from[n] = 0;
        }
        /* A flow-controlled worker tells work (which takes credit) from the replies to its
         * own requests (which do not) by the command. */
        if (s_send_to (self, w->socket, w->identity, w->window ? QPB_WORK : QPB_DELIVER,
                       frames_p) == 0) {
            w->delivered++;
            if (w->window)
                w->inflight++;
            s->routed++;
            if (*from)
                s_owe (w, from);
            return true;
        }
        /* EHOSTUNREACH (router mandatory): the peer is gone. */
        s_worker_remove (self, w);
    }
    return false;
}

/* Takes the three frames [from][type][env] of m. */
static waiting_t *s_waiting_new (zmsg_t **m_p)
{
    zframe_t *f[3] = {zmsg_first (*m_p), zmsg_next (*m_p), zmsg_next (*m_p)};
    assert (f[2] && zmsg_size (*m_p) == 3);
    size_t total = zframe_size (f[0]) + zframe_size (f[1]) + zframe_size (f[2]);
    waiting_t *w = malloc (sizeof *w + total);
    assert (w);
    byte *at = w->data;
    for (int i = 0; i < 3; i++) {
        w->size[i] = zframe_size (f[i]);
        if (w->size[i]) /* memcpy from an empty frame's NULL is undefined */
            memcpy (at, zframe_data (f[i]), w->size[i]);
        at += w->size[i];
    }
    zmsg_destroy (m_p);
    return w;
}

static zmsg_t *s_waiting_msg (const waiting_t *w)
{
    zmsg_t *m = zmsg_new ();
    const byte *at = w->data;
    for (int i = 0; i < 3; i++) {
        zmsg_addmem (m, at, w->size[i]);
        at += w->size[i];
    }
    return m;
}

/* Some worker of s could take work now (a live one is for s_deliver to find). */
static bool s_has_credit (service_t *s)
{
    for (worker_t *w = zlistx_first (s->workers); w; w = zlistx_next (s->workers))
        if (!w->window || w->inflight < w->window)
            return true;
    return false;
}

static void s_flush_queue (qp_bus_server_t *self, service_t *s)
{
    waiting_t *w;
    while ((w = zlist_first (s->queue)) && s_has_credit (s)) {
        zmsg_t *m = s_waiting_msg (w);
        if (!s_deliver (self, s, &m)) {
            zmsg_destroy (&m);
            break;
        }
        zlist_pop (s->queue);
        free (w);
    }
}

/* Work in flight at the live workers of s and the credit they have left (flow-controlled
 * workers only). */
static void s_inflight (service_t *s, int64_t now, size_t *live, long *inflight, long *credit)
{
    *live = 0, *inflight = 0, *credit = 0;
    for (worker_t *w = zlistx_first (s->workers); w; w = zlistx_next (s->workers))
        if (w->expiry >= now) {
            (*live)++;
            *inflight += w->inflight;
            *credit += w->window > w->inflight ? w->window - w->inflight : 0;
        }
}

/* A count frame of READY (window) or CREDIT: 1..QPB_WINDOW_MAX, else -1. */
static long s_count_frame (const char *text)
{
    char *end = NULL;
    long n = text && *text ? strtol (text, &end, 10) : -1;
    return end && !*end && n >= 1 && n <= QPB_WINDOW_MAX ? n : -1;
}

static void s_status (qp_bus_server_t *self, zsock_t *sock, zframe_t *identity)
{
    zhash_t *copy = self->services;
    char *json = NULL;
    size_t size = 0;
    FILE *f = open_memstream (&json, &size);
    fprintf (f, "{\"captured\":%llu,\"capture_topics\":%ld,\"events\":%llu,\"services\":{",
             (unsigned long long) self->seq, self->capture_topics,
             (unsigned long long) self->events);
    int first = 1;
    int64_t now = zclock_mono ();
    for (service_t *s = zhash_first (copy); s; s = zhash_next (copy)) {
        size_t live;
        long inflight, credit;
        s_inflight (s, now, &live, &inflight, &credit);
        fprintf (f,
                 "%s\"%s\":{\"workers\":%zu,\"queued\":%zu,\"routed\":%llu,\"inflight\":%ld,"
                 "\"credit\":%ld}",
                 first ? "" : ",", s->name, live, zlist_size (s->queue),
                 (unsigned long long) s->routed, inflight, credit);
        first = 0;
    }
    fprintf (f, "}}");
    fclose (f);
    zmsg_t *m = zmsg_new ();
    zmsg_addmem (m, zframe_data (identity), zframe_size (identity));
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, QPB_STATUS);
    zmsg_addstr (m, json);
    s_send (self, &m, sock);
    zmsg_destroy (&m);
    free (json);
}

static bool s_service_name_ok (const char *name)
{
    size_t n = strlen (name);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum ((unsigned char) *p) || *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

/* "BPIFRANCE.component" under the key of agency BPIFRANCE. */
static bool s_own_agency (const char *rest, const char *agency)
{
    size_t n = agency ? strlen (agency) : 0;
    return n && !strncmp (rest, agency, n) && rest[n] == '.' && rest[n + 1];
}

/* A hello, status or decision sent under an agency's key must carry that agency. */
static bool s_speaks_for (zmsg_t *m, const char *agency)
{
    zframe_t *type = zmsg_first (m);
    zframe_t *env = zmsg_next (m);
    qp_message_t msg;
    qp_error_t err;
    if (!agency || qp_message_decode (type, env, &msg, &err) != 0)
        return agency != NULL; /* funding answers an undecodable message with the reason */
    const ProtobufCMessageDescriptor *d = msg.descriptor;
    Qp__V1__Agency a = QP__V1__AGENCY__AGENCY_UNSPECIFIED;
    bool has = true;
    if (d == &qp__v1__partner_hello__descriptor)
        a = ((Qp__V1__PartnerHello *) msg.payload)->agency;
    else if (d == &qp__v1__partner_status__descriptor)
        a = ((Qp__V1__PartnerStatus *) msg.payload)->agency;
    else if (d == &qp__v1__partner_decision__descriptor)
        a = ((Qp__V1__PartnerDecision *) msg.payload)->agency;
    else
        has = false;
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, a);
    bool ok = !has || (v && !strcmp (v->name, agency));
    qp_message_clear (&msg);
    return ok;
}

/* The partner protocol's messages (docs/partner-protocol.md): announcements and decisions
 * sent to funding, and an Error as the answer to a request it cannot read. Anything else
 * from a partner would be handled by funding as one of the services' own messages. */
static bool s_partner_type_ok (const char *cmd, zframe_t *type)
{
    if (!strcmp (cmd, QPB_REPLY))
        return zframe_streq (type, qp__v1__error__descriptor.name);
    return zframe_streq (type, qp__v1__partner_hello__descriptor.name) ||
           zframe_streq (type, qp__v1__partner_status__descriptor.name) ||
           zframe_streq (type, qp__v1__partner_decision__descriptor.name);
}

/* A type frame fit for an error detail and a log line: printable, bounded. */
static void s_type_name (char *out, size_t size, zframe_t *type)
{
    size_t n = zframe_size (type) < size - 1 ? zframe_size (type) : size - 1;
    for (size_t i = 0; i < n; i++) {
        byte c = zframe_data (type)[i];
        out[i] = c >= 0x20 && c < 0x7f && c != '"' ? (char) c : '?';
    }
    out[n] = 0;
}

/* The next frame of m as a string in buf (its bytes cut to size - 1, as zmsg_popstr but
 * without an allocation per frame); NULL when m has none left. */
static char *s_pop_text (zmsg_t *m, char *buf, size_t size)
{
    zframe_t *f = zmsg_pop (m);
    if (!f)
        return NULL;
    size_t n = zframe_size (f) < size - 1 ? zframe_size (f) : size - 1;
    if (n)
        memcpy (buf, zframe_data (f), n);
    buf[n] = 0;
    zframe_destroy (&f);
    return buf;
}

/* One frame set from a peer on the work or partner ROUTER; false when none waits. */
static bool s_handle_peer (qp_bus_server_t *self, zsock_t *sock, char origin)
{
    zmsg_t *m = zmsg_recv (sock);
    if (!m)
        return false;
    zframe_t *identity = zmsg_pop (m);
    /* Longer than any command, service name (64) or peer id: a longer frame is refused
     * all the same, and an error detail holds 256 bytes. */
    char proto_buf[16], cmd_buf[256], arg_buf[256];
    char *arg = NULL;
    char peer[64];
    s_peer_name (peer, sizeof peer, origin, identity);

    /* With CURVE, the agency the peer's key belongs to (ZAP metadata from its cert). */
    char agency_buf[64] = "";
    const char *agency = NULL;
    if (origin == 'P' && self->auth && zmsg_first (m)) {
        const char *meta = zframe_meta (zmsg_first (m), "agency");
        if (meta && *meta)
            agency = strncpy (agency_buf, meta, sizeof agency_buf - 1);
    }
    char *proto = s_pop_text (m, proto_buf, sizeof proto_buf);
    char *cmd = s_pop_text (m, cmd_buf, sizeof cmd_buf);
    if (!proto || strcmp (proto, QPB_PROTOCOL) != 0 || !cmd) {
        s_error (self, sock, identity, "malformed_frame",
                 "expected [\"" QPB_PROTOCOL "\", command, ...] frames");
        goto cleanup;
    }
    if (!strcmp (cmd, QPB_STATUS)) {
        s_status (self, sock, identity);
        goto cleanup;
    }
    arg = s_pop_text (m, arg_buf, sizeof arg_buf);
    if (!arg || !s_service_name_ok (arg)) {
        s_error (self, sock, identity, "malformed_frame", "%s needs a service name or peer id",
                 cmd);
        goto cleanup;
    }
    if (!strcmp (cmd, QPB_READY)) {
        /* An optional window: the worker is flow controlled. */
        long window = 0;
        if (zmsg_size (m) > 0) {
            char *text = zmsg_popstr (m);
            window = s_count_frame (text);
            free (text);
            if (window < 0 || zmsg_size (m) > 0) {
                s_error (self, sock, identity, "malformed_frame",
                         "READY %s: the window frame must be an integer in [1, %d] and the last "
                         "frame",
                         arg, QPB_WINDOW_MAX);
                goto cleanup;
            }
        }
        /* Partner components may only register as "partner.<AGENCY>" workers, and with
         * CURVE only as workers of the agency their key belongs to. */
        if (origin == 'P' && strncmp (arg, "partner.", 8) != 0) {
            s_error (self, sock, identity, "forbidden",
                     "the partner endpoint serves partner.* only");
            goto cleanup;
        }
        if (origin == 'P' && self->auth && !s_own_agency (arg + 8, agency)) {
            s_error (self, sock, identity, "forbidden",
                     "this key belongs to %s: it may register as "
                     "partner.%s.<component> only",
                     agency ? agency : "no agency", agency ? agency : "?");
            qp_log_warn ("partner_forbidden", "peer %s (%s) tried to register as %s", peer,
                         agency ? agency : "no agency", arg);
            goto cleanup;
        }
        worker_t *w = zhash_lookup (self->workers, peer);
        if (w && strcmp (w->service, arg) != 0) {
            s_worker_remove (self, w);
            w = NULL;
        }
        if (!w) {
            w = calloc (1, sizeof *w);
            assert (w);
            w->identity = zframe_dup (identity);
            w->socket = sock;
            snprintf (w->peer, sizeof w->peer, "%s", peer);
            w->service = strdup (arg);
            zhash_insert (self->workers, peer, w);
            zhash_freefn (self->workers, peer, s_worker_destroy);
            zlistx_add_end (s_service (self, arg)->workers, w);
            qp_log_info ("worker_ready", "worker %s ready for %s", peer, arg);
        }
        w->window = window;
        w->expiry = zclock_mono () + QPB_WORKER_EXPIRY_MS;
        s_flush_queue (self, s_service (self, arg));
    } else if (!strcmp (cmd, QPB_CREDIT)) {
        char *text = zmsg_popstr (m);
        long n = s_count_frame (text);
        free (text);
        if (n < 0 || zmsg_size (m) > 0) {
            s_error (self, sock, identity, "malformed_frame",
                     "CREDIT %s: the count frame must be an integer in [1, %d] and the last frame",
                     arg, QPB_WINDOW_MAX);
            goto cleanup;
        }
        /* Credit of a worker the bus does not know (it restarted, or the worker expired)
         * is dropped: its READY starts it afresh with a whole window. Never more credit
         * than the window: what comes back is capped at what was sent. */
        worker_t *w = zhash_lookup (self->workers, peer);
        if (w && !strcmp (w->service, arg)) {
            w->inflight = n < w->inflight ? w->inflight - n : 0;
            s_flush_queue (self, s_service (self, arg));
        }
    } else if (!strcmp (cmd, QPB_BYE)) {
        worker_t *w = zhash_lookup (self->workers, peer);
        if (w)
            s_worker_remove (self, w);
    } else if (!strcmp (cmd, QPB_SEND) || !strcmp (cmd, QPB_REPLY)) {
        if (zmsg_size (m) != 2) {
            s_error (self, sock, identity, "malformed_frame", "%s needs [type][envelope] after %s",
                     cmd, arg);
            goto cleanup;
        }
        if (origin == 'P' && !strcmp (cmd, QPB_SEND) && strcmp (arg, "funding") != 0) {
            s_error (self, sock, identity, "forbidden",
                     "partner components may only send to funding");
            goto cleanup;
        }
        if (origin == 'P' && !s_partner_type_ok (cmd, zmsg_first (m))) {
            char type[80];
            s_type_name (type, sizeof type, zmsg_first (m));
            s_error (self, sock, identity, "forbidden",
                     "the partner endpoint carries no %s %s: SEND PartnerHello, PartnerStatus or "
                     "PartnerDecision, REPLY Error",
                     cmd, type);
            qp_log_warn ("partner_forbidden", "peer %s (%s) tried to %s a %s", peer,
                         agency ? agency : "no agency", cmd, type);
            goto cleanup;
        }
        if (origin == 'P' && self->auth && !s_speaks_for (m, agency)) {
            s_error (self, sock, identity, "forbidden",
                     "this key belongs to %s: it may announce and answer for %s only",
                     agency ? agency : "no agency", agency ? agency : "?");
            qp_log_warn ("partner_forbidden", "peer %s (%s) spoke for another agency", peer,
                         agency ? agency : "no agency");
            goto cleanup;
        }
        /* A partner answers the requests it was given, not any peer id it has seen. */
        if (origin == 'P' && !strcmp (cmd, QPB_REPLY) &&
            !s_repay (zhash_lookup (self->workers, peer), arg)) {
            s_error (self, sock, identity, "forbidden",
                     "REPLY to %s: no request from that peer is waiting for an answer", arg);
            qp_log_warn ("partner_forbidden", "peer %s (%s) replied to %s, which asked it nothing",
                         peer, agency ? agency : "no agency", arg);
            goto cleanup;
        }
        /* Two statements: argument evaluation order is unspecified. */
        zframe_t *type = zmsg_first (m);
        zframe_t *env = zmsg_next (m);
        s_capture (self, origin == 'W' ? "work" : "partner", type, env, arg);
        zmsg_pushstr (m, peer);
        if (!strcmp (cmd, QPB_SEND)) {
            service_t *s = s_service (self, arg);
            /* Behind what already waits (order), else straight to a worker with credit. */
            if (zlist_size (s->queue) > 0 || !s_deliver (self, s, &m)) {
                if ((long) zlist_size (s->queue) >= self->queue_max) {
                    s_error (self, sock, identity, "overloaded",
                             "service %s has no worker with credit and %zu messages waiting",
                             arg, zlist_size (s->queue));
                } else {
                    zlist_append (s->queue, s_waiting_new (&m));
                    s_flush_queue (self, s);
                }
            }
        } else {
            zframe_t *to_id = NULL;
            zsock_t *to = s_peer_socket (self, arg, &to_id);
            if (!to) {
                s_error (self, sock, identity, "malformed_frame", "REPLY to an invalid peer id");
                goto cleanup;
            }

            if (s_send_to (self, to, to_id, QPB_DELIVER, &m) != 0)
                qp_log_debug ("reply_dropped", "peer %s is gone", arg);
            zframe_destroy (&to_id);
        }
    } else
        s_error (self, sock, identity, "malformed_frame", "unknown command");
cleanup:
    zmsg_destroy (&m);
    zframe_destroy (&identity);
    return true;
}

static bool s_forward_event (qp_bus_server_t *self)
{
    zmsg_t *m = zmsg_recv (self->xsub);
    if (!m)
        return false;
    if (zmsg_size (m) == 2) {
        zframe_t *type = zmsg_first (m);
        zframe_t *env = zmsg_next (m);
        s_capture (self, "event", type, env, "");
    }
    self->events++;
    s_send (self, &m, self->xpub);
    zmsg_destroy (&m);
    return true;
}

static bool s_forward_subscription (qp_bus_server_t *self)
{
    zmsg_t *m = zmsg_recv (self->xpub);
    if (!m)
        return false;
    s_send (self, &m, self->xsub);
    zmsg_destroy (&m);
    return true;
}

/* A recorder (un)subscribing to the capture tap: the XPUB passes the first subscription
 * of a topic and the last unsubscription (a subscriber that disconnects included). */
static bool s_capture_subscription (qp_bus_server_t *self)
{
    zframe_t *f = zframe_recv (self->capture);
    if (!f)
        return false;
    if (zframe_size (f) > 0) {
        if (zframe_data (f)[0] == 1)
            self->capture_topics++;
        else if (zframe_data (f)[0] == 0 && self->capture_topics > 0)
            self->capture_topics--;
    }
    zframe_destroy (&f);
    return true;
}

static void s_expire (qp_bus_server_t *self)
{
    int64_t now = zclock_mono ();
    zlist_t *gone = zlist_new ();
    for (worker_t *w = zhash_first (self->workers); w; w = zhash_next (self->workers))
        if (w->expiry < now)
            zlist_append (gone, w);
    for (worker_t *w = zlist_first (gone); w; w = zlist_next (gone))
        s_worker_remove (self, w);
    zlist_destroy (&gone);
}

/* Mirrors the routing table into the metrics registry (on the expiry tick). */
static void s_metrics (qp_bus_server_t *self)
{
    char labels[128];
    int64_t now = zclock_mono ();
    for (service_t *s = zhash_first (self->services); s; s = zhash_next (self->services)) {
        size_t live;
        long inflight, credit;
        s_inflight (s, now, &live, &inflight, &credit);
        qp_metrics_labels (labels, sizeof labels, "service", s->name, NULL);
        qp_metric_set (qp_metrics_gauge ("qp_bus_inflight",
                                         "work at flow-controlled workers not credited back yet",
                                         labels),
                       (double) inflight);
        qp_metric_set (qp_metrics_gauge ("qp_bus_credit",
                                         "work the bus may still send to the service's "
                                         "flow-controlled workers",
                                         labels),
                       (double) credit);
        qp_metric_set (qp_metrics_gauge ("qp_bus_workers", "live workers, by service", labels),
                       (double) live);
        qp_metric_set (qp_metrics_gauge ("qp_bus_queued", "messages waiting for a worker", labels),
                       (double) zlist_size (s->queue));
        qp_metric_set (
            qp_metrics_counter ("qp_bus_routed_total", "work delivered to a worker", labels),
            (double) s->routed);
    }
    /* Partner availability: live component processes per agency, from the services
     * "partner.AGENCY.COMPONENT"; every agency shows, 0 while none serves it. */
    for (size_t a = 1; a < qp__v1__agency__descriptor.n_values; a++) {
        const char *agency = qp__v1__agency__descriptor.values[a].name;
        size_t live = 0, len = strlen (agency);
        for (service_t *s = zhash_first (self->services); s; s = zhash_next (self->services))
            if (!strncmp (s->name, "partner.", 8) && !strncmp (s->name + 8, agency, len) &&
                s->name[8 + len] == '.')
                for (worker_t *w = zlistx_first (s->workers); w; w = zlistx_next (s->workers))
                    live += w->expiry >= now;
        qp_metrics_labels (labels, sizeof labels, "agency", agency, NULL);
        qp_metric_set (qp_metrics_gauge ("qp_partner_components",
                                         "live partner component processes serving the agency",
                                         labels),
                       (double) live);
    }
    qp_metric_set (qp_metrics_counter ("qp_bus_captured_total", "messages on the capture tap", ""),
                   (double) self->seq);
    qp_metric_set (qp_metrics_counter ("qp_bus_events_total", "events forwarded", ""),
                   (double) self->events);
}

/* hwm: for the event sockets; set before the bind, as the listener copies the options
 * its connections get. */
static zsock_t *s_bind_hwm (int type, const char *endpoint, int hwm)
{
    zsock_t *s = zsock_new (type);
    assert (s);
    qp_bus_socket_defaults (s);
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (s, 1);
    if (type == ZMQ_XPUB || type == ZMQ_XSUB || type == ZMQ_PUB) {
        zsock_set_sndhwm (s, hwm);
        zsock_set_rcvhwm (s, hwm);
    }
    if (zsock_bind (s, "%s", endpoint) < 0) {
        qp_log_error ("bind_failed", "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&s);
    }
    return s;
}

static zsock_t *s_bind (int type, const char *endpoint)
{
    return s_bind_hwm (type, endpoint, 1000000);
}

/* CURVE for the partner endpoint: the bus's key pair, and a ZAP handler that admits the
 * agencies' public keys (their certificates carry the agency as metadata). Keys are read
 * from files and never logged. */
static bool s_curve (qp_bus_server_t *self, const char *dir)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/bus.cert_secret", dir);
    self->cert = zcert_load (path);
    if (!self->cert) {
        qp_log_error ("curve_keys", "cannot read the bus key pair %s (run qp-keygen %s)", path,
                      dir);
        return false;
    }
    snprintf (path, sizeof path, "%s/agencies", dir);
    if (!zsys_file_exists (path)) {
        qp_log_error ("curve_keys", "no agency certificates in %s (run qp-keygen %s)", path, dir);
        return false;
    }
    self->auth = zactor_new (zauth, NULL);
    zstr_sendx (self->auth, "CURVE", path, NULL);
    zsock_wait (self->auth);
    qp_log_info ("curve_on", "partner endpoint uses CURVE, agency keys from %s", path);
    return true;
}

static zsock_t *s_bind_partner (qp_bus_server_t *self, const char *endpoint)
{
    if (!self->auth)
        return s_bind (ZMQ_ROUTER, endpoint);
    zsock_t *s = zsock_new (ZMQ_ROUTER);
    assert (s);
    qp_bus_socket_defaults (s);
    zsock_set_router_mandatory (s, 1);
    zsock_set_zap_domain (s, "partner");
    zcert_apply (self->cert, s);
    zsock_set_curve_server (s, 1);
    if (zsock_bind (s, "%s", endpoint) < 0) {
        qp_log_error ("bind_failed", "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&s);
    }
    return s;
}

qp_bus_server_t *qp_bus_server_new (const qp_bus_server_config_t *config)
{
    qp_bus_server_t *self = calloc (1, sizeof *self);
    assert (self);
    self->services = zhash_new ();
    self->workers = zhash_new ();
    self->queue_max = config->queue_max > 0 ? config->queue_max : 1000000;
    self->work = s_bind (ZMQ_ROUTER, config->work);
    if (config->curve_dir && !s_curve (self, config->curve_dir)) {
        qp_bus_server_destroy (&self);
        return NULL;
    }
    self->partner = s_bind_partner (self, config->partner);
    self->xsub = s_bind (ZMQ_XSUB, config->publish);
    /* Bounded for each subscriber: an evaluation that cannot follow a burst loses the
     * excess here (it stays in the outbox, where the evaluation reads it back), instead of
     * the bus growing by ~1.3 KB an event. */
    self->xpub = s_bind_hwm (ZMQ_XPUB, config->subscribe,
                             config->event_pipe > 0 ? (int) config->event_pipe : 1000000);
    /* XPUB: the bus knows whether anyone listens to the tap. */
    self->capture = s_bind (ZMQ_XPUB, config->capture);
    if (!self->work || !self->partner || !self->xsub || !self->xpub || !self->capture) {
        qp_bus_server_destroy (&self);
        return NULL;
    }
    zsock_t *sockets[SOCK_COUNT] = {self->work, self->partner, self->xsub, self->xpub,
                                    self->capture};
    for (int i = 0; i < SOCK_COUNT; i++) {
        self->sockets[i] = sockets[i];
        /* Reads never block: the loop reads until EAGAIN before it sleeps. */
        zsock_set_rcvtimeo (sockets[i], 0);
    }
    return self;
}

void qp_bus_server_destroy (qp_bus_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_bus_server_t *self = *self_p;
    zhash_destroy (&self->services);
    zhash_destroy (&self->workers);
    zsock_destroy (&self->work);
    zsock_destroy (&self->partner);
    zsock_destroy (&self->xsub);
    zsock_destroy (&self->xpub);
    zsock_destroy (&self->capture);
    zactor_destroy (&self->auth);
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

/* Reads up to DRAIN_BATCH frame sets of socket i; false once it says EAGAIN (its
 * commands are processed: its fd will signal what comes next). */
static bool s_drain (qp_bus_server_t *self, int i)
{
    for (int n = 0; n < DRAIN_BATCH; n++) {
        bool got = false;
        switch (i) {
        case SOCK_WORK: got = s_handle_peer (self, self->work, 'W'); break;
        case SOCK_PARTNER: got = s_handle_peer (self, self->partner, 'P'); break;
        case SOCK_XSUB: got = s_forward_event (self); break;
        case SOCK_XPUB: got = s_forward_subscription (self); break;
        case SOCK_CAPTURE: got = s_capture_subscription (self); break;
        }
        if (!got)
            return false;
    }
    return true;
}

int qp_bus_server_run (qp_bus_server_t *self)
{
    /* The sockets' ZMQ_FDs polled directly: zmq_poll (zpoller) asks every socket for its
     * events before and after each poll (two syscalls each, ten for the five), and the
     * old loop asked again after each frame set. Here a socket is read until EAGAIN, and
     * the fds are polled only once every socket has said so since its last send. */
    struct pollfd fds[SOCK_COUNT];
    for (int i = 0; i < SOCK_COUNT; i++)
        fds[i] = (struct pollfd){.fd = zsock_fd (self->sockets[i]), .events = POLLIN};
    self->unread = (1u << SOCK_COUNT) - 1;
    int64_t next_expiry = zclock_mono () + 500;
    /* Ready once bound, which qp_bus_server_new did. */
    if (qp_config_setting ("http") && qp_health_start (qp_config_setting ("http")) >= 0)
        qp_health_check ("sockets", true);
    while (!zsys_interrupted) {
        if (!self->unread) {
            int64_t wait = next_expiry - zclock_mono ();
            int ready = poll (fds, SOCK_COUNT, wait < 0 ? 0 : wait > 200 ? 200 : (int) wait);
            for (int i = 0; i < SOCK_COUNT; i++)
                /* After a quiet poll every socket is read once anyway: a signal taken in
                 * by a path this loop does not know of cannot leave frame sets behind. */
                if (ready == 0 || (ready > 0 && fds[i].revents))
                    self->unread |= 1u << i;
        }
        /* A batch from each socket in turn (none starves the others); one that still has
         * frame sets, or was sent on meanwhile, stays unread. */
        for (int i = 0; i < SOCK_COUNT; i++)
            if (self->unread & (1u << i)) {
                /* Its own sends came before its EAGAIN: only a batch cut short keeps it. */
                if (s_drain (self, i))
                    self->unread |= 1u << i;
                else
                    self->unread &= ~(1u << i);
            }
        if (zclock_mono () >= next_expiry) {
            s_expire (self);
            s_metrics (self);
            qp_health_tick ();
            next_expiry = zclock_mono () + 500;
        }
    }
    qp_log_info ("bus_stopping", "routed %llu captured messages, %llu events",
                 (unsigned long long) self->seq, (unsigned long long) self->events);
    return 0;
}
