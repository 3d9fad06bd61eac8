/* Eligibility rules and the dated catalogue: every criterion of the honour-loan rule met,
 * not met and missing, boundary values, the version in force by date, and broken
 * catalogue files refused with the file and the reason. */
#include "eligibility.h"
#include "qp_catalogue.h"
#include "qp_date.h"
#include "qp_test.h"
#include "rules.h"
#include <check.h>
#include <string.h>

static qp_catalogue_t *s_catalogue;

/* The project's real catalogue. */
static void s_setup (void)
{
    char dir[1024];
    snprintf (dir, sizeof dir, "%s/data/catalogue", qp_test_source_dir ());
    qp_error_t err;
    s_catalogue = qp_catalogue_load (dir, &err);
    ck_assert_msg (s_catalogue != NULL, "%s", err.message);
}

static void s_teardown (void) { qp_catalogue_destroy (&s_catalogue); }

typedef struct {
    Qp__V1__Dossier d;
    Qp__V1__ProjectHolder h;
    Qp__V1__Business b;
    Qp__V1__Project p;
} dossier_t;

/* A dossier that meets every PHQ criterion. */
static void s_dossier (dossier_t *x)
{
    qp__v1__dossier__init (&x->d);
    qp__v1__project_holder__init (&x->h);
    qp__v1__business__init (&x->b);
    qp__v1__project__init (&x->p);
    x->d.submitted_on = "2025-03-10";
    x->h.residence_qpv = "QN05981M";
    x->h.has_accompanied = true, x->h.accompanied = true;
    x->h.has_network = true, x->h.network = QP__V1__NETWORK__FRANCE_ACTIVE;
    x->b.insee_commune = "59512";
    Qp__V1__Project *p = &x->p;
    p->has_axis = true, p->axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p->has_stage = true, p->stage = QP__V1__STAGE__TAKEOVER;
    p->has_amount_asked_cents = true, p->amount_asked_cents = 1000000;
    p->has_financing_need_cents = true, p->financing_need_cents = 3000000;
    p->has_bank_loan_cents = true, p->bank_loan_cents = 500000;
    p->has_bank_loan_months = true, p->bank_loan_months = 60;
    p->has_bank_loan_guarantee_pct = true, p->bank_loan_guarantee_pct = 50;
    p->has_honour_loan_months = true, p->honour_loan_months = 60;
    p->has_deferral_months = true, p->deferral_months = 24;
    x->d.holder = &x->h, x->d.business = &x->b, x->d.project = &x->p;
}

static Qp__V1__SchemeDecision *s_phq (const dossier_t *x)
{
    const qp_scheme_t *phq = qp_catalogue_find (s_catalogue, "phq");
    ck_assert_ptr_nonnull (phq);
    int32_t day;
    ck_assert (qp_date_parse (x->d.submitted_on, &day));
    return rules_evaluate (s_catalogue, phq, &x->d, day);
}

static const Qp__V1__CriterionResult *s_criterion (const Qp__V1__SchemeDecision *d,
                                                   const char *id)
{
    for (size_t i = 0; i < d->n_criteria; i++)
        if (!strcmp (d->criteria[i]->criterion, id))
            return d->criteria[i];
    ck_abort_msg ("no criterion %s", id);
    return NULL;
}

/* Evaluates and checks one criterion's outcome and the scheme's. */
static void s_expect (const dossier_t *x, const char *criterion, Qp__V1__CriterionOutcome c,
                      Qp__V1__Outcome outcome)
{
    Qp__V1__SchemeDecision *d = s_phq (x);
    const Qp__V1__CriterionResult *r = s_criterion (d, criterion);
    ck_assert_msg (r->outcome == c, "%s: outcome %d, expected %d (%s)", criterion, r->outcome, c,
                   r->reason);
    ck_assert_ptr_nonnull (r->reason);
    ck_assert_int_eq (d->outcome, outcome);
    if (c == QP__V1__CRITERION_OUTCOME__MISSING)
        ck_assert_ptr_nonnull (r->missing_field);
    qp__v1__scheme_decision__free_unpacked (d, NULL);
}

#define MET QP__V1__CRITERION_OUTCOME__MET
#define NOT_MET QP__V1__CRITERION_OUTCOME__NOT_MET
#define MISSING QP__V1__CRITERION_OUTCOME__MISSING
#define ELIGIBLE QP__V1__OUTCOME__ELIGIBLE_OUTCOME
#define NOT_ELIGIBLE QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME
#define INFO_MISSING QP__V1__OUTCOME__INFORMATION_MISSING

START_TEST (test_all_met_at_the_boundaries)
{
    dossier_t x;
    s_dossier (&x);
    /* 10,000 € = 33 % of the need; bank loan exactly half; guarantee exactly 50 %; 60
     * months and 24 months of deferral: every bound is inclusive. */
    Qp__V1__SchemeDecision *d = s_phq (&x);
    ck_assert_int_eq (d->outcome, ELIGIBLE);
    ck_assert_int_eq (d->amount_cents, 1000000);
    ck_assert_str_eq (d->catalogue_version, "phq-2024-01");
    ck_assert_int_eq (d->agency, QP__V1__AGENCY__BPIFRANCE);
    for (size_t i = 0; i < d->n_criteria; i++)
        ck_assert_msg (d->criteria[i]->outcome == MET, "%s: %s", d->criteria[i]->criterion,
                       d->criteria[i]->reason);
    /* The parameters used are cited with their source and date. */
    const Qp__V1__CriterionResult *amount = s_criterion (d, "amount");
    ck_assert_uint_eq (amount->n_parameters, 2);
    ck_assert_str_eq (amount->parameters[1]->name, "max_amount_cents");
    ck_assert_str_eq (amount->parameters[1]->value, "1500000");
    ck_assert_str_eq (amount->parameters[1]->valid_from, "2024-01-01");
    ck_assert_ptr_nonnull (strstr (amount->parameters[1]->source, "fonds-publics.fr"));
    ck_assert_ptr_nonnull (strstr (amount->reason, "10 000,00 €"));
    qp__v1__scheme_decision__free_unpacked (d, NULL);
}
END_TEST

START_TEST (test_amount_bounds)
{
    dossier_t x;
    s_dossier (&x);
    x.p.financing_need_cents = 10000000;
    x.p.bank_loan_cents = 10000000;
    x.p.amount_asked_cents = 1500000;
    s_expect (&x, "amount", MET, ELIGIBLE);
    x.p.amount_asked_cents = 1500001;
    s_expect (&x, "amount", NOT_MET, NOT_ELIGIBLE);
    x.p.amount_asked_cents = 100000;
    s_expect (&x, "amount", MET, ELIGIBLE);
    x.p.amount_asked_cents = 99999;
    s_expect (&x, "amount", NOT_MET, NOT_ELIGIBLE);
    x.p.has_amount_asked_cents = false;
    s_expect (&x, "amount", MISSING, INFO_MISSING);
}
END_TEST

START_TEST (test_share_of_need)
{
    dossier_t x;
    s_dossier (&x);
    x.p.financing_need_cents = 1500000; /* 66 % of 15,000 € = 9,900 € */
    x.p.amount_asked_cents = 990000;
    s_expect (&x, "share_of_need", MET, ELIGIBLE);
    x.p.amount_asked_cents = 990001;
    s_expect (&x, "share_of_need", NOT_MET, NOT_ELIGIBLE);
    x.p.has_financing_need_cents = false;
    s_expect (&x, "share_of_need", MISSING, INFO_MISSING);
}
END_TEST

START_TEST (test_qpv_and_accompaniment)
{
    dossier_t x;
    s_dossier (&x);
    x.h.residence_qpv = NULL;
    s_expect (&x, "qpv", MISSING, INFO_MISSING);
    x.b.declared_qpv = "QN05981M"; /* the business in a QPV is enough */
    s_expect (&x, "qpv", MET, ELIGIBLE);
    x.h.network = QP__V1__NETWORK__NETWORK_NONE;
    s_expect (&x, "accompaniment", NOT_MET, NOT_ELIGIBLE);
    x.h.network = QP__V1__NETWORK__ADIE;
    x.h.accompanied = false;
    s_expect (&x, "accompaniment", NOT_MET, NOT_ELIGIBLE);
    x.h.has_accompanied = false;
    s_expect (&x, "accompaniment", MISSING, INFO_MISSING);
}
END_TEST

START_TEST (test_bank_loan)
{
    dossier_t x;
    s_dossier (&x);
    x.p.bank_loan_cents = 499999; /* less than half of 10,000 € */
    s_expect (&x, "bank_loan", NOT_MET, NOT_ELIGIBLE);
    x.p.has_bank_loan_cents = false;
    s_expect (&x, "bank_loan", MISSING, INFO_MISSING);
    s_dossier (&x);
    x.p.bank_loan_guarantee_pct = 51;
    s_expect (&x, "bank_loan_terms", NOT_MET, NOT_ELIGIBLE);
    x.p.bank_loan_guarantee_pct = 0;
    x.p.bank_loan_months = 59; /* shorter than the 60-month honour loan */
    s_expect (&x, "bank_loan_terms", NOT_MET, NOT_ELIGIBLE);
    x.p.has_bank_loan_months = false;
    s_expect (&x, "bank_loan_terms", MISSING, INFO_MISSING);
}
END_TEST

START_TEST (test_duration)
{
    dossier_t x;
    s_dossier (&x);
    x.p.honour_loan_months = 12;
    s_expect (&x, "duration", MET, ELIGIBLE);
    x.p.honour_loan_months = 11;
    s_expect (&x, "duration", NOT_MET, NOT_ELIGIBLE);
    x.p.honour_loan_months = 61;
    x.p.bank_loan_months = 61;
    s_expect (&x, "duration", NOT_MET, NOT_ELIGIBLE);
    x.p.honour_loan_months = 24;
    x.p.deferral_months = 25;
    s_expect (&x, "duration", NOT_MET, NOT_ELIGIBLE);
    x.p.has_deferral_months = false; /* no deferral asked: 0 */
    s_expect (&x, "duration", MET, ELIGIBLE);
}
END_TEST

START_TEST (test_not_in_force_before_the_scheme)
{
    dossier_t x;
    s_dossier (&x);
    x.d.submitted_on = "2023-12-31";
    s_expect (&x, "in_force", NOT_MET, NOT_ELIGIBLE);
    x.d.submitted_on = "2024-01-01";
    s_expect (&x, "in_force", MET, ELIGIBLE);
}
END_TEST

/* Writes name -> text files into a fresh dir. */
static char *s_dir (const char *const *files)
{
    char *dir = qp_test_tmpdir ("qp-catalogue");
    for (size_t i = 0; files[i]; i += 2) {
        char path[1024];
        snprintf (path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen (path, "w");
        fputs (files[i + 1], f);
        fclose (f);
    }
    return dir;
}

#define SCHEME(versions)                                                                           \
    "{\"id\":\"x\",\"name\":\"X\",\"agency\":\"ANCT\",\"rule\":\"honour_loan\",\"versions\":" versions "}"
#define VERSION(from, until, max)                                                                  \
    "{\"version\":\"x-" from "\",\"valid_from\":\"" from "\",\"valid_until\":" until                 \
    ",\"source\":\"test\",\"parameters\":{\"min_amount_cents\":100,\"max_amount_cents\":" max "}}"

START_TEST (test_version_in_force_by_date)
{
    const char *files[] = {"x.json",
                           SCHEME ("[" VERSION ("2024-01-01", "\"2025-12-31\"", "1500000") "," VERSION (
                               "2026-01-01", "null", "1000000") "]"),
                           NULL};
    char *dir = s_dir (files);
    qp_error_t err;
    qp_catalogue_t *c = qp_catalogue_load (dir, &err);
    ck_assert_msg (c != NULL, "%s", err.message);
    const qp_scheme_t *x = qp_catalogue_find (c, "x");
    qp_scheme_version_t v;
    int64_t max;
    ck_assert (qp_catalogue_version_on (c, x, qp_date_from_civil (2025, 12, 31), &v));
    ck_assert (qp_catalogue_param (&v, "max_amount_cents", &max));
    ck_assert_int_eq (max, 1500000);
    ck_assert (qp_catalogue_version_on (c, x, qp_date_from_civil (2026, 1, 1), &v));
    ck_assert (qp_catalogue_param (&v, "max_amount_cents", &max));
    ck_assert_int_eq (max, 1000000);
    ck_assert (!qp_catalogue_version_on (c, x, qp_date_from_civil (2023, 12, 31), &v));
    ck_assert (!qp_catalogue_param (&v, "no_such_parameter", &max));
    /* The same 12,000 € asked in 2025 and in 2026 gets two answers. */
    dossier_t d;
    s_dossier (&d);
    d.p.amount_asked_cents = 1200000;
    d.p.financing_need_cents = 4000000;
    Qp__V1__SchemeDecision *a = rules_evaluate (c, x, &d.d, qp_date_from_civil (2025, 6, 1));
    Qp__V1__SchemeDecision *b = rules_evaluate (c, x, &d.d, qp_date_from_civil (2026, 6, 1));
    ck_assert_int_eq (s_criterion (a, "amount")->outcome, MET);
    ck_assert_int_eq (s_criterion (b, "amount")->outcome, NOT_MET);
    ck_assert_str_eq (a->catalogue_version, "x-2024-01-01");
    ck_assert_str_eq (b->catalogue_version, "x-2026-01-01");
    qp__v1__scheme_decision__free_unpacked (a, NULL);
    qp__v1__scheme_decision__free_unpacked (b, NULL);
    qp_catalogue_destroy (&c);
    qp_test_rmtree (dir);
    free (dir);
}
END_TEST

START_TEST (test_broken_catalogues_are_refused)
{
    static const char *const cases[][3] = {
        {"a.json", "{\"id\": ", "a.json:1"},
        {"a.json", "{\"id\":\"x\",\"name\":\"X\",\"rule\":\"r\",\"versions\":[]}", "agency"},
        {"a.json", SCHEME ("[]"), "non-empty"},
        {"a.json", SCHEME ("[" VERSION ("2024-02-30", "null", "1") "]"), "YYYY-MM-DD"},
        {"a.json",
         "{\"id\":\"x\",\"name\":\"X\",\"agency\":\"NASA\",\"rule\":\"r\",\"versions\":[]}",
         "NASA"},
        {"a.json",
         SCHEME ("[{\"version\":\"v\",\"valid_from\":\"2024-01-01\",\"parameters\":{}}]"),
         "source"},
        {"a.json",
         SCHEME ("[{\"version\":\"v\",\"valid_from\":\"2024-01-01\",\"source\":\"s\","
                 "\"parameters\":{\"max\":\"15000\"}}]"),
         "parameters.max"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *files[] = {cases[i][0], cases[i][1], NULL};
        char *dir = s_dir (files);
        qp_error_t err;
        qp_catalogue_t *c = qp_catalogue_load (dir, &err);
        ck_assert_msg (c == NULL, "case %zu loaded", i);
        ck_assert_str_eq (err.code, "bad_catalogue");
        ck_assert_msg (strstr (err.message, cases[i][2]), "case %zu: \"%s\" lacks \"%s\"", i,
                       err.message, cases[i][2]);
        qp_test_rmtree (dir);
        free (dir);
    }
    /* Twice the same id, and an empty directory. */
    const char *twice[] = {"a.json", SCHEME ("[" VERSION ("2024-01-01", "null", "1") "]"),
                           "b.json", SCHEME ("[" VERSION ("2024-01-01", "null", "1") "]"), NULL};
    char *dir = s_dir (twice);
    qp_error_t err;
    ck_assert_ptr_null (qp_catalogue_load (dir, &err));
    ck_assert_ptr_nonnull (strstr (err.message, "twice"));
    qp_test_rmtree (dir);
    free (dir);
    const char *none[] = {NULL};
    dir = s_dir (none);
    ck_assert_ptr_null (qp_catalogue_load (dir, &err));
    qp_test_rmtree (dir);
    free (dir);
    ck_assert_ptr_null (qp_catalogue_load ("/nonexistent/catalogue", &err));
}
END_TEST

START_TEST (test_decision_for_a_dossier)
{
    dossier_t x;
    s_dossier (&x);
    x.d.territory = "roubaix";
    x.b.declared_qpv = "QN05981M";
    Qp__V1__EligibilityDecided *e = eligibility_decide (s_catalogue, "d123", &x.d);
    ck_assert_str_eq (e->dossier_id, "d123");
    ck_assert_str_eq (e->territory, "roubaix");
    ck_assert_str_eq (e->decided_on, "2025-03-10");
    ck_assert_uint_eq (e->n_decisions, qp_catalogue_size (s_catalogue));
    ck_assert_ptr_nonnull (e->business_location);
    ck_assert (!e->business_location->verified);
    ck_assert_str_eq (e->residence_location->qpv_code, "QN05981M");
    qp__v1__eligibility_decided__free_unpacked (e, NULL);
}
END_TEST

START_TEST (test_euros)
{
    char buf[40];
    rules_format_euros (1500000, buf, sizeof buf);
    ck_assert_str_eq (buf, "15 000,00 €");
    rules_format_euros (5, buf, sizeof buf);
    ck_assert_str_eq (buf, "0,05 €");
    rules_format_euros (-123456789, buf, sizeof buf);
    ck_assert_str_eq (buf, "-1 234 567,89 €");
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("rules");
    TCase *tc = tcase_create ("rules");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_all_met_at_the_boundaries);
    tcase_add_test (tc, test_amount_bounds);
    tcase_add_test (tc, test_share_of_need);
    tcase_add_test (tc, test_qpv_and_accompaniment);
    tcase_add_test (tc, test_bank_loan);
    tcase_add_test (tc, test_duration);
    tcase_add_test (tc, test_not_in_force_before_the_scheme);
    tcase_add_test (tc, test_version_in_force_by_date);
    tcase_add_test (tc, test_broken_catalogues_are_refused);
    tcase_add_test (tc, test_decision_for_a_dossier);
    tcase_add_test (tc, test_euros);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? 1 : 0;
}
