/* client-int.h: what the files of libpartisan-client share and nobody else
 * sees: the handle, the connection layer (conn.c) and the conversions from
 * decoded protobuf to the public structs (convert.c). */
#ifndef PARTISAN_CLIENT_INT_H
#define PARTISAN_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.pb-c.h"
#include "partisan/client.h"

#define PC_MAX_FRAME_DEFAULT (64u << 20) /* 64 MiB */
#define PC_TIMEOUT_DEFAULT   30000       /* ms a request waits for its response */
#define PC_CALL_GRACE        5000        /* ms past a call's timeout before giving up */
#define PC_ERRMSG_MAX        256
#define PC_ABANDONED         8 /* request ids given up on, remembered */

/* A queued event: the public part first, so a partisan_event_t * is one. */
struct pc_event {
	partisan_event_t pub;
	PartisanIpc__ServerMsg *msg; /* owns every string pub points at */
	struct pc_event *next;
};

struct partisan {
	int fd;
	int broken;                    /* 0, or the error that ended the connection */
	uint32_t max_frame;            /* bytes, both directions */
	int timeout_ms;                /* < 0: wait forever */
	uint64_t next_id;              /* next request id */
	uint64_t await_id;             /* the request a synchronous call waits for, or 0 */
	PartisanIpc__ServerMsg *reply; /* its response once it arrived */
	uint8_t *rbuf;                 /* bytes read, at most one partial frame after parsing */
	size_t rlen, rcap;
	uint8_t *wbuf; /* bytes not yet written, from woff to wlen */
	size_t woff, wlen, wcap;
	struct pc_event *qhead, **qtail; /* events not yet received */
	size_t qlen;
	uint64_t quiet_errors;            /* failed quiet requests */
	int quiet_last;                   /* the last one's error */
	int quiet_pending;                /* the first since the last partisan_flush() */
	char quiet_msg[PC_ERRMSG_MAX];    /* the daemon's words for quiet_pending */
	uint64_t stray;                   /* responses nobody waited for, events of unknown type */
	uint64_t abandoned[PC_ABANDONED]; /* ids of requests that timed out */
	unsigned abandoned_i;
	uint64_t rng; /* xorshift state for registry_pid_of */
	char node[PARTISAN_NODE_MAX];
	char self[PARTISAN_REF_MAX];
	char errmsg[PC_ERRMSG_MAX];
};

/* conn.c: the socket, framing, queues and request/response matching. */
int pc_conn_open(struct partisan *c, const char *path);
void pc_conn_close(struct partisan *c);
/* Send req, giving it the next id. */
int pc_conn_send(struct partisan *c, PartisanIpc__Request *req, bool nonblock, bool more);
/* Write out what sends with more left in the buffer (blocking, up to the
 * handle's timeout). */
int pc_conn_flush_pending(struct partisan *c);
/* Send req and wait up to wait_ms (< 0: forever) for its response; on 0
 * *out is the decoded message (free with pc_msg_free), its error already
 * turned into the return value. */
int pc_conn_request(struct partisan *c, PartisanIpc__Request *req, int wait_ms,
                    PartisanIpc__ServerMsg **out);
/* Wait up to timeout_ms (< 0: forever) until an event is queued. */
int pc_conn_wait_event(struct partisan *c, int timeout_ms);
/* Read and write what the socket allows without blocking. */
int pc_conn_dispatch(struct partisan *c);
struct pc_event *pc_conn_pop(struct partisan *c);
/* Drop queued DOWN events for mref. */
void pc_conn_flush_down(struct partisan *c, const char *mref);
void pc_msg_free(PartisanIpc__ServerMsg *m);

/* client.c: checks and request helpers cluster.c uses too. */
bool pc_name_ok(const char *s);                      /* non-empty, shorter than PARTISAN_NODE_MAX */
bool pc_node_ok(const char *s);                      /* and NAME@HOST */
bool pc_ref_ok(const char *s, unsigned mask);        /* a ref of a kind in mask (1 << kind) */
int pc_copy(const char *src, char *buf, size_t n);   /* ETOOBIG if it doesn't fit */
int pc_wait(const struct partisan *c, int extra_ms); /* the handle's timeout + extra */
#define PC_ANY (-1000)                               /* pc_request body: accept any answer */
/* A request and its answer: body is the Response body case wanted; its
 * negation also accepts an answer without body (an empty list). */
int pc_request(struct partisan *c, PartisanIpc__Request *req, int wait_ms, int body,
               PartisanIpc__ServerMsg **out);
/* A request answered by a RefReply, the ref copied into ref (size n). */
int pc_ref_request(struct partisan *c, PartisanIpc__Request *req, char *ref, size_t n);
/* Turns an answer (a Response of the body case asked for, or without body
 * where the body case was negated) into what out points at. */
typedef int (*pc_conv_fn)(const PartisanIpc__Response *r, void *out);
/* A request and its answer, waited for the handle's timeout + extra_ms;
 * body as for pc_request; the answer converted into out by conv (NULL: the
 * answer is not wanted), then freed. */
int pc_query(struct partisan *c, PartisanIpc__Request *req, int extra_ms, int body, pc_conv_fn conv,
             void *out);
/* The same for a request without arguments: an Empty body of case kind. */
int pc_query_empty(struct partisan *c, PartisanIpc__Request__BodyCase kind, int extra_ms, int body,
                   pc_conv_fn conv, void *out);

/* convert.c: decoded protobuf to the public structs the caller owns. */
struct pc_event *pc_conv_event(PartisanIpc__ServerMsg *m);
void pc_conv_event_free(struct pc_event *e);
int pc_conv_strlist(char *const *v, size_t n, partisan_strlist_t *out);
/* The library's static copy of a member status name, or NULL if s is none. */
const char *pc_status_name(const char *s);
/* The answers (pc_conv_fn), by what out points at. A list answer without
 * body is an empty list; on error nothing is left allocated. */
int pc_conv_nodes(const PartisanIpc__Response *r, void *out);      /* partisan_strlist_t */
int pc_conv_members(const PartisanIpc__Response *r, void *out);    /* partisan_spec_list_t */
int pc_conv_conns(const PartisanIpc__Response *r, void *out);      /* partisan_conn_list_t */
int pc_conv_registry(const PartisanIpc__Response *r, void *out);   /* partisan_registry_t */
int pc_conv_partitions(const PartisanIpc__Response *r, void *out); /* partisan_partition_list_t */
int pc_conv_graph(const PartisanIpc__Response *r, void *out);      /* partisan_graph_t */
int pc_conv_status(const PartisanIpc__Response *r, void *out);     /* partisan_status_t *, new */
int pc_conv_node_spec(const PartisanIpc__Response *r, void *out);  /* partisan_node_spec_t *, new */

#endif
