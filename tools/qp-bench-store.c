/* qp-bench-store: Redis's own cost of the dossier store's per-dossier scripts, alone, so
 * that a change to dossier_create.lua / dossier_transition.lua / qp_store.c can be
 * compared on a machine other programs are loading (the whole stack's figures cannot).
 * Starts a private redis-server as deployed (AOF everysec, hash-max-listpack-value 2048;
 * automatic AOF rewrites off: the rewriting child's CPU is the stack benchmark's), then
 * stores N dossiers of the integration tests' mix (tests/support/qp_test_sample.c) and
 * walks each through the steps it takes in the stack, in batches of B as the services
 * send them (qp_store_creates, qp_store_transitions), each step with one event of the
 * size of a real envelope in the outbox:
 *   create                  RECEIVED, as intake stores it
 *   eligible                RECEIVED -> ELIGIBLE, the decision as a field (eligibility)
 *   funding requested       ELIGIBLE -> FUNDING_REQUESTED, the request as a field (funding)
 *   funded                  FUNDING_REQUESTED -> FUNDED, final_reason and committed_cents
 * The outbox is emptied between steps, untimed (the evaluation removes events in the
 * stack). Prints per step Redis's CPU per dossier (INFO cpu of the server's main process:
 * what the scripts, their commands, the replies and the AOF writes cost it), the commands
 * per dossier (INFO commandstats, those scripts run included), the AOF bytes written per
 * dossier, and the wall time per dossier; --json FILE writes the same; --smoke runs 2,000
 * dossiers. Asserts nothing.
 *
 *   qp-bench-store [--smoke] [--json FILE] [--dossiers N] [--batch B] [--no-aof]
 *
 * --no-aof runs Redis without its AOF: what persisting the steps costs it.
 */
#include "bench_support.h"
#include "qp_store.h"
#include "qp_test_sample.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_BYTES 435 /* an outbox member in the stack: type, NUL, packed Envelope */

/* Redis's main process CPU seconds (user + system), -1 when unknown. */
static double s_redis_cpu (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "INFO cpu");
    double v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *u = strstr (r->str, "\nused_cpu_user:");
        const char *s = strstr (r->str, "\nused_cpu_sys:");
        if (u && s)
            v = atof (u + 15) + atof (s + 14);
    }
    if (r)
        freeReplyObject (r);
    return v;
}

/* Commands Redis ran (INFO commandstats, scripts' own commands included). */
static long long s_redis_commands (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "INFO commandstats");
    long long n = 0;
    if (r && r->type == REDIS_REPLY_STRING)
        for (const char *p = strstr (r->str, "calls="); p; p = strstr (p + 6, "calls="))
            n += atoll (p + 6);
    if (r)
        freeReplyObject (r);
    return n;
}

/* The AOF's size once Redis has written what it buffered (aof_buffer_length 0; everysec
 * may postpone a write while a fsync runs, up to 2 s); 0 without AOF. */
static long long s_aof_size (qp_redis_t *redis)
{
    for (int waited = 0; waited < 3000; waited += 20) {
        if (bench_redis_info (redis, "persistence", "aof_buffer_length") <= 0)
            break;
        zclock_sleep (20);
    }
    long long size = bench_redis_info (redis, "persistence", "aof_current_size");
    return size < 0 ? 0 : size;
}

typedef struct {
    const char *name;
    Qp__V1__DossierState expected, next; /* expected 0: the creation */
    const char *field;                   /* written with the step (NULL: none) */
    size_t field_bytes;
} step_t;

static const step_t s_steps[] = {
    {"create", 0, QP__V1__DOSSIER_STATE__RECEIVED, NULL, 0},
    {"eligible", QP__V1__DOSSIER_STATE__RECEIVED, QP__V1__DOSSIER_STATE__ELIGIBLE, "eligibility",
     180},
    {"funding requested", QP__V1__DOSSIER_STATE__ELIGIBLE,
     QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, "request", 120},
    {"funded", QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, QP__V1__DOSSIER_STATE__FUNDED,
     "committed_cents", 7},
};
#define N_STEPS (sizeof s_steps / sizeof s_steps[0])

/* Runs one step for dossiers [0, n) in batches of batch; returns how many applied. */
static long s_run_step (qp_redis_t *redis, const step_t *step, long n, size_t batch,
                        qp_test_sample_t *samples, char (*ids)[40])
{
    static char event[EVENT_BYTES], value[256];
    memset (event, 'e', sizeof event);
    memset (value, 'v', sizeof value);
    qp_store_blob_t *events = calloc (batch, sizeof *events);
    qp_store_creation_t *creations = calloc (batch, sizeof *creations);
    qp_store_step_t *steps = calloc (batch, sizeof *steps);
    char (*marks)[16] = calloc (batch, sizeof *marks);
    long applied = 0;
    for (long from = 0; from < n; from += (long) batch) {
        size_t m = (size_t) (n - from) < batch ? (size_t) (n - from) : batch;
        for (size_t j = 0; j < m; j++) {
            /* Each event distinct (the outbox is a set), the size of a real one. */
            snprintf (marks[j], sizeof marks[j], "%08ld%s", from + (long) j, step->name);
            memcpy (event, marks[j], 8);
            events[j].data = malloc (EVENT_BYTES);
            memcpy (events[j].data, event, EVENT_BYTES);
            events[j].len = EVENT_BYTES;
        }
        if (!step->expected) {
            for (size_t j = 0; j < m; j++) {
                qp_test_sample_t *s = &samples[from + (long) j];
                creations[j] = (qp_store_creation_t){.id = ids[from + (long) j],
                                                     .dossier = &s->dossier,
                                                     .territory = "roubaix",
                                                     .event_time_ms = 1700000000000,
                                                     .message_id = "0123456789abcdef0123456789abcdef",
                                                     .events = &events[j],
                                                     .n_events = 1};
            }
            applied += (long) qp_store_creates (redis, creations, m, NULL, 0);
        } else {
            qp_store_field_t field = {step->field, value, step->field_bytes};
            for (size_t j = 0; j < m; j++)
                steps[j] = (qp_store_step_t){.id = ids[from + (long) j],
                                             .expected = step->expected,
                                             .next = step->next,
                                             .at_ms = 1700000000000,
                                             .message_id = "0123456789abcdef0123456789abcdef",
                                             .note = "bench",
                                             .fields = step->field ? &field : NULL,
                                             .n_fields = step->field ? 1 : 0,
                                             .events = &events[j],
                                             .n_events = 1};
            applied += (long) qp_store_transitions (redis, steps, m, NULL, 0);
        }
        for (size_t j = 0; j < m; j++)
            free (events[j].data);
    }
    free (events), free (creations), free (steps), free (marks);
    return applied;
}

int main (int argc, char **argv)
{
    long n = 50000;
    size_t batch = 64;
    const char *json_path = NULL;
    bool aof = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--smoke"))
            n = 2000;
        else if (!strcmp (argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp (argv[i], "--dossiers") && i + 1 < argc)
            n = atol (argv[++i]);
        else if (!strcmp (argv[i], "--no-aof"))
            aof = false;
        else if (!strcmp (argv[i], "--batch") && i + 1 < argc)
            batch = (size_t) atol (argv[++i]);
        else {
            fprintf (stderr, "usage: qp-bench-store [--smoke] [--json FILE] [--dossiers N] "
                             "[--batch B] [--no-aof]\n");
            return 2;
        }
    }
    if (n < 1 || batch < 1)
        return 2;
    setvbuf (stdout, NULL, _IOLBF, 0);
    const char *settings[] = {"--appendonly", aof ? "yes" : "no", "--appendfsync", "everysec",
                              "--auto-aof-rewrite-percentage", "0", NULL}; /* no rewrites */
    bench_redis_t server;
    qp_redis_t *redis = bench_redis_start (&server, settings) == 0 ? server.redis : NULL;
    int rc = redis ? 0 : 1;
    json_t *doc = json_pack ("{s:i, s:i, s:i, s:[]}", "dossiers", (json_int_t) n, "batch",
                             (json_int_t) batch, "event_bytes", (json_int_t) EVENT_BYTES,
                             "steps");
    qp_test_sample_t *samples = calloc ((size_t) n, sizeof *samples);
    char (*ids)[40] = calloc ((size_t) n, sizeof *ids);
    if (redis && samples && ids) {
        for (long i = 0; i < n; i++) {
            qp_test_sample (&samples[i], "guichet-bpifrance", "bench", (int) i);
            snprintf (ids[i], sizeof ids[i], "%032lx", 0x5eed0000L + i);
        }
        printf ("The dossier store's scripts in Redis alone: %ld dossiers in batches of %zu, "
                "one %d-byte event per step\n(Redis CPU: its main process, INFO cpu; AOF "
                "everysec, no rewrites)\n\n",
                n, batch, EVENT_BYTES);
        printf ("| step              | applied | Redis CPU µs/dossier | commands/dossier | AOF "
                "B/dossier | wall µs/dossier |\n");
        printf ("|-------------------|--------:|---------------------:|-----------------:|----"
                "---------:|----------------:|\n");
        double cpu_all = 0;
        for (size_t k = 0; k < N_STEPS; k++) {
            redisReply *del = qp_redis_command (redis, "DEL %s", QP_STORE_OUTBOX_KEY); /* untimed */
            if (del)
                freeReplyObject (del);
            long long aof0 = s_aof_size (redis); /* first: its polls are not the step's */
            double cpu0 = s_redis_cpu (redis);
            long long cmd0 = s_redis_commands (redis);
            double t0 = bench_now ();
            long applied = s_run_step (redis, &s_steps[k], n, batch, samples, ids);
            double wall = bench_now () - t0;
            double cpu = s_redis_cpu (redis) - cpu0;
            /* the two INFO calls between are counted too: negligible at N dossiers */
            double cmds = (double) (s_redis_commands (redis) - cmd0) / (double) n;
            double aof = (double) (s_aof_size (redis) - aof0) / (double) n;
            cpu_all += cpu;
            printf ("| %-17s | %7ld | %20.2f | %16.1f | %13.0f | %15.2f |\n", s_steps[k].name,
                    applied, cpu * 1e6 / (double) n, cmds, aof, wall * 1e6 / (double) n);
            json_array_append_new (
                json_object_get (doc, "steps"),
                json_pack ("{s:s, s:i, s:f, s:f, s:f, s:f}", "step", s_steps[k].name, "applied",
                           (json_int_t) applied, "redis_cpu_us_per_dossier",
                           cpu * 1e6 / (double) n, "commands_per_dossier", cmds,
                           "aof_bytes_per_dossier", aof, "wall_us_per_dossier",
                           wall * 1e6 / (double) n));
            if (applied != n)
                rc = 1; /* a step that did not apply is a broken bench, not a figure */
        }
        printf ("\nall steps: %.2f µs of Redis CPU per dossier\n", cpu_all * 1e6 / (double) n);
        json_object_set_new (doc, "redis_cpu_us_per_dossier", json_real (cpu_all * 1e6 / (double) n));
    }
    free (samples);
    free (ids);
    if (redis && bench_redis_stop (&server) != 0)
        rc = 1;
    if (json_path && json_dump_file (doc, json_path, JSON_INDENT (2)) != 0) {
        fprintf (stderr, "qp-bench-store: cannot write %s\n", json_path);
        rc = 1;
    }
    json_decref (doc);
    return rc;
}
