/* An evaluation that cannot follow the stream does not hold it in memory: its receive
 * pipe and the bus's for it are bounded (event-pipe), the excess is dropped there, and
 * the evaluation reads what it missed from the outbox once its pipe is empty
 * (qp_service_catch_up). Every dossier is still counted exactly once. Real redis, bus,
 * intake, eligibility, funding, Bpifrance's component and qp-evaluation; the evaluation is
 * frozen (SIGSTOP) while a wave goes through, so far more events arrive than both pipes
 * and the kernel's socket buffers hold. */
#include "evaluation/evaluation.h"
#include "qp_redis.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_http.h"
#include "qp_test_suite.h"
#include "qp_test_wave.h"
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST 50   /* dossiers while the evaluation follows */
#define FROZEN 1000 /* dossiers while it is frozen: ~4,900 events (~2.2 MB) against pipes
                       of 100 and the kernel's buffers (about 1.2 MB here) */

static qp_test_stack_t *s_stack;
static qp_test_proc_t *s_eval;
static qp_redis_t *s_redis;

static double s_metric (const char *name)
{
    double v = qp_test_log_metric (s_eval->log_path, name);
    ck_assert_msg (!isnan (v), "no /metrics from the evaluation");
    return v;
}

START_TEST (frozen_evaluation_catches_up_from_the_outbox)
{
    static const char *const programs[] = {"intake", "eligibility", "funding",
                                           "partner-bpifrance", NULL};
    static const char *const ready[] = {"intake", "eligibility", "funding",
                                        "partner.BPIFRANCE.bpifrance-default", NULL};
    /* the bus and the evaluation hold 100 events each for the evaluation */
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (),
                         "QP_EVENT_PIPE=100", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
    const char *own[] = {"QP_HTTP=127.0.0.1:0", NULL};
    ck_assert_ptr_nonnull (s_eval = qp_test_stack_spawn (s_stack, "evaluation", own));
    ck_assert (qp_test_bus_wait_workers (s_stack->work, "evaluation", 1, 15000));
    s_redis = qp_redis_connect (s_stack->redis->host, s_stack->redis->port, 5000);
    ck_assert_ptr_nonnull (s_redis);

    qp_test_wave (s_stack->work, s_redis, "test-catch-up", "a", 0, FIRST);
    qp_test_wait_outbox_empty (s_redis, 60000);
    qp_test_expect_wave_totals (s_stack->work, FIRST);

    /* Frozen, it reads nothing: the pipes fill and the bus drops the rest for it. */
    ck_assert_int_eq (kill (s_eval->pid, SIGSTOP), 0);
    qp_test_wave (s_stack->work, s_redis, "test-catch-up", "b", FIRST, FIRST + FROZEN);
    long long backlog = qp_store_outbox_size (s_redis);
    ck_assert_int_eq (kill (s_eval->pid, SIGCONT), 0);
    ck_assert_msg (backlog > 1000, "only %lld events waited in the outbox", backlog);

    /* Thawed, it counts the pipe's events, then reads the dropped ones from the outbox,
     * well within the 35 s the producers' sweepers leave it before they republish. */
    qp_test_wait_outbox_empty (s_redis, 30000);
    qp_test_expect_wave_totals (s_stack->work, FIRST + FROZEN);
    double caught_up = s_metric ("qp_service_events_caught_up_total");
    fprintf (stderr, "catch-up: %lld events waited in the outbox, %.0f read back from it\n",
             backlog, caught_up);
    ck_assert_msg (caught_up >= 100, "only %.0f events read back from the outbox", caught_up);
    /* and nothing is counted twice afterwards: a pass over an empty outbox */
    qp_test_sleep_ms (2500);
    qp_test_expect_wave_totals (s_stack->work, FIRST + FROZEN);

    qp_redis_destroy (&s_redis);
    qp_test_stack_stop (&s_stack);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("evaluation_catch_up");
    TCase *tc = tcase_create ("catch_up");
    tcase_set_timeout (tc, 300);
    tcase_add_test (tc, frozen_evaluation_catches_up_from_the_outbox);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
