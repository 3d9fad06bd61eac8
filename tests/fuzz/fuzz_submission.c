/* Fuzz: a SubmitDossier payload (protobuf bytes) unpacked and checked by intake's
 * validation against the project's territory zones, including the person key of a valid
 * identity, and the JSON mapping both ways (what qp-ctl and reports do with it). */
#include "fuzz_support.h"
#include "qp_json.h"
#include "qp_message.h"
#include "validate.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_fuzz_zones (); /* at the first input: a missing zones file stops the run at once */
    Qp__V1__SubmitDossier *s = qp__v1__submit_dossier__unpack (NULL, size, data);
    if (!s)
        return 0;
    intake_errors_t errors;
    intake_errors_init (&errors);
    if (intake_validate_submission_in (s_fuzz_zones (), s, &errors) == 0 && s->identity) {
        char key[INTAKE_PERSON_KEY_HEX + 1];
        intake_person_key (s->identity, "fuzz-pepper", key);
    }
    json_t *json = qp_json_from_message (&s->base);
    if (json) {
        qp_error_t err;
        ProtobufCMessage *back = qp_json_to_message (&qp__v1__submit_dossier__descriptor, json, &err);
        if (back)
            protobuf_c_message_free_unpacked (back, NULL);
        json_decref (json);
    }
    qp__v1__submit_dossier__free_unpacked (s, NULL);
    return 0;
}
