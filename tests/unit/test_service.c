/* qp_service's run loop against the real qp-bus: the after-burst hook (what funding
 * flushes its batch on) runs once what a read brought has been handled, with no timer. */
#include "qp_service.h"
#include "qp_test.h"
#include "qp_test_bus_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 5000 /* only a bound for failing tests, never a timing assertion */

/* The service under test: counts the queries it handles; its after-burst hook tells the
 * "probe" worker (the test) how many it had handled, when that changed. No timer. */
typedef struct {
    qp_service_t *service;
    int handled, reported;
} svc_t;

static void s_on_query (qp_request_t *req, void *arg)
{
    (void)req;
    ((svc_t *)arg)->handled++;
}

static void s_after_burst (qp_service_t *service, void *arg)
{
    svc_t *s = arg;
    if (s->handled == s->reported)
        return;
    s->reported = s->handled;
    char text[32];
    snprintf (text, sizeof text, "handled %d", s->handled);
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = text;
    qp_meta_t meta = {.discriminator = text, .producer = "svc"};
    qp_service_send (service, "probe", &q.base, &meta);
}

static void *s_run (void *arg)
{
    svc_t *s = arg;
    qp_service_run (s->service);
    return NULL;
}

/* The next report the probe receives: "handled N" -> N, -1 when none came. */
static int s_report (qp_bus_client_t *probe)
{
    qp_bus_frame_t f;
    if (!qp_test_bus_recv (probe, &f, WAIT_MS))
        return -1;
    int n = -1;
    qp_message_t msg;
    qp_error_t err;
    if (!strcmp (f.kind, QPB_DELIVER) && qp_message_decode (f.type, f.envelope, &msg, &err) == 0) {
        const Qp__V1__DossierStatusQuery *q = (const void *)msg.payload;
        if (msg.descriptor == &qp__v1__dossier_status_query__descriptor && q->dossier_id)
            sscanf (q->dossier_id, "handled %d", &n);
        qp_message_clear (&msg);
    }
    qp_bus_frame_clear (&f);
    return n;
}

static void s_send_query (qp_bus_client_t *client, int i)
{
    char id[32];
    snprintf (id, sizeof id, "dossier-%d", i);
    zmsg_t *m = qp_test_status_query (id, NULL);
    ck_assert_int_eq (qp_bus_client_send (client, "svc", &m), 0);
}

START_TEST (test_after_burst_flushes_without_a_timer)
{
    qp_bus_client_t *probe = qp_bus_client_new (stack->work);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    ck_assert_int_eq (qp_bus_client_ready (probe, "probe"), 0);
    ck_assert (qp_test_bus_wait_workers (stack->work, "probe", 1, WAIT_MS));

    svc_t s = {0};
    s.service = qp_service_new ("svc", stack->work, NULL, NULL);
    ck_assert_ptr_nonnull (s.service);
    qp_service_on (s.service, &qp__v1__dossier_status_query__descriptor, s_on_query, &s);
    qp_service_after_burst (s.service, s_after_burst, &s);
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_run, &s), 0);
    ck_assert (qp_test_bus_wait_workers (stack->work, "svc", 1, WAIT_MS));

    /* A lone message: the hook runs after it, and nothing else would report it. */
    s_send_query (client, 0);
    ck_assert_int_eq (s_report (probe), 1);

    /* A burst of 300: every one handled, and the hook ran after the last of them (how
     * many reads they took depends on the scheduler: not asserted). */
    for (int i = 1; i <= 300; i++)
        s_send_query (client, i);
    int last = 0;
    while (last >= 0 && last < 301)
        last = s_report (probe);
    ck_assert_int_eq (last, 301);

    qp_service_stop (s.service);
    ck_assert_int_eq (pthread_join (thread, NULL), 0);
    ck_assert_int_eq (s.handled, 301);
    qp_service_destroy (&s.service);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&probe);
}
END_TEST

int main (void)
{
    Suite *suite = suite_create ("service");
    TCase *tc = tcase_create ("run loop");
    tcase_add_checked_fixture (tc, qp_test_bus_setup, qp_test_bus_teardown);
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_after_burst_flushes_without_a_timer);
    suite_add_tcase (suite, tc);
    return qp_test_run_suite (suite);
}
