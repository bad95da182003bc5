/* pt_mesh.c: the cluster figures of partisan, measured through
 * libpartisan-client sessions to every daemon of a local cluster (cheaper
 * and finer than spawning partisanctl per poll). LIST is a file with one
 * socket path per line; the first daemon is the contact everyone joins.
 *   pt_mesh converge LIST TIMEOUT_S
 *       every other daemon joins the contact at once (the joins issued
 *       concurrently, JOIN_THREADS at a time, as serf's bench pipelines its
 *       join requests; PT_MESH_JOINS=K in the environment: K at a time, 1
 *       for one after the other); time until every
 *       daemon counts all N members ("members"), and until every daemon is
 *       connected to the N-1 others ("connected"); both from status()
 *   pt_mesh down LIST VICTIM PID SIGNAL TIMEOUT_S
 *       send SIGNAL to daemon VICTIM (index in LIST, process PID); time until
 *       it is missing from nodes() on every other daemon
 *   pt_mesh gone LIST VICTIM TIMEOUT_S
 *       daemon VICTIM leaves; time until it is missing from every other
 *       daemon's members()
 *   pt_mesh bcast LIST ROUNDS TIMEOUT_S
 *       a subscriber on every daemon; the first daemon broadcasts ROUNDS
 *       times; time until the broadcast reached every other daemon's
 *       subscriber
 * Output: "KEY SECONDS" lines, "max" and "median" over the daemons polled;
 * exit 3 with "unsupported ..." when the daemon refuses a feature. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <partisan/client.h>

#define MAXN         1024
#define JOIN_THREADS 32

static partisan_t *sess[MAXN];
static char names[MAXN][PARTISAN_NODE_MAX];
static double when[MAXN]; /* seconds after t0 a daemon met the condition; < 0: not yet */
static int n;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(int ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};

	nanosleep(&ts, NULL);
}

static int fail(const char *what, int i, int rc)
{
	fprintf(stderr, "pt_mesh: %s (daemon %d): %s\n", what, i, partisan_strerror(rc));
	return 1;
}

/* Connect to every daemon in LIST, retrying while they boot. */
static int open_all(const char *list, double timeout)
{
	FILE *f = fopen(list, "r");
	char line[512];
	double end = now_s() + timeout;

	if (!f)
		return perror(list), 1;
	while (n < MAXN && fgets(line, sizeof(line), f)) {
		int rc;

		line[strcspn(line, "\r\n")] = 0;
		if (!line[0])
			continue;
		while ((rc = partisan_connect(line, &sess[n])) < 0 && now_s() < end)
			nap_ms(20);
		if (rc < 0)
			return fclose(f), fail("connect", n, rc);
		if ((rc = partisan_node(sess[n], names[n], sizeof(names[n]))) < 0)
			return fclose(f), fail("node", n, rc);
		n++;
	}
	fclose(f);
	return n < 2 ? (fprintf(stderr, "pt_mesh: need 2 daemons\n"), 1) : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Print max and median of when[] over the daemons but skip. */
static void report(const char *key, int skip)
{
	double v[MAXN];
	int k = 0;

	for (int i = 0; i < n; i++)
		if (i != skip && when[i] >= 0)
			v[k++] = when[i];
	qsort(v, (size_t)k, sizeof(double), cmp_double);
	if (k)
		printf("%s max %.4f median %.4f\n", key, v[k - 1], v[k / 2]);
}

static void reset_when(void)
{
	for (int i = 0; i < n; i++)
		when[i] = -1;
}

/* Count of daemons but skip whose condition holds, polling those that do
 * not yet, until all do or the deadline. cond: 1 met, 0 not, < 0 error. */
static int poll_until(int (*cond)(int i, const void *arg), const void *arg, int skip, double t0,
                      double timeout, int nap)
{
	int done = 0, want = skip >= 0 ? n - 1 : n;

	while (done < want && now_s() - t0 < timeout) {
		for (int i = 0; i < n; i++) {
			int r;

			if (i == skip || when[i] >= 0)
				continue;
			if ((r = cond(i, arg)) < 0)
				return fail("poll", i, r), -1;
			if (r) {
				when[i] = now_s() - t0;
				done++;
			}
		}
		if (done < want)
			nap_ms(nap);
	}
	return done;
}

/* Convergence is polled through status(): its member and node counts are
 * what members() and nodes() would list, without shipping N specs. */
static int status_count(int i, bool members, unsigned want)
{
	partisan_status_t *st;
	int r = partisan_status(sess[i], &st);

	if (r < 0)
		return r;
	r = (members ? st->members : st->nodes) >= want;
	partisan_status_free(st);
	return r;
}

static int all_members(int i, const void *arg)
{
	return status_count(i, true, (unsigned)n);
}

static int all_nodes(int i, const void *arg)
{
	return status_count(i, false, (unsigned)n - 1);
}

struct joiner {
	pthread_t t;
	int first, step, failed_at, rc;
	const char *target;
};

/* Daemons first, first + step, ... join target, each one after the other. */
static void *join_some(void *arg)
{
	struct joiner *j = arg;

	for (int i = j->first; i < n; i += j->step)
		if ((j->rc = partisan_join(sess[i], j->target, 0)) < 0) {
			j->failed_at = i;
			break;
		}
	return NULL;
}

/* Every daemon but the contact joins it, JOIN_THREADS joins in flight (a
 * thread that cannot start does its share here). */
static int join_all(const char *target)
{
	struct joiner js[JOIN_THREADS];
	bool threaded[JOIN_THREADS];
	const char *env = getenv("PT_MESH_JOINS");
	int want = env && atoi(env) > 0 && atoi(env) <= JOIN_THREADS ? atoi(env) : JOIN_THREADS;
	int nt = n - 1 < want ? n - 1 : want, bad = 0;

	for (int k = 0; k < nt; k++) {
		js[k] =
		    (struct joiner){.first = 1 + k, .step = nt, .failed_at = -1, .target = target};
		threaded[k] = pthread_create(&js[k].t, NULL, join_some, &js[k]) == 0;
		if (!threaded[k])
			join_some(&js[k]);
	}
	for (int k = 0; k < nt; k++) {
		if (threaded[k])
			pthread_join(js[k].t, NULL);
		if (js[k].failed_at >= 0 && !bad)
			bad = fail("join", js[k].failed_at, js[k].rc);
	}
	return bad;
}

static int do_converge(double timeout)
{
	partisan_node_spec_t *spec;
	char target[PARTISAN_NODE_MAX + 64];
	double t0;
	int rc, got;

	if ((rc = partisan_node_spec(sess[0], &spec)) < 0)
		return fail("spec", 0, rc);
	if (spec->n_addrs == 0)
		return fprintf(stderr, "pt_mesh: contact has no address\n"), 1;
	snprintf(target, sizeof(target), "%s:%u", spec->name, (unsigned)spec->addrs[0].port);
	partisan_node_spec_free(spec);
	t0 = now_s();
	if (join_all(target))
		return 1;
	printf("joins_issued %.4f\n", now_s() - t0);
	reset_when();
	got = poll_until(all_members, NULL, -1, t0, timeout, 10);
	if (got < n) {
		printf("timeout members %d/%d\n", got < 0 ? 0 : got, n);
		return 1;
	}
	report("members", -1);
	reset_when();
	got = poll_until(all_nodes, NULL, -1, t0, timeout, 10);
	if (got < n) {
		printf("timeout connected %d/%d\n", got < 0 ? 0 : got, n);
		return 1;
	}
	report("connected", -1);
	return 0;
}

static int lacks_node(int i, const void *arg)
{
	partisan_strlist_t l = {0};
	int r = partisan_nodes(sess[i], PARTISAN_NODES_VISIBLE, &l);

	if (r < 0)
		return r;
	r = 1;
	for (size_t k = 0; k < l.n; k++)
		if (strcmp(l.v[k], arg) == 0)
			r = 0;
	partisan_strlist_free(&l);
	return r;
}

static int lacks_member(int i, const void *arg)
{
	partisan_spec_list_t l = {0};
	int r = partisan_members(sess[i], &l);

	if (r < 0)
		return r;
	r = 1;
	for (size_t k = 0; k < l.n; k++)
		if (strcmp(l.v[k].name, arg) == 0)
			r = 0;
	partisan_spec_list_free(&l);
	return r;
}

static int has_node(int i, const void *arg)
{
	return !lacks_node(i, arg);
}

static int do_down(int victim, pid_t pid, int sig, double timeout)
{
	double t0 = now_s();
	int got;

	reset_when(); /* first everyone must see the victim up */
	if (poll_until(has_node, names[victim], victim, t0, timeout, 10) < n - 1)
		return fprintf(stderr, "pt_mesh: %s not connected everywhere\n", names[victim]), 1;
	reset_when();
	t0 = now_s();
	if (kill(pid, sig) < 0)
		return perror("kill"), 1;
	got = poll_until(lacks_node, names[victim], victim, t0, timeout, 2);
	if (got < n - 1) {
		printf("timeout %d/%d\n", got < 0 ? 0 : got, n - 1);
		return 1;
	}
	report("down", victim);
	return 0;
}

static int do_gone(int victim, double timeout)
{
	double t0;
	int rc, got;

	reset_when();
	t0 = now_s();
	if ((rc = partisan_leave(sess[victim], NULL)) < 0)
		return fail("leave", victim, rc);
	got = poll_until(lacks_member, names[victim], victim, t0, timeout, 2);
	if (got < n - 1) {
		printf("timeout %d/%d\n", got < 0 ? 0 : got, n - 1);
		return 1;
	}
	report("gone", victim);
	return 0;
}

static int do_bcast(int rounds, double timeout)
{
	const char *topic = "bench";
	int rc;

	for (int i = 0; i < n; i++)
		if ((rc = partisan_subscribe(sess[i], topic)) < 0) {
			printf("unsupported subscribe: %s\n", partisan_strerror(rc));
			return 3;
		}
	nap_ms(500);
	for (int r = 0; r < rounds; r++) {
		char msg[32];
		struct pollfd p[MAXN];
		double t0;
		int done = 0;

		snprintf(msg, sizeof(msg), "round-%d", r);
		reset_when();
		t0 = now_s();
		if ((rc = partisan_broadcast(sess[0], topic, msg, strlen(msg))) < 0) {
			printf("unsupported broadcast: %s\n", partisan_strerror(rc));
			return 3;
		}
		while (done < n - 1 && now_s() - t0 < timeout) {
			for (int i = 0; i < n; i++)
				p[i] =
				    (struct pollfd){.fd = partisan_fd(sess[i]), .events = POLLIN};
			/* events a call queued are already in the handle: look first */
			for (int i = 0; i < n; i++) {
				partisan_event_t *ev;

				if (poll(&p[i], 1, 0) > 0)
					partisan_dispatch(sess[i]);
				while (partisan_recv(sess[i], &ev, 0) == 0) {
					if (i != 0 && when[i] < 0 &&
					    ev->type == PARTISAN_EV_BROADCAST &&
					    ev->broadcast.len == strlen(msg) &&
					    memcmp(ev->broadcast.payload, msg, ev->broadcast.len) ==
					        0) {
						when[i] = now_s() - t0;
						done++;
					}
					partisan_event_free(ev);
				}
			}
			if (done < n - 1)
				poll(p, (nfds_t)n, 5);
		}
		if (done < n - 1) {
			printf("timeout round %d %d/%d\n", r, done, n - 1);
			return 1;
		}
		report("bcast", 0);
		nap_ms(200);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3) {
		fprintf(stderr, "usage: pt_mesh converge|down|gone|bcast LIST ...\n");
		return 2;
	}
	if (open_all(argv[2], 30) != 0)
		return 1;
	if (argc == 4 && strcmp(argv[1], "converge") == 0)
		rc = do_converge(atof(argv[3]));
	else if (argc == 7 && strcmp(argv[1], "down") == 0)
		rc = do_down(atoi(argv[3]), (pid_t)atol(argv[4]), atoi(argv[5]), atof(argv[6]));
	else if (argc == 5 && strcmp(argv[1], "gone") == 0)
		rc = do_gone(atoi(argv[3]), atof(argv[4]));
	else if (argc == 5 && strcmp(argv[1], "bcast") == 0)
		rc = do_bcast(atoi(argv[3]), atof(argv[4]));
	else
		fprintf(stderr, "pt_mesh: bad arguments\n"), rc = 2;
	for (int i = 0; i < n; i++)
		partisan_close(sess[i]);
	return rc;
}
