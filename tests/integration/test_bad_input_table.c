/* Bad input everywhere, as a table: every kind of malformed input to every entry point of
 * the real stack (the bus's frame protocol, intake, eligibility, funding on the work and
 * the partner endpoints, evaluation). Each row names the input and the error expected
 * (code and field); the reply must name the problem, the program must still be alive
 * and serving, and at the end a valid dossier still goes all the way through.
 * QP_BAD_INPUT_PROBE=1 prints what each row actually got. test_bad_input.c keeps the
 * finer checks (nothing stored, which fields of an invalid dossier). */
#include "qp/v1/evaluation.pb-c.h"
#include "qp_bus.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp_test_pipeline_fixture.h"
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---- Inputs ------------------------------------------------------------------------ */

typedef enum { AT_WORK, AT_PARTNER } endpoint_t;

/* What an input is made of: raw frames, or SEND [service][type][envelope bytes]. */
typedef enum {
    RAW_NOT_QPB,          /* "HELLO" */
    RAW_ONLY_PROTOCOL,    /* a truncated frame set: QPB1 alone */
    RAW_UNKNOWN_COMMAND,  /* QPB1 FROB */
    RAW_SEND_NO_ENVELOPE, /* SEND service type (envelope frame missing) */
    RAW_SEND_NO_SERVICE,  /* SEND "" type envelope */
    ENV_NOT_PROTOBUF,     /* envelope bytes that are not protobuf */
    ENV_TRUNCATED,        /* a valid envelope cut in half */
    ENV_OVERSIZED,        /* an envelope over QP_MAX_ENVELOPE_BYTES */
    ENV_WRONG_VERSION,    /* schema_version 2 */
    ENV_UNKNOWN_TYPE,     /* qp.v1.NoSuchThing */
    ENV_TYPE_MISMATCH,    /* the frame says one type, the envelope another */
    PAYLOAD_NOT_PROTOBUF, /* the right type, a payload that does not decode */
    MESSAGE,              /* a well-formed message with bad content (row->build) */
} shape_t;

typedef struct row {
    const char *name;
    endpoint_t at;
    const char *service;
    const char *type; /* the message type the service handles */
    shape_t shape;
    ProtobufCMessage *(*build) (void); /* MESSAGE rows */
    const char *code;  /* expected error code; NULL: a one-way message, no reply expected */
    const char *field; /* expected field, NULL: any */
} row_t;

/* The answer: a bus ERROR, a qp.v1.Error, or a reply carrying FieldErrors. */
typedef struct {
    char code[64], field[128], message[512];
    bool answered;
} answer_t;

static uint8_t *s_envelope (const char *type, uint32_t version, const void *payload, size_t plen,
                            size_t *len)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    static unsigned counter;
    char disc[32], id[QP_ID_HEX + 1];
    snprintf (disc, sizeof disc, "row-%u-%d", ++counter, (int)getpid ());
    qp_message_make_id (id, type, "test-bad-input-table", disc);
    env.message_id = id;
    env.type = (char *)type;
    env.has_schema_version = true;
    env.schema_version = version;
    env.has_event_time_ms = true;
    env.event_time_ms = 1717400000000;
    env.has_payload = true;
    env.payload.data = (uint8_t *)payload;
    env.payload.len = plen;
    *len = qp__v1__envelope__get_packed_size (&env);
    uint8_t *buf = malloc (*len);
    qp__v1__envelope__pack (&env, buf);
    return buf;
}

/* A small valid payload of the type the service handles (an unknown dossier). */
static uint8_t *s_valid_payload (const char *type, size_t *len)
{
    Qp__V1__DossierReceived r = QP__V1__DOSSIER_RECEIVED__INIT;
    r.dossier_id = "00000000000000000000000000000000";
    *len = qp__v1__dossier_received__get_packed_size (&r);
    uint8_t *buf = malloc (*len + 1);
    qp__v1__dossier_received__pack (&r, buf);
    (void)type; /* field 1 is a string id in every work message used here */
    return buf;
}

static zmsg_t *s_send (const char *service, const char *type, const void *env, size_t len)
{
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, QPB_SEND);
    zmsg_addstr (m, service);
    zmsg_addstr (m, type);
    zmsg_addmem (m, env, len);
    return m;
}

static zmsg_t *s_frames (const row_t *row)
{
    zmsg_t *m = NULL;
    size_t len = 0, plen = 0;
    uint8_t *env = NULL, *payload = NULL;
    switch (row->shape) {
    case RAW_NOT_QPB:
        m = zmsg_new ();
        zmsg_addstr (m, "HELLO");
        return m;
    case RAW_ONLY_PROTOCOL:
        m = zmsg_new ();
        zmsg_addstr (m, QPB_PROTOCOL);
        return m;
    case RAW_UNKNOWN_COMMAND:
        m = zmsg_new ();
        zmsg_addstr (m, QPB_PROTOCOL);
        zmsg_addstr (m, "FROB");
        zmsg_addstr (m, row->service);
        return m;
    case RAW_SEND_NO_ENVELOPE:
        m = zmsg_new ();
        zmsg_addstr (m, QPB_PROTOCOL);
        zmsg_addstr (m, QPB_SEND);
        zmsg_addstr (m, row->service);
        zmsg_addstr (m, row->type);
        return m;
    case RAW_SEND_NO_SERVICE:
        payload = s_valid_payload (row->type, &plen);
        env = s_envelope (row->type, 1, payload, plen, &len);
        m = s_send ("", row->type, env, len);
        break;
    case ENV_NOT_PROTOBUF:
        m = s_send (row->service, row->type, "\xff\xff\xff\xff garbage", 12);
        return m;
    case ENV_TRUNCATED:
        payload = s_valid_payload (row->type, &plen);
        env = s_envelope (row->type, 1, payload, plen, &len);
        m = s_send (row->service, row->type, env, len / 2);
        break;
    case ENV_OVERSIZED:
        plen = QP_MAX_ENVELOPE_BYTES + 1024;
        payload = calloc (1, plen);
        env = s_envelope (row->type, 1, payload, plen, &len);
        m = s_send (row->service, row->type, env, len);
        break;
    case ENV_WRONG_VERSION:
        payload = s_valid_payload (row->type, &plen);
        env = s_envelope (row->type, 2, payload, plen, &len);
        m = s_send (row->service, row->type, env, len);
        break;
    case ENV_UNKNOWN_TYPE:
        env = s_envelope ("qp.v1.NoSuchThing", 1, "", 0, &len);
        m = s_send (row->service, "qp.v1.NoSuchThing", env, len);
        break;
    case ENV_TYPE_MISMATCH:
        payload = s_valid_payload (row->type, &plen);
        env = s_envelope (row->type, 1, payload, plen, &len);
        m = s_send (row->service, "qp.v1.FollowUp", env, len);
        break;
    case PAYLOAD_NOT_PROTOBUF:
        env = s_envelope (row->type, 1, "\x0a\xff\xff\xff\xff\x0f", 6, &len);
        m = s_send (row->service, row->type, env, len);
        break;
    case MESSAGE: {
        ProtobufCMessage *msg = row->build ();
        plen = protobuf_c_message_get_packed_size (msg);
        payload = malloc (plen + 1);
        protobuf_c_message_pack (msg, payload);
        env = s_envelope (msg->descriptor->name, 1, payload, plen, &len);
        m = s_send (row->service, msg->descriptor->name, env, len);
        break;
    }
    }
    free (payload);
    free (env);
    return m;
}

/* Sends the row's frames and reads the answer. */
static void s_ask (const row_t *row, answer_t *a)
{
    memset (a, 0, sizeof *a);
    zmsg_t *m = s_frames (row);
    zmsg_t *answer =
        qp_test_raw_send (row->at == AT_WORK ? s_stack->work : s_stack->partner, &m, 5000);
    if (!answer)
        return;
    a->answered = true;
    free (zmsg_popstr (answer));
    char *kind = zmsg_popstr (answer);
    if (kind && !strcmp (kind, QPB_ERROR)) {
        /* ERROR [code] [text] */
        char *code = zmsg_popstr (answer), *text = zmsg_popstr (answer);
        snprintf (a->code, sizeof a->code, "%s", code ? code : "");
        snprintf (a->message, sizeof a->message, "%s", text ? text : "");
        free (code);
        free (text);
    } else if (kind && !strcmp (kind, QPB_DELIVER) && zmsg_size (answer) >= 3) {
        zframe_t *from = zmsg_pop (answer), *t = zmsg_pop (answer), *e = zmsg_pop (answer);
        qp_message_t msg;
        qp_error_t err;
        if (qp_message_decode (t, e, &msg, &err) != 0)
            snprintf (a->code, sizeof a->code, "undecodable reply: %s", err.code);
        else if (msg.descriptor == &qp__v1__error__descriptor) {
            Qp__V1__Error *x = (Qp__V1__Error *)msg.payload;
            snprintf (a->code, sizeof a->code, "%s", x->code ? x->code : "");
            snprintf (a->field, sizeof a->field, "%s", x->field ? x->field : "");
            snprintf (a->message, sizeof a->message, "%s", x->message ? x->message : "");
        } else {
            /* Replies with FieldErrors: the error on the row's field, else the first. */
            Qp__V1__FieldError **errors = NULL;
            size_t n = 0;
            if (msg.descriptor == &qp__v1__submit_dossier_reply__descriptor)
                errors = ((Qp__V1__SubmitDossierReply *)msg.payload)->errors,
                n = ((Qp__V1__SubmitDossierReply *)msg.payload)->n_errors;
            else if (msg.descriptor == &qp__v1__follow_up_reply__descriptor)
                errors = ((Qp__V1__FollowUpReply *)msg.payload)->errors,
                n = ((Qp__V1__FollowUpReply *)msg.payload)->n_errors;
            else if (msg.descriptor == &qp__v1__dossier_status_reply__descriptor &&
                     !((Qp__V1__DossierStatusReply *)msg.payload)->found)
                snprintf (a->code, sizeof a->code, "not_found");
            size_t pick = 0;
            for (size_t i = 0; i < n; i++)
                if (row->field && errors[i]->field && !strcmp (errors[i]->field, row->field))
                    pick = i;
            if (n) {
                snprintf (a->code, sizeof a->code, "%s", errors[pick]->code);
                snprintf (a->field, sizeof a->field, "%s", errors[pick]->field);
                snprintf (a->message, sizeof a->message, "%s", errors[pick]->message);
            } else if (!a->code[0])
                snprintf (a->code, sizeof a->code, "no error: %s", msg.descriptor->name);
        }
        qp_message_clear (&msg);
        zframe_destroy (&from);
        zframe_destroy (&t);
        zframe_destroy (&e);
    }
    free (kind);
    zmsg_destroy (&answer);
}

/* ---- Messages with bad content ---------------------------------------------------- */

static Qp__V1__Dossier s_d;
static Qp__V1__ProjectHolder s_h;
static Qp__V1__Business s_b;
static Qp__V1__Project s_p;
static Qp__V1__Coordinates s_loc;
static Qp__V1__SubmitDossier s_submit;

/* A valid dossier; rows spoil one field. */
static Qp__V1__SubmitDossier *s_dossier (const char *key)
{
    qp__v1__dossier__init (&s_d);
    qp__v1__project_holder__init (&s_h);
    qp__v1__business__init (&s_b);
    qp__v1__project__init (&s_p);
    qp__v1__submit_dossier__init (&s_submit);
    static char k[64];
    snprintf (k, sizeof k, "%s", key);
    s_d.channel = "test-bad-input-table", s_d.channel_key = k, s_d.submitted_on = "2025-06-02";
    s_h.person_key = "person-table-0123456789abcdef", s_h.residence_qpv = "QN05981M";
    s_h.has_accompanied = true, s_h.accompanied = true;
    s_h.has_network = true, s_h.network = QP__V1__NETWORK__ADIE;
    s_b.insee_commune = "59512";
    s_p.has_axis = true, s_p.axis = QP__V1__AXIS__ENTREPRENEURSHIP;
    s_p.has_stage = true, s_p.stage = QP__V1__STAGE__CREATION;
    s_p.has_amount_asked_cents = true, s_p.amount_asked_cents = 500000;
    s_p.has_financing_need_cents = true, s_p.financing_need_cents = 2000000;
    s_p.has_personal_contribution_cents = true, s_p.personal_contribution_cents = 400000;
    s_d.holder = &s_h, s_d.business = &s_b, s_d.project = &s_p;
    s_submit.dossier = &s_d;
    return &s_submit;
}

static ProtobufCMessage *s_negative_amount (void)
{
    s_dossier ("negative")->dossier->project->amount_asked_cents = -100;
    return &s_submit.base;
}
static ProtobufCMessage *s_huge_amount (void)
{
    s_dossier ("huge")->dossier->project->amount_asked_cents = INT64_MAX;
    return &s_submit.base;
}
static ProtobufCMessage *s_huge_need (void)
{
    s_dossier ("huge-need")->dossier->project->financing_need_cents = INT64_MAX;
    return &s_submit.base;
}
static ProtobufCMessage *s_bad_date (void)
{
    s_dossier ("bad-date")->dossier->submitted_on = "2025-02-30";
    return &s_submit.base;
}
static ProtobufCMessage *s_old_date (void)
{
    s_dossier ("old-date")->dossier->submitted_on = "1850-01-01";
    return &s_submit.base;
}
static ProtobufCMessage *s_future_date (void)
{
    s_dossier ("future-date")->dossier->submitted_on = "2999-01-01";
    return &s_submit.base;
}
static ProtobufCMessage *s_lat_out_of_range (void)
{
    s_dossier ("lat");
    qp__v1__coordinates__init (&s_loc);
    s_loc.has_lat = true, s_loc.lat = 91.5, s_loc.has_lon = true, s_loc.lon = 2.3;
    s_b.location = &s_loc;
    return &s_submit.base;
}
static ProtobufCMessage *s_lon_out_of_range (void)
{
    s_dossier ("lon");
    qp__v1__coordinates__init (&s_loc);
    s_loc.has_lat = true, s_loc.lat = 48.8, s_loc.has_lon = true, s_loc.lon = -181;
    s_b.location = &s_loc;
    return &s_submit.base;
}
static ProtobufCMessage *s_lat_nan (void)
{
    s_dossier ("lat-nan");
    qp__v1__coordinates__init (&s_loc);
    s_loc.has_lat = true, s_loc.lat = NAN, s_loc.has_lon = true, s_loc.lon = 2.3;
    s_b.location = &s_loc;
    return &s_submit.base;
}
static ProtobufCMessage *s_lon_alone (void)
{
    s_dossier ("lon-alone");
    qp__v1__coordinates__init (&s_loc);
    s_loc.has_lon = true, s_loc.lon = 2.3;
    s_b.location = &s_loc;
    return &s_submit.base;
}
/* Paris with lat and lon swapped: 2.35 is a latitude of Guyane, 48.85 no longitude of it. */
static ProtobufCMessage *s_swapped (void)
{
    s_dossier ("swapped");
    qp__v1__coordinates__init (&s_loc);
    s_loc.has_lat = true, s_loc.lat = 2.35, s_loc.has_lon = true, s_loc.lon = 48.85;
    s_b.location = &s_loc;
    return &s_submit.base;
}
static ProtobufCMessage *s_invalid_utf8 (void)
{
    s_dossier ("utf8")->dossier->business->naf_code = "\xc3\x28";
    return &s_submit.base;
}
static ProtobufCMessage *s_invalid_utf8_key (void)
{
    s_dossier ("utf8-key")->dossier->channel_key = "key-\xff\xfe";
    return &s_submit.base;
}
static ProtobufCMessage *s_no_dossier (void)
{
    qp__v1__submit_dossier__init (&s_submit);
    return &s_submit.base;
}

static Qp__V1__FollowUp s_follow;
static ProtobufCMessage *s_follow_up_unknown (void)
{
    qp__v1__follow_up__init (&s_follow);
    s_follow.dossier_id = "0123456789abcdef0123456789abcdef";
    s_follow.has_year = true, s_follow.year = 1;
    s_follow.has_active = true, s_follow.active = true;
    s_follow.reported_on = "2026-06-02";
    return &s_follow.base;
}

static Qp__V1__DossierStatusQuery s_status;
static ProtobufCMessage *s_status_bad_id (void)
{
    qp__v1__dossier_status_query__init (&s_status);
    s_status.dossier_id = "not-an-id\xc3\x28";
    return &s_status.base;
}
static ProtobufCMessage *s_status_unknown (void)
{
    qp__v1__dossier_status_query__init (&s_status);
    s_status.dossier_id = "0123456789abcdef0123456789abcdef";
    return &s_status.base;
}

static Qp__V1__DossierReceived s_received;
static ProtobufCMessage *s_received_unknown (void)
{
    qp__v1__dossier_received__init (&s_received);
    s_received.dossier_id = "0123456789abcdef0123456789abcdef";
    return &s_received.base;
}

static Qp__V1__EligibilityDecided s_decided;
static ProtobufCMessage *s_decided_unknown (void)
{
    qp__v1__eligibility_decided__init (&s_decided);
    s_decided.dossier_id = "0123456789abcdef0123456789abcdef";
    s_decided.decided_on = "2025-06-02";
    return &s_decided.base;
}

static Qp__V1__PartnerDecision s_pd;
static ProtobufCMessage *s_decision_unknown_request (void)
{
    qp__v1__partner_decision__init (&s_pd);
    s_pd.request_id = "0123456789abcdef0123456789abcdef";
    s_pd.dossier_id = "0123456789abcdef0123456789abcdef";
    s_pd.scheme_id = "phq";
    s_pd.has_agency = true, s_pd.agency = QP__V1__AGENCY__BPIFRANCE;
    s_pd.has_outcome = true, s_pd.outcome = QP__V1__PARTNER_OUTCOME__APPROVED;
    return &s_pd.base;
}

static Qp__V1__IndicatorQuery s_query;
static ProtobufCMessage *s_query_month_13 (void)
{
    qp__v1__indicator_query__init (&s_query);
    s_query.from = "2025-13-01";
    return &s_query.base;
}
static ProtobufCMessage *s_query_until_before_from (void)
{
    qp__v1__indicator_query__init (&s_query);
    s_query.from = "2026-03";
    s_query.until = "2025-12";
    return &s_query.base;
}

/* ---- The table --------------------------------------------------------------------- */

#define GENERIC(at, svc, type)                                                                     \
    {svc " envelope not protobuf", at, svc, type, ENV_NOT_PROTOBUF, NULL, "bad_envelope", NULL},   \
        {svc " envelope truncated", at, svc, type, ENV_TRUNCATED, NULL, "bad_envelope", NULL},     \
        {svc " envelope oversized", at, svc, type, ENV_OVERSIZED, NULL, "too_large", NULL},        \
        {svc " schema version 2", at, svc, type, ENV_WRONG_VERSION, NULL, "unsupported_version",   \
         "schema_version"},                                                                        \
        {svc " unknown type", at, svc, type, ENV_UNKNOWN_TYPE, NULL, "unknown_type", "type"},      \
        {svc " frame type differs from envelope",                                                  \
         at,                                                                                       \
         svc,                                                                                      \
         type,                                                                                     \
         ENV_TYPE_MISMATCH,                                                                        \
         NULL,                                                                                     \
         "type_mismatch",                                                                          \
         "type"},                                                                                  \
    {                                                                                              \
        svc " payload not protobuf", at, svc, type, PAYLOAD_NOT_PROTOBUF, NULL, "bad_payload",     \
            "payload"                                                                              \
    }

static const row_t s_rows[] = {
    /* The bus's frame protocol. */
    {"bus: not QPB1", AT_WORK, "intake", NULL, RAW_NOT_QPB, NULL, "malformed_frame", NULL},
    {"bus: protocol frame alone", AT_WORK, "intake", NULL, RAW_ONLY_PROTOCOL, NULL,
     "malformed_frame", NULL},
    {"bus: unknown command", AT_WORK, "intake", NULL, RAW_UNKNOWN_COMMAND, NULL, "malformed_frame",
     NULL},
    {"bus: SEND without envelope", AT_WORK, "intake", "qp.v1.SubmitDossier", RAW_SEND_NO_ENVELOPE,
     NULL, "malformed_frame", NULL},
    {"bus: SEND to no service", AT_WORK, "", "qp.v1.SubmitDossier", RAW_SEND_NO_SERVICE, NULL,
     "malformed_frame", NULL},
    {"partner endpoint: not QPB1", AT_PARTNER, "funding", NULL, RAW_NOT_QPB, NULL,
     "malformed_frame", NULL},
    {"partner endpoint: SEND without envelope", AT_PARTNER, "funding", "qp.v1.PartnerDecision",
     RAW_SEND_NO_ENVELOPE, NULL, "malformed_frame", NULL},
    /* Envelope and payload, at every service. */
    GENERIC (AT_WORK, "intake", "qp.v1.SubmitDossier"),
    GENERIC (AT_WORK, "eligibility", "qp.v1.DossierReceived"),
    GENERIC (AT_WORK, "funding", "qp.v1.EligibilityDecided"),
    GENERIC (AT_WORK, "evaluation", "qp.v1.ReportQuery"),
    /* The partner endpoint: a decision's envelope and payload reach funding; a type that
     * is not the partner protocol's is the bus's "forbidden" (an unknown one too). */
    {"funding envelope not protobuf", AT_PARTNER, "funding", "qp.v1.PartnerDecision",
     ENV_NOT_PROTOBUF, NULL, "bad_envelope", NULL},
    {"funding envelope truncated", AT_PARTNER, "funding", "qp.v1.PartnerDecision", ENV_TRUNCATED,
     NULL, "bad_envelope", NULL},
    {"funding envelope oversized", AT_PARTNER, "funding", "qp.v1.PartnerDecision", ENV_OVERSIZED,
     NULL, "too_large", NULL},
    {"funding schema version 2", AT_PARTNER, "funding", "qp.v1.PartnerDecision", ENV_WRONG_VERSION,
     NULL, "unsupported_version", "schema_version"},
    {"partner endpoint: unknown type", AT_PARTNER, "funding", "qp.v1.PartnerDecision",
     ENV_UNKNOWN_TYPE, NULL, "forbidden", NULL},
    {"partner endpoint: a FollowUp frame", AT_PARTNER, "funding", "qp.v1.PartnerDecision",
     ENV_TYPE_MISMATCH, NULL, "forbidden", NULL},
    {"funding payload not protobuf", AT_PARTNER, "funding", "qp.v1.PartnerDecision",
     PAYLOAD_NOT_PROTOBUF, NULL, "bad_payload", "payload"},
    /* Content: intake's SubmitDossier. */
    {"intake: no dossier", AT_WORK, "intake", NULL, MESSAGE, s_no_dossier, "required", "dossier"},
    {"intake: negative amount", AT_WORK, "intake", NULL, MESSAGE, s_negative_amount, "range",
     "project.amount_asked_cents"},
    {"intake: huge amount", AT_WORK, "intake", NULL, MESSAGE, s_huge_amount, "range",
     "project.amount_asked_cents"},
    {"intake: huge financing need", AT_WORK, "intake", NULL, MESSAGE, s_huge_need, "range",
     "project.financing_need_cents"},
    {"intake: 30 February", AT_WORK, "intake", NULL, MESSAGE, s_bad_date, "format", "submitted_on"},
    {"intake: date in 1850", AT_WORK, "intake", NULL, MESSAGE, s_old_date, "range",
     "submitted_on"},
    {"intake: date in 2999", AT_WORK, "intake", NULL, MESSAGE, s_future_date, "range",
     "submitted_on"},
    {"intake: latitude 91.5", AT_WORK, "intake", NULL, MESSAGE, s_lat_out_of_range, "range",
     "business.location.lat"},
    {"intake: longitude -181", AT_WORK, "intake", NULL, MESSAGE, s_lon_out_of_range, "range",
     "business.location.lon"},
    {"intake: latitude NaN", AT_WORK, "intake", NULL, MESSAGE, s_lat_nan, "format",
     "business.location.lat"},
    {"intake: longitude without latitude", AT_WORK, "intake", NULL, MESSAGE, s_lon_alone,
     "inconsistent", "business.location.lat"},
    {"intake: lat and lon swapped", AT_WORK, "intake", NULL, MESSAGE, s_swapped, "range",
     "business.location.lon"},
    {"intake: invalid UTF-8 in naf_code", AT_WORK, "intake", NULL, MESSAGE, s_invalid_utf8,
     "format", "business.naf_code"},
    {"intake: invalid UTF-8 in channel_key", AT_WORK, "intake", NULL, MESSAGE, s_invalid_utf8_key,
     "format", "channel_key"},
    /* intake's FollowUp and DossierStatusQuery. */
    {"intake: follow-up for an unknown dossier", AT_WORK, "intake", NULL, MESSAGE,
     s_follow_up_unknown, "unknown", "dossier_id"},
    {"intake: status of a malformed id", AT_WORK, "intake", NULL, MESSAGE, s_status_bad_id,
     "invalid_field", "dossier_id"},
    {"intake: status of an unknown dossier", AT_WORK, "intake", NULL, MESSAGE, s_status_unknown,
     "not_found", NULL},
    /* Work messages for a dossier that does not exist. */
    {"eligibility: DossierReceived for an unknown dossier", AT_WORK, "eligibility", NULL, MESSAGE,
     s_received_unknown, "invalid_field", "dossier"},
    {"funding: EligibilityDecided for an unknown dossier", AT_WORK, "funding", NULL, MESSAGE,
     s_decided_unknown, "unknown_dossier", "dossier_id"},
    {"partner endpoint: decision on an unknown request", AT_PARTNER, "funding", NULL, MESSAGE,
     s_decision_unknown_request, "unknown_request", "request_id"},
    /* evaluation's queries: impossible periods. */
    {"evaluation: IndicatorQuery from month 13", AT_WORK, "evaluation", NULL, MESSAGE,
     s_query_month_13, "invalid_field", "from"},
    {"evaluation: IndicatorQuery until before from", AT_WORK, "evaluation", NULL, MESSAGE,
     s_query_until_before_from, "invalid_field", "until"},
};

/* The program serving service, still alive and still a worker of the bus. */
static void s_assert_alive (const char *service)
{
    for (size_t i = 0; i < s_stack->n_procs; i++)
        ck_assert_msg (qp_test_proc_alive (s_stack->procs[i]), "%s died", s_stack->procs[i]->name);
    ck_assert_msg (qp_test_proc_alive (s_stack->bus), "the bus died");
    if (service && *service)
        ck_assert_msg (qp_test_bus_wait_workers (s_stack->work, service, 1, 5000),
                       "no live worker for %s", service);
}

/* A valid query answered (intake, evaluation), or a valid dossier decided. */
static void s_assert_serving (const char *service)
{
    qp_message_t reply;
    qp_error_t err;
    if (!strcmp (service, "evaluation")) {
        Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
        ck_assert_int_eq (
            qp_test_call (s_stack->work, "evaluation", &q.base, NULL, 5000, &reply, &err), 0);
        ck_assert_ptr_eq (reply.descriptor, &qp__v1__report_reply__descriptor);
        qp_message_clear (&reply);
    } else {
        Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
        q.dossier_id = "0123456789abcdef0123456789abcdef";
        ck_assert_int_eq (qp_test_call (s_stack->work, "intake", &q.base, NULL, 5000, &reply, &err),
                          0);
        ck_assert_ptr_eq (reply.descriptor, &qp__v1__dossier_status_reply__descriptor);
        qp_message_clear (&reply);
    }
}

START_TEST (test_every_row)
{
    const row_t *row = &s_rows[_i];
    answer_t a;
    s_ask (row, &a);
    if (getenv ("QP_BAD_INPUT_PROBE"))
        fprintf (stderr, "%-55s -> %s code '%s' field '%s': %s\n", row->name,
                 a.answered ? "answered" : "NO ANSWER", a.code, a.field, a.message);
    if (!row->code) {
        /* A work message is one-way: funding drops it (and logs why), it keeps serving. */
        ck_assert_msg (!a.answered, "%s: unexpected answer '%s'", row->name, a.code);
        s_assert_alive (row->service);
        return;
    }
    ck_assert_msg (a.answered, "%s: no answer", row->name);
    if (!strcmp (row->code, "not_found")) {
        /* A status reply with found = false says it all. */
        ck_assert_str_eq (a.code, "not_found");
        s_assert_alive (row->service);
        s_assert_serving (row->service);
        return;
    }
    ck_assert_msg (!strcmp (a.code, row->code), "%s: code '%s', expected '%s' (%s)", row->name,
                   a.code, row->code, a.message);
    if (row->field)
        ck_assert_msg (!strcmp (a.field, row->field), "%s: field '%s', expected '%s' (%s)",
                       row->name, a.field, row->field, a.message);
    ck_assert_msg (strlen (a.message) > 10, "%s: the error does not say why: '%s'", row->name,
                   a.message);
    s_assert_alive (row->service);
    s_assert_serving (row->service);
}
END_TEST

/* After the whole table on one stack: a valid dossier goes all the way through. */
START_TEST (test_still_serving_after_the_table)
{
    answer_t a;
    for (size_t i = 0; i < sizeof s_rows / sizeof s_rows[0]; i++)
        s_ask (&s_rows[i], &a);
    s_assert_alive ("intake");
    Qp__V1__SubmitDossier *s = s_dossier ("after-the-table");
    s->dossier->holder->person_key = "person-after-the-table-0123456789";
    Qp__V1__Project *p = s->dossier->project;
    p->has_bank_loan_cents = true, p->bank_loan_cents = 1000000;
    p->has_bank_loan_months = true, p->bank_loan_months = 48;
    p->has_bank_loan_guarantee_pct = true, p->bank_loan_guarantee_pct = 50;
    p->has_honour_loan_months = true, p->honour_loan_months = 36;
    qp_test_expect_funded (s_stack->work, s, 150);
    s_assert_alive (NULL);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("bad_input_table");
    /* One stack for the whole table (unchecked fixture): a row that kills a program
     * fails its own check and every row after it. */
    TCase *tc = tcase_create ("table");
    tcase_set_timeout (tc, 300);
    tcase_add_unchecked_fixture (tc, qp_test_pipeline_setup, qp_test_pipeline_teardown);
    tcase_add_loop_test (tc, test_every_row, 0, (int)(sizeof s_rows / sizeof s_rows[0]));
    tcase_add_test (tc, test_still_serving_after_the_table);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_set_fork_status (sr, CK_NOFORK);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? 1 : 0;
}
