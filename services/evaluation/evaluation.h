/* The evaluation service: keeps the programme's counters per territory from the event
 * stream (each event counted once, by message id, even when delivered twice or by two
 * instances), and answers report queries. */
#ifndef EVALUATION_H
#define EVALUATION_H
#include "qp_redis.h"
#include "qp_service.h"

typedef struct {
    qp_service_t *service;
    qp_redis_t *redis;
} evaluation_t;

void evaluation_register (evaluation_t *self);

/* Builds the report for one territory (NULL or "": all). Returns 0, or -1 when Redis
 * failed. Free with evaluation_report_clear. */
int evaluation_report (qp_redis_t *redis, const char *territory, Qp__V1__ReportReply *out);
void evaluation_report_clear (Qp__V1__ReportReply *report);
#endif
