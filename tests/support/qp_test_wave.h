/* Waves of the sample mix (qp_test_sample.h) through a running stack with an evaluation,
 * and what the evaluation must then report: for the tests that check it counts every
 * dossier exactly once (instances sharing the events, an instance frozen or killed). */
#ifndef QP_TEST_WAVE_H
#define QP_TEST_WAVE_H
#include "qp/v1/evaluation.pb-c.h"
#include "qp_test_dossier.h"
#include "qp_test_sample.h"

/* Submits dossiers [from, to) of the sample mix through intake (channel) and waits until
 * each is terminal in redis. */
static inline void qp_test_wave (const char *work, qp_redis_t *redis, const char *channel,
                                 const char *prefix, int from, int to)
{
    int n = to - from;
    char (*ids)[QP_ID_HEX + 1] = calloc ((size_t) n, sizeof *ids);
    char why[256] = "";
    ck_assert_msg (qp_test_sample_submit_all (work, channel, prefix, from, to, 50, 15000, ids,
                                              why, sizeof why) < 0,
                   "not accepted: %s", why);
    for (int i = 0; i < n; i++)
        ck_assert_msg (qp_store_state_terminal (qp_test_wait_terminal (redis, ids[i], 60000)),
                       "dossier %s not terminal", ids[i]);
    free (ids);
}

/* Waits (bounded) until the evaluation has counted and acknowledged every event. */
static inline void qp_test_wait_outbox_empty (qp_redis_t *redis, int timeout_ms)
{
    long long left = -1;
    for (int waited = 0; waited < timeout_ms; waited += 200) {
        left = qp_store_outbox_size (redis);
        if (left == 0)
            return;
        qp_test_sleep_ms (200);
    }
    ck_abort_msg ("%lld events still in the outbox", left);
}

/* The programme's totals as the evaluation reports them, for `submitted` dossiers of the
 * sample mix: 1 in 10 not eligible, 1 in 10 declined by Bpifrance's component, the rest
 * funded; every one of them closed. */
static inline void qp_test_expect_wave_totals (const char *work, uint64_t submitted)
{
    Qp__V1__IndicatorQuery q = QP__V1__INDICATOR_QUERY__INIT;
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (work, "evaluation", &q.base, NULL, 10000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__indicator_report__descriptor);
    const Qp__V1__IndicatorReport *r = (const void *) reply.payload;
    ck_assert_ptr_nonnull (r->total);
    const Qp__V1__Figures *f = r->total->figures;
    ck_assert_uint_eq (f->submitted, submitted);
    ck_assert_uint_eq (f->not_eligible, submitted / 10);
    ck_assert_uint_eq (f->funded, submitted * 8 / 10);
    ck_assert_uint_eq (f->closed, submitted);
    qp_message_clear (&reply);
}
#endif
