/* The bus protocol (QPB/1) and a client for it.
 *
 * The bus (services/bus) is the only process that binds. Peers connect a DEALER to the
 * work endpoint (services) or to the partner endpoint (partner components) and speak:
 *
 *   peer -> bus   ["QPB1", "READY", service]             register / heartbeat as a worker
 *                 ["QPB1", "READY", service, window]     the same, flow controlled (below)
 *                 ["QPB1", "CREDIT", service, n]         n work messages handled (below)
 *                 ["QPB1", "BYE", service]               leave
 *                 ["QPB1", "SEND", service, type, env]   to exactly one worker of service
 *                 ["QPB1", "REPLY", peer-id, type, env]  to one peer (answer to a DELIVER)
 *                 ["QPB1", "STATUS"]                     ask for the routing table (JSON)
 *   bus -> peer   ["QPB1", "DELIVER", from-id, type, env]
 *                 ["QPB1", "WORK", from-id, type, env]   work, to a flow-controlled worker
 *                 ["QPB1", "ERROR", code, detail]        the bus could not route a frame set
 *                 ["QPB1", "STATUS", json]
 *
 * Flow control (credit): a worker that announces a window (decimal, 1..QPB_WINDOW_MAX) with
 * its READY gets its work as WORK instead of DELIVER, and at most window WORK frame sets it
 * has not returned as CREDIT; the rest waits in the bus's queue of the service. Replies to
 * the worker's own requests stay DELIVERs and take no credit. The bus caps what comes back
 * at what it sent (a bus restart forgets the worker: old credits cannot inflate it). A
 * READY without a window (older peers, the Python partner) gets everything at once.
 *
 * Events: publishers connect a PUB to the publish endpoint (XSUB), subscribers a SUB to the
 * subscribe endpoint (XPUB); frames are [type, env] and subscriptions are type prefixes.
 * Capture: the bus republishes every routed message on the capture endpoint as
 * [seq (8 bytes big endian), origin ("work"|"partner"|"event"), type, env, destination];
 * the endpoint is an XPUB and nothing is copied for it while nobody subscribes. */
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
#define QPB_CREDIT "CREDIT"
#define QPB_WORK "WORK"

#define QPB_HEARTBEAT_MS 1000
#define QPB_WORKER_EXPIRY_MS 3500 /* a worker silent this long leaves routing */
#define QPB_HWM 200000
#define QPB_WINDOW_DEFAULT 512 /* one burst of qp_service (BURST_MAX) */
#define QPB_WINDOW_MAX 65536

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

/* The window of flow-controlled workers: QP_BUS_WINDOW from the environment (0: no flow
 * control), else QPB_WINDOW_DEFAULT; a bad value is logged and the default used. */
long qp_bus_window (void);
/* Opts in to flow control with this window (0: off) for the READYs sent from now on.
 * The caller then calls qp_bus_client_done once per frame set received with work set. */
void qp_bus_client_window (qp_bus_client_t *self, long window);
/* One work frame set handled: its credit goes back to the bus, in batches of a quarter
 * of the window (so the bus always has work on its way while credits travel). */
void qp_bus_client_done (qp_bus_client_t *self);
/* Sends the credit not returned yet now (the heartbeat does too). */
void qp_bus_client_credit (qp_bus_client_t *self);

/* Takes the frames [type][env] (and nulls the caller's pointer). */
int qp_bus_client_send (qp_bus_client_t *self, const char *service, zmsg_t **frames_p);
int qp_bus_client_reply (qp_bus_client_t *self, zframe_t *to, zmsg_t **frames_p);

/* A frame set from the bus. kind is QPB_DELIVER, QPB_ERROR or QPB_STATUS; a WORK frame
 * set comes as QPB_DELIVER with work set (it took credit: qp_bus_client_done). */
typedef struct {
    char kind[16];
    bool work;           /* DELIVER: work under flow control */
    zframe_t *from;      /* DELIVER: sender peer id */
    zframe_t *type;      /* DELIVER: type frame */
    zframe_t *envelope;  /* DELIVER: envelope frame */
    char *error_code;    /* ERROR */
    char *text;          /* ERROR detail / STATUS json */
} qp_bus_frame_t;

/* Receives one frame set (blocking unless a poller said it is ready). Returns 0, or -1 on
 * interrupt or a frame set that does not follow QPB/1 (logged, dropped). */
int qp_bus_client_recv (qp_bus_client_t *self, qp_bus_frame_t *out);
/* The same without waiting: 1 when no frame set is there. Reading until 1 costs libzmq
 * one look at its command mailbox (a poll and a getpid) per burst, where asking
 * ZMQ_EVENTS before each read costs them per frame set. */
int qp_bus_client_recv_nowait (qp_bus_client_t *self, qp_bus_frame_t *out);
void qp_bus_frame_clear (qp_bus_frame_t *f);

/* Asks the bus for its routing table (JSON text, caller frees) within timeout_ms. */
char *qp_bus_status (const char *work_endpoint, int timeout_ms);
#endif
