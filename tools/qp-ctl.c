/* qp-ctl: the command-line client of the stack. Submits dossiers (pipelined, replies
 * matched to requests by message id), asks a dossier's status, prints reports, waits for
 * the stack to close a number of dossiers, and shows the bus's routing table. */
#include "qp_bus.h"
#include "qp_config.h"
#include "qp_date.h"
#include "qp/v1/eligibility.pb-c.h"
#include "qp_explain.h"
#include "qp_json.h"
#include "qp_log.h"
#include "qp_message.h"
#include "qp_report_html.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SUMMARY                                                                                    \
    "Command-line client of the Quartiers Productifs stack.\n\n"                                   \
    "Commands:\n"                                                                                  \
    "  submit FILE|-            one JSON Dossier (or {\"dossier\":..,\"identity\":..}) per line\n" \
    "                           to intake; one JSON result line per input line on stdout\n"        \
    "  status ID                a dossier's state and history (exit 1 if not found)\n"             \
    "  explain ID               every scheme and criterion of its eligibility decision, why\n"    \
    "                           (--format json: the EligibilityDecided message)\n"               \
    "  report                   indicators per territory from evaluation (--territory, --from,\n" \
    "                           --until, --axis, --scheme, --breakdowns; --format table|json|csv;\n" \
    "                           --html FILE writes the dashboard page)\n"                          \
    "  phase TERRITORY PHASE    records a territory's phase (LABELLISATION, INCUBATION,\n"        \
    "                           ACCELERATION, EVALUATION) --started-on D [--ended-on D]\n"        \
    "                           [--diagnostic-on D] [--roadmap-on D] [--note TEXT]\n"             \
    "  wait --closed N          polls the report until N dossiers are closed\n"                    \
    "  bus-status               the bus's routing table (JSON)"

typedef struct {
    qp_common_config_t c;
    long timeout; /* seconds; 0: the command's default */
    long window;
    long closed;
    long interval_ms;
    char *territory;
    char *format;
    char *from, *until, *axis, *scheme, *html; /* report filters and dashboard file */
    bool breakdowns;
    char *started_on, *ended_on, *diagnostic_on, *roadmap_on, *note; /* phase */
} ctl_t;

/* ---- one request, one reply ------------------------------------------------------------ */

/* The id a reply answers: the Error's in_reply_to, else the envelope's causation. */
static const char *s_reply_to (const qp_message_t *msg)
{
    if (msg->descriptor == &qp__v1__error__descriptor) {
        const Qp__V1__Error *e = (const Qp__V1__Error *)msg->payload;
        if (e->in_reply_to && *e->in_reply_to)
            return e->in_reply_to;
    }
    const char *cause = msg->envelope->causation_id;
    return cause ? cause : "";
}

/* Reads frame sets until a decoded DELIVER answers id, or timeout_ms passes. */
static int s_await (qp_bus_client_t *client, const char *id, int timeout_ms, qp_message_t *out)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (client), NULL);
    int64_t deadline = zclock_mono () + timeout_ms;
    int rc = -1;
    while (rc != 0 && !zsys_interrupted) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0 || !zpoller_wait (poller, (int)left))
            break;
        qp_bus_frame_t f;
        if (qp_bus_client_recv (client, &f))
            continue;
        if (!strcmp (f.kind, QPB_ERROR))
            qp_log_warn ("bus_error", "the bus answered %s: %s", f.error_code ? f.error_code : "?",
                         f.text ? f.text : "");
        else if (!strcmp (f.kind, QPB_DELIVER)) {
            qp_error_t err;
            if (qp_message_decode (f.type, f.envelope, out, &err) == 0) {
                if (!strcmp (s_reply_to (out), id))
                    rc = 0;
                else
                    qp_message_clear (out);
            } else
                qp_log_warn ("bad_reply", "%s: %s", err.code, err.message);
        }
        qp_bus_frame_clear (&f);
    }
    zpoller_destroy (&poller);
    return rc;
}

/* Sends a query to service and waits for its answer. Queries carry the wall clock and
 * pid in their discriminator: each one is a new question, not a replay of the last. */
static int s_query (qp_bus_client_t *client, const char *service, const ProtobufCMessage *query,
                    int timeout_ms, qp_message_t *out)
{
    char disc[96];
    static unsigned counter;
    snprintf (disc, sizeof disc, "qp-ctl\n%d\n%lld\n%u", (int)getpid (), (long long)qp_now_ms (),
              counter++);
    qp_meta_t meta = {.producer = "qp-ctl", .discriminator = disc};
    char id[QP_ID_HEX + 1];
    zmsg_t *frames = qp_message_build (query, &meta, id);
    if (qp_bus_client_send (client, service, &frames))
        return -1;
    return s_await (client, id, timeout_ms, out);
}

static void s_print_error (const qp_message_t *msg)
{
    const Qp__V1__Error *e = (const Qp__V1__Error *)msg->payload;
    fprintf (stderr, "qp-ctl: %s: %s%s%s\n", e->code ? e->code : "error",
             e->message ? e->message : "", e->field && *e->field ? " at " : "",
             e->field ? e->field : "");
}

/* Envelopes inside a reply (type + base64 payload) are shown decoded. */
static void s_unpack_nested (json_t *json)
{
    if (json_is_array (json)) {
        size_t i;
        json_t *v;
        json_array_foreach (json, i, v) s_unpack_nested (v);
        return;
    }
    if (!json_is_object (json))
        return;
    const char *type = json_string_value (json_object_get (json, "type"));
    const char *b64 = json_string_value (json_object_get (json, "payload"));
    const ProtobufCMessageDescriptor *desc = qp_message_lookup_type (type);
    if (desc && b64) {
        size_t cap = strlen (b64), len = 0;
        unsigned char *bin = malloc (cap + 1);
        assert (bin);
        if (sodium_base642bin (bin, cap, b64, cap, NULL, &len, NULL,
                               sodium_base64_VARIANT_ORIGINAL) == 0) {
            ProtobufCMessage *m = protobuf_c_message_unpack (desc, NULL, len, bin);
            if (m) {
                json_object_set_new (json, "payload", qp_json_from_message (m));
                protobuf_c_message_free_unpacked (m, NULL);
            }
        }
        free (bin);
    }
    const char *key;
    json_t *v;
    json_object_foreach (json, key, v) s_unpack_nested (v);
}

static void s_print_pretty (const ProtobufCMessage *msg)
{
    json_t *json = qp_json_from_message (msg);
    s_unpack_nested (json);
    json_dumpf (json, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
    fputc ('\n', stdout);
    json_decref (json);
}

/* ---- submit ---------------------------------------------------------------------------- */

typedef struct {
    long line;
    int64_t sent_ms;
    char id[QP_ID_HEX + 1];
    void *in_order; /* handle in the send-order list */
} request_t;

typedef struct {
    FILE *out;
    zhashx_t *pending; /* id -> zlistx_t of request_t (same id twice: same key twice) */
    zlistx_t *order;   /* request_t, oldest first: timeouts */
    size_t in_flight;
    long lines, sent;
    long accepted, duplicates, rejected, errors, unanswered, unparsed;
} submit_t;

static void s_emit (submit_t *s, json_t *line)
{
    json_dumpf (line, s->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc ('\n', s->out);
    json_decref (line);
}

/* At most max bytes of text into out, printable ASCII as is and any other byte as \xNN,
 * "..." when cut: what a user wrote can be quoted back, short and harmless. */
static void s_escape (char *out, size_t size, const char *text, size_t max)
{
    size_t o = 0, i = 0;
    for (; text[i] && i < max && o + 5 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf (out + o, size - o, "\\x%02x", c);
    }
    if (text[i] && o + 4 < size)
        memcpy (out + o, "...", 3), o += 3;
    out[o] = 0;
}

static void s_emit_error (submit_t *s, long line, const char *code, const char *message,
                          const char *field)
{
    json_t *e = json_pack ("{s:s}", "code", code);
    char safe[400];
    json_t *m = json_string (message ? message : "");
    if (!m) { /* cut inside a UTF-8 sequence: said in escapes rather than lost */
        s_escape (safe, sizeof safe, message, sizeof safe);
        m = json_string (safe);
    }
    json_object_set_new (e, "message", m);
    if (field && *field) {
        json_t *f = json_string (field);
        if (!f) {
            s_escape (safe, sizeof safe, field, sizeof safe);
            f = json_string (safe);
        }
        json_object_set_new (e, "field", f);
    }
    s_emit (s, json_pack ("{s:i, s:o}", "line", (json_int_t)line, "error", e));
}

/* The enum field at a qp_json error path ("dossier.project.axis", "a[2].b") of desc, and
 * the JSON value found there; NULL when the path leads elsewhere. */
static const ProtobufCFieldDescriptor *s_enum_at (const ProtobufCMessageDescriptor *desc,
                                                  const json_t *json, const char *path,
                                                  const json_t **value)
{
    const ProtobufCFieldDescriptor *f = NULL;
    while (desc && *path) {
        char name[128];
        size_t len = strcspn (path, ".[");
        if (len == 0 || len >= sizeof name)
            return NULL;
        memcpy (name, path, len), name[len] = 0;
        path += len;
        f = protobuf_c_message_descriptor_get_field_by_name (desc, name);
        if (!f)
            return NULL;
        json = json_object_get (json, name);
        if (*path == '[') {
            char *end;
            unsigned long i = strtoul (path + 1, &end, 10);
            if (*end != ']')
                return NULL;
            json = json_array_get (json, i);
            path = end + 1;
        }
        if (*path == '.')
            path++;
        desc = f->type == PROTOBUF_C_TYPE_MESSAGE ? f->descriptor : NULL;
    }
    if (*path || !f || f->type != PROTOBUF_C_TYPE_ENUM)
        return NULL;
    *value = json;
    return f;
}

/* An enum field's error says what was given (quoted short and escaped) and every value
 * allowed, instead of qp_json's message that quotes the whole string. */
static void s_enum_error (const ProtobufCMessageDescriptor *desc, const json_t *json,
                          qp_error_t *err, char *out, size_t size)
{
    const json_t *value = NULL;
    const ProtobufCFieldDescriptor *f = s_enum_at (desc, json, err->field, &value);
    snprintf (out, size, "%s", err->message);
    if (!f)
        return;
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    size_t o;
    if (json_is_string (value)) {
        char quoted[160];
        s_escape (quoted, sizeof quoted, json_string_value (value), 32);
        o = (size_t)snprintf (out, size, "unknown value \"%s\"", quoted);
    } else
        o = (size_t)snprintf (out, size, "%s", err->message);
    const char *sep = "; one of ";
    for (unsigned i = 0; i < ed->n_values && o < size; i++) {
        /* The zero value only says "not given". */
        if (ed->values[i].value == 0)
            continue;
        o += (size_t)snprintf (out + o, size - o, "%s%s", sep, ed->values[i].name);
        sep = ", ";
    }
}

static void s_list_destroy (void **item)
{
    zlistx_t *list = *item;
    zlistx_destroy (&list);
    *item = NULL;
}

/* Parses one line and sends it; a line that does not parse is reported and skipped. */
static void s_submit_line (submit_t *s, qp_bus_client_t *client, const char *text, long line)
{
    json_error_t jerr;
    json_t *json = json_loads (text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json || !json_is_object (json)) {
        char why[256];
        snprintf (why, sizeof why, "%s (column %d)", json ? "not a JSON object" : jerr.text,
                  json ? 1 : jerr.column);
        s_emit_error (s, line, "bad_json", why, NULL);
        s->unparsed++;
        json_decref (json);
        return;
    }
    qp_error_t err;
    memset (&err, 0, sizeof err);
    Qp__V1__SubmitDossier wrapper = QP__V1__SUBMIT_DOSSIER__INIT;
    ProtobufCMessage *parsed = NULL;
    Qp__V1__SubmitDossier *submit = NULL;
    if (json_object_get (json, "dossier")) {
        parsed = qp_json_to_message (&qp__v1__submit_dossier__descriptor, json, &err);
        submit = (Qp__V1__SubmitDossier *)parsed;
    } else {
        parsed = qp_json_to_message (&qp__v1__dossier__descriptor, json, &err);
        wrapper.dossier = (Qp__V1__Dossier *)parsed;
        submit = &wrapper;
    }
    if (!parsed) {
        char message[1024];
        s_enum_error (json_object_get (json, "dossier") ? &qp__v1__submit_dossier__descriptor
                                                          : &qp__v1__dossier__descriptor,
                      json, &err, message, sizeof message);
        json_decref (json);
        s_emit_error (s, line, err.code[0] ? err.code : "invalid_field", message, err.field);
        s->unparsed++;
        return;
    }
    json_decref (json);
    const Qp__V1__Dossier *d = submit->dossier;
    char disc[512] = "";
    qp_meta_t meta = {.producer = "qp-ctl"};
    if (d) {
        snprintf (disc, sizeof disc, "%s\n%s", d->channel ? d->channel : "",
                  d->channel_key ? d->channel_key : "");
        int32_t days;
        if (d->submitted_on && qp_date_parse (d->submitted_on, &days))
            meta.event_time_ms = qp_date_to_ms (days);
    }
    meta.discriminator = disc;
    request_t *req = calloc (1, sizeof *req);
    assert (req);
    req->line = line;
    req->sent_ms = zclock_mono ();
    zmsg_t *frames = qp_message_build (&submit->base, &meta, req->id);
    protobuf_c_message_free_unpacked (parsed, NULL);
    if (qp_bus_client_send (client, "intake", &frames)) {
        s_emit_error (s, line, "send_failed", "could not hand the message to the bus", NULL);
        s->errors++;
        free (req);
        return;
    }
    zlistx_t *same = zhashx_lookup (s->pending, req->id);
    if (!same) {
        same = zlistx_new ();
        zhashx_insert (s->pending, req->id, same);
    }
    zlistx_add_end (same, req);
    req->in_order = zlistx_add_end (s->order, req);
    s->in_flight++;
    s->sent++;
}

static request_t *s_take (submit_t *s, const char *id)
{
    zlistx_t *same = zhashx_lookup (s->pending, id);
    if (!same)
        return NULL;
    request_t *req = zlistx_first (same);
    zlistx_delete (same, zlistx_cursor (same));
    if (zlistx_size (same) == 0)
        zhashx_delete (s->pending, id);
    zlistx_delete (s->order, req->in_order);
    s->in_flight--;
    return req;
}

static void s_handle_reply (submit_t *s, qp_message_t *msg)
{
    request_t *req = s_take (s, s_reply_to (msg));
    if (!req) {
        qp_log_warn ("unmatched_reply", "%s answering %s matches no request in flight",
                     msg->descriptor->name, s_reply_to (msg));
        return;
    }
    json_int_t line = req->line;
    free (req);
    if (msg->descriptor == &qp__v1__submit_dossier_reply__descriptor) {
        const Qp__V1__SubmitDossierReply *r = (const Qp__V1__SubmitDossierReply *)msg->payload;
        json_t *out = json_pack ("{s:I, s:b}", "line", line, "accepted", r->accepted);
        if (r->accepted) {
            json_object_set_new (out, "dossier_id",
                                 json_string (r->dossier_id ? r->dossier_id : ""));
            json_object_set_new (out, "duplicate", json_boolean (r->duplicate));
            s->accepted++;
            s->duplicates += r->duplicate;
        } else {
            json_t *errors = json_array ();
            for (size_t i = 0; i < r->n_errors; i++) {
                const Qp__V1__FieldError *fe = r->errors[i];
                json_array_append_new (errors, json_pack ("{s:s, s:s, s:s}", "field",
                                                          fe->field ? fe->field : "", "code",
                                                          fe->code ? fe->code : "", "message",
                                                          fe->message ? fe->message : ""));
            }
            json_object_set_new (out, "errors", errors);
            s->rejected++;
        }
        s_emit (s, out);
    } else if (msg->descriptor == &qp__v1__error__descriptor) {
        const Qp__V1__Error *e = (const Qp__V1__Error *)msg->payload;
        s_emit_error (s, line, e->code ? e->code : "error", e->message, e->field);
        s->errors++;
    } else {
        s_emit_error (s, line, "unexpected_reply", msg->descriptor->name, NULL);
        s->errors++;
    }
}

static void s_drain (submit_t *s, qp_bus_client_t *client)
{
    zsock_t *sock = qp_bus_client_socket (client);
    while (zsock_events (sock) & ZMQ_POLLIN) {
        qp_bus_frame_t f;
        if (qp_bus_client_recv (client, &f))
            continue;
        if (!strcmp (f.kind, QPB_DELIVER)) {
            qp_message_t msg;
            qp_error_t err;
            if (qp_message_decode (f.type, f.envelope, &msg, &err) == 0) {
                s_handle_reply (s, &msg);
                qp_message_clear (&msg);
            } else
                qp_log_warn ("bad_reply", "%s: %s", err.code, err.message);
        } else if (!strcmp (f.kind, QPB_ERROR))
            qp_log_warn ("bus_error", "the bus answered %s: %s", f.error_code ? f.error_code : "?",
                         f.text ? f.text : "");
        qp_bus_frame_clear (&f);
    }
}

static int s_submit (ctl_t *cfg, const char *path)
{
    FILE *in = strcmp (path, "-") ? fopen (path, "r") : stdin;
    if (!in) {
        fprintf (stderr, "qp-ctl: cannot read %s: %s\n", path, strerror (errno));
        return 2;
    }
    qp_bus_client_t *client = qp_bus_client_new (cfg->c.bus_work);
    if (!client) {
        fprintf (stderr, "qp-ctl: bad bus endpoint %s\n", cfg->c.bus_work);
        if (in != stdin)
            fclose (in);
        return 2;
    }
    submit_t s = {.out = stdout};
    s.pending = zhashx_new ();
    zhashx_set_destructor (s.pending, s_list_destroy);
    s.order = zlistx_new ();
    int64_t timeout_ms = (cfg->timeout ? cfg->timeout : 30) * 1000;
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (client), NULL);
    int64_t started = zclock_mono ();
    char *text = NULL;
    size_t cap = 0;
    bool eof = false, gave_up = false;
    while (!zsys_interrupted) {
        while (!eof && s.in_flight < (size_t)cfg->window) {
            ssize_t n = getline (&text, &cap, in);
            if (n < 0) {
                eof = true;
                break;
            }
            s.lines++;
            while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
                text[--n] = 0;
            if (n > 0)
                s_submit_line (&s, client, text, s.lines);
            /* Collect replies as they come, so a long input never stalls the bus. */
            if ((s.lines & 63) == 0)
                s_drain (&s, client);
        }
        if (eof && s.in_flight == 0)
            break;
        if (zpoller_wait (poller, 200))
            s_drain (&s, client);
        /* A request unanswered for the timeout: the stack is not answering; stop. */
        request_t *oldest = zlistx_first (s.order);
        if (oldest && zclock_mono () - oldest->sent_ms > timeout_ms) {
            gave_up = true;
            break;
        }
    }
    while ((zlistx_first (s.order))) {
        request_t *req = s_take (&s, ((request_t *)zlistx_first (s.order))->id);
        char why[96];
        snprintf (why, sizeof why, "no reply within %lld s", (long long)(timeout_ms / 1000));
        if (zsys_interrupted)
            s_emit_error (&s, req->line, "interrupted", "interrupted before the reply", NULL);
        else
            s_emit_error (&s, req->line, "timeout", why, NULL);
        s.unanswered++;
        free (req);
    }
    long unsent = 0;
    if (gave_up || zsys_interrupted) {
        while (getline (&text, &cap, in) >= 0)
            unsent++;
    }
    fflush (stdout);
    double secs = (zclock_mono () - started) / 1000.0;
    long answered = s.accepted + s.rejected + s.errors;
    fprintf (stderr,
             "qp-ctl submit: %ld lines, %ld accepted (%ld duplicates), %ld rejected, %ld errors, "
             "%ld unparsable, %ld unanswered, %ld not sent; %.0f replies/s\n",
             s.lines, s.accepted, s.duplicates, s.rejected, s.errors, s.unparsed, s.unanswered,
             unsent, secs > 0 ? answered / secs : 0.0);
    free (text);
    if (in != stdin)
        fclose (in);
    zpoller_destroy (&poller);
    zlistx_destroy (&s.order);
    zhashx_destroy (&s.pending);
    qp_bus_client_destroy (&client);
    return s.unanswered || unsent || zsys_interrupted ? 1 : 0;
}

/* ---- status, report, wait -------------------------------------------------------------- */

static int s_status (ctl_t *cfg, const char *dossier_id)
{
    qp_bus_client_t *client = qp_bus_client_new (cfg->c.bus_work);
    if (!client)
        return 2;
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = (char *)dossier_id;
    qp_message_t reply;
    int rc = 1;
    if (s_query (client, "intake", &q.base, (cfg->timeout ? cfg->timeout : 10) * 1000, &reply)) {
        fprintf (stderr, "qp-ctl: no answer from intake\n");
        goto cleanup;
    }
    if (reply.descriptor == &qp__v1__dossier_status_reply__descriptor) {
        const Qp__V1__DossierStatusReply *r = (const Qp__V1__DossierStatusReply *)reply.payload;
        s_print_pretty (reply.payload);
        if (r->found)
            rc = 0;
        else
            fprintf (stderr, "qp-ctl: dossier %s not found\n", dossier_id);
    } else if (reply.descriptor == &qp__v1__error__descriptor)
        s_print_error (&reply);
    qp_message_clear (&reply);
cleanup:
    qp_bus_client_destroy (&client);
    return rc;
}

/* The eligibility decision of a dossier, for people (text) or programs (json): eligibility
 * decides the stored dossier again with every criterion explained (the stored decision is
 * compact) and says whether that is the decision it stored. */
static int s_explain (ctl_t *cfg, const char *dossier_id)
{
    qp_bus_client_t *client = qp_bus_client_new (cfg->c.bus_work);
    if (!client)
        return 2;
    Qp__V1__EligibilityExplainQuery q = QP__V1__ELIGIBILITY_EXPLAIN_QUERY__INIT;
    q.dossier_id = (char *)dossier_id;
    qp_message_t reply;
    int rc = 1;
    if (s_query (client, "eligibility", &q.base, (cfg->timeout ? cfg->timeout : 10) * 1000,
                 &reply)) {
        fprintf (stderr, "qp-ctl: no answer from eligibility\n");
        goto cleanup;
    }
    if (reply.descriptor == &qp__v1__eligibility_explain_reply__descriptor) {
        const Qp__V1__EligibilityExplainReply *r =
            (const Qp__V1__EligibilityExplainReply *)reply.payload;
        const ProtobufCEnumValue *state =
            protobuf_c_enum_descriptor_get_value (&qp__v1__dossier_state__descriptor, r->state);
        if (!r->found)
            fprintf (stderr, "qp-ctl: dossier %s not found\n", dossier_id);
        else if (!r->explained)
            fprintf (stderr, "qp-ctl: dossier %s is %s: no eligibility decision yet\n", dossier_id,
                     state ? state->name : "?");
        else if (cfg->format && !strcmp (cfg->format, "json")) {
            s_print_pretty (reply.payload);
            rc = 0;
        } else {
            char *text = qp_explain_text (r->explained, true);
            fputs (text, stdout);
            free (text);
            if (!r->matches_stored)
                printf ("\nWARNING: this is not the decision stored for the dossier: %s\n",
                        r->note ? r->note : "the catalogue changed since");
            rc = 0;
        }
    } else if (reply.descriptor == &qp__v1__error__descriptor)
        s_print_error (&reply);
    qp_message_clear (&reply);
cleanup:
    qp_bus_client_destroy (&client);
    return rc;
}

/* Cents as euros with thin grouping: "1 234 567.89". */
static void s_euros (int64_t cents, char *out, size_t size)
{
    char digits[32];
    bool neg = cents < 0;
    uint64_t v = neg ? (uint64_t)(-(cents + 1)) + 1 : (uint64_t)cents;
    int n = snprintf (digits, sizeof digits, "%llu", (unsigned long long)(v / 100));
    char grouped[32]; /* 17 digits and 5 spaces at most: out (48) always holds it */
    int g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ' ';
        grouped[g++] = digits[i];
    }
    grouped[g] = 0;
    snprintf (out, size, "%s%s.%02u", neg ? "-" : "", grouped, (unsigned)(v % 100));
}

static int s_fetch_report (qp_bus_client_t *client, ctl_t *cfg, int timeout_ms, qp_message_t *reply)
{
    Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
    q.territory = cfg->territory;
    if (s_query (client, "evaluation", &q.base, timeout_ms, reply))
        return -1;
    if (reply->descriptor != &qp__v1__report_reply__descriptor) {
        if (reply->descriptor == &qp__v1__error__descriptor)
            s_print_error (reply);
        qp_message_clear (reply);
        return -1;
    }
    return 0;
}

/* Prints the indicators: one row per territory and the total. */
static void s_indicator_header (bool csv)
{
    if (csv)
        printf ("territory,submitted,eligible,not_eligible,funding_requested,approved,funded,"
                "declined,unfunded,closed,committed_euros,honour_loan_euros,bank_loan_euros,"
                "leverage_ratio,jobs_planned,survival_y1_pct,survival_y2_pct,survival_y3_pct,"
                "women_pct,under_30_pct,rejected_at_intake\n");
    else
        printf ("%-22s %9s %9s %9s %9s %9s %9s %9s %9s %16s %6s %6s %6s %6s\n", "territory",
                "submitted", "refused", "eligible", "requested", "funded", "declined", "unfunded",
                "closed", "committed (€)", "lever", "jobs", "surv3", "women%");
}

static void s_pct (char *out, size_t size, protobuf_c_boolean has, double v)
{
    if (has)
        snprintf (out, size, "%.2f", v);
    else
        snprintf (out, size, "%s", "");
}

static void s_indicator_row (const Qp__V1__Figures *f, const char *name, bool csv)
{
    char lever[16], s1[16], s2[16], s3[16], women[16], young[16];
    s_pct (lever, sizeof lever, f->has_leverage_ratio, f->leverage_ratio);
    s_pct (s1, sizeof s1, f->has_survival_y1_pct, f->survival_y1_pct);
    s_pct (s2, sizeof s2, f->has_survival_y2_pct, f->survival_y2_pct);
    s_pct (s3, sizeof s3, f->has_survival_y3_pct, f->survival_y3_pct);
    s_pct (women, sizeof women, f->has_women_pct, f->women_pct);
    s_pct (young, sizeof young, f->has_under_30_pct, f->under_30_pct);
    if (csv) {
        printf ("%s,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%lld.%02lld,%lld.%02lld,"
                "%lld.%02lld,%s,%llu,%s,%s,%s,%s,%s,%llu\n",
                name, (unsigned long long)f->submitted, (unsigned long long)f->eligible,
                (unsigned long long)f->not_eligible, (unsigned long long)f->funding_requested,
                (unsigned long long)f->approved, (unsigned long long)f->funded,
                (unsigned long long)f->declined, (unsigned long long)f->unfunded,
                (unsigned long long)f->closed, (long long)(f->committed_cents / 100),
                (long long)llabs (f->committed_cents % 100), (long long)(f->honour_loan_cents / 100),
                (long long)llabs (f->honour_loan_cents % 100), (long long)(f->bank_loan_cents / 100),
                (long long)llabs (f->bank_loan_cents % 100), lever,
                (unsigned long long)f->jobs_planned, s1, s2, s3, women, young,
                (unsigned long long)f->rejected_at_intake);
        return;
    }
    char euros[48];
    s_euros (f->committed_cents, euros, sizeof euros);
    printf ("%-22s %9llu %9llu %9llu %9llu %9llu %9llu %9llu %9llu %16s %6s %6llu %6s %6s\n", name,
            (unsigned long long)f->submitted, (unsigned long long)f->rejected_at_intake,
            (unsigned long long)f->eligible,
            (unsigned long long)f->funding_requested, (unsigned long long)f->funded,
            (unsigned long long)f->declined, (unsigned long long)f->unfunded,
            (unsigned long long)f->closed, euros, lever, (unsigned long long)f->jobs_planned, s3,
            women);
}

static int s_report (ctl_t *cfg)
{
    if (strcmp (cfg->format, "table") && strcmp (cfg->format, "json") &&
        strcmp (cfg->format, "csv")) {
        fprintf (stderr, "qp-ctl: --format is table, json or csv\n");
        return 2;
    }
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.territory = cfg->territory;
    q.from = cfg->from;
    q.until = cfg->until;
    q.scheme_id = cfg->scheme;
    q.has_breakdowns = true, q.breakdowns = cfg->breakdowns;
    if (cfg->axis) {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value_by_name (&qp__v1__axis__descriptor, cfg->axis);
        if (!v || !v->value) {
            fprintf (stderr, "qp-ctl: --axis is ENTREPRENEURSHIP, RETAIL_AND_CRAFTS or "
                             "SETTING_UP_ACTIVITY\n");
            return 2;
        }
        q.has_axis = true, q.axis = (Qp__V1__Axis)v->value;
    }
    int32_t day;
    if ((cfg->from && !qp_date_parse (cfg->from, &day)) ||
        (cfg->until && !qp_date_parse (cfg->until, &day))) {
        fprintf (stderr, "qp-ctl: --from and --until are dates YYYY-MM-DD\n");
        return 2;
    }
    qp_bus_client_t *client = qp_bus_client_new (cfg->c.bus_work);
    if (!client)
        return 2;
    qp_message_t reply;
    int rc = 1;
    if (s_query (client, "evaluation", &q.base, (cfg->timeout ? cfg->timeout : 10) * 1000, &reply)) {
        fprintf (stderr, "qp-ctl: no report from evaluation\n");
        qp_bus_client_destroy (&client);
        return 1;
    }
    if (reply.descriptor != &qp__v1__indicator_report__descriptor) {
        if (reply.descriptor == &qp__v1__error__descriptor)
            s_print_error (&reply);
        else
            fprintf (stderr, "qp-ctl: unexpected %s from evaluation\n", reply.descriptor->name);
        goto cleanup;
    }
    const Qp__V1__IndicatorReport *r = (const Qp__V1__IndicatorReport *)reply.payload;
    rc = 0;
    if (cfg->html) {
        FILE *out = fopen (cfg->html, "w");
        if (!out || qp_report_html_write (out, r) != 0) {
            fprintf (stderr, "qp-ctl: cannot write %s\n", cfg->html);
            rc = 1;
        }
        if (out && fclose (out) != 0)
            rc = 1;
    }
    Qp__V1__Figures zero = QP__V1__FIGURES__INIT;
    const Qp__V1__Figures *total = r->total && r->total->figures ? r->total->figures : &zero;
    bool csv = !strcmp (cfg->format, "csv");
    if (!strcmp (cfg->format, "json"))
        s_print_pretty (reply.payload);
    else {
        s_indicator_header (csv);
        for (size_t i = 0; i < r->n_territories; i++)
            s_indicator_row (r->territories[i]->figures, r->territories[i]->territory, csv);
        s_indicator_row (total, "total", csv);
        if (!csv) {
            for (size_t i = 0; i < r->n_envelopes; i++) {
                const Qp__V1__EnvelopeUse *u = r->envelopes[i];
                printf ("envelope %s: %.2f %% of the amount, %.2f %% of the projects ceiling\n",
                        u->scheme_id, u->consumed_pct, u->projects_pct);
            }
            for (size_t i = 0; i < r->n_targets; i++) {
                const Qp__V1__TargetProgress *t = r->targets[i];
                printf ("target %s: %.0f of %.0f by %s (%.2f %%)%s%s\n", t->id, t->current,
                        t->target, t->by ? t->by : "", t->progress_pct,
                        t->reached_on ? ", at this pace reached on " : "",
                        t->reached_on ? t->reached_on : "");
            }
        }
    }
cleanup:
    qp_message_clear (&reply);
    qp_bus_client_destroy (&client);
    return rc;
}

/* Records a territory's phase with evaluation. */
static int s_phase (ctl_t *cfg, const char *territory, const char *phase)
{
    Qp__V1__TerritoryPhase p = QP__V1__TERRITORY_PHASE__INIT;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name (&qp__v1__phase__descriptor, phase);
    p.territory = (char *)territory;
    if (v)
        p.has_phase = true, p.phase = (Qp__V1__Phase)v->value;
    p.started_on = cfg->started_on;
    p.ended_on = cfg->ended_on;
    p.diagnostic_on = cfg->diagnostic_on;
    p.roadmap_on = cfg->roadmap_on;
    p.note = cfg->note;
    qp_bus_client_t *client = qp_bus_client_new (cfg->c.bus_work);
    if (!client)
        return 2;
    qp_message_t reply;
    int rc = 1;
    if (s_query (client, "evaluation", &p.base, (cfg->timeout ? cfg->timeout : 10) * 1000, &reply)) {
        fprintf (stderr, "qp-ctl: no answer from evaluation\n");
        qp_bus_client_destroy (&client);
        return 1;
    }
    if (reply.descriptor == &qp__v1__territory_phase_reply__descriptor) {
        const Qp__V1__TerritoryPhaseReply *r = (const Qp__V1__TerritoryPhaseReply *)reply.payload;
        if (r->accepted) {
            printf ("%s: %s recorded from %s\n", territory, phase, cfg->started_on);
            rc = 0;
        } else
            fprintf (stderr, "qp-ctl: phase refused: %s: %s\n", r->field ? r->field : "",
                     r->reason ? r->reason : "");
    } else if (reply.descriptor == &qp__v1__error__descriptor)
        s_print_error (&reply);
    qp_message_clear (&reply);
    qp_bus_client_destroy (&client);
    return rc;
}

static int s_wait (ctl_t *cfg)
{
    if (cfg->closed <= 0) {
        fprintf (stderr, "qp-ctl: wait needs --closed N (N > 0)\n");
        return 2;
    }
    qp_bus_client_t *client = qp_bus_client_new (cfg->c.bus_work);
    if (!client)
        return 2;
    int64_t timeout_ms = (cfg->timeout ? cfg->timeout : 600) * 1000;
    int64_t deadline = zclock_mono () + timeout_ms;
    int64_t last_print = 0;
    long long last_closed = -1;
    int rc = 1;
    while (!zsys_interrupted) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        qp_message_t reply;
        if (s_fetch_report (client, cfg, (int)(left < 5000 ? left : 5000), &reply) == 0) {
            const Qp__V1__ReportReply *r = (const Qp__V1__ReportReply *)reply.payload;
            long long closed = r->total ? (long long)r->total->closed : 0;
            long long submitted = r->total ? (long long)r->total->submitted : 0;
            qp_message_clear (&reply);
            if (closed != last_closed || zclock_mono () - last_print > 5000) {
                fprintf (stderr, "qp-ctl wait: %lld/%ld closed (%lld submitted)\n", closed,
                         cfg->closed, submitted);
                last_print = zclock_mono ();
                last_closed = closed;
            }
            if (closed >= cfg->closed) {
                rc = 0;
                break;
            }
        } else if (zclock_mono () - last_print > 5000) {
            fprintf (stderr, "qp-ctl wait: no report from evaluation yet\n");
            last_print = zclock_mono ();
        }
        zclock_sleep ((int)cfg->interval_ms);
    }
    if (rc)
        fprintf (stderr, "qp-ctl wait: gave up after %lld s: fewer than %ld dossiers closed\n",
                 (long long)(timeout_ms / 1000), cfg->closed);
    qp_bus_client_destroy (&client);
    return rc;
}

static int s_bus_status (ctl_t *cfg)
{
    char *text = qp_bus_status (cfg->c.bus_work, (cfg->timeout ? cfg->timeout : 2) * 1000);
    if (!text) {
        fprintf (stderr, "qp-ctl: no answer from the bus at %s\n", cfg->c.bus_work);
        return 1;
    }
    json_t *json = json_loads (text, 0, NULL);
    if (json) {
        json_dumpf (json, stdout, JSON_INDENT (2) | JSON_PRESERVE_ORDER);
        fputc ('\n', stdout);
        json_decref (json);
    } else
        printf ("%s\n", text);
    free (text);
    return 0;
}

/* ---- command line ---------------------------------------------------------------------- */

int main (int argc, char **argv)
{
    ctl_t cfg;
    memset (&cfg, 0, sizeof cfg);
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&cfg.c),
        {"timeout", QP_CFG_INT, "0",
         "seconds to wait for replies (0: 30 submit, 10 status/report, 600 wait)", &cfg.timeout, 0,
         86400},
        {"window", QP_CFG_INT, "1000", "submit: requests in flight at most", &cfg.window, 1,
         100000},
        {"territory", QP_CFG_STRING, NULL, "report/wait: one territory id", &cfg.territory, 0, 0},
        {"format", QP_CFG_STRING, "table", "report: table|json|csv", &cfg.format, 0, 0},
        {"from", QP_CFG_STRING, NULL, "report: period start YYYY-MM-DD (month precision)", &cfg.from, 0, 0},
        {"until", QP_CFG_STRING, NULL, "report: period end YYYY-MM-DD (month precision)", &cfg.until, 0, 0},
        {"axis", QP_CFG_STRING, NULL, "report: ENTREPRENEURSHIP|RETAIL_AND_CRAFTS|SETTING_UP_ACTIVITY", &cfg.axis, 0, 0},
        {"scheme", QP_CFG_STRING, NULL, "report: one scheme id (its funnel and money)", &cfg.scheme, 0, 0},
        {"breakdowns", QP_CFG_BOOL, "false", "report: per QPV, axis, scheme, agency, network, month (json)", &cfg.breakdowns, 0, 0},
        {"html", QP_CFG_STRING, NULL, "report: also write the dashboard page to this file", &cfg.html, 0, 0},
        {"started-on", QP_CFG_STRING, NULL, "phase: first day", &cfg.started_on, 0, 0},
        {"ended-on", QP_CFG_STRING, NULL, "phase: last day (absent: running)", &cfg.ended_on, 0, 0},
        {"diagnostic-on", QP_CFG_STRING, NULL, "phase: incubation diagnostic date", &cfg.diagnostic_on, 0, 0},
        {"roadmap-on", QP_CFG_STRING, NULL, "phase: incubation roadmap date", &cfg.roadmap_on, 0, 0},
        {"note", QP_CFG_STRING, NULL, "phase: a note (no personal data)", &cfg.note, 0, 0},
        {"closed", QP_CFG_INT, "0", "wait: closed dossiers to wait for", &cfg.closed, 0,
         1000000000},
        {"interval-ms", QP_CFG_INT, "500", "wait: polling interval", &cfg.interval_ms, 10, 60000},
        {NULL},
    };
    /* Positional words (command, file, id) are taken out; options go to the table. */
    char *words[3] = {NULL, NULL, NULL};
    int nwords = 0;
    char *rest[argc + 1];
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp (a, "--", 2) || (a[0] == '-' && a[1] == 'h' && !a[2])) {
            rest[nrest++] = argv[i];
            if (strchr (a, '='))
                continue;
            for (qp_config_option_t *o = options; o->name; o++)
                if (!strcmp (a + 2, o->name) && o->type != QP_CFG_BOOL && i + 1 < argc) {
                    rest[nrest++] = argv[++i];
                    break;
                }
        } else if (nwords < 3)
            words[nwords++] = argv[i];
        else {
            fprintf (stderr, "qp-ctl: unexpected argument \"%s\" (see --help)\n", a);
            return 2;
        }
    }
    rest[nrest] = NULL;
    int rc = qp_config_parse ("qp-ctl COMMAND", SUMMARY, options, nrest, rest);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    zsys_set_linger (0);
    qp_log_init ("ctl", cfg.c.log_level);
    const char *cmd = words[0] ? words[0] : "";
    if (!strcmp (cmd, "submit") && nwords == 2)
        rc = s_submit (&cfg, words[1]);
    else if (!strcmp (cmd, "status") && nwords == 2)
        rc = s_status (&cfg, words[1]);
    else if (!strcmp (cmd, "explain") && nwords == 2)
        rc = s_explain (&cfg, words[1]);
    else if (!strcmp (cmd, "report") && nwords == 1)
        rc = s_report (&cfg);
    else if (!strcmp (cmd, "phase") && nwords == 3)
        rc = s_phase (&cfg, words[1], words[2]);
    else if (!strcmp (cmd, "wait") && nwords == 1)
        rc = s_wait (&cfg);
    else if (!strcmp (cmd, "bus-status") && nwords == 1)
        rc = s_bus_status (&cfg);
    else {
        fprintf (stderr, "qp-ctl: usage: qp-ctl submit FILE|- | status ID | explain ID | report | wait "
                         "--closed N | bus-status (see --help)\n");
        rc = 2;
    }
    qp_config_free (options);
    return rc;
}
