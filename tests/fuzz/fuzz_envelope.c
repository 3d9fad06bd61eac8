/* Fuzz: the two frames a service receives, [type][Envelope], decoded as a service does
 * (qp_message_decode), then the payload validated as intake does (with the project's
 * territory zones) and turned to JSON.
 * Input: the type frame, a NUL byte, the envelope frame; no NUL: the whole input is the
 * envelope of a qp.v1.SubmitDossier. */
#include "fuzz_support.h"
#include "qp_json.h"
#include "qp_message.h"
#include "validate.h"

static void s_exercise (const qp_message_t *msg)
{
    intake_errors_t errors;
    intake_errors_init (&errors);
    if (msg->descriptor == &qp__v1__submit_dossier__descriptor)
        intake_validate_submission_in (
            s_fuzz_zones (), (const Qp__V1__SubmitDossier *) msg->payload, &errors);
    else if (msg->descriptor == &qp__v1__follow_up__descriptor)
        intake_validate_follow_up ((const Qp__V1__FollowUp *) msg->payload, &errors);
    json_t *json = qp_json_from_message (msg->payload);
    char *text = json ? json_dumps (json, JSON_COMPACT) : NULL;
    free (text);
    json_decref (json);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_fuzz_zones (); /* at the first input: a missing zones file stops the run at once */
    const uint8_t *nul = memchr (data, 0, size);
    zframe_t *type, *envelope;
    if (nul) {
        type = zframe_new (data, (size_t) (nul - data));
        envelope = zframe_new (nul + 1, size - (size_t) (nul - data) - 1);
    } else {
        type = zframe_new ("qp.v1.SubmitDossier", 19);
        envelope = zframe_new (data, size);
    }
    qp_message_t msg = {0};
    qp_error_t err;
    const uint8_t *id = NULL;
    size_t id_len = 0;
    int peeked = qp_message_peek_payload_string (type, envelope, "dossier_id", &id, &id_len);
    if (qp_message_decode (type, envelope, &msg, &err) == 0) {
        /* The shards' peek (qp_service.c) reads the dossier id the decode reads. */
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name (msg.descriptor, "dossier_id");
        if (peeked >= 0 && f && f->type == PROTOBUF_C_TYPE_STRING &&
            f->label != PROTOBUF_C_LABEL_REPEATED) {
            const char *dec = *(const char *const *) ((const char *) msg.payload + f->offset);
            bool set = dec && dec != f->default_value; /* protobuf-c: absent = the default */
            if (set != (peeked == 1) ||
                (set && (strlen (dec) > id_len || memcmp (dec, id, strlen (dec)))))
                __builtin_trap ();
        }
        s_exercise (&msg);
        qp_message_clear (&msg);
    } else if (!err.code[0])
        __builtin_trap (); /* a refusal always says why */
    zframe_destroy (&type);
    zframe_destroy (&envelope);
    return 0;
}
