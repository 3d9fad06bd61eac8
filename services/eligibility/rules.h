/* Scheme rules: evaluates the criteria a catalogue scheme declares (qp_catalogue.h) on a
 * dossier, with the parameter values in force on the dossier's date and the facts the
 * service computed (QPV index, territories, history). Every criterion gets MET, NOT_MET or
 * MISSING (naming the absent field or fact) and a readable reason. Pure functions: no I/O,
 * no clock, so a replay decides the same. */
#ifndef ELIGIBILITY_RULES_H
#define ELIGIBILITY_RULES_H
#include "qp_catalogue.h"

typedef enum { RULES_UNKNOWN = 0, RULES_TRUE, RULES_FALSE } rules_truth_t;

typedef struct {
    rules_truth_t value;
    char detail[120]; /* how it is known: "verified in QPV QN05981M", "declared, not verified" */
} rules_fact_value_t;

/* The facts of one dossier, indexed by qp_fact_t; zeroed = all unknown. */
typedef struct {
    rules_fact_value_t facts[QP_FACT_COUNT];
    bool terse; /* keep no detail (the decision path: only explanations show them) */
} rules_facts_t;

void rules_facts_init (rules_facts_t *facts);
void rules_facts_set (rules_facts_t *facts, qp_fact_t fact, rules_truth_t value,
                      const char *detail);
/* Adds what the dossier itself declares to facts (initialised by the caller), when
 * nothing better is known: a declared QPV code (business, residence) and the territory
 * make the facts true "declared, not verified"; first_phq_for_person_network is assumed
 * true until the service checks the PHQ history. The facts no source checks yet
 * (business_in_zfu_te, zfu_resident_employees_half, independent_sme,
 * premises_in_npnru_project from business.declared_*, holder_in_target_group from
 * holder.declared_target_group) are true or false "declared, not verified" when the
 * dossier declares them, unknown when it does not. */
void rules_facts_declared (rules_facts_t *facts, const Qp__V1__Dossier *dossier);

/* Evaluates scheme for dossier on date (days since epoch), explained: every criterion
 * with its reason, the values read and the dated parameters with their sources, the
 * amount as a "computed_amount" line, catalogue_version "VERSION@latest date applied".
 * Returns a new decision (free with qp__v1__scheme_decision__free_unpacked (d, NULL)).
 * facts may be NULL (all unknown). */
Qp__V1__SchemeDecision *rules_evaluate (const qp_scheme_t *scheme, const Qp__V1__Dossier *dossier,
                                        int32_t date, const rules_facts_t *facts);

/* The same decision, compact (what is stored and published): outcome, amount (when
 * eligible), catalogue_version the scheme's version, the criteria NOT_MET or MISSING as
 * bits (criteria_not_met, criteria_missing: bit i = scheme->criteria[i]), no
 * CriterionResult and no text. Builds no string: the decision path. */
Qp__V1__SchemeDecision *rules_decide (const qp_scheme_t *scheme, const Qp__V1__Dossier *dossier,
                                      int32_t date, const rules_facts_t *facts);

/* The outcome of a compact decision's criterion id of scheme: MET, NOT_MET or MISSING
 * (from the bits), 0 when the scheme has no such criterion. */
Qp__V1__CriterionOutcome rules_compact_outcome (const qp_scheme_t *scheme,
                                                const Qp__V1__SchemeDecision *d, const char *id);

/* "15 000,00 €" into buf (at least 32 bytes). */
void rules_format_euros (int64_t cents, char *buf, size_t size);
#endif
