/* qp-replay: re-injects the inputs of a journal into a running stack, and compares the
 * decisions of two journals.
 *
 *   qp-replay [options] JOURNAL   inputs (submissions, follow-ups, territory phases) to the
 *                                 services they went to, paced as recorded / speed; the
 *                                 partner requests the stack makes are answered with the
 *                                 recorded partner decisions (the replay partner) unless
 *                                 --live-partners
 *   qp-replay diff A B            eligibility, funding and closing decisions of A and B;
 *                                 exit 0 only if identical
 *
 * The stack is deterministic by construction (ids from inputs, decisions on business
 * time), so a fresh stack fed the same inputs and the same partner answers decides the
 * same: qp-record the replay, then diff it against the original. */
#include "qp_bus.h"
#include "qp_journal.h"
#include "qp_json.h"
#include "qp_store.h"
#include <czmq.h>
#include <inttypes.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

/* The messages that enter the system from outside, and where they go by default (a
 * journal written before the bus captured destinations). */
static const struct {
    const char *type;
    const char *service;
} s_inputs[] = {
    {"qp.v1.SubmitDossier", "intake"},
    {"qp.v1.FollowUp", "intake"},
    {"qp.v1.TerritoryPhase", "evaluation"},
};
#define N_INPUTS (sizeof s_inputs / sizeof s_inputs[0])

static const char *const s_decisions[] = {"qp.v1.EligibilityDecided", "qp.v1.FundingSettled",
                                          "qp.v1.DossierClosed"};

#define MAX_FILTERS 16

typedef struct {
    const char *journal;
    const char *work, *partner;
    const char *curve_dir; /* qp-keygen's directory when the partner endpoint has CURVE */
    double speed;          /* 0: max */
    bool from_is_time, until_is_time;
    uint64_t from_offset, until_offset;
    int64_t from_us, until_us;
    const char *types[MAX_FILTERS], *territories[MAX_FILTERS], *channels[MAX_FILTERS];
    size_t n_types, n_territories, n_channels;
    bool dry_run, live_partners, skip_bad, quiet;
    long linger_ms, window;
} options_t;

static void s_usage (FILE *f)
{
    fprintf (f,
             "Usage: qp-replay [options] JOURNAL\n"
             "       qp-replay diff JOURNAL_A JOURNAL_B\n"
             "Replays the inputs of JOURNAL (SubmitDossier, FollowUp, TerritoryPhase) into the\n"
             "stack at QP_BUS_WORK; partner requests are answered with the recorded decisions.\n"
             "  --speed 1|10|max|X     pace: recorded timing divided by X (default max)\n"
             "  --from X, --until X    an offset (digits), or a time (2026-03-02T10:00:00Z, or\n"
             "                         @MS since the epoch) of recording; until is inclusive\n"
             "  --filter K=V[,K=V]     type=SubmitDossier|FollowUp|..., territory=T, channel=C;\n"
             "                         repeat a key to accept several values\n"
             "  --dry-run              print what would be sent (counts by type, time span)\n"
             "  --live-partners        do not answer partner requests: the live components do\n"
             "  --on-bad stop|skip     a damaged record or an unknown type: stop (default) or\n"
             "                         report it and go on\n"
             "  --linger-ms N          after the last input, answer partners until N ms pass\n"
             "                         without traffic (default 3000)\n"
             "  --window N             submissions in flight at most (default 2000)\n"
             "  --bus-work E, --bus-partner E   (QP_BUS_WORK, QP_BUS_PARTNER)\n"
             "  --curve-dir DIR        the partner endpoint has CURVE (QP_CURVE_DIR): the\n"
             "                         replay partner speaks for each agency with its key\n"
             "                         DIR/AGENCY.cert_secret and the bus's DIR/bus.cert\n"
             "  --quiet                no progress\n"
             "Exit: 0 all sent and answered, 1 stopped on a bad record or unanswered inputs,\n"
             "2 usage.\n");
}

static int64_t s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "123" an offset; "@MS" or ISO 8601 UTC a time in us. Returns 0, or -1. */
static int s_parse_point (const char *text, bool *is_time, uint64_t *offset, int64_t *us)
{
    char *end;
    if (text[0] == '@') {
        long long ms = strtoll (text + 1, &end, 10);
        if (*end || end == text + 1)
            return -1;
        *is_time = true;
        *us = ms * 1000;
        return 0;
    }
    if (strspn (text, "0123456789") == strlen (text) && *text) {
        *is_time = false;
        *offset = strtoull (text, NULL, 10);
        return 0;
    }
    struct tm tm = {0};
    end = strptime (text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return -1;
    double frac = 0;
    if (*end == '.') {
        frac = strtod (end, &end);
    }
    if (*end == 'Z')
        end++;
    if (*end)
        return -1;
    *is_time = true;
    *us = (int64_t)timegm (&tm) * 1000000 + (int64_t)(frac * 1e6);
    return 0;
}

static int s_parse_filter (options_t *o, char *spec)
{
    for (char *save = NULL, *kv = strtok_r (spec, ",", &save); kv;
         kv = strtok_r (NULL, ",", &save)) {
        char *eq = strchr (kv, '=');
        if (!eq || !eq[1])
            return -1;
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp (kv, "type") && o->n_types < MAX_FILTERS)
            o->types[o->n_types++] = v;
        else if (!strcmp (kv, "territory") && o->n_territories < MAX_FILTERS)
            o->territories[o->n_territories++] = v;
        else if (!strcmp (kv, "channel") && o->n_channels < MAX_FILTERS)
            o->channels[o->n_channels++] = v;
        else
            return -1;
    }
    return 0;
}

static bool s_in (const char *const *list, size_t n, const char *v)
{
    for (size_t i = 0; i < n; i++)
        if (v && !strcmp (list[i], v))
            return true;
    return false;
}

/* ---- what the journal knows about dossiers and partners ------------------------------ */

typedef struct {
    zhash_t *territory; /* dossier id -> territory (from DossierReceived) */
    zhash_t *channel;   /* dossier id -> channel */
    zhash_t *person;    /* dossier id -> person key intake derived (from DossierReceived) */
    zhash_t *decisions; /* request id -> zchunk envelope of the recorded PartnerDecision */
    zhash_t *partners;  /* partner.X services the recorded FundingRequests went to */
    zhash_t *hellos;    /* component id -> zchunk envelope of its first PartnerHello */
    zhash_t *statuses;  /* component id -> zchunk envelope of its last PartnerStatus */
    uint64_t problems;
} knowledge_t;

static void s_knowledge_free (knowledge_t *k)
{
    zhash_destroy (&k->territory);
    zhash_destroy (&k->channel);
    zhash_destroy (&k->person);
    zhash_destroy (&k->decisions);
    zhash_destroy (&k->partners);
    zhash_destroy (&k->hellos);
    zhash_destroy (&k->statuses);
}

static void s_chunk_free (void *p)
{
    zchunk_t *c = p;
    zchunk_destroy (&c);
}

static void s_list_free (void *p)
{
    zlist_t *l = p;
    zlist_destroy (&l);
}

static bool s_type_is (const qp_journal_record_t *r, const char *type)
{
    return r->type_len == strlen (type) && !memcmp (r->type, type, r->type_len);
}

/* One pass over the whole journal (territories and partner answers may lie outside the
 * replayed range). */
static int s_learn (const char *dir, knowledge_t *k)
{
    char err[600];
    qp_journal_reader_t *r = qp_journal_reader_open (dir, err, sizeof err);
    if (!r) {
        fprintf (stderr, "qp-replay: %s\n", err);
        return -1;
    }
    k->territory = zhash_new ();
    k->channel = zhash_new ();
    k->person = zhash_new ();
    k->decisions = zhash_new ();
    k->partners = zhash_new ();
    k->hellos = zhash_new ();
    k->statuses = zhash_new ();
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            k->problems++;
            continue;
        }
        if (rec.kind != QP_JOURNAL_MESSAGE)
            continue;
        bool received = s_type_is (&rec, "qp.v1.DossierReceived");
        bool decision = s_type_is (&rec, "qp.v1.PartnerDecision");
        bool request = s_type_is (&rec, "qp.v1.FundingRequest");
        char svc[80] = "";
        if (request && rec.destination_len > 8 && !memcmp (rec.destination, "partner.", 8))
            snprintf (svc, sizeof svc, "%.*s", (int)rec.destination_len, rec.destination);
        bool hello = s_type_is (&rec, "qp.v1.PartnerHello");
        bool status = s_type_is (&rec, "qp.v1.PartnerStatus");
        if (!received && !decision && !hello && !status && !*svc)
            continue;
        qp_message_t m;
        qp_error_t e;
        if (qp_journal_record_decode (&rec, &m, &e) < 0)
            continue;
        if (*svc) {
            /* The schemes each partner service was asked about, for a hello made up
             * when the recording missed the component's own. */
            const char *scheme = ((Qp__V1__FundingRequest *)m.payload)->scheme_id;
            zlist_t *schemes = zhash_lookup (k->partners, svc);
            if (!schemes) {
                schemes = zlist_new ();
                zlist_autofree (schemes);
                zlist_comparefn (schemes, (zlist_compare_fn *)strcmp);
                zhash_insert (k->partners, svc, schemes);
                zhash_freefn (k->partners, svc, s_list_free);
            }
            if (scheme && !zlist_exists (schemes, (void *)scheme))
                zlist_append (schemes, (void *)scheme);
        } else if (received) {
            Qp__V1__DossierReceived *d = (Qp__V1__DossierReceived *)m.payload;
            /* A dossier's event may be recorded more than once: keep the first. */
            if (d->dossier_id && d->dossier && d->dossier->territory &&
                !zhash_lookup (k->territory, d->dossier_id) &&
                zhash_insert (k->territory, d->dossier_id, strdup (d->dossier->territory)) == 0)
                zhash_freefn (k->territory, d->dossier_id, free);
            if (d->dossier_id && d->dossier && d->dossier->channel &&
                !zhash_lookup (k->channel, d->dossier_id) &&
                zhash_insert (k->channel, d->dossier_id, strdup (d->dossier->channel)) == 0)
                zhash_freefn (k->channel, d->dossier_id, free);
            const char *person =
                d->dossier && d->dossier->holder ? d->dossier->holder->person_key : NULL;
            if (d->dossier_id && person && !zhash_lookup (k->person, d->dossier_id) &&
                zhash_insert (k->person, d->dossier_id, strdup (person)) == 0)
                zhash_freefn (k->person, d->dossier_id, free);
        } else if (hello || status) {
            /* Funding routes to the components it has heard from: the replay partner
             * announces the recorded ones as they announced themselves. */
            const char *id = hello ? ((Qp__V1__PartnerHello *)m.payload)->component_id
                                   : ((Qp__V1__PartnerStatus *)m.payload)->component_id;
            zhash_t *h = hello ? k->hellos : k->statuses;
            if (id && (status || !zhash_lookup (h, id))) {
                /* The replay partner is alive for the whole replay: it announces a long
                 * status interval, so that a backlog in funding (statuses wait in its
                 * queue behind the replayed flood) never takes it out of routing. Hellos
                 * and statuses decide no dossier. */
                if (hello) {
                    ((Qp__V1__PartnerHello *)m.payload)->has_status_interval_ms = true;
                    ((Qp__V1__PartnerHello *)m.payload)->status_interval_ms = 10000;
                } else {
                    ((Qp__V1__PartnerStatus *)m.payload)->has_status_interval_ms = true;
                    ((Qp__V1__PartnerStatus *)m.payload)->status_interval_ms = 10000;
                }
                qp_meta_t meta = {.producer = "qp-replay",
                                  .discriminator = id,
                                  .event_time_ms = m.envelope->event_time_ms};
                zmsg_t *rebuilt = qp_message_build (m.payload, &meta, NULL);
                zframe_t *env = zmsg_last (rebuilt);
                zhash_delete (h, id);
                zhash_insert (h, id, zchunk_new (zframe_data (env), zframe_size (env)));
                zhash_freefn (h, id, s_chunk_free);
                zmsg_destroy (&rebuilt);
            }
        } else {
            Qp__V1__PartnerDecision *d = (Qp__V1__PartnerDecision *)m.payload;
            /* The first answer is the one funding acted on. */
            if (d->request_id && !zhash_lookup (k->decisions, d->request_id)) {
                zchunk_t *c = zchunk_new (rec.envelope, rec.envelope_size);
                zhash_insert (k->decisions, d->request_id, c);
                zhash_freefn (k->decisions, d->request_id, s_chunk_free);
            }
        }
        qp_message_clear (&m);
    }
    qp_journal_reader_close (&r);
    return 0;
}

/* ---- replay -------------------------------------------------------------------------- */

typedef struct {
    const char *type;
    uint64_t count;
} type_count_t;

typedef struct {
    options_t *o;
    knowledge_t k;
    qp_bus_client_t *work;
    zlist_t *partner_clients; /* qp_bus_client_t * */
    zhash_t *agency_clients;  /* agency name -> a client of partner_clients with its key */
    zlist_t *partner_names;
    zpoller_t *poller;
    type_count_t counts[N_INPUTS];
    uint64_t selected, sent, replies, rejected, errors, answered, unanswered_requests;
    uint64_t problems;
    uint64_t restored, unresolved; /* submissions given their person key back, or not */
    int64_t first_us, last_us;     /* recorded span of the selected inputs */
    int64_t last_traffic;
    int64_t last_beat;
    bool tty;
    int64_t next_progress;
} replay_t;

/* A client on the partner endpoint for agency, registered as a worker of service when
 * not NULL. With CURVE the bus lets a key register and speak for its own agency only,
 * so each client is made with its agency's key. NULL when that key cannot be read. */
static qp_bus_client_t *s_partner_client (replay_t *self, const char *agency, const char *service)
{
    if (self->o->curve_dir) {
        char secret[1024], bus[1024];
        snprintf (secret, sizeof secret, "%s/%s.cert_secret", self->o->curve_dir, agency);
        snprintf (bus, sizeof bus, "%s/bus.cert", self->o->curve_dir);
        if (qp_bus_curve_client (self->o->partner, secret, bus) < 0) {
            fprintf (stderr, "qp-replay: no CURVE key for %s (%s, %s): not served\n", agency,
                     secret, bus);
            return NULL;
        }
    }
    qp_bus_client_t *c = qp_bus_client_new (self->o->partner);
    if (!c)
        return NULL;
    if (service)
        qp_bus_client_ready (c, service);
    zlist_append (self->partner_clients, c);
    zpoller_add (self->poller, qp_bus_client_socket (c));
    if (!zhash_lookup (self->agency_clients, agency))
        zhash_insert (self->agency_clients, agency, c);
    return c;
}

/* The agency a recorded hello or status speaks for ("" when it does not decode). */
static void s_announced_agency (const char *type, zchunk_t *e, char *out, size_t size)
{
    zframe_t *t = zframe_new (type, strlen (type));
    zframe_t *env = zframe_new (zchunk_data (e), zchunk_size (e));
    qp_message_t m;
    qp_error_t err;
    *out = 0;
    if (qp_message_decode (t, env, &m, &err) == 0) {
        Qp__V1__Agency a = m.descriptor == &qp__v1__partner_hello__descriptor
                               ? ((Qp__V1__PartnerHello *)m.payload)->agency
                               : ((Qp__V1__PartnerStatus *)m.payload)->agency;
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, a);
        snprintf (out, size, "%s", v ? v->name : "");
        qp_message_clear (&m);
    }
    zframe_destroy (&t);
    zframe_destroy (&env);
}

/* The recorded announcements of every component, to funding, each through a client of
 * its agency (a replay partner that announces nothing has no client: live partners). */
static void s_announce (replay_t *self, zhash_t *which, const char *type)
{
    if (zlist_size (self->partner_clients) == 0)
        return;
    for (zchunk_t *e = zhash_first (which); e; e = zhash_next (which)) {
        char agency[64];
        s_announced_agency (type, e, agency, sizeof agency);
        qp_bus_client_t *c = *agency ? zhash_lookup (self->agency_clients, agency) : NULL;
        if (!c && *agency)
            c = s_partner_client (self, agency, NULL);
        if (!c)
            c = zlist_first (self->partner_clients);
        zmsg_t *out = zmsg_new ();
        zmsg_addstr (out, type);
        zmsg_addmem (out, zchunk_data (e), zchunk_size (e));
        qp_bus_client_send (c, "funding", &out);
    }
}

/* A recorder that joined after the components started has their statuses but not their
 * hellos: make up a hello for each partner service "partner.AGENCY.COMPONENT" asked in
 * the journal, with the schemes it was asked about. Hellos decide no dossier: only which
 * component funding routes to. */
static void s_made_up_hellos (replay_t *self)
{
    for (zlist_t *schemes = zhash_first (self->k.partners); schemes;
         schemes = zhash_next (self->k.partners)) {
        char svc[80];
        snprintf (svc, sizeof svc, "%s", (const char *)zhash_cursor (self->k.partners));
        char *agency = svc + 8, *component = strchr (agency, '.');
        if (!component)
            continue; /* "partner.AGENCY": a bus that routes by agency needs no hello */
        *component++ = 0;
        if (zhash_lookup (self->k.hellos, component))
            continue;
        const ProtobufCEnumValue *ag =
            protobuf_c_enum_descriptor_get_value_by_name (&qp__v1__agency__descriptor, agency);
        if (!ag)
            continue;
        Qp__V1__PartnerHello h = QP__V1__PARTNER_HELLO__INIT;
        h.component_id = component;
        h.has_agency = true, h.agency = (Qp__V1__Agency)ag->value;
        h.component_name = component;
        h.version = "replay";
        char *list[32];
        size_t n = 0;
        for (char *sc = zlist_first (schemes); sc && n < 32; sc = zlist_next (schemes))
            list[n++] = sc;
        h.n_schemes = n;
        h.schemes = list;
        h.has_status_interval_ms = true, h.status_interval_ms = 10000;
        qp_meta_t meta = {.producer = "qp-replay", .discriminator = svc};
        zmsg_t *m = qp_message_build (&h.base, &meta, NULL);
        zframe_t *env = zmsg_last (m);
        zhash_insert (self->k.hellos, component, zchunk_new (zframe_data (env), zframe_size (env)));
        zhash_freefn (self->k.hellos, component, s_chunk_free);
        zmsg_destroy (&m);
        fprintf (stderr,
                 "qp-replay: no recorded PartnerHello of %s: announcing it with %zu "
                 "scheme(s) seen in its requests\n",
                 component, n);
    }
}

static void s_handle_partner (replay_t *self, qp_bus_client_t *client)
{
    qp_bus_frame_t f = {0};
    if (qp_bus_client_recv (client, &f) < 0)
        return;
    self->last_traffic = s_now_us ();
    if (!strcmp (f.kind, QPB_DELIVER)) {
        qp_message_t m;
        qp_error_t e;
        if (qp_message_decode (f.type, f.envelope, &m, &e) == 0) {
            if (m.descriptor == &qp__v1__funding_request__descriptor) {
                Qp__V1__FundingRequest *rq = (Qp__V1__FundingRequest *)m.payload;
                zchunk_t *c =
                    rq->request_id ? zhash_lookup (self->k.decisions, rq->request_id) : NULL;
                if (c) {
                    zmsg_t *out = zmsg_new ();
                    zmsg_addstr (out, "qp.v1.PartnerDecision");
                    zmsg_addmem (out, zchunk_data (c), zchunk_size (c));
                    qp_bus_client_send (client, "funding", &out);
                    self->answered++;
                } else {
                    self->unanswered_requests++;
                    fprintf (stderr,
                             "qp-replay: no recorded decision for request %s (dossier %s): "
                             "left unanswered\n",
                             rq->request_id ? rq->request_id : "?",
                             rq->dossier_id ? rq->dossier_id : "?");
                }
            }
            qp_message_clear (&m);
        }
    } else if (!strcmp (f.kind, QPB_ERROR))
        fprintf (stderr, "qp-replay: bus error on the partner endpoint: %s %s\n", f.error_code,
                 f.text ? f.text : "");
    qp_bus_frame_clear (&f);
}

static void s_handle_work (replay_t *self)
{
    qp_bus_frame_t f = {0};
    if (qp_bus_client_recv (self->work, &f) < 0)
        return;
    self->last_traffic = s_now_us ();
    if (!strcmp (f.kind, QPB_DELIVER)) {
        self->replies++;
        qp_message_t m;
        qp_error_t e;
        if (qp_message_decode (f.type, f.envelope, &m, &e) == 0) {
            if (m.descriptor == &qp__v1__error__descriptor)
                self->errors++;
            else if (m.descriptor == &qp__v1__submit_dossier_reply__descriptor &&
                     !((Qp__V1__SubmitDossierReply *)m.payload)->accepted)
                self->rejected++;
            qp_message_clear (&m);
        }
    } else if (!strcmp (f.kind, QPB_ERROR)) {
        self->replies++;
        self->errors++;
        fprintf (stderr, "qp-replay: bus error: %s %s\n", f.error_code, f.text ? f.text : "");
    }
    qp_bus_frame_clear (&f);
}

/* Serves replies and partner requests for up to wait_us. */
static void s_pump (replay_t *self, int64_t wait_us)
{
    int64_t deadline = s_now_us () + wait_us;
    do {
        int64_t left = deadline - s_now_us ();
        int ms = left > 0 ? (int)((left + 999) / 1000) : 0;
        /* Heartbeats (READY) and the recorded statuses, every second, busy or not. */
        if (s_now_us () - self->last_beat > QPB_HEARTBEAT_MS * 1000) {
            self->last_beat = s_now_us ();
            qp_bus_client_heartbeat (self->work);
            for (qp_bus_client_t *c = zlist_first (self->partner_clients); c;
                 c = zlist_next (self->partner_clients))
                qp_bus_client_heartbeat (c);
            s_announce (self, self->k.statuses, "qp.v1.PartnerStatus");
        }
        if (ms > 200)
            ms = 200;
        void *which = zpoller_wait (self->poller, ms);
        if (!which)
            continue;
        if (which == qp_bus_client_socket (self->work))
            s_handle_work (self);
        else
            for (qp_bus_client_t *c = zlist_first (self->partner_clients); c;
                 c = zlist_next (self->partner_clients))
                if (which == qp_bus_client_socket (c))
                    s_handle_partner (self, c);
    } while (s_now_us () < deadline && !zsys_interrupted);
}

static void s_progress (replay_t *self, bool final)
{
    int64_t now = s_now_us ();
    if (!final && (self->o->quiet || now < self->next_progress))
        return;
    if (self->o->quiet && !final)
        return;
    self->next_progress = now + (self->tty ? 200000 : 2000000);
    static int64_t start;
    if (!start)
        start = now;
    double elapsed = (double)(now - start) / 1e6;
    double rate = elapsed > 0 ? (double)self->sent / elapsed : 0;
    uint64_t total = self->selected;
    double frac = total ? (double)self->sent / (double)total : 1;
    double eta = rate > 0 ? (double)(total - self->sent) / rate : 0;
    if (self->tty) {
        char bar[31];
        int filled = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[30] = 0;
        fprintf (stderr, "\r[%s] %3.0f%% %" PRIu64 "/%" PRIu64 " %.0f/s, %.0f s left   ", bar,
                 frac * 100, self->sent, total, rate, eta);
        if (final)
            fputc ('\n', stderr);
    } else
        fprintf (stderr, "qp-replay: %" PRIu64 "/%" PRIu64 " sent (%.0f%%), %.0f/s, %.0f s left\n",
                 self->sent, total, frac * 100, rate, eta);
}

/* Does the record pass --from/--until (by offset or time)? -1 past until, 0 no, 1 yes. */
static int s_in_range (const options_t *o, const qp_journal_record_t *r)
{
    if (o->until_is_time ? r->recorded_us > o->until_us : r->offset > o->until_offset)
        return -1;
    if (o->from_is_time ? r->recorded_us < o->from_us : r->offset < o->from_offset)
        return 0;
    return 1;
}

/* Is the input selected by --filter? Fills *service with its destination. */
static int s_select (replay_t *self, const qp_journal_record_t *r, size_t *input,
                     const char **why_bad)
{
    *why_bad = NULL;
    if (r->kind != QP_JOURNAL_MESSAGE || r->origin != QP_ORIGIN_WORK)
        return 0;
    size_t i;
    for (i = 0; i < N_INPUTS; i++)
        if (s_type_is (r, s_inputs[i].type))
            break;
    if (i == N_INPUTS)
        return 0;
    *input = i;
    const options_t *o = self->o;
    if (o->n_types && !s_in (o->types, o->n_types, s_inputs[i].type) &&
        !s_in (o->types, o->n_types, s_inputs[i].type + 6))
        return 0;
    if (!o->n_territories && !o->n_channels)
        return 1;
    qp_message_t m;
    static qp_error_t e;
    if (qp_journal_record_decode (r, &m, &e) < 0) {
        *why_bad = e.message;
        return -1;
    }
    char id[QP_ID_HEX + 1] = "";
    const char *territory = NULL, *channel = NULL;
    if (m.descriptor == &qp__v1__submit_dossier__descriptor) {
        Qp__V1__Dossier *d = ((Qp__V1__SubmitDossier *)m.payload)->dossier;
        if (d && d->channel && d->channel_key)
            qp_store_dossier_id (id, d->channel, d->channel_key);
        territory = d && d->territory ? d->territory : NULL;
        channel = d ? d->channel : NULL;
    } else if (m.descriptor == &qp__v1__follow_up__descriptor &&
               ((Qp__V1__FollowUp *)m.payload)->dossier_id)
        snprintf (id, sizeof id, "%s", ((Qp__V1__FollowUp *)m.payload)->dossier_id);
    if (!territory && id[0])
        territory = zhash_lookup (self->k.territory, id);
    if (!channel && id[0])
        channel = zhash_lookup (self->k.channel, id);
    bool ok = (!o->n_territories || s_in (o->territories, o->n_territories, territory)) &&
              (!o->n_channels || s_in (o->channels, o->n_channels, channel));
    qp_message_clear (&m);
    return ok;
}

/* The journal holds no identity: a submission sent with one was recorded with it emptied
 * (present, no field). Intake derived the person key from it and the journal's
 * DossierReceived of that dossier carries the key: the submission goes with that key as
 * holder.person_key and no identity, which intake accepts as it is and which gives the
 * same dossier, the same key and so the same decisions, without the pepper. Returns the
 * envelope to send (zchunk), or NULL to send the record as recorded; *unresolved when an
 * identity was given but no DossierReceived tells its key (the submission was refused,
 * or the recording missed it): intake then refuses it again (identity fields required). */
static zchunk_t *s_restore_person_key (replay_t *self, const qp_journal_record_t *rec,
                                       bool *unresolved)
{
    *unresolved = false;
    if (!s_type_is (rec, "qp.v1.SubmitDossier"))
        return NULL;
    qp_message_t m;
    qp_error_t e;
    if (qp_journal_record_decode (rec, &m, &e) < 0)
        return NULL;
    Qp__V1__SubmitDossier *s = (Qp__V1__SubmitDossier *)m.payload;
    /* An identity with its fields is a journal from before the scrub: intake derives. */
    if (!s->identity || qp_journal_payload_has_identity (m.payload)) {
        qp_message_clear (&m);
        return NULL;
    }
    char id[QP_ID_HEX + 1] = "";
    Qp__V1__Dossier *d = s->dossier;
    if (d && d->channel && d->channel_key)
        qp_store_dossier_id (id, d->channel, d->channel_key);
    const char *key = id[0] ? zhash_lookup (self->k.person, id) : NULL;
    zchunk_t *out = NULL;
    if (!key)
        *unresolved = true;
    else {
        protobuf_c_message_free_unpacked (&s->identity->base, NULL);
        s->identity = NULL;
        if (!d->holder) {
            d->holder = malloc (sizeof *d->holder);
            assert (d->holder);
            qp__v1__project_holder__init (d->holder);
        }
        free (d->holder->person_key);
        d->holder->person_key = strdup (key);
        size_t len = protobuf_c_message_get_packed_size (m.payload);
        uint8_t *payload = malloc (len ? len : 1);
        assert (payload);
        protobuf_c_message_pack (m.payload, payload);
        free (m.envelope->payload.data);
        m.envelope->has_payload = true;
        m.envelope->payload.data = payload;
        m.envelope->payload.len = len;
        size_t size = qp__v1__envelope__get_packed_size (m.envelope);
        uint8_t *packed = malloc (size ? size : 1);
        assert (packed);
        qp__v1__envelope__pack (m.envelope, packed);
        out = zchunk_new (packed, size);
        free (packed);
    }
    qp_message_clear (&m);
    return out;
}

/* Every record of the range: checks it, counts selected inputs, and (unless dry) sends
 * them paced. Returns 0, or 1 when stopped on a bad record. */
static int s_pass (replay_t *self, bool send)
{
    char err[600];
    qp_journal_reader_t *r = qp_journal_reader_open (self->o->journal, err, sizeof err);
    if (!r)
        return 1;
    if (!self->o->from_is_time && self->o->from_offset)
        qp_journal_reader_seek_offset (r, self->o->from_offset);
    else if (self->o->from_is_time)
        qp_journal_reader_seek_time (r, self->o->from_us);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc, status = 0;
    int64_t wall0 = 0;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0 && !zsys_interrupted) {
        if (rc < 0) {
            if (!send) {
                fprintf (stderr,
                         "qp-replay: offset %" PRIu64 ": %s at byte %" PRIu64 " of %s: %s\n",
                         p.offset, p.code, p.position, p.segment, p.detail);
                self->problems++;
            }
            if (!self->o->skip_bad) {
                status = 1;
                break;
            }
            continue;
        }
        int in = s_in_range (self->o, &rec);
        if (in < 0)
            break;
        if (!in)
            continue;
        if (rec.kind == QP_JOURNAL_MESSAGE) {
            char type[128];
            snprintf (type, sizeof type, "%.*s", (int)rec.type_len, rec.type);
            if (!qp_message_lookup_type (type)) {
                if (!send) {
                    fprintf (stderr,
                             "qp-replay: offset %" PRIu64 ": unknown_type %s at byte %" PRIu64
                             " of %s\n",
                             rec.offset, type, rec.position, rec.segment);
                    self->problems++;
                }
                if (!self->o->skip_bad) {
                    status = 1;
                    break;
                }
                continue;
            }
        }
        size_t input;
        const char *why;
        int sel = s_select (self, &rec, &input, &why);
        if (sel < 0) {
            if (!send) {
                fprintf (stderr, "qp-replay: offset %" PRIu64 ": %s\n", rec.offset, why);
                self->problems++;
            }
            if (!self->o->skip_bad) {
                status = 1;
                break;
            }
            continue;
        }
        if (!sel)
            continue;
        bool unresolved;
        zchunk_t *restored = s_restore_person_key (self, &rec, &unresolved);
        if (!send && unresolved) {
            self->unresolved++;
            if (self->unresolved <= 5)
                fprintf (stderr,
                         "qp-replay: offset %" PRIu64 ": a SubmitDossier recorded with its "
                         "identity emptied and no DossierReceived in the journal to give its "
                         "person key: sent without (intake will refuse it)\n",
                         rec.offset);
        }
        self->restored += !send && restored;
        if (!send) {
            zchunk_destroy (&restored);
            self->counts[input].type = s_inputs[input].type;
            self->counts[input].count++;
            if (!self->selected)
                self->first_us = rec.recorded_us;
            self->last_us = rec.recorded_us;
            self->selected++;
            continue;
        }
        /* Pace: recorded time since the first input, divided by the speed. */
        if (!wall0)
            wall0 = s_now_us ();
        if (self->o->speed > 0) {
            int64_t due =
                wall0 + (int64_t)((double)(rec.recorded_us - self->first_us) / self->o->speed);
            while (s_now_us () < due && !zsys_interrupted)
                s_pump (self, due - s_now_us ());
        }
        /* A bounded number of submissions in flight. */
        while (self->sent - self->replies >= (uint64_t)self->o->window && !zsys_interrupted)
            s_pump (self, 100000);
        char service[80];
        if (rec.destination_len)
            snprintf (service, sizeof service, "%.*s", (int)rec.destination_len, rec.destination);
        else
            snprintf (service, sizeof service, "%s", s_inputs[input].service);
        zmsg_t *m = zmsg_new ();
        zmsg_addmem (m, rec.type, rec.type_len);
        if (restored)
            zmsg_addmem (m, zchunk_data (restored), zchunk_size (restored));
        else
            zmsg_addmem (m, rec.envelope, rec.envelope_size);
        zchunk_destroy (&restored);
        qp_bus_client_send (self->work, service, &m);
        self->sent++;
        self->last_traffic = s_now_us ();
        s_pump (self, 0);
        s_progress (self, false);
    }
    qp_journal_reader_close (&r);
    return status;
}

static int s_replay (options_t *o)
{
    replay_t self = {.o = o, .tty = isatty (2) == 1};
    if (s_learn (o->journal, &self.k) < 0)
        return 2;
    /* First pass: check and count (also the dry run). */
    int status = s_pass (&self, false);
    printf ("%s %" PRIu64 " inputs", o->dry_run ? "would send" : "sending", self.selected);
    if (self.selected) {
        char a[32], b[32];
        time_t ta = (time_t)(self.first_us / 1000000), tb = (time_t)(self.last_us / 1000000);
        strftime (a, sizeof a, "%Y-%m-%dT%H:%M:%SZ", gmtime (&ta));
        strftime (b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", gmtime (&tb));
        printf (" recorded %s .. %s (%.3f s)", a, b, (double)(self.last_us - self.first_us) / 1e6);
    }
    printf ("\n");
    for (size_t i = 0; i < N_INPUTS; i++)
        if (self.counts[i].count)
            printf ("  %-28s %10" PRIu64 "\n", self.counts[i].type, self.counts[i].count);
    printf ("  recorded partner decisions   %10zu\n", zhash_size (self.k.decisions));
    if (self.restored || self.unresolved)
        printf ("  person keys from the journal %10" PRIu64 " (%" PRIu64
                " identities with no recorded key)\n",
                self.restored, self.unresolved);
    if (self.problems)
        printf ("  bad records                  %10" PRIu64 " (%s)\n", self.problems,
                o->skip_bad ? "skipped" : "stopped at the first");
    fflush (stdout);
    if (o->dry_run || (status && !o->skip_bad)) {
        s_knowledge_free (&self.k);
        return status;
    }

    self.work = qp_bus_client_new (o->work);
    if (!self.work) {
        fprintf (stderr, "qp-replay: bad work endpoint %s\n", o->work);
        s_knowledge_free (&self.k);
        return 2;
    }
    self.poller = zpoller_new (qp_bus_client_socket (self.work), NULL);
    self.partner_clients = zlist_new ();
    self.agency_clients = zhash_new ();
    if (!o->live_partners) {
        /* The replay partner: one worker per partner service the recording asked
         * ("partner.AGENCY" or "partner.AGENCY.COMPONENT"). */
        for (void *v = zhash_first (self.k.partners); v; v = zhash_next (self.k.partners)) {
            (void)v;
            const char *svc = zhash_cursor (self.k.partners);
            char agency[64];
            snprintf (agency, sizeof agency, "%s", svc + 8);
            char *dot = strchr (agency, '.');
            if (dot)
                *dot = 0;
            s_partner_client (&self, agency, svc);
        }
    }
    s_made_up_hellos (&self);
    s_announce (&self, self.k.hellos, "qp.v1.PartnerHello");
    s_announce (&self, self.k.statuses, "qp.v1.PartnerStatus");
    int64_t started = s_now_us ();
    status = s_pass (&self, true);
    /* The pace is measured on the sending; the stack then finishes its work. */
    double took = (double)(s_now_us () - started) / 1e6;
    /* Then serve until the stack is quiet: replies and partner requests keep coming. */
    while (!zsys_interrupted &&
           (self.replies < self.sent || s_now_us () - self.last_traffic < o->linger_ms * 1000))
        s_pump (&self, 100000);
    s_progress (&self, true);
    printf ("sent %" PRIu64 " inputs in %.3f s (recorded span %.3f s, speed %s); %" PRIu64
            " replies (%" PRIu64 " rejected, %" PRIu64 " errors); %" PRIu64
            " partner requests answered from the journal, %" PRIu64 " without a recorded "
            "decision\n",
            self.sent, took, (double)(self.last_us - self.first_us) / 1e6,
            o->speed > 0 ? "paced" : "max", self.replies, self.rejected, self.errors, self.answered,
            self.unanswered_requests);
    for (qp_bus_client_t *c = zlist_first (self.partner_clients); c;
         c = zlist_next (self.partner_clients)) {
        qp_bus_client_bye (c);
        qp_bus_client_destroy (&c);
    }
    zlist_destroy (&self.partner_clients);
    zhash_destroy (&self.agency_clients);
    zpoller_destroy (&self.poller);
    qp_bus_client_destroy (&self.work);
    s_knowledge_free (&self.k);
    if (status == 0 && self.replies < self.sent)
        status = 1;
    return status;
}

/* ---- diff ---------------------------------------------------------------------------- */

typedef struct {
    char *key;
    char *dossier;
    char *type;
    uint64_t offset;
    json_t *value;
} decision_t;

static void s_decision_free (void *p)
{
    decision_t *d = p;
    free (d->key);
    free (d->dossier);
    free (d->type);
    json_decref (d->value);
    free (d);
}

/* Decisions of a journal, keyed by type/dossier[/scheme], in journal order. */
static int s_read_decisions (const char *dir, zhash_t **by_key, zlistx_t **order)
{
    char err[600];
    qp_journal_reader_t *r = qp_journal_reader_open (dir, err, sizeof err);
    if (!r) {
        fprintf (stderr, "qp-replay: %s\n", err);
        return -1;
    }
    *by_key = zhash_new ();
    *order = zlistx_new ();
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc, problems = 0;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            fprintf (stderr, "qp-replay: %s: offset %" PRIu64 ": %s: %s\n", dir, p.offset, p.code,
                     p.detail);
            problems++;
            continue;
        }
        if (rec.kind != QP_JOURNAL_MESSAGE || rec.origin != QP_ORIGIN_EVENT)
            continue;
        size_t i;
        for (i = 0; i < 3; i++)
            if (s_type_is (&rec, s_decisions[i]))
                break;
        if (i == 3)
            continue;
        qp_message_t m;
        qp_error_t e;
        if (qp_journal_record_decode (&rec, &m, &e) < 0) {
            fprintf (stderr, "qp-replay: %s: offset %" PRIu64 ": %s\n", dir, rec.offset, e.message);
            problems++;
            continue;
        }
        const char *dossier = m.envelope->correlation_id ? m.envelope->correlation_id : "";
        const char *scheme = "";
        if (m.descriptor == &qp__v1__funding_settled__descriptor &&
            ((Qp__V1__FundingSettled *)m.payload)->scheme_id)
            scheme = ((Qp__V1__FundingSettled *)m.payload)->scheme_id;
        char key[256];
        snprintf (key, sizeof key, "%s/%s/%s", s_decisions[i] + 6, dossier, scheme);
        if (!zhash_lookup (*by_key, key)) {
            decision_t *d = calloc (1, sizeof *d);
            d->key = strdup (key);
            d->dossier = strdup (dossier);
            d->type = strdup (s_decisions[i] + 6);
            d->offset = rec.offset;
            /* The payload, and the envelope's ids and business time: a replay must
             * reproduce them too. The producer's name may differ. */
            json_t *v = json_object ();
            json_object_set_new (v, "payload", qp_json_from_message (m.payload));
            json_object_set_new (
                v, "envelope",
                json_pack ("{s:s,s:s,s:I}", "message_id",
                           m.envelope->message_id ? m.envelope->message_id : "", "causation_id",
                           m.envelope->causation_id ? m.envelope->causation_id : "",
                           "event_time_ms", (json_int_t)m.envelope->event_time_ms));
            d->value = v;
            zhash_insert (*by_key, key, d);
            zhash_freefn (*by_key, key, s_decision_free);
            zlistx_add_end (*order, d);
        }
        qp_message_clear (&m);
    }
    qp_journal_reader_close (&r);
    return problems;
}

/* First difference between a and b as "path: A vs B" into out; false when equal. */
static bool s_json_diff (const json_t *a, const json_t *b, const char *path, char *out, size_t size)
{
    if (json_equal ((json_t *)a, (json_t *)b))
        return false;
    if (json_is_object (a) && json_is_object (b)) {
        const char *k;
        json_t *va;
        json_object_foreach ((json_t *)a, k, va)
        {
            char sub[512];
            snprintf (sub, sizeof sub, "%s%s%s", path, *path ? "." : "", k);
            json_t *vb = json_object_get (b, k);
            if (!vb) {
                char *ta = json_dumps (va, JSON_COMPACT | JSON_ENCODE_ANY);
                snprintf (out, size, "%s: %.200s vs (absent)", sub, ta);
                free (ta);
                return true;
            }
            if (s_json_diff (va, vb, sub, out, size))
                return true;
        }
        json_object_foreach ((json_t *)b, k, va)
        {
            if (!json_object_get (a, k)) {
                char *tb = json_dumps (va, JSON_COMPACT | JSON_ENCODE_ANY);
                snprintf (out, size, "%s%s%s: (absent) vs %.200s", path, *path ? "." : "", k, tb);
                free (tb);
                return true;
            }
        }
    }
    if (json_is_array (a) && json_is_array (b) && json_array_size (a) == json_array_size (b)) {
        for (size_t i = 0; i < json_array_size (a); i++) {
            char sub[512];
            snprintf (sub, sizeof sub, "%s[%zu]", path, i);
            if (s_json_diff (json_array_get (a, i), json_array_get (b, i), sub, out, size))
                return true;
        }
    }
    char *ta = json_dumps (a, JSON_COMPACT | JSON_ENCODE_ANY);
    char *tb = json_dumps (b, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf (out, size, "%s: %.200s vs %.200s", *path ? path : "(whole)", ta, tb);
    free (ta);
    free (tb);
    return true;
}

static int s_diff (const char *a_dir, const char *b_dir, int max_shown)
{
    zhash_t *a, *b;
    zlistx_t *ao, *bo;
    int pa = s_read_decisions (a_dir, &a, &ao);
    if (pa < 0)
        return 2;
    int pb = s_read_decisions (b_dir, &b, &bo);
    if (pb < 0) {
        zlistx_destroy (&ao);
        zhash_destroy (&a);
        return 2;
    }
    uint64_t same = 0, differ = 0, only_a = 0, only_b = 0;
    int shown = 0;
    for (decision_t *d = zlistx_first (ao); d; d = zlistx_next (ao)) {
        decision_t *e = zhash_lookup (b, d->key);
        char what[1200];
        if (!e) {
            only_a++;
            if (shown++ < max_shown)
                printf ("dossier %s: %s (A offset %" PRIu64 ") is missing from B\n", d->dossier,
                        d->type, d->offset);
        } else if (s_json_diff (d->value, e->value, "", what, sizeof what)) {
            differ++;
            if (shown++ < max_shown)
                printf ("dossier %s: %s (A offset %" PRIu64 ", B offset %" PRIu64 ") differs: %s\n",
                        d->dossier, d->type, d->offset, e->offset, what);
        } else
            same++;
    }
    for (decision_t *e = zlistx_first (bo); e; e = zlistx_next (bo))
        if (!zhash_lookup (a, e->key)) {
            only_b++;
            if (shown++ < max_shown)
                printf ("dossier %s: %s (B offset %" PRIu64 ") is not in A\n", e->dossier, e->type,
                        e->offset);
        }
    if (shown > max_shown)
        printf ("... %d more divergences\n", shown - max_shown);
    bool identical = !differ && !only_a && !only_b && !pa && !pb;
    printf ("%s: %zu decisions in A, %zu in B: %" PRIu64 " identical, %" PRIu64 " differ, %" PRIu64
            " only in A, %" PRIu64 " only in B%s\n",
            identical ? "identical" : "DIFFERENT", zlistx_size (ao), zlistx_size (bo), same, differ,
            only_a, only_b, pa || pb ? "; a journal has bad records" : "");
    zlistx_destroy (&ao);
    zlistx_destroy (&bo);
    zhash_destroy (&a);
    zhash_destroy (&b);
    return identical ? 0 : 1;
}

int main (int argc, char **argv)
{
    if (argc >= 2 && !strcmp (argv[1], "diff")) {
        if (argc != 4) {
            s_usage (stderr);
            return 2;
        }
        return s_diff (argv[2], argv[3], 20);
    }
    options_t o = {.speed = 0, .until_offset = UINT64_MAX, .linger_ms = 3000, .window = 2000};
    o.work = getenv ("QP_BUS_WORK") ? getenv ("QP_BUS_WORK") : "tcp://127.0.0.1:7101";
    o.partner = getenv ("QP_BUS_PARTNER") ? getenv ("QP_BUS_PARTNER") : "tcp://127.0.0.1:7102";
    o.curve_dir =
        getenv ("QP_CURVE_DIR") && *getenv ("QP_CURVE_DIR") ? getenv ("QP_CURVE_DIR") : NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp (a, "--help") || !strcmp (a, "-h")) {
            s_usage (stdout);
            return 0;
        } else if (!strcmp (a, "--speed") && v) {
            if (!strcmp (v, "max"))
                o.speed = 0;
            else {
                char *end;
                o.speed = strtod (v, &end);
                if (*end || !(o.speed > 0) || !isfinite (o.speed)) {
                    fprintf (stderr,
                             "qp-replay: --speed: '%s' is not 1, 10, max or a positive "
                             "number\n",
                             v);
                    return 2;
                }
            }
        } else if (!strcmp (a, "--from") && v) {
            if (s_parse_point (v, &o.from_is_time, &o.from_offset, &o.from_us) < 0) {
                fprintf (stderr, "qp-replay: --from: '%s' is not an offset or a time\n", v);
                return 2;
            }
        } else if (!strcmp (a, "--until") && v) {
            if (s_parse_point (v, &o.until_is_time, &o.until_offset, &o.until_us) < 0) {
                fprintf (stderr, "qp-replay: --until: '%s' is not an offset or a time\n", v);
                return 2;
            }
        } else if (!strcmp (a, "--filter") && v) {
            if (s_parse_filter (&o, argv[i + 1]) < 0) {
                fprintf (stderr, "qp-replay: --filter: expected type=T, territory=T or "
                                 "channel=C\n");
                return 2;
            }
        } else if (!strcmp (a, "--on-bad") && v) {
            if (strcmp (v, "stop") && strcmp (v, "skip")) {
                fprintf (stderr, "qp-replay: --on-bad: stop or skip\n");
                return 2;
            }
            o.skip_bad = !strcmp (v, "skip");
        } else if (!strcmp (a, "--linger-ms") && v)
            o.linger_ms = atol (v);
        else if (!strcmp (a, "--window") && v)
            o.window = atol (v) > 0 ? atol (v) : 1;
        else if (!strcmp (a, "--bus-work") && v)
            o.work = v;
        else if (!strcmp (a, "--bus-partner") && v)
            o.partner = v;
        else if (!strcmp (a, "--curve-dir") && v)
            o.curve_dir = *v ? v : NULL;
        else {
            takes = false;
            if (!strcmp (a, "--dry-run"))
                o.dry_run = true;
            else if (!strcmp (a, "--live-partners"))
                o.live_partners = true;
            else if (!strcmp (a, "--quiet"))
                o.quiet = true;
            else if (a[0] == '-') {
                fprintf (stderr, "qp-replay: unknown option %s (or its value is missing)\n", a);
                return 2;
            } else if (!o.journal)
                o.journal = a;
            else {
                fprintf (stderr, "qp-replay: one journal only\n");
                return 2;
            }
        }
        if (takes)
            i++;
    }
    if (!o.journal) {
        s_usage (stderr);
        return 2;
    }
    zsys_init ();
    zsys_set_linger (100);
    return s_replay (&o);
}
