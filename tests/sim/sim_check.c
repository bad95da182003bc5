/* sim_check.c: the simulator's convergence check. Under a full-membership
 * manager every live node's membership must be the expected set of nodes,
 * each named once with its current spec, and every pair of members must be
 * linked. Under a partial-view manager (hyparview: members() is the active
 * view) every view must hold only expected nodes with their current spec,
 * over links that are up, at most SIM_ACTIVE_MAX of them; views must be
 * symmetric and together make one connected overlay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_CHECK_STEP_MS 100

static const char *sim_node_state(const struct sim_node *n)
{
	return !n->alive ? "down" : n->removed ? "stopped, removed" : "up";
}

/* The first expected node that node i did not list (seen stamps i + 1). */
static bool sim_check_missing(struct sim_world *w, unsigned i, const bool *expect,
                              const unsigned *seen, size_t n, char *why, size_t len)
{
	for (unsigned j = 0; j < w->n; j++)
		if (expect[j] && seen[j] != i + 1)
			return snprintf(why, len, "%s has %zu members, misses %s (%s)",
			                w->nodes[i].name, n, w->nodes[j].name,
			                sim_node_state(&w->nodes[j])),
			       false;
	return true;
}

/* Node i's member list against expect; seen is scratch of w->n entries. */
static bool sim_check_members(struct sim_world *w, unsigned i, const bool *expect, unsigned *seen,
                              char *why, size_t len)
{
	const struct node_spec *const *v;
	size_t n = w->o.mgr->ops->members(w->nodes[i].mgr, &v);
	const char *me = w->nodes[i].name;

	for (size_t k = 0; k < n; k++) {
		int j = sim_node_index(w, v[k]->name);

		if (j < 0 || !expect[j])
			return snprintf(why, len, "%s lists %s (%s)", me, v[k]->name,
			                j < 0 ? "unknown" : sim_node_state(&w->nodes[j])),
			       false;
		if (seen[j] == i + 1)
			return snprintf(why, len, "%s lists %s twice", me, v[k]->name), false;
		seen[j] = i + 1;
		if (node_spec_cmp(v[k], w->nodes[j].spec) != 0)
			return snprintf(why, len, "%s has a stale spec of %s (port %u, now %u)", me,
			                v[k]->name, v[k]->naddrs ? v[k]->addrs[0].port : 0,
			                w->nodes[j].spec->addrs[0].port),
			       false;
	}
	return sim_check_missing(w, i, expect, seen, n, why, len);
}

static bool sim_check_links(struct sim_world *w, const bool *expect, char *why, size_t len)
{
	for (unsigned b = 1; b < w->n; b++) {
		for (unsigned a = 0; a < b; a++) {
			const struct sim_link *l = sim_link(w, a, b);

			if (!expect[a] || !expect[b] ||
			    (l->state == LINK_UP && l->up[0] && l->up[1]))
				continue;
			snprintf(why, len, "%s and %s are not connected", w->nodes[a].name,
			         w->nodes[b].name);
			return false;
		}
	}
	return true;
}

/* Node i's active view into adj (row i); false if it is not a valid one. */
static bool sim_check_view(struct sim_world *w, unsigned i, const bool *expect, uint8_t *adj,
                           char *why, size_t len)
{
	const struct node_spec *const *v;
	size_t n = w->o.mgr->ops->members(w->nodes[i].mgr, &v), k, peers = 0;
	const char *me = w->nodes[i].name;

	for (k = 0; k < n; k++) {
		int j = sim_node_index(w, v[k]->name);

		if (j == (int)i)
			continue;
		if (j < 0 || !expect[j])
			break;
		if (adj[(size_t)i * w->n + (unsigned)j]++ || node_spec_cmp(v[k], w->nodes[j].spec))
			break;
		if (sim_link(w, i, (unsigned)j)->state != LINK_UP)
			return snprintf(why, len, "%s has %s in view, not linked", me, v[k]->name),
			       false;
		peers++;
	}
	if (k < n)
		return snprintf(why, len, "%s has %s in view: unexpected, twice or stale", me,
		                v[k]->name),
		       false;
	if (peers > SIM_ACTIVE_MAX || (peers == 0 && expect[i]))
		return snprintf(why, len, "%s has %zu neighbors", me, peers), false;
	return true;
}

/* Views symmetric, and every expected node reachable from the first. */
static bool sim_check_graph(struct sim_world *w, const bool *expect, const uint8_t *adj, char *why,
                            size_t len)
{
	unsigned n = w->n, *queue = xcalloc(n, sizeof(*queue)), head = 0, tail = 0;
	bool *seen = xcalloc(n, sizeof(*seen)), ok = true;

	for (unsigned a = 0; ok && a < n; a++)
		for (unsigned b = 0; ok && b < n; b++)
			if (adj[(size_t)a * n + b] && !adj[(size_t)b * n + a])
				ok = false, snprintf(why, len, "%s has %s in view, not the reverse",
				                     w->nodes[a].name, w->nodes[b].name);
	for (unsigned a = 0; ok && a < n && tail == 0; a++)
		if (expect[a])
			seen[a] = true, queue[tail++] = a;
	while (ok && head < tail)
		for (unsigned a = queue[head++], b = 0; b < n; b++)
			if (adj[(size_t)a * n + b] && !seen[b])
				seen[b] = true, queue[tail++] = b;
	for (unsigned a = 0; ok && a < n; a++)
		if (expect[a] && !seen[a])
			ok = false, snprintf(why, len, "%s is not reachable from %s",
			                     w->nodes[a].name, w->nodes[queue[0]].name);
	free(queue);
	free(seen);
	return ok;
}

static bool sim_check_overlay(struct sim_world *w, const bool *expect, char *why, size_t len)
{
	uint8_t *adj = xcalloc((size_t)w->n * w->n, 1);
	bool ok = true;

	for (unsigned i = 0; ok && i < w->n; i++)
		if (w->nodes[i].alive && !w->nodes[i].removed)
			ok = sim_check_view(w, i, expect, adj, why, len);
	if (ok)
		ok = sim_check_graph(w, expect, adj, why, len);
	free(adj);
	return ok;
}

static bool sim_check_full(struct sim_world *w, const bool *expect, char *why, size_t len)
{
	unsigned *seen = xcalloc(w->n, sizeof(*seen));
	bool ok = true;

	for (unsigned i = 0; ok && i < w->n; i++)
		if (w->nodes[i].alive && !w->nodes[i].removed)
			ok = sim_check_members(w, i, expect, seen, why, len);
	free(seen);
	return ok && sim_check_links(w, expect, why, len);
}

bool sim_converged(struct sim_world *w, const bool *expect, char *why, size_t len)
{
	for (unsigned i = 0; i < w->n; i++) {
		if (!expect[i])
			continue;
		if (!w->nodes[i].alive || w->nodes[i].removed) {
			snprintf(why, len, "expected member %s is %s", w->nodes[i].name,
			         w->nodes[i].alive ? "removed" : "down");
			return false;
		}
	}
	if (w->o.mgr->full_mesh)
		return sim_check_full(w, expect, why, len);
	return sim_check_overlay(w, expect, why, len);
}

uint64_t sim_run_converge(struct sim_world *w, const bool *expect, uint64_t deadline, char *why,
                          size_t len)
{
	uint64_t start = w->now;

	for (;;) {
		if (sim_converged(w, expect, why, len))
			return w->now - start;
		if (w->now >= deadline)
			return UINT64_MAX;
		sim_run_until(w, w->now + SIM_CHECK_STEP_MS);
	}
}
