/* funding/terms: the honour loan's repayment schedule, derived from the stored terms,
 * equals the schedule that was stored with the leg before issue 8, cent for cent. */
#include "funding/terms.h"
#include "qp_date.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The schedule as qp-funding computed and stored it before issue 8 (terms.c at 9e6eecd),
 * kept here verbatim as the reference. */
static void s_old_schedule (const Qp__V1__LoanTerms *t, int32_t decided_on,
                            Qp__V1__HonourLoanTerms *out)
{
    uint32_t n = t->duration_months ? t->duration_months : 1;
    char day[11];
    int year, month, mday;
    qp_date_to_civil (decided_on, &year, &month, &mday);
    int64_t base = t->amount_cents / n, extra = t->amount_cents % n, left = t->amount_cents;
    out->n_schedule = n;
    out->schedule = calloc (n, sizeof *out->schedule);
    for (uint32_t k = 0; k < n; k++) {
        Qp__V1__Repayment *r = calloc (1, sizeof *r);
        qp__v1__repayment__init (r);
        uint32_t m = t->deferral_months + k + 1;
        int months = (month - 1) + (int) m;
        qp_date_format (qp_date_from_civil (year + months / 12, months % 12 + 1, 1), day);
        r->has_month = true, r->month = m;
        r->due_on = strdup (day);
        r->has_amount_cents = true, r->amount_cents = base + ((int64_t) k < extra ? 1 : 0);
        left -= r->amount_cents;
        r->has_remaining_cents = true, r->remaining_cents = left;
        out->schedule[k] = r;
    }
}

static void s_assert_same (const Qp__V1__HonourLoanTerms *a, const Qp__V1__HonourLoanTerms *b)
{
    ck_assert_uint_eq (a->n_schedule, b->n_schedule);
    for (size_t k = 0; k < a->n_schedule; k++) {
        const Qp__V1__Repayment *x = a->schedule[k], *y = b->schedule[k];
        ck_assert_uint_eq (x->month, y->month);
        ck_assert_str_eq (x->due_on, y->due_on);
        ck_assert_int_eq (x->amount_cents, y->amount_cents);
        ck_assert_int_eq (x->remaining_cents, y->remaining_cents);
        ck_assert (x->has_month && x->has_amount_cents && x->has_remaining_cents);
    }
}

/* Every duration and deferral the bounds allow, amounts with and without remainder cents,
 * decisions in every month (December, leap days). */
START_TEST (test_derived_equals_old)
{
    static const int64_t amounts[] = {100, 130000, 760000, 999999, 1500000, 4700001};
    static const char *days[] = {"2024-01-31", "2024-02-29", "2024-12-01", "2024-12-31",
                                 "2025-06-15", "2026-11-30", "2027-03-01"};
    size_t checked = 0;
    for (uint32_t dur = 12; dur <= 60; dur += 1)
        for (uint32_t def = 0; def <= 24; def += 3)
            for (size_t a = 0; a < sizeof amounts / sizeof *amounts; a++)
                for (size_t d = 0; d < sizeof days / sizeof *days; d++) {
                    Qp__V1__LoanTerms t = QP__V1__LOAN_TERMS__INIT;
                    t.has_amount_cents = true, t.amount_cents = amounts[a];
                    t.has_duration_months = true, t.duration_months = dur;
                    t.has_deferral_months = true, t.deferral_months = def;
                    int32_t on;
                    ck_assert (qp_date_parse (days[d], &on));
                    Qp__V1__HonourLoanTerms stored = QP__V1__HONOUR_LOAN_TERMS__INIT;
                    terms_honour_loan (&t, 2 * amounts[a], on, &stored);
                    ck_assert_uint_eq (stored.n_schedule, 0); /* not stored any more */
                    ck_assert_str_eq (stored.decided_on, days[d]);
                    ck_assert_int_eq (terms_schedule (&stored), 0);
                    Qp__V1__HonourLoanTerms old = QP__V1__HONOUR_LOAN_TERMS__INIT;
                    s_old_schedule (&t, on, &old);
                    s_assert_same (&stored, &old);
                    ck_assert_int_eq (stored.schedule[stored.n_schedule - 1]->remaining_cents, 0);
                    terms_clear (&stored);
                    terms_clear (&old);
                    checked++;
                }
    ck_assert_uint_gt (checked, 1000);
}
END_TEST

/* Legs stored with their schedule before issue 8 (a bench run's Redis): the stored
 * schedule is kept as it is, and the one derived from the same terms is identical. */
START_TEST (test_old_records)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/tests/data/funding/legs-with-schedule.hex",
              qp_test_source_dir ());
    FILE *f = fopen (path, "r");
    ck_assert_msg (f, "cannot open %s", path);
    char line[8192];
    size_t legs = 0;
    while (fgets (line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        size_t n = strcspn (line, "\r\n") / 2;
        uint8_t *bin = malloc (n);
        for (size_t i = 0; i < n; i++)
            ck_assert (sscanf (line + 2 * i, "%2hhx", &bin[i]) == 1);
        Qp__V1__FundingLeg *leg = qp__v1__funding_leg__unpack (NULL, n, bin);
        free (bin);
        ck_assert_ptr_nonnull (leg);
        ck_assert_ptr_nonnull (leg->honour_loan);
        size_t stored = leg->honour_loan->n_schedule;
        ck_assert_uint_gt (stored, 0);
        Qp__V1__Repayment *first = leg->honour_loan->schedule[0];
        ck_assert_int_eq (terms_leg_schedule (leg), 0); /* an old record: kept */
        ck_assert_uint_eq (leg->honour_loan->n_schedule, stored);
        ck_assert_ptr_eq (leg->honour_loan->schedule[0], first);

        /* The same terms without the schedule, as stored now. */
        Qp__V1__HonourLoanTerms now = *leg->honour_loan;
        now.n_schedule = 0, now.schedule = NULL;
        ck_assert_int_eq (terms_schedule (&now), 0);
        s_assert_same (&now, leg->honour_loan);
        for (size_t k = 0; k < now.n_schedule; k++) {
            free (now.schedule[k]->due_on);
            free (now.schedule[k]);
        }
        free (now.schedule);
        qp__v1__funding_leg__free_unpacked (leg, NULL);
        legs++;
    }
    fclose (f);
    ck_assert_uint_eq (legs, 3);
}
END_TEST

/* Terms without a decision date or a duration give no schedule (and add nothing). */
START_TEST (test_incomplete_terms)
{
    Qp__V1__HonourLoanTerms h = QP__V1__HONOUR_LOAN_TERMS__INIT;
    h.has_amount_cents = true, h.amount_cents = 100000;
    h.has_duration_months = true, h.duration_months = 24;
    ck_assert_int_eq (terms_schedule (&h), -1);
    h.decided_on = "2025-13-01";
    ck_assert_int_eq (terms_schedule (&h), -1);
    h.decided_on = "2025-12-01";
    h.duration_months = 0;
    ck_assert_int_eq (terms_schedule (&h), -1);
    ck_assert_uint_eq (h.n_schedule, 0);
    Qp__V1__FundingLeg leg = QP__V1__FUNDING_LEG__INIT;
    ck_assert_int_eq (terms_leg_schedule (&leg), -1);
    ck_assert_int_eq (terms_leg_schedule (NULL), -1);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("terms");
    TCase *tc = tcase_create ("terms");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_derived_equals_old);
    tcase_add_test (tc, test_old_records);
    tcase_add_test (tc, test_incomplete_terms);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
