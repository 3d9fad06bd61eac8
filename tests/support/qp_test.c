#include "qp_test.h"
#include <stdlib.h>

const char *qp_test_source_dir (void)
{
    const char *s = getenv ("QP_SOURCE_DIR");
    return s ? s : ".";
}

const char *qp_test_build_dir (void)
{
    const char *s = getenv ("QP_BUILD_DIR");
    return s ? s : "build";
}
