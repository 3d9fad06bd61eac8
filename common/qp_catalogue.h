/* The aid-scheme catalogue: data/catalogue/NAME.json, one file per scheme (dispositif).
 * A scheme declares its dated parameters (OpenFisca style: a value applies from its date
 * until the next one, null = not in force), each citing its source, and its criteria as
 * data (a small closed set of operators over Dossier field paths, parameters and facts).
 * Loading checks everything (operators, field paths against the Dossier descriptor,
 * parameters, dates, enums) so that evaluation never meets a surprise. docs/catalogue.md
 * describes the format. */
#ifndef QP_CATALOGUE_H
#define QP_CATALOGUE_H
#include "qp_message.h"
#include <jansson.h>

typedef struct qp_catalogue qp_catalogue_t;

typedef enum {
    QP_KIND_LOAN,
    QP_KIND_HONOUR_LOAN,
    QP_KIND_GUARANTEE,
    QP_KIND_GRANT,
    QP_KIND_TAX_EXEMPTION,
    QP_KIND_EQUITY,
    QP_KIND_ENGINEERING,
} qp_scheme_kind_t;

/* Bits of qp_scheme_t.beneficiaries. */
typedef enum {
    QP_BENEFICIARY_PERSON = 1,
    QP_BENEFICIARY_BUSINESS = 2,
    QP_BENEFICIARY_LOCAL_AUTHORITY = 4,
    QP_BENEFICIARY_PROPERTY_COMPANY = 8,
} qp_beneficiary_t;

/* Facts a criterion can read that the service computes outside the dossier (QPV index,
 * programme territories, Redis history) or that the applicant declares apart. The
 * eligibility rules hold their values (rules_facts_t). */
typedef enum {
    QP_FACT_BUSINESS_IN_QPV,
    QP_FACT_RESIDENCE_IN_QPV,
    QP_FACT_IN_PROGRAMME_TERRITORY,
    QP_FACT_FIRST_PHQ_FOR_PERSON_NETWORK,
    QP_FACT_BUSINESS_IN_ZFU_TE,
    QP_FACT_HOLDER_IN_TARGET_GROUP,
    QP_FACT_ZFU_RESIDENT_EMPLOYEES_HALF,
    QP_FACT_PREMISES_IN_NPNRU_PROJECT,
    QP_FACT_INDEPENDENT_SME, /* at most 25 % of the capital held by non-SMEs */
    QP_FACT_COUNT
} qp_fact_t;

const char *qp_fact_name (qp_fact_t fact);
/* "fact:NAME": what a criterion on an unknown fact names as missing. */
const char *qp_fact_field (qp_fact_t fact);
/* false when name is not a fact. */
bool qp_fact_lookup (const char *name, qp_fact_t *fact);

typedef enum {
    QP_OP_PRESENT,
    QP_OP_BETWEEN,
    QP_OP_LTE,
    QP_OP_GTE,
    QP_OP_EQ,
    QP_OP_IN,
    QP_OP_NOT_IN,
    QP_OP_PREFIX_IN,
    QP_OP_RATIO_LTE,
    QP_OP_RATIO_GTE,
    QP_OP_FIELD_GTE_FIELD,
    QP_OP_MONTHS_BETWEEN_LTE,
    QP_OP_YEAR_AGE_BETWEEN,
    QP_OP_FACT,
    QP_OP_ANY_OF,
    QP_OP_ALL_OF,
} qp_op_t;

const char *qp_op_name (qp_op_t op);

#define QP_PATH_MAX 4
/* A scalar field of qp.v1.Dossier reached through nested messages. */
typedef struct {
    const char *text; /* "project.amount_asked_cents" */
    const ProtobufCFieldDescriptor *steps[QP_PATH_MAX];
    int depth; /* 0: no field */
} qp_field_path_t;

/* A literal from the file, or "@name": a parameter of the scheme on the dossier's date. */
typedef struct {
    const char *param;     /* parameter name without '@', or NULL */
    const json_t *literal; /* borrowed, when not a parameter; NULL when not given */
    const void *ref;       /* the parameter, resolved at load (no lookup by name) */
} qp_operand_t;

typedef struct qp_criterion qp_criterion_t;
struct qp_criterion {
    const char *id;
    const char *label;
    qp_op_t op;
    qp_field_path_t field; /* the value tested */
    qp_field_path_t other; /* ratio "of", field_gte_field "other", months "to" */
    qp_operand_t min, max, value, values, pct;
    qp_operand_t ratio;      /* ratio_lte/ratio_gte: {numerator, denominator} instead of pct */
    const json_t *if_absent; /* value of an absent field ("no deferral" = 0), or NULL */
    qp_fact_t fact;
    qp_criterion_t *children;
    size_t n_children;
};

typedef enum { QP_AMOUNT_NONE, QP_AMOUNT_FIELD, QP_AMOUNT_PCT_OF } qp_amount_op_t;

/* How the aid amount is computed once eligible: none (0), min (field, cap) or
 * field × pct / 100 capped. */
typedef struct {
    qp_amount_op_t op;
    qp_field_path_t field;
    qp_operand_t pct, cap;
} qp_amount_rule_t;

/* Top-level criteria of a scheme: the compact decision keeps a bit for each. */
#define QP_CRITERIA_MAX 32

typedef struct {
    const char *id;        /* "phq" */
    const char *name;      /* "Prêt d'honneur Quartiers" */
    Qp__V1__Agency agency; /* owner, for routing funding requests */
    const char *network;   /* distributing network ("INITIATIVE_FRANCE") or NULL */
    const char *kind;      /* "honour_loan", ... as in the file */
    qp_scheme_kind_t kind_code;
    unsigned beneficiaries; /* qp_beneficiary_t bits */
    const char *version;    /* the file's "version" */
    int priority;           /* decisions come in (priority, id) order */
    const qp_criterion_t *criteria;
    size_t n_criteria;
    const qp_amount_rule_t *amount;
} qp_scheme_t;

/* One dated value of a parameter. */
typedef struct {
    const char *name;
    const json_t *value;    /* NULL when the value is null (not in force) */
    const char *valid_from; /* "YYYY-MM-DD" */
    const char *source;     /* readable reference, from the scheme's sources */
    const char *status;     /* "unverified" or NULL */
} qp_param_value_t;

/* Loads every .json file of dir, in (priority, id) order. NULL with err (file, JSON path
 * or line, and why) when any file is broken: the caller keeps its previous catalogue. */
qp_catalogue_t *qp_catalogue_load (const char *dir, qp_error_t *err);
void qp_catalogue_destroy (qp_catalogue_t **self_p);

size_t qp_catalogue_size (const qp_catalogue_t *self);
const qp_scheme_t *qp_catalogue_scheme (const qp_catalogue_t *self, size_t index);
const qp_scheme_t *qp_catalogue_find (const qp_catalogue_t *self, const char *id);

/* The value of a scheme's parameter on date (days since epoch): false when the parameter
 * has no value yet on that date or is not defined; out->value NULL when it is null. */
bool qp_catalogue_param_on (const qp_scheme_t *scheme, const char *name, int32_t date,
                            qp_param_value_t *out);
/* The value of an operand's parameter on date: qp_catalogue_param_on without the lookup
 * by name (the decision path). */
bool qp_catalogue_operand_on (const qp_scheme_t *scheme, const qp_operand_t *operand, int32_t date,
                              qp_param_value_t *out);
/* Whether the scheme exists on date (its "in_force" parameter is true); out (optional)
 * gets the value found, zeroed when the parameter has none yet on that date. */
bool qp_catalogue_in_force (const qp_scheme_t *scheme, int32_t date, qp_param_value_t *out);

const char *qp_scheme_kind_name (qp_scheme_kind_t kind);
#endif
