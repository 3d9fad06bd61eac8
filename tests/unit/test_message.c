/* qp_message: framing, ids, and every way a frame set is refused. */
#include "qp_log.h"
#include "qp_message.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#define TYPE_QUERY "qp.v1.DossierStatusQuery"

static zmsg_t *s_build_query (const char *dossier_id, const qp_meta_t *meta, char *id)
{
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = (char *)dossier_id;
    return qp_message_build (&q.base, meta, id);
}

/* A hand-made envelope frame (to break one rule at a time). */
static zframe_t *s_envelope (const char *type, bool has_version, uint32_t version,
                             const char *message_id, const void *payload, size_t plen)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    env.type = (char *)type;
    env.has_schema_version = has_version;
    env.schema_version = version;
    env.message_id = (char *)message_id;
    env.has_payload = payload != NULL;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = plen;
    zframe_t *f = zframe_new (NULL, qp__v1__envelope__get_packed_size (&env));
    qp__v1__envelope__pack (&env, zframe_data (f));
    return f;
}

/* Decodes [type][env], expecting the error code; returns the error for more checks. */
static qp_error_t s_refused (zframe_t *type, zframe_t *env, const char *code)
{
    qp_message_t msg;
    qp_error_t err;
    memset (&err, 0, sizeof err);
    int rc = qp_message_decode (type, env, &msg, &err);
    ck_assert_int_eq (rc, -1);
    ck_assert_str_eq (err.code, code);
    ck_assert_ptr_null (msg.envelope);
    ck_assert_ptr_null (msg.payload);
    ck_assert (strlen (err.message) > 0);
    return err;
}

START_TEST (test_round_trip)
{
    qp_meta_t meta = {.correlation_id = "dossier-1",
                      .causation_id = "cause-1",
                      .producer = "tester",
                      .event_time_ms = 1700000000123LL,
                      .discriminator = "channel\nkey"};
    char id[QP_ID_HEX + 1];
    zmsg_t *m = s_build_query ("abc", &meta, id);
    ck_assert_int_eq (zmsg_size (m), 2);
    ck_assert_int_eq (strlen (id), QP_ID_HEX);
    zframe_t *type = zmsg_first (m);
    ck_assert (zframe_streq (type, TYPE_QUERY));
    qp_message_t msg;
    qp_error_t err;
    ck_assert_int_eq (qp_message_decode (type, zmsg_next (m), &msg, &err), 0);
    ck_assert_ptr_eq (msg.descriptor, &qp__v1__dossier_status_query__descriptor);
    ck_assert_str_eq (msg.envelope->message_id, id);
    ck_assert_str_eq (msg.envelope->type, TYPE_QUERY);
    ck_assert_int_eq (msg.envelope->schema_version, QP_SCHEMA_VERSION);
    ck_assert_str_eq (msg.envelope->correlation_id, "dossier-1");
    ck_assert_str_eq (msg.envelope->causation_id, "cause-1");
    ck_assert_str_eq (msg.envelope->producer, "tester");
    ck_assert (msg.envelope->has_event_time_ms);
    ck_assert_int_eq (msg.envelope->event_time_ms, 1700000000123LL);
    ck_assert_str_eq (((Qp__V1__DossierStatusQuery *)msg.payload)->dossier_id, "abc");
    qp_message_clear (&msg);
    ck_assert_ptr_null (msg.envelope);
    zmsg_destroy (&m);

    /* An empty payload (all fields absent) is a valid message too. */
    qp_meta_t bare = {0};
    m = s_build_query (NULL, &bare, NULL);
    ck_assert_int_eq (qp_message_decode (zmsg_first (m), zmsg_last (m), &msg, &err), 0);
    ck_assert_ptr_null (((Qp__V1__DossierStatusQuery *)msg.payload)->dossier_id);
    ck_assert_str_eq (msg.envelope->producer, qp_log_program ());
    qp_message_clear (&msg);
    zmsg_destroy (&m);
}
END_TEST

START_TEST (test_ids)
{
    char a[QP_ID_HEX + 1], b[QP_ID_HEX + 1], c[QP_ID_HEX + 1];
    qp_message_make_id (a, TYPE_QUERY, "cause", "x");
    qp_message_make_id (b, TYPE_QUERY, "cause", "x");
    ck_assert_str_eq (a, b); /* deterministic */
    ck_assert_int_eq (strlen (a), QP_ID_HEX);
    for (const char *p = a; *p; p++)
        ck_assert (strchr ("0123456789abcdef", *p));
    qp_message_make_id (c, TYPE_QUERY, "cause", "y");
    ck_assert_str_ne (a, c); /* distinct by discriminator */
    qp_message_make_id (c, TYPE_QUERY, "other", "x");
    ck_assert_str_ne (a, c); /* by causation */
    qp_message_make_id (c, "qp.v1.Error", "cause", "x");
    ck_assert_str_ne (a, c); /* by type */
    /* The parts are delimited: moving a character between them changes the id. */
    qp_message_make_id (b, TYPE_QUERY, "causex", "");
    qp_message_make_id (c, TYPE_QUERY, "cause", "x");
    ck_assert_str_ne (b, c);

    /* The built message carries the same id, whatever the payload or times. */
    qp_meta_t m1 = {.causation_id = "cause", .discriminator = "x", .event_time_ms = 1};
    qp_meta_t m2 = {.causation_id = "cause", .discriminator = "x", .event_time_ms = 2};
    char i1[QP_ID_HEX + 1], i2[QP_ID_HEX + 1];
    zmsg_t *x = s_build_query ("one", &m1, i1);
    zmsg_t *y = s_build_query ("two", &m2, i2);
    ck_assert_str_eq (i1, a);
    ck_assert_str_eq (i2, a);
    zmsg_destroy (&x);
    zmsg_destroy (&y);

    char h1[QP_ID_HEX + 1], h2[QP_ID_HEX + 1];
    qp_hash_hex (h1, "abc", 3);
    qp_hash_hex (h2, "abd", 3);
    ck_assert_str_ne (h1, h2);
    qp_hash_hex (h2, "abc", 3);
    ck_assert_str_eq (h1, h2);
}
END_TEST

START_TEST (test_lookup)
{
    ck_assert_ptr_eq (qp_message_lookup_type ("qp.v1.SubmitDossier"),
                      &qp__v1__submit_dossier__descriptor);
    ck_assert_ptr_eq (qp_message_lookup_type ("qp.v1.Error"), &qp__v1__error__descriptor);
    ck_assert_ptr_null (qp_message_lookup_type ("qp.v1.Envelope")); /* never a payload */
    ck_assert_ptr_null (qp_message_lookup_type ("qp.v1.submitdossier"));
    ck_assert_ptr_null (qp_message_lookup_type (""));
    ck_assert_ptr_null (qp_message_lookup_type (NULL));
}
END_TEST

START_TEST (test_missing_frame)
{
    qp_meta_t meta = {.discriminator = "m"};
    zmsg_t *m = s_build_query ("a", &meta, NULL);
    s_refused (zmsg_first (m), NULL, "malformed_frame");
    s_refused (NULL, zmsg_last (m), "malformed_frame");
    s_refused (NULL, NULL, "malformed_frame");
    zframe_t *empty = zframe_new (NULL, 0);
    s_refused (empty, zmsg_last (m), "malformed_frame"); /* empty type frame */
    char longname[200];
    memset (longname, 'a', sizeof longname);
    zframe_t *lt = zframe_new (longname, sizeof longname);
    s_refused (lt, zmsg_last (m), "malformed_frame");
    zframe_destroy (&lt);
    zframe_destroy (&empty);
    zmsg_destroy (&m);
}
END_TEST

START_TEST (test_too_large)
{
    zframe_t *type = zframe_from (TYPE_QUERY);
    zframe_t *big = zframe_new (NULL, QP_MAX_ENVELOPE_BYTES + 1);
    memset (zframe_data (big), 0, zframe_size (big));
    s_refused (type, big, "too_large");
    zframe_destroy (&big);
    /* Exactly at the limit is not too large (it fails later, as not an envelope). */
    big = zframe_new (NULL, QP_MAX_ENVELOPE_BYTES);
    memset (zframe_data (big), 0xff, zframe_size (big));
    s_refused (type, big, "bad_envelope");
    zframe_destroy (&big);
    zframe_destroy (&type);
}
END_TEST

START_TEST (test_unknown_type)
{
    zframe_t *env = s_envelope ("qp.v1.Nope", true, 1, "id", "", 0);
    const char raw[] = "qp.v1.\x01"
                       "Bad\""
                       "\x7f"
                       "\xc3\xa9"
                       "type\n";
    zframe_t *type = zframe_new (raw, sizeof raw - 1);
    qp_error_t err = s_refused (type, env, "unknown_type");
    ck_assert_str_eq (err.field, "type");
    /* Control characters, quotes and non-ASCII bytes never reach the error text. */
    ck_assert_msg (strstr (err.message, "\"qp.v1.?Bad????type?\"") != NULL, "message: %s",
                   err.message);
    for (const char *p = err.message; *p; p++)
        ck_assert ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    zframe_destroy (&type);
    type = zframe_from ("qp.v1.Nope");
    s_refused (type, env, "unknown_type");
    zframe_destroy (&type);
    zframe_destroy (&env);
}
END_TEST

START_TEST (test_not_an_envelope)
{
    zframe_t *type = zframe_from (TYPE_QUERY);
    /* Field 1, length 80, but 2 bytes follow; then an over-long varint. */
    const unsigned char truncated[] = {0x0a, 0x50, 'a', 'b'};
    zframe_t *env = zframe_new (truncated, sizeof truncated);
    s_refused (type, env, "bad_envelope");
    zframe_destroy (&env);
    const unsigned char varint[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    env = zframe_new (varint, sizeof varint);
    s_refused (type, env, "bad_envelope");
    zframe_destroy (&env);
    zframe_destroy (&type);
}
END_TEST

START_TEST (test_wrong_version)
{
    zframe_t *type = zframe_from (TYPE_QUERY);
    zframe_t *env = s_envelope (TYPE_QUERY, true, 2, "id", "", 0);
    qp_error_t err = s_refused (type, env, "unsupported_version");
    ck_assert_str_eq (err.field, "schema_version");
    zframe_destroy (&env);
    env = s_envelope (TYPE_QUERY, false, 0, "id", "", 0); /* absent */
    s_refused (type, env, "unsupported_version");
    zframe_destroy (&env);
    env = s_envelope (TYPE_QUERY, true, 1, "id", "", 0); /* the control: accepted */
    qp_message_t msg;
    ck_assert_int_eq (qp_message_decode (type, env, &msg, &err), 0);
    qp_message_clear (&msg);
    zframe_destroy (&env);
    zframe_destroy (&type);
}
END_TEST

START_TEST (test_type_mismatch)
{
    zframe_t *type = zframe_from (TYPE_QUERY);
    zframe_t *env = s_envelope ("qp.v1.SubmitDossier", true, 1, "id", "", 0);
    qp_error_t err = s_refused (type, env, "type_mismatch");
    ck_assert_str_eq (err.field, "type");
    zframe_destroy (&env);
    env = s_envelope (NULL, true, 1, "id", "", 0);
    s_refused (type, env, "type_mismatch");
    zframe_destroy (&env);
    zframe_destroy (&type);
}
END_TEST

START_TEST (test_missing_message_id)
{
    zframe_t *type = zframe_from (TYPE_QUERY);
    zframe_t *env = s_envelope (TYPE_QUERY, true, 1, NULL, "", 0);
    qp_error_t err = s_refused (type, env, "bad_envelope");
    ck_assert_str_eq (err.field, "message_id");
    zframe_destroy (&env);
    env = s_envelope (TYPE_QUERY, true, 1, "", "", 0);
    err = s_refused (type, env, "bad_envelope");
    ck_assert_str_eq (err.field, "message_id");
    zframe_destroy (&env);
    zframe_destroy (&type);
}
END_TEST

START_TEST (test_bad_payload)
{
    zframe_t *type = zframe_from (TYPE_QUERY);
    const unsigned char truncated[] = {0x0a, 0x0a, 'a', 'b'}; /* dossier_id: 10 bytes, 2 sent */
    zframe_t *env = s_envelope (TYPE_QUERY, true, 1, "id", truncated, sizeof truncated);
    qp_error_t err = s_refused (type, env, "bad_payload");
    ck_assert_str_eq (err.field, "payload");
    zframe_destroy (&env);
    zframe_destroy (&type);
}
END_TEST

START_TEST (test_build_error)
{
    qp_error_t e;
    qp_error_set (&e, "invalid_field", "dossier.business.siret", "SIRET %s has %d digits", "123",
                  3);
    ck_assert_str_eq (e.message, "SIRET 123 has 3 digits");
    zmsg_t *m = qp_message_build_error (&e, "req-1", "dossier-9", 42);
    ck_assert (zframe_streq (zmsg_first (m), "qp.v1.Error"));
    qp_message_t msg;
    qp_error_t err;
    ck_assert_int_eq (qp_message_decode (zmsg_first (m), zmsg_last (m), &msg, &err), 0);
    Qp__V1__Error *pe = (Qp__V1__Error *)msg.payload;
    ck_assert_str_eq (pe->code, "invalid_field");
    ck_assert_str_eq (pe->field, "dossier.business.siret");
    ck_assert_str_eq (pe->message, "SIRET 123 has 3 digits");
    ck_assert_str_eq (pe->in_reply_to, "req-1");
    ck_assert_str_eq (msg.envelope->causation_id, "req-1");
    ck_assert_str_eq (msg.envelope->correlation_id, "dossier-9");
    ck_assert_int_eq (msg.envelope->event_time_ms, 42);
    char first_id[QP_ID_HEX + 1];
    snprintf (first_id, sizeof first_id, "%s", msg.envelope->message_id);
    qp_message_clear (&msg);
    zmsg_destroy (&m);

    /* Same error for the same message: same id; another code: another id. No field:
     * absent, not "". Unknown origin: no in_reply_to. */
    m = qp_message_build_error (&e, "req-1", NULL, 0);
    ck_assert_int_eq (qp_message_decode (zmsg_first (m), zmsg_last (m), &msg, &err), 0);
    ck_assert_str_eq (msg.envelope->message_id, first_id);
    qp_message_clear (&msg);
    zmsg_destroy (&m);
    qp_error_set (&e, "unknown_type", NULL, "nope");
    m = qp_message_build_error (&e, NULL, NULL, 0);
    ck_assert_int_eq (qp_message_decode (zmsg_first (m), zmsg_last (m), &msg, &err), 0);
    pe = (Qp__V1__Error *)msg.payload;
    ck_assert_str_ne (msg.envelope->message_id, first_id);
    ck_assert_ptr_null (pe->field);
    ck_assert_ptr_null (pe->in_reply_to);
    ck_assert_str_eq (pe->code, "unknown_type");
    qp_message_clear (&msg);
    zmsg_destroy (&m);

    /* A message longer than the buffer is cut, never overflowed. */
    char longtext[600];
    memset (longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    qp_error_set (&e, "internal", NULL, "%s", longtext);
    ck_assert_int_eq (strlen (e.message), sizeof e.message - 1);
}
END_TEST

/* Reading one field off the wire, without decoding: what the evaluation's shards use to
 * skip another instance's events (qp_service.c). */
START_TEST (test_peek)
{
    const uint8_t *v = NULL;
    size_t n = 0;
    /* varint 150, fixed64, fixed32, then field 5 twice: the last one is read */
    const uint8_t msg[] = {0x08, 0x96, 0x01, 0x11, 1, 2,    3,    4,   5,    6,    7,   8,
                           0x1d, 1,    2,    3,    4, 0x2a, 0x01, 'a', 0x2a, 0x02, 'b', 'c'};
    ck_assert_int_eq (qp_message_peek_bytes (msg, sizeof msg, 5, &v, &n), 1);
    ck_assert_int_eq (n, 2);
    ck_assert (!memcmp (v, "bc", 2));
    ck_assert_int_eq (qp_message_peek_bytes (msg, sizeof msg, 6, &v, &n), 0);
    ck_assert_int_eq (qp_message_peek_bytes (msg, 0, 5, &v, &n), 0);
    /* field 1 is a varint, not length-delimited */
    ck_assert_int_eq (qp_message_peek_bytes (msg, sizeof msg, 1, &v, &n), -1);
    /* cut inside the last field, inside a varint, inside the fixed64; field 0; group */
    ck_assert_int_eq (qp_message_peek_bytes (msg, sizeof msg - 1, 5, &v, &n), -1);
    ck_assert_int_eq (qp_message_peek_bytes (msg, 2, 5, &v, &n), -1);
    ck_assert_int_eq (qp_message_peek_bytes (msg, 8, 5, &v, &n), -1);
    const uint8_t zero[] = {0x02, 0x00}, group[] = {0x0b, 0x0c};
    ck_assert_int_eq (qp_message_peek_bytes (zero, sizeof zero, 5, &v, &n), -1);
    ck_assert_int_eq (qp_message_peek_bytes (group, sizeof group, 5, &v, &n), -1);
    const uint8_t endless[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    ck_assert_int_eq (qp_message_peek_bytes (endless, sizeof endless, 5, &v, &n), -1);

    /* The payload's dossier_id, as qp_message_decode would read it. */
    qp_meta_t meta = {0};
    zmsg_t *m = s_build_query ("0123456789abcdef0123456789abcdef", &meta, NULL);
    ck_assert_int_eq (
        qp_message_peek_payload_string (zmsg_first (m), zmsg_last (m), "dossier_id", &v, &n), 1);
    ck_assert_int_eq (n, 32);
    ck_assert (!memcmp (v, "0123456789abcdef0123456789abcdef", 32));
    /* a type without that field; an unknown type; an envelope cut short */
    ck_assert_int_eq (
        qp_message_peek_payload_string (zmsg_first (m), zmsg_last (m), "nope", &v, &n), 0);
    zframe_t *unknown = zframe_from ("qp.v1.Nope");
    ck_assert_int_eq (qp_message_peek_payload_string (unknown, zmsg_last (m), "dossier_id", &v, &n),
                      -1);
    zframe_destroy (&unknown);
    zframe_t *cut = zframe_new (zframe_data (zmsg_last (m)), zframe_size (zmsg_last (m)) - 3);
    ck_assert_int_eq (qp_message_peek_payload_string (zmsg_first (m), cut, "dossier_id", &v, &n),
                      -1);
    zframe_destroy (&cut);
    zmsg_destroy (&m);
    /* no dossier_id in the payload */
    m = s_build_query (NULL, &meta, NULL);
    ck_assert_int_eq (
        qp_message_peek_payload_string (zmsg_first (m), zmsg_last (m), "dossier_id", &v, &n), 0);
    zmsg_destroy (&m);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("message");
    TCase *tc = tcase_create ("message");
    tcase_set_timeout (tc, 30);
    tcase_add_test (tc, test_round_trip);
    tcase_add_test (tc, test_ids);
    tcase_add_test (tc, test_lookup);
    tcase_add_test (tc, test_missing_frame);
    tcase_add_test (tc, test_too_large);
    tcase_add_test (tc, test_unknown_type);
    tcase_add_test (tc, test_not_an_envelope);
    tcase_add_test (tc, test_wrong_version);
    tcase_add_test (tc, test_type_mismatch);
    tcase_add_test (tc, test_missing_message_id);
    tcase_add_test (tc, test_bad_payload);
    tcase_add_test (tc, test_build_error);
    tcase_add_test (tc, test_peek);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
