/* Funding orchestration against real processes: redis-server, qp-bus, qp-funding (with
 * the test's envelopes and short timeouts from tests/data/funding) and either the test
 * playing a partner component on the partner endpoint or the real default components.
 * The test plays eligibility: it stores an ELIGIBLE dossier and sends EligibilityDecided. */
#include "funding/funding.h"
#include "funding/terms.h"
#include "qp_bus.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp/v1/funding.pb-c.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

static qp_test_stack_t *s_stack;
static qp_redis_t *s_redis;
static char *s_data; /* the funding data dir: fixture files + the source catalogue */
static qp_bus_client_t *s_work; /* plays eligibility */

static void s_spawn_funding (const char *max_attempts)
{
    char flag[64];
    snprintf (flag, sizeof flag, "--max-attempts=%s", max_attempts);
    const char *args[] = {"--data-dir", s_data, flag, NULL};
    qp_test_proc_t *p = qp_test_spawn ("funding", (const char *const *) s_stack->env, args,
                                       s_stack->dir);
    ck_assert_ptr_nonnull (p);
    s_stack->procs[s_stack->n_procs++] = p;
}

static void s_start_env (int funding_instances, const char *const *partners,
                         const char *const *env, const char *const *wait_for)
{
    qp_test_stack_opts_t opts = {.programs = partners, .env = env, .wait_for = wait_for};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
    s_data = qp_test_tmpdir ("qp-funding-data");
    char cmd[2048];
    snprintf (cmd, sizeof cmd,
              "cp %s/tests/data/funding/*.json %s/ && mkdir %s/catalogue && cp "
              "%s/data/catalogue/phq.json %s/catalogue/",
              qp_test_source_dir (), s_data, s_data, qp_test_source_dir (), s_data);
    ck_assert_int_eq (system (cmd), 0);
    for (int i = 0; i < funding_instances; i++)
        s_spawn_funding ("4");
    ck_assert (qp_test_bus_wait_workers (s_stack->work, "funding", funding_instances, 15000));
    s_redis = qp_redis_connect (s_stack->redis->host, s_stack->redis->port, 5000);
    ck_assert_ptr_nonnull (s_redis);
    s_work = qp_bus_client_new (s_stack->work);
}

static void s_start (int funding_instances, const char *const *partners)
{
    s_start_env (funding_instances, partners, NULL, NULL);
}

static void s_stop (void)
{
    qp_redis_destroy (&s_redis);
    qp_bus_client_destroy (&s_work);
    ck_assert_int_eq (qp_test_stack_stop (&s_stack), 0);
    qp_test_rmtree (s_data);
    free (s_data);
}

/* Stores dossier n as ELIGIBLE for the given schemes and hands it to funding. */
static void s_eligible (const char *id, const char *territory, const char *const *schemes,
                        int64_t amount)
{
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    p.has_financing_need_cents = true, p.financing_need_cents = 5000000;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = 1000000;
    p.has_bank_loan_cents = true, p.bank_loan_cents = 3000000;
    p.has_honour_loan_months = true, p.honour_loan_months = 24;
    p.has_deferral_months = true, p.deferral_months = 3;
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    d.project = &p;
    d.territory = (char *) territory;
    d.submitted_on = "2025-03-10";
    Qp__V1__DossierState state;
    int64_t t = 1741564800000; /* 2025-03-10 */
    ck_assert_int_eq (qp_store_create (s_redis, id, &d, territory, t, "m0", &state),
                      QP_STORE_APPLIED);
    Qp__V1__EligibilityDecided e = QP__V1__ELIGIBILITY_DECIDED__INIT;
    Qp__V1__SchemeDecision sd[4], *sdp[4];
    size_t n = 0;
    for (; schemes[n]; n++) {
        qp__v1__scheme_decision__init (&sd[n]);
        sd[n].scheme_id = (char *) schemes[n];
        sd[n].has_agency = true, sd[n].agency = QP__V1__AGENCY__BPIFRANCE;
        sd[n].has_outcome = true, sd[n].outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
        sd[n].has_amount_cents = true;
        sd[n].amount_cents = strcmp (schemes[n], "cfe-qpv") ? amount : 0;
        sdp[n] = &sd[n];
    }
    e.dossier_id = (char *) id;
    e.territory = (char *) territory;
    e.n_decisions = n, e.decisions = sdp;
    qp_test_hand_to_funding (s_redis, s_work, id, &e, t);
}

static Qp__V1__DossierState s_state (const char *id)
{
    return qp_test_dossier_state (s_redis, id);
}

static Qp__V1__DossierState s_wait_terminal (const char *id, int timeout_ms)
{
    return qp_test_wait_terminal (s_redis, id, timeout_ms);
}

static long long s_hget (const char *key, const char *field)
{
    redisReply *r = qp_redis_command (s_redis, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll (r->str) : -1;
    if (r)
        freeReplyObject (r);
    return v;
}

static void s_assert_balanced (const char *key)
{
    ck_assert_int_eq (s_hget (key, "reserved") + s_hget (key, "committed") +
                          s_hget (key, "available"),
                      s_hget (key, "total"));
}

static Qp__V1__FundingLeg *s_leg (const char *id, const char *scheme)
{
    char key[80];
    snprintf (key, sizeof key, "qp:{%s}:f", id);
    redisReply *r = qp_redis_command (s_redis, "HGET %s %s", key, scheme);
    ck_assert (r && r->type == REDIS_REPLY_STRING);
    Qp__V1__FundingLeg *leg = qp__v1__funding_leg__unpack (NULL, r->len, (uint8_t *) r->str);
    freeReplyObject (r);
    ck_assert_ptr_nonnull (leg);
    return leg;
}

/* ---- the test as a partner component ------------------------------------------------- */

typedef struct {
    qp_bus_client_t *client;
    const char *component;
    Qp__V1__Agency agency;
} fake_t;

static void s_fake_send (fake_t *f, const ProtobufCMessage *m, const char *disc)
{
    qp_meta_t meta = {.discriminator = disc, .event_time_ms = 1741564800000};
    zmsg_t *z = qp_message_build (m, &meta, NULL);
    ck_assert_int_eq (qp_bus_client_send (f->client, "funding", &z), 0);
}

/* Announces the component; it stays in routing 3 intervals after its last hello. */
static void s_fake_hello (fake_t *f, const char *scheme, uint32_t interval_ms)
{
    Qp__V1__PartnerHello h = QP__V1__PARTNER_HELLO__INIT;
    h.component_id = (char *) f->component;
    h.has_agency = true, h.agency = f->agency;
    char *schemes[] = {(char *) scheme};
    h.n_schemes = 1, h.schemes = schemes;
    h.has_status_interval_ms = true, h.status_interval_ms = interval_ms;
    char disc[64];
    snprintf (disc, sizeof disc, "%s/%u", f->component, interval_ms);
    s_fake_send (f, &h.base, disc);
}

static void s_fake_start (fake_t *f, const char *component, Qp__V1__Agency agency,
                          const char *scheme)
{
    f->client = qp_bus_client_new (s_stack->partner);
    f->component = component;
    f->agency = agency;
    char service[128];
    snprintf (service, sizeof service, "partner.%s.%s",
              agency == QP__V1__AGENCY__BPIFRANCE ? "BPIFRANCE" : "ANCT", component);
    ck_assert_int_eq (qp_bus_client_ready (f->client, service), 0);
    s_fake_hello (f, scheme, 60000);
    /* Wait until funding routes to it. */
    char key[96];
    snprintf (key, sizeof key, "qp:partner:%s", component);
    for (int i = 0; i < 100 && s_hget (key, "last_seen_ms") < 0; i++)
        qp_test_sleep_ms (50);
    ck_assert_int_gt (s_hget (key, "last_seen_ms"), 0);
}

/* Next FundingRequest delivered to the fake (other frames skipped); NULL on timeout. */
static Qp__V1__FundingRequest *s_fake_next (fake_t *f, qp_message_t *m, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (f->client), NULL);
    Qp__V1__FundingRequest *rq = NULL;
    int64_t end = zclock_mono () + timeout_ms;
    while (!rq && zclock_mono () < end) {
        if (!zpoller_wait (poller, (int) (end - zclock_mono ())))
            break;
        qp_bus_frame_t fr;
        if (qp_bus_client_recv (f->client, &fr) != 0)
            continue;
        qp_error_t err;
        if (!strcmp (fr.kind, QPB_DELIVER) && qp_message_decode (fr.type, fr.envelope, m, &err) == 0) {
            if (m->descriptor == &qp__v1__funding_request__descriptor)
                rq = (Qp__V1__FundingRequest *) m->payload;
            else
                qp_message_clear (m);
        }
        qp_bus_frame_clear (&fr);
    }
    zpoller_destroy (&poller);
    return rq;
}

/* Next Error delivered to a client: its code (malloc'd), NULL on timeout. */
static char *s_client_error (qp_bus_client_t *client)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (client), NULL);
    char *code = NULL;
    for (int i = 0; i < 50 && !code && zpoller_wait (poller, 5000); i++) {
        qp_bus_frame_t fr;
        qp_message_t m;
        qp_error_t err;
        if (qp_bus_client_recv (client, &fr) != 0)
            continue;
        if (!strcmp (fr.kind, QPB_DELIVER) && qp_message_decode (fr.type, fr.envelope, &m, &err) == 0) {
            if (m.descriptor == &qp__v1__error__descriptor)
                code = strdup (((Qp__V1__Error *) m.payload)->code);
            qp_message_clear (&m);
        }
        qp_bus_frame_clear (&fr);
    }
    zpoller_destroy (&poller);
    return code;
}

static char *s_fake_error (fake_t *f)
{
    return s_client_error (f->client);
}

static void s_answer (fake_t *f, const Qp__V1__FundingRequest *rq, const char *request_id,
                      Qp__V1__Agency agency, Qp__V1__PartnerOutcome outcome, const char *disc)
{
    Qp__V1__PartnerDecision d = QP__V1__PARTNER_DECISION__INIT;
    Qp__V1__LoanTerms t = QP__V1__LOAN_TERMS__INIT;
    d.request_id = (char *) request_id;
    d.dossier_id = rq->dossier_id;
    d.scheme_id = rq->scheme_id;
    d.has_agency = true, d.agency = agency;
    d.component_id = (char *) f->component;
    d.has_outcome = true, d.outcome = outcome;
    if (outcome == QP__V1__PARTNER_OUTCOME__APPROVED) {
        t = *rq->terms;
        d.terms = &t;
    } else
        d.reason = "test decline";
    s_fake_send (f, &d.base, disc);
}

START_TEST (test_answers_refused_approval_settles_once)
{
    s_start (1, NULL);
    fake_t f;
    s_fake_start (&f, "fake-bpi", QP__V1__AGENCY__BPIFRANCE, "phq");
    static const char *const schemes[] = {"phq", NULL};
    s_eligible ("d1", "roubaix", schemes, 1200000);
    qp_message_t m;
    Qp__V1__FundingRequest *rq = s_fake_next (&f, &m, 10000);
    ck_assert_ptr_nonnull (rq);
    ck_assert_str_eq (rq->scheme_id, "phq");
    ck_assert_int_eq (rq->amount_asked_cents, 1200000);
    ck_assert_str_eq (rq->summary->territory, "roubaix");
    long long reserved = s_hget ("qp:envelope:{phq}", "reserved");
    ck_assert_int_eq (reserved, 1200000);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}:t:roubaix", "reserved"), 1200000);

    /* An unknown request and another agency's answer: refused, nothing changes. */
    s_answer (&f, rq, "no-such-request", QP__V1__AGENCY__BPIFRANCE,
              QP__V1__PARTNER_OUTCOME__APPROVED, "u1");
    char *code = s_fake_error (&f);
    ck_assert_str_eq (code, "unknown_request");
    free (code);
    s_answer (&f, rq, rq->request_id, QP__V1__AGENCY__ANCT, QP__V1__PARTNER_OUTCOME__APPROVED,
              "a1");
    code = s_fake_error (&f);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    ck_assert_int_eq (s_state ("d1"), QP__V1__DOSSIER_STATE__FUNDING_REQUESTED);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "committed"), 0);

    /* The real answer, then the same answer twice. */
    s_answer (&f, rq, rq->request_id, QP__V1__AGENCY__BPIFRANCE,
              QP__V1__PARTNER_OUTCOME__APPROVED, "ok1");
    ck_assert_int_eq (s_wait_terminal ("d1", 10000), QP__V1__DOSSIER_STATE__FUNDED);
    s_answer (&f, rq, rq->request_id, QP__V1__AGENCY__BPIFRANCE,
              QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED, "ok2");
    code = s_fake_error (&f);
    ck_assert_str_eq (code, "already_decided");
    free (code);
    ck_assert_int_eq (s_state ("d1"), QP__V1__DOSSIER_STATE__FUNDED);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "committed"), 1200000);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}:t:roubaix", "committed"), 1200000);
    s_assert_balanced ("qp:envelope:{phq}");
    s_assert_balanced ("qp:envelope:{phq}:t:roubaix");

    /* Honour-loan terms with the schedule, stored with the decision. */
    Qp__V1__FundingLeg *leg = s_leg ("d1", "phq");
    ck_assert_int_eq (leg->state, QP__V1__LEG_STATE__LEG_APPROVED);
    ck_assert_ptr_nonnull (leg->honour_loan);
    /* Stored: the terms; the schedule is derived from them when asked (issue 8). */
    ck_assert_uint_eq (leg->honour_loan->n_schedule, 0);
    ck_assert_str_eq (leg->honour_loan->decided_on, "2025-03-10");
    ck_assert_int_eq (terms_leg_schedule (leg), 0);
    ck_assert_uint_eq (leg->honour_loan->n_schedule, 24);
    /* A final leg keeps of its request only the territory the closing step reads. */
    ck_assert_ptr_nonnull (leg->request);
    ck_assert_ptr_null (leg->request->request_id);
    ck_assert_ptr_null (leg->request->terms);
    ck_assert_str_eq (leg->request->summary->territory, "roubaix");
    ck_assert_str_eq (leg->request_id, rq->request_id);
    ck_assert_uint_eq (leg->honour_loan->rate_bp, 0);
    ck_assert_uint_eq (leg->honour_loan->leverage_permille, 2500);
    ck_assert_uint_eq (leg->honour_loan->schedule[0]->month, 4);
    ck_assert_str_eq (leg->honour_loan->schedule[0]->due_on, "2025-07-01");
    ck_assert_int_eq (leg->honour_loan->schedule[0]->amount_cents, 50000);
    ck_assert_int_eq (leg->honour_loan->schedule[23]->remaining_cents, 0);
    qp__v1__funding_leg__free_unpacked (leg, NULL);
    qp_message_clear (&m);
    qp_bus_client_destroy (&f.client);
    s_stop ();
}
END_TEST

/* "Information needed" is not a decline: the leg ends LEG_INFORMATION_NEEDED with the
 * list, the reservation is released, the dossier closes UNFUNDED and says what is
 * needed. An answer that needs information without saying which is refused. A decision
 * for a dossier that is not stored is answered with an error naming it. */
START_TEST (test_information_needed_released)
{
    s_start (1, NULL);
    fake_t f;
    s_fake_start (&f, "fake-bpi", QP__V1__AGENCY__BPIFRANCE, "phq");
    static const char *const schemes[] = {"phq", NULL};
    s_eligible ("d1", "roubaix", schemes, 1200000);
    qp_message_t m;
    Qp__V1__FundingRequest *rq = s_fake_next (&f, &m, 10000);
    ck_assert_ptr_nonnull (rq);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "reserved"), 1200000);

    Qp__V1__PartnerDecision d = QP__V1__PARTNER_DECISION__INIT;
    d.request_id = rq->request_id;
    d.dossier_id = rq->dossier_id;
    d.scheme_id = rq->scheme_id;
    d.has_agency = true, d.agency = QP__V1__AGENCY__BPIFRANCE;
    d.component_id = (char *) f.component;
    d.has_outcome = true, d.outcome = QP__V1__PARTNER_OUTCOME__INFORMATION_NEEDED;
    d.reason = "the business plan is missing";
    s_fake_send (&f, &d.base, "i0");
    char *code = s_fake_error (&f);
    ck_assert_str_eq (code, "invalid_field");
    free (code);
    ck_assert_int_eq (s_state ("d1"), QP__V1__DOSSIER_STATE__FUNDING_REQUESTED);

    char *needed[] = {"summary.financing_need_cents", "business plan"};
    d.n_information_needed = 2, d.information_needed = needed;
    s_fake_send (&f, &d.base, "i1");
    ck_assert_int_eq (s_wait_terminal ("d1", 10000), QP__V1__DOSSIER_STATE__UNFUNDED);
    Qp__V1__FundingLeg *leg = s_leg ("d1", "phq");
    ck_assert_int_eq (leg->state, QP__V1__LEG_STATE__LEG_INFORMATION_NEEDED);
    ck_assert_uint_eq (leg->n_information_needed, 2);
    ck_assert_str_eq (leg->information_needed[1], "business plan");
    qp__v1__funding_leg__free_unpacked (leg, NULL);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "committed"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "projects"), 0);
    s_assert_balanced ("qp:envelope:{phq}");
    s_assert_balanced ("qp:envelope:{phq}:t:roubaix");
    char *reason = qp_store_get (s_redis, "d1", "final_reason", NULL);
    ck_assert_ptr_nonnull (strstr (reason, "information needed by fake-bpi"));
    ck_assert_ptr_nonnull (strstr (reason, "summary.financing_need_cents, business plan"));
    free (reason);

    /* A decision for a dossier nobody stored. */
    Qp__V1__EligibilityDecided e = QP__V1__ELIGIBILITY_DECIDED__INIT;
    e.dossier_id = "no-such-dossier";
    qp_meta_t meta = {.correlation_id = "no-such-dossier", .discriminator = "x"};
    zmsg_t *z = qp_message_build (&e.base, &meta, NULL);
    ck_assert_int_eq (qp_bus_client_send (s_work, "funding", &z), 0);
    code = s_client_error (s_work);
    ck_assert_str_eq (code, "unknown_dossier");
    free (code);
    qp_message_clear (&m);
    qp_bus_client_destroy (&f.client);
    s_stop ();
}
END_TEST

START_TEST (test_slow_partner_retried_then_compensation)
{
    s_start (1, NULL);
    fake_t f;
    s_fake_start (&f, "fake-bpi", QP__V1__AGENCY__BPIFRANCE, "phq");
    /* A slow partner: the first request is not answered; funding asks again. */
    static const char *const one[] = {"phq", NULL};
    s_eligible ("slow", "est-ensemble", one, 500000);
    qp_message_t m1, m2;
    Qp__V1__FundingRequest *a = s_fake_next (&f, &m1, 10000);
    ck_assert_ptr_nonnull (a);
    ck_assert_uint_eq (a->attempt, 1);
    Qp__V1__FundingRequest *b = s_fake_next (&f, &m2, 10000);
    ck_assert_ptr_nonnull (b);
    ck_assert_uint_eq (b->attempt, 2);
    ck_assert_str_eq (a->request_id, b->request_id);
    s_answer (&f, b, b->request_id, QP__V1__AGENCY__BPIFRANCE,
              QP__V1__PARTNER_OUTCOME__APPROVED, "slow-ok");
    ck_assert_int_eq (s_wait_terminal ("slow", 10000), QP__V1__DOSSIER_STATE__FUNDED);
    qp_message_clear (&m1);
    qp_message_clear (&m2);

    /* Compensation: the guarantee leg the plan depends on is declined, the honour loan it
     * approved is released, the tax exemption needs no partner. */
    fake_t g;
    s_fake_start (&g, "fake-guarantee", QP__V1__AGENCY__BPIFRANCE,
                  "bpifrance-garantie-creation");
    static const char *const plan[] = {"phq", "bpifrance-garantie-creation", "cfe-qpv", NULL};
    s_eligible ("comp", "est-ensemble", plan, 400000);
    Qp__V1__FundingRequest *p = s_fake_next (&f, &m1, 10000);
    ck_assert_ptr_nonnull (p);
    ck_assert_str_eq (p->scheme_id, "phq");
    s_answer (&f, p, p->request_id, QP__V1__AGENCY__BPIFRANCE, QP__V1__PARTNER_OUTCOME__APPROVED,
              "comp-phq");
    Qp__V1__FundingRequest *q = s_fake_next (&g, &m2, 10000);
    ck_assert_ptr_nonnull (q);
    ck_assert_str_eq (q->scheme_id, "bpifrance-garantie-creation");
    s_answer (&g, q, q->request_id, QP__V1__AGENCY__BPIFRANCE,
              QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED, "comp-g");
    ck_assert_int_eq (s_wait_terminal ("comp", 10000), QP__V1__DOSSIER_STATE__DECLINED);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "committed"), 500000);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{bpifrance-garantie-creation}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{bpifrance-garantie-creation}", "committed"), 0);
    s_assert_balanced ("qp:envelope:{phq}");
    Qp__V1__FundingLeg *leg = s_leg ("comp", "cfe-qpv");
    ck_assert_int_eq (leg->state, QP__V1__LEG_STATE__LEG_GRANTED);
    qp__v1__funding_leg__free_unpacked (leg, NULL);
    char *reason = qp_store_get (s_redis, "comp", "final_reason", NULL);
    ck_assert_ptr_nonnull (strstr (reason, "released (compensation)"));
    free (reason);
    qp_message_clear (&m1);
    qp_message_clear (&m2);

    /* A partner killed in the middle of a request: no answer, it leaves the cache within
     * its TTL, the default component takes the retry. */
    static const char *const killed[] = {"phq", NULL};
    s_eligible ("killed", "roubaix", killed, 300000);
    Qp__V1__FundingRequest *k = s_fake_next (&f, &m1, 10000);
    ck_assert_ptr_nonnull (k);
    qp_message_clear (&m1);
    s_fake_hello (&f, "phq", 200); /* it now reports every 200 ms... then dies */
    qp_test_sleep_ms (100);
    qp_bus_client_destroy (&f.client);
    qp_bus_client_destroy (&g.client);
    ck_assert_ptr_nonnull (qp_test_stack_spawn (s_stack, "partner-bpifrance", NULL));
    ck_assert_int_eq (s_wait_terminal ("killed", 20000), QP__V1__DOSSIER_STATE__FUNDED);
    leg = s_leg ("killed", "phq");
    ck_assert_str_eq (leg->component_id, "bpifrance-default");
    qp__v1__funding_leg__free_unpacked (leg, NULL);
    s_stop ();
}
END_TEST

START_TEST (test_no_live_component_unfunded)
{
    s_start (1, NULL);
    static const char *const one[] = {"phq", NULL};
    s_eligible ("lonely", "roubaix", one, 500000);
    ck_assert_int_eq (s_wait_terminal ("lonely", 20000), QP__V1__DOSSIER_STATE__UNFUNDED);
    char *reason = qp_store_get (s_redis, "lonely", "final_reason", NULL);
    ck_assert_ptr_nonnull (strstr (reason, "no live component of BPIFRANCE serves phq"));
    free (reason);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "committed"), 0);
    s_assert_balanced ("qp:envelope:{phq}");
    s_stop ();
}
END_TEST

/* Four funding instances race on an envelope sized for 100 approvals. */
START_TEST (test_four_instances_race_on_envelope)
{
    static const char *const partners[] = {"partner-bpifrance", NULL};
    s_start (4, partners);
    ck_assert (qp_test_bus_wait_workers (s_stack->work, "partner.BPIFRANCE.bpifrance-default", 1,
                                         15000));
    qp_test_sleep_ms (500); /* the hello reached funding */
    /* 100 M cents / 1 M cents = 100 approvals (the territories have no drawing right). */
    static const char *const one[] = {"phq", NULL};
    char ids[1000][16];
    for (int i = 0; i < 1000; i++) {
        snprintf (ids[i], sizeof ids[i], "race%04d", i);
        s_eligible (ids[i], "est-ensemble", one, 1000000);
    }
    int funded = 0, unfunded = 0;
    for (int i = 0; i < 1000; i++) {
        Qp__V1__DossierState st = s_wait_terminal (ids[i], 60000);
        funded += st == QP__V1__DOSSIER_STATE__FUNDED;
        unfunded += st == QP__V1__DOSSIER_STATE__UNFUNDED;
    }
    ck_assert_int_eq (funded, 100);
    ck_assert_int_eq (unfunded, 900);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "committed"), 100000000);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{phq}", "projects"), 100);
    s_assert_balanced ("qp:envelope:{phq}");
    s_stop ();
}
END_TEST

/* Next ERROR code the bus sends this client (malloc'd), NULL on timeout. */
static char *s_bus_error (qp_bus_client_t *c)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (c), NULL);
    char *code = NULL;
    for (int i = 0; i < 20 && !code && zpoller_wait (poller, 5000); i++) {
        qp_bus_frame_t fr;
        if (qp_bus_client_recv (c, &fr) != 0)
            continue;
        if (!strcmp (fr.kind, QPB_ERROR))
            code = strdup (fr.error_code);
        qp_bus_frame_clear (&fr);
    }
    zpoller_destroy (&poller);
    return code;
}

/* CURVE on the partner endpoint: the agency's key works, a key the bus does not know is
 * refused, a known key cannot register or speak for another agency. */
START_TEST (test_curve_partner_endpoint)
{
    char *keys = qp_test_tmpdir ("qp-keys");
    char *wrong = qp_test_tmpdir ("qp-wrong-keys");
    char cmd[4096];
    snprintf (cmd, sizeof cmd,
              "%s/tools/qp-keygen %s >/dev/null && %s/tools/qp-keygen %s BPIFRANCE >/dev/null && "
              "cp %s/bus.cert %s/bus.cert",
              qp_test_build_dir (), keys, qp_test_build_dir (), wrong, keys, wrong);
    ck_assert_int_eq (system (cmd), 0);
    char env_curve[1100];
    snprintf (env_curve, sizeof env_curve, "QP_CURVE_DIR=%s", keys);
    const char *env[] = {env_curve, NULL};
    static const char *const partners[] = {"partner-bpifrance", NULL};
    static const char *const ready[] = {"partner.BPIFRANCE.bpifrance-default", NULL};
    s_start_env (1, partners, env, ready);
    qp_test_sleep_ms (300); /* the hello reached funding */

    /* The real component, with its agency's key: a dossier is funded through it. */
    static const char *const one[] = {"phq", NULL};
    s_eligible ("curve1", "roubaix", one, 200000);
    ck_assert_int_eq (s_wait_terminal ("curve1", 20000), QP__V1__DOSSIER_STATE__FUNDED);

    /* A component with a key the bus does not know: never connected, never routed. */
    const char *args[] = {"--curve-dir", wrong, "--component-id", "intruder", NULL};
    qp_test_proc_t *intruder =
        qp_test_spawn ("partner-bpifrance", (const char *const *) s_stack->env, args, s_stack->dir);
    ck_assert_ptr_nonnull (intruder);
    s_stack->procs[s_stack->n_procs++] = intruder;
    ck_assert (!qp_test_bus_wait_workers (s_stack->work, "partner.BPIFRANCE.intruder", 1, 2000));
    ck_assert_int_eq (s_hget ("qp:partner:intruder", "last_seen_ms"), -1);

    /* ANCT's key: may not register as a Bpifrance component nor speak for Bpifrance. */
    char anct[1100], bus[1100];
    snprintf (anct, sizeof anct, "%s/ANCT.cert_secret", keys);
    snprintf (bus, sizeof bus, "%s/bus.cert", keys);
    ck_assert_int_eq (qp_bus_curve_client (s_stack->partner, anct, bus), 0);
    qp_bus_client_t *c = qp_bus_client_new (s_stack->partner);
    ck_assert_int_eq (qp_bus_client_ready (c, "partner.BPIFRANCE.mimic"), 0);
    char *code = s_bus_error (c);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    ck_assert_int_eq (qp_test_bus_workers (s_stack->work, "partner.BPIFRANCE.mimic"), 0);
    fake_t f = {.client = c, .component = "mimic", .agency = QP__V1__AGENCY__BPIFRANCE};
    s_fake_hello (&f, "phq", 60000);
    code = s_bus_error (c);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    ck_assert_int_eq (s_hget ("qp:partner:mimic", "last_seen_ms"), -1);
    /* Under its own agency, the same key is welcome. */
    ck_assert_int_eq (qp_bus_client_ready (c, "partner.ANCT.mimic"), 0);
    ck_assert (qp_test_bus_wait_workers (s_stack->work, "partner.ANCT.mimic", 1, 5000));
    qp_bus_client_destroy (&c);
    s_stop ();
    qp_test_rmtree (keys);
    qp_test_rmtree (wrong);
    free (keys);
    free (wrong);
}
END_TEST

/* A catalogue with more schemes than a plan has legs: qp-funding refuses to start, naming
 * the count and the limit (a plan would otherwise drop the legs past FUNDING_MAX_LEGS). */
START_TEST (test_refuses_a_catalogue_larger_than_a_plan)
{
    char *data = qp_test_tmpdir ("qp-funding-big");
    char cmd[2048];
    snprintf (cmd, sizeof cmd, "cp %s/tests/data/funding/*.json %s/ && mkdir %s/catalogue",
              qp_test_source_dir (), data, data);
    ck_assert_int_eq (system (cmd), 0);
    /* FUNDING_MAX_LEGS + 1 schemes: copies of one, each with its own id and version */
    for (int i = 0; i <= FUNDING_MAX_LEGS; i++) {
        snprintf (cmd, sizeof cmd,
                  "sed -e 's/\"id\": \"cfe-qpv\"/\"id\": \"cfe-qpv-%d\"/' "
                  "-e 's/\"version\": \"cfe-qpv-/\"version\": \"v%d-cfe-qpv-/' "
                  "%s/data/catalogue/cfe-qpv.json > %s/catalogue/cfe-qpv-%d.json",
                  i, i, qp_test_source_dir (), data, i);
        ck_assert_int_eq (system (cmd), 0);
    }
    const char *args[] = {"--data-dir", data, NULL};
    char *out = NULL, *err = NULL;
    int status = qp_test_run ("funding", NULL, args, 30000, &out, &err);
    free (out);
    ck_assert_int_eq (status, 1);
    char expect[64];
    snprintf (expect, sizeof expect, "holds %d schemes", FUNDING_MAX_LEGS + 1);
    ck_assert_msg (err && strstr (err, "catalogue_too_large") && strstr (err, expect),
                   "stderr: %s", err ? err : "(none)");
    free (err);
    /* The same check in process: FUNDING_MAX_LEGS + 1 refused, one fewer fits */
    snprintf (cmd, sizeof cmd, "%s/catalogue", data);
    qp_error_t e;
    qp_catalogue_t *big = qp_catalogue_load (cmd, &e);
    ck_assert_msg (big, "%s", e.message);
    ck_assert_int_eq (funding_check_catalogue (big, &e), -1);
    ck_assert_str_eq (e.code, "catalogue_too_large");
    ck_assert_str_eq (e.field, "catalogue");
    qp_catalogue_destroy (&big);
    snprintf (cmd, sizeof cmd, "rm %s/catalogue/cfe-qpv-0.json", data);
    ck_assert_int_eq (system (cmd), 0);
    snprintf (cmd, sizeof cmd, "%s/catalogue", data);
    qp_catalogue_t *fits = qp_catalogue_load (cmd, &e);
    ck_assert_msg (fits, "%s", e.message);
    ck_assert_int_eq (qp_catalogue_size (fits), FUNDING_MAX_LEGS);
    ck_assert_int_eq (funding_check_catalogue (fits, &e), 0);
    qp_catalogue_destroy (&fits);
    qp_test_rmtree (data);
    free (data);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("funding");
    TCase *tc = tcase_create ("funding");
    tcase_set_timeout (tc, 300);
    tcase_add_test (tc, test_answers_refused_approval_settles_once);
    tcase_add_test (tc, test_information_needed_released);
    tcase_add_test (tc, test_slow_partner_retried_then_compensation);
    tcase_add_test (tc, test_no_live_component_unfunded);
    tcase_add_test (tc, test_four_instances_race_on_envelope);
    tcase_add_test (tc, test_curve_partner_endpoint);
    tcase_add_test (tc, test_refuses_a_catalogue_larger_than_a_plan);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
