/* daemon.c: the glue between the I/O shell and the protocol cores.
 *
 * Inputs (a peer message, a link up or down, a tick, a control request) go
 * into the node core (core/node.h), or the router for the messages that are
 * its own; the actions they queue are carried out by daemon_drain, once
 * per callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "ack.h"
#include "advertise.h"
#include "causal.h"
#include "graph.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "peer.h"
#include "router.h"
#include "security.h"
#include "transport.h"
#include "wire.h"

#define DAEMON_ARENA_BYTES (16 * 1024) /* decode space; bigger frames malloc */
#define PLUMTREE_STORE     1024        /* broadcasts kept for repair and anti-entropy */

static void daemon_status_free(struct daemon *d);

/* ---- start and stop ---- */

static struct node_spec *daemon_self_spec(const struct config *cfg)
{
	struct node_spec *s = xcalloc(1, sizeof(*s));

	s->name = xstrdup(cfg->name);
	s->addrs = xcalloc(ADVERTISE_MAX, sizeof(*s->addrs)); /* filled by daemon_advertise */
	s->nchannels = cfg->nchannels;
	s->channels = xcalloc(s->nchannels, sizeof(*s->channels));
	for (size_t i = 0; i < s->nchannels; i++) {
		s->channels[i].name = xstrdup(cfg->channels[i].name);
		s->channels[i].parallelism = cfg->channels[i].parallelism;
		s->channels[i].monotonic = cfg->channels[i].monotonic;
	}
	s->parallelism = cfg->channels[0].parallelism;
	s->client = cfg->manager == MANAGER_CLIENT_SERVER && !cfg->client_server_is_server;
	return s;
}

/* Once the listeners are bound: the addresses peers will dial us at. */
static int daemon_advertise(struct daemon *d)
{
	struct advertise_host h;
	char list[ADVERTISE_MAX * 72] = "";

	advertise_host_read(&h, d->cfg->name);
	d->self->naddrs = advertise_choose(d->cfg->advertise_addrs, d->cfg->nadvertise_addrs,
	                                   d->bound, d->nlisteners, &h, d->self->addrs);
	advertise_host_free(&h);
	for (size_t i = 0; i < d->self->naddrs; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? " " : "",
		         peer_addr_text(d->self->addrs[i].ip, d->self->addrs[i].port));
	if (d->self->naddrs == 0) {
		log_error("peer", "no address to advertise: set advertise_addrs");
		return -1;
	}
	log_info("peer", "advertising %s", list);
	return 0;
}

const struct manager_ops *daemon_manager_for(enum manager_kind k)
{
	switch (k) {
	case MANAGER_FULL_MESH:
		return &full_mesh_ops;
	case MANAGER_STATIC:
		return &static_ops;
	case MANAGER_HYPARVIEW:
		return &hyparview_ops;
	case MANAGER_CLIENT_SERVER:
		return &full_mesh_ops; /* with params.client_server set */
	default:
		return NULL;
	}
}

static uint64_t daemon_realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t daemon_realtime_ms(void)
{
	return daemon_realtime_us() / 1000;
}

static struct node *daemon_node_create(struct daemon *d, uint64_t epoch)
{
	const struct config *cfg = d->cfg;
	struct node_params p = {
	    .self = cfg->name,
	    .failure_timeout_ms = cfg->failure_timeout_ms,
	    .fd_ring = cfg->manager == MANAGER_FULL_MESH,
	    .broadcast = true,
	    .epoch = epoch,
	    .lazy_tick_ms = cfg->broadcast.lazy_tick_ms,
	    .exchange_tick_ms = cfg->broadcast.exchange_tick_ms,
	    .broadcast_store = PLUMTREE_STORE,
	};

	return node_create(&p);
}

int daemon_open(struct daemon *d, const struct config *cfg, uint64_t seed)
{
	/* Tells this run's acks and broadcasts from the last. */
	uint64_t epoch = daemon_realtime_us();

	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->transport = &transport_tcp;
	d->self = daemon_self_spec(cfg);
	TAILQ_INIT(&d->conns);
	strmap_init(&d->nodes);
	strmap_init(&d->partitions);
	strmap_init(&d->mstatus);
	d->stats.chan = xcalloc(cfg->nchannels, sizeof(*d->stats.chan));
	actions_init(&d->acts);
	rng_seed(&d->rng, seed);
	arena_init(&d->peer_arena, DAEMON_ARENA_BYTES);
	arena_init(&d->ipc_arena, DAEMON_ARENA_BYTES);
	d->splice = evbuffer_new();
	d->base = event_base_new();
	d->node = daemon_node_create(d, epoch);
	if (daemon_manager_for(cfg->manager) == NULL || d->node == NULL || d->base == NULL ||
	    d->splice == NULL || router_init(d) < 0 || security_open(d) < 0 || peer_listen(d) < 0 ||
	    daemon_advertise(d) < 0 || ipc_listen(d) < 0 || metrics_start(d) < 0)
		return -1;
	daemon_reset_manager(d);
	d->plumtree = node_plumtree(d->node);
	d->ack = ack_create(epoch, cfg->retransmit_interval_ms);
	d->causal = causal_create(d->self->name);
	return 0;
}

void daemon_close(struct daemon *d)
{
	metrics_stop(d);
	graph_free(d);
	ipc_shutdown(d);
	peer_shutdown(d);
	security_close(d);
	arena_free(&d->peer_arena);
	arena_free(&d->ipc_arena);
	if (d->splice)
		evbuffer_free(d->splice);
	router_free(d);
	if (d->ack)
		ack_destroy(d->ack);
	if (d->causal)
		causal_destroy(d->causal);
	node_destroy(d->node);
	actions_free(&d->acts);
	if (d->base)
		event_base_free(d->base);
	node_spec_free(d->self);
	daemon_status_free(d);
	free(d->stats.chan);
	memset(d, 0, sizeof(*d));
}

uint64_t daemon_now_ms(void)
{
	struct timespec ts;

	/* The coarse clock (a few ms) is all the daemon's timers need, and
	 * cheaper than the precise one for a timestamp per frame. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t daemon_frame_add(struct evbuffer *out, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	struct evbuffer_iovec v;

	if (evbuffer_reserve_space(out, (ev_ssize_t)(FRAME_HEADER + len), &v, 1) < 1) {
		fputs("partisand: out of memory\n", stderr);
		abort();
	}
	frame_put_header(v.iov_base, (uint32_t)len);
	protobuf_c_message_pack(msg, (uint8_t *)v.iov_base + FRAME_HEADER);
	v.iov_len = FRAME_HEADER + len;
	evbuffer_commit_space(out, &v, 1);
	return FRAME_HEADER + len;
}

/* libevent 2.1 reads at most 4096 bytes per readiness event
 * (EVBUFFER_MAX_READ), which costs a wakeup, an ioctl and a readv per 4 KiB
 * of a busy link. When that much came, the rest is read here in big bites. */
#define DAEMON_READ_BITE (64 * 1024)

static void daemon_read_bites(struct evbuffer *in, int fd, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		struct evbuffer_iovec v[2];
		size_t want = cap - got < DAEMON_READ_BITE ? cap - got : DAEMON_READ_BITE, room = 0;
		int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
		ssize_t n;

		if (nv <= 0)
			return;
		for (int i = 0; i < nv; i++) {
			if (v[i].iov_len > want - room)
				v[i].iov_len = want - room;
			room += v[i].iov_len;
		}
		do
			n = readv(fd, (struct iovec *)v, nv);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			/* Nothing more, or EOF / an error: libevent's next read sees it. */
			evbuffer_commit_space(in, v, 0);
			return;
		}
		if ((size_t)n <= v[0].iov_len) {
			v[0].iov_len = (size_t)n;
			nv = 1;
		} else {
			v[1].iov_len = (size_t)n - v[0].iov_len;
		}
		evbuffer_commit_space(in, v, nv);
		got += (size_t)n;
		if ((size_t)n < room)
			return; /* the socket is drained */
	}
}

void daemon_read_more(struct bufferevent *bev, size_t cap)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	if (evbuffer_get_length(in) < 4096)
		return;
	/* bufferevent keeps the end of its input frozen between its reads. */
	evbuffer_unfreeze(in, 0);
	daemon_read_bites(in, (int)bufferevent_getfd(bev), cap);
	evbuffer_freeze(in, 0);
}

struct core_env daemon_env(struct daemon *d)
{
	struct core_env env = {.now_ms = daemon_now_ms(), .rng = &d->rng};

	return env;
}

static void daemon_manager_params(struct daemon *d, struct manager_params *p)
{
	const struct config *c = d->cfg;

	memset(p, 0, sizeof(*p));
	p->self = d->self;
	p->actor = d->actor;
	p->gossip_interval_ms = c->gossip_interval_ms;
	p->fanout = 3;
	p->client_server = c->manager == MANAGER_CLIENT_SERVER;
	p->max_members = c->max_members;
	p->active_max = c->hyparview.active_max_size;
	p->passive_max = c->hyparview.passive_max_size;
	p->arwl = c->hyparview.arwl;
	p->prwl = c->hyparview.prwl;
	p->shuffle_interval_ms = c->hyparview.shuffle_interval_ms;
	p->shuffle_k_active = c->hyparview.shuffle_k_active;
	p->shuffle_k_passive = c->hyparview.shuffle_k_passive;
	p->promotion_interval_ms = c->hyparview.random_promotion_interval_ms;
}

void daemon_reset_manager(struct daemon *d)
{
	struct manager_params p;
	struct timespec ts;
	uint64_t inc;

	clock_gettime(CLOCK_REALTIME, &ts);
	inc = (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
	d->incarnation = inc > d->incarnation ? inc : d->incarnation + 1;
	snprintf(d->actor, sizeof(d->actor), "%s/%llx", d->self->name,
	         (unsigned long long)d->incarnation);
	daemon_manager_params(d, &p);
	node_set_manager(d->node, daemon_manager_for(d->cfg->manager), &p);
	d->mops = node_ops(d->node);
	d->mgr = node_manager(d->node);
}

/* ---- member status: alive, suspect, down, left, and since when ---- */

struct member_status {
	enum member_state state;
	uint64_t since_ms; /* monotonic */
};

static void daemon_status_set(struct daemon *d, const char *node, enum member_state st)
{
	struct member_status *m = strmap_get(&d->mstatus, node);

	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		strmap_put(&d->mstatus, node, m);
	} else if (m->state == st) {
		return;
	}
	m->state = st;
	m->since_ms = daemon_now_ms();
}

enum member_state daemon_member_status(struct daemon *d, const char *node, uint64_t *since_ms)
{
	struct member_status *m = strmap_get(&d->mstatus, node);
	enum member_state st = m ? m->state : MEMBER_DOWN;

	*since_ms = m ? m->since_ms : d->start_ms;
	if (strcmp(node, d->self->name) == 0) {
		*since_ms = d->start_ms;
		return MEMBER_ALIVE;
	}
	if (st == MEMBER_ALIVE && peer_suspect(d, node, since_ms))
		return MEMBER_SUSPECT;
	return st;
}

bool daemon_member_known(struct daemon *d, const char *node)
{
	return strcmp(node, d->self->name) == 0 || strmap_get(&d->mstatus, node) != NULL;
}

const char *daemon_member_state_name(enum member_state st)
{
	static const char *const names[] = {"alive", "suspect", "down", "left"};

	return names[st];
}

size_t daemon_left(struct daemon *d, const char ***out)
{
	const char *k;
	void *v;
	size_t n = 0;

	*out = xcalloc(d->mstatus.len + 1, sizeof(**out));
	for (size_t i = 0; strmap_next(&d->mstatus, &i, &k, &v);)
		if (((struct member_status *)v)->state == MEMBER_LEFT)
			(*out)[n++] = k;
	return n;
}

static void daemon_status_free(struct daemon *d)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&d->mstatus, &i, &k, &v);)
		free(v);
	strmap_free(&d->mstatus);
}

/* This node was removed from the cluster: say so, close everything and stop
 * taking part (peers are refused) until it is told to join again. */
static void daemon_self_removed(struct daemon *d)
{
	const char **up;
	size_t n = peer_up_nodes(d, &up);
	char **names = xcalloc(n + 1, sizeof(*names));

	log_notice("membership", "this node was removed from the cluster; it no longer takes part");
	for (size_t i = 0; i < n; i++)
		names[i] = xstrdup(up[i]);
	free(up);
	for (size_t i = 0; i < n; i++) {
		peer_disconnect(d, names[i]);
		free(names[i]);
	}
	free(names);
	ipc_broadcast_stopped(d);
	d->stopped = true;
}

static void daemon_log(const struct action *a)
{
	switch (a->level) {
	case CORE_DEBUG:
		log_debug("peer", "%s", a->text);
		break;
	case CORE_INFO:
		log_info("peer", "%s", a->text);
		break;
	case CORE_NOTICE:
		log_notice("peer", "%s", a->text);
		break;
	case CORE_WARNING:
		log_warnx("peer", "%s", a->text);
		break;
	}
}

static void daemon_event(struct daemon *d, const struct action *a, bool *self_removed)
{
	switch (a->event) {
	case EV_SELF_REMOVED:
		*self_removed = true;
		break;
	case EV_MEMBER_ADDED:
		log_info("membership", "%s joined", a->node);
		daemon_status_set(d, a->node, peer_is_up(d, a->node) ? MEMBER_ALIVE : MEMBER_DOWN);
		break;
	case EV_MEMBER_REMOVED:
		log_info("membership", "%s left", a->node);
		/* In HyParView this only means "out of the active view". */
		if (d->cfg->manager != MANAGER_HYPARVIEW) {
			router_member_removed(d, a->node);
			daemon_status_set(d, a->node, MEMBER_LEFT);
		}
		break;
	case EV_MEMBER_LEFT:
		log_info("membership", "%s left the cluster (news from %s)", a->node, a->text);
		daemon_status_set(d, a->node, MEMBER_LEFT);
		router_node_left(d, a->node);
		break;
	case EV_STATE_REFUSED:
		d->stats.states_capped++;
		peer_refusal(d, a->node, PEER_REFUSE_MEMBERS,
		             "membership state of more than max_members (%u) members: refused, not merged",
		             d->cfg->max_members);
		break;
	case EV_VIEW_CHANGED:
		break;
	}
}

static void daemon_do(struct daemon *d, struct action *a, bool *self_removed)
{
	switch (a->kind) {
	case ACT_SEND:
		if (a->flags & ACT_F_NOW)
			peer_send_now(d, a->node, a->buf, a->len, a->flags & ACT_F_PROBE);
		else if (peer_send(d, a->node, a->channel, a->key, a->keylen, a->buf, a->len) < 0)
			log_debug("peer", "%s: not sent", a->node);
		break;
	case ACT_CONNECT:
		peer_want(d, a->spec);
		break;
	case ACT_DISCONNECT:
		peer_disconnect(d, a->node);
		break;
	case ACT_EVENT:
		daemon_event(d, a, self_removed);
		break;
	case ACT_DOWN:
		peer_take_down(d, a->node, a->text);
		break;
	case ACT_DELIVER:
		router_broadcast_deliver(d, a->text, a->node, a->buf, a->len);
		break;
	case ACT_LOG:
		daemon_log(a);
		break;
	}
}

void daemon_drain(struct daemon *d)
{
	bool self_removed = false;

	/* Carrying out an action may feed the cores again (a disconnect reports
	 * a node down), so work on a detached list until none are left. */
	while (d->acts.n > 0) {
		struct actions work = d->acts;

		actions_init(&d->acts);
		for (size_t i = 0; i < work.n; i++)
			daemon_do(d, &work.v[i], &self_removed);
		actions_free(&work);
	}
	if (self_removed) {
		daemon_self_removed(d);
		daemon_drain(d);
	}
}

void daemon_tick(struct daemon *d, uint64_t now)
{
	struct core_env env = {.now_ms = now, .rng = &d->rng};
	bool round;

	peer_unread_scan(d, now); /* bytes waiting unread are life */
	round = node_tick(d->node, &env, &d->acts);
	daemon_drain(d);
	peer_tick(d, now, round);
	ipc_tick(d, now);
	router_tick(d, now);
	/* What the router's cores queued (ack retransmits, held data) goes
	 * now, not at the next event. */
	daemon_drain(d);
}

void daemon_node_up(struct daemon *d, const struct node_spec *spec)
{
	struct core_env env = daemon_env(d);

	daemon_status_set(d, spec->name, MEMBER_ALIVE);
	node_link_up(d->node, spec, &env, &d->acts);
	router_node_up(d, spec->name);
	daemon_drain(d);
}

void daemon_node_down(struct daemon *d, const char *node, const char *reason)
{
	struct core_env env = daemon_env(d);

	if (strcmp(reason, "disconnected") != 0 || d->cfg->manager != MANAGER_HYPARVIEW)
		daemon_status_set(d, node, MEMBER_DOWN);
	node_link_down(d->node, node, &env, &d->acts);
	router_node_down(d, node, reason);
	daemon_drain(d);
}

int daemon_peer_msg(struct daemon *d, const char *node, const PartisanPeer__PeerMsg *msg,
                    const char **why)
{
	struct core_env env = daemon_env(d);
	int r;

	/* A state costs a decode and a merge: each peer gets a budget
	 * (max_state_pushes_per_s); what is over it is dropped, and the next
	 * digest round makes up for it. */
	if ((msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP ||
	     msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE ||
	     msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY) &&
	    !peer_state_push_ok(d, node))
		return 0;
	r = node_receive(d->node, node, msg, &env, &d->acts, why);
	if (r == NODE_NOT_MINE)
		return router_peer_msg(d, node, msg, why);
	daemon_drain(d);
	return r;
}

bool daemon_peer_data_big(struct daemon *d, const char *node, const PartisanPeer__Data *data,
                          struct evbuffer *big)
{
	return router_data_big(d, node, data, big);
}

void daemon_link_up(struct daemon *d, const char *node)
{
	ipc_joins_check(d); /* a sync_join may be complete with this link */
}

void daemon_peer_drained(struct daemon *d)
{
	router_resume_senders(d);
}

bool daemon_joined(struct daemon *d, const char *contact)
{
	const char *const *view;
	size_t n;

	/* Every channel connected, and the contact's state merged: a caller
	 * that asks about the contact right after the join finds it. */
	if (d->cfg->manager != MANAGER_HYPARVIEW)
		return peer_fully_connected(d, contact) &&
		       (d->mops->is_member == NULL || d->mops->is_member(d->mgr, contact));
	/* A partial view: joined once some neighbor is linked, whoever it is. */
	n = d->mops->active_view(d->mgr, &view);
	for (size_t i = 0; i < n; i++)
		if (peer_is_up(d, view[i]))
			return true;
	return false;
}

void daemon_join_spec(struct daemon *d, const struct node_spec *spec)
{
	struct core_env env = daemon_env(d);

	node_join(d->node, spec, &env, &d->acts);
	daemon_drain(d);
}

bool daemon_topic_internal(const char *topic)
{
	return strncmp(topic, "$partisan:", 10) == 0;
}

void daemon_internal_broadcast(struct daemon *d, const char *topic, const char *origin,
                               const uint8_t *payload, size_t len)
{
	/* The node core keeps its own news ($partisan:left); the registry's
	 * is the router's. */
	(void)origin;
	if (strcmp(topic, ROUTER_TOPIC_REGISTRY) == 0)
		router_registry_news(d, payload, len);
}

int daemon_leave(struct daemon *d, const char *node, const char **why)
{
	struct core_env env = daemon_env(d);

	if (!d->mops->is_member(d->mgr, node))
		return *why = "not a member", -1;
	node_leave(d->node, node, &env, &d->acts);
	daemon_drain(d);
	return 0;
}
