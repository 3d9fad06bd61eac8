/* qp-sample: N realistic dossiers as JSON lines (the Dossier mapping of qp_json.h), for
 * demos, benchmarks and tests. Deterministic for a seed: every dossier draws from its
 * own splitmix64 stream derived from (seed, index), so dossier i is the same whatever N.
 * Places come from the real data: the 14 pilot territories and the 2024 QPV contours. */
#include "qp_config.h"
#include "qp_date.h"
#include <assert.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TERRITORIES_FILE "territoires-quartiers-productifs.json"
#define QPV_FILE "qpv2024.geojson"

/* ---- deterministic randomness ---------------------------------------------------------- */

typedef struct {
    uint64_t state;
} rng_t;

static uint64_t s_mix (uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t s_next (rng_t *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return s_mix (r->state);
}

/* Uniform in [0, 1). */
static double s_unit (rng_t *r)
{
    return (double)(s_next (r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [lo, hi]. */
static long s_range (rng_t *r, long lo, long hi)
{
    return lo + (long)(s_next (r) % (uint64_t)(hi - lo + 1));
}

static bool s_chance (rng_t *r, double p)
{
    return s_unit (r) < p;
}

/* Index into weights (need not sum to 1). */
static int s_pick (rng_t *r, const double *weights, int n)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += weights[i];
    double x = s_unit (r) * total;
    for (int i = 0; i < n; i++) {
        if (x < weights[i])
            return i;
        x -= weights[i];
    }
    return n - 1;
}

/* ---- places ---------------------------------------------------------------------------- */

typedef struct {
    double *xy; /* lon, lat pairs */
    size_t n;
} ring_t;

typedef struct {
    ring_t *rings; /* outer ring first, then holes */
    size_t nrings;
    double minx, miny, maxx, maxy;
} polygon_t;

typedef struct {
    char code[16];
    char *name;
    char commune[8]; /* the territory commune it is in ("" when outside the pilots) */
    int territory;   /* index in territories, -1 when outside the pilots */
    polygon_t *polys;
    size_t npolys;
    size_t main_poly; /* the largest polygon: where sample points go */
    double minx, miny, maxx, maxy;
} qpv_t;

typedef struct {
    char *id;
    char **communes;
    size_t ncommunes;
    size_t *qpvs; /* indexes into places.qpvs */
    size_t nqpvs;
} territory_t;

typedef struct {
    territory_t *territories;
    size_t nterritories;
    qpv_t *qpvs;
    size_t nqpvs;
} places_t;

static bool s_ring_load (json_t *coords, ring_t *ring)
{
    size_t n = json_array_size (coords);
    if (n < 4)
        return false;
    ring->xy = malloc (2 * n * sizeof (double));
    assert (ring->xy);
    ring->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *pt = json_array_get (coords, i);
        ring->xy[2 * i] = json_number_value (json_array_get (pt, 0));
        ring->xy[2 * i + 1] = json_number_value (json_array_get (pt, 1));
    }
    return true;
}

static bool s_polygon_load (json_t *coords, polygon_t *poly)
{
    size_t n = json_array_size (coords);
    if (n == 0)
        return false;
    poly->rings = calloc (n, sizeof (ring_t));
    assert (poly->rings);
    for (size_t i = 0; i < n; i++)
        if (s_ring_load (json_array_get (coords, i), &poly->rings[poly->nrings]))
            poly->nrings++;
        else if (i == 0)
            return false;
    ring_t *outer = &poly->rings[0];
    poly->minx = poly->maxx = outer->xy[0];
    poly->miny = poly->maxy = outer->xy[1];
    for (size_t i = 1; i < outer->n; i++) {
        poly->minx = fmin (poly->minx, outer->xy[2 * i]);
        poly->maxx = fmax (poly->maxx, outer->xy[2 * i]);
        poly->miny = fmin (poly->miny, outer->xy[2 * i + 1]);
        poly->maxy = fmax (poly->maxy, outer->xy[2 * i + 1]);
    }
    return true;
}

/* Even-odd crossing test over every ring of every polygon. */
static bool s_qpv_contains (const qpv_t *q, double x, double y)
{
    if (x < q->minx || x > q->maxx || y < q->miny || y > q->maxy)
        return false;
    for (size_t p = 0; p < q->npolys; p++) {
        const polygon_t *poly = &q->polys[p];
        if (x < poly->minx || x > poly->maxx || y < poly->miny || y > poly->maxy)
            continue;
        bool inside = false;
        for (size_t r = 0; r < poly->nrings; r++) {
            const ring_t *ring = &poly->rings[r];
            for (size_t i = 0, j = ring->n - 1; i < ring->n; j = i++) {
                double xi = ring->xy[2 * i], yi = ring->xy[2 * i + 1];
                double xj = ring->xy[2 * j], yj = ring->xy[2 * j + 1];
                if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi)
                    inside = !inside;
            }
        }
        if (inside)
            return true;
    }
    return false;
}

static int s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A point inside the QPV's main polygon: a horizontal line at a random height crosses
 * the rings; between the 1st and 2nd crossing (3rd and 4th, ...) the line is inside, so
 * the middle part of the widest such interval is well inside, holes included. */
static bool s_qpv_point (const qpv_t *q, rng_t *r, double *lon, double *lat)
{
    const polygon_t *poly = &q->polys[q->main_poly];
    size_t total = 0;
    for (size_t i = 0; i < poly->nrings; i++)
        total += poly->rings[i].n;
    double stack_xs[512];
    double *xs = total <= 512 ? stack_xs : malloc (total * sizeof (double));
    assert (xs);
    bool found = false;
    for (int attempt = 0; attempt < 8 && !found; attempt++) {
        double y = poly->miny + (poly->maxy - poly->miny) * (0.2 + 0.6 * s_unit (r));
        size_t n = 0;
        for (size_t k = 0; k < poly->nrings; k++) {
            const ring_t *ring = &poly->rings[k];
            for (size_t i = 0, j = ring->n - 1; i < ring->n; j = i++) {
                double xi = ring->xy[2 * i], yi = ring->xy[2 * i + 1];
                double xj = ring->xy[2 * j], yj = ring->xy[2 * j + 1];
                if ((yi > y) != (yj > y))
                    xs[n++] = (xj - xi) * (y - yi) / (yj - yi) + xi;
            }
        }
        if (n < 2)
            continue;
        qsort (xs, n, sizeof (double), s_cmp_double);
        size_t best = 0;
        for (size_t i = 2; i + 1 < n; i += 2)
            if (xs[i + 1] - xs[i] > xs[best + 1] - xs[best])
                best = i;
        double x = xs[best] + (xs[best + 1] - xs[best]) * (0.3 + 0.4 * s_unit (r));
        /* Printed with 6 decimals: keep only points that stay inside once rounded. */
        double rx = round (x * 1e6) / 1e6, ry = round (y * 1e6) / 1e6;
        if (s_qpv_contains (q, rx, ry)) {
            *lon = rx;
            *lat = ry;
            found = true;
        }
    }
    if (xs != stack_xs)
        free (xs);
    return found;
}

/* A point 1.5-4 km away from the QPV that lies in no QPV at all. */
static bool s_outside_point (const places_t *pl, const qpv_t *q, rng_t *r, double *lon, double *lat)
{
    double cx = (q->minx + q->maxx) / 2, cy = (q->miny + q->maxy) / 2;
    for (int attempt = 0; attempt < 20; attempt++) {
        double angle = 2 * M_PI * s_unit (r);
        double km = 1.5 + 2.5 * s_unit (r);
        double y = cy + km / 111.2 * sin (angle);
        double x = cx + km / (111.2 * cos (cy * M_PI / 180)) * cos (angle);
        x = round (x * 1e6) / 1e6;
        y = round (y * 1e6) / 1e6;
        bool in_any = false;
        for (size_t i = 0; i < pl->nqpvs && !in_any; i++)
            in_any = s_qpv_contains (&pl->qpvs[i], x, y);
        if (!in_any) {
            *lon = x;
            *lat = y;
            return true;
        }
    }
    return false;
}

static int s_territory_of (places_t *pl, const char *insee, char *commune)
{
    for (size_t t = 0; t < pl->nterritories; t++)
        for (size_t c = 0; c < pl->territories[t].ncommunes; c++)
            if (!strcmp (pl->territories[t].communes[c], insee)) {
                snprintf (commune, 8, "%s", insee);
                return (int)t;
            }
    return -1;
}

static int s_load_territories (places_t *pl, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file (path, 0, &jerr);
    if (!root) {
        fprintf (stderr, "qp-sample: %s: %s (line %d)\n", path, jerr.text, jerr.line);
        return -1;
    }
    json_t *list = json_object_get (root, "territories");
    pl->nterritories = json_array_size (list);
    if (pl->nterritories == 0) {
        fprintf (stderr, "qp-sample: %s: no \"territories\" array\n", path);
        json_decref (root);
        return -1;
    }
    pl->territories = calloc (pl->nterritories, sizeof (territory_t));
    assert (pl->territories);
    for (size_t t = 0; t < pl->nterritories; t++) {
        json_t *item = json_array_get (list, t);
        territory_t *ter = &pl->territories[t];
        const char *id = json_string_value (json_object_get (item, "id"));
        ter->id = strdup (id ? id : "");
        json_t *communes = json_object_get (item, "communes");
        ter->ncommunes = json_array_size (communes);
        ter->communes = calloc (ter->ncommunes + 1, sizeof (char *));
        assert (ter->communes);
        for (size_t c = 0; c < ter->ncommunes; c++) {
            const char *code = json_string_value (json_array_get (communes, c));
            ter->communes[c] = strdup (code ? code : "");
        }
    }
    json_decref (root);
    return 0;
}

static int s_load_qpvs (places_t *pl, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file (path, 0, &jerr);
    if (!root) {
        fprintf (stderr, "qp-sample: %s: %s (line %d)\n", path, jerr.text, jerr.line);
        return -1;
    }
    json_t *features = json_object_get (root, "features");
    size_t n = json_array_size (features);
    pl->qpvs = calloc (n ? n : 1, sizeof (qpv_t));
    assert (pl->qpvs);
    for (size_t f = 0; f < n; f++) {
        json_t *feature = json_array_get (features, f);
        json_t *props = json_object_get (feature, "properties");
        json_t *geom = json_object_get (feature, "geometry");
        const char *code = json_string_value (json_object_get (props, "code_qp"));
        const char *gtype = json_string_value (json_object_get (geom, "type"));
        if (!code || !gtype)
            continue;
        json_t *coords = json_object_get (geom, "coordinates");
        json_t *polys = json_array ();
        if (!strcmp (gtype, "MultiPolygon"))
            json_array_extend (polys, coords);
        else if (!strcmp (gtype, "Polygon"))
            json_array_append (polys, coords);
        qpv_t *q = &pl->qpvs[pl->nqpvs];
        memset (q, 0, sizeof *q);
        q->polys = calloc (json_array_size (polys) + 1, sizeof (polygon_t));
        assert (q->polys);
        for (size_t p = 0; p < json_array_size (polys); p++)
            if (s_polygon_load (json_array_get (polys, p), &q->polys[q->npolys]))
                q->npolys++;
        json_decref (polys);
        if (q->npolys == 0) {
            free (q->polys);
            continue;
        }
        double best = -1;
        q->minx = q->miny = INFINITY;
        q->maxx = q->maxy = -INFINITY;
        for (size_t p = 0; p < q->npolys; p++) {
            polygon_t *poly = &q->polys[p];
            double area = (poly->maxx - poly->minx) * (poly->maxy - poly->miny);
            if (area > best) {
                best = area;
                q->main_poly = p;
            }
            q->minx = fmin (q->minx, poly->minx);
            q->miny = fmin (q->miny, poly->miny);
            q->maxx = fmax (q->maxx, poly->maxx);
            q->maxy = fmax (q->maxy, poly->maxy);
        }
        snprintf (q->code, sizeof q->code, "%s", code);
        const char *name = json_string_value (json_object_get (props, "lib_qp"));
        q->name = strdup (name ? name : code);
        /* insee_com is the first commune; insee_coms (when present) lists them all. */
        q->territory = -1;
        json_t *coms = json_object_get (props, "insee_coms");
        for (size_t c = 0; c < json_array_size (coms) && q->territory < 0; c++) {
            const char *insee = json_string_value (json_array_get (coms, c));
            if (insee)
                q->territory = s_territory_of (pl, insee, q->commune);
        }
        const char *insee = json_string_value (json_object_get (props, "insee_com"));
        if (q->territory < 0 && insee)
            q->territory = s_territory_of (pl, insee, q->commune);
        pl->nqpvs++;
    }
    json_decref (root);
    for (size_t i = 0; i < pl->nqpvs; i++) {
        if (pl->qpvs[i].territory < 0)
            continue;
        territory_t *ter = &pl->territories[pl->qpvs[i].territory];
        ter->qpvs = realloc (ter->qpvs, (ter->nqpvs + 1) * sizeof (size_t));
        assert (ter->qpvs);
        ter->qpvs[ter->nqpvs++] = i;
    }
    for (size_t t = 0; t < pl->nterritories; t++)
        if (pl->territories[t].nqpvs == 0) {
            fprintf (stderr, "qp-sample: %s: no QPV in the communes of territory %s\n", path,
                     pl->territories[t].id);
            return -1;
        }
    return 0;
}

static void s_places_free (places_t *pl)
{
    for (size_t t = 0; t < pl->nterritories; t++) {
        territory_t *ter = &pl->territories[t];
        for (size_t c = 0; c < ter->ncommunes; c++)
            free (ter->communes[c]);
        free (ter->communes);
        free (ter->qpvs);
        free (ter->id);
    }
    free (pl->territories);
    for (size_t i = 0; i < pl->nqpvs; i++) {
        qpv_t *q = &pl->qpvs[i];
        for (size_t p = 0; p < q->npolys; p++) {
            for (size_t r = 0; r < q->polys[p].nrings; r++)
                free (q->polys[p].rings[r].xy);
            free (q->polys[p].rings);
        }
        free (q->polys);
        free (q->name);
    }
    free (pl->qpvs);
}

/* The shared data sit beside the checkout: ../shared/data from the current directory,
 * or from the repository root above build/tools/ where this executable lives. */
static char *s_find_data (const char *name)
{
    char path[PATH_MAX + 64];
    snprintf (path, sizeof path, "../shared/data/%s", name);
    if (access (path, R_OK) == 0)
        return strdup (path);
    char exe[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr (exe, '/');
        if (slash)
            *slash = 0;
        snprintf (path, sizeof path, "%s/../../../shared/data/%s", exe, name);
        if (access (path, R_OK) == 0)
            return strdup (path);
    }
    return NULL;
}

/* ---- one dossier ----------------------------------------------------------------------- */

typedef struct {
    const char *code;
    bool commercial;
} naf_t;

static const naf_t s_naf_entrepreneurship[] = {
    {"62.01Z", false}, {"70.22Z", false}, {"73.11Z", false}, {"74.10Z", false},
    {"85.59A", false}, {"88.91A", false}, {"49.32Z", false}, {"53.20Z", false},
    {"81.21Z", false}, {"96.02A", true},  {"56.10C", true},  {"47.91B", true},
};
static const naf_t s_naf_retail_crafts[] = {
    {"47.11B", true},  {"47.11C", true}, {"47.24Z", true},  {"47.71Z", true},  {"47.76Z", true},
    {"47.29Z", true},  {"47.81Z", true}, {"43.21A", false}, {"43.22A", false}, {"43.31Z", false},
    {"43.34Z", false}, {"56.10A", true}, {"96.02A", true},  {"10.71C", true},  {"95.23Z", true},
};
static const naf_t s_naf_setting_up[] = {
    {"62.01Z", false}, {"62.02A", false}, {"25.62B", false}, {"33.12Z", false},
    {"52.29A", false}, {"71.12B", false}, {"86.23Z", false}, {"88.10A", false},
    {"18.12Z", false}, {"13.92Z", false}, {"10.71C", true},  {"82.11Z", false},
};

static const char *s_axes[] = {"ENTREPRENEURSHIP", "RETAIL_AND_CRAFTS", "SETTING_UP_ACTIVITY"};
static const char *s_stages[] = {"CREATION", "TAKEOVER", "DEVELOPMENT"};
static const char *s_networks[] = {"INITIATIVE_FRANCE",   "FRANCE_ACTIVE", "ADIE",
                                   "RESEAU_ENTREPRENDRE", "BGE",           "CITESLAB"};

/* Luhn-valid digits: fills digits[0..n-2] from the generator and the key at n-1. */
static void s_luhn_complete (char *digits, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        int d = digits[n - 2 - i] - '0';
        if (i % 2 == 0) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    digits[n - 1] = (char)('0' + (10 - sum % 10) % 10);
}

/* A SIRET whose SIREN (9 digits) and SIRET (14 digits) both pass Luhn. */
static void s_siret (rng_t *r, char out[15])
{
    for (int i = 0; i < 8; i++)
        out[i] = (char)('0' + s_range (r, i == 0 ? 1 : 0, 9));
    s_luhn_complete (out, 9);
    snprintf (out + 9, 6, "%04ld", s_range (r, 1, 120));
    s_luhn_complete (out, 14);
    out[14] = 0;
}

static json_t *s_point (double lon, double lat)
{
    return json_pack ("{s:f, s:f}", "lat", lat, "lon", lon);
}

/* Money in cents, rounded to step euros. */
static json_int_t s_euros (double euros, double step)
{
    return (json_int_t)(round (euros / step) * step) * 100;
}

static json_t *s_dossier (const places_t *pl, uint64_t seed, uint64_t index, int32_t first_day,
                          int32_t last_day)
{
    rng_t rr = {s_mix (seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) ^ s_mix (index + 1)};
    rng_t *r = &rr;

    const territory_t *ter = &pl->territories[s_range (r, 0, (long)pl->nterritories - 1)];
    const qpv_t *q = &pl->qpvs[ter->qpvs[s_range (r, 0, (long)ter->nqpvs - 1)]];

    /* About 10 % are built to fail the Prêt d'honneur Quartiers, one reason each. */
    enum { OK, TOO_MUCH, NO_BANK_LOAN, NOT_ACCOMPANIED, NOT_IN_QPV } flaw = OK;
    if (s_chance (r, 0.10))
        flaw = (int)s_range (r, TOO_MUCH, NOT_IN_QPV);

    static const double axis_w[] = {45, 35, 20};
    static const double stage_w[] = {60, 15, 25};
    int axis = s_pick (r, axis_w, 3);
    int stage = s_pick (r, stage_w, 3);
    const naf_t *nafs = axis == 0   ? s_naf_entrepreneurship
                        : axis == 1 ? s_naf_retail_crafts
                                    : s_naf_setting_up;
    size_t nnaf = axis == 0   ? sizeof s_naf_entrepreneurship / sizeof (naf_t)
                  : axis == 1 ? sizeof s_naf_retail_crafts / sizeof (naf_t)
                              : sizeof s_naf_setting_up / sizeof (naf_t);
    const naf_t *naf = &nafs[s_range (r, 0, (long)nnaf - 1)];

    int32_t day = (int32_t)s_range (r, first_day, last_day);
    char submitted[16];
    qp_date_format (day, submitted);

    /* Channel and key: unique per (seed, index), so a re-run is a duplicate, not new. */
    char channel[64], key[40];
    static const double channel_w[] = {35, 45, 20};
    int ch = s_pick (r, channel_w, 3);
    if (ch == 0)
        snprintf (channel, sizeof channel, "guichet-bpifrance");
    else if (ch == 1)
        snprintf (channel, sizeof channel, "initiative-%s", ter->id);
    else
        snprintf (channel, sizeof channel, "qp-ctl");
    snprintf (key, sizeof key, "s%016llx-%08llu", (unsigned long long)s_mix (seed),
              (unsigned long long)index);

    json_t *d = json_object ();
    json_object_set_new (d, "channel", json_string (channel));
    json_object_set_new (d, "channel_key", json_string (key));
    json_object_set_new (d, "submitted_on", json_string (submitted));
    json_object_set_new (d, "territory", json_string (ter->id));

    /* Holder: pseudonymous key, declared gender and age, support network. */
    char person[33];
    uint64_t pk1 = s_mix (seed ^ 0x5851f42d4c957f2dULL) ^ s_mix (index * 2 + 1);
    uint64_t pk2 = s_mix (pk1 ^ 0x14057b7ef767814fULL);
    snprintf (person, sizeof person, "%016llx%016llx", (unsigned long long)pk1,
              (unsigned long long)pk2);
    json_t *holder = json_object ();
    json_object_set_new (holder, "person_key", json_string (person));
    static const double gender_w[] = {45, 53, 1, 1};
    static const char *genders[] = {"WOMAN", "MAN", "OTHER_GENDER", NULL};
    const char *gender = genders[s_pick (r, gender_w, 4)];
    if (gender)
        json_object_set_new (holder, "gender", json_string (gender));
    /* Founders skew young: the programme watches the under-30s. */
    long birth = 2005 - (long)(45 * pow (s_unit (r), 1.4));
    json_object_set_new (holder, "birth_year", json_integer (birth));
    if (flaw == NOT_ACCOMPANIED) {
        json_object_set_new (holder, "accompanied", json_false ());
        json_object_set_new (holder, "network", json_string ("NETWORK_NONE"));
    } else {
        static const double network_w[] = {40, 20, 15, 10, 8, 7};
        json_object_set_new (holder, "accompanied", json_true ());
        json_object_set_new (holder, "network", json_string (s_networks[s_pick (r, network_w, 6)]));
    }

    /* Business location: inside the chosen QPV, or well outside any for NOT_IN_QPV. */
    double lon = 0, lat = 0;
    bool located = flaw == NOT_IN_QPV ? s_outside_point (pl, q, r, &lon, &lat)
                                      : s_qpv_point (q, r, &lon, &lat);
    json_t *business = json_object ();
    json_t *residence = json_pack ("{s:s}", "insee_commune", q->commune);
    if (flaw != NOT_IN_QPV && s_chance (r, 0.7)) {
        /* Most live in the neighbourhood they set up in; some in another of the territory. */
        const qpv_t *home =
            s_chance (r, 0.7) ? q : &pl->qpvs[ter->qpvs[s_range (r, 0, (long)ter->nqpvs - 1)]];
        double hlon, hlat;
        json_object_set_new (holder, "residence_qpv", json_string (home->code));
        json_object_set_new (residence, "insee_commune", json_string (home->commune));
        if (s_qpv_point (home, r, &hlon, &hlat))
            json_object_set_new (holder, "residence_location", s_point (hlon, hlat));
    }
    json_object_set_new (holder, "residence", residence);
    json_object_set_new (d, "holder", holder);

    static const double form_create_w[] = {45, 15, 10, 30};
    static const double form_exist_w[] = {20, 40, 20, 20};
    static const char *forms[] = {"1000", "5499", "5710", "5720"};
    const char *form = forms[s_pick (r, stage == 0 ? form_create_w : form_exist_w, 4)];
    if (stage != 0) {
        char siret[15];
        s_siret (r, siret);
        json_object_set_new (business, "siret", json_string (siret));
        char created[16];
        qp_date_format (day - (int32_t)s_range (r, stage == 1 ? 3 * 365 : 365, 20 * 365), created);
        json_object_set_new (business, "creation_date", json_string (created));
    }
    json_object_set_new (business, "legal_form", json_string (form));
    json_object_set_new (business, "naf_code", json_string (naf->code));
    long employees = stage == 0 ? 0 : s_range (r, 0, stage == 2 ? 19 : 9);
    json_object_set_new (business, "employees", json_integer (employees));
    if (stage != 0) {
        double turnover = (60000 + 70000 * employees) * (0.6 + 0.8 * s_unit (r));
        json_object_set_new (business, "turnover_cents", json_integer (s_euros (turnover, 100)));
        json_object_set_new (business, "balance_sheet_cents",
                             json_integer (s_euros (turnover * (0.3 + 0.5 * s_unit (r)), 100)));
    }
    json_object_set_new (business, "address", json_pack ("{s:s}", "insee_commune", q->commune));
    if (located)
        json_object_set_new (business, "location", s_point (lon, lat));
    json_object_set_new (business, "insee_commune", json_string (q->commune));
    if (flaw != NOT_IN_QPV && s_chance (r, 0.8))
        json_object_set_new (business, "declared_qpv", json_string (q->code));
    json_object_set_new (business, "commercial_activity", json_boolean (naf->commercial));
    /* The facts no source checks, declared on some dossiers, from a draw of their own so
     * that every other field stays what it was for a seed: a fifth of the set-ups declare
     * the ZFU-TE conditions, a fifth of the holders a target group, a tenth of the
     * businesses an NPNRU renewal project. */
    rng_t dr = {s_mix (seed ^ 0x2545f4914f6cdd1dULL) ^ s_mix (index * 3 + 7)};
    if (stage != 0 && s_chance (&dr, 0.2)) {
        json_object_set_new (business, "declared_in_zfu_te", json_boolean (s_chance (&dr, 0.7)));
        json_object_set_new (business, "declared_independent_sme",
                             json_boolean (s_chance (&dr, 0.9)));
        json_object_set_new (business, "declared_zfu_resident_employees_half",
                             json_boolean (s_chance (&dr, 0.6)));
    }
    if (s_chance (&dr, 0.2)) {
        static const char *groups[] = {"NO_TARGET_GROUP",        "UNEMPLOYMENT_BENEFIT",
                                       "MINIMUM_SOCIAL_BENEFIT", "DISABLED_UNDER_29",
                                       "LONG_TERM_JOBSEEKER",    "CAPE"};
        static const double group_w[] = {40, 25, 15, 3, 12, 5};
        json_object_set_new (holder, "declared_target_group",
                             json_string (groups[s_pick (&dr, group_w, 6)]));
    }
    if (s_chance (&dr, 0.1))
        json_object_set_new (business, "declared_premises_in_npnru",
                             json_boolean (s_chance (&dr, 0.5)));
    json_object_set_new (d, "business", business);

    /* Money: honour loan mostly 1-15 k€, need 3-10 times it, the bank lends most of the
     * rest (at least half the honour loan) over at least the honour loan's duration. */
    double asked = 1000 + 14000 * pow (s_unit (r), 1.6);
    if (flaw == TOO_MUCH)
        asked = 15500 + 14500 * s_unit (r);
    asked = round (asked / 500) * 500; /* rounded first: the ratios below hold exactly */
    double need = asked * (3 + 7 * s_unit (r));
    double contribution = need * (0.05 + 0.15 * s_unit (r));
    double bank = (need - asked - contribution) * (0.6 + 0.4 * s_unit (r));
    bank = ceil (fmax (bank, asked / 2) / 500) * 500;
    long honour_months = 12 * s_range (r, 2, 5);
    json_t *project = json_object ();
    json_object_set_new (project, "axis", json_string (s_axes[axis]));
    json_object_set_new (project, "stage", json_string (s_stages[stage]));
    json_object_set_new (project, "financing_need_cents", json_integer (s_euros (need, 100)));
    json_object_set_new (project, "personal_contribution_cents",
                         json_integer (s_euros (contribution, 100)));
    if (flaw == NO_BANK_LOAN)
        json_object_set_new (project, "bank_loan_cents", json_integer (0));
    else {
        json_object_set_new (project, "bank_loan_cents", json_integer (s_euros (bank, 500)));
        json_object_set_new (project, "bank_loan_months",
                             json_integer (honour_months + 12 * s_range (r, 0, 2)));
        json_object_set_new (project, "bank_loan_guarantee_pct",
                             json_integer (10 * s_range (r, 0, 5)));
    }
    json_object_set_new (project, "amount_asked_cents", json_integer (s_euros (asked, 500)));
    json_object_set_new (project, "honour_loan_months", json_integer (honour_months));
    json_object_set_new (project, "deferral_months", json_integer (3 * s_range (r, 0, 4)));
    json_object_set_new (project, "jobs_planned",
                         json_integer (stage == 0 ? s_range (r, 1, 3) : s_range (r, 1, 5)));
    json_object_set_new (project, "digital_transition", json_boolean (s_chance (r, 0.3)));
    json_object_set_new (project, "environmental_transition", json_boolean (s_chance (r, 0.2)));
    json_object_set_new (d, "project", project);
    return d;
}

int main (int argc, char **argv)
{
    /* The count is the one positional argument; the rest goes to the option table. */
    long count = -1;
    char *rest[argc + 1];
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-' && count < 0 &&
            (i == 1 || argv[i - 1][0] != '-' || strchr (argv[i - 1], '='))) {
            char *end;
            count = strtol (argv[i], &end, 10);
            if (*end || count < 0) {
                fprintf (stderr, "qp-sample: \"%s\" is not a dossier count\n", argv[i]);
                return 2;
            }
        } else
            rest[nrest++] = argv[i];
    }
    rest[nrest] = NULL;

    long seed = 1;
    char *territories = NULL, *qpv = NULL;
    qp_config_option_t options[] = {
        {"seed", QP_CFG_INT, "1", "generator seed: same seed, same dossiers", &seed, 0, LONG_MAX},
        {"territories", QP_CFG_STRING, NULL,
         "pilot territories JSON (default ../shared/data/" TERRITORIES_FILE ")", &territories, 0,
         0},
        {"qpv", QP_CFG_STRING, NULL, "QPV contours GeoJSON (default ../shared/data/" QPV_FILE ")",
         &qpv, 0, 0},
        {NULL},
    };
    int rc = qp_config_parse ("qp-sample N",
                              "Writes N sample dossiers as JSON lines on stdout, spread over the "
                              "pilot territories.",
                              options, nrest, rest);
    if (rc)
        return rc > 0 ? 0 : 2;
    if (count < 0) {
        fprintf (stderr, "qp-sample: give the number of dossiers (see --help)\n");
        qp_config_free (options);
        return 2;
    }
    if (!territories)
        territories = s_find_data (TERRITORIES_FILE);
    if (!qpv)
        qpv = s_find_data (QPV_FILE);
    if (!territories || !qpv) {
        fprintf (stderr,
                 "qp-sample: cannot find %s: put the shared data in ../shared/data or pass "
                 "--territories and --qpv\n",
                 !territories ? TERRITORIES_FILE : QPV_FILE);
        qp_config_free (options);
        return 2;
    }
    places_t places = {0};
    if (s_load_territories (&places, territories) || s_load_qpvs (&places, qpv)) {
        s_places_free (&places);
        qp_config_free (options);
        return 2;
    }
    int32_t first_day = qp_date_from_civil (2024, 1, 1);
    int32_t last_day = qp_date_from_civil (2026, 11, 20);
    static char buf[1 << 16];
    setvbuf (stdout, buf, _IOFBF, sizeof buf);
    for (long i = 0; i < count; i++) {
        json_t *d = s_dossier (&places, (uint64_t)seed, (uint64_t)i, first_day, last_day);
        if (json_dumpf (d, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION (9)))
            rc = 1;
        fputc ('\n', stdout);
        json_decref (d);
    }
    if (fflush (stdout))
        rc = 1;
    s_places_free (&places);
    qp_config_free (options);
    return rc;
}
