/* Funding: the ELIGIBLE -> FUNDING_REQUESTED -> FUNDED | DECLINED | UNFUNDED steps, as a
 * saga over the legs of a funding plan. */
#include "funding.h"
#include "budget.h"
#include "qp_date.h"
#include "qp_log.h"
#include "qp_store.h"
#include <string.h>

#define SWEEP_INTERVAL_MS 200
#define SWEEP_BATCH 500
#define DUE_KEY "qp:funding:due"
#define MAX_LEGS 16

static const char *s_agency_name (Qp__V1__Agency agency)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, agency);
    return v ? v->name : "UNKNOWN";
}

void funding_partner_service (Qp__V1__Agency agency, const char *component, char *out,
                              size_t size)
{
    snprintf (out, size, "partner.%s.%s", s_agency_name (agency), component);
}

/* ---- configuration ------------------------------------------------------------------ */

int funding_load_envelopes (funding_t *self, const char *path, qp_error_t *err)
{
    if (budget_load (self->redis, path, err) != 0)
        return -1;
    json_t *doc = json_load_file (path, 0, NULL);
    json_t *e;
    size_t i;
    json_array_foreach (json_object_get (doc, "envelopes"), i, e) {
        self->envelope_schemes = realloc (self->envelope_schemes,
                                          (self->n_envelope_schemes + 1) * sizeof (char *));
        self->envelope_schemes[self->n_envelope_schemes++] =
            strdup (json_string_value (json_object_get (e, "scheme")));
    }
    json_decref (doc);
    return 0;
}

static long s_cfg_int (json_t *obj, const char *name, long dflt)
{
    json_t *v = json_object_get (obj, name);
    return json_is_integer (v) ? (long) json_integer_value (v) : dflt;
}

int funding_load_config (funding_t *self, const char *path, qp_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_load_file (path, 0, &jerr);
    if (!doc) {
        qp_error_set (err, "bad_funding_config", path, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *timeouts = json_object_get (doc, "partner_timeout_ms");
    json_t *backoff = json_object_get (doc, "backoff");
    json_t *hl = json_object_get (doc, "honour_loan");
    if (!json_is_object (timeouts) || !json_is_object (backoff) || !json_is_object (hl) ||
        !json_is_object (json_object_get (doc, "kinds")) ||
        !json_is_array (json_object_get (doc, "anchors")) ||
        !json_is_string (json_object_get (doc, "source"))) {
        qp_error_set (err, "bad_funding_config", path,
                      "%s needs partner_timeout_ms, backoff, honour_loan, kinds (objects), "
                      "anchors (array) and source",
                      path);
        json_decref (doc);
        return -1;
    }
    self->config = doc;
    self->timeout_ms = s_cfg_int (timeouts, "default", 5000);
    self->backoff_base_ms = s_cfg_int (backoff, "base_ms", 500);
    self->backoff_max_ms = s_cfg_int (backoff, "max_ms", 30000);
    self->reservation_ttl_ms = s_cfg_int (doc, "reservation_ttl_ms", 86400000);
    self->no_component_wait_ms = s_cfg_int (doc, "no_component_wait_ms", 600000);
    if (!self->max_attempts)
        self->max_attempts = s_cfg_int (doc, "max_attempts", 6);
    json_t *d = json_object_get (hl, "duration_months"), *f = json_object_get (hl, "deferral_months");
    self->honour_loan.duration_min = (uint32_t) s_cfg_int (d, "min", 12);
    self->honour_loan.duration_max = (uint32_t) s_cfg_int (d, "max", 60);
    self->honour_loan.deferral_min = (uint32_t) s_cfg_int (f, "min", 0);
    self->honour_loan.deferral_max = (uint32_t) s_cfg_int (f, "max", 24);
    self->honour_loan.rate_bp = (uint32_t) s_cfg_int (hl, "rate_bp", 0);
    return 0;
}

void funding_clear (funding_t *self)
{
    json_decref (self->config);
    self->config = NULL;
    for (size_t i = 0; i < self->n_envelope_schemes; i++)
        free (self->envelope_schemes[i]);
    free (self->envelope_schemes);
    self->envelope_schemes = NULL;
    self->n_envelope_schemes = 0;
}

static const char *s_kind (const funding_t *self, const char *scheme)
{
    const char *k = json_string_value (json_object_get (json_object_get (self->config, "kinds"), scheme));
    return k ? k : "grant";
}

static bool s_anchor (const funding_t *self, const char *scheme)
{
    json_t *v;
    size_t i;
    json_array_foreach (json_object_get (self->config, "anchors"), i, v)
        if (json_string_value (v) && !strcmp (json_string_value (v), scheme))
            return true;
    return false;
}

static bool s_honour_loan (const funding_t *self, const char *scheme)
{
    return !strcmp (s_kind (self, scheme), "honour_loan");
}

static int64_t s_timeout (const funding_t *self, Qp__V1__Agency agency)
{
    return s_cfg_int (json_object_get (self->config, "partner_timeout_ms"), s_agency_name (agency),
                      self->timeout_ms);
}

int64_t funding_backoff_ms (const funding_t *self, const char *request_id, uint32_t attempt)
{
    int64_t d = self->backoff_base_ms;
    for (uint32_t i = 1; i < attempt && d < self->backoff_max_ms; i++)
        d *= 2;
    if (d > self->backoff_max_ms)
        d = self->backoff_max_ms;
    char seed[64], h[QP_ID_HEX + 1];
    snprintf (seed, sizeof seed, "%u", attempt);
    qp_message_make_id (h, "qp.funding.jitter", request_id, seed);
    uint32_t u = (uint32_t) strtoul ((char[9]) {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 0},
                                     NULL, 16);
    return d / 2 + (int64_t) ((double) (d / 2) * ((double) u / 4294967296.0));
}

/* ---- legs in Redis -------------------------------------------------------------------- */

typedef struct {
    Qp__V1__FundingLeg *leg;
    char version[24];
} leg_t;

static void s_set_str (char **field, const char *value)
{
    free (*field);
    *field = value ? strdup (value) : NULL;
}

static bool s_final (Qp__V1__LegState s)
{
    return s >= QP__V1__LEG_STATE__LEG_APPROVED;
}

/* Loads every leg of a dossier's plan. Returns the number, -1 without a plan. */
static int s_legs_load (funding_t *self, const char *id, leg_t *legs, size_t max)
{
    char key[64];
    snprintf (key, sizeof key, "qp:{%s}:f", id);
    redisReply *r = qp_redis_command (self->redis, "HGETALL %s", key);
    int n = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        n = 0;
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const char *name = r->element[i]->str;
            if (!strcmp (name, "legs") || strchr (name, ':'))
                continue;
            if ((size_t) n == max)
                break;
            legs[n].leg = qp__v1__funding_leg__unpack (NULL, r->element[i + 1]->len,
                                                       (uint8_t *) r->element[i + 1]->str);
            if (!legs[n].leg)
                continue;
            snprintf (legs[n].version, sizeof legs[n].version, "0");
            char vname[160];
            snprintf (vname, sizeof vname, "%s:v", name);
            for (size_t j = 0; j + 1 < r->elements; j += 2)
                if (!strcmp (r->element[j]->str, vname))
                    snprintf (legs[n].version, sizeof legs[n].version, "%s",
                              r->element[j + 1]->str);
            n++;
        }
    }
    if (r)
        freeReplyObject (r);
    return n;
}

static void s_legs_free (leg_t *legs, int n)
{
    for (int i = 0; i < n; i++)
        qp__v1__funding_leg__free_unpacked (legs[i].leg, NULL);
}

/* A step of the saga, in the dossier's history (shown by qp ctl status). */
static uint8_t *s_step (const char *note, size_t *len)
{
    Qp__V1__Transition t = QP__V1__TRANSITION__INIT;
    t.has_from = t.has_to = true;
    t.from = t.to = QP__V1__DOSSIER_STATE__FUNDING_REQUESTED;
    t.has_at_ms = true, t.at_ms = qp_now_ms ();
    t.note = (char *) note;
    *len = qp__v1__transition__get_packed_size (&t);
    uint8_t *b = malloc (*len);
    qp__v1__transition__pack (&t, b);
    return b;
}

/* Compare-and-set of one leg (fails when another instance changed it since it was read). */
static bool s_leg_save (funding_t *self, const char *id, leg_t *l, const char *note)
{
    char k_f[64], k_h[64], next[24];
    snprintf (k_f, sizeof k_f, "qp:{%s}:f", id);
    snprintf (k_h, sizeof k_h, "qp:{%s}:h", id);
    snprintf (next, sizeof next, "%lld", (long long) l->leg->next_attempt_ms);
    size_t len = qp__v1__funding_leg__get_packed_size (l->leg), slen = 0;
    uint8_t *packed = malloc (len ? len : 1);
    qp__v1__funding_leg__pack (l->leg, packed);
    uint8_t *step = note ? s_step (note, &slen) : NULL;
    const char *keys[] = {k_f, k_h, DUE_KEY};
    const char *args[] = {l->leg->scheme_id, l->version, (char *) packed, step ? (char *) step : "",
                          id, s_final (l->leg->state) ? "" : next};
    size_t lens[] = {strlen (l->leg->scheme_id), strlen (l->version), len, slen, strlen (id),
                     s_final (l->leg->state) ? 0 : strlen (next)};
    redisReply *r = qp_redis_script (self->redis, QP_LUA_FUNDING_LEG, 3, keys, 6, args, lens);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->integer == 1;
    if (ok)
        snprintf (l->version, sizeof l->version, "%s", r->element[1]->str);
    if (r)
        freeReplyObject (r);
    free (packed);
    free (step);
    return ok;
}

/* ---- settling ------------------------------------------------------------------------ */

/* The message ids of the chain a dossier went through, recomputed from the submission's
 * id so that a sweeper re-sends byte-identical messages. */
static void s_chain (qp_redis_t *redis, const char *id, char decided[QP_ID_HEX + 1],
                     int64_t *time_ms)
{
    char *source = qp_store_get (redis, id, "source_msg", NULL);
    char *time_s = qp_store_get (redis, id, "event_time_ms", NULL);
    char received[QP_ID_HEX + 1];
    qp_message_make_id (received, qp__v1__dossier_received__descriptor.name, source, id);
    qp_message_make_id (decided, qp__v1__eligibility_decided__descriptor.name, received, id);
    *time_ms = time_s ? atoll (time_s) : 0;
    free (source);
    free (time_s);
}

static void s_publish_settled (funding_t *self, const char *id, const Qp__V1__FundingLeg *leg,
                               Qp__V1__SettlementOutcome outcome, int64_t amount,
                               const char *territory, const char *reason, const char *cause,
                               int64_t time_ms)
{
    Qp__V1__FundingSettled s = QP__V1__FUNDING_SETTLED__INIT;
    s.dossier_id = (char *) id;
    s.scheme_id = leg->scheme_id;
    s.has_agency = true, s.agency = leg->agency;
    s.has_outcome = true, s.outcome = outcome;
    s.has_amount_cents = true, s.amount_cents = amount;
    s.territory = (char *) territory;
    s.reason = (char *) reason;
    char disc[QP_ID_HEX + 80];
    snprintf (disc, sizeof disc, "%s/%s", id, leg->scheme_id);
    qp_meta_t meta = {.correlation_id = id, .causation_id = cause, .event_time_ms = time_ms,
                      .discriminator = disc};
    qp_service_publish (self->service, &s.base, &meta);
}

/* All legs are final: commit the approved reservations, release the others (all of them
 * when a leg the plan depends on failed: compensation), close the dossier once. */
static void s_finalize (funding_t *self, const char *id, Qp__V1__DossierState from, leg_t *legs,
                        int n, const char *territory, const char *cause, int64_t time_ms)
{
    const Qp__V1__FundingLeg *failed_anchor = NULL;
    for (int i = 0; i < n && !failed_anchor; i++)
        if (legs[i].leg->anchor && legs[i].leg->state != QP__V1__LEG_STATE__LEG_APPROVED &&
            legs[i].leg->state != QP__V1__LEG_STATE__LEG_GRANTED)
            failed_anchor = legs[i].leg;
    int64_t committed = 0;
    int approved = 0, granted = 0, declined = 0;
    const Qp__V1__FundingLeg *main_leg = NULL;
    char reason[1024] = "";
    size_t rl = 0;
    for (int i = 0; i < n; i++) {
        Qp__V1__FundingLeg *leg = legs[i].leg;
        bool keep = !failed_anchor && leg->state == QP__V1__LEG_STATE__LEG_APPROVED;
        int64_t amount = keep ? leg->amount_cents : 0;
        char entry[96] = "";
        if (leg->reserved) {
            if (budget_settle (self->redis, leg->scheme_id, id, keep, leg->amount_cents, entry,
                               sizeof entry) == BUDGET_ERROR)
                return; /* Redis down: the due sweeper finalizes again */
            if (keep && strncmp (entry, "committed:", 10) != 0) {
                keep = false; /* the reservation passed its deadline before the plan closed */
                amount = 0;
            }
            if (keep)
                amount = budget_entry_amount (entry);
        }
        declined += leg->state == QP__V1__LEG_STATE__LEG_DECLINED;
        granted += leg->state == QP__V1__LEG_STATE__LEG_GRANTED;
        if (keep) {
            approved++;
            committed += amount;
            if (!main_leg)
                main_leg = leg;
        }
        const char *what = keep ? "committed"
                           : leg->state == QP__V1__LEG_STATE__LEG_GRANTED ? "granted"
                           : failed_anchor && leg->state == QP__V1__LEG_STATE__LEG_APPROVED
                               ? "released (compensation)"
                               : "released";
        rl += (size_t) snprintf (reason + rl, rl < sizeof reason ? sizeof reason - rl : 0,
                                 "%s%s %s%s%s", rl ? "; " : "", leg->scheme_id, what,
                                 leg->reason && !keep ? ": " : "",
                                 leg->reason && !keep ? leg->reason : "");
        if (rl >= sizeof reason)
            rl = sizeof reason - 1;
        if (leg->state != QP__V1__LEG_STATE__LEG_GRANTED)
            s_publish_settled (self, id, leg,
                               keep ? QP__V1__SETTLEMENT_OUTCOME__COMMITTED
                               : leg->state == QP__V1__LEG_STATE__LEG_NO_BUDGET
                                   ? QP__V1__SETTLEMENT_OUTCOME__NO_BUDGET
                                   : QP__V1__SETTLEMENT_OUTCOME__RELEASED,
                               keep ? amount : budget_entry_amount (entry), territory,
                               keep ? NULL : leg->reason, cause, time_ms);
    }
    Qp__V1__DossierState to;
    if (failed_anchor)
        to = failed_anchor->state == QP__V1__LEG_STATE__LEG_DECLINED
                 ? QP__V1__DOSSIER_STATE__DECLINED
                 : QP__V1__DOSSIER_STATE__UNFUNDED;
    else if (approved || (granted && granted == n))
        to = QP__V1__DOSSIER_STATE__FUNDED;
    else
        to = declined ? QP__V1__DOSSIER_STATE__DECLINED : QP__V1__DOSSIER_STATE__UNFUNDED;
    char final[1200];
    if (failed_anchor)
        snprintf (final, sizeof final, "%s failed, the plan depends on it: %s",
                  failed_anchor->scheme_id, reason);
    else
        snprintf (final, sizeof final, "%s", reason);

    Qp__V1__FundingSettled s = QP__V1__FUNDING_SETTLED__INIT;
    s.dossier_id = (char *) id;
    s.scheme_id = main_leg ? main_leg->scheme_id : legs[0].leg->scheme_id;
    s.has_agency = true, s.agency = main_leg ? main_leg->agency : legs[0].leg->agency;
    s.has_outcome = true;
    s.outcome = to == QP__V1__DOSSIER_STATE__FUNDED ? QP__V1__SETTLEMENT_OUTCOME__COMMITTED
                                                   : QP__V1__SETTLEMENT_OUTCOME__RELEASED;
    s.has_amount_cents = true, s.amount_cents = committed;
    s.territory = (char *) territory;
    s.reason = final;
    size_t len = qp__v1__funding_settled__get_packed_size (&s);
    uint8_t *packed = malloc (len ? len : 1);
    qp__v1__funding_settled__pack (&s, packed);
    char c[24];
    snprintf (c, sizeof c, "%lld", (long long) committed);
    qp_store_field_t fields[] = {{"settlement", packed, len},
                                 {"committed_cents", c, strlen (c)},
                                 {"final_reason", final, strlen (final)}};
    char closed_id[QP_ID_HEX + 1];
    qp_message_make_id (closed_id, qp__v1__dossier_closed__descriptor.name, cause, id);
    Qp__V1__DossierState now;
    Qp__V1__DossierClosed closed = QP__V1__DOSSIER_CLOSED__INIT;
    closed.dossier_id = (char *) id;
    closed.has_final_state = true, closed.final_state = to;
    closed.territory = (char *) territory;
    closed.reason = final;
    closed.has_committed_cents = true, closed.committed_cents = committed;
    /* The closure is written to the outbox by the transition itself (qp_service.h). */
    qp_event_t events[] = {{&closed.base, {.correlation_id = id, .causation_id = cause,
                                           .event_time_ms = time_ms, .discriminator = id}}};
    qp_store_result_t rc = qp_service_transition (self->service, self->redis, id, from, to,
                                                  time_ms, closed_id, final, fields, 3, events, 1,
                                                  &now);
    free (packed);
    if (rc == QP_STORE_APPLIED) {
        redisReply *r = qp_redis_command (self->redis, "ZREM %s %s", DUE_KEY, id);
        if (r)
            freeReplyObject (r);
    } else if (rc == QP_STORE_ALREADY) {
        redisReply *r = qp_redis_command (self->redis, "ZREM %s %s", DUE_KEY, id);
        if (r)
            freeReplyObject (r);
    }
}

/* ---- routing and the saga -------------------------------------------------------------- */

/* A live component of the leg's agency that announced the scheme, from the partner
 * cache; the choice is a function of (request, attempt) so that a retry may land on
 * another instance. false when none is live. */
static bool s_route (funding_t *self, const Qp__V1__FundingLeg *leg, char *component, size_t size)
{
    char key[160], now[24];
    snprintf (key, sizeof key, "qp:route:{%s}", leg->scheme_id);
    /* Statuses handled late because this instance is behind do not make a component dead. */
    snprintf (now, sizeof now, "%lld", (long long) (qp_now_ms () - self->lag_ms));
    redisReply *r = qp_redis_command (self->redis, "ZRANGEBYSCORE %s %s +inf", key, now);
    const char *agency = s_agency_name (leg->agency);
    size_t alen = strlen (agency);
    const char *live[64];
    size_t n = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && n < 64; i++)
        if (!strncmp (r->element[i]->str, agency, alen) && r->element[i]->str[alen] == '/')
            live[n++] = r->element[i]->str + alen + 1;
    if (n) {
        char h[QP_ID_HEX + 1], seed[16];
        snprintf (seed, sizeof seed, "%u", leg->attempts);
        qp_message_make_id (h, "qp.funding.route", leg->request_id, seed);
        snprintf (component, size, "%s", live[strtoul ((char[9]) {h[0], h[1], h[2], h[3], h[4],
                                                                  h[5], h[6], h[7], 0},
                                                        NULL, 16) % n]);
    }
    if (r)
        freeReplyObject (r);
    return n > 0;
}

/* Acts on every leg whose time has come (ask, ask again, give up), then closes the
 * dossier when every leg is final. */
static void s_drive (funding_t *self, const char *id, const char *cause, int64_t time_ms)
{
    leg_t legs[MAX_LEGS];
    int n = s_legs_load (self, id, legs, MAX_LEGS);
    if (n <= 0)
        return;
    int64_t now = qp_now_ms (), next = INT64_MAX;
    int open = 0;
    const char *territory = NULL;
    for (int i = 0; i < n; i++) {
        Qp__V1__FundingLeg *leg = legs[i].leg;
        if (leg->request && leg->request->summary)
            territory = leg->request->summary->territory;
        if (s_final (leg->state))
            continue;
        /* An answer may be waiting in this instance's inbox: the deadline moves with the lag. */
        int64_t lag = leg->state == QP__V1__LEG_STATE__LEG_ASKED ? self->lag_ms : 0;
        if (leg->next_attempt_ms + lag > now) {
            open++;
            next = leg->next_attempt_ms < next ? leg->next_attempt_ms : next;
            continue;
        }
        char note[512], component[128], step[600];
        bool routed = s_route (self, leg, component, sizeof component);
        if ((routed || leg->state == QP__V1__LEG_STATE__LEG_ASKED) &&
            leg->attempts >= (uint32_t) self->max_attempts) {
            /* Asked the maximum of times: the partner stayed silent. */
            leg->state = QP__V1__LEG_STATE__LEG_FAILED;
            snprintf (note, sizeof note, "%s did not answer after %u requests",
                      leg->component_id && *leg->component_id ? leg->component_id
                                                              : "the partner",
                      leg->attempts);
            s_set_str (&leg->reason, note);
            snprintf (step, sizeof step, "%s: failed, %s", leg->scheme_id, note);
            s_leg_save (self, id, &legs[i], step);
            continue;
        }
        if (routed) {
            leg->attempts++;
            leg->has_waiting_since_ms = true, leg->waiting_since_ms = 0;
            leg->state = QP__V1__LEG_STATE__LEG_ASKED;
            s_set_str (&leg->component_id, component);
            leg->next_attempt_ms = now + s_timeout (self, leg->agency) +
                                   funding_backoff_ms (self, leg->request_id, leg->attempts);
            leg->request->has_attempt = true, leg->request->attempt = leg->attempts;
            snprintf (note, sizeof note, "%s: asked %s (attempt %u, answer due within %lld ms)",
                      leg->scheme_id, component, leg->attempts,
                      (long long) s_timeout (self, leg->agency));
            if (s_leg_save (self, id, &legs[i], note)) {
                char service[200];
                funding_partner_service (leg->agency, component, service, sizeof service);
                char disc[QP_ID_HEX + 16];
                snprintf (disc, sizeof disc, "%s/%u", leg->request_id, leg->attempts);
                qp_meta_t meta = {.correlation_id = id, .causation_id = cause,
                                  .event_time_ms = time_ms, .discriminator = disc};
                qp_service_send (self->service, service, &leg->request->base, &meta);
                if (leg->attempts == 1)
                    qp_service_publish (self->service, &leg->request->base, &meta);
            }
        } else {
            /* No live component: the leg waits (backoff) up to no_component_wait_ms. */
            if (!leg->waiting_since_ms)
                leg->has_waiting_since_ms = true, leg->waiting_since_ms = now;
            int64_t waited = now - leg->waiting_since_ms;
            uint32_t tries = leg->attempts + 1 + (uint32_t) (waited / (self->backoff_base_ms + 1));
            if (waited >= self->no_component_wait_ms) {
                leg->state = QP__V1__LEG_STATE__LEG_FAILED;
                /* No measured duration in the reason: decisions must replay identically. */
                snprintf (note, sizeof note, "no live component of %s serves %s within %lld ms",
                          s_agency_name (leg->agency), leg->scheme_id,
                          (long long) self->no_component_wait_ms);
                s_set_str (&leg->reason, note);
                snprintf (step, sizeof step, "%s: failed, %s", leg->scheme_id, note);
                s_leg_save (self, id, &legs[i], step);
                continue;
            }
            bool first = leg->state != QP__V1__LEG_STATE__LEG_PENDING || !leg->reason;
            leg->state = QP__V1__LEG_STATE__LEG_PENDING;
            leg->next_attempt_ms = now + funding_backoff_ms (self, leg->request_id, tries);
            snprintf (note, sizeof note, "no live component of %s, waiting",
                      s_agency_name (leg->agency));
            s_set_str (&leg->reason, note);
            snprintf (step, sizeof step, "%s: %s", leg->scheme_id, note);
            /* One history step when the wait starts, not one per try. */
            s_leg_save (self, id, &legs[i], first ? step : NULL);
        }
        open++;
        next = leg->next_attempt_ms < next ? leg->next_attempt_ms : next;
    }
    if (!open)
        s_finalize (self, id, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, legs, n, territory, cause,
                    time_ms);
    else {
        redisReply *r = qp_redis_command (self->redis, "ZADD %s %lld %s", DUE_KEY,
                                          (long long) next, id);
        if (r)
            freeReplyObject (r);
    }
    s_legs_free (legs, n);
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

/* One leg of the plan, with the request its partner will see (no personal identity). */
static Qp__V1__FundingLeg *s_leg_new (funding_t *self, const char *id,
                                      const Qp__V1__SchemeDecision *sd,
                                      const Qp__V1__EligibilityDecided *e,
                                      const Qp__V1__Dossier *d)
{
    Qp__V1__FundingLeg *leg = calloc (1, sizeof *leg);
    qp__v1__funding_leg__init (leg);
    const qp_scheme_t *scheme = qp_catalogue_find (self->catalogue, sd->scheme_id);
    leg->scheme_id = strdup (sd->scheme_id);
    leg->has_agency = true, leg->agency = scheme ? scheme->agency : sd->agency;
    leg->kind = strdup (s_kind (self, sd->scheme_id));
    leg->has_anchor = true, leg->anchor = s_anchor (self, sd->scheme_id);
    leg->has_state = true, leg->state = QP__V1__LEG_STATE__LEG_PENDING;
    leg->has_amount_asked_cents = true, leg->amount_asked_cents = sd->amount_cents;
    char request_id[QP_ID_HEX + 1];
    qp_message_make_id (request_id, qp__v1__funding_request__descriptor.name, id, sd->scheme_id);
    leg->request_id = strdup (request_id);
    leg->has_attempts = true;
    leg->has_next_attempt_ms = true;

    Qp__V1__FundingRequest *rq = calloc (1, sizeof *rq);
    qp__v1__funding_request__init (rq);
    rq->request_id = strdup (request_id);
    rq->dossier_id = strdup (id);
    rq->scheme_id = strdup (sd->scheme_id);
    rq->has_agency = true, rq->agency = leg->agency;
    rq->has_amount_asked_cents = true, rq->amount_asked_cents = sd->amount_cents;
    Qp__V1__LoanTerms *terms = calloc (1, sizeof *terms);
    qp__v1__loan_terms__init (terms);
    terms->has_amount_cents = true, terms->amount_cents = sd->amount_cents;
    if (d->project && d->project->has_honour_loan_months)
        terms->has_duration_months = true, terms->duration_months = d->project->honour_loan_months;
    if (d->project && d->project->has_deferral_months)
        terms->has_deferral_months = true, terms->deferral_months = d->project->deferral_months;
    terms->has_rate_bp = true;
    rq->terms = terms;
    rq->summary = s_summary (d, e->territory,
                             e->business_location ? e->business_location->qpv_code
                             : e->residence_location ? e->residence_location->qpv_code
                                                     : NULL);
    rq->has_attempt = true;
    leg->request = rq;
    return leg;
}

/* ELIGIBLE: the plan (once), the reservations (once each), then FUNDING_REQUESTED and the
 * first requests. */
static void s_request (funding_t *self, const Qp__V1__EligibilityDecided *e, const char *cause,
                       int64_t time_ms)
{
    const char *id = e->dossier_id;
    size_t len = 0;
    char *packed = qp_store_get (self->redis, id, "dossier", &len);
    Qp__V1__Dossier *d = packed ? qp__v1__dossier__unpack (NULL, len, (uint8_t *) packed) : NULL;
    free (packed);
    if (!d) {
        qp_log_error ("dossier_unreadable", "dossier %s has no readable dossier field", id);
        return;
    }
    leg_t legs[MAX_LEGS];
    int n = 0;
    bool anchor_refused = false;
    int64_t deadline = qp_now_ms () + self->reservation_ttl_ms;
    for (size_t i = 0; i < e->n_decisions && n < MAX_LEGS; i++) {
        const Qp__V1__SchemeDecision *sd = e->decisions[i];
        if (sd->outcome != QP__V1__OUTCOME__ELIGIBLE_OUTCOME || !sd->scheme_id ||
            strchr (sd->scheme_id, ',') || strchr (sd->scheme_id, ':'))
            continue;
        Qp__V1__FundingLeg *leg = s_leg_new (self, id, sd, e, d);
        snprintf (legs[n].version, sizeof legs[n].version, "1");
        legs[n++].leg = leg;
        if (!strcmp (leg->kind, "tax_exemption")) {
            leg->state = QP__V1__LEG_STATE__LEG_GRANTED;
            leg->has_amount_cents = true;
            leg->reason = strdup ("tax exemption: granted once eligible, no partner request");
            continue;
        }
        if (sd->amount_cents <= 0)
            continue;
        char entry[96];
        budget_result_t b = budget_reserve (self->redis, sd->scheme_id, id, sd->amount_cents,
                                            e->territory, deadline, entry, sizeof entry);
        if (b == BUDGET_ERROR) {
            s_legs_free (legs, n);
            qp__v1__dossier__free_unpacked (d, NULL);
            return; /* Redis down: the ELIGIBLE lease brings the dossier back */
        }
        leg->has_reserved = true, leg->reserved = b == BUDGET_RESERVED;
        if (b == BUDGET_REFUSED || b == BUDGET_SETTLED) {
            leg->state = QP__V1__LEG_STATE__LEG_NO_BUDGET;
            leg->reason = strdup (b == BUDGET_REFUSED
                                      ? "the scheme's budget envelope or the territory's drawing "
                                        "right is exhausted"
                                      : "the reservation was already settled");
            anchor_refused |= leg->anchor;
        }
    }
    qp__v1__dossier__free_unpacked (d, NULL);
    if (!n) {
        qp_log_warn ("nothing_to_fund", "dossier %s: no eligible scheme", id);
        return;
    }
    /* The plan, once: a concurrent instance built the same one from the same inputs. */
    char k_f[64], list[512] = "";
    snprintf (k_f, sizeof k_f, "qp:{%s}:f", id);
    const char *args[1 + 2 * MAX_LEGS];
    size_t lens[1 + 2 * MAX_LEGS];
    uint8_t *bufs[MAX_LEGS];
    for (int i = 0; i < n; i++) {
        snprintf (list + strlen (list), sizeof list - strlen (list), "%s%s", i ? "," : "",
                  legs[i].leg->scheme_id);
        lens[1 + 2 * i] = strlen (legs[i].leg->scheme_id);
        args[1 + 2 * i] = legs[i].leg->scheme_id;
        lens[2 + 2 * i] = qp__v1__funding_leg__get_packed_size (legs[i].leg);
        bufs[i] = malloc (lens[2 + 2 * i] ? lens[2 + 2 * i] : 1);
        qp__v1__funding_leg__pack (legs[i].leg, bufs[i]);
        args[2 + 2 * i] = (char *) bufs[i];
    }
    args[0] = list, lens[0] = strlen (list);
    const char *keys[] = {k_f};
    redisReply *r = qp_redis_script (self->redis, QP_LUA_FUNDING_PLAN, 1, keys, 1 + 2 * n, args,
                                     lens);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r)
        freeReplyObject (r);
    for (int i = 0; i < n; i++)
        free (bufs[i]);
    s_legs_free (legs, n);
    if (!ok)
        return;
    /* What Redis holds is the plan (ours, or the one another instance wrote first). */
    n = s_legs_load (self, id, legs, MAX_LEGS);
    if (n <= 0)
        return;
    anchor_refused = false;
    int no_budget = 0;
    for (int i = 0; i < n; i++) {
        no_budget += legs[i].leg->state == QP__V1__LEG_STATE__LEG_NO_BUDGET;
        anchor_refused |= legs[i].leg->anchor &&
                          legs[i].leg->state == QP__V1__LEG_STATE__LEG_NO_BUDGET;
    }
    if (anchor_refused || no_budget == n) {
        s_finalize (self, id, QP__V1__DOSSIER_STATE__ELIGIBLE, legs, n, e->territory, cause,
                    time_ms);
        s_legs_free (legs, n);
        return;
    }
    s_legs_free (legs, n);
    char request_msg[QP_ID_HEX + 1];
    qp_message_make_id (request_msg, qp__v1__funding_request__descriptor.name, cause, id);
    qp_store_field_t fields[] = {{"scheme", list, strlen (list)}};
    Qp__V1__DossierState now;
    qp_store_result_t rc = qp_store_transition (
        self->redis, id, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
        time_ms, request_msg, "funding plan: amounts reserved, partners to ask", fields, 1, &now);
    if (rc == QP_STORE_APPLIED || (rc == QP_STORE_ALREADY &&
                                   now == QP__V1__DOSSIER_STATE__FUNDING_REQUESTED))
        s_drive (self, id, cause, time_ms);
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

/* A partner's answer to one leg: recorded once, then the saga moves on. */
static void s_on_partner_decision (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerDecision *pd = (Qp__V1__PartnerDecision *) req->msg.payload;
    Qp__V1__Envelope *env = req->msg.envelope;
    qp_error_t err;
    if (!pd->dossier_id || !pd->request_id || !pd->scheme_id || !pd->has_outcome ||
        pd->outcome == QP__V1__PARTNER_OUTCOME__PARTNER_OUTCOME_UNSPECIFIED) {
        qp_error_set (&err, "invalid_field",
                      !pd->dossier_id   ? "dossier_id"
                      : !pd->request_id ? "request_id"
                      : !pd->scheme_id  ? "scheme_id"
                                        : "outcome",
                      "a PartnerDecision needs dossier_id, request_id, scheme_id and outcome");
        qp_service_reply_error (req, &err);
        return;
    }
    for (int tries = 0; tries < 5; tries++) {
        leg_t legs[MAX_LEGS];
        int n = s_legs_load (self, pd->dossier_id, legs, MAX_LEGS);
        leg_t *l = NULL;
        for (int i = 0; i < n && !l; i++)
            if (!strcmp (legs[i].leg->scheme_id, pd->scheme_id))
                l = &legs[i];
        int done = 1;
        if (!l || !l->leg->request_id || strcmp (l->leg->request_id, pd->request_id)) {
            qp_error_set (&err, "unknown_request", "request_id",
                          "no funding request %s for dossier %s, scheme %s", pd->request_id,
                          pd->dossier_id, pd->scheme_id);
            qp_log_warn ("unknown_request", "%s (from %s)", err.message,
                         pd->component_id ? pd->component_id : "?");
            qp_service_reply_error (req, &err);
        } else if (!pd->has_agency || pd->agency != l->leg->agency) {
            qp_error_set (&err, "forbidden", "agency",
                          "request %s is for %s's scheme %s, answered as %s", pd->request_id,
                          s_agency_name (l->leg->agency), pd->scheme_id,
                          s_agency_name (pd->agency));
            qp_log_warn ("partner_forbidden", "%s", err.message);
            qp_service_reply_error (req, &err);
        } else if (s_final (l->leg->state)) {
            qp_error_set (&err, "already_decided", "request_id",
                          "request %s was already settled (%s); this answer changes nothing",
                          pd->request_id, l->leg->reason ? l->leg->reason : "");
            qp_log_warn ("duplicate_answer", "%s (from %s)", err.message,
                         pd->component_id ? pd->component_id : "?");
            qp_service_reply_error (req, &err);
        } else {
            Qp__V1__FundingLeg *leg = l->leg;
            bool approved = pd->outcome == QP__V1__PARTNER_OUTCOME__APPROVED;
            int64_t granted = approved && pd->terms && pd->terms->has_amount_cents
                                  ? pd->terms->amount_cents
                                  : leg->amount_asked_cents;
            char note[700];
            if (approved && (granted < 0 || granted > leg->amount_asked_cents ||
                             (granted == 0 && leg->amount_asked_cents > 0))) {
                qp_error_set (&err, "invalid_field", "terms.amount_cents",
                              "approved amount %lld must be > 0 and ≤ the %lld asked",
                              (long long) granted, (long long) leg->amount_asked_cents);
                qp_service_reply_error (req, &err);
            } else if (approved && s_honour_loan (self, leg->scheme_id) &&
                       terms_check (&self->honour_loan, pd->terms, &err) != 0) {
                qp_log_warn ("bad_terms", "request %s: %s", pd->request_id, err.message);
                qp_service_reply_error (req, &err);
            } else {
                leg->state = approved ? QP__V1__LEG_STATE__LEG_APPROVED
                                      : QP__V1__LEG_STATE__LEG_DECLINED;
                leg->has_amount_cents = true, leg->amount_cents = approved ? granted : 0;
                s_set_str (&leg->component_id, pd->component_id);
                if (approved) {
                    snprintf (note, sizeof note, "approved by %s",
                              pd->component_id ? pd->component_id : "the partner");
                    if (leg->terms)
                        qp__v1__loan_terms__free_unpacked (leg->terms, NULL);
                    leg->terms = calloc (1, sizeof *leg->terms);
                    qp__v1__loan_terms__init (leg->terms);
                    if (pd->terms) {
                        *leg->terms = *pd->terms;
                        leg->terms->base.unknown_fields = NULL;
                        leg->terms->base.n_unknown_fields = 0;
                    }
                    leg->terms->has_amount_cents = true, leg->terms->amount_cents = granted;
                    if (s_honour_loan (self, leg->scheme_id)) {
                        Qp__V1__HonourLoanTerms *h = calloc (1, sizeof *h);
                        qp__v1__honour_loan_terms__init (h);
                        const Qp__V1__DossierSummary *s = leg->request ? leg->request->summary : NULL;
                        terms_honour_loan (leg->terms, s ? s->bank_loan_cents : 0,
                                           qp_date_from_ms (env->has_event_time_ms ? env->event_time_ms : 0), h);
                        if (leg->honour_loan)
                            qp__v1__honour_loan_terms__free_unpacked (leg->honour_loan, NULL);
                        leg->honour_loan = h;
                    }
                } else
                    snprintf (note, sizeof note, "%s by %s: %s",
                              pd->outcome == QP__V1__PARTNER_OUTCOME__INFORMATION_NEEDED
                                  ? "information needed"
                                  : "declined",
                              pd->component_id ? pd->component_id : "the partner",
                              pd->reason ? pd->reason : "no reason given");
                s_set_str (&leg->reason, note);
                char step[800];
                snprintf (step, sizeof step, "%s: %s", leg->scheme_id, note);
                if (!s_leg_save (self, pd->dossier_id, l, step))
                    done = 0; /* changed meanwhile (a sweeper re-asked): read it again */
            }
        }
        s_legs_free (legs, n);
        if (done)
            break;
    }
    /* The dossier may be complete now. */
    s_drive (self, pd->dossier_id, env->message_id,
             env->has_event_time_ms ? env->event_time_ms : 0);
}

/* ---- the partner cache ---------------------------------------------------------------- */

#define PARTNER_TTL_FLOOR_MS 10000

/* Caches a hello or status in Redis and puts the component in (or out of) routing. */
static void s_cache_partner (funding_t *self, const char *component, Qp__V1__Agency agency,
                             uint32_t interval_ms, const char *accepting, const char *schemes,
                             const char **kv, int n_kv)
{
    char key[160], set[96], ttl[24], until[24], seen[24];
    int64_t now = qp_now_ms ();
    /* Three intervals, and never under PARTNER_TTL_FLOOR_MS: a funding instance stalled a
     * few seconds (a burst, a slow Redis) must not take live components out of routing. */
    uint32_t ttl_ms = 3 * (interval_ms ? interval_ms : 1000);
    if (ttl_ms < PARTNER_TTL_FLOOR_MS)
        ttl_ms = PARTNER_TTL_FLOOR_MS;
    snprintf (key, sizeof key, "qp:partner:%s", component);
    snprintf (set, sizeof set, "qp:partners:%s", s_agency_name (agency));
    snprintf (ttl, sizeof ttl, "%u", ttl_ms);
    snprintf (until, sizeof until, "%lld", (long long) (now + ttl_ms));
    snprintf (seen, sizeof seen, "%lld", (long long) now);
    const char *args[24] = {component, s_agency_name (agency), ttl, until, accepting, schemes,
                            "last_seen_ms", seen};
    int nargs = 8;
    for (int i = 0; i < n_kv && nargs < 24; i++)
        args[nargs++] = kv[i];
    const char *keys[] = {key, set};
    redisReply *r = qp_redis_script (self->redis, QP_LUA_PARTNER_REPORT, 2, keys, nargs, args, NULL);
    if (r && r->type == REDIS_REPLY_ERROR)
        qp_log_error ("redis_error", "partner cache: %s", r->str);
    if (r)
        freeReplyObject (r);
}

static bool s_component_ok (qp_request_t *req, const char *component, bool has_agency,
                            Qp__V1__Agency agency)
{
    qp_error_t err;
    bool ok = component && *component && strlen (component) <= 40 && has_agency &&
              agency != QP__V1__AGENCY__AGENCY_UNSPECIFIED;
    for (const char *p = component; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '-' || *p == '_';
    if (!ok) {
        qp_error_set (&err, "invalid_field", component && *component ? "agency" : "component_id",
                      "a component needs an agency and an id of 1-40 letters, digits, - or _");
        qp_service_reply_error (req, &err);
    }
    return ok;
}

static void s_on_hello (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerHello *h = (Qp__V1__PartnerHello *) req->msg.payload;
    if (!s_component_ok (req, h->component_id, h->has_agency, h->agency))
        return;
    /* A component routes only its own agency's schemes. */
    char schemes[512] = "", refused[256] = "";
    for (size_t i = 0; i < h->n_schemes; i++) {
        const qp_scheme_t *s = qp_catalogue_find (self->catalogue, h->schemes[i]);
        bool ours = !s || s->agency == h->agency;
        char *out = ours ? schemes : refused;
        size_t size = ours ? sizeof schemes : sizeof refused;
        if (strchr (h->schemes[i], ',') || strchr (h->schemes[i], '}'))
            continue;
        snprintf (out + strlen (out), size - strlen (out), "%s%s", *out ? "," : "", h->schemes[i]);
    }
    if (*refused) {
        qp_error_t err;
        qp_error_set (&err, "forbidden", "schemes",
                      "%s announces %s, schemes of another agency: not routed to it",
                      h->component_id, refused);
        qp_log_warn ("partner_forbidden", "%s", err.message);
        qp_service_reply_error (req, &err);
    }
    char capacity[16];
    snprintf (capacity, sizeof capacity, "%u", h->capacity);
    const char *kv[] = {"name",     h->component_name ? h->component_name : "",
                        "version",  h->version ? h->version : "",
                        "capacity", capacity};
    s_cache_partner (self, h->component_id, h->agency, h->status_interval_ms, "",
                     *schemes ? schemes : ",", kv, 6);
    qp_log_info ("partner_hello", "component %s (%s %s) of %s serves %s", h->component_id,
                 h->component_name ? h->component_name : "?", h->version ? h->version : "?",
                 s_agency_name (h->agency), schemes);
}

static void s_on_status (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerStatus *s = (Qp__V1__PartnerStatus *) req->msg.payload;
    if (!s_component_ok (req, s->component_id, s->has_agency, s->agency))
        return;
    /* A status carries its sending time: how long it waited is this instance's lag. */
    Qp__V1__Envelope *env = req->msg.envelope;
    if (env->has_event_time_ms) {
        int64_t lag = qp_now_ms () - env->event_time_ms;
        self->lag_ms = lag < 0 ? 0 : lag > 600000 ? 600000 : lag;
    }
    char budget[24], in_flight[16];
    snprintf (budget, sizeof budget, "%lld", (long long) s->remaining_budget_cents);
    snprintf (in_flight, sizeof in_flight, "%u", s->in_flight);
    bool accepting = s->alive && s->accepting;
    const char *kv[] = {"alive", s->alive ? "1" : "0", "accepting", accepting ? "1" : "0",
                        "remaining_budget_cents", budget, "in_flight", in_flight};
    s_cache_partner (self, s->component_id, s->agency, s->status_interval_ms,
                     accepting ? "1" : "0", "", kv, 8);
}

/* ---- sweepers ------------------------------------------------------------------------- */

static void s_sweep_eligible (funding_t *self)
{
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__ELIGIBLE, qp_now_ms (),
                                       ids, SWEEP_BATCH);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        char *packed = qp_store_get (self->redis, ids[i], "eligibility", &len);
        Qp__V1__EligibilityDecided *e =
            packed ? qp__v1__eligibility_decided__unpack (NULL, len, (uint8_t *) packed) : NULL;
        if (e) {
            char decided[QP_ID_HEX + 1];
            int64_t time_ms;
            s_chain (self->redis, ids[i], decided, &time_ms);
            qp_log_info ("redispatch", "dossier %s: ELIGIBLE lease expired, planning again", ids[i]);
            s_request (self, e, decided, time_ms);
            qp__v1__eligibility_decided__free_unpacked (e, NULL);
        }
        free (packed);
        free (ids[i]);
    }
}

/* Dossiers whose next action is due (timeouts, backoff), and FUNDING_REQUESTED dossiers
 * whose lease expired (a funding instance died between two steps). */
static void s_sweep_due (funding_t *self)
{
    char now[24], limit[16], push[16];
    snprintf (now, sizeof now, "%lld", (long long) qp_now_ms ());
    snprintf (limit, sizeof limit, "%d", SWEEP_BATCH);
    snprintf (push, sizeof push, "%d", 5000);
    const char *keys[] = {DUE_KEY};
    const char *args[] = {now, limit, push};
    redisReply *r = qp_redis_script (self->redis, QP_LUA_FUNDING_DUE_CLAIM, 1, keys, 3, args, NULL);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        char decided[QP_ID_HEX + 1];
        int64_t time_ms;
        s_chain (self->redis, r->element[i]->str, decided, &time_ms);
        s_drive (self, r->element[i]->str, decided, time_ms);
    }
    if (r)
        freeReplyObject (r);
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
                                       qp_now_ms (), ids, SWEEP_BATCH);
    for (size_t i = 0; i < n; i++) {
        char decided[QP_ID_HEX + 1];
        int64_t time_ms;
        s_chain (self->redis, ids[i], decided, &time_ms);
        s_drive (self, ids[i], decided, time_ms);
        free (ids[i]);
    }
}

static void s_sweep (qp_service_t *service, void *arg)
{
    (void) service;
    funding_t *self = arg;
    s_sweep_eligible (self);
    s_sweep_due (self);
    for (size_t i = 0; i < self->n_envelope_schemes; i++)
        budget_expire (self->redis, self->envelope_schemes[i], qp_now_ms (), SWEEP_BATCH);
}

void funding_register (funding_t *self)
{
    qp_service_on (self->service, &qp__v1__eligibility_decided__descriptor, s_on_decided, self);
    qp_service_on (self->service, &qp__v1__partner_decision__descriptor, s_on_partner_decision,
                   self);
    qp_service_on (self->service, &qp__v1__partner_hello__descriptor, s_on_hello, self);
    qp_service_on (self->service, &qp__v1__partner_status__descriptor, s_on_status, self);
    qp_service_every (self->service, SWEEP_INTERVAL_MS, s_sweep, self);
    qp_service_outbox (self->service, self->redis); /* sweeps what a dead instance left */
}
