/* Eligibility: decisions, the RECEIVED -> ELIGIBLE | NOT_ELIGIBLE step, the sweeper. */
#include "eligibility.h"
#include "qp_date.h"
#include "qp_log.h"
#include "qp_store.h"
#include "rules.h"
#include <signal.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_BATCH 200

Qp__V1__EligibilityDecided *eligibility_decide (const qp_catalogue_t *catalogue,
                                                const char *dossier_id,
                                                const Qp__V1__Dossier *dossier)
{
    Qp__V1__EligibilityDecided *e = malloc (sizeof *e);
    assert (e);
    qp__v1__eligibility_decided__init (e);
    e->dossier_id = strdup (dossier_id);
    e->territory = strdup (dossier->territory ? dossier->territory : "");
    int32_t date = 0;
    if (!dossier->submitted_on || !qp_date_parse (dossier->submitted_on, &date))
        date = 0; /* intake guarantees a date; 1970 matches no catalogue version */
    char day[11];
    qp_date_format (date, day);
    e->decided_on = strdup (day);
    /* Declared locations; the QPV index (issue "Eligibility") verifies coordinates. */
    const char *qpv[2] = {dossier->business ? dossier->business->declared_qpv : NULL,
                          dossier->holder ? dossier->holder->residence_qpv : NULL};
    Qp__V1__QpvLocation **slot[2] = {&e->business_location, &e->residence_location};
    for (int i = 0; i < 2; i++)
        if (qpv[i] && *qpv[i]) {
            Qp__V1__QpvLocation *l = malloc (sizeof *l);
            assert (l);
            qp__v1__qpv_location__init (l);
            l->qpv_code = strdup (qpv[i]);
            l->has_verified = true;
            l->verified = false;
            *slot[i] = l;
        }
    /* Facts from the declared QPV codes until the QPV index and the PHQ history fill them. */
    rules_facts_t facts;
    rules_facts_declared (&facts, dossier);
    size_t n = qp_catalogue_size (catalogue);
    e->decisions = calloc (n ? n : 1, sizeof *e->decisions);
    assert (e->decisions);
    for (size_t i = 0; i < n; i++)
        e->decisions[e->n_decisions++] =
            rules_evaluate (qp_catalogue_scheme (catalogue, i), dossier, date, &facts);
    return e;
}

static bool s_any_eligible (const Qp__V1__EligibilityDecided *e)
{
    for (size_t i = 0; i < e->n_decisions; i++)
        if (e->decisions[i]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME)
            return true;
    return false;
}

/* A short reason for a dossier that no scheme accepts: the first criterion not met. */
static void s_refusal (const Qp__V1__EligibilityDecided *e, char *out, size_t size)
{
    snprintf (out, size, "no scheme in the catalogue applies");
    for (size_t i = 0; i < e->n_decisions; i++)
        for (size_t j = 0; j < e->decisions[i]->n_criteria; j++) {
            Qp__V1__CriterionResult *c = e->decisions[i]->criteria[j];
            if (c->outcome != QP__V1__CRITERION_OUTCOME__MET) {
                snprintf (out, size, "%s: %s: %s", e->decisions[i]->scheme_id, c->criterion,
                          c->reason ? c->reason : "");
                return;
            }
        }
}

/* One dossier, from a DossierReceived message or from the sweeper. cause is the message
 * id of the DossierReceived (recomputed by the sweeper, so ids stay stable). */
static void s_decide (eligibility_t *self, const char *id, const Qp__V1__Dossier *dossier,
                      const char *cause, int64_t time_ms)
{
    Qp__V1__EligibilityDecided *e = eligibility_decide (self->catalogue, id, dossier);
    bool eligible = s_any_eligible (e);
    char decided_id[QP_ID_HEX + 1];
    qp_message_make_id (decided_id, qp__v1__eligibility_decided__descriptor.name, cause, id);

    size_t len = qp__v1__eligibility_decided__get_packed_size (e);
    uint8_t *packed = malloc (len ? len : 1);
    assert (packed);
    qp__v1__eligibility_decided__pack (e, packed);
    char reason[400] = "";
    if (!eligible)
        s_refusal (e, reason, sizeof reason);
    qp_store_field_t fields[] = {{"eligibility", packed, len}};
    Qp__V1__DossierState now;
    qp_store_result_t rc = qp_store_transition (
        self->redis, id, QP__V1__DOSSIER_STATE__RECEIVED,
        eligible ? QP__V1__DOSSIER_STATE__ELIGIBLE : QP__V1__DOSSIER_STATE__NOT_ELIGIBLE, time_ms,
        decided_id, eligible ? "eligible to at least one scheme" : reason, fields, 1, &now);
    free (packed);
    if (rc == QP_STORE_APPLIED) {
        qp_meta_t meta = {.correlation_id = id,
                          .causation_id = cause,
                          .event_time_ms = time_ms,
                          .discriminator = id};
        if (eligible)
            qp_service_send (self->service, "funding", &e->base, &meta);
        qp_service_publish (self->service, &e->base, &meta);
        if (!eligible) {
            Qp__V1__DossierClosed closed = QP__V1__DOSSIER_CLOSED__INIT;
            closed.dossier_id = (char *) id;
            closed.has_final_state = true;
            closed.final_state = QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
            closed.territory = e->territory;
            closed.reason = reason;
            closed.has_committed_cents = true;
            qp_meta_t cmeta = {.correlation_id = id,
                               .causation_id = decided_id,
                               .event_time_ms = time_ms,
                               .discriminator = id};
            qp_service_publish (self->service, &closed.base, &cmeta);
        }
    } else if (rc == QP_STORE_ALREADY)
        qp_log_debug ("duplicate", "dossier %s already %s", id, qp_store_state_name (now));
    else if (rc == QP_STORE_UNKNOWN)
        qp_log_warn ("unknown_dossier", "dossier %s is not in the store", id);
    /* QP_STORE_ERROR: the dossier stays pending; the sweeper retries after its lease. */
    qp__v1__eligibility_decided__free_unpacked (e, NULL);
}

static void s_on_received (qp_request_t *req, void *arg)
{
    eligibility_t *self = arg;
    Qp__V1__DossierReceived *m = (Qp__V1__DossierReceived *) req->msg.payload;
    Qp__V1__Envelope *env = req->msg.envelope;
    if (!m->dossier_id || !m->dossier) {
        qp_error_t err;
        qp_error_set (&err, "invalid_field", m->dossier_id ? "dossier" : "dossier_id",
                      "DossierReceived needs dossier_id and dossier");
        qp_service_reply_error (req, &err);
        return;
    }
    s_decide (self, m->dossier_id, m->dossier, env->message_id,
              env->has_event_time_ms ? env->event_time_ms : 0);
}

/* Set by SIGHUP; the sweeper timer does the reload, outside the signal handler. A static
 * because a signal handler has no other way to reach the service. */
static volatile sig_atomic_t s_reload_asked;

static void s_on_sighup (int sig)
{
    (void) sig;
    s_reload_asked = 1;
}

int eligibility_reload (eligibility_t *self, qp_error_t *err)
{
    qp_error_t local;
    qp_catalogue_t *fresh = qp_catalogue_load (self->catalogue_dir, err ? err : &local);
    if (!fresh) {
        qp_log_error ("catalogue_refused", "catalogue in %s refused, the previous one stays: %s",
                      self->catalogue_dir, (err ? err : &local)->message);
        return -1;
    }
    qp_catalogue_destroy (&self->catalogue);
    self->catalogue = fresh;
    qp_log_info ("catalogue_reloaded", "%zu schemes from %s", qp_catalogue_size (fresh),
                 self->catalogue_dir);
    return 0;
}

/* Re-decides dossiers left in RECEIVED past their lease, from what Redis holds. */
static void s_sweep (qp_service_t *service, void *arg)
{
    (void) service;
    eligibility_t *self = arg;
    if (s_reload_asked && self->catalogue_dir) {
        s_reload_asked = 0;
        eligibility_reload (self, NULL);
    }
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__RECEIVED, qp_now_ms (),
                                       ids, SWEEP_BATCH);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        char *packed = qp_store_get (self->redis, ids[i], "dossier", &len);
        char *source = qp_store_get (self->redis, ids[i], "source_msg", NULL);
        char *time_s = qp_store_get (self->redis, ids[i], "event_time_ms", NULL);
        Qp__V1__Dossier *d =
            packed ? qp__v1__dossier__unpack (NULL, len, (uint8_t *) packed) : NULL;
        if (d && source) {
            char cause[QP_ID_HEX + 1];
            qp_message_make_id (cause, qp__v1__dossier_received__descriptor.name, source, ids[i]);
            qp_log_info ("redispatch", "dossier %s: RECEIVED lease expired, deciding again", ids[i]);
            s_decide (self, ids[i], d, cause, time_s ? atoll (time_s) : 0);
        }
        if (d)
            qp__v1__dossier__free_unpacked (d, NULL);
        free (packed);
        free (source);
        free (time_s);
        free (ids[i]);
    }
}

void eligibility_register (eligibility_t *self)
{
    qp_service_on (self->service, &qp__v1__dossier_received__descriptor, s_on_received, self);
    qp_service_every (self->service, SWEEP_INTERVAL_MS, s_sweep, self);
    struct sigaction sa = {.sa_handler = s_on_sighup};
    sigemptyset (&sa.sa_mask);
    sigaction (SIGHUP, &sa, NULL);
}
