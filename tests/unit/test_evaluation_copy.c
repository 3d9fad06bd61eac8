/* The evaluation's own copy of the profiles it applied (taken instead of a read) and the
 * index members written only for new vectors, in process on a real redis-server: a copy
 * gone stale (Redis flushed, another instance counting the same dossier) never drops or
 * doubles an event, and every vector counted is in its index set. */
#include "evaluation/evaluation.h"
#include "qp_test.h"
#include "qp_test_redis_fixture.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

static evaluation_t *eval;

static evaluation_t *s_evaluation (qp_redis_t *redis)
{
    char data[1024];
    snprintf (data, sizeof data, "%s/data", qp_test_source_dir ());
    evaluation_t *e = evaluation_new (redis, data);
    ck_assert_ptr_nonnull (e);
    return e;
}

static void s_setup (void)
{
    qp_test_redis_setup ();
    eval = s_evaluation (r);
}

static void s_teardown (void)
{
    evaluation_destroy (&eval);
    qp_test_redis_teardown ();
}

#define ID "00112233445566778899aabbccddeeff"

static void s_event (evaluation_t *e, const ProtobufCMessage *m, const char *message_id)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    env.message_id = (char *) message_id;
    env.has_event_time_ms = true, env.event_time_ms = 1741910400000LL; /* 2025-03-14 */
    qp_message_t msg = {.envelope = &env, .payload = (ProtobufCMessage *) m,
                        .descriptor = m->descriptor};
    evaluation_apply (e, &msg);
    ck_assert_int_eq (evaluation_flush (e), 0); /* each event a batch of its own */
}

static void s_received (evaluation_t *e)
{
    Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder holder = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Project project = QP__V1__PROJECT__INIT;
    Qp__V1__Business business = QP__V1__BUSINESS__INIT;
    dossier.submitted_on = "2025-03-14", dossier.territory = "roubaix";
    holder.residence_qpv = "QN05912M";
    holder.has_network = true, holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    project.has_axis = true, project.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    dossier.holder = &holder, dossier.project = &project, dossier.business = &business;
    Qp__V1__DossierReceived rcv = QP__V1__DOSSIER_RECEIVED__INIT;
    rcv.dossier_id = ID, rcv.dossier = &dossier;
    s_event (e, &rcv.base, "m1");
}

static void s_request (evaluation_t *e)
{
    Qp__V1__DossierSummary summary = QP__V1__DOSSIER_SUMMARY__INIT;
    summary.territory = "roubaix";
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    rq.dossier_id = ID, rq.scheme_id = "phq", rq.summary = &summary;
    rq.has_agency = true, rq.agency = QP__V1__AGENCY__BPIFRANCE;
    s_event (e, &rq.base, "m2");
}

/* submitted and funding_requested in total, as eval reports them */
static void s_expect (uint64_t submitted, uint64_t requested)
{
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    Qp__V1__IndicatorReport *report;
    ck_assert_int_eq (evaluation_indicators (eval, &q, &report), 0);
    ck_assert_ptr_nonnull (report->total);
    ck_assert_uint_eq (report->total->figures->submitted, submitted);
    ck_assert_uint_eq (report->total->figures->funding_requested, requested);
    qp__v1__indicator_report__free_unpacked (report, NULL);
}

static bool s_member (const char *set, const char *member)
{
    redisReply *reply = qp_redis_command (r, "SISMEMBER %s %s", set, member);
    ck_assert (reply && reply->type == REDIS_REPLY_INTEGER);
    bool in = reply->integer == 1;
    freeReplyObject (reply);
    return in;
}

/* Redis emptied under a running evaluation (a restore, a flush): its copy says the
 * dossier's events are counted, Redis has nothing; the same events published again are
 * counted again, once, not taken for duplicates. */
START_TEST (test_copy_stale_after_flush)
{
    s_received (eval);
    s_request (eval);
    s_expect (1, 1);
    redisReply *reply = qp_redis_command (r, "FLUSHALL");
    ck_assert_ptr_nonnull (reply);
    freeReplyObject (reply);
    s_received (eval);
    s_request (eval);
    s_expect (1, 1);
    /* and again: the copy now holds what Redis holds */
    s_request (eval);
    s_expect (1, 1);
}
END_TEST

/* Another instance counts the dossier's request after this one's copy was made: this
 * one, fed the same request, does not count it twice. */
START_TEST (test_copy_stale_after_other_instance)
{
    s_received (eval);
    qp_redis_t *client2 = qp_redis_connect (server->host, server->port, 5000);
    ck_assert_ptr_nonnull (client2);
    evaluation_t *eval2 = s_evaluation (client2);
    s_request (eval2);
    s_request (eval);
    s_expect (1, 1);
    evaluation_destroy (&eval2);
    qp_redis_destroy (&client2);
}
END_TEST

/* The index sets hold every vector counted: written when the vector is new, also after
 * Redis lost them (a vector that is new again is indexed again). */
START_TEST (test_index_of_new_vectors)
{
    const char *cell = "qp:eval:k:roubaix|2025-03|RETAIL_AND_CRAFTS";
    s_received (eval);
    ck_assert (s_member (cell, "*"));
    ck_assert (s_member (cell, "q:QN05912M"));
    ck_assert (s_member ("qp:eval:days:roubaix", "2025-03-14"));
    ck_assert (!s_member (cell, "s:phq"));
    s_request (eval);
    ck_assert (s_member (cell, "s:phq"));
    ck_assert (s_member (cell, "ag:BPIFRANCE"));
    redisReply *reply = qp_redis_command (r, "DEL %s qp:eval:days:roubaix", cell);
    freeReplyObject (reply);
    reply = qp_redis_command (r, "DEL qp:eval:v:roubaix|2025-03|RETAIL_AND_CRAFTS|*");
    freeReplyObject (reply);
    /* another dossier of the cell: its "*" vector is new again, the others are not */
    Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
    Qp__V1__Project project = QP__V1__PROJECT__INIT;
    dossier.submitted_on = "2025-03-20", dossier.territory = "roubaix";
    project.has_axis = true, project.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    dossier.project = &project;
    Qp__V1__DossierReceived rcv = QP__V1__DOSSIER_RECEIVED__INIT;
    rcv.dossier_id = "ffeeddccbbaa99887766554433221100", rcv.dossier = &dossier;
    s_event (eval, &rcv.base, "m9");
    ck_assert (s_member (cell, "*"));
    ck_assert (s_member ("qp:eval:days:roubaix", "2025-03-20"));
    ck_assert (!s_member ("qp:eval:days:roubaix", "2025-03-14"));
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("evaluation_copy");
    TCase *tc = tcase_create ("copy");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_copy_stale_after_flush);
    tcase_add_test (tc, test_copy_stale_after_other_instance);
    tcase_add_test (tc, test_index_of_new_vectors);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
