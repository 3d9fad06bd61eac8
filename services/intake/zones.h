/* The zones a French business or residence can be in: one latitude/longitude box per
 * territory (WGS84 degrees, inclusive), read from a dated data file
 * (data/territory-zones.csv, format in docs/operations.md). Intake refuses a location in
 * no zone: swapped or mistyped coordinates, not a precise boundary.
 *
 *   qp_error_t err;
 *   intake_zones_t *zones = intake_zones_load ("data/territory-zones.csv", &err);
 *   if (!zones) ... refuse to start, saying err.message ("PATH: line N: why") ...
 */
#ifndef INTAKE_ZONES_H
#define INTAKE_ZONES_H
#include "qp_message.h"
#include <stdbool.h>
#include <stddef.h>

#define INTAKE_ZONES_FILE "territory-zones.csv" /* in the data directory */
#define INTAKE_MAX_ZONES 64

typedef struct intake_zones intake_zones_t;

/* Reads the file: the "# valid_from: YYYY-MM-DD" and "# source: ..." lines, the header
 * name,lat_min,lat_max,lon_min,lon_max, then one zone a line (other '#' lines are
 * comments, blank lines are skipped). Returns the zones, or NULL with err (code
 * "bad_zones", field the column or line at fault, message "PATH: line N: why") when
 * anything in it is wrong: nothing is half loaded. */
intake_zones_t *intake_zones_load (const char *path, qp_error_t *err);
void intake_zones_destroy (intake_zones_t **self_p);

size_t intake_zones_count (const intake_zones_t *self);
/* The file's valid_from date (YYYY-MM-DD). */
const char *intake_zones_valid_from (const intake_zones_t *self);
/* Name of the zone holding the point, or NULL. */
const char *intake_zones_find (const intake_zones_t *self, double lat, double lon);
/* Whether some zone spans that latitude (to tell a wrong latitude from a wrong longitude). */
bool intake_zones_span_latitude (const intake_zones_t *self, double lat);
#endif
