/* Damaged journals through the real tools: a flipped byte, a truncated last record, an
 * unknown message type. Each is found and reported with its offset; `qp-journal verify`
 * fails; `qp-replay --dry-run` stops at it, or with --on-bad skip reports it and goes on;
 * nothing crashes. And `qp-replay diff` tells a changed decision with its dossier and
 * field. */
#include "qp_journal.h"
#include "qp_test.h"
#include "qp_test_suite.h"
#include <check.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define N 12

static char *s_root;

static void s_setup (void)
{
    s_root = qp_test_tmpdir ("replay-damage");
    ck_assert_ptr_nonnull (s_root);
}

static void s_teardown (void)
{
    qp_test_rmtree (s_root);
    free (s_root);
}

/* A journal of N SubmitDossier inputs; record `unknown` (if >= 0) gets a type no one
 * knows. Returns the byte position of each record in positions. */
static char *s_journal (const char *name, int unknown, long positions[N])
{
    char *dir;
    ck_assert_int_gt (asprintf (&dir, "%s/%s", s_root, name), 0);
    qp_journal_config_t c = {.dir = dir};
    char err[256];
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    ck_assert_msg (w != NULL, "%s", err);
    long pos = QP_JOURNAL_SEGMENT_HEADER;
    for (int i = 0; i < N; i++) {
        Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
        Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
        char key[32];
        snprintf (key, sizeof key, "damage-%d", i);
        d.channel = "test-damage";
        d.channel_key = key;
        d.submitted_on = "2025-05-05";
        s.dossier = &d;
        qp_meta_t meta = {.discriminator = key, .event_time_ms = 1746403200000};
        zmsg_t *m = qp_message_build (&s.base, &meta, NULL);
        zframe_t *type = zmsg_first (m), *env = zmsg_next (m);
        const char *t = i == unknown ? "qp.v1.NoSuchMessage" : (const char *)zframe_data (type);
        size_t tl = i == unknown ? strlen (t) : zframe_size (type);
        positions[i] = pos;
        ck_assert_int_eq (qp_journal_append_message (w, QP_ORIGIN_WORK, (uint64_t)i + 1,
                                                     1000000 + i, t, tl, "intake", 6,
                                                     zframe_data (env), zframe_size (env)),
                          i);
        pos += QP_JOURNAL_FRAME + QP_JOURNAL_BODY_HEADER + (long)tl + 6 + (long)zframe_size (env);
        zmsg_destroy (&m);
    }
    qp_journal_writer_close (&w);
    return dir;
}

static char *s_segment (const char *dir)
{
    char *p;
    ck_assert_int_gt (asprintf (&p, "%s/%020d.qpj", dir, 0), 0);
    return p;
}

/* Runs a tool to its end; returns its exit status, stdout+stderr in *out (malloc'd). */
static int s_run (const char *tool, const char *const *args, char **out)
{
    char *stdout_text, *stderr_text;
    int status = qp_test_run (tool, NULL, args, 60000, &stdout_text, &stderr_text);
    ck_assert_msg (status >= 0, "%s did not finish", tool);
    ck_assert_int_ge (asprintf (out, "%s%s", stdout_text, stderr_text), 0);
    free (stdout_text);
    free (stderr_text);
    return status;
}

static void s_expect (const char *tool, const char *const *args, int status, const char *needle)
{
    char *out;
    int got = s_run (tool, args, &out);
    ck_assert_msg (got == status, "%s %s: exit %d, expected %d:\n%s", tool, args[0], got, status,
                   out);
    ck_assert_msg (!needle || strstr (out, needle), "%s %s: no '%s' in:\n%s", tool, args[0], needle,
                   out);
    free (out);
}

START_TEST (test_intact_journal_verifies)
{
    long pos[N];
    char *dir = s_journal ("intact", -1, pos);
    s_expect ("journal", (const char *[]){"verify", dir, NULL}, 0, "ok: 12 records");
    s_expect ("replay", (const char *[]){"--dry-run", dir, NULL}, 0, "would send 12 inputs");
    s_expect ("journal", (const char *[]){"cat", dir, NULL}, 0, "\"channel_key\":\"damage-11\"");
    free (dir);
}
END_TEST

START_TEST (test_flipped_byte)
{
    long pos[N];
    char *dir = s_journal ("flipped", -1, pos);
    char *seg = s_segment (dir);
    int fd = open (seg, O_RDWR);
    unsigned char b;
    ck_assert_int_eq (pread (fd, &b, 1, pos[5] + 60), 1);
    b ^= 0x01;
    ck_assert_int_eq (pwrite (fd, &b, 1, pos[5] + 60), 1);
    close (fd);
    s_expect ("journal", (const char *[]){"verify", dir, NULL}, 1, "offset 5: crc_mismatch");
    s_expect ("replay", (const char *[]){"--dry-run", dir, NULL}, 1, "offset 5: crc_mismatch");
    s_expect ("replay", (const char *[]){"--dry-run", "--on-bad", "skip", dir, NULL}, 0,
              "would send 11 inputs");
    free (seg);
    free (dir);
}
END_TEST

START_TEST (test_truncated_last_record)
{
    long pos[N];
    char *dir = s_journal ("truncated", -1, pos);
    char *seg = s_segment (dir);
    ck_assert_int_eq (truncate (seg, pos[N - 1] + 20), 0);
    s_expect ("journal", (const char *[]){"verify", dir, NULL}, 1, "offset 11: truncated");
    s_expect ("replay", (const char *[]){"--dry-run", dir, NULL}, 1, "offset 11: truncated");
    s_expect ("replay", (const char *[]){"--dry-run", "--on-bad", "skip", dir, NULL}, 0,
              "would send 11 inputs");
    free (seg);
    free (dir);
}
END_TEST

START_TEST (test_unknown_type)
{
    long pos[N];
    char *dir = s_journal ("unknown", 3, pos);
    s_expect ("journal", (const char *[]){"verify", dir, NULL}, 1, "offset 3: unknown_type");
    s_expect ("replay", (const char *[]){"--dry-run", dir, NULL}, 1, "offset 3: unknown_type");
    s_expect ("replay", (const char *[]){"--dry-run", "--on-bad", "skip", dir, NULL}, 0,
              "would send 11 inputs");
    s_expect ("journal", (const char *[]){"cat", dir, NULL}, 1, "offset 3: unknown_type");
    free (dir);
}
END_TEST

/* Two journals with one DossierClosed each; the second differs in final_state. */
static char *s_decision_journal (const char *name, Qp__V1__DossierState state)
{
    char *dir;
    ck_assert_int_gt (asprintf (&dir, "%s/%s", s_root, name), 0);
    qp_journal_config_t c = {.dir = dir};
    char err[256];
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    for (int i = 0; i < 3; i++) {
        Qp__V1__DossierClosed d = QP__V1__DOSSIER_CLOSED__INIT;
        char id[40];
        snprintf (id, sizeof id, "d%031d", i);
        d.dossier_id = id;
        d.has_final_state = true;
        d.final_state = i == 1 ? state : QP__V1__DOSSIER_STATE__FUNDED;
        qp_meta_t meta = {.correlation_id = id, .discriminator = id, .event_time_ms = 5};
        zmsg_t *m = qp_message_build (&d.base, &meta, NULL);
        zframe_t *type = zmsg_first (m), *env = zmsg_next (m);
        qp_journal_append_message (w, QP_ORIGIN_EVENT, (uint64_t)i + 1, i,
                                   (const char *)zframe_data (type), zframe_size (type), "", 0,
                                   zframe_data (env), zframe_size (env));
        zmsg_destroy (&m);
    }
    qp_journal_writer_close (&w);
    return dir;
}

START_TEST (test_diff_names_dossier_and_field)
{
    char *a = s_decision_journal ("a", QP__V1__DOSSIER_STATE__FUNDED);
    char *same = s_decision_journal ("same", QP__V1__DOSSIER_STATE__FUNDED);
    char *b = s_decision_journal ("b", QP__V1__DOSSIER_STATE__DECLINED);
    s_expect ("replay", (const char *[]){"diff", a, same, NULL}, 0, "identical: 3 decisions");
    char want[160];
    snprintf (want, sizeof want, "dossier d%031d: DossierClosed", 1);
    s_expect ("replay", (const char *[]){"diff", a, b, NULL}, 1, want);
    s_expect ("replay", (const char *[]){"diff", a, b, NULL}, 1,
              "payload.final_state: \"FUNDED\" vs \"DECLINED\"");
    free (a);
    free (same);
    free (b);
}
END_TEST

int main (void)
{
    Suite *s = suite_create ("replay_damage");
    TCase *tc = tcase_create ("damage");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_intact_journal_verifies);
    tcase_add_test (tc, test_flipped_byte);
    tcase_add_test (tc, test_truncated_last_record);
    tcase_add_test (tc, test_unknown_type);
    tcase_add_test (tc, test_diff_names_dossier_and_field);
    suite_add_tcase (s, tc);
    return qp_test_run_suite (s);
}
