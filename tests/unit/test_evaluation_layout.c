/* The evaluation's profiles in bucket hashes (qp:eval:p:N), in process on a real
 * redis-server: each fact counted once across batches, profiles of before the buckets
 * (a hash qp:eval:d:ID) still read and moved, refusals kept across a rebuild in both
 * layouts, and a profile small enough to keep its bucket a listpack. Then the overlap:
 * full batches applied while the next fills (qp_redis_script_send / qp_redis_collect),
 * other commands in between getting their own replies. */
#include "evaluation/evaluation.h"
#include "qp_test.h"
#include "qp_test_redis_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

static evaluation_t *eval;

static void s_setup (void)
{
    qp_test_redis_setup ();
    char data[1024];
    snprintf (data, sizeof data, "%s/data", qp_test_source_dir ());
    eval = evaluation_new (r, data);
    ck_assert_ptr_nonnull (eval);
}

static void s_teardown (void)
{
    evaluation_destroy (&eval);
    qp_test_redis_teardown ();
}

#define ID "0123456789abcdef0123456789abcdef"
#define REFUSED_ID "fedcba9876543210fedcba9876543210"

static void s_event (const ProtobufCMessage *m, const char *message_id)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    env.message_id = (char *) message_id;
    env.has_event_time_ms = true, env.event_time_ms = 1741910400000LL; /* 2025-03-14 */
    qp_message_t msg = {.envelope = &env, .payload = (ProtobufCMessage *) m,
                        .descriptor = m->descriptor};
    evaluation_apply (eval, &msg);
}

/* DossierReceived and a phq FundingRequest of dossier ID in territory roubaix. */
static void s_received (void)
{
    Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder holder = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Project project = QP__V1__PROJECT__INIT;
    Qp__V1__Business business = QP__V1__BUSINESS__INIT;
    dossier.submitted_on = "2025-03-14", dossier.territory = "roubaix";
    holder.residence_qpv = "QN05912M";
    holder.has_network = true, holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    holder.has_gender = true, holder.gender = QP__V1__GENDER__WOMAN;
    holder.has_birth_year = true, holder.birth_year = 2000;
    project.has_axis = true, project.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    project.has_bank_loan_cents = true, project.bank_loan_cents = 1500000;
    dossier.holder = &holder, dossier.project = &project, dossier.business = &business;
    Qp__V1__DossierReceived rcv = QP__V1__DOSSIER_RECEIVED__INIT;
    rcv.dossier_id = ID, rcv.dossier = &dossier;
    s_event (&rcv.base, "m1");
}

static void s_request (void)
{
    Qp__V1__DossierSummary summary = QP__V1__DOSSIER_SUMMARY__INIT;
    summary.territory = "roubaix";
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    rq.dossier_id = ID, rq.scheme_id = "phq", rq.summary = &summary;
    rq.has_agency = true, rq.agency = QP__V1__AGENCY__BPIFRANCE;
    s_event (&rq.base, "m2");
}

static void s_follow_up (bool active, unsigned jobs)
{
    Qp__V1__FollowUp fu = QP__V1__FOLLOW_UP__INIT;
    fu.dossier_id = ID, fu.has_year = true, fu.year = 1;
    fu.has_active = true, fu.active = active;
    fu.has_jobs_created = true, fu.jobs_created = jobs;
    s_event (&fu.base, active ? "m3" : "m4");
}

static void s_refusal (void)
{
    Qp__V1__SubmissionRefused m = QP__V1__SUBMISSION_REFUSED__INIT;
    m.territory = "roubaix", m.submitted_on = "2025-03-14";
    s_event (&m.base, REFUSED_ID);
}

static Qp__V1__Figures *s_total (Qp__V1__IndicatorReport **report)
{
    ck_assert_int_eq (evaluation_flush (eval), 0);
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    ck_assert_int_eq (evaluation_indicators (eval, &q, report), 0);
    ck_assert_ptr_nonnull ((*report)->total);
    return (*report)->total->figures;
}

/* The figures that tell a double count. */
static void s_expect (uint64_t submitted, uint64_t requested, uint64_t followed,
                      uint64_t active, uint64_t jobs, uint64_t rejected)
{
    Qp__V1__IndicatorReport *report;
    Qp__V1__Figures *f = s_total (&report);
    ck_assert_uint_eq (f->submitted, submitted);
    ck_assert_uint_eq (f->funding_requested, requested);
    ck_assert_uint_eq (f->followed_y1, followed);
    ck_assert_uint_eq (f->active_y1, active);
    ck_assert_uint_eq (f->jobs_created_y1, jobs);
    ck_assert_uint_eq (f->rejected_at_intake, rejected);
    qp__v1__indicator_report__free_unpacked (report, NULL);
}

static long long s_integer (const char *fmt, const char *arg)
{
    redisReply *reply = qp_redis_command (r, fmt, arg);
    ck_assert_ptr_nonnull (reply);
    ck_assert_int_eq (reply->type, REDIS_REPLY_INTEGER);
    long long v = reply->integer;
    freeReplyObject (reply);
    return v;
}

/* The profile buckets' fields, all buckets together. */
static long long s_bucket_fields (void)
{
    redisReply *keys = qp_redis_command (r, "KEYS qp:eval:p:*");
    ck_assert (keys && keys->type == REDIS_REPLY_ARRAY);
    long long n = 0;
    for (size_t i = 0; i < keys->elements; i++)
        n += s_integer ("HLEN %s", keys->element[i]->str);
    freeReplyObject (keys);
    return n;
}

START_TEST (test_once_across_batches)
{
    s_received ();
    s_request ();
    s_follow_up (true, 2);
    s_refusal ();
    s_expect (1, 1, 1, 1, 2, 1);
    /* everything again, each in a batch of its own: nothing counts twice */
    s_received ();
    s_request ();
    s_follow_up (true, 2);
    s_refusal ();
    s_expect (1, 1, 1, 1, 2, 1);
    /* a follow-up of the same year replaces the previous one */
    s_follow_up (false, 0);
    s_expect (1, 1, 1, 0, 0, 1);
    /* one field per dossier and refusal, no hash per dossier */
    ck_assert_int_eq (s_bucket_fields (), 2);
    redisReply *old = qp_redis_command (r, "KEYS qp:eval:d:*");
    ck_assert_uint_eq (old->elements, 0);
    freeReplyObject (old);
}
END_TEST

START_TEST (test_profile_small)
{
    s_received ();
    s_request ();
    s_follow_up (true, 2);
    ck_assert_int_eq (evaluation_flush (eval), 0);
    redisReply *keys = qp_redis_command (r, "KEYS qp:eval:p:*");
    ck_assert (keys && keys->type == REDIS_REPLY_ARRAY && keys->elements == 1);
    redisReply *all = qp_redis_command (r, "HGETALL %s", keys->element[0]->str);
    ck_assert (all && all->type == REDIS_REPLY_ARRAY && all->elements == 2);
    /* the id as its 16 bytes; the value under Redis's default hash-max-listpack-value
     * (64), so a bucket stays a listpack whatever the server's setting */
    ck_assert_uint_eq (all->element[0]->len, 16);
    ck_assert_msg (all->element[1]->len <= 64, "profile of %zu bytes: %s", all->element[1]->len,
                   all->element[1]->str);
    freeReplyObject (all);
    redisReply *enc = qp_redis_command (r, "OBJECT ENCODING %s", keys->element[0]->str);
    ck_assert_str_eq (enc->str, "listpack");
    freeReplyObject (enc);
    freeReplyObject (keys);
}
END_TEST

/* Writes dossier ID's profile as the code before the buckets stored it (a hash
 * qp:eval:d:ID) and removes it from its bucket: a stack upgraded in place. */
static void s_make_old (const char **argv, int argc)
{
    redisReply *keys = qp_redis_command (r, "KEYS qp:eval:p:*");
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *d = qp_redis_command (r, "DEL %s", keys->element[i]->str);
        freeReplyObject (d);
    }
    freeReplyObject (keys);
    redisReply *h = qp_redis_argv (r, argc, argv, NULL);
    ck_assert (h && h->type == REDIS_REPLY_INTEGER);
    freeReplyObject (h);
}

START_TEST (test_old_profiles_read)
{
    s_received ();
    s_request ();
    s_expect (1, 1, 0, 0, 0, 0);
    const char *old[] = {"HSET", "qp:eval:d:" ID, "t", "roubaix", "m", "2025-03", "d",
                         "2025-03-14", "a", "RETAIL_AND_CRAFTS", "q", "QN05912M", "n",
                         "INITIATIVE_FRANCE", "w", "1", "y", "1", "b", "1500000", "rcv", "1",
                         "rq", "1", "rq:phq", "1"};
    s_make_old (old, (int) (sizeof old / sizeof old[0]));
    /* the same events again: the old hash says they were counted */
    s_received ();
    s_request ();
    s_expect (1, 1, 0, 0, 0, 0);
    ck_assert_int_eq (s_integer ("EXISTS %s", "qp:eval:d:" ID), 1); /* nothing to write */
    /* a new fact: counted, the profile moves into its bucket with what was counted */
    s_follow_up (true, 3);
    s_expect (1, 1, 1, 1, 3, 0);
    ck_assert_int_eq (s_integer ("EXISTS %s", "qp:eval:d:" ID), 0);
    ck_assert_int_eq (s_bucket_fields (), 1);
    s_received ();
    s_request ();
    s_follow_up (true, 3);
    s_expect (1, 1, 1, 1, 3, 0);
}
END_TEST

START_TEST (test_refusals_kept_by_rebuild)
{
    s_refusal ();
    s_expect (0, 0, 0, 0, 0, 1);
    ck_assert_int_eq (evaluation_rebuild (eval), 0);
    s_expect (0, 0, 0, 0, 0, 1);
    /* and a refusal stored before the buckets */
    const char *old[] = {"HSET", "qp:eval:d:r-" REFUSED_ID, "t", "roubaix", "m", "2025-03", "d",
                         "2025-03-14", "a", "AXIS_UNSPECIFIED", "q", "", "n", "", "w", "", "y",
                         "", "b", "", "refused", "1"};
    s_make_old (old, (int) (sizeof old / sizeof old[0]));
    ck_assert_int_eq (evaluation_rebuild (eval), 0);
    s_expect (0, 0, 0, 0, 0, 1);
    ck_assert_int_eq (s_bucket_fields (), 1);
    /* the refusal delivered again after the rebuild counts nothing */
    s_refusal ();
    s_expect (0, 0, 0, 0, 0, 1);
}
END_TEST

/* n dossiers, each DossierReceived then FundingRequest, ids from seed. */
static void s_many (int n, const char *seed)
{
    for (int i = 0; i < n; i++) {
        char key[32], id[QP_ID_HEX + 1], mid[QP_ID_HEX + 1];
        snprintf (key, sizeof key, "%s-%d", seed, i);
        qp_hash_hex (id, key, strlen (key));
        Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
        dossier.submitted_on = "2025-03-14", dossier.territory = "roubaix";
        Qp__V1__DossierReceived rcv = QP__V1__DOSSIER_RECEIVED__INIT;
        rcv.dossier_id = id, rcv.dossier = &dossier;
        qp_message_make_id (mid, "rcv", id, "");
        s_event (&rcv.base, mid);
        Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
        rq.dossier_id = id, rq.scheme_id = "phq";
        qp_message_make_id (mid, "rq", id, "");
        s_event (&rq.base, mid);
    }
}

START_TEST (test_overlap_once)
{
    /* 5,000 dossiers, 10,000 events (3 queued each): full batches are sent and the next
     * fills; a dossier's events straddle the batches */
    s_many (5000, "a");
    ck_assert (qp_redis_pending (r)); /* a batch's apply is out */
    /* anything else on the connection meanwhile gets its own reply */
    redisReply *pong = qp_redis_command (r, "PING");
    ck_assert (pong && pong->type == REDIS_REPLY_STATUS);
    ck_assert_str_eq (pong->str, "PONG");
    freeReplyObject (pong);
    s_expect (5000, 5000, 0, 0, 0, 0);
    ck_assert (!qp_redis_pending (r));
    /* all again, and more: only the new ones count */
    s_many (5000, "a");
    s_many (2000, "b");
    s_expect (7000, 7000, 0, 0, 0, 0);
    ck_assert_int_eq (s_bucket_fields (), 7000);
}
END_TEST

/* qp_redis's send/collect: Redis's scripts flushed (a restart, a failover) between the
 * send and its reply: the collect loads the script and runs the call again. */
START_TEST (test_collect_reloads_script)
{
    const char *keys[] = {"ev:cells", "ev:territories", "ev:meta"};
    const char *read[] = {"read", "qp:eval:p:1", "x", "x"};
    redisReply *reply = qp_redis_script (r, QP_LUA_EVAL_APPLY, 3, keys, 4, read, NULL);
    freeReplyObject (reply);
    reply = qp_redis_command (r, "SCRIPT FLUSH");
    freeReplyObject (reply);
    ck_assert_int_eq (qp_redis_script_send (r, QP_LUA_EVAL_APPLY, 3, keys, 4, read, NULL), 0);
    /* one call at a time */
    ck_assert_int_eq (qp_redis_script_send (r, QP_LUA_EVAL_APPLY, 3, keys, 4, read, NULL), -1);
    reply = qp_redis_collect (r);
    ck_assert_ptr_nonnull (reply);
    ck_assert_msg (reply->type == REDIS_REPLY_ARRAY, "reply type %d %s", reply->type,
                   reply->str ? reply->str : "");
    ck_assert_uint_eq (reply->elements, 1);
    freeReplyObject (reply);
    ck_assert (!qp_redis_pending (r));
    ck_assert_ptr_null (qp_redis_collect (r)); /* nothing sent */
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("evaluation_layout");
    TCase *tc = tcase_create ("buckets");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_once_across_batches);
    tcase_add_test (tc, test_profile_small);
    tcase_add_test (tc, test_old_profiles_read);
    tcase_add_test (tc, test_refusals_kept_by_rebuild);
    suite_add_tcase (s, tc);
    TCase *overlap = tcase_create ("overlap");
    tcase_set_timeout (overlap, 120);
    tcase_add_checked_fixture (overlap, s_setup, s_teardown);
    tcase_add_test (overlap, test_overlap_once);
    tcase_add_test (overlap, test_collect_reloads_script);
    suite_add_tcase (s, overlap);
    return qp_test_run_suite (s);
}
