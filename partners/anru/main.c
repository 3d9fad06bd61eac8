/* qp-partner-anru: ANRU's default component. ANRU funds business premises and shops
 * inside urban renewal projects (NPNRU); the default rule, which ANRU would replace:
 * approve when the project is located in a QPV, decline otherwise. */
#include "qp_partner.h"

static void s_decide (const Qp__V1__FundingRequest *rq, qp_partner_answer_t *a, void *arg)
{
    (void) arg;
    if (!rq->summary || !rq->summary->qpv_code || !*rq->summary->qpv_code) {
        a->outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
        snprintf (a->reason, sizeof a->reason, "the premises are not in a QPV");
    }
}

int main (int argc, char **argv)
{
    static const char *const schemes[] = {"anru-locaux", NULL};
    qp_partner_t def = {"qp-partner-anru", QP__V1__AGENCY__ANRU, "anru-default", "1.0.0",
                        schemes, 32, s_decide, NULL};
    return qp_partner_main (&def, argc, argv);
}
