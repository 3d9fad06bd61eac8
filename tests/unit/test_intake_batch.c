/* Intake's submissions stored together (intake_prepare, intake_store -> qp_service_creates
 * -> qp_store_creates) in-process against a real redis-server: 200 valid submissions in
 * one Redis round trip (counted by qp_redis_round_trips, not timed), the second of two
 * with the same (channel, key) a duplicate as one after the other, each DossierReceived
 * in the outbox once; Redis down: every one of the batch fails and nothing is written,
 * the same batch stored once Redis is back. */
#include "intake/intake.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_intake.h"
#include "qp_test_suite.h"
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define N 200
#define REPEATED 7 /* the last submission repeats this one's (channel, key) */

static qp_test_redis_t *server;
static qp_redis_t *r;
static intake_t *intake;

static Qp__V1__SubmitDossier *s_submission (const char *key, const char *submitted_on)
{
    return qp_test_submission ("test-batch", key, submitted_on, NULL);
}

static void s_setup (void)
{
    qp_test_intake_open (&server, &r, &intake);
}

static void s_teardown (void)
{
    qp_test_intake_close (&server, &r, &intake);
}

static long long s_int (const char *fmt, const char *arg)
{
    redisReply *x = qp_redis_command (r, fmt, arg);
    ck_assert (x && x->type == REDIS_REPLY_INTEGER);
    long long v = x->integer;
    freeReplyObject (x);
    return v;
}

/* DossierReceived members in the outbox. */
static size_t s_received_in_outbox (void)
{
    redisReply *x = qp_redis_command (r, "ZRANGE %s 0 -1", QP_STORE_OUTBOX_KEY);
    size_t n = qp_test_outbox_count (x, "qp.v1.DossierReceived");
    freeReplyObject (x);
    return n;
}

/* The N submissions prepared: keys B-0 .. B-(N-2), the last one repeating REPEATED's. */
static void s_prepare_all (Qp__V1__SubmitDossier **subs, char ids[][40], intake_ready_t *ready)
{
    intake_errors_t *errors = malloc (sizeof *errors);
    ck_assert_ptr_nonnull (errors);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf (key, sizeof key, "B-%d", i == N - 1 ? REPEATED : i);
        subs[i] = s_submission (key, "2024-05-13");
        snprintf (ids[i], 40, "msg-%d", i);
        ck_assert (intake_prepare (intake, subs[i], ids[i], 1715558400000, errors, &ready[i]));
        ck_assert_ptr_nonnull (ready[i].dossier);
    }
    ck_assert_str_eq (ready[N - 1].dossier_id, ready[REPEATED].dossier_id);
    free (errors);
}

START_TEST (test_batch_is_one_round_trip)
{
    /* A publish socket, so each creation records its DossierReceived in the outbox. */
    qp_service_t *service = qp_test_intake_publishing (intake);

    /* A refused one is refused by intake_prepare, with its field: nothing to store. */
    intake_errors_t *errors = malloc (sizeof *errors);
    intake_ready_t bad;
    Qp__V1__SubmitDossier *invalid = s_submission ("B-bad", "2024-13-45");
    ck_assert (!intake_prepare (intake, invalid, "msg-bad", 0, errors, &bad));
    ck_assert_ptr_nonnull (intake_errors_find (errors, "submitted_on"));
    ck_assert_ptr_null (bad.dossier);
    qp__v1__submit_dossier__free_unpacked (invalid, NULL);
    free (errors);

    /* One stored alone first: the script is loaded (its own round trip) before we count. */
    Qp__V1__SubmitDossier *first = s_submission ("B-first", "2024-05-13");
    intake_result_t *res = malloc (sizeof *res);
    ck_assert_int_eq (intake_submit (intake, first, "msg-first", 0, res), INTAKE_ACCEPTED);
    intake_result_clear (res);
    free (res);
    qp__v1__submit_dossier__free_unpacked (first, NULL);

    Qp__V1__SubmitDossier *subs[N];
    char msg_ids[N][40];
    intake_ready_t ready[N];
    s_prepare_all (subs, msg_ids, ready);
    uint64_t before = qp_redis_round_trips (r);
    ck_assert_uint_eq (intake_store (intake, ready, N), N - 1);
    ck_assert_uint_eq (qp_redis_round_trips (r) - before, 1);

    for (int i = 0; i < N - 1; i++) {
        ck_assert_int_eq (ready[i].outcome, INTAKE_ACCEPTED);
        ck_assert_ptr_nonnull (ready[i].dossier);
        ck_assert_str_eq (ready[i].dossier->territory, "roubaix");
        char key[64];
        snprintf (key, sizeof key, "qp:{%s}:d", ready[i].dossier_id);
        redisReply *x = qp_redis_command (r, "HGET %s source_msg", key);
        ck_assert (x && x->type == REDIS_REPLY_STRING);
        ck_assert_str_eq (x->str, msg_ids[i]); /* the first submission of the id stored it */
        freeReplyObject (x);
    }
    /* The repeat is a duplicate of the creation earlier in the same batch. */
    ck_assert_int_eq (ready[N - 1].outcome, INTAKE_DUPLICATE);
    ck_assert_int_eq (ready[N - 1].state, QP__V1__DOSSIER_STATE__RECEIVED);
    ck_assert_ptr_null (ready[N - 1].dossier);
    ck_assert_str_eq (ready[N - 1].dossier_id, ready[REPEATED].dossier_id);
    /* Each stored once, each with its one event. */
    ck_assert_int_eq (s_int ("ZCARD %s", "qp:pending:RECEIVED"), N);
    ck_assert_uint_eq (s_received_in_outbox (), N);

    /* The same batch again: every one a duplicate, nothing more recorded. */
    for (int i = 0; i < N; i++) {
        intake_ready_clear (&ready[i]);
        ck_assert (intake_prepare (intake, subs[i], msg_ids[i], 0, &(intake_errors_t){0}, &ready[i]));
    }
    ck_assert_uint_eq (intake_store (intake, ready, N), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq (ready[i].outcome, INTAKE_DUPLICATE);
    ck_assert_uint_eq (s_received_in_outbox (), N);

    for (int i = 0; i < N; i++) {
        intake_ready_clear (&ready[i]);
        qp__v1__submit_dossier__free_unpacked (subs[i], NULL);
    }
    qp_service_destroy (&service);
}
END_TEST

START_TEST (test_batch_redis_down)
{
    Qp__V1__SubmitDossier *subs[N];
    char msg_ids[N][40];
    intake_ready_t ready[N];
    s_prepare_all (subs, msg_ids, ready);
    ck_assert_int_eq (qp_test_redis_down (server, SIGTERM), 0);
    ck_assert_uint_eq (intake_store (intake, ready, N), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq (ready[i].outcome, INTAKE_STORE_FAILED);
        ck_assert_ptr_null (ready[i].dossier);
        ck_assert_str_eq (ready[i].dossier_id, "");
    }
    /* Nothing half-written. */
    ck_assert_int_eq (qp_test_redis_up (server), 0);
    redisReply *x = qp_redis_command (r, "DBSIZE");
    ck_assert (x && x->type == REDIS_REPLY_INTEGER);
    ck_assert_int_eq (x->integer, 0);
    freeReplyObject (x);
    /* The senders' retry stores the batch. */
    for (int i = 0; i < N; i++)
        ck_assert (intake_prepare (intake, subs[i], msg_ids[i], 0, &(intake_errors_t){0}, &ready[i]));
    ck_assert_uint_eq (intake_store (intake, ready, N), N - 1);
    ck_assert_int_eq (ready[N - 1].outcome, INTAKE_DUPLICATE);
    ck_assert_int_eq (s_int ("ZCARD %s", "qp:pending:RECEIVED"), N - 1);
    for (int i = 0; i < N; i++) {
        intake_ready_clear (&ready[i]);
        qp__v1__submit_dossier__free_unpacked (subs[i], NULL);
    }
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("intake_batch");
    TCase *tc = tcase_create ("batch");
    tcase_set_timeout (tc, 120);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_batch_is_one_round_trip);
    tcase_add_test (tc, test_batch_redis_down);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
