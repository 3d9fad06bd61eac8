/* The QPV index (see qp_qpv.h). Contours are kept as flat arrays (points, rings,
 * polygons with their bounding box); a hash grid of 0.01-degree cells (about 1 km) lists
 * the polygons whose box touches each cell, so a lookup hashes one cell, tests a few
 * boxes and runs the crossing-number test on one or two polygons. */
#include "qp_qpv.h"
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_DEG 0.01
/* Largest side of a polygon's bounding box: the largest QPV of the 2024 contours spans
 * 0.13 degree; a neighbourhood never spans 1 (about 100 km). */
#define MAX_EXTENT_DEG 1.0
/* Metres per degree of latitude on the mean Earth radius (6,371,008.8 m). */
#define METRES_PER_DEG 111195.08
#define MAX_CODE 15

typedef struct {
    double lon, lat;
} point_t;

typedef struct {
    uint32_t first;       /* index in points */
    uint32_t count;       /* closed: the last point repeats the first */
    uint32_t first_chunk; /* index in chunks: edges by runs of CHUNK_EDGES */
} ring_t;

/* The box of a run of consecutive edges: both the crossing test and the distance skip
 * the runs that cannot matter, so a long ring costs a few boxes, not all its edges. */
#define CHUNK_EDGES 16
typedef struct {
    double min_lon, min_lat, max_lon, max_lat;
} chunk_t;

/* One polygon: an outer ring and its holes (rings first_ring .. first_ring+ring_count). */
typedef struct {
    double min_lon, min_lat, max_lon, max_lat;
    uint32_t entry;
    uint32_t first_ring, ring_count;
} polygon_t;

typedef struct {
    qp_qpv_info_t pub;
    qp_qpv_commune_t *communes; /* = pub.communes, owned */
    size_t commune_cap;
} entry_t;

typedef struct {
    uint64_t key;
    uint32_t start, count; /* in cell_polygons; count 0: empty slot */
} cell_t;

typedef struct {
    const char *code; /* the entry's own string */
    uint32_t entry;
} code_slot_t;

struct qp_qpv_index {
    entry_t *entries;
    size_t entry_count, entry_cap;
    code_slot_t *by_code; /* sorted by code */
    point_t *points;
    size_t point_count, point_cap;
    ring_t *rings;
    size_t ring_count, ring_cap;
    chunk_t *chunks;
    size_t chunk_count, chunk_cap;
    polygon_t *polygons;
    size_t polygon_count, polygon_cap;
    cell_t *cells;
    size_t cell_mask; /* capacity - 1, a power of two; cells NULL when no polygon */
    uint32_t *cell_polygons;
    size_t cell_polygon_count;
};

/* ---- small helpers ------------------------------------------------------------------ */

static void *s_grow (void *array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return array;
    size_t cap2 = *cap ? *cap * 2 : 16;
    while (cap2 < need)
        cap2 *= 2;
    array = realloc (array, cap2 * size);
    assert (array);
    *cap = cap2;
    return array;
}

static char *s_strdup (const char *s)
{
    if (!s)
        return NULL;
    char *copy = strdup (s);
    assert (copy);
    return copy;
}

static size_t s_strsize (const char *s)
{
    return s ? strlen (s) + 1 : 0;
}

static void s_commune_free (qp_qpv_commune_t *c)
{
    free ((char *)c->insee);
    free ((char *)c->name);
    free ((char *)c->department);
    free ((char *)c->department_name);
    free ((char *)c->region);
    free ((char *)c->region_name);
    free ((char *)c->epci_siren);
    free ((char *)c->epci_name);
}

/* Sets *field to a copy of value when it is still unset. */
static void s_fill (const char **field, const char *value)
{
    if (!*field && value && *value)
        *field = s_strdup (value);
}

/* The entry of a code (created when new); map: code -> index + 1. */
static entry_t *s_entry_for (qp_qpv_index_t *self, zhashx_t *map, const char *code)
{
    uintptr_t slot = (uintptr_t)zhashx_lookup (map, code);
    if (slot)
        return &self->entries[slot - 1];
    self->entries =
        s_grow (self->entries, &self->entry_cap, self->entry_count + 1, sizeof *self->entries);
    entry_t *e = &self->entries[self->entry_count++];
    memset (e, 0, sizeof *e);
    e->pub.code = s_strdup (code);
    zhashx_insert (map, code, (void *)(uintptr_t)self->entry_count);
    return e;
}

static zhashx_t *s_code_map (const qp_qpv_index_t *self)
{
    zhashx_t *map = zhashx_new ();
    assert (map);
    for (size_t i = 0; i < self->entry_count; i++)
        zhashx_insert (map, self->entries[i].pub.code, (void *)(uintptr_t)(i + 1));
    return map;
}

/* The commune insee of e (appended when new). */
static qp_qpv_commune_t *s_commune_for (entry_t *e, const char *insee)
{
    for (size_t i = 0; i < e->pub.commune_count; i++)
        if (strcmp (e->communes[i].insee, insee) == 0)
            return &e->communes[i];
    e->communes =
        s_grow (e->communes, &e->commune_cap, e->pub.commune_count + 1, sizeof *e->communes);
    qp_qpv_commune_t *c = &e->communes[e->pub.commune_count++];
    memset (c, 0, sizeof *c);
    c->insee = s_strdup (insee);
    e->pub.communes = e->communes;
    return c;
}

static int s_by_code_cmp (const void *a, const void *b)
{
    return strcmp (((const code_slot_t *)a)->code, ((const code_slot_t *)b)->code);
}

/* Rebuilds the sorted code table (qp_qpv_find_code). */
static void s_sort_codes (qp_qpv_index_t *self)
{
    free (self->by_code);
    self->by_code = malloc ((self->entry_count ? self->entry_count : 1) * sizeof *self->by_code);
    assert (self->by_code);
    for (size_t i = 0; i < self->entry_count; i++)
        self->by_code[i] = (code_slot_t){self->entries[i].pub.code, (uint32_t)i};
    qsort (self->by_code, self->entry_count, sizeof *self->by_code, s_by_code_cmp);
}

qp_qpv_index_t *qp_qpv_new (void)
{
    qp_qpv_index_t *self = calloc (1, sizeof *self);
    assert (self);
    s_sort_codes (self);
    return self;
}

void qp_qpv_destroy (qp_qpv_index_t **self_p)
{
    assert (self_p);
    qp_qpv_index_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->entry_count; i++) {
        entry_t *e = &self->entries[i];
        for (size_t c = 0; c < e->pub.commune_count; c++)
            s_commune_free (&e->communes[c]);
        free (e->communes);
        free ((char *)e->pub.code);
        free ((char *)e->pub.name);
    }
    free (self->entries);
    free (self->by_code);
    free (self->points);
    free (self->rings);
    free (self->chunks);
    free (self->polygons);
    free (self->cells);
    free (self->cell_polygons);
    free (self);
    *self_p = NULL;
}

/* ---- the grid ----------------------------------------------------------------------- */

static inline int32_t s_cell_of (double degrees)
{
    return (int32_t)floor (degrees / CELL_DEG);
}

static inline uint64_t s_cell_key (int32_t ix, int32_t iy)
{
    return ((uint64_t)(uint32_t)iy << 32) | (uint32_t)ix;
}

static inline size_t s_cell_hash (uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 32);
}

static const cell_t *s_cell_find (const qp_qpv_index_t *self, int32_t ix, int32_t iy)
{
    if (!self->cells)
        return NULL;
    uint64_t key = s_cell_key (ix, iy);
    for (size_t i = s_cell_hash (key) & self->cell_mask;; i = (i + 1) & self->cell_mask) {
        const cell_t *c = &self->cells[i];
        if (c->count == 0)
            return NULL;
        if (c->key == key)
            return c;
    }
}

typedef struct {
    uint64_t key;
    uint32_t polygon;
} pair_t;

static int s_pair_cmp (const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->polygon < y->polygon ? -1 : x->polygon > y->polygon;
}

static void s_build_grid (qp_qpv_index_t *self)
{
    pair_t *pairs = NULL;
    size_t pair_count = 0, pair_cap = 0;
    for (size_t p = 0; p < self->polygon_count; p++) {
        const polygon_t *poly = &self->polygons[p];
        for (int32_t iy = s_cell_of (poly->min_lat); iy <= s_cell_of (poly->max_lat); iy++)
            for (int32_t ix = s_cell_of (poly->min_lon); ix <= s_cell_of (poly->max_lon); ix++) {
                pairs = s_grow (pairs, &pair_cap, pair_count + 1, sizeof *pairs);
                pairs[pair_count++] = (pair_t){s_cell_key (ix, iy), (uint32_t)p};
            }
    }
    qsort (pairs, pair_count, sizeof *pairs, s_pair_cmp);
    size_t distinct = 0;
    for (size_t i = 0; i < pair_count; i++)
        if (i == 0 || pairs[i].key != pairs[i - 1].key)
            distinct++;
    size_t cap = 16;
    while (cap < distinct * 2)
        cap *= 2;
    self->cells = calloc (cap, sizeof *self->cells);
    self->cell_polygons = malloc ((pair_count ? pair_count : 1) * sizeof (uint32_t));
    assert (self->cells && self->cell_polygons);
    self->cell_mask = cap - 1;
    self->cell_polygon_count = pair_count;
    for (size_t i = 0; i < pair_count;) {
        size_t j = i;
        while (j < pair_count && pairs[j].key == pairs[i].key) {
            self->cell_polygons[j] = pairs[j].polygon;
            j++;
        }
        size_t h = s_cell_hash (pairs[i].key) & self->cell_mask;
        while (self->cells[h].count)
            h = (h + 1) & self->cell_mask;
        self->cells[h] = (cell_t){pairs[i].key, (uint32_t)i, (uint32_t)(j - i)};
        i = j;
    }
    free (pairs);
}

/* ---- GeoJSON ------------------------------------------------------------------------ */

typedef struct {
    size_t feature;
    const char *code; /* NULL before code_qp is read */
    qp_error_t *err;
} where_t;

static void s_fail (const where_t *w, const char *field, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void s_fail (const where_t *w, const char *field, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, sizeof why, fmt, ap);
    va_end (ap);
    qp_error_set (w->err, "bad_qpv_contours", field, "feature %zu (%s): %s", w->feature,
                  w->code ? w->code : "no code_qp", why);
}

/* Reads one ring ([[lon, lat], ...], closed, at least 4 points) into self->points. */
static int s_read_ring (qp_qpv_index_t *self, const json_t *ring, const char *path,
                        const where_t *w)
{
    char field[160];
    if (!json_is_array (ring)) {
        s_fail (w, path, "a ring must be an array of positions");
        return -1;
    }
    size_t n = json_array_size (ring);
    if (n < 4) {
        s_fail (w, path, "a ring needs at least 4 positions (closed), this one has %zu", n);
        return -1;
    }
    self->points =
        s_grow (self->points, &self->point_cap, self->point_count + n, sizeof *self->points);
    point_t *out = &self->points[self->point_count];
    for (size_t i = 0; i < n; i++) {
        const json_t *pos = json_array_get (ring, i);
        snprintf (field, sizeof field, "%s[%zu]", path, i);
        if (!json_is_array (pos) || json_array_size (pos) < 2) {
            s_fail (w, field, "a position must be an array [lon, lat]");
            return -1;
        }
        for (size_t k = 0; k < 2; k++) {
            const json_t *v = json_array_get (pos, k);
            if (!json_is_number (v)) {
                snprintf (field, sizeof field, "%s[%zu][%zu]", path, i, k);
                s_fail (w, field, "%s is not a number", k ? "latitude" : "longitude");
                return -1;
            }
        }
        double lon = json_number_value (json_array_get (pos, 0));
        double lat = json_number_value (json_array_get (pos, 1));
        if (!(lon >= -180 && lon <= 180) || !(lat >= -90 && lat <= 90)) {
            s_fail (w, field,
                    "position [%g, %g] is outside [-180, 180] x [-90, 90] (WGS84 lon, lat)", lon,
                    lat);
            return -1;
        }
        out[i] = (point_t){lon, lat};
    }
    if (out[0].lon != out[n - 1].lon || out[0].lat != out[n - 1].lat) {
        s_fail (w, path, "open ring: first position [%g, %g] != last [%g, %g]", out[0].lon,
                out[0].lat, out[n - 1].lon, out[n - 1].lat);
        return -1;
    }
    self->rings = s_grow (self->rings, &self->ring_cap, self->ring_count + 1, sizeof *self->rings);
    self->rings[self->ring_count++] =
        (ring_t){(uint32_t)self->point_count, (uint32_t)n, (uint32_t)self->chunk_count};
    size_t edges = n - 1, chunks = (edges + CHUNK_EDGES - 1) / CHUNK_EDGES;
    self->chunks =
        s_grow (self->chunks, &self->chunk_cap, self->chunk_count + chunks, sizeof *self->chunks);
    for (size_t c = 0; c < chunks; c++) {
        chunk_t *box = &self->chunks[self->chunk_count++];
        *box = (chunk_t){INFINITY, INFINITY, -INFINITY, -INFINITY};
        size_t last = (c + 1) * CHUNK_EDGES < edges ? (c + 1) * CHUNK_EDGES : edges;
        for (size_t i = c * CHUNK_EDGES; i <= last; i++) {
            box->min_lon = fmin (box->min_lon, out[i].lon),
            box->max_lon = fmax (box->max_lon, out[i].lon);
            box->min_lat = fmin (box->min_lat, out[i].lat),
            box->max_lat = fmax (box->max_lat, out[i].lat);
        }
    }
    self->point_count += n;
    return 0;
}

/* Reads one polygon ([outer, hole, ...]) for entry. */
static int s_read_polygon (qp_qpv_index_t *self, const json_t *poly, const char *path,
                           uint32_t entry, const where_t *w)
{
    if (!json_is_array (poly) || json_array_size (poly) == 0) {
        s_fail (w, path, "a polygon must be a non-empty array of rings");
        return -1;
    }
    size_t first_ring = self->ring_count;
    char field[128];
    for (size_t r = 0; r < json_array_size (poly); r++) {
        snprintf (field, sizeof field, "%s[%zu]", path, r);
        if (s_read_ring (self, json_array_get (poly, r), field, w))
            return -1;
    }
    polygon_t p = {INFINITY,
                   INFINITY,
                   -INFINITY,
                   -INFINITY,
                   entry,
                   (uint32_t)first_ring,
                   (uint32_t)(self->ring_count - first_ring)};
    /* The outer ring bounds the polygon; holes lie inside it. */
    const ring_t *outer = &self->rings[first_ring];
    for (uint32_t i = 0; i < outer->count; i++) {
        const point_t *pt = &self->points[outer->first + i];
        p.min_lon = fmin (p.min_lon, pt->lon), p.max_lon = fmax (p.max_lon, pt->lon);
        p.min_lat = fmin (p.min_lat, pt->lat), p.max_lat = fmax (p.max_lat, pt->lat);
    }
    /* The grid indexes a polygon in every cell of its box: a box the size of a country
     * (a typo in a coordinate) would take gigabytes, found by fuzzing. */
    if (p.max_lon - p.min_lon > MAX_EXTENT_DEG || p.max_lat - p.min_lat > MAX_EXTENT_DEG) {
        s_fail (w, path,
                "the outer ring spans %.3g by %.3g degrees (lon by lat), more than a "
                "neighbourhood can (%g at most)",
                p.max_lon - p.min_lon, p.max_lat - p.min_lat, MAX_EXTENT_DEG);
        return -1;
    }
    self->polygons = s_grow (self->polygons, &self->polygon_cap, self->polygon_count + 1,
                             sizeof *self->polygons);
    self->polygons[self->polygon_count++] = p;
    return 0;
}

static const char *s_string_prop (const json_t *props, const char *name, const where_t *w,
                                  bool *bad)
{
    const json_t *v = json_object_get (props, name);
    if (!v || json_is_null (v))
        return NULL;
    if (!json_is_string (v)) {
        char field[64];
        snprintf (field, sizeof field, "features[%zu].properties.%s", w->feature, name);
        s_fail (w, field, "%s must be a string", name);
        *bad = true;
    }
    return json_string_value (v);
}

static int s_read_feature (qp_qpv_index_t *self, zhashx_t *map, const json_t *feature, where_t *w)
{
    char field[64];
    size_t i = w->feature;
    if (!json_is_object (feature)) {
        snprintf (field, sizeof field, "features[%zu]", i);
        s_fail (w, field, "a feature must be an object");
        return -1;
    }
    const json_t *props = json_object_get (feature, "properties");
    const json_t *code = json_object_get (props, "code_qp");
    if (!json_is_string (code) || json_string_length (code) == 0 ||
        json_string_length (code) > MAX_CODE) {
        snprintf (field, sizeof field, "features[%zu].properties.code_qp", i);
        s_fail (w, field,
                code ? "code_qp must be a string of 1 to %d characters"
                     : "missing code_qp (the QPV code)",
                MAX_CODE);
        return -1;
    }
    w->code = json_string_value (code);
    bool bad = false;
    const char *name = s_string_prop (props, "lib_qp", w, &bad);
    const char *commune = s_string_prop (props, "insee_com", w, &bad);
    if (bad)
        return -1;
    const json_t *communes = json_object_get (props, "insee_coms");
    if (communes && !json_is_null (communes)) {
        bool ok = json_is_array (communes);
        for (size_t k = 0; ok && k < json_array_size (communes); k++)
            ok = json_is_string (json_array_get (communes, k));
        if (!ok) {
            snprintf (field, sizeof field, "features[%zu].properties.insee_coms", i);
            s_fail (w, field, "insee_coms must be an array of INSEE codes (strings)");
            return -1;
        }
    }
    const json_t *geometry = json_object_get (feature, "geometry");
    const char *type = json_string_value (json_object_get (geometry, "type"));
    const json_t *coords = json_object_get (geometry, "coordinates");
    snprintf (field, sizeof field, "features[%zu].geometry", i);
    if (!json_is_object (geometry)) {
        s_fail (w, field, "no geometry (a Polygon or MultiPolygon is required)");
        return -1;
    }
    bool multi = type && strcmp (type, "MultiPolygon") == 0;
    if (!multi && !(type && strcmp (type, "Polygon") == 0)) {
        snprintf (field, sizeof field, "features[%zu].geometry.type", i);
        s_fail (w, field, "geometry type \"%s\" is not Polygon or MultiPolygon",
                type ? type : "(none)");
        return -1;
    }
    snprintf (field, sizeof field, "features[%zu].geometry.coordinates", i);
    if (!json_is_array (coords) || json_array_size (coords) == 0) {
        s_fail (w, field, "%s coordinates must be a non-empty array", type);
        return -1;
    }
    entry_t *e = s_entry_for (self, map, w->code);
    uint32_t entry = (uint32_t)(e - self->entries);
    size_t first_polygon = self->polygon_count;
    if (multi) {
        char part[96];
        for (size_t p = 0; p < json_array_size (coords); p++) {
            snprintf (part, sizeof part, "%s[%zu]", field, p);
            if (s_read_polygon (self, json_array_get (coords, p), part, entry, w))
                return -1;
        }
    } else if (s_read_polygon (self, coords, field, entry, w))
        return -1;
    e = &self->entries[entry];
    if (!e->pub.has_contour) {
        e->pub.has_contour = true;
        e->pub.min_lat = e->pub.min_lon = INFINITY;
        e->pub.max_lat = e->pub.max_lon = -INFINITY;
    }
    for (size_t p = first_polygon; p < self->polygon_count; p++) {
        const polygon_t *poly = &self->polygons[p];
        e->pub.min_lat = fmin (e->pub.min_lat, poly->min_lat);
        e->pub.min_lon = fmin (e->pub.min_lon, poly->min_lon);
        e->pub.max_lat = fmax (e->pub.max_lat, poly->max_lat);
        e->pub.max_lon = fmax (e->pub.max_lon, poly->max_lon);
    }
    s_fill (&e->pub.name, name);
    if (commune && *commune)
        s_commune_for (e, commune);
    for (size_t k = 0; communes && k < json_array_size (communes); k++)
        if (*json_string_value (json_array_get (communes, k)))
            s_commune_for (e, json_string_value (json_array_get (communes, k)));
    return 0;
}

/* Shrinks the arrays to their size (an index lives long). */
static void s_shrink (qp_qpv_index_t *self)
{
#define SHRINK(arr, count, cap)                                                                    \
    if ((count) && (count) < (cap)) {                                                              \
        arr = realloc (arr, (count) * sizeof *(arr));                                              \
        assert (arr);                                                                              \
        cap = count;                                                                               \
    }
    SHRINK (self->points, self->point_count, self->point_cap);
    SHRINK (self->rings, self->ring_count, self->ring_cap);
    SHRINK (self->chunks, self->chunk_count, self->chunk_cap);
    SHRINK (self->polygons, self->polygon_count, self->polygon_cap);
#undef SHRINK
}

qp_qpv_index_t *qp_qpv_load_geojson (const char *path, qp_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_load_file (path, 0, &jerr);
    if (!root) {
        qp_error_set (err, "bad_qpv_contours", path, "%s: line %d, column %d: %s", path, jerr.line,
                      jerr.column, jerr.text);
        return NULL;
    }
    qp_qpv_index_t *self = qp_qpv_new ();
    zhashx_t *map = zhashx_new ();
    assert (map);
    const json_t *features = json_object_get (root, "features");
    const char *type = json_string_value (json_object_get (root, "type"));
    if (!type || strcmp (type, "FeatureCollection") != 0 || !json_is_array (features)) {
        qp_error_set (
            err, "bad_qpv_contours", "type", "%s: not a GeoJSON FeatureCollection (type \"%s\"%s)",
            path, type ? type : "(none)", json_is_array (features) ? "" : ", no features array");
        goto failed;
    }
    for (size_t i = 0; i < json_array_size (features); i++) {
        where_t w = {i, NULL, err};
        if (s_read_feature (self, map, json_array_get (features, i), &w))
            goto failed;
    }
    if (self->polygon_count == 0) {
        qp_error_set (err, "bad_qpv_contours", "features", "%s: no QPV contour", path);
        goto failed;
    }
    s_shrink (self);
    s_sort_codes (self);
    s_build_grid (self);
    zhashx_destroy (&map);
    json_decref (root);
    return self;
failed:
    zhashx_destroy (&map);
    json_decref (root);
    qp_qpv_destroy (&self);
    return NULL;
}

/* ---- the QPV list (CSV) ------------------------------------------------------------- */

#define LIST_COLUMNS 10
static const char *s_list_header[LIST_COLUMNS] = {"code_qp",    "lib_qp",  "insee_reg", "lib_reg",
                                                  "insee_dep",  "lib_dep", "insee_com", "lib_com",
                                                  "siren_epci", "lib_epci"};
enum {
    COL_CODE,
    COL_NAME,
    COL_REG,
    COL_REG_NAME,
    COL_DEP,
    COL_DEP_NAME,
    COL_COM,
    COL_COM_NAME,
    COL_EPCI,
    COL_EPCI_NAME
};

/* Splits line (no end of line) into at most max fields, in place; "..." quoting with ""
 * for a quote. Returns the number of fields, or -1 on an unterminated quote. */
static int s_split (char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    while (true) {
        if (n == max)
            return max + 1;
        char *out = p;
        fields[n++] = out;
        if (*p == '"') {
            p++;
            while (true) {
                if (*p == '\0')
                    return -1;
                if (*p == '"' && p[1] == '"')
                    *out++ = '"', p += 2;
                else if (*p == '"') {
                    p++;
                    break;
                } else
                    *out++ = *p++;
            }
            if (*p != ';' && *p != '\0')
                return -1;
        } else
            while (*p != ';' && *p != '\0')
                *out++ = *p++;
        char sep = *p;
        *out = '\0';
        if (sep == '\0')
            return n;
        p++;
    }
}

static bool s_all (const char *s, const char *allowed, size_t min, size_t max)
{
    size_t n = strlen (s);
    return n >= min && n <= max && strspn (s, allowed) == n;
}

#define DIGITS "0123456789"
#define UPPER_DIGITS "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* Why a row's field is wrong, or NULL when it is fine. */
static const char *s_list_field_problem (int col, const char *v)
{
    switch (col) {
    case COL_CODE:
        return strncmp (v, "Q", 1) == 0 && s_all (v, UPPER_DIGITS, 8, 8)
                   ? NULL
                   : "not a QPV code (\"QN07505I\": Q and 7 letters or digits)";
    case COL_NAME:
        return *v ? NULL : "empty QPV name";
    case COL_REG:
        return s_all (v, DIGITS, 2, 2) ? NULL : "not a region code (2 digits)";
    case COL_DEP:
        return s_all (v, UPPER_DIGITS, 2, 3) ? NULL
                                             : "not a department code (\"59\", \"2A\", \"974\")";
    case COL_COM:
        return s_all (v, UPPER_DIGITS, 5, 5) ? NULL
                                             : "not a commune INSEE code (5 characters, \"59512\")";
    case COL_EPCI:
        return *v == '\0' || s_all (v, DIGITS, 9, 9) ? NULL : "not an EPCI SIREN (9 digits)";
    default:
        return NULL;
    }
}

typedef struct {
    char *fields[LIST_COLUMNS];
} row_t;

int qp_qpv_load_list_csv (qp_qpv_index_t *self, const char *path, qp_error_t *err)
{
    assert (self);
    FILE *file = fopen (path, "r");
    if (!file) {
        qp_error_set (err, "bad_qpv_list", path, "%s: %s", path, strerror (errno));
        return -1;
    }
    row_t *rows = NULL;
    size_t row_count = 0, row_cap = 0, line_no = 0, len = 0;
    char *line = NULL;
    ssize_t got;
    int rc = -1;
    char field[64];
    while ((got = getline (&line, &len, file)) >= 0) {
        line_no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        char *text = line;
        if (line_no == 1 && strncmp (text, "\xEF\xBB\xBF", 3) == 0)
            text += 3; /* the UTF-8 byte order mark of the official file */
        if (line_no > 1 && *text == '\0')
            continue;
        char *fields[LIST_COLUMNS + 1];
        int n = s_split (text, fields, LIST_COLUMNS);
        if (line_no == 1) {
            bool ok = n == LIST_COLUMNS;
            for (int c = 0; ok && c < LIST_COLUMNS; c++)
                ok = strcmp (fields[c], s_list_header[c]) == 0;
            if (!ok) {
                qp_error_set (err, "bad_qpv_list", "header",
                              "%s: line 1: the header must be code_qp;lib_qp;insee_reg;lib_reg;"
                              "insee_dep;lib_dep;insee_com;lib_com;siren_epci;lib_epci",
                              path);
                goto cleanup;
            }
            continue;
        }
        if (n != LIST_COLUMNS) {
            qp_error_set (err, "bad_qpv_list", "line",
                          n < 0 ? "%s: line %zu: unterminated quote"
                                : "%s: line %zu: expected 10 fields separated by ';'",
                          path, line_no);
            goto cleanup;
        }
        for (int c = 0; c < LIST_COLUMNS; c++) {
            const char *problem = s_list_field_problem (c, fields[c]);
            if (problem) {
                snprintf (field, sizeof field, "%s", s_list_header[c]);
                qp_error_set (err, "bad_qpv_list", field, "%s: line %zu: %s \"%.40s\": %s", path,
                              line_no, s_list_header[c], fields[c], problem);
                goto cleanup;
            }
        }
        rows = s_grow (rows, &row_cap, row_count + 1, sizeof *rows);
        for (int c = 0; c < LIST_COLUMNS; c++)
            rows[row_count].fields[c] = s_strdup (fields[c]);
        row_count++;
    }
    if (line_no == 0) {
        qp_error_set (err, "bad_qpv_list", "header", "%s: empty file (no header)", path);
        goto cleanup;
    }
    /* Every row is good: only now does the index change. */
    zhashx_t *map = s_code_map (self);
    for (size_t r = 0; r < row_count; r++) {
        char **f = rows[r].fields;
        entry_t *e = s_entry_for (self, map, f[COL_CODE]);
        s_fill (&e->pub.name, f[COL_NAME]);
        qp_qpv_commune_t *c = s_commune_for (e, f[COL_COM]);
        s_fill (&c->name, f[COL_COM_NAME]);
        s_fill (&c->department, f[COL_DEP]);
        s_fill (&c->department_name, f[COL_DEP_NAME]);
        s_fill (&c->region, f[COL_REG]);
        s_fill (&c->region_name, f[COL_REG_NAME]);
        s_fill (&c->epci_siren, f[COL_EPCI]);
        s_fill (&c->epci_name, f[COL_EPCI_NAME]);
    }
    zhashx_destroy (&map);
    s_sort_codes (self);
    rc = 0;
cleanup:
    for (size_t r = 0; r < row_count; r++)
        for (int c = 0; c < LIST_COLUMNS; c++)
            free (rows[r].fields[c]);
    free (rows);
    free (line);
    fclose (file);
    return rc;
}

/* ---- lookups ------------------------------------------------------------------------ */

bool qp_qpv_coordinates_valid (double lat, double lon, qp_error_t *err)
{
    if (!isfinite (lat) || lat < -90 || lat > 90) {
        qp_error_set (err, "bad_coordinates", "lat", "latitude %g is not a number in [-90, 90]",
                      lat);
        return false;
    }
    if (!isfinite (lon) || lon < -180 || lon > 180) {
        qp_error_set (err, "bad_coordinates", "lon", "longitude %g is not a number in [-180, 180]",
                      lon);
        return false;
    }
    return true;
}

/* Crossing number over every ring of the polygon: holes flip the parity back. A run of
 * edges wholly above, below or left of the point crosses no ray going east. */
static bool s_inside (const qp_qpv_index_t *self, const polygon_t *poly, double lat, double lon)
{
    bool inside = false;
    for (uint32_t r = 0; r < poly->ring_count; r++) {
        const ring_t *ring = &self->rings[poly->first_ring + r];
        const point_t *pt = &self->points[ring->first];
        const chunk_t *chunk = &self->chunks[ring->first_chunk];
        for (uint32_t start = 1; start < ring->count; start += CHUNK_EDGES, chunk++) {
            if (lat < chunk->min_lat || lat > chunk->max_lat || lon > chunk->max_lon)
                continue;
            uint32_t end = start + CHUNK_EDGES < ring->count ? start + CHUNK_EDGES : ring->count;
            for (uint32_t i = start; i < end; i++) {
                const point_t *a = &pt[i - 1], *b = &pt[i];
                if ((a->lat > lat) != (b->lat > lat) &&
                    lon < (b->lon - a->lon) * (lat - a->lat) / (b->lat - a->lat) + a->lon)
                    inside = !inside;
            }
        }
    }
    return inside;
}

/* Squared distance in m² from the point to a box (kx, ky: metres per degree). */
static inline double s_box_distance2 (double min_lon, double min_lat, double max_lon,
                                      double max_lat, double lat, double lon, double kx)
{
    double dx = lon < min_lon ? min_lon - lon : lon > max_lon ? lon - max_lon : 0;
    double dy = lat < min_lat ? min_lat - lat : lat > max_lat ? lat - max_lat : 0;
    dx *= kx, dy *= METRES_PER_DEG;
    return dx * dx + dy * dy;
}

/* Lowers *best (squared metres) to the distance from (lat, lon) to the polygon's boundary
 * when nearer, on a local equirectangular projection centred on the point (kx: metres per
 * degree of longitude there). Returns true when it did. */
static bool s_nearer (const qp_qpv_index_t *self, const polygon_t *poly, double lat, double lon,
                      double kx, double *best)
{
    const double ky = METRES_PER_DEG;
    bool nearer = false;
    for (uint32_t r = 0; r < poly->ring_count; r++) {
        const ring_t *ring = &self->rings[poly->first_ring + r];
        const point_t *pt = &self->points[ring->first];
        const chunk_t *chunk = &self->chunks[ring->first_chunk];
        for (uint32_t start = 1; start < ring->count; start += CHUNK_EDGES, chunk++) {
            if (s_box_distance2 (chunk->min_lon, chunk->min_lat, chunk->max_lon, chunk->max_lat,
                                 lat, lon, kx) > *best)
                continue;
            uint32_t end = start + CHUNK_EDGES < ring->count ? start + CHUNK_EDGES : ring->count;
            double ax = (pt[start - 1].lon - lon) * kx, ay = (pt[start - 1].lat - lat) * ky;
            for (uint32_t i = start; i < end; i++) {
                double bx = (pt[i].lon - lon) * kx, by = (pt[i].lat - lat) * ky;
                double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
                /* Closest point of segment a-b to the origin (the looked-up point). */
                double t = len2 > 0 ? -(ax * dx + ay * dy) / len2 : 0;
                t = t < 0 ? 0 : t > 1 ? 1 : t;
                double cx = ax + t * dx, cy = ay + t * dy, d2 = cx * cx + cy * cy;
                if (d2 <= *best)
                    *best = d2, nearer = true;
                ax = bx, ay = by;
            }
        }
    }
    return nearer;
}

static void s_hit (const qp_qpv_index_t *self, const polygon_t *poly, double distance,
                   qp_qpv_hit_t *out)
{
    const qp_qpv_info_t *info = &self->entries[poly->entry].pub;
    if (!out)
        return;
    out->qpv = info;
    out->code = info->code;
    out->name = info->name;
    out->commune = info->commune_count ? info->communes[0].insee : NULL;
    out->distance_m = distance;
}

bool qp_qpv_lookup (const qp_qpv_index_t *self, double lat, double lon, double tolerance_m,
                    qp_qpv_hit_t *out)
{
    assert (self);
    if (!qp_qpv_coordinates_valid (lat, lon, NULL))
        return false;
    const cell_t *cell = s_cell_find (self, s_cell_of (lon), s_cell_of (lat));
    for (uint32_t i = 0; cell && i < cell->count; i++) {
        const polygon_t *poly = &self->polygons[self->cell_polygons[cell->start + i]];
        if (lon >= poly->min_lon && lon <= poly->max_lon && lat >= poly->min_lat &&
            lat <= poly->max_lat && s_inside (self, poly, lat, lon)) {
            s_hit (self, poly, 0, out);
            return true;
        }
    }
    if (!(tolerance_m > 0))
        return false;
    if (tolerance_m > QP_QPV_MAX_TOLERANCE_M)
        tolerance_m = QP_QPV_MAX_TOLERANCE_M;
    /* Every cell within tolerance: boxes widened by the tolerance in degrees. */
    double kx = METRES_PER_DEG * cos (lat * M_PI / 180);
    double dlat = tolerance_m / METRES_PER_DEG;
    double dlon = kx > 1 ? tolerance_m / kx : 360;
    double best2 = tolerance_m * tolerance_m;
    const polygon_t *best = NULL;
    int32_t x0 = s_cell_of (lon - dlon), x1 = s_cell_of (lon + dlon);
    int32_t y0 = s_cell_of (lat - dlat), y1 = s_cell_of (lat + dlat);
    for (int32_t iy = y0; iy <= y1; iy++)
        for (int32_t ix = x0; ix <= x1; ix++) {
            cell = s_cell_find (self, ix, iy);
            for (uint32_t i = 0; cell && i < cell->count; i++) {
                const polygon_t *poly = &self->polygons[self->cell_polygons[cell->start + i]];
                if (poly == best || s_box_distance2 (poly->min_lon, poly->min_lat, poly->max_lon,
                                                     poly->max_lat, lat, lon, kx) > best2)
                    continue;
                if (s_nearer (self, poly, lat, lon, kx, &best2))
                    best = poly;
            }
        }
    if (!best)
        return false;
    s_hit (self, best, sqrt (best2), out);
    return true;
}

const qp_qpv_info_t *qp_qpv_find_code (const qp_qpv_index_t *self, const char *code)
{
    assert (self);
    if (!code)
        return NULL;
    size_t lo = 0, hi = self->entry_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp (self->by_code[mid].code, code);
        if (c == 0)
            return &self->entries[self->by_code[mid].entry].pub;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t qp_qpv_count (const qp_qpv_index_t *self)
{
    assert (self);
    return self->entry_count;
}

const qp_qpv_info_t *qp_qpv_at (const qp_qpv_index_t *self, size_t i)
{
    assert (self);
    return i < self->entry_count ? &self->entries[i].pub : NULL;
}

size_t qp_qpv_vertex_count (const qp_qpv_index_t *self)
{
    assert (self);
    return self->point_count;
}

size_t qp_qpv_memory (const qp_qpv_index_t *self)
{
    assert (self);
    size_t bytes = sizeof *self + self->entry_cap * sizeof *self->entries +
                   (self->entry_count ? self->entry_count : 1) * sizeof *self->by_code +
                   self->point_cap * sizeof *self->points + self->ring_cap * sizeof *self->rings +
                   self->chunk_cap * sizeof *self->chunks +
                   self->polygon_cap * sizeof *self->polygons +
                   (self->cells ? (self->cell_mask + 1) * sizeof *self->cells : 0) +
                   self->cell_polygon_count * sizeof (uint32_t);
    for (size_t i = 0; i < self->entry_count; i++) {
        const entry_t *e = &self->entries[i];
        bytes += s_strsize (e->pub.code) + s_strsize (e->pub.name) +
                 e->commune_cap * sizeof *e->communes;
        for (size_t c = 0; c < e->pub.commune_count; c++) {
            const qp_qpv_commune_t *m = &e->communes[c];
            bytes += s_strsize (m->insee) + s_strsize (m->name) + s_strsize (m->department) +
                     s_strsize (m->department_name) + s_strsize (m->region) +
                     s_strsize (m->region_name) + s_strsize (m->epci_siren) +
                     s_strsize (m->epci_name);
        }
    }
    return bytes;
}
