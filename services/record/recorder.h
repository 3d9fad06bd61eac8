/* The recorder: subscribes to the bus's capture tap and appends every message to a
 * journal (common/qp_journal.h). It never drops silently: the capture seq numbers tell
 * it when the tap lost messages (PUB/SUB drops past its high-water mark), and it writes
 * a gap record for them and says so in its log. It journals no person's identity: each
 * PersonIdentity a submitter sent is emptied before the message is written
 * (qp_journal_scrub); intake derives the pseudonymous person key and the journal keeps
 * that, in the DossierReceived. */
#ifndef QP_RECORDER_H
#define QP_RECORDER_H
#include "qp_journal.h"
#include <czmq.h>

typedef struct {
    const char *capture; /* the bus's capture endpoint */
    qp_journal_config_t journal;
    /* After a journal write error, stay up (probes and metrics say so) rather than exit
     * at once: set when the HTTP probes run, else the exit status is the only signal. */
    bool stay_on_error;
} recorder_config_t;

typedef struct {
    uint64_t recorded;  /* message records written */
    uint64_t gaps;      /* gap records written */
    uint64_t missing;   /* capture seqs they cover */
    uint64_t malformed; /* capture frame sets that were not [seq, origin, type, env, dest] */
    uint64_t scrubbed;  /* messages recorded with their person identities emptied */
    uint64_t dropped;   /* messages of a type that can hold an identity recorded without
                           their payload (it did not decode: no way to find the identity) */
    uint64_t last_seq;
    uint64_t bytes;        /* record bytes handed to the journal (frame + body) */
    uint64_t write_errors; /* appends that failed */
    uint64_t flush_errors; /* flushes (write of the buffer, fdatasync per --fsync) that failed */
    uint64_t discarded;    /* capture frame sets not written: the one whose append failed
                              and every one received after */
    bool failed;           /* a journal write failed: nothing more is written */
} recorder_stats_t;

typedef struct recorder recorder_t;

/* Opens the journal and connects to the capture tap; returns once the subscription is
 * on its way (the connection's handshake is done) or after timeout_ms. NULL with err
 * filled when the journal cannot be opened or the endpoint is invalid. */
recorder_t *recorder_new (const recorder_config_t *config, int timeout_ms, char *err,
                          size_t err_size);
/* Flushes and closes the journal. */
void recorder_destroy (recorder_t **self_p);

/* Records one capture frame set (taken). Returns 0, or -1 on a journal write error. */
int recorder_handle (recorder_t *self, zmsg_t **capture_p);
/* Receives and records until SIGINT/SIGTERM (or *stop becomes true when not NULL).
 * Each turn of the loop reports liveness (qp_health_tick), the readiness check
 * "journal" and the qp_record_* metrics. After a journal write error it writes nothing
 * more (a later write could land behind bytes the failed one lost, damaging the middle
 * of a segment): it logs, sets "journal" false, counts the error, and keeps draining the
 * tap and answering probes until stopped. Returns 0, or 1 when the journal could not be
 * written. */
int recorder_run (recorder_t *self, volatile bool *stop);
recorder_stats_t recorder_stats (const recorder_t *self);
#endif
