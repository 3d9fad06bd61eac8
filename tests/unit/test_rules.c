/* The catalogue loader and the rule evaluator: the real catalogue loads in decision order
 * with kinds and agencies, broken files are refused with the file, the place and the
 * reason, an empty dossier gets "information missing" (never a silent "not eligible"),
 * and a dossier's decisions put the PHQ first for funding. The schemes' own rules are
 * tested as data (tests/rules, test_rule_cases.c). */
#include "eligibility.h"
#include "qp_catalogue.h"
#include "qp_date.h"
#include "qp_test.h"
#include "qp_test_catalogue_fixture.h"
#include "rules.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

START_TEST (test_real_catalogue)
{
    static const char *const ids[] = {"phq",
                                      "phs",
                                      "cfe-qpv",
                                      "tfpb-qpv",
                                      "zfu-te",
                                      "garantie-egalite-territoires",
                                      "bpifrance-garantie-creation",
                                      "adie-microcredit",
                                      "bdt-commerce",
                                      "anru-locaux",
                                      "anct-ingenierie"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        ck_assert_msg (qp_catalogue_find (s_catalogue, ids[i]), "no scheme %s", ids[i]);
    ck_assert_str_eq (qp_catalogue_scheme (s_catalogue, 0)->id, "phq");
    const qp_scheme_t *phq = qp_catalogue_find (s_catalogue, "phq");
    ck_assert_int_eq (phq->agency, QP__V1__AGENCY__BPIFRANCE);
    ck_assert_int_eq (phq->kind_code, QP_KIND_HONOUR_LOAN);
    ck_assert_str_eq (phq->kind, "honour_loan");
    ck_assert (phq->beneficiaries & QP_BENEFICIARY_PERSON);
    const qp_scheme_t *cfe = qp_catalogue_find (s_catalogue, "cfe-qpv");
    ck_assert_int_eq (cfe->kind_code, QP_KIND_TAX_EXEMPTION);
    ck_assert_int_eq (qp_catalogue_find (s_catalogue, "bdt-commerce")->agency,
                      QP__V1__AGENCY__BANQUE_DES_TERRITOIRES);
    ck_assert_int_eq (qp_catalogue_find (s_catalogue, "anru-locaux")->agency, QP__V1__AGENCY__ANRU);
    ck_assert_int_eq (qp_catalogue_find (s_catalogue, "anct-ingenierie")->agency,
                      QP__V1__AGENCY__ANCT);
    ck_assert (qp_catalogue_find (s_catalogue, "anru-locaux")->beneficiaries &
               QP_BENEFICIARY_LOCAL_AUTHORITY);

    /* Dated values: a value applies from its date until the next one. */
    qp_param_value_t v;
    int32_t day;
    qp_date_parse ("2023-12-31", &day);
    ck_assert (!qp_catalogue_in_force (phq, day, NULL));
    qp_date_parse ("2024-01-01", &day);
    ck_assert (qp_catalogue_in_force (phq, day, NULL));
    ck_assert (qp_catalogue_param_on (phq, "max_amount_cents", day, &v));
    ck_assert_int_eq (json_integer_value (v.value), 1500000);
    ck_assert_str_eq (v.valid_from, "2024-01-01");
    ck_assert_ptr_nonnull (strstr (v.source, "fonds-publics.fr"));
    qp_date_parse ("2028-01-01", &day);
    ck_assert (!qp_catalogue_in_force (phq, day, &v));
    ck_assert_ptr_null (v.value);
}
END_TEST

/* Writes a one-file catalogue and loads it. */
static qp_catalogue_t *s_load_text (const char *text, qp_error_t *err)
{
    char dir[] = "/tmp/qp-cat-XXXXXX";
    ck_assert_ptr_nonnull (mkdtemp (dir));
    char path[1100];
    snprintf (path, sizeof path, "%s/broken.json", dir);
    FILE *f = fopen (path, "w");
    ck_assert_ptr_nonnull (f);
    fputs (text, f);
    fclose (f);
    qp_catalogue_t *c = qp_catalogue_load (dir, err);
    unlink (path);
    rmdir (dir);
    return c;
}

/* A valid scheme with one criterion and one parameter, where NEEDLE is replaced. */
#define SCHEME_HEAD                                                                                \
    "{\"id\": \"x\", \"name\": \"X\", \"version\": \"x-1\", \"agency\": %s, \"axes\": "            \
    "[\"ENTREPRENEURSHIP\"], \"kind\": %s, \"beneficiary\": %s, \"sources\": [{\"id\": \"s\", "    \
    "\"title\": \"S\", \"checked_on\": \"2026-01-01\"}], \"parameters\": {\"in_force\": "          \
    "[{\"from\": %s, \"value\": true, \"source\": \"s\"}], \"max_cents\": [{\"from\": "            \
    "\"2024-01-01\", \"value\": 100, \"source\": \"s\"}]}, \"criteria\": [{\"id\": \"a\", "        \
    "\"label\": \"A\", \"op\": %s, \"field\": %s, \"max\": %s}], \"amount\": {\"op\": \"none\"}}"

static void s_refused (const char *agency, const char *kind, const char *ben, const char *from,
                       const char *op, const char *field, const char *max, const char *expect)
{
    char text[2048];
    snprintf (text, sizeof text, SCHEME_HEAD, agency, kind, ben, from, op, field, max);
    qp_error_t err;
    qp_catalogue_t *c = s_load_text (text, &err);
    if (!expect) {
        ck_assert_msg (c != NULL, "a valid file was refused: %s", err.message);
        qp_catalogue_destroy (&c);
        return;
    }
    ck_assert_msg (c == NULL, "accepted a file with %s", expect);
    ck_assert_msg (strstr (err.message, "broken.json") && strstr (err.message, expect),
                   "error \"%s\" should name the file and \"%s\"", err.message, expect);
}

START_TEST (test_broken_catalogues_are_refused)
{
    const char *ag = "\"BPIFRANCE\"", *k = "\"loan\"", *b = "\"person\"", *d = "\"2024-01-01\"";
    const char *op = "\"lte\"", *f = "\"project.amount_asked_cents\"", *m = "\"@max_cents\"";
    s_refused (ag, k, b, d, op, f, m, NULL);
    s_refused (ag, k, b, d, "\"lower_than\"", f, m,
               "criteria[0].op: unknown operator \"lower_than\"");
    s_refused (ag, k, b, d, op, "\"project.amount_cents\"", m,
               "criteria[0].field: \"project.amount_cents\": qp.v1.Dossier has no field");
    s_refused (ag, k, b, d, op, "\"project\"", m, "is a message, not a value");
    s_refused (ag, k, b, d, op, f, "\"@max_euros\"",
               "criteria[0].max: parameter \"@max_euros\" is not defined");
    s_refused (ag, k, b, d, op, f, "\"ten\"", "criteria[0].max: must be an integer");
    s_refused (ag, k, b, "\"2024-02-30\"", op, f, m,
               "parameters.in_force[0]: \"from\" must be a date");
    s_refused ("\"CDC\"", k, b, d, op, f, m, "agency: \"CDC\" is not");
    s_refused (ag, "\"subsidy\"", b, d, op, f, m, "kind: \"subsidy\" is not");
    s_refused (ag, k, "\"company\"", d, op, f, m, "beneficiary: \"company\" is not");
    s_refused (ag, k, "[\"person\", \"state\"]", d, op, f, m, "beneficiary: \"state\" is not");
    /* A date field compares with dates, not integers. */
    s_refused (ag, k, b, d, op, "\"business.creation_date\"", m, "must be a date YYYY-MM-DD");

    qp_error_t err;
    /* A version starting with '-' would read back as a shortened stored one. */
    char text[2048];
    snprintf (text, sizeof text, SCHEME_HEAD, ag, k, b, d, op, f, m);
    char *v = strstr (text, "\"x-1\"");
    ck_assert_ptr_nonnull (v);
    v[1] = '-', v[2] = '1', v[3] = '"', v[4] = ' ';
    ck_assert_ptr_null (s_load_text (text, &err));
    ck_assert_msg (strstr (err.message, "version: must not be empty nor start with '-'"), "%s",
                   err.message);
    ck_assert_ptr_null (s_load_text ("{\"id\": \"x\",\n  \"name\": }\n", &err));
    ck_assert_msg (strstr (err.message, "broken.json:2:"), "no line in \"%s\"", err.message);
    ck_assert_ptr_null (s_load_text (
        "{\"id\": \"x\", \"name\": \"X\", \"version\": \"1\", \"agency\": \"ANCT\", \"axes\": "
        "[\"ENTREPRENEURSHIP\"], \"kind\": \"grant\", \"beneficiary\": \"business\", \"sources\": "
        "[{\"id\": \"s\", \"title\": \"S\", \"checked_on\": \"2026-01-01\"}], \"parameters\": "
        "{\"in_force\": [{\"from\": \"2024-01-01\", \"value\": true, \"source\": \"s\"}]}, "
        "\"criteria\": [{\"id\": \"q\", \"label\": \"Q\", \"op\": \"any_of\", \"criteria\": "
        "[{\"id\": "
        "\"f\", \"label\": \"F\", \"op\": \"fact\", \"fact\": \"in_qpv\"}]}], \"amount\": {\"op\": "
        "\"none\"}}",
        &err));
    ck_assert_msg (strstr (err.message, "criteria[0].criteria[0].fact: unknown fact \"in_qpv\""),
                   "%s", err.message);
    /* An exact ratio needs a numerator and a positive denominator; pct or ratio, not both. */
    static const char ratio_head[] =
        "{\"id\": \"x\", \"name\": \"X\", \"version\": \"1\", \"agency\": \"ANCT\", "
        "\"axes\": [\"ENTREPRENEURSHIP\"], \"kind\": \"grant\", \"beneficiary\": "
        "\"business\", \"sources\": [{\"id\": \"s\", \"title\": \"S\", \"checked_on\": "
        "\"2026-01-01\"}], \"parameters\": {\"in_force\": [{\"from\": \"2024-01-01\", "
        "\"value\": true, \"source\": \"s\"}], \"share\": [{\"from\": \"2024-01-01\", "
        "\"value\": %s, \"source\": \"s\"}]}, \"criteria\": [{\"id\": \"r\", \"label\": "
        "\"R\", \"op\": \"ratio_lte\", \"field\": \"project.amount_asked_cents\", \"of\": "
        "\"project.financing_need_cents\", %s}], \"amount\": {\"op\": \"none\"}}";
    static const struct {
        const char *value, *operand, *expect;
    } ratios[] = {
        {"{\"numerator\": 2, \"denominator\": 3}", "\"ratio\": \"@share\"", NULL},
        {"{\"numerator\": 2}", "\"ratio\": \"@share\"",
         "parameters.share[0]: a value is an integer, a boolean, a string, a list of strings, a "
         "fraction {numerator, denominator} or null"},
        {"{\"numerator\": 2, \"denominator\": 3, \"x\": 1}", "\"ratio\": \"@share\"",
         "parameters.share[0].value (used by criteria[0].ratio): must be {\"numerator\""},
        {"{\"numerator\": 2, \"denominator\": 0}", "\"ratio\": \"@share\"",
         "denominator 1 to 1000000"},
        {"66", "\"ratio\": \"@share\"", "must be {\"numerator\""},
        {"{\"numerator\": 2, \"denominator\": 3}", "\"ratio\": \"@share\", \"pct\": 66",
         "criteria[0]: ratio_lte takes \"pct\" or \"ratio\", not both"},
    };
    for (size_t i = 0; i < sizeof ratios / sizeof *ratios; i++) {
        char text[2048];
        snprintf (text, sizeof text, ratio_head, ratios[i].value, ratios[i].operand);
        qp_catalogue_t *c = s_load_text (text, &err);
        if (!ratios[i].expect) {
            ck_assert_msg (c != NULL, "%s", err.message);
            qp_catalogue_destroy (&c);
            continue;
        }
        ck_assert_msg (c == NULL, "accepted ratio %s", ratios[i].value);
        ck_assert_msg (strstr (err.message, ratios[i].expect), "\"%s\" should say \"%s\"",
                       err.message, ratios[i].expect);
    }
    /* The compact decision has a bit per top-level criterion: 33 are refused. */
    char many[16384];
    int len =
        snprintf (many, sizeof many, "%s",
                  "{\"id\": \"x\", \"name\": \"X\", \"version\": \"1\", \"agency\": \"ANCT\", "
                  "\"axes\": [\"ENTREPRENEURSHIP\"], \"kind\": \"grant\", \"beneficiary\": "
                  "\"business\", \"sources\": [{\"id\": \"s\", \"title\": \"S\", \"checked_on\": "
                  "\"2026-01-01\"}], \"parameters\": {\"in_force\": [{\"from\": \"2024-01-01\", "
                  "\"value\": true, \"source\": \"s\"}]}, \"criteria\": [");
    for (int i = 0; i < 33; i++)
        len += snprintf (many + len, sizeof many - (size_t)len,
                         "%s{\"id\": \"c%d\", \"label\": \"C\", \"op\": \"present\", "
                         "\"field\": \"business.siret\"}",
                         i ? ", " : "", i);
    snprintf (many + len, sizeof many - (size_t)len, "], \"amount\": {\"op\": \"none\"}}");
    ck_assert_ptr_null (s_load_text (many, &err));
    ck_assert_msg (strstr (err.message, "criteria: at most 32 criteria"), "%s", err.message);
    ck_assert_ptr_null (qp_catalogue_load ("/nonexistent/catalogue", &err));
}
END_TEST

/* With nothing in the dossier, no scheme says "not eligible" by mistake: every criterion
 * is MISSING and names what it needs. */
START_TEST (test_empty_dossier_is_information_missing)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    int32_t day;
    qp_date_parse ("2025-06-01", &day);
    for (int pass = 0; pass < 2; pass++) {
        d.project = pass ? &p : NULL; /* a message absent or empty */
        for (size_t i = 0; i < qp_catalogue_size (s_catalogue); i++) {
            const qp_scheme_t *s = qp_catalogue_scheme (s_catalogue, i);
            Qp__V1__SchemeDecision *dec = rules_evaluate (s, &d, day, NULL);
            ck_assert_msg (dec->outcome == QP__V1__OUTCOME__INFORMATION_MISSING, "%s: outcome %d",
                           s->id, dec->outcome);
            for (size_t j = 1; j < dec->n_criteria; j++) {
                /* MET only where the file says what an absent field means (if_absent). */
                bool defaulted = s->criteria[j - 1].if_absent != NULL;
                ck_assert_msg (
                    dec->criteria[j]->outcome == (defaulted ? QP__V1__CRITERION_OUTCOME__MET
                                                            : QP__V1__CRITERION_OUTCOME__MISSING),
                    "%s.%s: %s", s->id, dec->criteria[j]->criterion, dec->criteria[j]->reason);
                ck_assert (defaulted ||
                           (dec->criteria[j]->missing_field && *dec->criteria[j]->missing_field));
            }
            qp__v1__scheme_decision__free_unpacked (dec, NULL);
        }
    }
}
END_TEST

/* The integration flow's dossier: the PHQ is the first eligible scheme with an amount,
 * and at 20,000 € no scheme at all is eligible. */
START_TEST (test_flow_dossier_decisions)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    d.submitted_on = "2025-03-10";
    h.person_key = "p0000000000000000000000000000001";
    h.residence_qpv = "QN05981M";
    h.has_accompanied = true, h.accompanied = true;
    h.has_network = true, h.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    b.insee_commune = "59512", b.naf_code = "47.11B", b.legal_form = "5499";
    p.has_axis = true, p.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    p.has_amount_asked_cents = true, p.amount_asked_cents = 500000;
    p.has_financing_need_cents = true, p.financing_need_cents = 2000000;
    p.has_bank_loan_cents = true, p.bank_loan_cents = 1000000;
    p.has_bank_loan_months = true, p.bank_loan_months = 60;
    p.has_bank_loan_guarantee_pct = true, p.bank_loan_guarantee_pct = 40;
    p.has_honour_loan_months = true, p.honour_loan_months = 48;
    p.has_deferral_months = true, p.deferral_months = 6;
    d.holder = &h, d.business = &b, d.project = &p;

    Qp__V1__EligibilityDecided *e = eligibility_decide (s_catalogue, NULL, "dossier-1", &d, NULL);
    const Qp__V1__SchemeDecision *first = NULL;
    for (size_t i = 0; i < e->n_decisions && !first; i++)
        if (e->decisions[i]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME &&
            e->decisions[i]->amount_cents > 0)
            first = e->decisions[i];
    ck_assert_ptr_nonnull (first);
    ck_assert_str_eq (first->scheme_id, "phq");
    ck_assert_int_eq (first->amount_cents, 500000);
    ck_assert_int_eq (first->agency, QP__V1__AGENCY__BPIFRANCE);
    ck_assert_str_eq (first->catalogue_version, "phq-2026.1");
    /* Compact: no criterion results and no text anywhere, the criteria not met as bits;
     * what funding and evaluation read is there; the facts known are recorded. */
    ck_assert_int_eq (first->criteria_not_met | first->criteria_missing, 0);
    ck_assert_ptr_null (first->scheme_name);
    ck_assert_str_eq (e->decided_on, "2025-03-10");
    for (size_t i = 0; i < e->n_decisions; i++) {
        const Qp__V1__SchemeDecision *sd = e->decisions[i];
        ck_assert_int_eq (sd->n_criteria, 0);
        ck_assert (sd->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME ||
                   sd->criteria_not_met | sd->criteria_missing);
        ck_assert ((sd->outcome == QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME) ==
                   (sd->criteria_not_met != 0));
    }
    const qp_scheme_t *cfe = qp_catalogue_find (s_catalogue, "cfe-qpv");
    const Qp__V1__SchemeDecision *cfe_d = NULL;
    for (size_t i = 0; i < e->n_decisions; i++)
        if (!strcmp (e->decisions[i]->scheme_id, "cfe-qpv"))
            cfe_d = e->decisions[i];
    ck_assert_int_eq (rules_compact_outcome (cfe, cfe_d, "creation_date"),
                      QP__V1__CRITERION_OUTCOME__MISSING);
    ck_assert_int_eq (rules_compact_outcome (cfe, cfe_d, "no_such_criterion"),
                      QP__V1__CRITERION_OUTCOME__CRITERION_UNSPECIFIED);
    bool residence = false;
    for (size_t i = 0; i < e->n_facts_true; i++)
        residence |= e->facts_true[i] == QP__V1__FACT__FACT_RESIDENCE_IN_QPV;
    ck_assert (residence);
    /* The budget of the whole dossier is 2 KiB of Redis: the decision is a small part. */
    size_t packed = qp__v1__eligibility_decided__get_packed_size (e);
    ck_assert_msg (packed <= 600, "compact decision is %zu bytes", packed);

    /* Explained again from the compact decision: the same outcomes, every criterion with
     * its reason, the amount's parameter cited with its date and source. */
    bool matches = false;
    char note[300];
    Qp__V1__EligibilityDecided *x =
        eligibility_explain (s_catalogue, NULL, &d, e, &matches, note, sizeof note);
    ck_assert_msg (matches, "%s", note);
    ck_assert_int_eq (x->n_decisions, e->n_decisions);
    ck_assert_str_eq (x->decisions[0]->scheme_id, "phq");
    ck_assert_str_eq (x->decisions[0]->scheme_name, "Prêt d'honneur Quartiers");
    first = x->decisions[0];
    ck_assert_str_eq (first->catalogue_version, "phq-2026.1@2024-01-01");
    ck_assert_int_ge (first->n_criteria, 12);
    bool cited = false;
    for (size_t j = 0; j < first->n_criteria; j++) {
        ck_assert_ptr_nonnull (first->criteria[j]->reason);
        for (size_t k = 0; k < first->criteria[j]->n_parameters; k++) {
            const Qp__V1__ParameterUsed *pu = first->criteria[j]->parameters[k];
            if (!strcmp (pu->name, "max_amount_cents"))
                cited = !strcmp (pu->value, "1500000") && !strcmp (pu->valid_from, "2024-01-01") &&
                        strstr (pu->source, "fonds-publics.fr");
        }
    }
    ck_assert (cited);
    /* A decision stored in full (before the compact form) is its own explanation. */
    Qp__V1__EligibilityDecided *again =
        eligibility_explain (s_catalogue, NULL, &d, x, &matches, note, sizeof note);
    ck_assert (matches);
    ck_assert_ptr_nonnull (strstr (note, "before the compact form"));
    ck_assert_int_eq (again->n_decisions, x->n_decisions);
    ck_assert_int_eq (again->decisions[0]->n_criteria, x->decisions[0]->n_criteria);
    ck_assert_str_eq (again->decisions[0]->catalogue_version, "phq-2026.1@2024-01-01");
    qp__v1__eligibility_decided__free_unpacked (again, NULL);
    qp__v1__eligibility_decided__free_unpacked (x, NULL);

    /* A stored decision the catalogue no longer gives is said to differ. */
    e->decisions[0]->outcome = QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME;
    x = eligibility_explain (s_catalogue, NULL, &d, e, &matches, note, sizeof note);
    ck_assert (!matches);
    ck_assert_msg (strstr (note, "phq was decided NOT_ELIGIBLE_OUTCOME"), "%s", note);
    qp__v1__eligibility_decided__free_unpacked (x, NULL);
    e->decisions[0]->outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    /* The facts recorded win over what the dossier declares now: PHQ held by another. */
    e->n_facts_true = 0;
    Qp__V1__Fact held = QP__V1__FACT__FACT_FIRST_PHQ_FOR_PERSON_NETWORK;
    e->facts_false = realloc (e->facts_false, sizeof *e->facts_false);
    e->facts_false[0] = held, e->n_facts_false = 1;
    x = eligibility_explain (s_catalogue, NULL, &d, e, &matches, note, sizeof note);
    ck_assert (!matches);
    ck_assert_int_eq (x->decisions[0]->outcome, QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME);
    qp__v1__eligibility_decided__free_unpacked (x, NULL);
    qp__v1__eligibility_decided__free_unpacked (e, NULL);

    p.amount_asked_cents = 2000000, p.financing_need_cents = 8000000, p.bank_loan_cents = 4000000;
    e = eligibility_decide (s_catalogue, NULL, "dossier-2", &d, NULL);
    for (size_t i = 0; i < e->n_decisions; i++)
        ck_assert_msg (e->decisions[i]->outcome != QP__V1__OUTCOME__ELIGIBLE_OUTCOME,
                       "%s is eligible at 20,000 €", e->decisions[i]->scheme_id);
    qp__v1__eligibility_decided__free_unpacked (e, NULL);
}
END_TEST

/* Every fact has its wire value, named after it ("business_in_qpv" is
 * FACT_BUSINESS_IN_QPV). */
START_TEST (test_fact_wire_names)
{
    for (int f = 0; f < QP_FACT_COUNT; f++) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value (
            &qp__v1__fact__descriptor, eligibility_fact_wire ((qp_fact_t)f));
        ck_assert_ptr_nonnull (v);
        char want[64];
        snprintf (want, sizeof want, "FACT_%s", qp_fact_name ((qp_fact_t)f));
        for (char *p = want; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        ck_assert_str_eq (v->name, want);
        ck_assert_str_eq (qp_fact_field ((qp_fact_t)f) + 5, qp_fact_name ((qp_fact_t)f));
    }
}
END_TEST

START_TEST (test_euros)
{
    char buf[40];
    rules_format_euros (1500000, buf, sizeof buf);
    ck_assert_str_eq (buf, "15 000,00 €");
    rules_format_euros (99, buf, sizeof buf);
    ck_assert_str_eq (buf, "0,99 €");
    rules_format_euros (-123456789, buf, sizeof buf);
    ck_assert_str_eq (buf, "-1 234 567,89 €");
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("rules");
    TCase *tc = tcase_create ("rules");
    tcase_add_checked_fixture (tc, qp_test_catalogue_setup, qp_test_catalogue_teardown);
    tcase_add_test (tc, test_real_catalogue);
    tcase_add_test (tc, test_broken_catalogues_are_refused);
    tcase_add_test (tc, test_empty_dossier_is_information_missing);
    tcase_add_test (tc, test_flow_dossier_decisions);
    tcase_add_test (tc, test_euros);
    tcase_add_test (tc, test_fact_wire_names);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
