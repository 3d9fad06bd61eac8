/* A worker service: connects to the bus, registers under its name, decodes every frame
 * set (answering a malformed one with a qp.v1.Error and carrying on), dispatches work
 * and events to handlers by payload type, runs timers, and stops cleanly on SIGINT or
 * SIGTERM (the message in hand is finished; anything not yet acknowledged in Redis is
 * found again by the pending-lease sweeper). */
#ifndef QP_SERVICE_H
#define QP_SERVICE_H
#include "qp_bus.h"
#include "qp_config.h"
#include "qp_message.h"
#include "qp_store.h"

typedef struct qp_service qp_service_t;

typedef struct {
    qp_service_t *service;
    zframe_t *from;    /* work: the sending peer (to reply to); NULL for an event */
    qp_message_t msg;  /* decoded envelope and payload */
    zmsg_t *frames;    /* an event: the frame set as received (type, envelope), which
                          with a NUL between is its outbox member; NULL for work */
} qp_request_t;

typedef void (qp_handler_fn) (qp_request_t *req, void *arg);
typedef void (qp_timer_fn) (qp_service_t *service, void *arg);

/* name: the work service name ("intake"); NULL for a program that only subscribes or
 * only sends. endpoint: the bus work (or partner) endpoint. publish/subscribe may be NULL. */
qp_service_t *qp_service_new (const char *name, const char *endpoint, const char *publish,
                              const char *subscribe);
void qp_service_destroy (qp_service_t **self_p);

void qp_service_on (qp_service_t *self, const ProtobufCMessageDescriptor *type,
                    qp_handler_fn *handler, void *arg);
void qp_service_subscribe (qp_service_t *self, const ProtobufCMessageDescriptor *type,
                           qp_handler_fn *handler, void *arg);
void qp_service_every (qp_service_t *self, int interval_ms, qp_timer_fn *timer, void *arg);
/* fn runs after each burst the service reads (what was waiting on a socket, up to 256
 * messages), before it waits again: a service that handles messages together flushes
 * there, so a lone message waits for nothing and a burst still makes one batch. */
void qp_service_after_burst (qp_service_t *self, qp_timer_fn *fn, void *arg);

/* Instances that all subscribe to the same events split them (common/qp_shard.h): each
 * handles the events of the dossiers that fall on its place in group (a sorted set at
 * key_prefix + group, beaten every second through redis, which must outlive self) and
 * leaves the others' alone. For the evaluation, whose instances would otherwise all count
 * every event (each fact once, the others' work wasted). */
void qp_service_shard_events (qp_service_t *self, qp_redis_t *redis, const char *key_prefix,
                              const char *group);

/* The subscriber of the outbox (the evaluation) also reads what it missed from the
 * outbox itself: its receive pipe holds at most QP_EVENT_PIPE events (setting
 * "event-pipe", default QP_SERVICE_EVENT_PIPE) and the bus as many for it, so a burst it
 * cannot follow is dropped there instead of growing its memory without bound; those events
 * stay in the outbox. Whenever the pipe is empty, at most every second, it pages through
 * the members past their deadline (QP_STORE_OUTBOX_GRACE_MS after their step: not in
 * flight any more) without claiming them, and hands each to its subscribed handler as if
 * the bus had delivered it (shard filter included); the handler's acknowledgement removes
 * it. The sweepers' republishing (256 a second each) stays for the other cases. */
#define QP_SERVICE_EVENT_PIPE 4096
void qp_service_catch_up (qp_service_t *self, qp_redis_t *r);

/* With probes on (QP_HTTP), PINGs Redis every second so /readyz sees Redis go away (and
 * come back) while the service is idle: otherwise only a failed command would say so. */
void qp_service_watch_redis (qp_service_t *self, qp_redis_t *r);

/* Runs until interrupted (or qp_service_stop). Returns 0. */
int qp_service_run (qp_service_t *self);
void qp_service_stop (qp_service_t *self);

/* Answers the peer that sent req. */
void qp_service_reply (qp_request_t *req, const ProtobufCMessage *payload, const qp_meta_t *meta);
void qp_service_reply_error (qp_request_t *req, const qp_error_t *err);
/* Work to exactly one worker of to_service. */
void qp_service_send (qp_service_t *self, const char *to_service, const ProtobufCMessage *payload,
                      const qp_meta_t *meta);
/* An event to every subscriber. */
void qp_service_publish (qp_service_t *self, const ProtobufCMessage *payload, const qp_meta_t *meta);

uint64_t qp_service_handled (const qp_service_t *self);

/* ---- Store steps with their events (the outbox, qp_store.h) ----------------------------
 * An event that reports a step goes out if and only if the step applied, even when this
 * process dies right after the step: it is written into the Redis outbox by the step's
 * own script, published at once, and removed later (piggybacked on the next step, or by
 * the service's timer); entries left behind are published again by the outbox sweeper of
 * any instance. Events carry deterministic ids: subscribers dedupe by message id.
 *
 * Test hook: QP_FAULT_AFTER_TRANSITION=N makes the process _exit (70) right after its
 * Nth step that records events, before publishing them (tests/integration/test_outbox.c). */
#define QP_SERVICE_MAX_EVENTS 32 /* events recorded with one step (funding's closing step:
                                     a settlement per leg, up to 16, and the DossierClosed) */

typedef struct {
    const ProtobufCMessage *payload;
    qp_meta_t meta;
} qp_event_t;

/* qp_store_create, and events (e.g. DossierReceived) published when it applies. */
qp_store_result_t qp_service_create (qp_service_t *self, qp_redis_t *r, const char *id,
                                     const Qp__V1__Dossier *dossier, const char *territory,
                                     int64_t event_time_ms, const char *message_id,
                                     const qp_event_t *events, size_t n_events,
                                     Qp__V1__DossierState *state);
/* One creation of qp_service_creates: qp_service_create's arguments and answer. */
typedef struct {
    qp_store_creation_t creation; /* the creation, and its answer in creation.result and
                                     creation.state; creation.events is not read: events
                                     are staged into it */
    const qp_event_t *events;     /* n_events <= QP_SERVICE_MAX_EVENTS */
    size_t n_events;
} qp_service_creation_t;

/* n qp_service_create in one Redis round trip (qp_store_creates): each creation is
 * guarded and applied on its own with its events recorded in the outbox (a second one of
 * the same id is ALREADY), and the events of the creations that applied are published,
 * in order, after the round trip. qp_service_create is the case n = 1. Returns how many
 * applied. */
size_t qp_service_creates (qp_service_t *self, qp_redis_t *r, qp_service_creation_t *creations,
                           size_t n);
/* qp_store_transition, and events (e.g. DossierClosed) published when it applies.
 * n_events <= QP_SERVICE_MAX_EVENTS (for both functions). */
qp_store_result_t qp_service_transition (qp_service_t *self, qp_redis_t *r, const char *id,
                                         Qp__V1__DossierState expected,
                                         Qp__V1__DossierState next, int64_t at_ms,
                                         const char *message_id, const char *note,
                                         const qp_store_field_t *fields, size_t n_fields,
                                         const qp_event_t *events, size_t n_events,
                                         Qp__V1__DossierState *state);
/* One step of qp_service_transitions: qp_service_transition's arguments and answer. */
typedef struct {
    qp_store_step_t step;     /* the step, and its answer in step.result and step.state;
                                 step.events is not read: events are staged into it */
    const qp_event_t *events; /* n_events <= QP_SERVICE_MAX_EVENTS */
    size_t n_events;
} qp_service_step_t;

/* n qp_service_transition in one Redis round trip (qp_store_transitions): each step is
 * guarded and applied on its own with its events recorded in the outbox, and the events
 * of the steps that applied are published, in order, after the round trip. Returns how
 * many applied. */
size_t qp_service_transitions (qp_service_t *self, qp_redis_t *r, qp_service_step_t *steps,
                               size_t n);
/* Runs the outbox sweeper (every second) on r from now on; the first
 * qp_service_create/qp_service_transition does it too. */
void qp_service_outbox (qp_service_t *self, qp_redis_t *r);
/* Events that report no store step of a script (a refusal stores nothing): written to
 * the outbox with one ZADD (the member as a step records it), then published, so a
 * subscriber that was away gets them from the sweeper. Returns 0, or -1 when Redis failed
 * or r is NULL: the events are published all the same, best effort. */
int qp_service_publish_durable (qp_service_t *self, qp_redis_t *r, const qp_event_t *events,
                                size_t n);
/* An event recorded by a script of the caller's own with the write it reports (a funding
 * leg; a follow-up, follow_up_store.lua): the script ZADDs member to QP_STORE_OUTBOX_KEY,
 * deadline now + QP_STORE_OUTBOX_GRACE_MS. stage builds its frames and member (none
 * without a publish socket: member.data NULL), done publishes it when the script recorded
 * it, else drops it. */
typedef struct {
    zmsg_t *frames;
    qp_store_blob_t member;
} qp_service_event_t;
void qp_service_event_stage (qp_service_t *self, qp_redis_t *r, const qp_event_t *event,
                             qp_service_event_t *out);
void qp_service_event_done (qp_service_t *self, qp_service_event_t *staged, bool recorded);
/* fn is called with an event of a subscribed type that does not decode (req->msg empty,
 * req->frames as received), after it is logged and counted as an error: the evaluation
 * removes its outbox member, which would otherwise come back from the sweeper forever. */
void qp_service_on_undecodable (qp_service_t *self, qp_handler_fn *fn, void *arg);
#endif
