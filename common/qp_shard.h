/* Shards: instances of a program that all receive the same stream (the evaluation: every
 * instance subscribes to every event) split it by key, each handling the keys whose hash
 * falls on its place among the live instances. The group lives in Redis: a sorted set
 * (its key: a prefix the program's ACL allows, then the group's name) of instance ids
 * scored by when each one's last beat expires; each instance beats every second and reads
 * the group back, sorted by id, so every instance finds the same places once their views
 * agree.
 *
 * Views differ for up to a beat after an instance joins or leaves, and an instance that
 * dies keeps its place until its beat expires (QP_SHARD_TTL_MS): a key is then handled
 * by two instances or by none for a moment. Whoever uses this must stay right either way:
 * the evaluation counts each fact once whatever instance sees it (eval_apply.lua), and an
 * event nobody counted stays in the outbox, published again past its deadline
 * (docs/architecture.md). Sharding only saves the work done twice. */
#ifndef QP_SHARD_H
#define QP_SHARD_H
#include "qp_redis.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QP_SHARD_TTL_MS 5000 /* a member whose beats stopped leaves the group after this */

typedef struct qp_shard qp_shard_t;

/* A new member of group (its key: key_prefix followed by group), not yet in the group:
 * until its first beat it handles every key. */
qp_shard_t *qp_shard_new (qp_redis_t *redis, const char *key_prefix, const char *group);
/* Leaves the group at once (an orderly stop: the others take its keys at their next
 * beat) and frees. */
void qp_shard_destroy (qp_shard_t **self_p);
/* Renews this member's place and reads the group back. 0, or -1 when Redis failed (the
 * last view is kept). */
int qp_shard_beat (qp_shard_t *self, int64_t now_ms);
/* Whether this member handles key (len bytes). */
bool qp_shard_mine (const qp_shard_t *self, const void *key, size_t len);
/* The group as last read: members and this member's place (0 and 0 before a beat). */
size_t qp_shard_members (const qp_shard_t *self);
size_t qp_shard_index (const qp_shard_t *self);
#endif
