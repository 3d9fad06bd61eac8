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
    const char *catalogue_dir; /* reloaded from here on SIGHUP */
} eligibility_t;

/* Registers the handlers, the sweeper and the SIGHUP reload on self->service. */
void eligibility_register (eligibility_t *self);

/* Loads the catalogue again from self->catalogue_dir. A broken catalogue is refused with
 * the file and the reason (logged, and in err when not NULL) and the one in force stays.
 * Returns 0 when the new catalogue is in force. */
int eligibility_reload (eligibility_t *self, qp_error_t *err);

/* Decides every scheme for a dossier (pure). Returns a new message (free with
 * qp__v1__eligibility_decided__free_unpacked (m, NULL)). */
Qp__V1__EligibilityDecided *eligibility_decide (const qp_catalogue_t *catalogue,
                                                const char *dossier_id,
                                                const Qp__V1__Dossier *dossier);
#endif
