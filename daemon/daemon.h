/* daemon.h: the daemon's state, shared by its I/O modules (peer, ipc,
 * router) and the glue that drives the protocol cores. One instance. */
#ifndef PARTISAN_DAEMON_H
#define PARTISAN_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "arena.h"
#include "config.h"
#include "core.h"
#include "manager.h"
#include "strmap.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1);             \
	     (var) = (tvar))
#endif

struct event_base;
struct event;
struct pconn;
struct pnode;
struct node;
struct ipc;
struct metrics;
struct graph;
struct router;
struct transport_ops;
struct security;
struct ack_core;
struct causal_core;
struct plumtree;
struct session;
struct advertise_listener;

#define DAEMON_TICK_MS      100
#define DAEMON_CALL_RESULTS 32

struct chan_stats {
	uint64_t messages_in, messages_out, bytes_in, bytes_out;
};

struct daemon_stats {
	struct chan_stats *chan;            /* per channel, as cfg->channels */
	uint64_t messages_in, messages_out; /* app data frames over the network */
	uint64_t dropped_no_proc;           /* data for endpoints that did not exist */
	uint64_t dropped_monotonic;         /* shed on monotonic channels */
	uint64_t broadcasts_shed;           /* not queued to subscribers that do not read */
	uint64_t peer_frames_bad;           /* peer connections closed for bad input */
	uint64_t pending_evicted; /* links before their hello closed for max_pending_connections */
	uint64_t hello_timeouts;  /* accepted links closed: no hello within hello_timeout_ms */
	uint64_t accept_pauses;   /* accepting paused: out of descriptors */
	uint64_t states_capped;   /* membership states refused: over max_members */
	uint64_t state_pushes_dropped; /* membership states dropped: over max_state_pushes_per_s */
	uint64_t bytes_in, bytes_out;  /* framed bytes on peer links */
	uint64_t conns_opened;         /* peer connections whose hello completed */
	uint64_t conns_failed;         /* dials that failed or closed before their hello */
	uint64_t calls[DAEMON_CALL_RESULTS]; /* calls made here, by result (an ipc error code) */
};

struct daemon {
	const struct config *cfg;
	struct event_base *base;
	struct node_spec *self;         /* with the ports actually bound */
	char actor[320];                /* NAME/INCARNATION for the membership set */
	uint64_t incarnation;           /* the actor's INCARNATION: realtime us at (re)start */
	struct node *node;              /* the node's protocol (core/node.h) */
	const struct manager_ops *mops; /* node_ops(node), node_manager(node): */
	void *mgr;                      /* read them, feed the node */
	struct rng rng;
	struct actions acts;
	struct strmap nodes;       /* name -> struct pnode */
	struct strmap partitions;  /* injected: node -> ref (owned string) */
	TAILQ_HEAD(, pconn) conns; /* every peer connection */
	struct evconnlistener **listeners;
	size_t nlisteners;
	struct advertise_listener *bound; /* per listen address: what was bound */
	struct event *tick_ev;
	uint64_t start_ms;
	uint64_t ticks;
	uint64_t turn;                      /* read callbacks run so far: a frame written first in
	                                     * its turn goes straight to the socket, the rest of the
	                                     * turn's frames queue for one writev */
	struct arena peer_arena, ipc_arena; /* for decoding one frame */
	struct evbuffer *splice;            /* a big payload passing through (splice.h) */
	bool peer_scan;                     /* peer.c: some node needs a look at the next tick */
	uint64_t peer_ticks;
	unsigned dialing;          /* peer.c: outbound handshakes in progress */
	unsigned pending_in;       /* link.c: accepted links before their hello */
	struct event *accept_ev;   /* peer.c: ends a pause of accepting (accept_backoff_ms) */
	bool accept_paused;        /* peer.c: out of descriptors, the listeners rest */
	unsigned accept_pauses;    /* peer.c: pauses since the last line about them */
	uint64_t accept_logged_ms; /* peer.c: when that line was logged */
	struct strmap refusals;    /* peer.c: who -> struct peer_refusal_rec, log rate limit */
	bool stopped;              /* this node left or was removed */
	struct strmap mstatus;     /* member -> struct member_status (daemon.c) */
	struct security *sec;      /* security.c: how links are protected */
	const struct transport_ops *transport;
	void *transport_ctx; /* given to the transport's dial and accept */
	struct ipc *ipc;
	struct metrics *metrics; /* metrics.c; NULL without metrics.listen */
	struct graph *graph;     /* graph.c: pending partisanctl graph requests */
	struct router *router;
	struct ack_core *ack;       /* acknowledged delivery */
	struct causal_core *causal; /* causal order per label */
	struct plumtree *plumtree;  /* node_plumtree(node): broadcast, for stats */
	struct daemon_stats stats;
	uint64_t cur_conn;          /* id of the peer connection being read, or 0 */
	struct session *cur_sender; /* the local session sending, or NULL */
};

/* Set d up for cfg (which must outlive it): bind the peer listeners and the
 * IPC socket, create the manager and the cores, seeded with seed. Returns
 * 0, or -1 after logging why. Call daemon_close() either way. */
int daemon_open(struct daemon *d, const struct config *cfg, uint64_t seed);
/* Close every connection, remove the IPC socket, free everything. */
void daemon_close(struct daemon *d);
/* The manager for a peer_service_manager, or NULL when not built in. */
const struct manager_ops *daemon_manager_for(enum manager_kind k);

/* Monotonic milliseconds. */
uint64_t daemon_now_ms(void);
/* Wall-clock milliseconds (Unix time), for what is shown to people. */
uint64_t daemon_realtime_ms(void);
/* Append msg to out as one frame (length, then the message), packed in place
 * in the queue: no copy; returns the frame's length. Aborts only when out of
 * memory, as xmalloc. */
struct evbuffer;
struct bufferevent;
size_t daemon_frame_add(struct evbuffer *out, const ProtobufCMessage *msg);
/* Read up to cap more bytes into bev's input now, if the last read filled
 * libevent's small bite (see daemon.c). */
void daemon_read_more(struct bufferevent *bev, size_t cap);
/* The core environment for now. */
struct core_env daemon_env(struct daemon *d);
/* Carry out (and clear) every action the cores queued in d->acts. */
void daemon_drain(struct daemon *d);

/* The periodic tick, in this order: the node core (failure detection, the
 * manager, Plumtree: node_tick), the peer layer (dialling, stuck
 * handshakes), the IPC server (join deadlines), the router (ack, registry,
 * call deadlines); every action they queue is carried out before it
 * returns. */
void daemon_tick(struct daemon *d, uint64_t now);

/* Called by the peer layer. */
void daemon_node_up(struct daemon *d, const struct node_spec *spec);
void daemon_node_down(struct daemon *d, const char *node, const char *reason);
/* A post-hello message from node. Returns -1 with *why to close the link. */
int daemon_peer_msg(struct daemon *d, const char *node, const PartisanPeer__PeerMsg *msg,
                    const char **why);
/* Data from node whose payload was split out into big (splice.h): true
 * when it was plain data for an endpoint here, which got big's bytes
 * moved, not copied; false, doing nothing, otherwise. */
bool daemon_peer_data_big(struct daemon *d, const char *node, const PartisanPeer__Data *data,
                          struct evbuffer *big);
/* A link to node finished its hello (one more channel connected). */
void daemon_link_up(struct daemon *d, const char *node);

/* A member's status as this node sees it (SPEC: members), and since when
 * (monotonic ms). A node never heard of is down since the start. */
enum member_state { MEMBER_ALIVE, MEMBER_SUSPECT, MEMBER_DOWN, MEMBER_LEFT };
enum member_state daemon_member_status(struct daemon *d, const char *node, uint64_t *since_ms);
const char *daemon_member_state_name(enum member_state st);
/* Has this node ever had news of node (a link, a membership event)? */
bool daemon_member_known(struct daemon *d, const char *node);
/* The nodes seen leaving (and not back since); free() the array only. */
size_t daemon_left(struct daemon *d, const char ***out);

/* Start the manager afresh: a membership of this node alone, with a new
 * incarnation. */
void daemon_reset_manager(struct daemon *d);

/* A peer connection's output drained: senders paused on it may go on. */
void daemon_peer_drained(struct daemon *d);

/* Broadcast topics starting "$partisan:" carry the daemons' own news. */
bool daemon_topic_internal(const char *topic);
void daemon_internal_broadcast(struct daemon *d, const char *topic, const char *origin,
                               const uint8_t *payload, size_t len);

/* Membership operations for the control plane. */
void daemon_join_spec(struct daemon *d, const struct node_spec *spec);
/* sync_join: is the join through contact done (every channel to it up; in
 * HyParView, some neighbor linked)? */
bool daemon_joined(struct daemon *d, const char *contact);
int daemon_leave(struct daemon *d, const char *node, const char **why);

#endif
