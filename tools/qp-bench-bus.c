/* qp-bench-bus: the bus alone (the real qp-bus program on free loopback ports).
 *   1. backlog memory: N work messages (envelopes of 300 and 1,500 bytes) wait in the
 *      bus behind a worker whose window of 1 is used: the bus's RSS growth per waiting
 *      message (sent in steps of 1,000, each confirmed by a STATUS, so what is measured
 *      is the queue, not libzmq's receive pipe);
 *   2. routing: N messages of 300 bytes sent at once to one worker, with flow control
 *      (window 512, credit returned as the services do) and without: messages/s from the
 *      first send to the last delivery.
 * Prints figures, asserts nothing. Usage: qp-bench-bus [--smoke] [--messages N] [--json FILE] */
#include "bench_support.h"
#include "qp_bus.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pid_t pid;
    char work[64];
} bus_t;

/* Starts qp-bus of the build on free ports; waits until it answers STATUS. */
static int s_bus_start (bus_t *bus)
{
    const char *build = getenv ("QP_BUILD_DIR") ? getenv ("QP_BUILD_DIR") : "build";
    char path[1024];
    snprintf (path, sizeof path, "%s/services/qp-bus", build);
    bench_bus_env (bus->work, sizeof bus->work);
    setenv ("QP_LOG_LEVEL", "warn", 1);
    unsetenv ("QP_HTTP");
    char *argv[] = {path, NULL};
    bus->pid = bench_spawn (argv, NULL, NULL);
    for (int i = 0; i < 50; i++) {
        char *status = qp_bus_status (bus->work, 200);
        free (status);
        if (status)
            return 0;
    }
    fprintf (stderr, "qp-bench-bus: %s does not answer\n", path);
    return -1;
}

static zmsg_t *s_work (const byte *env, size_t size)
{
    zmsg_t *m = zmsg_new ();
    zmsg_addstr (m, "qp.v1.DossierReceived");
    zmsg_addmem (m, env, size);
    return m;
}

/* One STATUS round trip on c: everything c sent before has been read by the bus. */
static void s_sync (qp_bus_client_t *c)
{
    zsock_send (qp_bus_client_socket (c), "ss", QPB_PROTOCOL, QPB_STATUS);
    qp_bus_frame_t f;
    while (qp_bus_client_recv (c, &f) == 0) {
        bool done = !strcmp (f.kind, QPB_STATUS);
        qp_bus_frame_clear (&f);
        if (done)
            break;
    }
}

/* Bytes of bus RSS per waiting message of an envelope of size bytes. */
static double s_backlog (long n, size_t size)
{
    bus_t bus;
    if (s_bus_start (&bus))
        return -1;
    qp_bus_client_t *worker = qp_bus_client_new (bus.work);
    qp_bus_client_window (worker, 1);
    qp_bus_client_ready (worker, "bench");
    qp_bus_client_t *client = qp_bus_client_new (bus.work);
    zsock_set_sndhwm (qp_bus_client_socket (client), 0);
    s_sync (worker);
    s_sync (client);
    long before = bench_status_kb (bus.pid, "VmRSS");
    byte *env = malloc (size);
    for (size_t i = 0; i < size; i++)
        env[i] = (byte) (i * 131 + 7);
    for (long i = 0; i < n; i++) {
        zmsg_t *m = s_work (env, size);
        qp_bus_client_send (client, "bench", &m);
        if (i % 1000 == 999)
            s_sync (client);
    }
    s_sync (client);
    long after = bench_status_kb (bus.pid, "VmRSS");
    free (env);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
    bench_stop (bus.pid);
    return (after - before) * 1024.0 / n;
}

/* Messages/s through the bus to one worker of window (0: no flow control). */
static double s_route (long n, long window)
{
    bus_t bus;
    if (s_bus_start (&bus))
        return -1;
    qp_bus_client_t *worker = qp_bus_client_new (bus.work);
    qp_bus_client_window (worker, window);
    qp_bus_client_ready (worker, "bench");
    qp_bus_client_t *client = qp_bus_client_new (bus.work);
    zsock_set_sndhwm (qp_bus_client_socket (client), 0);
    zsock_set_rcvhwm (qp_bus_client_socket (worker), 0);
    s_sync (worker);
    byte env[300];
    memset (env, 7, sizeof env);
    int64_t t0 = zclock_usecs ();
    for (long i = 0; i < n; i++) {
        zmsg_t *m = s_work (env, sizeof env);
        qp_bus_client_send (client, "bench", &m);
    }
    long got = 0;
    zpoller_t *p = zpoller_new (qp_bus_client_socket (worker), NULL);
    while (got < n && zpoller_wait (p, 5000)) {
        qp_bus_frame_t f;
        if (qp_bus_client_recv (worker, &f) == 0 && !strcmp (f.kind, QPB_DELIVER)) {
            got++;
            if (f.work)
                qp_bus_client_done (worker);
        }
        qp_bus_frame_clear (&f);
    }
    double s = (zclock_usecs () - t0) / 1e6;
    zpoller_destroy (&p);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
    bench_stop (bus.pid);
    return got == n ? n / s : -1;
}

int main (int argc, char **argv)
{
    long n = 100000;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--smoke"))
            n = 2000;
        else if (!strcmp (argv[i], "--messages") && i + 1 < argc)
            n = atol (argv[++i]);
        else if (!strcmp (argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf (stderr, "usage: qp-bench-bus [--smoke] [--messages N] [--json FILE]\n");
            return 2;
        }
    }
    if (n < 1000)
        n = 1000;
    zsys_init ();
    zsys_set_linger (0);
    printf ("bus: %ld messages\n", n);
    double b300 = s_backlog (n, 300), b1500 = s_backlog (n, 1500);
    printf ("  backlog: bus RSS per waiting message: %.0f B (300-byte envelope), %.0f B "
            "(1,500-byte envelope)\n",
            b300, b1500);
    double fc = s_route (n, QPB_WINDOW_DEFAULT), plain = s_route (n, 0);
    printf ("  routing to one worker: %.0f msg/s with flow control (window %d), %.0f msg/s "
            "without\n",
            fc, QPB_WINDOW_DEFAULT, plain);
    if (json_path) {
        json_t *out = json_pack ("{s:I, s:{s:f, s:f}, s:{s:f, s:f, s:i}}", "messages",
                                 (json_int_t) n, "backlog_bytes_per_message", "envelope_300", b300,
                                 "envelope_1500", b1500, "route_msg_per_s", "flow_control", fc,
                                 "no_flow_control", plain, "window", QPB_WINDOW_DEFAULT);
        if (json_dump_file (out, json_path, JSON_INDENT (2)) != 0)
            fprintf (stderr, "qp-bench-bus: cannot write %s\n", json_path);
        json_decref (out);
    }
    return 0;
}
