/* ss_fd.c: the links' side of the node core, as peer.c is the daemon's:
 * each node runs the real daemon/core/node.c with its failure detector.
 * Every delivered message is heard (node_heard), every send on an up link
 * is node_sent, a Silent report about a node whose deliveries wait unread
 * is told so first, and before each tick the overdue nodes are checked for
 * unread deliveries; the detector's Heartbeat and Silent messages are
 * ACT_F_NOW sends over the simulated links; a DOWN closes the link, so the
 * core sees its link go down. Bytes wait unread while a paused or starved
 * node holds deliveries. A paused node does not tick; a starved one ticks
 * every SS_STARVE ticks and reads what was held right after. */
#include <stdlib.h>

#include "simscale.h"

void ss_fd_stop(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];

	nd->paused = nd->starved = false;
	ss_held_free(nd);
}

void ss_fd_link(struct ss_world *w, uint32_t i, uint32_t other, bool up)
{
	uint64_t *at;

	if (!up && w->victim == (long)other && w->victim_down && w->victim_down[i] == 0)
		w->victim_down[i] = w->now;
	if (up || w->crash_ix == NULL || w->crash_ix[other] == 0)
		return;
	at = &w->crash_down[(size_t)i * w->ncrash + w->crash_ix[other] - 1];
	if (*at == 0)
		*at = w->now;
}

void ss_fd_sent(struct ss_world *w, uint32_t from, uint32_t to)
{
	struct ss_node *nd = &w->nodes[from];

	if (nd->node && ss_net_up(w, from, to))
		node_sent(node_peer(nd->node, w->nodes[to].spec->name), w->now);
}

void ss_fd_down(struct ss_world *w, uint32_t i, long j)
{
	w->c.fd_downs++;
	if (j >= 0 && w->nodes[j].alive && !w->nodes[j].paused)
		w->c.fd_false++;
	if (j >= 0)
		ss_net_close(w, i, (uint32_t)j);
}

/* Whether a delivery from j waits unread at i. */
static bool ss_fd_unread(const struct ss_world *w, uint32_t i, long j)
{
	const struct ss_node *nd = &w->nodes[i];

	for (uint32_t k = 0; k < nd->nheld; k++)
		if (nd->held[k].kind == SE_DELIVER && (long)nd->held[k].from == j)
			return true;
	return false;
}

void ss_fd_receive(struct ss_world *w, uint32_t to, uint32_t from, const PartisanPeer__PeerMsg *msg)
{
	struct ss_node *nd = &w->nodes[to];

	node_heard(node_peer(nd->node, w->nodes[from].spec->name), w->now);
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_SILENT && msg->silent->node &&
	    ss_fd_unread(w, to, ss_node_of(w, msg->silent->node)))
		node_unread(node_peer(nd->node, msg->silent->node), w->now);
}

void ss_fd_unread_scan(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct fd_node **due = NULL;
	size_t k =
	    nd->nheld ? node_overdue(nd->node, w->now, &due) : 0; /* nothing held: nothing unread */

	for (size_t d = 0; d < k; d++)
		if (ss_fd_unread(w, i, ss_node_of(w, fd_node_name(due[d]))))
			node_unread(due[d], w->now);
}

void ss_pause(struct ss_world *w, uint32_t i)
{
	w->nodes[i].paused = true;
}

void ss_resume(struct ss_world *w, uint32_t i)
{
	w->nodes[i].paused = false;
	ss_net_release(w, i);
}
