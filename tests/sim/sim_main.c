/* sim_main.c: the simulator's command line.
 *
 *   sim [--suite check|full] [--seed N|random] [--nodes N] [--scenario NAME]
 *       [--manager NAME] [--trace NODE|all] [--list]
 *
 * Prints "sim: seed=N" first; the same seed (and options) gives the same run
 * and the same output, in any build. `--suite check` (make check) runs every
 * scenario but chaos once at a moderate size (smaller under ASan), one line
 * each, then "sim: P passed, F failed"; `--suite full` (make sim) runs each,
 * chaos included, at growing sizes and prints tables. A failure names the
 * command line that reproduces it; `--trace NODE|all` then follows it step
 * by step. `--manager` picks the core (full_mesh, hyparview). Exits 1 if any
 * scenario failed, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_SANITIZED 1
#endif
#endif
#ifndef SIM_SANITIZED
#define SIM_SANITIZED 0
#endif

struct sim_cli {
	bool full;
	uint64_t seed;
	unsigned nodes; /* 0: each scenario's own */
	const char *only;
	const struct sim_manager *mgr;
	const char *trace;
	unsigned passed, failed;
};

static void sim_usage(FILE *f)
{
	fputs("usage: sim [--suite check|full] [--seed N|random] [--nodes N] [--scenario NAME]\n"
	      "           [--manager NAME] [--trace NODE|all] [--list]\n",
	      f);
}

/* A fresh seed from the kernel, for exploring; printed, so reproducible. */
static uint64_t sim_random_seed(void)
{
	uint64_t s = 0;
	FILE *f = fopen("/dev/urandom", "rb");

	if (f == NULL || fread(&s, sizeof(s), 1, f) != 1) {
		fputs("sim: cannot read /dev/urandom\n", stderr);
		exit(1);
	}
	fclose(f);
	return s % 1000000000ULL;
}

static int sim_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	*out = strtoull(s, &end, 10);
	return *end ? -1 : 0;
}

static int sim_parse_opt(struct sim_cli *c, const char *opt, const char *val)
{
	uint64_t v;

	if (strcmp(opt, "--suite") == 0 && val && strcmp(val, "check") == 0)
		c->full = false;
	else if (strcmp(opt, "--suite") == 0 && val && strcmp(val, "full") == 0)
		c->full = true;
	else if (strcmp(opt, "--seed") == 0 && val && strcmp(val, "random") == 0)
		c->seed = sim_random_seed();
	else if (strcmp(opt, "--seed") == 0 && sim_parse_u64(val, &c->seed) == 0)
		;
	else if (strcmp(opt, "--nodes") == 0 && sim_parse_u64(val, &v) == 0 && v >= 4 && v <= 5000)
		c->nodes = (unsigned)v;
	else if (strcmp(opt, "--trace") == 0 && val)
		c->trace = val;
	else if (strcmp(opt, "--scenario") == 0 && val)
		c->only = val;
	else if (strcmp(opt, "--manager") == 0 && val && (c->mgr = sim_manager_find(val)))
		;
	else
		return -1;
	return 0;
}

static int sim_parse(struct sim_cli *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--list") == 0) {
			for (size_t k = 0; k < sim_nscenarios; k++)
				printf("%-10s %s\n", sim_scenarios[k].name, sim_scenarios[k].what);
			exit(0);
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			sim_usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc || sim_parse_opt(c, argv[i], argv[i + 1]) < 0)
			return -1;
		i++;
	}
	return 0;
}

/* Each scenario's world seed comes from the run seed and its name, so one
 * scenario run alone behaves as it did in the suite. */
static void sim_opts_for(const struct sim_cli *c, const struct sim_scenario *s, struct sim_opts *o)
{
	uint64_t h = hash_bytes(HASH_INIT, &c->seed, sizeof(c->seed));

	sim_opts_default(o, hash_bytes(h, s->name, strlen(s->name)), 0);
	o->mgr = c->mgr;
	o->trace = c->trace;
}

static void sim_run_one(struct sim_cli *c, const struct sim_scenario *s, unsigned nodes,
                        struct sim_result *r)
{
	struct sim_opts o;

	sim_opts_for(c, s, &o);
	memset(r, 0, sizeof(*r));
	s->run(&o, nodes, r);
	if (r->ok) {
		c->passed++;
		return;
	}
	c->failed++;
	printf("sim: FAIL %s (%s, %u nodes, seed=%llu): %s\n"
	       "sim:   reproduce: build/tests/sim --seed %llu --scenario %s --nodes %u%s%s\n",
	       s->name, c->mgr->name, nodes, (unsigned long long)c->seed, r->msg,
	       (unsigned long long)c->seed, s->name, nodes, c->mgr->full_mesh ? "" : " --manager ",
	       c->mgr->full_mesh ? "" : c->mgr->name);
}

static void sim_check_suite(struct sim_cli *c, const struct sim_scenario *s)
{
	unsigned nodes = SIM_SANITIZED ? s->san_nodes : s->check_nodes;
	struct sim_result r;

	if (c->nodes)
		nodes = c->nodes;
	else if (nodes == 0)
		nodes = s->full_nodes[0];
	sim_run_one(c, s, nodes, &r);
	if (r.ok)
		printf("sim: ok %s (%u nodes): %s\n", s->name, nodes, r.msg);
	fflush(stdout);
}

static void sim_table_row(struct sim_cli *c, const struct sim_scenario *s, unsigned nodes)
{
	struct sim_result r;

	sim_run_one(c, s, nodes, &r);
	if (r.ok && r.skipped)
		printf("  %6u  %s\n", nodes, r.msg);
	else if (r.ok)
		printf("  %6u  %11llu  %9.1f  %9.1f  %15.2f  %13.1f\n", nodes,
		       (unsigned long long)r.converge_ms, (double)r.tot.sent / nodes,
		       (double)r.tot.bytes / 1024.0 / nodes, r.idle_msgs, r.idle_bytes);
	if (r.ok && r.note)
		printf("          %s\n", r.msg);
	fflush(stdout);
}

static void sim_full_suite(struct sim_cli *c, const struct sim_scenario *s)
{
	printf("\nsim: %s: %s (%s)\n", s->name, s->what, c->mgr->name);
	printf("  %6s  %11s  %9s  %9s  %15s  %13s\n", "nodes", "converge_ms", "msgs/node",
	       "KiB/node", "idle msg/node/s", "idle B/node/s");
	if (c->nodes) {
		sim_table_row(c, s, c->nodes);
		return;
	}
	for (size_t k = 0; k < 4 && s->full_nodes[k]; k++)
		sim_table_row(c, s, s->full_nodes[k]);
}

int main(int argc, char **argv)
{
	struct sim_cli c = {.seed = 1, .mgr = sim_manager_find("full_mesh")};
	bool found = false;

	if (sim_parse(&c, argc, argv) < 0) {
		sim_usage(stderr);
		return 2;
	}
	printf("sim: seed=%llu\n", (unsigned long long)c.seed);
	for (size_t k = 0; k < sim_nscenarios; k++) {
		if (c.only ? strcmp(c.only, sim_scenarios[k].name) != 0
		           : !c.full && sim_scenarios[k].check_nodes == 0)
			continue;
		found = true;
		if (c.full)
			sim_full_suite(&c, &sim_scenarios[k]);
		else
			sim_check_suite(&c, &sim_scenarios[k]);
	}
	if (!found) {
		fprintf(stderr, "sim: no scenario named %s (see --list)\n", c.only);
		return 2;
	}
	printf("sim: %u passed, %u failed\n", c.passed, c.failed);
	return c.failed ? 1 : 0;
}
