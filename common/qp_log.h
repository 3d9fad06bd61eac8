/* Logging: one JSON object per line on stderr
 * {"ts":"...","level":"info","program":"intake","pid":1,"event":"...","msg":"..."}.
 * The macros check the level before formatting (as Redis's serverLog does). */
#ifndef QP_LOG_H
#define QP_LOG_H
#include <stdbool.h>

typedef enum { QP_LOG_DEBUG = 0, QP_LOG_INFO, QP_LOG_WARN, QP_LOG_ERROR } qp_log_level_t;

void qp_log_init (const char *program, const char *level_name);
bool qp_log_enabled (qp_log_level_t level);
const char *qp_log_program (void);
void qp_log_write (qp_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#define qp_log_at(lvl, ...)                                                                        \
    do {                                                                                           \
        if (qp_log_enabled (lvl))                                                                  \
            qp_log_write (lvl, __VA_ARGS__);                                                       \
    } while (0)
#define qp_log_debug(...) qp_log_at (QP_LOG_DEBUG, __VA_ARGS__)
#define qp_log_info(...) qp_log_at (QP_LOG_INFO, __VA_ARGS__)
#define qp_log_warn(...) qp_log_at (QP_LOG_WARN, __VA_ARGS__)
#define qp_log_error(...) qp_log_at (QP_LOG_ERROR, __VA_ARGS__)
#endif
