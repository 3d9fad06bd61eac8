/* Record and replay with real processes: a run of 10,000 dossiers (QP_TEST_REPLAY_N to
 * change it) is recorded by qp-record from the bus's capture tap; qp-replay feeds its
 * inputs into a fresh stack with no partner component (the replay partner answers from
 * the journal), a second recorder records that; `qp-replay diff` finds the decisions
 * identical. A paced run replayed at speed 10 is paced, not sent at once. */
#include "qp_journal.h"
#include "qp_test.h"
#include "qp_test_sample.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

#define BATCH 250

static const char *const s_programs[] = {"intake",      "eligibility",       "funding",
                                         "evaluation",  "partner-anct",      "partner-anru",
                                         "partner-bdt", "partner-bpifrance", NULL};
/* Partner components register under names their issue may refine ("partner.ANCT" or
 * "partner.ANCT.<component>"): wait for the services, then for four partner.* workers. */
static const char *const s_ready[] = {"intake", "eligibility", "funding", "evaluation", NULL};
/* The fresh stack of a replay: no partner component. */
static const char *const s_replay_programs[] = {"intake", "eligibility", "funding", "evaluation",
                                                NULL};
static const char *const s_replay_ready[] = {"intake", "eligibility", "funding", "evaluation",
                                             NULL};

/* The mix of test_flow (qp_test_sample): i % 10 == 0 asks over the PHQ maximum (not
 * eligible), i % 10 == 1 is declined by the Bpifrance component, the rest is funded. */

static qp_test_stack_t *s_start_curve (const char *const *programs, const char *const *ready,
                                       const char *curve_dir)
{
    char curve[1100];
    snprintf (curve, sizeof curve, "QP_CURVE_DIR=%s", curve_dir ? curve_dir : "");
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (),
                         curve_dir ? curve : NULL, NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    bool partners = programs == s_programs;
    for (int i = 0;
         stack && partners && i < 150 && qp_test_bus_partner_workers (stack->work) < 4; i++)
        qp_test_sleep_ms (100);
    if (stack && partners && qp_test_bus_partner_workers (stack->work) < 4)
        ck_abort_msg ("the four partner components did not register");
    return stack;
}

static qp_test_stack_t *s_start (const char *const *programs, const char *const *ready)
{
    return s_start_curve (programs, ready, NULL);
}

/* Submits dossiers [from, to) in batches; every one must be accepted. */
static void s_submit (qp_test_stack_t *stack, int from, int to, char ids[][QP_ID_HEX + 1])
{
    char why[512];
    int bad = qp_test_sample_submit_all (stack->work, "test-replay", "replay", from, to, BATCH,
                                         30000, ids, why, sizeof why);
    ck_assert_msg (bad < 0, "dossier %d: %s", bad, why);
}

/* Starts the recorder into dir and waits until it is subscribed. */
static qp_test_proc_t *s_recorder (qp_test_stack_t *stack, const char *dir)
{
    qp_test_proc_t *p = qp_test_stack_recorder (stack, dir);
    ck_assert_msg (p, "the recorder did not start (its log above)");
    return p;
}

static void s_stop_recorder (qp_test_proc_t *p)
{
    int status;
    /* Let the capture tap deliver the last events before the stop. */
    qp_test_sleep_ms (500);
    ck_assert (qp_test_proc_stop (p, &status));
    ck_assert_int_eq (status, 0);
    ck_assert_int_eq (qp_test_proc_log_count (p, "capture_gap"), 0);
}

/* Runs a tool to its end; returns its exit status, its stdout in *out (malloc'd). */
static int s_run (const char *tool, const char *const *env, const char *const *args, char **out)
{
    int status = qp_test_run (tool, env, args, 900000, out, NULL);
    ck_assert_msg (status >= 0, "%s did not finish", tool);
    return status;
}

/* qp-replay JOURNAL into stack at speed (QP_CURVE_DIR=curve_dir when not NULL); returns
 * its stdout. */
static char *s_replay_curve (qp_test_stack_t *stack, const char *journal, const char *speed,
                             const char *curve_dir)
{
    char work[80], partner[80], curve[1100];
    snprintf (work, sizeof work, "QP_BUS_WORK=%s", stack->work);
    snprintf (partner, sizeof partner, "QP_BUS_PARTNER=%s", stack->partner);
    snprintf (curve, sizeof curve, "QP_CURVE_DIR=%s", curve_dir ? curve_dir : "");
    const char *env[] = {work, partner, curve, NULL};
    const char *args[] = {"--speed", speed, "--linger-ms", "2000", journal, NULL};
    char *out;
    int status = s_run ("replay", env, args, &out);
    if (status != 0)
        fprintf (stderr, "%s", out);
    ck_assert_msg (status == 0, "qp-replay exited %d (its output above)", status);
    return out;
}

static char *s_replay (qp_test_stack_t *stack, const char *journal, const char *speed)
{
    return s_replay_curve (stack, journal, speed, NULL);
}

static int s_n (void)
{
    const char *n = getenv ("QP_TEST_REPLAY_N");
    return n && atoi (n) > 0 ? atoi (n) : 10000;
}

START_TEST (test_record_replay_diff_identical)
{
    int n = s_n ();
    char *root = qp_test_tmpdir ("replay");
    char a[1024], b[1024];
    snprintf (a, sizeof a, "%s/a", root);
    snprintf (b, sizeof b, "%s/b", root);

    qp_test_stack_t *stack = s_start (s_programs, s_ready);
    ck_assert_ptr_nonnull (stack);
    qp_test_proc_t *rec = s_recorder (stack, a);
    s_submit (stack, 0, n, NULL);
    ck_assert (qp_test_wait_closed (stack->work, (uint64_t)n, 600000));
    s_stop_recorder (rec);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);

    char *out;
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"verify", a, NULL}, &out), 0);
    free (out);

    /* A fresh stack, no partner component: the journal answers for them. */
    stack = s_start (s_replay_programs, s_replay_ready);
    ck_assert_ptr_nonnull (stack);
    rec = s_recorder (stack, b);
    out = s_replay (stack, a, "max");
    char want[64];
    snprintf (want, sizeof want, "sent %d inputs", n);
    ck_assert_msg (strstr (out, want), "%s", out);
    free (out);
    ck_assert (qp_test_wait_closed (stack->work, (uint64_t)n, 600000));
    s_stop_recorder (rec);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);

    int status = s_run ("replay", NULL, (const char *[]){"diff", a, b, NULL}, &out);
    fprintf (stderr, "%s", out);
    ck_assert_msg (status == 0, "diff exited %d (its output above)", status);
    ck_assert_msg (strstr (out, "identical"), "%s", out);
    /* Every dossier has its eligibility and its closing: at least 2 decisions each. */
    char *in_a = strstr (out, "decisions in A");
    ck_assert_ptr_nonnull (in_a);
    free (out);
    qp_test_rmtree (root);
    free (root);
}
END_TEST

START_TEST (test_speed_ten_is_paced)
{
    char *root = qp_test_tmpdir ("replay-speed");
    char a[1024];
    snprintf (a, sizeof a, "%s/a", root);
    qp_test_stack_t *stack = s_start (s_programs, s_ready);
    ck_assert_ptr_nonnull (stack);
    qp_test_proc_t *rec = s_recorder (stack, a);
    /* 10 batches of 20, 400 ms apart: a recorded span of about 3.6 s. */
    for (int i = 0; i < 10; i++) {
        s_submit (stack, 20000 + i * 20, 20000 + i * 20 + 20, NULL);
        qp_test_sleep_ms (400);
    }
    ck_assert (qp_test_wait_closed (stack->work, 200, 120000));
    s_stop_recorder (rec);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);

    stack = s_start (s_replay_programs, s_replay_ready);
    ck_assert_ptr_nonnull (stack);
    char *out = s_replay (stack, a, "10");
    double took = 0, span = 0;
    const char *p = strstr (out, "sent 200 inputs in ");
    ck_assert_msg (p, "%s", out);
    ck_assert_int_eq (sscanf (p, "sent 200 inputs in %lf s (recorded span %lf s", &took, &span), 2);
    fprintf (stderr, "speed 10: recorded span %.3f s, replay took %.3f s (a tenth: %.3f s)\n", span,
             took, span / 10);
    /* The recorded span is what was paced. The pacing itself is a lower bound that sleeps
     * guarantee (a replay sent at once would fail it); the upper bound depends on the
     * machine's load, so it is printed, not asserted (no timing asserts in tests). */
    ck_assert_double_ge (span, 3.0);
    ck_assert_double_ge (took, span / 10 / 2);
    ck_assert (qp_test_wait_closed (stack->work, 200, 120000));
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
    free (out);
    qp_test_rmtree (root);
    free (root);
}
END_TEST

/* The partner endpoint with CURVE (as ./qp up runs it): the replay partner registers and
 * announces each agency's components with that agency's key, the journal answers every
 * partner request, and the decisions are the same. */
START_TEST (test_replay_partner_over_curve)
{
    char *root = qp_test_tmpdir ("replay-curve");
    char a[1024], b[1024], keys[1024];
    snprintf (a, sizeof a, "%s/a", root);
    snprintf (b, sizeof b, "%s/b", root);
    snprintf (keys, sizeof keys, "%s/keys", root);
    ck_assert_int_eq (qp_test_keygen (keys, NULL), 0);

    qp_test_stack_t *stack = s_start_curve (s_programs, s_ready, keys);
    ck_assert_ptr_nonnull (stack);
    ck_assert_int_eq (qp_test_proc_log_count (stack->bus, "curve_on"), 1);
    qp_test_proc_t *rec = s_recorder (stack, a);
    s_submit (stack, 30000, 30060, NULL);
    ck_assert (qp_test_wait_closed (stack->work, 60, 120000));
    s_stop_recorder (rec);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);

    stack = s_start_curve (s_replay_programs, s_replay_ready, keys);
    ck_assert_ptr_nonnull (stack);
    rec = s_recorder (stack, b);
    char *out = s_replay_curve (stack, a, "max", keys);
    unsigned long answered = 0, unanswered = 1;
    const char *p = strstr (out, " partner requests answered from the journal, ");
    ck_assert_msg (p, "%s", out);
    while (p > out && p[-1] >= '0' && p[-1] <= '9')
        p--;
    ck_assert_int_eq (
        sscanf (p, "%lu partner requests answered from the journal, %lu", &answered, &unanswered),
        2);
    ck_assert_msg (answered > 0 && unanswered == 0, "%s", out);
    free (out);
    ck_assert (qp_test_wait_closed (stack->work, 60, 120000));
    s_stop_recorder (rec);
    ck_assert_int_eq (qp_test_proc_log_count (stack->bus, "partner_forbidden"), 0);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);

    int status = s_run ("replay", NULL, (const char *[]){"diff", a, b, NULL}, &out);
    fprintf (stderr, "%s", out);
    ck_assert_msg (status == 0 && strstr (out, "identical"), "%s", out);
    free (out);
    qp_test_rmtree (root);
    free (root);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("replay");
    TCase *tc = tcase_create ("replay");
    tcase_set_timeout (tc, 1800);
    tcase_add_test (tc, test_record_replay_diff_identical);
    tcase_add_test (tc, test_speed_ten_is_paced);
    tcase_add_test (tc, test_replay_partner_over_curve);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
