/* router.h: endpoints, registered names, message delivery, monitors and
 * calls. Local deliveries skip the network; remote ones become peer Data
 * frames on the channel asked for. */
#ifndef PARTISAN_ROUTER_H
#define PARTISAN_ROUTER_H

#include "daemon.h"
#include "ipc.h"

/* The internal broadcast topic of registry records (router_registry_news). */
#define ROUTER_TOPIC_REGISTRY "$partisan:registry"

int router_init(struct daemon *d);
void router_free(struct daemon *d);

void router_session_open(struct session *s);
/* killed: the client vanished without a clean close. */
void router_session_close(struct session *s, bool killed);

/* Request handlers (the ipc dispatch table points here). */
void router_register(struct session *s, const PartisanIpc__Request *rq);
void router_unregister(struct session *s, const PartisanIpc__Request *rq);
void router_whereis(struct session *s, const PartisanIpc__Request *rq);
void router_send(struct session *s, const PartisanIpc__Request *rq);
/* A send whose payload was split out of its frame into big (splice.h):
 * false, doing nothing, unless it is a plain send to another node, which
 * then goes out with big's bytes moved, not copied. */
bool router_send_big(struct session *s, const PartisanIpc__Request *rq, struct evbuffer *big);
void router_call(struct session *s, const PartisanIpc__Request *rq);
void router_reply(struct session *s, const PartisanIpc__Request *rq);
void router_monitor(struct session *s, const PartisanIpc__Request *rq);
void router_demonitor(struct session *s, const PartisanIpc__Request *rq);
void router_monitor_node(struct session *s, const PartisanIpc__Request *rq);
void router_monitor_nodes(struct session *s, const PartisanIpc__Request *rq);
void router_registry(struct session *s, const PartisanIpc__Request *rq);
void router_subscribe(struct session *s, const PartisanIpc__Request *rq);
void router_unsubscribe(struct session *s, const PartisanIpc__Request *rq);
void router_broadcast(struct session *s, const PartisanIpc__Request *rq);
/* A broadcast to deliver here (the node core's ACT_DELIVER): to the
 * subscribed sessions, or to the daemon for its own topics. */
void router_broadcast_deliver(struct daemon *d, const char *topic, const char *origin,
                              const uint8_t *payload, size_t len);

/* Status: this node's endpoints. */
size_t router_endpoints(struct daemon *d, PartisanIpc__Endpoint ***out);
void router_endpoints_free(PartisanIpc__Endpoint **v, size_t n);

/* From the peer layer and cores. */
/* Data from node `from` whose payload was split out into big: false, doing
 * nothing, unless it is plain data for an endpoint here, which then gets it
 * with big's bytes moved, not copied. */
bool router_data_big(struct daemon *d, const char *from, const PartisanPeer__Data *data,
                     struct evbuffer *big);
int router_peer_msg(struct daemon *d, const char *from, const PartisanPeer__PeerMsg *m,
                    const char **why);
void router_node_up(struct daemon *d, const char *node);
void router_node_down(struct daemon *d, const char *node, const char *reason);
void router_tick(struct daemon *d, uint64_t now);
/* node left the membership: what is outstanding to it is lost; say so. */
void router_member_removed(struct daemon *d, const char *node);
/* node left the cluster (news from the overlay). */
void router_node_left(struct daemon *d, const char *node);
/* A registry broadcast arrived (a packed peer Registry). */
void router_registry_news(struct daemon *d, const uint8_t *payload, size_t len);
/* A session's output drained below its bound: resume what was paused. */
void router_session_drained(struct session *s);
/* A peer link drained: resume sessions paused on a full link. */
void router_resume_senders(struct daemon *d);

#endif
