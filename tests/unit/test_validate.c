/* Intake's field rules, one by one, valid and invalid, at their boundaries. Pure: no
 * Redis, no bus. Each case patches a valid submission (JSON merged into it) and checks
 * the finding on one field. */
#include "intake/validate.h"
#include "qp_json.h"
#include "qp_test.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *VALID = "{\"dossier\": {"
    "\"channel\": \"initiative-roubaix\", \"channel_key\": \"IR-2024-0042\","
    "\"submitted_on\": \"2024-05-13\","
    "\"holder\": {\"person_key\": \"pk-0123456789abcdef\","
    "  \"residence\": {\"postcode\": \"59100\", \"city\": \"Roubaix\", \"insee_commune\": \"59512\"},"
    "  \"residence_location\": {\"lat\": 50.6871, \"lon\": 3.1695},"
    "  \"residence_qpv\": \"QN05981M\", \"accompanied\": true, \"network\": \"INITIATIVE_FRANCE\","
    "  \"gender\": \"WOMAN\", \"birth_year\": 1994},"
    "\"business\": {\"siret\": \"73282932000074\", \"legal_form\": \"5499\", \"naf_code\": \"47.11B\","
    "  \"creation_date\": \"2024-02-01\", \"employees\": 2, \"turnover_cents\": 0,"
    "  \"address\": {\"line\": \"3 place de la Liberté\", \"postcode\": \"59100\","
    "               \"insee_commune\": \"59512\"},"
    "  \"location\": {\"lat\": 50.69, \"lon\": 3.18}, \"insee_commune\": \"59512\","
    "  \"declared_qpv\": \"QN05981M\", \"commercial_activity\": true},"
    "\"project\": {\"axis\": \"RETAIL_AND_CRAFTS\", \"stage\": \"CREATION\","
    "  \"financing_need_cents\": 4500000, \"personal_contribution_cents\": 500000,"
    "  \"bank_loan_cents\": 2500000, \"bank_loan_months\": 60, \"bank_loan_guarantee_pct\": 50,"
    "  \"amount_asked_cents\": 1500000, \"honour_loan_months\": 60, \"deferral_months\": 6}"
    "}}";

static Qp__V1__SubmitDossier *s_submission (const char *patch)
{
    json_t *base = json_loads (VALID, 0, NULL);
    ck_assert (base);
    if (patch) {
        json_t *p = json_loads (patch, JSON_DECODE_ANY, NULL);
        ck_assert_msg (p, "bad patch %s", patch);
        json_object_update_recursive (base, p);
        json_decref (p);
    }
    qp_error_t err;
    Qp__V1__SubmitDossier *s = (Qp__V1__SubmitDossier *) qp_json_to_message (
        &qp__v1__submit_dossier__descriptor, base, &err);
    ck_assert_msg (s, "%s: %s", err.field, err.message);
    json_decref (base);
    return s;
}

static void s_free (Qp__V1__SubmitDossier *s) { qp__v1__submit_dossier__free_unpacked (s, NULL); }

/* The project's own zones file, as qp-intake loads it (main). */
static intake_zones_t *s_zones;

static intake_zones_t *s_zones_load (void)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/data/" INTAKE_ZONES_FILE, qp_test_source_dir ());
    qp_error_t err;
    intake_zones_t *zones = intake_zones_load (path, &err);
    if (!zones) /* before any test runs: no ck_assert here */
        fprintf (stderr, "test_validate: %s\n", err.message);
    return zones;
}

static void s_dump (const intake_errors_t *e)
{
    for (size_t i = 0; i < e->count; i++)
        fprintf (stderr, "  %s %s: %s\n", e->items[i].field, e->items[i].code, e->items[i].message);
}

/* Validates s: expects code on field (or no finding at all when field is NULL). */
static void s_expect_on (const Qp__V1__SubmitDossier *s, const char *field, const char *code)
{
    intake_errors_t e;
    intake_errors_init (&e);
    size_t n = intake_validate_submission_in (s_zones, s, &e);
    if (!field) {
        if (n)
            s_dump (&e);
        ck_assert_uint_eq (n, 0);
        return;
    }
    const intake_field_error_t *f = intake_errors_find (&e, field);
    if (!f || strcmp (f->code, code))
        s_dump (&e);
    ck_assert_msg (f, "no finding on %s", field);
    ck_assert_str_eq (f->code, code);
    ck_assert (f->message[0]);
}

/* Patches the valid submission and expects code on field (field NULL: still valid). */
static void s_expect (const char *patch, const char *field, const char *code)
{
    Qp__V1__SubmitDossier *s = s_submission (patch);
    s_expect_on (s, field, code);
    s_free (s);
}

#define OK(patch) s_expect (patch, NULL, NULL)

START_TEST (test_valid_submission)
{
    OK (NULL);
    /* Only what is required. */
    Qp__V1__SubmitDossier *s = (Qp__V1__SubmitDossier *) qp_json_parse_message (
        &qp__v1__submit_dossier__descriptor,
        "{\"dossier\": {\"channel\": \"qp-ctl\", \"channel_key\": \"k\", \"submitted_on\": "
        "\"2024-01-01\", \"holder\": {\"person_key\": \"0123456789abcdef\"}, \"business\": "
        "{\"insee_commune\": \"93048\"}, \"project\": {\"axis\": \"ENTREPRENEURSHIP\", \"stage\": "
        "\"TAKEOVER\", \"financing_need_cents\": 0, \"amount_asked_cents\": 0}}}",
        NULL);
    ck_assert (s);
    s_expect_on (s, NULL, NULL);
    s_free (s);
}
END_TEST

START_TEST (test_dossier_required)
{
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    s_expect_on (&s, "dossier", "required");
}
END_TEST

START_TEST (test_channel)
{
    s_expect ("{\"dossier\": {\"channel\": null}}", "channel", "required");
    s_expect ("{\"dossier\": {\"channel\": \"\"}}", "channel", "required");
    s_expect ("{\"dossier\": {\"channel_key\": null}}", "channel_key", "required");
    s_expect ("{\"dossier\": {\"channel\": \"a\\tb\"}}", "channel", "format");
    s_expect ("{\"dossier\": {\"channel_key\": \"clé\"}}", "channel_key", "format");
    OK ("{\"dossier\": {\"channel_key\": \"key with spaces / and ~\"}}");
    char patch[400], key[200];
    memset (key, 'k', 128);
    key[128] = 0;
    snprintf (patch, sizeof patch, "{\"dossier\": {\"channel_key\": \"%s\"}}", key);
    OK (patch);
    strcat (key, "k");
    snprintf (patch, sizeof patch, "{\"dossier\": {\"channel_key\": \"%s\"}}", key);
    s_expect (patch, "channel_key", "range");
}
END_TEST

START_TEST (test_submitted_on)
{
    s_expect ("{\"dossier\": {\"submitted_on\": null}}", "submitted_on", "required");
    s_expect ("{\"dossier\": {\"submitted_on\": \"2024-02-30\"}}", "submitted_on", "format");
    s_expect ("{\"dossier\": {\"submitted_on\": \"13/05/2024\"}}", "submitted_on", "format");
    s_expect ("{\"dossier\": {\"submitted_on\": \"1999-12-31\"}}", "submitted_on", "range");
    s_expect ("{\"dossier\": {\"submitted_on\": \"2101-01-01\"}}", "submitted_on", "range");
    /* A calendar date of a year dates cannot hold is out of range, not malformed. */
    s_expect ("{\"dossier\": {\"submitted_on\": \"1850-01-01\"}}", "submitted_on", "range");
    s_expect ("{\"dossier\": {\"submitted_on\": \"2999-06-30\"}}", "submitted_on", "range");
    s_expect ("{\"dossier\": {\"submitted_on\": \"2999-13-01\"}}", "submitted_on", "format");
    s_expect ("{\"dossier\": {\"submitted_on\": \"1900-02-29\"}}", "submitted_on", "format");
    /* Both ends; the creation date must not be far before either. */
    OK ("{\"dossier\": {\"submitted_on\": \"2000-01-01\", \"business\": {\"creation_date\": "
        "\"1999-06-01\"}, \"holder\": {\"birth_year\": 1970}}}");
    OK ("{\"dossier\": {\"submitted_on\": \"2100-12-31\"}}");
}
END_TEST

START_TEST (test_person_key_and_identity)
{
    s_expect ("{\"dossier\": {\"holder\": {\"person_key\": null}}}", "holder.person_key",
              "required");
    s_expect ("{\"dossier\": {\"holder\": null}}", "holder.person_key", "required");
    s_expect ("{\"dossier\": {\"holder\": {\"person_key\": \"Dupont\"}}}", "holder.person_key",
              "format");
    s_expect ("{\"dossier\": {\"holder\": {\"person_key\": \"marie.dupont@example.org\"}}}",
              "holder.person_key", "format");
    /* An identity instead of the key. */
    OK ("{\"dossier\": {\"holder\": {\"person_key\": null}}, \"identity\": {\"family_name\": "
        "\"Dupont\", \"given_names\": \"Marie\", \"birth_date\": \"1994-03-02\", \"email\": "
        "\"m@example.org\"}}");
    OK ("{\"dossier\": {\"holder\": null}, \"identity\": {\"family_name\": \"N'Diaye\", "
        "\"given_names\": \"Awa\", \"birth_date\": \"2001-12-31\"}}");
    s_expect ("{\"identity\": {\"family_name\": \"Dupont\", \"given_names\": \"Marie\", "
              "\"birth_date\": \"1994-03-02\"}}",
              "holder.person_key", "inconsistent");
    const char *no_key = "{\"dossier\": {\"holder\": {\"person_key\": null}}, \"identity\": ";
    char patch[400];
    snprintf (patch, sizeof patch, "%s{\"given_names\": \"Marie\", \"birth_date\": \"1994-03-02\"}}",
              no_key);
    s_expect (patch, "identity.family_name", "required");
    snprintf (patch, sizeof patch, "%s{\"family_name\": \"Dupont\", \"birth_date\": \"1994-03-02\"}}",
              no_key);
    s_expect (patch, "identity.given_names", "required");
    snprintf (patch, sizeof patch, "%s{\"family_name\": \" - ' \", \"given_names\": \"Marie\", "
              "\"birth_date\": \"1994-03-02\"}}", no_key);
    s_expect (patch, "identity.family_name", "format");
    snprintf (patch, sizeof patch, "%s{\"family_name\": \"Dupont\", \"given_names\": \"Marie\"}}",
              no_key);
    s_expect (patch, "identity.birth_date", "required");
    snprintf (patch, sizeof patch, "%s{\"family_name\": \"Dupont\", \"given_names\": \"Marie\", "
              "\"birth_date\": \"02/03/1994\"}}", no_key);
    s_expect (patch, "identity.birth_date", "format");
    snprintf (patch, sizeof patch, "%s{\"family_name\": \"Dupont\", \"given_names\": \"Marie\", "
              "\"birth_date\": \"2024-05-14\"}}", no_key);
    s_expect (patch, "identity.birth_date", "range");
}
END_TEST

START_TEST (test_person_key_derivation)
{
    Qp__V1__PersonIdentity a = QP__V1__PERSON_IDENTITY__INIT;
    Qp__V1__PersonIdentity b = QP__V1__PERSON_IDENTITY__INIT;
    char ka[INTAKE_PERSON_KEY_HEX + 1], kb[INTAKE_PERSON_KEY_HEX + 1];
    a.family_name = "Lefèvre-Dupont";
    a.given_names = "Hélène Marie";
    a.birth_date = "1990-07-14";
    a.email = "helene@example.org";
    intake_person_key (&a, "pepper-1", ka);
    ck_assert_uint_eq (strlen (ka), INTAKE_PERSON_KEY_HEX);
    /* Case, accents (composed or not), hyphens and spacing do not matter; email neither. */
    b.family_name = "  LEFEVRE   dupont ";
    b.given_names = "He\xcc\x81le\xcc\x80ne-marie";
    b.birth_date = "1990-07-14";
    intake_person_key (&b, "pepper-1", kb);
    ck_assert_str_eq (ka, kb);
    /* Another pepper, birth date or name: another key. */
    intake_person_key (&b, "pepper-2", kb);
    ck_assert_str_ne (ka, kb);
    b.birth_date = "1990-07-15";
    intake_person_key (&b, "pepper-1", kb);
    ck_assert_str_ne (ka, kb);
    b.birth_date = "1990-07-14";
    b.given_names = "Helene";
    intake_person_key (&b, "pepper-1", kb);
    ck_assert_str_ne (ka, kb);
    /* The fields are not simply concatenated. */
    Qp__V1__PersonIdentity c = QP__V1__PERSON_IDENTITY__INIT, d = QP__V1__PERSON_IDENTITY__INIT;
    c.family_name = "ab", c.given_names = "c", c.birth_date = "2000-01-01";
    d.family_name = "a", d.given_names = "bc", d.birth_date = "2000-01-01";
    intake_person_key (&c, "p", ka);
    intake_person_key (&d, "p", kb);
    ck_assert_str_ne (ka, kb);

    char out[64];
    ck_assert (intake_normalise_name ("  Œdipe   N’Guessan-ÆSOP ß ", out, sizeof out));
    ck_assert_str_eq (out, "oedipe n guessan aesop ss");
    ck_assert (intake_normalise_name ("Ünal Çelik", out, sizeof out));
    ck_assert_str_eq (out, "unal celik");
    ck_assert (!intake_normalise_name ("abcdefgh", out, 4));
    ck_assert_str_eq (out, "abc");
}
END_TEST

START_TEST (test_siret)
{
    OK ("{\"dossier\": {\"business\": {\"siret\": \"44306184100047\"}}}");
    s_expect ("{\"dossier\": {\"business\": {\"siret\": \"73282932000075\"}}}", "business.siret",
              "checksum");
    s_expect ("{\"dossier\": {\"business\": {\"siret\": \"7328293200007\"}}}", "business.siret",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"siret\": \"7328293200007A\"}}}", "business.siret",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"siret\": \"732 829 320 00074\"}}}",
              "business.siret", "format");
    /* La Poste: sum of digits a multiple of 5 (not Luhn), except its head office. */
    OK ("{\"dossier\": {\"business\": {\"siret\": \"35600000049837\"}}}");
    OK ("{\"dossier\": {\"business\": {\"siret\": \"35600000000048\"}}}");
    s_expect ("{\"dossier\": {\"business\": {\"siret\": \"35600000049838\"}}}", "business.siret",
              "checksum");
    OK ("{\"dossier\": {\"business\": {\"siret\": null}}}"); /* before the business exists */
    ck_assert (intake_luhn_valid ("73282932000074"));
    ck_assert (!intake_luhn_valid (""));
    ck_assert (intake_siret_check ("35600000049837") == NULL);
    ck_assert_str_eq (intake_siret_check ("35600000049838"), "checksum");
}
END_TEST

START_TEST (test_business_codes)
{
    OK ("{\"dossier\": {\"business\": {\"legal_form\": \"1000\", \"naf_code\": \"4711B\"}}}");
    s_expect ("{\"dossier\": {\"business\": {\"legal_form\": \"549\"}}}", "business.legal_form",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"legal_form\": \"54A9\"}}}", "business.legal_form",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"naf_code\": \"47.11b\"}}}", "business.naf_code",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"naf_code\": \"4711\"}}}", "business.naf_code",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"naf_code\": \"47-11B\"}}}", "business.naf_code",
              "format");
    s_expect ("{\"dossier\": {\"business\": {\"naf_code\": \"4.711B\"}}}", "business.naf_code",
              "format");
}
END_TEST

START_TEST (test_communes_and_postcodes)
{
    const char *good[] = {"75056", "2A004", "2B033", "97411", "97611", "97502", "98735", "01001",
                          "95127"};
    const char *bad[] = {"7505", "750560", "20004", "96001", "97911", "98111", "2C004", "00123",
                         "2a004", "7505A"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg (intake_insee_commune_valid (good[i]), "%s refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg (!intake_insee_commune_valid (bad[i]), "%s accepted", bad[i]);
    /* Corsica, through the whole submission. */
    OK ("{\"dossier\": {\"business\": {\"insee_commune\": \"2A004\", \"address\": "
        "{\"insee_commune\": \"2A004\", \"postcode\": \"20000\"}, \"location\": {\"lat\": 41.92, "
        "\"lon\": 8.74}}}}");
    s_expect ("{\"dossier\": {\"business\": {\"insee_commune\": \"20004\", \"address\": null}}}",
              "business.insee_commune", "format");
    s_expect ("{\"dossier\": {\"holder\": {\"residence\": {\"insee_commune\": \"9741\"}}}}",
              "holder.residence.insee_commune", "format");
    /* The commune may come from the address only; one of them is required. */
    OK ("{\"dossier\": {\"business\": {\"insee_commune\": null}}}");
    s_expect ("{\"dossier\": {\"business\": {\"insee_commune\": null, \"address\": "
              "{\"insee_commune\": null}}}}",
              "business.insee_commune", "required");
    s_expect ("{\"dossier\": {\"business\": null}}", "business.insee_commune", "required");
    s_expect ("{\"dossier\": {\"business\": {\"insee_commune\": \"59599\"}}}",
              "business.insee_commune", "inconsistent");
    /* Postcodes. */
    s_expect ("{\"dossier\": {\"business\": {\"address\": {\"postcode\": \"5910\"}}}}",
              "business.address.postcode", "format");
    s_expect ("{\"dossier\": {\"holder\": {\"residence\": {\"postcode\": \"591OO\"}}}}",
              "holder.residence.postcode", "format");
}
END_TEST

START_TEST (test_qpv_codes)
{
    ck_assert (intake_qpv_code_valid ("QN07505I"));
    ck_assert (intake_qpv_code_valid ("QN02A01A"));
    ck_assert (intake_qpv_code_valid ("QN02B01Z"));
    ck_assert (intake_qpv_code_valid ("QN97401A"));
    ck_assert (!intake_qpv_code_valid ("QN0750I"));
    ck_assert (!intake_qpv_code_valid ("QP07505I"));
    ck_assert (!intake_qpv_code_valid ("QN07505i"));
    ck_assert (!intake_qpv_code_valid ("QN02C01A"));
    ck_assert (!intake_qpv_code_valid ("QN075051"));
    ck_assert (!intake_qpv_code_valid ("QN07505IX"));
    s_expect ("{\"dossier\": {\"business\": {\"declared_qpv\": \"QN7505I\"}}}",
              "business.declared_qpv", "format");
    s_expect ("{\"dossier\": {\"holder\": {\"residence_qpv\": \"qn07505i\"}}}",
              "holder.residence_qpv", "format");
}
END_TEST

START_TEST (test_coordinates)
{
    const char *fmt = "{\"dossier\": {\"business\": {\"location\": {\"lat\": %s, \"lon\": %s}}}}";
    char patch[300];
    struct {
        const char *lat, *lon;
        const char *bad; /* the field named, NULL when accepted */
    } cases[] = {
        {"41.3", "9.0", NULL},       /* southern edge of metropolitan France */
        {"41.2", "9.0", "lat"},
        {"51.1", "2.5", NULL},
        {"51.2", "2.5", "lat"},
        {"48.0", "-5.2", NULL},
        {"48.0", "-5.3", "lon"},
        {"43.0", "9.6", NULL},
        {"43.0", "9.7", "lon"},
        {"41.92", "8.74", NULL},     /* Ajaccio */
        {"-21.0", "55.5", NULL},     /* Saint-Louis, La Réunion */
        {"16.25", "-61.55", NULL},   /* Guadeloupe */
        {"14.6", "-61.05", NULL},    /* Martinique */
        {"4.93", "-52.33", NULL},    /* Cayenne */
        {"-12.78", "45.23", NULL},   /* Mayotte */
        {"46.78", "-56.17", NULL},   /* Saint-Pierre */
        {"18.07", "-63.05", NULL},   /* Saint-Martin */
        {"-17.535", "-149.569", NULL}, /* Papeete, French Polynesia */
        {"2.35", "48.85", "lon"},    /* Paris swapped: 2.35 is a latitude of Guyane */
        {"0", "0", "lat"},
        {"-91", "0", "lat"},        /* out of -90..90 */
        {"45", "180.5", "lon"},     /* out of -180..180 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf (patch, sizeof patch, fmt, cases[i].lat, cases[i].lon);
        char field[64];
        snprintf (field, sizeof field, "business.location.%s", cases[i].bad ? cases[i].bad : "");
        if (!cases[i].bad)
            OK (patch);
        else
            s_expect (patch, field, "range");
    }
    ck_assert_str_eq (intake_zones_find (s_zones, -21.0, 55.5), "La Réunion");
    ck_assert_str_eq (intake_zones_find (s_zones, 48.85, 2.35), "metropolitan France");
    ck_assert (intake_zones_find (s_zones, 2.35, 48.85) == NULL);
    /* French Polynesia has QPV (Papeete): in no zone before the table was a data file. */
    ck_assert_str_eq (intake_zones_find (s_zones, -17.535, -149.569), "French Polynesia");
    /* Without zones: degrees only, a point in no territory passes. */
    Qp__V1__SubmitDossier *nowhere =
        s_submission ("{\"dossier\": {\"business\": {\"location\": {\"lat\": 0, \"lon\": 0}}}}");
    intake_errors_t e;
    intake_errors_init (&e);
    ck_assert_uint_eq (intake_validate_submission (nowhere, &e), 0);
    ck_assert_uint_eq (intake_validate_submission_in (s_zones, nowhere, &e), 1);
    s_free (nowhere);

    /* Both or neither: the missing one is named. */
    s_expect ("{\"dossier\": {\"business\": {\"location\": {\"lat\": 50.69, \"lon\": null}}}}",
              "business.location.lon", "inconsistent");
    s_expect ("{\"dossier\": {\"holder\": {\"residence_location\": {\"lat\": null}}}}",
              "holder.residence_location.lat", "inconsistent");
    OK ("{\"dossier\": {\"business\": {\"location\": {\"lat\": null, \"lon\": null}}}}");
    /* Finite. */
    s_expect ("{\"dossier\": {\"business\": {\"location\": {\"lat\": \"NaN\"}}}}",
              "business.location.lat", "format");
    s_expect ("{\"dossier\": {\"business\": {\"location\": {\"lon\": \"-Infinity\"}}}}",
              "business.location.lon", "format");
}
END_TEST

START_TEST (test_amounts)
{
    OK ("{\"dossier\": {\"project\": {\"financing_need_cents\": 0, \"amount_asked_cents\": 0, "
        "\"personal_contribution_cents\": 0, \"bank_loan_cents\": 0}}}");
    OK ("{\"dossier\": {\"project\": {\"financing_need_cents\": 100000000000, "
        "\"amount_asked_cents\": 100000000000, \"bank_loan_cents\": 100000000000, "
        "\"personal_contribution_cents\": 100000000000}, \"business\": {\"turnover_cents\": "
        "100000000000, \"balance_sheet_cents\": 100000000000}}}");
    s_expect ("{\"dossier\": {\"project\": {\"financing_need_cents\": -1}}}",
              "project.financing_need_cents", "range");
    s_expect ("{\"dossier\": {\"project\": {\"financing_need_cents\": 100000000001}}}",
              "project.financing_need_cents", "range");
    s_expect ("{\"dossier\": {\"project\": {\"amount_asked_cents\": -1}}}",
              "project.amount_asked_cents", "range");
    s_expect ("{\"dossier\": {\"project\": {\"bank_loan_cents\": -5}}}", "project.bank_loan_cents",
              "range");
    s_expect ("{\"dossier\": {\"project\": {\"personal_contribution_cents\": -1}}}",
              "project.personal_contribution_cents", "range");
    s_expect ("{\"dossier\": {\"business\": {\"turnover_cents\": -1}}}", "business.turnover_cents",
              "range");
    s_expect ("{\"dossier\": {\"business\": {\"balance_sheet_cents\": 100000000001}}}",
              "business.balance_sheet_cents", "range");
    /* Against the financing need: equal is fine, one cent more is not. */
    OK ("{\"dossier\": {\"project\": {\"financing_need_cents\": 1500000, \"amount_asked_cents\": "
        "1500000, \"personal_contribution_cents\": 1500000, \"bank_loan_cents\": 1500000}}}");
    s_expect ("{\"dossier\": {\"project\": {\"amount_asked_cents\": 4500001}}}",
              "project.amount_asked_cents", "inconsistent");
    s_expect ("{\"dossier\": {\"project\": {\"personal_contribution_cents\": 4500001}}}",
              "project.personal_contribution_cents", "inconsistent");
    s_expect ("{\"dossier\": {\"project\": {\"bank_loan_cents\": 4500001}}}",
              "project.bank_loan_cents", "inconsistent");
    s_expect ("{\"dossier\": {\"project\": {\"financing_need_cents\": null}}}",
              "project.financing_need_cents", "required");
    s_expect ("{\"dossier\": {\"project\": {\"amount_asked_cents\": null}}}",
              "project.amount_asked_cents", "required");
}
END_TEST

START_TEST (test_months_and_percent)
{
    OK ("{\"dossier\": {\"project\": {\"bank_loan_months\": 360, \"honour_loan_months\": 360, "
        "\"deferral_months\": 360, \"bank_loan_guarantee_pct\": 100}}}");
    OK ("{\"dossier\": {\"project\": {\"bank_loan_guarantee_pct\": 0, \"deferral_months\": 0}}}");
    s_expect ("{\"dossier\": {\"project\": {\"bank_loan_months\": 361}}}",
              "project.bank_loan_months", "range");
    s_expect ("{\"dossier\": {\"project\": {\"honour_loan_months\": 361}}}",
              "project.honour_loan_months", "range");
    s_expect ("{\"dossier\": {\"project\": {\"deferral_months\": 361, \"honour_loan_months\": "
              "null}}}",
              "project.deferral_months", "range");
    s_expect ("{\"dossier\": {\"project\": {\"bank_loan_guarantee_pct\": 101}}}",
              "project.bank_loan_guarantee_pct", "range");
    s_expect ("{\"dossier\": {\"project\": {\"deferral_months\": 61}}}", "project.deferral_months",
              "inconsistent");
}
END_TEST

START_TEST (test_dates_and_years)
{
    /* submitted_on 2024-05-13: a creation up to 2027-05-13 may be declared. */
    OK ("{\"dossier\": {\"business\": {\"creation_date\": \"2027-05-13\"}}}");
    OK ("{\"dossier\": {\"business\": {\"creation_date\": \"1950-01-01\"}}}");
    s_expect ("{\"dossier\": {\"business\": {\"creation_date\": \"2027-05-14\"}}}",
              "business.creation_date", "inconsistent");
    s_expect ("{\"dossier\": {\"business\": {\"creation_date\": \"2024-13-01\"}}}",
              "business.creation_date", "format");
    s_expect ("{\"dossier\": {\"business\": {\"creation_date\": \"1850-01-01\"}}}",
              "business.creation_date", "range");
    s_expect ("{\"dossier\": {\"business\": {\"creation_date\": \"2999-01-01\"}}}",
              "business.creation_date", "range");
    OK ("{\"dossier\": {\"holder\": {\"birth_year\": 1900}}}");
    OK ("{\"dossier\": {\"holder\": {\"birth_year\": 2024}}}");
    s_expect ("{\"dossier\": {\"holder\": {\"birth_year\": 1899}}}", "holder.birth_year", "range");
    s_expect ("{\"dossier\": {\"holder\": {\"birth_year\": 2025}}}", "holder.birth_year", "range");
}
END_TEST

START_TEST (test_enums)
{
    s_expect ("{\"dossier\": {\"project\": {\"axis\": null}}}", "project.axis", "required");
    s_expect ("{\"dossier\": {\"project\": {\"axis\": \"AXIS_UNSPECIFIED\"}}}", "project.axis",
              "required");
    s_expect ("{\"dossier\": {\"project\": {\"stage\": null}}}", "project.stage", "required");
    s_expect ("{\"dossier\": {\"project\": {\"stage\": \"STAGE_UNSPECIFIED\"}}}", "project.stage",
              "required");
    /* Numbers the contract does not define (a binary sender can put any). */
    Qp__V1__SubmitDossier *s = s_submission (NULL);
    s->dossier->project->axis = 42;
    s_expect_on (s, "project.axis", "unknown");
    s->dossier->project->axis = QP__V1__AXIS__SETTING_UP_ACTIVITY;
    s->dossier->project->stage = 7;
    s_expect_on (s, "project.stage", "unknown");
    s->dossier->project->stage = QP__V1__STAGE__DEVELOPMENT;
    s->dossier->holder->network = 99;
    s_expect_on (s, "holder.network", "unknown");
    s->dossier->holder->network = QP__V1__NETWORK__ADIE;
    s->dossier->holder->gender = -1;
    s_expect_on (s, "holder.gender", "unknown");
    s->dossier->holder->gender = QP__V1__GENDER__GENDER_UNSPECIFIED;
    s_expect_on (s, NULL, NULL);
    s_free (s);
}
END_TEST

/* The facts no source checks yet, declared by the applicant: bools, and a target group
 * that must be one this version knows (the finding names the values allowed). */
START_TEST (test_declared_facts)
{
    OK ("{\"dossier\": {\"business\": {\"declared_in_zfu_te\": true, "
        "\"declared_zfu_resident_employees_half\": false, \"declared_independent_sme\": true, "
        "\"declared_premises_in_npnru\": false}, \"holder\": {\"declared_target_group\": "
        "\"MINIMUM_SOCIAL_BENEFIT\"}}}");
    OK ("{\"dossier\": {\"holder\": {\"declared_target_group\": \"NO_TARGET_GROUP\"}}}");
    OK ("{\"dossier\": {\"holder\": {\"declared_target_group\": \"TARGET_GROUP_UNSPECIFIED\"}}}");
    Qp__V1__SubmitDossier *s = s_submission (NULL);
    s->dossier->holder->has_declared_target_group = true;
    s->dossier->holder->declared_target_group = 17;
    intake_errors_t e;
    intake_errors_init (&e);
    ck_assert_uint_eq (intake_validate_submission_in (s_zones, s, &e), 1);
    const intake_field_error_t *f = intake_errors_find (&e, "holder.declared_target_group");
    ck_assert_ptr_nonnull (f);
    ck_assert_str_eq (f->code, "unknown");
    ck_assert_msg (strstr (f->message, "17") && strstr (f->message, "NO_TARGET_GROUP") &&
                       strstr (f->message, "UNEMPLOYMENT_BENEFIT") && strstr (f->message, "CAPE") &&
                       !strstr (f->message, "UNSPECIFIED"),
                   "message: %s", f->message);
    s_free (s);
}
END_TEST

/* A field this version does not know, anywhere in the dossier, is refused by number. */
START_TEST (test_unknown_fields)
{
    static uint8_t varint[] = {0x01};
    ProtobufCMessageUnknownField extra[2] = {
        {.tag = 40, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = varint},
        {.tag = 41, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = varint}};
    Qp__V1__SubmitDossier *s = s_submission (NULL);
    s->dossier->holder->residence->base.n_unknown_fields = 2;
    s->dossier->holder->residence->base.unknown_fields = extra;
    s->dossier->base.n_unknown_fields = 1;
    s->dossier->base.unknown_fields = extra;
    s_expect_on (s, "holder.residence.#40", "unknown");
    s_expect_on (s, "holder.residence.#41", "unknown");
    s_expect_on (s, "#40", "unknown");
    /* Not in the identity (it stops at intake) nor around the dossier. */
    s->dossier->holder->residence->base.n_unknown_fields = 0;
    s->dossier->holder->residence->base.unknown_fields = NULL;
    s->dossier->base.n_unknown_fields = 0;
    s->dossier->base.unknown_fields = NULL;
    s->base.n_unknown_fields = 1;
    s->base.unknown_fields = extra;
    s_expect_on (s, NULL, NULL);
    s->base.n_unknown_fields = 0;
    s->base.unknown_fields = NULL;
    s_free (s);
}
END_TEST

START_TEST (test_text)
{
    /* protobuf-c does not check UTF-8: intake does, on every string. */
    Qp__V1__SubmitDossier *s = s_submission (NULL);
    free (s->dossier->business->address->line);
    s->dossier->business->address->line = strdup ("3 place de la Libert\xe9");
    s_expect_on (s, "business.address.line", "format");
    free (s->dossier->business->address->line);
    s->dossier->business->address->line = strdup ("\xed\xa0\x80"); /* a surrogate */
    s_expect_on (s, "business.address.line", "format");
    free (s->dossier->business->address->line);
    s->dossier->business->address->line = strdup ("\xc0\xaf"); /* overlong '/' */
    s_expect_on (s, "business.address.line", "format");
    free (s->dossier->business->siret);
    s->dossier->business->siret = strdup ("7328293200007\xff");
    s_expect_on (s, "business.siret", "format");
    s_free (s);
    ck_assert (intake_utf8_valid ("Ça va, €, 𝄞"));

    char patch[1200], line[600];
    memset (line, 'x', 513);
    line[513] = 0;
    snprintf (patch, sizeof patch, "{\"dossier\": {\"holder\": {\"residence\": {\"city\": \"%s\"}}}}",
              line);
    s_expect (patch, "holder.residence.city", "range");
    line[512] = 0;
    snprintf (patch, sizeof patch, "{\"dossier\": {\"holder\": {\"residence\": {\"city\": \"%s\"}}}}",
              line);
    OK (patch);
    /* Territory ids. */
    OK ("{\"dossier\": {\"territory\": \"est-ensemble\"}}");
    s_expect ("{\"dossier\": {\"territory\": \"Est Ensemble\"}}", "territory", "format");
}
END_TEST

START_TEST (test_every_error_at_once)
{
    Qp__V1__SubmitDossier *s = s_submission (
        "{\"dossier\": {\"channel\": null, \"submitted_on\": \"2024-02-30\", \"holder\": "
        "{\"person_key\": null, \"birth_year\": 1800}, \"business\": {\"siret\": "
        "\"73282932000075\", \"naf_code\": \"x\", \"location\": {\"lat\": 1}}, \"project\": null}}");
    intake_errors_t e;
    intake_errors_init (&e);
    size_t n = intake_validate_submission_in (s_zones, s, &e);
    const char *fields[] = {"channel", "submitted_on", "holder.person_key", "holder.birth_year",
                            "business.siret", "business.naf_code", "business.location.lat",
                            "project.axis", "project.stage", "project.financing_need_cents",
                            "project.amount_asked_cents"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        ck_assert_msg (intake_errors_find (&e, fields[i]), "no finding on %s", fields[i]);
    ck_assert_uint_eq (n, sizeof fields / sizeof fields[0]);
    s_free (s);

    /* One finding per field; beyond the capacity they are counted. */
    intake_errors_init (&e);
    intake_errors_add (&e, "a", "format", "first");
    intake_errors_add (&e, "a", "range", "second");
    ck_assert_uint_eq (e.count, 1);
    ck_assert_str_eq (e.items[0].code, "format");
    for (int i = 0; i < INTAKE_MAX_FIELD_ERRORS + 3; i++) {
        char f[16];
        snprintf (f, sizeof f, "f%d", i);
        intake_errors_add (&e, f, "format", "x");
    }
    ck_assert_uint_eq (e.count, INTAKE_MAX_FIELD_ERRORS);
    ck_assert_uint_eq (e.dropped, 4);
}
END_TEST

START_TEST (test_follow_up)
{
    Qp__V1__FollowUp f = QP__V1__FOLLOW_UP__INIT;
    intake_errors_t e;
    f.dossier_id = "0123456789abcdef0123456789abcdef";
    f.has_year = true;
    f.year = 1;
    f.reported_on = "2025-06-30";
    intake_errors_init (&e);
    ck_assert_uint_eq (intake_validate_follow_up (&f, &e), 0);
    f.year = INTAKE_MAX_FOLLOW_UP_YEAR;
    ck_assert_uint_eq (intake_validate_follow_up (&f, &e), 0);
    f.year = 0;
    ck_assert_uint_eq (intake_validate_follow_up (&f, &e), 1);
    ck_assert_str_eq (intake_errors_find (&e, "year")->code, "range");
    intake_errors_init (&e);
    f.year = INTAKE_MAX_FOLLOW_UP_YEAR + 1;
    intake_validate_follow_up (&f, &e);
    ck_assert_str_eq (intake_errors_find (&e, "year")->code, "range");
    intake_errors_init (&e);
    f.has_year = false;
    f.reported_on = "2025-06-31";
    f.dossier_id = "0123456789ABCDEF0123456789abcdef";
    f.has_network = true;
    f.network = 77;
    ck_assert_uint_eq (intake_validate_follow_up (&f, &e), 4);
    ck_assert_str_eq (intake_errors_find (&e, "year")->code, "required");
    ck_assert_str_eq (intake_errors_find (&e, "reported_on")->code, "format");
    ck_assert_str_eq (intake_errors_find (&e, "dossier_id")->code, "format");
    ck_assert_str_eq (intake_errors_find (&e, "network")->code, "unknown");
    intake_errors_init (&e);
    Qp__V1__FollowUp empty = QP__V1__FOLLOW_UP__INIT;
    ck_assert_uint_eq (intake_validate_follow_up (&empty, &e), 3);
    ck_assert_str_eq (intake_errors_find (&e, "dossier_id")->code, "required");
    ck_assert_str_eq (intake_errors_find (&e, "reported_on")->code, "required");
    /* Stored as sent, like the dossier: a field this version does not know is refused. */
    static uint8_t varint[] = {0x05};
    ProtobufCMessageUnknownField extra = {
        .tag = 30, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = varint};
    f.dossier_id = "0123456789abcdef0123456789abcdef";
    f.has_year = true, f.year = 1, f.reported_on = "2025-06-30", f.network = 1;
    f.base.n_unknown_fields = 1, f.base.unknown_fields = &extra;
    intake_errors_init (&e);
    ck_assert_uint_eq (intake_validate_follow_up (&f, &e), 1);
    ck_assert_str_eq (intake_errors_find (&e, "#30")->code, "unknown");
}
END_TEST

/* Writes text as a zones file in dir; returns its path (static buffer). */
static const char *s_zones_file (const char *dir, const char *text)
{
    static char path[1024];
    snprintf (path, sizeof path, "%s/" INTAKE_ZONES_FILE, dir);
    FILE *f = fopen (path, "w");
    ck_assert_ptr_nonnull (f);
    fputs (text, f);
    fclose (f);
    return path;
}

/* A broken zones file is refused whole, with the line at fault and why. */
START_TEST (test_zones_file)
{
    ck_assert_uint_eq (intake_zones_count (s_zones), 9);
    ck_assert_str_eq (intake_zones_valid_from (s_zones), "2026-11-24");
    char *dir = qp_test_tmpdir ("qp-zones");
    ck_assert_ptr_nonnull (dir);
#define HEAD "# valid_from: 2026-11-24\n# source: a test\nname,lat_min,lat_max,lon_min,lon_max\n"
    struct {
        const char *text, *field, *why; /* why: the message after "PATH: " */
    } cases[] = {
        {HEAD "a,1,2,3,4\nb,1,2,3\n", "line",
         "line 5: expected 5 fields separated by ',': name,lat_min,lat_max,lon_min,lon_max"},
        {HEAD "a,1,2,3,4,5\n", "line", "line 4: expected 5 fields"},
        {HEAD "# a comment\n\nmetropolitan France,41.3,51.1,-5.2,x9.6\n", "lon_max",
         "line 6: not a number"},
        {HEAD "a,1,2,3,4\nb,,2,3,4\n", "lat_min", "line 5: not a number"},
        {HEAD "a,91,92,3,4\n", "lat_min", "line 4: outside -90..90 degrees"},
        {HEAD "a,1,2,3,180.5\n", "lon_max", "line 4: outside -180..180 degrees"},
        {HEAD "a,1,2,3,nan\n", "lon_max", "line 4: not a finite number"},
        {HEAD "a,2,1,3,4\n", "lat_max", "line 4: lat_max is below lat_min"},
        {HEAD "a,1,2,4,3\n", "lon_max", "line 4: lon_max is below lon_min"},
        {HEAD "a,1,2,3,4\na,5,6,7,8\n", "name", "line 5: a zone of this name is already given"},
        {HEAD ",1,2,3,4\n", "name", "line 4: the name is empty"},
        {"# source: a test\nname,lat_min,lat_max,lon_min,lon_max\na,1,2,3,4\n", "file",
         "line 3: no \"# valid_from: YYYY-MM-DD\" line"},
        {"# valid_from: 2026-02-30\n", "valid_from", "line 1: valid_from is not a date"},
        {"# valid_from: 2026-11-24\nname,lat_min,lat_max,lon_min,lon_max\na,1,2,3,4\n", "file",
         "line 3: no \"# source: ...\" line"},
        {"# valid_from: 2026-11-24\n# source: a test\nname,lat,lon\n", "header",
         "line 3: the header must be name,lat_min,lat_max,lon_min,lon_max"},
        {HEAD, "file", "line 3: no zone"},
        {"", "file", "line 0: no \"# valid_from"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = s_zones_file (dir, cases[i].text);
        qp_error_t err;
        memset (&err, 0, sizeof err);
        ck_assert_msg (intake_zones_load (path, &err) == NULL, "case %zu accepted", i);
        ck_assert_str_eq (err.code, "bad_zones");
        ck_assert_msg (!strcmp (err.field, cases[i].field), "case %zu: field %s", i, err.field);
        char expected[512];
        snprintf (expected, sizeof expected, "%s: %s", path, cases[i].why);
        ck_assert_msg (!strncmp (err.message, expected, strlen (expected)), "case %zu: %s", i,
                       err.message);
    }
    /* No file at all. */
    qp_error_t err;
    ck_assert_ptr_null (intake_zones_load ("/nonexistent/zones.csv", &err));
    ck_assert_str_eq (err.message, "/nonexistent/zones.csv: No such file or directory");
    /* A good one, with comments, blank lines and CRLF. */
    const char *path = s_zones_file (dir, "# valid_from: 2026-11-24\r\n# source: a test\r\n"
                                          "name,lat_min,lat_max,lon_min,lon_max\r\n\r\n"
                                          "# one\r\nsomewhere,-1.5,1.5,-2,2\r\n");
    intake_zones_t *zones = intake_zones_load (path, &err);
    ck_assert_msg (zones, "%s", err.message);
    ck_assert_uint_eq (intake_zones_count (zones), 1);
    ck_assert_str_eq (intake_zones_find (zones, 0, 0), "somewhere");
    ck_assert_ptr_null (intake_zones_find (zones, 0, 2.5));
    intake_zones_destroy (&zones);
    ck_assert_ptr_null (zones);
#undef HEAD
    qp_test_rmtree (dir);
    free (dir);
}
END_TEST

int main (void)
{
    s_zones = s_zones_load ();
    if (!s_zones)
        return EXIT_FAILURE;
    Suite *s = suite_create ("validate");
    TCase *tc = tcase_create ("rules");
    tcase_add_test (tc, test_valid_submission);
    tcase_add_test (tc, test_dossier_required);
    tcase_add_test (tc, test_channel);
    tcase_add_test (tc, test_submitted_on);
    tcase_add_test (tc, test_person_key_and_identity);
    tcase_add_test (tc, test_person_key_derivation);
    tcase_add_test (tc, test_siret);
    tcase_add_test (tc, test_business_codes);
    tcase_add_test (tc, test_communes_and_postcodes);
    tcase_add_test (tc, test_qpv_codes);
    tcase_add_test (tc, test_coordinates);
    tcase_add_test (tc, test_amounts);
    tcase_add_test (tc, test_months_and_percent);
    tcase_add_test (tc, test_dates_and_years);
    tcase_add_test (tc, test_enums);
    tcase_add_test (tc, test_declared_facts);
    tcase_add_test (tc, test_unknown_fields);
    tcase_add_test (tc, test_text);
    tcase_add_test (tc, test_every_error_at_once);
    tcase_add_test (tc, test_follow_up);
    tcase_add_test (tc, test_zones_file);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    intake_zones_destroy (&s_zones);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
