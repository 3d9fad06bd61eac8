/* Funding orchestration: for an eligible dossier, a funding plan with one leg per
 * eligible scheme (tax exemptions granted, the others reserved in their budget
 * envelope and asked of a live partner component of the scheme's agency, chosen from
 * the partner cache in Redis); per-partner timeout, retries with exponential backoff and
 * deterministic jitter up to a maximum; compensation when a leg the plan depends on
 * fails; one final outcome per dossier, every step in the dossier's history.
 *
 *   qp:{ID}:f          hash: legs (comma list), SCHEME (packed qp.v1.FundingLeg), SCHEME:v
 *   qp:funding:due     sorted set dossier -> wall-clock time of its next funding action
 *   qp:partner:C       hash (TTL 3 status intervals): agency, name, version, schemes, ...
 *   qp:route:{SCHEME}  sorted set "AGENCY/component" -> live until (ms)
 *
 * The protocol partners speak is docs/partner-protocol.md. */
#ifndef FUNDING_H
#define FUNDING_H
#include "qp_catalogue.h"
#include "qp_redis.h"
#include "qp_service.h"
#include "terms.h"
#include <jansson.h>

#define FUNDING_BATCH 512 /* messages handled together (one bus window, BURST_MAX in
                             qp_service.c): one Redis round trip per step */
/* Legs of one plan: one per scheme of the catalogue a dossier is eligible to, so a
 * catalogue with more schemes than this is refused at start (funding_check_catalogue)
 * rather than a plan silently losing its last legs. */
#define FUNDING_MAX_LEGS 16

/* A message kept until the batch it belongs to is handled. */
typedef struct {
    zframe_t *from;    /* the sender (to answer an error), or NULL */
    qp_message_t msg;  /* owned */
} funding_queued_t;

typedef struct {
    qp_service_t *service;
    qp_redis_t *redis;
    qp_catalogue_t *catalogue;
    long max_attempts;        /* requests (or routing tries) per leg before it fails */
    json_t *config;           /* data/funding.json */
    long timeout_ms;          /* default partner timeout */
    long backoff_base_ms, backoff_max_ms;
    long reservation_ttl_ms;  /* a reservation not settled by then is released */
    long no_component_wait_ms; /* a leg with no live component waits this long, then fails */
    terms_bounds_t honour_loan;
    /* How far behind this instance's inbox is (now - the sending time of the last
     * PartnerStatus handled): answers queued behind a burst are not timeouts. */
    int64_t lag_ms;
    char **envelope_schemes;  /* schemes with an envelope (for the deadline sweeper) */
    size_t n_envelope_schemes;
    /* Messages of the burst being read, handled together by funding_flush (at the end of
     * the burst, every millisecond at most, or when FUNDING_BATCH are waiting). */
    funding_queued_t decided[FUNDING_BATCH], answers[FUNDING_BATCH];
    size_t n_decided, n_answers;
    unsigned sweeps;
} funding_t;

/* Creates the envelopes and drawing rights of envelopes.json that Redis does not hold
 * yet (never resets one). Returns 0, or -1 with err when the file is broken. */
int funding_load_envelopes (funding_t *self, const char *path, qp_error_t *err);
/* Reads data/funding.json (timeouts, backoff, kinds, anchors, honour-loan bounds).
 * Returns 0, or -1 with err. */
int funding_load_config (funding_t *self, const char *path, qp_error_t *err);
/* 0 when every plan the catalogue allows fits FUNDING_MAX_LEGS, else -1 with err set
 * ("catalogue_too_large": how many schemes, the limit). */
int funding_check_catalogue (const qp_catalogue_t *catalogue, qp_error_t *err);
void funding_clear (funding_t *self);

void funding_register (funding_t *self);
/* Handles the messages waiting for their batch (also before the service stops). */
void funding_flush (funding_t *self);
/* Counts an error in qp_errors_total{service="funding",reason=...}. */
void funding_count_error (const char *reason);

/* Work service name of a component: "partner.BPIFRANCE.bpifrance-default". */
void funding_partner_service (Qp__V1__Agency agency, const char *component, char *out,
                              size_t size);
/* Wait before attempt n+1 after attempt n (n ≥ 1): min(max, base·2^(n-1)) scaled by a
 * factor in [0.5, 1) derived from the request id, so a replay waits the same. */
int64_t funding_backoff_ms (const funding_t *self, const char *request_id, uint32_t attempt);
#endif
