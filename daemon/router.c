/* router.c: endpoints, names, delivery, calls and monitors (see router.h).
 *
 * Every session is an endpoint (partisan:pid:NODE:ID) and may register
 * names (partisan:name:NODE:NAME). A message to an endpoint that does not
 * exist is dropped and counted, as Erlang does. Calls carry a call ref; the
 * reply comes back as Data with is_reply. Monitors follow partisan_monitor:
 * exactly one DOWN per monitor, reason normal | killed | noproc | noconnection.
 *
 * Backpressure is per destination. A session whose queue toward its client
 * passes session_queue_bytes pauses whoever feeds it: a local sender is not
 * read; a node sending over a link is told (peer Flow) that this endpoint
 * is blocked, and holds back only its own sessions that send to it, while
 * the link goes on carrying everything else. Only a queue that still grows
 * past ROUTER_FLOW_HARD (a sender that does not hold back) pauses the link.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "ack.h"
#include "hold.h"
#include "causal.h"
#include "ipc.h"
#include "graph.h"
#include "registry.h"
#include "log.h"
#include "monitor.h"
#include "peer.h"
#include "node.h"
#include "router.h"
#include "wire.h"

struct call {
	char cref[300];
	struct session *s;
	uint64_t id; /* the Call request to answer */
	uint64_t deadline;
	char node[300]; /* target node */
};

/* A call handed to an endpoint here, until it replies: if it goes first,
 * the caller learns at once (ENOPROC), as gen_server:call's monitor does. */
struct pending {
	uint64_t sid;     /* the callee's session */
	char node[300];   /* the caller's node */
	char target[300]; /* the ref the call was sent to */
	uint64_t expires; /* the caller has given up by then */
};

/* A node told that a session here is full, for one ref it sends to. */
struct flow_told {
	char *node;
	char *to;          /* the ref as that node addressed it */
	uint64_t renew_ms; /* when its lease is renewed, while still full */
};

/* An endpoint on another node that said it is full. */
struct flow_block {
	char *node;
	uint64_t expires_ms; /* lease: unblocked by then unless renewed */
};

struct rt_session {
	char **names;
	size_t nnames;
	bool monitor_nodes;
	bool with_reason;
	uint64_t *blocked; /* peer connections paused until we drain */
	size_t nblocked;
	struct flow_told *told; /* nodes told this session is full */
	size_t ntold;
	char *wait_to;        /* not read until this full endpoint has room */
	struct strmap topics; /* broadcast topics subscribed to */
	bool shedding;        /* broadcasts to it shed: its queue is full */
};

#define ROUTER_FLOW_LEASE_MS 5000 /* a Flow block lasts this long unless renewed */
#define ROUTER_FLOW_RENEW_MS 1000 /* renewed this often while the session is full */
/* A session's queue may outgrow session_queue_bytes by what was in flight
 * toward it when its senders were told to hold back: the sending node's
 * link queue (peer_queue_bytes, and a message per sending session) and
 * what the kernel's socket buffers at both ends held (ROUTER_FLOW_KERNEL).
 * Past that, the link feeding it is paused as a last resort: a sender that
 * does not hold back. */
#define ROUTER_FLOW_KERNEL (8u << 20)
#define ROUTER_FLOW_HARD(cfg)                                                                      \
	((cfg)->session_queue_bytes + 2 * (cfg)->peer_queue_bytes + ROUTER_FLOW_KERNEL)

#define RELAY_TTL  8    /* hops a transitive message may take */
#define RELAY_SEEN 4096 /* relayed messages remembered, to drop repeats */

struct router {
	struct strmap names; /* local name -> session */
	struct strmap pids;  /* id -> session */
	struct monitors *monitors;
	struct mon_notes notes;  /* what the monitor table asked for, to carry out */
	struct strmap calls;     /* call ref -> call (calls made here) */
	struct strmap pending;   /* call ref -> pending (calls answered here) */
	struct registry *remote; /* names registered on other nodes */
	uint64_t reg_version;    /* of our own record: counts our names' changes */
	uint64_t next_digest_ms; /* registry anti-entropy round */
	uint64_t next_ref;
	uint64_t next_relay;
	struct strmap relay_seen;     /* "origin/id" of relayed messages seen */
	char *relay_ring[RELAY_SEEN]; /* the same keys, oldest first out */
	size_t relay_pos;
	struct hold *hold;  /* acked messages waiting for their target (hold.h) */
	struct strmap flow; /* ref -> struct flow_block: full endpoints elsewhere */
};

static bool router_acked(const PartisanPeer__Data *data);
static bool router_hold(struct daemon *d, const char *from, const PartisanPeer__Data *data);
static void router_on_ack(struct daemon *d, const char *from, const PartisanPeer__Ack *ack);
static void router_on_flow(struct daemon *d, const char *from, const PartisanPeer__Flow *f);
static void router_flow_tick(struct daemon *d, const char *gone, uint64_t now);
static void router_flow_release_node(struct daemon *d, const char *node, uint64_t now);

int router_init(struct daemon *d)
{
	struct router *r = xcalloc(1, sizeof(*r));

	strmap_init(&r->names);
	strmap_init(&r->pids);
	r->monitors = monitors_create();
	mon_notes_init(&r->notes);
	strmap_init(&r->calls);
	strmap_init(&r->pending);
	strmap_init(&r->relay_seen);
	r->remote = registry_create();
	r->hold = hold_create(d->cfg->session_queue_bytes);
	strmap_init(&r->flow);
	d->router = r;
	return 0;
}

void router_free(struct daemon *d)
{
	struct router *r = d->router;
	const char *k;
	void *v;

	if (r == NULL)
		return;
	for (size_t i = 0; strmap_next(&r->calls, &i, &k, &v);)
		free(v);
	for (size_t i = 0; strmap_next(&r->pending, &i, &k, &v);)
		free(v);
	strmap_free(&r->pending);
	strmap_free(&r->names);
	strmap_free(&r->pids);
	monitors_destroy(r->monitors);
	mon_notes_clear(&r->notes);
	strmap_free(&r->calls);
	registry_destroy(r->remote);
	hold_destroy(r->hold);
	for (size_t i = 0; strmap_next(&r->flow, &i, &k, &v);) {
		free(((struct flow_block *)v)->node);
		free(v);
	}
	strmap_free(&r->flow);
	strmap_free(&r->relay_seen);
	for (size_t i = 0; i < RELAY_SEEN; i++)
		free(r->relay_ring[i]);
	free(r);
	d->router = NULL;
}

static void router_new_ref(struct daemon *d, char *buf, size_t n)
{
	char id[32];

	snprintf(id, sizeof(id), "%llu", (unsigned long long)++d->router->next_ref);
	ref_make(REF_REF, d->self->name, id, buf, n);
}

/* The local session a ref names, or NULL. */
static struct session *router_lookup(struct daemon *d, const struct ref *r)
{
	if (strcmp(r->node, d->self->name) != 0)
		return NULL;
	if (r->kind == REF_NAME)
		return strmap_get(&d->router->names, r->id);
	if (r->kind == REF_PID)
		return strmap_get(&d->router->pids, r->id);
	return NULL;
}

/* ---- events to sessions ---- */

static void router_pause_session(struct session *s)
{
	if (!s->paused && !s->closing) {
		s->paused = true;
		bufferevent_disable(s->bev, EV_READ);
	}
}

static void router_flow_send(struct daemon *d, const char *node, const char *to, bool blocked)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Flow f = PARTISAN_PEER__FLOW__INIT;

	f.to = (char *)to;
	f.blocked = blocked;
	f.has_lease_ms = blocked;
	f.lease_ms = ROUTER_FLOW_LEASE_MS;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_FLOW;
	m.flow = &f;
	peer_send_msg(d, node, NULL, NULL, 0, &m);
}

/* Tell node, once a blocked spell (then renewed by router_flow_renew), that
 * t, which it addresses as to, is full. */
static void router_flow_block(struct session *t, const char *node, const char *to)
{
	struct rt_session *rs = t->rt;
	struct flow_told *f;

	for (size_t i = 0; i < rs->ntold; i++)
		if (strcmp(rs->told[i].node, node) == 0 && strcmp(rs->told[i].to, to) == 0)
			return;
	rs->told = xrealloc(rs->told, (rs->ntold + 1) * sizeof(*rs->told));
	f = &rs->told[rs->ntold++];
	f->node = xstrdup(node);
	f->to = xstrdup(to);
	f->renew_ms = daemon_now_ms() + ROUTER_FLOW_RENEW_MS;
	router_flow_send(t->d, node, to, true);
}

/* s has room again (or is gone): every node told it was full may send. */
static void router_flow_unblock(struct session *s)
{
	struct rt_session *rs = s->rt;

	for (size_t i = 0; i < rs->ntold; i++) {
		router_flow_send(s->d, rs->told[i].node, rs->told[i].to, false);
		free(rs->told[i].node);
		free(rs->told[i].to);
	}
	free(rs->told);
	rs->told = NULL;
	rs->ntold = 0;
}

/* t's queue toward its client is over the bound: stop whoever feeds it
 * until t drains: the local sender; or, for data from node `from`
 * addressed as `to`, that node's senders to t (peer Flow), and the peer
 * connection being read only when the queue still grows far past it. */
static void router_backpressure(struct session *t, struct session *sender, const char *from,
                                const PartisanPeer__Data *data)
{
	struct daemon *d = t->d;
	struct rt_session *rs = t->rt;
	size_t queued = ipc_queued(t);

	if (queued <= d->cfg->session_queue_bytes)
		return;
	if (sender) {
		router_pause_session(sender);
		return;
	}
	if (from && data && !data->has_relay_id)
		router_flow_block(t, from, data->to);
	if (d->cur_conn && (queued > ROUTER_FLOW_HARD(d->cfg) || !from || data->has_relay_id)) {
		rs->blocked = xrealloc(rs->blocked, (rs->nblocked + 1) * sizeof(*rs->blocked));
		rs->blocked[rs->nblocked++] = d->cur_conn;
		peer_pause(d, d->cur_conn);
	}
}

/* big: the payload's bytes when they were split out of their frame
 * (splice.h), payload then empty; else NULL. */
static void router_push_message(struct session *s, const char *from, const char *to,
                                const ProtobufCBinaryData *payload, const char *call_ref,
                                const char *channel, struct evbuffer *big)
{
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__Message m = PARTISAN_IPC__MESSAGE__INIT;

	m.from = (char *)from;
	m.to = (char *)to;
	m.payload = *payload;
	m.call_ref = (char *)call_ref;
	m.channel = (char *)channel;
	if (big) {
		ipc_push_message_big(s, &m, big);
		return;
	}
	ev.body_case = PARTISAN_IPC__EVENT__BODY_MESSAGE;
	ev.message = &m;
	ipc_push_event(s, &ev);
}

static void router_push_down(struct session *s, const char *mref, const char *target,
                             const char *reason)
{
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__DownEvent dn = PARTISAN_IPC__DOWN_EVENT__INIT;

	dn.mref = (char *)mref;
	dn.target = (char *)target;
	dn.reason = (char *)reason;
	ev.body_case = PARTISAN_IPC__EVENT__BODY_DOWN;
	ev.down = &dn;
	ipc_push_event(s, &ev);
}

static void router_push_node(struct session *s, const char *node, bool up, const char *reason)
{
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__NodeEvent ne = PARTISAN_IPC__NODE_EVENT__INIT;

	ne.node = (char *)node;
	ne.up = up;
	ne.reason = (char *)reason;
	ev.body_case = PARTISAN_IPC__EVENT__BODY_NODE;
	ev.node = &ne;
	ipc_push_event(s, &ev);
}

/* ---- the distributed registry ---- */

/* This node's names as a record: pointers into the router; release with
 * router_own_release. */
static void router_own_record(struct daemon *d, PartisanPeer__RegistryRecord *rec)
{
	const char *k;
	void *v;

	partisan_peer__registry_record__init(rec);
	rec->node = d->self->name;
	rec->epoch = d->incarnation;
	rec->version = d->router->reg_version;
	rec->names = xcalloc(d->router->names.len + 1, sizeof(*rec->names));
	for (size_t i = 0; strmap_next(&d->router->names, &i, &k, &v);) {
		PartisanPeer__RegistryName *rn = xmalloc(sizeof(*rn));

		partisan_peer__registry_name__init(rn);
		rn->name = (char *)k;
		rn->ref = ((struct session *)v)->ref;
		rec->names[rec->n_names++] = rn;
	}
}

static void router_own_release(PartisanPeer__RegistryRecord *rec)
{
	for (size_t i = 0; i < rec->n_names; i++)
		free(rec->names[i]);
	free(rec->names);
}

/* Tell the whole cluster through the overlay (Plumtree): one record, ours
 * (rec NULL) or a tombstone. */
static void router_registry_broadcast(struct daemon *d, PartisanPeer__RegistryRecord *rec)
{
	PartisanPeer__RegistryRecord own;
	PartisanPeer__Registry reg = PARTISAN_PEER__REGISTRY__INIT;
	struct core_env env = daemon_env(d);
	uint8_t *buf;
	size_t len;

	if (rec == NULL)
		router_own_record(d, rec = &own);
	reg.n_records = 1;
	reg.records = &rec;
	len = partisan_peer__registry__get_packed_size(&reg);
	buf = xmalloc(len + 1);
	partisan_peer__registry__pack(&reg, buf);
	node_broadcast(d->node, ROUTER_TOPIC_REGISTRY, buf, len, &env, &d->acts);
	free(buf);
	if (rec == &own)
		router_own_release(&own);
	daemon_drain(d);
}

/* Our names changed. */
static void router_registry_changed(struct daemon *d)
{
	d->router->reg_version++;
	router_registry_broadcast(d, NULL);
}

/* Where not everyone is linked to everyone, records travel through others. */
static bool router_registry_relayed(const struct daemon *d)
{
	return d->cfg->manager == MANAGER_HYPARVIEW || d->cfg->manager == MANAGER_CLIENT_SERVER;
}

/* Send node our record, and with table every record we hold. */
static void router_registry_send(struct daemon *d, const char *node, bool table, bool want_reply)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Registry reg;
	PartisanPeer__RegistryRecord own;

	router_own_record(d, &own);
	if (table) {
		registry_to_pb(d->router->remote, &own, &reg);
	} else {
		partisan_peer__registry__init(&reg);
		reg.records = xcalloc(1, sizeof(*reg.records));
		reg.records[reg.n_records++] = &own;
	}
	reg.has_want_reply = reg.want_reply = want_reply;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_REGISTRY;
	m.registry = &reg;
	peer_send_msg(d, node, NULL, NULL, 0, &m);
	registry_pb_release(&reg);
	router_own_release(&own);
}

/* Have we anything to tell (our names ever changed, or records held)? */
static bool router_registry_any(const struct daemon *d)
{
	return d->router->reg_version > 0 || d->router->names.len > 0 ||
	       (router_registry_relayed(d) && registry_count(d->router->remote) > 0);
}

/* A link to node came up: it gets our record, and, where records travel
 * through others, every record we hold. */
static void router_registry_greet(struct daemon *d, const char *node)
{
	if (router_registry_any(d))
		router_registry_send(d, node, router_registry_relayed(d), false);
}

static uint64_t router_registry_hash(struct daemon *d)
{
	PartisanPeer__RegistryRecord own;
	uint64_t h;

	router_own_record(d, &own);
	h = registry_hash(d->router->remote, &own);
	router_own_release(&own);
	return h;
}

/* Anti-entropy, once a gossip round: our table's hash to one linked node
 * at random, which answers with its records if its hash differs. Repairs
 * what a broadcast missed (a link that came and went mid-flight). A node
 * that holds nothing sends its (empty) hash too, so it pulls what it
 * missed instead of waiting to be picked. */
static void router_registry_round(struct daemon *d, uint64_t now)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__RegistryDigest dg = PARTISAN_PEER__REGISTRY_DIGEST__INIT;
	const char **up;
	size_t n;

	if (!router_registry_relayed(d) || now < d->router->next_digest_ms)
		return;
	d->router->next_digest_ms = now + d->cfg->gossip_interval_ms;
	n = peer_up_nodes(d, &up);
	if (n > 0) {
		dg.hash = router_registry_hash(d);
		m.body_case = PARTISAN_PEER__PEER_MSG__BODY_REGISTRY_DIGEST;
		m.registry_digest = &dg;
		peer_send_msg(d, up[rng_next(&d->rng) % n], NULL, NULL, 0, &m);
	}
	free(up);
}

/* Records from a peer or the overlay. A record about us that says we are
 * gone (a false suspicion) or that carries an older incarnation's names is
 * answered with our own, newer one. */
static int router_registry_in(struct daemon *d, const PartisanPeer__Registry *reg, bool *repaired,
                              const char **why)
{
	struct router *r = d->router;
	bool answer = false;
	uint64_t now = daemon_now_ms();

	for (size_t i = 0; i < reg->n_records; i++) {
		const PartisanPeer__RegistryRecord *rec = reg->records[i];
		bool gone = rec->has_gone && rec->gone;

		if (strcmp(rec->node, d->self->name) != 0) {
			int changed = registry_merge(r->remote, rec, now, why);

			if (changed < 0)
				return -1;
			if (changed && repaired)
				*repaired = true;
			continue;
		}
		if (rec->epoch == d->incarnation && gone && rec->version >= r->reg_version) {
			r->reg_version = rec->version + 1;
			answer = true;
		} else if (rec->epoch < d->incarnation && !gone) {
			answer = true;
		}
	}
	if (answer)
		router_registry_broadcast(d, NULL);
	return 0;
}

static int router_registry_from(struct daemon *d, const char *from,
                                const PartisanPeer__Registry *reg, const char **why)
{
	bool repaired = false;

	if (router_registry_in(d, reg, &repaired, why) < 0)
		return -1;
	/* A record learned from a peer rather than the overlay is one the
	 * broadcast missed here, and so likely near here: pass the repair on
	 * at once rather than a round later. */
	if (repaired)
		d->router->next_digest_ms = 0;
	if (reg->has_want_reply && reg->want_reply)
		router_registry_send(d, from, true, false);
	return 0;
}

void router_registry_news(struct daemon *d, const uint8_t *payload, size_t len)
{
	PartisanPeer__Registry *reg = partisan_peer__registry__unpack(NULL, len, payload);
	const char *why = NULL;

	if (reg == NULL || router_registry_in(d, reg, NULL, &why) < 0)
		log_warnx("router", "registry news refused: %s", why ? why : "does not decode");
	if (reg)
		partisan_peer__registry__free_unpacked(reg, NULL);
}

/* node left or failed: its names go. Where others may not see it for
 * themselves (its overlay neighbours are all that do in hyparview, and
 * only servers see clients in client_server), they are told. */
static void router_registry_gone(struct daemon *d, const char *node, bool tell)
{
	const PartisanPeer__RegistryRecord *tomb;

	if (!registry_gone(d->router->remote, node, daemon_now_ms(), &tomb) || !tell)
		return;
	if (d->cfg->manager == MANAGER_HYPARVIEW ||
	    (d->cfg->manager == MANAGER_CLIENT_SERVER && !d->self->client))
		router_registry_broadcast(d, (PartisanPeer__RegistryRecord *)tomb);
}

void router_node_left(struct daemon *d, const char *node)
{
	router_registry_gone(d, node, false); /* everyone hears the news itself */
}

static void router_pending_sweep(struct daemon *d, uint64_t sid, const char *node, uint64_t now);

/* ---- sessions and names ---- */

void router_session_open(struct session *s)
{
	struct rt_session *rs = xcalloc(1, sizeof(*rs));
	char id[32];

	strmap_init(&rs->topics);
	s->rt = rs;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
	strmap_put(&s->d->router->pids, id, s);
}

static void router_send_peer(struct daemon *d, const char *node, PartisanPeer__PeerMsg *m)
{
	peer_send_msg(d, node, NULL, NULL, 0, m);
}

static void router_send_down(struct daemon *d, const char *node, const char *mref,
                             const char *target, const char *reason)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Down dn = PARTISAN_PEER__DOWN__INIT;

	dn.mref = (char *)mref;
	dn.target = (char *)target;
	dn.reason = (char *)reason;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DOWN;
	m.down = &dn;
	router_send_peer(d, node, &m);
}

static void router_send_demonitor(struct daemon *d, const char *node, const char *mref)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Demonitor dm = PARTISAN_PEER__DEMONITOR__INIT;

	dm.mref = (char *)mref;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DEMONITOR;
	m.demonitor = &dm;
	router_send_peer(d, node, &m);
}

/* The live session with endpoint id, or NULL. */
static struct session *router_session(struct daemon *d, uint64_t id)
{
	char key[32];
	struct session *s;

	snprintf(key, sizeof(key), "%llu", (unsigned long long)id);
	s = strmap_get(&d->router->pids, key);
	return s && !s->closing ? s : NULL;
}

/* Carry out what the monitor table asked for (in d->router->notes), and
 * empty the list. It is taken first: what is carried out may ask for more. */
static void router_notes(struct daemon *d)
{
	struct mon_notes l = d->router->notes;

	mon_notes_init(&d->router->notes);
	for (size_t i = 0; i < l.n; i++) {
		const struct mon_note *n = &l.v[i];
		struct session *s = router_session(d, n->session);

		switch (n->kind) {
		case MON_TELL_SESSION:
			if (s)
				router_push_down(s, n->mref, n->target, n->reason);
			break;
		case MON_TELL_NODE:
			router_send_down(d, n->node, n->mref, n->target, n->reason);
			break;
		case MON_CANCEL_NODE:
			router_send_demonitor(d, n->node, n->mref);
			break;
		case MON_NODEDOWN:
			if (s)
				router_push_node(s, n->node, false, n->reason);
			break;
		}
	}
	mon_notes_clear(&l);
}

static void router_unblock(struct session *s)
{
	struct rt_session *rs = s->rt;

	if (rs->ntold)
		router_flow_unblock(s);
	for (size_t i = 0; i < rs->nblocked; i++)
		peer_resume(s->d, rs->blocked[i]);
	free(rs->blocked);
	rs->blocked = NULL;
	rs->nblocked = 0;
}

void router_session_close(struct session *s, bool killed)
{
	struct daemon *d = s->d;
	struct rt_session *rs = s->rt;
	const char *k;
	void *v;
	char id[32];

	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->nnames; i++) {
		strmap_del(&d->router->names, rs->names[i]);
		free(rs->names[i]);
	}
	free(rs->names);
	if (rs->nnames)
		router_registry_changed(d);
	snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
	strmap_del(&d->router->pids, id);
	monitors_session_gone(d->router->monitors, s->id, killed ? "killed" : "normal",
	                      &d->router->notes);
	router_notes(d);
	router_pending_sweep(d, s->id, NULL, 0);
	for (size_t i = 0; strmap_next(&d->router->calls, &i, &k, &v);) {
		struct call *c = v;

		if (c->s == s) {
			strmap_del(&d->router->calls, k);
			free(c);
		}
	}
	router_unblock(s);
	free(rs->wait_to);
	strmap_free(&rs->topics);
	free(rs);
	s->rt = NULL;
}

static bool router_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n < REF_ID_MAX && strchr(name, ':') == NULL && strchr(name, ' ') == NULL;
}

void router_register(struct session *s, const PartisanIpc__Request *rq)
{
	struct router *r = s->d->router;
	struct rt_session *rs = s->rt;
	const char *name = rq->register_->name;
	struct session *holder;

	if (!router_name_valid(name)) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL,
		                  "register: bad name \"%s\"", name);
		return;
	}
	holder = strmap_get(&r->names, name);
	if (holder == s) {
		ipc_respond_ok(s, rq->id);
		return;
	}
	if (holder) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EEXIST,
		                  "%s is already registered by %s", name, holder->ref);
		return;
	}
	strmap_put(&r->names, name, s);
	rs->names = xrealloc(rs->names, (rs->nnames + 1) * sizeof(*rs->names));
	rs->names[rs->nnames++] = xstrdup(name);
	router_registry_changed(s->d);
	ipc_respond_ok(s, rq->id);
}

void router_unregister(struct session *s, const PartisanIpc__Request *rq)
{
	struct rt_session *rs = s->rt;
	const char *name = rq->unregister->name;

	for (size_t i = 0; i < rs->nnames; i++) {
		if (strcmp(rs->names[i], name) == 0) {
			strmap_del(&s->d->router->names, name);
			free(rs->names[i]);
			rs->names[i] = rs->names[--rs->nnames];
			router_registry_changed(s->d);
			ipc_respond_ok(s, rq->id);
			return;
		}
	}
	ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOENT,
	                  "unregister: %s is not registered by this session", name);
}

static void router_respond_ref(struct session *s, uint64_t id, const char *ref)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__RefReply rr = PARTISAN_IPC__REF_REPLY__INIT;

	rr.ref = (char *)ref;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_REF;
	r.ref = &rr;
	ipc_respond(s, id, &r);
}

void router_whereis(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	const PartisanIpc__Whereis *w = rq->whereis;
	const char *ref;

	if (strcmp(w->node, d->self->name) == 0) {
		struct session *t = strmap_get(&d->router->names, w->name);

		if (t == NULL)
			ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOPROC,
			                  "%s: no such name on %s", w->name, w->node);
		else
			router_respond_ref(s, rq->id, t->ref);
		return;
	}
	/* A remote name: the registry knows whether it exists, and where. */
	if (!node_name_valid(w->node)) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "whereis: bad node name");
		return;
	}
	ref = registry_find(d->router->remote, w->node, w->name);
	if (ref == NULL)
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOPROC, "%s: no such name on %s",
		                  w->name, w->node);
	else
		router_respond_ref(s, rq->id, ref);
}

static void router_noproc(struct daemon *d, const char *node, const char *ref, const char *target)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__NoProc np = PARTISAN_PEER__NO_PROC__INIT;

	np.ref = (char *)ref;
	np.target = (char *)target;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_NOPROC;
	m.noproc = &np;
	router_send_peer(d, node, &m);
}

/* The live endpoint here that data is for, or NULL. */
static struct session *router_target(struct daemon *d, const PartisanPeer__Data *data)
{
	struct session *t;
	struct ref r;

	if (ref_parse(data->to, &r) < 0 || (t = router_lookup(d, &r)) == NULL || t->closing)
		return NULL;
	return t;
}

/* ---- calls answered here ---- */

#define PENDING_DEFAULT_MS 60000 /* a caller that did not say how long it waits */

/* Endpoint t has call cref (made on the node the ref names) to answer. */
static void router_pending_add(struct daemon *d, struct session *t, const char *cref,
                               const char *target, uint32_t timeout_ms)
{
	struct pending *p;
	struct ref r;

	if (ref_parse(cref, &r) < 0)
		return;
	p = xcalloc(1, sizeof(*p));
	p->sid = t->id;
	snprintf(p->node, sizeof(p->node), "%s", r.node);
	snprintf(p->target, sizeof(p->target), "%s", target);
	p->expires = daemon_now_ms() + (timeout_ms ? timeout_ms : PENDING_DEFAULT_MS);
	free(strmap_put(&d->router->pending, cref, p));
}

static void router_call_done(struct daemon *d, struct call *c, PartisanIpc__Error err,
                             const char *msg);

/* A call of this node ended with err (OK: a reply). */
static void router_call_counted(struct daemon *d, PartisanIpc__Error err)
{
	d->stats.calls[(size_t)err < DAEMON_CALL_RESULTS ? (size_t)err : 0]++;
}

/* Drop what is pending for session sid (0: none), for node (NULL: none),
 * or has expired by now (0: never); when the callee went away before
 * replying, fail its caller's call with ENOPROC. */
static void router_pending_sweep(struct daemon *d, uint64_t sid, const char *node, uint64_t now)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&d->router->pending, &i, &k, &v);) {
		struct pending *p = v;
		bool gone = sid && p->sid == sid;
		struct call *c;

		if (!gone && !(node && strcmp(p->node, node) == 0) && !(now && now >= p->expires))
			continue;
		if (gone && strcmp(p->node, d->self->name) != 0)
			router_noproc(d, p->node, k, p->target);
		else if (gone && (c = strmap_get(&d->router->calls, k)) != NULL)
			router_call_done(d, c, PARTISAN_IPC__ERROR__ENOPROC,
			                 "the endpoint went away before replying");
		strmap_del(&d->router->pending, k);
		free(p);
	}
}

/* Is data on a monotonic channel (only the latest counts: shed, never
 * pushed back)? */
static bool router_monotonic(const struct daemon *d, const char *channel)
{
	return d->cfg->channels[config_channel_index(d->cfg, channel)].monotonic;
}

/* Give data to endpoint t (big: see router_push_message) and push back on
 * whoever fed it if t's queue is full. */
static void router_hand(struct daemon *d, const char *from, struct session *t,
                        const PartisanPeer__Data *data, struct evbuffer *big)
{
	if (router_monotonic(d, data->channel) && !(data->has_ack_id && data->ack_id) &&
	    ipc_queued(t) > d->cfg->session_queue_bytes) {
		d->stats.dropped_monotonic++; /* a full receiver: shed, as the sender's link does */
		return;
	}
	if (data->call_ref && !(data->has_is_reply && data->is_reply))
		router_pending_add(d, t, data->call_ref, data->to, data->call_timeout_ms);
	router_push_message(t, data->from, data->to, &data->payload, data->call_ref, data->channel,
	                    big);
	if (strcmp(from, d->self->name) == 0)
		router_backpressure(t, d->cur_sender, NULL, NULL);
	else
		router_backpressure(t, NULL, from, data);
}

/* Hand data to its endpoint here (now in order, for causal messages). */
static void router_deliver(void *arg, const char *from, const PartisanPeer__Data *data)
{
	struct daemon *d = arg;
	struct session *t = router_target(d, data);

	if (t == NULL) {
		d->stats.dropped_no_proc++;
		if (data->call_ref && strcmp(from, d->self->name) != 0)
			router_noproc(d, from, data->call_ref, data->to);
		return;
	}
	router_hand(d, from, t, data, NULL);
}

/* ---- counters ---- */

static void router_count_out(struct daemon *d, const char *channel)
{
	d->stats.messages_out++;
	d->stats.chan[config_channel_index(d->cfg, channel)].messages_out++;
}

static void router_count_in(struct daemon *d, const char *channel)
{
	d->stats.messages_in++;
	d->stats.chan[config_channel_index(d->cfg, channel)].messages_in++;
}

/* ---- transitive routing ---- */

/* Remember a relayed message; false if it was seen already. */
static bool router_relay_mark(struct router *r, const char *origin, uint64_t id)
{
	char key[300];

	snprintf(key, sizeof(key), "%s/%llu", origin, (unsigned long long)id);
	if (strmap_get(&r->relay_seen, key))
		return false;
	if (r->relay_ring[r->relay_pos]) {
		strmap_del(&r->relay_seen, r->relay_ring[r->relay_pos]);
		free(r->relay_ring[r->relay_pos]);
	}
	r->relay_ring[r->relay_pos] = xstrdup(key);
	r->relay_pos = (r->relay_pos + 1) % RELAY_SEEN;
	strmap_put(&r->relay_seen, key, (void *)1);
	return true;
}

/* Flood data (ttl and relay id set) to every connected neighbor but `from`:
 * the overlay carries it to a node we have no link to. Returns how many
 * neighbors took it. */
static size_t router_relay(struct daemon *d, const char *from, PartisanPeer__Data *data)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	const char **up;
	size_t n = peer_up_nodes(d, &up), sent = 0;

	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DATA;
	m.data = data;
	for (size_t i = 0; i < n; i++)
		if ((from == NULL || strcmp(up[i], from) != 0) &&
		    peer_send_msg(d, up[i], NULL, data->from, strlen(data->from), &m) >= 0)
			sent++;
	free(up);
	return sent;
}

/* A transitive send that found no direct link: start a relay. */
static PartisanIpc__Error router_relay_start(struct session *s, PartisanPeer__Data *data)
{
	struct daemon *d = s->d;

	data->has_ttl = data->has_relay_id = 1;
	data->ttl = RELAY_TTL;
	data->relay_id = ++d->router->next_relay;
	data->origin = d->self->name;
	router_relay_mark(d->router, data->origin, data->relay_id);
	if (router_relay(d, NULL, data) == 0)
		return PARTISAN_IPC__ERROR__ENOCONNECTION;
	router_count_out(d, data->channel);
	return PARTISAN_IPC__ERROR__OK;
}

/* ---- sending ---- */

static int router_parse_to(struct session *s, uint64_t id, const char *to, struct ref *r)
{
	if (ref_parse(to, r) < 0 || r->kind == REF_REF) {
		ipc_respond_error(s, id, PARTISAN_IPC__ERROR__EINVAL, "bad target ref \"%s\"", to);
		return -1;
	}
	return 0;
}

/* An acknowledged send: kept and retransmitted until the node acknowledges
 * it, even across reconnects; only a node outside the membership fails. */
static PartisanIpc__Error router_forward_acked(struct session *s, const struct ref *r,
                                               PartisanPeer__Data *data, const void *key,
                                               size_t keylen)
{
	struct daemon *d = s->d;
	struct core_env env = daemon_env(d);

	if (!d->mops->is_member(d->mgr, r->node) && !peer_is_up(d, r->node))
		return PARTISAN_IPC__ERROR__ENOCONNECTION;
	ack_track(d->ack, r->node, data, peer_channel_name(d, data->channel), key, keylen, s->id,
	          &env, &d->acts);
	daemon_drain(d);
	router_count_out(d, data->channel);
	if (ack_outstanding(d->ack) >= d->cfg->max_outstanding_acks)
		router_pause_session(s);
	return PARTISAN_IPC__ERROR__OK;
}

/* client_server: a client has no links to other clients (Partisan's star:
 * clients talk to servers), so only a transitive send reaches one. */
static bool router_client_to_client(struct daemon *d, const char *node)
{
	const struct node_spec *s;

	if (d->cfg->manager != MANAGER_CLIENT_SERVER || !d->self->client ||
	    d->mops->spec_of == NULL)
		return false;
	s = d->mops->spec_of(d->mgr, node);
	return s != NULL && s->client;
}

static const char *router_why(struct daemon *d, const char *node, PartisanIpc__Error err)
{
	if (err == PARTISAN_IPC__ERROR__EPARTITION)
		return "behind an injected partition";
	if (router_client_to_client(d, node))
		return "not connected: a client reaches another client only through a server; send "
		       "it transitive";
	return "not connected";
}

/* Send data to r's node once, fire and forget. */
static PartisanIpc__Error router_transmit(struct session *s, const struct ref *r,
                                          PartisanPeer__Data *data, const void *key, size_t keylen,
                                          struct evbuffer *big)
{
	struct daemon *d = s->d;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	enum peer_send_result res;

	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DATA;
	m.data = data;
	res = big ? peer_send_data_big(d, r->node, data->channel, key, keylen, data, big)
	          : peer_send_msg(d, r->node, data->channel, key, keylen, &m);
	if (res == PEER_NOT_CONNECTED)
		return PARTISAN_IPC__ERROR__ENOCONNECTION;
	if (res == PEER_PARTITIONED)
		return PARTISAN_IPC__ERROR__EPARTITION;
	if (res >= 0)
		router_count_out(d, data->channel);
	if (res == PEER_SENT_FULL) {
		/* Sent, but push back: stop reading this client until the link drains. */
		router_pause_session(s);
		return PARTISAN_IPC__ERROR__EAGAIN;
	}
	return PARTISAN_IPC__ERROR__OK;
}

/* Is the endpoint `to` (on another node) full, as it told us? */
static bool router_flow_blocked(struct daemon *d, const char *to)
{
	struct flow_block *fb = strmap_get(&d->router->flow, to);

	return fb && daemon_now_ms() < fb->expires_ms;
}

/* s just sent to `to`: if that endpoint said it is full, s is not read
 * until it has room (one message past the block per sending session). */
static void router_flow_check(struct session *s, const char *to)
{
	struct rt_session *rs = s->rt;

	if (rs == NULL || !router_flow_blocked(s->d, to))
		return;
	if (rs->wait_to == NULL)
		rs->wait_to = xstrdup(to);
	router_pause_session(s);
}

/* Send a Data frame to r's node. Returns an ipc error code. big: see
 * router_push_message; only for a plain send (router_send_big). */
static PartisanIpc__Error router_forward_data(struct session *s, const struct ref *r,
                                              const char *to, const ProtobufCBinaryData *payload,
                                              const PartisanIpc__SendOpts *opts,
                                              const char *call_ref, uint32_t call_timeout_ms,
                                              struct evbuffer *big)
{
	struct daemon *d = s->d;
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	const char *channel = opts ? opts->channel : NULL;
	const void *key = s->ref;
	size_t keylen = strlen(s->ref);

	bool transitive = opts && opts->has_transitive && opts->transitive;

	if (!transitive && router_client_to_client(d, r->node))
		return PARTISAN_IPC__ERROR__ENOCONNECTION; /* fail fast, with router_why's hint */
	if (opts && opts->has_partition_key && opts->partition_key.len) {
		key = opts->partition_key.data;
		keylen = opts->partition_key.len;
	}
	data.from = s->ref;
	data.to = (char *)to;
	data.payload = *payload;
	data.call_ref = (char *)call_ref;
	data.has_call_timeout_ms = call_ref != NULL;
	data.call_timeout_ms = call_timeout_ms;
	data.channel = (char *)channel;
	if (opts && opts->causal_label && opts->causal_label[0]) {
		struct causal_stamp *st;
		PartisanIpc__Error err;

		data.causal_label = opts->causal_label;
		st = causal_stamp(d->causal, r->node, &data);
		err = opts->has_ack && opts->ack ? router_forward_acked(s, r, &data, key, keylen)
		                                 : router_transmit(s, r, &data, key, keylen, NULL);
		causal_stamp_release(st);
		return err;
	}
	if (opts && opts->has_ack && opts->ack)
		return router_forward_acked(s, r, &data, key, keylen);
	if (transitive && !peer_is_up(d, r->node))
		return router_relay_start(s, &data);
	return router_transmit(s, r, &data, key, keylen, big);
}

static PartisanIpc__Error router_forward(struct session *s, const struct ref *r, const char *to,
                                         const ProtobufCBinaryData *payload,
                                         const PartisanIpc__SendOpts *opts, const char *call_ref,
                                         uint32_t call_timeout_ms, struct evbuffer *big)
{
	PartisanIpc__Error err =
	    router_forward_data(s, r, to, payload, opts, call_ref, call_timeout_ms, big);

	if ((err == PARTISAN_IPC__ERROR__OK || err == PARTISAN_IPC__ERROR__EAGAIN) &&
	    !router_monotonic(s->d, opts ? opts->channel : NULL))
		router_flow_check(s, to);
	return err;
}

/* A send to an endpoint on this node: no network, same ordering rules. */
static void router_send_local(struct session *s, const PartisanIpc__Send *snd)
{
	struct daemon *d = s->d;
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	struct causal_stamp *st = NULL;

	data.from = s->ref;
	data.to = snd->to;
	data.payload = snd->payload;
	data.channel = snd->opts ? snd->opts->channel : NULL;
	d->cur_sender = s;
	if (snd->opts && snd->opts->causal_label && snd->opts->causal_label[0]) {
		data.causal_label = snd->opts->causal_label;
		st = causal_stamp(d->causal, d->self->name, &data);
		causal_receive(d->causal, d->self->name, &data, router_deliver, d);
		causal_stamp_release(st);
	} else {
		router_deliver(d, d->self->name, &data);
	}
	d->cur_sender = NULL;
}

static void router_send_remote(struct session *s, const PartisanIpc__Request *rq,
                               const struct ref *r, struct evbuffer *big);

struct holders {
	const char **nodes;
	size_t n;
};

static void router_holder_add(void *arg, const char *node, const char *name, const char *ref)
{
	struct holders *h = arg;

	h->nodes = xrealloc(h->nodes, (h->n + 1) * sizeof(*h->nodes));
	h->nodes[h->n++] = node;
}

/* opts.anywhere (partisan_send_name / call_name with no node): the name r
 * wherever it is held, here first, else at a holder picked at random. r
 * and to become the holder's name ref, and *opts a copy that goes
 * transitive when the holder is not linked to us. Returns false (after
 * answering ENOPROC) when nobody holds it. */
static bool router_anywhere(struct session *s, uint64_t id, struct ref *r, char *to, size_t tolen,
                            const PartisanIpc__SendOpts **opts, PartisanIpc__SendOpts *copy)
{
	struct daemon *d = s->d;
	struct holders h = {0};

	if (*opts == NULL || !((*opts)->has_anywhere && (*opts)->anywhere) || r->kind != REF_NAME ||
	    strmap_get(&d->router->names, r->id))
		return true;
	registry_each(d->router->remote, r->id, router_holder_add, &h);
	if (h.n == 0) {
		ipc_respond_error(s, id, PARTISAN_IPC__ERROR__ENOPROC, "%s: nobody holds that name",
		                  r->id);
		return false;
	}
	snprintf(r->node, sizeof(r->node), "%s", h.nodes[rng_next(&d->rng) % h.n]);
	free(h.nodes);
	ref_make(REF_NAME, r->node, r->id, to, tolen);
	*copy = **opts;
	copy->has_transitive = 1;
	copy->transitive = copy->transitive || !peer_is_up(d, r->node);
	*opts = copy;
	return true;
}

void router_send(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	const PartisanIpc__Send *snd = rq->send;
	PartisanIpc__Request rq2;
	PartisanIpc__Send snd2;
	PartisanIpc__SendOpts opts2;
	char to[sizeof("partisan:name::") + REF_NODE_MAX + REF_ID_MAX];
	struct ref r;

	if (router_parse_to(s, rq->id, snd->to, &r) < 0)
		return;
	snd2 = *snd;
	if (!router_anywhere(s, rq->id, &r, to, sizeof(to),
	                     (const PartisanIpc__SendOpts **)&snd2.opts, &opts2))
		return;
	if (snd2.opts != snd->opts) {
		snd2.to = to;
		rq2 = *rq;
		rq2.send = &snd2;
		rq = &rq2;
		snd = &snd2;
	}
	if (strcmp(r.node, d->self->name) == 0) {
		router_send_local(s, snd);
		if (!rq->quiet)
			ipc_respond_ok(s, rq->id);
		return;
	}
	router_send_remote(s, rq, &r, NULL);
}

static void router_send_remote(struct session *s, const PartisanIpc__Request *rq,
                               const struct ref *r, struct evbuffer *big)
{
	const PartisanIpc__Send *snd = rq->send;
	PartisanIpc__Error err =
	    router_forward(s, r, snd->to, &snd->payload, snd->opts, NULL, 0, big);

	if (err == PARTISAN_IPC__ERROR__OK || err == PARTISAN_IPC__ERROR__EAGAIN) {
		/* EAGAIN here means "sent, but slow down": the session is paused. */
		if (!rq->quiet)
			ipc_respond_ok(s, rq->id);
		return;
	}
	ipc_respond_error(s, rq->id, err, "%s: %s", r->node, router_why(s->d, r->node, err));
}

bool router_send_big(struct session *s, const PartisanIpc__Request *rq, struct evbuffer *big)
{
	const PartisanIpc__SendOpts *o = rq->send->opts;
	struct ref r;

	/* Only a plain remote send: acknowledged and causal sends keep the
	 * payload, a transitive one may relay it, a local one delivers it. */
	if (ref_parse(rq->send->to, &r) < 0 || r.kind == REF_REF ||
	    strcmp(r.node, s->d->self->name) == 0 ||
	    (o && ((o->has_ack && o->ack) || (o->causal_label && o->causal_label[0]) ||
	           (o->has_transitive && o->transitive) || (o->has_anywhere && o->anywhere))))
		return false;
	router_send_remote(s, rq, &r, big);
	return true;
}

/* ---- calls ---- */

static void router_call_done(struct daemon *d, struct call *c, PartisanIpc__Error err,
                             const char *msg)
{
	router_call_counted(d, err);
	ipc_respond_error(c->s, c->id, err, "%s", msg);
	strmap_del(&d->router->calls, c->cref);
	free(c);
}

void router_call(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	const PartisanIpc__Call *cl = rq->call;
	PartisanIpc__Call cl2;
	PartisanIpc__SendOpts opts2;
	char to[sizeof("partisan:name::") + REF_NODE_MAX + REF_ID_MAX];
	struct call *c;
	struct ref r;
	PartisanIpc__Error err;

	if (router_parse_to(s, rq->id, cl->to, &r) < 0)
		return;
	cl2 = *cl;
	if (!router_anywhere(s, rq->id, &r, to, sizeof(to),
	                     (const PartisanIpc__SendOpts **)&cl2.opts, &opts2))
		return;
	if (cl2.opts != cl->opts) {
		cl2.to = to;
		cl = &cl2;
	}
	c = xcalloc(1, sizeof(*c));
	router_new_ref(d, c->cref, sizeof(c->cref));
	c->s = s;
	c->id = rq->id;
	c->deadline = daemon_now_ms() + cl->timeout_ms;
	snprintf(c->node, sizeof(c->node), "%s", r.node);
	if (strcmp(r.node, d->self->name) == 0) {
		struct session *t = router_lookup(d, &r);

		if (t == NULL) {
			free(c);
			d->stats.dropped_no_proc++;
			router_call_counted(d, PARTISAN_IPC__ERROR__ENOPROC);
			ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOPROC,
			                  "%s: no such endpoint", cl->to);
			return;
		}
		strmap_put(&d->router->calls, c->cref, c);
		router_pending_add(d, t, c->cref, cl->to, cl->timeout_ms);
		router_push_message(t, s->ref, cl->to, &cl->payload, c->cref, NULL, NULL);
		return;
	}
	err = router_forward(s, &r, cl->to, &cl->payload, cl->opts, c->cref, cl->timeout_ms, NULL);
	if (err != PARTISAN_IPC__ERROR__OK && err != PARTISAN_IPC__ERROR__EAGAIN) {
		free(c);
		router_call_counted(d, err);
		ipc_respond_error(s, rq->id, err, "%s: %s", r.node, router_why(s->d, r.node, err));
		return;
	}
	strmap_put(&d->router->calls, c->cref, c);
}

/* A reply reached this node for call ref cref. */
static void router_call_reply(struct daemon *d, const char *cref, const char *from,
                              const ProtobufCBinaryData *payload)
{
	struct call *c = strmap_get(&d->router->calls, cref);
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__CallReply cr = PARTISAN_IPC__CALL_REPLY__INIT;

	if (c == NULL)
		return; /* too late: the caller timed out; never a stray message */
	cr.payload = *payload;
	cr.from = (char *)from;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_CALL;
	r.call = &cr;
	router_call_counted(d, PARTISAN_IPC__ERROR__OK);
	ipc_respond(c->s, c->id, &r);
	strmap_del(&d->router->calls, cref);
	free(c);
}

void router_reply(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	const PartisanIpc__Reply *rp = rq->reply;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	struct ref cref, to;

	if (ref_parse(rp->call_ref, &cref) < 0 || cref.kind != REF_REF ||
	    ref_parse(rp->to, &to) < 0) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "reply: bad refs");
		return;
	}
	free(strmap_del(&d->router->pending, rp->call_ref));
	if (strcmp(cref.node, d->self->name) == 0) {
		router_call_reply(d, rp->call_ref, s->ref, &rp->payload);
	} else {
		data.from = s->ref;
		data.to = rp->to;
		data.payload = rp->payload;
		data.call_ref = rp->call_ref;
		data.has_is_reply = data.is_reply = 1;
		m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DATA;
		m.data = &data;
		/* The caller's node may be one we have no link to (a transitive
		 * call): then the reply takes the overlay too. */
		if (peer_send_msg(d, cref.node, NULL, rp->to, strlen(rp->to), &m) ==
		        PEER_NOT_CONNECTED &&
		    router_relay_start(s, &data) != PARTISAN_IPC__ERROR__OK) {
			if (!rq->quiet)
				ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOCONNECTION,
				                  "%s: not connected", cref.node);
			return;
		}
	}
	if (!rq->quiet)
		ipc_respond_ok(s, rq->id);
}

/* ---- monitors ---- */

void router_monitor(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	const char *target = rq->monitor->target;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Monitor pm = PARTISAN_PEER__MONITOR__INIT;
	char mref[300];
	struct ref r;

	if (router_parse_to(s, rq->id, target, &r) < 0)
		return;
	router_new_ref(d, mref, sizeof(mref));
	router_respond_ref(s, rq->id, mref);
	if (strcmp(r.node, d->self->name) == 0) {
		struct session *t = router_lookup(d, &r);

		if (t == NULL)
			router_push_down(s, mref, target, "noproc");
		else
			monitors_add_local(d->router->monitors, mref, s->id, t->id, target);
		return;
	}
	if (!peer_is_up(d, r.node)) {
		router_push_down(s, mref, target, "noconnection");
		return;
	}
	monitors_add_out(d->router->monitors, mref, s->id, target, r.node);
	pm.mref = mref;
	pm.watcher = s->ref;
	pm.target = (char *)target;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_MONITOR;
	m.monitor = &pm;
	router_send_peer(d, r.node, &m);
}

void router_demonitor(struct session *s, const PartisanIpc__Request *rq)
{
	struct router *r = s->d->router;

	/* Demonitoring a monitor that already fired is not an error (Erlang). */
	monitors_demonitor(r->monitors, rq->demonitor->mref, s->id, &r->notes);
	router_notes(s->d);
	ipc_respond_ok(s, rq->id);
}

void router_monitor_node(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	const char *node = rq->monitor_node->node;
	bool flag = rq->monitor_node->flag;

	if (!node_name_valid(node)) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "bad node name \"%s\"",
		                  node);
		return;
	}
	ipc_respond_ok(s, rq->id);
	if (flag && !peer_is_up(d, node))
		router_push_node(s, node, false, "noconnection");
	else
		monitors_watch_node(d->router->monitors, s->id, node, flag);
}

void router_monitor_nodes(struct session *s, const PartisanIpc__Request *rq)
{
	struct rt_session *rs = s->rt;

	rs->monitor_nodes = rq->monitor_nodes->flag;
	rs->with_reason = rq->monitor_nodes->has_with_reason && rq->monitor_nodes->with_reason;
	ipc_respond_ok(s, rq->id);
}

/* Registry entries being collected for a reply, grouped by name. */
struct reg_reply {
	PartisanIpc__RegistryReply rr;
	struct strmap index; /* name -> entry index + 1 */
};

static void router_reg_add(void *arg, const char *node, const char *name, const char *ref)
{
	struct reg_reply *rp = arg;
	uintptr_t at = (uintptr_t)strmap_get(&rp->index, name);
	PartisanIpc__RegistryEntry *e;

	if (at == 0) {
		e = xmalloc(sizeof(*e));
		partisan_ipc__registry_entry__init(e);
		e->name = (char *)name;
		rp->rr.entries = xrealloc(rp->rr.entries, (rp->rr.n_entries + 1) * sizeof(e));
		rp->rr.entries[rp->rr.n_entries++] = e;
		strmap_put(&rp->index, name, (void *)(uintptr_t)rp->rr.n_entries);
	} else {
		e = rp->rr.entries[at - 1];
	}
	e->refs = xrealloc(e->refs, (e->n_refs + 1) * sizeof(char *));
	e->refs[e->n_refs++] = (char *)ref;
}

void router_registry(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	struct reg_reply rp;
	const char *want = rq->registry->name;
	const char *k;
	void *v;

	memset(&rp, 0, sizeof(rp));
	partisan_ipc__registry_reply__init(&rp.rr);
	strmap_init(&rp.index);
	for (size_t i = 0; strmap_next(&d->router->names, &i, &k, &v);)
		if (want[0] == '\0' || strcmp(want, k) == 0)
			router_reg_add(&rp, d->self->name, k, ((struct session *)v)->ref);
	registry_each(d->router->remote, want, router_reg_add, &rp);
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_REGISTRY;
	r.registry = &rp.rr;
	ipc_respond(s, rq->id, &r);
	for (size_t i = 0; i < rp.rr.n_entries; i++) {
		free(rp.rr.entries[i]->refs);
		free(rp.rr.entries[i]);
	}
	free(rp.rr.entries);
	strmap_free(&rp.index);
}

size_t router_endpoints(struct daemon *d, PartisanIpc__Endpoint ***out)
{
	size_t n = 0;

	*out = xcalloc(ipc_count(d) + 1, sizeof(**out));
	for (struct session *s = ipc_first(d); s; s = ipc_next(s)) {
		struct rt_session *rs = s->rt;
		PartisanIpc__Endpoint *e;

		if (rs == NULL || s->closing)
			continue;
		e = xmalloc(sizeof(*e));
		partisan_ipc__endpoint__init(e);
		e->ref = s->ref;
		e->n_names = rs->nnames;
		e->names = rs->names;
		(*out)[n++] = e;
	}
	return n;
}

void router_endpoints_free(PartisanIpc__Endpoint **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- broadcast ---- */

static bool router_topic_valid(const char *topic)
{
	size_t n = strlen(topic);

	return n > 0 && n <= 255 && !daemon_topic_internal(topic);
}

void router_subscribe(struct session *s, const PartisanIpc__Request *rq)
{
	struct rt_session *rs = s->rt;
	const char *topic = rq->subscribe->topic;

	if (!router_topic_valid(topic)) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "subscribe: bad topic");
		return;
	}
	strmap_put(&rs->topics, topic, s);
	ipc_respond_ok(s, rq->id);
}

void router_unsubscribe(struct session *s, const PartisanIpc__Request *rq)
{
	struct rt_session *rs = s->rt;

	if (strmap_del(&rs->topics, rq->unsubscribe->topic) == NULL)
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOENT, "not subscribed to %s",
		                  rq->unsubscribe->topic);
	else
		ipc_respond_ok(s, rq->id);
}

/* A broadcast cannot hold back the cluster for one subscriber that does not
 * read: past session_queue_bytes, broadcasts to it are shed (counted, and
 * logged once each time it falls behind) until it drains. */
static bool router_broadcast_shed(struct session *s)
{
	struct rt_session *rs = s->rt;

	if (ipc_queued(s) <= s->d->cfg->session_queue_bytes) {
		rs->shedding = false;
		return false;
	}
	if (!rs->shedding)
		log_warnx("router",
		          "session %llu does not read: broadcasts to it are shed until it drains",
		          (unsigned long long)s->id);
	rs->shedding = true;
	s->d->stats.broadcasts_shed++;
	return true;
}

/* Plumtree delivers a broadcast here: every subscriber of its topic gets it. */
void router_broadcast_deliver(struct daemon *d, const char *topic, const char *origin,
                              const uint8_t *payload, size_t len)
{
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__BroadcastEvent be = PARTISAN_IPC__BROADCAST_EVENT__INIT;

	if (daemon_topic_internal(topic)) {
		daemon_internal_broadcast(d, topic, origin, payload, len);
		return;
	}
	be.topic = (char *)topic;
	be.from = (char *)origin;
	be.payload.data = (uint8_t *)payload;
	be.payload.len = len;
	ev.body_case = PARTISAN_IPC__EVENT__BODY_BROADCAST;
	ev.broadcast = &be;
	for (struct session *s = ipc_first(d); s; s = ipc_next(s)) {
		struct rt_session *rs = s->rt;

		if (rs == NULL || s->closing || !strmap_get(&rs->topics, topic))
			continue;
		if (router_broadcast_shed(s))
			continue;
		ipc_push_event(s, &ev);
	}
}

void router_broadcast(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	struct core_env env = daemon_env(d);
	const PartisanIpc__Broadcast *b = rq->broadcast;

	if (!router_topic_valid(b->topic)) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "broadcast: bad topic");
		return;
	}
	node_broadcast(d->node, b->topic, b->payload.data, b->payload.len, &env, &d->acts);
	daemon_drain(d);
	if (!rq->quiet)
		ipc_respond_ok(s, rq->id);
}

/* ---- from the network ---- */

/* A relayed message for another node: straight to it if we have a link,
 * else on through the overlay while hops remain. */
static void router_forward_relay(struct daemon *d, const char *from, const PartisanPeer__Data *in,
                                 const char *target)
{
	PartisanPeer__Data data = *in;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;

	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DATA;
	m.data = &data;
	if (peer_send_msg(d, target, NULL, data.from, strlen(data.from), &m) >= 0)
		return;
	if (data.ttl <= 1)
		return;
	data.ttl--;
	router_relay(d, from, &data);
}

static int router_on_data(struct daemon *d, const char *from, const PartisanPeer__Data *data,
                          const char **why)
{
	struct ref r;

	if (ref_parse(data->to, &r) < 0)
		return *why = "data: bad target ref", -1;
	if (data->has_relay_id) {
		if (!data->origin || !router_relay_mark(d->router, data->origin, data->relay_id))
			return 0; /* a relayed message seen already: no loops */
		if (strcmp(r.node, d->self->name) != 0) {
			router_forward_relay(d, from, data, r.node);
			return 0;
		}
	}
	if (data->has_is_reply && data->is_reply) {
		if (data->call_ref)
			router_call_reply(d, data->call_ref, data->from, &data->payload);
		return 0;
	}
	if (router_hold(d, from, data))
		return 0; /* kept until its target is held here, or given up */
	if (data->has_ack_id && data->ack_id && !ack_on_data(d->ack, from, data))
		return 0; /* a retransmission we already delivered */
	router_count_in(d, data->channel);
	if (data->causal_label && data->causal_label[0])
		causal_receive(d->causal, from, data, router_deliver, d);
	else
		router_deliver(d, from, data);
	return 0;
}

bool router_data_big(struct daemon *d, const char *from, const PartisanPeer__Data *data,
                     struct evbuffer *big)
{
	struct session *t;

	/* Only plain data for an endpoint here: replies, relayed and causal
	 * messages take other ways, and a drop is counted there. */
	if ((data->has_is_reply && data->is_reply) || data->has_relay_id ||
	    (data->causal_label && data->causal_label[0]) || (t = router_target(d, data)) == NULL ||
	    (router_acked(data) && hold_waiting(d->router->hold, from, data->to)))
		return false; /* (acked ones behind held ones wait with them) */
	if (data->has_ack_id && data->ack_id && !ack_on_data(d->ack, from, data))
		return true; /* a retransmission we already delivered */
	router_count_in(d, data->channel);
	router_hand(d, from, t, data, big);
	return true;
}

/* ---- acknowledged messages for targets nobody holds yet (hold.h) ---- */

static bool router_acked(const PartisanPeer__Data *data)
{
	return data->has_ack_id && data->ack_id && !(data->causal_label && data->causal_label[0]);
}

/* Keep an acknowledged message whose target no endpoint holds here, or
 * that must wait behind such messages. True when it was taken. */
static bool router_hold(struct daemon *d, const char *from, const PartisanPeer__Data *data)
{
	struct router *r = d->router;
	uint8_t stackbuf[1024], *buf;
	size_t len;
	enum hold_result hr;

	if (!router_acked(data) || ack_known(d->ack, from, data) ||
	    (!hold_waiting(r->hold, from, data->to) && router_target(d, data) != NULL))
		return false;
	len = partisan_peer__data__get_packed_size(data);
	buf = len <= sizeof(stackbuf) ? stackbuf : xmalloc(len);
	partisan_peer__data__pack(data, buf);
	hr = hold_push(r->hold, from, data->to, data->has_ack_epoch ? data->ack_epoch : 0,
	               data->ack_id, buf, len, daemon_now_ms() + d->cfg->ack_hold_ms);
	if (buf != stackbuf)
		free(buf);
	if (hr == HOLD_FULL) {
		log_warnx("router", "%s: no room to hold a message for %s: lost (noproc)", from,
		          data->to);
		d->stats.dropped_no_proc++;
		ack_give_up(d->ack, from, data);
	}
	return true;
}

static bool router_hold_ready(void *arg, const char *to)
{
	struct daemon *d = arg;
	struct session *t;
	struct ref r;

	return ref_parse(to, &r) == 0 && (t = router_lookup(d, &r)) != NULL && !t->closing;
}

static void router_hold_deliver(void *arg, const char *from, const uint8_t *buf, size_t len)
{
	struct daemon *d = arg;
	PartisanPeer__Data *data = partisan_peer__data__unpack(NULL, len, buf);
	struct session *t;

	if (data == NULL)
		return;
	if (ack_on_data(d->ack, from, data) && (t = router_target(d, data)) != NULL) {
		router_count_in(d, data->channel);
		router_hand(d, from, t, data, NULL);
	}
	partisan_peer__data__free_unpacked(data, NULL);
}

static void router_hold_expire(void *arg, const char *from, const uint8_t *buf, size_t len)
{
	struct daemon *d = arg;
	PartisanPeer__Data *data = partisan_peer__data__unpack(NULL, len, buf);

	if (data == NULL)
		return;
	log_info("router", "%s: nobody held %s for ack_hold_ms: message %llu lost (noproc)", from,
	         data->to, (unsigned long long)data->ack_id);
	d->stats.dropped_no_proc++;
	ack_give_up(d->ack, from, data);
	partisan_peer__data__free_unpacked(data, NULL);
}

/* Hand over what waited for a target now held; give up on what waited too
 * long. */
static void router_hold_sweep(struct daemon *d, uint64_t now)
{
	if (hold_count(d->router->hold) > 0)
		hold_sweep(d->router->hold, now, router_hold_ready, router_hold_deliver,
		           router_hold_expire, d);
}

static void router_on_monitor(struct daemon *d, const char *from, const PartisanPeer__Monitor *pm)
{
	struct session *t;
	struct ref r;

	if (ref_parse(pm->target, &r) < 0 || (t = router_lookup(d, &r)) == NULL || t->closing)
		router_send_down(d, from, pm->mref, pm->target, "noproc");
	else
		monitors_add_in(d->router->monitors, pm->mref, t->id, pm->target, from);
}

static void router_on_down(struct daemon *d, const char *from, const PartisanPeer__Down *dn)
{
	monitors_peer_down(d->router->monitors, dn->mref, from, dn->reason, &d->router->notes);
	router_notes(d);
}

int router_peer_msg(struct daemon *d, const char *from, const PartisanPeer__PeerMsg *m,
                    const char **why)
{
	struct call *c;

	switch (m->body_case) {
	case PARTISAN_PEER__PEER_MSG__BODY_DATA:
		return router_on_data(d, from, m->data, why);
	case PARTISAN_PEER__PEER_MSG__BODY_NOPROC:
		c = strmap_get(&d->router->calls, m->noproc->ref);
		if (c)
			router_call_done(d, c, PARTISAN_IPC__ERROR__ENOPROC, "no such endpoint");
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_MONITOR:
		router_on_monitor(d, from, m->monitor);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_DEMONITOR:
		monitors_peer_demonitor(d->router->monitors, m->demonitor->mref, from);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_DOWN:
		router_on_down(d, from, m->down);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_REGISTRY:
		return router_registry_from(d, from, m->registry, why);
	case PARTISAN_PEER__PEER_MSG__BODY_GRAPH_QUERY:
	case PARTISAN_PEER__PEER_MSG__BODY_GRAPH_REPORT:
		return graph_peer_msg(d, from, m);
	case PARTISAN_PEER__PEER_MSG__BODY_REGISTRY_DIGEST:
		if (m->registry_digest->hash != router_registry_hash(d))
			router_registry_send(d, from, true, true);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_ACK:
		router_on_ack(d, from, m->ack);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_FLOW:
		router_on_flow(d, from, m->flow);
		return 0;
	default:
		return *why = "unexpected message", -1;
	}
}

void router_node_up(struct daemon *d, const char *node)
{
	struct core_env env = daemon_env(d);

	ack_node_up(d->ack, node, &env, &d->acts);
	router_registry_greet(d, node);
	for (struct session *s = ipc_first(d); s; s = ipc_next(s)) {
		struct rt_session *rs = s->rt;

		if (rs && !s->closing && rs->monitor_nodes)
			router_push_node(s, node, true, NULL);
	}
}

void router_node_down(struct daemon *d, const char *node, const char *reason)
{
	const char *k;
	void *v;

	ack_node_down(d->ack, node);
	router_flow_tick(d, node, 0);
	router_flow_release_node(d, node, 0);
	/* A link we closed ourselves (a view change) says nothing of the node;
	 * any other end (a crash, a timeout, a restart) means its names went. */
	if (strcmp(reason, "disconnected") != 0)
		router_registry_gone(d, node, true);
	monitors_node_down(d->router->monitors, node, reason, &d->router->notes);
	router_notes(d);
	router_pending_sweep(d, 0, node, 0);
	for (size_t i = 0; strmap_next(&d->router->calls, &i, &k, &v);)
		if (strcmp(((struct call *)v)->node, node) == 0)
			router_call_done(d, v, PARTISAN_IPC__ERROR__ENOCONNECTION,
			                 "connection to the node was lost");
	for (struct session *s = ipc_first(d); s; s = ipc_next(s)) {
		struct rt_session *rs = s->rt;

		if (rs == NULL || s->closing)
			continue;
		if (rs->monitor_nodes)
			router_push_node(s, node, false, rs->with_reason ? reason : NULL);
	}
}

/* Tell each owner how many of its acknowledged messages to node are lost,
 * and why; frees loss. */
static void router_tell_lost(struct daemon *d, const char *node, struct ack_loss *loss, size_t n,
                             const char *reason)
{
	for (size_t i = 0; i < n; i++) {
		PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
		PartisanIpc__AckLost al = PARTISAN_IPC__ACK_LOST__INIT;
		struct session *s = router_session(d, loss[i].owner);

		log_warnx("router", "%s: %llu acknowledged messages will never be delivered (%s)",
		          node, (unsigned long long)loss[i].count, reason);
		if (s == NULL)
			continue;
		al.to = (char *)node;
		al.reason = (char *)reason;
		al.has_count = 1;
		al.count = loss[i].count;
		ev.body_case = PARTISAN_IPC__EVENT__BODY_ACK_LOST;
		ev.ack_lost = &al;
		ipc_push_event(s, &ev);
	}
	free(loss);
}

static void router_on_ack(struct daemon *d, const char *from, const PartisanPeer__Ack *ack)
{
	struct ack_loss *loss;
	size_t settled = ack_on_ack(d->ack, from, ack), n = ack_on_noproc(d->ack, from, ack, &loss);

	router_tell_lost(d, from, loss, n, "noproc");
	if ((settled || n) && ack_outstanding(d->ack) < d->cfg->max_outstanding_acks / 2)
		router_resume_senders(d);
}

void router_member_removed(struct daemon *d, const char *node)
{
	struct ack_loss *loss;
	size_t n;

	router_node_left(d, node);
	n = ack_node_removed(d->ack, node, &loss);
	router_tell_lost(d, node, loss, n, "node left the cluster");
}

void router_tick(struct daemon *d, uint64_t now)
{
	const char *k;
	void *v;
	struct core_env env = {.now_ms = now, .rng = &d->rng};

	router_hold_sweep(d, now); /* before ack_tick: its Acks go out with it */
	ack_tick(d->ack, &env, &d->acts);
	registry_tick(d->router->remote, now);
	graph_tick(d, now);
	router_registry_round(d, now);
	router_pending_sweep(d, 0, NULL, now);
	router_flow_tick(d, NULL, now);
	if (d->router->flow.len)
		router_flow_release_node(d, NULL, now);
	for (size_t i = 0; strmap_next(&d->router->calls, &i, &k, &v);)
		if (now >= ((struct call *)v)->deadline)
			router_call_done(d, v, PARTISAN_IPC__ERROR__ETIMEDOUT, "call timed out");
}

static void router_resume_session(struct session *s)
{
	if (s->paused && !s->closing) {
		s->paused = false;
		bufferevent_enable(s->bev, EV_READ);
		bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	}
}

/* Is s held back by a full endpoint elsewhere (router_flow_check)? Once
 * that one has room, no longer. */
static bool router_flow_waiting(struct session *s)
{
	struct rt_session *rs = s->rt;

	if (rs == NULL || rs->wait_to == NULL)
		return false;
	if (router_flow_blocked(s->d, rs->wait_to))
		return true;
	free(rs->wait_to);
	rs->wait_to = NULL;
	return false;
}

void router_resume_senders(struct daemon *d)
{
	for (struct session *s = ipc_first(d); s; s = ipc_next(s))
		if (s->paused && !s->closing && !router_flow_waiting(s))
			router_resume_session(s);
}

/* The full endpoint `to` has room (or its lease ran out, or its node went):
 * the sessions that waited on it are read again. */
static void router_flow_release(struct daemon *d, const char *to)
{
	struct flow_block *fb = strmap_del(&d->router->flow, to);

	if (fb) {
		free(fb->node);
		free(fb);
	}
	for (struct session *s = ipc_first(d); s; s = ipc_next(s)) {
		struct rt_session *rs = s->rt;

		if (rs && rs->wait_to && strcmp(rs->wait_to, to) == 0) {
			free(rs->wait_to);
			rs->wait_to = NULL;
			router_resume_session(s);
		}
	}
}

/* Every block from node (NULL: whose lease ran out by now) is over. */
static void router_flow_release_node(struct daemon *d, const char *node, uint64_t now)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&d->router->flow, &i, &k, &v);) {
		struct flow_block *fb = v;

		if (node ? strcmp(fb->node, node) == 0 : now >= fb->expires_ms)
			router_flow_release(d, k);
	}
}

/* Peer Flow from node `from` about one of its endpoints. */
static void router_on_flow(struct daemon *d, const char *from, const PartisanPeer__Flow *f)
{
	struct flow_block *fb;
	struct ref r;
	uint32_t lease = f->has_lease_ms ? f->lease_ms : ROUTER_FLOW_LEASE_MS;

	if (ref_parse(f->to, &r) < 0 || strcmp(r.node, from) != 0)
		return; /* only a node speaks for its own endpoints */
	if (!f->blocked) {
		router_flow_release(d, f->to);
		return;
	}
	if ((fb = strmap_get(&d->router->flow, f->to)) == NULL) {
		fb = xcalloc(1, sizeof(*fb));
		fb->node = xstrdup(from);
		strmap_put(&d->router->flow, f->to, fb);
	}
	fb->expires_ms =
	    daemon_now_ms() + (lease < ROUTER_FLOW_LEASE_MS ? lease : ROUTER_FLOW_LEASE_MS);
}

/* Sessions still full renew their blocks; the nodes told of a gone node's
 * blocks forget them. */
static void router_flow_tick(struct daemon *d, const char *gone, uint64_t now)
{
	for (struct session *s = ipc_first(d); s; s = ipc_next(s)) {
		struct rt_session *rs = s->rt;

		if (rs == NULL || rs->ntold == 0)
			continue;
		for (size_t i = 0; i < rs->ntold;) {
			struct flow_told *f = &rs->told[i];

			if (gone && strcmp(f->node, gone) == 0) {
				free(f->node);
				free(f->to);
				*f = rs->told[--rs->ntold];
				continue;
			}
			if (!gone && now >= f->renew_ms) {
				f->renew_ms = now + ROUTER_FLOW_RENEW_MS;
				router_flow_send(d, f->node, f->to, true);
			}
			i++;
		}
	}
}

void router_session_drained(struct session *s)
{
	if (s->rt == NULL)
		return;
	router_unblock(s);
	router_resume_senders(s->d);
}
