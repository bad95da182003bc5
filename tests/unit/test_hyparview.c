/* test_hyparview.c: the HyParView manager (daemon/core/hyparview.c) on a tiny
 * deterministic network of manager instances: one link per pair of nodes
 * (dialed by ACT_CONNECT, closed by ACT_DISCONNECT, peer_up/peer_down on
 * both ends, what the closer sent still arrives), message delays that
 * reorder, optional loss and duplication, and crashes. No sockets, no clock:
 * a virtual clock and a seeded PRNG, so every run is the same. Plus direct
 * tests of single messages (epochs, priorities, refusals). */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"

#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void); /* ASan's allocator */
#define HEAP_IN_USE() __sanitizer_get_current_allocated_bytes()
#else
#define HEAP_IN_USE() ((size_t)mallinfo2().uordblks)
#endif

#define NET_MAX     256
#define TICK_MS     100
#define ACTIVE_MAX  5
#define PASSIVE_MAX 30
#define SHUFFLE_MS  10000
#define PROMOTE_MS  5000

enum link_state { L_NONE, L_CONNECTING, L_UP, L_CLOSING };
enum ev_kind { E_DELIVER, E_CONNECTED, E_CLOSED };

struct tnode {
	void *mgr;
	struct node_spec *spec;
	struct rng rng;
	unsigned inc;
	int contact; /* joins through this node once linked; -1: none */
	bool alive, joined, left;
};

struct tlink {
	uint8_t state, closer;
	bool up[2]; /* each end's view: peer_up seen, no peer_down yet */
	uint32_t gen;
};

struct tev {
	uint64_t at, seq;
	enum ev_kind kind;
	unsigned from, to;
	uint32_t gen;
	uint8_t *buf;
	size_t len;
};

struct net {
	struct tnode nodes[NET_MAX];
	unsigned n;
	struct tlink *links;
	struct tev *heap;
	size_t nheap, capheap;
	uint64_t seq, now;
	struct rng rng;
	unsigned drop_ppm, dup_ppm, dmin, dmax;
	unsigned refused;
};

static const struct manager_ops *ops = &hyparview_ops;

/* HV_SEED=k runs every network test on other seeds (for soak runs). */
static uint64_t seed(uint64_t base)
{
	const char *e = getenv("HV_SEED");

	return base + (e ? 1000 * strtoull(e, NULL, 10) : 0);
}

/* ---- specs and messages ---- */

static struct node_spec *make_spec(const char *name, uint16_t port)
{
	struct node_spec *s = calloc(1, sizeof(*s));

	s->name = strdup(name);
	s->naddrs = 1;
	s->addrs = calloc(1, sizeof(*s->addrs));
	strcpy(s->addrs[0].ip, "127.0.0.1");
	s->addrs[0].port = port;
	s->nchannels = 1;
	s->channels = calloc(1, sizeof(*s->channels));
	s->channels[0].name = strdup("default");
	s->channels[0].parallelism = 1;
	s->parallelism = 1;
	return s;
}

static struct manager_params make_params(const struct node_spec *self, const char *actor)
{
	struct manager_params p = {0};

	p.self = self;
	p.actor = actor;
	p.active_max = ACTIVE_MAX;
	p.passive_max = PASSIVE_MAX;
	p.arwl = 6;
	p.prwl = 3;
	p.shuffle_interval_ms = SHUFFLE_MS;
	p.shuffle_k_active = 3;
	p.shuffle_k_passive = 4;
	p.promotion_interval_ms = PROMOTE_MS;
	return p;
}

/* ---- the event queue: a binary heap on (at, seq) ---- */

static bool ev_before(const struct tev *a, const struct tev *b)
{
	return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static void ev_push(struct net *w, struct tev e)
{
	size_t i;

	if (w->nheap == w->capheap) {
		w->capheap = w->capheap ? 2 * w->capheap : 256;
		w->heap = realloc(w->heap, w->capheap * sizeof(*w->heap));
	}
	e.seq = w->seq++;
	i = w->nheap++;
	while (i > 0 && ev_before(&e, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = e;
}

static struct tev ev_pop(struct net *w)
{
	struct tev top = w->heap[0], last = w->heap[--w->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= w->nheap)
			break;
		if (c + 1 < w->nheap && ev_before(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!ev_before(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->nheap > 0)
		w->heap[i] = last;
	return top;
}

/* ---- the network ---- */

static uint64_t uniform(struct rng *r, uint64_t lo, uint64_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

static struct tlink *link_of(struct net *w, unsigned a, unsigned b)
{
	return &w->links[(size_t)(a < b ? a : b) * NET_MAX + (a < b ? b : a)];
}

static unsigned side(unsigned i, unsigned j)
{
	return i < j ? 0 : 1;
}

static int node_index(const struct net *w, const char *name)
{
	char *end;
	unsigned long i;

	if (name[0] != 'n')
		return -1;
	i = strtoul(name + 1, &end, 10);
	if (*end != '@' || i >= w->n)
		return -1;
	return (int)i;
}

static struct core_env env_of(struct net *w, unsigned i)
{
	struct core_env env = {w->now, &w->nodes[i].rng};

	return env;
}

static void drain(struct net *w, unsigned i, struct actions *out);
static void net_close(struct net *w, unsigned from, unsigned to);

static void call_peer_up(struct net *w, unsigned i, unsigned other)
{
	struct core_env env = env_of(w, i);
	struct actions out;

	if (!w->nodes[i].alive)
		return;
	actions_init(&out);
	ops->peer_up(w->nodes[i].mgr, w->nodes[other].spec, &env, &out);
	drain(w, i, &out);
	if (w->nodes[i].contact == (int)other && !w->nodes[i].joined && w->nodes[i].alive) {
		w->nodes[i].joined = true;
		actions_init(&out);
		ops->join(w->nodes[i].mgr, w->nodes[other].spec, &env, &out);
		drain(w, i, &out);
	}
}

static void call_peer_down(struct net *w, unsigned i, unsigned other)
{
	struct core_env env = env_of(w, i);
	struct actions out;

	if (!w->nodes[i].alive)
		return;
	actions_init(&out);
	ops->peer_down(w->nodes[i].mgr, w->nodes[other].spec->name, &env, &out);
	drain(w, i, &out);
}

static void call_receive(struct net *w, unsigned to, unsigned from, const uint8_t *buf, size_t len)
{
	struct core_env env = env_of(w, to);
	PartisanPeer__PeerMsg *msg = partisan_peer__peer_msg__unpack(NULL, len, buf);
	const char *why = NULL;
	struct actions out;
	int rc;

	ck_assert_ptr_nonnull(msg);
	actions_init(&out);
	rc = ops->receive(w->nodes[to].mgr, w->nodes[from].spec->name, msg, &env, &out, &why);
	partisan_peer__peer_msg__free_unpacked(msg, NULL);
	drain(w, to, &out);
	if (rc < 0) {
		w->refused++;
		net_close(w, to, from);
	}
}

static void link_reset(struct tlink *l)
{
	l->state = L_NONE;
	l->up[0] = l->up[1] = false;
	l->gen++;
}

static void net_connect(struct net *w, unsigned from, unsigned to)
{
	struct tlink *l = link_of(w, from, to);
	struct tev e = {.kind = E_CONNECTED, .from = from, .to = to};

	if (from == to || l->state != L_NONE)
		return;
	l->state = L_CONNECTING;
	e.gen = l->gen;
	e.at = w->now + uniform(&w->rng, 1, 10);
	ev_push(w, e);
}

static void net_connected(struct net *w, const struct tev *e)
{
	struct tlink *l = link_of(w, e->from, e->to);

	if (l->gen != e->gen || l->state != L_CONNECTING)
		return;
	if (!w->nodes[e->from].alive || !w->nodes[e->to].alive) {
		link_reset(l);
		return;
	}
	l->state = L_UP;
	l->up[0] = l->up[1] = true;
	call_peer_up(w, e->from, e->to);
	if (l->gen == e->gen && l->up[side(e->to, e->from)])
		call_peer_up(w, e->to, e->from);
}

static void net_close(struct net *w, unsigned from, unsigned to)
{
	struct tlink *l = link_of(w, from, to);
	unsigned s = side(from, to);
	struct tev e = {.kind = E_CLOSED, .from = from, .to = to};

	if (l->state == L_CONNECTING) {
		link_reset(l);
	} else if (l->state == L_UP) {
		l->state = L_CLOSING;
		l->closer = (uint8_t)s;
		l->up[s] = false;
		e.gen = l->gen;
		e.at = w->now + w->dmax + 1; /* after what is in flight */
		ev_push(w, e);
		call_peer_down(w, from, to);
	} else if (l->state == L_CLOSING && l->up[s]) {
		l->up[s] = false;
		call_peer_down(w, from, to);
	}
}

static void net_closed(struct net *w, const struct tev *e)
{
	struct tlink *l = link_of(w, e->from, e->to);
	bool was_up = l->up[side(e->to, e->from)];

	if (l->gen != e->gen || l->state != L_CLOSING)
		return;
	link_reset(l);
	if (was_up)
		call_peer_down(w, e->to, e->from);
}

/* The link breaks at once: both ends hear of it. */
static void net_abort(struct net *w, unsigned a, unsigned b)
{
	struct tlink *l = link_of(w, a, b);
	bool up_a = l->up[side(a, b)], up_b = l->up[side(b, a)];

	if (l->state == L_NONE)
		return;
	link_reset(l);
	if (up_a)
		call_peer_down(w, a, b);
	if (up_b)
		call_peer_down(w, b, a);
}

static bool chance(struct rng *r, unsigned ppm)
{
	return ppm > 0 && rng_below(r, 1000000) < ppm;
}

static void net_send(struct net *w, unsigned from, unsigned to, uint8_t *buf, size_t len)
{
	struct tlink *l = link_of(w, from, to);
	struct tev e = {.kind = E_DELIVER, .from = from, .to = to};

	if (from == to || l->state != L_UP || chance(&w->rng, w->drop_ppm)) {
		free(buf);
		return;
	}
	e.gen = l->gen;
	if (chance(&w->rng, w->dup_ppm)) {
		e.buf = memcpy(malloc(len), buf, len);
		e.len = len;
		e.at = w->now + uniform(&w->rng, w->dmin, w->dmax);
		ev_push(w, e);
	}
	e.buf = buf;
	e.len = len;
	e.at = w->now + uniform(&w->rng, w->dmin, w->dmax);
	ev_push(w, e);
}

static void net_deliver(struct net *w, const struct tev *e)
{
	struct tlink *l = link_of(w, e->from, e->to);
	bool open =
	    l->state == L_UP || (l->state == L_CLOSING && l->closer == side(e->from, e->to));

	if (l->gen == e->gen && open && w->nodes[e->to].alive)
		call_receive(w, e->to, e->from, e->buf, e->len);
}

static void act(struct net *w, unsigned i, struct action *a)
{
	int j = a->kind == ACT_CONNECT ? node_index(w, a->spec->name)
	        : a->node              ? node_index(w, a->node)
	                               : -1;

	switch (a->kind) {
	case ACT_SEND:
		ck_assert_int_ge(j, 0);
		net_send(w, i, (unsigned)j, a->buf, a->len);
		a->buf = NULL;
		break;
	case ACT_CONNECT:
		ck_assert_int_ge(j, 0);
		if (node_spec_cmp(a->spec, w->nodes[j].spec) == 0)
			net_connect(w, i, (unsigned)j);
		break;
	case ACT_DISCONNECT:
		ck_assert_int_ge(j, 0);
		net_close(w, i, (unsigned)j);
		break;
	case ACT_EVENT:
		if (a->event == EV_SELF_REMOVED)
			w->nodes[i].left = true;
		break;
	case ACT_DOWN:
	case ACT_DELIVER:
	case ACT_LOG:
		ck_abort_msg("a manager queued a node core's action");
		break;
	}
}

static void drain(struct net *w, unsigned i, struct actions *out)
{
	for (size_t k = 0; k < out->n; k++)
		act(w, i, &out->v[k]);
	actions_free(out);
}

static void net_event(struct net *w, struct tev *e)
{
	w->now = e->at;
	switch (e->kind) {
	case E_DELIVER:
		net_deliver(w, e);
		break;
	case E_CONNECTED:
		net_connected(w, e);
		break;
	case E_CLOSED:
		net_closed(w, e);
		break;
	}
	free(e->buf);
}

static void net_tick(struct net *w, unsigned i)
{
	struct core_env env = env_of(w, i);
	struct actions out;

	actions_init(&out);
	ops->tick(w->nodes[i].mgr, &env, &out);
	drain(w, i, &out);
}

/* Run the clock for ms: events as they fall due, each node's tick every
 * TICK_MS at its own phase. */
static void net_run(struct net *w, uint64_t ms)
{
	uint64_t end = w->now + ms;

	while (w->now < end) {
		uint64_t t = w->now + 1;

		while (w->nheap > 0 && w->heap[0].at <= t) {
			struct tev e = ev_pop(w);

			net_event(w, &e);
		}
		w->now = t;
		for (unsigned i = (unsigned)(t % TICK_MS); i < w->n; i += TICK_MS)
			if (w->nodes[i].alive)
				net_tick(w, i);
	}
}

/* No more ticks: let every message and link change in flight land. */
static void net_quiesce(struct net *w)
{
	while (w->nheap > 0) {
		struct tev e = ev_pop(w);

		net_event(w, &e);
	}
}

static struct net *net_create(uint64_t seed)
{
	struct net *w = calloc(1, sizeof(*w));

	w->links = calloc((size_t)NET_MAX * NET_MAX, sizeof(*w->links));
	rng_seed(&w->rng, seed);
	w->dmin = 1;
	w->dmax = 5;
	return w;
}

static void net_free(struct net *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		if (w->nodes[i].mgr)
			ops->destroy(w->nodes[i].mgr);
		node_spec_free(w->nodes[i].spec);
	}
	while (w->nheap > 0)
		free(ev_pop(w).buf);
	free(w->heap);
	free(w->links);
	free(w);
}

/* Start node n (the next index); contact >= 0: it joins through that node. */
static unsigned net_start(struct net *w, int contact)
{
	unsigned i = w->n++;
	struct tnode *n = &w->nodes[i];
	char name[32], actor[48];
	struct manager_params p;

	snprintf(name, sizeof(name), "n%u@127.0.0.1", i);
	n->spec = make_spec(name, (uint16_t)(10000 + i));
	n->inc = 1;
	snprintf(actor, sizeof(actor), "%s/%u", name, n->inc);
	p = make_params(n->spec, actor);
	n->mgr = ops->create(&p);
	rng_seed(&n->rng, w->seq * 7919 + i);
	n->alive = true;
	n->contact = contact;
	n->joined = contact < 0;
	if (contact >= 0)
		net_connect(w, i, (unsigned)contact);
	return i;
}

static void net_crash(struct net *w, unsigned i)
{
	w->nodes[i].alive = false;
	for (unsigned j = 0; j < w->n; j++)
		if (j != i)
			net_abort(w, i, j);
	ops->destroy(w->nodes[i].mgr);
	w->nodes[i].mgr = NULL;
}

/* n nodes, each joining through a random earlier one, one every 50 ms, then
 * settle_ms of running. */
static struct net *net_build(uint64_t seed, unsigned n, uint64_t settle_ms)
{
	struct net *w = net_create(seed);

	net_start(w, -1);
	for (unsigned k = 1; k < n; k++) {
		net_start(w, (int)rng_below(&w->rng, k));
		net_run(w, 50);
	}
	net_run(w, settle_ms);
	return w;
}

/* ---- checks ---- */

static bool in_play(const struct net *w, unsigned i)
{
	return w->nodes[i].alive && !w->nodes[i].left;
}

static bool has_name(const char *const *v, size_t n, const char *name)
{
	for (size_t k = 0; k < n; k++)
		if (strcmp(v[k], name) == 0)
			return true;
	return false;
}

static bool in_active(struct net *w, unsigned i, const char *name)
{
	const char *const *v;
	size_t n = ops->active_view(w->nodes[i].mgr, &v);

	return has_name(v, n, name);
}

static bool in_passive(struct net *w, unsigned i, const char *name)
{
	const char *const *v;
	size_t n = ops->passive_view(w->nodes[i].mgr, &v);

	return has_name(v, n, name);
}

/* Node i's views: bounded, without i, without duplicates, disjoint; every
 * neighbor alive and counting i as its neighbor. */
static bool node_ok(struct net *w, unsigned i, char *why, size_t len)
{
	const char *me = w->nodes[i].spec->name, *const * v;
	size_t na = ops->active_view(w->nodes[i].mgr, &v);

	if (na > ACTIVE_MAX)
		return snprintf(why, len, "%s: %zu neighbors", me, na), false;
	for (size_t k = 0; k < na; k++) {
		int j = node_index(w, v[k]);

		if (j < 0 || (unsigned)j == i || has_name(v, k, v[k]))
			return snprintf(why, len, "%s: bad neighbor %s", me, v[k]), false;
		if (!in_play(w, (unsigned)j))
			return snprintf(why, len, "%s: neighbor %s is gone", me, v[k]), false;
		if (!ops->is_member(w->nodes[j].mgr, me))
			return snprintf(why, len, "%s has %s, not back", me, v[k]), false;
		if (in_passive(w, i, v[k]))
			return snprintf(why, len, "%s: %s in both views", me, v[k]), false;
		na = ops->active_view(w->nodes[i].mgr, &v);
	}
	na = ops->passive_view(w->nodes[i].mgr, &v);
	if (na > PASSIVE_MAX)
		return snprintf(why, len, "%s: %zu passive", me, na), false;
	for (size_t k = 0; k < na; k++)
		if (strcmp(v[k], me) == 0 || has_name(v, k, v[k]))
			return snprintf(why, len, "%s: bad passive %s", me, v[k]), false;
	return true;
}

static bool views_ok(struct net *w, char *why, size_t len)
{
	for (unsigned i = 0; i < w->n; i++)
		if (in_play(w, i) && !node_ok(w, i, why, len))
			return false;
	return true;
}

/* Is the graph of active views over the nodes in play connected? */
static bool overlay_connected(struct net *w)
{
	unsigned queue[NET_MAX], head = 0, tail = 0, want = 0;
	bool seen[NET_MAX] = {false};

	for (unsigned i = 0; i < w->n; i++)
		if (in_play(w, i)) {
			want++;
			if (tail == 0) {
				seen[i] = true;
				queue[tail++] = i;
			}
		}
	while (head < tail) {
		unsigned i = queue[head++];
		const char *const *v;
		size_t n = ops->active_view(w->nodes[i].mgr, &v);

		for (size_t k = 0; k < n; k++) {
			int j = node_index(w, v[k]);

			if (j >= 0 && in_play(w, (unsigned)j) && !seen[j]) {
				seen[j] = true;
				queue[tail++] = (unsigned)j;
			}
		}
	}
	return tail == want;
}

struct view_stats {
	double avg_active, avg_passive;
	size_t min_active, min_passive;
};

static struct view_stats view_stats(struct net *w)
{
	struct view_stats s = {0, 0, SIZE_MAX, SIZE_MAX};
	unsigned n = 0;

	for (unsigned i = 0; i < w->n; i++) {
		const char *const *v;
		size_t a, p;

		if (!in_play(w, i))
			continue;
		a = ops->active_view(w->nodes[i].mgr, &v);
		p = ops->passive_view(w->nodes[i].mgr, &v);
		s.avg_active += (double)a;
		s.avg_passive += (double)p;
		s.min_active = a < s.min_active ? a : s.min_active;
		s.min_passive = p < s.min_passive ? p : s.min_passive;
		n++;
	}
	s.avg_active /= n;
	s.avg_passive /= n;
	return s;
}

static void assert_healthy(struct net *w, const char *what)
{
	char why[256] = "";
	struct view_stats s;

	net_quiesce(w);
	s = view_stats(w);
	printf("%s: active avg %.2f min %zu, passive avg %.1f min %zu\n", what, s.avg_active,
	       s.min_active, s.avg_passive, s.min_passive);
	ck_assert_msg(views_ok(w, why, sizeof(why)), "%s: %s", what, why);
	ck_assert_msg(overlay_connected(w), "%s: overlay not connected", what);
	ck_assert_uint_ge(s.min_active, 1);
	ck_assert_uint_eq(w->refused, 0);
}

/* ---- overlay tests ---- */

START_TEST(test_join_of_200_nodes_builds_bounded_symmetric_connected_overlay)
{
	struct net *w = net_build(seed(1), 200, 3 * SHUFFLE_MS);
	struct view_stats s;
	size_t before, per_node;

	assert_healthy(w, "200 joined");
	s = view_stats(w);
	ck_assert_msg(s.avg_active >= 4.5, "active views mostly full (avg %.2f)", s.avg_active);
	ck_assert_msg(s.avg_passive >= 0.8 * PASSIVE_MAX, "passive views filled (avg %.1f)",
	              s.avg_passive);
	ck_assert_uint_ge(s.min_passive, PASSIVE_MAX / 3);
	/* Memory: what destroying the managers gives back. */
	before = HEAP_IN_USE();
	for (unsigned i = 0; i < w->n; i++) {
		ops->destroy(w->nodes[i].mgr);
		w->nodes[i].mgr = NULL;
	}
	per_node = (before - HEAP_IN_USE()) / w->n;
	printf("memory: %zu bytes per node (full views)\n", per_node);
	ck_assert_uint_lt(per_node, 16384);
	net_free(w);
}
END_TEST

START_TEST(test_overlay_of_50_nodes_is_connected_a_second_after_the_last_join)
{
	struct net *w = net_build(seed(2), 50, 1000);

	assert_healthy(w, "50 joined");
	net_free(w);
}
END_TEST

START_TEST(test_overlay_reconnects_after_half_of_200_nodes_crash_at_once)
{
	struct net *w = net_build(seed(3), 200, 3 * SHUFFLE_MS);
	unsigned order[NET_MAX];
	uint64_t start, connected_at = 0, clean_at = 0, full_at = 0;
	struct view_stats vs;
	char why[256];

	for (unsigned i = 0; i < w->n; i++)
		order[i] = i;
	for (unsigned i = w->n; i-- > 1;) {
		unsigned j = (unsigned)rng_below(&w->rng, i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned i = 0; i < w->n / 2; i++)
		net_crash(w, order[i]);
	vs = view_stats(w);
	printf("100 of 200 crashed: survivors' active avg %.2f min %zu, connected: %s\n",
	       vs.avg_active, vs.min_active, overlay_connected(w) ? "yes" : "no");
	start = w->now;
	for (unsigned s = 0; s < 600 && (!connected_at || !clean_at || !full_at); s++) {
		net_run(w, TICK_MS);
		vs = view_stats(w);
		if (connected_at == 0 && overlay_connected(w))
			connected_at = w->now - start;
		if (clean_at == 0 && views_ok(w, why, sizeof(why)))
			clean_at = w->now - start;
		if (full_at == 0 && vs.avg_active >= 4.5 && vs.min_active >= 3)
			full_at = w->now - start;
	}
	printf("then: connected after %llu ms, views clean after %llu ms, refilled (avg >= 4.5, "
	       "min >= 3) after %llu ms\n",
	       (unsigned long long)connected_at, (unsigned long long)clean_at,
	       (unsigned long long)full_at);
	ck_assert_msg(connected_at > 0, "survivors reconnected within 60 s");
	ck_assert_msg(clean_at > 0, "survivors' views clean within 60 s: %s", why);
	ck_assert_msg(full_at > 0, "survivors' views refilled within 60 s");
	net_run(w, 2 * SHUFFLE_MS);
	assert_healthy(w, "100 survivors");
	net_free(w);
}
END_TEST

START_TEST(test_overlay_survives_loss_duplication_and_reordering)
{
	struct net *w = net_create(seed(4));

	w->drop_ppm = 20000; /* 2% */
	w->dup_ppm = 20000;
	w->dmax = 40;
	net_start(w, -1);
	for (unsigned k = 1; k < 100; k++) {
		net_start(w, (int)rng_below(&w->rng, k));
		net_run(w, 50);
	}
	net_run(w, 4 * SHUFFLE_MS);
	/* Faults off: handshakes cut short by a loss time out and settle. */
	w->drop_ppm = w->dup_ppm = 0;
	net_run(w, 2 * PROMOTE_MS);
	assert_healthy(w, "100 on a lossy network");
	net_free(w);
}
END_TEST

START_TEST(test_leave_removes_the_node_from_every_view)
{
	struct net *w = net_build(seed(5), 50, 3 * SHUFFLE_MS);
	const char *name = w->nodes[7].spec->name;
	struct core_env env = env_of(w, 7);
	struct actions out;
	unsigned neighbors[NET_MAX], nn = 0, holders = 0;

	net_quiesce(w);
	for (unsigned i = 0; i < w->n; i++)
		if (i != 7 && in_active(w, i, name))
			neighbors[nn++] = i;
	ck_assert_uint_ge(nn, 1);
	actions_init(&out);
	ops->leave(w->nodes[7].mgr, name, &env, &out);
	drain(w, 7, &out);
	ck_assert(w->nodes[7].left);
	net_quiesce(w);
	for (unsigned k = 0; k < nn; k++) {
		ck_assert(!in_active(w, neighbors[k], name));
		ck_assert(!in_passive(w, neighbors[k], name));
	}
	/* Shuffles do not bring it back to them; the others drop it when they
	 * try it (it answers that it left). */
	net_run(w, 6 * SHUFFLE_MS);
	net_quiesce(w);
	for (unsigned k = 0; k < nn; k++)
		ck_assert(!in_passive(w, neighbors[k], name));
	for (unsigned i = 0; i < w->n; i++)
		if (i != 7) {
			ck_assert_msg(!in_active(w, i, name), "n%u still has it", i);
			holders += in_passive(w, i, name);
		}
	printf("leave: %u former neighbors dropped it; %u passive views still hold it\n", nn,
	       holders);
	ck_assert(!ops->is_member(w->nodes[7].mgr, w->nodes[0].spec->name));
	assert_healthy(w, "49 after a leave");
	net_free(w);
}
END_TEST

START_TEST(test_leave_of_another_node_makes_it_leave)
{
	struct net *w = net_build(seed(6), 30, SHUFFLE_MS);
	const char *const *v;
	char victim[32];
	struct core_env env = env_of(w, 0);
	struct actions out;
	int j;

	net_quiesce(w);
	ck_assert_uint_ge(ops->active_view(w->nodes[0].mgr, &v), 1);
	snprintf(victim, sizeof(victim), "%s", v[0]);
	j = node_index(w, victim);
	actions_init(&out);
	ops->leave(w->nodes[0].mgr, victim, &env, &out);
	drain(w, 0, &out);
	ck_assert(!ops->is_member(w->nodes[0].mgr, victim));
	net_quiesce(w);
	ck_assert(w->nodes[j].left);
	for (unsigned i = 0; i < w->n; i++)
		if ((int)i != j)
			ck_assert_msg(!in_active(w, i, victim), "n%u still has it", i);
	ck_assert(!in_passive(w, 0, victim));
	net_run(w, 2 * PROMOTE_MS);
	assert_healthy(w, "29 after a leave");
	net_free(w);
}
END_TEST

/* ---- single messages against one manager ---- */

struct solo {
	void *m;
	struct node_spec *self;
	struct rng rng;
	struct actions out;
	uint64_t now;
};

static void solo_init(struct solo *s, const char *actor)
{
	struct manager_params p;

	s->self = make_spec("a@127.0.0.1", 9000);
	p = make_params(s->self, actor);
	s->m = ops->create(&p);
	rng_seed(&s->rng, 42);
	actions_init(&s->out);
	s->now = 1000;
}

static void solo_free(struct solo *s)
{
	actions_free(&s->out);
	ops->destroy(s->m);
	node_spec_free(s->self);
}

static int solo_rx(struct solo *s, const char *from, const PartisanPeer__PeerMsg *msg,
                   const char **why)
{
	struct core_env env = {s->now, &s->rng};

	actions_clear(&s->out);
	*why = NULL;
	return ops->receive(s->m, from, msg, &env, &s->out, why);
}

/* Receive a message body of case c from node name. */
static int solo_rx_body(struct solo *s, const char *from, PartisanPeer__PeerMsg__BodyCase c,
                        void *body)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	const char *why;

	msg.body_case = c;
	msg.hv_join = body; /* a oneof: every body shares the slot */
	return solo_rx(s, from, &msg, &why);
}

static void solo_join_msg(struct solo *s, const char *name, uint64_t epoch, uint64_t seq)
{
	struct node_spec *spec = make_spec(name, 9100);
	PartisanCommon__NodeSpec pb;
	PartisanPeer__HvJoin j = PARTISAN_PEER__HV_JOIN__INIT;

	node_spec_to_pb(spec, &pb);
	j.spec = &pb;
	j.has_epoch = j.has_seq = 1;
	j.epoch = epoch;
	j.seq = seq;
	ck_assert_int_eq(solo_rx_body(s, name, PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN, &j), 0);
	node_spec_pb_release(&pb);
	node_spec_free(spec);
}

static void solo_neighbor(struct solo *s, const char *name, bool high, uint64_t epoch, uint64_t seq)
{
	struct node_spec *spec = make_spec(name, 9100);
	PartisanCommon__NodeSpec pb;
	PartisanPeer__HvNeighbor nb = PARTISAN_PEER__HV_NEIGHBOR__INIT;

	node_spec_to_pb(spec, &pb);
	nb.spec = &pb;
	nb.high_priority = high;
	nb.has_epoch = nb.has_seq = 1;
	nb.epoch = epoch;
	nb.seq = seq;
	ck_assert_int_eq(solo_rx_body(s, name, PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR, &nb), 0);
	node_spec_pb_release(&pb);
	node_spec_free(spec);
}

static void solo_reply(struct solo *s, const char *name, bool accepted, uint64_t epoch,
                       uint64_t seq)
{
	PartisanPeer__HvNeighborReply r = PARTISAN_PEER__HV_NEIGHBOR_REPLY__INIT;

	r.accepted = accepted;
	r.has_epoch = r.has_seq = 1;
	r.epoch = epoch;
	r.seq = seq;
	ck_assert_int_eq(solo_rx_body(s, name, PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY, &r),
	                 0);
}

static void solo_disconnect(struct solo *s, const char *name, uint64_t epoch, uint64_t seq)
{
	PartisanPeer__HvDisconnect d = PARTISAN_PEER__HV_DISCONNECT__INIT;

	d.has_epoch = d.has_seq = 1;
	d.epoch = epoch;
	d.seq = seq;
	ck_assert_int_eq(solo_rx_body(s, name, PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT, &d), 0);
}

/* The body of the last message queued for node (of case c), or NULL. */
static PartisanPeer__PeerMsg *solo_sent(struct solo *s, const char *node,
                                        PartisanPeer__PeerMsg__BodyCase c)
{
	for (size_t k = s->out.n; k-- > 0;) {
		struct action *a = &s->out.v[k];
		PartisanPeer__PeerMsg *msg;

		if (a->kind != ACT_SEND || strcmp(a->node, node) != 0)
			continue;
		msg = partisan_peer__peer_msg__unpack(NULL, a->len, a->buf);
		if (msg && msg->body_case == c)
			return msg;
		partisan_peer__peer_msg__free_unpacked(msg, NULL);
	}
	return NULL;
}

static bool solo_has(struct solo *s, enum action_kind kind, const char *node)
{
	for (size_t k = 0; k < s->out.n; k++)
		if (s->out.v[k].kind == kind && s->out.v[k].node &&
		    strcmp(s->out.v[k].node, node) == 0)
			return true;
	return false;
}

static bool solo_event(struct solo *s, enum core_event ev, const char *node)
{
	for (size_t k = 0; k < s->out.n; k++)
		if (s->out.v[k].kind == ACT_EVENT && s->out.v[k].event == ev &&
		    (node == NULL || strcmp(s->out.v[k].node, node) == 0))
			return true;
	return false;
}

START_TEST(test_stale_disconnect_from_an_older_epoch_is_ignored)
{
	struct solo s;
	PartisanPeer__PeerMsg *sent;
	const char *b = "b@127.0.0.1";

	solo_init(&s, "a@127.0.0.1/5");
	/* b (incarnation 1) joins through a; a asks it back and gets a yes. */
	solo_join_msg(&s, b, 1, 1);
	sent = solo_sent(&s, b, PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR);
	ck_assert_ptr_nonnull(sent);
	ck_assert(sent->hv_neighbor->high_priority);
	ck_assert_uint_eq(sent->hv_neighbor->epoch, 5);
	partisan_peer__peer_msg__free_unpacked(sent, NULL);
	solo_reply(&s, b, true, 1, 2);
	ck_assert(ops->is_member(s.m, b));
	ck_assert(solo_event(&s, EV_MEMBER_ADDED, b));
	ck_assert(solo_event(&s, EV_VIEW_CHANGED, NULL));
	/* b restarts (incarnation 2) and joins again before a saw it go. */
	solo_join_msg(&s, b, 2, 1);
	ck_assert(!solo_has(&s, ACT_DISCONNECT, b)); /* the link is the new b's */
	solo_reply(&s, b, true, 2, 2);
	ck_assert(ops->is_member(s.m, b));
	/* The old b's disconnect, delayed, arrives now: ignored. */
	solo_disconnect(&s, b, 1, 99);
	ck_assert(ops->is_member(s.m, b));
	ck_assert(!solo_has(&s, ACT_DISCONNECT, b));
	/* So is one the new b sent before it accepted. */
	solo_disconnect(&s, b, 2, 1);
	ck_assert(ops->is_member(s.m, b));
	/* A current one is obeyed: b moves to the passive view. */
	solo_disconnect(&s, b, 2, 3);
	ck_assert(!ops->is_member(s.m, b));
	ck_assert(solo_has(&s, ACT_DISCONNECT, b));
	ck_assert(solo_event(&s, EV_MEMBER_REMOVED, b));
	ck_assert(ops->passive_view(s.m, &(const char *const *){NULL}) == 1);
	solo_free(&s);
}
END_TEST

START_TEST(test_full_view_refuses_low_priority_and_makes_room_for_high_priority)
{
	struct solo s;
	char name[32];
	const char *const *v;
	PartisanPeer__PeerMsg *sent;
	unsigned dropped = 0;

	solo_init(&s, "a@127.0.0.1/1");
	solo_join_msg(&s, "p0@127.0.0.1", 1, 1); /* a takes part */
	solo_reply(&s, "p0@127.0.0.1", true, 1, 2);
	for (unsigned i = 1; i < ACTIVE_MAX; i++) {
		snprintf(name, sizeof(name), "p%u@127.0.0.1", i);
		solo_neighbor(&s, name, false, 1, 1);
		ck_assert(ops->is_member(s.m, name));
	}
	ck_assert_uint_eq(ops->active_view(s.m, &v), ACTIVE_MAX);
	solo_neighbor(&s, "low@127.0.0.1", false, 1, 1);
	sent = solo_sent(&s, "low@127.0.0.1", PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY);
	ck_assert_ptr_nonnull(sent);
	ck_assert(!sent->hv_neighbor_reply->accepted);
	partisan_peer__peer_msg__free_unpacked(sent, NULL);
	ck_assert(!ops->is_member(s.m, "low@127.0.0.1"));
	solo_neighbor(&s, "high@127.0.0.1", true, 1, 1);
	ck_assert(ops->is_member(s.m, "high@127.0.0.1"));
	ck_assert_uint_eq(ops->active_view(s.m, &v), ACTIVE_MAX);
	for (unsigned i = 0; i < ACTIVE_MAX; i++) {
		snprintf(name, sizeof(name), "p%u@127.0.0.1", i);
		if (ops->is_member(s.m, name))
			continue;
		dropped++;
		sent = solo_sent(&s, name, PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT);
		ck_assert_ptr_nonnull(sent);
		ck_assert(!sent->hv_disconnect->leaving);
		partisan_peer__peer_msg__free_unpacked(sent, NULL);
		ck_assert(solo_has(&s, ACT_DISCONNECT, name));
		ck_assert_uint_eq(ops->passive_view(s.m, &v), 1);
		ck_assert_str_eq(v[0], name);
	}
	ck_assert_uint_eq(dropped, 1);
	solo_free(&s);
}
END_TEST

START_TEST(test_leave_says_goodbye_to_every_neighbor_then_stops)
{
	struct solo s;
	const char *peers[] = {"b@127.0.0.1", "c@127.0.0.1", "d@127.0.0.1"};
	struct core_env env;
	PartisanPeer__PeerMsg *sent;

	solo_init(&s, "a@127.0.0.1/1");
	solo_join_msg(&s, peers[0], 1, 1);
	solo_reply(&s, peers[0], true, 1, 2);
	solo_neighbor(&s, peers[1], false, 1, 1);
	solo_neighbor(&s, peers[2], false, 1, 1);
	env = (struct core_env){s.now, &s.rng};
	actions_clear(&s.out);
	ops->leave(s.m, "a@127.0.0.1", &env, &s.out);
	for (unsigned i = 0; i < 3; i++) {
		sent = solo_sent(&s, peers[i], PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT);
		ck_assert_ptr_nonnull(sent);
		ck_assert(sent->hv_disconnect->leaving);
		partisan_peer__peer_msg__free_unpacked(sent, NULL);
		ck_assert(solo_has(&s, ACT_DISCONNECT, peers[i]));
		ck_assert(!ops->is_member(s.m, peers[i]));
	}
	ck_assert(solo_event(&s, EV_SELF_REMOVED, "a@127.0.0.1"));
	/* Stopped: a request is answered with "left", not accepted. */
	solo_neighbor(&s, "e@127.0.0.1", true, 1, 1);
	ck_assert(!ops->is_member(s.m, "e@127.0.0.1"));
	sent = solo_sent(&s, "e@127.0.0.1", PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT);
	ck_assert_ptr_nonnull(sent);
	ck_assert(sent->hv_disconnect->leaving);
	partisan_peer__peer_msg__free_unpacked(sent, NULL);
	solo_free(&s);
}
END_TEST

START_TEST(test_members_are_self_and_the_active_view)
{
	struct solo s;
	const struct node_spec *const *mv;

	solo_init(&s, "a@127.0.0.1/1");
	ck_assert_uint_eq(ops->members(s.m, &mv), 1);
	ck_assert_str_eq(mv[0]->name, "a@127.0.0.1");
	ck_assert(ops->is_member(s.m, "a@127.0.0.1"));
	solo_join_msg(&s, "b@127.0.0.1", 1, 1);
	ck_assert(!ops->is_member(s.m, "b@127.0.0.1")); /* not before it said yes */
	solo_reply(&s, "b@127.0.0.1", true, 1, 2);
	ck_assert_uint_eq(ops->members(s.m, &mv), 2);
	ck_assert_str_eq(mv[1]->name, "b@127.0.0.1");
	ck_assert_uint_eq(mv[1]->addrs[0].port, 9100);
	solo_free(&s);
}
END_TEST

START_TEST(test_bad_messages_are_refused_with_a_reason)
{
	struct solo s;
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvJoin j = PARTISAN_PEER__HV_JOIN__INIT;
	PartisanPeer__HvNeighbor nb = PARTISAN_PEER__HV_NEIGHBOR__INIT;
	PartisanPeer__HvShuffle sh = PARTISAN_PEER__HV_SHUFFLE__INIT;
	PartisanPeer__Leave lv = PARTISAN_PEER__LEAVE__INIT;
	PartisanPeer__Digest dg = PARTISAN_PEER__DIGEST__INIT;
	struct node_spec *good = make_spec("b@127.0.0.1", 9100), *bad = make_spec("nohost", 9101);
	PartisanCommon__NodeSpec gpb, bpb, *list[2] = {&gpb, &bpb};
	const char *why;

	solo_init(&s, "a@127.0.0.1/1");
	node_spec_to_pb(good, &gpb);
	node_spec_to_pb(bad, &bpb);
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN;
	msg.hv_join = &j; /* no spec */
	ck_assert_int_eq(solo_rx(&s, "b@127.0.0.1", &msg, &why), -1);
	ck_assert_ptr_nonnull(why);
	j.spec = &bpb; /* a bad name */
	ck_assert_int_eq(solo_rx(&s, "nohost", &msg, &why), -1);
	ck_assert_ptr_nonnull(why);
	j.spec = &gpb; /* somebody else's spec */
	ck_assert_int_eq(solo_rx(&s, "c@127.0.0.1", &msg, &why), -1);
	ck_assert_ptr_nonnull(why);
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR;
	msg.hv_neighbor = &nb;
	nb.spec = &gpb;
	ck_assert_int_eq(solo_rx(&s, "c@127.0.0.1", &msg, &why), -1);
	ck_assert_ptr_nonnull(why);
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE;
	msg.hv_shuffle = &sh;
	sh.origin = &gpb;
	sh.specs = list;
	sh.n_specs = 2;
	ck_assert_int_eq(solo_rx(&s, "b@127.0.0.1", &msg, &why), -1);
	ck_assert_ptr_nonnull(why);
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_LEAVE;
	msg.leave = &lv;
	ck_assert_int_eq(solo_rx(&s, "b@127.0.0.1", &msg, &why), -1);
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_DIGEST;
	msg.digest = &dg;
	ck_assert_int_eq(solo_rx(&s, "b@127.0.0.1", &msg, &why), -1);
	ck_assert_ptr_nonnull(why);
	/* Nothing of it stuck. */
	ck_assert(!ops->is_member(s.m, "b@127.0.0.1"));
	ck_assert_uint_eq(ops->passive_view(s.m, &(const char *const *){NULL}), 0);
	node_spec_pb_release(&gpb);
	node_spec_pb_release(&bpb);
	node_spec_free(good);
	node_spec_free(bad);
	solo_free(&s);
}
END_TEST

START_TEST(test_node_that_never_joined_turns_neighbor_requests_away)
{
	struct solo s;
	PartisanPeer__PeerMsg *sent;

	solo_init(&s, "a@127.0.0.1/1");
	solo_neighbor(&s, "b@127.0.0.1", true, 1, 1);
	ck_assert(!ops->is_member(s.m, "b@127.0.0.1"));
	sent = solo_sent(&s, "b@127.0.0.1", PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT);
	ck_assert_ptr_nonnull(sent);
	ck_assert(sent->hv_disconnect->leaving);
	partisan_peer__peer_msg__free_unpacked(sent, NULL);
	solo_free(&s);
}
END_TEST

static Suite *hyparview_suite(void)
{
	Suite *s = suite_create("hyparview");
	TCase *net = tcase_create("overlay"), *one = tcase_create("messages");

	tcase_set_timeout(net, 300);
	tcase_add_test(net, test_join_of_200_nodes_builds_bounded_symmetric_connected_overlay);
	tcase_add_test(net, test_overlay_of_50_nodes_is_connected_a_second_after_the_last_join);
	tcase_add_test(net, test_overlay_reconnects_after_half_of_200_nodes_crash_at_once);
	tcase_add_test(net, test_overlay_survives_loss_duplication_and_reordering);
	tcase_add_test(net, test_leave_removes_the_node_from_every_view);
	tcase_add_test(net, test_leave_of_another_node_makes_it_leave);
	tcase_add_test(one, test_stale_disconnect_from_an_older_epoch_is_ignored);
	tcase_add_test(one, test_full_view_refuses_low_priority_and_makes_room_for_high_priority);
	tcase_add_test(one, test_leave_says_goodbye_to_every_neighbor_then_stops);
	tcase_add_test(one, test_members_are_self_and_the_active_view);
	tcase_add_test(one, test_bad_messages_are_refused_with_a_reason);
	tcase_add_test(one, test_node_that_never_joined_turns_neighbor_requests_away);
	suite_add_tcase(s, net);
	suite_add_tcase(s, one);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hyparview_suite());
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
