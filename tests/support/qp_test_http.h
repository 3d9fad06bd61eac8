/* Test-side HTTP for the probe endpoints (qp_health): one GET over HTTP/1.0 on loopback
 * (the server closes, so the answer is everything read), and reading a Prometheus text
 * exposition. Header-only: included by the ops tests. */
#ifndef QP_TEST_HTTP_H
#define QP_TEST_HTTP_H
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* GET path on 127.0.0.1:port. Returns the status code (-1: no answer); *body (may be
 * NULL) gets the malloc'd body. */
static inline int qp_test_http_get (int port, const char *path, char **body)
{
    if (body)
        *body = NULL;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || connect (fd, (struct sockaddr *) &a, sizeof a) != 0) {
        if (fd >= 0)
            close (fd);
        return -1;
    }
    char req[512];
    int n = snprintf (req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write (fd, req, (size_t) n) != n) {
        close (fd);
        return -1;
    }
    size_t size = 0, cap = 65536;
    char *buf = malloc (cap);
    ssize_t got;
    while ((got = read (fd, buf + size, cap - size - 1)) > 0) {
        size += (size_t) got;
        if (cap - size < 4096)
            buf = realloc (buf, cap *= 2);
    }
    close (fd);
    buf[size] = 0;
    int status = -1;
    if (sscanf (buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *sep = strstr (buf, "\r\n\r\n");
    if (body)
        *body = strdup (sep ? sep + 4 : "");
    free (buf);
    return status;
}

/* Sum of the samples of metric name whose labels contain every label text in filter
 * (NULL-terminated, e.g. "service=\"intake\""); -1 when there is none. */
static inline double qp_test_metric (const char *text, const char *name, const char *const *filter)
{
    double sum = -1;
    size_t len = strlen (name);
    for (const char *line = text; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL) {
        if (strncmp (line, name, len) != 0 || (line[len] != '{' && line[len] != ' '))
            continue;
        const char *end = strchr (line, '\n');
        size_t n = end ? (size_t) (end - line) : strlen (line);
        char *copy = strndup (line, n);
        bool match = true;
        for (const char *const *f = filter; f && *f && match; f++)
            match = strstr (copy, *f) != NULL;
        const char *value = strrchr (copy, ' ');
        if (match && value)
            sum = (sum < 0 ? 0 : sum) + strtod (value + 1, NULL);
        free (copy);
    }
    return sum;
}

/* Checks the text format: every line a comment (# HELP / # TYPE) or a sample
 * `name{label="v",...} number`, and every sample's family typed before it. NULL when
 * well formed, else the first bad line (malloc'd). */
static inline char *qp_test_metrics_malformed (const char *text)
{
    regex_t sample, type;
    regcomp (&sample,
             "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})? "
             "(-?[0-9.eE+-]+|\\+Inf|-Inf|NaN)$",
             REG_EXTENDED);
    regcomp (&type, "^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ", REG_EXTENDED);
    char *bad = NULL;
    char typed[256][128];
    size_t n_typed = 0;
    for (const char *line = text; !bad && line && *line;
         line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL) {
        const char *end = strchr (line, '\n');
        char *copy = strndup (line, end ? (size_t) (end - line) : strlen (line));
        regmatch_t m[8];
        if (!regexec (&type, copy, 3, m, 0)) {
            if (copy[2] == 'T' && n_typed < 256)
                snprintf (typed[n_typed++], sizeof typed[0], "%.*s", (int) (m[2].rm_eo - m[2].rm_so),
                          copy + m[2].rm_so);
        } else if (!regexec (&sample, copy, 2, m, 0)) {
            char family[128];
            snprintf (family, sizeof family, "%.*s", (int) (m[1].rm_eo - m[1].rm_so), copy);
            bool known = false;
            for (size_t i = 0; i < n_typed && !known; i++) {
                size_t l = strlen (typed[i]);
                known = !strcmp (family, typed[i]) ||
                        (!strncmp (family, typed[i], l) &&
                         (!strcmp (family + l, "_bucket") || !strcmp (family + l, "_sum") ||
                          !strcmp (family + l, "_count")));
            }
            if (!known)
                bad = strdup (copy);
        } else
            bad = strdup (copy);
        free (copy);
    }
    regfree (&sample);
    regfree (&type);
    return bad;
}

/* The HTTP port a program logged ("http_listening ... port N"), polling up to timeout_ms;
 * -1 when it never did. */
static inline int qp_test_http_port_in_log (const char *log_path, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        FILE *f = fopen (log_path, "r");
        char line[2048];
        int port = -1;
        while (f && fgets (line, sizeof line, f))
            if (strstr (line, "http_listening")) {
                const char *p = strstr (line, ", port ");
                if (p)
                    port = atoi (p + 7);
            }
        if (f)
            fclose (f);
        if (port > 0)
            return port;
        usleep (100000);
    }
    return -1;
}

/* A metric (no label filter) of the program whose log is log_path, read from its
 * /metrics; NAN when it has no HTTP port within 5 s or does not answer 200. */
static inline double qp_test_log_metric (const char *log_path, const char *name)
{
    int port = qp_test_http_port_in_log (log_path, 5000);
    char *text = NULL;
    double v = NAN;
    if (port > 0 && qp_test_http_get (port, "/metrics", &text) == 200)
        v = qp_test_metric (text, name, NULL);
    free (text);
    return v;
}
#endif
