/* qp-bench-slots: Redis bytes per dossier of the two records every dossier leaves beside
 * its own keys, the PHQ slot of its holder and its envelope ledger entry, in the form
 * stored before issue 8 (a string key per person, one ledger hash per scheme) and in
 * buckets (qp_bucket.h). Starts a private redis-server with the deployed hash settings
 * (hash-max-listpack-value 2048; AOF off: it does not change what a key weighs), then
 * for N dossiers (32-hex ids and person keys, as intake makes them):
 *   old form: SET qp:phq:INITIATIVE_FRANCE:PERSON ID and HSET qp:envelope:{phq}:ledger ID
 *             committed:N, what phq_claim.lua and envelope_settle.lua wrote before;
 *   buckets:  phq_claim.lua, envelope_reserve.lua then envelope_settle.lua (commit), the
 *             scripts themselves with the keys eligibility.c and budget.c pass.
 * Prints, per key kind, MEMORY USAGE (SAMPLES 0) summed over its keys ÷ N, the number of
 * keys and how many buckets are hashtables rather than listpacks, and used_memory's
 * growth ÷ N; --json FILE writes the same; --smoke runs 2,000 dossiers. Asserts nothing.
 * --text-persons gives person keys as qp-bench-stack does ("p1" and 30 digits, not hex,
 * so stored as they are).
 *
 *   qp-bench-slots [--smoke] [--json FILE] [--dossiers N] [--text-persons]
 */
#include "bench_support.h"
#include "qp_bucket.h"
#include "qp_redis.h"
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TARGET_PER_DOSSIER 2048 /* issue 8: all of a dossier's Redis bytes */
#define BATCH 1000

typedef struct {
    const char *name;
    double bytes;   /* MEMORY USAGE summed */
    long keys;      /* keys of the kind */
    long hashtable; /* of which hashtable-encoded hashes */
} kind_t;

static bool s_text_persons;

/* A 32-hex digest of (what, i): a dossier id or a person key as the stack makes them. */
static void s_hex (char out[33], const char *what, long i)
{
    if (s_text_persons && !strcmp (what, "person")) {
        snprintf (out, 33, "p1%030ld", i);
        return;
    }
    char text[64];
    unsigned char h[16];
    int n = snprintf (text, sizeof text, "%s-%ld", what, i);
    crypto_generichash (h, sizeof h, (const unsigned char *)text, (size_t)n, NULL, 0);
    sodium_bin2hex (out, 33, h, sizeof h);
}

/* The old form, as the scripts wrote it before issue 8. */
static int s_fill_old (qp_redis_t *redis, long n)
{
    for (long i = 0; i < n; i++) {
        char id[33], person[33];
        s_hex (id, "dossier", i), s_hex (person, "person", i);
        redisReply *r = qp_redis_command (redis, "SET qp:phq:INITIATIVE_FRANCE:%s %s", person, id);
        redisReply *l = qp_redis_command (redis, "HSET qp:envelope:{phq}:ledger %s committed:%ld",
                                          id, 100000 + i * 7919 % 1400000);
        int bad = !r || r->type == REDIS_REPLY_ERROR || !l || l->type == REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject (r);
        if (l)
            freeReplyObject (l);
        if (bad)
            return -1;
    }
    return 0;
}

/* Buckets, through the scripts, BATCH calls of a kind per round trip. */
static int s_fill_buckets (qp_redis_t *redis, long n)
{
    static char ids[BATCH][33], persons[BATCH][33], amounts[BATCH][24];
    static char phq_bucket[BATCH][128], phq_old[BATCH][256], ledger[BATCH][160];
    static const char *keys[BATCH][5], *args[BATCH][4];
    static qp_redis_call_t calls[BATCH];
    static redisReply *replies[BATCH];
    const char *env = "qp:envelope:{phq}", *old_ledger = "qp:envelope:{phq}:ledger",
               *deadlines = "qp:envelope:{phq}:deadlines", *rights = "qp:envelope:{phq}:t:";
    for (long base = 0; base < n; base += BATCH) {
        size_t m = (size_t)(n - base < BATCH ? n - base : BATCH);
        for (int step = 0; step < 3; step++) {
            for (size_t j = 0; j < m; j++) {
                long i = base + (long)j;
                s_hex (ids[j], "dossier", i), s_hex (persons[j], "person", i);
                snprintf (amounts[j], sizeof amounts[j], "%ld", 100000 + i * 7919 % 1400000);
                snprintf (ledger[j], sizeof ledger[j], "%s:%u", old_ledger,
                          (unsigned)qp_bucket_of (ids[j]));
                qp_redis_call_t *c = &calls[j];
                if (step == 0) { /* eligibility's claim */
                    qp_bucket_phq_keys ("INITIATIVE_FRANCE", persons[j], phq_bucket[j],
                                        sizeof phq_bucket[j], phq_old[j], sizeof phq_old[j]);
                    keys[j][0] = phq_bucket[j], keys[j][1] = phq_old[j];
                    args[j][0] = persons[j], args[j][1] = ids[j];
                    *c = (qp_redis_call_t){QP_LUA_PHQ_CLAIM, 2, keys[j], 2, args[j], NULL};
                } else if (step == 1) { /* funding's reservation, then its commit */
                    keys[j][0] = env, keys[j][1] = ledger[j], keys[j][2] = old_ledger;
                    keys[j][3] = rights, keys[j][4] = deadlines;
                    args[j][0] = ids[j], args[j][1] = amounts[j], args[j][2] = "";
                    args[j][3] = "9999999999999";
                    *c = (qp_redis_call_t){QP_LUA_ENVELOPE_RESERVE, 5, keys[j], 4, args[j], NULL};
                } else {
                    keys[j][0] = env, keys[j][1] = ledger[j], keys[j][2] = old_ledger;
                    keys[j][3] = deadlines, keys[j][4] = rights;
                    args[j][0] = ids[j], args[j][1] = "commit", args[j][2] = amounts[j];
                    *c = (qp_redis_call_t){QP_LUA_ENVELOPE_SETTLE, 5, keys[j], 3, args[j], NULL};
                }
            }
            int rc = qp_redis_scripts (redis, calls, m, replies);
            for (size_t j = 0; j < m; j++) {
                if (!replies[j] || replies[j]->type != REDIS_REPLY_ARRAY) {
                    fprintf (stderr, "qp-bench-slots: step %d: %s\n", step,
                             replies[j] && replies[j]->type == REDIS_REPLY_ERROR ? replies[j]->str
                                                                                 : "no reply");
                    rc = -1;
                }
                if (replies[j])
                    freeReplyObject (replies[j]);
            }
            if (rc)
                return -1;
        }
    }
    return 0;
}

/* MEMORY USAGE of every key, summed by kind: 0 PHQ slots, 1 ledger, 2 the rest. */
static void s_census (qp_redis_t *redis, kind_t kinds[3])
{
    unsigned long long cursor = 0;
    do {
        redisReply *r = qp_redis_command (redis, "SCAN %llu COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject (r);
            return;
        }
        cursor = strtoull (r->element[0]->str, NULL, 10);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            int k = !strncmp (key, "qp:phq:", 7)                     ? 0
                    : !strncmp (key, "qp:envelope:{phq}:ledger", 24) ? 1
                                                                     : 2;
            redisReply *u = qp_redis_command (redis, "MEMORY USAGE %s SAMPLES 0", key);
            redisReply *e = qp_redis_command (redis, "OBJECT ENCODING %s", key);
            if (u && u->type == REDIS_REPLY_INTEGER)
                kinds[k].bytes += (double)u->integer;
            kinds[k].keys++;
            if (e && e->type == REDIS_REPLY_STRING && !strcmp (e->str, "hashtable"))
                kinds[k].hashtable++;
            if (u)
                freeReplyObject (u);
            if (e)
                freeReplyObject (e);
        }
        freeReplyObject (r);
    } while (cursor);
}

/* One form: fills, counts, prints its rows, adds them to out. */
static int s_form (qp_redis_t *redis, const char *form, long n, json_t *out)
{
    redisReply *r = qp_redis_command (redis, "FLUSHALL");
    if (r)
        freeReplyObject (r);
    r = qp_redis_command (redis, "HSET qp:envelope:{phq} total 100000000000000000 available "
                                 "100000000000000000 reserved 0 committed 0 projects 0");
    if (r)
        freeReplyObject (r);
    long long before = bench_redis_info (redis, "memory", "used_memory");
    int rc = !strcmp (form, "old") ? s_fill_old (redis, n) : s_fill_buckets (redis, n);
    if (rc) {
        fprintf (stderr, "qp-bench-slots: filling the %s form failed\n", form);
        return -1;
    }
    long long after = bench_redis_info (redis, "memory", "used_memory");
    kind_t kinds[3] = {{"qp:phq:* (PHQ slots)", 0, 0, 0},
                       {"qp:envelope:{phq}:ledger* (ledger)", 0, 0, 0},
                       {"other (envelope, deadlines)", 0, 0, 0}};
    s_census (redis, kinds);
    json_t *rows = json_object ();
    for (int k = 0; k < 2; k++) {
        printf ("| %-7s | %-36s | %8.1f | %7ld | %9ld |\n", form, kinds[k].name,
                kinds[k].bytes / (double)n, kinds[k].keys, kinds[k].hashtable);
        json_object_set_new (rows, k ? "ledger" : "phq",
                             json_pack ("{s:f, s:i, s:i}", "bytes_per_dossier",
                                        kinds[k].bytes / (double)n, "keys",
                                        (json_int_t)kinds[k].keys, "hashtable_keys",
                                        (json_int_t)kinds[k].hashtable));
    }
    double both = (kinds[0].bytes + kinds[1].bytes) / (double)n;
    double used = (double)(after - before) / (double)n;
    printf ("| %-7s | %-36s | %8.1f |         |           |\n", form, "both", both);
    printf ("| %-7s | %-36s | %8.1f |         |           |\n", form, "used_memory growth", used);
    json_object_set_new (rows, "both_bytes_per_dossier", json_real (both));
    json_object_set_new (rows, "used_memory_per_dossier", json_real (used));
    json_object_set_new (out, form, rows);
    return 0;
}

int main (int argc, char **argv)
{
    long n = 100000;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--smoke"))
            n = 2000;
        else if (!strcmp (argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp (argv[i], "--dossiers") && i + 1 < argc)
            n = atol (argv[++i]);
        else if (!strcmp (argv[i], "--text-persons"))
            s_text_persons = true;
        else {
            fprintf (stderr, "usage: qp-bench-slots [--smoke] [--json FILE] [--dossiers N] "
                             "[--text-persons]\n");
            return 2;
        }
    }
    if (n < 1 || sodium_init () < 0)
        return 2;
    const char *settings[] = {"--appendonly", "no", NULL}; /* a key weighs the same */
    bench_redis_t server;
    qp_redis_t *redis = bench_redis_start (&server, settings) == 0 ? server.redis : NULL;
    int rc = redis ? 0 : 1;
    json_t *doc =
        json_pack ("{s:i, s:i, s:i, s:s}", "dossiers", (json_int_t)n, "buckets",
                   (json_int_t)QP_BUCKETS, "target_bytes_per_dossier_all_keys",
                   (json_int_t)TARGET_PER_DOSSIER, "person_keys", s_text_persons ? "text" : "hex");
    if (redis) {
        printf ("Redis bytes per dossier of the PHQ slot and the ledger entry, %ld dossiers, "
                "%d buckets per network / scheme, %s person keys\n(MEMORY USAGE SAMPLES 0 "
                "summed ÷ dossiers; issue 8's target, %d B, is for all of a dossier's keys)\n\n",
                n, QP_BUCKETS, s_text_persons ? "text" : "32-hex", TARGET_PER_DOSSIER);
        printf ("| form    | key kind                             | B/dossier |    keys | "
                "hashtables |\n");
        printf ("|---------|--------------------------------------|---------:|--------:|----------:"
                "|\n");
        rc = s_form (redis, "old", n, doc) || s_form (redis, "buckets", n, doc);
        if (bench_redis_stop (&server) != 0)
            rc = 1;
    }
    if (json_path && json_dump_file (doc, json_path, JSON_INDENT (2)) != 0) {
        fprintf (stderr, "qp-bench-slots: cannot write %s\n", json_path);
        rc = 1;
    }
    json_decref (doc);
    return rc;
}
