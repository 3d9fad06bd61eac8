/* qp-record: the recorder service; every message the bus routes, into a journal. */
#include "qp_config.h"
#include "qp_health.h"
#include "qp_log.h"
#include "recorder.h"
#include <signal.h>

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    char *journal = NULL, *fsync_name = NULL;
    long segment_mb = 0, fsync_ms = 0;
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"journal", QP_CFG_STRING, "journal", "journal directory (created if absent)", &journal, 0,
         0},
        {"segment-mb", QP_CFG_INT, "64", "rotate segments at this size (MiB)", &segment_mb, 1,
         4096},
        {"fsync", QP_CFG_STRING, "interval", "never|interval|always", &fsync_name, 0, 0},
        {"fsync-interval-ms", QP_CFG_INT, "1000", "fdatasync period with --fsync interval",
         &fsync_ms, 1, 3600000},
        {NULL},
    };
    int rc = qp_config_parse ("qp-record",
                              "The recorder: appends every message of the bus's capture tap to "
                              "a journal (qp-journal reads it, qp-replay replays it).",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    int fsync = qp_journal_fsync_parse (fsync_name);
    if (fsync < 0) {
        fprintf (stderr, "qp-record: --fsync: '%s' is not never, interval or always\n", fsync_name);
        qp_config_free (options);
        return 2;
    }
    zsys_init ();
    zsys_set_linger (0);
    qp_log_init ("record", c.log_level);
    /* A file size limit (RLIMIT_FSIZE) is an I/O error to report, not a kill. */
    signal (SIGXFSZ, SIG_IGN);
    /* Probes for compose and Kubernetes: up before the journal opens, so that a journal
     * that cannot be opened shows as not ready rather than as no answer. */
    bool probes = c.http && *c.http && qp_health_start (c.http) >= 0;
    if (probes)
        qp_health_check ("journal", false);
    recorder_config_t rcfg = {.capture = c.bus_capture,
                              .stay_on_error = probes,
                              .journal = {.dir = journal,
                                          .segment_bytes = (uint64_t)segment_mb << 20,
                                          .fsync = (qp_journal_fsync_t)fsync,
                                          .fsync_interval_ms = (int)fsync_ms}};
    char err[512];
    recorder_t *recorder = recorder_new (&rcfg, 5000, err, sizeof err);
    rc = 1;
    if (!recorder)
        qp_log_error ("recorder_failed", "%s", err);
    else
        rc = recorder_run (recorder, NULL);
    /* Liveness and readiness come from the loop (recorder.c); ready once the journal is
     * open, and the loop ticks at least every 100 ms. */
    qp_health_stop ();
    recorder_destroy (&recorder);
    qp_config_free (options);
    return rc;
}
