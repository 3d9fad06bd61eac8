/* qp-partner-bpifrance: Bpifrance's default component. It decides the Prêt d'honneur
 * Quartiers with one documented rule that Bpifrance would replace with its own: approve
 * when the project holder brings at least 10 % of the financing need, rounding the amount
 * down to the hundred euros; ask for the financing plan when it is missing. */
#include "qp_partner.h"

#define MIN_CONTRIBUTION_PCT 10

static void s_decide (const Qp__V1__FundingRequest *rq, qp_partner_answer_t *a, void *arg)
{
    (void) arg;
    const Qp__V1__DossierSummary *s = rq->summary;
    if (!s || !s->has_financing_need_cents || !s->has_personal_contribution_cents) {
        a->outcome = QP__V1__PARTNER_OUTCOME__INFORMATION_NEEDED;
        snprintf (a->reason, sizeof a->reason, "the financing plan is incomplete");
        a->information_needed[a->n_information_needed++] = "summary.financing_need_cents";
        a->information_needed[a->n_information_needed++] = "summary.personal_contribution_cents";
        return;
    }
    if (s->personal_contribution_cents * 100 < s->financing_need_cents * MIN_CONTRIBUTION_PCT) {
        a->outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
        snprintf (a->reason, sizeof a->reason,
                  "personal contribution below %d %% of the financing need", MIN_CONTRIBUTION_PCT);
        return;
    }
    a->amount_cents = rq->amount_asked_cents / 10000 * 10000;
    if (a->amount_cents == 0)
        a->amount_cents = rq->amount_asked_cents;
}

int main (int argc, char **argv)
{
    static const char *const schemes[] = {"phq", NULL};
    qp_partner_t def = {"qp-partner-bpifrance", QP__V1__AGENCY__BPIFRANCE, "bpifrance-default",
                        "1.0.0", schemes, 64, s_decide, NULL};
    return qp_partner_main (&def, argc, argv);
}
