/* sim_chaos.c: scenarios that mix membership changes. leave_race joins a node
 * through a contact that another node removes at the same moment; chaos
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

/* Two distinct random live members. */
static void sim_pick2(struct sim_world *w, unsigned *b, unsigned *c)
{
	*b = (unsigned)sim_random_member(w, -1);
	*c = (unsigned)sim_random_member(w, (int)*b);
}

/* One race: j joins through c while, offset ms later, b removes c. */
static bool race_once(const struct sim_opts *base, unsigned nodes, unsigned offset,
                      struct sim_result *r)
{
	struct sim_opts o = *base;
	struct sim_world *w;
	bool *expect, ok = false;
	unsigned b, c, j = nodes;
	uint64_t took;
	char phase[200];

	o.seed += offset;
	w = sim_world_for(&o, nodes + 1);
	expect = xcalloc(nodes + 1, sizeof(*expect));
	sim_grow(w, nodes);
	sim_expect_live(w, expect);
	if (!sim_converge(w, expect, r, "before the race", &took))
		goto out;
	sim_pick2(w, &b, &c);
	sim_start(w, j, (int)c, false);
	sim_run_until(w, w->now + offset);
	sim_leave(w, b, c);
	expect[c] = false;
	expect[j] = true;
	snprintf(phase, sizeof(phase), "%s joins via %s, removed by %s %u ms later",
	         w->nodes[j].name, w->nodes[c].name, w->nodes[b].name, offset);
	ok = sim_converge(w, expect, r, phase, &took) && sim_clean(w, r);
	if (ok && !w->nodes[c].removed)
		ok = false,
		sim_fail(r, "%s: %s never saw EV_SELF_REMOVED", phase, w->nodes[c].name);
out:
	free(expect);
	sim_destroy(w);
	return ok;
}

/* A join racing a removal of its contact: the joiner must become a member
 * everywhere and the removed node must be gone, at each offset. */
void scen_leave_race(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	static const unsigned offsets[] = {0, 10, 100};
	char failed[sizeof(r->msg)] = "";
	size_t len = 0;

	for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
		if (race_once(base, nodes, offsets[k], r))
			continue;
		len += (size_t)snprintf(failed + len, sizeof(failed) - len, "%s%.240s",
		                        len ? " | " : "", r->msg);
		if (len >= sizeof(failed))
			break;
	}
	if (failed[0])
		sim_fail(r, "%s", failed);
	else
		sim_ok(r, "joins racing the removal of their contact (0, 10, 100 ms) converge");
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
	if (chaos_converge(w, r, &took) && sim_clean(w, r)) {
		r->converge_ms = took;
		sim_ok(r, "%u nodes after %u random events: converged %llu ms after healing", w->n,
		       CHAOS_STEPS, (unsigned long long)took);
	}
	sim_destroy(w);
}
