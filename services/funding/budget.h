/* Budget envelopes in Redis: a national envelope per scheme and drawing rights per
 * territory, reserve -> commit | release, each step one Lua script keyed by (dossier,
 * scheme), so a retry never reserves twice. Keys (one hash tag per scheme):
 *
 *   qp:envelope:{S}            hash total, reserved, committed, available, max_projects, projects
 *   qp:envelope:{S}:t:TERR     hash total, reserved, committed, available (drawing right)
 *   qp:envelope:{S}:ledger:B   hash dossier -> reserved:N[@TERR] | committed:N[@TERR] |
 *                              released:N[@TERR] | refused:0, the ledger in QP_BUCKETS
 *                              buckets, B = qp_bucket_of (dossier) (listpacks, qp_bucket.h)
 *   qp:envelope:{S}:ledger     the same in one hash, as stored before issue 8: read when a
 *                              dossier's bucket has no entry, never written
 *   qp:envelope:{S}:deadlines  sorted set dossier -> reservation deadline (ms)
 *
 * reserved + committed + available = total, in every hash, after every script. */
#ifndef FUNDING_BUDGET_H
#define FUNDING_BUDGET_H
#include "qp_message.h"
#include "qp_redis.h"

typedef enum {
    BUDGET_RESERVED,     /* entry "reserved:N" (now or by an earlier call) */
    BUDGET_REFUSED,      /* not enough left in the envelope or the territory's right */
    BUDGET_NO_ENVELOPE,  /* the scheme has no national envelope */
    BUDGET_SETTLED,      /* already committed or released (entry tells which) */
    BUDGET_ERROR,        /* Redis unreachable */
} budget_result_t;

/* Creates the envelopes and drawing rights of envelopes.json that Redis does not hold
 * yet (never resets one). Returns 0, or -1 with err (file, entry, why). */
int budget_load (qp_redis_t *redis, const char *path, qp_error_t *err);

/* One reservation or settlement of a batch. */
typedef struct {
    const char *scheme, *dossier;
    const char *territory;   /* reserve: draws on its right when it has one (NULL: none) */
    int64_t amount;          /* reserve: asked; settle: to commit (≤ the reservation) */
    int64_t deadline_ms;     /* reserve: released by the sweeper after this */
    bool commit;             /* settle: commit, else release */
    budget_result_t result;  /* out */
    char entry[96];          /* out: the ledger entry ("reserved:N", "committed:N"...) */
} budget_op_t;

/* Reserves for every (dossier, scheme) of ops, in one round trip. Returns 0, or -1 when
 * Redis did not answer (every result BUDGET_ERROR). */
int budget_reserve_many (qp_redis_t *redis, budget_op_t *ops, size_t n);

/* Commits or releases every op's reservation in one round trip (result BUDGET_SETTLED,
 * entry "committed:N" / "released:N", now or before; BUDGET_NO_ENVELOPE without one). */
int budget_settle_many (qp_redis_t *redis, budget_op_t *ops, size_t n);

/* Releases up to limit reservations of scheme past their deadline. Returns how many. */
int budget_expire (qp_redis_t *redis, const char *scheme, int64_t now_ms, int limit);

/* The amount in a ledger entry ("committed:1500@roubaix" -> 1500). */
int64_t budget_entry_amount (const char *entry);
#endif
