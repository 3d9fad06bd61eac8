/* Rendering of EligibilityDecided for people. */
#include "qp_explain.h"
#include <stdio.h>
#include <stdlib.h>

static const char *s_enum (const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value (d, value);
    return v ? v->name : "?";
}

static void s_euros (FILE *f, int64_t cents)
{
    bool neg = cents < 0;
    uint64_t v = neg ? (uint64_t) (-(cents + 1)) + 1 : (uint64_t) cents;
    char digits[32];
    int n = snprintf (digits, sizeof digits, "%llu", (unsigned long long) (v / 100));
    fputs (neg ? "-" : "", f);
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            fputc (' ', f);
        fputc (digits[i], f);
    }
    fprintf (f, ",%02u €", (unsigned) (v % 100));
}

static void s_location (FILE *f, const char *what, const Qp__V1__QpvLocation *l)
{
    fprintf (f, "%-10s ", what);
    if (!l || !l->qpv_code) {
        fprintf (f, "not in a known QPV\n");
        return;
    }
    fprintf (f, "QPV %s%s%s", l->qpv_code, l->qpv_name ? " " : "", l->qpv_name ? l->qpv_name : "");
    if (l->verified)
        fprintf (f, " (verified on the official contours, %s)\n",
                 l->distance_m > 0 ? "within the boundary tolerance" : "inside");
    else
        fprintf (f, " (declared, not verified)\n");
    if (l->verified && l->distance_m > 0)
        fprintf (f, "%-10s %.0f m from the boundary\n", "", l->distance_m);
}

static const char *s_mark (Qp__V1__CriterionOutcome o)
{
    return o == QP__V1__CRITERION_OUTCOME__MET       ? "[met]    "
           : o == QP__V1__CRITERION_OUTCOME__NOT_MET ? "[NOT MET]"
           : o == QP__V1__CRITERION_OUTCOME__MISSING ? "[missing]"
                                                     : "[?]      ";
}

char *qp_explain_text (const Qp__V1__EligibilityDecided *e, bool verbose)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream (&text, &size);
    fprintf (f, "Dossier %s, decided with the rules in force on %s, territory %s\n",
             e->dossier_id ? e->dossier_id : "?", e->decided_on ? e->decided_on : "?",
             e->territory && *e->territory ? e->territory : "?");
    s_location (f, "Business:", e->business_location);
    s_location (f, "Residence:", e->residence_location);
    size_t eligible = 0;
    for (size_t i = 0; i < e->n_decisions; i++)
        eligible += e->decisions[i]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    fprintf (f, "%zu of %zu schemes eligible\n", eligible, e->n_decisions);

    for (size_t i = 0; i < e->n_decisions; i++) {
        const Qp__V1__SchemeDecision *d = e->decisions[i];
        const char *outcome = d->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME ? "ELIGIBLE"
                              : d->outcome == QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME
                                  ? "NOT ELIGIBLE"
                              : d->outcome == QP__V1__OUTCOME__INFORMATION_MISSING
                                  ? "INFORMATION MISSING"
                                  : "?";
        fprintf (f, "\n%s (%s, %s): %s", d->scheme_name ? d->scheme_name : "?",
                 d->scheme_id ? d->scheme_id : "?", s_enum (&qp__v1__agency__descriptor, d->agency),
                 outcome);
        if (d->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME && d->amount_cents > 0) {
            fputs (", ", f);
            s_euros (f, d->amount_cents);
        }
        if (d->catalogue_version)
            fprintf (f, "  [catalogue %s]", d->catalogue_version);
        fputc ('\n', f);
        for (size_t j = 0; j < d->n_criteria; j++) {
            const Qp__V1__CriterionResult *c = d->criteria[j];
            fprintf (f, "  %s %-22s %s\n", s_mark (c->outcome), c->criterion ? c->criterion : "?",
                     c->reason ? c->reason : "");
            if (c->missing_field)
                fprintf (f, "  %9s %-22s missing: %s\n", "", "", c->missing_field);
            if (!verbose)
                continue;
            for (size_t k = 0; k < c->n_values; k++)
                fprintf (f, "  %9s %-22s read %s\n", "", "", c->values[k]);
            for (size_t k = 0; k < c->n_parameters; k++) {
                const Qp__V1__ParameterUsed *p = c->parameters[k];
                fprintf (f, "  %9s %-22s %s = %s (from %s; source: %s)\n", "", "",
                         p->name ? p->name : "?", p->value ? p->value : "?",
                         p->valid_from ? p->valid_from : "?", p->source ? p->source : "?");
            }
        }
    }
    fclose (f);
    return text;
}
