/* Eligibility: decisions, the RECEIVED -> ELIGIBLE | NOT_ELIGIBLE step, the sweeper. */
#include "eligibility.h"
#include "qp/v1/eligibility.pb-c.h"
#include "qp_bucket.h"
#include "qp_date.h"
#include "qp_log.h"
#include "qp_store.h"
#include "rules.h"
#include <signal.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 1000
#define SWEEP_BATCH 200

/* A QPV location for the decision message. */
static Qp__V1__QpvLocation *s_location (const char *code, const char *name, bool verified,
                                        double distance_m)
{
    Qp__V1__QpvLocation *l = malloc (sizeof *l);
    assert (l);
    qp__v1__qpv_location__init (l);
    l->qpv_code = strdup (code);
    if (name)
        l->qpv_name = strdup (name);
    l->has_verified = true;
    l->verified = verified;
    if (verified)
        l->has_distance_m = true, l->distance_m = distance_m;
    return l;
}

/* One place (the business or the residence): coordinates on the contours win over a
 * declared code; a declared code alone is "declared, not verified". */
static void s_locate_one (const eligibility_geo_t *geo, const char *what,
                          const Qp__V1__Coordinates *at, const char *declared,
                          Qp__V1__QpvLocation **slot, rules_facts_t *facts, qp_fact_t fact)
{
    char detail[120] = "";
    bool say = !facts->terse; /* the details are for explanations only */
    if (geo && geo->index && at && at->has_lat && at->has_lon) {
        qp_error_t err;
        qp_qpv_hit_t hit;
        if (!qp_qpv_coordinates_valid (at->lat, at->lon, &err))
            return; /* intake refuses these; leave the fact unknown rather than guess */
        if (qp_qpv_lookup (geo->index, at->lat, at->lon, geo->tolerance_m, &hit)) {
            *slot = s_location (hit.code, hit.name, true, hit.distance_m);
            if (say && hit.distance_m > 0)
                snprintf (detail, sizeof detail, "%s %.0f m from QPV %s (within %.0f m)", what,
                          hit.distance_m, hit.code, geo->tolerance_m);
            else if (say)
                snprintf (detail, sizeof detail, "%s inside QPV %s (official contours)", what,
                          hit.code);
            rules_facts_set (facts, fact, RULES_TRUE, detail);
        } else {
            if (say)
                snprintf (detail, sizeof detail, "%s (%.5f, %.5f) in no QPV%s%s", what, at->lat,
                          at->lon, declared && *declared ? ", though declared in " : "",
                          declared && *declared ? declared : "");
            rules_facts_set (facts, fact, RULES_FALSE, detail);
        }
        return;
    }
    if (!declared || !*declared)
        return; /* unknown: a criterion that needs it says which field is missing */
    const qp_qpv_info_t *info = geo && geo->index ? qp_qpv_find_code (geo->index, declared) : NULL;
    if (geo && geo->index && !info) {
        if (say)
            snprintf (detail, sizeof detail,
                      "%s declared in %.20s, which is not a current QPV code", what, declared);
        rules_facts_set (facts, fact, RULES_FALSE, detail);
        return;
    }
    *slot = s_location (declared, info ? info->name : NULL, false, 0);
    if (say)
        snprintf (detail, sizeof detail, "%s declared in QPV %.20s, not verified", what, declared);
    rules_facts_set (facts, fact, RULES_TRUE, detail);
}

void eligibility_locate (const eligibility_geo_t *geo, const Qp__V1__Dossier *dossier,
                         Qp__V1__EligibilityDecided *e, rules_facts_t *facts)
{
    const Qp__V1__Business *b = dossier->business;
    const Qp__V1__ProjectHolder *h = dossier->holder;
    s_locate_one (geo, "the business", b ? b->location : NULL, b ? b->declared_qpv : NULL,
                  &e->business_location, facts, QP_FACT_BUSINESS_IN_QPV);
    s_locate_one (geo, "the residence", h ? h->residence_location : NULL,
                  h ? h->residence_qpv : NULL, &e->residence_location, facts,
                  QP_FACT_RESIDENCE_IN_QPV);
}

/* The wire value of each fact (proto enum qp.v1.Fact; test_rules checks the names). */
static const Qp__V1__Fact s_fact_wire[QP_FACT_COUNT] = {
    QP__V1__FACT__FACT_BUSINESS_IN_QPV,
    QP__V1__FACT__FACT_RESIDENCE_IN_QPV,
    QP__V1__FACT__FACT_IN_PROGRAMME_TERRITORY,
    QP__V1__FACT__FACT_FIRST_PHQ_FOR_PERSON_NETWORK,
    QP__V1__FACT__FACT_BUSINESS_IN_ZFU_TE,
    QP__V1__FACT__FACT_HOLDER_IN_TARGET_GROUP,
    QP__V1__FACT__FACT_ZFU_RESIDENT_EMPLOYEES_HALF,
    QP__V1__FACT__FACT_PREMISES_IN_NPNRU_PROJECT,
    QP__V1__FACT__FACT_INDEPENDENT_SME,
};

Qp__V1__Fact eligibility_fact_wire (qp_fact_t fact)
{
    return fact < QP_FACT_COUNT ? s_fact_wire[fact] : QP__V1__FACT__FACT_UNSPECIFIED;
}

/* The message, its date, and the facts: what the dossier declares, then what the contours
 * say, then what the caller knows. */
static Qp__V1__EligibilityDecided *s_begin (const eligibility_geo_t *geo, const char *dossier_id,
                                            const Qp__V1__Dossier *dossier,
                                            const rules_facts_t *known, bool terse, int32_t *date,
                                            rules_facts_t *facts)
{
    Qp__V1__EligibilityDecided *e = malloc (sizeof *e);
    assert (e);
    qp__v1__eligibility_decided__init (e);
    e->dossier_id = strdup (dossier_id);
    e->territory = strdup (dossier->territory ? dossier->territory : "");
    if (!dossier->submitted_on || !qp_date_parse (dossier->submitted_on, date))
        *date = 0; /* intake guarantees a date; 1970 matches no catalogue version */
    char day[11];
    qp_date_format (*date, day);
    e->decided_on = strdup (day);
    rules_facts_init (facts);
    facts->terse = terse;
    rules_facts_declared (facts, dossier);
    rules_facts_set (facts, QP_FACT_BUSINESS_IN_QPV, RULES_UNKNOWN, "");
    rules_facts_set (facts, QP_FACT_RESIDENCE_IN_QPV, RULES_UNKNOWN, "");
    eligibility_locate (geo, dossier, e, facts);
    for (int f = 0; known && f < QP_FACT_COUNT; f++)
        if (known->facts[f].value != RULES_UNKNOWN || known->facts[f].detail[0])
            facts->facts[f] = known->facts[f];
    return e;
}

Qp__V1__EligibilityDecided *eligibility_decide (const qp_catalogue_t *catalogue,
                                                const eligibility_geo_t *geo,
                                                const char *dossier_id,
                                                const Qp__V1__Dossier *dossier,
                                                const rules_facts_t *known)
{
    int32_t date;
    rules_facts_t facts;
    Qp__V1__EligibilityDecided *e = s_begin (geo, dossier_id, dossier, known, true, &date, &facts);
    /* The facts, so that an explanation can decide again exactly as now. */
    size_t n_true = 0, n_false = 0;
    e->facts_true = malloc (QP_FACT_COUNT * sizeof *e->facts_true);
    e->facts_false = malloc (QP_FACT_COUNT * sizeof *e->facts_false);
    assert (e->facts_true && e->facts_false);
    for (int f = 0; f < QP_FACT_COUNT; f++)
        if (facts.facts[f].value == RULES_TRUE)
            e->facts_true[n_true++] = s_fact_wire[f];
        else if (facts.facts[f].value == RULES_FALSE)
            e->facts_false[n_false++] = s_fact_wire[f];
    e->n_facts_true = n_true, e->n_facts_false = n_false;

    size_t n = qp_catalogue_size (catalogue);
    e->decisions = calloc (n ? n : 1, sizeof *e->decisions);
    assert (e->decisions);
    for (size_t i = 0; i < n; i++)
        e->decisions[e->n_decisions++] =
            rules_decide (qp_catalogue_scheme (catalogue, i), dossier, date, &facts);
    return e;
}

/* A copy of a stored location. */
static Qp__V1__QpvLocation *s_location_copy (const Qp__V1__QpvLocation *l)
{
    if (!l)
        return NULL;
    Qp__V1__QpvLocation *c =
        s_location (l->qpv_code ? l->qpv_code : "", l->qpv_name, l->verified, l->distance_m);
    c->has_verified = l->has_verified;
    c->has_distance_m = l->has_distance_m;
    return c;
}

static rules_truth_t s_stored_fact (const Qp__V1__EligibilityDecided *stored, qp_fact_t f)
{
    for (size_t i = 0; i < stored->n_facts_true; i++)
        if (stored->facts_true[i] == s_fact_wire[f])
            return RULES_TRUE;
    for (size_t i = 0; i < stored->n_facts_false; i++)
        if (stored->facts_false[i] == s_fact_wire[f])
            return RULES_FALSE;
    return RULES_UNKNOWN;
}

static const char *s_outcome_name (Qp__V1__Outcome o)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__outcome__descriptor, o);
    return v ? v->name : "?";
}

/* Whether the explained decision of a scheme is the stored one: outcome, amount, version
 * and the criteria not met. Says what differs in note. */
static bool s_same (const qp_scheme_t *scheme, const Qp__V1__SchemeDecision *stored,
                    const Qp__V1__SchemeDecision *now, char *note, size_t size)
{
    size_t vlen = stored->catalogue_version ? strlen (stored->catalogue_version) : 0;
    if (!now || !scheme) {
        snprintf (note, size, "scheme %s is no longer in the catalogue", stored->scheme_id);
        return false;
    }
    if (!stored->catalogue_version || !now->catalogue_version ||
        strncmp (now->catalogue_version, stored->catalogue_version, vlen) ||
        (now->catalogue_version[vlen] && now->catalogue_version[vlen] != '@')) {
        snprintf (note, size, "%s was decided with catalogue %s, the catalogue now has %s",
                  stored->scheme_id, stored->catalogue_version ? stored->catalogue_version : "?",
                  now->catalogue_version ? now->catalogue_version : "?");
        return false;
    }
    if (stored->outcome != now->outcome || stored->amount_cents != now->amount_cents) {
        snprintf (note, size, "%s was decided %s (%lld cents), the catalogue now gives %s (%lld)",
                  stored->scheme_id, s_outcome_name (stored->outcome),
                  (long long)stored->amount_cents, s_outcome_name (now->outcome),
                  (long long)now->amount_cents);
        return false;
    }
    /* The bits of the explained criteria, as the compact decision has them. */
    uint32_t not_met = 0, missing = 0;
    for (size_t k = 0; k < scheme->n_criteria && k < QP_CRITERIA_MAX; k++)
        for (size_t j = 0; j < now->n_criteria; j++)
            if (!strcmp (now->criteria[j]->criterion, scheme->criteria[k].id)) {
                if (now->criteria[j]->outcome == QP__V1__CRITERION_OUTCOME__NOT_MET)
                    not_met |= 1u << k;
                else if (now->criteria[j]->outcome == QP__V1__CRITERION_OUTCOME__MISSING)
                    missing |= 1u << k;
                break;
            }
    if (not_met != stored->criteria_not_met || missing != stored->criteria_missing) {
        snprintf (note, size, "%s: the criteria not met or missing differ from the stored decision",
                  stored->scheme_id);
        return false;
    }
    return true;
}

Qp__V1__EligibilityDecided *eligibility_explain (const qp_catalogue_t *catalogue,
                                                 const eligibility_geo_t *geo,
                                                 const Qp__V1__Dossier *dossier,
                                                 const Qp__V1__EligibilityDecided *stored,
                                                 bool *matches, char *note, size_t note_size)
{
    /* Decided before the compact form (every criterion stored with its reason): that is
     * the explanation, as it was given. */
    for (size_t i = 0; i < stored->n_decisions; i++)
        if (stored->decisions[i]->n_criteria) {
            size_t len = qp__v1__eligibility_decided__get_packed_size (stored);
            uint8_t *buf = malloc (len ? len : 1);
            assert (buf);
            qp__v1__eligibility_decided__pack (stored, buf);
            Qp__V1__EligibilityDecided *copy = qp__v1__eligibility_decided__unpack (NULL, len, buf);
            free (buf);
            *matches = true;
            snprintf (note, note_size,
                      "stored with its explanation (decided before the compact "
                      "form): shown as decided");
            return copy;
        }
    int32_t date;
    rules_facts_t facts;
    Qp__V1__EligibilityDecided *e = s_begin (geo, stored->dossier_id ? stored->dossier_id : "",
                                             dossier, NULL, false, &date, &facts);
    /* The facts as they were when deciding; the details say where each comes from. */
    char detail[120];
    for (int f = 0; f < QP_FACT_COUNT; f++) {
        rules_truth_t was = s_stored_fact (stored, (qp_fact_t)f);
        if (f == QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK && was != RULES_UNKNOWN)
            rules_facts_set (&facts, (qp_fact_t)f, was,
                             was == RULES_TRUE
                                 ? "no other PHQ of this person through this network when decided"
                                 : "another dossier held this person's PHQ through this network "
                                   "when decided");
        else if (was != facts.facts[f].value) {
            snprintf (detail, sizeof detail, "%s when decided on %s",
                      was == RULES_TRUE    ? "true"
                      : was == RULES_FALSE ? "false"
                                           : "unknown",
                      stored->decided_on ? stored->decided_on : "?");
            rules_facts_set (&facts, (qp_fact_t)f, was, detail);
        }
    }
    /* The locations decided, even if the contours changed since. */
    qp__v1__qpv_location__free_unpacked (e->business_location, NULL);
    qp__v1__qpv_location__free_unpacked (e->residence_location, NULL);
    e->business_location = s_location_copy (stored->business_location);
    e->residence_location = s_location_copy (stored->residence_location);
    e->n_facts_true = stored->n_facts_true, e->n_facts_false = stored->n_facts_false;
    e->facts_true = malloc ((e->n_facts_true + 1) * sizeof *e->facts_true);
    e->facts_false = malloc ((e->n_facts_false + 1) * sizeof *e->facts_false);
    assert (e->facts_true && e->facts_false);
    if (e->n_facts_true) /* facts_* are NULL when empty: memcpy of NULL is undefined */
        memcpy (e->facts_true, stored->facts_true, e->n_facts_true * sizeof *e->facts_true);
    if (e->n_facts_false)
        memcpy (e->facts_false, stored->facts_false, e->n_facts_false * sizeof *e->facts_false);

    size_t n = qp_catalogue_size (catalogue);
    e->decisions = calloc (n ? n : 1, sizeof *e->decisions);
    assert (e->decisions);
    for (size_t i = 0; i < n; i++)
        e->decisions[e->n_decisions++] =
            rules_evaluate (qp_catalogue_scheme (catalogue, i), dossier, date, &facts);

    *matches = true;
    snprintf (note, note_size, "%s", "");
    if (!stored->decided_on || strcmp (stored->decided_on, e->decided_on)) {
        *matches = false;
        snprintf (note, note_size, "decided on %s, the dossier's date is now %s",
                  stored->decided_on ? stored->decided_on : "?", e->decided_on);
    }
    for (size_t i = 0; *matches && i < stored->n_decisions; i++) {
        const Qp__V1__SchemeDecision *now = NULL;
        for (size_t k = 0; k < e->n_decisions && !now; k++)
            if (stored->decisions[i]->scheme_id &&
                !strcmp (e->decisions[k]->scheme_id, stored->decisions[i]->scheme_id))
                now = e->decisions[k];
        *matches = s_same (qp_catalogue_find (catalogue, stored->decisions[i]->scheme_id),
                           stored->decisions[i], now, note, note_size);
    }
    if (*matches && stored->n_decisions != e->n_decisions) {
        *matches = false;
        snprintf (note, note_size, "%zu schemes decided, %zu in the catalogue now",
                  stored->n_decisions, e->n_decisions);
    }
    return e;
}

static bool s_any_eligible (const Qp__V1__EligibilityDecided *e)
{
    for (size_t i = 0; i < e->n_decisions; i++)
        if (e->decisions[i]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME)
            return true;
    return false;
}

/* A short reason for a dossier that no scheme accepts: the first criterion not met (the
 * full reason: `qp-ctl explain`). */
static void s_refusal (const qp_catalogue_t *catalogue, const Qp__V1__EligibilityDecided *e,
                       char *out, size_t size)
{
    snprintf (out, size, "no scheme in the catalogue applies");
    for (size_t i = 0; i < e->n_decisions; i++) {
        const Qp__V1__SchemeDecision *d = e->decisions[i];
        const qp_scheme_t *scheme = qp_catalogue_find (catalogue, d->scheme_id);
        uint32_t bits = d->criteria_not_met | d->criteria_missing;
        if (!scheme)
            continue;
        if (!bits) {
            snprintf (out, size, "%s: not in force on %s", d->scheme_id, e->decided_on);
            return;
        }
        for (size_t k = 0; k < scheme->n_criteria && k < QP_CRITERIA_MAX; k++)
            if (bits & (1u << k)) {
                snprintf (out, size, "%s: %s: %s", d->scheme_id, scheme->criteria[k].id,
                          d->criteria_missing & (1u << k) ? "information missing" : "not met");
                return;
            }
    }
}

/* A dossier being decided, with what its step refers to until the batch's transitions are
 * done. */
typedef struct {
    const char *id, *cause;
    const Qp__V1__Dossier *dossier;
    int64_t time_ms;
    rules_facts_t known;
    bool claimed;       /* the PHQ fact is known (or needs no claim): decide it */
    const char *network; /* the PHQ slot's network, or NULL: no claim */
    char bucket[128], old[256];
    Qp__V1__EligibilityDecided *e;
    bool eligible;
    char decided_id[QP_ID_HEX + 1];
    uint8_t *packed;
    char reason[400];
    qp_store_field_t fields[1];
    Qp__V1__DossierClosed closed;
    qp_event_t events[2];
} pending_t;

/* The network of the holder's PHQ slot, or NULL when the dossier names no person key or
 * network (the fact stays unknown). */
static const char *s_phq_network (const Qp__V1__Dossier *d)
{
    const Qp__V1__ProjectHolder *h = d->holder;
    const ProtobufCEnumValue *net =
        h && h->has_network
            ? protobuf_c_enum_descriptor_get_value (&qp__v1__network__descriptor, h->network)
            : NULL;
    if (!h || !h->person_key || !*h->person_key || !net || h->network <= 1)
        return NULL;
    return net->name;
}

/* One PHQ per person per network: claims the (person, network) slot of every dossier of
 * the batch, in one round trip. Sets each dossier's fact (true: the slot is this dossier's;
 * false: another dossier holds it; unknown: no person key or network) and claimed; a
 * dossier whose claim Redis did not answer is left unclaimed. Claims run in the batch's
 * order, and a batch never holds two dossiers of one slot (s_on_received), so each is
 * decided as it would be alone. */
static void s_phq_facts (eligibility_t *self, pending_t *p, size_t n)
{
    qp_redis_call_t calls[ELIGIBILITY_BATCH];
    redisReply *replies[ELIGIBILITY_BATCH];
    const char *kv[ELIGIBILITY_BATCH][4];
    size_t which[ELIGIBILITY_BATCH], n_calls = 0;
    for (size_t i = 0; i < n; i++) {
        rules_facts_init (&p[i].known);
        p[i].claimed = !p[i].network; /* network: set by s_decide_many */
        if (!p[i].network) {
            rules_facts_set (&p[i].known, QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK, RULES_UNKNOWN,
                             "needs the holder's person key and network");
            continue;
        }
        const char *person = p[i].dossier->holder->person_key;
        qp_bucket_phq_keys (p[i].network, person, p[i].bucket, sizeof p[i].bucket, p[i].old,
                            sizeof p[i].old);
        const char **k = kv[n_calls];
        k[0] = p[i].bucket, k[1] = p[i].old, k[2] = person, k[3] = p[i].id;
        calls[n_calls] = (qp_redis_call_t){QP_LUA_PHQ_CLAIM, 2, k, 2, k + 2, NULL};
        which[n_calls++] = i;
    }
    if (!n_calls)
        return;
    qp_redis_scripts (self->redis, calls, n_calls, replies);
    for (size_t c = 0; c < n_calls; c++) {
        pending_t *d = &p[which[c]];
        redisReply *r = replies[c];
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            qp_log_error ("redis_error", "phq_claim for %s: %s", d->id,
                          r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
            if (r)
                freeReplyObject (r);
            continue; /* the dossier stays pending; the sweeper retries */
        }
        char detail[120];
        if (r->element[0]->integer == 1) {
            snprintf (detail, sizeof detail, "no other PHQ of this person through %s", d->network);
            rules_facts_set (&d->known, QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK, RULES_TRUE, detail);
        } else {
            snprintf (detail, sizeof detail,
                      "dossier %.40s already holds this person's PHQ through %s",
                      r->element[1]->str, d->network);
            rules_facts_set (&d->known, QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK, RULES_FALSE,
                             detail);
        }
        d->claimed = true;
        freeReplyObject (r);
    }
}

/* The decision of one dossier and its step: RECEIVED -> ELIGIBLE with the decision, or
 * NOT_ELIGIBLE with the decision and a DossierClosed. */
static void s_step (eligibility_t *self, pending_t *p, qp_service_step_t *step)
{
    eligibility_geo_t geo = {self->qpv, self->tolerance_m};
    p->e = eligibility_decide (self->catalogue, &geo, p->id, p->dossier, &p->known);
    p->eligible = s_any_eligible (p->e);
    qp_message_make_id (p->decided_id, qp__v1__eligibility_decided__descriptor.name, p->cause,
                        p->id);
    /* Stored in the form that does not repeat the scheme ids (qp_store.h); published whole. */
    size_t len;
    p->packed = qp_store_decision_pack (p->e, &len);
    p->reason[0] = 0;
    if (!p->eligible)
        s_refusal (self->catalogue, p->e, p->reason, sizeof p->reason);
    p->fields[0] = (qp_store_field_t){"eligibility", p->packed, len};
    qp__v1__dossier_closed__init (&p->closed);
    p->closed.dossier_id = (char *)p->id;
    p->closed.has_final_state = true;
    p->closed.final_state = QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
    p->closed.territory = p->e->territory;
    p->closed.reason = p->reason;
    p->closed.has_committed_cents = true;
    p->events[0] = (qp_event_t){&p->e->base,
                                {.correlation_id = p->id,
                                 .causation_id = p->cause,
                                 .event_time_ms = p->time_ms,
                                 .discriminator = p->id}};
    p->events[1] = (qp_event_t){&p->closed.base,
                                {.correlation_id = p->id,
                                 .causation_id = p->decided_id,
                                 .event_time_ms = p->time_ms,
                                 .discriminator = p->id}};
    /* The events are written to the outbox by the transition itself (qp_service.h). */
    *step = (qp_service_step_t){
        .step = {.id = p->id,
                 .expected = QP__V1__DOSSIER_STATE__RECEIVED,
                 .next = p->eligible ? QP__V1__DOSSIER_STATE__ELIGIBLE
                                     : QP__V1__DOSSIER_STATE__NOT_ELIGIBLE,
                 .at_ms = p->time_ms,
                 .message_id = p->decided_id,
                 .note = p->eligible ? "eligible to at least one scheme" : p->reason,
                 .fields = p->fields,
                 .n_fields = 1},
        .events = p->events,
        .n_events = p->eligible ? 1 : 2};
}

/* Dossiers that claim no PHQ slot twice: the PHQ claims in one round trip, the decisions,
 * the transitions in one more, then the eligible dossiers go to funding. A dossier whose
 * claim or step Redis did not answer stays RECEIVED; the sweeper decides it again after its
 * lease. */
static void s_decide_run (eligibility_t *self, pending_t *p, size_t n)
{
    s_phq_facts (self, p, n);
    qp_service_step_t steps[ELIGIBILITY_BATCH];
    pending_t *stepped[ELIGIBILITY_BATCH];
    size_t n_steps = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].e = NULL, p[i].packed = NULL;
        if (!p[i].claimed)
            continue; /* Redis down: the dossier stays pending; the sweeper retries */
        s_step (self, &p[i], &steps[n_steps]);
        stepped[n_steps++] = &p[i];
    }
    if (n_steps)
        qp_service_transitions (self->service, self->redis, steps, n_steps);
    for (size_t i = 0; i < n_steps; i++) {
        pending_t *d = stepped[i];
        qp_store_result_t rc = steps[i].step.result;
        if (rc == QP_STORE_APPLIED && d->eligible)
            qp_service_send (self->service, "funding", &d->e->base, &d->events[0].meta);
        else if (rc == QP_STORE_ALREADY)
            qp_log_debug ("duplicate", "dossier %s already %s", d->id,
                          qp_store_state_name (steps[i].step.state));
        else if (rc == QP_STORE_UNKNOWN)
            qp_log_warn ("unknown_dossier", "dossier %s is not in the store", d->id);
        /* QP_STORE_ERROR: the dossier stays pending; the sweeper retries after its lease. */
        free (d->packed);
        qp__v1__eligibility_decided__free_unpacked (d->e, NULL);
    }
}

/* Whether a and b claim the same PHQ slot (the same person through the same network). */
static bool s_same_slot (const pending_t *a, const pending_t *b)
{
    return a->network && a->network == b->network &&
           !strcmp (a->dossier->holder->person_key, b->dossier->holder->person_key);
}

/* A batch of at most ELIGIBILITY_BATCH dossiers, from DossierReceived messages or from the
 * sweeper (cause: the message id of each DossierReceived, recomputed by the sweeper so ids
 * stay stable), decided in runs that claim no PHQ slot twice: a second dossier of one slot
 * waits for the first's decision, because decided together its claim would see the first
 * still RECEIVED where alone it sees the first's outcome (a NOT_ELIGIBLE holder frees the
 * slot). */
static void s_decide_many (eligibility_t *self, pending_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) /* once: the split compares every pair of a run */
        p[i].network = s_phq_network (p[i].dossier);
    size_t start = 0;
    while (start < n) {
        size_t end = start + 1;
        for (bool repeat = false; end < n && !repeat;) {
            for (size_t i = start; i < end && !repeat; i++)
                repeat = s_same_slot (&p[i], &p[end]);
            if (!repeat)
                end++;
        }
        s_decide_run (self, p + start, end - start);
        start = end;
    }
}

/* ---- batching: DossierReceived messages wait for the end of the burst read ------------ */

/* The dossiers of the batch being decided (about 2 KB each): out of the stack, shared by
 * the flush and the sweeper, which never run inside one another (one thread). */
static pending_t s_pending[ELIGIBILITY_BATCH];

void eligibility_flush (eligibility_t *self)
{
    size_t n = self->n_received;
    if (!n)
        return;
    pending_t *p = s_pending;
    for (size_t i = 0; i < n; i++) {
        qp_message_t *m = &self->received[i];
        Qp__V1__DossierReceived *r = (Qp__V1__DossierReceived *)m->payload;
        p[i] = (pending_t){.id = r->dossier_id,
                           .cause = m->envelope->message_id,
                           .dossier = r->dossier,
                           .time_ms = m->envelope->has_event_time_ms ? m->envelope->event_time_ms
                                                                     : 0};
    }
    s_decide_many (self, p, n);
    for (size_t i = 0; i < n; i++)
        qp_message_clear (&self->received[i]);
    self->n_received = 0;
}

static void s_on_flush (qp_service_t *service, void *arg)
{
    (void)service;
    eligibility_flush (arg);
}

static void s_on_received (qp_request_t *req, void *arg)
{
    eligibility_t *self = arg;
    Qp__V1__DossierReceived *m = (Qp__V1__DossierReceived *)req->msg.payload;
    if (!m->dossier_id || !m->dossier) {
        qp_error_t err;
        qp_error_set (&err, "invalid_field", m->dossier_id ? "dossier" : "dossier_id",
                      "DossierReceived needs dossier_id and dossier");
        qp_service_reply_error (req, &err);
        return;
    }
    self->received[self->n_received++] = req->msg;
    memset (&req->msg, 0, sizeof req->msg); /* ours now: the service frees an empty one */
    if (self->n_received == ELIGIBILITY_BATCH)
        eligibility_flush (self);
}

/* The full explanation of a stored decision: the stored dossier decided again with the
 * facts recorded at the decision and the catalogue in force on its date. */
static void s_on_explain (qp_request_t *req, void *arg)
{
    eligibility_t *self = arg;
    Qp__V1__EligibilityExplainQuery *q = (Qp__V1__EligibilityExplainQuery *)req->msg.payload;
    qp_error_t err;
    if (!q->dossier_id || !*q->dossier_id) {
        qp_error_set (&err, "invalid_field", "dossier_id",
                      "EligibilityExplainQuery needs dossier_id");
        qp_service_reply_error (req, &err);
        return;
    }
    size_t dlen = 0, elen = 0;
    char *state = qp_store_get (self->redis, q->dossier_id, "state", NULL);
    char *dpacked = state ? qp_store_get (self->redis, q->dossier_id, "dossier", &dlen) : NULL;
    char *epacked = state ? qp_store_get (self->redis, q->dossier_id, "eligibility", &elen) : NULL;
    Qp__V1__Dossier *d = dpacked ? qp__v1__dossier__unpack (NULL, dlen, (uint8_t *)dpacked) : NULL;
    Qp__V1__EligibilityDecided *stored =
        epacked ? qp__v1__eligibility_decided__unpack (NULL, elen, (uint8_t *)epacked) : NULL;
    qp_store_decision_expand (stored);
    Qp__V1__EligibilityExplainReply reply = QP__V1__ELIGIBILITY_EXPLAIN_REPLY__INIT;
    reply.dossier_id = q->dossier_id;
    reply.has_found = true;
    reply.found = state != NULL;
    char note[300] = "";
    if (state) {
        reply.has_state = true;
        reply.state = qp_store_state_parse (state);
    }
    if ((dpacked && !d) || (epacked && !stored)) {
        qp_error_set (&err, "unreadable", dpacked && !d ? "dossier" : "eligibility",
                      "dossier %s: the stored %s does not decode", q->dossier_id,
                      dpacked && !d ? "dossier" : "decision");
        qp_service_reply_error (req, &err);
    } else {
        if (d && stored) {
            eligibility_geo_t geo = {self->qpv, self->tolerance_m};
            bool matches = false;
            reply.explained =
                eligibility_explain (self->catalogue, &geo, d, stored, &matches, note, sizeof note);
            reply.has_matches_stored = true;
            reply.matches_stored = matches;
            if (*note)
                reply.note = note;
        }
        qp_meta_t meta = {.correlation_id = q->dossier_id};
        qp_service_reply (req, &reply.base, &meta);
    }
    if (reply.explained)
        qp__v1__eligibility_decided__free_unpacked (reply.explained, NULL);
    if (stored)
        qp__v1__eligibility_decided__free_unpacked (stored, NULL);
    if (d)
        qp__v1__dossier__free_unpacked (d, NULL);
    free (state);
    free (dpacked);
    free (epacked);
}

/* Set by SIGHUP; the sweeper timer does the reload, outside the signal handler. A static
 * because a signal handler has no other way to reach the service. */
static volatile sig_atomic_t s_reload_asked;

static void s_on_sighup (int sig)
{
    (void)sig;
    s_reload_asked = 1;
}

int eligibility_load_qpv (eligibility_t *self, qp_error_t *err)
{
    if (!self->qpv_contours || !*self->qpv_contours)
        return 0;
    qp_error_t local;
    qp_error_t *e = err ? err : &local;
    qp_qpv_index_t *fresh = qp_qpv_load_geojson (self->qpv_contours, e);
    if (fresh && self->qpv_list && *self->qpv_list &&
        qp_qpv_load_list_csv (fresh, self->qpv_list, e) != 0)
        qp_qpv_destroy (&fresh);
    if (!fresh) {
        qp_log_error ("qpv_refused", "QPV contours %s refused%s: %s", self->qpv_contours,
                      self->qpv ? ", the index in force stays" : "", e->message);
        return -1;
    }
    qp_qpv_destroy (&self->qpv);
    self->qpv = fresh;
    qp_log_info ("qpv_loaded", "%zu QPV, %zu vertices from %s (tolerance %.0f m)",
                 qp_qpv_count (fresh), qp_qpv_vertex_count (fresh), self->qpv_contours,
                 self->tolerance_m);
    return 0;
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
    (void)service;
    eligibility_t *self = arg;
    if (s_reload_asked && self->catalogue_dir) {
        s_reload_asked = 0;
        eligibility_reload (self, NULL);
        eligibility_load_qpv (self, NULL);
    }
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__RECEIVED, qp_now_ms (),
                                       ids, SWEEP_BATCH);
    pending_t *p = s_pending;
    Qp__V1__Dossier *dossiers[ELIGIBILITY_BATCH];
    char causes[ELIGIBILITY_BATCH][QP_ID_HEX + 1];
    size_t n_p = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        char *packed = qp_store_get (self->redis, ids[i], "dossier", &len);
        char *source = qp_store_get (self->redis, ids[i], "source_msg", NULL);
        char *time_s = qp_store_get (self->redis, ids[i], "event_time_ms", NULL);
        Qp__V1__Dossier *d = packed ? qp__v1__dossier__unpack (NULL, len, (uint8_t *)packed) : NULL;
        if (d && source) {
            qp_message_make_id (causes[n_p], qp__v1__dossier_received__descriptor.name, source,
                                ids[i]);
            qp_log_info ("redispatch", "dossier %s: RECEIVED lease expired, deciding again",
                         ids[i]);
            dossiers[n_p] = d;
            p[n_p] = (pending_t){.id = ids[i],
                                 .cause = causes[n_p],
                                 .dossier = d,
                                 .time_ms = time_s ? atoll (time_s) : 0};
            n_p++;
        } else if (d)
            qp__v1__dossier__free_unpacked (d, NULL);
        free (packed);
        free (source);
        free (time_s);
        if (n_p == ELIGIBILITY_BATCH || (i + 1 == n && n_p)) {
            s_decide_many (self, p, n_p);
            for (size_t k = 0; k < n_p; k++)
                qp__v1__dossier__free_unpacked (dossiers[k], NULL);
            n_p = 0;
        }
    }
    for (size_t i = 0; i < n; i++)
        free (ids[i]);
}

void eligibility_register (eligibility_t *self)
{
    qp_service_on (self->service, &qp__v1__dossier_received__descriptor, s_on_received, self);
    /* A batch is what one read brought (at most ELIGIBILITY_BATCH): a lone message is
     * decided at once. */
    qp_service_after_burst (self->service, s_on_flush, self);
    qp_service_on (self->service, &qp__v1__eligibility_explain_query__descriptor, s_on_explain,
                   self);
    qp_service_every (self->service, SWEEP_INTERVAL_MS, s_sweep, self);
    qp_service_outbox (self->service, self->redis); /* sweeps what a dead instance left */
    struct sigaction sa = {.sa_handler = s_on_sighup};
    sigemptyset (&sa.sa_mask);
    sigaction (SIGHUP, &sa, NULL);
}
