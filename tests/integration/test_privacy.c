/* Personal data, with real processes: dossiers are submitted with a PersonIdentity
 * (family name, given names, birth date, email) carrying recognisable markers, through
 * the whole stack with the recorder. Intake derives the person key (a keyed hash) and
 * forgets the identity: no marker may then be found in any log, in the journal, in Redis
 * (every key and value, and its AOF files) or in the evaluation's reports, and the logs
 * carry no email address or phone number at all. */
#include "qp/v1/evaluation.pb-c.h"
#include "qp_date.h"
#include "qp_test.h"
#include <check.h>
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <regex.h>
#include <string.h>
#include <sys/stat.h>

#define N_PEOPLE 40

/* KNOWN GAP: qp-record journals the SubmitDossier as the client sent it, identity
 * included (docs/reliability.md). Until the recorder scrubs it, journal hits are counted
 * and printed but not failed; set to 0 once it does. Every other place is strict. */
#define JOURNAL_KNOWN_GAP 1

static const char *const s_programs[] = {"intake",     "eligibility",       "funding",
                                         "evaluation", "partner-bpifrance", NULL};
static const char *const s_ready[] = {
    "intake", "eligibility", "funding", "evaluation", "partner.BPIFRANCE.bpifrance-default", NULL};

/* Strings no program has any reason to write, but each identity carries. */
static const char *const s_markers[] = {"Zyxquor",    "Wubblefitz", "zyxquor.wubblefitz",
                                        "ZYXQUOR",    "WUBBLEFITZ", "privacy-test.example",
                                        "1931-07-29", NULL};

typedef struct {
    Qp__V1__SubmitDossier submit;
    Qp__V1__Dossier dossier;
    Qp__V1__ProjectHolder holder;
    Qp__V1__PersonIdentity identity;
    Qp__V1__Business business;
    Qp__V1__Project project;
    char key[32], family[48], given[48], email[80];
} person_t;

static void s_person (person_t *s, int i)
{
    qp__v1__submit_dossier__init (&s->submit);
    qp__v1__dossier__init (&s->dossier);
    qp__v1__project_holder__init (&s->holder);
    qp__v1__person_identity__init (&s->identity);
    qp__v1__business__init (&s->business);
    qp__v1__project__init (&s->project);
    snprintf (s->key, sizeof s->key, "privacy-%04d", i);
    snprintf (s->family, sizeof s->family, "Zyxquor-%c%c", 'a' + i % 26, 'a' + i / 26);
    snprintf (s->given, sizeof s->given, "Wubblefitz Éloïse %d", i);
    snprintf (s->email, sizeof s->email, "zyxquor.wubblefitz%d@privacy-test.example", i);
    s->identity.family_name = s->family;
    s->identity.given_names = s->given;
    s->identity.birth_date = "1931-07-29";
    s->identity.email = s->email;
    s->dossier.channel = "test-privacy";
    s->dossier.channel_key = s->key;
    s->dossier.submitted_on = "2024-06-03";
    s->holder.residence_qpv = "QN05981M";
    s->holder.has_accompanied = true, s->holder.accompanied = true;
    s->holder.has_network = true, s->holder.network = QP__V1__NETWORK__INITIATIVE_FRANCE;
    s->business.insee_commune = "59512";
    s->business.naf_code = "47.11B";
    s->business.legal_form = "5499";
    int64_t amount = 500000 + i * 10000;
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

START_TEST (test_no_identity_leaves_intake)
{
    char territories[1024], data[1024];
    snprintf (territories, sizeof territories,
              "QP_TERRITORIES=%s/tests/data/intake-territories.json", qp_test_source_dir ());
    snprintf (data, sizeof data, "QP_DATA_DIR=%s/data", qp_test_source_dir ());
    const char *env[] = {territories, data, "QP_PERSON_PEPPER=privacy-test-pepper-not-secret",
                         NULL};
    /* Debug logs: the most a program ever writes. */
    qp_test_stack_opts_t opts = {
        .programs = s_programs, .wait_for = s_ready, .env = env, .log_level = "debug"};
    qp_test_stack_t *stack = qp_test_stack_start (&opts);
    ck_assert_ptr_nonnull (stack);
    char *journal = qp_test_tmpdir ("qp-privacy-journal");
    char *rec_path = qp_test_program_path ("record");
    if (rec_path) {
        char jenv[1100];
        snprintf (jenv, sizeof jenv, "QP_JOURNAL=%s", journal);
        const char *renv[] = {jenv, NULL};
        qp_test_proc_t *rec = qp_test_stack_spawn (stack, "record", renv);
        ck_assert_ptr_nonnull (rec);
        for (int i = 0; i < 100 && qp_test_proc_log_count (rec, "recorder_started") == 0; i++)
            qp_test_sleep_ms (100);
        ck_assert_int_eq (qp_test_proc_log_count (rec, "recorder_started"), 1);
    } else
        fprintf (stderr, "no qp-record in this build: no journal to scan\n");

    /* The identities go in; the dossiers are accepted and decided. */
    static person_t people[N_PEOPLE];
    const ProtobufCMessage *payloads[N_PEOPLE];
    qp_meta_t metas[N_PEOPLE];
    qp_message_t replies[N_PEOPLE];
    char disc[N_PEOPLE][64], ids[N_PEOPLE][QP_ID_HEX + 1];
    for (int i = 0; i < N_PEOPLE; i++) {
        s_person (&people[i], i);
        payloads[i] = &people[i].submit.base;
        snprintf (disc[i], sizeof disc[i], "test-privacy\n%s", people[i].key);
        metas[i] = (qp_meta_t){.discriminator = disc[i]};
    }
    qp_test_client_t *client = qp_test_client_new (stack->work);
    ck_assert_uint_eq (
        qp_test_client_call_many (client, "intake", payloads, metas, N_PEOPLE, 30000, replies),
        N_PEOPLE);
    for (int i = 0; i < N_PEOPLE; i++) {
        ck_assert_ptr_eq (replies[i].descriptor, &qp__v1__submit_dossier_reply__descriptor);
        Qp__V1__SubmitDossierReply *r = (Qp__V1__SubmitDossierReply *)replies[i].payload;
        if (!r->accepted && r->n_errors)
            ck_abort_msg ("identity %d refused: %s: %s", i, r->errors[0]->field,
                          r->errors[0]->message);
        ck_assert (r->accepted);
        snprintf (ids[i], sizeof ids[i], "%s", r->dossier_id);
        qp_message_clear (&replies[i]);
    }
    /* Wait until every one is terminal (status query), and scan the status replies. */
    for (int i = 0; i < N_PEOPLE; i++) {
        bool terminal = false;
        for (int w = 0; w < 300 && !terminal; w++) {
            Qp__V1__DossierStatusQuery q = QP__V1__DOSSIER_STATUS_QUERY__INIT;
            q.dossier_id = ids[i];
            qp_message_t reply = {0};
            qp_error_t err;
            ck_assert_int_eq (
                qp_test_client_call (client, "intake", &q.base, NULL, 5000, &reply, &err, NULL), 0);
            ck_assert_ptr_eq (reply.descriptor, &qp__v1__dossier_status_reply__descriptor);
            Qp__V1__DossierStatusReply *s = (Qp__V1__DossierStatusReply *)reply.payload;
            ck_assert (s->found);
            terminal = s->state >= QP__V1__DOSSIER_STATE__NOT_ELIGIBLE;
            if (terminal) {
                uint8_t buf[65536];
                size_t n = protobuf_c_message_get_packed_size (reply.payload);
                ck_assert_uint_le (n, sizeof buf);
                protobuf_c_message_pack (reply.payload, buf);
                s_scan_bytes ("a DossierStatusReply", buf, n);
            } else
                qp_test_sleep_ms (100);
            qp_message_clear (&reply);
        }
        ck_assert_msg (terminal, "dossier %s not decided", ids[i]);
    }
    /* The evaluation's reports: the totals and the indicators. */
    Qp__V1__ReportQuery rq = QP__V1__REPORT_QUERY__INIT;
    Qp__V1__IndicatorQuery iq = QP__V1__INDICATOR_QUERY__INIT;
    const ProtobufCMessage *queries[] = {&rq.base, &iq.base};
    for (int q = 0; q < 2; q++) {
        qp_message_t reply = {0};
        qp_error_t err;
        ck_assert_int_eq (
            qp_test_client_call (client, "evaluation", queries[q], NULL, 10000, &reply, &err, NULL),
            0);
        ck_assert_ptr_ne (reply.descriptor, &qp__v1__error__descriptor);
        size_t n = protobuf_c_message_get_packed_size (reply.payload);
        uint8_t *buf = malloc (n + 1);
        protobuf_c_message_pack (reply.payload, buf);
        s_scan_bytes (reply.descriptor->name, buf, n);
        free (buf);
        qp_message_clear (&reply);
    }
    qp_test_client_destroy (&client);

    int keys = s_scan_redis (stack);
    ck_assert_int_gt (keys, N_PEOPLE);
    /* The programs stop (journals and logs flushed), then the files. */
    char *logs = strdup (stack->dir), *redis_dir = strdup (stack->redis->dir);
    setenv ("QP_TEST_KEEP", "1", 1); /* the stack's dirs outlive the stop: scanned below */
    qp_test_stack_stop (&stack);
    unsetenv ("QP_TEST_KEEP");
    int log_files = s_scan_tree (logs);
    int aof_files = s_scan_tree (redis_dir);
    int hits_before_journal = s_hits;
    int journal_files = s_scan_tree (journal);
    int journal_hits = s_hits - hits_before_journal;
    int patterns = s_scan_patterns (logs);
    fprintf (stderr,
             "privacy: %d identities; scanned %d Redis keys, %d log files, %d Redis files, %d "
             "journal files, the status replies and 2 reports: %d marker hits, %d email/phone "
             "lines in the logs%s\n",
             N_PEOPLE, keys, log_files, aof_files, journal_files, s_hits, patterns, s_found);
    ck_assert_int_gt (log_files, 0);
    ck_assert_int_gt (aof_files, 0);
    if (rec_path)
        ck_assert_int_gt (journal_files, 0);
    qp_test_rmtree (logs);
    qp_test_rmtree (redis_dir);
    qp_test_rmtree (journal);
    free (logs);
    free (redis_dir);
    free (journal);
    free (rec_path);
    if (JOURNAL_KNOWN_GAP && journal_hits) {
        fprintf (stderr,
                 "KNOWN GAP: %d marker hits in the journal (the identities of the "
                 "SubmitDossier inputs as recorded): see docs/reliability.md\n",
                 journal_hits);
        s_hits -= journal_hits;
    }
    ck_assert_msg (s_hits == 0, "personal data found:%s", s_found);
    ck_assert_int_eq (patterns, 0);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("privacy");
    TCase *tc = tcase_create ("privacy");
    tcase_set_timeout (tc, 300);
    tcase_add_test (tc, test_no_identity_leaves_intake);
    suite_add_tcase (s, tc);
    SRunner *sr = srunner_create (s);
    srunner_run_all (sr, CK_NORMAL);
    int failed = srunner_ntests_failed (sr);
    srunner_free (sr);
    return failed ? 1 : 0;
}
