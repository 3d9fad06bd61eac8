/* The recorder's loop: capture tap -> journal, with gap detection on capture seqs. */
#include "recorder.h"
#include "qp_health.h"
#include "qp_log.h"
#include "qp_metrics.h"
#include <dirent.h>
#include <sys/stat.h>
#include <sys/time.h>

struct recorder {
    zsock_t *tap;
    qp_journal_writer_t *journal;
    char *dir;
    bool stay_on_error;
    recorder_stats_t stats;
    uint64_t flushed; /* stats.recorded at the last successful flush */
    struct {
        qp_metric_t *frame_sets, *bytes, *gaps, *missing, *malformed, *discarded, *last_seq,
            *append_errors, *flush_errors, *journal_bytes, *segments;
    } m;
};

static void s_metrics_register (recorder_t *self)
{
    self->m.frame_sets = qp_metrics_counter (
        "qp_record_frame_sets_total",
        "capture frame sets handed to the journal (on disk after the next flush)", "");
    self->m.bytes = qp_metrics_counter ("qp_record_bytes_written_total",
                                        "record bytes written to the journal (frame and body)", "");
    self->m.gaps = qp_metrics_counter ("qp_record_gaps_total", "gap records written", "");
    self->m.missing = qp_metrics_counter (
        "qp_record_missing_total", "capture seqs the gap records cover (never received)", "");
    self->m.malformed = qp_metrics_counter (
        "qp_record_malformed_total", "capture frame sets of the wrong shape, not written", "");
    self->m.discarded = qp_metrics_counter (
        "qp_record_discarded_total", "capture frame sets not written after a journal error", "");
    self->m.last_seq =
        qp_metrics_gauge ("qp_record_last_seq", "last capture seq written to the journal", "");
    self->m.append_errors =
        qp_metrics_counter ("qp_record_journal_errors_total",
                            "journal appends and flushes that failed", "op=\"append\"");
    self->m.flush_errors =
        qp_metrics_counter ("qp_record_journal_errors_total",
                            "journal appends and flushes that failed", "op=\"flush\"");
    self->m.journal_bytes = qp_metrics_gauge (
        "qp_record_journal_bytes", "size on disk of the journal's segments and indexes", "");
    self->m.segments = qp_metrics_gauge ("qp_record_journal_segments", "journal segments", "");
}

/* Totals into the registry: set from the stats, so they always agree with them. */
static void s_metrics_publish (recorder_t *self)
{
    qp_metric_set (self->m.frame_sets, (double)self->stats.recorded);
    qp_metric_set (self->m.bytes, (double)self->stats.bytes);
    qp_metric_set (self->m.gaps, (double)self->stats.gaps);
    qp_metric_set (self->m.missing, (double)self->stats.missing);
    qp_metric_set (self->m.malformed, (double)self->stats.malformed);
    qp_metric_set (self->m.discarded, (double)self->stats.discarded);
    qp_metric_set (self->m.last_seq, (double)self->stats.last_seq);
    qp_metric_set (self->m.append_errors, (double)self->stats.write_errors);
    qp_metric_set (self->m.flush_errors, (double)self->stats.flush_errors);
}

/* The journal's size on disk: its segments (.qpj) and their indexes (.idx). */
static void s_measure_journal (recorder_t *self)
{
    DIR *d = opendir (self->dir);
    if (!d)
        return;
    double bytes = 0, segments = 0;
    for (struct dirent *e; (e = readdir (d));) {
        size_t len = strlen (e->d_name);
        bool segment = len > 4 && !strcmp (e->d_name + len - 4, ".qpj");
        if (!segment && !(len > 4 && !strcmp (e->d_name + len - 4, ".idx")))
            continue;
        struct stat st;
        if (fstatat (dirfd (d), e->d_name, &st, 0) == 0)
            bytes += (double)st.st_size;
        segments += segment;
    }
    closedir (d);
    qp_metric_set (self->m.journal_bytes, bytes);
    qp_metric_set (self->m.segments, segments);
}

static int64_t s_wall_us (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Waits for the tap's handshake with the bus: the subscription is sent with it. */
static int s_connect (zsock_t *tap, const char *endpoint, int timeout_ms)
{
    zactor_t *monitor = zactor_new (zmonitor, tap);
    zstr_sendx (monitor, "LISTEN", "HANDSHAKE_SUCCEEDED", NULL);
    zstr_send (monitor, "START");
    zsock_wait (monitor);
    if (zsock_connect (tap, "%s", endpoint) < 0) {
        zactor_destroy (&monitor);
        return -1;
    }
    zpoller_t *p = zpoller_new (monitor, NULL);
    if (zpoller_wait (p, timeout_ms)) {
        zmsg_t *m = zmsg_recv (monitor);
        zmsg_destroy (&m);
        /* The bus's I/O thread applies the subscription just after: a short margin. */
        zclock_sleep (50);
    } else
        qp_log_warn ("capture_not_connected", "no handshake with %s after %d ms; recording anyway",
                     endpoint, timeout_ms);
    zpoller_destroy (&p);
    zactor_destroy (&monitor);
    return 0;
}

recorder_t *recorder_new (const recorder_config_t *config, int timeout_ms, char *err,
                          size_t err_size)
{
    uint64_t torn = 0;
    qp_journal_writer_t *journal = qp_journal_writer_open (&config->journal, &torn, err, err_size);
    if (!journal)
        return NULL;
    if (torn)
        qp_log_warn ("journal_torn_tail",
                     "%s: cut %llu bytes of an incomplete last record (a crash while writing)",
                     config->journal.dir, (unsigned long long)torn);
    zsock_t *tap = zsock_new (ZMQ_SUB);
    assert (tap);
    zsock_set_rcvhwm (tap, 1000000);
    zsock_set_linger (tap, 0);
    zsock_set_subscribe (tap, "");
    if (s_connect (tap, config->capture, timeout_ms) < 0) {
        snprintf (err, err_size, "invalid capture endpoint %s", config->capture);
        zsock_destroy (&tap);
        qp_journal_writer_close (&journal);
        return NULL;
    }
    recorder_t *self = calloc (1, sizeof *self);
    assert (self);
    self->tap = tap;
    self->journal = journal;
    self->dir = strdup (config->journal.dir);
    self->stay_on_error = config->stay_on_error;
    s_metrics_register (self);
    s_measure_journal (self);
    qp_health_check ("journal", true);
    qp_log_info ("recorder_started", "recording %s into %s from offset %llu", config->capture,
                 config->journal.dir, (unsigned long long)qp_journal_writer_next_offset (journal));
    return self;
}

void recorder_destroy (recorder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    recorder_t *self = *self_p;
    zsock_destroy (&self->tap);
    qp_journal_writer_close (&self->journal);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

recorder_stats_t recorder_stats (const recorder_t *self)
{
    return self->stats;
}

static int s_gap (recorder_t *self, uint64_t first, uint64_t count, uint16_t flags)
{
    int64_t off = qp_journal_append_gap (self->journal, first, count, flags, s_wall_us ());
    if (off < 0)
        return -1;
    self->stats.gaps++;
    self->stats.missing += count;
    self->stats.bytes += QP_JOURNAL_FRAME + QP_JOURNAL_BODY_HEADER;
    if (flags & QP_JOURNAL_GAP_BEFORE_START)
        qp_log_info ("capture_joined_late",
                     "the bus had captured %llu messages before the recorder joined: gap record "
                     "at offset %lld",
                     (unsigned long long)count, (long long)off);
    else
        qp_log_warn ("capture_gap",
                     "capture seqs %llu..%llu (%llu messages) never reached the recorder (tap "
                     "over its high-water mark): gap record at offset %lld",
                     (unsigned long long)first, (unsigned long long)(first + count - 1),
                     (unsigned long long)count, (long long)off);
    return 0;
}

/* A write failed: stop writing (what the stdio buffer lost would leave a hole a later
 * write lands behind), say so everywhere an operator looks. The next start cuts an
 * incomplete last record (journal_torn_tail): the records before stay intact. */
static void s_fail (recorder_t *self, bool flush, int err)
{
    if (flush)
        self->stats.flush_errors++;
    else
        self->stats.write_errors++;
    if (self->stats.failed)
        return;
    self->stats.failed = true;
    qp_health_check ("journal", false);
    qp_log_error ("journal_write_failed",
                  "cannot %s the journal %s: %s; recording stops (the last %llu records, "
                  "written since the last flush, may be missing; last capture seq handed to it "
                  "%llu)",
                  flush ? "flush" : "append to", self->dir, strerror (err),
                  (unsigned long long)(self->stats.recorded - self->flushed),
                  (unsigned long long)self->stats.last_seq);
}

int recorder_handle (recorder_t *self, zmsg_t **capture_p)
{
    zmsg_t *m = *capture_p;
    if (self->stats.failed) {
        self->stats.discarded++;
        zmsg_destroy (capture_p);
        return -1;
    }
    size_t n = zmsg_size (m);
    zframe_t *seq_f = zmsg_first (m);
    if ((n != 4 && n != 5) || zframe_size (seq_f) != 8) {
        self->stats.malformed++;
        qp_log_warn ("capture_malformed",
                     "a capture frame set of %zu frames is not "
                     "[seq, origin, type, envelope, destination]: not recorded",
                     n);
        zmsg_destroy (capture_p);
        return 0;
    }
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | zframe_data (seq_f)[i];
    zframe_t *origin = zmsg_next (m);
    zframe_t *type = zmsg_next (m);
    zframe_t *env = zmsg_next (m);
    zframe_t *dest = n == 5 ? zmsg_next (m) : NULL;
    int rc = 0, err = 0;
    if (seq <= self->stats.last_seq) {
        qp_log_warn ("capture_restarted",
                     "capture seq went back from %llu to %llu: the bus restarted",
                     (unsigned long long)self->stats.last_seq, (unsigned long long)seq);
        self->stats.last_seq = 0;
    }
    if (seq > self->stats.last_seq + 1)
        rc = s_gap (self, self->stats.last_seq + 1, seq - self->stats.last_seq - 1,
                    self->stats.last_seq == 0 && self->stats.recorded == 0
                        ? QP_JOURNAL_GAP_BEFORE_START
                        : 0);
    if (rc)
        err = errno;
    char o[16];
    size_t olen = zframe_size (origin) < sizeof o - 1 ? zframe_size (origin) : sizeof o - 1;
    memcpy (o, zframe_data (origin), olen);
    o[olen] = 0;
    /* No identity on disk: the recorder holds no pepper, so it empties the identity and
     * the replay takes the person key intake derived (docs/replay.md). */
    uint8_t *scrubbed = NULL;
    size_t scrubbed_size = 0;
    qp_journal_scrub_t scrub =
        qp_journal_scrub ((const char *)zframe_data (type), zframe_size (type), zframe_data (env),
                          zframe_size (env), &scrubbed, &scrubbed_size);
    if (scrub == QP_JOURNAL_DROPPED)
        qp_log_warn ("payload_dropped",
                     "capture seq %llu: a %.*s that does not decode is recorded without its "
                     "payload (it may hold a person's identity)",
                     (unsigned long long)seq,
                     (int)(zframe_size (type) < 64 ? zframe_size (type) : 64),
                     (const char *)zframe_data (type));
    const void *body = scrub == QP_JOURNAL_CLEAN ? zframe_data (env) : scrubbed;
    size_t body_size = scrub == QP_JOURNAL_CLEAN ? zframe_size (env) : scrubbed_size;
    if (rc == 0 &&
        qp_journal_append_message (self->journal, qp_journal_origin_parse (o), seq, s_wall_us (),
                                   (const char *)zframe_data (type), zframe_size (type),
                                   dest ? (const char *)zframe_data (dest) : NULL,
                                   dest ? zframe_size (dest) : 0, body, body_size) < 0) {
        rc = -1;
        err = errno;
    }
    free (scrubbed);
    if (rc == 0) {
        self->stats.scrubbed += scrub == QP_JOURNAL_SCRUBBED;
        self->stats.dropped += scrub == QP_JOURNAL_DROPPED;
        self->stats.recorded++;
        self->stats.last_seq = seq;
        self->stats.bytes += QP_JOURNAL_FRAME + QP_JOURNAL_BODY_HEADER + zframe_size (type) +
                             (dest ? zframe_size (dest) : 0) + body_size;
    } else {
        self->stats.discarded++; /* not (wholly) written: counted with what follows */
        s_fail (self, false, err);
    }
    zmsg_destroy (capture_p);
    return rc;
}

static void s_flush (recorder_t *self)
{
    if (self->stats.failed)
        return;
    if (qp_journal_writer_flush (self->journal) < 0)
        s_fail (self, true, errno);
    else
        self->flushed = self->stats.recorded;
}

int recorder_run (recorder_t *self, volatile bool *stop)
{
    zpoller_t *poller = zpoller_new (self->tap, NULL);
    int64_t next_flush = zclock_mono () + 100, next_measure = zclock_mono () + 1000;
    while (!zsys_interrupted && !(stop && *stop)) {
        void *which = zpoller_wait (poller, 100);
        /* Drain what is there, then flush: one write per burst, not per message. */
        for (int i = 0; which && i < 10000; i++) {
            zmsg_t *m = zmsg_recv_nowait (self->tap);
            if (!m)
                break;
            recorder_handle (self, &m);
        }
        int64_t now = zclock_mono ();
        if (!which || now >= next_flush) {
            s_flush (self);
            next_flush = now + 100;
        }
        qp_health_tick ();
        s_metrics_publish (self);
        if (now >= next_measure) {
            s_measure_journal (self);
            next_measure = now + 1000;
        }
        if (self->stats.failed && !self->stay_on_error)
            break;
        if (!which && zpoller_terminated (poller) && zsys_interrupted)
            break;
    }
    /* What the bus already sent before the stop is in the socket: take it too. */
    for (zmsg_t *m; !self->stats.failed && (m = zmsg_recv_nowait (self->tap));)
        recorder_handle (self, &m);
    zpoller_destroy (&poller);
    s_flush (self);
    s_metrics_publish (self);
    s_measure_journal (self);
    qp_log_info ("recorder_stopping",
                 "recorded %llu messages, %llu gaps (%llu messages missing), %llu malformed, "
                 "%llu with a person's identity emptied, %llu without their undecodable "
                 "payload, last capture seq %llu, %llu journal errors, %llu discarded after one",
                 (unsigned long long)self->stats.recorded, (unsigned long long)self->stats.gaps,
                 (unsigned long long)self->stats.missing, (unsigned long long)self->stats.malformed,
                 (unsigned long long)self->stats.scrubbed, (unsigned long long)self->stats.dropped,
                 (unsigned long long)self->stats.last_seq,
                 (unsigned long long)(self->stats.write_errors + self->stats.flush_errors),
                 (unsigned long long)self->stats.discarded);
    return self->stats.failed ? 1 : 0;
}
