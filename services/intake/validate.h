/* Field validation of what intake receives: pure functions (no Redis, no bus, no clock).
 *
 * A submission is checked field by field and EVERY problem is reported, so an applicant
 * fixes them all at once. Each finding names the field by its dotted path in the Dossier
 * ("business.siret", "project.amount_asked_cents"; the identity's fields as
 * "identity.family_name") with a stable code:
 *
 *   required      the field is absent (or an enum left at its UNSPECIFIED value)
 *   format        wrong shape: not UTF-8, not 14 digits, not a date, not finite, ...
 *   checksum      shape right, key wrong (SIRET Luhn key)
 *   range         out of the allowed bounds (amounts, dates, months, percent, area)
 *   inconsistent  contradicts another field (contribution > need, lat without lon, ...)
 *   unknown       an enum number or a territory id this version does not know
 *
 * Messages never repeat the value given: addresses and identities are personal data.
 *
 *   intake_errors_t errors;
 *   intake_errors_init (&errors);
 *   if (intake_validate_submission_in (zones, submission, &errors) == 0) ... accept ...
 */
#ifndef INTAKE_VALIDATE_H
#define INTAKE_VALIDATE_H
#include "qp_message.h"
#include "zones.h"
#include <stdbool.h>
#include <stddef.h>

/* ---- Business bounds (configuration-free: they do not change with aid schemes) ---- */

/* Largest amount any money field may hold: 1 bn euros, far above any QPV project, so
 * a value beyond it is a unit mistake. */
#define INTAKE_MAX_AMOUNT_CENTS 100000000000LL
/* Longest loan, deferral or any other duration in months (30 years). */
#define INTAKE_MAX_MONTHS 360
/* A personal guarantee is a share of the bank loan. */
#define INTAKE_MAX_GUARANTEE_PCT 100
/* Business dates the programme can hold (submitted_on), inclusive. */
#define INTAKE_FIRST_SUBMISSION "2000-01-01"
#define INTAKE_LAST_SUBMISSION "2100-12-31"
/* A planned creation may be declared up to this many years after the submission. */
#define INTAKE_CREATION_LEAD_YEARS 3
/* Oldest birth year a holder may declare. */
#define INTAKE_FIRST_BIRTH_YEAR 1900
/* Channel and channel key: printable ASCII, this long at most (they make the id). */
#define INTAKE_MAX_CHANNEL_BYTES 128
/* Any other text field (address line, city, ...), in bytes. */
#define INTAKE_MAX_TEXT_BYTES 512
/* Follow-up reports are yearly, for at most this many years after funding. */
#define INTAKE_MAX_FOLLOW_UP_YEAR 10

/* ---- Findings ------------------------------------------------------------------------ */

#define INTAKE_MAX_FIELD_ERRORS 64

typedef struct {
    char field[64];
    char code[16];
    char message[192];
} intake_field_error_t;

typedef struct {
    intake_field_error_t items[INTAKE_MAX_FIELD_ERRORS];
    size_t count;
    size_t dropped; /* findings beyond the capacity (counted, not kept) */
} intake_errors_t;

void intake_errors_init (intake_errors_t *errors);
/* Adds a finding; a second one on the same field is ignored (the first says most). */
void intake_errors_add (intake_errors_t *errors, const char *field, const char *code,
                        const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));
/* The finding on field, or NULL. */
const intake_field_error_t *intake_errors_find (const intake_errors_t *errors, const char *field);

/* ---- Whole messages ------------------------------------------------------------------ */

/* Checks every field of a submission (its dossier and, when given, its identity), a
 * location against zones (zones.h: a point in no zone is refused). Returns the number of
 * findings added to errors (0: valid). The territory id is only checked for shape here;
 * whether it is known is the caller's business. */
size_t intake_validate_submission_in (const intake_zones_t *zones,
                                      const Qp__V1__SubmitDossier *submission,
                                      intake_errors_t *errors);
/* The same without zones: coordinates are checked as numbers of degrees only (callers
 * without a data directory; intake and the fuzzers load the zones file). */
size_t intake_validate_submission (const Qp__V1__SubmitDossier *submission,
                                   intake_errors_t *errors);

/* Checks a follow-up report on its own (not whether the dossier exists). */
size_t intake_validate_follow_up (const Qp__V1__FollowUp *follow_up, intake_errors_t *errors);

/* ---- The pseudonymous person key ------------------------------------------------------ */

#define INTAKE_PERSON_KEY_HEX 32

/* Keyed BLAKE2b (crypto_generichash) of the normalised "family|given|birth_date", keyed
 * by the pepper: the same person typed with other case, accents, hyphens or spacing gets
 * the same key, and nobody without the pepper can link a key to a name. The identity is
 * expected to have passed intake_validate_submission. Writes hex into out. */
void intake_person_key (const Qp__V1__PersonIdentity *identity, const char *pepper,
                        char out[INTAKE_PERSON_KEY_HEX + 1]);
/* Identity text folded for the key: lower case, Latin accents removed, runs of spaces,
 * hyphens and apostrophes made one space, trimmed. Writes at most size bytes (always
 * NUL-terminated); returns false when it did not fit. */
bool intake_normalise_name (const char *text, char *out, size_t size);

/* ---- Single checks (exposed for tests and for other programs) ------------------------- */

bool intake_utf8_valid (const char *text);
/* NULL when the SIRET is valid, else "format" (not 14 digits) or "checksum". La Poste's
 * establishments (SIREN 356000000) use a sum of digits multiple of 5 instead of Luhn. */
const char *intake_siret_check (const char *siret);
bool intake_luhn_valid (const char *digits);
bool intake_legal_form_valid (const char *code);
bool intake_naf_code_valid (const char *code);
bool intake_insee_commune_valid (const char *code);
bool intake_postcode_valid (const char *code);
bool intake_qpv_code_valid (const char *code);
/* A territory id: 1-64 of [a-z0-9-]. */
bool intake_territory_id_valid (const char *id);
/* A dossier id: QP_ID_HEX lower-case hex digits. */
bool intake_dossier_id_valid (const char *id);
#endif
