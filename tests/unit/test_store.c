/* The dossier store on a real redis-server: creation once per (channel, key), guarded
 * transitions, history, pending sets and their leases, status reads. */
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

static qp_test_redis_t *s_server;
static qp_redis_t *s_redis;

static void s_setup (void)
{
    s_server = qp_test_redis_start ();
    ck_assert_ptr_nonnull (s_server);
    s_redis = qp_redis_connect (s_server->host, s_server->port, 5000);
    ck_assert_ptr_nonnull (s_redis);
}

static void s_teardown (void)
{
    qp_redis_destroy (&s_redis);
    qp_test_redis_stop (&s_server);
}

static void s_create (const char *key, char id[QP_ID_HEX + 1], qp_store_result_t want)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    d.channel = "test";
    d.channel_key = (char *) key;
    d.submitted_on = "2025-01-02";
    qp_store_dossier_id (id, d.channel, d.channel_key);
    Qp__V1__DossierState state = 0;
    ck_assert_int_eq (qp_store_create (s_redis, id, &d, "roubaix", 1735776000000, "m1", &state),
                      want);
    ck_assert_int_eq (state, QP__V1__DOSSIER_STATE__RECEIVED);
}

static long long s_zscore_count (const char *state)
{
    redisReply *r = qp_redis_command (s_redis, "ZCARD qp:pending:%s", state);
    long long n = r->integer;
    freeReplyObject (r);
    return n;
}

START_TEST (test_ids)
{
    char a[QP_ID_HEX + 1], b[QP_ID_HEX + 1], c[QP_ID_HEX + 1];
    qp_store_dossier_id (a, "ch", "k1");
    qp_store_dossier_id (b, "ch", "k1");
    qp_store_dossier_id (c, "ch", "k2");
    ck_assert_str_eq (a, b);
    ck_assert_str_ne (a, c);
    ck_assert_int_eq (a[0], 'd');
    ck_assert_uint_eq (strlen (a), QP_ID_HEX);
    ck_assert_str_eq (qp_store_state_name (QP__V1__DOSSIER_STATE__FUNDING_REQUESTED),
                      "FUNDING_REQUESTED");
    ck_assert_int_eq (qp_store_state_parse ("DECLINED"), QP__V1__DOSSIER_STATE__DECLINED);
    ck_assert_int_eq (qp_store_state_parse ("NOPE"), 0);
    ck_assert (qp_store_state_terminal (QP__V1__DOSSIER_STATE__UNFUNDED));
    ck_assert (!qp_store_state_terminal (QP__V1__DOSSIER_STATE__FUNDING_REQUESTED));
}
END_TEST

START_TEST (test_create_once)
{
    char id[QP_ID_HEX + 1];
    s_create ("k1", id, QP_STORE_APPLIED);
    s_create ("k1", id, QP_STORE_ALREADY);
    ck_assert_int_eq (s_zscore_count ("RECEIVED"), 1);
    size_t len;
    char *territory = qp_store_get (s_redis, id, "territory", &len);
    ck_assert_str_eq (territory, "roubaix");
    free (territory);
    char *packed = qp_store_get (s_redis, id, "dossier", &len);
    Qp__V1__Dossier *d = qp__v1__dossier__unpack (NULL, len, (uint8_t *) packed);
    ck_assert_str_eq (d->channel_key, "k1");
    qp__v1__dossier__free_unpacked (d, NULL);
    free (packed);
    ck_assert_ptr_null (qp_store_get (s_redis, id, "no_such_field", NULL));
}
END_TEST

START_TEST (test_guarded_transitions)
{
    char id[QP_ID_HEX + 1];
    s_create ("k2", id, QP_STORE_APPLIED);
    Qp__V1__DossierState now = 0;
    qp_store_field_t f[] = {{"eligibility", "\x00\x01\x02", 3}};
    ck_assert_int_eq (qp_store_transition (s_redis, id, QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__ELIGIBLE, 5, "m2", "ok", f, 1,
                                           &now),
                      QP_STORE_APPLIED);
    /* The same step again (a duplicate message) changes nothing and says where it is. */
    ck_assert_int_eq (qp_store_transition (s_redis, id, QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__NOT_ELIGIBLE, 6, "m2b", NULL,
                                           NULL, 0, &now),
                      QP_STORE_ALREADY);
    ck_assert_int_eq (now, QP__V1__DOSSIER_STATE__ELIGIBLE);
    ck_assert_int_eq (s_zscore_count ("RECEIVED"), 0);
    ck_assert_int_eq (s_zscore_count ("ELIGIBLE"), 1);
    size_t len;
    char *e = qp_store_get (s_redis, id, "eligibility", &len);
    ck_assert_uint_eq (len, 3);
    ck_assert_int_eq (memcmp (e, "\x00\x01\x02", 3), 0);
    free (e);
    /* To a terminal state: out of every pending set. */
    ck_assert_int_eq (qp_store_transition (s_redis, id, QP__V1__DOSSIER_STATE__ELIGIBLE,
                                           QP__V1__DOSSIER_STATE__UNFUNDED, 7, "m3", "no budget",
                                           NULL, 0, &now),
                      QP_STORE_APPLIED);
    ck_assert_int_eq (s_zscore_count ("ELIGIBLE"), 0);
    ck_assert_int_eq (s_zscore_count ("UNFUNDED"), 0);
    ck_assert_int_eq (qp_store_transition (s_redis, "dunknown", QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__ELIGIBLE, 8, "m4", NULL, NULL,
                                           0, &now),
                      QP_STORE_UNKNOWN);

    Qp__V1__DossierStatusReply st;
    ck_assert_int_eq (qp_store_status (s_redis, id, &st), 0);
    ck_assert (st.found);
    ck_assert_int_eq (st.state, QP__V1__DOSSIER_STATE__UNFUNDED);
    ck_assert_str_eq (st.territory, "roubaix");
    ck_assert_uint_eq (st.n_history, 3);
    ck_assert_int_eq (st.history[0]->to, QP__V1__DOSSIER_STATE__RECEIVED);
    ck_assert_str_eq (st.history[0]->message_id, "m1");
    ck_assert_int_eq (st.history[1]->from, QP__V1__DOSSIER_STATE__RECEIVED);
    ck_assert_int_eq (st.history[1]->to, QP__V1__DOSSIER_STATE__ELIGIBLE);
    ck_assert_int_eq (st.history[2]->to, QP__V1__DOSSIER_STATE__UNFUNDED);
    ck_assert_str_eq (st.history[2]->note, "no budget");
    ck_assert_int_eq (st.history[2]->at_ms, 7);
    qp_store_status_clear (&st);
    ck_assert_int_eq (qp_store_status (s_redis, "dunknown", &st), 0);
    ck_assert (!st.found);
    qp_store_status_clear (&st);
}
END_TEST

START_TEST (test_claim_expired)
{
    char a[QP_ID_HEX + 1], b[QP_ID_HEX + 1];
    s_create ("k3", a, QP_STORE_APPLIED);
    s_create ("k4", b, QP_STORE_APPLIED);
    char *ids[4];
    int64_t now = qp_now_ms ();
    /* Leases run QP_STORE_LEASE_MS from creation: nothing has expired yet. */
    ck_assert_uint_eq (qp_store_claim_expired (s_redis, QP__V1__DOSSIER_STATE__RECEIVED, now, ids,
                                               4),
                       0);
    /* Past the lease, both are claimed once; the claim pushes their lease forward. */
    int64_t later = now + QP_STORE_LEASE_MS + 1000;
    size_t n = qp_store_claim_expired (s_redis, QP__V1__DOSSIER_STATE__RECEIVED, later, ids, 4);
    ck_assert_uint_eq (n, 2);
    ck_assert ((!strcmp (ids[0], a) && !strcmp (ids[1], b)) ||
               (!strcmp (ids[0], b) && !strcmp (ids[1], a)));
    free (ids[0]);
    free (ids[1]);
    ck_assert_uint_eq (qp_store_claim_expired (s_redis, QP__V1__DOSSIER_STATE__RECEIVED, later, ids,
                                               4),
                       0);
    /* The limit holds. */
    n = qp_store_claim_expired (s_redis, QP__V1__DOSSIER_STATE__RECEIVED,
                                later + 2 * QP_STORE_LEASE_MS, ids, 1);
    ck_assert_uint_eq (n, 1);
    free (ids[0]);
}
END_TEST

/* The outbox: events go in with the step that applies (and only then), acks come out
 * with the next step or a ZREM, and a sweeper claims what is left past its deadline. */
START_TEST (test_outbox)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    d.channel = "test";
    d.channel_key = "ob-1";
    char id[QP_ID_HEX + 1];
    qp_store_dossier_id (id, d.channel, d.channel_key);
    qp_store_blob_t received = {"qp.v1.DossierReceived\0env-1", 27};
    qp_store_blob_t decided = {"qp.v1.EligibilityDecided\0env-2", 30};
    qp_store_blob_t closed = {"qp.v1.DossierClosed\0env-3", 25};
    Qp__V1__DossierState state = 0;
    ck_assert_int_eq (qp_store_create_with_events (s_redis, id, &d, "roubaix", 1, "m1", &received,
                                                   1, NULL, 0, &state),
                      QP_STORE_APPLIED);
    /* A duplicate submission records nothing more. */
    ck_assert_int_eq (qp_store_create_with_events (s_redis, id, &d, "roubaix", 1, "m1", &closed,
                                                   1, NULL, 0, &state),
                      QP_STORE_ALREADY);
    redisReply *r = qp_redis_command (s_redis, "ZRANGE %s 0 -1", QP_STORE_OUTBOX_KEY);
    ck_assert_int_eq (r->elements, 1);
    ck_assert_int_eq (r->element[0]->len, received.len);
    ck_assert_mem_eq (r->element[0]->str, received.data, received.len);
    freeReplyObject (r);

    /* A step that does not apply records nothing, but its acks are removed. */
    ck_assert_int_eq (qp_store_transition_with_events (
                          s_redis, id, QP__V1__DOSSIER_STATE__ELIGIBLE,
                          QP__V1__DOSSIER_STATE__FUNDED, 2, "m2", "late", NULL, 0, &closed, 1,
                          &received, 1, &state),
                      QP_STORE_ALREADY);
    ck_assert_int_eq (s_zscore_count ("outbox"), 0);
    /* One that applies records its events, with its fields. */
    qp_store_field_t f[] = {{"eligibility", "E", 1}};
    qp_store_blob_t two[] = {decided, closed};
    ck_assert_int_eq (qp_store_transition_with_events (
                          s_redis, id, QP__V1__DOSSIER_STATE__RECEIVED,
                          QP__V1__DOSSIER_STATE__NOT_ELIGIBLE, 2, "m2", "no", f, 1, two, 2, NULL,
                          0, &state),
                      QP_STORE_APPLIED);
    ck_assert_int_eq (s_zscore_count ("outbox"), 2);
    const char *names[] = {"eligibility", "nope", "state"};
    char *v[3];
    size_t lens[3];
    ck_assert_int_eq (qp_store_get_fields (s_redis, id, names, 3, v, lens), 0);
    ck_assert_str_eq (v[0], "E");
    ck_assert_uint_eq (lens[0], 1);
    ck_assert_ptr_null (v[1]);
    ck_assert_str_eq (v[2], "NOT_ELIGIBLE");
    free (v[0]);
    free (v[2]);

    /* Nothing past its deadline yet; later, both are claimed once. */
    qp_store_blob_t out[4];
    ck_assert_uint_eq (qp_store_outbox_claim (s_redis, qp_now_ms (), qp_now_ms (), out, 4), 0);
    int64_t later = qp_now_ms () + QP_STORE_OUTBOX_GRACE_MS + 1;
    ck_assert_uint_eq (qp_store_outbox_claim (s_redis, later, later, out, 4), 2);
    ck_assert_uint_eq (qp_store_outbox_claim (s_redis, later, later, out + 2, 2), 0);
    ck_assert_int_eq (qp_store_outbox_remove (s_redis, out, 2), 0);
    ck_assert_int_eq (s_zscore_count ("outbox"), 0);
    free (out[0].data);
    free (out[1].data);
}
END_TEST

/* Many transitions in one round trip: each guarded on its own (applied, refused, unknown,
 * and a duplicate of an earlier step of the same batch), events recorded only with the
 * ones that applied, acks removed once; after SCRIPT FLUSH (a Redis restart) it still runs. */
START_TEST (test_batched_transitions)
{
    char a[QP_ID_HEX + 1], b[QP_ID_HEX + 1], c[QP_ID_HEX + 1];
    s_create ("bt-a", a, QP_STORE_APPLIED);
    s_create ("bt-b", b, QP_STORE_APPLIED);
    s_create ("bt-c", c, QP_STORE_APPLIED);
    Qp__V1__DossierState now = 0;
    ck_assert_int_eq (qp_store_transition (s_redis, a, QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__ELIGIBLE, 5, "m-a1", NULL, NULL,
                                           0, &now),
                      QP_STORE_APPLIED);
    qp_store_blob_t old = {"qp.v1.DossierReceived\0env-old", 29};
    /* an event published earlier, to remove with the batch */
    redisReply *r = qp_redis_command (s_redis, "ZADD %s 1 %b", QP_STORE_OUTBOX_KEY, old.data,
                                      old.len);
    freeReplyObject (r);

    qp_store_blob_t ev_a = {"qp.v1.FundingRequest\0env-a", 26};
    qp_store_blob_t ev_b = {"qp.v1.FundingRequest\0env-b", 26};
    qp_store_blob_t ev_c[] = {{"qp.v1.EligibilityDecided\0env-c1", 31},
                              {"qp.v1.DossierClosed\0env-c2", 26}};
    qp_store_blob_t ev_dup = {"qp.v1.FundingRequest\0env-dup", 28};
    qp_store_field_t scheme[] = {{"scheme", "PHQ", 3}};
    qp_store_step_t steps[] = {
        {a, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, 10, "m-a2",
         "asked", scheme, 1, &ev_a, 1, QP_STORE_ERROR, 0},
        /* b is still RECEIVED: refused, says so, records nothing */
        {b, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, 10, "m-b2",
         "asked", scheme, 1, &ev_b, 1, QP_STORE_ERROR, 0},
        {"dunknown", QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, 10,
         "m-x", NULL, NULL, 0, &ev_b, 1, QP_STORE_ERROR, 0},
        {c, QP__V1__DOSSIER_STATE__RECEIVED, QP__V1__DOSSIER_STATE__ELIGIBLE, 11, "m-c2", "ok",
         NULL, 0, ev_c, 2, QP_STORE_ERROR, 0},
        /* the first step again, in the same batch: it sees the first one's write */
        {a, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, 12, "m-a3",
         "again", scheme, 1, &ev_dup, 1, QP_STORE_ERROR, 0},
    };
    uint64_t trips = qp_redis_round_trips (s_redis);
    ck_assert_uint_eq (qp_store_transitions (s_redis, steps, 5, &old, 1), 2);
    ck_assert_uint_eq (qp_redis_round_trips (s_redis) - trips, 1);
    ck_assert_int_eq (steps[0].result, QP_STORE_APPLIED);
    ck_assert_int_eq (steps[0].state, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED);
    ck_assert_int_eq (steps[1].result, QP_STORE_ALREADY);
    ck_assert_int_eq (steps[1].state, QP__V1__DOSSIER_STATE__RECEIVED);
    ck_assert_int_eq (steps[2].result, QP_STORE_UNKNOWN);
    ck_assert_int_eq (steps[3].result, QP_STORE_APPLIED);
    ck_assert_int_eq (steps[4].result, QP_STORE_ALREADY);
    ck_assert_int_eq (steps[4].state, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED);

    /* The outbox holds exactly the applied steps' events; the ack is gone. */
    r = qp_redis_command (s_redis, "ZRANGE %s 0 -1", QP_STORE_OUTBOX_KEY);
    ck_assert_uint_eq (r->elements, 3);
    qp_store_blob_t want[] = {ev_a, ev_c[0], ev_c[1]};
    for (size_t i = 0; i < 3; i++) {
        bool seen = false;
        for (size_t j = 0; j < r->elements; j++)
            seen |= r->element[j]->len == want[i].len &&
                    !memcmp (r->element[j]->str, want[i].data, want[i].len);
        ck_assert_msg (seen, "event %zu not recorded", i);
    }
    freeReplyObject (r);
    ck_assert_int_eq (s_zscore_count ("FUNDING_REQUESTED"), 1);
    ck_assert_int_eq (s_zscore_count ("ELIGIBLE"), 1);
    ck_assert_int_eq (s_zscore_count ("RECEIVED"), 1);
    char *v = qp_store_get (s_redis, a, "scheme", NULL);
    ck_assert_str_eq (v, "PHQ");
    free (v);
    ck_assert_ptr_null (qp_store_get (s_redis, b, "scheme", NULL));
    Qp__V1__DossierStatusReply st;
    ck_assert_int_eq (qp_store_status (s_redis, a, &st), 0);
    ck_assert_uint_eq (st.n_history, 3); /* applied once */
    ck_assert_str_eq (st.history[2]->message_id, "m-a2");
    qp_store_status_clear (&st);

    /* Scripts gone (a restart): loaded again, and the batch runs. */
    r = qp_redis_command (s_redis, "SCRIPT FLUSH");
    freeReplyObject (r);
    qp_store_step_t more[] = {
        {b, QP__V1__DOSSIER_STATE__RECEIVED, QP__V1__DOSSIER_STATE__ELIGIBLE, 13, "m-b3", NULL,
         NULL, 0, NULL, 0, QP_STORE_ERROR, 0},
        {c, QP__V1__DOSSIER_STATE__ELIGIBLE, QP__V1__DOSSIER_STATE__DECLINED, 14, "m-c3", NULL,
         NULL, 0, NULL, 0, QP_STORE_ERROR, 0},
    };
    ck_assert_uint_eq (qp_store_transitions (s_redis, more, 2, NULL, 0), 2);
    ck_assert_int_eq (more[0].result, QP_STORE_APPLIED);
    ck_assert_int_eq (more[1].result, QP_STORE_APPLIED);
    ck_assert_int_eq (s_zscore_count ("ELIGIBLE"), 1);
    ck_assert_int_eq (s_zscore_count ("RECEIVED"), 0);
    ck_assert_uint_eq (qp_store_transitions (s_redis, more, 0, NULL, 0), 0);
}
END_TEST

/* The stored decision and settlement repeat less (issue 8), and the status reads back the
 * same decision and settlement as the ones published; a record stored before reads as it
 * is. */
START_TEST (test_compact_records)
{
    char id[QP_ID_HEX + 1];
    s_create ("k-compact", id, QP_STORE_APPLIED);
    Qp__V1__SchemeDecision a = QP__V1__SCHEME_DECISION__INIT, b = QP__V1__SCHEME_DECISION__INIT,
                           c = QP__V1__SCHEME_DECISION__INIT, d = QP__V1__SCHEME_DECISION__INIT;
    a.scheme_id = "cfe-qpv", a.catalogue_version = "cfe-qpv-2025.1";
    b.scheme_id = "garantie-egalite-territoires", b.catalogue_version = "get-2026.1";
    c.scheme_id = "phq"; /* no version */
    d.scheme_id = "phq", d.catalogue_version = "phq"; /* the id alone: not shortened */
    Qp__V1__SchemeDecision *ds[] = {&a, &b, &c, &d};
    Qp__V1__EligibilityDecided e = QP__V1__ELIGIBILITY_DECIDED__INIT;
    e.dossier_id = id, e.territory = "roubaix", e.decided_on = "2025-01-02";
    e.n_decisions = 4, e.decisions = ds;
    size_t len, full = qp__v1__eligibility_decided__get_packed_size (&e);
    uint8_t *packed = qp_store_decision_pack (&e, &len);
    ck_assert_uint_eq (len, full - strlen ("cfe-qpv"));
    Qp__V1__EligibilityDecided *u = qp__v1__eligibility_decided__unpack (NULL, len, packed);
    ck_assert_ptr_nonnull (u);
    ck_assert_str_eq (u->decisions[0]->catalogue_version, "-2025.1");
    ck_assert_str_eq (u->decisions[1]->catalogue_version, "get-2026.1");
    ck_assert_ptr_null (u->decisions[2]->catalogue_version);
    ck_assert_str_eq (u->decisions[3]->catalogue_version, "phq");
    qp_store_decision_expand (u);
    ck_assert_str_eq (u->decisions[0]->catalogue_version, "cfe-qpv-2025.1");
    ck_assert_str_eq (u->decisions[1]->catalogue_version, "get-2026.1");
    ck_assert_ptr_null (u->decisions[2]->catalogue_version);
    ck_assert_str_eq (u->decisions[3]->catalogue_version, "phq");
    qp__v1__eligibility_decided__free_unpacked (u, NULL);
    qp_store_decision_expand (NULL);

    /* Through the store: the status gives the published forms back. */
    Qp__V1__FundingSettled st = QP__V1__FUNDING_SETTLED__INIT;
    st.dossier_id = id, st.scheme_id = "cfe-qpv"; /* stored without its reason */
    size_t slen = qp__v1__funding_settled__get_packed_size (&st);
    uint8_t sbuf[slen + 1];
    qp__v1__funding_settled__pack (&st, sbuf);
    qp_store_field_t f1[] = {{"eligibility", packed, len}};
    Qp__V1__DossierState now;
    ck_assert_int_eq (qp_store_transition (s_redis, id, QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__ELIGIBLE, 5,
                                           "0f0321f4222708f8bf7c7815aedf8b10", NULL, f1, 1, &now),
                      QP_STORE_APPLIED);
    const char *final = "cfe-qpv released: no budget left";
    qp_store_field_t f2[] = {{"settlement", sbuf, slen}, {"final_reason", final, strlen (final)}};
    ck_assert_int_eq (qp_store_transition (s_redis, id, QP__V1__DOSSIER_STATE__ELIGIBLE,
                                           QP__V1__DOSSIER_STATE__UNFUNDED, 6, "m3", final, f2, 2,
                                           &now),
                      QP_STORE_APPLIED);
    free (packed);
    Qp__V1__DossierStatusReply r;
    ck_assert_int_eq (qp_store_status (s_redis, id, &r), 0);
    ck_assert_ptr_nonnull (r.eligibility);
    ck_assert_uint_eq (r.eligibility->n_decisions, 4);
    ck_assert_str_eq (r.eligibility->decisions[0]->catalogue_version, "cfe-qpv-2025.1");
    ck_assert_str_eq (r.eligibility->decisions[1]->catalogue_version, "get-2026.1");
    ck_assert_uint_eq (r.n_settlements, 1);
    ck_assert_str_eq (r.settlements[0]->reason, final);
    /* The history's notes, as written: the usual ones and the closing one (the
     * final_reason) were stored by number. */
    ck_assert_uint_eq (r.n_history, 3);
    ck_assert_str_eq (r.history[0]->note, "accepted by intake");
    ck_assert_ptr_null (r.history[1]->note);
    ck_assert_str_eq (r.history[1]->message_id, "0f0321f4222708f8bf7c7815aedf8b10");
    ck_assert_str_eq (r.history[2]->message_id, "m3");
    ck_assert_str_eq (r.history[2]->note, final);
    for (size_t i = 0; i < r.n_history; i++)
        ck_assert (!r.history[i]->has_stored_note && !r.history[i]->has_stored_message_id);
    qp_store_status_clear (&r);
    /* Stored in the hash's field h (a History), not in a list of its own. */
    redisReply *h = qp_redis_command (s_redis, "HGET qp:{%s}:d h", id);
    ck_assert (h && h->type == REDIS_REPLY_STRING);
    Qp__V1__History *hs = qp__v1__history__unpack (NULL, h->len, (uint8_t *) h->str);
    ck_assert (hs && hs->n_entries == 3);
    Qp__V1__Transition *t0 = hs->entries[0], *t1 = hs->entries[1], *t2 = hs->entries[2];
    ck_assert (t0->has_stored_note && !t0->note);
    ck_assert (t1->has_stored_message_id && !t1->message_id); /* 16 bytes, not 32 digits */
    ck_assert_uint_eq (t1->stored_message_id.len, 16);
    ck_assert_uint_eq (t1->stored_message_id.data[0], 0x0f);
    ck_assert (t2->has_stored_note && !t2->note);
    ck_assert_uint_eq (t2->stored_note, 100);
    qp__v1__history__free_unpacked (hs, NULL);
    freeReplyObject (h);
    h = qp_redis_command (s_redis, "EXISTS qp:{%s}:h", id);
    ck_assert_int_eq (h->integer, 0);
    freeReplyObject (h);

    /* Stored before: full versions and the settlement's own reason, read as they are. */
    char id2[QP_ID_HEX + 1];
    s_create ("k-old", id2, QP_STORE_APPLIED);
    full = qp__v1__eligibility_decided__get_packed_size (&e);
    uint8_t old[full + 1];
    qp__v1__eligibility_decided__pack (&e, old);
    st.reason = "as stored then";
    slen = qp__v1__funding_settled__get_packed_size (&st);
    uint8_t sold[slen + 1];
    qp__v1__funding_settled__pack (&st, sold);
    qp_store_field_t f3[] = {{"eligibility", old, full}, {"settlement", sold, slen},
                             {"final_reason", final, strlen (final)}};
    ck_assert_int_eq (qp_store_transition (s_redis, id2, QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__UNFUNDED, 6, "m3", final, f3, 3,
                                           &now),
                      QP_STORE_APPLIED);
    /* A history entry stored before issue 8 (the list), with its note in full: read
     * first, before the entries of the field h. */
    Qp__V1__Transition t = QP__V1__TRANSITION__INIT;
    t.has_to = true, t.to = QP__V1__DOSSIER_STATE__UNFUNDED;
    t.note = "accepted by intake";
    size_t tlen = qp__v1__transition__get_packed_size (&t);
    uint8_t tbuf[tlen + 1];
    qp__v1__transition__pack (&t, tbuf);
    redisReply *x = qp_redis_command (s_redis, "RPUSH qp:{%s}:h %b", id2, tbuf, tlen);
    freeReplyObject (x);
    ck_assert_int_eq (qp_store_status (s_redis, id2, &r), 0);
    ck_assert_str_eq (r.eligibility->decisions[0]->catalogue_version, "cfe-qpv-2025.1");
    ck_assert_str_eq (r.settlements[0]->reason, "as stored then");
    ck_assert_uint_eq (r.n_history, 3);
    ck_assert_str_eq (r.history[0]->note, "accepted by intake");
    ck_assert_int_eq (r.history[0]->to, QP__V1__DOSSIER_STATE__UNFUNDED);
    ck_assert_str_eq (r.history[1]->note, "accepted by intake");
    ck_assert_int_eq (r.history[1]->to, QP__V1__DOSSIER_STATE__RECEIVED);
    ck_assert_str_eq (r.history[2]->note, final);
    qp_store_status_clear (&r);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("store");
    TCase *tc = tcase_create ("store");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_ids);
    tcase_add_test (tc, test_create_once);
    tcase_add_test (tc, test_guarded_transitions);
    tcase_add_test (tc, test_claim_expired);
    tcase_add_test (tc, test_outbox);
    tcase_add_test (tc, test_batched_transitions);
    tcase_add_test (tc, test_compact_records);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
