/* The dossier store: each dossier's state machine and history in Redis.
 *
 *   qp:{ID}:d        hash: state, territory, event_time_ms, source_msg (id of the
 *                    submission message), dossier (packed qp.v1.Dossier: channel,
 *                    channel_key, submitted_on are read there), and what each step
 *                    adds (eligibility, request, settlement, final_reason, committed_cents)
 *                    The history is the field h: a packed qp.v1.History, oldest first (a
 *                    note every dossier repeats is stored by number, stored_note, a hex
 *                    message id as its 16 bytes, stored_message_id; qp_store_status puts
 *                    them back). Scripts append an entry by concatenation.
 *   qp:{ID}:h        list of packed qp.v1.Transition: the history of a dossier stored
 *                    before issue 8 (read before the field h; no longer written)
 *   qp:pending:STATE sorted set id -> lease deadline (ms) for each non-terminal state
 *   qp:pending:outbox sorted set: events recorded with the step they report (member: type,
 *                    NUL, packed Envelope), score: when a sweeper may publish it again (ms)
 *
 * Every write is one Lua script guarded by the expected current state, so a duplicate
 * message is a no-op. The pending sets let a sweeper find work that a dead worker or a
 * lost message left behind (docs/architecture.md). */
#ifndef QP_STORE_H
#define QP_STORE_H
#include "qp_message.h"
#include "qp_redis.h"

#define QP_STORE_LEASE_MS 10000 /* a step not done within this is re-dispatched */

/* A field written along with a transition (binary-safe value). */
typedef struct {
    const char *name;
    const void *value;
    size_t len;
} qp_store_field_t;

typedef enum {
    QP_STORE_APPLIED = 1,   /* the step happened now */
    QP_STORE_ALREADY = 0,   /* the dossier was not in the expected state: nothing changed */
    QP_STORE_UNKNOWN = -1,  /* no such dossier */
    QP_STORE_ERROR = -2,    /* Redis unreachable or refused: retry later */
} qp_store_result_t;

/* State name as in the proto enum ("RECEIVED"), and back (0 when unknown). */
const char *qp_store_state_name (Qp__V1__DossierState state);
Qp__V1__DossierState qp_store_state_parse (const char *name);
bool qp_store_state_terminal (Qp__V1__DossierState state);

/* Dossier id for a submission: hex hash of (channel, key). */
void qp_store_dossier_id (char out[QP_ID_HEX + 1], const char *channel, const char *key);

/* Stores a new dossier in RECEIVED (pending for eligibility). *state gets the state the
 * dossier is in when it already existed. */
qp_store_result_t qp_store_create (qp_redis_t *r, const char *id, const Qp__V1__Dossier *dossier,
                                   const char *territory, int64_t event_time_ms,
                                   const char *message_id, Qp__V1__DossierState *state);

/* expected -> next, writing the extra fields, appending to the history, moving the
 * dossier between pending sets (out of them for a terminal state). *state gets the
 * current state when not applied. */
qp_store_result_t qp_store_transition (qp_redis_t *r, const char *id,
                                       Qp__V1__DossierState expected, Qp__V1__DossierState next,
                                       int64_t at_ms, const char *message_id, const char *note,
                                       const qp_store_field_t *fields, size_t n_fields,
                                       Qp__V1__DossierState *state);

/* Reads one field (binary-safe). Returns a malloc'd buffer (NUL-terminated for
 * convenience) and its length, or NULL when absent or on error. */
char *qp_store_get (qp_redis_t *r, const char *id, const char *field, size_t *len);

/* Reads n fields in one round trip (HMGET): values[i] as qp_store_get (malloc'd, NULL when
 * absent), lens[i] its length (lens may be NULL). Returns 0, or -1 on a Redis error (then
 * every value is NULL). */
int qp_store_get_fields (qp_redis_t *r, const char *id, const char *const *names, size_t n,
                         char **values, size_t *lens);

/* Reads the state and history for a status query. Returns 0 and fills reply (free with
 * qp_store_status_clear), or -1 on a Redis error. reply->found is false when unknown. */
int qp_store_status (qp_redis_t *r, const char *id, Qp__V1__DossierStatusReply *reply);
void qp_store_status_clear (Qp__V1__DossierStatusReply *reply);

/* ---- Stored forms that repeat less (issue 8, docs/operations.md) --------------------
 * The eligibility decision is stored with each scheme's catalogue_version without the
 * scheme id it starts with ("cfe-qpv-2025.1" of scheme cfe-qpv is stored "-2025.1"), and
 * the settlement without its reason (the hash's final_reason, same text). Every other
 * field is as published. qp_store_status puts both back; a reader of the eligibility field
 * calls qp_store_decision_expand. A record stored before reads as it is. */
/* A history entry as stored (malloc'd, *len bytes): what a script appends to the field h
 * of qp:{ID}:d (funding's steps, funding_leg.lua). */
uint8_t *qp_store_history_pack (const Qp__V1__Transition *t, size_t *len);
/* The decision as stored (malloc'd, *len bytes). */
uint8_t *qp_store_decision_pack (const Qp__V1__EligibilityDecided *e, size_t *len);
/* Puts back the catalogue versions of a stored decision (unpacked with the NULL
 * allocator): each is malloc'd, the stored one freed. */
void qp_store_decision_expand (Qp__V1__EligibilityDecided *e);

/* Claims up to limit dossiers of the pending set of state whose lease expired (their
 * lease is pushed forward). Returns the number of ids written to ids (each malloc'd). */
size_t qp_store_claim_expired (qp_redis_t *r, Qp__V1__DossierState state, int64_t now_ms,
                               char **ids, size_t limit);

/* ---- The outbox (docs/architecture.md) -----------------------------------------------
 * An event is written by the same script as the step it reports, so a process killed
 * between the step and its publish loses nothing: the service publishes it at once; the
 * evaluation, its subscriber, removes it with the batch that counts it (eval_apply.lua),
 * so an event it missed (it was down, or Redis was when it got it) stays. A sweeper of
 * any instance publishes entries left past their deadline again. Subscribers dedupe.
 * With QP_OUTBOX_ACK=producer (no evaluation deployed) the producer removes what it
 * published instead (its next step carries the removals, or its timer within a second).
 * qp_service_create/qp_service_transition do all this. */
#define QP_STORE_OUTBOX_KEY "qp:pending:outbox"
#define QP_STORE_OUTBOX_GRACE_MS 5000 /* an entry not removed within this is published again */
#define QP_STORE_OUTBOX_REDELIVER_MS 30000 /* and then again this long after each claim: a
                                              lagging evaluation's backlog is not
                                              republished every few seconds */

/* A binary value: an outbox member. */
typedef struct {
    void *data;
    size_t len;
} qp_store_blob_t;

/* qp_store_create, recording events in the outbox with the creation (only when it
 * applies) and removing acks (members already published) in the same script. */
qp_store_result_t qp_store_create_with_events (qp_redis_t *r, const char *id,
                                               const Qp__V1__Dossier *dossier,
                                               const char *territory, int64_t event_time_ms,
                                               const char *message_id,
                                               const qp_store_blob_t *events, size_t n_events,
                                               const qp_store_blob_t *acks, size_t n_acks,
                                               Qp__V1__DossierState *state);
/* One creation of qp_store_creates: the arguments of qp_store_create_with_events, and its
 * answer (result, and state as *state there). */
typedef struct {
    const char *id;
    const Qp__V1__Dossier *dossier;
    const char *territory;
    int64_t event_time_ms;
    const char *message_id;
    const qp_store_blob_t *events;
    size_t n_events;
    qp_store_result_t result;   /* out */
    Qp__V1__DossierState state; /* out */
} qp_store_creation_t;

/* n qp_store_create_with_events in one round trip (pipelined): each creation is still its
 * own script, guarded on its own (the dossier must not exist) and recording its events
 * with it; Redis runs them in order, so a second creation of the same id in the batch is
 * ALREADY, as it would be one after the other. acks are removed with the first creation.
 * A call whose reply a lost connection took is sent again (the guard makes that safe);
 * Redis unreachable: QP_STORE_ERROR for each call left without a reply. Returns how many
 * applied. */
size_t qp_store_creates (qp_redis_t *r, qp_store_creation_t *creations, size_t n,
                         const qp_store_blob_t *acks, size_t n_acks);
/* qp_store_transition, the same way. */
qp_store_result_t qp_store_transition_with_events (
    qp_redis_t *r, const char *id, Qp__V1__DossierState expected, Qp__V1__DossierState next,
    int64_t at_ms, const char *message_id, const char *note, const qp_store_field_t *fields,
    size_t n_fields, const qp_store_blob_t *events, size_t n_events, const qp_store_blob_t *acks,
    size_t n_acks, Qp__V1__DossierState *state);
/* One step of qp_store_transitions: the arguments of qp_store_transition_with_events, and
 * its answer (result, and state as *state there). */
typedef struct {
    const char *id;
    Qp__V1__DossierState expected, next;
    int64_t at_ms;
    const char *message_id, *note;
    const qp_store_field_t *fields;
    size_t n_fields;
    const qp_store_blob_t *events;
    size_t n_events;
    qp_store_result_t result;   /* out */
    Qp__V1__DossierState state; /* out */
} qp_store_step_t;

/* n qp_store_transition_with_events in one round trip (pipelined): each step is still
 * its own script, guarded by its expected state and recording its events with it; steps
 * do not depend on each other (one refused leaves the others as they are). acks are
 * removed with the first step. Returns how many applied. */
size_t qp_store_transitions (qp_redis_t *r, qp_store_step_t *steps, size_t n,
                             const qp_store_blob_t *acks, size_t n_acks);
/* Removes published members (one command). 0, or -1 when Redis failed. */
int qp_store_outbox_remove (qp_redis_t *r, const qp_store_blob_t *acks, size_t n);
/* Claims up to limit members whose deadline is at most due_ms (now_ms: past their
 * deadline), pushing it to now_ms + QP_STORE_OUTBOX_REDELIVER_MS, so two sweepers do not
 * publish them at once and a member nobody removes comes back at that pace. Returns how
 * many; out[i].data is malloc'd. */
size_t qp_store_outbox_claim (qp_redis_t *r, int64_t now_ms, int64_t due_ms,
                              qp_store_blob_t *out, size_t limit);
/* Reads, without claiming, up to limit members whose deadline (score) is in
 * [min_score, max_score], oldest first, with their scores (scores may be NULL). The
 * evaluation's catch-up pages through what it missed with this (qp_service_catch_up).
 * Returns how many, or -1 when Redis failed; out[i].data is malloc'd. */
long qp_store_outbox_page (qp_redis_t *r, int64_t min_score, int64_t max_score,
                           qp_store_blob_t *out, int64_t *scores, size_t limit);
/* Members in the outbox (ZCARD), or -1 when Redis failed. */
long long qp_store_outbox_size (qp_redis_t *r);
#endif
