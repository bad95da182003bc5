/* peer.c: the peer layer's node table (see peer.h, peer-int.h). It owns
 * struct pnode, one per node this daemon links to or hears from: whether
 * the manager wants it, whether it is up, its outbound slots per channel.
 * Around the table: the listening sockets and accepting, dialling with
 * backoff (at most PEER_TLS_DIALS TLS handshakes at once), routing a send
 * to one of the node's links by channel and key, injected partitions,
 * pause / resume of a link, and what the node core needs from the links:
 * frames heard and sent, bytes waiting unread, heartbeats and Silent
 * reports sent ahead of queued data, a node taken down (the decisions are
 * core/node.c's and core/fd.c's). One connection is link.c's; its
 * handshake hello.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "advertise.h"
#include "fd.h"
#include "node.h"
#include "log.h"
#include "peer-int.h"
#include "security.h"
#include "splice.h"
#include "transport.h"

#define PEER_BACKOFF_MAX_MS      2000
#define PEER_MONOTONIC_WINDOW_MS 100
#define PEER_HANDSHAKE_SCAN      5 /* ticks between looks for stuck handshakes */
/* TLS handshakes this node runs as a dialer at once. A handshake costs
 * milliseconds of public-key arithmetic on each side: a node that dialled
 * every member at once would have them all time out together on a busy
 * host, and dial them all again. */
#define PEER_TLS_DIALS    8
#define PEER_REFUSALS_MAX 4096 /* peers whose refusals are remembered (then forgotten at once) */

static struct pconn *peer_route(struct daemon *d, struct pnode *n, size_t ch, const void *key,
                                size_t keylen);

/* ---- the node table ---- */

struct pnode *pnode_get(struct daemon *d, const char *name, bool create)
{
	const struct config *cfg = d->cfg;
	struct pnode *n = strmap_get(&d->nodes, name);

	if (n || !create)
		return n;
	n = xcalloc(1, sizeof(*n));
	n->name = xstrdup(name);
	n->out = xcalloc(cfg->nchannels, sizeof(*n->out));
	for (size_t i = 0; i < cfg->nchannels; i++)
		n->out[i] = xcalloc(cfg->channels[i].parallelism, sizeof(**n->out));
	n->backoff_ms = PEER_BACKOFF_MIN_MS;
	n->fd = node_peer(d->node, name);
	strmap_put(&d->nodes, name, n);
	return n;
}

static void pnode_free(struct daemon *d, struct pnode *n)
{
	for (size_t i = 0; i < d->cfg->nchannels; i++)
		free(n->out[i]);
	free(n->out);
	node_spec_free(n->spec);
	free(n->name);
	free(n);
}

bool pnode_has_conns(struct daemon *d, struct pnode *n)
{
	struct pconn *c;

	TAILQ_FOREACH(c, &d->conns, entry)
	if (c->node == n)
		return true;
	return false;
}

/* Whether bytes from n wait unread on one of its links: then n did speak
 * and only this daemon, short of CPU, has not read it yet. */
static bool pnode_unread(struct daemon *d, struct pnode *n)
{
	struct pconn *c;

	TAILQ_FOREACH(c, &d->conns, entry)
	if (c->node == n && pconn_unread(c))
		return true;
	return false;
}

/* Drop a node record nobody needs any more (only from peer_tick, so that
 * no caller up the stack holds it). */
static bool pnode_gc(struct daemon *d, struct pnode *n)
{
	if (n->wanted || n->up || pnode_has_conns(d, n))
		return false;
	node_forget(d->node, n->fd);
	strmap_del(&d->nodes, n->name);
	pnode_free(d, n);
	return true;
}

/* ---- node up / down ---- */

static bool pnode_default_open(struct daemon *d, struct pnode *n)
{
	for (unsigned i = 0; i < d->cfg->channels[0].parallelism; i++)
		if (n->out[0][i] && n->out[0][i]->state == PC_OPEN)
			return true;
	return false;
}

void pnode_set_up(struct daemon *d, struct pnode *n)
{
	if (n->up || !pnode_default_open(d, n) || n->spec == NULL)
		return;
	n->up = true;
	n->ever_up = true;
	n->backoff_ms = PEER_BACKOFF_MIN_MS;
	log_info("peer", "%s: up", n->name);
	daemon_node_up(d, n->spec);
}

/* Close n's outbound connections (flushing what is queued) and report it
 * down. Inbound ones too when inbound is set (a hung node, or one we drop);
 * otherwise they deliver what the node sent before closing them itself. */
void pnode_down(struct daemon *d, struct pnode *n, const char *reason, bool inbound)
{
	struct pconn *c, *tmp;
	bool was_up = n->up;

	n->up = false;
	TAILQ_FOREACH_SAFE(c, &d->conns, entry, tmp)
	if (c->node == n && c->state != PC_CLOSING && (inbound || c->outbound))
		pconn_close(c, reason);
	if (was_up) {
		log_notice("peer", "%s: down (%s)", n->name, reason);
		daemon_node_down(d, n->name, reason);
	}
}

/* ---- what the links tell their node ---- */

void pnode_detach(struct pconn *c)
{
	struct pnode *n = c->node;

	if (n && c->outbound && n->out[c->chan][c->idx] == c) {
		n->out[c->chan][c->idx] = NULL;
		c->d->peer_scan = true; /* a slot to fill */
	}
}

void pnode_link_closed(struct daemon *d, struct pnode *n, bool was_open, const char *why)
{
	if (n && was_open && n->up && !pnode_default_open(d, n))
		pnode_down(d, n, why, false);
	if (n && n->wanted && n->next_try_ms < daemon_now_ms() + n->backoff_ms)
		n->next_try_ms = daemon_now_ms() + n->backoff_ms;
}

/* ---- heartbeats ---- */

const double peer_rtt_bounds_ms[PEER_RTT_BUCKETS] = {0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000};

static void pnode_rtt(struct pnode *n, uint64_t ms)
{
	for (size_t i = 0; i < PEER_RTT_BUCKETS; i++)
		if ((double)ms <= peer_rtt_bounds_ms[i])
			n->rtt.buckets[i]++;
	n->rtt.count++;
	n->rtt.sum_ms += ms;
}

/* What a frame on an open link tells the shell itself: the node was heard;
 * a heartbeat reply times the round trip; a Silent report about a node
 * whose bytes wait unread here is answered with that (life) in mind. */
int pnode_receive(struct pconn *c, const PartisanPeer__PeerMsg *m, const char **why)
{
	struct pnode *n = c->node, *about;
	uint64_t now = daemon_now_ms();

	node_heard(n->fd, now);
	if (m->body_case == PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT && m->heartbeat->has_reply &&
	    m->heartbeat->reply && n->hb_asked_ms) {
		pnode_rtt(n, now - n->hb_asked_ms); /* the coarse clock: a few ms of grain */
		n->hb_asked_ms = 0;
	} else if (m->body_case == PARTISAN_PEER__PEER_MSG__BODY_SILENT && m->silent->node &&
	           (about = pnode_get(c->d, m->silent->node, false)) != NULL &&
	           pnode_unread(c->d, about)) {
		node_unread(about->fd, now);
	}
	return daemon_peer_msg(c->d, n->name, m, why);
}

/* ---- dialing and accepting ---- */

const char *peer_addr_text(const char *ip, uint16_t port)
{
	static char buf[80];

	snprintf(buf, sizeof(buf), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
	return buf;
}

static int peer_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static struct pconn *peer_dial(struct daemon *d, const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct bufferevent *bev;
	struct pconn *c;
	void *tconn;

	if (peer_sockaddr(ip, port, &ss, &sslen) < 0)
		return NULL;
	bev = d->transport->dial(d->transport_ctx, d->base, (struct sockaddr *)&ss, sslen, &tconn);
	if (bev == NULL)
		return NULL;
	c = pconn_new(d, bev, true); /* PC_CONNECTING */
	c->tconn = tconn;
	c->dialing = true;
	d->dialing++;
	snprintf(c->addr, sizeof(c->addr), "%s", peer_addr_text(ip, port));
	return c;
}

static void pnode_dial_slot(struct daemon *d, struct pnode *n, size_t chan, unsigned idx)
{
	const struct ns_addr *a = &n->spec->addrs[n->attempt % n->spec->naddrs];
	struct pconn *c = peer_dial(d, a->ip, a->port);

	if (c == NULL) {
		log_warn("peer", "%s: cannot dial %s", n->name, peer_addr_text(a->ip, a->port));
		return;
	}
	c->node = n;
	c->chan = chan;
	c->idx = idx;
	n->out[chan][idx] = c;
}

/* Open whatever outbound connections n is missing, respecting backoff. */
static void pnode_fill(struct daemon *d, struct pnode *n, uint64_t now)
{
	bool dialed = false, partitioned = false;

	if (!n->wanted || n->spec == NULL || now < n->next_try_ms || d->stopped)
		return;
	for (size_t ch = 0; ch < d->cfg->nchannels && !partitioned; ch++) {
		/* Other channels wait until the default one is open. */
		if (ch > 0 && !n->up)
			break;
		for (unsigned i = 0; i < d->cfg->channels[ch].parallelism; i++) {
			if (n->out[ch][i] != NULL)
				continue;
			/* Looked up only when a slot is empty: this runs every tick
			 * for every node. */
			if ((partitioned = peer_partitioned(d, n->name)))
				break;
			if (d->dialing >= d->cfg->max_concurrent_dials ||
			    (!d->transport->direct_io && d->dialing >= PEER_TLS_DIALS)) {
				d->peer_scan = true; /* the next tick dials on */
				break;
			}
			pnode_dial_slot(d, n, ch, i);
			dialed = true;
		}
	}
	if (dialed) {
		/* A node that was up once is dialled again within
		 * PEER_BACKOFF_MAX_MS; one never reached (a member that does not
		 * exist, say) ever more rarely, up to dial_backoff_max_ms. */
		unsigned max = n->ever_up ? PEER_BACKOFF_MAX_MS : d->cfg->dial_backoff_max_ms;

		n->attempt++;
		n->next_try_ms = now + n->backoff_ms;
		n->backoff_ms = n->backoff_ms * 2 > max ? max : n->backoff_ms * 2;
		if (n->backoff_ms < PEER_BACKOFF_MIN_MS)
			n->backoff_ms = PEER_BACKOFF_MIN_MS;
	}
}

/* ---- refusals, logged once per peer ---- */

struct peer_refusal_rec {
	uint64_t last_ms[PEER_REFUSE_KINDS]; /* when last logged; 0: never */
	unsigned quiet[PEER_REFUSE_KINDS];   /* refusals not logged since */
};

void peer_refusal(struct daemon *d, const char *who, enum peer_refusal_kind kind, const char *fmt,
                  ...)
{
	struct peer_refusal_rec *r = strmap_get(&d->refusals, who);
	uint64_t now = daemon_now_ms();
	char msg[512];
	va_list ap;

	if (r == NULL) {
		if (d->refusals.len >= PEER_REFUSALS_MAX) {
			const char *k;
			void *v;

			for (size_t i = 0; strmap_next(&d->refusals, &i, &k, &v);)
				free(strmap_del(&d->refusals, k));
		}
		r = xcalloc(1, sizeof(*r));
		strmap_put(&d->refusals, who, r);
	}
	if (r->last_ms[kind] != 0 && now < r->last_ms[kind] + PEER_REFUSAL_QUIET_MS) {
		r->quiet[kind]++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->quiet[kind])
		log_warnx("peer", "%s: %s (and %u more like it in the last minute)", who, msg,
		          r->quiet[kind]);
	else
		log_warnx("peer", "%s: %s", who, msg);
	r->last_ms[kind] = now;
	r->quiet[kind] = 0;
}

bool peer_state_push_ok(struct daemon *d, const char *node)
{
	struct pnode *n = pnode_get(d, node, false);
	double rate = d->cfg->max_state_pushes_per_s;
	uint64_t now = daemon_now_ms();

	if (n == NULL)
		return true;
	if (n->push_fill_ms == 0)
		n->push_tokens = rate; /* a burst of one second's budget */
	else
		n->push_tokens += rate * (double)(now - n->push_fill_ms) / 1000.0;
	if (n->push_tokens > rate)
		n->push_tokens = rate;
	n->push_fill_ms = now;
	if (n->push_tokens >= 1.0) {
		n->push_tokens -= 1.0;
		return true;
	}
	d->stats.state_pushes_dropped++;
	peer_refusal(d, node, PEER_REFUSE_PUSH_RATE,
	             "membership states pushed faster than max_state_pushes_per_s (%u): "
	             "dropped, not merged",
	             d->cfg->max_state_pushes_per_s);
	return false;
}

/* An accepted peer's address, IPv4 on a dual-stack socket as plain IPv4. */
static void peer_sa_host(const struct sockaddr *sa, char *host, size_t n)
{
	snprintf(host, n, "?");
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, (socklen_t)n);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6))
			inet_ntop(AF_INET, &a6->s6_addr[12], host, (socklen_t)n);
		else
			inet_ntop(AF_INET6, a6, host, (socklen_t)n);
	}
}

/* The oldest accepted link still before its hello (d->conns is in the
 * order links were made). */
static struct pconn *peer_oldest_pending(struct daemon *d)
{
	struct pconn *c;

	TAILQ_FOREACH(c, &d->conns, entry)
	if (c->pending && c->state != PC_CLOSING)
		return c;
	return NULL;
}

/* At max_pending_connections, a new link costs the oldest one that has not
 * said hello yet: a legitimate hello takes milliseconds, so a slow-loris
 * holding every slot is what goes, and a node joining still gets in. */
static void peer_accept_pause(struct daemon *d, unsigned ms);

static void peer_make_room(struct daemon *d, const char *host)
{
	bool dropped = false;

	while (d->pending_in >= d->cfg->max_pending_connections) {
		struct pconn *old = peer_oldest_pending(d);

		if (old == NULL)
			break;
		d->stats.pending_evicted++;
		peer_refusal(d, host, PEER_REFUSE_PENDING,
		             "%u connections before their hello (max_pending_connections): "
		             "closing the oldest",
		             d->pending_in);
		pconn_drop(old, "too many connections before their hello");
		dropped = true;
	}
	/* libevent closes a freed link's socket once this callback returns,
	 * and the listener would accept on until the queue is empty: resting
	 * until the next loop turn keeps the descriptors to the cap. */
	if (dropped)
		peer_accept_pause(d, 0);
}

static void peer_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	d->accept_paused = false;
	for (size_t i = 0; i < d->nlisteners; i++)
		evconnlistener_enable(d->listeners[i]);
}

/* accept() failed other than for a retry: out of descriptors (EMFILE,
 * ENFILE) or of kernel memory. The listeners rest for accept_backoff_ms
 * instead of spinning on a socket that stays readable; the oldest link
 * still before its hello goes, to free a descriptor; the pause is logged
 * once until accepting works again. */
static void peer_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct daemon *d = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct pconn *old;

	uint64_t now = daemon_now_ms();

	(void)l;
	d->stats.accept_pauses++;
	d->accept_pauses++;
	if (d->accept_logged_ms == 0 || now >= d->accept_logged_ms + PEER_REFUSAL_QUIET_MS) {
		log_warnx("peer", "cannot accept: %s: pausing accepts for %u ms (%u pauses)",
		          evutil_socket_error_to_string(err), d->cfg->accept_backoff_ms,
		          d->accept_pauses);
		d->accept_logged_ms = now;
		d->accept_pauses = 0;
	}
	if ((old = peer_oldest_pending(d)) != NULL)
		pconn_drop(old, "out of descriptors");
	peer_accept_pause(d, d->cfg->accept_backoff_ms);
}

/* The listeners rest for ms (0: until the next loop turn). */
static void peer_accept_pause(struct daemon *d, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	for (size_t i = 0; i < d->nlisteners; i++)
		evconnlistener_disable(d->listeners[i]);
	d->accept_paused = true;
	if (d->accept_ev == NULL)
		d->accept_ev = evtimer_new(d->base, peer_accept_resume_cb, d);
	evtimer_add(d->accept_ev, &tv);
}

static void peer_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
	struct daemon *d = arg;
	struct bufferevent *bev;
	struct pconn *c;
	char host[64];
	bool loopback;
	void *tconn;

	peer_sa_host(sa, host, sizeof(host));
	loopback = advertise_loopback(host);
	if (!security_admits(d, host, loopback)) {
		evutil_closesocket(fd);
		return;
	}
	bev = d->transport->accept(d->transport_ctx, d->base, fd, sa, &tconn);
	if (bev == NULL)
		return; /* the transport closed fd */
	peer_make_room(d, host);
	c = pconn_new(d, bev, false); /* keepalive and nodelay: from the listener */
	c->tconn = tconn;
	c->from_loopback = loopback;
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->addr, sizeof(c->addr), "%s",
	         peer_addr_text(host, ntohs(((struct sockaddr_in *)sa)->sin_port)));
	hello_challenge(c);
}

/* A listening socket for ip:port; a wildcard IPv6 one takes IPv4 too (dual
 * stack). -1 with errno on failure. */
static int peer_listen_socket(const char *ip, uint16_t port, bool *dual)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1, zero = 0;

	*dual = false;
	if (peer_sockaddr(ip, port, &ss, &sslen) < 0)
		return errno = EINVAL, -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6 && config_ip_wildcard(ip))
		*dual = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) == 0;
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 512) < 0) {
		int e = errno;

		close(fd);
		return errno = e, -1;
	}
	return fd;
}

int peer_listen(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	int one = 1;

	d->listeners = xcalloc(cfg->nlisten_addrs, sizeof(*d->listeners));
	d->bound = xcalloc(cfg->nlisten_addrs, sizeof(*d->bound));
	for (size_t i = 0; i < cfg->nlisten_addrs; i++) {
		struct advertise_listener *b = &d->bound[i];
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		struct evconnlistener *l;
		int fd;

		snprintf(b->ip, sizeof(b->ip), "%s", cfg->listen_addrs[i].ip);
		fd = peer_listen_socket(b->ip, cfg->listen_addrs[i].port, &b->dual_stack);
		if (fd < 0 && strcmp(b->ip, "::") == 0 &&
		    (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
			/* A host without IPv6: the wildcard means IPv4 alone. */
			log_notice("peer", "no IPv6 here (%s): listening on 0.0.0.0 instead of ::",
			           strerror(errno));
			snprintf(b->ip, sizeof(b->ip), "0.0.0.0");
			fd = peer_listen_socket(b->ip, cfg->listen_addrs[i].port, &b->dual_stack);
		}
		if (fd < 0) {
			log_error("peer", "cannot listen on %s: %s",
			          peer_addr_text(b->ip, cfg->listen_addrs[i].port),
			          strerror(errno));
			return -1;
		}
		l = evconnlistener_new(d->base, peer_accept_cb, d, LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (l == NULL) {
			close(fd);
			log_error("peer", "cannot listen on %s: out of memory",
			          peer_addr_text(b->ip, cfg->listen_addrs[i].port));
			return -1;
		}
		d->listeners[d->nlisteners++] = l;
		evconnlistener_set_error_cb(l, peer_accept_error_cb);
		/* Accepted sockets inherit these: no system calls per accept. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pconn_keepalive(d, fd);
		getsockname(fd, (struct sockaddr *)&ss, &sslen);
		b->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		log_info("peer", "listening on %s%s", peer_addr_text(b->ip, b->port),
		         b->dual_stack ? " (IPv6 and IPv4)" : "");
	}
	return 0;
}

void peer_shutdown(struct daemon *d)
{
	const char *k;
	void *v;

	for (size_t i = 0; i < d->nlisteners; i++)
		evconnlistener_free(d->listeners[i]);
	free(d->listeners);
	d->listeners = NULL;
	d->nlisteners = 0;
	if (d->accept_ev) {
		event_free(d->accept_ev);
		d->accept_ev = NULL;
	}
	for (size_t i = 0; strmap_next(&d->refusals, &i, &k, &v);)
		free(v);
	strmap_free(&d->refusals);
	free(d->bound);
	d->bound = NULL;
	while (!TAILQ_EMPTY(&d->conns)) {
		struct pconn *c = TAILQ_FIRST(&d->conns);

		c->node = NULL;
		if (c->probe) {
			free(c->probe);
			c->probe = NULL;
		}
		pconn_free(c);
	}
	for (size_t i = 0; strmap_next(&d->nodes, &i, &k, &v);)
		pnode_free(d, v);
	strmap_free(&d->nodes);
	for (size_t i = 0; strmap_next(&d->partitions, &i, &k, &v);)
		free(v);
	strmap_free(&d->partitions);
}

/* ---- the API ---- */

void peer_want(struct daemon *d, const struct node_spec *spec)
{
	struct pnode *n;

	if (strcmp(spec->name, d->self->name) == 0)
		return;
	n = pnode_get(d, spec->name, true);
	if (n->spec == NULL || (!n->up && node_spec_cmp(n->spec, spec) != 0)) {
		node_spec_free(n->spec);
		n->spec = node_spec_dup(spec);
	}
	if (!n->wanted) {
		n->wanted = true;
		d->peer_scan = true;
		pnode_fill(d, n, daemon_now_ms());
	}
}

void peer_disconnect(struct daemon *d, const char *node)
{
	struct pnode *n = pnode_get(d, node, false);

	if (n == NULL)
		return;
	n->wanted = false;
	d->peer_scan = true; /* its record goes once its links are gone */
	/* Our links to it close now; its links to us stay until it closes them,
	 * so what it sent before (a goodbye, say) is still read. */
	pnode_down(d, n, "disconnected", false);
}

/* Whether the next tick must look at n again: a slot to fill, or a record
 * to drop. */
static bool pnode_pending(struct daemon *d, const struct pnode *n)
{
	if (!n->wanted)
		return !n->up;
	for (size_t ch = 0; ch < d->cfg->nchannels; ch++)
		for (unsigned i = 0; i < d->cfg->channels[ch].parallelism; i++)
			if (n->out[ch][i] == NULL || n->out[ch][i]->state != PC_OPEN)
				return true;
	return false;
}

static void peer_handshake_scan(struct daemon *d, uint64_t now)
{
	uint64_t handshake = d->cfg->connect_timeout_ms;
	struct pconn *c, *tmp;

	TAILQ_FOREACH_SAFE(c, &d->conns, entry, tmp)
	{
		if (c->pending && c->state != PC_CLOSING &&
		    now > c->since_ms + d->cfg->hello_timeout_ms && !pconn_transport_error(c)) {
			/* Accepted, and no hello: nothing of it to flush. */
			d->stats.hello_timeouts++;
			peer_refusal(d, c->host, PEER_REFUSE_HELLO_TIME,
			             "no hello within hello_timeout_ms (%u ms): closed",
			             d->cfg->hello_timeout_ms);
			pconn_drop(c, "no hello in time");
		} else if (c->state != PC_OPEN && c->state != PC_CLOSING &&
		           now > c->since_ms + handshake && !(c->probe && now < c->probe->until))
			hello_timeout(c);
		else if (c->state == PC_CLOSING && now > c->since_ms + handshake) {
			c->node = NULL;
			pconn_free(c); /* the other side never closed its end */
		}
	}
}

void peer_unread_scan(struct daemon *d, uint64_t now)
{
	struct fd_node **due;
	size_t k = node_overdue(d->node, now, &due);

	for (size_t i = 0; i < k; i++) {
		struct pnode *n = pnode_get(d, fd_node_name(due[i]), false);

		if (n && pnode_unread(d, n))
			node_unread(due[i], now);
	}
}

void peer_tick(struct daemon *d, uint64_t now, bool round)
{
	const char *k;
	void *v;
	/* A tick of an idle daemon touches nothing; every node is looked at
	 * when one waits for a connection or for its record to go, and once a
	 * heartbeat round. */
	bool full = round || d->peer_scan;

	if (full || ++d->peer_ticks % PEER_HANDSHAKE_SCAN == 0)
		peer_handshake_scan(d, now);
	if (!full)
		return;
	d->peer_scan = false;
	for (size_t i = 0; strmap_next(&d->nodes, &i, &k, &v);) {
		if (pnode_gc(d, v))
			continue;
		pnode_fill(d, v, now);
		if (pnode_pending(d, v))
			d->peer_scan = true;
	}
}

static struct pconn *pnode_pick(struct daemon *d, struct pnode *n, size_t ch, const void *key,
                                size_t keylen)
{
	unsigned par = d->cfg->channels[ch].parallelism;
	unsigned start = keylen ? (unsigned)(hash_bytes(HASH_INIT, key, keylen) % par) : 0;

	for (unsigned i = 0; i < par; i++) {
		struct pconn *c = n->out[ch][(start + i) % par];

		if (c && c->state == PC_OPEN)
			return c;
	}
	return NULL;
}

static struct pconn *peer_route(struct daemon *d, struct pnode *n, size_t ch, const void *key,
                                size_t keylen)
{
	struct pconn *c = pnode_pick(d, n, ch, key, keylen);

	if (c == NULL && ch != 0)
		c = pnode_pick(d, n, 0, key, keylen); /* fall back to the default channel */
	if (c == NULL) {
		/* Not connected out (yet): answer on a link the node opened to us. */
		TAILQ_FOREACH(c, &d->conns, entry)
		if (c->node == n && c->state == PC_OPEN)
			return c;
	}
	return c;
}

/* The link a frame to node goes out on, or why there is none (a monotonic
 * channel sheds instead of queueing behind a slow link, and never pushes
 * back). */
static enum peer_send_result peer_link(struct daemon *d, const char *node, const char *channel,
                                       const void *key, size_t keylen, struct pconn **cp)
{
	struct pnode *n = pnode_get(d, node, false);
	size_t ch = config_channel_index(d->cfg, channel), queued;
	struct pconn *c;

	if (peer_partitioned(d, node))
		return PEER_PARTITIONED;
	if (n == NULL || (c = peer_route(d, n, ch, key, keylen)) == NULL)
		return PEER_NOT_CONNECTED;
	queued = pconn_queued(c);
	if (d->cfg->channels[c->outbound ? c->chan : 0].monotonic && queued > 0 &&
	    (daemon_now_ms() < c->last_send_ms + PEER_MONOTONIC_WINDOW_MS ||
	     queued > d->cfg->peer_queue_bytes)) {
		d->stats.dropped_monotonic++;
		return PEER_SHED;
	}
	*cp = c;
	return PEER_SENT;
}

/* What we took from a sender is never dropped: it is queued, and the sender
 * is paused until the link drains (the bound is peer_queue_bytes plus one
 * frame per paused sender). Control frames are small and must not be lost
 * behind bulk data either. */
static enum peer_send_result peer_queued(struct daemon *d, struct pconn *c)
{
	return pconn_queued(c) > d->cfg->peer_queue_bytes ? PEER_SENT_FULL : PEER_SENT;
}

enum peer_send_result peer_send(struct daemon *d, const char *node, const char *channel,
                                const void *key, size_t keylen, const uint8_t *buf, size_t len)
{
	struct pconn *c = NULL;
	enum peer_send_result r = peer_link(d, node, channel, key, keylen, &c);

	if (r < 0)
		return r;
	pconn_write_frame(c, buf, len, false);
	return peer_queued(d, c);
}

void peer_send_now(struct daemon *d, const char *node, const uint8_t *buf, size_t len, bool probe)
{
	struct pnode *n = pnode_get(d, node, false);
	struct pconn *c = n ? peer_route(d, n, 0, NULL, 0) : NULL;

	if (c == NULL)
		return;
	if (probe)
		n->hb_asked_ms = daemon_now_ms();
	pconn_write_frame(c, buf, len, true);
}

void peer_take_down(struct daemon *d, const char *node, const char *why)
{
	struct pnode *n = pnode_get(d, node, false);

	if (n == NULL)
		return;
	pnode_down(d, n, why, true);
	n->next_try_ms = daemon_now_ms() + n->backoff_ms;
}

enum peer_send_result peer_send_data_big(struct daemon *d, const char *node, const char *channel,
                                         const void *key, size_t keylen,
                                         const PartisanPeer__Data *data, struct evbuffer *big)
{
	static const uint32_t wrap[] = {PARTISAN_PEER__PEER_MSG__BODY_DATA};
	struct pconn *c = NULL;
	enum peer_send_result r = peer_link(d, node, channel, key, keylen, &c);
	struct evbuffer *out;
	size_t before;

	if (r < 0)
		return r;
	out = bufferevent_get_output(c->bev);
	before = evbuffer_get_length(out);
	splice_frame_add(out, wrap, 1, &data->base, 3, big);
	pconn_sent(c, evbuffer_get_length(out) - before);
	return peer_queued(d, c);
}

enum peer_send_result peer_send_msg(struct daemon *d, const char *node, const char *channel,
                                    const void *key, size_t keylen,
                                    const PartisanPeer__PeerMsg *msg)
{
	struct pconn *c = NULL;
	enum peer_send_result r = peer_link(d, node, channel, key, keylen, &c);

	if (r < 0)
		return r;
	pconn_sent(c, daemon_frame_add(bufferevent_get_output(c->bev), &msg->base));
	return peer_queued(d, c);
}

bool peer_partitioned(struct daemon *d, const char *node)
{
	return d->partitions.len > 0 && strmap_get(&d->partitions, node) != NULL;
}

int peer_partition_inject(struct daemon *d, const char *node, const char *ref, const char **why)
{
	struct pnode *n;

	if (!node_name_valid(node))
		return *why = "not a node name", -1;
	if (strcmp(node, d->self->name) == 0)
		return *why = "cannot partition a node from itself", -1;
	if (peer_partitioned(d, node))
		return *why = "already partitioned", -1;
	strmap_put(&d->partitions, node, xstrdup(ref));
	log_notice("peer", "%s: partition injected (%s)", node, ref);
	if ((n = pnode_get(d, node, false)) != NULL)
		pnode_down(d, n, "partition", true);
	return 0;
}

int peer_partition_resolve(struct daemon *d, const char *ref)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&d->partitions, &i, &k, &v);) {
		if (strcmp(v, ref) == 0) {
			struct pnode *n = pnode_get(d, k, false);

			log_notice("peer", "%s: partition resolved (%s)", k, ref);
			if (n)
				n->next_try_ms = 0;
			d->peer_scan = true;
			free(strmap_del(&d->partitions, k));
			return 0;
		}
	}
	return -1;
}

static struct pconn *peer_by_id(struct daemon *d, uint64_t id)
{
	struct pconn *c;

	TAILQ_FOREACH(c, &d->conns, entry)
	if (c->id == id)
		return c;
	return NULL;
}

void peer_pause(struct daemon *d, uint64_t id)
{
	struct pconn *c = peer_by_id(d, id);

	if (c && !c->paused && c->state == PC_OPEN) {
		c->paused = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

void peer_resume(struct daemon *d, uint64_t id)
{
	struct pconn *c = peer_by_id(d, id);

	if (c && c->paused && c->state == PC_OPEN) {
		c->paused = false;
		bufferevent_enable(c->bev, EV_READ);
		/* Bytes a filter (TLS) holds, and frames already buffered, need
		 * no new bytes to be read. */
		bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	}
}

const char *peer_channel_name(struct daemon *d, const char *channel)
{
	return d->cfg->channels[config_channel_index(d->cfg, channel)].name;
}

void peer_each_node(struct daemon *d, peer_node_fn fn, void *arg)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&d->nodes, &i, &k, &v);) {
		struct pnode *n = v;
		size_t out = 0;
		struct pconn *c;

		TAILQ_FOREACH(c, &d->conns, entry)
		if (c->node == n && c->bev)
			out += pconn_queued(c);
		fn(arg, n->name, n->up, &n->rtt, out);
	}
}

bool peer_suspect(struct daemon *d, const char *node, uint64_t *since_ms)
{
	struct pnode *n = pnode_get(d, node, false);

	return n && n->up && fd_suspect(n->fd, since_ms);
}

bool peer_is_up(struct daemon *d, const char *node)
{
	struct pnode *n = pnode_get(d, node, false);

	return n && n->up;
}

size_t peer_up_nodes(struct daemon *d, const char ***out)
{
	size_t n = 0, i = 0;
	const char *k;
	void *v;

	*out = xcalloc(d->nodes.len + 1, sizeof(**out));
	while (strmap_next(&d->nodes, &i, &k, &v))
		if (((struct pnode *)v)->up)
			(*out)[n++] = k;
	return n;
}

const char *peer_conn_subject(struct daemon *d, const char *node, const char *channel)
{
	struct pnode *n = pnode_get(d, node, false);
	size_t ch = config_channel_index(d->cfg, channel);
	const struct pconn *c;

	if (n == NULL || d->transport->peer_subject == NULL)
		return NULL;
	TAILQ_FOREACH(c, &d->conns, entry)
	if (c->node == n && c->state == PC_OPEN && c->chan == ch && c->tconn)
		return d->transport->peer_subject(c->tconn);
	return NULL;
}

void peer_conn_count(struct daemon *d, const char *node, const char *channel, unsigned *connected,
                     unsigned *wanted)
{
	struct pnode *n = pnode_get(d, node, false);
	size_t ch = config_channel_index(d->cfg, channel);

	*connected = 0;
	*wanted = d->cfg->channels[ch].parallelism;
	if (n == NULL)
		return;
	for (unsigned i = 0; i < *wanted; i++)
		if (n->out[ch][i] && n->out[ch][i]->state == PC_OPEN)
			(*connected)++;
}

bool peer_fully_connected(struct daemon *d, const char *node)
{
	for (size_t ch = 0; ch < d->cfg->nchannels; ch++) {
		unsigned have, want;

		peer_conn_count(d, node, d->cfg->channels[ch].name, &have, &want);
		if (have < want)
			return false;
	}
	return true;
}

int peer_probe(struct daemon *d, const char *ip, uint16_t port, uint64_t until, peer_probe_cb cb,
               void *arg)
{
	struct pconn *c = peer_dial(d, ip, port);

	if (c == NULL)
		return -1;
	c->probe = xmalloc(sizeof(*c->probe));
	c->probe->cb = cb;
	c->probe->arg = arg;
	c->probe->until = until;
	return 0;
}

void peer_probe_cancel(struct daemon *d, void *arg)
{
	struct pconn *c;

	TAILQ_FOREACH(c, &d->conns, entry)
	if (c->probe && c->probe->arg == arg) {
		free(c->probe);
		c->probe = NULL;
	}
}

/* Split NAME@HOST:PORT or HOST:PORT ([v6]:PORT), resolving HOST. Returns
 * 0, -1 when t is malformed, -2 when HOST does not resolve. */
int peer_parse_target(const char *t, char *name, size_t nn, char *ip, size_t ipn, uint16_t *port)
{
	const char *at = strchr(t, '@'), *host = at ? at + 1 : t;
	const char *colon = strrchr(host, ':');
	char hostbuf[256];
	struct addrinfo hints = {0}, *res = NULL;
	char *end;
	long p;

	if (colon == NULL || colon == host || (size_t)(colon - host) >= sizeof(hostbuf))
		return -1;
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	name[0] = '\0';
	if (at) {
		if ((size_t)(colon - t) >= nn)
			return -1;
		memcpy(name, t, (size_t)(colon - t));
		name[colon - t] = '\0';
	}
	memcpy(hostbuf, host, (size_t)(colon - host));
	hostbuf[colon - host] = '\0';
	if (hostbuf[0] == '[' && hostbuf[strlen(hostbuf) - 1] == ']') {
		memmove(hostbuf, hostbuf + 1, strlen(hostbuf));
		hostbuf[strlen(hostbuf) - 1] = '\0';
	}
	hints.ai_flags = AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(hostbuf, NULL, &hints, &res) != 0 || res == NULL)
		return -2;
	getnameinfo(res->ai_addr, res->ai_addrlen, ip, (socklen_t)ipn, NULL, 0, NI_NUMERICHOST);
	freeaddrinfo(res);
	return 0;
}
