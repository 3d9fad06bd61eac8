/* qp-bench-limits: the physical limits of this machine, measured in the same run as the
 * stack so that ratios hold on a noisy machine.
 *   1. raw ZeroMQ, one hop over TCP loopback, PUSH -> PULL between two processes (like
 *      libzmq's remote_thr/local_thr), two frames of a real SubmitDossier message
 *      ([type][Envelope]), messages per second and MB/s;
 *   2. raw Redis with pipelining: redis-benchmark (Debian's redis-tools) SET and HSET
 *      with -P 16 on a private redis-server started here with AOF everysec, as the
 *      stack's.
 * Prints figures, asserts nothing. Usage: qp-bench-limits [--smoke] [--json FILE] */
#include "bench_support.h"
#include "qp_date.h"
#include "qp_test.h"
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A SubmitDossier as the stack benchmark sends, packed: its two frames' bytes. */
static zmsg_t *s_envelope (void)
{
    Qp__V1__SubmitDossier submit = QP__V1__SUBMIT_DOSSIER__INIT;
    Qp__V1__Dossier dossier = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder holder = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business business = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    dossier.channel = "bench", dossier.channel_key = "bench-1-00000042";
    dossier.submitted_on = "2024-03-12";
    holder.person_key = "p1000000000000000000000000000042";
    holder.residence_qpv = "QN05981M";
    holder.has_accompanied = true, holder.accompanied = true;
    holder.has_network = true, holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    business.insee_commune = "59512", business.naf_code = "47.11B", business.legal_form = "5499";
    p.has_axis = true, p.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p.has_stage = true, p.stage = QP__V1__STAGE__CREATION;
    p.has_amount_asked_cents = true, p.amount_asked_cents = 432598;
    p.has_financing_need_cents = true, p.financing_need_cents = 4 * 432598;
    p.has_personal_contribution_cents = true, p.personal_contribution_cents = 432598;
    p.has_bank_loan_cents = true, p.bank_loan_cents = 2 * 432598;
    p.has_bank_loan_months = true, p.bank_loan_months = 60;
    p.has_bank_loan_guarantee_pct = true, p.bank_loan_guarantee_pct = 40;
    p.has_honour_loan_months = true, p.honour_loan_months = 48;
    p.has_deferral_months = true, p.deferral_months = 6;
    p.has_jobs_planned = true, p.jobs_planned = 2;
    dossier.holder = &holder, dossier.business = &business, dossier.project = &p;
    submit.dossier = &dossier;
    qp_meta_t meta = {.producer = "qp-bench-limits",
                      .discriminator = "bench\n42",
                      .event_time_ms = 1710201600000};
    return qp_message_build (&submit.base, &meta, NULL);
}

typedef struct {
    double msgs_per_s, mb_per_s;
    size_t bytes;
} zmq_figures_t;

/* remote_thr in a child process, local_thr here; timed from the first message. */
static const char *self_path;

/* The remote_thr side: count copies of the envelope pushed to endpoint. */
static int s_push (const char *endpoint, long count)
{
    zsock_t *push = zsock_new_push (endpoint);
    if (!push)
        return 1;
    zsock_set_sndhwm (push, 1000);
    zmsg_t *proto = s_envelope ();
    for (long i = 0; i < count; i++) {
        zmsg_t *m = zmsg_dup (proto);
        zmsg_send (&m, push);
    }
    zmsg_destroy (&proto);
    zsock_set_linger (push, 5000);
    zsock_destroy (&push);
    return 0;
}

static zmq_figures_t s_zmq (long count)
{
    zmq_figures_t out = {0};
    int port = qp_test_free_port ();
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    zsock_t *pull = zsock_new_pull (endpoint);
    if (!pull)
        return out;
    zsock_set_rcvhwm (pull, 1000);
    zmsg_t *proto = s_envelope ();
    out.bytes = zmsg_content_size (proto);
    /* A fresh process (exec): a ZeroMQ context does not survive fork. */
    char n[32];
    snprintf (n, sizeof n, "%ld", count);
    pid_t pid = fork ();
    if (pid == 0) {
        execl (self_path, self_path, "--push", endpoint, n, (char *)NULL);
        _exit (127);
    }
    zmsg_t *first = zmsg_recv (pull);
    double t0 = bench_now ();
    zmsg_destroy (&first);
    for (long i = 1; i < count; i++) {
        zmsg_t *m = zmsg_recv (pull);
        if (!m)
            break;
        zmsg_destroy (&m);
    }
    double secs = bench_now () - t0;
    waitpid (pid, NULL, 0);
    zmsg_destroy (&proto);
    zsock_destroy (&pull);
    out.msgs_per_s = (count - 1) / secs;
    out.mb_per_s = out.msgs_per_s * out.bytes / 1e6;
    return out;
}

/* redis-benchmark -t TEST with -P 16 in CSV; requests per second, or -1. */
static double s_redis_bench (int port, const char *test, long count)
{
    char cmd[256], line[512];
    snprintf (cmd, sizeof cmd,
              "redis-benchmark -h 127.0.0.1 -p %d -t %s -n %ld -P 16 -c 50 -d 100 --csv "
              "2>/dev/null",
              port, test, count);
    FILE *p = popen (cmd, "r");
    double rps = -1;
    while (p && fgets (line, sizeof line, p)) {
        char name[64];
        double v;
        /* "SET","123456.79",... */
        if (sscanf (line, "\"%63[^\"]\",\"%lf\"", name, &v) == 2)
            rps = v;
    }
    if (p)
        pclose (p);
    return rps;
}

int main (int argc, char **argv)
{
    bool smoke = false;
    const char *json_path = NULL;
    setvbuf (stdout, NULL, _IOLBF, 0); /* figures appear as they come */
    self_path = "/proc/self/exe";
    if (argc == 4 && strcmp (argv[1], "--push") == 0)
        return s_push (argv[2], atol (argv[3]));
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--smoke") == 0)
            smoke = true;
        else if (strcmp (argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf (stderr, "usage: qp-bench-limits [--smoke] [--json FILE]\n");
            return 2;
        }
    }
    zsys_init ();
    zsys_handler_set (NULL);
    zmq_figures_t z = s_zmq (smoke ? 20000 : 2000000);
    double set = -1, hset = -1;
    qp_test_redis_t *server = qp_test_redis_start ();
    if (server) {
        long n = smoke ? 20000 : 2000000;
        set = s_redis_bench (server->port, "set", n);
        hset = s_redis_bench (server->port, "hset", n);
        qp_test_redis_stop (&server);
    } else
        fprintf (stderr, "qp-bench-limits: cannot start redis-server: no Redis figures\n");
    printf ("limits (this machine, now)\n");
    printf ("  %-52s %14s\n", "figure", "measured");
    printf ("  %-52s %14.0f\n", "zmq one hop push/pull tcp loopback, msg/s", z.msgs_per_s);
    printf ("  %-52s %14.1f\n", "  MB/s", z.mb_per_s);
    printf ("  %-52s %14zu\n", "  bytes per message (SubmitDossier envelope)", z.bytes);
    printf ("  %-52s %14.0f\n", "redis SET -P 16 (AOF everysec), requests/s", set);
    printf ("  %-52s %14.0f\n", "redis HSET -P 16 (AOF everysec), requests/s", hset);
    if (json_path) {
        json_t *j = json_pack ("{s:s, s:b, s:f, s:f, s:I, s:f, s:f}", "bench", "limits", "smoke",
                               smoke, "zmq_msgs_per_s", z.msgs_per_s, "zmq_mb_per_s", z.mb_per_s,
                               "zmq_message_bytes", (json_int_t)z.bytes, "redis_set_per_s", set,
                               "redis_hset_per_s", hset);
        if (!j || json_dump_file (j, json_path, JSON_INDENT (2)) != 0)
            fprintf (stderr, "qp-bench-limits: cannot write %s\n", json_path);
        json_decref (j);
    }
    return 0;
}
