/* The Python partner component of examples/ (written from the .proto files alone)
 * against the real stack over CURVE: redis-server, qp-bus --curve-dir, qp-funding, and
 * /usr/bin/python3 examples/partner_initiative.py with modules protoc generates here.
 * The test plays eligibility (an ELIGIBLE dossier and its EligibilityDecided). */
#include "funding/terms.h"
#include "qp_bus.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp/v1/funding.pb-c.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

static qp_test_stack_t *s_stack;
static qp_redis_t *s_redis;
static qp_bus_client_t *s_work;

static void s_eligible (const char *id, Qp__V1__Network network)
{
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    p.has_financing_need_cents = true, p.financing_need_cents = 4000000;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = 800000;
    p.has_bank_loan_cents = true, p.bank_loan_cents = 2400000;
    p.has_honour_loan_months = true, p.honour_loan_months = 48;
    p.has_deferral_months = true, p.deferral_months = 6;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    h.has_network = true, h.network = network;
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    d.project = &p;
    d.holder = &h;
    d.territory = "roubaix";
    int64_t t = 1741564800000;
    Qp__V1__DossierState state;
    ck_assert_int_eq (qp_store_create (s_redis, id, &d, "roubaix", t, "m0", &state),
                      QP_STORE_APPLIED);
    Qp__V1__SchemeDecision sd = QP__V1__SCHEME_DECISION__INIT, *sdp = &sd;
    sd.scheme_id = "phq";
    sd.has_agency = true, sd.agency = QP__V1__AGENCY__BPIFRANCE;
    sd.has_outcome = true, sd.outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    sd.has_amount_cents = true, sd.amount_cents = 600000;
    Qp__V1__EligibilityDecided e = QP__V1__ELIGIBILITY_DECIDED__INIT;
    e.dossier_id = (char *) id;
    e.territory = "roubaix";
    e.n_decisions = 1, e.decisions = &sdp;
    qp_test_hand_to_funding (s_redis, s_work, id, &e, t);
}

static Qp__V1__DossierState s_wait_terminal (const char *id)
{
    return qp_test_wait_terminal (s_redis, id, 20000); /* 400 polls, 50 ms apart */
}

START_TEST (test_python_component_over_curve)
{
    ck_assert_msg (system ("/usr/bin/python3 -c 'import zmq, google.protobuf' && "
                           "command -v protoc >/dev/null") == 0,
                   "needs python3-zmq, python3-protobuf and protobuf-compiler (./qp deps)");
    char *dir = qp_test_tmpdir ("qp-python");
    char cmd[4096];
    snprintf (cmd, sizeof cmd,
              "set -e; cd %s; mkdir -p %s/py %s/data/catalogue; "
              "protoc -I proto --python_out=%s/py proto/qp/v1/*.proto; "
              "cp tests/data/funding/*.json %s/data/; cp data/catalogue/phq.json %s/data/catalogue/; "
              "%s/tools/qp-keygen %s/keys >/dev/null",
              qp_test_source_dir (), dir, dir, dir, dir, dir, qp_test_build_dir (), dir);
    ck_assert_int_eq (system (cmd), 0);
    char curve[1100], data[1100], py[1100], script[1100];
    snprintf (curve, sizeof curve, "QP_CURVE_DIR=%s/keys", dir);
    snprintf (data, sizeof data, "%s/data", dir);
    snprintf (py, sizeof py, "QP_PY_PROTO_DIR=%s/py", dir);
    snprintf (script, sizeof script, "%s/examples/partner_initiative.py", qp_test_source_dir ());
    const char *env[] = {curve, py, "QP_STATUS_INTERVAL_MS=300", NULL};
    qp_test_stack_opts_t opts = {.env = env};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
    const char *fargs[] = {"--data-dir", data, NULL};
    qp_test_proc_t *p = qp_test_spawn ("funding", (const char *const *) s_stack->env, fargs,
                                       s_stack->dir);
    ck_assert_ptr_nonnull (p);
    s_stack->procs[s_stack->n_procs++] = p;
    const char *pargs[] = {script, NULL};
    char **all = calloc (64, sizeof *all);
    size_t n = 0;
    for (; s_stack->env[n]; n++)
        all[n] = s_stack->env[n];
    for (size_t i = 0; env[i]; i++)
        all[n++] = (char *) env[i];
    p = qp_test_spawn ("/usr/bin/python3", (const char *const *) all, pargs, s_stack->dir);
    free (all);
    ck_assert_ptr_nonnull (p);
    s_stack->procs[s_stack->n_procs++] = p;
    ck_assert (qp_test_bus_wait_workers (s_stack->work, "funding", 1, 15000));
    ck_assert_msg (qp_test_bus_wait_workers (s_stack->work,
                                             "partner.BPIFRANCE.initiative-france-py", 1, 15000),
                   "the Python component did not register over CURVE");
    s_redis = qp_redis_connect (s_stack->redis->host, s_stack->redis->port, 5000);
    s_work = qp_bus_client_new (s_stack->work);
    for (int i = 0; i < 100; i++) {
        redisReply *r = qp_redis_command (s_redis, "EXISTS qp:partner:initiative-france-py");
        bool there = r && r->integer == 1;
        freeReplyObject (r);
        if (there)
            break;
        qp_test_sleep_ms (50);
    }

    /* Accompanied by Initiative France: approved, with the 0 % schedule stored. */
    s_eligible ("py-ok", QP__V1__NETWORK__INITIATIVE_FRANCE);
    ck_assert_int_eq (s_wait_terminal ("py-ok"), QP__V1__DOSSIER_STATE__FUNDED);
    redisReply *r = qp_redis_command (s_redis, "HGET qp:{py-ok}:f phq");
    ck_assert (r && r->type == REDIS_REPLY_STRING);
    Qp__V1__FundingLeg *leg = qp__v1__funding_leg__unpack (NULL, r->len, (uint8_t *) r->str);
    freeReplyObject (r);
    ck_assert_ptr_nonnull (leg);
    ck_assert_str_eq (leg->component_id, "initiative-france-py");
    ck_assert_int_eq (leg->amount_cents, 600000);
    ck_assert_int_eq (terms_leg_schedule (leg), 0); /* derived from the stored terms */
    ck_assert_uint_eq (leg->honour_loan->n_schedule, 48);
    ck_assert_uint_eq (leg->honour_loan->leverage_permille, 4000);
    qp__v1__funding_leg__free_unpacked (leg, NULL);

    /* Another network: declined with the component's reason. */
    s_eligible ("py-no", QP__V1__NETWORK__ADIE);
    ck_assert_int_eq (s_wait_terminal ("py-no"), QP__V1__DOSSIER_STATE__DECLINED);
    char *reason = qp_store_get (s_redis, "py-no", "final_reason", NULL);
    ck_assert_ptr_nonnull (strstr (reason, "not accompanied by Initiative France"));
    free (reason);

    qp_bus_client_destroy (&s_work);
    qp_redis_destroy (&s_redis);
    ck_assert_int_eq (qp_test_stack_stop (&s_stack), 0);
    qp_test_rmtree (dir);
    free (dir);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("partner_python");
    TCase *tc = tcase_create ("partner_python");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_python_component_over_curve);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
