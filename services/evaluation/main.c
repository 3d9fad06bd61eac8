/* qp-evaluation: the programme's indicators, territory by territory. */
#include "evaluation.h"
#include "qp_log.h"

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    qp_config_option_t options[] = {QP_CONFIG_COMMON (&c), {NULL}};
    int rc = qp_config_parse ("qp-evaluation",
                              "Evaluation: counts dossiers per territory and state, answers reports.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    qp_log_init ("evaluation", c.log_level);
    evaluation_t self = {0};
    self.redis = qp_redis_connect (c.redis_host, (int) c.redis_port, 10000);
    if (self.redis)
        self.service = qp_service_new ("evaluation", c.bus_work, c.bus_publish, c.bus_subscribe);
    rc = 1;
    if (self.service) {
        evaluation_register (&self);
        rc = qp_service_run (self.service);
    }
    qp_service_destroy (&self.service);
    qp_redis_destroy (&self.redis);
    qp_config_free (options);
    return rc;
}
