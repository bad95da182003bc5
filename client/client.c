/* client.c: libpartisan-client's session, identity, reference, name,
 * message, call and monitoring functions: check the arguments, build one
 * ipc.proto request, hand the answer back in the caller's terms. The
 * cluster-wide queries are in cluster.c, the I/O in conn.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client-int.h"
#include "wire.h"

_Static_assert(PARTISAN_NODE_MAX == REF_NODE_MAX, "node buffer size");
_Static_assert(PARTISAN_NODE_MAX == REF_ID_MAX, "ref id buffer size");
_Static_assert(PARTISAN_REF_MAX >= sizeof("partisan:name:") + REF_NODE_MAX + REF_ID_MAX,
               "ref buffer size");

static const char *const cl_errors[] = {
    "success",
    "invalid argument",
    "out of memory",
    "daemon not reachable or connection lost",
    "protocol violation",
    "protocol version mismatch",
    "not authorised",
    "name already registered",
    "no such name, ref, node or item",
    "no such endpoint",
    "node not connected",
    "timed out",
    "would block, retry later",
    "node is behind an injected partition",
    "not supported",
    "session closed",
    "message too big",
    "this node left the cluster",
};

const char *partisan_strerror(int code)
{
	if (code > 0 || code < PARTISAN_ESTOPPED)
		return "unknown error";
	return cl_errors[-code];
}

/* ---- helpers shared with cluster.c -------------------------------------- */

bool pc_name_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strlen(s) < PARTISAN_NODE_MAX;
}

bool pc_node_ok(const char *s)
{
	const char *at;

	if (!pc_name_ok(s))
		return false;
	at = strchr(s, '@');
	return at != NULL && at != s && at[1] != '\0';
}

/* s is a reference URI of one of the kinds in mask (1 << PARTISAN_REF_*). */
bool pc_ref_ok(const char *s, unsigned mask)
{
	struct ref r;

	return s != NULL && ref_parse(s, &r) == 0 && (mask & (1u << r.kind)) != 0;
}

int pc_copy(const char *src, char *buf, size_t n)
{
	size_t len = strlen(src);

	if (len >= n)
		return PARTISAN_ETOOBIG;
	memcpy(buf, src, len + 1);
	return 0;
}

int pc_wait(const struct partisan *c, int extra_ms)
{
	return c->timeout_ms < 0 ? -1 : c->timeout_ms + extra_ms;
}

int pc_request(struct partisan *c, PartisanIpc__Request *req, int wait_ms, int body,
               PartisanIpc__ServerMsg **out)
{
	PartisanIpc__ServerMsg *m;
	int r, got;

	if ((r = pc_conn_request(c, req, wait_ms, &m)) < 0)
		return r;
	got = (int)m->response->body_case;
	if (!(body == PC_ANY || got == body || (body < 0 && (got == -body || got == 0)))) {
		pc_msg_free(m);
		return PARTISAN_EPROTO;
	}
	if (out != NULL)
		*out = m;
	else
		pc_msg_free(m);
	return 0;
}

int pc_query(struct partisan *c, PartisanIpc__Request *req, int extra_ms, int body, pc_conv_fn conv,
             void *out)
{
	PartisanIpc__ServerMsg *m;
	int r = pc_request(c, req, pc_wait(c, extra_ms), body, conv != NULL ? &m : NULL);

	if (r < 0 || conv == NULL)
		return r;
	r = conv(m->response, out);
	pc_msg_free(m);
	return r;
}

int pc_query_empty(struct partisan *c, PartisanIpc__Request__BodyCase kind, int extra_ms, int body,
                   pc_conv_fn conv, void *out)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Empty empty = PARTISAN_IPC__EMPTY__INIT;

	req.body_case = kind;
	req.status = &empty; /* every Empty body shares the union slot */
	return pc_query(c, &req, extra_ms, body, conv, out);
}

/* A request without an answer body. */
static int cl_simple(struct partisan *c, PartisanIpc__Request *req)
{
	return pc_request(c, req, pc_wait(c, 0), PC_ANY, NULL);
}

/* partisan:name:NODE:NAME into buf, node NULL meaning this node. */
static int cl_name_ref(const struct partisan *c, const char *node, const char *name, char *buf,
                       size_t n)
{
	struct ref r;

	if (node == NULL)
		node = c->node;
	if (!pc_node_ok(node) || !pc_name_ok(name))
		return PARTISAN_EINVAL;
	if (ref_make(REF_NAME, node, name, buf, n) < 0 || ref_parse(buf, &r) < 0)
		return PARTISAN_EINVAL;
	return strcmp(r.id, name) == 0 && strcmp(r.node, node) == 0 ? 0 : PARTISAN_EINVAL;
}

/* ---- session ----------------------------------------------------------- */

int partisan_connect(const char *path, partisan_t **out)
{
	return partisan_connect_with(path, NULL, out);
}

static const char *cl_socket_path(const char *path)
{
	const char *env = getenv("PARTISAN_SOCKET");

	if (path != NULL)
		return path;
	return env != NULL && env[0] != '\0' ? env : PARTISAN_DEFAULT_SOCKET;
}

static struct partisan *cl_new(const partisan_connect_opts_t *opts)
{
	struct partisan *c = calloc(1, sizeof(*c));
	struct timespec ts;

	if (c == NULL)
		return NULL;
	c->fd = -1;
	c->next_id = 1;
	c->qtail = &c->qhead;
	c->max_frame = PC_MAX_FRAME_DEFAULT;
	c->timeout_ms = PC_TIMEOUT_DEFAULT;
	if (opts != NULL && opts->max_frame_bytes > 0)
		c->max_frame = opts->max_frame_bytes;
	if (opts != NULL && opts->timeout_ms != 0)
		c->timeout_ms = opts->timeout_ms < 0 ? -1 : opts->timeout_ms;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 40;
	c->rng |= 1;
	return c;
}

static int cl_hello(struct partisan *c, const char *client)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Hello hello = PARTISAN_IPC__HELLO__INIT;
	PartisanIpc__ServerMsg *m;
	const PartisanIpc__HelloReply *h;
	int r;

	hello.version = IPC_PROTOCOL_VERSION;
	hello.client = (char *)(client != NULL ? client : "libpartisan-client");
	req.body_case = PARTISAN_IPC__REQUEST__BODY_HELLO;
	req.hello = &hello;
	r = pc_request(c, &req, pc_wait(c, 0), PARTISAN_IPC__RESPONSE__BODY_HELLO, &m);
	if (r < 0)
		return r;
	h = m->response->hello;
	if (h->version != IPC_PROTOCOL_VERSION)
		r = PARTISAN_EVERSION;
	else if (pc_copy(h->node, c->node, sizeof(c->node)) < 0 ||
	         pc_copy(h->self, c->self, sizeof(c->self)) < 0)
		r = PARTISAN_EPROTO;
	pc_msg_free(m);
	return r;
}

int partisan_connect_with(const char *path, const partisan_connect_opts_t *opts, partisan_t **out)
{
	struct partisan *c;
	int r;

	if (out == NULL)
		return PARTISAN_EINVAL;
	*out = NULL;
	if ((c = cl_new(opts)) == NULL)
		return PARTISAN_ENOMEM;
	r = pc_conn_open(c, cl_socket_path(path));
	if (r == 0)
		r = cl_hello(c, opts != NULL ? opts->client : NULL);
	if (r < 0) {
		partisan_close(c);
		return r;
	}
	*out = c;
	return 0;
}

int partisan_close(partisan_t *c)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Empty empty = PARTISAN_IPC__EMPTY__INIT;

	if (c == NULL)
		return PARTISAN_EINVAL;
	if (c->fd >= 0 && !c->broken) {
		/* Say goodbye, so that monitors of this endpoint see "normal". */
		req.body_case = PARTISAN_IPC__REQUEST__BODY_BYE;
		req.bye = &empty;
		req.has_quiet = req.quiet = 1;
		pc_conn_flush_pending(c); /* what sends with more left behind */
		pc_conn_send(c, &req, true, false);
	}
	pc_conn_close(c);
	free(c);
	return 0;
}

int partisan_fd(partisan_t *c)
{
	return c != NULL ? c->fd : PARTISAN_EINVAL;
}

int partisan_dispatch(partisan_t *c)
{
	return c != NULL ? pc_conn_dispatch(c) : PARTISAN_EINVAL;
}

const char *partisan_last_error(partisan_t *c)
{
	return c != NULL ? c->errmsg : NULL;
}

/* ---- identity and references ------------------------------------------- */

int partisan_node(partisan_t *c, char *buf, size_t n)
{
	if (c == NULL || buf == NULL || n == 0)
		return PARTISAN_EINVAL;
	return pc_copy(c->node, buf, n);
}

int partisan_self(partisan_t *c, char *buf, size_t n)
{
	if (c == NULL || buf == NULL || n == 0)
		return PARTISAN_EINVAL;
	return pc_copy(c->self, buf, n);
}

int partisan_node_spec(partisan_t *c, partisan_node_spec_t **out)
{
	if (c == NULL || out == NULL)
		return PARTISAN_EINVAL;
	*out = NULL;
	return pc_query_empty(c, PARTISAN_IPC__REQUEST__BODY_SPEC, 0,
	                      PARTISAN_IPC__RESPONSE__BODY_SPEC, pc_conv_node_spec, out);
}

int partisan_ref_parse(const char *uri, partisan_ref_t *out)
{
	struct ref r;

	if (uri == NULL || out == NULL || ref_parse(uri, &r) < 0)
		return PARTISAN_EINVAL;
	out->kind = (partisan_ref_kind_t)r.kind;
	memcpy(out->node, r.node, sizeof(out->node));
	memcpy(out->id, r.id, sizeof(out->id));
	return 0;
}

int partisan_ref_format(const partisan_ref_t *r, char *buf, size_t n)
{
	char tmp[PARTISAN_REF_MAX];
	struct ref back;

	if (r == NULL || buf == NULL || n == 0 || r->kind < PARTISAN_REF_PID ||
	    r->kind > PARTISAN_REF_REF || memchr(r->node, '\0', sizeof(r->node)) == NULL ||
	    memchr(r->id, '\0', sizeof(r->id)) == NULL)
		return PARTISAN_EINVAL;
	if (ref_make((enum ref_kind)r->kind, r->node, r->id, tmp, sizeof(tmp)) < 0 ||
	    ref_parse(tmp, &back) < 0 || strcmp(back.node, r->node) != 0 ||
	    strcmp(back.id, r->id) != 0)
		return PARTISAN_EINVAL;
	return pc_copy(tmp, buf, n);
}

int partisan_ref_node(const char *uri, char *buf, size_t n)
{
	struct ref r;

	if (uri == NULL || buf == NULL || n == 0 || ref_parse(uri, &r) < 0)
		return PARTISAN_EINVAL;
	return pc_copy(r.node, buf, n);
}

/* ---- names ------------------------------------------------------------- */

static int cl_name_req(partisan_t *c, const char *name, PartisanIpc__Request__BodyCase kind)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Name n = PARTISAN_IPC__NAME__INIT;

	if (c == NULL || !pc_name_ok(name) || strchr(name, ':') != NULL)
		return PARTISAN_EINVAL;
	n.name = (char *)name;
	req.body_case = kind;
	req.register_ = &n; /* register_ and unregister share the union slot */
	return cl_simple(c, &req);
}

int partisan_register(partisan_t *c, const char *name)
{
	return cl_name_req(c, name, PARTISAN_IPC__REQUEST__BODY_REGISTER);
}

int partisan_unregister(partisan_t *c, const char *name)
{
	return cl_name_req(c, name, PARTISAN_IPC__REQUEST__BODY_UNREGISTER);
}

/* Ask for a ref (whereis, monitor, partition_inject) and copy it out. */
int pc_ref_request(partisan_t *c, PartisanIpc__Request *req, char *ref, size_t n)
{
	PartisanIpc__ServerMsg *m;
	int r = pc_request(c, req, pc_wait(c, 0), PARTISAN_IPC__RESPONSE__BODY_REF, &m);

	if (r < 0)
		return r;
	r = pc_copy(m->response->ref->ref, ref, n);
	pc_msg_free(m);
	return r;
}

int partisan_whereis(partisan_t *c, const char *node, const char *name, char *ref, size_t n)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Whereis w = PARTISAN_IPC__WHEREIS__INIT;

	if (c == NULL || ref == NULL || n == 0 || !pc_name_ok(name))
		return PARTISAN_EINVAL;
	if (node == NULL)
		node = c->node;
	if (!pc_node_ok(node))
		return PARTISAN_EINVAL;
	w.node = (char *)node;
	w.name = (char *)name;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_WHEREIS;
	req.whereis = &w;
	return pc_ref_request(c, &req, ref, n);
}

/* ---- messages ---------------------------------------------------------- */

static int cl_opts(const partisan_send_opts_t *o, PartisanIpc__SendOpts *so)
{
	if ((o->channel != NULL && o->channel[0] == '\0') ||
	    (o->causal_label != NULL && o->causal_label[0] == '\0') ||
	    (o->partition_key_len > 0 && o->partition_key == NULL))
		return PARTISAN_EINVAL;
	so->channel = (char *)o->channel;
	so->causal_label = (char *)o->causal_label;
	so->has_partition_key = o->partition_key_len > 0;
	so->partition_key.data = (uint8_t *)o->partition_key;
	so->partition_key.len = o->partition_key_len;
	so->has_ack = o->ack;
	so->ack = o->ack;
	so->has_transitive = o->transitive;
	so->transitive = o->transitive;
	return 0;
}

/* anywhere: ref names a name on this node, to be taken wherever it is held
 * in the cluster when it is not held here. */
static int cl_send(partisan_t *c, const char *ref, const void *buf, size_t len,
                   const partisan_send_opts_t *opts, bool anywhere)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Send s = PARTISAN_IPC__SEND__INIT;
	PartisanIpc__SendOpts so = PARTISAN_IPC__SEND_OPTS__INIT;

	if (c == NULL || (buf == NULL && len > 0) ||
	    !pc_ref_ok(ref, 1u << PARTISAN_REF_PID | 1u << PARTISAN_REF_NAME))
		return PARTISAN_EINVAL;
	if (opts != NULL && cl_opts(opts, &so) < 0)
		return PARTISAN_EINVAL;
	so.has_anywhere = so.anywhere = anywhere;
	s.to = (char *)ref;
	s.payload.data = (uint8_t *)buf;
	s.payload.len = len;
	s.opts = opts != NULL || anywhere ? &so : NULL;
	req.has_quiet = req.quiet = 1;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_SEND;
	req.send = &s;
	return pc_conn_send(c, &req, opts != NULL && opts->nonblock, opts != NULL && opts->more);
}

int partisan_send(partisan_t *c, const char *ref, const void *buf, size_t len,
                  const partisan_send_opts_t *opts)
{
	return cl_send(c, ref, buf, len, opts, false);
}

int partisan_send_name(partisan_t *c, const char *node, const char *name, const void *buf,
                       size_t len, const partisan_send_opts_t *opts)
{
	char ref[PARTISAN_REF_MAX];

	if (c == NULL || cl_name_ref(c, node, name, ref, sizeof(ref)) < 0)
		return PARTISAN_EINVAL;
	return cl_send(c, ref, buf, len, opts, node == NULL);
}

int partisan_flush(partisan_t *c)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Empty empty = PARTISAN_IPC__EMPTY__INIT;
	int r;

	if (c == NULL)
		return PARTISAN_EINVAL;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_SPEC; /* cheap, answered in order */
	req.spec = &empty;
	if ((r = cl_simple(c, &req)) < 0)
		return r;
	r = c->quiet_pending;
	c->quiet_pending = 0;
	if (r != 0) /* partisan_last_error() gives the daemon's words for it */
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", c->quiet_msg);
	return r;
}

int partisan_send_errors(partisan_t *c, uint64_t *count, int *last)
{
	if (c == NULL)
		return PARTISAN_EINVAL;
	if (count != NULL)
		*count = c->quiet_errors;
	if (last != NULL)
		*last = c->quiet_last;
	return 0;
}

int partisan_recv(partisan_t *c, partisan_event_t **ev, int timeout_ms)
{
	int r;

	if (c == NULL || ev == NULL)
		return PARTISAN_EINVAL;
	*ev = NULL;
	if ((r = pc_conn_wait_event(c, timeout_ms)) < 0)
		return r;
	*ev = &pc_conn_pop(c)->pub;
	return 0;
}

void partisan_event_free(partisan_event_t *ev)
{
	/* The public part is the first member of struct pc_event. */
	pc_conv_event_free((struct pc_event *)ev);
}

/* ---- request/reply ----------------------------------------------------- */

void partisan_buf_free(partisan_buf_t *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

static int cl_take_payload(const ProtobufCBinaryData *p, partisan_buf_t *out)
{
	if (p->len == 0)
		return 0;
	if ((out->data = malloc(p->len)) == NULL)
		return PARTISAN_ENOMEM;
	memcpy(out->data, p->data, p->len);
	out->len = p->len;
	return 0;
}

static int cl_call(partisan_t *c, const char *to, const void *req, size_t len, int timeout_ms,
                   const partisan_send_opts_t *opts, bool anywhere, partisan_buf_t *reply)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Call call = PARTISAN_IPC__CALL__INIT;
	PartisanIpc__SendOpts so = PARTISAN_IPC__SEND_OPTS__INIT;
	PartisanIpc__ServerMsg *m;
	int r;

	if (reply != NULL)
		reply->data = NULL, reply->len = 0;
	if (c == NULL || reply == NULL || (req == NULL && len > 0) || timeout_ms < 0 ||
	    !pc_ref_ok(to, 1u << PARTISAN_REF_PID | 1u << PARTISAN_REF_NAME) ||
	    (opts != NULL && cl_opts(opts, &so) < 0))
		return PARTISAN_EINVAL;
	so.has_anywhere = so.anywhere = anywhere;
	call.opts = opts != NULL || anywhere ? &so : NULL;
	call.to = (char *)to;
	call.payload.data = (uint8_t *)req;
	call.payload.len = len;
	call.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 5000;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_CALL;
	rq.call = &call;
	r = pc_request(c, &rq, c->timeout_ms < 0 ? -1 : (int)call.timeout_ms + PC_CALL_GRACE,
	               PARTISAN_IPC__RESPONSE__BODY_CALL, &m);
	if (r < 0)
		return r;
	r = cl_take_payload(&m->response->call->payload, reply);
	pc_msg_free(m);
	return r;
}

int partisan_call(partisan_t *c, const char *to, const void *req, size_t len, int timeout_ms,
                  partisan_buf_t *reply)
{
	return cl_call(c, to, req, len, timeout_ms, NULL, false, reply);
}

int partisan_call_opts(partisan_t *c, const char *to, const void *req, size_t len, int timeout_ms,
                       const partisan_send_opts_t *opts, partisan_buf_t *reply)
{
	return cl_call(c, to, req, len, timeout_ms, opts, false, reply);
}

int partisan_call_name(partisan_t *c, const char *node, const char *name, const void *req,
                       size_t len, int timeout_ms, partisan_buf_t *reply)
{
	return partisan_call_name_opts(c, node, name, req, len, timeout_ms, NULL, reply);
}

int partisan_call_name_opts(partisan_t *c, const char *node, const char *name, const void *req,
                            size_t len, int timeout_ms, const partisan_send_opts_t *opts,
                            partisan_buf_t *reply)
{
	char ref[PARTISAN_REF_MAX];

	if (reply != NULL)
		reply->data = NULL, reply->len = 0;
	if (c == NULL || cl_name_ref(c, node, name, ref, sizeof(ref)) < 0)
		return PARTISAN_EINVAL;
	return cl_call(c, ref, req, len, timeout_ms, opts, node == NULL, reply);
}

int partisan_reply(partisan_t *c, const partisan_event_t *msg, const void *buf, size_t len)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Reply rp = PARTISAN_IPC__REPLY__INIT;

	if (c == NULL || msg == NULL || msg->type != PARTISAN_EV_MESSAGE ||
	    msg->message.call_ref == NULL || msg->message.from == NULL || (buf == NULL && len > 0))
		return PARTISAN_EINVAL;
	rp.to = (char *)msg->message.from;
	rp.call_ref = (char *)msg->message.call_ref;
	rp.payload.data = (uint8_t *)buf;
	rp.payload.len = len;
	req.has_quiet = req.quiet = 1;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_REPLY;
	req.reply = &rp;
	return pc_conn_send(c, &req, false, false);
}

/* ---- monitoring -------------------------------------------------------- */

int partisan_monitor(partisan_t *c, const char *ref, char *mref, size_t n)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Monitor mon = PARTISAN_IPC__MONITOR__INIT;

	if (c == NULL || mref == NULL || n == 0 ||
	    !pc_ref_ok(ref, 1u << PARTISAN_REF_PID | 1u << PARTISAN_REF_NAME))
		return PARTISAN_EINVAL;
	mon.target = (char *)ref;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_MONITOR;
	req.monitor = &mon;
	return pc_ref_request(c, &req, mref, n);
}

int partisan_demonitor(partisan_t *c, const char *mref, int flags)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Demonitor d = PARTISAN_IPC__DEMONITOR__INIT;
	int r;

	if (c == NULL || (flags & ~PARTISAN_DEMONITOR_FLUSH) != 0 ||
	    !pc_ref_ok(mref, 1u << PARTISAN_REF_REF))
		return PARTISAN_EINVAL;
	d.mref = (char *)mref;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_DEMONITOR;
	req.demonitor = &d;
	r = cl_simple(c, &req);
	/* Any DOWN sent before the answer has been read by now. */
	if (flags & PARTISAN_DEMONITOR_FLUSH)
		pc_conn_flush_down(c, mref);
	return r;
}

int partisan_monitor_node(partisan_t *c, const char *node, bool flag)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__MonitorNode mn = PARTISAN_IPC__MONITOR_NODE__INIT;

	if (c == NULL || !pc_node_ok(node))
		return PARTISAN_EINVAL;
	mn.node = (char *)node;
	mn.flag = flag;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_MONITOR_NODE;
	req.monitor_node = &mn;
	return cl_simple(c, &req);
}

int partisan_monitor_nodes(partisan_t *c, bool flag, int opts)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__MonitorNodes mn = PARTISAN_IPC__MONITOR_NODES__INIT;

	if (c == NULL || (opts & ~PARTISAN_NODEDOWN_REASON) != 0)
		return PARTISAN_EINVAL;
	mn.flag = flag;
	mn.has_with_reason = 1;
	mn.with_reason = (opts & PARTISAN_NODEDOWN_REASON) != 0;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_MONITOR_NODES;
	req.monitor_nodes = &mn;
	return cl_simple(c, &req);
}
