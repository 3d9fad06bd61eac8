/* qp-partner-bpifrance: Bpifrance's default component. It decides every scheme the
 * catalogue files under Bpifrance, each with one documented rule that Bpifrance would
 * replace with its own:
 * - honour loans (Prêt d'honneur Quartiers, Prêt d'honneur Solidaire): approve when the
 *   project holder brings at least 10 % of the financing need, rounding the amount down
 *   to the hundred euros; ask for the financing plan when it is missing;
 * - guarantees (Bpifrance Garantie Création, Garantie Égalité Territoires): approve when
 *   there is a bank loan to guarantee, decline otherwise;
 * - Adie microcredit: approve the amount asked (eligibility checked the cap). */
#include "qp_partner.h"
#include <string.h>

#define MIN_CONTRIBUTION_PCT 10

static void s_honour_loan (const Qp__V1__FundingRequest *rq, qp_partner_answer_t *a)
{
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

static void s_decide (const Qp__V1__FundingRequest *rq, qp_partner_answer_t *a, void *arg)
{
    (void) arg;
    const char *scheme = rq->scheme_id ? rq->scheme_id : "";
    if (!strcmp (scheme, "phq") || !strcmp (scheme, "phs"))
        s_honour_loan (rq, a);
    else if (!strcmp (scheme, "bpifrance-garantie-creation") ||
             !strcmp (scheme, "garantie-egalite-territoires")) {
        if (!rq->summary || !rq->summary->has_bank_loan_cents || rq->summary->bank_loan_cents <= 0) {
            a->outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
            snprintf (a->reason, sizeof a->reason, "no bank loan to guarantee");
        }
    }
    /* adie-microcredit: approved as asked. */
}

int main (int argc, char **argv)
{
    static const char *const schemes[] = {"phq",
                                          "phs",
                                          "bpifrance-garantie-creation",
                                          "garantie-egalite-territoires",
                                          "adie-microcredit",
                                          NULL};
    qp_partner_t def = {"qp-partner-bpifrance", QP__V1__AGENCY__BPIFRANCE, "bpifrance-default",
                        "1.1.0", schemes, 64, s_decide, NULL};
    return qp_partner_main (&def, argc, argv);
}
