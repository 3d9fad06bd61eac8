/* Least privilege in Redis (docs/security.md): each service logs in as its own ACL user
 * from data/redis/acl.conf and is refused outside its commands and keys; the whole flow
 * runs with those users; partner components never reach Redis. */
#include "qp_bucket.h"
#include "qp_date.h"
#include "qp_redis.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_DOSSIERS 40

/* Loads data/redis/acl.conf into a running Redis with ACL SETUSER, each user given the
 * password "pw-NAME" (a deployment appends its own the same way). Returns the users. */
static int s_load_acl (qp_test_redis_t *redis)
{
    char path[1024], line[2048];
    snprintf (path, sizeof path, "%s/data/redis/acl.conf", qp_test_source_dir ());
    FILE *f = fopen (path, "r");
    ck_assert_msg (f, "cannot read %s", path);
    qp_redis_t *admin = qp_redis_connect (redis->host, redis->port, 2000);
    ck_assert_ptr_nonnull (admin);
    int users = 0;
    while (fgets (line, sizeof line, f)) {
        if (strncmp (line, "user ", 5))
            continue;
        const char *argv[64];
        int argc = 0;
        argv[argc++] = "ACL";
        argv[argc++] = "SETUSER";
        char *save = NULL, *name = NULL;
        for (char *tok = strtok_r (line + 5, " \t\n", &save); tok && argc < 62;
             tok = strtok_r (NULL, " \t\n", &save)) {
            if (!name)
                name = tok;
            argv[argc++] = tok;
        }
        char password[96];
        snprintf (password, sizeof password, ">pw-%s", name);
        argv[argc++] = password;
        redisReply *r = qp_redis_argv (admin, argc, argv, NULL);
        ck_assert_msg (r && r->type == REDIS_REPLY_STATUS, "ACL SETUSER %s: %s", name,
                       r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        freeReplyObject (r);
        users++;
    }
    fclose (f);
    qp_redis_destroy (&admin);
    return users;
}

static qp_redis_t *s_as (qp_test_redis_t *redis, const char *user)
{
    char password[96];
    snprintf (password, sizeof password, "pw-%s", user);
    return qp_redis_connect_as (redis->host, redis->port, user, password, 1000);
}

/* The reply is a NOPERM refusal. */
static void s_refused (redisReply *r, const char *what)
{
    ck_assert_msg (r && r->type == REDIS_REPLY_ERROR && strstr (r->str, "NOPERM"),
                   "%s: expected NOPERM, got %s", what,
                   !r ? "no reply" : r->type == REDIS_REPLY_ERROR ? r->str : "success");
    freeReplyObject (r);
}

static void s_allowed (redisReply *r, const char *what)
{
    ck_assert_msg (r && r->type != REDIS_REPLY_ERROR, "%s: refused: %s", what,
                   r ? r->str : "no reply");
    freeReplyObject (r);
}

START_TEST (test_each_service_refused_outside_its_permissions)
{
    qp_test_redis_t *redis = qp_test_redis_start ();
    ck_assert_ptr_nonnull (redis);
    ck_assert_int_eq (s_load_acl (redis), 5);

    /* intake stores a dossier through the real script... */
    qp_redis_t *intake = s_as (redis, "intake");
    ck_assert_ptr_nonnull (intake);
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    d.channel = "test-acl";
    d.channel_key = "k1";
    Qp__V1__DossierState state;
    ck_assert_int_eq (qp_store_create (intake, "acl1", &d, "roubaix", 1000, "m1", &state), QP_STORE_APPLIED);
    /* ...but cannot touch money, indicators or the PHQ claims. */
    s_refused (qp_redis_command (intake, "HSET qp:envelope:{phq} total 1"), "intake writes an envelope");
    s_refused (qp_redis_command (intake, "HGETALL qp:envelope:{phq}"), "intake reads an envelope");
    const char *env_keys[] = {"qp:envelope:{phq}", "qp:envelope:{phq}:ledger:0",
                              "qp:envelope:{phq}:ledger", "qp:envelope:{phq}:t:roubaix",
                              "qp:envelope:{phq}:deadlines"};
    const char *env_args[] = {"acl1", "100", "roubaix", "0"};
    s_refused (qp_redis_script (intake, QP_LUA_ENVELOPE_RESERVE, 5, env_keys, 4, env_args, NULL),
               "intake reserves on an envelope (script)");
    s_refused (qp_redis_command (intake, "HINCRBY qp:eval:cells x 1"), "intake counts");
    s_refused (qp_redis_command (intake, "FLUSHALL"), "intake flushes");
    s_refused (qp_redis_command (intake, "CONFIG SET appendonly no"), "intake reconfigures");
    s_refused (qp_redis_command (intake, "KEYS *"), "intake lists keys");
    qp_redis_destroy (&intake);

    /* evaluation reads dossiers and writes its counters, never dossiers. */
    qp_redis_t *evaluation = s_as (redis, "evaluation");
    ck_assert_ptr_nonnull (evaluation);
    s_allowed (qp_redis_command (evaluation, "HGETALL qp:{acl1}:d"), "evaluation reads a dossier");
    s_allowed (qp_redis_command (evaluation, "HSET qp:eval:meta version 1"), "evaluation counts");
    s_refused (qp_redis_command (evaluation, "HSET qp:{acl1}:d state FUNDED"), "evaluation writes a dossier");
    s_refused (qp_redis_command (evaluation, "UNLINK qp:{acl1}:d"), "evaluation deletes a dossier");
    ck_assert_int_eq (qp_store_transition (evaluation, "acl1", QP__V1__DOSSIER_STATE__RECEIVED,
                                           QP__V1__DOSSIER_STATE__NOT_ELIGIBLE, 2000, "m2", "", NULL, 0,
                                           &state),
                      QP_STORE_ERROR);
    qp_redis_destroy (&evaluation);

    /* eligibility cannot reach envelopes; funding cannot write indicators or PHQ claims. */
    qp_redis_t *eligibility = s_as (redis, "eligibility");
    ck_assert_ptr_nonnull (eligibility);
    char phq_bucket[128], phq_old[256];
    qp_bucket_phq_keys ("INITIATIVE_FRANCE", "p1", phq_bucket, sizeof phq_bucket, phq_old,
                        sizeof phq_old);
    const char *phq_keys[] = {phq_bucket, phq_old}, *phq_args[] = {"p1", "acl1"};
    s_allowed (qp_redis_script (eligibility, QP_LUA_PHQ_CLAIM, 2, phq_keys, 2, phq_args, NULL),
               "eligibility claims a PHQ (script)");
    s_refused (qp_redis_command (eligibility, "HSET qp:envelope:{phq} total 1"), "eligibility writes an envelope");
    qp_redis_destroy (&eligibility);
    qp_redis_t *funding = s_as (redis, "funding");
    ck_assert_ptr_nonnull (funding);
    s_allowed (qp_redis_command (funding, "HGET qp:envelope:{phq} total"), "funding reads an envelope");
    s_refused (qp_redis_command (funding, "HINCRBY qp:eval:cells x 1"), "funding counts");
    s_refused (qp_redis_command (funding, "HSET %s p1 other", phq_bucket), "funding writes a PHQ claim");
    qp_redis_destroy (&funding);

    /* The recorder's user is off; a wrong password is refused. */
    ck_assert_ptr_null (s_as (redis, "record"));
    ck_assert_ptr_null (qp_redis_connect_as (redis->host, redis->port, "intake", "wrong", 300));
    qp_test_redis_stop (&redis);
}
END_TEST

static void s_sample (Qp__V1__SubmitDossier *submit, Qp__V1__Dossier *dossier,
                      Qp__V1__ProjectHolder *holder, Qp__V1__Business *business,
                      Qp__V1__Project *p, char *key, char *person, char *day, int i)
{
    static const char *const communes[] = {"59512", "93048", "31555", "53130"};
    static const char *const qpv[] = {"QN05981M", "QN09301M", "QN03101M", "QN05301M"};
    qp__v1__submit_dossier__init (submit);
    qp__v1__dossier__init (dossier);
    qp__v1__project_holder__init (holder);
    qp__v1__business__init (business);
    qp__v1__project__init (p);
    snprintf (key, 32, "acl-%06d", i);
    snprintf (person, 40, "p%031d", i);
    qp_date_format (qp_date_from_civil (2024, 1, 1) + i, day);
    dossier->channel = "test-acl";
    dossier->channel_key = key;
    dossier->submitted_on = day;
    holder->person_key = person;
    holder->residence_qpv = (char *)qpv[i % 4];
    holder->has_accompanied = true, holder->accompanied = true;
    holder->has_network = true, holder->network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    business->insee_commune = (char *)communes[i % 4];
    business->naf_code = "47.11B";
    business->legal_form = "5499";
    int64_t amount = 100000 + (int64_t)(i * 7919 % 1400000);
    p->has_axis = true, p->axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p->has_stage = true, p->stage = QP__V1__STAGE__CREATION;
    p->has_amount_asked_cents = true, p->amount_asked_cents = amount;
    p->has_financing_need_cents = true, p->financing_need_cents = amount * 4;
    p->has_personal_contribution_cents = true, p->personal_contribution_cents = amount;
    p->has_bank_loan_cents = true, p->bank_loan_cents = amount * 2;
    p->has_bank_loan_months = true, p->bank_loan_months = 60;
    p->has_bank_loan_guarantee_pct = true, p->bank_loan_guarantee_pct = 40;
    p->has_honour_loan_months = true, p->honour_loan_months = 48;
    p->has_deferral_months = true, p->deferral_months = 6;
    p->has_jobs_planned = true, p->jobs_planned = 1 + i % 3;
    dossier->holder = holder;
    dossier->business = business;
    dossier->project = p;
    submit->dossier = dossier;
}

/* Every client connected to Redis is a service user, except this test's own (default). */
static int s_default_clients (qp_redis_t *admin)
{
    redisReply *r = qp_redis_command (admin, "CLIENT LIST");
    ck_assert (r && r->type == REDIS_REPLY_STRING);
    int n = 0;
    for (const char *p = r->str; (p = strstr (p, " user=default ")); p++)
        n++;
    freeReplyObject (r);
    return n;
}

START_TEST (test_flow_as_service_users_partners_without_redis)
{
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {.env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    s_load_acl (stack->redis);
    static const char *const services[] = {"intake", "eligibility", "funding", "evaluation", NULL};
    for (int i = 0; services[i]; i++) {
        char user[64], password[96];
        snprintf (user, sizeof user, "QP_REDIS_USER=%s", services[i]);
        snprintf (password, sizeof password, "QP_REDIS_PASSWORD=pw-%s", services[i]);
        const char *own[] = {user, password, NULL};
        ck_assert_ptr_nonnull (qp_test_stack_spawn (stack, services[i], own));
    }
    static const char *const partners[] = {"partner-anct", "partner-anru", "partner-bdt",
                                           "partner-bpifrance", NULL};
    for (int i = 0; partners[i]; i++)
        ck_assert_ptr_nonnull (qp_test_stack_spawn (stack, partners[i], NULL));
    ck_assert (qp_test_stack_wait (stack, services, 30000));
    /* The four partner components registered (they need no Redis to do so). */
    int partner_workers = 0;
    for (int tries = 0; tries < 150 && partner_workers < 4; tries++) {
        json_t *status = qp_test_bus_status (stack->work, 2000);
        const char *name;
        json_t *svc;
        partner_workers = 0;
        json_object_foreach (json_object_get (status, "services"), name, svc)
            if (!strncmp (name, "partner.", 8))
                partner_workers += (int)json_integer_value (json_object_get (svc, "workers"));
        json_decref (status);
        if (partner_workers < 4)
            qp_test_sleep_ms (100);
    }
    ck_assert_int_ge (partner_workers, 4);

    qp_test_client_t *client = qp_test_client_new (stack->work);
    ck_assert_ptr_nonnull (client);
    char ids[N_DOSSIERS][QP_ID_HEX + 1];
    for (int i = 0; i < N_DOSSIERS; i++) {
        Qp__V1__SubmitDossier submit;
        Qp__V1__Dossier dossier;
        Qp__V1__ProjectHolder holder;
        Qp__V1__Business business;
        Qp__V1__Project project;
        char key[32], person[40], day[11];
        s_sample (&submit, &dossier, &holder, &business, &project, key, person, day, i);
        qp_message_t reply;
        qp_error_t err;
        ck_assert_int_eq (qp_test_client_call (client, "intake", &submit.base, NULL, 15000, &reply,
                                               &err, NULL),
                          0);
        ck_assert_ptr_eq (reply.descriptor, &qp__v1__submit_dossier_reply__descriptor);
        Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *)reply.payload;
        ck_assert_msg (r->accepted, "dossier %d not accepted: %s", i,
                       r->n_errors ? r->errors[0]->message : "");
        snprintf (ids[i], sizeof ids[i], "%s", r->dossier_id);
        qp_message_clear (&reply);
    }
    qp_test_client_destroy (&client);

    /* Every dossier reaches a terminal state with the services as their own users. */
    qp_redis_t *admin = qp_redis_connect (stack->redis->host, stack->redis->port, 2000);
    ck_assert_ptr_nonnull (admin);
    int terminal = 0;
    for (int tries = 0; tries < 600 && terminal < N_DOSSIERS; tries++) {
        terminal = 0;
        for (int i = 0; i < N_DOSSIERS; i++) {
            redisReply *r = qp_redis_command (admin, "HGET qp:{%s}:d state", ids[i]);
            if (r && r->type == REDIS_REPLY_STRING &&
                qp_store_state_terminal (qp_store_state_parse (r->str)))
                terminal++;
            if (r)
                freeReplyObject (r);
        }
        if (terminal < N_DOSSIERS)
            qp_test_sleep_ms (100);
    }
    ck_assert_int_eq (terminal, N_DOSSIERS);
    /* Nothing was refused on the way, and no partner component holds a connection. */
    for (size_t i = 0; i < stack->n_procs; i++)
        ck_assert_msg (qp_test_proc_log_count (stack->procs[i], "NOPERM") == 0,
                       "%s was refused by Redis", stack->procs[i]->name);
    ck_assert_int_eq (s_default_clients (admin), 1);
    qp_redis_destroy (&admin);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("acl");
    TCase *tc = tcase_create ("acl");
    tcase_set_timeout (tc, 300);
    tcase_add_test (tc, test_each_service_refused_outside_its_permissions);
    tcase_add_test (tc, test_flow_as_service_users_partners_without_redis);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
