/* node.h: one node's protocol, as one pure core (node.c). It owns the peer
 * service manager, Plumtree and the failure detector, and composes them as
 * the daemon and both simulators run them: which core sees which peer
 * message (one table), which sees a link going up or down, the order of
 * the ticks, and what each core's events mean to the others.
 *
 * Inputs: a link up or down, a peer message from a linked node, a tick, the
 * shell's observations (a frame heard from or sent to a node, bytes from a
 * node waiting unread), and the control plane's requests (join, leave,
 * broadcast). Output: one action list (core.h), carried out by the shell
 * once per callback: sends, dials, disconnects, membership events, a node
 * the detector takes down, a broadcast to deliver here, a line to log. It
 * reads no clock, touches no socket and logs nothing itself.
 *
 * The router's messages (Data, Ack, Monitor, Registry, ...) are not the
 * node's yet: node_receive says so and the shell hands them to the router. */
#ifndef PARTISAN_NODE_H
#define PARTISAN_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "fd.h"
#include "manager.h"
#include "plumtree.h"

struct node;

struct node_params {
	const char *self;            /* this node's name (copied) */
	unsigned failure_timeout_ms; /* the detector's timeout; 0: no detector (a
	                              * node is down when its links close) */
	bool fd_ring;                /* every member linked to every other (full_mesh):
	                              * watch ring neighbours only (fd.h) */
	bool broadcast;              /* run Plumtree */
	uint64_t epoch;              /* distinct per start: broadcast ids never repeat */
	unsigned lazy_tick_ms, exchange_tick_ms;
	size_t broadcast_store; /* broadcasts kept for Graft and Exchange */
};

/* The internal broadcast topic for "this node left the cluster". */
#define NODE_TOPIC_LEFT "$partisan:left"

/* NULL for an invalid self. The manager comes with node_set_manager. */
struct node *node_create(const struct node_params *p);
void node_destroy(struct node *nd);
/* (Re)start the manager: a membership of this node alone (mp->self). */
void node_set_manager(struct node *nd, const struct manager_ops *ops,
                      const struct manager_params *mp);

/* The cores, for status and metrics (read only: change them through the
 * node's inputs). */
const struct manager_ops *node_ops(const struct node *nd);
void *node_manager(const struct node *nd);
struct plumtree *node_plumtree(const struct node *nd); /* NULL without broadcast */
const struct fd *node_fd(const struct node *nd);

/* ---- the shell's observations (the hot path: no actions) ---- */

/* The detector's record of a node the shell knows, created on first use;
 * the handle stays valid until node_forget. */
struct fd_node *node_peer(struct node *nd, const char *name);
void node_forget(struct node *nd, struct fd_node *p);
/* A frame came from it / something of ours went to it. */
void node_heard(struct fd_node *p, uint64_t now);
void node_sent(struct fd_node *p, uint64_t now);
/* Nodes the next tick would time out: the ones worth asking the links
 * about. *out is the detector's, valid until its next call. */
size_t node_overdue(struct node *nd, uint64_t now, struct fd_node ***out);
/* At now, bytes from p wait unread on its links (life, for this now). */
void node_unread(struct fd_node *p, uint64_t now);

/* ---- inputs that act ---- */

/* A node's links are up (spec as its hello said) / all gone. */
void node_link_up(struct node *nd, const struct node_spec *spec, const struct core_env *env,
                  struct actions *out);
void node_link_down(struct node *nd, const char *name, const struct core_env *env,
                    struct actions *out);
bool node_link_is_up(const struct node *nd, const char *name);

#define NODE_NOT_MINE 1 /* node_receive: the router's message */

/* A post-hello message from a linked node. 0; NODE_NOT_MINE; or -1 with
 * *why (static) for a message to refuse (the shell closes that link). */
int node_receive(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                 const struct core_env *env, struct actions *out, const char **why);

/* The periodic tick, in this order: after a tick far later than due
 * (failure_timeout / 2: this process was paused) every node counts as heard
 * now; the failure detector (timeouts, suspicions, heartbeat rounds); the
 * manager (gossip, shuffles, promotions); Plumtree (IHave, grafts,
 * exchanges). Returns true when a heartbeat round began (the shell then
 * looks at every node's links). */
bool node_tick(struct node *nd, const struct core_env *env, struct actions *out);

/* ---- the control plane ---- */

void node_join(struct node *nd, const struct node_spec *spec, const struct core_env *env,
               struct actions *out);
/* Remove node from the cluster; node == self: leave (with a partial view,
 * the departure news goes over the overlay first). */
void node_leave(struct node *nd, const char *node, const struct core_env *env, struct actions *out);
/* Originate a broadcast (delivered here too: an ACT_DELIVER). */
void node_broadcast(struct node *nd, const char *topic, const uint8_t *payload, size_t len,
                    const struct core_env *env, struct actions *out);

#endif
