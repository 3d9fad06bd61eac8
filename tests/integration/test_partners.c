/* The four default partner components, each a real process on the partner endpoint,
 * answer funding requests by their documented rules. The test plays the funding service:
 * it registers as the "funding" worker and receives the components' hello, status and
 * decisions. The same request twice gets the same answer, byte for byte. */
#include "qp_bus.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <string.h>

static qp_test_stack_t *s_stack;
static qp_bus_client_t *s_funding;  /* plays funding */
static qp_bus_client_t *s_sender;   /* sends the requests */

static void s_setup (void)
{
    static const char *const programs[] = {"partner-anct", "partner-anru", "partner-bdt",
                                           "partner-bpifrance", NULL};
    static const char *const ready[] = {"partner.ANCT.anct-default", "partner.ANRU.anru-default",
                                        "partner.BANQUE_DES_TERRITOIRES.bdt-default", "partner.BPIFRANCE.bpifrance-default",
                                        NULL};
    static const char *const env[] = {"QP_STATUS_INTERVAL_MS=200", NULL};
    qp_test_stack_opts_t opts = {.programs = programs, .wait_for = ready, .env = env};
    s_stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (s_stack);
    s_funding = qp_bus_client_new (s_stack->work);
    s_sender = qp_bus_client_new (s_stack->work);
    ck_assert_int_eq (qp_bus_client_ready (s_funding, "funding"), 0);
}

static void s_teardown (void)
{
    qp_bus_client_destroy (&s_funding);
    qp_bus_client_destroy (&s_sender);
    ck_assert_int_eq (qp_test_stack_stop (&s_stack), 0);
}

/* Next message of type desc delivered to the fake funding (others are skipped), raw
 * envelope bytes copied into raw when not NULL. */
static int s_next (const ProtobufCMessageDescriptor *desc, qp_message_t *out, zchunk_t **raw)
{
    zpoller_t *poller = zpoller_new (qp_bus_client_socket (s_funding), NULL);
    int rc = -1;
    for (int i = 0; i < 200 && rc; i++) {
        if (!zpoller_wait (poller, 5000))
            break;
        qp_bus_frame_t f;
        if (qp_bus_client_recv (s_funding, &f) != 0)
            continue;
        qp_error_t err;
        if (!strcmp (f.kind, QPB_DELIVER) && qp_message_decode (f.type, f.envelope, out, &err) == 0) {
            if (out->descriptor == desc) {
                rc = 0;
                if (raw)
                    *raw = zchunk_new (zframe_data (f.envelope), zframe_size (f.envelope));
            } else
                qp_message_clear (out);
        }
        qp_bus_frame_clear (&f);
    }
    zpoller_destroy (&poller);
    return rc;
}

typedef struct {
    Qp__V1__FundingRequest rq;
    Qp__V1__DossierSummary summary;
    Qp__V1__LoanTerms terms;
    char id[40];
} request_t;

static void s_request (request_t *r, const char *n, const char *scheme, Qp__V1__Agency agency)
{
    qp__v1__funding_request__init (&r->rq);
    qp__v1__dossier_summary__init (&r->summary);
    qp__v1__loan_terms__init (&r->terms);
    snprintf (r->id, sizeof r->id, "req-%s", n);
    r->rq.request_id = r->id;
    r->rq.dossier_id = "dtest";
    r->rq.scheme_id = (char *) scheme;
    r->rq.has_agency = true, r->rq.agency = agency;
    r->rq.has_amount_asked_cents = true, r->rq.amount_asked_cents = 1234567;
    r->terms.has_duration_months = true, r->terms.duration_months = 48;
    r->rq.terms = &r->terms;
    r->summary.territory = "roubaix";
    r->summary.qpv_code = "QN05981M";
    r->summary.has_axis = true, r->summary.axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    r->summary.has_financing_need_cents = true, r->summary.financing_need_cents = 5000000;
    r->summary.has_personal_contribution_cents = true;
    r->summary.personal_contribution_cents = 500000;
    r->rq.summary = &r->summary;
}

static void s_send (const char *service, request_t *r)
{
    qp_meta_t meta = {.correlation_id = r->rq.dossier_id, .discriminator = r->id,
                      .event_time_ms = 1700000000000};
    zmsg_t *m = qp_message_build (&r->rq.base, &meta, NULL);
    ck_assert_int_eq (qp_bus_client_send (s_sender, service, &m), 0);
}

/* Sends and returns the decision (outcome, reason checked by the caller). */
static Qp__V1__PartnerDecision *s_decide (const char *service, request_t *r, qp_message_t *msg)
{
    s_send (service, r);
    ck_assert_int_eq (s_next (&qp__v1__partner_decision__descriptor, msg, NULL), 0);
    Qp__V1__PartnerDecision *d = (Qp__V1__PartnerDecision *) msg->payload;
    ck_assert_str_eq (d->request_id, r->id);
    ck_assert_str_eq (d->dossier_id, "dtest");
    ck_assert_str_eq (msg->envelope->correlation_id, "dtest");
    return d;
}

#define APPROVED QP__V1__PARTNER_OUTCOME__APPROVED
#define DECLINED QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED

START_TEST (test_hello_and_status)
{
    bool agencies[5] = {false};
    for (int i = 0; i < 4; i++) {
        qp_message_t m;
        ck_assert_int_eq (s_next (&qp__v1__partner_hello__descriptor, &m, NULL), 0);
        Qp__V1__PartnerHello *h = (Qp__V1__PartnerHello *) m.payload;
        ck_assert (h->agency >= 1 && h->agency <= 4);
        ck_assert (!agencies[h->agency]);
        agencies[h->agency] = true;
        ck_assert_uint_ge (h->n_schemes, 1);
        ck_assert_ptr_nonnull (h->component_id);
        ck_assert_ptr_nonnull (h->version);
        ck_assert_uint_gt (h->capacity, 0);
        ck_assert_uint_eq (h->status_interval_ms, 200);
        qp_message_clear (&m);
    }
    qp_message_t m;
    ck_assert_int_eq (s_next (&qp__v1__partner_status__descriptor, &m, NULL), 0);
    Qp__V1__PartnerStatus *s = (Qp__V1__PartnerStatus *) m.payload;
    ck_assert (s->alive && s->accepting);
    ck_assert_uint_eq (s->status_interval_ms, 200);
    qp_message_clear (&m);
}
END_TEST

START_TEST (test_each_agency_decides)
{
    request_t r;
    qp_message_t m;
    Qp__V1__PartnerDecision *d;

    s_request (&r, "anct-1", "anct-ingenierie", QP__V1__AGENCY__ANCT);
    d = s_decide ("partner.ANCT.anct-default", &r, &m);
    ck_assert_int_eq (d->outcome, APPROVED);
    ck_assert_int_eq (d->agency, QP__V1__AGENCY__ANCT);
    ck_assert_str_eq (d->component_id, "anct-default");
    qp_message_clear (&m);
    s_request (&r, "anct-2", "anct-ingenierie", QP__V1__AGENCY__ANCT);
    r.summary.territory = "hors-programme";
    d = s_decide ("partner.ANCT.anct-default", &r, &m);
    ck_assert_int_eq (d->outcome, DECLINED);
    ck_assert_ptr_nonnull (strstr (d->reason, "Quartiers Productifs"));
    qp_message_clear (&m);

    s_request (&r, "anru-1", "anru-locaux", QP__V1__AGENCY__ANRU);
    d = s_decide ("partner.ANRU.anru-default", &r, &m);
    ck_assert_int_eq (d->outcome, APPROVED);
    qp_message_clear (&m);
    s_request (&r, "anru-2", "anru-locaux", QP__V1__AGENCY__ANRU);
    r.summary.qpv_code = NULL;
    d = s_decide ("partner.ANRU.anru-default", &r, &m);
    ck_assert_int_eq (d->outcome, DECLINED);
    qp_message_clear (&m);

    s_request (&r, "bdt-1", "bdt-commerce", QP__V1__AGENCY__BANQUE_DES_TERRITOIRES);
    d = s_decide ("partner.BANQUE_DES_TERRITOIRES.bdt-default", &r, &m);
    ck_assert_int_eq (d->outcome, APPROVED);
    qp_message_clear (&m);
    s_request (&r, "bdt-2", "bdt-commerce", QP__V1__AGENCY__BANQUE_DES_TERRITOIRES);
    r.summary.axis = QP__V1__AXIS__ENTREPRENEURSHIP;
    d = s_decide ("partner.BANQUE_DES_TERRITOIRES.bdt-default", &r, &m);
    ck_assert_int_eq (d->outcome, DECLINED);
    qp_message_clear (&m);

    /* Bpifrance: exactly 10 % brought is enough; the amount is rounded down to 100 €. */
    s_request (&r, "bpi-1", "phq", QP__V1__AGENCY__BPIFRANCE);
    d = s_decide ("partner.BPIFRANCE.bpifrance-default", &r, &m);
    ck_assert_int_eq (d->outcome, APPROVED);
    ck_assert_int_eq (d->terms->amount_cents, 1230000);
    ck_assert_uint_eq (d->terms->duration_months, 48);
    qp_message_clear (&m);
    s_request (&r, "bpi-2", "phq", QP__V1__AGENCY__BPIFRANCE);
    r.summary.personal_contribution_cents = 499999;
    d = s_decide ("partner.BPIFRANCE.bpifrance-default", &r, &m);
    ck_assert_int_eq (d->outcome, DECLINED);
    ck_assert_ptr_null (d->terms);
    qp_message_clear (&m);
    s_request (&r, "bpi-3", "phq", QP__V1__AGENCY__BPIFRANCE);
    r.summary.has_financing_need_cents = false;
    d = s_decide ("partner.BPIFRANCE.bpifrance-default", &r, &m);
    ck_assert_int_eq (d->outcome, QP__V1__PARTNER_OUTCOME__INFORMATION_NEEDED);
    ck_assert_uint_eq (d->n_information_needed, 2);
    ck_assert_str_eq (d->information_needed[0], "summary.financing_need_cents");
    qp_message_clear (&m);

    /* A scheme the component does not decide. */
    s_request (&r, "anct-3", "phq", QP__V1__AGENCY__ANCT);
    d = s_decide ("partner.ANCT.anct-default", &r, &m);
    ck_assert_int_eq (d->outcome, DECLINED);
    ck_assert_ptr_nonnull (strstr (d->reason, "not decided by"));
    qp_message_clear (&m);
}
END_TEST

START_TEST (test_same_request_same_answer)
{
    request_t r;
    s_request (&r, "twice", "phq", QP__V1__AGENCY__BPIFRANCE);
    zchunk_t *a = NULL, *b = NULL;
    qp_message_t m;
    s_send ("partner.BPIFRANCE.bpifrance-default", &r);
    ck_assert_int_eq (s_next (&qp__v1__partner_decision__descriptor, &m, &a), 0);
    qp_message_clear (&m);
    s_send ("partner.BPIFRANCE.bpifrance-default", &r);
    ck_assert_int_eq (s_next (&qp__v1__partner_decision__descriptor, &m, &b), 0);
    qp_message_clear (&m);
    ck_assert (zchunk_size (a) == zchunk_size (b));
    ck_assert_int_eq (memcmp (zchunk_data (a), zchunk_data (b), zchunk_size (a)), 0);
    zchunk_destroy (&a);
    zchunk_destroy (&b);
}
END_TEST

START_TEST (test_invalid_request_answered_with_error)
{
    Qp__V1__FundingRequest rq = QP__V1__FUNDING_REQUEST__INIT;
    rq.dossier_id = "dtest";
    qp_message_t reply;
    qp_error_t err;
    ck_assert_int_eq (
        qp_test_call (s_stack->work, "partner.BPIFRANCE.bpifrance-default", &rq.base, NULL, 5000, &reply, &err), 0);
    ck_assert_ptr_eq (reply.descriptor, &qp__v1__error__descriptor);
    ck_assert_str_eq (((Qp__V1__Error *) reply.payload)->code, "invalid_field");
    ck_assert_str_eq (((Qp__V1__Error *) reply.payload)->field, "request_id");
    qp_message_clear (&reply);
    /* Still answering. */
    request_t r;
    qp_message_t m;
    s_request (&r, "after-error", "phq", QP__V1__AGENCY__BPIFRANCE);
    Qp__V1__PartnerDecision *d = s_decide ("partner.BPIFRANCE.bpifrance-default", &r, &m);
    ck_assert_int_eq (d->outcome, APPROVED);
    qp_message_clear (&m);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("partners");
    TCase *tc = tcase_create ("partners");
    tcase_set_timeout (tc, 120);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_hello_and_status);
    tcase_add_test (tc, test_each_agency_decides);
    tcase_add_test (tc, test_same_request_same_answer);
    tcase_add_test (tc, test_invalid_request_answered_with_error);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
