/* Fuzz: the journal reader on one segment file holding the input: every record read
 * (skipping past damage as qp-journal verify does), messages decoded as a service would,
 * then a seek by offset and by time; the recorder's scrub on every message record (what it
 * writes must decode and hold no identity). */
#include "fuzz_support.h"
#include "qp_journal.h"

/* The reader must always move forward: more calls than bytes would be a loop. */
static void s_read_all (qp_journal_reader_t *reader, size_t size)
{
    qp_journal_record_t rec;
    qp_journal_problem_t problem;
    for (size_t calls = 0;; calls++) {
        if (calls > size + 16)
            __builtin_trap ();
        int rc = qp_journal_reader_next (reader, &rec, &problem);
        if (rc == 0)
            break;
        if (rc < 0) {
            if (!problem.code[0])
                __builtin_trap ();
            continue;
        }
        if (rec.kind == QP_JOURNAL_MESSAGE) {
            qp_message_t msg = {0};
            qp_error_t err;
            if (qp_journal_record_decode (&rec, &msg, &err) == 0)
                qp_message_clear (&msg);
            /* The recorder's scrub reads the same outside bytes: what it writes must
             * decode and hold no identity. */
            uint8_t *out = NULL;
            size_t out_size = 0;
            qp_journal_scrub_t sc = qp_journal_scrub (rec.type, rec.type_len, rec.envelope,
                                                      rec.envelope_size, &out, &out_size);
            if (sc == QP_JOURNAL_SCRUBBED) {
                zframe_t *type = zframe_new (rec.type, rec.type_len);
                zframe_t *env = zframe_new (out, out_size);
                if (qp_message_decode (type, env, &msg, &err) == 0) {
                    if (qp_journal_payload_has_identity (msg.payload))
                        __builtin_trap ();
                    qp_message_clear (&msg);
                }
                zframe_destroy (&type);
                zframe_destroy (&env);
            } else if (sc == QP_JOURNAL_CLEAN) {
                /* Kept as it is (the look at the tags found no identity): a service
                 * decoding it must find none either. */
                if (out)
                    __builtin_trap ();
                if (qp_journal_record_decode (&rec, &msg, &err) == 0) {
                    if (qp_journal_payload_has_identity (msg.payload))
                        __builtin_trap ();
                    qp_message_clear (&msg);
                }
            }
            free (out);
        }
    }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char dir[128], path[200];
    snprintf (dir, sizeof dir, "%s/journal", s_fuzz_dir ());
    mkdir (dir, 0700);
    snprintf (path, sizeof path, "%s/00000000000000000000.qpj", dir);
    s_fuzz_write (path, data, size);
    char err[256];
    qp_journal_reader_t *reader = qp_journal_reader_open (dir, err, sizeof err);
    if (!reader)
        return 0;
    s_read_all (reader, size);
    if (qp_journal_reader_seek_offset (reader, 1) == 0)
        s_read_all (reader, size);
    if (qp_journal_reader_seek_time (reader, 1) == 0)
        s_read_all (reader, size);
    qp_journal_reader_close (&reader);
    return 0;
}
