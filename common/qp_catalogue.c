/* Catalogue loader: checks every file fully (and compiles its criteria against the Dossier
 * descriptor) before the service uses any of it. Errors name the file, the JSON path (or
 * the line, for syntax errors) and the reason. */
#include "qp_catalogue.h"
#include "qp_date.h"
#include <dirent.h>
#include <stdarg.h>
#include <string.h>

typedef struct {
    int32_t from;
    qp_param_value_t v;
} dated_t;

typedef struct {
    const char *name;
    dated_t *values;
    size_t n;
} param_t;

typedef struct {
    qp_scheme_t scheme; /* first: a scheme pointer is its entry */
    json_t *doc;        /* owns every string the scheme points into */
    json_t *texts;      /* source id -> readable reference */
    param_t *params;
    size_t n_params;
    qp_criterion_t *criteria;
    size_t n_criteria;
    qp_amount_rule_t amount;
} entry_t;

struct qp_catalogue {
    entry_t **entries;
    size_t n;
};

/* Loading context: where we are, for error messages. */
typedef struct {
    const char *file;
    qp_error_t *err;
    entry_t *e;
} ld_t;

static const char *const s_fact_names[QP_FACT_COUNT] = {"business_in_qpv",
                                                        "residence_in_qpv",
                                                        "in_programme_territory",
                                                        "first_phq_for_person_network",
                                                        "business_in_zfu_te",
                                                        "holder_in_target_group",
                                                        "zfu_resident_employees_half",
                                                        "premises_in_npnru_project",
                                                        "independent_sme"};

/* What a MISSING fact criterion names as its missing field. */
static const char *const s_fact_fields[QP_FACT_COUNT] = {"fact:business_in_qpv",
                                                         "fact:residence_in_qpv",
                                                         "fact:in_programme_territory",
                                                         "fact:first_phq_for_person_network",
                                                         "fact:business_in_zfu_te",
                                                         "fact:holder_in_target_group",
                                                         "fact:zfu_resident_employees_half",
                                                         "fact:premises_in_npnru_project",
                                                         "fact:independent_sme"};

static const char *const s_op_names[] = {"present",
                                         "between",
                                         "lte",
                                         "gte",
                                         "eq",
                                         "in",
                                         "not_in",
                                         "prefix_in",
                                         "ratio_lte",
                                         "ratio_gte",
                                         "field_gte_field",
                                         "months_between_lte",
                                         "year_age_between",
                                         "fact",
                                         "any_of",
                                         "all_of"};

static const char *const s_kind_names[] = {"loan",          "honour_loan", "guarantee",  "grant",
                                           "tax_exemption", "equity",      "engineering"};

static const char *const s_beneficiary_names[] = {"person", "business", "local_authority",
                                                  "property_company"};

const char *qp_fact_name (qp_fact_t fact)
{
    return fact < QP_FACT_COUNT ? s_fact_names[fact] : "?";
}

const char *qp_fact_field (qp_fact_t fact)
{
    return fact < QP_FACT_COUNT ? s_fact_fields[fact] : "fact:?";
}

bool qp_fact_lookup (const char *name, qp_fact_t *fact)
{
    for (int i = 0; name && i < QP_FACT_COUNT; i++)
        if (!strcmp (name, s_fact_names[i])) {
            *fact = (qp_fact_t)i;
            return true;
        }
    return false;
}

const char *qp_op_name (qp_op_t op)
{
    return (size_t)op < sizeof s_op_names / sizeof *s_op_names ? s_op_names[op] : "?";
}

const char *qp_scheme_kind_name (qp_scheme_kind_t kind)
{
    return (size_t)kind < sizeof s_kind_names / sizeof *s_kind_names ? s_kind_names[kind] : "?";
}

static int s_fail (ld_t *ld, const char *where, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static int s_fail (ld_t *ld, const char *where, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, sizeof why, fmt, ap);
    va_end (ap);
    qp_error_set (ld->err, "bad_catalogue", where, "%s: %s: %s", ld->file, where, why);
    return -1;
}

static int s_index_of (const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (!strcmp (names[i], name))
            return (int)i;
    return -1;
}

static const param_t *s_param (const entry_t *e, const char *name)
{
    for (size_t i = 0; i < e->n_params; i++)
        if (!strcmp (e->params[i].name, name))
            return &e->params[i];
    return NULL;
}

/* ---- field paths ----------------------------------------------------------------- */

static bool s_scalar_type (ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT32 || t == PROTOBUF_C_TYPE_UINT32 ||
           t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_UINT64 || t == PROTOBUF_C_TYPE_BOOL ||
           t == PROTOBUF_C_TYPE_STRING || t == PROTOBUF_C_TYPE_ENUM || t == PROTOBUF_C_TYPE_DOUBLE;
}

static int s_path (ld_t *ld, const char *where, const json_t *j, qp_field_path_t *out)
{
    const char *text = json_string_value (j);
    if (!text)
        return s_fail (ld, where,
                       "must be a field path string such as \"project.amount_asked_cents\"");
    const ProtobufCMessageDescriptor *desc = &qp__v1__dossier__descriptor;
    char seg[64];
    const char *p = text;
    out->text = text;
    out->depth = 0;
    while (true) {
        const char *dot = strchr (p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen (p);
        if (len == 0 || len >= sizeof seg || out->depth == QP_PATH_MAX)
            return s_fail (ld, where, "\"%s\" is not a field path of qp.v1.Dossier", text);
        memcpy (seg, p, len);
        seg[len] = 0;
        const ProtobufCFieldDescriptor *f =
            desc ? protobuf_c_message_descriptor_get_field_by_name (desc, seg) : NULL;
        if (!f)
            return s_fail (ld, where, "\"%s\": qp.v1.Dossier has no field \"%s\" there", text, seg);
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            return s_fail (ld, where, "\"%s\": \"%s\" is repeated", text, seg);
        out->steps[out->depth++] = f;
        if (!dot) {
            if (!s_scalar_type (f->type))
                return s_fail (ld, where, "\"%s\" is a message, not a value", text);
            return 0;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            return s_fail (ld, where, "\"%s\": \"%s\" is a value, not a message", text, seg);
        desc = f->descriptor;
        p = dot + 1;
    }
}

static const ProtobufCFieldDescriptor *s_leaf (const qp_field_path_t *path)
{
    return path->depth ? path->steps[path->depth - 1] : NULL;
}

static bool s_numeric (ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT32 || t == PROTOBUF_C_TYPE_UINT32 ||
           t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_UINT64;
}

/* ---- operands ---------------------------------------------------------------------- */

typedef enum { T_ORDERED, T_STRING_LIST, T_INTEGER, T_SCALAR, T_RATIO } operand_type_t;

/* Checks one value against what the criterion needs of it: an integer (or a date when the
 * field is a date string), a list of strings (enum names when the field is an enum), or
 * any scalar of the field's type. */
static int s_check_value (ld_t *ld, const char *where, const json_t *v, operand_type_t t,
                          const ProtobufCFieldDescriptor *field)
{
    bool date_field = field && field->type == PROTOBUF_C_TYPE_STRING;
    const ProtobufCEnumDescriptor *en =
        field && field->type == PROTOBUF_C_TYPE_ENUM ? field->descriptor : NULL;
    int32_t day;
    switch (t) {
    case T_INTEGER:
        if (!json_is_integer (v))
            return s_fail (ld, where, "must be an integer");
        return 0;
    case T_RATIO: {
        /* An exact fraction: 2/3 is not 66 %. */
        const json_t *num = json_object_get (v, "numerator");
        const json_t *den = json_object_get (v, "denominator");
        if (!json_is_object (v) || json_object_size (v) != 2 || !json_is_integer (num) ||
            !json_is_integer (den))
            return s_fail (ld, where, "must be {\"numerator\": integer, \"denominator\": integer}");
        if (json_integer_value (num) < 0 || json_integer_value (den) <= 0 ||
            json_integer_value (num) > 1000000 || json_integer_value (den) > 1000000)
            return s_fail (ld, where,
                           "numerator must be 0 to 1000000 and denominator 1 to 1000000");
        return 0;
    }
    case T_ORDERED:
        if (date_field) {
            if (!json_is_string (v) || !qp_date_parse (json_string_value (v), &day))
                return s_fail (ld, where, "must be a date YYYY-MM-DD (the field %s is a date)",
                               field->name);
        } else if (!json_is_integer (v))
            return s_fail (ld, where, "must be an integer");
        return 0;
    case T_STRING_LIST: {
        size_t i;
        const json_t *s;
        if (!json_is_array (v) || json_array_size (v) == 0)
            return s_fail (ld, where, "must be a non-empty list of strings");
        json_array_foreach (v, i, s)
        {
            if (!json_is_string (s))
                return s_fail (ld, where, "[%zu] must be a string", i);
            if (en && !protobuf_c_enum_descriptor_get_value_by_name (en, json_string_value (s)))
                return s_fail (ld, where, "[%zu]: \"%s\" is not a value of %s", i,
                               json_string_value (s), en->name);
        }
        return 0;
    }
    case T_SCALAR:
        if (!field)
            return 0;
        if (field->type == PROTOBUF_C_TYPE_BOOL ? !json_is_boolean (v)
            : s_numeric (field->type)           ? !json_is_integer (v)
                                                : !json_is_string (v))
            return s_fail (ld, where, "has the wrong type for the field %s", field->name);
        if (en && !protobuf_c_enum_descriptor_get_value_by_name (en, json_string_value (v)))
            return s_fail (ld, where, "\"%s\" is not a value of %s", json_string_value (v),
                           en->name);
        return 0;
    }
    return 0;
}

static int s_operand (ld_t *ld, const char *where, const json_t *j, operand_type_t t,
                      const ProtobufCFieldDescriptor *field, qp_operand_t *out)
{
    const char *s = json_string_value (j);
    if (s && s[0] == '@') {
        const param_t *p = s_param (ld->e, s + 1);
        if (!p)
            return s_fail (ld, where, "parameter \"%s\" is not defined in \"parameters\"", s);
        for (size_t i = 0; i < p->n; i++) {
            if (!p->values[i].v.value)
                continue;
            char w[200];
            snprintf (w, sizeof w, "parameters.%s[%zu].value (used by %s)", p->name, i, where);
            if (s_check_value (ld, w, p->values[i].v.value, t, field))
                return -1;
        }
        out->param = s + 1;
        out->literal = NULL;
        out->ref = p;
        return 0;
    }
    if (s_check_value (ld, where, j, t, field))
        return -1;
    out->param = NULL;
    out->literal = j;
    return 0;
}

/* ---- criteria ---------------------------------------------------------------------- */

static const char *const s_criterion_keys[] = {"id",     "label",  "op",        "field",    "other",
                                               "of",     "to",     "min",       "max",      "value",
                                               "values", "pct",    "fact",      "criteria", "note",
                                               "status", "source", "if_absent", "ratio"};

static int s_criterion (ld_t *ld, const char *where, json_t *j, qp_criterion_t *c);

/* A required key of a criterion. */
static json_t *s_need (ld_t *ld, const char *where, json_t *j, const char *key, const char *op)
{
    json_t *v = json_object_get (j, key);
    if (!v)
        s_fail (ld, where, "operator %s needs \"%s\"", op, key);
    return v;
}

static int s_criterion (ld_t *ld, const char *where, json_t *j, qp_criterion_t *c)
{
    char w[240];
    if (!json_is_object (j))
        return s_fail (ld, where, "a criterion must be an object");
    const char *key;
    json_t *v;
    json_object_foreach (j, key, v)
    {
        if (s_index_of (s_criterion_keys, sizeof s_criterion_keys / sizeof *s_criterion_keys, key) <
            0)
            return s_fail (ld, where, "unknown key \"%s\"", key);
    }
    c->id = json_string_value (json_object_get (j, "id"));
    c->label = json_string_value (json_object_get (j, "label"));
    const char *op = json_string_value (json_object_get (j, "op"));
    if (!c->id || !*c->id)
        return s_fail (ld, where, "\"id\" is required (a string)");
    if (!c->label)
        return s_fail (ld, where, "criterion \"%s\": \"label\" is required (a string)", c->id);
    int o = s_index_of (s_op_names, sizeof s_op_names / sizeof *s_op_names, op);
    if (o < 0) {
        snprintf (w, sizeof w, "%s.op", where);
        return s_fail (ld, w,
                       "unknown operator \"%s\" (known: present, between, lte, gte, eq, "
                       "in, not_in, prefix_in, ratio_lte, ratio_gte, field_gte_field, "
                       "months_between_lte, year_age_between, fact, any_of, all_of)",
                       op ? op : "(none)");
    }
    c->op = (qp_op_t)o;

    /* The tested field, for every operator but fact and any_of/all_of. */
    if (c->op != QP_OP_FACT && c->op != QP_OP_ANY_OF && c->op != QP_OP_ALL_OF) {
        json_t *f = s_need (ld, where, j, "field", op);
        snprintf (w, sizeof w, "%s.field", where);
        if (!f || s_path (ld, w, f, &c->field))
            return -1;
    }
    const ProtobufCFieldDescriptor *leaf = s_leaf (&c->field);
    ProtobufCType ft = leaf ? leaf->type : PROTOBUF_C_TYPE_BOOL;
    c->if_absent = json_object_get (j, "if_absent");
    if (c->if_absent) {
        snprintf (w, sizeof w, "%s.if_absent", where);
        if (!leaf)
            return s_fail (ld, w, "only a criterion on a field can say what its absence means");
        if (s_check_value (ld, w, c->if_absent, T_SCALAR, leaf))
            return -1;
    }
    json_t *x;
    switch (c->op) {
    case QP_OP_PRESENT:
        return 0;
    case QP_OP_BETWEEN:
    case QP_OP_LTE:
    case QP_OP_GTE:
        if (!s_numeric (ft) && ft != PROTOBUF_C_TYPE_STRING)
            return s_fail (ld, where, "%s needs an integer or date field, not %s", op, leaf->name);
        if (c->op != QP_OP_GTE) {
            snprintf (w, sizeof w, "%s.max", where);
            if (!(x = s_need (ld, where, j, "max", op)) ||
                s_operand (ld, w, x, T_ORDERED, leaf, &c->max))
                return -1;
        }
        if (c->op != QP_OP_LTE) {
            snprintf (w, sizeof w, "%s.min", where);
            if (!(x = s_need (ld, where, j, "min", op)) ||
                s_operand (ld, w, x, T_ORDERED, leaf, &c->min))
                return -1;
        }
        return 0;
    case QP_OP_EQ:
        snprintf (w, sizeof w, "%s.value", where);
        if (!(x = s_need (ld, where, j, "value", op)) ||
            s_operand (ld, w, x, T_SCALAR, leaf, &c->value))
            return -1;
        return 0;
    case QP_OP_IN:
    case QP_OP_NOT_IN:
    case QP_OP_PREFIX_IN:
        if (ft != PROTOBUF_C_TYPE_STRING &&
            (ft != PROTOBUF_C_TYPE_ENUM || c->op == QP_OP_PREFIX_IN))
            return s_fail (ld, where, "%s needs a string%s field, not %s", op,
                           c->op == QP_OP_PREFIX_IN ? "" : " or enum", leaf->name);
        snprintf (w, sizeof w, "%s.values", where);
        if (!(x = s_need (ld, where, j, "values", op)) ||
            s_operand (ld, w, x, T_STRING_LIST, leaf, &c->values))
            return -1;
        return 0;
    case QP_OP_RATIO_LTE:
    case QP_OP_RATIO_GTE:
    case QP_OP_FIELD_GTE_FIELD: {
        const char *okey = c->op == QP_OP_FIELD_GTE_FIELD ? "other" : "of";
        snprintf (w, sizeof w, "%s.%s", where, okey);
        if (!(x = s_need (ld, where, j, okey, op)) || s_path (ld, w, x, &c->other))
            return -1;
        if (!s_numeric (ft) || !s_numeric (s_leaf (&c->other)->type))
            return s_fail (ld, where, "%s compares integer fields", op);
        if (c->op != QP_OP_FIELD_GTE_FIELD) {
            /* A percentage, or an exact fraction {numerator, denominator}. */
            json_t *ratio = json_object_get (j, "ratio");
            if (ratio && json_object_get (j, "pct"))
                return s_fail (ld, where, "%s takes \"pct\" or \"ratio\", not both", op);
            if (ratio) {
                snprintf (w, sizeof w, "%s.ratio", where);
                return s_operand (ld, w, ratio, T_RATIO, NULL, &c->ratio);
            }
            snprintf (w, sizeof w, "%s.pct", where);
            if (!(x = s_need (ld, where, j, "pct", op)) ||
                s_operand (ld, w, x, T_INTEGER, NULL, &c->pct))
                return -1;
        }
        return 0;
    }
    case QP_OP_MONTHS_BETWEEN_LTE: {
        json_t *to = json_object_get (j, "to");
        snprintf (w, sizeof w, "%s.to", where);
        if (to ? s_path (ld, w, to, &c->other) : 0)
            return -1;
        if (!to) {
            /* Default: the dossier's date. */
            c->other.text = "submitted_on";
            c->other.steps[0] = protobuf_c_message_descriptor_get_field_by_name (
                &qp__v1__dossier__descriptor, "submitted_on");
            c->other.depth = 1;
        }
        if (ft != PROTOBUF_C_TYPE_STRING || s_leaf (&c->other)->type != PROTOBUF_C_TYPE_STRING)
            return s_fail (ld, where, "months_between_lte compares date fields");
        snprintf (w, sizeof w, "%s.max", where);
        if (!(x = s_need (ld, where, j, "max", op)) ||
            s_operand (ld, w, x, T_INTEGER, NULL, &c->max))
            return -1;
        return 0;
    }
    case QP_OP_YEAR_AGE_BETWEEN:
        if (!s_numeric (ft))
            return s_fail (ld, where,
                           "year_age_between needs a year field such as holder.birth_year");
        snprintf (w, sizeof w, "%s.min", where);
        if (!(x = s_need (ld, where, j, "min", op)) ||
            s_operand (ld, w, x, T_INTEGER, NULL, &c->min))
            return -1;
        snprintf (w, sizeof w, "%s.max", where);
        if (!(x = s_need (ld, where, j, "max", op)) ||
            s_operand (ld, w, x, T_INTEGER, NULL, &c->max))
            return -1;
        return 0;
    case QP_OP_FACT: {
        const char *name = json_string_value (json_object_get (j, "fact"));
        snprintf (w, sizeof w, "%s.fact", where);
        if (!qp_fact_lookup (name, &c->fact)) {
            char known[400] = "";
            for (int i = 0; i < QP_FACT_COUNT; i++)
                snprintf (known + strlen (known), sizeof known - strlen (known), "%s%s",
                          i ? ", " : "", s_fact_names[i]);
            return s_fail (ld, w, "unknown fact \"%s\" (known: %s)", name ? name : "(none)", known);
        }
        return 0;
    }
    case QP_OP_ANY_OF:
    case QP_OP_ALL_OF: {
        json_t *list = json_object_get (j, "criteria");
        if (!json_is_array (list) || json_array_size (list) == 0)
            return s_fail (ld, where, "%s needs \"criteria\", a non-empty list", op);
        c->n_children = json_array_size (list);
        c->children = calloc (c->n_children, sizeof *c->children);
        assert (c->children);
        for (size_t i = 0; i < c->n_children; i++) {
            snprintf (w, sizeof w, "%s.criteria[%zu]", where, i);
            if (s_criterion (ld, w, json_array_get (list, i), &c->children[i]))
                return -1;
        }
        return 0;
    }
    }
    return 0;
}

static void s_criteria_free (qp_criterion_t *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++)
        s_criteria_free (c[i].children, c[i].n_children);
    free (c);
}

/* ---- a scheme file ----------------------------------------------------------------- */

static const char *const s_top_keys[] = {"id",      "name",     "agency",      "network",
                                         "axes",    "kind",     "beneficiary", "sources",
                                         "version", "priority", "parameters",  "criteria",
                                         "amount",  "note",     "notes",       "description"};

static int s_sources (ld_t *ld, entry_t *e, json_t *doc)
{
    json_t *sources = json_object_get (doc, "sources");
    if (!json_is_array (sources) || json_array_size (sources) == 0)
        return s_fail (ld, "sources", "a non-empty list of {id, title, checked_on} is required");
    e->texts = json_object ();
    size_t i;
    json_t *s;
    json_array_foreach (sources, i, s)
    {
        char w[64];
        snprintf (w, sizeof w, "sources[%zu]", i);
        const char *id = json_string_value (json_object_get (s, "id"));
        const char *title = json_string_value (json_object_get (s, "title"));
        const char *checked = json_string_value (json_object_get (s, "checked_on"));
        const char *url = json_string_value (json_object_get (s, "url"));
        int32_t day;
        if (!id || !title)
            return s_fail (ld, w, "id and title are required strings");
        if (!checked || !qp_date_parse (checked, &day))
            return s_fail (ld, w, "checked_on must be the date YYYY-MM-DD the source was read");
        if (json_object_get (e->texts, id))
            return s_fail (ld, w, "source id \"%s\" defined twice", id);
        char *text = NULL;
        if (asprintf (&text, "%s%s%s (checked %s)", title, url ? ", " : "", url ? url : "",
                      checked) < 0)
            abort ();
        json_object_set_new (e->texts, id, json_string (text));
        free (text);
    }
    return 0;
}

static int s_value_type_ok (const json_t *v)
{
    if (json_is_integer (v) || json_is_boolean (v) || json_is_string (v) || json_is_null (v))
        return 1;
    if (json_is_object (v)) /* a fraction; the criterion using it checks its shape */
        return json_object_get (v, "numerator") && json_object_get (v, "denominator");
    if (!json_is_array (v))
        return 0;
    size_t i;
    const json_t *s;
    json_array_foreach (v, i, s)
    {
        if (!json_is_string (s))
            return 0;
    }
    return 1;
}

static int s_parameters (ld_t *ld, entry_t *e, json_t *doc)
{
    json_t *params = json_object_get (doc, "parameters");
    if (!json_is_object (params))
        return s_fail (ld, "parameters", "an object of dated values is required");
    e->params = calloc (json_object_size (params) + 1, sizeof *e->params);
    assert (e->params);
    const char *name;
    json_t *list;
    json_object_foreach (params, name, list)
    {
        char w[200];
        snprintf (w, sizeof w, "parameters.%s", name);
        if (!json_is_array (list) || json_array_size (list) == 0)
            return s_fail (ld, w, "must be a non-empty list of {from, value, source}");
        param_t *p = &e->params[e->n_params++];
        p->name = name;
        p->values = calloc (json_array_size (list), sizeof *p->values);
        assert (p->values);
        size_t i;
        json_t *d;
        json_array_foreach (list, i, d)
        {
            snprintf (w, sizeof w, "parameters.%s[%zu]", name, i);
            dated_t *dv = &p->values[p->n];
            const char *from = json_string_value (json_object_get (d, "from"));
            json_t *value = json_object_get (d, "value");
            const char *source = json_string_value (json_object_get (d, "source"));
            if (!json_is_object (d))
                return s_fail (ld, w, "must be an object {from, value, source}");
            if (!from || !qp_date_parse (from, &dv->from))
                return s_fail (ld, w, "\"from\" must be a date YYYY-MM-DD, not %s",
                               from ? from : "absent");
            if (p->n && dv->from <= p->values[p->n - 1].from)
                return s_fail (ld, w, "dates must increase (%s is not after %s)", from,
                               p->values[p->n - 1].v.valid_from);
            if (!value)
                return s_fail (ld, w, "\"value\" is required (null: not in force from that date)");
            if (!s_value_type_ok (value))
                return s_fail (ld, w,
                               "a value is an integer, a boolean, a string, a list of "
                               "strings, a fraction {numerator, denominator} or null");
            const char *text = NULL;
            if (!json_is_null (value)) {
                if (!source)
                    return s_fail (ld, w, "\"source\" (an id of \"sources\") is required");
                text = json_string_value (json_object_get (e->texts, source));
                if (!text)
                    return s_fail (ld, w, "source \"%s\" is not in \"sources\"", source);
            }
            const char *status = json_string_value (json_object_get (d, "status"));
            if (status && strcmp (status, "unverified") && strcmp (status, "verified"))
                return s_fail (ld, w, "status is \"verified\" or \"unverified\", not \"%s\"",
                               status);
            dv->v = (qp_param_value_t){name, json_is_null (value) ? NULL : value, from, text,
                                       status && !strcmp (status, "unverified") ? status : NULL};
            p->n++;
        }
    }
    const param_t *in_force = s_param (e, "in_force");
    if (!in_force)
        return s_fail (ld, "parameters.in_force",
                       "required: dated booleans saying when the "
                       "scheme exists");
    for (size_t i = 0; i < in_force->n; i++)
        if (in_force->values[i].v.value && !json_is_boolean (in_force->values[i].v.value)) {
            char w[64];
            snprintf (w, sizeof w, "parameters.in_force[%zu].value", i);
            return s_fail (ld, w, "must be true, false or null");
        }
    return 0;
}

static int s_amount (ld_t *ld, entry_t *e, json_t *doc)
{
    json_t *a = json_object_get (doc, "amount");
    qp_amount_rule_t *r = &e->amount;
    if (!a)
        return s_fail (ld, "amount",
                       "required: {\"op\": \"none\"}, {\"op\": \"field\", \"field\", "
                       "\"cap\"?} or {\"op\": \"pct_of\", \"field\", \"pct\", \"cap\"?}");
    const char *op = json_string_value (json_object_get (a, "op"));
    if (op && !strcmp (op, "none")) {
        r->op = QP_AMOUNT_NONE;
        return 0;
    }
    if (!op || (strcmp (op, "field") && strcmp (op, "pct_of")))
        return s_fail (ld, "amount.op", "unknown amount rule \"%s\" (known: none, field, pct_of)",
                       op ? op : "(none)");
    r->op = strcmp (op, "field") ? QP_AMOUNT_PCT_OF : QP_AMOUNT_FIELD;
    if (s_path (ld, "amount.field", json_object_get (a, "field"), &r->field))
        return -1;
    if (!s_numeric (s_leaf (&r->field)->type))
        return s_fail (ld, "amount.field", "must be an amount (integer) field");
    json_t *x;
    if (r->op == QP_AMOUNT_PCT_OF) {
        if (!(x = json_object_get (a, "pct")))
            return s_fail (ld, "amount", "pct_of needs \"pct\"");
        if (s_operand (ld, "amount.pct", x, T_INTEGER, NULL, &r->pct))
            return -1;
    }
    if ((x = json_object_get (a, "cap")) &&
        s_operand (ld, "amount.cap", x, T_INTEGER, NULL, &r->cap))
        return -1;
    return 0;
}

static int s_check (ld_t *ld, json_t *doc)
{
    entry_t *e = ld->e;
    qp_scheme_t *s = &e->scheme;
    if (!json_is_object (doc))
        return s_fail (ld, "(root)", "a scheme file is one JSON object");
    const char *key;
    json_t *v;
    json_object_foreach (doc, key, v)
    {
        if (s_index_of (s_top_keys, sizeof s_top_keys / sizeof *s_top_keys, key) < 0)
            return s_fail (ld, key, "unknown key");
    }
    s->id = json_string_value (json_object_get (doc, "id"));
    s->name = json_string_value (json_object_get (doc, "name"));
    s->version = json_string_value (json_object_get (doc, "version"));
    if (!s->id || !*s->id || !s->name || !s->version)
        return s_fail (ld, "(root)", "id, name and version are required strings");
    /* A stored decision keeps "ID-2025.1" as "-2025.1" (qp_store_decision_pack): a version
     * of its own starting with '-' would be read back as one of those. */
    if (!*s->version || s->version[0] == '-')
        return s_fail (ld, "version", "must not be empty nor start with '-'");
    const char *agency = json_string_value (json_object_get (doc, "agency"));
    const ProtobufCEnumValue *ag = protobuf_c_enum_descriptor_get_value_by_name (
        &qp__v1__agency__descriptor, agency ? agency : "");
    if (!ag || ag->value == 0)
        return s_fail (ld, "agency",
                       "\"%s\" is not ANCT, ANRU, BANQUE_DES_TERRITOIRES or BPIFRANCE",
                       agency ? agency : "(none)");
    s->agency = (Qp__V1__Agency)ag->value;
    json_t *net = json_object_get (doc, "network");
    if (net) {
        s->network = json_string_value (net);
        const ProtobufCEnumValue *nv = protobuf_c_enum_descriptor_get_value_by_name (
            &qp__v1__network__descriptor, s->network ? s->network : "");
        if (!nv || nv->value == 0)
            return s_fail (ld, "network", "\"%s\" is not a qp.v1.Network",
                           s->network ? s->network : "(not a string)");
    }
    json_t *axes = json_object_get (doc, "axes");
    if (!json_is_array (axes) || json_array_size (axes) == 0)
        return s_fail (ld, "axes",
                       "a non-empty list of ENTREPRENEURSHIP, RETAIL_AND_CRAFTS, "
                       "SETTING_UP_ACTIVITY is required");
    size_t i;
    json_array_foreach (axes, i, v)
    {
        const ProtobufCEnumValue *av = protobuf_c_enum_descriptor_get_value_by_name (
            &qp__v1__axis__descriptor, json_string_value (v) ? json_string_value (v) : "");
        if (!av || av->value == 0) {
            char w[32];
            snprintf (w, sizeof w, "axes[%zu]", i);
            return s_fail (ld, w,
                           "not an axis (ENTREPRENEURSHIP, RETAIL_AND_CRAFTS, "
                           "SETTING_UP_ACTIVITY)");
        }
    }
    s->kind = json_string_value (json_object_get (doc, "kind"));
    int k = s_index_of (s_kind_names, sizeof s_kind_names / sizeof *s_kind_names, s->kind);
    if (k < 0)
        return s_fail (ld, "kind",
                       "\"%s\" is not one of loan, honour_loan, guarantee, grant, "
                       "tax_exemption, equity, engineering",
                       s->kind ? s->kind : "(none)");
    s->kind_code = (qp_scheme_kind_t)k;
    json_t *ben = json_object_get (doc, "beneficiary");
    json_t *one = json_array ();
    if (json_is_string (ben))
        json_array_append (one, ben);
    json_t *bens = json_is_array (ben) ? ben : one;
    json_array_foreach (bens, i, v)
    {
        int b = s_index_of (s_beneficiary_names, 4, json_string_value (v));
        if (b < 0) {
            json_decref (one);
            return s_fail (ld, "beneficiary",
                           "\"%s\" is not person, business, local_authority or "
                           "property_company",
                           json_string_value (v) ? json_string_value (v) : "(not a string)");
        }
        s->beneficiaries |= 1u << b;
    }
    json_decref (one);
    if (!s->beneficiaries)
        return s_fail (ld, "beneficiary", "required: a beneficiary type or a list of them");
    json_t *prio = json_object_get (doc, "priority");
    if (prio && !json_is_integer (prio))
        return s_fail (ld, "priority", "must be an integer (lower comes first)");
    s->priority = prio ? (int)json_integer_value (prio) : 100;

    if (s_sources (ld, e, doc) || s_parameters (ld, e, doc))
        return -1;
    json_t *criteria = json_object_get (doc, "criteria");
    if (!json_is_array (criteria))
        return s_fail (ld, "criteria", "a list of criteria is required");
    e->n_criteria = json_array_size (criteria);
    if (e->n_criteria > QP_CRITERIA_MAX) /* the compact decision has a bit per criterion */
        return s_fail (ld, "criteria", "at most %d criteria (group more with all_of), not %zu",
                       QP_CRITERIA_MAX, e->n_criteria);
    e->criteria = calloc (e->n_criteria + 1, sizeof *e->criteria);
    assert (e->criteria);
    for (i = 0; i < e->n_criteria; i++) {
        char w[32];
        snprintf (w, sizeof w, "criteria[%zu]", i);
        if (s_criterion (ld, w, json_array_get (criteria, i), &e->criteria[i]))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp (e->criteria[j].id, e->criteria[i].id))
                return s_fail (ld, w, "criterion id \"%s\" used twice", e->criteria[i].id);
    }
    if (s_amount (ld, e, doc))
        return -1;
    s->criteria = e->criteria;
    s->n_criteria = e->n_criteria;
    s->amount = &e->amount;
    return 0;
}

static void s_entry_free (entry_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_params; i++)
        free (e->params[i].values);
    free (e->params);
    s_criteria_free (e->criteria, e->n_criteria);
    json_decref (e->texts);
    json_decref (e->doc);
    free (e);
}

static int s_cmp_names (const void *a, const void *b)
{
    return strcmp (*(char *const *)a, *(char *const *)b);
}

static int s_cmp_entries (const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    if (x->scheme.priority != y->scheme.priority)
        return x->scheme.priority < y->scheme.priority ? -1 : 1;
    return strcmp (x->scheme.id, y->scheme.id);
}

qp_catalogue_t *qp_catalogue_load (const char *dir, qp_error_t *err)
{
    DIR *d = opendir (dir);
    if (!d) {
        qp_error_set (err, "bad_catalogue", dir, "cannot open catalogue directory %s", dir);
        return NULL;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir (d))) {
        size_t len = strlen (de->d_name);
        if (len > 5 && de->d_name[0] != '.' && !strcmp (de->d_name + len - 5, ".json")) {
            names = realloc (names, (n + 1) * sizeof *names);
            assert (names);
            names[n++] = strdup (de->d_name);
        }
    }
    closedir (d);
    if (n)
        qsort (names, n, sizeof names[0], s_cmp_names);

    qp_catalogue_t *self = calloc (1, sizeof *self);
    assert (self);
    self->entries = calloc (n ? n : 1, sizeof *self->entries);
    assert (self->entries);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[1024];
        snprintf (path, sizeof path, "%s/%s", dir, names[i]);
        json_error_t jerr;
        json_t *doc = json_load_file (path, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            qp_error_set (err, "bad_catalogue", path, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                          jerr.text);
            rc = -1;
            break;
        }
        entry_t *e = calloc (1, sizeof *e);
        assert (e);
        e->doc = doc;
        ld_t ld = {path, err, e};
        if (s_check (&ld, doc) != 0)
            rc = -1;
        else if (qp_catalogue_find (self, e->scheme.id)) {
            s_fail (&ld, "id", "scheme id \"%s\" defined twice", e->scheme.id);
            rc = -1;
        }
        if (rc)
            s_entry_free (e);
        else
            self->entries[self->n++] = e;
    }
    for (size_t i = 0; i < n; i++)
        free (names[i]);
    free (names);
    if (rc == 0 && self->n == 0) {
        qp_error_set (err, "bad_catalogue", dir, "no scheme file (*.json) in %s", dir);
        rc = -1;
    }
    if (rc)
        qp_catalogue_destroy (&self);
    else
        qsort (self->entries, self->n, sizeof *self->entries, s_cmp_entries);
    return self;
}

void qp_catalogue_destroy (qp_catalogue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_catalogue_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        s_entry_free (self->entries[i]);
    free (self->entries);
    free (self);
    *self_p = NULL;
}

size_t qp_catalogue_size (const qp_catalogue_t *self)
{
    return self->n;
}

const qp_scheme_t *qp_catalogue_scheme (const qp_catalogue_t *self, size_t index)
{
    return index < self->n ? &self->entries[index]->scheme : NULL;
}

const qp_scheme_t *qp_catalogue_find (const qp_catalogue_t *self, const char *id)
{
    for (size_t i = 0; id && i < self->n; i++)
        if (!strcmp (self->entries[i]->scheme.id, id))
            return &self->entries[i]->scheme;
    return NULL;
}

bool qp_catalogue_param_on (const qp_scheme_t *scheme, const char *name, int32_t date,
                            qp_param_value_t *out)
{
    const param_t *p = s_param ((const entry_t *)scheme, name);
    return qp_catalogue_operand_on (scheme, &(qp_operand_t){.param = name, .ref = p}, date, out);
}

bool qp_catalogue_operand_on (const qp_scheme_t *scheme, const qp_operand_t *operand, int32_t date,
                              qp_param_value_t *out)
{
    const param_t *p =
        operand->ref ? operand->ref : s_param ((const entry_t *)scheme, operand->param);
    if (!p)
        return false;
    /* The last value whose date is on or before date. */
    const dated_t *found = NULL;
    for (size_t i = 0; i < p->n && p->values[i].from <= date; i++)
        found = &p->values[i];
    if (!found)
        return false;
    *out = found->v;
    return true;
}

bool qp_catalogue_in_force (const qp_scheme_t *scheme, int32_t date, qp_param_value_t *out)
{
    qp_param_value_t v = {0};
    bool found = qp_catalogue_param_on (scheme, "in_force", date, &v);
    if (out)
        *out = v;
    return found && json_is_true (v.value);
}
