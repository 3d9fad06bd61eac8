/* qp-bench-stack: the whole stack end to end, real processes started like the tests do
 * (tests/support/qp_test.c: redis-server with AOF everysec, qp-bus, intake, eligibility,
 * funding, evaluation, the four partner components). Submissions go to intake through
 * the bus; a dossier is done when its DossierClosed event reaches our SUB socket.
 *   1. throughput: N dossiers fed as fast as the stack takes them (at most WINDOW
 *      submissions unanswered), first send to last DossierClosed, with 1 and 2
 *      instances of each worker service (scaling);
 *   2. memory: Redis used_memory per dossier and Redis commands per dossier (INFO), peak
 *      RSS (VmHWM) of every program after the run;
 *   3. latency: open loop at 1,000/s and 5,000/s: sends on a fixed schedule whatever the
 *      replies, latency from the scheduled send time to DossierClosed (no coordinated
 *      omission): p50, p99, p99.9, max; with the evaluation's backlog at the start (its
 *      outbox) and Redis's commands over 1 ms during the phase (SLOWLOG: each blocks every
 *      other client), AOF rewrites and the last fork. --settle SECONDS first waits for the
 *      evaluation to apply the burst's events.
 * The ratio to raw one-hop ZeroMQ reads limits.json next to --json FILE (qp bench runs
 * qp-bench-limits first). Prints figures, asserts nothing.
 *   4. where the CPU goes: per program (Redis, bus, services, partners, the bench itself),
 *      CPU microseconds, context switches and (--syscalls, perf stat) syscalls per dossier
 *      over the throughput run; their sum over the cores is the machine's ceiling.
 * --redis-set NAME VALUE (repeatable): CONFIG SET on each stack's Redis before its runs, to
 * measure a setting (e.g. auto-aof-rewrite-percentage) without changing the harness.
 * --script-times: Redis's execution time by script (and command) over the throughput run,
 * from its slow log at threshold 0 (costs Redis a little: not on by default).
 * Usage: qp-bench-stack [--smoke] [--dossiers N] [--syscalls] [--script-times]
 *        [--settle SECONDS] [--redis-set NAME VALUE]...
 *                       [--json FILE] */
#include "bench_support.h"
#include "qp_bus.h"
#include "qp_date.h"
#include "qp_redis.h"
#include "qp_test.h"
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 1000
#define STALL_S 30.0 /* no DossierClosed for this long: the stack is stuck, stop */

#define TARGET_DOSSIERS_PER_S 20000.0
#define TARGET_ZMQ_RATIO 0.04
#define TARGET_P99_1000_MS 5.0
#define TARGET_P99_5000_MS 20.0
#define TARGET_REDIS_BYTES 2048.0
#define TARGET_RSS_MB 50.0

/* ---- dossiers ------------------------------------------------------------------------ */

/* Dossier i as test_flow makes them: 10 % over the PHQ maximum (not eligible), 10 % with
 * too small a contribution (declined by Bpifrance's default component), the rest funded.
 * run tells runs apart (a new channel key, so intake never sees a duplicate). */
static zmsg_t *s_submission (long i, int run, char id_out[QP_ID_HEX + 1])
{
    static const char *const communes[] = {"59512", "93048", "31555", "53130"};
    static const char *const qpv[] = {"QN05981M", "QN09301M", "QN03101M", "QN05301M"};
    char key[48], person[40], day[11], disc[96];
    snprintf (key, sizeof key, "bench-%d-%08ld", run, i);
    /* 32 hex digits, like the key intake derives from an identity (intake_person_key) */
    snprintf (person, sizeof person, "%08x%024lx", (unsigned)run, (unsigned long)i);
    qp_date_format (qp_date_from_civil (2024, 1, 1) + i % 1000, day);
    Qp__V1__SubmitDossier submit = QP__V1__SUBMIT_DOSSIER__INIT;
    Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder holder = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business business = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    dossier.channel = "bench", dossier.channel_key = key, dossier.submitted_on = day;
    holder.person_key = person;
    holder.residence_qpv = (char *)qpv[i % 4];
    holder.has_accompanied = true, holder.accompanied = true;
    holder.has_network = true, holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    business.insee_commune = (char *)communes[i % 4];
    business.naf_code = "47.11B", business.legal_form = "5499";
    int64_t amount = i % 10 == 0 ? 2000000 : 100000 + (int64_t)(i * 7919 % 1400000);
    p.has_axis = true, p.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    p.has_amount_asked_cents = true, p.amount_asked_cents = amount;
    p.has_financing_need_cents = true, p.financing_need_cents = amount * 4;
    p.has_personal_contribution_cents = true;
    p.personal_contribution_cents = i % 10 == 1 ? amount * 4 / 20 : amount;
    p.has_bank_loan_cents = true, p.bank_loan_cents = amount * 2;
    p.has_bank_loan_months = true, p.bank_loan_months = 60;
    p.has_bank_loan_guarantee_pct = true, p.bank_loan_guarantee_pct = 40;
    p.has_honour_loan_months = true, p.honour_loan_months = 48;
    p.has_deferral_months = true, p.deferral_months = 6;
    p.has_jobs_planned = true, p.jobs_planned = 1 + i % 3;
    dossier.holder = &holder, dossier.business = &business, dossier.project = &p;
    submit.dossier = &dossier;
    snprintf (disc, sizeof disc, "bench\n%s", key);
    int32_t days;
    qp_date_parse (day, &days);
    qp_meta_t meta = {
        .producer = "qp-bench-stack", .discriminator = disc, .event_time_ms = qp_date_to_ms (days)};
    return qp_message_build (&submit.base, &meta, id_out);
}

/* ---- one run against a stack ----------------------------------------------------------- */

/* What we know of a dossier in flight: when it was (to be) sent, when it closed, and in
 * the latency phases when each stage's event reached us (0: not seen). */
typedef struct {
    double scheduled, closed;
    double replied, received, decided, settled;
} track_t;

/* The stages of a dossier's latency, each from the previous one's event: where the time
 * of a slow dossier went (intake's reply, DossierReceived, EligibilityDecided, the last
 * FundingSettled, DossierClosed). */
enum { STAGE_REPLY, STAGE_RECEIVED, STAGE_ELIGIBILITY, STAGE_FUNDING, STAGE_CLOSE, STAGES };
static const char *const s_stage_names[STAGES] = {"intake reply", "to DossierReceived",
                                                  "eligibility", "funding", "to DossierClosed"};

typedef struct {
    qp_test_stack_t *stack;
    qp_bus_client_t *client;
    zsock_t *events;
    zhashx_t *by_request; /* submission message id -> track_t (until its reply) */
    zhashx_t *by_dossier; /* dossier id -> track_t */
    long replies, rejected, closed, in_flight;
    double *latency_ms; /* per closed dossier, when measuring latency */
    long n_latency;
    double *stage_ms[STAGES]; /* per closed dossier and stage, when measuring latency */
    long n_stage[STAGES];
    double last_closed;
} run_t;

static void s_closed (run_t *r, const char *dossier_id, track_t *t)
{
    r->closed++;
    r->last_closed = t->closed;
    if (r->latency_ms)
        r->latency_ms[r->n_latency++] = (t->closed - t->scheduled) * 1000.0;
    if (r->stage_ms[0] && t->received > 0 && t->decided > 0) {
        double settled = t->settled > 0 ? t->settled : t->decided;
        double at[STAGES] = {t->replied - t->scheduled, t->received - t->scheduled,
                             t->decided - t->received, settled - t->decided, t->closed - settled};
        for (int k = 0; k < STAGES; k++)
            if (k != STAGE_REPLY || t->replied > 0)
                r->stage_ms[k][r->n_stage[k]++] = at[k] * 1000.0;
    }
    zhashx_delete (r->by_dossier, dossier_id);
}

/* A stage's event (latency phases only subscribe to them): when it reached us. */
static void s_stage_event (run_t *r, const qp_message_t *msg)
{
    const char *id = NULL;
    int stage = -1;
    if (msg->descriptor == &qp__v1__dossier_received__descriptor)
        id = ((const Qp__V1__DossierReceived *)msg->payload)->dossier_id, stage = STAGE_RECEIVED;
    else if (msg->descriptor == &qp__v1__eligibility_decided__descriptor)
        id = ((const Qp__V1__EligibilityDecided *)msg->payload)->dossier_id,
        stage = STAGE_ELIGIBILITY;
    else if (msg->descriptor == &qp__v1__funding_settled__descriptor)
        id = ((const Qp__V1__FundingSettled *)msg->payload)->dossier_id, stage = STAGE_FUNDING;
    if (!id)
        return;
    track_t *t = zhashx_lookup (r->by_dossier, id);
    if (!t) { /* before intake's reply */
        track_t early = {0};
        zhashx_insert (r->by_dossier, id, &early);
        t = zhashx_lookup (r->by_dossier, id);
    }
    if (!t || t->closed > 0)
        return;
    double now = bench_now ();
    if (stage == STAGE_RECEIVED)
        t->received = now;
    else if (stage == STAGE_ELIGIBILITY)
        t->decided = now;
    else
        t->settled = now; /* the last settlement of the plan */
}

/* Reads what is ready: replies from intake and DossierClosed events. */
static void s_prof_drain (bool now);

static void s_drain (run_t *r)
{
    s_prof_drain (false); /* --script-times: every 50 ms */
    zsock_t *sock = qp_bus_client_socket (r->client);
    while (zsock_events (sock) & ZMQ_POLLIN) {
        qp_bus_frame_t f;
        if (qp_bus_client_recv (r->client, &f))
            continue;
        qp_message_t msg;
        qp_error_t err;
        if (!strcmp (f.kind, QPB_DELIVER) &&
            qp_message_decode (f.type, f.envelope, &msg, &err) == 0) {
            const char *cause = msg.envelope->causation_id ? msg.envelope->causation_id : "";
            track_t *t = zhashx_lookup (r->by_request, cause);
            if (t) {
                track_t copy = *t;
                zhashx_delete (r->by_request, cause);
                r->replies++, r->in_flight--;
                const Qp__V1__SubmitDossierReply *rep = (const void *)msg.payload;
                if (msg.descriptor == &qp__v1__submit_dossier_reply__descriptor && rep->accepted &&
                    rep->dossier_id) {
                    track_t *known = zhashx_lookup (r->by_dossier, rep->dossier_id);
                    copy.replied = bench_now ();
                    if (known) { /* events came before the reply */
                        known->scheduled = copy.scheduled, known->replied = copy.replied;
                        if (known->closed > 0)
                            s_closed (r, rep->dossier_id, known);
                    } else
                        zhashx_insert (r->by_dossier, rep->dossier_id, &copy);
                } else
                    r->rejected++;
            }
            qp_message_clear (&msg);
        }
        qp_bus_frame_clear (&f);
    }
    while (zsock_events (r->events) & ZMQ_POLLIN) {
        zmsg_t *m = zmsg_recv (r->events);
        if (!m)
            break;
        zframe_t *type = zmsg_first (m), *env = zmsg_next (m);
        qp_message_t msg;
        qp_error_t err;
        if (type && env && qp_message_decode (type, env, &msg, &err) == 0) {
            if (msg.descriptor == &qp__v1__dossier_closed__descriptor) {
                const Qp__V1__DossierClosed *c = (const void *)msg.payload;
                const char *id = c->dossier_id ? c->dossier_id : "";
                track_t *t = zhashx_lookup (r->by_dossier, id);
                if (t && t->closed == 0) {
                    t->closed = bench_now ();
                    if (t->scheduled > 0)
                        s_closed (r, id, t);
                } else if (!t) {
                    track_t early = {.closed = bench_now ()};
                    zhashx_insert (r->by_dossier, id, &early);
                }
            } else
                s_stage_event (r, &msg);
            qp_message_clear (&msg);
        }
        zmsg_destroy (&m);
    }
}

static void *s_track_dup (const void *item)
{
    track_t *t = malloc (sizeof *t);
    *t = *(const track_t *)item;
    return t;
}

static void s_track_free (void **item)
{
    free (*item);
    *item = NULL;
}

/* stages: also subscribes to the events between submission and close (latency phases;
 * the throughput run keeps the bus's fan-out to what a client needs). */
static int s_run_open (run_t *r, qp_test_stack_t *stack, bool stages)
{
    memset (r, 0, sizeof *r);
    r->stack = stack;
    r->client = qp_bus_client_new (stack->work);
    r->events = zsock_new_sub (stack->subscribe, "qp.v1.DossierClosed");
    if (!r->client || !r->events)
        return -1;
    if (stages) {
        zsock_set_subscribe (r->events, "qp.v1.DossierReceived");
        zsock_set_subscribe (r->events, "qp.v1.EligibilityDecided");
        zsock_set_subscribe (r->events, "qp.v1.FundingSettled");
    }
    zsock_set_rcvhwm (r->events, 0);
    r->by_request = zhashx_new ();
    r->by_dossier = zhashx_new ();
    zhashx_set_duplicator (r->by_request, s_track_dup);
    zhashx_set_destructor (r->by_request, s_track_free);
    zhashx_set_duplicator (r->by_dossier, s_track_dup);
    zhashx_set_destructor (r->by_dossier, s_track_free);
    zclock_sleep (300); /* the SUB connection before the first event */
    return 0;
}

static void s_run_close (run_t *r)
{
    zhashx_destroy (&r->by_request);
    zhashx_destroy (&r->by_dossier);
    zsock_destroy (&r->events);
    qp_bus_client_destroy (&r->client);
    free (r->latency_ms);
    for (int k = 0; k < STAGES; k++)
        free (r->stage_ms[k]);
}

static int s_send (run_t *r, long i, int run, double scheduled)
{
    char id[QP_ID_HEX + 1];
    zmsg_t *frames = s_submission (i, run, id);
    if (qp_bus_client_send (r->client, "intake", &frames))
        return -1;
    track_t t = {.scheduled = scheduled};
    zhashx_insert (r->by_request, id, &t);
    r->in_flight++;
    return 0;
}

/* Waits for the accepted dossiers to close (or a stall). */
static void s_finish (run_t *r, long sent)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (r->client), r->events, NULL);
    double progress = bench_now ();
    long seen = r->closed + r->rejected;
    while (r->closed + r->rejected < sent && bench_now () - progress < STALL_S && !zsys_interrupted) {
        zpoller_wait (poller, 100);
        s_drain (r);
        if (r->closed + r->rejected != seen)
            seen = r->closed + r->rejected, progress = bench_now ();
    }
    zpoller_destroy (&poller);
}

/* Closed-loop feed: as fast as the stack takes them, WINDOW unanswered at most. */
static double s_throughput (run_t *r, long n, int run)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (r->client), r->events, NULL);
    double t0 = bench_now ();
    long sent = 0;
    while (sent < n && !zsys_interrupted) {
        while (sent < n && r->in_flight < WINDOW) {
            if (s_send (r, sent, run, bench_now ()))
                break;
            sent++;
            if ((sent & 63) == 0)
                s_drain (r);
        }
        zpoller_wait (poller, 10);
        s_drain (r);
    }
    zpoller_destroy (&poller);
    s_finish (r, sent);
    return r->closed > 0 ? r->closed / (r->last_closed - t0) : 0;
}

typedef struct {
    double rate, p50, p99, p999, max, achieved;
    long sent, closed;
    double stage_p50[STAGES], stage_p99[STAGES]; /* each stage alone */
} latency_t;

/* Open loop: dossier k is due at t0 + k / rate and sent then, replies or not. */
static latency_t s_latency (run_t *r, double rate, double seconds, int run)
{
    latency_t out = {.rate = rate};
    long n = (long)(rate * seconds);
    r->latency_ms = calloc ((size_t)n + 1, sizeof (double));
    for (int k = 0; k < STAGES; k++)
        r->stage_ms[k] = calloc ((size_t)n + 1, sizeof (double));
    double t0 = bench_now () + 0.05;
    long sent = 0;
    while (sent < n && !zsys_interrupted) {
        double now = bench_now ();
        while (sent < n && t0 + sent / rate <= now) {
            if (s_send (r, sent, run, t0 + sent / rate))
                break;
            sent++;
        }
        s_drain (r);
        double next = t0 + sent / rate - bench_now ();
        if (next > 0.0002) {
            struct timespec ts = {0, (long)(next * 0.5e9)};
            nanosleep (&ts, NULL);
        }
    }
    out.achieved = sent / (bench_now () - t0);
    s_finish (r, sent);
    out.sent = sent, out.closed = r->n_latency;
    if (r->n_latency > 0) {
        qsort (r->latency_ms, (size_t)r->n_latency, sizeof (double), bench_cmp_double);
        long k = r->n_latency;
        out.p50 = r->latency_ms[(long)(0.5 * (k - 1))];
        out.p99 = r->latency_ms[(long)(0.99 * (k - 1))];
        out.p999 = r->latency_ms[(long)(0.999 * (k - 1))];
        out.max = r->latency_ms[k - 1];
    }
    for (int k = 0; k < STAGES; k++) {
        long m = r->n_stage[k];
        qsort (r->stage_ms[k], (size_t)m, sizeof (double), bench_cmp_double);
        out.stage_p50[k] = m ? r->stage_ms[k][(long)(0.5 * (m - 1))] : 0;
        out.stage_p99[k] = m ? r->stage_ms[k][(long)(0.99 * (m - 1))] : 0;
    }
    return out;
}

/* One SLOWLOG GET entry: its duration (µs) and its command's arguments, or NULL when
 * the entry is not of the expected shape. */
static redisReply *s_slowlog_entry (const redisReply *e, long long *us)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 ||
        e->element[2]->type != REDIS_REPLY_INTEGER ||
        e->element[3]->type != REDIS_REPLY_ARRAY || e->element[3]->elements == 0 ||
        !e->element[3]->element[0]->str)
        return NULL;
    *us = e->element[2]->integer;
    return e->element[3];
}

/* ---- --script-times: Redis's time by script over the throughput run ------------------ */

/* Every command goes to the slow log (threshold 0), drained every 50 ms in one MULTI
 * (SLOWLOG GET -1, SLOWLOG RESET: nothing lost between them); EVALSHA named by its
 * script (the SHA of the text qp_redis loads, qp_redis_script_text). The log's time is
 * the command's execution only; Redis 7 logs the commands a script runs too (client
 * "?:0"): listed as "(IN LUA) CMD", already inside their script's time. Logging every
 * command costs Redis CPU of its own: compare the rows, not the total with a plain run. */
typedef struct {
    qp_redis_t *redis;
    json_t *by;     /* name -> [calls, usec] */
    json_t *names;  /* sha -> script name */
    double next;
} prof_t;

static prof_t s_prof;

static void s_prof_names (void)
{
    for (int k = 0; k < QP_LUA_COUNT; k++) {
        redisReply *r = qp_redis_command (s_prof.redis, "SCRIPT LOAD %s",
                                          qp_redis_script_text ((qp_lua_script_t)k));
        if (r && r->type == REDIS_REPLY_STRING)
            json_object_set_new (s_prof.names, r->str,
                                 json_string (qp_redis_script_name ((qp_lua_script_t)k)));
        if (r)
            freeReplyObject (r);
    }
}

static void s_prof_start (qp_redis_t *redis)
{
    s_prof.redis = redis;
    s_prof.by = json_object ();
    s_prof.names = json_object ();
    s_prof_names ();
    const char *cmds[] = {"CONFIG SET slowlog-max-len 200000", "SLOWLOG RESET",
                          "CONFIG SET slowlog-log-slower-than 0"};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        redisReply *r = qp_redis_command (redis, cmds[k]);
        if (r)
            freeReplyObject (r);
    }
    s_prof.next = bench_now () + 0.05;
}

static void s_prof_drain (bool now)
{
    if (!s_prof.redis || (!now && bench_now () < s_prof.next))
        return;
    s_prof.next = bench_now () + 0.05;
    redisReply *r = NULL;
    const char *steps[] = {"MULTI", "SLOWLOG GET -1", "SLOWLOG RESET", "EXEC"};
    for (size_t k = 0; k < 4; k++) {
        if (r)
            freeReplyObject (r);
        r = qp_redis_command (s_prof.redis, steps[k]);
    }
    redisReply *log = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[0] : NULL;
    for (size_t i = 0; log && log->type == REDIS_REPLY_ARRAY && i < log->elements; i++) {
        redisReply *e = log->element[i];
        long long us;
        redisReply *argv = s_slowlog_entry (e, &us);
        if (!argv)
            continue;
        char name[64];
        const char *cmd = argv->element[0]->str;
        json_t *script = strcasecmp (cmd, "EVALSHA") == 0 && argv->elements > 1 && argv->element[1]->str
                             ? json_object_get (s_prof.names, argv->element[1]->str)
                             : NULL;
        if (script)
            snprintf (name, sizeof name, "%s.lua", json_string_value (script));
        else if (!strcasecmp (cmd, "SLOWLOG") || !strcasecmp (cmd, "MULTI") ||
                 !strcasecmp (cmd, "EXEC") || !strcasecmp (cmd, "CONFIG"))
            continue; /* ours */
        else if (e->elements > 4 && e->element[4]->str && !strcmp (e->element[4]->str, "?:0"))
            snprintf (name, sizeof name, "(in Lua) %s", cmd); /* the script's own client */
        else
            snprintf (name, sizeof name, "%s", cmd);
        for (char *p = name; *p && !script; p++)
            *p = (char)toupper ((unsigned char)*p);
        json_t *row = json_object_get (s_prof.by, name);
        if (!row) {
            row = json_pack ("[I, I]", (json_int_t)0, (json_int_t)0);
            json_object_set_new (s_prof.by, name, row);
        }
        json_array_set_new (row, 0, json_integer (json_integer_value (json_array_get (row, 0)) + 1));
        json_array_set_new (row, 1, json_integer (json_integer_value (json_array_get (row, 1)) + us));
    }
    if (r)
        freeReplyObject (r);
}

static int s_prof_cmp (const void *a, const void *b)
{
    double x = json_real_value (json_object_get (*(json_t *const *)a, "usec_per_dossier"));
    double y = json_real_value (json_object_get (*(json_t *const *)b, "usec_per_dossier"));
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Prints and returns the table (per closed dossier), and puts the slow log back. */
static json_t *s_prof_stop (long closed)
{
    s_prof_drain (true);
    redisReply *r = qp_redis_command (s_prof.redis, "CONFIG SET slowlog-log-slower-than 10000");
    if (r)
        freeReplyObject (r);
    json_t *rows[256];
    size_t n = 0;
    const char *name;
    json_t *row;
    json_object_foreach (s_prof.by, name, row)
    {
        if (n == 256)
            break;
        json_int_t calls = json_integer_value (json_array_get (row, 0));
        json_int_t usec = json_integer_value (json_array_get (row, 1));
        rows[n++] = json_pack ("{s:s, s:f, s:f, s:f}", "name", name, "calls_per_dossier",
                               closed ? (double)calls / closed : 0, "usec_per_dossier",
                               closed ? (double)usec / closed : 0, "usec_per_call",
                               calls ? (double)usec / calls : 0);
    }
    qsort (rows, n, sizeof *rows, s_prof_cmp);
    json_t *out = json_array ();
    double total = 0;
    printf ("  redis time by script and command (SLOWLOG, execution only), per dossier:\n"
            "    %-28s %8s %8s %8s\n",
            "script or command", "calls", "us", "us/call");
    for (size_t i = 0; i < n; i++) {
        if (strncmp (json_string_value (json_object_get (rows[i], "name")), "(IN LUA)", 8))
            total += json_real_value (json_object_get (rows[i], "usec_per_dossier"));
        if (i < 24)
            printf ("    %-28s %8.2f %8.1f %8.1f\n",
                    json_string_value (json_object_get (rows[i], "name")),
                    json_real_value (json_object_get (rows[i], "calls_per_dossier")),
                    json_real_value (json_object_get (rows[i], "usec_per_dossier")),
                    json_real_value (json_object_get (rows[i], "usec_per_call")));
        json_array_append_new (out, rows[i]);
    }
    printf ("    %-28s %8s %8.1f  (\"(IN LUA)\" rows are inside the scripts' time)\n",
            "all", "", total);
    json_decref (s_prof.by);
    json_decref (s_prof.names);
    memset (&s_prof, 0, sizeof s_prof);
    return out;
}

/* ---- where the CPU goes: per program, per dossier --------------------------------------- */

#define MAX_PROGRAMS (QP_TEST_STACK_MAX + 3)
#define MAX_SETS 8

/* One program's counters at one instant: CPU (user + system, all its threads), context
 * switches (summed over /proc/PID/task/ * /status: the process's own status only counts its
 * main thread, and ZeroMQ's I/O thread is where most of the switching happens). */
typedef struct {
    char name[80]; /* the harness's name (64) and "#N" */
    pid_t pid;
    double cpu_us, user_us;
    long voluntary, involuntary;
    long long syscalls; /* from perf stat, -1 when not counted */
    pid_t perf;         /* the perf stat counting its syscalls, 0 when none */
    char perf_out[128];
} usage_t;

/* utime + stime of /proc/PID/stat (fields 14 and 15, in clock ticks). */
static int s_proc_cpu (pid_t pid, double *cpu_us, double *user_us)
{
    char path[64], buf[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen (path, "r");
    size_t n = f ? fread (buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose (f);
    buf[n] = 0;
    char *p = strrchr (buf, ')'); /* the command name may hold spaces */
    unsigned long long utime, stime;
    if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                      &stime) != 2)
        return -1;
    double tick_us = 1e6 / (double)sysconf (_SC_CLK_TCK);
    *cpu_us = (double)(utime + stime) * tick_us;
    *user_us = (double)utime * tick_us;
    return 0;
}

static void s_proc_switches (pid_t pid, long *voluntary, long *involuntary)
{
    char path[300], line[256];
    *voluntary = *involuntary = 0;
    snprintf (path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir (path);
    struct dirent *e;
    while (dir && (e = readdir (dir))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf (path, sizeof path, "/proc/%d/task/%s/status", (int)pid, e->d_name);
        FILE *f = fopen (path, "r");
        while (f && fgets (line, sizeof line, f)) {
            if (!strncmp (line, "voluntary_ctxt_switches:", 24))
                *voluntary += atol (line + 24);
            else if (!strncmp (line, "nonvoluntary_ctxt_switches:", 27))
                *involuntary += atol (line + 27);
        }
        if (f)
            fclose (f);
    }
    if (dir)
        closedir (dir);
}

static double s_info_double (qp_redis_t *redis, const char *section, const char *field)
{
    redisReply *r = qp_redis_command (redis, "INFO %s", section);
    double v = 0;
    char needle[96];
    snprintf (needle, sizeof needle, "\n%s:", field);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr (r->str, needle);
        if (p)
            v = atof (p + strlen (needle));
    }
    if (r)
        freeReplyObject (r);
    return v;
}

/* Redis's own account (INFO cpu): the server (children false) or its AOF rewrite
 * children (counted once a rewrite has ended: one still running at the end is not). */
static void s_redis_cpu (qp_redis_t *redis, bool children, double *cpu_us, double *user_us)
{
    double user =
        s_info_double (redis, "cpu", children ? "used_cpu_user_children" : "used_cpu_user");
    double sys = s_info_double (redis, "cpu", children ? "used_cpu_sys_children" : "used_cpu_sys");
    *cpu_us = (user + sys) * 1e6;
    *user_us = user * 1e6;
}

/* Redis, its AOF rewrites, every program of the stack, then the bench itself (the
 * generator: it must not be the bottleneck it measures). Second instances get "#2". */
#define ROW_REDIS 0
#define ROW_REWRITE 1
#define ROW_BUS 2
static size_t s_programs (const qp_test_stack_t *stack, usage_t *out)
{
    size_t n = 0;
    const qp_test_proc_t *procs[MAX_PROGRAMS];
    procs[n++] = stack->redis->proc;
    procs[n++] = stack->redis->proc;
    procs[n++] = stack->bus;
    for (size_t k = 0; k < stack->n_procs && n < MAX_PROGRAMS - 1; k++)
        procs[n++] = stack->procs[k];
    for (size_t k = 0; k < n; k++) {
        memset (&out[k], 0, sizeof out[k]);
        out[k].pid = procs[k]->pid;
        out[k].syscalls = -1;
        int same = 1;
        for (size_t j = 0; j < k; j++)
            same += !strcmp (procs[j]->name, procs[k]->name);
        if (same > 1)
            snprintf (out[k].name, sizeof out[k].name, "%s#%d", procs[k]->name, same);
        else
            snprintf (out[k].name, sizeof out[k].name, "%s", procs[k]->name);
    }
    snprintf (out[ROW_REWRITE].name, sizeof out[ROW_REWRITE].name, "redis AOF rewrites");
    memset (&out[n], 0, sizeof out[n]);
    snprintf (out[n].name, sizeof out[n].name, "bench (generator)");
    out[n].pid = getpid ();
    out[n].syscalls = -1;
    return n + 1;
}

static void s_sample (qp_redis_t *redis, usage_t *u, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (k == ROW_REDIS || k == ROW_REWRITE)
            s_redis_cpu (redis, k == ROW_REWRITE, &u[k].cpu_us, &u[k].user_us);
        else
            s_proc_cpu (u[k].pid, &u[k].cpu_us, &u[k].user_us);
        if (k != ROW_REWRITE)
            s_proc_switches (u[k].pid, &u[k].voluntary, &u[k].involuntary);
    }
}

/* --syscalls: one `perf stat -e raw_syscalls:sys_enter -p PID` per program over the run
 * (counting only, no sampling: far lighter than strace, still not free, so it is asked
 * for, never on by default). */
static void s_perf_start (usage_t *u, size_t n, const char *dir)
{
    for (size_t k = 0; k < n; k++) {
        if (k == ROW_REWRITE)
            continue; /* perf on the server follows its threads, not its forks */
        char pid[16];
        snprintf (pid, sizeof pid, "%d", (int)u[k].pid);
        snprintf (u[k].perf_out, sizeof u[k].perf_out, "%s/syscalls-%d.csv", dir, (int)u[k].pid);
        pid_t child = fork ();
        if (child == 0) {
            int null = open ("/dev/null", O_RDWR);
            dup2 (null, 0), dup2 (null, 1), dup2 (null, 2);
            execlp ("perf", "perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", pid, "-o",
                    u[k].perf_out, (char *)NULL);
            _exit (127);
        }
        u[k].perf = child > 0 ? child : 0;
    }
    zclock_sleep (500); /* perf attaches */
}

static void s_perf_stop (usage_t *u, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (u[k].perf > 0)
            kill (u[k].perf, SIGINT);
    for (size_t k = 0; k < n; k++) {
        if (u[k].perf <= 0)
            continue;
        int status;
        waitpid (u[k].perf, &status, 0);
        u[k].perf = 0;
        FILE *f = fopen (u[k].perf_out, "r");
        char line[256];
        while (f && fgets (line, sizeof line, f))
            if (strstr (line, "raw_syscalls:sys_enter") && isdigit ((unsigned char)line[0]))
                u[k].syscalls = atoll (line);
        if (f)
            fclose (f);
        unlink (u[k].perf_out);
    }
}

/* What the bus has seen: every frame set on its capture tap, and the events among them. */
static int s_bus_counts (const qp_test_stack_t *stack, double *captured, double *events)
{
    json_t *st = qp_test_bus_status (stack->work, 5000);
    if (!st)
        return -1;
    *captured = json_number_value (json_object_get (st, "captured"));
    *events = json_number_value (json_object_get (st, "events"));
    json_decref (st);
    return 0;
}

/* Prints the table (after - before, per closed dossier) and returns it as JSON, with the
 * machine's ceiling: cores / CPU seconds per dossier of all the programs together. */
static json_t *s_cpu_report (const usage_t *before, const usage_t *after, size_t n, long closed,
                             double seconds)
{
    json_t *programs = json_array ();
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    double sum = 0, stack_sum = 0;
    printf ("  per dossier over the run (%ld closed, %.2f s): CPU us (user+sys), context switches "
            "(voluntary/involuntary), syscalls\n",
            closed, seconds);
    printf ("    %-30s %10s %8s %8s %8s %10s %6s\n", "program", "cpu_us", "user_us", "vol_cs",
            "invol_cs", "syscalls", "%cpu");
    for (size_t k = 0; k < n && closed > 0; k++) {
        double cpu = (after[k].cpu_us - before[k].cpu_us) / closed;
        double user = (after[k].user_us - before[k].user_us) / closed;
        double vol = (double)(after[k].voluntary - before[k].voluntary) / closed;
        double invol = (double)(after[k].involuntary - before[k].involuntary) / closed;
        double sys = after[k].syscalls >= 0 ? (double)after[k].syscalls / closed : -1;
        double load = seconds > 0 ? 100.0 * cpu * closed / 1e6 / seconds : 0;
        char sys_text[32] = "-";
        if (sys >= 0)
            snprintf (sys_text, sizeof sys_text, "%.1f", sys);
        printf ("    %-30s %10.1f %8.1f %8.2f %8.2f %10s %5.0f%%\n", after[k].name, cpu, user, vol,
                invol, sys_text, load);
        sum += cpu;
        if (k < n - 1)
            stack_sum += cpu;
        json_t *row = json_pack ("{s:s, s:f, s:f, s:f, s:f, s:f}", "program", after[k].name,
                                 "cpu_us_per_dossier", cpu, "user_us_per_dossier", user,
                                 "voluntary_cs_per_dossier", vol, "involuntary_cs_per_dossier",
                                 invol, "cpu_percent", load);
        if (sys >= 0)
            json_object_set_new (row, "syscalls_per_dossier", json_real (sys));
        json_array_append_new (programs, row);
    }
    double ceiling = sum > 0 ? cores * 1e6 / sum : 0;
    double stack_ceiling = stack_sum > 0 ? cores * 1e6 / stack_sum : 0;
    printf ("    %-30s %10.1f   -> ceiling %.0f dossiers/s on %ld cores (stack without the "
            "generator: %.1f us, %.0f /s)\n",
            "sum", sum, ceiling, cores, stack_sum, stack_ceiling);
    return json_pack ("{s:o, s:f, s:f, s:i, s:f, s:f}", "programs", programs,
                      "sum_cpu_us_per_dossier", sum, "stack_cpu_us_per_dossier", stack_sum, "cores",
                      (int)cores, "ceiling_dossiers_per_s", ceiling, "stack_ceiling_dossiers_per_s",
                      stack_ceiling);
}

/* ---- stack ------------------------------------------------------------------------------ */

static qp_test_stack_t *s_stack (int instances)
{
    static const char *const workers[] = {"intake", "eligibility", "funding", "evaluation"};
    static const char *const partners[] = {"partner-anct", "partner-anru", "partner-bdt",
                                           "partner-bpifrance"};
    static const char *const ready[] = {"intake",
                                        "eligibility",
                                        "funding",
                                        "evaluation",
                                        "partner.ANCT.anct-default",
                                        "partner.ANRU.anru-default",
                                        "partner.BANQUE_DES_TERRITOIRES.bdt-default",
                                        "partner.BPIFRANCE.bpifrance-default",
                                        NULL};
    const char *programs[16];
    size_t n = 0;
    for (int k = 0; k < instances; k++)
        for (size_t w = 0; w < 4; w++)
            programs[n++] = workers[w];
    for (size_t p = 0; p < 4; p++)
        programs[n++] = partners[p];
    programs[n] = NULL;
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {
        .programs = programs, .wait_for = ready, .env = env, .log_level = "warn"};
    return qp_test_stack_start (&opts);
}

/* Redis calls per closed dossier, by command (INFO commandstats: cmdstat_X:calls=N,...),
 * since the counters were reset; printed on one line and returned as JSON. */
static json_t *s_commandstats (qp_redis_t *redis, long closed, json_t *usec_out)
{
    json_t *out = json_object ();
    redisReply *r = qp_redis_command (redis, "INFO commandstats");
    if (r && r->type == REDIS_REPLY_STRING && closed > 0) {
        printf ("  redis calls per dossier:");
        for (char *p = strstr (r->str, "cmdstat_"); p; p = strstr (p + 1, "cmdstat_")) {
            char name[64];
            long calls;
            if (sscanf (p, "cmdstat_%63[^:]:calls=%ld", name, &calls) == 2 && calls > closed / 10) {
                printf (" %s %.2f", name, (double)calls / closed);
                json_object_set_new (out, name, json_real ((double)calls / closed));
            }
        }
        /* Time inside each command (a script's usec includes the commands it runs, which
         * are counted under their own names too); what is left of Redis's CPU is reading,
         * parsing, replying and the AOF. */
        printf ("\n  redis usec per dossier inside commands:");
        for (char *p = strstr (r->str, "cmdstat_"); p; p = strstr (p + 1, "cmdstat_")) {
            char name[64];
            long calls;
            long long usec;
            if (sscanf (p, "cmdstat_%63[^:]:calls=%ld,usec=%lld", name, &calls, &usec) == 3 &&
                usec > closed) {
                printf (" %s %.1f", name, (double)usec / closed);
                json_object_set_new (usec_out, name, json_real ((double)usec / closed));
            }
        }
        printf ("\n");
    }
    if (r)
        freeReplyObject (r);
    return out;
}

/* ---- what blocked Redis during a latency phase ----------------------------------------- */

/* Every Redis command blocks the others for its run: the slow log from here on records
 * those over 1 ms, so a latency tail can be matched with what Redis was doing. */
static void s_slow_start (qp_redis_t *redis)
{
    const char *cmds[] = {"CONFIG SET slowlog-log-slower-than 1000",
                          "CONFIG SET slowlog-max-len 4096", "SLOWLOG RESET"};
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
        redisReply *r = qp_redis_command (redis, cmds[k]);
        if (r)
            freeReplyObject (r);
    }
}

/* Prints the commands over 1 ms since s_slow_start, by name (a script by its first key's
 * prefix: "EVALSHA qp:eval"), with their count, total and longest, and the forks. */
static json_t *s_slow_report (qp_redis_t *redis, long long rewrites0)
{
    json_t *by = json_object ();
    redisReply *r = qp_redis_command (redis, "SLOWLOG GET 4096");
    long n = 0;
    long long total = 0, longest = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        long long us;
        redisReply *argv = s_slowlog_entry (r->element[i], &us);
        if (!argv)
            continue;
        char name[64];
        const char *cmd = argv->element[0]->str;
        if ((strcasecmp (cmd, "EVALSHA") == 0 || strcasecmp (cmd, "EVAL") == 0) &&
            argv->elements > 3 && argv->element[3]->str) {
            /* The first key names the script's area: qp:eval:..., qp:{ID}:d, qp:envelope... */
            const char *key = argv->element[3]->str;
            const char *close = strncmp (key, "qp:{", 4) == 0 ? strchr (key, '}') : NULL;
            if (close) /* a dossier's key: qp:{ID}:d */
                snprintf (name, sizeof name, "%s qp:{ID}%.20s", cmd, close + 1);
            else {
                const char *cut = strchr (key + (strncmp (key, "qp:", 3) == 0 ? 3 : 0), ':');
                int len = cut ? (int)(cut - key) : (int)strlen (key);
                snprintf (name, sizeof name, "%s %.*s", cmd, len > 40 ? 40 : len, key);
            }
        } else
            snprintf (name, sizeof name, "%s", cmd);
        json_t *row = json_object_get (by, name);
        if (!row) {
            row = json_pack ("{s:I, s:I, s:I}", "count", (json_int_t)0, "usec", (json_int_t)0,
                             "max_usec", (json_int_t)0);
            json_object_set_new (by, name, row);
        }
        json_object_set_new (row, "count",
                             json_integer (json_integer_value (json_object_get (row, "count")) + 1));
        json_object_set_new (row, "usec",
                             json_integer (json_integer_value (json_object_get (row, "usec")) + us));
        if (us > json_integer_value (json_object_get (row, "max_usec")))
            json_object_set_new (row, "max_usec", json_integer (us));
        n++, total += us;
        longest = us > longest ? us : longest;
    }
    if (r)
        freeReplyObject (r);
    long long rewrites = bench_redis_info (redis, "persistence", "aof_rewrites") - rewrites0;
    long long fork_us = bench_redis_info (redis, "stats", "latest_fork_usec");
    printf ("    redis: %ld commands over 1 ms (%.1f ms in all, longest %.1f ms), %lld AOF "
            "rewrites (last fork %.1f ms)",
            n, total / 1000.0, longest / 1000.0, rewrites, fork_us / 1000.0);
    const char *name;
    json_t *row;
    json_object_foreach (by, name, row)
    {
        printf ("; %s %lld (longest %.1f ms)", name,
                (long long)json_integer_value (json_object_get (row, "count")),
                json_integer_value (json_object_get (row, "max_usec")) / 1000.0);
    }
    printf ("\n");
    return json_pack ("{s:I, s:f, s:f, s:I, s:f, s:o}", "slow_commands", (json_int_t)n,
                      "slow_ms", total / 1000.0, "longest_ms", longest / 1000.0,
                      "aof_rewrites", (json_int_t)rewrites, "last_fork_ms", fork_us / 1000.0,
                      "by_command", by);
}

/* Events the evaluation has not applied yet (the outbox): a backlog left by the burst
 * that it is still working through when the latency phase starts. */
static long long s_outbox (qp_redis_t *redis)
{
    redisReply *r = qp_redis_command (redis, "ZCARD qp:pending:outbox");
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject (r);
    return v;
}

/* --settle: before a latency phase, waits (at most seconds) until the evaluation has
 * applied the burst's events, so the phase measures the stack without that backlog. */
static void s_settle (qp_redis_t *redis, double seconds)
{
    double t0 = bench_now ();
    long long left = s_outbox (redis);
    while (left > 100 && bench_now () - t0 < seconds && !zsys_interrupted) {
        zclock_sleep (200);
        left = s_outbox (redis);
    }
    printf ("    settled %.1f s: %lld events left in the outbox\n", bench_now () - t0, left);
}

/* The raw one-hop ZeroMQ figure qp-bench-limits wrote next to our JSON, or 0. */
static double s_zmq_limit (const char *json_path)
{
    if (!json_path)
        return 0;
    char *copy = strdup (json_path);
    char path[2048];
    snprintf (path, sizeof path, "%s/limits.json", dirname (copy));
    free (copy);
    json_t *j = json_load_file (path, 0, NULL);
    double v = j ? json_number_value (json_object_get (j, "zmq_msgs_per_s")) : 0;
    json_decref (j);
    return v;
}

int main (int argc, char **argv)
{
    bool smoke = false, syscalls = false, script_times = false;
    const char *redis_sets[MAX_SETS][2]; /* --redis-set NAME VALUE: tries a Redis setting */
    size_t n_sets = 0;
    const char *json_path = NULL;
    setvbuf (stdout, NULL, _IOLBF, 0); /* figures appear as they come */
    long dossiers = 100000;
    double latency_s = 10, settle_s = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--smoke") == 0)
            smoke = true, dossiers = 300, latency_s = 0.2;
        else if (strcmp (argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp (argv[i], "--settle") == 0 && i + 1 < argc)
            settle_s = atof (argv[++i]);
        else if (strcmp (argv[i], "--syscalls") == 0)
            syscalls = true;
        else if (strcmp (argv[i], "--script-times") == 0)
            script_times = true;
        else if (strcmp (argv[i], "--redis-set") == 0 && i + 2 < argc && n_sets < MAX_SETS) {
            redis_sets[n_sets][0] = argv[++i];
            redis_sets[n_sets++][1] = argv[++i];
        } else if (strcmp (argv[i], "--dossiers") == 0 && i + 1 < argc)
            dossiers = atol (argv[++i]);
        else {
            fprintf (stderr, "usage: qp-bench-stack [--smoke] [--dossiers N] [--syscalls] [--script-times] "
                             "[--settle SECONDS] [--redis-set NAME VALUE]... [--json FILE]\n");
            return 2;
        }
    }
    setenv ("QP_TEST_LOG_LEVEL", "warn", 0);
    json_t *out = json_pack ("{s:s, s:b, s:I, s:[], s:[], s:{}}", "bench", "stack", "smoke", smoke,
                             "dossiers", (json_int_t)dossiers, "scaling", "latency", "memory");
    json_t *sets = json_object ();
    for (size_t k = 0; k < n_sets; k++)
        json_object_set_new (sets, redis_sets[k][0], json_string (redis_sets[k][1]));
    json_object_set_new (out, "redis_set", sets);
    double zmq = s_zmq_limit (json_path);
    double best = 0;
    int run_no = (int)(time (NULL) % 100000);
    printf ("stack: bus + intake, eligibility, funding, evaluation (x1, x2) + 4 partners, "
            "redis AOF everysec; %ld dossiers\n",
            dossiers);
    for (int instances = 1; instances <= 2; instances++) {
        qp_test_stack_t *stack = s_stack (instances);
        if (!stack) {
            fprintf (stderr, "qp-bench-stack: the stack did not start\n");
            json_decref (out);
            return 1;
        }
        qp_redis_t *redis = qp_redis_connect (stack->redis->host, stack->redis->port, 10000);
        for (size_t k = 0; k < n_sets; k++) {
            redisReply *set =
                qp_redis_command (redis, "CONFIG SET %s %s", redis_sets[k][0], redis_sets[k][1]);
            bool ok = set && set->type == REDIS_REPLY_STATUS;
            printf ("  redis CONFIG SET %s %s: %s\n", redis_sets[k][0], redis_sets[k][1],
                    ok                                      ? "done"
                    : set && set->type == REDIS_REPLY_ERROR ? set->str
                                                            : "no answer");
            if (set)
                freeReplyObject (set);
        }
        long long mem0 = bench_redis_info (redis, "memory", "used_memory");
        long long cmd0 = 0;
        redisReply *reset = qp_redis_command (redis, "CONFIG RESETSTAT");
        if (reset)
            freeReplyObject (reset);
        run_t r;
        double rate = 0;
        usage_t before[MAX_PROGRAMS + 1], after[MAX_PROGRAMS + 1];
        size_t np = s_programs (stack, before);
        memcpy (after, before, sizeof before);
        if (syscalls)
            s_perf_start (before, np, stack->dir);
        long long rewrites0 = bench_redis_info (redis, "persistence", "aof_rewrites");
        double captured0 = 0, events0 = 0;
        s_bus_counts (stack, &captured0, &events0);
        int opened = s_run_open (&r, stack, false);
        if (script_times)
            s_prof_start (redis);
        s_sample (redis, before, np);
        double t_start = bench_now ();
        if (opened == 0)
            rate = s_throughput (&r, dossiers, run_no++);
        /* The evaluation may still be applying the burst's events (their outbox members are
         * Redis memory, their counting CPU): the figures are taken once it has. */
        long long mem_close = bench_redis_info (redis, "memory", "used_memory");
        long long backlog = s_outbox (redis), left = backlog;
        double drain0 = bench_now ();
        while (left > 100 && bench_now () - drain0 < 120 && !zsys_interrupted) {
            zclock_sleep (200);
            left = s_outbox (redis);
        }
        double drain_s = bench_now () - drain0;
        s_sample (redis, after, np);
        double t_end = bench_now ();
        json_t *by_script = script_times ? s_prof_stop (r.closed) : NULL;
        if (syscalls) {
            s_perf_stop (before, np);
            for (size_t k = 0; k < np; k++)
                after[k].syscalls = before[k].syscalls;
        }
        long closed = r.closed, rejected = r.rejected;
        s_run_close (&r);
        long long mem1 = bench_redis_info (redis, "memory", "used_memory");
        long long cmd1 = bench_redis_info (redis, "stats", "total_commands_processed");
        double bytes = closed ? (double)(mem1 - mem0) / closed : 0;
        double cmds = closed ? (double)(cmd1 - cmd0) / closed : 0;
        best = rate > best ? rate : best;
        printf ("  x%d: %ld closed (%ld refused), %.0f dossiers/s (target >= %.0f), "
                "%.0f redis bytes/dossier (target <= %.0f), %.1f redis commands/dossier\n",
                instances, closed, rejected, rate, TARGET_DOSSIERS_PER_S, bytes, TARGET_REDIS_BYTES,
                cmds);
        printf ("    at the last close: %lld events not yet applied by the evaluation (outbox), "
                "%.0f redis bytes/dossier; %lld left after %.1f s: the memory and CPU figures "
                "are taken then\n",
                backlog, closed ? (double)(mem_close - mem0) / closed : 0, left, drain_s);
        json_array_append_new (json_object_get (out, "scaling"),
                               json_pack ("{s:i, s:I, s:f, s:f, s:f, s:I, s:f}", "instances",
                                          instances, "closed", (json_int_t)closed,
                                          "dossiers_per_s", rate, "redis_bytes_per_dossier",
                                          bytes, "redis_commands_per_dossier", cmds,
                                          "outbox_at_close", (json_int_t)backlog,
                                          "evaluation_drain_s", drain_s));
        json_t *cpu = s_cpu_report (before, after, np, closed, t_end - t_start);
        long long rewrites = bench_redis_info (redis, "persistence", "aof_rewrites") - rewrites0;
        printf ("    redis AOF rewrites during the run: %lld\n", rewrites);
        json_object_set_new (cpu, "redis_aof_rewrites", json_integer (rewrites));
        double captured1 = 0, events1 = 0;
        if (closed > 0 && s_bus_counts (stack, &captured1, &events1) == 0) {
            double sets = (captured1 - captured0) / closed, events = (events1 - events0) / closed;
            printf ("    bus: %.1f frame sets per dossier (%.1f of them events)", sets, events);
            if (after[ROW_BUS].syscalls >= 0 && sets > 0)
                printf (", %.1f bus syscalls per frame set",
                        (double)after[ROW_BUS].syscalls / closed / sets);
            printf ("\n");
            json_object_set_new (cpu, "bus_frame_sets_per_dossier", json_real (sets));
            json_object_set_new (cpu, "bus_events_per_dossier", json_real (events));
        }
        json_object_set_new (json_array_get (json_object_get (out, "scaling"), instances - 1),
                             "cpu", cpu);
        if (by_script)
            json_object_set_new (json_array_get (json_object_get (out, "scaling"), instances - 1),
                                 "redis_by_script", by_script);
        if (instances == 1) {
            /* Peak RSS of every program after the throughput run. */
            json_t *mem = json_object_get (out, "memory");
            json_object_set_new (mem, "redis_bytes_per_dossier", json_real (bytes));
            json_t *usec = json_object ();
            json_object_set_new (out, "redis_calls_per_dossier",
                                 s_commandstats (redis, closed, usec));
            json_object_set_new (out, "redis_usec_per_dossier", usec);
            json_t *rss = json_object ();
            printf ("  peak RSS (MB, target <= %.0f per service beyond the QPV index):",
                    TARGET_RSS_MB);
            qp_test_proc_t *procs[QP_TEST_STACK_MAX + 2];
            size_t np = 0;
            procs[np++] = stack->redis->proc;
            procs[np++] = stack->bus;
            for (size_t k = 0; k < stack->n_procs; k++)
                procs[np++] = stack->procs[k];
            for (size_t k = 0; k < np; k++) {
                double mb = bench_status_kb (procs[k]->pid, "VmHWM") / 1024.0;
                printf (" %s %.1f", procs[k]->name, mb);
                json_object_set_new (rss, procs[k]->name, json_real (mb));
            }
            printf ("\n");
            json_object_set_new (mem, "peak_rss_mb", rss);
            /* Open-loop latency on the same stack. */
            const double rates[] = {1000, 5000};
            const double targets[] = {TARGET_P99_1000_MS, TARGET_P99_5000_MS};
            for (int k = 0; k < 2; k++) {
                latency_t l = {0};
                if (settle_s > 0)
                    s_settle (redis, settle_s);
                long long backlog = s_outbox (redis);
                long long phase_rewrites0 = bench_redis_info (redis, "persistence", "aof_rewrites");
                s_slow_start (redis);
                if (s_run_open (&r, stack, true) == 0)
                    l = s_latency (&r, rates[k], latency_s, run_no++);
                s_run_close (&r);
                printf ("  open loop %5.0f/s (sent at %.0f/s): %ld/%ld closed, p50 %.2f p99 %.2f "
                        "p99.9 %.2f max %.2f ms (target p99 <= %.0f ms)\n",
                        l.rate, l.achieved, l.closed, l.sent, l.p50, l.p99, l.p999, l.max,
                        targets[k]);
                printf ("    stages (p50 / p99 ms):");
                json_t *stages = json_object ();
                for (int st = 0; st < STAGES; st++) {
                    printf ("%s %s %.2f / %.2f", st ? ";" : "", s_stage_names[st],
                            l.stage_p50[st], l.stage_p99[st]);
                    json_object_set_new (stages, s_stage_names[st],
                                         json_pack ("{s:f, s:f}", "p50_ms", l.stage_p50[st],
                                                    "p99_ms", l.stage_p99[st]));
                }
                printf ("\n    evaluation backlog at the start: %lld events in the outbox\n",
                        backlog);
                json_t *blocked = s_slow_report (redis, phase_rewrites0);
                json_array_append_new (
                    json_object_get (out, "latency"),
                    json_pack ("{s:f, s:f, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:o}", "rate",
                               l.rate, "achieved_rate", l.achieved, "sent", (json_int_t)l.sent,
                               "closed", (json_int_t)l.closed, "p50_ms", l.p50, "p99_ms", l.p99,
                               "p999_ms", l.p999, "max_ms", l.max, "target_p99_ms", targets[k],
                               "outbox_at_start", (json_int_t)backlog, "redis", blocked));
                json_object_set_new (json_array_get (json_object_get (out, "latency"),
                                                     json_array_size (json_object_get (
                                                         out, "latency")) - 1),
                                     "stages", stages);
            }
        }
        qp_redis_destroy (&redis);
        qp_test_stack_stop (&stack);
    }
    json_object_set_new (out, "dossiers_per_s", json_real (best));
    json_object_set_new (out, "zmq_one_hop_msgs_per_s", json_real (zmq));
    json_object_set_new (out, "ratio_to_zmq", json_real (zmq > 0 ? best / zmq : 0));
    json_object_set_new (out, "targets",
                         json_pack ("{s:f, s:f, s:f, s:f, s:f, s:f}", "dossiers_per_s",
                                    TARGET_DOSSIERS_PER_S, "ratio_to_zmq", TARGET_ZMQ_RATIO,
                                    "p99_ms_at_1000", TARGET_P99_1000_MS, "p99_ms_at_5000",
                                    TARGET_P99_5000_MS, "redis_bytes_per_dossier",
                                    TARGET_REDIS_BYTES, "rss_mb", TARGET_RSS_MB));
    if (zmq > 0)
        printf (
            "  best %.0f dossiers/s = %.4f of raw one-hop ZeroMQ (%.0f msg/s; target >= %.2f)\n",
            best, best / zmq, zmq, TARGET_ZMQ_RATIO);
    else
        printf ("  best %.0f dossiers/s (no limits.json beside --json: run qp bench limits for "
                "the ratio)\n",
                best);
    if (json_path && json_dump_file (out, json_path, JSON_INDENT (2)) != 0)
        fprintf (stderr, "qp-bench-stack: cannot write %s\n", json_path);
    json_decref (out);
    return 0;
}
