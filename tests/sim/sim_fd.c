/* sim_fd.c: the failure detector in the simulator. Plays peer.c's part for
 * each virtual node around the real core (daemon/core/fd.c): a link up or down
 * is fd_node_up / fd_node_down, every delivered message is life, every send
 * on an up link is fd_sent, Heartbeat and Silent messages are packed and
 * carried by the simulated network like any other, and a DOWN closes the
 * link (the manager sees peer_down and dials again as in the daemon).
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
	struct sim_node *n = &w->nodes[i];

	n->fd = fd_create(n->name, SIM_FD_TIMEOUT_MS, w->o.mgr->full_mesh);
	n->tick_ms = SIM_TICK_MS;
	n->last_tick = w->now;
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

	fd_destroy(n->fd);
	n->fd = NULL;
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
	struct sim_node *n = &w->nodes[i];
	struct fd_node *o;

	if (n->fd == NULL)
		return;
	o = fd_node(n->fd, w->nodes[other].name);
	if (up)
		fd_node_up(n->fd, o, w->now);
	else
		fd_node_down(n->fd, o);
	sim_victim_link(w, i, other, up);
}

void sim_fd_sent(struct sim_world *w, unsigned from, unsigned to)
{
	struct sim_node *n = &w->nodes[from];
	struct fd_node *o;

	if (n->fd && sim_link(w, from, to)->state == LINK_UP &&
	    (o = fd_find(n->fd, w->nodes[to].name)) != NULL)
		fd_sent(o, w->now);
}

/* Pack and send one of the detector's messages from i to j. */
static void sim_fd_send(struct sim_world *w, unsigned i, unsigned j, const PartisanPeer__PeerMsg *m)
{
	size_t len = partisan_peer__peer_msg__get_packed_size(m);
	uint8_t *buf = xmalloc(len ? len : 1);

	partisan_peer__peer_msg__pack(m, buf);
	w->nodes[i].st.fd_msgs++;
	w->nodes[i].st.fd_bytes += len;
	sim_fd_sent(w, i, j);
	sim_net_send(w, i, j, buf, len);
}

static void sim_fd_heartbeat(struct sim_world *w, unsigned i, unsigned j, bool reply)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Heartbeat hb = PARTISAN_PEER__HEARTBEAT__INIT;

	hb.has_reply = reply;
	hb.reply = reply;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	sim_fd_send(w, i, j, &m);
}

/* Whether i's side of its link to j is up (peer.c's pnode up). */
static bool sim_fd_up_to(struct sim_world *w, unsigned i, unsigned j)
{
	const struct sim_link *l = sim_link(w, i, j);

	return i != j && l->state == LINK_UP && l->up[i < j ? 0 : 1];
}

static void sim_fd_tell_silent(struct sim_world *w, unsigned i, const struct fd_action *a)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Silent sl = PARTISAN_PEER__SILENT__INIT;

	sl.node = (char *)a->name;
	sl.has_silent_ms = true;
	sl.silent_ms = a->silent_ms;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_SILENT;
	m.silent = &sl;
	for (unsigned k = 0; k < w->n; k++)
		if (sim_fd_up_to(w, i, k))
			sim_fd_send(w, i, k, &m);
}

static void sim_fd_down(struct sim_world *w, unsigned i, int j, const struct fd_action *a)
{
	struct sim_node *n = &w->nodes[i];

	n->st.fd_downs++;
	if (j >= 0 && w->nodes[j].alive && !w->nodes[j].paused)
		n->st.fd_false++;
	sim_trace(w, i, "fd: %s down (%s, %llu ms)", a->name,
	          a->reason == FD_TIMEOUT ? "timeout" : "silent", (unsigned long long)a->silent_ms);
	if (j >= 0)
		sim_net_close(w, i, (unsigned)j);
}

/* Carry out what node i's detector asked for. */
static void sim_fd_do(struct sim_world *w, unsigned i, struct fd_actions *acts)
{
	for (size_t k = 0; k < acts->n && w->nodes[i].fd; k++) {
		const struct fd_action *a = &acts->v[k];
		int j = sim_node_index(w, a->name);

		switch (a->kind) {
		case FD_HEARTBEAT:
		case FD_SUSPECT:
			if (j >= 0 && sim_fd_up_to(w, i, (unsigned)j))
				sim_fd_heartbeat(w, i, (unsigned)j, false);
			break;
		case FD_DOWN:
			sim_fd_down(w, i, j, a);
			break;
		case FD_SILENT_TELL:
			sim_fd_tell_silent(w, i, a);
			break;
		}
	}
	fd_actions_free(acts);
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

static void sim_fd_silent(struct sim_world *w, unsigned to, unsigned from,
                          const PartisanPeer__Silent *sl)
{
	struct sim_node *n = &w->nodes[to];
	int j = sl->node ? sim_node_index(w, sl->node) : -1;
	struct fd_actions acts;

	if (j < 0)
		return;
	fd_actions_init(&acts);
	fd_silent_report(n->fd, fd_node(n->fd, w->nodes[from].name), fd_find(n->fd, sl->node),
	                 sl->silent_ms, sim_fd_unread(w, to, (unsigned)j), w->now, &acts);
	sim_fd_do(w, to, &acts);
}

bool sim_fd_receive(struct sim_world *w, unsigned to, unsigned from,
                    const PartisanPeer__PeerMsg *msg)
{
	struct sim_node *n = &w->nodes[to];
	struct fd_node *o;

	if (n->fd == NULL)
		return false;
	o = fd_node(n->fd, w->nodes[from].name);
	fd_heard(o, w->now);
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT) {
		bool reply = msg->heartbeat->has_reply && msg->heartbeat->reply;

		if (!reply && fd_heartbeat_asked(n->fd, o))
			sim_fd_heartbeat(w, to, from, true);
		return true;
	}
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_SILENT) {
		sim_fd_silent(w, to, from, msg->silent);
		return true;
	}
	return false;
}

void sim_fd_tick(struct sim_world *w, unsigned i)
{
	struct sim_node *n = &w->nodes[i];
	struct fd_node **due = NULL;
	struct fd_actions acts;
	size_t k;

	/* As daemon_tick: a tick far later than due means we were paused. */
	if (w->now > n->last_tick + SIM_FD_TIMEOUT_MS / 2)
		fd_forgive(n->fd, w->now);
	n->last_tick = w->now;
	k = n->nheld ? fd_overdue(n->fd, w->now, &due) : 0; /* nothing held: nothing unread */
	for (size_t d = 0; d < k; d++) {
		int j = sim_node_index(w, fd_node_name(due[d]));

		if (j >= 0 && sim_fd_unread(w, i, (unsigned)j))
			fd_unread(due[d], w->now);
	}
	fd_actions_init(&acts);
	fd_tick(n->fd, w->now, &acts);
	sim_fd_do(w, i, &acts);
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
