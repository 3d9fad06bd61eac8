/* Evaluation: events -> batched increments (eval_apply.lua); cells -> indicators. */
#include "evaluation.h"
#include "qp_date.h"
#include "qp_log.h"
#include "qp_store.h"
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#define K_CELLS "qp:eval:cells"
#define K_TERRITORIES "qp:eval:territories"
#define K_META "qp:eval:meta"
#define BATCH_EVENTS 8192 /* at most (or every 5 ms: more events, more increments added up) */
#define BATCH_DEFAULT 2048 /* an apply holds Redis ~14 ms, not ~38, and the two batches'
                              arguments weigh ~20 MB less than at 8,192 */
#define OUTSIDE "hors-programme"
/* Refusals are counted under this prefix + message id (never a dossier id: hex only). */
#define REFUSAL "r-"

/* A list of strings kept in blocks that never move (one malloc per block, not per
 * string: the two calls of a batch carry ~300 arguments per dossier). */
typedef struct block {
    struct block *next;
    size_t used, size;
    char data[];
} block_t;

typedef struct {
    char **v;
    size_t *lens; /* a binary entry's length; 0: a C string (strlen) */
    size_t n, cap;
    block_t *blocks; /* newest first */
} strv_t;

/* size + 1 bytes in self's blocks, the last one NUL. */
static char *s_strv_alloc (strv_t *self, size_t size)
{
    size_t len = size + 1;
    block_t *b = self->blocks;
    if (!b || b->size - b->used < len) {
        size_t size = b ? b->size * 2 : 256;
        if (size > 65536)
            size = 65536;
        if (size < len)
            size = len;
        block_t *nb = malloc (sizeof *nb + size);
        assert (nb);
        nb->next = b, nb->used = 0, nb->size = size;
        self->blocks = b = nb;
    }
    char *out = b->data + b->used;
    out[size] = 0;
    b->used += len;
    return out;
}

/* A copy of len bytes (plus a NUL) in self's blocks. */
static char *s_strv_copy_bin (strv_t *self, const void *data, size_t size)
{
    char *out = s_strv_alloc (self, size);
    if (size) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy (out, data, size);
    return out;
}

/* A copy of text in self's blocks. */
static char *s_strv_copy (strv_t *self, const char *text)
{
    return s_strv_copy_bin (self, text, strlen (text));
}

static void s_strv_add_bin (strv_t *self, const void *data, size_t size)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->v = realloc (self->v, self->cap * sizeof *self->v);
        self->lens = realloc (self->lens, self->cap * sizeof *self->lens);
        assert (self->v && self->lens);
    }
    self->lens[self->n] = size;
    self->v[self->n++] = s_strv_copy_bin (self, data, size);
}

static void s_strv_add (strv_t *self, const char *text)
{
    s_strv_add_bin (self, text, strlen (text));
    self->lens[self->n - 1] = 0;
}

/* Length of entry i. */
static size_t s_strv_len (const strv_t *self, size_t i)
{
    return self->lens[i] ? self->lens[i] : strlen (self->v[i]);
}

static void s_strv_addf (strv_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void s_strv_addf (strv_t *self, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (text, sizeof text, fmt, ap);
    va_end (ap);
    s_strv_add (self, text);
}

static void s_strv_free (strv_t *self)
{
    while (self->blocks) {
        block_t *next = self->blocks->next;
        free (self->blocks);
        self->blocks = next;
    }
    free (self->v);
    free (self->lens);
    memset (self, 0, sizeof *self);
}

/* A bounded text builder: what does not fit is cut, as snprintf cuts (the buffers are
 * sized for the fields' bounds); memcpy, not printf: key and profile building was the
 * service's hot spot at small batches (docs/benchmarks.md). */
typedef struct {
    char *p, *end; /* end: the last byte, kept for the NUL */
} text_t;

static text_t s_text (char *buf, size_t size)
{
    assert (size > 0);
    *buf = 0;
    return (text_t){buf, buf + size - 1};
}

static void s_put_n (text_t *t, const char *s, size_t n)
{
    size_t room = (size_t) (t->end - t->p);
    if (n > room)
        n = room;
    if (n) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy (t->p, s, n);
    t->p += n;
    *t->p = 0;
}

static void s_put (text_t *t, const char *s)
{
    if (s)
        s_put_n (t, s, strlen (s));
}

static void s_put_c (text_t *t, char c)
{
    s_put_n (t, &c, 1);
}

/* Decimal text of v into out (at least 21 bytes); printf is the service's hot spot. */
static char *s_itoa (long long v, char *out)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long) v : (unsigned long long) v;
    do
        tmp[n++] = (char) ('0' + u % 10);
    while ((u /= 10));
    char *o = out;
    if (v < 0)
        *o++ = '-';
    while (n)
        *o++ = tmp[--n];
    *o = 0;
    return out;
}

static void s_put_ll (text_t *t, long long v)
{
    char text[24];
    s_put (t, s_itoa (v, text));
}

typedef struct {
    size_t first; /* index of its dossier id in args */
    size_t count; /* args it spans */
    char fallback[160]; /* profile when the dossier is not stored (territory, day) */
} queued_t;

typedef struct {
    strv_t args; /* the queued events' arguments: id, token, profile, then triples */
    queued_t events[BATCH_EVENTS + 2]; /* an event queues at most 2 */
    size_t n_events;
    qp_store_blob_t *acks; /* outbox members of the events queued (evaluation_ack), their
                            * bytes in args' blocks (no malloc per event) */
    size_t n_acks, cap_acks;
    strv_t checked; /* id, packed profile: what its apply leaves of the dossiers it checks */
} batch_t;

struct evaluation {
    qp_redis_t *redis;
    qp_service_t *service;
    batch_t batches[2];
    batch_t *b;    /* the batch filling */
    batch_t *sent; /* the batch whose apply was sent and not collected yet, or NULL */
    /* id -> profile_t: the packed profiles of the dossiers this instance's applies checked
     * or wrote, the newer generation first (s_known): a dossier's next events, a few
     * batches later, take it from here instead of a read; the apply checks it all the same */
    zhash_t *known[2];
    size_t batch_events; /* flushed at this many events (BATCH_EVENTS at most) */
    json_t *kinds;     /* scheme id -> catalogue kind */
    json_t *envelopes; /* data/envelopes.json "envelopes" */
    json_t *targets;   /* data/targets.json */
};

/* ---- Data ------------------------------------------------------------------------------ */

static json_t *s_load_json (const char *dir, const char *name, bool *broken)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    if (access (path, F_OK) != 0)
        return NULL;
    json_error_t e;
    json_t *j = json_load_file (path, 0, &e);
    if (!j) {
        qp_log_error ("data_broken", "%s: line %d: %s", path, e.line, e.text);
        *broken = true;
    }
    return j;
}

/* Scheme kinds from the catalogue: money committed is filed under honour loans,
 * guarantees, grants or exemptions by the scheme's kind. */
static json_t *s_load_kinds (const char *dir)
{
    json_t *kinds = json_object ();
    char path[1024];
    snprintf (path, sizeof path, "%s/catalogue", dir);
    DIR *d = opendir (path);
    struct dirent *e;
    while (d && (e = readdir (d))) {
        size_t len = strlen (e->d_name);
        if (len < 6 || strcmp (e->d_name + len - 5, ".json"))
            continue;
        char name[600];
        snprintf (name, sizeof name, "catalogue/%s", e->d_name);
        bool broken = false;
        json_t *s = s_load_json (dir, name, &broken);
        const char *id = json_string_value (json_object_get (s, "id"));
        const char *kind = json_string_value (json_object_get (s, "kind"));
        if (id && kind)
            json_object_set_new (kinds, id, json_string (kind));
        json_decref (s);
    }
    if (d)
        closedir (d);
    return kinds;
}

evaluation_t *evaluation_new (qp_redis_t *redis, const char *data_dir)
{
    evaluation_t *self = calloc (1, sizeof *self);
    assert (self);
    self->redis = redis;
    self->b = &self->batches[0];
    self->batch_events = BATCH_DEFAULT;
    const char *dir = data_dir ? data_dir : "data";
    bool broken = false;
    json_t *env = s_load_json (dir, "envelopes.json", &broken);
    self->envelopes = json_incref (json_object_get (env, "envelopes"));
    json_decref (env);
    self->targets = s_load_json (dir, "targets.json", &broken);
    self->kinds = s_load_kinds (dir);
    if (broken)
        evaluation_destroy (&self);
    return self;
}

static void s_batch_reset (batch_t *b)
{
    s_strv_free (&b->args);
    s_strv_free (&b->checked);
    b->n_events = 0;
    b->n_acks = 0; /* their bytes were in the args' blocks */
}

static int s_collect (evaluation_t *self);

void evaluation_destroy (evaluation_t **self_p)
{
    evaluation_t *self = *self_p;
    if (!self)
        return;
    s_collect (self); /* nobody else must read that reply */
    for (int i = 0; i < 2; i++) {
        s_batch_reset (&self->batches[i]);
        free (self->batches[i].acks);
        zhash_destroy (&self->known[i]);
    }
    json_decref (self->kinds);
    json_decref (self->envelopes);
    json_decref (self->targets);
    free (self);
    *self_p = NULL;
}

/* ---- Building the batch ------------------------------------------------------------------ */

static void s_arg (evaluation_t *self, const char *text)
{
    s_strv_add (&self->b->args, text ? text : "");
}

/* Nor tokens the packed profile's separators ('|' between fields, ',' between tokens). */
static void s_clean_token (char *text)
{
    for (; *text; text++)
        if (*text == '|' || *text == ',')
            *text = '_';
}

static const char *s_enum_name (const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value (d, value);
    return v ? v->name : "";
}

/* text, at most size - 1 bytes of it, cleaned of the profile's separators, into t. */
static void s_put_clean (text_t *t, const char *text, size_t size)
{
    char *from = t->p;
    size_t n = strnlen (text, size - 1);
    s_put_n (t, text, n);
    for (; from < t->p; from++)
        if (*from == '|' || *from == ':')
            *from = '_';
}

/* "territory|month|day|axis|qpv|network|woman|under30|bank" from a dossier; *young: its
 * under-30 flag ("" undeclared, "0", "1") when young is not NULL. */
static void s_profile (const Qp__V1__Dossier *d, int64_t event_time_ms, char *out, size_t size,
                       const char **young_p)
{
    char day[11];
    int32_t days;
    if (!d->submitted_on || !qp_date_parse (d->submitted_on, &days))
        days = qp_date_from_ms (event_time_ms);
    qp_date_format (days, day);
    const Qp__V1__Business *b = d->business;
    const Qp__V1__ProjectHolder *h = d->holder;
    const Qp__V1__Project *p = d->project;
    const char *q = b && b->declared_qpv && *b->declared_qpv ? b->declared_qpv
                    : h && h->residence_qpv ? h->residence_qpv : "";
    const char *axis = s_enum_name (&qp__v1__axis__descriptor, p && p->has_axis ? (int) p->axis : 0);
    const char *network =
        h && h->has_network ? s_enum_name (&qp__v1__network__descriptor, (int) h->network) : "";
    const char *woman = "";
    if (h && h->has_gender && h->gender != QP__V1__GENDER__GENDER_UNSPECIFIED)
        woman = h->gender == QP__V1__GENDER__WOMAN ? "1" : "0";
    const char *young = "";
    if (h && h->has_birth_year && h->birth_year > 1900) {
        int y, m, dd;
        qp_date_to_civil (days, &y, &m, &dd);
        young = y - (int) h->birth_year < 30 ? "1" : "0";
    }
    if (young_p)
        *young_p = young;
    /* the territory within 95 bytes and the QPV within 31, as before */
    text_t t = s_text (out, size);
    s_put_clean (&t, d->territory && *d->territory ? d->territory : OUTSIDE, 96);
    s_put_c (&t, '|');
    s_put_n (&t, day, strnlen (day, 7));
    s_put_c (&t, '|');
    s_put (&t, day);
    s_put_c (&t, '|');
    s_put (&t, axis);
    s_put_c (&t, '|');
    s_put_clean (&t, q, 32);
    s_put_c (&t, '|');
    s_put (&t, network);
    s_put_c (&t, '|');
    s_put (&t, woman);
    s_put_c (&t, '|');
    s_put (&t, young);
    s_put_c (&t, '|');
    if (p && p->has_bank_loan_cents)
        s_put_ll (&t, (long long) p->bank_loan_cents);
}

static void s_fallback_profile (const char *territory, int64_t event_time_ms, char *out, size_t size)
{
    char day[11];
    qp_date_format (qp_date_from_ms (event_time_ms), day);
    text_t t = s_text (out, size);
    s_put_clean (&t, territory && *territory ? territory : OUTSIDE, 96);
    s_put_c (&t, '|');
    s_put_n (&t, day, strnlen (day, 7));
    s_put_c (&t, '|');
    s_put (&t, day);
    s_put (&t, "|AXIS_UNSPECIFIED||||||");
}

static void s_flush_full (evaluation_t *self);

static void s_begin (evaluation_t *self, const char *dossier_id, const char *token,
                     const char *profile, const char *fallback)
{
    assert (self->b->n_events < sizeof self->b->events / sizeof self->b->events[0]);
    queued_t *e = &self->b->events[self->b->n_events++];
    e->first = self->b->args.n;
    text_t t = s_text (e->fallback, sizeof e->fallback);
    s_put (&t, fallback);
    s_arg (self, dossier_id);
    s_arg (self, token);
    s_arg (self, profile);
}

/* One increment of the open event: field, value, mode (see s_sum_mode). */
static void s_op (evaluation_t *self, const char *field, long long value, int mode)
{
    char v[24];
    s_arg (self, field);
    s_arg (self, s_itoa (value, v));
    s_arg (self, mode == 1 ? "1" : mode == 3 ? "3" : mode == 7 ? "7" : mode == 8 ? "8" : "16");
}

static void s_op_text (evaluation_t *self, const char *field, const char *value, int mode)
{
    s_op (self, field, 0, mode);
    self->b->args.v[self->b->args.n - 2] = s_strv_copy (&self->b->args, value);
}

static void s_end (evaluation_t *self)
{
    queued_t *e = &self->b->events[self->b->n_events - 1];
    e->count = self->b->args.n - e->first;
    if (self->b->n_events >= self->batch_events)
        s_flush_full (self);
}

/* Field name "s:SCHEME:counter" (scheme ids are catalogue ids, cleaned of separators). */
static void s_scheme_op (evaluation_t *self, const char *prefix, const char *id, const char *counter,
                         long long value)
{
    char name[160];
    text_t t = s_text (name, sizeof name);
    s_put (&t, prefix);
    s_put_c (&t, ':');
    s_put_clean (&t, id && *id ? id : "unknown", 96);
    s_put_c (&t, ':');
    s_put (&t, counter);
    s_op (self, name, value, 1);
}

/* The money field a scheme's committed amount goes to, from its catalogue kind. */
static const char *s_money_field (evaluation_t *self, const char *scheme)
{
    const char *kind = json_string_value (json_object_get (self->kinds, scheme ? scheme : ""));
    if (!kind)
        return "other_aid_cents";
    if (strstr (kind, "honour"))
        return "honour_loan_cents";
    if (strstr (kind, "guarantee"))
        return "guarantee_cents";
    if (strstr (kind, "grant") || strstr (kind, "subsid"))
        return "grant_cents";
    if (strstr (kind, "exemption") || strstr (kind, "tax"))
        return "exemption_cents";
    return "other_aid_cents";
}

static void s_queue_refusal (evaluation_t *self, const char *key, const char *profile)
{
    s_begin (self, key, "refused", profile, NULL);
    s_op (self, "rejected_at_intake", 1, 7);
    s_end (self);
}

static int64_t s_time (const qp_message_t *msg)
{
    return msg->envelope && msg->envelope->has_event_time_ms ? msg->envelope->event_time_ms : 0;
}

void evaluation_apply (evaluation_t *self, const qp_message_t *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    char fallback[160], profile[320];
    int64_t t = s_time (msg);
    if (d == &qp__v1__dossier_received__descriptor) {
        const Qp__V1__DossierReceived *m = (const void *) msg->payload;
        if (!m->dossier_id || !m->dossier)
            return;
        const char *young;
        s_profile (m->dossier, t, profile, sizeof profile, &young);
        s_begin (self, m->dossier_id, "rcv", profile, NULL);
        const Qp__V1__Project *p = m->dossier->project;
        const Qp__V1__ProjectHolder *h = m->dossier->holder;
        s_op (self, "submitted", 1, 7);
        if (p && p->has_jobs_planned)
            s_op (self, "jobs_planned", p->jobs_planned, 7);
        if (h && h->has_gender && h->gender != QP__V1__GENDER__GENDER_UNSPECIFIED) {
            s_op (self, "gender_declared", 1, 3);
            if (h->gender == QP__V1__GENDER__WOMAN)
                s_op (self, "women", 1, 3);
        }
        if (*young) {
            /* the under-30 flag of the profile */
            s_op (self, "age_declared", 1, 3);
            if (!strcmp (young, "1"))
                s_op (self, "under_30", 1, 3);
        }
        s_end (self);
    } else if (d == &qp__v1__eligibility_decided__descriptor) {
        const Qp__V1__EligibilityDecided *m = (const void *) msg->payload;
        if (!m->dossier_id)
            return;
        s_fallback_profile (m->territory, t, fallback, sizeof fallback);
        s_begin (self, m->dossier_id, "dec", "", fallback);
        bool eligible = false;
        for (size_t i = 0; i < m->n_decisions; i++) {
            const Qp__V1__SchemeDecision *sd = m->decisions[i];
            if (sd->outcome != QP__V1__OUTCOME__ELIGIBLE_OUTCOME)
                continue;
            eligible = true;
            s_scheme_op (self, "s", sd->scheme_id, "eligible", 1);
            s_scheme_op (self, "ag", s_enum_name (&qp__v1__agency__descriptor, sd->agency),
                         "eligible", 1);
            if (!strcmp (s_money_field (self, sd->scheme_id), "exemption_cents")) {
                /* A tax exemption applies by law once eligible: granted by the decision. */
                s_op (self, "exemptions_granted", 1, 3);
                if (sd->amount_cents > 0)
                    s_op (self, "exemption_cents", sd->amount_cents, 7);
            }
        }
        s_op (self, eligible ? "eligible" : "not_eligible", 1, 7);
        s_end (self);
    } else if (d == &qp__v1__funding_request__descriptor) {
        const Qp__V1__FundingRequest *m = (const void *) msg->payload;
        if (!m->dossier_id)
            return;
        s_fallback_profile (m->summary ? m->summary->territory : NULL, t, fallback, sizeof fallback);
        /* the dossier once, each scheme once, whatever the attempts */
        s_begin (self, m->dossier_id, "rq", "", fallback);
        s_op (self, "funding_requested", 1, 7);
        s_end (self);
        char token[128];
        snprintf (token, sizeof token, "rq:%s", m->scheme_id ? m->scheme_id : "");
        s_clean_token (token);
        s_begin (self, m->dossier_id, token, "", fallback);
        s_scheme_op (self, "s", m->scheme_id, "funding_requested", 1);
        s_scheme_op (self, "ag", s_enum_name (&qp__v1__agency__descriptor, m->agency),
                     "funding_requested", 1);
        s_end (self);
    } else if (d == &qp__v1__funding_settled__descriptor) {
        const Qp__V1__FundingSettled *m = (const void *) msg->payload;
        if (!m->dossier_id)
            return;
        s_fallback_profile (m->territory, t, fallback, sizeof fallback);
        char token[128];
        snprintf (token, sizeof token, "st:%s", m->scheme_id ? m->scheme_id : "");
        s_clean_token (token);
        s_begin (self, m->dossier_id, token, "", fallback);
        const char *agency = s_enum_name (&qp__v1__agency__descriptor, m->agency);
        if (m->outcome == QP__V1__SETTLEMENT_OUTCOME__COMMITTED) {
            s_op (self, "approved", 1, 7);
            s_op (self, s_money_field (self, m->scheme_id), m->amount_cents, 7);
            s_scheme_op (self, "s", m->scheme_id, "approved", 1);
            s_scheme_op (self, "s", m->scheme_id, "committed_cents", m->amount_cents);
            s_scheme_op (self, "ag", agency, "approved", 1);
            s_scheme_op (self, "ag", agency, "committed_cents", m->amount_cents);
        } else if (m->outcome == QP__V1__SETTLEMENT_OUTCOME__RELEASED) {
            s_scheme_op (self, "s", m->scheme_id, "declined", 1);
            s_scheme_op (self, "ag", agency, "declined", 1);
        } else if (m->outcome == QP__V1__SETTLEMENT_OUTCOME__NO_BUDGET)
            s_scheme_op (self, "s", m->scheme_id, "unfunded", 1);
        s_end (self);
    } else if (d == &qp__v1__dossier_closed__descriptor) {
        const Qp__V1__DossierClosed *m = (const void *) msg->payload;
        const char *state = NULL;
        switch (m->final_state) {
        case QP__V1__DOSSIER_STATE__FUNDED: state = "funded"; break;
        case QP__V1__DOSSIER_STATE__DECLINED: state = "declined"; break;
        case QP__V1__DOSSIER_STATE__UNFUNDED: state = "unfunded"; break;
        case QP__V1__DOSSIER_STATE__NOT_ELIGIBLE: state = "closed_not_eligible"; break;
        default: break;
        }
        if (!m->dossier_id || !state) {
            qp_log_warn ("bad_event", "DossierClosed %s without a dossier or terminal state",
                         msg->envelope ? msg->envelope->message_id : "");
            return;
        }
        s_fallback_profile (m->territory, t, fallback, sizeof fallback);
        s_begin (self, m->dossier_id, "closed", "", fallback);
        s_op (self, "closed", 1, 7);
        s_op (self, state, 1, 7);
        s_op (self, "committed_cents", m->committed_cents, 7);
        if (m->final_state == QP__V1__DOSSIER_STATE__FUNDED)
            s_op (self, "funded_profile", 0, 16);
        s_end (self);
    } else if (d == &qp__v1__submission_refused__descriptor) {
        const Qp__V1__SubmissionRefused *m = (const void *) msg->payload;
        const char *id = msg->envelope ? msg->envelope->message_id : NULL;
        if (!id || !*id)
            return;
        /* no dossier: counted once per refusal (its message id), in the cell of its
         * territory (when known), month and axis */
        char key[QP_ID_HEX + 8];
        snprintf (key, sizeof key, "%s%s", REFUSAL, id);
        Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
        Qp__V1__Project project = QP__V1__PROJECT__INIT;
        Qp__V1__Business business = QP__V1__BUSINESS__INIT;
        dossier.territory = m->territory;
        dossier.submitted_on = m->submitted_on;
        dossier.project = &project, dossier.business = &business;
        project.has_axis = m->has_axis, project.axis = m->axis;
        business.declared_qpv = m->qpv;
        s_profile (&dossier, t, profile, sizeof profile, NULL);
        s_queue_refusal (self, key, profile);
    } else if (d == &qp__v1__follow_up__descriptor) {
        const Qp__V1__FollowUp *m = (const void *) msg->payload;
        if (!m->dossier_id || m->year < 1 || m->year > 3)
            return;
        s_fallback_profile (NULL, t, fallback, sizeof fallback);
        s_begin (self, m->dossier_id, "", "", fallback);
        char year[8], value[32];
        snprintf (year, sizeof year, "y%u", m->year);
        snprintf (value, sizeof value, "%d:%u", m->active ? 1 : 0, m->jobs_created);
        s_op_text (self, year, value, 8);
        s_end (self);
    }
}

/* Profile of a stored dossier, or the event's fallback. */
static void s_stored_profile (evaluation_t *self, const char *id, const char *fallback, char *out,
                              size_t size)
{
    size_t len = 0;
    char *packed = qp_store_get (self->redis, id, "dossier", &len);
    Qp__V1__Dossier *d =
        packed ? qp__v1__dossier__unpack (NULL, len, (const uint8_t *) packed) : NULL;
    if (d) {
        char *ms = qp_store_get (self->redis, id, "event_time_ms", &len);
        s_profile (d, ms ? strtoll (ms, NULL, 10) : 0, out, size, NULL);
        free (ms);
        qp__v1__dossier__free_unpacked (d, NULL);
    } else
        snprintf (out, size, "%s", fallback);
    free (packed);
}

/* ---- Applying a batch ---------------------------------------------------------------------
 * Two calls to eval_apply.lua per batch: "read" returns the profile hash of each dossier
 * of the batch (profile, tokens already counted, follow-ups); the service keeps the events
 * whose token is new, adds up their increments per key and field, and "apply" writes the
 * sums only if every token, follow-up and profile it read is still as read (else nothing
 * is written and the batch is read again). So each fact counts once, also with several
 * instances, and Redis does one HMGET + HSET per key touched instead of one HINCRBY per
 * event, key and field. */

#define PROFILE_FIELDS 9
static const char *const s_profile_names[PROFILE_FIELDS] = {"t", "m", "d", "a", "q",
                                                            "n", "w", "y", "b"};

#define SLOTS 64 /* qp.v1.Figures field numbers are under 64 */

/* A vector's sums in the batch, and where it is indexed: its key is PREFIX X|MEMBER, the
 * member (its last member_len bytes) of set (qp:eval:k:X for qp:eval:v:X|DIM, a cell's
 * dimension; qp:eval:days:T for qp:eval:dv:T|DAY, a territory's day). */
typedef struct {
    int64_t v[SLOTS];
    uint64_t touched;
    const char *set; /* the first dossier's to sum into it (they live as long as the sums) */
    size_t member_len;
} vector_t;

#define DOSSIER_DIMS 8

/* One dossier of the batch. */
typedef struct {
    const char *id;
    char profile[320]; /* "t|m|d|a|q|n|w|y|b", "" until known */
    char split[320];
    const char *p[PROFILE_FIELDS];
    bool stored;       /* its profile was in Redis */
    bool old;          /* ... as a hash qp:eval:d:ID of before the buckets */
    char bucket[24];   /* "qp:eval:p:N" */
    const char *field; /* its field there (s_profile_place): packed or the id */
    size_t field_len;
    char packed_id[QP_ID_HEX / 2 + 2];
    char *read;        /* the packed profile read from the bucket, NULL none */
    size_t read_len;
    strv_t known;      /* tokens counted in Redis, in their stored order */
    strv_t fresh;      /* tokens this batch counts (known + fresh: ~10, a scan beats a hash) */
    char fu_read[4][32], fu_now[4][32]; /* follow-up per year, "" none */
    size_t applied;
    /* its keys, once the profile is known */
    char cell[256];       /* "qp:eval:c:T|M|A" (member of qp:eval:cells) */
    char vectors[256];    /* "qp:eval:v:T|M|A|", + dimension */
    char dims[256];       /* "qp:eval:k:T|M|A": the cell's dimensions */
    char day[192];        /* "qp:eval:dv:T|DAY" */
    char days[160];       /* "qp:eval:days:T" */
    /* its vectors in the batch's sums, found once (not hashed again per increment): the
     * cell's dimensions ("*", "q:QPV", "s:SCHEME"...) and the day's; a dimension's first
     * sum also indexes it */
    char dim[DOSSIER_DIMS][64];
    size_t dim_len[DOSSIER_DIMS], n_dims;
    vector_t *dim_vector[DOSSIER_DIMS];
    vector_t *day_vector;
    bool indexed; /* its cell and territory are in the index sets */
    bool own;     /* its profile was taken from the instance's own copy (s_known), not read */
} batch_dossier_t;

static void s_batch_dossier_free (void **item)
{
    batch_dossier_t *d = *item;
    s_strv_free (&d->known);
    s_strv_free (&d->fresh);
    free (d->read);
    free (d);
    *item = NULL;
}

/* Whether token is counted for d, in Redis or earlier in this batch. */
static bool s_counted (const batch_dossier_t *d, const char *token)
{
    for (size_t k = 0; k < d->known.n; k++)
        if (!strcmp (d->known.v[k], token))
            return true;
    for (size_t k = 0; k < d->fresh.n; k++)
        if (!strcmp (d->fresh.v[k], token))
            return true;
    return false;
}

static void s_split_profile (batch_dossier_t *d)
{
    memcpy (d->split, d->profile, sizeof d->split); /* same size, NUL-terminated */
    char *s = d->split;
    for (int k = 0; k < PROFILE_FIELDS; k++) {
        d->p[k] = s;
        char *bar = s ? strchr (s, '|') : NULL;
        if (bar)
            *bar = 0;
        s = bar ? bar + 1 : NULL;
        if (!d->p[k])
            d->p[k] = "";
    }
}

/* ---- Packed profiles -----------------------------------------------------------------------
 * A dossier's profile is the field of its id in one of PROFILE_BUCKETS bucket hashes
 * qp:eval:p:N (a hash per dossier cost a key, a dict entry and a listpack: ~280 B; a
 * field of a bucket that stays a listpack costs its bytes). Value, fields separated by
 * '|', trailing empty ones left out:
 *   territory|day|axis|qpv|network|woman|under30|bank|tokens|fu1|fu2|fu3
 * axis and network by enum number, the month is the day's first 7 characters, tokens
 * separated by ',' (rcv r, dec d, rq q, closed c, refused x, rq:S <S, st:S >S, another
 * ~TOKEN). A field is the id's 16 bytes when it is 32 lowercase hex digits ("r-" and 16
 * bytes for a refusal), else the id as it is. */
#define PROFILE_BUCKETS 16384 /* ~61 dossiers a bucket at 1,000,000: under the 128 entries
                               * of hash-max-listpack-entries */

static int s_hex_digit (char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Bucket key and field of a dossier id (or "r-MSGID"): the field is packed into `packed`
 * (QP_ID_HEX / 2 + 2 bytes) or is the id itself. */
static void s_profile_place (const char *id, char *bucket, size_t bucket_size, char *packed,
                             const char **field, size_t *field_len)
{
    uint32_t h = 2166136261u; /* FNV-1a: stable across builds and machines */
    for (const char *c = id; *c; c++)
        h = (h ^ (uint8_t) *c) * 16777619u;
    text_t t = s_text (bucket, bucket_size);
    s_put (&t, "qp:eval:p:");
    s_put_ll (&t, (long long) (h % PROFILE_BUCKETS));
    size_t skip = strncmp (id, REFUSAL, 2) == 0 ? 2 : 0, len = strlen (id);
    bool hex = len == skip + QP_ID_HEX;
    for (size_t k = skip; hex && k < len; k++)
        hex = s_hex_digit (id[k]) >= 0;
    if (!hex) {
        *field = id, *field_len = len;
        return;
    }
    memcpy (packed, id, skip);
    for (size_t k = 0; k < QP_ID_HEX / 2; k++)
        packed[skip + k] =
            (char) (s_hex_digit (id[skip + 2 * k]) << 4 | s_hex_digit (id[skip + 2 * k + 1]));
    *field = packed, *field_len = skip + QP_ID_HEX / 2;
}

/* The enum number of name in text, or the name when it is not one of d's. */
static void s_enum_pack (const ProtobufCEnumDescriptor *d, const char *name, char *out, size_t size)
{
    const ProtobufCEnumValue *v = *name ? protobuf_c_enum_descriptor_get_value_by_name (d, name) : NULL;
    text_t t = s_text (out, size);
    if (v)
        s_put_ll (&t, v->value);
    else
        s_put (&t, name);
}

static const char *s_enum_unpack (const ProtobufCEnumDescriptor *d, const char *text)
{
    if (!*text || strspn (text, "0123456789") != strlen (text))
        return text;
    return s_enum_name (d, atoi (text));
}

static void s_append (char **out, size_t *len, size_t *cap, const char *text)
{
    size_t n = strlen (text);
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *out = realloc (*out, *cap);
        assert (*out);
    }
    memcpy (*out + *len, text, n + 1);
    *len += n;
}

static void s_append_token (char **out, size_t *len, size_t *cap, const char *token, bool first)
{
    if (!first)
        s_append (out, len, cap, ",");
    const char *const fixed[][2] = {{"rcv", "r"}, {"dec", "d"}, {"rq", "q"}, {"closed", "c"},
                                    {"refused", "x"}};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (!strcmp (token, fixed[k][0])) {
            s_append (out, len, cap, fixed[k][1]);
            return;
        }
    if (!strncmp (token, "rq:", 3) || !strncmp (token, "st:", 3)) {
        s_append (out, len, cap, token[0] == 'r' ? "<" : ">");
        s_append (out, len, cap, token + 3);
    } else {
        s_append (out, len, cap, "~");
        s_append (out, len, cap, token);
    }
}

/* The dossier's packed profile after this batch (malloc'd, *size its length). */
static char *s_profile_pack (const batch_dossier_t *d, size_t *size)
{
    char *out = NULL, axis[40], network[40];
    size_t len = 0, cap = 0;
    s_enum_pack (&qp__v1__axis__descriptor, d->p[3], axis, sizeof axis);
    s_enum_pack (&qp__v1__network__descriptor, d->p[5], network, sizeof network);
    const char *fields[] = {d->p[0], d->p[2], axis, d->p[4], network, d->p[6], d->p[7], d->p[8]};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if (k)
            s_append (&out, &len, &cap, "|");
        s_append (&out, &len, &cap, fields[k]);
    }
    s_append (&out, &len, &cap, "|");
    size_t tokens = 0;
    for (size_t k = 0; k < d->known.n; k++)
        s_append_token (&out, &len, &cap, d->known.v[k], !tokens++);
    for (size_t k = 0; k < d->fresh.n; k++)
        s_append_token (&out, &len, &cap, d->fresh.v[k], !tokens++);
    size_t last = len; /* trailing empty follow-ups left out */
    for (int y = 1; y <= 3; y++) {
        s_append (&out, &len, &cap, "|");
        s_append (&out, &len, &cap, d->fu_now[y]);
        if (*d->fu_now[y])
            last = len;
    }
    out[last] = 0;
    *size = last;
    return out;
}

/* Reads a packed profile into d: profile, tokens counted, follow-ups. */
static void s_profile_unpack (batch_dossier_t *d, const char *packed, size_t size)
{
    char *copy = strndup (packed, size), *f[12] = {0};
    assert (copy);
    int n = 0;
    for (char *s = copy, *bar; n < 12 && s; s = bar ? bar + 1 : NULL) {
        bar = strchr (s, '|');
        if (bar)
            *bar = 0;
        f[n++] = s;
    }
    for (int k = 0; k < 12; k++)
        if (!f[k])
            f[k] = "";
    d->stored = *f[0] != 0;
    if (d->stored) {
        const char *const fields[] = {
            f[0], f[1], f[1], s_enum_unpack (&qp__v1__axis__descriptor, f[2]), f[3],
            s_enum_unpack (&qp__v1__network__descriptor, f[4]), f[5], f[6], f[7]};
        text_t t = s_text (d->profile, sizeof d->profile);
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
            if (k)
                s_put_c (&t, '|');
            s_put_n (&t, fields[k], k == 1 ? strnlen (fields[k], 7) : strlen (fields[k]));
        }
    }
    for (char *t = f[8], *comma; t && *t; t = comma ? comma + 1 : NULL) {
        comma = strchr (t, ',');
        if (comma)
            *comma = 0;
        char token[160];
        text_t b = s_text (token, sizeof token);
        switch (*t) {
        case 'r': s_put (&b, "rcv"); break;
        case 'd': s_put (&b, "dec"); break;
        case 'q': s_put (&b, "rq"); break;
        case 'c': s_put (&b, "closed"); break;
        case 'x': s_put (&b, "refused"); break;
        case '<': s_put (&b, "rq:"), s_put (&b, t + 1); break;
        case '>': s_put (&b, "st:"), s_put (&b, t + 1); break;
        default: s_put (&b, t + 1); break;
        }
        s_strv_add (&d->known, token);
    }
    for (int y = 1; y <= 3; y++) {
        text_t t = s_text (d->fu_read[y], sizeof d->fu_read[y]);
        s_put (&t, f[8 + y]);
        t = s_text (d->fu_now[y], sizeof d->fu_now[y]);
        s_put (&t, f[8 + y]);
    }
    free (copy);
}

typedef struct {
    zhashx_t *vectors; /* key -> vector_t */
    zhashx_t *indexes; /* set key -> zhashx of members */
    char as_of[11];
    size_t applied;
} sums_t;

static void s_free_hash (void **item)
{
    zhashx_destroy ((zhashx_t **) item);
}

static void s_free_value (void **item)
{
    free (*item);
    *item = NULL;
}

/* ---- Profiles this instance checked or wrote ------------------------------------------
 * The events of a dossier come a few batches apart (received, decided, requested...):
 * the profile its last apply left is taken from here instead of read again (one HGET per
 * event and, when every dossier of a batch is known, the whole read call). Only a hint:
 * the apply checks every such profile is still the one stored, as it does a read one, so
 * another instance, a rebuild or a flushed Redis is a conflict, and the batch is read. */
#define KNOWN_GENERATION 16384 /* profiles a generation, two kept (~5 MB at most) */
/* zhash, not zhashx: zhashx also grows its table when a lookup walks a chain longer than
 * its limit, which stays at 1-2 for a table this size, so lookups at any load kept
 * doubling it: 4, 8, 16 then 33 MB of slots for 16,384 profiles within a second (seen in
 * the stack bench, the evaluation's peak RSS 55-75 MB); zhash grows on its load only. */

typedef struct {
    size_t len;
    char data[];
} profile_t;

static const profile_t *s_known (evaluation_t *self, const char *id)
{
    for (int g = 0; g < 2; g++) {
        const profile_t *p = self->known[g] ? zhash_lookup (self->known[g], id) : NULL;
        if (p)
            return p;
    }
    return NULL;
}

static void s_know (evaluation_t *self, const char *id, const char *packed, size_t len)
{
    if (self->known[0] && zhash_size (self->known[0]) >= KNOWN_GENERATION &&
        !zhash_lookup (self->known[0], id)) {
        /* the older generation goes: what was not used since */
        zhash_destroy (&self->known[1]);
        self->known[1] = self->known[0];
        self->known[0] = NULL;
    }
    if (!self->known[0])
        self->known[0] = zhash_new ();
    profile_t *p = malloc (sizeof *p + len + 1);
    assert (p);
    p->len = len;
    if (len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy (p->data, packed, len);
    p->data[len] = 0;
    zhash_update (self->known[0], id, p); /* frees the profile it replaces */
    zhash_freefn (self->known[0], id, free);
}

static void s_forget (evaluation_t *self)
{
    zhash_destroy (&self->known[0]);
    zhash_destroy (&self->known[1]);
}

/* A batch's apply answered (rc as s_applied; -1 also a failed read): applied, what it
 * checked is known; else forgotten, all of it (a conflict: another writer; a failure: it
 * may or may not have applied). */
static void s_settled (evaluation_t *self, batch_t *batch, int rc)
{
    if (rc == 0)
        for (size_t i = 0; i + 1 < batch->checked.n; i += 2)
            s_know (self, batch->checked.v[i], batch->checked.v[i + 1],
                    s_strv_len (&batch->checked, i + 1));
    else
        s_forget (self);
    s_strv_free (&batch->checked);
}

/* Slot of a counter in a vector: its qp.v1.Figures field number; -1 when it is not one. */
static int s_slot (const char *counter)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name (&qp__v1__figures__descriptor, counter);
    if (!fd || (fd->type != PROTOBUF_C_TYPE_UINT64 && fd->type != PROTOBUF_C_TYPE_INT64) ||
        fd->id >= SLOTS)
        return -1;
    return (int) fd->id;
}

/* The vector of key in the sums (new: indexed as member_len last bytes of key in set). */
static vector_t *s_vector (sums_t *s, const char *key, const char *set, size_t member_len)
{
    vector_t *vec = zhashx_lookup (s->vectors, key);
    if (!vec) {
        vec = calloc (1, sizeof *vec);
        assert (vec);
        vec->set = set;
        size_t key_len = strlen (key); /* a key cut at its buffer's end: not past it */
        vec->member_len = member_len < key_len ? member_len : key_len;
        zhashx_insert (s->vectors, key, vec);
    }
    return vec;
}

static void s_index (sums_t *s, const char *set, const char *member)
{
    zhashx_t *members = zhashx_lookup (s->indexes, set);
    if (!members) {
        members = zhashx_new ();
        zhashx_insert (s->indexes, set, members);
    }
    zhashx_insert (members, member, "1");
}

/* The vector of dimension dim (len bytes, "*", "q:QPV", "s:SCHEME"...) of d's cell, and
 * the dimension in the cell's index the first time; NULL when the key would not fit. */
static vector_t *s_dim_vector (sums_t *s, batch_dossier_t *d, const char *dim, size_t len)
{
    for (size_t k = 0; k < d->n_dims; k++)
        if (d->dim_len[k] == len && !memcmp (d->dim[k], dim, len))
            return d->dim_vector[k];
    char key[512];
    size_t prefix = strlen (d->vectors);
    if (prefix + len >= sizeof key)
        return NULL;
    memcpy (key, d->vectors, prefix);
    memcpy (key + prefix, dim, len);
    key[prefix + len] = 0;
    /* indexed by the script when it is new (s_apply_args) */
    vector_t *vec = s_vector (s, key, d->dims, len);
    if (d->n_dims < DOSSIER_DIMS && len < sizeof d->dim[0]) {
        memcpy (d->dim[d->n_dims], dim, len);
        d->dim_len[d->n_dims] = len;
        d->dim_vector[d->n_dims++] = vec;
    }
    return vec;
}

static void s_add_slot (vector_t *vec, int slot, int64_t v)
{
    if (!vec)
        return;
    vec->v[slot] += v;
    vec->touched |= 1ULL << slot;
}

/* One increment of the dossier's cell (mode bit 1), of its QPV and network in the cell
 * (bit 2), of its territory's day (bit 4). field "s:SCHEME:counter" or "ag:AGENCY:counter"
 * is the scheme's or agency's breakdown in the cell. */
static void s_sum_mode (sums_t *s, batch_dossier_t *d, const char *field, int64_t v, int mode)
{
    const char *dim = "*", *counter = field, *colon = strrchr (field, ':');
    size_t dim_len = 1;
    if (colon) {
        dim = field;
        dim_len = (size_t) (colon - field) < 159 ? (size_t) (colon - field) : 159;
        counter = colon + 1;
    }
    int slot = s_slot (counter);
    if (slot < 0 || v == 0)
        return;
    if (mode & 1)
        s_add_slot (s_dim_vector (s, d, dim, dim_len), slot, v);
    if (mode & 2)
        for (int k = 4; k <= 5; k++) {
            size_t len = strlen (d->p[k]);
            if (!len || strlen (d->vectors) + 3 + len >= 512)
                continue;
            char name[512];
            name[0] = k == 4 ? 'q' : 'n';
            name[1] = ':';
            memcpy (name + 2, d->p[k], len);
            s_add_slot (s_dim_vector (s, d, name, len + 2), slot, v);
        }
    if (mode & 4) {
        if (!d->day_vector) {
            d->day_vector = s_vector (s, d->day, d->days, strlen (d->p[2]));
        }
        s_add_slot (d->day_vector, slot, v);
    }
}

/* The increments of one new event (its ops: field, value, mode). */
static void s_sum_event (sums_t *s, batch_dossier_t *d, char **ops, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const char *f = ops[3 * k], *v = ops[3 * k + 1];
        int mode = atoi (ops[3 * k + 2]);
        if (mode >= 16) {
            /* funded: the bank loan it leveraged and the focus figures, from the profile */
            s_sum_mode (s, d, "bank_loan_cents", strtoll (d->p[8], NULL, 10), 7);
            if (!strcmp (d->p[6], "1"))
                s_sum_mode (s, d, "women_funded", 1, 3);
            if (!strcmp (d->p[7], "1"))
                s_sum_mode (s, d, "under_30_funded", 1, 3);
        } else if (mode >= 8) {
            /* a follow-up replaces the previous one of its year */
            int year = atoi (f + 1);
            if (year < 1 || year > 3)
                continue;
            static const char *const names[4][3] = {
                {"", "", ""},
                {"followed_y1", "active_y1", "jobs_created_y1"},
                {"followed_y2", "active_y2", "jobs_created_y2"},
                {"followed_y3", "active_y3", "jobs_created_y3"}};
            long long oa, oj, na = 0, nj = 0;
            if (*d->fu_now[year] && sscanf (d->fu_now[year], "%lld:%lld", &oa, &oj) == 2) {
                s_sum_mode (s, d, names[year][0], -1, 3);
                s_sum_mode (s, d, names[year][1], -oa, 3);
                s_sum_mode (s, d, names[year][2], -oj, 3);
            }
            sscanf (v, "%lld:%lld", &na, &nj);
            s_sum_mode (s, d, names[year][0], 1, 3);
            s_sum_mode (s, d, names[year][1], na, 3);
            s_sum_mode (s, d, names[year][2], nj, 3);
            text_t t = s_text (d->fu_now[year], sizeof d->fu_now[year]);
            s_put (&t, v);
        } else
            s_sum_mode (s, d, f, strtoll (v, NULL, 10), mode);
    }
}

static redisReply *s_script (evaluation_t *self, strv_t *args)
{
    const char *keys[] = {K_CELLS, K_TERRITORIES, K_META, QP_STORE_OUTBOX_KEY};
    size_t *lens = malloc ((args->n + 1) * sizeof *lens);
    assert (lens);
    for (size_t i = 0; i < args->n; i++)
        lens[i] = s_strv_len (args, i);
    redisReply *r = qp_redis_script (self->redis, QP_LUA_EVAL_APPLY, 4, keys, (int) args->n,
                                     (const char **) args->v, lens);
    free (lens);
    return r;
}

/* "apply" with the batch's outbox members after its arguments (binary: with lengths).
 * *send: sent without waiting (its reply for qp_redis_collect), else false and the reply. */
static redisReply *s_script_acked (evaluation_t *self, const batch_t *b, strv_t *args, bool *send)
{
    size_t n = args->n + 1 + b->n_acks;
    const char **argv = malloc (n * sizeof *argv);
    size_t *lens = malloc (n * sizeof *lens);
    assert (argv && lens);
    char na[24];
    snprintf (na, sizeof na, "%zu", b->n_acks);
    size_t k = 0;
    for (size_t i = 0; i < args->n; i++)
        argv[k] = args->v[i], lens[k++] = s_strv_len (args, i);
    argv[k] = na, lens[k++] = strlen (na);
    for (size_t i = 0; i < b->n_acks; i++)
        argv[k] = b->acks[i].data, lens[k++] = b->acks[i].len;
    const char *keys[] = {K_CELLS, K_TERRITORIES, K_META, QP_STORE_OUTBOX_KEY};
    redisReply *r = NULL;
    if (*send)
        *send = qp_redis_script_send (self->redis, QP_LUA_EVAL_APPLY, 4, keys, (int) n, argv,
                                      lens) == 0;
    if (!*send)
        r = qp_redis_script (self->redis, QP_LUA_EVAL_APPLY, 4, keys, (int) n, argv, lens);
    free (argv);
    free (lens);
    return r;
}

/* An apply's answer: 0 applied, 1 some dossier was counted meanwhile (read again), -1
 * Redis failed. */
static int s_applied (redisReply *r)
{
    int rc = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        qp_log_error ("eval_apply_failed", "%s", r && r->str ? r->str : "Redis unreachable");
        rc = -1;
    } else if (r->elements)
        rc = 1;
    if (r)
        freeReplyObject (r);
    return rc;
}

/* The batch's dossiers, as Redis has them. -1 when Redis failed. */
static int s_read_dossiers (evaluation_t *self, zlistx_t *order)
{
    size_t n = 0;
    for (batch_dossier_t *d = zlistx_first (order); d; d = zlistx_next (order))
        n += !d->own;
    if (!n)
        return 0; /* only acks to pass on, or every profile known */
    strv_t args = {0};
    s_strv_add (&args, "read");
    for (batch_dossier_t *d = zlistx_first (order); d; d = zlistx_next (order)) {
        if (d->own)
            continue;
        s_strv_add (&args, d->bucket);
        s_strv_add_bin (&args, d->field, d->field_len);
        s_strv_add (&args, d->id);
    }
    redisReply *r = s_script (self, &args);
    s_strv_free (&args);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        qp_log_error ("eval_read_failed", "%s", r && r->str ? r->str : "Redis unreachable");
        if (r)
            freeReplyObject (r);
        return -1;
    }
    size_t i = 0;
    for (batch_dossier_t *d = zlistx_first (order); d; d = zlistx_next (order)) {
        if (d->own)
            continue;
        const redisReply *h = r->element[i++];
        if (h->type == REDIS_REPLY_STRING) {
            d->read = malloc (h->len + 1);
            assert (d->read);
            memcpy (d->read, h->str, h->len + 1);
            d->read_len = h->len;
            s_profile_unpack (d, h->str, h->len);
            continue;
        }
        /* no field in the bucket: the hash of before the buckets, if any (moved into the
         * bucket when something of the dossier is counted) */
        d->old = h->type == REDIS_REPLY_ARRAY && h->elements > 0;
        const char *values[PROFILE_FIELDS] = {0};
        for (size_t k = 0; h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2) {
            const char *f = h->element[k]->str, *v = h->element[k + 1]->str;
            int p = -1;
            for (int j = 0; j < PROFILE_FIELDS && p < 0; j++)
                if (!strcmp (f, s_profile_names[j]))
                    p = j;
            if (p >= 0)
                values[p] = v;
            else if (!strncmp (f, "fu", 2) && f[2] >= '1' && f[2] <= '3' && !f[3]) {
                snprintf (d->fu_read[f[2] - '0'], sizeof d->fu_read[0], "%s", v);
                snprintf (d->fu_now[f[2] - '0'], sizeof d->fu_now[0], "%s", v);
            } else {
                char token[160];
                snprintf (token, sizeof token, "%s", f);
                s_clean_token (token);
                s_strv_add (&d->known, token);
            }
        }
        if (values[0]) {
            d->stored = true;
            char *out = d->profile;
            size_t left = sizeof d->profile;
            for (int j = 0; j < PROFILE_FIELDS; j++) {
                int w = snprintf (out, left, "%s%s", j ? "|" : "", values[j] ? values[j] : "");
                if (w < 0 || (size_t) w >= left)
                    break;
                out += w, left -= (size_t) w;
            }
        }
    }
    freeReplyObject (r);
    return 0;
}

static char *s_count (strv_t *args, size_t n)
{
    char text[24];
    return s_strv_copy (args, s_itoa ((long long) n, text));
}

static void s_add_count (strv_t *args, size_t n)
{
    char text[24];
    s_strv_add (args, s_itoa ((long long) n, text));
}

/* The arguments of "apply": expectations and writes per dossier, sums per key. */
static void s_apply_args (const zlistx_t *order_c, sums_t *s, strv_t *args, batch_t *batch)
{
    zlistx_t *order = (zlistx_t *) order_c;
    s_strv_add (args, "apply");
    s_strv_free (&batch->checked);
    size_t nd = 0;
    for (batch_dossier_t *d = zlistx_first (order); d; d = zlistx_next (order))
        nd += d->applied > 0 || d->own;
    s_add_count (args, nd);
    for (batch_dossier_t *d = zlistx_first (order); d; d = zlistx_next (order)) {
        if (!d->applied && !d->own)
            continue;
        /* the profile as read (whole: profile, tokens, follow-ups) must still be there;
         * one from the instance's own copy too, even with nothing new (its events were
         * found counted in it) */
        s_strv_add (args, d->bucket);
        s_strv_add_bin (args, d->field, d->field_len);
        s_strv_add_bin (args, d->read ? d->read : "", d->read_len);
        size_t len = d->read_len;
        char *packed = d->applied ? s_profile_pack (d, &len) : NULL;
        /* unchanged: the same bytes, which the script does not write again */
        s_strv_add_bin (args, packed ? packed : d->read ? d->read : "", len);
        s_strv_add (&batch->checked, d->id);
        s_strv_add_bin (&batch->checked, packed ? packed : d->read ? d->read : "", len);
        free (packed);
        if (d->old) {
            char *key = malloc (strlen (d->id) + 16);
            assert (key);
            s_strv_add (args, strcat (strcpy (key, "qp:eval:d:"), d->id));
            free (key);
        } else
            s_strv_add (args, "");
    }
    size_t count_at = args->n, n = 0;
    s_strv_add (args, "0");
    for (vector_t *v = zhashx_first (s->vectors); v; v = zhashx_next (s->vectors)) {
        /* the vector's increments in one argument, "#SLOT VALUE" pairs separated by
         * spaces; the script makes them INCRBY i64 #SLOT VALUE (one argument per vector,
         * not four per increment: hiredis formats each argument with sprintf and Redis
         * parses it). Prefixed "L;": the key's last L bytes are its index member, which
         * the script adds only when the vector is new (a SADD per cell and territory of
         * every batch was a fifth of the calls, nearly all finding the member there) */
        const char *key = zhashx_cursor (s->vectors);
        char ops[SLOTS * 26 + 24];
        text_t t = s_text (ops, sizeof ops);
        s_put_ll (&t, (long long) v->member_len);
        s_put_c (&t, ';');
        const char *first = t.p;
        for (int k = 0; k < SLOTS; k++)
            if ((v->touched >> k & 1) && v->v[k] != 0) {
                if (t.p > first)
                    s_put_c (&t, ' ');
                s_put_c (&t, '#');
                s_put_ll (&t, k);
                s_put_c (&t, ' ');
                s_put_ll (&t, v->v[k]);
            }
        if (t.p == first) {
            /* increments that cancel out: nothing to add, indexed all the same (as
             * when every vector summed was indexed here) */
            s_index (s, v->set, key + strlen (key) - v->member_len);
            continue;
        }
        s_strv_add (args, key);
        s_strv_add_bin (args, ops, (size_t) (t.p - ops));
        n++;
    }
    args->v[count_at] = s_count (args, n);
    /* index sets, at most 1000 members a call (Lua's unpack has a limit) */
    count_at = args->n, n = 0;
    s_strv_add (args, "0");
    for (zhashx_t *m = zhashx_first (s->indexes); m; m = zhashx_next (s->indexes)) {
        size_t left = zhashx_size (m), in_call = 0;
        for (void *x = zhashx_first (m); x; x = zhashx_next (m)) {
            if (in_call == 0) {
                s_strv_add (args, zhashx_cursor (s->indexes));
                s_add_count (args, left < 1000 ? left : 1000);
                n++;
            }
            s_strv_add (args, zhashx_cursor (m));
            left--;
            if (++in_call == 1000)
                in_call = 0;
        }
    }
    args->v[count_at] = s_count (args, n);
    s_add_count (args, s->applied);
    s_strv_add (args, s->as_of);
}

/* "PREFIX" "T|M|A" "suffix" of d's cell into out. */
static void s_cell_key (char *out, size_t size, const char *prefix, const batch_dossier_t *d,
                        const char *suffix)
{
    text_t t = s_text (out, size);
    s_put (&t, prefix);
    s_put (&t, d->p[0]);
    s_put_c (&t, '|');
    s_put (&t, d->p[1]);
    s_put_c (&t, '|');
    s_put (&t, d->p[3]);
    s_put (&t, suffix);
}

/* One attempt: 0 applied, 1 someone counted some of these dossiers meanwhile (read
 * again), -1 Redis failed; with send, 2: the apply was sent, its answer is for s_collect. */
static int s_flush_once (evaluation_t *self, batch_t *batch, bool send)
{
    zhashx_t *dossiers = zhashx_new ();
    zhashx_set_destructor (dossiers, s_batch_dossier_free);
    zlistx_t *order = zlistx_new (); /* first appearance order */
    for (size_t i = 0; i < batch->n_events; i++) {
        const char *id = batch->args.v[batch->events[i].first];
        if (zhashx_lookup (dossiers, id))
            continue;
        batch_dossier_t *d = calloc (1, sizeof *d);
        assert (d);
        d->id = id;
        s_profile_place (id, d->bucket, sizeof d->bucket, d->packed_id, &d->field, &d->field_len);
        const profile_t *known = s_known (self, id);
        if (known) {
            d->read = malloc (known->len + 1);
            assert (d->read);
            memcpy (d->read, known->data, known->len + 1);
            d->read_len = known->len;
            s_profile_unpack (d, known->data, known->len);
            d->own = true;
        }
        zhashx_insert (dossiers, id, d);
        zlistx_add_end (order, d);
    }
    int rc = s_read_dossiers (self, order);
    sums_t s = {.vectors = zhashx_new (), .indexes = zhashx_new ()};
    zhashx_set_destructor (s.vectors, s_free_value);
    zhashx_set_destructor (s.indexes, s_free_hash);
    for (size_t i = 0; rc == 0 && i < batch->n_events; i++) {
        const queued_t *e = &batch->events[i];
        char **a = batch->args.v + e->first;
        batch_dossier_t *d = zhashx_lookup (dossiers, a[0]);
        if (!*d->profile && *a[2]) {
            text_t t = s_text (d->profile, sizeof d->profile);
            s_put (&t, a[2]);
        }
        if (!*d->profile) {
            /* no profile yet: the one of its DossierReceived later in the batch, else the
             * stored dossier's, else the event's territory and business time */
            for (size_t k = i + 1; k < batch->n_events && !*d->profile; k++) {
                char **b = batch->args.v + batch->events[k].first;
                if (!strcmp (b[0], a[0]) && *b[2]) {
                    text_t t = s_text (d->profile, sizeof d->profile);
                    s_put (&t, b[2]);
                }
            }
            if (!*d->profile)
                s_stored_profile (self, a[0], e->fallback, d->profile, sizeof d->profile);
        }
        if (!d->p[0]) {
            s_split_profile (d);
            s_cell_key (d->cell, sizeof d->cell, "qp:eval:c:", d, "");
            s_cell_key (d->vectors, sizeof d->vectors, "qp:eval:v:", d, "|");
            s_cell_key (d->dims, sizeof d->dims, "qp:eval:k:", d, "");
            text_t t = s_text (d->day, sizeof d->day);
            s_put (&t, "qp:eval:dv:");
            s_put (&t, d->p[0]);
            s_put_c (&t, '|');
            s_put (&t, d->p[2]);
            t = s_text (d->days, sizeof d->days);
            s_put (&t, "qp:eval:days:");
            s_put (&t, d->p[0]);
        }
        const char *token = a[1];
        if (*token) {
            if (s_counted (d, token))
                continue;
            s_strv_add (&d->fresh, token);
        }
        s_sum_event (&s, d, a + 3, (e->count - 3) / 3);
        if (!d->indexed) {
            s_index (&s, K_CELLS, d->cell);
            s_index (&s, K_TERRITORIES, d->p[0]);
            d->indexed = true;
        }
        if (strcmp (d->p[2], s.as_of) > 0)
            snprintf (s.as_of, sizeof s.as_of, "%s", d->p[2]);
        d->applied++;
        s.applied++;
    }
    bool own = false; /* profiles not read: the apply checks them, even with nothing new */
    for (batch_dossier_t *d = zlistx_first (order); d && !own; d = zlistx_next (order))
        own = d->own;
    if (rc == 0 && (s.applied || batch->n_acks || own)) {
        strv_t args = {0};
        s_apply_args (order, &s, &args, batch);
        redisReply *r = s_script_acked (self, batch, &args, &send);
        s_strv_free (&args);
        rc = send ? 2 : s_applied (r);
    }
    if (rc != 2)
        s_settled (self, batch, rc);
    zhashx_destroy (&s.vectors);
    zhashx_destroy (&s.indexes);
    zlistx_destroy (&order);
    zhashx_destroy (&dossiers);
    return rc;
}

/* Applies batch (read again on a conflict, up to 8 times); the batch is emptied. rc: a
 * first attempt's answer already known (s_collect), or 1 to start with a read. */
static int s_flush_batch (evaluation_t *self, batch_t *batch, int rc)
{
    /* a conflict means another instance counted one of these dossiers between the read
     * and the apply: reading again sees it */
    for (int attempt = 0; attempt < 8 && rc == 1; attempt++)
        rc = s_flush_once (self, batch, false);
    if (rc)
        qp_log_error ("eval_lost", "%zu events not counted now (%zu of them stay in the outbox, "
                      "published again by its sweeper): %s", batch->n_events, batch->n_acks,
                      rc < 0 ? "Redis failed" : "still conflicting after 8 reads");
    s_batch_reset (batch);
    return rc ? -1 : 0;
}

/* The answer of the apply sent (s_flush_full): nothing to do when applied, read and apply
 * again the kept batch on a conflict. 0, or -1 when that batch could not be counted. */
static int s_collect (evaluation_t *self)
{
    batch_t *batch = self->sent;
    if (!batch)
        return 0;
    self->sent = NULL;
    int rc = s_applied (qp_redis_collect (self->redis));
    s_settled (self, batch, rc);
    return s_flush_batch (self, batch, rc);
}

/* A full batch (or the timer's): the previous apply's answer is collected, this batch's
 * apply is sent, and the service fills the other batch while Redis applies this one. */
static void s_flush_full (evaluation_t *self)
{
    s_collect (self);
    batch_t *batch = self->b;
    if (!batch->n_events && !batch->n_acks)
        return;
    int rc = s_flush_once (self, batch, true);
    if (rc == 2) {
        self->sent = batch;
        self->b = batch == &self->batches[0] ? &self->batches[1] : &self->batches[0];
    } else
        s_flush_batch (self, batch, rc);
}

void evaluation_set_batch_events (evaluation_t *self, size_t events)
{
    self->batch_events = events < 1 ? 1 : events > BATCH_EVENTS ? BATCH_EVENTS : events;
}

int evaluation_flush (evaluation_t *self)
{
    int rc = s_collect (self);
    if (!self->b->n_events && !self->b->n_acks)
        return rc;
    return s_flush_batch (self, self->b, 1) || rc ? -1 : 0;
}

void evaluation_ack (evaluation_t *self, const void *type, size_t type_len, const void *envelope,
                     size_t envelope_len)
{
    batch_t *batch = self->b;
    if (batch->n_acks == batch->cap_acks) {
        batch->cap_acks = batch->cap_acks ? 2 * batch->cap_acks : 1024;
        batch->acks = realloc (batch->acks, batch->cap_acks * sizeof *batch->acks);
        assert (batch->acks);
    }
    qp_store_blob_t *b = &batch->acks[batch->n_acks++];
    b->len = type_len + 1 + envelope_len;
    char *data = s_strv_alloc (&batch->args, b->len);
    if (type_len) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy (data, type, type_len);
    data[type_len] = 0;
    if (envelope_len)
        memcpy (data + type_len + 1, envelope, envelope_len);
    b->data = data;
    if (batch->n_acks >= self->batch_events)
        s_flush_full (self);
}

/* ---- Rebuild ------------------------------------------------------------------------------ */

static void s_apply_packed (evaluation_t *self, const ProtobufCMessageDescriptor *d,
                            const redisReply *value, Qp__V1__Envelope *env)
{
    ProtobufCMessage *m =
        protobuf_c_message_unpack (d, NULL, value->len, (const uint8_t *) value->str);
    if (!m)
        return;
    qp_message_t msg = {.envelope = env, .payload = m, .descriptor = d};
    evaluation_apply (self, &msg);
    protobuf_c_message_free_unpacked (m, NULL);
}

/* Replays one stored dossier as the events its steps published. */
static void s_rebuild_dossier (evaluation_t *self, const char *id, const redisReply *h)
{
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    const redisReply *dossier = NULL, *eligibility = NULL, *request = NULL;
    const char *state = NULL, *territory = NULL, *committed = NULL;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str;
        const redisReply *v = h->element[i + 1];
        if (!strcmp (f, "dossier"))
            dossier = v;
        else if (!strcmp (f, "eligibility"))
            eligibility = v;
        else if (!strcmp (f, "request"))
            request = v;
        else if (!strcmp (f, "state"))
            state = v->str;
        else if (!strcmp (f, "territory"))
            territory = v->str;
        else if (!strcmp (f, "committed_cents"))
            committed = v->str;
        else if (!strcmp (f, "event_time_ms"))
            env.has_event_time_ms = true, env.event_time_ms = strtoll (v->str, NULL, 10);
    }
    if (dossier) {
        Qp__V1__Dossier *d =
            qp__v1__dossier__unpack (NULL, dossier->len, (const uint8_t *) dossier->str);
        if (d) {
            Qp__V1__DossierReceived m = QP__V1__DOSSIER_RECEIVED__INIT;
            m.dossier_id = (char *) id;
            m.dossier = d;
            qp_message_t msg = {.envelope = &env, .payload = &m.base,
                                .descriptor = &qp__v1__dossier_received__descriptor};
            evaluation_apply (self, &msg);
            qp__v1__dossier__free_unpacked (d, NULL);
        }
    }
    if (eligibility)
        s_apply_packed (self, &qp__v1__eligibility_decided__descriptor, eligibility, &env);
    if (request)
        s_apply_packed (self, &qp__v1__funding_request__descriptor, request, &env);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str;
        if (!strncmp (f, "settlement", 10))
            s_apply_packed (self, &qp__v1__funding_settled__descriptor, h->element[i + 1], &env);
        else if (!strncmp (f, "followup_", 9))
            s_apply_packed (self, &qp__v1__follow_up__descriptor, h->element[i + 1], &env);
    }
    Qp__V1__DossierState s = state ? qp_store_state_parse (state) : 0;
    if (state && qp_store_state_terminal (s)) {
        Qp__V1__DossierClosed m = QP__V1__DOSSIER_CLOSED__INIT;
        m.dossier_id = (char *) id;
        m.has_final_state = true, m.final_state = s;
        m.territory = (char *) territory;
        m.has_committed_cents = true;
        m.committed_cents = committed ? strtoll (committed, NULL, 10) : 0;
        qp_message_t msg = {.envelope = &env, .payload = &m.base,
                            .descriptor = &qp__v1__dossier_closed__descriptor};
        evaluation_apply (self, &msg);
    }
}

/* SCANs keys matching pattern; calls fn on each key. -1 when Redis failed. */
static int s_scan (evaluation_t *self, const char *pattern,
                   void (*fn) (evaluation_t *, const char *key, void *), void *arg)
{
    char cursor[32] = "0";
    do {
        redisReply *r = qp_redis_command (self->redis, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject (r);
            return -1;
        }
        snprintf (cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++)
            fn (self, r->element[1]->element[i]->str, arg);
        freeReplyObject (r);
    } while (strcmp (cursor, "0") != 0);
    return 0;
}

static void s_unlink_counter (evaluation_t *self, const char *key, void *arg)
{
    (void) arg;
    if (!strncmp (key, "qp:eval:phase:", 14))
        return; /* phases are inputs, not counters */
    redisReply *r = qp_redis_command (self->redis, "UNLINK %s", key);
    if (r)
        freeReplyObject (r);
}

static void s_rebuild_key (evaluation_t *self, const char *key, void *arg)
{
    /* qp:{ID}:d */
    const char *open = strchr (key, '{'), *close = strchr (key, '}');
    if (!open || !close || close <= open + 1 || strcmp (close, "}:d") != 0)
        return;
    char id[128];
    snprintf (id, sizeof id, "%.*s", (int) (close - open - 1), open + 1);
    redisReply *h = qp_redis_command (self->redis, "HGETALL %s", key);
    if (h && h->type == REDIS_REPLY_ARRAY) {
        s_rebuild_dossier (self, id, h);
        (*(long *) arg)++;
    }
    if (h)
        freeReplyObject (h);
}

/* A refusal's id and profile, kept across the rebuild: intake stores nothing of a
 * refused submission, so evaluation's record of it is the only one. arg: id -> profile.
 * A hash of before the buckets (qp:eval:d:r-MSGID). */
static void s_keep_refusal (evaluation_t *self, const char *key, void *arg)
{
    redisReply *r = qp_redis_command (self->redis, "HMGET %s t m d a q n w y b", key);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == PROFILE_FIELDS && r->element[0]->str) {
        char profile[512];
        int n = 0;
        for (size_t k = 0; k < PROFILE_FIELDS && n >= 0 && (size_t) n < sizeof profile; k++)
            n += snprintf (profile + n, sizeof profile - (size_t) n, "%s%s", k ? "|" : "",
                           r->element[k]->str ? r->element[k]->str : "");
        const char *id = key + strlen ("qp:eval:d:");
        if (!zhashx_lookup (arg, id))
            zhashx_insert (arg, id, strdup (profile));
    }
    if (r)
        freeReplyObject (r);
}

/* The refusals of a profile bucket (fields "r-" + 16 bytes, or "r-" + the id as it is). */
static void s_keep_refusals_bucket (evaluation_t *self, const char *key, void *arg)
{
    redisReply *r = qp_redis_command (self->redis, "HGETALL %s", key);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->len < 2 || memcmp (f->str, REFUSAL, 2) || v->type != REDIS_REPLY_STRING)
            continue;
        char id[512];
        if (f->len == 2 + QP_ID_HEX / 2) {
            memcpy (id, REFUSAL, 2);
            for (size_t k = 0; k < QP_ID_HEX / 2; k++)
                snprintf (id + 2 + 2 * k, 3, "%02x", (unsigned char) f->str[2 + k]);
        } else
            snprintf (id, sizeof id, "%.*s", (int) f->len, f->str);
        batch_dossier_t *d = calloc (1, sizeof *d);
        assert (d);
        s_profile_unpack (d, v->str, v->len);
        if (*d->profile)
            zhashx_update (arg, id, strdup (d->profile));
        s_strv_free (&d->known);
        free (d);
    }
    if (r)
        freeReplyObject (r);
}

long evaluation_rebuild (evaluation_t *self)
{
    long dossiers = 0;
    evaluation_flush (self);
    s_forget (self); /* the profiles go with the counters */
    zhashx_t *refusals = zhashx_new ();
    zhashx_set_destructor (refusals, s_free_value);
    if (s_scan (self, "qp:eval:p:*", s_keep_refusals_bucket, refusals) ||
        s_scan (self, "qp:eval:d:" REFUSAL "*", s_keep_refusal, refusals) ||
        s_scan (self, "qp:eval:*", s_unlink_counter, NULL) ||
        s_scan (self, "qp:{*}:d", s_rebuild_key, &dossiers)) {
        zhashx_destroy (&refusals);
        return -1;
    }
    /* in id order: the same batches whatever the scans' order */
    zlistx_t *ids = zhashx_keys (refusals);
    zlistx_set_comparator (ids, (zlistx_comparator_fn *) strcmp);
    zlistx_sort (ids);
    for (const char *id = zlistx_first (ids); id; id = zlistx_next (ids))
        s_queue_refusal (self, id, zhashx_lookup (refusals, id));
    zlistx_destroy (&ids);
    zhashx_destroy (&refusals);
    if (evaluation_flush (self))
        return -1;
    qp_log_info ("eval_rebuilt", "counters recomputed from %ld stored dossiers", dossiers);
    return dossiers;
}

/* ---- Phases ------------------------------------------------------------------------------- */

int evaluation_record_phase (evaluation_t *self, const Qp__V1__TerritoryPhase *p, qp_error_t *err)
{
    int32_t start, end, day;
    if (!p->territory || !*p->territory || strpbrk (p->territory, "|:{} ")) {
        qp_error_set (err, "bad_field", "territory", "a territory id is required (no spaces, '|', ':')");
        return -1;
    }
    if (!p->has_phase || p->phase == QP__V1__PHASE__PHASE_UNSPECIFIED ||
        !protobuf_c_enum_descriptor_get_value (&qp__v1__phase__descriptor, p->phase)) {
        qp_error_set (err, "bad_field", "phase",
                      "one of LABELLISATION, INCUBATION, ACCELERATION, EVALUATION");
        return -1;
    }
    if (!p->started_on || !qp_date_parse (p->started_on, &start)) {
        qp_error_set (err, "bad_field", "started_on", "a date YYYY-MM-DD is required");
        return -1;
    }
    if (p->ended_on && (!qp_date_parse (p->ended_on, &end) || end < start)) {
        qp_error_set (err, "bad_field", "ended_on", "a date YYYY-MM-DD on or after started_on");
        return -1;
    }
    const char *const milestones[][2] = {{"diagnostic_on", p->diagnostic_on},
                                         {"roadmap_on", p->roadmap_on}};
    for (int i = 0; i < 2; i++)
        if (milestones[i][1] && !qp_date_parse (milestones[i][1], &day)) {
            qp_error_set (err, "bad_field", milestones[i][0], "a date YYYY-MM-DD");
            return -1;
        }
    size_t len = qp__v1__territory_phase__get_packed_size (p);
    uint8_t buf[len + 1];
    qp__v1__territory_phase__pack (p, buf);
    redisReply *r = qp_redis_command (self->redis, "HSET qp:eval:phase:%s %s %b", p->territory,
                                      s_enum_name (&qp__v1__phase__descriptor, p->phase), buf, len);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r)
        freeReplyObject (r);
    if (!ok) {
        qp_error_set (err, "internal", NULL, "store unavailable, retry");
        return -1;
    }
    return 0;
}

/* ---- Reading counter vectors -------------------------------------------------------------- */

/* Counters as (name, value) pairs: "submitted", "q:QPV:submitted", "s:phq:approved"... */
typedef struct {
    strv_t names;
    int64_t *values;
} counters_t;

static void s_counters_free (counters_t *c)
{
    s_strv_free (&c->names);
    free (c->values);
    c->values = NULL;
}

static void s_counter (counters_t *c, const char *dim, const char *name, int64_t v)
{
    if (strcmp (dim, "*"))
        s_strv_addf (&c->names, "%s:%s", dim, name);
    else
        s_strv_add (&c->names, name);
    c->values = realloc (c->values, c->names.cap * sizeof *c->values);
    assert (c->values);
    c->values[c->names.n - 1] = v;
}

/* Decodes one vector (BITFIELD i64 slots, big-endian) into c, names prefixed by dim. */
static void s_decode (counters_t *c, const char *dim, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return;
    const unsigned char *b = (const unsigned char *) r->str;
    for (size_t slot = 1; (slot + 1) * 8 <= r->len; slot++) {
        uint64_t u = 0;
        for (int k = 0; k < 8; k++)
            u = u << 8 | b[slot * 8 + k];
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field (&qp__v1__figures__descriptor, (unsigned) slot);
        if (u && fd)
            s_counter (c, dim, fd->name, (int64_t) u);
    }
}

/* MGET of prefix+member for each member of set (chosen by keep); decoded into c. */
static int s_read_vectors (evaluation_t *self, const char *set, const char *prefix,
                           bool (*keep) (const char *member, void *arg), void *arg,
                           counters_t *c, void (*each) (counters_t *, const char *member, void *),
                           void *each_arg)
{
    redisReply *members = qp_redis_command (self->redis, "SMEMBERS %s", set);
    if (!members || members->type != REDIS_REPLY_ARRAY) {
        if (members)
            freeReplyObject (members);
        return -1;
    }
    strv_t argv = {0}, kept = {0};
    s_strv_add (&argv, "MGET");
    for (size_t i = 0; i < members->elements; i++)
        if (!keep || keep (members->element[i]->str, arg)) {
            s_strv_addf (&argv, "%s%s", prefix, members->element[i]->str);
            s_strv_add (&kept, members->element[i]->str);
        }
    freeReplyObject (members);
    int rc = 0;
    if (kept.n) {
        redisReply *r = qp_redis_argv (self->redis, (int) argv.n, (const char **) argv.v, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != kept.n)
            rc = -1;
        for (size_t i = 0; rc == 0 && i < kept.n; i++) {
            s_decode (c, each ? "*" : kept.v[i], r->element[i]);
            if (each)
                each (c, kept.v[i], each_arg);
        }
        if (r)
            freeReplyObject (r);
    }
    s_strv_free (&argv);
    s_strv_free (&kept);
    return rc;
}

static bool s_keep_dim (const char *dim, void *arg)
{
    bool breakdowns = *(bool *) arg;
    return breakdowns || (strncmp (dim, "q:", 2) && strncmp (dim, "n:", 2));
}

/* The counters of cell "qp:eval:c:T|M|A" (QPV and network breakdowns only when asked). */
static int s_read_cell (evaluation_t *self, const char *cell, bool breakdowns, counters_t *c)
{
    const char *base = cell + strlen ("qp:eval:c:");
    char set[320], prefix[320];
    snprintf (set, sizeof set, "qp:eval:k:%s", base);
    snprintf (prefix, sizeof prefix, "qp:eval:v:%s|", base);
    return s_read_vectors (self, set, prefix, s_keep_dim, &breakdowns, c, NULL, NULL);
}

/* ---- Reading the indicators ------------------------------------------------------------------ */

#define NF ((size_t) qp__v1__figures__descriptor.n_fields)

static int s_idx (const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name (&qp__v1__figures__descriptor, name);
    return f ? (int) (f - qp__v1__figures__descriptor.fields) : -1;
}

static void s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static int64_t *s_sums (zhashx_t *acc, const char *key)
{
    int64_t *s = zhashx_lookup (acc, key);
    if (!s) {
        s = calloc (NF, sizeof *s);
        assert (s);
        zhashx_insert (acc, key, s);
    }
    return s;
}

static bool s_scheme_dependent (const char *f)
{
    static const char *const names[] = {"eligible", "funding_requested", "approved", "declined",
                                        "unfunded", "committed_cents", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp (names[i], f))
            return true;
    return false;
}

static double s_ratio (int64_t a, int64_t b, int64_t min_b)
{
    return b >= min_b && b > 0 ? (double) a / (double) b : NAN;
}

/* Figures from sums; mask: small-cell suppression (counts under 5, and money where fewer
 * than 5 dossiers were funded or approved). */
static Qp__V1__Figures *s_figures (const int64_t *sums, bool mask)
{
    Qp__V1__Figures *f = malloc (sizeof *f);
    assert (f);
    qp__v1__figures__init (f);
    const ProtobufCMessageDescriptor *d = &qp__v1__figures__descriptor;
    int64_t funded = sums[s_idx ("funded")], approved = sums[s_idx ("approved")];
    bool few = funded < 5 && approved < 5;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        int64_t v = sums[i];
        if (fd->type != PROTOBUF_C_TYPE_UINT64 && fd->type != PROTOBUF_C_TYPE_INT64)
            continue;
        if (mask && v != 0 &&
            ((fd->type == PROTOBUF_C_TYPE_UINT64 && v < 5) || (fd->type == PROTOBUF_C_TYPE_INT64 && few))) {
            f->has_suppressed = true, f->suppressed = true;
            continue;
        }
        *(protobuf_c_boolean *) ((char *) f + fd->quantifier_offset) = 1;
        *(int64_t *) ((char *) f + fd->offset) = v;
    }
    int64_t min = mask ? 5 : 1;
    struct {
        const char *out, *a, *b;
        double scale;
    } ratios[] = {{"leverage_ratio", "bank_loan_cents", "honour_loan_cents", 1},
                  {"survival_y1_pct", "active_y1", "followed_y1", 100},
                  {"survival_y2_pct", "active_y2", "followed_y2", 100},
                  {"survival_y3_pct", "active_y3", "followed_y3", 100},
                  {"women_pct", "women", "gender_declared", 100},
                  {"under_30_pct", "under_30", "age_declared", 100}};
    for (size_t i = 0; i < sizeof ratios / sizeof ratios[0]; i++) {
        bool money = !strcmp (ratios[i].out, "leverage_ratio");
        double r = s_ratio (sums[s_idx (ratios[i].a)], sums[s_idx (ratios[i].b)], money ? 1 : min);
        if (isnan (r) || (money && mask && few))
            continue;
        const ProtobufCFieldDescriptor *fd = &d->fields[s_idx (ratios[i].out)];
        *(protobuf_c_boolean *) ((char *) f + fd->quantifier_offset) = 1;
        /* rounded to 0.01 so that a figure reads the same in every format */
        *(double *) ((char *) f + fd->offset) = round (r * ratios[i].scale * 100) / 100;
    }
    return f;
}

static void s_add (int64_t *sums, const char *field, long long v)
{
    int i = s_idx (field);
    if (i >= 0)
        sums[i] += v;
}

typedef struct {
    const Qp__V1__IndicatorQuery *q;
    char from[8], until[8]; /* months, "" when open */
    const char *axis;       /* NULL: any */
} filter_t;

/* Parses "qp:eval:c:T|M|A"; true when the cell passes the filter. */
static bool s_cell_match (const filter_t *f, const char *key, char *t, size_t ts, char *m, char *a,
                          size_t as)
{
    const char *s = key + strlen ("qp:eval:c:");
    const char *b1 = strchr (s, '|'), *b2 = b1 ? strchr (b1 + 1, '|') : NULL;
    if (!b1 || !b2 || b2 - b1 - 1 != 7)
        return false;
    snprintf (t, ts, "%.*s", (int) (b1 - s), s);
    snprintf (m, 8, "%.7s", b1 + 1);
    snprintf (a, as, "%s", b2 + 1);
    if (f->q->territory && *f->q->territory && strcmp (f->q->territory, t))
        return false;
    if (*f->from && strcmp (m, f->from) < 0)
        return false;
    if (*f->until && strcmp (m, f->until) > 0)
        return false;
    if (f->axis && strcmp (f->axis, a))
        return false;
    return true;
}

/* Adds one cell's fields to its territory and the total (and their breakdowns). */
static void s_add_cell (zhashx_t *acc, const filter_t *f, const char *t, const char *month,
                        const char *axis, const counters_t *c, zhashx_t *envelope_months)
{
    const char *owners[2] = {t, "*"};
    const char *scheme = f->q->scheme_id && *f->q->scheme_id ? f->q->scheme_id : NULL;
    bool detail = f->q->has_breakdowns && f->q->breakdowns;
    for (size_t i = 0; i < c->names.n; i++) {
        const char *field = c->names.v[i];
        long long v = c->values[i];
        char dim[16] = "", value[96] = "", counter[64] = "";
        const char *colon = strchr (field, ':');
        if (colon) {
            const char *c2 = strchr (colon + 1, ':');
            if (!c2)
                continue;
            snprintf (dim, sizeof dim, "%.*s", (int) (colon - field), field);
            snprintf (value, sizeof value, "%.*s", (int) (c2 - colon - 1), colon + 1);
            snprintf (counter, sizeof counter, "%s", c2 + 1);
            if (!strcmp (dim, "s") && envelope_months) {
                char k[128];
                snprintf (k, sizeof k, "%s|%s", value, month);
                int64_t *e = s_sums (envelope_months, k);
                s_add (e, counter, v);
            }
        }
        for (int o = 0; o < 2; o++) {
            char key[256];
            if (!colon) {
                if (!(scheme && s_scheme_dependent (field)))
                    s_add (s_sums (acc, owners[o]), field, v);
                if (detail) {
                    snprintf (key, sizeof key, "%s\x1f" "axis\x1f%s", owners[o], axis);
                    s_add (s_sums (acc, key), field, v);
                    snprintf (key, sizeof key, "%s\x1fmonth\x1f%s", owners[o], month);
                    s_add (s_sums (acc, key), field, v);
                }
                continue;
            }
            if (!strcmp (dim, "s") && scheme && !strcmp (value, scheme))
                s_add (s_sums (acc, owners[o]), counter, v);
            if (!detail)
                continue;
            const char *name = !strcmp (dim, "s")    ? "scheme"
                               : !strcmp (dim, "ag") ? "agency"
                               : !strcmp (dim, "q")  ? "qpv"
                               : !strcmp (dim, "n")  ? "network"
                                                     : NULL;
            if (!name)
                continue;
            snprintf (key, sizeof key, "%s\x1f%s\x1f%s", owners[o], name, value);
            s_add (s_sums (acc, key), counter, v);
        }
    }
}

static int s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Sorted keys of acc starting with prefix. */
static char **s_sorted_keys (zhashx_t *acc, const char *prefix, size_t *n)
{
    zlistx_t *keys = zhashx_keys (acc);
    size_t cap = zlistx_size (keys), count = 0;
    char **out = calloc (cap + 1, sizeof *out);
    assert (out);
    for (const char *k = zlistx_first (keys); k; k = zlistx_next (keys))
        if (!strncmp (k, prefix, strlen (prefix)))
            out[count++] = strdup (k);
    zlistx_destroy (&keys);
    qsort (out, count, sizeof *out, s_cmp_str);
    *n = count;
    return out;
}

static void s_free_keys (char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free (keys[i]);
    free (keys);
}

static bool s_in_phase (const char *day, const Qp__V1__TerritoryPhase *p)
{
    return strcmp (day, p->started_on) >= 0 && (!p->ended_on || strcmp (day, p->ended_on) <= 0);
}

typedef struct {
    Qp__V1__TerritoryIndicators *ti;
    int64_t *sums;
} phase_sums_t;

/* One day's counters (in c) to the phases that contain the day; c emptied. */
static void s_add_day (counters_t *c, const char *day, void *arg)
{
    phase_sums_t *ps = arg;
    for (size_t i = 0; i < c->names.n; i++)
        for (size_t k = 0; k < ps->ti->n_phases; k++)
            if (s_in_phase (day, ps->ti->phases[k]->phase))
                s_add (ps->sums + k * NF, c->names.v[i], c->values[i]);
    s_counters_free (c);
}

/* The territory's phases, with the figures of the dossiers submitted during each
 * (from the day series). */
static void s_phases (evaluation_t *self, Qp__V1__TerritoryIndicators *ti, const char *as_of)
{
    redisReply *ph = qp_redis_command (self->redis, "HGETALL qp:eval:phase:%s", ti->territory);
    if (!ph || ph->type != REDIS_REPLY_ARRAY || !ph->elements) {
        if (ph)
            freeReplyObject (ph);
        return;
    }
    size_t n = ph->elements / 2;
    ti->phases = calloc (n, sizeof *ti->phases);
    int64_t *sums = calloc (n * NF, sizeof *sums);
    assert (ti->phases && sums);
    for (size_t i = 0; i < n; i++) {
        const redisReply *v = ph->element[2 * i + 1];
        Qp__V1__TerritoryPhase *p =
            qp__v1__territory_phase__unpack (NULL, v->len, (const uint8_t *) v->str);
        if (!p)
            continue;
        Qp__V1__PhaseFigures *pf = malloc (sizeof *pf);
        assert (pf);
        qp__v1__phase_figures__init (pf);
        pf->phase = p;
        ti->phases[ti->n_phases++] = pf;
    }
    freeReplyObject (ph);
    char set[160], prefix[160];
    snprintf (set, sizeof set, "qp:eval:days:%s", ti->territory);
    snprintf (prefix, sizeof prefix, "qp:eval:dv:%s|", ti->territory);
    phase_sums_t ps = {ti, sums};
    counters_t c = {0};
    s_read_vectors (self, set, prefix, NULL, NULL, &c, s_add_day, &ps);
    s_counters_free (&c);
    /* the current phase: the latest started that has not ended by the last business day */
    const char *latest = "";
    for (size_t k = 0; k < ti->n_phases; k++) {
        Qp__V1__TerritoryPhase *p = ti->phases[k]->phase;
        ti->phases[k]->figures = s_figures (sums + k * NF, false);
        if (strcmp (p->started_on, latest) > 0 && (!p->ended_on || !*as_of || strcmp (p->ended_on, as_of) >= 0)) {
            latest = p->started_on;
            ti->has_current_phase = true, ti->current_phase = p->phase;
        }
    }
    free (sums);
}

static double s_number (const json_t *j, const char *name)
{
    return json_number_value (json_object_get (j, name));
}

static const char *s_string (const json_t *j, const char *name)
{
    return json_string_value (json_object_get (j, name));
}

/* A figure of the total by name: a Figures field, or "s:SCHEME:counter". */
static double s_indicator (const Qp__V1__Figures *f, const int64_t *scheme_sums, const char *name,
                           zhashx_t *scheme_totals)
{
    (void) scheme_sums;
    if (!name)
        return NAN;
    if (!strncmp (name, "s:", 2)) {
        const char *c2 = strchr (name + 2, ':');
        if (!c2)
            return NAN;
        char scheme[96];
        snprintf (scheme, sizeof scheme, "%.*s", (int) (c2 - name - 2), name + 2);
        int64_t *s = zhashx_lookup (scheme_totals, scheme);
        int i = s_idx (c2 + 1);
        return s && i >= 0 ? (double) s[i] : 0;
    }
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name (&qp__v1__figures__descriptor, name);
    if (!fd || !*(protobuf_c_boolean *) ((const char *) f + fd->quantifier_offset))
        return NAN;
    if (fd->type == PROTOBUF_C_TYPE_DOUBLE)
        return *(const double *) ((const char *) f + fd->offset);
    return (double) *(const int64_t *) ((const char *) f + fd->offset);
}

static char *s_strdup (const char *s)
{
    return s ? strdup (s) : NULL;
}

/* Envelopes, targets and references, against the total. */
static void s_programme (evaluation_t *self, Qp__V1__IndicatorReport *r, zhashx_t *envelope_months)
{
    /* per-scheme totals over every month */
    zhashx_t *schemes = zhashx_new ();
    zhashx_set_destructor (schemes, s_free_item);
    size_t nk = 0;
    char **keys = s_sorted_keys (envelope_months, "", &nk);
    for (size_t i = 0; i < nk; i++) {
        char scheme[96];
        snprintf (scheme, sizeof scheme, "%.*s", (int) strcspn (keys[i], "|"), keys[i]);
        int64_t *m = zhashx_lookup (envelope_months, keys[i]);
        int64_t *s = s_sums (schemes, scheme);
        for (size_t k = 0; k < NF; k++)
            s[k] += m[k];
    }
    size_t n_env = json_array_size (self->envelopes);
    r->envelopes = calloc (n_env + 1, sizeof *r->envelopes);
    assert (r->envelopes);
    int ic = s_idx ("committed_cents"), ia = s_idx ("approved");
    for (size_t e = 0; e < n_env; e++) {
        json_t *j = json_array_get (self->envelopes, e);
        const char *scheme = s_string (j, "scheme");
        if (!scheme)
            continue;
        Qp__V1__EnvelopeUse *u = malloc (sizeof *u);
        assert (u);
        qp__v1__envelope_use__init (u);
        u->scheme_id = strdup (scheme);
        u->has_total_cents = true, u->total_cents = (int64_t) s_number (j, "total_cents");
        u->has_max_projects = true, u->max_projects = (uint64_t) s_number (j, "max_projects");
        u->source = s_strdup (s_string (j, "source"));
        int64_t *s = zhashx_lookup (schemes, scheme);
        u->has_committed_cents = true, u->committed_cents = s ? s[ic] : 0;
        u->has_projects = true, u->projects = s ? (uint64_t) s[ia] : 0;
        if (u->total_cents > 0)
            u->has_consumed_pct = true,
            u->consumed_pct = round (10000.0 * (double) u->committed_cents / (double) u->total_cents) / 100;
        if (u->max_projects > 0)
            u->has_projects_pct = true,
            u->projects_pct = round (10000.0 * (double) u->projects / (double) u->max_projects) / 100;
        u->series = calloc (nk + 1, sizeof *u->series);
        assert (u->series);
        int64_t cents = 0, count = 0;
        for (size_t i = 0; i < nk; i++) {
            size_t len = strcspn (keys[i], "|");
            if (strlen (scheme) != len || strncmp (keys[i], scheme, len))
                continue;
            int64_t *m = zhashx_lookup (envelope_months, keys[i]);
            cents += m[ic], count += m[ia];
            Qp__V1__MonthPoint *p = malloc (sizeof *p);
            assert (p);
            qp__v1__month_point__init (p);
            p->month = strdup (keys[i] + len + 1);
            p->has_cents = true, p->cents = cents;
            p->has_count = true, p->count = (uint64_t) count;
            u->series[u->n_series++] = p;
        }
        r->envelopes[r->n_envelopes++] = u;
    }
    s_free_keys (keys, nk);

    const Qp__V1__Figures *total = r->total ? r->total->figures : NULL;
    json_t *targets = json_object_get (self->targets, "targets");
    r->targets = calloc (json_array_size (targets) + 1, sizeof *r->targets);
    assert (r->targets);
    for (size_t i = 0; total && i < json_array_size (targets); i++) {
        json_t *j = json_array_get (targets, i);
        Qp__V1__TargetProgress *t = malloc (sizeof *t);
        assert (t);
        qp__v1__target_progress__init (t);
        t->id = s_strdup (s_string (j, "id"));
        t->label = s_strdup (s_string (j, "label"));
        t->indicator = s_strdup (s_string (j, "indicator"));
        t->by = s_strdup (s_string (j, "by"));
        t->source = s_strdup (s_string (j, "source"));
        t->has_target = true, t->target = s_number (j, "target");
        double current = s_indicator (total, NULL, t->indicator, schemes);
        if (isnan (current))
            current = 0;
        t->has_current = true, t->current = current;
        if (t->target > 0)
            t->has_progress_pct = true, t->progress_pct = round (10000.0 * current / t->target) / 100;
        /* Pace: what was reached between `from` and the last business day, carried on. */
        int32_t from, as_of, by;
        const char *from_s = s_string (j, "from");
        if (current > 0 && from_s && qp_date_parse (from_s, &from) && r->as_of &&
            qp_date_parse (r->as_of, &as_of) && as_of >= from) {
            double days = (double) (as_of - from + 1);
            int32_t reached = from + (int32_t) ceil (t->target * days / current) - 1;
            if (current >= t->target)
                reached = as_of;
            char buf[11];
            qp_date_format (reached, buf);
            t->reached_on = strdup (buf);
            if (t->by && qp_date_parse (t->by, &by))
                t->has_on_track = true, t->on_track = reached <= by;
        }
        r->targets[r->n_targets++] = t;
    }
    json_t *refs = json_object_get (self->targets, "references");
    r->references = calloc (json_array_size (refs) + 1, sizeof *r->references);
    assert (r->references);
    for (size_t i = 0; total && i < json_array_size (refs); i++) {
        json_t *j = json_array_get (refs, i);
        Qp__V1__Reference *x = malloc (sizeof *x);
        assert (x);
        qp__v1__reference__init (x);
        x->id = s_strdup (s_string (j, "id"));
        x->label = s_strdup (s_string (j, "label"));
        x->unit = s_strdup (s_string (j, "unit"));
        x->source = s_strdup (s_string (j, "source"));
        x->indicator = s_strdup (s_string (j, "indicator"));
        x->has_value = true, x->value = s_number (j, "value");
        double m = s_indicator (total, NULL, s_string (j, "indicator"), schemes);
        if (!isnan (m))
            x->has_measured = true, x->measured = m;
        r->references[r->n_references++] = x;
    }
    zhashx_destroy (&schemes);
}

/* A period bound: "YYYY-MM-DD" or "YYYY-MM"; its month into out. false with err. */
static bool s_period_bound (const char *field, const char *text, char out[8], qp_error_t *err)
{
    out[0] = 0;
    if (!text || !*text)
        return true;
    size_t n = strlen (text);
    bool shape = (n == 7 || n == 10) && text[4] == '-' && (n == 7 || text[7] == '-');
    for (size_t i = 0; shape && i < n; i++)
        shape = i == 4 || i == 7 || (text[i] >= '0' && text[i] <= '9');
    if (!shape) {
        qp_error_set (err, "invalid_field", field, "%s must be a date YYYY-MM-DD or a month YYYY-MM",
                      field);
        return false;
    }
    int month = atoi (text + 5);
    if (month < 1 || month > 12) {
        qp_error_set (err, "invalid_field", field, "%s: month %02d is not a month (01 to 12)", field,
                      month);
        return false;
    }
    char day[11];
    snprintf (day, sizeof day, "%.7s-%s", text, n == 10 ? text + 8 : "01");
    int32_t days;
    if (!qp_date_parse (day, &days)) {
        qp_error_set (err, "invalid_field", field,
                      "%s: %s is not a calendar date (years 1900 to 2199)", field, text);
        return false;
    }
    snprintf (out, 8, "%.7s", text);
    return true;
}

int evaluation_query_check (const Qp__V1__IndicatorQuery *q, qp_error_t *err)
{
    char from[8], until[8];
    if (!s_period_bound ("from", q->from, from, err) || !s_period_bound ("until", q->until, until, err))
        return -1;
    if (*from && *until && strcmp (until, from) < 0) {
        qp_error_set (err, "invalid_field", "until", "until (%s) is before from (%s)", q->until,
                      q->from);
        return -1;
    }
    if (q->has_axis && !protobuf_c_enum_descriptor_get_value (&qp__v1__axis__descriptor, q->axis)) {
        qp_error_set (err, "invalid_field", "axis", "axis %d is not an Axis value", (int) q->axis);
        return -1;
    }
    return 0;
}

int evaluation_indicators (evaluation_t *self, const Qp__V1__IndicatorQuery *q,
                           Qp__V1__IndicatorReport **out)
{
    *out = NULL;
    evaluation_flush (self);
    filter_t f = {.q = q};
    qp_error_t err;
    if (!s_period_bound ("from", q->from, f.from, &err) || !s_period_bound ("until", q->until, f.until, &err))
        return -1; /* evaluation_query_check says why */
    if (q->has_axis && q->axis != QP__V1__AXIS__AXIS_UNSPECIFIED)
        f.axis = s_enum_name (&qp__v1__axis__descriptor, q->axis);
    redisReply *cells = qp_redis_command (self->redis, "SMEMBERS %s", K_CELLS);
    redisReply *meta = qp_redis_command (self->redis, "HGET %s as_of", K_META);
    if (!cells || cells->type != REDIS_REPLY_ARRAY || !meta) {
        if (cells)
            freeReplyObject (cells);
        if (meta)
            freeReplyObject (meta);
        return -1;
    }
    zhashx_t *acc = zhashx_new ();
    zhashx_set_destructor (acc, s_free_item);
    zhashx_t *envelope_months = zhashx_new ();
    zhashx_set_destructor (envelope_months, s_free_item);
    s_sums (acc, "*");
    if (q->territory && *q->territory)
        s_sums (acc, q->territory);
    int rc = 0;
    for (size_t i = 0; i < cells->elements && rc == 0; i++) {
        char t[96], m[8], a[48];
        if (!s_cell_match (&f, cells->element[i]->str, t, sizeof t, m, a, sizeof a))
            continue;
        counters_t c = {0};
        if (s_read_cell (self, cells->element[i]->str, q->has_breakdowns && q->breakdowns, &c))
            rc = -1;
        else
            s_add_cell (acc, &f, t, m, a, &c, envelope_months);
        s_counters_free (&c);
    }
    freeReplyObject (cells);
    Qp__V1__IndicatorReport *r = malloc (sizeof *r);
    assert (r);
    qp__v1__indicator_report__init (r);
    {
        /* the query as answered, echoed in the report */
        size_t len = qp__v1__indicator_query__get_packed_size (q);
        uint8_t buf[len + 1];
        qp__v1__indicator_query__pack (q, buf);
        r->query = qp__v1__indicator_query__unpack (NULL, len, buf);
    }
    r->as_of = strdup (meta->type == REDIS_REPLY_STRING ? meta->str : "");
    freeReplyObject (meta);

    size_t nt = 0, nb = 0;
    char **keys = s_sorted_keys (acc, "", &nt);
    r->territories = calloc (nt + 1, sizeof *r->territories);
    assert (r->territories);
    for (size_t i = 0; i < nt; i++) {
        if (strchr (keys[i], '\x1f'))
            continue;
        Qp__V1__TerritoryIndicators *ti = malloc (sizeof *ti);
        assert (ti);
        qp__v1__territory_indicators__init (ti);
        bool total = !strcmp (keys[i], "*");
        ti->territory = strdup (total ? "total" : keys[i]);
        ti->figures = s_figures (zhashx_lookup (acc, keys[i]), false);
        char prefix[128];
        snprintf (prefix, sizeof prefix, "%s\x1f", keys[i]);
        char **bk = s_sorted_keys (acc, prefix, &nb);
        ti->breakdowns = calloc (nb + 1, sizeof *ti->breakdowns);
        assert (ti->breakdowns);
        for (size_t k = 0; k < nb; k++) {
            Qp__V1__Breakdown *b = malloc (sizeof *b);
            assert (b);
            qp__v1__breakdown__init (b);
            const char *dim = bk[k] + strlen (prefix), *sep = strchr (dim, '\x1f');
            b->dimension = strndup (dim, (size_t) (sep - dim));
            b->value = strdup (sep + 1);
            b->figures = s_figures (zhashx_lookup (acc, bk[k]), true);
            ti->breakdowns[ti->n_breakdowns++] = b;
        }
        s_free_keys (bk, nb);
        if (total)
            r->total = ti;
        else {
            s_phases (self, ti, r->as_of);
            r->territories[r->n_territories++] = ti;
        }
    }
    s_free_keys (keys, nt);
    s_programme (self, r, envelope_months);
    zhashx_destroy (&acc);
    zhashx_destroy (&envelope_months);
    if (rc) {
        qp__v1__indicator_report__free_unpacked (r, NULL);
        return -1;
    }
    *out = r;
    return 0;
}

/* ---- The funnel of qp.v1.ReportReply -------------------------------------------------------- */

static Qp__V1__TerritoryFigures *s_territory_figures (const Qp__V1__TerritoryIndicators *ti)
{
    Qp__V1__TerritoryFigures *t = malloc (sizeof *t);
    assert (t);
    qp__v1__territory_figures__init (t);
    const Qp__V1__Figures *f = ti->figures;
    t->territory = strdup (ti->territory);
#define SET(field) t->has_##field = true, t->field = f->field
    SET (submitted);
    SET (not_eligible);
    SET (eligible);
    SET (funding_requested);
    SET (funded);
    SET (declined);
    SET (unfunded);
    SET (closed);
    SET (committed_cents);
    SET (jobs_planned);
#undef SET
    return t;
}

int evaluation_report (evaluation_t *self, const Qp__V1__ReportQuery *query, Qp__V1__ReportReply *out)
{
    qp__v1__report_reply__init (out);
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.territory = query->territory;
    q.from = query->from;
    q.until = query->until;
    q.has_axis = query->has_axis, q.axis = query->axis;
    q.scheme_id = query->scheme_id;
    Qp__V1__IndicatorReport *r;
    if (evaluation_indicators (self, &q, &r))
        return -1;
    out->territories = calloc (r->n_territories + 1, sizeof *out->territories);
    assert (out->territories);
    for (size_t i = 0; i < r->n_territories; i++)
        out->territories[out->n_territories++] = s_territory_figures (r->territories[i]);
    if (q.territory && *q.territory && r->n_territories == 1) {
        out->total = s_territory_figures (r->territories[0]);
        free (out->total->territory);
        out->total->territory = strdup ("total");
    } else
        out->total = s_territory_figures (r->total);
    qp__v1__indicator_report__free_unpacked (r, NULL);
    return 0;
}

void evaluation_report_clear (Qp__V1__ReportReply *report)
{
    for (size_t i = 0; i < report->n_territories; i++)
        qp__v1__territory_figures__free_unpacked (report->territories[i], NULL);
    free (report->territories);
    if (report->total)
        qp__v1__territory_figures__free_unpacked (report->total, NULL);
    qp__v1__report_reply__init (report);
}

/* ---- Handlers --------------------------------------------------------------------------------- */

static void s_on_event (qp_request_t *req, void *arg)
{
    evaluation_apply (arg, &req->msg);
    /* after the apply: a batch it filled is flushed without this ack, never before the
     * count */
    zframe_t *type = req->frames ? zmsg_first (req->frames) : NULL;
    zframe_t *env = type ? zmsg_next (req->frames) : NULL;
    if (env)
        evaluation_ack (arg, zframe_data (type), zframe_size (type), zframe_data (env),
                        zframe_size (env));
}

/* An event that does not decode counts nothing (qp_service logged it and counted the
 * error), but its outbox member is removed with the next batch: kept, the sweeper would
 * publish it again every QP_STORE_OUTBOX_REDELIVER_MS forever. */
static void s_on_undecodable (qp_request_t *req, void *arg)
{
    zframe_t *type = req->frames ? zmsg_first (req->frames) : NULL;
    zframe_t *env = type ? zmsg_next (req->frames) : NULL;
    if (!env)
        return;
    qp_log_warn ("eval_undecodable_acked", "an undecodable %.*s event leaves the outbox "
                 "uncounted", (int) (zframe_size (type) < 80 ? zframe_size (type) : 80),
                 (const char *) zframe_data (type));
    evaluation_ack (arg, zframe_data (type), zframe_size (type), zframe_data (env),
                    zframe_size (env));
}

static void s_on_timer (qp_service_t *service, void *arg)
{
    (void) service;
    s_flush_full (arg); /* sent now, its answer read by the next flush */
}

static qp_meta_t s_reply_meta (const qp_request_t *req, const char *discriminator)
{
    const Qp__V1__Envelope *env = req->msg.envelope;
    return (qp_meta_t){.causation_id = env->message_id,
                       .event_time_ms = env->has_event_time_ms ? env->event_time_ms : 0,
                       .discriminator = discriminator};
}

static void s_reply_unavailable (qp_request_t *req)
{
    qp_error_t err;
    qp_error_set (&err, "internal", NULL, "counters unavailable (Redis), retry");
    qp_service_reply_error (req, &err);
}

static void s_on_report (qp_request_t *req, void *arg)
{
    const Qp__V1__ReportQuery *query = (const void *) req->msg.payload;
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    q.from = query->from, q.until = query->until;
    q.has_axis = query->has_axis, q.axis = query->axis;
    qp_error_t err;
    if (evaluation_query_check (&q, &err)) {
        qp_service_reply_error (req, &err);
        return;
    }
    Qp__V1__ReportReply reply;
    if (evaluation_report (arg, (const void *) req->msg.payload, &reply) != 0) {
        s_reply_unavailable (req);
        return;
    }
    qp_meta_t meta = s_reply_meta (req, "report");
    qp_service_reply (req, &reply.base, &meta);
    evaluation_report_clear (&reply);
}

static void s_on_indicators (qp_request_t *req, void *arg)
{
    qp_error_t err;
    if (evaluation_query_check ((const void *) req->msg.payload, &err)) {
        qp_service_reply_error (req, &err);
        return;
    }
    Qp__V1__IndicatorReport *r;
    if (evaluation_indicators (arg, (const void *) req->msg.payload, &r) != 0) {
        s_reply_unavailable (req);
        return;
    }
    qp_meta_t meta = s_reply_meta (req, "indicators");
    qp_service_reply (req, &r->base, &meta);
    qp__v1__indicator_report__free_unpacked (r, NULL);
}

static void s_on_phase (qp_request_t *req, void *arg)
{
    const Qp__V1__TerritoryPhase *p = (const void *) req->msg.payload;
    qp_error_t err;
    Qp__V1__TerritoryPhaseReply reply = QP__V1__TERRITORY_PHASE_REPLY__INIT;
    reply.has_accepted = true;
    if (evaluation_record_phase (arg, p, &err) == 0) {
        reply.accepted = true;
        qp_log_info ("phase_recorded", "%s %s from %s", p->territory,
                     s_enum_name (&qp__v1__phase__descriptor, p->phase), p->started_on);
    } else if (!strcmp (err.code, "internal")) {
        qp_service_reply_error (req, &err);
        return;
    } else {
        reply.field = err.field;
        reply.reason = err.message;
    }
    qp_meta_t meta = s_reply_meta (req, "phase");
    qp_service_reply (req, &reply.base, &meta);
}

void evaluation_attach (evaluation_t *self, qp_service_t *service)
{
    self->service = service;
    const ProtobufCMessageDescriptor *events[] = {
        &qp__v1__dossier_received__descriptor, &qp__v1__eligibility_decided__descriptor,
        &qp__v1__funding_request__descriptor,  &qp__v1__funding_settled__descriptor,
        &qp__v1__dossier_closed__descriptor,   &qp__v1__follow_up__descriptor,
        &qp__v1__submission_refused__descriptor};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        qp_service_subscribe (service, events[i], s_on_event, self);
    qp_service_on (service, &qp__v1__report_query__descriptor, s_on_report, self);
    qp_service_on (service, &qp__v1__indicator_query__descriptor, s_on_indicators, self);
    qp_service_on (service, &qp__v1__territory_phase__descriptor, s_on_phase, self);
    qp_service_every (service, 5, s_on_timer, self);
    qp_service_on_undecodable (service, s_on_undecodable, self);
    /* The outbox's size as a metric (qp_outbox_events); our sweeper claims nothing, the
     * catch-up below reads what we missed. */
    qp_service_outbox (service, self->redis);
    /* What the bus dropped (our receive pipe is bounded) is read from the outbox. */
    qp_service_catch_up (service, self->redis);
}
