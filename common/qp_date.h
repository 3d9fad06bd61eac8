/* Calendar dates as days since 1970-01-01 (UTC), parsed from and printed as ISO
 * "YYYY-MM-DD". Business dates in dossiers and catalogue parameters use this. */
#ifndef QP_DATE_H
#define QP_DATE_H
#include <stdbool.h>
#include <stdint.h>

/* Parses exactly "YYYY-MM-DD" (a real calendar day, years 1900-2199) into *days.
 * Returns false, leaving *days untouched, for anything else. */
bool qp_date_parse (const char *text, int32_t *days);
/* Writes "YYYY-MM-DD" into buf (at least 11 bytes). */
void qp_date_format (int32_t days, char *buf);
/* Days since epoch for a civil date (no range check). */
int32_t qp_date_from_civil (int year, int month, int day);
void qp_date_to_civil (int32_t days, int *year, int *month, int *day);
/* Midnight UTC of that day, in milliseconds. */
int64_t qp_date_to_ms (int32_t days);
int32_t qp_date_from_ms (int64_t ms);
#endif
