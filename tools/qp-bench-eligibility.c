/* qp-bench-eligibility: the QPV index on the real 2024 contours ($QP_SHARED_DATA/
 * qpv2024.geojson) and full dossier assessments (a QPV lookup plus every scheme decided,
 * the compact decision the service stores and publishes), on one core; the bytes of that
 * decision against the fully explained one (what was stored until 2026-11), and the
 * process's RSS over the assessments. Prints the figures with the targets beside
 * them and writes them as JSON with --json FILE; --smoke runs a few seconds. Asserts
 * nothing. */
#include "bench_support.h"
#include "eligibility.h"
#include "qp_catalogue.h"
#include "qp_qpv.h"
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TARGET_LOOKUPS 1000000.0
#define TARGET_ASSESSMENTS 100000.0
#define TARGET_MEMORY_MB 64.0
#define TARGET_LOAD_S 1.0
#define TARGET_DOSSIER_BYTES 2048.0 /* Redis memory of a whole dossier (issue 8) */

/* Metropolitan France's bounding box (degrees). */
#define FR_MIN_LAT 41.3
#define FR_MAX_LAT 51.1
#define FR_MIN_LON -5.2
#define FR_MAX_LON 9.6

/* xorshift64*: the same points on every run. */
static double s_random (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

typedef struct {
    double *lat, *lon;
    size_t count;
} points_t;

/* Points uniform in the bounding box of a random QPV (many inside, some near). */
static points_t s_points_in_boxes (const qp_qpv_index_t *index, size_t count, uint64_t seed)
{
    points_t p = {malloc (count * sizeof (double)), malloc (count * sizeof (double)), count};
    size_t n = qp_qpv_count (index);
    for (size_t i = 0; i < count; i++) {
        const qp_qpv_info_t *q = qp_qpv_at (index, (size_t)(s_random (&seed) * n));
        p.lat[i] = q->min_lat + s_random (&seed) * (q->max_lat - q->min_lat);
        p.lon[i] = q->min_lon + s_random (&seed) * (q->max_lon - q->min_lon);
    }
    return p;
}

static points_t s_points_in_france (size_t count, uint64_t seed)
{
    points_t p = {malloc (count * sizeof (double)), malloc (count * sizeof (double)), count};
    for (size_t i = 0; i < count; i++) {
        p.lat[i] = FR_MIN_LAT + s_random (&seed) * (FR_MAX_LAT - FR_MIN_LAT);
        p.lon[i] = FR_MIN_LON + s_random (&seed) * (FR_MAX_LON - FR_MIN_LON);
    }
    return p;
}

static void s_points_free (points_t *p)
{
    free (p->lat);
    free (p->lon);
}

typedef struct {
    double per_second, hit_rate;
} rate_t;

/* Lookups per second over the points (looping over them for at least seconds). */
static rate_t s_lookups (const qp_qpv_index_t *index, const points_t *p, double tolerance_m,
                         double seconds)
{
    size_t done = 0, hits = 0;
    double start = bench_now (), elapsed;
    do {
        for (size_t i = 0; i < p->count; i++) {
            qp_qpv_hit_t hit;
            hits += qp_qpv_lookup (index, p->lat[i], p->lon[i], tolerance_m, &hit);
        }
        done += p->count;
        elapsed = bench_now () - start;
    } while (elapsed < seconds);
    return (rate_t){done / elapsed, (double)hits / done};
}

/* Dossiers as the sample generator makes them: amounts, networks, stages and dates spread
 * over the ranges the rules test. */
typedef struct {
    Qp__V1__Dossier d;
    Qp__V1__ProjectHolder h;
    Qp__V1__Business b;
    Qp__V1__Project p;
    Qp__V1__Coordinates at;
    char qpv[16];
} dossier_t;

static void s_dossier (dossier_t *x, uint64_t *seed, double lat, double lon)
{
    static const char *dates[] = {"2023-11-02", "2024-03-10", "2025-06-30", "2026-01-15"};
    static const Qp__V1__Network networks[] = {
        QP__V1__NETWORK__INITIATIVE_FRANCE, QP__V1__NETWORK__FRANCE_ACTIVE,
        QP__V1__NETWORK__RESEAU_ENTREPRENDRE, QP__V1__NETWORK__ADIE, QP__V1__NETWORK__NETWORK_NONE};
    qp__v1__dossier__init (&x->d);
    qp__v1__project_holder__init (&x->h);
    qp__v1__business__init (&x->b);
    qp__v1__project__init (&x->p);
    qp__v1__coordinates__init (&x->at);
    x->d.submitted_on = (char *)dates[(size_t)(s_random (seed) * 4)];
    x->h.person_key = "0123456789abcdef";
    x->h.has_accompanied = true, x->h.accompanied = s_random (seed) < 0.8;
    x->h.has_network = true, x->h.network = networks[(size_t)(s_random (seed) * 5)];
    x->at.has_lat = true, x->at.lat = lat;
    x->at.has_lon = true, x->at.lon = lon;
    x->b.location = &x->at;
    x->b.insee_commune = "59512";
    x->b.has_employees = true, x->b.employees = (uint32_t)(s_random (seed) * 60);
    x->b.has_commercial_activity = true, x->b.commercial_activity = s_random (seed) < 0.5;
    x->b.has_turnover_cents = true, x->b.turnover_cents = (int64_t)(s_random (seed) * 2e9);
    Qp__V1__Project *p = &x->p;
    p->has_axis = true, p->axis = 1 + (int)(s_random (seed) * 3);
    p->has_stage = true, p->stage = 1 + (int)(s_random (seed) * 3);
    p->has_amount_asked_cents = true;
    p->amount_asked_cents = 100 * (1000 + (int64_t)(s_random (seed) * 60000));
    p->has_financing_need_cents = true;
    p->financing_need_cents = p->amount_asked_cents * (1 + (int64_t)(s_random (seed) * 4));
    p->has_bank_loan_cents = true, p->bank_loan_cents = p->amount_asked_cents * 3 / 4;
    p->has_bank_loan_months = true, p->bank_loan_months = 24 + (uint32_t)(s_random (seed) * 60);
    p->has_bank_loan_guarantee_pct = true;
    p->bank_loan_guarantee_pct = (uint32_t)(s_random (seed) * 80);
    p->has_honour_loan_months = true, p->honour_loan_months = 12 + (uint32_t)(s_random (seed) * 60);
    p->has_deferral_months = true, p->deferral_months = (uint32_t)(s_random (seed) * 24);
    x->d.holder = &x->h, x->d.business = &x->b, x->d.project = &x->p;
}

/* Assessments per second: locate the business (the QPV code it lies in, else the
 * declared one stays absent) and decide every scheme, freeing each decision. index NULL:
 * decisions alone on the codes a previous run found, to tell the two costs apart. */
static double s_assessments (const qp_qpv_index_t *index, const qp_catalogue_t *catalogue,
                             dossier_t *dossiers, size_t count, double seconds,
                             double *eligible_share, double *bytes)
{
    size_t packed = 0;
    size_t done = 0, eligible = 0;
    double start = bench_now (), elapsed;
    do {
        for (size_t i = 0; i < count; i++) {
            dossier_t *x = &dossiers[i];
            /* The service's own path: the decision locates the business on the contours. */
            eligibility_geo_t geo = {index, 15};
            Qp__V1__EligibilityDecided *m =
                eligibility_decide (catalogue, &geo, "bench", &x->d, NULL);
            for (size_t s = 0; m && s < m->n_decisions; s++)
                if (m->decisions[s]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME) {
                    eligible++;
                    break;
                }
            if (!done) /* the size of what is stored, once per dossier (not timed much) */
                packed += qp__v1__eligibility_decided__get_packed_size (m);
            qp__v1__eligibility_decided__free_unpacked (m, NULL);
        }
        done += count;
        elapsed = bench_now () - start;
    } while (elapsed < seconds);
    *eligible_share = (double)eligible / done;
    *bytes = (double)packed / count;
    return done / elapsed;
}

/* The old path, for comparison: each dossier decided with every criterion explained
 * (reasons, values, parameters with sources), as `qp-ctl explain` gets it now. */
static double s_explained (const qp_catalogue_t *catalogue, dossier_t *dossiers, size_t count,
                           double seconds, double *bytes)
{
    size_t done = 0, packed = 0;
    double start = bench_now (), elapsed;
    do {
        for (size_t i = 0; i < count; i++) {
            Qp__V1__EligibilityDecided *m =
                eligibility_decide (catalogue, NULL, "bench", &dossiers[i].d, NULL);
            bool matches;
            char note[300];
            Qp__V1__EligibilityDecided *x = eligibility_explain (catalogue, NULL, &dossiers[i].d, m,
                                                                 &matches, note, sizeof note);
            if (!done)
                packed += qp__v1__eligibility_decided__get_packed_size (x);
            qp__v1__eligibility_decided__free_unpacked (x, NULL);
            qp__v1__eligibility_decided__free_unpacked (m, NULL);
        }
        done += count;
        elapsed = bench_now () - start;
    } while (elapsed < seconds);
    *bytes = (double)packed / count;
    return done / elapsed;
}

/* The integration flow's dossier (tests/support/qp_test_sample.c, i = 1): packed bytes of
 * the compact decision and of the explained one. */
static void s_flow_bytes (const qp_catalogue_t *catalogue, size_t *compact, size_t *explained)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    d.submitted_on = "2024-01-02", d.territory = "roubaix-tourcoing";
    h.person_key = "p0000000000000000000000000000001", h.residence_qpv = "QN05981M";
    h.has_accompanied = true, h.accompanied = true;
    h.has_network = true, h.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    b.insee_commune = "93048", b.naf_code = "47.11B", b.legal_form = "5499";
    p.has_axis = true, p.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    p.has_amount_asked_cents = true, p.amount_asked_cents = 107919;
    p.has_financing_need_cents = true, p.financing_need_cents = 4 * 107919;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = 4 * 107919 / 20;
    p.has_bank_loan_cents = true, p.bank_loan_cents = 2 * 107919;
    p.has_bank_loan_months = true, p.bank_loan_months = 60;
    p.has_bank_loan_guarantee_pct = true, p.bank_loan_guarantee_pct = 40;
    p.has_honour_loan_months = true, p.honour_loan_months = 48;
    p.has_deferral_months = true, p.deferral_months = 6;
    p.has_jobs_planned = true, p.jobs_planned = 2;
    d.holder = &h, d.business = &b, d.project = &p;
    rules_facts_t known;
    rules_facts_init (&known);
    rules_facts_set (&known, QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK, RULES_TRUE, "first");
    Qp__V1__EligibilityDecided *m = eligibility_decide (
        catalogue, NULL, "0123456789abcdef0123456789abcdef01234567", &d, &known);
    bool matches;
    char note[300];
    Qp__V1__EligibilityDecided *x =
        eligibility_explain (catalogue, NULL, &d, m, &matches, note, sizeof note);
    *compact = qp__v1__eligibility_decided__get_packed_size (m);
    *explained = qp__v1__eligibility_decided__get_packed_size (x);
    qp__v1__eligibility_decided__free_unpacked (x, NULL);
    qp__v1__eligibility_decided__free_unpacked (m, NULL);
}

static void s_row (const char *what, double value, const char *unit, const char *target)
{
    printf ("  %-44s %14.1f %-10s %s\n", what, value, unit, target);
}

int main (int argc, char *argv[])
{
    const char *json_path = NULL;
    bool smoke = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--smoke") == 0)
            smoke = true;
        else if (strcmp (argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf (stderr, "usage: qp-bench-eligibility [--smoke] [--json FILE]\n"
                             "  reads $QP_SHARED_DATA/qpv2024.geojson and "
                             "$QP_SOURCE_DIR/data/catalogue\n");
            return 2;
        }
    }
    const char *shared = getenv ("QP_SHARED_DATA") ? getenv ("QP_SHARED_DATA") : "../shared/data";
    const char *source = getenv ("QP_SOURCE_DIR") ? getenv ("QP_SOURCE_DIR") : ".";
    char contours[1024], catalogue_dir[1024];
    snprintf (contours, sizeof contours, "%s/qpv2024.geojson", shared);
    snprintf (catalogue_dir, sizeof catalogue_dir, "%s/data/catalogue", source);
    double seconds = smoke ? 0.3 : 3.0;
    size_t point_count = smoke ? 100000 : 1000000;

    /* Load: the best of a few, on a warm page cache; RSS measured on the first. */
    long rss_before = bench_status_kb (getpid (), "VmRSS");
    qp_error_t err;
    double t0 = bench_now ();
    qp_qpv_index_t *index = qp_qpv_load_geojson (contours, &err);
    double load_s = bench_now () - t0;
    if (!index) {
        fprintf (stderr, "qp-bench-eligibility: %s\n", err.message);
        return 1;
    }
    malloc_trim (0);
    long rss_delta_kb = bench_status_kb (getpid (), "VmRSS") - rss_before;
    long peak_delta_kb = bench_status_kb (getpid (), "VmHWM") - rss_before;
    for (int i = 0; i < (smoke ? 1 : 3); i++) {
        t0 = bench_now ();
        qp_qpv_index_t *again = qp_qpv_load_geojson (contours, &err);
        double took = bench_now () - t0;
        if (took < load_s)
            load_s = took;
        qp_qpv_destroy (&again);
    }
    double memory_mb = qp_qpv_memory (index) / 1048576.0;

    points_t boxes = s_points_in_boxes (index, point_count, 42);
    points_t france = s_points_in_france (point_count, 43);
    points_t mixed = {malloc (point_count * sizeof (double)),
                      malloc (point_count * sizeof (double)), point_count};
    for (size_t i = 0; i < point_count; i++) {
        const points_t *from = i % 2 ? &france : &boxes;
        mixed.lat[i] = from->lat[i], mixed.lon[i] = from->lon[i];
    }
    rate_t in_boxes = s_lookups (index, &boxes, 0, seconds);
    rate_t in_france = s_lookups (index, &france, 0, seconds);
    rate_t in_mix = s_lookups (index, &mixed, 0, seconds);
    rate_t in_boxes_tol = s_lookups (index, &boxes, 15, seconds);

    /* Full assessments: needs the catalogue; without one, say so and go on. */
    double assessments = -1, decisions = -1, explained = -1, eligible_share = 0, unused;
    double compact_bytes = -1, explained_bytes = -1, rss_growth_mb = -1, hwm_growth_mb = -1;
    size_t flow_compact = 0, flow_explained = 0;
    qp_catalogue_t *catalogue = qp_catalogue_load (catalogue_dir, &err);
    if (catalogue) {
        size_t count = 10000;
        dossier_t *dossiers = calloc (count, sizeof *dossiers);
        uint64_t seed = 44;
        for (size_t i = 0; i < count; i++)
            s_dossier (&dossiers[i], &seed, mixed.lat[i], mixed.lon[i]);
        malloc_trim (0);
        long rss0 = bench_status_kb (getpid (), "VmRSS"), hwm0 = bench_status_kb (getpid (), "VmHWM");
        assessments = s_assessments (index, catalogue, dossiers, count, seconds, &eligible_share,
                                     &compact_bytes);
        decisions = s_assessments (NULL, catalogue, dossiers, count, seconds, &unused, &unused);
        rss_growth_mb = (bench_status_kb (getpid (), "VmRSS") - rss0) / 1024.0;
        hwm_growth_mb = (bench_status_kb (getpid (), "VmHWM") - hwm0) / 1024.0;
        explained = s_explained (catalogue, dossiers, count, seconds / 3, &explained_bytes);
        s_flow_bytes (catalogue, &flow_compact, &flow_explained);
        free (dossiers);
        qp_catalogue_destroy (&catalogue);
    } else
        fprintf (stderr, "qp-bench-eligibility: no catalogue, assessments not measured: %s\n",
                 err.message);

    printf ("eligibility benchmark%s: %s (%zu QPV, %zu vertices), one core\n",
            smoke ? " (smoke)" : "", contours, qp_qpv_count (index), qp_qpv_vertex_count (index));
    printf ("  %-44s %14s %-10s %s\n", "figure", "value", "unit", "target");
    s_row ("index load (best)", load_s * 1000, "ms", "<= 1000 ms");
    s_row ("index memory (counted)", memory_mb, "MB", "<= 64 MB");
    s_row ("RSS delta after load (trimmed)", rss_delta_kb / 1024.0, "MB", "");
    s_row ("peak RSS delta during load (JSON tree)", peak_delta_kb / 1024.0, "MB", "");
    s_row ("lookups/s, points in QPV boxes", in_boxes.per_second, "/s", ">= 1,000,000/s");
    s_row ("  hit rate", in_boxes.hit_rate * 100, "%", "");
    s_row ("lookups/s, points over metropolitan France", in_france.per_second, "/s",
           ">= 1,000,000/s");
    s_row ("  hit rate", in_france.hit_rate * 100, "%", "");
    s_row ("lookups/s, half and half", in_mix.per_second, "/s", ">= 1,000,000/s");
    s_row ("  hit rate", in_mix.hit_rate * 100, "%", "");
    s_row ("lookups/s, QPV boxes, 15 m tolerance", in_boxes_tol.per_second, "/s", "");
    s_row ("  hit rate", in_boxes_tol.hit_rate * 100, "%", "");
    if (assessments >= 0) {
        s_row ("full dossier assessments/s (lookup+decide)", assessments, "/s", ">= 100,000/s");
        s_row ("  dossiers with an eligible scheme", eligible_share * 100, "%", "");
        s_row ("  decisions alone (no lookup)", decisions, "/s", "");
        s_row ("  explained decisions (qp-ctl explain path)", explained, "/s", "");
        s_row ("decision bytes, compact (stored, published)", compact_bytes, "B", "");
        s_row ("decision bytes, explained (stored before)", explained_bytes, "B", "");
        s_row ("test_flow dossier: compact decision", (double)flow_compact, "B",
               "whole dossier <= 2048 B");
        s_row ("test_flow dossier: explained decision", (double)flow_explained, "B", "");
        s_row ("RSS growth over the assessments", rss_growth_mb, "MB", "");
        s_row ("  peak RSS growth", hwm_growth_mb, "MB", "");
    } else
        printf ("  %-44s %14s\n", "full dossier assessments/s", "not measured");

    if (json_path) {
        json_t *out = json_object ();
        json_object_set_new (out, "benchmark", json_string ("eligibility"));
        json_object_set_new (out, "smoke", json_boolean (smoke));
        json_object_set_new (out, "qpv", json_integer ((json_int_t)qp_qpv_count (index)));
        json_object_set_new (out, "vertices",
                             json_integer ((json_int_t)qp_qpv_vertex_count (index)));
        struct {
            const char *name;
            double value;
        } figures[] = {
            {"load_s", load_s},
            {"index_memory_mb", memory_mb},
            {"rss_delta_mb", rss_delta_kb / 1024.0},
            {"peak_rss_delta_mb", peak_delta_kb / 1024.0},
            {"lookups_in_boxes_per_s", in_boxes.per_second},
            {"lookups_in_boxes_hit_rate", in_boxes.hit_rate},
            {"lookups_in_france_per_s", in_france.per_second},
            {"lookups_in_france_hit_rate", in_france.hit_rate},
            {"lookups_mixed_per_s", in_mix.per_second},
            {"lookups_mixed_hit_rate", in_mix.hit_rate},
            {"lookups_in_boxes_15m_per_s", in_boxes_tol.per_second},
            {"lookups_in_boxes_15m_hit_rate", in_boxes_tol.hit_rate},
            {"assessments_per_s", assessments},
            {"assessments_eligible_share", eligible_share},
            {"decisions_alone_per_s", decisions},
            {"explained_per_s", explained},
            {"decision_bytes_compact", compact_bytes},
            {"decision_bytes_explained", explained_bytes},
            {"flow_decision_bytes_compact", flow_compact ? (double)flow_compact : -1},
            {"flow_decision_bytes_explained", flow_explained ? (double)flow_explained : -1},
            {"assessment_rss_growth_mb", rss_growth_mb},
            {"assessment_peak_rss_growth_mb", hwm_growth_mb}};
        for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
            json_object_set_new (out, figures[i].name,
                                 figures[i].value < 0 ? json_null ()
                                                      : json_real (figures[i].value));
        json_t *targets =
            json_pack ("{s:f, s:f, s:f, s:f, s:f}", "load_s", TARGET_LOAD_S, "index_memory_mb",
                       TARGET_MEMORY_MB, "lookups_per_s", TARGET_LOOKUPS, "assessments_per_s",
                       TARGET_ASSESSMENTS, "dossier_bytes", TARGET_DOSSIER_BYTES);
        json_object_set_new (out, "targets", targets);
        if (json_dump_file (out, json_path, JSON_INDENT (2)) != 0)
            fprintf (stderr, "qp-bench-eligibility: cannot write %s\n", json_path);
        json_decref (out);
    }
    s_points_free (&boxes);
    s_points_free (&france);
    s_points_free (&mixed);
    qp_qpv_destroy (&index);
    return 0;
}
