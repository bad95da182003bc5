/* link.c: one peer connection (struct pconn, peer-int.h). It owns the
 * connection's lifecycle (new, close, half-close, free) and its state, set
 * only through pconn_set_state(), which logs each transition; the framing
 * and the output queue (a lone frame written straight to the socket, the
 * rest queued for one writev); the read callback, which takes frames with
 * the shell's one frame reader (framer.c) and hands them to the hello
 * (hello.c) before the link is open and to its node (peer.c) after; the
 * event callback; TCP keepalive. Which node a link belongs to, and when
 * a node is up, is peer.c's business.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "node.h"
#include "framer.h"
#include "log.h"
#include "peer-int.h"
#include "splice.h"
#include "transport.h"
#include "wire.h"

#define PEER_KEEPALIVE_IDLE   5 /* failure timeouts before TCP keepalive probes */
#define PEER_KEEPALIVE_PROBES 2
#define PEER_IO_CHUNK         (256 * 1024) /* most bytes one read or write moves */

static void pconn_read_cb(struct bufferevent *bev, void *arg);
static void pconn_write_cb(struct bufferevent *bev, void *arg);
static void pconn_event_cb(struct bufferevent *bev, short what, void *arg);

const char *pconn_who(const struct pconn *c)
{
	return c->node ? c->node->name : c->addr;
}

static const char *pconn_state_name(enum pconn_state st)
{
	static const char *const names[] = {
	    [PC_CONNECTING] = "connecting",
	    [PC_WAIT_CHALLENGE] = "wait-challenge",
	    [PC_WAIT_ACK] = "wait-ack",
	    [PC_WAIT_HELLO] = "wait-hello",
	    [PC_OPEN] = "open",
	    [PC_CLOSING] = "closing",
	};

	return (size_t)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* As bgpd's change_state(): one place where a connection changes state, and
 * a log line for each change. */
void pconn_set_state(struct pconn *c, enum pconn_state st)
{
	log_debug("peer", "%s: connection %llu %s -> %s", pconn_who(c), (unsigned long long)c->id,
	          pconn_state_name(c->state), pconn_state_name(st));
	c->state = st;
	c->since_ms = daemon_now_ms();
	if (st == PC_OPEN || st == PC_CLOSING)
		pconn_not_pending(c);
	/* Open: a frame may be max_frame_bytes, so the input is bounded by
	 * the frame reader, not by the hello's watermark. */
	if (st == PC_OPEN && c->bev)
		bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
}

/* c no longer counts among the accepted links still before their hello. */
void pconn_not_pending(struct pconn *c)
{
	if (c->pending) {
		c->pending = false;
		c->d->pending_in--;
	}
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
void pconn_sent(struct pconn *c, size_t bytes)
{
	c->d->stats.bytes_out += bytes;
	c->d->stats.chan[c->chan].bytes_out += bytes;
	c->last_send_ms = daemon_now_ms();
	if (c->node)
		node_sent(c->node->fd, c->last_send_ms);
}

void pconn_write_frame(struct pconn *c, const uint8_t *buf, size_t len, bool now)
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

void pconn_write_msg_now(struct pconn *c, const PartisanPeer__PeerMsg *msg, bool now)
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
void pconn_write_msg(struct pconn *c, const PartisanPeer__PeerMsg *msg)
{
	bool first = c->turn != c->d->turn;

	c->turn = c->d->turn;
	pconn_write_msg_now(c, msg, first);
}

size_t pconn_queued(const struct pconn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Bytes waiting unread on an open c: its node did speak, and only this
 * daemon, short of CPU, has not read them yet. */
bool pconn_unread(const struct pconn *c)
{
	int pending = 0;

	if (c->state != PC_OPEN)
		return false;
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return true;
	return ioctl(transport_fd(c->bev), FIONREAD, &pending) == 0 && pending > 0;
}

/* ---- lifecycle ---- */

void pconn_dial_done(struct pconn *c)
{
	if (c->dialing) {
		c->dialing = false;
		c->d->dialing--;
	}
}

void pconn_free(struct pconn *c)
{
	struct daemon *d = c->d;

	pconn_dial_done(c);
	pconn_not_pending(c);
	pnode_detach(c);
	TAILQ_REMOVE(&d->conns, c, entry);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->probe) {
		c->probe->cb(d, c->probe->arg, NULL, "connection closed before hello", false);
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
	pnode_detach(c);
	pconn_set_state(c, PC_CLOSING);
	if (c->probe) {
		c->probe->cb(d, c->probe->arg, NULL, why, c->said_no);
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
	pnode_link_closed(d, n, was_open, why);
}

void pconn_close(struct pconn *c, const char *why)
{
	pconn_close_how(c, why, false);
}

void pconn_drop(struct pconn *c, const char *why)
{
	pconn_close_how(c, why, true);
}

struct pconn *pconn_new(struct daemon *d, struct bufferevent *bev, bool outbound)
{
	struct pconn *c = xcalloc(1, sizeof(*c));

	static uint64_t next_id;

	c->d = d;
	c->id = ++next_id;
	c->bev = bev;
	c->outbound = outbound;
	c->since_ms = daemon_now_ms();
	if (!outbound) {
		c->pending = true;
		d->pending_in++;
	}
	TAILQ_INSERT_TAIL(&d->conns, c, entry);
	bufferevent_setcb(bev, pconn_read_cb, pconn_write_cb, pconn_event_cb, c);
	bufferevent_setwatermark(bev, EV_WRITE, d->cfg->peer_queue_bytes / 2, 0);
	/* Before the hello, no more than a hello's frame is read: a peer that
	 * says nothing more holds a few KiB here, not a frame's worth. */
	bufferevent_setwatermark(bev, EV_READ, 0, FRAME_HEADER + d->cfg->max_hello_bytes);
	/* libevent's default of 16 KiB per read or write costs a syscall and a
	 * loop turn per 16 KiB on a busy link. */
	bufferevent_set_max_single_read(bev, PEER_IO_CHUNK);
	bufferevent_set_max_single_write(bev, PEER_IO_CHUNK);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return c;
}

/* ---- reading ---- */

/* One decoded frame, in the connection's current state. */
static int pconn_dispatch(struct pconn *c, const PartisanPeer__PeerMsg *m, const char **why)
{
	switch (c->state) {
	case PC_OPEN:
		return pnode_receive(c, m, why);
	case PC_CLOSING:
		return 0;
	default:
		return hello_receive(c, m, why);
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
		node_heard(c->node->fd, daemon_now_ms());
		if (daemon_peer_data_big(d, c->node->name, m->data, d->splice))
			return true;
		splice_take(d->splice, al, &m->data->payload);
	}
	return false;
}

/* Handle frame f, taken from c. false when it closed c. */
static bool pconn_frame(struct pconn *c, struct frame *f, const struct framer *fr)
{
	struct daemon *d = c->d;
	const char *why = NULL;
	int r;

	d->stats.bytes_in += FRAME_HEADER + (size_t)f->len;
	d->stats.chan[c->chan].bytes_in += FRAME_HEADER + (size_t)f->len;
	d->cur_conn = c->id;
	if (f->big && pconn_data_big(c, (PartisanPeer__PeerMsg *)f->msg, f->al))
		r = 0;
	else
		r = pconn_dispatch(c, (PartisanPeer__PeerMsg *)f->msg, &why);
	d->cur_conn = 0;
	frame_done(fr, f);
	if (r < 0) {
		if (strcmp(why, "duplicate connection") != 0) {
			log_warnx("peer", "%s: %s, closing", pconn_who(c), why);
			d->stats.peer_frames_bad++;
		}
		if (c->state != PC_OPEN)
			c->said_no = true; /* refused, or an answer that fails our checks */
		pconn_close(c, why);
		return false;
	}
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
	if (!c->paused && d->transport->direct_io && c->state == PC_OPEN)
		daemon_read_more(bev, PEER_IO_CHUNK);
	if (hello_tls_record(c, in))
		return;
	while (c->state != PC_CLOSING && !c->paused) {
		/* A payload of max_frame_bytes from a client arrives here with
		 * the sender's refs around it: the same slack as on the IPC
		 * socket. Before the hello, only a hello's worth
		 * (max_hello_bytes). */
		bool open = c->state == PC_OPEN;
		uint64_t max = open ? d->cfg->max_frame_bytes + 4096 : d->cfg->max_hello_bytes;
		struct frame f;

		switch (frame_next(&fr, in, max, open ? 2 : 0, &f)) { /* only data splits */
		case FRAME_WAIT:
			return;
		case FRAME_TOO_BIG:
			d->stats.peer_frames_bad++;
			if (!open) {
				/* Nothing of a peer that has not said hello is worth
				 * flushing: it goes at once, and is logged as a
				 * refusal of its address (rate-limited). */
				peer_refusal(
				    d, c->host[0] ? c->host : c->addr, PEER_REFUSE_HELLO_SIZE,
				    "frame of %u bytes before the hello, over max_hello_bytes "
				    "(%u): closed",
				    f.len, d->cfg->max_hello_bytes);
				pconn_drop(c, "frame too large");
				return;
			}
			log_warnx("peer", "%s: frame of %u bytes over max_frame_bytes, closing",
			          pconn_who(c), f.len);
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
		if (!pconn_frame(c, &f, &fr))
			return;
	}
}

/* ---- writing and events ---- */

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
void pconn_keepalive(struct daemon *d, int fd)
{
	int one = 1, secs = (int)((d->cfg->failure_timeout_ms + 999) / 1000);
	int idle = PEER_KEEPALIVE_IDLE * secs, probes = PEER_KEEPALIVE_PROBES;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
}

const char *pconn_transport_error(const struct pconn *c)
{
	const struct transport_ops *t = c->d->transport;

	return t->error && c->tconn ? t->error(c->tconn) : NULL;
}

/* A dialled socket connected: the hello may begin. */
static void pconn_connected(struct pconn *c, struct bufferevent *bev)
{
	int one = 1;

	setsockopt(transport_fd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pconn_keepalive(c->d, transport_fd(bev));
	if (c->state == PC_CONNECTING)
		pconn_set_state(c, PC_WAIT_CHALLENGE);
}

static void pconn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pconn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		pconn_connected(c, bev);
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
