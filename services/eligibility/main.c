/* qp-eligibility: decides which aid schemes each dossier can get, and why. */
#include "eligibility.h"
#include "qp_log.h"

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    qp_config_option_t options[] = {QP_CONFIG_COMMON (&c), {NULL}};
    int rc = qp_config_parse ("qp-eligibility",
                              "Eligibility: decides every catalogue scheme for each dossier.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    qp_log_init ("eligibility", c.log_level);

    eligibility_t self = {0};
    char dir[1024];
    snprintf (dir, sizeof dir, "%s/catalogue", c.data_dir);
    qp_error_t err;
    self.catalogue_dir = dir;
    self.catalogue = qp_catalogue_load (dir, &err);
    if (!self.catalogue)
        qp_log_error ("catalogue_broken", "%s", err.message);
    self.redis = self.catalogue ? qp_redis_connect (c.redis_host, (int) c.redis_port, 10000) : NULL;
    self.service = self.redis ? qp_service_new ("eligibility", c.bus_work, c.bus_publish, NULL) : NULL;
    rc = 1;
    if (self.service) {
        eligibility_register (&self);
        rc = qp_service_run (self.service);
    }
    qp_service_destroy (&self.service);
    qp_redis_destroy (&self.redis);
    qp_catalogue_destroy (&self.catalogue);
    qp_config_free (options);
    return rc;
}
