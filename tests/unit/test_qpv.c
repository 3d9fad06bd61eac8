/* The QPV index on small hand-made contours (tests/data/qpv-*.geojson): inside, outside,
 * in a hole, near a boundary with and without tolerance, MultiPolygon parts, one code over
 * two features, overseas; the declared-code fallback; bad coordinates; every broken file
 * refused with its reason; the official list CSV; and the real contours when
 * ../shared/data/qpv2024.geojson is there. */
#include "qp_qpv.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Metres per degree of longitude at the fixtures' latitude (50.705). */
#define KX (111195.08 * cos (50.705 * M_PI / 180))
#define KY 111195.08

static qp_qpv_index_t *s_index;

static char *s_data (const char *name)
{
    static char path[1024];
    snprintf (path, sizeof path, "%s/tests/data/%s", qp_test_source_dir (), name);
    return path;
}

static void s_setup (void)
{
    qp_error_t err;
    s_index = qp_qpv_load_geojson (s_data ("qpv-contours.geojson"), &err);
    ck_assert_msg (s_index != NULL, "%s", err.message);
}

static void s_teardown (void)
{
    qp_qpv_destroy (&s_index);
}

/* The code found at (lat, lon) with tolerance tol, or "-" when none. */
static const char *s_at (double lat, double lon, double tol, double *distance)
{
    qp_qpv_hit_t hit;
    if (!qp_qpv_lookup (s_index, lat, lon, tol, &hit))
        return "-";
    if (distance)
        *distance = hit.distance_m;
    return hit.code;
}

START_TEST (test_inside_outside_and_hole)
{
    qp_qpv_hit_t hit;
    ck_assert (qp_qpv_lookup (s_index, 50.702, 3.102, 0, &hit));
    ck_assert_str_eq (hit.code, "QN05901A");
    ck_assert_str_eq (hit.name, "Carré Troué");
    ck_assert_str_eq (hit.commune, "59512");
    ck_assert (hit.distance_m == 0);
    ck_assert (hit.qpv->has_contour);
    /* Outside every contour, and inside the square's hole: not in the QPV. */
    ck_assert_str_eq (s_at (50.72, 3.102, 0, NULL), "-");
    ck_assert_str_eq (s_at (50.705, 3.105, 0, NULL), "-");
    /* Between the hole and the outer ring again inside. */
    ck_assert_str_eq (s_at (50.705, 3.1065, 0, NULL), "QN05901A");
    ck_assert_str_eq (s_at (50.7035, 3.105, 0, NULL), "QN05901A");
    ck_assert_uint_eq (qp_qpv_count (s_index), 5);
    /* Rings of 5 points: the square and its hole, 2 islets, 2 halves, La Réunion; and a
     * triangle of 4. */
    ck_assert_uint_eq (qp_qpv_vertex_count (s_index), 7 * 5 + 4);
    ck_assert_uint_gt (qp_qpv_memory (s_index), 0);
}
END_TEST

START_TEST (test_boundary_tolerance)
{
    double d = -1;
    /* 20 m east of the square's east edge (lon 3.11). */
    double lon = 3.11 + 20 / KX;
    ck_assert_str_eq (s_at (50.705, lon, 0, NULL), "-");
    ck_assert_str_eq (s_at (50.705, lon, 10, NULL), "-");
    ck_assert_str_eq (s_at (50.705, lon, 30, &d), "QN05901A");
    ck_assert_msg (fabs (d - 20) < 0.5, "distance %g, expected 20", d);
    /* 15 m north of the north edge (lat 50.71). */
    ck_assert_str_eq (s_at (50.71 + 15 / KY, 3.105, 16, &d), "QN05901A");
    ck_assert_msg (fabs (d - 15) < 0.5, "distance %g, expected 15", d);
    ck_assert_str_eq (s_at (50.71 + 15 / KY, 3.105, 14, NULL), "-");
    /* Just inside: distance 0 whatever the tolerance. */
    ck_assert_str_eq (s_at (50.705, 3.11 - 1 / KX, 30, &d), "QN05901A");
    ck_assert (d == 0);
    /* The hole's edge is a boundary too: its centre is 0.001 degree of longitude from it. */
    ck_assert_str_eq (s_at (50.705, 3.105, 100, &d), "QN05901A");
    ck_assert_msg (fabs (d - 0.001 * KX) < 1, "distance %g, expected %g", d, 0.001 * KX);
    /* Between two QPV (square east edge 3.11, first islet west edge 3.12): the nearest. */
    ck_assert_str_eq (s_at (50.7025, 3.12 - 100 / KX, 500, &d), "QN05902B");
    ck_assert_msg (fabs (d - 100) < 0.5, "distance %g, expected 100", d);
    ck_assert_str_eq (s_at (50.7025, 3.11 + 100 / KX, 500, &d), "QN05901A");
    /* Far away: nothing within the tolerance, even the largest one. */
    ck_assert_str_eq (s_at (48.0, 2.0, 1e9, NULL), "-");
}
END_TEST

START_TEST (test_multipolygon_and_merged_features)
{
    qp_qpv_hit_t hit;
    /* Both parts of the MultiPolygon, not the gap between them. */
    ck_assert_str_eq (s_at (50.7025, 3.1225, 0, NULL), "QN05902B");
    ck_assert_str_eq (s_at (50.7025, 3.1325, 0, NULL), "QN05902B");
    ck_assert_str_eq (s_at (50.7025, 3.1275, 0, NULL), "-");
    /* One code over two features (one per commune): either side is the same QPV. */
    ck_assert (qp_qpv_lookup (s_index, 50.7025, 3.1449, 0, &hit));
    ck_assert_str_eq (hit.code, "QN05903C");
    ck_assert (qp_qpv_lookup (s_index, 50.7025, 3.1451, 0, &hit));
    ck_assert_str_eq (hit.code, "QN05903C");
    const qp_qpv_info_t *info = qp_qpv_find_code (s_index, "QN05903C");
    ck_assert_ptr_eq (info, hit.qpv);
    ck_assert_uint_eq (info->commune_count, 2);
    ck_assert_str_eq (info->communes[0].insee, "59350");
    ck_assert_str_eq (info->communes[1].insee, "59360");
    /* The box covers both features. */
    ck_assert (info->min_lon == 3.14 && info->max_lon == 3.15);
    ck_assert (info->min_lat == 50.7 && info->max_lat == 50.705);
    ck_assert_ptr_eq (qp_qpv_at (s_index, 2), info);
    ck_assert_ptr_null (qp_qpv_at (s_index, 5));
    /* insee_com then insee_coms, without repeating the main commune. */
    info = qp_qpv_find_code (s_index, "QN05902B");
    ck_assert_uint_eq (info->commune_count, 2);
    ck_assert_str_eq (info->communes[1].insee, "59599");
}
END_TEST

START_TEST (test_overseas)
{
    /* Southern latitudes (La Réunion) and western longitudes (Guyane): negative cells. */
    ck_assert_str_eq (s_at (-21.285, 55.405, 0, NULL), "QN97401A");
    ck_assert_str_eq (s_at (-21.295, 55.405, 0, NULL), "-");
    ck_assert_str_eq (s_at (4.925, -52.33, 0, NULL), "QN97302A");
    ck_assert_str_eq (s_at (4.939, -52.339, 0, NULL), "-"); /* outside the triangle, in its box */
}
END_TEST

START_TEST (test_declared_code_fallback)
{
    const qp_qpv_info_t *info = qp_qpv_find_code (s_index, "QN97401A");
    ck_assert_ptr_nonnull (info);
    ck_assert_str_eq (info->name, "Bois de Nèfles Saint-Louis");
    ck_assert_uint_eq (info->commune_count, 1);
    ck_assert_str_eq (info->communes[0].insee, "97414");
    ck_assert_ptr_null (info->communes[0].name); /* the contours give no commune name */
    ck_assert_ptr_null (qp_qpv_find_code (s_index, "QN99999Z"));
    ck_assert_ptr_null (qp_qpv_find_code (s_index, ""));
    ck_assert_ptr_null (qp_qpv_find_code (s_index, NULL));
}
END_TEST

START_TEST (test_bad_coordinates)
{
    struct {
        double lat, lon;
        const char *field;
    } bad[] = {{NAN, 3.1, "lat"},        {50.7, NAN, "lon"}, {INFINITY, 3.1, "lat"},
               {50.7, -INFINITY, "lon"}, {90.5, 3.1, "lat"}, {-91, 3.1, "lat"},
               {50.7, 180.01, "lon"},    {50.7, -200, "lon"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qp_error_t err;
        memset (&err, 0, sizeof err);
        ck_assert (!qp_qpv_coordinates_valid (bad[i].lat, bad[i].lon, &err));
        ck_assert_str_eq (err.code, "bad_coordinates");
        ck_assert_str_eq (err.field, bad[i].field);
        qp_qpv_hit_t hit;
        memset (&hit, 0, sizeof hit);
        ck_assert (!qp_qpv_lookup (s_index, bad[i].lat, bad[i].lon, 100, &hit));
        ck_assert_ptr_null (hit.code);
    }
    ck_assert (qp_qpv_coordinates_valid (-90, -180, NULL));
    ck_assert (qp_qpv_coordinates_valid (90, 180, NULL));
    /* A NaN tolerance is no tolerance. */
    ck_assert_str_eq (s_at (50.705, 3.11 + 20 / KX, NAN, NULL), "-");
}
END_TEST

START_TEST (test_broken_files_refused)
{
    struct {
        const char *file, *field, *says;
    } cases[] = {
        {"qpv-open-ring.geojson", "features[1].geometry.coordinates[1][0]",
         "feature 1 (QN05902B): open ring: first position [3.13, 50.7] != last [3.13, 50.7001]"},
        {"qpv-wrong-type.geojson", "features[2].geometry.type",
         "feature 2 (QN05903C): geometry type \"LineString\" is not Polygon or MultiPolygon"},
        {"qpv-non-numeric.geojson", "features[0].geometry.coordinates[0][2][1]",
         "feature 0 (QN05901A): latitude is not a number"},
        {"qpv-missing-code.geojson", "features[4].properties.code_qp",
         "feature 4 (no code_qp): missing code_qp"},
        {"qpv-short-ring.geojson", "features[5].geometry.coordinates[0]",
         "feature 5 (QN97302A): a ring needs at least 4 positions (closed), this one has 3"},
        {"qpv-out-of-range.geojson", "features[4].geometry.coordinates[0][1]",
         "feature 4 (QN97401A): position [55.41, -95] is outside"},
        {"qpv-not-collection.geojson", "type", "not a GeoJSON FeatureCollection (type \"Feature\""},
        /* Found by fuzzing: a country-sized box took the grid gigabytes. */
        {"qpv-huge-box.geojson", "features[0].geometry.coordinates",
         "feature 0 (QN05901A): the outer ring spans 0.01 by 7.01 degrees"},
        {"qpv-list.csv", NULL, "line 1, column 1: "},
        {"no-such-file.geojson", NULL, "unable to open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qp_error_t err;
        memset (&err, 0, sizeof err);
        qp_qpv_index_t *index = qp_qpv_load_geojson (s_data (cases[i].file), &err);
        ck_assert_msg (index == NULL, "%s was accepted", cases[i].file);
        ck_assert_str_eq (err.code, "bad_qpv_contours");
        if (cases[i].field)
            ck_assert_str_eq (err.field, cases[i].field);
        ck_assert_msg (strstr (err.message, cases[i].says), "%s: \"%s\" does not say \"%s\"",
                       cases[i].file, err.message, cases[i].says);
    }
    /* The index in force is untouched by the failed loads. */
    ck_assert_str_eq (s_at (50.702, 3.102, 0, NULL), "QN05901A");
}
END_TEST

START_TEST (test_list_csv)
{
    qp_error_t err;
    ck_assert_msg (qp_qpv_load_list_csv (s_index, s_data ("qpv-list.csv"), &err) == 0, "%s",
                   err.message);
    /* A contour code gains its communes' names, departments and EPCI. */
    const qp_qpv_info_t *info = qp_qpv_find_code (s_index, "QN05902B");
    ck_assert (info->has_contour);
    ck_assert_uint_eq (info->commune_count, 2);
    ck_assert_str_eq (info->communes[0].name, "Roubaix");
    ck_assert_str_eq (info->communes[1].insee, "59599");
    ck_assert_str_eq (info->communes[1].name, "Tourcoing");
    ck_assert_str_eq (info->communes[1].department, "59");
    ck_assert_str_eq (info->communes[1].department_name, "Nord");
    ck_assert_str_eq (info->communes[1].region_name, "Hauts-de-France");
    ck_assert_str_eq (info->communes[1].epci_siren, "200093201");
    ck_assert_str_eq (info->communes[1].epci_name, "Métropole Européenne de Lille");
    /* The first column survived the BOM; a quoted field keeps its ';' and quotes. */
    info = qp_qpv_find_code (s_index, "QN02A01A");
    ck_assert_ptr_nonnull (info);
    ck_assert (!info->has_contour);
    ck_assert_str_eq (info->name, "Les Salines");
    ck_assert_str_eq (info->communes[0].insee, "2A004");
    ck_assert_str_eq (info->communes[0].department, "2A");
    ck_assert_str_eq (info->communes[0].epci_name, "CA du Pays Ajaccien; test quote \"ok\"");
    ck_assert_uint_eq (qp_qpv_count (s_index), 6);
    /* Lookups still answer, with the list's data behind the hit. */
    qp_qpv_hit_t hit;
    ck_assert (qp_qpv_lookup (s_index, 50.7025, 3.1325, 0, &hit));
    ck_assert_str_eq (hit.qpv->communes[0].name, "Roubaix");

    /* A bad row: line-numbered, and the index unchanged. */
    size_t before = qp_qpv_memory (s_index);
    ck_assert_int_eq (qp_qpv_load_list_csv (s_index, s_data ("qpv-list-bad-row.csv"), &err), -1);
    ck_assert_str_eq (err.code, "bad_qpv_list");
    ck_assert_str_eq (err.field, "insee_com");
    ck_assert_msg (strstr (err.message, "line 4: insee_com \"5959\": not a commune INSEE code"),
                   "%s", err.message);
    ck_assert_uint_eq (qp_qpv_memory (s_index), before);
    ck_assert_uint_eq (qp_qpv_count (s_index), 6);
    /* Not the list's header; no file. */
    ck_assert_int_eq (qp_qpv_load_list_csv (s_index, s_data ("qpv-contours.geojson"), &err), -1);
    ck_assert_str_eq (err.field, "header");
    ck_assert_msg (strstr (err.message, "line 1: the header must be"), "%s", err.message);
    ck_assert_int_eq (qp_qpv_load_list_csv (s_index, s_data ("none.csv"), &err), -1);

    /* The list alone, into an empty index: codes known, nothing found by lookup. */
    qp_qpv_index_t *list = qp_qpv_new ();
    ck_assert_int_eq (qp_qpv_load_list_csv (list, s_data ("qpv-list.csv"), &err), 0);
    ck_assert_uint_eq (qp_qpv_count (list), 4);
    ck_assert_str_eq (qp_qpv_find_code (list, "QN97401A")->communes[0].name, "Saint-Louis");
    ck_assert (!qp_qpv_lookup (list, 50.702, 3.102, 100, &hit));
    qp_qpv_destroy (&list);
    qp_qpv_destroy (&list); /* idempotent */
}
END_TEST

/* The real 2024 contours, when ../shared/data is beside the checkout. */
START_TEST (test_real_contours)
{
    char path[1024];
    const char *shared = getenv ("QP_SHARED_DATA");
    if (shared)
        snprintf (path, sizeof path, "%s/qpv2024.geojson", shared);
    else
        snprintf (path, sizeof path, "%s/../shared/data/qpv2024.geojson", qp_test_source_dir ());
    if (access (path, R_OK) != 0) {
        printf ("test_qpv: %s absent, real-contour check skipped\n", path);
        return;
    }
    qp_error_t err;
    qp_qpv_index_t *real = qp_qpv_load_geojson (path, &err);
    ck_assert_msg (real != NULL, "%s", err.message);
    ck_assert_uint_eq (qp_qpv_count (real), 1584);
    ck_assert_uint_eq (qp_qpv_vertex_count (real), 231917);
    ck_assert_uint_le (qp_qpv_memory (real), 64u << 20);
    /* Area centroids, checked beforehand to lie inside their single ring, 118 m and 2.7 km
     * from its boundary. */
    qp_qpv_hit_t hit;
    ck_assert (qp_qpv_lookup (real, 50.67402, 3.18731, 0, &hit));
    ck_assert_str_eq (hit.code, "QN05981M");
    ck_assert_str_eq (hit.name, "Nouveau Roubaix");
    ck_assert_str_eq (hit.commune, "59512");
    ck_assert (qp_qpv_lookup (real, -12.78269, 45.13458, 0, &hit));
    ck_assert_str_eq (hit.code, "QN97667C");
    /* The Bay of Biscay. */
    ck_assert (!qp_qpv_lookup (real, 46.0, -5.0, 1000, &hit));
    ck_assert_str_eq (qp_qpv_find_code (real, "QN07505I")->name, "Didot - Porte de Vanves");
    qp_qpv_destroy (&real);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("qpv");
    TCase *tc = tcase_create ("qpv");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_inside_outside_and_hole);
    tcase_add_test (tc, test_boundary_tolerance);
    tcase_add_test (tc, test_multipolygon_and_merged_features);
    tcase_add_test (tc, test_overseas);
    tcase_add_test (tc, test_declared_code_fallback);
    tcase_add_test (tc, test_bad_coordinates);
    tcase_add_test (tc, test_broken_files_refused);
    tcase_add_test (tc, test_list_csv);
    tcase_add_test (tc, test_real_contours);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
