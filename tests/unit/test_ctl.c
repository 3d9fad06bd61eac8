/* qp-ctl submit, run as a process, on lines it refuses before sending anything: an enum
 * value the JSON gives that does not exist is named by its field with every allowed
 * value, and what the user wrote is quoted back short and escaped, never whole. No
 * stack is needed: nothing reaches the bus (its endpoint is a free port nobody binds). */
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs qp-ctl submit on lines (one JSON a line); returns its stdout lines, parsed. */
static json_t *s_submit (const char *const *lines)
{
    char *dir = qp_test_tmpdir ("qp-ctl");
    ck_assert_ptr_nonnull (dir);
    char path[1024];
    snprintf (path, sizeof path, "%s/in.jsonl", dir);
    FILE *f = fopen (path, "w");
    ck_assert_ptr_nonnull (f);
    for (size_t i = 0; lines[i]; i++)
        fprintf (f, "%s\n", lines[i]);
    fclose (f);
    char work[64];
    snprintf (work, sizeof work, "QP_BUS_WORK=tcp://127.0.0.1:%d", qp_test_free_port ());
    const char *env[] = {work, NULL};
    const char *args[] = {"submit", path, "--timeout", "2", NULL};
    char *text;
    int status = qp_test_run ("ctl", env, args, 30000, &text, NULL);
    ck_assert_msg (status >= 0, "qp-ctl did not finish");
    ck_assert_int_eq (status, 0);
    json_t *out = json_array ();
    for (char *l = text, *end; *l; l = end ? end + 1 : l + strlen (l)) {
        end = strchr (l, '\n');
        if (end)
            *end = 0;
        json_error_t jerr;
        json_t *line = json_loads (l, 0, &jerr);
        ck_assert_msg (line, "qp-ctl wrote a line that is not JSON: %s", l);
        json_array_append_new (out, line);
    }
    free (text);
    qp_test_rmtree (dir);
    free (dir);
    return out;
}

static const char *s_error (json_t *out, size_t i, const char *what)
{
    json_t *e = json_object_get (json_array_get (out, i), "error");
    ck_assert_msg (e, "line %zu has no error", i + 1);
    return json_string_value (json_object_get (e, what));
}

START_TEST (test_unknown_enum_value)
{
    /* 2,400 bytes of a made-up axis, with a quote, a backslash, an escape and accents. */
    char *axis = malloc (8192);
    ck_assert_ptr_nonnull (axis);
    strcpy (axis, "{\"channel\": \"ctl\", \"channel_key\": \"k1\", \"project\": {\"axis\": \"NOT_AN_AXIS");
    for (int i = 0; i < 400; i++)
        strcat (axis, "\\\"\\\\\\u001b\\u00e9x");
    strcat (axis, "\"}}");
    const char *lines[] = {
        axis,
        "{\"dossier\": {\"channel\": \"ctl\", \"holder\": {\"network\": \"INITIATIVE_FRANC\"}}}",
        "{\"channel\": \"ctl\", \"project\": {\"stage\": 999}}",
        "{\"channel\": \"ctl\", \"holder\": {\"declared_target_group\": {\"a\": 1}}}",
        NULL};
    json_t *out = s_submit (lines);
    free (axis);
    ck_assert_uint_eq (json_array_size (out), 4);

    ck_assert_str_eq (s_error (out, 0, "code"), "invalid_field");
    ck_assert_str_eq (s_error (out, 0, "field"), "project.axis");
    const char *m = s_error (out, 0, "message");
    /* Quoted short (32 bytes, escaped) then cut, and every axis listed. */
    const char *quoted = "unknown value \"NOT_AN_AXIS\\x22\\x5c\\x1b\\xc3\\xa9x";
    ck_assert_msg (!strncmp (m, quoted, strlen (quoted)), "%s", m);
    ck_assert_msg (strstr (m, "...\"; one of "), "%s", m);
    ck_assert_msg (strstr (m, "ENTREPRENEURSHIP") && strstr (m, "RETAIL_AND_CRAFTS"), "%s", m);
    ck_assert_msg (!strstr (m, "AXIS_UNSPECIFIED"), "%s", m);
    ck_assert_msg (strlen (m) < 400, "%zu bytes: %s", strlen (m), m);
    for (const char *c = m; *c; c++)
        ck_assert_msg ((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f, "%s", m);

    /* The wrapped form: the path starts at the SubmitDossier. */
    ck_assert_str_eq (s_error (out, 1, "field"), "dossier.holder.network");
    m = s_error (out, 1, "message");
    quoted = "unknown value \"INITIATIVE_FRANC\"; one of ";
    ck_assert_msg (!strncmp (m, quoted, strlen (quoted)), "%s", m);
    ck_assert_msg (strstr (m, "INITIATIVE_FRANCE") && strstr (m, "ADIE"), "%s", m);

    /* A number that is no value, and a value of the wrong JSON kind, list the values too. */
    ck_assert_str_eq (s_error (out, 2, "field"), "project.stage");
    m = s_error (out, 2, "message");
    ck_assert_msg (strstr (m, "999") && strstr (m, "; one of ") && strstr (m, "CREATION"), "%s",
                   m);
    ck_assert_str_eq (s_error (out, 3, "field"), "holder.declared_target_group");
    m = s_error (out, 3, "message");
    ck_assert_msg (strstr (m, "; one of ") && strstr (m, "DISABLED_UNDER_29"), "%s", m);
    json_decref (out);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("ctl");
    TCase *tc = tcase_create ("ctl");
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_unknown_enum_value);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
