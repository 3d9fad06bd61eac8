/* Honour-loan terms: the bounds (from data/funding.json), the leverage (bank loan per euro
 * of honour loan), computed once when the partner approves and stored with the decision,
 * and the month-by-month repayment schedule at 0 % after the deferral, derived from the
 * stored terms when asked (a stored schedule was ~1 KB per leg in Redis, issue 8). */
#ifndef FUNDING_TERMS_H
#define FUNDING_TERMS_H
#include "qp_message.h"
#include "qp/v1/funding.pb-c.h"

typedef struct {
    uint32_t duration_min, duration_max;  /* repayment months */
    uint32_t deferral_min, deferral_max;
    uint32_t rate_bp;                     /* the honour loan's rate: 0 */
} terms_bounds_t;

/* Checks approved terms against the bounds. Returns 0, or -1 with err naming the field. */
int terms_check (const terms_bounds_t *b, const Qp__V1__LoanTerms *t, qp_error_t *err);

/* Fills out (init'd by the caller; free with terms_clear) from approved terms: amount,
 * duration, deferral, rate, bank loan, leverage and the decision date; no schedule (what
 * is stored: terms_schedule derives it). */
void terms_honour_loan (const Qp__V1__LoanTerms *t, int64_t bank_loan_cents, int32_t decided_on,
                        Qp__V1__HonourLoanTerms *out);
/* Adds the repayment schedule to stored terms that have none (a leg stored before issue 8
 * keeps the one it holds): it starts the month after the decision date plus the deferral;
 * each month pays amount / duration, the first months carry the remainder cents. The
 * entries are malloc'd: freed by terms_clear, or with the leg by
 * qp__v1__funding_leg__free_unpacked (NULL allocator). Returns 0, or -1 when the terms
 * lack the decision date or the duration (nothing added). */
int terms_schedule (Qp__V1__HonourLoanTerms *h);
/* The leg's honour-loan terms with their schedule (terms_schedule on leg->honour_loan):
 * what a reader of a stored leg calls. 0, or -1 when the leg has no honour-loan terms. */
int terms_leg_schedule (Qp__V1__FundingLeg *leg);
void terms_clear (Qp__V1__HonourLoanTerms *t);
#endif
