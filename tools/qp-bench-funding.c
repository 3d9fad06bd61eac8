/* qp-bench-funding: orchestration throughput with real processes. Starts redis-server
 * (AOF, appendfsync everysec), qp-bus, F qp-funding instances and the Bpifrance default
 * component, stores N ELIGIBLE dossiers (one PHQ leg each), sends their
 * EligibilityDecided at once and times until every one is closed (FUNDED, or DECLINED /
 * UNFUNDED by the component's rule). Prints dossiers per second with the target,
 * Redis round trips per dossier (every funding instance's qp_redis_round_trips_total, read
 * from its /metrics), Redis commands per dossier (INFO commandstats: the commands scripts
 * run included) and the ten most frequent, CPU ms per 1,000 dossiers of each program
 * (/proc/PID/stat over the timed part), and each funding instance's RSS (VmRSS now,
 * VmHWM peak) next to the 50 MB target, beside the figures of the code before batching;
 * --json FILE writes the same; --smoke runs a few seconds. Asserts nothing.
 *
 *   qp-bench-funding [--smoke] [--json FILE] [--dossiers N] [--funding F] [--pad BYTES]
 *                    [--rate PER_S] [--aof-bytes]
 *
 * --pad BYTES makes every EligibilityDecided that much larger (a not-eligible decision
 * padded to that size), as eligibility's full decisions were (~17 KB before they were made
 * compact): funding's RSS while a burst waits in its inbox depends on it. --rate sends on
 * a schedule instead of all at once (the figure is then the offered rate at best; RSS
 * shows what processing keeps, without a burst waiting in the inbox).
 * --aof-bytes turns Redis's automatic AOF rewrites off for the timed part (a rewrite
 * shrinks the file) and prints how many bytes the AOF grew by per dossier: every write a
 * script makes is one more command in it.
 * Environment: QP_BUILD_DIR (programs), QP_SOURCE_DIR (data/catalogue, data/funding.json). */
#include "bench_support.h"
#include "qp_bus.h"
#include "qp_redis.h"
#include "qp_store.h"
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define TARGET_PER_S 10000.0
#define TARGET_RSS_MB 50.0
/* The same bench (8,000 dossiers, 2 instances) on the code before batching (commit
 * 90056ec, one dossier at a time), measured 2026-11-24 09:16 UTC on this machine. */
#define BEFORE_PER_S 2210.0
#define BEFORE_TRIPS 15.0
#define BEFORE_COMMANDS 55.2

static pid_t s_pids[16];
static int s_n_pids;

/* Starts argv[0] with its stderr in DIR/LOG.log; its pid joins s_pids. */
static void s_spawn (const char *dir, const char *log, char *const argv[])
{
    char path[1200];
    snprintf (path, sizeof path, "%s/%s.log", dir, log);
    pid_t pid = bench_spawn (argv, "/dev/null", path);
    if (pid > 0)
        s_pids[s_n_pids++] = pid;
    else
        fprintf (stderr, "qp-bench-funding: cannot start %s\n", argv[0]);
}

static void s_stop_all (void)
{
    for (int i = s_n_pids - 1; i >= 0; i--)
        kill (s_pids[i], SIGTERM);
    for (int i = s_n_pids - 1; i >= 0; i--)
        waitpid (s_pids[i], NULL, 0);
}

static long long s_int (redisReply *r)
{
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject (r);
    return v;
}

/* GET /metrics of a program started with QP_HTTP=127.0.0.1:port: the value of one
 * unlabelled series, -1 when unreachable. */
static double s_metric (int port, const char *name)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                            .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    double v = -1;
    if (fd < 0 || connect (fd, (struct sockaddr *) &a, sizeof a) != 0) {
        if (fd >= 0)
            close (fd);
        return v;
    }
    const char *req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write (fd, req, strlen (req)) < 0) {
        close (fd);
        return v;
    }
    size_t size = 1 << 16, len = 0;
    char *body = malloc (size);
    ssize_t got;
    while ((got = read (fd, body + len, size - len - 1)) > 0) {
        len += (size_t) got;
        if (len + 1 == size)
            body = realloc (body, size *= 2);
    }
    body[len] = 0;
    close (fd);
    char needle[128];
    snprintf (needle, sizeof needle, "\n%s ", name);
    const char *hit = strstr (body, needle);
    if (hit)
        v = atof (hit + strlen (needle));
    free (body);
    return v;
}

static double s_trips (const int *ports, long n)
{
    double sum = 0;
    for (long i = 0; i < n; i++) {
        double v = s_metric (ports[i], "qp_redis_round_trips_total");
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

/* CPU seconds (user + system) a process used so far, -1 when gone. */
static double s_cpu_s (pid_t pid)
{
    char path[64], buf[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    size_t len = f ? fread (buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose (f);
    buf[len] = 0;
    const char *p = strrchr (buf, ')'); /* the command may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
}

typedef struct {
    char name[48];
    long long calls;
} command_t;

static int s_by_calls (const void *a, const void *b)
{
    long long d = ((const command_t *) b)->calls - ((const command_t *) a)->calls;
    return d > 0 ? 1 : d < 0 ? -1 : 0;
}

/* INFO commandstats: calls per command, most frequent first. Returns how many. */
static size_t s_commandstats (qp_redis_t *redis, command_t *out, size_t max)
{
    redisReply *r = qp_redis_command (redis, "INFO commandstats");
    size_t n = 0;
    const char *p = r && r->type == REDIS_REPLY_STRING ? r->str : "";
    while ((p = strstr (p, "cmdstat_")) && n < max) {
        p += 8;
        const char *colon = strchr (p, ':'), *calls = strstr (p, "calls=");
        if (!colon || !calls)
            break;
        snprintf (out[n].name, sizeof out[n].name, "%.*s", (int) (colon - p), p);
        out[n++].calls = atoll (calls + 6);
    }
    if (r)
        freeReplyObject (r);
    qsort (out, n, sizeof *out, s_by_calls);
    return n;
}

/* Waits until the bus lists service with a live worker. */
static bool s_wait_service (const char *work, const char *service, int timeout_ms)
{
    char needle[160];
    snprintf (needle, sizeof needle, "\"%s\":{\"workers\":", service);
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        char *text = qp_bus_status (work, 500);
        char *hit = text ? strstr (text, needle) : NULL;
        bool ok = hit && atoi (hit + strlen (needle)) > 0;
        free (text);
        if (ok)
            return true;
        zclock_sleep (100);
    }
    return false;
}

int main (int argc, char *argv[])
{
    bool smoke = false;
    const char *json_path = NULL;
    long n = 20000, funding = 2, pad = 0;
    double rate_arg = 0;
    bool aof_bytes = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--smoke"))
            smoke = true;
        else if (!strcmp (argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp (argv[i], "--dossiers") && i + 1 < argc)
            n = atol (argv[++i]);
        else if (!strcmp (argv[i], "--funding") && i + 1 < argc)
            funding = atol (argv[++i]);
        else if (!strcmp (argv[i], "--pad") && i + 1 < argc)
            pad = atol (argv[++i]);
        else if (!strcmp (argv[i], "--rate") && i + 1 < argc)
            rate_arg = atof (argv[++i]);
        else if (!strcmp (argv[i], "--aof-bytes"))
            aof_bytes = true;
        else {
            fprintf (stderr, "usage: qp-bench-funding [--smoke] [--json FILE] [--dossiers N] "
                             "[--funding F] [--pad BYTES] [--rate PER_S] [--aof-bytes]\n");
            return 2;
        }
    }
    if (smoke)
        n = 1000;
    if (funding < 1 || funding > 8 || n < 1 || pad < 0 || pad > 1000000)
        return 2;
    const char *build = getenv ("QP_BUILD_DIR") ? getenv ("QP_BUILD_DIR") : "build";
    const char *source = getenv ("QP_SOURCE_DIR") ? getenv ("QP_SOURCE_DIR") : ".";
    zsys_init ();
    zsys_set_linger (100);
    char dir[] = "/tmp/qp-bench-funding-XXXXXX";
    if (!mkdtemp (dir))
        return 1;
    char cmd[4096];
    snprintf (cmd, sizeof cmd,
              "mkdir -p %s/data/catalogue %s/redis && cp %s/data/funding.json %s/data/ && "
              "cp %s/data/catalogue/phq.json %s/data/catalogue/ && printf '%%s' "
              "'{\"envelopes\":[{\"scheme\":\"phq\",\"total_cents\":1000000000000000,"
              "\"source\":\"bench\"}]}' > %s/data/envelopes.json",
              dir, dir, source, dir, source, dir, dir);
    if (system (cmd) != 0)
        return 1;
    bench_bus_env (NULL, 0);
    int redis_port = bench_free_port ();
    char value[256];
    snprintf (value, sizeof value, "%d", redis_port);
    setenv ("QP_REDIS_HOST", "127.0.0.1", 1);
    setenv ("QP_REDIS_PORT", value, 1);
    snprintf (cmd, sizeof cmd, "%s/data", dir);
    setenv ("QP_DATA_DIR", cmd, 1);
    setenv ("QP_LOG_LEVEL", "warn", 1);
    unsetenv ("QP_CURVE_DIR");

    char redis_dir[1100], port_s[16], bus[1100], fund[1100], partner[1100];
    snprintf (redis_dir, sizeof redis_dir, "%s/redis", dir);
    char redis_log[1100];
    snprintf (redis_log, sizeof redis_log, "%s/redis-server.log", dir);
    snprintf (port_s, sizeof port_s, "%d", redis_port);
    char *redis_argv[] = {"redis-server", "--bind", "127.0.0.1", "--port", port_s, "--dir",
                          redis_dir, "--appendonly", "yes", "--appendfsync", "everysec",
                          "--save", "", "--daemonize", "no", "--logfile", redis_log,
                          "--hash-max-listpack-value", "2048", NULL}; /* as deployed */
    s_spawn (dir, "redis", redis_argv);
    qp_redis_t *redis = qp_redis_connect ("127.0.0.1", redis_port, 10000);
    snprintf (bus, sizeof bus, "%s/services/qp-bus", build);
    snprintf (fund, sizeof fund, "%s/services/qp-funding", build);
    snprintf (partner, sizeof partner, "%s/partners/qp-partner-bpifrance", build);
    char *bus_argv[] = {bus, NULL}, *fund_argv[] = {fund, NULL}, *partner_argv[] = {partner, NULL};
    s_spawn (dir, "bus", bus_argv);
    int http[8];
    pid_t fund_pids[8];
    for (long i = 0; i < funding; i++) {
        char log[32], listen[64];
        snprintf (log, sizeof log, "funding.%ld", i);
        http[i] = bench_free_port ();
        snprintf (listen, sizeof listen, "127.0.0.1:%d", http[i]);
        setenv ("QP_HTTP", listen, 1);
        s_spawn (dir, log, fund_argv);
        fund_pids[i] = s_pids[s_n_pids - 1];
    }
    unsetenv ("QP_HTTP");
    s_spawn (dir, "partner-bpifrance", partner_argv);
    const char *work = getenv ("QP_BUS_WORK");
    if (!redis || !s_wait_service (work, "funding", 15000) ||
        !s_wait_service (work, "partner.BPIFRANCE.bpifrance-default", 15000)) {
        fprintf (stderr, "qp-bench-funding: the stack did not start (logs in %s)\n", dir);
        s_stop_all ();
        return 1;
    }

    /* N ELIGIBLE dossiers, as eligibility leaves them (not timed). 1 in 10 brings too
     * little of the financing need: the component declines it. */
    Qp__V1__EligibilityDecided **decided = calloc ((size_t) n, sizeof *decided);
    char (*ids)[24] = calloc ((size_t) n, sizeof *ids);
    int64_t t = 1741564800000;
    for (long i = 0; i < n; i++) {
        snprintf (ids[i], sizeof ids[i], "b%07ld", i);
        Qp__V1__Project p = QP__V1__PROJECT__INIT;
        p.has_financing_need_cents = true, p.financing_need_cents = 5000000;
        p.has_personal_contribution_cents = true;
        p.personal_contribution_cents = i % 10 == 1 ? 100000 : 1000000;
        p.has_bank_loan_cents = true, p.bank_loan_cents = 3000000;
        p.has_honour_loan_months = true, p.honour_loan_months = 36;
        Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
        d.project = &p;
        d.territory = "roubaix";
        Qp__V1__DossierState st;
        qp_store_create (redis, ids[i], &d, "roubaix", t, "m0", &st);
        Qp__V1__EligibilityDecided *e = calloc (1, sizeof *e);
        qp__v1__eligibility_decided__init (e);
        Qp__V1__SchemeDecision *sd = calloc (1, sizeof *sd);
        qp__v1__scheme_decision__init (sd);
        sd->scheme_id = "phq";
        sd->has_agency = true, sd->agency = QP__V1__AGENCY__BPIFRANCE;
        sd->has_outcome = true, sd->outcome = QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
        sd->has_amount_cents = true, sd->amount_cents = 500000 + (i % 100) * 10000;
        e->dossier_id = ids[i];
        e->territory = "roubaix";
        e->n_decisions = pad ? 2 : 1;
        e->decisions = calloc (2, sizeof *e->decisions);
        e->decisions[0] = sd;
        if (pad) {
            static Qp__V1__SchemeDecision other = QP__V1__SCHEME_DECISION__INIT;
            static char *reason;
            if (!reason) {
                reason = malloc ((size_t) pad + 1);
                memset (reason, 'x', (size_t) pad);
                reason[pad] = 0;
                other.scheme_id = "zfu-te";
                other.has_outcome = true, other.outcome = QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME;
                other.scheme_name = reason; /* padding */
            }
            e->decisions[1] = &other;
        }
        size_t len = qp__v1__eligibility_decided__get_packed_size (e);
        uint8_t *buf = malloc (len);
        qp__v1__eligibility_decided__pack (e, buf);
        qp_store_field_t f[] = {{"eligibility", buf, len}};
        qp_store_transition (redis, ids[i], QP__V1__DOSSIER_STATE__RECEIVED,
                             QP__V1__DOSSIER_STATE__ELIGIBLE, t, "m1", "bench", f, 1, &st);
        free (buf);
        decided[i] = e;
    }
    if (rate_arg > 0) {
        /* Sent on a schedule, a dossier waits up to n / rate for its decision: its ELIGIBLE
         * lease (10 s from now) must not bring it back through the sweeper first. */
        char until[24];
        snprintf (until, sizeof until, "%lld",
                  (long long) (qp_now_ms () + 10000 + (int64_t) (1000.0 * n / rate_arg)));
        for (long i = 0; i < n; i += 1000) {
            const char *argv[3 + 2 * 1000];
            int argc = 0;
            argv[argc++] = "ZADD", argv[argc++] = "qp:pending:ELIGIBLE", argv[argc++] = "XX";
            for (long j = i; j < n && j < i + 1000; j++)
                argv[argc++] = until, argv[argc++] = ids[j];
            redisReply *z = qp_redis_argv (redis, argc, argv, NULL);
            if (z)
                freeReplyObject (z);
        }
    }
    zclock_sleep (500); /* the component's hello is in the partner cache */

    qp_redis_t *stats = qp_redis_connect ("127.0.0.1", redis_port, 10000);
    redisReply *reset = qp_redis_command (stats, "CONFIG RESETSTAT");
    if (reset)
        freeReplyObject (reset);
    long long commands0 = bench_redis_info (redis, "stats", "total_commands_processed");
    if (aof_bytes) {
        redisReply *off = qp_redis_command (stats, "CONFIG SET auto-aof-rewrite-percentage 0");
        if (off)
            freeReplyObject (off);
    }
    long long aof0 = bench_redis_info (redis, "persistence", "aof_current_size");
    double trips0 = s_trips (http, funding);
    qp_bus_client_t *client = qp_bus_client_new (work);
    /* CPU of each program over the timed part: redis, bus, funding..., partner. */
    double cpu0[16];
    for (int i = 0; i < s_n_pids; i++)
        cpu0[i] = s_cpu_s (s_pids[i]);
    double t0 = bench_now ();
    for (long i = 0; i < n; i++) {
        /* --rate: on a schedule (the inbox stays short: RSS is what processing costs). */
        while (rate_arg > 0 && bench_now () - t0 < (double) i / rate_arg)
            zclock_sleep (1);
        qp_meta_t meta = {.correlation_id = ids[i], .discriminator = ids[i], .event_time_ms = t};
        zmsg_t *m = qp_message_build (&decided[i]->base, &meta, NULL);
        qp_bus_client_send (client, "funding", &m);
    }
    double sent = bench_now (), t1 = 0;
    long long left = n;
    while (bench_now () - t0 < (smoke ? 60 : 600)) {
        left = s_int (qp_redis_command (redis, "ZCARD qp:pending:ELIGIBLE")) +
               s_int (qp_redis_command (redis, "ZCARD qp:pending:FUNDING_REQUESTED"));
        if (left == 0) {
            t1 = bench_now ();
            break;
        }
        zclock_sleep (20);
    }
    long long commands = bench_redis_info (redis, "stats", "total_commands_processed") - commands0;
    double trips = s_trips (http, funding) - trips0;
    command_t top[64];
    size_t n_top = s_commandstats (stats, top, 64);
    long rss_kb = 0, hwm_kb = 0;
    for (long i = 0; i < funding; i++) {
        long r1 = bench_status_kb (fund_pids[i], "VmRSS");
        long h1 = bench_status_kb (fund_pids[i], "VmHWM");
        rss_kb = r1 > rss_kb ? r1 : rss_kb;
        hwm_kb = h1 > hwm_kb ? h1 : hwm_kb;
    }
    redisReply *r = qp_redis_command (redis, "HGET qp:envelope:{phq} projects");
    long long funded = r && r->type == REDIS_REPLY_STRING ? atoll (r->str) : -1;
    if (r)
        freeReplyObject (r);
    double secs = t1 > 0 ? t1 - t0 : bench_now () - t0;
    /* CPU ms per 1,000 dossiers, by program (funding instances summed). */
    double cpu_redis = s_cpu_s (s_pids[0]) - cpu0[0], cpu_bus = s_cpu_s (s_pids[1]) - cpu0[1];
    double cpu_funding = 0, cpu_partner = s_cpu_s (s_pids[s_n_pids - 1]) - cpu0[s_n_pids - 1];
    for (int i = 2; i < s_n_pids - 1; i++)
        cpu_funding += s_cpu_s (s_pids[i]) - cpu0[i];
    double per_k = 1e6 / (double) n; /* s per run -> ms per 1,000 dossiers */
    double rate = t1 > 0 ? n / secs : 0;
    /* After the CPU figures: a write can wait up to 2 s behind a slow fsync (everysec). */
    if (aof_bytes)
        zclock_sleep (2000);
    long long aof = bench_redis_info (redis, "persistence", "aof_current_size") - aof0;

    printf ("funding orchestration (%ld dossiers, %ld funding instance%s, 1 Bpifrance "
            "component, Redis AOF everysec%s%s)\n",
            n, funding, funding > 1 ? "s" : "", pad ? ", padded decisions" : "",
            rate_arg > 0 ? ", sent on a schedule" : "");
    printf ("  %-40s %12s %12s %14s\n", "figure", "measured", "target", "before batching");
    printf ("  %-40s %12.0f %12.0f %14.0f\n", "dossiers closed per second", rate, TARGET_PER_S,
            BEFORE_PER_S);
    printf ("  %-40s %12.2f %12s\n", "seconds, send to last closed", secs, "");
    printf ("  %-40s %12.2f %12s\n", "seconds to send the decisions", sent - t0, "");
    printf ("  %-40s %12lld %12s\n", "funded (committed in the envelope)", funded, "");
    printf ("  %-40s %12.2f %12s %14.1f\n", "Redis round trips per dossier (funding)",
            trips >= 0 ? trips / n : -1, "", BEFORE_TRIPS);
    printf ("  %-40s %12.1f %12s %14.1f\n", "Redis commands per dossier (in scripts too)",
            (double) commands / n, "", BEFORE_COMMANDS);
    if (aof_bytes)
        printf ("  %-40s %12.0f\n", "AOF bytes per dossier (rewrites off)", (double) aof / n);
    printf ("  %-40s %12.1f %12.0f\n", "funding RSS now, MB (largest instance)", rss_kb / 1024.0,
            TARGET_RSS_MB);
    printf ("  %-40s %12.1f %12.0f\n", "funding peak RSS (VmHWM), MB", hwm_kb / 1024.0,
            TARGET_RSS_MB);
    printf ("  CPU ms per 1,000 dossiers: redis %.0f, bus %.0f, funding %.0f (all instances), "
            "partner %.0f\n",
            cpu_redis * per_k, cpu_bus * per_k, cpu_funding * per_k, cpu_partner * per_k);
    printf ("  Redis calls per dossier by command:");
    for (size_t i = 0; i < n_top && i < 10; i++)
        printf ("%s %s %.2f", i ? "," : "", top[i].name, (double) top[i].calls / n);
    printf ("\n");
    if (t1 == 0)
        printf ("  not finished: %lld dossiers still open (logs in %s)\n", left, dir);

    if (json_path) {
        json_t *j = json_pack ("{s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:b}",
                               "bench", "funding", "dossiers", (json_int_t) n,
                               "funding_instances", (json_int_t) funding, "pad_bytes",
                               (json_int_t) pad, "offered_per_s", rate_arg, "dossiers_per_s", rate,
                               "target_dossiers_per_s",
                               TARGET_PER_S, "seconds", secs, "funded", (json_int_t) funded,
                               "redis_round_trips_per_dossier", trips >= 0 ? trips / n : -1.0,
                               "redis_commands_per_dossier", (double) commands / n,
                               "funding_rss_mb", rss_kb / 1024.0, "funding_peak_rss_mb",
                               hwm_kb / 1024.0, "finished", t1 > 0);
        json_t *by = json_object ();
        for (size_t i = 0; i < n_top; i++)
            json_object_set_new (by, top[i].name, json_real ((double) top[i].calls / n));
        json_object_set_new (j, "redis_calls_per_dossier_by_command", by);
        if (aof_bytes)
            json_object_set_new (j, "aof_bytes_per_dossier", json_real ((double) aof / n));
        json_object_set_new (j, "cpu_ms_per_1000_dossiers",
                             json_pack ("{s:f, s:f, s:f, s:f}", "redis", cpu_redis * per_k, "bus",
                                        cpu_bus * per_k, "funding", cpu_funding * per_k,
                                        "partner", cpu_partner * per_k));
        json_t *before = json_pack ("{s:s, s:f, s:f, s:f}", "code", "90056ec (one dossier at a time)",
                                    "dossiers_per_s", BEFORE_PER_S, "redis_round_trips_per_dossier",
                                    BEFORE_TRIPS, "redis_commands_per_dossier", BEFORE_COMMANDS);
        json_object_set_new (j, "before_batching", before);
        json_dump_file (j, json_path, JSON_INDENT (2));
        json_decref (j);
    }
    qp_bus_client_destroy (&client);
    qp_redis_destroy (&redis);
    qp_redis_destroy (&stats);
    s_stop_all ();
    if (t1 > 0) {
        snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
        if (system (cmd) != 0)
            fprintf (stderr, "qp-bench-funding: could not remove %s\n", dir);
    }
    for (long i = 0; i < n; i++) {
        free (decided[i]->decisions[0]);
        free (decided[i]->decisions);
        free (decided[i]);
    }
    free (decided);
    free (ids);
    return 0;
}
