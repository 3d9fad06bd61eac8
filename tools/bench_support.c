/* bench_support: shared by the benchmarks in tools/ (see bench_support.h). */
#include "bench_support.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int bench_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind (fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname (fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs (a.sin_port);
    if (fd >= 0)
        close (fd);
    return port;
}

void bench_bus_env (char *work, size_t size)
{
    static const char *names[] = {"QP_BUS_WORK", "QP_BUS_PARTNER", "QP_BUS_PUBLISH",
                                  "QP_BUS_SUBSCRIBE", "QP_BUS_CAPTURE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char ep[64];
        snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d", bench_free_port ());
        setenv (names[i], ep, 1);
        if (i == 0 && work)
            snprintf (work, size, "%s", ep);
    }
}

pid_t bench_spawn (char *const argv[], const char *out_path, const char *err_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    if (out_path)
        posix_spawn_file_actions_addopen (&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err_path)
        posix_spawn_file_actions_addopen (&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawnp (&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&fa);
    return rc == 0 ? pid : -1;
}

void bench_stop (pid_t pid)
{
    if (pid <= 0)
        return;
    kill (pid, SIGTERM);
    waitpid (pid, NULL, 0);
}

int bench_redis_start (bench_redis_t *self, const char *const *settings)
{
    memset (self, 0, sizeof *self);
    snprintf (self->dir, sizeof self->dir, "/tmp/qp-bench-redis-XXXXXX");
    if (!mkdtemp (self->dir))
        return -1;
    int port = bench_free_port ();
    char port_s[16], log[96];
    snprintf (port_s, sizeof port_s, "%d", port);
    snprintf (log, sizeof log, "%s/redis.log", self->dir);
    const char *base[] = {"redis-server", "--bind",    "127.0.0.1", "--port",    port_s,
                          "--dir",        self->dir,   "--save",    "",          "--daemonize",
                          "no",           "--logfile", log,         "--hash-max-listpack-value",
                          "2048"}; /* as deployed */
    size_t nb = sizeof base / sizeof base[0], ns = 0;
    while (settings && settings[ns])
        ns++;
    char **argv = calloc (nb + ns + 1, sizeof *argv);
    if (!argv)
        return -1;
    memcpy (argv, base, sizeof base);
    for (size_t i = 0; i < ns; i++)
        argv[nb + i] = (char *) settings[i];
    self->pid = bench_spawn (argv, NULL, NULL);
    free (argv);
    if (self->pid > 0)
        self->redis = qp_redis_connect ("127.0.0.1", port, 10000);
    if (!self->redis) {
        fprintf (stderr, "cannot start redis-server\n");
        bench_redis_stop (self);
        return -1;
    }
    return 0;
}

int bench_redis_stop (bench_redis_t *self)
{
    qp_redis_destroy (&self->redis);
    bench_stop (self->pid);
    self->pid = 0;
    if (!self->dir[0])
        return 0;
    char cmd[128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", self->dir);
    self->dir[0] = 0;
    return system (cmd) == 0 ? 0 : -1;
}

long bench_status_kb (pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen (path, "r");
    long kb = -1;
    size_t n = strlen (field);
    while (f && fgets (line, sizeof line, f))
        if (!strncmp (line, field, n) && line[n] == ':')
            kb = atol (line + n + 1);
    if (f)
        fclose (f);
    return kb;
}

double bench_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int bench_cmp_double (const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

long long bench_redis_info (qp_redis_t *redis, const char *section, const char *field)
{
    redisReply *r = qp_redis_command (redis, "INFO %s", section);
    long long v = -1;
    char needle[96];
    snprintf (needle, sizeof needle, "\n%s:", field); /* the whole name, at a line's start */
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr (r->str, needle);
        if (p)
            v = atoll (p + strlen (needle));
    }
    if (r)
        freeReplyObject (r);
    return v;
}
