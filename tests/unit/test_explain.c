/* The readable explanation of a decision says every scheme, criterion, missing field,
 * value and dated parameter with its source. */
#include "qp_explain.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

START_TEST (test_text)
{
    Qp__V1__ParameterUsed p = QP__V1__PARAMETER_USED__INIT;
    p.name = "max_amount_cents", p.value = "1500000", p.valid_from = "2024-01-01";
    p.source = "fonds-publics.fr/?p=139780";
    Qp__V1__ParameterUsed *ps[] = {&p};
    char *values[] = {"project.amount_asked_cents=1000000"};
    Qp__V1__CriterionResult met = QP__V1__CRITERION_RESULT__INIT;
    met.criterion = "amount", met.has_outcome = true, met.outcome = QP__V1__CRITERION_OUTCOME__MET;
    met.reason = "10 000,00 € asked ≤ maximum 15 000,00 €";
    met.n_parameters = 1, met.parameters = ps, met.n_values = 1, met.values = values;
    Qp__V1__CriterionResult miss = QP__V1__CRITERION_RESULT__INIT;
    miss.criterion = "bank_loan", miss.has_outcome = true;
    miss.outcome = QP__V1__CRITERION_OUTCOME__MISSING;
    miss.reason = "project.bank_loan_cents is not given";
    miss.missing_field = "project.bank_loan_cents";
    Qp__V1__CriterionResult *cs[] = {&met, &miss};
    Qp__V1__SchemeDecision d = QP__V1__SCHEME_DECISION__INIT;
    d.scheme_id = "phq", d.scheme_name = "Prêt d'honneur Quartiers";
    d.has_agency = true, d.agency = QP__V1__AGENCY__BPIFRANCE;
    d.has_outcome = true, d.outcome = QP__V1__OUTCOME__INFORMATION_MISSING;
    d.catalogue_version = "phq-2024-01", d.n_criteria = 2, d.criteria = cs;
    Qp__V1__SchemeDecision ok = QP__V1__SCHEME_DECISION__INIT;
    ok.scheme_id = "adie-microcredit", ok.scheme_name = "Microcrédit Adie";
    ok.has_outcome = true, ok.outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    ok.has_amount_cents = true, ok.amount_cents = 1234567;
    Qp__V1__SchemeDecision *ds[] = {&d, &ok};
    Qp__V1__QpvLocation loc = QP__V1__QPV_LOCATION__INIT;
    loc.qpv_code = "QN05981M", loc.has_verified = true, loc.verified = true;
    loc.has_distance_m = true, loc.distance_m = 12;
    Qp__V1__EligibilityDecided e = QP__V1__ELIGIBILITY_DECIDED__INIT;
    e.dossier_id = "d42", e.decided_on = "2025-03-10", e.territory = "roubaix";
    e.business_location = &loc, e.n_decisions = 2, e.decisions = ds;

    char *text = qp_explain_text (&e, true);
    const char *expected[] = {"Dossier d42", "2025-03-10", "roubaix",
                              "QPV QN05981M (verified on the official contours, within the boundary tolerance)",
                              "12 m from the boundary", "Residence: not in a known QPV",
                              "1 of 2 schemes eligible",
                              "Prêt d'honneur Quartiers (phq, BPIFRANCE): INFORMATION MISSING",
                              "[catalogue phq-2024-01]", "[met]     amount",
                              "[missing] bank_loan", "missing: project.bank_loan_cents",
                              "read project.amount_asked_cents=1000000",
                              "max_amount_cents = 1500000 (from 2024-01-01; source: fonds-publics.fr/?p=139780)",
                              "Microcrédit Adie (adie-microcredit, AGENCY_UNSPECIFIED): ELIGIBLE, 12 345,67 €",
                              NULL};
    for (int i = 0; expected[i]; i++)
        ck_assert_msg (strstr (text, expected[i]), "missing \"%s\" in:\n%s", expected[i], text);
    free (text);
    text = qp_explain_text (&e, false);
    ck_assert_ptr_null (strstr (text, "source:"));
    ck_assert_ptr_nonnull (strstr (text, "missing: project.bank_loan_cents"));
    free (text);
    /* Declared only. */
    loc.verified = false, loc.has_distance_m = false;
    text = qp_explain_text (&e, false);
    ck_assert_ptr_nonnull (strstr (text, "(declared, not verified)"));
    free (text);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("explain");
    TCase *tc = tcase_create ("explain");
    tcase_add_test (tc, test_text);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
