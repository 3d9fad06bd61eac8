/* qp-bench-bus: the bus alone (the real qp-bus program on free loopback ports).
 *   1. backlog memory: N work messages (envelopes of 300 and 1,500 bytes) wait in the
 *      bus behind a worker whose window of 1 is used: the bus's RSS growth per waiting
 *      message (sent in steps of 1,000, each confirmed by a STATUS, so what is measured
 *      is the queue, not libzmq's receive pipe);
 *   2. routing: N messages of 300 bytes sent at once to one worker, with flow control
 *      (window 512, credit returned as the services do) and without: messages/s from the
 *      first send to the last delivery;
 *   3. CPU per frame set routed: the bus's CPU time (every thread: the routing thread and
 *      libzmq's I/O thread, from /proc/PID/task/TID/schedstat) divided by the frame sets
 *      it routed, for (a) work with replies: N SENDs of --size bytes (600) to one
 *      flow-controlled worker that REPLYs to each, (b) N events PUB -> bus -> SUB, (c) (a)
 *      with a recorder subscribed to the capture tap. --outstanding K (1000, as the stack's
 *      generator) requests or events ahead of the answers: with few, the bus wakes up for
 *      few frame sets at a time, as in the stack, and its cost per wake-up shows.
 *      --perf DIR records each phase with perf record -g (DIR/bus-PHASE.perf.data);
 *      --perf-stat DIR counts instructions (where the machine has counters), context
 *      switches and syscalls instead (DIR/bus-PHASE.stat). --cpu-only: phase 3 alone.
 *      --ipc: every endpoint over Unix sockets (ipc://) instead of TCP loopback.
 * Prints figures, asserts nothing. Usage: qp-bench-bus [--smoke] [--messages N]
 *   [--size BYTES] [--outstanding K] [--cpu-only] [--perf DIR | --perf-stat DIR]
 *   [--json FILE] */
#include "bench_support.h"
#include "qp_bus.h"
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    char work[96];
    int ipc;  /* --ipc: the number in its socket files' names, else -1 */
} bus_t;

static bool s_ipc; /* --ipc */

/* Starts qp-bus of the build on free ports; waits until it answers STATUS. */
static int s_bus_start (bus_t *bus)
{
    const char *build = getenv ("QP_BUILD_DIR") ? getenv ("QP_BUILD_DIR") : "build";
    char path[1024];
    snprintf (path, sizeof path, "%s/services/qp-bus", build);
    bench_bus_env (bus->work, sizeof bus->work);
    bus->ipc = -1;
    if (s_ipc) {
        /* --ipc: the same endpoints over Unix sockets instead of TCP loopback. */
        static const char *names[] = {"QP_BUS_WORK", "QP_BUS_PARTNER", "QP_BUS_PUBLISH",
                                      "QP_BUS_SUBSCRIBE", "QP_BUS_CAPTURE"};
        static int starts;
        bus->ipc = starts;
        for (int i = 0; i < 5; i++) {
            char ep[96];
            snprintf (ep, sizeof ep, "ipc:///tmp/qp-bench-bus-%d-%d-%d", (int) getpid (), starts,
                      i);
            setenv (names[i], ep, 1);
            if (i == 0)
                snprintf (bus->work, sizeof bus->work, "%s", ep);
        }
        starts++;
    }
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

/* Stops the bus and removes its socket files (ipc). */
static void s_bus_stop (bus_t *bus)
{
    bench_stop (bus->pid);
    for (int i = 0; bus->ipc >= 0 && i < 5; i++) {
        char path[96];
        snprintf (path, sizeof path, "/tmp/qp-bench-bus-%d-%d-%d", (int) getpid (), bus->ipc, i);
        unlink (path);
    }
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
    s_bus_stop (&bus);
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
    s_bus_stop (&bus);
    return got == n ? n / s : -1;
}

/* CPU time of every thread of pid (the routing thread and libzmq's I/O threads), in
 * microseconds: the first field of /proc/PID/task/TID/schedstat is ns on the CPU (finer
 * than utime + stime's clock ticks); main_us gets the routing thread's (TID = pid). */
static double s_cpu_us (pid_t pid, double *main_us)
{
    char path[300];
    double total = 0;
    *main_us = 0;
    snprintf (path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *dir = opendir (path);
    struct dirent *e;
    while (dir && (e = readdir (dir))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf (path, sizeof path, "/proc/%d/task/%s/schedstat", (int) pid, e->d_name);
        FILE *f = fopen (path, "r");
        unsigned long long ns = 0;
        if (f && fscanf (f, "%llu", &ns) == 1) {
            total += ns / 1e3;
            if (atoi (e->d_name) == (int) pid)
                *main_us = ns / 1e3;
        }
        if (f)
            fclose (f);
    }
    if (dir)
        closedir (dir);
    return total;
}

/* While a phase runs, with --perf DIR: perf record -g on pid into DIR/bus-PHASE.perf.data;
 * with --perf-stat DIR: perf stat into DIR/bus-PHASE.stat (counts are steadier than CPU
 * time on a busy machine). */
static bool s_perf_stat; /* --perf-stat: the counts only */

static pid_t s_perf_start (pid_t pid, const char *dir, const char *phase)
{
    if (!dir)
        return 0;
    char spid[32], out[1024];
    snprintf (spid, sizeof spid, "%d", (int) pid);
    snprintf (out, sizeof out, "%s/bus-%s.%s", dir, phase, s_perf_stat ? "stat" : "perf.data");
    char *record[] = {"perf", "record", "-q", "-g", "-p", spid, "-o", out, NULL};
    char *stat[] = {"perf", "stat", "-e",
                    "instructions:u,instructions:k,context-switches,raw_syscalls:sys_enter", "-p",
                    spid, "-o", out, NULL};
    pid_t perf = bench_spawn (s_perf_stat ? stat : record, NULL, "/dev/null");
    zclock_sleep (500); /* perf attaches before the load starts */
    return perf;
}

static void s_perf_stop (pid_t perf)
{
    if (perf <= 0)
        return;
    kill (perf, SIGINT);
    waitpid (perf, NULL, 0);
}

typedef struct {
    const char *phase;
    long frame_sets;     /* frame sets the bus routed (SEND, REPLY, event) */
    long credits;        /* CREDIT frame sets it read besides */
    double cpu_us;       /* bus CPU, every thread */
    double main_us;      /* of which the routing thread */
    double wall_s;
} cpu_t;

static void s_cpu_print (const cpu_t *c)
{
    printf ("  %-22s %8ld frame sets  %6.2f us CPU each (routing thread %5.2f, libzmq I/O "
            "%5.2f)  %8.0f frame sets/s\n",
            c->phase, c->frame_sets, c->cpu_us / c->frame_sets, c->main_us / c->frame_sets,
            (c->cpu_us - c->main_us) / c->frame_sets, c->frame_sets / c->wall_s);
}

static json_t *s_cpu_json (const cpu_t *c)
{
    return json_pack ("{s:I, s:I, s:f, s:f, s:f, s:f}", "frame_sets", (json_int_t) c->frame_sets,
                      "credits", (json_int_t) c->credits, "cpu_us_per_frame_set",
                      c->cpu_us / c->frame_sets, "routing_thread_us_per_frame_set",
                      c->main_us / c->frame_sets, "io_threads_us_per_frame_set",
                      (c->cpu_us - c->main_us) / c->frame_sets, "frame_sets_per_s",
                      c->frame_sets / c->wall_s);
}

/* Requests or events ahead of the answers (--outstanding): 1000 as qp-bench-stack's
 * generator; fewer, and the bus wakes up for fewer frame sets at a time. */
static long s_outstanding = 1000;

/* Work with replies, as the services exchange it: a client keeps s_outstanding
 * requests of size bytes unanswered, one flow-controlled worker (window 512, credit as
 * qp_service returns it) answers each with a REPLY of the same size. With tap, a recorder
 * subscribes to the capture tap (the bus builds its copies). */
static int s_cpu_work (long n, size_t size, bool tap, const char *perf_dir, cpu_t *out)
{
    bus_t bus;
    if (s_bus_start (&bus))
        return -1;
    qp_bus_client_t *worker = qp_bus_client_new (bus.work);
    qp_bus_client_window (worker, QPB_WINDOW_DEFAULT);
    qp_bus_client_ready (worker, "bench");
    qp_bus_client_t *client = qp_bus_client_new (bus.work);
    zsock_t *recorder = NULL;
    if (tap) {
        recorder = zsock_new (ZMQ_SUB);
        zsock_set_rcvhwm (recorder, 0);
        zsock_set_subscribe (recorder, "");
        zsock_connect (recorder, "%s", getenv ("QP_BUS_CAPTURE"));
    }
    s_sync (worker);
    s_sync (client);
    /* The tap's subscription has reached the bus once STATUS counts it. */
    for (int i = 0; tap && i < 100; i++) {
        char *st = qp_bus_status (bus.work, 500);
        bool on = st && !strstr (st, "\"capture_topics\":0");
        free (st);
        if (on)
            break;
        zclock_sleep (20);
    }
    byte *env = malloc (size);
    for (size_t i = 0; i < size; i++)
        env[i] = (byte) (i * 131 + 7);
    zpoller_t *p = zpoller_new (qp_bus_client_socket (worker), qp_bus_client_socket (client),
                                recorder, NULL);
    pid_t perf = s_perf_start (bus.pid, perf_dir, tap ? "work-tap" : "work");
    double main0, cpu0 = s_cpu_us (bus.pid, &main0), t0 = zclock_usecs () / 1e6;
    long sent = 0, replies = 0, handled = 0, captured = 0;
    int64_t next_beat = zclock_mono () + QPB_HEARTBEAT_MS;
    while (replies < n) {
        while (sent < n && sent - replies < s_outstanding) {
            zmsg_t *m = s_work (env, size);
            qp_bus_client_send (client, "bench", &m);
            sent++;
        }
        /* A worker silent for QPB_WORKER_EXPIRY_MS leaves routing: beat as services do. */
        if (zclock_mono () >= next_beat) {
            qp_bus_client_heartbeat (worker);
            next_beat = zclock_mono () + QPB_HEARTBEAT_MS;
        }
        void *which = zpoller_wait (p, 5000);
        if (!which)
            break;
        qp_bus_frame_t f;
        if (which == qp_bus_client_socket (worker)) {
            if (qp_bus_client_recv (worker, &f) == 0 && !strcmp (f.kind, QPB_DELIVER)) {
                zmsg_t *r = s_work (env, size);
                qp_bus_client_reply (worker, f.from, &r);
                handled++;
                if (f.work)
                    qp_bus_client_done (worker);
            }
        } else if (which == qp_bus_client_socket (client)) {
            if (qp_bus_client_recv (client, &f) == 0 && !strcmp (f.kind, QPB_DELIVER))
                replies++;
        } else {
            zmsg_t *m = zmsg_recv (recorder);
            captured += m != NULL;
            zmsg_destroy (&m);
            continue;
        }
        qp_bus_frame_clear (&f);
    }
    double wall = zclock_usecs () / 1e6 - t0, main1, cpu1 = s_cpu_us (bus.pid, &main1);
    s_perf_stop (perf);
    zpoller_destroy (&p);
    free (env);
    zsock_destroy (&recorder);
    qp_bus_client_destroy (&client);
    qp_bus_client_destroy (&worker);
    s_bus_stop (&bus);
    *out = (cpu_t){tap ? "work+reply, tap on" : "work+reply", 2 * replies,
                   handled / (QPB_WINDOW_DEFAULT / 4), cpu1 - cpu0, main1 - main0, wall};
    (void) captured;
    if (replies != n)
        fprintf (stderr, "qp-bench-bus: %ld sent, %ld handled, %ld replies of %ld\n", sent,
                 handled, replies, n);
    return replies == n ? 0 : -1;
}

/* Events as services publish them: a PUB to the publish endpoint, one subscriber of every
 * qp.v1 type on the subscribe endpoint (as the evaluation), s_outstanding events ahead
 * of what it received. */
static int s_cpu_events (long n, size_t size, const char *perf_dir, cpu_t *out)
{
    bus_t bus;
    if (s_bus_start (&bus))
        return -1;
    zsock_t *pub = zsock_new (ZMQ_PUB), *sub = zsock_new (ZMQ_SUB);
    zsock_set_sndhwm (pub, 0);
    zsock_set_rcvhwm (sub, 0);
    zsock_set_subscribe (sub, "qp.v1.");
    zsock_connect (pub, "%s", getenv ("QP_BUS_PUBLISH"));
    zsock_connect (sub, "%s", getenv ("QP_BUS_SUBSCRIBE"));
    byte *env = malloc (size);
    for (size_t i = 0; i < size; i++)
        env[i] = (byte) (i * 131 + 7);
    /* A PUB drops what it sends before the subscription reaches it: probe until one
     * arrives, then drain the probes. */
    zpoller_t *p = zpoller_new (sub, NULL);
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) {
        zsock_send (pub, "ss", "qp.v1.Probe", "");
        up = zpoller_wait (p, 20) != NULL;
    }
    while (up && zpoller_wait (p, 200)) {
        zmsg_t *m = zmsg_recv (sub);
        zmsg_destroy (&m);
    }
    pid_t perf = s_perf_start (bus.pid, perf_dir, "events");
    double main0, cpu0 = s_cpu_us (bus.pid, &main0), t0 = zclock_usecs () / 1e6;
    long sent = 0, got = 0;
    while (up && got < n) {
        while (sent < n && sent - got < s_outstanding) {
            zmsg_t *m = s_work (env, size);
            zmsg_send (&m, pub);
            sent++;
        }
        if (!zpoller_wait (p, 5000))
            break;
        zmsg_t *m = zmsg_recv (sub);
        got += m != NULL;
        zmsg_destroy (&m);
    }
    double wall = zclock_usecs () / 1e6 - t0, main1, cpu1 = s_cpu_us (bus.pid, &main1);
    s_perf_stop (perf);
    zpoller_destroy (&p);
    free (env);
    zsock_destroy (&pub);
    zsock_destroy (&sub);
    s_bus_stop (&bus);
    *out = (cpu_t){"events (PUB/SUB)", got, 0, cpu1 - cpu0, main1 - main0, wall};
    return got == n ? 0 : -1;
}


int main (int argc, char **argv)
{
    long n = 100000;
    size_t size = 600;
    bool cpu_only = false;
    const char *json_path = NULL, *perf_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--smoke"))
            n = 2000;
        else if (!strcmp (argv[i], "--messages") && i + 1 < argc)
            n = atol (argv[++i]);
        else if (!strcmp (argv[i], "--size") && i + 1 < argc)
            size = (size_t) atol (argv[++i]);
        else if (!strcmp (argv[i], "--outstanding") && i + 1 < argc)
            s_outstanding = atol (argv[++i]) > 0 ? atol (argv[i]) : 1;
        else if (!strcmp (argv[i], "--ipc"))
            s_ipc = true;
        else if (!strcmp (argv[i], "--cpu-only"))
            cpu_only = true;
        else if (!strcmp (argv[i], "--perf") && i + 1 < argc)
            perf_dir = argv[++i];
        else if (!strcmp (argv[i], "--perf-stat") && i + 1 < argc) {
            perf_dir = argv[++i];
            s_perf_stat = true;
        } else if (!strcmp (argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf (stderr, "usage: qp-bench-bus [--smoke] [--messages N] [--size BYTES] "
                             "[--outstanding N] [--ipc] [--cpu-only] [--perf DIR | --perf-stat "
                             "DIR] [--json FILE]\n");
            return 2;
        }
    }
    if (n < 1000)
        n = 1000;
    if (size < 1 || size > 1000000)
        size = 600;
    zsys_init ();
    zsys_set_linger (0);
    printf ("bus: %ld messages\n", n);
    json_t *out = json_pack ("{s:I, s:I, s:I, s:s}", "messages", (json_int_t) n, "size",
                             (json_int_t) size, "outstanding", (json_int_t) s_outstanding,
                             "transport", s_ipc ? "ipc" : "tcp");
    if (!cpu_only) {
        double b300 = s_backlog (n, 300), b1500 = s_backlog (n, 1500);
        printf ("  backlog: bus RSS per waiting message: %.0f B (300-byte envelope), %.0f B "
                "(1,500-byte envelope)\n",
                b300, b1500);
        double fc = s_route (n, QPB_WINDOW_DEFAULT), plain = s_route (n, 0);
        printf ("  routing to one worker: %.0f msg/s with flow control (window %d), %.0f msg/s "
                "without\n",
                fc, QPB_WINDOW_DEFAULT, plain);
        json_object_set_new (
            out, "backlog_bytes_per_message",
            json_pack ("{s:f, s:f}", "envelope_300", b300, "envelope_1500", b1500));
        json_object_set_new (out, "route_msg_per_s",
                             json_pack ("{s:f, s:f, s:i}", "flow_control", fc, "no_flow_control",
                                        plain, "window", QPB_WINDOW_DEFAULT));
    }
    /* The bus's CPU per frame set routed (what qp-bench-stack's bus row divides by the
     * dossiers), CPU time rather than a rate: the machine is shared. */
    printf ("  bus CPU per frame set routed (%zu-byte envelopes, %ld outstanding, %s):\n", size,
            s_outstanding, s_ipc ? "ipc" : "tcp");
    json_t *cpu = json_object ();
    cpu_t c;
    if (s_cpu_work (n, size, false, perf_dir, &c) == 0) {
        s_cpu_print (&c);
        json_object_set_new (cpu, "work_reply", s_cpu_json (&c));
    } else
        printf ("  work+reply: not all replies came back\n");
    if (s_cpu_events (n, size, perf_dir, &c) == 0) {
        s_cpu_print (&c);
        json_object_set_new (cpu, "events", s_cpu_json (&c));
    } else
        printf ("  events: not all events came through\n");
    if (s_cpu_work (n, size, true, perf_dir, &c) == 0) {
        s_cpu_print (&c);
        json_object_set_new (cpu, "work_reply_tap", s_cpu_json (&c));
    } else
        printf ("  work+reply, tap on: not all replies came back\n");
    json_object_set_new (out, "cpu", cpu);
    if (json_path && json_dump_file (out, json_path, JSON_INDENT (2)) != 0)
        fprintf (stderr, "qp-bench-bus: cannot write %s\n", json_path);
    json_decref (out);
    return 0;
}
