/* qp-bench-replay: figures for record and replay (prints, asserts nothing).
 *   1. recorder: the real qp-bus and qp-record; events are published into the bus as fast
 *      as one publisher can (faster than the pipeline makes them); how many the recorder
 *      wrote, and its gap records (target: no gap).
 *   2. journal write and read: records of a real SubmitDossier envelope (~0.5 KiB);
 *      records per second (target: read >= 500,000/s).
 * Usage: qp-bench-replay [--smoke] [--json FILE] */
#include "bench_support.h"
#include "qp_journal.h"
#include <czmq.h>

/* A SubmitDossier envelope of realistic size. */
static zmsg_t *s_sample (int i)
{
    Qp__V1__SubmitDossier s = QP__V1__SUBMIT_DOSSIER__INIT;
    Qp__V1__Dossier d = QP__V1__DOSSIER__INIT;
    Qp__V1__ProjectHolder h = QP__V1__PROJECT_HOLDER__INIT;
    Qp__V1__Business b = QP__V1__BUSINESS__INIT;
    Qp__V1__Project p = QP__V1__PROJECT__INIT;
    char key[32];
    snprintf (key, sizeof key, "bench-%08d", i);
    d.channel = "bench";
    d.channel_key = key;
    d.submitted_on = "2025-05-05";
    h.person_key = "0123456789abcdef0123456789abcdef0123456789abcdef";
    h.residence_qpv = "QN05981M";
    b.insee_commune = "59512";
    b.naf_code = "47.11B";
    b.legal_form = "5499";
    b.siret = "73282932000074";
    p.has_amount_asked_cents = true, p.amount_asked_cents = 1000000;
    p.has_financing_need_cents = true, p.financing_need_cents = 4000000;
    d.holder = &h, d.business = &b, d.project = &p;
    s.dossier = &d;
    qp_meta_t meta = {.discriminator = key, .event_time_ms = 1746403200000};
    return qp_message_build (&s.base, &meta, NULL);
}

typedef struct {
    long published;
    double publish_s;
    long recorded, gaps, missing;
} recorder_figures_t;

static void s_bench_recorder (const char *build, const char *root, long n, recorder_figures_t *f)
{
    char ep[5][48], bus[512], rec[512], journal[512];
    for (int i = 0; i < 5; i++)
        snprintf (ep[i], sizeof ep[i], "tcp://127.0.0.1:%d", bench_free_port ());
    snprintf (bus, sizeof bus, "%s/services/qp-bus", build);
    snprintf (rec, sizeof rec, "%s/services/qp-record", build);
    snprintf (journal, sizeof journal, "%s/recorded", root);
    char *bus_argv[] = {bus,   "--bus-work",      ep[0], "--bus-partner", ep[1], "--bus-publish",
                        ep[2], "--bus-subscribe", ep[3], "--bus-capture", ep[4], NULL};
    pid_t bus_pid = bench_spawn (bus_argv, NULL, "/dev/null");
    zclock_sleep (300);
    char *rec_argv[] = {rec, "--bus-capture", ep[4], "--journal", journal, NULL};
    pid_t rec_pid = bench_spawn (rec_argv, NULL, "/dev/null");
    zclock_sleep (800); /* connected and subscribed (it logs recorder_started) */

    /* Events flow only toward a subscriber (XPUB/XSUB forward subscriptions). */
    zsock_t *sub = zsock_new_sub (ep[3], "");
    zsock_t *pub = zsock_new (ZMQ_PUB);
    zsock_set_sndhwm (pub, 0);
    zsock_connect (pub, "%s", ep[2]);
    zclock_sleep (300);
    zmsg_t *sample = s_sample (1);
    double t0 = bench_now ();
    for (long i = 0; i < n; i++) {
        zmsg_t *m = zmsg_dup (sample);
        zmsg_send (&m, pub);
    }
    f->publish_s = bench_now () - t0;
    f->published = n;
    zmsg_destroy (&sample);
    zclock_sleep (1500); /* let the tap drain into the recorder */
    zsock_destroy (&pub);
    zsock_destroy (&sub);
    bench_stop (rec_pid);
    bench_stop (bus_pid);

    char err[600];
    qp_journal_reader_t *r = qp_journal_reader_open (journal, err, sizeof err);
    qp_journal_record_t rr;
    qp_journal_problem_t p;
    while (r && qp_journal_reader_next (r, &rr, &p) == 1) {
        if (rr.kind == QP_JOURNAL_GAP) {
            f->gaps++;
            f->missing += (long)rr.gap_count;
        } else
            f->recorded++;
    }
    qp_journal_reader_close (&r);
}

int main (int argc, char **argv)
{
    bool smoke = false;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--smoke"))
            smoke = true;
        else if (!strcmp (argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
    }
    const char *build = getenv ("QP_BUILD_DIR") ? getenv ("QP_BUILD_DIR") : "build";
    zsys_init ();
    zsys_set_linger (100);
    char root[] = "/tmp/qp-bench-replay-XXXXXX";
    if (!mkdtemp (root))
        return 1;

    /* 2. journal write and read */
    long n = smoke ? 100000 : 2000000;
    char dir[600], err[600];
    snprintf (dir, sizeof dir, "%s/journal", root);
    qp_journal_config_t c = {.dir = dir, .fsync = QP_JOURNAL_FSYNC_INTERVAL};
    qp_journal_writer_t *w = qp_journal_writer_open (&c, NULL, err, sizeof err);
    zmsg_t *sample = s_sample (7);
    zframe_t *type = zmsg_first (sample), *env = zmsg_next (sample);
    size_t env_size = zframe_size (env);
    double t0 = bench_now ();
    for (long i = 0; i < n; i++)
        qp_journal_append_message (w, QP_ORIGIN_WORK, (uint64_t)i + 1, 1000 + i,
                                   (const char *)zframe_data (type), zframe_size (type), "intake",
                                   6, zframe_data (env), env_size);
    qp_journal_writer_close (&w);
    double write_s = bench_now () - t0;
    zmsg_destroy (&sample);
    qp_journal_reader_t *r = qp_journal_reader_open (dir, err, sizeof err);
    qp_journal_record_t rec;
    qp_journal_problem_t p;
    long read = 0;
    uint64_t sum = 0;
    t0 = bench_now ();
    while (qp_journal_reader_next (r, &rec, &p) == 1) {
        read++;
        sum += rec.envelope_size;
    }
    double read_s = bench_now () - t0;
    qp_journal_reader_close (&r);

    /* 1. recorder behind the bus */
    recorder_figures_t f = {0};
    s_bench_recorder (build, root, smoke ? 20000 : 300000, &f);

    double write_rate = (double)n / write_s, read_rate = (double)read / read_s;
    double pub_rate = (double)f.published / f.publish_s;
    printf ("record and replay (%s)\n", smoke ? "smoke" : "full");
    printf ("  %-44s %14s %14s\n", "figure", "measured", "target");
    printf ("  %-44s %14.0f %14s\n", "journal write, records/s (envelope bytes)", write_rate, "-");
    printf ("  %-44s %14.0f %14s\n", "journal read, records/s", read_rate, ">= 500000");
    printf ("  %-44s %14.0f %14s\n", "journal read, MB/s", (double)sum / read_s / 1e6, "-");
    printf ("  %-44s %14.0f %14s\n", "events published into the bus, /s", pub_rate, "-");
    printf ("  %-44s %14ld %14ld\n", "recorded by qp-record", f.recorded, f.published);
    printf ("  %-44s %14ld %14s\n", "gap records (messages missing)", f.gaps, "0");
    printf ("  %-44s %14ld %14s\n", "messages missing", f.missing, "0");
    printf ("  envelope size %zu bytes; %ld records read\n", env_size, read);
    if (json) {
        FILE *o = fopen (json, "w");
        if (o) {
            fprintf (o,
                     "{\"smoke\":%s,\"envelope_bytes\":%zu,\"journal_write_per_s\":%.0f,"
                     "\"journal_read_per_s\":%.0f,\"journal_read_target_per_s\":500000,"
                     "\"bus_events_published_per_s\":%.0f,\"published\":%ld,\"recorded\":%ld,"
                     "\"gaps\":%ld,\"missing\":%ld,\"gaps_target\":0}\n",
                     smoke ? "true" : "false", env_size, write_rate, read_rate, pub_rate,
                     f.published, f.recorded, f.gaps, f.missing);
            fclose (o);
        }
    }
    char cmd[700];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system (cmd) != 0)
        fprintf (stderr, "qp-bench-replay: could not remove %s\n", root);
    return 0;
}
