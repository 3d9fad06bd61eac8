/* Intake: the front door of the dossier flow (work service "intake").
 *
 *   qp.v1.SubmitDossier      -> validates every field (validate.h), derives the person key
 *                               from an identity, fills the territory from the commune,
 *                               stores the dossier in RECEIVED and hands it to eligibility
 *                               (work + event qp.v1.DossierReceived); replies
 *                               qp.v1.SubmitDossierReply. Idempotent on (channel, key).
 *                               Refused: event qp.v1.SubmissionRefused (no personal data).
 *   qp.v1.DossierStatusQuery -> qp.v1.DossierStatusReply from the store.
 *   qp.v1.FollowUp           -> checks and stores a funded business's yearly report as
 *                               field followup_<year> of the dossier, with its event in
 *                               the outbox (one script), publishes it; replies
 *                               qp.v1.FollowUpReply.
 *
 * Redis down: the answer is a qp.v1.Error "internal" and nothing is handed on, so the
 * sender retries. The logic runs in-process (intake_submit, intake_follow_up) without a
 * bus; intake_attach wires it to a qp_service_t. */
#ifndef INTAKE_H
#define INTAKE_H
#include "qp/v1/evaluation.pb-c.h"
#include "qp_redis.h"
#include "qp_service.h"
#include "validate.h"

/* Used when no --person-pepper / QP_PERSON_PEPPER is given: a DEVELOPMENT value, public
 * in this source, so person keys made with it protect nobody. Production sets its own. */
#define INTAKE_DEV_PEPPER "qp-development-pepper-not-for-production"
/* Territory of a dossier outside every Quartiers Productifs territory. */
#define INTAKE_OUTSIDE_PROGRAMME "hors-programme"

typedef struct intake intake_t;

/* redis is borrowed (may be NULL for validation-only use: then every store step fails
 * as "store unavailable"). pepper NULL: INTAKE_DEV_PEPPER. */
intake_t *intake_new (qp_redis_t *redis, const char *pepper);
void intake_destroy (intake_t **self_p);

/* Loads the territories file ({"territories":[{"id","name","communes":[INSEE...]}]}).
 * Returns the number of territories, or -1 (logged) when it cannot be read: then every
 * dossier without a territory goes to INTAKE_OUTSIDE_PROGRAMME. */
int intake_load_territories (intake_t *self, const char *path);
/* The territory zones a location must lie in (intake_zones_load), taken over (*zones_p
 * is set to NULL). Without zones, locations are checked as numbers of degrees only:
 * qp-intake does not start without them. */
void intake_use_zones (intake_t *self, intake_zones_t **zones_p);
/* Territory id of a commune (INSEE code), or NULL. */
const char *intake_territory_of (const intake_t *self, const char *insee_commune);
/* The territory a dossier belongs to: its own when set, else the business commune's,
 * else the holder's residence commune's, else INTAKE_OUTSIDE_PROGRAMME. */
const char *intake_territory_for (const intake_t *self, const Qp__V1__Dossier *dossier);

typedef enum {
    INTAKE_ACCEPTED,     /* stored now: hand it on */
    INTAKE_DUPLICATE,    /* (channel, key) already stored: same id, nothing to do */
    INTAKE_REJECTED,     /* field errors: nothing stored */
    INTAKE_STORE_FAILED, /* Redis unavailable: retry later */
} intake_outcome_t;

typedef struct {
    intake_outcome_t outcome;
    char dossier_id[QP_ID_HEX + 1]; /* ACCEPTED, DUPLICATE */
    /* ACCEPTED: the dossier as stored (person key and territory filled, never the
     * identity), owned: intake_result_clear frees it. */
    Qp__V1__Dossier *dossier;
    Qp__V1__DossierState state; /* DUPLICATE: the state the dossier is in */
    intake_errors_t errors;     /* REJECTED */
} intake_result_t;

/* Handles one submission (not modified; its identity is only read to derive the key).
 * message_id and event_time_ms are the submission envelope's; they go into the history.
 * intake_prepare then intake_store of one. */
intake_outcome_t intake_submit (intake_t *self, const Qp__V1__SubmitDossier *submission,
                                const char *message_id, int64_t event_time_ms,
                                intake_result_t *result);
void intake_result_clear (intake_result_t *result);

/* ---- Submissions stored together (issue 8) -------------------------------------------
 * The service checks each submission as it comes (intake_prepare: a refused one is
 * answered at once) and stores the valid ones of the burst it read in one Redis round
 * trip (intake_store, through qp_service_creates): after the burst, when INTAKE_BATCH
 * wait, or before a status query or follow-up (so they see what came before them). Each
 * creation is its own guarded script: two submissions of one (channel, key) in a batch
 * answer accepted then duplicate, as one after the other; Redis down: every one of the
 * batch answers "store unavailable, retry" and none is handed on. */
#define INTAKE_BATCH 64

/* A valid submission on its way to the store. */
typedef struct {
    const char *message_id; /* the submission envelope's (borrowed: it goes into the history) */
    int64_t event_time_ms;
    char dossier_id[QP_ID_HEX + 1]; /* cleared when the store failed */
    /* The dossier as it is stored (person key and territory filled, never the identity),
     * owned; after intake_store only an ACCEPTED one keeps it (intake_ready_clear). */
    Qp__V1__Dossier *dossier;
    intake_outcome_t outcome;   /* intake_store's answer: ACCEPTED, DUPLICATE, STORE_FAILED */
    Qp__V1__DossierState state; /* DUPLICATE: the state the dossier is in */
} intake_ready_t;

/* Checks a submission (as intake_submit) and completes its dossier: true with ready
 * filled, false with errors filled (nothing to store). */
bool intake_prepare (intake_t *self, const Qp__V1__SubmitDossier *submission,
                     const char *message_id, int64_t event_time_ms, intake_errors_t *errors,
                     intake_ready_t *ready);
/* Stores n prepared submissions in one round trip, each with its DossierReceived in the
 * outbox (published when attached to a service), and sets each outcome. Returns how many
 * were accepted. */
size_t intake_store (intake_t *self, intake_ready_t *ready, size_t n);
void intake_ready_clear (intake_ready_t *ready);
/* Stores the submissions the service holds, hands the accepted ones to eligibility and
 * answers each sender (the service runs it after each burst). */
void intake_flush (intake_t *self);

/* Checks and stores a follow-up report: ACCEPTED, REJECTED (errors filled: also an unknown
 * dossier, or one that is not FUNDED) or STORE_FAILED (nothing written). The report and
 * its event (the FollowUp itself, for the evaluation; message_id and event_time_ms are
 * the request's) go into Redis in one script, the event into the outbox: both or
 * neither. The event is published when attached to a service with a publish endpoint. */
intake_outcome_t intake_follow_up (intake_t *self, const Qp__V1__FollowUp *follow_up,
                                   const char *message_id, int64_t event_time_ms,
                                   intake_errors_t *errors);

/* The status of a dossier: ACCEPTED (reply filled, found or not; clear it with
 * qp_store_status_clear), REJECTED (err: the id is missing or malformed) or STORE_FAILED. */
intake_outcome_t intake_status (intake_t *self, const Qp__V1__DossierStatusQuery *query,
                                Qp__V1__DossierStatusReply *reply, qp_error_t *err);

/* The event of a refused submission (for the funnel of evaluation): the channel, the
 * territory (declared and known, or from the commune), QPV, date and axis when each is
 * well formed, and the field and code of each error; nothing personal. Strings point
 * into submission and errors; free with intake_refusal_clear. */
void intake_refusal (const intake_t *self, const Qp__V1__SubmitDossier *submission,
                     const intake_errors_t *errors, Qp__V1__SubmissionRefused *out);
void intake_refusal_clear (Qp__V1__SubmissionRefused *refusal);

/* Registers the three handlers on service (which needs a publish endpoint). */
void intake_attach (intake_t *self, qp_service_t *service);
#endif
