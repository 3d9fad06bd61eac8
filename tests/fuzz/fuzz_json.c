/* Fuzz: qp_json, text to message (what qp-ctl submit reads), as a SubmitDossier; an
 * accepted one is validated (with the project's territory zones) and mapped back to JSON. */
#include "fuzz_support.h"
#include "qp_json.h"
#include "qp_message.h"
#include "validate.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_fuzz_zones (); /* at the first input: a missing zones file stops the run at once */
    char *text = malloc (size + 1);
    memcpy (text, data, size);
    text[size] = 0;
    qp_error_t err = {0};
    ProtobufCMessage *msg = qp_json_parse_message (&qp__v1__submit_dossier__descriptor, text, &err);
    if (msg) {
        intake_errors_t errors;
        intake_errors_init (&errors);
        intake_validate_submission_in (s_fuzz_zones (), (const Qp__V1__SubmitDossier *) msg,
                                       &errors);
        json_t *json = qp_json_from_message (msg);
        json_decref (json);
        protobuf_c_message_free_unpacked (msg, NULL);
    } else if (!err.code[0])
        __builtin_trap (); /* a refusal always says why */
    free (text);
    return 0;
}
