/* ss_metrics.c: what the tables report. The overlay: the active-view graph
 * of the live nodes (components, view sizes, symmetry, passive fill). Memory:
 * heap in use (glibc mallinfo2, or ASan's allocator under SAN=1), process
 * RSS, the simulator's own structures and plumtree's own accounting. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "simscale.h"

#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

size_t ss_heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return __sanitizer_get_current_allocated_bytes();
#else
	return mallinfo2().uordblks;
#endif
}

size_t ss_rss(void)
{
	unsigned long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t ss_spec_bytes(const struct node_spec *s)
{
	size_t n = sizeof(*s) + strlen(s->name) + 1 + s->naddrs * sizeof(*s->addrs);

	n += s->nchannels * sizeof(*s->channels);
	for (size_t i = 0; i < s->nchannels; i++)
		n += strlen(s->channels[i].name) + 1;
	return n;
}

size_t ss_sim_bytes(const struct ss_world *w)
{
	size_t n = sizeof(*w) + w->p.nodes * sizeof(*w->nodes) + ss_links_bytes(w);

	for (uint32_t i = 0; i < w->n; i++)
		n += ss_spec_bytes(w->nodes[i].spec);
	n += w->capheap * sizeof(*w->heap) + w->capbc * sizeof(*w->bc);
	n += w->nbc * ((w->p.nodes + 7) / 8);
	return n;
}

size_t ss_plumtree_bytes(const struct ss_world *w)
{
	size_t n = 0;

	for (uint32_t i = 0; i < w->n; i++)
		if (w->nodes[i].pt)
			n += plumtree_memory(w->nodes[i].pt);
	return n;
}

/* ---- union-find ---- */

static uint32_t ss_uf_find(uint32_t *up, uint32_t x)
{
	while (up[x] != x) {
		up[x] = up[up[x]];
		x = up[x];
	}
	return x;
}

static void ss_uf_union(uint32_t *up, uint32_t a, uint32_t b)
{
	a = ss_uf_find(up, a);
	b = ss_uf_find(up, b);
	if (a != b)
		up[a < b ? b : a] = a < b ? a : b;
}

/* Largest component of the live nodes; *count: number of components. */
static unsigned ss_uf_largest(const struct ss_world *w, uint32_t *up, unsigned *count)
{
	uint32_t *size = xcalloc(w->n, sizeof(*size));
	unsigned best = 0;

	*count = 0;
	for (uint32_t i = 0; i < w->n; i++) {
		uint32_t r;

		if (!w->nodes[i].alive)
			continue;
		r = ss_uf_find(up, i);
		*count += size[r] == 0;
		if (++size[r] > best)
			best = size[r];
	}
	free(size);
	return best;
}

/* ---- the active-view graph ---- */

struct ss_graph {
	uint32_t *adj; /* SS_ACTIVE_MAX live neighbors per node */
	uint8_t *deg;
};

static bool ss_graph_has(const struct ss_graph *g, uint32_t i, uint32_t j)
{
	for (unsigned k = 0; k < g->deg[i]; k++)
		if (g->adj[(size_t)i * SS_ACTIVE_MAX + k] == j)
			return true;
	return false;
}

static void ss_view_sizes(struct ss_overlay *o, unsigned na, unsigned np)
{
	o->hist[na < SS_HIST - 1 ? na : SS_HIST - 1]++;
	o->amin = na < o->amin ? na : o->amin;
	o->amax = na > o->amax ? na : o->amax;
	o->aavg += na;
	o->pmin = np < o->pmin ? np : o->pmin;
	o->pmax = np > o->pmax ? np : o->pmax;
	o->pavg += np;
}

/* Plumtree's neighbors must be the active-view members with an up link. */
static bool ss_pt_matches(struct ss_world *w, uint32_t i, const char *const *v, size_t n)
{
	size_t want = 0;

	if (w->nodes[i].pt == NULL)
		return true;
	for (size_t k = 0; k < n; k++) {
		long j = ss_node_of(w, v[k]);
		struct ss_link *l = j >= 0 ? ss_link_get(w, i, (uint32_t)j) : NULL;

		want += l && l->up[ss_end(l, i)];
	}
	return plumtree_neighbors(w->nodes[i].pt) == want;
}

static void ss_read_views(struct ss_world *w, struct ss_graph *g, struct ss_overlay *o)
{
	for (uint32_t i = 0; i < w->n; i++) {
		const char *const *v;
		size_t na, np;

		if (!w->nodes[i].alive)
			continue;
		o->live++;
		na = hyparview_ops.active_view(w->nodes[i].mgr, &v);
		o->pt_mismatch += !ss_pt_matches(w, i, v, na);
		for (size_t k = 0; k < na; k++) {
			long j = ss_node_of(w, v[k]);

			if (j < 0 || !w->nodes[j].alive)
				o->dead_edges++;
			else if (g->deg[i] < SS_ACTIVE_MAX)
				g->adj[(size_t)i * SS_ACTIVE_MAX + g->deg[i]++] = (uint32_t)j;
		}
		o->edges += na;
		np = hyparview_ops.passive_view(w->nodes[i].mgr, &v);
		ss_view_sizes(o, (unsigned)na, (unsigned)np);
	}
}

static void ss_components(struct ss_world *w, const struct ss_graph *g, struct ss_overlay *o)
{
	uint32_t *any = xcalloc(w->n, sizeof(*any)), *mut = xcalloc(w->n, sizeof(*mut));
	unsigned ignored;

	for (uint32_t i = 0; i < w->n; i++)
		any[i] = mut[i] = i;
	for (uint32_t i = 0; i < w->n; i++) {
		for (unsigned k = 0; k < g->deg[i]; k++) {
			uint32_t j = g->adj[(size_t)i * SS_ACTIVE_MAX + k];

			ss_uf_union(any, i, j);
			if (ss_graph_has(g, j, i)) {
				o->mutual++;
				ss_uf_union(mut, i, j);
			}
		}
	}
	o->largest = ss_uf_largest(w, any, &o->components);
	o->largest_mutual = ss_uf_largest(w, mut, &ignored);
	free(any);
	free(mut);
}

void ss_overlay_measure(struct ss_world *w, struct ss_overlay *o)
{
	struct ss_graph g;

	memset(o, 0, sizeof(*o));
	o->amin = o->pmin = ~0u;
	g.adj = xcalloc((size_t)w->n * SS_ACTIVE_MAX, sizeof(*g.adj));
	g.deg = xcalloc(w->n, 1);
	ss_read_views(w, &g, o);
	ss_components(w, &g, o);
	if (o->live > 0) {
		o->aavg /= o->live;
		o->pavg /= o->live;
	} else {
		o->amin = o->pmin = 0;
	}
	free(g.adj);
	free(g.deg);
}

static double ss_pct(double a, double b)
{
	return b > 0 ? 100.0 * a / b : 0.0;
}

void ss_overlay_print(const struct ss_overlay *o, unsigned passive_max)
{
	printf("  live nodes                     %u\n", o->live);
	printf("  largest connected component    %u (%.2f %%), %u component%s;"
	       " mutual edges only: %u\n",
	       o->largest, ss_pct(o->largest, o->live), o->components,
	       o->components == 1 ? "" : "s", o->largest_mutual);
	printf("  active view size               min %u  avg %.3f  max %u\n", o->amin, o->aavg,
	       o->amax);
	printf("    histogram                   ");
	for (unsigned k = 0; k < SS_HIST - 1; k++)
		printf(" %u:%u", k, o->hist[k]);
	printf("\n  symmetry                       %.3f %% of %llu active entries mutual"
	       " (%llu name a crashed node)\n",
	       ss_pct((double)o->mutual, (double)(o->edges - o->dead_edges)),
	       (unsigned long long)o->edges, (unsigned long long)o->dead_edges);
	printf("  passive view fill              min %u  avg %.2f  max %u of %u (%.1f %%)\n",
	       o->pmin, o->pavg, o->pmax, passive_max, ss_pct(o->pavg, passive_max));
	printf("  plumtree neighbors != up active view: %u nodes\n", o->pt_mismatch);
}
