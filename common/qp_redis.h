/* Redis client: a hiredis context that reconnects, runs the project's Lua scripts by
 * name (EVALSHA, loading them on NOSCRIPT), and counts round trips. */
#ifndef QP_REDIS_H
#define QP_REDIS_H
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qp_redis qp_redis_t;

/* The embedded scripts (common/lua/NAME.lua). */
typedef enum {
    QP_LUA_DOSSIER_CREATE,
    QP_LUA_DOSSIER_TRANSITION,
    QP_LUA_PENDING_CLAIM,
    QP_LUA_ENVELOPE_RESERVE,
    QP_LUA_ENVELOPE_SETTLE,
    QP_LUA_EVAL_APPLY,
    QP_LUA_ENVELOPE_EXPIRE,
    QP_LUA_FUNDING_LEG,
    QP_LUA_FUNDING_PLAN,
    QP_LUA_FUNDING_DUE_CLAIM,
    QP_LUA_PARTNER_REPORT,
    QP_LUA_FUNDING_READ,
    QP_LUA_PHQ_CLAIM,
    QP_LUA_FOLLOW_UP_STORE,
    QP_LUA_COUNT
} qp_lua_script_t;

/* Connects (retrying up to timeout_ms). NULL on failure, with the reason logged. */
qp_redis_t *qp_redis_connect (const char *host, int port, int timeout_ms);
/* Same, logged in as an ACL user (AUTH user password); qp_redis_connect takes them from
 * the redis-user and redis-password settings (QP_REDIS_USER, QP_REDIS_PASSWORD). user NULL
 * and password set: the default user's password (requirepass). */
qp_redis_t *qp_redis_connect_as (const char *host, int port, const char *user,
                                 const char *password, int timeout_ms);
void qp_redis_destroy (qp_redis_t **self_p);

/* Runs a command (hiredis format). Reconnects once on a connection error. Returns the
 * reply (freeReplyObject it) or NULL when Redis is unreachable. A Redis error reply is
 * returned as a REDIS_REPLY_ERROR reply. */
redisReply *qp_redis_command (qp_redis_t *self, const char *fmt, ...);
redisReply *qp_redis_argv (qp_redis_t *self, int argc, const char **argv, const size_t *lens);

/* A script's name (its file in common/lua, without .lua) and the text Redis runs (with
 * its --#include helpers expanded): what tools use to tell scripts apart by SHA. */
const char *qp_redis_script_name (qp_lua_script_t script);
const char *qp_redis_script_text (qp_lua_script_t script);

/* EVALSHA script with keys then args (binary-safe: lens may be NULL for C strings). */
redisReply *qp_redis_script (qp_redis_t *self, qp_lua_script_t script, int nkeys,
                             const char **keys, int nargs, const char **args, const size_t *arglens);

/* One script call of a pipeline (arguments as qp_redis_script). */
typedef struct {
    qp_lua_script_t script;
    int nkeys;
    const char **keys;
    int nargs;
    const char **args;
    const size_t *arglens;
} qp_redis_call_t;

/* Runs n script calls in one round trip (pipelined EVALSHAs): each script is atomic on
 * its own, nothing is atomic across them. replies[i] is what qp_redis_script would have
 * returned for calls[i] (NULL: Redis unreachable). A call whose script was not loaded
 * (NOSCRIPT: it did not run) or whose connection was lost before its reply is sent again,
 * like qp_redis_script does, so only guarded (idempotent) scripts belong here. Counts one
 * round trip per pipeline sent. Returns 0, or -1 when some reply is NULL. */
int qp_redis_scripts (qp_redis_t *self, const qp_redis_call_t *calls, size_t n,
                      redisReply **replies);

/* One script call sent without waiting for its reply, read later by qp_redis_collect: the
 * caller works (or Redis runs other clients) meanwhile. One call at a time: collect it
 * before sending another (-1 when one is still uncollected). Any other call on this
 * connection before the collect (a health PING, a query, the sweeper) first reads the
 * pending reply and keeps it for qp_redis_collect, so it never takes that reply for its
 * own. Returns 0 (even with Redis unreachable: the collect retries). */
int qp_redis_script_send (qp_redis_t *self, qp_lua_script_t script, int nkeys, const char **keys,
                          int nargs, const char **args, const size_t *arglens);
/* The reply of the call qp_redis_script_send sent: what qp_redis_script would have
 * returned for it (a call whose connection was lost before its reply, or whose script was
 * not loaded, is run again as qp_redis_script does, so only guarded scripts belong here).
 * NULL when Redis is unreachable or nothing was sent. */
redisReply *qp_redis_collect (qp_redis_t *self);
/* True while a call sent has not been collected. */
bool qp_redis_pending (const qp_redis_t *self);

/* Round trips made so far (for metrics and benchmarks). */
uint64_t qp_redis_round_trips (const qp_redis_t *self);
#endif
