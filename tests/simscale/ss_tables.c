/* ss_tables.c: tables (a) overlay health, (c) Plumtree redundancy and hops
 * in a stable overlay and (d) memory per node, all on the overlay of the run
 * seed; the connectivity check over many seeds; the determinism check. */
#include <stdio.h>
#include <stdlib.h>

#include "simscale.h"

#define SS_SETTLE_SHUFFLES 3    /* shuffle periods run after the last join */
#define SS_RMR_BCASTS      10   /* broadcasts in table (c) */
#define SS_RMR_GAP_MS      2000 /* between them; each is measured at the next */
#define SS_RMR_MAX         0.05 /* "RMR near 0" once the tree has settled */
#define SS_MEM_MAX         (64 * 1024) /* sanity bound: heap bytes per node */

void ss_verdict(struct ss_tally *t, bool ok, const char *name, double started)
{
	printf("%s: %s (%.1f s wall)\n\n", ok ? "PASS" : "FAIL", name, ss_wall() - started);
	fflush(stdout);
	if (ok)
		t->passed++;
	else
		t->failed++;
}

struct ss_world *ss_make(const struct ss_opts *o, uint64_t seed, bool plumtree)
{
	struct ss_params p;
	struct ss_world *w;

	ss_params_default(&p, seed, o->nodes);
	p.plumtree = plumtree;
	p.fd_ms = o->fd_ms;
	w = ss_world_new(&p);
	ss_build(w, (uint64_t)SS_SETTLE_SHUFFLES * p.shuffle_ms);
	return w;
}

static void ss_print_counters(const struct ss_world *w)
{
	const struct ss_counters *c = &w->c;

	printf("  messages: %llu sent, %llu delivered, %llu on no up link, %llu lost in flight;"
	       " refused %llu, undecodable %llu, bad actions %llu\n",
	       (unsigned long long)c->sent, (unsigned long long)c->delivered,
	       (unsigned long long)c->nolink, (unsigned long long)c->inflight,
	       (unsigned long long)c->refused, (unsigned long long)c->undecodable,
	       (unsigned long long)c->bad_action);
}

/* ---- (a) ---- */

static bool ss_table_a(struct ss_world *w, double built)
{
	struct ss_overlay ov;

	ss_overlay_measure(w, &ov);
	printf("(a) overlay health: seed %llu, %u nodes joined one every %u ms through random"
	       " earlier nodes, then %u shuffle periods (%u ms); t = %llu ms, built in %.1f s"
	       " wall\n",
	       (unsigned long long)w->p.seed, w->p.nodes, w->p.join_every_ms, SS_SETTLE_SHUFFLES,
	       w->p.shuffle_ms, (unsigned long long)w->now, built);
	ss_overlay_print(&ov, 30);
	ss_print_counters(w);
	return ov.components == 1 && ov.largest == ov.live;
}

/* ---- (c) ---- */

static double ss_rmr(const struct ss_bcast *b)
{
	return b->got > 1 ? (double)b->gossip / (double)(b->got - 1) - 1.0 : 0.0;
}

static void ss_rmr_row(const struct ss_world *w, size_t i)
{
	const struct ss_bcast *b = &w->bc[i];

	printf("  %5zu  %-18s %6u/%-6u %9llu %8llu %8.4f %9u %9.2f %5u\n", i + 1,
	       w->nodes[b->origin].spec->name, b->got, b->live, (unsigned long long)b->gossip,
	       (unsigned long long)b->catch_up, ss_rmr(b), b->hops_max,
	       b->got ? (double)b->hops_sum / b->got : 0.0, b->dups);
}

static size_t ss_eager_links(const struct ss_world *w)
{
	size_t n = 0;

	for (uint32_t i = 0; i < w->n; i++)
		if (w->nodes[i].pt)
			n += plumtree_eager(w->nodes[i].pt);
	return n;
}

static bool ss_table_c(struct ss_world *w)
{
	bool ok = true;

	for (size_t i = 0; i < SS_RMR_BCASTS; i++) {
		ss_broadcast(w, ss_random_live(w));
		ss_run(w, SS_RMR_GAP_MS);
	}
	printf("(c) plumtree in a stable overlay: seed %llu, %u broadcasts %u ms apart from random"
	       " live origins\n",
	       (unsigned long long)w->p.seed, SS_RMR_BCASTS, SS_RMR_GAP_MS);
	printf("  bcast  origin             delivered      gossip catch-up      RMR  max hops"
	       "  avg hops  dups\n");
	for (size_t i = 0; i < w->nbc; i++) {
		ss_rmr_row(w, i);
		ok = ok && w->bc[i].got == w->bc[i].live && w->bc[i].dups == 0;
	}
	printf("  RMR = m / (n - 1) - 1, m = Gossip messages carrying the broadcast, n = nodes that"
	       " delivered it\n");
	printf("  eager (tree) link ends now: %zu (a spanning tree has 2 x (n - 1) = %u)\n",
	       ss_eager_links(w), 2 * (ss_live(w) - 1));
	return ok && ss_rmr(&w->bc[w->nbc - 1]) <= SS_RMR_MAX;
}

/* ---- (d) ---- */

static bool ss_table_d(const struct ss_world *w, size_t heap0)
{
	size_t heap = ss_heap_in_use() - heap0, sim = ss_sim_bytes(w);
	size_t pt = ss_plumtree_bytes(w), n = w->n;
	size_t hv = heap > sim + pt ? heap - sim - pt : 0;

	printf("(d) memory per simulated node: %zu nodes, after table (c)'s broadcasts\n", n);
	printf("  heap in use for the world / N            %8zu bytes  (allocator's count of"
	       " live blocks, delta from before the world)\n",
	       heap / n);
	printf("    simulator's own (node, spec, links)    %8zu bytes  (its own accounting)\n",
	       sim / n);
	printf("    plumtree core (plumtree_memory)        %8zu bytes  (the core's own accounting)\n",
	       pt / n);
	printf("    hyparview core and allocator overhead  %8zu bytes  (the rest: heap - sim -"
	       " plumtree)\n",
	       hv / n);
	printf("  process RSS / N                          %8zu bytes  (whole process: code,"
	       " libraries, freed pages kept)\n",
	       ss_rss() / n);
	return heap / n <= SS_MEM_MAX;
}

void ss_test_tables(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall(), built;
	size_t heap0 = ss_heap_in_use();
	struct ss_world *w = ss_make(o, o->seed, true);
	bool ok;

	built = ss_wall() - t0;
	ok = ss_table_a(w, built);
	ss_verdict(t, ok, "overlay: a single connected component after the joins", t0);
	t0 = ss_wall();
	ss_verdict(t, ss_table_c(w), "plumtree: every live node delivers once, RMR near 0 settled",
	           t0);
	t0 = ss_wall();
	ss_verdict(t, ss_table_d(w, heap0), "memory: measured, within the sanity bound", t0);
	ss_world_free(w);
}

/* ---- connectivity over many seeds ---- */

static bool ss_one_seed(const struct ss_opts *o, uint64_t seed)
{
	double t0 = ss_wall();
	struct ss_world *w = ss_make(o, seed, false);
	struct ss_overlay ov;
	bool ok;

	ss_overlay_measure(w, &ov);
	ok = ov.components == 1 && ov.largest == ov.live;
	printf("  seed %-6llu components %u, largest %u of %u, active avg %.3f min %u,"
	       " symmetry %.3f %%, passive avg %.2f  (%.1f s)%s\n",
	       (unsigned long long)seed, ov.components, ov.largest, ov.live, ov.aavg, ov.amin,
	       ov.edges ? 100.0 * (double)ov.mutual / (double)ov.edges : 0.0, ov.pavg,
	       ss_wall() - t0, ok ? "" : "  <-- ISLANDS");
	fflush(stdout);
	ss_world_free(w);
	return ok;
}

void ss_test_components(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall();
	unsigned good = 0;

	printf("(a') connectivity over %u seeds (%llu .. %llu), %u nodes each, hyparview only"
	       " (no plumtree core), after %u shuffle periods\n",
	       o->seeds, (unsigned long long)o->seed, (unsigned long long)(o->seed + o->seeds - 1),
	       o->nodes, SS_SETTLE_SHUFFLES);
	for (unsigned k = 0; k < o->seeds; k++)
		good += ss_one_seed(o, o->seed + k);
	printf("  a single connected component in %u of %u seeds\n", good, o->seeds);
	ss_verdict(t, good == o->seeds, "overlay: a single component on every seed", t0);
}

/* ---- determinism ---- */

static uint64_t ss_digest_run(const struct ss_opts *o, uint64_t seed)
{
	struct ss_opts small = *o;
	struct ss_world *w;
	uint64_t d;

	small.nodes = o->nodes < 300 ? o->nodes : 300;
	w = ss_make(&small, seed, true);
	ss_broadcast(w, ss_random_live(w));
	ss_run(w, 2000);
	ss_crash_fraction(w, 30);
	ss_broadcast(w, ss_random_live(w));
	ss_run(w, 12000);
	d = w->c.digest ^ w->bc[1].got;
	ss_world_free(w);
	return d;
}

void ss_test_determinism(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall();
	uint64_t a = ss_digest_run(o, o->seed), b = ss_digest_run(o, o->seed);
	uint64_t c = ss_digest_run(o, o->seed + 1);

	printf("determinism: seed %llu twice: %016llx %016llx; seed %llu: %016llx\n",
	       (unsigned long long)o->seed, (unsigned long long)a, (unsigned long long)b,
	       (unsigned long long)(o->seed + 1), (unsigned long long)c);
	ss_verdict(t, a == b && a != c, "determinism: a seed reproduces its run", t0);
}
