/* test_node.c: unit tests for the node core (daemon/core/node.c): which
 * core each peer message goes to (the one table), the fixed tick order,
 * the detector's verdicts as actions (heartbeats first on the wire, a
 * second watcher's Silent -> DOWN), a late tick forgiven, the manager's
 * membership events moving Plumtree's neighbors, and departure news over
 * Plumtree becoming EV_MEMBER_LEFT and a forget. The manager here is a fake
 * that records what it was given. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#define TIMEOUT 2000

/* ---- a manager that records its calls ---- */

struct fake {
	unsigned receives, ticks, ups, downs, joins, leaves, forgets;
	char members[8][64];
	size_t nmembers;
	bool add_on_up; /* peer_up queues EV_MEMBER_ADDED for the node */
	char forgot[64];
};

static struct fake *fake_last; /* the one just created, for the test to read */

static void *fake_create(const struct manager_params *p)
{
	(void)p;
	return fake_last = calloc(1, sizeof(struct fake));
}

static void fake_destroy(void *m)
{
	free(m);
}

static void fake_add(struct fake *f, const char *n)
{
	snprintf(f->members[f->nmembers++], sizeof(f->members[0]), "%s", n);
}

static bool fake_is_member(void *m, const char *node)
{
	struct fake *f = m;

	for (size_t i = 0; i < f->nmembers; i++)
		if (strcmp(f->members[i], node) == 0)
			return true;
	return false;
}

static void fake_join(void *m, const struct node_spec *s, const struct core_env *e,
                      struct actions *o)
{
	((struct fake *)m)->joins++;
}

static void fake_leave(void *m, const char *n, const struct core_env *e, struct actions *o)
{
	((struct fake *)m)->leaves++;
	actions_disconnect(o, "b@h");
}

/* A Leave message removes its node (EV_MEMBER_REMOVED); anything else is
 * counted and accepted. */
static int fake_receive(void *m, const char *from, const PartisanPeer__PeerMsg *msg,
                        const struct core_env *e, struct actions *o, const char **why)
{
	struct fake *f = m;

	f->receives++;
	if (msg->body_case == PARTISAN_PEER__PEER_MSG__BODY_LEAVE)
		actions_event(o, EV_MEMBER_REMOVED, msg->leave->node);
	return 0;
}

static void fake_up(void *m, const struct node_spec *s, const struct core_env *e, struct actions *o)
{
	struct fake *f = m;

	f->ups++;
	if (f->add_on_up && !fake_is_member(m, s->name)) {
		fake_add(f, s->name);
		actions_event(o, EV_MEMBER_ADDED, s->name);
	}
}

static void fake_down(void *m, const char *n, const struct core_env *e, struct actions *o)
{
	((struct fake *)m)->downs++;
}

/* Its tick leaves a mark in the list, to see where it ran. */
static void fake_tick(void *m, const struct core_env *e, struct actions *o)
{
	((struct fake *)m)->ticks++;
	actions_event(o, EV_VIEW_CHANGED, "manager-tick");
}

static size_t fake_members(void *m, const struct node_spec *const **out)
{
	*out = NULL;
	return 0;
}

static void fake_forget(void *m, const char *node, const struct core_env *e, struct actions *o)
{
	struct fake *f = m;

	f->forgets++;
	snprintf(f->forgot, sizeof(f->forgot), "%s", node);
}

static const struct manager_ops fake_ops = {
    .name = "fake",
    .create = fake_create,
    .destroy = fake_destroy,
    .join = fake_join,
    .leave = fake_leave,
    .receive = fake_receive,
    .peer_up = fake_up,
    .peer_down = fake_down,
    .tick = fake_tick,
    .members = fake_members,
    .is_member = fake_is_member,
    .forget = fake_forget,
};

/* ---- helpers ---- */

static struct rng test_rng;

static struct core_env at(uint64_t now)
{
	struct core_env e = {now, &test_rng};

	return e;
}

static struct node *make(const char *self, bool broadcast, struct fake **f)
{
	struct node_params p = {.self = self,
	                        .failure_timeout_ms = TIMEOUT,
	                        .broadcast = broadcast,
	                        .epoch = 7,
	                        .lazy_tick_ms = 100,
	                        .exchange_tick_ms = 10000,
	                        .broadcast_store = 16};
	struct manager_params mp = {0};
	struct node *nd = node_create(&p);

	ck_assert_ptr_nonnull(nd);
	node_set_manager(nd, &fake_ops, &mp);
	*f = fake_last;
	return nd;
}

static struct node_spec *spec(const char *name)
{
	struct ns_channel ch = {.name = "default", .parallelism = 1};
	struct ns_addr addr = {.ip = "10.0.0.1", .port = 1};
	struct node_spec s = {.name = (char *)name,
	                      .addrs = &addr,
	                      .naddrs = 1,
	                      .channels = &ch,
	                      .nchannels = 1,
	                      .parallelism = 1};

	return node_spec_dup(&s);
}

static void link_up(struct node *nd, const char *name, uint64_t now, struct actions *out)
{
	struct node_spec *s = spec(name);
	struct core_env e = at(now);

	node_link_up(nd, s, &e, out);
	node_spec_free(s);
}

/* How many actions of kind (and event / flags, when given) are for node. */
static size_t count(const struct actions *a, enum action_kind k, const char *node)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		n += a->v[i].kind == k &&
		     (node == NULL || (a->v[i].node && strcmp(a->v[i].node, node) == 0));
	return n;
}

static int receive(struct node *nd, const char *from, const PartisanPeer__PeerMsg *m, uint64_t now,
                   struct actions *out, const char **why)
{
	struct core_env e = at(now);

	*why = NULL;
	return node_receive(nd, from, m, &e, out, why);
}

/* ---- the table ---- */

START_TEST(test_each_message_goes_where_the_table_says)
{
	struct fake *f;
	struct node *nd = make("a@h", true, &f);
	struct actions out;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Digest dg = PARTISAN_PEER__DIGEST__INIT;
	PartisanPeer__HvShuffle sh = PARTISAN_PEER__HV_SHUFFLE__INIT;
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	PartisanPeer__Hello hello = PARTISAN_PEER__HELLO__INIT;
	const char *why;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DIGEST;
	m.digest = &dg;
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), 0);
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE;
	m.hv_shuffle = &sh;
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), 0);
	ck_assert_uint_eq(f->receives, 2);
	/* The router's: not the node's, and nothing done. */
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_DATA;
	m.data = &data;
	actions_clear(&out);
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), NODE_NOT_MINE);
	ck_assert_uint_eq(out.n, 0);
	ck_assert_uint_eq(f->receives, 2);
	/* A handshake message on an open link, and an empty one: refused. */
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HELLO;
	m.hello = &hello;
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), -1);
	ck_assert_str_eq(why, "handshake message on an open connection");
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY__NOT_SET;
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), -1);
	ck_assert_str_eq(why, "empty message");
	ck_assert_uint_eq(f->receives, 2);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_a_broadcast_message_without_plumtree_is_refused)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__IHave ih = PARTISAN_PEER__IHAVE__INIT;
	const char *why;

	actions_init(&out);
	ck_assert_ptr_null(node_plumtree(nd));
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_IHAVE;
	m.ihave = &ih;
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), -1);
	ck_assert_str_eq(why, "broadcast is not run here");
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

/* ---- the detector through the node ---- */

START_TEST(test_heartbeat_request_answered_now_and_a_reply_is_not)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Heartbeat hb = PARTISAN_PEER__HEARTBEAT__INIT;
	const char *why;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	for (uint64_t t = 100; t <= 1000; t += 100) { /* a round begins at 1000 */
		struct core_env e = at(t);

		node_tick(nd, &e, &out);
	}
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	actions_clear(&out);
	/* Nothing of ours went to b this round (the shell said no node_sent). */
	ck_assert_int_eq(receive(nd, "b@h", &m, 1500, &out, &why), 0);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_int_eq(out.v[0].kind, ACT_SEND);
	ck_assert_str_eq(out.v[0].node, "b@h");
	ck_assert_uint_eq(out.v[0].flags, ACT_F_NOW); /* a reply: no probe */
	hb.has_reply = hb.reply = true;
	actions_clear(&out);
	ck_assert_int_eq(receive(nd, "b@h", &m, 1600, &out, &why), 0);
	ck_assert_uint_eq(out.n, 0);
	ck_assert_uint_eq(f->receives, 0); /* the manager never saw either */
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_tick_runs_the_detector_before_the_manager)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	struct core_env e;
	size_t probe = SIZE_MAX, mark = SIZE_MAX;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	actions_clear(&out);
	/* Rounds of TIMEOUT / 2: at 1000 one begins and b, sent nothing, is
	 * asked. */
	for (uint64_t t = 100; t <= 1000; t += 100) {
		e = at(t);
		actions_clear(&out);
		node_tick(nd, &e, &out);
	}
	for (size_t i = 0; i < out.n; i++) {
		if (out.v[i].kind == ACT_SEND && (out.v[i].flags & ACT_F_PROBE))
			probe = i;
		if (out.v[i].kind == ACT_EVENT && strcmp(out.v[i].node, "manager-tick") == 0)
			mark = i;
	}
	ck_assert_uint_ne(probe, SIZE_MAX);
	ck_assert_uint_ne(mark, SIZE_MAX);
	ck_assert_uint_lt(probe, mark);
	ck_assert_uint_eq(f->ticks, 10);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_a_node_never_heard_is_taken_down_and_the_others_told)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	struct core_env e;
	bool down = false;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	link_up(nd, "c@h", 0, &out);
	for (uint64_t t = 100; t <= 3000 && !down; t += 100) {
		node_heard(node_peer(nd, "c@h"), t); /* c speaks, b does not */
		e = at(t);
		actions_clear(&out);
		node_tick(nd, &e, &out);
		if (count(&out, ACT_DOWN, "b@h") == 1) {
			down = true;
			ck_assert_uint_gt(t, TIMEOUT);
			ck_assert_uint_eq(count(&out, ACT_DOWN, "c@h"), 0);
			ck_assert_uint_eq(count(&out, ACT_LOG, NULL), 1);
			ck_assert_uint_eq(count(&out, ACT_SEND, "c@h"), 1); /* Silent to c */
		}
	}
	ck_assert(down);
	ck_assert_uint_eq(fd_stats(node_fd(nd))->timeouts, 1);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

static void silent_msg(PartisanPeer__PeerMsg *m, PartisanPeer__Silent *sl, const char *about)
{
	sl->node = (char *)about;
	sl->has_silent_ms = true;
	sl->silent_ms = 2100;
	m->body_case = PARTISAN_PEER__PEER_MSG__BODY_SILENT;
	m->silent = sl;
}

START_TEST(test_second_watchers_silent_takes_a_quiet_node_down)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Silent sl = PARTISAN_PEER__SILENT__INIT;
	const char *why;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	link_up(nd, "c@h", 0, &out);
	link_up(nd, "x@h", 0, &out);
	silent_msg(&m, &sl, "x@h");
	actions_clear(&out);
	ck_assert_int_eq(receive(nd, "b@h", &m, 5000, &out, &why), 0);
	ck_assert_uint_eq(count(&out, ACT_DOWN, NULL), 0); /* one watcher: not enough */
	ck_assert_int_eq(receive(nd, "c@h", &m, 5050, &out, &why), 0);
	ck_assert_uint_eq(count(&out, ACT_DOWN, "x@h"), 1);
	ck_assert(!node_link_is_up(nd, "x@h"));
	ck_assert_uint_eq(fd_stats(node_fd(nd))->silent, 1);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_unread_bytes_turn_a_second_silent_into_a_question)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Silent sl = PARTISAN_PEER__SILENT__INIT;
	const char *why;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	link_up(nd, "c@h", 0, &out);
	link_up(nd, "x@h", 0, &out);
	silent_msg(&m, &sl, "x@h");
	actions_clear(&out);
	ck_assert_int_eq(receive(nd, "b@h", &m, 5000, &out, &why), 0);
	node_unread(node_peer(nd, "x@h"), 5050); /* the shell: x's bytes wait here */
	ck_assert_int_eq(receive(nd, "c@h", &m, 5050, &out, &why), 0);
	ck_assert_uint_eq(count(&out, ACT_DOWN, NULL), 0);
	ck_assert_uint_eq(count(&out, ACT_SEND, "x@h"), 1); /* asked itself */
	ck_assert(node_link_is_up(nd, "x@h"));
	ck_assert_uint_eq(fd_stats(node_fd(nd))->suspicions, 1);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_a_late_tick_is_our_pause_and_forgiven)
{
	struct fake *f;
	struct node *nd = make("a@h", false, &f);
	struct actions out;
	struct core_env e;

	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	e = at(100);
	node_tick(nd, &e, &out);
	e = at(8000); /* this process slept for 7.9 s */
	actions_clear(&out);
	node_tick(nd, &e, &out);
	ck_assert_uint_eq(count(&out, ACT_DOWN, NULL), 0);
	ck_assert(node_link_is_up(nd, "b@h"));
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_no_detector_when_the_timeout_is_zero)
{
	struct node_params p = {.self = "a@h"};
	struct manager_params mp = {0};
	struct node *nd = node_create(&p);
	struct actions out;
	struct core_env e;

	node_set_manager(nd, &fake_ops, &mp);
	actions_init(&out);
	link_up(nd, "b@h", 0, &out);
	for (uint64_t t = 100; t <= 10000; t += 100) {
		e = at(t);
		node_tick(nd, &e, &out);
	}
	ck_assert_uint_eq(count(&out, ACT_DOWN, NULL), 0);
	ck_assert_uint_eq(count(&out, ACT_SEND, NULL), 0);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

/* ---- the cores' events, composed ---- */

START_TEST(test_member_events_move_plumtree_neighbors)
{
	struct fake *f;
	struct node *nd = make("a@h", true, &f);
	struct actions out;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Leave lv = PARTISAN_PEER__LEAVE__INIT;
	struct core_env e = at(0);
	struct node_spec *s = spec("c@h");
	const char *why;

	actions_init(&out);
	/* Linked but not a member: no neighbor. */
	link_up(nd, "b@h", 0, &out);
	ck_assert_uint_eq(plumtree_neighbors(node_plumtree(nd)), 0);
	/* A member (the manager says so as the link comes up): a neighbor. */
	f->add_on_up = true;
	link_up(nd, "c@h", 0, &out);
	ck_assert_uint_eq(plumtree_neighbors(node_plumtree(nd)), 1);
	/* A member added whose link is not up: not a neighbor (yet). */
	node_join(nd, s, &e, &out);
	node_spec_free(s);
	/* The manager removes c: c stops being one. */
	lv.node = "c@h";
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_LEAVE;
	m.leave = &lv;
	ck_assert_int_eq(receive(nd, "b@h", &m, 10, &out, &why), 0);
	ck_assert_uint_eq(plumtree_neighbors(node_plumtree(nd)), 0);
	/* Back as the link comes up again (already a member). */
	node_link_down(nd, "c@h", &e, &out);
	link_up(nd, "c@h", 20, &out);
	ck_assert_uint_eq(plumtree_neighbors(node_plumtree(nd)), 1);
	node_link_down(nd, "c@h", &e, &out);
	ck_assert_uint_eq(plumtree_neighbors(node_plumtree(nd)), 0);
	ck_assert_uint_eq(f->downs, 2);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_departure_news_reaches_the_neighbor_as_member_left)
{
	struct fake *fa, *fb;
	struct node *a = make("a@h", true, &fa), *b = make("b@h", true, &fb);
	struct actions out, in;
	struct core_env e = at(50);
	PartisanPeer__PeerMsg *m;
	const char *why;
	size_t sent = 0, left = 0;
	int rc;

	actions_init(&out);
	actions_init(&in);
	fa->add_on_up = fb->add_on_up = true;
	link_up(a, "b@h", 0, &out);
	link_up(b, "a@h", 0, &in);
	actions_clear(&out);
	actions_clear(&in);
	node_leave(a, "a@h", &e, &out);
	ck_assert_uint_eq(fa->leaves, 1);
	for (size_t i = 0; i < out.n; i++) {
		if (out.v[i].kind != ACT_SEND || strcmp(out.v[i].node, "b@h") != 0)
			continue;
		/* The news goes before the manager's disconnect. */
		ck_assert_uint_lt(i, out.n - 1);
		ck_assert_int_eq(out.v[out.n - 1].kind, ACT_DISCONNECT);
		m = partisan_peer__peer_msg__unpack(NULL, out.v[i].len, out.v[i].buf);
		ck_assert_ptr_nonnull(m);
		rc = receive(b, "a@h", m, 60, &in, &why);
		ck_assert_int_eq(rc, 0);
		partisan_peer__peer_msg__free_unpacked(m, NULL);
		sent++;
	}
	ck_assert_uint_eq(sent, 1);
	for (size_t i = 0; i < in.n; i++) {
		if (in.v[i].kind == ACT_EVENT && in.v[i].event == EV_MEMBER_LEFT) {
			ck_assert_str_eq(in.v[i].node, "a@h");
			ck_assert_str_eq(in.v[i].text, "a@h");
			left++;
		}
		/* The node's own topic is never delivered to the shell. */
		ck_assert_int_ne(in.v[i].kind, ACT_DELIVER);
	}
	ck_assert_uint_eq(left, 1);
	ck_assert_uint_eq(fb->forgets, 1);
	ck_assert_str_eq(fb->forgot, "a@h");
	actions_free(&out);
	actions_free(&in);
	node_destroy(a);
	node_destroy(b);
}
END_TEST

START_TEST(test_a_broadcast_is_delivered_here_and_sent_to_neighbors)
{
	struct fake *f;
	struct node *nd = make("a@h", true, &f);
	struct actions out;
	struct core_env e = at(5);
	size_t deliver = 0;

	actions_init(&out);
	f->add_on_up = true;
	link_up(nd, "b@h", 0, &out);
	actions_clear(&out);
	node_broadcast(nd, "news", (const uint8_t *)"hi", 2, &e, &out);
	for (size_t i = 0; i < out.n; i++)
		if (out.v[i].kind == ACT_DELIVER) {
			ck_assert_str_eq(out.v[i].text, "news");
			ck_assert_str_eq(out.v[i].node, "a@h");
			ck_assert_uint_eq(out.v[i].len, 2);
			ck_assert_int_eq(memcmp(out.v[i].buf, "hi", 2), 0);
			deliver++;
		}
	ck_assert_uint_eq(deliver, 1);
	ck_assert_uint_eq(count(&out, ACT_SEND, "b@h"), 1);
	actions_free(&out);
	node_destroy(nd);
}
END_TEST

START_TEST(test_a_bad_name_makes_no_node)
{
	struct node_params p = {.self = "no-at-sign"};

	ck_assert_ptr_null(node_create(&p));
	p.self = NULL;
	ck_assert_ptr_null(node_create(&p));
}
END_TEST

static Suite *node_suite(void)
{
	Suite *s = suite_create("node");
	TCase *t = tcase_create("node");

	rng_seed(&test_rng, 42);
	tcase_add_test(t, test_each_message_goes_where_the_table_says);
	tcase_add_test(t, test_a_broadcast_message_without_plumtree_is_refused);
	tcase_add_test(t, test_heartbeat_request_answered_now_and_a_reply_is_not);
	tcase_add_test(t, test_tick_runs_the_detector_before_the_manager);
	tcase_add_test(t, test_a_node_never_heard_is_taken_down_and_the_others_told);
	tcase_add_test(t, test_second_watchers_silent_takes_a_quiet_node_down);
	tcase_add_test(t, test_unread_bytes_turn_a_second_silent_into_a_question);
	tcase_add_test(t, test_a_late_tick_is_our_pause_and_forgiven);
	tcase_add_test(t, test_no_detector_when_the_timeout_is_zero);
	tcase_add_test(t, test_member_events_move_plumtree_neighbors);
	tcase_add_test(t, test_departure_news_reaches_the_neighbor_as_member_left);
	tcase_add_test(t, test_a_broadcast_is_delivered_here_and_sent_to_neighbors);
	tcase_add_test(t, test_a_bad_name_makes_no_node);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(node_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
