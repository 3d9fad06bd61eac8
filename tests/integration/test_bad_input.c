/* Bad input against the real stack: malformed frame sets, unknown types, oversized and
 * undecodable messages, invalid dossiers, a partner answering for another agency. Each
 * gets a clear error (which field, why), nothing is stored for it, and the services keep
 * serving: a valid dossier submitted afterwards goes all the way through. */
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp_test_pipeline_fixture.h"
#include "qp_bus.h"
#include "qp_store.h"
#include "qp_test_suite.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <string.h>

/* SEND [type][envelope bytes] to intake; returns the decoded qp.v1.Error it answers. */
static Qp__V1__Error *s_send_bytes (const char *type, const void *env, size_t len)
{
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, QPB_SEND);
    zmsg_addstr (m, "intake");
    zmsg_addstr (m, type);
    zmsg_addmem (m, env, len);
    zmsg_t *answer = qp_test_raw_send (s_stack->work, &m, 5000);
    ck_assert_ptr_nonnull (answer);
    ck_assert_uint_eq (zmsg_size (answer), 5);
    char *proto = zmsg_popstr (answer), *kind = zmsg_popstr (answer);
    ck_assert_str_eq (kind, QPB_DELIVER);
    free (proto);
    free (kind);
    zframe_t *from = zmsg_pop (answer), *t = zmsg_pop (answer), *e = zmsg_pop (answer);
    qp_message_t msg;
    qp_error_t err;
    ck_assert_int_eq (qp_message_decode (t, e, &msg, &err), 0);
    ck_assert_ptr_eq (msg.descriptor, &qp__v1__error__descriptor);
    Qp__V1__Error *out = (Qp__V1__Error *) msg.payload;
    msg.payload = NULL;
    qp_message_clear (&msg);
    zframe_destroy (&from);
    zframe_destroy (&t);
    zframe_destroy (&e);
    zmsg_destroy (&answer);
    return out;
}

/* An envelope around payload bytes, with a chosen type and schema version. */
static uint8_t *s_envelope (const char *type, uint32_t version, const void *payload, size_t plen,
                            size_t *len)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    env.message_id = "0123456789abcdef0123456789abcdef";
    env.type = (char *) type;
    env.has_schema_version = true;
    env.schema_version = version;
    env.has_payload = true;
    env.payload.data = (uint8_t *) payload;
    env.payload.len = plen;
    *len = qp__v1__envelope__get_packed_size (&env);
    uint8_t *buf = malloc (*len);
    qp__v1__envelope__pack (&env, buf);
    return buf;
}

static void s_assert_error (Qp__V1__Error *e, const char *code, const char *field)
{
    ck_assert_str_eq (e->code, code);
    if (field)
        ck_assert_str_eq (e->field, field);
    ck_assert_ptr_nonnull (e->message);
    ck_assert_uint_gt (strlen (e->message), 10);
    qp__v1__error__free_unpacked (e, NULL);
}

/* A valid dossier goes all the way to a terminal state: the stack still serves. */
static void s_assert_still_serving (const char *key)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    /* One PHQ per person per network: each check is another person. */
    char person[64];
    snprintf (person, sizeof person, "person-%s-0123456789", key);
    d.channel = "test-bad-input", d.channel_key = (char *) key, d.submitted_on = "2025-06-02";
    h.person_key = person, h.residence_qpv = "QN05981M";
    h.has_accompanied = true, h.accompanied = true;
    h.has_network = true, h.network = QP__V1__NETWORK__ADIE;
    b.insee_commune = "59512";
    p.has_axis = true, p.axis = QP__V1__AXIS__ENTREPRENEURSHIP;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    p.has_amount_asked_cents = true, p.amount_asked_cents = 500000;
    p.has_financing_need_cents = true, p.financing_need_cents = 2000000;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = 400000;
    p.has_bank_loan_cents = true, p.bank_loan_cents = 1000000;
    p.has_bank_loan_months = true, p.bank_loan_months = 48;
    p.has_bank_loan_guarantee_pct = true, p.bank_loan_guarantee_pct = 50;
    p.has_honour_loan_months = true, p.honour_loan_months = 36;
    d.holder = &h, d.business = &b, d.project = &p;
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    s.dossier = &d;
    qp_test_expect_funded (s_stack->work, &s, 100);
    for (size_t i = 0; i < s_stack->n_procs; i++)
        ck_assert_msg (qp_test_proc_alive (s_stack->procs[i]), "%s died",
                       s_stack->procs[i]->name);
}

START_TEST (test_malformed_frame_sets)
{
    /* Not QPB/1 at all. */
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, "HELLO");
    zmsg_t *a = qp_test_raw_send (s_stack->work, &m, 5000);
    ck_assert_ptr_nonnull (a);
    free (zmsg_popstr (a));
    char *kind = zmsg_popstr (a), *code = zmsg_popstr (a);
    ck_assert_str_eq (kind, QPB_ERROR);
    ck_assert_str_eq (code, "malformed_frame");
    free (kind), free (code);
    zmsg_destroy (&a);
    /* SEND with the envelope frame missing. */
    m = zmsg_new ();
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, QPB_SEND);
    zmsg_addstr (m, "intake");
    zmsg_addstr (m, "qp.v1.SubmitDossier");
    a = qp_test_raw_send (s_stack->work, &m, 5000);
    ck_assert_ptr_nonnull (a);
    free (zmsg_popstr (a));
    kind = zmsg_popstr (a), code = zmsg_popstr (a);
    ck_assert_str_eq (kind, QPB_ERROR);
    ck_assert_str_eq (code, "malformed_frame");
    free (kind), free (code);
    zmsg_destroy (&a);
    /* An envelope frame that is not protobuf. */
    s_assert_error (s_send_bytes ("qp.v1.SubmitDossier", "\xff\xff\xff\xff garbage", 12),
                    "bad_envelope", NULL);
    s_assert_still_serving ("after-malformed");
}
END_TEST

START_TEST (test_unknown_type_and_version)
{
    size_t len;
    uint8_t *env = s_envelope ("qp.v1.NoSuchThing", 1, "", 0, &len);
    s_assert_error (s_send_bytes ("qp.v1.NoSuchThing", env, len), "unknown_type", "type");
    free (env);
    /* A real type that intake does not handle. */
    Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (s_stack->work, "intake", &q.base, NULL, 5000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((Qp__V1__Error *) reply.payload)->code, "unknown_type");
    qp_message_clear (&reply);
    /* Another schema version. */
    env = s_envelope ("qp.v1.SubmitDossier", 2, "", 0, &len);
    s_assert_error (s_send_bytes ("qp.v1.SubmitDossier", env, len), "unsupported_version",
                    "schema_version");
    free (env);
    /* A payload that is not the named message. */
    env = s_envelope ("qp.v1.SubmitDossier", 1, "\x0a\xff\xff\xff\xff\x0f", 6, &len);
    s_assert_error (s_send_bytes ("qp.v1.SubmitDossier", env, len), "bad_payload", "payload");
    free (env);
    s_assert_still_serving ("after-unknown");
}
END_TEST

START_TEST (test_oversized_message)
{
    size_t big = QP_MAX_ENVELOPE_BYTES + 1024, len;
    uint8_t *payload = calloc (1, big);
    uint8_t *env = s_envelope ("qp.v1.SubmitDossier", 1, payload, big, &len);
    s_assert_error (s_send_bytes ("qp.v1.SubmitDossier", env, len), "too_large", NULL);
    free (env);
    free (payload);
    s_assert_still_serving ("after-oversized");
}
END_TEST

START_TEST (test_invalid_dossier_is_not_stored)
{
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    d.channel = "test-bad-input", d.channel_key = "invalid-1", d.submitted_on = "2025-02-30";
    h.person_key = "abcdef0123456789";
    h.residence_qpv = "QX1234";
    b.siret = "73282932000075"; /* Luhn key wrong (…074 is right) */
    b.insee_commune = "7505";
    b.naf_code = "\xc3\x28"; /* invalid UTF-8 */
    p.has_axis = true, p.axis = QP__V1__AXIS__ENTREPRENEURSHIP;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    p.has_amount_asked_cents = true, p.amount_asked_cents = -100;
    p.has_financing_need_cents = true, p.financing_need_cents = 1000;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = 5000;
    d.holder = &h, d.business = &b, d.project = &p;
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    s.dossier = &d;
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (s_stack->work, "intake", &s.base, NULL, 5000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__submit_dossier_reply__descriptor);
    Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *) reply.payload;
    ck_assert (!r->accepted);
    ck_assert_ptr_null (r->dossier_id && *r->dossier_id ? r->dossier_id : NULL);
    static const char *const expected[][2] = {
        {"submitted_on", NULL},
        {"holder.residence_qpv", "format"},
        {"business.siret", "checksum"},
        {"business.insee_commune", "format"},
        {"business.naf_code", "format"},
        {"project.amount_asked_cents", "range"},
        {"project.personal_contribution_cents", "inconsistent"},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        bool found = false;
        for (size_t j = 0; j < r->n_errors && !found; j++)
            if (!strcmp (r->errors[j]->field, expected[i][0]) &&
                (!expected[i][1] || !strcmp (r->errors[j]->code, expected[i][1])))
                found = r->errors[j]->message && *r->errors[j]->message;
        ck_assert_msg (found, "no %s error on %s", expected[i][1] ? expected[i][1] : "",
                       expected[i][0]);
    }
    qp_message_clear (&reply);

    /* Nothing stored for it. */
    char id[QP_ID_HEX + 1], key[64];
    qp_store_dossier_id (id, "test-bad-input", "invalid-1");
    snprintf (key, sizeof key, "qp:{%s}:d", id);
    redisContext *rc = redisConnect (s_stack->redis->host, s_stack->redis->port);
    redisReply *x = redisCommand (rc, "EXISTS %s", key);
    ck_assert_int_eq (x->integer, 0);
    freeReplyObject (x);
    redisFree (rc);
    s_assert_still_serving ("after-invalid");
}
END_TEST

START_TEST (test_partner_cannot_answer_for_another_agency)
{
    s_assert_still_serving ("funded-one");
    char id[QP_ID_HEX + 1];
    qp_store_dossier_id (id, "test-bad-input", "funded-one");
    /* A component on the partner endpoint claims an ANRU decision on a Bpifrance request. */
    Qp__V1__PartnerDecision pd = QP__V1__PARTNER_DECISION__INIT;
    char request_id[QP_ID_HEX + 1];
    qp_message_make_id (request_id, qp__v1__funding_request__descriptor.name, id, "phq");
    pd.request_id = request_id;
    pd.dossier_id = id;
    pd.scheme_id = "phq";
    pd.has_agency = true, pd.agency = QP__V1__AGENCY__ANRU;
    pd.has_outcome = true, pd.outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (
        qp_test_call (s_stack->partner, "funding", &pd.base, NULL, 5000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((Qp__V1__Error *) reply.payload)->code, "forbidden");
    ck_assert_str_eq (((Qp__V1__Error *) reply.payload)->field, "agency");
    qp_message_clear (&reply);
    /* And the partner endpoint cannot reach intake at all. */
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = id;
    ck_assert_int_ne (qp_test_call (s_stack->partner, "intake", &q.base, NULL, 3000, &reply, &err),
                      0);
    ck_assert_str_eq (err.code, "forbidden");
    s_assert_still_serving ("after-partner");
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("bad_input");
    TCase *tc = tcase_create ("bad_input");
    tcase_set_timeout (tc, 120);
    tcase_add_checked_fixture (tc, qp_test_pipeline_setup, qp_test_pipeline_teardown);
    tcase_add_test (tc, test_malformed_frame_sets);
    tcase_add_test (tc, test_unknown_type_and_version);
    tcase_add_test (tc, test_oversized_message);
    tcase_add_test (tc, test_invalid_dossier_is_not_stored);
    tcase_add_test (tc, test_partner_cannot_answer_for_another_agency);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
