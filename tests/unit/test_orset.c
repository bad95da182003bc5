/* test_orset.c: the membership ORSWOT (daemon/core/orset.c): merge is
 * commutative, associative and idempotent; a remove wins over the adds it
 * observed and loses to concurrent ones; restarted actors never reuse dots;
 * the protobuf form round-trips and malformed states are refused. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "manager.h"
#include "orset.h"

static struct node_spec *spec(const char *name, uint16_t port)
{
	struct ns_channel ch = {.name = "default", .parallelism = 1};
	struct ns_addr addr = {.ip = "127.0.0.1", .port = port};
	struct node_spec s = {.name = (char *)name,
	                      .addrs = &addr,
	                      .naddrs = 1,
	                      .channels = &ch,
	                      .nchannels = 1,
	                      .parallelism = 1};

	return node_spec_dup(&s);
}

static void add(struct orset *s, const char *actor, const char *name, uint16_t port)
{
	struct node_spec *sp = spec(name, port);

	orset_add(s, actor, sp);
	node_spec_free(sp);
}

static void copy(struct orset *dst, const struct orset *src)
{
	orset_init(dst);
	orset_merge(dst, src);
}

static bool same(struct orset *a, struct orset *b)
{
	if (a->nentries != b->nentries || a->nclock != b->nclock)
		return false;
	for (size_t i = 0; i < a->nentries; i++)
		if (node_spec_cmp(a->entries[i].spec, b->entries[i].spec) != 0 ||
		    a->entries[i].ndots != b->entries[i].ndots)
			return false;
	return orset_hash(a) == orset_hash(b);
}

/* x merged with y, as a new set. */
static void merged(struct orset *out, const struct orset *x, const struct orset *y)
{
	copy(out, x);
	orset_merge(out, y);
}

/* A node restarted on a lower port: its new spec sorts before the old one,
 * and must still be the one found, and the old one pruned by anyone. */
START_TEST(test_the_newest_incarnation_is_the_current_spec_whatever_its_port)
{
	struct orset a, b;

	orset_init(&a);
	add(&a, "x@h/10", "x@h", 20000);
	add(&a, "y@h/5", "y@h", 1);
	orset_init(&b);
	copy(&b, &a);
	add(&b, "x@h/2a", "x@h", 15000); /* the restart, seen by b only */
	orset_merge(&a, &b);
	ck_assert_uint_eq(a.nentries, 3);
	ck_assert_uint_eq(actor_incarnation("x@h/2a"), 42);
	ck_assert_uint_eq(orset_find(&a, "x@h")->addrs[0].port, 15000);
	ck_assert_uint_eq(orset_entry_incarnation(orset_newest(&a, "x@h")), 42);
	ck_assert_uint_eq(orset_prune_stale(&a), 1);
	ck_assert_uint_eq(a.nentries, 2);
	ck_assert_uint_eq(orset_find(&a, "x@h")->addrs[0].port, 15000);
	ck_assert_uint_eq(orset_prune_stale(&a), 0);
	/* The prune travels: b, merging a's state, loses the old twin too. */
	orset_merge(&b, &a);
	ck_assert_uint_eq(b.nentries, 2);
	ck_assert(same(&a, &b));
	orset_free(&a);
	orset_free(&b);
}
END_TEST

START_TEST(test_merge_is_commutative)
{
	struct orset a, b, ab, ba;

	orset_init(&a);
	orset_init(&b);
	add(&a, "a@h/1", "a@h", 1);
	add(&a, "a@h/1", "c@h", 3);
	add(&b, "b@h/1", "b@h", 2);
	add(&b, "b@h/1", "c@h", 3);
	orset_remove_name(&b, "c@h");
	merged(&ab, &a, &b);
	merged(&ba, &b, &a);
	ck_assert(same(&ab, &ba));
	ck_assert_ptr_nonnull(orset_find(&ab, "c@h")); /* b never saw a's add */
	orset_free(&a);
	orset_free(&b);
	orset_free(&ab);
	orset_free(&ba);
}
END_TEST

START_TEST(test_merge_is_idempotent)
{
	struct orset a, b, ab;

	orset_init(&a);
	orset_init(&b);
	add(&a, "a@h/1", "a@h", 1);
	add(&b, "b@h/1", "b@h", 2);
	ck_assert(!orset_merge(&a, &a));
	merged(&ab, &a, &b);
	ck_assert(!orset_merge(&ab, &b));
	ck_assert(!orset_merge(&ab, &a));
	ck_assert(orset_merge(&a, &b));
	ck_assert(same(&a, &ab));
	orset_free(&a);
	orset_free(&b);
	orset_free(&ab);
}
END_TEST

START_TEST(test_merge_is_associative)
{
	struct orset a, b, c, l, r, t;

	orset_init(&a);
	orset_init(&b);
	orset_init(&c);
	add(&a, "a@h/1", "x@h", 9);
	add(&b, "b@h/1", "x@h", 9);
	add(&c, "c@h/1", "c@h", 3);
	orset_merge(&c, &a);
	orset_remove_name(&c, "x@h");
	merged(&t, &a, &b);
	merged(&l, &t, &c);
	orset_free(&t);
	merged(&t, &b, &c);
	merged(&r, &a, &t);
	ck_assert(same(&l, &r));
	ck_assert_ptr_nonnull(orset_find(&l, "x@h")); /* b's add was not observed */
	orset_free(&a);
	orset_free(&b);
	orset_free(&c);
	orset_free(&l);
	orset_free(&r);
	orset_free(&t);
}
END_TEST

START_TEST(test_remove_wins_over_observed_add)
{
	struct orset a, b;

	orset_init(&a);
	add(&a, "a@h/1", "a@h", 1);
	add(&a, "a@h/1", "x@h", 9);
	copy(&b, &a);
	ck_assert_uint_eq(orset_remove_name(&b, "x@h"), 1);
	ck_assert(orset_merge(&a, &b));
	ck_assert_ptr_null(orset_find(&a, "x@h"));
	ck_assert(!orset_merge(&b, &a));
	ck_assert_ptr_null(orset_find(&b, "x@h"));
	orset_free(&a);
	orset_free(&b);
}
END_TEST

START_TEST(test_concurrent_add_wins_over_remove)
{
	struct orset a, b;

	orset_init(&a);
	add(&a, "a@h/1", "x@h", 9);
	copy(&b, &a);
	orset_remove_name(&b, "x@h");
	add(&a, "a@h/1", "x@h", 9); /* re-added with a fresh dot b has not seen */
	orset_merge(&b, &a);
	ck_assert_ptr_nonnull(orset_find(&b, "x@h"));
	orset_merge(&a, &b);
	ck_assert(same(&a, &b));
	orset_free(&a);
	orset_free(&b);
}
END_TEST

START_TEST(test_restarted_actor_does_not_reuse_dots)
{
	struct orset a, old, fresh;

	/* x@h/1 added y, then x restarted as x@h/2 with an empty set. */
	orset_init(&a);
	add(&a, "x@h/1", "y@h", 2);
	copy(&old, &a);
	orset_remove_name(&a, "y@h");
	orset_init(&fresh);
	add(&fresh, "x@h/2", "y@h", 2);
	orset_merge(&a, &fresh);
	ck_assert_ptr_nonnull(orset_find(&a, "y@h"));
	orset_merge(&a, &old); /* the old incarnation's state does not resurrect */
	ck_assert_uint_eq(a.entries[0].ndots, 1);
	orset_free(&a);
	orset_free(&old);
	orset_free(&fresh);
}
END_TEST

START_TEST(test_same_name_on_two_addresses_are_two_elements)
{
	struct orset a;
	struct node_spec *old = spec("x@h", 1), *now = spec("x@h", 2);

	orset_init(&a);
	orset_add(&a, "a@h/1", old);
	orset_add(&a, "a@h/1", now);
	ck_assert_uint_eq(a.nentries, 2);
	ck_assert(orset_remove(&a, old));
	ck_assert(!orset_contains(&a, old));
	ck_assert(orset_contains(&a, now));
	ck_assert_uint_eq(orset_remove_name(&a, "x@h"), 1);
	node_spec_free(old);
	node_spec_free(now);
	orset_free(&a);
}
END_TEST

/* Pack and unpack through the wire form. */
static void round_trip(const struct orset *in, struct orset *out)
{
	PartisanPeer__Membership pb;
	PartisanPeer__Membership *back;
	const char *why = NULL;
	uint8_t *buf;
	size_t len;

	orset_to_pb(in, &pb);
	len = partisan_peer__membership__get_packed_size(&pb);
	buf = xmalloc(len);
	partisan_peer__membership__pack(&pb, buf);
	orset_pb_release(&pb);
	back = partisan_peer__membership__unpack(NULL, len, buf);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(orset_from_pb(out, back, &why), 0);
	partisan_peer__membership__free_unpacked(back, NULL);
	free(buf);
}

START_TEST(test_pb_round_trip_keeps_the_state)
{
	struct orset a, b;

	orset_init(&a);
	add(&a, "a@h/1", "a@h", 1);
	add(&a, "b@h/3", "b@h", 2);
	add(&a, "a@h/1", "c@h", 3);
	orset_remove_name(&a, "c@h");
	round_trip(&a, &b);
	ck_assert(same(&a, &b));
	ck_assert_uint_eq(b.nclock, 2);
	ck_assert(!orset_merge(&b, &a));
	orset_free(&a);
	orset_free(&b);
}
END_TEST

START_TEST(test_pb_element_without_dots_is_refused)
{
	PartisanPeer__Membership pb = PARTISAN_PEER__MEMBERSHIP__INIT;
	PartisanPeer__MemberEntry e = PARTISAN_PEER__MEMBER_ENTRY__INIT, *ev[1] = {&e};
	PartisanCommon__NodeSpec ns;
	struct node_spec *s = spec("a@h", 1);
	const char *why = NULL;
	struct orset out;

	node_spec_to_pb(s, &ns);
	e.spec = &ns;
	pb.n_entries = 1;
	pb.entries = ev;
	ck_assert_int_eq(orset_from_pb(&out, &pb, &why), -1);
	ck_assert_ptr_nonnull(why);
	ck_assert_uint_eq(out.nentries, 0);
	node_spec_pb_release(&ns);
	node_spec_free(s);
}
END_TEST

START_TEST(test_pb_bad_spec_is_refused)
{
	PartisanPeer__Membership pb = PARTISAN_PEER__MEMBERSHIP__INIT;
	PartisanPeer__MemberEntry e = PARTISAN_PEER__MEMBER_ENTRY__INIT, *ev[1] = {&e};
	PartisanPeer__Dot d = PARTISAN_PEER__DOT__INIT, *dv[1] = {&d};
	PartisanCommon__NodeSpec ns;
	struct node_spec *s = spec("no-at-sign", 1);
	const char *why = NULL;
	struct orset out;

	node_spec_to_pb(s, &ns);
	d.actor = "a@h/1";
	d.counter = 1;
	e.spec = &ns;
	e.n_dots = 1;
	e.dots = dv;
	pb.n_entries = 1;
	pb.entries = ev;
	ck_assert_int_eq(orset_from_pb(&out, &pb, &why), -1);
	ck_assert_ptr_nonnull(why);
	node_spec_pb_release(&ns);
	node_spec_free(s);
}
END_TEST

/* Random adds, removes and merges on three replicas; merging everything in
 * any order gives one state. */
static void random_op(struct orset *r, int who, struct rng *g)
{
	static const char *actors[] = {"a@h/1", "b@h/1", "c@h/1"};
	char name[16];

	snprintf(name, sizeof(name), "n%u@h", (unsigned)rng_below(g, 6));
	switch (rng_below(g, 3)) {
	case 0:
		add(&r[who], actors[who], name, (uint16_t)(1 + rng_below(g, 2)));
		break;
	case 1:
		orset_remove_name(&r[who], name);
		break;
	default:
		orset_merge(&r[who], &r[rng_below(g, 3)]);
		break;
	}
}

START_TEST(test_random_histories_converge_in_any_merge_order)
{
	struct orset r[3], x, y;
	struct rng g;

	rng_seed(&g, 42 + (uint64_t)_i);
	for (int i = 0; i < 3; i++)
		orset_init(&r[i]);
	for (int k = 0; k < 60; k++)
		random_op(r, (int)rng_below(&g, 3), &g);
	merged(&x, &r[0], &r[1]);
	orset_merge(&x, &r[2]);
	merged(&y, &r[2], &r[0]);
	orset_merge(&y, &r[1]);
	ck_assert_msg(same(&x, &y), "seed %d", 42 + _i);
	for (int i = 0; i < 3; i++) {
		orset_merge(&r[i], &x);
		ck_assert(same(&r[i], &x));
		orset_free(&r[i]);
	}
	orset_free(&x);
	orset_free(&y);
}
END_TEST

static size_t events_of(const struct actions *a, enum core_event ev)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].kind == ACT_EVENT && a->v[i].event == ev)
			n++;
	return n;
}

/* A state of n fake members (and b itself) as b would push it. */
static int push_state(void *m, int first, int n, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Membership pb;
	struct rng rng;
	struct core_env env = {.now_ms = 1000, .rng = &rng};
	const char *why = NULL;
	struct orset st;
	char name[64], actor[80];
	int r;

	rng_seed(&rng, 1);
	orset_init(&st);
	add(&st, "b@h/1", "b@h", 1);
	for (int i = first; i < first + n; i++) {
		snprintf(name, sizeof(name), "fake%d@h", i);
		snprintf(actor, sizeof(actor), "%s/1", name);
		add(&st, actor, name, (uint16_t)(1000 + i));
	}
	orset_to_pb(&st, &pb);
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP;
	msg.membership = &pb;
	r = full_mesh_ops.receive(m, "b@h", &msg, &env, out, &why);
	orset_pb_release(&pb);
	orset_free(&st);
	return r;
}

/* max_members: a state over it, or one whose merge would go over it, is
 * refused whole (an event the shell logs), nothing merged, nothing dialled. */
START_TEST(test_full_mesh_refuses_a_state_over_max_members)
{
	struct node_spec *self = spec("a@h", 1);
	struct manager_params p = {.self = self, .actor = "a@h/1", .max_members = 10};
	void *m = full_mesh_ops.create(&p);
	const struct node_spec *const *mem;
	struct actions out;

	actions_init(&out);
	ck_assert_int_eq(push_state(m, 0, 1000, &out), 0);
	ck_assert_uint_eq(events_of(&out, EV_STATE_REFUSED), 1);
	ck_assert_uint_eq(events_of(&out, EV_MEMBER_ADDED), 0);
	for (size_t i = 0; i < out.n; i++)
		ck_assert_int_ne(out.v[i].kind, ACT_CONNECT);
	ck_assert_uint_eq(full_mesh_ops.members(m, &mem), 1);
	actions_clear(&out);

	ck_assert_int_eq(push_state(m, 0, 5, &out), 0); /* 7 members: merged */
	ck_assert_uint_eq(events_of(&out, EV_STATE_REFUSED), 0);
	ck_assert_uint_eq(full_mesh_ops.members(m, &mem), 7);
	actions_clear(&out);

	ck_assert_int_eq(push_state(m, 5, 5, &out), 0); /* would be 12: refused */
	ck_assert_uint_eq(events_of(&out, EV_STATE_REFUSED), 1);
	ck_assert_uint_eq(events_of(&out, EV_MEMBER_ADDED), 0);
	ck_assert_uint_eq(full_mesh_ops.members(m, &mem), 7);
	actions_free(&out);
	full_mesh_ops.destroy(m);
	node_spec_free(self);
}
END_TEST

static Suite *orset_suite(void)
{
	Suite *s = suite_create("orset");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_merge_is_commutative);
	tcase_add_test(tc, test_the_newest_incarnation_is_the_current_spec_whatever_its_port);
	tcase_add_test(tc, test_merge_is_idempotent);
	tcase_add_test(tc, test_merge_is_associative);
	tcase_add_test(tc, test_remove_wins_over_observed_add);
	tcase_add_test(tc, test_concurrent_add_wins_over_remove);
	tcase_add_test(tc, test_restarted_actor_does_not_reuse_dots);
	tcase_add_test(tc, test_same_name_on_two_addresses_are_two_elements);
	tcase_add_test(tc, test_pb_round_trip_keeps_the_state);
	tcase_add_test(tc, test_pb_element_without_dots_is_refused);
	tcase_add_test(tc, test_pb_bad_spec_is_refused);
	tcase_add_test(tc, test_full_mesh_refuses_a_state_over_max_members);
	tcase_add_loop_test(tc, test_random_histories_converge_in_any_merge_order, 0, 50);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(orset_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
