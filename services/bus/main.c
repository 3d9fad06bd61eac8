/* qp-bus: binds the well-known endpoints; every other program connects. */
#include "bus.h"
#include "qp_config.h"
#include "qp_log.h"

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    long queue_max = 0, event_pipe = 0;
    char *curve_dir = NULL;
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"queue-max", QP_CFG_INT, "1000000", "messages kept per service while it has no worker",
         &queue_max, 1, 100000000},
        {"event-pipe", QP_CFG_INT, "10000",
         "events held for each subscriber that does not keep up (about 1.3 KB each); beyond "
         "it the subscriber's events are dropped (the evaluation reads them from the outbox)",
         &event_pipe, 100, 10000000},
        {"curve-dir", QP_CFG_STRING, "",
         "CURVE on the partner endpoint: directory made by qp-keygen (bus.cert_secret, "
         "agencies/*.cert); empty: no CURVE",
         &curve_dir, 0, 0},
        {NULL},
    };
    int rc = qp_config_parse ("qp-bus", "The message bus: routes work, fans out events, captures.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    zsys_set_linger (0);
    qp_log_init ("bus", c.log_level);
    qp_bus_server_config_t bc = {c.bus_work, c.bus_partner, c.bus_publish, c.bus_subscribe,
                                 c.bus_capture, queue_max, event_pipe,
                                 curve_dir && *curve_dir ? curve_dir : NULL};
    qp_bus_server_t *bus = qp_bus_server_new (&bc);
    if (!bus) {
        qp_config_free (options);
        return 1;
    }
    qp_log_info ("bus_started", "work %s, partner %s, publish %s, subscribe %s, capture %s",
                 c.bus_work, c.bus_partner, c.bus_publish, c.bus_subscribe, c.bus_capture);
    qp_bus_server_run (bus);
    qp_bus_server_destroy (&bus);
    qp_config_free (options);
    return 0;
}
