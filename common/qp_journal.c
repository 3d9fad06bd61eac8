/* The journal: framed, checksummed records in size-rotated segments, with a sparse
 * index per segment. See qp_journal.h for the format. */
#include "qp_journal.h"
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- CRC-32C --------------------------------------------------------------------- */

static uint32_t s_crc_table[8][256];

static void s_crc_init (void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        s_crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            s_crc_table[t][i] =
                (s_crc_table[t - 1][i] >> 8) ^ s_crc_table[0][s_crc_table[t - 1][i] & 0xff];
}

/* Slicing-by-8 over the table. */
static uint32_t s_crc_soft (uint32_t crc, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v;
        memcpy (&v, p, 8);
        v ^= crc;
        crc = s_crc_table[7][v & 0xff] ^ s_crc_table[6][(v >> 8) & 0xff] ^
              s_crc_table[5][(v >> 16) & 0xff] ^ s_crc_table[4][(v >> 24) & 0xff] ^
              s_crc_table[3][(v >> 32) & 0xff] ^ s_crc_table[2][(v >> 40) & 0xff] ^
              s_crc_table[1][(v >> 48) & 0xff] ^ s_crc_table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ s_crc_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__ ((target ("sse4.2"))) static uint32_t s_crc_hard (uint32_t crc, const uint8_t *p,
                                                                size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy (&v, p, 8);
        c = __builtin_ia32_crc32di (c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi (c32, *p++);
    return c32;
}
#endif

uint32_t qp_crc32c (uint32_t crc, const void *data, size_t size)
{
    /* Written once, before any concurrent use matters: every thread computes the same. */
    static int mode; /* 0 unknown, 1 hardware, 2 table */
    if (!mode) {
#if defined(__x86_64__)
        __builtin_cpu_init ();
        if (__builtin_cpu_supports ("sse4.2"))
            mode = 1;
        else
#endif
        {
            s_crc_init ();
            mode = 2;
        }
    }
    crc = ~crc;
#if defined(__x86_64__)
    if (mode == 1)
        return ~s_crc_hard (crc, data, size);
#endif
    return ~s_crc_soft (crc, data, size);
}

/* ---- Little-endian helpers ------------------------------------------------------- */

static void s_put16 (uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void s_put32 (uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void s_put64 (uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t s_get16 (const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t s_get32 (const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t s_get64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static const char *const s_origins[] = {"", "work", "partner", "event"};

const char *qp_journal_origin_name (qp_journal_origin_t origin)
{
    return origin >= QP_ORIGIN_NONE && origin <= QP_ORIGIN_EVENT ? s_origins[origin] : "?";
}

qp_journal_origin_t qp_journal_origin_parse (const char *name)
{
    for (int i = 1; i <= QP_ORIGIN_EVENT; i++)
        if (name && !strcmp (name, s_origins[i]))
            return (qp_journal_origin_t)i;
    return QP_ORIGIN_NONE;
}

int qp_journal_fsync_parse (const char *name)
{
    if (!name)
        return -1;
    if (!strcmp (name, "never"))
        return QP_JOURNAL_FSYNC_NEVER;
    if (!strcmp (name, "interval"))
        return QP_JOURNAL_FSYNC_INTERVAL;
    if (!strcmp (name, "always"))
        return QP_JOURNAL_FSYNC_ALWAYS;
    return -1;
}

static int64_t s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Segment listing ------------------------------------------------------------- */

typedef struct {
    uint64_t first_offset;
    char *path;  /* .qpj */
    char *index; /* .idx */
} segment_t;

static int s_segment_cmp (const void *a, const void *b)
{
    const segment_t *x = a, *y = b;
    return x->first_offset < y->first_offset ? -1 : x->first_offset > y->first_offset;
}

/* Segments of dir sorted by first offset; *count set. NULL + count 0 when none. */
static segment_t *s_segments (const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir (dir);
    if (!d)
        return NULL;
    segment_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        size_t len = strlen (e->d_name);
        if (len != 24 || strcmp (e->d_name + 20, ".qpj") != 0)
            continue;
        char digits[21];
        memcpy (digits, e->d_name, 20);
        digits[20] = 0;
        if (strspn (digits, "0123456789") != 20)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            list = realloc (list, cap * sizeof *list);
            if (!list)
                abort ();
        }
        list[n].first_offset = strtoull (digits, NULL, 10);
        if (asprintf (&list[n].path, "%s/%s", dir, e->d_name) < 0 ||
            asprintf (&list[n].index, "%s/%s.idx", dir, digits) < 0)
            abort ();
        n++;
    }
    closedir (d);
    if (n)
        qsort (list, n, sizeof *list, s_segment_cmp);
    *count = n;
    return list;
}

static void s_segments_free (segment_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free (list[i].path);
        free (list[i].index);
    }
    free (list);
}

/* Checks the frame at pos of a mapped segment. Returns the body length (> 0) when the
 * frame is whole and its CRC matches, else 0 with code set (truncated, bad_length,
 * crc_mismatch). */
static uint32_t s_frame_check (const uint8_t *base, uint64_t size, uint64_t pos, const char **code)
{
    if (size - pos < QP_JOURNAL_FRAME) {
        *code = "truncated";
        return 0;
    }
    uint32_t len = s_get32 (base + pos);
    if (len < QP_JOURNAL_BODY_HEADER || len > QP_JOURNAL_MAX_BODY) {
        *code = "bad_length";
        return 0;
    }
    if (size - pos - QP_JOURNAL_FRAME < len) {
        *code = "truncated";
        return 0;
    }
    const uint8_t *body = base + pos + QP_JOURNAL_FRAME;
    if (qp_crc32c (0, body, len) != s_get32 (base + pos + 4)) {
        *code = "crc_mismatch";
        return 0;
    }
    uint16_t tl = s_get16 (body + 2), dl = s_get16 (body + 4);
    if ((uint64_t)QP_JOURNAL_BODY_HEADER + tl + dl > len || body[0] < QP_JOURNAL_MESSAGE ||
        body[0] > QP_JOURNAL_GAP) {
        *code = "bad_length";
        return 0;
    }
    return len;
}

static void s_decode (const uint8_t *base, uint64_t pos, uint32_t len, qp_journal_record_t *rec)
{
    const uint8_t *b = base + pos + QP_JOURNAL_FRAME;
    memset (rec, 0, sizeof *rec);
    rec->kind = (qp_journal_kind_t)b[0];
    rec->origin = (qp_journal_origin_t)b[1];
    rec->type_len = s_get16 (b + 2);
    rec->destination_len = s_get16 (b + 4);
    rec->flags = s_get16 (b + 6);
    rec->offset = s_get64 (b + 8);
    rec->seq = s_get64 (b + 16);
    rec->recorded_us = (int64_t)s_get64 (b + 24);
    rec->gap_count = s_get64 (b + 32);
    rec->type = (const char *)b + QP_JOURNAL_BODY_HEADER;
    rec->destination = rec->type + rec->type_len;
    rec->envelope = (const uint8_t *)rec->destination + rec->destination_len;
    rec->envelope_size = len - QP_JOURNAL_BODY_HEADER - rec->type_len - rec->destination_len;
    rec->position = pos;
}

/* ---- Writer ---------------------------------------------------------------------- */

struct qp_journal_writer {
    char *dir;
    uint64_t segment_bytes;
    qp_journal_fsync_t fsync;
    int fsync_interval_ms;
    FILE *data, *index;
    uint64_t segment_size; /* bytes written to the current segment */
    uint64_t segment_records;
    uint64_t next_offset;
    int64_t last_sync_ms;
    bool dirty; /* written since the last sync */
};

static int s_sync (qp_journal_writer_t *self)
{
    if (fflush (self->data) || fflush (self->index))
        return -1;
    if (self->fsync != QP_JOURNAL_FSYNC_NEVER && self->dirty) {
        if (fdatasync (fileno (self->data)) || fdatasync (fileno (self->index)))
            return -1;
    }
    self->dirty = false;
    self->last_sync_ms = s_mono_ms ();
    return 0;
}

static void s_close_segment (qp_journal_writer_t *self)
{
    if (self->data) {
        s_sync (self);
        fclose (self->data);
        fclose (self->index);
        self->data = self->index = NULL;
    }
}

static int s_open_segment (qp_journal_writer_t *self, char *err, size_t err_size)
{
    char path[PATH_MAX], idx[PATH_MAX];
    snprintf (path, sizeof path, "%s/%020llu.qpj", self->dir,
              (unsigned long long)self->next_offset);
    snprintf (idx, sizeof idx, "%s/%020llu.idx", self->dir, (unsigned long long)self->next_offset);
    /* "x": a segment is never overwritten. */
    self->data = fopen (path, "wbx");
    self->index = self->data ? fopen (idx, "wb") : NULL;
    if (!self->data || !self->index) {
        if (err)
            snprintf (err, err_size, "cannot create %s: %s", path, strerror (errno));
        if (self->data)
            fclose (self->data);
        self->data = NULL;
        return -1;
    }
    setvbuf (self->data, NULL, _IOFBF, 1 << 20);
    uint8_t h[QP_JOURNAL_SEGMENT_HEADER] = {0};
    memcpy (h, QP_JOURNAL_MAGIC, 4);
    s_put32 (h + 4, QP_JOURNAL_VERSION);
    s_put64 (h + 8, self->next_offset);
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    s_put64 (h + 16, (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
    if (fwrite (h, sizeof h, 1, self->data) != 1)
        return -1;
    self->segment_size = sizeof h;
    self->segment_records = 0;
    self->dirty = true;
    return 0;
}

/* Scans the last segment: sets next_offset past its last valid record and cuts a torn
 * tail. Returns 0, or -1 on an unreadable segment. */
static int s_recover (qp_journal_writer_t *self, const segment_t *last, uint64_t *torn, char *err,
                      size_t err_size)
{
    int fd = open (last->path, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat (fd, &st) < 0) {
        snprintf (err, err_size, "cannot open %s: %s", last->path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, pos = QP_JOURNAL_SEGMENT_HEADER;
    self->next_offset = last->first_offset;
    if (size >= QP_JOURNAL_SEGMENT_HEADER) {
        uint8_t *base = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) {
            snprintf (err, err_size, "cannot map %s: %s", last->path, strerror (errno));
            close (fd);
            return -1;
        }
        const char *code;
        uint32_t len;
        while (pos < size && (len = s_frame_check (base, size, pos, &code)) > 0) {
            self->next_offset = s_get64 (base + pos + QP_JOURNAL_FRAME + 8) + 1;
            pos += QP_JOURNAL_FRAME + len;
        }
        munmap (base, size);
    } else
        pos = size;
    if (torn)
        *torn = size > pos ? size - pos : 0;
    if (pos <= QP_JOURNAL_SEGMENT_HEADER) {
        /* No record in it: the fresh segment takes its name. */
        close (fd);
        unlink (last->path);
        unlink (last->index);
        return 0;
    }
    /* A torn or damaged tail was never acknowledged by a flush that completed: cut it, so
     * appends never follow garbage. */
    if (pos < size && ftruncate (fd, (off_t)pos) < 0) {
        snprintf (err, err_size, "cannot truncate %s: %s", last->path, strerror (errno));
        close (fd);
        return -1;
    }
    close (fd);
    return 0;
}

qp_journal_writer_t *qp_journal_writer_open (const qp_journal_config_t *config,
                                             uint64_t *torn_bytes, char *err, size_t err_size)
{
    if (torn_bytes)
        *torn_bytes = 0;
    if (mkdir (config->dir, 0755) < 0 && errno != EEXIST) {
        snprintf (err, err_size, "cannot create %s: %s", config->dir, strerror (errno));
        return NULL;
    }
    qp_journal_writer_t *self = calloc (1, sizeof *self);
    if (!self)
        abort ();
    self->dir = strdup (config->dir);
    self->segment_bytes = config->segment_bytes ? config->segment_bytes : 64ull << 20;
    self->fsync = config->fsync;
    self->fsync_interval_ms = config->fsync_interval_ms > 0 ? config->fsync_interval_ms : 1000;
    size_t n;
    segment_t *list = s_segments (config->dir, &n);
    int rc = n ? s_recover (self, &list[n - 1], torn_bytes, err, err_size) : 0;
    s_segments_free (list, n);
    /* Always a fresh segment: an existing one stays as it was written. */
    if (rc || s_open_segment (self, err, err_size)) {
        free (self->dir);
        free (self);
        return NULL;
    }
    self->last_sync_ms = s_mono_ms ();
    return self;
}

void qp_journal_writer_close (qp_journal_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_journal_writer_t *self = *self_p;
    s_close_segment (self);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

uint64_t qp_journal_writer_next_offset (const qp_journal_writer_t *self)
{
    return self->next_offset;
}

int qp_journal_writer_flush (qp_journal_writer_t *self)
{
    if (self->fsync == QP_JOURNAL_FSYNC_INTERVAL &&
        s_mono_ms () - self->last_sync_ms < self->fsync_interval_ms)
        return fflush (self->data) || fflush (self->index) ? -1 : 0;
    return s_sync (self);
}

static int64_t s_append (qp_journal_writer_t *self, qp_journal_kind_t kind,
                         qp_journal_origin_t origin, uint16_t flags, uint64_t seq,
                         uint64_t gap_count, int64_t recorded_us, const char *type, size_t type_len,
                         const char *dest, size_t dest_len, const void *env, size_t env_size)
{
    if (type_len > 0xffff || dest_len > 0xffff ||
        QP_JOURNAL_BODY_HEADER + type_len + dest_len + env_size > QP_JOURNAL_MAX_BODY) {
        errno = EMSGSIZE;
        return -1;
    }
    if (self->segment_size >= self->segment_bytes) {
        s_close_segment (self);
        if (s_open_segment (self, NULL, 0))
            return -1;
    }
    uint32_t len = (uint32_t)(QP_JOURNAL_BODY_HEADER + type_len + dest_len + env_size);
    uint8_t h[QP_JOURNAL_FRAME + QP_JOURNAL_BODY_HEADER];
    uint8_t *b = h + QP_JOURNAL_FRAME;
    b[0] = (uint8_t)kind;
    b[1] = (uint8_t)origin;
    s_put16 (b + 2, (uint16_t)type_len);
    s_put16 (b + 4, (uint16_t)dest_len);
    s_put16 (b + 6, flags);
    s_put64 (b + 8, self->next_offset);
    s_put64 (b + 16, seq);
    s_put64 (b + 24, (uint64_t)recorded_us);
    s_put64 (b + 32, gap_count);
    uint32_t crc = qp_crc32c (0, b, QP_JOURNAL_BODY_HEADER);
    /* CRC-32C continues over the parts without copying them together. */
    crc = qp_crc32c (crc, type, type_len);
    crc = qp_crc32c (crc, dest, dest_len);
    crc = qp_crc32c (crc, env, env_size);
    s_put32 (h, len);
    s_put32 (h + 4, crc);

    if (self->segment_records % QP_JOURNAL_INDEX_EVERY == 0) {
        uint8_t e[24];
        s_put64 (e, self->next_offset);
        s_put64 (e + 8, (uint64_t)recorded_us);
        s_put64 (e + 16, self->segment_size);
        if (fwrite (e, sizeof e, 1, self->index) != 1)
            return -1;
    }
    if (fwrite (h, sizeof h, 1, self->data) != 1 ||
        (type_len && fwrite (type, type_len, 1, self->data) != 1) ||
        (dest_len && fwrite (dest, dest_len, 1, self->data) != 1) ||
        (env_size && fwrite (env, env_size, 1, self->data) != 1))
        return -1;
    self->segment_size += QP_JOURNAL_FRAME + len;
    self->segment_records++;
    self->dirty = true;
    if (self->fsync == QP_JOURNAL_FSYNC_ALWAYS && s_sync (self))
        return -1;
    return (int64_t)self->next_offset++;
}

int64_t qp_journal_append_message (qp_journal_writer_t *self, qp_journal_origin_t origin,
                                   uint64_t seq, int64_t recorded_us, const char *type,
                                   size_t type_len, const char *destination, size_t destination_len,
                                   const void *envelope, size_t envelope_size)
{
    return s_append (self, QP_JOURNAL_MESSAGE, origin, 0, seq, 0, recorded_us, type, type_len,
                     destination, destination_len, envelope, envelope_size);
}

int64_t qp_journal_append_gap (qp_journal_writer_t *self, uint64_t first_seq, uint64_t count,
                               uint16_t flags, int64_t recorded_us)
{
    return s_append (self, QP_JOURNAL_GAP, QP_ORIGIN_NONE, flags, first_seq, count, recorded_us,
                     NULL, 0, NULL, 0, NULL, 0);
}

/* ---- Reader ---------------------------------------------------------------------- */

struct qp_journal_reader {
    segment_t *segments;
    size_t n_segments;
    size_t current; /* index in segments; n_segments at the end */
    uint8_t *base;  /* mapping of the current segment */
    uint64_t size;
    uint64_t pos;
    uint64_t expected; /* offset the next record should have */
    bool damaged;      /* the last call reported a problem at pos */
    bool resynced;     /* records were skipped: the next offset is taken as it is */
    const char *damage_code;
};

static void s_unmap (qp_journal_reader_t *self)
{
    if (self->base && self->size)
        munmap (self->base, self->size);
    self->base = NULL;
    self->size = 0;
}

/* Maps segment i. Returns 0, or -1 with problem filled (bad_header). */
static int s_enter (qp_journal_reader_t *self, size_t i, qp_journal_problem_t *problem)
{
    s_unmap (self);
    self->current = i;
    self->pos = QP_JOURNAL_SEGMENT_HEADER;
    self->damaged = false;
    if (i >= self->n_segments)
        return 0;
    segment_t *s = &self->segments[i];
    int fd = open (s->path, O_RDONLY);
    struct stat st;
    const char *why = NULL;
    if (fd < 0 || fstat (fd, &st) < 0)
        why = strerror (errno);
    else if (st.st_size < QP_JOURNAL_SEGMENT_HEADER)
        why = "shorter than a segment header";
    else {
        self->size = (uint64_t)st.st_size;
        self->base = mmap (NULL, self->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (self->base == MAP_FAILED) {
            self->base = NULL;
            self->size = 0;
            why = strerror (errno);
        } else {
            madvise (self->base, self->size, MADV_SEQUENTIAL);
            if (memcmp (self->base, QP_JOURNAL_MAGIC, 4) != 0 ||
                s_get32 (self->base + 4) != QP_JOURNAL_VERSION)
                why = "not a QPJ1 segment header";
        }
    }
    if (fd >= 0)
        close (fd);
    if (why) {
        if (problem) {
            memset (problem, 0, sizeof *problem);
            snprintf (problem->code, sizeof problem->code, "bad_header");
            snprintf (problem->segment, sizeof problem->segment, "%s", s->path);
            problem->offset = s->first_offset;
            snprintf (problem->detail, sizeof problem->detail, "%s", why);
        }
        s_unmap (self);
        self->pos = 0;
        return -1;
    }
    if (self->expected < s->first_offset)
        self->expected = s->first_offset;
    return 0;
}

qp_journal_reader_t *qp_journal_reader_open (const char *dir, char *err, size_t err_size)
{
    size_t n;
    segment_t *list = s_segments (dir, &n);
    if (!n) {
        snprintf (err, err_size, "%s holds no journal segment (*.qpj)", dir);
        return NULL;
    }
    qp_journal_reader_t *self = calloc (1, sizeof *self);
    if (!self)
        abort ();
    self->segments = list;
    self->n_segments = n;
    self->expected = list[0].first_offset;
    self->current = (size_t)-1; /* the first segment is entered by next() or a seek */
    return self;
}

void qp_journal_reader_close (qp_journal_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    qp_journal_reader_t *self = *self_p;
    s_unmap (self);
    s_segments_free (self->segments, self->n_segments);
    free (self);
    *self_p = NULL;
}

size_t qp_journal_reader_segments (const qp_journal_reader_t *self, uint64_t *bytes)
{
    if (bytes) {
        *bytes = 0;
        for (size_t i = 0; i < self->n_segments; i++) {
            struct stat st;
            if (stat (self->segments[i].path, &st) == 0)
                *bytes += (uint64_t)st.st_size;
        }
    }
    return self->n_segments;
}

static void s_problem (qp_journal_reader_t *self, qp_journal_problem_t *problem, const char *code,
                       const char *fmt, uint64_t a)
{
    if (!problem)
        return;
    memset (problem, 0, sizeof *problem);
    snprintf (problem->code, sizeof problem->code, "%s", code);
    snprintf (problem->segment, sizeof problem->segment, "%s", self->segments[self->current].path);
    problem->position = self->pos;
    problem->offset = self->expected;
    snprintf (problem->detail, sizeof problem->detail, fmt, (unsigned long long)a);
}

/* After damage at pos: the next position where a whole frame with a good CRC starts, or
 * the end of the segment. */
static uint64_t s_resync (qp_journal_reader_t *self)
{
    const char *code;
    for (uint64_t p = self->pos + 1; p + QP_JOURNAL_FRAME + QP_JOURNAL_BODY_HEADER <= self->size;
         p++)
        if (s_frame_check (self->base, self->size, p, &code))
            return p;
    return self->size;
}

int qp_journal_reader_next (qp_journal_reader_t *self, qp_journal_record_t *rec,
                            qp_journal_problem_t *problem)
{
    if (self->current == (size_t)-1 && s_enter (self, 0, problem) < 0) {
        self->damaged = false;
        return -1;
    }
    for (;;) {
        if (self->current >= self->n_segments)
            return 0;
        if (self->damaged) {
            self->damaged = false;
            self->resynced = true;
            if (!strcmp (self->damage_code, "truncated"))
                self->pos = self->size;
            else
                self->pos = s_resync (self);
        }
        if (!self->base || self->pos >= self->size) {
            if (s_enter (self, self->current + 1, problem) < 0)
                return -1;
            continue;
        }
        const char *code = NULL;
        uint32_t len = s_frame_check (self->base, self->size, self->pos, &code);
        if (!len) {
            uint64_t left = self->size - self->pos;
            s_problem (self, problem, code,
                       !strcmp (code, "truncated") ? "the last %llu bytes are not a whole record"
                       : !strcmp (code, "crc_mismatch")
                           ? "the CRC-32C does not match the %llu-byte record"
                           : "the frame length %llu is not a record's",
                       !strcmp (code, "truncated") ? left : s_get32 (self->base + self->pos));
            self->damaged = true;
            self->damage_code = code;
            return -1;
        }
        s_decode (self->base, self->pos, len, rec);
        rec->segment = self->segments[self->current].path;
        if (self->resynced)
            self->expected = rec->offset;
        self->resynced = false;
        if (rec->offset != self->expected && problem) {
            /* A record whose offset does not follow: records were lost before it. */
            s_problem (self, problem, "bad_offset", "expected offset, found %llu", rec->offset);
            problem->offset = self->expected;
            self->expected = rec->offset;
            return -1;
        }
        self->pos += QP_JOURNAL_FRAME + len;
        self->expected = rec->offset + 1;
        return 1;
    }
}

/* Index entries of segment i (count in *n), or NULL. */
static uint8_t *s_index_load (const segment_t *s, size_t *n)
{
    *n = 0;
    FILE *f = fopen (s->index, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    uint8_t e[24];
    while (fread (e, sizeof e, 1, f) == 1) {
        if (len + 24 > cap) {
            cap = cap ? cap * 2 : 24 * 64;
            buf = realloc (buf, cap);
            if (!buf)
                abort ();
        }
        memcpy (buf + len, e, 24);
        len += 24;
    }
    fclose (f);
    *n = len / 24;
    return buf;
}

/* Seeks within segment i to the last index entry accepted by keep (entries in order),
 * then scans records until stop says so. */
typedef bool (*s_index_pred_t) (const uint8_t *entry, uint64_t off, int64_t us);
static bool s_entry_before_offset (const uint8_t *e, uint64_t off, int64_t us)
{
    (void)us;
    return s_get64 (e) <= off;
}
static bool s_entry_before_time (const uint8_t *e, uint64_t off, int64_t us)
{
    (void)off;
    return (int64_t)s_get64 (e + 8) < us;
}

static int s_seek (qp_journal_reader_t *self, size_t seg, s_index_pred_t pred, uint64_t off,
                   int64_t us)
{
    if (s_enter (self, seg, NULL) < 0)
        return -1;
    self->expected = self->segments[seg].first_offset;
    self->resynced = false;
    size_t n;
    uint8_t *idx = s_index_load (&self->segments[seg], &n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = idx + 24 * i;
        uint64_t pos = s_get64 (e + 16);
        if (!pred (e, off, us) || pos >= self->size)
            break;
        const char *code;
        /* Trust an entry only if a valid record of that offset sits there. */
        if (s_frame_check (self->base, self->size, pos, &code) &&
            s_get64 (self->base + pos + QP_JOURNAL_FRAME + 8) == s_get64 (e)) {
            self->pos = pos;
            self->expected = s_get64 (e);
        }
    }
    free (idx);
    /* Scan forward to the first record that passes. */
    while (self->pos < self->size) {
        const char *code;
        uint32_t len = s_frame_check (self->base, self->size, self->pos, &code);
        if (!len)
            break; /* next() reports it */
        const uint8_t *b = self->base + self->pos + QP_JOURNAL_FRAME;
        uint64_t o = s_get64 (b + 8);
        int64_t t = (int64_t)s_get64 (b + 24);
        if (pred == s_entry_before_offset ? o >= off : t >= us)
            break;
        self->pos += QP_JOURNAL_FRAME + len;
        self->expected = o + 1;
    }
    return 0;
}

int qp_journal_reader_seek_offset (qp_journal_reader_t *self, uint64_t offset)
{
    size_t seg = 0;
    for (size_t i = 0; i < self->n_segments; i++)
        if (self->segments[i].first_offset <= offset)
            seg = i;
    return s_seek (self, seg, s_entry_before_offset, offset, 0);
}

int qp_journal_reader_seek_time (qp_journal_reader_t *self, int64_t recorded_us)
{
    /* The segment whose first index entry is the last one before the time. */
    size_t seg = 0;
    for (size_t i = 0; i < self->n_segments; i++) {
        size_t n;
        uint8_t *idx = s_index_load (&self->segments[i], &n);
        bool before = n && (int64_t)s_get64 (idx + 8) < recorded_us;
        free (idx);
        if (!before)
            break;
        seg = i;
    }
    return s_seek (self, seg, s_entry_before_time, 0, recorded_us);
}

int qp_journal_record_decode (const qp_journal_record_t *rec, qp_message_t *msg, qp_error_t *err)
{
    memset (msg, 0, sizeof *msg);
    if (rec->kind != QP_JOURNAL_MESSAGE) {
        qp_error_set (err, "malformed_frame", "kind", "a gap record carries no message");
        return -1;
    }
    zframe_t *type = zframe_new (rec->type, rec->type_len);
    zframe_t *env = zframe_new (rec->envelope, rec->envelope_size);
    int rc = qp_message_decode (type, env, msg, err);
    zframe_destroy (&type);
    zframe_destroy (&env);
    return rc;
}

/* ---- Personal data ------------------------------------------------------------------ */

#define S_SCRUB_DEPTH 32 /* deeper than any message of the contract */

static bool s_descriptor_holds_identity (const ProtobufCMessageDescriptor *d, int depth)
{
    if (d == &qp__v1__person_identity__descriptor)
        return true;
    for (unsigned i = 0; depth < S_SCRUB_DEPTH && i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
            s_descriptor_holds_identity (d->fields[i].descriptor, depth + 1))
            return true;
    return false;
}

static const ProtobufCMessageDescriptor *s_type_descriptor (const char *type, size_t type_len)
{
    char name[128];
    if (!type || type_len >= sizeof name)
        return NULL;
    memcpy (name, type, type_len);
    name[type_len] = 0;
    return qp_message_lookup_type (name);
}

bool qp_journal_type_holds_identity (const char *type, size_t type_len)
{
    const ProtobufCMessageDescriptor *d = s_type_descriptor (type, type_len);
    return d && s_descriptor_holds_identity (d, 0);
}

/* The sub-message slots of field f in m: one for a singular field, n for a repeated one. */
static ProtobufCMessage **s_slots (ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                                   size_t *n)
{
    uint8_t *base = (uint8_t *)m;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
        *(uint32_t *)(base + f->quantifier_offset) != f->id) {
        *n = 0;
        return NULL;
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *n = *(size_t *)(base + f->quantifier_offset);
        return *(ProtobufCMessage ***)(base + f->offset);
    }
    *n = 1;
    return (ProtobufCMessage **)(base + f->offset);
}

/* Drops the fields of m this version does not know: a newer front end's field may hold a
 * phone number or a name, and nothing tells which (intake refuses them anyway). */
static bool s_drop_unknown_fields (ProtobufCMessage *m)
{
    if (m->n_unknown_fields == 0)
        return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        free (m->unknown_fields[i].data);
    free (m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    return true;
}

/* Empties every PersonIdentity under m and drops every unknown field (free_unpacked-owned).
 * true when something was removed. */
static bool s_scrub_message (ProtobufCMessage *m, int depth)
{
    bool changed = s_drop_unknown_fields (m);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; depth < S_SCRUB_DEPTH && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        size_t n;
        ProtobufCMessage **slots = s_slots (m, f, &n);
        for (size_t k = 0; k < n; k++) {
            if (!slots[k])
                continue;
            if (f->descriptor != &qp__v1__person_identity__descriptor)
                changed |= s_scrub_message (slots[k], depth + 1);
            else if (protobuf_c_message_get_packed_size (slots[k]) > 0) {
                /* Present but empty: the mark that an identity was given. */
                protobuf_c_message_free_unpacked (slots[k], NULL);
                Qp__V1__PersonIdentity *empty = malloc (sizeof *empty);
                assert (empty);
                qp__v1__person_identity__init (empty);
                slots[k] = &empty->base;
                changed = true;
            }
        }
    }
    return changed;
}

static uint8_t *s_pack (const ProtobufCMessage *m, size_t *size)
{
    *size = protobuf_c_message_get_packed_size (m);
    uint8_t *buf = malloc (*size ? *size : 1);
    assert (buf);
    protobuf_c_message_pack (m, buf);
    return buf;
}

/* ---- A look at the wire format, before decoding ---------------------------------------
 * Most submissions carry a person key, not an identity: telling so from the tags alone
 * spares the recorder a decode and a re-encode of each. */

static bool s_varint (const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* 1: the bytes of a message of descriptor d hold a PersonIdentity with content; 0: they
 * hold none; -1: they do not read as protobuf (the full decode then decides). */
static int s_wire_identity (const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                            int depth)
{
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        if (!s_varint (p, n, &i, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX)
            return -1;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field (d, (unsigned)(key >> 3));
        if (!f)
            return 1; /* an unknown field may hold anything: decoded and dropped */
        switch (key & 7) {
        case PROTOBUF_C_WIRE_TYPE_VARINT:
            if (!s_varint (p, n, &i, &v))
                return -1;
            break;
        case PROTOBUF_C_WIRE_TYPE_64BIT:
            if (n - i < 8)
                return -1;
            i += 8;
            break;
        case PROTOBUF_C_WIRE_TYPE_32BIT:
            if (n - i < 4)
                return -1;
            i += 4;
            break;
        case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
            if (!s_varint (p, n, &i, &v) || v > n - i)
                return -1;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (f->descriptor == &qp__v1__person_identity__descriptor) {
                    if (v > 0)
                        return 1;
                } else if (depth < S_SCRUB_DEPTH) {
                    int r = s_wire_identity (f->descriptor, p + i, (size_t)v, depth + 1);
                    if (r != 0)
                        return r;
                }
            }
            i += (size_t)v;
            break;
        }
        default:
            return -1; /* groups: not in this contract */
        }
    }
    return 0;
}

/* 0 when the envelope's payload (of descriptor d) holds no identity for certain. */
static int s_wire_envelope_identity (const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                     size_t n)
{
    size_t i = 0;
    const uint8_t *payload = NULL;
    size_t payload_size = 0;
    while (i < n) {
        uint64_t key, v;
        if (!s_varint (p, n, &i, &key))
            return -1;
        int wire = (int)(key & 7);
        if (wire == PROTOBUF_C_WIRE_TYPE_VARINT) {
            if (!s_varint (p, n, &i, &v))
                return -1;
        } else if (wire == PROTOBUF_C_WIRE_TYPE_64BIT || wire == PROTOBUF_C_WIRE_TYPE_32BIT) {
            size_t w = wire == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
            if (n - i < w)
                return -1;
            i += w;
        } else if (wire == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            if (!s_varint (p, n, &i, &v) || v > n - i)
                return -1;
            if (key >> 3 == 8) {
                if (payload)
                    return -1; /* twice: let the decoder say which counts */
                payload = p + i;
                payload_size = (size_t)v;
            }
            i += (size_t)v;
        } else
            return -1;
    }
    return payload ? s_wire_identity (d, payload, payload_size, 0) : 0;
}

qp_journal_scrub_t qp_journal_scrub (const char *type, size_t type_len, const uint8_t *envelope,
                                     size_t size, uint8_t **out, size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    const ProtobufCMessageDescriptor *d = s_type_descriptor (type, type_len);
    if (!d || !s_descriptor_holds_identity (d, 0))
        return QP_JOURNAL_CLEAN;
    if (s_wire_envelope_identity (d, envelope, size) == 0)
        return QP_JOURNAL_CLEAN;
    Qp__V1__Envelope *env = qp__v1__envelope__unpack (NULL, size, envelope);
    if (!env)
        return QP_JOURNAL_DROPPED; /* nothing of it can be told apart from an identity */
    qp_journal_scrub_t result = QP_JOURNAL_CLEAN;
    if (env->has_payload) {
        ProtobufCMessage *payload =
            protobuf_c_message_unpack (d, NULL, env->payload.len, env->payload.data);
        uint8_t *packed = NULL;
        size_t packed_size = 0;
        if (!payload) {
            env->has_payload = false;
            result = QP_JOURNAL_DROPPED;
        } else if (s_scrub_message (payload, 0)) {
            packed = s_pack (payload, &packed_size);
            free (env->payload.data);
            env->payload.data = packed; /* freed with the envelope */
            env->payload.len = packed_size;
            result = QP_JOURNAL_SCRUBBED;
        }
        if (payload)
            protobuf_c_message_free_unpacked (payload, NULL);
        if (result != QP_JOURNAL_CLEAN)
            *out = s_pack (&env->base, out_size);
    }
    qp__v1__envelope__free_unpacked (env, NULL);
    return result;
}

static bool s_has_identity (const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; depth < S_SCRUB_DEPTH && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        size_t n;
        ProtobufCMessage **slots = s_slots ((ProtobufCMessage *)m, f, &n);
        for (size_t k = 0; k < n; k++)
            if (slots[k] && (f->descriptor == &qp__v1__person_identity__descriptor
                                 ? protobuf_c_message_get_packed_size (slots[k]) > 0
                                 : s_has_identity (slots[k], depth + 1)))
                return true;
    }
    return false;
}

bool qp_journal_payload_has_identity (const ProtobufCMessage *payload)
{
    return payload && s_has_identity (payload, 0);
}
