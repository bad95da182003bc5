/* ss_world.c: the simulated world: node start-up and joins, the virtual
 * clock, crashes and broadcasts. Each node's rngs and the network's come
 * from the run seed, so a seed reproduces a run exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simscale.h"

void ss_params_default(struct ss_params *p, uint64_t seed, unsigned nodes)
{
	memset(p, 0, sizeof(*p));
	p->seed = seed;
	p->nodes = nodes;
	p->join_every_ms = 2;
	p->fd_ms = 2000; /* the detector's failure_timeout_ms */
	p->plumtree = true;
	p->shuffle_ms = 10000;
	p->promote_ms = 5000;
	p->lazy_ms = 1000;
	p->exchange_ms = 10000;
	p->max_store = 1024; /* the daemon's PLUMTREE_STORE */
}

/* splitmix64 of (seed, k): independent streams per node and purpose. */
static uint64_t ss_mix(uint64_t seed, uint64_t k)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL + k * 0xd1b54a32d192ed03ULL + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct ss_world *ss_world_new(const struct ss_params *p)
{
	struct ss_world *w = xcalloc(1, sizeof(*w));

	w->p = *p;
	w->nodes = xcalloc(p->nodes, sizeof(*w->nodes));
	rng_seed(&w->net_rng, ss_mix(p->seed, 0));
	rng_seed(&w->pick_rng, ss_mix(p->seed, 1));
	w->c.digest = 0xcbf29ce484222325ULL;
	w->victim = -1;
	return w;
}

static void ss_node_stop(struct ss_node *nd)
{
	node_destroy(nd->node);
	nd->node = NULL;
	nd->mgr = NULL;
	nd->pt = NULL;
}

void ss_world_free(struct ss_world *w)
{
	for (uint32_t i = 0; i < w->n; i++) {
		ss_node_stop(&w->nodes[i]);
		ss_fd_stop(w, i);
		node_spec_free(w->nodes[i].spec);
		free(w->nodes[i].refs);
	}
	while (w->nheap > 0) {
		struct ss_event e = ss_heap_pop(w);

		ss_event_free(&e);
	}
	for (size_t k = 0; k < w->nacts; k++) {
		actions_free(w->acts[k]);
		free(w->acts[k]);
	}
	free(w->acts);
	for (size_t b = 0; b < w->nbc; b++)
		free(w->bc[b].seen);
	ss_links_free(w);
	free(w->bc);
	free(w->victim_down);
	free(w->crash_ix);
	free(w->crash_down);
	free(w->heap);
	free(w->nodes);
	free(w);
}

long ss_node_of(const struct ss_world *w, const char *name)
{
	unsigned long i = 0;
	const char *p = name + 1;

	if (name[0] != 'n' || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		i = i * 10 + (unsigned long)(*p - '0');
	if (*p != '@' || i >= w->n)
		return -1;
	return (long)i;
}

/* "nI@10.x.y.z", listening on 9090, one default channel. */
static struct node_spec *ss_spec(uint32_t i)
{
	struct node_spec *s = xcalloc(1, sizeof(*s));
	char name[64];

	snprintf(name, sizeof(name), "n%u@10.%u.%u.%u", i, (i >> 16) & 255, (i >> 8) & 255,
	         i & 255);
	s->name = xstrdup(name);
	s->naddrs = 1;
	s->addrs = xcalloc(1, sizeof(*s->addrs));
	snprintf(s->addrs[0].ip, sizeof(s->addrs[0].ip), "%s", strchr(name, '@') + 1);
	s->addrs[0].port = 9090;
	s->nchannels = 1;
	s->channels = xcalloc(1, sizeof(*s->channels));
	s->channels[0].name = xstrdup("default");
	s->channels[0].parallelism = 1;
	s->parallelism = 1;
	return s;
}

/* The node core: the detector, Plumtree when the run has it, and a
 * HyParView manager, or a full_mesh one with the detector's watch ring (as
 * the daemon configures them). */
static struct node *ss_node_core(const struct ss_world *w, uint32_t i, const struct node_spec *self)
{
	struct manager_params mp = {0};
	struct node_params np = {0};
	struct node *nd;
	char actor[300];

	snprintf(actor, sizeof(actor), "%s/1", self->name);
	mp.self = self;
	mp.actor = actor;
	mp.active_max = SS_ACTIVE_MAX;
	mp.passive_max = 30;
	mp.arwl = 6;
	mp.prwl = 3;
	mp.shuffle_interval_ms = w->p.shuffle_ms;
	mp.shuffle_k_active = 3;
	mp.shuffle_k_passive = 4;
	mp.promotion_interval_ms = w->p.promote_ms;
	mp.gossip_interval_ms = 1000; /* the daemon's defaults */
	mp.fanout = 3;
	np.self = self->name;
	np.failure_timeout_ms = w->p.fd_ms; /* hyparview: watch all (no ring) */
	np.fd_ring = w->p.full_mesh;
	np.broadcast = w->p.plumtree;
	np.epoch = ss_mix(w->p.seed, i) >> 1;
	np.lazy_tick_ms = w->p.lazy_ms;
	np.exchange_tick_ms = w->p.exchange_ms;
	np.broadcast_store = w->p.max_store;
	nd = node_create(&np);
	node_set_manager(nd, w->p.full_mesh ? &full_mesh_ops : &hyparview_ops, &mp);
	return nd;
}

unsigned ss_live(const struct ss_world *w)
{
	return w->nlive;
}

uint32_t ss_random_live(struct ss_world *w)
{
	uint32_t i;

	if (w->nlive == 0)
		abort();
	do
		i = (uint32_t)rng_below(&w->pick_rng, w->n);
	while (!w->nodes[i].alive);
	return i;
}

uint32_t ss_add_node(struct ss_world *w)
{
	uint32_t i = w->n;
	struct ss_node *nd = &w->nodes[i];

	if (i >= w->p.nodes)
		abort();
	nd->spec = ss_spec(i);
	nd->node = ss_node_core(w, i, nd->spec);
	nd->mgr = node_manager(nd->node);
	nd->pt = node_plumtree(nd->node);
	rng_seed(&nd->rng, ss_mix(w->p.seed, 2 * (uint64_t)i + 2));
	nd->alive = true;
	w->nlive++;
	nd->contact = i;
	nd->joined = i == 0;
	if (i > 0)
		nd->contact = ss_random_live(w);
	w->n++;
	if (i > 0)
		ss_net_connect(w, i, nd->contact);
	return i;
}

/* Every node in phase t ticks at t, so each ticks every SS_TICK_MS (a
 * starved one every SS_STARVE of those, a paused one not at all). */
static void ss_tick_phase(struct ss_world *w, uint64_t t)
{
	bool slow = (t / SS_TICK_MS) % SS_STARVE == 0; /* a starved node's tick */

	for (uint32_t i = (uint32_t)(t % SS_TICK_MS); i < w->n; i += SS_TICK_MS) {
		const struct ss_node *nd = &w->nodes[i];

		if (nd->alive && !nd->paused && (!nd->starved || slow))
			ss_tick_node(w, i);
	}
}

void ss_run(struct ss_world *w, uint64_t ms)
{
	uint64_t end = w->now + ms;

	while (w->now < end) {
		uint64_t t = w->now + 1;

		while (w->nheap > 0 && w->heap[0].at <= t) {
			struct ss_event e = ss_heap_pop(w);

			if (e.at > w->now)
				w->now = e.at;
			ss_net_event(w, &e);
		}
		w->now = t;
		ss_tick_phase(w, t);
	}
}

void ss_build(struct ss_world *w, uint64_t settle_ms)
{
	while (w->n < w->p.nodes) {
		ss_add_node(w);
		ss_run(w, w->p.join_every_ms);
	}
	ss_run(w, settle_ms);
}

void ss_crash(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];

	if (!nd->alive)
		return;
	nd->alive = false;
	w->nlive--;
	ss_net_crash_links(w, i);
	ss_node_stop(nd);
	ss_fd_stop(w, i);
}

/* Crash pct % of the live nodes; track: first give each its index in
 * w->crash_ix, so that every link that goes down afterwards is recorded. */
static unsigned ss_crash_some(struct ss_world *w, unsigned pct, bool track)
{
	uint32_t *live = xcalloc(w->n, sizeof(*live));
	unsigned n = 0, k;

	for (uint32_t i = 0; i < w->n; i++)
		if (w->nodes[i].alive)
			live[n++] = i;
	k = (unsigned)((uint64_t)n * pct / 100);
	for (unsigned c = 0; c < k; c++) { /* partial Fisher-Yates */
		unsigned r = c + (unsigned)rng_below(&w->pick_rng, n - c);
		uint32_t t = live[c];

		live[c] = live[r];
		live[r] = t;
	}
	if (track) {
		free(w->crash_ix);
		free(w->crash_down);
		w->crash_ix = xcalloc(w->p.nodes, sizeof(*w->crash_ix));
		w->crash_down = xcalloc((size_t)w->p.nodes * (k ? k : 1), sizeof(*w->crash_down));
		w->ncrash = k;
		for (unsigned c = 0; c < k; c++)
			w->crash_ix[live[c]] = c + 1;
	}
	for (unsigned c = 0; c < k; c++)
		ss_crash(w, live[c]);
	free(live);
	return k;
}

unsigned ss_crash_fraction(struct ss_world *w, unsigned pct)
{
	return ss_crash_some(w, pct, false);
}

unsigned ss_crash_tracked(struct ss_world *w, unsigned pct)
{
	return ss_crash_some(w, pct, true);
}

size_t ss_broadcast(struct ss_world *w, uint32_t origin)
{
	struct ss_node *nd = &w->nodes[origin];
	struct core_env env = {w->now, &nd->rng};
	size_t idx = w->nbc;
	uint8_t payload[4] = {(uint8_t)idx, (uint8_t)(idx >> 8), (uint8_t)(idx >> 16),
	                      (uint8_t)(idx >> 24)};
	struct actions *out;

	if (w->nbc == w->capbc) {
		w->capbc = w->capbc ? 2 * w->capbc : 16;
		w->bc = xrealloc(w->bc, w->capbc * sizeof(*w->bc));
	}
	memset(&w->bc[idx], 0, sizeof(w->bc[idx]));
	w->bc[idx].seen = xcalloc((w->p.nodes + 7) / 8, 1);
	w->bc[idx].at = w->now;
	w->bc[idx].origin = origin;
	w->bc[idx].live = ss_live(w);
	w->nbc++;
	out = ss_acts(w);
	node_broadcast(nd->node, "t", payload, sizeof(payload), &env, out);
	ss_drain(w, origin, out);
	return idx;
}
