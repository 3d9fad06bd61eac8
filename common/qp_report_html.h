/* The evaluation dashboard: one self-contained HTML page (inline CSS, charts drawn as
 * SVG, no script, no network access needed) from a qp.v1.IndicatorReport: the funnel,
 * envelope consumption over time, amounts and survival per territory, targets and
 * references, and a table per territory with its phases. Every figure shown carries an
 * id and a data-value attribute so that a test can read the rendered page back. */
#ifndef QP_REPORT_HTML_H
#define QP_REPORT_HTML_H
#include "qp/v1/evaluation.pb-c.h"
#include <stdio.h>

/* Writes the page to out. Returns 0, or -1 on a write error. */
int qp_report_html_write (FILE *out, const Qp__V1__IndicatorReport *report);
#endif
