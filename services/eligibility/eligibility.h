/* The eligibility service: for each received dossier, decides every catalogue scheme
 * (eligible / not eligible / information missing, with the reason for each criterion),
 * moves the dossier RECEIVED -> ELIGIBLE or NOT_ELIGIBLE, and hands eligible dossiers to
 * funding. A sweeper picks up dossiers whose RECEIVED lease expired (lost message, dead
 * worker). */
#ifndef ELIGIBILITY_H
#define ELIGIBILITY_H
#include "qp_catalogue.h"
#include "qp_qpv.h"
#include "qp_redis.h"
#include "qp_service.h"
#include "rules.h"

/* Where the QPVs are: the official contours (NULL: only declared codes are known) and the
 * distance within which a point on a boundary street counts as inside. */
typedef struct {
    const qp_qpv_index_t *index;
    double tolerance_m;
} eligibility_geo_t;

/* DossierReceived messages decided together (two Redis round trips for the batch). */
#define ELIGIBILITY_BATCH 256

typedef struct {
    qp_service_t *service;
    qp_redis_t *redis;
    qp_catalogue_t *catalogue;
    const char *catalogue_dir; /* reloaded from here on SIGHUP */
    qp_qpv_index_t *qpv;       /* NULL: declared QPV codes only */
    const char *qpv_contours;  /* GeoJSON path, reloaded on SIGHUP with the catalogue */
    const char *qpv_list;      /* optional list CSV */
    double tolerance_m;
    /* The DossierReceived messages of the burst being read (owned), decided together by
     * eligibility_flush at the end of the burst or when ELIGIBILITY_BATCH are waiting. */
    qp_message_t received[ELIGIBILITY_BATCH];
    size_t n_received;
} eligibility_t;

/* Loads the QPV contours (and list) into self->qpv; on error the index in force stays.
 * Returns 0, or -1 (logged, and in err when not NULL). */
int eligibility_load_qpv (eligibility_t *self, qp_error_t *err);

/* Registers the handlers, the sweeper and the SIGHUP reload on self->service. */
void eligibility_register (eligibility_t *self);

/* Decides the DossierReceived messages waiting (the service calls it at the end of each
 * burst it reads; main calls it once more after the run loop stops). */
void eligibility_flush (eligibility_t *self);

/* Loads the catalogue again from self->catalogue_dir. A broken catalogue is refused with
 * the file and the reason (logged, and in err when not NULL) and the one in force stays.
 * Returns 0 when the new catalogue is in force. */
int eligibility_reload (eligibility_t *self, qp_error_t *err);

/* Where the business and the holder's residence are: verified on the contours when the
 * dossier has coordinates and geo an index, else the declared QPV codes ("declared, not
 * verified"). Fills the QPV facts and e's business_location and residence_location. */
void eligibility_locate (const eligibility_geo_t *geo, const Qp__V1__Dossier *dossier,
                         Qp__V1__EligibilityDecided *e, rules_facts_t *facts);

/* Decides every scheme for a dossier (pure: geo may be NULL; facts the caller knows
 * beyond the dossier, e.g. the PHQ history, may be NULL). The decision is compact (what is
 * stored and published: rules_decide per scheme, and the facts known). Returns a new
 * message (free with qp__v1__eligibility_decided__free_unpacked (m, NULL)). */
Qp__V1__EligibilityDecided *eligibility_decide (const qp_catalogue_t *catalogue,
                                                const eligibility_geo_t *geo,
                                                const char *dossier_id,
                                                const Qp__V1__Dossier *dossier,
                                                const rules_facts_t *known);

/* The full explanation of a stored compact decision: the dossier decided again on its
 * date with the facts stored, every criterion explained (rules_evaluate), the stored
 * locations. matches: the explanation gives the stored outcomes, amounts, catalogue
 * versions and criteria not met; else note says what differs (the catalogue files
 * changed since). A decision stored in full (before the compact form) is returned as
 * it is. Returns a new message. */
Qp__V1__EligibilityDecided *eligibility_explain (const qp_catalogue_t *catalogue,
                                                 const eligibility_geo_t *geo,
                                                 const Qp__V1__Dossier *dossier,
                                                 const Qp__V1__EligibilityDecided *stored,
                                                 bool *matches, char *note, size_t note_size);

/* The qp.v1.Fact of a fact. */
Qp__V1__Fact eligibility_fact_wire (qp_fact_t fact);
#endif
