/* The metrics registry: families in creation order, each with its series; a hash finds a
 * series by "name{labels}". */
#include "qp_metrics.h"
#include <assert.h>
#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } kind_t;
static const char *s_kind_names[] = {"counter", "gauge", "histogram"};

/* Seconds: a handler is a Redis script or two, a slow one waits on a failover. */
static const double s_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,   5,     10};
#define N_BUCKETS (sizeof s_buckets / sizeof s_buckets[0])

struct qp_metric {
    struct family *family;
    char *labels;
    double value;                /* counter, gauge; histogram: sum */
    uint64_t count;              /* histogram */
    uint64_t buckets[N_BUCKETS]; /* histogram, not cumulative */
};

typedef struct family {
    char *name;
    char *help;
    kind_t kind;
    qp_metric_t **series;
    size_t n_series;
} family_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static family_t **s_families;
static size_t s_n_families;
static zhashx_t *s_index; /* "name{labels}" -> qp_metric_t * */

static family_t *s_family (const char *name, const char *help, kind_t kind)
{
    for (size_t i = 0; i < s_n_families; i++)
        if (!strcmp (s_families[i]->name, name))
            return s_families[i]->kind == kind ? s_families[i] : NULL;
    family_t *f = calloc (1, sizeof *f);
    assert (f);
    f->name = strdup (name);
    f->help = strdup (help ? help : "");
    f->kind = kind;
    s_families = realloc (s_families, (s_n_families + 1) * sizeof *s_families);
    assert (s_families);
    s_families[s_n_families++] = f;
    return f;
}

static qp_metric_t *s_series (const char *name, const char *help, const char *labels, kind_t kind)
{
    if (!labels)
        labels = "";
    char *key = NULL;
    if (asprintf (&key, "%s{%s}", name, labels) < 0)
        return NULL;
    pthread_mutex_lock (&s_lock);
    if (!s_index)
        s_index = zhashx_new ();
    qp_metric_t *m = zhashx_lookup (s_index, key);
    if (m && m->family->kind != kind)
        m = NULL;
    else if (!m) {
        family_t *f = s_family (name, help, kind);
        if (f) {
            m = calloc (1, sizeof *m);
            assert (m);
            m->family = f;
            m->labels = strdup (labels);
            f->series = realloc (f->series, (f->n_series + 1) * sizeof *f->series);
            assert (f->series);
            f->series[f->n_series++] = m;
            zhashx_insert (s_index, key, m);
        }
    }
    pthread_mutex_unlock (&s_lock);
    free (key);
    return m;
}

qp_metric_t *qp_metrics_counter (const char *name, const char *help, const char *labels)
{
    return s_series (name, help, labels, S_COUNTER);
}

qp_metric_t *qp_metrics_gauge (const char *name, const char *help, const char *labels)
{
    return s_series (name, help, labels, S_GAUGE);
}

qp_metric_t *qp_metrics_histogram (const char *name, const char *help, const char *labels)
{
    return s_series (name, help, labels, S_HISTOGRAM);
}

void qp_metric_add (qp_metric_t *m, double v)
{
    if (!m || m->family->kind == S_HISTOGRAM || (m->family->kind == S_COUNTER && !(v >= 0)))
        return;
    pthread_mutex_lock (&s_lock);
    m->value += v;
    pthread_mutex_unlock (&s_lock);
}

void qp_metric_set (qp_metric_t *m, double v)
{
    if (!m || m->family->kind == S_HISTOGRAM)
        return;
    pthread_mutex_lock (&s_lock);
    m->value = v;
    pthread_mutex_unlock (&s_lock);
}

void qp_metric_observe (qp_metric_t *m, double v)
{
    if (!m || m->family->kind != S_HISTOGRAM || isnan (v))
        return;
    pthread_mutex_lock (&s_lock);
    m->value += v;
    m->count++;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (v <= s_buckets[i]) {
            m->buckets[i]++;
            break;
        }
    pthread_mutex_unlock (&s_lock);
}

double qp_metric_value (qp_metric_t *m)
{
    if (!m)
        return 0;
    pthread_mutex_lock (&s_lock);
    double v = m->family->kind == S_HISTOGRAM ? (double) m->count : m->value;
    pthread_mutex_unlock (&s_lock);
    return v;
}

char *qp_metrics_labels (char *buf, size_t size, ...)
{
    va_list ap;
    va_start (ap, size);
    size_t n = 0;
    const char *key;
    bool ok = size > 0;
    while (ok && (key = va_arg (ap, const char *))) {
        const char *value = va_arg (ap, const char *);
        int w = snprintf (buf + n, size - n, "%s%s=\"", n ? "," : "", key);
        ok = w > 0 && (size_t) w < size - n;
        n += ok ? (size_t) w : 0;
        for (const char *p = value ? value : ""; ok && *p; p++) {
            const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
            size_t len = esc ? 2 : 1;
            ok = n + len < size;
            if (ok) {
                memcpy (buf + n, esc ? esc : p, len);
                n += len;
            }
        }
        ok = ok && n + 1 < size;
        if (ok)
            buf[n++] = '"';
    }
    va_end (ap);
    if (size > 0)
        buf[ok ? n : 0] = 0;
    return ok ? buf : NULL;
}

/* Text-format numbers: integers as such, others with enough digits to read back. */
static void s_number (FILE *f, double v)
{
    if (isinf (v))
        fputs (v > 0 ? "+Inf" : "-Inf", f);
    else if (isnan (v))
        fputs ("NaN", f);
    else if (v == floor (v) && fabs (v) < 1e15)
        fprintf (f, "%.0f", v);
    else
        fprintf (f, "%.17g", v);
}

static void s_help_text (FILE *f, const char *help)
{
    for (const char *p = help; *p; p++)
        if (*p == '\\')
            fputs ("\\\\", f);
        else if (*p == '\n')
            fputs ("\\n", f);
        else
            fputc (*p, f);
}

char *qp_metrics_render (void)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream (&text, &size);
    assert (f);
    pthread_mutex_lock (&s_lock);
    for (size_t i = 0; i < s_n_families; i++) {
        family_t *fam = s_families[i];
        fprintf (f, "# HELP %s ", fam->name);
        s_help_text (f, fam->help);
        fprintf (f, "\n# TYPE %s %s\n", fam->name, s_kind_names[fam->kind]);
        for (size_t j = 0; j < fam->n_series; j++) {
            qp_metric_t *m = fam->series[j];
            const char *sep = m->labels[0] ? "," : "";
            if (fam->kind != S_HISTOGRAM) {
                fprintf (f, m->labels[0] ? "%s{%s} " : "%s ", fam->name, m->labels);
                s_number (f, m->value);
                fputc ('\n', f);
                continue;
            }
            uint64_t cumulative = 0;
            for (size_t b = 0; b < N_BUCKETS; b++) {
                cumulative += m->buckets[b];
                fprintf (f, "%s_bucket{%s%sle=\"%g\"} %llu\n", fam->name, m->labels, sep,
                         s_buckets[b], (unsigned long long) cumulative);
            }
            fprintf (f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", fam->name, m->labels, sep,
                     (unsigned long long) m->count);
            fprintf (f, m->labels[0] ? "%s_sum{%s} " : "%s_sum ", fam->name, m->labels);
            s_number (f, m->value);
            if (m->labels[0])
                fprintf (f, "\n%s_count{%s} %llu\n", fam->name, m->labels,
                         (unsigned long long) m->count);
            else
                fprintf (f, "\n%s_count %llu\n", fam->name, (unsigned long long) m->count);
        }
    }
    pthread_mutex_unlock (&s_lock);
    fclose (f);
    return text;
}

void qp_metrics_reset (void)
{
    pthread_mutex_lock (&s_lock);
    for (size_t i = 0; i < s_n_families; i++) {
        family_t *fam = s_families[i];
        for (size_t j = 0; j < fam->n_series; j++) {
            free (fam->series[j]->labels);
            free (fam->series[j]);
        }
        free (fam->series);
        free (fam->name);
        free (fam->help);
        free (fam);
    }
    free (s_families);
    s_families = NULL;
    s_n_families = 0;
    zhashx_destroy (&s_index);
    pthread_mutex_unlock (&s_lock);
}
