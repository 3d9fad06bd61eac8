/* JSON <-> protobuf through the message descriptors (jansson), for the command-line
 * client, the sample generator and reports. The mapping is protobuf's JSON mapping with
 * the .proto field names kept: {"business": {"siret": "...", "employees": 3}}, enums as
 * their names ("RETAIL_AND_CRAFTS"), 64-bit integers as JSON integers, bytes as base64. */
#ifndef QP_JSON_H
#define QP_JSON_H
#include "qp_message.h"
#include <jansson.h>

/* Builds a message of type desc from a JSON object. Returns the message (free it with
 * protobuf_c_message_free_unpacked (msg, NULL)), or NULL with err naming the field by its
 * dotted path ("project.amount_asked_cents") and why: unknown field, wrong JSON type,
 * out-of-range number, unknown enum name (a name the user wrote, of a field or an enum
 * value, is quoted at most 32 bytes long, escaped). */
ProtobufCMessage *qp_json_to_message (const ProtobufCMessageDescriptor *desc, const json_t *json,
                                      qp_error_t *err);
/* Same from text (one JSON document). */
ProtobufCMessage *qp_json_parse_message (const ProtobufCMessageDescriptor *desc, const char *text,
                                         qp_error_t *err);

/* A JSON object with the message's present fields (new reference). */
json_t *qp_json_from_message (const ProtobufCMessage *msg);
#endif
