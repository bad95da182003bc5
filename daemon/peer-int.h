/* peer-int.h: what the three parts of the peer layer share, and nothing
 * else includes. link.c owns one connection (struct pconn: its lifecycle,
 * framing, output queues and callbacks); hello.c the handshake on it and
 * the identity checks; peer.c the node table (struct pnode), dialling,
 * routing, partitions, pause / resume and the failure detector's glue, and
 * the public API in peer.h.
 *
 * A connection opens with the acceptor's Challenge, the dialer's Hello and
 * the acceptor's HelloAck; each state accepts only the message it expects,
 * and anything else closes that connection alone with a logged reason.
 * A node is up while one default-channel outbound connection is open and
 * something was heard from it within failure_timeout_ms.
 */
#ifndef PARTISAN_PEER_INT_H
#define PARTISAN_PEER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.h"

#define PEER_BACKOFF_MIN_MS 100
#define PEER_NONCE          16

/* Every state change goes through pconn_set_state(), which logs it. */
enum pconn_state {
	PC_CONNECTING,     /* a new pconn: dialer, TCP connect in progress; acceptor,
	                    * until its Challenge is queued */
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
	uint64_t until; /* the handshake may take until then; 0: connect_timeout_ms */
};

struct pconn {
	struct daemon *d;
	struct bufferevent *bev;
	enum pconn_state state; /* set by pconn_set_state() only */
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
	bool pending;        /* accepted, before its hello: counted in d->pending_in */
	char addr[80];       /* for logs */
	char refusal[160];   /* why the other side refused our hello */
	bool said_no;        /* the hello failed on what the peer sent (final for a probe) */
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
	bool ever_up;          /* was up once: its backoff stays short */
	double push_tokens;    /* membership states it may still push (a token bucket) */
	uint64_t push_fill_ms; /* when push_tokens was last refilled */
};

struct evbuffer;

/* ---- link.c: one connection ---- */

/* A connection on bev (taken: freed with c), in d->conns, in PC_CONNECTING. */
struct pconn *pconn_new(struct daemon *d, struct bufferevent *bev, bool outbound);
/* The one place c->state changes: logs the transition, restarts since_ms. */
void pconn_set_state(struct pconn *c, enum pconn_state st);
/* The node's name once known, else the address: for logs. */
const char *pconn_who(const struct pconn *c);
/* Close c once its queued output is flushed; its node may go down. */
void pconn_close(struct pconn *c, const char *why);
/* Close c now, without flushing: nothing of it is worth keeping (a peer
 * before its hello that broke a limit). */
void pconn_drop(struct pconn *c, const char *why);
/* c leaves the count of accepted links before their hello. */
void pconn_not_pending(struct pconn *c);
/* Free c now (a probe's callback is told). */
void pconn_free(struct pconn *c);
/* c's handshake as a dialer ended, one way or the other. */
void pconn_dial_done(struct pconn *c);
/* bytes (framed) of ours went on c. */
void pconn_sent(struct pconn *c, size_t bytes);
/* Queue one frame of buf (copied); now: it may go straight to the socket. */
void pconn_write_frame(struct pconn *c, const uint8_t *buf, size_t len, bool now);
void pconn_write_msg_now(struct pconn *c, const PartisanPeer__PeerMsg *msg, bool now);
/* Pack and write msg: the first frame of a turn goes out at once. */
void pconn_write_msg(struct pconn *c, const PartisanPeer__PeerMsg *msg);
/* Bytes queued on c's output. */
size_t pconn_queued(const struct pconn *c);
/* Whether bytes wait unread on c (in its input or the socket's). */
bool pconn_unread(const struct pconn *c);
/* TCP keepalive on socket fd, timed from failure_timeout_ms. */
void pconn_keepalive(struct daemon *d, int fd);
/* What the transport knows of why c failed (a TLS alert), or NULL. */
const char *pconn_transport_error(const struct pconn *c);

/* ---- hello.c: the handshake ---- */

/* Acceptor: send the Challenge a new connection opens with. */
void hello_challenge(struct pconn *c);
/* A frame on c before it is open. -1 with *why closes c. */
int hello_receive(struct pconn *c, const PartisanPeer__PeerMsg *m, const char **why);
/* A TLS record where a plain hello belongs: c is closed (true). */
bool hello_tls_record(struct pconn *c, struct evbuffer *in);
/* No hello within connect_timeout_ms: close c with the likeliest cause. */
void hello_timeout(struct pconn *c);

/* ---- peer.c: the node table ---- */

/* The record of node name; created (with its fd record) when create. */
struct pnode *pnode_get(struct daemon *d, const char *name, bool create);
/* Whether any connection (either way) belongs to n. */
bool pnode_has_conns(struct daemon *d, struct pnode *n);
/* Up, when a default-channel link is open and its spec known. */
void pnode_set_up(struct daemon *d, struct pnode *n);
/* Close n's outbound links (inbound too when inbound) and report it down. */
void pnode_down(struct daemon *d, struct pnode *n, const char *reason, bool inbound);
/* Take c out of its node's outbound slots (one to fill again). */
void pnode_detach(struct pconn *c);
/* A link of n closed (was_open: after its hello): maybe down, retry later. */
void pnode_link_closed(struct daemon *d, struct pnode *n, bool was_open, const char *why);
/* A frame on an open link c. -1 with *why closes c. */
int pnode_receive(struct pconn *c, const PartisanPeer__PeerMsg *m, const char **why);

#endif
