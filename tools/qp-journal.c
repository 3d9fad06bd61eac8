/* qp-journal: reads a journal written by qp-record.
 *   cat DIR      one JSON line per record (envelope and payload decoded)
 *   stats DIR    counts by type, gaps, time span, rate over time
 *   verify DIR   every frame and CRC, offsets in order, every envelope and payload decodes;
 *                exit 0 only if all is well
 *   scrub SRC DST  a copy of SRC without any person's identity (journals recorded before
 *                qp-record emptied them, docs/security.md) */
#include "qp_journal.h"
#include "qp_json.h"
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void s_usage (FILE *f)
{
    fprintf (f, "Usage: qp-journal cat|stats|verify [--from OFFSET] [--until OFFSET] DIR\n"
                "       qp-journal scrub SRC DST\n"
                "  cat     JSON lines: offset, capture seq, origin, destination, recorded time,\n"
                "          type, envelope and payload decoded (gaps as {\"gap\":...})\n"
                "  stats   counts by type, gaps, time span, records per second over time\n"
                "  verify  every frame, CRC-32C, offset order, envelope and payload; each\n"
                "          problem with its offset; exit 0 only if there is none; records that\n"
                "          still hold a person's identity are counted (not a failure)\n"
                "  scrub   writes DST (a new journal) from SRC with every person's identity\n"
                "          emptied, as qp-record does; same records, seqs and times\n");
}

static void s_iso (char out[48], int64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r (&t, &tm);
    char b[24];
    strftime (b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, 48, "%s.%06dZ", b, (int)(us % 1000000));
}

static void s_print_problem (FILE *f, const qp_journal_problem_t *p)
{
    fprintf (f, "offset %" PRIu64 ": %s at byte %" PRIu64 " of %s: %s\n", p->offset, p->code,
             p->position, p->segment, p->detail);
}

static json_t *s_record_json (const qp_journal_record_t *r, qp_error_t *err, bool *bad)
{
    json_t *o = json_object ();
    char iso[48];
    s_iso (iso, r->recorded_us);
    json_object_set_new (o, "offset", json_integer ((json_int_t)r->offset));
    json_object_set_new (o, "recorded", json_string (iso));
    if (r->kind == QP_JOURNAL_GAP) {
        json_object_set_new (o, "gap",
                             json_pack ("{s:I,s:I,s:b}", "first_seq", (json_int_t)r->seq, "count",
                                        (json_int_t)r->gap_count, "before_start",
                                        (r->flags & QP_JOURNAL_GAP_BEFORE_START) != 0));
        return o;
    }
    json_object_set_new (o, "seq", json_integer ((json_int_t)r->seq));
    json_object_set_new (o, "origin", json_string (qp_journal_origin_name (r->origin)));
    json_object_set_new (o, "destination",
                         json_stringn_nocheck (r->destination, r->destination_len));
    json_object_set_new (o, "type", json_stringn_nocheck (r->type, r->type_len));
    qp_message_t msg;
    if (qp_journal_record_decode (r, &msg, err) == 0) {
        /* The envelope without its payload bytes, then the payload decoded. */
        ProtobufCBinaryData payload = msg.envelope->payload;
        msg.envelope->has_payload = false;
        json_object_set_new (o, "envelope", qp_json_from_message (&msg.envelope->base));
        msg.envelope->payload = payload;
        msg.envelope->has_payload = true;
        json_object_set_new (o, "payload", qp_json_from_message (msg.payload));
        qp_message_clear (&msg);
    } else {
        *bad = true;
        json_object_set_new (o, "error",
                             json_pack ("{s:s,s:s}", "code", err->code, "message", err->message));
    }
    return o;
}

typedef struct {
    uint64_t from, until; /* offsets, until inclusive */
} range_t;

/* A record written before qp-record emptied identities, that still holds one. */
static bool s_holds_identity (const qp_journal_record_t *rec)
{
    if (rec->kind != QP_JOURNAL_MESSAGE ||
        !qp_journal_type_holds_identity (rec->type, rec->type_len))
        return false;
    qp_message_t msg;
    qp_error_t err;
    if (qp_journal_record_decode (rec, &msg, &err) < 0)
        return false;
    bool holds = qp_journal_payload_has_identity (msg.payload);
    qp_message_clear (&msg);
    return holds;
}

static int s_cat (qp_journal_reader_t *r, range_t range)
{
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc, status = 0;
    qp_error_t err;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            s_print_problem (stderr, &p);
            status = 1;
            continue;
        }
        if (rec.offset > range.until)
            break;
        bool bad = false;
        json_t *o = s_record_json (&rec, &err, &bad);
        char *line = json_dumps (o, JSON_COMPACT);
        puts (line);
        free (line);
        json_decref (o);
        if (bad) {
            fprintf (stderr, "offset %" PRIu64 ": %s: %s\n", rec.offset, err.code, err.message);
            status = 1;
        }
    }
    return status;
}

static int s_stats (qp_journal_reader_t *r, range_t range)
{
    zhash_t *types = zhash_new ();
    uint64_t records = 0, gaps = 0, missing = 0, problems = 0, bytes = 0, identities = 0;
    int64_t first_us = 0, last_us = 0;
    size_t n_sec = 0, cap = 0;
    uint64_t *per_sec = NULL;
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            s_print_problem (stderr, &p);
            problems++;
            continue;
        }
        if (rec.offset > range.until)
            break;
        if (!records)
            first_us = rec.recorded_us;
        last_us = rec.recorded_us;
        records++;
        if (rec.kind == QP_JOURNAL_GAP) {
            gaps++;
            missing += rec.gap_count;
            continue;
        }
        bytes += rec.envelope_size;
        identities += s_holds_identity (&rec);
        char type[128];
        snprintf (type, sizeof type, "%.*s", (int)rec.type_len, rec.type);
        uint64_t *c = zhash_lookup (types, type);
        if (!c) {
            c = calloc (1, sizeof *c);
            zhash_insert (types, type, c);
            zhash_freefn (types, type, free);
        }
        (*c)++;
        size_t sec =
            rec.recorded_us > first_us ? (size_t)((rec.recorded_us - first_us) / 1000000) : 0;
        if (sec < 1000000) {
            if (sec >= cap) {
                size_t ncap = cap ? cap : 64;
                while (ncap <= sec)
                    ncap *= 2;
                per_sec = realloc (per_sec, ncap * sizeof *per_sec);
                memset (per_sec + cap, 0, (ncap - cap) * sizeof *per_sec);
                cap = ncap;
            }
            per_sec[sec]++;
            if (sec + 1 > n_sec)
                n_sec = sec + 1;
        }
    }
    uint64_t seg_bytes;
    size_t segs = qp_journal_reader_segments (r, &seg_bytes);
    char a[48], b[48];
    s_iso (a, first_us);
    s_iso (b, last_us);
    double span = (double)(last_us - first_us) / 1e6;
    printf ("records    %" PRIu64 " in %zu segments (%" PRIu64 " bytes)\n", records, segs,
            seg_bytes);
    printf ("span       %s .. %s (%.3f s)\n", a, b, span);
    printf ("gaps       %" PRIu64 " (%" PRIu64 " messages missing)\n", gaps, missing);
    printf ("problems   %" PRIu64 "\n", problems);
    printf ("identities %" PRIu64 " records hold a person's identity%s\n", identities,
            identities ? " (qp-journal scrub SRC DST)" : "");
    printf ("envelopes  %" PRIu64 " bytes\n\nby type\n", bytes);
    zlist_t *keys = zhash_keys (types);
    zlist_sort (keys, NULL);
    for (char *k = zlist_first (keys); k; k = zlist_next (keys))
        printf ("  %-32s %10" PRIu64 "\n", k, *(uint64_t *)zhash_lookup (types, k));
    zlist_destroy (&keys);
    /* Rate over time: per second for a short journal, per minute beyond two minutes. */
    size_t step = n_sec > 120 ? 60 : 1;
    printf ("\nrate (records/s, per %s from the first record)\n", step == 1 ? "second" : "minute");
    for (size_t s = 0; s < n_sec; s += step) {
        uint64_t sum = 0;
        for (size_t i = s; i < s + step && i < n_sec; i++)
            sum += per_sec[i];
        printf ("  +%6zus %10.0f\n", s, (double)sum / (double)step);
    }
    free (per_sec);
    zhash_destroy (&types);
    return problems ? 1 : 0;
}

static int s_verify (qp_journal_reader_t *r, range_t range)
{
    uint64_t records = 0, problems = 0, gaps = 0, missing = 0, identities = 0;
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    qp_error_t err;
    int rc;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            s_print_problem (stdout, &p);
            problems++;
            continue;
        }
        if (rec.offset > range.until)
            break;
        records++;
        if (rec.kind == QP_JOURNAL_GAP) {
            gaps++;
            missing += rec.gap_count;
            if (!(rec.flags & QP_JOURNAL_GAP_BEFORE_START))
                printf ("offset %" PRIu64 ": gap: capture seqs %" PRIu64 "..%" PRIu64
                        " were not recorded\n",
                        rec.offset, rec.seq, rec.seq + rec.gap_count - 1);
            continue;
        }
        qp_message_t msg;
        if (qp_journal_record_decode (&rec, &msg, &err) < 0) {
            printf ("offset %" PRIu64 ": %s at byte %" PRIu64 " of %s: %s%s%s\n", rec.offset,
                    err.code, rec.position, rec.segment, err.field[0] ? err.field : "",
                    err.field[0] ? ": " : "", err.message);
            problems++;
        } else {
            if (qp_journal_payload_has_identity (msg.payload) && identities++ < 5)
                printf ("offset %" PRIu64 ": personal_data: a %.*s holds a person's identity "
                        "(qp-journal scrub)\n",
                        rec.offset, (int)rec.type_len, rec.type);
            qp_message_clear (&msg);
        }
    }
    printf ("%s: %" PRIu64 " records, %" PRIu64 " gaps (%" PRIu64 " messages missing), %" PRIu64
            " problems, %" PRIu64 " records with a person's identity\n",
            problems ? "FAILED" : "ok", records, gaps, missing, problems, identities);
    return problems ? 1 : 0;
}

/* A new journal dst with src's records, identities emptied. Damaged records are reported
 * and left out (exit 1). */
static int s_scrub (qp_journal_reader_t *r, const char *dst)
{
    char err[600];
    qp_journal_reader_t *exists = qp_journal_reader_open (dst, err, sizeof err);
    if (exists) {
        qp_journal_reader_close (&exists);
        fprintf (stderr, "qp-journal: %s is already a journal: scrub writes a new one\n", dst);
        return 2;
    }
    qp_journal_config_t config = {.dir = dst, .fsync = QP_JOURNAL_FSYNC_INTERVAL};
    qp_journal_writer_t *w = qp_journal_writer_open (&config, NULL, err, sizeof err);
    if (!w) {
        fprintf (stderr, "qp-journal: %s\n", err);
        return 2;
    }
    uint64_t records = 0, scrubbed = 0, dropped = 0, problems = 0;
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc, status = 0;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            s_print_problem (stderr, &p);
            problems++;
            continue;
        }
        int64_t off;
        if (rec.kind == QP_JOURNAL_GAP)
            off = qp_journal_append_gap (w, rec.seq, rec.gap_count, rec.flags, rec.recorded_us);
        else {
            uint8_t *body = NULL;
            size_t size = 0;
            qp_journal_scrub_t sc = qp_journal_scrub (rec.type, rec.type_len, rec.envelope,
                                                      rec.envelope_size, &body, &size);
            scrubbed += sc == QP_JOURNAL_SCRUBBED;
            dropped += sc == QP_JOURNAL_DROPPED;
            off = qp_journal_append_message (w, rec.origin, rec.seq, rec.recorded_us, rec.type,
                                             rec.type_len, rec.destination, rec.destination_len,
                                             sc == QP_JOURNAL_CLEAN ? rec.envelope : body,
                                             sc == QP_JOURNAL_CLEAN ? rec.envelope_size : size);
            free (body);
        }
        if (off < 0) {
            fprintf (stderr, "qp-journal: cannot write %s: %s\n", dst, strerror (errno));
            status = 2;
            break;
        }
        records++;
    }
    if (qp_journal_writer_flush (w) < 0 && !status) {
        fprintf (stderr, "qp-journal: cannot write %s: %s\n", dst, strerror (errno));
        status = 2;
    }
    qp_journal_writer_close (&w);
    printf ("%s: %" PRIu64 " records written, %" PRIu64
            " with a person's identity emptied, %" PRIu64
            " without their undecodable payload, %" PRIu64 " damaged records left out\n",
            dst, records, scrubbed, dropped, problems);
    return status ? status : problems ? 1 : 0;
}

int main (int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *dir = NULL, *dst = NULL;
    range_t range = {0, UINT64_MAX};
    for (int i = 2; i < argc; i++) {
        if (!strcmp (argv[i], "--from") && i + 1 < argc)
            range.from = strtoull (argv[++i], NULL, 10);
        else if (!strcmp (argv[i], "--until") && i + 1 < argc)
            range.until = strtoull (argv[++i], NULL, 10);
        else if (argv[i][0] == '-') {
            fprintf (stderr, "qp-journal: unknown option %s\n", argv[i]);
            return 2;
        } else if (!dir)
            dir = argv[i];
        else if (!dst && !strcmp (cmd, "scrub"))
            dst = argv[i];
        else {
            fprintf (stderr, "qp-journal: one journal only (%s)\n", argv[i]);
            return 2;
        }
    }
    bool scrub = !strcmp (cmd, "scrub");
    if (!dir || (scrub && !dst) ||
        (!scrub && strcmp (cmd, "cat") && strcmp (cmd, "stats") && strcmp (cmd, "verify"))) {
        s_usage (stderr);
        return 2;
    }
    char err[600];
    qp_journal_reader_t *r = qp_journal_reader_open (dir, err, sizeof err);
    if (!r) {
        fprintf (stderr, "qp-journal: %s\n", err);
        return 2;
    }
    if (range.from)
        qp_journal_reader_seek_offset (r, range.from);
    int rc = scrub                    ? s_scrub (r, dst)
             : !strcmp (cmd, "cat")   ? s_cat (r, range)
             : !strcmp (cmd, "stats") ? s_stats (r, range)
                                      : s_verify (r, range);
    qp_journal_reader_close (&r);
    return rc;
}
