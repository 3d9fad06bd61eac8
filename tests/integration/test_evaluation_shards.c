/* Two evaluation instances split the event stream (qp_service_shard_events,
 * common/qp_shard.h) and still count every dossier exactly once; when one is killed, the
 * other takes its share, the events it left uncounted included (the outbox publishes them
 * again). Real redis, bus, intake, eligibility, funding, Bpifrance's component and two
 * qp-evaluation processes. */
#include "evaluation/evaluation.h"
#include "qp_redis.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp_test_http.h"
#include "qp_test_sample.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 100 /* dossiers per wave */

static qp_test_stack_t *s_stack;
static qp_test_proc_t *s_eval[2];
static qp_redis_t *s_redis;

/* A metric of evaluation instance i (its /metrics; port read from its log). */
static double s_metric (int i, const char *name)
{
    double v = qp_test_log_metric (s_eval[i]->log_path, name);
    ck_assert_msg (!isnan (v), "no /metrics from evaluation %d", i);
    return v;
}

/* Submits dossiers [from, from + N) of the sample mix and waits until each is terminal. */
static void s_wave (const char *prefix, int from)
{
    char (*ids)[QP_ID_HEX + 1] = calloc (N, sizeof *ids);
    char why[256] = "";
    ck_assert_msg (qp_test_sample_submit_all (s_stack->work, "test-shards", prefix, from,
                                              from + N, 50, 15000, ids, why, sizeof why) < 0,
                   "not accepted: %s", why);
    for (int i = 0; i < N; i++)
        ck_assert_msg (qp_store_state_terminal (qp_test_wait_terminal (s_redis, ids[i], 60000)),
                       "dossier %s not terminal", ids[i]);
    free (ids);
}

/* Waits (bounded) until the evaluation has counted and acknowledged every event. */
static void s_wait_outbox_empty (int timeout_ms)
{
    long long left = -1;
    for (int waited = 0; waited < timeout_ms; waited += 200) {
        left = qp_store_outbox_size (s_redis);
        if (left == 0)
            return;
        qp_test_sleep_ms (200);
    }
    ck_abort_msg ("%lld events still in the outbox", left);
}

/* The programme's totals, as the evaluation reports them. */
static void s_expect_totals (uint64_t submitted)
{
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (
        qp_test_call (s_stack->work, "evaluation", &q.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__indicator_report__descriptor);
    const Qp__V1__IndicatorReport *r = (const void *) reply.payload;
    ck_assert_ptr_nonnull (r->total);
    const Qp__V1__Figures *f = r->total->figures;
    /* the sample mix (tests/support/qp_test_sample.h): 1 in 10 asks too much (not
     * eligible), 1 in 10 brings too little (Bpifrance's component declines), the rest is
     * funded; every one of them closes */
    ck_assert_uint_eq (f->submitted, submitted);
    ck_assert_uint_eq (f->not_eligible, submitted / 10);
    ck_assert_uint_eq (f->funded, submitted * 8 / 10);
    ck_assert_uint_eq (f->closed, submitted);
    qp_message_clear (&reply);
}

START_TEST (two_instances_split_and_take_over)
{
    static const char *const programs[] = {"intake", "eligibility", "funding",
                                           "partner-bpifrance", NULL};
    static const char *const ready[] = {"intake", "eligibility", "funding",
                                        "partner.BPIFRANCE.bpifrance-default", NULL};
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
    const char *own[] = {"QP_HTTP=127.0.0.1:0", NULL};
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_nonnull (s_eval[i] = qp_test_stack_spawn (s_stack, "evaluation", own));
    ck_assert (qp_test_bus_wait_workers (s_stack->work, "evaluation", 2, 15000));
    s_redis = qp_redis_connect (s_stack->redis->host, s_stack->redis->port, 5000);
    ck_assert_ptr_nonnull (s_redis);
    /* both see the group of two (each beats every second) */
    for (int waited = 0; waited < 15000; waited += 200) {
        if (s_metric (0, "qp_shard_members") == 2 && s_metric (1, "qp_shard_members") == 2)
            break;
        qp_test_sleep_ms (200);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_msg (s_metric (i, "qp_shard_members") == 2, "instance %d does not see 2", i);

    s_wave ("a", 0);
    s_wait_outbox_empty (60000);
    s_expect_totals (N);
    /* each instance left the other's dossiers alone: both did a share of the work */
    double skipped[2];
    for (int i = 0; i < 2; i++) {
        skipped[i] = s_metric (i, "qp_service_events_skipped_total");
        ck_assert_msg (skipped[i] > 0, "instance %d skipped nothing", i);
    }

    /* One is killed: the survivor takes every dossier once the group forgets the dead
     * one (QP_SHARD_TTL_MS), and the events the dead one's share left in the outbox are
     * published again and counted: nothing is lost, nothing counted twice. */
    qp_test_proc_kill (s_eval[1]);
    s_wave ("b", N);
    s_wait_outbox_empty (90000);
    s_expect_totals (2 * N);
    ck_assert (s_metric (0, "qp_shard_members") == 1);

    qp_redis_destroy (&s_redis);
    /* the killed one does not exit 0: stop the stack without asserting on it */
    qp_test_stack_stop (&s_stack);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("evaluation_shards");
    TCase *tc = tcase_create ("shards");
    tcase_set_timeout (tc, 300);
    tcase_add_test (tc, two_instances_split_and_take_over);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
