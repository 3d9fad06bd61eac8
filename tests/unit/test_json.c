/* JSON <-> protobuf mapping: a full dossier survives the round trip, and every way a
 * document can be wrong is refused with the field's dotted path and a reason. */
#include "qp_json.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *FULL_DOSSIER = "{"
    "\"channel\": \"initiative-roubaix\", \"channel_key\": \"IR-2024-0042\","
    "\"submitted_on\": \"2024-05-13\", \"territory\": \"roubaix\","
    "\"holder\": {\"person_key\": \"pk-0123456789abcdef\","
    "  \"residence\": {\"line\": \"12 rue de l'Épeule\", \"postcode\": \"59100\","
    "                 \"city\": \"Roubaix\", \"insee_commune\": \"59512\"},"
    "  \"residence_location\": {\"lat\": 50.6871, \"lon\": 3.1695},"
    "  \"residence_qpv\": \"QN05981M\", \"accompanied\": true,"
    "  \"network\": \"INITIATIVE_FRANCE\", \"gender\": \"WOMAN\", \"birth_year\": 1994},"
    "\"business\": {\"siret\": \"73282932000074\", \"legal_form\": \"5499\","
    "  \"naf_code\": \"47.11B\", \"creation_date\": \"2024-02-01\", \"employees\": 0,"
    "  \"turnover_cents\": 0, \"balance_sheet_cents\": 1250000,"
    "  \"address\": {\"line\": \"3 place de la Liberté\", \"postcode\": \"59100\","
    "               \"city\": \"Roubaix\", \"insee_commune\": \"59512\"},"
    "  \"location\": {\"lat\": 50.69, \"lon\": -0.0},"
    "  \"insee_commune\": \"59512\", \"declared_qpv\": \"QN05981M\","
    "  \"commercial_activity\": false},"
    "\"project\": {\"axis\": \"RETAIL_AND_CRAFTS\", \"stage\": \"CREATION\","
    "  \"financing_need_cents\": 4500000, \"personal_contribution_cents\": 500000,"
    "  \"bank_loan_cents\": 2500000, \"bank_loan_months\": 60,"
    "  \"bank_loan_guarantee_pct\": 50, \"amount_asked_cents\": 1500000,"
    "  \"honour_loan_months\": 60, \"deferral_months\": 6, \"jobs_planned\": 2,"
    "  \"digital_transition\": true, \"environmental_transition\": false}"
    "}";

static Qp__V1__Dossier *s_parse_dossier (const char *text, qp_error_t *err)
{
    return (Qp__V1__Dossier *) qp_json_parse_message (&qp__v1__dossier__descriptor, text, err);
}

/* Expects text to be refused as type desc with that code and field path. */
static void s_refused (const ProtobufCMessageDescriptor *desc, const char *text, const char *code,
                       const char *field, const char *why)
{
    qp_error_t err;
    memset (&err, 0, sizeof err);
    ProtobufCMessage *m = qp_json_parse_message (desc, text, &err);
    ck_assert_msg (m == NULL, "accepted %s", text);
    ck_assert_str_eq (err.code, code);
    ck_assert_str_eq (err.field, field);
    if (why)
        ck_assert_msg (strstr (err.message, why), "message \"%s\" lacks \"%s\"", err.message, why);
}

START_TEST (test_full_dossier_round_trip)
{
    qp_error_t err;
    Qp__V1__Dossier *d = s_parse_dossier (FULL_DOSSIER, &err);
    ck_assert_msg (d != NULL, "%s: %s", err.field, err.message);
    ck_assert_str_eq (d->channel, "initiative-roubaix");
    ck_assert (d->holder->has_network && d->holder->network == QP__V1__NETWORK__INITIATIVE_FRANCE);
    ck_assert (d->holder->has_birth_year && d->holder->birth_year == 1994);
    ck_assert (d->business->has_employees && d->business->employees == 0);
    ck_assert (d->business->has_commercial_activity && !d->business->commercial_activity);
    ck_assert (d->business->location->has_lon && d->business->location->lon == 0.0);
    ck_assert (d->project->has_axis && d->project->axis == QP__V1__AXIS__RETAIL_AND_CRAFTS);
    ck_assert (d->project->financing_need_cents == 4500000);

    /* JSON -> protobuf -> JSON gives the same document (fields present, values equal). */
    json_t *back = qp_json_from_message (&d->base);
    json_t *orig = json_loads (FULL_DOSSIER, 0, NULL);
    ck_assert_msg (json_equal (back, orig), "round trip differs: %s",
                   json_dumps (back, JSON_SORT_KEYS));
    /* protobuf -> JSON -> protobuf gives the same bytes. */
    Qp__V1__Dossier *d2 =
        (Qp__V1__Dossier *) qp_json_to_message (&qp__v1__dossier__descriptor, back, &err);
    ck_assert (d2 != NULL);
    size_t n1 = qp__v1__dossier__get_packed_size (d), n2 = qp__v1__dossier__get_packed_size (d2);
    ck_assert_uint_eq (n1, n2);
    uint8_t *b1 = malloc (n1), *b2 = malloc (n2);
    qp__v1__dossier__pack (d, b1);
    qp__v1__dossier__pack (d2, b2);
    ck_assert (memcmp (b1, b2, n1) == 0);
    free (b1);
    free (b2);
    json_decref (back);
    json_decref (orig);
    qp__v1__dossier__free_unpacked (d, NULL);
    qp__v1__dossier__free_unpacked (d2, NULL);
}
END_TEST

START_TEST (test_absent_fields_stay_absent)
{
    qp_error_t err;
    Qp__V1__Dossier *d =
        s_parse_dossier ("{\"channel\": \"c\", \"project\": {\"axis\": null}, \"holder\": null}", &err);
    ck_assert (d != NULL);
    ck_assert (d->holder == NULL && d->business == NULL && d->channel_key == NULL);
    ck_assert (d->project != NULL && !d->project->has_axis && !d->project->has_stage);
    json_t *j = qp_json_from_message (&d->base);
    char *text = json_dumps (j, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_str_eq (text, "{\"channel\":\"c\",\"project\":{}}");
    free (text);
    json_decref (j);
    qp__v1__dossier__free_unpacked (d, NULL);
}
END_TEST

START_TEST (test_repeated_and_enum_numbers)
{
    qp_error_t err;
    const char *text = "{\"accepted\": false, \"errors\": ["
                       "{\"field\": \"business.siret\", \"code\": \"checksum\", \"message\": \"bad key\"},"
                       "{\"field\": \"project.axis\", \"code\": \"required\"}]}";
    Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *) qp_json_parse_message (
        &qp__v1__submit_dossier_reply__descriptor, text, &err);
    ck_assert (r != NULL);
    ck_assert (r->has_accepted && !r->accepted && !r->has_duplicate);
    ck_assert_uint_eq (r->n_errors, 2);
    ck_assert_str_eq (r->errors[0]->field, "business.siret");
    ck_assert_str_eq (r->errors[1]->code, "required");
    ck_assert (r->errors[1]->message == NULL);
    json_t *j = qp_json_from_message (&r->base);
    json_t *orig = json_loads (text, 0, NULL);
    ck_assert (json_equal (j, orig));
    json_decref (j);
    json_decref (orig);
    qp__v1__submit_dossier_reply__free_unpacked (r, NULL);

    /* Repeated strings; an enum given by number. */
    Qp__V1__PartnerHello *h = (Qp__V1__PartnerHello *) qp_json_parse_message (
        &qp__v1__partner_hello__descriptor,
        "{\"component_id\": \"bpi-1\", \"agency\": 4, \"schemes\": [\"phq\", \"pret-solidaire\"],"
        " \"capacity\": 4294967295}",
        &err);
    ck_assert (h != NULL);
    ck_assert (h->has_agency && h->agency == QP__V1__AGENCY__BPIFRANCE);
    ck_assert_uint_eq (h->n_schemes, 2);
    ck_assert_str_eq (h->schemes[1], "pret-solidaire");
    ck_assert_uint_eq (h->capacity, 4294967295u);
    j = qp_json_from_message (&h->base);
    ck_assert_str_eq (json_string_value (json_object_get (j, "agency")), "BPIFRANCE");
    json_decref (j);
    qp__v1__partner_hello__free_unpacked (h, NULL);
}
END_TEST

START_TEST (test_bytes_and_64_bit)
{
    qp_error_t err;
    Qp__V1__Envelope *e = (Qp__V1__Envelope *) qp_json_parse_message (
        &qp__v1__envelope__descriptor,
        "{\"message_id\": \"ab\", \"event_time_ms\": -9223372036854775808,"
        " \"payload\": \"AAEC/w==\"}",
        &err);
    ck_assert (e != NULL);
    ck_assert (e->has_payload && e->payload.len == 4);
    ck_assert (e->payload.data[0] == 0 && e->payload.data[3] == 0xff);
    ck_assert (e->has_event_time_ms && e->event_time_ms == INT64_MIN);
    json_t *j = qp_json_from_message (&e->base);
    ck_assert_str_eq (json_string_value (json_object_get (j, "payload")), "AAEC/w==");
    json_decref (j);
    qp__v1__envelope__free_unpacked (e, NULL);

    /* Unpadded and URL-safe base64 are read too; empty bytes stay present. */
    e = (Qp__V1__Envelope *) qp_json_parse_message (&qp__v1__envelope__descriptor,
                                                    "{\"payload\": \"AAEC_w\"}", &err);
    ck_assert (e != NULL && e->payload.len == 4 && e->payload.data[3] == 0xff);
    qp__v1__envelope__free_unpacked (e, NULL);
    e = (Qp__V1__Envelope *) qp_json_parse_message (&qp__v1__envelope__descriptor,
                                                    "{\"payload\": \"\"}", &err);
    ck_assert (e != NULL && e->has_payload && e->payload.len == 0);
    j = qp_json_from_message (&e->base);
    ck_assert_str_eq (json_string_value (json_object_get (j, "payload")), "");
    json_decref (j);
    qp__v1__envelope__free_unpacked (e, NULL);

    /* uint64 beyond a JSON integer travels as a decimal string, both ways. */
    Qp__V1__TerritoryFigures *t = (Qp__V1__TerritoryFigures *) qp_json_parse_message (
        &qp__v1__territory_figures__descriptor,
        "{\"submitted\": \"18446744073709551615\", \"funded\": 7, \"committed_cents\": \"-5\"}", &err);
    ck_assert (t != NULL);
    ck_assert (t->submitted == UINT64_MAX && t->funded == 7 && t->committed_cents == -5);
    j = qp_json_from_message (&t->base);
    ck_assert_str_eq (json_string_value (json_object_get (j, "submitted")), "18446744073709551615");
    ck_assert_int_eq (json_integer_value (json_object_get (j, "funded")), 7);
    json_decref (j);
    qp__v1__territory_figures__free_unpacked (t, NULL);
}
END_TEST

START_TEST (test_doubles)
{
    qp_error_t err;
    Qp__V1__QpvLocation *q = (Qp__V1__QpvLocation *) qp_json_parse_message (
        &qp__v1__qpv_location__descriptor, "{\"distance_m\": 12}", &err);
    ck_assert (q != NULL && q->has_distance_m && q->distance_m == 12.0);
    qp__v1__qpv_location__free_unpacked (q, NULL);
    q = (Qp__V1__QpvLocation *) qp_json_parse_message (&qp__v1__qpv_location__descriptor,
                                                       "{\"distance_m\": \"NaN\"}", &err);
    ck_assert (q != NULL && isnan (q->distance_m));
    json_t *j = qp_json_from_message (&q->base);
    ck_assert_str_eq (json_string_value (json_object_get (j, "distance_m")), "NaN");
    json_decref (j);
    qp__v1__qpv_location__free_unpacked (q, NULL);
}
END_TEST

START_TEST (test_refusals)
{
    const ProtobufCMessageDescriptor *D = &qp__v1__dossier__descriptor;
    /* Not an object at the top, or not JSON. */
    s_refused (D, "[1, 2]", "bad_payload", "", "expected a JSON object");
    s_refused (D, "\"dossier\"", "bad_payload", "", "expected a JSON object");
    s_refused (D, "{\"channel\": ", "bad_payload", "", "not JSON");
    s_refused (D, "{\"channel\": \"a\", \"channel\": \"b\"}", "bad_payload", "", "not JSON");
    /* Unknown fields, at the top and nested. */
    s_refused (D, "{\"chanel\": \"a\"}", "invalid_field", "chanel", "unknown field");
    s_refused (D, "{\"business\": {\"sirett\": \"1\"}}", "invalid_field", "business.sirett",
               "unknown field");
    /* Wrong JSON types. */
    s_refused (D, "{\"channel\": 3}", "invalid_field", "channel", "expected a string");
    s_refused (D, "{\"business\": {\"siret\": null, \"legal_form\": 5499}}", "invalid_field",
               "business.legal_form", "expected a string");
    s_refused (D, "{\"holder\": \"x\"}", "invalid_field", "holder", "expected an object");
    s_refused (D, "{\"holder\": {\"accompanied\": \"yes\"}}", "invalid_field", "holder.accompanied",
               "expected true or false");
    s_refused (D, "{\"project\": {\"financing_need_cents\": 12.5}}", "invalid_field",
               "project.financing_need_cents", "expected an integer");
    s_refused (D, "{\"project\": {\"financing_need_cents\": \"12k\"}}", "invalid_field",
               "project.financing_need_cents", "expected an integer");
    s_refused (D, "{\"business\": {\"location\": {\"lat\": \"north\"}}}", "invalid_field",
               "business.location.lat", "expected a number");
    /* Out of range. */
    s_refused (D, "{\"holder\": {\"birth_year\": -1}}", "invalid_field", "holder.birth_year",
               "number out of range for uint32");
    s_refused (D, "{\"business\": {\"employees\": 4294967296}}", "invalid_field",
               "business.employees", "number out of range for uint32");
    s_refused (D, "{\"project\": {\"financing_need_cents\": \"9223372036854775808\"}}",
               "invalid_field", "project.financing_need_cents", "expected an integer");
    s_refused (&qp__v1__territory_figures__descriptor, "{\"funded\": -3}", "invalid_field",
               "funded", "number out of range for uint64");
    /* Enums: unknown name, unknown number, wrong type. */
    s_refused (D, "{\"project\": {\"axis\": \"AXIS_FOO\"}}", "invalid_field", "project.axis",
               "\"AXIS_FOO\" is not a qp.v1.Axis");
    s_refused (D, "{\"project\": {\"stage\": 9}}", "invalid_field", "project.stage",
               "9 is not a qp.v1.Stage");
    s_refused (D, "{\"holder\": {\"gender\": true}}", "invalid_field", "holder.gender",
               "expected a qp.v1.Gender name");
    /* Strings cannot hold NUL. */
    s_refused (D, "{\"channel\": \"a\\u0000b\"}", "invalid_field", "channel", "NUL");
    /* Bytes. */
    s_refused (&qp__v1__envelope__descriptor, "{\"payload\": \"***\"}", "invalid_field", "payload",
               "base64");
    s_refused (&qp__v1__envelope__descriptor, "{\"payload\": 12}", "invalid_field", "payload",
               "expected a base64 string");
    /* Repeated fields: not an array, and an element's field by index. */
    const ProtobufCMessageDescriptor *R = &qp__v1__submit_dossier_reply__descriptor;
    s_refused (R, "{\"errors\": {\"field\": \"x\"}}", "invalid_field", "errors", "expected an array");
    s_refused (R, "{\"errors\": [{}, {\"code\": \"x\"}, {\"field\": 7}]}", "invalid_field",
               "errors[2].field", "expected a string");
    s_refused (R, "{\"errors\": [{}, null]}", "invalid_field", "errors[1]", "null");
    s_refused (R, "{\"errors\": [{}, \"x\"]}", "invalid_field", "errors[1]", "expected an object");
    s_refused (&qp__v1__partner_hello__descriptor, "{\"schemes\": [\"a\", 2]}", "invalid_field",
               "schemes[1]", "expected a string");
    /* A deep error after fields already set: nothing leaks (valgrind). */
    s_refused (&qp__v1__eligibility_decided__descriptor,
               "{\"dossier_id\": \"d\", \"decisions\": [{\"scheme_id\": \"phq\", \"criteria\": ["
               "{\"criterion\": \"c1\", \"values\": [\"a=1\"]},"
               "{\"criterion\": \"c2\", \"parameters\": [{\"name\": \"n\", \"valid_from\": 1}]}]}]}",
               "invalid_field", "decisions[0].criteria[1].parameters[0].valid_from",
               "expected a string");
}
END_TEST

/* Only printable ASCII in s. */
static void s_printable (const char *s)
{
    for (const char *c = s; *c; c++)
        ck_assert_msg ((unsigned char) *c >= 0x20 && (unsigned char) *c < 0x7f, "%s", s);
}

/* What the user wrote comes back at most 32 bytes long, escaped (as qp-ctl quotes it),
 * in an enum's error and in an unknown field's path and message alike. */
START_TEST (test_user_text_quoted_short)
{
    /* 2,000 bytes of a made-up axis, with a quote, a backslash, an escape and accents. */
    char *text = malloc (16384);
    ck_assert_ptr_nonnull (text);
    strcpy (text, "{\"project\": {\"axis\": \"NOT_AN_AXIS");
    for (int i = 0; i < 400; i++)
        strcat (text, "\\\"\\\\\\u001b\\u00e9x");
    strcat (text, "\"}}");
    qp_error_t err;
    memset (&err, 0, sizeof err);
    ck_assert_ptr_null (qp_json_parse_message (&qp__v1__dossier__descriptor, text, &err));
    ck_assert_str_eq (err.field, "project.axis");
    /* 11 + 3 x 6 + 3 bytes */
    const char *quoted = "\"NOT_AN_AXIS\\x22\\x5c\\x1b\\xc3\\xa9x\\x22\\x5c\\x1b\\xc3\\xa9x"
                         "\\x22\\x5c\\x1b\\xc3\\xa9x\\x22\\x5c\\x1b...\" is not a qp.v1.Axis";
    ck_assert_str_eq (err.message, quoted);
    s_printable (err.message);

    /* An unknown field: the same quoting in the path and in the message. */
    strcpy (text, "{\"business\": {\"");
    for (int i = 0; i < 300; i++)
        strcat (text, "ab\\u0007");
    strcat (text, "\": 1}}");
    memset (&err, 0, sizeof err);
    ck_assert_ptr_null (qp_json_parse_message (&qp__v1__dossier__descriptor, text, &err));
    free (text);
    const char *name = "ab\\x07ab\\x07ab\\x07ab\\x07ab\\x07ab\\x07ab\\x07ab\\x07ab\\x07ab\\x07ab...";
    char field[96];
    snprintf (field, sizeof field, "business.%s", name);
    ck_assert_str_eq (err.field, field);
    char message[320];
    snprintf (message, sizeof message, "unknown field \"%s\" of qp.v1.Business", name);
    ck_assert_str_eq (err.message, message);
    s_printable (err.field);
    s_printable (err.message);
    /* A short one is quoted whole. */
    s_refused (&qp__v1__dossier__descriptor, "{\"chanel\": \"a\"}", "invalid_field", "chanel",
               "unknown field \"chanel\" of qp.v1.Dossier");
}
END_TEST

START_TEST (test_to_message_not_object)
{
    qp_error_t err;
    json_t *a = json_array ();
    ck_assert (qp_json_to_message (&qp__v1__dossier__descriptor, a, &err) == NULL);
    ck_assert_str_eq (err.code, "bad_payload");
    ck_assert (qp_json_to_message (&qp__v1__dossier__descriptor, NULL, &err) == NULL);
    ck_assert_str_eq (err.code, "bad_payload");
    json_decref (a);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("json");
    TCase *tc = tcase_create ("mapping");
    tcase_add_test (tc, test_full_dossier_round_trip);
    tcase_add_test (tc, test_absent_fields_stay_absent);
    tcase_add_test (tc, test_repeated_and_enum_numbers);
    tcase_add_test (tc, test_bytes_and_64_bit);
    tcase_add_test (tc, test_doubles);
    tcase_add_test (tc, test_refusals);
    tcase_add_test (tc, test_user_text_quoted_short);
    tcase_add_test (tc, test_to_message_not_object);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
