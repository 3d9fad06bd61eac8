/* qp-intake: validates and stores submissions, answers status queries, takes follow-ups. */
#include "intake.h"
#include "qp_config.h"
#include "qp_log.h"
#include <sodium.h>
#include <string.h>

#define REDIS_CONNECT_MS 10000

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    char *territories = NULL, *pepper = NULL;
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"territories", QP_CFG_STRING, NULL,
         "Quartiers Productifs territories JSON file (unset: every dossier hors-programme)",
         &territories, 0, 0},
        {"person-pepper", QP_CFG_STRING, INTAKE_DEV_PEPPER,
         "secret keying the person-key hash (the default is a public development value)",
         &pepper, 0, 0},
        {NULL},
    };
    int rc = qp_config_parse ("qp-intake", "Intake: validates, stores and hands on dossiers.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    zsys_set_linger (0);
    qp_log_init ("intake", c.log_level);
    if (sodium_init () < 0) {
        qp_log_error ("sodium_init", "libsodium cannot start");
        qp_config_free (options);
        return 1;
    }
    if (!pepper || !*pepper || !strcmp (pepper, INTAKE_DEV_PEPPER))
        qp_log_warn ("development_pepper",
                     "person keys use the public development pepper: set QP_PERSON_PEPPER");

    /* The zones before Redis: a broken file stops the start at once, with its line. */
    char path[1024];
    snprintf (path, sizeof path, "%s/" INTAKE_ZONES_FILE, c.data_dir);
    qp_error_t err;
    intake_zones_t *zones = intake_zones_load (path, &err);
    if (!zones) {
        qp_log_error ("zones_invalid", "%s: not starting (locations cannot be checked)",
                      err.message);
        qp_config_free (options);
        return 1;
    }
    qp_log_info ("zones_loaded", "%zu territory zones valid from %s, from %s",
                 intake_zones_count (zones), intake_zones_valid_from (zones), path);
    qp_redis_t *redis = qp_redis_connect (c.redis_host, (int) c.redis_port, REDIS_CONNECT_MS);
    if (!redis) {
        intake_zones_destroy (&zones);
        qp_config_free (options);
        return 1;
    }
    intake_t *intake = intake_new (redis, pepper);
    intake_use_zones (intake, &zones);
    intake_load_territories (intake, territories);
    qp_service_t *service = qp_service_new ("intake", c.bus_work, c.bus_publish, NULL);
    if (!service) {
        intake_destroy (&intake);
        qp_redis_destroy (&redis);
        qp_config_free (options);
        return 1;
    }
    intake_attach (intake, service);
    qp_service_watch_redis (service, redis);
    qp_service_run (service);
    qp_service_destroy (&service);
    intake_destroy (&intake);
    qp_redis_destroy (&redis);
    qp_config_free (options);
    return 0;
}
