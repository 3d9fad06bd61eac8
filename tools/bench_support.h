/* bench_support: what the benchmarks in tools/ share to run real programs on this
 * machine: free loopback ports, the bus's endpoints in the environment, starting and
 * stopping a program, a process's memory from /proc, the clock, sorting figures and
 * reading Redis's INFO. */
#ifndef BENCH_SUPPORT_H
#define BENCH_SUPPORT_H
#include "qp_redis.h"
#include <stddef.h>
#include <sys/types.h>

/* An ephemeral loopback port (bound on 127.0.0.1:0 then closed), or -1. */
int bench_free_port (void);
/* Sets QP_BUS_WORK, QP_BUS_PARTNER, QP_BUS_PUBLISH, QP_BUS_SUBSCRIBE and QP_BUS_CAPTURE
 * to tcp://127.0.0.1:PORT on free ports, for the programs started next; work (may be
 * NULL) gets the work endpoint. */
void bench_bus_env (char *work, size_t size);
/* Starts argv[0] (searched in PATH when it has no '/') with this environment, its stdout
 * to out_path and its stderr to err_path (created or truncated; NULL: inherited).
 * Returns its pid, -1 when it cannot be started. */
pid_t bench_spawn (char *const argv[], const char *out_path, const char *err_path);
/* A private redis-server for a benchmark that measures Redis alone: on a free loopback
 * port, in a fresh temp dir, with the deployed hash settings (hash-max-listpack-value
 * 2048), no RDB saves, then the settings given (NULL-terminated "--name", "value"
 * pairs; e.g. "--appendonly", "yes"). Returns its connection (10 s to come up), NULL
 * when it cannot start. */
typedef struct {
    pid_t pid;
    char dir[64];
    qp_redis_t *redis;
} bench_redis_t;
int bench_redis_start (bench_redis_t *self, const char *const *settings);
/* Disconnects, stops it and removes its dir. 0, or -1 when the dir stayed. */
int bench_redis_stop (bench_redis_t *self);
/* SIGTERM, then waits for it to exit (pid <= 0: nothing to stop). */
void bench_stop (pid_t pid);
/* kB of a line of /proc/PID/status ("VmRSS", "VmHWM"), -1 when absent. */
long bench_status_kb (pid_t pid, const char *field);
/* Seconds on the monotonic clock (differences only). */
double bench_now (void);
/* qsort comparator of doubles, ascending (percentiles). */
int bench_cmp_double (const void *a, const void *b);
/* An integer field of INFO section ("memory", "used_memory"), -1 when absent or no
 * answer. */
long long bench_redis_info (qp_redis_t *redis, const char *section, const char *field);
#endif
