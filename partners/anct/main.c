/* qp-partner-anct: ANCT's default component. ANCT leads the programme and funds
 * engineering for the territories; the default rule, which ANCT would replace: approve
 * requests from a Quartiers Productifs territory, decline the others. */
#include "qp_partner.h"
#include <string.h>

static void s_decide (const Qp__V1__FundingRequest *rq, qp_partner_answer_t *a, void *arg)
{
    (void) arg;
    const char *t = rq->summary ? rq->summary->territory : NULL;
    if (!t || !*t || !strcmp (t, "hors-programme")) {
        a->outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
        snprintf (a->reason, sizeof a->reason, "not in a Quartiers Productifs territory");
    }
}

int main (int argc, char **argv)
{
    static const char *const schemes[] = {"anct-ingenierie", NULL};
    qp_partner_t def = {"qp-partner-anct", QP__V1__AGENCY__ANCT, "anct-default", "1.0.0",
                        schemes, 32, s_decide, NULL};
    return qp_partner_main (&def, argc, argv);
}
