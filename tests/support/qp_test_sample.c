#include "qp_test_sample.h"
#include "qp_date.h"
#include <stdio.h>

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
