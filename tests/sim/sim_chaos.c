/* sim_chaos.c: scenarios that mix membership changes. leave_race joins nodes
 * through contacts that another node removes 0 to 100 ms later; chaos
 * (full suite, or --scenario chaos) throws random joins, crashes, restarts,
 * leaves and partitions at a faulty network, then heals everything and asks
 * for convergence, VOPR-style: any failing seed is a reproducible bug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define CHAOS_STEPS   100 /* one random event per step */
#define CHAOS_STEP_MS 200
#define CHECK_STEP_MS 100

#define RACES 8 /* leave_race: joins racing a removal, one after another */

/* Two distinct random live members. */
static void sim_pick2(struct sim_world *w, unsigned *b, unsigned *c)
{
	*b = (unsigned)sim_random_member(w, -1);
	*c = (unsigned)sim_random_member(w, (int)*b);
}

/* One race in w: a new node j joins through c while, offset ms later, b
 * removes c. Then j must be a member everywhere, and c gone and stopped. */
static bool race_once(struct sim_world *w, unsigned offset, bool *expect, struct sim_result *r)
{
	unsigned b, c, j = w->n;
	char phase[200];
	uint64_t took;

	sim_pick2(w, &b, &c);
	sim_start(w, j, (int)c, false);
	sim_run_until(w, w->now + offset);
	sim_leave(w, b, c);
	expect[c] = false;
	expect[j] = true;
	snprintf(phase, sizeof(phase), "%s joins via %s, removed by %s %u ms later",
	         w->nodes[j].name, w->nodes[c].name, w->nodes[b].name, offset);
	if (!sim_converge(w, expect, r, phase, &took) || !sim_clean(w, r))
		return false;
	if (!w->nodes[c].removed)
		return sim_fail(r, "%s: %s never saw EV_SELF_REMOVED", phase, w->nodes[c].name),
		       false;
	return true;
}

/* Joins racing the removal of their contact, at offsets from 0 (the
 * removal lands first, or while the joiner connects) to 100 ms (after the
 * join is through). */
void scen_leave_race(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	static const unsigned offsets[RACES] = {0, 0, 1, 2, 5, 10, 20, 100};
	struct sim_world *w;
	bool *expect;
	uint64_t took;
	size_t k = 0;

	if (!base->mgr->full_mesh) {
		sim_ok(r, "skipped: %s has no cluster to remove a node from", base->mgr->name);
		r->skipped = true;
		return;
	}
	w = sim_world_for(base, nodes + RACES);
	expect = xcalloc(nodes + RACES, sizeof(*expect));
	sim_grow(w, nodes);
	sim_expect_live(w, expect);
	if (sim_converge(w, expect, r, "before the races", &took))
		while (k < RACES && race_once(w, offsets[k], expect, r))
			k++;
	if (k == RACES)
		sim_ok(r, "%u joins racing the removal of their contact (0..100 ms) converge",
		       RACES);
	free(expect);
	sim_destroy(w);
}

static unsigned chaos_links_up(struct sim_world *w, unsigned i)
{
	unsigned n = 0;

	for (unsigned j = 0; j < w->n; j++)
		n += j != i && sim_link(w, i, j)->state == LINK_UP;
	return n;
}

static unsigned chaos_alive(const struct sim_world *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < w->n; i++)
		n += w->nodes[i].alive;
	return n;
}

/* A random crashed node, or -1. */
static int chaos_random_dead(struct sim_world *w)
{
	unsigned k = 0;
	int pick = -1;

	for (unsigned i = 0; i < w->n; i++)
		if (!w->nodes[i].alive && rng_below(&w->rng, ++k) == 0)
			pick = (int)i;
	return pick;
}

static void chaos_crash_or_restart(struct sim_world *w, unsigned roll)
{
	int d = chaos_random_dead(w), m = sim_random_member(w, -1);

	if (roll < 45 && m >= 0 && chaos_alive(w) > w->n / 2 + 1)
		sim_crash(w, (unsigned)m);
	else if (roll >= 45 && d >= 0)
		sim_start(w, (unsigned)d, sim_random_member(w, -1), rng_below(&w->rng, 2));
}

/* A self-leave only from a well connected node: a leave is one push of state
 * to the connected members, and a node alone in its partition would take its
 * news with it (a known limit, not what this run looks for). */
static void chaos_leave(struct sim_world *w, unsigned roll)
{
	int a = sim_random_member(w, -1), c;

	if (a < 0)
		return;
	if (roll < 72) {
		if (chaos_links_up(w, (unsigned)a) >= 5)
			sim_leave(w, (unsigned)a, (unsigned)a);
	} else if ((c = sim_random_member(w, a)) >= 0) {
		sim_leave(w, (unsigned)a, (unsigned)c);
	}
}

/* 30% a new node, 15% a crash, 20% a restart, 7% a leave, 8% a removal, 10% a
 * partition or its healing, 10% nothing. */
static void chaos_step(struct sim_world *w, bool *split)
{
	unsigned roll = (unsigned)rng_below(&w->rng, 100);

	if (roll < 30 && w->n < w->o.capacity)
		sim_start(w, w->n, sim_random_member(w, -1), false);
	else if (roll >= 30 && roll < 65)
		chaos_crash_or_restart(w, roll);
	else if (roll >= 65 && roll < 80)
		chaos_leave(w, roll);
	else if (roll >= 80 && roll < 90 && !*split)
		sim_split(w, w->n), *split = true;
	else if (roll >= 80 && roll < 90)
		sim_heal(w), *split = false;
}

/* Converge on a moving target: a node that learns late that it was removed
 * drops out of the expected set when it does. */
static bool chaos_converge(struct sim_world *w, struct sim_result *r, uint64_t *took)
{
	bool *expect = xcalloc(w->o.capacity, sizeof(*expect));
	uint64_t start = w->now;
	char why[256];
	bool ok;

	for (;;) {
		sim_expect_live(w, expect);
		if ((ok = sim_converged(w, expect, why, sizeof(why))) ||
		    w->now >= start + DEADLINE_MS)
			break;
		sim_run_until(w, w->now + CHECK_STEP_MS);
	}
	*took = w->now - start;
	if (!ok)
		sim_fail(r, "after the chaos: no convergence within %u ms: %s", DEADLINE_MS, why);
	free(expect);
	return ok;
}

void scen_chaos(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	struct sim_opts o = *base;
	struct sim_world *w;
	bool split = false;
	uint64_t took;
	int d;

	o.drop_ppm = 20000;
	o.dup_ppm = 10000;
	o.delay_max_ms = 30;
	o.connect_max_ms = 50;
	w = sim_world_for(&o, nodes);
	sim_grow(w, nodes / 2);
	for (unsigned s = 0; s < CHAOS_STEPS; s++) {
		chaos_step(w, &split);
		sim_run_until(w, w->now + CHAOS_STEP_MS);
	}
	sim_heal(w);
	while ((d = chaos_random_dead(w)) >= 0)
		sim_start(w, (unsigned)d, sim_random_member(w, -1), false);
	sim_totals(w, &r->tot);
	if (chaos_converge(w, r, &took) && sim_clean(w, r)) {
		r->converge_ms = took;
		sim_ok(r, "%u nodes after %u random events: converged %llu ms after healing", w->n,
		       CHAOS_STEPS, (unsigned long long)took);
	}
	sim_destroy(w);
}
