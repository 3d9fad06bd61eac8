/* The journal: every message the bus routed, in capture order, on disk.
 *
 * A journal is a directory of segments NNNNNNNNNNNNNNNNNNNN.qpj (named by the offset of
 * their first record, rotated by size) with a sparse index beside each (.idx). A segment
 * starts with a 32-byte header ("QPJ1", version, first offset, creation time), then
 * framed records:
 *
 *   [u32 length][u32 CRC-32C of body][body: length bytes]
 *   body = [u8 kind][u8 origin][u16 type length][u16 destination length][u16 flags]
 *          [u64 offset][u64 capture seq][i64 recorded us][u64 gap count]
 *          [type][destination][envelope]
 *
 * little-endian. kind is a message (the envelope bytes exactly as captured) or a gap
 * (capture seqs [seq, seq + gap count) that the recorder never received). An offset is
 * the record's number in the journal, from 0. The index holds one entry
 * [offset, recorded us, file position] every QP_JOURNAL_INDEX_EVERY records so that a
 * reader seeks by offset or by time without scanning everything. */
#ifndef QP_JOURNAL_H
#define QP_JOURNAL_H
#include "qp_message.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QP_JOURNAL_MAGIC "QPJ1"
#define QP_JOURNAL_VERSION 1
#define QP_JOURNAL_SEGMENT_HEADER 32
#define QP_JOURNAL_FRAME 8        /* length + CRC */
#define QP_JOURNAL_BODY_HEADER 40 /* fixed part of a body */
#define QP_JOURNAL_MAX_BODY (1024 * 1024)
#define QP_JOURNAL_INDEX_EVERY 1024

typedef enum { QP_JOURNAL_MESSAGE = 1, QP_JOURNAL_GAP = 2 } qp_journal_kind_t;

/* Capture origins, as the bus names them. */
typedef enum {
    QP_ORIGIN_NONE = 0,
    QP_ORIGIN_WORK = 1,
    QP_ORIGIN_PARTNER = 2,
    QP_ORIGIN_EVENT = 3
} qp_journal_origin_t;

/* Gap flags: the gap precedes the first message the recorder received (it joined a bus
 * that had already captured messages) rather than a loss in the middle. */
#define QP_JOURNAL_GAP_BEFORE_START 1

typedef struct {
    uint64_t offset;
    qp_journal_kind_t kind;
    qp_journal_origin_t origin;
    uint16_t flags;
    uint64_t seq;        /* capture seq; for a gap, the first missing one */
    uint64_t gap_count;  /* gap: how many seqs are missing */
    int64_t recorded_us; /* recorder's wall clock when it received the message */
    const char *type;    /* not NUL-terminated: type_len bytes */
    size_t type_len;
    const char *destination;
    size_t destination_len;
    const uint8_t *envelope;
    size_t envelope_size;
    /* Where it is (for reports). */
    const char *segment; /* path of the segment file */
    uint64_t position;   /* byte position of the frame in the segment */
} qp_journal_record_t;

const char *qp_journal_origin_name (qp_journal_origin_t origin);
qp_journal_origin_t qp_journal_origin_parse (const char *name);

/* CRC-32C (Castagnoli): the SSE4.2 instruction when the CPU has it, a table otherwise.
 * crc is the running value (0 to start). */
uint32_t qp_crc32c (uint32_t crc, const void *data, size_t size);

/* ---- Writer ---------------------------------------------------------------------- */

typedef enum {
    QP_JOURNAL_FSYNC_NEVER,    /* the OS writes back when it likes */
    QP_JOURNAL_FSYNC_INTERVAL, /* fdatasync at most every fsync_interval_ms */
    QP_JOURNAL_FSYNC_ALWAYS    /* fdatasync after every record */
} qp_journal_fsync_t;

/* "never" | "interval" | "always"; -1 when unknown. */
int qp_journal_fsync_parse (const char *name);

typedef struct {
    const char *dir;
    uint64_t segment_bytes; /* rotate once a segment reaches this size; 0: 64 MiB */
    qp_journal_fsync_t fsync;
    int fsync_interval_ms; /* 0: 1000 */
} qp_journal_config_t;

typedef struct qp_journal_writer qp_journal_writer_t;

/* Opens (creating the directory) for appending after the last valid record. A torn last
 * record left by a crash is cut off (reported in *torn_bytes when not NULL). NULL with
 * err filled on failure. */
qp_journal_writer_t *qp_journal_writer_open (const qp_journal_config_t *config,
                                             uint64_t *torn_bytes, char *err, size_t err_size);
/* Flushes, syncs (unless fsync never) and closes. */
void qp_journal_writer_close (qp_journal_writer_t **self_p);

/* Appends a message record; returns its offset, or -1 on an I/O error (errno kept). */
int64_t qp_journal_append_message (qp_journal_writer_t *self, qp_journal_origin_t origin,
                                   uint64_t seq, int64_t recorded_us, const char *type,
                                   size_t type_len, const char *destination, size_t destination_len,
                                   const void *envelope, size_t envelope_size);
/* Appends a gap record: seqs [first_seq, first_seq + count) are missing. */
int64_t qp_journal_append_gap (qp_journal_writer_t *self, uint64_t first_seq, uint64_t count,
                               uint16_t flags, int64_t recorded_us);
/* Writes buffered records to the file, and fdatasyncs as the policy says (interval: if
 * due). Call it when idle and periodically. Returns 0 or -1. */
int qp_journal_writer_flush (qp_journal_writer_t *self);
/* Offset the next record will get. */
uint64_t qp_journal_writer_next_offset (const qp_journal_writer_t *self);

/* ---- Reader ---------------------------------------------------------------------- */

/* A problem found while reading: what, where. */
typedef struct {
    char code[24]; /* bad_header | bad_length | crc_mismatch | truncated | bad_offset */
    char segment[512];
    uint64_t position; /* byte position in the segment */
    uint64_t offset;   /* offset the record would have had */
    char detail[160];
} qp_journal_problem_t;

typedef struct qp_journal_reader qp_journal_reader_t;

/* Opens a journal directory for reading (segments mapped one at a time). NULL with err
 * filled when it is not a journal (no segment). */
qp_journal_reader_t *qp_journal_reader_open (const char *dir, char *err, size_t err_size);
void qp_journal_reader_close (qp_journal_reader_t **self_p);

/* Positions the reader on the first record with offset >= offset (index, then scan). */
int qp_journal_reader_seek_offset (qp_journal_reader_t *self, uint64_t offset);
/* Positions the reader on the first record recorded at or after recorded_us. */
int qp_journal_reader_seek_time (qp_journal_reader_t *self, int64_t recorded_us);

/* The next record: 1 with rec filled (its pointers are valid until the next call), 0 at
 * the end, -1 with problem filled. After -1 the next call goes on past the damage (the
 * next valid frame, or the next segment), so a caller chooses to stop or to skip. */
int qp_journal_reader_next (qp_journal_reader_t *self, qp_journal_record_t *rec,
                            qp_journal_problem_t *problem);

/* Decodes a message record's envelope and payload as a service would (qp_message_decode:
 * the type registered, the envelope and payload valid). Returns 0, or -1 with err. */
int qp_journal_record_decode (const qp_journal_record_t *rec, qp_message_t *msg, qp_error_t *err);

/* Number of segments, and total bytes in them. */
size_t qp_journal_reader_segments (const qp_journal_reader_t *self, uint64_t *bytes);

/* ---- Personal data ------------------------------------------------------------------ */

/* A journal holds no person's identity (docs/security.md). A submitter may send a
 * PersonIdentity (names, birth date, email) instead of a person key; intake turns it into
 * the keyed-hash person key and forgets it, and so must the journal. The recorder passes
 * every captured envelope through qp_journal_scrub before appending it: each
 * PersonIdentity of the payload, at any depth, is replaced by an empty one (present, no
 * field, no unknown field), the mark that one was given, and every field of the payload
 * this version does not know is dropped (it may hold anything). Nothing else changes; a replay
 * takes the person key intake derived from the journal's DossierReceived
 * (docs/replay.md), so the recorder needs no pepper. */

/* Can a payload of this type hold a PersonIdentity at some depth? false for an unknown
 * type. */
bool qp_journal_type_holds_identity (const char *type, size_t type_len);

typedef enum {
    QP_JOURNAL_CLEAN = 0,    /* nothing to scrub: record the envelope as it is */
    QP_JOURNAL_SCRUBBED = 1, /* *out holds the envelope with its identities emptied */
    /* A type that can hold an identity whose bytes cannot be read far enough to tell
     * (not protobuf): *out holds the envelope without its payload (or nothing, when the
     * envelope itself does not decode). Services refuse such a message anyway. */
    QP_JOURNAL_DROPPED = 2
} qp_journal_scrub_t;

/* Scrubs envelope (of frame type `type`). For SCRUBBED and DROPPED *out is malloc'd (the
 * caller frees it; NULL with *out_size 0 for an empty envelope). */
qp_journal_scrub_t qp_journal_scrub (const char *type, size_t type_len, const uint8_t *envelope,
                                     size_t size, uint8_t **out, size_t *out_size);

/* Does this decoded payload hold a PersonIdentity with any field set (or any unknown
 * field)? For checks on journals written before the scrub. */
bool qp_journal_payload_has_identity (const ProtobufCMessage *payload);
#endif
