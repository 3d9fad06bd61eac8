/* What the intake tests share: the valid submission they vary, and an intake run in
 * process on a real redis-server with the real zones (data/) and the fixture territories
 * (tests/data). Header-only: it asserts with check and needs intake (services/intake),
 * which the benchmarks that build tests/support/qp_test.c do not link. No state of its
 * own: the test keeps what these give it, under its own names. */
#ifndef QP_TEST_INTAKE_H
#define QP_TEST_INTAKE_H
#include "intake/intake.h"
#include "qp_json.h"
#include "qp_redis.h"
#include "qp_test.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* The fixture territories (tests/data/intake-territories.json: three territories), the
 * file qp_test_env_territories gives the programs. */
static inline const char *qp_test_intake_territories (void)
{
    return strchr (qp_test_env_territories (), '=') + 1;
}

/* A valid submission of (channel, key) on submitted_on (a bad date makes it invalid) as
 * a channel sends it in JSON, read as intake's handler gets it: a holder living in
 * Montreuil (93048) creating a business in Roubaix (59512, the fixture's "roubaix"),
 * asking 5,000 euros of a 20,000 euro need. patch (may be NULL): JSON merged into it
 * first (a member set to null removes it). Free with qp__v1__submit_dossier__free_unpacked. */
static inline Qp__V1__SubmitDossier *qp_test_submission (const char *channel, const char *key,
                                                         const char *submitted_on,
                                                         const char *patch)
{
    char text[1024];
    int len = snprintf (text, sizeof text,
                        "{\"dossier\": {\"channel\": \"%s\", \"channel_key\": \"%s\","
                        " \"submitted_on\": \"%s\","
                        " \"holder\": {\"person_key\": \"pk-0123456789abcdef\","
                        "  \"residence\": {\"insee_commune\": \"93048\"}},"
                        " \"business\": {\"insee_commune\": \"59512\"},"
                        " \"project\": {\"axis\": \"ENTREPRENEURSHIP\", \"stage\": \"CREATION\","
                        "  \"financing_need_cents\": 2000000, \"amount_asked_cents\": 500000}}}",
                        channel, key, submitted_on);
    ck_assert (len > 0 && (size_t)len < sizeof text);
    json_error_t jerr;
    json_t *j = json_loads (text, 0, &jerr);
    ck_assert_msg (j, "%s", jerr.text);
    if (patch) {
        json_t *p = json_loads (patch, 0, &jerr);
        ck_assert_msg (p, "bad patch %s: %s", patch, jerr.text);
        ck_assert_int_eq (json_object_update_recursive (j, p), 0);
        json_decref (p);
    }
    qp_error_t err;
    ProtobufCMessage *m = qp_json_to_message (&qp__v1__submit_dossier__descriptor, j, &err);
    ck_assert_msg (m, "%s: %s", err.field, err.message);
    json_decref (j);
    return (Qp__V1__SubmitDossier *)m;
}

/* Starts a redis-server (*server_p), connects *r_p to it and makes *intake_p: an intake on
 * it (pepper "test-pepper") using data/'s zones and the fixture territories. For a
 * checked fixture's setup; qp_test_intake_close undoes it. */
static inline void qp_test_intake_open (qp_test_redis_t **server_p, qp_redis_t **r_p,
                                        intake_t **intake_p)
{
    *server_p = qp_test_redis_start ();
    ck_assert_ptr_nonnull (*server_p);
    *r_p = qp_redis_connect ((*server_p)->host, (*server_p)->port, 5000);
    ck_assert_ptr_nonnull (*r_p);
    *intake_p = intake_new (*r_p, "test-pepper");
    ck_assert_ptr_nonnull (*intake_p);
    char path[1024];
    snprintf (path, sizeof path, "%s/data/" INTAKE_ZONES_FILE, qp_test_source_dir ());
    qp_error_t err;
    intake_zones_t *zones = intake_zones_load (path, &err);
    ck_assert_msg (zones, "%s", err.message);
    intake_use_zones (*intake_p, &zones);
    ck_assert_ptr_null (zones); /* intake took them */
    ck_assert_int_eq (intake_load_territories (*intake_p, qp_test_intake_territories ()), 3);
}

/* A service that publishes (on free loopback ports, no bus behind them) with intake
 * attached to it: intake's creations and follow-ups then record their events in the
 * outbox. qp_service_destroy it at the end of the test. */
static inline qp_service_t *qp_test_intake_publishing (intake_t *intake)
{
    char work[64], publish[64];
    snprintf (work, sizeof work, "tcp://127.0.0.1:%d", qp_test_free_port ());
    snprintf (publish, sizeof publish, "tcp://127.0.0.1:%d", qp_test_free_port ());
    qp_service_t *service = qp_service_new ("intake", work, publish, NULL);
    ck_assert_ptr_nonnull (service);
    intake_attach (intake, service);
    return service;
}

/* How many members of the outbox (a ZRANGE reply; a member is the event's type, NUL, its
 * envelope) are events of type ("qp.v1.DossierReceived"). */
static inline size_t qp_test_outbox_count (const redisReply *members, const char *type)
{
    ck_assert (members && members->type == REDIS_REPLY_ARRAY);
    size_t len = strlen (type) + 1, n = 0;
    for (size_t i = 0; i < members->elements; i++) {
        const redisReply *m = members->element[i];
        n += m->len > len && !memcmp (m->str, type, len);
    }
    return n;
}

static inline void qp_test_intake_close (qp_test_redis_t **server_p, qp_redis_t **r_p,
                                         intake_t **intake_p)
{
    intake_destroy (intake_p);
    qp_redis_destroy (r_p);
    qp_test_redis_stop (server_p);
}
#endif
