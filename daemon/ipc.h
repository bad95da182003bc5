/* ipc.h: the Unix-socket server local programs attach to (proto/ipc.proto).
 * A session is one client connection; requests are dispatched through a
 * table indexed by request type; events are pushed on the same socket. */
#ifndef PARTISAN_IPC_H
#define PARTISAN_IPC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"
#include "ipc.pb-c.h"

struct session {
	struct daemon *d;
	struct bufferevent *bev;
	uint64_t id; /* this session's endpoint id: partisan:pid:NODE:ID */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool hello_done;
	bool closing;
	bool reading;     /* in its read callback: a close there frees it on the way out */
	bool clean_close; /* the client said goodbye (EOF after a complete frame) */
	bool paused;      /* reading stopped: a peer link it sends to is full */
	char ref[300];    /* its endpoint ref */
	uint64_t turn;    /* daemon turn of its last direct write */
	void *rt;         /* router's per-session state */
	TAILQ_ENTRY(session) entry;
};

int ipc_listen(struct daemon *d);
void ipc_shutdown(struct daemon *d);
void ipc_tick(struct daemon *d, uint64_t now);
/* A peer link opened: answer the sync_joins it completes now, not at the
 * next tick. */
void ipc_joins_check(struct daemon *d);

/* Replies and events; msg may be NULL for a plain success. */
void ipc_respond(struct session *s, uint64_t id, PartisanIpc__Response *r);
void ipc_respond_ok(struct session *s, uint64_t id);
void ipc_respond_error(struct session *s, uint64_t id, PartisanIpc__Error err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A Message event whose payload (empty in msg) is big's bytes, moved. */
void ipc_push_message_big(struct session *s, PartisanIpc__Message *msg, struct evbuffer *big);
void ipc_push_event(struct session *s, PartisanIpc__Event *ev);
/* Bytes queued toward the client. */
size_t ipc_queued(const struct session *s);

/* Iterate sessions. */
struct session *ipc_first(struct daemon *d);
struct session *ipc_next(struct session *s);
size_t ipc_count(struct daemon *d);

/* A stopped node (left the cluster) tells every session. */
void ipc_broadcast_stopped(struct daemon *d);

#endif
