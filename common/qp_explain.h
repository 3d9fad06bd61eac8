/* Explained decisions as text: what `qp-ctl explain ID` prints for a person reading a
 * dossier's eligibility (the JSON form is the EligibilityDecided message itself, through
 * qp_json). Every scheme, its outcome and amount, and for every criterion its outcome,
 * reason, missing field, the dossier values read and the dated parameters with sources. */
#ifndef QP_EXPLAIN_H
#define QP_EXPLAIN_H
#include "qp_message.h"

/* A malloc'd text. verbose adds the values read and the parameters with their sources. */
char *qp_explain_text (const Qp__V1__EligibilityDecided *decided, bool verbose);
#endif
