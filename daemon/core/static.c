/* static.c: the static peer service manager: membership is what this node
 * was told (its join list and explicit joins), with no gossip at all. Every
 * member is kept connected like in a full mesh; a leave only changes this
 * node's list. Pure core. */
#include <stdlib.h>
#include <string.h>

#include "manager.h"

struct static_mgr {
	struct node_spec *self;
	struct node_spec **members; /* self first */
	size_t n;
	unsigned interval_ms;
	uint64_t next_ms;
	bool stopped;
};

static void *st_create(const struct manager_params *p)
{
	struct static_mgr *m = xcalloc(1, sizeof(*m));

	m->self = node_spec_dup(p->self);
	m->members = xcalloc(1, sizeof(*m->members));
	m->members[m->n++] = m->self;
	m->interval_ms = p->gossip_interval_ms ? p->gossip_interval_ms : 1000;
	return m;
}

static void st_destroy(void *mp)
{
	struct static_mgr *m = mp;

	for (size_t i = 1; i < m->n; i++)
		node_spec_free(m->members[i]);
	free(m->members);
	node_spec_free(m->self);
	free(m);
}

static ssize_t st_find(const struct static_mgr *m, const char *node)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->members[i]->name, node) == 0)
			return (ssize_t)i;
	return -1;
}

static bool st_is_member(void *mp, const char *node)
{
	return st_find(mp, node) >= 0;
}

static void st_join(void *mp, const struct node_spec *spec, const struct core_env *env,
                    struct actions *out)
{
	struct static_mgr *m = mp;
	ssize_t i = st_find(m, spec->name);

	if (m->stopped || i == 0)
		return;
	if (i > 0) {
		node_spec_free(m->members[i]);
		m->members[i] = node_spec_dup(spec);
	} else {
		m->members = xrealloc(m->members, (m->n + 1) * sizeof(*m->members));
		m->members[m->n++] = node_spec_dup(spec);
		actions_event(out, EV_MEMBER_ADDED, spec->name);
	}
	actions_connect(out, spec);
}

static void st_leave(void *mp, const char *node, const struct core_env *env, struct actions *out)
{
	struct static_mgr *m = mp;
	ssize_t i = st_find(m, node);

	if (i < 0 || m->stopped)
		return;
	if (i == 0) {
		/* Leaving a static cluster: forget everyone, stop taking part. */
		for (size_t k = 1; k < m->n; k++) {
			actions_disconnect(out, m->members[k]->name);
			node_spec_free(m->members[k]);
		}
		m->n = 1;
		m->stopped = true;
		actions_event(out, EV_SELF_REMOVED, m->self->name);
		return;
	}
	actions_event(out, EV_MEMBER_REMOVED, node);
	actions_disconnect(out, node);
	node_spec_free(m->members[i]);
	m->members[i] = m->members[--m->n];
}

static int st_receive(void *mp, const char *from, const PartisanPeer__PeerMsg *msg,
                      const struct core_env *env, struct actions *out, const char **why)
{
	/* A static cluster gossips nothing; membership messages from a node
	 * running another manager are ignored, not fatal. */
	return 0;
}

static void st_peer_up(void *mp, const struct node_spec *spec, const struct core_env *env,
                       struct actions *out)
{
}

static void st_peer_down(void *mp, const char *node, const struct core_env *env,
                         struct actions *out)
{
}

static void st_tick(void *mp, const struct core_env *env, struct actions *out)
{
	struct static_mgr *m = mp;

	if (m->stopped || env->now_ms < m->next_ms)
		return;
	m->next_ms = env->now_ms + m->interval_ms;
	for (size_t i = 1; i < m->n; i++)
		actions_connect(out, m->members[i]);
}

static size_t st_members(void *mp, const struct node_spec *const **out)
{
	struct static_mgr *m = mp;

	*out = (const struct node_spec *const *)m->members;
	return m->n;
}

static size_t st_no_view(void *mp, const char *const **out)
{
	*out = NULL;
	return 0;
}

const struct manager_ops static_ops = {
    .name = "static",
    .create = st_create,
    .destroy = st_destroy,
    .join = st_join,
    .leave = st_leave,
    .receive = st_receive,
    .peer_up = st_peer_up,
    .peer_down = st_peer_down,
    .tick = st_tick,
    .members = st_members,
    .is_member = st_is_member,
    .active_view = st_no_view,
    .passive_view = st_no_view,
};
