/* Catalogue loader: validates every file fully before the service uses any of it. */
#include "qp_catalogue.h"
#include "qp_date.h"
#include <dirent.h>
#include <string.h>

typedef struct {
    qp_scheme_t scheme;
    json_t *doc;        /* owns every string the scheme and versions point into */
    json_t *versions;   /* borrowed array */
} entry_t;

struct qp_catalogue {
    entry_t *entries;
    size_t n;
};

static int s_cmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Checks one scheme file; fills e. */
static int s_check (const char *path, json_t *doc, entry_t *e, qp_error_t *err)
{
    const char *id = json_string_value (json_object_get (doc, "id"));
    const char *name = json_string_value (json_object_get (doc, "name"));
    const char *rule = json_string_value (json_object_get (doc, "rule"));
    const char *agency = json_string_value (json_object_get (doc, "agency"));
    json_t *versions = json_object_get (doc, "versions");
    if (!id || !name || !rule || !agency) {
        qp_error_set (err, "bad_catalogue", path, "%s: id, name, rule and agency are required strings",
                      path);
        return -1;
    }
    const ProtobufCEnumValue *ag =
        protobuf_c_enum_descriptor_get_value_by_name (&qp__v1__agency__descriptor, agency);
    if (!ag || ag->value == 0) {
        qp_error_set (err, "bad_catalogue", path, "%s: agency \"%s\" is not a qp.v1.Agency", path,
                      agency);
        return -1;
    }
    if (!json_is_array (versions) || json_array_size (versions) == 0) {
        qp_error_set (err, "bad_catalogue", path, "%s: versions must be a non-empty array", path);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach (versions, i, v) {
        int32_t from, until;
        const char *f = json_string_value (json_object_get (v, "valid_from"));
        json_t *u = json_object_get (v, "valid_until");
        json_t *params = json_object_get (v, "parameters");
        if (!f || !qp_date_parse (f, &from) ||
            (u && !json_is_null (u) && !qp_date_parse (json_string_value (u), &until))) {
            qp_error_set (err, "bad_catalogue", path,
                          "%s: versions[%zu]: valid_from/valid_until must be YYYY-MM-DD", path, i);
            return -1;
        }
        if (!json_string_value (json_object_get (v, "source")) ||
            !json_string_value (json_object_get (v, "version"))) {
            qp_error_set (err, "bad_catalogue", path,
                          "%s: versions[%zu]: version and source (legal source) are required",
                          path, i);
            return -1;
        }
        if (!json_is_object (params)) {
            qp_error_set (err, "bad_catalogue", path, "%s: versions[%zu]: parameters must be an object",
                          path, i);
            return -1;
        }
        const char *key;
        json_t *p;
        json_object_foreach (params, key, p) {
            if (!json_is_integer (p)) {
                qp_error_set (err, "bad_catalogue", path,
                              "%s: versions[%zu].parameters.%s must be an integer", path, i, key);
                return -1;
            }
        }
    }
    e->scheme = (qp_scheme_t){id, name, rule, (Qp__V1__Agency) ag->value};
    e->doc = doc;
    e->versions = versions;
    return 0;
}

qp_catalogue_t *qp_catalogue_load (const char *dir, qp_error_t *err)
{
    DIR *d = opendir (dir);
    if (!d) {
        qp_error_set (err, "bad_catalogue", dir, "cannot open catalogue directory %s", dir);
        return NULL;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir (d)) && n < 256) {
        size_t len = strlen (de->d_name);
        if (len > 5 && !strcmp (de->d_name + len - 5, ".json"))
            names[n++] = strdup (de->d_name);
    }
    closedir (d);
    qsort (names, n, sizeof names[0], s_cmp);

    qp_catalogue_t *self = calloc (1, sizeof *self);
    assert (self);
    self->entries = calloc (n ? n : 1, sizeof *self->entries);
    assert (self->entries);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf (path, sizeof path, "%s/%s", dir, names[i]);
        json_error_t jerr;
        json_t *doc = rc ? NULL : json_load_file (path, 0, &jerr);
        if (!rc && !doc) {
            qp_error_set (err, "bad_catalogue", path, "%s:%d: %s", path, jerr.line, jerr.text);
            rc = -1;
        } else if (!rc && s_check (path, doc, &self->entries[self->n], err) != 0) {
            json_decref (doc);
            rc = -1;
        } else if (!rc) {
            if (qp_catalogue_find (self, self->entries[self->n].scheme.id)) {
                qp_error_set (err, "bad_catalogue", path, "%s: scheme id \"%s\" defined twice",
                              path, self->entries[self->n].scheme.id);
                json_decref (doc);
                rc = -1;
            } else
                self->n++;
        }
        free (names[i]);
    }
    if (rc == 0 && self->n == 0) {
        qp_error_set (err, "bad_catalogue", dir, "no scheme file (*.json) in %s", dir);
        rc = -1;
    }
    if (rc)
        qp_catalogue_destroy (&self);
    return self;
}

void qp_catalogue_destroy (qp_catalogue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_catalogue_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        json_decref (self->entries[i].doc);
    free (self->entries);
    free (self);
    *self_p = NULL;
}

size_t qp_catalogue_size (const qp_catalogue_t *self) { return self->n; }

const qp_scheme_t *qp_catalogue_scheme (const qp_catalogue_t *self, size_t index)
{
    return index < self->n ? &self->entries[index].scheme : NULL;
}

const qp_scheme_t *qp_catalogue_find (const qp_catalogue_t *self, const char *id)
{
    for (size_t i = 0; id && i < self->n; i++)
        if (!strcmp (self->entries[i].scheme.id, id))
            return &self->entries[i].scheme;
    return NULL;
}

bool qp_catalogue_version_on (const qp_catalogue_t *self, const qp_scheme_t *scheme, int32_t date,
                              qp_scheme_version_t *out)
{
    const entry_t *e = (const entry_t *) scheme;
    (void) self;
    size_t i;
    json_t *v;
    json_array_foreach (e->versions, i, v) {
        int32_t from, until;
        const char *f = json_string_value (json_object_get (v, "valid_from"));
        const char *u = json_string_value (json_object_get (v, "valid_until"));
        qp_date_parse (f, &from);
        if (date < from || (u && qp_date_parse (u, &until) && date > until))
            continue;
        *out = (qp_scheme_version_t){json_string_value (json_object_get (v, "version")), f, u,
                                     json_string_value (json_object_get (v, "source")),
                                     json_object_get (v, "parameters")};
        return true;
    }
    return false;
}

bool qp_catalogue_param (const qp_scheme_version_t *version, const char *name, int64_t *value)
{
    json_t *p = json_object_get (version->parameters, name);
    if (!json_is_integer (p))
        return false;
    *value = json_integer_value (p);
    return true;
}
