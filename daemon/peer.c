/* peer.c: connections to other daemons (see peer.h).
 *
 * A connection opens with the acceptor's Challenge, the dialer's Hello and
 * the acceptor's HelloAck; each state accepts only the message it expects,
 * and anything else closes that connection alone with a logged reason.
 * A node is up while one default-channel outbound connection is open and
 * something was heard from it within failure_timeout_ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <mbedtls/md.h>

#include "advertise.h"
#include "framer.h"
#include "fd.h"
#include "ipc.h"
#include "log.h"
#include "peer.h"
#include "router.h"
#include "security.h"
#include "splice.h"
#include "transport.h"
#include "wire.h"

#define PEER_BACKOFF_MIN_MS      100
#define PEER_BACKOFF_MAX_MS      2000
#define PEER_MONOTONIC_WINDOW_MS 100
#define PEER_NONCE               16
#define PEER_KEEPALIVE_IDLE      5 /* failure timeouts before TCP keepalive probes */
#define PEER_KEEPALIVE_PROBES    2
#define PEER_HANDSHAKE_SCAN      5            /* ticks between looks for stuck handshakes */
#define PEER_IO_CHUNK            (256 * 1024) /* most bytes one read or write moves */
/* TLS handshakes this node runs as a dialer at once. A handshake costs
 * milliseconds of public-key arithmetic on each side: a node that dialled
 * every member at once would have them all time out together on a busy
 * host, and dial them all again. */
#define PEER_TLS_DIALS 8
#define PEER_HELLO_MAX (64 * 1024) /* the largest frame before the hello completes */

enum pconn_state {
	PC_CONNECTING,     /* dialer: TCP connect in progress */
	PC_WAIT_CHALLENGE, /* dialer: connected, waiting for Challenge */
	PC_WAIT_ACK,       /* dialer: Hello sent, waiting for HelloAck */
	PC_WAIT_HELLO,     /* acceptor: Challenge sent, waiting for Hello */
	PC_OPEN,
	PC_CLOSING, /* flushing output, then freed */
};

struct pnode;

struct probe {
	peer_probe_cb cb;
	void *arg;
};

struct pconn {
	struct daemon *d;
	struct bufferevent *bev;
	enum pconn_state state;
	bool outbound;
	struct pnode *node; /* NULL until the hello names it (or a probe) */
	size_t chan;        /* outbound: index into cfg->channels */
	unsigned idx;       /* outbound: index within the channel */
	uint64_t since_ms;  /* when the current state began */
	uint64_t last_send_ms;
	uint64_t turn; /* daemon turn of its last direct write */
	uint8_t nonce[PEER_NONCE];
	uint8_t peer_nonce[PEER_NONCE];
	struct probe *probe; /* join-by-address dial */
	uint64_t id;         /* for pause / resume by id */
	bool paused;         /* reading stopped: a local receiver is full */
	bool from_loopback;  /* accepted from a loopback address */
	char host[64];       /* accepted: the peer's address; dialled: "" */
	void *tconn;         /* the transport's handle (transport.h) */
	bool dialing;        /* counted in d->dialing until open or closed */
	char addr[80];       /* for logs */
	char refusal[160];   /* why the other side refused our hello */
	TAILQ_ENTRY(pconn) entry;
};

struct pnode {
	char *name;
	struct node_spec *spec; /* as last heard (hello) or asked for */
	bool wanted;            /* the manager wants us connected */
	bool up;
	struct fd_node *fd;  /* its failure detector record (fd.h) */
	struct pconn ***out; /* out[chan][idx] */
	uint64_t next_try_ms;
	uint64_t incarnation; /* as its last hello said; 0: unknown */
	uint64_t hb_asked_ms; /* our last heartbeat request, until its reply */
	struct peer_rtt rtt;  /* heartbeat round trips */
	unsigned backoff_ms;
	unsigned attempt;
};

static void pconn_close(struct pconn *c, const char *why);
struct pnode;
static struct pconn *pnode_pick(struct daemon *d, struct pnode *n, size_t ch, const void *key,
                                size_t keylen);
static void pnode_reported_silent(struct daemon *d, struct pnode *from,
                                  const PartisanPeer__Silent *sl);
static void pconn_read_cb(struct bufferevent *bev, void *arg);
static void pconn_write_cb(struct bufferevent *bev, void *arg);
static void pconn_event_cb(struct bufferevent *bev, short what, void *arg);

static const char *pconn_who(const struct pconn *c)
{
	return c->node ? c->node->name : c->addr;
}

static struct pnode *pnode_get(struct daemon *d, const char *name, bool create)
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
	n->fd = fd_node(d->fd, name);
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

static bool pnode_has_conns(struct daemon *d, struct pnode *n)
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
	{
		int pending = 0;

		if (c->node != n || c->state != PC_OPEN)
			continue;
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
			return true;
		if (ioctl(transport_fd(c->bev), FIONREAD, &pending) == 0 && pending > 0)
			return true;
	}
	return false;
}

/* Drop a node record nobody needs any more (only from peer_tick, so that
 * no caller up the stack holds it). */
static bool pnode_gc(struct daemon *d, struct pnode *n)
{
	if (n->wanted || n->up || pnode_has_conns(d, n))
		return false;
	fd_forget(d->fd, n->fd);
	strmap_del(&d->nodes, n->name);
	pnode_free(d, n);
	return true;
}

/* ---- framing ---- */

/* A lone small frame (a heartbeat) goes straight to the socket when nothing
 * is queued: one syscall instead of arming and disarming write events
 * around it. What the socket does not take is queued, and order is kept
 * because the queue was empty. Bulk traffic stays queued, so the event loop
 * writes many frames with one writev. */
static size_t pconn_write_now(struct pconn *c, const uint8_t *hdr, const uint8_t *buf, size_t len)
{
	struct iovec iov[2] = {{(void *)hdr, FRAME_HEADER}, {(void *)buf, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	ssize_t n;

	if (!c->d->transport->direct_io || c->state == PC_CONNECTING ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return 0;
	n = sendmsg(transport_fd(c->bev), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n > 0 ? (size_t)n : 0;
}

/* Something of ours (bytes long, framed) went on c: it proves us alive to
 * the node. */
static void pconn_sent(struct pconn *c, size_t bytes)
{
	c->d->stats.bytes_out += bytes;
	c->d->stats.chan[c->chan].bytes_out += bytes;
	c->last_send_ms = daemon_now_ms();
	if (c->node)
		fd_sent(c->node->fd, c->last_send_ms);
}

static void pconn_write_frame(struct pconn *c, const uint8_t *buf, size_t len, bool now)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint8_t hdr[FRAME_HEADER];
	size_t done;

	frame_put_header(hdr, (uint32_t)len);
	done = now ? pconn_write_now(c, hdr, buf, len) : 0;
	if (done < FRAME_HEADER)
		evbuffer_add(out, hdr + done, FRAME_HEADER - done);
	if (done < FRAME_HEADER + len) {
		size_t skip = done > FRAME_HEADER ? done - FRAME_HEADER : 0;

		evbuffer_add(out, buf + skip, len - skip);
	}
	pconn_sent(c, FRAME_HEADER + len);
}

static void pconn_write_msg_now(struct pconn *c, const PartisanPeer__PeerMsg *msg, bool now)
{
	size_t len = partisan_peer__peer_msg__get_packed_size(msg);
	uint8_t stackbuf[512];

	/* A small frame may go straight to the socket; a big one is packed
	 * straight into the output queue. */
	if (len <= sizeof(stackbuf)) {
		partisan_peer__peer_msg__pack(msg, stackbuf);
		pconn_write_frame(c, stackbuf, len, now);
		return;
	}
	pconn_sent(c, daemon_frame_add(bufferevent_get_output(c->bev), &msg->base));
}

/* The first frame of a turn goes out at once (latency: no extra loop pass
 * before a lone message leaves); later ones queue and leave together. */
static void pconn_write_msg(struct pconn *c, const PartisanPeer__PeerMsg *msg)
{
	bool first = c->turn != c->d->turn;

	c->turn = c->d->turn;
	pconn_write_msg_now(c, msg, first);
}

/* ---- node up / down ---- */

static bool pnode_default_open(struct daemon *d, struct pnode *n)
{
	for (unsigned i = 0; i < d->cfg->channels[0].parallelism; i++)
		if (n->out[0][i] && n->out[0][i]->state == PC_OPEN)
			return true;
	return false;
}

static void pnode_set_up(struct daemon *d, struct pnode *n)
{
	if (n->up || !pnode_default_open(d, n) || n->spec == NULL)
		return;
	n->up = true;
	fd_node_up(d->fd, n->fd, daemon_now_ms());
	n->backoff_ms = PEER_BACKOFF_MIN_MS;
	log_info("peer", "%s: up", n->name);
	daemon_node_up(d, n->spec);
}

/* Close n's outbound connections (flushing what is queued) and report it
 * down. Inbound ones too when inbound is set (a hung node, or one we drop);
 * otherwise they deliver what the node sent before closing them itself. */
static void pnode_down(struct daemon *d, struct pnode *n, const char *reason, bool inbound)
{
	struct pconn *c, *tmp;
	bool was_up = n->up;

	n->up = false;
	fd_node_down(d->fd, n->fd);
	TAILQ_FOREACH_SAFE(c, &d->conns, entry, tmp)
	if (c->node == n && c->state != PC_CLOSING && (inbound || c->outbound))
		pconn_close(c, reason);
	if (was_up) {
		log_notice("peer", "%s: down (%s)", n->name, reason);
		daemon_node_down(d, n->name, reason);
	}
}

/* ---- connection lifecycle ---- */

static void pconn_detach(struct pconn *c)
{
	struct pnode *n = c->node;

	if (n && c->outbound && n->out[c->chan][c->idx] == c) {
		n->out[c->chan][c->idx] = NULL;
		c->d->peer_scan = true; /* a slot to fill */
	}
}

/* c's handshake as a dialer ended, one way or the other. */
static void pconn_dial_done(struct pconn *c)
{
	if (c->dialing) {
		c->dialing = false;
		c->d->dialing--;
	}
}

static void pconn_free(struct pconn *c)
{
	struct daemon *d = c->d;

	pconn_dial_done(c);
	pconn_detach(c);
	TAILQ_REMOVE(&d->conns, c, entry);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->probe) {
		c->probe->cb(d, c->probe->arg, NULL, "connection closed before hello");
		free(c->probe);
	}
	free(c);
}

/* Closing, once nothing is left to write: half-close so the other side reads
 * everything we sent, then wait for its EOF (a full close with unread input
 * would reset the link and could destroy what we sent last). */
static void pconn_half_close(struct pconn *c)
{
	c->d->transport->close_write(c->bev, c->tconn);
}

/* In CLOSING: discard whatever still arrives. */
static void pconn_discard_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

/* Close c: queued output is flushed first unless the link is already broken
 * (broken: the socket already failed, so free it now). */
static void pconn_close_how(struct pconn *c, const char *why, bool broken)
{
	struct daemon *d = c->d;
	struct pnode *n = c->node;
	bool was_open = c->state == PC_OPEN;

	if (c->state == PC_CLOSING)
		return;
	log_debug("peer", "%s: closing connection (%s)", pconn_who(c), why);
	pconn_dial_done(c);
	if (!was_open)
		d->stats.conns_failed++;
	pconn_detach(c);
	c->state = PC_CLOSING;
	c->since_ms = daemon_now_ms();
	if (c->probe) {
		c->probe->cb(d, c->probe->arg, NULL, why);
		free(c->probe);
		c->probe = NULL;
	}
	if (broken || c->bev == NULL) {
		c->node = NULL;
		pconn_free(c);
	} else {
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		bufferevent_setcb(c->bev, pconn_discard_cb, pconn_write_cb, pconn_event_cb, c);
		bufferevent_enable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			pconn_half_close(c);
	}
	if (n && was_open && n->up && !pnode_default_open(d, n))
		pnode_down(d, n, why, false);
	if (n && n->wanted && n->next_try_ms < daemon_now_ms() + n->backoff_ms)
		n->next_try_ms = daemon_now_ms() + n->backoff_ms;
}

static void pconn_close(struct pconn *c, const char *why)
{
	pconn_close_how(c, why, false);
}

static struct pconn *pconn_new(struct daemon *d, struct bufferevent *bev, bool outbound)
{
	struct pconn *c = xcalloc(1, sizeof(*c));

	static uint64_t next_id;

	c->d = d;
	c->id = ++next_id;
	c->bev = bev;
	c->outbound = outbound;
	c->since_ms = daemon_now_ms();
	TAILQ_INSERT_TAIL(&d->conns, c, entry);
	bufferevent_setcb(bev, pconn_read_cb, pconn_write_cb, pconn_event_cb, c);
	bufferevent_setwatermark(bev, EV_WRITE, d->cfg->peer_queue_bytes / 2, 0);
	/* libevent's default of 16 KiB per read or write costs a syscall and a
	 * loop turn per 16 KiB on a busy link. */
	bufferevent_set_max_single_read(bev, PEER_IO_CHUNK);
	bufferevent_set_max_single_write(bev, PEER_IO_CHUNK);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return c;
}

/* ---- handshake ---- */

/* With certificates and a secret, the hello proves the secret too: an HMAC
 * of the other side's nonce under the current secret, or the next one. */
static void peer_mac_with(const uint8_t *key, size_t keylen, const char *tag, const uint8_t *nonce,
                          size_t nlen, const char *name, uint8_t out[32])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	mbedtls_md_context_t ctx;

	mbedtls_md_init(&ctx);
	mbedtls_md_setup(&ctx, md, 1);
	mbedtls_md_hmac_starts(&ctx, key, keylen);
	mbedtls_md_hmac_update(&ctx, (const unsigned char *)tag, 4);
	mbedtls_md_hmac_update(&ctx, nonce, nlen);
	mbedtls_md_hmac_update(&ctx, (const unsigned char *)name, strlen(name));
	mbedtls_md_hmac_finish(&ctx, out);
	mbedtls_md_free(&ctx);
}

static void peer_mac(struct daemon *d, const char *tag, const uint8_t *nonce, size_t nlen,
                     const char *name, uint8_t out[32])
{
	const struct secrets *s = security_secrets(d);

	peer_mac_with(s->key[0], s->len[0], tag, nonce, nlen, name, out);
}

static bool peer_mac_ok(struct daemon *d, const char *tag, const uint8_t *nonce, size_t nlen,
                        const char *name, const ProtobufCBinaryData *mac)
{
	const struct secrets *s = security_secrets(d);
	bool ok = false;

	if (!security_hello_mac(d))
		return true;
	if (mac == NULL || mac->len != 32)
		return false;
	for (size_t k = 0; k < s->n; k++) {
		uint8_t want[32], diff = 0;

		peer_mac_with(s->key[k], s->len[k], tag, nonce, nlen, name, want);
		for (size_t i = 0; i < 32; i++)
			diff |= want[i] ^ mac->data[i];
		ok = ok || diff == 0;
	}
	return ok;
}

static void peer_fill_nonce(uint8_t *buf, size_t n)
{
	if (getrandom(buf, n, 0) != (ssize_t)n)
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(daemon_now_ms() >> (i % 8));
}

static void pconn_send_challenge(struct pconn *c)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Challenge ch = PARTISAN_PEER__CHALLENGE__INIT;

	peer_fill_nonce(c->nonce, PEER_NONCE);
	ch.version = PEER_PROTOCOL_VERSION;
	ch.nonce.data = c->nonce;
	ch.nonce.len = PEER_NONCE;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_CHALLENGE;
	m.challenge = &ch;
	pconn_write_msg(c, &m);
	c->state = PC_WAIT_HELLO;
}

static int pconn_on_challenge(struct pconn *c, const PartisanPeer__Challenge *ch, const char **why)
{
	struct daemon *d = c->d;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Hello h = PARTISAN_PEER__HELLO__INIT;
	PartisanCommon__NodeSpec spec;
	uint8_t mac[32];

	if (ch->version != PEER_PROTOCOL_VERSION)
		return *why = "peer speaks another protocol version", -1;
	peer_fill_nonce(c->nonce, PEER_NONCE);
	node_spec_to_pb(d->self, &spec);
	h.version = PEER_PROTOCOL_VERSION;
	h.cluster = d->cfg->cluster_name;
	h.spec = &spec;
	h.channel = d->cfg->channels[c->chan].name;
	h.index = c->idx;
	h.has_nonce = 1;
	h.nonce.data = c->nonce;
	h.nonce.len = PEER_NONCE;
	h.has_incarnation = 1;
	h.incarnation = d->incarnation;
	if (security_hello_mac(d)) {
		peer_mac(d, "dial", ch->nonce.data, ch->nonce.len, d->self->name, mac);
		h.has_mac = 1;
		h.mac.data = mac;
		h.mac.len = sizeof(mac);
	}
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HELLO;
	m.hello = &h;
	pconn_write_msg(c, &m);
	node_spec_pb_release(&spec);
	c->state = PC_WAIT_ACK;
	c->since_ms = daemon_now_ms();
	return 0;
}

/* The node behind keep speaks as incarnation inc. A newer one than we knew
 * means it restarted: the links of the old one go now (they lead to a dead
 * process, or to one about to die) and it is dialled afresh at the spec it
 * just gave. An older one is refused. 0, or -1 with *why. */
static int pnode_incarnation(struct daemon *d, struct pnode *n, struct pconn *keep, uint64_t inc,
                             const char **why)
{
	struct pnode *kept = keep->node;

	if (inc == 0 || inc == n->incarnation)
		return 0;
	if (inc < n->incarnation)
		return *why = "an older incarnation of that node", -1;
	if (n->incarnation != 0 && (n->up || pnode_has_conns(d, n))) {
		log_notice("peer", "%s: restarted (new incarnation): its old links close", n->name);
		keep->node = NULL; /* spared by pnode_down */
		pnode_down(d, n, "restarted", true);
		keep->node = kept;
		n->backoff_ms = PEER_BACKOFF_MIN_MS;
		n->next_try_ms = 0;
	}
	n->incarnation = inc;
	return 0;
}

static void pconn_refuse(struct pconn *c, const char *reason)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Refuse r = PARTISAN_PEER__REFUSE__INIT;

	r.reason = (char *)reason;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_REFUSE;
	m.refuse = &r;
	pconn_write_msg(c, &m);
}

/* Why a hello's spec is refused: it gives no address we could dial back. */
static const char *pconn_unusable(struct pconn *c, const struct node_spec *s)
{
	const struct ns_addr *a = &s->addrs[0];

	snprintf(c->refusal, sizeof(c->refusal),
	         "hello: %s advertises no address other nodes can dial (%s%s): set its "
	         "advertise_addrs",
	         s->name, peer_addr_text(a->ip, a->port), s->naddrs > 1 ? ", ..." : "");
	log_warnx("peer", "%s: refused: %s", c->addr, c->refusal);
	return c->refusal;
}

/* With certificates, the name a peer claims must be one its certificate
 * names (tls.c says which do). True, with *why, when it is not. */
static bool pconn_name_unproven(struct pconn *c, const char *name, const char **why)
{
	const struct transport_ops *t = c->d->transport;
	char reason[sizeof(c->refusal) - 16];

	if (t->peer_name_ok == NULL || c->tconn == NULL ||
	    t->peer_name_ok(c->tconn, name, reason, sizeof(reason)) == 0)
		return false;
	snprintf(c->refusal, sizeof(c->refusal), "hello: %s", reason);
	*why = c->refusal;
	return true;
}

/* A hello naming a node that is linked to us from another address, not one
 * it advertises: someone else claims its name (whatever incarnation it
 * says). A node that really moved to another host is let in once its old
 * links are found dead. */
static bool pconn_name_taken(struct pconn *c, const char *name, const char **why)
{
	struct pnode *n = pnode_get(c->d, name, false);
	const struct pconn *o;

	if (n == NULL || !n->up)
		return false;
	for (size_t i = 0; n->spec && i < n->spec->naddrs; i++)
		if (strcmp(n->spec->addrs[i].ip, c->host) == 0)
			return false; /* one of its own addresses (dual stack, say) */
	TAILQ_FOREACH(o, &c->d->conns, entry)
	if (o->node == n && !o->outbound && o->state == PC_OPEN && strcmp(o->host, c->host) != 0) {
		snprintf(c->refusal, sizeof(c->refusal), "hello: %s is linked from %s already",
		         name, o->host);
		log_notice("peer", "%s: refused: %s", c->addr, c->refusal);
		*why = c->refusal;
		return true;
	}
	return false;
}

static int pconn_on_hello(struct pconn *c, const PartisanPeer__Hello *h, const char **why)
{
	struct daemon *d = c->d;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HelloAck ack = PARTISAN_PEER__HELLO_ACK__INIT;
	PartisanCommon__NodeSpec spec;
	struct node_spec *their = NULL;
	struct pnode *n;
	uint8_t mac[32];

	if (h->version != PEER_PROTOCOL_VERSION)
		*why = "hello: another protocol version";
	else if (strcmp(h->cluster, d->cfg->cluster_name) != 0)
		*why = "hello: node of another cluster";
	else if (!peer_mac_ok(d, "dial", c->nonce, PEER_NONCE, h->spec->name,
	                      h->has_mac ? &h->mac : NULL))
		*why = "hello: cluster secret not proven";
	else if ((their = node_spec_from_pb(h->spec, why)) == NULL)
		;
	else if (strcmp(their->name, d->self->name) == 0)
		*why = "hello: node has our own name";
	else if (pconn_name_unproven(c, their->name, why))
		;
	else if (pconn_name_taken(c, their->name, why))
		;
	else if (!advertise_spec_usable(their, c->from_loopback))
		*why = pconn_unusable(c, their);
	else if (peer_partitioned(d, their->name))
		*why = "hello: node is behind an injected partition";
	else if (d->stopped)
		*why = "hello: this node has left the cluster";
	if (*why) {
		node_spec_free(their);
		pconn_refuse(c, *why);
		return -1;
	}
	n = pnode_get(d, their->name, true);
	if (pnode_incarnation(d, n, c, h->has_incarnation ? h->incarnation : 0, why) < 0) {
		node_spec_free(their);
		pconn_refuse(c, *why);
		return -1;
	}
	if (n->spec == NULL || !node_spec_equal(n->spec, their)) {
		node_spec_free(n->spec);
		n->spec = their;
	} else {
		node_spec_free(their);
	}
	c->node = n;
	fd_heard(n->fd, daemon_now_ms());
	node_spec_to_pb(d->self, &spec);
	ack.spec = &spec;
	ack.has_incarnation = 1;
	ack.incarnation = d->incarnation;
	if (security_hello_mac(d) && h->has_nonce) {
		peer_mac(d, "acpt", h->nonce.data, h->nonce.len, d->self->name, mac);
		ack.has_mac = 1;
		ack.mac.data = mac;
		ack.mac.len = sizeof(mac);
	}
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HELLO_ACK;
	m.hello_ack = &ack;
	pconn_write_msg(c, &m);
	node_spec_pb_release(&spec);
	c->state = PC_OPEN;
	c->chan = config_channel_index(d->cfg, h->channel); /* for the counters */
	d->stats.conns_opened++;
	log_debug("peer", "%s: accepted %s connection %u", n->name, h->channel, h->index);
	return 0;
}

/* A probe learned who answers at an address: hand the spec over. */
static void pconn_finish_probe(struct pconn *c, const struct node_spec *spec)
{
	struct probe *p = c->probe;

	c->probe = NULL;
	p->cb(c->d, p->arg, spec, NULL);
	free(p);
}

static int pconn_on_ack(struct pconn *c, const PartisanPeer__HelloAck *ack, const char **why)
{
	struct daemon *d = c->d;
	struct node_spec *their = node_spec_from_pb(ack->spec, why);
	struct pnode *n;

	if (their == NULL)
		return -1;
	if (!peer_mac_ok(d, "acpt", c->nonce, PEER_NONCE, their->name,
	                 ack->has_mac ? &ack->mac : NULL)) {
		node_spec_free(their);
		return *why = "hello ack: cluster secret not proven", -1;
	}
	if (c->node && strcmp(c->node->name, their->name) != 0) {
		log_warnx("peer", "%s: expected %s at this address, found %s", c->addr,
		          c->node->name, their->name);
		node_spec_free(their);
		return *why = "another node answers at this address", -1;
	}
	if (strcmp(their->name, d->self->name) == 0) {
		node_spec_free(their);
		return *why = "that address is this node", -1;
	}
	if (pconn_name_unproven(c, their->name, why)) {
		node_spec_free(their);
		return -1;
	}
	if (peer_partitioned(d, their->name)) {
		node_spec_free(their);
		return *why = "node is behind an injected partition", -1;
	}
	n = pnode_get(d, their->name, true);
	if (pnode_incarnation(d, n, c, ack->has_incarnation ? ack->incarnation : 0, why) < 0) {
		node_spec_free(their);
		return -1;
	}
	node_spec_free(n->spec);
	n->spec = their;
	fd_heard(n->fd, daemon_now_ms());
	c->state = PC_OPEN;
	pconn_dial_done(c);
	d->stats.conns_opened++;
	if (c->node == NULL) {
		/* A probe: keep the link as the node's first default connection. */
		c->node = n;
		if (n->out[0][0] == NULL) {
			n->out[0][0] = c;
			c->chan = 0;
			c->idx = 0;
		}
	}
	if (c->probe)
		pconn_finish_probe(c, their);
	if (c->outbound && n->out[c->chan][c->idx] != c) {
		/* The slot was filled meanwhile: this link is surplus. */
		return *why = "duplicate connection", -1;
	}
	pnode_set_up(d, n);
	ipc_joins_check(d); /* a sync_join may be complete with this link */
	return 0;
}

const double peer_rtt_bounds_ms[PEER_RTT_BUCKETS] = {0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000};

static void pnode_rtt(struct pnode *n, uint64_t ms)
{
	for (size_t i = 0; i < PEER_RTT_BUCKETS; i++)
		if ((double)ms <= peer_rtt_bounds_ms[i])
			n->rtt.buckets[i]++;
	n->rtt.count++;
	n->rtt.sum_ms += ms;
}

static void pconn_heartbeat(struct pconn *c, bool reply)
{
	if (!reply && c->node)
		c->node->hb_asked_ms = daemon_now_ms();
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Heartbeat hb = PARTISAN_PEER__HEARTBEAT__INIT;

	hb.has_reply = reply;
	hb.reply = reply;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	pconn_write_msg_now(c, &m, true);
}

/* One decoded frame, in the connection's current state. */
static int pconn_dispatch(struct pconn *c, const PartisanPeer__PeerMsg *m, const char **why)
{
	PartisanPeer__PeerMsg__BodyCase k = m->body_case;

	switch (c->state) {
	case PC_CONNECTING: /* bytes can be read before the connect event is seen */
	case PC_WAIT_CHALLENGE:
		if (k != PARTISAN_PEER__PEER_MSG__BODY_CHALLENGE)
			return *why = "expected challenge", -1;
		return pconn_on_challenge(c, m->challenge, why);
	case PC_WAIT_HELLO:
		if (k != PARTISAN_PEER__PEER_MSG__BODY_HELLO)
			return *why = "expected hello", -1;
		return pconn_on_hello(c, m->hello, why);
	case PC_WAIT_ACK:
		if (k == PARTISAN_PEER__PEER_MSG__BODY_REFUSE) {
			log_warnx("peer", "%s: refused us: %s", pconn_who(c), m->refuse->reason);
			snprintf(c->refusal, sizeof(c->refusal), "refused: %s", m->refuse->reason);
			return *why = c->refusal, -1;
		}
		if (k != PARTISAN_PEER__PEER_MSG__BODY_HELLO_ACK)
			return *why = "expected hello ack", -1;
		return pconn_on_ack(c, m->hello_ack, why);
	case PC_OPEN:
		break;
	default:
		return 0;
	}
	fd_heard(c->node->fd, daemon_now_ms());
	switch (k) {
	case PARTISAN_PEER__PEER_MSG__BODY_CHALLENGE:
	case PARTISAN_PEER__PEER_MSG__BODY_HELLO:
	case PARTISAN_PEER__PEER_MSG__BODY_HELLO_ACK:
		return *why = "handshake message on an open connection", -1;
	case PARTISAN_PEER__PEER_MSG__BODY_REFUSE:
		return *why = "peer refused", -1;
	case PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT:
		/* It counted as heard. A request wants an answer unless we
		 * already sent this node something this round. */
		if (m->heartbeat->has_reply && m->heartbeat->reply) {
			if (c->node->hb_asked_ms) /* the coarse clock: a few ms of grain */
				pnode_rtt(c->node, daemon_now_ms() - c->node->hb_asked_ms);
			c->node->hb_asked_ms = 0;
		} else if (fd_heartbeat_asked(c->d->fd, c->node->fd)) {
			pconn_heartbeat(c, true);
		}
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_SILENT:
		pnode_reported_silent(c->d, c->node, m->silent);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY__NOT_SET:
		return *why = "empty message", -1;
	default:
		return daemon_peer_msg(c->d, c->node->name, m, why);
	}
}

/* The path of the bytes Data carries: PeerMsg.data, Data.payload. */
static const uint32_t peer_data_path[] = {PARTISAN_PEER__PEER_MSG__BODY_DATA, 3};

/* A frame whose payload was split out into d->splice: plain data goes to
 * its endpoint with the bytes moved (true); anything else gets the payload
 * back and is dispatched as usual (false). */
static bool pconn_data_big(struct pconn *c, PartisanPeer__PeerMsg *m, ProtobufCAllocator *al)
{
	struct daemon *d = c->d;

	if (m->body_case == PARTISAN_PEER__PEER_MSG__BODY_DATA && c->node != NULL) {
		fd_heard(c->node->fd, daemon_now_ms());
		if (router_data_big(d, c->node->name, m->data, d->splice))
			return true;
		splice_take(d->splice, al, &m->data->payload);
	}
	return false;
}

/* A TLS record where a plain hello frame belongs: a TLS peer (the plain
 * reader would take it for a frame of some 369 MB). */
static bool pconn_tls_hello(struct pconn *c, struct evbuffer *in)
{
	uint8_t hdr[2];

	if (c->state != PC_WAIT_HELLO || evbuffer_copyout(in, hdr, 2) < 2 || hdr[0] != 0x16 ||
	    hdr[1] != 0x03)
		return false;
	log_warnx("peer",
	          "%s: refused: the peer speaks TLS and links here are plain TCP "
	          "(set tls or cluster.secret_file alike on both)",
	          pconn_who(c));
	c->d->stats.peer_frames_bad++;
	pconn_close(c, "a TLS peer");
	return true;
}

static void pconn_read_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	struct daemon *d = c->d;
	struct evbuffer *in = bufferevent_get_input(bev);
	const struct framer fr = {&partisan_peer__peer_msg__descriptor, peer_data_path,
	                          &d->peer_arena, d->splice};

	d->turn++;
	if (!c->paused && d->transport->direct_io)
		daemon_read_more(bev, PEER_IO_CHUNK);
	if (pconn_tls_hello(c, in))
		return;
	while (c->state != PC_CLOSING && !c->paused) {
		/* A payload of max_frame_bytes from a client arrives here with
		 * the sender's refs around it: the same slack as on the IPC
		 * socket. Before the hello, only a hello's worth. */
		bool open = c->state == PC_OPEN;
		uint64_t max = open ? d->cfg->max_frame_bytes + 4096 : PEER_HELLO_MAX;
		const char *why = NULL;
		struct frame f;
		int r;

		switch (frame_next(&fr, in, max, open ? 2 : 0, &f)) { /* only data splits */
		case FRAME_WAIT:
			return;
		case FRAME_TOO_BIG:
			log_warnx("peer", "%s: frame of %u bytes over %s, closing", pconn_who(c),
			          f.len, open ? "max_frame_bytes" : "what a hello may take");
			d->stats.peer_frames_bad++;
			pconn_close(c, "frame too large");
			return;
		case FRAME_BAD:
			log_warnx("peer", "%s: undecodable frame, closing", pconn_who(c));
			d->stats.peer_frames_bad++;
			pconn_close(c, "bad frame");
			return;
		case FRAME_OK:
			break;
		}
		d->stats.bytes_in += FRAME_HEADER + (size_t)f.len;
		d->stats.chan[c->chan].bytes_in += FRAME_HEADER + (size_t)f.len;
		d->cur_conn = c->id;
		if (f.big && pconn_data_big(c, (PartisanPeer__PeerMsg *)f.msg, f.al))
			r = 0;
		else
			r = pconn_dispatch(c, (PartisanPeer__PeerMsg *)f.msg, &why);
		d->cur_conn = 0;
		frame_done(&fr, &f);
		if (r < 0) {
			if (strcmp(why, "duplicate connection") != 0) {
				log_warnx("peer", "%s: %s, closing", pconn_who(c), why);
				d->stats.peer_frames_bad++;
			}
			pconn_close(c, why);
			return;
		}
	}
}

static void pconn_write_cb(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;

	if (c->state == PC_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		pconn_half_close(c);
	} else if (c->state == PC_OPEN) {
		daemon_peer_drained(c->d);
	}
}

/* Only links to ring neighbours carry heartbeats; the kernel's keepalive
 * is the backstop that finds any other idle link dead (a host gone, a
 * network cut): after PEER_KEEPALIVE_IDLE failure timeouts of silence, then
 * PEER_KEEPALIVE_PROBES probes one failure timeout apart. A probe costs the
 * kernel a timer and a packet, and no daemon a wakeup. */
static void pconn_keepalive(struct daemon *d, int fd)
{
	int one = 1, secs = (int)((d->cfg->failure_timeout_ms + 999) / 1000);
	int idle = PEER_KEEPALIVE_IDLE * secs, probes = PEER_KEEPALIVE_PROBES;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
}

/* What the transport knows of why c failed (a TLS alert), or NULL. */
static const char *pconn_transport_error(const struct pconn *c)
{
	const struct transport_ops *t = c->d->transport;

	return t->error && c->tconn ? t->error(c->tconn) : NULL;
}

static void pconn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pconn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		setsockopt(transport_fd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pconn_keepalive(c->d, transport_fd(bev));
		if (c->state == PC_CONNECTING) {
			c->state = PC_WAIT_CHALLENGE;
			c->since_ms = daemon_now_ms();
		}
		return;
	}
	if (c->state == PC_CLOSING) {
		c->node = NULL;
		pconn_free(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->state != PC_OPEN && pconn_transport_error(c)) {
		/* Gone before TLS began: a plain node that gave up on us, say. */
		log_info("peer", "%s: closed before the handshake: %s", pconn_who(c),
		         pconn_transport_error(c));
		pconn_close_how(c, pconn_transport_error(c), false);
	} else if (what & BEV_EVENT_EOF)
		pconn_close_how(c, "connection closed", false);
	else if ((what & BEV_EVENT_ERROR) && pconn_transport_error(c))
		pconn_close_how(c, pconn_transport_error(c), true);
	else if (what & BEV_EVENT_ERROR)
		pconn_close_how(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), true);
	else
		pconn_close_how(c, "connection event", true);
}

/* No hello within connect_timeout_ms. Where the silence has a likely
 * cause (a TLS peer waiting for our ClientHello, or one sending nothing
 * TLS could read), say it once: a dialer retries with backoff. */
static void pconn_handshake_timeout(struct pconn *c)
{
	const char *why = pconn_transport_error(c);

	if (why == NULL && c->state == PC_WAIT_CHALLENGE && c->d->transport->direct_io)
		why = "no challenge from the peer (a TLS node? tls and cluster.secret_file must "
		      "agree on both sides)";
	if (why == NULL) {
		pconn_close(c, "handshake timed out");
		return;
	}
	if (c->d->transport->direct_io)
		log_info("peer", "%s: handshake timed out: %s", pconn_who(c), why);
	else
		log_warnx("peer", "%s: handshake timed out: %s", pconn_who(c), why);
	pconn_close(c, why);
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
	c = pconn_new(d, bev, true);
	c->tconn = tconn;
	c->dialing = true;
	d->dialing++;
	c->state = PC_CONNECTING;
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
			if (!d->transport->direct_io && d->dialing >= PEER_TLS_DIALS) {
				d->peer_scan = true; /* the next tick dials on */
				break;
			}
			pnode_dial_slot(d, n, ch, i);
			dialed = true;
		}
	}
	if (dialed) {
		n->attempt++;
		n->next_try_ms = now + n->backoff_ms;
		n->backoff_ms = n->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS
		                                                        : n->backoff_ms * 2;
	}
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
		return;               /* the transport closed fd */
	c = pconn_new(d, bev, false); /* keepalive and nodelay: from the listener */
	c->tconn = tconn;
	c->from_loopback = loopback;
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->addr, sizeof(c->addr), "%s",
	         peer_addr_text(host, ntohs(((struct sockaddr_in *)sa)->sin_port)));
	pconn_send_challenge(c);
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

	/* The ring needs every node linked to every other (full_mesh). */
	d->fd =
	    fd_create(d->self->name, cfg->failure_timeout_ms, cfg->manager == MANAGER_FULL_MESH);
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
	fd_destroy(d->fd);
	d->fd = NULL;
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

/* Tell every other up node that n went silent. */
static void peer_tell_silent(struct daemon *d, const struct pnode *n, uint64_t silent_ms)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Silent sl = PARTISAN_PEER__SILENT__INIT;
	const char *k;
	void *v;

	sl.node = n->name;
	sl.has_silent_ms = true;
	sl.silent_ms = silent_ms;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_SILENT;
	m.silent = &sl;
	for (size_t i = 0; strmap_next(&d->nodes, &i, &k, &v);) {
		struct pnode *o = v;
		struct pconn *c = o->up ? pnode_pick(d, o, 0, NULL, 0) : NULL;

		if (c)
			pconn_write_msg_now(c, &m, true);
	}
}

/* ---- failure detection: the decisions are fd.c's, the I/O is here ---- */

static void peer_fd_heartbeat(struct daemon *d, struct pnode *n)
{
	struct pconn *c = pnode_pick(d, n, 0, NULL, 0);

	if (c)
		pconn_heartbeat(c, false);
}

static void peer_fd_down(struct daemon *d, struct pnode *n, const struct fd_action *a, uint64_t now)
{
	if (a->reason == FD_TIMEOUT) {
		log_warnx("peer", "%s: nothing heard for %llu ms", n->name,
		          (unsigned long long)a->silent_ms);
		d->stats.fd_timeouts++;
	} else {
		log_warnx("peer", "%s: silent for %llu ms says %s, nothing heard here for %llu ms",
		          n->name, (unsigned long long)a->silent_ms, a->by,
		          (unsigned long long)a->heard_ago_ms);
		d->stats.fd_silent++;
	}
	pnode_down(d, n, "timeout", true);
	n->next_try_ms = now + n->backoff_ms;
}

/* Carry out (and clear) what the failure detector asked for. */
static void peer_fd_do(struct daemon *d, struct fd_actions *acts, uint64_t now)
{
	for (size_t i = 0; i < acts->n; i++) {
		const struct fd_action *a = &acts->v[i];
		struct pnode *n = pnode_get(d, a->name, false);

		if (n == NULL)
			continue;
		switch (a->kind) {
		case FD_HEARTBEAT:
			peer_fd_heartbeat(d, n);
			break;
		case FD_SUSPECT:
			d->stats.fd_suspicions++;
			log_info("peer",
			         "%s: silent says %s, but heard here %llu ms ago; asking it",
			         n->name, a->by, (unsigned long long)a->heard_ago_ms);
			peer_fd_heartbeat(d, n);
			break;
		case FD_DOWN:
			peer_fd_down(d, n, a, now);
			break;
		case FD_SILENT_TELL:
			peer_tell_silent(d, n, a->silent_ms);
			break;
		}
	}
	fd_actions_clear(acts);
}

/* A watcher of node says it went silent (fd.c decides what to believe). */
static void pnode_reported_silent(struct daemon *d, struct pnode *from,
                                  const PartisanPeer__Silent *sl)
{
	struct pnode *n = sl->node ? pnode_get(d, sl->node, false) : NULL;
	uint64_t now = daemon_now_ms();
	struct fd_actions acts;

	if (n == NULL || n == from || !n->up)
		return;
	fd_actions_init(&acts);
	fd_silent_report(d->fd, from->fd, n->fd, sl->silent_ms, pnode_unread(d, n), now, &acts);
	peer_fd_do(d, &acts, now);
	fd_actions_free(&acts);
}

/* Bytes waiting unread are life: tell the detector about the nodes it
 * would time out now. */
static void peer_fd_unread(struct daemon *d, uint64_t now)
{
	struct fd_node **due;
	size_t k = fd_overdue(d->fd, now, &due);

	for (size_t i = 0; i < k; i++) {
		struct pnode *n = pnode_get(d, fd_node_name(due[i]), false);

		if (n && pnode_unread(d, n))
			fd_unread(due[i], now);
	}
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
		if (c->state != PC_OPEN && c->state != PC_CLOSING && now > c->since_ms + handshake)
			pconn_handshake_timeout(c);
		else if (c->state == PC_CLOSING && now > c->since_ms + handshake) {
			c->node = NULL;
			pconn_free(c); /* the other side never closed its end */
		}
	}
}

void peer_tick(struct daemon *d, uint64_t now)
{
	struct fd_actions acts;
	const char *k;
	void *v;
	bool full;

	/* Failure detection first (fd.c). A tick of an idle daemon then
	 * touches nothing more; every node is looked at when one waits for a
	 * connection or for its record to go, and once a heartbeat round. */
	fd_actions_init(&acts);
	peer_fd_unread(d, now);
	full = fd_tick(d->fd, now, &acts);
	full = full || d->peer_scan;
	peer_fd_do(d, &acts, now);
	fd_actions_free(&acts);
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

void peer_forgive(struct daemon *d, uint64_t now)
{
	fd_forgive(d->fd, now);
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
	queued = evbuffer_get_length(bufferevent_get_output(c->bev));
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
	return evbuffer_get_length(bufferevent_get_output(c->bev)) > d->cfg->peer_queue_bytes
	           ? PEER_SENT_FULL
	           : PEER_SENT;
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
			out += evbuffer_get_length(bufferevent_get_output(c->bev));
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

int peer_probe(struct daemon *d, const char *ip, uint16_t port, peer_probe_cb cb, void *arg)
{
	struct pconn *c = peer_dial(d, ip, port);

	if (c == NULL)
		return -1;
	c->probe = xmalloc(sizeof(*c->probe));
	c->probe->cb = cb;
	c->probe->arg = arg;
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
