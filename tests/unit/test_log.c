/* The logger writes one valid JSON object per line, whatever bytes it is given, and
 * skips levels below the configured one. */
#include "qp_log.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

/* Runs the logging calls with stderr redirected to a file; returns its lines. */
static char *s_capture (void (*fn) (void))
{
    char *dir = qp_test_tmpdir ("qp-log");
    char path[1024];
    snprintf (path, sizeof path, "%s/err.log", dir);
    fflush (stderr);
    int saved = dup (2);
    FILE *f = fopen (path, "w");
    dup2 (fileno (f), 2);
    fn ();
    fflush (stderr);
    dup2 (saved, 2);
    close (saved);
    fclose (f);
    f = fopen (path, "r");
    char *text = calloc (1, 65536);
    size_t n = fread (text, 1, 65535, f);
    text[n] = 0;
    fclose (f);
    qp_test_rmtree (dir);
    free (dir);
    return text;
}

static void s_lines (void)
{
    qp_log_init ("unit", "info");
    qp_log_debug ("hidden", "not written at info");
    qp_log_info ("started", "plain \"quoted\" text\nwith a newline");
    qp_log_warn ("peer_bytes", "bad bytes: %s", "\xc3\x28\xff");
    qp_log_error ("failed", "code %d", 42);
}

START_TEST (test_json_lines)
{
    char *text = s_capture (s_lines);
    char *save = NULL;
    int n = 0;
    const char *events[] = {"started", "peer_bytes", "failed"};
    const char *levels[] = {"info", "warn", "error"};
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads (line, 0, &err);
        ck_assert_msg (j != NULL, "not JSON: %s (%s)", line, err.text);
        ck_assert_int_lt (n, 3);
        ck_assert_str_eq (json_string_value (json_object_get (j, "event")), events[n]);
        ck_assert_str_eq (json_string_value (json_object_get (j, "level")), levels[n]);
        ck_assert_str_eq (json_string_value (json_object_get (j, "program")), "unit");
        ck_assert_int_eq (json_integer_value (json_object_get (j, "pid")), getpid ());
        ck_assert_uint_eq (strlen (json_string_value (json_object_get (j, "ts"))), 24);
        if (n == 0)
            ck_assert_str_eq (json_string_value (json_object_get (j, "msg")),
                              "plain \"quoted\" text\nwith a newline");
        if (n == 2)
            ck_assert_str_eq (json_string_value (json_object_get (j, "msg")), "code 42");
        json_decref (j);
        n++;
    }
    ck_assert_int_eq (n, 3);
    free (text);
    ck_assert (!qp_log_enabled (QP_LOG_DEBUG));
    ck_assert (qp_log_enabled (QP_LOG_WARN));
    ck_assert_str_eq (qp_log_program (), "unit");
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("log");
    TCase *tc = tcase_create ("log");
    tcase_add_test (tc, test_json_lines);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
