/* Funding: the ELIGIBLE -> FUNDING_REQUESTED -> FUNDED | DECLINED | UNFUNDED steps, as a
 * saga over the legs of a funding plan. */
#include "funding.h"
#include "budget.h"
#include "qp_date.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include "qp_store.h"
#include <malloc.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 200
#define SWEEP_BATCH 500
#define DUE_KEY "qp:funding:due"
#define MAX_LEGS FUNDING_MAX_LEGS

static const char *s_agency_name (Qp__V1__Agency agency)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, agency);
    return v ? v->name : "UNKNOWN";
}

void funding_partner_service (Qp__V1__Agency agency, const char *component, char *out,
                              size_t size)
{
    snprintf (out, size, "partner.%s.%s", s_agency_name (agency), component);
}

/* ---- configuration ------------------------------------------------------------------ */

int funding_load_envelopes (funding_t *self, const char *path, qp_error_t *err)
{
    if (budget_load (self->redis, path, err) != 0)
        return -1;
    json_t *doc = json_load_file (path, 0, NULL);
    json_t *e;
    size_t i;
    json_array_foreach (json_object_get (doc, "envelopes"), i, e) {
        self->envelope_schemes = realloc (self->envelope_schemes,
                                          (self->n_envelope_schemes + 1) * sizeof (char *));
        self->envelope_schemes[self->n_envelope_schemes++] =
            strdup (json_string_value (json_object_get (e, "scheme")));
    }
    json_decref (doc);
    return 0;
}

static long s_cfg_int (json_t *obj, const char *name, long dflt)
{
    json_t *v = json_object_get (obj, name);
    return json_is_integer (v) ? (long) json_integer_value (v) : dflt;
}

int funding_load_config (funding_t *self, const char *path, qp_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_load_file (path, 0, &jerr);
    if (!doc) {
        qp_error_set (err, "bad_funding_config", path, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    json_t *timeouts = json_object_get (doc, "partner_timeout_ms");
    json_t *backoff = json_object_get (doc, "backoff");
    json_t *hl = json_object_get (doc, "honour_loan");
    if (!json_is_object (timeouts) || !json_is_object (backoff) || !json_is_object (hl) ||
        (json_object_get (doc, "kinds") && !json_is_object (json_object_get (doc, "kinds"))) ||
        !json_is_array (json_object_get (doc, "anchors")) ||
        !json_is_string (json_object_get (doc, "source"))) {
        qp_error_set (err, "bad_funding_config", path,
                      "%s needs partner_timeout_ms, backoff, honour_loan (objects), anchors "
                      "(array) and source (kinds an object when given)",
                      path);
        json_decref (doc);
        return -1;
    }
    self->config = doc;
    self->timeout_ms = s_cfg_int (timeouts, "default", 5000);
    self->backoff_base_ms = s_cfg_int (backoff, "base_ms", 500);
    self->backoff_max_ms = s_cfg_int (backoff, "max_ms", 30000);
    self->reservation_ttl_ms = s_cfg_int (doc, "reservation_ttl_ms", 86400000);
    self->no_component_wait_ms = s_cfg_int (doc, "no_component_wait_ms", 600000);
    if (!self->max_attempts)
        self->max_attempts = s_cfg_int (doc, "max_attempts", 6);
    json_t *d = json_object_get (hl, "duration_months"), *f = json_object_get (hl, "deferral_months");
    self->honour_loan.duration_min = (uint32_t) s_cfg_int (d, "min", 12);
    self->honour_loan.duration_max = (uint32_t) s_cfg_int (d, "max", 60);
    self->honour_loan.deferral_min = (uint32_t) s_cfg_int (f, "min", 0);
    self->honour_loan.deferral_max = (uint32_t) s_cfg_int (f, "max", 24);
    self->honour_loan.rate_bp = (uint32_t) s_cfg_int (hl, "rate_bp", 0);
    return 0;
}

void funding_clear (funding_t *self)
{
    json_decref (self->config);
    self->config = NULL;
    for (size_t i = 0; i < self->n_envelope_schemes; i++)
        free (self->envelope_schemes[i]);
    free (self->envelope_schemes);
    self->envelope_schemes = NULL;
    self->n_envelope_schemes = 0;
}

/* A scheme's kind is the catalogue's; funding.json's "kinds" only names schemes the
 * catalogue does not hold (a partner's own scheme). */
static const char *s_kind (const funding_t *self, const char *scheme)
{
    const qp_scheme_t *s = self->catalogue ? qp_catalogue_find (self->catalogue, scheme) : NULL;
    if (s && s->kind)
        return s->kind;
    const char *k = json_string_value (json_object_get (json_object_get (self->config, "kinds"), scheme));
    return k ? k : "grant";
}

static bool s_anchor (const funding_t *self, const char *scheme)
{
    json_t *v;
    size_t i;
    json_array_foreach (json_object_get (self->config, "anchors"), i, v)
        if (json_string_value (v) && !strcmp (json_string_value (v), scheme))
            return true;
    return false;
}

static bool s_honour_loan (const funding_t *self, const char *scheme)
{
    return !strcmp (s_kind (self, scheme), "honour_loan");
}

static int64_t s_timeout (const funding_t *self, Qp__V1__Agency agency)
{
    return s_cfg_int (json_object_get (self->config, "partner_timeout_ms"), s_agency_name (agency),
                      self->timeout_ms);
}

int64_t funding_backoff_ms (const funding_t *self, const char *request_id, uint32_t attempt)
{
    int64_t d = self->backoff_base_ms;
    for (uint32_t i = 1; i < attempt && d < self->backoff_max_ms; i++)
        d *= 2;
    if (d > self->backoff_max_ms)
        d = self->backoff_max_ms;
    char seed[64], h[QP_ID_HEX + 1];
    snprintf (seed, sizeof seed, "%u", attempt);
    qp_message_make_id (h, "qp.funding.jitter", request_id, seed);
    uint32_t u = (uint32_t) strtoul ((char[9]) {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 0},
                                     NULL, 16);
    return d / 2 + (int64_t) ((double) (d / 2) * ((double) u / 4294967296.0));
}


/* ---- plans in Redis, a batch of dossiers at a time ------------------------------------ */

typedef struct {
    Qp__V1__FundingLeg *leg;
    char version[24];
} leg_t;

/* A dossier's funding plan as read (n -1: none). */
typedef struct {
    leg_t legs[MAX_LEGS];
    int n;
} plan_t;

static void s_set_str (char **field, const char *value)
{
    free (*field);
    *field = value ? strdup (value) : NULL;
}

static bool s_final (Qp__V1__LegState s)
{
    return s >= QP__V1__LEG_STATE__LEG_APPROVED;
}

/* A leg as stored (qp:{ID}:f). A final leg is asked no more: of its request (sent, and on
 * the event stream) it keeps only the territory the closing step reads; honour-loan terms
 * carry no schedule (terms_schedule derives it). ~1.2 KB less per PHQ leg (issue 8). */
static uint8_t *s_leg_pack (const Qp__V1__FundingLeg *leg, size_t *len)
{
    Qp__V1__FundingLeg stored = *leg;
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    Qp__V1__DossierSummary sm = QP__V1__DOSSIER_SUMMARY__INIT;
    if (s_final (leg->state) && leg->request) {
        sm.territory = leg->request->summary ? leg->request->summary->territory : NULL;
        rq.summary = sm.territory ? &sm : NULL;
        stored.request = &rq;
    }
    *len = qp__v1__funding_leg__get_packed_size (&stored);
    uint8_t *b = malloc (*len ? *len : 1);
    assert (b);
    qp__v1__funding_leg__pack (&stored, b);
    return b;
}

static void s_plan_free (plan_t *p)
{
    for (int i = 0; i < p->n; i++)
        qp__v1__funding_leg__free_unpacked (p->legs[i].leg, NULL);
    p->n = -1;
}

/* A plan from its HGETALL (fields legs, SCHEME = packed leg, SCHEME:v = version). */
static void s_plan_parse (const redisReply *r, plan_t *p)
{
    p->n = -1;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return;
    p->n = 0;
    for (size_t i = 0; i + 1 < r->elements && p->n < MAX_LEGS; i += 2) {
        const char *name = r->element[i]->str;
        if (r->element[i]->type != REDIS_REPLY_STRING || !strcmp (name, "legs") ||
            strchr (name, ':'))
            continue;
        leg_t *l = &p->legs[p->n];
        l->leg = qp__v1__funding_leg__unpack (NULL, r->element[i + 1]->len,
                                              (uint8_t *) r->element[i + 1]->str);
        if (!l->leg)
            continue;
        snprintf (l->version, sizeof l->version, "0");
        size_t nl = strlen (name);
        for (size_t j = 0; j + 1 < r->elements; j += 2)
            if (r->element[j]->len == nl + 2 && !strncmp (r->element[j]->str, name, nl) &&
                !strcmp (r->element[j]->str + nl, ":v"))
                snprintf (l->version, sizeof l->version, "%s", r->element[j + 1]->str);
        p->n++;
    }
}

typedef char key_t_[80];

/* Which of a batch's ids were seen, by hash (open addressing over twice the batch): a
 * batch of 512 compared each id with every earlier one (131,000 strcmp). */
typedef struct {
    const char **ids;
    int *slots; /* index + 1, 0 empty */
    size_t mask;
} id_index_t;

static void s_index_init (id_index_t *x, size_t n)
{
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    x->slots = calloc (size, sizeof *x->slots);
    x->ids = malloc (n * sizeof *x->ids + 1);
    assert (x->slots && x->ids);
    x->mask = size - 1;
}

static void s_index_free (id_index_t *x)
{
    free (x->slots), free (x->ids);
}

/* The index id was given before, or -1 after giving it index next. */
static int s_index_of (id_index_t *x, const char *id, int next)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t) *p) * 16777619u;
    size_t i = h & x->mask;
    while (x->slots[i]) {
        if (!strcmp (x->ids[x->slots[i] - 1], id))
            return x->slots[i] - 1;
        i = (i + 1) & x->mask;
    }
    x->slots[i] = next + 1;
    x->ids[next] = id;
    return -1;
}

/* Reads fields of many hashes in one round trip (funding_read.lua): the reply's element i
 * is key i's values (or whole hash without fields). NULL when Redis did not answer. */
static redisReply *s_read (funding_t *self, const char *const *ids, size_t k, const char *suffix,
                           const char *const *fields, int n_fields)
{
    if (!k)
        return NULL;
    key_t_ *names = malloc (k * sizeof *names);
    const char **keys = malloc (k * sizeof *keys);
    for (size_t i = 0; i < k; i++) {
        snprintf (names[i], sizeof names[i], "qp:{%s}:%s", ids[i], suffix);
        keys[i] = names[i];
    }
    redisReply *r = qp_redis_script (self->redis, QP_LUA_FUNDING_READ, (int) k, keys, n_fields,
                                     (const char **) fields, NULL);
    free (names);
    free (keys);
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements != k)) {
        qp_log_error ("redis_error", "funding_read: %s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        freeReplyObject (r);
        r = NULL;
    }
    return r;
}

/* Loads the plans of k dossiers in one round trip. -1 when Redis did not answer. */
static int s_plans_load (funding_t *self, const char *const *ids, size_t k, plan_t *plans)
{
    redisReply *r = s_read (self, ids, k, "f", NULL, 0);
    for (size_t i = 0; i < k; i++)
        s_plan_parse (r ? r->element[i] : NULL, &plans[i]);
    if (r)
        freeReplyObject (r);
    return r || !k ? 0 : -1;
}

/* A step of the saga, in the dossier's history (shown by qp ctl status), at the business
 * time of the message that caused it, like every transition: a replay gives the same
 * history. */
static uint8_t *s_step (const char *note, int64_t at_ms, size_t *len)
{
    Qp__V1__Transition t = QP__V1__TRANSITION__INIT;
    t.has_from = t.has_to = true;
    t.from = t.to = QP__V1__DOSSIER_STATE__FUNDING_REQUESTED;
    t.has_at_ms = true, t.at_ms = at_ms;
    t.note = (char *) note;
    return qp_store_history_pack (&t, len); /* appended to the dossier's field h */
}

/* One leg to write (compare-and-set on its version), with its history step. */
typedef struct {
    const char *id;
    leg_t *l;
    char step[800]; /* "" none */
    int64_t at_ms;
    bool has_event;   /* a first FundingRequest: the "funding asked" event, recorded in the
                         outbox with the write and published when it applied */
    qp_event_t event;
    char disc[QP_ID_HEX + 16];
    bool ok;        /* out: written (l->version is the new one) */
} save_t;

/* When a dossier's next action is due (0: not any more). */
typedef struct {
    const char *id;
    int64_t at_ms;
} due_t;

/* Writes legs and due times of many dossiers in one round trip (funding_leg.lua). A leg
 * another instance changed since it was read is not written (ok false). */
static void s_saves_run (funding_t *self, save_t *sv, size_t n, const due_t *dues, size_t nd)
{
    if (!n && !nd)
        return;
    size_t nk = 2 + 2 * n, na = 2 + 5 * n + 2 * nd;
    const char **keys = malloc (nk * sizeof *keys), **args = malloc (na * sizeof *args);
    size_t *lens = malloc (na * sizeof *lens);
    key_t_ *names = malloc ((2 * n + 1) * sizeof *names);
    uint8_t **bufs = calloc (2 * n + 1, sizeof *bufs);
    char (*nums)[24] = malloc ((nd + 1) * sizeof *nums);
    qp_service_event_t *events = calloc (n + 1, sizeof *events);
    char count[16], deadline[24];
    snprintf (count, sizeof count, "%zu", n);
    snprintf (deadline, sizeof deadline, "%lld",
              (long long) (qp_now_ms () + QP_STORE_OUTBOX_GRACE_MS));
    keys[0] = DUE_KEY;
    args[0] = count, lens[0] = strlen (count);
    for (size_t i = 0; i < n; i++) {
        snprintf (names[2 * i], sizeof names[0], "qp:{%s}:f", sv[i].id);
        snprintf (names[2 * i + 1], sizeof names[0], "qp:{%s}:d", sv[i].id); /* history h */
        keys[1 + 2 * i] = names[2 * i], keys[2 + 2 * i] = names[2 * i + 1];
        Qp__V1__FundingLeg *leg = sv[i].l->leg;
        size_t plen, slen = 0;
        bufs[2 * i] = s_leg_pack (leg, &plen);
        if (*sv[i].step)
            bufs[2 * i + 1] = s_step (sv[i].step, sv[i].at_ms, &slen);
        const char **a = args + 1 + 5 * i;
        size_t *al = lens + 1 + 5 * i;
        a[0] = leg->scheme_id, al[0] = strlen (leg->scheme_id);
        a[1] = sv[i].l->version, al[1] = strlen (sv[i].l->version);
        a[2] = (char *) bufs[2 * i], al[2] = plen;
        a[3] = bufs[2 * i + 1] ? (char *) bufs[2 * i + 1] : "", al[3] = slen;
        if (sv[i].has_event)
            qp_service_event_stage (self->service, self->redis, &sv[i].event, &events[i]);
        a[4] = events[i].member.data ? events[i].member.data : "", al[4] = events[i].member.len;
    }
    keys[1 + 2 * n] = QP_STORE_OUTBOX_KEY;
    args[1 + 5 * n] = deadline, lens[1 + 5 * n] = strlen (deadline);
    for (size_t i = 0; i < nd; i++) {
        const char **a = args + 2 + 5 * n + 2 * i;
        size_t *al = lens + 2 + 5 * n + 2 * i;
        if (dues[i].at_ms)
            snprintf (nums[i], sizeof nums[i], "%lld", (long long) dues[i].at_ms);
        else
            nums[i][0] = 0;
        a[0] = dues[i].id, al[0] = strlen (dues[i].id);
        a[1] = nums[i], al[1] = strlen (nums[i]);
    }
    redisReply *r = qp_redis_script (self->redis, QP_LUA_FUNDING_LEG, (int) nk, keys, (int) na,
                                     args, lens);
    bool whole = r && r->type == REDIS_REPLY_ARRAY && r->elements == n;
    if (!whole)
        qp_log_error ("redis_error", "funding_leg: %s",
                      r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = whole ? r->element[i] : NULL;
        sv[i].ok = e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
                   e->element[0]->integer == 1;
        if (sv[i].ok)
            snprintf (sv[i].l->version, sizeof sv[i].l->version, "%s", e->element[1]->str);
        qp_service_event_done (self->service, &events[i], sv[i].ok);
    }
    free (events);
    if (r)
        freeReplyObject (r);
    for (size_t i = 0; i < 2 * n; i++)
        free (bufs[i]);
    free (bufs), free (keys), free (args), free (lens), free (names), free (nums);
}

/* Removes dossiers from the due set (one command). */
static void s_due_remove (funding_t *self, const char *const *ids, size_t k)
{
    if (!k)
        return;
    const char **argv = malloc ((k + 2) * sizeof *argv);
    argv[0] = "ZREM", argv[1] = DUE_KEY;
    memcpy (argv + 2, ids, k * sizeof *ids);
    redisReply *r = qp_redis_argv (self->redis, (int) k + 2, argv, NULL);
    if (r)
        freeReplyObject (r);
    free (argv);
}


/* ---- settling -------------------------------------------------------------------------- */

/* A dossier a batch step works on. */
typedef struct {
    const char *id;
    const char *cause;          /* message id of the message that caused the step */
    int64_t time_ms;            /* business time */
    plan_t *plan;               /* in hand, or NULL: loaded */
    Qp__V1__DossierState from;  /* closing: the state it closes from */
} dossier_t;

static const char *s_leg_outcome (Qp__V1__LegState s)
{
    switch (s) {
    case QP__V1__LEG_STATE__LEG_APPROVED:
        return "approved";
    case QP__V1__LEG_STATE__LEG_DECLINED:
        return "declined";
    case QP__V1__LEG_STATE__LEG_INFORMATION_NEEDED:
        return "information_needed";
    case QP__V1__LEG_STATE__LEG_FAILED:
        return "failed";
    case QP__V1__LEG_STATE__LEG_NO_BUDGET:
        return "no_budget";
    case QP__V1__LEG_STATE__LEG_GRANTED:
        return "granted";
    default:
        return "open";
    }
}

static void s_count_leg (Qp__V1__LegState s)
{
    char labels[96];
    qp_metrics_labels (labels, sizeof labels, "outcome", s_leg_outcome (s), NULL);
    qp_metric_add (qp_metrics_counter ("qp_funding_legs_total",
                                       "funding legs closed, by outcome (information_needed "
                                       "apart from declined)",
                                       labels),
                   1);
}

void funding_count_error (const char *reason)
{
    char labels[128];
    qp_metrics_labels (labels, sizeof labels, "service", "funding", "reason", reason, NULL);
    qp_metric_add (qp_metrics_counter ("qp_errors_total",
                                       "messages refused or answered with an error, by reason",
                                       labels),
                   1);
}

/* The plan depends on a leg that did not succeed: the first such anchor, or NULL. */
static const Qp__V1__FundingLeg *s_failed_anchor (const plan_t *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->legs[i].leg->anchor && p->legs[i].leg->state != QP__V1__LEG_STATE__LEG_APPROVED &&
            p->legs[i].leg->state != QP__V1__LEG_STATE__LEG_GRANTED)
            return p->legs[i].leg;
    return NULL;
}

static const char *s_territory (const plan_t *p)
{
    for (int i = 0; i < p->n; i++)
        if (p->legs[i].leg->request && p->legs[i].leg->request->summary)
            return p->legs[i].leg->request->summary->territory;
    return NULL;
}

/* A closing step records every settlement of the plan and the DossierClosed (the
 * outbox): QP_SERVICE_MAX_EVENTS was 8, which left settlements past 7 legs outside it. */
#define MAX_EVENTS (MAX_LEGS + 1)
_Static_assert (MAX_EVENTS <= QP_SERVICE_MAX_EVENTS, "a closing step's events must fit");

/* What a dossier's closing step refers to, kept until the batch's transitions are done. */
typedef struct {
    Qp__V1__FundingSettled settled[MAX_LEGS];
    char disc[MAX_LEGS][QP_ID_HEX + 80];
    qp_event_t events[MAX_LEGS + 1];
    size_t n_events;
    qp_event_t step_events[MAX_EVENTS];
    Qp__V1__FundingSettled s;
    Qp__V1__DossierClosed closed;
    char final[1200], c[24], closed_id[QP_ID_HEX + 1];
    uint8_t *packed;
    qp_store_field_t fields[3];
} closing_t;

/* Every leg of these dossiers is final: commit the approved reservations, release the
 * others (all of them when a leg the plan depends on failed: compensation), close each
 * dossier once, with its FundingSettled and DossierClosed events in the same step. */
static void s_finalize_many (funding_t *self, dossier_t *ds, size_t k)
{
    if (!k)
        return;
    size_t n_legs = 0;
    for (size_t d = 0; d < k; d++)
        n_legs += (size_t) (ds[d].plan->n > 0 ? ds[d].plan->n : 0);
    budget_op_t *ops = calloc (n_legs + 1, sizeof *ops);
    int *first_op = malloc (k * sizeof *first_op);
    size_t n_ops = 0;
    for (size_t d = 0; d < k; d++) {
        plan_t *p = ds[d].plan;
        bool failed = s_failed_anchor (p) != NULL;
        first_op[d] = (int) n_ops;
        for (int i = 0; i < p->n; i++) {
            Qp__V1__FundingLeg *leg = p->legs[i].leg;
            if (!leg->reserved)
                continue;
            budget_op_t *op = &ops[n_ops++];
            op->scheme = leg->scheme_id, op->dossier = ds[d].id;
            op->commit = !failed && leg->state == QP__V1__LEG_STATE__LEG_APPROVED;
            op->amount = leg->amount_cents;
        }
    }
    if (budget_settle_many (self->redis, ops, n_ops) != 0) {
        free (ops), free (first_op);
        return; /* Redis down: the due sweeper finalizes again */
    }
    const char **closed_ids = malloc (k * sizeof *closed_ids);
    size_t n_closed = 0;
    /* Not zeroed: every part a dossier's step refers to is written (its unused leg slots,
     * most of its ~7 KB, are never touched, nor their pages). */
    closing_t *cl = malloc (k * sizeof *cl);
    qp_service_step_t *steps = calloc (k, sizeof *steps);
    assert (cl && steps);
    for (size_t d = 0; d < k; d++) {
        plan_t *p = ds[d].plan;
        const char *id = ds[d].id, *territory = s_territory (p);
        const Qp__V1__FundingLeg *failed_anchor = s_failed_anchor (p);
        budget_op_t *op = &ops[first_op[d]];
        int64_t committed = 0;
        int approved = 0, granted = 0, declined = 0;
        const Qp__V1__FundingLeg *main_leg = NULL;
        char reason[1024] = "";
        size_t rl = 0;
        Qp__V1__FundingSettled *settled = cl[d].settled;
        char (*disc)[QP_ID_HEX + 80] = cl[d].disc;
        qp_event_t *events = cl[d].events;
        size_t n_events = 0;
        for (int i = 0; i < p->n; i++) {
            Qp__V1__FundingLeg *leg = p->legs[i].leg;
            bool keep = !failed_anchor && leg->state == QP__V1__LEG_STATE__LEG_APPROVED;
            int64_t amount = keep ? leg->amount_cents : 0;
            const char *entry = "";
            if (leg->reserved) {
                entry = op->entry;
                op++;
                if (keep && strncmp (entry, "committed:", 10) != 0)
                    keep = false, amount = 0; /* the reservation passed its deadline */
                if (keep)
                    amount = budget_entry_amount (entry);
            }
            declined += leg->state == QP__V1__LEG_STATE__LEG_DECLINED;
            granted += leg->state == QP__V1__LEG_STATE__LEG_GRANTED;
            if (keep) {
                approved++;
                committed += amount;
                if (!main_leg)
                    main_leg = leg;
            }
            const char *what = keep ? "committed"
                               : leg->state == QP__V1__LEG_STATE__LEG_GRANTED ? "granted"
                               : failed_anchor && leg->state == QP__V1__LEG_STATE__LEG_APPROVED
                                   ? "released (compensation)"
                                   : "released";
            rl += (size_t) snprintf (reason + rl, rl < sizeof reason ? sizeof reason - rl : 0,
                                     "%s%s %s%s%s", rl ? "; " : "", leg->scheme_id, what,
                                     leg->reason && !keep ? ": " : "",
                                     leg->reason && !keep ? leg->reason : "");
            if (rl >= sizeof reason)
                rl = sizeof reason - 1;
            if (leg->state == QP__V1__LEG_STATE__LEG_GRANTED)
                continue;
            Qp__V1__FundingSettled *s = &settled[n_events];
            qp__v1__funding_settled__init (s);
            s->dossier_id = (char *) id;
            s->scheme_id = leg->scheme_id;
            s->has_agency = true, s->agency = leg->agency;
            s->has_outcome = true;
            s->outcome = keep ? QP__V1__SETTLEMENT_OUTCOME__COMMITTED
                         : leg->state == QP__V1__LEG_STATE__LEG_NO_BUDGET
                             ? QP__V1__SETTLEMENT_OUTCOME__NO_BUDGET
                             : QP__V1__SETTLEMENT_OUTCOME__RELEASED;
            s->has_amount_cents = true, s->amount_cents = keep ? amount : budget_entry_amount (entry);
            s->territory = (char *) territory;
            s->reason = keep ? NULL : leg->reason;
            s->n_information_needed = leg->n_information_needed;
            s->information_needed = leg->information_needed;
            snprintf (disc[n_events], sizeof disc[0], "%s/%s", id, leg->scheme_id);
            events[n_events] = (qp_event_t){&s->base,
                                            {.correlation_id = id, .causation_id = ds[d].cause,
                                             .event_time_ms = ds[d].time_ms,
                                             .discriminator = disc[n_events]}};
            n_events++;
        }
        Qp__V1__DossierState to;
        if (failed_anchor)
            to = failed_anchor->state == QP__V1__LEG_STATE__LEG_DECLINED
                     ? QP__V1__DOSSIER_STATE__DECLINED
                     : QP__V1__DOSSIER_STATE__UNFUNDED;
        else if (approved || (granted && granted == p->n))
            to = QP__V1__DOSSIER_STATE__FUNDED;
        else
            to = declined ? QP__V1__DOSSIER_STATE__DECLINED : QP__V1__DOSSIER_STATE__UNFUNDED;
        char *final = cl[d].final;
        if (failed_anchor)
            snprintf (final, sizeof cl[d].final, "%s failed, the plan depends on it: %s",
                      failed_anchor->scheme_id, reason);
        else
            snprintf (final, sizeof cl[d].final, "%s", reason);

        Qp__V1__FundingSettled s = QP__V1__FUNDING_SETTLED__INIT;
        s.dossier_id = (char *) id;
        s.scheme_id = main_leg ? main_leg->scheme_id : p->legs[0].leg->scheme_id;
        s.has_agency = true, s.agency = main_leg ? main_leg->agency : p->legs[0].leg->agency;
        s.has_outcome = true;
        s.outcome = to == QP__V1__DOSSIER_STATE__FUNDED ? QP__V1__SETTLEMENT_OUTCOME__COMMITTED
                                                       : QP__V1__SETTLEMENT_OUTCOME__RELEASED;
        s.has_amount_cents = true, s.amount_cents = committed;
        s.territory = (char *) territory;
        /* Stored only: its reason is the final_reason beside it (qp_store_status puts it
         * back; issue 8). */
        s.reason = NULL;
        size_t len = qp__v1__funding_settled__get_packed_size (&s);
        uint8_t *packed = cl[d].packed = malloc (len ? len : 1);
        qp__v1__funding_settled__pack (&s, packed);
        char *c = cl[d].c;
        snprintf (c, sizeof cl[d].c, "%lld", (long long) committed);
        qp_store_field_t *fields = cl[d].fields;
        fields[0] = (qp_store_field_t){"settlement", packed, len};
        fields[1] = (qp_store_field_t){"committed_cents", c, strlen (c)};
        fields[2] = (qp_store_field_t){"final_reason", final, strlen (final)};
        char *closed_id = cl[d].closed_id;
        qp_message_make_id (closed_id, qp__v1__dossier_closed__descriptor.name, ds[d].cause, id);
        Qp__V1__DossierClosed *closed = &cl[d].closed;
        qp__v1__dossier_closed__init (closed);
        closed->dossier_id = (char *) id;
        closed->has_final_state = true, closed->final_state = to;
        closed->territory = (char *) territory;
        closed->reason = final;
        closed->has_committed_cents = true, closed->committed_cents = committed;
        /* The events report the closing step: recorded with it (the outbox), every
         * settlement (n_events <= MAX_LEGS) and the DossierClosed. */
        size_t in_step = n_events;
        qp_event_t *step_events = cl[d].step_events;
        memcpy (step_events, events, in_step * sizeof *events);
        step_events[in_step] = (qp_event_t){&closed->base,
                                            {.correlation_id = id, .causation_id = ds[d].cause,
                                             .event_time_ms = ds[d].time_ms, .discriminator = id}};
        cl[d].n_events = n_events;
        steps[d] = (qp_service_step_t){.step = {.id = id, .expected = ds[d].from, .next = to,
                                                .at_ms = ds[d].time_ms, .message_id = closed_id,
                                                .note = final, .fields = fields, .n_fields = 3},
                                       .events = step_events, .n_events = in_step + 1};
    }
    /* Every closing step of the batch in one round trip, each guarded on its own. */
    qp_service_transitions (self->service, self->redis, steps, k);
    for (size_t d = 0; d < k; d++) {
        qp_store_result_t rc = steps[d].step.result;
        if (rc == QP_STORE_APPLIED) {
            for (int i = 0; i < ds[d].plan->n; i++)
                s_count_leg (ds[d].plan->legs[i].leg->state);
        }
        if (rc == QP_STORE_APPLIED || rc == QP_STORE_ALREADY)
            closed_ids[n_closed++] = ds[d].id;
        free (cl[d].packed);
    }
    s_due_remove (self, closed_ids, n_closed);
    free (closed_ids), free (ops), free (first_op), free (cl), free (steps);
}

/* ---- routing and the saga -------------------------------------------------------------- */

/* Live members of one scheme's routing set, read once per batch. */
typedef struct {
    const char *scheme;
    redisReply *live;
} route_t;

/* A live component of the leg's agency that announced the scheme, from the partner
 * cache; the choice is a function of (request, attempt) so that a retry may land on
 * another instance. false when none is live. */
static bool s_route (funding_t *self, route_t *cache, size_t *n_cache,
                     const Qp__V1__FundingLeg *leg, char *component, size_t size)
{
    route_t *rt = NULL;
    for (size_t i = 0; i < *n_cache && !rt; i++)
        if (!strcmp (cache[i].scheme, leg->scheme_id))
            rt = &cache[i];
    if (!rt && *n_cache < MAX_LEGS) {
        char key[160], now[24];
        snprintf (key, sizeof key, "qp:route:{%s}", leg->scheme_id);
        /* Statuses handled late because this instance is behind do not make a component dead. */
        snprintf (now, sizeof now, "%lld", (long long) (qp_now_ms () - self->lag_ms));
        rt = &cache[(*n_cache)++];
        rt->scheme = leg->scheme_id;
        rt->live = qp_redis_command (self->redis, "ZRANGEBYSCORE %s %s +inf", key, now);
    }
    redisReply *r = rt ? rt->live : NULL;
    const char *agency = s_agency_name (leg->agency);
    size_t alen = strlen (agency);
    const char *live[64];
    size_t n = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && n < 64; i++)
        if (!strncmp (r->element[i]->str, agency, alen) && r->element[i]->str[alen] == '/')
            live[n++] = r->element[i]->str + alen + 1;
    if (n) {
        char h[QP_ID_HEX + 1], seed[16];
        snprintf (seed, sizeof seed, "%u", leg->attempts);
        qp_message_make_id (h, "qp.funding.route", leg->request_id, seed);
        snprintf (component, size, "%s", live[strtoul ((char[9]) {h[0], h[1], h[2], h[3], h[4],
                                                                  h[5], h[6], h[7], 0},
                                                        NULL, 16) % n]);
    }
    return n > 0;
}

/* Acts on every leg of these dossiers whose time has come (ask, ask again, give up), in
 * one write for the batch, then closes the dossiers whose legs are all final. */
static void s_drive_many (funding_t *self, dossier_t *ds, size_t k)
{
    if (!k)
        return;
    plan_t *loaded = malloc (k * sizeof *loaded);
    const char **missing = calloc (k, sizeof *missing);
    size_t n_missing = 0;
    for (size_t d = 0; d < k; d++)
        if (!ds[d].plan)
            missing[n_missing++] = ds[d].id;
    s_plans_load (self, missing, n_missing, loaded); /* none (n -1) when Redis failed */
    size_t m = 0;
    for (size_t d = 0; d < k; d++)
        if (!ds[d].plan)
            ds[d].plan = &loaded[m++];
    /* One save at most per leg: sized by the legs (a save is ~1 KB; k * MAX_LEGS of them
     * was 8 MB zeroed per batch of 512). */
    size_t n_legs = 0;
    for (size_t d = 0; d < k; d++)
        n_legs += (size_t) (ds[d].plan->n > 0 ? ds[d].plan->n : 0);
    save_t *sv = malloc ((n_legs + 1) * sizeof *sv);
    bool *asks = calloc (n_legs + 1, sizeof *asks);
    size_t *first = malloc ((k + 1) * sizeof *first);
    due_t *dues = malloc (k * sizeof *dues);
    dossier_t *fin = malloc (k * sizeof *fin);
    size_t n_sv = 0, n_dues = 0, n_fin = 0, n_routes = 0;
    route_t routes[MAX_LEGS];
    int64_t now = qp_now_ms ();
    for (size_t d = 0; d < k; d++) {
        plan_t *p = ds[d].plan;
        first[d] = n_sv;
        if (p->n <= 0)
            continue;
        int64_t next = INT64_MAX;
        int open = 0;
        for (int i = 0; i < p->n; i++) {
            Qp__V1__FundingLeg *leg = p->legs[i].leg;
            if (s_final (leg->state))
                continue;
            /* An answer may be waiting in this instance's inbox: the deadline moves with the lag. */
            int64_t lag = leg->state == QP__V1__LEG_STATE__LEG_ASKED ? self->lag_ms : 0;
            if (leg->next_attempt_ms + lag > now) {
                open++;
                next = leg->next_attempt_ms < next ? leg->next_attempt_ms : next;
                continue;
            }
            save_t *s = &sv[n_sv];
            *s = (save_t){.id = ds[d].id, .l = &p->legs[i], .at_ms = ds[d].time_ms};
            char note[512], component[128];
            bool routed = s_route (self, routes, &n_routes, leg, component, sizeof component);
            if ((routed || leg->state == QP__V1__LEG_STATE__LEG_ASKED) &&
                leg->attempts >= (uint32_t) self->max_attempts) {
                /* Asked the maximum of times: the partner stayed silent. */
                leg->state = QP__V1__LEG_STATE__LEG_FAILED;
                snprintf (note, sizeof note, "%s did not answer after %u requests",
                          leg->component_id && *leg->component_id ? leg->component_id
                                                                  : "the partner",
                          leg->attempts);
                s_set_str (&leg->reason, note);
                snprintf (s->step, sizeof s->step, "%s: failed, %s", leg->scheme_id, note);
                n_sv++;
                continue;
            }
            if (routed) {
                leg->attempts++;
                leg->has_waiting_since_ms = true, leg->waiting_since_ms = 0;
                leg->state = QP__V1__LEG_STATE__LEG_ASKED;
                s_set_str (&leg->component_id, component);
                leg->next_attempt_ms = now + s_timeout (self, leg->agency) +
                                       funding_backoff_ms (self, leg->request_id, leg->attempts);
                leg->request->has_attempt = true, leg->request->attempt = leg->attempts;
                snprintf (s->step, sizeof s->step,
                          "%s: asked %s (attempt %u, answer due within %lld ms)", leg->scheme_id,
                          component, leg->attempts, (long long) s_timeout (self, leg->agency));
                asks[n_sv] = true;
                if (leg->attempts == 1) {
                    snprintf (s->disc, sizeof s->disc, "%s/%u", leg->request_id, leg->attempts);
                    s->has_event = true;
                    s->event = (qp_event_t){&leg->request->base,
                                            {.correlation_id = ds[d].id,
                                             .causation_id = ds[d].cause,
                                             .event_time_ms = ds[d].time_ms,
                                             .discriminator = s->disc}};
                }
            } else {
                /* No live component: the leg waits (backoff) up to no_component_wait_ms. */
                if (!leg->waiting_since_ms)
                    leg->has_waiting_since_ms = true, leg->waiting_since_ms = now;
                int64_t waited = now - leg->waiting_since_ms;
                uint32_t tries = leg->attempts + 1 + (uint32_t) (waited / (self->backoff_base_ms + 1));
                if (waited >= self->no_component_wait_ms) {
                    leg->state = QP__V1__LEG_STATE__LEG_FAILED;
                    /* No measured duration in the reason: decisions must replay identically. */
                    snprintf (note, sizeof note, "no live component of %s serves %s within %lld ms",
                              s_agency_name (leg->agency), leg->scheme_id,
                              (long long) self->no_component_wait_ms);
                    s_set_str (&leg->reason, note);
                    snprintf (s->step, sizeof s->step, "%s: failed, %s", leg->scheme_id, note);
                    n_sv++;
                    continue;
                }
                bool first_wait = leg->state != QP__V1__LEG_STATE__LEG_PENDING || !leg->reason;
                leg->state = QP__V1__LEG_STATE__LEG_PENDING;
                leg->next_attempt_ms = now + funding_backoff_ms (self, leg->request_id, tries);
                snprintf (note, sizeof note, "no live component of %s, waiting",
                          s_agency_name (leg->agency));
                s_set_str (&leg->reason, note);
                /* One history step when the wait starts, not one per try. */
                if (first_wait)
                    snprintf (s->step, sizeof s->step, "%s: %s", leg->scheme_id, note);
            }
            n_sv++;
            open++;
            next = leg->next_attempt_ms < next ? leg->next_attempt_ms : next;
        }
        if (open)
            dues[n_dues++] = (due_t){ds[d].id, next};
    }
    first[k] = n_sv;
    s_saves_run (self, sv, n_sv, dues, n_dues);
    /* A first request's event ("funding asked") was recorded and published with its
     * leg's save (s_saves_run). */
    for (size_t i = 0; i < n_sv; i++) {
        Qp__V1__FundingLeg *leg = sv[i].l->leg;
        if (!asks[i] || !sv[i].ok)
            continue;
        size_t d = 0;
        while (first[d + 1] <= i)
            d++;
        char service[200];
        funding_partner_service (leg->agency, leg->component_id, service, sizeof service);
        char disc[QP_ID_HEX + 16];
        snprintf (disc, sizeof disc, "%s/%u", leg->request_id, leg->attempts);
        qp_meta_t meta = {.correlation_id = ds[d].id, .causation_id = ds[d].cause,
                          .event_time_ms = ds[d].time_ms, .discriminator = disc};
        qp_service_send (self->service, service, &leg->request->base, &meta);
    }
    /* Close the dossiers with every leg final, unless another instance changed one of
     * their legs meanwhile (it drives them with what it wrote). */
    for (size_t d = 0; d < k; d++) {
        plan_t *p = ds[d].plan;
        bool all_final = p->n > 0, written = true;
        for (int i = 0; i < p->n; i++)
            all_final &= s_final (p->legs[i].leg->state);
        for (size_t i = first[d]; i < first[d + 1]; i++)
            written &= sv[i].ok;
        if (all_final && written) {
            fin[n_fin] = ds[d];
            fin[n_fin++].from = QP__V1__DOSSIER_STATE__FUNDING_REQUESTED;
        }
    }
    s_finalize_many (self, fin, n_fin);
    for (size_t i = 0; i < n_routes; i++)
        if (routes[i].live)
            freeReplyObject (routes[i].live);
    for (size_t i = 0; i < n_missing; i++)
        s_plan_free (&loaded[i]);
    free (loaded), free (missing), free (sv), free (asks), free (first), free (dues), free (fin);
}

static Qp__V1__DossierSummary *s_summary (const Qp__V1__Dossier *d, const char *territory,
                                          const char *qpv)
{
    Qp__V1__DossierSummary *s = calloc (1, sizeof *s);
    assert (s);
    qp__v1__dossier_summary__init (s);
    s->territory = strdup (territory ? territory : "");
    if (qpv)
        s->qpv_code = strdup (qpv);
    if (d->project) {
        const Qp__V1__Project *p = d->project;
        s->has_axis = p->has_axis, s->axis = p->axis;
        s->has_stage = p->has_stage, s->stage = p->stage;
        s->has_financing_need_cents = p->has_financing_need_cents;
        s->financing_need_cents = p->financing_need_cents;
        s->has_personal_contribution_cents = p->has_personal_contribution_cents;
        s->personal_contribution_cents = p->personal_contribution_cents;
        s->has_bank_loan_cents = p->has_bank_loan_cents, s->bank_loan_cents = p->bank_loan_cents;
        s->has_bank_loan_months = p->has_bank_loan_months;
        s->bank_loan_months = p->bank_loan_months;
        s->has_jobs_planned = p->has_jobs_planned, s->jobs_planned = p->jobs_planned;
    }
    if (d->business) {
        if (d->business->naf_code)
            s->naf_code = strdup (d->business->naf_code);
        if (d->business->legal_form)
            s->legal_form = strdup (d->business->legal_form);
        s->has_employees = d->business->has_employees, s->employees = d->business->employees;
    }
    if (d->holder)
        s->has_network = d->holder->has_network, s->network = d->holder->network;
    return s;
}

/* One leg of the plan, with the request its partner will see (no personal identity). */
static Qp__V1__FundingLeg *s_leg_new (funding_t *self, const char *id,
                                      const Qp__V1__SchemeDecision *sd,
                                      const Qp__V1__EligibilityDecided *e,
                                      const Qp__V1__Dossier *d)
{
    Qp__V1__FundingLeg *leg = calloc (1, sizeof *leg);
    qp__v1__funding_leg__init (leg);
    const qp_scheme_t *scheme = qp_catalogue_find (self->catalogue, sd->scheme_id);
    leg->scheme_id = strdup (sd->scheme_id);
    leg->has_agency = true, leg->agency = scheme ? scheme->agency : sd->agency;
    leg->kind = strdup (s_kind (self, sd->scheme_id));
    leg->has_anchor = true, leg->anchor = s_anchor (self, sd->scheme_id);
    leg->has_state = true, leg->state = QP__V1__LEG_STATE__LEG_PENDING;
    leg->has_amount_asked_cents = true, leg->amount_asked_cents = sd->amount_cents;
    char request_id[QP_ID_HEX + 1];
    qp_message_make_id (request_id, qp__v1__funding_request__descriptor.name, id, sd->scheme_id);
    leg->request_id = strdup (request_id);
    leg->has_attempts = true;
    leg->has_next_attempt_ms = true;

    Qp__V1__FundingRequest *rq = calloc (1, sizeof *rq);
    qp__v1__funding_request__init (rq);
    rq->request_id = strdup (request_id);
    rq->dossier_id = strdup (id);
    rq->scheme_id = strdup (sd->scheme_id);
    rq->has_agency = true, rq->agency = leg->agency;
    rq->has_amount_asked_cents = true, rq->amount_asked_cents = sd->amount_cents;
    Qp__V1__LoanTerms *terms = calloc (1, sizeof *terms);
    qp__v1__loan_terms__init (terms);
    terms->has_amount_cents = true, terms->amount_cents = sd->amount_cents;
    if (d->project && d->project->has_honour_loan_months)
        terms->has_duration_months = true, terms->duration_months = d->project->honour_loan_months;
    if (d->project && d->project->has_deferral_months)
        terms->has_deferral_months = true, terms->deferral_months = d->project->deferral_months;
    terms->has_rate_bp = true;
    rq->terms = terms;
    rq->summary = s_summary (d, e->territory,
                             e->business_location ? e->business_location->qpv_code
                             : e->residence_location ? e->residence_location->qpv_code
                                                     : NULL);
    rq->has_attempt = true;
    leg->request = rq;
    return leg;
}


/* ---- ELIGIBLE: plans, reservations, FUNDING_REQUESTED ---------------------------------- */

/* An eligibility decision to act on. */
typedef struct {
    const Qp__V1__EligibilityDecided *e;
    const char *cause;
    int64_t time_ms;
    qp_request_t *req;   /* the message it came in (to answer an error), or NULL (sweeper) */
} decided_t;

/* For each decision: the plan (once), the reservations (once each), then
 * FUNDING_REQUESTED and the first requests. One round trip per step for the whole batch
 * (the transitions pipelined: one script per dossier, in one round trip). */
static void s_request_many (funding_t *self, decided_t *dc, size_t k)
{
    if (!k)
        return;
    const char **ids = malloc (k * sizeof *ids);
    for (size_t i = 0; i < k; i++)
        ids[i] = dc[i].e->dossier_id;
    const char *field[] = {"dossier"};
    redisReply *r = s_read (self, ids, k, "d", field, 1);
    if (!r) {
        free (ids);
        return; /* Redis down: the ELIGIBLE leases bring them back */
    }
    plan_t *plans = calloc (k, sizeof *plans);
    size_t n_decisions = 0;
    for (size_t i = 0; i < k; i++)
        n_decisions += dc[i].e->n_decisions < MAX_LEGS ? dc[i].e->n_decisions : MAX_LEGS;
    budget_op_t *ops = calloc (n_decisions + 1, sizeof *ops);
    size_t n_ops = 0;
    id_index_t seen;
    s_index_init (&seen, k);
    int64_t deadline = qp_now_ms () + self->reservation_ttl_ms;
    for (size_t i = 0; i < k; i++) {
        const Qp__V1__EligibilityDecided *e = dc[i].e;
        plans[i].n = -1;
        bool dup = s_index_of (&seen, ids[i], (int) i) >= 0;
        const redisReply *v = r->element[i]->elements ? r->element[i]->element[0] : NULL;
        Qp__V1__Dossier *d = !dup && v && v->type == REDIS_REPLY_STRING
                                 ? qp__v1__dossier__unpack (NULL, v->len, (uint8_t *) v->str)
                                 : NULL;
        if (!d) {
            if (dup)
                continue; /* the same decision twice in a batch: once is enough */
            qp_error_t err;
            qp_error_set (&err, "unknown_dossier", "dossier_id",
                          "EligibilityDecided for dossier %s, which is not stored%s", ids[i],
                          v && v->type == REDIS_REPLY_STRING ? " readably" : "");
            qp_log_warn ("unknown_dossier", "%s (message %s)", err.message,
                         dc[i].cause ? dc[i].cause : "?");
            if (dc[i].req && dc[i].req->from)
                qp_service_reply_error (dc[i].req, &err); /* counted by the service */
            else
                funding_count_error ("unknown_dossier");
            continue;
        }
        plan_t *p = &plans[i];
        p->n = 0;
        for (size_t s = 0; s < e->n_decisions && p->n < MAX_LEGS; s++) {
            const Qp__V1__SchemeDecision *sd = e->decisions[s];
            if (sd->outcome != QP__V1__OUTCOME__ELIGIBLE_OUTCOME || !sd->scheme_id ||
                strchr (sd->scheme_id, ',') || strchr (sd->scheme_id, ':'))
                continue;
            Qp__V1__FundingLeg *leg = s_leg_new (self, ids[i], sd, e, d);
            snprintf (p->legs[p->n].version, sizeof p->legs[0].version, "1");
            p->legs[p->n++].leg = leg;
            if (!strcmp (leg->kind, "tax_exemption")) {
                leg->state = QP__V1__LEG_STATE__LEG_GRANTED;
                leg->has_amount_cents = true;
                leg->reason = strdup ("tax exemption: granted once eligible, no partner request");
            } else if (sd->amount_cents > 0)
                ops[n_ops++] = (budget_op_t){.scheme = leg->scheme_id, .dossier = ids[i],
                                             .territory = e->territory,
                                             .amount = sd->amount_cents,
                                             .deadline_ms = deadline};
        }
        qp__v1__dossier__free_unpacked (d, NULL);
        if (!p->n)
            qp_log_warn ("nothing_to_fund", "dossier %s: no eligible scheme", ids[i]);
    }
    s_index_free (&seen);
    freeReplyObject (r);
    r = NULL;
    if (budget_reserve_many (self->redis, ops, n_ops) != 0)
        goto done; /* Redis down: the ELIGIBLE leases bring them back */
    /* The reservations' answers, in the order they were asked. */
    size_t o = 0;
    for (size_t i = 0; i < k; i++)
        for (int l = 0; l < plans[i].n; l++) {
            Qp__V1__FundingLeg *leg = plans[i].legs[l].leg;
            if (o >= n_ops || ops[o].scheme != leg->scheme_id)
                continue;
            budget_result_t b = ops[o++].result;
            leg->has_reserved = true, leg->reserved = b == BUDGET_RESERVED;
            if (b == BUDGET_REFUSED || b == BUDGET_SETTLED) {
                leg->state = QP__V1__LEG_STATE__LEG_NO_BUDGET;
                leg->reason = strdup (b == BUDGET_REFUSED
                                          ? "the scheme's budget envelope or the territory's "
                                            "drawing right is exhausted"
                                          : "the reservation was already settled");
            }
        }
    /* The plans, once each: a concurrent instance built the same from the same inputs. */
    size_t n_plans = 0, n_args = 0;
    for (size_t i = 0; i < k; i++)
        if (plans[i].n > 0)
            n_plans++, n_args += 2 + 2 * (size_t) plans[i].n;
    const char **keys = malloc ((n_plans + 1) * sizeof *keys), **args = malloc ((n_args + 1) * sizeof *args);
    size_t *lens = malloc ((n_args + 1) * sizeof *lens);
    key_t_ *names = malloc ((n_plans + 1) * sizeof *names);
    char (*lists)[512] = malloc ((k + 1) * sizeof *lists), (*counts)[8] = malloc ((k + 1) * sizeof *counts);
    uint8_t **bufs = calloc (k * MAX_LEGS + 1, sizeof *bufs);
    size_t a = 0, kk = 0;
    for (size_t i = 0; i < k; i++) {
        plan_t *p = &plans[i];
        lists[i][0] = 0;
        for (int l = 0; l < p->n; l++)
            snprintf (lists[i] + strlen (lists[i]), sizeof lists[i] - strlen (lists[i]), "%s%s",
                      l ? "," : "", p->legs[l].leg->scheme_id);
        if (p->n <= 0)
            continue;
        snprintf (names[kk], sizeof names[0], "qp:{%s}:f", ids[i]);
        keys[kk] = names[kk];
        kk++;
        snprintf (counts[i], sizeof counts[i], "%d", p->n);
        args[a] = counts[i], lens[a++] = strlen (counts[i]);
        args[a] = lists[i], lens[a++] = strlen (lists[i]);
        for (int l = 0; l < p->n; l++) {
            Qp__V1__FundingLeg *leg = p->legs[l].leg;
            size_t len;
            uint8_t *b = bufs[i * MAX_LEGS + (size_t) l] = s_leg_pack (leg, &len);
            args[a] = leg->scheme_id, lens[a++] = strlen (leg->scheme_id);
            args[a] = (char *) b, lens[a++] = len;
        }
    }
    if (kk)
        r = qp_redis_script (self->redis, QP_LUA_FUNDING_PLAN, (int) kk, keys, (int) a, args, lens);
    for (size_t i = 0; i < k * MAX_LEGS; i++)
        free (bufs[i]);
    free (bufs), free (keys), free (args), free (lens), free (names), free (counts);
    if (kk && (!r || r->type != REDIS_REPLY_ARRAY || r->elements != kk)) {
        qp_log_error ("redis_error", "funding_plan: %s",
                      r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        free (lists);
        goto done;
    }
    /* What Redis holds is the plan: ours, or the one another instance wrote first. */
    dossier_t *fin = malloc (k * sizeof *fin), *drive = malloc (k * sizeof *drive);
    size_t n_fin = 0, n_drive = 0, n_steps = 0;
    /* FUNDING_REQUESTED for the batch in one round trip: what each step refers to. */
    qp_service_step_t *steps = calloc (k, sizeof *steps);
    qp_store_field_t *sfields = calloc (k, sizeof *sfields);
    char (*request_msgs)[QP_ID_HEX + 1] = malloc (k * sizeof *request_msgs);
    dossier_t *asked = malloc (k * sizeof *asked);
    assert (steps && sfields && request_msgs && asked);
    kk = 0;
    for (size_t i = 0; i < k; i++) {
        plan_t *p = &plans[i];
        if (p->n <= 0)
            continue;
        const redisReply *got = r->element[kk++];
        if (got->type == REDIS_REPLY_ARRAY) {
            s_plan_free (p);
            s_plan_parse (got, p);
            lists[i][0] = 0;
            for (int l = 0; l < p->n; l++)
                snprintf (lists[i] + strlen (lists[i]), sizeof lists[i] - strlen (lists[i]),
                          "%s%s", l ? "," : "", p->legs[l].leg->scheme_id);
            if (p->n <= 0)
                continue;
        }
        int no_budget = 0;
        bool anchor_refused = false;
        for (int l = 0; l < p->n; l++) {
            no_budget += p->legs[l].leg->state == QP__V1__LEG_STATE__LEG_NO_BUDGET;
            anchor_refused |= p->legs[l].leg->anchor &&
                              p->legs[l].leg->state == QP__V1__LEG_STATE__LEG_NO_BUDGET;
        }
        dossier_t dd = {ids[i], dc[i].cause, dc[i].time_ms, p, QP__V1__DOSSIER_STATE__ELIGIBLE};
        if (anchor_refused || no_budget == p->n) {
            fin[n_fin++] = dd;
            continue;
        }
        char *request_msg = request_msgs[n_steps];
        qp_message_make_id (request_msg, qp__v1__funding_request__descriptor.name, dc[i].cause,
                            ids[i]);
        sfields[n_steps] = (qp_store_field_t){"scheme", lists[i], strlen (lists[i])};
        steps[n_steps] = (qp_service_step_t){.step = {
            .id = ids[i], .expected = QP__V1__DOSSIER_STATE__ELIGIBLE,
            .next = QP__V1__DOSSIER_STATE__FUNDING_REQUESTED, .at_ms = dc[i].time_ms,
            .message_id = request_msg, .note = "funding plan: amounts reserved, partners to ask",
            .fields = &sfields[n_steps], .n_fields = 1}};
        asked[n_steps++] = dd;
    }
    qp_service_transitions (self->service, self->redis, steps, n_steps);
    for (size_t j = 0; j < n_steps; j++)
        if (steps[j].step.result == QP_STORE_APPLIED ||
            (steps[j].step.result == QP_STORE_ALREADY &&
             steps[j].step.state == QP__V1__DOSSIER_STATE__FUNDING_REQUESTED))
            drive[n_drive++] = asked[j];
    free (steps), free (sfields), free (request_msgs), free (asked);
    free (lists);
    freeReplyObject (r);
    r = NULL;
    s_finalize_many (self, fin, n_fin);
    s_drive_many (self, drive, n_drive);
    free (fin), free (drive);
done:
    if (r)
        freeReplyObject (r);
    for (size_t i = 0; i < k; i++)
        s_plan_free (&plans[i]);
    free (plans), free (ops), free (ids);
}


/* ---- partners' answers ------------------------------------------------------------------ */

typedef struct {
    funding_queued_t *q;
    bool done;
} answer_t;

/* Applies one answer to its leg in hand. Returns true when the leg changed (to be
 * written), false when the answer was refused (answered with an error). */
static bool s_answer_apply (funding_t *self, funding_queued_t *q, plan_t *p, save_t *s)
{
    qp_request_t req = {.service = self->service, .from = q->from, .msg = q->msg};
    Qp__V1__PartnerDecision *pd = (Qp__V1__PartnerDecision *) q->msg.payload;
    Qp__V1__Envelope *env = q->msg.envelope;
    qp_error_t err;
    leg_t *l = NULL;
    for (int i = 0; i < p->n && !l; i++)
        if (!strcmp (p->legs[i].leg->scheme_id, pd->scheme_id))
            l = &p->legs[i];
    if (!l || !l->leg->request_id || strcmp (l->leg->request_id, pd->request_id)) {
        qp_error_set (&err, "unknown_request", "request_id",
                      "no funding request %s for dossier %s, scheme %s", pd->request_id,
                      pd->dossier_id, pd->scheme_id);
        qp_log_warn ("unknown_request", "%s (from %s)", err.message,
                     pd->component_id ? pd->component_id : "?");
        qp_service_reply_error (&req, &err);
        return false;
    }
    Qp__V1__FundingLeg *leg = l->leg;
    if (!pd->has_agency || pd->agency != leg->agency) {
        qp_error_set (&err, "forbidden", "agency", "request %s is for %s's scheme %s, answered as %s",
                      pd->request_id, s_agency_name (leg->agency), pd->scheme_id,
                      s_agency_name (pd->agency));
        qp_log_warn ("partner_forbidden", "%s", err.message);
        qp_service_reply_error (&req, &err);
        return false;
    }
    if (s_final (leg->state)) {
        qp_error_set (&err, "already_decided", "request_id",
                      "request %s was already settled (%s); this answer changes nothing",
                      pd->request_id, leg->reason ? leg->reason : "");
        qp_log_warn ("duplicate_answer", "%s (from %s)", err.message,
                     pd->component_id ? pd->component_id : "?");
        qp_service_reply_error (&req, &err);
        return false;
    }
    bool approved = pd->outcome == QP__V1__PARTNER_OUTCOME__APPROVED;
    bool info = pd->outcome == QP__V1__PARTNER_OUTCOME__INFORMATION_NEEDED;
    int64_t granted = approved && pd->terms && pd->terms->has_amount_cents
                          ? pd->terms->amount_cents
                          : leg->amount_asked_cents;
    if (approved && (granted < 0 || granted > leg->amount_asked_cents ||
                     (granted == 0 && leg->amount_asked_cents > 0))) {
        qp_error_set (&err, "invalid_field", "terms.amount_cents",
                      "approved amount %lld must be > 0 and ≤ the %lld asked", (long long) granted,
                      (long long) leg->amount_asked_cents);
        qp_service_reply_error (&req, &err);
        return false;
    }
    if (approved && s_honour_loan (self, leg->scheme_id) &&
        terms_check (&self->honour_loan, pd->terms, &err) != 0) {
        qp_log_warn ("bad_terms", "request %s: %s", pd->request_id, err.message);
        qp_service_reply_error (&req, &err);
        return false;
    }
    if (info && !pd->n_information_needed) {
        qp_error_set (&err, "invalid_field", "information_needed",
                      "INFORMATION_NEEDED must list what is needed (at least one entry)");
        qp_service_reply_error (&req, &err);
        return false;
    }
    char note[700];
    const char *who = pd->component_id ? pd->component_id : "the partner";
    leg->state = approved ? QP__V1__LEG_STATE__LEG_APPROVED
                 : info   ? QP__V1__LEG_STATE__LEG_INFORMATION_NEEDED
                          : QP__V1__LEG_STATE__LEG_DECLINED;
    leg->has_amount_cents = true, leg->amount_cents = approved ? granted : 0;
    s_set_str (&leg->component_id, pd->component_id);
    if (approved) {
        snprintf (note, sizeof note, "approved by %s", who);
        if (leg->terms)
            qp__v1__loan_terms__free_unpacked (leg->terms, NULL);
        /* A deep copy (packed and unpacked): the answer is freed after the batch. */
        leg->terms = NULL;
        if (pd->terms) {
            size_t tl = qp__v1__loan_terms__get_packed_size (pd->terms);
            uint8_t *tb = malloc (tl ? tl : 1);
            qp__v1__loan_terms__pack (pd->terms, tb);
            leg->terms = qp__v1__loan_terms__unpack (NULL, tl, tb);
            free (tb);
        }
        if (!leg->terms) {
            leg->terms = calloc (1, sizeof *leg->terms);
            qp__v1__loan_terms__init (leg->terms);
        }
        leg->terms->has_amount_cents = true, leg->terms->amount_cents = granted;
        if (s_honour_loan (self, leg->scheme_id)) {
            Qp__V1__HonourLoanTerms *h = calloc (1, sizeof *h);
            qp__v1__honour_loan_terms__init (h);
            const Qp__V1__DossierSummary *sm = leg->request ? leg->request->summary : NULL;
            terms_honour_loan (leg->terms, sm ? sm->bank_loan_cents : 0,
                               qp_date_from_ms (env->has_event_time_ms ? env->event_time_ms : 0), h);
            if (leg->honour_loan)
                qp__v1__honour_loan_terms__free_unpacked (leg->honour_loan, NULL);
            leg->honour_loan = h;
        }
    } else if (info) {
        /* Not a refusal: the partner cannot decide without these. */
        char needed[400] = "";
        for (size_t i = 0; i < pd->n_information_needed; i++)
            snprintf (needed + strlen (needed), sizeof needed - strlen (needed), "%s%s",
                      i ? ", " : "", pd->information_needed[i] ? pd->information_needed[i] : "");
        snprintf (note, sizeof note, "information needed by %s: %s (needed: %s)", who,
                  pd->reason ? pd->reason : "no reason given", needed);
        for (size_t i = 0; i < leg->n_information_needed; i++)
            free (leg->information_needed[i]);
        free (leg->information_needed);
        leg->n_information_needed = pd->n_information_needed;
        leg->information_needed = calloc (pd->n_information_needed, sizeof (char *));
        for (size_t i = 0; i < pd->n_information_needed; i++)
            leg->information_needed[i] =
                strdup (pd->information_needed[i] ? pd->information_needed[i] : "");
    } else
        snprintf (note, sizeof note, "declined by %s: %s", who,
                  pd->reason ? pd->reason : "no reason given");
    s_set_str (&leg->reason, note);
    *s = (save_t){.id = pd->dossier_id, .l = l,
                  .at_ms = env->has_event_time_ms ? env->event_time_ms : 0};
    snprintf (s->step, sizeof s->step, "%s: %s", leg->scheme_id, note);
    return true;
}

/* Partners' answers, each recorded once, in one read and one write per batch (a leg
 * another instance changed meanwhile is read again, up to 5 times); then the saga moves
 * on for their dossiers. */
static void s_answers_many (funding_t *self, funding_queued_t *qs, size_t k)
{
    if (!k)
        return;
    answer_t *as = calloc (k, sizeof *as);
    const char **ids = malloc (k * sizeof *ids);
    plan_t *plans = malloc (k * sizeof *plans);
    int *plan_of = malloc (k * sizeof *plan_of), *save_of = malloc (k * sizeof *save_of);
    save_t *sv = malloc (k * sizeof *sv);
    dossier_t *drive = malloc (k * sizeof *drive);
    bool *in_round = malloc (k * sizeof *in_round), *changed = malloc (k * sizeof *changed),
         *failed = malloc (k * sizeof *failed);
    for (size_t i = 0; i < k; i++)
        as[i].q = &qs[i];
    for (int round = 0; round < 5; round++) {
        size_t n_ids = 0, n_sv = 0, n_drive = 0;
        id_index_t index;
        s_index_init (&index, k);
        for (size_t i = 0; i < k; i++) {
            in_round[i] = !as[i].done;
            if (!in_round[i])
                continue;
            Qp__V1__PartnerDecision *pd = (Qp__V1__PartnerDecision *) as[i].q->msg.payload;
            int seen = s_index_of (&index, pd->dossier_id, (int) n_ids);
            size_t j = seen >= 0 ? (size_t) seen : n_ids;
            if (seen < 0) {
                Qp__V1__Envelope *env = as[i].q->msg.envelope;
                drive[j] = (dossier_t){pd->dossier_id, env->message_id,
                                       env->has_event_time_ms ? env->event_time_ms : 0,
                                       &plans[j], QP__V1__DOSSIER_STATE__FUNDING_REQUESTED};
                ids[n_ids++] = pd->dossier_id;
            }
            plan_of[i] = (int) j;
        }
        s_index_free (&index);
        if (!n_ids)
            break;
        s_plans_load (self, ids, n_ids, plans); /* Redis down: none, unknown_request */
        for (size_t i = 0; i < k; i++) {
            if (!in_round[i])
                continue;
            as[i].done = true;
            save_of[i] = s_answer_apply (self, as[i].q, &plans[plan_of[i]], &sv[n_sv])
                             ? (int) n_sv++
                             : -1;
        }
        s_saves_run (self, sv, n_sv, NULL, 0);
        memset (changed, 0, n_ids * sizeof *changed);
        memset (failed, 0, n_ids * sizeof *failed);
        for (size_t i = 0; i < k; i++) {
            if (!in_round[i] || save_of[i] < 0)
                continue;
            if (sv[save_of[i]].ok)
                changed[plan_of[i]] = true;
            else
                as[i].done = false, failed[plan_of[i]] = true; /* changed meanwhile: again */
        }
        /* The dossiers may be complete now (those with a leg to read again: next round). */
        for (size_t j = 0; j < n_ids; j++)
            if (changed[j] && !failed[j])
                drive[n_drive++] = drive[j];
        s_drive_many (self, drive, n_drive);
        for (size_t j = 0; j < n_ids; j++)
            s_plan_free (&plans[j]);
    }
    free (as), free (ids), free (plans), free (plan_of), free (save_of), free (sv), free (drive);
    free (in_round), free (changed), free (failed);
}


/* ---- batching: messages wait for the end of the burst the service reads -------------- */

static void s_queue (funding_queued_t *q, qp_request_t *req)
{
    q->msg = req->msg;
    memset (&req->msg, 0, sizeof req->msg); /* ours now: the service frees an empty one */
    q->from = req->from ? zframe_dup (req->from) : NULL;
}

static void s_unqueue (funding_queued_t *q)
{
    qp_message_clear (&q->msg);
    zframe_destroy (&q->from);
}

void funding_flush (funding_t *self)
{
    size_t n = self->n_decided;
    if (n) {
        decided_t dc[FUNDING_BATCH];
        qp_request_t reqs[FUNDING_BATCH];
        for (size_t i = 0; i < n; i++) {
            funding_queued_t *q = &self->decided[i];
            reqs[i] = (qp_request_t){.service = self->service, .from = q->from, .msg = q->msg};
            dc[i] = (decided_t){(Qp__V1__EligibilityDecided *) q->msg.payload,
                                q->msg.envelope->message_id,
                                q->msg.envelope->has_event_time_ms ? q->msg.envelope->event_time_ms : 0,
                                &reqs[i]};
        }
        s_request_many (self, dc, n);
        for (size_t i = 0; i < n; i++)
            s_unqueue (&self->decided[i]);
        self->n_decided = 0;
    }
    n = self->n_answers;
    if (n) {
        s_answers_many (self, self->answers, n);
        for (size_t i = 0; i < n; i++)
            s_unqueue (&self->answers[i]);
        self->n_answers = 0;
    }
}

static void s_on_flush (qp_service_t *service, void *arg)
{
    (void) service;
    funding_flush (arg);
}

static void s_on_decided (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__EligibilityDecided *e = (Qp__V1__EligibilityDecided *) req->msg.payload;
    if (!e->dossier_id || !*e->dossier_id) {
        qp_error_t err;
        qp_error_set (&err, "invalid_field", "dossier_id", "EligibilityDecided needs dossier_id");
        qp_service_reply_error (req, &err);
        return;
    }
    s_queue (&self->decided[self->n_decided++], req);
    if (self->n_decided == FUNDING_BATCH)
        funding_flush (self);
}

static void s_on_partner_decision (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerDecision *pd = (Qp__V1__PartnerDecision *) req->msg.payload;
    if (!pd->dossier_id || !pd->request_id || !pd->scheme_id || !pd->has_outcome ||
        pd->outcome == QP__V1__PARTNER_OUTCOME__PARTNER_OUTCOME_UNSPECIFIED) {
        qp_error_t err;
        qp_error_set (&err, "invalid_field",
                      !pd->dossier_id   ? "dossier_id"
                      : !pd->request_id ? "request_id"
                      : !pd->scheme_id  ? "scheme_id"
                                        : "outcome",
                      "a PartnerDecision needs dossier_id, request_id, scheme_id and outcome");
        qp_service_reply_error (req, &err);
        return;
    }
    s_queue (&self->answers[self->n_answers++], req);
    if (self->n_answers == FUNDING_BATCH)
        funding_flush (self);
}


/* ---- the partner cache ---------------------------------------------------------------- */

#define PARTNER_TTL_FLOOR_MS 10000

/* Caches a hello or status in Redis and puts the component in (or out of) routing. */
static void s_cache_partner (funding_t *self, const char *component, Qp__V1__Agency agency,
                             uint32_t interval_ms, const char *accepting, const char *schemes,
                             const char **kv, int n_kv)
{
    char key[160], set[96], ttl[24], until[24], seen[24];
    int64_t now = qp_now_ms ();
    /* Three intervals, and never under PARTNER_TTL_FLOOR_MS: a funding instance stalled a
     * few seconds (a burst, a slow Redis) must not take live components out of routing. */
    uint32_t ttl_ms = 3 * (interval_ms ? interval_ms : 1000);
    if (ttl_ms < PARTNER_TTL_FLOOR_MS)
        ttl_ms = PARTNER_TTL_FLOOR_MS;
    snprintf (key, sizeof key, "qp:partner:%s", component);
    snprintf (set, sizeof set, "qp:partners:%s", s_agency_name (agency));
    snprintf (ttl, sizeof ttl, "%u", ttl_ms);
    snprintf (until, sizeof until, "%lld", (long long) (now + ttl_ms));
    snprintf (seen, sizeof seen, "%lld", (long long) now);
    const char *args[24] = {component, s_agency_name (agency), ttl, until, accepting, schemes,
                            "last_seen_ms", seen};
    int nargs = 8;
    for (int i = 0; i < n_kv && nargs < 24; i++)
        args[nargs++] = kv[i];
    const char *keys[] = {key, set};
    redisReply *r = qp_redis_script (self->redis, QP_LUA_PARTNER_REPORT, 2, keys, nargs, args, NULL);
    if (r && r->type == REDIS_REPLY_ERROR)
        qp_log_error ("redis_error", "partner cache: %s", r->str);
    if (r)
        freeReplyObject (r);
}

static bool s_component_ok (qp_request_t *req, const char *component, bool has_agency,
                            Qp__V1__Agency agency)
{
    qp_error_t err;
    bool ok = component && *component && strlen (component) <= 40 && has_agency &&
              agency != QP__V1__AGENCY__AGENCY_UNSPECIFIED;
    for (const char *p = component; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '-' || *p == '_';
    if (!ok) {
        qp_error_set (&err, "invalid_field", component && *component ? "agency" : "component_id",
                      "a component needs an agency and an id of 1-40 letters, digits, - or _");
        qp_service_reply_error (req, &err);
    }
    return ok;
}

static void s_on_hello (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerHello *h = (Qp__V1__PartnerHello *) req->msg.payload;
    if (!s_component_ok (req, h->component_id, h->has_agency, h->agency))
        return;
    /* A component routes only its own agency's schemes. */
    char schemes[512] = "", refused[256] = "";
    for (size_t i = 0; i < h->n_schemes; i++) {
        const qp_scheme_t *s = qp_catalogue_find (self->catalogue, h->schemes[i]);
        bool ours = !s || s->agency == h->agency;
        char *out = ours ? schemes : refused;
        size_t size = ours ? sizeof schemes : sizeof refused;
        if (strchr (h->schemes[i], ',') || strchr (h->schemes[i], '}'))
            continue;
        snprintf (out + strlen (out), size - strlen (out), "%s%s", *out ? "," : "", h->schemes[i]);
    }
    if (*refused) {
        qp_error_t err;
        qp_error_set (&err, "forbidden", "schemes",
                      "%s announces %s, schemes of another agency: not routed to it",
                      h->component_id, refused);
        qp_log_warn ("partner_forbidden", "%s", err.message);
        qp_service_reply_error (req, &err);
    }
    char capacity[16];
    snprintf (capacity, sizeof capacity, "%u", h->capacity);
    const char *kv[] = {"name",     h->component_name ? h->component_name : "",
                        "version",  h->version ? h->version : "",
                        "capacity", capacity};
    s_cache_partner (self, h->component_id, h->agency, h->status_interval_ms, "",
                     *schemes ? schemes : ",", kv, 6);
    qp_log_info ("partner_hello", "component %s (%s %s) of %s serves %s", h->component_id,
                 h->component_name ? h->component_name : "?", h->version ? h->version : "?",
                 s_agency_name (h->agency), schemes);
}

static void s_on_status (qp_request_t *req, void *arg)
{
    funding_t *self = arg;
    Qp__V1__PartnerStatus *s = (Qp__V1__PartnerStatus *) req->msg.payload;
    if (!s_component_ok (req, s->component_id, s->has_agency, s->agency))
        return;
    /* A status carries its sending time: how long it waited is this instance's lag. */
    Qp__V1__Envelope *env = req->msg.envelope;
    if (env->has_event_time_ms) {
        int64_t lag = qp_now_ms () - env->event_time_ms;
        self->lag_ms = lag < 0 ? 0 : lag > 600000 ? 600000 : lag;
    }
    char budget[24], in_flight[16];
    snprintf (budget, sizeof budget, "%lld", (long long) s->remaining_budget_cents);
    snprintf (in_flight, sizeof in_flight, "%u", s->in_flight);
    bool accepting = s->alive && s->accepting;
    const char *kv[] = {"alive", s->alive ? "1" : "0", "accepting", accepting ? "1" : "0",
                        "remaining_budget_cents", budget, "in_flight", in_flight};
    s_cache_partner (self, s->component_id, s->agency, s->status_interval_ms,
                     accepting ? "1" : "0", "", kv, 8);
}



/* ---- sweepers ------------------------------------------------------------------------- */

/* The message id of the EligibilityDecided a dossier went through, recomputed from the
 * submission's id so that a sweeper re-sends byte-identical messages. */
static void s_chain (const char *id, const redisReply *source, char decided[QP_ID_HEX + 1])
{
    char received[QP_ID_HEX + 1];
    qp_message_make_id (received, qp__v1__dossier_received__descriptor.name,
                        source && source->type == REDIS_REPLY_STRING ? source->str : NULL, id);
    qp_message_make_id (decided, qp__v1__eligibility_decided__descriptor.name, received, id);
}

/* Drives claimed dossiers again, with the chain and time of each read in one round trip. */
static void s_redrive (funding_t *self, const char *const *ids, size_t n)
{
    const char *fields[] = {"source_msg", "event_time_ms"};
    redisReply *r = s_read (self, ids, n, "d", fields, 2);
    if (!r)
        return;
    dossier_t *ds = malloc (n * sizeof *ds);
    char (*causes)[QP_ID_HEX + 1] = malloc (n * sizeof *causes);
    for (size_t i = 0; i < n; i++) {
        const redisReply *v = r->element[i];
        s_chain (ids[i], v->elements > 0 ? v->element[0] : NULL, causes[i]);
        ds[i] = (dossier_t){ids[i], causes[i],
                            v->elements > 1 && v->element[1]->type == REDIS_REPLY_STRING
                                ? atoll (v->element[1]->str)
                                : 0,
                            NULL, QP__V1__DOSSIER_STATE__FUNDING_REQUESTED};
    }
    s_drive_many (self, ds, n);
    free (ds), free (causes);
    freeReplyObject (r);
}

static void s_sweep_eligible (funding_t *self)
{
    char *ids[SWEEP_BATCH];
    size_t n = qp_store_claim_expired (self->redis, QP__V1__DOSSIER_STATE__ELIGIBLE, qp_now_ms (),
                                       ids, SWEEP_BATCH);
    const char *fields[] = {"eligibility", "source_msg", "event_time_ms"};
    redisReply *r = n ? s_read (self, (const char *const *) ids, n, "d", fields, 3) : NULL;
    decided_t *dc = malloc ((n + 1) * sizeof *dc);
    Qp__V1__EligibilityDecided **es = calloc (n + 1, sizeof *es);
    char (*causes)[QP_ID_HEX + 1] = malloc ((n + 1) * sizeof *causes);
    size_t m = 0;
    for (size_t i = 0; r && i < n; i++) {
        const redisReply *v = r->element[i];
        const redisReply *pk = v->elements == 3 ? v->element[0] : NULL;
        es[i] = pk && pk->type == REDIS_REPLY_STRING
                    ? qp__v1__eligibility_decided__unpack (NULL, pk->len, (uint8_t *) pk->str)
                    : NULL;
        if (!es[i] || !es[i]->dossier_id)
            continue;
        s_chain (ids[i], v->element[1], causes[i]);
        qp_log_info ("redispatch", "dossier %s: ELIGIBLE lease expired, planning again", ids[i]);
        dc[m++] = (decided_t){es[i], causes[i],
                              v->element[2]->type == REDIS_REPLY_STRING ? atoll (v->element[2]->str) : 0,
                              NULL};
    }
    for (size_t i = 0; i < m; i += FUNDING_BATCH)
        if (!zsys_interrupted)
            s_request_many (self, dc + i, m - i < FUNDING_BATCH ? m - i : FUNDING_BATCH);
    for (size_t i = 0; i < n; i++) {
        if (es[i])
            qp__v1__eligibility_decided__free_unpacked (es[i], NULL);
        free (ids[i]);
    }
    if (r)
        freeReplyObject (r);
    free (dc), free (es), free (causes);
}

/* Dossiers whose next action is due (timeouts, backoff), and FUNDING_REQUESTED dossiers
 * whose lease expired (a funding instance died between two steps). */
static void s_sweep_due (funding_t *self)
{
    char now[24], limit[16], push[16];
    snprintf (now, sizeof now, "%lld", (long long) qp_now_ms ());
    snprintf (limit, sizeof limit, "%d", SWEEP_BATCH);
    snprintf (push, sizeof push, "%d", 5000);
    const char *keys[] = {DUE_KEY};
    const char *args[] = {now, limit, push};
    redisReply *r = qp_redis_script (self->redis, QP_LUA_FUNDING_DUE_CLAIM, 1, keys, 3, args, NULL);
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    const char **ids = malloc ((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = r->element[i]->str;
    for (size_t i = 0; i < n && !zsys_interrupted; i += FUNDING_BATCH)
        s_redrive (self, ids + i, n - i < FUNDING_BATCH ? n - i : FUNDING_BATCH);
    free (ids);
    if (r)
        freeReplyObject (r);
    char *claimed[SWEEP_BATCH];
    n = zsys_interrupted ? 0
                         : qp_store_claim_expired (self->redis,
                                                   QP__V1__DOSSIER_STATE__FUNDING_REQUESTED,
                                                   qp_now_ms (), claimed, SWEEP_BATCH);
    for (size_t i = 0; i < n && !zsys_interrupted; i += FUNDING_BATCH)
        s_redrive (self, (const char *const *) claimed + i,
                   n - i < FUNDING_BATCH ? n - i : FUNDING_BATCH);
    for (size_t i = 0; i < n; i++)
        free (claimed[i]);
}

static void s_sweep (qp_service_t *service, void *arg)
{
    (void) service;
    funding_t *self = arg;
    funding_flush (self); /* what the inbox brought first */
    s_sweep_eligible (self);
    s_sweep_due (self);
    for (size_t i = 0; i < self->n_envelope_schemes && !zsys_interrupted; i++)
        budget_expire (self->redis, self->envelope_schemes[i], qp_now_ms (), SWEEP_BATCH);
    /* Give the memory of a burst back to the system when built on glibc's malloc
     * (-DQP_JEMALLOC=OFF: glibc keeps freed pages otherwise); jemalloc returns its free
     * pages by itself, and this trims nothing then. */
    if (++self->sweeps % 25 == 0)
        malloc_trim (0);
}

int funding_check_catalogue (const qp_catalogue_t *catalogue, qp_error_t *err)
{
    size_t n = qp_catalogue_size (catalogue);
    if (n <= FUNDING_MAX_LEGS)
        return 0;
    qp_error_set (err, "catalogue_too_large", "catalogue",
                  "the catalogue holds %zu schemes; a funding plan holds at most %d legs "
                  "(FUNDING_MAX_LEGS), so a dossier eligible to more would lose some",
                  n, FUNDING_MAX_LEGS);
    return -1;
}

void funding_register (funding_t *self)
{
    qp_service_on (self->service, &qp__v1__eligibility_decided__descriptor, s_on_decided, self);
    qp_service_on (self->service, &qp__v1__partner_decision__descriptor, s_on_partner_decision,
                   self);
    qp_service_on (self->service, &qp__v1__partner_hello__descriptor, s_on_hello, self);
    qp_service_on (self->service, &qp__v1__partner_status__descriptor, s_on_status, self);
    /* A batch is what one read brought: a lone message is handled at once (it waited up
     * to 1 ms for a timer before, on each of a dossier's two funding steps). */
    qp_service_after_burst (self->service, s_on_flush, self);
    qp_service_every (self->service, SWEEP_INTERVAL_MS, s_sweep, self);
    qp_service_outbox (self->service, self->redis); /* sweeps what a dead instance left */
}
