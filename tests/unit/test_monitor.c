/* test_monitor.c: unit tests for the monitor tables (daemon/core/monitor.c):
 * one DOWN per monitor with the right reason, for the right party, and
 * nothing left behind when sessions and nodes go. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

/* Sessions 1, 2, 3 live here; a@h and b@h are other nodes. */

static const struct mon_note *only_note(const struct mon_notes *l)
{
	ck_assert_uint_eq(l->n, 1);
	return &l->v[0];
}

START_TEST(test_local_monitor_fires_once_to_the_watcher_with_the_close_reason)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	const struct mon_note *n;

	mon_notes_init(&l);
	monitors_add_local(t, "partisan:ref:me@h:1", 1, 2, "partisan:name:me@h:worker");
	monitors_add_local(t, "partisan:ref:me@h:2", 3, 2, "partisan:pid:me@h:2");
	ck_assert_uint_eq(monitors_count(t), 2);

	monitors_session_gone(t, 2, "killed", &l);
	ck_assert_uint_eq(l.n, 2);
	for (size_t i = 0; i < l.n; i++) {
		n = &l.v[i];
		ck_assert_int_eq(n->kind, MON_TELL_SESSION);
		ck_assert_str_eq(n->reason, "killed");
		if (n->session == 1) {
			ck_assert_str_eq(n->mref, "partisan:ref:me@h:1");
			ck_assert_str_eq(n->target, "partisan:name:me@h:worker");
		} else {
			ck_assert_uint_eq(n->session, 3);
			ck_assert_str_eq(n->target, "partisan:pid:me@h:2");
		}
	}
	mon_notes_clear(&l);
	ck_assert_uint_eq(monitors_count(t), 0);

	/* Gone means gone: the same session going again says nothing. */
	monitors_session_gone(t, 2, "normal", &l);
	ck_assert_uint_eq(l.n, 0);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_a_watcher_that_goes_first_cancels_its_monitors_silently_or_remotely)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	const struct mon_note *n;

	mon_notes_init(&l);
	monitors_add_local(t, "partisan:ref:me@h:1", 1, 2, "partisan:pid:me@h:2");
	monitors_add_out(t, "partisan:ref:me@h:2", 1, "partisan:name:a@h:db", "a@h");
	monitors_session_gone(t, 1, "normal", &l);
	/* The local target hears nothing; the remote node is told to forget. */
	n = only_note(&l);
	ck_assert_int_eq(n->kind, MON_CANCEL_NODE);
	ck_assert_str_eq(n->node, "a@h");
	ck_assert_str_eq(n->mref, "partisan:ref:me@h:2");
	mon_notes_clear(&l);
	ck_assert_uint_eq(monitors_count(t), 0);

	/* The target going later says nothing either. */
	monitors_session_gone(t, 2, "killed", &l);
	ck_assert_uint_eq(l.n, 0);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_a_session_monitoring_itself_gets_no_down_when_it_goes)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;

	mon_notes_init(&l);
	monitors_add_local(t, "partisan:ref:me@h:1", 1, 1, "partisan:pid:me@h:1");
	monitors_session_gone(t, 1, "normal", &l);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_uint_eq(monitors_count(t), 0);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_an_endpoint_watched_from_another_node_tells_that_node)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	const struct mon_note *n;

	mon_notes_init(&l);
	monitors_add_in(t, "partisan:ref:a@h:9", 2, "partisan:name:me@h:worker", "a@h");
	monitors_session_gone(t, 2, "normal", &l);
	n = only_note(&l);
	ck_assert_int_eq(n->kind, MON_TELL_NODE);
	ck_assert_str_eq(n->node, "a@h");
	ck_assert_str_eq(n->mref, "partisan:ref:a@h:9");
	ck_assert_str_eq(n->target, "partisan:name:me@h:worker");
	ck_assert_str_eq(n->reason, "normal");
	mon_notes_clear(&l);
	ck_assert_uint_eq(monitors_count(t), 0);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_a_remote_down_reaches_the_watcher_once_and_only_from_the_target_node)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	const struct mon_note *n;

	mon_notes_init(&l);
	monitors_add_out(t, "partisan:ref:me@h:5", 3, "partisan:pid:a@h:4", "a@h");
	/* Another node cannot fire it. */
	monitors_peer_down(t, "partisan:ref:me@h:5", "b@h", "killed", &l);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_uint_eq(monitors_count(t), 1);

	monitors_peer_down(t, "partisan:ref:me@h:5", "a@h", "killed", &l);
	n = only_note(&l);
	ck_assert_int_eq(n->kind, MON_TELL_SESSION);
	ck_assert_uint_eq(n->session, 3);
	ck_assert_str_eq(n->target, "partisan:pid:a@h:4");
	ck_assert_str_eq(n->reason, "killed");
	mon_notes_clear(&l);

	/* A repeat is ignored: exactly one DOWN. */
	monitors_peer_down(t, "partisan:ref:me@h:5", "a@h", "killed", &l);
	ck_assert_uint_eq(l.n, 0);
	monitors_node_down(t, "a@h", "connection closed", &l);
	ck_assert_uint_eq(l.n, 0);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_node_loss_fires_noconnection_and_forgets_that_nodes_watchers)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	size_t tells = 0, told_node = 0;

	mon_notes_init(&l);
	monitors_add_out(t, "partisan:ref:me@h:1", 1, "partisan:pid:a@h:4", "a@h");
	monitors_add_out(t, "partisan:ref:me@h:2", 2, "partisan:name:a@h:db", "a@h");
	monitors_add_out(t, "partisan:ref:me@h:3", 2, "partisan:name:b@h:db", "b@h");
	monitors_add_in(t, "partisan:ref:a@h:7", 3, "partisan:pid:me@h:3", "a@h");
	monitors_add_local(t, "partisan:ref:me@h:4", 1, 3, "partisan:pid:me@h:3");

	monitors_node_down(t, "a@h", "connection closed", &l);
	for (size_t i = 0; i < l.n; i++) {
		ck_assert_str_eq(l.v[i].reason, "noconnection");
		if (l.v[i].kind == MON_TELL_NODE) {
			/* a@h's monitor of our session 3: a@h is told, should it
			 * still hear us (a loss on our side only). */
			ck_assert_str_eq(l.v[i].node, "a@h");
			ck_assert_str_eq(l.v[i].mref, "partisan:ref:a@h:7");
			ck_assert_str_eq(l.v[i].target, "partisan:pid:me@h:3");
			told_node++;
			continue;
		}
		ck_assert_int_eq(l.v[i].kind, MON_TELL_SESSION);
		ck_assert(strstr(l.v[i].target, ":a@h:") != NULL);
		tells++;
	}
	ck_assert_uint_eq(tells, 2);
	ck_assert_uint_eq(told_node, 1);
	mon_notes_clear(&l);
	/* b@h's and the local monitor stay; a@h's watcher is forgotten, so the
	 * session it watched going later tells nobody there. */
	ck_assert_uint_eq(monitors_count(t), 2);
	monitors_session_gone(t, 3, "normal", &l);
	ck_assert_uint_eq(only_note(&l)->session, 1);
	ck_assert_int_eq(only_note(&l)->kind, MON_TELL_SESSION);
	mon_notes_clear(&l);
	ck_assert_uint_eq(monitors_count(t), 1);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_demonitor_takes_only_the_watchers_own_monitor)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;

	mon_notes_init(&l);
	monitors_add_local(t, "partisan:ref:me@h:1", 1, 2, "partisan:pid:me@h:2");
	monitors_add_out(t, "partisan:ref:me@h:2", 1, "partisan:pid:a@h:4", "a@h");
	monitors_add_in(t, "partisan:ref:a@h:3", 1, "partisan:pid:me@h:1", "a@h");

	ck_assert(!monitors_demonitor(t, "partisan:ref:me@h:1", 2, &l)); /* not its own */
	ck_assert(!monitors_demonitor(t, "partisan:ref:a@h:3", 1, &l));  /* a@h's */
	ck_assert(!monitors_demonitor(t, "partisan:ref:me@h:99", 1, &l));
	ck_assert_uint_eq(l.n, 0);
	ck_assert_uint_eq(monitors_count(t), 3);

	ck_assert(monitors_demonitor(t, "partisan:ref:me@h:1", 1, &l));
	ck_assert_uint_eq(l.n, 0);
	ck_assert(monitors_demonitor(t, "partisan:ref:me@h:2", 1, &l));
	ck_assert_int_eq(only_note(&l)->kind, MON_CANCEL_NODE);
	ck_assert_str_eq(only_note(&l)->node, "a@h");
	mon_notes_clear(&l);

	/* Only a@h itself may cancel what it holds here. */
	monitors_peer_demonitor(t, "partisan:ref:a@h:3", "b@h");
	ck_assert_uint_eq(monitors_count(t), 1);
	monitors_peer_demonitor(t, "partisan:ref:a@h:3", "a@h");
	ck_assert_uint_eq(monitors_count(t), 0);

	/* After a demonitor the target going says nothing. */
	monitors_session_gone(t, 2, "killed", &l);
	ck_assert_uint_eq(l.n, 0);
	monitors_destroy(t);
}
END_TEST

START_TEST(test_node_monitors_give_one_nodedown_per_session_and_are_then_gone)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	bool seen1 = false, seen2 = false;

	mon_notes_init(&l);
	monitors_watch_node(t, 1, "a@h", true);
	monitors_watch_node(t, 1, "a@h", true); /* one monitor per session, as Partisan */
	monitors_watch_node(t, 2, "a@h", true);
	monitors_watch_node(t, 3, "a@h", true);
	monitors_watch_node(t, 3, "a@h", false);
	monitors_watch_node(t, 2, "b@h", true);
	ck_assert_uint_eq(monitors_node_watches(t), 3);

	monitors_node_down(t, "a@h", "connection closed", &l);
	ck_assert_uint_eq(l.n, 2);
	for (size_t i = 0; i < l.n; i++) {
		ck_assert_int_eq(l.v[i].kind, MON_NODEDOWN);
		ck_assert_str_eq(l.v[i].node, "a@h");
		ck_assert_str_eq(l.v[i].reason, "connection closed");
		seen1 |= l.v[i].session == 1;
		seen2 |= l.v[i].session == 2;
	}
	ck_assert(seen1 && seen2);
	mon_notes_clear(&l);
	ck_assert_uint_eq(monitors_node_watches(t), 1);

	/* Fired monitors are gone: a second loss says nothing. */
	monitors_node_down(t, "a@h", "connection closed", &l);
	ck_assert_uint_eq(l.n, 0);
	/* A session going drops its node monitors. */
	monitors_session_gone(t, 2, "normal", &l);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_uint_eq(monitors_node_watches(t), 0);
	monitors_node_down(t, "b@h", "connection closed", &l);
	ck_assert_uint_eq(l.n, 0);
	monitors_destroy(t);
}
END_TEST

/* Many sessions and nodes come and go at random; whatever happens, each
 * monitor fires at most once, and once everything is gone the table is
 * empty (no leak: ASan and valgrind check the memory side). */
START_TEST(test_churn_leaves_nothing_behind)
{
	struct monitors *t = monitors_create();
	struct mon_notes l;
	static const char *nodes[] = {"a@h", "b@h", "c@h"};
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	char mref[64], target[64];
	unsigned fired[2000] = {0};

	mon_notes_init(&l);
	for (unsigned i = 0; i < 2000; i++) {
		uint64_t r;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		r = x;
		snprintf(mref, sizeof(mref), "partisan:ref:me@h:%u", i);
		snprintf(target, sizeof(target), "partisan:pid:me@h:%u", (unsigned)(r % 20));
		switch (r % 3) {
		case 0:
			monitors_add_local(t, mref, r % 17, r % 20, target);
			break;
		case 1:
			monitors_add_out(t, mref, r % 17, target, nodes[r % 3]);
			break;
		default:
			monitors_add_in(t, mref, r % 20, target, nodes[(r >> 8) % 3]);
		}
		monitors_watch_node(t, r % 17, nodes[(r >> 16) % 3], true);
		if (r % 7 == 0)
			monitors_session_gone(t, (r >> 20) % 20, "normal", &l);
		if (r % 29 == 0)
			monitors_node_down(t, nodes[(r >> 24) % 3], "connection closed", &l);
		for (size_t j = 0; j < l.n; j++) {
			unsigned id;

			if (l.v[j].mref && sscanf(l.v[j].mref, "partisan:ref:me@h:%u", &id) == 1 &&
			    l.v[j].kind == MON_TELL_SESSION)
				ck_assert_uint_eq(++fired[id], 1);
		}
		mon_notes_clear(&l);
	}
	for (uint64_t s = 0; s < 20; s++)
		monitors_session_gone(t, s, "normal", &l);
	for (size_t i = 0; i < 3; i++)
		monitors_node_down(t, nodes[i], "connection closed", &l);
	mon_notes_clear(&l);
	ck_assert_uint_eq(monitors_count(t), 0);
	ck_assert_uint_eq(monitors_node_watches(t), 0);
	monitors_destroy(t);
}
END_TEST

static Suite *monitor_suite(void)
{
	Suite *s = suite_create("monitor");
	TCase *t = tcase_create("monitor");

	tcase_add_test(t, test_local_monitor_fires_once_to_the_watcher_with_the_close_reason);
	tcase_add_test(t, test_a_watcher_that_goes_first_cancels_its_monitors_silently_or_remotely);
	tcase_add_test(t, test_a_session_monitoring_itself_gets_no_down_when_it_goes);
	tcase_add_test(t, test_an_endpoint_watched_from_another_node_tells_that_node);
	tcase_add_test(t,
	               test_a_remote_down_reaches_the_watcher_once_and_only_from_the_target_node);
	tcase_add_test(t, test_node_loss_fires_noconnection_and_forgets_that_nodes_watchers);
	tcase_add_test(t, test_demonitor_takes_only_the_watchers_own_monitor);
	tcase_add_test(t, test_node_monitors_give_one_nodedown_per_session_and_are_then_gone);
	tcase_add_test(t, test_churn_leaves_nothing_behind);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(monitor_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
