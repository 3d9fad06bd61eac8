/* The partner SDK: a partner component in C is a decision function plus a definition.
 * qp_partner_main connects to the bus's partner endpoint as a worker of
 * "partner.<AGENCY>", announces itself (PartnerHello), reports its status at a regular
 * interval (PartnerStatus), and answers every FundingRequest with a PartnerDecision sent
 * to funding. The protocol is in docs/partner-protocol.md; any language can speak it. */
#ifndef QP_PARTNER_H
#define QP_PARTNER_H
#include "qp_message.h"

typedef struct {
    Qp__V1__PartnerOutcome outcome;
    int64_t amount_cents;        /* approved amount, ≤ the amount asked */
    uint32_t duration_months;
    uint32_t deferral_months;
    uint32_t rate_bp;
    char reason[256];
    const char *information_needed[8];
    size_t n_information_needed;
} qp_partner_answer_t;

/* Decides one request. Must be a pure function of the request: the same request (same
 * request_id) must get the same answer, which makes the component idempotent. answer is
 * pre-filled with APPROVED and the asked terms. */
typedef void (qp_partner_decide_fn) (const Qp__V1__FundingRequest *request,
                                     qp_partner_answer_t *answer, void *arg);

typedef struct {
    const char *program;          /* "qp-partner-bpifrance" */
    Qp__V1__Agency agency;
    const char *component_name;   /* default component id too: "bpifrance-default" */
    const char *version;
    const char *const *schemes;   /* NULL-terminated: schemes this component decides */
    uint32_t capacity;            /* requests it can have in flight */
    qp_partner_decide_fn *decide;
    void *arg;
} qp_partner_t;

/* Parses flags and QP_* environment, runs until SIGTERM/SIGINT. Returns the exit code. */
int qp_partner_main (const qp_partner_t *def, int argc, char **argv);
#endif
