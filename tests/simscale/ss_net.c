/* ss_net.c: the simulated network. A dial completes after 1..10 ms (both
 * ends get peer_up) if both nodes are alive, and never otherwise (the dialer
 * is not told; its core times out). A send goes out only on an up link and
 * arrives 1..10 ms later if the link still carries it. A graceful close
 * (ACT_DISCONNECT) reports the closer down at once and the far end after
 * what is in flight; what the closer sent before still arrives. A crash
 * breaks the node's links: in-flight messages are lost, sends into them
 * vanish, and each live end's failure detector has to notice (with fd_ms 0
 * the live ends get peer_down at once instead). A paused node's deliveries
 * and closes are held until it resumes, a starved node's until it ticks;
 * dials to or from a paused node fail. */
#include <stdlib.h>

#include "simscale.h"

static uint64_t ss_latency(struct ss_world *w)
{
	return SS_LAT_MIN + rng_below(&w->net_rng, SS_LAT_MAX - SS_LAT_MIN + 1);
}

static void ss_schedule(struct ss_world *w, enum ss_ev_kind kind, uint32_t from, uint32_t to,
                        uint32_t gen, uint64_t at)
{
	struct ss_event e = {.at = at, .from = from, .to = to, .gen = gen};

	e.kind = (uint8_t)kind;
	ss_heap_push(w, e);
}

void ss_net_connect(struct ss_world *w, uint32_t from, uint32_t to)
{
	struct ss_link *l;

	if (from == to || !w->nodes[from].alive || ss_link_get(w, from, to))
		return;
	l = ss_link_open(w, from, to);
	ss_schedule(w, SE_CONNECTED, from, to, l->gen, w->now + ss_latency(w));
}

static void ss_net_connected(struct ss_world *w, const struct ss_event *e)
{
	struct ss_link *l = ss_link_get(w, e->from, e->to);

	if (l == NULL || l->gen != e->gen || l->state != SS_CONNECTING)
		return;
	if (!w->nodes[e->from].alive || !w->nodes[e->to].alive || w->nodes[e->from].paused ||
	    w->nodes[e->to].paused) {
		ss_link_remove(w, l);
		return;
	}
	l->state = SS_UP;
	l->up[0] = l->up[1] = true;
	ss_act_peer_up(w, e->from, e->to);
	/* The pool never moves a link; a reused slot has another gen. */
	if (l->gen == e->gen && l->up[ss_end(l, e->to)])
		ss_act_peer_up(w, e->to, e->from);
}

static void ss_close_up(struct ss_world *w, struct ss_link *l, uint32_t from, uint32_t to)
{
	unsigned s = ss_end(l, from);

	l->state = SS_CLOSING;
	l->closer = (uint8_t)s;
	l->up[s] = false;
	ss_schedule(w, SE_CLOSED, from, to, l->gen, w->now + SS_LAT_MAX + 1);
	ss_act_peer_down(w, from, to);
}

void ss_net_close(struct ss_world *w, uint32_t from, uint32_t to)
{
	struct ss_link *l = ss_link_get(w, from, to);
	unsigned s;

	if (l == NULL)
		return;
	s = ss_end(l, from);
	switch (l->state) {
	case SS_CONNECTING:
		ss_link_remove(w, l);
		break;
	case SS_UP:
		ss_close_up(w, l, from, to);
		break;
	case SS_CLOSING:
	case SS_BROKEN:
		if (!l->up[s])
			break;
		l->up[s] = false;
		if (l->state == SS_BROKEN)
			ss_link_remove(w, l);
		ss_act_peer_down(w, from, to);
		break;
	}
}

static void ss_net_closed(struct ss_world *w, const struct ss_event *e)
{
	struct ss_link *l = ss_link_get(w, e->from, e->to);
	bool was_up;

	if (l == NULL || l->gen != e->gen || l->state != SS_CLOSING)
		return;
	was_up = l->up[ss_end(l, e->to)];
	ss_link_remove(w, l);
	if (was_up)
		ss_act_peer_down(w, e->to, e->from);
}

/* A Gossip carrying one of our broadcasts (4-byte index): count it. */
static void ss_count_gossip(struct ss_world *w, const PartisanPeer__PeerMsg *m)
{
	const PartisanPeer__Gossip *g;
	uint32_t idx;

	if (m->body_case != PARTISAN_PEER__PEER_MSG__BODY_GOSSIP)
		return;
	g = m->gossip;
	if (g == NULL || g->payload.len != 4)
		return;
	idx = (uint32_t)g->payload.data[0] | (uint32_t)g->payload.data[1] << 8 |
	      (uint32_t)g->payload.data[2] << 16 | (uint32_t)g->payload.data[3] << 24;
	if (idx < w->nbc) {
		w->bc[idx].gossip++;
		w->bc[idx].catch_up += g->has_catch_up && g->catch_up;
	}
}

/* ---- unpacked messages: an arena each ---- */

#if defined(__SANITIZE_ADDRESS__)
#define SS_ASAN 1
#else
#define SS_ASAN 0
#endif
#define SS_ALIGN 16
#define SS_HDR   ((sizeof(struct ss_arena) + SS_ALIGN - 1) & ~(size_t)(SS_ALIGN - 1))

static void *ss_arena_alloc(void *data, size_t size)
{
	struct ss_arena **head = data, *a = *head;
	size_t need = (size + SS_ALIGN - 1) & ~(size_t)(SS_ALIGN - 1);
	void *p;

	if (a == NULL || a->used + need > a->cap) {
		size_t cap = need > 1024 ? need : 1024;
		struct ss_arena *b = xmalloc(SS_HDR + cap);

		b->next = a;
		b->used = 0;
		b->cap = cap;
		*head = a = b;
	}
	p = (char *)a + SS_HDR + a->used;
	a->used += need;
	return p;
}

static void ss_arena_free(void *data, void *p)
{
	(void)data;
	(void)p; /* the whole arena goes at once */
}

static void ss_arena_release(struct ss_arena *a)
{
	while (a) {
		struct ss_arena *next = a->next;

		free(a);
		a = next;
	}
}

void ss_event_free(struct ss_event *e)
{
	if (e->arena)
		ss_arena_release(e->arena);
	else if (e->msg)
		partisan_peer__peer_msg__free_unpacked(e->msg, NULL);
	e->msg = NULL;
	e->arena = NULL;
}

/* Unpack buf; *arena: where it lives (NULL: free_unpacked it). ASan sees
 * each piece only with plain malloc, so it gets that. */
static PartisanPeer__PeerMsg *ss_unpack(const uint8_t *buf, size_t len, struct ss_arena **arena)
{
	ProtobufCAllocator al = {ss_arena_alloc, ss_arena_free, arena};
	PartisanPeer__PeerMsg *m;

	*arena = NULL;
	if (SS_ASAN)
		return partisan_peer__peer_msg__unpack(NULL, len, buf);
	m = partisan_peer__peer_msg__unpack(&al, len, buf);
	if (m == NULL) {
		ss_arena_release(*arena);
		*arena = NULL;
	}
	return m;
}

int ss_net_send(struct ss_world *w, uint32_t from, uint32_t to, const uint8_t *buf, size_t len)
{
	struct ss_link *l = ss_link_get(w, from, to);
	struct ss_event e = {.from = from, .to = to, .kind = SE_DELIVER};

	w->c.sent++;
	if (l == NULL || l->state != SS_UP) {
		w->c.nolink++;
		return -1;
	}
	if ((e.msg = ss_unpack(buf, len, &e.arena)) == NULL) {
		w->c.undecodable++;
		return -1;
	}
	ss_count_gossip(w, e.msg);
	e.gen = l->gen;
	e.at = w->now + ss_latency(w);
	ss_heap_push(w, e);
	return (int)e.msg->body_case;
}

static void ss_net_deliver(struct ss_world *w, struct ss_event *e)
{
	struct ss_link *l = ss_link_get(w, e->from, e->to);
	bool open =
	    l && l->gen == e->gen &&
	    (l->state == SS_UP || (l->state == SS_CLOSING && l->closer == ss_end(l, e->from)));

	if (open && w->nodes[e->to].alive) {
		w->c.delivered++;
		ss_receive(w, e->to, e->from, e->msg);
	} else {
		w->c.inflight++;
	}
	ss_event_free(e);
}

static uint64_t ss_fold(uint64_t h, uint64_t v)
{
	return (h ^ v) * 0x100000001b3ULL;
}

/* A delivery or close for a paused or starved node waits until it reads:
 * the hold owns the event then. */
static bool ss_hold(struct ss_world *w, struct ss_event *e)
{
	struct ss_node *nd = &w->nodes[e->to];

	if (e->kind == SE_CONNECTED || !nd->alive || !(nd->paused || nd->starved))
		return false;
	if (nd->nheld == nd->capheld) {
		nd->capheld = nd->capheld ? 2 * nd->capheld : 16;
		nd->held = xrealloc(nd->held, nd->capheld * sizeof(*nd->held));
	}
	nd->held[nd->nheld++] = *e;
	return true;
}

static void ss_net_dispatch(struct ss_world *w, struct ss_event *e)
{
	switch (e->kind) {
	case SE_DELIVER:
		ss_net_deliver(w, e);
		break;
	case SE_CONNECTED:
		ss_net_connected(w, e);
		break;
	case SE_CLOSED:
		ss_net_closed(w, e);
		break;
	}
}

void ss_held_free(struct ss_node *nd)
{
	for (uint32_t k = 0; k < nd->nheld; k++)
		ss_event_free(&nd->held[k]);
	free(nd->held);
	nd->held = NULL;
	nd->nheld = nd->capheld = 0;
}

void ss_net_release(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct ss_event *held = nd->held;
	uint32_t n = nd->nheld;

	nd->held = NULL;
	nd->nheld = nd->capheld = 0;
	for (uint32_t k = 0; k < n; k++)
		ss_net_dispatch(w, &held[k]);
	free(held);
}

bool ss_net_up(struct ss_world *w, uint32_t i, uint32_t j)
{
	struct ss_link *l = ss_link_get(w, i, j);

	return l && l->state == SS_UP && l->up[ss_end(l, i)];
}

void ss_net_event(struct ss_world *w, struct ss_event *e)
{
	w->c.digest =
	    ss_fold(ss_fold(ss_fold(w->c.digest, e->at), e->kind), (uint64_t)e->from << 32 | e->to);
	if (ss_hold(w, e))
		return;
	ss_net_dispatch(w, e);
}

/* Node i crashed: break its links. A live end still counting on a link
 * has its detector find it (fd_ms 0: it hears at once); the rest go. */
void ss_net_crash_links(struct ss_world *w, uint32_t i)
{
	const struct ss_node *nd = &w->nodes[i];
	uint32_t n = nd->nrefs;
	uint32_t *peers = xcalloc(n, sizeof(*peers));

	for (uint32_t k = 0; k < n; k++)
		peers[k] = nd->refs[k].peer;
	for (uint32_t k = 0; k < n; k++) {
		struct ss_link *l = ss_link_get(w, i, peers[k]);
		unsigned live;

		if (l == NULL)
			continue; /* gone meanwhile (a peer_down's actions) */
		live = ss_end(l, peers[k]);
		if (l->state == SS_CLOSING && l->closer != live)
			continue; /* its close is on the way: the far end hears of it */
		if ((l->state == SS_UP || l->state == SS_CLOSING) && l->up[live] && w->p.fd_ms) {
			l->state = SS_BROKEN;
			l->up[!live] = false;
		} else if ((l->state == SS_UP || l->state == SS_CLOSING) && l->up[live]) {
			ss_link_remove(w, l);
			ss_act_peer_down(w, peers[k], i);
		} else {
			ss_link_remove(w, l);
		}
	}
	free(peers);
}
