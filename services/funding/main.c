/* qp-funding: reserves money in budget envelopes and asks the partner agencies. */
#include "funding.h"
#include "qp_log.h"

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    funding_t self = {0};
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"max-attempts", QP_CFG_INT, "6",
         "requests (or routing tries) per leg before the leg fails (timeouts and backoff: "
         "data/funding.json)",
         &self.max_attempts, 1, 1000},
        {NULL},
    };
    int rc = qp_config_parse ("qp-funding",
                              "Funding orchestration: envelopes in Redis, partner decisions.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    qp_log_init ("funding", c.log_level);

    char path[1024];
    snprintf (path, sizeof path, "%s/catalogue", c.data_dir);
    qp_error_t err;
    self.catalogue = qp_catalogue_load (path, &err);
    if (!self.catalogue)
        qp_log_error ("catalogue_broken", "%s", err.message);
    else if (funding_check_catalogue (self.catalogue, &err) != 0) {
        qp_log_error (err.code, "%s", err.message);
        qp_catalogue_destroy (&self.catalogue);
    }
    self.redis = self.catalogue ? qp_redis_connect (c.redis_host, (int) c.redis_port, 10000) : NULL;
    rc = 1;
    snprintf (path, sizeof path, "%s/funding.json", c.data_dir);
    bool configured = self.redis && funding_load_config (&self, path, &err) == 0;
    if (self.redis && !configured)
        qp_log_error ("funding_config_broken", "%s", err.message);
    snprintf (path, sizeof path, "%s/envelopes.json", c.data_dir);
    if (configured && funding_load_envelopes (&self, path, &err) != 0)
        qp_log_error ("envelopes_broken", "%s", err.message);
    else if (configured)
        self.service = qp_service_new ("funding", c.bus_work, c.bus_publish, NULL);
    if (self.service) {
        funding_register (&self);
        qp_service_watch_redis (self.service, self.redis);
        rc = qp_service_run (self.service);
        funding_flush (&self); /* the last burst read before the signal */
    }
    qp_service_destroy (&self.service);
    qp_redis_destroy (&self.redis);
    qp_catalogue_destroy (&self.catalogue);
    funding_clear (&self);
    qp_config_free (options);
    return rc;
}
