/* Envelope framing and the registry of payload types. */
#include "qp_message.h"
#include "qp_log.h"
#include "qp/v1/eligibility.pb-c.h"
#include "qp/v1/evaluation.pb-c.h"
#include <sodium.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>

/* Every payload type a peer may send or receive. A type missing here is "unknown_type". */
static const ProtobufCMessageDescriptor *s_types[] = {
    &qp__v1__error__descriptor,
    &qp__v1__submit_dossier__descriptor,
    &qp__v1__submit_dossier_reply__descriptor,
    &qp__v1__dossier_received__descriptor,
    &qp__v1__eligibility_decided__descriptor,
    &qp__v1__funding_request__descriptor,
    &qp__v1__partner_decision__descriptor,
    &qp__v1__funding_settled__descriptor,
    &qp__v1__dossier_closed__descriptor,
    &qp__v1__follow_up__descriptor,
    &qp__v1__follow_up_reply__descriptor,
    &qp__v1__partner_hello__descriptor,
    &qp__v1__partner_status__descriptor,
    &qp__v1__dossier_status_query__descriptor,
    &qp__v1__dossier_status_reply__descriptor,
    &qp__v1__report_query__descriptor,
    &qp__v1__report_reply__descriptor,
    &qp__v1__territory_phase__descriptor,
    &qp__v1__territory_phase_reply__descriptor,
    &qp__v1__indicator_query__descriptor,
    &qp__v1__indicator_report__descriptor,
    &qp__v1__submission_refused__descriptor,
    &qp__v1__eligibility_explain_query__descriptor,
    &qp__v1__eligibility_explain_reply__descriptor,
};

void qp_error_set (qp_error_t *err, const char *code, const char *field, const char *fmt, ...)
{
    if (!err)
        return;
    snprintf (err->code, sizeof err->code, "%s", code);
    snprintf (err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err->message, sizeof err->message, fmt, ap);
    va_end (ap);
}

const ProtobufCMessageDescriptor *qp_message_lookup_type (const char *type)
{
    for (size_t i = 0; type && i < sizeof s_types / sizeof s_types[0]; i++)
        if (strcmp (s_types[i]->name, type) == 0)
            return s_types[i];
    return NULL;
}

static void s_hex (char *out, const unsigned char *bin, size_t len)
{
    sodium_bin2hex (out, len * 2 + 1, bin, len);
}

void qp_hash_hex (char out[QP_ID_HEX + 1], const void *data, size_t len)
{
    unsigned char h[QP_ID_HEX / 2];
    crypto_generichash (h, sizeof h, data, len, NULL, 0);
    s_hex (out, h, sizeof h);
}

void qp_message_make_id (char out[QP_ID_HEX + 1], const char *type, const char *causation,
                         const char *discriminator)
{
    crypto_generichash_state st;
    unsigned char h[QP_ID_HEX / 2];
    crypto_generichash_init (&st, NULL, 0, sizeof h);
    const char *parts[] = {type, causation, discriminator};
    for (int i = 0; i < 3; i++) {
        const char *p = parts[i] ? parts[i] : "";
        crypto_generichash_update (&st, (const unsigned char *) p, strlen (p) + 1);
    }
    crypto_generichash_final (&st, h, sizeof h);
    s_hex (out, h, sizeof h);
}

int64_t qp_now_ms (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

zmsg_t *qp_message_build (const ProtobufCMessage *payload, const qp_meta_t *meta,
                          char id_out[QP_ID_HEX + 1])
{
    const char *type = payload->descriptor->name;
    char id[QP_ID_HEX + 1];
    qp_message_make_id (id, type, meta->causation_id, meta->discriminator);
    if (id_out)
        memcpy (id_out, id, sizeof id);

    size_t plen = protobuf_c_message_get_packed_size (payload);
    uint8_t *pbuf = malloc (plen ? plen : 1);
    assert (pbuf);
    protobuf_c_message_pack (payload, pbuf);

    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    env.message_id = id;
    env.type = (char *) type;
    env.has_schema_version = true;
    env.schema_version = QP_SCHEMA_VERSION;
    env.correlation_id = (char *) meta->correlation_id;
    env.causation_id = (char *) meta->causation_id;
    env.producer = (char *) (meta->producer ? meta->producer : qp_log_program ());
    env.has_event_time_ms = true;
    env.event_time_ms = meta->event_time_ms;
    env.has_payload = true;
    env.payload.data = pbuf;
    env.payload.len = plen;

    size_t elen = qp__v1__envelope__get_packed_size (&env);
    zframe_t *ef = zframe_new (NULL, elen);
    qp__v1__envelope__pack (&env, zframe_data (ef));
    free (pbuf);

    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, type);
    zmsg_append (msg, &ef);
    return msg;
}

int qp_message_decode (zframe_t *type_frame, zframe_t *envelope_frame, qp_message_t *out,
                       qp_error_t *err)
{
    memset (out, 0, sizeof *out);
    if (!type_frame || !envelope_frame) {
        qp_error_set (err, "malformed_frame", NULL,
                      "expected two frames [type][Envelope], got fewer");
        return -1;
    }
    if (zframe_size (envelope_frame) > QP_MAX_ENVELOPE_BYTES) {
        qp_error_set (err, "too_large", NULL, "envelope of %zu bytes exceeds the %d-byte limit",
                      zframe_size (envelope_frame), QP_MAX_ENVELOPE_BYTES);
        return -1;
    }
    char type[128];
    size_t tlen = zframe_size (type_frame);
    if (tlen == 0 || tlen >= sizeof type) {
        qp_error_set (err, "malformed_frame", "type", "type frame of %zu bytes is not a type name",
                      tlen);
        return -1;
    }
    memcpy (type, zframe_data (type_frame), tlen);
    type[tlen] = 0;
    const ProtobufCMessageDescriptor *desc = qp_message_lookup_type (type);
    if (!desc) {
        /* Print only safe characters of a name we do not know. */
        for (char *p = type; *p; p++)
            if ((unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f || *p == '"')
                *p = '?';
        qp_error_set (err, "unknown_type", "type", "unknown message type \"%s\"", type);
        return -1;
    }
    Qp__V1__Envelope *env = qp__v1__envelope__unpack (NULL, zframe_size (envelope_frame),
                                                      zframe_data (envelope_frame));
    if (!env) {
        qp_error_set (err, "bad_envelope", NULL, "frame 2 is not a protobuf qp.v1.Envelope");
        return -1;
    }
    if (!env->has_schema_version || env->schema_version != QP_SCHEMA_VERSION) {
        qp_error_set (err, "unsupported_version", "schema_version",
                      "schema version %u is not supported (this service speaks %d)",
                      env->has_schema_version ? env->schema_version : 0, QP_SCHEMA_VERSION);
        qp__v1__envelope__free_unpacked (env, NULL);
        return -1;
    }
    if (!env->type || strcmp (env->type, type) != 0) {
        qp_error_set (err, "type_mismatch", "type",
                      "envelope type does not match the type frame \"%s\"", type);
        qp__v1__envelope__free_unpacked (env, NULL);
        return -1;
    }
    if (!env->message_id || !*env->message_id) {
        qp_error_set (err, "bad_envelope", "message_id", "envelope has no message_id");
        qp__v1__envelope__free_unpacked (env, NULL);
        return -1;
    }
    ProtobufCMessage *payload = protobuf_c_message_unpack (
        desc, NULL, env->has_payload ? env->payload.len : 0, env->has_payload ? env->payload.data : NULL);
    if (!payload) {
        qp_error_set (err, "bad_payload", "payload", "payload is not a protobuf %s", type);
        qp__v1__envelope__free_unpacked (env, NULL);
        return -1;
    }
    out->envelope = env;
    out->payload = payload;
    out->descriptor = desc;
    return 0;
}

void qp_message_clear (qp_message_t *msg)
{
    if (msg->payload)
        protobuf_c_message_free_unpacked (msg->payload, NULL);
    if (msg->envelope)
        qp__v1__envelope__free_unpacked (msg->envelope, NULL);
    memset (msg, 0, sizeof *msg);
}

/* A base-128 varint at *p (below end): its value, *p moved past it; -1 when cut short or
 * longer than 10 bytes. */
static int s_varint (const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

int qp_message_peek_bytes (const uint8_t *data, size_t len, uint32_t field, const uint8_t **out,
                           size_t *out_len)
{
    const uint8_t *p = data, *end = data + len;
    int found = 0;
    while (p < end) {
        uint64_t tag, n;
        if (s_varint (&p, end, &tag) != 0 || tag >> 3 == 0)
            return -1;
        switch (tag & 7) {
        case 0: /* varint */
            if (s_varint (&p, end, &n) != 0)
                return -1;
            break;
        case 1: /* 64-bit */
        case 5: /* 32-bit */
            n = (tag & 7) == 1 ? 8 : 4;
            if ((uint64_t) (end - p) < n)
                return -1;
            p += n;
            break;
        case 2: /* length-delimited */
            if (s_varint (&p, end, &n) != 0 || (uint64_t) (end - p) < n)
                return -1;
            if (tag >> 3 == field) /* the last one wins, as when decoding */
                *out = p, *out_len = (size_t) n, found = 1;
            p += n;
            break;
        default: /* groups (unused by qp.v1) and invalid wire types */
            return -1;
        }
        if (tag >> 3 == field && (tag & 7) != 2)
            return -1;
    }
    return found;
}

int qp_message_peek_payload_string (zframe_t *type_frame, zframe_t *envelope_frame,
                                    const char *name, const uint8_t **out, size_t *out_len)
{
    char type[128];
    size_t tlen = type_frame ? zframe_size (type_frame) : 0;
    if (!envelope_frame || tlen == 0 || tlen >= sizeof type ||
        zframe_size (envelope_frame) > QP_MAX_ENVELOPE_BYTES)
        return -1;
    memcpy (type, zframe_data (type_frame), tlen);
    type[tlen] = 0;
    const ProtobufCMessageDescriptor *desc = qp_message_lookup_type (type);
    if (!desc)
        return -1;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name (desc, name);
    if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return 0;
    uint32_t payload_field =
        protobuf_c_message_descriptor_get_field_by_name (&qp__v1__envelope__descriptor, "payload")
            ->id;
    const uint8_t *payload = NULL;
    size_t plen = 0;
    int rc = qp_message_peek_bytes (zframe_data (envelope_frame), zframe_size (envelope_frame),
                                    payload_field, &payload, &plen);
    if (rc <= 0)
        return rc;
    return qp_message_peek_bytes (payload, plen, f->id, out, out_len);
}

zmsg_t *qp_message_build_error (const qp_error_t *err, const char *in_reply_to,
                                const char *correlation_id, int64_t event_time_ms)
{
    Qp__V1__Error e = QP__V1__ERROR__INIT;
    e.code = (char *) err->code;
    e.message = (char *) err->message;
    e.field = err->field[0] ? (char *) err->field : NULL;
    e.in_reply_to = (char *) in_reply_to;
    char disc[QP_ID_HEX + 64];
    snprintf (disc, sizeof disc, "%s:%s", err->code, in_reply_to ? in_reply_to : "");
    qp_meta_t meta = {.correlation_id = correlation_id,
                      .causation_id = in_reply_to,
                      .event_time_ms = event_time_ms,
                      .discriminator = disc};
    return qp_message_build (&e.base, &meta, NULL);
}
