/* One dossier through a running stack, as several integration tests take it: handed to
 * funding as eligibility would (qp_test_hand_to_funding), its state read from Redis
 * until terminal (qp_test_wait_terminal), or submitted to intake and followed through
 * its status queries (qp_test_submit_accepted, qp_test_status_wait_terminal,
 * qp_test_expect_funded). Header-only: it asserts with
 * check, which the benchmarks that build tests/support/qp_test.c do not link. No state
 * of its own: the stack, connections and ids are the test's, passed in. */
#ifndef QP_TEST_DOSSIER_H
#define QP_TEST_DOSSIER_H
#include "qp_bus.h"
#include "qp_message.h"
#include "qp_redis.h"
#include "qp_store.h"
#include "qp_test.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* Dossier id's state in Redis, 0 when it has none. */
static inline Qp__V1__DossierState qp_test_dossier_state (qp_redis_t *r, const char *id)
{
    char *s = qp_store_get (r, id, "state", NULL);
    Qp__V1__DossierState st = s ? qp_store_state_parse (s) : 0;
    free (s);
    return st;
}

/* Polls id's state (50 ms apart) until it is terminal or timeout_ms has passed (a bound
 * for failing tests, never a timing assertion); returns the last state read. */
static inline Qp__V1__DossierState qp_test_wait_terminal (qp_redis_t *r, const char *id,
                                                          int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        Qp__V1__DossierState st = qp_test_dossier_state (r, id);
        if (qp_store_state_terminal (st))
            return st;
        qp_test_sleep_ms (50);
    }
    return qp_test_dossier_state (r, id);
}

/* What eligibility does with a dossier it found eligible, id RECEIVED in Redis at t (ms):
 * moves it to ELIGIBLE with e as its "eligibility" field, then sends e to funding on work
 * (correlation and discriminator id). */
static inline void qp_test_hand_to_funding (qp_redis_t *r, qp_bus_client_t *work, const char *id,
                                            const Qp__V1__EligibilityDecided *e, int64_t t)
{
    size_t len = qp__v1__eligibility_decided__get_packed_size (e);
    uint8_t *buf = malloc (len ? len : 1);
    ck_assert_ptr_nonnull (buf);
    qp__v1__eligibility_decided__pack (e, buf);
    qp_store_field_t f[] = {{"eligibility", buf, len}};
    Qp__V1__DossierState state;
    ck_assert_int_eq (qp_store_transition (r, id, QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__ELIGIBLE, t, "m1", "test", f, 1,
                                           &state),
                      QP_STORE_APPLIED);
    free (buf);
    qp_meta_t meta = {.correlation_id = id, .discriminator = id, .event_time_ms = t};
    zmsg_t *m = qp_message_build (&e->base, &meta, NULL);
    ck_assert_ptr_nonnull (m);
    ck_assert_int_eq (qp_bus_client_send (work, "funding", &m), 0);
}

/* Submits s to intake through the bus at work (meta NULL: the client's own) and expects
 * it accepted within timeout_ms (else fails naming its key and the first error); its
 * dossier id into id. */
static inline void qp_test_submit_accepted (const char *work, const Qp__V1__SubmitDossier *s,
                                            const qp_meta_t *meta, int timeout_ms,
                                            char id[QP_ID_HEX + 1])
{
    qp_message_t reply = {0};
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (work, "intake", &s->base, meta, timeout_ms, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__submit_dossier_reply__descriptor);
    Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *)reply.payload;
    ck_assert_msg (r->accepted, "%s rejected: %s %s",
                   s->dossier && s->dossier->channel_key ? s->dossier->channel_key : "?",
                   r->n_errors ? r->errors[0]->field : "?",
                   r->n_errors && r->errors[0]->message ? r->errors[0]->message : "");
    snprintf (id, QP_ID_HEX + 1, "%s", r->dossier_id);
    qp_message_clear (&reply);
}

/* Asks intake the status of dossier id (100 ms apart, at most polls times: a bound for
 * failing tests) until it is terminal; returns the last state (0 while not found). */
static inline Qp__V1__DossierState qp_test_status_wait_terminal (const char *work, const char *id,
                                                                 int polls)
{
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = (char *)id;
    Qp__V1__DossierState state = 0;
    for (int i = 0; i < polls && !qp_store_state_terminal (state); i++) {
        qp_message_t reply = {0};
        qp_error_t err;
        ck_assert_int_eq (qp_test_call (work, "intake", &q.base, NULL, 5000, &reply, &err), 0);
        ck_assert_ptr_eq (reply.descriptor, &qp__v1__dossier_status_reply__descriptor);
        Qp__V1__DossierStatusReply *st = (Qp__V1__DossierStatusReply *)reply.payload;
        state = st->found ? st->state : 0;
        qp_message_clear (&reply);
        if (!qp_store_state_terminal (state))
            qp_test_sleep_ms (100);
    }
    return state;
}

/* A valid submission s goes all the way through: accepted by intake (5 s), then FUNDED
 * within polls status queries. */
static inline void qp_test_expect_funded (const char *work, const Qp__V1__SubmitDossier *s,
                                          int polls)
{
    char id[QP_ID_HEX + 1];
    qp_test_submit_accepted (work, s, NULL, 5000, id);
    Qp__V1__DossierState state = qp_test_status_wait_terminal (work, id, polls);
    ck_assert_msg (qp_store_state_terminal (state),
                   "the valid dossier did not reach a terminal state");
    ck_assert_int_eq (state, QP__V1__DOSSIER_STATE__FUNDED);
}
#endif
