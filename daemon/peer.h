/* peer.h: connections to other daemons, the peer layer's API for the rest
 * of the daemon. Per node and channel, `parallelism` outbound connections
 * carry what this node sends; inbound ones carry what the other side sends.
 * Three modules make it (peer-int.h, which only they include): peer.c, the
 * node table, dialling with backoff, routing, partitions, heartbeats and
 * Silent reports (sent when the failure detector, fd.c, decides); link.c,
 * one connection's framing, queues and callbacks; hello.c, the handshake
 * and its identity checks. */
#ifndef PARTISAN_PEER_H
#define PARTISAN_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

/* >= 0: the frame is queued on the link; < 0: it was not sent. */
enum peer_send_result {
	PEER_SENT = 0,
	PEER_SENT_FULL = 1, /* queued, but the link holds over peer_queue_bytes:
	                     * pause whoever feeds it */
	PEER_NOT_CONNECTED = -1,
	PEER_SHED = -3,        /* dropped by a monotonic channel */
	PEER_PARTITIONED = -4, /* an injected partition separates us */
};

/* Bind every listen address (d->bound gets what was bound). 0, or -1 after
 * logging why. */
int peer_listen(struct daemon *d);
/* "IP:PORT" or "[IPv6]:PORT", in a static buffer. */
const char *peer_addr_text(const char *ip, uint16_t port);
void peer_shutdown(struct daemon *d);

/* Keep connections to spec's node open (idempotent). */
void peer_want(struct daemon *d, const struct node_spec *spec);
/* Stop wanting node and close its connections once their output is flushed. */
void peer_disconnect(struct daemon *d, const char *node);
/* Tell the node core which of the nodes it would time out have bytes
 * waiting unread on a link (life: only this daemon is slow). Before
 * node_tick. */
void peer_unread_scan(struct daemon *d, uint64_t now);
/* Reconnects, stuck handshakes; every node is looked at when round (a
 * heartbeat round began) or when one needs it. */
void peer_tick(struct daemon *d, uint64_t now, bool round);
/* A detector message (a packed PeerMsg) to node on its default channel,
 * straight to the socket when nothing is queued there; probe: a heartbeat
 * request, whose reply times the round trip. Not sent when node has no
 * open link (it will time out). */
void peer_send_now(struct daemon *d, const char *node, const uint8_t *buf, size_t len, bool probe);
/* The detector's verdict: close node's links both ways, report it down
 * (why), and dial it again after its backoff. */
void peer_take_down(struct daemon *d, const char *node, const char *why);

/* What a peer (by address before its hello, by name after) was refused.
 * Each kind is logged once per peer per PEER_REFUSAL_QUIET_MS, with a
 * count of the refusals not logged meanwhile: an attack costs a line a
 * minute, not one a frame. */
enum peer_refusal_kind {
	PEER_REFUSE_HELLO_SIZE, /* a frame over max_hello_bytes before the hello */
	PEER_REFUSE_PENDING,    /* over max_pending_connections: the oldest closed */
	PEER_REFUSE_HELLO_TIME, /* no hello within hello_timeout_ms */
	PEER_REFUSE_MEMBERS,    /* a membership state over max_members */
	PEER_REFUSE_PUSH_RATE,  /* state pushes over max_state_pushes_per_s */
	PEER_REFUSE_KINDS,
};
#define PEER_REFUSAL_QUIET_MS 60000
void peer_refusal(struct daemon *d, const char *who, enum peer_refusal_kind kind, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
/* A membership state from node may be merged now (its per-second budget,
 * max_state_pushes_per_s, is not spent); false: drop it (logged). */
bool peer_state_push_ok(struct daemon *d, const char *node);

/* Send a packed PeerMsg. key (may be NULL) picks the connection in the
 * channel so that one key keeps its order. */
enum peer_send_result peer_send(struct daemon *d, const char *node, const char *channel,
                                const void *key, size_t keylen, const uint8_t *buf, size_t len);
/* Send Data whose payload (empty in data) is big's bytes, moved, not
 * copied (splice.h). */
enum peer_send_result peer_send_data_big(struct daemon *d, const char *node, const char *channel,
                                         const void *key, size_t keylen,
                                         const PartisanPeer__Data *data, struct evbuffer *big);
/* Pack and send. */
enum peer_send_result peer_send_msg(struct daemon *d, const char *node, const char *channel,
                                    const void *key, size_t keylen,
                                    const PartisanPeer__PeerMsg *msg);

/* Stop / restart reading a connection (d->cur_conn names the one whose
 * frame is being handled): backpressure toward a sending daemon. */
void peer_pause(struct daemon *d, uint64_t conn_id);
void peer_resume(struct daemon *d, uint64_t conn_id);

/* Fault injection: treat node as unreachable (its links close, nothing is
 * sent or accepted either way) until the partition with that ref is
 * resolved. Returns 0 or -1 with *why. */
int peer_partition_inject(struct daemon *d, const char *node, const char *ref, const char **why);
int peer_partition_resolve(struct daemon *d, const char *ref);
bool peer_partitioned(struct daemon *d, const char *node);

/* Heartbeat round trips of one node: a Prometheus histogram, buckets
 * cumulative (upper bounds in peer_rtt_bounds_ms). */
#define PEER_RTT_BUCKETS 10
struct peer_rtt {
	uint64_t buckets[PEER_RTT_BUCKETS];
	uint64_t count, sum_ms;
};
extern const double peer_rtt_bounds_ms[PEER_RTT_BUCKETS];
/* Call fn for every node the peer layer knows: up or not, its round trips,
 * the bytes queued toward it. */
typedef void (*peer_node_fn)(void *arg, const char *node, bool up, const struct peer_rtt *rtt,
                             size_t queued);
void peer_each_node(struct daemon *d, peer_node_fn fn, void *arg);
/* Up, but a watcher said it went silent and we are asking it (since when). */
bool peer_suspect(struct daemon *d, const char *node, uint64_t *since_ms);
bool peer_is_up(struct daemon *d, const char *node);
/* The configured channel called channel (the default one if none is), as
 * a string that lives as long as the daemon. */
const char *peer_channel_name(struct daemon *d, const char *channel);
/* Names of connected nodes (array owned by the caller, names by the peer
 * layer and valid until the next event-loop turn). */
size_t peer_up_nodes(struct daemon *d, const char ***out);
/* What the peer proved on an open link of node's channel (transport.h's
 * peer_subject), or NULL. */
const char *peer_conn_subject(struct daemon *d, const char *node, const char *channel);
/* Outbound connections open / wanted to node on channel. */
void peer_conn_count(struct daemon *d, const char *node, const char *channel, unsigned *connected,
                     unsigned *wanted);
bool peer_fully_connected(struct daemon *d, const char *node);

/* Dial HOST:PORT to learn who is there (join by address). When its hello is
 * answered, the node's spec is handed to cb; on failure cb gets NULL and a
 * reason, with final set when the node there answered and said no (a
 * refusal, another name, a failed proof: trying again will not help) and
 * clear when it did not answer in time (not listening, busy, reset). */
typedef void (*peer_probe_cb)(struct daemon *d, void *arg, const struct node_spec *spec,
                              const char *why, bool final);
/* until: the handshake may take until then (a join's deadline: a contact
 * short of CPU answers late, and a new dial would queue behind this one),
 * 0 for connect_timeout_ms as any dial. */
int peer_probe(struct daemon *d, const char *ip, uint16_t port, uint64_t until, peer_probe_cb cb,
               void *arg);
/* Forget a probe's callback (the requester went away). */
void peer_probe_cancel(struct daemon *d, void *arg);

/* Split NAME@HOST:PORT or HOST:PORT ([v6]:PORT) and resolve HOST to a
 * numeric ip. name gets NAME or "". Returns 0, -1 when t is malformed, -2
 * when HOST does not resolve. */
int peer_parse_target(const char *t, char *name, size_t nn, char *ip, size_t ipn, uint16_t *port);

#endif
