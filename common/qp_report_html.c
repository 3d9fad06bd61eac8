/* The evaluation dashboard as one HTML page with SVG charts. */
#include "qp_report_html.h"
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void s_esc (FILE *o, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs ("&lt;", o); break;
        case '>': fputs ("&gt;", o); break;
        case '&': fputs ("&amp;", o); break;
        case '"': fputs ("&quot;", o); break;
        default: fputc (*s, o);
        }
    }
}

/* Euros from cents, grouped: "1 234 567". */
static void s_euros (int64_t cents, char *out, size_t size)
{
    char digits[24], grouped[32];
    long long v = llabs ((long long) (cents / 100));
    int n = snprintf (digits, sizeof digits, "%lld", v), g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ' ';
        grouped[g++] = digits[i];
    }
    grouped[g] = 0;
    snprintf (out, size, "%s%.30s €", cents < 0 ? "-" : "", grouped);
}

/* A figure in a table cell: its id (may be NULL) and machine-readable value. */
static void s_count_cell (FILE *o, const char *id, protobuf_c_boolean has, uint64_t v)
{
    fputs ("<td", o);
    if (id) {
        fputs (" id=\"", o);
        s_esc (o, id);
        fputc ('"', o);
    }
    if (has)
        fprintf (o, " data-value=\"%llu\">%llu</td>", (unsigned long long) v, (unsigned long long) v);
    else
        fputs (" class=\"masked\" title=\"under 5: masked\">&lt;5</td>", o);
}

static void s_money_cell (FILE *o, protobuf_c_boolean has, int64_t cents)
{
    char e[48];
    s_euros (cents, e, sizeof e);
    if (has)
        fprintf (o, "<td data-value=\"%lld\">%s</td>", (long long) cents, e);
    else
        fputs ("<td class=\"masked\">masked</td>", o);
}

static void s_pct_cell (FILE *o, protobuf_c_boolean has, double v)
{
    if (has)
        fprintf (o, "<td data-value=\"%.2f\">%.2f</td>", v, v);
    else
        fputs ("<td>–</td>", o);
}

static const char *s_phase_name (Qp__V1__Phase p)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value (&qp__v1__phase__descriptor, p);
    return v ? v->name : "";
}

/* The funnel: one bar per step, width relative to submissions. */
static void s_funnel (FILE *o, const Qp__V1__Figures *f)
{
    struct {
        const char *id, *label;
        uint64_t v;
    } steps[] = {{"submitted", "Submitted", f->submitted},
                 {"eligible", "Eligible", f->eligible},
                 {"funding_requested", "Funding asked", f->funding_requested},
                 {"funded", "Funded", f->funded},
                 {"declined", "Declined", f->declined},
                 {"unfunded", "Unfunded", f->unfunded},
                 {"not_eligible", "Not eligible", f->not_eligible},
                 {"rejected_at_intake", "Refused at intake", f->rejected_at_intake}};
    size_t n = sizeof steps / sizeof steps[0];
    uint64_t top = f->submitted > f->rejected_at_intake ? f->submitted : f->rejected_at_intake;
    double max = top ? (double) top : 1;
    fprintf (o, "<svg id=\"chart-funnel\" role=\"img\" aria-label=\"funnel\" width=\"640\" "
                "height=\"%zu\" viewBox=\"0 0 640 %zu\">\n", n * 34 + 10, n * 34 + 10);
    for (size_t i = 0; i < n; i++) {
        double w = 380.0 * (double) steps[i].v / max;
        double y = 8 + (double) i * 34;
        fprintf (o, "<text x=\"0\" y=\"%.0f\" class=\"lbl\">%s</text>", y + 18, steps[i].label);
        fprintf (o, "<rect x=\"140\" y=\"%.0f\" width=\"%.1f\" height=\"24\" class=\"bar%s\"/>",
                 y, w > 0 && w < 1 ? 1 : w, i >= 4 ? " off" : "");
        fprintf (o, "<text id=\"funnel-%s\" data-value=\"%llu\" x=\"%.1f\" y=\"%.0f\" "
                    "class=\"val\">%llu</text>\n",
                 steps[i].id, (unsigned long long) steps[i].v, 146 + w, y + 18,
                 (unsigned long long) steps[i].v);
    }
    fputs ("</svg>\n", o);
}

/* Cumulative commitments per month against the envelope's total. */
static void s_envelope_chart (FILE *o, const Qp__V1__EnvelopeUse *u)
{
    const double W = 640, H = 220, L = 60, B = 30;
    fprintf (o, "<svg id=\"chart-envelope-");
    s_esc (o, u->scheme_id);
    fprintf (o, "\" role=\"img\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", W,
             H, W, H);
    double total = u->total_cents > 0 ? (double) u->total_cents : 1;
    double top = 100;
    for (size_t i = 0; i < u->n_series; i++)
        top = fmax (top, 100.0 * (double) u->series[i]->cents / total);
    double ymax = top < 100 ? 100 : top;
    /* axes and gridlines at 0, 25, 50, 75, 100 % */
    for (int g = 0; g <= 100; g += 25) {
        double y = (H - B) - (H - B - 10) * g / ymax;
        fprintf (o, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                    "<text x=\"4\" y=\"%.1f\" class=\"axis\">%d %%</text>\n",
                 L, W - 10, y, y, y + 4, g);
    }
    size_t n = u->n_series;
    if (n) {
        fputs ("<polyline class=\"line\" points=\"", o);
        for (size_t i = 0; i < n; i++) {
            double x = L + (W - L - 20) * (n == 1 ? 1.0 : (double) i / (double) (n - 1));
            double y = (H - B) - (H - B - 10) * (100.0 * (double) u->series[i]->cents / total) / ymax;
            fprintf (o, "%.1f,%.1f ", x, y);
        }
        fputs ("\"/>\n", o);
        fprintf (o, "<text x=\"%.0f\" y=\"%.0f\" class=\"axis\">%s</text>", L, H - 8, u->series[0]->month);
        fprintf (o, "<text x=\"%.0f\" y=\"%.0f\" class=\"axis\" text-anchor=\"end\">%s</text>\n",
                 W - 10, H - 8, u->series[n - 1]->month);
    }
    fputs ("</svg>\n", o);
}

/* Horizontal bars per territory; values[i] < 0: nothing to show. refs: lines (e.g. 90, 77). */
static void s_territory_bars (FILE *o, const char *id, const Qp__V1__IndicatorReport *r,
                              const double *values, bool money, const double *refs, size_t n_refs)
{
    size_t n = r->n_territories;
    double max = 0;
    for (size_t i = 0; i < n; i++)
        max = fmax (max, values[i]);
    for (size_t k = 0; k < n_refs; k++)
        max = fmax (max, refs[k]);
    if (max <= 0)
        max = 1;
    fprintf (o, "<svg id=\"%s\" role=\"img\" width=\"640\" height=\"%zu\" viewBox=\"0 0 640 %zu\">\n",
             id, n * 26 + 24, n * 26 + 24);
    for (size_t i = 0; i < n; i++) {
        double y = 4 + (double) i * 26;
        fprintf (o, "<text x=\"0\" y=\"%.0f\" class=\"lbl\">", y + 15);
        s_esc (o, r->territories[i]->territory);
        fputs ("</text>", o);
        if (values[i] < 0) {
            fprintf (o, "<text x=\"170\" y=\"%.0f\" class=\"val\">no follow-up</text>\n", y + 15);
            continue;
        }
        double w = 360 * values[i] / max;
        char label[48];
        if (money)
            s_euros ((int64_t) values[i], label, sizeof label);
        else
            snprintf (label, sizeof label, "%.2f %%", values[i]);
        fprintf (o, "<rect x=\"165\" y=\"%.0f\" width=\"%.1f\" height=\"18\" class=\"bar\"/>"
                    "<text x=\"%.1f\" y=\"%.0f\" class=\"val\">%s</text>\n",
                 y, w, 171 + w, y + 15, label);
    }
    for (size_t k = 0; k < n_refs; k++) {
        double x = 165 + 360 * refs[k] / max;
        fprintf (o, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%zu\" class=\"ref\"/>"
                    "<text x=\"%.1f\" y=\"%zu\" class=\"axis\">%.0f %%</text>\n",
                 x, x, n * 26 + 4, x - 10, n * 26 + 18, refs[k]);
    }
    fputs ("</svg>\n", o);
}

static void s_figures_rows (FILE *o, const char *prefix, const Qp__V1__Figures *f)
{
    char id[160];
#define ROW(label, field)                                                                          \
    do {                                                                                           \
        snprintf (id, sizeof id, "%s-%s", prefix, #field);                                       \
        fputs ("<tr><th>" label "</th>", o);                                                      \
        s_count_cell (o, id, f->has_##field, f->field);                                            \
        fputs ("</tr>\n", o);                                                                      \
    } while (0)
    ROW ("Submitted", submitted);
    ROW ("Refused at intake", rejected_at_intake);
    ROW ("Eligible", eligible);
    ROW ("Not eligible", not_eligible);
    ROW ("Funding asked", funding_requested);
    ROW ("Settlements approved", approved);
    ROW ("Funded", funded);
    ROW ("Declined", declined);
    ROW ("Unfunded", unfunded);
    ROW ("Jobs planned", jobs_planned);
    ROW ("Tax exemptions granted", exemptions_granted);
#undef ROW
#define MONEY(label, field)                                                                        \
    fputs ("<tr><th>" label "</th>", o), s_money_cell (o, f->has_##field, f->field),              \
        fputs ("</tr>\n", o)
    MONEY ("Committed", committed_cents);
    MONEY ("Honour loans", honour_loan_cents);
    MONEY ("Bank loans leveraged", bank_loan_cents);
    MONEY ("Guarantees", guarantee_cents);
    MONEY ("Grants", grant_cents);
    MONEY ("Tax exemptions", exemption_cents);
#undef MONEY
#define PCT(label, field)                                                                          \
    fputs ("<tr><th>" label "</th>", o), s_pct_cell (o, f->has_##field, f->field), fputs ("</tr>\n", o)
    PCT ("Leverage (€ bank per € honour loan)", leverage_ratio);
    PCT ("Survival at 1 year (%)", survival_y1_pct);
    PCT ("Survival at 2 years (%)", survival_y2_pct);
    PCT ("Survival at 3 years (%)", survival_y3_pct);
    PCT ("Women (% of declared)", women_pct);
    PCT ("Under 30 (% of declared)", under_30_pct);
#undef PCT
}

int qp_report_html_write (FILE *o, const Qp__V1__IndicatorReport *r)
{
    fputs ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<title>Quartiers Productifs: evaluation</title>\n<style>\n"
           "body{font:14px/1.4 sans-serif;margin:24px;color:#1d2733;max-width:1100px}"
           "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccd}"
           "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #e3e6ea;text-align:right}"
           "th{text-align:left;font-weight:normal;color:#445}.masked{color:#999}"
           ".bar{fill:#2f6db5}.bar.off{fill:#b7c3d0}.lbl{font-size:12px}.val{font-size:12px;fill:#1d2733}"
           ".axis{font-size:11px;fill:#667}.grid{stroke:#e3e6ea}.line{fill:none;stroke:#c0392b;stroke-width:2}"
           ".ref{stroke:#c0392b;stroke-dasharray:4 3}.kpi{display:inline-block;margin:0 24px 8px 0}"
           ".kpi b{display:block;font-size:20px}\n</style></head><body>\n",
           o);
    fputs ("<h1>Quartiers Productifs: evaluation</h1>\n<p>Figures as of business day <b id=\"as-of\">", o);
    s_esc (o, r->as_of);
    fputs ("</b>", o);
    const Qp__V1__IndicatorQuery *q = r->query;
    if (q && q->territory && *q->territory) {
        fputs (", territory <b>", o);
        s_esc (o, q->territory);
        fputs ("</b>", o);
    }
    if (q && ((q->from && *q->from) || (q->until && *q->until))) {
        fputs (", period ", o);
        s_esc (o, q->from ? q->from : "…");
        fputs (" to ", o);
        s_esc (o, q->until ? q->until : "…");
    }
    if (q && q->scheme_id && *q->scheme_id) {
        fputs (", scheme ", o);
        s_esc (o, q->scheme_id);
    }
    fputs (". Counts under 5 below territory level are masked; no personal data.</p>\n", o);

    Qp__V1__Figures zero = QP__V1__FIGURES__INIT;
    const Qp__V1__Figures *t = r->total && r->total->figures ? r->total->figures : &zero;
    char e1[48], e2[48];
    s_euros (t->committed_cents, e1, sizeof e1);
    s_euros (t->bank_loan_cents, e2, sizeof e2);
    fprintf (o, "<div><span class=\"kpi\">Dossiers<b id=\"kpi-submitted\" data-value=\"%llu\">%llu</b></span>"
                "<span class=\"kpi\">Funded<b id=\"kpi-funded\" data-value=\"%llu\">%llu</b></span>"
                "<span class=\"kpi\">Committed<b id=\"kpi-committed\" data-value=\"%lld\">%s</b></span>"
                "<span class=\"kpi\">Bank loans leveraged<b>%s</b></span>",
             (unsigned long long) t->submitted, (unsigned long long) t->submitted,
             (unsigned long long) t->funded, (unsigned long long) t->funded,
             (long long) t->committed_cents, e1, e2);
    if (t->has_survival_y3_pct)
        fprintf (o, "<span class=\"kpi\">Survival at 3 years<b id=\"kpi-survival3\" "
                    "data-value=\"%.2f\">%.2f %%</b></span>", t->survival_y3_pct, t->survival_y3_pct);
    fputs ("</div>\n<h2>Funnel</h2>\n", o);
    s_funnel (o, t);

    for (size_t i = 0; i < r->n_envelopes; i++) {
        const Qp__V1__EnvelopeUse *u = r->envelopes[i];
        char total[48], committed[48];
        s_euros (u->total_cents, total, sizeof total);
        s_euros (u->committed_cents, committed, sizeof committed);
        fputs ("<h2>Envelope consumption: ", o);
        s_esc (o, u->scheme_id);
        fprintf (o, "</h2>\n<p><span id=\"envelope-%s-committed\" data-value=\"%lld\">%s</span> of %s "
                    "(%.2f %%); %llu projects of %llu (%.2f %%). ",
                 u->scheme_id, (long long) u->committed_cents, committed, total, u->consumed_pct,
                 (unsigned long long) u->projects, (unsigned long long) u->max_projects, u->projects_pct);
        s_esc (o, u->source);
        fputs ("</p>\n", o);
        s_envelope_chart (o, u);
    }

    size_t n = r->n_territories;
    double values[n + 1];
    fputs ("<h2>Amounts committed per territory</h2>\n", o);
    for (size_t i = 0; i < n; i++)
        values[i] = (double) r->territories[i]->figures->committed_cents;
    s_territory_bars (o, "chart-amounts", r, values, true, NULL, 0);
    double refs[4];
    size_t n_refs = 0;
    for (size_t i = 0; i < r->n_references && n_refs < 4; i++)
        if (r->references[i]->indicator && !strcmp (r->references[i]->indicator, "survival_y3_pct"))
            refs[n_refs++] = r->references[i]->value;
    fputs ("<h2>Survival at 3 years per territory</h2>\n", o);
    for (size_t i = 0; i < n; i++) {
        const Qp__V1__Figures *f = r->territories[i]->figures;
        values[i] = f->has_survival_y3_pct ? f->survival_y3_pct : -1;
    }
    s_territory_bars (o, "chart-survival", r, values, false, refs, n_refs);

    fputs ("<h2>Targets</h2>\n<table><tr><th>target</th><th>current</th><th>goal</th><th>by</th>"
           "<th>progress</th><th>at this pace, reached on</th></tr>\n", o);
    for (size_t i = 0; i < r->n_targets; i++) {
        const Qp__V1__TargetProgress *g = r->targets[i];
        fputs ("<tr><th title=\"", o);
        s_esc (o, g->source);
        fputs ("\">", o);
        s_esc (o, g->label);
        fprintf (o, "</th><td id=\"target-%s\" data-value=\"%.0f\">%.0f</td><td>%.0f</td><td>%s</td>"
                    "<td>%.2f %%</td><td>%s%s</td></tr>\n",
                 g->id ? g->id : "", g->current, g->current, g->target, g->by ? g->by : "",
                 g->progress_pct, g->reached_on ? g->reached_on : "–",
                 g->has_on_track ? (g->on_track ? " (on track)" : " (late)") : "");
    }
    fputs ("</table>\n<h2>References</h2>\n<table><tr><th>figure</th><th>reference</th>"
           "<th>measured</th><th>source</th></tr>\n", o);
    for (size_t i = 0; i < r->n_references; i++) {
        const Qp__V1__Reference *x = r->references[i];
        fputs ("<tr><th>", o);
        s_esc (o, x->label);
        fprintf (o, "</th><td>%.2f %s</td>", x->value, x->unit ? x->unit : "");
        if (x->has_measured)
            fprintf (o, "<td>%.2f</td>", x->measured);
        else
            fputs ("<td>–</td>", o);
        fputs ("<td style=\"text-align:left\">", o);
        s_esc (o, x->source);
        fputs ("</td></tr>\n", o);
    }
    fputs ("</table>\n", o);

    for (size_t i = 0; i < n; i++) {
        const Qp__V1__TerritoryIndicators *ti = r->territories[i];
        char prefix[128];
        snprintf (prefix, sizeof prefix, "t-%s", ti->territory);
        fputs ("<h2>Territory ", o);
        s_esc (o, ti->territory);
        if (ti->has_current_phase)
            fprintf (o, " <small>(phase %s)</small>", s_phase_name (ti->current_phase));
        fputs ("</h2>\n<table>\n", o);
        s_figures_rows (o, prefix, ti->figures);
        fputs ("</table>\n", o);
        if (ti->n_phases) {
            fputs ("<table><tr><th>phase</th><th>from</th><th>to</th><th>submitted</th>"
                   "<th>funded</th><th>committed</th></tr>\n", o);
            for (size_t k = 0; k < ti->n_phases; k++) {
                const Qp__V1__PhaseFigures *p = ti->phases[k];
                fprintf (o, "<tr><th>%s</th><td>%s</td><td>%s</td>", s_phase_name (p->phase->phase),
                         p->phase->started_on, p->phase->ended_on ? p->phase->ended_on : "");
                s_count_cell (o, NULL, p->figures->has_submitted, p->figures->submitted);
                s_count_cell (o, NULL, p->figures->has_funded, p->figures->funded);
                s_money_cell (o, p->figures->has_committed_cents, p->figures->committed_cents);
                fputs ("</tr>\n", o);
            }
            fputs ("</table>\n", o);
        }
    }
    fputs ("</body></html>\n", o);
    return ferror (o) ? -1 : 0;
}
