/* test_router.c: unit tests for the router (daemon/router.c): endpoints,
 * names, local delivery and its order, drops, calls and monitors, driven in
 * one process. The test opens a real daemon (daemon_open: its IPC socket in
 * a temporary directory, a peer listener on a kernel-chosen loopback port,
 * no peers) and speaks ipc.proto to it over raw sockets, turning the
 * daemon's event loop itself between reads: no threads, no second process,
 * nothing timed. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "ack.h"
#include "daemon.h"
#include "ipc.pb-c.h"
#include "log.h"
#include "router.h"
#include "wire.h"

#define ME "me@127.0.0.1"

static struct config cfg;
static struct daemon d;
static char dir[] = "/tmp/partisan-router-XXXXXX";

/* A client: its socket, what it read and not yet used, its endpoint ref. */
struct tc {
	int fd;
	uint8_t in[1 << 16];
	size_t len;
	uint64_t next_id;
	char ref[REF_NODE_MAX + REF_ID_MAX + 16];
};

static void setup(void)
{
	char json[512], err[256];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(json, sizeof(json),
	         "{\"name\": \"" ME "\", \"listen_addrs\": [{\"ip\": \"127.0.0.1\", \"port\": 0}],"
	         " \"ipc\": {\"socket\": \"%s/r.sock\"}, \"log\": {\"level\": \"error\"}}",
	         dir);
	config_defaults(&cfg);
	ck_assert_msg(config_load_string(&cfg, json, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
	log_init(cfg.log_level);
	ck_assert_int_eq(daemon_open(&d, &cfg, 42), 0);
}

static void teardown(void)
{
	daemon_close(&d);
	config_free(&cfg);
	rmdir(dir);
	strcpy(dir, "/tmp/partisan-router-XXXXXX");
}

/* Let the daemon handle whatever is ready. */
static void turn(void)
{
	event_base_loop(d.base, EVLOOP_NONBLOCK);
}

static void tc_write(struct tc *c, PartisanIpc__Request *rq)
{
	size_t n = partisan_ipc__request__get_packed_size(rq);
	uint8_t *buf = malloc(FRAME_HEADER + n);

	frame_put_header(buf, (uint32_t)n);
	partisan_ipc__request__pack(rq, buf + FRAME_HEADER);
	ck_assert_int_eq(write(c->fd, buf, FRAME_HEADER + n), (ssize_t)(FRAME_HEADER + n));
	free(buf);
}

/* Send rq with the next request id; returns the id. */
static uint64_t tc_request(struct tc *c, PartisanIpc__Request *rq)
{
	rq->id = ++c->next_id;
	tc_write(c, rq);
	return rq->id;
}

/* The next frame from the daemon, turning its loop until it comes; NULL if
 * none comes within many turns (the daemon has nothing more to say). */
static PartisanIpc__ServerMsg *tc_next_or_null(struct tc *c, int turns)
{
	for (int i = 0; i < turns; i++) {
		uint32_t len;
		ssize_t n;

		if (frame_peek(c->in, c->len, sizeof(c->in), &len) == 1 &&
		    c->len >= FRAME_HEADER + len) {
			PartisanIpc__ServerMsg *m =
			    partisan_ipc__server_msg__unpack(NULL, len, c->in + FRAME_HEADER);

			ck_assert_ptr_nonnull(m);
			memmove(c->in, c->in + FRAME_HEADER + len, c->len - FRAME_HEADER - len);
			c->len -= FRAME_HEADER + len;
			return m;
		}
		turn();
		n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, MSG_DONTWAIT);
		if (n > 0)
			c->len += (size_t)n;
		else
			ck_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	}
	return NULL;
}

static PartisanIpc__ServerMsg *tc_next(struct tc *c)
{
	PartisanIpc__ServerMsg *m = tc_next_or_null(c, 100000);

	ck_assert_msg(m != NULL, "the daemon said nothing");
	return m;
}

/* The response to request id (events before it are not expected). */
static PartisanIpc__Response *tc_response(struct tc *c, uint64_t id)
{
	PartisanIpc__ServerMsg *m = tc_next(c);
	PartisanIpc__Response *r;

	ck_assert_int_eq(m->body_case, PARTISAN_IPC__SERVER_MSG__BODY_RESPONSE);
	r = m->response;
	ck_assert_uint_eq(r->id, id);
	m->response = NULL;
	m->body_case = PARTISAN_IPC__SERVER_MSG__BODY__NOT_SET;
	partisan_ipc__server_msg__free_unpacked(m, NULL);
	return r;
}

static PartisanIpc__Error tc_error(struct tc *c, uint64_t id)
{
	PartisanIpc__Response *r = tc_response(c, id);
	PartisanIpc__Error e = r->has_error ? r->error : PARTISAN_IPC__ERROR__OK;

	partisan_ipc__response__free_unpacked(r, NULL);
	return e;
}

static PartisanIpc__Event *tc_event(struct tc *c)
{
	PartisanIpc__ServerMsg *m = tc_next(c);
	PartisanIpc__Event *ev;

	ck_assert_int_eq(m->body_case, PARTISAN_IPC__SERVER_MSG__BODY_EVENT);
	ev = m->event;
	m->event = NULL;
	m->body_case = PARTISAN_IPC__SERVER_MSG__BODY__NOT_SET;
	partisan_ipc__server_msg__free_unpacked(m, NULL);
	return ev;
}

static struct tc *tc_open(void)
{
	struct tc *c = calloc(1, sizeof(*c));
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Hello h = PARTISAN_IPC__HELLO__INIT;
	PartisanIpc__Response *r;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/r.sock", dir);
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	h.version = IPC_PROTOCOL_VERSION;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_HELLO;
	rq.hello = &h;
	r = tc_response(c, tc_request(c, &rq));
	ck_assert(!r->has_error || r->error == PARTISAN_IPC__ERROR__OK);
	ck_assert_int_eq(r->body_case, PARTISAN_IPC__RESPONSE__BODY_HELLO);
	ck_assert_str_eq(r->hello->node, ME);
	snprintf(c->ref, sizeof(c->ref), "%s", r->hello->self);
	partisan_ipc__response__free_unpacked(r, NULL);
	return c;
}

/* Close: with bye first (a clean close), or just drop the socket. */
static void tc_close(struct tc *c, bool bye)
{
	if (bye) {
		PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
		PartisanIpc__Empty e = PARTISAN_IPC__EMPTY__INIT;

		rq.body_case = PARTISAN_IPC__REQUEST__BODY_BYE;
		rq.bye = &e;
		rq.quiet = 1;
		rq.has_quiet = 1;
		tc_request(c, &rq);
	}
	close(c->fd);
	free(c);
	for (int i = 0; i < 100; i++)
		turn();
}

static PartisanIpc__Error tc_register(struct tc *c, const char *name)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Name n = PARTISAN_IPC__NAME__INIT;

	n.name = (char *)name;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_REGISTER;
	rq.register_ = &n;
	return tc_error(c, tc_request(c, &rq));
}

/* A send that asks for its response; returns the request id. */
static uint64_t tc_send(struct tc *c, const char *to, const char *payload)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Send s = PARTISAN_IPC__SEND__INIT;

	s.to = (char *)to;
	s.payload.data = (uint8_t *)payload;
	s.payload.len = strlen(payload);
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_SEND;
	rq.send = &s;
	return tc_request(c, &rq);
}

static uint64_t tc_call(struct tc *c, const char *to, const char *payload, uint32_t timeout_ms)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Call call = PARTISAN_IPC__CALL__INIT;

	call.to = (char *)to;
	call.payload.data = (uint8_t *)payload;
	call.payload.len = strlen(payload);
	call.timeout_ms = timeout_ms;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_CALL;
	rq.call = &call;
	return tc_request(c, &rq);
}

/* Answer call cref from caller `to`; returns the request id. */
static uint64_t tc_reply(struct tc *c, const char *to, const char *cref, const char *payload)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Reply rp = PARTISAN_IPC__REPLY__INIT;

	rp.to = (char *)to;
	rp.call_ref = (char *)cref;
	rp.payload.data = (uint8_t *)payload;
	rp.payload.len = strlen(payload);
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_REPLY;
	rq.reply = &rp;
	return tc_request(c, &rq);
}

/* Monitor target; returns the mref (malloc'ed). */
static char *tc_monitor(struct tc *c, const char *target)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Monitor m = PARTISAN_IPC__MONITOR__INIT;
	PartisanIpc__Response *r;
	char *mref;

	m.target = (char *)target;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_MONITOR;
	rq.monitor = &m;
	r = tc_response(c, tc_request(c, &rq));
	ck_assert_int_eq(r->body_case, PARTISAN_IPC__RESPONSE__BODY_REF);
	mref = strdup(r->ref->ref);
	partisan_ipc__response__free_unpacked(r, NULL);
	return mref;
}

/* The next event must be a message: check it and return the call ref (or
 * NULL, malloc'ed). */
static char *expect_message(struct tc *c, const char *from, const char *to, const char *payload)
{
	PartisanIpc__Event *ev = tc_event(c);
	char *call_ref;

	ck_assert_int_eq(ev->body_case, PARTISAN_IPC__EVENT__BODY_MESSAGE);
	ck_assert_str_eq(ev->message->from, from);
	ck_assert_str_eq(ev->message->to, to);
	ck_assert_uint_eq(ev->message->payload.len, strlen(payload));
	ck_assert(memcmp(ev->message->payload.data, payload, strlen(payload)) == 0);
	call_ref = ev->message->call_ref ? strdup(ev->message->call_ref) : NULL;
	partisan_ipc__event__free_unpacked(ev, NULL);
	return call_ref;
}

static void expect_down(struct tc *c, const char *mref, const char *target, const char *reason)
{
	PartisanIpc__Event *ev = tc_event(c);

	ck_assert_int_eq(ev->body_case, PARTISAN_IPC__EVENT__BODY_DOWN);
	ck_assert_str_eq(ev->down->mref, mref);
	ck_assert_str_eq(ev->down->target, target);
	ck_assert_str_eq(ev->down->reason, reason);
	partisan_ipc__event__free_unpacked(ev, NULL);
}

START_TEST(test_a_local_send_reaches_the_endpoint_by_name_and_by_pid)
{
	struct tc *a = tc_open(), *b = tc_open();

	ck_assert_int_eq(tc_register(a, "svc"), PARTISAN_IPC__ERROR__OK);
	ck_assert_int_eq(tc_error(b, tc_send(b, "partisan:name:" ME ":svc", "by name")), 0);
	free(expect_message(a, b->ref, "partisan:name:" ME ":svc", "by name"));
	ck_assert_int_eq(tc_error(b, tc_send(b, a->ref, "by pid")), 0);
	free(expect_message(a, b->ref, a->ref, "by pid"));
	tc_close(a, true);
	tc_close(b, true);
}
END_TEST

START_TEST(test_local_messages_from_one_sender_arrive_in_order)
{
	struct tc *a = tc_open(), *b = tc_open();
	char payload[32];

	ck_assert_int_eq(tc_register(a, "seq"), PARTISAN_IPC__ERROR__OK);
	for (int i = 0; i < 500; i++) {
		snprintf(payload, sizeof(payload), "%d", i);
		ck_assert_int_eq(tc_error(b, tc_send(b, "partisan:name:" ME ":seq", payload)), 0);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(payload, sizeof(payload), "%d", i);
		free(expect_message(a, b->ref, "partisan:name:" ME ":seq", payload));
	}
	tc_close(a, true);
	tc_close(b, true);
}
END_TEST

START_TEST(test_a_message_to_a_missing_endpoint_is_dropped_counted_and_given_to_nobody)
{
	struct tc *a = tc_open(), *b = tc_open();
	uint64_t before = d.stats.dropped_no_proc;

	ck_assert_int_eq(tc_register(a, "svc"), PARTISAN_IPC__ERROR__OK);
	/* As Erlang's send: no error to the sender. */
	ck_assert_int_eq(tc_error(b, tc_send(b, "partisan:name:" ME ":ghost", "lost")), 0);
	ck_assert_int_eq(tc_error(b, tc_send(b, "partisan:pid:" ME ":999999", "lost")), 0);
	ck_assert_uint_eq(d.stats.dropped_no_proc, before + 2);
	/* Nobody got them: a's first message is the one sent to it next. */
	ck_assert_int_eq(tc_error(b, tc_send(b, "partisan:name:" ME ":svc", "next")), 0);
	free(expect_message(a, b->ref, "partisan:name:" ME ":svc", "next"));
	tc_close(a, true);
	tc_close(b, true);
}
END_TEST

START_TEST(test_a_bad_ref_or_name_is_einval_and_the_session_goes_on)
{
	struct tc *a = tc_open();

	ck_assert_int_eq(tc_error(a, tc_send(a, "erlang:pid:x@y:1", "x")),
	                 PARTISAN_IPC__ERROR__EINVAL);
	ck_assert_int_eq(tc_register(a, ""), PARTISAN_IPC__ERROR__EINVAL);
	ck_assert_int_eq(tc_register(a, "has:colon"), PARTISAN_IPC__ERROR__EINVAL);
	ck_assert_int_eq(tc_register(a, "fine"), PARTISAN_IPC__ERROR__OK);
	tc_close(a, true);
}
END_TEST

START_TEST(test_a_taken_name_is_refused_until_its_session_ends)
{
	struct tc *a = tc_open(), *b = tc_open();

	ck_assert_int_eq(tc_register(a, "only"), PARTISAN_IPC__ERROR__OK);
	ck_assert_int_eq(tc_register(b, "only"), PARTISAN_IPC__ERROR__EEXIST);
	tc_close(a, false);
	ck_assert_int_eq(tc_register(b, "only"), PARTISAN_IPC__ERROR__OK);
	tc_close(b, true);
}
END_TEST

START_TEST(test_a_monitor_fires_normal_on_a_clean_close_and_killed_on_a_lost_client)
{
	struct tc *w = tc_open(), *polite = tc_open(), *crash = tc_open();
	char target[sizeof(crash->ref)];
	char *m1, *m2;

	ck_assert_int_eq(tc_register(polite, "polite"), PARTISAN_IPC__ERROR__OK);
	m1 = tc_monitor(w, "partisan:name:" ME ":polite");
	m2 = tc_monitor(w, crash->ref);
	snprintf(target, sizeof(target), "%s", crash->ref);
	tc_close(polite, true);
	expect_down(w, m1, "partisan:name:" ME ":polite", "normal");
	tc_close(crash, false);
	expect_down(w, m2, target, "killed");
	/* Exactly one each: nothing else is queued for w. */
	ck_assert_ptr_null(tc_next_or_null(w, 1000));
	free(m1);
	free(m2);
	tc_close(w, true);
}
END_TEST

START_TEST(test_a_monitor_of_a_missing_endpoint_is_noproc_at_once)
{
	struct tc *w = tc_open();
	char *m = tc_monitor(w, "partisan:name:" ME ":ghost");

	expect_down(w, m, "partisan:name:" ME ":ghost", "noproc");
	free(m);
	tc_close(w, true);
}
END_TEST

START_TEST(test_a_monitor_of_an_unconnected_node_is_noconnection_at_once)
{
	struct tc *w = tc_open();
	char *m = tc_monitor(w, "partisan:name:other@127.0.0.1:svc");

	expect_down(w, m, "partisan:name:other@127.0.0.1:svc", "noconnection");
	free(m);
	tc_close(w, true);
}
END_TEST

START_TEST(test_a_demonitored_target_going_says_nothing)
{
	struct tc *w = tc_open(), *t = tc_open();
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Demonitor dm = PARTISAN_IPC__DEMONITOR__INIT;
	char *m = tc_monitor(w, t->ref);

	dm.mref = m;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_DEMONITOR;
	rq.demonitor = &dm;
	ck_assert_int_eq(tc_error(w, tc_request(w, &rq)), 0);
	tc_close(t, false);
	ck_assert_ptr_null(tc_next_or_null(w, 1000));
	/* Again, after it is gone: still not an error (Erlang). */
	ck_assert_int_eq(tc_error(w, tc_request(w, &rq)), 0);
	free(m);
	tc_close(w, true);
}
END_TEST

START_TEST(test_a_call_gets_its_reply_and_fails_fast_without_a_callee)
{
	struct tc *caller = tc_open(), *srv = tc_open();
	PartisanIpc__Response *r;
	uint64_t id;
	char *cref;

	ck_assert_int_eq(tc_register(srv, "echo"), PARTISAN_IPC__ERROR__OK);
	id = tc_call(caller, "partisan:name:" ME ":echo", "ping", 5000);
	cref = expect_message(srv, caller->ref, "partisan:name:" ME ":echo", "ping");
	ck_assert_ptr_nonnull(cref);
	ck_assert_int_eq(tc_error(srv, tc_reply(srv, caller->ref, cref, "pong")), 0);
	r = tc_response(caller, id);
	ck_assert_int_eq(r->body_case, PARTISAN_IPC__RESPONSE__BODY_CALL);
	ck_assert_uint_eq(r->call->payload.len, 4);
	ck_assert(memcmp(r->call->payload.data, "pong", 4) == 0);
	partisan_ipc__response__free_unpacked(r, NULL);
	free(cref);

	ck_assert_int_eq(
	    tc_error(caller, tc_call(caller, "partisan:name:" ME ":nobody", "x", 5000)),
	    PARTISAN_IPC__ERROR__ENOPROC);
	ck_assert_int_eq(
	    tc_error(caller, tc_call(caller, "partisan:name:other@127.0.0.1:echo", "x", 5000)),
	    PARTISAN_IPC__ERROR__ENOCONNECTION);
	tc_close(caller, true);
	tc_close(srv, true);
}
END_TEST

START_TEST(test_a_call_past_its_deadline_times_out_and_a_late_reply_is_dropped)
{
	struct tc *caller = tc_open(), *srv = tc_open();
	uint64_t id;
	char *cref;

	ck_assert_int_eq(tc_register(srv, "slow"), PARTISAN_IPC__ERROR__OK);
	id = tc_call(caller, "partisan:name:" ME ":slow", "ping", 100);
	cref = expect_message(srv, caller->ref, "partisan:name:" ME ":slow", "ping");
	/* The router's tick at a time past the deadline (no waiting). */
	router_tick(&d, daemon_now_ms() + 1000);
	ck_assert_int_eq(tc_error(caller, id), PARTISAN_IPC__ERROR__ETIMEDOUT);
	tc_error(srv, tc_reply(srv, caller->ref, cref, "late"));
	/* Never delivered as a stray message. */
	ck_assert_ptr_null(tc_next_or_null(caller, 1000));
	free(cref);
	tc_close(caller, true);
	tc_close(srv, true);
}
END_TEST

START_TEST(test_a_callee_that_goes_away_fails_the_call_with_enoproc)
{
	struct tc *caller = tc_open(), *srv = tc_open();
	uint64_t id;

	ck_assert_int_eq(tc_register(srv, "flaky"), PARTISAN_IPC__ERROR__OK);
	id = tc_call(caller, "partisan:name:" ME ":flaky", "ping", 60000);
	free(expect_message(srv, caller->ref, "partisan:name:" ME ":flaky", "ping"));
	tc_close(srv, false);
	/* At once, long before the call's deadline (gen_server:call's monitor). */
	ck_assert_int_eq(tc_error(caller, id), PARTISAN_IPC__ERROR__ENOPROC);
	tc_close(caller, true);
}
END_TEST

/* An ack retransmission falls due: the tick that finds it sends it, rather
 * than leaving it queued for whatever event comes next. */
START_TEST(test_a_tick_carries_out_what_the_router_tick_queues)
{
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	struct core_env env = {.now_ms = daemon_now_ms(), .rng = &d.rng};

	data.from = "partisan:pid:" ME ":1";
	data.to = "partisan:name:x@127.0.0.1:svc";
	data.payload.data = (uint8_t *)"m";
	data.payload.len = 1;
	ack_node_up(d.ack, "x@127.0.0.1", &env, &d.acts);
	ack_track(d.ack, "x@127.0.0.1", &data, "default", "k", 1, 1, &env, &d.acts);
	daemon_drain(&d);
	ck_assert_uint_eq(d.acts.n, 0);
	daemon_tick(&d, env.now_ms + cfg.retransmit_interval_ms + 1);
	ck_assert_uint_eq(ack_retransmits(d.ack), 1);
	ck_assert_uint_eq(d.acts.n, 0);
}
END_TEST

static Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *t = tcase_create("router");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, test_a_local_send_reaches_the_endpoint_by_name_and_by_pid);
	tcase_add_test(t, test_local_messages_from_one_sender_arrive_in_order);
	tcase_add_test(t,
	               test_a_message_to_a_missing_endpoint_is_dropped_counted_and_given_to_nobody);
	tcase_add_test(t, test_a_bad_ref_or_name_is_einval_and_the_session_goes_on);
	tcase_add_test(t, test_a_taken_name_is_refused_until_its_session_ends);
	tcase_add_test(t, test_a_monitor_fires_normal_on_a_clean_close_and_killed_on_a_lost_client);
	tcase_add_test(t, test_a_monitor_of_a_missing_endpoint_is_noproc_at_once);
	tcase_add_test(t, test_a_monitor_of_an_unconnected_node_is_noconnection_at_once);
	tcase_add_test(t, test_a_demonitored_target_going_says_nothing);
	tcase_add_test(t, test_a_call_gets_its_reply_and_fails_fast_without_a_callee);
	tcase_add_test(t, test_a_call_past_its_deadline_times_out_and_a_late_reply_is_dropped);
	tcase_add_test(t, test_a_callee_that_goes_away_fails_the_call_with_enoproc);
	tcase_add_test(t, test_a_tick_carries_out_what_the_router_tick_queues);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(router_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
