/* sim.h: the deterministic simulator's world (tests/sim).
 *
 * N virtual nodes, each running a peer service manager core (manager.h) with
 * its own seeded rng, on one virtual clock. Events (message deliveries,
 * connection set-ups and tear-downs, ticks) sit in one priority queue ordered
 * by (time, sequence number), so a seed fixes the whole run. The network
 * carries the ACT_SEND buffers of the cores over simulated links and injects
 * the faults of struct sim_opts: drops, duplicates, delays (which reorder),
 * partitions, crashes and restarts.
 *
 * Links model TCP connections between two nodes: a link is set up after a
 * connect delay (both ends get peer_up), carries messages only while up, and
 * is torn down gracefully (ACT_DISCONNECT: what was sent before still
 * arrives, then the other end gets peer_down) or aborted (crash, partition:
 * in-flight messages are lost, both live ends get peer_down at once).
 *
 * Every live node also runs the real failure detector (daemon/core/fd.c, driven
 * by sim_fd.c): its heartbeats and Silent reports are messages on these
 * links, and its DOWN closes a link. A node can be paused (it reads and
 * ticks nothing) or starved of CPU (it wakes rarely, and reads only then).
 */
#ifndef PARTISAN_SIM_H
#define PARTISAN_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "fd.h"
#include "node.h"
#include "manager.h"

#define SIM_ACTIVE_MAX 5 /* hyparview active view size given to managers */

/* A manager the simulator can run, chosen by name. */
struct sim_manager {
	const char *name;
	const struct manager_ops *ops;
	bool full_mesh;        /* full membership and a link to every member; else
	                        * members() is a partial view (see sim_check.c) */
	double idle_max_bytes; /* bound on idle gossip, bytes per node per second */
};

const struct sim_manager *sim_manager_find(const char *name);

struct sim_opts {
	uint64_t seed;
	const struct sim_manager *mgr;
	unsigned capacity;                   /* node slots */
	unsigned gossip_interval_ms;         /* manager_params.gossip_interval_ms */
	unsigned fanout;                     /* manager_params.fanout */
	unsigned drop_ppm;                   /* per-message drop probability, parts per million */
	unsigned dup_ppm;                    /* per-message duplication probability */
	unsigned delay_min_ms, delay_max_ms; /* one-way message delay, uniform */
	unsigned connect_min_ms, connect_max_ms; /* connection set-up time, uniform */
	const char *trace;                       /* node name or "all": trace it (sim_trace.c) */
};

/* Fill o with a clean network: no faults, 1..5 ms delays, full_mesh. */
void sim_opts_default(struct sim_opts *o, uint64_t seed, unsigned capacity);

/* Counters, per node or summed over the world. */
struct sim_stats {
	uint64_t sent, bytes;   /* ACT_SEND actions (whatever became of them) */
	uint64_t delivered;     /* receive() calls */
	uint64_t drop_fault;    /* dropped by the seeded fault */
	uint64_t drop_nolink;   /* sent on a link that was not up */
	uint64_t drop_inflight; /* lost in flight (link aborted) */
	uint64_t duplicated;    /* extra copies injected */
	uint64_t refused;       /* receive() returned -1 */
	uint64_t undecodable;   /* a buffer that did not unpack */
	uint64_t connects, connect_fail;
	uint64_t fd_msgs, fd_bytes; /* the failure detector's Heartbeat and Silent messages */
	uint64_t fd_downs;          /* its DOWN verdicts */
	uint64_t fd_false;          /* of which about a node alive and not paused */
};

enum sim_ev_kind {
	SE_DELIVER,   /* a message arrives at to */
	SE_CONNECTED, /* a connection attempt from -> to completes (or fails) */
	SE_CLOSED,    /* a graceful close reaches the far end (to) */
	SE_TICK,      /* manager tick on node to */
};

struct sim_event {
	uint64_t at, seq;
	enum sim_ev_kind kind;
	unsigned from, to;
	uint32_t gen; /* link generation at scheduling time */
	unsigned inc; /* TICK: incarnation; CONNECTED: 1 when the address was right */
	uint8_t *buf; /* DELIVER: packed PeerMsg (owned) */
	size_t len;
};

/* Binary min-heap of events by (at, seq). */
struct sim_queue {
	struct sim_event *v;
	size_t n, cap;
	uint64_t seq;
};

void simq_push(struct sim_queue *q, struct sim_event *e); /* takes e->buf */
/* Pop the earliest event at or before until; false when there is none. */
bool simq_pop(struct sim_queue *q, uint64_t until, struct sim_event *out);
void simq_free(struct sim_queue *q);

enum sim_link_state { LINK_NONE, LINK_CONNECTING, LINK_UP, LINK_CLOSING };

/* The connection between nodes a < b; side 0 is a, side 1 is b. */
struct sim_link {
	uint8_t state;  /* enum sim_link_state */
	uint8_t closer; /* CLOSING: the side that closed */
	bool up[2];     /* that side's manager had peer_up and no peer_down since */
	uint32_t gen;   /* bumped whenever the link goes back to NONE */
};

struct sim_node {
	char name[48];
	struct node_spec *spec; /* current spec (owned) */
	struct node *node;      /* the node core (daemon/core/node.c); NULL unless alive */
	void *mgr;              /* node_manager(node), NULL unless alive */
	struct rng rng;
	unsigned inc;         /* incarnation, 1 on first start */
	bool alive;           /* started and not crashed */
	bool removed;         /* EV_SELF_REMOVED seen this incarnation */
	bool joined;          /* join() called this incarnation */
	int contact;          /* join pending through this node, or -1 */
	unsigned contact_inc; /* the contact's incarnation when join() was called */
	int group;            /* partition group */
	struct sim_stats st;
	bool paused;            /* SIGSTOP-like: reads and ticks nothing (events held) */
	bool mute;              /* one-way cut: what it sends is lost, links stay up */
	unsigned tick_ms;       /* SIM_TICK_MS, or longer when starved of CPU */
	bool starved;           /* reads only when it ticks (events held until then) */
	struct sim_event *held; /* paused or starved: what it has not read yet */
	size_t nheld, capheld;
};

struct sim_world {
	struct sim_opts o;
	uint64_t now;
	struct rng rng; /* network faults and scenario choices */
	struct sim_queue q;
	struct sim_node *nodes;
	unsigned n;             /* slots in use (started at least once) */
	struct sim_link *links; /* triangular: pair (a < b) at b*(b-1)/2 + a */
	struct sim_stats st;    /* world-wide counters not tied to a sender */
	const char *refused_why;
	int slow_from, slow_to; /* a one-way delay: what slow_from sends to slow_to (-1: none) */
	unsigned slow_ms;       /* arrives this much later (sim_net.c) */
	uint64_t slow_downs;    /* DOWN verdicts of slow_to about slow_from */
	uint64_t slow_down_at;  /* when the first of them came (0: none yet) */
	int victim;             /* a node whose link state sim_fd.c records, or -1 */
	uint64_t *victim_down;  /* per node: when its link to victim went down (0: not) */
	uint64_t *victim_up;    /* per node: when its link to victim came up (0: not) */
};

struct sim_world *sim_create(const struct sim_opts *o);
void sim_destroy(struct sim_world *w);

/* Start node slot i (i == w->n, or a crashed node: then a restart with a new
 * incarnation, on a new port if new_port); it joins through contact (-1: it
 * starts a cluster of its own). */
void sim_start(struct sim_world *w, unsigned i, int contact, bool new_port);
/* Crash node i: its manager is destroyed, its links abort. */
void sim_crash(struct sim_world *w, unsigned i);
/* node i calls leave(name of node target). */
void sim_leave(struct sim_world *w, unsigned i, unsigned target);
/* Nodes in different groups cannot talk: links across abort. */
void sim_partition(struct sim_world *w, const int *group);
void sim_heal(struct sim_world *w);
/* Process every event up to virtual time t; now becomes t. */
void sim_run_until(struct sim_world *w, uint64_t t);

/* A random live, joined node other than except (-1: none); -1 if none. */
int sim_random_member(struct sim_world *w, int except);
struct sim_link *sim_link(struct sim_world *w, unsigned a, unsigned b);
/* Sum of every node's counters (all incarnations), plus world counters. */
void sim_totals(const struct sim_world *w, struct sim_stats *out);

/* Is every live, non-removed node's membership exactly the nodes with
 * expect[i] set, each with its current spec, and (full mesh) is every pair of
 * them linked? On false, why says what is not yet so. */
bool sim_converged(struct sim_world *w, const bool *expect, char *why, size_t whylen);
/* Run until sim_converged (checked every 100 ms) or deadline. Returns the
 * time it took from now, or UINT64_MAX with why filled. */
uint64_t sim_run_converge(struct sim_world *w, const bool *expect, uint64_t deadline, char *why,
                          size_t whylen);

/* Between the world (sim_world.c) and the network (sim_net.c). */
int sim_node_index(const struct sim_world *w, const char *name);
void sim_node_peer_up(struct sim_world *w, unsigned i, unsigned other);
void sim_node_peer_down(struct sim_world *w, unsigned i, unsigned other);
void sim_node_receive(struct sim_world *w, unsigned to, unsigned from, const uint8_t *buf,
                      size_t len);
void sim_net_send(struct sim_world *w, unsigned from, unsigned to, uint8_t *buf, size_t len);
void sim_net_connect(struct sim_world *w, unsigned from, unsigned to, bool addr_ok);
void sim_net_close(struct sim_world *w, unsigned from, unsigned to);
void sim_net_abort(struct sim_world *w, unsigned a, unsigned b);
void sim_net_event(struct sim_world *w, const struct sim_event *e);
/* Uniform in [lo, hi]; true with probability ppm / 1e6. */
uint64_t sim_uniform(struct rng *r, uint64_t lo, uint64_t hi);
bool sim_chance(struct rng *r, unsigned ppm);

/* The links' side of the node core (sim_fd.c), as peer.c's: each live
 * node runs the real node.c with its detector, fed by its links; its
 * Heartbeat and Silent messages travel the simulated network, and a DOWN
 * closes the link. */
#define SIM_TICK_MS       100  /* the daemon's tick */
#define SIM_FD_TIMEOUT_MS 2000 /* failure_timeout_ms, the daemon's default */
void sim_fd_start(struct sim_world *w, unsigned i);
void sim_fd_stop(struct sim_world *w, unsigned i);
/* Link bookkeeping the scenarios read (the victim's down/up times). */
void sim_fd_link(struct sim_world *w, unsigned i, unsigned other, bool up);
/* What the shell tells the node of a frame from `from` before node_receive
 * (heard; for a Silent report, whether the node it names waits unread). */
void sim_fd_receive(struct sim_world *w, unsigned to, unsigned from,
                    const PartisanPeer__PeerMsg *msg);
void sim_fd_sent(struct sim_world *w, unsigned from, unsigned to);
/* Before node_tick: the overdue nodes whose messages wait unread (held). */
void sim_fd_unread_scan(struct sim_world *w, unsigned i);
/* Whether i's side of its link to j is up (peer.c's pnode up). */
bool sim_fd_up_to(struct sim_world *w, unsigned i, unsigned j);
/* A detector verdict (ACT_DOWN) of node i about node j (-1: unknown). */
void sim_fd_down(struct sim_world *w, unsigned i, int j, const char *why);
/* Pause node i (it stops reading and ticking: what reaches it is held and
 * dials to it fail) / resume it (what was held is read, in order). */
void sim_pause(struct sim_world *w, unsigned i);
void sim_resume(struct sim_world *w, unsigned i);
/* Starve node i of CPU: it wakes every tick_ms only, ticks, then reads
 * what came meanwhile (which until then waits unread). */
void sim_starve(struct sim_world *w, unsigned i, unsigned tick_ms);
/* Called by the event loop: true when e waits for a paused or starved
 * node (the queue gave it up: the hold owns it now). */
bool sim_hold(struct sim_world *w, struct sim_event *e);
/* Node i reads what was held for it. */
void sim_release(struct sim_world *w, unsigned i);
void sim_held_free(struct sim_node *n);

/* Tracing (sim_trace.c); all no-ops unless opts.trace names node i. */
bool sim_tracing(const struct sim_world *w, unsigned i);
void sim_trace(const struct sim_world *w, unsigned i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_trace_action(const struct sim_world *w, unsigned i, const struct action *a);
/* The body kind of a packed PeerMsg, e.g. "membership". */
const char *sim_msg_kind(const uint8_t *buf, size_t len);

/* Scenarios (sim_scenarios.c). */
struct sim_result {
	bool ok;
	bool skipped;  /* does not apply to this manager */
	bool note;     /* the full suite prints msg under the table row too */
	char msg[512]; /* one line: the measurements, or what failed */
	uint64_t converge_ms;
	double idle_msgs, idle_bytes; /* per live node per second, once converged */
	struct sim_stats tot;         /* totals over the run */
};

struct sim_scenario {
	const char *name;
	const char *what;
	void (*run)(const struct sim_opts *base, unsigned nodes, struct sim_result *r);
	unsigned check_nodes;   /* --suite check; 0: full suite only */
	unsigned san_nodes;     /* --suite check under ASan (several times slower) */
	unsigned full_nodes[4]; /* --suite full, one table row each; 0 ends */
};

/* A scenario with check_nodes 0 runs only in the full suite. */
extern const struct sim_scenario sim_scenarios[];
extern const size_t sim_nscenarios;

/* Scenario helpers (sim_scenarios.c), shared with sim_chaos.c. */
#define JOIN_EVERY_MS 10     /* a new node starts this often */
#define DEADLINE_MS   120000 /* convergence must come within this */

void sim_fail(struct sim_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_ok(struct sim_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct sim_world *sim_world_for(const struct sim_opts *base, unsigned capacity);
/* A random live joined node of partition group g, or -1. */
int sim_random_in_group(struct sim_world *w, int g);
/* Start new nodes until there are n, one every JOIN_EVERY_MS, each joining
 * through a random node that has already joined. */
void sim_grow(struct sim_world *w, unsigned n);
/* expect[i] for every live node that has not been removed. */
void sim_expect_live(const struct sim_world *w, bool *expect);
/* Run until converged on expect; false with r failed after DEADLINE_MS. */
bool sim_converge(struct sim_world *w, const bool *expect, struct sim_result *r, const char *phase,
                  uint64_t *took);
/* No message was refused or undecodable. */
bool sim_clean(struct sim_world *w, struct sim_result *r);
/* Split the first n nodes into two random halves, groups 0 and 1. */
void sim_split(struct sim_world *w, unsigned n);

void scen_leave_race(const struct sim_opts *base, unsigned nodes, struct sim_result *r);
void scen_pause(const struct sim_opts *base, unsigned nodes, struct sim_result *r);
void scen_starve(const struct sim_opts *base, unsigned nodes, struct sim_result *r);
void scen_oneway(const struct sim_opts *base, unsigned nodes, struct sim_result *r);
void scen_delay(const struct sim_opts *base, unsigned nodes, struct sim_result *r);
void scen_chaos(const struct sim_opts *base, unsigned nodes, struct sim_result *r);

#endif
