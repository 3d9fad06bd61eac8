/* hiredis wrapper. Synchronous on purpose: every step of a dossier is one atomic script,
 * and a worker handles one message at a time; scale comes from more workers. */
#include "qp_redis.h"
#include "qp_log.h"
#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static const char *s_scripts[QP_LUA_COUNT] = {
    qp_lua_dossier_create,   qp_lua_dossier_transition, qp_lua_pending_claim,
    qp_lua_envelope_reserve, qp_lua_envelope_settle,    qp_lua_eval_apply,
    qp_lua_envelope_expire,  qp_lua_funding_leg,        qp_lua_funding_plan,
    qp_lua_funding_due_claim, qp_lua_partner_report,
};

struct qp_redis {
    redisContext *ctx;
    char *host;
    int port;
    char sha[QP_LUA_COUNT][41];
    uint64_t round_trips;
};

static int s_open (qp_redis_t *self)
{
    if (self->ctx)
        redisFree (self->ctx);
    struct timeval tv = {2, 0};
    self->ctx = redisConnectWithTimeout (self->host, self->port, tv);
    if (!self->ctx || self->ctx->err) {
        qp_log_warn ("redis_unreachable", "cannot connect to Redis %s:%d: %s", self->host,
                     self->port, self->ctx ? self->ctx->errstr : "out of memory");
        if (self->ctx)
            redisFree (self->ctx);
        self->ctx = NULL;
        return -1;
    }
    redisSetTimeout (self->ctx, tv);
    return 0;
}

qp_redis_t *qp_redis_connect (const char *host, int port, int timeout_ms)
{
    qp_redis_t *self = calloc (1, sizeof *self);
    assert (self);
    self->host = strdup (host);
    self->port = port;
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
    free (self->host);
    free (self);
    *self_p = NULL;
}

uint64_t qp_redis_round_trips (const qp_redis_t *self) { return self->round_trips; }

/* Runs argv once; on a connection error reconnects and runs it again. The commands we
 * send are idempotent by construction (guarded scripts), so a retry is safe. */
redisReply *qp_redis_argv (qp_redis_t *self, int argc, const char **argv, const size_t *lens)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!self->ctx && s_open (self) != 0) {
            usleep (200000);
            continue;
        }
        self->round_trips++;
        redisReply *r = redisCommandArgv (self->ctx, argc, argv, lens);
        if (r)
            return r;
        qp_log_warn ("redis_error", "Redis connection lost: %s", self->ctx->errstr);
        redisFree (self->ctx);
        self->ctx = NULL;
    }
    return NULL;
}

redisReply *qp_redis_command (qp_redis_t *self, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!self->ctx && s_open (self) != 0) {
            usleep (200000);
            continue;
        }
        va_list ap;
        va_start (ap, fmt);
        self->round_trips++;
        redisReply *r = redisvCommand (self->ctx, fmt, ap);
        va_end (ap);
        if (r)
            return r;
        qp_log_warn ("redis_error", "Redis connection lost: %s", self->ctx->errstr);
        redisFree (self->ctx);
        self->ctx = NULL;
    }
    return NULL;
}

static int s_load (qp_redis_t *self, qp_lua_script_t script)
{
    redisReply *r = qp_redis_command (self, "SCRIPT LOAD %s", s_scripts[script]);
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
        return r;
    }
    return NULL;
}
