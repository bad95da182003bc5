/* ss_drive.c: the shell around each node's core (daemon/core/node.c), as
 * the daemon is: a link up or down, a message, a tick and a join go into
 * the node; what it dispatches where (the manager, Plumtree, the detector)
 * and what their events mean to each other is the node's, not this
 * file's. Actions are carried out in order as soon as the node returns
 * them. */
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

void ss_on_deliver(struct ss_world *w, uint32_t i, const struct action *a)
{
	const uint8_t *payload = a->buf;
	struct ss_bcast *b;
	uint32_t idx;

	if (a->len != 4)
		return;
	idx = (uint32_t)payload[0] | (uint32_t)payload[1] << 8 | (uint32_t)payload[2] << 16 |
	      (uint32_t)payload[3] << 24;
	if (idx >= w->nbc)
		return;
	b = &w->bc[idx];
	if (b->seen[i / 8] & (1u << (i % 8))) {
		b->dups++;
		return;
	}
	b->seen[i / 8] |= (uint8_t)(1u << (i % 8));
	b->got++;
	b->hops_sum += a->hops;
	if (a->hops > b->hops_max)
		b->hops_max = a->hops;
}

static void ss_join(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct core_env env = ss_env(w, &nd->rng);
	struct actions *out = ss_acts(w);

	nd->joined = true;
	node_join(nd->node, w->nodes[nd->contact].spec, &env, out);
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
	node_link_up(nd->node, w->nodes[other].spec, &env, out);
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
	node_link_down(nd->node, ss_name(w, other), &env, out);
	ss_drain(w, i, out);
}

/* Count a send that went out on an up link by what it was: the action's
 * flags say the detector's and its probes, the body the rest. */
static void ss_count_kind(struct ss_world *w, const struct action *a, int body)
{
	enum ss_kind k;

	if (a->flags & ACT_F_PROBE)
		k = SK_PROBE;
	else if (a->flags & ACT_F_NOW)
		k = body == PARTISAN_PEER__PEER_MSG__BODY_SILENT ? SK_SILENT : SK_REPLY;
	else if (body == PARTISAN_PEER__PEER_MSG__BODY_GOSSIP ||
	         body == PARTISAN_PEER__PEER_MSG__BODY_IHAVE ||
	         body == PARTISAN_PEER__PEER_MSG__BODY_GRAFT ||
	         body == PARTISAN_PEER__PEER_MSG__BODY_PRUNE ||
	         body == PARTISAN_PEER__PEER_MSG__BODY_EXCHANGE)
		k = SK_BROADCAST;
	else
		k = SK_MEMBERSHIP;
	w->c.kind_msgs[k]++;
	w->c.kind_bytes[k] += a->len;
}

static void ss_do(struct ss_world *w, uint32_t i, const struct action *a)
{
	const char *name = a->kind == ACT_CONNECT ? a->spec->name : a->node;
	long j = name ? ss_node_of(w, name) : -1;
	int body;

	switch (a->kind) {
	case ACT_EVENT: /* the node moved Plumtree's neighbors itself */
	case ACT_LOG:
		return;
	case ACT_DELIVER:
		ss_on_deliver(w, i, a);
		return;
	case ACT_DOWN:
		ss_fd_down(w, i, j);
		return;
	default:
		break;
	}
	if (j < 0) {
		w->c.bad_action++;
		return;
	}
	if (a->kind == ACT_SEND) {
		if (a->flags & ACT_F_NOW) {
			/* The detector's: on up links only (peer.c). */
			if (!ss_net_up(w, i, (uint32_t)j))
				return;
			w->c.fd_msgs++;
			w->c.fd_bytes += a->len;
		}
		ss_fd_sent(w, i, (uint32_t)j);
		body = ss_net_send(w, i, (uint32_t)j, a->buf, a->len);
		if (body >= 0)
			ss_count_kind(w, a, body);
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

void ss_receive(struct ss_world *w, uint32_t to, uint32_t from, const PartisanPeer__PeerMsg *msg)
{
	struct ss_node *nd = &w->nodes[to];
	struct core_env env = ss_env(w, &nd->rng);
	const char *why = NULL;
	struct actions *out;
	int rc;

	ss_fd_receive(w, to, from, msg);
	out = ss_acts(w);
	rc = node_receive(nd->node, ss_name(w, from), msg, &env, out, &why);
	ss_drain(w, to, out);
	if (rc == NODE_NOT_MINE) {
		w->c.undecodable++; /* no router here: nothing sends those */
	} else if (rc < 0) {
		w->c.refused++;
		ss_net_close(w, to, from);
	}
}

void ss_tick_node(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct core_env env = ss_env(w, &nd->rng);
	struct actions *out;

	ss_fd_unread_scan(w, i);
	out = ss_acts(w);
	node_tick(nd->node, &env, out);
	ss_drain(w, i, out);
	if (nd->starved && nd->alive)
		ss_net_release(w, i); /* awake: it reads what came meanwhile */
}
