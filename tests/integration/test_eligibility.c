/* Eligibility in the real stack: the QPV facts come from the official-shape contours when
 * the dossier has coordinates (inside, in a hole, within the boundary-street tolerance),
 * from the declared code otherwise ("declared, not verified"); one PHQ per person per
 * network; the catalogue and the contours reload on SIGHUP, a broken catalogue being
 * refused while the one in force keeps deciding. The stored decision is compact; an
 * EligibilityExplainQuery explains every criterion of it and says when the catalogue
 * changed since. Facts the applicant declares (ZFU-TE) count "declared, not verified". */
#include "qp/v1/eligibility.pb-c.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp_test_http.h"
#include "rules.h"
#include "qp_test_suite.h"
#include <check.h>
#include <signal.h>
#include <string.h>

static qp_test_stack_t *s_stack;
static char *s_data; /* a copy of data/ the reload test edits */

static void s_setup (void)
{
    s_data = qp_test_tmpdir ("qp-data");
    char cmd[2048];
    snprintf (cmd, sizeof cmd, "cp -r %s/data/. %s/", qp_test_source_dir (), s_data);
    ck_assert_int_eq (system (cmd), 0);
    static char data[1024], contours[1024];
    snprintf (data, sizeof data, "QP_DATA_DIR=%s", s_data);
    snprintf (contours, sizeof contours, "QP_QPV_CONTOURS=%s/tests/data/qpv-contours.geojson",
              qp_test_source_dir ());
    static const char *env[5];
    env[0] = qp_test_env_territories (), env[1] = data, env[2] = contours;
    env[3] = "QP_HTTP=127.0.0.1:0", env[4] = NULL; /* metrics: Redis round trips */
    static const char *const programs[] = {"intake",      "eligibility",       "funding",
                                           "evaluation",  "partner-anct",      "partner-anru",
                                           "partner-bdt", "partner-bpifrance", NULL};
    static const char *const ready[] = {"intake", "eligibility", "funding", "evaluation", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
}

static void s_teardown (void)
{
    ck_assert_int_eq (qp_test_stack_stop (&s_stack), 0);
    qp_test_rmtree (s_data);
    free (s_data);
}

typedef struct {
    const char *key, *person, *declared_qpv, *residence_qpv;
    Qp__V1__Network network;
    bool has_point;
    double lat, lon;
    int64_t amount;
    /* A ZFU-TE business set up in 2024: 1 declares every ZFU-TE condition met, -1 declares
     * the business outside any ZFU-TE, 0 declares nothing about it. */
    int zfu;
} case_t;

/* Submits the case; id gets the dossier's id. */
static void s_submit (const case_t *c, char id[QP_ID_HEX + 1])
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    Qp__V1__Coordinates at = QP__V1__COORDINATES__INIT;
    d.channel = "test-eligibility", d.channel_key = (char *)c->key, d.submitted_on = "2025-06-02";
    h.person_key = (char *)c->person, h.residence_qpv = (char *)c->residence_qpv;
    h.has_accompanied = true, h.accompanied = true;
    h.has_network = true, h.network = c->network;
    b.insee_commune = "59512", b.declared_qpv = (char *)c->declared_qpv;
    if (c->has_point) {
        at.has_lat = true, at.lat = c->lat, at.has_lon = true, at.lon = c->lon;
        b.location = &at;
    }
    if (c->zfu) {
        b.creation_date = "2024-02-01";
        b.has_employees = true, b.employees = 4;
        b.has_turnover_cents = true, b.turnover_cents = 20000000;
        b.has_declared_in_zfu_te = true, b.declared_in_zfu_te = c->zfu > 0;
        b.has_declared_independent_sme = true, b.declared_independent_sme = true;
        b.has_declared_zfu_resident_employees_half = true;
        b.declared_zfu_resident_employees_half = true;
    }
    p.has_axis = true, p.axis = QP__V1__AXIS__ENTREPRENEURSHIP;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    int64_t amount = c->amount ? c->amount : 500000;
    p.has_amount_asked_cents = true, p.amount_asked_cents = amount;
    p.has_financing_need_cents = true, p.financing_need_cents = amount * 4;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = amount;
    p.has_bank_loan_cents = true, p.bank_loan_cents = amount * 2;
    p.has_bank_loan_months = true, p.bank_loan_months = 48;
    p.has_bank_loan_guarantee_pct = true, p.bank_loan_guarantee_pct = 50;
    p.has_honour_loan_months = true, p.honour_loan_months = 36;
    d.holder = &h, d.business = &b, d.project = &p;
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    s.dossier = &d;
    qp_test_submit_accepted (s_stack->work, &s, NULL, 5000, id);
}

/* Waits for the eligibility decision of dossier id; returns the status reply. */
static Qp__V1__DossierStatusReply *s_decided (const char *id, qp_message_t *reply)
{
    qp_error_t err;
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = (char *)id;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq (qp_test_call (s_stack->work, "intake", &q.base, NULL, 5000, reply, &err),
                          0);
        Qp__V1__DossierStatusReply *st = (Qp__V1__DossierStatusReply *)reply->payload;
        if (st->found && st->eligibility)
            return st;
        qp_message_clear (reply);
        qp_test_sleep_ms (100);
    }
    ck_abort_msg ("%s was never decided", id);
    return NULL;
}

/* Submits the case and waits for its eligibility decision; returns the status reply. */
static Qp__V1__DossierStatusReply *s_run (const case_t *c, qp_message_t *reply)
{
    char id[QP_ID_HEX + 1];
    s_submit (c, id);
    return s_decided (id, reply);
}

static const Qp__V1__SchemeDecision *s_scheme (const Qp__V1__DossierStatusReply *st, const char *id)
{
    for (size_t i = 0; i < st->eligibility->n_decisions; i++)
        if (!strcmp (st->eligibility->decisions[i]->scheme_id, id))
            return st->eligibility->decisions[i];
    ck_abort_msg ("no decision for %s", id);
    return NULL;
}

/* The outcome of a criterion of a scheme in the compact decision (its bits, read with the
 * catalogue the stack decides with). */
static int s_criterion (const Qp__V1__SchemeDecision *d, const char *id)
{
    char dir[1100];
    snprintf (dir, sizeof dir, "%s/catalogue", s_data);
    qp_error_t err;
    qp_catalogue_t *catalogue = qp_catalogue_load (dir, &err);
    ck_assert_msg (catalogue, "%s", err.message);
    ck_assert_int_eq (d->n_criteria, 0); /* no text is stored */
    int outcome = rules_compact_outcome (qp_catalogue_find (catalogue, d->scheme_id), d, id);
    qp_catalogue_destroy (&catalogue);
    ck_assert_msg (outcome, "%s has no criterion %s", d->scheme_id, id);
    return outcome;
}

/* Asks eligibility to explain a dossier; the reply stays in m. */
static Qp__V1__EligibilityExplainReply *s_explain (const char *id, qp_message_t *m)
{
    Qp__V1__EligibilityExplainQuery q = QP__V1__ELIGIBILITY_EXPLAIN_QUERY__INIT;
    q.dossier_id = (char *)id;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (s_stack->work, "eligibility", &q.base, NULL, 5000, m, &err), 0);
    ck_assert_ptr_eq (m->descriptor, &qp__v1__eligibility_explain_reply__descriptor);
    return (Qp__V1__EligibilityExplainReply *)m->payload;
}

/* The explained criterion id of a scheme (top level). */
static const Qp__V1__CriterionResult *s_explained (const Qp__V1__EligibilityDecided *e,
                                                   const char *scheme, const char *id)
{
    for (size_t i = 0; i < e->n_decisions; i++)
        for (size_t j = 0;
             !strcmp (e->decisions[i]->scheme_id, scheme) && j < e->decisions[i]->n_criteria; j++)
            if (!strcmp (e->decisions[i]->criteria[j]->criterion, id))
                return e->decisions[i]->criteria[j];
    ck_abort_msg ("%s: no explained criterion %s", scheme, id);
    return NULL;
}

/* qp-ctl explain id exits 0 and prints every line of expected (NULL-terminated), and no
 * WARNING. */
static void s_ctl_explain_shows (const char *id, const char *const *expected)
{
    char bus[300];
    snprintf (bus, sizeof bus, "QP_BUS_WORK=%s", s_stack->work);
    const char *env[] = {bus, NULL};
    const char *args[] = {"explain", id, NULL};
    qp_test_proc_t *ctl = qp_test_spawn ("ctl", env, args, NULL);
    ck_assert_ptr_nonnull (ctl);
    ck_assert (qp_test_proc_wait (ctl, 20000));
    ck_assert_int_eq (qp_test_proc_exit_status (ctl), 0);
    FILE *f = fopen (ctl->out_path, "r");
    ck_assert_ptr_nonnull (f);
    char text[65536];
    size_t n = fread (text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose (f);
    for (int i = 0; expected[i]; i++)
        ck_assert_msg (strstr (text, expected[i]), "no \"%s\" in:\n%s", expected[i], text);
    ck_assert_ptr_null (strstr (text, "WARNING"));
    qp_test_proc_destroy (&ctl);
}

START_TEST (test_located_on_the_contours)
{
    qp_message_t m;
    /* Inside the square QPV QN05901A. */
    case_t inside = {.key = "inside",
                     .person = "person-inside-0001",
                     .network = QP__V1__NETWORK__ADIE,
                     .has_point = true,
                     .lat = 50.702,
                     .lon = 3.102};
    Qp__V1__DossierStatusReply *st = s_run (&inside, &m);
    Qp__V1__QpvLocation *l = st->eligibility->business_location;
    ck_assert_ptr_nonnull (l);
    ck_assert_str_eq (l->qpv_code, "QN05901A");
    ck_assert_str_eq (l->qpv_name, "Carré Troué");
    ck_assert (l->verified);
    ck_assert (l->distance_m == 0);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    qp_message_clear (&m);

    /* In its hole: outside, even with a (wrong) declared code; coordinates win. The
     * residence's declared code is no QPV of the index: neither place is in a QPV. */
    case_t hole = {.key = "hole",
                   .person = "person-hole-00001",
                   .network = QP__V1__NETWORK__ADIE,
                   .declared_qpv = "QN05901A",
                   .residence_qpv = "QN05999Z",
                   .has_point = true,
                   .lat = 50.705,
                   .lon = 3.105};
    st = s_run (&hole, &m);
    ck_assert_ptr_null (st->eligibility->business_location);
    const Qp__V1__SchemeDecision *phq = s_scheme (st, "phq");
    ck_assert_int_eq (phq->outcome, QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (phq, "qpv"), QP__V1__CRITERION_OUTCOME__NOT_MET);
    qp_message_clear (&m);

    /* 10 m east of QN05903C's edge (lon 3.15): within the 20 m boundary-street tolerance. */
    case_t near = {.key = "near",
                   .person = "person-near-00001",
                   .network = QP__V1__NETWORK__ADIE,
                   .has_point = true,
                   .lat = 50.7025,
                   .lon = 3.15 + 10.0 / 70600.0};
    st = s_run (&near, &m);
    l = st->eligibility->business_location;
    ck_assert_ptr_nonnull (l);
    ck_assert_str_eq (l->qpv_code, "QN05903C");
    ck_assert (l->verified);
    ck_assert_msg (l->distance_m > 5 && l->distance_m < 15, "distance %f", l->distance_m);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    qp_message_clear (&m);

    /* No coordinates: the declared code, named from the index, not verified. */
    case_t declared = {.key = "declared",
                       .person = "person-declared-01",
                       .network = QP__V1__NETWORK__ADIE,
                       .declared_qpv = "QN05902B"};
    st = s_run (&declared, &m);
    l = st->eligibility->business_location;
    ck_assert_ptr_nonnull (l);
    ck_assert_str_eq (l->qpv_code, "QN05902B");
    ck_assert_str_eq (l->qpv_name, "Deux Îlots");
    ck_assert (!l->verified);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    qp_message_clear (&m);

    /* A declared code that is no QPV of the index. */
    case_t unknown = {.key = "unknown-code",
                      .person = "person-unknown-01",
                      .network = QP__V1__NETWORK__ADIE,
                      .declared_qpv = "QN05999Z",
                      .residence_qpv = "QN05999Z"};
    st = s_run (&unknown, &m);
    ck_assert_ptr_null (st->eligibility->business_location);
    ck_assert_int_eq (s_criterion (s_scheme (st, "phq"), "qpv"),
                      QP__V1__CRITERION_OUTCOME__NOT_MET);
    qp_message_clear (&m);

    /* Nothing at all: information missing, never a silent "not eligible" (likewise when
     * one place is outside and the other unknown). */
    case_t nothing = {
        .key = "nothing", .person = "person-nothing-01", .network = QP__V1__NETWORK__ADIE};
    st = s_run (&nothing, &m);
    ck_assert_int_eq (s_criterion (s_scheme (st, "phq"), "qpv"),
                      QP__V1__CRITERION_OUTCOME__MISSING);
    qp_message_clear (&m);
}
END_TEST

START_TEST (test_one_phq_per_person_per_network)
{
    qp_message_t m;
    case_t first = {.key = "first",
                    .person = "person-twice-00001",
                    .network = QP__V1__NETWORK__INITIATIVE_FRANCE,
                    .declared_qpv = "QN05902B"};
    Qp__V1__DossierStatusReply *st = s_run (&first, &m);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    qp_message_clear (&m);
    /* The same person through the same network, while the first dossier holds it. */
    case_t second = first;
    second.key = "second";
    st = s_run (&second, &m);
    const Qp__V1__SchemeDecision *phq = s_scheme (st, "phq");
    ck_assert_int_eq (phq->outcome, QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (phq, "one_per_person_network"),
                      QP__V1__CRITERION_OUTCOME__NOT_MET);
    /* Explained later, the PHQ history is the one recorded at the decision, though the
     * explanation claims nothing (the first dossier still holds the slot either way). */
    char id[QP_ID_HEX + 1];
    snprintf (id, sizeof id, "%s", st->dossier_id);
    qp_message_clear (&m);
    Qp__V1__EligibilityExplainReply *x = s_explain (id, &m);
    ck_assert (x->matches_stored);
    const Qp__V1__CriterionResult *c = s_explained (x->explained, "phq", "one_per_person_network");
    ck_assert_int_eq (c->outcome, QP__V1__CRITERION_OUTCOME__NOT_MET);
    ck_assert_msg (strstr (c->reason, "another dossier held this person's PHQ"), "%s", c->reason);
    qp_message_clear (&m);
    /* Through another network it is another PHQ. */
    case_t other = first;
    other.key = "other-network";
    other.network = QP__V1__NETWORK__FRANCE_ACTIVE;
    st = s_run (&other, &m);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    qp_message_clear (&m);
}
END_TEST

/* A stack stored before issue 8 kept a PHQ slot as a string key per person; upgraded, it
 * still refuses that person a second PHQ through the network (the slots are now fields of
 * bucket hashes, qp_bucket.h). */
START_TEST (test_phq_slot_stored_before_buckets)
{
    qp_redis_t *redis = qp_redis_connect (s_stack->redis->host, s_stack->redis->port, 5000);
    ck_assert_ptr_nonnull (redis);
    const char *cmds[] = {"SET qp:phq:INITIATIVE_FRANCE:person-upgraded-0001 "
                          "0123456789abcdef0123456789abcdef",
                          "HSET qp:{0123456789abcdef0123456789abcdef}:d state FUNDED"};
    for (size_t i = 0; i < 2; i++) {
        redisReply *r = qp_redis_command (redis, cmds[i]);
        ck_assert (r && r->type != REDIS_REPLY_ERROR);
        freeReplyObject (r);
    }
    qp_redis_destroy (&redis);
    qp_message_t m;
    case_t c = {.key = "after-upgrade",
                .person = "person-upgraded-0001",
                .network = QP__V1__NETWORK__INITIATIVE_FRANCE,
                .declared_qpv = "QN05902B"};
    Qp__V1__DossierStatusReply *st = s_run (&c, &m);
    const Qp__V1__SchemeDecision *phq = s_scheme (st, "phq");
    ck_assert_int_eq (phq->outcome, QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (phq, "one_per_person_network"),
                      QP__V1__CRITERION_OUTCOME__NOT_MET);
    qp_message_clear (&m);
    /* Another person of the same bucket family is not affected. */
    c.key = "after-upgrade-other", c.person = "person-upgraded-0002";
    st = s_run (&c, &m);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    qp_message_clear (&m);
}
END_TEST

/* Waits until the eligibility log has at least n lines with needle. */
static bool s_wait_log (const char *needle, int n)
{
    qp_test_proc_t *elig = NULL;
    for (size_t i = 0; i < s_stack->n_procs; i++)
        if (!strcmp (s_stack->procs[i]->name, "eligibility"))
            elig = s_stack->procs[i];
    ck_assert_ptr_nonnull (elig);
    for (int i = 0; i < 100; i++) {
        if (qp_test_proc_log_count (elig, needle) >= n)
            return true;
        qp_test_sleep_ms (100);
    }
    return false;
}

static void s_sighup (void)
{
    for (size_t i = 0; i < s_stack->n_procs; i++)
        if (!strcmp (s_stack->procs[i]->name, "eligibility"))
            kill (s_stack->procs[i]->pid, SIGHUP);
}

START_TEST (test_reload_on_sighup)
{
    char path[1024], cmd[2048];
    snprintf (path, sizeof path, "%s/catalogue/zz-broken.json", s_data);
    FILE *f = fopen (path, "w");
    fputs ("{\"id\": \"broken\",\n \"name\": ", f);
    fclose (f);
    s_sighup ();
    ck_assert (s_wait_log ("catalogue_refused", 1));
    qp_message_t m;
    case_t a = {.key = "during-broken",
                .person = "person-reload-0001",
                .network = QP__V1__NETWORK__ADIE,
                .declared_qpv = "QN05902B",
                .amount = 1200000};
    Qp__V1__DossierStatusReply *st = s_run (&a, &m);
    ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    char first_id[QP_ID_HEX + 1];
    snprintf (first_id, sizeof first_id, "%s", st->dossier_id);
    qp_message_clear (&m);

    /* A valid catalogue whose PHQ maximum is lowered to 10,000 €: 12,000 € is refused. */
    unlink (path);
    snprintf (cmd, sizeof cmd,
              "sed -i 's/\"value\": 1500000/\"value\": 1000000/' %s/catalogue/phq.json", s_data);
    ck_assert_int_eq (system (cmd), 0);
    s_sighup ();
    ck_assert (s_wait_log ("catalogue_reloaded", 1));
    case_t b = a;
    b.key = "after-reload", b.person = "person-reload-0002";
    st = s_run (&b, &m);
    const Qp__V1__SchemeDecision *phq = s_scheme (st, "phq");
    ck_assert_int_eq (phq->outcome, QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (phq, "amount"), QP__V1__CRITERION_OUTCOME__NOT_MET);
    qp_message_clear (&m);
    /* The first dossier, explained with the changed catalogue: said not to be the stored
     * decision, and which scheme differs. */
    Qp__V1__EligibilityExplainReply *x = s_explain (first_id, &m);
    ck_assert (x->found && x->explained);
    ck_assert (!x->matches_stored);
    ck_assert_msg (x->note && strstr (x->note, "phq was decided ELIGIBLE_OUTCOME"), "%s",
                   x->note ? x->note : "(no note)");
    qp_message_clear (&m);
    for (size_t i = 0; i < s_stack->n_procs; i++)
        ck_assert (qp_test_proc_alive (s_stack->procs[i]));
}
END_TEST

/* Every scheme and every criterion explained from the compact stored decision, with the
 * same outcomes; unknown and malformed queries get a precise answer. */
START_TEST (test_explain)
{
    qp_message_t m;
    case_t c = {.key = "explained",
                .person = "person-explain-01",
                .network = QP__V1__NETWORK__ADIE,
                .has_point = true,
                .lat = 50.702,
                .lon = 3.102};
    Qp__V1__DossierStatusReply *st = s_run (&c, &m);
    char id[QP_ID_HEX + 1];
    snprintf (id, sizeof id, "%s", st->dossier_id);
    size_t n_schemes = st->eligibility->n_decisions;
    ck_assert_int_gt (n_schemes, 5);
    Qp__V1__Outcome outcomes[32];
    for (size_t i = 0; i < n_schemes && i < 32; i++) {
        outcomes[i] = st->eligibility->decisions[i]->outcome;
        ck_assert_ptr_null (st->eligibility->decisions[i]->scheme_name);
    }
    /* The whole dossier must fit 2 KiB of Redis: the decision stays well under. */
    ck_assert_int_le (qp__v1__eligibility_decided__get_packed_size (st->eligibility), 600);
    qp_message_clear (&m);

    Qp__V1__EligibilityExplainReply *x = s_explain (id, &m);
    ck_assert (x->found);
    ck_assert (x->has_state && x->state != QP__V1__DOSSIER_STATE__STATE_UNSPECIFIED);
    ck_assert_msg (x->matches_stored, "%s", x->note ? x->note : "");
    const Qp__V1__EligibilityDecided *e = x->explained;
    ck_assert_ptr_nonnull (e);
    ck_assert_str_eq (e->business_location->qpv_code, "QN05901A");
    ck_assert_int_eq (e->n_decisions, n_schemes);
    for (size_t i = 0; i < e->n_decisions; i++) {
        const Qp__V1__SchemeDecision *d = e->decisions[i];
        ck_assert_int_eq (d->outcome, outcomes[i]);
        ck_assert_ptr_nonnull (d->scheme_name);
        ck_assert_ptr_nonnull (strchr (d->catalogue_version, '@'));
        ck_assert_int_gt (d->n_criteria, 0);
        for (size_t j = 0; j < d->n_criteria; j++)
            ck_assert_msg (d->criteria[j]->reason && *d->criteria[j]->reason, "%s.%s has no reason",
                           d->scheme_id, d->criteria[j]->criterion);
    }
    const Qp__V1__CriterionResult *amount = s_explained (e, "phq", "amount");
    ck_assert_int_eq (amount->n_parameters, 2);
    ck_assert_ptr_nonnull (strstr (amount->parameters[0]->source, "fonds-publics.fr"));
    ck_assert_str_eq (amount->values[0], "project.amount_asked_cents=500000");
    const Qp__V1__CriterionResult *qpv = s_explained (e, "phq", "qpv");
    ck_assert_msg (strstr (qpv->reason, "inside QPV QN05901A (official contours)"), "%s",
                   qpv->reason);
    qp_message_clear (&m);

    /* qp-ctl explain prints the same, readable: every scheme, reasons, parameters. */
    const char *expected[] = {
        "Business:  QPV QN05901A Carré Troué (verified on the official contours",
        "Prêt d'honneur Quartiers (phq, BPIFRANCE): ELIGIBLE, 5 000,00 €",
        "[catalogue phq-2026.1@2024-01-01]",
        "[met]     share_of_need",
        "is within 2/3 of project.financing_need_cents",
        "max_share_of_need = {\"numerator\":2,\"denominator\":3} (from 2024-01-01",
        "read project.amount_asked_cents=500000",
        NULL};
    s_ctl_explain_shows (id, expected);

    x = s_explain ("0000000000000000000000000000000000000000", &m);
    ck_assert (x->has_found && !x->found && !x->explained);
    qp_message_clear (&m);

    Qp__V1__EligibilityExplainQuery q = QP__V1__ELIGIBILITY_EXPLAIN_QUERY__INIT;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (s_stack->work, "eligibility", &q.base, NULL, 5000, &m, &err),
                      0);
    ck_assert_ptr_eq (m.descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((Qp__V1__Error *)m.payload)->field, "dossier_id");
    qp_message_clear (&m);
}
END_TEST

/* The facts no source checks yet, declared by the applicant: decided on the declaration,
 * recorded with the decision, explained as "declared, not verified"; undeclared, still
 * "information missing". */
START_TEST (test_declared_zfu_te)
{
    qp_message_t m;
    case_t c = {.key = "zfu-declared",
                .person = "person-zfu-te-01",
                .network = QP__V1__NETWORK__INITIATIVE_FRANCE,
                .declared_qpv = "QN05981M",
                .zfu = 1};
    Qp__V1__DossierStatusReply *st = s_run (&c, &m);
    char id[QP_ID_HEX + 1];
    snprintf (id, sizeof id, "%s", st->dossier_id);
    const Qp__V1__SchemeDecision *zfu = s_scheme (st, "zfu-te");
    ck_assert_int_eq (zfu->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (zfu, "in_zfu_te"), QP__V1__CRITERION_OUTCOME__MET);
    bool recorded = false;
    for (size_t i = 0; i < st->eligibility->n_facts_true; i++)
        recorded |= st->eligibility->facts_true[i] == QP__V1__FACT__FACT_BUSINESS_IN_ZFU_TE;
    ck_assert_msg (recorded, "business_in_zfu_te is not among the facts of the decision");
    qp_message_clear (&m);

    Qp__V1__EligibilityExplainReply *x = s_explain (id, &m);
    ck_assert (x->found);
    ck_assert_msg (x->matches_stored, "%s", x->note ? x->note : "");
    const Qp__V1__CriterionResult *in = s_explained (x->explained, "zfu-te", "in_zfu_te");
    ck_assert_int_eq (in->outcome, QP__V1__CRITERION_OUTCOME__MET);
    ck_assert_msg (strstr (in->reason, "declared, not verified"), "%s", in->reason);
    qp_message_clear (&m);

    const char *expected[] = {
        "(zfu-te, ANCT): ELIGIBLE",
        "business_in_zfu_te is true: declared, not verified (business.declared_in_zfu_te)",
        "independent_sme is true: declared, not verified (business.declared_independent_sme)",
        NULL};
    s_ctl_explain_shows (id, expected);

    /* Declared outside: not met. Not declared: information missing, naming the fact. */
    c.key = "zfu-declared-outside", c.zfu = -1;
    st = s_run (&c, &m);
    zfu = s_scheme (st, "zfu-te");
    ck_assert_int_eq (zfu->outcome, QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (zfu, "in_zfu_te"), QP__V1__CRITERION_OUTCOME__NOT_MET);
    qp_message_clear (&m);
    c.key = "zfu-not-declared", c.zfu = 0;
    st = s_run (&c, &m);
    zfu = s_scheme (st, "zfu-te");
    ck_assert_int_eq (zfu->outcome, QP__V1__OUTCOME__INFORMATION_MISSING);
    ck_assert_int_eq (s_criterion (zfu, "in_zfu_te"), QP__V1__CRITERION_OUTCOME__MISSING);
    qp_message_clear (&m);
}
END_TEST

/* The running program called name. */
static qp_test_proc_t *s_proc (const char *name)
{
    for (size_t i = 0; i < s_stack->n_procs; i++)
        if (!strcmp (s_stack->procs[i]->name, name))
            return s_stack->procs[i];
    ck_abort_msg ("no %s in the stack", name);
    return NULL;
}

/* eligibility's Redis round trips so far (its /metrics). */
static double s_round_trips (int port)
{
    char *text = NULL;
    ck_assert_int_eq (qp_test_http_get (port, "/metrics", &text), 200);
    double v = qp_test_metric (text, "qp_redis_round_trips_total", NULL);
    free (text);
    ck_assert_msg (v >= 0, "no qp_redis_round_trips_total");
    return v;
}

#define BURST 30

/* Dossiers that arrive together are decided together: two Redis round trips for the
 * burst (the PHQ claims, then the transitions) instead of two per dossier. Decided
 * together, each is still decided as it would be alone: a second dossier of one person
 * through one network whose first is not eligible gets the PHQ slot the first left. */
START_TEST (test_burst_decided_together)
{
    qp_test_proc_t *elig = s_proc ("eligibility");
    int port = qp_test_http_port_in_log (elig->log_path, 5000);
    ck_assert_int_gt (port, 0);
    double before = s_round_trips (port);
    /* Stopped, eligibility reads nothing: what intake sends it waits as one burst. */
    ck_assert_int_eq (kill (elig->pid, SIGSTOP), 0);
    char ids[BURST][QP_ID_HEX + 1];
    char keys[BURST][32], persons[BURST][32];
    case_t refused = {.key = "burst-refused",
                      .person = "person-burst-twice",
                      .network = QP__V1__NETWORK__INITIATIVE_FRANCE,
                      .declared_qpv = "QN05901A",
                      .residence_qpv = "QN05999Z",
                      .has_point = true,
                      .lat = 50.705,
                      .lon = 3.105}; /* in QN05901A's hole: no scheme applies */
    case_t second = {.key = "burst-second",
                     .person = "person-burst-twice",
                     .network = QP__V1__NETWORK__INITIATIVE_FRANCE,
                     .declared_qpv = "QN05902B"};
    s_submit (&refused, ids[0]);
    s_submit (&second, ids[1]);
    for (int i = 2; i < BURST; i++) {
        snprintf (keys[i], sizeof keys[i], "burst-%02d", i);
        snprintf (persons[i], sizeof persons[i], "person-burst-%04d", i);
        case_t c = {.key = keys[i],
                    .person = persons[i],
                    .network = QP__V1__NETWORK__ADIE,
                    .declared_qpv = "QN05902B"};
        s_submit (&c, ids[i]);
    }
    ck_assert_int_eq (kill (elig->pid, SIGCONT), 0);

    qp_message_t m;
    Qp__V1__DossierStatusReply *st = s_decided (ids[0], &m);
    ck_assert_int_eq (st->state, QP__V1__DOSSIER_STATE__NOT_ELIGIBLE);
    qp_message_clear (&m);
    st = s_decided (ids[1], &m);
    const Qp__V1__SchemeDecision *phq = s_scheme (st, "phq");
    ck_assert_int_eq (phq->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
    ck_assert_int_eq (s_criterion (phq, "one_per_person_network"), QP__V1__CRITERION_OUTCOME__MET);
    qp_message_clear (&m);
    for (int i = 2; i < BURST; i++) {
        st = s_decided (ids[i], &m);
        ck_assert_int_eq (s_scheme (st, "phq")->outcome, QP__V1__OUTCOME__ELIGIBLE_OUTCOME);
        qp_message_clear (&m);
    }
    /* One at a time it takes 2 per dossier (60 here); the sweeper adds one a second. */
    double trips = s_round_trips (port) - before;
    ck_assert_msg (trips <= 12, "%.0f Redis round trips for %d dossiers", trips, BURST);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("eligibility");
    TCase *tc = tcase_create ("eligibility");
    tcase_set_timeout (tc, 120);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_located_on_the_contours);
    tcase_add_test (tc, test_one_phq_per_person_per_network);
    tcase_add_test (tc, test_phq_slot_stored_before_buckets);
    tcase_add_test (tc, test_reload_on_sighup);
    tcase_add_test (tc, test_explain);
    tcase_add_test (tc, test_declared_zfu_te);
    tcase_add_test (tc, test_burst_decided_together);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
