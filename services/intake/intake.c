/* Intake service logic: validation, person key, territory, store, hand-on. */
#include "intake.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include "qp_store.h"
#include <jansson.h>
#include <sodium.h>
#include <string.h>

struct intake {
    qp_redis_t *redis; /* borrowed */
    qp_service_t *service; /* publishes DossierReceived through the outbox; NULL in tests */
    char *pepper;
    json_t *communes;    /* INSEE commune -> territory id */
    json_t *territories; /* territory id -> name */
    intake_zones_t *zones; /* where a location may be (data/territory-zones.csv) */
    /* The handlers' scratch (they run one message at a time): 17 KB of findings, not a
     * malloc and two 17 KB memsets per message. */
    intake_errors_t errors;
    /* Valid submissions of the burst being read, stored together by intake_flush (one
     * Redis round trip) after the burst or when INTAKE_BATCH are waiting. */
    struct {
        qp_message_t msg; /* the SubmitDossier and its envelope, owned */
        zframe_t *from;   /* the sender, to answer */
    } queued[INTAKE_BATCH];
    intake_ready_t ready[INTAKE_BATCH]; /* queued[i]'s dossier, ready to store */
    size_t n_queued;
    qp_metric_t *batches, *stored; /* store round trips of submissions, and submissions */
};

intake_t *intake_new (qp_redis_t *redis, const char *pepper)
{
    intake_t *self = calloc (1, sizeof *self);
    assert (self);
    self->redis = redis;
    self->pepper = strdup (pepper && *pepper ? pepper : INTAKE_DEV_PEPPER);
    assert (self->pepper);
    self->batches = qp_metrics_counter ("qp_intake_store_batches_total",
                                        "batches of submissions stored, one Redis round trip each",
                                        "");
    self->stored = qp_metrics_counter ("qp_intake_store_submissions_total",
                                       "valid submissions sent to the store in those batches", "");
    return self;
}

void intake_destroy (intake_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    intake_t *self = *self_p;
    /* Not stored, not answered: the senders retry (a queue is only left by a stop in the
     * middle of a burst). */
    for (size_t i = 0; i < self->n_queued; i++) {
        qp_message_clear (&self->queued[i].msg);
        zframe_destroy (&self->queued[i].from);
        intake_ready_clear (&self->ready[i]);
    }
    if (qp_metric_value (self->batches) > 0)
        qp_log_info ("store_batches", "%.0f valid submissions stored in %.0f Redis round trips",
                     qp_metric_value (self->stored), qp_metric_value (self->batches));
    sodium_memzero (self->pepper, strlen (self->pepper));
    free (self->pepper);
    json_decref (self->communes);
    json_decref (self->territories);
    intake_zones_destroy (&self->zones);
    free (self);
    *self_p = NULL;
}

void intake_use_zones (intake_t *self, intake_zones_t **zones_p)
{
    assert (zones_p && *zones_p);
    intake_zones_destroy (&self->zones);
    self->zones = *zones_p;
    *zones_p = NULL;
}
/* ---- Territories ------------------------------------------------------------------- */

int intake_load_territories (intake_t *self, const char *path)
{
    json_error_t jerr;
    json_t *root = path ? json_load_file (path, 0, &jerr) : NULL;
    if (!root) {
        qp_log_warn ("territories_missing",
                     "no territories file (%s): every dossier is " INTAKE_OUTSIDE_PROGRAMME,
                     path ? jerr.text : "option territories unset");
        return -1;
    }
    json_t *list = json_object_get (root, "territories");
    json_t *communes = json_object (), *territories = json_object ();
    size_t i;
    json_t *t;
    bool ok = json_is_array (list);
    json_array_foreach (list, i, t) {
        const char *id = json_string_value (json_object_get (t, "id"));
        const char *name = json_string_value (json_object_get (t, "name"));
        json_t *codes = json_object_get (t, "communes");
        if (!id || !intake_territory_id_valid (id) || !json_is_array (codes)) {
            ok = false;
            break;
        }
        json_object_set_new (territories, id, json_string (name ? name : id));
        size_t k;
        json_t *code;
        json_array_foreach (codes, k, code) {
            const char *insee = json_string_value (code);
            if (!insee || !intake_insee_commune_valid (insee)) {
                ok = false;
                break;
            }
            json_t *before = json_object_get (communes, insee);
            if (before && strcmp (json_string_value (before), id))
                qp_log_warn ("territories_overlap", "commune %s is in %s and %s: keeping %s",
                             insee, json_string_value (before), id, json_string_value (before));
            else
                json_object_set_new (communes, insee, json_string (id));
        }
    }
    json_decref (root);
    if (!ok) {
        qp_log_warn ("territories_invalid",
                     "%s is not {\"territories\":[{\"id\",\"name\",\"communes\":[INSEE...]}]}: "
                     "every dossier is " INTAKE_OUTSIDE_PROGRAMME,
                     path);
        json_decref (communes);
        json_decref (territories);
        return -1;
    }
    json_decref (self->communes);
    json_decref (self->territories);
    self->communes = communes;
    self->territories = territories;
    qp_log_info ("territories_loaded", "%zu territories, %zu communes from %s",
                 json_object_size (territories), json_object_size (communes), path);
    return (int) json_object_size (territories);
}

const char *intake_territory_of (const intake_t *self, const char *insee_commune)
{
    if (!self->communes || !insee_commune)
        return NULL;
    return json_string_value (json_object_get (self->communes, insee_commune));
}

const char *intake_territory_for (const intake_t *self, const Qp__V1__Dossier *d)
{
    if (d->territory && *d->territory)
        return d->territory;
    const Qp__V1__Business *b = d->business;
    const char *found = NULL;
    if (b && b->insee_commune && *b->insee_commune)
        found = intake_territory_of (self, b->insee_commune);
    else if (b && b->address)
        found = intake_territory_of (self, b->address->insee_commune);
    if (!found && d->holder && d->holder->residence)
        found = intake_territory_of (self, d->holder->residence->insee_commune);
    return found ? found : INTAKE_OUTSIDE_PROGRAMME;
}

/* ---- Submissions --------------------------------------------------------------------- */

/* A malloc-owned deep copy, safe to complete and free with free_unpacked. */
static Qp__V1__Dossier *s_dossier_copy (const Qp__V1__Dossier *d)
{
    size_t len = qp__v1__dossier__get_packed_size (d);
    uint8_t *buf = malloc (len ? len : 1);
    assert (buf);
    qp__v1__dossier__pack (d, buf);
    Qp__V1__Dossier *copy = qp__v1__dossier__unpack (NULL, len, buf);
    free (buf);
    assert (copy);
    return copy;
}

static void s_set_string (char **field, const char *value)
{
    free (*field);
    *field = strdup (value);
    assert (*field);
}

bool intake_prepare (intake_t *self, const Qp__V1__SubmitDossier *s, const char *message_id,
                     int64_t event_time_ms, intake_errors_t *errors, intake_ready_t *ready)
{
    /* Not the whole struct (intake_errors_init clears all 17 KB of findings): the findings
     * count from errors.count, so that is all a new message needs. */
    *ready = (intake_ready_t){.message_id = message_id,
                              .event_time_ms = event_time_ms,
                              .outcome = INTAKE_REJECTED};
    errors->count = errors->dropped = 0;
    intake_validate_submission_in (self->zones, s, errors);
    /* A territory id that is well formed but not in the programme's list. */
    if (s && s->dossier && s->dossier->territory && *s->dossier->territory && self->territories
        && !intake_errors_find (errors, "territory")
        && strcmp (s->dossier->territory, INTAKE_OUTSIDE_PROGRAMME) != 0
        && !json_object_get (self->territories, s->dossier->territory))
        intake_errors_add (errors, "territory", "unknown",
                           "territory is not a Quartiers Productifs territory id");
    if (errors->count || errors->dropped)
        return false;

    Qp__V1__Dossier *d = s_dossier_copy (s->dossier);
    if (s->identity) {
        /* The identity stops here: only its keyed hash goes on. */
        char key[INTAKE_PERSON_KEY_HEX + 1];
        intake_person_key (s->identity, self->pepper, key);
        if (!d->holder) {
            d->holder = malloc (sizeof *d->holder);
            assert (d->holder);
            qp__v1__project_holder__init (d->holder);
        }
        s_set_string (&d->holder->person_key, key);
    }
    const char *territory = intake_territory_for (self, d);
    if (territory != d->territory)
        s_set_string (&d->territory, territory);
    qp_store_dossier_id (ready->dossier_id, d->channel, d->channel_key);
    ready->dossier = d;
    ready->outcome = INTAKE_STORE_FAILED; /* until stored */
    return true;
}

size_t intake_store (intake_t *self, intake_ready_t *ready, size_t n)
{
    if (!n)
        return 0;
    /* DossierReceived is written to the outbox by each creation itself (qp_service.h). */
    Qp__V1__DossierReceived *received = malloc (n * sizeof *received);
    qp_event_t *events = malloc (n * sizeof *events);
    qp_service_creation_t *cs = malloc (n * sizeof *cs);
    assert (received && events && cs);
    for (size_t i = 0; i < n; i++) {
        intake_ready_t *x = &ready[i];
        qp__v1__dossier_received__init (&received[i]);
        received[i].dossier_id = x->dossier_id;
        received[i].dossier = x->dossier;
        events[i] = (qp_event_t){&received[i].base, {.correlation_id = x->dossier_id,
                                                      .causation_id = x->message_id,
                                                      .event_time_ms = x->event_time_ms,
                                                      .discriminator = x->dossier_id}};
        cs[i] = (qp_service_creation_t){{x->dossier_id, x->dossier, x->dossier->territory,
                                         x->event_time_ms, x->message_id, NULL, 0,
                                         QP_STORE_ERROR, 0},
                                        &events[i], 1};
    }
    if (self->redis) {
        qp_service_creates (self->service, self->redis, cs, n);
        qp_metric_add (self->batches, 1);
        qp_metric_add (self->stored, (double) n);
    }
    size_t accepted = 0;
    for (size_t i = 0; i < n; i++) {
        intake_ready_t *x = &ready[i];
        x->state = cs[i].creation.state;
        switch (cs[i].creation.result) {
        case QP_STORE_APPLIED:
            x->outcome = INTAKE_ACCEPTED;
            accepted++;
            break;
        case QP_STORE_ALREADY:
            x->outcome = INTAKE_DUPLICATE;
            intake_ready_clear (x);
            break;
        default:
            x->outcome = INTAKE_STORE_FAILED;
            intake_ready_clear (x);
            x->dossier_id[0] = 0;
        }
    }
    free (received), free (events), free (cs);
    return accepted;
}

void intake_ready_clear (intake_ready_t *ready)
{
    if (ready->dossier)
        qp__v1__dossier__free_unpacked (ready->dossier, NULL);
    ready->dossier = NULL;
}

intake_outcome_t intake_submit (intake_t *self, const Qp__V1__SubmitDossier *s,
                                const char *message_id, int64_t event_time_ms,
                                intake_result_t *r)
{
    intake_ready_t x;
    r->dossier_id[0] = 0;
    r->dossier = NULL;
    r->state = QP__V1__DOSSIER_STATE__STATE_UNSPECIFIED;
    if (!intake_prepare (self, s, message_id, event_time_ms, &r->errors, &x))
        return r->outcome = INTAKE_REJECTED;
    intake_store (self, &x, 1);
    memcpy (r->dossier_id, x.dossier_id, sizeof r->dossier_id);
    r->dossier = x.dossier; /* ACCEPTED: the caller's now */
    r->state = x.state;
    return r->outcome = x.outcome;
}

void intake_result_clear (intake_result_t *r)
{
    if (r->dossier)
        qp__v1__dossier__free_unpacked (r->dossier, NULL);
    r->dossier = NULL;
}

/* ---- Follow-ups ---------------------------------------------------------------------- */

intake_outcome_t intake_follow_up (intake_t *self, const Qp__V1__FollowUp *f,
                                   const char *message_id, int64_t event_time_ms,
                                   intake_errors_t *errors)
{
    if (intake_validate_follow_up (f, errors))
        return INTAKE_REJECTED;
    if (!self->redis)
        return INTAKE_STORE_FAILED;
    /* The report and its event for the evaluation are written by one script
     * (follow_up_store.lua): both or neither, even if this process dies right after. */
    char field[32], disc[32], key[QP_ID_HEX + 16], deadline[24];
    snprintf (field, sizeof field, "followup_%u", f->year);
    snprintf (disc, sizeof disc, "followup_%u", f->year);
    snprintf (key, sizeof key, "qp:{%s}:d", f->dossier_id);
    snprintf (deadline, sizeof deadline, "%lld",
              (long long) (qp_now_ms () + QP_STORE_OUTBOX_GRACE_MS));
    qp_event_t event = {&f->base, {.correlation_id = f->dossier_id,
                                   .causation_id = message_id,
                                   .event_time_ms = event_time_ms,
                                   .discriminator = disc}};
    qp_service_event_t staged;
    qp_service_event_stage (self->service, self->redis, &event, &staged);
    size_t plen = qp__v1__follow_up__get_packed_size (f);
    uint8_t *buf = malloc (plen ? plen : 1);
    assert (buf);
    qp__v1__follow_up__pack (f, buf);
    const char *keys[] = {key, QP_STORE_OUTBOX_KEY};
    const char *args[] = {field, (const char *) buf, deadline,
                          staged.member.data ? staged.member.data : ""};
    size_t lens[] = {strlen (field), plen, strlen (deadline), staged.member.len};
    redisReply *rep = qp_redis_script (self->redis, QP_LUA_FOLLOW_UP_STORE, 2, keys, 4, args,
                                       lens);
    free (buf);
    bool answered = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1
                    && rep->element[0]->type == REDIS_REPLY_INTEGER;
    long long code = answered ? rep->element[0]->integer : -1;
    intake_outcome_t outcome = INTAKE_STORE_FAILED;
    if (code == 1)
        outcome = INTAKE_ACCEPTED;
    else if (code == 0) {
        intake_errors_add (errors, "dossier_id", "unknown", "no dossier with this id");
        outcome = INTAKE_REJECTED;
    } else if (code == 2 && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
        /* Networks report on businesses they funded: anything else would skew the figures. */
        intake_errors_add (errors, "dossier_id", "inconsistent",
                           "follow-ups are for funded dossiers; this one is %s",
                           rep->element[1]->str);
        outcome = INTAKE_REJECTED;
    } else
        qp_log_warn ("follow_up_not_stored", "dossier %s year %u: %s", f->dossier_id, f->year,
                     rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "Redis unavailable");
    if (rep)
        freeReplyObject (rep);
    qp_service_event_done (self->service, &staged, outcome == INTAKE_ACCEPTED);
    return outcome;
}

/* ---- Refusals and status ------------------------------------------------------------- */

/* value when present and no finding is on field, else NULL. */
static char *s_clean_value (const intake_errors_t *errors, const char *field, const char *value)
{
    return value && *value && !intake_errors_find (errors, field) ? (char *) value : NULL;
}

void intake_refusal (const intake_t *self, const Qp__V1__SubmitDossier *s,
                     const intake_errors_t *errors, Qp__V1__SubmissionRefused *out)
{
    qp__v1__submission_refused__init (out);
    const Qp__V1__Dossier *d = s ? s->dossier : NULL;
    if (d) {
        out->channel = s_clean_value (errors, "channel", d->channel);
        out->submitted_on = s_clean_value (errors, "submitted_on", d->submitted_on);
        out->territory = s_clean_value (errors, "territory", d->territory);
        if (!out->territory) {
            /* from the communes, as for an accepted dossier */
            Qp__V1__Dossier copy = *d;
            copy.territory = NULL;
            const char *t = intake_territory_for (self, &copy);
            if (strcmp (t, INTAKE_OUTSIDE_PROGRAMME))
                out->territory = (char *) t;
        }
        if (d->business)
            out->qpv = s_clean_value (errors, "business.declared_qpv", d->business->declared_qpv);
        if (!out->qpv && d->holder)
            out->qpv = s_clean_value (errors, "holder.residence_qpv", d->holder->residence_qpv);
        if (out->qpv && !intake_qpv_code_valid (out->qpv))
            out->qpv = NULL;
        if (d->project && d->project->has_axis && !intake_errors_find (errors, "project.axis") &&
            protobuf_c_enum_descriptor_get_value (&qp__v1__axis__descriptor, d->project->axis))
            out->has_axis = true, out->axis = d->project->axis;
    }
    out->errors = calloc (errors->count + 1, sizeof *out->errors);
    assert (out->errors);
    for (size_t i = 0; i < errors->count; i++) {
        Qp__V1__FieldError *e = malloc (sizeof *e);
        assert (e);
        qp__v1__field_error__init (e);
        e->field = (char *) errors->items[i].field;
        e->code = (char *) errors->items[i].code;
        out->errors[out->n_errors++] = e;
    }
}

void intake_refusal_clear (Qp__V1__SubmissionRefused *refusal)
{
    for (size_t i = 0; i < refusal->n_errors; i++)
        free (refusal->errors[i]);
    free (refusal->errors);
    qp__v1__submission_refused__init (refusal);
}

intake_outcome_t intake_status (intake_t *self, const Qp__V1__DossierStatusQuery *q,
                                Qp__V1__DossierStatusReply *reply, qp_error_t *err)
{
    qp__v1__dossier_status_reply__init (reply);
    if (!q->dossier_id || !*q->dossier_id) {
        qp_error_set (err, "invalid_field", "dossier_id", "dossier_id is required");
        return INTAKE_REJECTED;
    }
    if (!intake_dossier_id_valid (q->dossier_id)) {
        /* a malformed id is the caller's mistake, not a dossier that does not exist */
        qp_error_set (err, "invalid_field", "dossier_id",
                      "dossier_id must be %d lower-case hex digits (got %zu characters)",
                      QP_ID_HEX, strlen (q->dossier_id));
        return INTAKE_REJECTED;
    }
    if (!self->redis || qp_store_status (self->redis, q->dossier_id, reply) != 0)
        return INTAKE_STORE_FAILED;
    return INTAKE_ACCEPTED;
}

/* ---- Handlers ------------------------------------------------------------------------ */

static int64_t s_event_time (const qp_request_t *req)
{
    const Qp__V1__Envelope *e = req->msg.envelope;
    return e->has_event_time_ms ? e->event_time_ms : 0;
}

static void s_reply_store_failed (qp_request_t *req)
{
    qp_error_t err;
    qp_error_set (&err, "internal", NULL, "store unavailable, retry");
    qp_service_reply_error (req, &err);
}

/* FieldError views on the findings (no copies: they live as long as the reply). */
static Qp__V1__FieldError **s_field_errors (const intake_errors_t *errors,
                                            Qp__V1__FieldError *storage)
{
    Qp__V1__FieldError **list = calloc (errors->count ? errors->count : 1, sizeof *list);
    assert (list);
    for (size_t i = 0; i < errors->count; i++) {
        qp__v1__field_error__init (&storage[i]);
        storage[i].field = (char *) errors->items[i].field;
        storage[i].code = (char *) errors->items[i].code;
        storage[i].message = (char *) errors->items[i].message;
        list[i] = &storage[i];
    }
    return list;
}

/* Answers a submission: accepted or duplicate (with its dossier id), refused (with the
 * field errors), or "store unavailable, retry". */
static void s_reply_submit (qp_request_t *req, intake_outcome_t outcome, const char *dossier_id,
                            const intake_errors_t *errors, const char *message_id,
                            int64_t time_ms)
{
    if (outcome == INTAKE_STORE_FAILED) {
        qp_log_warn ("store_unavailable", "submission %s not stored: Redis unavailable",
                     message_id);
        s_reply_store_failed (req);
        return;
    }
    Qp__V1__SubmitDossierReply reply = QP__V1__SUBMIT_DOSSIER_REPLY__INIT;
    Qp__V1__FieldError storage[INTAKE_MAX_FIELD_ERRORS];
    reply.has_accepted = true;
    reply.accepted = outcome != INTAKE_REJECTED;
    if (reply.accepted) {
        reply.dossier_id = (char *) dossier_id;
        reply.has_duplicate = true;
        reply.duplicate = outcome == INTAKE_DUPLICATE;
    } else {
        reply.n_errors = errors->count;
        reply.errors = s_field_errors (errors, storage);
    }
    qp_meta_t meta = {.correlation_id = reply.accepted ? dossier_id : NULL,
                      .causation_id = message_id,
                      .event_time_ms = time_ms};
    qp_service_reply (req, &reply.base, &meta);
    free (reply.errors);
}

/* A refused submission: its event, then the answer. Nothing is stored, so it is answered
 * at once, not held with the burst's valid ones (its answer may overtake theirs: the
 * sender matches answers on causation_id). */
static void s_refuse (intake_t *self, qp_request_t *req, const Qp__V1__SubmitDossier *s,
                      const intake_errors_t *errors, const char *message_id, int64_t time_ms)
{
    qp_log_info ("dossier_rejected", "submission %s: %zu field errors, first %s (%s)", message_id,
                 errors->count + errors->dropped, errors->items[0].field, errors->items[0].code);
    /* counted by evaluation in the funnel: "rejected at intake" */
    Qp__V1__SubmissionRefused refused;
    intake_refusal (self, s, errors, &refused);
    qp_meta_t event = {.causation_id = message_id,
                       .event_time_ms = time_ms,
                       .discriminator = "refused"};
    /* Nothing stored for a refusal: its event alone goes to the outbox (one ZADD;
     * refusals are rare), so an evaluation away counts it later. Nothing can be
     * half-written: killed before the ZADD, no reply went out and the sender's retry
     * refuses it again under the same id; after it, the sweeper publishes it. Redis
     * down: the reply still goes out, the event best effort (docs/reliability.md). */
    qp_event_t ev = {&refused.base, event};
    qp_service_publish_durable (req->service, self->redis, &ev, 1);
    intake_refusal_clear (&refused);
    s_reply_submit (req, INTAKE_REJECTED, NULL, errors, message_id, time_ms);
}

void intake_flush (intake_t *self)
{
    size_t n = self->n_queued;
    if (!n)
        return;
    intake_store (self, self->ready, n);
    for (size_t i = 0; i < n; i++) {
        intake_ready_t *x = &self->ready[i];
        qp_request_t req = {.service = self->service, .from = self->queued[i].from,
                            .msg = self->queued[i].msg};
        if (x->outcome == INTAKE_ACCEPTED) {
            Qp__V1__DossierReceived received = QP__V1__DOSSIER_RECEIVED__INIT;
            received.dossier_id = x->dossier_id;
            received.dossier = x->dossier;
            qp_meta_t meta = {.correlation_id = x->dossier_id,
                              .causation_id = x->message_id,
                              .event_time_ms = x->event_time_ms,
                              .discriminator = x->dossier_id};
            qp_service_send (self->service, "eligibility", &received.base, &meta);
            qp_log_info ("dossier_received", "dossier %s in territory %s", x->dossier_id,
                         x->dossier->territory);
        } else if (x->outcome == INTAKE_DUPLICATE)
            qp_log_info ("dossier_duplicate", "dossier %s already received (%s)", x->dossier_id,
                         qp_store_state_name (x->state));
        s_reply_submit (&req, x->outcome, x->dossier_id, NULL, x->message_id, x->event_time_ms);
        intake_ready_clear (x);
        qp_message_clear (&self->queued[i].msg);
        zframe_destroy (&self->queued[i].from);
    }
    self->n_queued = 0;
}

static void s_on_burst_end (qp_service_t *service, void *arg)
{
    (void) service;
    intake_flush (arg);
}

static void s_on_submit (qp_request_t *req, void *arg)
{
    intake_t *self = arg;
    const Qp__V1__SubmitDossier *s = (const Qp__V1__SubmitDossier *) req->msg.payload;
    const char *message_id = req->msg.envelope->message_id;
    int64_t time_ms = s_event_time (req);
    /* Checked at once; stored with the rest of the burst (intake_flush). */
    size_t k = self->n_queued;
    if (!intake_prepare (self, s, message_id, time_ms, &self->errors, &self->ready[k])) {
        s_refuse (self, req, s, &self->errors, message_id, time_ms);
        return;
    }
    self->queued[k].msg = req->msg; /* ours now (message_id points into it) */
    memset (&req->msg, 0, sizeof req->msg); /* the service frees an empty one */
    self->queued[k].from = req->from ? zframe_dup (req->from) : NULL;
    if (++self->n_queued == INTAKE_BATCH)
        intake_flush (self);
}

static void s_on_status (qp_request_t *req, void *arg)
{
    intake_t *self = arg;
    intake_flush (self); /* a dossier submitted earlier in the burst is stored first */
    const Qp__V1__DossierStatusQuery *q = (const Qp__V1__DossierStatusQuery *) req->msg.payload;
    Qp__V1__DossierStatusReply reply;
    qp_error_t err;
    intake_outcome_t outcome = intake_status (self, q, &reply, &err);
    if (outcome == INTAKE_REJECTED) {
        qp_service_reply_error (req, &err);
        return;
    }
    if (outcome == INTAKE_STORE_FAILED) {
        s_reply_store_failed (req);
        return;
    }
    qp_meta_t meta = {.correlation_id = reply.found ? q->dossier_id : NULL,
                      .causation_id = req->msg.envelope->message_id,
                      .event_time_ms = s_event_time (req)};
    qp_service_reply (req, &reply.base, &meta);
    qp_store_status_clear (&reply);
}

static void s_on_follow_up (qp_request_t *req, void *arg)
{
    intake_t *self = arg;
    intake_flush (self); /* what came before it in the burst is stored first */
    const Qp__V1__FollowUp *f = (const Qp__V1__FollowUp *) req->msg.payload;
    const char *message_id = req->msg.envelope->message_id;
    int64_t time_ms = s_event_time (req);
    intake_errors_t *errors = &self->errors;
    intake_errors_init (errors);
    intake_outcome_t outcome = intake_follow_up (self, f, message_id, time_ms, errors);
    if (outcome == INTAKE_STORE_FAILED) {
        s_reply_store_failed (req);
        return;
    }
    bool accepted = outcome == INTAKE_ACCEPTED;
    if (accepted)
        qp_log_info ("follow_up_stored", "dossier %s year %u", f->dossier_id, f->year);
    Qp__V1__FollowUpReply reply = QP__V1__FOLLOW_UP_REPLY__INIT;
    Qp__V1__FieldError storage[INTAKE_MAX_FIELD_ERRORS];
    reply.has_accepted = true;
    reply.accepted = accepted;
    if (!accepted) {
        reply.n_errors = errors->count;
        reply.errors = s_field_errors (errors, storage);
    }
    qp_meta_t meta = {.correlation_id = accepted ? f->dossier_id : NULL,
                      .causation_id = message_id,
                      .event_time_ms = time_ms};
    qp_service_reply (req, &reply.base, &meta);
    free (reply.errors);
}

void intake_attach (intake_t *self, qp_service_t *service)
{
    self->service = service;
    if (self->redis)
        qp_service_outbox (service, self->redis); /* sweeps what a dead instance left */
    qp_service_on (service, &qp__v1__submit_dossier__descriptor, s_on_submit, self);
    qp_service_on (service, &qp__v1__dossier_status_query__descriptor, s_on_status, self);
    qp_service_on (service, &qp__v1__follow_up__descriptor, s_on_follow_up, self);
    qp_service_after_burst (service, s_on_burst_end, self);
}
