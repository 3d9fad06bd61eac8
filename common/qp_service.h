/* A worker service: connects to the bus, registers under its name, decodes every frame
 * set (answering a malformed one with a qp.v1.Error and carrying on), dispatches work
 * and events to handlers by payload type, runs timers, and stops cleanly on SIGINT or
 * SIGTERM (the message in hand is finished; anything not yet acknowledged in Redis is
 * found again by the pending-lease sweeper). */
#ifndef QP_SERVICE_H
#define QP_SERVICE_H
#include "qp_bus.h"
#include "qp_config.h"
#include "qp_message.h"

typedef struct qp_service qp_service_t;

typedef struct {
    qp_service_t *service;
    zframe_t *from;    /* work: the sending peer (to reply to); NULL for an event */
    qp_message_t msg;  /* decoded envelope and payload */
} qp_request_t;

typedef void (qp_handler_fn) (qp_request_t *req, void *arg);
typedef void (qp_timer_fn) (qp_service_t *service, void *arg);

/* name: the work service name ("intake"); NULL for a program that only subscribes or
 * only sends. endpoint: the bus work (or partner) endpoint. publish/subscribe may be NULL. */
qp_service_t *qp_service_new (const char *name, const char *endpoint, const char *publish,
                              const char *subscribe);
void qp_service_destroy (qp_service_t **self_p);

void qp_service_on (qp_service_t *self, const ProtobufCMessageDescriptor *type,
                    qp_handler_fn *handler, void *arg);
void qp_service_subscribe (qp_service_t *self, const ProtobufCMessageDescriptor *type,
                           qp_handler_fn *handler, void *arg);
void qp_service_every (qp_service_t *self, int interval_ms, qp_timer_fn *timer, void *arg);

/* Runs until interrupted (or qp_service_stop). Returns 0. */
int qp_service_run (qp_service_t *self);
void qp_service_stop (qp_service_t *self);

/* Answers the peer that sent req. */
void qp_service_reply (qp_request_t *req, const ProtobufCMessage *payload, const qp_meta_t *meta);
void qp_service_reply_error (qp_request_t *req, const qp_error_t *err);
/* Work to exactly one worker of to_service. */
void qp_service_send (qp_service_t *self, const char *to_service, const ProtobufCMessage *payload,
                      const qp_meta_t *meta);
/* An event to every subscriber. */
void qp_service_publish (qp_service_t *self, const ProtobufCMessage *payload, const qp_meta_t *meta);

uint64_t qp_service_handled (const qp_service_t *self);
#endif
