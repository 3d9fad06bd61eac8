/* qp-eligibility: decides which aid schemes each dossier can get, and why. */
#include "eligibility.h"
#include "qp_log.h"

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    eligibility_t self = {0};
    char *contours = NULL, *list = NULL;
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"qpv-contours", QP_CFG_STRING, NULL,
         "official QPV contours (ANCT GeoJSON); unset: declared QPV codes only, not verified",
         &contours, 0, 0},
        {"qpv-list", QP_CFG_STRING, NULL, "official QPV list (listeqp CSV), optional", &list, 0,
         0},
        /* Both sides of a boundary street count as inside (bofip 10167-PGP). */
        {"qpv-tolerance-m", QP_CFG_DOUBLE, "20",
         "distance to a QPV boundary that still counts as inside (metres)", &self.tolerance_m, 0,
         0},
        {NULL},
    };
    int rc = qp_config_parse ("qp-eligibility",
                              "Eligibility: decides every catalogue scheme for each dossier.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    qp_log_init ("eligibility", c.log_level);

    char dir[1024];
    snprintf (dir, sizeof dir, "%s/catalogue", c.data_dir);
    qp_error_t err;
    self.catalogue_dir = dir;
    self.catalogue = qp_catalogue_load (dir, &err);
    if (!self.catalogue)
        qp_log_error ("catalogue_broken", "%s", err.message);
    self.qpv_contours = contours;
    self.qpv_list = list;
    if (self.catalogue && contours && *contours && eligibility_load_qpv (&self, &err) != 0)
        qp_catalogue_destroy (&self.catalogue); /* do not start on broken contours */
    self.redis = self.catalogue ? qp_redis_connect (c.redis_host, (int) c.redis_port, 10000) : NULL;
    self.service = self.redis ? qp_service_new ("eligibility", c.bus_work, c.bus_publish, NULL) : NULL;
    rc = 1;
    if (self.service) {
        eligibility_register (&self);
        qp_service_watch_redis (self.service, self.redis);
        rc = qp_service_run (self.service);
        eligibility_flush (&self); /* the last burst read before the signal */
    }
    qp_service_destroy (&self.service);
    qp_redis_destroy (&self.redis);
    qp_catalogue_destroy (&self.catalogue);
    qp_qpv_destroy (&self.qpv);
    qp_config_free (options);
    return rc;
}
