/* The bus protocol (QPB/1) and a client for it.
 *
 * The bus (services/bus) is the only process that binds. Peers connect a DEALER to the
 * work endpoint (services) or to the partner endpoint (partner components) and speak:
 *
 *   peer -> bus   ["QPB1", "READY", service]             register / heartbeat as a worker
 *                 ["QPB1", "BYE", service]               leave
 *                 ["QPB1", "SEND", service, type, env]   to exactly one worker of service
 *                 ["QPB1", "REPLY", peer-id, type, env]  to one peer (answer to a DELIVER)
 *                 ["QPB1", "STATUS"]                     ask for the routing table (JSON)
 *   bus -> peer   ["QPB1", "DELIVER", from-id, type, env]
 *                 ["QPB1", "ERROR", code, detail]        the bus could not route a frame set
 *                 ["QPB1", "STATUS", json]
 *
 * Events: publishers connect a PUB to the publish endpoint (XSUB), subscribers a SUB to the
 * subscribe endpoint (XPUB); frames are [type, env] and subscriptions are type prefixes.
 * Capture: the bus republishes every routed message on the capture endpoint as
 * [seq (8 bytes big endian), origin ("work"|"partner"|"event"), type, env]. */
#ifndef QP_BUS_H
#define QP_BUS_H
#include <czmq.h>
#include <stdbool.h>

#define QPB_PROTOCOL "QPB1"
#define QPB_READY "READY"
#define QPB_BYE "BYE"
#define QPB_SEND "SEND"
#define QPB_REPLY "REPLY"
#define QPB_STATUS "STATUS"
#define QPB_DELIVER "DELIVER"
#define QPB_ERROR "ERROR"

#define QPB_HEARTBEAT_MS 1000
#define QPB_WORKER_EXPIRY_MS 3500 /* a worker silent this long leaves routing */
#define QPB_HWM 200000

/* Sets the options every bus socket uses (high-water marks, linger). */
void qp_bus_socket_defaults (zsock_t *sock);

typedef struct qp_bus_client qp_bus_client_t;

/* CURVE for the clients this process connects to endpoint from now on: the client's key
 * pair (a zcert secret file, e.g. "keys/BPIFRANCE.cert_secret") and the server's public
 * certificate ("keys/bus.cert"). Returns 0, or -1 when a file cannot be read (the paths are
 * logged, never the keys). */
int qp_bus_curve_client (const char *endpoint, const char *client_cert, const char *server_cert);

/* Connects a DEALER to endpoint (work or partner). NULL on a bad endpoint. */
qp_bus_client_t *qp_bus_client_new (const char *endpoint);
void qp_bus_client_destroy (qp_bus_client_t **self_p);
zsock_t *qp_bus_client_socket (qp_bus_client_t *self);

/* Sends READY for the service now; qp_bus_client_heartbeat repeats it. */
int qp_bus_client_ready (qp_bus_client_t *self, const char *service);
void qp_bus_client_heartbeat (qp_bus_client_t *self);
void qp_bus_client_bye (qp_bus_client_t *self);

/* Takes the frames [type][env] (and nulls the caller's pointer). */
int qp_bus_client_send (qp_bus_client_t *self, const char *service, zmsg_t **frames_p);
int qp_bus_client_reply (qp_bus_client_t *self, zframe_t *to, zmsg_t **frames_p);

/* A frame set from the bus. kind is QPB_DELIVER, QPB_ERROR or QPB_STATUS. */
typedef struct {
    char kind[16];
    zframe_t *from;      /* DELIVER: sender peer id */
    zframe_t *type;      /* DELIVER: type frame */
    zframe_t *envelope;  /* DELIVER: envelope frame */
    char *error_code;    /* ERROR */
    char *text;          /* ERROR detail / STATUS json */
} qp_bus_frame_t;

/* Receives one frame set (blocking unless a poller said it is ready). Returns 0, or -1 on
 * interrupt or a frame set that does not follow QPB/1 (logged, dropped). */
int qp_bus_client_recv (qp_bus_client_t *self, qp_bus_frame_t *out);
void qp_bus_frame_clear (qp_bus_frame_t *f);

/* Asks the bus for its routing table (JSON text, caller frees) within timeout_ms. */
char *qp_bus_status (const char *work_endpoint, int timeout_ms);
#endif
