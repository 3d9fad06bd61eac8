/* The Lua scripts run on a real redis-server through qp_redis_script: budget envelopes
 * (reserve, settle), the pending-lease claim and the evaluation counters. */
#include "qp_redis.h"
#include "qp_test.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

static qp_test_redis_t *server;
static qp_redis_t *r;

static void s_setup (void)
{
    server = qp_test_redis_start ();
    ck_assert_ptr_nonnull (server);
    r = qp_redis_connect (server->host, server->port, 5000);
    ck_assert_ptr_nonnull (r);
}

static void s_teardown (void)
{
    qp_redis_destroy (&r);
    qp_test_redis_stop (&server);
}

/* A {code, text} script answer. */
typedef struct {
    long long code;
    char text[64];
} answer_t;

static answer_t s_pair (redisReply *reply)
{
    answer_t a = {0};
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (reply->type == REDIS_REPLY_ARRAY, "reply type %d (%s)", reply->type,
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    ck_assert_int_eq (reply->elements, 2);
    ck_assert_int_eq (reply->element[0]->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq (reply->element[1]->type, REDIS_REPLY_STRING);
    a.code = reply->element[0]->integer;
    snprintf (a.text, sizeof a.text, "%s", reply->element[1]->str);
    freeReplyObject (reply);
    return a;
}

static void s_envelope (const char *key, long long total, long long max_projects)
{
    redisReply *reply =
        qp_redis_command (r, "HSET %s total %lld max_projects %lld", key, total, max_projects);
    ck_assert_ptr_nonnull (reply);
    freeReplyObject (reply);
}

static answer_t s_reserve (const char *env, const char *dossier, const char *amount)
{
    char ledger[64];
    snprintf (ledger, sizeof ledger, "%s:ledger", env);
    char right[80], deadlines[80];
    snprintf (right, sizeof right, "%s:t:", env);
    snprintf (deadlines, sizeof deadlines, "%s:deadlines", env);
    const char *keys[] = {env, ledger, right, deadlines};
    const char *args[] = {dossier, amount, "", "9999999999999"};
    return s_pair (qp_redis_script (r, QP_LUA_ENVELOPE_RESERVE, 4, keys, 4, args, NULL));
}

static answer_t s_settle (const char *env, const char *dossier, const char *kind,
                          const char *amount)
{
    char ledger[64];
    snprintf (ledger, sizeof ledger, "%s:ledger", env);
    char prefix[80], deadlines[80];
    snprintf (prefix, sizeof prefix, "%s:t:", env);
    snprintf (deadlines, sizeof deadlines, "%s:deadlines", env);
    const char *keys[] = {env, ledger, deadlines, prefix};
    const char *args[] = {dossier, kind, amount};
    return s_pair (qp_redis_script (r, QP_LUA_ENVELOPE_SETTLE, 4, keys, 3, args, NULL));
}

/* An integer field of a hash (0 when absent). */
static long long s_hget (const char *key, const char *field)
{
    redisReply *reply = qp_redis_command (r, "HGET %s %s", key, field);
    ck_assert_ptr_nonnull (reply);
    long long v = reply->type == REDIS_REPLY_STRING ? atoll (reply->str) : 0;
    freeReplyObject (reply);
    return v;
}

#define ck_answer(a, c, t)                                                                         \
    do {                                                                                           \
        answer_t a_ = (a);                                                                         \
        ck_assert_int_eq (a_.code, (c));                                                           \
        ck_assert_str_eq (a_.text, (t));                                                           \
    } while (0)

START_TEST (test_reserve_idempotent)
{
    s_envelope ("env", 1000, 0);
    ck_answer (s_reserve ("env", "d1", "400"), 1, "reserved:400");
    /* Again, even with another amount: the first answer, nothing more reserved. */
    ck_answer (s_reserve ("env", "d1", "400"), 0, "reserved:400");
    ck_answer (s_reserve ("env", "d1", "900"), 0, "reserved:400");
    ck_assert_int_eq (s_hget ("env", "reserved"), 400);
    ck_assert_int_eq (s_hget ("env", "projects"), 1);
    ck_answer (s_reserve ("nothing", "d1", "1"), -1, "no_envelope");
}
END_TEST

START_TEST (test_reserve_over_total)
{
    s_envelope ("env", 1000, 0);
    ck_answer (s_reserve ("env", "d1", "400"), 1, "reserved:400");
    ck_answer (s_reserve ("env", "d2", "601"), 1, "refused:0");
    ck_answer (s_reserve ("env", "d2", "1"), 0, "refused:0"); /* a refusal is final */
    ck_assert_int_eq (s_hget ("env", "reserved"), 400);
    ck_assert_int_eq (s_hget ("env", "projects"), 1);
    ck_answer (s_reserve ("env", "d3", "600"), 1, "reserved:600"); /* exactly the rest */
    ck_assert_int_eq (s_hget ("env", "reserved"), 1000);
    ck_answer (s_reserve ("env", "d4", "1"), 1, "refused:0");
}
END_TEST

START_TEST (test_reserve_max_projects)
{
    s_envelope ("env", 1000000, 2);
    ck_answer (s_reserve ("env", "d1", "10"), 1, "reserved:10");
    ck_answer (s_reserve ("env", "d2", "10"), 1, "reserved:10");
    ck_answer (s_reserve ("env", "d3", "10"), 1, "refused:0");
    ck_assert_int_eq (s_hget ("env", "projects"), 2);
    ck_assert_int_eq (s_hget ("env", "reserved"), 20);
    /* A release frees a project slot. */
    ck_answer (s_settle ("env", "d1", "release", "0"), 1, "released:10");
    ck_answer (s_reserve ("env", "d4", "10"), 1, "reserved:10");
}
END_TEST

START_TEST (test_settle)
{
    s_envelope ("env", 1000, 0);
    ck_answer (s_reserve ("env", "d1", "400"), 1, "reserved:400");
    ck_answer (s_reserve ("env", "d2", "600"), 1, "reserved:600");
    /* Commit at most what was reserved. */
    ck_answer (s_settle ("env", "d1", "commit", "500"), 1, "committed:400");
    ck_assert_int_eq (s_hget ("env", "reserved"), 600);
    ck_assert_int_eq (s_hget ("env", "committed"), 400);
    ck_assert_int_eq (s_hget ("env", "projects"), 2);
    /* Settling twice changes nothing, whatever the second call says. */
    ck_answer (s_settle ("env", "d1", "commit", "100"), 0, "committed:400");
    ck_answer (s_settle ("env", "d1", "release", "0"), 0, "committed:400");
    ck_assert_int_eq (s_hget ("env", "committed"), 400);
    /* A partial commit gives the rest back to the envelope. */
    ck_answer (s_settle ("env", "d2", "commit", "250"), 1, "committed:250");
    ck_assert_int_eq (s_hget ("env", "reserved"), 0);
    ck_assert_int_eq (s_hget ("env", "committed"), 650);
    ck_answer (s_reserve ("env", "d3", "350"), 1, "reserved:350");
    ck_answer (s_reserve ("env", "d4", "1"), 1, "refused:0");
    /* A release frees the amount and the project. */
    ck_answer (s_settle ("env", "d3", "release", "0"), 1, "released:350");
    ck_answer (s_settle ("env", "d3", "release", "0"), 0, "released:350");
    ck_assert_int_eq (s_hget ("env", "reserved"), 0);
    ck_assert_int_eq (s_hget ("env", "projects"), 2);
    ck_answer (s_reserve ("env", "d5", "350"), 1, "reserved:350");
    /* Unknown dossier, refused dossier. */
    ck_answer (s_settle ("env", "nobody", "commit", "1"), -1, "no_reservation");
    ck_answer (s_settle ("env", "d4", "commit", "1"), 0, "refused:0");
    ck_assert_int_eq (s_hget ("env", "committed"), 650);
    ck_assert_int_eq (s_hget ("env", "reserved"), 350);
}
END_TEST

/* ZSCORE of id in key, -1 when absent. */
static long long s_score (const char *key, const char *id)
{
    redisReply *reply = qp_redis_command (r, "ZSCORE %s %s", key, id);
    ck_assert_ptr_nonnull (reply);
    long long v = reply->type == REDIS_REPLY_STRING ? atoll (reply->str) : -1;
    freeReplyObject (reply);
    return v;
}

static size_t s_claim (const char *now, const char *deadline, const char *limit, char *out,
                       size_t size)
{
    const char *keys[] = {"pending"};
    const char *args[] = {now, deadline, limit};
    redisReply *reply = qp_redis_script (r, QP_LUA_PENDING_CLAIM, 1, keys, 3, args, NULL);
    ck_assert_ptr_nonnull (reply);
    ck_assert_int_eq (reply->type, REDIS_REPLY_ARRAY);
    size_t n = reply->elements;
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strncat (out, reply->element[i]->str, size - strlen (out) - 2);
        strcat (out, " ");
    }
    freeReplyObject (reply);
    return n;
}

START_TEST (test_pending_claim)
{
    redisReply *reply = qp_redis_command (r, "ZADD pending 100 a 200 b 1000 c 5000 d");
    ck_assert_ptr_nonnull (reply);
    freeReplyObject (reply);
    char ids[256];
    /* Only the expired leases (deadline <= now), oldest first, and their lease moves. */
    ck_assert_uint_eq (s_claim ("1000", "11000", "10", ids, sizeof ids), 3);
    ck_assert_str_eq (ids, "a b c ");
    ck_assert_int_eq (s_score ("pending", "a"), 11000);
    ck_assert_int_eq (s_score ("pending", "c"), 11000);
    ck_assert_int_eq (s_score ("pending", "d"), 5000);
    /* Claimed ids are not claimed again before their new deadline. */
    ck_assert_uint_eq (s_claim ("1000", "11000", "10", ids, sizeof ids), 0);
    ck_assert_uint_eq (s_claim ("6000", "16000", "10", ids, sizeof ids), 1);
    ck_assert_str_eq (ids, "d ");
    /* The limit is respected. */
    ck_assert_uint_eq (s_claim ("20000", "30000", "2", ids, sizeof ids), 2);
    ck_assert_uint_eq (s_claim ("20000", "30000", "10", ids, sizeof ids), 2);
    ck_assert_uint_eq (s_claim ("20000", "30000", "10", ids, sizeof ids), 0);
}
END_TEST

/* One event of eval_apply.lua: dossier, token, profile, then (field, incr, mode) triples.
 * Returns the number of events sent back for want of a profile. */
/* eval_apply.lua "apply" for one dossier: expects its packed profile (field `dossier` of
 * bucket PB) to be `expect` ("" absent), sets it to `value` (removing the old hash `old`
 * unless ""), adds inc to slot 1 of vector VEC. Returns the number of dossiers at fault
 * (0: applied). */
#define VEC "qp:eval:v:T1|2025-01|RETAIL_AND_CRAFTS|*"
#define PB "qp:eval:p:7"
static size_t s_apply (const char *dossier, const char *expect, const char *value,
                       const char *old, const char *inc)
{
    const char *keys[] = {"ev:cells", "ev:territories", "ev:meta"};
    const char *args[] = {"apply", "1", PB, dossier, expect, value, old,
                          "1", VEC, "1", "INCRBY", "i64", "#1", inc,
                          "3", "qp:eval:k:T1|2025-01|RETAIL_AND_CRAFTS", "1", "*",
                          "ev:cells", "1", "qp:eval:c:T1|2025-01|RETAIL_AND_CRAFTS",
                          "ev:territories", "1", "T1", "1", "2025-01-10"};
    int n = (int) (sizeof args / sizeof args[0]);
    redisReply *reply = qp_redis_script (r, QP_LUA_EVAL_APPLY, 3, keys, n, args, NULL);
    ck_assert_ptr_nonnull (reply);
    ck_assert_int_eq (reply->type, REDIS_REPLY_ARRAY);
    size_t bad = reply->elements;
    freeReplyObject (reply);
    return bad;
}

static long long s_slot1 (void)
{
    redisReply *reply = qp_redis_command (r, "BITFIELD %s GET i64 #1", VEC);
    ck_assert (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1);
    long long v = reply->element[0]->integer;
    freeReplyObject (reply);
    return v;
}

/* eval_apply.lua "read" of one dossier: its packed profile, or the old hash's fields. */
static redisReply *s_read (const char *dossier)
{
    const char *keys[] = {"ev:cells", "ev:territories", "ev:meta"};
    const char *read[] = {"read", PB, dossier, dossier};
    redisReply *reply = qp_redis_script (r, QP_LUA_EVAL_APPLY, 3, keys, 4, read, NULL);
    ck_assert (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1);
    return reply;
}

START_TEST (test_eval_apply_once)
{
    redisReply *reply = s_read ("d1");
    ck_assert_int_eq (reply->element[0]->type, REDIS_REPLY_ARRAY); /* none, nor old */
    ck_assert_uint_eq (reply->element[0]->elements, 0);
    freeReplyObject (reply);
    /* Applied when what was read still holds: the dossier had no profile. */
    ck_assert_uint_eq (s_apply ("d1", "", "T1|2025-01-10||||||||r", "", "5"), 0);
    ck_assert_int_eq (s_slot1 (), 5);
    ck_assert_int_eq (s_hget ("ev:meta", "applied"), 1);
    /* The same again (another instance read before the first applied): refused whole. */
    ck_assert_uint_eq (s_apply ("d1", "", "T1|2025-01-10||||||||r", "", "5"), 1);
    ck_assert_int_eq (s_slot1 (), 5);
    ck_assert_int_eq (s_hget ("ev:meta", "applied"), 1);
    /* Read again, it sees the profile and the token; a new token on that profile applies,
     * negative increments too (a follow-up replaced). */
    reply = s_read ("d1");
    ck_assert_int_eq (reply->element[0]->type, REDIS_REPLY_STRING);
    ck_assert_str_eq (reply->element[0]->str, "T1|2025-01-10||||||||r");
    freeReplyObject (reply);
    ck_assert_uint_eq (s_apply ("d1", "T1|2025-01-10||||||||r", "T1|2025-01-10||||||||r,d", "",
                                "-2"),
                       0);
    ck_assert_int_eq (s_slot1 (), 3);
    ck_assert_int_eq (s_hget ("ev:meta", "applied"), 2);
    /* A profile of before the buckets (hash qp:eval:d:ID) is read when the bucket has
     * none, and moved into the bucket by the apply. */
    reply = qp_redis_command (r, "HSET qp:eval:d:d2 t T1 rcv 1");
    freeReplyObject (reply);
    reply = s_read ("d2");
    ck_assert_int_eq (reply->element[0]->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq (reply->element[0]->elements, 4);
    freeReplyObject (reply);
    ck_assert_uint_eq (s_apply ("d2", "", "T1|2025-01-10||||||||r,d", "qp:eval:d:d2", "1"), 0);
    ck_assert_int_eq (s_slot1 (), 4);
    reply = qp_redis_command (r, "EXISTS qp:eval:d:d2");
    ck_assert_int_eq (reply->integer, 0);
    freeReplyObject (reply);
    reply = s_read ("d2");
    ck_assert_str_eq (reply->element[0]->str, "T1|2025-01-10||||||||r,d");
    freeReplyObject (reply);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("envelope");
    TCase *tc = tcase_create ("lua");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_reserve_idempotent);
    tcase_add_test (tc, test_reserve_over_total);
    tcase_add_test (tc, test_reserve_max_projects);
    tcase_add_test (tc, test_settle);
    tcase_add_test (tc, test_pending_claim);
    tcase_add_test (tc, test_eval_apply_once);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
