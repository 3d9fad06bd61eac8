/* Shards: see qp_shard.h. */
#include "qp_shard.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qp_shard {
    qp_redis_t *redis;
    char key[128];
    char id[40];   /* this member: a random id, new at every start */
    size_t members; /* 0: not read yet (every key is ours) */
    size_t index;
    qp_metric_t *m_members, *m_index;
};

qp_shard_t *qp_shard_new (qp_redis_t *redis, const char *key_prefix, const char *group)
{
    qp_shard_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->redis = redis;
    snprintf (self->key, sizeof self->key, "%s%s", key_prefix, group);
    zuuid_t *uuid = zuuid_new ();
    snprintf (self->id, sizeof self->id, "%s", zuuid_str_canonical (uuid));
    zuuid_destroy (&uuid);
    char labels[160];
    qp_metrics_labels (labels, sizeof labels, "group", group, NULL);
    self->m_members = qp_metrics_gauge ("qp_shard_members",
                                        "live instances sharing the stream (the last view)",
                                        labels);
    self->m_index = qp_metrics_gauge ("qp_shard_index", "this instance's place among them",
                                      labels);
    return self;
}

void qp_shard_destroy (qp_shard_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_shard_t *self = *self_p;
    redisReply *r = qp_redis_command (self->redis, "ZREM %s %s", self->key, self->id);
    if (r)
        freeReplyObject (r);
    free (self);
    *self_p = NULL;
}

int qp_shard_beat (qp_shard_t *self, int64_t now_ms)
{
    redisReply *r = qp_redis_command (self->redis, "ZADD %s %lld %s", self->key,
                                      (long long) (now_ms + QP_SHARD_TTL_MS), self->id);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r)
        freeReplyObject (r);
    if (!ok)
        return -1;
    r = qp_redis_command (self->redis, "ZREMRANGEBYSCORE %s -inf (%lld", self->key,
                          (long long) now_ms);
    if (r)
        freeReplyObject (r);
    r = qp_redis_command (self->redis, "ZRANGE %s 0 -1", self->key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject (r);
        return -1;
    }
    /* Our place is the number of ids before ours: ordered by id, not by score (when each
     * beat expires), so that every member finds the same places. */
    size_t n = r->elements, index = 0;
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        int c = strcmp (r->element[i]->str, self->id);
        index += c < 0;
        found |= c == 0;
    }
    freeReplyObject (r);
    if (!found) /* expired between our ZADD and the read (a stalled beat): next beat */
        return -1;
    if (n != self->members || index != self->index)
        qp_log_info ("shard_view", "%s: member %zu of %zu", self->key, index + 1, n);
    self->members = n;
    self->index = index;
    qp_metric_set (self->m_members, (double) n);
    qp_metric_set (self->m_index, (double) index);
    return 0;
}

bool qp_shard_mine (const qp_shard_t *self, const void *key, size_t len)
{
    if (self->members <= 1)
        return true;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: cheap, and the same in every member */
    const unsigned char *p = key;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h % self->members == self->index;
}

size_t qp_shard_members (const qp_shard_t *self) { return self->members; }
size_t qp_shard_index (const qp_shard_t *self) { return self->index; }
