/* The rules of the catalogue's schemes. Amounts and thresholds come from the catalogue
 * version in force; only the logic of a criterion lives here. */
#include "rules.h"
#include "qp_date.h"
#include <stdarg.h>
#include <string.h>

void rules_format_euros (int64_t cents, char *buf, size_t size)
{
    bool neg = cents < 0;
    uint64_t v = neg ? (uint64_t) (-(cents + 1)) + 1 : (uint64_t) cents;
    char digits[32];
    int n = snprintf (digits, sizeof digits, "%llu", (unsigned long long) (v / 100));
    char grouped[48];
    int g = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            grouped[g++] = ' ';
        grouped[g++] = digits[i];
    }
    grouped[g] = 0;
    snprintf (buf, size, "%s%s,%02u €", neg ? "-" : "", grouped, (unsigned) (v % 100));
}

static char *s_printf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *s_printf (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *out = NULL;
    if (vasprintf (&out, fmt, ap) < 0)
        out = NULL;
    va_end (ap);
    assert (out);
    return out;
}

typedef struct {
    Qp__V1__SchemeDecision *decision;
    const qp_scheme_version_t *version;
} ctx_t;

static Qp__V1__CriterionResult *s_criterion (ctx_t *ctx, const char *id)
{
    Qp__V1__SchemeDecision *d = ctx->decision;
    d->criteria = realloc (d->criteria, (d->n_criteria + 1) * sizeof *d->criteria);
    assert (d->criteria);
    Qp__V1__CriterionResult *c = malloc (sizeof *c);
    assert (c);
    qp__v1__criterion_result__init (c);
    c->criterion = strdup (id);
    d->criteria[d->n_criteria++] = c;
    return c;
}

static void s_outcome (Qp__V1__CriterionResult *c, Qp__V1__CriterionOutcome outcome, char *reason)
{
    c->has_outcome = true;
    c->outcome = outcome;
    free (c->reason);
    c->reason = reason;
}

static void s_missing (Qp__V1__CriterionResult *c, const char *field)
{
    s_outcome (c, QP__V1__CRITERION_OUTCOME__MISSING, s_printf ("%s is not given", field));
    c->missing_field = strdup (field);
}

static void s_value (Qp__V1__CriterionResult *c, char *value)
{
    c->values = realloc (c->values, (c->n_values + 1) * sizeof *c->values);
    assert (c->values);
    c->values[c->n_values++] = value;
}

/* Records and returns a catalogue parameter; false (criterion skipped) when the version
 * does not set it. */
static bool s_param (ctx_t *ctx, Qp__V1__CriterionResult *c, const char *name, int64_t *value)
{
    if (!qp_catalogue_param (ctx->version, name, value))
        return false;
    c->parameters = realloc (c->parameters, (c->n_parameters + 1) * sizeof *c->parameters);
    assert (c->parameters);
    Qp__V1__ParameterUsed *p = malloc (sizeof *p);
    assert (p);
    qp__v1__parameter_used__init (p);
    p->name = strdup (name);
    p->value = s_printf ("%lld", (long long) *value);
    p->valid_from = strdup (ctx->version->valid_from);
    p->source = strdup (ctx->version->source);
    c->parameters[c->n_parameters++] = p;
    return true;
}

static bool s_network_known (const Qp__V1__ProjectHolder *h)
{
    return h->has_network && h->network != QP__V1__NETWORK__NETWORK_UNSPECIFIED &&
           h->network != QP__V1__NETWORK__NETWORK_NONE;
}

/* Prêt d'honneur Quartiers and honour loans of the same shape. */
static void s_honour_loan (ctx_t *ctx, const Qp__V1__Dossier *d)
{
    static Qp__V1__ProjectHolder no_holder = QP__V1__PROJECT_HOLDER__INIT;
    static Qp__V1__Business no_business = QP__V1__BUSINESS__INIT;
    static Qp__V1__Project no_project = QP__V1__PROJECT__INIT;
    const Qp__V1__ProjectHolder *h = d->holder ? d->holder : &no_holder;
    const Qp__V1__Business *b = d->business ? d->business : &no_business;
    const Qp__V1__Project *p = d->project ? d->project : &no_project;
    Qp__V1__CriterionResult *c;
    int64_t v, lo, hi;
    char e1[40], e2[40];

    c = s_criterion (ctx, "qpv");
    if (s_param (ctx, c, "requires_qpv", &v) && v) {
        if (h->residence_qpv && *h->residence_qpv) {
            s_value (c, s_printf ("holder.residence_qpv=%s", h->residence_qpv));
            s_outcome (c, QP__V1__CRITERION_OUTCOME__MET,
                       s_printf ("the holder declares living in QPV %s", h->residence_qpv));
        } else if (b->declared_qpv && *b->declared_qpv) {
            s_value (c, s_printf ("business.declared_qpv=%s", b->declared_qpv));
            s_outcome (c, QP__V1__CRITERION_OUTCOME__MET,
                       s_printf ("the business declares being located in QPV %s", b->declared_qpv));
        } else {
            s_missing (c, "holder.residence_qpv");
            s_outcome (c, QP__V1__CRITERION_OUTCOME__MISSING,
                       strdup ("neither the holder's residence nor the business is declared in "
                               "a QPV"));
        }
    } else
        s_outcome (c, QP__V1__CRITERION_OUTCOME__MET, strdup ("no QPV condition"));

    c = s_criterion (ctx, "amount");
    if (!p->has_amount_asked_cents)
        s_missing (c, "project.amount_asked_cents");
    else if (s_param (ctx, c, "min_amount_cents", &lo) && s_param (ctx, c, "max_amount_cents", &hi)) {
        s_value (c, s_printf ("project.amount_asked_cents=%lld", (long long) p->amount_asked_cents));
        rules_format_euros (p->amount_asked_cents, e1, sizeof e1);
        bool ok = p->amount_asked_cents >= lo && p->amount_asked_cents <= hi;
        rules_format_euros (ok ? hi : (p->amount_asked_cents < lo ? lo : hi), e2, sizeof e2);
        s_outcome (c, ok ? QP__V1__CRITERION_OUTCOME__MET : QP__V1__CRITERION_OUTCOME__NOT_MET,
                   s_printf ("%s asked %s %s %s", e1,
                             ok ? "≤" : (p->amount_asked_cents < lo ? "<" : ">"),
                             ok || p->amount_asked_cents > hi ? "maximum" : "minimum", e2));
    }

    c = s_criterion (ctx, "share_of_need");
    if (!p->has_amount_asked_cents || !p->has_financing_need_cents)
        s_missing (c, p->has_financing_need_cents ? "project.amount_asked_cents"
                                                  : "project.financing_need_cents");
    else if (s_param (ctx, c, "max_share_of_need_pct", &v)) {
        s_value (c, s_printf ("project.financing_need_cents=%lld",
                              (long long) p->financing_need_cents));
        bool ok = (__int128) p->amount_asked_cents * 100 <= (__int128) p->financing_need_cents * v;
        rules_format_euros (p->financing_need_cents, e1, sizeof e1);
        s_outcome (c, ok ? QP__V1__CRITERION_OUTCOME__MET : QP__V1__CRITERION_OUTCOME__NOT_MET,
                   s_printf ("the amount asked is %s %lld %% of the financing need of %s",
                             ok ? "within" : "more than", (long long) v, e1));
    }

    c = s_criterion (ctx, "accompaniment");
    if (s_param (ctx, c, "requires_accompaniment", &v) && v) {
        if (!h->has_accompanied)
            s_missing (c, "holder.accompanied");
        else {
            bool ok = h->accompanied && s_network_known (h);
            const ProtobufCEnumValue *net = protobuf_c_enum_descriptor_get_value (
                &qp__v1__network__descriptor, h->has_network ? h->network : 0);
            s_value (c, s_printf ("holder.accompanied=%s", h->accompanied ? "true" : "false"));
            s_value (c, s_printf ("holder.network=%s", net ? net->name : "?"));
            s_outcome (c, ok ? QP__V1__CRITERION_OUTCOME__MET : QP__V1__CRITERION_OUTCOME__NOT_MET,
                       ok ? s_printf ("accompanied by %s", net->name)
                          : strdup ("the holder must be accompanied by a support network"));
        }
    } else
        s_outcome (c, QP__V1__CRITERION_OUTCOME__MET, strdup ("no accompaniment condition"));

    c = s_criterion (ctx, "bank_loan");
    if (!p->has_bank_loan_cents)
        s_missing (c, "project.bank_loan_cents");
    else if (p->has_amount_asked_cents && s_param (ctx, c, "min_bank_loan_pct_of_amount", &v)) {
        s_value (c, s_printf ("project.bank_loan_cents=%lld", (long long) p->bank_loan_cents));
        bool ok = (__int128) p->bank_loan_cents * 100 >= (__int128) p->amount_asked_cents * v;
        rules_format_euros (p->bank_loan_cents, e1, sizeof e1);
        s_outcome (c, ok ? QP__V1__CRITERION_OUTCOME__MET : QP__V1__CRITERION_OUTCOME__NOT_MET,
                   s_printf ("a bank loan of %s is %s %lld %% of the amount asked", e1,
                             ok ? "at least" : "less than", (long long) v));
    } else
        s_outcome (c, QP__V1__CRITERION_OUTCOME__MET, strdup ("no bank loan condition"));

    c = s_criterion (ctx, "bank_loan_terms");
    if (!p->has_bank_loan_months)
        s_missing (c, "project.bank_loan_months");
    else if (!p->has_honour_loan_months)
        s_missing (c, "project.honour_loan_months");
    else if (!p->has_bank_loan_guarantee_pct)
        s_missing (c, "project.bank_loan_guarantee_pct");
    else if (s_param (ctx, c, "max_personal_guarantee_pct", &v)) {
        s_value (c, s_printf ("project.bank_loan_months=%u", p->bank_loan_months));
        s_value (c, s_printf ("project.bank_loan_guarantee_pct=%u", p->bank_loan_guarantee_pct));
        bool long_enough = p->bank_loan_months >= p->honour_loan_months;
        bool guarantee_ok = p->bank_loan_guarantee_pct <= v;
        s_outcome (c,
                   long_enough && guarantee_ok ? QP__V1__CRITERION_OUTCOME__MET
                                               : QP__V1__CRITERION_OUTCOME__NOT_MET,
                   !long_enough ? s_printf ("the bank loan (%u months) is shorter than the honour "
                                            "loan (%u months)",
                                            p->bank_loan_months, p->honour_loan_months)
                   : !guarantee_ok
                       ? s_printf ("a personal guarantee of %u %% exceeds %lld %%",
                                   p->bank_loan_guarantee_pct, (long long) v)
                       : s_printf ("bank loan over %u months ≥ %u months, guarantee %u %% ≤ %lld %%",
                                   p->bank_loan_months, p->honour_loan_months,
                                   p->bank_loan_guarantee_pct, (long long) v));
    }

    c = s_criterion (ctx, "duration");
    if (!p->has_honour_loan_months)
        s_missing (c, "project.honour_loan_months");
    else if (s_param (ctx, c, "min_duration_months", &lo) &&
             s_param (ctx, c, "max_duration_months", &hi) &&
             s_param (ctx, c, "max_deferral_months", &v)) {
        uint32_t deferral = p->has_deferral_months ? p->deferral_months : 0;
        s_value (c, s_printf ("project.honour_loan_months=%u", p->honour_loan_months));
        s_value (c, s_printf ("project.deferral_months=%u", deferral));
        bool ok = p->honour_loan_months >= lo && p->honour_loan_months <= hi && deferral <= v;
        s_outcome (c, ok ? QP__V1__CRITERION_OUTCOME__MET : QP__V1__CRITERION_OUTCOME__NOT_MET,
                   s_printf ("%u months (allowed %lld-%lld), deferral %u months (at most %lld)",
                             p->honour_loan_months, (long long) lo, (long long) hi, deferral,
                             (long long) v));
    }
}

Qp__V1__SchemeDecision *rules_evaluate (const qp_catalogue_t *catalogue, const qp_scheme_t *scheme,
                                        const Qp__V1__Dossier *dossier, int32_t date)
{
    Qp__V1__SchemeDecision *d = malloc (sizeof *d);
    assert (d);
    qp__v1__scheme_decision__init (d);
    d->scheme_id = strdup (scheme->id);
    d->scheme_name = strdup (scheme->name);
    d->has_agency = true;
    d->agency = scheme->agency;
    d->has_outcome = true;
    d->has_amount_cents = true;

    qp_scheme_version_t version;
    ctx_t ctx = {d, &version};
    char day[11];
    qp_date_format (date, day);
    if (!qp_catalogue_version_on (catalogue, scheme, date, &version)) {
        Qp__V1__CriterionResult *c = s_criterion (&ctx, "in_force");
        s_outcome (c, QP__V1__CRITERION_OUTCOME__NOT_MET,
                   s_printf ("no version of %s is in force on %s", scheme->name, day));
        d->outcome = QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME;
        return d;
    }
    d->catalogue_version = strdup (version.version);
    Qp__V1__CriterionResult *c = s_criterion (&ctx, "in_force");
    s_outcome (c, QP__V1__CRITERION_OUTCOME__MET,
               s_printf ("version %s in force on %s (from %s)", version.version, day,
                         version.valid_from));
    if (!strcmp (scheme->rule, "honour_loan"))
        s_honour_loan (&ctx, dossier);
    else {
        c = s_criterion (&ctx, "rule");
        s_outcome (c, QP__V1__CRITERION_OUTCOME__NOT_MET,
                   s_printf ("rule \"%s\" is not known to this version of eligibility",
                             scheme->rule));
    }

    bool missing = false, not_met = false;
    for (size_t i = 0; i < d->n_criteria; i++) {
        missing |= d->criteria[i]->outcome == QP__V1__CRITERION_OUTCOME__MISSING;
        not_met |= d->criteria[i]->outcome == QP__V1__CRITERION_OUTCOME__NOT_MET;
    }
    d->outcome = not_met   ? QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME
                 : missing ? QP__V1__OUTCOME__INFORMATION_MISSING
                           : QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    if (d->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME && dossier->project)
        d->amount_cents = dossier->project->amount_asked_cents;
    return d;
}
