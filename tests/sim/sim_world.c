/* sim_world.c: the simulator's nodes and clock. Plays the daemon's shell for
 * each virtual node: creates its node core (daemon/core/node.c, with the
 * manager under test and the real failure detector), calls into it (join,
 * leave, tick, receive, link up/down) with a core_env on the virtual clock
 * and the node's own rng, and carries out the actions it asks for on the
 * simulated network (sim_net.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_BASE_PORT 10200

/* Idle byte bounds, at the defaults (gossip 1 s, fanout 3, shuffle 10 s):
 * - full_mesh: a converged node sends 3 digests of ~16 B a second (~50 B/s).
 *   A full state of 50 members is ~3 KB, so steady full-state gossip breaks
 *   320 B/s even at one state per node per 10 s.
 * - hyparview: a shuffle (~460 B: 8 specs) and its reply per node per 10 s,
 *   walked up to ARWL (6) hops: ~350 B/s measured. Sending the views every
 *   second, or a handshake storm, breaks 1 KB/s. */
static const struct sim_manager sim_managers[] = {
    {"full_mesh", &full_mesh_ops, true, 320.0},
    {"hyparview", &hyparview_ops, false, 1024.0},
};

const struct sim_manager *sim_manager_find(const char *name)
{
	for (size_t i = 0; i < sizeof(sim_managers) / sizeof(sim_managers[0]); i++)
		if (strcmp(sim_managers[i].name, name) == 0)
			return &sim_managers[i];
	return NULL;
}

void sim_opts_default(struct sim_opts *o, uint64_t seed, unsigned capacity)
{
	memset(o, 0, sizeof(*o));
	o->seed = seed;
	o->mgr = &sim_managers[0];
	o->capacity = capacity;
	o->gossip_interval_ms = 1000;
	o->fanout = 3;
	o->delay_min_ms = 1;
	o->delay_max_ms = 5;
	o->connect_min_ms = 1;
	o->connect_max_ms = 10;
}

uint64_t sim_uniform(struct rng *r, uint64_t lo, uint64_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

bool sim_chance(struct rng *r, unsigned ppm)
{
	return ppm > 0 && rng_below(r, 1000000) < ppm;
}

struct sim_world *sim_create(const struct sim_opts *o)
{
	struct sim_world *w = xcalloc(1, sizeof(*w));
	size_t npairs = (size_t)o->capacity * (o->capacity - 1) / 2;

	w->o = *o;
	rng_seed(&w->rng, o->seed);
	w->nodes = xcalloc(o->capacity, sizeof(*w->nodes));
	w->links = xcalloc(npairs ? npairs : 1, sizeof(*w->links));
	w->victim = -1;
	w->slow_from = w->slow_to = -1;
	return w;
}

void sim_destroy(struct sim_world *w)
{
	for (unsigned i = 0; i < w->n; i++) {
		node_destroy(w->nodes[i].node);
		node_spec_free(w->nodes[i].spec);
		sim_fd_stop(w, i);
	}
	free(w->victim_down);
	free(w->victim_up);
	simq_free(&w->q);
	free(w->nodes);
	free(w->links);
	free(w);
}

int sim_node_index(const struct sim_world *w, const char *name)
{
	char *end;
	unsigned long i;

	if (name[0] != 'n')
		return -1;
	i = strtoul(name + 1, &end, 10);
	if (*end != '@' || i >= w->n || strcmp(w->nodes[i].name, name) != 0)
		return -1;
	return (int)i;
}

/* Carry out one action of node i; takes what it keeps (a send's buffer). */
static void sim_act(struct sim_world *w, unsigned i, struct action *a)
{
	struct sim_node *n = &w->nodes[i];
	int j = a->kind == ACT_CONNECT ? sim_node_index(w, a->spec->name)
	        : a->node              ? sim_node_index(w, a->node)
	                               : -1;

	switch (a->kind) {
	case ACT_SEND:
		if (a->flags & ACT_F_NOW) {
			/* The detector's: counted apart, on up links only (peer.c). */
			n->st.fd_msgs++;
			n->st.fd_bytes += a->len;
			if (j < 0 || !sim_fd_up_to(w, i, (unsigned)j))
				break;
			sim_fd_sent(w, i, (unsigned)j);
			sim_net_send(w, i, (unsigned)j, a->buf, a->len);
			a->buf = NULL;
			break;
		}
		n->st.sent++;
		n->st.bytes += a->len;
		if (j < 0) {
			n->st.drop_nolink++;
		} else {
			sim_fd_sent(w, i, (unsigned)j);
			sim_net_send(w, i, (unsigned)j, a->buf, a->len);
		}
		a->buf = NULL;
		break;
	case ACT_CONNECT:
		if (j >= 0)
			sim_net_connect(w, i, (unsigned)j,
			                node_spec_cmp(a->spec, w->nodes[j].spec) == 0);
		break;
	case ACT_DISCONNECT:
		if (j >= 0)
			sim_net_close(w, i, (unsigned)j);
		break;
	case ACT_EVENT:
		if (a->event == EV_SELF_REMOVED)
			n->removed = true;
		break;
	case ACT_DOWN:
		sim_fd_down(w, i, j, a->text);
		break;
	case ACT_DELIVER: /* no broadcast here (params.broadcast off) */
	case ACT_LOG:     /* traced */
		break;
	}
}

/* Carry out, then free, the actions node i's manager asked for. */
static void sim_drain(struct sim_world *w, unsigned i, struct actions *out)
{
	for (size_t k = 0; k < out->n; k++) {
		sim_trace_action(w, i, &out->v[k]);
		sim_act(w, i, &out->v[k]);
	}
	actions_free(out);
}

static struct core_env sim_env(struct sim_world *w, unsigned i)
{
	struct core_env env = {w->now, &w->nodes[i].rng};

	return env;
}

static void sim_node_join(struct sim_world *w, unsigned i, unsigned contact)
{
	struct core_env env = sim_env(w, i);
	struct actions out;

	sim_trace(w, i, "join via %s", w->nodes[contact].name);
	actions_init(&out);
	w->nodes[i].joined = true;
	w->nodes[i].contact_inc = w->nodes[contact].inc;
	node_join(w->nodes[i].node, w->nodes[contact].spec, &env, &out);
	sim_drain(w, i, &out);
}

void sim_node_peer_up(struct sim_world *w, unsigned i, unsigned other)
{
	struct core_env env = sim_env(w, i);
	struct actions out;

	if (!w->nodes[i].alive)
		return;
	sim_trace(w, i, "peer_up %s", w->nodes[other].name);
	sim_fd_link(w, i, other, true);
	actions_init(&out);
	node_link_up(w->nodes[i].node, w->nodes[other].spec, &env, &out);
	sim_drain(w, i, &out);
	/* The shell's join: connect to the contact first, join once it is up. */
	if (w->nodes[i].contact == (int)other && !w->nodes[i].joined)
		sim_node_join(w, i, other);
}

void sim_node_peer_down(struct sim_world *w, unsigned i, unsigned other)
{
	struct core_env env = sim_env(w, i);
	struct actions out;

	if (!w->nodes[i].alive)
		return;
	sim_trace(w, i, "peer_down %s", w->nodes[other].name);
	sim_fd_link(w, i, other, false);
	actions_init(&out);
	node_link_down(w->nodes[i].node, w->nodes[other].name, &env, &out);
	sim_drain(w, i, &out);
}

void sim_node_receive(struct sim_world *w, unsigned to, unsigned from, const uint8_t *buf,
                      size_t len)
{
	struct core_env env = sim_env(w, to);
	PartisanPeer__PeerMsg *msg = partisan_peer__peer_msg__unpack(NULL, len, buf);
	const char *why = NULL;
	struct actions out;
	int rc;

	if (msg == NULL) {
		w->st.undecodable++;
		return;
	}
	if (sim_tracing(w, to))
		sim_trace(w, to, "receive %s from %s (%zu B)", sim_msg_kind(buf, len),
		          w->nodes[from].name, len);
	w->nodes[to].st.delivered++;
	sim_fd_receive(w, to, from, msg);
	actions_init(&out);
	rc = node_receive(w->nodes[to].node, w->nodes[from].name, msg, &env, &out, &why);
	partisan_peer__peer_msg__free_unpacked(msg, NULL);
	if (rc == NODE_NOT_MINE) /* no router here: nothing sends those */
		rc = -1, why = "not the node core's message";
	sim_drain(w, to, &out);
	if (rc < 0) {
		/* The shell closes a link that carried a refused message. */
		w->st.refused++;
		w->refused_why = why;
		sim_net_close(w, to, from);
	}
}

static void sim_schedule_tick(struct sim_world *w, unsigned i, uint64_t at)
{
	struct sim_event e = {.at = at, .kind = SE_TICK, .to = i, .inc = w->nodes[i].inc};

	simq_push(&w->q, &e);
}

/* Whether node i's join through its contact is done: the contact lists it
 * (or, with a partial view, i has a neighbor). A contact that crashed before
 * that took the news with it. */
static bool sim_join_done(struct sim_world *w, unsigned i, bool *lost)
{
	const struct sim_node *c = &w->nodes[w->nodes[i].contact];
	const struct node_spec *const *v;

	*lost = !c->alive || c->inc != w->nodes[i].contact_inc;
	if (!w->o.mgr->full_mesh && w->o.mgr->ops->members(w->nodes[i].mgr, &v) > 1)
		return true;
	return !*lost && w->o.mgr->ops->is_member(c->mgr, w->nodes[i].name);
}

/* The operator's join, retried on each tick: connect to the contact (another
 * member if it is gone), join once linked, and start over through another
 * member if the contact crashes before it lists this node. */
static void sim_retry_join(struct sim_world *w, unsigned i)
{
	struct sim_node *n = &w->nodes[i];
	const struct sim_link *l;
	bool lost;

	if (n->contact < 0)
		return;
	if (n->joined && sim_join_done(w, i, &lost)) {
		n->contact = -1;
		return;
	}
	if (n->joined && !lost)
		return;
	if (n->joined || !w->nodes[n->contact].alive || w->nodes[n->contact].removed) {
		n->joined = false;
		n->contact = sim_random_member(w, (int)i);
		if (n->contact < 0)
			return;
		sim_trace(w, i, "join again, via %s", w->nodes[n->contact].name);
	}
	l = sim_link(w, i, (unsigned)n->contact);
	if (l->state == LINK_UP)
		sim_node_join(w, i, (unsigned)n->contact);
	else if (l->state == LINK_NONE)
		sim_net_connect(w, i, (unsigned)n->contact, true);
}

static void sim_tick(struct sim_world *w, const struct sim_event *e)
{
	struct sim_node *n = &w->nodes[e->to];
	struct core_env env = sim_env(w, e->to);
	struct actions out;

	if (!n->alive || n->inc != e->inc)
		return;
	sim_fd_unread_scan(w, e->to);
	actions_init(&out);
	node_tick(n->node, &env, &out);
	sim_drain(w, e->to, &out);
	sim_retry_join(w, e->to);
	if (n->starved)
		sim_release(w, e->to); /* it reads once it is awake */
	sim_schedule_tick(w, e->to, w->now + n->tick_ms);
}

static struct node_spec *sim_make_spec(unsigned i, uint16_t port)
{
	struct ns_channel ch = {.name = "default", .parallelism = 1};
	struct ns_addr addr = {.port = port};
	struct node_spec s = {.addrs = &addr, .naddrs = 1, .channels = &ch, .nchannels = 1};
	char name[48];

	snprintf(name, sizeof(name), "n%u@10.%u.%u.%u", i, (i >> 16) & 255, (i >> 8) & 255,
	         i & 255);
	snprintf(addr.ip, sizeof(addr.ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
	s.name = name;
	s.parallelism = 1;
	return node_spec_dup(&s);
}

/* Give node i (a new slot, or a restart) its spec and a fresh manager. */
static void sim_incarnate(struct sim_world *w, unsigned i, bool new_port)
{
	struct sim_node *n = &w->nodes[i];
	struct manager_params p = {0};
	struct node_params np = {0};
	uint64_t seedv[3] = {w->o.seed, i, 0};
	char actor[64];

	n->inc++;
	if (n->spec == NULL || new_port) {
		node_spec_free(n->spec);
		n->spec = sim_make_spec(i, (uint16_t)(SIM_BASE_PORT + n->inc - 1));
		snprintf(n->name, sizeof(n->name), "%s", n->spec->name);
	}
	seedv[2] = n->inc;
	rng_seed(&n->rng, hash_bytes(HASH_INIT, seedv, sizeof(seedv)));
	snprintf(actor, sizeof(actor), "%s/%u", n->name, n->inc);
	p.self = n->spec;
	p.actor = actor;
	p.gossip_interval_ms = w->o.gossip_interval_ms;
	p.fanout = w->o.fanout;
	p.active_max = SIM_ACTIVE_MAX, p.passive_max = 30, p.arwl = 6, p.prwl = 3;
	p.shuffle_interval_ms = 10000, p.shuffle_k_active = 3, p.shuffle_k_passive = 4;
	p.promotion_interval_ms = 5000;
	np.self = n->name;
	np.failure_timeout_ms = SIM_FD_TIMEOUT_MS;
	np.fd_ring = w->o.mgr->full_mesh;
	n->node = node_create(&np);
	node_set_manager(n->node, w->o.mgr->ops, &p);
	n->mgr = node_manager(n->node);
}

void sim_start(struct sim_world *w, unsigned i, int contact, bool new_port)
{
	struct sim_node *n = &w->nodes[i];

	if (i == w->n)
		w->n++;
	if (i >= w->n || n->alive) {
		fprintf(stderr, "sim: bug: start of node %u that is up or out of order\n", i);
		abort();
	}
	sim_incarnate(w, i, new_port);
	sim_trace(w, i, "start: incarnation %u, port %u, contact %s", n->inc,
	          n->spec->addrs[0].port, contact >= 0 ? w->nodes[contact].name : "none");
	n->alive = true;
	sim_fd_start(w, i);
	n->removed = false;
	n->joined = contact < 0;
	n->contact = contact;
	sim_schedule_tick(w, i, w->now + 1 + rng_below(&w->rng, SIM_TICK_MS));
	if (contact >= 0)
		sim_net_connect(w, i, (unsigned)contact, true);
}

void sim_crash(struct sim_world *w, unsigned i)
{
	struct sim_node *n = &w->nodes[i];

	if (!n->alive)
		return;
	sim_trace(w, i, "crash");
	n->alive = false;
	for (unsigned j = 0; j < w->n; j++)
		if (j != i)
			sim_net_abort(w, i, j);
	node_destroy(n->node);
	n->node = NULL;
	n->mgr = NULL;
	sim_fd_stop(w, i);
}

void sim_leave(struct sim_world *w, unsigned i, unsigned target)
{
	struct core_env env = sim_env(w, i);
	struct actions out;

	sim_trace(w, i, "leave %s", w->nodes[target].name);
	actions_init(&out);
	node_leave(w->nodes[i].node, w->nodes[target].name, &env, &out);
	sim_drain(w, i, &out);
}

void sim_run_until(struct sim_world *w, uint64_t t)
{
	struct sim_event e;

	while (simq_pop(&w->q, t, &e)) {
		w->now = e.at;
		if (sim_hold(w, &e))
			continue; /* a paused or starved node reads it later */
		if (e.kind == SE_TICK)
			sim_tick(w, &e);
		else
			sim_net_event(w, &e);
		free(e.buf);
	}
	if (t > w->now)
		w->now = t;
}

int sim_random_member(struct sim_world *w, int except)
{
	unsigned k = 0;
	int pick = -1;

	/* Reservoir sampling: one pass, one rng draw per candidate. */
	for (unsigned i = 0; i < w->n; i++) {
		const struct sim_node *n = &w->nodes[i];

		if ((int)i == except || !n->alive || !n->joined || n->removed)
			continue;
		if (rng_below(&w->rng, ++k) == 0)
			pick = (int)i;
	}
	return pick;
}

static void sim_stats_add(struct sim_stats *t, const struct sim_stats *s)
{
	t->sent += s->sent;
	t->bytes += s->bytes;
	t->delivered += s->delivered;
	t->drop_fault += s->drop_fault;
	t->drop_nolink += s->drop_nolink;
	t->drop_inflight += s->drop_inflight;
	t->duplicated += s->duplicated;
	t->refused += s->refused;
	t->undecodable += s->undecodable;
	t->connects += s->connects;
	t->connect_fail += s->connect_fail;
	t->fd_msgs += s->fd_msgs;
	t->fd_bytes += s->fd_bytes;
	t->fd_downs += s->fd_downs;
	t->fd_false += s->fd_false;
}

void sim_totals(const struct sim_world *w, struct sim_stats *out)
{
	*out = w->st;
	for (unsigned i = 0; i < w->n; i++)
		sim_stats_add(out, &w->nodes[i].st);
}
