/* qp-partner-bdt: Banque des Territoires' default component. It co-invests in local
 * retail premises; the default rule, which the Banque des Territoires would replace:
 * approve retail-and-crafts projects, decline the other axes. */
#include "qp_partner.h"

static void s_decide (const Qp__V1__FundingRequest *rq, qp_partner_answer_t *a, void *arg)
{
    (void) arg;
    if (!rq->summary || rq->summary->axis != QP__V1__AXIS__RETAIL_AND_CRAFTS) {
        a->outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
        snprintf (a->reason, sizeof a->reason, "only retail and crafts projects are co-invested");
    }
}

int main (int argc, char **argv)
{
    static const char *const schemes[] = {"bdt-commerce", NULL};
    qp_partner_t def = {"qp-partner-bdt", QP__V1__AGENCY__BANQUE_DES_TERRITOIRES, "bdt-default",
                        "1.0.0", schemes, 32, s_decide, NULL};
    return qp_partner_main (&def, argc, argv);
}
