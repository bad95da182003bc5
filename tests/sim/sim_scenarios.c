/* sim_scenarios.c: what the simulator checks. Each scenario builds a world
 * from the run's options, drives it (joins, leaves, partitions, crashes,
 * faults), asserts that membership converges and measures how long that took
 * in virtual time and what the idle gossip costs afterwards. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SETTLE_MS      3000 /* after convergence, before measuring idle cost */
#define IDLE_WINDOW_MS 10000
/* Idle bound on messages; the byte bound is the manager's (sim_world.c). */
#define IDLE_MAX_MSGS 10.0

void sim_fail(struct sim_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	r->ok = false;
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

struct sim_world *sim_world_for(const struct sim_opts *base, unsigned capacity)
{
	struct sim_opts o = *base;

	o.capacity = capacity;
	return sim_create(&o);
}

/* A random live joined node of partition group g, or -1. */
int sim_random_in_group(struct sim_world *w, int g)
{
	unsigned k = 0;
	int pick = -1;

	for (unsigned i = 0; i < w->n; i++) {
		const struct sim_node *n = &w->nodes[i];

		if (!n->alive || !n->joined || n->removed || n->group != g)
			continue;
		if (rng_below(&w->rng, ++k) == 0)
			pick = (int)i;
	}
	return pick;
}

/* Start new nodes until there are n, one every JOIN_EVERY_MS, each joining
 * through a random node that has already joined. */
void sim_grow(struct sim_world *w, unsigned n)
{
	while (w->n < n) {
		sim_start(w, w->n, w->n ? sim_random_member(w, -1) : -1, false);
		sim_run_until(w, w->now + JOIN_EVERY_MS);
	}
}

/* expect[i] for every live node that has not been removed. */
void sim_expect_live(const struct sim_world *w, bool *expect)
{
	for (unsigned i = 0; i < w->o.capacity; i++)
		expect[i] = i < w->n && w->nodes[i].alive && !w->nodes[i].removed;
}

bool sim_converge(struct sim_world *w, const bool *expect, struct sim_result *r, const char *phase,
                  uint64_t *took)
{
	char why[256];

	*took = sim_run_converge(w, expect, w->now + DEADLINE_MS, why, sizeof(why));
	if (*took != UINT64_MAX)
		return true;
	sim_fail(r, "%s: no convergence within %u ms: %s", phase, DEADLINE_MS, why);
	return false;
}

/* The world must not have refused or mangled any message. */
bool sim_clean(struct sim_world *w, struct sim_result *r)
{
	struct sim_stats t;

	sim_totals(w, &t);
	if (t.refused)
		return sim_fail(r, "%llu messages refused, e.g. \"%s\"",
		                (unsigned long long)t.refused, w->refused_why),
		       false;
	if (t.undecodable)
		return sim_fail(r, "%llu messages did not decode",
		                (unsigned long long)t.undecodable),
		       false;
	return true;
}

/* Let things settle, then measure the gossip cost of a converged cluster. */
static bool sim_idle(struct sim_world *w, const bool *expect, struct sim_result *r)
{
	struct sim_stats a, b;
	unsigned live = 0;
	char why[256];

	sim_run_until(w, w->now + SETTLE_MS);
	sim_totals(w, &a);
	sim_run_until(w, w->now + IDLE_WINDOW_MS);
	sim_totals(w, &b);
	for (unsigned i = 0; i < w->n; i++)
		live += w->nodes[i].alive && !w->nodes[i].removed;
	r->idle_msgs = (double)(b.sent - a.sent) * 1000.0 / IDLE_WINDOW_MS / live;
	r->idle_bytes = (double)(b.bytes - a.bytes) * 1000.0 / IDLE_WINDOW_MS / live;
	r->tot = b;
	/* A partial view may be mid-repair at any instant: allow it a while. */
	if (sim_run_converge(w, expect, w->now + SETTLE_MS, why, sizeof(why)) == UINT64_MAX)
		return sim_fail(r, "diverged again while idle: %s", why), false;
	if (r->idle_msgs >= IDLE_MAX_MSGS || r->idle_bytes >= w->o.mgr->idle_max_bytes)
		return sim_fail(r,
		                "idle gossip too costly: %.2f msg/node/s, %.1f B/node/s "
		                "(bounds %.0f, %.0f)",
		                r->idle_msgs, r->idle_bytes, IDLE_MAX_MSGS,
		                w->o.mgr->idle_max_bytes),
		       false;
	return sim_clean(w, r);
}

void sim_ok(struct sim_result *r, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	r->ok = true;
	va_start(ap, fmt);
	n = (size_t)vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	if (n < sizeof(r->msg) && r->idle_msgs > 0)
		snprintf(r->msg + n, sizeof(r->msg) - n, "; idle %.2f msg/node/s, %.0f B/node/s",
		         r->idle_msgs, r->idle_bytes);
}

/* (1) nodes join one by one through random contacts; all see all. */
static void scen_join(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	struct sim_world *w = sim_world_for(base, nodes);
	bool *expect = xcalloc(nodes, sizeof(*expect));
	uint64_t started, took;

	sim_grow(w, nodes);
	started = w->now;
	sim_expect_live(w, expect);
	if (sim_converge(w, expect, r, "join", &took) && sim_idle(w, expect, r)) {
		r->converge_ms = started + took;
		sim_ok(r, "all %u started by %llu ms, converged at %llu ms (+%llu)", nodes,
		       (unsigned long long)started, (unsigned long long)(started + took),
		       (unsigned long long)took);
	}
	free(expect);
	sim_destroy(w);
}

/* A live member still linked to node i, or -1. */
static int sim_linked_to(struct sim_world *w, unsigned i)
{
	for (unsigned j = 0; j < w->n; j++)
		if (j != i && w->nodes[j].alive && !w->nodes[j].removed &&
		    sim_link(w, i, j)->state != LINK_NONE)
			return (int)j;
	return -1;
}

/* Links to the departed a and c close within a few rounds. */
static bool sim_unlinked(struct sim_world *w, unsigned a, unsigned c, struct sim_result *r)
{
	uint64_t end = w->now + 10 * w->o.gossip_interval_ms;
	int j;

	while (sim_linked_to(w, a) >= 0 || sim_linked_to(w, c) >= 0) {
		if (w->now >= end) {
			unsigned gone = sim_linked_to(w, a) >= 0 ? a : c;

			j = sim_linked_to(w, gone);
			return sim_fail(r, "%s still linked to the departed %s after %u ms",
			                w->nodes[j].name, w->nodes[gone].name,
			                10 * w->o.gossip_interval_ms),
			       false;
		}
		sim_run_until(w, w->now + 100);
	}
	return true;
}

/* Three distinct random members. */
static void sim_pick3(struct sim_world *w, unsigned *a, unsigned *b, unsigned *c)
{
	*a = (unsigned)rng_below(&w->rng, w->n);
	do
		*b = (unsigned)rng_below(&w->rng, w->n);
	while (*b == *a);
	do
		*c = (unsigned)rng_below(&w->rng, w->n);
	while (*c == *a || *c == *b);
}

static bool sim_leave_checks(struct sim_world *w, unsigned a, unsigned c, struct sim_result *r)
{
	if (!w->nodes[a].removed)
		return sim_fail(r, "%s left but never saw EV_SELF_REMOVED", w->nodes[a].name),
		       false;
	if (!w->nodes[c].removed)
		return sim_fail(r, "%s was removed but never saw EV_SELF_REMOVED",
		                w->nodes[c].name),
		       false;
	return sim_unlinked(w, a, c, r);
}

/* (2) a leaves by itself, b removes c: both vanish everywhere and stop. */
static void scen_leave(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	struct sim_world *w = sim_world_for(base, nodes);
	bool *expect = xcalloc(nodes, sizeof(*expect));
	unsigned a, b, c;
	uint64_t took;

	sim_grow(w, nodes);
	sim_expect_live(w, expect);
	if (!sim_converge(w, expect, r, "before leave", &took))
		goto out;
	sim_pick3(w, &a, &b, &c);
	if (!w->o.mgr->full_mesh)
		c = a; /* a partial view has no cluster to remove another from */
	sim_leave(w, a, a);
	if (c != a)
		sim_leave(w, b, c);
	expect[a] = expect[c] = false;
	if (sim_converge(w, expect, r, "after leave", &took) && sim_leave_checks(w, a, c, r) &&
	    sim_idle(w, expect, r)) {
		r->converge_ms = took;
		sim_ok(r, "%s left%s%s%s%s: gone everywhere in %llu ms", w->nodes[a].name,
		       c != a ? ", " : "", c != a ? w->nodes[b].name : "",
		       c != a ? " removed " : "", c != a ? w->nodes[c].name : "",
		       (unsigned long long)took);
	}
out:
	free(expect);
	sim_destroy(w);
}

/* Nobody lost a member while cut off: every live node lists at least n
 * (full membership only: a partial view rightly drops unreachable nodes). */
static bool sim_nobody_removed(struct sim_world *w, unsigned n, struct sim_result *r)
{
	for (unsigned i = 0; w->o.mgr->full_mesh && i < w->n; i++) {
		const struct node_spec *const *v;
		size_t m;

		if (!w->nodes[i].alive)
			continue;
		m = w->o.mgr->ops->members(w->nodes[i].mgr, &v);
		if (m < n)
			return sim_fail(r, "%s lists %zu members during the partition, had %u",
			                w->nodes[i].name, m, n),
			       false;
	}
	return true;
}

/* The joiners x (group 0) and x + 1 (group 1) are known on their own side
 * only (full membership): the partition held. */
static bool sim_partition_held(struct sim_world *w, unsigned x, struct sim_result *r)
{
	for (unsigned i = 0; w->o.mgr->full_mesh && i < w->n; i++) {
		const struct sim_node *n = &w->nodes[i];
		unsigned mine = x + (unsigned)n->group, other = x + 1 - (unsigned)n->group;

		if (!n->alive || n->removed)
			continue;
		if (i != mine && !w->o.mgr->ops->is_member(n->mgr, w->nodes[mine].name))
			return sim_fail(r, "%s never learnt of %s on its side of the partition",
			                n->name, w->nodes[mine].name),
			       false;
		if (w->o.mgr->ops->is_member(n->mgr, w->nodes[other].name))
			return sim_fail(r, "%s learnt of %s across the partition", n->name,
			                w->nodes[other].name),
			       false;
	}
	return true;
}

/* Split the first n nodes into two random halves, groups 0 and 1. */
void sim_split(struct sim_world *w, unsigned n)
{
	int *group = xcalloc(w->n, sizeof(*group));
	unsigned left = n / 2;

	for (unsigned i = 0; i < n; i++) {
		/* Pick exactly half: i goes to group 1 with probability left / rest. */
		if (left > 0 && rng_below(&w->rng, n - i) < left) {
			group[i] = 1;
			left--;
		}
	}
	sim_partition(w, group);
	free(group);
}

/* (3) a partition for a while (with a join on each side), then heal. */
static void scen_partition(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	struct sim_world *w = sim_world_for(base, nodes + 2);
	bool *expect = xcalloc(nodes + 2, sizeof(*expect));
	uint64_t took;

	sim_grow(w, nodes);
	sim_expect_live(w, expect);
	if (!sim_converge(w, expect, r, "before partition", &took))
		goto out;
	sim_split(w, nodes);
	for (int g = 0; g < 2; g++) {
		w->nodes[w->n].group = g;
		sim_start(w, w->n, sim_random_in_group(w, g), false);
	}
	sim_run_until(w, w->now + 10000);
	if (!sim_nobody_removed(w, nodes, r) || !sim_partition_held(w, nodes, r))
		goto out;
	sim_heal(w);
	sim_expect_live(w, expect);
	if (sim_converge(w, expect, r, "after heal", &took) && sim_idle(w, expect, r)) {
		r->converge_ms = took;
		sim_ok(r, "split %u/%u for 10 s with a join on each side; healed in %llu ms",
		       nodes - nodes / 2, nodes / 2, (unsigned long long)took);
	}
out:
	free(expect);
	sim_destroy(w);
}

/* Crash k distinct random nodes; their indexes go to out. */
static void sim_crash_some(struct sim_world *w, unsigned k, unsigned *out)
{
	for (unsigned i = 0; i < k; i++) {
		unsigned v;

		do
			v = (unsigned)rng_below(&w->rng, w->n);
		while (!w->nodes[v].alive);
		sim_crash(w, v);
		out[i] = v;
	}
}

/* (4) 10% crash, then restart as new incarnations, half on a new port. */
static void scen_crash(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	struct sim_world *w = sim_world_for(base, nodes);
	bool *expect = xcalloc(nodes, sizeof(*expect));
	unsigned k = nodes / 10 ? nodes / 10 : 1, *crashed = xcalloc(k, sizeof(*crashed));
	uint64_t took;

	sim_grow(w, nodes);
	sim_expect_live(w, expect);
	if (!sim_converge(w, expect, r, "before crash", &took))
		goto out;
	sim_crash_some(w, k, crashed);
	sim_run_until(w, w->now + 5000);
	for (unsigned i = 0; i < k; i++) {
		sim_start(w, crashed[i], sim_random_member(w, -1), i % 2 == 1);
		sim_run_until(w, w->now + JOIN_EVERY_MS);
	}
	if (sim_converge(w, expect, r, "after restart", &took) && sim_idle(w, expect, r)) {
		r->converge_ms = took;
		sim_ok(r,
		       "%u crashed, restarted after 5 s (%u on a new port): converged in %llu ms",
		       k, k / 2, (unsigned long long)took);
	}
out:
	free(crashed);
	free(expect);
	sim_destroy(w);
}

/* (5) joins over a lossy, duplicating, reordering network. */
static void scen_faults(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	struct sim_opts o = *base;
	char done[sizeof(r->msg)];

	o.drop_ppm = 50000;
	o.dup_ppm = 10000;
	o.delay_min_ms = 1;
	o.delay_max_ms = 50;
	o.connect_max_ms = 100;
	scen_join(&o, nodes, r);
	if (!r->ok)
		return;
	if (r->tot.drop_fault == 0 || r->tot.duplicated == 0) {
		sim_fail(r, "no fault was injected (%llu drops, %llu duplicates)",
		         (unsigned long long)r->tot.drop_fault,
		         (unsigned long long)r->tot.duplicated);
		return;
	}
	memcpy(done, r->msg, sizeof(done));
	snprintf(r->msg, sizeof(r->msg), "5%% drop (%llu), 1%% dup (%llu), 1..50 ms: %.400s",
	         (unsigned long long)r->tot.drop_fault, (unsigned long long)r->tot.duplicated,
	         done);
}

/* Sizes: the check suite runs in both `make check` builds in seconds; the
 * cost of a join wave grows with the cube of the cluster (each new link
 * starts with a digest answered by a full state), hence the modest sizes. */
const struct sim_scenario sim_scenarios[] = {
    {"join", "N nodes join through random contacts", scen_join, 100, 50, {50, 100, 200}},
    {"leave", "a node leaves, another is removed", scen_leave, 50, 30, {50, 100}},
    {"partition", "a partition heals", scen_partition, 50, 30, {50, 100}},
    {"crash", "10% crash and restart", scen_crash, 50, 30, {50, 100}},
    {"faults", "drop, duplicate, delay", scen_faults, 60, 40, {50, 100}},
    {"leave_race", "a join through a node being removed", scen_leave_race, 30, 20, {30, 60}},
    {"pause", "a paused node is marked down everywhere, then back", scen_pause, 50, 30, {50, 100}},
    {"starve", "a node starved of CPU is not marked down", scen_starve, 50, 20, {50, 100}},
    {"oneway",
     "a node whose sends are lost (asymmetric partition) is marked down, then back",
     scen_oneway,
     50,
     30,
     {50, 100}},
    {"delay",
     "one direction of a link delayed: no DOWN while delay + round < timeout, DOWN past it",
     scen_delay,
     50,
     30,
     {50, 100}},
    {"chaos", "random joins, leaves, crashes, partitions, faults", scen_chaos, 0, 0, {40, 80}},
};
const size_t sim_nscenarios = sizeof(sim_scenarios) / sizeof(sim_scenarios[0]);
