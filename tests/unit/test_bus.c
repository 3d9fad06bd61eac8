/* The real qp-bus program on free ports: routing, queueing, refusals, events, capture,
 * shutdown. Peers are qp_bus_client_t (or raw sockets to break the protocol). */
#include "qp_bus.h"
#include "qp_message.h"
#include "qp_test.h"
#include "qp_test_bus_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 5000 /* only a bound for failing tests, never a timing assertion */

/* Stops the bus and asserts a clean exit. */
static void s_finish (void)
{
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}

/* Receives a DELIVER of a DossierStatusQuery and returns its dossier id (malloc'd). */
static char *s_expect_query (qp_bus_client_t *c, qp_bus_frame_t *f)
{
    ck_assert_msg (qp_test_bus_recv (c, f, WAIT_MS), "nothing delivered");
    ck_assert_str_eq (f->kind, QPB_DELIVER);
    qp_message_t msg;
    qp_error_t err;
    ck_assert_msg (qp_message_decode (f->type, f->envelope, &msg, &err) == 0, "%s: %s", err.code,
                   err.message);
    ck_assert_ptr_eq (msg.descriptor, &qp__v1__dossier_status_query__descriptor);
    char *id = strdup (((Qp__V1__DossierStatusQuery *)msg.payload)->dossier_id);
    qp_message_clear (&msg);
    return id;
}

static void s_ready (qp_bus_client_t *c, const char *endpoint, const char *service, int n)
{
    ck_assert_int_eq (qp_bus_client_ready (c, service), 0);
    ck_assert_msg (qp_test_bus_wait_workers (endpoint, service, n, WAIT_MS),
                   "%s never had %d workers", service, n);
}

START_TEST (test_send_deliver_reply)
{
    qp_bus_client_t *worker = qp_bus_client_new (stack->work);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_ready (worker, stack->work, "svc", 1);

    char id[QP_ID_HEX + 1];
    zmsg_t *m = qp_test_status_query ("dossier-1", id);
    ck_assert_int_eq (qp_bus_client_send (client, "svc", &m), 0);
    ck_assert_ptr_null (m);

    qp_bus_frame_t f;
    char *got = s_expect_query (worker, &f);
    ck_assert_str_eq (got, "dossier-1");
    free (got);
    char *from = zframe_strdup (f.from);
    ck_assert_msg (from[0] == 'W', "from \"%s\"", from);
    free (from);

    Qp__V1__DossierStatusReply rep = QP__V1__DOSSIER_STATUS_REPLY__INIT;
    rep.has_found = true;
    rep.found = true;
    rep.dossier_id = "dossier-1";
    qp_meta_t meta = {.causation_id = id, .discriminator = "reply"};
    zmsg_t *r = qp_message_build (&rep.base, &meta, NULL);
    ck_assert_int_eq (qp_bus_client_reply (worker, f.from, &r), 0);
    qp_bus_frame_clear (&f);

    ck_assert (qp_test_bus_recv (client, &f, WAIT_MS));
    ck_assert_str_eq (f.kind, QPB_DELIVER);
    qp_message_t msg;
    qp_error_t err;
    ck_assert_int_eq (qp_message_decode (f.type, f.envelope, &msg, &err), 0);
    ck_assert_ptr_eq (msg.descriptor, &qp__v1__dossier_status_reply__descriptor);
    ck_assert_str_eq (msg.envelope->causation_id, id);
    ck_assert (((Qp__V1__DossierStatusReply *)msg.payload)->found);
    qp_message_clear (&msg);
    qp_bus_frame_clear (&f);
    ck_assert_int_eq (qp_test_bus_service_stat (stack->work, "svc", "routed"), 1);

    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
    s_finish ();
}
END_TEST

START_TEST (test_round_robin)
{
    qp_bus_client_t *w1 = qp_bus_client_new (stack->work);
    qp_bus_client_t *w2 = qp_bus_client_new (stack->work);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_ready (w1, stack->work, "rr", 1);
    s_ready (w2, stack->work, "rr", 2);
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf (name, sizeof name, "d%d", i);
        zmsg_t *m = qp_test_status_query (name, NULL);
        ck_assert_int_eq (qp_bus_client_send (client, "rr", &m), 0);
    }
    int got[2] = {0, 0};
    zpoller_t *p = zpoller_new (qp_bus_client_socket (w1), qp_bus_client_socket (w2), NULL);
    while (got[0] + got[1] < 6) {
        void *which = zpoller_wait (p, WAIT_MS);
        ck_assert_msg (which, "only %d of 6 delivered", got[0] + got[1]);
        qp_bus_client_t *w = which == qp_bus_client_socket (w1) ? w1 : w2;
        qp_bus_frame_t f;
        ck_assert_int_eq (qp_bus_client_recv (w, &f), 0);
        ck_assert_str_eq (f.kind, QPB_DELIVER);
        got[w == w2]++;
        qp_bus_frame_clear (&f);
    }
    zpoller_destroy (&p);
    ck_assert_int_eq (got[0], 3);
    ck_assert_int_eq (got[1], 3);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&w1);
    qp_bus_client_destroy (&w2);
    s_finish ();
}
END_TEST

START_TEST (test_queued_until_worker)
{
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    for (int i = 0; i < 2; i++) {
        zmsg_t *m = qp_test_status_query (i ? "second" : "first", NULL);
        ck_assert_int_eq (qp_bus_client_send (client, "later", &m), 0);
    }
    /* Nobody serves "later" yet: both wait in the bus. */
    long queued = -1;
    for (int i = 0; i < 250 && queued != 2; i++) {
        queued = qp_test_bus_service_stat (stack->work, "later", "queued");
        if (queued != 2)
            qp_test_sleep_ms (20);
    }
    ck_assert_int_eq (queued, 2);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "later"), 0);

    qp_bus_client_t *worker = qp_bus_client_new (stack->work);
    ck_assert_int_eq (qp_bus_client_ready (worker, "later"), 0);
    qp_bus_frame_t f;
    char *got = s_expect_query (worker, &f);
    ck_assert_str_eq (got, "first"); /* in order */
    free (got);
    qp_bus_frame_clear (&f);
    got = s_expect_query (worker, &f);
    ck_assert_str_eq (got, "second");
    free (got);
    qp_bus_frame_clear (&f);
    ck_assert_int_eq (qp_test_bus_service_stat (stack->work, "later", "queued"), 0);
    ck_assert_int_eq (qp_test_bus_service_stat (stack->work, "later", "routed"), 2);
    qp_bus_client_destroy (&worker);
    qp_bus_client_destroy (&client);
    s_finish ();
}
END_TEST

/* Sends raw frames on a DEALER and expects ["QPB1", "ERROR", code, detail]. */
static void s_expect_error (zsock_t *dealer, const char *code, const char *const *frames)
{
    zmsg_t *r = qp_test_raw_exchange (dealer, frames, WAIT_MS);
    ck_assert_msg (r, "no answer to a frame set starting \"%s\"", frames[0]);
    ck_assert_int_eq (zmsg_size (r), 4);
    char *proto = zmsg_popstr (r), *kind = zmsg_popstr (r), *got = zmsg_popstr (r);
    ck_assert_str_eq (proto, QPB_PROTOCOL);
    ck_assert_str_eq (kind, QPB_ERROR);
    ck_assert_str_eq (got, code);
    free (proto);
    free (kind);
    free (got);
    zmsg_destroy (&r);
}

START_TEST (test_malformed)
{
    zsock_t *raw = zsock_new_dealer (stack->work);
    ck_assert_ptr_nonnull (raw);
    zsock_set_linger (raw, 0);
    s_expect_error (raw, "malformed_frame", (const char *[]){"QPB9", "READY", "svc", NULL});
    s_expect_error (raw, "malformed_frame", (const char *[]){"QPB1", NULL});
    s_expect_error (raw, "malformed_frame", (const char *[]){"QPB1", "READY", NULL});
    s_expect_error (raw, "malformed_frame", (const char *[]){"QPB1", "READY", "bad name!", NULL});
    s_expect_error (raw, "malformed_frame", (const char *[]){"QPB1", "SEND", "svc", "t", NULL});
    s_expect_error (raw, "malformed_frame",
                    (const char *[]){"QPB1", "SEND", "svc", "t", "e", "extra", NULL});
    s_expect_error (raw, "malformed_frame", (const char *[]){"QPB1", "DANCE", "svc", NULL});
    s_expect_error (raw, "malformed_frame",
                    (const char *[]){"QPB1", "REPLY", "Xnothex", "t", "e", NULL});
    zsock_destroy (&raw);

    /* The bus still routes. */
    qp_bus_client_t *worker = qp_bus_client_new (stack->work);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_ready (worker, stack->work, "svc", 1);
    zmsg_t *m = qp_test_status_query ("after", NULL);
    ck_assert_int_eq (qp_bus_client_send (client, "svc", &m), 0);
    qp_bus_frame_t f;
    char *got = s_expect_query (worker, &f);
    ck_assert_str_eq (got, "after");
    free (got);
    qp_bus_frame_clear (&f);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
    s_finish ();
}
END_TEST

START_TEST (test_partner_forbidden)
{
    zsock_t *raw = zsock_new_dealer (stack->partner);
    ck_assert_ptr_nonnull (raw);
    zsock_set_linger (raw, 0);
    s_expect_error (raw, "forbidden", (const char *[]){"QPB1", "READY", "intake", NULL});
    s_expect_error (raw, "forbidden", (const char *[]){"QPB1", "READY", "partnerX", NULL});
    s_expect_error (raw, "forbidden", (const char *[]){"QPB1", "SEND", "intake", "t", "e", NULL});
    zsock_destroy (&raw);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "intake"), 0);

    /* A partner.* worker is welcome, and gets work sent on the work endpoint. */
    qp_bus_client_t *partner = qp_bus_client_new (stack->partner);
    s_ready (partner, stack->work, "partner.BPIFRANCE", 1);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    zmsg_t *m = qp_test_status_query ("to-partner", NULL);
    ck_assert_int_eq (qp_bus_client_send (client, "partner.BPIFRANCE", &m), 0);
    qp_bus_frame_t f;
    char *got = s_expect_query (partner, &f);
    ck_assert_str_eq (got, "to-partner");
    free (got);
    char *from = zframe_strdup (f.from);
    ck_assert_msg (from[0] == 'W', "from \"%s\"", from);
    free (from);
    qp_bus_frame_clear (&f);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&partner);
    s_finish ();
}
END_TEST

/* Receives a capture frame set [seq, origin, type, env, destination]; false on timeout.
 * The destination (service of a SEND, empty for an event) is kept for the last check. */
static char s_last_destination[80];
static bool s_capture (zsock_t *cap, int timeout_ms, uint64_t *seq, char **origin, zframe_t **type,
                       zframe_t **env)
{
    zpoller_t *p = zpoller_new (cap, NULL);
    void *which = zpoller_wait (p, timeout_ms);
    zpoller_destroy (&p);
    if (!which)
        return false;
    zmsg_t *m = zmsg_recv (cap);
    ck_assert_ptr_nonnull (m);
    ck_assert_int_eq (zmsg_size (m), 5);
    zframe_t *s = zmsg_pop (m);
    ck_assert_int_eq (zframe_size (s), 8);
    *seq = 0;
    for (int i = 0; i < 8; i++)
        *seq = *seq << 8 | zframe_data (s)[i];
    zframe_destroy (&s);
    *origin = zmsg_popstr (m);
    *type = zmsg_pop (m);
    *env = zmsg_pop (m);
    char *destination = zmsg_popstr (m);
    snprintf (s_last_destination, sizeof s_last_destination, "%s", destination);
    free (destination);
    zmsg_destroy (&m);
    return true;
}

START_TEST (test_events_and_capture)
{
    zsock_t *cap = zsock_new_sub (stack->capture, "");
    zsock_t *sub = zsock_new_sub (stack->subscribe, "qp.v1.");
    zsock_t *pub = zsock_new_pub (NULL);
    ck_assert_ptr_nonnull (cap);
    ck_assert_ptr_nonnull (sub);
    ck_assert_int_eq (zsock_connect (pub, "%s", stack->publish), 0);
    zsock_set_linger (pub, 0);

    /* Subscriptions travel asynchronously: publish until the subscriber sees one. */
    zmsg_t *event = qp_test_status_query ("event-1", NULL);
    zframe_t *ev_type = zmsg_first (event), *ev_env = zmsg_last (event);
    zpoller_t *p = zpoller_new (sub, NULL);
    zmsg_t *got = NULL;
    for (int i = 0; i < 100 && !got; i++) {
        zmsg_t *copy = zmsg_dup (event);
        ck_assert_int_eq (zmsg_send (&copy, pub), 0);
        if (zpoller_wait (p, 100))
            got = zmsg_recv (sub);
    }
    zpoller_destroy (&p);
    ck_assert_msg (got, "no event reached the subscriber");
    ck_assert_int_eq (zmsg_size (got), 2);
    ck_assert (zframe_eq (zmsg_first (got), ev_type));
    ck_assert (zframe_eq (zmsg_last (got), ev_env));
    zmsg_destroy (&got);

    /* The capture tap saw events (maybe not the first ones: it subscribed meanwhile). */
    uint64_t seq, last_seq = 0;
    char *origin;
    zframe_t *type, *env;
    bool seen_event = false;
    while (!seen_event) {
        ck_assert_msg (s_capture (cap, WAIT_MS, &seq, &origin, &type, &env),
                       "the capture tap saw no event");
        ck_assert_uint_gt (seq, last_seq);
        last_seq = seq;
        ck_assert_str_eq (origin, "event");
        ck_assert_str_eq (s_last_destination, "");
        ck_assert (zframe_eq (type, ev_type));
        ck_assert_msg (zframe_eq (env, ev_env), "capture: the envelope frame is not the event's");
        seen_event = true;
        free (origin);
        zframe_destroy (&type);
        zframe_destroy (&env);
    }
    /* Drain the other copies, then a work message shows up as origin "work". */
    while (s_capture (cap, 200, &seq, &origin, &type, &env)) {
        ck_assert_uint_gt (seq, last_seq);
        last_seq = seq;
        free (origin);
        zframe_destroy (&type);
        zframe_destroy (&env);
    }
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    zmsg_t *m = qp_test_status_query ("work-1", NULL);
    zmsg_t *sent = zmsg_dup (m);
    ck_assert_int_eq (qp_bus_client_send (client, "nobody", &m), 0);
    ck_assert_msg (s_capture (cap, WAIT_MS, &seq, &origin, &type, &env),
                   "the capture tap did not see the work message");
    ck_assert_uint_eq (seq, last_seq + 1);
    ck_assert_str_eq (origin, "work");
    ck_assert_str_eq (s_last_destination, "nobody");
    ck_assert (zframe_eq (type, zmsg_first (sent)));
    ck_assert_msg (zframe_eq (env, zmsg_last (sent)),
                   "capture: the envelope frame is not the work's");
    free (origin);
    zframe_destroy (&type);
    zframe_destroy (&env);
    zmsg_destroy (&sent);
    zmsg_destroy (&event);

    json_t *status = qp_test_bus_status (stack->work, WAIT_MS);
    ck_assert_ptr_nonnull (status);
    ck_assert_int_eq (json_integer_value (json_object_get (status, "captured")), (long)seq);
    ck_assert_int_ge (json_integer_value (json_object_get (status, "events")), 1);
    json_decref (status);

    qp_bus_client_destroy (&client);
    zsock_destroy (&pub);
    zsock_destroy (&sub);
    zsock_destroy (&cap);
    s_finish ();
}
END_TEST

/* A worker for "echo" in a thread: answers each query with a DossierStatusReply naming
 * the query's dossier and caused by it; "hold*" queries wait for a "release" and are then
 * answered in reverse order; "err" gets an Error; "anon" a reply without causation. */
static void s_echo_actor (zsock_t *pipe, void *args)
{
    qp_bus_client_t *w = qp_bus_client_new ((const char *)args);
    qp_bus_client_ready (w, "echo");
    zsock_signal (pipe, 0);
    zlist_t *held = zlist_new (); /* zmsg_t * [from][type][env] */
    zpoller_t *p = zpoller_new (pipe, qp_bus_client_socket (w), NULL);
    while (true) {
        void *which = zpoller_wait (p, QPB_HEARTBEAT_MS);
        if (!which && !zpoller_terminated (p)) {
            qp_bus_client_heartbeat (w);
            continue;
        }
        if (which != qp_bus_client_socket (w))
            break; /* $TERM or interrupted */
        qp_bus_frame_t f;
        if (qp_bus_client_recv (w, &f) != 0 || strcmp (f.kind, QPB_DELIVER) != 0) {
            qp_bus_frame_clear (&f);
            continue;
        }
        qp_message_t msg;
        qp_error_t err;
        if (qp_message_decode (f.type, f.envelope, &msg, &err) != 0) {
            qp_bus_frame_clear (&f);
            continue;
        }
        const char *d = ((Qp__V1__DossierStatusQuery *)msg.payload)->dossier_id;
        const char *id = msg.envelope->message_id;
        zmsg_t *out = NULL;
        if (!strncmp (d, "hold", 4)) {
            zmsg_t *h = zmsg_new ();
            zmsg_append (h, &f.from);
            zmsg_append (h, &f.type);
            zmsg_append (h, &f.envelope);
            zlist_push (held, h);
        } else if (!strcmp (d, "err")) {
            qp_error_set (&err, "invalid_field", "dossier_id", "no such dossier");
            out = qp_message_build_error (&err, id, NULL, 0);
        } else {
            Qp__V1__DossierStatusReply rep = QP__V1__DOSSIER_STATUS_REPLY__INIT;
            rep.dossier_id = (char *)d;
            qp_meta_t meta = {.causation_id = strcmp (d, "anon") ? id : NULL, .discriminator = d};
            out = qp_message_build (&rep.base, &meta, NULL);
        }
        if (out)
            qp_bus_client_reply (w, f.from, &out);
        if (!strcmp (d, "release")) {
            zmsg_t *h;
            while ((h = zlist_pop (held))) {
                zframe_t *from = zmsg_pop (h);
                zframe_t *type = zmsg_pop (h);
                zframe_t *env = zmsg_pop (h);
                qp_message_t hm;
                if (qp_message_decode (type, env, &hm, &err) == 0) {
                    Qp__V1__DossierStatusReply rep = QP__V1__DOSSIER_STATUS_REPLY__INIT;
                    rep.dossier_id = ((Qp__V1__DossierStatusQuery *)hm.payload)->dossier_id;
                    qp_meta_t meta = {.causation_id = hm.envelope->message_id,
                                      .discriminator = rep.dossier_id};
                    out = qp_message_build (&rep.base, &meta, NULL);
                    qp_bus_client_reply (w, from, &out);
                    qp_message_clear (&hm);
                }
                zframe_destroy (&from);
                zframe_destroy (&type);
                zframe_destroy (&env);
                zmsg_destroy (&h);
            }
        }
        qp_message_clear (&msg);
        qp_bus_frame_clear (&f);
    }
    zpoller_destroy (&p);
    zlist_destroy (&held);
    zsock_set_linger (qp_bus_client_socket (w), 0);
    qp_bus_client_destroy (&w);
}

static const char *s_reply_dossier (const qp_message_t *m)
{
    ck_assert_ptr_eq (m->descriptor, &qp__v1__dossier_status_reply__descriptor);
    return ((Qp__V1__DossierStatusReply *)m->payload)->dossier_id;
}

START_TEST (test_client_helpers)
{
    zactor_t *echo = zactor_new (s_echo_actor, stack->work);
    ck_assert (qp_test_bus_wait_workers (stack->work, "echo", 1, WAIT_MS));
    qp_test_client_t *c = qp_test_client_new (stack->work);
    ck_assert_ptr_nonnull (c);

    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = "one";
    qp_message_t reply;
    qp_error_t err;
    char id[QP_ID_HEX + 1];
    ck_assert_int_eq (qp_test_client_call (c, "echo", &q.base, NULL, WAIT_MS, &reply, &err, id), 0);
    ck_assert_str_eq (s_reply_dossier (&reply), "one");
    ck_assert_str_eq (reply.envelope->causation_id, id);
    qp_message_clear (&reply);
    /* meta NULL gives each call its own id. */
    char id2[QP_ID_HEX + 1];
    ck_assert_int_eq (qp_test_client_call (c, "echo", &q.base, NULL, WAIT_MS, &reply, &err, id2),
                      0);
    ck_assert_str_ne (id, id2);
    qp_message_clear (&reply);

    /* Pipelined: held replies come back in reverse order, "anon" has no causation. */
    const char *names[] = {"hold1", "err", "hold2", "anon", "release"};
    Qp__V1__DossierStatusQuery qs[5];
    const ProtobufCMessage *payloads[5];
    for (int i = 0; i < 5; i++) {
        qp__v1__dossier_status_query__init (&qs[i]);
        qs[i].dossier_id = (char *)names[i];
        payloads[i] = &qs[i].base;
    }
    qp_message_t replies[5];
    ck_assert_uint_eq (qp_test_client_call_many (c, "echo", payloads, NULL, 5, WAIT_MS, replies),
                       5);
    ck_assert_str_eq (s_reply_dossier (&replies[0]), "hold1");
    ck_assert_ptr_eq (replies[1].descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((Qp__V1__Error *)replies[1].payload)->code, "invalid_field");
    ck_assert_str_eq (s_reply_dossier (&replies[2]), "hold2");
    ck_assert_str_eq (s_reply_dossier (&replies[3]), "anon");
    ck_assert_str_eq (s_reply_dossier (&replies[4]), "release");
    for (int i = 0; i < 5; i++)
        qp_message_clear (&replies[i]);

    /* No worker: the bus queues, the call times out. */
    ck_assert_int_eq (qp_test_client_call (c, "nobody", &q.base, NULL, 300, &reply, &err, NULL),
                      -1);
    ck_assert_str_eq (err.code, "timeout");
    ck_assert_ptr_null (reply.envelope);
    qp_test_client_destroy (&c);

    /* A bus refusal comes back as the bus's error code. */
    ck_assert_int_eq (qp_test_call (stack->partner, "intake", &q.base, NULL, WAIT_MS, &reply, &err),
                      -1);
    ck_assert_str_eq (err.code, "forbidden");
    ck_assert_int_eq (qp_test_call (stack->work, "echo", &q.base, NULL, WAIT_MS, &reply, &err), 0);
    ck_assert_str_eq (s_reply_dossier (&reply), "one");
    qp_message_clear (&reply);

    zactor_destroy (&echo);
    s_finish ();
}
END_TEST

START_TEST (test_stops_on_sigterm)
{
    /* Connected peers and queued work do not hold the bus up. */
    qp_bus_client_t *worker = qp_bus_client_new (stack->work);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    s_ready (worker, stack->work, "svc", 1);
    zmsg_t *m = qp_test_status_query ("queued", NULL);
    ck_assert_int_eq (qp_bus_client_send (client, "elsewhere", &m), 0);
    int status = -1;
    ck_assert_msg (qp_test_proc_stop (stack->bus, &status), "the bus ignored SIGTERM for 2 s");
    ck_assert_int_eq (status, 0);
    ck_assert_int_eq (qp_test_proc_log_count (stack->bus, "\"bus_stopping\""), 1);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
    s_finish ();
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("bus");
    TCase *tc = tcase_create ("bus");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, qp_test_bus_setup, qp_test_bus_teardown);
    tcase_add_test (tc, test_send_deliver_reply);
    tcase_add_test (tc, test_round_robin);
    tcase_add_test (tc, test_queued_until_worker);
    tcase_add_test (tc, test_malformed);
    tcase_add_test (tc, test_partner_forbidden);
    tcase_add_test (tc, test_events_and_capture);
    tcase_add_test (tc, test_client_helpers);
    tcase_add_test (tc, test_stops_on_sigterm);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
