/* The QPV index: which priority neighbourhood (QPV) contains a point, on the official ANCT
 * contours (GeoJSON, WGS84), with a distance tolerance for "both sides of a boundary
 * street count"; and what is known of a QPV code (name, communes, department, EPCI) from
 * the contours and the official QPV list (CSV), for dossiers that only declare a code.
 *
 * An index is immutable once built (several threads may look up at once); a reload builds
 * a new one and swaps it, so a broken file leaves the index in force untouched:
 *
 *     qp_error_t err;
 *     qp_qpv_index_t *fresh = qp_qpv_load_geojson (path, &err);
 *     if (fresh && (!list || qp_qpv_load_list_csv (fresh, list, &err) == 0)) {
 *         qp_qpv_destroy (&self->qpv);
 *         self->qpv = fresh;
 *     } else {
 *         qp_qpv_destroy (&fresh);  // log err.field, err.message; keep self->qpv
 *     }
 */
#ifndef QP_QPV_H
#define QP_QPV_H
#include "qp_message.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct qp_qpv_index qp_qpv_index_t;

/* Largest tolerance a lookup honours (metres); a larger one is taken as this. */
#define QP_QPV_MAX_TOLERANCE_M 10000.0

/* One commune of a QPV. Fields the loaded files do not give are NULL: the contours give
 * only insee; the list gives them all. */
typedef struct {
    const char *insee;           /* "59512" */
    const char *name;            /* "Roubaix" */
    const char *department;      /* "59" */
    const char *department_name; /* "Nord" */
    const char *region;          /* "32" */
    const char *region_name;     /* "Hauts-de-France" */
    const char *epci_siren;      /* "200093201" */
    const char *epci_name;       /* "Métropole Européenne de Lille" */
} qp_qpv_commune_t;

typedef struct {
    const char *code; /* "QN05981M" */
    const char *name; /* lib_qp; NULL when no file named it */
    size_t commune_count;
    const qp_qpv_commune_t *communes; /* the first is the main commune (insee_com) */
    bool has_contour;                 /* false: known from the list only, never found by lookup */
    /* Bounding box of the contours (WGS84 degrees) when has_contour. */
    double min_lat, min_lon, max_lat, max_lon;
} qp_qpv_info_t;

typedef struct {
    const qp_qpv_info_t *qpv; /* borrowed from the index */
    const char *code;         /* = qpv->code */
    const char *name;         /* = qpv->name */
    const char *commune;      /* = the main commune's INSEE code, or NULL */
    double distance_m;        /* 0: strictly inside; else metres to the nearest boundary */
} qp_qpv_hit_t;

/* An empty index (no contour): for the list CSV alone. */
qp_qpv_index_t *qp_qpv_new (void);

/* Loads the ANCT contours: a GeoJSON FeatureCollection whose features have properties
 * code_qp (required), lib_qp, insee_com, insee_coms, and a Polygon or MultiPolygon
 * geometry in WGS84 lon/lat. Features sharing a code are merged under it. Returns NULL
 * with err when the file is broken: err->field names the place ("features[12].geometry.
 * coordinates[0][1][3]") and err->message the feature index, its code and what is wrong
 * (not a FeatureCollection, wrong geometry type, open ring, ring under 4 points,
 * non-numeric or out-of-range coordinate, missing code_qp). */
qp_qpv_index_t *qp_qpv_load_geojson (const char *path, qp_error_t *err);

/* Adds the official QPV list (listeqp2024-cog2024.csv: ';'-separated, UTF-8, optional BOM,
 * header code_qp;lib_qp;insee_reg;lib_reg;insee_dep;lib_dep;insee_com;lib_com;siren_epci;
 * lib_epci, one row per QPV and commune) to self: names, communes, departments, regions,
 * EPCI; codes without a contour are added as known codes. Returns 0, or -1 with err
 * ("line N", the column and why) and self unchanged. Invalidates the qp_qpv_info_t
 * pointers handed out before. */
int qp_qpv_load_list_csv (qp_qpv_index_t *self, const char *path, qp_error_t *err);

/* Coordinates a lookup can take: finite, lat in [-90, 90], lon in [-180, 180]. false with
 * err (field "lat" or "lon", why) otherwise. */
bool qp_qpv_coordinates_valid (double lat, double lon, qp_error_t *err);

/* Which QPV holds (lat, lon)? true with out filled when the point is strictly inside a QPV
 * (even-odd rule, holes are outside; distance_m = 0), or else when a QPV boundary is
 * within tolerance_m metres (the nearest; distance on a local equirectangular
 * projection). false when neither, or when the coordinates are not valid (check them
 * with qp_qpv_coordinates_valid to say why). Thread-safe, allocates nothing. */
bool qp_qpv_lookup (const qp_qpv_index_t *self, double lat, double lon, double tolerance_m,
                    qp_qpv_hit_t *out);

/* What the index knows of a code (the declared-code fallback: "declared, not verified"),
 * or NULL when the code is unknown. Borrowed, valid until the index changes. */
const qp_qpv_info_t *qp_qpv_find_code (const qp_qpv_index_t *self, const char *code);

/* Number of QPV codes known. */
size_t qp_qpv_count (const qp_qpv_index_t *self);
/* The i-th QPV (i < qp_qpv_count), in loading order: to walk them all. */
const qp_qpv_info_t *qp_qpv_at (const qp_qpv_index_t *self, size_t i);
/* Number of contour vertices held. */
size_t qp_qpv_vertex_count (const qp_qpv_index_t *self);
/* Bytes the index holds (arrays and strings, as allocated). */
size_t qp_qpv_memory (const qp_qpv_index_t *self);

void qp_qpv_destroy (qp_qpv_index_t **self_p);
#endif
