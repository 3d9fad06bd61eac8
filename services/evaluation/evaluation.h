/* The evaluation service: keeps the programme's indicators from the event stream and
 * answers queries. Each event becomes increments of the dossier's cell (territory,
 * business month, axis), with breakdowns per QPV, network, scheme and agency inside the
 * cell and a per-day series per territory; each is counted once per dossier and business
 * fact (eval_apply.lua), so duplicates, retries, replays and a rebuild from the dossiers
 * stored in Redis all give the same figures. Events are applied in batches (one Lua call
 * per batch), flushed when full, on a short timer and before any query. */
#ifndef EVALUATION_H
#define EVALUATION_H
#include "qp/v1/evaluation.pb-c.h"
#include "qp_redis.h"
#include "qp_service.h"

typedef struct evaluation evaluation_t;

/* data_dir holds envelopes.json, targets.json and catalogue/ (scheme kinds). NULL when a
 * data file is present but broken (logged with the file and the reason). */
evaluation_t *evaluation_new (qp_redis_t *redis, const char *data_dir);
void evaluation_destroy (evaluation_t **self_p);

/* Subscribes to the flow's events and serves IndicatorQuery, ReportQuery and
 * TerritoryPhase on service. */
void evaluation_attach (evaluation_t *self, qp_service_t *service);

/* Queues one decoded event (DossierReceived, EligibilityDecided, FundingRequest,
 * FundingSettled, DossierClosed, FollowUp, SubmissionRefused); other types are ignored. */
void evaluation_apply (evaluation_t *self, const qp_message_t *msg);
/* Queues the outbox member of an event given to evaluation_apply (its type and packed
 * envelope frames): removed from the outbox by the flush that counts the event, so an
 * event not counted (Redis failed) stays there for the sweeper (docs/reliability.md). */
void evaluation_ack (evaluation_t *self, const void *type, size_t type_len, const void *envelope,
                     size_t envelope_len);
/* Events per batch, 1 to 8,192 (2,048 by default): each batch is one apply script, during
 * which Redis runs nothing else (intake, eligibility and funding's commands wait behind
 * it); smaller batches hold it for less time, at some cost in events per second
 * (docs/evaluation.md, "Speed"). */
void evaluation_set_batch_events (evaluation_t *self, size_t events);

/* Applies what is queued. Returns 0, or -1 when Redis failed (the batch is dropped and
 * logged; its acks too, so the outbox sweeper publishes its events again). */
int evaluation_flush (evaluation_t *self);

/* Recomputes every counter from the dossiers stored in Redis (phases are kept).
 * Returns the number of dossiers read, or -1. */
long evaluation_rebuild (evaluation_t *self);

/* Records a territory phase; -1 with err (field and reason) when refused. */
int evaluation_record_phase (evaluation_t *self, const Qp__V1__TerritoryPhase *phase,
                             qp_error_t *err);

/* 0 when the query can be answered; else -1 with err naming the field and why (a period
 * bound that is not a date YYYY-MM-DD or a month YYYY-MM, month 13, until before from, an
 * axis out of the enum). */
int evaluation_query_check (const Qp__V1__IndicatorQuery *query, qp_error_t *err);

/* The indicators for a query. Returns 0, or -1 when Redis failed or the query does not
 * pass evaluation_query_check. Free with
 * qp__v1__indicator_report__free_unpacked (out, NULL). */
int evaluation_indicators (evaluation_t *self, const Qp__V1__IndicatorQuery *query,
                           Qp__V1__IndicatorReport **out);

/* The per-territory funnel of qp.v1.ReportReply (same filters). Free with
 * evaluation_report_clear. */
int evaluation_report (evaluation_t *self, const Qp__V1__ReportQuery *query,
                       Qp__V1__ReportReply *out);
void evaluation_report_clear (Qp__V1__ReportReply *report);
#endif
