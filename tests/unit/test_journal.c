/* The journal format: CRC-32C, framing, rotation, the index (seek by offset and by
 * time), gap records, damage found with its offset, a torn tail cut on reopen; the scrub
 * that keeps a person's identity out of a journal. */
#include "qp_journal.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *s_dir;

static void s_setup (void)
{
    s_dir = qp_test_tmpdir ("journal");
    ck_assert_ptr_nonnull (s_dir);
}

static void s_teardown (void)
{
    qp_test_rmtree (s_dir);
    free (s_dir);
}

/* n records with envelopes "env-<i>" padded to 200 bytes, recorded at 1000 + i ms. */
static void s_write (const char *dir, int n, uint64_t segment_bytes)
{
    qp_journal_config_t c = {.dir = dir, .segment_bytes = segment_bytes};
    char err[256];
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    ck_assert_msg (w != NULL, "%s", err);
    for (int i = 0; i < n; i++) {
        char env[200] = {0};
        snprintf (env, sizeof env, "env-%d", i);
        int64_t off =
            qp_journal_append_message (w, QP_ORIGIN_WORK, (uint64_t)i + 1, (1000 + i) * 1000LL,
                                       "qp.v1.SubmitDossier", 19, "intake", 6, env, sizeof env);
        ck_assert_int_eq (off, i);
    }
    qp_journal_writer_close (&w);
    ck_assert_ptr_null (w);
}

START_TEST (test_crc32c_known_value)
{
    /* The check value of CRC-32C (RFC 3720). */
    ck_assert_uint_eq (qp_crc32c (0, "123456789", 9), 0xE3069283u);
    /* Continuation gives the same as one pass. */
    ck_assert_uint_eq (qp_crc32c (qp_crc32c (0, "1234", 4), "56789", 5), 0xE3069283u);
    ck_assert_uint_eq (qp_crc32c (0, "", 0), 0);
}
END_TEST

START_TEST (test_round_trip_with_rotation)
{
    s_write (s_dir, 5000, 64 * 1024);
    char err[256];
    qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
    ck_assert_ptr_nonnull (r);
    ck_assert_uint_gt (qp_journal_reader_segments (r, NULL), 10);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int rc, n = 0;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) == 1) {
        ck_assert_uint_eq (rec.offset, (uint64_t)n);
        ck_assert_uint_eq (rec.seq, (uint64_t)n + 1);
        ck_assert_int_eq (rec.kind, QP_JOURNAL_MESSAGE);
        ck_assert_int_eq (rec.origin, QP_ORIGIN_WORK);
        ck_assert_int_eq (rec.recorded_us, (1000 + n) * 1000LL);
        ck_assert_uint_eq (rec.type_len, 19);
        ck_assert (!memcmp (rec.type, "qp.v1.SubmitDossier", 19));
        ck_assert (!memcmp (rec.destination, "intake", 6));
        ck_assert_uint_eq (rec.envelope_size, 200);
        char want[32];
        snprintf (want, sizeof want, "env-%d", n);
        ck_assert_str_eq ((const char *)rec.envelope, want);
        n++;
    }
    ck_assert_int_eq (rc, 0);
    ck_assert_int_eq (n, 5000);
    qp_journal_reader_close (&r);

    /* Reopening appends after the last record, in a new segment. */
    qp_journal_config_t c = {.dir = s_dir};
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    ck_assert_uint_eq (qp_journal_writer_next_offset (w), 5000);
    ck_assert_int_eq (qp_journal_append_gap (w, 5001, 7, 0, 9000000), 5000);
    qp_journal_writer_close (&w);
    r = qp_journal_reader_open (s_dir, err, sizeof err);
    ck_assert_int_eq (qp_journal_reader_seek_offset (r, 5000), 0);
    ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 1);
    ck_assert_int_eq (rec.kind, QP_JOURNAL_GAP);
    ck_assert_uint_eq (rec.seq, 5001);
    ck_assert_uint_eq (rec.gap_count, 7);
    ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 0);
    qp_journal_reader_close (&r);
}
END_TEST

START_TEST (test_seek_by_offset_and_time)
{
    s_write (s_dir, 20000, 1 << 20);
    char err[256];
    qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    uint64_t offsets[] = {0, 1, 1023, 1024, 4097, 12345, 19999};
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++) {
        ck_assert_int_eq (qp_journal_reader_seek_offset (r, offsets[i]), 0);
        ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 1);
        ck_assert_uint_eq (rec.offset, offsets[i]);
    }
    /* Recorded at (1000 + i) ms: the first record at or after 15000.5 ms is 14001. */
    ck_assert_int_eq (qp_journal_reader_seek_time (r, 15000500), 0);
    ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 1);
    ck_assert_uint_eq (rec.offset, 14001);
    ck_assert_int_eq (qp_journal_reader_seek_time (r, 0), 0);
    ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 1);
    ck_assert_uint_eq (rec.offset, 0);
    /* Past the end: nothing. */
    ck_assert_int_eq (qp_journal_reader_seek_offset (r, 20000), 0);
    ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 0);
    qp_journal_reader_close (&r);
}
END_TEST

static char *s_segment (const char *dir)
{
    char *path;
    ck_assert_int_gt (asprintf (&path, "%s/%020d.qpj", dir, 0), 0);
    return path;
}

START_TEST (test_flipped_byte_found_and_skipped)
{
    s_write (s_dir, 10, 0);
    char *seg = s_segment (s_dir);
    /* Record 4 starts at 32 + 4 * (8 + 40 + 19 + 6 + 200); flip a byte of its envelope. */
    long rec_size = 8 + 40 + 19 + 6 + 200, pos = 32 + 4 * rec_size + 100;
    int fd = open (seg, O_RDWR);
    unsigned char b;
    ck_assert_int_eq (pread (fd, &b, 1, pos), 1);
    b ^= 0x10;
    ck_assert_int_eq (pwrite (fd, &b, 1, pos), 1);
    close (fd);
    char err[256];
    qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int good = 0, bad = 0, rc;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            bad++;
            ck_assert_str_eq (p.code, "crc_mismatch");
            ck_assert_uint_eq (p.offset, 4);
            ck_assert_uint_eq (p.position, 32 + 4 * rec_size);
        } else {
            ck_assert_uint_ne (rec.offset, 4);
            good++;
        }
    }
    ck_assert_int_eq (bad, 1);
    ck_assert_int_eq (good, 9);
    qp_journal_reader_close (&r);
    free (seg);
}
END_TEST

START_TEST (test_truncated_tail_reported_then_cut_on_reopen)
{
    s_write (s_dir, 10, 0);
    char *seg = s_segment (s_dir);
    struct stat st;
    ck_assert_int_eq (stat (seg, &st), 0);
    ck_assert_int_eq (truncate (seg, st.st_size - 50), 0);
    char err[256];
    qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int good = 0, rc;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) == 1)
        good++;
    ck_assert_int_eq (rc, -1);
    ck_assert_str_eq (p.code, "truncated");
    ck_assert_uint_eq (p.offset, 9);
    ck_assert_int_eq (good, 9);
    ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 0);
    qp_journal_reader_close (&r);

    /* A writer reopening cuts the torn record and continues at offset 9. */
    qp_journal_config_t c = {.dir = s_dir};
    uint64_t torn = 0;
    qp_journal_writer_t *w = qp_journal_writer_open (&c, &torn, err, sizeof err);
    ck_assert_ptr_nonnull (w);
    ck_assert_uint_eq (torn, 8 + 40 + 19 + 6 + 200 - 50);
    ck_assert_uint_eq (qp_journal_writer_next_offset (w), 9);
    qp_journal_writer_close (&w);
    r = qp_journal_reader_open (s_dir, err, sizeof err);
    good = 0;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) == 1)
        good++;
    ck_assert_int_eq (rc, 0);
    ck_assert_int_eq (good, 9);
    qp_journal_reader_close (&r);
    free (seg);
}
END_TEST

/* A journal cut anywhere inside its last record: the whole records are read, then one
 * "truncated" problem naming the offset the record would have had and its byte position,
 * then the end. */
START_TEST (test_truncated_anywhere_in_the_last_record)
{
    const off_t record = 8 + 40 + 19 + 6 + 200, last = QP_JOURNAL_SEGMENT_HEADER + 9 * record;
    const off_t keep[] = {1, 3, 8, 8 + 10, 8 + 40 + 19, record - 1};
    for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
        qp_test_rmtree (s_dir);
        s_write (s_dir, 10, 0);
        char *seg = s_segment (s_dir);
        ck_assert_int_eq (truncate (seg, last + keep[k]), 0);
        char err[256];
        qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
        ck_assert_ptr_nonnull (r);
        qp_journal_record_t rec;
        qp_journal_problem_t p;
        int good = 0, rc;
        while ((rc = qp_journal_reader_next (r, &rec, &p)) == 1)
            ck_assert_uint_eq (rec.offset, (uint64_t)good++);
        ck_assert_msg (rc == -1, "cut at %lld: no problem reported", (long long)keep[k]);
        ck_assert_int_eq (good, 9);
        ck_assert_str_eq (p.code, "truncated");
        ck_assert_uint_eq (p.offset, 9);
        ck_assert_uint_eq (p.position, (uint64_t)last);
        ck_assert_str_eq (p.segment, seg);
        char want[64];
        snprintf (want, sizeof want, "the last %lld bytes", (long long)keep[k]);
        ck_assert_msg (strstr (p.detail, want), "cut at %lld: '%s'", (long long)keep[k], p.detail);
        ck_assert_int_eq (qp_journal_reader_next (r, &rec, &p), 0);
        qp_journal_reader_close (&r);
        free (seg);
    }
}
END_TEST

/* A segment cut in the middle of the journal (a later segment follows): its problem is
 * reported with the offset, and reading goes on with the next segment, without a second
 * problem for the records the cut took. */
START_TEST (test_truncated_segment_then_the_next)
{
    s_write (s_dir, 1000, 64 * 1024);
    char *seg = s_segment (s_dir);
    char err[256];
    qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    uint64_t last_offset = 0, last_position = 0;
    while (qp_journal_reader_next (r, &rec, &p) == 1 && !strcmp (rec.segment, seg)) {
        last_offset = rec.offset;
        last_position = rec.position;
    }
    qp_journal_reader_close (&r);
    ck_assert_uint_gt (last_offset, 10);
    ck_assert_int_eq (truncate (seg, (off_t)last_position + 30), 0);

    r = qp_journal_reader_open (s_dir, err, sizeof err);
    int good = 0, problems = 0, rc;
    while ((rc = qp_journal_reader_next (r, &rec, &p)) != 0) {
        if (rc < 0) {
            problems++;
            ck_assert_str_eq (p.code, "truncated");
            ck_assert_uint_eq (p.offset, last_offset);
            ck_assert_uint_eq (p.position, last_position);
            continue;
        }
        good++;
    }
    ck_assert_int_eq (problems, 1);
    ck_assert_int_eq (good, 999);
    qp_journal_reader_close (&r);
    free (seg);
}
END_TEST

START_TEST (test_not_a_journal)
{
    char err[256];
    ck_assert_ptr_null (qp_journal_reader_open (s_dir, err, sizeof err));
    ck_assert (strstr (err, "no journal segment"));
    ck_assert_int_eq (qp_journal_fsync_parse ("always"), QP_JOURNAL_FSYNC_ALWAYS);
    ck_assert_int_eq (qp_journal_fsync_parse ("sometimes"), -1);
}
END_TEST

START_TEST (test_fsync_always_survives_reopen)
{
    qp_journal_config_t c = {.dir = s_dir, .fsync = QP_JOURNAL_FSYNC_ALWAYS};
    char err[256];
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq (qp_journal_append_message (w, QP_ORIGIN_EVENT, (uint64_t)i + 1, i, "t", 1,
                                                     NULL, 0, "e", 1),
                          i);
    /* Without close: every record is already in the file. */
    qp_journal_reader_t *r = qp_journal_reader_open (s_dir, err, sizeof err);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    int n = 0;
    while (qp_journal_reader_next (r, &rec, &p) == 1)
        n++;
    ck_assert_int_eq (n, 20);
    qp_journal_reader_close (&r);
    qp_journal_writer_close (&w);
}
END_TEST

/* A SubmitDossier envelope with an identity: names, birth date, email, and a phone and a
 * national id in fields this version does not know (a newer front end). */
static zmsg_t *s_submission_with_identity (char id_out[QP_ID_HEX + 1])
{
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__PersonIdentity id = QP__V1__PERSON_IDENTITY__INIT;
    d.channel = "test-journal";
    d.channel_key = "scrub-1";
    h.residence_qpv = "QN05981M";
    d.holder = &h;
    id.family_name = "Zyxquor";
    id.given_names = "Wubblefitz";
    id.birth_date = "1931-07-29";
    id.email = "zyxquor@privacy-test.example";
    /* An unknown field's data is what follows its tag: the length, then the bytes. */
    static uint8_t phone[] = "\x11+33 6 98 76 54 32", nir[] = "\x0d"
                                                              "2310775123456";
    ProtobufCMessageUnknownField unknown[2] = {
        {.tag = 5, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = 18, .data = phone},
        {.tag = 6, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = 14, .data = nir}};
    id.base.n_unknown_fields = 2;
    id.base.unknown_fields = unknown;
    s.dossier = &d;
    s.identity = &id;
    qp_meta_t meta = {.correlation_id = "c0ffee",
                      .event_time_ms = 1717372800000,
                      .discriminator = "test-journal\nscrub-1"};
    return qp_message_build (&s.base, &meta, id_out);
}

static bool s_contains (const uint8_t *data, size_t size, const char *text)
{
    return data && memmem (data, size, text, strlen (text)) != NULL;
}

START_TEST (test_scrub_empties_identity)
{
    ck_assert (qp_journal_type_holds_identity ("qp.v1.SubmitDossier", 19));
    ck_assert (!qp_journal_type_holds_identity ("qp.v1.DossierReceived", 21));
    ck_assert (!qp_journal_type_holds_identity ("qp.v1.Nope", 10));

    char message_id[QP_ID_HEX + 1];
    zmsg_t *m = s_submission_with_identity (message_id);
    zframe_t *type = zmsg_first (m), *env = zmsg_next (m);
    const char *markers[] = {"Zyxquor",     "Wubblefitz",    "1931-07-29", "privacy-test.example",
                             "98 76 54 32", "2310775123456", NULL};
    for (int i = 0; markers[i]; i++)
        ck_assert (s_contains (zframe_data (env), zframe_size (env), markers[i]));
    uint8_t *out;
    size_t size;
    ck_assert_int_eq (qp_journal_scrub ((const char *)zframe_data (type), zframe_size (type),
                                        zframe_data (env), zframe_size (env), &out, &size),
                      QP_JOURNAL_SCRUBBED);
    for (int i = 0; markers[i]; i++)
        ck_assert_msg (!s_contains (out, size, markers[i]), "%s still there", markers[i]);
    /* The same message otherwise: ids, time, the dossier; an identity present and empty. */
    qp_message_t msg;
    qp_error_t err;
    zframe_t *scrubbed = zframe_new (out, size);
    ck_assert_int_eq (qp_message_decode (type, scrubbed, &msg, &err), 0);
    ck_assert_str_eq (msg.envelope->message_id, message_id);
    ck_assert_str_eq (msg.envelope->correlation_id, "c0ffee");
    ck_assert_int_eq (msg.envelope->event_time_ms, 1717372800000);
    Qp__V1__SubmitDossier *s = (Qp__V1__SubmitDossier *)msg.payload;
    ck_assert_ptr_nonnull (s->identity);
    ck_assert_uint_eq (protobuf_c_message_get_packed_size (&s->identity->base), 0);
    ck_assert_str_eq (s->dossier->channel_key, "scrub-1");
    ck_assert_str_eq (s->dossier->holder->residence_qpv, "QN05981M");
    ck_assert (!qp_journal_payload_has_identity (msg.payload));
    qp_message_clear (&msg);
    zframe_destroy (&scrubbed);
    /* Scrubbing again changes nothing. */
    uint8_t *again;
    size_t again_size;
    ck_assert_int_eq (qp_journal_scrub ("qp.v1.SubmitDossier", 19, out, size, &again, &again_size),
                      QP_JOURNAL_CLEAN);
    ck_assert_ptr_null (again);
    free (out);
    /* Another type is left as it is, even with the same bytes. */
    ck_assert_int_eq (
        qp_journal_scrub ("qp.v1.FollowUp", 14, zframe_data (env), zframe_size (env), &out, &size),
        QP_JOURNAL_CLEAN);
    zmsg_destroy (&m);
}
END_TEST

/* The look at the tags that spares a decode agrees with the decoder: a submission without
 * an identity, or with an empty one, is clean as it is; and whatever prefix of a
 * submission with an identity is given, what is kept as it is never decodes to one. */
START_TEST (test_scrub_wire_look_agrees_with_decoder)
{
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__PersonIdentity empty = QP__V1__PERSON_IDENTITY__INIT;
    d.channel = "test-journal";
    d.channel_key = "no-identity";
    h.person_key = "0123456789abcdef0123456789abcdef";
    d.holder = &h;
    s.dossier = &d;
    qp_meta_t meta = {.discriminator = "x", .event_time_ms = 1};
    for (int with_empty = 0; with_empty < 2; with_empty++) {
        s.identity = with_empty ? &empty : NULL;
        zmsg_t *m = qp_message_build (&s.base, &meta, NULL);
        zframe_t *env = zmsg_last (m);
        uint8_t *out;
        size_t size;
        ck_assert_int_eq (qp_journal_scrub ("qp.v1.SubmitDossier", 19, zframe_data (env),
                                            zframe_size (env), &out, &size),
                          QP_JOURNAL_CLEAN);
        ck_assert_ptr_null (out);
        zmsg_destroy (&m);
    }
    zmsg_t *m = s_submission_with_identity (NULL);
    zframe_t *type = zmsg_first (m), *env = zmsg_next (m);
    for (size_t cut = 0; cut <= zframe_size (env); cut++) {
        uint8_t *out;
        size_t size;
        qp_journal_scrub_t sc =
            qp_journal_scrub ("qp.v1.SubmitDossier", 19, zframe_data (env), cut, &out, &size);
        zframe_t *kept =
            sc == QP_JOURNAL_CLEAN ? zframe_new (zframe_data (env), cut) : zframe_new (out, size);
        qp_message_t msg;
        qp_error_t err;
        if (qp_message_decode (type, kept, &msg, &err) == 0) {
            ck_assert_msg (!qp_journal_payload_has_identity (msg.payload),
                           "cut at %zu: scrub %d kept an identity", cut, sc);
            qp_message_clear (&msg);
        }
        zframe_destroy (&kept);
        free (out);
    }
    zmsg_destroy (&m);
}
END_TEST

START_TEST (test_scrub_drops_what_does_not_decode)
{
    zmsg_t *m = s_submission_with_identity (NULL);
    zframe_t *env = zmsg_last (m);
    uint8_t *out;
    size_t size;
    /* Not an envelope at all: nothing of it is kept. */
    const char *garbage = "\xff\xff\xff Zyxquor";
    ck_assert_int_eq (qp_journal_scrub ("qp.v1.SubmitDossier", 19, (const uint8_t *)garbage,
                                        strlen (garbage), &out, &size),
                      QP_JOURNAL_DROPPED);
    ck_assert_ptr_null (out);
    ck_assert_uint_eq (size, 0);
    /* An envelope whose payload is not a SubmitDossier: the envelope without it. */
    Qp__V1__Envelope e = QP__V1__ENVELOPE__INIT;
    e.message_id = "abc";
    e.type = "qp.v1.SubmitDossier";
    e.has_payload = true;
    e.payload.data = (uint8_t *)"\x0a\x7f Zyxquor truncated";
    e.payload.len = 20;
    size_t n = qp__v1__envelope__get_packed_size (&e);
    uint8_t *buf = malloc (n);
    qp__v1__envelope__pack (&e, buf);
    ck_assert_int_eq (qp_journal_scrub ("qp.v1.SubmitDossier", 19, buf, n, &out, &size),
                      QP_JOURNAL_DROPPED);
    ck_assert (!s_contains (out, size, "Zyxquor"));
    Qp__V1__Envelope *back = qp__v1__envelope__unpack (NULL, size, out);
    ck_assert_ptr_nonnull (back);
    ck_assert_str_eq (back->message_id, "abc");
    ck_assert (!back->has_payload);
    qp__v1__envelope__free_unpacked (back, NULL);
    free (out);
    free (buf);
    (void)env;
    zmsg_destroy (&m);
}
END_TEST

/* A field this version does not know, anywhere in a submission, may hold personal data (a
 * newer front end's phone field): it is dropped even when no identity was given. */
START_TEST (test_scrub_drops_unknown_fields)
{
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    d.channel = "test-journal";
    d.channel_key = "unknown-1";
    b.siret = "73282932000074";
    d.business = &b;
    s.dossier = &d;
    static uint8_t phone[] = "\x11+33 6 11 22 33 44";
    ProtobufCMessageUnknownField unknown = {
        .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED, .len = 18, .data = phone};
    b.base.n_unknown_fields = 1;
    b.base.unknown_fields = &unknown;
    qp_meta_t meta = {.correlation_id = "c0ffee", .discriminator = "test-journal\nunknown-1"};
    zmsg_t *m = qp_message_build (&s.base, &meta, NULL);
    zframe_t *env = zmsg_last (m);
    ck_assert (s_contains (zframe_data (env), zframe_size (env), "11 22 33 44"));
    uint8_t *out;
    size_t size;
    ck_assert_int_eq (qp_journal_scrub ("qp.v1.SubmitDossier", 19, zframe_data (env),
                                        zframe_size (env), &out, &size),
                      QP_JOURNAL_SCRUBBED);
    ck_assert (!s_contains (out, size, "11 22 33 44"));
    /* The known fields are kept. */
    ck_assert (s_contains (out, size, "73282932000074"));
    ck_assert (s_contains (out, size, "unknown-1"));
    uint8_t *again;
    size_t again_size;
    ck_assert_int_eq (qp_journal_scrub ("qp.v1.SubmitDossier", 19, out, size, &again, &again_size),
                      QP_JOURNAL_CLEAN);
    free (out);
    zmsg_destroy (&m);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("journal");
    TCase *tc = tcase_create ("journal");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_set_timeout (tc, 60);
    tcase_add_test (tc, test_crc32c_known_value);
    tcase_add_test (tc, test_round_trip_with_rotation);
    tcase_add_test (tc, test_seek_by_offset_and_time);
    tcase_add_test (tc, test_flipped_byte_found_and_skipped);
    tcase_add_test (tc, test_truncated_tail_reported_then_cut_on_reopen);
    tcase_add_test (tc, test_truncated_anywhere_in_the_last_record);
    tcase_add_test (tc, test_truncated_segment_then_the_next);
    tcase_add_test (tc, test_not_a_journal);
    tcase_add_test (tc, test_fsync_always_survives_reopen);
    tcase_add_test (tc, test_scrub_empties_identity);
    tcase_add_test (tc, test_scrub_wire_look_agrees_with_decoder);
    tcase_add_test (tc, test_scrub_drops_what_does_not_decode);
    tcase_add_test (tc, test_scrub_drops_unknown_fields);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
