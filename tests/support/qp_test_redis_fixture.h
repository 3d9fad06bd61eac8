/* The Redis fixture of check tests that run code in process against Redis: a real
 * redis-server on a free port (AOF on, fresh dir) and a qp_redis connection to it,
 * started before each test of a TCase and stopped after
 * (tcase_add_checked_fixture (tc, qp_test_redis_setup, qp_test_redis_teardown)). Tests
 * reach them through `server` (to stop or restart it) and `r`. Header-only: it asserts
 * with check, which the benchmarks that build tests/support/qp_test.c do not link. */
#ifndef QP_TEST_REDIS_FIXTURE_H
#define QP_TEST_REDIS_FIXTURE_H
#include "qp_redis.h"
#include "qp_test.h"
#include <check.h>

static qp_test_redis_t *server;
static qp_redis_t *r;

static inline void qp_test_redis_setup (void)
{
    server = qp_test_redis_start ();
    ck_assert_ptr_nonnull (server);
    r = qp_redis_connect (server->host, server->port, 5000);
    ck_assert_ptr_nonnull (r);
}

static inline void qp_test_redis_teardown (void)
{
    qp_redis_destroy (&r);
    qp_test_redis_stop (&server);
}
#endif
