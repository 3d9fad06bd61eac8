/* qp-bench-evaluation: the evaluation service's in-process API on a real redis-server
 * (AOF everysec, started here): events applied per second (six events per dossier, as
 * the flow publishes them: received, eligibility, funding request, settled, closed,
 * follow-up), then the time of a territory report and of the territory's indicators
 * with breakdowns once every dossier is counted. Prints the figures with issue 5's
 * targets beside them, writes them as JSON with --json FILE; --smoke runs a few seconds.
 * Asserts nothing. Usage: qp-bench-evaluation [--smoke] [--dossiers N] [--ordered] [--no-acks]
 * [--batch N] [--spread N] [--digest] [--no-sweep] [--call-times] [--outbox] [--json FILE] (--no-sweep:
 * without the outbox sweeper's part, e.g. to profile the apply alone; --spread N: the events
 * of N dossiers at a time, step by step (N received, then their N decisions...), as the
 * whole stack brings them: a small batch then holds N different dossiers, not 5 or 6
 * events of each; --digest: prints a digest of every qp:eval:* key, sorted, to compare
 * what two builds store; --ordered: dossiers in business-time order
 * instead of each its own month; --no-acks: without the outbox acks the service sends with
 * each batch, to see their cost; --batch: events per batch, 2,048 by default (the service's); --call-times:
 * Redis's own time of each read and apply call, from its SLOWLOG (every command, the
 * scripts' own too), drained every 1,000 dossiers: how long one apply holds Redis, during
 * which other clients wait; the drains wait for the apply in flight, so the rates of such
 * a run are not comparable; --outbox: the events' members are put in the outbox first, 1,024
 * dossiers at a time, as the producers do, so that the acks' ZREM removes (and propagates to
 * the AOF) what it does in the stack; the Redis and bench CPU of that filling is not counted).
 * Then the outbox sweeper with a lagging evaluation: a backlog of due members, four
 * sweepers ticking each second (simulated clock, real Redis and claim script): how many
 * are published again per second, with the redelivery delay of 30 s and with the former 5 s. */
#include "bench_support.h"
#include "evaluation.h"
#include "qp_date.h"
#include "qp_store.h"
#include "qp_test.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#define TARGET_EVENTS_PER_S 50000.0
#define TARGET_REPORT_MS 50.0
#define TERRITORIES 200 /* about the number of contract territories */
#define QUERIES 20

static bool s_acks = true;

/* --outbox: the members the acks remove are first in the outbox, as the producers put
 * them there (else each ZREM finds nothing, and removes and propagates nothing).
 * s_fill: s_apply only collects the members of the next dossiers, for s_outbox_fill. */
static zlistx_t *s_fill;

static void s_apply (evaluation_t *eval, const ProtobufCMessage *m, const char *id, int64_t t,
                     const char *what)
{
    if (s_fill) {
        qp_meta_t meta = {.correlation_id = id, .event_time_ms = t, .discriminator = what,
                          .producer = "bench"};
        zmsg_t *frames = qp_message_build (m, &meta, NULL);
        zframe_t *type = zmsg_first (frames), *env = zmsg_next (frames);
        /* type NUL envelope, as qp_service_publish_durable writes it */
        zchunk_t *member = zchunk_new (NULL, zframe_size (type) + 1 + zframe_size (env));
        zchunk_append (member, zframe_data (type), zframe_size (type));
        zchunk_append (member, "", 1);
        zchunk_append (member, zframe_data (env), zframe_size (env));
        zlistx_add_end (s_fill, member);
        zmsg_destroy (&frames);
        return;
    }
    if (s_acks) {
        /* as the service does: count the event, then ack its frames (its outbox member) */
        qp_meta_t meta = {.correlation_id = id, .event_time_ms = t, .discriminator = what,
                          .producer = "bench"};
        zmsg_t *frames = qp_message_build (m, &meta, NULL);
        qp_message_t msg;
        qp_error_t err;
        zframe_t *type = zmsg_first (frames), *env = zmsg_next (frames);
        if (qp_message_decode (type, env, &msg, &err) == 0) {
            evaluation_apply (eval, &msg);
            evaluation_ack (eval, zframe_data (type), zframe_size (type), zframe_data (env),
                            zframe_size (env));
            qp_message_clear (&msg);
        }
        zmsg_destroy (&frames);
        return;
    }
    Qp__V1__Envelope env = QP__V1__ENVELOPE__INIT;
    char mid[QP_ID_HEX + 1];
    qp_message_make_id (mid, m->descriptor->name, id, what);
    env.message_id = mid;
    env.has_event_time_ms = true, env.event_time_ms = t;
    qp_message_t msg = {
        .envelope = &env, .payload = (ProtobufCMessage *)m, .descriptor = m->descriptor};
    evaluation_apply (eval, &msg);
}

/* Business days: each dossier its own month and day (i % 12, i % 28: the worst case for
 * the batch sums), or with --ordered in business-time order over 2025, as a live stream
 * or a journal replay brings them. */
static bool s_ordered;
static long s_dossiers;

/* Dossier i's six events (step -1) or one of them (step 0 to 5): territory
 * i % TERRITORIES, business day spread over 2025, a phq of 10,000 € committed, a year-1
 * follow-up. */
static void s_dossier_events (evaluation_t *eval, long i, int step)
{
    char key[32], id[QP_ID_HEX + 1], day[11], territory[16], qpv[16];
    snprintf (key, sizeof key, "bench-%ld", i);
    qp_hash_hex (id, key, strlen (key));
    int32_t d = s_ordered ? qp_date_from_civil (2025, 1, 1) + (int32_t) (i * 365 / s_dossiers)
                          : qp_date_from_civil (2025, 1 + i % 12, 1 + i % 28);
    qp_date_format (d, day);
    int64_t t = qp_date_to_ms (d);
    snprintf (territory, sizeof territory, "t%03ld", i % TERRITORIES);
    snprintf (qpv, sizeof qpv, "QN%05ldM", i % 1500);

    Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder holder = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Project project = QP__V1__PROJECT__INIT;
    Qp__V1__Business business = QP__V1__BUSINESS__INIT;
    dossier.submitted_on = day, dossier.territory = territory;
    holder.residence_qpv = qpv;
    holder.has_network = true, holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    holder.has_gender = true;
    holder.gender = i % 2 ? QP__V1__GENDER__WOMAN : QP__V1__GENDER__MAN;
    holder.has_birth_year = true, holder.birth_year = 1970 + i % 35;
    project.has_axis = true, project.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    project.has_jobs_planned = true, project.jobs_planned = 1 + i % 3;
    dossier.holder = &holder, dossier.project = &project, dossier.business = &business;

    Qp__V1__DossierReceived rcv = QP__V1__DOSSIER_RECEIVED__INIT;
    rcv.dossier_id = id, rcv.dossier = &dossier;
    if (step < 0 || step == 0)
        s_apply (eval, &rcv.base, id, t, "bench");

    Qp__V1__SchemeDecision sd = QP__V1__SCHEME_DECISION__INIT;
    Qp__V1__SchemeDecision *decisions[] = {&sd};
    sd.scheme_id = "phq", sd.has_agency = true, sd.agency = QP__V1__AGENCY__BPIFRANCE;
    sd.has_outcome = true, sd.outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    Qp__V1__EligibilityDecided dec = QP__V1__ELIGIBILITY_DECIDED__INIT;
    dec.dossier_id = id, dec.territory = territory;
    dec.n_decisions = 1, dec.decisions = decisions;
    if (step < 0 || step == 1)
        s_apply (eval, &dec.base, id, t, "bench");

    Qp__V1__DossierSummary summary = QP__V1__DOSSIER_SUMMARY__INIT;
    summary.territory = territory;
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    rq.dossier_id = id, rq.scheme_id = "phq", rq.summary = &summary;
    rq.has_agency = true, rq.agency = QP__V1__AGENCY__BPIFRANCE;
    rq.has_amount_asked_cents = true, rq.amount_asked_cents = 1000000;
    if (step < 0 || step == 2)
        s_apply (eval, &rq.base, id, t, "bench");

    Qp__V1__FundingSettled st = QP__V1__FUNDING_SETTLED__INIT;
    st.dossier_id = id, st.scheme_id = "phq", st.territory = territory;
    st.has_agency = true, st.agency = QP__V1__AGENCY__BPIFRANCE;
    st.has_outcome = true, st.outcome = QP__V1__SETTLEMENT_OUTCOME__COMMITTED;
    st.has_amount_cents = true, st.amount_cents = 1000000;
    if (step < 0 || step == 3)
        s_apply (eval, &st.base, id, t, "bench");

    Qp__V1__DossierClosed cl = QP__V1__DOSSIER_CLOSED__INIT;
    cl.dossier_id = id, cl.territory = territory;
    cl.has_final_state = true, cl.final_state = QP__V1__DOSSIER_STATE__FUNDED;
    cl.has_committed_cents = true, cl.committed_cents = 1000000;
    if (step < 0 || step == 4)
        s_apply (eval, &cl.base, id, t, "bench");

    Qp__V1__FollowUp fu = QP__V1__FOLLOW_UP__INIT;
    fu.dossier_id = id, fu.has_year = true, fu.year = 1;
    fu.has_active = true, fu.active = i % 7 != 0;
    fu.has_jobs_created = true, fu.jobs_created = fu.active ? 2 : 0;
    fu.reported_on = "2026-06-01";
    if (step < 0 || step == 5)
        s_apply (eval, &fu.base, id, t, "bench");
}

/* ---- Redis's time per script call (SLOWLOG with every command logged) -------------------- */

typedef struct {
    long n;
    double sum_us, max_us;
} call_time_t;

static call_time_t s_read_t, s_apply_t;

static void s_slowlog_drain (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "SLOWLOG GET 100000");
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 || e->element[3]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *args = e->element[3];
        /* EVALSHA sha 4 k1 k2 k3 k4 read|apply ... */
        if (args->elements < 8 || strcasecmp (args->element[0]->str, "EVALSHA"))
            continue;
        call_time_t *t = !strcmp (args->element[7]->str, "read")    ? &s_read_t
                         : !strcmp (args->element[7]->str, "apply") ? &s_apply_t
                                                                    : NULL;
        if (!t)
            continue;
        double us = (double) e->element[2]->integer;
        t->n++, t->sum_us += us;
        if (us > t->max_us)
            t->max_us = us;
    }
    if (r)
        freeReplyObject (r);
    r = qp_redis_command (redis, "SLOWLOG RESET");
    if (r)
        freeReplyObject (r);
}

/* ---- The outbox sweeper with a lagging evaluation --------------------------------------- */

#define SWEEPERS 4    /* as many as a stack had before the evaluation stopped sweeping */
#define SWEEP_BATCH 256 /* OUTBOX_BATCH of common/qp_service.c */

/* The claim of qp_store_outbox_claim with another redelivery delay. */
static size_t s_claim (qp_redis_t *redis, int64_t now, int64_t redeliver_ms)
{
    if (redeliver_ms == QP_STORE_OUTBOX_REDELIVER_MS) {
        qp_store_blob_t out[SWEEP_BATCH];
        size_t n = qp_store_outbox_claim (redis, now, now, out, SWEEP_BATCH);
        for (size_t i = 0; i < n; i++)
            free (out[i].data);
        return n;
    }
    char now_s[24], deadline[24], lim[16];
    snprintf (now_s, sizeof now_s, "%lld", (long long) now);
    snprintf (deadline, sizeof deadline, "%lld", (long long) (now + redeliver_ms));
    snprintf (lim, sizeof lim, "%d", SWEEP_BATCH);
    const char *keys[] = {QP_STORE_OUTBOX_KEY};
    const char *args[] = {now_s, deadline, lim};
    redisReply *r = qp_redis_script (redis, QP_LUA_PENDING_CLAIM, 1, keys, 3, args, NULL);
    size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    if (r)
        freeReplyObject (r);
    return n;
}

/* backlog members due now (~200 bytes each, as a DossierClosed), SWEEPERS sweepers ticking
 * every second for seconds: members published again per second. */
static double s_sweep_rate (qp_redis_t *redis, long backlog, int seconds, int64_t redeliver_ms)
{
    redisReply *r = qp_redis_command (redis, "DEL %s", QP_STORE_OUTBOX_KEY);
    if (r)
        freeReplyObject (r);
    int64_t base = qp_now_ms ();
    char member[200];
    memset (member, 'x', sizeof member);
    memcpy (member, "qp.v1.DossierClosed", 20); /* with its NUL */
    const char *argv[2 + 2 * 1000];
    size_t lens[2 + 2 * 1000];
    char scores[1000][24], ids[1000][16];
    for (long done = 0; done < backlog;) {
        int k = 2;
        argv[0] = "ZADD", lens[0] = 4;
        argv[1] = QP_STORE_OUTBOX_KEY, lens[1] = strlen (QP_STORE_OUTBOX_KEY);
        for (int j = 0; j < 1000 && done < backlog; j++, done++) {
            /* due since the lag began: the oldest first */
            snprintf (scores[j], sizeof scores[j], "%lld", (long long) (base - 60000 + done % 60000));
            snprintf (ids[j], sizeof ids[j], "%015ld", done);
            char *m = malloc (sizeof member);
            memcpy (m, member, sizeof member);
            memcpy (m + 20, ids[j], 15);
            argv[k] = scores[j], lens[k++] = strlen (scores[j]);
            argv[k] = m, lens[k++] = sizeof member;
        }
        r = qp_redis_argv (redis, k, argv, lens);
        if (r)
            freeReplyObject (r);
        for (int j = 3; j < k; j += 2)
            free ((void *) argv[j]);
    }
    long claimed = 0;
    for (int sec = 0; sec < seconds; sec++)
        for (int w = 0; w < SWEEPERS; w++)
            claimed += (long) s_claim (redis, base + 1000LL * sec, redeliver_ms);
    r = qp_redis_command (redis, "DEL %s", QP_STORE_OUTBOX_KEY);
    if (r)
        freeReplyObject (r);
    return (double) claimed / seconds;
}

/* Median and max of QUERIES runs of one query, in ms. */
typedef struct {
    double p50, max;
} timing_t;

static timing_t s_time_reports (evaluation_t *eval, bool indicators)
{
    double ms[QUERIES];
    for (int q = 0; q < QUERIES; q++) {
        char territory[16];
        snprintf (territory, sizeof territory, "t%03d", (q * 37) % TERRITORIES);
        double t0 = bench_now ();
        if (indicators) {
            Qp__V1__IndicatorQuery iq = QP__V1__INDICATOR_QUERY__INIT;
            iq.territory = territory, iq.has_breakdowns = true, iq.breakdowns = true;
            Qp__V1__IndicatorReport *r = NULL;
            if (evaluation_indicators (eval, &iq, &r) == 0)
                qp__v1__indicator_report__free_unpacked (r, NULL);
        } else {
            Qp__V1__ReportQuery rq = QP__V1__REPORT_QUERY__INIT;
            rq.territory = territory;
            Qp__V1__ReportReply rr = QP__V1__REPORT_REPLY__INIT;
            if (evaluation_report (eval, &rq, &rr) == 0)
                evaluation_report_clear (&rr);
        }
        ms[q] = (bench_now () - t0) * 1000.0;
    }
    qsort (ms, QUERIES, sizeof ms[0], bench_cmp_double);
    return (timing_t){ms[QUERIES / 2], ms[QUERIES - 1]};
}

/* CPU seconds (user + system) of this process. */
static double s_cpu_self (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of redis-server (INFO cpu), -1 when unknown. */
static double s_cpu_redis (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "INFO cpu");
    double cpu = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *u = strstr (r->str, "used_cpu_user:"), *sy = strstr (r->str, "used_cpu_sys:");
        if (u && sy)
            cpu = atof (u + strlen ("used_cpu_user:")) + atof (sy + strlen ("used_cpu_sys:"));
    }
    if (r)
        freeReplyObject (r);
    return cpu;
}

/* Sum of usec= over INFO commandstats, in seconds. */
static double s_redis_busy_s (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "INFO commandstats");
    double usec = 0;
    if (r && r->type == REDIS_REPLY_STRING)
        for (const char *p = strstr (r->str, ",usec="); p; p = strstr (p + 1, ",usec="))
            usec += atof (p + 6);
    if (r)
        freeReplyObject (r);
    return usec / 1e6;
}

static long long s_outbox_size (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "ZCARD %s", QP_STORE_OUTBOX_KEY);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject (r);
    return n;
}

/* --outbox: puts the outbox members of dossiers [from, to) (all six events) into the
 * outbox, 1,000 a ZADD; returns the Redis CPU seconds that took (not the evaluation's:
 * subtracted from its figure). Any apply in flight is answered before (qp_redis). */
static double s_outbox_fill (qp_redis_t *redis, long from, long to, double *self_cpu_s)
{
    double cpu0 = s_cpu_redis (redis), self0 = s_cpu_self ();
    s_fill = zlistx_new ();
    zlistx_set_destructor (s_fill, (zlistx_destructor_fn *) zchunk_destroy);
    for (long i = from; i < to; i++)
        s_dossier_events (NULL, i, -1);
    const char *argv[2 + 2 * 1000];
    size_t lens[2 + 2 * 1000];
    argv[0] = "ZADD", lens[0] = 4;
    argv[1] = QP_STORE_OUTBOX_KEY, lens[1] = strlen (QP_STORE_OUTBOX_KEY);
    int k = 2;
    size_t left = zlistx_size (s_fill);
    for (zchunk_t *m = zlistx_first (s_fill); m; m = zlistx_next (s_fill)) {
        argv[k] = "9999999999999", lens[k++] = 13; /* not due: no sweeper runs here */
        argv[k] = (const char *) zchunk_data (m), lens[k++] = zchunk_size (m);
        if (k == 2 + 2 * 1000 || --left == 0) {
            redisReply *r = qp_redis_argv (redis, k, argv, lens);
            if (r)
                freeReplyObject (r);
            k = 2;
        }
    }
    zlistx_destroy (&s_fill);
    *self_cpu_s += s_cpu_self () - self0;
    return s_cpu_redis (redis) - cpu0;
}

/* Bytes of the evaluation's dossier profiles: MEMORY USAGE (SAMPLES 0: every field) of
 * every key matching pattern, summed; *keys gets their count. Not counted: the keyspace's
 * dict entry of each key (~24-32 B more per key). */
static long long s_profile_bytes (qp_redis_t *redis, const char *pattern, long *keys)
{
    long long bytes = 0;
    char cursor[32] = "0";
    *keys = 0;
    do {
        redisReply *r = qp_redis_command (redis, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject (r);
            return -1;
        }
        snprintf (cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *m = qp_redis_command (redis, "MEMORY USAGE %s SAMPLES 0",
                                              r->element[1]->element[i]->str);
            if (m && m->type == REDIS_REPLY_INTEGER)
                bytes += m->integer, (*keys)++;
            if (m)
                freeReplyObject (m);
        }
        freeReplyObject (r);
    } while (strcmp (cursor, "0") != 0);
    return bytes;
}

/* ---- What is stored: a digest of every qp:eval:* key ----------------------------------- */

static uint64_t s_fnv (uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h ^ len; /* the length too: "ab" "c" differs from "a" "bc" */
}

static int s_cmp_reply (const void *a, const void *b)
{
    const redisReply *x = *(redisReply *const *) a, *y = *(redisReply *const *) b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp (x->str, y->str, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* FNV-1a of the evaluation's keys in order, each with its type and value (hash fields
 * and set members sorted: the same content gives the same digest whatever the order of
 * insertion). Two builds fed the same events must give the same digest. */
static uint64_t s_digest (qp_redis_t *redis)
{
    redisReply *keys = qp_redis_command (redis, "KEYS qp:eval:*");
    if (!keys || keys->type != REDIS_REPLY_ARRAY) {
        if (keys)
            freeReplyObject (keys);
        return 0;
    }
    qsort (keys->element, keys->elements, sizeof keys->element[0], s_cmp_reply);
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        h = s_fnv (h, k->str, k->len);
        redisReply *t = qp_redis_command (redis, "TYPE %b", k->str, k->len);
        const char *type = t && t->type == REDIS_REPLY_STATUS ? t->str : "?";
        h = s_fnv (h, type, strlen (type));
        redisReply *v = !strcmp (type, "string") ? qp_redis_command (redis, "GET %b", k->str, k->len)
                        : !strcmp (type, "hash") ? qp_redis_command (redis, "HGETALL %b", k->str, k->len)
                        : !strcmp (type, "set")  ? qp_redis_command (redis, "SMEMBERS %b", k->str, k->len)
                                                 : NULL;
        if (v && v->type == REDIS_REPLY_STRING)
            h = s_fnv (h, v->str, v->len);
        else if (v && v->type == REDIS_REPLY_ARRAY && !strcmp (type, "hash")) {
            /* field NUL value, as one string per pair, sorted */
            size_t n = v->elements / 2;
            char **pairs = calloc (n ? n : 1, sizeof *pairs);
            size_t *lens = calloc (n ? n : 1, sizeof *lens);
            size_t *flens = calloc (n ? n : 1, sizeof *flens);
            for (size_t p = 0; p < n; p++) {
                const redisReply *f = v->element[2 * p], *x = v->element[2 * p + 1];
                flens[p] = f->len; /* binary: a packed id may hold a NUL */
                lens[p] = f->len + 1 + x->len;
                pairs[p] = malloc (lens[p] + 1);
                memcpy (pairs[p], f->str, f->len);
                pairs[p][f->len] = 0;
                if (x->len)
                    memcpy (pairs[p] + f->len + 1, x->str, x->len);
            }
            /* sort by field (unique in a hash; a bucket holds ~6 to ~61) */
            for (size_t a = 1; a < n; a++)
                for (size_t b = a; b > 0; b--) {
                    size_t lx = flens[b - 1], ly = flens[b], m = lx < ly ? lx : ly;
                    int c = m ? memcmp (pairs[b - 1], pairs[b], m) : 0;
                    if (c < 0 || (c == 0 && lx <= ly))
                        break;
                    char *tp = pairs[b - 1];
                    pairs[b - 1] = pairs[b], pairs[b] = tp;
                    size_t tl = lens[b - 1];
                    lens[b - 1] = lens[b], lens[b] = tl;
                    tl = flens[b - 1];
                    flens[b - 1] = flens[b], flens[b] = tl;
                }
            for (size_t p = 0; p < n; p++) {
                h = s_fnv (h, pairs[p], lens[p]);
                free (pairs[p]);
            }
            free (pairs);
            free (lens);
            free (flens);
        } else if (v && v->type == REDIS_REPLY_ARRAY) {
            qsort (v->element, v->elements, sizeof v->element[0], s_cmp_reply);
            for (size_t m = 0; m < v->elements; m++)
                h = s_fnv (h, v->element[m]->str, v->element[m]->len);
        }
        if (v)
            freeReplyObject (v);
        if (t)
            freeReplyObject (t);
    }
    freeReplyObject (keys);
    return h;
}

int main (int argc, char **argv)
{
    bool smoke = false;
    const char *json_path = NULL;
    setvbuf (stdout, NULL, _IOLBF, 0); /* figures appear as they come */
    long dossiers = 1000000, batch = 2048, spread = 1;
    bool call_times = false, digest = false, sweep = true, outbox = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--smoke") == 0)
            smoke = true, dossiers = 2000;
        else if (strcmp (argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp (argv[i], "--dossiers") == 0 && i + 1 < argc)
            dossiers = atol (argv[++i]);
        else if (strcmp (argv[i], "--ordered") == 0)
            s_ordered = true;
        else if (strcmp (argv[i], "--no-acks") == 0)
            s_acks = false;
        else if (strcmp (argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atol (argv[++i]);
        else if (strcmp (argv[i], "--spread") == 0 && i + 1 < argc)
            spread = atol (argv[++i]);
        else if (strcmp (argv[i], "--digest") == 0)
            digest = true;
        else if (strcmp (argv[i], "--no-sweep") == 0)
            sweep = false;
        else if (strcmp (argv[i], "--call-times") == 0)
            call_times = true;
        else if (strcmp (argv[i], "--outbox") == 0)
            outbox = true;
        else {
            fprintf (stderr, "usage: qp-bench-evaluation [--smoke] [--dossiers N] [--ordered] "
                             "[--no-acks] [--batch N] [--spread N] [--digest] [--no-sweep] [--call-times] "
                             "[--outbox] [--json FILE]\n");
            return 2;
        }
    }
    s_dossiers = dossiers > 0 ? dossiers : 1;
    qp_test_redis_t *server = qp_test_redis_start ();
    if (!server) {
        fprintf (stderr, "qp-bench-evaluation: cannot start redis-server\n");
        return 1;
    }
    qp_redis_t *redis = qp_redis_connect (server->host, server->port, 30000);
    char data[1024];
    snprintf (data, sizeof data, "%s/data", qp_test_source_dir ());
    evaluation_t *eval = redis ? evaluation_new (redis, data) : NULL;
    if (!eval) {
        fprintf (stderr, "qp-bench-evaluation: cannot open evaluation on %s\n", data);
        qp_redis_destroy (&redis);
        qp_test_redis_stop (&server);
        return 1;
    }
    evaluation_set_batch_events (eval, (size_t) batch);
    redisReply *reset = qp_redis_command (redis, "CONFIG RESETSTAT");
    if (reset)
        freeReplyObject (reset);
    if (call_times) {
        reset = qp_redis_command (redis, "CONFIG SET slowlog-log-slower-than 0 slowlog-max-len 50000");
        if (reset)
            freeReplyObject (reset);
        s_slowlog_drain (redis);
    }
    uint64_t trips0 = qp_redis_round_trips (redis);
    double cpu0 = s_cpu_self (), redis_cpu0 = s_cpu_redis (redis);
    double t0 = bench_now ();
    int failed = 0;
    /* --outbox: the members of the next chunk of dossiers (whole steps of --spread) */
    long chunk = spread > 1 ? spread * (1024 / spread > 0 ? 1024 / spread : 1) : 1024;
    double fill_cpu_s = 0, fill_self_s = 0;
    for (long i = 0; i < dossiers; i++) {
        if (outbox && s_acks && i % chunk == 0)
            fill_cpu_s += s_outbox_fill (redis, i, i + chunk < dossiers ? i + chunk : dossiers,
                                        &fill_self_s);
        if (spread <= 1)
            s_dossier_events (eval, i, -1);
        else if (i % spread == 0)
            /* N dossiers step by step, as the pipeline interleaves them */
            for (int step = 0; step < 6; step++)
                for (long k = i; k < i + spread && k < dossiers; k++)
                    s_dossier_events (eval, k, step);
        /* the scripts' own commands are logged too (~12 a dossier): drained often */
        if (call_times && i % 1000 == 999)
            s_slowlog_drain (redis); /* reads the apply in flight's reply first (qp_redis) */
    }
    failed += evaluation_flush (eval) != 0;
    if (call_times)
        s_slowlog_drain (redis);
    double apply_s = bench_now () - t0;
    /* CPU time does not count the waits of a busy machine: events per CPU second of the
     * service and Redis together is the figure that survives other load */
    double cpu_s = s_cpu_self () - cpu0 - fill_self_s,
           redis_cpu_s = s_cpu_redis (redis) - redis_cpu0 - fill_cpu_s;
    long long outbox_left = outbox ? s_outbox_size (redis) : 0;
    uint64_t trips = qp_redis_round_trips (redis) - trips0;
    double events = 6.0 * (double)dossiers;
    double events_per_s = events / apply_s;
    long long used = bench_redis_info (redis, "memory", "used_memory");
    /* Time Redis itself spent in commands (scripts included) during the apply. */
    double redis_s = s_redis_busy_s (redis);
    if (getenv ("QP_BENCH_COMMANDSTATS")) {
        /* where Redis spent its time, per command (the script's own commands included) */
        redisReply *r = qp_redis_command (redis, "INFO commandstats");
        if (r && r->type == REDIS_REPLY_STRING)
            fputs (r->str, stdout);
        if (r)
            freeReplyObject (r);
    }

    char digest_hex[17] = "-";
    if (digest)
        snprintf (digest_hex, sizeof digest_hex, "%016llx", (unsigned long long) s_digest (redis));

    /* the profiles "once" needs: per-dossier hashes (qp:eval:d:ID, before 2026-11-24) and
     * the bucket hashes (qp:eval:p:N) */
    long old_keys = 0, bucket_keys = 0;
    long long old_bytes = s_profile_bytes (redis, "qp:eval:d:*", &old_keys);
    long long bucket_bytes = s_profile_bytes (redis, "qp:eval:p:*", &bucket_keys);
    double profile_b = (double) (old_bytes + bucket_bytes) / (double) s_dossiers;

    timing_t report = s_time_reports (eval, false);
    timing_t indicators = s_time_reports (eval, true);
    /* the sweeper: a large backlog (evaluation tens of seconds behind a replay) and a
     * small one, for 60 simulated seconds */
    long big = smoke ? 20000 : 1000000, small = 10000;
    double sweep_big = sweep ? s_sweep_rate (redis, big, 60, QP_STORE_OUTBOX_REDELIVER_MS) : 0;
    double sweep_small = sweep ? s_sweep_rate (redis, small, 60, QP_STORE_OUTBOX_REDELIVER_MS) : 0;
    double sweep_small_5s = sweep ? s_sweep_rate (redis, small, 60, 5000) : 0;

    printf ("evaluation: %ld dossiers (%.0f events), %d territories, %s, redis AOF everysec\n",
            dossiers, events, TERRITORIES,
            s_ordered ? "business-time order" : "months and days interleaved");
    printf ("  %-38s %14s %14s\n", "figure", "measured", "target");
    printf ("  %-38s %14.0f %14s\n", "events applied /s", events_per_s, ">= 50000");
    printf ("  %-38s %14.2f %14s\n", "redis round trips per 1000 events",
            1000.0 * (double)trips / events, "-");
    printf ("  %-38s %14.1f %14s\n", "apply wall time (s)", apply_s, "-");
    printf ("  %-38s %14.1f %14s\n", "  of which inside redis (s)", redis_s, "-");
    printf ("  %-38s %14.1f %14s\n", "service CPU (s)", cpu_s, "-");
    printf ("  %-38s %14.1f %14s\n", "redis CPU (s)", redis_cpu_s, "-");
    printf ("  %-38s %14.0f %14s\n", "events /CPU-s (service + redis)",
            events / (cpu_s + redis_cpu_s), "-");
    printf ("  %-38s %14.2f %14s\n", "service CPU per event (us)", 1e6 * cpu_s / events, "-");
    printf ("  %-38s %14.2f %14s\n", "redis CPU per event (us)", 1e6 * redis_cpu_s / events, "-");
    printf ("  %-38s %14.2f %14s\n", "territory report p50 (ms)", report.p50, "-");
    printf ("  %-38s %14.2f %14s\n", "territory report max (ms)", report.max, "<= 50");
    printf ("  %-38s %14.2f %14s\n", "indicators+breakdowns p50 (ms)", indicators.p50, "-");
    printf ("  %-38s %14.2f %14s\n", "indicators+breakdowns max (ms)", indicators.max, "<= 50");
    printf ("  %-38s %14.1f %14s\n", "redis used_memory (MiB)", used / 1048576.0, "-");
    printf ("  %-38s %14.1f %14s\n", "profile bytes per dossier", profile_b, "<= ~100");
    printf ("  %-38s %14ld %14s\n", "  profile keys (old hashes)", old_keys, "-");
    printf ("  %-38s %14ld %14s\n", "  profile keys (buckets)", bucket_keys, "-");
    printf ("  %-38s %14s %14s\n", "outbox acks with each batch", s_acks ? "yes" : "no", "-");
    printf ("  %-38s %14ld %14s\n", "events per batch", batch, "-");
    printf ("  %-38s %14ld %14s\n", "dossiers interleaved (--spread)", spread, "-");
    if (outbox) {
        printf ("  %-38s %14.2f %14s\n", "outbox filled first (redis CPU s)", fill_cpu_s, "-");
        printf ("  %-38s %14lld %14s\n", "outbox members left after the acks", outbox_left, "0");
    }
    if (digest)
        printf ("  %-38s %14s %14s\n", "digest of qp:eval:* (--digest)", digest_hex, "-");
    if (call_times) {
        printf ("  %-38s %14.1f %14s\n", "redis time per read call, mean (ms)",
                s_read_t.n ? s_read_t.sum_us / s_read_t.n / 1000.0 : 0.0, "-");
        printf ("  %-38s %14.1f %14s\n", "redis time per read call, max (ms)", s_read_t.max_us / 1000.0, "-");
        printf ("  %-38s %14.1f %14s\n", "redis time per apply call, mean (ms)",
                s_apply_t.n ? s_apply_t.sum_us / s_apply_t.n / 1000.0 : 0.0, "-");
        printf ("  %-38s %14.1f %14s\n", "redis time per apply call, max (ms)", s_apply_t.max_us / 1000.0, "-");
        printf ("  %-38s %14ld %14s\n", "apply calls", s_apply_t.n, "-");
    }
    printf ("outbox sweeper, evaluation lagging: %d sweepers, %d a tick, redelivery %d s\n",
            SWEEPERS, SWEEP_BATCH, QP_STORE_OUTBOX_REDELIVER_MS / 1000);
    char label[64];
    snprintf (label, sizeof label, "published again /s, backlog %ld", big);
    printf ("  %-38s %14.0f %14s\n", label, sweep_big, "bounded");
    snprintf (label, sizeof label, "published again /s, backlog %ld", small);
    printf ("  %-38s %14.0f %14s\n", label, sweep_small, "-");
    printf ("  %-38s %14.0f %14s\n", "  the same with redelivery 5 s", sweep_small_5s, "-");
    if (failed)
        printf ("  (a flush failed: see the log above)\n");

    if (json_path) {
        json_t *j = json_pack (
            "{s:s, s:b, s:I, s:f, s:f, s:f, s:{s:f, s:f}, s:{s:f, s:f}, s:I, s:f, s:b, s:f, s:f, s:{s:f, s:f}}",
            "bench", "evaluation", "smoke", smoke, "dossiers", (json_int_t)dossiers, "events_per_s",
            events_per_s, "apply_s", apply_s, "redis_round_trips_per_1000_events",
            1000.0 * (double)trips / events, "report_ms", "p50", report.p50, "max", report.max,
            "indicators_ms", "p50", indicators.p50, "max", indicators.max,
            "redis_used_memory_bytes", (json_int_t)used, "redis_busy_s", redis_s, "ordered", s_ordered,
            "service_cpu_s", cpu_s, "redis_cpu_s", redis_cpu_s, "targets",
            "events_per_s", TARGET_EVENTS_PER_S, "report_ms", TARGET_REPORT_MS);
        json_object_set_new (j, "outbox_acks", json_boolean (s_acks));
        json_object_set_new (j, "batch_events", json_integer (batch));
        json_object_set_new (j, "spread", json_integer (spread));
        json_object_set_new (j, "outbox_filled", json_boolean (outbox));
        if (outbox)
            json_object_set_new (j, "outbox_left", json_integer (outbox_left));
        json_object_set_new (j, "service_cpu_us_per_event", json_real (1e6 * cpu_s / events));
        json_object_set_new (j, "redis_cpu_us_per_event", json_real (1e6 * redis_cpu_s / events));
        if (digest)
            json_object_set_new (j, "digest", json_string (digest_hex));
        if (call_times)
            json_object_set_new (
                j, "redis_call_ms",
                json_pack ("{s:f, s:f, s:f, s:f, s:I}", "read_mean",
                           s_read_t.n ? s_read_t.sum_us / s_read_t.n / 1000.0 : 0.0, "read_max",
                           s_read_t.max_us / 1000.0, "apply_mean",
                           s_apply_t.n ? s_apply_t.sum_us / s_apply_t.n / 1000.0 : 0.0,
                           "apply_max", s_apply_t.max_us / 1000.0, "apply_calls",
                           (json_int_t) s_apply_t.n));
        json_object_set_new (j, "profile_bytes_per_dossier", json_real (profile_b));
        json_object_set_new (j, "profile_keys", json_integer (old_keys + bucket_keys));
        json_object_set_new (j, "outbox_sweep",
                             json_pack ("{s:i, s:i, s:i, s:I, s:f, s:I, s:f, s:f}", "sweepers",
                                        SWEEPERS, "per_tick", SWEEP_BATCH, "redeliver_s",
                                        QP_STORE_OUTBOX_REDELIVER_MS / 1000, "backlog_large",
                                        (json_int_t) big, "republished_per_s_large", sweep_big,
                                        "backlog_small", (json_int_t) small,
                                        "republished_per_s_small", sweep_small,
                                        "republished_per_s_small_redeliver_5s", sweep_small_5s));
        if (!j || json_dump_file (j, json_path, JSON_INDENT (2)) != 0)
            fprintf (stderr, "qp-bench-evaluation: cannot write %s\n", json_path);
        json_decref (j);
    }
    evaluation_destroy (&eval);
    qp_redis_destroy (&redis);
    qp_test_redis_stop (&server);
    return 0;
}
