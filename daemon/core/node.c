/* node.c: one node's protocol as one pure core (node.h).
 *
 * The composition, in one place:
 * - A peer message goes where node_table says: the manager (membership,
 *   HyParView), Plumtree (broadcast), the failure detector (Heartbeat,
 *   Silent), a refusal (a handshake message or nothing on an open link), or
 *   back to the shell for the router (everything else).
 * - A link up: the detector watches the node, the manager gets peer_up, and
 *   Plumtree a neighbor if the node is a member (the manager's neighbors:
 *   every linked member in a full mesh, the active view in HyParView). A
 *   link down undoes the three.
 * - The manager's membership events move Plumtree's neighbors: a member
 *   added whose link is up becomes one; a member removed stops being one.
 * - News of a departure ($partisan:left, over Plumtree) makes the manager
 *   forget the node and becomes an EV_MEMBER_LEFT for the shell.
 * - The detector's verdicts become actions: heartbeats and Silent reports
 *   are sends (ACT_F_NOW), a node taken down is an ACT_DOWN, and what is
 *   worth a log line is an ACT_LOG.
 * - The tick order is node_tick's (node.h).
 */
#include <stdlib.h>
#include <string.h>

#include "node.h"

struct node {
	char *self;
	const struct manager_ops *ops;
	void *mgr;
	struct plumtree *pt;
	struct fd *fd;
	struct fd_actions fda; /* the detector's scratch list */
	unsigned timeout_ms;
	uint64_t last_tick_ms;
};

struct node *node_create(const struct node_params *p)
{
	struct node *nd;

	if (p->self == NULL || !node_name_valid(p->self))
		return NULL;
	nd = xcalloc(1, sizeof(*nd));
	nd->self = xstrdup(p->self);
	nd->timeout_ms = p->failure_timeout_ms;
	nd->fd = fd_create(p->self, p->failure_timeout_ms, p->fd_ring);
	fd_actions_init(&nd->fda);
	if (p->broadcast)
		nd->pt = plumtree_create(p->self, p->epoch, p->lazy_tick_ms, p->exchange_tick_ms,
		                         p->broadcast_store ? p->broadcast_store : 1);
	return nd;
}

void node_destroy(struct node *nd)
{
	if (nd == NULL)
		return;
	if (nd->mgr)
		nd->ops->destroy(nd->mgr);
	if (nd->pt)
		plumtree_destroy(nd->pt);
	fd_destroy(nd->fd);
	fd_actions_free(&nd->fda);
	free(nd->self);
	free(nd);
}

void node_set_manager(struct node *nd, const struct manager_ops *ops,
                      const struct manager_params *mp)
{
	if (nd->mgr)
		nd->ops->destroy(nd->mgr);
	nd->ops = ops;
	nd->mgr = ops->create(mp);
}

const struct manager_ops *node_ops(const struct node *nd)
{
	return nd->ops;
}

void *node_manager(const struct node *nd)
{
	return nd->mgr;
}

struct plumtree *node_plumtree(const struct node *nd)
{
	return nd->pt;
}

const struct fd *node_fd(const struct node *nd)
{
	return nd->fd;
}

/* ---- observations ---- */

struct fd_node *node_peer(struct node *nd, const char *name)
{
	return fd_node(nd->fd, name);
}

void node_forget(struct node *nd, struct fd_node *p)
{
	fd_forget(nd->fd, p);
}

void node_heard(struct fd_node *p, uint64_t now)
{
	fd_heard(p, now);
}

void node_sent(struct fd_node *p, uint64_t now)
{
	fd_sent(p, now);
}

size_t node_overdue(struct node *nd, uint64_t now, struct fd_node ***out)
{
	return fd_overdue(nd->fd, now, out);
}

void node_unread(struct fd_node *p, uint64_t now)
{
	fd_unread(p, now);
}

bool node_link_is_up(const struct node *nd, const char *name)
{
	const struct fd_node *p = fd_find(nd->fd, name);

	return p && fd_is_up(p);
}

/* ---- composition ---- */

/* The manager queued out->v[from..]: its membership events move Plumtree's
 * neighbors. */
static void node_after_manager(struct node *nd, const struct actions *out, size_t from)
{
	for (size_t i = from; nd->pt && i < out->n; i++) {
		const struct action *a = &out->v[i];

		if (a->kind != ACT_EVENT || a->node == NULL)
			continue;
		if (a->event == EV_MEMBER_ADDED && node_link_is_up(nd, a->node))
			plumtree_neighbor_up(nd->pt, a->node);
		else if (a->event == EV_MEMBER_REMOVED)
			plumtree_neighbor_down(nd->pt, a->node);
	}
}

struct node_ctx {
	struct node *nd;
	const struct core_env *env;
	struct actions *out;
};

/* Plumtree delivers here: the node's own news, or a delivery for the shell. */
static void node_deliver(void *arg, const char *topic, const char *origin, const uint8_t *payload,
                         size_t len)
{
	const struct node_ctx *c = arg;
	struct node *nd = c->nd;
	char name[NODE_NAME_MAX + 1];
	size_t from;

	if (strcmp(topic, NODE_TOPIC_LEFT) != 0) {
		actions_deliver(c->out, topic, origin, payload, len,
		                plumtree_stats(nd->pt)->last_hops);
		return;
	}
	if (len == 0 || len > NODE_NAME_MAX)
		return;
	memcpy(name, payload, len);
	name[len] = '\0';
	actions_event(c->out, EV_MEMBER_LEFT, name);
	actions_last(c->out)->text = xstrdup(origin);
	if (nd->ops->forget) {
		from = c->out->n;
		nd->ops->forget(nd->mgr, name, c->env, c->out);
		node_after_manager(nd, c->out, from);
	}
}

void node_link_up(struct node *nd, const struct node_spec *spec, const struct core_env *env,
                  struct actions *out)
{
	size_t from = out->n;

	fd_node_up(nd->fd, fd_node(nd->fd, spec->name), env->now_ms);
	nd->ops->peer_up(nd->mgr, spec, env, out);
	node_after_manager(nd, out, from);
	if (nd->pt && nd->ops->is_member(nd->mgr, spec->name))
		plumtree_neighbor_up(nd->pt, spec->name);
}

void node_link_down(struct node *nd, const char *name, const struct core_env *env,
                    struct actions *out)
{
	struct fd_node *p = fd_find(nd->fd, name);
	size_t from = out->n;

	if (p)
		fd_node_down(nd->fd, p);
	nd->ops->peer_down(nd->mgr, name, env, out);
	node_after_manager(nd, out, from);
	if (nd->pt)
		plumtree_neighbor_down(nd->pt, name);
}

/* ---- the failure detector's messages and verdicts ---- */

static void node_heartbeat(struct actions *out, const char *to, bool reply)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Heartbeat hb = PARTISAN_PEER__HEARTBEAT__INIT;

	hb.has_reply = reply;
	hb.reply = reply;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	actions_send(out, to, NULL, &m);
	actions_last(out)->flags = ACT_F_NOW | (reply ? 0 : ACT_F_PROBE);
}

/* Tell every other up node that name went silent. */
static void node_tell_silent(struct node *nd, const char *name, uint64_t silent_ms,
                             struct actions *out)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Silent sl = PARTISAN_PEER__SILENT__INIT;
	const char *to;

	sl.node = (char *)name;
	sl.has_silent_ms = true;
	sl.silent_ms = silent_ms;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_SILENT;
	m.silent = &sl;
	for (size_t it = 0; (to = fd_next_up(nd->fd, &it)) != NULL;) {
		if (strcmp(to, name) == 0)
			continue;
		actions_send(out, to, NULL, &m);
		actions_last(out)->flags = ACT_F_NOW;
	}
}

static void node_fd_down(const struct fd_action *a, struct actions *out)
{
	if (a->reason == FD_TIMEOUT)
		actions_log(out, CORE_WARNING, "%s: nothing heard for %llu ms", a->name,
		            (unsigned long long)a->silent_ms);
	else
		actions_log(out, CORE_WARNING,
		            "%s: silent for %llu ms says %s, nothing heard here for %llu ms",
		            a->name, (unsigned long long)a->silent_ms, a->by,
		            (unsigned long long)a->heard_ago_ms);
	actions_down(out, a->name, "timeout");
}

/* What the detector decided, as actions. */
static void node_fd_do(struct node *nd, struct actions *out)
{
	for (size_t i = 0; i < nd->fda.n; i++) {
		const struct fd_action *a = &nd->fda.v[i];

		switch (a->kind) {
		case FD_HEARTBEAT:
			node_heartbeat(out, a->name, false);
			break;
		case FD_SUSPECT:
			actions_log(out, CORE_INFO,
			            "%s: silent says %s, but heard here %llu ms ago; asking it",
			            a->name, a->by, (unsigned long long)a->heard_ago_ms);
			node_heartbeat(out, a->name, false);
			break;
		case FD_DOWN:
			node_fd_down(a, out);
			break;
		case FD_SILENT_TELL:
			node_tell_silent(nd, a->name, a->silent_ms, out);
			break;
		}
	}
	fd_actions_clear(&nd->fda);
}

/* ---- what comes from the links ---- */

typedef int (*node_handler)(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                            const struct core_env *env, struct actions *out, const char **why);

static int node_on_manager(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                           const struct core_env *env, struct actions *out, const char **why)
{
	size_t start = out->n;
	int r = nd->ops->receive(nd->mgr, from, msg, env, out, why);

	node_after_manager(nd, out, start);
	return r;
}

static int node_on_broadcast(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                             const struct core_env *env, struct actions *out, const char **why)
{
	struct node_ctx c = {nd, env, out};

	if (nd->pt == NULL)
		return *why = "broadcast is not run here", -1;
	return plumtree_receive(nd->pt, from, msg, env, out, node_deliver, &c, why);
}

/* A heartbeat request wants an answer unless something of ours already
 * went to the asker this round; a reply is life, which the shell counted. */
static int node_on_heartbeat(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                             const struct core_env *env, struct actions *out, const char **why)
{
	struct fd_node *p = fd_find(nd->fd, from);

	if (p == NULL || (msg->heartbeat->has_reply && msg->heartbeat->reply))
		return 0;
	if (fd_heartbeat_asked(nd->fd, p))
		node_heartbeat(out, from, true);
	return 0;
}

/* A watcher of a node says it went silent (fd.c decides what to believe). */
static int node_on_silent(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                          const struct core_env *env, struct actions *out, const char **why)
{
	const PartisanPeer__Silent *sl = msg->silent;
	struct fd_node *by = fd_find(nd->fd, from), *n;

	if (sl->node == NULL || by == NULL || (n = fd_find(nd->fd, sl->node)) == NULL)
		return 0;
	fd_silent_report(nd->fd, by, n, sl->silent_ms, fd_unread_now(n, env->now_ms), env->now_ms,
	                 &nd->fda);
	node_fd_do(nd, out);
	return 0;
}

static int node_on_handshake(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                             const struct core_env *env, struct actions *out, const char **why)
{
	return *why = "handshake message on an open connection", -1;
}

static int node_on_refuse(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                          const struct core_env *env, struct actions *out, const char **why)
{
	return *why = "peer refused", -1;
}

static int node_on_empty(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                         const struct core_env *env, struct actions *out, const char **why)
{
	return *why = "empty message", -1;
}

/* Who handles what. A type not listed is the router's (NODE_NOT_MINE). */
static const node_handler node_table[] = {
    [PARTISAN_PEER__PEER_MSG__BODY__NOT_SET] = node_on_empty,
    [PARTISAN_PEER__PEER_MSG__BODY_CHALLENGE] = node_on_handshake,
    [PARTISAN_PEER__PEER_MSG__BODY_HELLO] = node_on_handshake,
    [PARTISAN_PEER__PEER_MSG__BODY_HELLO_ACK] = node_on_handshake,
    [PARTISAN_PEER__PEER_MSG__BODY_REFUSE] = node_on_refuse,
    [PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT] = node_on_heartbeat,
    [PARTISAN_PEER__PEER_MSG__BODY_SILENT] = node_on_silent,
    [PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_DIGEST] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_LEAVE] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_FORWARD_JOIN] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY] = node_on_manager,
    [PARTISAN_PEER__PEER_MSG__BODY_GOSSIP] = node_on_broadcast,
    [PARTISAN_PEER__PEER_MSG__BODY_IHAVE] = node_on_broadcast,
    [PARTISAN_PEER__PEER_MSG__BODY_GRAFT] = node_on_broadcast,
    [PARTISAN_PEER__PEER_MSG__BODY_PRUNE] = node_on_broadcast,
    [PARTISAN_PEER__PEER_MSG__BODY_EXCHANGE] = node_on_broadcast,
};

int node_receive(struct node *nd, const char *from, const PartisanPeer__PeerMsg *msg,
                 const struct core_env *env, struct actions *out, const char **why)
{
	size_t k = (size_t)msg->body_case;

	if (k >= sizeof(node_table) / sizeof(node_table[0]) || node_table[k] == NULL)
		return NODE_NOT_MINE;
	return node_table[k](nd, from, msg, env, out, why);
}

/* ---- time ---- */

bool node_tick(struct node *nd, const struct core_env *env, struct actions *out)
{
	uint64_t now = env->now_ms;
	size_t from;
	bool round = false;

	if (nd->timeout_ms) {
		if (nd->last_tick_ms && now > nd->last_tick_ms + nd->timeout_ms / 2)
			fd_forgive(nd->fd, now); /* the silence was ours */
		nd->last_tick_ms = now;
		round = fd_tick(nd->fd, now, &nd->fda);
		node_fd_do(nd, out);
	}
	from = out->n;
	nd->ops->tick(nd->mgr, env, out);
	node_after_manager(nd, out, from);
	if (nd->pt)
		plumtree_tick(nd->pt, env, out);
	return round;
}

/* ---- the control plane ---- */

void node_join(struct node *nd, const struct node_spec *spec, const struct core_env *env,
               struct actions *out)
{
	size_t from = out->n;

	nd->ops->join(nd->mgr, spec, env, out);
	node_after_manager(nd, out, from);
}

void node_leave(struct node *nd, const char *node, const struct core_env *env, struct actions *out)
{
	size_t from;

	if (strcmp(node, nd->self) == 0 && nd->ops->forget && nd->pt) {
		/* A partial view: only the overlay reaches everyone whose passive
		 * view may hold us. Tell them before the links close. */
		node_broadcast(nd, NODE_TOPIC_LEFT, (const uint8_t *)node, strlen(node), env, out);
		actions_log(out, CORE_DEBUG, "leaving: departure news to %zu neighbors (%zu eager)",
		            plumtree_neighbors(nd->pt), plumtree_eager(nd->pt));
	}
	from = out->n;
	nd->ops->leave(nd->mgr, node, env, out);
	node_after_manager(nd, out, from);
}

void node_broadcast(struct node *nd, const char *topic, const uint8_t *payload, size_t len,
                    const struct core_env *env, struct actions *out)
{
	struct node_ctx c = {nd, env, out};

	if (nd->pt)
		plumtree_broadcast(nd->pt, topic, payload, len, env, out, node_deliver, &c);
}
