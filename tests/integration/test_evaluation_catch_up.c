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
#include "qp_test_dossier.h"
#include "qp_test_http.h"
#include "qp_test_sample.h"
#include "qp_test_suite.h"
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

/* Submits dossiers [from, to) of the sample mix and waits until each is terminal. */
static void s_wave (const char *prefix, int from, int to)
{
    int n = to - from;
    char (*ids)[QP_ID_HEX + 1] = calloc ((size_t) n, sizeof *ids);
    char why[256] = "";
    ck_assert_msg (qp_test_sample_submit_all (s_stack->work, "test-catch-up", prefix, from, to,
                                              50, 15000, ids, why, sizeof why) < 0,
                   "not accepted: %s", why);
    for (int i = 0; i < n; i++)
        ck_assert_msg (qp_store_state_terminal (qp_test_wait_terminal (s_redis, ids[i], 60000)),
                       "dossier %s not terminal", ids[i]);
    free (ids);
}

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

/* The programme's totals as the evaluation reports them (the sample mix,
 * tests/support/qp_test_sample.h: 1 in 10 not eligible, 1 in 10 declined by Bpifrance's
 * component, the rest funded; all closed). */
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
    ck_assert_uint_eq (f->submitted, submitted);
    ck_assert_uint_eq (f->not_eligible, submitted / 10);
    ck_assert_uint_eq (f->funded, submitted * 8 / 10);
    ck_assert_uint_eq (f->closed, submitted);
    qp_message_clear (&reply);
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

    s_wave ("a", 0, FIRST);
    s_wait_outbox_empty (60000);
    s_expect_totals (FIRST);

    /* Frozen, it reads nothing: the pipes fill and the bus drops the rest for it. */
    ck_assert_int_eq (kill (s_eval->pid, SIGSTOP), 0);
    s_wave ("b", FIRST, FIRST + FROZEN);
    long long backlog = qp_store_outbox_size (s_redis);
    ck_assert_int_eq (kill (s_eval->pid, SIGCONT), 0);
    ck_assert_msg (backlog > 1000, "only %lld events waited in the outbox", backlog);

    /* Thawed, it counts the pipe's events, then reads the dropped ones from the outbox,
     * well within the 35 s the producers' sweepers leave it before they republish. */
    s_wait_outbox_empty (30000);
    s_expect_totals (FIRST + FROZEN);
    double caught_up = s_metric ("qp_service_events_caught_up_total");
    fprintf (stderr, "catch-up: %lld events waited in the outbox, %.0f read back from it\n",
             backlog, caught_up);
    ck_assert_msg (caught_up >= 100, "only %.0f events read back from the outbox", caught_up);
    /* and nothing is counted twice afterwards: a pass over an empty outbox */
    qp_test_sleep_ms (2500);
    s_expect_totals (FIRST + FROZEN);

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
