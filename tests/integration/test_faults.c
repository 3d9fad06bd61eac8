/* Fault tests, with real processes: while dossiers are submitted (pipelined), each kind of
 * program is killed with SIGKILL in turn and restarted -- the bus, intake, eligibility,
 * funding, evaluation, the recorder, a partner component -- then Redis is restarted
 * (SIGTERM: AOF everysec loses nothing). After each fault, every dossier intake
 * acknowledged must reach exactly one terminal state, the envelope's books must balance
 * and the evaluation must count each dossier once, from the event stream alone (no
 * rebuild: the evaluation removes an event from the outbox only once it has counted it,
 * so what the bus, its own death or Redis's took from it is published again). A last phase kills Redis with SIGKILL
 * and only reports what AOF everysec lost (its documented contract: up to 1 s of writes).
 *
 * QP_FAULT_DOSSIERS (default 20000, the size: ~3 minutes here) sets the size of
 * the run. Submissions that get no
 * reply (intake or the bus down) are sent again with the same channel key, as a real
 * client does: intake is idempotent. Figures go to stderr. */
#include "qp_test.h"
#include "qp_test_sample.h"
#include "qp_test_suite.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#define BATCH 250

static const char *const s_programs[] = {"intake",     "eligibility",       "funding",
                                         "evaluation", "partner-bpifrance", NULL};
static const char *const s_ready[] = {
    "intake", "eligibility", "funding", "evaluation", "partner.BPIFRANCE.bpifrance-default", NULL};

static int64_t s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The dossiers are test_flow's mix (qp_test_sample): most funded, some declined, some not
 * eligible. */

/* ---- The run's state ---------------------------------------------------------------- */

static int s_total;                  /* dossiers of the run */
static char (*s_ids)[QP_ID_HEX + 1]; /* dossier id once acknowledged, "" before */
static int s_resent;                 /* submissions sent again for want of a reply */
static long s_redispatched;          /* "redispatch" lines of killed sweepers' logs */
static int s_eval_late;              /* events the evaluation counted late (redelivered) */
static unsigned char *s_sent;        /* sent at least once */

/* Sends dossiers [from, to) until each is acknowledged; unanswered or refused-for-now
 * ones (no route, store unavailable) are sent again with the same channel key. */
static void s_submit (qp_test_stack_t *stack, int from, int to)
{
    qp_message_t replies[BATCH];
    int which[BATCH];
    int64_t deadline = s_now_ms () + 120000;
    while (true) {
        int n = 0;
        for (int i = from; i < to && n < BATCH; i++)
            if (!s_ids[i][0])
                which[n++] = i;
        if (n == 0)
            return;
        ck_assert_msg (s_now_ms () < deadline, "dossiers %d.. not acknowledged in 120 s", which[0]);
        for (int j = 0; j < n; j++) {
            s_resent += s_sent[which[j]];
            s_sent[which[j]] = 1;
        }
        /* A fresh client each round: a DEALER's queue to a killed bus is lost anyway. */
        qp_test_client_t *client = qp_test_client_new (stack->work);
        ck_assert_ptr_nonnull (client);
        qp_test_sample_send (client, "test-faults", "fault", which, 0, (size_t)n, 5000, replies);
        qp_test_client_destroy (&client);
        int missing = 0;
        for (int j = 0; j < n; j++) {
            if (replies[j].descriptor == &qp__v1__submit_dossier_reply__descriptor) {
                Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *)replies[j].payload;
                if (r->accepted)
                    snprintf (s_ids[which[j]], QP_ID_HEX + 1, "%s", r->dossier_id);
                else if (r->n_errors && strcmp (r->errors[0]->code, "internal") != 0)
                    ck_abort_msg ("dossier %d refused: %s: %s", which[j], r->errors[0]->field,
                                  r->errors[0]->message);
            }
            if (!s_ids[which[j]][0])
                missing++;
            qp_message_clear (&replies[j]);
        }
        if (missing)
            qp_test_sleep_ms (200);
    }
}

/* Sends dossiers [from, to) and leaves after a moment: most are still in flight when
 * the fault comes. The few acknowledged at once are noted. */
static void s_fire (qp_test_stack_t *stack, int from, int to)
{
    qp_message_t replies[BATCH];
    int n = to - from < BATCH ? to - from : BATCH;
    for (int j = 0; j < n; j++)
        s_sent[from + j] = 1;
    qp_test_client_t *client = qp_test_client_new (stack->work);
    ck_assert_ptr_nonnull (client);
    qp_test_sample_send (client, "test-faults", "fault", NULL, from, (size_t)n, 20, replies);
    qp_test_client_destroy (&client);
    for (int j = 0; j < n; j++) {
        if (replies[j].descriptor == &qp__v1__submit_dossier_reply__descriptor) {
            Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *)replies[j].payload;
            if (r->accepted)
                snprintf (s_ids[from + j], QP_ID_HEX + 1, "%s", r->dossier_id);
        }
        qp_message_clear (&replies[j]);
    }
}

typedef struct {
    int terminal[4]; /* NOT_ELIGIBLE, FUNDED, DECLINED, UNFUNDED */
    int open;        /* not yet terminal */
    int lost;        /* acknowledged but absent from Redis */
    int twice;       /* more than one terminal transition in the history */
    int64_t committed;
} census_t;

static const char *const s_terminal_names[] = {"NOT_ELIGIBLE", "FUNDED", "DECLINED", "UNFUNDED"};

/* Reads the state and the history of every acknowledged dossier from Redis. */
static void s_census (qp_test_stack_t *stack, int upto, census_t *c)
{
    memset (c, 0, sizeof *c);
    redisContext *rc = redisConnect (stack->redis->host, stack->redis->port);
    ck_assert (rc && !rc->err);
    for (int base = 0; base < upto; base += 1000) {
        int n = upto - base < 1000 ? upto - base : 1000;
        for (int i = base; i < base + n; i++) {
            redisAppendCommand (rc, "HMGET qp:{%s}:d state committed_cents", s_ids[i]);
            redisAppendCommand (rc, "HGET qp:{%s}:d h", s_ids[i]); /* the history */
        }
        for (int i = base; i < base + n; i++) {
            redisReply *d = NULL, *h = NULL;
            ck_assert_int_eq (redisGetReply (rc, (void **)&d), REDIS_OK);
            ck_assert_int_eq (redisGetReply (rc, (void **)&h), REDIS_OK);
            ck_assert_int_eq (d->type, REDIS_REPLY_ARRAY);
            redisReply *state = d->element[0];
            if (state->type != REDIS_REPLY_STRING) {
                c->lost++;
                fprintf (stderr, "LOST: dossier %d (%s)\n", i, s_ids[i]);
            } else {
                int t = -1;
                for (int k = 0; k < 4; k++)
                    if (strcmp (state->str, s_terminal_names[k]) == 0)
                        t = k;
                if (t < 0)
                    c->open++;
                else
                    c->terminal[t]++;
                if (t == 1 && d->element[1]->type == REDIS_REPLY_STRING)
                    c->committed += atoll (d->element[1]->str);
            }
            int terminal = 0;
            if (h->type == REDIS_REPLY_STRING) {
                Qp__V1__History *hs =
                    qp__v1__history__unpack (NULL, h->len, (const uint8_t *)h->str);
                ck_assert_ptr_nonnull (hs);
                for (size_t e = 0; e < hs->n_entries; e++)
                    terminal += hs->entries[e]->to >= QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
                qp__v1__history__free_unpacked (hs, NULL);
            }
            if (terminal > 1) {
                c->twice++;
                fprintf (stderr, "TWICE: dossier %d (%s): %d terminal transitions\n", i, s_ids[i],
                         terminal);
            }
            freeReplyObject (d);
            freeReplyObject (h);
        }
    }
    redisFree (rc);
}

/* Polls until every acknowledged dossier of [0, upto) is terminal (or 180 s). */
static void s_wait_terminal (qp_test_stack_t *stack, int upto, census_t *c)
{
    int64_t deadline = s_now_ms () + 180000;
    do {
        s_census (stack, upto, c);
        if (c->open == 0 || c->lost)
            return;
        qp_test_sleep_ms (500);
    } while (s_now_ms () < deadline);
}

/* The envelope: reserved + committed + available = total, nothing left reserved, and
 * committed = the sum of the ledger's committed entries = the dossiers' settlements. */
static void s_check_envelope (qp_test_stack_t *stack, const census_t *c)
{
    redisContext *rc = redisConnect (stack->redis->host, stack->redis->port);
    ck_assert (rc && !rc->err);
    redisReply *env =
        redisCommand (rc, "HMGET qp:envelope:{phq} total reserved committed available");
    ck_assert_int_eq (env->type, REDIS_REPLY_ARRAY);
    long long total = atoll (env->element[0]->str ? env->element[0]->str : "0");
    long long reserved = env->element[1]->str ? atoll (env->element[1]->str) : 0;
    long long committed = env->element[2]->str ? atoll (env->element[2]->str) : 0;
    long long available = env->element[3]->str ? atoll (env->element[3]->str) : total;
    freeReplyObject (env);
    long long ledger = 0;
    unsigned long long cursor = 0;
    do { /* the ledger's buckets (qp_bucket.h) */
        redisReply *r = redisCommand (rc, "SCAN %llu MATCH qp:envelope:{phq}:ledger:* COUNT 1000",
                                      cursor);
        ck_assert_int_eq (r->type, REDIS_REPLY_ARRAY);
        cursor = strtoull (r->element[0]->str, NULL, 10);
        for (size_t k = 0; k < r->element[1]->elements; k++) {
            redisReply *h = redisCommand (rc, "HVALS %s", r->element[1]->element[k]->str);
            ck_assert_int_eq (h->type, REDIS_REPLY_ARRAY);
            for (size_t i = 0; i < h->elements; i++)
                if (strncmp (h->element[i]->str, "committed:", 10) == 0)
                    ledger += atoll (h->element[i]->str + 10);
            freeReplyObject (h);
        }
        freeReplyObject (r);
    } while (cursor != 0);
    redisFree (rc);
    fprintf (stderr,
             "  envelope phq: total %lld, reserved %lld, committed %lld, available %lld; "
             "ledger committed %lld; dossiers committed %lld\n",
             total, reserved, committed, available, ledger, (long long)c->committed);
    ck_assert_int_eq (reserved + committed + available, total);
    ck_assert_int_eq (reserved, 0);
    ck_assert_int_eq (committed, ledger);
    ck_assert_int_eq (committed, c->committed);
}

/* The evaluation's totals against the census. Returns true when they agree. */
static bool s_evaluation_agrees (qp_test_stack_t *stack, int acked, const census_t *c, bool print,
                                 int *missed)
{
    Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
    qp_message_t reply = {0};
    qp_error_t err;
    if (qp_test_call (stack->work, "evaluation", &q.base, NULL, 5000, &reply, &err) != 0)
        return false;
    bool agree = false;
    if (reply.descriptor == &qp__v1__report_reply__descriptor) {
        Qp__V1__TerritoryFigures *t = ((Qp__V1__ReportReply *)reply.payload)->total;
        /* Never more than Redis holds: an event counted twice would show here. */
        ck_assert_uint_le (t->submitted, (uint64_t)acked);
        ck_assert_uint_le (t->closed, (uint64_t)acked);
        ck_assert_uint_le (t->not_eligible, (uint64_t)c->terminal[0]);
        ck_assert_uint_le (t->funded, (uint64_t)c->terminal[1]);
        ck_assert_uint_le (t->declined, (uint64_t)c->terminal[2]);
        ck_assert_uint_le (t->unfunded, (uint64_t)c->terminal[3]);
        ck_assert_int_le (t->committed_cents, c->committed);
        if (missed)
            *missed = (acked - (int)t->submitted) + (acked - (int)t->closed);
        agree = t->submitted == (uint64_t)acked && t->closed == (uint64_t)acked &&
                t->not_eligible == (uint64_t)c->terminal[0] &&
                t->funded == (uint64_t)c->terminal[1] && t->declined == (uint64_t)c->terminal[2] &&
                t->unfunded == (uint64_t)c->terminal[3] && t->committed_cents == c->committed;
        if (print)
            fprintf (stderr,
                     "  evaluation: submitted %llu closed %llu not_eligible %llu funded %llu "
                     "declined %llu unfunded %llu committed %lld (Redis: %d / %d %d %d %d, %lld)\n",
                     (unsigned long long)t->submitted, (unsigned long long)t->closed,
                     (unsigned long long)t->not_eligible, (unsigned long long)t->funded,
                     (unsigned long long)t->declined, (unsigned long long)t->unfunded,
                     (long long)t->committed_cents, acked, c->terminal[0], c->terminal[1],
                     c->terminal[2], c->terminal[3], (long long)c->committed);
    }
    qp_message_clear (&reply);
    return agree;
}

/* ---- Faults ---------------------------------------------------------------------- */

static int s_find (qp_test_stack_t *stack, const char *name)
{
    for (size_t i = 0; i < stack->n_procs; i++)
        if (strcmp (stack->procs[i]->name, name) == 0 && qp_test_proc_alive (stack->procs[i]))
            return (int)i;
    return -1;
}

/* kill -9 the program called name and start it again in its slot. */
static void s_kill_restart (qp_test_stack_t *stack, const char *name, const char *const *env)
{
    int i = s_find (stack, name);
    ck_assert_msg (i >= 0, "no live %s", name);
    qp_test_proc_t *old = stack->procs[i];
    qp_test_proc_kill (old);
    s_redispatched += qp_test_proc_log_count (old, "redispatch");
    qp_test_proc_destroy (&old);
    qp_test_proc_t *p = qp_test_stack_spawn (stack, name, env);
    ck_assert_ptr_nonnull (p);
    stack->procs[i] = p;
    stack->n_procs--;
}

/* The stack's environment (ports, QP_*) plus its extra env, for programs started here. */
static const char **s_stack_env (qp_test_stack_t *stack)
{
    size_t n = 0, k = 0;
    while (stack->env[n])
        n++;
    for (size_t e = 0; stack->extra_env[e]; e++)
        n++;
    const char **all = calloc (n + 1, sizeof *all);
    for (size_t e = 0; stack->env[e]; e++)
        all[k++] = stack->env[e];
    for (size_t e = 0; stack->extra_env[e]; e++)
        all[k++] = stack->extra_env[e];
    return all;
}

static void s_kill_restart_bus (qp_test_stack_t *stack)
{
    qp_test_proc_kill (stack->bus);
    qp_test_proc_destroy (&stack->bus);
    const char **all = s_stack_env (stack);
    stack->bus = qp_test_spawn ("bus", all, NULL, stack->dir);
    free (all);
    ck_assert_ptr_nonnull (stack->bus);
}

static char s_journal_env[1100];

START_TEST (test_kill_each_program_during_a_run)
{
    const char *n_env = getenv ("QP_FAULT_DOSSIERS");
    s_total = n_env ? atoi (n_env) : 20000;
    ck_assert_int_ge (s_total, 1000);
    s_ids = calloc ((size_t)s_total, sizeof *s_ids);
    s_sent = calloc ((size_t)s_total + 500, 1);
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {.programs = s_programs, .wait_for = s_ready, .env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);

    /* The recorder, when the build has it. */
    char *rec_path = qp_test_program_path ("record");
    char *journal = qp_test_tmpdir ("qp-faults-journal");
    snprintf (s_journal_env, sizeof s_journal_env, "QP_JOURNAL=%s", journal);
    const char *rec_env[] = {s_journal_env, NULL};
    if (rec_path)
        ck_assert_ptr_nonnull (qp_test_stack_spawn (stack, "record", rec_env));

    const char *faults[] = {"bus",        "intake", "eligibility",       "funding",
                            "evaluation", "record", "partner-bpifrance", "redis"};
    const int n_faults = 8;
    int per = s_total / n_faults;
    fprintf (stderr, "faults: %d dossiers, %d per fault\n", s_total, per);
    fprintf (stderr, "%-18s %9s %12s %12s %8s %8s %8s\n", "fault", "acked", "recovery_ms",
             "terminal_ms", "resent", "redisp", "lost");
    for (int f = 0; f < n_faults; f++) {
        int from = f * per, to = f == n_faults - 1 ? s_total : from + per;
        int mid = from + (to - from) / 2;
        int resent0 = s_resent;
        long redisp0 = s_redispatched;
        s_submit (stack, from, mid);
        s_fire (stack, mid, to);
        /* The fault, while the first half is still being worked on. */
        int64_t t0 = s_now_ms ();
        const char *name = faults[f];
        const char *wait_service = name;
        if (strcmp (name, "bus") == 0) {
            s_kill_restart_bus (stack);
            wait_service = "funding";
        } else if (strcmp (name, "redis") == 0) {
            ck_assert_int_eq (qp_test_redis_down (stack->redis, SIGTERM), 0);
            ck_assert_int_eq (qp_test_redis_up (stack->redis), 0);
            wait_service = NULL;
        } else if (strcmp (name, "record") == 0) {
            if (!rec_path) {
                fprintf (stderr, "(no qp-record in this build: recorder fault skipped)\n");
                wait_service = NULL;
            } else {
                s_kill_restart (stack, "record", rec_env);
                wait_service = NULL;
            }
        } else {
            s_kill_restart (stack, name, NULL);
            if (strcmp (name, "partner-bpifrance") == 0)
                wait_service = "partner.BPIFRANCE.bpifrance-default";
        }
        if (wait_service)
            ck_assert (qp_test_bus_wait_workers (stack->work, wait_service, 1, 30000));
        if (strcmp (name, "bus") == 0)
            ck_assert (qp_test_stack_wait (stack, s_ready, 30000));
        int64_t recovered = s_now_ms () - t0;
        s_submit (stack, mid, to);
        census_t c;
        s_wait_terminal (stack, to, &c);
        int64_t terminal_ms = s_now_ms () - t0;
        fprintf (stderr, "%-18s %9d %12lld %12lld %8d %8ld %8d\n", name, to, (long long)recovered,
                 (long long)terminal_ms, s_resent - resent0, s_redispatched - redisp0, c.lost);
        if (c.open || c.lost || c.twice)
            qp_test_stack_dump (stack, 20);
        ck_assert_msg (c.lost == 0, "after the %s fault: %d acknowledged dossiers lost", name,
                       c.lost);
        ck_assert_msg (c.open == 0, "after the %s fault: %d dossiers not terminal after 180 s",
                       name, c.open);
        ck_assert_msg (c.twice == 0, "after the %s fault: %d dossiers closed twice", name, c.twice);
        /* No partner was ever away for long (no_component_wait_ms is a minute): a dossier
         * left unfunded means funding lost sight of a live component. */
        ck_assert_msg (c.terminal[3] == 0,
                       "after the %s fault: %d dossiers UNFUNDED (funding saw no live component)",
                       name, c.terminal[3]);
        s_check_envelope (stack, &c);
        /* The evaluation catches up: what it missed (events in the bus when it dies,
         * published while the evaluation is down, received while Redis is down) stays in
         * the outbox until it counts it, and the outbox sweeper publishes it again (5 s
         * after the step, then every 30 s): poll up to 90 s. No rebuild. */
        bool agree = false;
        int missed = 0, first_missed = -1;
        int64_t until = s_now_ms () + 90000;
        while (!agree && s_now_ms () < until) {
            agree = s_evaluation_agrees (stack, to, &c, false, &missed);
            if (first_missed < 0)
                first_missed = missed;
            if (!agree)
                qp_test_sleep_ms (200);
        }
        s_evaluation_agrees (stack, to, &c, !agree || first_missed > 0, NULL);
        if (first_missed > 0) {
            fprintf (stderr, "  evaluation: %d events (received + closed) counted late after the "
                             "%s fault (published again from the outbox)\n", first_missed, name);
            s_eval_late += first_missed;
        }
        ck_assert_msg (agree,
                       "after the %s fault: the evaluation does not count each dossier once "
                       "(%d events missed, received + closed)", name, missed);
    }
    /* Sweepers still alive: their log lines too. */
    for (size_t i = 0; i < stack->n_procs; i++)
        s_redispatched += qp_test_proc_log_count (stack->procs[i], "redispatch");
    fprintf (stderr,
             "faults: %d dossiers acknowledged, %d submissions resent, %ld re-dispatched "
             "by the sweepers, 0 lost, %d events counted late by the evaluation (none "
             "missed, no rebuild)\n",
             s_total, s_resent, s_redispatched, s_eval_late);

    /* Redis SIGKILL: AOF everysec may lose up to about 1 s of writes. Reported only. */
    {
        char (*saved)[QP_ID_HEX + 1] = s_ids;
        int saved_total = s_total;
        /* 500 more dossiers, keys past the run's. */
        s_ids = calloc (saved_total + 500, sizeof *s_ids);
        s_total = saved_total + 500;
        for (int i = 0; i < saved_total; i++)
            memcpy (s_ids[i], saved[i], sizeof saved[i]);
        s_submit (stack, saved_total, saved_total + 500);
        ck_assert_int_eq (qp_test_redis_down (stack->redis, SIGKILL), 0);
        ck_assert_int_eq (qp_test_redis_up (stack->redis), 0);
        census_t c;
        s_census (stack, s_total, &c);
        fprintf (stderr,
                 "redis SIGKILL right after 500 acknowledgements: %d of %d acknowledged dossiers "
                 "absent after the AOF reload (everysec contract: up to 1 s of writes)\n",
                 c.lost, s_total);
        free (saved);
    }
    free (s_ids);
    s_ids = NULL;
    free (s_sent);
    free (rec_path);
    qp_test_stack_stop (&stack);
    qp_test_rmtree (journal);
    free (journal);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("faults");
    TCase *tc = tcase_create ("faults");
    tcase_set_timeout (tc, 1200);
    tcase_add_test (tc, test_kill_each_program_during_a_run);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
