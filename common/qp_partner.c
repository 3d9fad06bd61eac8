/* The partner SDK's worker: hello, status timer, request -> decision. */
#include "qp_partner.h"
#include "qp_config.h"
#include "qp_log.h"
#include "qp_service.h"
#include <string.h>

typedef struct {
    const qp_partner_t *def;
    qp_service_t *service;
    char *component_id;
    long status_interval_ms;
    char *service_name;
} partner_t;

static bool s_serves (const qp_partner_t *def, const char *scheme)
{
    for (const char *const *s = def->schemes; scheme && *s; s++)
        if (!strcmp (*s, scheme))
            return true;
    return false;
}

static void s_send_to_funding (partner_t *self, const ProtobufCMessage *m, const char *disc,
                               const char *cause, const char *correlation, int64_t time_ms)
{
    qp_meta_t meta = {.correlation_id = correlation,
                      .causation_id = cause,
                      .event_time_ms = time_ms,
                      .discriminator = disc};
    qp_service_send (self->service, "funding", m, &meta);
}

static void s_on_request (qp_request_t *req, void *arg)
{
    partner_t *self = arg;
    const Qp__V1__FundingRequest *rq = (const Qp__V1__FundingRequest *) req->msg.payload;
    if (!rq->request_id || !rq->dossier_id || !rq->has_amount_asked_cents) {
        qp_error_t err;
        qp_error_set (&err, "invalid_field",
                      !rq->request_id ? "request_id"
                      : !rq->dossier_id ? "dossier_id"
                                        : "amount_asked_cents",
                      "a FundingRequest needs request_id, dossier_id and amount_asked_cents");
        qp_service_reply_error (req, &err);
        return;
    }
    qp_partner_answer_t a = {.outcome = QP__V1__PARTNER_OUTCOME__APPROVED,
                             .amount_cents = rq->amount_asked_cents};
    if (rq->terms) {
        a.duration_months = rq->terms->duration_months;
        a.deferral_months = rq->terms->deferral_months;
        a.rate_bp = rq->terms->rate_bp;
    }
    if (!s_serves (self->def, rq->scheme_id)) {
        a.outcome = QP__V1__PARTNER_OUTCOME__PARTNER_DECLINED;
        snprintf (a.reason, sizeof a.reason, "scheme %s is not decided by %s",
                  rq->scheme_id ? rq->scheme_id : "(none)", self->component_id);
    } else
        self->def->decide (rq, &a, self->def->arg);

    Qp__V1__LoanTerms terms = QP__V1__LOAN_TERMS__INIT;
    Qp__V1__PartnerDecision d = QP__V1__PARTNER_DECISION__INIT;
    d.request_id = rq->request_id;
    d.dossier_id = rq->dossier_id;
    d.scheme_id = rq->scheme_id;
    d.has_agency = true;
    d.agency = self->def->agency;
    d.component_id = self->component_id;
    d.has_outcome = true;
    d.outcome = a.outcome;
    if (a.outcome == QP__V1__PARTNER_OUTCOME__APPROVED) {
        terms.has_amount_cents = true, terms.amount_cents = a.amount_cents;
        terms.has_duration_months = true, terms.duration_months = a.duration_months;
        terms.has_deferral_months = true, terms.deferral_months = a.deferral_months;
        terms.has_rate_bp = true, terms.rate_bp = a.rate_bp;
        d.terms = &terms;
    }
    d.reason = a.reason[0] ? a.reason : NULL;
    d.n_information_needed = a.n_information_needed;
    d.information_needed = (char **) a.information_needed;
    Qp__V1__Envelope *env = req->msg.envelope;
    s_send_to_funding (self, &d.base, rq->request_id, env->message_id, rq->dossier_id,
                       env->has_event_time_ms ? env->event_time_ms : 0);
}

static void s_status (qp_service_t *service, void *arg)
{
    (void) service;
    partner_t *self = arg;
    Qp__V1__PartnerStatus s = QP__V1__PARTNER_STATUS__INIT;
    s.component_id = self->component_id;
    s.has_agency = true, s.agency = self->def->agency;
    s.has_alive = true, s.alive = true;
    s.has_accepting = true, s.accepting = true;
    s.has_status_interval_ms = true, s.status_interval_ms = (uint32_t) self->status_interval_ms;
    /* Status messages carry no business time; ids only need to differ per beat. */
    char disc[96];
    snprintf (disc, sizeof disc, "%s/%lld", self->component_id, (long long) qp_now_ms ());
    s_send_to_funding (self, &s.base, disc, NULL, NULL, qp_now_ms ());
}

int qp_partner_main (const qp_partner_t *def, int argc, char **argv)
{
    qp_common_config_t c = {0};
    partner_t self = {.def = def};
    char *curve_dir = NULL;
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"component-id", QP_CFG_STRING, def->component_name,
         "id this component answers under (stable across restarts)", &self.component_id, 0, 0},
        {"status-interval-ms", QP_CFG_INT, "1000", "PartnerStatus interval",
         &self.status_interval_ms, 100, 60000},
        {"curve-dir", QP_CFG_STRING, "",
         "CURVE keys: DIR/<AGENCY>.cert_secret (this agency's key pair) and DIR/bus.cert "
         "(the bus's public key), made by qp-keygen; empty: no CURVE",
         &curve_dir, 0, 0},
        {NULL},
    };
    char summary[160];
    snprintf (summary, sizeof summary, "Default partner component %s %s.", def->component_name,
              def->version);
    int rc = qp_config_parse (def->program, summary, options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    qp_log_init (def->component_name, c.log_level);

    char name[128];
    const ProtobufCEnumValue *ag =
        protobuf_c_enum_descriptor_get_value (&qp__v1__agency__descriptor, def->agency);
    /* One service per component: funding routes each request to a component it chose
     * from the partner cache (instances of the same component share the work). */
    snprintf (name, sizeof name, "partner.%s.%s", ag ? ag->name : "UNKNOWN", self.component_id);
    rc = 1;
    if (curve_dir && *curve_dir) {
        char key[1024], server[1024];
        snprintf (key, sizeof key, "%s/%s.cert_secret", curve_dir, ag ? ag->name : "UNKNOWN");
        snprintf (server, sizeof server, "%s/bus.cert", curve_dir);
        if (qp_bus_curve_client (c.bus_partner, key, server) != 0) {
            qp_config_free (options);
            return 1;
        }
        qp_log_info ("curve_on", "partner endpoint over CURVE with the key pair of %s",
                     ag ? ag->name : "?");
    }
    self.service = qp_service_new (name, c.bus_partner, NULL, NULL);
    if (self.service) {
        qp_service_on (self.service, &qp__v1__funding_request__descriptor, s_on_request, &self);
        qp_service_every (self.service, (int) self.status_interval_ms, s_status, &self);
        size_t n = 0;
        while (def->schemes[n])
            n++;
        Qp__V1__PartnerHello h = QP__V1__PARTNER_HELLO__INIT;
        h.component_id = self.component_id;
        h.has_agency = true, h.agency = def->agency;
        h.component_name = (char *) def->component_name;
        h.version = (char *) def->version;
        h.n_schemes = n;
        h.schemes = (char **) def->schemes;
        h.has_capacity = true, h.capacity = def->capacity;
        h.has_status_interval_ms = true, h.status_interval_ms = (uint32_t) self.status_interval_ms;
        char disc[96];
        snprintf (disc, sizeof disc, "%s/hello/%lld", self.component_id, (long long) qp_now_ms ());
        s_send_to_funding (&self, &h.base, disc, NULL, NULL, qp_now_ms ());
        qp_log_info ("partner_started", "%s %s answers for %s", def->component_name, def->version,
                     name);
        rc = qp_service_run (self.service);
    }
    qp_service_destroy (&self.service);
    qp_config_free (options);
    return rc;
}
