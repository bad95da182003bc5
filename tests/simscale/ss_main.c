/* ss_main.c: the command line of build/tests/simscale.
 *
 *   simscale [--suite check|full] [--seed N] [--nodes N] [--seeds K]
 *            [--fd-ms MS] [--join-ms MS] [--jobs J]
 *
 * check: 1,000 nodes, 3 seeds for the connectivity check (make check);
 * full: 10,000 nodes, 100 seeds (make sim). --fd-ms: the failure
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
	fputs("usage: simscale [--suite check|full] [--seed N] [--nodes N] [--seeds K]"
	      " [--fd-ms MS] [--join-ms MS] [--jobs J]\n",
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

static void ss_parse(int argc, char **argv, struct ss_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

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
}

int main(int argc, char **argv)
{
	struct ss_opts o = {.seed = 1, .fd_ms = 2000, .join_ms = 2, .jobs = 1};
	struct ss_tally t = {0, 0};
	double t0 = ss_wall();

	ss_parse(argc, argv, &o);
	printf("simscale: seed %llu (suite %s, %u nodes, %u seeds, join every %u ms, failure"
	       " timeout %u ms)\n",
	       (unsigned long long)o.seed, o.full ? "full" : "check", o.nodes, o.seeds, o.join_ms,
	       o.fd_ms);
	fflush(stdout);
	ss_test_tables(&o, &t);
	ss_test_components(&o, &t);
	ss_test_reliability(&o, &t);
	ss_test_detector(&o, &t);
	ss_test_determinism(&o, &t);
	printf("simscale: %.1f s wall\n", ss_wall() - t0);
	printf("simscale: %u passed, %u failed\n", t.passed, t.failed);
	return t.failed ? 1 : 0;
}
