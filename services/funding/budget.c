/* Budget envelopes: the Lua scripts envelope_reserve, envelope_settle, envelope_expire. */
#include "budget.h"
#include "qp_bucket.h"
#include "qp_log.h"
#include <jansson.h>
#include <string.h>

typedef struct {
    char env[128], ledger[160], old_ledger[140], ledger_prefix[150], deadlines[140],
        right_prefix[140], right[200];
} keys_t;

/* The keys of scheme, the drawing right of territory and the ledger bucket of dossier
 * (both may be NULL). */
static void s_keys (keys_t *k, const char *scheme, const char *territory, const char *dossier)
{
    snprintf (k->env, sizeof k->env, "qp:envelope:{%s}", scheme);
    snprintf (k->old_ledger, sizeof k->old_ledger, "%s:ledger", k->env);
    snprintf (k->ledger_prefix, sizeof k->ledger_prefix, "%s:", k->old_ledger);
    snprintf (k->ledger, sizeof k->ledger, "%s%u", k->ledger_prefix,
              dossier ? (unsigned) qp_bucket_of (dossier) : 0u);
    snprintf (k->deadlines, sizeof k->deadlines, "%s:deadlines", k->env);
    snprintf (k->right_prefix, sizeof k->right_prefix, "%s:t:", k->env);
    snprintf (k->right, sizeof k->right, "%s%s", k->right_prefix, territory ? territory : "");
}

/* HSETNX of a whole hash: created only when absent, so a restart never resets the books. */
static int s_create (qp_redis_t *redis, const char *key, int64_t total, int64_t max_projects)
{
    redisReply *r = qp_redis_command (redis, "EVAL %s 1 %s %lld %lld",
                                      "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
                                      "redis.call('HSET', KEYS[1], 'total', ARGV[1], 'available', "
                                      "ARGV[1], 'reserved', 0, 'committed', 0, 'projects', 0) "
                                      "if ARGV[2] ~= '0' then redis.call('HSET', KEYS[1], "
                                      "'max_projects', ARGV[2]) end return 1",
                                      key, (long long) total, (long long) max_projects);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int) r->integer : -1;
    if (r)
        freeReplyObject (r);
    return rc;
}

int budget_load (qp_redis_t *redis, const char *path, qp_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_load_file (path, 0, &jerr);
    if (!doc) {
        qp_error_set (err, "bad_envelopes", path, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    int rc = 0;
    json_t *list = json_object_get (doc, "envelopes");
    json_t *rights = json_object_get (doc, "drawing_rights");
    if (!json_is_array (list) || (rights && !json_is_array (rights))) {
        qp_error_set (err, "bad_envelopes", path,
                      "%s: \"envelopes\" (and \"drawing_rights\" when given) must be arrays", path);
        rc = -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach (list, i, e) {
        const char *scheme = json_string_value (json_object_get (e, "scheme"));
        json_t *total = json_object_get (e, "total_cents");
        json_t *max = json_object_get (e, "max_projects");
        if (rc || !scheme || !json_is_integer (total) || json_integer_value (total) < 0 ||
            (max && !json_is_integer (max)) ||
            !json_string_value (json_object_get (e, "source"))) {
            qp_error_set (err, "bad_envelopes", path,
                          "%s: envelopes[%zu] needs scheme, total_cents ≥ 0, source "
                          "(max_projects an integer when given)",
                          path, i);
            rc = -1;
            break;
        }
        keys_t k;
        s_keys (&k, scheme, NULL, NULL);
        if (s_create (redis, k.env, json_integer_value (total),
                      max ? json_integer_value (max) : 0) == 1)
            qp_log_info ("envelope_created", "envelope %s: %lld cents", scheme,
                         (long long) json_integer_value (total));
    }
    json_array_foreach (rights, i, e) {
        const char *scheme = json_string_value (json_object_get (e, "scheme"));
        const char *territory = json_string_value (json_object_get (e, "territory"));
        json_t *total = json_object_get (e, "total_cents");
        if (rc || !scheme || !territory || !*territory || strchr (territory, '@') ||
            !json_is_integer (total) || json_integer_value (total) < 0) {
            qp_error_set (err, "bad_envelopes", path,
                          "%s: drawing_rights[%zu] needs scheme, territory, total_cents ≥ 0",
                          path, i);
            rc = -1;
            break;
        }
        keys_t k;
        s_keys (&k, scheme, territory, NULL);
        if (s_create (redis, k.right, json_integer_value (total), 0) == 1)
            qp_log_info ("drawing_right_created", "drawing right %s/%s: %lld cents", scheme,
                         territory, (long long) json_integer_value (total));
    }
    json_decref (doc);
    return rc;
}

/* One {code, entry} pair into op; -2 when it is not one. */
static int s_pair (const redisReply *r, budget_op_t *op)
{
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
        snprintf (op->entry, sizeof op->entry, "%s", r->element[1]->str);
        return (int) r->element[0]->integer;
    }
    return -2;
}

/* Runs one script over n operations (5 keys each) and gives each its {code, entry}:
 * the script answers the pair alone for one operation, an array of pairs for more. */
static int s_run (qp_redis_t *redis, qp_lua_script_t script, budget_op_t *ops, size_t n,
                  const char **keys, int nargs, const char **args, int *codes)
{
    redisReply *r = qp_redis_script (redis, script, (int) (5 * n), keys, nargs, args, NULL);
    int rc = 0;
    if (n == 1)
        codes[0] = s_pair (r, &ops[0]);
    else if (r && r->type == REDIS_REPLY_ARRAY && r->elements == n)
        for (size_t i = 0; i < n; i++)
            codes[i] = s_pair (r->element[i], &ops[i]);
    else
        for (size_t i = 0; i < n; i++)
            codes[i] = -2;
    for (size_t i = 0; i < n; i++)
        if (codes[i] == -2) {
            qp_log_error ("redis_error", "envelope script on %s: %s", ops[i].scheme,
                          r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
            rc = -1;
            break;
        }
    if (r)
        freeReplyObject (r);
    return rc;
}

int budget_reserve_many (qp_redis_t *redis, budget_op_t *ops, size_t n)
{
    if (!n)
        return 0;
    keys_t *k = malloc (n * sizeof *k);
    const char **keys = malloc (5 * n * sizeof *keys), **args = malloc (4 * n * sizeof *args);
    char (*nums)[2][24] = malloc (n * sizeof *nums);
    int *codes = malloc (n * sizeof *codes);
    for (size_t i = 0; i < n; i++) {
        s_keys (&k[i], ops[i].scheme, ops[i].territory, ops[i].dossier);
        snprintf (nums[i][0], sizeof nums[i][0], "%lld", (long long) ops[i].amount);
        snprintf (nums[i][1], sizeof nums[i][1], "%lld", (long long) ops[i].deadline_ms);
        const char *ki[] = {k[i].env, k[i].ledger, k[i].old_ledger, k[i].right, k[i].deadlines};
        const char *ai[] = {ops[i].dossier, nums[i][0], ops[i].territory ? ops[i].territory : "",
                            nums[i][1]};
        memcpy (keys + 5 * i, ki, sizeof ki);
        memcpy (args + 4 * i, ai, sizeof ai);
    }
    int rc = s_run (redis, QP_LUA_ENVELOPE_RESERVE, ops, n, keys, (int) (4 * n), args, codes);
    for (size_t i = 0; i < n; i++)
        ops[i].result = rc ? BUDGET_ERROR
                        : codes[i] == -1                        ? BUDGET_NO_ENVELOPE
                        : !strncmp (ops[i].entry, "reserved:", 9) ? BUDGET_RESERVED
                        : !strncmp (ops[i].entry, "refused:", 8)  ? BUDGET_REFUSED
                                                                  : BUDGET_SETTLED;
    free (k), free (keys), free (args), free (nums), free (codes);
    return rc;
}

int budget_settle_many (qp_redis_t *redis, budget_op_t *ops, size_t n)
{
    if (!n)
        return 0;
    keys_t *k = malloc (n * sizeof *k);
    const char **keys = malloc (5 * n * sizeof *keys), **args = malloc (3 * n * sizeof *args);
    char (*nums)[24] = malloc (n * sizeof *nums);
    int *codes = malloc (n * sizeof *codes);
    for (size_t i = 0; i < n; i++) {
        s_keys (&k[i], ops[i].scheme, NULL, ops[i].dossier);
        snprintf (nums[i], sizeof nums[i], "%lld", (long long) ops[i].amount);
        const char *ki[] = {k[i].env, k[i].ledger, k[i].old_ledger, k[i].deadlines,
                            k[i].right_prefix};
        const char *ai[] = {ops[i].dossier, ops[i].commit ? "commit" : "release", nums[i]};
        memcpy (keys + 5 * i, ki, sizeof ki);
        memcpy (args + 3 * i, ai, sizeof ai);
    }
    int rc = s_run (redis, QP_LUA_ENVELOPE_SETTLE, ops, n, keys, (int) (3 * n), args, codes);
    for (size_t i = 0; i < n; i++)
        ops[i].result = rc ? BUDGET_ERROR : codes[i] == -1 ? BUDGET_NO_ENVELOPE : BUDGET_SETTLED;
    free (k), free (keys), free (args), free (nums), free (codes);
    return rc;
}

int budget_expire (qp_redis_t *redis, const char *scheme, int64_t now_ms, int limit)
{
    keys_t k;
    s_keys (&k, scheme, NULL, NULL);
    char now[24], lim[16], buckets[16];
    snprintf (now, sizeof now, "%lld", (long long) now_ms);
    snprintf (lim, sizeof lim, "%d", limit);
    snprintf (buckets, sizeof buckets, "%d", QP_BUCKETS);
    const char *keys[] = {k.env, k.old_ledger, k.deadlines, k.right_prefix, k.ledger_prefix};
    const char *args[] = {now, lim, buckets};
    redisReply *r = qp_redis_script (redis, QP_LUA_ENVELOPE_EXPIRE, 5, keys, 3, args, NULL);
    int n = r && r->type == REDIS_REPLY_ARRAY ? (int) r->elements : 0;
    for (int i = 0; i < n; i++)
        qp_log_warn ("reservation_expired", "dossier %s: reservation in %s passed its deadline, "
                     "released", r->element[i]->str, scheme);
    if (r)
        freeReplyObject (r);
    return n;
}

int64_t budget_entry_amount (const char *entry)
{
    const char *colon = entry ? strchr (entry, ':') : NULL;
    return colon ? atoll (colon + 1) : 0;
}
