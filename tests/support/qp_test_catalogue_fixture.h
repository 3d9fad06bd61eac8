/* The catalogue fixture of check tests of the rules: the project's real catalogue
 * (SOURCE/data/catalogue) loaded before each test of a TCase and freed after
 * (tcase_add_checked_fixture (tc, qp_test_catalogue_setup, qp_test_catalogue_teardown));
 * tests reach it through s_catalogue. Header-only: it asserts with check. */
#ifndef QP_TEST_CATALOGUE_FIXTURE_H
#define QP_TEST_CATALOGUE_FIXTURE_H
#include "qp_catalogue.h"
#include "qp_test.h"
#include <check.h>
#include <stdio.h>

static qp_catalogue_t *s_catalogue;

static inline void qp_test_catalogue_setup (void)
{
    char dir[1024];
    snprintf (dir, sizeof dir, "%s/data/catalogue", qp_test_source_dir ());
    qp_error_t err;
    s_catalogue = qp_catalogue_load (dir, &err);
    ck_assert_msg (s_catalogue != NULL, "%s", err.message);
}

static inline void qp_test_catalogue_teardown (void)
{
    qp_catalogue_destroy (&s_catalogue);
}
#endif
