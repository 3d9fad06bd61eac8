/* Impersonation at the partner boundary (issue 9, item 7), with real processes: the bus
 * with CURVE on its partner endpoint (keys made by qp-keygen), intake, eligibility,
 * funding and Bpifrance's real component with its agency's key. Three intruders try to
 * act as a Bpifrance component:
 *
 *   - no CURVE at all: a plain ZeroMQ DEALER registers and announces itself;
 *   - an unknown key: a key pair made by qp-keygen for another deployment, with the real
 *     bus's public certificate;
 *   - another agency's key: ANCT's real key registers as Bpifrance and speaks for it.
 *
 * (tests/integration/test_funding.c also tries the last two, with a component process.)
 *
 * None is routed, none reaches funding (no component record in Redis), the one the bus
 * can hear is answered "forbidden"; and the stack keeps serving: a dossier submitted
 * after all three is funded through the real component.
 *
 * A fourth: a known key sends funding eligibility's message (an EligibilityDecided).
 * Only hellos, statuses and decisions belong on the partner endpoint: the bus answers
 * "forbidden" and funding never sees it. And a partner answers with REPLY only a request
 * it was given and has not answered yet, and only with an Error. */
#include "qp_bus.h"
#include "qp_test.h"
#include "qp_test_dossier.h"
#include "qp_test_sample.h"
#include "qp_test_suite.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <string.h>

/* The four agencies' components, each with its own key from the same qp-keygen run. */
static const char *const s_programs[] = {
    "intake",       "eligibility", "funding",           "partner-anct",
    "partner-anru", "partner-bdt", "partner-bpifrance", NULL};
static const char *const s_ready[] = {"intake", "eligibility", "funding",
                                      "partner.BPIFRANCE.bpifrance-default", NULL};

/* How many lines of p's log hold needle, once at least min do or after 5 s: the bus
 * answers "forbidden" before it logs the refusal. */
static int s_log_count_at_least (qp_test_proc_t *p, const char *needle, int min)
{
    int n = qp_test_proc_log_count (p, needle);
    for (int i = 0; i < 50 && n < min; i++) {
        qp_test_sleep_ms (100);
        n = qp_test_proc_log_count (p, needle);
    }
    return n;
}

/* Frames a component sends: READY as a Bpifrance worker, then its hello to funding. */
static zmsg_t *s_ready_frames (const char *service)
{
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, QPB_PROTOCOL);
    zmsg_addstr (m, QPB_READY);
    zmsg_addstr (m, service);
    return m;
}

static zmsg_t *s_hello_frames (const char *component)
{
    Qp__V1__PartnerHello h = QP__V1__PARTNER_HELLO__INIT;
    h.component_id = (char *)component;
    h.has_agency = true, h.agency = QP__V1__AGENCY__BPIFRANCE;
    h.component_name = (char *)component;
    h.version = "0.0.1";
    char *schemes[] = {"phq"};
    h.n_schemes = 1;
    h.schemes = schemes;
    h.has_capacity = true, h.capacity = 1000;
    h.has_status_interval_ms = true, h.status_interval_ms = 60000;
    qp_meta_t meta = {.discriminator = component};
    zmsg_t *m = qp_message_build (&h.base, &meta, NULL);
    zmsg_pushstr (m, "funding");
    zmsg_pushstr (m, QPB_SEND);
    zmsg_pushstr (m, QPB_PROTOCOL);
    return m;
}

static qp_test_proc_t *s_proc (qp_test_stack_t *stack, const char *name)
{
    for (size_t i = 0; i < stack->n_procs; i++)
        if (!strcmp (stack->procs[i]->name, name))
            return stack->procs[i];
    ck_abort_msg ("no program %s in the stack", name);
    return NULL;
}

/* A partner's REPLY of payload (an Error when NULL) to peer to. */
static void s_reply (qp_bus_client_t *partner, zframe_t *to, const ProtobufCMessage *payload)
{
    qp_error_t err;
    qp_error_set (&err, "invalid_field", "request_id", "test reply");
    qp_meta_t meta = {.discriminator = "impersonation-reply"};
    zmsg_t *m = payload ? qp_message_build (payload, &meta, NULL)
                        : qp_message_build_error (&err, NULL, NULL, 0);
    ck_assert_int_eq (qp_bus_client_reply (partner, to, &m), 0);
}

/* Whatever the bus sends this socket within wait_ms: the ERROR code (malloc'd), "" for
 * anything else, NULL for nothing. */
static char *s_answer (zsock_t *sock, int wait_ms)
{
    zpoller_t *p = zpoller_new (sock, NULL);
    char *code = NULL;
    if (zpoller_wait (p, wait_ms)) {
        zmsg_t *m = zmsg_recv (sock);
        char *proto = zmsg_popstr (m), *kind = zmsg_popstr (m);
        code = kind && !strcmp (kind, QPB_ERROR) ? zmsg_popstr (m) : strdup ("");
        free (proto);
        free (kind);
        zmsg_destroy (&m);
    }
    zpoller_destroy (&p);
    return code;
}

static long s_partner_seen (qp_test_stack_t *stack, const char *component)
{
    redisContext *rc = redisConnect (stack->redis->host, stack->redis->port);
    ck_assert (rc && !rc->err);
    redisReply *r = redisCommand (rc, "EXISTS qp:partner:%s", component);
    long n = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    if (r)
        freeReplyObject (r);
    redisFree (rc);
    return n;
}

/* Submits sample dossier i (funded by the Bpifrance component) and waits for its state. */
static Qp__V1__DossierState s_submit_and_wait (qp_test_stack_t *stack, int i)
{
    static qp_test_sample_t s;
    qp_test_sample (&s, "test-impersonation", "imp", i);
    char disc[64];
    snprintf (disc, sizeof disc, "test-impersonation\n%s", s.key);
    qp_meta_t meta = {.discriminator = disc};
    char id[QP_ID_HEX + 1];
    qp_test_submit_accepted (stack->work, &s.submit, &meta, 10000, id);
    return qp_test_status_wait_terminal (stack->work, id, 600);
}

START_TEST (test_three_intruders_refused)
{
    char *keys = qp_test_tmpdir ("qp-imp-keys");
    char *other = qp_test_tmpdir ("qp-imp-other");
    ck_assert_int_eq (qp_test_keygen (keys, NULL), 0);
    ck_assert_int_eq (qp_test_keygen (other, "BPIFRANCE"), 0);
    char curve[1100];
    snprintf (curve, sizeof curve, "QP_CURVE_DIR=%s", keys);
    const char *env[] = {curve, qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {.programs = s_programs, .wait_for = s_ready, .env = env};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    ck_assert_int_eq (qp_test_proc_log_count (stack->bus, "curve_on"), 1);
    for (int i = 0; i < 150 && qp_test_bus_partner_workers (stack->work) < 4; i++)
        qp_test_sleep_ms (100);
    ck_assert_int_eq (qp_test_bus_partner_workers (stack->work), 4);
    /* The real component, with its key: a dossier is funded through it. */
    ck_assert_int_eq (s_submit_and_wait (stack, 2), QP__V1__DOSSIER_STATE__FUNDED);

    /* 1. No CURVE: the handshake never completes, so nothing it sends reaches the bus. */
    zsock_t *plain = zsock_new (ZMQ_DEALER);
    ck_assert_ptr_nonnull (plain);
    zsock_set_linger (plain, 0);
    ck_assert_int_eq (zsock_connect (plain, "%s", stack->partner), 0);
    zmsg_t *m = s_ready_frames ("partner.BPIFRANCE.plain");
    zmsg_send (&m, plain);
    m = s_hello_frames ("plain");
    zmsg_send (&m, plain);
    /* A bus that heard it answers "forbidden" or routes: silence is the only refusal a
     * peer without CURVE can get. The wait bounds the test; it asserts no duration. */
    char *code = s_answer (plain, 3000);
    ck_assert_msg (code == NULL, "the bus answered a peer without CURVE: '%s'", code);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "partner.BPIFRANCE.plain"), 0);
    ck_assert_int_eq (s_partner_seen (stack, "plain"), 0);
    zsock_destroy (&plain);

    /* 2. An unknown key (another deployment's Bpifrance key) with the real bus's public
     * certificate: the ZAP handler refuses the key, nothing is routed. */
    char secret[1200], bus_cert[1200];
    snprintf (secret, sizeof secret, "%s/BPIFRANCE.cert_secret", other);
    snprintf (bus_cert, sizeof bus_cert, "%s/bus.cert", keys);
    ck_assert_int_eq (qp_bus_curve_client (stack->partner, secret, bus_cert), 0);
    qp_bus_client_t *unknown = qp_bus_client_new (stack->partner);
    ck_assert_ptr_nonnull (unknown);
    ck_assert_int_eq (qp_bus_client_ready (unknown, "partner.BPIFRANCE.unknown"), 0);
    m = s_hello_frames ("unknown");
    zmsg_send (&m, qp_bus_client_socket (unknown));
    code = s_answer (qp_bus_client_socket (unknown), 3000);
    ck_assert_msg (code == NULL, "the bus answered an unknown key: '%s'", code);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "partner.BPIFRANCE.unknown"), 0);
    ck_assert_int_eq (s_partner_seen (stack, "unknown"), 0);
    qp_bus_client_destroy (&unknown);

    /* 3. ANCT's real key: heard (the key is known) and told "forbidden", as a Bpifrance
     * worker and as a Bpifrance hello. */
    snprintf (secret, sizeof secret, "%s/ANCT.cert_secret", keys);
    ck_assert_int_eq (qp_bus_curve_client (stack->partner, secret, bus_cert), 0);
    qp_bus_client_t *anct = qp_bus_client_new (stack->partner);
    ck_assert_ptr_nonnull (anct);
    ck_assert_int_eq (qp_bus_client_ready (anct, "partner.BPIFRANCE.mimic"), 0);
    code = s_answer (qp_bus_client_socket (anct), 10000);
    ck_assert_ptr_nonnull (code);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    m = s_hello_frames ("mimic");
    zmsg_send (&m, qp_bus_client_socket (anct));
    code = s_answer (qp_bus_client_socket (anct), 10000);
    ck_assert_ptr_nonnull (code);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "partner.BPIFRANCE.mimic"), 0);
    ck_assert_int_eq (s_partner_seen (stack, "mimic"), 0);
    ck_assert_int_ge (s_log_count_at_least (stack->bus, "partner_forbidden", 2), 2);

    /* 4. The same known key sends funding eligibility's message. */
    Qp__V1__EligibilityDecided e = QP__V1__ELIGIBILITY_DECIDED__INIT;
    e.dossier_id = "0123456789abcdef0123456789abcdef";
    e.decided_on = "2024-06-03";
    qp_meta_t meta = {.correlation_id = e.dossier_id,
                      .discriminator = "impersonation",
                      .event_time_ms = 1717372800000};
    m = qp_message_build (&e.base, &meta, NULL);
    zmsg_pushstr (m, "funding");
    zmsg_pushstr (m, QPB_SEND);
    zmsg_pushstr (m, QPB_PROTOCOL);
    zmsg_send (&m, qp_bus_client_socket (anct));
    code = s_answer (qp_bus_client_socket (anct), 10000);
    ck_assert_ptr_nonnull (code);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    /* Funding never saw it (it logs an EligibilityDecided for an unknown dossier). */
    ck_assert_int_eq (qp_test_proc_log_count (s_proc (stack, "funding"), e.dossier_id), 0);
    ck_assert_int_ge (s_log_count_at_least (stack->bus, "partner_forbidden", 3), 3);

    /* 5. REPLY: under its own agency the key is a worker; a client asks it something. */
    ck_assert_int_eq (qp_bus_client_ready (anct, "partner.ANCT.mimic"), 0);
    ck_assert (qp_test_bus_wait_workers (stack->work, "partner.ANCT.mimic", 1, 10000));
    qp_bus_client_t *asker = qp_bus_client_new (stack->work);
    ck_assert_ptr_nonnull (asker);
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = e.dossier_id;
    qp_meta_t qmeta = {.discriminator = "impersonation-ask"};
    m = qp_message_build (&q.base, &qmeta, NULL);
    ck_assert_int_eq (qp_bus_client_send (asker, "partner.ANCT.mimic", &m), 0);
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (anct), NULL);
    ck_assert_ptr_nonnull (zpoller_wait (poller, 10000));
    zpoller_destroy (&poller);
    qp_bus_frame_t f = {0};
    ck_assert_int_eq (qp_bus_client_recv (anct, &f), 0);
    ck_assert_str_eq (f.kind, QPB_DELIVER);
    /* Anything but an Error is refused, even to the peer that asked. */
    Qp__V1__DossierStatusReply fake = QP__V1__DOSSIER_STATUS_REPLY__INIT;
    fake.dossier_id = e.dossier_id;
    fake.has_found = true, fake.found = true;
    s_reply (anct, f.from, &fake.base);
    code = s_answer (qp_bus_client_socket (anct), 10000);
    ck_assert_ptr_nonnull (code);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    /* An Error reaches the asker, once. */
    s_reply (anct, f.from, NULL);
    qp_bus_frame_t got = {0};
    poller = zpoller_new (qp_bus_client_socket (asker), NULL);
    ck_assert_ptr_nonnull (zpoller_wait (poller, 10000));
    ck_assert_int_eq (qp_bus_client_recv (asker, &got), 0);
    ck_assert_str_eq (got.kind, QPB_DELIVER);
    ck_assert (zframe_streq (got.type, "qp.v1.Error"));
    qp_bus_frame_clear (&got);
    s_reply (anct, f.from, NULL);
    code = s_answer (qp_bus_client_socket (anct), 10000);
    ck_assert_ptr_nonnull (code);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    /* Nor to a peer id that never asked it anything. */
    zframe_t *stranger = zframe_new ("W00112233", 9);
    s_reply (anct, stranger, NULL);
    zframe_destroy (&stranger);
    code = s_answer (qp_bus_client_socket (anct), 10000);
    ck_assert_ptr_nonnull (code);
    ck_assert_str_eq (code, "forbidden");
    free (code);
    /* The refused replies never reached the asker: the bus would have sent them before
     * answering the asker's STATUS, so the STATUS comes next. */
    zsock_send (qp_bus_client_socket (asker), "ss", QPB_PROTOCOL, QPB_STATUS);
    ck_assert_ptr_nonnull (zpoller_wait (poller, 10000));
    ck_assert_int_eq (qp_bus_client_recv (asker, &got), 0);
    ck_assert_str_eq (got.kind, QPB_STATUS);
    qp_bus_frame_clear (&got);
    zpoller_destroy (&poller);
    qp_bus_frame_clear (&f);
    qp_bus_client_bye (anct);
    for (int i = 0; i < 100 && qp_test_bus_workers (stack->work, "partner.ANCT.mimic") > 0; i++)
        qp_test_sleep_ms (100);
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "partner.ANCT.mimic"), 0);
    qp_bus_client_destroy (&asker);
    qp_bus_client_destroy (&anct);

    /* The real component is still the only Bpifrance worker, and still funds. */
    ck_assert_int_eq (qp_test_bus_workers (stack->work, "partner.BPIFRANCE.bpifrance-default"), 1);
    ck_assert_int_eq (qp_test_bus_partner_workers (stack->work), 4);
    ck_assert_int_eq (s_submit_and_wait (stack, 3), QP__V1__DOSSIER_STATE__FUNDED);
    ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
    qp_test_rmtree (keys);
    qp_test_rmtree (other);
    free (keys);
    free (other);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("impersonation");
    TCase *tc = tcase_create ("impersonation");
    tcase_set_timeout (tc, 180);
    tcase_add_test (tc, test_three_intruders_refused);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
