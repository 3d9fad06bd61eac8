/* The recorder's loop: capture tap -> journal, with gap detection on capture seqs. */
#include "recorder.h"
#include "qp_log.h"
#include <sys/time.h>

struct recorder {
    zsock_t *tap;
    qp_journal_writer_t *journal;
    recorder_stats_t stats;
};

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

int recorder_handle (recorder_t *self, zmsg_t **capture_p)
{
    zmsg_t *m = *capture_p;
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
    int rc = 0;
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
                                   dest ? zframe_size (dest) : 0, body, body_size) < 0)
        rc = -1;
    free (scrubbed);
    if (rc == 0) {
        self->stats.scrubbed += scrub == QP_JOURNAL_SCRUBBED;
        self->stats.dropped += scrub == QP_JOURNAL_DROPPED;
    }
    if (rc == 0) {
        self->stats.recorded++;
        self->stats.last_seq = seq;
    }
    zmsg_destroy (capture_p);
    return rc;
}

int recorder_run (recorder_t *self, volatile bool *stop)
{
    zpoller_t *poller = zpoller_new (self->tap, NULL);
    int rc = 0;
    int64_t next_flush = zclock_mono () + 100;
    while (!zsys_interrupted && !(stop && *stop)) {
        void *which = zpoller_wait (poller, 100);
        /* Drain what is there, then flush: one write per burst, not per message. */
        for (int i = 0; which && i < 10000; i++) {
            zmsg_t *m = zmsg_recv_nowait (self->tap);
            if (!m)
                break;
            if (recorder_handle (self, &m) < 0) {
                qp_log_error ("journal_write_failed", "cannot append to the journal: %s",
                              strerror (errno));
                rc = 1;
                goto done;
            }
        }
        if (!which || zclock_mono () >= next_flush) {
            if (qp_journal_writer_flush (self->journal) < 0) {
                qp_log_error ("journal_write_failed", "cannot flush the journal: %s",
                              strerror (errno));
                rc = 1;
                goto done;
            }
            next_flush = zclock_mono () + 100;
        }
        if (!which && zpoller_terminated (poller) && zsys_interrupted)
            break;
    }
done:
    /* What the bus already sent before the stop is in the socket: take it too (a
     * declaration may not follow a label before C23: clang refuses it). */
    for (zmsg_t *m; rc == 0 && (m = zmsg_recv_nowait (self->tap));)
        if (recorder_handle (self, &m) < 0)
            rc = 1;
    zpoller_destroy (&poller);
    qp_journal_writer_flush (self->journal);
    qp_log_info ("recorder_stopping",
                 "recorded %llu messages, %llu gaps (%llu messages missing), %llu malformed, "
                 "%llu with a person's identity emptied, %llu without their undecodable "
                 "payload, last capture seq %llu",
                 (unsigned long long)self->stats.recorded, (unsigned long long)self->stats.gaps,
                 (unsigned long long)self->stats.missing, (unsigned long long)self->stats.malformed,
                 (unsigned long long)self->stats.scrubbed, (unsigned long long)self->stats.dropped,
                 (unsigned long long)self->stats.last_seq);
    return rc;
}
