/* Honour-loan terms: the bounds (from data/funding.json), the month-by-month repayment
 * schedule at 0 % after the deferral, and the leverage (bank loan per euro of honour
 * loan), computed once when the partner approves and stored with the decision. */
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

/* Fills out (init'd by the caller; free with terms_clear) from approved terms: the
 * schedule starts the month after the decision date plus the deferral; each month pays
 * amount / duration, the first months carry the remainder cents. */
void terms_honour_loan (const Qp__V1__LoanTerms *t, int64_t bank_loan_cents, int32_t decided_on,
                        Qp__V1__HonourLoanTerms *out);
void terms_clear (Qp__V1__HonourLoanTerms *t);
#endif
