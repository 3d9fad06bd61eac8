/* Funding orchestration: for an eligible dossier, reserves the amount in the scheme's
 * budget envelope (Redis, atomic, once per dossier), asks the partner component of the
 * agency that owns the scheme, and commits or releases on its decision. Partner
 * components' hello and status are cached in Redis with a TTL. A sweeper re-dispatches
 * dossiers whose lease expired and gives up on a partner that stays silent. */
#ifndef FUNDING_H
#define FUNDING_H
#include "qp_catalogue.h"
#include "qp_redis.h"
#include "qp_service.h"

typedef struct {
    qp_service_t *service;
    qp_redis_t *redis;
    qp_catalogue_t *catalogue;
    long max_attempts;  /* requests sent to a silent partner before the dossier is UNFUNDED */
} funding_t;

/* Creates the envelopes of envelopes.json that Redis does not hold yet (never resets one).
 * Returns 0, or -1 with err when the file is broken. */
int funding_load_envelopes (funding_t *self, const char *path, qp_error_t *err);

void funding_register (funding_t *self);

/* Work service name of an agency's partner components: "partner.BPIFRANCE". */
void funding_partner_service (Qp__V1__Agency agency, char *out, size_t size);
#endif
