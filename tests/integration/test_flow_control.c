/* Credit-based flow control between the real qp-bus and its workers (QPB/1 READY with a
 * window, WORK, CREDIT): a worker gets at most its window of work until it returns credit,
 * the rest waits in the bus (STATUS "queued"), and everything then arrives once, in order.
 * Workers that announce no window, and replies to a worker's own requests, are not held. */
#include "qp_bus.h"
#include "qp_message.h"
#include "qp_test.h"
#include "qp_test_bus_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 5000 /* only a bound for failing tests, never a timing assertion */
#define QUIET_MS 300 /* how long "nothing more arrives" is watched (cannot pass falsely) */

/* Sends queries d-from .. d-(to-1) to service. */
static void s_send_queries (qp_bus_client_t *c, const char *service, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf (id, sizeof id, "d-%d", i);
        zmsg_t *m = qp_test_status_query (id, NULL);
        ck_assert_int_eq (qp_bus_client_send (c, service, &m), 0);
    }
}

/* Receives one delivered query, checks its kind and work flag, returns its number. */
static int s_expect_query (qp_bus_client_t *c, bool work)
{
    qp_bus_frame_t f;
    ck_assert_msg (qp_test_bus_recv (c, &f, WAIT_MS), "nothing delivered");
    ck_assert_str_eq (f.kind, QPB_DELIVER);
    ck_assert_int_eq (f.work, work);
    qp_message_t msg;
    qp_error_t err;
    ck_assert_msg (qp_message_decode (f.type, f.envelope, &msg, &err) == 0, "%s: %s", err.code,
                   err.message);
    ck_assert_ptr_eq (msg.descriptor, &qp__v1__dossier_status_query__descriptor);
    const char *id = ((Qp__V1__DossierStatusQuery *) msg.payload)->dossier_id;
    ck_assert (id && !strncmp (id, "d-", 2));
    int n = atoi (id + 2);
    qp_message_clear (&msg);
    qp_bus_frame_clear (&f);
    return n;
}

/* Nothing more arrives on c. */
static void s_expect_nothing (qp_bus_client_t *c)
{
    qp_bus_frame_t f;
    bool got = qp_test_bus_recv (c, &f, QUIET_MS);
    ck_assert_msg (!got, "unexpected %s", f.kind);
}

/* The bus's STATUS field of service, asked through c's own socket: it comes after
 * everything c sent before (one pipe, in order). */
static long s_stat (qp_bus_client_t *c, const char *service, const char *field)
{
    zsock_send (qp_bus_client_socket (c), "ss", QPB_PROTOCOL, QPB_STATUS);
    qp_bus_frame_t f;
    long v = -1;
    while (qp_test_bus_recv (c, &f, WAIT_MS)) {
        bool status = !strcmp (f.kind, QPB_STATUS);
        if (status) {
            json_t *j = json_loads (f.text, 0, NULL);
            json_t *x = json_object_get (json_object_get (json_object_get (j, "services"), service),
                                         field);
            v = json_is_integer (x) ? (long) json_integer_value (x) : -1;
            json_decref (j);
        }
        qp_bus_frame_clear (&f);
        if (status)
            break;
    }
    return v;
}

/* Polls (through a fresh socket) until field of service is value. */
static bool s_wait_stat (const char *service, const char *field, long value)
{
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        if (qp_test_bus_service_stat (stack->work, service, field) == value)
            return true;
        qp_test_sleep_ms (50);
    }
    return false;
}

static qp_bus_client_t *s_worker (const char *service, long window, int min_workers)
{
    qp_bus_client_t *w = qp_bus_client_new (stack->work);
    ck_assert_ptr_nonnull (w);
    qp_bus_client_window (w, window);
    ck_assert_int_eq (qp_bus_client_ready (w, service), 0);
    ck_assert_msg (qp_test_bus_wait_workers (stack->work, service, min_workers, WAIT_MS),
                   "%s never had %d workers", service, min_workers);
    return w;
}

START_TEST (test_window_holds_the_rest_in_the_bus)
{
    enum { WINDOW = 4, N = 10 };
    qp_bus_client_t *worker = s_worker ("fc", WINDOW, 1);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    ck_assert_int_eq (s_stat (worker, "fc", "credit"), WINDOW);
    s_send_queries (client, "fc", 0, N);
    /* The bus has read all N (the client's STATUS comes after them): WINDOW went out. */
    ck_assert_int_eq (s_stat (client, "fc", "queued"), N - WINDOW);
    ck_assert_int_eq (s_stat (client, "fc", "routed"), WINDOW);
    ck_assert_int_eq (s_stat (client, "fc", "inflight"), WINDOW);
    ck_assert_int_eq (s_stat (client, "fc", "credit"), 0);
    for (int i = 0; i < WINDOW; i++)
        ck_assert_int_eq (s_expect_query (worker, true), i);
    s_expect_nothing (worker);

    /* Credit back (a window of 4 returns it one by one): the rest, once and in order. */
    for (int i = 0; i < WINDOW; i++)
        qp_bus_client_done (worker);
    for (int i = WINDOW; i < N; i++) {
        ck_assert_int_eq (s_expect_query (worker, true), i);
        qp_bus_client_done (worker);
    }
    s_expect_nothing (worker);
    ck_assert_int_eq (s_stat (worker, "fc", "queued"), 0);
    ck_assert_int_eq (s_stat (worker, "fc", "inflight"), 0);
    ck_assert_int_eq (s_stat (worker, "fc", "credit"), WINDOW);
    ck_assert_int_eq (s_stat (worker, "fc", "routed"), N);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
}
END_TEST

START_TEST (test_no_window_gets_everything_at_once)
{
    enum { N = 50 };
    /* A raw DEALER as the Python partner and older peers speak: READY without a window. */
    zsock_t *raw = zsock_new_dealer (stack->work);
    ck_assert_int_eq (zsock_send (raw, "sss", QPB_PROTOCOL, QPB_READY, "plain"), 0);
    ck_assert (qp_test_bus_wait_workers (stack->work, "plain", 1, WAIT_MS));
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_send_queries (client, "plain", 0, N);
    ck_assert_int_eq (s_stat (client, "plain", "queued"), 0);
    ck_assert_int_eq (s_stat (client, "plain", "routed"), N);
    ck_assert_int_eq (s_stat (client, "plain", "inflight"), 0);
    ck_assert_int_eq (s_stat (client, "plain", "credit"), 0);
    zpoller_t *p = zpoller_new (raw, NULL);
    for (int i = 0; i < N; i++) {
        ck_assert_msg (zpoller_wait (p, WAIT_MS), "delivery %d missing", i);
        zmsg_t *m = zmsg_recv (raw);
        ck_assert_int_eq (zmsg_size (m), 5);
        char *proto = zmsg_popstr (m), *kind = zmsg_popstr (m);
        ck_assert_str_eq (kind, QPB_DELIVER);
        free (proto), free (kind);
        zmsg_destroy (&m);
    }
    zpoller_destroy (&p);
    zsock_destroy (&raw);
    qp_bus_client_destroy (&client);
}
END_TEST

START_TEST (test_replies_take_no_credit)
{
    /* The worker's window is full; a reply to its own request still reaches it, as a
     * DELIVER that is not work, and takes nothing from the window. */
    qp_bus_client_t *worker = s_worker ("fc", 2, 1);
    qp_bus_client_t *echo = s_worker ("echo", 0, 1);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_send_queries (client, "fc", 0, 3);
    ck_assert_int_eq (s_stat (client, "fc", "queued"), 1);
    ck_assert_int_eq (s_expect_query (worker, true), 0);
    ck_assert_int_eq (s_expect_query (worker, true), 1);

    s_send_queries (worker, "echo", 100, 101);
    qp_bus_frame_t f;
    ck_assert (qp_test_bus_recv (echo, &f, WAIT_MS));
    ck_assert_str_eq (f.kind, QPB_DELIVER);
    ck_assert (!f.work);
    zmsg_t *answer = qp_test_status_query ("d-200", NULL);
    ck_assert_int_eq (qp_bus_client_reply (echo, f.from, &answer), 0);
    qp_bus_frame_clear (&f);
    ck_assert_int_eq (s_expect_query (worker, false), 200);
    ck_assert_int_eq (s_stat (worker, "fc", "inflight"), 2);
    ck_assert_int_eq (s_stat (worker, "fc", "queued"), 1);

    qp_bus_client_done (worker); /* window 2: credit goes back one by one */
    ck_assert_int_eq (s_expect_query (worker, true), 2);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&echo);
    qp_bus_client_destroy (&worker);
}
END_TEST

START_TEST (test_credit_is_capped_and_checked)
{
    enum { WINDOW = 3, N = 8 };
    qp_bus_client_t *worker = s_worker ("fc", WINDOW, 1);
    /* Credits the bus never gave (a restarted bus hears the old ones): no more window. */
    zsock_send (qp_bus_client_socket (worker), "ssss", QPB_PROTOCOL, QPB_CREDIT, "fc", "1000");
    ck_assert_int_eq (s_stat (worker, "fc", "credit"), WINDOW);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_send_queries (client, "fc", 0, N);
    ck_assert_int_eq (s_stat (client, "fc", "queued"), N - WINDOW);
    ck_assert_int_eq (s_stat (client, "fc", "inflight"), WINDOW);

    /* Malformed counts are refused, naming the command and the frame. */
    zsock_t *raw = zsock_new_dealer (stack->work);
    const char *bad[][6] = {{QPB_PROTOCOL, QPB_READY, "svc", "0", NULL},
                            {QPB_PROTOCOL, QPB_READY, "svc", "65537", NULL},
                            {QPB_PROTOCOL, QPB_READY, "svc", "12x", NULL},
                            {QPB_PROTOCOL, QPB_READY, "svc", "4", "extra", NULL},
                            {QPB_PROTOCOL, QPB_CREDIT, "fc", "-1", NULL},
                            {QPB_PROTOCOL, QPB_CREDIT, "fc", NULL, NULL},
                            {QPB_PROTOCOL, QPB_CREDIT, "fc", "", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zmsg_t *r = qp_test_raw_exchange (raw, bad[i], WAIT_MS);
        ck_assert_msg (r, "no answer to bad frame set %zu", i);
        char *proto = zmsg_popstr (r), *kind = zmsg_popstr (r), *code = zmsg_popstr (r),
             *detail = zmsg_popstr (r);
        ck_assert_str_eq (kind, QPB_ERROR);
        ck_assert_str_eq (code, "malformed_frame");
        ck_assert_msg (strstr (detail, bad[i][1]) && strstr (detail, "frame"), "%zu: %s", i,
                       detail);
        free (proto), free (kind), free (code), free (detail);
        zmsg_destroy (&r);
    }
    zsock_destroy (&raw);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "svc"), 0);

    /* The worker's own credit still works: everything arrives once, in order. */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq (s_expect_query (worker, true), i);
        qp_bus_client_done (worker);
    }
    s_expect_nothing (worker);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
}
END_TEST

START_TEST (test_round_robin_over_workers_with_credit)
{
    enum { WINDOW = 2, N = 9 };
    qp_bus_client_t *a = s_worker ("fc", WINDOW, 1);
    qp_bus_client_t *b = s_worker ("fc", WINDOW, 2);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_send_queries (client, "fc", 0, N);
    ck_assert_int_eq (s_stat (client, "fc", "queued"), N - 2 * WINDOW);
    int seen[N] = {0};
    for (int i = 0; i < WINDOW; i++) {
        seen[s_expect_query (a, true)]++;
        seen[s_expect_query (b, true)]++;
    }
    s_expect_nothing (a);
    s_expect_nothing (b);
    /* Only b returns credit: b gets the next ones, a still nothing. */
    qp_bus_client_done (b);
    qp_bus_client_done (b);
    for (int i = 0; i < WINDOW; i++) {
        seen[s_expect_query (b, true)]++;
        qp_bus_client_done (b);
    }
    /* b's last credit brought more; a returns its credit and shares what is left. */
    qp_bus_client_done (a);
    qp_bus_client_done (a);
    ck_assert (s_wait_stat ("fc", "queued", 0));
    int got_a = 0;
    qp_bus_frame_t f;
    while (qp_test_bus_recv (a, &f, QUIET_MS)) {
        qp_bus_frame_clear (&f);
        got_a++;
    }
    while (qp_test_bus_recv (b, &f, QUIET_MS))
        qp_bus_frame_clear (&f);
    ck_assert_int_gt (got_a, 0);
    for (int i = 0; i < 2 * WINDOW; i++)
        ck_assert_int_eq (seen[i], 1);
    ck_assert_int_eq (qp_test_bus_service_stat (stack->work, "fc", "routed"), N);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&b);
    qp_bus_client_destroy (&a);
}
END_TEST

START_TEST (test_worker_leaving_with_work)
{
    /* A worker that leaves with work it never credited loses it (the outbox covers events);
     * the queue goes on to the next worker with a whole window. */
    qp_bus_client_t *a = s_worker ("fc", 2, 1);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_send_queries (client, "fc", 0, 5);
    ck_assert_int_eq (s_stat (client, "fc", "queued"), 3);
    qp_bus_client_bye (a);
    ck_assert (s_wait_stat ("fc", "workers", 0));
    qp_bus_client_t *b = s_worker ("fc", 8, 1);
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq (s_expect_query (b, true), i);
    ck_assert_int_eq (s_stat (b, "fc", "inflight"), 3);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&b);
    qp_bus_client_destroy (&a);
}
END_TEST

START_TEST (test_bus_restart_cannot_inflate_the_window)
{
    /* The worker holds 2 messages of a bus that dies; the new bus learns the worker from
     * its heartbeat (a whole window), then the old messages' credit comes back: the window
     * stays 2. */
    enum { WINDOW = 2 };
    qp_bus_client_t *worker = s_worker ("fc", WINDOW, 1);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_send_queries (client, "fc", 0, WINDOW);
    for (int i = 0; i < WINDOW; i++)
        ck_assert_int_eq (s_expect_query (worker, true), i);
    qp_bus_client_destroy (&client);

    qp_test_proc_kill (stack->bus);
    qp_test_proc_destroy (&stack->bus);
    stack->bus = qp_test_spawn ("bus", (const char *const *) stack->env, NULL, stack->dir);
    ck_assert_ptr_nonnull (stack->bus);
    bool back = false;
    for (int waited = 0; waited < WAIT_MS && !back; waited += 100) {
        qp_bus_client_heartbeat (worker);
        back = qp_test_bus_wait_workers (stack->work, "fc", 1, 100);
    }
    ck_assert_msg (back, "the worker never registered with the new bus");
    ck_assert_int_eq (s_stat (worker, "fc", "credit"), WINDOW);
    for (int i = 0; i < WINDOW; i++)
        qp_bus_client_done (worker); /* the old bus's work, credited to the new one */
    ck_assert_int_eq (s_stat (worker, "fc", "credit"), WINDOW);
    ck_assert_int_eq (s_stat (worker, "fc", "inflight"), 0);

    client = qp_bus_client_new (stack->work);
    s_send_queries (client, "fc", 10, 15);
    ck_assert_int_eq (s_stat (client, "fc", "queued"), 5 - WINDOW);
    for (int i = 0; i < WINDOW; i++)
        ck_assert_int_eq (s_expect_query (worker, true), 10 + i);
    s_expect_nothing (worker);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
}
END_TEST

/* A top-level STATUS field, -1 when absent or no answer. */
static long s_top (const char *field)
{
    json_t *j = qp_test_bus_status (stack->work, WAIT_MS);
    json_t *x = json_object_get (j, field);
    long v = json_is_integer (x) ? (long) json_integer_value (x) : -1;
    json_decref (j);
    return v;
}

static bool s_wait_top (const char *field, long value)
{
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        if (s_top (field) == value)
            return true;
        qp_test_sleep_ms (50);
    }
    return false;
}

START_TEST (test_capture_only_for_subscribers)
{
    /* The tap is an XPUB: the bus knows whether a recorder listens, and builds no capture
     * copy for nobody; the sequence still counts every routed message. */
    qp_bus_client_t *worker = s_worker ("plain", 0, 1);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    ck_assert_int_eq (s_top ("capture_topics"), 0);
    long before = s_top ("captured");
    s_send_queries (client, "plain", 0, 3);
    ck_assert_int_eq (s_stat (client, "plain", "routed"), 3);
    ck_assert_int_eq (s_top ("captured"), before + 3);

    zsock_t *a = zsock_new_sub (stack->capture, "");
    zsock_t *b = zsock_new_sub (stack->capture, "");
    ck_assert (s_wait_top ("capture_topics", 1)); /* one topic, whoever subscribes to it */
    s_send_queries (client, "plain", 3, 4);
    zpoller_t *p = zpoller_new (a, NULL);
    ck_assert_msg (zpoller_wait (p, WAIT_MS), "the subscriber got no capture");
    zpoller_destroy (&p);
    zmsg_t *m = zmsg_recv (a);
    ck_assert_int_eq (zmsg_size (m), 5);
    zmsg_destroy (&m);
    zsock_destroy (&a);
    qp_test_sleep_ms (200); /* b still listens: the topic stays */
    ck_assert_int_eq (s_top ("capture_topics"), 1);
    zsock_destroy (&b);
    ck_assert (s_wait_top ("capture_topics", 0));
    s_send_queries (client, "plain", 4, 5);
    ck_assert_int_eq (s_stat (client, "plain", "routed"), 5);
    ck_assert_int_eq (s_top ("captured"), before + 5);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
}
END_TEST

/* A real service opts in: intake with a window of 8 answers a burst of 300 queries. */
START_TEST (test_real_service_under_a_small_window)
{
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), "QP_BUS_WINDOW=8",
                         NULL};
    const char *const programs[] = {"intake", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = programs, .env = env};
    stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    ck_assert (s_wait_stat ("intake", "credit", 8));

    enum { N = 300 };
    qp_test_client_t *c = qp_test_client_new (stack->work);
    Qp__V1__DossierStatusQuery *q = calloc (N, sizeof *q);
    const ProtobufCMessage **payloads = calloc (N, sizeof *payloads);
    qp_message_t *replies = calloc (N, sizeof *replies);
    char (*ids)[QP_ID_HEX + 1] = calloc (N, sizeof *ids);
    for (int i = 0; i < N; i++) {
        qp__v1__dossier_status_query__init (&q[i]);
        snprintf (ids[i], sizeof ids[i], "%0*x", QP_ID_HEX, i); /* well formed, unknown */
        q[i].dossier_id = ids[i];
        payloads[i] = &q[i].base;
    }
    ck_assert_int_eq (qp_test_client_call_many (c, "intake", payloads, NULL, N, 30000, replies), N);
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_eq (replies[i].descriptor, &qp__v1__dossier_status_reply__descriptor);
        qp_message_clear (&replies[i]);
    }
    /* All credit comes back (the last of it with the heartbeat). */
    ck_assert (s_wait_stat ("intake", "inflight", 0));
    ck_assert_int_eq (qp_test_bus_service_stat (stack->work, "intake", "routed"), N);
    free (q), free (payloads), free (replies), free (ids);
    qp_test_client_destroy (&c);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("flow_control");
    TCase *tc = tcase_create ("credit");
    tcase_add_checked_fixture (tc, qp_test_bus_setup, qp_test_bus_teardown);
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_window_holds_the_rest_in_the_bus);
    tcase_add_test (tc, test_no_window_gets_everything_at_once);
    tcase_add_test (tc, test_replies_take_no_credit);
    tcase_add_test (tc, test_credit_is_capped_and_checked);
    tcase_add_test (tc, test_round_robin_over_workers_with_credit);
    tcase_add_test (tc, test_worker_leaving_with_work);
    tcase_add_test (tc, test_capture_only_for_subscribers);
    tcase_add_test (tc, test_bus_restart_cannot_inflate_the_window);
    suite_add_tcase (s, tc);
    TCase *real = tcase_create ("service");
    tcase_add_checked_fixture (real, NULL, qp_test_bus_teardown);
    tcase_set_timeout (real, 120);
    tcase_add_test (real, test_real_service_under_a_small_window);
    suite_add_tcase (s, real);
    return qp_test_run_suite (s);
}
