/* hiredis wrapper. Synchronous on purpose: every step of a dossier is one atomic script,
 * and a worker handles one message at a time; scale comes from more workers. One
 * exception, qp_redis_script_send / qp_redis_collect: the evaluation's batch apply runs
 * in Redis while the service builds the next batch (one call in flight). */
#include "qp_redis.h"
#include "qp_config.h"
#include "qp_health.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include <assert.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* With Sentinel, how long a command keeps looking for a master before giving up: above
 * Sentinel's down-after plus its failover (a few seconds as deployed). */
#define FAILOVER_BUDGET_MS 30000
/* How long a write waits for its replica (WAIT) before being reported unreplicated. */
#define REPLICA_WAIT_MS 1000

extern const char qp_lua_dossier_create[];
extern const char qp_lua_dossier_transition[];
extern const char qp_lua_pending_claim[];
extern const char qp_lua_envelope_reserve[];
extern const char qp_lua_envelope_settle[];
extern const char qp_lua_eval_apply[];
extern const char qp_lua_envelope_expire[];
extern const char qp_lua_funding_leg[];
extern const char qp_lua_funding_plan[];
extern const char qp_lua_funding_due_claim[];
extern const char qp_lua_partner_report[];
extern const char qp_lua_phq_claim[];
extern const char qp_lua_funding_read[];
extern const char qp_lua_follow_up_store[];

/* In qp_lua_script_t's order: the name of its file in common/lua, the embedded text. */
#define S_SCRIPT(name) {#name, qp_lua_##name}
static const struct {
    const char *name, *text;
} s_scripts[QP_LUA_COUNT] = {
    S_SCRIPT (dossier_create),  S_SCRIPT (dossier_transition), S_SCRIPT (pending_claim),
    S_SCRIPT (envelope_reserve), S_SCRIPT (envelope_settle),   S_SCRIPT (eval_apply),
    S_SCRIPT (envelope_expire), S_SCRIPT (funding_leg),        S_SCRIPT (funding_plan),
    S_SCRIPT (funding_due_claim), S_SCRIPT (partner_report),   S_SCRIPT (funding_read),
    S_SCRIPT (phq_claim),       S_SCRIPT (follow_up_store),
};

const char *qp_redis_script_name (qp_lua_script_t script)
{
    return script < QP_LUA_COUNT ? s_scripts[script].name : NULL;
}

const char *qp_redis_script_text (qp_lua_script_t script)
{
    return script < QP_LUA_COUNT ? s_scripts[script].text : NULL;
}

struct qp_redis {
    redisContext *ctx;
    char *host;
    int port;
    char sha[QP_LUA_COUNT][41];
    uint64_t round_trips;
    char *sentinels;   /* "h:p,h:p" or NULL: plain host:port */
    char *master_name;
    int replicas;      /* replicas the master reported (ROLE) at connect: what WAIT waits for */
    char *user;        /* ACL user (docs/security.md) or NULL: the default user */
    char *password;
    qp_metric_t *m_trips, *m_lost, *m_unreplicated, *m_master_changes;
    /* qp_redis_script_send's call: the formatted command (kept to run it again), whether
     * it reached the socket, and its reply once read early (s_settle) */
    char *sent_cmd;
    long long sent_len;
    qp_lua_script_t sent_script;
    bool pending, written, stashed;
    redisReply *stash;
};

static redisReply *s_collect (qp_redis_t *self);

/* Before any other command: the pending call's reply is read and kept for
 * qp_redis_collect, so nobody else reads it. */
static void s_settle (qp_redis_t *self)
{
    if (self->pending) {
        self->stash = s_collect (self);
        self->stashed = true;
    }
}

static int64_t s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks each Sentinel in turn for the master's address; 0 when one answered. */
static int s_sentinel_master (qp_redis_t *self)
{
    char *list = strdup (self->sentinels), *save = NULL;
    int rc = -1;
    for (char *tok = strtok_r (list, ", ", &save); tok && rc; tok = strtok_r (NULL, ", ", &save)) {
        char *colon = strrchr (tok, ':');
        if (!colon)
            continue;
        *colon = 0;
        struct timeval tv = {0, 500000};
        redisContext *c = redisConnectWithTimeout (tok, atoi (colon + 1), tv);
        redisReply *r = NULL;
        if (c && !c->err) {
            redisSetTimeout (c, tv);
            r = redisCommand (c, "SENTINEL get-master-addr-by-name %s", self->master_name);
        }
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING) {
            int port = atoi (r->element[1]->str);
            if (strcmp (self->host, r->element[0]->str) != 0 || self->port != port) {
                qp_log_info ("redis_master", "Sentinel %s:%s names master %s at %s:%d", tok,
                             colon + 1, self->master_name, r->element[0]->str, port);
                qp_metric_add (self->m_master_changes, 1);
            }
            free (self->host);
            self->host = strdup (r->element[0]->str);
            self->port = port;
            rc = 0;
        }
        if (r)
            freeReplyObject (r);
        if (c)
            redisFree (c);
    }
    free (list);
    if (rc)
        qp_log_warn ("redis_unreachable", "no Sentinel of %s names a master %s", self->sentinels,
                     self->master_name);
    return rc;
}

/* A freshly promoted master, or one Sentinel has not demoted yet: only talk to a node
 * that says it is the master; remember how many replicas it has for WAIT. */
static int s_check_master (qp_redis_t *self)
{
    redisReply *r = redisCommand (self->ctx, "ROLE");
    int rc = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
        r->element[0]->type == REDIS_REPLY_STRING && !strcmp (r->element[0]->str, "master")) {
        self->replicas = r->element[2]->type == REDIS_REPLY_ARRAY ? (int) r->element[2]->elements : 0;
        rc = 0;
    } else
        qp_log_warn ("redis_not_master", "%s:%d is not a master yet", self->host, self->port);
    if (r)
        freeReplyObject (r);
    return rc;
}

/* Logs in as the service's own ACL user: a refusal is a deployment error, said plainly. */
static int s_auth (qp_redis_t *self)
{
    redisReply *r = self->user ? redisCommand (self->ctx, "AUTH %s %s", self->user, self->password)
                               : redisCommand (self->ctx, "AUTH %s", self->password);
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    if (rc)
        qp_log_error ("redis_auth", "Redis %s:%d refused user %s: %s", self->host, self->port,
                      self->user ? self->user : "default",
                      r && r->type == REDIS_REPLY_ERROR ? r->str : self->ctx->errstr);
    if (r)
        freeReplyObject (r);
    return rc;
}

static int s_open (qp_redis_t *self)
{
    if (self->ctx)
        redisFree (self->ctx);
    self->ctx = NULL;
    if (self->sentinels && s_sentinel_master (self) != 0) {
        qp_health_check ("redis", false);
        return -1;
    }
    struct timeval tv = {2, 0};
    self->ctx = redisConnectWithTimeout (self->host, self->port, tv);
    if (!self->ctx || self->ctx->err) {
        qp_log_warn ("redis_unreachable", "cannot connect to Redis %s:%d: %s", self->host,
                     self->port, self->ctx ? self->ctx->errstr : "out of memory");
        if (self->ctx)
            redisFree (self->ctx);
        self->ctx = NULL;
        qp_health_check ("redis", false);
        return -1;
    }
    redisSetTimeout (self->ctx, tv);
    if (self->password && s_auth (self) != 0) {
        redisFree (self->ctx);
        self->ctx = NULL;
        qp_health_check ("redis", false);
        return -1;
    }
    if (self->sentinels && s_check_master (self) != 0) {
        redisFree (self->ctx);
        self->ctx = NULL;
        qp_health_check ("redis", false);
        return -1;
    }
    qp_health_check ("redis", true);
    return 0;
}

qp_redis_t *qp_redis_connect (const char *host, int port, int timeout_ms)
{
    return qp_redis_connect_as (host, port, qp_config_setting ("redis-user"),
                                qp_config_setting ("redis-password"), timeout_ms);
}

qp_redis_t *qp_redis_connect_as (const char *host, int port, const char *user,
                                 const char *password, int timeout_ms)
{
    qp_redis_t *self = calloc (1, sizeof *self);
    assert (self);
    self->host = strdup (host);
    self->port = port;
    self->user = user && *user ? strdup (user) : NULL;
    /* A user without a password logs in with an empty one (an ACL "nopass" user). */
    self->password = password ? strdup (password) : self->user ? strdup ("") : NULL;
    const char *sentinels = qp_config_setting ("redis-sentinels");
    if (sentinels) {
        self->sentinels = strdup (sentinels);
        const char *name = qp_config_setting ("redis-master-name");
        self->master_name = strdup (name ? name : "qp");
    }
    self->m_trips = qp_metrics_counter ("qp_redis_round_trips_total", "commands sent to Redis", "");
    self->m_lost = qp_metrics_counter ("qp_redis_connection_lost_total",
                                       "Redis connections lost or refused", "");
    self->m_unreplicated = qp_metrics_counter (
        "qp_redis_unreplicated_writes_total", "writes no replica acknowledged in time (Sentinel)", "");
    self->m_master_changes =
        qp_metrics_counter ("qp_redis_master_changes_total", "masters named by Sentinel", "");
    for (int waited = 0; s_open (self) != 0; waited += 100) {
        if (waited >= timeout_ms) {
            qp_redis_destroy (&self);
            return NULL;
        }
        usleep (100000);
    }
    return self;
}

void qp_redis_destroy (qp_redis_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_redis_t *self = *self_p;
    if (self->ctx)
        redisFree (self->ctx);
    if (self->sent_cmd)
        redisFreeCommand (self->sent_cmd);
    if (self->stash)
        freeReplyObject (self->stash);
    free (self->host);
    free (self->sentinels);
    free (self->master_name);
    free (self->user);
    if (self->password)
        sodium_memzero (self->password, strlen (self->password));
    free (self->password);
    free (self);
    *self_p = NULL;
}

uint64_t qp_redis_round_trips (const qp_redis_t *self) { return self->round_trips; }

/* Runs a formatted command; on a connection error reconnects and runs it again. The
 * commands we send are idempotent by construction (guarded scripts), so a retry is safe.
 * Without Sentinel: one retry. With Sentinel: retries (asking the Sentinels for the
 * master each time) for the failover budget, and a node that answers READONLY (a demoted
 * master) counts as lost. */
static redisReply *s_run (qp_redis_t *self, const char *cmd, int len)
{
    s_settle (self);
    int64_t start = s_now_ms ();
    for (int attempt = 0;; attempt++) {
        if (attempt > 0 && (self->sentinels ? s_now_ms () - start >= FAILOVER_BUDGET_MS : attempt >= 2))
            return NULL;
        if (!self->ctx && s_open (self) != 0) {
            usleep (self->sentinels ? 250000 : 200000);
            continue;
        }
        self->round_trips++;
        qp_metric_add (self->m_trips, 1);
        redisReply *r = NULL;
        if (redisAppendFormattedCommand (self->ctx, cmd, (size_t) len) == REDIS_OK)
            redisGetReply (self->ctx, (void **) &r);
        if (r && self->sentinels && r->type == REDIS_REPLY_ERROR && !strncmp (r->str, "READONLY", 8)) {
            qp_log_warn ("redis_error", "%s:%d was demoted: %s", self->host, self->port, r->str);
            freeReplyObject (r);
        } else if (r)
            return r;
        else
            qp_log_warn ("redis_error", "Redis connection lost: %s", self->ctx->errstr);
        qp_metric_add (self->m_lost, 1);
        qp_health_check ("redis", false);
        redisFree (self->ctx);
        self->ctx = NULL;
    }
}

redisReply *qp_redis_argv (qp_redis_t *self, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    long long len = redisFormatCommandArgv (&cmd, argc, argv, lens);
    if (len < 0)
        return NULL;
    redisReply *r = s_run (self, cmd, (int) len);
    redisFreeCommand (cmd);
    return r;
}

redisReply *qp_redis_command (qp_redis_t *self, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start (ap, fmt);
    int len = redisvFormatCommand (&cmd, fmt, ap);
    va_end (ap);
    if (len < 0)
        return NULL;
    redisReply *r = s_run (self, cmd, len);
    redisFreeCommand (cmd);
    return r;
}

/* With Sentinel, a write is acknowledged only once a replica has it, so a failover cannot
 * lose it: 1 when replicated (or no replica to wait for), 0 when WAIT timed out, -1 when
 * the connection dropped before we knew. */
static int s_replicated (qp_redis_t *self)
{
    if (!self->sentinels || self->replicas == 0 || !self->ctx)
        return 1;
    redisReply *r = redisCommand (self->ctx, "WAIT %d %d", self->replicas, REPLICA_WAIT_MS);
    self->round_trips++;
    qp_metric_add (self->m_trips, 1);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer >= 1 : -1;
    if (rc == 0) {
        qp_log_warn ("redis_unreplicated", "no replica of %s:%d acknowledged a write within %d ms",
                     self->host, self->port, REPLICA_WAIT_MS);
        qp_metric_add (self->m_unreplicated, 1);
        self->replicas = 0; /* until the next connect: do not pay the wait on every write */
    }
    if (r)
        freeReplyObject (r);
    if (rc < 0 && self->ctx) {
        redisFree (self->ctx);
        self->ctx = NULL;
    }
    return rc;
}

static int s_load (qp_redis_t *self, qp_lua_script_t script)
{
    redisReply *r = qp_redis_command (self, "SCRIPT LOAD %s", s_scripts[script].text);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy (self->sha[script], r->str, 41);
        rc = 0;
    } else
        qp_log_error ("redis_script", "cannot load Lua script %d: %s", (int) script,
                      r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    if (r)
        freeReplyObject (r);
    return rc;
}

redisReply *qp_redis_script (qp_redis_t *self, qp_lua_script_t script, int nkeys,
                             const char **keys, int nargs, const char **args, const size_t *arglens)
{
    assert (script >= 0 && script < QP_LUA_COUNT);
    int argc = 3 + nkeys + nargs;
    const char *argv[argc];
    size_t lens[argc];
    char nk[16];
    snprintf (nk, sizeof nk, "%d", nkeys);
    int replays = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!self->sha[script][0] && s_load (self, script) != 0)
            return NULL;
        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = self->sha[script];
        lens[1] = 40;
        argv[2] = nk;
        lens[2] = strlen (nk);
        for (int i = 0; i < nkeys; i++) {
            argv[3 + i] = keys[i];
            lens[3 + i] = strlen (keys[i]);
        }
        for (int i = 0; i < nargs; i++) {
            argv[3 + nkeys + i] = args[i];
            lens[3 + nkeys + i] = arglens ? arglens[i] : strlen (args[i]);
        }
        redisReply *r = qp_redis_argv (self, argc, argv, lens);
        /* After a Redis restart (or failover) scripts must be loaded again. */
        if (r && r->type == REDIS_REPLY_ERROR && !strncmp (r->str, "NOSCRIPT", 8)) {
            freeReplyObject (r);
            self->sha[script][0] = 0;
            continue;
        }
        /* Master lost between the script and its replication: run it again (guarded
         * scripts are idempotent) on the master Sentinel names next. */
        if (r && r->type != REDIS_REPLY_ERROR && s_replicated (self) < 0 && replays++ < 5) {
            freeReplyObject (r);
            attempt--;
            continue;
        }
        return r;
    }
    return NULL;
}

/* Appends one script call (EVALSHA) to the pipeline. */
static int s_append_script (qp_redis_t *self, const qp_redis_call_t *c)
{
    int argc = 3 + c->nkeys + c->nargs;
    const char **argv = malloc ((size_t) argc * sizeof *argv);
    size_t *lens = malloc ((size_t) argc * sizeof *lens);
    assert (argv && lens);
    char nk[16];
    snprintf (nk, sizeof nk, "%d", c->nkeys);
    argv[0] = "EVALSHA", lens[0] = 7;
    argv[1] = self->sha[c->script], lens[1] = 40;
    argv[2] = nk, lens[2] = strlen (nk);
    for (int i = 0; i < c->nkeys; i++)
        argv[3 + i] = c->keys[i], lens[3 + i] = strlen (c->keys[i]);
    for (int i = 0; i < c->nargs; i++) {
        argv[3 + c->nkeys + i] = c->args[i];
        lens[3 + c->nkeys + i] = c->arglens ? c->arglens[i] : strlen (c->args[i]);
    }
    int rc = redisAppendCommandArgv (self->ctx, argc, argv, lens);
    free (argv);
    free (lens);
    return rc;
}

int qp_redis_scripts (qp_redis_t *self, const qp_redis_call_t *calls, size_t n,
                      redisReply **replies)
{
    for (size_t i = 0; i < n; i++)
        replies[i] = NULL;
    s_settle (self);
    size_t *sent = malloc ((n ? n : 1) * sizeof *sent);
    assert (sent);
    int64_t start = s_now_ms ();
    int lost = 0, noscript = 0, replays = 0;
    for (;;) {
        size_t todo = 0;
        for (size_t i = 0; i < n; i++)
            todo += !replies[i];
        /* Retries as s_run (connection) and qp_redis_script (NOSCRIPT, replication). */
        if (!todo || noscript > 1 ||
            (lost > 0 && (self->sentinels ? s_now_ms () - start >= FAILOVER_BUDGET_MS : lost >= 2)))
            break;
        if (!self->ctx && s_open (self) != 0) {
            lost++;
            usleep (self->sentinels ? 250000 : 200000);
            continue;
        }
        /* Scripts are loaded before anything is appended: SCRIPT LOAD reads its own reply. */
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            assert (calls[i].script >= 0 && calls[i].script < QP_LUA_COUNT);
            if (!replies[i] && !self->sha[calls[i].script][0] &&
                s_load (self, calls[i].script) != 0)
                ok = false;
        }
        if (!ok || !self->ctx)
            break; /* cannot load a script (s_run already retried the connection) */
        size_t n_sent = 0;
        for (size_t i = 0; i < n && ok; i++) {
            if (replies[i])
                continue;
            if (s_append_script (self, &calls[i]) != REDIS_OK)
                ok = false;
            else
                sent[n_sent++] = i;
        }
        self->round_trips++;
        qp_metric_add (self->m_trips, 1);
        bool dropped = false, again = false;
        for (size_t j = 0; j < n_sent; j++) {
            redisReply *r = NULL;
            if (!dropped && redisGetReply (self->ctx, (void **) &r) != REDIS_OK)
                r = NULL;
            if (!r) {
                dropped = true;
                continue;
            }
            if (r->type == REDIS_REPLY_ERROR && !strncmp (r->str, "NOSCRIPT", 8)) {
                self->sha[calls[sent[j]].script][0] = 0; /* after a restart or failover */
                freeReplyObject (r);
                again = true;
            } else if (self->sentinels && r->type == REDIS_REPLY_ERROR &&
                       !strncmp (r->str, "READONLY", 8)) {
                freeReplyObject (r);
                dropped = true;
            } else
                replies[sent[j]] = r;
        }
        if (dropped || !ok) {
            qp_log_warn ("redis_error", "Redis connection lost in a pipeline: %s",
                         self->ctx->errstr[0] ? self->ctx->errstr : "demoted");
            qp_metric_add (self->m_lost, 1);
            qp_health_check ("redis", false);
            redisFree (self->ctx);
            self->ctx = NULL;
            lost++;
            continue;
        }
        noscript += again;
        /* Master lost before replication: run the pipeline again (guarded scripts). */
        if (s_replicated (self) < 0 && replays++ < 5)
            for (size_t j = 0; j < n_sent; j++)
                if (replies[sent[j]]) {
                    freeReplyObject (replies[sent[j]]);
                    replies[sent[j]] = NULL;
                }
    }
    free (sent);
    for (size_t i = 0; i < n; i++)
        if (!replies[i])
            return -1;
    return 0;
}

/* ---- Send now, collect later ------------------------------------------------------------ */

/* How long a collect waits for its reply: a batch script may run for seconds on a loaded
 * machine, and giving up at the usual 2 s would run it again for nothing. */
#define COLLECT_TIMEOUT_MS 30000

int qp_redis_script_send (qp_redis_t *self, qp_lua_script_t script, int nkeys, const char **keys,
                          int nargs, const char **args, const size_t *arglens)
{
    assert (script >= 0 && script < QP_LUA_COUNT);
    if (self->pending || self->stashed)
        return -1;
    if (!self->sha[script][0] && s_load (self, script) != 0)
        return -1;
    qp_redis_call_t c = {script, nkeys, keys, nargs, args, arglens};
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc ((size_t) argc * sizeof *argv);
    size_t *lens = malloc ((size_t) argc * sizeof *lens);
    assert (argv && lens);
    char nk[16];
    snprintf (nk, sizeof nk, "%d", c.nkeys);
    argv[0] = "EVALSHA", lens[0] = 7;
    argv[1] = self->sha[script], lens[1] = 40;
    argv[2] = nk, lens[2] = strlen (nk);
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i], lens[3 + i] = strlen (keys[i]);
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i], lens[3 + nkeys + i] = arglens ? arglens[i] : strlen (args[i]);
    self->sent_len = redisFormatCommandArgv (&self->sent_cmd, argc, argv, lens);
    free (argv);
    free (lens);
    if (self->sent_len < 0) {
        self->sent_cmd = NULL;
        return -1;
    }
    self->sent_script = script;
    self->pending = true;
    self->written = false;
    if (!self->ctx && s_open (self) != 0)
        return 0; /* the collect retries */
    self->round_trips++;
    qp_metric_add (self->m_trips, 1);
    /* written to the socket now (hiredis would only buffer it until the reply is read) */
    int done = 0;
    if (redisAppendFormattedCommand (self->ctx, self->sent_cmd, (size_t) self->sent_len) == REDIS_OK)
        while (!done && redisBufferWrite (self->ctx, &done) == REDIS_OK)
            ;
    if (!done) {
        qp_log_warn ("redis_error", "Redis connection lost sending a script: %s", self->ctx->errstr);
        qp_metric_add (self->m_lost, 1);
        qp_health_check ("redis", false);
        redisFree (self->ctx);
        self->ctx = NULL;
    } else
        self->written = true;
    return 0;
}

/* Reads the pending call's reply; runs the call again where qp_redis_script would. */
static redisReply *s_collect (qp_redis_t *self)
{
    char *cmd = self->sent_cmd;
    long long len = self->sent_len;
    qp_lua_script_t script = self->sent_script;
    bool written = self->written;
    self->sent_cmd = NULL;
    self->pending = self->written = false;
    redisReply *r = NULL;
    if (written && self->ctx) {
        struct timeval wait = {COLLECT_TIMEOUT_MS / 1000, 0}, usual = {2, 0};
        redisSetTimeout (self->ctx, wait);
        if (redisGetReply (self->ctx, (void **) &r) != REDIS_OK)
            r = NULL;
        if (!r) {
            qp_log_warn ("redis_error", "Redis connection lost before a script's reply: %s",
                         self->ctx->errstr);
            qp_metric_add (self->m_lost, 1);
            qp_health_check ("redis", false);
            redisFree (self->ctx);
            self->ctx = NULL;
        } else
            redisSetTimeout (self->ctx, usual);
    }
    if (r && self->sentinels && r->type == REDIS_REPLY_ERROR && !strncmp (r->str, "READONLY", 8)) {
        freeReplyObject (r); /* a demoted master: s_run finds the new one */
        r = NULL;
    }
    /* lost, not loaded (Redis restarted), or not replicated: again, synchronously */
    int replays = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (r && r->type == REDIS_REPLY_ERROR && !strncmp (r->str, "NOSCRIPT", 8)) {
            freeReplyObject (r);
            r = NULL;
            self->sha[script][0] = 0;
            if (s_load (self, script) != 0)
                break; /* the same text, so the same sha: cmd stays right */
        }
        if (r && r->type != REDIS_REPLY_ERROR && s_replicated (self) < 0 && replays++ < 5) {
            freeReplyObject (r);
            r = NULL;
            attempt--;
        }
        if (r)
            break;
        r = s_run (self, cmd, (int) len);
        if (!r)
            break;
    }
    redisFreeCommand (cmd);
    return r;
}

redisReply *qp_redis_collect (qp_redis_t *self)
{
    if (self->stashed) {
        redisReply *r = self->stash;
        self->stash = NULL;
        self->stashed = false;
        return r;
    }
    return self->pending ? s_collect (self) : NULL;
}

bool qp_redis_pending (const qp_redis_t *self)
{
    return self->pending || self->stashed;
}
