/* JSON-lines logger. Messages are escaped by jansson so a log line is always valid JSON,
 * whatever bytes a peer sent us. Never log personal data or key material. */
#include "qp_log.h"
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char s_program[64] = "qp";
static qp_log_level_t s_level = QP_LOG_INFO;
static const char *s_names[] = {"debug", "info", "warn", "error"};

void qp_log_init (const char *program, const char *level_name)
{
    snprintf (s_program, sizeof s_program, "%s", program ? program : "qp");
    for (int i = 0; level_name && i < 4; i++)
        if (strcmp (level_name, s_names[i]) == 0)
            s_level = (qp_log_level_t) i;
}

bool qp_log_enabled (qp_log_level_t level) { return level >= s_level; }
const char *qp_log_program (void) { return s_program; }

void qp_log_write (qp_log_level_t level, const char *event, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, sizeof msg, fmt, ap);
    va_end (ap);

    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (ts + n, sizeof ts - n, ".%03dZ", (int) (tv.tv_usec / 1000));

    json_t *line = json_pack ("{s:s, s:s, s:s, s:i, s:s}", "ts", ts, "level", s_names[level],
                              "program", s_program, "pid", (int) getpid (), "event",
                              event ? event : "log");
    /* json_string refuses invalid UTF-8: fall back to a lossy-but-valid copy. */
    json_t *m = json_string (msg);
    if (!m) {
        for (char *p = msg; *p; p++)
            if ((unsigned char) *p >= 0x80)
                *p = '?';
        m = json_string (msg);
    }
    json_object_set_new (line, "msg", m ? m : json_string (""));
    char *text = json_dumps (line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text) {
        fprintf (stderr, "%s\n", text);
        free (text);
    }
    json_decref (line);
}
