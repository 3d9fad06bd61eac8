/* Scheme rules: each catalogue scheme names the rule that evaluates it ("honour_loan").
 * A rule reads the dossier and the parameters of the version in force on the dossier's
 * date, and gives every criterion its outcome and a readable reason. Pure functions: no
 * I/O, no clock, so a replay decides the same. */
#ifndef ELIGIBILITY_RULES_H
#define ELIGIBILITY_RULES_H
#include "qp_catalogue.h"

/* Evaluates scheme for dossier on date (days since epoch). Returns a new decision (free
 * with qp__v1__scheme_decision__free_unpacked (d, NULL)). */
Qp__V1__SchemeDecision *rules_evaluate (const qp_catalogue_t *catalogue, const qp_scheme_t *scheme,
                                        const Qp__V1__Dossier *dossier, int32_t date);

/* "15 000,00 €" into buf (at least 32 bytes). */
void rules_format_euros (int64_t cents, char *buf, size_t size);
#endif
