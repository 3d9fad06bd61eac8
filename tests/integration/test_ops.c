/* The compose topology as processes: redis-server, qp-bus, several instances of every
 * worker service and the four partner components, each with its probe endpoint on an
 * ephemeral port (QP_HTTP=127.0.0.1:0). The same dossiers go through a single-instance
 * stack and the scaled one: the outcomes must be equal, the work spread over every
 * instance, and every program's /healthz, /readyz and /metrics must answer, in the text
 * format, with counters that moved. */
#include "qp_test.h"
#include "qp_test_sample.h"
#include "qp_test_http.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

#define N_DOSSIERS 300
#define BATCH 150

static const char *const s_single[] = {"intake",       "eligibility",  "funding",
                                       "evaluation",   "partner-anct", "partner-anru",
                                       "partner-bdt",  "partner-bpifrance", NULL};
/* As `docker compose up --scale eligibility=3 --scale funding=2`, and more. */
static const char *const s_scaled[] = {
    "intake",       "intake",       "eligibility", "eligibility", "eligibility",
    "funding",      "funding",      "evaluation",  "evaluation",  "partner-anct",
    "partner-anru", "partner-bdt",  "partner-bpifrance", NULL};
/* Partner components are waited for by their log (their worker name is the partner
 * protocol's business). */
static const char *const s_ready[] = {"intake", "eligibility", "funding", "evaluation", NULL};

static const char *const s_agencies[] = {"agency=\"ANCT\"", "agency=\"ANRU\"",
                                         "agency=\"BANQUE_DES_TERRITOIRES\"",
                                         "agency=\"BPIFRANCE\"", NULL};

static qp_test_stack_t *s_start (const char *const *programs)
{
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (),
                         "QP_HTTP=127.0.0.1:0", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = s_ready, .env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    for (size_t i = 0; stack && i < stack->n_procs; i++)
        for (int w = 0; w < 100 && !strncmp (stack->procs[i]->name, "partner-", 8) &&
                        qp_test_proc_log_count (stack->procs[i], "service_ready") < 1;
             w++)
            qp_test_sleep_ms (100);
    qp_test_sleep_ms (500); /* their PartnerHello reaches funding */
    return stack;
}

/* Submits every dossier; all must be accepted. ids get the dossier ids. */
static void s_submit (qp_test_stack_t *stack, char ids[][QP_ID_HEX + 1])
{
    char why[512];
    int bad = qp_test_sample_submit_all (stack->work, "test-ops", "ops", 0, N_DOSSIERS, BATCH,
                                         30000, ids, why, sizeof why);
    ck_assert_msg (bad < 0, "dossier %d: %s", bad, why);
}

/* What a run produced: each dossier's final state and granted amount, and the totals. */
typedef struct {
    int state[N_DOSSIERS];
    int64_t granted[N_DOSSIERS];
    uint64_t submitted, closed, funded, declined, not_eligible;
    int64_t committed;
} outcome_t;

static void s_outcome (qp_test_stack_t *stack, char ids[][QP_ID_HEX + 1], outcome_t *o)
{
    qp_test_client_t *client = qp_test_client_new (stack->work);
    for (int i = 0; i < N_DOSSIERS; i++) {
        qp_message_t reply;
        Qp__V1__DossierStatusReply *s = qp_test_dossier_status (client, ids[i], &reply);
        ck_assert_msg (s, "dossier %s: no status", ids[i]);
        o->state[i] = s->state;
        o->granted[i] = s->n_settlements ? s->settlements[0]->amount_cents : 0;
        qp_message_clear (&reply);
    }
    qp_test_client_destroy (&client);
    Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
    qp_message_t reply = {0};
    qp_error_t err;
    ck_assert_int_eq (qp_test_call (stack->work, "evaluation", &q.base, NULL, 5000, &reply, &err), 0);
    Qp__V1__TerritoryFigures *t = ((Qp__V1__ReportReply *) reply.payload)->total;
    o->submitted = t->submitted, o->closed = t->closed, o->funded = t->funded;
    o->declined = t->declined, o->not_eligible = t->not_eligible, o->committed = t->committed_cents;
    qp_message_clear (&reply);
}

/* Scrapes one program: probes answer, the text is well formed. Returns the body. */
static char *s_scrape (const qp_test_proc_t *p)
{
    int port = qp_test_http_port_in_log (p->log_path, 5000);
    ck_assert_msg (port > 0, "%s logged no HTTP port", p->name);
    ck_assert_int_eq (qp_test_http_get (port, "/healthz", NULL), 200);
    char *ready = NULL;
    int status = 0;
    /* Readiness follows the bus's answers to the worker's STATUS beats. */
    for (int i = 0; i < 50 && status != 200; i++) {
        free (ready);
        status = qp_test_http_get (port, "/readyz", &ready);
        if (status != 200)
            qp_test_sleep_ms (100);
    }
    ck_assert_msg (status == 200, "%s not ready: %d %s", p->name, status, ready ? ready : "");
    free (ready);
    char *text = NULL;
    ck_assert_int_eq (qp_test_http_get (port, "/metrics", &text), 200);
    char *bad = qp_test_metrics_malformed (text);
    ck_assert_msg (bad == NULL, "%s: malformed metrics line: %s", p->name, bad);
    return text;
}

static bool s_is (const qp_test_proc_t *p, const char *program)
{
    return !strncmp (p->name, program, strlen (program));
}

START_TEST (test_scaled_topology_spreads_work_and_matches_single)
{
    static char ids_single[N_DOSSIERS][QP_ID_HEX + 1], ids_scaled[N_DOSSIERS][QP_ID_HEX + 1];
    static outcome_t single, scaled;

    qp_test_stack_t *stack = s_start (s_single);
    ck_assert_ptr_nonnull (stack);
    s_submit (stack, ids_single);
    ck_assert_msg (qp_test_wait_closed (stack->work, N_DOSSIERS, 120000),
                   "single: not every dossier closed");
    s_outcome (stack, ids_single, &single);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);

    stack = s_start (s_scaled);
    ck_assert_ptr_nonnull (stack);
    /* The recorder, as in compose: its probes too. */
    char journal[1100];
    snprintf (journal, sizeof journal, "QP_JOURNAL=%s/journal", stack->dir);
    const char *record_env[] = {journal, NULL};
    qp_test_proc_t *record = qp_test_stack_spawn (stack, "record", record_env);
    ck_assert_ptr_nonnull (record);
    ck_assert (qp_test_bus_wait_workers (stack->work, "eligibility", 3, 15000));
    ck_assert (qp_test_bus_wait_workers (stack->work, "funding", 2, 15000));
    ck_assert (qp_test_bus_wait_workers (stack->work, "intake", 2, 15000));
    s_submit (stack, ids_scaled);
    ck_assert_msg (qp_test_wait_closed (stack->work, N_DOSSIERS, 120000),
                   "scaled: not every dossier closed");
    s_outcome (stack, ids_scaled, &scaled);

    /* Same dossiers, same ids, same outcomes. */
    for (int i = 0; i < N_DOSSIERS; i++) {
        ck_assert_str_eq (ids_single[i], ids_scaled[i]);
        ck_assert_msg (single.state[i] == scaled.state[i], "dossier %d: state %d alone, %d scaled",
                       i, single.state[i], scaled.state[i]);
        ck_assert_int_eq (single.granted[i], scaled.granted[i]);
    }
    ck_assert_uint_eq (scaled.submitted, N_DOSSIERS);
    ck_assert_uint_eq (single.closed, scaled.closed);
    ck_assert_uint_eq (single.funded, scaled.funded);
    ck_assert_uint_eq (single.declined, scaled.declined);
    ck_assert_uint_eq (single.not_eligible, scaled.not_eligible);
    ck_assert_int_eq (single.committed, scaled.committed);
    ck_assert_uint_gt (scaled.funded, 0);

    /* Every program answers its probes; the work is spread over every instance. */
    char *bus = s_scrape (stack->bus);
    const char *elig[] = {"service=\"eligibility\"", NULL};
    ck_assert (qp_test_metric (bus, "qp_bus_workers", elig) == 3);
    /* The bus mirrors its table into the metrics every 500 ms: the last deliveries may
     * show on a later scrape. */
    int bus_port = qp_test_http_port_in_log (stack->bus->log_path, 5000);
    for (int i = 0; i < 50 && qp_test_metric (bus, "qp_bus_routed_total", elig) < N_DOSSIERS; i++) {
        qp_test_sleep_ms (100);
        free (bus);
        bus = NULL;
        ck_assert_int_eq (qp_test_http_get (bus_port, "/metrics", &bus), 200);
    }
    ck_assert (qp_test_metric (bus, "qp_bus_routed_total", elig) >= N_DOSSIERS);
    ck_assert (qp_test_metric (bus, "qp_bus_captured_total", NULL) > 0);
    /* Partner availability: one live component per agency. */
    for (const char *const *a = s_agencies; *a; a++) {
        const char *agency[] = {*a, NULL};
        ck_assert_msg (qp_test_metric (bus, "qp_partner_components", agency) == 1,
                       "%s: qp_partner_components is not 1", *a);
    }
    free (bus);
    const char *const workers[] = {"intake", "eligibility", "funding", "evaluation", NULL};
    for (const char *const *w = workers; *w; w++) {
        double total = 0;
        int instances = 0;
        for (size_t i = 0; i < stack->n_procs; i++) {
            qp_test_proc_t *p = stack->procs[i];
            if (!s_is (p, *w))
                continue;
            char *text = s_scrape (p);
            double in = qp_test_metric (text, "qp_messages_in_total", NULL);
            ck_assert_msg (in > 0, "%s handled nothing", p->name);
            ck_assert_msg (qp_test_metric (text, "qp_redis_round_trips_total", NULL) > 0,
                           "%s made no Redis round trip", p->name);
            ck_assert_msg (qp_test_metric (text, "qp_handler_seconds_count", NULL) == in,
                           "%s: latency count differs from messages in", p->name);
            total += in;
            instances++;
            free (text);
        }
        ck_assert_int_ge (instances, 2);
        ck_assert_msg (total >= N_DOSSIERS, "%s handled %.0f messages for %d dossiers", *w, total,
                       N_DOSSIERS);
    }
    for (size_t i = 0; i < stack->n_procs; i++)
        if (s_is (stack->procs[i], "partner-")) {
            char *text = s_scrape (stack->procs[i]);
            ck_assert (qp_test_metric (text, "qp_messages_out_total", NULL) > 0);
            free (text);
        }
    char *text = s_scrape (record);
    free (text);
    /* Bpifrance's component stops: its agency drops to 0, the others stay available. */
    qp_test_proc_t *bpi = NULL;
    for (size_t i = 0; i < stack->n_procs; i++)
        if (s_is (stack->procs[i], "partner-bpifrance"))
            bpi = stack->procs[i];
    ck_assert_ptr_nonnull (bpi);
    ck_assert (qp_test_proc_stop (bpi, NULL));
    const char *bpifrance[] = {"agency=\"BPIFRANCE\"", NULL}, *anct[] = {"agency=\"ANCT\"", NULL};
    double left = -1, others = -1;
    for (int i = 0; i < 100 && left != 0; i++) {
        char *text = NULL;
        ck_assert_int_eq (qp_test_http_get (bus_port, "/metrics", &text), 200);
        left = qp_test_metric (text, "qp_partner_components", bpifrance);
        others = qp_test_metric (text, "qp_partner_components", anct);
        free (text);
        if (left != 0)
            qp_test_sleep_ms (100);
    }
    ck_assert_msg (left == 0, "BPIFRANCE still shows %.0f live components", left);
    ck_assert (others == 1);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

START_TEST (test_bad_http_address_is_refused_and_service_runs)
{
    /* A probe address that cannot be bound is logged; the program still serves. */
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (),
                         "QP_HTTP=127.0.0.1:notaport", NULL};
    const char *const programs[] = {"eligibility", NULL};
    const char *const ready[] = {"eligibility", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    ck_assert_int_ge (qp_test_proc_log_count (stack->procs[0], "http_config"), 1);
    ck_assert (qp_test_proc_alive (stack->procs[0]));
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

/* The status of a program's /readyz once it settles on `want` (polled up to 15 s). */
static int s_readiness (const qp_test_proc_t *p, int want)
{
    int port = qp_test_http_port_in_log (p->log_path, 5000);
    ck_assert_msg (port > 0, "%s logged no HTTP port", p->name);
    int status = 0;
    for (int i = 0; i < 150; i++) {
        status = qp_test_http_get (port, "/readyz", NULL);
        if (status == want)
            break;
        qp_test_sleep_ms (100);
    }
    return status;
}

START_TEST (test_idle_services_see_redis_go_and_come_back)
{
    /* No work at all: readiness must still follow Redis (a PING a second). */
    const char *const programs[] = {"intake", "eligibility", "funding", "evaluation", NULL};
    qp_test_stack_t *stack = s_start (programs);
    ck_assert_ptr_nonnull (stack);
    for (size_t i = 0; i < stack->n_procs; i++)
        ck_assert_int_eq (s_readiness (stack->procs[i], 200), 200);
    ck_assert_int_eq (qp_test_redis_down (stack->redis, SIGKILL), 0);
    for (size_t i = 0; i < stack->n_procs; i++)
        ck_assert_msg (s_readiness (stack->procs[i], 503) == 503,
                       "%s still ready with Redis down", stack->procs[i]->name);
    ck_assert_int_eq (qp_test_redis_up (stack->redis), 0);
    for (size_t i = 0; i < stack->n_procs; i++) {
        ck_assert_msg (s_readiness (stack->procs[i], 200) == 200,
                       "%s not ready again after Redis came back", stack->procs[i]->name);
        ck_assert (qp_test_proc_alive (stack->procs[i]));
    }
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("ops");
    TCase *tc = tcase_create ("topology");
    tcase_set_timeout (tc, 600);
    tcase_add_test (tc, test_scaled_topology_spreads_work_and_matches_single);
    tcase_add_test (tc, test_bad_http_address_is_refused_and_service_runs);
    tcase_add_test (tc, test_idle_services_see_redis_go_and_come_back);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
