/* Evaluation: event -> counter increments (eval_apply.lua), and the report query. */
#include "evaluation.h"
#include "qp_log.h"
#include <string.h>

#define K_SEEN "qp:eval:seen"
#define K_TOTAL "qp:eval:total"
#define K_TERRITORIES "qp:eval:territories"

/* Applies increments (pairs name, value) once for the event's message id. */
static void s_apply (evaluation_t *self, const Qp__V1__Envelope *env, const char *territory,
                     const char **incr, size_t n)
{
    const char *t = territory && *territory ? territory : "hors-programme";
    char k_territory[160];
    snprintf (k_territory, sizeof k_territory, "qp:eval:t:%s", t);
    const char *keys[] = {K_SEEN, k_territory, K_TOTAL, K_TERRITORIES};
    const char *args[2 + n];
    args[0] = env->message_id;
    args[1] = t;
    for (size_t i = 0; i < n; i++)
        args[2 + i] = incr[i];
    redisReply *r =
        qp_redis_script (self->redis, QP_LUA_EVAL_APPLY, 4, keys, (int) (2 + n), args, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR)
        qp_log_error ("eval_lost", "event %s not counted: %s", env->message_id,
                      r ? r->str : "Redis unreachable");
    if (r)
        freeReplyObject (r);
}

static void s_on_received (qp_request_t *req, void *arg)
{
    Qp__V1__DossierReceived *m = (Qp__V1__DossierReceived *) req->msg.payload;
    char jobs[16] = "0";
    if (m->dossier && m->dossier->project && m->dossier->project->has_jobs_planned)
        snprintf (jobs, sizeof jobs, "%u", m->dossier->project->jobs_planned);
    const char *incr[] = {"submitted", "1", "jobs_planned", jobs};
    s_apply (arg, req->msg.envelope, m->dossier ? m->dossier->territory : NULL, incr, 4);
}

static void s_on_decided (qp_request_t *req, void *arg)
{
    Qp__V1__EligibilityDecided *m = (Qp__V1__EligibilityDecided *) req->msg.payload;
    bool eligible = false;
    for (size_t i = 0; i < m->n_decisions; i++)
        eligible |= m->decisions[i]->outcome == QP__V1__OUTCOME__ELIGIBLE_OUTCOME;
    const char *incr[] = {eligible ? "eligible" : "not_eligible", "1"};
    s_apply (arg, req->msg.envelope, m->territory, incr, 2);
}

static void s_on_requested (qp_request_t *req, void *arg)
{
    Qp__V1__FundingRequest *m = (Qp__V1__FundingRequest *) req->msg.payload;
    const char *incr[] = {"funding_requested", "1"};
    s_apply (arg, req->msg.envelope, m->summary ? m->summary->territory : NULL, incr, 2);
}

static void s_on_closed (qp_request_t *req, void *arg)
{
    Qp__V1__DossierClosed *m = (Qp__V1__DossierClosed *) req->msg.payload;
    const char *state = NULL;
    switch (m->final_state) {
    case QP__V1__DOSSIER_STATE__FUNDED: state = "funded"; break;
    case QP__V1__DOSSIER_STATE__DECLINED: state = "declined"; break;
    case QP__V1__DOSSIER_STATE__UNFUNDED: state = "unfunded"; break;
    case QP__V1__DOSSIER_STATE__NOT_ELIGIBLE: state = "closed_not_eligible"; break;
    default:
        qp_log_warn ("bad_event", "DossierClosed %s with a non-terminal state",
                     req->msg.envelope->message_id);
        return;
    }
    char committed[24];
    snprintf (committed, sizeof committed, "%lld", (long long) m->committed_cents);
    const char *incr[] = {"closed", "1", state, "1", "committed_cents", committed};
    s_apply (arg, req->msg.envelope, m->territory, incr, 6);
}

static uint64_t s_count (redisReply *h, const char *name)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2)
        if (!strcmp (h->element[i]->str, name))
            return strtoull (h->element[i + 1]->str, NULL, 10);
    return 0;
}

static Qp__V1__TerritoryFigures *s_figures (redisReply *h, const char *territory)
{
    Qp__V1__TerritoryFigures *f = malloc (sizeof *f);
    assert (f);
    qp__v1__territory_figures__init (f);
    f->territory = strdup (territory);
#define SET(field) f->has_##field = true, f->field = s_count (h, #field)
    SET (submitted);
    SET (not_eligible);
    SET (eligible);
    SET (funding_requested);
    SET (funded);
    SET (declined);
    SET (unfunded);
    SET (closed);
    SET (jobs_planned);
#undef SET
    f->has_committed_cents = true;
    f->committed_cents = (int64_t) s_count (h, "committed_cents");
    return f;
}

static int s_cmp_figures (const void *a, const void *b)
{
    return strcmp ((*(Qp__V1__TerritoryFigures *const *) a)->territory,
                   (*(Qp__V1__TerritoryFigures *const *) b)->territory);
}

int evaluation_report (qp_redis_t *redis, const char *territory, Qp__V1__ReportReply *out)
{
    qp__v1__report_reply__init (out);
    redisReply *names = qp_redis_command (redis, "SMEMBERS %s", K_TERRITORIES);
    if (!names || names->type != REDIS_REPLY_ARRAY) {
        if (names)
            freeReplyObject (names);
        return -1;
    }
    out->territories = calloc (names->elements + 1, sizeof *out->territories);
    assert (out->territories);
    int rc = 0;
    for (size_t i = 0; i < names->elements && rc == 0; i++) {
        const char *t = names->element[i]->str;
        if (territory && *territory && strcmp (territory, t) != 0)
            continue;
        redisReply *h = qp_redis_command (redis, "HGETALL qp:eval:t:%s", t);
        if (!h || h->type != REDIS_REPLY_ARRAY)
            rc = -1;
        else
            out->territories[out->n_territories++] = s_figures (h, t);
        if (h)
            freeReplyObject (h);
    }
    freeReplyObject (names);
    qsort (out->territories, out->n_territories, sizeof *out->territories, s_cmp_figures);
    if (rc == 0 && (!territory || !*territory)) {
        redisReply *h = qp_redis_command (redis, "HGETALL %s", K_TOTAL);
        if (!h || h->type != REDIS_REPLY_ARRAY)
            rc = -1;
        else
            out->total = s_figures (h, "total");
        if (h)
            freeReplyObject (h);
    } else if (rc == 0 && out->n_territories == 1) {
        Qp__V1__TerritoryFigures *one = out->territories[0];
        out->total = malloc (sizeof *out->total);
        assert (out->total);
        *out->total = *one;
        out->total->territory = strdup ("total");
    }
    if (rc)
        evaluation_report_clear (out);
    return rc;
}

void evaluation_report_clear (Qp__V1__ReportReply *report)
{
    for (size_t i = 0; i < report->n_territories; i++)
        qp__v1__territory_figures__free_unpacked (report->territories[i], NULL);
    free (report->territories);
    if (report->total)
        qp__v1__territory_figures__free_unpacked (report->total, NULL);
    qp__v1__report_reply__init (report);
}

static void s_on_query (qp_request_t *req, void *arg)
{
    evaluation_t *self = arg;
    Qp__V1__ReportQuery *q = (Qp__V1__ReportQuery *) req->msg.payload;
    Qp__V1__ReportReply reply;
    if (evaluation_report (self->redis, q->territory, &reply) != 0) {
        qp_error_t err;
        qp_error_set (&err, "internal", NULL, "counters unavailable (Redis), retry");
        qp_service_reply_error (req, &err);
        return;
    }
    Qp__V1__Envelope *env = req->msg.envelope;
    qp_meta_t meta = {.causation_id = env->message_id,
                      .event_time_ms = env->has_event_time_ms ? env->event_time_ms : 0,
                      .discriminator = "report"};
    qp_service_reply (req, &reply.base, &meta);
    evaluation_report_clear (&reply);
}

void evaluation_register (evaluation_t *self)
{
    qp_service_subscribe (self->service, &qp__v1__dossier_received__descriptor, s_on_received,
                          self);
    qp_service_subscribe (self->service, &qp__v1__eligibility_decided__descriptor, s_on_decided,
                          self);
    qp_service_subscribe (self->service, &qp__v1__funding_request__descriptor, s_on_requested,
                          self);
    qp_service_subscribe (self->service, &qp__v1__dossier_closed__descriptor, s_on_closed, self);
    qp_service_on (self->service, &qp__v1__report_query__descriptor, s_on_query, self);
}
