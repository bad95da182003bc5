/* conn.c: libpartisan-client's connection to partisand: the Unix socket,
 * length-prefixed frames (checked against max_frame before any allocation),
 * a write buffer for partial and nonblocking sends, the event queue, and the
 * matching of a synchronous request with its response. No threads: all I/O
 * happens inside the caller's calls, with poll() and MSG_DONTWAIT. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client-int.h"
#include "wire.h"

#define CONN_READ_CHUNK  (64u << 10)
#define CONN_READ_ROUNDS 64 /* reads per dispatch, so a flood can't starve the caller */
#define CONN_SPIN_US     50 /* busy poll before a blocking wait, see conn_poll */

/* A decoded ServerMsg lives in one block: the message first, then all that
 * protobuf-c allocates for it, bump-allocated (a frame's strings and bytes
 * fit, the structs in a little more); what does not fit goes to blocks
 * chained on. One free releases it all: no malloc and free per field. */
struct pc_block {
	struct pc_block *next, *cur; /* the chain; in the first: the block in use */
	size_t used, cap;
	max_align_t data[];
};

#define PC_ALIGN(n) (((n) + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1))

/* The last big first block freed, kept for the next big frame: a stream of
 * big messages then reuses one buffer instead of having fresh pages
 * faulted in and zeroed for each (malloc hands such sizes back to the
 * system at free). One per process, of at most PC_SPARE_MAX. */
#define PC_SPARE_MIN (64u << 10)
#define PC_SPARE_MAX (8u << 20) /* bigger ones go back to the system */
static _Atomic(struct pc_block *) pc_spare;

__attribute__((destructor)) static void pc_spare_release(void)
{
	free(atomic_exchange(&pc_spare, NULL));
}

static struct pc_block *pc_block_new(size_t cap)
{
	struct pc_block *b = NULL;

	if (cap >= PC_SPARE_MIN && (b = atomic_exchange(&pc_spare, NULL)) != NULL &&
	    (b->cap < cap || b->cap > 2 * cap)) {
		free(b); /* too small, or too big to hold on to for this frame */
		b = NULL;
	}
	if (b == NULL && (b = malloc(sizeof(*b) + cap)) != NULL)
		b->cap = cap;
	if (b != NULL) {
		b->next = NULL;
		b->cur = b;
		b->used = 0;
	}
	return b;
}

static void *pc_block_alloc(void *arg, size_t size)
{
	struct pc_block *first = arg, *b = first->cur;
	void *p;

	size = PC_ALIGN(size ? size : 1);
	if (b->cap - b->used < size) {
		b = pc_block_new(size > 4096 ? size : 4096);
		if (b == NULL)
			return NULL;
		first->cur->next = b;
		first->cur = b;
	}
	p = (char *)b->data + b->used;
	b->used += size;
	return p;
}

static void pc_block_nofree(void *arg, void *p)
{
	(void)arg;
	(void)p; /* everything goes with the block */
}

static void pc_block_free(struct pc_block *b)
{
	while (b != NULL) {
		struct pc_block *next = b->next;

		if (b->cap >= PC_SPARE_MIN && b->cap <= PC_SPARE_MAX)
			b = atomic_exchange(&pc_spare, b);
		free(b);
		b = next;
	}
}

static PartisanIpc__ServerMsg *pc_msg_unpack(const uint8_t *body, uint32_t len)
{
	struct pc_block *b = pc_block_new(PC_ALIGN((size_t)len) + 1024);
	ProtobufCAllocator al = {pc_block_alloc, pc_block_nofree, NULL};
	PartisanIpc__ServerMsg *m;

	if (b == NULL)
		return NULL;
	al.allocator_data = b;
	m = partisan_ipc__server_msg__unpack(&al, len, body);
	/* protobuf-c allocates the message itself first: pc_msg_free finds the
	 * block from it. */
	if (m == NULL || (void *)m != (void *)b->data) {
		pc_block_free(b);
		return NULL;
	}
	return m;
}

void pc_msg_free(PartisanIpc__ServerMsg *m)
{
	if (m != NULL)
		pc_block_free(
		    (struct pc_block *)(void *)((char *)m - offsetof(struct pc_block, data)));
}

static int64_t conn_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline for a wait of ms (< 0: none, returned as -1). */
static int64_t conn_deadline(int ms)
{
	return ms < 0 ? -1 : conn_now_ms() + ms;
}

/* Milliseconds left until deadline, for poll(): -1 forever, 0 expired. */
static int conn_left(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - conn_now_ms();
	if (left <= 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static int conn_fail(struct partisan *c, int err)
{
	if (c->broken == 0)
		c->broken = err;
	return c->broken;
}

/* Wait for connect(2) interrupted by a signal to finish. */
static int conn_connect_wait(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t len = sizeof(int);
	int err = 0, r;

	do
		r = poll(&p, 1, -1);
	while (r < 0 && errno == EINTR);
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -1;
	errno = err;
	return err == 0 ? 0 : -1;
}

static int conn_errno_code(int e)
{
	if (e == EACCES || e == EPERM)
		return PARTISAN_EPERM;
	if (e == ENOMEM || e == ENOBUFS)
		return PARTISAN_ENOMEM;
	return PARTISAN_EIO;
}

int pc_conn_open(struct partisan *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path) || path[0] == '\0')
		return PARTISAN_EINVAL;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return conn_errno_code(errno);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EINTR)
		r = conn_connect_wait(fd);
	if (r < 0) {
		r = conn_errno_code(errno);
		close(fd);
		return r;
	}
	c->fd = fd;
	return 0;
}

void pc_conn_close(struct partisan *c)
{
	struct pc_event *e;

	while ((e = pc_conn_pop(c)) != NULL)
		pc_conv_event_free(e);
	pc_msg_free(c->reply);
	c->reply = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rbuf);
	free(c->wbuf);
	c->rbuf = c->wbuf = NULL;
}

/* ---- incoming frames --------------------------------------------------- */

static void conn_enqueue(struct partisan *c, PartisanIpc__ServerMsg *m)
{
	struct pc_event *e = pc_conv_event(m);

	if (e == NULL) { /* an event type this library doesn't know: skip it */
		c->stray++;
		pc_msg_free(m);
		return;
	}
	*c->qtail = e;
	c->qtail = &e->next;
	c->qlen++;
}

static int conn_error_code(const PartisanIpc__Response *r)
{
	if (!r->has_error || r->error == PARTISAN_IPC__ERROR__OK)
		return 0;
	if ((int)r->error < 1 || (int)r->error > -PARTISAN_ESTOPPED)
		return PARTISAN_EPROTO;
	return -(int)r->error;
}

/* Remember a synchronous request given up on, so its late answer is not
 * taken for a failed quiet request. */
static void conn_abandon(struct partisan *c, uint64_t id)
{
	c->abandoned[c->abandoned_i++ % PC_ABANDONED] = id;
}

static bool conn_abandoned(const struct partisan *c, uint64_t id)
{
	for (size_t i = 0; i < PC_ABANDONED; i++)
		if (c->abandoned[i] == id)
			return true;
	return false;
}

static void conn_response(struct partisan *c, PartisanIpc__ServerMsg *m)
{
	int err = conn_error_code(m->response);

	if (m->response->id == 0 && err != 0) {
		/* The daemon's last word (a refused client): the session is over,
		 * and this is why; it outranks the EOF that follows. */
		snprintf(c->errmsg, sizeof(c->errmsg), "%s",
		         m->response->error_msg ? m->response->error_msg : "");
		c->broken = err;
		pc_msg_free(m);
		return;
	}
	if (c->await_id != 0 && m->response->id == c->await_id && c->reply == NULL) {
		c->reply = m;
		return;
	}
	if (conn_abandoned(c, m->response->id))
		err = 0; /* the late answer to a request we gave up on */
	if (err != 0) {  /* a quiet request failed */
		c->quiet_errors++;
		c->quiet_last = err;
		if (c->quiet_pending == 0) {
			c->quiet_pending = err;
			snprintf(c->quiet_msg, sizeof(c->quiet_msg), "%s",
			         m->response->error_msg ? m->response->error_msg : "");
		}
	} else {
		c->stray++;
	}
	pc_msg_free(m);
}

static int conn_frame(struct partisan *c, const uint8_t *body, uint32_t len)
{
	PartisanIpc__ServerMsg *m = pc_msg_unpack(body, len);

	if (m == NULL)
		return conn_fail(c, PARTISAN_EPROTO);
	switch (m->body_case) {
	case PARTISAN_IPC__SERVER_MSG__BODY_RESPONSE:
		conn_response(c, m);
		return 0;
	case PARTISAN_IPC__SERVER_MSG__BODY_EVENT:
		conn_enqueue(c, m);
		return 0;
	default:
		pc_msg_free(m);
		return conn_fail(c, PARTISAN_EPROTO);
	}
}

/* Handle every whole frame in rbuf; keep the partial one. */
static int conn_parse(struct partisan *c)
{
	size_t off = 0;
	uint32_t len;
	int r = 0;

	while (r == 0) {
		int p = frame_peek(c->rbuf + off, c->rlen - off, c->max_frame, &len);

		if (p < 0)
			r = conn_fail(c, PARTISAN_EPROTO);
		if (p <= 0 || c->rlen - off - FRAME_HEADER < len)
			break;
		r = conn_frame(c, c->rbuf + off + FRAME_HEADER, len);
		off += FRAME_HEADER + (size_t)len;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	return r;
}

/* Make room for the next read: a chunk, or the whole pending frame, whose
 * length conn_parse() has already checked against max_frame. */
static int conn_rbuf_room(struct partisan *c)
{
	size_t need = c->rlen + CONN_READ_CHUNK;
	uint32_t len;
	uint8_t *p;

	if (frame_peek(c->rbuf, c->rlen, c->max_frame, &len) == 1 &&
	    (size_t)len + FRAME_HEADER > c->rlen)
		need = (size_t)len + FRAME_HEADER;
	if (need <= c->rcap)
		return 0;
	if (need < 2 * c->rcap && 2 * c->rcap <= (size_t)c->max_frame + FRAME_HEADER)
		need = 2 * c->rcap;
	p = realloc(c->rbuf, need);
	if (p == NULL)
		return PARTISAN_ENOMEM;
	c->rbuf = p;
	c->rcap = need;
	return 0;
}

/* One non-blocking read. 1: got bytes, 0: nothing there, < 0: broken. */
static int conn_read(struct partisan *c)
{
	ssize_t n;
	int r;

	if (c->broken)
		return c->broken;
	r = conn_rbuf_room(c);
	if (r < 0)
		return r;
	do
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return conn_fail(c, PARTISAN_EIO);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : conn_fail(c, PARTISAN_EIO);
	c->rlen += (size_t)n;
	r = conn_parse(c);
	return r < 0 ? r : 1;
}

/* ---- outgoing frames --------------------------------------------------- */

/* Write what the socket takes now. 0: all written, 1: some left. */
static int conn_flush_nb(struct partisan *c)
{
	while (c->woff < c->wlen) {
		ssize_t n =
		    send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		if (n <= 0)
			return conn_fail(c, PARTISAN_EIO);
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	return 0;
}

/* Wait for the socket until deadline, reading while waiting so that a
 * daemon blocked on writing to us can't deadlock a write. 0: something
 * happened, ETIMEDOUT, or the broken code. */
static int conn_poll(struct partisan *c, int64_t deadline)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int r;

	if (c->broken)
		return c->broken;
	if (c->wlen > c->woff)
		p.events |= POLLOUT;
	/* A short busy poll first (yielding the CPU): a reply usually comes
	 * within microseconds, and waking a halted CPU costs more than that on
	 * a virtual machine. */
	for (int64_t spin_end = conn_now_us() + CONN_SPIN_US;
	     (r = poll(&p, 1, 0)) == 0 && conn_now_us() < spin_end;)
		sched_yield();
	if (r == 0)
		r = poll(&p, 1, conn_left(deadline));
	if (r < 0)
		return errno == EINTR ? 0 : conn_fail(c, PARTISAN_EIO);
	if (r == 0)
		return PARTISAN_ETIMEDOUT;
	if (p.revents & POLLNVAL) /* someone closed our fd */
		return conn_fail(c, PARTISAN_EIO);
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		r = conn_read(c);
		if (r < 0)
			return r;
	}
	if (c->wlen > c->woff && (r = conn_flush_nb(c)) < 0)
		return r;
	return 0;
}

static int conn_flush(struct partisan *c, int64_t deadline)
{
	int r;

	while ((r = conn_flush_nb(c)) == 1)
		if ((r = conn_poll(c, deadline)) < 0)
			return r;
	return r;
}

static int conn_append(struct partisan *c, const PartisanIpc__Request *req, size_t len)
{
	size_t need = c->wlen + FRAME_HEADER + len;
	uint8_t *p;

	if (need > c->wcap) {
		p = realloc(c->wbuf, need);
		if (p == NULL)
			return PARTISAN_ENOMEM;
		c->wbuf = p;
		c->wcap = need;
	}
	frame_put_header(c->wbuf + c->wlen, (uint32_t)len);
	partisan_ipc__request__pack(req, c->wbuf + c->wlen + FRAME_HEADER);
	c->wlen = need;
	return 0;
}

/* Nonblocking: refuse with EAGAIN unless some of the frame gets out now;
 * a frame partly written stays in wbuf and goes out with later calls. */
static int conn_send_nb(struct partisan *c, const PartisanIpc__Request *req, size_t len)
{
	size_t start;
	int r;

	if ((r = conn_flush_nb(c)) != 0)
		return r < 0 ? r : PARTISAN_EAGAIN;
	if ((r = conn_append(c, req, len)) < 0)
		return r;
	start = c->woff;
	r = conn_flush_nb(c);
	if (r == 1 && c->woff == start) {
		c->wlen = c->woff = 0;
		return PARTISAN_EAGAIN;
	}
	return r < 0 ? r : 0;
}

int pc_conn_send(struct partisan *c, PartisanIpc__Request *req, bool nonblock, bool more)
{
	size_t len;
	int r;

	if (c->broken)
		return c->broken;
	req->id = c->next_id++;
	len = partisan_ipc__request__get_packed_size(req);
	if (len > c->max_frame)
		return PARTISAN_ETOOBIG;
	if (more && c->wlen - c->woff + FRAME_HEADER + len <= PARTISAN_MORE_MAX)
		return conn_append(c, req, len); /* held for the rest of the burst */
	if (nonblock)
		return conn_send_nb(c, req, len);
	if ((r = conn_append(c, req, len)) < 0)
		return r;
	return conn_flush(c, conn_deadline(c->timeout_ms));
}

int pc_conn_flush_pending(struct partisan *c)
{
	if (c->broken || c->wlen == c->woff)
		return c->broken;
	return conn_flush(c, conn_deadline(c->timeout_ms));
}

/* ---- waiting ----------------------------------------------------------- */

static int conn_take_reply(struct partisan *c, PartisanIpc__ServerMsg **out)
{
	PartisanIpc__ServerMsg *m = c->reply;
	const char *msg = m->response->error_msg;
	int err = conn_error_code(m->response);

	c->reply = NULL;
	c->await_id = 0;
	if (err == 0) {
		*out = m;
		return 0;
	}
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg != NULL ? msg : "");
	pc_msg_free(m);
	return err;
}

/* A write failed because the daemon closed: what it said last (a refused
 * client's EPERM) may still be there to read, and is the better reason. */
static int conn_last_words(struct partisan *c)
{
	int was = c->broken;

	if (was != PARTISAN_EIO)
		return was;
	c->broken = 0;
	if (conn_read(c) >= 0 && c->broken == 0)
		c->broken = was;
	return c->broken;
}

int pc_conn_request(struct partisan *c, PartisanIpc__Request *req, int wait_ms,
                    PartisanIpc__ServerMsg **out)
{
	int64_t deadline = conn_deadline(wait_ms);
	int r;

	c->errmsg[0] = '\0';
	if ((r = pc_conn_send(c, req, false, false)) < 0) {
		if (r == PARTISAN_EIO)
			r = conn_last_words(c);
		if (r == PARTISAN_ETIMEDOUT) /* part of it may still go out later */
			conn_abandon(c, req->id);
		return r;
	}
	c->await_id = req->id;
	while (c->reply == NULL) {
		/* A reply read whole before the connection broke still counts. */
		if ((r = conn_poll(c, deadline)) < 0 && c->reply == NULL) {
			conn_abandon(c, c->await_id);
			c->await_id = 0;
			return r;
		}
	}
	return conn_take_reply(c, out);
}

int pc_conn_wait_event(struct partisan *c, int timeout_ms)
{
	int64_t deadline = conn_deadline(timeout_ms);
	int r;

	if (c->wlen > c->woff && !c->broken)
		(void)conn_flush_nb(c); /* sends held back with more go out first */
	if (c->qhead == NULL && !c->broken)
		(void)pc_conn_dispatch(c); /* a failure shows below, once the queue is empty */
	while (c->qhead == NULL) {
		if (timeout_ms == 0)
			return c->broken ? c->broken : PARTISAN_ETIMEDOUT;
		if ((r = conn_poll(c, deadline)) < 0)
			return r;
	}
	return 0;
}

int pc_conn_dispatch(struct partisan *c)
{
	int i, r = 1;

	for (i = 0; i < CONN_READ_ROUNDS && r == 1; i++)
		r = conn_read(c);
	if (r >= 0 && c->wlen > c->woff)
		r = conn_flush_nb(c);
	return r < 0 ? r : (int)(c->qlen > 0x7fffffff ? 0x7fffffff : c->qlen);
}

struct pc_event *pc_conn_pop(struct partisan *c)
{
	struct pc_event *e = c->qhead;

	if (e == NULL)
		return NULL;
	c->qhead = e->next;
	if (c->qhead == NULL)
		c->qtail = &c->qhead;
	c->qlen--;
	e->next = NULL;
	return e;
}

void pc_conn_flush_down(struct partisan *c, const char *mref)
{
	struct pc_event **pp = &c->qhead, *e;

	c->qtail = &c->qhead;
	while ((e = *pp) != NULL) {
		if (e->pub.type == PARTISAN_EV_DOWN && strcmp(e->pub.down.mref, mref) == 0) {
			*pp = e->next;
			c->qlen--;
			pc_conv_event_free(e);
			continue;
		}
		pp = &e->next;
		c->qtail = pp;
	}
}
