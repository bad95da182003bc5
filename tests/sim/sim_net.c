/* sim_net.c: the simulator's network. Links between virtual nodes (set up,
 * graceful close, abort), message transport with the seeded faults of
 * struct sim_opts (drop, duplicate, delay and so reorder), partitions, and
 * one direction of one link delayed (w->slow_*: data and close alike, so
 * that direction stays in order). */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct sim_link *sim_link(struct sim_world *w, unsigned a, unsigned b)
{
	if (a > b) {
		unsigned t = a;

		a = b;
		b = t;
	}
	return &w->links[(size_t)b * (b - 1) / 2 + a];
}

/* Which end of link (i, j) node i is. */
static unsigned sim_side(unsigned i, unsigned j)
{
	return i < j ? 0 : 1;
}

static void sim_schedule(struct sim_world *w, enum sim_ev_kind kind, uint64_t at, unsigned from,
                         unsigned to, uint32_t gen)
{
	struct sim_event e = {.at = at, .kind = kind, .from = from, .to = to, .gen = gen};

	simq_push(&w->q, &e);
}

/* The one-way delay on from -> to, if that is the slow direction. */
static uint64_t sim_slow(const struct sim_world *w, unsigned from, unsigned to)
{
	return (int)from == w->slow_from && (int)to == w->slow_to ? w->slow_ms : 0;
}

static void sim_schedule_delivery(struct sim_world *w, unsigned from, unsigned to, uint32_t gen,
                                  uint8_t *buf, size_t len)
{
	struct sim_event e = {.kind = SE_DELIVER, .from = from, .to = to, .gen = gen};

	e.at = w->now + sim_uniform(&w->rng, w->o.delay_min_ms, w->o.delay_max_ms) +
	       sim_slow(w, from, to);
	e.buf = buf;
	e.len = len;
	simq_push(&w->q, &e);
}

void sim_net_send(struct sim_world *w, unsigned from, unsigned to, uint8_t *buf, size_t len)
{
	struct sim_link *l = sim_link(w, from, to);
	struct sim_stats *st = &w->nodes[from].st;

	if (from == to || l->state != LINK_UP) {
		st->drop_nolink++;
		free(buf);
		return;
	}
	if (w->nodes[from].mute) { /* an asymmetric partition: lost on its way out */
		st->drop_fault++;
		free(buf);
		return;
	}
	if (sim_chance(&w->rng, w->o.drop_ppm)) {
		st->drop_fault++;
		free(buf);
		return;
	}
	if (sim_chance(&w->rng, w->o.dup_ppm)) {
		uint8_t *copy = xmalloc(len);

		memcpy(copy, buf, len);
		st->duplicated++;
		sim_schedule_delivery(w, from, to, l->gen, copy, len);
	}
	sim_schedule_delivery(w, from, to, l->gen, buf, len);
}

void sim_net_connect(struct sim_world *w, unsigned from, unsigned to, bool addr_ok)
{
	struct sim_link *l = sim_link(w, from, to);
	struct sim_event e = {.kind = SE_CONNECTED, .from = from, .to = to};

	/* Up or on its way: nothing to do. Closing: retried by a later connect. */
	if (from == to || l->state != LINK_NONE)
		return;
	l->state = LINK_CONNECTING;
	w->nodes[from].st.connects++;
	e.at = w->now + sim_uniform(&w->rng, w->o.connect_min_ms, w->o.connect_max_ms);
	e.gen = l->gen;
	e.inc = addr_ok;
	simq_push(&w->q, &e);
}

static void sim_link_reset(struct sim_link *l)
{
	l->state = LINK_NONE;
	l->up[0] = l->up[1] = false;
	l->gen++;
}

static void sim_connected(struct sim_world *w, const struct sim_event *e)
{
	struct sim_link *l = sim_link(w, e->from, e->to);
	const struct sim_node *a = &w->nodes[e->from], *b = &w->nodes[e->to];

	if (l->gen != e->gen || l->state != LINK_CONNECTING)
		return; /* cancelled */
	if (!e->inc || !a->alive || !b->alive || a->group != b->group) {
		sim_trace(w, e->from, "connect to %s failed", b->name);
		sim_link_reset(l);
		w->nodes[e->from].st.connect_fail++;
		return;
	}
	l->state = LINK_UP;
	l->up[0] = l->up[1] = true;
	sim_node_peer_up(w, e->from, e->to);
	/* The dialer's peer_up may already have closed or reset the link. */
	if (l->gen == e->gen && l->up[sim_side(e->to, e->from)])
		sim_node_peer_up(w, e->to, e->from);
}

void sim_net_close(struct sim_world *w, unsigned from, unsigned to)
{
	struct sim_link *l = sim_link(w, from, to);
	unsigned s = sim_side(from, to);

	switch (l->state) {
	case LINK_NONE:
		return;
	case LINK_CONNECTING:
		sim_link_reset(l);
		return;
	case LINK_UP:
		/* What is in flight from here still arrives, then the far end
		 * sees the connection close. */
		l->state = LINK_CLOSING;
		l->closer = (uint8_t)s;
		l->up[s] = false;
		sim_schedule(w, SE_CLOSED, w->now + w->o.delay_max_ms + 1 + sim_slow(w, from, to),
		             from, to, l->gen);
		sim_node_peer_down(w, from, to);
		return;
	case LINK_CLOSING:
		if (l->up[s]) {
			l->up[s] = false;
			sim_node_peer_down(w, from, to);
		}
		return;
	}
}

static void sim_closed(struct sim_world *w, const struct sim_event *e)
{
	struct sim_link *l = sim_link(w, e->from, e->to);
	bool was_up = l->up[sim_side(e->to, e->from)];

	if (l->gen != e->gen || l->state != LINK_CLOSING)
		return;
	sim_link_reset(l);
	if (was_up)
		sim_node_peer_down(w, e->to, e->from);
}

void sim_net_abort(struct sim_world *w, unsigned a, unsigned b)
{
	struct sim_link *l = sim_link(w, a, b);
	bool up_a = l->up[sim_side(a, b)], up_b = l->up[sim_side(b, a)];

	if (l->state == LINK_NONE)
		return;
	sim_link_reset(l);
	if (up_a)
		sim_node_peer_down(w, a, b);
	if (up_b)
		sim_node_peer_down(w, b, a);
}

static void sim_deliver(struct sim_world *w, const struct sim_event *e)
{
	const struct sim_link *l = sim_link(w, e->from, e->to);
	bool open = l->state == LINK_UP ||
	            (l->state == LINK_CLOSING && l->closer == sim_side(e->from, e->to));

	if (l->gen != e->gen || !open || !w->nodes[e->to].alive) {
		if (sim_tracing(w, e->to))
			sim_trace(w, e->to, "lost in flight: %s from %s",
			          sim_msg_kind(e->buf, e->len), w->nodes[e->from].name);
		w->nodes[e->from].st.drop_inflight++;
		return;
	}
	sim_node_receive(w, e->to, e->from, e->buf, e->len);
}

void sim_net_event(struct sim_world *w, const struct sim_event *e)
{
	switch (e->kind) {
	case SE_DELIVER:
		sim_deliver(w, e);
		break;
	case SE_CONNECTED:
		sim_connected(w, e);
		break;
	case SE_CLOSED:
		sim_closed(w, e);
		break;
	case SE_TICK:
		break;
	}
}

void sim_partition(struct sim_world *w, const int *group)
{
	for (unsigned i = 0; i < w->n; i++)
		w->nodes[i].group = group[i];
	for (unsigned b = 1; b < w->n; b++)
		for (unsigned a = 0; a < b; a++)
			if (group[a] != group[b])
				sim_net_abort(w, a, b);
}

void sim_heal(struct sim_world *w)
{
	for (unsigned i = 0; i < w->o.capacity; i++)
		w->nodes[i].group = 0;
}
