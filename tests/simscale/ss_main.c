/* ss_main.c: the command line of build/tests/simscale.
 *
 *   simscale [--suite check|full] [--scenario NAME] [--seed N] [--nodes N]
 *            [--seeds K] [--fd-ms MS] [--join-ms MS] [--jobs J] [--list]
 *
 * check: 1,000 nodes, 3 seeds for the connectivity check, a 200-node full
 * mesh (make check); full: 10,000 nodes, 100 seeds, full meshes of 200 and
 * 1,000 (make sim). --scenario: one of --list's only (with mesh, --nodes is
 * the mesh's size). --fd-ms: the failure
 * detector's failure_timeout_ms (2000; 0: no detector, a crash closes its
 * links at once); --join-ms: one join every MS
 * (2); --jobs: worker processes for the many-seed connectivity check (the
 * results do not depend on it). Every run prints its seed first; the same
 * arguments reproduce a run exactly. Ends with "simscale: N passed, N
 * failed" and exits non-zero on a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simscale.h"

double ss_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ss_usage(void)
{
	fputs("usage: simscale [--suite check|full] [--scenario NAME] [--seed N] [--nodes N]"
	      " [--seeds K] [--fd-ms MS] [--join-ms MS] [--jobs J] [--list]\n",
	      stderr);
	exit(2);
}

static unsigned long long ss_number(const char *s)
{
	char *end;
	unsigned long long v;

	if (s == NULL)
		ss_usage();
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0')
		ss_usage();
	return v;
}

/* The scenarios, in the order a suite runs them. */
static const struct ss_scenario {
	const char *name, *what;
	void (*run)(const struct ss_opts *, struct ss_tally *);
} ss_scenarios[] = {
    {"tables", "(a) the overlay after the joins, (c) plumtree, (d) memory", ss_test_tables},
    {"components", "(a') a single connected component over many seeds", ss_test_components},
    {"reliability", "(b) broadcast reliability after a simultaneous crash", ss_test_reliability},
    {"detector", "(e) the failure detector: starved, then a node paused", ss_test_detector},
    {"mesh", "(f) a full mesh: formation, then 10 % crashed at once", ss_test_mesh},
    {"determinism", "a seed reproduces its run", ss_test_determinism},
};
#define SS_NSCEN (sizeof(ss_scenarios) / sizeof(ss_scenarios[0]))

static void ss_list(void)
{
	for (size_t k = 0; k < SS_NSCEN; k++)
		printf("%-12s %s\n", ss_scenarios[k].name, ss_scenarios[k].what);
	exit(0);
}

static void ss_parse(int argc, char **argv, struct ss_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--list") == 0)
			ss_list();
		if (strcmp(a, "--suite") == 0 && v && strcmp(v, "full") == 0)
			o->full = true;
		else if (strcmp(a, "--suite") == 0 && v && strcmp(v, "check") == 0)
			o->full = false;
		else if (strcmp(a, "--seed") == 0)
			o->seed = ss_number(v);
		else if (strcmp(a, "--nodes") == 0)
			o->nodes = (unsigned)ss_number(v), o->nodes_set = true;
		else if (strcmp(a, "--seeds") == 0)
			o->seeds = (unsigned)ss_number(v), o->seeds_set = true;
		else if (strcmp(a, "--fd-ms") == 0)
			o->fd_ms = (unsigned)ss_number(v);
		else if (strcmp(a, "--join-ms") == 0)
			o->join_ms = (unsigned)ss_number(v);
		else if (strcmp(a, "--jobs") == 0)
			o->jobs = (unsigned)ss_number(v);
		else if (strcmp(a, "--scenario") == 0 && v)
			o->scenario = v;
		else
			ss_usage();
		i++;
	}
	if (!o->nodes_set)
		o->nodes = o->full ? 10000 : 1000;
	if (!o->seeds_set)
		o->seeds = o->full ? 100 : 3;
	if (o->nodes < 20 || o->seeds < 1 || o->join_ms < 1 || o->jobs < 1 || o->jobs > 64)
		ss_usage();
	if (o->scenario && strcmp(o->scenario, "mesh") == 0 && o->nodes_set)
		o->mesh_nodes = o->nodes;
}

int main(int argc, char **argv)
{
	struct ss_opts o = {.seed = 1, .fd_ms = 2000, .join_ms = 2, .jobs = 1};
	struct ss_tally t = {0, 0};
	double t0 = ss_wall();
	bool found = false;

	ss_parse(argc, argv, &o);
	printf("simscale: seed %llu (suite %s, %u nodes, %u seeds, join every %u ms, failure"
	       " timeout %u ms)\n",
	       (unsigned long long)o.seed, o.full ? "full" : "check", o.nodes, o.seeds, o.join_ms,
	       o.fd_ms);
	fflush(stdout);
	for (size_t k = 0; k < SS_NSCEN; k++) {
		if (o.scenario && strcmp(o.scenario, ss_scenarios[k].name) != 0)
			continue;
		found = true;
		ss_scenarios[k].run(&o, &t);
	}
	if (!found) {
		fprintf(stderr, "simscale: no scenario named %s (see --list)\n", o.scenario);
		return 2;
	}
	printf("simscale: %.1f s wall\n", ss_wall() - t0);
	printf("simscale: %u passed, %u failed\n", t.passed, t.failed);
	return t.failed ? 1 : 0;
}
