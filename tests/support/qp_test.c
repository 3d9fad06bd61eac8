/* Test harness: real redis-server and qp-* processes on free loopback ports. */
/* nftw, vasprintf, FTW_* (the build also passes -D_GNU_SOURCE). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "qp_test.h"
#include "qp_bus.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DUMP_LINES 40

const char *qp_test_source_dir (void)
{
    const char *s = getenv ("QP_SOURCE_DIR");
    return s ? s : ".";
}

const char *qp_test_build_dir (void)
{
    const char *s = getenv ("QP_BUILD_DIR");
    return s ? s : "build";
}

static char *s_strdupf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *s_strdupf (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *out = NULL;
    if (vasprintf (&out, fmt, ap) < 0)
        out = NULL;
    va_end (ap);
    assert (out);
    return out;
}

static int64_t s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qp_test_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

int qp_test_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind (fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname (fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs (a.sin_port);
    close (fd);
    return port;
}

static int s_rm (const char *path, const struct stat *sb, int flag, struct FTW *ftw);
static void s_tail (const char *label, const char *path, int lines);

/* ---- Cleanup at exit ----------------------------------------------------------- */

/* What the test process started and has not cleaned up yet. The lists are inherited by
 * check's forked children, so each entry remembers its owner pid. */
static qp_test_proc_t *s_procs;
typedef struct s_dir {
    char *path;
    pid_t owner;
    struct s_dir *next;
} s_dir_t;
static s_dir_t *s_dirs;
static bool s_atexit_set;

/* Every temp dir lives under one root made by the test program's main process. A forked
 * check test that fails leaves with _exit (no atexit in the child): its dirs stay under
 * the root, and the main process prints their logs and removes the root at exit. */
static char *s_root;
static pid_t s_root_owner;

static int s_dump_leftover (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    size_t n = strlen (path);
    bool log = n > 4 && (!strcmp (path + n - 4, ".log") || !strcmp (path + n - 4, ".out"));
    if (flag == FTW_F && log && sb->st_size > 0)
        s_tail ("left behind by a failed test", path, DUMP_LINES);
    return 0;
}

static void s_at_exit (void)
{
    pid_t me = getpid ();
    for (qp_test_proc_t *p = s_procs; p; p = p->next)
        if (p->owner == me && p->pid > 0)
            qp_test_proc_kill (p);
    for (s_dir_t *d = s_dirs; d; d = d->next)
        if (d->owner == me && !getenv ("QP_TEST_KEEP"))
            nftw (d->path, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    if (s_root && s_root_owner == me) {
        nftw (s_root, s_dump_leftover, 16, FTW_PHYS);
        if (getenv ("QP_TEST_KEEP"))
            fprintf (stderr, "qp_test: temp dirs kept in %s\n", s_root);
        else
            nftw (s_root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
        free (s_root);
        s_root = NULL;
    }
}

static void s_register_atexit (void)
{
    if (!s_atexit_set) {
        atexit (s_at_exit);
        s_atexit_set = true;
    }
}

/* Before main, so the root belongs to check's runner process, not to a forked test. */
__attribute__ ((constructor)) static void s_make_root (void)
{
    const char *base = getenv ("TMPDIR");
    char *path = s_strdupf ("%s/qp-test-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp (path)) {
        s_root = path;
        s_root_owner = getpid ();
        s_register_atexit ();
    } else
        free (path);
}

static void s_dir_forget (const char *path)
{
    for (s_dir_t **d = &s_dirs; *d; d = &(*d)->next)
        if (!strcmp ((*d)->path, path)) {
            s_dir_t *gone = *d;
            *d = gone->next;
            free (gone->path);
            free (gone);
            return;
        }
}

char *qp_test_tmpdir (const char *prefix)
{
    const char *base = s_root ? s_root : getenv ("TMPDIR");
    char *path = s_strdupf ("%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix ? prefix : "qp");
    if (!mkdtemp (path)) {
        free (path);
        return NULL;
    }
    if (!getenv ("QP_TEST_KEEP")) {
        s_register_atexit ();
        s_dir_t *d = calloc (1, sizeof *d);
        assert (d);
        d->path = strdup (path);
        d->owner = getpid ();
        d->next = s_dirs;
        s_dirs = d;
    }
    return path;
}

static int s_rm (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove (path);
}

int qp_test_rmtree (const char *dir)
{
    if (!dir)
        return 0;
    s_dir_forget (dir);
    if (getenv ("QP_TEST_KEEP"))
        return 0;
    return nftw (dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- Processes ----------------------------------------------------------------- */

static bool s_executable (const char *path)
{
    return access (path, X_OK) == 0;
}

char *qp_test_program_path (const char *name)
{
    if (strchr (name, '/'))
        return s_executable (name) ? strdup (name) : NULL;
    const char *b = qp_test_build_dir ();
    char *c[] = {s_strdupf ("%s/services/qp-%s", b, name), s_strdupf ("%s/partners/qp-%s", b, name),
                 s_strdupf ("%s/tools/qp-%s", b, name)};
    char *found = NULL;
    for (int i = 0; i < 3; i++) {
        if (!found && s_executable (c[i]))
            found = c[i];
        else
            free (c[i]);
    }
    return found;
}

/* environ overlaid with env (same NAME replaced). The strings are borrowed. */
static char **s_build_env (const char *const *env)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (env && env[m])
        m++;
    char **out = calloc (n + m + 1, sizeof *out);
    assert (out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr (environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen (environ[i]);
        bool overridden = false;
        for (size_t j = 0; j < m && !overridden; j++)
            overridden = !strncmp (env[j], environ[i], len) && env[j][len] == '=';
        if (!overridden)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++) {
        const char *eq = strchr (env[j], '=');
        size_t len = eq ? (size_t)(eq - env[j]) : strlen (env[j]);
        bool later = false; /* the last of duplicate names wins */
        for (size_t l = j + 1; l < m && !later; l++)
            later = !strncmp (env[l], env[j], len) && env[l][len] == '=';
        if (!later)
            out[k++] = (char *)env[j];
    }
    return out;
}

/* A log file name not used yet in dir: NAME.EXT, NAME.2.EXT, ... */
static char *s_log_name (const char *dir, const char *name, const char *ext)
{
    char *path = s_strdupf ("%s/%s.%s", dir, name, ext);
    for (int i = 2; access (path, F_OK) == 0; i++) {
        free (path);
        path = s_strdupf ("%s/%s.%d.%s", dir, name, i, ext);
    }
    return path;
}

qp_test_proc_t *qp_test_spawn (const char *program, const char *const *env, const char *const *args,
                               const char *log_dir)
{
    char *path = qp_test_program_path (program);
    if (!path) {
        fprintf (stderr, "qp_test: no program \"%s\" in %s (is it built?)\n", program,
                 qp_test_build_dir ());
        return NULL;
    }
    qp_test_proc_t *self = calloc (1, sizeof *self);
    assert (self);
    self->path = path;
    const char *base = strrchr (program, '/') ? strrchr (program, '/') + 1 : program;
    if (!strncmp (base, "qp-", 3))
        base += 3;
    snprintf (self->name, sizeof self->name, "%s", base);
    if (!log_dir) {
        self->own_dir = qp_test_tmpdir ("qp-proc");
        log_dir = self->own_dir;
    }
    if (!log_dir) {
        free (self->path);
        free (self);
        return NULL;
    }
    /* Create both files now: the stderr name must not be taken by a later spawn. */
    self->log_path = s_log_name (log_dir, self->name, "log");
    int errfd = open (self->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    self->out_path = s_log_name (log_dir, self->name, "out");
    int outfd = open (self->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int nullfd = open ("/dev/null", O_RDONLY | O_CLOEXEC);

    size_t nargs = 0;
    while (args && args[nargs])
        nargs++;
    char **argv = calloc (nargs + 2, sizeof *argv);
    assert (argv);
    argv[0] = self->path;
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = (char *)args[i];
    char **envp = s_build_env (env);
    pid_t parent = getpid ();

    s_register_atexit ();
    pid_t pid = errfd < 0 || outfd < 0 || nullfd < 0 ? -1 : fork ();
    if (pid == 0) {
        /* Only async-signal-safe calls here: the test process has ZeroMQ threads. */
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        dup2 (nullfd, 0);
        dup2 (outfd, 1);
        dup2 (errfd, 2);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        signal (SIGPIPE, SIG_DFL);
        execve (self->path, argv, envp);
        _exit (127);
    }
    free (argv);
    free (envp);
    if (errfd >= 0)
        close (errfd);
    if (outfd >= 0)
        close (outfd);
    if (nullfd >= 0)
        close (nullfd);
    if (pid < 0) {
        fprintf (stderr, "qp_test: cannot start %s: %s\n", self->path, strerror (errno));
        self->pid = 0;
        qp_test_proc_destroy (&self);
        return NULL;
    }
    self->pid = pid;
    self->owner = parent;
    self->next = s_procs;
    s_procs = self;
    return self;
}

static int s_decode_status (int status)
{
    if (WIFEXITED (status))
        return WEXITSTATUS (status);
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return -1;
}

int qp_test_proc_exit_status (const qp_test_proc_t *self)
{
    return self->pid > 0 ? -1 : s_decode_status (self->status);
}

bool qp_test_proc_alive (qp_test_proc_t *self)
{
    if (!self || self->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid (self->pid, &status, WNOHANG);
    if (r == self->pid || (r < 0 && errno == ECHILD)) {
        self->status = r == self->pid ? status : 0;
        self->pid = 0;
        return false;
    }
    return true;
}

bool qp_test_proc_wait (qp_test_proc_t *self, int timeout_ms)
{
    int64_t deadline = s_mono_ms () + timeout_ms;
    while (qp_test_proc_alive (self)) {
        if (s_mono_ms () >= deadline)
            return false;
        qp_test_sleep_ms (5);
    }
    return true;
}

void qp_test_proc_kill (qp_test_proc_t *self)
{
    if (!self || self->pid <= 0)
        return;
    kill (self->pid, SIGKILL);
    int status;
    if (waitpid (self->pid, &status, 0) == self->pid)
        self->status = status;
    self->pid = 0;
}

bool qp_test_proc_stop_within (qp_test_proc_t *self, int sig, int timeout_ms, int *exit_status)
{
    bool clean = true;
    if (qp_test_proc_alive (self)) {
        kill (self->pid, sig);
        if (!qp_test_proc_wait (self, timeout_ms)) {
            fprintf (stderr, "qp_test: %s (pid %d) still running %d ms after signal %d: killed\n",
                     self->name, (int)self->pid, timeout_ms, sig);
            qp_test_proc_kill (self);
            clean = false;
        }
    }
    if (exit_status)
        *exit_status = qp_test_proc_exit_status (self);
    return clean;
}

/* A clean stop is asserted, not its speed: 5 s covers a loaded machine and the sanitizer
 * build's leak check at exit (2 s was missed there now and then, after service_stopping). */
bool qp_test_proc_stop (qp_test_proc_t *self, int *exit_status)
{
    return qp_test_proc_stop_within (self, SIGTERM, 5000, exit_status);
}

/* Prints the last lines lines of path, prefixed by label. */
static void s_tail (const char *label, const char *path, int lines)
{
    FILE *f = path ? fopen (path, "r") : NULL;
    if (!f)
        return;
    char **ring = calloc (lines, sizeof *ring);
    assert (ring);
    size_t count = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline (&line, &cap, f) >= 0) {
        free (ring[count % lines]);
        ring[count % lines] = strdup (line);
        count++;
    }
    free (line);
    fclose (f);
    if (count)
        fprintf (stderr, "---- %s (%s, last %d of %zu lines)\n", label, path,
                 (int)(count < (size_t)lines ? count : (size_t)lines), count);
    size_t start = count > (size_t)lines ? count - lines : 0;
    for (size_t i = start; i < count; i++) {
        const char *l = ring[i % lines];
        fprintf (stderr, "  %s%s", l, l[strlen (l) - 1] == '\n' ? "" : "\n");
    }
    for (int i = 0; i < lines; i++)
        free (ring[i]);
    free (ring);
}

void qp_test_proc_dump (const qp_test_proc_t *self, int lines)
{
    if (!self)
        return;
    char label[128];
    snprintf (label, sizeof label, "%s stderr", self->name);
    s_tail (label, self->log_path, lines > 0 ? lines : DUMP_LINES);
    snprintf (label, sizeof label, "%s stdout", self->name);
    s_tail (label, self->out_path, lines > 0 ? lines : DUMP_LINES);
}

int qp_test_proc_log_count (const qp_test_proc_t *self, const char *needle)
{
    FILE *f = fopen (self->log_path, "r");
    if (!f)
        return 0;
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline (&line, &cap, f) >= 0)
        n += strstr (line, needle) != NULL;
    free (line);
    fclose (f);
    return n;
}

void qp_test_proc_destroy (qp_test_proc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_test_proc_t *self = *self_p;
    qp_test_proc_kill (self);
    for (qp_test_proc_t **p = &s_procs; *p; p = &(*p)->next)
        if (*p == self) {
            *p = self->next;
            break;
        }
    if (self->own_dir) {
        qp_test_rmtree (self->own_dir);
        free (self->own_dir);
    }
    free (self->path);
    free (self->log_path);
    free (self->out_path);
    free (self);
    *self_p = NULL;
}

/* ---- Redis ------------------------------------------------------------------------ */

bool qp_test_redis_ping (const char *host, int port, int timeout_ms)
{
    int64_t deadline = s_mono_ms () + timeout_ms;
    do {
        struct timeval tv = {0, 500000};
        redisContext *c = redisConnectWithTimeout (host, port, tv);
        bool ok = false;
        if (c && !c->err) {
            redisSetTimeout (c, tv);
            redisReply *r = redisCommand (c, "PING");
            /* While loading the AOF Redis answers -LOADING: not ready yet. */
            ok = r && r->type == REDIS_REPLY_STATUS && !strcmp (r->str, "PONG");
            if (r)
                freeReplyObject (r);
        }
        if (c)
            redisFree (c);
        if (ok)
            return true;
        qp_test_sleep_ms (20);
    } while (s_mono_ms () < deadline);
    return false;
}

static char *s_redis_binary (void)
{
    const char *path = getenv ("PATH");
    char *copy = strdup (path ? path : "");
    char *found = NULL;
    for (char *save = NULL, *d = strtok_r (copy, ":", &save); d && !found;
         d = strtok_r (NULL, ":", &save)) {
        char *c = s_strdupf ("%s/redis-server", *d ? d : ".");
        if (s_executable (c))
            found = c;
        else
            free (c);
    }
    free (copy);
    if (!found && s_executable ("/usr/bin/redis-server"))
        found = strdup ("/usr/bin/redis-server");
    return found;
}

int qp_test_redis_up (qp_test_redis_t *self)
{
    if (self->proc && qp_test_proc_alive (self->proc))
        return 0;
    qp_test_proc_destroy (&self->proc);
    char *bin = s_redis_binary ();
    if (!bin) {
        fprintf (stderr, "qp_test: redis-server not found on PATH nor in /usr/bin\n");
        return -1;
    }
    char port[16];
    snprintf (port, sizeof port, "%d", self->port);
    /* hash-max-listpack-value as in deploy/ and ./qp up (docs/operations.md): a dossier's
     * hashes stay compact listpacks with their packed values (issue 8). */
    const char *args[] = {"--port",       port,     "--bind",
                          self->host,     "--save", "",
                          "--appendonly", "yes",    "--appendfsync",
                          "everysec",     "--dir",  self->dir,
                          "--daemonize",  "no",     "--hash-max-listpack-value",
                          "2048",         NULL};
    self->proc = qp_test_spawn (bin, NULL, args, self->dir);
    free (bin);
    if (!self->proc)
        return -1;
    snprintf (self->proc->name, sizeof self->proc->name, "redis");
    /* Redis exits at once when the port is taken; do not wait 10 s for nothing. */
    int64_t deadline = s_mono_ms () + 10000;
    while (s_mono_ms () < deadline) {
        if (qp_test_redis_ping (self->host, self->port, 100))
            return 0;
        if (!qp_test_proc_alive (self->proc))
            break;
    }
    fprintf (stderr, "qp_test: redis-server on port %d did not answer PING\n", self->port);
    qp_test_proc_dump (self->proc, DUMP_LINES);
    qp_test_proc_destroy (&self->proc);
    return -1;
}

int qp_test_redis_down (qp_test_redis_t *self, int sig)
{
    if (!self->proc)
        return 0;
    if (sig == SIGKILL)
        qp_test_proc_kill (self->proc);
    else
        qp_test_proc_stop_within (self->proc, sig, 3000, NULL);
    qp_test_proc_destroy (&self->proc);
    return 0;
}

int qp_test_redis_restart (qp_test_redis_t *self)
{
    qp_test_redis_down (self, SIGTERM);
    return qp_test_redis_up (self);
}

qp_test_redis_t *qp_test_redis_start (void)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        qp_test_redis_t *self = calloc (1, sizeof *self);
        assert (self);
        snprintf (self->host, sizeof self->host, "127.0.0.1");
        self->port = qp_test_free_port ();
        self->dir = qp_test_tmpdir ("qp-redis");
        if (self->port > 0 && self->dir && qp_test_redis_up (self) == 0)
            return self;
        qp_test_redis_stop (&self); /* the port may have been taken meanwhile: try another */
    }
    return NULL;
}

void qp_test_redis_stop (qp_test_redis_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_test_redis_t *self = *self_p;
    qp_test_redis_down (self, SIGTERM);
    if (self->dir) {
        qp_test_rmtree (self->dir);
        free (self->dir);
    }
    free (self);
    *self_p = NULL;
}

/* ---- Bus status ----------------------------------------------------------------- */

json_t *qp_test_bus_status (const char *work_endpoint, int timeout_ms)
{
    char *text = qp_bus_status (work_endpoint, timeout_ms);
    if (!text)
        return NULL;
    json_t *j = json_loads (text, 0, NULL);
    free (text);
    return j;
}

long qp_test_bus_service_stat (const char *work_endpoint, const char *service, const char *field)
{
    json_t *j = qp_test_bus_status (work_endpoint, 1000);
    if (!j)
        return -1;
    json_t *v = json_object_get (json_object_get (json_object_get (j, "services"), service), field);
    long out = json_is_integer (v) ? (long)json_integer_value (v) : -1;
    json_decref (j);
    return out;
}

int qp_test_bus_workers (const char *work_endpoint, const char *service)
{
    json_t *j = qp_test_bus_status (work_endpoint, 1000);
    if (!j)
        return -1;
    json_t *v =
        json_object_get (json_object_get (json_object_get (j, "services"), service), "workers");
    int out = json_is_integer (v) ? (int)json_integer_value (v) : 0;
    json_decref (j);
    return out;
}

bool qp_test_bus_wait_workers (const char *work_endpoint, const char *service, int min,
                               int timeout_ms)
{
    int64_t deadline = s_mono_ms () + timeout_ms;
    do {
        if (qp_test_bus_workers (work_endpoint, service) >= min)
            return true;
        qp_test_sleep_ms (20);
    } while (s_mono_ms () < deadline);
    return false;
}

/* ---- Stack -------------------------------------------------------------------------- */

static const char *s_log_level (const char *level)
{
    if (level)
        return level;
    const char *env = getenv ("QP_TEST_LOG_LEVEL");
    return env && *env ? env : "info";
}

#define STACK_ENV_VARS 10

/* Picks 5 distinct free ports and writes the endpoints and the environment. */
static int s_stack_ports (qp_test_stack_t *self, const char *log_level)
{
    int ports[5];
    for (int i = 0; i < 5; i++) {
        bool dup;
        do {
            ports[i] = qp_test_free_port ();
            if (ports[i] < 0)
                return -1;
            dup = false;
            for (int j = 0; j < i; j++)
                dup |= ports[j] == ports[i];
        } while (dup);
    }
    char *eps[] = {self->work, self->partner, self->publish, self->subscribe, self->capture};
    for (int i = 0; i < 5; i++)
        snprintf (eps[i], sizeof self->work, "tcp://127.0.0.1:%d", ports[i]);
    if (self->env)
        for (char **e = self->env; *e; e++)
            free (*e);
    free (self->env);
    self->env = calloc (STACK_ENV_VARS + 1, sizeof *self->env);
    assert (self->env);
    int k = 0;
    self->env[k++] = s_strdupf ("QP_BUS_WORK=%s", self->work);
    self->env[k++] = s_strdupf ("QP_BUS_PARTNER=%s", self->partner);
    self->env[k++] = s_strdupf ("QP_BUS_PUBLISH=%s", self->publish);
    self->env[k++] = s_strdupf ("QP_BUS_SUBSCRIBE=%s", self->subscribe);
    self->env[k++] = s_strdupf ("QP_BUS_CAPTURE=%s", self->capture);
    self->env[k++] = s_strdupf ("QP_REDIS_HOST=%s", self->redis ? self->redis->host : "127.0.0.1");
    /* Bus-only stacks point at a port nobody listens on. */
    self->env[k++] = s_strdupf ("QP_REDIS_PORT=%d", self->redis ? self->redis->port : 1);
    self->env[k++] = s_strdupf ("QP_DATA_DIR=%s/data", qp_test_source_dir ());
    self->env[k++] = s_strdupf ("QP_LOG_LEVEL=%s", log_level);
    assert (k <= STACK_ENV_VARS);
    return 0;
}

/* a + b + c (NULL-terminated lists, each may be NULL); the strings are borrowed. */
static char **s_env_join (char *const *a, const char *const *b, const char *const *c)
{
    const char *const *lists[] = {(const char *const *)a, b, c};
    size_t n = 0;
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            n++;
    char **out = calloc (n + 1, sizeof *out);
    assert (out);
    size_t k = 0;
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            out[k++] = (char *)lists[l][i];
    return out;
}

qp_test_proc_t *qp_test_stack_spawn (qp_test_stack_t *self, const char *program,
                                     const char *const *env)
{
    if (self->n_procs >= QP_TEST_STACK_MAX)
        return NULL;
    char **all = s_env_join (self->env, (const char *const *)self->extra_env, env);
    qp_test_proc_t *p = qp_test_spawn (program, (const char *const *)all, NULL, self->dir);
    free (all);
    if (p)
        self->procs[self->n_procs++] = p;
    return p;
}

bool qp_test_stack_wait (qp_test_stack_t *self, const char *const *services, int timeout_ms)
{
    int64_t deadline = s_mono_ms () + timeout_ms;
    for (size_t i = 0; services && services[i]; i++) {
        int left = (int)(deadline - s_mono_ms ());
        if (!qp_test_bus_wait_workers (self->work, services[i], 1, left > 0 ? left : 0)) {
            fprintf (stderr, "qp_test: no live worker for \"%s\" after %d ms\n", services[i],
                     timeout_ms);
            return false;
        }
    }
    return true;
}

void qp_test_stack_dump (const qp_test_stack_t *self, int lines)
{
    if (self->redis)
        qp_test_proc_dump (self->redis->proc, lines);
    qp_test_proc_dump (self->bus, lines);
    for (size_t i = 0; i < self->n_procs; i++)
        qp_test_proc_dump (self->procs[i], lines);
}

static void s_stack_free (qp_test_stack_t *self, bool dump)
{
    if (dump)
        qp_test_stack_dump (self, DUMP_LINES);
    for (size_t i = self->n_procs; i > 0; i--)
        qp_test_proc_destroy (&self->procs[i - 1]);
    qp_test_proc_destroy (&self->bus);
    qp_test_redis_stop (&self->redis);
    if (self->env)
        for (char **e = self->env; *e; e++)
            free (*e);
    free (self->env);
    for (char **e = self->extra_env; e && *e; e++)
        free (*e);
    free (self->extra_env);
    if (self->dir) {
        qp_test_rmtree (self->dir);
        free (self->dir);
    }
    free (self);
}

qp_test_stack_t *qp_test_stack_start (const qp_test_stack_opts_t *opts)
{
    qp_test_stack_opts_t none = {0};
    if (!opts)
        opts = &none;
    int timeout = opts->timeout_ms > 0 ? opts->timeout_ms : 15000;
    qp_test_stack_t *self = calloc (1, sizeof *self);
    assert (self);
    self->dir = qp_test_tmpdir ("qp-stack");
    if (!self->dir || (!opts->no_redis && !(self->redis = qp_test_redis_start ()))) {
        s_stack_free (self, true);
        return NULL;
    }
    /* A copy: callers build opts->env on their stack, and later spawns still need it. */
    size_t n_extra = 0;
    while (opts->env && opts->env[n_extra])
        n_extra++;
    self->extra_env = calloc (n_extra + 1, sizeof *self->extra_env);
    assert (self->extra_env);
    for (size_t i = 0; i < n_extra; i++)
        self->extra_env[i] = strdup (opts->env[i]);
    /* A free port may be taken before the bus binds it: the bus then exits, try again. */
    for (int attempt = 0; attempt < 3 && !self->bus; attempt++) {
        if (s_stack_ports (self, s_log_level (opts->log_level)) != 0)
            break;
        char **all = s_env_join (self->env, opts->env, NULL);
        self->bus = qp_test_spawn ("bus", (const char *const *)all, NULL, self->dir);
        free (all);
        if (!self->bus)
            break;
        int64_t deadline = s_mono_ms () + timeout;
        json_t *status = NULL;
        while (!status && qp_test_proc_alive (self->bus) && s_mono_ms () < deadline)
            status = qp_test_bus_status (self->work, 200);
        if (!status) {
            fprintf (stderr, "qp_test: the bus did not start on %s (attempt %d)\n", self->work,
                     attempt + 1);
            qp_test_proc_dump (self->bus, DUMP_LINES);
            qp_test_proc_destroy (&self->bus);
        }
        json_decref (status);
    }
    if (!self->bus) {
        s_stack_free (self, true);
        return NULL;
    }
    for (size_t i = 0; opts->programs && opts->programs[i]; i++)
        if (!qp_test_stack_spawn (self, opts->programs[i], NULL)) {
            s_stack_free (self, true);
            return NULL;
        }
    if (!qp_test_stack_wait (self, opts->wait_for, timeout)) {
        s_stack_free (self, true);
        return NULL;
    }
    return self;
}

int qp_test_stack_stop (qp_test_stack_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    qp_test_stack_t *self = *self_p;
    int unclean = 0;
    for (size_t i = self->n_procs; i > 0; i--) {
        qp_test_proc_t *p = self->procs[i - 1];
        int status;
        if (!qp_test_proc_stop (p, &status) || status != 0) {
            fprintf (stderr, "qp_test: %s did not stop cleanly (exit status %d)\n", p->name,
                     status);
            unclean++;
        }
    }
    int status;
    if (self->bus && (!qp_test_proc_stop (self->bus, &status) || status != 0)) {
        fprintf (stderr, "qp_test: the bus did not stop cleanly (exit status %d)\n", status);
        unclean++;
    }
    s_stack_free (self, unclean > 0 || getenv ("QP_TEST_DUMP_LOGS"));
    *self_p = NULL;
    return unclean;
}

/* ---- Client -------------------------------------------------------------------------- */

struct qp_test_client {
    qp_bus_client_t *bus;
    unsigned long calls;
};

qp_test_client_t *qp_test_client_new (const char *endpoint)
{
    qp_bus_client_t *bus = qp_bus_client_new (endpoint);
    if (!bus)
        return NULL;
    qp_test_client_t *self = calloc (1, sizeof *self);
    assert (self);
    self->bus = bus;
    return self;
}

void qp_test_client_destroy (qp_test_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_test_client_t *self = *self_p;
    zsock_set_linger (qp_bus_client_socket (self->bus), 0);
    qp_bus_client_destroy (&self->bus);
    free (self);
    *self_p = NULL;
}

/* Sends one payload; id gets its message id. */
static int s_client_send (qp_test_client_t *self, const char *service,
                          const ProtobufCMessage *payload, const qp_meta_t *meta,
                          char id[QP_ID_HEX + 1])
{
    char disc[96];
    qp_meta_t dflt = {0};
    if (!meta) {
        /* Unique in the process: a per-client count with the client's address repeated
         * when a new client got a freed one's address (qp_test_call makes a client per
         * call), and two submissions then had the same message id, so the same
         * SubmissionRefused id, which the evaluation counts once (test_outbox, flaky). */
        static unsigned long calls;
        snprintf (disc, sizeof disc, "qp-test:%d:%lu:%lu", (int)getpid (),
                  __atomic_add_fetch (&calls, 1, __ATOMIC_RELAXED), ++self->calls);
        dflt.discriminator = disc;
        dflt.event_time_ms = qp_now_ms ();
        dflt.producer = "qp-test";
        meta = &dflt;
    }
    zmsg_t *m = qp_message_build (payload, meta, id);
    return qp_bus_client_send (self->bus, service, &m);
}

/* Receives one frame set within timeout_ms: 1 DELIVER decoded into reply, 0 timeout,
 * -1 bus error or undecodable reply (err filled). */
static int s_client_recv (qp_test_client_t *self, int timeout_ms, qp_message_t *reply,
                          qp_error_t *err)
{
    memset (reply, 0, sizeof *reply);
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (self->bus), NULL);
    void *which = zpoller_wait (poller, timeout_ms > 0 ? timeout_ms : 0);
    zpoller_destroy (&poller);
    if (!which)
        return 0;
    qp_bus_frame_t f;
    int rc = -1;
    if (qp_bus_client_recv (self->bus, &f) != 0)
        qp_error_set (err, "malformed_frame", NULL, "the bus sent a frame set outside QPB/1");
    else if (!strcmp (f.kind, QPB_ERROR))
        qp_error_set (err, f.error_code ? f.error_code : "bus_error", NULL, "%s",
                      f.text ? f.text : "");
    else if (strcmp (f.kind, QPB_DELIVER) != 0)
        qp_error_set (err, "malformed_frame", NULL, "unexpected %s from the bus", f.kind);
    else if (qp_message_decode (f.type, f.envelope, reply, err) == 0)
        rc = 1;
    qp_bus_frame_clear (&f);
    return rc;
}

int qp_test_client_call (qp_test_client_t *self, const char *service,
                         const ProtobufCMessage *payload, const qp_meta_t *meta, int timeout_ms,
                         qp_message_t *reply, qp_error_t *err, char id_out[QP_ID_HEX + 1])
{
    qp_error_t scratch;
    if (!err)
        err = &scratch;
    char id[QP_ID_HEX + 1];
    memset (reply, 0, sizeof *reply);
    if (s_client_send (self, service, payload, meta, id) != 0) {
        qp_error_set (err, "send_failed", NULL, "cannot send to the bus");
        return -1;
    }
    if (id_out)
        memcpy (id_out, id, sizeof id);
    int rc = s_client_recv (self, timeout_ms, reply, err);
    if (rc == 0)
        qp_error_set (err, "timeout", NULL, "no reply from %s within %d ms", service, timeout_ms);
    return rc == 1 ? 0 : -1;
}

static long s_slot (char (*ids)[QP_ID_HEX + 1], size_t n, const char *id)
{
    for (size_t i = 0; id && i < n; i++)
        if (!strcmp (ids[i], id))
            return (long)i;
    return -1;
}

size_t qp_test_client_call_many (qp_test_client_t *self, const char *service,
                                 const ProtobufCMessage *const *payloads, const qp_meta_t *metas,
                                 size_t n, int timeout_ms, qp_message_t *replies)
{
    char (*ids)[QP_ID_HEX + 1] = calloc (n ? n : 1, sizeof *ids);
    qp_message_t *got = calloc (n ? n : 1, sizeof *got); /* in arrival order */
    assert (ids && got);
    memset (replies, 0, n * sizeof *replies);
    for (size_t i = 0; i < n; i++)
        s_client_send (self, service, payloads[i], metas ? &metas[i] : NULL, ids[i]);
    size_t received = 0;
    int64_t deadline = s_mono_ms () + timeout_ms;
    while (received < n) {
        int left = (int)(deadline - s_mono_ms ());
        if (left <= 0)
            break;
        qp_error_t err;
        int rc = s_client_recv (self, left, &got[received], &err);
        if (rc == 0)
            break;
        if (rc > 0)
            received++;
    }
    /* Ids first, then whatever is left in order: an anonymous reply must not take the
     * slot of a request whose own answer is still on its way. */
    bool *used = calloc (received ? received : 1, sizeof *used);
    assert (used);
    size_t matched = 0;
    for (size_t k = 0; k < received; k++) {
        long slot = -1;
        if (got[k].descriptor == &qp__v1__error__descriptor)
            slot = s_slot (ids, n, ((Qp__V1__Error *)got[k].payload)->in_reply_to);
        if (slot < 0)
            slot = s_slot (ids, n, got[k].envelope->causation_id);
        if (slot >= 0 && !replies[slot].envelope) {
            replies[slot] = got[k];
            used[k] = true;
            matched++;
        }
    }
    size_t next = 0;
    for (size_t k = 0; k < received; k++) {
        if (used[k])
            continue;
        while (next < n && replies[next].envelope)
            next++;
        if (next < n) {
            replies[next] = got[k];
            matched++;
        } else
            qp_message_clear (&got[k]); /* a duplicate answer */
    }
    free (used);
    free (got);
    free (ids);
    return matched;
}

int qp_test_call (const char *endpoint, const char *service, const ProtobufCMessage *payload,
                  const qp_meta_t *meta, int timeout_ms, qp_message_t *reply, qp_error_t *err)
{
    qp_test_client_t *c = qp_test_client_new (endpoint);
    if (!c) {
        qp_error_set (err, "send_failed", NULL, "cannot connect to %s", endpoint);
        memset (reply, 0, sizeof *reply);
        return -1;
    }
    int rc = qp_test_client_call (c, service, payload, meta, timeout_ms, reply, err, NULL);
    qp_test_client_destroy (&c);
    return rc;
}

/* ---- Tools, keys and the recorder ------------------------------------------------- */

int qp_test_bus_partner_workers (const char *work_endpoint)
{
    json_t *status = qp_test_bus_status (work_endpoint, 2000);
    if (!status)
        return -1;
    int n = 0;
    const char *name;
    json_t *svc;
    json_object_foreach (json_object_get (status, "services"), name, svc)
    {
        if (!strncmp (name, "partner.", 8) &&
            json_integer_value (json_object_get (svc, "workers")) > 0)
            n++;
    }
    json_decref (status);
    return n;
}

/* The whole of path, malloc'd ("" when it cannot be read). */
static char *s_slurp (const char *path)
{
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream (&text, &size);
    FILE *f = fopen (path, "rb");
    char buf[4096];
    size_t n;
    while (f && (n = fread (buf, 1, sizeof buf, f)) > 0)
        fwrite (buf, 1, n, mem);
    if (f)
        fclose (f);
    fclose (mem);
    return text;
}

int qp_test_run (const char *program, const char *const *env, const char *const *args,
                 int timeout_ms, char **out, char **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    qp_test_proc_t *p = qp_test_spawn (program, env, args, NULL);
    if (!p)
        return -1;
    int status = -1;
    if (qp_test_proc_wait (p, timeout_ms))
        status = qp_test_proc_exit_status (p);
    *out = s_slurp (p->out_path);
    if (err)
        *err = s_slurp (p->log_path);
    if (status != 0)
        qp_test_proc_dump (p, 40);
    qp_test_proc_destroy (&p);
    return status;
}

int qp_test_keygen (const char *dir, const char *agency)
{
    char *keygen = qp_test_program_path ("keygen");
    if (!keygen)
        return -1;
    const char *args[] = {dir, agency, NULL};
    char *out, *err;
    int status = qp_test_run (keygen, NULL, args, 60000, &out, &err);
    free (keygen);
    free (out);
    free (err);
    return status;
}

qp_test_proc_t *qp_test_stack_recorder (qp_test_stack_t *self, const char *journal)
{
    char env_journal[1100];
    snprintf (env_journal, sizeof env_journal, "QP_JOURNAL=%s", journal);
    const char *env[] = {env_journal, NULL};
    qp_test_proc_t *p = qp_test_stack_spawn (self, "record", env);
    for (int i = 0; p && i < 100 && qp_test_proc_log_count (p, "recorder_started") == 0; i++)
        qp_test_sleep_ms (100);
    if (p && qp_test_proc_log_count (p, "recorder_started") != 1) {
        qp_test_proc_dump (p, 40);
        return NULL;
    }
    return p;
}

bool qp_test_wait_closed (const char *work_endpoint, uint64_t closed, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 200) {
        Qp__V1__ReportQuery q = QP__V1__REPORT_QUERY__INIT;
        qp_message_t reply = {0};
        qp_error_t err;
        bool done = qp_test_call (work_endpoint, "evaluation", &q.base, NULL, 5000, &reply,
                                  &err) == 0 &&
                    reply.descriptor == &qp__v1__report_reply__descriptor &&
                    ((Qp__V1__ReportReply *)reply.payload)->total &&
                    ((Qp__V1__ReportReply *)reply.payload)->total->closed >= closed;
        qp_message_clear (&reply);
        if (done)
            return true;
        qp_test_sleep_ms (200);
    }
    return false;
}

Qp__V1__DossierStatusReply *qp_test_dossier_status (qp_test_client_t *client, const char *id,
                                                    qp_message_t *reply)
{
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = (char *)id;
    qp_error_t err;
    memset (reply, 0, sizeof *reply);
    if (qp_test_client_call (client, "intake", &q.base, NULL, 5000, reply, &err, NULL) != 0)
        return NULL;
    if (reply->descriptor != &qp__v1__dossier_status_reply__descriptor ||
        !((Qp__V1__DossierStatusReply *)reply->payload)->found) {
        qp_message_clear (reply);
        return NULL;
    }
    return (Qp__V1__DossierStatusReply *)reply->payload;
}

const char *qp_test_env_territories (void)
{
    static char env[1100];
    snprintf (env, sizeof env, "QP_TERRITORIES=%s/tests/data/intake-territories.json",
              qp_test_source_dir ());
    return env;
}

const char *qp_test_env_data_dir (void)
{
    static char env[1100];
    snprintf (env, sizeof env, "QP_DATA_DIR=%s/data", qp_test_source_dir ());
    return env;
}

bool qp_test_bus_recv (qp_bus_client_t *c, qp_bus_frame_t *f, int timeout_ms)
{
    zpoller_t *p = zpoller_new (qp_bus_client_socket (c), NULL);
    void *which = zpoller_wait (p, timeout_ms);
    zpoller_destroy (&p);
    memset (f, 0, sizeof *f);
    return which && qp_bus_client_recv (c, f) == 0;
}

zmsg_t *qp_test_raw_exchange (zsock_t *sock, const char *const *frames, int timeout_ms)
{
    zmsg_t *m = zmsg_new ();
    for (size_t i = 0; frames[i]; i++)
        zmsg_addstr (m, frames[i]);
    if (zmsg_send (&m, sock) != 0) {
        zmsg_destroy (&m);
        return NULL;
    }
    zpoller_t *p = zpoller_new (sock, NULL);
    zmsg_t *answer = zpoller_wait (p, timeout_ms) ? zmsg_recv (sock) : NULL;
    zpoller_destroy (&p);
    return answer;
}

zmsg_t *qp_test_status_query (const char *dossier_id, char id_out[QP_ID_HEX + 1])
{
    Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
    q.dossier_id = (char *)dossier_id;
    qp_meta_t meta = {.discriminator = dossier_id, .producer = "test"};
    return qp_message_build (&q.base, &meta, id_out);
}

zmsg_t *qp_test_raw_send (const char *endpoint, zmsg_t **frames, int timeout_ms)
{
    zsock_t *dealer = zsock_new_dealer (endpoint);
    zsock_set_linger (dealer, 0);
    zmsg_send (frames, dealer);
    zpoller_t *poller = zpoller_new (dealer, NULL);
    zmsg_t *answer = zpoller_wait (poller, timeout_ms) ? zmsg_recv (dealer) : NULL;
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    return answer;
}
