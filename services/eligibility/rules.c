/* The evaluator of the catalogue's declared criteria. Amounts, dates and thresholds come
 * from the scheme's dated parameters; only the meaning of each operator lives here. */
#include "rules.h"
#include "qp_date.h"
#include <stdarg.h>
#include <string.h>

typedef Qp__V1__CriterionOutcome outcome_t;
#define MET QP__V1__CRITERION_OUTCOME__MET
#define NOT_MET QP__V1__CRITERION_OUTCOME__NOT_MET
#define MISSING QP__V1__CRITERION_OUTCOME__MISSING

void rules_format_euros (int64_t cents, char *buf, size_t size)
{
    bool neg = cents < 0;
    uint64_t v = neg ? (uint64_t)(-(cents + 1)) + 1 : (uint64_t)cents;
    char digits[32];
    int n = snprintf (digits, sizeof digits, "%llu", (unsigned long long)(v / 100));
    char grouped[48];
    int g = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            grouped[g++] = ' ';
        grouped[g++] = digits[i];
    }
    grouped[g] = 0;
    snprintf (buf, size, "%s%s,%02u €", neg ? "-" : "", grouped, (unsigned)(v % 100));
}

/* ---- facts -------------------------------------------------------------------------- */

void rules_facts_init (rules_facts_t *facts)
{
    memset (facts, 0, sizeof *facts);
}

void rules_facts_set (rules_facts_t *facts, qp_fact_t fact, rules_truth_t value, const char *detail)
{
    assert (fact < QP_FACT_COUNT);
    facts->facts[fact].value = value;
    if (facts->terse || !detail)
        facts->facts[fact].detail[0] = 0;
    else
        snprintf (facts->facts[fact].detail, sizeof facts->facts[fact].detail, "%s", detail);
}

/* A fact the applicant declares with a bool: true or false "declared, not verified",
 * absent stays unknown (the criterion is "information missing"). */
static void s_declared_bool (rules_facts_t *facts, qp_fact_t fact, bool has, bool value,
                             const char *field)
{
    if (!has)
        return;
    char detail[120] = "";
    if (!facts->terse)
        snprintf (detail, sizeof detail, "declared, not verified (%s)", field);
    rules_facts_set (facts, fact, value ? RULES_TRUE : RULES_FALSE, detail);
}

void rules_facts_declared (rules_facts_t *facts, const Qp__V1__Dossier *dossier)
{
    char detail[120] = "";
    const char *business = dossier->business ? dossier->business->declared_qpv : NULL;
    const char *residence = dossier->holder ? dossier->holder->residence_qpv : NULL;
    bool say = !facts->terse;
    if (business && *business) {
        if (say)
            snprintf (detail, sizeof detail, "declared in QPV %.20s, not verified", business);
        rules_facts_set (facts, QP_FACT_BUSINESS_IN_QPV, RULES_TRUE, detail);
    }
    if (residence && *residence) {
        if (say)
            snprintf (detail, sizeof detail, "declared in QPV %.20s, not verified", residence);
        rules_facts_set (facts, QP_FACT_RESIDENCE_IN_QPV, RULES_TRUE, detail);
    }
    if (dossier->territory && *dossier->territory) {
        if (say)
            snprintf (detail, sizeof detail, "territory %.60s", dossier->territory);
        rules_facts_set (facts, QP_FACT_IN_PROGRAMME_TERRITORY, RULES_TRUE, detail);
    }
    rules_facts_set (facts, QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK, RULES_TRUE,
                     "assumed: earlier PHQ of the person not checked yet");
    /* No source can check these yet: the applicant's word, said as such. */
    const Qp__V1__Business *b = dossier->business;
    if (b) {
        s_declared_bool (facts, QP_FACT_BUSINESS_IN_ZFU_TE, b->has_declared_in_zfu_te,
                         b->declared_in_zfu_te, "business.declared_in_zfu_te");
        s_declared_bool (facts, QP_FACT_ZFU_RESIDENT_EMPLOYEES_HALF,
                         b->has_declared_zfu_resident_employees_half,
                         b->declared_zfu_resident_employees_half,
                         "business.declared_zfu_resident_employees_half");
        s_declared_bool (facts, QP_FACT_INDEPENDENT_SME, b->has_declared_independent_sme,
                         b->declared_independent_sme, "business.declared_independent_sme");
        s_declared_bool (facts, QP_FACT_PREMISES_IN_NPNRU_PROJECT,
                         b->has_declared_premises_in_npnru, b->declared_premises_in_npnru,
                         "business.declared_premises_in_npnru");
    }
    const Qp__V1__ProjectHolder *h = dossier->holder;
    if (h && h->has_declared_target_group && h->declared_target_group) {
        const ProtobufCEnumValue *g = protobuf_c_enum_descriptor_get_value (
            &qp__v1__target_group__descriptor, h->declared_target_group);
        if (g) { /* intake refuses an unknown group; unknown stays unknown */
            bool none = h->declared_target_group == QP__V1__TARGET_GROUP__NO_TARGET_GROUP;
            if (say)
                snprintf (detail, sizeof detail,
                          "declared, not verified (holder.declared_target_group %s)", g->name);
            rules_facts_set (facts, QP_FACT_HOLDER_IN_TARGET_GROUP, none ? RULES_FALSE : RULES_TRUE,
                             detail);
        }
    }
}

/* ---- reading the dossier -------------------------------------------------------------- */

typedef enum { V_INT, V_BOOL, V_STRING, V_DOUBLE } value_kind_t;

typedef struct {
    value_kind_t kind;
    int64_t i;
    double d;
    const char *s; /* strings and enum names */
} value_t;

/* The value at path, or false when it (or a message on the way) is absent. An enum's
 * zero value (*_UNSPECIFIED) and an empty string count as absent. */
static bool s_read (const Qp__V1__Dossier *dossier, const qp_field_path_t *path, value_t *out)
{
    const char *m = (const char *)dossier;
    for (int i = 0; i + 1 < path->depth; i++) {
        m = *(const char *const *)(m + path->steps[i]->offset);
        if (!m)
            return false;
    }
    const ProtobufCFieldDescriptor *f = path->steps[path->depth - 1];
    const void *p = m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)p;
        if (!s || !*s)
            return false;
        *out = (value_t){.kind = V_STRING, .s = s};
        return true;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        !*(const protobuf_c_boolean *)(m + f->quantifier_offset))
        return false;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
        *out = (value_t){.kind = V_INT, .i = *(const int32_t *)p};
        return true;
    case PROTOBUF_C_TYPE_UINT32:
        *out = (value_t){.kind = V_INT, .i = *(const uint32_t *)p};
        return true;
    case PROTOBUF_C_TYPE_INT64:
        *out = (value_t){.kind = V_INT, .i = *(const int64_t *)p};
        return true;
    case PROTOBUF_C_TYPE_UINT64:
        *out = (value_t){.kind = V_INT, .i = (int64_t) * (const uint64_t *)p};
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        *out = (value_t){.kind = V_BOOL, .i = *(const protobuf_c_boolean *)p ? 1 : 0};
        return true;
    case PROTOBUF_C_TYPE_DOUBLE:
        *out = (value_t){.kind = V_DOUBLE, .d = *(const double *)p};
        return true;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value (f->descriptor, v);
        if (v == 0 || !ev)
            return false;
        *out = (value_t){.kind = V_STRING, .i = v, .s = ev->name};
        return true;
    }
    default:
        return false;
    }
}

static bool s_is_money (const qp_field_path_t *path)
{
    size_t n = strlen (path->text);
    return n > 6 && !strcmp (path->text + n - 6, "_cents");
}

/* A value as people read it: money in euros, the rest as is. */
static void s_show (const qp_field_path_t *path, const value_t *v, char *buf, size_t size)
{
    switch (v->kind) {
    case V_INT:
        if (s_is_money (path))
            rules_format_euros (v->i, buf, size);
        else
            snprintf (buf, size, "%lld", (long long)v->i);
        break;
    case V_BOOL:
        snprintf (buf, size, "%s", v->i ? "true" : "false");
        break;
    case V_DOUBLE:
        snprintf (buf, size, "%g", v->d);
        break;
    case V_STRING:
        snprintf (buf, size, "%s", v->s);
        break;
    }
}

/* ---- evaluation context ---------------------------------------------------------------- */

typedef struct {
    const qp_scheme_t *scheme;
    const Qp__V1__Dossier *dossier;
    int32_t date;
    const rules_facts_t *facts;
    Qp__V1__CriterionResult *c; /* where values and parameters read are recorded */
    int32_t latest;             /* latest parameter date applied */
    bool explain;               /* false: outcomes only, no text built (the decision path) */
} ctx_t;

/* The result of one (possibly nested) criterion. */
typedef struct {
    outcome_t outcome;
    char reason[512];
    const char *missing; /* field path or "fact:NAME", owned by the catalogue */
} result_t;

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

/* The outcome, and the reason only when explaining: the decision path builds no text. */
static void s_set (const ctx_t *ctx, result_t *r, outcome_t outcome, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
static void s_set (const ctx_t *ctx, result_t *r, outcome_t outcome, const char *fmt, ...)
{
    r->outcome = outcome;
    if (!ctx->explain)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (r->reason, sizeof r->reason, fmt, ap);
    va_end (ap);
}

static void s_value (ctx_t *ctx, const qp_field_path_t *path, const value_t *v)
{
    if (!ctx->explain)
        return;
    Qp__V1__CriterionResult *c = ctx->c;
    char shown[64];
    s_show (path, v, shown, sizeof shown);
    char *text = v->kind == V_INT && s_is_money (path)
                     ? s_printf ("%s=%lld", path->text, (long long)v->i)
                     : s_printf ("%s=%s", path->text, shown);
    for (size_t i = 0; i < c->n_values; i++)
        if (!strcmp (c->values[i], text)) {
            free (text);
            return;
        }
    c->values = realloc (c->values, (c->n_values + 1) * sizeof *c->values);
    assert (c->values);
    c->values[c->n_values++] = text;
}

/* Reads a field, recording it; false (and r MISSING naming the field) when absent. */
static bool s_field (ctx_t *ctx, const qp_field_path_t *path, value_t *v, result_t *r)
{
    if (!s_read (ctx->dossier, path, v)) {
        s_set (ctx, r, MISSING, "%s is not given", path->text);
        r->missing = path->text;
        return false;
    }
    s_value (ctx, path, v);
    return true;
}

/* The criterion's own field: an absent one takes the criterion's if_absent value when it
 * declares one (an absent deferral is no deferral), else it is MISSING. */
static bool s_main (ctx_t *ctx, const qp_criterion_t *c, value_t *v, result_t *r)
{
    const json_t *d = c->if_absent;
    if (!d || s_read (ctx->dossier, &c->field, v))
        return s_field (ctx, &c->field, v, r);
    if (json_is_integer (d))
        *v = (value_t){.kind = V_INT, .i = json_integer_value (d)};
    else if (json_is_boolean (d))
        *v = (value_t){.kind = V_BOOL, .i = json_is_true (d)};
    else
        *v = (value_t){.kind = V_STRING, .s = json_string_value (d)};
    if (!ctx->explain)
        return true;
    char shown[64];
    s_show (&c->field, v, shown, sizeof shown);
    Qp__V1__CriterionResult *cr = ctx->c;
    cr->values = realloc (cr->values, (cr->n_values + 1) * sizeof *cr->values);
    assert (cr->values);
    cr->values[cr->n_values++] =
        s_printf ("%s=%s (not given: taken as %s)", c->field.text, shown, shown);
    return true;
}

static void s_param_used (ctx_t *ctx, const qp_param_value_t *pv)
{
    if (!ctx->explain)
        return;
    Qp__V1__CriterionResult *c = ctx->c;
    for (size_t i = 0; i < c->n_parameters; i++)
        if (!strcmp (c->parameters[i]->name, pv->name))
            return;
    c->parameters = realloc (c->parameters, (c->n_parameters + 1) * sizeof *c->parameters);
    assert (c->parameters);
    Qp__V1__ParameterUsed *p = malloc (sizeof *p);
    assert (p);
    qp__v1__parameter_used__init (p);
    p->name = strdup (pv->name);
    p->value = pv->value ? json_dumps (pv->value, JSON_ENCODE_ANY | JSON_COMPACT) : strdup ("null");
    assert (p->value);
    p->valid_from = strdup (pv->valid_from);
    p->source = pv->status ? s_printf ("%s [%s]", pv->source ? pv->source : "", pv->status)
                           : strdup (pv->source ? pv->source : "");
    c->parameters[c->n_parameters++] = p;
    int32_t day;
    if (qp_date_parse (pv->valid_from, &day) && day > ctx->latest)
        ctx->latest = day;
}

/* An operand's value on the dossier's date; NULL (r NOT_MET) when its parameter is not
 * in force then. */
static const json_t *s_operand (ctx_t *ctx, const qp_operand_t *o, result_t *r)
{
    if (!o->param)
        return o->literal;
    qp_param_value_t pv;
    char day[11];
    if (!qp_catalogue_operand_on (ctx->scheme, o, ctx->date, &pv) || !pv.value) {
        qp_date_format (ctx->date, day);
        s_set (ctx, r, NOT_MET, "parameter %s is not in force on %s", o->param, day);
        return NULL;
    }
    s_param_used (ctx, &pv);
    return pv.value;
}

/* An integer, or a date as days when the field is a date string. */
static bool s_ordinal (const json_t *j, bool date, int64_t *out)
{
    int32_t day;
    if (date) {
        if (!qp_date_parse (json_string_value (j), &day))
            return false;
        *out = day;
        return true;
    }
    *out = json_integer_value (j);
    return true;
}

static void s_show_ordinal (const qp_field_path_t *path, bool date, int64_t v, char *buf,
                            size_t size)
{
    if (date)
        qp_date_format ((int32_t)v, buf);
    else if (s_is_money (path))
        rules_format_euros (v, buf, size);
    else
        snprintf (buf, size, "%lld", (long long)v);
}

/* s_show and s_show_ordinal when explaining; nothing on the decision path. */
static void s_shown (const ctx_t *ctx, const qp_field_path_t *path, const value_t *v, char *buf,
                     size_t size)
{
    if (ctx->explain)
        s_show (path, v, buf, size);
    else
        buf[0] = 0;
}

static void s_shown_ordinal (const ctx_t *ctx, const qp_field_path_t *path, bool date, int64_t v,
                             char *buf, size_t size)
{
    if (ctx->explain)
        s_show_ordinal (path, date, v, buf, size);
    else
        buf[0] = 0;
}

/* Days since epoch plus n calendar months (the day clamped to the month's end). */
static int32_t s_add_months (int32_t day, int64_t n)
{
    int y, m, d;
    qp_date_to_civil (day, &y, &m, &d);
    int64_t months = (int64_t)y * 12 + (m - 1) + n;
    y = (int)(months / 12);
    m = (int)(months % 12) + 1;
    static const int len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int last = len[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    return qp_date_from_civil (y, m, d > last ? last : d);
}

/* NAF codes compare without dots or spaces: "47.11B" = "4711B". */
static void s_normalise (const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (; *in && n + 1 < size; in++)
        if (*in != '.' && *in != ' ')
            out[n++] = (char)(*in >= 'a' && *in <= 'z' ? *in - 32 : *in);
    out[n] = 0;
}

/* Appends to buf, cutting what does not fit. */
static void s_append (char *buf, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static void s_append (char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen (buf);
    va_list ap;
    va_start (ap, fmt);
    if (len + 1 < size)
        vsnprintf (buf + len, size - len, fmt, ap);
    va_end (ap);
}

static const char *s_outcome_name (outcome_t o)
{
    return o == MET ? "met" : o == NOT_MET ? "not met" : "missing";
}

static void s_eval (ctx_t *ctx, const qp_criterion_t *c, result_t *r);

static void s_eval_list (ctx_t *ctx, const qp_criterion_t *c, result_t *r)
{
    bool any = c->op == QP_OP_ANY_OF;
    int met = 0, not_met = 0, missing = 0;
    char reasons[512] = "";
    r->missing = NULL;
    for (size_t i = 0; i < c->n_children; i++) {
        result_t child;
        child.reason[0] = 0, child.missing = NULL;
        s_eval (ctx, &c->children[i], &child);
        met += child.outcome == MET;
        not_met += child.outcome == NOT_MET;
        if (child.outcome == MISSING && !missing++)
            r->missing = child.missing;
        if (ctx->explain)
            s_append (reasons, sizeof reasons, "%s%s: %s (%s)", i ? "; " : "", c->children[i].id,
                      s_outcome_name (child.outcome), child.reason);
    }
    outcome_t o = any ? (met       ? MET
                         : missing ? MISSING
                                   : NOT_MET)
                      : (not_met   ? NOT_MET
                         : missing ? MISSING
                                   : MET);
    s_set (ctx, r, o, "%s: %.480s", any ? "any of" : "all of", reasons);
}

static void s_eval (ctx_t *ctx, const qp_criterion_t *c, result_t *r)
{
    value_t a, b;
    char x1[64], x2[64], x3[64];
    const json_t *lo, *hi, *j;
    int64_t ilo = 0, ihi = 0, iv;
    switch (c->op) {
    case QP_OP_PRESENT:
        if (s_main (ctx, c, &a, r)) {
            s_shown (ctx, &c->field, &a, x1, sizeof x1);
            s_set (ctx, r, MET, "%s is given (%s)", c->field.text, x1);
        }
        return;
    case QP_OP_BETWEEN:
    case QP_OP_LTE:
    case QP_OP_GTE: {
        if (!s_main (ctx, c, &a, r))
            return;
        bool date = a.kind == V_STRING;
        if (date) {
            int32_t day;
            if (!qp_date_parse (a.s, &day)) {
                s_set (ctx, r, NOT_MET, "%s \"%s\" is not a date YYYY-MM-DD", c->field.text, a.s);
                return;
            }
            iv = day;
        } else
            iv = a.i;
        lo = c->op == QP_OP_LTE ? NULL : s_operand (ctx, &c->min, r);
        if (c->op != QP_OP_LTE && !lo)
            return;
        hi = c->op == QP_OP_GTE ? NULL : s_operand (ctx, &c->max, r);
        if (c->op != QP_OP_GTE && !hi)
            return;
        if ((lo && !s_ordinal (lo, date, &ilo)) || (hi && !s_ordinal (hi, date, &ihi))) {
            s_set (ctx, r, NOT_MET, "a bound of %s is not of the field's type", c->field.text);
            return;
        }
        s_shown_ordinal (ctx, &c->field, date, iv, x1, sizeof x1);
        if (lo && iv < ilo) {
            s_shown_ordinal (ctx, &c->field, date, ilo, x2, sizeof x2);
            s_set (ctx, r, NOT_MET, "%s %s < minimum %s", c->field.text, x1, x2);
        } else if (hi && iv > ihi) {
            s_shown_ordinal (ctx, &c->field, date, ihi, x2, sizeof x2);
            s_set (ctx, r, NOT_MET, "%s %s > maximum %s", c->field.text, x1, x2);
        } else if (lo && hi) {
            s_shown_ordinal (ctx, &c->field, date, ilo, x2, sizeof x2);
            s_shown_ordinal (ctx, &c->field, date, ihi, x3, sizeof x3);
            s_set (ctx, r, MET, "%s %s within %s – %s", c->field.text, x1, x2, x3);
        } else {
            s_shown_ordinal (ctx, &c->field, date, lo ? ilo : ihi, x2, sizeof x2);
            s_set (ctx, r, MET, "%s %s %s %s", c->field.text, x1, lo ? "≥ minimum" : "≤ maximum",
                   x2);
        }
        return;
    }
    case QP_OP_EQ: {
        if (!s_main (ctx, c, &a, r) || !(j = s_operand (ctx, &c->value, r)))
            return;
        bool ok = a.kind == V_STRING ? json_is_string (j) && !strcmp (a.s, json_string_value (j))
                  : a.kind == V_BOOL ? json_is_boolean (j) && (a.i != 0) == json_is_true (j)
                  : a.kind == V_INT  ? json_is_integer (j) && a.i == json_integer_value (j)
                                     : false;
        char *want = ctx->explain ? json_dumps (j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        s_shown (ctx, &c->field, &a, x1, sizeof x1);
        s_set (ctx, r, ok ? MET : NOT_MET, "%s is %s%s %s", c->field.text, x1, ok ? "," : ", not",
               want ? want : "?");
        free (want);
        return;
    }
    case QP_OP_IN:
    case QP_OP_NOT_IN:
    case QP_OP_PREFIX_IN: {
        if (!s_main (ctx, c, &a, r) || !(j = s_operand (ctx, &c->values, r)))
            return;
        char have[64], want[64];
        s_normalise (a.s, have, sizeof have);
        const char *hit = NULL;
        size_t i;
        const json_t *s;
        json_array_foreach (j, i, s)
        {
            if (c->op == QP_OP_PREFIX_IN) {
                s_normalise (json_string_value (s), want, sizeof want);
                if (!strncmp (have, want, strlen (want)))
                    hit = json_string_value (s);
            } else if (!strcmp (a.s, json_string_value (s)))
                hit = json_string_value (s);
            if (hit)
                break;
        }
        bool ok = c->op == QP_OP_NOT_IN ? !hit : hit != NULL;
        if (c->op == QP_OP_PREFIX_IN && hit)
            s_set (ctx, r, MET, "%s %s starts with %s", c->field.text, a.s, hit);
        else if (c->op == QP_OP_PREFIX_IN)
            s_set (ctx, r, NOT_MET, "%s %s starts with none of the %zu prefixes listed",
                   c->field.text, a.s, json_array_size (j));
        else
            s_set (ctx, r, ok ? MET : NOT_MET, "%s %s is %s the %zu values listed", c->field.text,
                   a.s, hit ? "among" : "not among", json_array_size (j));
        return;
    }
    case QP_OP_RATIO_LTE:
    case QP_OP_RATIO_GTE: {
        bool fraction = c->ratio.param || c->ratio.literal;
        if (!s_main (ctx, c, &a, r) || !s_field (ctx, &c->other, &b, r) ||
            !(j = s_operand (ctx, fraction ? &c->ratio : &c->pct, r)))
            return;
        /* a ≤ b × num / den, exactly: a × den ≤ b × num in integers (2/3 is not 66 %). */
        int64_t num = fraction ? json_integer_value (json_object_get (j, "numerator"))
                               : json_integer_value (j);
        int64_t den = fraction ? json_integer_value (json_object_get (j, "denominator")) : 100;
        __int128 left = (__int128)a.i * den, right = (__int128)b.i * num;
        bool ok = c->op == QP_OP_RATIO_LTE ? left <= right : left >= right;
        s_shown (ctx, &c->field, &a, x1, sizeof x1);
        s_shown (ctx, &c->other, &b, x2, sizeof x2);
        const char *how = c->op == QP_OP_RATIO_LTE ? (ok ? "within" : "more than")
                                                   : (ok ? "at least" : "less than");
        if (fraction)
            s_set (ctx, r, ok ? MET : NOT_MET, "%s %s is %s %lld/%lld of %s %s", c->field.text, x1,
                   how, (long long)num, (long long)den, c->other.text, x2);
        else
            s_set (ctx, r, ok ? MET : NOT_MET, "%s %s is %s %lld %% of %s %s", c->field.text, x1,
                   how, (long long)num, c->other.text, x2);
        return;
    }
    case QP_OP_FIELD_GTE_FIELD: {
        if (!s_main (ctx, c, &a, r) || !s_field (ctx, &c->other, &b, r))
            return;
        s_shown (ctx, &c->field, &a, x1, sizeof x1);
        s_shown (ctx, &c->other, &b, x2, sizeof x2);
        bool ok = a.i >= b.i;
        s_set (ctx, r, ok ? MET : NOT_MET, "%s %s %s %s %s", c->field.text, x1, ok ? "≥" : "<",
               c->other.text, x2);
        return;
    }
    case QP_OP_MONTHS_BETWEEN_LTE: {
        if (!s_main (ctx, c, &a, r) || !s_field (ctx, &c->other, &b, r) ||
            !(j = s_operand (ctx, &c->max, r)))
            return;
        int32_t from, to;
        if (!qp_date_parse (a.s, &from) || !qp_date_parse (b.s, &to)) {
            s_set (ctx, r, NOT_MET, "%s or %s is not a date YYYY-MM-DD", c->field.text,
                   c->other.text);
            return;
        }
        int64_t n = json_integer_value (j);
        bool ok = to <= s_add_months (from, n);
        s_set (ctx, r, ok ? MET : NOT_MET, "%s %s is %s %lld months before %s %s", c->field.text,
               a.s, ok ? "within" : "more than", (long long)n, c->other.text, b.s);
        return;
    }
    case QP_OP_YEAR_AGE_BETWEEN: {
        if (!s_main (ctx, c, &a, r) || !(lo = s_operand (ctx, &c->min, r)) ||
            !(hi = s_operand (ctx, &c->max, r)))
            return;
        int y, m, d;
        qp_date_to_civil (ctx->date, &y, &m, &d);
        int64_t age = y - a.i;
        bool ok = age >= json_integer_value (lo) && age <= json_integer_value (hi);
        s_set (ctx, r, ok ? MET : NOT_MET, "%lld years old in %d (%s %lld), %s %lld–%lld",
               (long long)age, y, c->field.text, (long long)a.i, ok ? "within" : "outside",
               (long long)json_integer_value (lo), (long long)json_integer_value (hi));
        return;
    }
    case QP_OP_FACT: {
        const rules_fact_value_t *f = ctx->facts ? &ctx->facts->facts[c->fact] : NULL;
        const char *name = qp_fact_name (c->fact);
        if (!f || f->value == RULES_UNKNOWN) {
            r->missing = qp_fact_field (c->fact);
            s_set (ctx, r, MISSING, "%s is not known%s%s", name, f && *f->detail ? ": " : "",
                   f ? f->detail : "");
            return;
        }
        if (ctx->explain) {
            char *v = s_printf ("fact:%s=%s", name, f->value == RULES_TRUE ? "true" : "false");
            Qp__V1__CriterionResult *cr = ctx->c;
            cr->values = realloc (cr->values, (cr->n_values + 1) * sizeof *cr->values);
            assert (cr->values);
            cr->values[cr->n_values++] = v;
        }
        s_set (ctx, r, f->value == RULES_TRUE ? MET : NOT_MET, "%s is %s%s%s", name,
               f->value == RULES_TRUE ? "true" : "false", *f->detail ? ": " : "", f->detail);
        return;
    }
    case QP_OP_ANY_OF:
    case QP_OP_ALL_OF:
        s_eval_list (ctx, c, r);
        return;
    }
}

/* ---- a scheme ---------------------------------------------------------------------------- */

static Qp__V1__CriterionResult *s_criterion (Qp__V1__SchemeDecision *d, const char *id)
{
    d->criteria = realloc (d->criteria, (d->n_criteria + 1) * sizeof *d->criteria);
    assert (d->criteria);
    Qp__V1__CriterionResult *c = malloc (sizeof *c);
    assert (c);
    qp__v1__criterion_result__init (c);
    c->criterion = strdup (id);
    c->has_outcome = true;
    d->criteria[d->n_criteria++] = c;
    return c;
}

/* The aid amount of an eligible dossier, explained as one more criterion line. */
static int64_t s_amount (ctx_t *ctx, Qp__V1__SchemeDecision *d)
{
    const qp_amount_rule_t *rule = ctx->scheme->amount;
    if (!rule || rule->op == QP_AMOUNT_NONE)
        return 0;
    if (ctx->explain) {
        ctx->c = s_criterion (d, "computed_amount");
        ctx->c->outcome = MET;
    }
    result_t r;
    r.reason[0] = 0;
    value_t v;
    if (!s_field (ctx, &rule->field, &v, &r)) {
        if (ctx->explain)
            ctx->c->reason = s_printf ("no amount: %s", r.reason);
        return 0;
    }
    int64_t amount = v.i, pct = 100;
    if (rule->op == QP_AMOUNT_PCT_OF) {
        const json_t *j = s_operand (ctx, &rule->pct, &r);
        pct = j ? json_integer_value (j) : 0;
        amount = (int64_t)((__int128)v.i * pct / 100);
    }
    const json_t *cap =
        rule->cap.param || rule->cap.literal ? s_operand (ctx, &rule->cap, &r) : NULL;
    bool capped = cap && amount > json_integer_value (cap);
    if (capped)
        amount = json_integer_value (cap);
    if (!ctx->explain)
        return amount;
    char e1[40], e2[40];
    rules_format_euros (amount, e1, sizeof e1);
    rules_format_euros (v.i, e2, sizeof e2);
    ctx->c->reason =
        rule->op == QP_AMOUNT_PCT_OF
            ? s_printf ("%s = %lld %% of %s %s%s", e1, (long long)pct, rule->field.text, e2,
                        capped ? ", capped" : "")
            : s_printf ("%s = %s %s%s", e1, rule->field.text, e2, capped ? ", capped" : "");
    return amount;
}

static Qp__V1__SchemeDecision *s_evaluate (const qp_scheme_t *scheme,
                                           const Qp__V1__Dossier *dossier, int32_t date,
                                           const rules_facts_t *facts, bool explain)
{
    Qp__V1__SchemeDecision *d = malloc (sizeof *d);
    assert (d);
    qp__v1__scheme_decision__init (d);
    d->scheme_id = strdup (scheme->id);
    if (explain)
        d->scheme_name = strdup (scheme->name);
    d->has_agency = true;
    d->agency = scheme->agency;
    d->has_outcome = true;
    d->has_amount_cents = explain;

    ctx_t ctx = {scheme, dossier, date, facts, NULL, INT32_MIN, explain};
    qp_param_value_t in_force;
    bool on = qp_catalogue_in_force (scheme, date, &in_force);
    if (explain) {
        char day[11];
        qp_date_format (date, day);
        ctx.c = s_criterion (d, "in_force");
        if (in_force.name)
            s_param_used (&ctx, &in_force);
        ctx.c->outcome = on ? MET : NOT_MET;
        ctx.c->reason = on ? s_printf ("%s is in force on %s (since %s)", scheme->name, day,
                                       in_force.valid_from)
                           : s_printf ("%s is not in force on %s", scheme->name, day);
    }
    if (!on) {
        d->outcome = QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME;
        d->catalogue_version = strdup (scheme->version);
        return d;
    }
    bool missing = false, not_met = false;
    for (size_t i = 0; i < scheme->n_criteria; i++) {
        const qp_criterion_t *c = &scheme->criteria[i];
        if (explain)
            ctx.c = s_criterion (d, c->id);
        result_t r;
        r.reason[0] = 0, r.missing = NULL;
        s_eval (&ctx, c, &r);
        if (explain) {
            ctx.c->outcome = r.outcome;
            ctx.c->reason = strdup (r.reason);
            if (r.outcome == MISSING)
                ctx.c->missing_field = strdup (r.missing ? r.missing : "");
        } else if (r.outcome != MET) {
            /* Compact: a bit per criterion (the catalogue holds at most 32 per scheme). */
            uint32_t bit = 1u << i;
            if (r.outcome == MISSING)
                d->criteria_missing |= bit, d->has_criteria_missing = true;
            else
                d->criteria_not_met |= bit, d->has_criteria_not_met = true;
        }
        missing |= r.outcome == MISSING;
        not_met |= r.outcome == NOT_MET;
    }
    d->outcome = not_met   ? QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME
                 : missing ? QP__V1__OUTCOME__INFORMATION_MISSING
                           : QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    if (d->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME) {
        d->amount_cents = s_amount (&ctx, d);
        d->has_amount_cents = true;
    }
    if (!explain) {
        d->catalogue_version = strdup (scheme->version);
        return d;
    }
    /* Explained: the version and the latest dated value the decision applied. */
    char latest[11];
    qp_date_format (ctx.latest, latest);
    d->catalogue_version = s_printf ("%s@%s", scheme->version, latest);
    return d;
}

Qp__V1__SchemeDecision *rules_evaluate (const qp_scheme_t *scheme, const Qp__V1__Dossier *dossier,
                                        int32_t date, const rules_facts_t *facts)
{
    return s_evaluate (scheme, dossier, date, facts, true);
}

Qp__V1__SchemeDecision *rules_decide (const qp_scheme_t *scheme, const Qp__V1__Dossier *dossier,
                                      int32_t date, const rules_facts_t *facts)
{
    return s_evaluate (scheme, dossier, date, facts, false);
}

Qp__V1__CriterionOutcome rules_compact_outcome (const qp_scheme_t *scheme,
                                                const Qp__V1__SchemeDecision *d, const char *id)
{
    for (size_t i = 0; i < scheme->n_criteria && i < 32; i++)
        if (!strcmp (scheme->criteria[i].id, id))
            return d->criteria_missing & (1u << i)   ? MISSING
                   : d->criteria_not_met & (1u << i) ? NOT_MET
                                                     : MET;
    return QP__V1__CRITERION_OUTCOME__CRITERION_UNSPECIFIED;
}
