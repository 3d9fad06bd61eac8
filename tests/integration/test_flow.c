/* End to end, with real processes: redis-server, qp-bus, the four services and the four
 * partner components on ephemeral loopback ports. 1,000 dossiers of a known mix are
 * submitted; every one must reach exactly one terminal state, the right one, and the
 * evaluation counters and the budget envelope must match what was submitted. */
#include "qp_test.h"
#include "qp_test_sample.h"
#include "qp_test_suite.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <string.h>

#define N_DOSSIERS 1000
#define BATCH 250

static const char *const s_programs[] = {"intake",         "eligibility",    "funding",
                                         "evaluation",     "partner-anct",   "partner-anru",
                                         "partner-bdt",    "partner-bpifrance", NULL};
static const char *const s_ready[] = {"intake",     "eligibility",    "funding", "evaluation",
                                      "partner.ANCT.anct-default", "partner.ANRU.anru-default",
                                      "partner.BANQUE_DES_TERRITOIRES.bdt-default",
                                      "partner.BPIFRANCE.bpifrance-default", NULL};

/* The mix: i % 10 == 0 asks 20,000 € (over the PHQ maximum: NOT_ELIGIBLE), i % 10 == 1
 * brings less than 10 % of the need (Bpifrance's default component declines), the rest
 * is funded with the amount rounded down to the hundred euros. */
typedef enum { EXPECT_FUNDED, EXPECT_NOT_ELIGIBLE, EXPECT_DECLINED } expect_t;

static expect_t s_expect (int i)
{
    return i % 10 == 0 ? EXPECT_NOT_ELIGIBLE : i % 10 == 1 ? EXPECT_DECLINED : EXPECT_FUNDED;
}

static int64_t s_amount (int i) { return qp_test_sample_amount (i); }

static qp_test_stack_t *s_start (const char *const *programs, const char *const *ready)
{
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    return qp_test_stack_start (&opts);
}

/* Submits dossiers [from, to) in batches; every one must be accepted. */
static void s_submit (qp_test_stack_t *stack, int from, int to, char ids[][QP_ID_HEX + 1])
{
    char why[512];
    int bad = qp_test_sample_submit_all (stack->work, "test-flow", "flow", from, to, BATCH, 30000,
                                         ids, why, sizeof why);
    ck_assert_msg (bad < 0, "dossier %d: %s", bad, why);
}

static Qp__V1__TerritoryFigures *s_report (qp_test_stack_t *stack, qp_message_t *reply)
{
    Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
    qp_error_t err;
    if (qp_test_call (stack->work, "evaluation", &q.base, NULL, 5000, reply, &err) != 0)
        return NULL;
    if (reply->descriptor != &qp__v1__report_reply__descriptor)
        return NULL;
    return ((Qp__V1__ReportReply *) reply->payload)->total;
}

START_TEST (test_thousand_dossiers_end_to_end)
{
    qp_test_stack_t *stack = s_start (s_programs, s_ready);
    ck_assert_ptr_nonnull (stack);
    static char ids[N_DOSSIERS][QP_ID_HEX + 1];
    s_submit (stack, 0, N_DOSSIERS, ids);
    if (!qp_test_wait_closed (stack->work, N_DOSSIERS, 120000)) {
        qp_test_stack_dump (stack, 30);
        ck_abort_msg ("not every dossier was closed");
    }

    /* Each dossier: exactly one terminal state, the expected one, and a history that
     * starts with RECEIVED and ends in it. */
    int64_t expected_committed = 0;
    uint64_t expected_jobs = 0;
    int counts[3] = {0};
    qp_test_client_t *client = qp_test_client_new (stack->work);
    for (int i = 0; i < N_DOSSIERS; i++) {
        qp_message_t reply;
        Qp__V1__DossierStatusReply *s = qp_test_dossier_status (client, ids[i], &reply);
        ck_assert_msg (s, "dossier %s: no status", ids[i]);
        expect_t e = s_expect (i);
        Qp__V1__DossierState want = e == EXPECT_FUNDED        ? QP__V1__DOSSIER_STATE__FUNDED
                                    : e == EXPECT_DECLINED     ? QP__V1__DOSSIER_STATE__DECLINED
                                                               : QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
        ck_assert_msg (s->state == want, "dossier %d (%s) is in state %d, expected %d", i, ids[i],
                       s->state, want);
        ck_assert_uint_ge (s->n_history, 2);
        ck_assert_int_eq (s->history[0]->to, QP__V1__DOSSIER_STATE__RECEIVED);
        ck_assert_int_eq (s->history[s->n_history - 1]->to, want);
        int terminal = 0;
        for (size_t h = 0; h < s->n_history; h++)
            terminal += s->history[h]->to >= QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
        ck_assert_int_eq (terminal, 1);
        ck_assert_ptr_nonnull (s->eligibility);
        if (e == EXPECT_FUNDED) {
            ck_assert_uint_eq (s->n_settlements, 1);
            int64_t granted = s_amount (i) / 10000 * 10000;
            ck_assert_int_eq (s->settlements[0]->amount_cents, granted);
            expected_committed += granted;
        }
        counts[e]++;
        expected_jobs += 1 + i % 3;
        qp_message_clear (&reply);
    }
    qp_test_client_destroy (&client);

    /* The evaluation counts what was submitted, once. */
    qp_message_t reply = {0};
    Qp__V1__TerritoryFigures *t = s_report (stack, &reply);
    ck_assert_ptr_nonnull (t);
    ck_assert_uint_eq (t->submitted, N_DOSSIERS);
    ck_assert_uint_eq (t->closed, N_DOSSIERS);
    ck_assert_uint_eq (t->funded, (uint64_t) counts[EXPECT_FUNDED]);
    ck_assert_uint_eq (t->declined, (uint64_t) counts[EXPECT_DECLINED]);
    ck_assert_uint_eq (t->not_eligible, (uint64_t) counts[EXPECT_NOT_ELIGIBLE]);
    ck_assert_uint_eq (t->eligible, (uint64_t) (counts[EXPECT_FUNDED] + counts[EXPECT_DECLINED]));
    ck_assert_uint_eq (t->funding_requested,
                       (uint64_t) (counts[EXPECT_FUNDED] + counts[EXPECT_DECLINED]));
    ck_assert_uint_eq (t->unfunded, 0);
    ck_assert_int_eq (t->committed_cents, expected_committed);
    ck_assert_uint_eq (t->jobs_planned, expected_jobs);
    Qp__V1__ReportReply *rr = (Qp__V1__ReportReply *) reply.payload;
    uint64_t sum = 0;
    for (size_t i = 0; i < rr->n_territories; i++)
        sum += rr->territories[i]->submitted;
    ck_assert_uint_eq (sum, N_DOSSIERS);
    qp_message_clear (&reply);

    /* The envelope's books balance: committed as reported, nothing left reserved. */
    redisContext *rc = redisConnect (stack->redis->host, stack->redis->port);
    redisReply *env = redisCommand (rc, "HMGET qp:envelope:{phq} committed reserved projects");
    ck_assert_int_eq (env->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq (atoll (env->element[0]->str), expected_committed);
    ck_assert_int_eq (atoll (env->element[1]->str), 0);
    ck_assert_int_eq (atoll (env->element[2]->str), counts[EXPECT_FUNDED]);
    freeReplyObject (env);
    redisReply *pending = redisCommand (rc, "EVAL %s 0",
                                        "return redis.call('ZCARD','qp:pending:RECEIVED') + "
                                        "redis.call('ZCARD','qp:pending:ELIGIBLE') + "
                                        "redis.call('ZCARD','qp:pending:FUNDING_REQUESTED')");
    ck_assert_int_eq (pending->integer, 0);
    freeReplyObject (pending);
    redisFree (rc);

    /* Submitting the same dossiers again changes nothing. */
    s_submit (stack, 0, 100, NULL);
    qp_test_sleep_ms (500);
    t = s_report (stack, &reply);
    ck_assert_ptr_nonnull (t);
    ck_assert_uint_eq (t->submitted, N_DOSSIERS);
    qp_message_clear (&reply);

    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

/* Lines of a program's log saying how many messages it handled ("handled N messages"). */
static long s_handled (const qp_test_proc_t *p)
{
    FILE *f = fopen (p->log_path, "r");
    long handled = -1;
    char line[2048];
    while (f && fgets (line, sizeof line, f)) {
        char *h = strstr (line, "handled ");
        if (h && strstr (line, "service_stopping"))
            handled = atol (h + 8);
    }
    if (f)
        fclose (f);
    return handled;
}

START_TEST (test_second_instance_shares_the_work)
{
    static const char *const programs[] = {"intake", "eligibility", "eligibility", "funding",
                                           "evaluation", "partner-bpifrance", NULL};
    static const char *const ready[] = {"intake", "eligibility", "funding", "evaluation",
                                        "partner.BPIFRANCE.bpifrance-default", NULL};
    qp_test_stack_t *stack = s_start (programs, ready);
    ck_assert_ptr_nonnull (stack);
    ck_assert (qp_test_bus_wait_workers (stack->work, "eligibility", 2, 10000));
    s_submit (stack, 0, 200, NULL);
    ck_assert (qp_test_wait_closed (stack->work, 200, 60000));
    qp_test_proc_t *a = stack->procs[1], *b = stack->procs[2];
    ck_assert_str_eq (a->name, b->name);
    int status;
    ck_assert (qp_test_proc_stop (a, &status));
    ck_assert_int_eq (status, 0);
    ck_assert (qp_test_proc_stop (b, &status));
    ck_assert_int_eq (status, 0);
    long ha = s_handled (a), hb = s_handled (b);
    ck_assert_msg (ha > 0 && hb > 0, "work not shared: %ld and %ld", ha, hb);
    ck_assert_int_eq (ha + hb, 200);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("flow");
    TCase *tc = tcase_create ("end_to_end");
    tcase_set_timeout (tc, 600);
    tcase_add_test (tc, test_thousand_dossiers_end_to_end);
    tcase_add_test (tc, test_second_instance_shares_the_work);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
