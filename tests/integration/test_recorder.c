/* The recorder as operators run it: the real qp-bus and qp-record with its probe endpoint
 * (QP_HTTP=127.0.0.1:0), scraped over HTTP. Its qp_record_* metrics follow what the bus
 * captured, /healthz and /readyz answer from its loop; a journal write that fails for
 * real (the recorder started under a file size limit, RLIMIT_FSIZE) shows in the metrics,
 * the log and readyz, and leaves every record written before it readable. */
#include "qp_bus.h"
#include "qp_journal.h"
#include "qp_message.h"
#include "qp_test.h"
#include "qp_test_http.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define WAIT_MS 10000 /* only a bound for failing tests, never a timing assertion */

static qp_test_stack_t *stack;

static void s_setup (void)
{
    const char *env[] = {"QP_HTTP=127.0.0.1:0", NULL};
    qp_test_stack_opts_t opts = {.no_redis = true, .env = env};
    stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
}

static void s_teardown (void)
{
    if (stack)
        qp_test_stack_stop (&stack);
}

/* qp-record on the stack's capture tap into journal, owned by the test (its exit status
 * is the test's to check). fsize_limit > 0: started under that RLIMIT_FSIZE. */
static qp_test_proc_t *s_recorder (const char *journal, rlim_t fsize_limit)
{
    char env_journal[1100];
    snprintf (env_journal, sizeof env_journal, "QP_JOURNAL=%s", journal);
    const char *env[64];
    size_t n = 0;
    for (char **e = stack->env; *e && n < 60; e++)
        env[n++] = *e;
    env[n++] = "QP_HTTP=127.0.0.1:0";
    env[n++] = env_journal;
    env[n] = NULL;
    struct rlimit old;
    ck_assert_int_eq (getrlimit (RLIMIT_FSIZE, &old), 0);
    if (fsize_limit) {
        /* The child inherits it at fork; the test's own limit is restored at once. */
        struct rlimit low = {fsize_limit, old.rlim_max};
        ck_assert_int_eq (setrlimit (RLIMIT_FSIZE, &low), 0);
    }
    qp_test_proc_t *p = qp_test_spawn ("record", env, NULL, stack->dir);
    if (fsize_limit)
        ck_assert_int_eq (setrlimit (RLIMIT_FSIZE, &old), 0);
    ck_assert_ptr_nonnull (p);
    for (int i = 0; i < WAIT_MS / 100 && qp_test_proc_log_count (p, "recorder_started") == 0; i++)
        qp_test_sleep_ms (100);
    if (qp_test_proc_log_count (p, "recorder_started") != 1)
        qp_test_proc_dump (p, 40);
    ck_assert_int_eq (qp_test_proc_log_count (p, "recorder_started"), 1);
    return p;
}

/* Sends queries d-from .. d-(to-1) to a service nobody serves: the bus captures each
 * (and queues it). */
static void s_send (qp_bus_client_t *c, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf (id, sizeof id, "d-%d", i);
        zmsg_t *m = qp_test_status_query (id, NULL);
        ck_assert_int_eq (qp_bus_client_send (c, "nobody", &m), 0);
    }
}

static char *s_metrics (int port)
{
    char *text = NULL;
    ck_assert_int_eq (qp_test_http_get (port, "/metrics", &text), 200);
    char *bad = qp_test_metrics_malformed (text);
    ck_assert_msg (bad == NULL, "malformed metrics line: %s", bad);
    return text;
}

/* Scrapes until metric (no labels filter unless given) reaches at least value; returns
 * the last scrape. */
static char *s_wait_metric (int port, const char *metric, const char *const *filter, double value)
{
    char *text = s_metrics (port);
    for (int i = 0; i < WAIT_MS / 100 && qp_test_metric (text, metric, filter) < value; i++) {
        free (text);
        qp_test_sleep_ms (100);
        text = s_metrics (port);
    }
    return text;
}

typedef struct {
    uint64_t messages, gaps, last_seq;
    int problems;
    char first_problem[24];
} journal_count_t;

static journal_count_t s_read_journal (const char *dir)
{
    journal_count_t c = {0};
    char err[256];
    qp_journal_reader_t *r = qp_journal_reader_open (dir, err, sizeof err);
    ck_assert_msg (r != NULL, "%s", err);
    qp_journal_record_t rec;
    qp_journal_problem_t problem;
    int rc;
    while ((rc = qp_journal_reader_next (r, &rec, &problem)) != 0) {
        if (rc < 0) {
            if (!c.problems++)
                snprintf (c.first_problem, sizeof c.first_problem, "%s", problem.code);
            continue;
        }
        if (rec.kind == QP_JOURNAL_GAP)
            c.gaps++;
        else {
            c.messages++;
            c.last_seq = rec.seq;
        }
    }
    qp_journal_reader_close (&r);
    return c;
}

START_TEST (test_metrics_follow_the_capture)
{
    enum { N = 250 };
    char journal[1100];
    snprintf (journal, sizeof journal, "%s/journal", stack->dir);
    qp_test_proc_t *rec = s_recorder (journal, 0);
    int port = qp_test_http_port_in_log (rec->log_path, 5000);
    ck_assert_int_gt (port, 0);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 200);
    char *ready = NULL;
    ck_assert_int_eq (qp_test_http_get (port, "/readyz", &ready), 200);
    ck_assert_msg (strstr (ready, "\"journal\":true") != NULL, "%s", ready);
    free (ready);

    qp_bus_client_t *c = qp_bus_client_new (stack->work);
    s_send (c, 0, N);
    char *text = s_wait_metric (port, "qp_record_frame_sets_total", NULL, N);
    ck_assert_int_eq ((int)qp_test_metric (text, "qp_record_frame_sets_total", NULL), N);
    /* Every capture seq the recorder saw is accounted for: written or in a gap record. */
    double last = qp_test_metric (text, "qp_record_last_seq", NULL);
    ck_assert (last >= N);
    ck_assert (qp_test_metric (text, "qp_record_missing_total", NULL) == last - N);
    ck_assert (qp_test_metric (text, "qp_record_journal_errors_total", NULL) == 0);
    ck_assert (qp_test_metric (text, "qp_record_discarded_total", NULL) == 0);
    double bytes = qp_test_metric (text, "qp_record_bytes_written_total", NULL);
    ck_assert (bytes >= N * (QP_JOURNAL_FRAME + QP_JOURNAL_BODY_HEADER));
    free (text);
    /* The size on disk is measured each second, after the flushes: segment header,
     * records, index. */
    text = s_wait_metric (port, "qp_record_journal_bytes", NULL, bytes + 32);
    ck_assert (qp_test_metric (text, "qp_record_journal_bytes", NULL) >= bytes + 32);
    ck_assert (qp_test_metric (text, "qp_record_journal_segments", NULL) == 1);
    free (text);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 200);

    /* An orderly stop: exit 0, and the journal holds what the metrics counted. */
    int status = -1;
    ck_assert (qp_test_proc_stop (rec, &status));
    ck_assert_int_eq (status, 0);
    journal_count_t j = s_read_journal (journal);
    ck_assert_int_eq (j.problems, 0);
    ck_assert_uint_eq (j.messages, N);
    ck_assert_uint_eq (j.last_seq, (uint64_t)last);
    qp_bus_client_destroy (&c);
    qp_test_proc_destroy (&rec);
}
END_TEST

START_TEST (test_write_failure_is_visible_and_harmless)
{
    enum { N = 2000, LIMIT = 64 * 1024 };
    char journal[1100];
    snprintf (journal, sizeof journal, "%s/journal", stack->dir);
    qp_test_proc_t *rec = s_recorder (journal, LIMIT);
    int port = qp_test_http_port_in_log (rec->log_path, 5000);
    ck_assert_int_gt (port, 0);
    qp_bus_client_t *c = qp_bus_client_new (stack->work);
    /* Over 64 KiB of records: a flush meets EFBIG. */
    s_send (c, 0, N);
    char *text = s_wait_metric (port, "qp_record_journal_errors_total", NULL, 1);
    ck_assert_msg (qp_test_metric (text, "qp_record_journal_errors_total", NULL) >= 1,
                   "no journal error after %d messages under a %d-byte file limit", N, LIMIT);
    free (text);
    /* After the error nothing more is written: what arrives is counted as discarded, and
     * every frame set the recorder received is either handed to the journal or discarded. */
    s_send (c, N, N + 100);
    text = s_wait_metric (port, "qp_record_discarded_total", NULL, 100);
    double written = qp_test_metric (text, "qp_record_frame_sets_total", NULL);
    double discarded = qp_test_metric (text, "qp_record_discarded_total", NULL);
    for (int i = 0; i < WAIT_MS / 100 && written + discarded < N + 100; i++) {
        free (text);
        qp_test_sleep_ms (100);
        text = s_metrics (port);
        written = qp_test_metric (text, "qp_record_frame_sets_total", NULL);
        discarded = qp_test_metric (text, "qp_record_discarded_total", NULL);
    }
    ck_assert_msg (written + discarded == N + 100, "%.0f written, %.0f discarded", written,
                   discarded);
    ck_assert (discarded >= 100);
    free (text);
    /* Not ready, still alive, said once in the log. */
    char *ready = NULL;
    ck_assert_int_eq (qp_test_http_get (port, "/readyz", &ready), 503);
    ck_assert_msg (strstr (ready, "\"journal\":false") != NULL, "%s", ready);
    free (ready);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 200);
    ck_assert (qp_test_proc_alive (rec));
    ck_assert_int_eq (qp_test_proc_log_count (rec, "journal_write_failed"), 1);
    int status = -1;
    ck_assert (qp_test_proc_stop (rec, &status));
    ck_assert_int_eq (status, 1);
    qp_test_proc_destroy (&rec);

    /* What was written before the failure reads back; at most an incomplete last record
     * follows it. */
    journal_count_t before = s_read_journal (journal);
    ck_assert_uint_gt (before.messages, 0);
    ck_assert_uint_lt (before.messages, N);
    ck_assert_int_le (before.problems, 1);
    if (before.problems)
        ck_assert_str_eq (before.first_problem, "truncated");

    /* Restarted without the limit: it cuts the torn tail, records on, and the journal
     * reads from end to end without a problem. */
    rec = s_recorder (journal, 0);
    port = qp_test_http_port_in_log (rec->log_path, 5000);
    s_send (c, N + 100, N + 110);
    text = s_wait_metric (port, "qp_record_frame_sets_total", NULL, 10);
    ck_assert_int_eq ((int)qp_test_metric (text, "qp_record_frame_sets_total", NULL), 10);
    free (text);
    ck_assert (qp_test_proc_stop (rec, &status));
    ck_assert_int_eq (status, 0);
    qp_test_proc_destroy (&rec);
    journal_count_t after = s_read_journal (journal);
    ck_assert_int_eq (after.problems, 0);
    ck_assert_uint_eq (after.messages, before.messages + 10);
    ck_assert_uint_ge (after.gaps, 1); /* the lost ones, as a gap record */
    qp_bus_client_destroy (&c);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("recorder");
    TCase *tc = tcase_create ("recorder");
    tcase_set_timeout (tc, 120);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_metrics_follow_the_capture);
    tcase_add_test (tc, test_write_failure_is_visible_and_harmless);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
