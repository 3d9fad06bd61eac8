/* Two evaluation instances split the event stream (qp_service_shard_events,
 * common/qp_shard.h) and still count every dossier exactly once; when one is killed, the
 * other takes its share, the events it left uncounted included (the outbox publishes them
 * again). Real redis, bus, intake, eligibility, funding, Bpifrance's component and two
 * qp-evaluation processes. */
#include "evaluation/evaluation.h"
#include "qp_redis.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_http.h"
#include "qp_test_suite.h"
#include "qp_test_wave.h"
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

    qp_test_wave (s_stack->work, s_redis, "test-shards", "a", 0, N);
    qp_test_wait_outbox_empty (s_redis, 60000);
    qp_test_expect_wave_totals (s_stack->work, N);
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
    qp_test_wave (s_stack->work, s_redis, "test-shards", "b", N, 2 * N);
    qp_test_wait_outbox_empty (s_redis, 90000);
    qp_test_expect_wave_totals (s_stack->work, 2 * N);
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
