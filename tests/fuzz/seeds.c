/* Writes the binary seed corpora from sample dossiers (qp-sample JSON lines on stdin):
 * corpus/submission (SubmitDossier bytes), corpus/envelope ([type] NUL [Envelope]),
 * corpus/json (the JSON of a submission), corpus/journal (one small journal segment).
 * Run once by hand when the messages change: see tests/fuzz/README.md. */
#include "qp_journal.h"
#include "qp_json.h"
#include "qp_message.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_write (const char *dir, const char *name, int i, const void *a, size_t alen,
                     const void *b, size_t blen)
{
    char path[512];
    snprintf (path, sizeof path, "%s/%s/seed-%02d", dir, name, i);
    FILE *f = fopen (path, "wb");
    if (!f || fwrite (a, 1, alen, f) != alen || (blen && fwrite (b, 1, blen, f) != blen)) {
        perror (path);
        exit (1);
    }
    fclose (f);
}

int main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: seeds CORPUS_DIR JOURNAL_DIR < dossiers.jsonl\n");
        return 2;
    }
    const char *corpus = argv[1];
    qp_journal_config_t config = {.dir = argv[2], .segment_bytes = 0, .fsync = QP_JOURNAL_FSYNC_NEVER};
    char jerr[256];
    qp_journal_writer_t *journal = qp_journal_writer_open (&config, NULL, jerr, sizeof jerr);
    if (!journal) {
        fprintf (stderr, "%s\n", jerr);
        return 1;
    }
    char line[8192];
    for (int i = 0; fgets (line, sizeof line, stdin); i++) {
        qp_error_t err;
        char wrapped[8400];
        /* The sample is a Dossier; odd ones also carry an identity instead of a key. */
        snprintf (wrapped, sizeof wrapped, "{\"dossier\":%s%s}", line,
                  i % 2 ? ",\"identity\":{\"family_name\":\"Dupont\",\"given_names\":\"Marie\","
                          "\"birth_date\":\"1990-02-03\"}"
                        : "");
        ProtobufCMessage *msg =
            qp_json_parse_message (&qp__v1__submit_dossier__descriptor, wrapped, &err);
        if (!msg) {
            fprintf (stderr, "line %d: %s %s\n", i + 1, err.field, err.message);
            return 1;
        }
        s_write (corpus, "json", i, wrapped, strlen (wrapped), NULL, 0);
        size_t size = protobuf_c_message_get_packed_size (msg);
        uint8_t *packed = malloc (size);
        protobuf_c_message_pack (msg, packed);
        s_write (corpus, "submission", i, packed, size, NULL, 0);
        qp_meta_t meta = {.event_time_ms = 1700000000000LL + i, .discriminator = "seed"};
        zmsg_t *frames = qp_message_build (msg, &meta, NULL);
        zframe_t *type = zmsg_first (frames), *envelope = zmsg_next (frames);
        char *type_nul = malloc (zframe_size (type) + 1);
        memcpy (type_nul, zframe_data (type), zframe_size (type));
        type_nul[zframe_size (type)] = 0;
        s_write (corpus, "envelope", i, type_nul, zframe_size (type) + 1, zframe_data (envelope),
                 zframe_size (envelope));
        qp_journal_append_message (journal, QP_ORIGIN_WORK, (uint64_t) i + 1, 1000 + i,
                                   (char *) zframe_data (type), zframe_size (type), "intake", 6,
                                   zframe_data (envelope), zframe_size (envelope));
        if (i == 1)
            qp_journal_append_gap (journal, 100, 3, 0, 1001);
        free (type_nul);
        zmsg_destroy (&frames);
        free (packed);
        protobuf_c_message_free_unpacked (msg, NULL);
    }
    qp_journal_writer_close (&journal);
    return 0;
}
