/* Evaluation on a real redis-server: a known stream of events (20 dossiers in two
 * territories, every outcome known) gives exact indicators; the same stream again
 * (duplicates) changes nothing; replayed into a fresh Redis and rebuilt from the stored
 * dossiers it gives byte-identical reports; the 3-year survival of a sample with known
 * outcomes is exact; phases read the figures of their dates. Then, through real
 * processes, a follow-up for an unknown dossier is refused by intake with the field and
 * the reason, and the dashboard page opened in headless Chromium shows the figures of
 * the query (screenshot kept next to the test's logs). */
#include "qp_test.h"
#include "qp_test_sample.h"
#include "evaluation.h"
#include "qp_date.h"
#include "qp_report_html.h"
#include "qp_store.h"
#include "qp_test_suite.h"
#include <check.h>
#include <signal.h>
#include <string.h>

#define N 20

typedef struct {
    char id[QP_ID_HEX + 1];
    char day[11];
    Qp__V1__Dossier dossier;
    Qp__V1__ProjectHolder holder;
    Qp__V1__Project project;
    Qp__V1__Business business;
} sample_t;

static sample_t s_samples[N];

/* Dossier i: territory roubaix (even) or laval (odd); women for i % 4 == 0; all funded
 * 10,000 € of phq with a 40,000 € bank loan; year-3 follow-up active except i = 3 and 7. */
static void s_sample (int i)
{
    sample_t *s = &s_samples[i];
    memset (s, 0, sizeof *s);
    char key[32];
    snprintf (key, sizeof key, "eval-%d", i);
    qp_hash_hex (s->id, key, strlen (key));
    qp_date_format (qp_date_from_civil (2025, 1 + i % 3, 10), s->day);
    qp__v1__dossier__init (&s->dossier);
    qp__v1__project_holder__init (&s->holder);
    qp__v1__project__init (&s->project);
    qp__v1__business__init (&s->business);
    s->dossier.submitted_on = s->day;
    s->dossier.territory = i % 2 ? "laval" : "roubaix";
    s->holder.residence_qpv = i % 2 ? "QN05301M" : "QN05981M";
    s->holder.has_network = true, s->holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    s->holder.has_gender = true;
    s->holder.gender = i % 4 == 0 ? QP__V1__GENDER__WOMAN : QP__V1__GENDER__MAN;
    s->holder.has_birth_year = true, s->holder.birth_year = i % 5 == 0 ? 2000 : 1980;
    s->project.has_axis = true, s->project.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    s->project.has_jobs_planned = true, s->project.jobs_planned = 2;
    s->project.has_bank_loan_cents = true, s->project.bank_loan_cents = 4000000;
    s->dossier.holder = &s->holder;
    s->dossier.project = &s->project;
    s->dossier.business = &s->business;
}

/* The events dossier i's steps publish, in order; fn gets each. */
static void s_events (int i, void (*fn) (const ProtobufCMessage *, const char *, int64_t, void *),
                      void *arg)
{
    sample_t *s = &s_samples[i];
    int32_t day;
    qp_date_parse (s->day, &day);
    int64_t t = qp_date_to_ms (day);
    const char *territory = s->dossier.territory;

    Qp__V1__DossierReceived rcv = QP__V1__DOSSIER_RECEIVED__INIT;
    rcv.dossier_id = s->id, rcv.dossier = &s->dossier;
    fn (&rcv.base, s->id, t, arg);

    Qp__V1__SchemeDecision sd = QP__V1__SCHEME_DECISION__INIT;
    Qp__V1__SchemeDecision *decisions[] = {&sd};
    sd.scheme_id = "phq", sd.has_agency = true, sd.agency = QP__V1__AGENCY__BPIFRANCE;
    sd.has_outcome = true, sd.outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    Qp__V1__EligibilityDecided dec = QP__V1__ELIGIBILITY_DECIDED__INIT;
    dec.dossier_id = s->id, dec.territory = (char *) territory;
    dec.n_decisions = 1, dec.decisions = decisions;
    fn (&dec.base, s->id, t, arg);

    Qp__V1__DossierSummary summary = QP__V1__DOSSIER_SUMMARY__INIT;
    summary.territory = (char *) territory;
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    rq.dossier_id = s->id, rq.scheme_id = "phq", rq.summary = &summary;
    rq.has_agency = true, rq.agency = QP__V1__AGENCY__BPIFRANCE;
    rq.has_amount_asked_cents = true, rq.amount_asked_cents = 1000000;
    fn (&rq.base, s->id, t, arg);

    Qp__V1__FundingSettled st = QP__V1__FUNDING_SETTLED__INIT;
    st.dossier_id = s->id, st.scheme_id = "phq", st.territory = (char *) territory;
    st.has_agency = true, st.agency = QP__V1__AGENCY__BPIFRANCE;
    st.has_outcome = true, st.outcome = QP__V1__SETTLEMENT_OUTCOME__COMMITTED;
    st.has_amount_cents = true, st.amount_cents = 1000000;
    fn (&st.base, s->id, t, arg);

    Qp__V1__DossierClosed cl = QP__V1__DOSSIER_CLOSED__INIT;
    cl.dossier_id = s->id, cl.territory = (char *) territory;
    cl.has_final_state = true, cl.final_state = QP__V1__DOSSIER_STATE__FUNDED;
    cl.has_committed_cents = true, cl.committed_cents = 1000000;
    fn (&cl.base, s->id, t, arg);

    Qp__V1__FollowUp fu = QP__V1__FOLLOW_UP__INIT;
    fu.dossier_id = s->id, fu.has_year = true, fu.year = 3;
    fu.has_active = true, fu.active = i != 3 && i != 7;
    fu.has_jobs_created = true, fu.jobs_created = fu.active ? 3 : 0;
    fu.reported_on = "2028-02-01";
    fn (&fu.base, s->id, t, arg);
}

static void s_apply_one (const ProtobufCMessage *m, const char *id, int64_t t, void *arg)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    char mid[QP_ID_HEX + 1];
    qp_message_make_id (mid, m->descriptor->name, id, "test");
    env.message_id = mid;
    env.has_event_time_ms = true, env.event_time_ms = t;
    qp_message_t msg = {.envelope = &env, .payload = (ProtobufCMessage *) m,
                        .descriptor = m->descriptor};
    evaluation_apply (arg, &msg);
}

/* What the services store for a dossier, for the rebuild. */
static void s_store_one (const ProtobufCMessage *m, const char *id, int64_t t, void *arg)
{
    redisContext *c = arg;
    const char *field = NULL;
    if (m->descriptor == &qp__v1__dossier_received__descriptor) {
        const Qp__V1__DossierReceived *r = (const void *) m;
        size_t len = qp__v1__dossier__get_packed_size (r->dossier);
        uint8_t buf[len + 1];
        qp__v1__dossier__pack (r->dossier, buf);
        redisReply *x = redisCommand (c, "HSET qp:{%s}:d dossier %b territory %s event_time_ms %lld",
                                      id, buf, len, r->dossier->territory, (long long) t);
        freeReplyObject (x);
        return;
    }
    if (m->descriptor == &qp__v1__eligibility_decided__descriptor)
        field = "eligibility";
    else if (m->descriptor == &qp__v1__funding_request__descriptor)
        field = "request";
    else if (m->descriptor == &qp__v1__funding_settled__descriptor)
        field = "settlement";
    else if (m->descriptor == &qp__v1__follow_up__descriptor)
        field = "followup_3";
    else {
        redisReply *x = redisCommand (c, "HSET qp:{%s}:d state FUNDED committed_cents 1000000", id);
        freeReplyObject (x);
        return;
    }
    size_t len = protobuf_c_message_get_packed_size (m);
    uint8_t buf[len + 1];
    protobuf_c_message_pack (m, buf);
    redisReply *x = redisCommand (c, "HSET qp:{%s}:d %s %b", id, field, buf, len);
    freeReplyObject (x);
}

static qp_test_redis_t *s_redis;
static qp_redis_t *s_client;
static evaluation_t *s_eval;

static void s_open (void)
{
    s_redis = qp_test_redis_start ();
    ck_assert_ptr_nonnull (s_redis);
    s_client = qp_redis_connect (s_redis->host, s_redis->port, 5000);
    ck_assert_ptr_nonnull (s_client);
    char data[1024];
    snprintf (data, sizeof data, "%s/data", qp_test_source_dir ());
    s_eval = evaluation_new (s_client, data);
    ck_assert_ptr_nonnull (s_eval);
    for (int i = 0; i < N; i++)
        s_sample (i);
}

static void s_close (void)
{
    evaluation_destroy (&s_eval);
    qp_redis_destroy (&s_client);
    qp_test_redis_stop (&s_redis);
}

static void s_stream (void)
{
    for (int i = 0; i < N; i++)
        s_events (i, s_apply_one, s_eval);
    ck_assert_int_eq (evaluation_flush (s_eval), 0);
}

/* The full report, packed: two equal reports have equal bytes. */
static size_t s_report_bytes (uint8_t **out)
{
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.has_breakdowns = true, q.breakdowns = true;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    size_t len = qp__v1__indicator_report__get_packed_size (r);
    *out = malloc (len + 1);
    qp__v1__indicator_report__pack (r, *out);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    return len;
}

static void s_flushall (void)
{
    redisReply *r = qp_redis_command (s_client, "FLUSHALL");
    ck_assert_ptr_nonnull (r);
    freeReplyObject (r);
}

START_TEST (known_stream_exact_figures)
{
    s_open ();
    s_stream ();
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.has_breakdowns = true, q.breakdowns = true;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    const Qp__V1__Figures *t = r->total->figures;
    ck_assert_uint_eq (t->submitted, N);
    ck_assert_uint_eq (t->eligible, N);
    ck_assert_uint_eq (t->funding_requested, N);
    ck_assert_uint_eq (t->approved, N);
    ck_assert_uint_eq (t->funded, N);
    ck_assert_int_eq (t->committed_cents, N * 1000000LL);
    ck_assert_int_eq (t->honour_loan_cents, N * 1000000LL);
    ck_assert_int_eq (t->bank_loan_cents, N * 4000000LL);
    ck_assert (t->has_leverage_ratio && t->leverage_ratio == 4.0);
    ck_assert_uint_eq (t->jobs_planned, 2 * N);
    /* survival: 18 of 20 active at 3 years, exactly 90 % */
    ck_assert_uint_eq (t->followed_y3, N);
    ck_assert_uint_eq (t->active_y3, N - 2);
    ck_assert (t->has_survival_y3_pct && t->survival_y3_pct == 90.0);
    ck_assert_uint_eq (t->jobs_created_y3, 3 * (N - 2));
    /* women: i % 4 == 0 (5 of 20); under 30: i % 5 == 0 (4 of 20) */
    ck_assert_uint_eq (t->women, 5);
    ck_assert (t->women_pct == 25.0);
    ck_assert_uint_eq (t->under_30, 4);
    ck_assert (t->under_30_pct == 20.0);
    ck_assert_uint_eq (r->n_territories, 2);
    ck_assert_str_eq (r->territories[0]->territory, "laval");
    ck_assert_uint_eq (r->territories[0]->figures->submitted, N / 2);
    ck_assert_str_eq (r->as_of, "2025-03-10");
    /* breakdowns are masked under 5: month 2025-02 of laval holds 3 dossiers (i = 1, 7, 13,
     * 19 are in months 2, 2, 2, 2 ... whatever the count, none under 5 is shown) */
    for (size_t i = 0; i < r->n_territories; i++)
        for (size_t k = 0; k < r->territories[i]->n_breakdowns; k++) {
            const Qp__V1__Figures *f = r->territories[i]->breakdowns[k]->figures;
            ck_assert (!f->has_submitted || f->submitted == 0 || f->submitted >= 5);
            ck_assert (!f->has_funded || f->funded == 0 || f->funded >= 5);
        }
    /* the envelope and the target follow the same figures */
    ck_assert_uint_ge (r->n_envelopes, 1);
    ck_assert_str_eq (r->envelopes[0]->scheme_id, "phq");
    ck_assert_int_eq (r->envelopes[0]->committed_cents, N * 1000000LL);
    ck_assert_uint_eq (r->envelopes[0]->projects, N);
    ck_assert_uint_ge (r->n_targets, 1);
    ck_assert (r->targets[0]->current == N);
    ck_assert_ptr_nonnull (r->targets[0]->reached_on);
    qp__v1__indicator_report__free_unpacked (r, NULL);

    /* filters: one territory, one axis that has nothing, a scheme, a period */
    q.territory = "roubaix";
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    ck_assert_uint_eq (r->n_territories, 1);
    ck_assert_uint_eq (r->territories[0]->figures->submitted, N / 2);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    q.territory = NULL;
    q.has_axis = true, q.axis = QP__V1__AXIS__ENTREPRENEURSHIP;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    ck_assert_uint_eq (r->total->figures->submitted, 0);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    q.has_axis = false;
    q.from = "2025-02-01", q.until = "2025-02-28";
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    ck_assert_uint_eq (r->total->figures->submitted, 7); /* i % 3 == 1 */
    qp__v1__indicator_report__free_unpacked (r, NULL);
    q.from = q.until = NULL;
    q.scheme_id = "no-such-scheme";
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    ck_assert_uint_eq (r->total->figures->eligible, 0);
    ck_assert_uint_eq (r->total->figures->submitted, N);
    qp__v1__indicator_report__free_unpacked (r, NULL);

    /* the legacy ReportReply keeps the per-territory funnel */
    Qp__V1__ReportQuery rq = QP__V1__REPORT_QUERY__INIT;
    Qp__V1__ReportReply rr;
    ck_assert_int_eq (evaluation_report (s_eval, &rq, &rr), 0);
    ck_assert_uint_eq (rr.total->funded, N);
    ck_assert_int_eq (rr.total->committed_cents, N * 1000000LL);
    evaluation_report_clear (&rr);
    s_close ();
}
END_TEST

START_TEST (duplicates_replay_and_rebuild_agree)
{
    s_open ();
    s_stream ();
    uint8_t *first, *again, *replayed, *rebuilt;
    size_t n1 = s_report_bytes (&first);
    /* the same stream delivered a second time: nothing changes */
    s_stream ();
    size_t n2 = s_report_bytes (&again);
    ck_assert_uint_eq (n1, n2);
    ck_assert (memcmp (first, again, n1) == 0);
    /* replayed into a fresh Redis */
    s_flushall ();
    s_stream ();
    size_t n3 = s_report_bytes (&replayed);
    ck_assert_uint_eq (n1, n3);
    ck_assert (memcmp (first, replayed, n1) == 0);
    /* rebuilt from the stored dossiers alone */
    s_flushall ();
    redisContext *c = redisConnect (s_redis->host, s_redis->port);
    ck_assert (c && !c->err);
    for (int i = 0; i < N; i++)
        s_events (i, s_store_one, c);
    redisFree (c);
    ck_assert_int_eq (evaluation_rebuild (s_eval), N);
    size_t n4 = s_report_bytes (&rebuilt);
    ck_assert_uint_eq (n1, n4);
    ck_assert (memcmp (first, rebuilt, n1) == 0);
    free (first), free (again), free (replayed), free (rebuilt);
    s_close ();
}
END_TEST

START_TEST (phases_read_their_dates)
{
    s_open ();
    Qp__V1__TerritoryPhase p = QP__V1__TERRITORY_PHASE__INIT;
    qp_error_t err;
    p.territory = "roubaix", p.has_phase = true, p.phase = QP__V1__PHASE__INCUBATION;
    p.started_on = "2025-01-01", p.ended_on = "2024-12-01";
    ck_assert_int_eq (evaluation_record_phase (s_eval, &p, &err), -1);
    ck_assert_str_eq (err.field, "ended_on");
    p.ended_on = "2025-01-31", p.diagnostic_on = "2025-01-15";
    ck_assert_int_eq (evaluation_record_phase (s_eval, &p, &err), 0);
    p.phase = QP__V1__PHASE__ACCELERATION, p.started_on = "2025-02-01", p.ended_on = NULL;
    p.diagnostic_on = NULL;
    ck_assert_int_eq (evaluation_record_phase (s_eval, &p, &err), 0);
    s_stream ();
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.territory = "roubaix";
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    const Qp__V1__TerritoryIndicators *ti = r->territories[0];
    ck_assert_uint_eq (ti->n_phases, 2);
    ck_assert (ti->has_current_phase && ti->current_phase == QP__V1__PHASE__ACCELERATION);
    for (size_t k = 0; k < 2; k++) {
        /* roubaix: even i; January: i % 3 == 0 -> 0, 6, 12, 18 */
        bool incubation = ti->phases[k]->phase->phase == QP__V1__PHASE__INCUBATION;
        ck_assert_uint_eq (ti->phases[k]->figures->submitted, incubation ? 4 : 6);
        ck_assert_uint_eq (ti->phases[k]->figures->funded, incubation ? 4 : 6);
    }
    qp__v1__indicator_report__free_unpacked (r, NULL);
    s_close ();
}
END_TEST

/* ---- Once, with batches and several instances ------------------------------------------ */

START_TEST (duplicates_in_one_batch_and_two_instances)
{
    s_open ();
    s_stream ();
    uint8_t *first, *other;
    size_t n1 = s_report_bytes (&first);
    /* the stream twice inside one batch (an outbox re-publishing what it had sent), then
     * a second instance on its own connection fed the same stream: nothing changes */
    s_flushall ();
    for (int i = 0; i < N; i++) {
        s_events (i, s_apply_one, s_eval);
        s_events (i, s_apply_one, s_eval);
    }
    qp_redis_t *client2 = qp_redis_connect (s_redis->host, s_redis->port, 5000);
    ck_assert_ptr_nonnull (client2);
    char data[1024];
    snprintf (data, sizeof data, "%s/data", qp_test_source_dir ());
    evaluation_t *eval2 = evaluation_new (client2, data);
    ck_assert_ptr_nonnull (eval2);
    for (int i = 0; i < N; i++)
        s_events (i, s_apply_one, eval2);
    /* both hold the same batch: the second to apply sees the first's tokens */
    ck_assert_int_eq (evaluation_flush (eval2), 0);
    ck_assert_int_eq (evaluation_flush (s_eval), 0);
    size_t n2 = s_report_bytes (&other);
    ck_assert_uint_eq (n1, n2);
    ck_assert (memcmp (first, other, n1) == 0);
    free (other);
    /* a follow-up corrected twice within one batch: the last one counts, once */
    for (int k = 0; k < 3; k++) {
        Qp__V1__FollowUp fu = QP__V1__FOLLOW_UP__INIT;
        fu.dossier_id = s_samples[0].id, fu.has_year = true, fu.year = 1;
        fu.has_active = true, fu.active = k != 1;
        fu.has_jobs_created = true, fu.jobs_created = (uint32_t) k;
        s_apply_one (&fu.base, s_samples[0].id, 0, eval2);
    }
    ck_assert_int_eq (evaluation_flush (eval2), 0);
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    ck_assert_uint_eq (r->total->figures->followed_y1, 1);
    ck_assert_uint_eq (r->total->figures->active_y1, 1);
    ck_assert_uint_eq (r->total->figures->jobs_created_y1, 2);
    ck_assert_uint_eq (r->total->figures->submitted, N);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    evaluation_destroy (&eval2);
    qp_redis_destroy (&client2);
    free (first);
    s_close ();
}
END_TEST

/* 3,000 dossiers (the 20 samples under 150 ids each) into eval, flushed: 18,000 events,
 * more than two batches, some dossiers' events split between two. */
static void s_many (evaluation_t *eval)
{
    for (int k = 0; k < 150; k++)
        for (int i = 0; i < N; i++) {
            char key[48];
            snprintf (key, sizeof key, "eval-%d-%d", k, i);
            qp_hash_hex (s_samples[i].id, key, strlen (key));
            s_events (i, s_apply_one, eval);
        }
    ck_assert_int_eq (evaluation_flush (eval), 0);
    for (int i = 0; i < N; i++)
        s_sample (i);
}

START_TEST (many_batches_exact)
{
    s_open ();
    s_many (s_eval);
    s_many (s_eval); /* all again: nothing changes */
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    const Qp__V1__Figures *t = r->total->figures;
    ck_assert_uint_eq (t->submitted, 150 * N);
    ck_assert_uint_eq (t->funded, 150 * N);
    ck_assert_int_eq (t->committed_cents, 150LL * N * 1000000);
    ck_assert_int_eq (t->bank_loan_cents, 150LL * N * 4000000);
    ck_assert_uint_eq (t->followed_y3, 150 * N);
    ck_assert_uint_eq (t->active_y3, 150 * (N - 2));
    ck_assert_uint_eq (t->women, 150 * 5);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    s_close ();
}
END_TEST

/* ---- Rejected at intake ------------------------------------------------------------------ */

static void s_refusal (const char *submission_id, const char *territory, const char *qpv)
{
    Qp__V1__SubmissionRefused m = QP__V1__SUBMISSION_REFUSED__INIT;
    m.channel = "test", m.territory = (char *) territory, m.qpv = (char *) qpv;
    m.submitted_on = "2025-02-03";
    Qp__V1__FieldError e = QP__V1__FIELD_ERROR__INIT;
    Qp__V1__FieldError *errors[] = {&e};
    e.field = "business.siret", e.code = "checksum";
    m.n_errors = 1, m.errors = errors;
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    char mid[QP_ID_HEX + 1];
    qp_message_make_id (mid, m.base.descriptor->name, submission_id, "refused");
    env.message_id = mid;
    env.has_event_time_ms = true, env.event_time_ms = qp_date_to_ms (qp_date_from_civil (2025, 2, 3));
    qp_message_t msg = {.envelope = &env, .payload = &m.base, .descriptor = m.base.descriptor};
    evaluation_apply (s_eval, &msg);
}

static uint64_t s_rejected (const char *territory)
{
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.territory = (char *) territory;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    uint64_t n = territory ? (r->n_territories ? r->territories[0]->figures->rejected_at_intake : 0)
                           : r->total->figures->rejected_at_intake;
    qp__v1__indicator_report__free_unpacked (r, NULL);
    return n;
}

START_TEST (rejected_at_intake_counted_once)
{
    s_open ();
    s_stream ();
    s_refusal ("sub-1", "roubaix", "QN05981M");
    s_refusal ("sub-1", "roubaix", "QN05981M"); /* the same refusal delivered again */
    s_refusal ("sub-2", "roubaix", NULL);
    s_refusal ("sub-3", NULL, NULL); /* territory unknown */
    ck_assert_int_eq (evaluation_flush (s_eval), 0);
    ck_assert_uint_eq (s_rejected (NULL), 3);
    ck_assert_uint_eq (s_rejected ("roubaix"), 2);
    ck_assert_uint_eq (s_rejected ("hors-programme"), 1);
    /* accepted dossiers are still counted apart */
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    ck_assert_uint_eq (r->total->figures->submitted, N);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    /* intake stores nothing of a refusal: a rebuild keeps evaluation's record of it */
    redisContext *c = redisConnect (s_redis->host, s_redis->port);
    ck_assert (c && !c->err);
    for (int i = 0; i < N; i++)
        s_events (i, s_store_one, c);
    redisFree (c);
    ck_assert_int_eq (evaluation_rebuild (s_eval), N);
    ck_assert_uint_eq (s_rejected (NULL), 3);
    ck_assert_uint_eq (s_rejected ("roubaix"), 2);
    s_close ();
}
END_TEST

/* ---- The outbox acknowledgement ------------------------------------------------------- */

/* Dossier i's events as the service gets them from the bus: each decoded, applied, then
 * its frame set acknowledged; with record, each member also put in the outbox first (as
 * the step's script does). */
static void s_deliver_one (const ProtobufCMessage *m, const char *id, int64_t t, void *arg)
{
    qp_meta_t meta = {.correlation_id = id, .event_time_ms = t, .discriminator = "test",
                      .producer = "test"};
    zmsg_t *frames = qp_message_build (m, &meta, NULL);
    zframe_t *type = zmsg_first (frames), *env = zmsg_next (frames);
    if (arg) {
        size_t tl = zframe_size (type), el = zframe_size (env);
        char member[tl + 1 + el];
        memcpy (member, zframe_data (type), tl);
        member[tl] = 0;
        memcpy (member + tl + 1, zframe_data (env), el);
        redisReply *r = qp_redis_command (s_client, "ZADD %s 1 %b", QP_STORE_OUTBOX_KEY, member,
                                          tl + 1 + el);
        ck_assert (r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject (r);
    }
    qp_message_t msg;
    qp_error_t err;
    ck_assert_int_eq (qp_message_decode (type, env, &msg, &err), 0);
    evaluation_apply (s_eval, &msg);
    evaluation_ack (s_eval, zframe_data (type), zframe_size (type), zframe_data (env),
                    zframe_size (env));
    qp_message_clear (&msg);
    zmsg_destroy (&frames);
}

static long long s_outbox_size (void)
{
    redisReply *r = qp_redis_command (s_client, "ZCARD %s", QP_STORE_OUTBOX_KEY);
    ck_assert (r && r->type == REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject (r);
    return n;
}

static uint64_t s_submitted (void)
{
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    uint64_t n = r->total->figures->submitted;
    qp__v1__indicator_report__free_unpacked (r, NULL);
    return n;
}

/* The evaluation removes an event from the outbox with the batch that counts it, never
 * before: a batch Redis refused keeps its events there (the sweeper publishes them again),
 * and a batch of events already counted still removes them. */
START_TEST (outbox_acks_follow_the_counts)
{
    s_open ();
    int per = 0;
    s_events (0, s_deliver_one, (void *) 1); /* into the outbox, applied, acked */
    per = (int) s_outbox_size ();
    ck_assert_int_eq (evaluation_flush (s_eval), 0);
    ck_assert_int_gt (per, 0);
    ck_assert_int_eq (s_outbox_size (), 0);
    ck_assert_uint_eq (s_submitted (), 1);

    /* dossier 1's events recorded, then Redis goes away before the evaluation's batch */
    s_events (1, s_deliver_one, (void *) 1);
    ck_assert_int_eq (qp_test_redis_down (s_redis, SIGTERM), 0);
    ck_assert_int_eq (evaluation_flush (s_eval), -1);
    ck_assert_int_eq (qp_test_redis_up (s_redis), 0);
    ck_assert_int_eq (s_outbox_size (), per); /* kept: nothing was counted */
    ck_assert_uint_eq (s_submitted (), 1);
    /* the sweeper publishes them again: counted now, and removed */
    s_events (1, s_deliver_one, NULL);
    ck_assert_int_eq (evaluation_flush (s_eval), 0);
    ck_assert_int_eq (s_outbox_size (), 0);
    ck_assert_uint_eq (s_submitted (), 2);

    /* published again though already counted (a sweep raced the ack): removed, once */
    s_events (1, s_deliver_one, (void *) 1);
    ck_assert_int_eq (evaluation_flush (s_eval), 0);
    ck_assert_int_eq (s_outbox_size (), 0);
    ck_assert_uint_eq (s_submitted (), 2);
    s_close ();
}
END_TEST

START_TEST (query_period_checked)
{
    struct {
        const char *from, *until, *field;
    } cases[] = {{"2025-13-01", NULL, "from"},  {"2025-00", NULL, "from"},
                 {NULL, "2025-02-30", "until"}, {NULL, "25-01-01", "until"},
                 {"2025-03", "2025-01", "until"}, {"2025-03-01", "2025-02-28", "until"},
                 {"2025-01", "2025-01-31", NULL}, {"2025-02-01", NULL, NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
        q.from = (char *) cases[i].from, q.until = (char *) cases[i].until;
        qp_error_t err;
        int rc = evaluation_query_check (&q, &err);
        if (!cases[i].field) {
            ck_assert_msg (rc == 0, "case %zu refused: %s", i, err.message);
            continue;
        }
        ck_assert_msg (rc == -1, "case %zu accepted", i);
        ck_assert_str_eq (err.code, "invalid_field");
        ck_assert_str_eq (err.field, cases[i].field);
        ck_assert (strlen (err.message) > 10);
    }
}
END_TEST

/* ---- Through real processes ------------------------------------------------------------ */

START_TEST (follow_up_for_unknown_dossier_refused)
{
    const char *env[] = {qp_test_env_territories (), NULL};
    const char *const programs[] = {"intake", "evaluation", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = programs, .env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    Qp__V1__FollowUp fu = QP__V1__FOLLOW_UP__INIT;
    char id[QP_ID_HEX + 1];
    qp_hash_hex (id, "nobody", 6);
    fu.dossier_id = id, fu.has_year = true, fu.year = 1, fu.has_active = true, fu.active = true;
    fu.reported_on = "2026-01-10";
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (stack->work, "intake", &fu.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__follow_up_reply__descriptor);
    const Qp__V1__FollowUpReply *r = (const void *) reply.payload;
    ck_assert (!r->accepted);
    ck_assert_uint_ge (r->n_errors, 1);
    ck_assert_str_eq (r->errors[0]->field, "dossier_id");
    ck_assert_str_eq (r->errors[0]->code, "unknown");
    qp_message_clear (&reply);
    /* nothing was counted, and evaluation still answers */
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &q.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__indicator_report__descriptor);
    const Qp__V1__IndicatorReport *ir = (const void *) reply.payload;
    ck_assert (!ir->total->figures->followed_y1);
    qp_message_clear (&reply);
    /* a phase with a bad date is refused with its field */
    Qp__V1__TerritoryPhase p = QP__V1__TERRITORY_PHASE__INIT;
    p.territory = "roubaix", p.has_phase = true, p.phase = QP__V1__PHASE__LABELLISATION;
    p.started_on = "2021-13-01";
    ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &p.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__territory_phase_reply__descriptor);
    ck_assert (!((const Qp__V1__TerritoryPhaseReply *) reply.payload)->accepted);
    ck_assert_str_eq (((const Qp__V1__TerritoryPhaseReply *) reply.payload)->field, "started_on");
    qp_message_clear (&reply);

    /* a query for month 13, or ending before it starts, is refused with its field */
    q.from = "2025-13-01";
    ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &q.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((const Qp__V1__Error *) reply.payload)->code, "invalid_field");
    ck_assert_str_eq (((const Qp__V1__Error *) reply.payload)->field, "from");
    qp_message_clear (&reply);
    q.from = "2025-03-01", q.until = "2025-01-31";
    ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &q.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((const Qp__V1__Error *) reply.payload)->field, "until");
    qp_message_clear (&reply);
    q.from = q.until = NULL;

    /* a submission intake refuses reaches the funnel, in its territory (from the commune) */
    qp_test_sample_t sample;
    qp_test_sample (&sample, "test-eval", "refused", 1);
    sample.business.siret = "12345678901234"; /* fails the Luhn check */
    sample.dossier.territory = NULL;
    ck_assert_int_eq (qp_test_call (stack->work, "intake", &sample.submit.base, NULL, 10000, &reply,
                                    &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__submit_dossier_reply__descriptor);
    ck_assert (!((const Qp__V1__SubmitDossierReply *) reply.payload)->accepted);
    qp_message_clear (&reply);
    uint64_t rejected = 0;
    for (int attempt = 0; attempt < 100 && rejected == 0; attempt++) {
        if (attempt)
            qp_test_sleep_ms (100); /* the event travels through the bus */
        ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &q.base, NULL, 10000, &reply,
                                        &err), 0);
        ck_assert_ptr_eq (reply.descriptor, &qp__v1__indicator_report__descriptor);
        rejected = ((const Qp__V1__IndicatorReport *) reply.payload)->total->figures->rejected_at_intake;
        qp_message_clear (&reply);
    }
    ck_assert_uint_eq (rejected, 1);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

/* Reads attribute data-value of the element with id in the rendered DOM. */
static bool s_dom_value (const char *dom, const char *id, char *out, size_t size)
{
    char needle[128];
    snprintf (needle, sizeof needle, "id=\"%s\"", id);
    const char *at = strstr (dom, needle);
    if (!at)
        return false;
    const char *end = strchr (at, '>');
    const char *v = strstr (at, "data-value=\"");
    if (!v || (end && v > end))
        return false;
    v += strlen ("data-value=\"");
    snprintf (out, size, "%.*s", (int) strcspn (v, "\""), v);
    return true;
}

START_TEST (dashboard_in_headless_chromium)
{
    s_open ();
    s_stream ();
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    Qp__V1__IndicatorReport *r;
    ck_assert_int_eq (evaluation_indicators (s_eval, &q, &r), 0);
    char *dir = qp_test_tmpdir ("eval-html");
    ck_assert_ptr_nonnull (dir);
    char page[1024], dom[1024], shot[1024], cmd[4096];
    snprintf (page, sizeof page, "%s/dashboard.html", dir);
    snprintf (dom, sizeof dom, "%s/dom.html", dir);
    /* kept in the build tree, to be looked at */
    snprintf (shot, sizeof shot, "%s/evaluation-dashboard.png", qp_test_build_dir ());
    FILE *f = fopen (page, "w");
    ck_assert_ptr_nonnull (f);
    ck_assert_int_eq (qp_report_html_write (f, r), 0);
    fclose (f);
    const char *flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                        "--disable-background-networking --disable-component-update --disable-sync";
    snprintf (cmd, sizeof cmd, "chromium %s --user-data-dir=%s/profile --dump-dom file://%s > %s 2>/dev/null",
              flags, dir, page, dom);
    ck_assert_msg (system (cmd) == 0, "chromium --dump-dom failed (is Debian's chromium installed? ./qp deps)");
    snprintf (cmd, sizeof cmd,
              "chromium %s --user-data-dir=%s/profile2 --window-size=1100,1600 --screenshot=%s file://%s "
              "> /dev/null 2>&1",
              flags, dir, shot, page);
    ck_assert_int_eq (system (cmd), 0);
    ck_assert_int_eq (access (shot, R_OK), 0);
    FILE *d = fopen (dom, "r");
    ck_assert_ptr_nonnull (d);
    static char text[1 << 20];
    size_t len = fread (text, 1, sizeof text - 1, d);
    text[len] = 0;
    fclose (d);
    char v[64], want[64];
    const Qp__V1__Figures *t = r->total->figures;
    struct {
        const char *id;
        long long value;
    } shown[] = {{"funnel-submitted", (long long) t->submitted},
                 {"funnel-eligible", (long long) t->eligible},
                 {"funnel-funded", (long long) t->funded},
                 {"funnel-rejected_at_intake", (long long) t->rejected_at_intake},
                 {"kpi-funded", (long long) t->funded},
                 {"kpi-committed", (long long) t->committed_cents},
                 {"envelope-phq-committed", (long long) r->envelopes[0]->committed_cents},
                 {"t-roubaix-submitted", (long long) r->territories[1]->figures->submitted}};
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        ck_assert_msg (s_dom_value (text, shown[i].id, v, sizeof v), "%s not in the page", shown[i].id);
        snprintf (want, sizeof want, "%lld", shown[i].value);
        ck_assert_str_eq (v, want);
    }
    ck_assert (s_dom_value (text, "kpi-survival3", v, sizeof v));
    ck_assert_str_eq (v, "90.00");
    ck_assert_ptr_nonnull (strstr (text, "<svg id=\"chart-funnel\""));
    qp__v1__indicator_report__free_unpacked (r, NULL);
    qp_test_rmtree (dir);
    free (dir);
    s_close ();
}
END_TEST

/* An outbox member whose envelope does not decode: the evaluation removes it (logged,
 * counted as an error, counted in no figure) instead of letting the sweeper publish it
 * again every 30 s forever, and keeps running. */
START_TEST (undecodable_event_leaves_the_outbox)
{
    const char *const programs[] = {"intake", "evaluation", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = programs};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    /* a subscribed type, a NUL, then bytes that are no Envelope; due at once */
    static const char garbage[] = "qp.v1.DossierReceived\0\xff\xff\xff\x07not an envelope";
    redisContext *c = redisConnect (stack->redis->host, stack->redis->port);
    ck_assert (c && !c->err);
    redisReply *r = redisCommand (c, "ZADD %s 0 %b", QP_STORE_OUTBOX_KEY, garbage,
                                  sizeof garbage - 1);
    ck_assert (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject (r);
    qp_test_proc_t *eval = NULL;
    for (size_t i = 0; i < stack->n_procs; i++)
        if (!strcmp (stack->procs[i]->name, "evaluation"))
            eval = stack->procs[i];
    ck_assert_ptr_nonnull (eval);
    /* a sweeper (intake's or the evaluation's, each second) publishes it; the evaluation
     * cannot decode it and removes it with its next flush */
    bool gone = false;
    for (int attempt = 0; attempt < 300 && !gone; attempt++) {
        if (attempt)
            qp_test_sleep_ms (100);
        r = redisCommand (c, "ZSCORE %s %b", QP_STORE_OUTBOX_KEY, garbage, sizeof garbage - 1);
        ck_assert_ptr_nonnull (r);
        gone = r->type == REDIS_REPLY_NIL;
        freeReplyObject (r);
    }
    ck_assert_msg (gone, "the undecodable member is still in the outbox after 30 s");
    ck_assert_int_ge (qp_test_proc_log_count (eval, "eval_undecodable_acked"), 1);
    ck_assert_int_ge (qp_test_proc_log_count (eval, "event_refused"), 1);
    redisFree (c);
    /* still running, and it counted nothing */
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &q.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__indicator_report__descriptor);
    const Qp__V1__IndicatorReport *rep = (const Qp__V1__IndicatorReport *) reply.payload;
    const Qp__V1__Figures *f = rep->total ? rep->total->figures : NULL;
    if (f) { /* absent: nothing at all */
        ck_assert_uint_eq (f->submitted, 0);
        ck_assert_uint_eq (f->closed, 0);
        ck_assert_uint_eq (f->rejected_at_intake, 0);
    }
    qp_message_clear (&reply);
    ck_assert (qp_test_proc_alive (eval));
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("evaluation");
    TCase *tc = tcase_create ("evaluation");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, known_stream_exact_figures);
    tcase_add_test (tc, duplicates_replay_and_rebuild_agree);
    tcase_add_test (tc, phases_read_their_dates);
    tcase_add_test (tc, duplicates_in_one_batch_and_two_instances);
    tcase_add_test (tc, many_batches_exact);
    tcase_add_test (tc, rejected_at_intake_counted_once);
    tcase_add_test (tc, query_period_checked);
    tcase_add_test (tc, outbox_acks_follow_the_counts);
    tcase_add_test (tc, follow_up_for_unknown_dossier_refused);
    tcase_add_test (tc, undecodable_event_leaves_the_outbox);
    tcase_add_test (tc, dashboard_in_headless_chromium);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
