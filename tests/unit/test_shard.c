/* qp_shard: instances split a stream by key through a group in a real Redis. */
#include "qp_shard.h"
#include "qp_test_redis_fixture.h"
#include "qp_test_suite.h"
#include <stdio.h>

#define PREFIX "qp:eval:shards:"
#define KEYS 3000

/* Which of the n members handles each of KEYS dossier-like keys: every key exactly one,
 * and each member a fair share. */
static void s_partition (qp_shard_t **members, size_t n)
{
    size_t share[8] = {0};
    for (int k = 0; k < KEYS; k++) {
        char key[40];
        snprintf (key, sizeof key, "%032x", (unsigned) (k * 2654435761u));
        size_t owners = 0;
        for (size_t i = 0; i < n; i++)
            if (qp_shard_mine (members[i], key, strlen (key))) {
                owners++;
                share[i]++;
            }
        ck_assert_msg (owners == 1, "key %s handled by %zu of %zu members", key, owners, n);
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_msg (share[i] > KEYS / n / 2, "member %zu handles %zu of %d keys", i, share[i],
                       KEYS);
}

START_TEST (alone_handles_everything)
{
    qp_shard_t *a = qp_shard_new (r, PREFIX, "evaluation");
    ck_assert_ptr_nonnull (a);
    ck_assert (qp_shard_mine (a, "x", 1)); /* before its first beat */
    ck_assert_int_eq (qp_shard_beat (a, 1000000), 0);
    ck_assert_uint_eq (qp_shard_members (a), 1);
    for (int k = 0; k < 100; k++) {
        char key[16];
        snprintf (key, sizeof key, "d%d", k);
        ck_assert (qp_shard_mine (a, key, strlen (key)));
    }
    qp_shard_destroy (&a);
}
END_TEST

START_TEST (members_split_and_take_over)
{
    qp_shard_t *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = qp_shard_new (r, PREFIX, "evaluation");
    int64_t now = 1000000;
    for (int round = 0; round < 2; round++) /* the second round sees everyone */
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq (qp_shard_beat (m[i], now), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq (qp_shard_members (m[i]), 3);
    s_partition (m, 3);

    /* Another group is another split. */
    qp_shard_t *other = qp_shard_new (r, PREFIX, "other");
    ck_assert_int_eq (qp_shard_beat (other, now), 0);
    ck_assert_uint_eq (qp_shard_members (other), 1);
    qp_shard_destroy (&other);

    /* An orderly stop: the two others split everything at their next beat. */
    qp_shard_destroy (&m[2]);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq (qp_shard_beat (m[i], now + 1000), 0);
        ck_assert_uint_eq (qp_shard_members (m[i]), 2);
    }
    s_partition (m, 2);

    /* A member that stops beating (killed) leaves once its beat expired. */
    ck_assert_int_eq (qp_shard_beat (m[0], now + 1000 + QP_SHARD_TTL_MS + 1), 0);
    ck_assert_uint_eq (qp_shard_members (m[0]), 1);
    s_partition (m, 1);
    /* ...and comes back with its next beat. */
    ck_assert_int_eq (qp_shard_beat (m[1], now + 1000 + QP_SHARD_TTL_MS + 2), 0);
    ck_assert_int_eq (qp_shard_beat (m[0], now + 1000 + QP_SHARD_TTL_MS + 3), 0);
    s_partition (m, 2);
    for (int i = 0; i < 2; i++)
        qp_shard_destroy (&m[i]);
}
END_TEST

START_TEST (redis_down_keeps_the_last_view)
{
    qp_shard_t *m[2];
    for (int i = 0; i < 2; i++)
        m[i] = qp_shard_new (r, PREFIX, "evaluation");
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq (qp_shard_beat (m[i], 1000000), 0);
    qp_test_redis_stop (&server);
    ck_assert_int_eq (qp_shard_beat (m[0], 1001000), -1);
    ck_assert_uint_eq (qp_shard_members (m[0]), 2);
    s_partition (m, 2);
    for (int i = 0; i < 2; i++)
        qp_shard_destroy (&m[i]); /* its ZREM fails: nothing to assert but no crash */
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("shard");
    TCase *tc = tcase_create ("shard");
    tcase_set_timeout (tc, 60);
    tcase_add_checked_fixture (tc, qp_test_redis_setup, qp_test_redis_teardown);
    tcase_add_test (tc, alone_handles_everything);
    tcase_add_test (tc, members_split_and_take_over);
    tcase_add_test (tc, redis_down_keeps_the_last_view);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
