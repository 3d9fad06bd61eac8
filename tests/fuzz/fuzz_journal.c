/* Fuzz: the journal reader on one segment file holding the input: every record read
 * (skipping past damage as qp-journal verify does), messages decoded as a service would,
 * then a seek by offset and by time. */
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
