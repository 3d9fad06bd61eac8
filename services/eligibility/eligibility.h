/* The eligibility service: for each received dossier, decides every catalogue scheme
 * (eligible / not eligible / information missing, with the reason for each criterion),
 * moves the dossier RECEIVED -> ELIGIBLE or NOT_ELIGIBLE, and hands eligible dossiers to
 * funding. A sweeper picks up dossiers whose RECEIVED lease expired (lost message, dead
 * worker). */
#ifndef ELIGIBILITY_H
#define ELIGIBILITY_H
#include "qp_catalogue.h"
#include "qp_redis.h"
#include "qp_service.h"

typedef struct {
    qp_service_t *service;
    qp_redis_t *redis;
    qp_catalogue_t *catalogue;
} eligibility_t;

/* Registers the handlers and the sweeper on self->service. */
void eligibility_register (eligibility_t *self);

/* Decides every scheme for a dossier (pure). Returns a new message (free with
 * qp__v1__eligibility_decided__free_unpacked (m, NULL)). */
Qp__V1__EligibilityDecided *eligibility_decide (const qp_catalogue_t *catalogue,
                                                const char *dossier_id,
                                                const Qp__V1__Dossier *dossier);
#endif
