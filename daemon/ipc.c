/* ipc.c: the Unix-socket server for local programs (see ipc.h).
 *
 * Each frame from a client is one Request; the first must be hello. Bad
 * frames close that session only. Requests are dispatched through a table
 * indexed by the request's body case; the control-plane handlers (status,
 * members, join, ...) live here, messaging ones in router.c.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "ack.h"
#include "framer.h"
#include "graph.h"
#include "ipc.h"
#include "log.h"
#include "node.h"
#include "peer.h"
#include "router.h"
#include "security.h"
#include "splice.h"
#include "transport.h"
#include "wire.h"

#define IPC_IO_CHUNK (256 * 1024) /* most bytes one read or write moves */

/* A join without a timeout tries its contact this long (its client waits 30 s). */
#define JOIN_TRY_MS         20000
#define JOIN_BACKOFF_MIN_MS 100  /* the first retry of a contact that did not answer */
#define JOIN_BACKOFF_MAX_MS 1000 /* retries double up to this */

/* A join: its contact is dialled (probing), again with backoff while it
 * does not answer, until the join's timeout; then, with a timeout, it
 * waits for its node's connections (sync_join). */
struct pending_join {
	struct session *s;
	uint64_t id;
	char node[300];   /* empty until the address answered */
	char expect[300]; /* NAME given with the target, or empty */
	char ip[64];      /* the contact's address, for a retry */
	uint16_t port;
	uint64_t since;     /* when the join was asked for */
	uint64_t deadline;  /* 0: reply as soon as the join is made */
	uint64_t try_until; /* the contact is dialled again until then */
	uint64_t next_try;  /* 0: a dial is under way; else when to dial again */
	uint32_t backoff_ms;
	unsigned attempts;  /* dials of the contact so far */
	char last_why[200]; /* why the last dial failed */
	bool probing;       /* the contact has not answered yet */
	TAILQ_ENTRY(pending_join) entry;
};

struct ipc {
	struct evconnlistener *listener;
	struct event *resume_ev; /* ends a pause of accepting (accept_backoff_ms) */
	uint64_t pause_logged_ms;
	unsigned pauses; /* since the last line about them */
	char path[108];
	TAILQ_HEAD(, session) sessions;
	TAILQ_HEAD(, pending_join) joins;
	uint64_t next_id;
	uint64_t next_partition;
	struct strmap refused; /* "uid:gid" -> struct ipc_refusal, for the log */
};

static void ipc_refusals_clear(struct ipc *ipc)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&ipc->refused, &i, &k, &v);)
		free(v);
	strmap_free(&ipc->refused);
	strmap_init(&ipc->refused);
}

typedef void (*ipc_handler)(struct session *, const PartisanIpc__Request *);

static void ipc_session_close(struct session *s, const char *why);

/* ---- output ---- */

static void ipc_write(struct session *s, const PartisanIpc__ServerMsg *m)
{
	struct evbuffer *out;
	size_t len;
	uint8_t stackbuf[1024];

	if (s->closing && s->bev == NULL)
		return;
	out = bufferevent_get_output(s->bev);
	len = partisan_ipc__server_msg__get_packed_size(m);
	/* The first small frame of a turn on an idle session goes straight to
	 * the socket: no loop pass before a lone reply or message leaves. */
	if (s->turn != s->d->turn && len + FRAME_HEADER <= sizeof(stackbuf) &&
	    evbuffer_get_length(out) == 0) {
		ssize_t n;

		s->turn = s->d->turn;
		frame_put_header(stackbuf, (uint32_t)len);
		partisan_ipc__server_msg__pack(m, stackbuf + FRAME_HEADER);
		n = send((int)bufferevent_getfd(s->bev), stackbuf, FRAME_HEADER + len,
		         MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			n = 0; /* EAGAIN or a dead peer: the queue and the event loop see to it */
		if ((size_t)n < FRAME_HEADER + len)
			evbuffer_add(out, stackbuf + n, FRAME_HEADER + len - (size_t)n);
		return;
	}
	daemon_frame_add(out, &m->base);
}

void ipc_push_message_big(struct session *s, PartisanIpc__Message *msg, struct evbuffer *big)
{
	static const uint32_t wrap[] = {PARTISAN_IPC__SERVER_MSG__BODY_EVENT,
	                                PARTISAN_IPC__EVENT__BODY_MESSAGE};

	if (s->closing && s->bev == NULL)
		return;
	splice_frame_add(bufferevent_get_output(s->bev), wrap, 2, &msg->base, 3, big);
}

void ipc_respond(struct session *s, uint64_t id, PartisanIpc__Response *r)
{
	PartisanIpc__ServerMsg m = PARTISAN_IPC__SERVER_MSG__INIT;

	r->id = id;
	m.body_case = PARTISAN_IPC__SERVER_MSG__BODY_RESPONSE;
	m.response = r;
	ipc_write(s, &m);
}

void ipc_respond_ok(struct session *s, uint64_t id)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;

	ipc_respond(s, id, &r);
}

void ipc_respond_error(struct session *s, uint64_t id, PartisanIpc__Error err, const char *fmt, ...)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.has_error = 1;
	r.error = err;
	r.error_msg = msg;
	ipc_respond(s, id, &r);
}

void ipc_push_event(struct session *s, PartisanIpc__Event *ev)
{
	PartisanIpc__ServerMsg m = PARTISAN_IPC__SERVER_MSG__INIT;

	m.body_case = PARTISAN_IPC__SERVER_MSG__BODY_EVENT;
	m.event = ev;
	ipc_write(s, &m);
}

size_t ipc_queued(const struct session *s)
{
	return s->bev ? evbuffer_get_length(bufferevent_get_output(s->bev)) : 0;
}

struct session *ipc_first(struct daemon *d)
{
	return TAILQ_FIRST(&d->ipc->sessions);
}

struct session *ipc_next(struct session *s)
{
	return TAILQ_NEXT(s, entry);
}

size_t ipc_count(struct daemon *d)
{
	size_t n = 0;
	struct session *s;

	TAILQ_FOREACH(s, &d->ipc->sessions, entry)
	n++;
	return n;
}

void ipc_broadcast_stopped(struct daemon *d)
{
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__Empty e = PARTISAN_IPC__EMPTY__INIT;
	struct session *s;

	ev.body_case = PARTISAN_IPC__EVENT__BODY_STOPPED;
	ev.stopped = &e;
	TAILQ_FOREACH(s, &d->ipc->sessions, entry)
	if (s->hello_done && !s->closing)
		ipc_push_event(s, &ev);
}

/* ---- control-plane handlers ---- */

static void ipc_hello(struct session *s, const PartisanIpc__Request *rq)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__HelloReply h = PARTISAN_IPC__HELLO_REPLY__INIT;
	PartisanCommon__NodeSpec spec;

	if (s->hello_done) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EPROTO, "hello sent twice");
		return;
	}
	if (rq->hello->version != IPC_PROTOCOL_VERSION) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EVERSION,
		                  "daemon speaks IPC version %u, client %u", IPC_PROTOCOL_VERSION,
		                  rq->hello->version);
		ipc_session_close(s, "protocol version mismatch");
		return;
	}
	s->hello_done = true;
	node_spec_to_pb(s->d->self, &spec);
	h.version = IPC_PROTOCOL_VERSION;
	h.node = s->d->self->name;
	h.self = s->ref;
	h.spec = &spec;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_HELLO;
	r.hello = &h;
	ipc_respond(s, rq->id, &r);
	node_spec_pb_release(&spec);
	log_debug("ipc", "session %llu: hello from %s (pid %d, uid %u)", (unsigned long long)s->id,
	          rq->hello->client ? rq->hello->client : "?", (int)s->pid, (unsigned)s->uid);
}

static void ipc_spec(struct session *s, const PartisanIpc__Request *rq)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanCommon__NodeSpec spec;

	node_spec_to_pb(s->d->self, &spec);
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_SPEC;
	r.spec = &spec;
	ipc_respond(s, rq->id, &r);
	node_spec_pb_release(&spec);
}

/* SPEC members: each with its status and since when (as Unix time). */
static void ipc_member_add(struct daemon *d, PartisanIpc__MemberList *ml,
                           const struct node_spec *spec, const char *name, const char *want)
{
	uint64_t since, now = daemon_now_ms();
	enum member_state st = daemon_member_status(d, name, &since);
	const char *stname = daemon_member_state_name(st);
	PartisanCommon__NodeSpec *m;

	if (want && want[0] && strcmp(want, stname) != 0)
		return;
	m = xmalloc(sizeof(*m));
	if (spec) {
		node_spec_to_pb(spec, m);
	} else {
		partisan_common__node_spec__init(m);
		m->name = (char *)name;
	}
	m->status = (char *)stname;
	m->has_since_ms = 1;
	m->since_ms = daemon_realtime_ms() - (now > since ? now - since : 0);
	ml->members[ml->n_members++] = m;
}

static void ipc_members(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__MemberList ml = PARTISAN_IPC__MEMBER_LIST__INIT;
	const char *want = rq->members->status;
	const struct node_spec *const *v;
	const char **left = NULL;
	size_t n;

	if (want && want[0] && strcmp(want, "left") == 0) {
		n = daemon_left(d, &left);
		ml.members = xcalloc(n + 1, sizeof(*ml.members));
		for (size_t i = 0; i < n; i++)
			ipc_member_add(d, &ml, NULL, left[i], want);
	} else {
		n = d->mops->members(d->mgr, &v);
		ml.members = xcalloc(n + 1, sizeof(*ml.members));
		for (size_t i = 0; i < n; i++)
			ipc_member_add(d, &ml, v[i], v[i]->name, want);
	}
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_MEMBERS;
	r.members = &ml;
	ipc_respond(s, rq->id, &r);
	for (size_t i = 0; i < ml.n_members; i++) {
		node_spec_pb_release(ml.members[i]);
		free(ml.members[i]);
	}
	free(ml.members);
	free(left);
}

static void ipc_nodes(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__NodeList nl = PARTISAN_IPC__NODE_LIST__INIT;
	const char **up;
	size_t n = peer_up_nodes(d, &up);

	if (rq->nodes->has_all && rq->nodes->all) {
		/* "all": connected nodes and every other known member. */
		const struct node_spec *const *v;
		size_t m = d->mops->members(d->mgr, &v);

		up = xrealloc(up, (n + m + 1) * sizeof(*up));
		for (size_t i = 0; i < m; i++)
			if (strcmp(v[i]->name, d->self->name) != 0 && !peer_is_up(d, v[i]->name))
				up[n++] = v[i]->name;
	}
	nl.n_nodes = n;
	nl.nodes = (char **)up;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_NODES;
	r.nodes = &nl;
	ipc_respond(s, rq->id, &r);
	free(up);
}

static void ipc_conn_add(struct daemon *d, PartisanIpc__ConnList *cl, const char *node,
                         const char *channel, unsigned have, unsigned want)
{
	PartisanIpc__ConnInfo *ci = xmalloc(sizeof(*ci));

	partisan_ipc__conn_info__init(ci);
	ci->node = (char *)node;
	ci->channel = (char *)channel;
	ci->connected = have;
	ci->wanted = want;
	if (have > 0) {
		ci->transport = (char *)d->transport->name;
		ci->peer_subject = (char *)peer_conn_subject(d, node, channel);
	}
	cl->connections = xrealloc(cl->connections, (cl->n_connections + 1) * sizeof(ci));
	cl->connections[cl->n_connections++] = ci;
}

static void ipc_connections(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__ConnList cl = PARTISAN_IPC__CONN_LIST__INIT;
	const struct node_spec *const *v;
	size_t m = d->mops->members(d->mgr, &v);
	const char *only = rq->connections->node;

	for (size_t i = 0; i < m; i++) {
		if (strcmp(v[i]->name, d->self->name) == 0 || (only && strcmp(only, v[i]->name)))
			continue;
		for (size_t ch = 0; ch < d->cfg->nchannels; ch++) {
			unsigned have, want;

			peer_conn_count(d, v[i]->name, d->cfg->channels[ch].name, &have, &want);
			ipc_conn_add(d, &cl, v[i]->name, d->cfg->channels[ch].name, have, want);
		}
	}
	if (only && cl.n_connections == 0) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOENT, "%s: not a member", only);
		return;
	}
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_CONNECTIONS;
	r.connections = &cl;
	ipc_respond(s, rq->id, &r);
	for (size_t i = 0; i < cl.n_connections; i++)
		free(cl.connections[i]);
	free(cl.connections);
}

static void ipc_counters(struct daemon *d, PartisanIpc__Counters *c)
{
	const struct daemon_stats *st = &d->stats;
	const struct fd_stats *fs = fd_stats(node_fd(d->node));

	partisan_ipc__counters__init(c);
#define IPC_COUNT(field, value) (c->has_##field = 1, c->field = (value))
	IPC_COUNT(bytes_in, st->bytes_in);
	IPC_COUNT(bytes_out, st->bytes_out);
	IPC_COUNT(retransmits, ack_retransmits(d->ack));
	IPC_COUNT(dropped_no_proc, st->dropped_no_proc);
	IPC_COUNT(dropped_monotonic, st->dropped_monotonic);
	IPC_COUNT(peer_frames_bad, st->peer_frames_bad);
	IPC_COUNT(connections_opened, st->conns_opened);
	IPC_COUNT(connections_failed, st->conns_failed);
	IPC_COUNT(fd_timeouts, fs->timeouts);
	IPC_COUNT(fd_silent, fs->silent);
	IPC_COUNT(fd_suspicions, fs->suspicions);
	IPC_COUNT(messages_in, st->messages_in);
	IPC_COUNT(messages_out, st->messages_out);
#undef IPC_COUNT
}

static void ipc_status(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__StatusReply st = PARTISAN_IPC__STATUS_REPLY__INIT;
	PartisanIpc__Counters ct;
	PartisanCommon__NodeSpec spec;
	const struct node_spec *const *v;
	const char *const *view;
	const char **up;

	node_spec_to_pb(d->self, &spec);
	st.name = d->self->name;
	st.spec = &spec;
	st.manager = (char *)config_manager_name(d->cfg->manager);
	st.uptime_s = (daemon_now_ms() - d->start_ms) / 1000;
	st.members = (uint32_t)d->mops->members(d->mgr, &v);
	st.nodes = (uint32_t)peer_up_nodes(d, &up);
	free(up);
	st.n_endpoints = router_endpoints(d, &st.endpoints);
	st.has_outstanding_acks = 1;
	st.outstanding_acks = ack_outstanding(d->ack);
	st.has_dropped_no_proc = 1;
	st.dropped_no_proc = d->stats.dropped_no_proc;
	/* A view array lives only until the next call into the manager. */
	st.n_active_view = d->mops->active_view(d->mgr, &view);
	st.active_view = xcalloc(st.n_active_view + 1, sizeof(char *));
	if (st.n_active_view)
		memcpy(st.active_view, view, st.n_active_view * sizeof(char *));
	st.n_passive_view = d->mops->passive_view(d->mgr, &view);
	st.passive_view = (char **)view;
	st.cluster = d->cfg->cluster_name;
	st.security = (char *)security_mode(d);
	st.has_sessions = 1;
	st.sessions = (uint32_t)ipc_count(d);
	st.has_partitions = 1;
	st.partitions = (uint32_t)d->partitions.len;
	st.has_messages_in = st.has_messages_out = 1;
	st.messages_in = d->stats.messages_in;
	st.messages_out = d->stats.messages_out;
	ipc_counters(d, &ct);
	st.counters = &ct;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_STATUS;
	r.status = &st;
	ipc_respond(s, rq->id, &r);
	router_endpoints_free(st.endpoints, st.n_endpoints);
	free(st.active_view);
	node_spec_pb_release(&spec);
}

/* ---- join / leave ---- */

static void ipc_join_done(struct daemon *d, struct pending_join *j, PartisanIpc__Error err,
                          const char *msg)
{
	struct ipc *ipc = d->ipc;

	if (err == PARTISAN_IPC__ERROR__OK)
		ipc_respond_ok(j->s, j->id);
	else
		ipc_respond_error(j->s, j->id, err, "%s", msg);
	TAILQ_REMOVE(&ipc->joins, j, entry);
	free(j);
}

/* The contact did not answer: the join fails with this. */
static void ipc_join_no_answer(struct daemon *d, struct pending_join *j, PartisanIpc__Error err,
                               uint64_t now)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "no answer from %s within %llu ms (%u attempt%s; last: %s)",
	         peer_addr_text(j->ip, j->port), (unsigned long long)(now - j->since), j->attempts,
	         j->attempts == 1 ? "" : "s",
	         j->last_why[0] ? j->last_why : "its handshake had not finished");
	ipc_join_done(d, j, err, msg);
}

static void ipc_join_probed(struct daemon *d, void *arg, const struct node_spec *spec,
                            const char *why, bool final)
{
	struct pending_join *j = arg;
	uint64_t now = daemon_now_ms();

	if (spec == NULL) {
		snprintf(j->last_why, sizeof(j->last_why), "%s", why ? why : "connection failed");
		if (final) {
			ipc_join_done(d, j, PARTISAN_IPC__ERROR__ENOCONNECTION, j->last_why);
			return;
		}
		if (now + j->backoff_ms >= j->try_until && j->deadline == 0) {
			ipc_join_no_answer(d, j, PARTISAN_IPC__ERROR__ENOCONNECTION, now);
			return;
		}
		/* Busy, or not listening yet: dial again from the tick (not from
		 * inside the closing connection's callback). */
		if (j->attempts == 1)
			log_info("membership", "join %s: %s; retrying until it answers",
			         peer_addr_text(j->ip, j->port), j->last_why);
		else
			log_debug("membership", "join %s: %s; retrying in %u ms",
			          peer_addr_text(j->ip, j->port), j->last_why, j->backoff_ms);
		j->next_try = now + j->backoff_ms;
		j->backoff_ms = j->backoff_ms * 2 > JOIN_BACKOFF_MAX_MS ? JOIN_BACKOFF_MAX_MS
		                                                        : j->backoff_ms * 2;
		return;
	}
	j->probing = false;
	if (j->expect[0] && strcmp(j->expect, spec->name) != 0) {
		char msg[700];

		snprintf(msg, sizeof(msg), "%s answers at that address, not %s", spec->name,
		         j->expect);
		ipc_join_done(d, j, PARTISAN_IPC__ERROR__ENOENT, msg);
		return;
	}
	snprintf(j->node, sizeof(j->node), "%s", spec->name);
	daemon_join_spec(d, spec);
	if (j->deadline == 0)
		ipc_join_done(d, j, PARTISAN_IPC__ERROR__OK, NULL);
}

/* Start joining target for session s. */
static int ipc_start_join(struct daemon *d, struct session *s, uint64_t id, const char *target,
                          uint32_t timeout_ms, const char **why)
{
	struct pending_join *j = xcalloc(1, sizeof(*j));
	char ip[64];
	uint16_t port;
	int r = peer_parse_target(target, j->expect, sizeof(j->expect), ip, sizeof(ip), &port);

	if (r < 0) {
		free(j);
		return *why = r == -2 ? "cannot resolve its host"
		                      : "expected NAME@HOST:PORT or HOST:PORT",
		       -1;
	}
	j->s = s;
	j->id = id;
	j->since = daemon_now_ms();
	j->deadline = timeout_ms ? j->since + timeout_ms : 0;
	j->try_until = j->since + (timeout_ms ? timeout_ms : JOIN_TRY_MS);
	j->backoff_ms = JOIN_BACKOFF_MIN_MS;
	snprintf(j->ip, sizeof(j->ip), "%s", ip);
	j->port = port;
	j->probing = true;
	j->attempts = 1;
	TAILQ_INSERT_TAIL(&d->ipc->joins, j, entry);
	if (peer_probe(d, ip, port, j->try_until, ipc_join_probed, j) < 0) {
		TAILQ_REMOVE(&d->ipc->joins, j, entry);
		free(j);
		return *why = "cannot dial that address", -1;
	}
	return 0;
}

/* Dial the contact of j again (its backoff passed). */
static void ipc_join_retry(struct daemon *d, struct pending_join *j, uint64_t now)
{
	j->next_try = 0;
	j->attempts++;
	if (peer_probe(d, j->ip, j->port, j->try_until, ipc_join_probed, j) < 0) {
		snprintf(j->last_why, sizeof(j->last_why), "cannot dial that address");
		j->next_try = now + j->backoff_ms;
	}
}

/* Joined through some member other than the contact, once the contact is
 * gone: what the contact told us is the cluster, and the manager dials its
 * members whether or not the contact comes back. */
static bool ipc_joined_elsewhere(struct daemon *d, const char *contact)
{
	const struct node_spec *const *v;
	size_t n;

	if (peer_is_up(d, contact) || d->mops->is_member == NULL ||
	    !d->mops->is_member(d->mgr, contact))
		return false;
	n = d->mops->members(d->mgr, &v);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i]->name, d->self->name) != 0 && strcmp(v[i]->name, contact) != 0 &&
		    daemon_joined(d, v[i]->name))
			return true;
	return false;
}

static void ipc_join(struct session *s, const PartisanIpc__Request *rq)
{
	const char *why = NULL;
	uint32_t timeout = rq->join->has_timeout_ms ? rq->join->timeout_ms : 0;

	if (s->d->stopped) {
		/* Told to join again after it was removed: take part anew. */
		log_notice("membership", "rejoining after removal");
		daemon_reset_manager(s->d);
		s->d->stopped = false;
	}
	if (ipc_start_join(s->d, s, rq->id, rq->join->target, timeout, &why) < 0)
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "join %s: %s",
		                  rq->join->target, why);
}

static void ipc_leave(struct session *s, const PartisanIpc__Request *rq)
{
	const char *why = NULL;
	const char *node = rq->leave->node ? rq->leave->node : s->d->self->name;

	if (daemon_leave(s->d, node, &why) < 0)
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOENT, "leave %s: %s", node,
		                  why);
	else
		ipc_respond_ok(s, rq->id);
}

static void ipc_check_joins(struct daemon *d, uint64_t now)
{
	struct pending_join *j, *tmp;

	TAILQ_FOREACH_SAFE(j, &d->ipc->joins, entry, tmp)
	{
		if (j->probing && j->next_try && now >= j->try_until) {
			ipc_join_no_answer(d, j,
			                   j->deadline ? PARTISAN_IPC__ERROR__ETIMEDOUT
			                               : PARTISAN_IPC__ERROR__ENOCONNECTION,
			                   now);
		} else if (j->probing && j->next_try && now >= j->next_try) {
			ipc_join_retry(d, j, now);
		} else if (!j->probing && j->node[0] &&
		           (daemon_joined(d, j->node) || ipc_joined_elsewhere(d, j->node))) {
			ipc_join_done(d, j, PARTISAN_IPC__ERROR__OK, NULL);
		} else if (j->deadline && now >= j->deadline) {
			if (j->probing) {
				peer_probe_cancel(d, j);
				ipc_join_no_answer(d, j, PARTISAN_IPC__ERROR__ETIMEDOUT, now);
			} else {
				ipc_join_done(d, j, PARTISAN_IPC__ERROR__ETIMEDOUT,
				              "timed out waiting for every channel to connect");
			}
		}
	}
}

void ipc_tick(struct daemon *d, uint64_t now)
{
	ipc_check_joins(d, now);
}

void ipc_joins_check(struct daemon *d)
{
	if (d->ipc && !TAILQ_EMPTY(&d->ipc->joins))
		ipc_check_joins(d, daemon_now_ms());
}

static void ipc_partition_inject(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__RefReply rr = PARTISAN_IPC__REF_REPLY__INIT;
	const char *why = NULL;
	char ref[300], id[32];

	snprintf(id, sizeof(id), "%llu", (unsigned long long)++d->ipc->next_partition);
	ref_make(REF_REF, d->self->name, id, ref, sizeof(ref));
	if (peer_partition_inject(d, rq->partition_inject->node, ref, &why) < 0) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EINVAL, "partition %s: %s",
		                  rq->partition_inject->node, why);
		return;
	}
	rr.ref = ref;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_REF;
	r.ref = &rr;
	ipc_respond(s, rq->id, &r);
}

static void ipc_partition_resolve(struct session *s, const PartisanIpc__Request *rq)
{
	if (peer_partition_resolve(s->d, rq->partition_resolve->ref) < 0)
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__ENOENT, "no partition %s",
		                  rq->partition_resolve->ref);
	else
		ipc_respond_ok(s, rq->id);
}

static void ipc_partition_list(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__PartitionList pl = PARTISAN_IPC__PARTITION_LIST__INIT;
	const char *k;
	void *v;

	pl.partitions = xcalloc(d->partitions.len + 1, sizeof(*pl.partitions));
	for (size_t i = 0; strmap_next(&d->partitions, &i, &k, &v);) {
		PartisanIpc__PartitionInfo *p = xmalloc(sizeof(*p));

		partisan_ipc__partition_info__init(p);
		p->node = (char *)k;
		p->ref = v;
		pl.partitions[pl.n_partitions++] = p;
	}
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_PARTITIONS;
	r.partitions = &pl;
	ipc_respond(s, rq->id, &r);
	for (size_t i = 0; i < pl.n_partitions; i++)
		free(pl.partitions[i]);
	free(pl.partitions);
}

static void ipc_bye(struct session *s, const PartisanIpc__Request *rq)
{
	s->clean_close = true;
	if (!rq->quiet)
		ipc_respond_ok(s, rq->id);
}

/* Indexed by PartisanIpc__Request__BodyCase. */
static const ipc_handler ipc_handlers[] = {
    [PARTISAN_IPC__REQUEST__BODY_HELLO] = ipc_hello,
    [PARTISAN_IPC__REQUEST__BODY_STATUS] = ipc_status,
    [PARTISAN_IPC__REQUEST__BODY_SPEC] = ipc_spec,
    [PARTISAN_IPC__REQUEST__BODY_MEMBERS] = ipc_members,
    [PARTISAN_IPC__REQUEST__BODY_NODES] = ipc_nodes,
    [PARTISAN_IPC__REQUEST__BODY_CONNECTIONS] = ipc_connections,
    [PARTISAN_IPC__REQUEST__BODY_JOIN] = ipc_join,
    [PARTISAN_IPC__REQUEST__BODY_LEAVE] = ipc_leave,
    [PARTISAN_IPC__REQUEST__BODY_REGISTER] = router_register,
    [PARTISAN_IPC__REQUEST__BODY_UNREGISTER] = router_unregister,
    [PARTISAN_IPC__REQUEST__BODY_WHEREIS] = router_whereis,
    [PARTISAN_IPC__REQUEST__BODY_SEND] = router_send,
    [PARTISAN_IPC__REQUEST__BODY_CALL] = router_call,
    [PARTISAN_IPC__REQUEST__BODY_REPLY] = router_reply,
    [PARTISAN_IPC__REQUEST__BODY_MONITOR] = router_monitor,
    [PARTISAN_IPC__REQUEST__BODY_DEMONITOR] = router_demonitor,
    [PARTISAN_IPC__REQUEST__BODY_MONITOR_NODE] = router_monitor_node,
    [PARTISAN_IPC__REQUEST__BODY_MONITOR_NODES] = router_monitor_nodes,
    [PARTISAN_IPC__REQUEST__BODY_BROADCAST] = router_broadcast,
    [PARTISAN_IPC__REQUEST__BODY_SUBSCRIBE] = router_subscribe,
    [PARTISAN_IPC__REQUEST__BODY_UNSUBSCRIBE] = router_unsubscribe,
    [PARTISAN_IPC__REQUEST__BODY_REGISTRY] = router_registry,
    [PARTISAN_IPC__REQUEST__BODY_PARTITION_INJECT] = ipc_partition_inject,
    [PARTISAN_IPC__REQUEST__BODY_PARTITION_RESOLVE] = ipc_partition_resolve,
    [PARTISAN_IPC__REQUEST__BODY_PARTITION_LIST] = ipc_partition_list,
    [PARTISAN_IPC__REQUEST__BODY_GRAPH] = graph_request,
    [PARTISAN_IPC__REQUEST__BODY_BYE] = ipc_bye,
};

/* ---- sessions ---- */

static void ipc_session_free(struct session *s)
{
	struct ipc *ipc = s->d->ipc;
	struct pending_join *j, *tmp;

	TAILQ_FOREACH_SAFE(j, &ipc->joins, entry, tmp)
	{
		if (j->s != s)
			continue;
		if (j->probing)
			peer_probe_cancel(s->d, j);
		TAILQ_REMOVE(&ipc->joins, j, entry);
		free(j);
	}
	TAILQ_REMOVE(&ipc->sessions, s, entry);
	if (s->bev)
		bufferevent_free(s->bev);
	free(s);
}

/* Free a closing session once its output is flushed, unless its read
 * callback is still looking at it (that callback reaps it on the way out). */
static void ipc_session_reap(struct session *s)
{
	if (s->closing && !s->reading &&
	    (s->bev == NULL || evbuffer_get_length(bufferevent_get_output(s->bev)) == 0))
		ipc_session_free(s);
}

static void ipc_drain_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->closing)
		ipc_session_reap(s);
	else
		router_session_drained(s);
}

/* End a session: its endpoints go now; queued output is flushed first. */
static void ipc_session_close(struct session *s, const char *why)
{
	if (s->closing)
		return;
	s->closing = true;
	log_debug("ipc", "session %llu: closed (%s)", (unsigned long long)s->id, why);
	router_session_close(s, !s->clean_close);
	if (s->bev && evbuffer_get_length(bufferevent_get_output(s->bev)) > 0) {
		bufferevent_disable(s->bev, EV_READ);
		bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
		return;
	}
	ipc_session_reap(s);
}

/* big: a Send's payload split out of the frame (splice.h), or NULL. */
static int ipc_handle(struct session *s, PartisanIpc__Request *rq, struct evbuffer *big,
                      ProtobufCAllocator *al)
{
	size_t k = rq->body_case;

	if (!s->hello_done && k != PARTISAN_IPC__REQUEST__BODY_HELLO) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EPROTO, "expected hello first");
		return -1;
	}
	if (k >= sizeof(ipc_handlers) / sizeof(ipc_handlers[0]) || ipc_handlers[k] == NULL) {
		ipc_respond_error(s, rq->id, PARTISAN_IPC__ERROR__EPROTO, "unknown request type");
		return -1;
	}
	if (big && k == PARTISAN_IPC__REQUEST__BODY_SEND) {
		if (router_send_big(s, rq, big))
			return 0;
		splice_take(big, al, &rq->send->payload); /* a path that keeps it */
	}
	ipc_handlers[k](s, rq);
	return 0;
}

/* The path of the bytes a Send carries: Request.send, Send.payload. */
static const uint32_t ipc_send_path[] = {PARTISAN_IPC__REQUEST__BODY_SEND, 2};

static void ipc_read_frames(struct session *s, struct bufferevent *bev);

/* A handler may close the session (a wrong hello, a violation): it is
 * freed here, after the last look at it. */
static void ipc_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	s->reading = true;
	ipc_read_frames(s, bev);
	s->reading = false;
	ipc_session_reap(s);
}

static void ipc_read_frames(struct session *s, struct bufferevent *bev)
{
	struct daemon *d = s->d;
	struct evbuffer *in = bufferevent_get_input(bev);
	const struct framer fr = {&partisan_ipc__request__descriptor, ipc_send_path, &d->ipc_arena,
	                          d->splice};
	uint64_t max = s->d->cfg->max_frame_bytes + 4096;

	d->turn++;
	if (!s->paused)
		daemon_read_more(bev, IPC_IO_CHUNK);
	while (!s->closing && !s->paused) {
		struct frame f;
		int r;

		switch (frame_next(&fr, in, max, 2, &f)) {
		case FRAME_WAIT:
			return;
		case FRAME_TOO_BIG:
			log_warnx("ipc", "session %llu: frame of %u bytes too large, closing",
			          (unsigned long long)s->id, f.len);
			ipc_session_close(s, "frame too large");
			return;
		case FRAME_BAD:
			log_warnx("ipc", "session %llu: undecodable frame, closing",
			          (unsigned long long)s->id);
			ipc_session_close(s, "bad frame");
			return;
		case FRAME_OK:
			break;
		}
		r = ipc_handle(s, (PartisanIpc__Request *)f.msg, f.big ? d->splice : NULL, f.al);
		frame_done(&fr, &f);
		if (r < 0) {
			log_warnx("ipc", "session %llu: protocol violation, closing",
			          (unsigned long long)s->id);
			ipc_session_close(s, "protocol violation");
			return;
		}
	}
}

static void ipc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (s->closing) {
		ipc_session_free(s);
		return;
	}
	/* Only a client that said bye closed cleanly; EOF alone may be a crash. */
	ipc_session_close(s, s->clean_close ? "client closed" : "client lost");
}

static bool ipc_allowed(const struct config *cfg, uid_t uid, gid_t gid)
{
	if (cfg->ipc.nallow_uids == 0 && cfg->ipc.nallow_gids == 0)
		return true;
	for (size_t i = 0; i < cfg->ipc.nallow_uids; i++)
		if (cfg->ipc.allow_uids[i] == uid)
			return true;
	for (size_t i = 0; i < cfg->ipc.nallow_gids; i++)
		if (cfg->ipc.allow_gids[i] == gid)
			return true;
	return false;
}

static void ipc_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(d->ipc->listener);
}

/* accept() failed other than for a retry (out of descriptors): rest for
 * accept_backoff_ms instead of spinning; a line a minute at most. */
static void ipc_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct daemon *d = arg;
	struct ipc *ipc = d->ipc;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {(time_t)(d->cfg->accept_backoff_ms / 1000),
	                     (suseconds_t)(d->cfg->accept_backoff_ms % 1000) * 1000};
	uint64_t now = daemon_now_ms();

	ipc->pauses++;
	if (ipc->pause_logged_ms == 0 || now >= ipc->pause_logged_ms + 60000) {
		log_warnx("ipc", "cannot accept: %s: pausing accepts for %u ms (%u pauses)",
		          evutil_socket_error_to_string(err), d->cfg->accept_backoff_ms,
		          ipc->pauses);
		ipc->pause_logged_ms = now;
		ipc->pauses = 0;
	}
	evconnlistener_disable(l);
	if (ipc->resume_ev == NULL)
		ipc->resume_ev = evtimer_new(d->base, ipc_accept_resume_cb, d);
	evtimer_add(ipc->resume_ev, &tv);
}

#define IPC_REFUSAL_LOG_MS 60000 /* a refused uid is named at most this often */
#define IPC_REFUSAL_KEYS   1024  /* uids remembered for that (then forgotten) */

/* One refused uid's log state. */
struct ipc_refusal {
	uint64_t next_ms;    /* when it may be logged again */
	uint64_t suppressed; /* refusals not logged since */
};

/* Log a refusal of (uid, gid) once per IPC_REFUSAL_LOG_MS, with the count
 * of those not logged in between: a client retrying in a loop costs a line
 * a minute, not one per attempt. */
static void ipc_log_refusal(struct ipc *ipc, const struct ucred *cred)
{
	uint64_t now = daemon_now_ms();
	struct ipc_refusal *r;
	char key[48];

	snprintf(key, sizeof(key), "%u:%u", (unsigned)cred->uid, (unsigned)cred->gid);
	if ((r = strmap_get(&ipc->refused, key)) == NULL) {
		if (ipc->refused.len >= IPC_REFUSAL_KEYS)
			ipc_refusals_clear(ipc);
		r = xcalloc(1, sizeof(*r));
		strmap_put(&ipc->refused, key, r);
	}
	if (now < r->next_ms) {
		r->suppressed++;
		return;
	}
	if (r->suppressed)
		log_warnx("ipc",
		          "refused client pid %d: uid %u gid %u not allowed (and %llu more since "
		          "the last such line)",
		          (int)cred->pid, (unsigned)cred->uid, (unsigned)cred->gid,
		          (unsigned long long)r->suppressed);
	else
		log_warnx("ipc", "refused client pid %d: uid %u gid %u not allowed", (int)cred->pid,
		          (unsigned)cred->uid, (unsigned)cred->gid);
	r->suppressed = 0;
	r->next_ms = now + IPC_REFUSAL_LOG_MS;
}

/* A client whose credentials are not allowed: one Response with id 0 (the
 * daemon's last word: the session is over, and why), then the socket is
 * closed at once. Nothing of it is read or kept. */
static void ipc_refuse(struct daemon *d, int fd, const struct ucred *cred)
{
	PartisanIpc__ServerMsg m = PARTISAN_IPC__SERVER_MSG__INIT;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	uint8_t buf[512];
	char msg[128];
	size_t len;

	ipc_log_refusal(d->ipc, cred);
	snprintf(msg, sizeof(msg), "uid %u is not allowed to use this daemon", (unsigned)cred->uid);
	r.has_error = 1;
	r.error = PARTISAN_IPC__ERROR__EPERM;
	r.error_msg = msg;
	m.body_case = PARTISAN_IPC__SERVER_MSG__BODY_RESPONSE;
	m.response = &r;
	len = partisan_ipc__server_msg__get_packed_size(&m);
	if (len + FRAME_HEADER <= sizeof(buf)) {
		frame_put_header(buf, (uint32_t)len);
		partisan_ipc__server_msg__pack(&m, buf + FRAME_HEADER);
		/* A fresh socket's buffer is empty: this goes whole, or not at all. */
		(void)!send(fd, buf, FRAME_HEADER + len, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	shutdown(fd, SHUT_WR);
	evutil_closesocket(fd);
}

static void ipc_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
	struct daemon *d = arg;
	struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
	socklen_t clen = sizeof(cred);
	struct session *s;
	char id[32];

	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
	if (!ipc_allowed(d->cfg, cred.uid, cred.gid)) {
		ipc_refuse(d, fd, &cred);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->d = d;
	s->id = ++d->ipc->next_id;
	s->uid = cred.uid;
	s->gid = cred.gid;
	s->pid = cred.pid;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
	ref_make(REF_PID, d->self->name, id, s->ref, sizeof(s->ref));
	s->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		evutil_closesocket(fd);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&d->ipc->sessions, s, entry);
	bufferevent_setcb(s->bev, ipc_read_cb, ipc_drain_cb, ipc_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, d->cfg->session_queue_bytes / 2, 0);
	bufferevent_set_max_single_read(s->bev, IPC_IO_CHUNK);
	bufferevent_set_max_single_write(s->bev, IPC_IO_CHUNK);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	router_session_open(s);
}

/* Is something answering on path? (a live daemon we must not steal from) */
static bool ipc_socket_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return live;
}

/* The socket's directory, when missing (a plain start on a fresh install,
 * with no systemd RuntimeDirectory= or tmpfiles.d yet): made if we can. */
static void ipc_make_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) == 0)
		log_notice("ipc", "made the socket directory %s", dir);
}

int ipc_listen(struct daemon *d)
{
	struct ipc *ipc = xcalloc(1, sizeof(*ipc));
	mode_t mask;
	int err;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *path = d->cfg->ipc.socket;

	TAILQ_INIT(&ipc->sessions);
	TAILQ_INIT(&ipc->joins);
	strmap_init(&ipc->refused);
	d->ipc = ipc;
	snprintf(ipc->path, sizeof(ipc->path), "%s", path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (ipc_socket_live(&sun)) {
		log_error("ipc", "%s: another daemon is listening there", path);
		return -1;
	}
	unlink(path);
	ipc_make_dir(path);
	/* Bound under a umask that leaves it to us alone (and no wider than
	 * ipc.mode's owner bits), whatever the umask we were started with, then
	 * opened up to ipc.mode: never, even for an instant, wider than asked. */
	mask = umask(0777 & ~(d->cfg->ipc.mode & 0600));
	ipc->listener = evconnlistener_new_bind(d->base, ipc_accept_cb, d,
	                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
	                                        (struct sockaddr *)&sun, sizeof(sun));
	err = errno;
	umask(mask);
	if (ipc->listener == NULL) {
		log_error("ipc", "cannot listen on %s: %s", path, strerror(err));
		ipc->path[0] = '\0';
		return -1;
	}
	evconnlistener_set_error_cb(ipc->listener, ipc_accept_error_cb);
	if (d->cfg->ipc.group != NULL && chown(path, (uid_t)-1, d->cfg->ipc.gid) < 0) {
		log_error("ipc", "ipc.group: cannot give %s to group %s: %s", path,
		          d->cfg->ipc.group, strerror(errno));
		return -1;
	}
	if (chmod(path, d->cfg->ipc.mode) < 0) {
		log_error("ipc", "ipc.mode: chmod %s: %s", path, strerror(errno));
		return -1;
	}
	log_info("ipc", "listening on %s (mode %04o%s%s)", path, d->cfg->ipc.mode,
	         d->cfg->ipc.group ? ", group " : "", d->cfg->ipc.group ? d->cfg->ipc.group : "");
	return 0;
}

void ipc_shutdown(struct daemon *d)
{
	struct ipc *ipc = d->ipc;

	if (ipc == NULL)
		return;
	while (!TAILQ_EMPTY(&ipc->sessions)) {
		struct session *s = TAILQ_FIRST(&ipc->sessions);

		if (!s->closing) {
			s->closing = true;
			router_session_close(s, false);
		}
		ipc_session_free(s);
	}
	if (ipc->listener)
		evconnlistener_free(ipc->listener);
	if (ipc->resume_ev)
		event_free(ipc->resume_ev);
	if (ipc->path[0])
		unlink(ipc->path);
	ipc_refusals_clear(ipc);
	strmap_free(&ipc->refused);
	free(ipc);
	d->ipc = NULL;
}
