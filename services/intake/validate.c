/* Field validation of submissions and follow-ups. Each rule adds a finding and carries
 * on, so one answer lists every problem. The order matters only in that the first
 * finding on a field wins: the generic pass (UTF-8, text length, enum values) runs first
 * so that a value that is not even text is reported as such. */
#include "validate.h"
#include "qp_date.h"
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Findings ------------------------------------------------------------------------ */

void intake_errors_init (intake_errors_t *errors) { memset (errors, 0, sizeof *errors); }

const intake_field_error_t *intake_errors_find (const intake_errors_t *errors, const char *field)
{
    for (size_t i = 0; i < errors->count; i++)
        if (!strcmp (errors->items[i].field, field))
            return &errors->items[i];
    return NULL;
}

void intake_errors_add (intake_errors_t *errors, const char *field, const char *code,
                        const char *fmt, ...)
{
    if (intake_errors_find (errors, field))
        return;
    if (errors->count == INTAKE_MAX_FIELD_ERRORS) {
        errors->dropped++;
        return;
    }
    intake_field_error_t *e = &errors->items[errors->count++];
    snprintf (e->field, sizeof e->field, "%s", field);
    snprintf (e->code, sizeof e->code, "%s", code);
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (e->message, sizeof e->message, fmt, ap);
    va_end (ap);
}

/* ---- Single checks ------------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p and its code point, or 0 when it is not well formed
 * (overlong forms, surrogates and code points above U+10FFFF are not). */
static int s_utf8_next (const unsigned char *p, uint32_t *cp)
{
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    int len;
    uint32_t c, min;
    if ((p[0] & 0xE0) == 0xC0)
        len = 2, c = p[0] & 0x1F, min = 0x80;
    else if ((p[0] & 0xF0) == 0xE0)
        len = 3, c = p[0] & 0x0F, min = 0x800;
    else if ((p[0] & 0xF8) == 0xF0)
        len = 4, c = p[0] & 0x07, min = 0x10000;
    else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

bool intake_utf8_valid (const char *text)
{
    const unsigned char *p = (const unsigned char *) text;
    while (*p) {
        uint32_t cp;
        int len = s_utf8_next (p, &cp);
        if (!len)
            return false;
        p += len;
    }
    return true;
}

static bool s_digits (const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool s_upper (char c) { return c >= 'A' && c <= 'Z'; }

bool intake_luhn_valid (const char *digits)
{
    size_t n = strlen (digits);
    if (n == 0 || !s_digits (digits, n))
        return false;
    int sum = 0;
    for (size_t k = 0; k < n; k++) {
        int d = digits[n - 1 - k] - '0';
        if (k % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

const char *intake_siret_check (const char *siret)
{
    if (strlen (siret) != 14 || !s_digits (siret, 14))
        return "format";
    /* La Poste's establishments share SIREN 356000000 and use a sum of digits multiple
     * of 5; its head office keeps a Luhn key (as python-stdnum checks). */
    if (!strncmp (siret, "356000000", 9) && strcmp (siret, "35600000000048") != 0) {
        int sum = 0;
        for (int i = 0; i < 14; i++)
            sum += siret[i] - '0';
        return sum % 5 == 0 ? NULL : "checksum";
    }
    return intake_luhn_valid (siret) ? NULL : "checksum";
}

bool intake_legal_form_valid (const char *code)
{
    return strlen (code) == 4 && s_digits (code, 4);
}

bool intake_naf_code_valid (const char *code)
{
    size_t n = strlen (code);
    if (n == 6)
        return s_digits (code, 2) && code[2] == '.' && s_digits (code + 3, 2) && s_upper (code[5]);
    if (n == 5)
        return s_digits (code, 4) && s_upper (code[4]);
    return false;
}

/* Department part of a commune code: 01-95 but 20 (Corsica is 2A/2B since 1976), 971-978
 * for the overseas departments and collectivities, 984-989 for the Pacific ones. */
bool intake_insee_commune_valid (const char *code)
{
    if (strlen (code) != 5)
        return false;
    if (code[0] == '2' && (code[1] == 'A' || code[1] == 'B'))
        return s_digits (code + 2, 3);
    if (!s_digits (code, 5))
        return false;
    int dep = (code[0] - '0') * 10 + (code[1] - '0');
    if (dep == 97)
        return code[2] >= '1' && code[2] <= '8';
    if (dep == 98)
        return code[2] == '4' || (code[2] >= '6' && code[2] <= '9');
    return dep >= 1 && dep <= 95 && dep != 20;
}

bool intake_postcode_valid (const char *code)
{
    return strlen (code) == 5 && s_digits (code, 5);
}

bool intake_qpv_code_valid (const char *code)
{
    if (strlen (code) != 8 || strncmp (code, "QN", 2) != 0)
        return false;
    bool dep = s_digits (code + 2, 3)
               || (code[2] == '0' && code[3] == '2' && (code[4] == 'A' || code[4] == 'B'));
    return dep && s_digits (code + 5, 2) && s_upper (code[7]);
}

bool intake_territory_id_valid (const char *id)
{
    size_t n = strlen (id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return false;
    return true;
}

bool intake_dossier_id_valid (const char *id)
{
    size_t n = strlen (id);
    bool hex = n == QP_ID_HEX;
    for (size_t i = 0; hex && i < n; i++)
        hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    return hex;
}

/* A person key is a digest: a name or an email pasted by mistake must not pass. */
static bool s_person_key_valid (const char *key)
{
    size_t n = strlen (key);
    if (n < 16 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* ---- The person key ------------------------------------------------------------------- */

/* ASCII folding of U+00C0..U+00FF; "" marks a separator (× and ÷). */
static const char *s_latin1_fold[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

bool intake_normalise_name (const char *text, char *out, size_t size)
{
    const unsigned char *p = (const unsigned char *) text;
    size_t n = 0;
    bool space = false, fits = true;
    while (*p) {
        uint32_t cp;
        int len = s_utf8_next (p, &cp);
        if (!len) {
            p++; /* not text: validation refuses it before this is used */
            continue;
        }
        const unsigned char *raw = p;
        p += len;
        char one[2] = {0, 0};
        const char *emit = NULL;
        size_t emit_len;
        if (cp < 0x80) {
            if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9'))
                one[0] = (char) cp;
            else if (cp >= 'A' && cp <= 'Z')
                one[0] = (char) (cp - 'A' + 'a');
            emit = one[0] ? one : ""; /* any other ASCII (space, '-', '\'') separates */
        } else if (cp >= 0x300 && cp <= 0x36F)
            continue; /* combining accents of decomposed text */
        else if (cp >= 0xC0 && cp <= 0xFF)
            emit = s_latin1_fold[cp - 0xC0];
        else if (cp == 0x152 || cp == 0x153)
            emit = "oe";
        else if (cp == 0x178)
            emit = "y";
        else if (cp == 0xA0 || (cp >= 0x2000 && cp <= 0x206F))
            emit = ""; /* no-break space, typographic apostrophes and dashes */
        if (emit && !*emit) {
            space = n > 0;
            continue;
        }
        if (emit)
            emit_len = strlen (emit);
        else {
            emit = (const char *) raw; /* other scripts are kept as they are */
            emit_len = (size_t) len;
        }
        if (n + space + emit_len + 1 > size) {
            fits = false;
            break;
        }
        if (space)
            out[n++] = ' ';
        space = false;
        memcpy (out + n, emit, emit_len);
        n += emit_len;
    }
    if (size)
        out[n < size ? n : size - 1] = 0;
    return fits;
}

void intake_person_key (const Qp__V1__PersonIdentity *identity, const char *pepper,
                        char out[INTAKE_PERSON_KEY_HEX + 1])
{
    /* Any pepper length gives a key of the size BLAKE2b wants. */
    unsigned char key[crypto_generichash_KEYBYTES];
    crypto_generichash (key, sizeof key, (const unsigned char *) pepper, strlen (pepper), NULL, 0);
    char family[INTAKE_MAX_TEXT_BYTES + 1], given[INTAKE_MAX_TEXT_BYTES + 1];
    intake_normalise_name (identity->family_name ? identity->family_name : "", family,
                           sizeof family);
    intake_normalise_name (identity->given_names ? identity->given_names : "", given, sizeof given);
    const char *birth = identity->birth_date ? identity->birth_date : "";

    crypto_generichash_state st;
    unsigned char h[INTAKE_PERSON_KEY_HEX / 2];
    crypto_generichash_init (&st, key, sizeof key, sizeof h);
    crypto_generichash_update (&st, (const unsigned char *) family, strlen (family));
    crypto_generichash_update (&st, (const unsigned char *) "|", 1);
    crypto_generichash_update (&st, (const unsigned char *) given, strlen (given));
    crypto_generichash_update (&st, (const unsigned char *) "|", 1);
    crypto_generichash_update (&st, (const unsigned char *) birth, strlen (birth));
    crypto_generichash_final (&st, h, sizeof h);
    sodium_bin2hex (out, INTAKE_PERSON_KEY_HEX + 1, h, sizeof h);
    sodium_memzero (family, sizeof family);
    sodium_memzero (given, sizeof given);
    sodium_memzero (key, sizeof key);
    sodium_memzero (&st, sizeof st);
}

/* ---- The generic pass ------------------------------------------------------------------ */

static void s_join (char *out, size_t size, const char *path, const char *name)
{
    snprintf (out, size, "%s%s%s", path, *path ? "." : "", name);
}

/* Fields of the Dossier (or a FollowUp) this version does not know are refused, not kept:
 * they would be stored and forwarded as sent, unread by anyone here, and a newer front end
 * may put personal data in them (docs/protocol.md). Named by their number. */
static void s_unknown_fields (const ProtobufCMessage *m, const char *path, intake_errors_t *errors)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        char field[64];
        snprintf (field, sizeof field, "%s%s#%u", path, *path ? "." : "",
                  (unsigned)m->unknown_fields[i].tag);
        intake_errors_add (errors, field, "unknown",
                           "%s%sfield number %u is not in qp.v1.%s of this intake: refused "
                           "rather than stored unread",
                           path, *path ? " " : "", (unsigned)m->unknown_fields[i].tag,
                           m->descriptor->short_name);
    }
}

/* Every string must be UTF-8 of a sane length, every enum a value this version knows;
 * with unknown, every field one this version knows. */
static void s_walk (const ProtobufCMessage *m, const char *path, bool unknown,
                    intake_errors_t *errors)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (unknown)
        s_unknown_fields (m, path, errors);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const uint8_t *member = (const uint8_t *) m + f->offset;
        char field[64];
        s_join (field, sizeof field, path, f->name);
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            continue; /* none in what intake validates */
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(char *const *) member;
            if (s && !intake_utf8_valid (s))
                intake_errors_add (errors, field, "format", "%s is not valid UTF-8 text", field);
            else if (s && strlen (s) > INTAKE_MAX_TEXT_BYTES)
                intake_errors_add (errors, field, "range", "%s is longer than %d bytes", field,
                                   INTAKE_MAX_TEXT_BYTES);
        } else if (f->type == PROTOBUF_C_TYPE_ENUM) {
            bool has = f->quantifier_offset
                       && *(const protobuf_c_boolean *) ((const uint8_t *) m + f->quantifier_offset);
            int v = *(const int *) member;
            if (has && !protobuf_c_enum_descriptor_get_value (f->descriptor, v)) {
                /* Name the values allowed, so the sender can fix it without the .proto. */
                const ProtobufCEnumDescriptor *ed = f->descriptor;
                char allowed[160] = "";
                size_t used = 0;
                for (unsigned k = 0; k < ed->n_values && used < sizeof allowed; k++)
                    if (ed->values[k].value != 0)
                        used += (size_t)snprintf (allowed + used, sizeof allowed - used, "%s%s",
                                                  used ? ", " : "", ed->values[k].name);
                intake_errors_add (errors, field, "unknown",
                                   "%d is not a known %s value: one of %s", v, ed->name, allowed);
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *) member;
            if (sub)
                s_walk (sub, field, unknown, errors);
        }
    }
}

/* ---- Rules on single fields ------------------------------------------------------------ */

static bool s_present (const char *s) { return s && *s; }

static void s_channel_text (intake_errors_t *errors, const char *field, const char *s)
{
    if (!s_present (s)) {
        intake_errors_add (errors, field, "required", "%s is required", field);
        return;
    }
    if (strlen (s) > INTAKE_MAX_CHANNEL_BYTES) {
        intake_errors_add (errors, field, "range", "%s is longer than %d bytes", field,
                           INTAKE_MAX_CHANNEL_BYTES);
        return;
    }
    for (const char *p = s; *p; p++)
        if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7E) {
            intake_errors_add (errors, field, "format", "%s must be printable ASCII", field);
            return;
        }
}

/* The years qp_date_parse accepts. */
#define DATE_FIRST_YEAR 1900
#define DATE_LAST_YEAR 2199

/* A date field: true with *days when present and valid. */
static bool s_date (intake_errors_t *errors, const char *field, const char *text, bool required,
                    int32_t *days)
{
    if (!s_present (text)) {
        if (required)
            intake_errors_add (errors, field, "required", "%s is required", field);
        return false;
    }
    if (!qp_date_parse (text, days)) {
        /* A calendar date whose year is out of what dates may hold is a range error. */
        char in_2000[11];
        snprintf (in_2000, sizeof in_2000, "2000%s", strlen (text) == 10 ? text + 4 : "");
        int32_t any;
        bool digits = strlen (text) == 10;
        for (int i = 0; digits && i < 4; i++)
            digits = text[i] >= '0' && text[i] <= '9';
        int year = digits ? atoi (text) : 0;
        if (digits && (year < DATE_FIRST_YEAR || year > DATE_LAST_YEAR) &&
            qp_date_parse (in_2000, &any))
            intake_errors_add (errors, field, "range", "%s year must be between %d and %d", field,
                               DATE_FIRST_YEAR, DATE_LAST_YEAR);
        else
            intake_errors_add (errors, field, "format", "%s must be a calendar date YYYY-MM-DD",
                               field);
        return false;
    }
    return true;
}

/* An amount in cents: true when present and within bounds. */
static bool s_amount (intake_errors_t *errors, const char *field, bool has, int64_t cents,
                      bool required)
{
    if (!has) {
        if (required)
            intake_errors_add (errors, field, "required", "%s is required", field);
        return false;
    }
    if (cents < 0 || cents > INTAKE_MAX_AMOUNT_CENTS) {
        intake_errors_add (errors, field, "range",
                           "%s must be between 0 and %lld cents (1 000 000 000 euros)", field,
                           (long long) INTAKE_MAX_AMOUNT_CENTS);
        return false;
    }
    return true;
}

static void s_months (intake_errors_t *errors, const char *field, bool has, uint32_t months)
{
    if (has && months > INTAKE_MAX_MONTHS)
        intake_errors_add (errors, field, "range", "%s must be at most %d months", field,
                           INTAKE_MAX_MONTHS);
}

/* A code checked by its shape when present. */
static void s_code (intake_errors_t *errors, const char *field, const char *code,
                    bool (*valid) (const char *), const char *expected)
{
    if (s_present (code) && !valid (code))
        intake_errors_add (errors, field, "format", "%s must be %s", field, expected);
}

static void s_address (intake_errors_t *errors, const char *path, const Qp__V1__Address *a)
{
    if (!a)
        return;
    char field[64];
    s_join (field, sizeof field, path, "postcode");
    s_code (errors, field, a->postcode, intake_postcode_valid, "a 5-digit postcode");
    s_join (field, sizeof field, path, "insee_commune");
    s_code (errors, field, a->insee_commune, intake_insee_commune_valid,
            "an INSEE commune code (\"75056\", \"2A004\", \"97411\")");
}

/* One coordinate: a finite number of degrees within [-bound, bound]. */
static bool s_degrees (intake_errors_t *errors, const char *field, double v, int bound)
{
    if (!isfinite (v)) {
        intake_errors_add (errors, field, "format", "%s must be a finite number of degrees",
                           field);
        return false;
    }
    if (v < -bound || v > bound) {
        intake_errors_add (errors, field, "range", "%s is %g, outside -%d..%d degrees", field, v,
                           bound, bound);
        return false;
    }
    return true;
}

/* Every error names lat or lon, the one at fault: the missing one of the pair, one that
 * is not a number of degrees, else, for a point in no zone (zones NULL: not checked),
 * lat when no zone spans that latitude, lon when one does but not at that longitude. */
static void s_coordinates (intake_errors_t *errors, const intake_zones_t *zones, const char *path,
                           const Qp__V1__Coordinates *c)
{
    if (!c || (!c->has_lat && !c->has_lon))
        return;
    char lat[64], lon[64];
    s_join (lat, sizeof lat, path, "lat");
    s_join (lon, sizeof lon, path, "lon");
    if (c->has_lat != c->has_lon) {
        const char *missing = c->has_lat ? lon : lat, *given = c->has_lat ? lat : lon;
        intake_errors_add (errors, missing, "inconsistent",
                           "%s is missing: %s is given and a position needs both", missing,
                           given);
        return;
    }
    bool lat_ok = s_degrees (errors, lat, c->lat, 90);
    bool lon_ok = s_degrees (errors, lon, c->lon, 180);
    if (!lat_ok || !lon_ok || !zones || intake_zones_find (zones, c->lat, c->lon))
        return;
    if (!intake_zones_span_latitude (zones, c->lat))
        intake_errors_add (errors, lat, "range",
                           "%s %g is at no latitude of a French territory (swapped lat and "
                           "lon?)",
                           lat, c->lat);
    else
        intake_errors_add (errors, lon, "range",
                           "%s %g is outside every French territory at latitude %g (swapped "
                           "lat and lon?)",
                           lon, c->lon, c->lat);
}

static void s_enum_chosen (intake_errors_t *errors, const char *field, bool has, int value)
{
    if (!has || value == 0)
        intake_errors_add (errors, field, "required", "%s is required", field);
}

/* ---- Whole messages ---------------------------------------------------------------------- */

static void s_identity (intake_errors_t *errors, const Qp__V1__PersonIdentity *id,
                        int32_t submitted, bool have_submitted)
{
    /* Names are normalised first: a name made only of punctuation is no name. */
    char folded[INTAKE_MAX_TEXT_BYTES + 1];
    const char *names[] = {"identity.family_name", "identity.given_names"};
    const char *values[] = {id->family_name, id->given_names};
    for (int i = 0; i < 2; i++) {
        if (!s_present (values[i]))
            intake_errors_add (errors, names[i], "required", "%s is required", names[i]);
        else if (intake_utf8_valid (values[i])
                 && intake_normalise_name (values[i], folded, sizeof folded) && !*folded)
            intake_errors_add (errors, names[i], "format", "%s holds no letter", names[i]);
    }
    sodium_memzero (folded, sizeof folded);
    int32_t birth;
    if (s_date (errors, "identity.birth_date", id->birth_date, true, &birth)) {
        int32_t first = qp_date_from_civil (INTAKE_FIRST_BIRTH_YEAR, 1, 1);
        if (birth < first || (have_submitted && birth > submitted))
            intake_errors_add (errors, "identity.birth_date", "range",
                               "identity.birth_date must be between %d-01-01 and the submission "
                               "date",
                               INTAKE_FIRST_BIRTH_YEAR);
    }
}

static void s_holder (intake_errors_t *errors, const intake_zones_t *zones,
                      const Qp__V1__SubmitDossier *s, int submitted_year, int32_t submitted,
                      bool have_submitted)
{
    const Qp__V1__ProjectHolder *h = s->dossier->holder;
    if (s->identity) {
        if (h && s_present (h->person_key))
            intake_errors_add (errors, "holder.person_key", "inconsistent",
                               "give either holder.person_key or identity, not both");
        s_identity (errors, s->identity, submitted, have_submitted);
    } else if (!h || !s_present (h->person_key))
        intake_errors_add (errors, "holder.person_key", "required",
                           "holder.person_key (or an identity to derive it) is required");
    else if (!s_person_key_valid (h->person_key))
        intake_errors_add (errors, "holder.person_key", "format",
                           "holder.person_key must be a pseudonymous key: 16-128 characters "
                           "of letters, digits, '-', '_', '.', ':'");
    if (!h)
        return;
    s_address (errors, "holder.residence", h->residence);
    s_coordinates (errors, zones, "holder.residence_location", h->residence_location);
    s_code (errors, "holder.residence_qpv", h->residence_qpv, intake_qpv_code_valid,
            "a QPV code (\"QN07505I\")");
    if (h->has_birth_year
        && (h->birth_year < INTAKE_FIRST_BIRTH_YEAR || (int) h->birth_year > submitted_year))
        intake_errors_add (errors, "holder.birth_year", "range",
                           "holder.birth_year must be between %d and the submission year %d",
                           INTAKE_FIRST_BIRTH_YEAR, submitted_year);
}

static void s_business (intake_errors_t *errors, const intake_zones_t *zones,
                        const Qp__V1__Business *b, int32_t submitted, bool have_submitted)
{
    const char *commune = b ? b->insee_commune : NULL;
    const char *address_commune = b && b->address ? b->address->insee_commune : NULL;
    if (!s_present (commune) && !s_present (address_commune)) {
        intake_errors_add (errors, "business.insee_commune", "required",
                           "business.insee_commune (or business.address.insee_commune) is "
                           "required: the territory is derived from it");
    }
    if (!b)
        return;
    if (s_present (b->siret)) {
        const char *why = intake_siret_check (b->siret);
        if (why && !strcmp (why, "format"))
            intake_errors_add (errors, "business.siret", "format",
                               "business.siret must be 14 digits");
        else if (why)
            intake_errors_add (errors, "business.siret", "checksum",
                               "business.siret has a wrong check key (Luhn)");
    }
    s_code (errors, "business.legal_form", b->legal_form, intake_legal_form_valid,
            "a 4-digit INSEE legal-form code");
    s_code (errors, "business.naf_code", b->naf_code, intake_naf_code_valid,
            "a NAF rev.2 code (\"47.11B\" or \"4711B\")");
    int32_t created;
    if (s_date (errors, "business.creation_date", b->creation_date, false, &created)
        && have_submitted) {
        int y, m, d;
        qp_date_to_civil (submitted, &y, &m, &d);
        if (created > qp_date_from_civil (y + INTAKE_CREATION_LEAD_YEARS, m, d))
            intake_errors_add (errors, "business.creation_date", "inconsistent",
                               "business.creation_date is more than %d years after submitted_on",
                               INTAKE_CREATION_LEAD_YEARS);
    }
    s_amount (errors, "business.turnover_cents", b->has_turnover_cents, b->turnover_cents, false);
    s_amount (errors, "business.balance_sheet_cents", b->has_balance_sheet_cents,
              b->balance_sheet_cents, false);
    s_address (errors, "business.address", b->address);
    s_coordinates (errors, zones, "business.location", b->location);
    s_code (errors, "business.insee_commune", commune, intake_insee_commune_valid,
            "an INSEE commune code (\"75056\", \"2A004\", \"97411\")");
    if (s_present (commune) && s_present (address_commune) && strcmp (commune, address_commune))
        intake_errors_add (errors, "business.insee_commune", "inconsistent",
                           "business.insee_commune differs from business.address.insee_commune");
    s_code (errors, "business.declared_qpv", b->declared_qpv, intake_qpv_code_valid,
            "a QPV code (\"QN07505I\")");
}

static void s_project (intake_errors_t *errors, const Qp__V1__Project *p)
{
    static const Qp__V1__Project empty = QP__V1__PROJECT__INIT;
    if (!p)
        p = &empty; /* report each required field by name */
    if (!intake_errors_find (errors, "project.axis"))
        s_enum_chosen (errors, "project.axis", p->has_axis, p->axis);
    if (!intake_errors_find (errors, "project.stage"))
        s_enum_chosen (errors, "project.stage", p->has_stage, p->stage);

    bool need = s_amount (errors, "project.financing_need_cents", p->has_financing_need_cents,
                          p->financing_need_cents, true);
    bool asked = s_amount (errors, "project.amount_asked_cents", p->has_amount_asked_cents,
                           p->amount_asked_cents, true);
    bool contribution = s_amount (errors, "project.personal_contribution_cents",
                                  p->has_personal_contribution_cents,
                                  p->personal_contribution_cents, false);
    bool loan = s_amount (errors, "project.bank_loan_cents", p->has_bank_loan_cents,
                          p->bank_loan_cents, false);
    if (need && contribution && p->personal_contribution_cents > p->financing_need_cents)
        intake_errors_add (errors, "project.personal_contribution_cents", "inconsistent",
                           "project.personal_contribution_cents exceeds the financing need");
    if (need && asked && p->amount_asked_cents > p->financing_need_cents)
        intake_errors_add (errors, "project.amount_asked_cents", "inconsistent",
                           "project.amount_asked_cents exceeds the financing need");
    if (need && loan && p->bank_loan_cents > p->financing_need_cents)
        intake_errors_add (errors, "project.bank_loan_cents", "inconsistent",
                           "project.bank_loan_cents exceeds the financing need");

    s_months (errors, "project.bank_loan_months", p->has_bank_loan_months, p->bank_loan_months);
    s_months (errors, "project.honour_loan_months", p->has_honour_loan_months,
              p->honour_loan_months);
    s_months (errors, "project.deferral_months", p->has_deferral_months, p->deferral_months);
    if (p->has_bank_loan_guarantee_pct && p->bank_loan_guarantee_pct > INTAKE_MAX_GUARANTEE_PCT)
        intake_errors_add (errors, "project.bank_loan_guarantee_pct", "range",
                           "project.bank_loan_guarantee_pct must be between 0 and %d",
                           INTAKE_MAX_GUARANTEE_PCT);
    if (p->has_deferral_months && p->has_honour_loan_months
        && p->deferral_months <= INTAKE_MAX_MONTHS && p->honour_loan_months <= INTAKE_MAX_MONTHS
        && p->deferral_months > p->honour_loan_months)
        intake_errors_add (errors, "project.deferral_months", "inconsistent",
                           "project.deferral_months is longer than the honour loan itself");
}

size_t intake_validate_submission (const Qp__V1__SubmitDossier *s, intake_errors_t *errors)
{
    return intake_validate_submission_in (NULL, s, errors);
}

size_t intake_validate_submission_in (const intake_zones_t *zones, const Qp__V1__SubmitDossier *s,
                                      intake_errors_t *errors)
{
    size_t before = errors->count + errors->dropped;
    if (!s || !s->dossier) {
        intake_errors_add (errors, "dossier", "required", "the submission holds no dossier");
        return errors->count + errors->dropped - before;
    }
    const Qp__V1__Dossier *d = s->dossier;
    s_walk (&d->base, "", true, errors);
    /* The identity stops at intake (only its keyed hash goes on): unknown fields in it are
     * dropped with it, not refused. */
    if (s->identity)
        s_walk (&s->identity->base, "identity", false, errors);

    s_channel_text (errors, "channel", d->channel);
    s_channel_text (errors, "channel_key", d->channel_key);

    int32_t submitted = 0;
    bool have_submitted = false;
    if (s_date (errors, "submitted_on", d->submitted_on, true, &submitted)) {
        int32_t first, last;
        qp_date_parse (INTAKE_FIRST_SUBMISSION, &first);
        qp_date_parse (INTAKE_LAST_SUBMISSION, &last);
        if (submitted < first || submitted > last)
            intake_errors_add (errors, "submitted_on", "range",
                               "submitted_on must be between " INTAKE_FIRST_SUBMISSION
                               " and " INTAKE_LAST_SUBMISSION);
        else
            have_submitted = true;
    }
    int submitted_year = 2100, m, day;
    if (have_submitted)
        qp_date_to_civil (submitted, &submitted_year, &m, &day);

    s_holder (errors, zones, s, submitted_year, submitted, have_submitted);
    s_business (errors, zones, d->business, submitted, have_submitted);
    s_project (errors, d->project);
    if (s_present (d->territory) && !intake_territory_id_valid (d->territory))
        intake_errors_add (errors, "territory", "format",
                           "territory must be a territory id: 1-64 of a-z, 0-9, '-'");
    return errors->count + errors->dropped - before;
}

size_t intake_validate_follow_up (const Qp__V1__FollowUp *f, intake_errors_t *errors)
{
    size_t before = errors->count + errors->dropped;
    s_walk (&f->base, "", true, errors); /* stored as sent, like the dossier */
    if (!s_present (f->dossier_id))
        intake_errors_add (errors, "dossier_id", "required", "dossier_id is required");
    else if (!intake_dossier_id_valid (f->dossier_id))
        intake_errors_add (errors, "dossier_id", "format",
                           "dossier_id must be %d lower-case hex digits", QP_ID_HEX);
    if (!f->has_year)
        intake_errors_add (errors, "year", "required", "year is required");
    else if (f->year < 1 || f->year > INTAKE_MAX_FOLLOW_UP_YEAR)
        intake_errors_add (errors, "year", "range", "year must be between 1 and %d",
                           INTAKE_MAX_FOLLOW_UP_YEAR);
    int32_t days;
    s_date (errors, "reported_on", f->reported_on, true, &days);
    return errors->count + errors->dropped - before;
}
