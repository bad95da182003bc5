/* sim_fd.c: the links' side of the node core in the simulator. Plays
 * peer.c's part for each virtual node around the real daemon/core/node.c
 * (and its failure detector, fd.c): every delivered message is heard
 * (node_heard), every send on an up link is node_sent, a Silent report
 * about a node whose messages wait unread is told so first, the overdue
 * nodes are checked for unread messages before each tick, and a DOWN
 * closes the link (the manager sees peer_down and dials again as in the
 * daemon). The detector's Heartbeat and Silent messages are ACT_SEND
 * actions with ACT_F_NOW, carried by the simulated network like any other.
 *
 * Paused and starved nodes. A paused node (SIGSTOP) reads and ticks
 * nothing: deliveries, closes and its tick that reach it are held, dials to
 * it fail; on resume it reads them in order. A starved node wakes only
 * every tick_ms: it ticks, then reads what came since, which meanwhile
 * waits unread (the detector's "unread bytes are life"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_fd_start(struct sim_world *w, unsigned i)
{
	w->nodes[i].tick_ms = SIM_TICK_MS;
}

void sim_held_free(struct sim_node *n)
{
	for (size_t k = 0; k < n->nheld; k++)
		free(n->held[k].buf);
	free(n->held);
	n->held = NULL;
	n->nheld = n->capheld = 0;
}

void sim_fd_stop(struct sim_world *w, unsigned i)
{
	struct sim_node *n = &w->nodes[i];

	n->paused = n->starved = false;
	sim_held_free(n);
}

static void sim_victim_link(struct sim_world *w, unsigned i, unsigned other, bool up)
{
	uint64_t *at;

	if (w->victim != (int)other || w->victim_down == NULL)
		return;
	at = up ? &w->victim_up[i] : &w->victim_down[i];
	if (*at == 0)
		*at = w->now;
}

void sim_fd_link(struct sim_world *w, unsigned i, unsigned other, bool up)
{
	if (w->nodes[i].node)
		sim_victim_link(w, i, other, up);
}

void sim_fd_sent(struct sim_world *w, unsigned from, unsigned to)
{
	struct sim_node *n = &w->nodes[from];

	if (n->node && sim_link(w, from, to)->state == LINK_UP)
		node_sent(node_peer(n->node, w->nodes[to].name), w->now);
}

bool sim_fd_up_to(struct sim_world *w, unsigned i, unsigned j)
{
	const struct sim_link *l = sim_link(w, i, j);

	return i != j && l->state == LINK_UP && l->up[i < j ? 0 : 1];
}

void sim_fd_down(struct sim_world *w, unsigned i, int j, const char *why)
{
	struct sim_node *n = &w->nodes[i];

	n->st.fd_downs++;
	if ((int)i == w->slow_to && j == w->slow_from) {
		w->slow_downs++;
		w->slow_down_at = w->slow_down_at ? w->slow_down_at : w->now;
	}
	if (j >= 0 && w->nodes[j].alive && !w->nodes[j].paused && !w->nodes[j].mute)
		n->st.fd_false++;
	if (j >= 0)
		sim_net_close(w, i, (unsigned)j);
}

/* Whether something from j waits unread at i. */
static bool sim_fd_unread(const struct sim_world *w, unsigned i, unsigned j)
{
	const struct sim_node *n = &w->nodes[i];

	for (size_t k = 0; k < n->nheld; k++)
		if (n->held[k].kind == SE_DELIVER && n->held[k].from == j)
			return true;
	return false;
}

void sim_fd_receive(struct sim_world *w, unsigned to, unsigned from,
                    const PartisanPeer__PeerMsg *msg)
{
	struct sim_node *n = &w->nodes[to];
	int j;

	node_heard(node_peer(n->node, w->nodes[from].name), w->now);
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_SILENT && msg->silent->node &&
	    (j = sim_node_index(w, msg->silent->node)) >= 0 && sim_fd_unread(w, to, (unsigned)j))
		node_unread(node_peer(n->node, msg->silent->node), w->now);
}

void sim_fd_unread_scan(struct sim_world *w, unsigned i)
{
	struct sim_node *n = &w->nodes[i];
	struct fd_node **due = NULL;
	size_t k =
	    n->nheld ? node_overdue(n->node, w->now, &due) : 0; /* nothing held: nothing unread */

	for (size_t d = 0; d < k; d++) {
		int j = sim_node_index(w, fd_node_name(due[d]));

		if (j >= 0 && sim_fd_unread(w, i, (unsigned)j))
			node_unread(due[d], w->now);
	}
}

/* ---- paused and starved nodes ---- */

static void sim_hold_push(struct sim_node *n, const struct sim_event *e)
{
	if (n->nheld == n->capheld) {
		n->capheld = n->capheld ? 2 * n->capheld : 16;
		n->held = xrealloc(n->held, n->capheld * sizeof(*n->held));
	}
	n->held[n->nheld++] = *e;
}

bool sim_hold(struct sim_world *w, struct sim_event *e)
{
	struct sim_node *to = &w->nodes[e->to];

	if (e->kind == SE_CONNECTED) {
		/* A paused node does not answer a hello: the dial fails. */
		if (to->paused || w->nodes[e->from].paused)
			e->inc = 0;
		return false;
	}
	if (!to->alive || !(to->paused || (to->starved && e->kind != SE_TICK)))
		return false;
	sim_hold_push(to, e);
	return true;
}

void sim_release(struct sim_world *w, unsigned i)
{
	struct sim_node *n = &w->nodes[i];
	struct sim_event *held = n->held;
	size_t nheld = n->nheld;

	n->held = NULL;
	n->nheld = n->capheld = 0;
	for (size_t k = 0; k < nheld; k++) {
		if (held[k].kind == SE_TICK) {
			held[k].at = w->now; /* it was due: it runs now */
			simq_push(&w->q, &held[k]);
			continue;
		}
		sim_net_event(w, &held[k]);
		free(held[k].buf);
	}
	free(held);
}

void sim_pause(struct sim_world *w, unsigned i)
{
	sim_trace(w, i, "pause");
	w->nodes[i].paused = true;
}

void sim_resume(struct sim_world *w, unsigned i)
{
	sim_trace(w, i, "resume");
	w->nodes[i].paused = false;
	sim_release(w, i);
}

void sim_starve(struct sim_world *w, unsigned i, unsigned tick_ms)
{
	sim_trace(w, i, "starved: a tick every %u ms, reads only then", tick_ms);
	w->nodes[i].starved = true;
	w->nodes[i].tick_ms = tick_ms;
}
