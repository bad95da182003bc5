/* test_client.c: unit tests of libpartisan-client against fake daemons: a
 * forked child on a temporary Unix socket that speaks (or mangles)
 * ipc.proto, plus argument checking, error names and reference URIs. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.pb-c.h"
#include "partisan/client.h"
#include "wire.h"

#define NODE "a@127.0.0.1"
#define SELF "partisan:pid:a@127.0.0.1:7"
#define MREF "partisan:ref:a@127.0.0.1:99"

/* ---- the fake daemon --------------------------------------------------- */

struct fake {
	char dir[64];
	char path[96];
	pid_t pid;
};

typedef void (*fake_fn)(int fd);

static int fake_read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void fake_write_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(3);
		off += (size_t)n;
	}
}

/* The next request from the client, or NULL at EOF. */
static PartisanIpc__Request *fake_read(int fd)
{
	uint8_t hdr[FRAME_HEADER], *body;
	PartisanIpc__Request *req;
	uint32_t len;

	if (fake_read_all(fd, hdr, sizeof(hdr)) < 0 || frame_peek(hdr, 4, 1u << 26, &len) != 1)
		return NULL;
	if ((body = malloc(len + 1)) == NULL || fake_read_all(fd, body, len) < 0)
		_exit(4);
	req = partisan_ipc__request__unpack(NULL, len, body);
	free(body);
	return req;
}

/* Read one request and forget it. */
static void fake_skip(int fd)
{
	PartisanIpc__Request *req = fake_read(fd);

	if (req != NULL)
		partisan_ipc__request__free_unpacked(req, NULL);
}

static void fake_send(int fd, const PartisanIpc__ServerMsg *m)
{
	size_t len = partisan_ipc__server_msg__get_packed_size(m);
	uint8_t *buf = malloc(len + FRAME_HEADER);

	frame_put_header(buf, (uint32_t)len);
	partisan_ipc__server_msg__pack(m, buf + FRAME_HEADER);
	fake_write_all(fd, buf, len + FRAME_HEADER);
	free(buf);
}

static void fake_respond(int fd, PartisanIpc__Response *r)
{
	PartisanIpc__ServerMsg m = PARTISAN_IPC__SERVER_MSG__INIT;

	m.body_case = PARTISAN_IPC__SERVER_MSG__BODY_RESPONSE;
	m.response = r;
	fake_send(fd, &m);
}

static void fake_error(int fd, uint64_t id, PartisanIpc__Error e, const char *msg)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;

	r.id = id;
	r.has_error = 1;
	r.error = e;
	r.error_msg = (char *)msg;
	fake_respond(fd, &r);
}

static void fake_ok(int fd, uint64_t id)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;

	r.id = id;
	fake_respond(fd, &r);
}

static void fake_event(int fd, PartisanIpc__Event *ev)
{
	PartisanIpc__ServerMsg m = PARTISAN_IPC__SERVER_MSG__INIT;

	m.body_case = PARTISAN_IPC__SERVER_MSG__BODY_EVENT;
	m.event = ev;
	fake_send(fd, &m);
}

static void fake_message_event(int fd, const char *payload)
{
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__Message msg = PARTISAN_IPC__MESSAGE__INIT;

	msg.from = "partisan:pid:b@127.0.0.1:3";
	msg.to = SELF;
	msg.payload.data = (uint8_t *)payload;
	msg.payload.len = strlen(payload);
	ev.body_case = PARTISAN_IPC__EVENT__BODY_MESSAGE;
	ev.message = &msg;
	fake_event(fd, &ev);
}

static void fake_hello_version(int fd, uint32_t version)
{
	PartisanIpc__Request *req = fake_read(fd);
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__HelloReply h = PARTISAN_IPC__HELLO_REPLY__INIT;
	PartisanCommon__NodeSpec spec = PARTISAN_COMMON__NODE_SPEC__INIT;

	if (req == NULL || req->body_case != PARTISAN_IPC__REQUEST__BODY_HELLO)
		_exit(5);
	spec.name = NODE;
	h.version = version;
	h.node = NODE;
	h.self = SELF;
	h.spec = &spec;
	r.id = req->id;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_HELLO;
	r.hello = &h;
	fake_respond(fd, &r);
	partisan_ipc__request__free_unpacked(req, NULL);
}

static void fake_hello(int fd)
{
	fake_hello_version(fd, IPC_PROTOCOL_VERSION);
}

/* Wait until the client goes away. */
static void fake_drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void fake_start(struct fake *f, fake_fn fn)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd, fd;

	strcpy(f->dir, "/tmp/partisan-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0) {
		alarm(20);
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(2);
		fn(fd);
		close(fd);
		_exit(0);
	}
	close(lfd);
}

static void fake_stop(struct fake *f)
{
	int status;

	waitpid(f->pid, &status, 0);
	unlink(f->path);
	rmdir(f->dir);
}

static partisan_t *fake_connect(struct fake *f, fake_fn fn)
{
	partisan_t *c = NULL;

	fake_start(f, fn);
	ck_assert_int_eq(partisan_connect(f->path, &c), 0);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* ---- a fake daemon that answers ---------------------------------------- */

static void serve_nodes(int fd, uint64_t id)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__NodeList l = PARTISAN_IPC__NODE_LIST__INIT;
	char *nodes[] = {"b@127.0.0.1", "c@127.0.0.1"};

	fake_message_event(fd, "during the call"); /* before the answer */
	l.n_nodes = 2;
	l.nodes = nodes;
	r.id = id;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_NODES;
	r.nodes = &l;
	fake_respond(fd, &r);
}

static void serve_call(int fd, const PartisanIpc__Request *req)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__CallReply cr = PARTISAN_IPC__CALL_REPLY__INIT;

	if (strstr(req->call->to, "nobody") != NULL) {
		fake_error(fd, req->id, PARTISAN_IPC__ERROR__ENOPROC, NULL);
		return;
	}
	cr.payload = req->call->payload;
	r.id = req->id;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_CALL;
	r.call = &cr;
	fake_respond(fd, &r);
}

static void serve_monitor(int fd, uint64_t id)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__RefReply ref = PARTISAN_IPC__REF_REPLY__INIT;
	PartisanIpc__Event ev = PARTISAN_IPC__EVENT__INIT;
	PartisanIpc__DownEvent down = PARTISAN_IPC__DOWN_EVENT__INIT;

	ref.ref = MREF;
	r.id = id;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_REF;
	r.ref = &ref;
	fake_respond(fd, &r);
	down.mref = MREF;
	down.target = "partisan:name:b@127.0.0.1:gone";
	down.reason = "noproc";
	ev.body_case = PARTISAN_IPC__EVENT__BODY_DOWN;
	ev.down = &down;
	fake_event(fd, &ev);
}

static void serve_registry(int fd, uint64_t id)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__RegistryReply reg = PARTISAN_IPC__REGISTRY_REPLY__INIT;
	PartisanIpc__RegistryEntry e = PARTISAN_IPC__REGISTRY_ENTRY__INIT, *ep = &e;
	char *refs[] = {"partisan:pid:a@127.0.0.1:1", "partisan:pid:b@127.0.0.1:2",
	                "partisan:pid:a@127.0.0.1:3"};

	e.name = "svc";
	e.n_refs = 3;
	e.refs = refs;
	reg.n_entries = 1;
	reg.entries = &ep;
	r.id = id;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_REGISTRY;
	r.registry = &reg;
	fake_respond(fd, &r);
}

static void serve_status(int fd, uint64_t id)
{
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__StatusReply s = PARTISAN_IPC__STATUS_REPLY__INIT;
	PartisanCommon__NodeSpec spec = PARTISAN_COMMON__NODE_SPEC__INIT;
	PartisanCommon__Addr addr = PARTISAN_COMMON__ADDR__INIT, *ap = &addr;
	PartisanIpc__Endpoint ep = PARTISAN_IPC__ENDPOINT__INIT, *epp = &ep;
	char *names[] = {"svc"};

	addr.ip = "127.0.0.1";
	addr.port = 10200;
	spec.name = NODE;
	spec.n_listen_addrs = 1;
	spec.listen_addrs = &ap;
	ep.ref = SELF;
	ep.n_names = 1;
	ep.names = names;
	s.name = NODE;
	s.spec = &spec;
	s.manager = "full_mesh";
	s.uptime_s = 42;
	s.members = 3;
	s.nodes = 2;
	s.n_endpoints = 1;
	s.endpoints = &epp;
	r.id = id;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_STATUS;
	r.status = &s;
	fake_respond(fd, &r);
}

static void serve_one(int fd, const PartisanIpc__Request *req)
{
	switch (req->body_case) {
	case PARTISAN_IPC__REQUEST__BODY_NODES:
		serve_nodes(fd, req->id);
		break;
	case PARTISAN_IPC__REQUEST__BODY_SEND:
		if (strstr(req->send->to, "missing") != NULL)
			fake_error(fd, req->id, PARTISAN_IPC__ERROR__ENOPROC, "no such name");
		break;
	case PARTISAN_IPC__REQUEST__BODY_CALL:
		serve_call(fd, req);
		break;
	case PARTISAN_IPC__REQUEST__BODY_MONITOR:
		serve_monitor(fd, req->id);
		break;
	case PARTISAN_IPC__REQUEST__BODY_REGISTRY:
		serve_registry(fd, req->id);
		break;
	case PARTISAN_IPC__REQUEST__BODY_STATUS:
		serve_status(fd, req->id);
		break;
	case PARTISAN_IPC__REQUEST__BODY_REGISTER:
		if (strcmp(req->register_->name, "taken") == 0)
			fake_error(fd, req->id, PARTISAN_IPC__ERROR__EEXIST, "held by another");
		else
			fake_ok(fd, req->id);
		break;
	default:
		fake_ok(fd, req->id);
	}
}

static void fake_daemon(int fd)
{
	PartisanIpc__Request *req;

	fake_hello(fd);
	while ((req = fake_read(fd)) != NULL) {
		serve_one(fd, req);
		partisan_ipc__request__free_unpacked(req, NULL);
	}
}

/* ---- misbehaving fake daemons ------------------------------------------ */

static void fake_other_version(int fd)
{
	fake_hello_version(fd, IPC_PROTOCOL_VERSION + 1);
	fake_drain(fd);
}

static void fake_refuses_version(int fd)
{
	PartisanIpc__Request *req = fake_read(fd);

	if (req == NULL)
		_exit(5);
	fake_error(fd, req->id, PARTISAN_IPC__ERROR__EVERSION, "speak version 1");
	partisan_ipc__request__free_unpacked(req, NULL);
}

static void fake_garbage(int fd)
{
	static const uint8_t garbage[] = {0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	fake_skip(fd);
	fake_write_all(fd, garbage, sizeof(garbage));
	fake_drain(fd);
}

static void fake_huge_frame(int fd)
{
	static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xf0};

	fake_skip(fd);
	fake_write_all(fd, hdr, sizeof(hdr));
	fake_drain(fd); /* never sends the body */
}

static void fake_big_event(int fd)
{
	char payload[4096];

	fake_hello(fd);
	memset(payload, 'x', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	fake_message_event(fd, payload);
	fake_drain(fd);
}

static void fake_silent(int fd)
{
	fake_drain(fd);
}

static void fake_hangs_up(int fd)
{
	fake_hello(fd);
}

static void fake_never_reads(int fd)
{
	fake_hello(fd);
	sleep(3); /* the behaviour under test: a daemon that never reads (not a wait to poll for) */
}

/* ---- tests: without a daemon ------------------------------------------- */

START_TEST(test_strerror_names_every_code)
{
	for (int code = 0; code >= PARTISAN_ESTOPPED; code--) {
		const char *s = partisan_strerror(code);

		ck_assert_ptr_nonnull(s);
		ck_assert_str_ne(s, "unknown error");
		for (int other = 0; other > code; other--)
			ck_assert_str_ne(s, partisan_strerror(other));
	}
	ck_assert_str_eq(partisan_strerror(PARTISAN_ESTOPPED - 1), "unknown error");
	ck_assert_str_eq(partisan_strerror(1), "unknown error");
	ck_assert_str_eq(partisan_strerror(INT_MIN), "unknown error");
	ck_assert_str_eq(partisan_strerror(INT_MAX), "unknown error");
}
END_TEST

START_TEST(test_error_codes_are_the_negated_ipc_errors)
{
	ck_assert_int_eq(PARTISAN_EINVAL, -PARTISAN_IPC__ERROR__EINVAL);
	ck_assert_int_eq(PARTISAN_EVERSION, -PARTISAN_IPC__ERROR__EVERSION);
	ck_assert_int_eq(PARTISAN_ENOCONNECTION, -PARTISAN_IPC__ERROR__ENOCONNECTION);
	ck_assert_int_eq(PARTISAN_ETOOBIG, -PARTISAN_IPC__ERROR__ETOOBIG);
	ck_assert_int_eq(PARTISAN_ESTOPPED, -PARTISAN_IPC__ERROR__ESTOPPED);
}
END_TEST

START_TEST(test_ref_round_trips)
{
	static const char *const refs[] = {
	    "partisan:pid:a@127.0.0.1:1",
	    "partisan:name:b@host:my_server",
	    "partisan:ref:c@10.0.0.1:123456789",
	    "partisan:pid:d@::1:5",
	};
	char buf[PARTISAN_REF_MAX], node[PARTISAN_NODE_MAX];
	partisan_ref_t r;

	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		ck_assert_int_eq(partisan_ref_parse(refs[i], &r), 0);
		ck_assert_int_eq(partisan_ref_format(&r, buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, refs[i]);
	}
	ck_assert_int_eq(partisan_ref_parse("partisan:name:b@host:my_server", &r), 0);
	ck_assert_int_eq(r.kind, PARTISAN_REF_NAME);
	ck_assert_str_eq(r.node, "b@host");
	ck_assert_str_eq(r.id, "my_server");
	ck_assert_int_eq(partisan_ref_node("partisan:pid:d@::1:5", node, sizeof(node)), 0);
	ck_assert_str_eq(node, "d@::1");
}
END_TEST

START_TEST(test_ref_rejects_malformed)
{
	static const char *const bad[] = {
	    "",
	    "partisan:",
	    "partisan:pid:",
	    "pid:a@h:1",
	    "partisan:proc:a@h:1",
	    "partisan:pid:a@h:",
	    "partisan:pid:a@h:x1",
	    "partisan:ref:a@h:-1",
	    "partisan:pid:noat:1",
	    "partisan:pid:@h:1",
	    "partisan:pid:a@:1",
	    "partisan:name:a@h",
	    "PARTISAN:pid:a@h:1",
	};
	partisan_ref_t r;
	char buf[8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(partisan_ref_parse(bad[i], &r) == PARTISAN_EINVAL, "accepted %s",
		              bad[i]);
	ck_assert_int_eq(partisan_ref_parse(NULL, &r), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_ref_parse("partisan:pid:a@h:1", NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_ref_parse("partisan:pid:a@h:1", &r), 0);
	ck_assert_int_eq(partisan_ref_format(&r, buf, sizeof(buf)), PARTISAN_ETOOBIG);
	r.kind = (partisan_ref_kind_t)7;
	ck_assert_int_eq(partisan_ref_format(&r, buf, sizeof(buf)), PARTISAN_EINVAL);
	r.kind = PARTISAN_REF_PID;
	strcpy(r.node, "noat");
	ck_assert_int_eq(partisan_ref_format(&r, buf, sizeof(buf)), PARTISAN_EINVAL);
	strcpy(r.node, "a@h");
	strcpy(r.id, "notdigits");
	ck_assert_int_eq(partisan_ref_format(&r, buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_ref_node("bogus", buf, sizeof(buf)), PARTISAN_EINVAL);
}
END_TEST

START_TEST(test_null_handle_is_einval_everywhere)
{
	char buf[PARTISAN_REF_MAX];
	partisan_node_spec_t *spec;
	partisan_event_t *ev;
	partisan_buf_t reply;
	partisan_strlist_t sl;
	partisan_spec_list_t ml;
	partisan_conn_list_t cl;
	partisan_registry_t reg;
	partisan_status_t *st;
	partisan_partition_list_t pl;
	partisan_event_t fake_ev = {.type = PARTISAN_EV_MESSAGE};
	const char *ref = "partisan:pid:a@h:1";

	ck_assert_int_eq(partisan_connect(NULL, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_connect_with(NULL, NULL, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_close(NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_fd(NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_dispatch(NULL), PARTISAN_EINVAL);
	ck_assert_ptr_null(partisan_last_error(NULL));
	ck_assert_int_eq(partisan_node(NULL, buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_node_spec(NULL, &spec), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_self(NULL, buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_register(NULL, "x"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_unregister(NULL, "x"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_whereis(NULL, NULL, "x", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(NULL, ref, "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send_name(NULL, NULL, "x", "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_flush(NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send_errors(NULL, NULL, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_recv(NULL, &ev, 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_call(NULL, ref, "x", 1, 0, &reply), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_call_name(NULL, NULL, "x", "x", 1, 0, &reply), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_reply(NULL, &fake_ev, "x", 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor(NULL, ref, buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_demonitor(NULL, "partisan:ref:a@h:1", 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor_node(NULL, "a@h", true), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor_nodes(NULL, true, 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_nodes(NULL, PARTISAN_NODES_VISIBLE, &sl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_members(NULL, &ml), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_is_connected(NULL, "a@h"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_is_fully_connected(NULL, "a@h"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_connections(NULL, NULL, &cl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_join(NULL, "a@h:1", 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_leave(NULL, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_broadcast(NULL, "t", "x", 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_subscribe(NULL, "t"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_unsubscribe(NULL, "t"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry(NULL, NULL, &reg), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry_pids_of(NULL, "x", &sl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry_nodes_of(NULL, "x", &sl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry_pid_of(NULL, "x", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_status(NULL, &st), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_partition_inject(NULL, "a@h", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_partition_resolve(NULL, "partisan:ref:a@h:1"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_partition_list(NULL, &pl), PARTISAN_EINVAL);
	/* The free functions take NULL like free(). */
	partisan_node_spec_free(NULL);
	partisan_event_free(NULL);
	partisan_buf_free(NULL);
	partisan_strlist_free(NULL);
	partisan_spec_list_free(NULL);
	partisan_conn_list_free(NULL);
	partisan_registry_free(NULL);
	partisan_status_free(NULL);
	partisan_partition_list_free(NULL);
}
END_TEST

START_TEST(test_connect_missing_socket_is_eio)
{
	partisan_t *c = (partisan_t *)1;
	char longpath[200];

	ck_assert_int_eq(partisan_connect("/nonexistent/partisand.sock", &c), PARTISAN_EIO);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(partisan_connect("/tmp", &c), PARTISAN_EIO); /* not a socket */
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(partisan_connect(longpath, &c), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_connect("", &c), PARTISAN_EINVAL);
	setenv("PARTISAN_SOCKET", "/nonexistent/env.sock", 1);
	ck_assert_int_eq(partisan_connect(NULL, &c), PARTISAN_EIO);
	unsetenv("PARTISAN_SOCKET");
}
END_TEST

/* ---- tests: hello and framing ------------------------------------------- */

static int connect_expect_fail(fake_fn fn, const partisan_connect_opts_t *opts)
{
	struct fake f;
	partisan_t *c = (partisan_t *)1;
	int r;

	fake_start(&f, fn);
	r = partisan_connect_with(f.path, opts, &c);
	ck_assert_ptr_null(c);
	fake_stop(&f);
	return r;
}

START_TEST(test_hello_other_version_is_eversion)
{
	ck_assert_int_eq(connect_expect_fail(fake_other_version, NULL), PARTISAN_EVERSION);
}
END_TEST

START_TEST(test_hello_refused_is_eversion)
{
	ck_assert_int_eq(connect_expect_fail(fake_refuses_version, NULL), PARTISAN_EVERSION);
}
END_TEST

START_TEST(test_garbage_frame_is_eproto)
{
	ck_assert_int_eq(connect_expect_fail(fake_garbage, NULL), PARTISAN_EPROTO);
}
END_TEST

START_TEST(test_oversized_frame_refused_before_body)
{
	partisan_connect_opts_t opts = {.timeout_ms = 5000};

	/* The body never comes: waiting for it would time out instead. */
	ck_assert_int_eq(connect_expect_fail(fake_huge_frame, &opts), PARTISAN_EPROTO);
}
END_TEST

START_TEST(test_frame_over_configured_max_is_eproto)
{
	partisan_connect_opts_t opts = {.max_frame_bytes = 1024};
	partisan_event_t *ev = NULL;
	partisan_t *c;
	struct fake f;

	fake_start(&f, fake_big_event);
	ck_assert_int_eq(partisan_connect_with(f.path, &opts, &c), 0);
	ck_assert_int_eq(partisan_recv(c, &ev, 2000), PARTISAN_EPROTO);
	ck_assert_ptr_null(ev);
	ck_assert_int_eq(partisan_recv(c, &ev, 0), PARTISAN_EPROTO); /* and stays so */
	ck_assert_int_eq(partisan_register(c, "x"), PARTISAN_EPROTO);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_silent_daemon_times_out)
{
	partisan_connect_opts_t opts = {.timeout_ms = 200};

	ck_assert_int_eq(connect_expect_fail(fake_silent, &opts), PARTISAN_ETIMEDOUT);
}
END_TEST

START_TEST(test_daemon_going_away_is_eio)
{
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_hangs_up);
	partisan_event_t *ev;

	ck_assert_int_eq(partisan_recv(c, &ev, 5000), PARTISAN_EIO);
	ck_assert_int_eq(partisan_register(c, "x"), PARTISAN_EIO);
	ck_assert_int_eq(partisan_send_name(c, NULL, "x", "m", 1, NULL), PARTISAN_EIO);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_send_too_big_is_etoobig)
{
	partisan_connect_opts_t opts = {.max_frame_bytes = 4096};
	static char big[8192];
	partisan_t *c;
	struct fake f;

	fake_start(&f, fake_daemon);
	ck_assert_int_eq(partisan_connect_with(f.path, &opts, &c), 0);
	ck_assert_int_eq(partisan_send_name(c, NULL, "x", big, sizeof(big), NULL),
	                 PARTISAN_ETOOBIG);
	ck_assert_int_eq(partisan_send_name(c, NULL, "x", big, 100, NULL), 0);
	ck_assert_int_eq(partisan_flush(c), 0);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_nonblock_send_is_eagain_when_full)
{
	partisan_send_opts_t opts = {.nonblock = true};
	static char chunk[65536];
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_never_reads);
	int r = 0, i;

	for (i = 0; i < 4096 && r == 0; i++)
		r = partisan_send_name(c, NULL, "x", chunk, sizeof(chunk), &opts);
	ck_assert_int_eq(r, PARTISAN_EAGAIN);
	ck_assert_int_gt(i, 1);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

/* ---- tests: a talking fake daemon --------------------------------------- */

START_TEST(test_hello_gives_node_and_self)
{
	char buf[PARTISAN_REF_MAX], tiny[4];
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_ge(partisan_fd(c), 0);
	ck_assert_int_eq(partisan_node(c, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, NODE);
	ck_assert_int_eq(partisan_self(c, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, SELF);
	ck_assert_int_eq(partisan_node(c, tiny, sizeof(tiny)), PARTISAN_ETOOBIG);
	ck_assert_int_eq(partisan_close(c), 0);
	fake_stop(&f);
}
END_TEST

START_TEST(test_bad_arguments_with_a_session_are_einval)
{
	char buf[PARTISAN_REF_MAX];
	partisan_send_opts_t empty_channel = {.channel = ""};
	partisan_send_opts_t keyless = {.partition_key_len = 3};
	partisan_event_t down = {.type = PARTISAN_EV_DOWN};
	partisan_event_t cast = {.type = PARTISAN_EV_MESSAGE};
	partisan_strlist_t sl;
	partisan_buf_t reply;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	cast.message.from = "partisan:pid:b@h:1"; /* no call_ref: not a call */
	ck_assert_int_eq(partisan_node(c, NULL, 10), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_node(c, buf, 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_node_spec(c, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_self(c, NULL, 10), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_register(c, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_register(c, ""), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_unregister(c, ""), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_whereis(c, "noat", "x", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_whereis(c, NULL, "", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_whereis(c, NULL, "x", NULL, 10), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(c, NULL, "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(c, "not a ref", "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(c, MREF, "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(c, SELF, NULL, 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(c, SELF, "x", 1, &empty_channel), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send(c, SELF, "x", 1, &keyless), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send_name(c, NULL, NULL, "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send_name(c, "noat", "x", "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_send_name(c, NULL, "", "x", 1, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_recv(c, NULL, 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_call(c, SELF, "x", 1, 0, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_call(c, "bogus", "x", 1, 0, &reply), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_call(c, SELF, "x", 1, -1, &reply), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_call_name(c, NULL, NULL, "x", 1, 0, &reply), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_reply(c, NULL, "x", 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_reply(c, &down, "x", 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_reply(c, &cast, "x", 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor(c, "bogus", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor(c, SELF, NULL, 10), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_demonitor(c, SELF, 0), PARTISAN_EINVAL); /* not a ref ref */
	ck_assert_int_eq(partisan_demonitor(c, MREF, 0x80), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor_node(c, NULL, true), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor_node(c, "", true), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_monitor_nodes(c, true, 0x80), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_nodes(c, (partisan_node_type_t)5, &sl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_nodes(c, PARTISAN_NODES_ALL, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_members(c, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_is_connected(c, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_is_fully_connected(c, "noat"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_connections(c, "noat", NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_join(c, NULL, 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_join(c, "noport", 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_join(c, "a@h:1", -5), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_leave(c, "noat"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_broadcast(c, "", "x", 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_broadcast(c, "t", NULL, 1), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_subscribe(c, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry(c, NULL, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry_pids_of(c, "", &sl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry_nodes_of(c, NULL, &sl), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_registry_pid_of(c, "x", NULL, 0), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_status(c, NULL), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_partition_inject(c, "noat", buf, sizeof(buf)), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_partition_resolve(c, "bogus"), PARTISAN_EINVAL);
	ck_assert_int_eq(partisan_partition_list(c, NULL), PARTISAN_EINVAL);
	/* None of that reached the daemon, and the session still works. */
	ck_assert_int_eq(partisan_flush(c), 0);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_events_during_a_call_are_queued)
{
	partisan_strlist_t nodes;
	partisan_event_t *ev;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_nodes(c, PARTISAN_NODES_VISIBLE, &nodes), 0);
	ck_assert_uint_eq(nodes.n, 2);
	ck_assert_str_eq(nodes.v[0], "b@127.0.0.1");
	partisan_strlist_free(&nodes);
	ck_assert_ptr_null(nodes.v);
	ck_assert_int_eq(partisan_dispatch(c), 1);
	ck_assert_int_eq(partisan_recv(c, &ev, 0), 0);
	ck_assert_int_eq(ev->type, PARTISAN_EV_MESSAGE);
	ck_assert_str_eq(ev->message.from, "partisan:pid:b@127.0.0.1:3");
	ck_assert_uint_eq(ev->message.len, strlen("during the call"));
	ck_assert_mem_eq(ev->message.payload, "during the call", ev->message.len);
	ck_assert_ptr_null(ev->message.call_ref);
	partisan_event_free(ev);
	ck_assert_int_eq(partisan_recv(c, &ev, 0), PARTISAN_ETIMEDOUT);
	ck_assert_ptr_null(ev);
	ck_assert_int_eq(partisan_is_connected(c, "c@127.0.0.1"), 1);
	ck_assert_int_eq(partisan_is_connected(c, "z@127.0.0.1"), 0);
	partisan_close(c); /* with two events still queued: freed */
	fake_stop(&f);
}
END_TEST

START_TEST(test_quiet_send_failure_is_counted_and_flushed)
{
	uint64_t count;
	int last;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_send_name(c, NULL, "missing", "m", 1, NULL), 0);
	ck_assert_int_eq(partisan_send_name(c, NULL, "there", "m", 1, NULL), 0);
	ck_assert_int_eq(partisan_flush(c), PARTISAN_ENOPROC);
	ck_assert_int_eq(partisan_flush(c), 0); /* reported once */
	ck_assert_int_eq(partisan_send_errors(c, &count, &last), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_int_eq(last, PARTISAN_ENOPROC);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_call_returns_the_reply)
{
	partisan_buf_t reply;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_call_name(c, "b@127.0.0.1", "echo", "ping", 4, 1000, &reply), 0);
	ck_assert_uint_eq(reply.len, 4);
	ck_assert_mem_eq(reply.data, "ping", 4);
	partisan_buf_free(&reply);
	ck_assert_ptr_null(reply.data);
	ck_assert_int_eq(partisan_call_name(c, NULL, "nobody", "x", 1, 0, &reply),
	                 PARTISAN_ENOPROC);
	ck_assert_ptr_null(reply.data);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_error_response_carries_detail)
{
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_register(c, "taken"), PARTISAN_EEXIST);
	ck_assert_str_eq(partisan_last_error(c), "held by another");
	ck_assert_int_eq(partisan_register(c, "free"), 0);
	ck_assert_str_eq(partisan_last_error(c), "");
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_demonitor_flush_drops_queued_down)
{
	char mref[PARTISAN_REF_MAX];
	partisan_event_t *ev;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_monitor(c, "partisan:name:b@127.0.0.1:gone", mref, sizeof(mref)),
	                 0);
	ck_assert_str_eq(mref, MREF);
	ck_assert_int_eq(partisan_recv(c, &ev, 2000), 0);
	ck_assert_int_eq(ev->type, PARTISAN_EV_DOWN);
	ck_assert_str_eq(ev->down.reason, "noproc");
	partisan_event_free(ev);
	/* Again, this time demonitor with flush before receiving. */
	ck_assert_int_eq(partisan_monitor(c, "partisan:name:b@127.0.0.1:gone", mref, sizeof(mref)),
	                 0);
	ck_assert_int_eq(partisan_demonitor(c, mref, PARTISAN_DEMONITOR_FLUSH), 0);
	ck_assert_int_eq(partisan_recv(c, &ev, 100), PARTISAN_ETIMEDOUT);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_registry_lookups)
{
	char ref[PARTISAN_REF_MAX];
	partisan_strlist_t l;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_registry_pids_of(c, "svc", &l), 0);
	ck_assert_uint_eq(l.n, 3);
	partisan_strlist_free(&l);
	ck_assert_int_eq(partisan_registry_nodes_of(c, "svc", &l), 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[0], "a@127.0.0.1");
	ck_assert_str_eq(l.v[1], "b@127.0.0.1");
	partisan_strlist_free(&l);
	ck_assert_int_eq(partisan_registry_pid_of(c, "svc", ref, sizeof(ref)), 0);
	ck_assert_int_eq(strncmp(ref, "partisan:pid:", 13), 0);
	ck_assert_int_eq(partisan_registry_pids_of(c, "other", &l), PARTISAN_ENOENT);
	ck_assert_uint_eq(l.n, 0);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

START_TEST(test_status_is_copied_out)
{
	partisan_status_t *s;
	struct fake f;
	partisan_t *c = fake_connect(&f, fake_daemon);

	ck_assert_int_eq(partisan_status(c, &s), 0);
	ck_assert_str_eq(s->name, NODE);
	ck_assert_str_eq(s->manager, "full_mesh");
	ck_assert_str_eq(s->cluster, "");
	ck_assert_uint_eq(s->uptime_s, 42);
	ck_assert_uint_eq(s->members, 3);
	ck_assert_uint_eq(s->spec.n_addrs, 1);
	ck_assert_str_eq(s->spec.addrs[0].ip, "127.0.0.1");
	ck_assert_uint_eq(s->spec.addrs[0].port, 10200);
	ck_assert_uint_eq(s->n_endpoints, 1);
	ck_assert_str_eq(s->endpoints[0].names.v[0], "svc");
	partisan_status_free(s);
	partisan_close(c);
	fake_stop(&f);
}
END_TEST

/* ---- runner ------------------------------------------------------------- */

static Suite *client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *offline = tcase_create("offline"), *wire = tcase_create("wire"),
	      *session = tcase_create("session");

	tcase_add_test(offline, test_strerror_names_every_code);
	tcase_add_test(offline, test_error_codes_are_the_negated_ipc_errors);
	tcase_add_test(offline, test_ref_round_trips);
	tcase_add_test(offline, test_ref_rejects_malformed);
	tcase_add_test(offline, test_null_handle_is_einval_everywhere);
	tcase_add_test(offline, test_connect_missing_socket_is_eio);
	tcase_add_test(wire, test_hello_other_version_is_eversion);
	tcase_add_test(wire, test_hello_refused_is_eversion);
	tcase_add_test(wire, test_garbage_frame_is_eproto);
	tcase_add_test(wire, test_oversized_frame_refused_before_body);
	tcase_add_test(wire, test_frame_over_configured_max_is_eproto);
	tcase_add_test(wire, test_silent_daemon_times_out);
	tcase_add_test(wire, test_daemon_going_away_is_eio);
	tcase_add_test(wire, test_send_too_big_is_etoobig);
	tcase_add_test(wire, test_nonblock_send_is_eagain_when_full);
	tcase_add_test(session, test_hello_gives_node_and_self);
	tcase_add_test(session, test_bad_arguments_with_a_session_are_einval);
	tcase_add_test(session, test_events_during_a_call_are_queued);
	tcase_add_test(session, test_quiet_send_failure_is_counted_and_flushed);
	tcase_add_test(session, test_call_returns_the_reply);
	tcase_add_test(session, test_error_response_carries_detail);
	tcase_add_test(session, test_demonitor_flush_drops_queued_down);
	tcase_add_test(session, test_registry_lookups);
	tcase_add_test(session, test_status_is_copied_out);
	tcase_set_timeout(wire, 20);
	tcase_set_timeout(session, 20);
	suite_add_tcase(s, offline);
	suite_add_tcase(s, wire);
	suite_add_tcase(s, session);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(client_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
