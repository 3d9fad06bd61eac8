/* The bus-only fixture of check tests that talk to qp-bus directly: a real qp-bus on free
 * ports (no Redis, no programs) started before each test of a TCase and stopped after
 * (tcase_add_checked_fixture (tc, qp_test_bus_setup, qp_test_bus_teardown)). Tests reach
 * it through `stack` (stack->work...); a test may stop it itself, or put a stack of its
 * own there for the teardown to stop. Header-only: it asserts with check, which the
 * benchmarks that build tests/support/qp_test.c do not link. */
#ifndef QP_TEST_BUS_FIXTURE_H
#define QP_TEST_BUS_FIXTURE_H
#include "qp_test.h"
#include <check.h>

static qp_test_stack_t *stack;

static inline void qp_test_bus_setup (void)
{
    qp_test_stack_opts_t opts = {.no_redis = true};
    stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
}

static inline void qp_test_bus_teardown (void)
{
    if (stack)
        qp_test_stack_stop (&stack);
}
#endif
