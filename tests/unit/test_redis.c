/* qp_redis against a real redis-server: commands, scripts, reconnection. */
#include "qp_redis.h"
#include "qp_test.h"
#include "qp_test_redis_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Runs a command and expects a status/string reply equal to want (NULL: any non-error). */
static void s_expect_str (redisReply *reply, const char *want)
{
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING,
                   "reply type %d (%s)", reply->type,
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    if (want)
        ck_assert_str_eq (reply->str, want);
    freeReplyObject (reply);
}

static void s_expect_int (redisReply *reply, long long want)
{
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (reply->type == REDIS_REPLY_INTEGER, "reply type %d (%s)", reply->type,
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    ck_assert_int_eq (reply->integer, want);
    freeReplyObject (reply);
}

/* dossier_create for one id: returns the script's code (1 created, 0 already there). A
 * script of the project's that does something once, to watch EVALSHA and its reloads. */
static long long s_apply (const char *id)
{
    char k_d[64], k_h[64];
    snprintf (k_d, sizeof k_d, "t:{%s}:d", id);
    snprintf (k_h, sizeof k_h, "t:{%s}:h", id);
    const char *keys[] = {k_d, k_h, "t:pending"};
    const char *args[] = {id, "1", "history-entry", "territory", "T1"};
    redisReply *reply = qp_redis_script (r, QP_LUA_DOSSIER_CREATE, 3, keys, 5, args, NULL);
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2, "reply type %d (%s)",
                   reply->type, reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    long long v = reply->element[0]->integer;
    freeReplyObject (reply);
    return v;
}

START_TEST (test_command)
{
    uint64_t before = qp_redis_round_trips (r);
    s_expect_str (qp_redis_command (r, "SET %s %s", "greeting", "bonjour"), "OK");
    s_expect_str (qp_redis_command (r, "GET %s", "greeting"), "bonjour");
    s_expect_int (qp_redis_command (r, "INCRBY %s %d", "n", 41), 41);
    s_expect_int (qp_redis_command (r, "INCR %s", "n"), 42);
    /* Binary-safe argv. */
    const char *argv[] = {"SET", "bin", "a\0b"};
    const size_t lens[] = {3, 3, 3};
    redisReply *reply = qp_redis_argv (r, 3, argv, lens);
    s_expect_str (reply, "OK");
    reply = qp_redis_command (r, "GET bin");
    ck_assert_ptr_nonnull (reply);
    ck_assert_int_eq (reply->len, 3);
    ck_assert_mem_eq (reply->str, "a\0b", 3);
    freeReplyObject (reply);
    /* A Redis error is a reply, not a lost connection. */
    reply = qp_redis_command (r, "INCR greeting");
    ck_assert_ptr_nonnull (reply);
    ck_assert_int_eq (reply->type, REDIS_REPLY_ERROR);
    freeReplyObject (reply);
    ck_assert_uint_eq (qp_redis_round_trips (r) - before, 7);
}
END_TEST

START_TEST (test_script_reload)
{
    uint64_t t0 = qp_redis_round_trips (r);
    ck_assert_int_eq (s_apply ("m1"), 1);
    uint64_t t1 = qp_redis_round_trips (r);
    ck_assert_uint_eq (t1 - t0, 2); /* SCRIPT LOAD + EVALSHA */
    ck_assert_int_eq (s_apply ("m1"), 0);
    uint64_t t2 = qp_redis_round_trips (r);
    ck_assert_uint_eq (t2 - t1, 1); /* EVALSHA only */

    s_expect_str (qp_redis_command (r, "SCRIPT FLUSH"), "OK");
    uint64_t t3 = qp_redis_round_trips (r);
    ck_assert_int_eq (s_apply ("m2"), 1);                 /* NOSCRIPT: loaded again, not an error */
    ck_assert_uint_eq (qp_redis_round_trips (r) - t3, 3); /* EVALSHA, LOAD, EVALSHA */
    ck_assert_int_eq (s_apply ("m2"), 0);
    s_expect_int (qp_redis_command (r, "ZCARD t:pending"), 2);
}
END_TEST

START_TEST (test_reconnect_after_restart)
{
    s_expect_str (qp_redis_command (r, "SET survivor %s", "yes"), "OK");
    ck_assert_int_eq (s_apply ("m1"), 1);
    ck_assert_int_eq (qp_test_redis_restart (server), 0);
    /* Same client: the first command finds the connection closed and reconnects. */
    s_expect_str (qp_redis_command (r, "GET survivor"), "yes"); /* and the AOF was reloaded */
    /* The script cache did not survive the restart: NOSCRIPT path again. */
    ck_assert_int_eq (s_apply ("m1"), 0);
    ck_assert_int_eq (s_apply ("m3"), 1);

    /* A crash: while it is down commands fail (NULL), then work again once it is back. */
    ck_assert_int_eq (qp_test_redis_down (server, SIGKILL), 0);
    ck_assert_ptr_null (qp_redis_command (r, "PING"));
    ck_assert_int_eq (qp_test_redis_up (server), 0);
    s_expect_str (qp_redis_command (r, "PING"), "PONG");
    ck_assert_int_eq (s_apply ("m4"), 1);
}
END_TEST

START_TEST (test_connect_refused)
{
    int port = qp_test_free_port ();
    ck_assert_int_gt (port, 0);
    qp_redis_t *none = qp_redis_connect ("127.0.0.1", port, 300);
    ck_assert_ptr_null (none);
    qp_redis_destroy (&none); /* NULL-safe */
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("redis");
    TCase *tc = tcase_create ("redis");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, qp_test_redis_setup, qp_test_redis_teardown);
    tcase_add_test (tc, test_command);
    tcase_add_test (tc, test_script_reload);
    tcase_add_test (tc, test_reconnect_after_restart);
    tcase_add_test (tc, test_connect_refused);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
