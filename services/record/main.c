/* qp-record: the recorder service; every message the bus routes, into a journal. */
#include "qp_config.h"
#include "qp_health.h"
#include "qp_log.h"
#include <limits.h>
#include "recorder.h"

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
    recorder_config_t rcfg = {.capture = c.bus_capture,
                              .journal = {.dir = journal,
                                          .segment_bytes = (uint64_t)segment_mb << 20,
                                          .fsync = (qp_journal_fsync_t)fsync,
                                          .fsync_interval_ms = (int)fsync_ms}};
    char err[512];
    recorder_t *recorder = recorder_new (&rcfg, 5000, err, sizeof err);
    rc = 1;
    if (!recorder)
        qp_log_error ("recorder_failed", "%s", err);
    else {
        /* Probes for compose and Kubernetes: ready once the journal is open. The loop
         * (recorder.c) does not tick, so liveness means "answers HTTP": no stall limit. */
        if (c.http && *c.http && qp_health_start (c.http) >= 0) {
            qp_health_set_stall_ms (INT_MAX);
            qp_health_check ("journal", true);
        }
        rc = recorder_run (recorder, NULL);
        qp_health_stop ();
    }
    recorder_destroy (&recorder);
    qp_config_free (options);
    return rc;
}
