/* Flag and environment parsing driven by the option table. */
#include "qp_config.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_env_name (const char *name, char *out, size_t size)
{
    size_t n = snprintf (out, size, "QP_");
    for (const char *p = name; *p && n + 1 < size; p++)
        out[n++] = *p == '-' ? '_' : (char) toupper ((unsigned char) *p);
    out[n] = 0;
}

static int s_set (const char *program, qp_config_option_t *o, const char *value, const char *from)
{
    char *end = NULL;
    switch (o->type) {
    case QP_CFG_STRING: {
        char **t = o->target;
        free (*t);
        *t = value ? strdup (value) : NULL;
        return 0;
    }
    case QP_CFG_INT: {
        errno = 0;
        long v = strtol (value, &end, 10);
        if (errno || !*value || *end || (o->min != o->max && (v < o->min || v > o->max))) {
            fprintf (stderr, "%s: %s %s: \"%s\" is not an integer in [%ld, %ld]\n", program, from,
                     o->name, value, o->min, o->max);
            return -1;
        }
        *(long *) o->target = v;
        return 0;
    }
    case QP_CFG_DOUBLE: {
        double v = strtod (value, &end);
        if (!*value || *end || !isfinite (v)) {
            fprintf (stderr, "%s: %s %s: \"%s\" is not a number\n", program, from, o->name, value);
            return -1;
        }
        *(double *) o->target = v;
        return 0;
    }
    case QP_CFG_BOOL:
        if (!strcmp (value, "1") || !strcmp (value, "true") || !strcmp (value, "yes"))
            *(bool *) o->target = true;
        else if (!strcmp (value, "0") || !strcmp (value, "false") || !strcmp (value, "no"))
            *(bool *) o->target = false;
        else {
            fprintf (stderr, "%s: %s %s: \"%s\" is not a boolean\n", program, from, o->name, value);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void s_help (const char *program, const char *summary, qp_config_option_t *options)
{
    printf ("Usage: %s [OPTIONS]\n%s\n\nOptions (flag, environment variable, default):\n", program,
            summary);
    for (qp_config_option_t *o = options; o->name; o++) {
        char env[96];
        s_env_name (o->name, env, sizeof env);
        printf ("  --%-22s %-26s %s (default: %s)\n", o->name, env, o->help,
                o->default_value ? o->default_value : "unset");
    }
    printf ("  --help                   this text\n");
}

/* Copies of the settings the shared layers read (qp_config_setting). */
static const char *s_shared_names[] = {"http",       "redis-sentinels", "redis-master-name",
                                       "redis-user", "redis-password",  "event-pipe"};
#define N_SHARED (sizeof s_shared_names / sizeof s_shared_names[0])
static char *s_shared[N_SHARED];

static void s_keep_shared (qp_config_option_t *options)
{
    for (size_t i = 0; i < N_SHARED; i++) {
        free (s_shared[i]);
        s_shared[i] = NULL;
        for (qp_config_option_t *o = options; o->name; o++)
            if (!strcmp (o->name, s_shared_names[i])) {
                char number[32];
                if (o->type == QP_CFG_INT) {
                    snprintf (number, sizeof number, "%ld", *(long *) o->target);
                    s_shared[i] = strdup (number);
                } else if (o->type == QP_CFG_STRING && *(char **) o->target)
                    s_shared[i] = strdup (*(char **) o->target);
            }
    }
}

const char *qp_config_setting (const char *name)
{
    for (size_t i = 0; i < N_SHARED; i++)
        if (!strcmp (name, s_shared_names[i]))
            return s_shared[i] && *s_shared[i] ? s_shared[i] : NULL;
    return NULL;
}

static int s_parse (const char *program, const char *summary, qp_config_option_t *options,
                    int argc, char **argv);

int qp_config_parse (const char *program, const char *summary, qp_config_option_t *options,
                     int argc, char **argv)
{
    int rc = s_parse (program, summary, options, argc, argv);
    if (rc == 0)
        s_keep_shared (options);
    return rc;
}

static int s_parse (const char *program, const char *summary, qp_config_option_t *options,
                    int argc, char **argv)
{
    for (qp_config_option_t *o = options; o->name; o++) {
        char env[96];
        s_env_name (o->name, env, sizeof env);
        const char *value = getenv (env);
        const char *from = "environment";
        if (!value) {
            value = o->default_value;
            from = "default";
        }
        if (value || o->type == QP_CFG_STRING)
            if (s_set (program, o, value, from))
                return -1;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
            s_help (program, summary, options);
            return 1;
        }
        if (strncmp (argv[i], "--", 2) != 0) {
            fprintf (stderr, "%s: unexpected argument \"%s\" (see --help)\n", program, argv[i]);
            return -1;
        }
        const char *name = argv[i] + 2;
        const char *eq = strchr (name, '=');
        size_t len = eq ? (size_t) (eq - name) : strlen (name);
        qp_config_option_t *o = options;
        while (o->name && (strlen (o->name) != len || strncmp (o->name, name, len)))
            o++;
        if (!o->name) {
            fprintf (stderr, "%s: unknown option \"%s\" (see --help)\n", program, argv[i]);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->type == QP_CFG_BOOL)
            value = "true";
        if (!value) {
            if (i + 1 >= argc) {
                fprintf (stderr, "%s: option --%s needs a value\n", program, o->name);
                return -1;
            }
            value = argv[++i];
        }
        if (s_set (program, o, value, "flag"))
            return -1;
    }
    return 0;
}

void qp_config_free (qp_config_option_t *options)
{
    for (qp_config_option_t *o = options; o->name; o++)
        if (o->type == QP_CFG_STRING) {
            free (*(char **) o->target);
            *(char **) o->target = NULL;
        }
}
