/* ss_fdtest.c: table (e), the failure detector (daemon/core/fd.c, run by every
 * node through ss_fd.c) at 100 and 1,000 nodes and at the run's size (up
 * to it). Per size, on the overlay of the run seed:
 * - its message cost per node per second in a settled overlay;
 * - false positives: 10 % of the nodes are starved of CPU (a tick every
 *   SS_STARVE ticks, reading only then) for a while; any DOWN about a node
 *   that is alive and not paused is a false one, reported per 1,000
 *   node-hours (of all live nodes);
 * - detection: a random node is paused (no reads, no ticks); every node
 *   linked to it must mark it down within failure_timeout_ms + one round,
 *   and once resumed it must be linked again in one overlay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simscale.h"

#define FDT_COST_MS    10000 /* window for the message cost */
#define FDT_STARVE_PCT 10
#define FDT_PAUSE_MS   5000
#define FDT_BACK_MS    30000 /* the resumed node must be back within this */
#define FDT_STEP_MS    100

struct fdt_row {
	unsigned nodes, starved;
	double msgs, bytes, all_msgs; /* per live node per second */
	uint64_t starve_ms, fp;
	double node_hours;
	unsigned watchers;
	uint64_t worst, back;
	double mean;
	char fail[200]; /* empty: passed */
};

static double fdt_per_node_s(uint64_t d, uint64_t ms, unsigned live)
{
	return (double)d * 1000.0 / (double)ms / live;
}

static void fdt_cost(struct ss_world *w, struct fdt_row *r)
{
	struct ss_counters c0 = w->c;
	unsigned live = ss_live(w);

	ss_run(w, FDT_COST_MS);
	r->msgs = fdt_per_node_s(w->c.fd_msgs - c0.fd_msgs, FDT_COST_MS, live);
	r->bytes = fdt_per_node_s(w->c.fd_bytes - c0.fd_bytes, FDT_COST_MS, live);
	r->all_msgs = fdt_per_node_s(w->c.sent - c0.sent, FDT_COST_MS, live);
}

/* Starve FDT_STARVE_PCT % of the live nodes for r->starve_ms, count the
 * false DOWN verdicts, then let them run normally again. */
static void fdt_starve(struct ss_world *w, struct fdt_row *r)
{
	uint32_t *live = xcalloc(w->n, sizeof(*live));
	unsigned n = 0;
	uint64_t f0 = w->c.fd_false;

	for (uint32_t i = 0; i < w->n; i++)
		if (w->nodes[i].alive)
			live[n++] = i;
	r->starved = n * FDT_STARVE_PCT / 100 ? n * FDT_STARVE_PCT / 100 : 1;
	for (unsigned c = 0; c < r->starved; c++) { /* partial Fisher-Yates */
		unsigned k = c + (unsigned)rng_below(&w->pick_rng, n - c);
		uint32_t t = live[c];

		live[c] = live[k];
		live[k] = t;
		w->nodes[live[c]].starved = true;
	}
	ss_run(w, r->starve_ms);
	r->fp = w->c.fd_false - f0;
	r->node_hours = (double)ss_live(w) * (double)r->starve_ms / 3.6e6;
	for (unsigned c = 0; c < r->starved; c++) {
		w->nodes[live[c]].starved = false;
		ss_net_release(w, live[c]);
	}
	free(live);
}

/* The nodes whose end of a link to v is up; how many. */
static unsigned fdt_watchers(struct ss_world *w, uint32_t v, bool *had)
{
	unsigned n = 0;

	for (uint32_t k = 0; k < w->nodes[v].nrefs; k++) {
		uint32_t p = w->nodes[v].refs[k].peer;

		had[p] = ss_net_up(w, p, v);
		n += had[p];
	}
	return n;
}

static bool fdt_detected(struct ss_world *w, const bool *had, uint64_t t0, uint64_t bound,
                         struct fdt_row *r)
{
	uint64_t sum = 0;

	for (uint32_t k = 0; k < w->n; k++) {
		uint64_t at = w->victim_down[k];

		if (!had[k])
			continue;
		if (at == 0 || at > t0 + bound) {
			snprintf(r->fail, sizeof(r->fail),
			         "%s did not mark the paused %s down in %llu ms",
			         w->nodes[k].spec->name, w->nodes[w->victim].spec->name,
			         (unsigned long long)bound);
			return false;
		}
		sum += at - t0;
		r->worst = at - t0 > r->worst ? at - t0 : r->worst;
	}
	r->mean = r->watchers ? (double)sum / r->watchers : 0;
	return true;
}

/* Whether v is linked again (both ends up) and the overlay is one. */
static bool fdt_back(struct ss_world *w, uint32_t v)
{
	struct ss_overlay ov;
	bool linked = false;

	for (uint32_t k = 0; k < w->nodes[v].nrefs && !linked; k++) {
		uint32_t p = w->nodes[v].refs[k].peer;

		linked = ss_net_up(w, p, v) && ss_net_up(w, v, p);
	}
	if (!linked)
		return false;
	ss_overlay_measure(w, &ov);
	return ov.components == 1 && ov.largest == ov.live;
}

static void fdt_pause(struct ss_world *w, struct fdt_row *r)
{
	uint32_t v = ss_random_live(w);
	bool *had = xcalloc(w->n, sizeof(*had));
	uint64_t t0 = w->now, bound = w->p.fd_ms + w->p.fd_ms / 2, t1;

	w->victim = v;
	w->victim_down = xcalloc(w->n, sizeof(*w->victim_down));
	r->watchers = fdt_watchers(w, v, had);
	ss_pause(w, v);
	ss_run(w, bound);
	if (!fdt_detected(w, had, t0, bound, r))
		goto out;
	ss_run(w, t0 + FDT_PAUSE_MS - w->now);
	ss_resume(w, v);
	t1 = w->now;
	while (!fdt_back(w, v) && w->now < t1 + FDT_BACK_MS)
		ss_run(w, FDT_STEP_MS);
	r->back = w->now - t1;
	if (!fdt_back(w, v))
		snprintf(r->fail, sizeof(r->fail),
		         "the resumed %s not back in one overlay in %u ms", w->nodes[v].spec->name,
		         FDT_BACK_MS);
out:
	free(had);
}

static void fdt_measure(const struct ss_opts *o, unsigned nodes, struct fdt_row *r)
{
	struct ss_opts small = *o;
	struct ss_world *w;

	memset(r, 0, sizeof(*r));
	small.nodes = nodes;
	r->nodes = nodes;
	r->starve_ms = o->full ? 300000 : 120000;
	w = ss_make(&small, o->seed, false, 1);
	fdt_cost(w, r);
	fdt_starve(w, r);
	if (r->fp)
		snprintf(r->fail, sizeof(r->fail), "%llu false DOWN verdicts",
		         (unsigned long long)r->fp);
	else
		fdt_pause(w, r);
	ss_world_free(w);
}

static void fdt_print(const struct fdt_row *r, double wall)
{
	printf("  %6u %8.2f %7.0f %8.2f | %5u %6llu %6llu %9.1f %10.2f | %4u %6llu %6.0f %6llu"
	       "  (%.1f s)%s%s\n",
	       r->nodes, r->msgs, r->bytes, r->all_msgs, r->starved,
	       (unsigned long long)(r->starve_ms / 1000), (unsigned long long)r->fp, r->node_hours,
	       r->node_hours > 0 ? (double)r->fp * 1000.0 / r->node_hours : 0.0, r->watchers,
	       (unsigned long long)r->worst, r->mean, (unsigned long long)r->back, wall,
	       r->fail[0] ? "  <-- " : "", r->fail);
	fflush(stdout);
}

void ss_test_detector(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall();
	unsigned sizes[3], nsizes = 0;
	bool ok = true;

	if (o->fd_ms == 0) {
		printf(
		    "(e) failure detector: off (--fd-ms 0: a crash closes its links at once)\n\n");
		return;
	}
	for (unsigned k = 0; k < 3; k++) { /* 100, 1,000 and the run's size, up to it */
		unsigned n = k == 0 ? 100 : k == 1 ? 1000 : o->nodes;

		if (n <= o->nodes && (nsizes == 0 || n > sizes[nsizes - 1]))
			sizes[nsizes++] = n;
	}
	if (nsizes == 0)
		sizes[nsizes++] = o->nodes;
	printf("(e) failure detector (daemon/core/fd.c on every node): seed %llu,"
	       " failure_timeout_ms %u, rounds of %u ms; cost in a settled overlay over %u ms;"
	       " %u %% of the nodes starved (a tick every %u, reading only then); then a random"
	       " node paused %u ms (bound: timeout + one round = %u ms)\n",
	       (unsigned long long)o->seed, o->fd_ms, o->fd_ms / 2 > 50 ? o->fd_ms / 2 : 50,
	       FDT_COST_MS, FDT_STARVE_PCT, SS_STARVE * SS_TICK_MS, FDT_PAUSE_MS,
	       o->fd_ms + o->fd_ms / 2);
	printf("   nodes  fd msg/s  fd B/s  all msg/s | starv  for_s  false  node-hrs  FP/1000nh"
	       " | wtch  worst   mean   back  (per node per second; times in ms)\n");
	for (unsigned s = 0; s < nsizes; s++) {
		double t1 = ss_wall();
		struct fdt_row r;

		fdt_measure(o, sizes[s], &r);
		fdt_print(&r, ss_wall() - t1);
		ok = ok && r.fail[0] == '\0';
	}
	printf("  (false: DOWN verdicts about a live node that was not paused; wtch: nodes linked"
	       " to the paused one, each of which must mark it down; back: from resume until it"
	       " is linked again in one overlay)\n");
	ss_verdict(t, ok,
	           "failure detector: no false positive when starved, a pause seen by every"
	           " neighbour within timeout + round, back after resume",
	           t0);
}
