/* The metrics registry (text format, labels, histograms) and the probe endpoint served
 * by libmicrohttpd, in-process on a real loopback socket. */
#include "qp_health.h"
#include "qp_metrics.h"
#include "qp_test.h"
#include "qp_test_http.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

static void s_teardown (void) { qp_metrics_reset (); }

START_TEST (test_counters_gauges_and_labels)
{
    char l1[128], l2[128];
    qp_metrics_labels (l1, sizeof l1, "service", "intake", "type", "qp.v1.SubmitDossier", NULL);
    qp_metrics_labels (l2, sizeof l2, "service", "intake", "type", "qp.v1.DossierStatusQuery", NULL);
    qp_metric_t *a = qp_metrics_counter ("qp_in_total", "messages in", l1);
    qp_metric_add (a, 2);
    qp_metric_add (qp_metrics_counter ("qp_in_total", "ignored help", l1), 1);
    qp_metric_add (qp_metrics_counter ("qp_in_total", NULL, l2), 5);
    qp_metric_add (a, -4); /* a counter never goes down */
    qp_metric_set (qp_metrics_gauge ("qp_queue", "depth", ""), 7);
    qp_metric_add (qp_metrics_gauge ("qp_queue", "depth", ""), -2);
    ck_assert (qp_metric_value (a) == 3);
    /* The same name with another kind is refused, and the NULL is harmless. */
    ck_assert_ptr_null (qp_metrics_gauge ("qp_in_total", "", l1));
    qp_metric_add (NULL, 1);
    qp_metric_observe (qp_metrics_histogram ("qp_queue", "", ""), 1);

    char *text = qp_metrics_render ();
    char *bad = qp_test_metrics_malformed (text);
    ck_assert_msg (bad == NULL, "malformed line: %s", bad);
    ck_assert_ptr_nonnull (strstr (text, "# HELP qp_in_total messages in\n# TYPE qp_in_total counter\n"));
    ck_assert_ptr_nonnull (
        strstr (text, "qp_in_total{service=\"intake\",type=\"qp.v1.SubmitDossier\"} 3\n"));
    ck_assert_ptr_nonnull (strstr (text, "# TYPE qp_queue gauge\nqp_queue 5\n"));
    const char *svc[] = {"service=\"intake\"", NULL};
    ck_assert (qp_test_metric (text, "qp_in_total", svc) == 8);
    free (text);
}
END_TEST

START_TEST (test_label_values_are_escaped)
{
    char l[128];
    ck_assert_ptr_nonnull (qp_metrics_labels (l, sizeof l, "reason", "a\"b\\c\nd", NULL));
    ck_assert_str_eq (l, "reason=\"a\\\"b\\\\c\\nd\"");
    char small[12];
    ck_assert_ptr_null (qp_metrics_labels (small, sizeof small, "service", "eligibility", NULL));
    ck_assert_str_eq (small, "");
    qp_metric_add (qp_metrics_counter ("qp_errors_total", "by reason", l), 1);
    char *text = qp_metrics_render ();
    char *bad = qp_test_metrics_malformed (text);
    ck_assert_msg (bad == NULL, "malformed line: %s", bad);
    free (text);
}
END_TEST

START_TEST (test_histogram_buckets_are_cumulative)
{
    qp_metric_t *h = qp_metrics_histogram ("qp_handler_seconds", "latency", "type=\"x\"");
    qp_metric_observe (h, 0.0002);
    qp_metric_observe (h, 0.003);
    qp_metric_observe (h, 0.003);
    qp_metric_observe (h, 42); /* above every bucket: only +Inf */
    char *text = qp_metrics_render ();
    char *bad = qp_test_metrics_malformed (text);
    ck_assert_msg (bad == NULL, "malformed line: %s", bad);
    ck_assert_ptr_nonnull (strstr (text, "qp_handler_seconds_bucket{type=\"x\",le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull (strstr (text, "qp_handler_seconds_bucket{type=\"x\",le=\"0.0025\"} 1\n"));
    ck_assert_ptr_nonnull (strstr (text, "qp_handler_seconds_bucket{type=\"x\",le=\"0.005\"} 3\n"));
    ck_assert_ptr_nonnull (strstr (text, "qp_handler_seconds_bucket{type=\"x\",le=\"10\"} 3\n"));
    ck_assert_ptr_nonnull (strstr (text, "qp_handler_seconds_bucket{type=\"x\",le=\"+Inf\"} 4\n"));
    ck_assert_ptr_nonnull (strstr (text, "qp_handler_seconds_count{type=\"x\"} 4\n"));
    const char *x[] = {"type=\"x\"", NULL};
    double sum = qp_test_metric (text, "qp_handler_seconds_sum", x);
    ck_assert (sum > 42.006 && sum < 42.0063);
    free (text);
}
END_TEST

START_TEST (test_probe_endpoint)
{
    ck_assert_int_eq (qp_health_start ("127.0.0.1:notaport"), -1);
    ck_assert_int_eq (qp_health_start ("no-port"), -1);
    int port = qp_health_start ("127.0.0.1:0");
    ck_assert_int_gt (port, 0);
    ck_assert_int_eq (qp_health_port (), port);
    qp_metric_add (qp_metrics_counter ("qp_test_total", "a counter", ""), 3);

    char *body = NULL;
    ck_assert_int_eq (qp_test_http_get (port, "/metrics", &body), 200);
    ck_assert_ptr_nonnull (strstr (body, "qp_test_total 3\n"));
    free (body);

    /* Ready only when every check is. */
    qp_health_check ("bus", true);
    qp_health_check ("redis", false);
    ck_assert_int_eq (qp_test_http_get (port, "/readyz", &body), 503);
    ck_assert_ptr_nonnull (strstr (body, "\"redis\":false"));
    free (body);
    qp_health_check ("redis", true);
    ck_assert_int_eq (qp_test_http_get (port, "/readyz", &body), 200);
    ck_assert_ptr_nonnull (strstr (body, "\"ready\":true"));
    free (body);

    /* Alive while the loop ticks; a loop stuck past the stall limit is not. */
    qp_health_tick ();
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 200);
    qp_health_set_stall_ms (-1);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 503);
    qp_health_set_stall_ms (60000);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 200);

    ck_assert_int_eq (qp_test_http_get (port, "/nothing", NULL), 404);
    qp_health_stop ();
    ck_assert_int_eq (qp_health_port (), -1);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), -1);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("metrics");
    TCase *tc = tcase_create ("registry");
    tcase_add_checked_fixture (tc, NULL, s_teardown);
    tcase_add_test (tc, test_counters_gauges_and_labels);
    tcase_add_test (tc, test_label_values_are_escaped);
    tcase_add_test (tc, test_histogram_buckets_are_cumulative);
    tcase_add_test (tc, test_probe_endpoint);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
