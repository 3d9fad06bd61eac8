/* Dossier store: keys, state names and the guarded transitions of common/lua. */
#include "qp_store.h"
#include "qp_log.h"
#include <assert.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static bool s_reply_ok (redisReply *r, const char *what)
{
    if (!r) {
        qp_log_error ("redis_unreachable", "%s: Redis unreachable", what);
        return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        qp_log_error ("redis_error", "%s: %s", what, r->str);
        return false;
    }
    return true;
}

const char *qp_store_state_name (Qp__V1__DossierState state)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__dossier_state__descriptor, state);
    return v ? v->name : "STATE_UNSPECIFIED";
}

Qp__V1__DossierState qp_store_state_parse (const char *name)
{
    const ProtobufCEnumValue *v =
        name ? protobuf_c_enum_descriptor_get_value_by_name (&qp__v1__dossier_state__descriptor,
                                                              name)
             : NULL;
    return v ? (Qp__V1__DossierState) v->value : QP__V1__DOSSIER_STATE__STATE_UNSPECIFIED;
}

bool qp_store_state_terminal (Qp__V1__DossierState state)
{
    return state >= QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
}

void qp_store_dossier_id (char out[QP_ID_HEX + 1], const char *channel, const char *key)
{
    /* "d" + 31 hex: a dossier id never collides with a message id of the same inputs. */
    qp_message_make_id (out, "qp.dossier", channel, key);
    out[0] = 'd';
}

static void s_key (char *out, size_t size, const char *id, const char *suffix)
{
    snprintf (out, size, "qp:{%s}:%s", id, suffix);
}

static void s_pending_key (char *out, size_t size, Qp__V1__DossierState state)
{
    snprintf (out, size, "qp:pending:%s", qp_store_state_name (state));
}

/* Notes every dossier's history repeats, stored by number (Transition.stored_note, issue
 * 8). Numbers are stored: append, never reorder. A note that changes wording is simply
 * stored in full. */
static const char *const s_stored_notes[] = {
    NULL,
    "accepted by intake",
    "eligible to at least one scheme",
    "funding plan: amounts reserved, partners to ask",
};
#define STORED_NOTES (sizeof s_stored_notes / sizeof s_stored_notes[0])
/* The note is the hash's final_reason written by the same step (a closing step). */
#define STORED_NOTE_FINAL_REASON 100

/* Packs a Transition as a stored history entry (one entry of a packed History, so the
 * scripts append it to the field h by concatenation) into a malloc'd buffer. final_reason:
 * the final_reason the same step writes (NULL none). */
static uint8_t *s_history_entry (Qp__V1__DossierState from, Qp__V1__DossierState to,
                                 int64_t at_ms, const char *message_id, const char *note,
                                 const qp_store_field_t *final_reason, size_t *len)
{
    Qp__V1__Transition t = QP__V1__TRANSITION__INIT;
    t.has_from = from != QP__V1__DOSSIER_STATE__STATE_UNSPECIFIED;
    t.from = from;
    t.has_to = true;
    t.to = to;
    t.has_at_ms = true;
    t.at_ms = at_ms;
    t.message_id = (char *) message_id;
    t.note = (char *) note;
    /* A message id (32 lowercase hex digits, qp_message_make_id) as its 16 bytes. */
    uint8_t id_bytes[QP_ID_HEX / 2];
    if (message_id && strlen (message_id) == QP_ID_HEX &&
        strspn (message_id, "0123456789abcdef") == QP_ID_HEX) {
        for (size_t i = 0; i < sizeof id_bytes; i++)
            sscanf (message_id + 2 * i, "%2hhx", &id_bytes[i]);
        t.has_stored_message_id = true;
        t.stored_message_id.data = id_bytes, t.stored_message_id.len = sizeof id_bytes;
        t.message_id = NULL;
    }
    for (uint32_t k = 1; note && k < STORED_NOTES; k++)
        if (!strcmp (note, s_stored_notes[k]))
            t.has_stored_note = true, t.stored_note = k, t.note = NULL;
    if (note && *note && final_reason && final_reason->len == strlen (note) &&
        !memcmp (final_reason->value, note, final_reason->len))
        t.has_stored_note = true, t.stored_note = STORED_NOTE_FINAL_REASON, t.note = NULL;
    Qp__V1__Transition *entries[] = {&t};
    Qp__V1__History h = QP__V1__HISTORY__INIT;
    h.n_entries = 1, h.entries = entries;
    *len = qp__v1__history__get_packed_size (&h);
    uint8_t *buf = malloc (*len ? *len : 1);
    assert (buf);
    qp__v1__history__pack (&h, buf);
    return buf;
}

uint8_t *qp_store_history_pack (const Qp__V1__Transition *t, size_t *len)
{
    return s_history_entry (t->has_from ? t->from : QP__V1__DOSSIER_STATE__STATE_UNSPECIFIED,
                            t->to, t->at_ms, t->message_id, t->note, NULL, len);
}

/* A stored entry as it was written: its note and message id put back. */
static void s_history_restore (Qp__V1__Transition *t, const char *final_reason)
{
    if (t->has_stored_note) { /* the note it stands for, as written */
        const char *note = t->stored_note < STORED_NOTES ? s_stored_notes[t->stored_note]
                           : t->stored_note == STORED_NOTE_FINAL_REASON ? final_reason
                                                                        : NULL;
        if (note && !t->note)
            t->note = strdup (note);
        t->has_stored_note = false, t->stored_note = 0;
    }
    if (t->has_stored_message_id) { /* back to its 32 hex digits */
        if (!t->message_id && t->stored_message_id.len == QP_ID_HEX / 2) {
            t->message_id = malloc (QP_ID_HEX + 1);
            assert (t->message_id);
            for (size_t k = 0; k < QP_ID_HEX / 2; k++)
                snprintf (t->message_id + 2 * k, 3, "%02x", t->stored_message_id.data[k]);
        }
        free (t->stored_message_id.data);
        t->stored_message_id.data = NULL, t->stored_message_id.len = 0;
        t->has_stored_message_id = false;
    }
}

/* Reads a script's {code, state} answer. */
static qp_store_result_t s_result (redisReply *r, Qp__V1__DossierState *state, const char *what)
{
    if (!s_reply_ok (r, what))
        return QP_STORE_ERROR;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        qp_log_error ("redis_error", "%s: unexpected reply shape", what);
        return QP_STORE_ERROR;
    }
    if (state && r->element[1]->type == REDIS_REPLY_STRING)
        *state = qp_store_state_parse (r->element[1]->str);
    return (qp_store_result_t) r->element[0]->integer;
}

/* The outbox part of a script's arguments: deadline, counts, events, acks. */
static size_t s_outbox_args (const char **args, size_t *lens, char *deadline, size_t dsize,
                             char *ne, char *na, const qp_store_blob_t *events, size_t n_events,
                             const qp_store_blob_t *acks, size_t n_acks)
{
    snprintf (deadline, dsize, "%lld", (long long) (qp_now_ms () + QP_STORE_OUTBOX_GRACE_MS));
    snprintf (ne, 24, "%zu", n_events);
    snprintf (na, 24, "%zu", n_acks);
    size_t k = 0;
    args[k] = deadline, lens[k++] = strlen (deadline);
    args[k] = ne, lens[k++] = strlen (ne);
    args[k] = na, lens[k++] = strlen (na);
    for (size_t i = 0; i < n_events; i++)
        args[k] = events[i].data, lens[k++] = events[i].len;
    for (size_t i = 0; i < n_acks; i++)
        args[k] = acks[i].data, lens[k++] = acks[i].len;
    return k;
}

/* A creation's script call, built once (keys and args point into it: do not move it). */
typedef struct {
    char k_d[64], k_h[64], k_p[64], deadline[24], time_s[24], ob_deadline[24], ne[24], na[24];
    const char *keys[4];
    uint8_t *hist, *packed;
    const char **args;
    size_t *lens;
    qp_redis_call_t call;
} create_call_t;

static void s_create_build (create_call_t *c, const char *id, const Qp__V1__Dossier *dossier,
                            const char *territory, int64_t event_time_ms, const char *message_id,
                            const qp_store_blob_t *events, size_t n_events,
                            const qp_store_blob_t *acks, size_t n_acks)
{
    bool outbox = n_events || n_acks;
    s_key (c->k_d, sizeof c->k_d, id, "d");
    s_key (c->k_h, sizeof c->k_h, id, "h");
    s_pending_key (c->k_p, sizeof c->k_p, QP__V1__DOSSIER_STATE__RECEIVED);
    snprintf (c->deadline, sizeof c->deadline, "%lld",
              (long long) (qp_now_ms () + QP_STORE_LEASE_MS));
    snprintf (c->time_s, sizeof c->time_s, "%lld", (long long) event_time_ms);

    size_t hlen, dlen = qp__v1__dossier__get_packed_size (dossier);
    c->hist = s_history_entry (0, QP__V1__DOSSIER_STATE__RECEIVED, event_time_ms, message_id,
                               "accepted by intake", NULL, &hlen);
    c->packed = malloc (dlen ? dlen : 1);
    assert (c->packed);
    qp__v1__dossier__pack (dossier, c->packed);

    /* channel, channel_key and submitted_on are read from the packed dossier: not
     * repeated as fields since issue 8 (a record stored before keeps them). */
    const char *fields[] = {"territory",
                            territory ? territory : "",
                            "event_time_ms",
                            c->time_s,
                            "source_msg",
                            message_id ? message_id : "",
                            "dossier",
                            (const char *) c->packed};
    size_t n_fields = sizeof fields / sizeof fields[0];
    size_t n = 3 + (outbox ? 3 + n_events + n_acks : 0) + n_fields;
    c->args = malloc (n * sizeof *c->args);
    c->lens = malloc (n * sizeof *c->lens);
    assert (c->args && c->lens);
    const char **args = c->args;
    size_t *lens = c->lens;
    size_t k = 0;
    args[k] = id, lens[k++] = strlen (id);
    args[k] = c->deadline, lens[k++] = strlen (c->deadline);
    args[k] = (const char *) c->hist, lens[k++] = hlen; /* binary */
    if (outbox)
        k += s_outbox_args (args + k, lens + k, c->ob_deadline, sizeof c->ob_deadline, c->ne,
                            c->na, events, n_events, acks, n_acks);
    for (size_t i = 0; i < n_fields; i++) /* the packed dossier (last) is binary */
        args[k] = fields[i], lens[k++] = i == n_fields - 1 ? dlen : strlen (fields[i]);
    c->keys[0] = c->k_d, c->keys[1] = c->k_h, c->keys[2] = c->k_p;
    c->keys[3] = QP_STORE_OUTBOX_KEY;
    c->call = (qp_redis_call_t){QP_LUA_DOSSIER_CREATE, outbox ? 4 : 3, c->keys, (int) n, c->args,
                                c->lens};
}

static void s_create_free (create_call_t *c)
{
    free (c->hist);
    free (c->packed);
    free (c->args);
    free (c->lens);
}

qp_store_result_t qp_store_create_with_events (qp_redis_t *r, const char *id,
                                               const Qp__V1__Dossier *dossier,
                                               const char *territory, int64_t event_time_ms,
                                               const char *message_id,
                                               const qp_store_blob_t *events, size_t n_events,
                                               const qp_store_blob_t *acks, size_t n_acks,
                                               Qp__V1__DossierState *state)
{
    create_call_t c;
    s_create_build (&c, id, dossier, territory, event_time_ms, message_id, events, n_events, acks,
                    n_acks);
    redisReply *reply = qp_redis_script (r, c.call.script, c.call.nkeys, c.call.keys,
                                         c.call.nargs, c.call.args, c.call.arglens);
    qp_store_result_t rc = s_result (reply, state, "dossier_create");
    if (reply)
        freeReplyObject (reply);
    s_create_free (&c);
    return rc;
}

size_t qp_store_creates (qp_redis_t *r, qp_store_creation_t *creations, size_t n,
                         const qp_store_blob_t *acks, size_t n_acks)
{
    if (!n)
        return 0;
    create_call_t *c = malloc (n * sizeof *c);
    qp_redis_call_t *calls = malloc (n * sizeof *calls);
    redisReply **replies = malloc (n * sizeof *replies);
    assert (c && calls && replies);
    for (size_t i = 0; i < n; i++) {
        qp_store_creation_t *x = &creations[i];
        /* The acks ride with the first creation: removed once, whatever the others do. */
        s_create_build (&c[i], x->id, x->dossier, x->territory, x->event_time_ms, x->message_id,
                        x->events, x->n_events, i ? NULL : acks, i ? 0 : n_acks);
        calls[i] = c[i].call;
    }
    /* Redis runs the scripts one after the other: a second creation of the same id in
     * the batch finds the first's hash and answers ALREADY, as it would sequentially. */
    qp_redis_scripts (r, calls, n, replies);
    size_t applied = 0;
    for (size_t i = 0; i < n; i++) {
        creations[i].state = 0;
        creations[i].result = s_result (replies[i], &creations[i].state, "dossier_create");
        applied += creations[i].result == QP_STORE_APPLIED;
        if (replies[i])
            freeReplyObject (replies[i]);
        s_create_free (&c[i]);
    }
    free (c), free (calls), free (replies);
    return applied;
}

qp_store_result_t qp_store_create (qp_redis_t *r, const char *id, const Qp__V1__Dossier *dossier,
                                   const char *territory, int64_t event_time_ms,
                                   const char *message_id, Qp__V1__DossierState *state)
{
    return qp_store_create_with_events (r, id, dossier, territory, event_time_ms, message_id,
                                        NULL, 0, NULL, 0, state);
}

/* A transition's script call, built once (keys and args point into it: do not move it). */
typedef struct {
    char k_d[64], k_h[64], k_from[64], k_to[64], deadline[24], ob_deadline[24], ne[24], na[24];
    const char *keys[5];
    uint8_t *hist;
    const char **args;
    size_t *lens;
    qp_redis_call_t call;
} transition_call_t;

static void s_transition_build (transition_call_t *c, const char *id,
                                Qp__V1__DossierState expected, Qp__V1__DossierState next,
                                int64_t at_ms, const char *message_id, const char *note,
                                const qp_store_field_t *fields, size_t n_fields,
                                const qp_store_blob_t *events, size_t n_events,
                                const qp_store_blob_t *acks, size_t n_acks)
{
    bool outbox = n_events || n_acks;
    s_key (c->k_d, sizeof c->k_d, id, "d");
    s_key (c->k_h, sizeof c->k_h, id, "h");
    s_pending_key (c->k_from, sizeof c->k_from, expected);
    s_pending_key (c->k_to, sizeof c->k_to, next);
    c->deadline[0] = 0;
    if (!qp_store_state_terminal (next))
        snprintf (c->deadline, sizeof c->deadline, "%lld",
                  (long long) (qp_now_ms () + QP_STORE_LEASE_MS));
    size_t hlen;
    const qp_store_field_t *final_reason = NULL;
    for (size_t i = 0; i < n_fields; i++)
        if (!strcmp (fields[i].name, "final_reason"))
            final_reason = &fields[i];
    c->hist = s_history_entry (expected, next, at_ms, message_id, note, final_reason, &hlen);

    size_t n = 5 + (outbox ? 3 + n_events + n_acks : 0) + 2 * n_fields;
    c->args = malloc (n * sizeof *c->args);
    c->lens = malloc (n * sizeof *c->lens);
    assert (c->args && c->lens);
    const char **args = c->args;
    size_t *lens = c->lens;
    args[0] = id;
    args[1] = qp_store_state_name (expected);
    args[2] = qp_store_state_name (next);
    args[3] = c->deadline;
    args[4] = (const char *) c->hist;
    for (size_t i = 0; i < 4; i++)
        lens[i] = strlen (args[i]);
    lens[4] = hlen;
    size_t k = 5;
    if (outbox)
        k += s_outbox_args (args + k, lens + k, c->ob_deadline, sizeof c->ob_deadline, c->ne,
                            c->na, events, n_events, acks, n_acks);
    for (size_t i = 0; i < n_fields; i++) {
        args[k] = fields[i].name, lens[k++] = strlen (fields[i].name);
        args[k] = fields[i].value, lens[k++] = fields[i].len;
    }
    c->keys[0] = c->k_d, c->keys[1] = c->k_h, c->keys[2] = c->k_from, c->keys[3] = c->k_to;
    c->keys[4] = QP_STORE_OUTBOX_KEY;
    c->call = (qp_redis_call_t){QP_LUA_DOSSIER_TRANSITION, outbox ? 5 : 4, c->keys, (int) n,
                                c->args, c->lens};
}

static void s_transition_free (transition_call_t *c)
{
    free (c->hist);
    free (c->args);
    free (c->lens);
}

qp_store_result_t qp_store_transition_with_events (
    qp_redis_t *r, const char *id, Qp__V1__DossierState expected, Qp__V1__DossierState next,
    int64_t at_ms, const char *message_id, const char *note, const qp_store_field_t *fields,
    size_t n_fields, const qp_store_blob_t *events, size_t n_events, const qp_store_blob_t *acks,
    size_t n_acks, Qp__V1__DossierState *state)
{
    transition_call_t c;
    s_transition_build (&c, id, expected, next, at_ms, message_id, note, fields, n_fields, events,
                        n_events, acks, n_acks);
    redisReply *reply = qp_redis_script (r, c.call.script, c.call.nkeys, c.call.keys,
                                         c.call.nargs, c.call.args, c.call.arglens);
    qp_store_result_t rc = s_result (reply, state, "dossier_transition");
    if (reply)
        freeReplyObject (reply);
    s_transition_free (&c);
    return rc;
}

size_t qp_store_transitions (qp_redis_t *r, qp_store_step_t *steps, size_t n,
                             const qp_store_blob_t *acks, size_t n_acks)
{
    if (!n)
        return 0;
    transition_call_t *c = malloc (n * sizeof *c);
    qp_redis_call_t *calls = malloc (n * sizeof *calls);
    redisReply **replies = malloc (n * sizeof *replies);
    assert (c && calls && replies);
    for (size_t i = 0; i < n; i++) {
        qp_store_step_t *s = &steps[i];
        /* The acks ride with the first step: removed once, whatever the others do. */
        s_transition_build (&c[i], s->id, s->expected, s->next, s->at_ms, s->message_id, s->note,
                            s->fields, s->n_fields, s->events, s->n_events, i ? NULL : acks,
                            i ? 0 : n_acks);
        calls[i] = c[i].call;
    }
    qp_redis_scripts (r, calls, n, replies);
    size_t applied = 0;
    for (size_t i = 0; i < n; i++) {
        steps[i].state = 0;
        steps[i].result = s_result (replies[i], &steps[i].state, "dossier_transition");
        applied += steps[i].result == QP_STORE_APPLIED;
        if (replies[i])
            freeReplyObject (replies[i]);
        s_transition_free (&c[i]);
    }
    free (c), free (calls), free (replies);
    return applied;
}

qp_store_result_t qp_store_transition (qp_redis_t *r, const char *id,
                                       Qp__V1__DossierState expected, Qp__V1__DossierState next,
                                       int64_t at_ms, const char *message_id, const char *note,
                                       const qp_store_field_t *fields, size_t n_fields,
                                       Qp__V1__DossierState *state)
{
    return qp_store_transition_with_events (r, id, expected, next, at_ms, message_id, note,
                                            fields, n_fields, NULL, 0, NULL, 0, state);
}

char *qp_store_get (qp_redis_t *r, const char *id, const char *field, size_t *len)
{
    char k_d[64];
    s_key (k_d, sizeof k_d, id, "d");
    redisReply *reply = qp_redis_command (r, "HGET %s %s", k_d, field);
    char *out = NULL;
    if (s_reply_ok (reply, "dossier_get") && reply->type == REDIS_REPLY_STRING) {
        out = malloc (reply->len + 1);
        assert (out);
        memcpy (out, reply->str, reply->len);
        out[reply->len] = 0;
        if (len)
            *len = reply->len;
    }
    if (reply)
        freeReplyObject (reply);
    return out;
}

int qp_store_get_fields (qp_redis_t *r, const char *id, const char *const *names, size_t n,
                         char **values, size_t *lens)
{
    char k_d[64];
    s_key (k_d, sizeof k_d, id, "d");
    const char *argv[n + 2];
    argv[0] = "HMGET";
    argv[1] = k_d;
    for (size_t i = 0; i < n; i++) {
        argv[2 + i] = names[i];
        values[i] = NULL;
        if (lens)
            lens[i] = 0;
    }
    redisReply *reply = qp_redis_argv (r, (int) n + 2, argv, NULL);
    int rc = -1;
    if (s_reply_ok (reply, "dossier_get") && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == n) {
        for (size_t i = 0; i < n; i++) {
            redisReply *v = reply->element[i];
            if (v->type != REDIS_REPLY_STRING)
                continue;
            values[i] = malloc (v->len + 1);
            assert (values[i]);
            memcpy (values[i], v->str, v->len);
            values[i][v->len] = 0;
            if (lens)
                lens[i] = v->len;
        }
        rc = 0;
    }
    if (reply)
        freeReplyObject (reply);
    return rc;
}

uint8_t *qp_store_decision_pack (const Qp__V1__EligibilityDecided *e, size_t *len)
{
    /* Shallow copies: each version points past the scheme id inside the original. */
    Qp__V1__EligibilityDecided stored = *e;
    Qp__V1__SchemeDecision *copies = calloc (e->n_decisions + 1, sizeof *copies);
    Qp__V1__SchemeDecision **ptrs = calloc (e->n_decisions + 1, sizeof *ptrs);
    assert (copies && ptrs);
    for (size_t i = 0; i < e->n_decisions; i++) {
        const Qp__V1__SchemeDecision *d = e->decisions[i];
        copies[i] = *d;
        size_t n = d->scheme_id ? strlen (d->scheme_id) : 0;
        /* Only a version "ID-..." is shortened, so a stored "-..." is always one. */
        if (n && d->catalogue_version && !strncmp (d->catalogue_version, d->scheme_id, n) &&
            d->catalogue_version[n] == '-')
            copies[i].catalogue_version = d->catalogue_version + n;
        ptrs[i] = &copies[i];
    }
    stored.decisions = ptrs;
    *len = qp__v1__eligibility_decided__get_packed_size (&stored);
    uint8_t *buf = malloc (*len ? *len : 1);
    assert (buf);
    qp__v1__eligibility_decided__pack (&stored, buf);
    free (copies);
    free (ptrs);
    return buf;
}

void qp_store_decision_expand (Qp__V1__EligibilityDecided *e)
{
    for (size_t i = 0; e && i < e->n_decisions; i++) {
        Qp__V1__SchemeDecision *d = e->decisions[i];
        if (!d->scheme_id || !d->catalogue_version || d->catalogue_version[0] != '-')
            continue;
        size_t n = strlen (d->scheme_id), v = strlen (d->catalogue_version);
        char *full = malloc (n + v + 1);
        assert (full);
        memcpy (full, d->scheme_id, n);
        memcpy (full + n, d->catalogue_version, v + 1);
        free (d->catalogue_version);
        d->catalogue_version = full;
    }
}

static char *s_dup_field (redisReply *hash, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < hash->elements; i += 2)
        if (!strcmp (hash->element[i]->str, name)) {
            redisReply *v = hash->element[i + 1];
            char *out = malloc (v->len + 1);
            assert (out);
            memcpy (out, v->str, v->len);
            out[v->len] = 0;
            if (len)
                *len = v->len;
            return out;
        }
    return NULL;
}

int qp_store_status (qp_redis_t *r, const char *id, Qp__V1__DossierStatusReply *reply)
{
    qp__v1__dossier_status_reply__init (reply);
    char k_d[64], k_h[64];
    s_key (k_d, sizeof k_d, id, "d");
    s_key (k_h, sizeof k_h, id, "h");
    redisReply *hash = qp_redis_command (r, "HGETALL %s", k_d);
    if (!s_reply_ok (hash, "dossier_status") || hash->type != REDIS_REPLY_ARRAY) {
        if (hash)
            freeReplyObject (hash);
        return -1;
    }
    reply->has_found = true;
    reply->found = hash->elements > 0;
    reply->dossier_id = strdup (id);
    if (!reply->found) {
        freeReplyObject (hash);
        return 0;
    }
    char *state = s_dup_field (hash, "state", NULL);
    reply->has_state = true;
    reply->state = qp_store_state_parse (state);
    free (state);
    reply->territory = s_dup_field (hash, "territory", NULL);
    size_t len;
    char *elig = s_dup_field (hash, "eligibility", &len);
    if (elig)
        reply->eligibility = qp__v1__eligibility_decided__unpack (NULL, len, (uint8_t *) elig);
    qp_store_decision_expand (reply->eligibility);
    free (elig);
    char *settled = s_dup_field (hash, "settlement", &len);
    if (settled) {
        Qp__V1__FundingSettled *s =
            qp__v1__funding_settled__unpack (NULL, len, (uint8_t *) settled);
        if (s && !s->reason) /* stored without it: the hash's final_reason (issue 8) */
            s->reason = s_dup_field (hash, "final_reason", NULL);
        if (s) {
            reply->settlements = malloc (sizeof *reply->settlements);
            reply->settlements[0] = s;
            reply->n_settlements = 1;
        }
    }
    free (settled);
    char *final_reason = s_dup_field (hash, "final_reason", NULL);
    /* The history: a list for a dossier stored before issue 8 (older entries), then the
     * hash's field h. */
    Qp__V1__History *stored = NULL;
    char *packed_h = s_dup_field (hash, "h", &len);
    if (packed_h)
        stored = qp__v1__history__unpack (NULL, len, (uint8_t *) packed_h);
    free (packed_h);
    freeReplyObject (hash);

    redisReply *hist = qp_redis_command (r, "LRANGE %s 0 -1", k_h);
    size_t listed = s_reply_ok (hist, "dossier_history") && hist->type == REDIS_REPLY_ARRAY
                        ? hist->elements
                        : 0;
    size_t n = listed + (stored ? stored->n_entries : 0);
    if (n) {
        reply->history = calloc (n, sizeof *reply->history);
        assert (reply->history);
    }
    for (size_t i = 0; i < listed; i++) {
        Qp__V1__Transition *t = qp__v1__transition__unpack (NULL, hist->element[i]->len,
                                                            (uint8_t *) hist->element[i]->str);
        if (!t)
            continue;
        s_history_restore (t, final_reason);
        reply->history[reply->n_history++] = t;
    }
    for (size_t i = 0; stored && i < stored->n_entries; i++) {
        s_history_restore (stored->entries[i], final_reason);
        reply->history[reply->n_history++] = stored->entries[i]; /* moved to the reply */
    }
    if (stored) {
        stored->n_entries = 0;
        qp__v1__history__free_unpacked (stored, NULL);
    }
    if (hist)
        freeReplyObject (hist);
    free (final_reason);
    return 0;
}

void qp_store_status_clear (Qp__V1__DossierStatusReply *reply)
{
    free (reply->dossier_id);
    free (reply->territory);
    if (reply->eligibility)
        qp__v1__eligibility_decided__free_unpacked (reply->eligibility, NULL);
    for (size_t i = 0; i < reply->n_history; i++)
        qp__v1__transition__free_unpacked (reply->history[i], NULL);
    free (reply->history);
    for (size_t i = 0; i < reply->n_settlements; i++)
        qp__v1__funding_settled__free_unpacked (reply->settlements[i], NULL);
    free (reply->settlements);
    qp__v1__dossier_status_reply__init (reply);
}

size_t qp_store_claim_expired (qp_redis_t *r, Qp__V1__DossierState state, int64_t now_ms,
                               char **ids, size_t limit)
{
    char k_p[64], now[24], deadline[24], lim[16];
    s_pending_key (k_p, sizeof k_p, state);
    snprintf (now, sizeof now, "%lld", (long long) now_ms);
    snprintf (deadline, sizeof deadline, "%lld", (long long) (now_ms + QP_STORE_LEASE_MS));
    snprintf (lim, sizeof lim, "%zu", limit);
    const char *keys[] = {k_p};
    const char *args[] = {now, deadline, lim};
    redisReply *reply = qp_redis_script (r, QP_LUA_PENDING_CLAIM, 1, keys, 3, args, NULL);
    size_t n = 0;
    if (s_reply_ok (reply, "pending_claim") && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements && n < limit; i++)
            if (reply->element[i]->type == REDIS_REPLY_STRING)
                ids[n++] = strdup (reply->element[i]->str);
    if (reply)
        freeReplyObject (reply);
    return n;
}

int qp_store_outbox_remove (qp_redis_t *r, const qp_store_blob_t *acks, size_t n)
{
    if (!n)
        return 0;
    const char **argv = malloc ((n + 2) * sizeof *argv);
    size_t *lens = malloc ((n + 2) * sizeof *lens);
    assert (argv && lens);
    argv[0] = "ZREM", lens[0] = 4;
    argv[1] = QP_STORE_OUTBOX_KEY, lens[1] = strlen (QP_STORE_OUTBOX_KEY);
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = acks[i].data, lens[2 + i] = acks[i].len;
    redisReply *reply = qp_redis_argv (r, (int) n + 2, argv, lens);
    int rc = s_reply_ok (reply, "outbox_remove") ? 0 : -1;
    if (reply)
        freeReplyObject (reply);
    free (argv);
    free (lens);
    return rc;
}

/* A copy of reply string e, malloc'd (one byte when empty). */
static void s_blob_copy (qp_store_blob_t *out, const redisReply *e)
{
    out->len = e->len;
    out->data = malloc (e->len ? e->len : 1);
    assert (out->data);
    memcpy (out->data, e->str, e->len);
}

size_t qp_store_outbox_claim (qp_redis_t *r, int64_t now_ms, int64_t due_ms,
                              qp_store_blob_t *out, size_t limit)
{
    char due[24], deadline[24], lim[16];
    snprintf (due, sizeof due, "%lld", (long long) due_ms);
    snprintf (deadline, sizeof deadline, "%lld",
              (long long) (now_ms + QP_STORE_OUTBOX_REDELIVER_MS));
    snprintf (lim, sizeof lim, "%zu", limit);
    const char *keys[] = {QP_STORE_OUTBOX_KEY};
    const char *args[] = {due, deadline, lim};
    redisReply *reply = qp_redis_script (r, QP_LUA_PENDING_CLAIM, 1, keys, 3, args, NULL);
    size_t n = 0;
    if (s_reply_ok (reply, "outbox_claim") && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements && n < limit; i++)
            if (reply->element[i]->type == REDIS_REPLY_STRING)
                s_blob_copy (&out[n++], reply->element[i]);
    if (reply)
        freeReplyObject (reply);
    return n;
}

long qp_store_outbox_page (qp_redis_t *r, int64_t min_score, int64_t max_score,
                           qp_store_blob_t *out, int64_t *scores, size_t limit)
{
    redisReply *reply = qp_redis_command (r, "ZRANGEBYSCORE %s %lld %lld WITHSCORES LIMIT 0 %lld",
                                          QP_STORE_OUTBOX_KEY, (long long) min_score,
                                          (long long) max_score, (long long) limit);
    if (!s_reply_ok (reply, "outbox_page") || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            freeReplyObject (reply);
        return -1;
    }
    long n = 0;
    for (size_t i = 0; i + 1 < reply->elements && (size_t) n < limit; i += 2) {
        const redisReply *m = reply->element[i], *sc = reply->element[i + 1];
        if (m->type != REDIS_REPLY_STRING)
            continue;
        s_blob_copy (&out[n], m);
        if (scores) /* RESP2: the score is a string ("1732500000123") */
            scores[n] = sc->type == REDIS_REPLY_STRING ? strtoll (sc->str, NULL, 10) : 0;
        n++;
    }
    freeReplyObject (reply);
    return n;
}

long long qp_store_outbox_size (qp_redis_t *r)
{
    redisReply *reply = qp_redis_command (r, "ZCARD %s", QP_STORE_OUTBOX_KEY);
    long long n = s_reply_ok (reply, "outbox_size") && reply->type == REDIS_REPLY_INTEGER
                      ? reply->integer
                      : -1;
    if (reply)
        freeReplyObject (reply);
    return n;
}
