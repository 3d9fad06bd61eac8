/* Rule tests as data: every tests/rules/<scheme>.json is a list of cases (a dossier in the
 * qp_json mapping, a date, facts, the expected outcome, amount and criteria), run against
 * the project's real catalogue, one check test per case. docs/catalogue.md gives the
 * format. */
#include "qp_catalogue.h"
#include "qp_date.h"
#include "qp_json.h"
#include "qp_test.h"
#include "qp_test_catalogue_fixture.h"
#include "rules.h"
#include <check.h>
#include <dirent.h>
#include <string.h>

typedef struct {
    char file[300];
    char scheme[64];
    json_t *base;  /* dossier every case of the file starts from */
    json_t *facts; /* facts every case of the file starts from */
    json_t *kase;
} case_t;

static case_t *s_cases;
static json_t **s_docs; /* the case files, held until exit (cases borrow from them) */
static size_t s_n_docs;
static size_t s_n;

/* Removes a dotted path ("project.deferral_months") from a JSON object. */
static void s_unset (json_t *obj, const char *path)
{
    char buf[200];
    snprintf (buf, sizeof buf, "%s", path);
    char *dot = strchr (buf, '.');
    if (!dot) {
        json_object_del (obj, buf);
        return;
    }
    *dot = 0;
    json_t *sub = json_object_get (obj, buf);
    if (json_is_object (sub))
        s_unset (sub, dot + 1);
}

static const char *s_outcome_name (Qp__V1__Outcome o)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__outcome__descriptor, o);
    return v ? v->name : "?";
}

/* The expected names are the short ones of docs/catalogue.md. */
static Qp__V1__Outcome s_outcome (const char *name)
{
    if (!strcmp (name, "ELIGIBLE"))
        return QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    if (!strcmp (name, "NOT_ELIGIBLE"))
        return QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME;
    if (!strcmp (name, "INFORMATION_MISSING"))
        return QP__V1__OUTCOME__INFORMATION_MISSING;
    ck_abort_msg ("unknown expected outcome %s", name);
    return 0;
}

static void s_explain (const Qp__V1__SchemeDecision *d, char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < d->n_criteria && len + 1 < size; i++) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value (
            &qp__v1__criterion_outcome__descriptor, d->criteria[i]->outcome);
        int n = snprintf (out + len, size - len, "\n    %s %s: %s", d->criteria[i]->criterion,
                          v ? v->name : "?", d->criteria[i]->reason ? d->criteria[i]->reason : "");
        len += n > 0 ? (size_t)n : 0;
    }
}

START_TEST (test_case)
{
    const case_t *c = &s_cases[_i];
    const char *name = json_string_value (json_object_get (c->kase, "name"));
    const char *date = json_string_value (json_object_get (c->kase, "date"));
    ck_assert_msg (name && date, "%s: case %d needs name and date", c->file, _i);
    const qp_scheme_t *scheme = qp_catalogue_find (s_catalogue, c->scheme);
    ck_assert_msg (scheme, "%s: no scheme %s in the catalogue", c->file, c->scheme);

    json_t *dj = c->base ? json_deep_copy (c->base) : json_object ();
    json_t *over = json_object_get (c->kase, "dossier");
    if (over)
        json_object_update_recursive (dj, over);
    size_t i;
    json_t *u;
    json_array_foreach (json_object_get (c->kase, "unset"), i, u)
        s_unset (dj, json_string_value (u));
    json_object_set_new (dj, "submitted_on", json_string (date));
    qp_error_t err;
    Qp__V1__Dossier *dossier =
        (Qp__V1__Dossier *)qp_json_to_message (&qp__v1__dossier__descriptor, dj, &err);
    json_decref (dj);
    ck_assert_msg (dossier, "%s: %s: dossier: %s", c->file, name, err.message);

    rules_facts_t facts;
    rules_facts_init (&facts);
    json_t *layers[] = {c->facts, json_object_get (c->kase, "facts")};
    for (int l = 0; l < 2; l++) {
        const char *key;
        json_t *v;
        json_object_foreach (layers[l], key, v)
        {
            qp_fact_t f;
            ck_assert_msg (qp_fact_lookup (key, &f), "%s: %s: unknown fact %s", c->file, name, key);
            rules_facts_set (&facts, f,
                             json_is_null (v)   ? RULES_UNKNOWN
                             : json_is_true (v) ? RULES_TRUE
                                                : RULES_FALSE,
                             "given by the test case");
        }
    }
    /* "declared": true: what the dossier declares then applies, as in the service
     * (declared QPV codes, business.declared_*, holder.declared_target_group). */
    if (json_is_true (json_object_get (c->kase, "declared")))
        rules_facts_declared (&facts, dossier);
    int32_t day;
    ck_assert_msg (qp_date_parse (date, &day), "%s: %s: bad date %s", c->file, name, date);
    Qp__V1__SchemeDecision *d = rules_evaluate (scheme, dossier, day, &facts);
    char why[4096];
    s_explain (d, why, sizeof why);

    json_t *expect = json_object_get (c->kase, "expect");
    const char *outcome = json_string_value (json_object_get (expect, "outcome"));
    ck_assert_msg (outcome, "%s: %s: expect.outcome is required", c->file, name);
    ck_assert_msg (d->outcome == s_outcome (outcome), "%s: case \"%s\": outcome %s, expected %s%s",
                   c->file, name, s_outcome_name (d->outcome), outcome, why);
    json_t *amount = json_object_get (expect, "amount_cents");
    if (amount)
        ck_assert_msg (d->amount_cents == json_integer_value (amount),
                       "%s: case \"%s\": amount %lld, expected %lld%s", c->file, name,
                       (long long)d->amount_cents, (long long)json_integer_value (amount), why);
    const char *id;
    json_t *want;
    json_object_foreach (json_object_get (expect, "criteria"), id, want)
    {
        const Qp__V1__CriterionResult *cr = NULL;
        for (size_t k = 0; k < d->n_criteria && !cr; k++)
            if (!strcmp (d->criteria[k]->criterion, id))
                cr = d->criteria[k];
        ck_assert_msg (cr, "%s: case \"%s\": no criterion %s in the decision%s", c->file, name, id,
                       why);
        const ProtobufCEnumValue *got = protobuf_c_enum_descriptor_get_value (
            &qp__v1__criterion_outcome__descriptor, cr->outcome);
        ck_assert_msg (got && !strcmp (got->name, json_string_value (want)),
                       "%s: case \"%s\": criterion %s is %s, expected %s%s", c->file, name, id,
                       got ? got->name : "?", json_string_value (want), why);
        if (cr->outcome == QP__V1__CRITERION_OUTCOME__MISSING)
            ck_assert_msg (cr->missing_field && *cr->missing_field,
                           "%s: case \"%s\": criterion %s is MISSING without naming the field",
                           c->file, name, id);
    }
    /* "reasons": {criterion: text the criterion's reason must contain}. */
    json_object_foreach (json_object_get (expect, "reasons"), id, want)
    {
        const Qp__V1__CriterionResult *cr = NULL;
        for (size_t k = 0; k < d->n_criteria && !cr; k++)
            if (!strcmp (d->criteria[k]->criterion, id))
                cr = d->criteria[k];
        ck_assert_msg (cr && cr->reason && strstr (cr->reason, json_string_value (want)),
                       "%s: case \"%s\": the reason of %s does not say \"%s\"%s", c->file, name, id,
                       json_string_value (want), why);
    }
    json_t *mf = json_object_get (expect, "missing_field");
    if (mf) {
        bool found = false;
        for (size_t k = 0; k < d->n_criteria; k++)
            found |= d->criteria[k]->missing_field &&
                     !strcmp (d->criteria[k]->missing_field, json_string_value (mf));
        ck_assert_msg (found, "%s: case \"%s\": no criterion names %s as missing%s", c->file, name,
                       json_string_value (mf), why);
    }
    /* The compact decision (stored and published) says the same: outcome, amount, and
     * exactly the criteria not met, without text. */
    Qp__V1__SchemeDecision *k = rules_decide (scheme, dossier, day, &facts);
    ck_assert_msg (k->outcome == d->outcome && k->amount_cents == d->amount_cents,
                   "%s: case \"%s\": compact %s %lld, explained %s %lld", c->file, name,
                   s_outcome_name (k->outcome), (long long)k->amount_cents,
                   s_outcome_name (d->outcome), (long long)d->amount_cents);
    ck_assert_ptr_null (k->scheme_name);
    ck_assert_int_eq (k->n_criteria, 0);
    for (size_t j = 0; j < scheme->n_criteria; j++) {
        const Qp__V1__CriterionResult *full = NULL;
        for (size_t x = 0; x < d->n_criteria && !full; x++)
            if (!strcmp (d->criteria[x]->criterion, scheme->criteria[j].id))
                full = d->criteria[x];
        if (!full) /* not in force: no criterion evaluated, no bit */
            continue;
        ck_assert_msg (rules_compact_outcome (scheme, k, full->criterion) == full->outcome,
                       "%s: case \"%s\": compact criterion %s differs", c->file, name,
                       full->criterion);
    }
    qp__v1__scheme_decision__free_unpacked (k, NULL);
    qp__v1__scheme_decision__free_unpacked (d, NULL);
    protobuf_c_message_free_unpacked (&dossier->base, NULL);
}
END_TEST

/* Reads every case file; a file that does not parse fails the whole run. */
static void s_load (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d) {
        fprintf (stderr, "cannot open %s\n", dir);
        exit (1);
    }
    struct dirent *de;
    while ((de = readdir (d))) {
        size_t len = strlen (de->d_name);
        if (len < 6 || strcmp (de->d_name + len - 5, ".json"))
            continue;
        char path[1400];
        if (snprintf (path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        json_error_t jerr;
        json_t *doc = json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            fprintf (stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
            exit (1);
        }
        json_t *cases = json_is_array (doc) ? doc : json_object_get (doc, "cases");
        size_t i;
        json_t *k;
        json_array_foreach (cases, i, k)
        {
            s_cases = realloc (s_cases, (s_n + 1) * sizeof *s_cases);
            assert (s_cases);
            case_t *c = &s_cases[s_n++];
            memset (c, 0, sizeof *c);
            snprintf (c->file, sizeof c->file, "tests/rules/%s", de->d_name);
            const char *scheme = json_string_value (json_object_get (doc, "scheme"));
            snprintf (c->scheme, sizeof c->scheme, "%.*s",
                      scheme ? (int)strlen (scheme) : (int)len - 5, scheme ? scheme : de->d_name);
            c->base = json_object_get (doc, "base");
            c->facts = json_object_get (doc, "facts");
            c->kase = k;
        }
        s_docs = realloc (s_docs, (s_n_docs + 1) * sizeof *s_docs);
        assert (s_docs);
        s_docs[s_n_docs++] = doc;
    }
    closedir (d);
}

int main (void)
{
    char dir[1024];
    snprintf (dir, sizeof dir, "%s/tests/rules", qp_test_source_dir ());
    s_load (dir);
    if (s_n == 0) {
        fprintf (stderr, "no rule case in %s\n", dir);
        return 1;
    }
    Suite *s = suite_create ("rule_cases");
    TCase *tc = tcase_create ("cases");
    tcase_add_checked_fixture (tc, qp_test_catalogue_setup, qp_test_catalogue_teardown);
    tcase_add_loop_test (tc, test_case, 0, (int)s_n);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    printf ("%zu rule cases, %d failed\n", s_n, failed);
    srunner_free (sr);
    for (size_t i = 0; i < s_n_docs; i++)
        json_decref (s_docs[i]);
    free (s_docs);
    free (s_cases);
    return failed ? 1 : 0;
}
