/* Messages on the wire: two frames, [type][Envelope], where type is the payload's full
 * name ("qp.v1.SubmitDossier") and Envelope carries ids, times and the payload bytes.
 * This module builds them, decodes and checks them (size, type, version, payload), and
 * derives message ids from inputs so that a replay produces the same ids. */
#ifndef QP_MESSAGE_H
#define QP_MESSAGE_H
#include <czmq.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "qp/v1/dossier.pb-c.h"
#include "qp/v1/envelope.pb-c.h"
#include "qp/v1/flow.pb-c.h"

#define QP_SCHEMA_VERSION 1
/* Largest envelope a service accepts. A SubmitDossier envelope is ~250 bytes (248 for
 * the benchmarks' dossier, docs/benchmarks.md). */
#define QP_MAX_ENVELOPE_BYTES (256 * 1024)
#define QP_ID_HEX 32 /* ids are 128-bit keyed-free BLAKE2b digests in hex */

typedef struct {
    char code[32];
    char field[96];
    char message[320];
} qp_error_t;

void qp_error_set (qp_error_t *err, const char *code, const char *field, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* What a producer says about a message it builds. */
typedef struct {
    const char *correlation_id; /* dossier id or NULL */
    const char *causation_id;   /* message id of the cause or NULL */
    const char *producer;       /* NULL: the program name from qp_log */
    int64_t event_time_ms;      /* business time */
    /* Inputs the message id is derived from, besides type and causation
     * (e.g. "channel\nkey" for a submission, the scheme id for a funding request). */
    const char *discriminator;
} qp_meta_t;

/* A decoded message: envelope and payload both owned. */
typedef struct {
    Qp__V1__Envelope *envelope;
    ProtobufCMessage *payload;
    const ProtobufCMessageDescriptor *descriptor;
} qp_message_t;

/* Descriptor of a registered payload type name, or NULL. */
const ProtobufCMessageDescriptor *qp_message_lookup_type (const char *type);

/* out = hex BLAKE2b-128 of (type, causation, discriminator): stable across runs. */
void qp_message_make_id (char out[QP_ID_HEX + 1], const char *type, const char *causation,
                         const char *discriminator);

/* Packs payload into a new Envelope and returns the frames [type][Envelope]; writes the
 * message id into id_out when not NULL. */
zmsg_t *qp_message_build (const ProtobufCMessage *payload, const qp_meta_t *meta,
                          char id_out[QP_ID_HEX + 1]);

/* Decodes [type][Envelope] frames. Returns 0, or -1 with err filled:
 * malformed_frame | too_large | unknown_type | bad_envelope | unsupported_version |
 * type_mismatch | bad_payload. */
int qp_message_decode (zframe_t *type_frame, zframe_t *envelope_frame, qp_message_t *out,
                       qp_error_t *err);
void qp_message_clear (qp_message_t *msg);

/* The last length-delimited field number field at the top level of the protobuf bytes
 * data (len bytes), read from the wire without decoding the message: what a filter
 * needs before it decides whether to decode at all. Returns 1 with *out and *out_len set,
 * 0 when the field is absent, -1 when the bytes are not a well-formed protobuf message
 * or the field is not length-delimited. */
int qp_message_peek_bytes (const uint8_t *data, size_t len, uint32_t field, const uint8_t **out,
                           size_t *out_len);
/* The payload's string field name of [type][Envelope] frames, peeked at as above, for
 * the frames' type. Returns 1 found (maybe empty), 0 absent or the type has no such
 * field, -1 frames not well formed (qp_message_decode says why). */
int qp_message_peek_payload_string (zframe_t *type_frame, zframe_t *envelope_frame,
                                    const char *name, const uint8_t **out, size_t *out_len);

/* Convenience for building an Error payload message. */
zmsg_t *qp_message_build_error (const qp_error_t *err, const char *in_reply_to,
                                const char *correlation_id, int64_t event_time_ms);

/* Hex id of arbitrary bytes (used for dossier ids and content hashes). */
void qp_hash_hex (char out[QP_ID_HEX + 1], const void *data, size_t len);

/* Wall clock in ms: only for leases and timeouts, never inside a decision. */
int64_t qp_now_ms (void);
#endif
