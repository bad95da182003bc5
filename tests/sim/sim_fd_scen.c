/* sim_fd_scen.c: the failure detector's scenarios (daemon/core/fd.c, run by
 * sim_fd.c on every node). A paused node must be marked down by every node
 * linked to it within failure_timeout_ms + one heartbeat round, and be back
 * once resumed; a node starved of CPU (it wakes three times less often,
 * reading only then) must not be marked down, nor mark others down; a node
 * whose sends are all lost while it still hears everyone (an asymmetric
 * partition) must be marked down like a paused one, mark nobody down
 * itself, and be back once healed. Each reports the detector's own message
 * cost per node per second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define FD_SETTLE_MS 3000 /* after convergence: the watch rings settle */
#define FD_ROUND_MS  (SIM_FD_TIMEOUT_MS / 2)
#define FD_BOUND_MS  (SIM_FD_TIMEOUT_MS + FD_ROUND_MS)
#define PAUSE_MS     5000  /* how long the victim stays paused */
#define STARVE_MS    60000 /* how long the starved node runs */
#define STARVE_SLOW  3     /* its ticks are this many times rarer */

static unsigned sim_live_count(const struct sim_world *w)
{
	unsigned live = 0;

	for (unsigned i = 0; i < w->n; i++)
		live += w->nodes[i].alive && !w->nodes[i].removed;
	return live;
}

/* The detector's messages per live node per second from a to b. */
static double sim_fd_cost(const struct sim_world *w, const struct sim_stats *a,
                          const struct sim_stats *b, uint64_t ms, double *bytes)
{
	double per = 1000.0 / (double)ms / sim_live_count(w);

	*bytes = (double)(b->fd_bytes - a->fd_bytes) * per;
	return (double)(b->fd_msgs - a->fd_msgs) * per;
}

/* A converged world of nodes nodes, settled; NULL with r failed. */
static struct sim_world *sim_fd_world(const struct sim_opts *base, unsigned nodes, bool *expect,
                                      struct sim_result *r)
{
	struct sim_world *w = sim_world_for(base, nodes);
	uint64_t took;

	sim_grow(w, nodes);
	sim_expect_live(w, expect);
	if (!sim_converge(w, expect, r, "before", &took)) {
		sim_destroy(w);
		return NULL;
	}
	sim_run_until(w, w->now + FD_SETTLE_MS);
	return w;
}

/* The nodes linked to v now (had[k]); how many. */
static unsigned sim_linked_set(struct sim_world *w, unsigned v, bool *had)
{
	unsigned n = 0;

	for (unsigned k = 0; k < w->n; k++) {
		const struct sim_link *l = sim_link(w, k, v);

		had[k] = k != v && w->nodes[k].alive && l->state == LINK_UP;
		n += had[k];
	}
	return n;
}

/* Every node in had marked v down within FD_BOUND_MS of t0; *worst: the
 * slowest, *sum: the total. */
static bool sim_all_down(struct sim_world *w, const bool *had, uint64_t t0, uint64_t *worst,
                         uint64_t *sum, struct sim_result *r)
{
	*worst = *sum = 0;
	for (unsigned k = 0; k < w->n; k++) {
		uint64_t at = w->victim_down[k];

		if (!had[k])
			continue;
		if (at == 0 || at > t0 + FD_BOUND_MS)
			return sim_fail(r, "%s did not mark the paused %s down within %u ms",
			                w->nodes[k].name, w->nodes[w->victim].name, FD_BOUND_MS),
			       false;
		*sum += at - t0;
		if (at - t0 > *worst)
			*worst = at - t0;
	}
	return true;
}

static bool sim_no_false(struct sim_world *w, struct sim_result *r)
{
	struct sim_stats t;

	sim_totals(w, &t);
	if (t.fd_false == 0)
		return true;
	return sim_fail(r, "%llu false DOWN verdicts (a live, running node marked down)",
	                (unsigned long long)t.fd_false),
	       false;
}

static void sim_victim_track(struct sim_world *w, unsigned v)
{
	w->victim = (int)v;
	w->victim_down = xcalloc(w->o.capacity, sizeof(*w->victim_down));
	w->victim_up = xcalloc(w->o.capacity, sizeof(*w->victim_up));
}

/* Pause the victim; check every linked node marks it down in time; resume
 * it and run until converged again (*back: how long that took). */
static bool sim_pause_cycle(struct sim_world *w, const bool *expect, unsigned v, uint64_t *worst,
                            double *mean, uint64_t *back, struct sim_result *r)
{
	bool *had = xcalloc(w->n, sizeof(*had));
	unsigned nhad = sim_linked_set(w, v, had);
	uint64_t t0 = w->now, sum;
	bool ok;

	sim_pause(w, v);
	sim_run_until(w, t0 + FD_BOUND_MS);
	ok = nhad > 0 && sim_all_down(w, had, t0, worst, &sum, r);
	if (nhad == 0)
		sim_fail(r, "the victim %s had no links", w->nodes[v].name);
	*mean = nhad ? (double)sum / nhad : 0;
	free(had);
	if (!ok)
		return false;
	sim_run_until(w, t0 + PAUSE_MS);
	sim_resume(w, v);
	return sim_converge(w, expect, r, "after resume", back) && sim_no_false(w, r);
}

/* A paused node (SIGSTOP: no reads, no ticks) is marked down by every node
 * linked to it within failure_timeout_ms + one round, and is back once
 * resumed. */
void scen_pause(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	bool *expect = xcalloc(nodes, sizeof(*expect));
	struct sim_world *w = sim_fd_world(base, nodes, expect, r);
	struct sim_stats a, b;
	uint64_t worst, back;
	double mean, msgs, bytes;
	unsigned v;

	if (w == NULL)
		goto out;
	sim_totals(w, &a);
	sim_run_until(w, w->now + FD_SETTLE_MS);
	sim_totals(w, &b);
	msgs = sim_fd_cost(w, &a, &b, FD_SETTLE_MS, &bytes);
	v = (unsigned)rng_below(&w->rng, w->n);
	sim_victim_track(w, v);
	if (sim_pause_cycle(w, expect, v, &worst, &mean, &back, r)) {
		r->converge_ms = back;
		r->note = true;
		sim_totals(w, &r->tot);
		sim_ok(r,
		       "%s paused %u ms: down everywhere in %llu ms (mean %.0f, bound %u);"
		       " back in %llu ms after resume; detector %.2f msg/node/s, %.0f B/node/s",
		       w->nodes[v].name, PAUSE_MS, (unsigned long long)worst, mean, FD_BOUND_MS,
		       (unsigned long long)back, msgs, bytes);
	}
	sim_destroy(w);
out:
	free(expect);
}

/* A node starved of CPU (a tick every STARVE_SLOW ticks, reading only when
 * it wakes) is never marked down, and marks nobody down either. */
void scen_starve(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	bool *expect = xcalloc(nodes, sizeof(*expect));
	struct sim_world *w = sim_fd_world(base, nodes, expect, r);
	struct sim_stats a, b;
	double msgs, bytes, hours;
	char why[256];
	unsigned v;

	if (w == NULL)
		goto out;
	v = (unsigned)rng_below(&w->rng, w->n);
	sim_starve(w, v, STARVE_SLOW * SIM_TICK_MS);
	sim_totals(w, &a);
	sim_run_until(w, w->now + STARVE_MS);
	sim_totals(w, &b);
	msgs = sim_fd_cost(w, &a, &b, STARVE_MS, &bytes);
	hours = (double)sim_live_count(w) * STARVE_MS / 3.6e6;
	r->note = true;
	r->tot = b;
	if (sim_run_converge(w, expect, w->now + FD_SETTLE_MS, why, sizeof(why)) == UINT64_MAX)
		sim_fail(r, "not converged while %s was starved: %s", w->nodes[v].name, why);
	else if (sim_no_false(w, r) && sim_clean(w, r))
		sim_ok(r,
		       "%s ticking every %u ms for %u s: %llu false DOWN (%.1f per 1,000 node-hours"
		       " over %.2f node-hours); detector %.2f msg/node/s, %.0f B/node/s",
		       w->nodes[v].name, STARVE_SLOW * SIM_TICK_MS, STARVE_MS / 1000,
		       (unsigned long long)(b.fd_false - a.fd_false),
		       (double)(b.fd_false - a.fd_false) * 1000.0 / hours, hours, msgs, bytes);
	sim_destroy(w);
out:
	free(expect);
}

/* Every node in had is linked to v again, both ends up. */
static bool sim_relinked(struct sim_world *w, const bool *had, unsigned v)
{
	for (unsigned k = 0; k < w->n; k++) {
		const struct sim_link *l = sim_link(w, k, v);

		if (had[k] && (l->state != LINK_UP || !l->up[0] || !l->up[1]))
			return false;
	}
	return true;
}

/* An asymmetric partition: everything v sends is lost, everything sent to
 * it arrives, its links stay up as far as TCP can tell. Every node linked
 * to it marks it down within failure_timeout_ms + one round; v, which hears
 * them all, marks nobody down (a DOWN by v counts as false); once its sends
 * flow again it is back everywhere. */
void scen_oneway(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	bool *expect = xcalloc(nodes, sizeof(*expect)), *had = NULL;
	struct sim_world *w = sim_fd_world(base, nodes, expect, r);
	uint64_t worst, sum, back, t0;
	unsigned v, nhad;

	if (w == NULL)
		goto out;
	v = (unsigned)rng_below(&w->rng, w->n);
	sim_victim_track(w, v);
	had = xcalloc(w->n, sizeof(*had));
	nhad = sim_linked_set(w, v, had);
	t0 = w->now;
	sim_trace(w, v, "mute: what it sends is lost");
	w->nodes[v].mute = true;
	sim_run_until(w, t0 + FD_BOUND_MS);
	if (nhad == 0) {
		sim_fail(r, "the victim %s had no links", w->nodes[v].name);
		goto done;
	}
	if (!sim_all_down(w, had, t0, &worst, &sum, r))
		goto done;
	sim_run_until(w, t0 + PAUSE_MS);
	w->nodes[v].mute = false;
	sim_trace(w, v, "unmute");
	if (!sim_converge(w, expect, r, "after the one-way cut healed", &back) ||
	    !sim_no_false(w, r))
		goto done;
	/* Membership never lost it (a full mesh keeps a node that is down):
	 * back means linked again, both ends up, with every former neighbour. */
	for (t0 = w->now; !sim_relinked(w, had, v); sim_run_until(w, w->now + SIM_TICK_MS))
		if (w->now > t0 + DEADLINE_MS) {
			sim_fail(r, "%s not linked again with all its neighbours after the heal",
			         w->nodes[v].name);
			goto done;
		}
	back = w->now - t0 + back;
	r->converge_ms = back;
	r->note = true;
	sim_totals(w, &r->tot);
	sim_ok(r,
	       "%s's sends lost for %u ms: down at its %u neighbours in %llu ms (mean %.0f, bound"
	       " %u), no DOWN by it; linked again with all of them %llu ms after the heal",
	       w->nodes[v].name, PAUSE_MS, nhad, (unsigned long long)worst, (double)sum / nhad,
	       FD_BOUND_MS, (unsigned long long)back);
done:
	free(had);
	sim_destroy(w);
out:
	free(expect);
}

/* ---- a one-way delay ---- */

#define DELAY_RUN_MS 10000 /* each delay holds this long */

/* The delays tried, in order: the detector hears v's once-a-round
 * messages D late, so at the onset it hears nothing for D + one round. */
static const struct sim_delay_step {
	unsigned ms;
	enum { NO_DOWN, AT_MOST_ONE, DOWN } expect;
} sim_delay_steps[] = {
    {FD_ROUND_MS / 2, NO_DOWN},               /* D + round < timeout */
    {FD_ROUND_MS * 9 / 10, NO_DOWN},          /* the same, 100 ms short of it */
    {SIM_FD_TIMEOUT_MS * 3 / 4, AT_MOST_ONE}, /* D < timeout < D + round: the onset */
    {SIM_FD_TIMEOUT_MS * 5 / 4, DOWN},        /* D > timeout */
};
#define SIM_NDELAY (sizeof(sim_delay_steps) / sizeof(sim_delay_steps[0]))

/* A node whose detector watches v (a ring neighbour), or -1. */
static int sim_watcher_of(struct sim_world *w, unsigned v)
{
	for (unsigned k = 0; k < w->n; k++) {
		const struct fd_node *p;

		if (k == v || !w->nodes[k].alive)
			continue;
		p = fd_find(node_fd(w->nodes[k].node), w->nodes[v].name);
		if (p && fd_watched(p))
			return (int)k;
	}
	return -1;
}

/* Hold delay step s on v's sends to a node watching it (u) for
 * DELAY_RUN_MS, then take it off and let what was in flight arrive; check
 * the DOWN verdicts. */
static bool sim_delay_step(struct sim_world *w, unsigned v, const struct sim_delay_step *s,
                           char *line, size_t len, struct sim_result *r)
{
	struct sim_stats a, b;
	uint64_t t0 = w->now, slow0 = w->slow_downs, downs, at;
	int u = sim_watcher_of(w, v);

	if (u < 0)
		return sim_fail(r, "delay %u ms: nobody watches %s", s->ms, w->nodes[v].name),
		       false;
	w->slow_to = u;
	sim_totals(w, &a);
	w->slow_down_at = 0;
	sim_trace(w, v, "sends to %s delayed by %u ms", w->nodes[u].name, s->ms);
	w->slow_ms = s->ms;
	sim_run_until(w, t0 + DELAY_RUN_MS);
	w->slow_ms = 0;
	sim_run_until(w, w->now + s->ms + FD_SETTLE_MS);
	sim_totals(w, &b);
	downs = b.fd_downs - a.fd_downs;
	at = w->slow_down_at;
	if (downs != w->slow_downs - slow0)
		return sim_fail(r, "delay %u ms: %llu DOWN verdicts other than %s's about %s",
		                s->ms, (unsigned long long)(downs - (w->slow_downs - slow0)),
		                w->nodes[u].name, w->nodes[v].name),
		       false;
	if (s->expect == NO_DOWN && downs)
		return sim_fail(r, "delay %u ms (+ round %u < timeout %u): %s marked %s down",
		                s->ms, FD_ROUND_MS, SIM_FD_TIMEOUT_MS, w->nodes[u].name,
		                w->nodes[v].name),
		       false;
	if (s->expect == AT_MOST_ONE && downs > 1)
		return sim_fail(
		           r,
		           "delay %u ms: %s marked %s down %llu times (once at the onset at most)",
		           s->ms, w->nodes[u].name, w->nodes[v].name, (unsigned long long)downs),
		       false;
	if (s->expect == DOWN && (at == 0 || at > t0 + FD_BOUND_MS))
		return sim_fail(r, "delay %u ms > timeout %u: %s did not mark %s down within %u ms",
		                s->ms, SIM_FD_TIMEOUT_MS, w->nodes[u].name, w->nodes[v].name,
		                FD_BOUND_MS),
		       false;
	if (downs)
		snprintf(line, len, "%u ms: %llu DOWN by n%d (first in %llu ms)", s->ms,
		         (unsigned long long)downs, u, (unsigned long long)(at - t0));
	else
		snprintf(line, len, "%u ms: 0 DOWN (watcher n%d)", s->ms, u);
	return true;
}

/* One direction of one link delayed: v's sends to u, a node watching it (a
 * ring neighbour in a full mesh), arrive D ms late; u's to v and every other link are as
 * before. While D + one heartbeat round stays under failure_timeout_ms
 * nobody marks anybody down; past the timeout u marks v down within
 * failure_timeout_ms + one round. In between, only the onset (D + a round
 * of silence) may cost one DOWN. No other node ever marks v down (one
 * watcher's Silent reports are not believed), and once the delay is gone v
 * is linked with everyone again. */
void scen_delay(const struct sim_opts *base, unsigned nodes, struct sim_result *r)
{
	bool *expect = xcalloc(nodes, sizeof(*expect)), *had = NULL;
	struct sim_world *w = sim_fd_world(base, nodes, expect, r);
	char lines[SIM_NDELAY][96];
	uint64_t back, t0;
	unsigned v;

	if (w == NULL)
		goto out;
	v = (unsigned)rng_below(&w->rng, w->n);
	had = xcalloc(w->n, sizeof(*had));
	sim_linked_set(w, v, had);
	w->slow_from = (int)v;
	for (size_t k = 0; k < SIM_NDELAY; k++)
		if (!sim_delay_step(w, v, &sim_delay_steps[k], lines[k], sizeof(lines[k]), r))
			goto done;
	if (!sim_converge(w, expect, r, "after the delay", &back))
		goto done;
	/* A full mesh links v with all its former neighbours again; a partial
	 * view may have moved on (converged is back). */
	for (t0 = w->now; w->o.mgr->full_mesh && !sim_relinked(w, had, v);
	     sim_run_until(w, w->now + SIM_TICK_MS))
		if (w->now > t0 + DEADLINE_MS) {
			sim_fail(r, "%s not linked again with all its neighbours after the delay",
			         w->nodes[v].name);
			goto done;
		}
	r->converge_ms = back + (w->now - t0);
	r->note = true;
	sim_totals(w, &r->tot);
	sim_ok(r,
	       "%s's sends to a watcher delayed (timeout %u, round %u, bound %u) by %s; %s; %s; %s;"
	       " linked again %llu ms after",
	       w->nodes[v].name, SIM_FD_TIMEOUT_MS, FD_ROUND_MS, FD_BOUND_MS, lines[0], lines[1],
	       lines[2], lines[3], (unsigned long long)r->converge_ms);
done:
	free(had);
	sim_destroy(w);
out:
	free(expect);
}
