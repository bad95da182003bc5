/* monitor.h: the monitor tables (partisan_monitor, seed 002), a pure core.
 *
 * Who watches which endpoint, and which sessions watch which nodes; when a
 * session, a node or a remote monitor goes, the table says what must be told
 * to whom as a list of notes that the router carries out. Each endpoint
 * monitor yields exactly one DOWN and is then forgotten: nothing is left
 * behind for a session or a node that is gone. Sessions are named by their
 * endpoint id; the table holds no pointers into the daemon. */
#ifndef PARTISAN_MONITOR_H
#define PARTISAN_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mon_kind {
	MON_LOCAL, /* watcher and target are both sessions here */
	MON_OUT,   /* a session here watches an endpoint on another node */
	MON_IN,    /* a watcher on another node watches a session here */
};

enum mon_note_kind {
	MON_TELL_SESSION, /* push DOWN {mref, target, reason} to session */
	MON_TELL_NODE,    /* send Down {mref, target, reason} to node */
	MON_CANCEL_NODE,  /* send Demonitor {mref} to node */
	MON_NODEDOWN,     /* push nodedown {node, reason} to session (monitor_node) */
};

/* One thing to say. Strings are owned by the list. */
struct mon_note {
	enum mon_note_kind kind;
	uint64_t session;
	char *node;
	char *mref;
	char *target;
	char *reason;
};

struct mon_notes {
	struct mon_note *v;
	size_t n, cap;
};

void mon_notes_init(struct mon_notes *l);
/* Free the notes' strings and empty the list (it stays usable). */
void mon_notes_clear(struct mon_notes *l);

struct monitors;

struct monitors *monitors_create(void);
void monitors_destroy(struct monitors *t);

/* New endpoint monitors; mref must be unique. target is the ref as given. */
void monitors_add_local(struct monitors *t, const char *mref, uint64_t watcher, uint64_t target,
                        const char *target_ref);
void monitors_add_out(struct monitors *t, const char *mref, uint64_t watcher,
                      const char *target_ref, const char *node);
void monitors_add_in(struct monitors *t, const char *mref, uint64_t target, const char *target_ref,
                     const char *watcher_node);

/* Session watcher stops monitor mref (a remote one is cancelled there).
 * False when it is not one of watcher's live monitors: never an error, as
 * the monitor may have fired already. */
bool monitors_demonitor(struct monitors *t, const char *mref, uint64_t watcher,
                        struct mon_notes *out);
/* Node from cancels a monitor it held here. */
void monitors_peer_demonitor(struct monitors *t, const char *mref, const char *from);
/* Node from says the endpoint of monitor mref went, for reason: tell the
 * watcher. Ignored unless mref is an outgoing monitor toward from. */
void monitors_peer_down(struct monitors *t, const char *mref, const char *from, const char *reason,
                        struct mon_notes *out);
/* Session s is gone (reason normal or killed): its watchers learn it, its
 * own monitors are cancelled, its node monitors dropped. */
void monitors_session_gone(struct monitors *t, uint64_t s, const char *reason,
                           struct mon_notes *out);
/* The link to node is lost: monitors of endpoints there fire noconnection,
 * monitors held for watchers there are dropped, and each session that
 * monitors the node gets one nodedown with reason. */
void monitors_node_down(struct monitors *t, const char *node, const char *reason,
                        struct mon_notes *out);

/* monitor_node(node, flag) for session s: on or off, as Partisan's
 * (several calls from one session are one monitor). */
void monitors_watch_node(struct monitors *t, uint64_t s, const char *node, bool flag);

/* Endpoint monitors held, and (session, node) watches: for status and tests. */
size_t monitors_count(const struct monitors *t);
size_t monitors_node_watches(const struct monitors *t);

#endif
