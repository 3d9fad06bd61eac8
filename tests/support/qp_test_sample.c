#include "qp_test_sample.h"
#include "qp_date.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t qp_test_sample_amount (int i)
{
    return i % 10 == 0 ? 2000000 : 100000 + (int64_t)(i * 7919 % 1400000);
}

void qp_test_sample (qp_test_sample_t *s, const char *channel, const char *prefix, int i)
{
    static const char *const communes[] = {"59512", "93048", "31555", "53130"};
    static const char *const qpv[] = {"QN05981M", "QN09301M", "QN03101M", "QN05301M"};
    qp__v1__submit_dossier__init (&s->submit);
    qp__v1__dossier__init (&s->dossier);
    qp__v1__project_holder__init (&s->holder);
    qp__v1__business__init (&s->business);
    qp__v1__project__init (&s->project);
    snprintf (s->key, sizeof s->key, "%.20s-%06d", prefix, i);
    snprintf (s->person, sizeof s->person, "p%031d", i);
    qp_date_format (qp_date_from_civil (2024, 1, 1) + i % 1000, s->day);
    s->dossier.channel = (char *)channel;
    s->dossier.channel_key = s->key;
    s->dossier.submitted_on = s->day;
    s->holder.person_key = s->person;
    s->holder.residence_qpv = (char *)qpv[i % 4];
    s->holder.has_accompanied = true, s->holder.accompanied = true;
    s->holder.has_network = true, s->holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    s->business.insee_commune = (char *)communes[i % 4];
    s->business.naf_code = "47.11B";
    s->business.legal_form = "5499";
    int64_t amount = qp_test_sample_amount (i);
    Qp__V1__Project *p = &s->project;
    p->has_axis = true, p->axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p->has_stage = true, p->stage = QP__V1__STAGE__CREATION;
    p->has_amount_asked_cents = true, p->amount_asked_cents = amount;
    p->has_financing_need_cents = true, p->financing_need_cents = amount * 4;
    p->has_personal_contribution_cents = true;
    p->personal_contribution_cents = i % 10 == 1 ? amount * 4 / 20 : amount;
    p->has_bank_loan_cents = true, p->bank_loan_cents = amount * 2;
    p->has_bank_loan_months = true, p->bank_loan_months = 60;
    p->has_bank_loan_guarantee_pct = true, p->bank_loan_guarantee_pct = 40;
    p->has_honour_loan_months = true, p->honour_loan_months = 48;
    p->has_deferral_months = true, p->deferral_months = 6;
    p->has_jobs_planned = true, p->jobs_planned = 1 + i % 3;
    s->dossier.holder = &s->holder;
    s->dossier.business = &s->business;
    s->dossier.project = &s->project;
    s->submit.dossier = &s->dossier;
}

qp_meta_t qp_test_sample_meta (qp_test_sample_t *s)
{
    snprintf (s->discriminator, sizeof s->discriminator, "%s\n%s", s->dossier.channel,
              s->key);
    int32_t day = 0;
    qp_date_parse (s->day, &day);
    return (qp_meta_t){.discriminator = s->discriminator, .event_time_ms = qp_date_to_ms (day)};
}

size_t qp_test_sample_send (qp_test_client_t *client, const char *channel, const char *prefix,
                            const int *which, int from, size_t n, int timeout_ms,
                            qp_message_t *replies)
{
    assert (n <= QP_TEST_SAMPLE_BATCH);
    /* Samples and metadata only need to live until the batch is sent: off the stack,
     * which they would crowd at 256. */
    qp_test_sample_t *samples = calloc (n ? n : 1, sizeof *samples);
    const ProtobufCMessage *payloads[QP_TEST_SAMPLE_BATCH];
    qp_meta_t metas[QP_TEST_SAMPLE_BATCH];
    assert (samples);
    for (size_t j = 0; j < n; j++) {
        qp_test_sample (&samples[j], channel, prefix, which ? which[j] : from + (int)j);
        payloads[j] = &samples[j].submit.base;
        metas[j] = qp_test_sample_meta (&samples[j]);
    }
    memset (replies, 0, n * sizeof *replies);
    size_t got = qp_test_client_call_many (client, "intake", payloads, metas, n, timeout_ms,
                                           replies);
    free (samples);
    return got;
}

/* false, with why, when reply r is not an acceptance. */
static bool s_accepted (const qp_message_t *r, char *why, size_t why_size)
{
    if (!r->descriptor) {
        snprintf (why, why_size, "no reply");
        return false;
    }
    if (r->descriptor != &qp__v1__submit_dossier_reply__descriptor) {
        snprintf (why, why_size, "answered %s", r->descriptor->name);
        return false;
    }
    const Qp__V1__SubmitDossierReply *a = (const Qp__V1__SubmitDossierReply *)r->payload;
    if (!a->accepted) {
        if (a->n_errors)
            snprintf (why, why_size, "refused: %s: %s",
                      a->errors[0]->field ? a->errors[0]->field : "",
                      a->errors[0]->message ? a->errors[0]->message : "");
        else
            snprintf (why, why_size, "refused");
        return false;
    }
    const char *correlation = r->envelope->correlation_id;
    if (correlation && (!a->dossier_id || strcmp (a->dossier_id, correlation) != 0)) {
        snprintf (why, why_size, "dossier id %s, correlation id %s",
                  a->dossier_id ? a->dossier_id : "(none)", correlation);
        return false;
    }
    return true;
}

int qp_test_sample_submit_all (const char *endpoint, const char *channel, const char *prefix,
                               int from, int to, int batch, int timeout_ms,
                               char (*ids)[QP_ID_HEX + 1], char *why, size_t why_size)
{
    assert (batch > 0 && batch <= QP_TEST_SAMPLE_BATCH);
    qp_test_client_t *client = qp_test_client_new (endpoint);
    if (!client) {
        snprintf (why, why_size, "no client for %s", endpoint);
        return from;
    }
    qp_message_t replies[QP_TEST_SAMPLE_BATCH];
    int bad = -1;
    for (int base = from; base < to && bad < 0; base += batch) {
        size_t n = (size_t)(to - base < batch ? to - base : batch);
        qp_test_sample_send (client, channel, prefix, NULL, base, n, timeout_ms, replies);
        for (size_t j = 0; j < n; j++) {
            if (bad < 0 && !s_accepted (&replies[j], why, why_size))
                bad = base + (int)j;
            else if (bad < 0 && ids)
                snprintf (ids[base + (int)j - from], QP_ID_HEX + 1, "%s",
                          ((Qp__V1__SubmitDossierReply *)replies[j].payload)->dossier_id);
            qp_message_clear (&replies[j]);
        }
    }
    qp_test_client_destroy (&client);
    return bad;
}
