/* The aid-scheme catalogue: data/catalogue/NAME.json, one file per scheme (dispositif),
 * each with dated versions of its parameters and their sources. Decisions pick the
 * version in force on the dossier's date, so a 2024 dossier and a 2026 one can differ. */
#ifndef QP_CATALOGUE_H
#define QP_CATALOGUE_H
#include "qp_message.h"
#include <jansson.h>

typedef struct qp_catalogue qp_catalogue_t;

typedef struct {
    const char *id;         /* "phq" */
    const char *name;       /* "Prêt d'honneur Quartiers" */
    const char *rule;       /* which evaluator applies: "honour_loan" */
    Qp__V1__Agency agency;  /* owner, for routing funding requests */
} qp_scheme_t;

typedef struct {
    const char *version;    /* "phq-2024-01" */
    const char *valid_from; /* inclusive */
    const char *valid_until;/* inclusive, NULL when open */
    const char *source;
    const json_t *parameters; /* borrowed object name -> integer */
} qp_scheme_version_t;

/* Loads every .json file of dir. NULL with err (file and why) when a file is broken: a
 * service must not start on a half-read catalogue. */
qp_catalogue_t *qp_catalogue_load (const char *dir, qp_error_t *err);
void qp_catalogue_destroy (qp_catalogue_t **self_p);

size_t qp_catalogue_size (const qp_catalogue_t *self);
const qp_scheme_t *qp_catalogue_scheme (const qp_catalogue_t *self, size_t index);
const qp_scheme_t *qp_catalogue_find (const qp_catalogue_t *self, const char *id);

/* The version in force on date (days since epoch), or false when none is. */
bool qp_catalogue_version_on (const qp_catalogue_t *self, const qp_scheme_t *scheme, int32_t date,
                              qp_scheme_version_t *out);
/* An integer parameter of a version; false when absent. */
bool qp_catalogue_param (const qp_scheme_version_t *version, const char *name, int64_t *value);
#endif
