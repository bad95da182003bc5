/* ss_tables.c: tables (a) overlay health, (c) Plumtree redundancy and hops
 * in a stable overlay and (d) memory per node, all on the overlay of the run
 * seed; the connectivity check over many seeds; the determinism check. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simscale.h"

#define SS_SETTLE_SHUFFLES 3           /* shuffle periods after the last join: tables (a, c, d) */
#define SS_SEEDS_SHUFFLES  4           /* and for each seed of the connectivity check */
#define SS_RMR_BCASTS      10          /* broadcasts in table (c) */
#define SS_RMR_GAP_MS      2000        /* between them; each is measured at the next */
#define SS_RMR_MAX         0.05        /* "RMR near 0" once the tree has settled */
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

struct ss_world *ss_make(const struct ss_opts *o, uint64_t seed, bool plumtree, unsigned shuffles)
{
	struct ss_params p;
	struct ss_world *w;

	ss_params_default(&p, seed, o->nodes);
	p.plumtree = plumtree;
	p.fd_ms = o->fd_ms;
	p.join_every_ms = o->join_ms;
	w = ss_world_new(&p);
	ss_build(w, (uint64_t)shuffles * p.shuffle_ms);
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
	printf(
	    "    plumtree core (plumtree_memory)        %8zu bytes  (the core's own accounting)\n",
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
	struct ss_world *w = ss_make(o, o->seed, true, SS_SETTLE_SHUFFLES);
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

struct ss_seed_res {
	uint64_t seed;
	bool ok;
	char line[256];
};

static void ss_one_seed(const struct ss_opts *o, uint64_t seed, struct ss_seed_res *r)
{
	double t0 = ss_wall();
	struct ss_world *w = ss_make(o, seed, false, SS_SEEDS_SHUFFLES);
	struct ss_overlay ov;

	ss_overlay_measure(w, &ov);
	r->seed = seed;
	r->ok = ov.components == 1 && ov.largest == ov.live;
	snprintf(r->line, sizeof(r->line),
	         "  seed %-6llu components %u, largest %u of %u, active avg %.3f min %u,"
	         " symmetry %.3f %%, passive avg %.2f  (%.1f s)%s",
	         (unsigned long long)seed, ov.components, ov.largest, ov.live, ov.aavg, ov.amin,
	         ov.edges ? 100.0 * (double)ov.mutual / (double)ov.edges : 0.0, ov.pavg,
	         ss_wall() - t0, r->ok ? "" : "  <-- ISLANDS");
	ss_world_free(w);
}

static unsigned ss_seeds_serial(const struct ss_opts *o)
{
	unsigned good = 0;

	for (unsigned k = 0; k < o->seeds; k++) {
		struct ss_seed_res r;

		ss_one_seed(o, o->seed + k, &r);
		printf("%s\n", r.line);
		fflush(stdout);
		good += r.ok;
	}
	return good;
}

/* Worker j of o->jobs runs seeds j, j + jobs, ... and writes its results. */
_Noreturn static void ss_seeds_worker(const struct ss_opts *o, unsigned j, int fd)
{
	for (unsigned k = j; k < o->seeds; k += o->jobs) {
		struct ss_seed_res r;

		memset(&r, 0, sizeof(r));
		ss_one_seed(o, o->seed + k, &r);
		if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(1);
	}
	close(fd);
	_exit(0);
}

/* Read results as they come; a worker that dies loses its seeds. */
static unsigned ss_seeds_collect(const struct ss_opts *o, struct pollfd *pf, unsigned *got)
{
	unsigned good = 0, open = o->jobs;

	while (open > 0 && poll(pf, o->jobs, -1) > 0) {
		for (unsigned j = 0; j < o->jobs; j++) {
			struct ss_seed_res r;

			if (pf[j].fd < 0 || pf[j].revents == 0)
				continue;
			if (read(pf[j].fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
				close(pf[j].fd);
				pf[j].fd = -1;
				open--;
				continue;
			}
			printf("%s\n", r.line);
			fflush(stdout);
			good += r.ok;
			(*got)++;
		}
	}
	return good;
}

static unsigned ss_seeds_forked(const struct ss_opts *o)
{
	struct pollfd *pf = xcalloc(o->jobs, sizeof(*pf));
	unsigned good, got = 0;

	fflush(stdout);
	for (unsigned j = 0; j < o->jobs; j++) {
		int fd[2];
		pid_t pid;

		if (pipe(fd) < 0 || (pid = fork()) < 0) {
			perror("simscale: worker");
			exit(1);
		}
		if (pid == 0) {
			close(fd[0]);
			ss_seeds_worker(o, j, fd[1]); /* never returns */
		}
		close(fd[1]);
		pf[j] = (struct pollfd){.fd = fd[0], .events = POLLIN};
	}
	good = ss_seeds_collect(o, pf, &got);
	while (wait(NULL) > 0)
		;
	free(pf);
	if (got != o->seeds)
		printf("  %u seeds lost (a worker died)\n", o->seeds - got);
	return good;
}

void ss_test_components(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall();
	unsigned good;

	printf("(a') connectivity over %u seeds (%llu .. %llu), %u nodes each joining every %u ms,"
	       " hyparview only (no plumtree core), after %u shuffle period(s)%s\n",
	       o->seeds, (unsigned long long)o->seed, (unsigned long long)(o->seed + o->seeds - 1),
	       o->nodes, o->join_ms, SS_SEEDS_SHUFFLES, o->jobs > 1 ? " (parallel workers)" : "");
	good = o->jobs > 1 ? ss_seeds_forked(o) : ss_seeds_serial(o);
	printf("  a single connected component in %u of %u seeds\n", good, o->seeds);
	ss_verdict(t, good == o->seeds, "overlay: a single component on every seed", t0);
}

/* ---- determinism ---- */

static uint64_t ss_digest_run(const struct ss_opts *o, uint64_t seed)
{
	struct ss_opts small = *o;
	struct ss_world *w;
	uint64_t d;

	small.nodes = o->nodes < 200 ? o->nodes : 200;
	w = ss_make(&small, seed, true, 0);
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
