/* qp-evaluation: the programme's indicators, territory by territory. */
#include "evaluation.h"
#include "qp_log.h"

int main (int argc, char **argv)
{
    qp_common_config_t c = {0};
    bool rebuild = false, shard = true;
    long batch_events = 2048, event_pipe = 0;
    qp_config_option_t options[] = {
        QP_CONFIG_COMMON (&c),
        {"rebuild", QP_CFG_BOOL, "false",
         "recompute every counter from the dossiers stored in Redis, then exit", &rebuild, 0, 0},
        {"eval-shard", QP_CFG_BOOL, "true",
         "split the events with the other live instances (each counts its dossiers' events; "
         "false: every instance counts every event, each fact still once)",
         &shard, 0, 0},
        {"event-pipe", QP_CFG_INT, "4096",
         "events held in the receive pipe (about 1.3 KB each); a backlog beyond it is "
         "dropped there and read again from the outbox once the pipe is empty",
         &event_pipe, 100, 10000000},
        {"eval-batch-events", QP_CFG_INT, "2048",
         "events per batch (one apply script: Redis runs nothing else meanwhile)", &batch_events,
         1, 8192},
        {NULL}};
    int rc = qp_config_parse ("qp-evaluation",
                              "Evaluation: the programme's indicators from the event stream; "
                              "answers indicator and report queries, records territory phases.",
                              options, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    zsys_init ();
    qp_log_init ("evaluation", c.log_level);
    qp_redis_t *redis = qp_redis_connect (c.redis_host, (int) c.redis_port, 10000);
    evaluation_t *self = redis ? evaluation_new (redis, c.data_dir) : NULL;
    if (self)
        evaluation_set_batch_events (self, (size_t) batch_events);
    qp_service_t *service = NULL;
    rc = 1;
    if (self && rebuild) {
        long n = evaluation_rebuild (self);
        printf ("%ld dossiers counted\n", n);
        rc = n < 0 ? 1 : 0;
    } else if (self)
        service = qp_service_new ("evaluation", c.bus_work, c.bus_publish, c.bus_subscribe);
    if (service) {
        evaluation_attach (self, service);
        if (shard) /* in qp:eval:*, which the evaluation's ACL user may write */
            qp_service_shard_events (service, redis, "qp:eval:shards:", "evaluation");
        qp_service_watch_redis (service, redis);
        rc = qp_service_run (service);
        evaluation_flush (self);
    }
    qp_service_destroy (&service);
    evaluation_destroy (&self);
    qp_redis_destroy (&redis);
    qp_config_free (options);
    return rc;
}
