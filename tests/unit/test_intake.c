/* Intake's logic in-process against a real redis-server (no bus): territory derivation,
 * acceptance, idempotence on (channel, key), the identity turned into a person key and
 * never stored, follow-ups only on funded dossiers, Redis down, fields unknown to this
 * version refused, the declared facts stored as sent. */
#include "intake/intake.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_intake.h"
#include "qp_test_suite.h"
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static qp_test_redis_t *server;
static qp_redis_t *r;
static intake_t *intake;

/* The valid submission of K1, patch (may be NULL) merged into it. */
static Qp__V1__SubmitDossier *s_submission (const char *patch)
{
    return qp_test_submission ("test-intake", "K1", "2024-05-13", patch);
}

static void s_setup (void)
{
    qp_test_intake_open (&server, &r, &intake);
}

static void s_teardown (void)
{
    qp_test_intake_close (&server, &r, &intake);
}

START_TEST (test_territories)
{
    intake_t *t = intake_new (NULL, NULL);
    Qp__V1__SubmitDossier *s = s_submission (NULL);
    /* No file: everything outside the programme. */
    ck_assert_int_eq (intake_load_territories (t, NULL), -1);
    ck_assert_int_eq (intake_load_territories (t, "/nonexistent/territories.json"), -1);
    ck_assert_str_eq (intake_territory_for (t, s->dossier), INTAKE_OUTSIDE_PROGRAMME);
    ck_assert_int_eq (intake_load_territories (t, qp_test_intake_territories ()), 3);
    ck_assert_str_eq (intake_territory_of (t, "97414"), "saint-louis-reunion");
    ck_assert_ptr_null (intake_territory_of (t, "75056"));
    /* The business commune first, then the residence, then outside. */
    ck_assert_str_eq (intake_territory_for (t, s->dossier), "roubaix");
    free (s->dossier->business->insee_commune);
    s->dossier->business->insee_commune = strdup ("75056");
    ck_assert_str_eq (intake_territory_for (t, s->dossier), "est-ensemble");
    free (s->dossier->holder->residence->insee_commune);
    s->dossier->holder->residence->insee_commune = strdup ("13055");
    ck_assert_str_eq (intake_territory_for (t, s->dossier), INTAKE_OUTSIDE_PROGRAMME);
    /* The dossier's own territory is kept. */
    s->dossier->territory = strdup ("arras");
    ck_assert_str_eq (intake_territory_for (t, s->dossier), "arras");
    qp__v1__submit_dossier__free_unpacked (s, NULL);

    /* A file of the wrong shape leaves the previous table in place. */
    char *dir = qp_test_tmpdir ("qp-intake");
    char bad[512];
    snprintf (bad, sizeof bad, "%s/bad.json", dir);
    FILE *f = fopen (bad, "w");
    fputs ("{\"territories\": [{\"id\": \"x\", \"communes\": [\"7505\"]}]}", f);
    fclose (f);
    ck_assert_int_eq (intake_load_territories (t, bad), -1);
    ck_assert_str_eq (intake_territory_of (t, "59512"), "roubaix");
    qp_test_rmtree (dir);
    free (dir);
    intake_destroy (&t);
}
END_TEST

START_TEST (test_accept_then_duplicate)
{
    Qp__V1__SubmitDossier *s = s_submission (NULL);
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-1", 1715558400000, &res), INTAKE_ACCEPTED);
    char id[QP_ID_HEX + 1];
    qp_store_dossier_id (id, "test-intake", "K1");
    ck_assert_str_eq (res.dossier_id, id);
    ck_assert_str_eq (res.dossier->territory, "roubaix");
    ck_assert_ptr_null (s->dossier->territory); /* the submission is not modified */
    intake_result_clear (&res);
    size_t len;
    char *state = qp_store_get (r, id, "state", &len);
    ck_assert_str_eq (state, "RECEIVED");
    free (state);
    char *territory = qp_store_get (r, id, "territory", &len);
    ck_assert_str_eq (territory, "roubaix");
    free (territory);

    /* Same (channel, key): same id, nothing new. */
    ck_assert_int_eq (intake_submit (intake, s, "msg-2", 1715558400000, &res), INTAKE_DUPLICATE);
    ck_assert_str_eq (res.dossier_id, id);
    ck_assert_int_eq (res.state, QP__V1__DOSSIER_STATE__RECEIVED);
    ck_assert_ptr_null (res.dossier);
    intake_result_clear (&res);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

START_TEST (test_rejected_is_not_stored)
{
    Qp__V1__SubmitDossier *s =
        s_submission ("{\"dossier\": {\"channel_key\": \"K2\", \"business\": {\"siret\": "
                      "\"73282932000075\"}, \"territory\": \"atlantis\"}}");
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-3", 0, &res), INTAKE_REJECTED);
    ck_assert_str_eq (intake_errors_find (&res.errors, "business.siret")->code, "checksum");
    ck_assert_str_eq (intake_errors_find (&res.errors, "territory")->code, "unknown");
    ck_assert_ptr_null (res.dossier);
    /* The event for the funnel: where it comes from and what failed, nothing personal;
     * the declared territory is unknown, so the commune's is taken. */
    Qp__V1__SubmissionRefused refused;
    intake_refusal (intake, s, &res.errors, &refused);
    ck_assert_str_eq (refused.channel, "test-intake");
    ck_assert_str_eq (refused.territory, "roubaix");
    ck_assert_str_eq (refused.submitted_on, "2024-05-13");
    ck_assert (refused.has_axis && refused.axis == QP__V1__AXIS__ENTREPRENEURSHIP);
    ck_assert_uint_eq (refused.n_errors, res.errors.count);
    ck_assert_str_eq (refused.errors[0]->field, "business.siret");
    ck_assert_ptr_null (refused.errors[0]->message);
    size_t packed = qp__v1__submission_refused__get_packed_size (&refused);
    uint8_t buf[packed + 1];
    qp__v1__submission_refused__pack (&refused, buf);
    ck_assert_ptr_null (memmem (buf, packed, "pk-0123456789abcdef", 19)); /* no person key */
    ck_assert_ptr_null (memmem (buf, packed, "73282932000075", 14));      /* no value at all */
    intake_refusal_clear (&refused);
    intake_result_clear (&res);
    char id[QP_ID_HEX + 1];
    qp_store_dossier_id (id, "test-intake", "K2");
    redisReply *x = qp_redis_command (r, "EXISTS qp:{%s}:d", id);
    ck_assert_int_eq (x->integer, 0);
    freeReplyObject (x);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

START_TEST (test_identity_becomes_person_key)
{
    Qp__V1__SubmitDossier *s = s_submission (
        "{\"dossier\": {\"channel_key\": \"K3\", \"holder\": {\"person_key\": null}}, \"identity\": "
        "{\"family_name\": \"Dupont-Zorglub\", \"given_names\": \"Marie\", \"birth_date\": "
        "\"1994-03-02\", \"email\": \"marie.zorglub@example.org\"}}");
    char expected[INTAKE_PERSON_KEY_HEX + 1];
    intake_person_key (s->identity, "test-pepper", expected);
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-4", 0, &res), INTAKE_ACCEPTED);
    ck_assert_str_eq (res.dossier->holder->person_key, expected);
    intake_result_clear (&res);
    /* What Redis holds of the dossier: the key, none of the identity. */
    size_t len;
    char *packed = qp_store_get (r, res.dossier_id, "dossier", &len);
    ck_assert_ptr_nonnull (packed);
    Qp__V1__Dossier *d = qp__v1__dossier__unpack (NULL, len, (uint8_t *) packed);
    ck_assert_str_eq (d->holder->person_key, expected);
    qp__v1__dossier__free_unpacked (d, NULL);
    ck_assert_ptr_null (memmem (packed, len, "Zorglub", 7));
    ck_assert_ptr_null (memmem (packed, len, "example.org", 11));
    ck_assert_ptr_null (memmem (packed, len, "1994-03-02", 10));
    free (packed);
    /* Nowhere in Redis at all. */
    redisReply *keys = qp_redis_command (r, "KEYS *");
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *dump = qp_redis_command (r, "DUMP %s", keys->element[i]->str);
        if (dump->type == REDIS_REPLY_STRING)
            ck_assert_ptr_null (memmem (dump->str, dump->len, "Zorglub", 7));
        freeReplyObject (dump);
    }
    freeReplyObject (keys);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

static intake_outcome_t s_follow_up (const char *id, uint32_t year, intake_errors_t *e)
{
    Qp__V1__FollowUp f = QP__V1__FOLLOW_UP__INIT;
    f.dossier_id = (char *) id;
    f.has_year = true, f.year = year;
    f.has_active = true, f.active = true;
    f.has_jobs_created = true, f.jobs_created = 3;
    f.reported_on = "2025-06-30";
    intake_errors_init (e);
    return intake_follow_up (intake, &f, "msg-follow-up", 0, e);
}

START_TEST (test_follow_up)
{
    intake_errors_t e;
    ck_assert_int_eq (s_follow_up ("0123456789abcdef0123456789abcdef", 1, &e), INTAKE_REJECTED);
    ck_assert_str_eq (intake_errors_find (&e, "dossier_id")->code, "unknown");

    Qp__V1__SubmitDossier *s = s_submission (NULL);
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-5", 0, &res), INTAKE_ACCEPTED);
    intake_result_clear (&res);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
    ck_assert_int_eq (s_follow_up (res.dossier_id, 1, &e), INTAKE_REJECTED);
    ck_assert_str_eq (intake_errors_find (&e, "dossier_id")->code, "inconsistent");

    /* Through the state machine to FUNDED. */
    Qp__V1__DossierState path[] = {QP__V1__DOSSIER_STATE__RECEIVED, QP__V1__DOSSIER_STATE__ELIGIBLE,
                                   QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
                                   QP__V1__DOSSIER_STATE__FUNDED};
    for (int i = 0; i < 3; i++) {
        Qp__V1__DossierState st;
        ck_assert_int_eq (qp_store_transition (r, res.dossier_id, path[i], path[i + 1], 0, "m",
                                               NULL, NULL, 0, &st),
                          QP_STORE_APPLIED);
    }
    ck_assert_int_eq (s_follow_up (res.dossier_id, 1, &e), INTAKE_ACCEPTED);
    ck_assert_int_eq (s_follow_up (res.dossier_id, 0, &e), INTAKE_REJECTED);
    size_t len;
    char *packed = qp_store_get (r, res.dossier_id, "followup_1", &len);
    ck_assert_ptr_nonnull (packed);
    Qp__V1__FollowUp *f = qp__v1__follow_up__unpack (NULL, len, (uint8_t *) packed);
    ck_assert (f && f->jobs_created == 3 && f->year == 1);
    qp__v1__follow_up__free_unpacked (f, NULL);
    free (packed);
}
END_TEST

/* A dossier taken through the state machine to FUNDED; its id into id. */
static void s_funded_dossier (const char *key, char id[QP_ID_HEX + 1])
{
    char patch[128];
    snprintf (patch, sizeof patch, "{\"dossier\": {\"channel_key\": \"%s\"}}", key);
    Qp__V1__SubmitDossier *s = s_submission (patch);
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, key, 0, &res), INTAKE_ACCEPTED);
    intake_result_clear (&res);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
    snprintf (id, QP_ID_HEX + 1, "%s", res.dossier_id);
    Qp__V1__DossierState path[] = {QP__V1__DOSSIER_STATE__RECEIVED, QP__V1__DOSSIER_STATE__ELIGIBLE,
                                   QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
                                   QP__V1__DOSSIER_STATE__FUNDED};
    for (int i = 0; i < 3; i++) {
        Qp__V1__DossierState st;
        ck_assert_int_eq (qp_store_transition (r, id, path[i], path[i + 1], 0, "m", NULL, NULL, 0,
                                               &st),
                          QP_STORE_APPLIED);
    }
}

/* Follow-ups in the outbox: qp.v1.FollowUp members. */
static size_t s_follow_ups_in_outbox (void)
{
    redisReply *m = qp_redis_command (r, "ZRANGE %s 0 -1", QP_STORE_OUTBOX_KEY);
    size_t n = qp_test_outbox_count (m, "qp.v1.FollowUp");
    freeReplyObject (m);
    return n;
}

static bool s_has_follow_up (const char *id, uint32_t year)
{
    redisReply *x = qp_redis_command (r, "HEXISTS qp:{%s}:d followup_%u", id, year);
    ck_assert (x && x->type == REDIS_REPLY_INTEGER);
    bool has = x->integer == 1;
    freeReplyObject (x);
    return has;
}

/* Attached to a service that publishes, a follow-up is stored with its event in the
 * outbox (one script): both or neither. Before, the HSET and the outbox ZADD were two
 * commands, and a report stored while its ZADD failed was lost to the evaluation. */
START_TEST (test_follow_up_with_its_event)
{
    qp_service_t *service = qp_test_intake_publishing (intake);
    char id[QP_ID_HEX + 1];
    s_funded_dossier ("K-outbox", id);
    intake_errors_t e;
    ck_assert_int_eq (s_follow_up (id, 1, &e), INTAKE_ACCEPTED);
    ck_assert (s_has_follow_up (id, 1));
    ck_assert_uint_eq (s_follow_ups_in_outbox (), 1);

    /* The outbox cannot take it (a key of the wrong type): the report is not stored
     * either, and the caller is told to retry. */
    redisReply *x = qp_redis_command (r, "DEL %s", QP_STORE_OUTBOX_KEY);
    freeReplyObject (x);
    x = qp_redis_command (r, "SET %s broken", QP_STORE_OUTBOX_KEY);
    freeReplyObject (x);
    ck_assert_int_eq (s_follow_up (id, 2, &e), INTAKE_STORE_FAILED);
    ck_assert (!s_has_follow_up (id, 2));
    /* Repaired: the retry stores both. */
    x = qp_redis_command (r, "DEL %s", QP_STORE_OUTBOX_KEY);
    freeReplyObject (x);
    ck_assert_int_eq (s_follow_up (id, 2, &e), INTAKE_ACCEPTED);
    ck_assert (s_has_follow_up (id, 2));
    ck_assert_uint_eq (s_follow_ups_in_outbox (), 1);
    /* Refused ones (not funded, unknown) leave nothing in the outbox. */
    ck_assert_int_eq (s_follow_up ("0123456789abcdef0123456789abcdef", 1, &e), INTAKE_REJECTED);
    ck_assert_uint_eq (s_follow_ups_in_outbox (), 1);
    qp_service_destroy (&service);
}
END_TEST

START_TEST (test_status)
{
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    Qp__V1__DossierStatusReply reply;
    qp_error_t err;
    /* a malformed id says so, with the field; it is not "not found" */
    const char *bad[] = {"not-an-id", "0123456789ABCDEF0123456789ABCDEF", "0123", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        q.dossier_id = (char *) bad[i];
        ck_assert_int_eq (intake_status (intake, &q, &reply, &err), INTAKE_REJECTED);
        ck_assert_str_eq (err.code, "invalid_field");
        ck_assert_str_eq (err.field, "dossier_id");
    }
    /* a well-formed id that matches nothing: found = false */
    q.dossier_id = "0123456789abcdef0123456789abcdef";
    ck_assert_int_eq (intake_status (intake, &q, &reply, &err), INTAKE_ACCEPTED);
    ck_assert (reply.has_found && !reply.found);
    qp_store_status_clear (&reply);
    Qp__V1__SubmitDossier *s = s_submission ("{\"dossier\": {\"channel_key\": \"K7\"}}");
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-7", 0, &res), INTAKE_ACCEPTED);
    q.dossier_id = res.dossier_id;
    ck_assert_int_eq (intake_status (intake, &q, &reply, &err), INTAKE_ACCEPTED);
    ck_assert (reply.found);
    qp_store_status_clear (&reply);
    intake_result_clear (&res);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

START_TEST (test_redis_down)
{
    ck_assert_int_eq (qp_test_redis_down (server, SIGKILL), 0);
    Qp__V1__SubmitDossier *s = s_submission ("{\"dossier\": {\"channel_key\": \"K9\"}}");
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-9", 0, &res), INTAKE_STORE_FAILED);
    ck_assert_ptr_null (res.dossier);
    intake_result_clear (&res);
    intake_errors_t e;
    ck_assert_int_eq (s_follow_up ("0123456789abcdef0123456789abcdef", 1, &e), INTAKE_STORE_FAILED);
    /* Back up: the same submission goes through. */
    ck_assert_int_eq (qp_test_redis_up (server), 0);
    ck_assert_int_eq (intake_submit (intake, s, "msg-9", 0, &res), INTAKE_ACCEPTED);
    intake_result_clear (&res);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

/* s as a front end of a newer schema sends it: with a phone number in a field this
 * version does not know, in the business (in_identity false) or in the identity. */
static Qp__V1__SubmitDossier *s_with_unknown_field (Qp__V1__SubmitDossier *s, bool in_identity)
{
    static uint8_t phone[] = "\x0a"
                             "0612345678"; /* the length, then the bytes */
    ProtobufCMessageUnknownField extra = {
        .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = 11, .data = phone};
    ProtobufCMessage *m = in_identity ? &s->identity->base : &s->dossier->business->base;
    m->n_unknown_fields = 1, m->unknown_fields = &extra;
    size_t len = qp__v1__submit_dossier__get_packed_size (s);
    uint8_t *buf = malloc (len);
    ck_assert_ptr_nonnull (buf);
    qp__v1__submit_dossier__pack (s, buf);
    m->n_unknown_fields = 0, m->unknown_fields = NULL;
    ck_assert_ptr_nonnull (memmem (buf, len, "0612345678", 10));
    /* What intake's handler gets: the decoded wire bytes, unknown field kept. */
    Qp__V1__SubmitDossier *sent = qp__v1__submit_dossier__unpack (NULL, len, buf);
    free (buf);
    ck_assert_ptr_nonnull (sent);
    return sent;
}

START_TEST (test_unknown_fields_refused)
{
    Qp__V1__SubmitDossier *s = s_submission ("{\"dossier\": {\"channel_key\": \"K10\"}}");
    Qp__V1__SubmitDossier *sent = s_with_unknown_field (s, false);
    ck_assert_uint_eq (sent->dossier->business->base.n_unknown_fields, 1);
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, sent, "msg-10", 0, &res), INTAKE_REJECTED);
    const intake_field_error_t *e = intake_errors_find (&res.errors, "business.#99");
    ck_assert_msg (e, "no finding on business.#99 (%zu findings, first %s)", res.errors.count,
                   res.errors.count ? res.errors.items[0].field : "-");
    ck_assert_str_eq (e->code, "unknown");
    ck_assert_ptr_nonnull (strstr (e->message, "99"));
    ck_assert_ptr_nonnull (strstr (e->message, "Business"));
    ck_assert_uint_eq (res.errors.count, 1); /* the rest of the dossier is valid */
    intake_result_clear (&res);
    char id[QP_ID_HEX + 1];
    qp_store_dossier_id (id, "test-intake", "K10");
    redisReply *x = qp_redis_command (r, "EXISTS qp:{%s}:d", id);
    ck_assert_int_eq (x->integer, 0);
    freeReplyObject (x);
    qp__v1__submit_dossier__free_unpacked (sent, NULL);
    qp__v1__submit_dossier__free_unpacked (s, NULL);

    /* In the identity, which stops at intake, an unknown field goes with it: accepted,
     * and the stored dossier holds neither the field nor its value. */
    s = s_submission (
        "{\"dossier\": {\"channel_key\": \"K11\", \"holder\": {\"person_key\": null}}, "
        "\"identity\": {\"family_name\": \"Zorglub\", \"given_names\": \"Marie\", "
        "\"birth_date\": \"1994-03-02\"}}");
    sent = s_with_unknown_field (s, true);
    ck_assert_int_eq (intake_submit (intake, sent, "msg-11", 0, &res), INTAKE_ACCEPTED);
    intake_result_clear (&res);
    size_t len;
    char *packed = qp_store_get (r, res.dossier_id, "dossier", &len);
    ck_assert_ptr_nonnull (packed);
    ck_assert_ptr_null (memmem (packed, len, "0612345678", 10));
    Qp__V1__Dossier *d = qp__v1__dossier__unpack (NULL, len, (uint8_t *)packed);
    ck_assert_uint_eq (d->base.n_unknown_fields, 0);
    ck_assert_uint_eq (d->holder->base.n_unknown_fields, 0);
    qp__v1__dossier__free_unpacked (d, NULL);
    free (packed);
    qp__v1__submit_dossier__free_unpacked (sent, NULL);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

START_TEST (test_declared_facts_stored)
{
    Qp__V1__SubmitDossier *s = s_submission (
        "{\"dossier\": {\"channel_key\": \"K12\", \"holder\": {\"declared_target_group\": "
        "\"LONG_TERM_JOBSEEKER\"}, \"business\": {\"declared_in_zfu_te\": true, "
        "\"declared_independent_sme\": false}}}");
    intake_result_t res;
    ck_assert_int_eq (intake_submit (intake, s, "msg-12", 0, &res), INTAKE_ACCEPTED);
    intake_result_clear (&res);
    size_t len;
    char *packed = qp_store_get (r, res.dossier_id, "dossier", &len);
    ck_assert_ptr_nonnull (packed);
    Qp__V1__Dossier *d = qp__v1__dossier__unpack (NULL, len, (uint8_t *)packed);
    ck_assert (d->holder->has_declared_target_group);
    ck_assert_int_eq (d->holder->declared_target_group, QP__V1__TARGET_GROUP__LONG_TERM_JOBSEEKER);
    ck_assert (d->business->has_declared_in_zfu_te && d->business->declared_in_zfu_te);
    ck_assert (d->business->has_declared_independent_sme && !d->business->declared_independent_sme);
    ck_assert (!d->business->has_declared_premises_in_npnru); /* absent stays absent */
    qp__v1__dossier__free_unpacked (d, NULL);
    free (packed);
    qp__v1__submit_dossier__free_unpacked (s, NULL);
}
END_TEST

/* qp-intake with a broken zones file does not start (rather than checking locations
 * against nothing): it exits 1 at once, the log naming the file, the line and why. */
START_TEST (test_refuses_to_start_without_zones)
{
    char *dir = qp_test_tmpdir ("qp-intake-data");
    ck_assert_ptr_nonnull (dir);
    char path[1024];
    snprintf (path, sizeof path, "%s/" INTAKE_ZONES_FILE, dir);
    FILE *f = fopen (path, "w");
    ck_assert_ptr_nonnull (f);
    fputs ("# valid_from: 2026-11-24\n# source: a test\nname,lat_min,lat_max,lon_min,lon_max\n"
           "metropolitan France,41.3,51.1,-5.2,9.6\nGuadeloupe,16.55,15.8,-61.85,-61.0\n",
           f);
    fclose (f);
    char data[1100], port[64];
    snprintf (data, sizeof data, "QP_DATA_DIR=%s", dir);
    snprintf (port, sizeof port, "QP_REDIS_PORT=%d", server->port);
    const char *env[] = {data, port, NULL};
    const char *args[] = {NULL};
    char *out = NULL, *errors = NULL;
    int status = qp_test_run ("intake", env, args, 30000, &out, &errors);
    ck_assert_int_eq (status, 1);
    char expected[1200];
    snprintf (expected, sizeof expected, "%s: line 5: lat_max is below lat_min", path);
    ck_assert_msg ((errors && strstr (errors, expected)) || (out && strstr (out, expected)),
                   "no \"%s\" in: %s %s", expected, errors ? errors : "", out ? out : "");
    free (out);
    free (errors);
    /* No file at all: the same. */
    ck_assert_int_eq (unlink (path), 0);
    status = qp_test_run ("intake", env, args, 30000, &out, &errors);
    ck_assert_int_eq (status, 1);
    ck_assert_msg ((errors && strstr (errors, "No such file")) || (out && strstr (out, "No such file")),
                   "%s", errors ? errors : "");
    free (out);
    free (errors);
    qp_test_rmtree (dir);
    free (dir);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("intake");
    TCase *tc = tcase_create ("in-process");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_territories);
    tcase_add_test (tc, test_accept_then_duplicate);
    tcase_add_test (tc, test_rejected_is_not_stored);
    tcase_add_test (tc, test_identity_becomes_person_key);
    tcase_add_test (tc, test_follow_up);
    tcase_add_test (tc, test_follow_up_with_its_event);
    tcase_add_test (tc, test_status);
    tcase_add_test (tc, test_redis_down);
    tcase_add_test (tc, test_unknown_fields_refused);
    tcase_add_test (tc, test_declared_facts_stored);
    tcase_add_test (tc, test_refuses_to_start_without_zones);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
