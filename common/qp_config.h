/* Declarative configuration (one table per program, as Redis's config.c): every option is
 * a flag --name VALUE and an environment variable QP_NAME (upper case, '-' -> '_');
 * a flag wins over the environment, which wins over the default. --help lists them all. */
#ifndef QP_CONFIG_H
#define QP_CONFIG_H
#include <stdbool.h>

typedef enum { QP_CFG_STRING, QP_CFG_INT, QP_CFG_DOUBLE, QP_CFG_BOOL } qp_cfg_type_t;

typedef struct {
    const char *name;          /* "redis-port" -> --redis-port, QP_REDIS_PORT */
    qp_cfg_type_t type;
    const char *default_value; /* text; NULL for "unset" strings */
    const char *help;
    void *target;              /* char ** (malloc'd copy) | long * | double * | bool * */
    long min, max;             /* bounds for QP_CFG_INT (ignored when min == max) */
} qp_config_option_t;

/* Endpoints and Redis settings every program shares. */
typedef struct {
    char *bus_work;      /* work traffic (ROUTER on the bus) */
    char *bus_partner;   /* partner components (ROUTER, CURVE) */
    char *bus_publish;   /* events in (XSUB on the bus) */
    char *bus_subscribe; /* events out (XPUB on the bus) */
    char *bus_capture;   /* every message, for the recorder (PUB on the bus) */
    char *redis_host;
    long redis_port;
    char *log_level;
    char *data_dir;
    char *http;              /* probes and metrics "host:port"; unset: no HTTP */
    char *redis_sentinels;   /* "host:port,host:port": find the master through Sentinel */
    char *redis_master_name; /* the master's name in Sentinel */
    char *redis_user;        /* Redis ACL user (docs/security.md); unset: default user */
    char *redis_password;    /* its password (set it in the environment, not on the command line) */
} qp_common_config_t;

#define QP_CONFIG_COMMON(c)                                                                        \
    {"bus-work", QP_CFG_STRING, "tcp://127.0.0.1:7101", "bus work endpoint", &(c)->bus_work, 0, 0},   \
    {"bus-partner", QP_CFG_STRING, "tcp://127.0.0.1:7102", "bus partner endpoint",                 \
     &(c)->bus_partner, 0, 0},                                                                     \
    {"bus-publish", QP_CFG_STRING, "tcp://127.0.0.1:7103", "bus event input endpoint",             \
     &(c)->bus_publish, 0, 0},                                                                     \
    {"bus-subscribe", QP_CFG_STRING, "tcp://127.0.0.1:7104", "bus event output endpoint",          \
     &(c)->bus_subscribe, 0, 0},                                                                   \
    {"bus-capture", QP_CFG_STRING, "tcp://127.0.0.1:7105", "bus capture tap endpoint",             \
     &(c)->bus_capture, 0, 0},                                                                     \
    {"redis-host", QP_CFG_STRING, "127.0.0.1", "Redis host", &(c)->redis_host, 0, 0},             \
    {"redis-port", QP_CFG_INT, "6379", "Redis port", &(c)->redis_port, 1, 65535},                 \
    {"log-level", QP_CFG_STRING, "info", "debug|info|warn|error", &(c)->log_level, 0, 0},         \
    {"data-dir", QP_CFG_STRING, "data", "catalogue and territories directory", &(c)->data_dir, 0, 0}, \
    {"http", QP_CFG_STRING, NULL, "probes and metrics host:port (port 0: any free port)",          \
     &(c)->http, 0, 0},                                                                            \
    {"redis-sentinels", QP_CFG_STRING, NULL, "Sentinels host:port,... (overrides redis-host)",     \
     &(c)->redis_sentinels, 0, 0},                                                                 \
    {"redis-master-name", QP_CFG_STRING, "qp", "master name in Sentinel", &(c)->redis_master_name, \
     0, 0},                                                                                        \
    {"redis-user", QP_CFG_STRING, NULL, "Redis ACL user (unset: the default user)",               \
     &(c)->redis_user, 0, 0},                                                                      \
    {"redis-password", QP_CFG_STRING, NULL, "password of the Redis ACL user",                     \
     &(c)->redis_password, 0, 0}

/* Parses env then argv into the table (terminated by a {NULL} entry).
 * Returns 0 to run, 1 when --help was printed (exit 0), -1 on an error already printed on
 * stderr (exit 2). */
int qp_config_parse (const char *program, const char *summary, qp_config_option_t *options,
                     int argc, char **argv);
/* The text value the last successful qp_config_parse gave to option name (a copy kept
 * until the next parse), NULL when unset or absent. For the shared layers every program
 * gets without its main passing them along: "http" (qp_service, the bus), "redis-sentinels",
 * "redis-master-name", "redis-user" and "redis-password" (qp_redis), "event-pipe"
 * (qp_service; an integer option, given as its decimal text). */
const char *qp_config_setting (const char *name);
/* Frees the strings the table holds. */
void qp_config_free (qp_config_option_t *options);
#endif
