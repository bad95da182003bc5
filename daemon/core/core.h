/* core.h: the seam between pure protocol cores and their drivers.
 *
 * A core is given the time and its randomness (struct core_env) and appends
 * what it wants done to an action list; it never touches a socket, the clock
 * or a global. The daemon's I/O shell and the simulator (tests/sim) drain the
 * same actions, one for real and one on a virtual network.
 */
#ifndef PARTISAN_CORE_H
#define PARTISAN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.pb-c.h"
#include "nodespec.h"
#include "xmalloc.h"

/* xoshiro256** seeded PRNG: deterministic for a seed. */
struct rng {
	uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

struct core_env {
	uint64_t now_ms; /* monotonic milliseconds */
	struct rng *rng;
};

enum action_kind {
	ACT_SEND,       /* send buf (a packed PeerMsg) to node on channel */
	ACT_CONNECT,    /* keep connections to spec open (idempotent) */
	ACT_DISCONNECT, /* close every connection to node */
	ACT_EVENT,      /* tell the shell something happened */
	ACT_DOWN,       /* node.c: the detector's verdict: take node down (close its
	                 * links both ways), text says why */
	ACT_DELIVER,    /* node.c: a broadcast for subscribers here: topic in text,
	                 * origin in node, payload in buf, hops */
	ACT_LOG,        /* node.c: a line for the log at level: text */
};

/* ACT_SEND flags. */
#define ACT_F_NOW                                                                                  \
	1u             /* a detector message: straight to the socket, ahead of                     \
	                * queued data, on the default channel */
#define ACT_F_PROBE 2u /* a heartbeat request (the shell may time its reply) */

enum core_level { CORE_DEBUG, CORE_INFO, CORE_NOTICE, CORE_WARNING };

enum core_event {
	EV_MEMBER_ADDED,   /* node joined the membership */
	EV_MEMBER_REMOVED, /* node left the membership */
	EV_SELF_REMOVED,   /* this node was removed: stop taking part */
	EV_VIEW_CHANGED,   /* overlay views changed (hyparview) */
	EV_MEMBER_LEFT,    /* node.c: news that node left the cluster (text: from whom) */
	EV_STATE_REFUSED,  /* node pushed a membership state over max_members: not merged */
};

struct action {
	enum action_kind kind;
	char *node;             /* SEND, DISCONNECT, EVENT: node name (owned) */
	struct node_spec *spec; /* CONNECT: the node to reach (owned) */
	uint8_t *buf;           /* SEND: packed PeerMsg (owned) */
	size_t len;
	const char *channel; /* SEND: channel name, NULL for default (not owned: static) */
	uint8_t *key;        /* SEND: partition key or NULL (owned) */
	size_t keylen;
	enum core_event event; /* EVENT */
	char *text;            /* DOWN, DELIVER, LOG, EVENT (MEMBER_LEFT) (owned) */
	unsigned flags;        /* SEND: ACT_F_* */
	uint32_t hops;         /* DELIVER */
	enum core_level level; /* LOG */
};

struct actions {
	struct action *v;
	size_t n, cap;
};

void actions_init(struct actions *a);
/* Free every action's owned memory and empty the list. */
void actions_clear(struct actions *a);
void actions_free(struct actions *a);
/* Pack msg and queue it for node. */
void actions_send(struct actions *a, const char *node, const char *channel,
                  const PartisanPeer__PeerMsg *msg);
/* Same, with a partition key that picks the connection. */
void actions_send_key(struct actions *a, const char *node, const char *channel, const void *key,
                      size_t keylen, const PartisanPeer__PeerMsg *msg);
/* Queue an already packed PeerMsg (copied). */
void actions_send_raw(struct actions *a, const char *node, const char *channel, const uint8_t *buf,
                      size_t len, const void *key, size_t keylen);
void actions_connect(struct actions *a, const struct node_spec *spec);
void actions_disconnect(struct actions *a, const char *node);
void actions_event(struct actions *a, enum core_event ev, const char *node);
/* The action just queued (the list must not be empty). */
struct action *actions_last(struct actions *a);
/* node.c's: queue a DOWN, a DELIVER (payload copied), a LOG (printf). */
void actions_down(struct actions *a, const char *node, const char *why);
void actions_deliver(struct actions *a, const char *topic, const char *origin,
                     const uint8_t *payload, size_t len, uint32_t hops);
void actions_log(struct actions *a, enum core_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The first of the n sorted elements (each sz bytes) at base for which
 * cmp(element, key) >= 0, or n: where key is, or would be inserted. */
size_t lower_bound(const void *base, size_t n, size_t sz, const void *key,
                   int (*cmp)(const void *element, const void *key));

#endif
