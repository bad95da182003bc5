/* fd.h: the failure detector (see fd.c for the protocol). A pure core: the
 * shell tells it what happened on the links (a node up or down, a frame
 * heard from or sent to a node, bytes waiting unread, a Silent report) with
 * the time, and carries out what it asks for in a list of actions (send a
 * heartbeat, tell the others a node went silent, take a node down, log a
 * suspicion). It reads no clock, touches no socket and logs nothing. */
#ifndef PARTISAN_FD_H
#define PARTISAN_FD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FD_WATCH 2 /* ring neighbours watched on each side */

struct fd;
struct fd_node; /* one per node the shell knows: owned by the detector */

enum fd_action_kind {
	FD_HEARTBEAT,   /* send node a heartbeat request */
	FD_SILENT_TELL, /* tell every other up node that node went silent */
	FD_DOWN,        /* take node down (close its links both ways) */
	FD_SUSPECT,     /* watchers say node is silent, but we heard it lately:
	                 * send it a heartbeat request (asking it ourselves) */
};

enum fd_reason {
	FD_TIMEOUT, /* nothing heard from it for the failure timeout */
	FD_SILENT,  /* two watchers said so, and nothing heard here either */
};

struct fd_action {
	enum fd_action_kind kind;
	struct fd_node *node;
	const char *name;      /* node's name (the detector's, valid until fd_forget) */
	const char *by;        /* DOWN (FD_SILENT), SUSPECT: the second watcher */
	enum fd_reason reason; /* DOWN */
	uint64_t silent_ms;    /* DOWN, SILENT_TELL: how long nothing was heard (FD_TIMEOUT)
	                        * or the watcher's report (FD_SILENT) */
	uint64_t heard_ago_ms; /* DOWN (FD_SILENT), SUSPECT: since we last heard it */
};

struct fd_actions {
	struct fd_action *v;
	size_t n, cap;
};

void fd_actions_init(struct fd_actions *a);
void fd_actions_clear(struct fd_actions *a); /* empty it, keep the memory */
void fd_actions_free(struct fd_actions *a);

struct fd_stats {
	uint64_t timeouts;    /* nodes taken down: nothing heard for the timeout */
	uint64_t silent;      /* nodes taken down on a second watcher's Silent */
	uint64_t suspicions;  /* Silent reports doubted: we heard it lately */
	uint64_t heartbeats;  /* heartbeat requests asked for (HEARTBEAT, SUSPECT) */
	uint64_t replies;     /* heartbeat requests answered (fd_heartbeat_asked) */
	uint64_t silent_tell; /* SILENT_TELL actions */
};

/* self: this node's name (copied). timeout_ms: failure_timeout_ms. ring:
 * every up node is linked to every other (full_mesh), so each watches only
 * its FD_WATCH ring neighbours on each side; otherwise it watches all. */
struct fd *fd_create(const char *self, uint64_t timeout_ms, bool ring);
void fd_destroy(struct fd *fd);

/* The record of node (created, down, on first use); valid until fd_forget. */
struct fd_node *fd_node(struct fd *fd, const char *name);
struct fd_node *fd_find(const struct fd *fd, const char *name);
const char *fd_node_name(const struct fd_node *n);
/* The shell no longer knows node: drop its record. */
void fd_forget(struct fd *fd, struct fd_node *n);

/* Its link came up (counts as heard now) / went down. */
void fd_node_up(struct fd *fd, struct fd_node *n, uint64_t now);
void fd_node_down(struct fd *fd, struct fd_node *n);
bool fd_is_up(const struct fd_node *n);
/* The up nodes, one per call from *it = 0 on, then NULL. */
const char *fd_next_up(const struct fd *fd, size_t *it);
/* A frame came from node / something of ours went to it. */
void fd_heard(struct fd_node *n, uint64_t now);
void fd_sent(struct fd_node *n, uint64_t now);
/* A heartbeat request came from node: true when it wants a reply (nothing
 * of ours went to it since the current round began). */
bool fd_heartbeat_asked(struct fd *fd, struct fd_node *n);
/* At now, bytes from node wait unread on its links (the shell's ioctl
 * FIONREAD): node did speak, this process has not read it yet. Counts as
 * life for an fd_tick at the same now only. */
void fd_unread(struct fd_node *n, uint64_t now);
/* Whether the shell said so for this now. */
bool fd_unread_now(const struct fd_node *n, uint64_t now);
/* Nodes that the next fd_tick at now would time out (up, watched or
 * suspected, nothing heard for the timeout): the ones worth an unread
 * check. Returns how many; *out (owned by the detector, valid until its next
 * call) lists them. */
size_t fd_overdue(struct fd *fd, uint64_t now, struct fd_node ***out);
/* from says node has been silent for silent_ms. unread: bytes from node
 * wait unread here. */
void fd_silent_report(struct fd *fd, struct fd_node *from, struct fd_node *node, uint64_t silent_ms,
                      bool unread, uint64_t now, struct fd_actions *out);
/* Timeouts, suspicions, and at the start of a heartbeat round the
 * heartbeats. Returns true when this tick began a round. */
bool fd_tick(struct fd *fd, uint64_t now, struct fd_actions *out);
/* This process was paused: count every node as heard from now. */
void fd_forgive(struct fd *fd, uint64_t now);

/* Up, and watchers said silent, and we are asking it (since when). */
bool fd_suspect(const struct fd_node *n, uint64_t *since_ms);
bool fd_watched(const struct fd_node *n);
size_t fd_nwatched(const struct fd *fd);
uint64_t fd_round_ms(const struct fd *fd);
const struct fd_stats *fd_stats(const struct fd *fd);

#endif
