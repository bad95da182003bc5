/* ss_reliab.c: table (b), broadcast reliability after a simultaneous crash
 * of 0 / 20 / 50 / 80 / 95 % of the nodes, right after it and after 1, 2
 * and 5 shuffle periods of healing. Every row starts from the same overlay
 * (the run seed), warms the broadcast tree up, crashes its share at once
 * (the sets are nested: one random order of the nodes, a longer prefix of
 * it) and broadcasts from a random live origin at once; each broadcast is
 * measured SS_WINDOW_MS later. */
#include <stdio.h>

#include "simscale.h"

#define SS_WINDOW_MS 5000 /* time given to a broadcast to be delivered */
#define SS_WARMUP    3    /* broadcasts before the crash: a settled tree */
#define SS_GOAL      0.999
#define SS_SETTLE    1 /* shuffle periods between the last join and the warm-up */

static const unsigned ss_pcts[] = {0, 20, 50, 80, 95};
static const unsigned ss_heals[] = {0, 1, 2, 5}; /* shuffle periods after the crash */
#define SS_NPCT  (sizeof(ss_pcts) / sizeof(ss_pcts[0]))
#define SS_NHEAL (sizeof(ss_heals) / sizeof(ss_heals[0]))

struct ss_row {
	unsigned crashed, live;
	double rel[SS_NHEAL];
	double first_late; /* the first broadcast's share at the end */
	uint64_t dups;     /* deliveries of a broadcast a node had delivered already */
	struct ss_overlay ov;
};

static double ss_share(const struct ss_bcast *b)
{
	return b->live ? (double)b->got / (double)b->live : 0.0;
}

static void ss_warm_up(struct ss_world *w)
{
	for (int k = 0; k < SS_WARMUP; k++) {
		ss_broadcast(w, ss_random_live(w));
		ss_run(w, 2000);
	}
}

static void ss_crash_and_heal(struct ss_world *w, unsigned pct, struct ss_row *r)
{
	uint64_t crash_at = w->now;
	size_t first = w->nbc;

	r->crashed = ss_crash_fraction(w, pct);
	r->live = ss_live(w);
	for (size_t h = 0; h < SS_NHEAL; h++) {
		uint64_t at = crash_at + (uint64_t)ss_heals[h] * w->p.shuffle_ms;
		size_t b;

		if (at > w->now)
			ss_run(w, at - w->now);
		b = ss_broadcast(w, ss_random_live(w));
		ss_run(w, SS_WINDOW_MS);
		r->rel[h] = ss_share(&w->bc[b]);
	}
	r->first_late = ss_share(&w->bc[first]);
	r->dups = 0;
	for (size_t b = 0; b < w->nbc; b++)
		r->dups += w->bc[b].dups;
	ss_overlay_measure(w, &r->ov);
}

static void ss_row_print(unsigned pct, const struct ss_row *r, double wall)
{
	printf("  %3u %% %6u %6u ", pct, r->crashed, r->live);
	for (size_t h = 0; h < SS_NHEAL; h++)
		printf(" %9.3f %%", 100.0 * r->rel[h]);
	printf(" | %9.3f %% %6u %7u %7.2f  (%.1f s)\n", 100.0 * r->first_late, r->ov.components,
	       r->ov.largest, r->ov.aavg, wall);
	fflush(stdout);
}

static void ss_header(const struct ss_opts *o)
{
	printf("(b) broadcast reliability after a simultaneous crash: seed %llu, %u nodes (joined,"
	       " %u shuffle period(s), %u warm-up broadcasts), failure timeout %u ms (fd.c);\n"
	       "    %% of the live nodes delivering a broadcast from a random live origin within"
	       " %u ms, sent right after the crash and after 1, 2, 5 shuffle periods (%u ms)\n",
	       (unsigned long long)o->seed, o->nodes, SS_SETTLE, SS_WARMUP, o->fd_ms, SS_WINDOW_MS,
	       10000u);
	printf("  crash  dead   live   right after   +1 shuffle  +2 shuffles  +5 shuffles |"
	       " 1st at end  comps largest  active\n");
}

/* One row: the overlay of the run seed, warmed up, pct % crashed. */
static void ss_row(const struct ss_opts *o, unsigned pct, struct ss_row *r)
{
	double t1 = ss_wall();
	struct ss_world *w = ss_make(o, o->seed, true, SS_SETTLE);

	ss_warm_up(w);
	ss_crash_and_heal(w, pct, r);
	ss_world_free(w);
	ss_row_print(pct, r, ss_wall() - t1);
}

void ss_test_reliability(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall();
	bool ok = true;
	uint64_t dups = 0;

	ss_header(o);
	for (size_t p = 0; p < SS_NPCT; p++) {
		struct ss_row r;

		ss_row(o, ss_pcts[p], &r);
		dups += r.dups;
		if (ss_pcts[p] == 50)
			ok = r.rel[SS_NHEAL - 1] >= SS_GOAL;
	}
	printf("  (1st at end: the right-after broadcast's share at the end, after anti-entropy;"
	       " comps/largest/active: the live overlay at the end; duplicate deliveries in all"
	       " rows: %llu)\n",
	       (unsigned long long)dups);
	ss_verdict(t, ok, "reliability: >= 99.9 % after a 50 % crash once healed (5 shuffles)", t0);
}
