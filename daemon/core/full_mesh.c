/* full_mesh.c: the full_mesh and client_server peer service managers
 * (Partisan's pluggable managers with full membership). Pure core.
 *
 * Membership is an ORSWOT of node specs (orset.c). Every node keeps
 * connections to every member. Gossip is cheap: each round a node sends a
 * digest (a hash of its state) to a few connected members; full state goes
 * only to a node whose digest differs, and after a local change a node
 * pushes its state at once (rate limited) to a few members.
 *
 * client_server (peer_service_manager "client_server", params.client_server)
 * is this manager with two rules added, and so has no file of its own: a
 * client never links to another client (fm_connect_members), and a client's
 * members() are the servers and itself (fm_visible). Membership, gossip,
 * joins, leaves and failures are the full mesh's, unchanged: Partisan's
 * client_server manager is the same full membership with a star of links,
 * and a second copy of this file would only drift from it.
 */
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "orset.h"
#include "strmap.h"

#define FM_PUSH_MIN_MS     100  /* a changed state is pushed at most this often */
#define FM_MAX_MEMBERS_DEF 4096 /* max_members when the params give none */

struct full_mesh {
	struct node_spec *self;
	char *actor;
	struct orset set;
	struct orset farewell; /* once stopped: the view we had, for latecomers */
	unsigned gossip_interval_ms;
	unsigned fanout;
	unsigned max_members; /* elements a merge may leave us holding */
	bool client_server;   /* no links between two clients */
	char **up;            /* connected nodes, owned names */
	uint8_t *strange;     /* up[i] was no member at the last round */
	size_t nup;
	bool dirty;   /* changed since the last push */
	bool stopped; /* this node was removed */
	uint64_t last_push_ms, next_gossip_ms;
	const struct node_spec **cache;
	size_t ncache;
	struct node_spec **joining; /* contacts we joined through, not yet members */
	size_t njoining;
	struct strmap seen; /* nodes that were connected before: a new link is a reconnect */
	struct manager_stats stats;
};

static void *fm_create(const struct manager_params *p)
{
	struct full_mesh *m = xcalloc(1, sizeof(*m));

	m->self = node_spec_dup(p->self);
	m->actor = xstrdup(p->actor);
	m->gossip_interval_ms = p->gossip_interval_ms ? p->gossip_interval_ms : 1000;
	m->fanout = p->fanout ? p->fanout : 3;
	m->client_server = p->client_server;
	m->max_members = p->max_members ? p->max_members : FM_MAX_MEMBERS_DEF;
	orset_init(&m->set);
	orset_init(&m->farewell);
	strmap_init(&m->seen);
	orset_add(&m->set, m->actor, m->self);
	return m;
}

static void fm_destroy(void *mp)
{
	struct full_mesh *m = mp;

	for (size_t i = 0; i < m->nup; i++)
		free(m->up[i]);
	free(m->up);
	free(m->strange);
	free(m->cache);
	for (size_t i = 0; i < m->njoining; i++)
		node_spec_free(m->joining[i]);
	free(m->joining);
	orset_free(&m->set);
	orset_free(&m->farewell);
	strmap_free(&m->seen);
	node_spec_free(m->self);
	free(m->actor);
	free(m);
}

static int fm_up_cmp(const void *up, const void *node)
{
	return strcmp(*(char *const *)up, node);
}

/* m->up is sorted: where node is or would go. */
static size_t fm_up_pos(const struct full_mesh *m, const char *node, bool *found)
{
	size_t i = lower_bound(m->up, m->nup, sizeof(*m->up), node, fm_up_cmp);

	*found = i < m->nup && strcmp(m->up[i], node) == 0;
	return i;
}

static bool fm_is_up(const struct full_mesh *m, const char *node)
{
	bool found;

	fm_up_pos(m, node, &found);
	return found;
}

static bool fm_is_member(void *mp, const char *node)
{
	return orset_find(&((struct full_mesh *)mp)->set, node) != NULL;
}

static const struct node_spec *fm_spec_of(void *mp, const char *node)
{
	return orset_find(&((struct full_mesh *)mp)->set, node);
}

static void fm_send_set(const struct orset *set, bool farewell, const char *node,
                        struct manager_stats *stats, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Membership pb;

	orset_to_pb(set, &pb);
	pb.has_farewell = pb.farewell = farewell;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP;
	msg.membership = &pb;
	actions_send(out, node, NULL, &msg);
	stats->states_sent++;
	stats->state_bytes += partisan_peer__membership__get_packed_size(&pb);
	orset_pb_release(&pb);
}

static void fm_send_state(struct full_mesh *m, const char *node, struct actions *out)
{
	fm_send_set(&m->set, false, node, &m->stats, out);
}

static void fm_send_digest(struct full_mesh *m, const char *node, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Digest d = PARTISAN_PEER__DIGEST__INIT;

	d.hash = orset_hash(&m->set);
	d.has_members = 1;
	d.members = (uint32_t)m->set.nentries;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_DIGEST;
	msg.digest = &d;
	actions_send(out, node, NULL, &msg);
}

/* Pick up to k distinct connected members at random and call fn on each. */
static void fm_each_random(struct full_mesh *m, unsigned k, const struct core_env *env,
                           struct actions *out,
                           void (*fn)(struct full_mesh *, const char *, struct actions *))
{
	size_t n = 0;
	const char **pool = xcalloc(m->nup, sizeof(*pool));

	for (size_t i = 0; i < m->nup; i++)
		if (orset_find(&m->set, m->up[i]))
			pool[n++] = m->up[i];
	for (unsigned i = 0; i < k && n > 0; i++) {
		size_t j = (size_t)rng_below(env->rng, n);

		fn(m, pool[j], out);
		pool[j] = pool[--n];
	}
	free(pool);
}

static void fm_connect_members(struct full_mesh *m, struct actions *out)
{
	for (size_t i = 0; i < m->set.nentries; i++) {
		const struct node_spec *s = m->set.entries[i].spec;

		if (strcmp(s->name, m->self->name) == 0 || fm_is_up(m, s->name) ||
		    orset_find(&m->set, s->name) != s)
			continue; /* ourselves, linked already, or a stale twin */
		if (m->client_server && m->self->client && s->client)
			continue; /* clients talk through servers only */
		actions_connect(out, s);
	}
}

static bool fm_is_joining(const struct full_mesh *m, const char *node)
{
	for (size_t i = 0; i < m->njoining; i++)
		if (strcmp(m->joining[i]->name, node) == 0)
			return true;
	return false;
}

/* Each round: drop links to nodes that were no members at the last round
 * either (a node that just connected may be joining: its state is on its
 * way, so one round of grace). */
static void fm_disconnect_strangers(struct full_mesh *m, struct actions *out)
{
	for (size_t i = 0; i < m->nup; i++) {
		if (orset_find(&m->set, m->up[i]) || fm_is_joining(m, m->up[i]))
			m->strange[i] = 0;
		else if (m->strange[i]++)
			actions_disconnect(out, m->up[i]);
	}
}

static void fm_joining_drop(struct full_mesh *m, const char *node)
{
	for (size_t i = 0; i < m->njoining; i++) {
		if (strcmp(m->joining[i]->name, node) == 0) {
			node_spec_free(m->joining[i]);
			m->joining[i] = m->joining[--m->njoining];
			return;
		}
	}
}

/* A join is done once the contact is a member (its state reached us):
 * until then keep its link and keep offering it our state. */
static void fm_joining_tick(struct full_mesh *m, struct actions *out)
{
	for (size_t i = 0; i < m->njoining;) {
		const struct node_spec *c = m->joining[i];

		if (orset_find(&m->set, c->name)) {
			node_spec_free(m->joining[i]);
			m->joining[i] = m->joining[--m->njoining];
			continue;
		}
		actions_connect(out, c);
		if (fm_is_up(m, c->name))
			fm_send_state(m, c->name, out);
		i++;
	}
}

/* Events for names that appeared in or vanished from the membership; the
 * links to vanished ones close. */
static void fm_diff_events(struct full_mesh *m, const struct orset *before,
                           const struct orset *after, struct actions *out)
{
	for (size_t i = 0; i < after->nentries; i++) {
		const char *n = after->entries[i].spec->name;

		if (!orset_find(before, n))
			actions_event(out, EV_MEMBER_ADDED, n);
	}
	for (size_t i = 0; i < before->nentries; i++) {
		const char *n = before->entries[i].spec->name;

		if (!orset_find(after, n)) {
			actions_event(out, EV_MEMBER_REMOVED, n);
			if (fm_is_up(m, n) && strcmp(n, m->self->name) != 0)
				actions_disconnect(out, n);
		}
	}
}

/* We were removed: we stop taking part. What we knew (a node that is just
 * joining through us, say) must not die with us: everyone connected gets our
 * last state first. Then our view shrinks to ourselves, and we stay silent. */
static void fm_stop(struct full_mesh *m, struct actions *out)
{
	for (size_t i = 0; i < m->nup; i++)
		fm_send_state(m, m->up[i], out);
	m->stopped = true;
	orset_free(&m->farewell);
	m->farewell = m->set;
	orset_init(&m->set);
	orset_add(&m->set, m->actor, m->self);
	actions_event(out, EV_SELF_REMOVED, m->self->name);
}

/* Drop twins of older incarnations (a node that came back on another
 * address) and specs that carry our name but are not our current spec; and
 * notice if we were removed. */
static void fm_check_self(struct full_mesh *m, struct actions *out)
{
	bool again;

	if (!orset_contains(&m->set, m->self)) {
		fm_stop(m, out);
		return;
	}
	if (orset_prune_stale(&m->set))
		m->dirty = true;
	do {
		again = false;
		for (size_t i = 0; i < m->set.nentries; i++) {
			const struct node_spec *s = m->set.entries[i].spec;

			if (strcmp(s->name, m->self->name) == 0 && node_spec_cmp(s, m->self) != 0) {
				orset_remove(&m->set, s);
				m->dirty = again = true;
				break;
			}
		}
	} while (again);
}

static void fm_join(void *mp, const struct node_spec *spec, const struct core_env *env,
                    struct actions *out)
{
	struct full_mesh *m = mp;

	if (m->stopped || strcmp(spec->name, m->self->name) == 0)
		return;
	/* The contact is not added with our dot: a join racing the contact's
	 * removal must not bring the contact back. Its own state, merged on
	 * its reply, makes it (and its cluster) our members. */
	if (!fm_is_joining(m, spec->name)) {
		m->joining = xrealloc(m->joining, (m->njoining + 1) * sizeof(*m->joining));
		m->joining[m->njoining++] = node_spec_dup(spec);
	}
	/* Gossip at once on join, not at the next round. */
	actions_connect(out, spec);
	if (fm_is_up(m, spec->name))
		fm_send_state(m, spec->name, out);
	m->dirty = true;
}

static void fm_leave(void *mp, const char *node, const struct core_env *env, struct actions *out)
{
	struct full_mesh *m = mp;
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Leave lv = PARTISAN_PEER__LEAVE__INIT;

	if (m->stopped || orset_remove_name(&m->set, node) == 0)
		return;
	actions_event(out, EV_MEMBER_REMOVED, node);
	if (strcmp(node, m->self->name) == 0) {
		fm_stop(m, out); /* tells everyone connected */
		return;
	}
	/* Everyone connected hears of it now: a leave is rare, its news urgent. */
	for (size_t i = 0; i < m->nup; i++)
		fm_send_state(m, m->up[i], out);
	lv.node = (char *)node;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_LEAVE;
	msg.leave = &lv;
	if (fm_is_up(m, node))
		actions_send(out, node, NULL, &msg);
	actions_disconnect(out, node);
}

static int fm_receive_membership(struct full_mesh *m, const char *from,
                                 const PartisanPeer__Membership *pb, struct actions *out,
                                 const char **why)
{
	struct orset in, before;
	uint64_t inhash;
	bool changed;

	/* Bounded before anything is decoded: a state of more elements than
	 * max_members could only be refused after the merge anyway. */
	if (pb->n_entries > m->max_members) {
		actions_event(out, EV_STATE_REFUSED, from);
		return 0;
	}
	if (orset_from_pb(&in, pb, why) < 0)
		return -1;
	if (pb->farewell)
		fm_joining_drop(m, from); /* that contact left; its view is all we get */
	inhash = orset_hash(&in);
	if (inhash == orset_hash(&m->set)) {
		orset_free(&in); /* the same state: nothing to merge or answer */
		return 0;
	}
	orset_init(&before);
	orset_merge(&before, &m->set);
	changed = orset_merge(&m->set, &in);
	if (changed && m->set.nentries > m->max_members && m->set.nentries > before.nentries) {
		/* A peer (buggy, or not a peer at all) would have us hold and
		 * dial more members than max_members: its state is refused
		 * whole, ours kept as it was. */
		struct orset merged = m->set;

		m->set = before;
		orset_free(&merged);
		orset_free(&in);
		actions_event(out, EV_STATE_REFUSED, from);
		return 0;
	}
	if (changed) {
		m->dirty = true;
		fm_check_self(m, out);
		fm_diff_events(m, &before, &m->set, out);
		if (!m->stopped)
			fm_connect_members(m, out);
	}
	if (!m->stopped && !pb->farewell && orset_hash(&m->set) != inhash && fm_is_up(m, from))
		fm_send_state(m, from, out);
	orset_free(&before);
	orset_free(&in);
	return 0;
}

static int fm_receive(void *mp, const char *from, const PartisanPeer__PeerMsg *msg,
                      const struct core_env *env, struct actions *out, const char **why)
{
	struct full_mesh *m = mp;

	if (m->stopped) {
		/* Someone still talks to us (a join racing our removal): hand it
		 * the view we left, so it finds the cluster without us. */
		if ((msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP &&
		     !msg->membership->farewell) ||
		    msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_DIGEST)
			if (m->farewell.nentries > 0)
				fm_send_set(&m->farewell, true, from, &m->stats, out);
		return 0;
	}
	switch (msg->body_case) {
	case PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP:
		return fm_receive_membership(m, from, msg->membership, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_DIGEST:
		/* Answered also when from is linked to us only by its own link
		 * (past its hello): a node restarted without a join knows nobody
		 * and dials nobody, and learns the cluster from this answer. */
		if (msg->digest->hash != orset_hash(&m->set))
			fm_send_state(m, from, out);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_LEAVE:
		if (strcmp(msg->leave->node, m->self->name) == 0 && orset_find(&m->set, from)) {
			orset_remove_name(&m->set, m->self->name);
			fm_stop(m, out);
		}
		return 0;
	default:
		*why = "unexpected message for full_mesh";
		return -1;
	}
}

static void fm_peer_up(void *mp, const struct node_spec *spec, const struct core_env *env,
                       struct actions *out)
{
	struct full_mesh *m = mp;
	bool found;
	size_t at = fm_up_pos(m, spec->name, &found);

	if (!found) {
		m->up = xrealloc(m->up, (m->nup + 1) * sizeof(*m->up));
		m->strange = xrealloc(m->strange, (m->nup + 1) * sizeof(*m->strange));
		memmove(&m->up[at + 1], &m->up[at], (m->nup - at) * sizeof(*m->up));
		memmove(&m->strange[at + 1], &m->strange[at], (m->nup - at) * sizeof(*m->strange));
		m->strange[at] = 0;
		m->up[at] = xstrdup(spec->name);
		m->nup++;
	}
	if (m->stopped)
		return;
	/* A contact we are joining gets our state at once (it does not know us
	 * yet, so it would not answer a digest): the join's gossip goes out
	 * the moment the link is up, not at the next round. A node we were
	 * linked to before gets a digest, so that what changed while the link
	 * was down (a partition, a restart) is reconciled now. A first link to
	 * a member we learned of by gossip needs neither: while a cluster forms,
	 * thousands of links come up with the membership still in flux, and a
	 * digest on each costs a full-state exchange per link (18x the state
	 * messages of a 100-node formation); pushes and rounds carry the news. */
	if (fm_is_joining(m, spec->name))
		fm_send_state(m, spec->name, out);
	else if (strmap_put(&m->seen, spec->name, m) != NULL)
		fm_send_digest(m, spec->name, out);
}

static void fm_peer_down(void *mp, const char *node, const struct core_env *env,
                         struct actions *out)
{
	struct full_mesh *m = mp;
	bool found;
	size_t i = fm_up_pos(m, node, &found);

	if (!found)
		return;
	free(m->up[i]);
	m->nup--;
	memmove(&m->up[i], &m->up[i + 1], (m->nup - i) * sizeof(*m->up));
	memmove(&m->strange[i], &m->strange[i + 1], (m->nup - i) * sizeof(*m->strange));
}

static void fm_tick(void *mp, const struct core_env *env, struct actions *out)
{
	struct full_mesh *m = mp;

	if (m->stopped)
		return;
	if (m->dirty && env->now_ms >= m->last_push_ms + FM_PUSH_MIN_MS) {
		m->dirty = false;
		m->last_push_ms = env->now_ms;
		fm_each_random(m, m->fanout, env, out, fm_send_state);
	}
	if (env->now_ms >= m->next_gossip_ms) {
		m->next_gossip_ms = env->now_ms + m->gossip_interval_ms;
		m->stats.rounds++;
		fm_joining_tick(m, out);
		fm_each_random(m, m->fanout, env, out, fm_send_digest);
		fm_connect_members(m, out);
		fm_disconnect_strangers(m, out);
	}
}

/* client_server: a client sees the servers and itself (Partisan's
 * client_server manager: "clients communicate with servers"); a server
 * sees everyone. */
static bool fm_visible(const struct full_mesh *m, const struct node_spec *s)
{
	return !m->client_server || !m->self->client || !s->client ||
	       strcmp(s->name, m->self->name) == 0;
}

static size_t fm_members(void *mp, const struct node_spec *const **out)
{
	struct full_mesh *m = mp;
	size_t n = 0;

	m->cache = xrealloc(m->cache, (m->set.nentries + 1) * sizeof(*m->cache));
	for (size_t i = 0; i < m->set.nentries; i++) {
		const struct node_spec *s = m->set.entries[i].spec;

		/* Each name once, at its current spec. */
		if (orset_find(&m->set, s->name) != s || !fm_visible(m, s))
			continue;
		m->cache[n++] = s;
	}
	m->ncache = n;
	*out = m->cache;
	return n;
}

static void fm_stats(void *mp, struct manager_stats *out)
{
	*out = ((struct full_mesh *)mp)->stats;
}

static size_t fm_no_view(void *mp, const char *const **out)
{
	*out = NULL;
	return 0;
}

const struct manager_ops full_mesh_ops = {
    .name = "full_mesh",
    .create = fm_create,
    .destroy = fm_destroy,
    .join = fm_join,
    .leave = fm_leave,
    .receive = fm_receive,
    .peer_up = fm_peer_up,
    .peer_down = fm_peer_down,
    .tick = fm_tick,
    .members = fm_members,
    .is_member = fm_is_member,
    .spec_of = fm_spec_of,
    .stats = fm_stats,
    .active_view = fm_no_view,
    .passive_view = fm_no_view,
};
