/* Intake stores the submissions of a burst together (issue 8): the real qp-bus, qp-intake
 * and redis-server, a DEALER that sends a burst without waiting and a peer registered as
 * eligibility that records what intake hands on. Intake is held (SIGSTOP) while the burst
 * is routed, so it reads the burst at once when it resumes: that makes the burst, the
 * counts below do not depend on speed.
 *   - 200 submissions: every one gets its own answer (accepted; the repeat of an earlier
 *     (channel, key) of the same burst a duplicate with its id; an invalid one refused
 *     with its field), every accepted dossier is stored once, with one DossierReceived in
 *     the outbox, and reaches eligibility once; intake's metrics count the round trips:
 *     at least 8 submissions each (one each before the batching);
 *   - Redis stopped before a burst: every valid submission of it answers "store
 *     unavailable, retry", nothing of it is written or handed on; the same burst sent
 *     again once Redis is back is accepted whole. */
#include "qp_bus.h"
#include "qp_message.h"
#include "qp_store.h"
#include "qp_test.h"
#include "qp_test_http.h"
#include "qp_test_intake.h"
#include "qp_test_suite.h"
#include <check.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 30000 /* only a bound for failing tests, never a timing assertion */
#define QUIET_MS 300  /* how long "nothing more arrives" is watched */
#define MAX_BURST 256

static qp_test_stack_t *stack;
static qp_test_proc_t *intake;
static qp_bus_client_t *eligibility; /* records the DossierReceived work intake sends */

static void s_setup (void)
{
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), NULL};
    qp_test_stack_opts_t opts = {.env = env};
    stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    const char *http[] = {"QP_HTTP=127.0.0.1:0", NULL};
    intake = qp_test_stack_spawn (stack, "intake", http);
    ck_assert_ptr_nonnull (intake);
    eligibility = qp_bus_client_new (stack->work);
    ck_assert_ptr_nonnull (eligibility);
    ck_assert_int_eq (qp_bus_client_ready (eligibility, "eligibility"), 0);
    const char *services[] = {"intake", "eligibility", NULL};
    ck_assert (qp_test_stack_wait (stack, services, 15000));
}

static void s_teardown (void)
{
    qp_bus_client_destroy (&eligibility);
    if (stack)
        ck_assert_int_eq (qp_test_stack_stop (&stack), 0);
}

/* One frame set on c within timeout_ms, the eligibility peer kept alive meanwhile (a
 * worker that does not heartbeat expires, and its work then waits in the bus). */
static bool s_recv (qp_bus_client_t *c, qp_bus_frame_t *f, int timeout_ms)
{
    for (int waited = 0;; waited += 200) {
        qp_bus_client_heartbeat (eligibility);
        int slice = timeout_ms - waited < 200 ? timeout_ms - waited : 200;
        if (slice <= 0)
            return false;
        if (qp_test_bus_recv (c, f, slice))
            return true;
    }
}

/* A submission of key; a bad date makes it invalid. */
static zmsg_t *s_submission (const char *key, const char *submitted_on, const char *disc,
                             char id[QP_ID_HEX + 1])
{
    Qp__V1__SubmitDossier *m = qp_test_submission ("test-burst", key, submitted_on, NULL);
    qp_meta_t meta = {.discriminator = disc, .producer = "test", .event_time_ms = 1715558400000};
    zmsg_t *frames = qp_message_build (&m->base, &meta, id);
    qp__v1__submit_dossier__free_unpacked (m, NULL);
    return frames;
}

/* What came back for one submission. */
typedef struct {
    char id[QP_ID_HEX + 1]; /* the request's message id */
    bool answered, accepted, duplicate;
    char dossier_id[QP_ID_HEX + 1];
    char error_code[32], error_message[128]; /* a qp.v1.Error */
    char first_field[64];                     /* the first field error of a refusal */
} answer_t;

/* Sends frames[0..n) to intake while it is stopped, lets the bus route them all, resumes
 * it and collects the n answers. before_resume (may be NULL) runs while it is stopped. */
static void s_burst (zmsg_t **frames, answer_t *answers, size_t n, void (*before_resume) (void))
{
    long routed = qp_test_bus_service_stat (stack->work, "intake", "routed");
    ck_assert_int_ge (routed, 0);
    ck_assert_int_eq (kill (intake->pid, SIGSTOP), 0);
    qp_bus_client_t *client = qp_bus_client_new (stack->work);
    ck_assert_ptr_nonnull (client);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq (qp_bus_client_send (client, "intake", &frames[i]), 0);
    /* Routed into intake's socket (what does not fit waits in the buffers on the way). */
    for (int w = 0; w < 100 && qp_test_bus_service_stat (stack->work, "intake", "routed") <
                                   routed + (long) n; w++) {
        qp_bus_client_heartbeat (eligibility);
        qp_test_sleep_ms (50);
    }
    if (before_resume)
        before_resume ();
    ck_assert_int_eq (kill (intake->pid, SIGCONT), 0);
    for (size_t got = 0; got < n;) {
        qp_bus_frame_t f;
        ck_assert_msg (s_recv (client, &f, WAIT_MS), "%zu of %zu answers", got, n);
        ck_assert_str_eq (f.kind, QPB_DELIVER);
        qp_message_t msg;
        qp_error_t err;
        ck_assert_msg (qp_message_decode (f.type, f.envelope, &msg, &err) == 0, "%s", err.message);
        const char *cause = msg.envelope->causation_id;
        if (msg.descriptor == &qp__v1__error__descriptor)
            cause = ((Qp__V1__Error *) msg.payload)->in_reply_to;
        answer_t *a = NULL;
        for (size_t i = 0; cause && i < n && !a; i++)
            if (!strcmp (answers[i].id, cause))
                a = &answers[i];
        ck_assert_msg (a, "an answer to no request of the burst");
        ck_assert_msg (!a->answered, "two answers to %s", a->id);
        a->answered = true;
        got++;
        if (msg.descriptor == &qp__v1__error__descriptor) {
            Qp__V1__Error *e = (Qp__V1__Error *) msg.payload;
            snprintf (a->error_code, sizeof a->error_code, "%s", e->code ? e->code : "");
            snprintf (a->error_message, sizeof a->error_message, "%s", e->message ? e->message : "");
        } else {
            ck_assert_ptr_eq (msg.descriptor, &qp__v1__submit_dossier_reply__descriptor);
            Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *) msg.payload;
            a->accepted = r->accepted;
            a->duplicate = r->has_duplicate && r->duplicate;
            snprintf (a->dossier_id, sizeof a->dossier_id, "%s", r->dossier_id ? r->dossier_id : "");
            if (r->n_errors)
                snprintf (a->first_field, sizeof a->first_field, "%s", r->errors[0]->field);
        }
        qp_message_clear (&msg);
        qp_bus_frame_clear (&f);
    }
    qp_bus_client_destroy (&client);
}

/* The DossierReceived work eligibility gets: waits for expected, then checks that nothing
 * more comes; each id once, into ids (distinct). Returns how many. */
static size_t s_handed_on (size_t expected, char ids[][QP_ID_HEX + 1])
{
    size_t n = 0;
    for (;;) {
        qp_bus_frame_t f;
        if (!s_recv (eligibility, &f, n < expected ? WAIT_MS : QUIET_MS))
            break;
        if (strcmp (f.kind, QPB_DELIVER) != 0) { /* a STATUS or the like */
            qp_bus_frame_clear (&f);
            continue;
        }
        qp_message_t msg;
        qp_error_t err;
        ck_assert_msg (qp_message_decode (f.type, f.envelope, &msg, &err) == 0, "%s", err.message);
        ck_assert_ptr_eq (msg.descriptor, &qp__v1__dossier_received__descriptor);
        const char *id = ((Qp__V1__DossierReceived *) msg.payload)->dossier_id;
        ck_assert_ptr_nonnull (id);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg (strcmp (ids[i], id) != 0, "dossier %s handed on twice", id);
        ck_assert_uint_lt (n, MAX_BURST);
        snprintf (ids[n++], QP_ID_HEX + 1, "%s", id);
        if (f.work)
            qp_bus_client_done (eligibility);
        qp_message_clear (&msg);
        qp_bus_frame_clear (&f);
    }
    return n;
}

static bool s_listed (char ids[][QP_ID_HEX + 1], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp (ids[i], id))
            return true;
    return false;
}

static redisContext *s_redis (void)
{
    redisContext *rc = redisConnect (stack->redis->host, stack->redis->port);
    ck_assert (rc && !rc->err);
    return rc;
}

static long long s_redis_int (redisContext *rc, const char *cmd, const char *arg)
{
    redisReply *x = redisCommand (rc, cmd, arg);
    ck_assert (x && x->type == REDIS_REPLY_INTEGER);
    long long v = x->integer;
    freeReplyObject (x);
    return v;
}

/* DossierReceived members of the outbox (type, NUL, envelope). */
static size_t s_received_in_outbox (redisContext *rc)
{
    redisReply *x = redisCommand (rc, "ZRANGE %s 0 -1", QP_STORE_OUTBOX_KEY);
    size_t n = qp_test_outbox_count (x, "qp.v1.DossierReceived");
    freeReplyObject (x);
    return n;
}

/* One of intake's metrics. */
static double s_intake_metric (const char *name)
{
    double v = qp_test_log_metric (intake->log_path, name);
    ck_assert_msg (!isnan (v), "no /metrics from intake");
    return v;
}

#define BURST 200
#define REPEATED 7 /* submission BURST-2 repeats this one's key */

START_TEST (test_burst_answers_each)
{
    zmsg_t *frames[BURST];
    answer_t *answers = calloc (BURST, sizeof *answers);
    for (int i = 0; i < BURST; i++) {
        char key[32], disc[32];
        snprintf (key, sizeof key, "B-%d", i == BURST - 2 ? REPEATED : i);
        snprintf (disc, sizeof disc, "burst-%d", i);
        frames[i] = s_submission (key, i == BURST - 1 ? "2024-13-45" : "2024-05-13", disc,
                                  answers[i].id);
    }
    double batches = s_intake_metric ("qp_intake_store_batches_total");
    double stored = s_intake_metric ("qp_intake_store_submissions_total");
    s_burst (frames, answers, BURST, NULL);

    for (int i = 0; i < BURST - 2; i++) {
        ck_assert_msg (answers[i].accepted && !answers[i].duplicate, "%d: %s %s", i,
                       answers[i].error_code, answers[i].error_message);
        ck_assert_uint_eq (strlen (answers[i].dossier_id), QP_ID_HEX);
        for (int k = 0; k < i; k++)
            ck_assert_str_ne (answers[k].dossier_id, answers[i].dossier_id);
    }
    answer_t *again = &answers[BURST - 2], *bad = &answers[BURST - 1];
    ck_assert (again->accepted && again->duplicate);
    ck_assert_str_eq (again->dossier_id, answers[REPEATED].dossier_id);
    ck_assert (!bad->accepted);
    ck_assert_str_eq (bad->first_field, "submitted_on");

    /* Each accepted dossier handed on once, and stored once with its one event. */
    static char handed[MAX_BURST][QP_ID_HEX + 1];
    ck_assert_uint_eq (s_handed_on (BURST - 2, handed), BURST - 2);
    redisContext *rc = s_redis ();
    for (int i = 0; i < BURST - 2; i++) {
        ck_assert_msg (s_listed (handed, BURST - 2, answers[i].dossier_id), "%d not handed on", i);
        redisReply *x = redisCommand (rc, "HGET qp:{%s}:d source_msg", answers[i].dossier_id);
        ck_assert (x && x->type == REDIS_REPLY_STRING);
        ck_assert_str_eq (x->str, answers[i].id);
        freeReplyObject (x);
    }
    ck_assert_int_eq (s_redis_int (rc, "ZCARD %s", "qp:pending:RECEIVED"), BURST - 2);
    ck_assert_uint_eq (s_received_in_outbox (rc), BURST - 2);
    redisFree (rc);

    /* The valid ones (the repeat too) went to Redis in a few round trips, not one each. */
    double n_stored = s_intake_metric ("qp_intake_store_submissions_total") - stored;
    double n_batches = s_intake_metric ("qp_intake_store_batches_total") - batches;
    ck_assert_msg (n_stored == BURST - 1, "stored %.0f", n_stored);
    ck_assert_msg (n_batches >= 1 && n_batches * 8 <= n_stored, "%.0f submissions in %.0f round trips",
                   n_stored, n_batches);
    free (answers);
}
END_TEST

static void s_redis_down (void)
{
    ck_assert_int_eq (qp_test_redis_down (stack->redis, SIGTERM), 0);
}

START_TEST (test_burst_redis_down)
{
    /* A first burst, stored. */
    enum { FIRST = 50, SECOND = 100 };
    zmsg_t *frames[SECOND + 1];
    answer_t *answers = calloc (SECOND + 1, sizeof *answers);
    for (int i = 0; i < FIRST; i++) {
        char key[32];
        snprintf (key, sizeof key, "A-%d", i);
        frames[i] = s_submission (key, "2024-05-13", key, answers[i].id);
    }
    s_burst (frames, answers, FIRST, NULL);
    for (int i = 0; i < FIRST; i++)
        ck_assert (answers[i].accepted && !answers[i].duplicate);
    static char handed[MAX_BURST][QP_ID_HEX + 1];
    ck_assert_uint_eq (s_handed_on (FIRST, handed), FIRST);

    /* Redis stops while the second burst is on its way. */
    memset (answers, 0, (SECOND + 1) * sizeof *answers);
    for (int i = 0; i <= SECOND; i++) {
        char key[32];
        snprintf (key, sizeof key, "C-%d", i);
        frames[i] = s_submission (key, i == SECOND ? "2024-13-45" : "2024-05-13", key,
                                  answers[i].id);
    }
    s_burst (frames, answers, SECOND + 1, s_redis_down);
    for (int i = 0; i < SECOND; i++) {
        ck_assert_msg (answers[i].answered && !answers[i].accepted, "%d accepted", i);
        ck_assert_str_eq (answers[i].error_code, "internal");
        ck_assert_str_eq (answers[i].error_message, "store unavailable, retry");
    }
    /* Refused for its field, Redis or not. */
    ck_assert (!answers[SECOND].accepted);
    ck_assert_str_eq (answers[SECOND].first_field, "submitted_on");
    ck_assert_uint_eq (s_handed_on (0, handed), 0);

    /* Back: the first burst is there, nothing of the second. */
    ck_assert_int_eq (qp_test_redis_up (stack->redis), 0);
    redisContext *rc = s_redis ();
    ck_assert_int_eq (s_redis_int (rc, "ZCARD %s", "qp:pending:RECEIVED"), FIRST);
    ck_assert_uint_eq (s_received_in_outbox (rc), FIRST);
    redisReply *x = redisCommand (rc, "KEYS qp:{*}:d");
    ck_assert (x && x->type == REDIS_REPLY_ARRAY);
    ck_assert_uint_eq (x->elements, FIRST);
    freeReplyObject (x);

    /* The senders retry the same messages: all stored and handed on now. */
    answer_t *retry = calloc (SECOND, sizeof *retry);
    for (int i = 0; i < SECOND; i++) {
        char key[32];
        snprintf (key, sizeof key, "C-%d", i);
        frames[i] = s_submission (key, "2024-05-13", key, retry[i].id);
        ck_assert_str_eq (retry[i].id, answers[i].id);
    }
    s_burst (frames, retry, SECOND, NULL);
    for (int i = 0; i < SECOND; i++)
        ck_assert_msg (retry[i].accepted && !retry[i].duplicate, "%d: %s", i, retry[i].error_message);
    ck_assert_uint_eq (s_handed_on (SECOND, handed), SECOND);
    ck_assert_int_eq (s_redis_int (rc, "ZCARD %s", "qp:pending:RECEIVED"), FIRST + SECOND);
    ck_assert_uint_eq (s_received_in_outbox (rc), FIRST + SECOND);
    redisFree (rc);
    free (retry);
    free (answers);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("intake_burst");
    TCase *tc = tcase_create ("burst");
    tcase_set_timeout (tc, 300);
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_burst_answers_each);
    tcase_add_test (tc, test_burst_redis_down);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
