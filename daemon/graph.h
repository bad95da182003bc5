/* graph.h: the cluster's links for `partisanctl graph`: this node's, and
 * those of every node it is linked to, asked over the link. */
#ifndef PARTISAN_GRAPH_H
#define PARTISAN_GRAPH_H

#include "daemon.h"
#include "ipc.h"

/* The IPC Graph request: answered once the nodes asked reply, or after a
 * second with what came. */
void graph_request(struct session *s, const PartisanIpc__Request *rq);
/* A GraphQuery (answered) or GraphReport from node from. */
int graph_peer_msg(struct daemon *d, const char *from, const PartisanPeer__PeerMsg *m);
/* Answer requests whose wait is over. */
void graph_tick(struct daemon *d, uint64_t now);
void graph_free(struct daemon *d);

#endif
