/* Redis Sentinel failover under load, with real processes: a master (the stack's
 * redis-server), one replica and three Sentinels on loopback; the services find the
 * master through Sentinel (QP_REDIS_SENTINELS). The master is killed (SIGKILL) in the
 * middle of a run; every dossier intake acknowledged must still reach a terminal state,
 * on the promoted replica. */
#include "qp_test.h"
#include "qp_test_sample.h"
#include "qp_test_http.h"
#include "qp_test_suite.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <string.h>

#define N_DOSSIERS 400
#define BATCH 100

typedef qp_test_sample_t sample_t;

static void s_sample (sample_t *s, int i) { qp_test_sample (s, "test-ops", "ops", i); }

static char *s_info_field (const char *host, int port, const char *section, const char *field)
{
    redisContext *c = redisConnect (host, port);
    char *out = NULL;
    if (c && !c->err) {
        redisReply *r = redisCommand (c, "INFO %s", section);
        if (r && r->type == REDIS_REPLY_STRING) {
            char *p = strstr (r->str, field);
            if (p) {
                p += strlen (field);
                out = strndup (p, strcspn (p, "\r\n"));
            }
        }
        if (r)
            freeReplyObject (r);
    }
    if (c)
        redisFree (c);
    return out;
}

static bool s_field_is (const char *host, int port, const char *section, const char *field,
                        const char *want, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        char *v = s_info_field (host, port, section, field);
        bool ok = v && !strcmp (v, want);
        free (v);
        if (ok)
            return true;
        qp_test_sleep_ms (100);
    }
    return false;
}

/* Submits [from, to) and returns how many intake acknowledged (the others were answered
 * with an error while Redis was switching, which a client retries). */
static int s_submit (const char *work, int from, int to, bool *accepted)
{
    qp_test_client_t *client = qp_test_client_new (work);
    qp_message_t replies[BATCH];
    int n_ok = 0;
    for (int base = from; base < to; base += BATCH) {
        int n = to - base < BATCH ? to - base : BATCH;
        qp_test_sample_send (client, "test-ops", "ops", NULL, base, (size_t) n, 60000, replies);
        for (int j = 0; j < n; j++) {
            if (replies[j].descriptor == &qp__v1__submit_dossier_reply__descriptor &&
                ((Qp__V1__SubmitDossierReply *) replies[j].payload)->accepted) {
                accepted[base + j] = true;
                n_ok++;
            }
            qp_message_clear (&replies[j]);
        }
    }
    qp_test_client_destroy (&client);
    return n_ok;
}

static int s_state (const char *work, int i)
{
    sample_t s;
    s_sample (&s, i);
    /* The dossier id derives from (channel, key): ask intake by submitting nothing but
     * the status query of the id it gave; we kept only acceptance, so resubmit (an
     * idempotent create) to learn the id. */
    Qp__V1__SubmitDossier *payload = &s.submit;
    qp_meta_t meta = qp_test_sample_meta (&s);
    qp_message_t reply = {0};
    qp_error_t err;
    int state = -1;
    if (qp_test_call (work, "intake", &payload->base, &meta, 10000, &reply, &err) == 0 &&
        reply.descriptor == &qp__v1__submit_dossier_reply__descriptor) {
        char id[QP_ID_HEX + 1];
        snprintf (id, sizeof id, "%s", ((Qp__V1__SubmitDossierReply *) reply.payload)->dossier_id);
        qp_message_clear (&reply);
        Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
        q.dossier_id = id;
        if (qp_test_call (work, "intake", &q.base, NULL, 10000, &reply, &err) == 0 &&
            reply.descriptor == &qp__v1__dossier_status_reply__descriptor &&
            ((Qp__V1__DossierStatusReply *) reply.payload)->found)
            state = ((Qp__V1__DossierStatusReply *) reply.payload)->state;
    }
    qp_message_clear (&reply);
    return state;
}

START_TEST (test_master_killed_mid_run)
{
    char sentinels[256] = "QP_REDIS_SENTINELS=";

    /* Master: a plain redis-server; replica and Sentinels beside it. */
    qp_test_redis_t *master = qp_test_redis_start ();
    ck_assert_ptr_nonnull (master);
    char *dir = qp_test_tmpdir ("qp-sentinel");
    int replica_port = qp_test_free_port ();
    char rport[16], mport[16];
    snprintf (rport, sizeof rport, "%d", replica_port);
    snprintf (mport, sizeof mport, "%d", master->port);
    const char *rargs[] = {"--port", rport, "--bind", "127.0.0.1", "--dir", dir, "--appendonly",
                           "yes", "--replicaof", "127.0.0.1", mport, "--save", "",
                           "--hash-max-listpack-value", "2048", NULL}; /* as the master */
    qp_test_proc_t *replica = qp_test_spawn ("/usr/bin/redis-server", NULL, rargs, dir);
    ck_assert_ptr_nonnull (replica);
    ck_assert (s_field_is ("127.0.0.1", replica_port, "replication", "master_link_status:", "up",
                           15000));
    qp_test_proc_t *sentinel[3];
    for (int i = 0; i < 3; i++) {
        int port = qp_test_free_port ();
        char conf[1100];
        snprintf (conf, sizeof conf, "%s/sentinel-%d.conf", dir, i);
        FILE *f = fopen (conf, "w");
        fprintf (f,
                 "port %d\nbind 127.0.0.1\ndir %s\n"
                 "sentinel monitor qp 127.0.0.1 %d 2\n"
                 "sentinel down-after-milliseconds qp 1000\n"
                 "sentinel failover-timeout qp 5000\n"
                 "sentinel parallel-syncs qp 1\n",
                 port, dir, master->port);
        fclose (f);
        const char *sargs[] = {conf, "--sentinel", NULL};
        sentinel[i] = qp_test_spawn ("/usr/bin/redis-server", NULL, sargs, NULL);
        ck_assert_ptr_nonnull (sentinel[i]);
        ck_assert (qp_test_redis_ping ("127.0.0.1", port, 10000));
        snprintf (sentinels + strlen (sentinels), sizeof sentinels - strlen (sentinels), "%s127.0.0.1:%d",
                  i ? "," : "", port);
    }

    /* The stack's own Redis is not used: every service asks the Sentinels. */
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), sentinels,
                         "QP_REDIS_MASTER_NAME=qp", "QP_REDIS_HOST=192.0.2.1", NULL};
    static const char *const programs[] = {"intake", "eligibility", "eligibility", "funding",
                                           "evaluation", "partner-anct", "partner-anru",
                                           "partner-bdt", "partner-bpifrance", NULL};
    static const char *const ready[] = {"intake", "eligibility", "funding", "evaluation", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env,
                                 .timeout_ms = 30000};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    qp_test_sleep_ms (1000); /* partner components announce themselves */

    static bool accepted[N_DOSSIERS];
    int half = N_DOSSIERS / 2;
    ck_assert_int_eq (s_submit (stack->work, 0, half, accepted), half);
    /* Kill the master while the first half is still being decided and funded. */
    qp_test_redis_down (master, SIGKILL);
    int acked = half + s_submit (stack->work, half, N_DOSSIERS, accepted);
    ck_assert (s_field_is ("127.0.0.1", replica_port, "replication", "role:", "master", 30000));

    /* Every acknowledged dossier reaches a terminal state on the new master. */
    int terminal = 0, waited = 0;
    for (; waited < 120000 && terminal < acked; waited += 500) {
        terminal = 0;
        for (int i = 0; i < N_DOSSIERS; i++)
            if (accepted[i])
                terminal += s_state (stack->work, i) >= QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
        if (terminal < acked)
            qp_test_sleep_ms (500);
    }
    if (terminal < acked)
        qp_test_stack_dump (stack, 20);
    ck_assert_msg (terminal == acked, "%d of %d acknowledged dossiers reached a terminal state",
                   terminal, acked);
    ck_assert_int_ge (acked, half);
    ck_assert_int_gt (qp_test_proc_log_count (stack->procs[0], "redis_master"), 0);

    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
    for (int i = 0; i < 3; i++)
        qp_test_proc_destroy (&sentinel[i]);
    qp_test_proc_destroy (&replica);
    qp_test_redis_stop (&master);
    qp_test_rmtree (dir);
    free (dir);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("ops_sentinel");
    TCase *tc = tcase_create ("failover");
    tcase_set_timeout (tc, 600);
    tcase_add_test (tc, test_master_killed_mid_run);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
