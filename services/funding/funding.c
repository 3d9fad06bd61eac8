/* Funding: the ELIGIBLE -> FUNDING_REQUESTED -> FUNDED | DECLINED | UNFUNDED steps. */
#include "funding.h"
#include "qp_log.h"
#include "qp_store.h"
#include <string.h>

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_BATCH 200

void funding_partner_service (Qp__V1__Agency agency, char *out, size_t size)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, agency);
    snprintf (out, size, "partner.%s", v ? v->name : "UNKNOWN");
}

static void s_envelope_keys (const char *scheme, char *k_env, char *k_ledger, size_t size)
{
    snprintf (k_env, size, "qp:envelope:{%s}", scheme);
    snprintf (k_ledger, size, "qp:envelope:{%s}:ledger", scheme);
}

int funding_load_envelopes (funding_t *self, const char *path, qp_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_load_file (path, 0, &jerr);
    if (!doc) {
        qp_error_set (err, "bad_envelopes", path, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *list = json_object_get (doc, "envelopes");
    size_t i;
    json_t *e;
    int rc = json_is_array (list) ? 0 : -1;
    if (rc)
        qp_error_set (err, "bad_envelopes", path, "%s: \"envelopes\" must be an array", path);
    json_array_foreach (list, i, e) {
        const char *scheme = json_string_value (json_object_get (e, "scheme"));
        json_t *total = json_object_get (e, "total_cents");
        json_t *max = json_object_get (e, "max_projects");
        if (!scheme || !json_is_integer (total) || json_integer_value (total) < 0 ||
            (max && !json_is_integer (max)) ||
            !json_string_value (json_object_get (e, "source"))) {
            qp_error_set (err, "bad_envelopes", path,
                          "%s: envelopes[%zu] needs scheme, total_cents ≥ 0, source "
                          "(max_projects an integer when given)",
                          path, i);
            rc = -1;
            break;
        }
        char k_env[128], k_ledger[128];
        s_envelope_keys (scheme, k_env, k_ledger, sizeof k_env);
        redisReply *r = qp_redis_command (
            self->redis, "HSETNX %s total %lld", k_env, (long long) json_integer_value (total));
        bool created = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r)
            freeReplyObject (r);
        if (max) {
            r = qp_redis_command (self->redis, "HSETNX %s max_projects %lld", k_env,
                                  (long long) json_integer_value (max));
            if (r)
                freeReplyObject (r);
        }
        if (created)
            qp_log_info ("envelope_created", "envelope %s: %lld cents", scheme,
                         (long long) json_integer_value (total));
    }
    json_decref (doc);
    return rc;
}

/* The message ids of the chain a dossier went through, recomputed from the submission's
 * id so that a sweeper re-sends byte-identical messages. */
static void s_chain (qp_redis_t *redis, const char *id, char received[QP_ID_HEX + 1],
                     char decided[QP_ID_HEX + 1])
{
    char *source = qp_store_get (redis, id, "source_msg", NULL);
    qp_message_make_id (received, qp__v1__dossier_received__descriptor.name, source, id);
    qp_message_make_id (decided, qp__v1__eligibility_decided__descriptor.name, received, id);
    free (source);
}

static void s_publish_closed (funding_t *self, const char *id, const char *territory,
                              Qp__V1__DossierState state, const char *reason, int64_t committed,
                              const char *cause, int64_t time_ms)
{
    Qp__V1__DossierClosed closed = QP__V1__DOSSIER_CLOSED__INIT;
    closed.dossier_id = (char *) id;
    closed.has_final_state = true;
    closed.final_state = state;
    closed.territory = (char *) territory;
    closed.reason = (char *) reason;
    closed.has_committed_cents = true;
    closed.committed_cents = committed;
    qp_meta_t meta = {.correlation_id = id,
                      .causation_id = cause,
                      .event_time_ms = time_ms,
                      .discriminator = id};
    qp_service_publish (self->service, &closed.base, &meta);
}

/* Writes the settlement with the terminal transition, then tells the world. */
static void s_settle (funding_t *self, const char *id, Qp__V1__FundingSettled *settled,
                      Qp__V1__DossierState from, Qp__V1__DossierState to, const char *cause,
                      int64_t time_ms)
{
    char settled_id[QP_ID_HEX + 1];
    char disc[QP_ID_HEX + 80];
    snprintf (disc, sizeof disc, "%s/%s", id, settled->scheme_id ? settled->scheme_id : "");
    qp_message_make_id (settled_id, qp__v1__funding_settled__descriptor.name, cause, disc);
    size_t len = qp__v1__funding_settled__get_packed_size (settled);
    uint8_t *packed = malloc (len ? len : 1);
    assert (packed);
    qp__v1__funding_settled__pack (settled, packed);
    char committed[24];
    snprintf (committed, sizeof committed, "%lld",
              (long long) (to == QP__V1__DOSSIER_STATE__FUNDED ? settled->amount_cents : 0));
    qp_store_field_t fields[] = {{"settlement", packed, len},
                                 {"committed_cents", committed, strlen (committed)},
                                 {"final_reason", settled->reason ? settled->reason : "",
                                  settled->reason ? strlen (settled->reason) : 0}};
    Qp__V1__DossierState now;
    qp_store_result_t rc = qp_store_transition (self->redis, id, from, to, time_ms, settled_id,
                                                settled->reason, fields, 3, &now);
    free (packed);
    if (rc != QP_STORE_APPLIED) {
        if (rc == QP_STORE_ALREADY)
            qp_log_debug ("duplicate", "dossier %s already %s", id, qp_store_state_name (now));
        return;
    }
    qp_meta_t meta = {.correlation_id = id,
                      .causation_id = cause,
                      .event_time_ms = time_ms,
                      .discriminator = disc};
    qp_service_publish (self->service, &settled->base, &meta);
    s_publish_closed (self, id, settled->territory, to, settled->reason,
                      to == QP__V1__DOSSIER_STATE__FUNDED ? settled->amount_cents : 0, settled_id,
                      time_ms);
}

/* Runs an envelope script; returns its code and copies its ledger entry. */
static int s_envelope (funding_t *self, qp_lua_script_t script, const char *scheme, int nargs,
                       const char **args, char *entry, size_t size)
{
    char k_env[128], k_ledger[128];
    s_envelope_keys (scheme, k_env, k_ledger, sizeof k_env);
    const char *keys[] = {k_env, k_ledger};
    redisReply *r = qp_redis_script (self->redis, script, 2, keys, nargs, args, NULL);
    int code = -2;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
        code = (int) r->element[0]->integer;
        snprintf (entry, size, "%s", r->element[1]->str);
    } else
        qp_log_error ("redis_error", "envelope script on %s: %s", scheme,
                      r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    if (r)
        freeReplyObject (r);
    return code;
}

static Qp__V1__DossierSummary *s_summary (const Qp__V1__Dossier *d, const char *territory,
                                          const char *qpv)
{
    Qp__V1__DossierSummary *s = calloc (1, sizeof *s);
    assert (s);
    qp__v1__dossier_summary__init (s);
    s->territory = strdup (territory ? territory : "");
    if (qpv)
        s->qpv_code = strdup (qpv);
    if (d->project) {
        const Qp__V1__Project *p = d->project;
        s->has_axis = p->has_axis, s->axis = p->axis;
        s->has_stage = p->has_stage, s->stage = p->stage;
        s->has_financing_need_cents = p->has_financing_need_cents;
        s->financing_need_cents = p->financing_need_cents;
        s->has_personal_contribution_cents = p->has_personal_contribution_cents;
        s->personal_contribution_cents = p->personal_contribution_cents;
        s->has_bank_loan_cents = p->has_bank_loan_cents, s->bank_loan_cents = p->bank_loan_cents;
        s->has_bank_loan_months = p->has_bank_loan_months;
        s->bank_loan_months = p->bank_loan_months;
        s->has_jobs_planned = p->has_jobs_planned, s->jobs_planned = p->jobs_planned;
    }
    if (d->business) {
        if (d->business->naf_code)
            s->naf_code = strdup (d->business->naf_code);
        if (d->business->legal_form)
            s->legal_form = strdup (d->business->legal_form);
        s->has_employees = d->business->has_employees, s->employees = d->business->employees;
    }
    if (d->holder)
        s->has_network = d->holder->has_network, s->network = d->holder->network;
    return s;
}

/* ELIGIBLE: reserve and ask the partner, or close UNFUNDED when the envelope refuses. */
static void s_request (funding_t *self, const Qp__V1__EligibilityDecided *e, const char *cause,
                       int64_t time_ms)
{
    const char *id = e->dossier_id;
    const Qp__V1__SchemeDecision *chosen = NULL;
    for (size_t i = 0; i < e->n_decisions && !chosen; i++)
        if (e->decisions[i]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME &&
            e->decisions[i]->amount_cents > 0 && e->decisions[i]->scheme_id)
            chosen = e->decisions[i];
    if (!chosen) {
        qp_log_warn ("nothing_to_fund", "dossier %s: no eligible monetary scheme", id);
        return;
    }
    const qp_scheme_t *scheme = qp_catalogue_find (self->catalogue, chosen->scheme_id);
    Qp__V1__Agency agency = scheme ? scheme->agency : chosen->agency;

    char amount[24], entry[64];
    snprintf (amount, sizeof amount, "%lld", (long long) chosen->amount_cents);
    const char *args[] = {id, amount};
    int code = s_envelope (self, QP_LUA_ENVELOPE_RESERVE, chosen->scheme_id, 2, args, entry,
                           sizeof entry);
    if (code == -2)
        return; /* Redis down: the ELIGIBLE lease brings the dossier back */
    if (code == -1 || strncmp (entry, "reserved:", 9) != 0) {
        Qp__V1__FundingSettled s = QP__V1__FUNDING_SETTLED__INIT;
        s.dossier_id = (char *) id;
        s.scheme_id = chosen->scheme_id;
        s.has_agency = true;
        s.agency = agency;
        s.has_outcome = true;
        s.outcome = QP__V1__SETTLEMENT_OUTCOME__NO_BUDGET;
        s.has_amount_cents = true;
        s.territory = e->territory;
        s.reason = code == -1 ? "no budget envelope is configured for the scheme"
                              : "the scheme's budget envelope is exhausted";
        s_settle (self, id, &s, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__UNFUNDED,
                  cause, time_ms);
        return;
    }

    /* The request as the partner sees it: no personal identity. */
    size_t len = 0;
    char *packed = qp_store_get (self->redis, id, "dossier", &len);
    Qp__V1__Dossier *d = packed ? qp__v1__dossier__unpack (NULL, len, (uint8_t *) packed) : NULL;
    free (packed);
    if (!d) {
        qp_log_error ("dossier_unreadable", "dossier %s has no readable dossier field", id);
        return;
    }
    char request_id[QP_ID_HEX + 1];
    qp_message_make_id (request_id, qp__v1__funding_request__descriptor.name, id,
                        chosen->scheme_id);
    Qp__V1__LoanTerms terms = QP__V1__LOAN_TERMS__INIT;
    terms.has_amount_cents = true;
    terms.amount_cents = chosen->amount_cents;
    if (d->project && d->project->has_honour_loan_months)
        terms.has_duration_months = true, terms.duration_months = d->project->honour_loan_months;
    if (d->project && d->project->has_deferral_months)
        terms.has_deferral_months = true, terms.deferral_months = d->project->deferral_months;
    terms.has_rate_bp = true;
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    rq.request_id = request_id;
    rq.dossier_id = (char *) id;
    rq.scheme_id = chosen->scheme_id;
    rq.has_agency = true;
    rq.agency = agency;
    rq.has_amount_asked_cents = true;
    rq.amount_asked_cents = chosen->amount_cents;
    rq.terms = &terms;
    rq.summary = s_summary (d, e->territory,
                            e->business_location ? e->business_location->qpv_code
                            : e->residence_location ? e->residence_location->qpv_code
                                                    : NULL);
    rq.has_attempt = true;
    rq.attempt = 1;
    qp__v1__dossier__free_unpacked (d, NULL);

    size_t rlen = qp__v1__funding_request__get_packed_size (&rq);
    uint8_t *rpacked = malloc (rlen);
    assert (rpacked);
    qp__v1__funding_request__pack (&rq, rpacked);
    char request_msg[QP_ID_HEX + 1];
    qp_message_make_id (request_msg, qp__v1__funding_request__descriptor.name, cause, request_id);
    qp_store_field_t fields[] = {{"request", rpacked, rlen},
                                 {"scheme", chosen->scheme_id, strlen (chosen->scheme_id)}};
    Qp__V1__DossierState now;
    qp_store_result_t rc = qp_store_transition (
        self->redis, id, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
        time_ms, request_msg, "amount reserved, partner asked", fields, 2, &now);
    free (rpacked);
    if (rc == QP_STORE_APPLIED) {
        char partner[64];
        funding_partner_service (agency, partner, sizeof partner);
        qp_meta_t meta = {.correlation_id = id,
                          .causation_id = cause,
                          .event_time_ms = time_ms,
                          .discriminator = request_id};
        qp_service_send (self->service, partner, &rq.base, &meta);
        qp_service_publish (self->service, &rq.base, &meta);
    }
    qp__v1__dossier_summary__free_unpacked (rq.summary, NULL);
}

static void s_on_decided (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__EligibilityDecided *e = (Qp__V1__EligibilityDecided *) req->msg.payload;
    if (!e->dossier_id) {
        qp_error_t err;
        qp_error_set (&err, "invalid_field", "dossier_id", "EligibilityDecided needs dossier_id");
        qp_service_reply_error (req, &err);
        return;
    }
    Qp__V1__Envelope *env = req->msg.envelope;
    s_request (self, e, env->message_id, env->has_event_time_ms ? env->event_time_ms : 0);
}

/* FUNDING_REQUESTED: the partner's answer commits or releases the reservation. */
static void s_on_partner_decision (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerDecision *pd = (Qp__V1__PartnerDecision *) req->msg.payload;
    Qp__V1__Envelope *env = req->msg.envelope;
    qp_error_t err;
    if (!pd->dossier_id || !pd->request_id || !pd->has_outcome ||
        pd->outcome == QP__V1__PARTNER_OUTCOME__PARTNER_OUTCOME_UNSPECIFIED) {
        qp_error_set (&err, "invalid_field",
                      !pd->dossier_id   ? "dossier_id"
                      : !pd->request_id ? "request_id"
                                        : "outcome",
                      "a PartnerDecision needs dossier_id, request_id and outcome");
        qp_service_reply_error (req, &err);
        return;
    }
    size_t len = 0;
    char *packed = qp_store_get (self->redis, pd->dossier_id, "request", &len);
    Qp__V1__FundingRequest *rq =
        packed ? qp__v1__funding_request__unpack (NULL, len, (uint8_t *) packed) : NULL;
    free (packed);
    if (!rq || !rq->request_id || strcmp (rq->request_id, pd->request_id) != 0) {
        qp_error_set (&err, "unknown_request", "request_id",
                      "no funding request %s for dossier %s", pd->request_id, pd->dossier_id);
        qp_service_reply_error (req, &err);
        goto cleanup;
    }
    if (!pd->has_agency || pd->agency != rq->agency) {
        qp_error_set (&err, "forbidden", "agency",
                      "request %s is for another agency's scheme", pd->request_id);
        qp_log_warn ("partner_forbidden", "%s", err.message);
        qp_service_reply_error (req, &err);
        goto cleanup;
    }
    bool approved = pd->outcome == QP__V1__PARTNER_OUTCOME__APPROVED;
    int64_t asked = rq->amount_asked_cents;
    int64_t granted = approved && pd->terms && pd->terms->has_amount_cents
                          ? pd->terms->amount_cents
                          : asked;
    if (approved && (granted <= 0 || granted > asked)) {
        qp_error_set (&err, "invalid_field", "terms.amount_cents",
                      "approved amount %lld must be > 0 and ≤ the %lld asked", (long long) granted,
                      (long long) asked);
        qp_service_reply_error (req, &err);
        goto cleanup;
    }
    char amount[24], entry[64];
    snprintf (amount, sizeof amount, "%lld", (long long) granted);
    const char *args[] = {pd->dossier_id, approved ? "commit" : "release", amount};
    int code =
        s_envelope (self, QP_LUA_ENVELOPE_SETTLE, rq->scheme_id, 3, args, entry, sizeof entry);
    if (code < 0 || (strncmp (entry, "committed:", 10) && strncmp (entry, "released:", 9))) {
        if (code == -1)
            qp_log_error ("no_reservation", "dossier %s has no reservation in %s", pd->dossier_id,
                          rq->scheme_id);
        goto cleanup; /* Redis down: the FUNDING_REQUESTED lease asks the partner again */
    }
    /* The ledger is the truth: a replayed decision settles as the first one did. */
    bool committed = !strncmp (entry, "committed:", 10);
    char reason[320];
    if (committed)
        snprintf (reason, sizeof reason, "approved by %s",
                  pd->component_id ? pd->component_id : "the partner");
    else
        snprintf (reason, sizeof reason, "%s by %s: %s",
                  pd->outcome == QP__V1__PARTNER_OUTCOME__INFORMATION_NEEDED ? "information needed"
                                                                             : "declined",
                  pd->component_id ? pd->component_id : "the partner",
                  pd->reason ? pd->reason : "no reason given");
    Qp__V1__FundingSettled s = QP__V1__FUNDING_SETTLED__INIT;
    s.dossier_id = pd->dossier_id;
    s.scheme_id = rq->scheme_id;
    s.has_agency = true;
    s.agency = rq->agency;
    s.has_outcome = true;
    s.outcome = committed ? QP__V1__SETTLEMENT_OUTCOME__COMMITTED
                          : QP__V1__SETTLEMENT_OUTCOME__RELEASED;
    s.has_amount_cents = true;
    s.amount_cents = atoll (strchr (entry, ':') + 1);
    s.territory = rq->summary ? rq->summary->territory : NULL;
    s.reason = reason;
    s_settle (self, pd->dossier_id, &s, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
              committed ? QP__V1__DOSSIER_STATE__FUNDED : QP__V1__DOSSIER_STATE__DECLINED,
              env->message_id, env->has_event_time_ms ? env->event_time_ms : 0);
cleanup:
    if (rq)
        qp__v1__funding_request__free_unpacked (rq, NULL);
}

/* Partner-agency state, cached in Redis: which components are alive, their schemes and
 * capacity. A component that stops reporting expires after three intervals. */
static void s_cache_partner (funding_t *self, const char *component, Qp__V1__Agency agency,
                             uint32_t interval_ms, const char **kv, size_t n_kv)
{
    if (!component || !*component)
        return;
    const ProtobufCEnumValue *ag =
        protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, agency);
    char key[160], set[96], ttl[24], seen[24];
    snprintf (key, sizeof key, "qp:partner:%s", component);
    snprintf (set, sizeof set, "qp:partners:%s", ag ? ag->name : "UNKNOWN");
    snprintf (ttl, sizeof ttl, "%u", 3 * (interval_ms ? interval_ms : 1000));
    snprintf (seen, sizeof seen, "%lld", (long long) qp_now_ms ());
    const char *argv[32] = {"HSET", key, "agency", ag ? ag->name : "UNKNOWN", "last_seen_ms", seen};
    int argc = 6;
    for (size_t i = 0; i < n_kv && argc < 30; i++)
        argv[argc++] = kv[i];
    redisReply *r = qp_redis_argv (self->redis, argc, argv, NULL);
    if (r)
        freeReplyObject (r);
    r = qp_redis_command (self->redis, "PEXPIRE %s %s", key, ttl);
    if (r)
        freeReplyObject (r);
    r = qp_redis_command (self->redis, "SADD %s %s", set, component);
    if (r)
        freeReplyObject (r);
}

static void s_on_hello (qp_request_t *req, void *arg)
{
    Qp__V1__PartnerHello *h = (Qp__V1__PartnerHello *) req->msg.payload;
    char schemes[512] = "", capacity[16];
    for (size_t i = 0; i < h->n_schemes; i++)
        snprintf (schemes + strlen (schemes), sizeof schemes - strlen (schemes), "%s%s",
                  i ? "," : "", h->schemes[i]);
    snprintf (capacity, sizeof capacity, "%u", h->capacity);
    const char *kv[] = {"name",    h->component_name ? h->component_name : "",
                        "version", h->version ? h->version : "",
                        "schemes", schemes,
                        "capacity", capacity};
    s_cache_partner (arg, h->component_id, h->agency, h->status_interval_ms, kv, 8);
    qp_log_info ("partner_hello", "component %s (%s %s) serves %s",
                 h->component_id ? h->component_id : "?",
                 h->component_name ? h->component_name : "?", h->version ? h->version : "?",
                 schemes);
}

static void s_on_status (qp_request_t *req, void *arg)
{
    Qp__V1__PartnerStatus *s = (Qp__V1__PartnerStatus *) req->msg.payload;
    char budget[24], in_flight[16];
    snprintf (budget, sizeof budget, "%lld", (long long) s->remaining_budget_cents);
    snprintf (in_flight, sizeof in_flight, "%u", s->in_flight);
    const char *kv[] = {"alive",     s->alive ? "1" : "0",     "accepting",
                        s->accepting ? "1" : "0",              "remaining_budget_cents",
                        budget,      "in_flight",              in_flight};
    s_cache_partner (arg, s->component_id, s->agency, s->status_interval_ms, kv, 8);
}

static void s_sweep_eligible (funding_t *self)
{
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__ELIGIBLE, qp_now_ms (),
                                       ids, SWEEP_BATCH);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        char *packed = qp_store_get (self->redis, ids[i], "eligibility", &len);
        char *time_s = qp_store_get (self->redis, ids[i], "event_time_ms", NULL);
        Qp__V1__EligibilityDecided *e =
            packed ? qp__v1__eligibility_decided__unpack (NULL, len, (uint8_t *) packed) : NULL;
        if (e) {
            char received[QP_ID_HEX + 1], decided[QP_ID_HEX + 1];
            s_chain (self->redis, ids[i], received, decided);
            qp_log_info ("redispatch", "dossier %s: ELIGIBLE lease expired, requesting again",
                         ids[i]);
            s_request (self, e, decided, time_s ? atoll (time_s) : 0);
            qp__v1__eligibility_decided__free_unpacked (e, NULL);
        }
        free (packed);
        free (time_s);
        free (ids[i]);
    }
}

static void s_sweep_requested (funding_t *self)
{
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
                                       qp_now_ms (), ids, SWEEP_BATCH);
    for (size_t i = 0; i < n; i++) {
        const char *id = ids[i];
        size_t len = 0;
        char *packed = qp_store_get (self->redis, id, "request", &len);
        char *time_s = qp_store_get (self->redis, id, "event_time_ms", NULL);
        Qp__V1__FundingRequest *rq =
            packed ? qp__v1__funding_request__unpack (NULL, len, (uint8_t *) packed) : NULL;
        char k_d[64];
        snprintf (k_d, sizeof k_d, "qp:{%s}:d", id);
        redisReply *r = qp_redis_command (self->redis, "HINCRBY %s attempts 1", k_d);
        long long attempts = r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r)
            freeReplyObject (r);
        int64_t time_ms = time_s ? atoll (time_s) : 0;
        char received[QP_ID_HEX + 1], decided[QP_ID_HEX + 1], request_msg[QP_ID_HEX + 1];
        s_chain (self->redis, id, received, decided);
        if (rq && attempts >= self->max_attempts) {
            /* The partner stayed silent: give the money back and close the dossier. */
            char entry[64];
            const char *args[] = {id, "release", "0"};
            if (s_envelope (self, QP_LUA_ENVELOPE_SETTLE, rq->scheme_id, 3, args, entry,
                            sizeof entry) >= 0) {
                char partner[64], reason[160];
                funding_partner_service (rq->agency, partner, sizeof partner);
                snprintf (reason, sizeof reason, "%s did not answer after %lld requests", partner,
                          attempts);
                Qp__V1__FundingSettled s = QP__V1__FUNDING_SETTLED__INIT;
                s.dossier_id = (char *) id;
                s.scheme_id = rq->scheme_id;
                s.has_agency = true;
                s.agency = rq->agency;
                s.has_outcome = true;
                s.outcome = QP__V1__SETTLEMENT_OUTCOME__RELEASED;
                s.has_amount_cents = true;
                s.amount_cents = atoll (strchr (entry, ':') ? strchr (entry, ':') + 1 : "0");
                s.territory = rq->summary ? rq->summary->territory : NULL;
                s.reason = reason;
                qp_message_make_id (request_msg, qp__v1__funding_request__descriptor.name, decided,
                                    rq->request_id);
                s_settle (self, id, &s, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
                          QP__V1__DOSSIER_STATE__UNFUNDED, request_msg, time_ms);
            }
        } else if (rq) {
            char partner[64];
            funding_partner_service (rq->agency, partner, sizeof partner);
            qp_log_info ("redispatch", "dossier %s: no answer from %s yet, asking again (%lld)",
                         id, partner, attempts);
            qp_meta_t meta = {.correlation_id = id,
                              .causation_id = decided,
                              .event_time_ms = time_ms,
                              .discriminator = rq->request_id};
            qp_service_send (self->service, partner, &rq->base, &meta);
        }
        if (rq)
            qp__v1__funding_request__free_unpacked (rq, NULL);
        free (packed);
        free (time_s);
        free (ids[i]);
    }
}

static void s_sweep (qp_service_t *service, void *arg)
{
    (void) service;
    s_sweep_eligible (arg);
    s_sweep_requested (arg);
}

void funding_register (funding_t *self)
{
    qp_service_on (self->service, &qp__v1__eligibility_decided__descriptor, s_on_decided, self);
    qp_service_on (self->service, &qp__v1__partner_decision__descriptor, s_on_partner_decision,
                   self);
    qp_service_on (self->service, &qp__v1__partner_hello__descriptor, s_on_hello, self);
    qp_service_on (self->service, &qp__v1__partner_status__descriptor, s_on_status, self);
    qp_service_every (self->service, SWEEP_INTERVAL_MS, s_sweep, self);
}
