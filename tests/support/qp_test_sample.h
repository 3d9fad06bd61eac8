/* The known mix of dossiers the integration tests submit: dossier i asks 20,000 € when
 * i % 10 == 0 (over the PHQ maximum: not eligible), brings less than 10 % of its need when
 * i % 10 == 1 (Bpifrance's default component declines), and is funded otherwise, with the
 * amount rounded down to the hundred euros. Built on the stack, no allocation. */
#ifndef QP_TEST_SAMPLE_H
#define QP_TEST_SAMPLE_H
#include "qp_message.h"

typedef struct {
    Qp__V1__SubmitDossier submit;
    Qp__V1__Dossier dossier;
    Qp__V1__ProjectHolder holder;
    Qp__V1__Business business;
    Qp__V1__Project project;
    char key[32], person[40], day[11];
} qp_test_sample_t;

/* The amount dossier i asks (cents). */
int64_t qp_test_sample_amount (int i);
/* Fills s with dossier i of channel, its key "<prefix>-NNNNNN"; s->submit is ready to send. */
void qp_test_sample (qp_test_sample_t *s, const char *channel, const char *prefix, int i);
#endif
