/* partisan/client.h: libpartisan-client, the C API local programs use to
 * attach to partisand over its Unix socket (proto/ipc.proto). Names follow
 * Partisan's Erlang API (partisan:forward_message/4 is partisan_send, ...).
 *
 * The model is corosync's: a handle, an fd to poll, a dispatch call, and no
 * threads or hidden event loop. A handle is not thread-safe: use one per
 * thread, or lock around it.
 *
 * Return values: every int function returns 0 (or a documented count or
 * flag >= 0) on success, or a negative PARTISAN_E* code. No function aborts
 * on bad input; a NULL handle or pointer, an empty name or a malformed
 * reference returns PARTISAN_EINVAL.
 *
 * Ownership: strings and buffers passed in are only read during the call.
 * Everything the library allocates for the caller is named below with the
 * function that frees it; the *_free functions accept NULL. Buffers the
 * caller provides (char *buf, size_t n) receive a NUL-terminated string;
 * one that is too small gives PARTISAN_ETOOBIG.
 *
 * Events (messages, DOWN, nodeup/nodedown, broadcasts) may arrive while a
 * synchronous call waits for its answer; they are queued inside the handle
 * and returned by partisan_recv(). So after any call, drain the queue with
 * partisan_recv(c, &ev, 0) before going back to poll(partisan_fd(c)).
 */
#ifndef PARTISAN_CLIENT_H
#define PARTISAN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: the negated values of partisan_ipc.Error (proto/ipc.proto). */
#define PARTISAN_OK            0
#define PARTISAN_EINVAL        -1  /* bad argument: NULL, empty name, malformed ref */
#define PARTISAN_ENOMEM        -2  /* out of memory */
#define PARTISAN_EIO           -3  /* daemon not reachable, or the connection was lost */
#define PARTISAN_EPROTO        -4  /* protocol violation: undecodable or oversized frame */
#define PARTISAN_EVERSION      -5  /* the daemon speaks another IPC protocol version */
#define PARTISAN_EPERM         -6  /* not authorised (socket mode, allow_uids/gids) */
#define PARTISAN_EEXIST        -7  /* name already registered */
#define PARTISAN_ENOENT        -8  /* no such name, ref, node or item */
#define PARTISAN_ENOPROC       -9  /* no such endpoint */
#define PARTISAN_ENOCONNECTION -10 /* node not connected, or the connection was lost */
#define PARTISAN_ETIMEDOUT     -11 /* timed out (also: partisan_recv found no event) */
#define PARTISAN_EAGAIN        -12 /* would block: queue full or nonblock send, retry later */
#define PARTISAN_EPARTITION    -13 /* node is behind an injected partition */
#define PARTISAN_ENOTSUP       -14 /* not supported by this daemon or its manager */
#define PARTISAN_ECLOSED       -15 /* session closed by the daemon */
#define PARTISAN_ETOOBIG       -16 /* message over the frame limit, or result over the buffer */
#define PARTISAN_ESTOPPED      -17 /* this node left the cluster */

/* Name an error code: a static string, never NULL; unknown codes give
 * "unknown error". */
const char *partisan_strerror(int code);

/* Buffer sizes that always fit a node name or a reference URI (with NUL). */
#define PARTISAN_NODE_MAX 256
#define PARTISAN_REF_MAX  528
#define PARTISAN_MORE_MAX (64 * 1024) /* bytes sends with more may hold back */

/* The default socket, used when neither a path nor $PARTISAN_SOCKET is set. */
#define PARTISAN_DEFAULT_SOCKET "/run/partisan/partisand.sock"

/* ---- session ---------------------------------------------------------- */

typedef struct partisan partisan_t; /* opaque handle */

typedef struct partisan_connect_opts {
	const char *client;       /* name for the daemon's logs; NULL: "libpartisan-client" */
	uint32_t max_frame_bytes; /* largest frame sent or accepted; 0: 64 MiB */
	int timeout_ms;           /* wait for a response; 0: 30000, < 0: forever */
} partisan_connect_opts_t;

/* Connect to partisand at path (NULL: $PARTISAN_SOCKET if set and non-empty,
 * else PARTISAN_DEFAULT_SOCKET) and open a session: Hello with
 * IPC_PROTOCOL_VERSION, answered by the node name, this session's endpoint
 * ref and the node spec. On success *out is a new handle, freed by
 * partisan_close(). Errors: EINVAL (NULL out, path too long), EIO (no
 * socket, nobody listening, connection lost during the hello), EPERM
 * (refused by permissions), EVERSION (other protocol version), EPROTO (not
 * a partisand), ETIMEDOUT, ENOMEM. */
int partisan_connect(const char *path, partisan_t **out);
/* The same with options; opts may be NULL. */
int partisan_connect_with(const char *path, const partisan_connect_opts_t *opts, partisan_t **out);

/* Close the session and free the handle with every queued event. Events
 * already returned by partisan_recv() stay valid until their own free.
 * Returns 0, or EINVAL for NULL. */
int partisan_close(partisan_t *c);

/* The socket to poll for POLLIN in an application's own event loop; when it
 * is readable call partisan_dispatch() then partisan_recv(c, &ev, 0) until
 * ETIMEDOUT. Returns the fd (>= 0) or EINVAL. Do not read, write or close
 * it yourself. */
int partisan_fd(partisan_t *c);

/* Read whatever the socket holds without blocking, queue the events, and
 * flush any send left pending by a nonblock send. Returns the number of
 * queued events (>= 0), or EIO / EPROTO when the connection is gone (queued
 * events can still be received). */
int partisan_dispatch(partisan_t *c);

/* The daemon's detail text for the last error a request got back (for a
 * quiet send or reply: the first failure partisan_flush() returned), or "";
 * owned by the handle, valid until the next call on it. NULL for NULL c. */
const char *partisan_last_error(partisan_t *c);

/* ---- identity --------------------------------------------------------- */

typedef struct partisan_addr {
	char *ip;
	uint16_t port;
} partisan_addr_t;

typedef struct partisan_channel {
	char *name;
	unsigned parallelism; /* 0: not set (the daemon default, 1) */
	bool monotonic;
} partisan_channel_t;

typedef struct partisan_node_spec {
	char *name; /* NAME@HOST */
	size_t n_addrs;
	partisan_addr_t *addrs;
	size_t n_channels;
	partisan_channel_t *channels;
	unsigned parallelism; /* 0: not set */
	const char *status;   /* members: "alive", "suspect", "down" or "left" (static
	                       * strings); NULL elsewhere */
	uint64_t since_ms;    /* members: in that status since (Unix time, ms) */
} partisan_node_spec_t;

/* This node's name (NAME@HOST), from the session's hello. */
int partisan_node(partisan_t *c, char *buf, size_t n);
/* This node's spec, asked from the daemon (so the bound ports are current).
 * *out is allocated; free it with partisan_node_spec_free(). */
int partisan_node_spec(partisan_t *c, partisan_node_spec_t **out);
void partisan_node_spec_free(partisan_node_spec_t *spec);
/* This session's endpoint ref (partisan:pid:NODE:ID): what partisan_send()
 * to this program targets, and the `from` of what it sends. */
int partisan_self(partisan_t *c, char *buf, size_t n);

/* ---- references --------------------------------------------------------- */

typedef enum partisan_ref_kind {
	PARTISAN_REF_PID = 0,  /* partisan:pid:NODE:ID, an attached endpoint */
	PARTISAN_REF_NAME = 1, /* partisan:name:NODE:NAME, a registered name */
	PARTISAN_REF_REF = 2,  /* partisan:ref:NODE:ID, a monitor or call reference */
} partisan_ref_kind_t;

typedef struct partisan_ref {
	partisan_ref_kind_t kind;
	char node[PARTISAN_NODE_MAX]; /* NAME@HOST */
	char id[PARTISAN_NODE_MAX];   /* digits for pid/ref, the name for name */
} partisan_ref_t;

/* Parse a reference URI into *out. EINVAL when it is not one. */
int partisan_ref_parse(const char *uri, partisan_ref_t *out);
/* Format *r into buf. EINVAL when r is not valid, ETOOBIG when buf is small. */
int partisan_ref_format(const partisan_ref_t *r, char *buf, size_t n);
/* The node a reference points at (Erlang's node/1). */
int partisan_ref_node(const char *uri, char *buf, size_t n);

/* ---- names -------------------------------------------------------------- */

/* Register name for this session's endpoint on this node, in the
 * distributed registry too. EEXIST when the name is taken here. */
int partisan_register(partisan_t *c, const char *name);
/* ENOENT when this session holds no such name. */
int partisan_unregister(partisan_t *c, const char *name);
/* The pid ref behind name on node (NULL: this node), into ref (size n),
 * from the cluster-wide registry for another node. ENOPROC when the name is
 * not registered there. */
int partisan_whereis(partisan_t *c, const char *node, const char *name, char *ref, size_t n);

/* ---- messages ----------------------------------------------------------- */

typedef struct partisan_send_opts {
	const char *channel;       /* NULL: the default channel */
	const void *partition_key; /* same key, same connection: order holds */
	size_t partition_key_len;  /* 0: no key */
	bool ack;                  /* retransmit until acknowledged, exactly once */
	const char *causal_label;  /* NULL: no causal delivery */
	bool transitive;           /* route through the overlay if not connected */
	bool nonblock;             /* EAGAIN instead of blocking on a full socket */
	bool more;                 /* more sends follow: see partisan_send */
} partisan_send_opts_t;

/* Send buf (len bytes, may be 0) to ref (a pid or name URI); opts may be
 * NULL. With opts->more (as MSG_MORE) the message may wait in the handle's
 * buffer, so that a burst goes to the daemon in few writes; it goes out with
 * the next send without more, partisan_flush(), any call that waits on the
 * daemon (partisan_recv, partisan_call, ...), partisan_dispatch(),
 * partisan_close(), or once PARTISAN_MORE_MAX bytes wait. A program that
 * polls partisan_fd() for input only must end a burst without more. Like Erlang's send this does
 * not wait for the daemon: the request is `quiet`, answered only when it fails. Such a late failure
 * (ENOPROC, ENOCONNECTION, EPARTITION, ...) cannot be the return of this call; it is counted
 * (partisan_send_errors()) and the first one since the last partisan_flush() is what
 * partisan_flush() returns. Errors returned here: EINVAL, ETOOBIG (over max_frame_bytes), EAGAIN
 * (nonblock and the socket is full: nothing was sent; poll for POLLOUT, partisan_dispatch(),
 * retry), ETIMEDOUT (blocking, and the socket stayed full for the handle's timeout: the message
 * stays queued in the handle and may still go out), EIO, and the code of an earlier failure that
 * ended the connection (EPROTO). */
int partisan_send(partisan_t *c, const char *ref, const void *buf, size_t len,
                  const partisan_send_opts_t *opts);
/* The same to the name registered on node. node NULL: the name wherever it
 * is registered in the cluster (seed 003's "send to the name"): here if it
 * is held here, else at a holder the daemon picks at random from the
 * registry, routed transitive when not linked; the send fails with ENOPROC
 * (reported by partisan_flush) when nobody holds it. */
int partisan_send_name(partisan_t *c, const char *node, const char *name, const void *buf,
                       size_t len, const partisan_send_opts_t *opts);
/* Wait until the daemon has handled every request sent so far. Returns 0,
 * or the first error a quiet request (send, reply) got since the last
 * flush, clearing it. */
int partisan_flush(partisan_t *c);
/* How many quiet requests failed in this session, and the last error (0 if
 * none). Either pointer may be NULL. */
int partisan_send_errors(partisan_t *c, uint64_t *count, int *last);

typedef enum partisan_event_type {
	PARTISAN_EV_MESSAGE = 1,   /* .message */
	PARTISAN_EV_DOWN = 2,      /* .down: a monitored endpoint went away */
	PARTISAN_EV_NODEUP = 3,    /* .node */
	PARTISAN_EV_NODEDOWN = 4,  /* .node, reason set with PARTISAN_NODEDOWN_REASON */
	PARTISAN_EV_BROADCAST = 5, /* .broadcast */
	PARTISAN_EV_ACK_LOST = 6,  /* .ack_lost: acked messages that will never arrive */
	PARTISAN_EV_STOPPED = 7,   /* this node was removed from the cluster */
} partisan_event_type_t;

/* An event. Every pointer in it is owned by the event and lives until
 * partisan_event_free(); optional strings are NULL when absent. */
typedef struct partisan_event {
	partisan_event_type_t type;
	union {
		struct {
			const char *from;     /* sender's ref: reply target */
			const char *to;       /* the ref it was sent to (pid or name) */
			const char *call_ref; /* non-NULL: a call, answer with partisan_reply */
			const char *channel;
			const void *payload;
			size_t len;
		} message;
		struct {
			const char *mref;   /* what partisan_monitor() returned */
			const char *target; /* the monitored ref */
			const char *reason; /* normal | noproc | noconnection | killed */
		} down;
		struct {
			const char *node;
			const char *reason; /* nodedown only, may be NULL */
		} node;
		struct {
			const char *topic;
			const char *from; /* origin node */
			const void *payload;
			size_t len;
		} broadcast;
		struct {
			const char *to;
			const char *reason;
			uint64_t count;
		} ack_lost;
	};
} partisan_event_t;

/* Take the next event: queued ones first, then wait on the socket for up to
 * timeout_ms (0: don't wait, < 0: forever). *ev is allocated; free it with
 * partisan_event_free(). Returns 0, ETIMEDOUT when none came, EIO / EPROTO
 * once the queue is empty and the connection is gone. EINTR is retried. */
int partisan_recv(partisan_t *c, partisan_event_t **ev, int timeout_ms);
void partisan_event_free(partisan_event_t *ev);

/* ---- request/reply (gen_server:call) ------------------------------------ */

typedef struct partisan_buf {
	void *data; /* malloc'ed, freed by partisan_buf_free(); NULL when len is 0 */
	size_t len;
} partisan_buf_t;

void partisan_buf_free(partisan_buf_t *b); /* frees data, zeroes *b */

/* Send req to `to` (a pid or name ref) and wait for its answer, for up to
 * timeout_ms (0: 5000, < 0: EINVAL). On success *reply holds the answer
 * payload. Fails fast: ENOPROC (nobody there, or the callee went away
 * before replying), ENOCONNECTION (node not connected, or lost during the
 * call), ETIMEDOUT; also EPARTITION, EINVAL, ETOOBIG, EIO. */
int partisan_call(partisan_t *c, const char *to, const void *req, size_t len, int timeout_ms,
                  partisan_buf_t *reply);
/* partisan_call with send options: opts->transitive routes the call (and
 * its reply) through the overlay when the callee's node is not linked;
 * channel and partition_key choose the connection. ack, causal_label,
 * nonblock and more do not apply to calls. opts may be NULL. */
int partisan_call_opts(partisan_t *c, const char *to, const void *req, size_t len, int timeout_ms,
                       const partisan_send_opts_t *opts, partisan_buf_t *reply);
/* The same to the name registered on node. node NULL: the name wherever it
 * is held, here first, as partisan_send_name; ENOPROC when nobody holds it. */
int partisan_call_name(partisan_t *c, const char *node, const char *name, const void *req,
                       size_t len, int timeout_ms, partisan_buf_t *reply);
int partisan_call_name_opts(partisan_t *c, const char *node, const char *name, const void *req,
                            size_t len, int timeout_ms, const partisan_send_opts_t *opts,
                            partisan_buf_t *reply);
/* Answer a call: msg must be a PARTISAN_EV_MESSAGE with call_ref set
 * (EINVAL otherwise). Quiet, like partisan_send(). */
int partisan_reply(partisan_t *c, const partisan_event_t *msg, const void *buf, size_t len);

/* ---- monitoring --------------------------------------------------------- */

/* Monitor ref (pid or name); the monitor ref goes into mref (size n). A
 * DOWN event with it comes when the target goes away, at once (reason
 * noproc) when it does not exist. */
int partisan_monitor(partisan_t *c, const char *ref, char *mref, size_t n);

#define PARTISAN_DEMONITOR_FLUSH 1 /* also drop a queued DOWN for this mref */
/* Stop a monitor. ENOENT when it is not one of this session's monitors. */
int partisan_demonitor(partisan_t *c, const char *mref, int flags);
/* Turn monitoring of one node on (flag true) or off: a NODEDOWN event comes
 * when it disconnects, at once when it is not connected. One monitor per
 * session and node, as Partisan's: turning it on twice gives one NODEDOWN. */
int partisan_monitor_node(partisan_t *c, const char *node, bool flag);

#define PARTISAN_NODEDOWN_REASON 1 /* NODEDOWN events carry a reason */
/* Subscribe (flag true) or unsubscribe to NODEUP / NODEDOWN of every node. */
int partisan_monitor_nodes(partisan_t *c, bool flag, int opts);

/* ---- cluster ------------------------------------------------------------ */

typedef struct partisan_strlist {
	size_t n;
	char **v; /* n strings, owned; freed by partisan_strlist_free() */
} partisan_strlist_t;

void partisan_strlist_free(partisan_strlist_t *l); /* frees contents, zeroes *l */

typedef enum partisan_node_type {
	PARTISAN_NODES_VISIBLE = 0, /* connected now, never this node (erlang:nodes/0) */
	PARTISAN_NODES_ALL = 1,     /* connected or known members */
} partisan_node_type_t;

/* Node names into *out (free with partisan_strlist_free()). */
int partisan_nodes(partisan_t *c, partisan_node_type_t type, partisan_strlist_t *out);

typedef struct partisan_spec_list {
	size_t n;
	partisan_node_spec_t *v; /* freed by partisan_spec_list_free() */
} partisan_spec_list_t;

void partisan_spec_list_free(partisan_spec_list_t *l);

/* The membership as this node sees it, this node included. */
int partisan_members(partisan_t *c, partisan_spec_list_t *out);
/* The members in one status ("alive", "suspect", "down"), or with "left"
 * the nodes seen leaving the cluster (no members any more); NULL: every
 * member, as partisan_members. EINVAL for another status. */
int partisan_members_status(partisan_t *c, const char *status, partisan_spec_list_t *out);
/* 1 when node is connected on some channel, 0 when not, or an error. */
int partisan_is_connected(partisan_t *c, const char *node);
/* 1 when every channel to node has all its connections, 0 when not. */
int partisan_is_fully_connected(partisan_t *c, const char *node);

typedef struct partisan_conn {
	char *node;
	char *channel;
	unsigned connected; /* connections open */
	unsigned wanted;    /* the channel's parallelism */
	char *transport;    /* "tcp" or "tls" while one is open, else NULL */
	char *peer_subject; /* the peer's certificate subject, "psk", or NULL */
} partisan_conn_t;

typedef struct partisan_conn_list {
	size_t n;
	partisan_conn_t *v; /* freed by partisan_conn_list_free() */
} partisan_conn_list_t;

void partisan_conn_list_free(partisan_conn_list_t *l);
/* Connections per node and channel, of one node or (NULL) all. */
int partisan_connections(partisan_t *c, const char *node, partisan_conn_list_t *out);

/* Join the cluster through target, NAME@HOST:PORT or HOST:PORT. A contact
 * that does not answer (not listening yet, busy, paused) is dialled again
 * with backoff until timeout_ms; one that answers no (a refusal) fails at
 * once with ENOCONNECTION. With timeout_ms > 0 wait until connected
 * (sync_join; to another member the contact named, if the contact went
 * away), ETIMEDOUT if not in time; 0 returns once the contact answered,
 * tried for up to 20 s (ENOCONNECTION after). */
int partisan_join(partisan_t *c, const char *target, int timeout_ms);
/* Remove node (NULL: this node) from the cluster. */
int partisan_leave(partisan_t *c, const char *node);

/* ---- broadcast (plumtree) ----------------------------------------------- */

/* Deliver buf to every subscriber of topic on every node, at least once. */
int partisan_broadcast(partisan_t *c, const char *topic, const void *buf, size_t len);
/* Receive topic's broadcasts as PARTISAN_EV_BROADCAST events. */
int partisan_subscribe(partisan_t *c, const char *topic);
int partisan_unsubscribe(partisan_t *c, const char *topic);

/* ---- registry ----------------------------------------------------------- */

typedef struct partisan_registry_entry {
	char *name;
	partisan_strlist_t refs; /* pid refs holding the name */
} partisan_registry_entry_t;

typedef struct partisan_registry {
	size_t n;
	partisan_registry_entry_t *v; /* freed by partisan_registry_free() */
} partisan_registry_t;

void partisan_registry_free(partisan_registry_t *r);

/* The registry: every name (name NULL or "") or one. */
int partisan_registry(partisan_t *c, const char *name, partisan_registry_t *out);
/* Every pid ref registered under name (all_pids_of); ENOENT if none. */
int partisan_registry_pids_of(partisan_t *c, const char *name, partisan_strlist_t *out);
/* The distinct nodes holding name (all_nodes_of); ENOENT if none. */
int partisan_registry_nodes_of(partisan_t *c, const char *name, partisan_strlist_t *out);
/* One pid ref holding name, picked at random (pid_of); ENOENT if none. */
int partisan_registry_pid_of(partisan_t *c, const char *name, char *ref, size_t n);

/* ---- status and fault injection ----------------------------------------- */

typedef struct partisan_endpoint {
	char *ref;
	partisan_strlist_t names;
} partisan_endpoint_t;

/* What the daemon counted since it started (also served on /metrics). */
typedef struct partisan_counters {
	uint64_t bytes_in, bytes_out;                    /* framed bytes on peer links */
	uint64_t retransmits;                            /* ack messages resent */
	uint64_t dropped_no_proc, dropped_monotonic;     /* refused: no endpoint; shed */
	uint64_t peer_frames_bad;                        /* peer links closed for bad input */
	uint64_t connections_opened, connections_failed; /* hello done; failed before it */
	uint64_t fd_timeouts, fd_silent, fd_suspicions;  /* failure detector verdicts */
	uint64_t messages_in, messages_out;
} partisan_counters_t;

typedef struct partisan_status {
	char *name;
	partisan_node_spec_t spec;
	char *manager; /* full_mesh | hyparview | client_server | static */
	char *cluster; /* "" when the daemon did not say */
	/* How peer links are protected: "protected" (no secret, no TLS: links
	 * from loopback only), "insecure", "secret" (TLS with the cluster
	 * secret's key), "certificates" (mutual TLS), "certificates+secret". */
	char *security;
	uint64_t uptime_s;
	unsigned members;
	unsigned nodes;
	size_t n_endpoints;
	partisan_endpoint_t *endpoints;
	uint64_t dropped_no_proc; /* messages for names/refs that did not exist */
	uint64_t outstanding_acks;
	partisan_strlist_t active_view;
	partisan_strlist_t passive_view;
	unsigned sessions;
	uint64_t messages_in;
	uint64_t messages_out;
	unsigned partitions;
	partisan_counters_t counters;
} partisan_status_t;

/* The daemon's status. *out is allocated; free with partisan_status_free(). */
int partisan_status(partisan_t *c, partisan_status_t **out);
void partisan_status_free(partisan_status_t *s);

typedef struct partisan_partition {
	char *ref;
	char *node;
} partisan_partition_t;

typedef struct partisan_partition_list {
	size_t n;
	partisan_partition_t *v; /* freed by partisan_partition_list_free() */
} partisan_partition_list_t;

void partisan_partition_list_free(partisan_partition_list_t *l);

/* Cut this node off from node; the partition's ref goes into ref (size n). */
int partisan_partition_inject(partisan_t *c, const char *node, char *ref, size_t n);
/* Heal the partition ref; ENOENT if there is none. */
int partisan_partition_resolve(partisan_t *c, const char *ref);
int partisan_partition_list(partisan_t *c, partisan_partition_list_t *out);

/* ---- the cluster's links (partisanctl graph) ----------------------------- */

typedef struct partisan_graph_node {
	char *name;
	const char *status; /* "alive", "suspect", "down" or "left" (static); NULL:
	                     * unknown, a node only seen in a passive view */
} partisan_graph_node_t;

typedef struct partisan_graph_edge {
	char *from, *to;
	bool passive; /* hyparview: to is in from's passive view, not linked */
	size_t n_channels;
	partisan_conn_t *channels; /* per channel: connected / wanted (node = to) */
} partisan_graph_edge_t;

typedef struct partisan_graph {
	size_t n_nodes;
	partisan_graph_node_t *nodes;
	size_t n_edges;
	partisan_graph_edge_t *edges; /* as each end reported them: a link may come twice */
} partisan_graph_t;

/* The members with their status, and the links of this node and of every
 * node linked to it (asked over the link; waits up to a second for them).
 * Free *out with partisan_graph_free(). */
int partisan_graph(partisan_t *c, partisan_graph_t *out);
void partisan_graph_free(partisan_graph_t *g);

/* ---- peer controller (Erlang's peer) ------------------------------------ */

/* Start extra partisand daemons on this host and control them, as Erlang's
 * peer module starts extra nodes: the basis of single-host testing. A peer
 * is `partisand -f --name NODE --listen IP:0 --socket DIR/NAME.sock
 * [-c CONFIG] ARGS...`, run through an optional exec prefix; its real port
 * is read back from its spec through the control socket.
 *
 * The peer is a child of the calling process, in its own process group
 * (signals go to the group, so a wrapper's children go too). Unless
 * detached it gets PR_SET_PDEATHSIG = SIGTERM: when the controller (the
 * thread that called partisan_peer_start()) goes away, the peer stops.
 * A detached peer runs in its own session without a death signal and is
 * recorded in the state directory so that other processes can list and
 * stop it: $PARTISAN_PEER_DIR, else $XDG_RUNTIME_DIR/partisan-peers, else
 * /tmp/partisan-peers-UID (created 0700; refused with EPERM unless it is a
 * directory of this user that nobody else can write). A record is NAME.json
 * (name, node, pid, socket, port, detached, started, log, tmpdir), written
 * atomically.
 *
 * These functions do not touch SIGCHLD's disposition and use no threads; an
 * application that reaps every child itself (waitpid(-1)) makes a peer look
 * down. Strings in the options are only read during the call. */

typedef enum partisan_peer_state {
	PARTISAN_PEER_BOOTING = 0, /* started, not yet answering on its socket */
	PARTISAN_PEER_RUNNING = 1,
	PARTISAN_PEER_DOWN = 2, /* exited (or, for a record, not running any more) */
} partisan_peer_state_t;

typedef struct partisan_peer partisan_peer_t; /* opaque handle */

typedef struct partisan_peer_opts {
	/* Short name (letters, digits, "_.-", at most 64, not starting with
	 * "." or "-") or NAME@HOST; NULL: partisan_peer_random_name("peer"). */
	const char *name;
	const char *host;        /* listen IP, and the node's HOST; NULL: 127.0.0.1 */
	const char *config;      /* passed as -c; NULL: none (the daemon's defaults) */
	const char *const *args; /* more daemon arguments, NULL-terminated; may be NULL */
	const char *const *env;  /* "K=V" added to (or replacing in) the environment,
	                          * NULL-terminated; NOTIFY_SOCKET is dropped unless set here */
	const char *const *exec; /* argv run before the daemon path (a wrapper, valgrind,
	                          * "ssh host"), NULL-terminated; NULL or empty: none */
	/* The partisand binary (PATH is searched when it has no "/"); NULL:
	 * $PARTISAN_DAEMON, else partisand in the directory of /proc/self/exe
	 * when there is one, else "partisand" from PATH. */
	const char *daemon;
	/* Directory for NAME.sock (and NAME.log); NULL: a new private directory
	 * ($TMPDIR or /tmp)/partisan-peer-XXXXXX, removed when the peer stops. */
	const char *socket_dir;
	const char *log_file; /* the daemon's stdout and stderr; NULL: DIR/NAME.log */
	/* How long partisan_peer_start() waits for the peer to answer
	 * partisan_connect() and spec; 0: 10000; < 0: do not wait (state
	 * BOOTING, partisan_peer_state() probes; not with detached). */
	int boot_timeout_ms;
	int shutdown_ms; /* graceful stop: SIGTERM, then SIGKILL after this; 0: 5000 */
	bool detached;   /* outlive this process, and be recorded */
	/* Optional: on failure, a one-line reason goes here (e.g. the daemon's
	 * exit status and the last line it printed); "" on success. */
	char *errbuf;
	size_t errbuf_len;
} partisan_peer_opts_t;

/* Start a peer and (unless boot_timeout_ms < 0) wait until it answers a
 * session and a spec request on its socket. On success *out is a new handle,
 * ended by partisan_peer_stop() or partisan_peer_release(). On failure
 * *out is NULL and nothing is left behind (the child is killed and reaped,
 * the private directory removed). Errors: EINVAL (NULL opts or out, bad
 * name, host, env entry or timeout, socket path too long, detached without
 * waiting, or the daemon exited with 78 or 64: config or flags invalid),
 * EEXIST (a recorded peer of that name is running, or a daemon answers on
 * the socket path), ENOENT / EPERM (the daemon or exec prefix cannot be
 * found / run), EPERM (unsafe state directory), ETIMEDOUT (no answer in
 * time: the peer is killed), EIO (the daemon exited otherwise while
 * booting, fork or file failure), ENOMEM, and EVERSION / EPROTO / EPERM
 * from partisan_connect() on a socket that is not a usable partisand. */
int partisan_peer_start(const partisan_peer_opts_t *opts, partisan_peer_t **out);

#define PARTISAN_PEER_STOP_GRACEFUL 0 /* SIGTERM (and SIGCONT), SIGKILL after the deadline */
#define PARTISAN_PEER_STOP_KILL     1 /* SIGKILL at once */

/* Stop the peer (its whole process group), reap it, remove its socket,
 * private directory and record, and free the handle. Returns 0 once it is
 * gone (also when it was already down or had to be killed), ETIMEDOUT when
 * it survived SIGKILL for 5 s (the handle is freed all the same), EINVAL for
 * NULL or an unknown mode (nothing is freed). */
int partisan_peer_stop(partisan_peer_t *p, int mode);
/* Free the handle and leave the peer running: a detached peer keeps its
 * record (stop it later with partisan_peer_stop_name()); one that is not
 * detached still stops when this process goes away (its private directory
 * stays). A peer already down is reaped. Returns 0, or EINVAL for NULL. */
int partisan_peer_release(partisan_peer_t *p);

/* The state, refreshed: PARTISAN_PEER_* (>= 0), or EINVAL for NULL. A
 * BOOTING peer is probed (a connect of at most 100 ms). */
int partisan_peer_state(partisan_peer_t *p);
/* "booting", "running", "down", or "unknown". */
const char *partisan_peer_state_name(int state);
/* Once down: the exit code (0..255), or 128 + the signal that killed it;
 * EAGAIN while it runs, EIO when the status is unknown (reaped elsewhere),
 * EINVAL for NULL. */
int partisan_peer_exit_status(partisan_peer_t *p);

/* Accessors; strings are owned by the handle, NULL for a NULL handle. The
 * node is NAME@HOST as the daemon reports it once running. */
const char *partisan_peer_name(const partisan_peer_t *p);
const char *partisan_peer_node(const partisan_peer_t *p);
const char *partisan_peer_socket(const partisan_peer_t *p);
const char *partisan_peer_log(const partisan_peer_t *p);
/* The process id (> 0), or EINVAL. */
int partisan_peer_pid(const partisan_peer_t *p);
/* The listen port from the spec (> 0); EAGAIN while booting, EINVAL. */
int partisan_peer_port(const partisan_peer_t *p);
/* Open a session on the peer's socket (the control connection), as
 * partisan_connect(); EINVAL for NULL, ENOCONNECTION when it is down. */
int partisan_peer_connect(partisan_peer_t *p, partisan_t **out);

/* PREFIX-N-PID into buf, e.g. "peer-3-7161" (N counts up in this process);
 * prefix NULL: "peer". EINVAL for a bad prefix, ETOOBIG when buf is small
 * or the name would be over 64 characters. */
int partisan_peer_random_name(const char *prefix, char *buf, size_t n);

/* A recorded (detached) peer. */
typedef struct partisan_peer_info {
	char *name;
	char *node;
	char *socket;
	char *log;
	int pid;
	int port;
	bool detached;
	int64_t started;             /* Unix time, seconds */
	partisan_peer_state_t state; /* RUNNING when pid lives and is this peer (its
	                              * /proc/PID/cmdline has the socket), else DOWN */
} partisan_peer_info_t;

typedef struct partisan_peer_list {
	size_t n;
	partisan_peer_info_t *v; /* sorted by name; freed by partisan_peer_list_free() */
} partisan_peer_list_t;

/* Every record of the state directory (none when it does not exist);
 * unreadable or malformed records are skipped. Errors: EINVAL (NULL),
 * EPERM (unsafe directory), EIO, ENOMEM. */
int partisan_peer_list(partisan_peer_list_t *out);
void partisan_peer_list_free(partisan_peer_list_t *l); /* frees contents, zeroes *l */

/* Stop the recorded peer name as partisan_peer_stop() does (graceful:
 * deadline_ms, 0 for 5000), then remove its record, socket and private
 * directory; a peer already down is only cleaned up. Errors: EINVAL (bad
 * name, mode or deadline), ENOENT (no such record), EIO (unreadable
 * record), EPERM (unsafe directory, or not allowed to signal it),
 * ETIMEDOUT (it survived SIGKILL; the record stays). */
int partisan_peer_stop_name(const char *name, int mode, int deadline_ms);

#ifdef __cplusplus
}
#endif

#endif
