/* Shared helpers for check tests: where the sources and the build are, and (for
 * integration tests) starting real redis-server and service processes.
 *
 * Every process started here is killed (SIGKILL) if the test process dies first
 * (PR_SET_PDEATHSIG). Temp dirs live under one root per test program; a failed test
 * (check's forked child leaves with _exit) leaves its dirs there, and the program prints
 * the tail of every log left behind and removes the root at exit. Set QP_TEST_DUMP_LOGS=1
 * to always print the logs on stop, QP_TEST_KEEP=1 to keep the temp dirs,
 * QP_TEST_LOG_LEVEL to change the programs' log level (default info). */
#ifndef QP_TEST_H
#define QP_TEST_H
#include "qp_bus.h"
#include "qp_message.h"
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

/* The source tree (QP_SOURCE_DIR set by ctest, else "."). */
const char *qp_test_source_dir (void);
/* The build tree (QP_BUILD_DIR set by ctest, else "build"). */
const char *qp_test_build_dir (void);
/* "QP_TERRITORIES=SOURCE/tests/data/intake-territories.json" and "QP_DATA_DIR=SOURCE/data":
 * the fixtures most stacks give their programs (static strings). */
const char *qp_test_env_territories (void);
const char *qp_test_env_data_dir (void);

/* An ephemeral loopback port (bound on 127.0.0.1:0 then closed), or -1. */
int qp_test_free_port (void);
/* A fresh directory under $TMPDIR (or /tmp), malloc'd; NULL on failure. */
char *qp_test_tmpdir (const char *prefix);
/* rm -rf dir. Returns 0 on success. */
int qp_test_rmtree (const char *dir);
/* Sleeps ms milliseconds (polling loops only, never a timing assertion). */
void qp_test_sleep_ms (int ms);

/* ---- Processes ---------------------------------------------------------------- */

typedef struct qp_test_proc {
    pid_t pid;      /* 0 once reaped */
    char name[64];  /* "bus", "partner-bpifrance", "redis" */
    char *path;     /* executable */
    char *log_path; /* its stderr */
    char *out_path; /* its stdout */
    char *own_dir;  /* temp dir created for the logs (removed on destroy), or NULL */
    int status;     /* raw wait status once reaped */
    pid_t owner;    /* the test process that started it */
    struct qp_test_proc *next;
} qp_test_proc_t;

/* Path of a program of the build: "bus" -> BUILD/services/qp-bus, "partner-X" ->
 * BUILD/partners/qp-partner-X, "ctl" -> BUILD/tools/qp-ctl (the first that exists);
 * a name with a '/' is taken as is. malloc'd; NULL when none exists. */
char *qp_test_program_path (const char *name);

/* Starts program (as for qp_test_program_path) with args (NULL-terminated, may be NULL)
 * and the test's environment overlaid with env ("NAME=value", NULL-terminated, may be
 * NULL). stderr goes to LOG_DIR/NAME.log, stdout to LOG_DIR/NAME.out; log_dir NULL: a
 * fresh temp dir. Returns NULL when the program cannot be started. */
qp_test_proc_t *qp_test_spawn (const char *program, const char *const *env, const char *const *args,
                               const char *log_dir);
/* Still running? (reaps it when it has exited) */
bool qp_test_proc_alive (qp_test_proc_t *self);
/* Waits up to timeout_ms for it to exit by itself. true when it has exited. */
bool qp_test_proc_wait (qp_test_proc_t *self, int timeout_ms);
/* SIGTERM, then waits 2 s (SIGKILL after). Returns true when it exited by itself within
 * 2 s (or had already exited); *exit_status (may be NULL) gets its exit code, or 128 +
 * the signal that ended it. */
bool qp_test_proc_stop (qp_test_proc_t *self, int *exit_status);
/* Same with any signal and grace period. */
bool qp_test_proc_stop_within (qp_test_proc_t *self, int sig, int timeout_ms, int *exit_status);
/* kill -9 and reap (fault tests). */
void qp_test_proc_kill (qp_test_proc_t *self);
/* Exit code (or 128 + signal) once reaped, -1 while running. */
int qp_test_proc_exit_status (const qp_test_proc_t *self);
/* Prints the last lines of its stderr and stdout on stderr. */
void qp_test_proc_dump (const qp_test_proc_t *self, int lines);
/* Counts the lines of its log that contain needle (e.g. an "event" name). */
int qp_test_proc_log_count (const qp_test_proc_t *self, const char *needle);
/* Kills it if still running, removes its own temp dir, frees it. */
void qp_test_proc_destroy (qp_test_proc_t **self_p);

/* ---- Redis -------------------------------------------------------------------- */

typedef struct {
    char host[16]; /* "127.0.0.1" */
    int port;
    char *dir;            /* data dir (AOF) and redis.log */
    qp_test_proc_t *proc; /* NULL while down */
} qp_test_redis_t;

/* Starts redis-server (PATH or /usr/bin) on a free port in a fresh temp dir with AOF
 * on, and waits until it answers PING. NULL on failure. */
qp_test_redis_t *qp_test_redis_start (void);
/* Stops the server (sig: SIGTERM waits 3 s then SIGKILL; SIGKILL for a crash), keeping
 * the port and dir. Returns 0. */
int qp_test_redis_down (qp_test_redis_t *self, int sig);
/* Starts it again on the same port and dir (the AOF is reloaded); 0 once it answers. */
int qp_test_redis_up (qp_test_redis_t *self);
/* down (SIGTERM) + up. */
int qp_test_redis_restart (qp_test_redis_t *self);
/* true when host:port answers PING within timeout_ms. */
bool qp_test_redis_ping (const char *host, int port, int timeout_ms);
/* Stops the server and removes its dir. */
void qp_test_redis_stop (qp_test_redis_t **self_p);

/* ---- Bus status ----------------------------------------------------------------- */

/* The bus's STATUS as JSON (new reference), or NULL when it does not answer. */
json_t *qp_test_bus_status (const char *work_endpoint, int timeout_ms);
/* Live workers of service, 0 when unknown, -1 when the bus does not answer. */
int qp_test_bus_workers (const char *work_endpoint, const char *service);
/* A field ("workers", "queued", "routed") of service, -1 when absent or no answer. */
long qp_test_bus_service_stat (const char *work_endpoint, const char *service, const char *field);
/* Polls until service has at least min live workers. false on timeout. */
bool qp_test_bus_wait_workers (const char *work_endpoint, const char *service, int min,
                               int timeout_ms);

/* ---- A whole stack: redis + qp-bus + programs ------------------------------------- */

#define QP_TEST_STACK_MAX 32

typedef struct {
    const char *const *programs; /* started after the bus, in order ("intake", ...) */
    const char *const *wait_for; /* services that need a live worker ("intake", ...) */
    const char *const *env;      /* extra "NAME=value" for every program */
    const char *log_level;       /* QP_LOG_LEVEL; NULL: $QP_TEST_LOG_LEVEL or "info" */
    int timeout_ms;              /* for the bus and wait_for; 0: 15000 */
    bool no_redis;               /* bus-only tests */
} qp_test_stack_opts_t;

typedef struct {
    char work[48], partner[48], publish[48], subscribe[48], capture[48]; /* tcp://127.0.0.1:P */
    qp_test_redis_t *redis;                                              /* NULL with no_redis */
    qp_test_proc_t *bus;
    qp_test_proc_t *procs[QP_TEST_STACK_MAX];
    size_t n_procs;
    char *dir;                    /* logs */
    char **env;                   /* the QP_* environment every program gets, NULL-terminated */
    char **extra_env;             /* a copy of opts->env, also given to later spawns */
} qp_test_stack_t;

/* Starts redis, the bus (retrying on fresh ports if a port was taken) and the programs,
 * then waits for the bus and the wait_for services. NULL on failure (logs dumped). */
qp_test_stack_t *qp_test_stack_start (const qp_test_stack_opts_t *opts);
/* Starts one more program with the stack's environment plus env (may be NULL). */
qp_test_proc_t *qp_test_stack_spawn (qp_test_stack_t *self, const char *program,
                                     const char *const *env);
/* Waits until every service in services (NULL-terminated) has a live worker. */
bool qp_test_stack_wait (qp_test_stack_t *self, const char *const *services, int timeout_ms);
/* Prints the last lines of every log on stderr. */
void qp_test_stack_dump (const qp_test_stack_t *self, int lines);
/* Stops the programs in reverse order, then the bus (SIGTERM, 2 s each), then redis,
 * and frees the stack. Returns how many programs (bus included) did not exit with
 * status 0 within 2 s; the logs are dumped when that is not 0 (or QP_TEST_DUMP_LOGS). */
int qp_test_stack_stop (qp_test_stack_t **self_p);

/* ---- A synchronous client ------------------------------------------------------- */

typedef struct qp_test_client qp_test_client_t;

/* A DEALER on the bus work (or partner) endpoint. */
qp_test_client_t *qp_test_client_new (const char *endpoint);
void qp_test_client_destroy (qp_test_client_t **self_p);
/* Sends payload to service and waits up to timeout_ms for one reply (meta NULL: a
 * discriminator unique to this client and call, event_time_ms now). Returns 0 with
 * reply decoded (a qp.v1.Error payload is still a reply: check reply->descriptor), or
 * -1 with err filled: "timeout", the bus's error code (no route, forbidden), or the
 * decode error of the reply. id_out (may be NULL) gets the request's message id. */
int qp_test_client_call (qp_test_client_t *self, const char *service,
                         const ProtobufCMessage *payload, const qp_meta_t *meta, int timeout_ms,
                         qp_message_t *reply, qp_error_t *err, char id_out[QP_ID_HEX + 1]);
/* Sends n payloads at once (metas may be NULL) then collects replies until n are in or
 * timeout_ms passes. replies[i] answers payloads[i]: matched by Error.in_reply_to, then
 * by the reply's causation_id; the replies matched by neither fill the remaining slots
 * in arrival order. Unanswered slots stay zeroed. Returns the number of slots filled. */
size_t qp_test_client_call_many (qp_test_client_t *self, const char *service,
                                 const ProtobufCMessage *const *payloads, const qp_meta_t *metas,
                                 size_t n, int timeout_ms, qp_message_t *replies);
/* One-shot qp_test_client_call on a fresh client. */
int qp_test_call (const char *endpoint, const char *service, const ProtobufCMessage *payload,
                  const qp_meta_t *meta, int timeout_ms, qp_message_t *reply, qp_error_t *err);

/* ---- Tools, keys and the recorder ------------------------------------------------- */

/* Partner components live on the bus: services named "partner.*" with a live worker;
 * -1 when the bus does not answer. */
int qp_test_bus_partner_workers (const char *work_endpoint);
/* Runs program (as qp_test_spawn, logs in a fresh dir) to its end within timeout_ms.
 * Returns its exit status (as qp_test_proc_exit_status), -1 when it could not start or
 * did not finish (then killed); *out gets its stdout and *err (err may be NULL) its
 * stderr, malloc'd. Its logs are dumped when the status is not 0. */
int qp_test_run (const char *program, const char *const *env, const char *const *args,
                 int timeout_ms, char **out, char **err);
/* qp-keygen DIR [AGENCY] (agency NULL: the bus's key and every agency's); 0 on success. */
int qp_test_keygen (const char *dir, const char *agency);
/* qp-record into the journal dir, started on the stack; returned once it is subscribed
 * (one "recorder_started" in its log), NULL when not within 10 s (its log dumped). */
qp_test_proc_t *qp_test_stack_recorder (qp_test_stack_t *self, const char *journal);
/* Polls evaluation's ReportQuery until its total counts at least `closed` dossiers
 * closed. false on timeout. */
bool qp_test_wait_closed (const char *work_endpoint, uint64_t closed, int timeout_ms);
/* intake's status of dossier id (5 s), in reply (to clear); NULL (reply cleared) when
 * no reply, another type or not found. */
Qp__V1__DossierStatusReply *qp_test_dossier_status (qp_test_client_t *client, const char *id,
                                                    qp_message_t *reply);

/* ---- Peers of the bus --------------------------------------------------------------- */

/* One frame set on c within timeout_ms (f zeroed first); false on timeout. */
bool qp_test_bus_recv (qp_bus_client_t *c, qp_bus_frame_t *f, int timeout_ms);
/* Sends frames (strings, NULL-terminated) on a raw socket, a DEALER that speaks QPB/1 by
 * hand or breaks it, and returns the next frame set it gets within timeout_ms (NULL on
 * timeout). */
zmsg_t *qp_test_raw_exchange (zsock_t *sock, const char *const *frames, int timeout_ms);
/* Sends *frames (any bytes; sent and destroyed) on a fresh DEALER to endpoint (linger 0)
 * and returns the next frame set it gets within timeout_ms (NULL on timeout). */
zmsg_t *qp_test_raw_send (const char *endpoint, zmsg_t **frames, int timeout_ms);
/* A DossierStatusQuery for dossier_id (discriminator dossier_id, producer "test"), built
 * to send on a bus client; id_out (may be NULL) gets its message id. */
zmsg_t *qp_test_status_query (const char *dossier_id, char id_out[QP_ID_HEX + 1]);
#endif
