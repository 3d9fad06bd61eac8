/* The Lua scripts run on a real redis-server through qp_redis_script: budget envelopes
 * (reserve, settle, expire; the ledger in buckets, entries stored before issue 8 still
 * read), the PHQ slot claim (in buckets, the old string slots still holding), the
 * pending-lease claim and the evaluation counters. */
#include "funding/budget.h"
#include "qp_bucket.h"
#include "qp_redis.h"
#include "qp_test.h"
#include "qp_test_redis_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

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

/* The dossier's ledger bucket of env and the ledger as stored before issue 8. */
static void s_ledger (const char *env, const char *dossier, char *bucket, char *old)
{
    snprintf (bucket, 64, "%s:ledger:%u", env, (unsigned) qp_bucket_of (dossier));
    snprintf (old, 64, "%s:ledger", env);
}

static answer_t s_reserve (const char *env, const char *dossier, const char *amount)
{
    char ledger[64], old[64];
    s_ledger (env, dossier, ledger, old);
    char right[80], deadlines[80];
    snprintf (right, sizeof right, "%s:t:", env);
    snprintf (deadlines, sizeof deadlines, "%s:deadlines", env);
    const char *keys[] = {env, ledger, old, right, deadlines};
    const char *args[] = {dossier, amount, "", "9999999999999"};
    return s_pair (qp_redis_script (r, QP_LUA_ENVELOPE_RESERVE, 5, keys, 4, args, NULL));
}

static answer_t s_settle (const char *env, const char *dossier, const char *kind,
                          const char *amount)
{
    char ledger[64], old[64];
    s_ledger (env, dossier, ledger, old);
    char prefix[80], deadlines[80];
    snprintf (prefix, sizeof prefix, "%s:t:", env);
    snprintf (deadlines, sizeof deadlines, "%s:deadlines", env);
    const char *keys[] = {env, ledger, old, deadlines, prefix};
    const char *args[] = {dossier, kind, amount};
    return s_pair (qp_redis_script (r, QP_LUA_ENVELOPE_SETTLE, 5, keys, 3, args, NULL));
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

/* A string reply of a command ("" when nil), into out. */
static void s_string (char *out, size_t size, const char *cmd)
{
    redisReply *reply = qp_redis_command (r, cmd);
    ck_assert_ptr_nonnull (reply);
    snprintf (out, size, "%s", reply->type == REDIS_REPLY_STRING ? reply->str : "");
    freeReplyObject (reply);
}

/* Runs a command that must not fail. */
static void s_do (const char *cmd)
{
    redisReply *reply = qp_redis_command (r, cmd);
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (reply->type != REDIS_REPLY_ERROR, "%s: %s", cmd, reply->str);
    freeReplyObject (reply);
}

START_TEST (test_ledger_in_buckets)
{
    s_envelope ("env", 1000, 0);
    ck_answer (s_reserve ("env", "d1", "400"), 1, "reserved:400");
    /* The entry is a field of the dossier's bucket, not of the one ledger hash. */
    char ledger[64], old[64], got[64], cmd[160];
    s_ledger ("env", "d1", ledger, old);
    snprintf (cmd, sizeof cmd, "HGET %s d1", ledger);
    s_string (got, sizeof got, cmd);
    ck_assert_str_eq (got, "reserved:400");
    snprintf (cmd, sizeof cmd, "EXISTS %s", old);
    redisReply *reply = qp_redis_command (r, cmd);
    ck_assert (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0);
    freeReplyObject (reply);
    snprintf (cmd, sizeof cmd, "OBJECT ENCODING %s", ledger);
    s_string (got, sizeof got, cmd);
    ck_assert_str_eq (got, "listpack");
}
END_TEST

/* A stack stored before issue 8 has its ledger in one hash: its entries still answer a
 * repeated reserve, are settled once (the new entry in the bucket, read first), expire. */
START_TEST (test_ledger_old_entries)
{
    s_do ("HSET qp:envelope:{old} total 1000 reserved 600 committed 0 available 400 projects 3");
    s_do ("HSET qp:envelope:{old}:ledger d1 reserved:300 d2 reserved:200 d3 refused:0 "
          "d4 reserved:100");
    s_do ("ZADD qp:envelope:{old}:deadlines 9999999999999 d1 1000 d2 9999999999999 d4");
    const char *env = "qp:envelope:{old}";
    ck_answer (s_reserve (env, "d1", "999"), 0, "reserved:300");
    ck_answer (s_reserve (env, "d3", "1"), 0, "refused:0");
    ck_assert_int_eq (s_hget (env, "reserved"), 600);
    ck_assert_int_eq (s_hget (env, "projects"), 3);
    ck_answer (s_settle (env, "d1", "commit", "250"), 1, "committed:250");
    ck_answer (s_settle (env, "d1", "commit", "300"), 0, "committed:250");
    ck_answer (s_settle (env, "d1", "release", "0"), 0, "committed:250");
    ck_answer (s_reserve (env, "d1", "1"), 0, "committed:250");
    ck_assert_int_eq (s_hget (env, "reserved"), 300);
    ck_assert_int_eq (s_hget (env, "committed"), 250);
    ck_assert_int_eq (s_hget (env, "available"), 450);
    /* The old hash is only read. */
    char got[64];
    s_string (got, sizeof got, "HGET qp:envelope:{old}:ledger d1");
    ck_assert_str_eq (got, "reserved:300");
    /* A reservation of the old ledger past its deadline is released (d2), once. */
    ck_assert_int_eq (budget_expire (r, "old", 5000, 100), 1);
    ck_assert_int_eq (budget_expire (r, "old", 5000, 100), 0);
    ck_answer (s_settle (env, "d2", "commit", "200"), 0, "released:200");
    ck_assert_int_eq (s_hget (env, "reserved"), 100);
    ck_assert_int_eq (s_hget (env, "available"), 650);
    ck_assert_int_eq (s_hget (env, "projects"), 2);
    /* Through the funding module too. */
    budget_op_t op = {.scheme = "old", .dossier = "d4", .commit = false};
    ck_assert_int_eq (budget_settle_many (r, &op, 1), 0);
    ck_assert_int_eq (op.result, BUDGET_SETTLED);
    ck_assert_str_eq (op.entry, "released:100");
    ck_assert_int_eq (s_hget (env, "reserved"), 0);
    ck_assert_int_eq (s_hget (env, "available"), 750);
}
END_TEST

/* Reserved through the funding module, expired by envelope_expire.lua: the script finds
 * every dossier's bucket with its own copy of the hash (qp_bucket.h). */
START_TEST (test_ledger_expire_finds_every_bucket)
{
    qp_error_t err;
    char path[256];
    snprintf (path, sizeof path, "%s/envelopes.json", server->dir);
    FILE *f = fopen (path, "w");
    ck_assert_ptr_nonnull (f);
    fputs ("{\"envelopes\":[{\"scheme\":\"exp\",\"total_cents\":100000,\"source\":\"test\"}]}", f);
    fclose (f);
    ck_assert_int_eq (budget_load (r, path, &err), 0);
    enum { N = 300 };
    budget_op_t ops[N];
    char ids[N][40];
    for (int i = 0; i < N; i++) {
        snprintf (ids[i], sizeof ids[i], "%032x", i * 2654435761u);
        ops[i] = (budget_op_t) {.scheme = "exp", .dossier = ids[i], .amount = 10,
                                .deadline_ms = 1000 + i};
    }
    ck_assert_int_eq (budget_reserve_many (r, ops, N), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq (ops[i].result, BUDGET_RESERVED);
    ck_assert_int_eq (s_hget ("qp:envelope:{exp}", "reserved"), 10 * N);
    /* A repeat answers the first entry. */
    ops[7].amount = 99;
    ck_assert_int_eq (budget_reserve_many (r, &ops[7], 1), 0);
    ck_assert_int_eq (ops[7].result, BUDGET_RESERVED);
    ck_assert_str_eq (ops[7].entry, "reserved:10");
    ck_assert_int_eq (budget_expire (r, "exp", 5000, N), N);
    ck_assert_int_eq (s_hget ("qp:envelope:{exp}", "reserved"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{exp}", "projects"), 0);
    ck_assert_int_eq (s_hget ("qp:envelope:{exp}", "available"), 100000);
    for (int i = 0; i < N; i++) {
        ops[i].commit = true;
        ck_assert_int_eq (budget_settle_many (r, &ops[i], 1), 0);
        ck_assert_str_eq (ops[i].entry, "released:10");
    }
}
END_TEST

/* phq_claim.lua for (network, person) as eligibility calls it. */
static answer_t s_phq (const char *person, const char *dossier)
{
    char bucket[128], old[256];
    qp_bucket_phq_keys ("INITIATIVE_FRANCE", person, bucket, sizeof bucket, old, sizeof old);
    const char *keys[] = {bucket, old}, *args[] = {person, dossier};
    return s_pair (qp_redis_script (r, QP_LUA_PHQ_CLAIM, 2, keys, 2, args, NULL));
}

START_TEST (test_phq_claim)
{
    /* First claim wins; the same dossier again (a redelivery) keeps it. */
    ck_answer (s_phq ("person-0000000001", "d1"), 1, "");
    ck_answer (s_phq ("person-0000000001", "d1"), 1, "d1");
    ck_answer (s_phq ("person-0000000001", "d1"), 1, "d1");
    s_do ("HSET qp:{d1}:d state ELIGIBLE");
    ck_answer (s_phq ("person-0000000001", "d2"), 0, "d1");
    ck_answer (s_phq ("person-0000000001", "d2"), 0, "d1");
    ck_answer (s_phq ("person-0000000002", "d2"), 1, "");
    /* The slot is a field of the network's bucket, a listpack; no key per person. */
    char bucket[128], old[256], got[64], cmd[300];
    qp_bucket_phq_keys ("INITIATIVE_FRANCE", "person-0000000001", bucket, sizeof bucket, old,
                        sizeof old);
    ck_assert_str_eq (old, "qp:phq:INITIATIVE_FRANCE:person-0000000001");
    ck_assert (!strncmp (bucket, "qp:phq:INITIATIVE_FRANCE:#", 26));
    snprintf (cmd, sizeof cmd, "HGET %s person-0000000001", bucket);
    s_string (got, sizeof got, cmd);
    ck_assert_str_eq (got, "d1");
    snprintf (cmd, sizeof cmd, "OBJECT ENCODING %s", bucket);
    s_string (got, sizeof got, cmd);
    ck_assert_str_eq (got, "listpack");
    snprintf (cmd, sizeof cmd, "GET %s", old);
    s_string (got, sizeof got, cmd);
    ck_assert_str_eq (got, "");
    /* Its holder ended without funding: the slot is free again. */
    s_do ("HSET qp:{d1}:d state DECLINED");
    ck_answer (s_phq ("person-0000000001", "d2"), 1, "d1");
    ck_answer (s_phq ("person-0000000001", "d1"), 1, "d2"); /* d2 is not a dossier */
}
END_TEST

/* Ids in buckets: a 32-hex id is stored as its 16 bytes, other text as it is (a 16-byte
 * text escaped, so it never meets the bytes of a hex id). */
START_TEST (test_bucket_ids_packed)
{
    const char *hex = "6162636465666768696a6b6c6d6e6f70", *text = "abcdefghijklmnop";
    const char *person = "0123456789abcdef0123456789abcdef";
    ck_answer (s_phq (person, hex), 1, "");
    s_do ("HSET qp:{6162636465666768696a6b6c6d6e6f70}:d state ELIGIBLE");
    ck_answer (s_phq (person, text), 0, hex);
    ck_answer (s_phq (person, hex), 1, hex);
    /* Both as 16 bytes in the bucket. */
    char bucket[128], old[256];
    qp_bucket_phq_keys ("INITIATIVE_FRANCE", person, bucket, sizeof bucket, old, sizeof old);
    unsigned char raw[16];
    ck_assert_int_eq (sodium_hex2bin (raw, sizeof raw, person, 32, NULL, NULL, NULL), 0);
    redisReply *reply = qp_redis_command (r, "HGET %s %b", bucket, raw, sizeof raw);
    ck_assert (reply && reply->type == REDIS_REPLY_STRING);
    ck_assert_uint_eq (reply->len, 16);
    ck_assert (!memcmp (reply->str, "abcdefghijklmnop", 16));
    freeReplyObject (reply);
    /* The text of the hex id's bytes is another dossier, in the ledger too. */
    s_envelope ("env", 1000, 0);
    ck_answer (s_reserve ("env", hex, "100"), 1, "reserved:100");
    ck_answer (s_reserve ("env", text, "200"), 1, "reserved:200");
    ck_answer (s_reserve ("env", "=x", "300"), 1, "reserved:300");
    ck_answer (s_reserve ("env", "x", "401"), 1, "refused:0");
    ck_answer (s_reserve ("env", text, "1"), 0, "reserved:200");
    ck_answer (s_reserve ("env", hex, "1"), 0, "reserved:100");
    ck_answer (s_reserve ("env", "=x", "1"), 0, "reserved:300");
    ck_answer (s_settle ("env", text, "commit", "200"), 1, "committed:200");
    ck_answer (s_settle ("env", hex, "release", "0"), 1, "released:100");
    ck_answer (s_settle ("env", "=x", "commit", "300"), 1, "committed:300");
    ck_assert_int_eq (s_hget ("env", "committed"), 500);
    ck_assert_int_eq (s_hget ("env", "reserved"), 0);
}
END_TEST

/* A slot stored before issue 8 (a string key per person) still holds: an upgraded stack
 * never grants a second PHQ to a person who has one. */
START_TEST (test_phq_claim_old_slot)
{
    s_do ("SET qp:phq:INITIATIVE_FRANCE:person-old-000001 old1");
    s_do ("HSET qp:{old1}:d state FUNDED");
    ck_answer (s_phq ("person-old-000001", "new1"), 0, "old1");
    ck_answer (s_phq ("person-old-000001", "new1"), 0, "old1");
    /* Its holder itself, again: still its own. */
    ck_answer (s_phq ("person-old-000001", "old1"), 1, "old1");
    ck_answer (s_phq ("person-old-000001", "new1"), 0, "old1");
    /* Through another network, another slot. */
    char bucket[128], old[256];
    qp_bucket_phq_keys ("FRANCE_ACTIVE", "person-old-000001", bucket, sizeof bucket, old,
                        sizeof old);
    const char *keys[] = {bucket, old}, *args[] = {"person-old-000001", "new1"};
    ck_answer (s_pair (qp_redis_script (r, QP_LUA_PHQ_CLAIM, 2, keys, 2, args, NULL)), 1, "");
    /* An old slot whose holder ended unfunded is free. */
    s_do ("SET qp:phq:INITIATIVE_FRANCE:person-old-000002 old2");
    s_do ("HSET qp:{old2}:d state UNFUNDED");
    ck_answer (s_phq ("person-old-000002", "new2"), 1, "old2");
    s_do ("HSET qp:{new2}:d state ELIGIBLE");
    ck_answer (s_phq ("person-old-000002", "new3"), 0, "new2");
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
 * unless ""), adds inc to slot 1 of vector VEC (the argument "#1 INC"). Returns the number
 * of dossiers at fault (0: applied). */
#define VEC "qp:eval:v:T1|2025-01|RETAIL_AND_CRAFTS|*"
#define PB "qp:eval:p:7"
static size_t s_apply (const char *dossier, const char *expect, const char *value,
                       const char *old, const char *inc)
{
    const char *keys[] = {"ev:cells", "ev:territories", "ev:meta"};
    char ops[64]; /* a vector's increments in one argument: "#SLOT VALUE ..." */
    snprintf (ops, sizeof ops, "#1 %s", inc);
    const char *args[] = {"apply", "1", PB, dossier, expect, value, old,
                          "1", VEC, ops,
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
    tcase_add_checked_fixture (tc, qp_test_redis_setup, qp_test_redis_teardown);
    tcase_add_test (tc, test_reserve_idempotent);
    tcase_add_test (tc, test_reserve_over_total);
    tcase_add_test (tc, test_reserve_max_projects);
    tcase_add_test (tc, test_settle);
    tcase_add_test (tc, test_ledger_in_buckets);
    tcase_add_test (tc, test_ledger_old_entries);
    tcase_add_test (tc, test_ledger_expire_finds_every_bucket);
    tcase_add_test (tc, test_phq_claim);
    tcase_add_test (tc, test_phq_claim_old_slot);
    tcase_add_test (tc, test_bucket_ids_packed);
    tcase_add_test (tc, test_pending_claim);
    tcase_add_test (tc, test_eval_apply_once);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
