/* Honour-loan terms, and the repayment schedule derived from them. */
#include "terms.h"
#include "qp_date.h"
#include <assert.h>
#include <string.h>

int terms_check (const terms_bounds_t *b, const Qp__V1__LoanTerms *t, qp_error_t *err)
{
    if (!t || !t->has_duration_months || t->duration_months < b->duration_min ||
        t->duration_months > b->duration_max) {
        qp_error_set (err, "invalid_field", "terms.duration_months",
                      "an honour loan is repaid over %u to %u months (got %u)", b->duration_min,
                      b->duration_max, t && t->has_duration_months ? t->duration_months : 0);
        return -1;
    }
    if (t->deferral_months < b->deferral_min || t->deferral_months > b->deferral_max) {
        qp_error_set (err, "invalid_field", "terms.deferral_months",
                      "an honour loan's deferral is %u to %u months (got %u)", b->deferral_min,
                      b->deferral_max, t->deferral_months);
        return -1;
    }
    if (t->rate_bp != b->rate_bp) {
        qp_error_set (err, "invalid_field", "terms.rate_bp",
                      "an honour loan's rate is %u bp (got %u)", b->rate_bp, t->rate_bp);
        return -1;
    }
    return 0;
}

void terms_honour_loan (const Qp__V1__LoanTerms *t, int64_t bank_loan_cents, int32_t decided_on,
                        Qp__V1__HonourLoanTerms *out)
{
    uint32_t n = t->duration_months ? t->duration_months : 1;
    out->has_amount_cents = true, out->amount_cents = t->amount_cents;
    out->has_duration_months = true, out->duration_months = n;
    out->has_deferral_months = true, out->deferral_months = t->deferral_months;
    out->has_rate_bp = true, out->rate_bp = t->rate_bp;
    out->has_bank_loan_cents = true, out->bank_loan_cents = bank_loan_cents;
    out->has_leverage_permille = true;
    out->leverage_permille =
        t->amount_cents > 0 ? (uint32_t) (bank_loan_cents * 1000 / t->amount_cents) : 0;
    char day[11];
    qp_date_format (decided_on, day);
    out->decided_on = strdup (day);
    assert (out->decided_on);
}

int terms_schedule (Qp__V1__HonourLoanTerms *h)
{
    if (h->n_schedule)
        return 0; /* stored before issue 8: kept as it was */
    int32_t decided_on;
    if (!h->decided_on || !qp_date_parse (h->decided_on, &decided_on) || !h->has_duration_months ||
        !h->duration_months)
        return -1;
    uint32_t n = h->duration_months;
    int year, month, mday;
    qp_date_to_civil (decided_on, &year, &month, &mday);
    int64_t base = h->amount_cents / n, extra = h->amount_cents % n, left = h->amount_cents;
    h->schedule = calloc (n, sizeof *h->schedule);
    assert (h->schedule);
    for (uint32_t k = 0; k < n; k++) {
        Qp__V1__Repayment *r = calloc (1, sizeof *r);
        assert (r);
        qp__v1__repayment__init (r);
        uint32_t m = h->deferral_months + k + 1;
        int months = (month - 1) + (int) m;
        char day[11];
        qp_date_format (qp_date_from_civil (year + months / 12, months % 12 + 1, 1), day);
        r->has_month = true, r->month = m;
        r->due_on = strdup (day);
        assert (r->due_on);
        r->has_amount_cents = true, r->amount_cents = base + ((int64_t) k < extra ? 1 : 0);
        left -= r->amount_cents;
        r->has_remaining_cents = true, r->remaining_cents = left;
        h->schedule[k] = r;
    }
    h->n_schedule = n;
    return 0;
}

int terms_leg_schedule (Qp__V1__FundingLeg *leg)
{
    return leg && leg->honour_loan ? terms_schedule (leg->honour_loan) : -1;
}

void terms_clear (Qp__V1__HonourLoanTerms *t)
{
    for (size_t k = 0; k < t->n_schedule; k++) {
        free (t->schedule[k]->due_on);
        free (t->schedule[k]);
    }
    free (t->schedule);
    free (t->decided_on);
    qp__v1__honour_loan_terms__init (t);
}
