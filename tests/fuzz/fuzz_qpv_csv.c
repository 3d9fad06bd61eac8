/* Fuzz: the official QPV list loader (CSV), on an empty index and on one with contours. */
#include "fuzz_support.h"
#include "qp_qpv.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char path[128];
    snprintf (path, sizeof path, "%s/list.csv", s_fuzz_dir ());
    s_fuzz_write (path, data, size);
    qp_qpv_index_t *index = qp_qpv_new ();
    qp_error_t err = {0};
    if (qp_qpv_load_list_csv (index, path, &err) == 0) {
        for (size_t i = 0; i < qp_qpv_count (index); i++) {
            const qp_qpv_info_t *info = qp_qpv_at (index, i);
            if (qp_qpv_find_code (index, info->code) == NULL)
                __builtin_trap ();
            for (size_t c = 0; c < info->commune_count; c++)
                if (!info->communes[c].insee)
                    __builtin_trap ();
        }
    } else if (!err.code[0])
        __builtin_trap ();
    qp_qpv_destroy (&index);
    return 0;
}
