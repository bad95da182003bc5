/* simscale.h: the at-scale simulator (tests/simscale) for the HyParView
 * manager and Plumtree broadcast cores, 10,000 nodes in one process.
 *
 * One virtual clock and one binary-heap event queue ordered by (time,
 * sequence); every node owns two rngs (manager, plumtree) seeded from the run
 * seed, and the network draws its latencies from a third: one seed fixes the
 * whole run. Links are simulated TCP connections kept per node in small
 * sorted arrays of references into a chunked link pool (no N x N table).
 * ACT_SEND buffers are unpacked (partisan_peer__peer_msg__unpack) when sent
 * over an up link and handed to the manager (Hv*, Leave) or to plumtree
 * (Gossip, IHave, Graft, Prune, Exchange) 1..10 ms later. The shell's wiring
 * is the daemon's: plumtree neighbors are the active-view members whose link
 * is up. Every node runs the real failure detector (daemon/core/fd.c, driven by
 * ss_fd.c): its Heartbeat and Silent messages travel the simulated links
 * and its DOWN closes a link. A crash stops a node at once and destroys its
 * cores; its links go silent (a host gone: the peers' detectors find it) or,
 * with fd_ms 0, close at once (kill -9). Nodes can be paused (no reads, no
 * ticks) and starved of CPU (rare ticks, reading only then).
 */
#ifndef PARTISAN_SIMSCALE_H
#define PARTISAN_SIMSCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "fd.h"
#include "node.h"
#include "manager.h"
#include "plumtree.h"

#define SS_TICK_MS    100 /* both cores tick every 100 ms, as in the daemon */
#define SS_LAT_MIN    1   /* one-way latency and connect time, uniform, ms */
#define SS_LAT_MAX    10
#define SS_ACTIVE_MAX 5
#define SS_CHUNK      4096 /* links per pool chunk */

struct ss_params {
	uint64_t seed;
	unsigned nodes;
	unsigned join_every_ms; /* one node joins every this many ms */
	unsigned fd_ms;         /* the detector's failure_timeout_ms; 0: a crash closes
	                         * its links at once */
	bool plumtree;          /* run a plumtree core on every node */
	bool full_mesh;         /* the full_mesh manager (a link to every member, the
	                         * detector's watch ring) instead of HyParView */
	unsigned shuffle_ms, promote_ms, lazy_ms, exchange_ms;
	size_t max_store;
};

/* Defaults of the daemon's configuration (failure_timeout_ms 2000, ...). */
void ss_params_default(struct ss_params *p, uint64_t seed, unsigned nodes);

enum ss_link_state { SS_NONE, SS_CONNECTING, SS_UP, SS_CLOSING, SS_BROKEN };

struct ss_link {
	uint32_t a, b;  /* ends, a < b */
	uint32_t gen;   /* unique per connection, for events scheduled on it */
	uint8_t state;  /* enum ss_link_state */
	uint8_t closer; /* CLOSING: end that closed (0: a, 1: b) */
	bool up[2];     /* each end's view: peer_up seen, no peer_down yet */
};

struct ss_ref {
	uint32_t peer, link; /* sorted by peer */
};

struct ss_node {
	struct node *node;   /* the node core (daemon/core/node.c), NULL once crashed */
	void *mgr;           /* node_manager(node): hyparview, NULL once crashed */
	struct plumtree *pt; /* node_plumtree(node): NULL without plumtree or once crashed */
	struct node_spec *spec;
	struct ss_ref *refs; /* this node's links */
	uint32_t nrefs, caprefs;
	uint32_t contact; /* joins through it once linked; itself: none */
	struct rng rng;
	bool alive, joined;
	bool paused;           /* reads and ticks nothing: events held */
	bool starved;          /* ticks every SS_STARVE ticks, reads only then */
	struct ss_event *held; /* what a paused or starved node has not read */
	uint32_t nheld, capheld;
};

#define SS_STARVE 3 /* a starved node's ticks are this many times rarer */

enum ss_ev_kind {
	SE_DELIVER,   /* msg arrives at to */
	SE_CONNECTED, /* a dial from -> to completes */
	SE_CLOSED,    /* from's graceful close reaches to */
};

/* Where an unpacked message lives: one block per message (more if it
 * outgrows it), freed at once; plain malloc under AddressSanitizer. */
struct ss_arena {
	struct ss_arena *next;
	size_t used, cap;
};

struct ss_event {
	uint64_t at, seq;
	PartisanPeer__PeerMsg *msg; /* SE_DELIVER, owned */
	struct ss_arena *arena;     /* msg's memory, or NULL: free_unpacked */
	uint32_t from, to, gen;
	uint8_t kind;
};

struct ss_bcast {
	uint64_t at;
	uint32_t origin, live; /* live nodes when sent */
	uint32_t got, dups;    /* first / repeated deliveries */
	uint32_t hops_max;
	uint64_t hops_sum;
	uint64_t gossip, catch_up; /* Gossip messages sent carrying it, catch-ups among them */
	uint8_t *seen;             /* bitmap of nodes that delivered */
};

/* What a message sent on an up link was, from the action and its body. */
enum ss_kind {
	SK_PROBE,      /* the detector's heartbeat request (ACT_F_PROBE) */
	SK_REPLY,      /* its heartbeat reply */
	SK_SILENT,     /* its Silent report */
	SK_MEMBERSHIP, /* the manager's: Membership, Digest, Leave, Hv* */
	SK_BROADCAST,  /* Plumtree's: Gossip, IHave, Graft, Prune, Exchange */
	SK_N
};

struct ss_counters {
	uint64_t sent, delivered, nolink, inflight, refused, undecodable, bad_action;
	uint64_t digest;             /* folds every event: same seed, same digest */
	uint64_t fd_msgs, fd_bytes;  /* the detector's Heartbeat and Silent messages */
	uint64_t fd_downs, fd_false; /* its DOWN verdicts; about a live, unpaused node */
	uint64_t kind_msgs[SK_N], kind_bytes[SK_N]; /* sends that went out, by kind */
};

struct ss_world {
	struct ss_params p;
	struct ss_node *nodes; /* p.nodes slots */
	uint32_t n;            /* nodes started */
	struct ss_link **chunks;
	uint32_t nchunks, nlinks; /* links ever allocated (pool high-water mark) */
	uint32_t *free_links;
	uint32_t nfree, capfree, live_links, gen;
	struct ss_event *heap;
	size_t nheap, capheap;
	uint64_t now, seq;
	struct rng net_rng;  /* latencies */
	struct rng pick_rng; /* contacts, crash victims, origins */
	struct ss_bcast *bc;
	size_t nbc, capbc;
	struct ss_counters c;
	unsigned nlive;
	struct actions **acts; /* one reusable list per nesting depth */
	size_t depth, nacts;
	long victim;           /* a node whose links ss_fd.c watches, or -1 */
	uint64_t *victim_down; /* per node: when its link to victim went down */
	uint32_t *crash_ix;    /* per node: 1 + its index among the tracked crashed, or 0 */
	uint32_t ncrash;       /* tracked crashed nodes */
	uint64_t *crash_down;  /* [node * ncrash + index]: when node's link to it went down */
};

/* ---- ss_heap.c ---- */
void ss_heap_push(struct ss_world *w, struct ss_event e);
struct ss_event ss_heap_pop(struct ss_world *w);

/* ---- ss_links.c ---- */
struct ss_link *ss_link_get(struct ss_world *w, uint32_t a, uint32_t b);
/* A new link a-b in state CONNECTING (none may exist). */
struct ss_link *ss_link_open(struct ss_world *w, uint32_t a, uint32_t b);
void ss_link_remove(struct ss_world *w, struct ss_link *l);
/* Which end of l node x is (0 or 1). */
unsigned ss_end(const struct ss_link *l, uint32_t x);
void ss_links_free(struct ss_world *w);
size_t ss_links_bytes(const struct ss_world *w);

/* ---- ss_world.c ---- */
struct ss_world *ss_world_new(const struct ss_params *p);
void ss_world_free(struct ss_world *w);
/* Start the next node; it joins through a random live earlier one. */
uint32_t ss_add_node(struct ss_world *w);
/* Advance the virtual clock by ms. */
void ss_run(struct ss_world *w, uint64_t ms);
/* Start every node, one per join_every_ms, then run settle_ms. */
void ss_build(struct ss_world *w, uint64_t settle_ms);
void ss_crash(struct ss_world *w, uint32_t i);
/* Crash pct % of the live nodes, chosen at random, all at once. */
unsigned ss_crash_fraction(struct ss_world *w, unsigned pct);
/* The same, remembering who: w->crash_ix and w->crash_down then record
 * when each live node's link to each of them goes down (ss_fd.c). */
unsigned ss_crash_tracked(struct ss_world *w, unsigned pct);
uint32_t ss_random_live(struct ss_world *w);
unsigned ss_live(const struct ss_world *w);
/* Broadcast from origin; returns its index in w->bc. */
size_t ss_broadcast(struct ss_world *w, uint32_t origin);
/* Node index of a name "nI@..." or -1. */
long ss_node_of(const struct ss_world *w, const char *name);

/* ---- ss_drive.c: the shell around the cores ---- */
void ss_act_peer_up(struct ss_world *w, uint32_t i, uint32_t other);
void ss_act_peer_down(struct ss_world *w, uint32_t i, uint32_t other);
/* An empty action list for a core call; ss_drain carries it out and
 * gives it back. */
struct actions *ss_acts(struct ss_world *w);
void ss_drain(struct ss_world *w, uint32_t i, struct actions *out);
void ss_receive(struct ss_world *w, uint32_t to, uint32_t from, const PartisanPeer__PeerMsg *msg);
void ss_tick_node(struct ss_world *w, uint32_t i);
/* Node i delivers a broadcast (its ACT_DELIVER). */
void ss_on_deliver(struct ss_world *w, uint32_t i, const struct action *a);

/* ---- ss_net.c: links and messages ---- */
void ss_net_connect(struct ss_world *w, uint32_t from, uint32_t to);
void ss_net_close(struct ss_world *w, uint32_t from, uint32_t to);
/* The body case of what went out on the up link, or -1 (no up link,
 * undecodable). */
int ss_net_send(struct ss_world *w, uint32_t from, uint32_t to, const uint8_t *buf, size_t len);
void ss_net_event(struct ss_world *w, struct ss_event *e);
void ss_net_crash_links(struct ss_world *w, uint32_t i);
/* Whether i's end of its link to j is up. */
bool ss_net_up(struct ss_world *w, uint32_t i, uint32_t j);
/* Node i reads what was held for it (paused, starved). */
void ss_net_release(struct ss_world *w, uint32_t i);
void ss_held_free(struct ss_node *nd);

/* ---- ss_fd.c: the links' side of the node core ---- */
void ss_fd_stop(struct ss_world *w, uint32_t i);
void ss_fd_link(struct ss_world *w, uint32_t i, uint32_t other, bool up);
void ss_fd_sent(struct ss_world *w, uint32_t from, uint32_t to);
/* What the shell tells the node of a frame before node_receive: heard, and
 * for a Silent report whether the node it names waits unread. */
void ss_fd_receive(struct ss_world *w, uint32_t to, uint32_t from,
                   const PartisanPeer__PeerMsg *msg);
/* Before node_tick: overdue nodes whose deliveries wait unread (held). */
void ss_fd_unread_scan(struct ss_world *w, uint32_t i);
/* A DOWN verdict of node i about node j (-1: unknown): close the link. */
void ss_fd_down(struct ss_world *w, uint32_t i, long j);
void ss_pause(struct ss_world *w, uint32_t i);
void ss_resume(struct ss_world *w, uint32_t i);
/* Free what an event still owns. */
void ss_event_free(struct ss_event *e);

/* ---- ss_metrics.c ---- */
#define SS_HIST (SS_ACTIVE_MAX + 2) /* active sizes 0..max, and "more" */

struct ss_overlay {
	unsigned live, largest, largest_mutual, components;
	unsigned amin, amax, hist[SS_HIST];
	double aavg;
	uint64_t edges, mutual, dead_edges; /* directed active entries */
	unsigned pmin, pmax;
	double pavg;
	unsigned pt_mismatch; /* nodes whose plumtree neighbors differ from the up active view */
};

void ss_overlay_measure(struct ss_world *w, struct ss_overlay *o);
void ss_overlay_print(const struct ss_overlay *o, unsigned passive_max);

struct ss_memory {
	unsigned nodes;
	size_t heap;     /* heap bytes in use for the world (delta from before it) */
	size_t sim;      /* the simulator's own structures */
	size_t plumtree; /* sum of plumtree_memory */
	size_t rss;      /* process resident set */
};

size_t ss_heap_in_use(void);
size_t ss_rss(void);
size_t ss_sim_bytes(const struct ss_world *w);
size_t ss_plumtree_bytes(const struct ss_world *w);

/* ---- the suite (ss_main.c, ss_tables.c, ...) ---- */
struct ss_opts {
	bool full;
	uint64_t seed;
	unsigned nodes, seeds, fd_ms, join_ms;
	unsigned jobs;        /* worker processes for the connectivity check */
	unsigned mesh_nodes;  /* the full-mesh scenario's size */
	const char *scenario; /* run only this one (NULL: the suite's) */
	bool nodes_set, seeds_set;
};

struct ss_tally {
	unsigned passed, failed;
};

/* Tables (a), (c) and (d) on the overlay of seed o->seed. */
void ss_test_tables(const struct ss_opts *o, struct ss_tally *t);
/* A single connected component on seeds seed .. seed + seeds - 1. */
void ss_test_components(const struct ss_opts *o, struct ss_tally *t);
/* Table (b). */
void ss_test_reliability(const struct ss_opts *o, struct ss_tally *t);
/* Table (e): the failure detector (ss_fdtest.c). */
void ss_test_detector(const struct ss_opts *o, struct ss_tally *t);
/* The full mesh (ss_mesh.c): formation, then 10 % crashed at once. */
void ss_test_mesh(const struct ss_opts *o, struct ss_tally *t);
/* The same seed twice gives the same run; another seed another one. */
void ss_test_determinism(const struct ss_opts *o, struct ss_tally *t);
/* Count a result: print PASS or FAIL with the test's name. */
void ss_verdict(struct ss_tally *t, bool ok, const char *name, double started);
/* A world of o->nodes nodes on seed, built, then run for that many shuffle
 * periods. */
struct ss_world *ss_make(const struct ss_opts *o, uint64_t seed, bool plumtree, unsigned shuffles);
double ss_wall(void);

#endif
