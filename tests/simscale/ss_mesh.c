/* ss_mesh.c: table (f), the full mesh at scale: every node runs the real
 * node core with the full_mesh manager (a link to every member) and the
 * failure detector's watch ring (fd.c: each node watches 2 ring neighbours
 * on each side), as the daemon does with peer_service_manager full_mesh.
 * Per size, on the run seed:
 * - formation: one node starts every join_ms and joins through a random
 *   earlier one; the virtual time until every node has all N members, and
 *   until every node has all N - 1 links up (checked every MS_STEP_MS);
 * - the cost of a settled mesh per node per second, from the sends node.c
 *   asks for that go out on an up link: the detector's heartbeat requests
 *   (probes), replies and Silent reports, apart from membership gossip;
 * - a crash of MS_CRASH_PCT % of the nodes at once (hosts gone: their
 *   links go silent, nothing closes them): every survivor must mark every
 *   crashed node down within failure_timeout_ms + one round (the link the
 *   core sees goes down), and then every survivor must be linked with every
 *   survivor, hold it as a member, be linked with no crashed node and
 *   watch only survivors (its ring closed over the gaps); no DOWN verdict
 *   may be about a live node. The full_mesh manager keeps a crashed node as
 *   a member (it goes only by a leave, as in Partisan) and dials it each
 *   round; those dials fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simscale.h"

#define MS_STEP_MS   100
#define MS_FORM_MS   120000 /* formation must be done this long after the last join */
#define MS_SETTLE_MS 3000   /* after formation, before the cost window */
#define MS_COST_MS   10000  /* the cost window, settled and after the crash */
#define MS_CRASH_PCT 10
#if defined(__SANITIZE_ADDRESS__)
#define MS_CHECK_SIZE 100 /* --suite check: several times slower under ASan */
#else
#define MS_CHECK_SIZE 200 /* --suite check */
#endif

struct ms_row {
	unsigned nodes, crashed;
	uint64_t last_join, members_ms, links_ms; /* virtual time from the first start */
	double form_msgs, form_kib;               /* membership sends per node until formed */
	double msgs[SK_N], bytes[SK_N];           /* settled, per node per second */
	double cmsgs[SK_N], cbytes[SK_N];         /* the MS_COST_MS after the crash */
	uint64_t bound, worst, first;             /* after the crash: the last / first down */
	double mean;                              /* over (survivor, crashed) pairs */
	uint64_t fd_false, downs;
	char fail[256]; /* empty: passed */
};

static bool ms_has_all_members(struct ss_world *w, uint32_t i)
{
	const struct node_spec *const *v;
	struct ss_node *nd = &w->nodes[i];

	return node_ops(nd->node)->members(nd->mgr, &v) == w->n;
}

static bool ms_has_all_links(struct ss_world *w, uint32_t i)
{
	const struct ss_node *nd = &w->nodes[i];
	uint32_t up = 0;

	for (uint32_t k = 0; k < nd->nrefs; k++)
		up += ss_net_up(w, i, nd->refs[k].peer);
	return up == w->n - 1;
}

/* Start every node, then run until each has all members and all links
 * (r->members_ms, r->links_ms) or MS_FORM_MS after the last join. */
static bool ms_form(struct ss_world *w, struct ms_row *r)
{
	uint8_t *done = xcalloc(w->p.nodes, 1); /* bit 0: members, bit 1: links */
	uint32_t left_m = w->p.nodes, left_l = w->p.nodes;

	while (w->n < w->p.nodes) {
		ss_add_node(w);
		ss_run(w, w->p.join_every_ms);
	}
	r->last_join = w->now - w->p.join_every_ms;
	while ((left_m || left_l) && w->now < r->last_join + MS_FORM_MS) {
		ss_run(w, MS_STEP_MS);
		for (uint32_t i = 0; i < w->n; i++) {
			if (!(done[i] & 1) && ms_has_all_members(w, i))
				done[i] |= 1, left_m--;
			if (!(done[i] & 2) && ms_has_all_links(w, i))
				done[i] |= 2, left_l--;
		}
		if (left_m == 0 && r->members_ms == 0)
			r->members_ms = w->now;
		if (left_l == 0 && r->links_ms == 0)
			r->links_ms = w->now;
	}
	free(done);
	r->form_msgs = (double)w->c.kind_msgs[SK_MEMBERSHIP] / w->n;
	r->form_kib = (double)w->c.kind_bytes[SK_MEMBERSHIP] / 1024.0 / w->n;
	if (left_m || left_l)
		snprintf(r->fail, sizeof(r->fail),
		         "formation: %u nodes without all %u members, %u without all links,"
		         " %u ms after the last join",
		         left_m, w->p.nodes, left_l, MS_FORM_MS);
	return left_m == 0 && left_l == 0;
}

/* Run ms and give the sends by kind per live node per second. */
static void ms_cost(struct ss_world *w, uint64_t ms, double *msgs, double *bytes)
{
	struct ss_counters c0 = w->c;
	double per = 1000.0 / (double)ms / ss_live(w);

	ss_run(w, ms);
	for (int k = 0; k < SK_N; k++) {
		msgs[k] = (double)(w->c.kind_msgs[k] - c0.kind_msgs[k]) * per;
		bytes[k] = (double)(w->c.kind_bytes[k] - c0.kind_bytes[k]) * per;
	}
}

static void ms_undetected(struct ss_world *w, uint32_t i, uint32_t c, struct ms_row *r)
{
	for (uint32_t v = 0; v < w->n; v++)
		if (w->crash_ix[v] == c + 1)
			snprintf(r->fail, sizeof(r->fail),
			         "%s did not mark the crashed %s down within %llu ms",
			         w->nodes[i].spec->name, w->nodes[v].spec->name,
			         (unsigned long long)r->bound);
}

/* Every survivor's link to every crashed node went down within bound of t0:
 * the first, mean and worst time. */
static bool ms_detected(struct ss_world *w, uint64_t t0, struct ms_row *r)
{
	uint64_t sum = 0, pairs = 0;

	r->first = UINT64_MAX;
	for (uint32_t i = 0; i < w->n; i++) {
		if (!w->nodes[i].alive)
			continue;
		for (uint32_t c = 0; c < w->ncrash; c++) {
			uint64_t at = w->crash_down[(size_t)i * w->ncrash + c];

			if (at == 0 || at > t0 + r->bound) {
				ms_undetected(w, i, c, r);
				return false;
			}
			sum += at - t0;
			pairs++;
			r->worst = at - t0 > r->worst ? at - t0 : r->worst;
			r->first = at - t0 < r->first ? at - t0 : r->first;
		}
	}
	r->mean = pairs ? (double)sum / (double)pairs : 0;
	return true;
}

/* After the crash, at survivor i: linked with every survivor, both ends,
 * each a member; no link up with a crashed node; watching only survivors,
 * FD_WATCH on each side (the ring closed over the gaps). */
static bool ms_survivor_ok(struct ss_world *w, uint32_t i, struct ms_row *r)
{
	struct ss_node *nd = &w->nodes[i];
	const struct fd *fd = node_fd(nd->node);

	for (uint32_t j = 0; j < w->n; j++) {
		const char *name = w->nodes[j].spec->name;
		const struct fd_node *p = fd_find(fd, name);

		if (j == i)
			continue;
		if (w->nodes[j].alive && (!ss_net_up(w, i, j) || !ss_net_up(w, j, i) ||
		                          !node_ops(nd->node)->is_member(nd->mgr, name))) {
			snprintf(r->fail, sizeof(r->fail), "%s not linked with the survivor %s",
			         nd->spec->name, name);
			return false;
		}
		if (!w->nodes[j].alive && (ss_net_up(w, i, j) || node_link_is_up(nd->node, name) ||
		                           (p && fd_watched(p)))) {
			snprintf(r->fail, sizeof(r->fail),
			         "%s still links or watches the crashed %s", nd->spec->name, name);
			return false;
		}
	}
	if (fd_nwatched(fd) != 2 * FD_WATCH) {
		snprintf(r->fail, sizeof(r->fail), "%s watches %zu nodes, not %u", nd->spec->name,
		         fd_nwatched(fd), 2 * FD_WATCH);
		return false;
	}
	return true;
}

/* No DOWN verdict about a live node, one per (survivor, crashed node), and
 * nothing refused. */
static bool ms_clean(struct ss_world *w, struct ms_row *r)
{
	const struct ss_counters *c = &w->c;
	uint64_t pairs = (uint64_t)ss_live(w) * w->ncrash;

	r->fd_false = c->fd_false;
	r->downs = c->fd_downs;
	if (c->fd_downs != pairs + c->fd_false)
		snprintf(
		    r->fail, sizeof(r->fail),
		    "%llu DOWN verdicts about crashed nodes, not one per survivor and crashed node"
		    " (%llu)",
		    (unsigned long long)(c->fd_downs - c->fd_false), (unsigned long long)pairs);
	else if (c->fd_false)
		snprintf(r->fail, sizeof(r->fail), "%llu DOWN verdicts about a live node",
		         (unsigned long long)c->fd_false);
	else if (c->refused || c->undecodable || c->bad_action)
		snprintf(r->fail, sizeof(r->fail),
		         "%llu refused, %llu undecodable messages, %llu bad actions",
		         (unsigned long long)c->refused, (unsigned long long)c->undecodable,
		         (unsigned long long)c->bad_action);
	return r->fail[0] == '\0';
}

static void ms_measure(const struct ss_opts *o, unsigned nodes, struct ms_row *r)
{
	struct ss_params p;
	struct ss_world *w;
	uint64_t t0;

	memset(r, 0, sizeof(*r));
	r->nodes = nodes;
	ss_params_default(&p, o->seed, nodes);
	p.full_mesh = true;
	p.fd_ms = o->fd_ms;
	p.join_every_ms = o->join_ms;
	r->bound = p.fd_ms + p.fd_ms / 2; /* the timeout and one heartbeat round */
	w = ss_world_new(&p);
	if (!ms_form(w, r))
		goto out;
	ss_run(w, MS_SETTLE_MS);
	ms_cost(w, MS_COST_MS, r->msgs, r->bytes);
	t0 = w->now;
	r->crashed = ss_crash_tracked(w, MS_CRASH_PCT);
	ms_cost(w, MS_COST_MS, r->cmsgs, r->cbytes);
	if (!ms_detected(w, t0, r) || !ms_clean(w, r))
		goto out;
	for (uint32_t i = 0; i < w->n; i++)
		if (w->nodes[i].alive && !ms_survivor_ok(w, i, r))
			break;
out:
	ss_world_free(w);
}

static double ms_fd(const double *v)
{
	return v[SK_PROBE] + v[SK_REPLY] + v[SK_SILENT];
}

static void ms_print(const struct ms_row *r, double wall)
{
	printf("  %5u %5llu %6llu %6llu %6.0f %7.0f | %6.2f %5.2f %5.2f %5.2f %5.0f | %6.2f %7.0f "
	       "| %4u %6llu"
	       " %6llu %6.0f %6llu | %6.2f %6.2f %6.0f %6.2f  (%.1f s)%s%s\n",
	       r->nodes, (unsigned long long)r->last_join, (unsigned long long)r->members_ms,
	       (unsigned long long)r->links_ms, r->form_msgs, r->form_kib, ms_fd(r->msgs),
	       r->msgs[SK_PROBE], r->msgs[SK_REPLY], r->msgs[SK_SILENT], ms_fd(r->bytes),
	       r->msgs[SK_MEMBERSHIP], r->bytes[SK_MEMBERSHIP], r->crashed,
	       (unsigned long long)r->bound,
	       (unsigned long long)(r->first == UINT64_MAX ? 0 : r->first), r->mean,
	       (unsigned long long)r->worst, ms_fd(r->cmsgs), r->cmsgs[SK_SILENT], ms_fd(r->cbytes),
	       r->cmsgs[SK_MEMBERSHIP], wall, r->fail[0] ? "  <-- " : "", r->fail);
	fflush(stdout);
}

void ss_test_mesh(const struct ss_opts *o, struct ss_tally *t)
{
	double t0 = ss_wall();
	unsigned sizes[2], nsizes = 0;
	bool ok = true;

	if (o->fd_ms == 0) {
		printf("(f) full mesh: off (--fd-ms 0: no failure detector)\n\n");
		return;
	}
	if (o->mesh_nodes)
		sizes[nsizes++] = o->mesh_nodes;
	else if (o->full)
		sizes[nsizes++] = MS_CHECK_SIZE, sizes[nsizes++] = 1000;
	else
		sizes[nsizes++] = MS_CHECK_SIZE;
	printf("(f) full mesh (full_mesh manager, the detector's watch ring of %u per side):"
	       " seed %llu, a join every %u ms, failure_timeout_ms %u, rounds of %u ms; cost"
	       " settled over %u ms; then %u %% crashed at once (links silent), bound on every"
	       " survivor's DOWN: timeout + one round\n",
	       FD_WATCH, (unsigned long long)o->seed, o->join_ms, o->fd_ms,
	       o->fd_ms / 2 > 50 ? o->fd_ms / 2 : 50, MS_COST_MS, MS_CRASH_PCT);
	printf("  nodes  last  membrs  links  msgs    KiB |  fd/s probe reply silnt  fd B/s | "
	       "memb/s memb B/s |"
	       " dead  bound  first   mean  worst | fd/s silnt  fd B/s memb/s\n");
	for (unsigned s = 0; s < nsizes; s++) {
		double t1 = ss_wall();
		struct ms_row r;

		ms_measure(o, sizes[s], &r);
		ms_print(&r, ss_wall() - t1);
		ok = ok && r.fail[0] == '\0';
	}
	printf("  (formation, virtual ms from the first start: last join, every node with all"
	       " members, every node with all links up; membership messages and KiB each node sent"
	       " until then; cost per node per second: the detector's"
	       " sends (probes: heartbeat requests, replies, Silent reports) and membership"
	       " gossip; after the crash: first, mean and worst time until a survivor's link to a"
	       " crashed node went down, over all pairs, and the cost over the %u ms after it)\n",
	       MS_COST_MS);
	ss_verdict(t, ok,
	           "full mesh: formed, every crashed node down at every survivor within timeout"
	           " + round, survivors fully linked, no false DOWN",
	           t0);
}
