/* Process-wide metrics registry: counters, gauges and histograms, each series a name
 * plus Prometheus labels, rendered in the text exposition format (version 0.0.4) for the
 * /metrics endpoint of qp_health. Updates come from the program's main thread, the
 * rendering from the HTTP thread: one mutex guards the registry. A NULL series (a name
 * reused with another kind) is accepted by every update and ignored. */
#ifndef QP_METRICS_H
#define QP_METRICS_H
#include <stddef.h>

typedef struct qp_metric qp_metric_t;

/* Finds or creates the series name{labels}. labels: label text without braces, as
 * qp_metrics_labels builds it ("" for none). help is kept from the first call. */
qp_metric_t *qp_metrics_counter (const char *name, const char *help, const char *labels);
qp_metric_t *qp_metrics_gauge (const char *name, const char *help, const char *labels);
/* Latency histogram in seconds, buckets from 0.5 ms to 10 s. */
qp_metric_t *qp_metrics_histogram (const char *name, const char *help, const char *labels);

void qp_metric_add (qp_metric_t *m, double v);     /* counter (v >= 0) or gauge */
void qp_metric_set (qp_metric_t *m, double v);     /* gauge, or a counter mirrored from a total */
void qp_metric_observe (qp_metric_t *m, double v); /* histogram */
double qp_metric_value (qp_metric_t *m);           /* counter/gauge value, histogram count */

/* Builds label text from NULL-terminated key, value pairs, escaping values (\\ \" \n):
 * qp_metrics_labels (buf, sizeof buf, "service", "intake", "type", t, NULL). Returns
 * buf, or NULL (buf "") when it does not fit. */
char *qp_metrics_labels (char *buf, size_t size, ...);

/* The whole registry in the text format (malloc'd). */
char *qp_metrics_render (void);
/* Forgets every series (tests). */
void qp_metrics_reset (void);
#endif
