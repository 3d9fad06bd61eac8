/* Fuzz: the QPV contours loader (GeoJSON), then lookups and code queries on what loaded. */
#include "fuzz_support.h"
#include "qp_qpv.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char path[128];
    snprintf (path, sizeof path, "%s/contours.geojson", s_fuzz_dir ());
    s_fuzz_write (path, data, size);
    qp_error_t err = {0};
    qp_qpv_index_t *index = qp_qpv_load_geojson (path, &err);
    if (!index) {
        if (!err.code[0])
            __builtin_trap ();
        return 0;
    }
    static const double points[][2] = {{50.69, 3.18}, {48.85, 2.35}, {0, 0}, {-90, -180}, {90, 180}};
    qp_qpv_hit_t hit;
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        qp_qpv_lookup (index, points[i][0], points[i][1], 0, &hit);
        qp_qpv_lookup (index, points[i][0], points[i][1], 100, &hit);
    }
    for (size_t i = 0; i < qp_qpv_count (index); i++) {
        const qp_qpv_info_t *info = qp_qpv_at (index, i);
        if (qp_qpv_find_code (index, info->code) == NULL)
            __builtin_trap ();
        /* The middle of each bounding box: lookup must not crash wherever it lands. */
        qp_qpv_lookup (index, (info->min_lat + info->max_lat) / 2, (info->min_lon + info->max_lon) / 2,
                       50, &hit);
    }
    qp_qpv_destroy (&index);
    return 0;
}
