/* The pipeline fixture of check tests that feed the whole chain bad input: redis, the bus,
 * intake, eligibility, funding, evaluation and Bpifrance's default partner component (the
 * fixtures' territories and data/), waited for, in `s_stack`; the teardown asserts that
 * every program then stops cleanly (exit 0). Use it checked (one stack a test) or
 * unchecked (one for the whole TCase). Header-only: it asserts with check. */
#ifndef QP_TEST_PIPELINE_FIXTURE_H
#define QP_TEST_PIPELINE_FIXTURE_H
#include "qp_test.h"
#include <check.h>

static qp_test_stack_t *s_stack;

static inline void qp_test_pipeline_setup (void)
{
    static const char *const programs[] = {"intake",     "eligibility",       "funding",
                                           "evaluation", "partner-bpifrance", NULL};
    static const char *const ready[] = {
        "intake", "eligibility", "funding", "evaluation", "partner.BPIFRANCE.bpifrance-default",
        NULL};
    static const char *env[3];
    env[0] = qp_test_env_territories (), env[1] = qp_test_env_data_dir (), env[2] = NULL;
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
}

static inline void qp_test_pipeline_teardown (void)
{
    ck_assert_int_eq (qp_test_stack_stop (&s_stack), 0);
}
#endif
