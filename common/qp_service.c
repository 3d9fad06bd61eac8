/* The worker loop shared by intake, eligibility, funding, evaluation and the partner SDK. */
#include "qp_service.h"
#include "qp_shard.h"
#include "qp_health.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include <string.h>

#define MAX_HANDLERS 32
#define MAX_TIMERS 8
#define OUTBOX_SWEEP_MS 1000
#define OUTBOX_BATCH 256     /* members claimed, or removals piggybacked, at once */
#define ACK_DELAY_MS 1000    /* a publish is trusted once no disconnect followed it this long */
/* Messages read in one burst before the timers and the after-burst hooks run: one bus
 * window (QPB_WINDOW_DEFAULT), so a batching service (funding: FUNDING_BATCH) can handle
 * all its work in flight in one batch. */
#define BURST_MAX 512
#define WATCH_MS 100         /* the publish socket's monitor is read at most this often */
#define CATCH_UP_PAGE 1024   /* outbox members read at once by the catch-up */
#define CATCH_UP_IDLE_MS 1000 /* a catch-up pass that found the end waits this long */
#define DISTRUST_MS 5000     /* after a connect or disconnect of the publish socket,
                                publishes are not trusted (the bus's subscriptions may not
                                have reached us yet): their entries stay for the sweeper */

typedef struct {
    const ProtobufCMessageDescriptor *type;
    qp_handler_fn *fn;
    void *arg;
    qp_metric_t *in;      /* messages handled of this type */
    qp_metric_t *latency; /* seconds in the handler */
} handler_t;

typedef struct {
    int interval_ms;
    int64_t next;
    qp_timer_fn *fn;
    void *arg;
} timer_t_;

struct qp_service {
    char *name;
    qp_bus_client_t *bus;
    zsock_t *pub;
    zsock_t *sub;
    handler_t work[MAX_HANDLERS];
    size_t n_work;
    handler_t events[MAX_HANDLERS];
    size_t n_events;
    timer_t_ timers[MAX_TIMERS];
    size_t n_timers;
    timer_t_ after_burst[MAX_TIMERS]; /* interval and next unused */
    size_t n_after_burst;
    bool stop;
    uint64_t handled;
    char probe_topic[64];
    int64_t bus_seen; /* last frame set from the bus (readiness) */
    /* The outbox (qp_service_create/transition). */
    qp_redis_t *outbox;      /* where steps record their events; NULL until the first */
    qp_store_blob_t *acks;   /* published members to remove from the outbox */
    int64_t *acks_at;        /* when each was published (mono ms) */
    size_t n_acks, cap_acks;
    zsock_t *monitor;        /* disconnects of the publish socket */
    int64_t distrust_until;  /* publishes before this (mono ms) are left to the sweeper */
    int64_t watched;         /* last look at the monitor (mono ms) */
    long steps;              /* steps that recorded events */
    long fault_after;        /* QP_FAULT_AFTER_TRANSITION (test hook), 0: off */
    bool producer_acks;      /* QP_OUTBOX_ACK=producer: we remove what we published (no
                                evaluation deployed); else the evaluation removes what it
                                counted */
    qp_metric_t *outbox_size; /* events in the outbox, seen by our sweeper */
    qp_handler_fn *undecodable; /* qp_service_on_undecodable */
    void *undecodable_arg;
    qp_shard_t *shard;          /* qp_service_shard_events, or NULL: every event is ours */
    qp_metric_t *m_skipped;     /* events another instance of the shard group handles */
    /* qp_service_catch_up: a pass pages through the outbox by deadline; the members at
     * the last page's last deadline are remembered, as the next page starts there. */
    qp_redis_t *catch_up;
    bool catching_up;          /* a pass is under way: the next page at once */
    int64_t catch_up_from;     /* deadline the next page starts at (ms) */
    int64_t catch_up_next;     /* no pass before this (mono ms) */
    qp_store_blob_t *at_from;  /* members at catch_up_from already handed over */
    size_t n_at_from;
    qp_metric_t *m_caught_up;  /* events handed over from the outbox */
    size_t pass_counted;       /* by the pass under way */
};

static void s_forget_at_from (qp_service_t *self);

/* Metrics carry the service name, or the program's for a sender-only program. */
static const char *s_label_name (const qp_service_t *self)
{
    return self->name ? self->name : qp_log_program ();
}

static void s_count (const qp_service_t *self, const char *metric, const char *help,
                     const char *key, const char *value)
{
    char labels[256];
    qp_metrics_labels (labels, sizeof labels, "service", s_label_name (self), key, value, NULL);
    qp_metric_add (qp_metrics_counter (metric, help, labels), 1);
}

static void s_count_out (const qp_service_t *self, const ProtobufCMessage *payload)
{
    s_count (self, "qp_messages_out_total", "messages sent, replied or published, by type", "type",
             payload ? payload->descriptor->name : "");
}

static void s_count_error (const qp_service_t *self, const char *reason)
{
    s_count (self, "qp_errors_total", "messages refused or answered with an error, by reason",
             "reason", reason);
}

static void s_metered (qp_service_t *self, handler_t *h)
{
    char labels[256];
    qp_metrics_labels (labels, sizeof labels, "service", s_label_name (self), "type", h->type->name,
                       NULL);
    h->in = qp_metrics_counter ("qp_messages_in_total", "messages handled, by type", labels);
    h->latency = qp_metrics_histogram ("qp_handler_seconds", "time in the handler, by type", labels);
}

qp_service_t *qp_service_new (const char *name, const char *endpoint, const char *publish,
                              const char *subscribe)
{
    qp_service_t *self = calloc (1, sizeof *self);
    assert (self);
    self->name = name ? strdup (name) : NULL;
    self->bus = qp_bus_client_new (endpoint);
    if (!self->bus) {
        qp_log_error ("bus_connect", "cannot connect to the bus at %s", endpoint);
        qp_service_destroy (&self);
        return NULL;
    }
    /* Flow control: the backlog of a burst waits in the bus, not in our receive pipe. */
    qp_bus_client_window (self->bus, qp_bus_window ());
    if (publish) {
        self->pub = zsock_new (ZMQ_PUB);
        zsock_set_sndhwm (self->pub, 1000000);
        zsock_set_linger (self->pub, 1000);
        if (zsock_connect (self->pub, "%s", publish) != 0) {
            qp_log_error ("bus_connect", "cannot connect to the bus at %s", publish);
            qp_service_destroy (&self);
            return NULL;
        }
        /* A PUB socket never says whether the bus got a message. It drops what it sends
         * before the bus's subscriptions have reached it (after a connect), and what was
         * in flight is lost with a disconnect: the outbox keeps such events for the
         * sweeper. */
        char ep[64];
        snprintf (ep, sizeof ep, "inproc://qp-pub-monitor-%p", (void *) self);
        self->distrust_until = zclock_mono () + DISTRUST_MS;
        if (zmq_socket_monitor (zsock_resolve (self->pub), ep,
                                ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0) {
            self->monitor = zsock_new (ZMQ_PAIR);
            if (zsock_connect (self->monitor, "%s", ep) != 0)
                zsock_destroy (&self->monitor);
        }
    }
    const char *fault = getenv ("QP_FAULT_AFTER_TRANSITION");
    self->fault_after = fault ? atol (fault) : 0;
    const char *ack = getenv ("QP_OUTBOX_ACK");
    self->producer_acks = ack && !strcmp (ack, "producer");
    if (subscribe) {
        self->sub = zsock_new (ZMQ_SUB);
        /* Bounded (qp_service_catch_up): a backlog beyond it is dropped here and stays in
         * the outbox, instead of growing our memory by ~1.3 KB an event. */
        const char *pipe = qp_config_setting ("event-pipe");
        long hwm = pipe ? atol (pipe) : QP_SERVICE_EVENT_PIPE;
        zsock_set_rcvhwm (self->sub, hwm > 0 ? (int) hwm : QP_SERVICE_EVENT_PIPE);
        if (zsock_connect (self->sub, "%s", subscribe) != 0) {
            qp_log_error ("bus_connect", "cannot connect to the bus at %s", subscribe);
            qp_service_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void qp_service_destroy (qp_service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_service_t *self = *self_p;
    qp_shard_destroy (&self->shard); /* leaves the group: the others take our keys */
    qp_bus_client_destroy (&self->bus);
    if (self->monitor) {
        zmq_socket_monitor (zsock_resolve (self->pub), NULL, 0);
        zsock_destroy (&self->monitor);
    }
    for (size_t i = 0; i < self->n_acks; i++)
        free (self->acks[i].data);
    free (self->acks);
    free (self->acks_at);
    zsock_destroy (&self->pub);
    zsock_destroy (&self->sub);
    s_forget_at_from (self);
    free (self->name);
    free (self);
    *self_p = NULL;
}

void qp_service_on (qp_service_t *self, const ProtobufCMessageDescriptor *type,
                    qp_handler_fn *handler, void *arg)
{
    assert (self->n_work < MAX_HANDLERS);
    self->work[self->n_work++] = (handler_t){type, handler, arg, NULL, NULL};
    s_metered (self, &self->work[self->n_work - 1]);
}

void qp_service_subscribe (qp_service_t *self, const ProtobufCMessageDescriptor *type,
                           qp_handler_fn *handler, void *arg)
{
    assert (self->sub && self->n_events < MAX_HANDLERS);
    self->events[self->n_events++] = (handler_t){type, handler, arg, NULL, NULL};
    s_metered (self, &self->events[self->n_events - 1]);
    zsock_set_subscribe (self->sub, type->name);
}

void qp_service_every (qp_service_t *self, int interval_ms, qp_timer_fn *timer, void *arg)
{
    assert (self->n_timers < MAX_TIMERS);
    self->timers[self->n_timers++] = (timer_t_){interval_ms, zclock_mono () + interval_ms, timer, arg};
}

void qp_service_after_burst (qp_service_t *self, qp_timer_fn *fn, void *arg)
{
    assert (self->n_after_burst < MAX_TIMERS);
    self->after_burst[self->n_after_burst++] = (timer_t_){0, 0, fn, arg};
}

static void s_ping_redis (qp_service_t *self, void *arg)
{
    (void) self;
    redisReply *reply = qp_redis_command ((qp_redis_t *) arg, "PING"); /* sets "redis" */
    if (reply)
        freeReplyObject (reply);
}

void qp_service_watch_redis (qp_service_t *self, qp_redis_t *r)
{
    if (r && qp_config_setting ("http"))
        qp_service_every (self, 1000, s_ping_redis, r);
}

void qp_service_stop (qp_service_t *self) { self->stop = true; }
uint64_t qp_service_handled (const qp_service_t *self) { return self->handled; }

static void s_send_error (qp_service_t *self, zframe_t *to, const qp_error_t *err,
                          const char *in_reply_to, const char *correlation, int64_t time_ms)
{
    s_count_error (self, err->code);
    zmsg_t *m = qp_message_build_error (err, in_reply_to, correlation, time_ms);
    qp_bus_client_reply (self->bus, to, &m);
}

void qp_service_reply (qp_request_t *req, const ProtobufCMessage *payload, const qp_meta_t *meta)
{
    /* A reply is caused by its request: clients match replies on causation_id. */
    qp_meta_t with_cause = meta ? *meta : (qp_meta_t){0};
    if (!with_cause.causation_id && req->msg.envelope)
        with_cause.causation_id = req->msg.envelope->message_id;
    zmsg_t *m = qp_message_build (payload, &with_cause, NULL);
    s_count_out (req->service, payload);
    qp_bus_client_reply (req->service->bus, req->from, &m);
}

void qp_service_reply_error (qp_request_t *req, const qp_error_t *err)
{
    Qp__V1__Envelope *e = req->msg.envelope;
    s_send_error (req->service, req->from, err, e ? e->message_id : NULL,
                  e ? e->correlation_id : NULL, e && e->has_event_time_ms ? e->event_time_ms : 0);
}

void qp_service_send (qp_service_t *self, const char *to_service, const ProtobufCMessage *payload,
                      const qp_meta_t *meta)
{
    zmsg_t *m = qp_message_build (payload, meta, NULL);
    s_count_out (self, payload);
    qp_bus_client_send (self->bus, to_service, &m);
}

void qp_service_publish (qp_service_t *self, const ProtobufCMessage *payload, const qp_meta_t *meta)
{
    assert (self->pub);
    zmsg_t *m = qp_message_build (payload, meta, NULL);
    s_count_out (self, payload);
    zmsg_send (&m, self->pub);
    zmsg_destroy (&m);
}

/* ---- The outbox ---------------------------------------------------------------------- */

/* An outbox member is the frame set itself: type, NUL, packed Envelope. */
static qp_store_blob_t s_member (zmsg_t *frames)
{
    zframe_t *type = zmsg_first (frames);
    zframe_t *env = zmsg_next (frames);
    qp_store_blob_t b;
    b.len = zframe_size (type) + 1 + zframe_size (env);
    b.data = malloc (b.len);
    assert (b.data);
    memcpy (b.data, zframe_data (type), zframe_size (type));
    ((char *) b.data)[zframe_size (type)] = 0;
    memcpy ((char *) b.data + zframe_size (type) + 1, zframe_data (env), zframe_size (env));
    return b;
}

/* A connect or disconnect of the publish socket: what went out shortly before may be
 * lost, and what goes out until the bus's subscriptions are back too. Those entries stay
 * in the outbox. */
static void s_watch_publish (qp_service_t *self)
{
    /* Each look costs a poll and a getpid in libzmq: at most every WATCH_MS, well within
     * ACK_DELAY_MS, so acks are still held when an event is seen. */
    int64_t now = zclock_mono ();
    if (now - self->watched < WATCH_MS)
        return;
    self->watched = now;
    bool lost = false;
    while (self->monitor && (zsock_events (self->monitor) & ZMQ_POLLIN)) {
        zmsg_t *m = zmsg_recv (self->monitor);
        zmsg_destroy (&m);
        lost = true;
    }
    if (!lost)
        return;
    self->distrust_until = zclock_mono () + DISTRUST_MS;
    if (self->n_acks)
        qp_log_info ("outbox_kept", "publish socket (re)connected: %zu recent events left for "
                     "the outbox sweeper", self->n_acks);
    for (size_t i = 0; i < self->n_acks; i++)
        free (self->acks[i].data);
    self->n_acks = 0;
}

/* Publishes a member. The evaluation removes it once counted; with QP_OUTBOX_ACK=producer
 * we remember to remove it ourselves (unless publishes are not trusted now). */
static void s_publish_member (qp_service_t *self, zmsg_t **frames_p, qp_store_blob_t member)
{
    zmsg_send (frames_p, self->pub);
    zmsg_destroy (frames_p);
    if (!self->producer_acks) {
        free (member.data);
        return;
    }
    s_watch_publish (self);
    int64_t now = zclock_mono ();
    if (now < self->distrust_until) {
        free (member.data);
        return;
    }
    if (self->n_acks == self->cap_acks) {
        self->cap_acks = self->cap_acks ? 2 * self->cap_acks : 256;
        self->acks = realloc (self->acks, self->cap_acks * sizeof *self->acks);
        self->acks_at = realloc (self->acks_at, self->cap_acks * sizeof *self->acks_at);
        assert (self->acks && self->acks_at);
    }
    self->acks[self->n_acks] = member;
    self->acks_at[self->n_acks++] = now;
}

/* How many of the oldest acks are old enough to trust (at most OUTBOX_BATCH). */
static size_t s_ripe_acks (qp_service_t *self, bool all)
{
    s_watch_publish (self);
    int64_t before = zclock_mono () - ACK_DELAY_MS;
    size_t n = 0;
    while (n < self->n_acks && n < OUTBOX_BATCH && (all || self->acks_at[n] <= before))
        n++;
    return n;
}

/* Forgets the first n acks: Redis has removed them. */
static void s_drop_acks (qp_service_t *self, size_t n)
{
    if (n == 0)
        return; /* acks may be NULL: memmove of NULL is undefined even for 0 bytes */
    for (size_t i = 0; i < n; i++)
        free (self->acks[i].data);
    memmove (self->acks, self->acks + n, (self->n_acks - n) * sizeof *self->acks);
    memmove (self->acks_at, self->acks_at + n, (self->n_acks - n) * sizeof *self->acks_at);
    self->n_acks -= n;
}

/* Removes the trusted acks from the outbox (one command per batch). */
static void s_flush_acks (qp_service_t *self, bool all)
{
    size_t n;
    while (self->outbox && (n = s_ripe_acks (self, all)) > 0) {
        if (qp_store_outbox_remove (self->outbox, self->acks, n) != 0)
            return; /* Redis away: later (the sweeper may publish them again: deduped) */
        s_drop_acks (self, n);
    }
}

/* Publishes again what steps recorded and nobody removed past its deadline (a process
 * killed between a step and its publish, a publish the bus may not have had, an event the
 * evaluation missed: it was down, or Redis was when it got it). At most OUTBOX_BATCH a
 * tick, each claimed for QP_STORE_OUTBOX_REDELIVER_MS: a lagging evaluation's backlog is
 * not published again wholesale. The evaluation reads what it missed from the outbox
 * itself (qp_service_catch_up): its own sweeper claims nothing, and the producers' give it
 * QP_STORE_OUTBOX_REDELIVER_MS first (a member they claim is out of its reach until the
 * claim runs out); with QP_OUTBOX_ACK=producer (no evaluation) they claim at once. */
static void s_outbox_sweep (qp_service_t *self, void *arg)
{
    (void) arg;
    s_flush_acks (self, false);
    if (!self->outbox || !self->pub)
        return;
    long long size = qp_store_outbox_size (self->outbox);
    if (size >= 0) {
        if (!self->outbox_size) {
            char labels[256];
            qp_metrics_labels (labels, sizeof labels, "service", s_label_name (self), NULL);
            self->outbox_size = qp_metrics_gauge (
                "qp_outbox_events", "events recorded in the outbox and not yet counted by the "
                "evaluation (grows while it is down)", labels);
        }
        qp_metric_set (self->outbox_size, (double) size);
    }
    if (self->catch_up)
        return;
    qp_store_blob_t claimed[OUTBOX_BATCH];
    int64_t now = qp_now_ms ();
    int64_t due = self->producer_acks ? now : now - QP_STORE_OUTBOX_REDELIVER_MS;
    size_t n = qp_store_outbox_claim (self->outbox, now, due, claimed, OUTBOX_BATCH);
    for (size_t i = 0; i < n; i++) {
        char *nul = memchr (claimed[i].data, 0, claimed[i].len);
        if (!nul) { /* not ours: drop it so it does not come back every second */
            qp_log_warn ("outbox_malformed", "outbox member of %zu bytes without a type",
                         claimed[i].len);
            qp_store_outbox_remove (self->outbox, &claimed[i], 1);
            free (claimed[i].data);
            continue;
        }
        size_t tlen = (size_t) (nul - (char *) claimed[i].data);
        zmsg_t *m = zmsg_new ();
        zmsg_addmem (m, claimed[i].data, tlen);
        zmsg_addmem (m, nul + 1, claimed[i].len - tlen - 1);
        s_publish_member (self, &m, claimed[i]);
    }
    if (n) /* removed like any publish: with the next step, or at the next tick */
        qp_log_info ("outbox_republish", "published again %zu events left in the outbox", n);
}

int qp_service_publish_durable (qp_service_t *self, qp_redis_t *r, const qp_event_t *events,
                                size_t n)
{
    assert (self->pub);
    if (!n)
        return 0;
    zmsg_t **frames = malloc (n * sizeof *frames);
    qp_store_blob_t *members = malloc (n * sizeof *members);
    const char **argv = malloc ((2 + 2 * n) * sizeof *argv);
    size_t *lens = malloc ((2 + 2 * n) * sizeof *lens);
    assert (frames && members && argv && lens);
    /* the same deadline as a step's events: published again past it unless counted */
    char deadline[24];
    snprintf (deadline, sizeof deadline, "%lld",
              (long long) (qp_now_ms () + QP_STORE_OUTBOX_GRACE_MS));
    argv[0] = "ZADD", lens[0] = 4;
    argv[1] = QP_STORE_OUTBOX_KEY, lens[1] = strlen (QP_STORE_OUTBOX_KEY);
    for (size_t i = 0; i < n; i++) {
        frames[i] = qp_message_build (events[i].payload, &events[i].meta, NULL);
        members[i] = s_member (frames[i]);
        s_count_out (self, events[i].payload);
        argv[2 + 2 * i] = deadline, lens[2 + 2 * i] = strlen (deadline);
        argv[3 + 2 * i] = members[i].data, lens[3 + 2 * i] = members[i].len;
    }
    int rc = -1;
    if (r) {
        qp_service_outbox (self, r);
        redisReply *reply = qp_redis_argv (r, (int) (2 + 2 * n), argv, lens);
        rc = reply && reply->type == REDIS_REPLY_INTEGER ? 0 : -1;
        if (rc)
            qp_log_warn ("outbox_unavailable", "%zu events published without their outbox "
                         "entry (best effort): %s", n,
                         reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "Redis unreachable");
        if (reply)
            freeReplyObject (reply);
    }
    for (size_t i = 0; i < n; i++)
        s_publish_member (self, &frames[i], members[i]);
    free (frames), free (members), free (argv), free (lens);
    return rc;
}

void qp_service_event_stage (qp_service_t *self, qp_redis_t *r, const qp_event_t *event,
                             qp_service_event_t *out)
{
    *out = (qp_service_event_t){NULL, {NULL, 0}};
    if (!self || !self->pub)
        return;
    qp_service_outbox (self, r);
    out->frames = qp_message_build (event->payload, &event->meta, NULL);
    out->member = s_member (out->frames);
    s_count_out (self, event->payload);
}

void qp_service_event_done (qp_service_t *self, qp_service_event_t *staged, bool recorded)
{
    if (!staged->frames)
        return;
    if (recorded)
        s_publish_member (self, &staged->frames, staged->member);
    else {
        zmsg_destroy (&staged->frames);
        free (staged->member.data);
    }
    staged->frames = NULL;
    staged->member = (qp_store_blob_t){NULL, 0};
}

void qp_service_on_undecodable (qp_service_t *self, qp_handler_fn *fn, void *arg)
{
    self->undecodable = fn;
    self->undecodable_arg = arg;
}

void qp_service_outbox (qp_service_t *self, qp_redis_t *r)
{
    if (!self || !r || self->outbox)
        return;
    self->outbox = r;
    if (self->pub)
        qp_service_every (self, OUTBOX_SWEEP_MS, s_outbox_sweep, NULL);
}

typedef struct {
    zmsg_t *frames[QP_SERVICE_MAX_EVENTS];
    qp_store_blob_t members[QP_SERVICE_MAX_EVENTS];
    size_t n;
} staged_t;

/* Builds the events of a step; without a publish socket there is nobody to send them. */
static void s_stage (qp_service_t *self, qp_redis_t *r, const qp_event_t *events, size_t n,
                     staged_t *st)
{
    assert (n <= QP_SERVICE_MAX_EVENTS);
    st->n = 0;
    if (!self || !self->pub)
        return;
    qp_service_outbox (self, r);
    for (size_t i = 0; i < n; i++) {
        st->frames[i] = qp_message_build (events[i].payload, &events[i].meta, NULL);
        st->members[i] = s_member (st->frames[i]);
        s_count_out (self, events[i].payload);
    }
    st->n = n;
}

/* After the step: publish when it applied (the test hook dies first), else discard. */
static void s_after_step (qp_service_t *self, staged_t *st, qp_store_result_t rc, size_t acked)
{
    if (self && rc != QP_STORE_ERROR)
        s_drop_acks (self, acked);
    if (rc == QP_STORE_APPLIED && st->n && self->fault_after && ++self->steps == self->fault_after) {
        qp_log_warn ("fault_injected", "QP_FAULT_AFTER_TRANSITION=%ld: exiting before publishing",
                     self->fault_after);
        _exit (70);
    }
    for (size_t i = 0; i < st->n; i++) {
        if (rc == QP_STORE_APPLIED)
            s_publish_member (self, &st->frames[i], st->members[i]);
        else {
            zmsg_destroy (&st->frames[i]);
            free (st->members[i].data);
        }
    }
}

qp_store_result_t qp_service_create (qp_service_t *self, qp_redis_t *r, const char *id,
                                     const Qp__V1__Dossier *dossier, const char *territory,
                                     int64_t event_time_ms, const char *message_id,
                                     const qp_event_t *events, size_t n_events,
                                     Qp__V1__DossierState *state)
{
    qp_service_creation_t c = {{id, dossier, territory, event_time_ms, message_id, NULL, 0,
                                QP_STORE_ERROR, 0},
                               events, n_events};
    qp_service_creates (self, r, &c, 1);
    if (state)
        *state = c.creation.state;
    return c.creation.result;
}

size_t qp_service_creates (qp_service_t *self, qp_redis_t *r, qp_service_creation_t *creations,
                           size_t n)
{
    if (!n)
        return 0;
    staged_t *st = malloc (n * sizeof *st);
    qp_store_creation_t *cs = malloc (n * sizeof *cs);
    assert (st && cs);
    for (size_t i = 0; i < n; i++) {
        s_stage (self, r, creations[i].events, creations[i].n_events, &st[i]);
        cs[i] = creations[i].creation;
        cs[i].events = st[i].members, cs[i].n_events = st[i].n, cs[i].result = QP_STORE_ERROR;
    }
    size_t acked = self && self->outbox == r ? s_ripe_acks (self, false) : 0;
    size_t applied = qp_store_creates (r, cs, n, acked ? self->acks : NULL, acked);
    /* The acks rode with the first creation: dropped (or kept) before anything is
     * published. */
    for (size_t i = 0; i < n; i++) {
        creations[i].creation.result = cs[i].result;
        creations[i].creation.state = cs[i].state;
        s_after_step (self, &st[i], cs[i].result, i ? 0 : acked);
    }
    free (st), free (cs);
    return applied;
}

qp_store_result_t qp_service_transition (qp_service_t *self, qp_redis_t *r, const char *id,
                                         Qp__V1__DossierState expected,
                                         Qp__V1__DossierState next, int64_t at_ms,
                                         const char *message_id, const char *note,
                                         const qp_store_field_t *fields, size_t n_fields,
                                         const qp_event_t *events, size_t n_events,
                                         Qp__V1__DossierState *state)
{
    qp_service_step_t step = {.step = {.id = id,
                                       .expected = expected,
                                       .next = next,
                                       .at_ms = at_ms,
                                       .message_id = message_id,
                                       .note = note,
                                       .fields = fields,
                                       .n_fields = n_fields},
                              .events = events,
                              .n_events = n_events};
    qp_service_transitions (self, r, &step, 1);
    if (state)
        *state = step.step.state;
    return step.step.result;
}

size_t qp_service_transitions (qp_service_t *self, qp_redis_t *r, qp_service_step_t *steps,
                               size_t n)
{
    if (!n)
        return 0;
    staged_t *st = malloc (n * sizeof *st);
    qp_store_step_t *ss = malloc (n * sizeof *ss);
    assert (st && ss);
    for (size_t i = 0; i < n; i++) {
        s_stage (self, r, steps[i].events, steps[i].n_events, &st[i]);
        ss[i] = steps[i].step;
        ss[i].events = st[i].members, ss[i].n_events = st[i].n, ss[i].result = QP_STORE_ERROR;
    }
    size_t acked = self && self->outbox == r ? s_ripe_acks (self, false) : 0;
    size_t applied = qp_store_transitions (r, ss, n, acked ? self->acks : NULL, acked);
    /* The acks rode with the first step: dropped (or kept) before anything is published. */
    for (size_t i = 0; i < n; i++) {
        steps[i].step.result = ss[i].result;
        steps[i].step.state = ss[i].state;
        s_after_step (self, &st[i], ss[i].result, i ? 0 : acked);
    }
    free (st), free (ss);
    return applied;
}

static handler_t *s_find (handler_t *table, size_t n, const ProtobufCMessageDescriptor *d)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].type == d)
            return &table[i];
    return NULL;
}

/* Runs handler h on req, timed and counted. */
static void s_call (qp_service_t *self, handler_t *h, qp_request_t *req)
{
    int64_t start = zclock_usecs ();
    h->fn (req, h->arg);
    qp_metric_observe (h->latency, (double) (zclock_usecs () - start) / 1e6);
    qp_metric_add (h->in, 1);
    self->handled++;
}

/* Handles the next frame set waiting from the bus; false when none was waiting. */
static bool s_on_work (qp_service_t *self)
{
    qp_bus_frame_t f;
    int rc = qp_bus_client_recv_nowait (self->bus, &f);
    if (rc != 0)
        return rc < 0; /* a frame set the bus should not have sent was read (dropped) */
    self->bus_seen = zclock_mono ();
    if (!strcmp (f.kind, QPB_ERROR)) {
        s_count_error (self, f.error_code ? f.error_code : "bus_error");
        qp_log_warn ("bus_error", "bus refused a frame set: %s: %s", f.error_code ? f.error_code : "",
                     f.text ? f.text : "");
        qp_bus_frame_clear (&f);
        return true;
    }
    if (strcmp (f.kind, QPB_DELIVER) != 0) {
        qp_bus_frame_clear (&f);
        return true;
    }
    qp_request_t req = {.service = self, .from = f.from};
    qp_error_t err;
    if (qp_message_decode (f.type, f.envelope, &req.msg, &err) != 0) {
        qp_log_warn ("message_refused", "%s: %s", err.code, err.message);
        s_send_error (self, f.from, &err, NULL, NULL, 0);
    } else {
        handler_t *h = s_find (self->work, self->n_work, req.msg.descriptor);
        if (h)
            s_call (self, h, &req);
        else if (req.msg.descriptor == &qp__v1__error__descriptor) {
            /* Never answer an Error with an Error: two peers that handle neither would
             * bounce them for ever. */
            Qp__V1__Error *e = (Qp__V1__Error *) req.msg.payload;
            qp_log_warn ("error_received", "unsolicited error %s: %s", e->code ? e->code : "",
                         e->message ? e->message : "");
            s_count_error (self, "unsolicited_error");
        } else {
            qp_error_set (&err, "unknown_type", "type", "service %s does not handle %s",
                          self->name ? self->name : qp_log_program (), req.msg.descriptor->name);
            qp_log_warn ("message_refused", "%s", err.message);
            qp_service_reply_error (&req, &err);
        }
    }
    qp_message_clear (&req.msg);
    if (f.work) /* handled, refused or queued by the handler: the bus may send more */
        qp_bus_client_done (self->bus);
    qp_bus_frame_clear (&f);
    return true;
}

static void s_shard_beat (qp_service_t *self, void *arg)
{
    (void) arg;
    qp_shard_beat (self->shard, qp_now_ms ());
}

void qp_service_shard_events (qp_service_t *self, qp_redis_t *redis, const char *key_prefix,
                              const char *group)
{
    assert (!self->shard);
    self->shard = qp_shard_new (redis, key_prefix, group);
    assert (self->shard);
    qp_shard_beat (self->shard, qp_now_ms ());
    qp_service_every (self, 1000, s_shard_beat, NULL);
    char labels[128];
    qp_metrics_labels (labels, sizeof labels, "service", s_label_name (self), NULL);
    self->m_skipped = qp_metrics_counter (
        "qp_service_events_skipped_total",
        "events left to another live instance of the shard group (common/qp_shard.h)", labels);
}

/* Whether the shard group leaves event msg (envelope env) to us: by its dossier_id when
 * its type has one, else by its envelope's bytes. */
static bool s_event_mine (qp_service_t *self, const qp_message_t *msg, zframe_t *env)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name (msg->descriptor, "dossier_id");
    if (f && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
        const char *id = *(const char *const *) ((const char *) msg->payload + f->offset);
        if (id && *id)
            return qp_shard_mine (self->shard, id, strlen (id));
    }
    return qp_shard_mine (self->shard, zframe_data (env), zframe_size (env));
}

/* Hands event frames m (type, envelope) to its subscribed handler. Returns whether a
 * handler had it (not: undecodable, another instance's, a probe). */
static bool s_dispatch_event (qp_service_t *self, zmsg_t *m)
{
    zframe_t *type = zmsg_first (m);
    if (zmsg_size (m) != 2 || zframe_streq (type, self->probe_topic))
        return false;
    bool handled = false;
    /* Another instance's event is skipped before it is decoded: its dossier id is read
     * off the wire (half the events at two instances, and decoding is most of what
     * skipping an event cost). Its owner decodes it, and reports it if it is bad. */
    const uint8_t *id = NULL;
    size_t id_len = 0;
    int peeked = self->shard ? qp_message_peek_payload_string (type, zmsg_last (m), "dossier_id",
                                                               &id, &id_len)
                             : -1;
    bool by_id = peeked == 1 && id_len > 0; /* else by the decoded message, as before */
    if (by_id && !qp_shard_mine (self->shard, id, id_len)) {
        qp_metric_add (self->m_skipped, 1);
        return false;
    }
    qp_request_t req = {.service = self, .from = NULL, .frames = m};
    qp_error_t err;
    if (qp_message_decode (type, zmsg_last (m), &req.msg, &err) != 0) {
        qp_log_warn ("event_refused", "%s: %s", err.code, err.message);
        s_count_error (self, err.code);
        if (self->undecodable)
            self->undecodable (&req, self->undecodable_arg);
    } else if (self->shard && !by_id && !s_event_mine (self, &req.msg, zmsg_last (m))) {
        qp_metric_add (self->m_skipped, 1); /* its owner counts and acknowledges it */
    } else {
        handler_t *h = s_find (self->events, self->n_events, req.msg.descriptor);
        if (h) {
            s_call (self, h, &req);
            handled = true;
        }
    }
    qp_message_clear (&req.msg);
    return handled;
}

/* Handles the next event waiting; false when none was waiting. */
static bool s_on_event (qp_service_t *self)
{
    zmsg_t *m = zmsg_recv_nowait (self->sub);
    if (!m)
        return false;
    s_dispatch_event (self, m);
    zmsg_destroy (&m);
    return true;
}

/* ---- Catching up from the outbox (qp_service_catch_up) ------------------------------- */

void qp_service_catch_up (qp_service_t *self, qp_redis_t *r)
{
    assert (self->sub);
    self->catch_up = r;
    char labels[128];
    qp_metrics_labels (labels, sizeof labels, "service", s_label_name (self), NULL);
    self->m_caught_up = qp_metrics_counter (
        "qp_service_events_caught_up_total",
        "events read from the outbox after the bus dropped them (qp_service_catch_up)", labels);
}

static bool s_at_from (const qp_service_t *self, const qp_store_blob_t *b)
{
    for (size_t i = 0; i < self->n_at_from; i++)
        if (self->at_from[i].len == b->len && !memcmp (self->at_from[i].data, b->data, b->len))
            return true;
    return false;
}

static void s_forget_at_from (qp_service_t *self)
{
    for (size_t i = 0; i < self->n_at_from; i++)
        free (self->at_from[i].data);
    free (self->at_from);
    self->at_from = NULL;
    self->n_at_from = 0;
}

/* One page of a catch-up pass (the receive pipe is empty). Reads the members past their
 * deadline from where the last page ended, hands over those not handed over yet, and ends
 * the pass at a short page (or when Redis fails: the next pass starts over). */
static void s_catch_up_page (qp_service_t *self)
{
    if (!self->catching_up) {
        if (zclock_mono () < self->catch_up_next)
            return;
        self->catching_up = true;
        self->catch_up_from = 0;
        self->pass_counted = 0;
        s_forget_at_from (self);
    }
    size_t want = CATCH_UP_PAGE + self->n_at_from;
    qp_store_blob_t *page = malloc (want * sizeof *page);
    int64_t *scores = malloc (want * sizeof *scores);
    assert (page && scores);
    long n = qp_store_outbox_page (self->catch_up, self->catch_up_from, qp_now_ms (), page,
                                   scores, want);
    size_t handed = 0, counted = 0;
    for (long i = 0; i < n; i++) {
        if (scores[i] == self->catch_up_from && s_at_from (self, &page[i]))
            continue; /* the last page's */
        char *nul = memchr (page[i].data, 0, page[i].len);
        if (!nul)
            continue; /* not a member a step wrote: the sweepers remove it */
        size_t tlen = (size_t) (nul - (char *) page[i].data);
        zmsg_t *m = zmsg_new ();
        zmsg_addmem (m, page[i].data, tlen);
        zmsg_addmem (m, nul + 1, page[i].len - tlen - 1);
        counted += s_dispatch_event (self, m);
        zmsg_destroy (&m);
        handed++;
    }
    if (counted)
        qp_metric_add (self->m_caught_up, (double) counted);
    self->pass_counted += counted;
    if (n > 0) { /* the next page starts at the last deadline seen: remember its members */
        int64_t last = scores[n - 1];
        if (last != self->catch_up_from)
            s_forget_at_from (self);
        self->catch_up_from = last;
        for (long i = 0; i < n; i++)
            if (scores[i] == last && !s_at_from (self, &page[i])) {
                self->at_from = realloc (self->at_from,
                                         (self->n_at_from + 1) * sizeof *self->at_from);
                assert (self->at_from);
                self->at_from[self->n_at_from++] = page[i];
                page[i].data = NULL;
            }
    }
    for (long i = 0; i < n; i++)
        free (page[i].data);
    free (page);
    free (scores);
    if (n < 0 || (size_t) n < want || !handed) { /* the end (or Redis away): later */
        self->catching_up = false;
        self->catch_up_next = zclock_mono () + CATCH_UP_IDLE_MS;
        s_forget_at_from (self);
        if (self->pass_counted)
            qp_log_info ("outbox_caught_up", "read %zu events back from the outbox",
                         self->pass_counted);
        if (n > 0 && handed == 0 && (size_t) n == want)
            qp_log_warn ("catch_up_stuck", "%zu outbox members share deadline %lld: the pass "
                         "starts over", want, (long long) self->catch_up_from);
    }
}

/* Subscriptions travel asynchronously to the bus: before announcing readiness, publish a
 * probe to ourselves until it comes back, so no event is missed after READY. */
static void s_wait_subscriptions (qp_service_t *self)
{
    if (!self->sub || !self->pub || !self->n_events)
        return;
    snprintf (self->probe_topic, sizeof self->probe_topic, "qp.probe.%d.%p", (int) getpid (),
              (void *) self);
    zsock_set_subscribe (self->sub, self->probe_topic);
    zpoller_t *poller = zpoller_new (self->sub, NULL);
    bool seen = false;
    for (int i = 0; i < 100 && !seen && !zsys_interrupted; i++) {
        zsock_send (self->pub, "ss", self->probe_topic, "");
        if (zpoller_wait (poller, 100)) {
            zmsg_t *m = zmsg_recv (self->sub);
            seen = m && zframe_streq (zmsg_first (m), self->probe_topic);
            zmsg_destroy (&m);
        }
    }
    zpoller_destroy (&poller);
    zsock_set_unsubscribe (self->sub, self->probe_topic);
    if (!seen)
        qp_log_warn ("subscribe_slow", "event subscriptions not confirmed after 10 s");
}

/* Ready while the bus answered within three heartbeats (with HTTP on, every heartbeat
 * also asks the bus for STATUS, so a quiet worker still hears from it). */
static void s_health (qp_service_t *self, int64_t now)
{
    qp_health_tick ();
    qp_health_check ("bus", self->bus_seen && now - self->bus_seen <= 3 * QPB_HEARTBEAT_MS);
}

int qp_service_run (qp_service_t *self)
{
    bool http = qp_config_setting ("http") && qp_health_start (qp_config_setting ("http")) >= 0;
    if (http)
        qp_health_check ("bus", false);
    s_wait_subscriptions (self);
    if (self->name) {
        qp_bus_client_ready (self->bus, self->name);
        qp_log_info ("service_ready", "serving %s", self->name);
    }
    if (http)
        zsock_send (qp_bus_client_socket (self->bus), "ss", QPB_PROTOCOL, QPB_STATUS);
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (self->bus), NULL);
    if (self->sub)
        zpoller_add (poller, self->sub);
    int64_t next_beat = zclock_mono () + QPB_HEARTBEAT_MS;
    while (!self->stop && !zsys_interrupted) {
        int64_t now = zclock_mono ();
        int wait = (int) (next_beat - now);
        for (size_t i = 0; i < self->n_timers; i++)
            if (self->timers[i].next - now < wait)
                wait = (int) (self->timers[i].next - now);
        if (self->catching_up)
            wait = 0; /* the next page at once, after whatever is waiting */
        void *which = zpoller_wait (poller, wait < 0 ? 0 : wait);
        bool drained = !which; /* nothing waiting in the receive pipe */
        if (which == qp_bus_client_socket (self->bus)) {
            /* Drain a batch before timers so a busy worker still heartbeats; read until
             * nothing is left rather than asking ZMQ_EVENTS before each read (a poll and
             * a getpid each in libzmq). */
            for (int i = 0; i < BURST_MAX && s_on_work (self); i++)
                ;
        } else if (which && which == self->sub) {
            int i = 0;
            while (i < BURST_MAX && s_on_event (self))
                i++;
            drained = i < BURST_MAX;
        } else if (zpoller_terminated (poller) && (zsys_interrupted || zmq_errno () != EINTR))
            break; /* a signal other than SIGINT/SIGTERM (SIGHUP: reload) only wakes us */
        if (self->catch_up && drained)
            s_catch_up_page (self);
        if (which || self->catching_up)
            for (size_t i = 0; i < self->n_after_burst; i++)
                self->after_burst[i].fn (self, self->after_burst[i].arg);
        now = zclock_mono ();
        if (now >= next_beat) {
            qp_bus_client_heartbeat (self->bus);
            if (http)
                zsock_send (qp_bus_client_socket (self->bus), "ss", QPB_PROTOCOL, QPB_STATUS);
            next_beat = now + QPB_HEARTBEAT_MS;
        }
        if (http)
            s_health (self, now);
        for (size_t i = 0; i < self->n_timers; i++)
            if (now >= self->timers[i].next) {
                self->timers[i].fn (self, self->timers[i].arg);
                self->timers[i].next = zclock_mono () + self->timers[i].interval_ms;
            }
    }
    zpoller_destroy (&poller);
    s_flush_acks (self, true); /* an orderly stop leaves nothing for the sweeper */
    if (http)
        qp_health_check ("bus", false);
    qp_bus_client_bye (self->bus);
    qp_log_info ("service_stopping", "handled %llu messages", (unsigned long long) self->handled);
    return 0;
}
