/* Shared helpers for check tests: where the sources and the build are, and (for
 * integration tests) starting real redis-server and service processes. */
#ifndef QP_TEST_H
#define QP_TEST_H
/* The source tree (QP_SOURCE_DIR set by ctest, else "."). */
const char *qp_test_source_dir (void);
/* The build tree (QP_BUILD_DIR set by ctest, else "build"). */
const char *qp_test_build_dir (void);
#endif
