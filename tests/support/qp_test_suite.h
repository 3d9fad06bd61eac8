/* Runs a check suite the way every test program's main does: all its tests (forked, as
 * check does by default), then the exit status ctest reads (0: all passed). Header-only:
 * it needs check, which the benchmarks that build tests/support/qp_test.c do not link. */
#ifndef QP_TEST_SUITE_H
#define QP_TEST_SUITE_H
#include <check.h>

static inline int qp_test_run_suite (Suite *s)
{
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? 1 : 0;
}
#endif
