/* ss_fd.c: the failure detector's shell, as peer.c is the daemon's: each
 * node runs the real core (daemon/core/fd.c). A link up or down is
 * fd_node_up / fd_node_down, every delivered message is life, every send on
 * an up link is fd_sent; Heartbeat and Silent messages go over the
 * simulated links; a DOWN closes the link, so the cores see peer_down.
 * Bytes wait unread while a paused or starved node holds deliveries. A
 * paused node does not tick; a starved one ticks every SS_STARVE ticks and
 * reads what was held right after. */
#include <stdlib.h>

#include "simscale.h"

static const char *ss_fd_name(const struct ss_world *w, uint32_t i)
{
	return w->nodes[i].spec->name;
}

void ss_fd_start(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];

	nd->fd = fd_create(ss_fd_name(w, i), w->p.fd_ms, false); /* hyparview: watch all */
	nd->last_tick = w->now;
}

void ss_fd_stop(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];

	fd_destroy(nd->fd);
	nd->fd = NULL;
	nd->paused = nd->starved = false;
	ss_held_free(nd);
}

void ss_fd_link(struct ss_world *w, uint32_t i, uint32_t other, bool up)
{
	struct ss_node *nd = &w->nodes[i];
	struct fd_node *o;

	if (nd->fd == NULL)
		return;
	o = fd_node(nd->fd, ss_fd_name(w, other));
	if (up) {
		fd_node_up(nd->fd, o, w->now);
		return;
	}
	fd_node_down(nd->fd, o);
	if (w->victim == (long)other && w->victim_down && w->victim_down[i] == 0)
		w->victim_down[i] = w->now;
}

void ss_fd_sent(struct ss_world *w, uint32_t from, uint32_t to)
{
	struct ss_node *nd = &w->nodes[from];
	struct fd_node *o;

	if (nd->fd && ss_net_up(w, from, to) && (o = fd_find(nd->fd, ss_fd_name(w, to))))
		fd_sent(o, w->now);
}

static void ss_fd_send(struct ss_world *w, uint32_t i, uint32_t j, const PartisanPeer__PeerMsg *m)
{
	uint8_t buf[256];
	size_t len = partisan_peer__peer_msg__get_packed_size(m);

	if (len > sizeof(buf))
		abort(); /* a heartbeat or a Silent: a few bytes and a name */
	partisan_peer__peer_msg__pack(m, buf);
	w->c.fd_msgs++;
	w->c.fd_bytes += len;
	ss_fd_sent(w, i, j);
	ss_net_send(w, i, j, buf, len);
}

static void ss_fd_heartbeat(struct ss_world *w, uint32_t i, uint32_t j, bool reply)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Heartbeat hb = PARTISAN_PEER__HEARTBEAT__INIT;

	hb.has_reply = reply;
	hb.reply = reply;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	ss_fd_send(w, i, j, &m);
}

/* Tell every node i has up that a went silent. */
static void ss_fd_tell_silent(struct ss_world *w, uint32_t i, const struct fd_action *a)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Silent sl = PARTISAN_PEER__SILENT__INIT;
	const struct ss_node *nd = &w->nodes[i];
	uint32_t n = nd->nrefs, *peers = xcalloc(n ? n : 1, sizeof(*peers));

	sl.node = (char *)a->name;
	sl.has_silent_ms = true;
	sl.silent_ms = a->silent_ms;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_SILENT;
	m.silent = &sl;
	for (uint32_t k = 0; k < n; k++)
		peers[k] = nd->refs[k].peer;
	for (uint32_t k = 0; k < n; k++)
		if (ss_net_up(w, i, peers[k]))
			ss_fd_send(w, i, peers[k], &m);
	free(peers);
}

static void ss_fd_down(struct ss_world *w, uint32_t i, long j)
{
	w->c.fd_downs++;
	if (j >= 0 && w->nodes[j].alive && !w->nodes[j].paused)
		w->c.fd_false++;
	if (j >= 0)
		ss_net_close(w, i, (uint32_t)j);
}

static void ss_fd_do(struct ss_world *w, uint32_t i, struct fd_actions *acts)
{
	for (size_t k = 0; k < acts->n && w->nodes[i].fd; k++) {
		const struct fd_action *a = &acts->v[k];
		long j = ss_node_of(w, a->name);

		switch (a->kind) {
		case FD_HEARTBEAT:
		case FD_SUSPECT:
			if (j >= 0 && ss_net_up(w, i, (uint32_t)j))
				ss_fd_heartbeat(w, i, (uint32_t)j, false);
			break;
		case FD_DOWN:
			ss_fd_down(w, i, j);
			break;
		case FD_SILENT_TELL:
			ss_fd_tell_silent(w, i, a);
			break;
		}
	}
	fd_actions_free(acts);
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

static void ss_fd_silent(struct ss_world *w, uint32_t to, uint32_t from,
                         const PartisanPeer__Silent *sl)
{
	struct ss_node *nd = &w->nodes[to];
	struct fd_actions acts;

	if (sl->node == NULL)
		return;
	fd_actions_init(&acts);
	fd_silent_report(nd->fd, fd_node(nd->fd, ss_fd_name(w, from)), fd_find(nd->fd, sl->node),
	                 sl->silent_ms, ss_fd_unread(w, to, ss_node_of(w, sl->node)), w->now,
	                 &acts);
	ss_fd_do(w, to, &acts);
}

bool ss_fd_receive(struct ss_world *w, uint32_t to, uint32_t from, const PartisanPeer__PeerMsg *msg)
{
	struct ss_node *nd = &w->nodes[to];
	struct fd_node *o;

	if (nd->fd == NULL)
		return false;
	o = fd_node(nd->fd, ss_fd_name(w, from));
	fd_heard(o, w->now);
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT) {
		bool reply = msg->heartbeat->has_reply && msg->heartbeat->reply;

		if (!reply && fd_heartbeat_asked(nd->fd, o))
			ss_fd_heartbeat(w, to, from, true);
		return true;
	}
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_SILENT) {
		ss_fd_silent(w, to, from, msg->silent);
		return true;
	}
	return false;
}

void ss_fd_tick(struct ss_world *w, uint32_t i)
{
	struct ss_node *nd = &w->nodes[i];
	struct fd_node **due = NULL;
	struct fd_actions acts;
	size_t k;

	if (nd->fd == NULL || w->p.fd_ms == 0)
		return;
	/* As daemon_tick: a tick far later than due means we were paused. */
	if (w->now > nd->last_tick + w->p.fd_ms / 2)
		fd_forgive(nd->fd, w->now);
	nd->last_tick = w->now;
	k = nd->nheld ? fd_overdue(nd->fd, w->now, &due) : 0; /* nothing held: nothing unread */
	for (size_t d = 0; d < k; d++)
		if (ss_fd_unread(w, i, ss_node_of(w, fd_node_name(due[d]))))
			fd_unread(due[d], w->now);
	fd_actions_init(&acts);
	fd_tick(nd->fd, w->now, &acts);
	ss_fd_do(w, i, &acts);
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
