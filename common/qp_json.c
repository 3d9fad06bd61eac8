/* JSON <-> protobuf-c driven by the descriptors, so that every message of the contract
 * (and any later one) maps without hand-written code. Everything a built message holds is
 * malloc'd in the layout protobuf_c_message_free_unpacked (msg, NULL) expects, so a message
 * half built when an error is found is freed the same way. */
#include "qp_json.h"
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 96 /* as qp_error_t.field */

#define MEMBER(type, msg, offset) (*(type *) ((uint8_t *) (msg) + (offset)))

static ProtobufCMessage *s_object_to_message (const ProtobufCMessageDescriptor *desc,
                                              const json_t *json, char *path, qp_error_t *err);

/* path + "." + name (or just name at the top); truncated to the buffer. */
static void s_path_child (char *out, const char *path, const char *name)
{
    int n = snprintf (out, PATH_MAX_LEN, "%s%s%s", path, *path ? "." : "", name);
    if (n >= PATH_MAX_LEN)
        memcpy (out + PATH_MAX_LEN - 4, "...", 4); /* said cut, not silently */
}

/* What a user wrote, quoted back short and harmless (as qp-ctl does): at most QUOTE_MAX
 * bytes of it, printable ASCII as is and any other byte (and '"', '\\') as \xNN, "..."
 * when cut. An error never repeats a whole value: it may be long, or personal. */
#define QUOTE_MAX 32
#define QUOTE_SIZE (4 * QUOTE_MAX + 4)
static void s_quote (char *out, const char *text)
{
    size_t o = 0, i = 0;
    for (; text[i] && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            out[o++] = (char) c;
        else
            o += (size_t) snprintf (out + o, QUOTE_SIZE - o, "\\x%02x", c);
    }
    if (text[i])
        memcpy (out + o, "...", 3), o += 3;
    out[o] = 0;
}

static const char *s_json_kind (const json_t *j)
{
    switch (json_typeof (j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Protobuf's JSON mapping lets integers travel as decimal strings (needed for uint64
 * above what a JSON integer carries here). */
static bool s_parse_signed (const json_t *j, int64_t *v)
{
    if (json_is_integer (j)) {
        *v = json_integer_value (j);
        return true;
    }
    if (json_is_real (j)) {
        double d = json_real_value (j);
        if (d != floor (d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return false;
        *v = (int64_t) d;
        return true;
    }
    if (json_is_string (j)) {
        const char *s = json_string_value (j);
        char *end;
        errno = 0;
        long long x = strtoll (s, &end, 10);
        if (errno || !*s || *end || *s == ' ')
            return false;
        *v = x;
        return true;
    }
    return false;
}

static bool s_parse_unsigned (const json_t *j, uint64_t *v, bool *negative)
{
    *negative = false;
    if (json_is_string (j)) {
        const char *s = json_string_value (j);
        if (*s == '-') {
            *negative = true;
            return false;
        }
        char *end;
        errno = 0;
        unsigned long long x = strtoull (s, &end, 10);
        if (errno || !*s || *end || *s == ' ' || *s == '+')
            return false;
        *v = x;
        return true;
    }
    int64_t x;
    if (!s_parse_signed (j, &x))
        return false;
    if (x < 0) {
        *negative = true;
        return false;
    }
    *v = (uint64_t) x;
    return true;
}

static bool s_parse_double (const json_t *j, double *v)
{
    if (json_is_number (j)) {
        *v = json_number_value (j);
        return true;
    }
    if (json_is_string (j)) {
        const char *s = json_string_value (j);
        if (!strcmp (s, "NaN"))
            *v = NAN;
        else if (!strcmp (s, "Infinity"))
            *v = INFINITY;
        else if (!strcmp (s, "-Infinity"))
            *v = -INFINITY;
        else
            return false;
        return true;
    }
    return false;
}

static bool s_base64_decode (const char *text, ProtobufCBinaryData *out)
{
    size_t len = strlen (text);
    uint8_t *bin = malloc (len ? len : 1);
    if (!bin)
        return false;
    /* Standard or URL-safe alphabet, padded or not: protobuf's JSON mapping accepts all. */
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_URLSAFE,
                                   sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        size_t bin_len = 0;
        const char *end = NULL;
        if (sodium_base642bin (bin, len ? len : 1, text, len, NULL, &bin_len, &end, variants[i])
                == 0
            && end == text + len) {
            out->data = bin;
            out->len = bin_len;
            return true;
        }
    }
    free (bin);
    return false;
}

/* Parses one value of field f from j into the storage at dst (a member of the message, or
 * an element of a repeated array). Returns false with err filled. */
static bool s_value_to_field (const ProtobufCFieldDescriptor *f, const json_t *j, void *dst,
                              char *path, qp_error_t *err)
{
    int64_t s;
    uint64_t u;
    double d;
    bool negative;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (!s_parse_signed (j, &s))
            goto not_integer;
        if (s < INT32_MIN || s > INT32_MAX) {
            qp_error_set (err, "invalid_field", path, "number out of range for int32");
            return false;
        }
        *(int32_t *) dst = (int32_t) s;
        return true;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (!s_parse_signed (j, &s))
            goto not_integer;
        *(int64_t *) dst = s;
        return true;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (!s_parse_unsigned (j, &u, &negative)) {
            if (negative) {
                qp_error_set (err, "invalid_field", path, "number out of range for uint32");
                return false;
            }
            goto not_integer;
        }
        if (u > UINT32_MAX) {
            qp_error_set (err, "invalid_field", path, "number out of range for uint32");
            return false;
        }
        *(uint32_t *) dst = (uint32_t) u;
        return true;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (!s_parse_unsigned (j, &u, &negative)) {
            if (negative) {
                qp_error_set (err, "invalid_field", path, "number out of range for uint64");
                return false;
            }
            goto not_integer;
        }
        *(uint64_t *) dst = u;
        return true;
    case PROTOBUF_C_TYPE_FLOAT:
        if (!s_parse_double (j, &d)) {
            qp_error_set (err, "invalid_field", path, "expected a number, got %s",
                          s_json_kind (j));
            return false;
        }
        if (isfinite (d) && fabs (d) > FLT_MAX) {
            qp_error_set (err, "invalid_field", path, "number out of range for float");
            return false;
        }
        *(float *) dst = (float) d;
        return true;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!s_parse_double (j, &d)) {
            qp_error_set (err, "invalid_field", path, "expected a number, got %s",
                          s_json_kind (j));
            return false;
        }
        *(double *) dst = d;
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean (j)) {
            qp_error_set (err, "invalid_field", path, "expected true or false, got %s",
                          s_json_kind (j));
            return false;
        }
        *(protobuf_c_boolean *) dst = json_is_true (j);
        return true;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = NULL;
        if (json_is_string (j)) {
            ev = protobuf_c_enum_descriptor_get_value_by_name (ed, json_string_value (j));
            if (!ev) {
                char quoted[QUOTE_SIZE];
                s_quote (quoted, json_string_value (j));
                qp_error_set (err, "invalid_field", path, "\"%s\" is not a %s", quoted,
                              ed->name);
                return false;
            }
        } else if (json_is_integer (j)) {
            json_int_t v = json_integer_value (j);
            if (v >= INT32_MIN && v <= INT32_MAX)
                ev = protobuf_c_enum_descriptor_get_value (ed, (int) v);
            if (!ev) {
                qp_error_set (err, "invalid_field", path, "%" JSON_INTEGER_FORMAT " is not a %s",
                              v, ed->name);
                return false;
            }
        } else {
            qp_error_set (err, "invalid_field", path, "expected a %s name, got %s", ed->name,
                          s_json_kind (j));
            return false;
        }
        *(int *) dst = ev->value;
        return true;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string (j)) {
            qp_error_set (err, "invalid_field", path, "expected a string, got %s",
                          s_json_kind (j));
            return false;
        }
        size_t len = json_string_length (j);
        /* protobuf-c strings are C strings: an embedded NUL would silently cut them. */
        if (memchr (json_string_value (j), 0, len)) {
            qp_error_set (err, "invalid_field", path, "string contains a NUL character");
            return false;
        }
        char *copy = malloc (len + 1);
        if (!copy) {
            qp_error_set (err, "internal", path, "out of memory");
            return false;
        }
        memcpy (copy, json_string_value (j), len + 1);
        *(char **) dst = copy;
        return true;
    }
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string (j)) {
            qp_error_set (err, "invalid_field", path, "expected a base64 string, got %s",
                          s_json_kind (j));
            return false;
        }
        if (!s_base64_decode (json_string_value (j), (ProtobufCBinaryData *) dst)) {
            qp_error_set (err, "invalid_field", path, "not valid base64");
            return false;
        }
        return true;
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object (j)) {
            qp_error_set (err, "invalid_field", path, "expected an object, got %s",
                          s_json_kind (j));
            return false;
        }
        ProtobufCMessage *sub = s_object_to_message (f->descriptor, j, path, err);
        *(ProtobufCMessage **) dst = sub;
        return sub != NULL;
    }
    }
    qp_error_set (err, "invalid_field", path, "unsupported field type");
    return false;

not_integer:
    qp_error_set (err, "invalid_field", path, "expected an integer, got %s", s_json_kind (j));
    return false;
}

static size_t s_element_size (const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof (float);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof (double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof (protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof (int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof (char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof (ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof (ProtobufCMessage *);
    }
    return 0;
}

static bool s_set_field (ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, const json_t *j,
                         char *path, qp_error_t *err)
{
    void *member = (uint8_t *) msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (!json_is_array (j)) {
            qp_error_set (err, "invalid_field", path, "expected an array, got %s",
                          s_json_kind (j));
            return false;
        }
        size_t n = json_array_size (j);
        if (n == 0)
            return true;
        size_t size = s_element_size (f);
        uint8_t *arr = calloc (n, size);
        if (!arr) {
            qp_error_set (err, "internal", path, "out of memory");
            return false;
        }
        /* Count set up front over zeroed elements: a failure half-way still frees. */
        *(void **) member = arr;
        MEMBER (size_t, msg, f->quantifier_offset) = n;
        for (size_t i = 0; i < n; i++) {
            char item[PATH_MAX_LEN];
            /* A path cut at PATH_MAX_LEN still names the field well enough. */
            if (snprintf (item, sizeof item, "%s[%zu]", path, i) >= (int) sizeof item)
                item[sizeof item - 1] = 0;
            const json_t *e = json_array_get (j, i);
            if (json_is_null (e)) {
                qp_error_set (err, "invalid_field", item, "null is not allowed in an array");
                return false;
            }
            if (!s_value_to_field (f, e, arr + i * size, item, err))
                return false;
        }
        return true;
    }
    if (!s_value_to_field (f, j, member, path, err))
        return false;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        MEMBER (uint32_t, msg, f->quantifier_offset) = f->id;
    else if (f->quantifier_offset && (f->label == PROTOBUF_C_LABEL_OPTIONAL
                                      || f->label == PROTOBUF_C_LABEL_NONE))
        MEMBER (protobuf_c_boolean, msg, f->quantifier_offset) = 1;
    return true;
}

static ProtobufCMessage *s_object_to_message (const ProtobufCMessageDescriptor *desc,
                                              const json_t *json, char *path, qp_error_t *err)
{
    ProtobufCMessage *msg = malloc (desc->sizeof_message);
    if (!msg) {
        qp_error_set (err, "internal", path, "out of memory");
        return NULL;
    }
    desc->message_init (msg);
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) json, key, value) {
        char child[PATH_MAX_LEN];
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name (desc, key);
        if (!f) {
            /* The name is the user's: quoted short, in the path as in the message. */
            char quoted[QUOTE_SIZE];
            s_quote (quoted, key);
            s_path_child (child, path, quoted);
            qp_error_set (err, "invalid_field", child, "unknown field \"%s\" of %s", quoted,
                          desc->name);
            goto failed;
        }
        s_path_child (child, path, key);
        if (json_is_null (value))
            continue; /* the mapping's null: field absent */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            && MEMBER (uint32_t, msg, f->quantifier_offset) != 0) {
            qp_error_set (err, "invalid_field", child, "another member of its oneof is set");
            goto failed;
        }
        /* The sub-message (or value) lands in the message before any error, so the
         * single free below releases it. */
        if (!s_set_field (msg, f, value, child, err)) {
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                MEMBER (uint32_t, msg, f->quantifier_offset) = f->id;
            goto failed;
        }
    }
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REQUIRED && !json_object_get (json, f->name)) {
            char child[PATH_MAX_LEN];
            s_path_child (child, path, f->name);
            qp_error_set (err, "invalid_field", child, "required field missing");
            goto failed;
        }
    }
    return msg;

failed:
    protobuf_c_message_free_unpacked (msg, NULL);
    return NULL;
}

ProtobufCMessage *qp_json_to_message (const ProtobufCMessageDescriptor *desc, const json_t *json,
                                      qp_error_t *err)
{
    if (!json_is_object (json)) {
        qp_error_set (err, "bad_payload", NULL, "expected a JSON object for %s, got %s",
                      desc->name, json ? s_json_kind (json) : "nothing");
        return NULL;
    }
    char path[PATH_MAX_LEN] = "";
    return s_object_to_message (desc, json, path, err);
}

ProtobufCMessage *qp_json_parse_message (const ProtobufCMessageDescriptor *desc, const char *text,
                                         qp_error_t *err)
{
    json_error_t jerr;
    json_t *json = json_loads (text ? text : "", JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (!json) {
        qp_error_set (err, "bad_payload", NULL, "not JSON: %s (line %d, column %d)", jerr.text,
                      jerr.line, jerr.column);
        return NULL;
    }
    ProtobufCMessage *msg = qp_json_to_message (desc, json, err);
    json_decref (json);
    return msg;
}

/* ---- protobuf -> JSON ---------------------------------------------------------------- */

static json_t *s_double_to_json (double d)
{
    if (isnan (d))
        return json_string ("NaN");
    if (isinf (d))
        return json_string (d > 0 ? "Infinity" : "-Infinity");
    return json_real (d);
}

static json_t *s_field_value_to_json (const ProtobufCFieldDescriptor *f, const void *src)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer (*(const int32_t *) src);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer (*(const uint32_t *) src);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer (*(const int64_t *) src);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t u = *(const uint64_t *) src;
        if (u <= INT64_MAX)
            return json_integer ((json_int_t) u);
        /* Beyond a JSON integer here: a decimal string, which the parser accepts back. */
        char buf[24];
        snprintf (buf, sizeof buf, "%" PRIu64, u);
        return json_string (buf);
    }
    case PROTOBUF_C_TYPE_FLOAT:
        return s_double_to_json (*(const float *) src);
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_double_to_json (*(const double *) src);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean (*(const protobuf_c_boolean *) src);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *) src;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value (f->descriptor, v);
        return ev ? json_string (ev->name) : json_integer (v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) src;
        /* Invalid UTF-8 (protobuf-c does not check) would make jansson refuse the string. */
        json_t *j = json_string (s ? s : "");
        return j ? j : json_string ("\xEF\xBF\xBD");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = src;
        size_t size = sodium_base64_ENCODED_LEN (b->len, sodium_base64_VARIANT_ORIGINAL);
        char *text = malloc (size);
        if (!text)
            return NULL;
        sodium_bin2base64 (text, size, b->len ? b->data : (const uint8_t *) "", b->len,
                           sodium_base64_VARIANT_ORIGINAL);
        json_t *j = json_string (text);
        free (text);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *) src;
        return sub ? qp_json_from_message (sub) : json_object ();
    }
    }
    return json_null ();
}

/* Whether a non-repeated field is present in msg. */
static bool s_present (const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const void *member = (const uint8_t *) msg + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return MEMBER (uint32_t, msg, f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *) member;
        if (f->label == PROTOBUF_C_LABEL_NONE)
            return s && *s;
        return s != NULL;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(ProtobufCMessage *const *) member != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        return MEMBER (protobuf_c_boolean, msg, f->quantifier_offset);
    /* proto3 scalar without presence: present when not zero. */
    size_t size = s_element_size (f);
    if (f->type == PROTOBUF_C_TYPE_BYTES)
        return ((const ProtobufCBinaryData *) member)->len > 0;
    static const uint8_t zero[16];
    return memcmp (member, zero, size) != 0;
}

json_t *qp_json_from_message (const ProtobufCMessage *msg)
{
    json_t *obj = json_object ();
    if (!msg || !obj)
        return obj;
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const uint8_t *member = (const uint8_t *) msg + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = MEMBER (size_t, msg, f->quantifier_offset);
            if (n == 0)
                continue;
            const uint8_t *arr = *(const uint8_t *const *) member;
            size_t size = s_element_size (f);
            json_t *a = json_array ();
            for (size_t k = 0; k < n; k++)
                json_array_append_new (a, s_field_value_to_json (f, arr + k * size));
            json_object_set_new (obj, f->name, a);
        } else if (s_present (msg, f))
            json_object_set_new (obj, f->name, s_field_value_to_json (f, member));
    }
    return obj;
}
