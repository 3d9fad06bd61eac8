/* The territory zones file: read whole and checked line by line before anything is
 * kept, so a broken file is refused with the line at fault instead of validating
 * locations against half a table. */
#include "zones.h"
#include "qp_date.h"
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 1024
#define NAME_MAX_BYTES 64

typedef struct {
    char name[NAME_MAX_BYTES];
    double lat_min, lat_max, lon_min, lon_max;
} zone_t;

struct intake_zones {
    zone_t zones[INTAKE_MAX_ZONES];
    size_t count;
    char valid_from[11];
};

static const char *const s_columns[] = {"name", "lat_min", "lat_max", "lon_min", "lon_max"};
#define COLUMNS (sizeof s_columns / sizeof s_columns[0])

/* A number of degrees within [-bound, bound]: NULL, or why not. */
static const char *s_degrees (const char *text, double bound, double *out)
{
    char *end;
    errno = 0;
    double v = strtod (text, &end);
    if (!*text || *end || errno || text[0] == ' ')
        return "not a number";
    if (!isfinite (v))
        return "not a finite number";
    if (v < -bound || v > bound)
        return bound == 90 ? "outside -90..90 degrees" : "outside -180..180 degrees";
    *out = v;
    return NULL;
}

/* Splits line on ',' into at most COLUMNS + 1 fields; returns how many. */
static size_t s_split (char *line, char **fields)
{
    size_t n = 0;
    fields[n++] = line;
    for (char *c = line; *c; c++)
        if (*c == ',') {
            *c = 0;
            if (n == COLUMNS + 1)
                return n + 1; /* too many: the count alone says so */
            fields[n++] = c + 1;
        }
    return n;
}

/* The value after "# key:" on a comment line, trimmed, or NULL. */
static const char *s_meta (char *line, const char *key)
{
    size_t k = strlen (key);
    char *p = line + 1;
    while (*p == ' ')
        p++;
    if (strncmp (p, key, k) || p[k] != ':')
        return NULL;
    p += k + 1;
    while (*p == ' ')
        p++;
    return p;
}

static const char *s_row (intake_zones_t *self, char *line, const char **column)
{
    char *fields[COLUMNS + 2];
    size_t n = s_split (line, fields);
    *column = "line";
    if (n != COLUMNS)
        return "expected 5 fields separated by ',': name,lat_min,lat_max,lon_min,lon_max";
    if (self->count == INTAKE_MAX_ZONES)
        return "more zones than intake keeps (64)";
    zone_t *z = &self->zones[self->count];
    *column = "name";
    if (!*fields[0])
        return "the name is empty";
    if (strlen (fields[0]) >= sizeof z->name)
        return "the name is longer than 63 bytes";
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp (self->zones[i].name, fields[0]))
            return "a zone of this name is already given above";
    snprintf (z->name, sizeof z->name, "%s", fields[0]);
    double *values[] = {&z->lat_min, &z->lat_max, &z->lon_min, &z->lon_max};
    for (size_t c = 1; c < COLUMNS; c++) {
        *column = s_columns[c];
        const char *why = s_degrees (fields[c], c < 3 ? 90 : 180, values[c - 1]);
        if (why)
            return why;
    }
    *column = "lat_max";
    if (z->lat_min > z->lat_max)
        return "lat_max is below lat_min";
    *column = "lon_max";
    if (z->lon_min > z->lon_max)
        return "lon_max is below lon_min (a box across the antimeridian is two zones)";
    self->count++;
    return NULL;
}

intake_zones_t *intake_zones_load (const char *path, qp_error_t *err)
{
    FILE *file = path ? fopen (path, "r") : NULL;
    if (!file) {
        qp_error_set (err, "bad_zones", "file", "%s: %s", path ? path : "(no path)",
                      path ? strerror (errno) : "no zones file");
        return NULL;
    }
    intake_zones_t *self = calloc (1, sizeof *self);
    assert (self);
    char line[LINE_MAX_BYTES + 2];
    size_t line_no = 0;
    bool header = false, source = false;
    const char *why = NULL, *column = NULL;
    while (!why && fgets (line, sizeof line, file)) {
        line_no++;
        size_t len = strlen (line);
        if (len > LINE_MAX_BYTES && line[len - 1] != '\n') {
            why = "line longer than 1024 bytes", column = "line";
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len)
            continue;
        if (line[0] == '#') {
            const char *v;
            int32_t days;
            if ((v = s_meta (line, "valid_from"))) {
                column = "valid_from";
                if (strlen (v) != 10 || !qp_date_parse (v, &days))
                    why = "valid_from is not a date YYYY-MM-DD";
                else
                    snprintf (self->valid_from, sizeof self->valid_from, "%s", v);
            } else if ((v = s_meta (line, "source"))) {
                column = "source";
                if (!*v)
                    why = "the source is empty";
                source = true;
            }
            continue;
        }
        if (!header) {
            column = "header";
            if (strcmp (line, "name,lat_min,lat_max,lon_min,lon_max"))
                why = "the header must be name,lat_min,lat_max,lon_min,lon_max";
            header = true;
            continue;
        }
        why = s_row (self, line, &column);
    }
    bool read_error = ferror (file);
    fclose (file);
    if (!why && read_error)
        why = "cannot be read", column = "file";
    else if (!why) {
        /* What the whole file must have: said at its last line. */
        column = "file";
        if (!*self->valid_from)
            why = "no \"# valid_from: YYYY-MM-DD\" line";
        else if (!source)
            why = "no \"# source: ...\" line citing where the boxes come from";
        else if (!header)
            why = "no header name,lat_min,lat_max,lon_min,lon_max";
        else if (!self->count)
            why = "no zone";
    }
    if (why) {
        qp_error_set (err, "bad_zones", column, "%s: line %zu: %s", path, line_no, why);
        free (self);
        return NULL;
    }
    return self;
}

void intake_zones_destroy (intake_zones_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

size_t intake_zones_count (const intake_zones_t *self) { return self->count; }

const char *intake_zones_valid_from (const intake_zones_t *self) { return self->valid_from; }

const char *intake_zones_find (const intake_zones_t *self, double lat, double lon)
{
    for (size_t i = 0; i < self->count; i++) {
        const zone_t *z = &self->zones[i];
        if (lat >= z->lat_min && lat <= z->lat_max && lon >= z->lon_min && lon <= z->lon_max)
            return z->name;
    }
    return NULL;
}

bool intake_zones_span_latitude (const intake_zones_t *self, double lat)
{
    for (size_t i = 0; i < self->count; i++)
        if (lat >= self->zones[i].lat_min && lat <= self->zones[i].lat_max)
            return true;
    return false;
}
