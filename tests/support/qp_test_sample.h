/* The known mix of dossiers the integration tests submit: dossier i asks 20,000 € when
 * i % 10 == 0 (over the PHQ maximum: not eligible), brings less than 10 % of its need when
 * i % 10 == 1 (Bpifrance's default component declines), and is funded otherwise, with the
 * amount rounded down to the hundred euros. Built on the stack, no allocation. */
#ifndef QP_TEST_SAMPLE_H
#define QP_TEST_SAMPLE_H
#include "qp_message.h"
#include "qp_test.h"

typedef struct {
    Qp__V1__SubmitDossier submit;
    Qp__V1__Dossier dossier;
    Qp__V1__ProjectHolder holder;
    Qp__V1__Business business;
    Qp__V1__Project project;
    char key[32], person[40], day[11];
    char discriminator[64]; /* "<channel>\n<key>", set by qp_test_sample_meta */
} qp_test_sample_t;

/* The most dossiers qp_test_sample_send sends at once. */
#define QP_TEST_SAMPLE_BATCH 256

/* The amount dossier i asks (cents). */
int64_t qp_test_sample_amount (int i);
/* Fills s with dossier i of channel, its key "<prefix>-NNNNNN"; s->submit is ready to send. */
void qp_test_sample (qp_test_sample_t *s, const char *channel, const char *prefix, int i);
/* The request metadata a channel gives s: discriminator "<channel>\n<key>" (kept in
 * s->discriminator, so s must outlive the metadata), event time the start of s->day. */
qp_meta_t qp_test_sample_meta (qp_test_sample_t *s);
/* Sends n dossiers of channel (keys "<prefix>-NNNNNN") to intake at once through
 * client, each with its qp_test_sample_meta, and collects the replies as
 * qp_test_client_call_many does: replies[j] answers dossier which[j], or from + j when
 * which is NULL. n <= QP_TEST_SAMPLE_BATCH. Returns the number of replies. */
size_t qp_test_sample_send (qp_test_client_t *client, const char *channel, const char *prefix,
                            const int *which, int from, size_t n, int timeout_ms,
                            qp_message_t *replies);
/* Submits dossiers [from, to) in batches of batch on one client and expects intake to accept each,
 * its reply's correlation id (when set) being the dossier id. ids (may be NULL) get the
 * dossier ids, ids[0] for dossier from. Returns -1 when all were accepted, else the
 * first dossier that was not, with why: "no reply", the reply's type, its first error
 * ("field: message") or the mismatched ids. */
int qp_test_sample_submit_all (const char *endpoint, const char *channel, const char *prefix,
                               int from, int to, int batch, int timeout_ms,
                               char (*ids)[QP_ID_HEX + 1], char *why, size_t why_size);
#endif
