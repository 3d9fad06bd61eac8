/* Personal data, with real processes: dossiers are submitted with a PersonIdentity
 * (family name, given names, birth date, email, and a phone number and a national id in
 * fields of a newer schema) carrying recognisable markers, through the whole stack with
 * the recorder. Intake derives the person key (a keyed hash) and forgets the identity,
 * the recorder empties it before writing: no marker may then be found in any log of any
 * program, in the journal, in Redis (every key and value, and its AOF files) or in the
 * evaluation's reports, and the logs carry no email address or phone number at all.
 * One more identity goes in as a JSON line through qp-ctl. Ten people submit twice: the second PHQ
 * of each is refused (one per person per network), which only the person key can tell. The journal,
 * replayed into a fresh stack with ANOTHER pepper, gives the same decisions (the replay takes the
 * person keys intake derived, from the journal): no identity, no pepper needed. qp-journal scrub
 * cleans a journal written before the recorder emptied identities. */
#include "qp/v1/evaluation.pb-c.h"
#include "qp_date.h"
#include "qp_journal.h"
#include "qp_json.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <regex.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_PEOPLE 40
#define N_FIRST 30 /* submissions [N_FIRST, N_PEOPLE) repeat the identity of i - N_FIRST */
#define N_REFUSED 3
#define CTL                                                                                        \
    N_PEOPLE /* ids[CTL]: one more, submitted as JSON through qp-ctl */ /* then submissions        \
                                                                           refused (a negative     \
                                                                           amount), identity and   \
                                                                           all */

static const char *const s_programs[] = {"intake",     "eligibility",       "funding",
                                         "evaluation", "partner-bpifrance", NULL};
static const char *const s_ready[] = {
    "intake", "eligibility", "funding", "evaluation", "partner.BPIFRANCE.bpifrance-default", NULL};
/* The fresh stack of the replay: no partner component (the journal answers for it). */
static const char *const s_replay_programs[] = {"intake", "eligibility", "funding", "evaluation",
                                                NULL};
static const char *const s_replay_ready[] = {"intake", "eligibility", "funding", "evaluation",
                                             NULL};

/* Strings no program has any reason to write, but each identity carries. */
static const char *const s_markers[] = {"Zyxquor",    "Wubblefitz",    "zyxquor.wubblefitz",
                                        "ZYXQUOR",    "WUBBLEFITZ",    "privacy-test.example",
                                        "1931-07-29", "+33 6 98 76 5", "2310775123",
                                        NULL};

typedef struct {
    Qp__V1__SubmitDossier submit;
    Qp__V1__Dossier dossier;
    Qp__V1__ProjectHolder holder;
    Qp__V1__PersonIdentity identity;
    Qp__V1__Business business;
    Qp__V1__Project project;
    ProtobufCMessageUnknownField unknown[2];
    char key[32], family[48], given[48], email[80], phone[32], nir[32];
} person_t;

/* Submission i of person who (the identity: i and i + N_FIRST share one). */
static void s_person (person_t *s, int i, int who)
{
    qp__v1__submit_dossier__init (&s->submit);
    qp__v1__dossier__init (&s->dossier);
    qp__v1__project_holder__init (&s->holder);
    qp__v1__person_identity__init (&s->identity);
    qp__v1__business__init (&s->business);
    qp__v1__project__init (&s->project);
    snprintf (s->key, sizeof s->key, "privacy-%04d", i);
    snprintf (s->family, sizeof s->family, "Zyxquor-%c%c", 'a' + who % 26, 'a' + who / 26);
    snprintf (s->given, sizeof s->given, "Wubblefitz Éloïse %d", who);
    snprintf (s->email, sizeof s->email, "zyxquor.wubblefitz%d@privacy-test.example", who);
    /* An unknown field's data is what follows its tag: the length, then the bytes. */
    s->phone[0] =
        (char)snprintf (s->phone + 1, sizeof s->phone - 1, "+33 6 98 76 54 %02d", who % 100);
    s->nir[0] = (char)snprintf (s->nir + 1, sizeof s->nir - 1, "2310775123%03d", who);
    s->identity.family_name = s->family;
    s->identity.given_names = s->given;
    s->identity.birth_date = "1931-07-29";
    s->identity.email = s->email;
    /* A phone and a national id in fields 5 and 6, unknown to this schema version. */
    s->unknown[0] =
        (ProtobufCMessageUnknownField){.tag = 5,
                                       .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                       .len = 1 + (size_t)s->phone[0],
                                       .data = (uint8_t *)s->phone};
    s->unknown[1] =
        (ProtobufCMessageUnknownField){.tag = 6,
                                       .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                       .len = 1 + (size_t)s->nir[0],
                                       .data = (uint8_t *)s->nir};
    s->identity.base.n_unknown_fields = 2;
    s->identity.base.unknown_fields = s->unknown;
    s->dossier.channel = "test-privacy";
    s->dossier.channel_key = s->key;
    s->dossier.submitted_on = "2024-06-03";
    s->holder.residence_qpv = "QN05981M";
    s->holder.has_accompanied = true, s->holder.accompanied = true;
    s->holder.has_network = true, s->holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    s->business.insee_commune = "59512";
    s->business.naf_code = "47.11B";
    s->business.legal_form = "5499";
    int64_t amount = i >= N_PEOPLE && i < N_PEOPLE + N_REFUSED ? -100 : 500000 + i * 10000;
    Qp__V1__Project *p = &s->project;
    p->has_axis = true, p->axis = QP__V1__AXIS__RETAIL_AND_CRAFTS;
    p->has_stage = true, p->stage = QP__V1__STAGE__CREATION;
    p->has_amount_asked_cents = true, p->amount_asked_cents = amount;
    p->has_financing_need_cents = true, p->financing_need_cents = amount * 4;
    p->has_personal_contribution_cents = true, p->personal_contribution_cents = amount;
    p->has_bank_loan_cents = true, p->bank_loan_cents = amount * 2;
    p->has_bank_loan_months = true, p->bank_loan_months = 60;
    p->has_bank_loan_guarantee_pct = true, p->bank_loan_guarantee_pct = 40;
    p->has_honour_loan_months = true, p->honour_loan_months = 48;
    p->has_deferral_months = true, p->deferral_months = 6;
    p->has_jobs_planned = true, p->jobs_planned = 1;
    s->dossier.holder = &s->holder;
    s->dossier.business = &s->business;
    s->dossier.project = &s->project;
    s->submit.dossier = &s->dossier;
    s->submit.identity = &s->identity;
}

/* Where a marker was found, for the failure message. */
static char s_found[4096];
static int s_hits;

static void s_scan_bytes (const char *where, const void *data, size_t size)
{
    for (size_t m = 0; s_markers[m]; m++)
        if (memmem (data, size, s_markers[m], strlen (s_markers[m]))) {
            if (s_hits++ < 20) {
                size_t len = strlen (s_found);
                snprintf (s_found + len, sizeof s_found - len, "\n  '%s' in %s", s_markers[m],
                          where);
            }
        }
}

static void s_scan_file (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return;
    fseek (f, 0, SEEK_END);
    long size = ftell (f);
    rewind (f);
    char *buf = malloc ((size_t)size + 1);
    size_t n = fread (buf, 1, (size_t)size, f);
    fclose (f);
    s_scan_bytes (path, buf, n);
    free (buf);
}

/* Every regular file under dir, recursively. Returns how many. */
static int s_scan_tree (const char *dir)
{
    DIR *d = opendir (dir);
    int files = 0;
    struct dirent *e;
    while (d && (e = readdir (d))) {
        if (!strcmp (e->d_name, ".") || !strcmp (e->d_name, ".."))
            continue;
        char path[2048];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat (path, &st) != 0)
            continue;
        if (S_ISDIR (st.st_mode))
            files += s_scan_tree (path);
        else if (S_ISREG (st.st_mode)) {
            s_scan_file (path);
            files++;
        }
    }
    if (d)
        closedir (d);
    return files;
}

static void s_scan_reply (const char *where, redisReply *r)
{
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        s_scan_bytes (where, r->str, r->len);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        s_scan_reply (where, r->element[i]);
}

/* Every key of Redis: its name and its value, whatever its type. Returns how many. */
static int s_scan_redis (qp_test_stack_t *stack)
{
    redisContext *rc = redisConnect (stack->redis->host, stack->redis->port);
    ck_assert (rc && !rc->err);
    unsigned long long cursor = 0;
    int keys = 0;
    do {
        redisReply *r = redisCommand (rc, "SCAN %llu COUNT 500", cursor);
        ck_assert_int_eq (r->type, REDIS_REPLY_ARRAY);
        cursor = strtoull (r->element[0]->str, NULL, 10);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *k = r->element[1]->element[i];
            char where[600];
            snprintf (where, sizeof where, "Redis key %.*s", (int)(k->len < 500 ? k->len : 500),
                      k->str);
            s_scan_bytes (where, k->str, k->len);
            redisReply *t = redisCommand (rc, "TYPE %b", k->str, k->len);
            const char *cmd = !strcmp (t->str, "string") ? "GET %b"
                              : !strcmp (t->str, "hash") ? "HGETALL %b"
                              : !strcmp (t->str, "list") ? "LRANGE %b 0 -1"
                              : !strcmp (t->str, "set")  ? "SMEMBERS %b"
                              : !strcmp (t->str, "zset") ? "ZRANGE %b 0 -1"
                                                         : NULL;
            ck_assert_msg (cmd, "key %s of type %s not scanned", where, t->str);
            redisReply *v = redisCommand (rc, cmd, k->str, k->len);
            s_scan_reply (where, v);
            freeReplyObject (v);
            freeReplyObject (t);
            keys++;
        }
        freeReplyObject (r);
    } while (cursor != 0);
    redisFree (rc);
    return keys;
}

/* Lines of the logs that look like an email address or a phone number. */
static int s_scan_patterns (const char *dir)
{
    regex_t email, phone;
    ck_assert_int_eq (regcomp (&email,
                               "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
                               REG_EXTENDED | REG_NOSUB),
                      0);
    /* French numbers: 0X XX XX XX XX (spaces, dots or dashes) or +33 X XX XX XX XX. */
    ck_assert_int_eq (
        regcomp (&phone, "(^|[^0-9A-Za-z])(0|\\+33[ .-]?)[1-9]([ .-]?[0-9]{2}){4}([^0-9A-Za-z]|$)",
                 REG_EXTENDED | REG_NOSUB),
        0);
    int hits = 0;
    DIR *d = opendir (dir);
    struct dirent *e;
    while (d && (e = readdir (d))) {
        size_t len = strlen (e->d_name);
        if (len < 4 ||
            (strcmp (e->d_name + len - 4, ".log") && strcmp (e->d_name + len - 4, ".out")))
            continue;
        char path[2048];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen (path, "r");
        char line[8192];
        while (f && fgets (line, sizeof line, f)) {
            /* Ids are hex: a run of digits inside one is no phone number (the pattern
             * wants no letter or digit around the number). */
            if (regexec (&email, line, 0, NULL, 0) == 0 ||
                regexec (&phone, line, 0, NULL, 0) == 0) {
                if (hits++ < 5)
                    fprintf (stderr, "personal-looking data in %s: %s", path, line);
            }
        }
        if (f)
            fclose (f);
    }
    if (d)
        closedir (d);
    regfree (&email);
    regfree (&phone);
    return hits;
}

static qp_test_stack_t *s_start (const char *const *programs, const char *const *ready,
                                 const char *pepper)
{
    char pep[256];
    snprintf (pep, sizeof pep, "QP_PERSON_PEPPER=%s", pepper);
    const char *env[] = {qp_test_env_territories (), qp_test_env_data_dir (), pep, NULL};
    /* Debug logs: the most a program ever writes. */
    qp_test_stack_opts_t opts = {
        .programs = programs, .wait_for = ready, .env = env, .log_level = "debug"};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    return stack;
}

/* The recorder into journal, once subscribed. */
static qp_test_proc_t *s_recorder (qp_test_stack_t *stack, const char *journal)
{
    qp_test_proc_t *rec = qp_test_stack_recorder (stack, journal);
    ck_assert_msg (rec, "the recorder did not start (its log above)");
    return rec;
}

/* Submissions [from, to): accepted below N_PEOPLE (ids filled), refused beyond. */
static void s_submit (qp_test_stack_t *stack, person_t *people, int from, int to,
                      char ids[][QP_ID_HEX + 1])
{
    const ProtobufCMessage *payloads[N_PEOPLE + N_REFUSED];
    qp_meta_t metas[N_PEOPLE + N_REFUSED];
    qp_message_t replies[N_PEOPLE + N_REFUSED];
    char disc[N_PEOPLE + N_REFUSED][64];
    int n = to - from;
    for (int j = 0; j < n; j++) {
        int i = from + j;
        s_person (&people[i], i, i % N_FIRST);
        payloads[j] = &people[i].submit.base;
        snprintf (disc[j], sizeof disc[j], "test-privacy\n%s", people[i].key);
        metas[j] = (qp_meta_t){.discriminator = disc[j]};
    }
    qp_test_client_t *client = qp_test_client_new (stack->work);
    ck_assert_uint_eq (
        qp_test_client_call_many (client, "intake", payloads, metas, (size_t)n, 30000, replies),
        (size_t)n);
    for (int j = 0; j < n; j++) {
        int i = from + j;
        ck_assert_ptr_eq (replies[j].descriptor, &qp__v1__submit_dossier_reply__descriptor);
        Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *)replies[j].payload;
        if (i < N_PEOPLE) {
            if (!r->accepted && r->n_errors)
                ck_abort_msg ("identity %d refused: %s: %s", i, r->errors[0]->field,
                              r->errors[0]->message);
            ck_assert (r->accepted);
            snprintf (ids[i], QP_ID_HEX + 1, "%s", r->dossier_id);
        } else {
            ck_assert (!r->accepted);
            ck_assert_uint_gt (r->n_errors, 0);
            /* The refusal names the field, never the value given. */
            size_t size = protobuf_c_message_get_packed_size (replies[j].payload);
            uint8_t *buf = malloc (size + 1);
            protobuf_c_message_pack (replies[j].payload, buf);
            s_scan_bytes ("a refusal", buf, size);
            free (buf);
        }
        qp_message_clear (&replies[j]);
    }
    qp_test_client_destroy (&client);
}

/* Waits until dossiers [from, to) are terminal; scans their status replies; refused[i]
 * when the PHQ is not eligible. */
static void s_wait_decided (qp_test_stack_t *stack, char ids[][QP_ID_HEX + 1], int from, int to,
                            bool *refused)
{
    qp_test_client_t *client = qp_test_client_new (stack->work);
    for (int i = from; i < to; i++) {
        bool terminal = false;
        for (int w = 0; w < 300 && !terminal; w++) {
            qp_message_t reply;
            Qp__V1__DossierStatusReply *s = qp_test_dossier_status (client, ids[i], &reply);
            ck_assert_msg (s, "dossier %s: no status", ids[i]);
            terminal = s->state >= QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
            if (terminal) {
                uint8_t buf[65536];
                size_t n = protobuf_c_message_get_packed_size (reply.payload);
                ck_assert_uint_le (n, sizeof buf);
                protobuf_c_message_pack (reply.payload, buf);
                s_scan_bytes ("a DossierStatusReply", buf, n);
                /* The second submission of a person differs from the first by its
                 * amount and channel key only: its PHQ is not eligible because the
                 * person key already holds one (the decision may not list criteria). */
                for (size_t d = 0; s->eligibility && d < s->eligibility->n_decisions; d++) {
                    Qp__V1__SchemeDecision *sd = s->eligibility->decisions[d];
                    if (sd->scheme_id && !strcmp (sd->scheme_id, "phq"))
                        refused[i] = sd->outcome == QP__V1__OUTCOME__NOT_ELIGIBLE_OUTCOME;
                }
            } else
                qp_test_sleep_ms (100);
            qp_message_clear (&reply);
        }
        ck_assert_msg (terminal, "dossier %s not decided", ids[i]);
    }
    qp_test_client_destroy (&client);
}

/* Runs a tool to its end; its exit status; its stdout in *out (malloc'd), its output
 * and its log scanned for markers. */
static int s_run (const char *tool, const char *const *env, const char *const *args, char **out)
{
    char *log;
    int status = qp_test_run (tool, env, args, 300000, out, &log);
    ck_assert_msg (status >= 0, "%s did not finish", tool);
    char where[64];
    snprintf (where, sizeof where, "qp-%s's output", tool);
    s_scan_bytes (where, *out, strlen (*out));
    snprintf (where, sizeof where, "qp-%s's log", tool);
    s_scan_bytes (where, log, strlen (log));
    free (log);
    return status;
}

/* One more identity, as a JSON line through qp-ctl submit (the front door): accepted,
 * its id in id; qp-ctl's output and log are scanned. */
static void s_submit_json (qp_test_stack_t *stack, const char *dir, char id[QP_ID_HEX + 1])
{
    static person_t one;
    s_person (&one, N_PEOPLE + N_REFUSED, 45);
    snprintf (one.key, sizeof one.key, "privacy-ctl");
    one.identity.base.n_unknown_fields = 0; /* JSON has no unknown fields */
    json_t *json = qp_json_from_message (&one.submit.base);
    char path[1100];
    snprintf (path, sizeof path, "%s-ctl.jsonl", dir);
    ck_assert_int_eq (json_dump_file (json, path, JSON_COMPACT), 0);
    json_decref (json);
    char work[80];
    snprintf (work, sizeof work, "QP_BUS_WORK=%s", stack->work);
    char *out;
    ck_assert_int_eq (
        s_run ("ctl", (const char *[]){work, NULL}, (const char *[]){"submit", path, NULL}, &out),
        0);
    json_error_t jerr;
    json_t *answer = json_loads (out, JSON_DISABLE_EOF_CHECK, &jerr);
    const char *dossier = json_string_value (json_object_get (answer, "dossier_id"));
    ck_assert_msg (dossier && json_is_true (json_object_get (answer, "accepted")), "qp-ctl: %s",
                   out);
    snprintf (id, QP_ID_HEX + 1, "%s", dossier);
    json_decref (answer);
    free (out);
    unlink (path);
}

/* Stops the stack, keeping its logs and Redis files; scans them and the journal. */
static void s_stop_and_scan (qp_test_stack_t **stack_p, const char *journal, const char *which)
{
    qp_test_stack_t *stack = *stack_p;
    int keys = s_scan_redis (stack);
    ck_assert_int_gt (keys, N_PEOPLE);
    char *logs = strdup (stack->dir), *redis_dir = strdup (stack->redis->dir);
    setenv ("QP_TEST_KEEP", "1", 1); /* the stack's dirs outlive the stop: scanned below */
    ck_assert_int_eq (qp_test_stack_stop (stack_p), 0);
    unsetenv ("QP_TEST_KEEP");
    int log_files = s_scan_tree (logs);
    int aof_files = s_scan_tree (redis_dir);
    int journal_files = s_scan_tree (journal);
    int patterns = s_scan_patterns (logs);
    fprintf (stderr,
             "privacy (%s): scanned %d Redis keys, %d log files, %d Redis files, %d journal "
             "files: %d marker hits so far, %d email/phone lines in the logs%s\n",
             which, keys, log_files, aof_files, journal_files, s_hits, patterns, s_found);
    ck_assert_int_gt (log_files, 5); /* bus, services, partner, recorder */
    ck_assert_int_gt (aof_files, 0);
    ck_assert_int_gt (journal_files, 0);
    ck_assert_msg (s_hits == 0, "personal data found:%s", s_found);
    ck_assert_int_eq (patterns, 0);
    qp_test_rmtree (logs);
    qp_test_rmtree (redis_dir);
    free (logs);
    free (redis_dir);
}

START_TEST (test_no_identity_leaves_intake)
{
    char *root = qp_test_tmpdir ("qp-privacy");
    char journal[1024], replayed[1024];
    snprintf (journal, sizeof journal, "%s/a", root);
    snprintf (replayed, sizeof replayed, "%s/b", root);
    qp_test_stack_t *stack = s_start (s_programs, s_ready, "privacy-test-pepper-not-secret");
    s_recorder (stack, journal);

    /* The identities go in; the dossiers are accepted and decided. Then the same people
     * again (new submissions): their second PHQ is refused. Then refusals. */
    static person_t people[N_PEOPLE + N_REFUSED];
    static char ids[N_PEOPLE + 1][QP_ID_HEX + 1];
    bool refused[N_PEOPLE + 1] = {false};
    s_submit (stack, people, 0, N_FIRST, ids);
    s_wait_decided (stack, ids, 0, N_FIRST, refused);
    s_submit (stack, people, N_FIRST, N_PEOPLE, ids);
    s_wait_decided (stack, ids, N_FIRST, N_PEOPLE, refused);
    s_submit (stack, people, N_PEOPLE, N_PEOPLE + N_REFUSED, NULL);
    s_submit_json (stack, journal, ids[CTL]);
    s_wait_decided (stack, ids, CTL, CTL + 1, refused);
    for (int i = 0; i < N_PEOPLE + 1; i++)
        ck_assert_msg (refused[i] == (i >= N_FIRST && i < N_PEOPLE),
                       "submission %d: PHQ %s one per person", i,
                       refused[i] ? "refused" : "not refused");

    /* The evaluation's reports: the totals and the indicators. */
    Qp__V1__ReportQuery rq = QP__V1__REPORT_QUERY__INIT;
    Qp__V1__IndicatorQuery iq = QP__V1__INDICATOR_QUERY__INIT;
    const ProtobufCMessage *queries[] = {&rq.base, &iq.base};
    for (int q = 0; q < 2; q++) {
        qp_message_t reply = {0};
        qp_error_t err;
        ck_assert_int_eq (
            qp_test_call (stack->work, "evaluation", queries[q], NULL, 10000, &reply, &err), 0);
        ck_assert_ptr_ne (reply.descriptor, &qp__v1__error__descriptor);
        size_t n = protobuf_c_message_get_packed_size (reply.payload);
        uint8_t *buf = malloc (n + 1);
        protobuf_c_message_pack (reply.payload, buf);
        s_scan_bytes (reply.descriptor->name, buf, n);
        free (buf);
        qp_message_clear (&reply);
    }
    /* Every submission went through the recorder's scrub: the recorder says so. */
    qp_test_proc_t *rec = stack->procs[stack->n_procs - 1];
    qp_test_sleep_ms (500); /* the capture tap delivers the last messages */
    ck_assert (qp_test_proc_stop (rec, NULL));
    char emptied[64];
    snprintf (emptied, sizeof emptied, "%d with a person's identity emptied",
              N_PEOPLE + N_REFUSED + 1);
    ck_assert_int_eq (qp_test_proc_log_count (rec, emptied), 1);
    s_stop_and_scan (&stack, journal, "recorded run");

    char *out;
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"verify", journal, NULL}, &out), 0);
    ck_assert_msg (strstr (out, " 0 records with a person's identity"), "%s", out);
    free (out);

    /* A fresh stack with another pepper, no partner component: the replay gives the
     * person keys of the journal, so the same decisions, the second PHQs refused. */
    stack = s_start (s_replay_programs, s_replay_ready, "another-pepper-the-replay-never-needs");
    s_recorder (stack, replayed);
    char work[80], partner[80];
    snprintf (work, sizeof work, "QP_BUS_WORK=%s", stack->work);
    snprintf (partner, sizeof partner, "QP_BUS_PARTNER=%s", stack->partner);
    int status = s_run ("replay", (const char *[]){work, partner, NULL},
                        (const char *[]){"--linger-ms", "2000", journal, NULL}, &out);
    fprintf (stderr, "%s", out);
    ck_assert_int_eq (status, 0);
    char want[128];
    snprintf (want, sizeof want, "person keys from the journal %10d (%d identities", N_PEOPLE + 1,
              N_REFUSED);
    ck_assert_msg (strstr (out, want), "no '%s' in:\n%s", want, out);
    free (out);
    memset (refused, 0, sizeof refused);
    s_wait_decided (stack, ids, 0, N_PEOPLE + 1, refused);
    for (int i = 0; i < N_PEOPLE + 1; i++)
        ck_assert_msg (refused[i] == (i >= N_FIRST && i < N_PEOPLE),
                       "replayed submission %d: PHQ %s", i, refused[i] ? "refused" : "not refused");
    rec = stack->procs[stack->n_procs - 1];
    qp_test_sleep_ms (500);
    ck_assert (qp_test_proc_stop (rec, NULL));
    s_stop_and_scan (&stack, replayed, "replay");

    status = s_run ("replay", NULL, (const char *[]){"diff", journal, replayed, NULL}, &out);
    fprintf (stderr, "%s", out);
    ck_assert_msg (status == 0 && strstr (out, "identical"), "diff: %s", out);
    free (out);
    ck_assert_int_eq (s_hits, 0);
    qp_test_rmtree (root);
    free (root);
}
END_TEST

/* A journal written before the recorder emptied identities: verify counts them, scrub
 * writes a copy without them, record for record. */
START_TEST (test_journal_scrub_tool)
{
    char *root = qp_test_tmpdir ("qp-privacy-scrub");
    char old[1024], clean[1024];
    snprintf (old, sizeof old, "%s/old", root);
    snprintf (clean, sizeof clean, "%s/clean", root);
    qp_journal_config_t c = {.dir = old};
    char err[256];
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    ck_assert_msg (w != NULL, "%s", err);
    static person_t people[4];
    for (int i = 0; i < 4; i++) {
        s_person (&people[i], i, i);
        qp_meta_t meta = {.discriminator = people[i].key, .event_time_ms = 1717372800000};
        zmsg_t *m = qp_message_build (&people[i].submit.base, &meta, NULL);
        zframe_t *env = zmsg_last (m);
        ck_assert_int_eq (qp_journal_append_message (w, QP_ORIGIN_WORK, (uint64_t)i + 1,
                                                     1000000 + i, "qp.v1.SubmitDossier", 19,
                                                     "intake", 6, zframe_data (env),
                                                     zframe_size (env)),
                          i);
        zmsg_destroy (&m);
    }
    ck_assert_int_eq (qp_journal_append_gap (w, 5, 2, 0, 1000010), 4);
    qp_journal_writer_close (&w);

    char *out;
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"verify", old, NULL}, &out), 0);
    ck_assert_msg (strstr (out, "offset 0: personal_data"), "%s", out);
    ck_assert_msg (strstr (out, " 4 records with a person's identity"), "%s", out);
    free (out);
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"stats", old, NULL}, &out), 0);
    ck_assert_msg (strstr (out, "identities 4 records hold a person's identity (qp-journal scrub"),
                   "%s", out);
    free (out);
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"scrub", old, clean, NULL}, &out),
                      0);
    ck_assert_msg (strstr (out, "5 records written, 4 with a person's identity emptied"), "%s",
                   out);
    free (out);
    /* Refuses to write into an existing journal. */
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"scrub", old, clean, NULL}, &out),
                      2);
    free (out);
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"verify", clean, NULL}, &out), 0);
    ck_assert_msg (strstr (out, " 5 records, 1 gaps (2 messages missing), 0 problems, 0 records"),
                   "%s", out);
    free (out);
    ck_assert_int_eq (s_run ("journal", NULL, (const char *[]){"stats", clean, NULL}, &out), 0);
    ck_assert_msg (strstr (out, "identities 0 records hold a person's identity\n"), "%s", out);
    free (out);
    s_hits = 0;
    s_found[0] = 0;
    s_scan_tree (clean);
    ck_assert_msg (s_hits == 0, "personal data left by scrub:%s", s_found);
    s_scan_tree (old);
    ck_assert_int_gt (s_hits, 0); /* the scan finds them where they are */
    qp_test_rmtree (root);
    free (root);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("privacy");
    TCase *tc = tcase_create ("privacy");
    tcase_set_timeout (tc, 300);
    tcase_add_test (tc, test_no_identity_leaves_intake);
    tcase_add_test (tc, test_journal_scrub_tool);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
