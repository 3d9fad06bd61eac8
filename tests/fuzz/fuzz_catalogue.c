/* Fuzz: the aid-scheme catalogue loader on a directory holding the input as one scheme
 * file; a loaded scheme is then asked its parameters on a few dates. */
#include "fuzz_support.h"
#include "qp_catalogue.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char dir[128], path[160];
    snprintf (dir, sizeof dir, "%s/catalogue", s_fuzz_dir ());
    mkdir (dir, 0700);
    snprintf (path, sizeof path, "%s/scheme.json", dir);
    s_fuzz_write (path, data, size);
    qp_error_t err = {0};
    qp_catalogue_t *catalogue = qp_catalogue_load (dir, &err);
    if (!catalogue) {
        if (!err.code[0])
            __builtin_trap ();
        return 0;
    }
    static const int32_t dates[] = {0, 10957, 19723, 20454, 47482}; /* 1970 .. 2100 */
    for (size_t i = 0; i < qp_catalogue_size (catalogue); i++) {
        const qp_scheme_t *scheme = qp_catalogue_scheme (catalogue, i);
        if (qp_catalogue_find (catalogue, scheme->id) != scheme)
            __builtin_trap ();
        for (size_t d = 0; d < sizeof dates / sizeof dates[0]; d++) {
            qp_param_value_t value;
            qp_catalogue_in_force (scheme, dates[d], &value);
            qp_catalogue_param_on (scheme, "in_force", dates[d], &value);
        }
    }
    qp_catalogue_destroy (&catalogue);
    return 0;
}
