/* test_cores.c: unit tests for the small pure cores and helpers: the ack
 * backend, causal delivery, vector clocks, the string map, the registry,
 * frames and reference URIs. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ack.h"
#include "causal.h"
#include "hold.h"
#include "registry.h"
#include "strmap.h"
#include "vclock.h"
#include "wire.h"

static PartisanPeer__Data *data_new(const char *to, const char *payload)
{
	PartisanPeer__Data *d = calloc(1, sizeof(*d));

	partisan_peer__data__init(d);
	d->from = "partisan:pid:a@h:1";
	d->to = (char *)to;
	d->payload.data = (uint8_t *)payload;
	d->payload.len = strlen(payload);
	return d;
}

/* Unpack the Data of a queued SEND action. */
static PartisanPeer__PeerMsg *sent_msg(const struct actions *a, size_t i)
{
	ck_assert_uint_lt(i, a->n);
	ck_assert_int_eq(a->v[i].kind, ACT_SEND);
	return partisan_peer__peer_msg__unpack(NULL, a->v[i].len, a->v[i].buf);
}

START_TEST(test_ack_keeps_a_message_until_acknowledged_and_retransmits_it)
{
	struct ack_core *a = ack_create(7, 1000);
	struct rng rng;
	struct core_env env = {.now_ms = 0, .rng = &rng};
	struct actions out;
	PartisanPeer__Data *d = data_new("partisan:name:b@h:x", "hi");
	PartisanPeer__PeerMsg *m;
	PartisanPeer__Ack ack = PARTISAN_PEER__ACK__INIT;
	uint64_t id;

	actions_init(&out);
	ack_node_up(a, "b@h", &env, &out);
	ack_track(a, "b@h", d, "default", NULL, 0, 1, &env, &out);
	ck_assert_uint_eq(out.n, 1);
	m = sent_msg(&out, 0);
	ck_assert(m->data->has_ack_id && m->data->ack_epoch == 7);
	id = m->data->ack_id;
	partisan_peer__peer_msg__free_unpacked(m, NULL);
	actions_clear(&out);
	env.now_ms = 999;
	ack_tick(a, &env, &out);
	ck_assert_uint_eq(out.n, 0);
	env.now_ms = 1000;
	ack_tick(a, &env, &out);
	ck_assert_uint_eq(out.n, 1); /* retransmitted once due */
	actions_clear(&out);
	ack.n_ids = 1;
	ack.ids = &id;
	ck_assert_uint_eq(ack_on_ack(a, "b@h", &ack), 1);
	ck_assert_uint_eq(ack_outstanding(a), 0);
	env.now_ms = 5000;
	ack_tick(a, &env, &out);
	ck_assert_uint_eq(out.n, 0);
	actions_free(&out);
	free(d);
	ack_destroy(a);
}
END_TEST

START_TEST(test_ack_receiver_delivers_each_id_once_and_resets_on_a_new_epoch)
{
	struct ack_core *a = ack_create(1, 1000);
	PartisanPeer__Data *d = data_new("partisan:name:b@h:x", "hi");
	struct actions out;

	actions_init(&out);
	d->has_ack_id = d->has_ack_epoch = 1;
	d->ack_epoch = 5;
	d->ack_id = 2;
	ck_assert(ack_on_data(a, "a@h", d));
	ck_assert(!ack_on_data(a, "a@h", d)); /* duplicate */
	d->ack_id = 1;
	ck_assert(ack_on_data(a, "a@h", d)); /* out of order but new */
	ck_assert(!ack_on_data(a, "a@h", d));
	d->ack_epoch = 4;
	d->ack_id = 9;
	ck_assert(!ack_on_data(a, "a@h", d)); /* an older incarnation: dropped */
	d->ack_epoch = 6;
	d->ack_id = 1;
	ck_assert(ack_on_data(a, "a@h", d)); /* the sender restarted */
	ack_flush(a, &out);
	ck_assert_uint_eq(out.n, 1); /* every id acknowledged, duplicates too */
	{
		PartisanPeer__PeerMsg *m = sent_msg(&out, 0);

		ck_assert_int_eq(m->body_case, PARTISAN_PEER__PEER_MSG__BODY_ACK);
		ck_assert_uint_eq(m->ack->n_ids, 6);
		partisan_peer__peer_msg__free_unpacked(m, NULL);
	}
	actions_free(&out);
	free(d);
	ack_destroy(a);
}
END_TEST

START_TEST(test_ack_given_up_is_told_as_noproc_and_settles_the_senders_message)
{
	struct ack_core *rx = ack_create(1, 1000), *tx = ack_create(9, 1000);
	struct rng rng;
	struct core_env env = {.now_ms = 0, .rng = &rng};
	PartisanPeer__Data *d = data_new("partisan:name:b@h:x", "hi");
	PartisanPeer__PeerMsg *m;
	struct ack_loss *loss;
	struct actions out;

	actions_init(&out);
	ack_node_up(tx, "b@h", &env, &out);
	ack_track(tx, "b@h", d, "default", NULL, 0, 42, &env, &out);
	m = sent_msg(&out, 0);
	actions_clear(&out);
	ck_assert(!ack_known(rx, "a@h", m->data));
	ack_give_up(rx, "a@h", m->data); /* nobody held the target in time */
	ck_assert(ack_known(rx, "a@h", m->data));
	ck_assert(!ack_on_data(rx, "a@h", m->data)); /* its retransmission: not delivered */
	partisan_peer__peer_msg__free_unpacked(m, NULL);
	ack_flush(rx, &out);
	m = sent_msg(&out, 0);
	ck_assert_uint_eq(m->ack->n_ids, 0); /* never acknowledged as delivered */
	ck_assert_uint_eq(m->ack->n_noproc, 2);
	ck_assert_uint_eq(ack_on_ack(tx, "a@h", m->ack), 0);
	ck_assert_uint_eq(ack_on_noproc(tx, "b@h", m->ack, &loss), 1);
	ck_assert_uint_eq(loss[0].owner, 42);
	ck_assert_uint_eq(loss[0].count, 1);
	ck_assert_uint_eq(ack_outstanding(tx), 0);
	free(loss);
	ck_assert_uint_eq(ack_on_noproc(tx, "b@h", m->ack, &loss), 0); /* said twice: nothing */
	free(loss);
	partisan_peer__peer_msg__free_unpacked(m, NULL);
	actions_free(&out);
	free(d);
	ack_destroy(rx);
	ack_destroy(tx);
}
END_TEST

struct hold_log {
	char seen[16][16];
	size_t n;
	bool ready;
};

static bool hold_ready(void *arg, const char *to)
{
	return ((struct hold_log *)arg)->ready;
}

static void hold_got(void *arg, const char *from, const uint8_t *buf, size_t len)
{
	struct hold_log *l = arg;

	snprintf(l->seen[l->n++], sizeof(l->seen[0]), "%.*s", (int)len, (const char *)buf);
}

START_TEST(test_hold_keeps_order_refuses_duplicates_and_bounds_bytes)
{
	struct hold *h = hold_create(10);
	struct hold_log delivered = {0}, expired = {0};

	ck_assert(!hold_waiting(h, "a@h", "x"));
	ck_assert_int_eq(hold_push(h, "a@h", "x", 1, 1, (const uint8_t *)"m1", 2, 100), HOLD_KEPT);
	ck_assert_int_eq(hold_push(h, "a@h", "x", 1, 1, (const uint8_t *)"m1", 2, 100), HOLD_DUP);
	ck_assert_int_eq(hold_push(h, "a@h", "x", 1, 2, (const uint8_t *)"m2", 2, 200), HOLD_KEPT);
	ck_assert_int_eq(hold_push(h, "a@h", "y", 1, 3, (const uint8_t *)"long-one", 8, 200),
	                 HOLD_FULL);
	ck_assert(hold_waiting(h, "a@h", "x") && !hold_waiting(h, "a@h", "y"));
	hold_sweep(h, 99, hold_ready, hold_got, hold_got, &expired); /* nothing due */
	ck_assert_uint_eq(expired.n, 0);
	hold_sweep(h, 150, hold_ready, hold_got, hold_got, &expired); /* the first expires */
	ck_assert_uint_eq(expired.n, 1);
	ck_assert_str_eq(expired.seen[0], "m1");
	ck_assert_int_eq(hold_push(h, "a@h", "x", 1, 4, (const uint8_t *)"m4", 2, 300), HOLD_KEPT);
	delivered.ready = true;
	hold_sweep(h, 160, hold_ready, hold_got, hold_got, &delivered); /* its holder came */
	ck_assert_uint_eq(delivered.n, 2);
	ck_assert_str_eq(delivered.seen[0], "m2");
	ck_assert_str_eq(delivered.seen[1], "m4");
	ck_assert_uint_eq(hold_count(h), 0);
	ck_assert(!hold_waiting(h, "a@h", "x"));
	hold_destroy(h);
}
END_TEST

START_TEST(test_ack_waits_for_the_link_and_reports_loss_per_owner_when_the_node_leaves)
{
	struct ack_core *a = ack_create(1, 1000);
	struct rng rng;
	struct core_env env = {.now_ms = 0, .rng = &rng};
	struct actions out;
	PartisanPeer__Data *d = data_new("partisan:name:b@h:x", "hi");
	struct ack_loss *loss;
	size_t n;

	actions_init(&out);
	ack_track(a, "b@h", d, "default", NULL, 0, 1, &env, &out);
	ack_track(a, "b@h", d, "default", NULL, 0, 1, &env, &out);
	ack_track(a, "b@h", d, "default", NULL, 0, 2, &env, &out);
	ck_assert_uint_eq(out.n, 0); /* not up: nothing sent yet */
	ack_node_up(a, "b@h", &env, &out);
	ck_assert_uint_eq(out.n, 3); /* all of it once the link is up */
	n = ack_node_removed(a, "b@h", &loss);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(loss[0].owner == 1 ? loss[0].count : loss[1].count, 2);
	ck_assert_uint_eq(ack_outstanding(a), 0);
	free(loss);
	actions_free(&out);
	free(d);
	ack_destroy(a);
}
END_TEST

struct delivered {
	char what[8][32];
	int n;
};

static void record(void *arg, const char *from, const PartisanPeer__Data *data)
{
	struct delivered *dl = arg;

	snprintf(dl->what[dl->n++], 32, "%.*s", (int)data->payload.len, data->payload.data);
}

/* Pack and unpack a stamped Data, as the wire does. */
static PartisanPeer__Data *wire(PartisanPeer__Data *d)
{
	size_t n = partisan_peer__data__get_packed_size(d);
	uint8_t *buf = malloc(n);
	PartisanPeer__Data *out;

	partisan_peer__data__pack(d, buf);
	out = partisan_peer__data__unpack(NULL, n, buf);
	free(buf);
	return out;
}

START_TEST(test_causal_holds_back_a_message_until_its_causal_past_is_delivered)
{
	/* a sends m1 to c, then m2 to b; b, having delivered m2, sends m3 to c.
	 * c receives m3 before m1 and must deliver m1 first. */
	struct causal_core *a = causal_create("a@h"), *b = causal_create("b@h"),
	                   *c = causal_create("c@h");
	PartisanPeer__Data *m1 = data_new("partisan:name:c@h:x", "m1");
	PartisanPeer__Data *m2 = data_new("partisan:name:b@h:x", "m2");
	PartisanPeer__Data *m3 = data_new("partisan:name:c@h:x", "m3");
	PartisanPeer__Data *w1, *w2, *w3;
	struct causal_stamp *st;
	struct delivered at_b = {0}, at_c = {0};

	m1->causal_label = m2->causal_label = m3->causal_label = "L";
	st = causal_stamp(a, "c@h", m1);
	w1 = wire(m1);
	causal_stamp_release(st);
	st = causal_stamp(a, "b@h", m2);
	w2 = wire(m2);
	causal_stamp_release(st);
	causal_receive(b, "a@h", w2, record, &at_b);
	ck_assert_int_eq(at_b.n, 1);
	st = causal_stamp(b, "c@h", m3);
	w3 = wire(m3);
	causal_stamp_release(st);
	causal_receive(c, "b@h", w3, record, &at_c);
	ck_assert_int_eq(at_c.n, 0);
	ck_assert_uint_eq(causal_buffered(c), 1);
	causal_receive(c, "a@h", w1, record, &at_c);
	ck_assert_int_eq(at_c.n, 2);
	ck_assert_str_eq(at_c.what[0], "m1");
	ck_assert_str_eq(at_c.what[1], "m3");
	ck_assert_uint_eq(causal_buffered(c), 0);
	partisan_peer__data__free_unpacked(w1, NULL);
	partisan_peer__data__free_unpacked(w2, NULL);
	partisan_peer__data__free_unpacked(w3, NULL);
	free(m1), free(m2), free(m3);
	causal_destroy(a), causal_destroy(b), causal_destroy(c);
}
END_TEST

START_TEST(test_causal_labels_are_independent)
{
	struct causal_core *a = causal_create("a@h"), *c = causal_create("c@h");
	PartisanPeer__Data *m1 = data_new("partisan:name:c@h:x", "one");
	PartisanPeer__Data *m2 = data_new("partisan:name:c@h:x", "two");
	PartisanPeer__Data *w1, *w2;
	struct causal_stamp *st;
	struct delivered at_c = {0};

	m1->causal_label = "L1";
	m2->causal_label = "L2";
	st = causal_stamp(a, "c@h", m1);
	w1 = wire(m1);
	causal_stamp_release(st);
	st = causal_stamp(a, "c@h", m2);
	w2 = wire(m2);
	causal_stamp_release(st);
	causal_receive(c, "a@h", w2, record, &at_c); /* other label: no wait */
	ck_assert_int_eq(at_c.n, 1);
	causal_receive(c, "a@h", w1, record, &at_c);
	ck_assert_int_eq(at_c.n, 2);
	partisan_peer__data__free_unpacked(w1, NULL);
	partisan_peer__data__free_unpacked(w2, NULL);
	free(m1), free(m2);
	causal_destroy(a), causal_destroy(c);
}
END_TEST

START_TEST(test_vclock_merge_is_pointwise_max_and_leq_is_descent)
{
	struct vclock x, y;

	vclock_init(&x);
	vclock_init(&y);
	vclock_increment(&x, "a");
	vclock_increment(&x, "a");
	vclock_increment(&y, "b");
	ck_assert(!vclock_leq(&x, &y));
	ck_assert(!vclock_leq(&y, &x));
	vclock_merge(&y, &x);
	ck_assert(vclock_leq(&x, &y));
	ck_assert_uint_eq(vclock_get(&y, "a"), 2);
	ck_assert_uint_eq(vclock_get(&y, "b"), 1);
	ck_assert_uint_eq(vclock_get(&y, "zz"), 0);
	vclock_free(&x);
	vclock_free(&y);
}
END_TEST

START_TEST(test_strmap_survives_growth_and_deletes_while_iterating)
{
	struct strmap m;
	char key[32];
	size_t seen = 0;
	const char *k;
	void *v;

	strmap_init(&m);
	for (uintptr_t i = 1; i <= 1000; i++) {
		snprintf(key, sizeof(key), "k%lu", (unsigned long)i);
		ck_assert_ptr_null(strmap_put(&m, key, (void *)i));
	}
	ck_assert_uint_eq(m.len, 1000);
	for (size_t i = 0; strmap_next(&m, &i, &k, &v);)
		if ((uintptr_t)v % 2 == 0)
			strmap_del(&m, k);
	ck_assert_uint_eq(m.len, 500);
	for (size_t i = 0; strmap_next(&m, &i, &k, &v);)
		seen++, ck_assert((uintptr_t)v % 2 == 1);
	ck_assert_uint_eq(seen, 500);
	ck_assert_ptr_eq(strmap_get(&m, "k999"), (void *)999);
	ck_assert_ptr_null(strmap_get(&m, "k998"));
	ck_assert_ptr_eq(strmap_put(&m, "k999", (void *)5), (void *)999);
	strmap_free(&m);
}
END_TEST

static void count_refs(void *arg, const char *node, const char *name, const char *ref)
{
	(*(int *)arg)++;
}

static int registry_names(struct registry *r, const char *name)
{
	int count = 0;

	registry_each(r, name, count_refs, &count);
	return count;
}

/* A record of node at (epoch, version) with names svc.. (n of them). */
static int merge(struct registry *r, const char *node, uint64_t epoch, uint64_t version, bool gone,
                 size_t n, uint64_t now)
{
	PartisanPeer__RegistryRecord rec = PARTISAN_PEER__REGISTRY_RECORD__INIT;
	PartisanPeer__RegistryName names[4], *v[4];
	const char *why = NULL;

	for (size_t i = 0; i < n; i++) {
		partisan_peer__registry_name__init(&names[i]);
		names[i].name = i ? "db" : "svc";
		names[i].ref = "partisan:pid:b@h:1";
		v[i] = &names[i];
	}
	rec.node = (char *)node;
	rec.epoch = epoch;
	rec.version = version;
	rec.has_gone = rec.gone = gone;
	rec.n_names = n;
	rec.names = v;
	return registry_merge(r, &rec, now, &why);
}

START_TEST(test_registry_keeps_the_newest_record_and_a_tombstone_wins_its_version)
{
	struct registry *r = registry_create();
	const PartisanPeer__RegistryRecord *tomb;
	PartisanPeer__Registry all;

	ck_assert_int_eq(merge(r, "b@h", 5, 2, false, 2, 0), 1);
	ck_assert_int_eq(merge(r, "c@h", 7, 1, false, 1, 0), 1);
	ck_assert_int_eq(registry_names(r, "svc"), 2);
	ck_assert_int_eq(merge(r, "b@h", 5, 1, false, 0, 0), 0); /* older: ignored */
	ck_assert_int_eq(merge(r, "b@h", 5, 2, false, 1, 0), 0); /* the same version */
	ck_assert_int_eq(registry_names(r, ""), 3);
	ck_assert_str_eq(registry_find(r, "b@h", "db"), "partisan:pid:b@h:1");
	/* b fails: a tombstone at its version, which the live record cannot undo. */
	ck_assert(registry_gone(r, "b@h", 100, &tomb));
	ck_assert(tomb->gone && tomb->version == 2 && tomb->epoch == 5);
	ck_assert(!registry_gone(r, "b@h", 100, &tomb));
	ck_assert_int_eq(merge(r, "b@h", 5, 2, false, 2, 0), 0);
	ck_assert_ptr_null(registry_find(r, "b@h", "db"));
	/* b was alive after all: it answers with a higher version; or it restarted. */
	ck_assert_int_eq(merge(r, "b@h", 5, 3, false, 1, 200), 1);
	ck_assert_int_eq(registry_names(r, "svc"), 2);
	ck_assert_int_eq(merge(r, "b@h", 6, 0, false, 0, 200), 1);
	ck_assert_int_eq(registry_names(r, ""), 1);
	/* A tombstone received is merged, and forgotten after REGISTRY_TOMB_MS. */
	ck_assert_int_eq(merge(r, "c@h", 7, 1, true, 0, 300), 1);
	ck_assert_int_eq(registry_names(r, ""), 0);
	registry_to_pb(r, NULL, &all);
	ck_assert_uint_eq(all.n_records, 2);
	registry_pb_release(&all);
	registry_tick(r, 300 + REGISTRY_TOMB_MS - 1);
	ck_assert_uint_eq(registry_count(r), 2);
	registry_tick(r, 300 + REGISTRY_TOMB_MS);
	ck_assert_uint_eq(registry_count(r), 1);
	ck_assert_int_eq(merge(r, "bad name", 1, 1, false, 0, 0), -1);
	ck_assert_int_eq(merge(r, "d@h", 1, 1, true, 1, 0), -1); /* a tombstone with names */
	registry_destroy(r);
}
END_TEST

START_TEST(test_frame_length_is_checked_before_anything_is_allocated)
{
	uint8_t hdr[4];
	uint32_t len;

	frame_put_header(hdr, 1000);
	ck_assert_int_eq(frame_peek(hdr, 3, 4096, &len), 0);
	ck_assert_int_eq(frame_peek(hdr, 4, 4096, &len), 1);
	ck_assert_uint_eq(len, 1000);
	ck_assert_int_eq(frame_peek(hdr, 4, 999, &len), -1);
}
END_TEST

START_TEST(test_ref_uris_parse_and_bad_ones_are_refused)
{
	struct ref r;
	char buf[300];

	ck_assert_int_eq(ref_parse("partisan:pid:a@127.0.0.1:42", &r), 0);
	ck_assert_int_eq(r.kind, REF_PID);
	ck_assert_str_eq(r.node, "a@127.0.0.1");
	ck_assert_str_eq(r.id, "42");
	ck_assert_int_gt(ref_format(&r, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "partisan:pid:a@127.0.0.1:42");
	ck_assert_int_eq(ref_parse("partisan:name:b@::1:echo", &r), 0);
	ck_assert_str_eq(r.node, "b@::1");
	ck_assert_str_eq(r.id, "echo");
	ck_assert_int_eq(ref_parse("partisan:pid:a@h:notanumber", &r), -1);
	ck_assert_int_eq(ref_parse("partisan:pid:nohost:1", &r), -1);
	ck_assert_int_eq(ref_parse("partisan:bogus:a@h:1", &r), -1);
	ck_assert_int_eq(ref_parse("erlang:pid:a@h:1", &r), -1);
	ck_assert_int_eq(ref_parse("partisan:name:a@h:", &r), -1);
	ck_assert_int_eq(ref_make(REF_REF, "a@h", "7", buf, 8), -1); /* does not fit */
}
END_TEST

static Suite *cores_suite(void)
{
	Suite *s = suite_create("cores");
	TCase *t = tcase_create("cores");

	tcase_add_test(t, test_ack_keeps_a_message_until_acknowledged_and_retransmits_it);
	tcase_add_test(t, test_ack_receiver_delivers_each_id_once_and_resets_on_a_new_epoch);
	tcase_add_test(t, test_ack_given_up_is_told_as_noproc_and_settles_the_senders_message);
	tcase_add_test(t, test_hold_keeps_order_refuses_duplicates_and_bounds_bytes);
	tcase_add_test(t,
	               test_ack_waits_for_the_link_and_reports_loss_per_owner_when_the_node_leaves);
	tcase_add_test(t, test_causal_holds_back_a_message_until_its_causal_past_is_delivered);
	tcase_add_test(t, test_causal_labels_are_independent);
	tcase_add_test(t, test_vclock_merge_is_pointwise_max_and_leq_is_descent);
	tcase_add_test(t, test_strmap_survives_growth_and_deletes_while_iterating);
	tcase_add_test(t, test_registry_keeps_the_newest_record_and_a_tombstone_wins_its_version);
	tcase_add_test(t, test_frame_length_is_checked_before_anything_is_allocated);
	tcase_add_test(t, test_ref_uris_parse_and_bad_ones_are_refused);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(cores_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
