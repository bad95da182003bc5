/* ss_drive.c: the shell around each node's cores, wired as the daemon wires
 * them (daemon.c): link up -> manager peer_up, and a plumtree neighbor if
 * the node is in the active view; EV_MEMBER_ADDED -> plumtree neighbor if
 * the link is up; EV_MEMBER_REMOVED and link down -> neighbor gone. Actions
 * are carried out in order as soon as a core returns them. */
#include "simscale.h"

static struct core_env ss_env(const struct ss_world *w, struct rng *r)
{
	struct core_env env = {w->now, r};

	return env;
}

static const char *ss_name(const struct ss_world *w, uint32_t i)
{
	return w->nodes[i].spec->name;
}

void ss_on_deliver(void *arg, const char *topic, const char *origin, const uint8_t *payload,
                   size_t len)
{
	const struct ss_ctx *c = arg;
	struct ss_world *w = c->w;
	struct ss_bcast *b;
	uint32_t idx, hops;

	(void)topic;
	(void)origin;
	if (len != 4)
		return;
	idx = (uint32_t)payload[0] | (uint32_t)payload[1] << 8 | (uint32_t)payload[2] << 16 |
	      (uint32_t)payload[3] << 24;
	if (idx >= w->nbc)
		return;
	b = &w->bc[idx];
	if (b->seen[c->node / 8] & (1u << (c->node % 8))) {
		b->dups++;
		return;
	}
	b->seen[c->node / 8] |= (uint8_t)(1u << (c->node % 8));
	b->got++;
	hops = plumtree_stats(w->nodes[c->node].pt)->last_hops;
	b->hops_sum += hops;
	if (hops > b->hops_max)
		b->hops_max = hops;
}

static void ss_join(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct core_env env = ss_env(w, &nd->rng);
	struct actions *out = ss_acts(w);

	nd->joined = true;
	hyparview_ops.join(nd->mgr, w->nodes[nd->contact].spec, &env, out);
	ss_drain(w, i, out);
}

void ss_act_peer_up(struct ss_world *w, uint32_t i, uint32_t other)
{
	struct ss_node *nd = &w->nodes[i];
	struct core_env env = ss_env(w, &nd->rng);
	struct actions *out;

	if (!nd->alive)
		return;
	ss_fd_link(w, i, other, true);
	out = ss_acts(w);
	hyparview_ops.peer_up(nd->mgr, w->nodes[other].spec, &env, out);
	if (nd->pt && hyparview_ops.is_member(nd->mgr, ss_name(w, other)))
		plumtree_neighbor_up(nd->pt, ss_name(w, other));
	ss_drain(w, i, out);
	if (nd->alive && nd->contact == other && !nd->joined)
		ss_join(w, i);
}

void ss_act_peer_down(struct ss_world *w, uint32_t i, uint32_t other)
{
	struct ss_node *nd = &w->nodes[i];
	struct core_env env = ss_env(w, &nd->rng);
	struct actions *out;

	if (!nd->alive)
		return;
	ss_fd_link(w, i, other, false);
	out = ss_acts(w);
	hyparview_ops.peer_down(nd->mgr, ss_name(w, other), &env, out);
	if (nd->pt)
		plumtree_neighbor_down(nd->pt, ss_name(w, other));
	ss_drain(w, i, out);
}

static void ss_member_event(struct ss_world *w, uint32_t i, const struct action *a)
{
	struct ss_node *nd = &w->nodes[i];
	long j = a->node ? ss_node_of(w, a->node) : -1;
	struct ss_link *l;

	if (nd->pt == NULL || j < 0 || (uint32_t)j == i)
		return;
	if (a->event == EV_MEMBER_REMOVED) {
		plumtree_neighbor_down(nd->pt, a->node);
	} else if (a->event == EV_MEMBER_ADDED) {
		l = ss_link_get(w, i, (uint32_t)j);
		if (l && l->up[ss_end(l, i)])
			plumtree_neighbor_up(nd->pt, a->node);
	}
}

static void ss_do(struct ss_world *w, uint32_t i, const struct action *a)
{
	const char *name = a->kind == ACT_CONNECT ? a->spec->name : a->node;
	long j = name ? ss_node_of(w, name) : -1;

	if (a->kind == ACT_EVENT) {
		ss_member_event(w, i, a);
		return;
	}
	if (j < 0) {
		w->c.bad_action++;
		return;
	}
	if (a->kind == ACT_SEND) {
		ss_fd_sent(w, i, (uint32_t)j);
		ss_net_send(w, i, (uint32_t)j, a->buf, a->len);
	} else if (a->kind == ACT_CONNECT) {
		ss_net_connect(w, i, (uint32_t)j);
	} else {
		ss_net_close(w, i, (uint32_t)j);
	}
}

struct actions *ss_acts(struct ss_world *w)
{
	if (w->depth == w->nacts) {
		w->acts = xrealloc(w->acts, (w->nacts + 1) * sizeof(*w->acts));
		w->acts[w->nacts] = xmalloc(sizeof(struct actions));
		actions_init(w->acts[w->nacts++]);
	}
	return w->acts[w->depth++];
}

/* Carry out out's actions (which may call into cores again: deeper lists),
 * then empty it and hand it back. */
void ss_drain(struct ss_world *w, uint32_t i, struct actions *out)
{
	for (size_t k = 0; k < out->n; k++)
		ss_do(w, i, &out->v[k]);
	actions_clear(out);
	w->depth--;
}

static bool ss_for_manager(PartisanPeer__PeerMsg__BodyCase c)
{
	switch (c) {
	case PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN:
	case PARTISAN_PEER__PEER_MSG__BODY_HV_FORWARD_JOIN:
	case PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR:
	case PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY:
	case PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT:
	case PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE:
	case PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY:
	case PARTISAN_PEER__PEER_MSG__BODY_LEAVE:
		return true;
	default:
		return false;
	}
}

static bool ss_for_plumtree(PartisanPeer__PeerMsg__BodyCase c)
{
	switch (c) {
	case PARTISAN_PEER__PEER_MSG__BODY_GOSSIP:
	case PARTISAN_PEER__PEER_MSG__BODY_IHAVE:
	case PARTISAN_PEER__PEER_MSG__BODY_GRAFT:
	case PARTISAN_PEER__PEER_MSG__BODY_PRUNE:
	case PARTISAN_PEER__PEER_MSG__BODY_EXCHANGE:
		return true;
	default:
		return false;
	}
}

static int ss_to_plumtree(struct ss_world *w, uint32_t to, uint32_t from,
                          const PartisanPeer__PeerMsg *msg, struct actions *out)
{
	struct ss_node *nd = &w->nodes[to];
	struct core_env env = ss_env(w, &nd->pt_rng);
	struct ss_ctx ctx = {w, to};
	const char *why = NULL;

	if (nd->pt == NULL)
		return 0;
	return plumtree_receive(nd->pt, ss_name(w, from), msg, &env, out, ss_on_deliver, &ctx,
	                        &why);
}

void ss_receive(struct ss_world *w, uint32_t to, uint32_t from, const PartisanPeer__PeerMsg *msg)
{
	struct ss_node *nd = &w->nodes[to];
	struct core_env env = ss_env(w, &nd->rng);
	const char *why = NULL;
	struct actions *out;
	int rc;

	if (ss_fd_receive(w, to, from, msg))
		return;
	if (!ss_for_manager(msg->body_case) && !ss_for_plumtree(msg->body_case)) {
		w->c.undecodable++;
		return;
	}
	out = ss_acts(w);
	if (ss_for_manager(msg->body_case))
		rc = hyparview_ops.receive(nd->mgr, ss_name(w, from), msg, &env, out, &why);
	else
		rc = ss_to_plumtree(w, to, from, msg, out);
	ss_drain(w, to, out);
	if (rc < 0) {
		w->c.refused++;
		ss_net_close(w, to, from);
	}
}

void ss_tick_node(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct core_env env = ss_env(w, &nd->rng);
	struct actions *out;

	ss_fd_tick(w, i); /* first, as in the daemon's tick */
	out = ss_acts(w);
	hyparview_ops.tick(nd->mgr, &env, out);
	ss_drain(w, i, out);
	if (nd->pt && nd->alive) {
		env.rng = &nd->pt_rng;
		out = ss_acts(w);
		plumtree_tick(nd->pt, &env, out);
		ss_drain(w, i, out);
	}
	if (nd->starved && nd->alive)
		ss_net_release(w, i); /* awake: it reads what came meanwhile */
}
