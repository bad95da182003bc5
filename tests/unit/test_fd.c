/* test_fd.c: unit tests for the failure detector (daemon/core/fd.c): who
 * watches whom on the ring, heartbeat rounds, timeouts, Silent reports and
 * the second-watcher rule, suspicion, unread bytes as life, forgiveness. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fd.h"

#define TIMEOUT 2000 /* failure_timeout_ms; rounds of 1000 ms */

/* A detector for self with nodes names[0..n) up at time 0. */
static struct fd *fd_with(const char *self, const char *const *names, size_t n, bool ring)
{
	struct fd *fd = fd_create(self, TIMEOUT, ring);

	for (size_t i = 0; i < n; i++)
		fd_node_up(fd, fd_node(fd, names[i]), 0);
	return fd;
}

static const char *const ten[] = {"a", "b", "c", "d", "f", "g", "h", "i", "j", "k"};

/* Tick at now and return the actions (out cleared first). */
static struct fd_actions *tick(struct fd *fd, uint64_t now, struct fd_actions *out)
{
	fd_actions_clear(out);
	fd_tick(fd, now, out);
	return out;
}

static size_t count_kind(const struct fd_actions *a, enum fd_action_kind k, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		n += a->v[i].kind == k && (name == NULL || strcmp(a->v[i].name, name) == 0);
	return n;
}

/* Every node of ten but except was heard at now. */
static void keep_alive(struct fd *fd, const char *except, uint64_t now)
{
	for (size_t i = 0; i < 10; i++)
		if (strcmp(ten[i], except) != 0)
			fd_heard(fd_find(fd, ten[i]), now);
}

static bool watched(struct fd *fd, const char *name)
{
	return fd_watched(fd_find(fd, name));
}

START_TEST(test_small_ring_watches_everyone)
{
	struct fd *fd = fd_with("e", ten, 4, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	/* Five nodes in all (2 * FD_WATCH + 1): everyone is a neighbour. */
	ck_assert_uint_eq(fd_nwatched(fd), 4);
	for (size_t i = 0; i < 4; i++)
		ck_assert(watched(fd, ten[i]));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_big_full_mesh_ring_watches_two_each_side)
{
	struct fd *fd = fd_with("e", ten, 10, true);
	struct fd *first = fd_with("0", ten, 10, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	ck_assert_uint_eq(fd_nwatched(fd), 4);
	ck_assert(watched(fd, "c") && watched(fd, "d") && watched(fd, "f") && watched(fd, "g"));
	ck_assert(!watched(fd, "a") && !watched(fd, "b") && !watched(fd, "h") && !watched(fd, "k"));
	/* The ring wraps: "0" sorts first, so its left neighbours are the last. */
	tick(first, 100, &out);
	ck_assert_uint_eq(fd_nwatched(first), 4);
	ck_assert(watched(first, "a") && watched(first, "b") && watched(first, "j") &&
	          watched(first, "k"));
	fd_actions_free(&out);
	fd_destroy(fd);
	fd_destroy(first);
}
END_TEST

START_TEST(test_not_full_mesh_watches_every_up_node)
{
	struct fd *fd = fd_with("e", ten, 10, false);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	ck_assert_uint_eq(fd_nwatched(fd), 10);
	/* A node going down leaves the watch at the next tick. */
	fd_node_down(fd, fd_find(fd, "a"));
	tick(fd, 200, &out);
	ck_assert_uint_eq(fd_nwatched(fd), 9);
	ck_assert(!watched(fd, "a"));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_ring_moves_when_a_neighbour_goes_down)
{
	struct fd *fd = fd_with("e", ten, 10, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	ck_assert(!watched(fd, "h"));
	fd_node_down(fd, fd_find(fd, "g"));
	tick(fd, 200, &out);
	ck_assert(watched(fd, "h") && !watched(fd, "g"));
	ck_assert_uint_eq(fd_nwatched(fd), 4);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_heartbeat_only_when_nothing_was_sent_this_round)
{
	static const char *const two[] = {"a", "b"};
	struct fd *fd = fd_with("e", two, 2, true);
	struct fd_actions out;

	fd_actions_init(&out);
	ck_assert_uint_eq(fd_round_ms(fd), 1000);
	ck_assert(!fd_tick(fd, 500, &out)); /* round 0 began before us: none */
	ck_assert_uint_eq(out.n, 0);
	fd_sent(fd_find(fd, "a"), 1000); /* something of ours went to a */
	fd_heard(fd_find(fd, "a"), 1000);
	fd_heard(fd_find(fd, "b"), 1000);
	fd_actions_clear(&out);
	ck_assert(fd_tick(fd, 1000, &out)); /* round 1 begins */
	ck_assert_uint_eq(count_kind(&out, FD_HEARTBEAT, "a"), 0);
	ck_assert_uint_eq(count_kind(&out, FD_HEARTBEAT, "b"), 1);
	ck_assert_uint_eq(out.n, 1);
	/* The rest of the round: no more heartbeats. */
	fd_actions_clear(&out);
	ck_assert(!fd_tick(fd, 1500, &out));
	ck_assert_uint_eq(out.n, 0);
	/* Next round: both, as nothing went out since. */
	fd_heard(fd_find(fd, "a"), 1900);
	fd_heard(fd_find(fd, "b"), 1900);
	ck_assert_uint_eq(tick(fd, 2050, &out)->n, 2);
	ck_assert_uint_eq(count_kind(&out, FD_HEARTBEAT, NULL), 2);
	ck_assert_uint_eq(fd_stats(fd)->heartbeats, 3);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_heartbeat_request_answered_unless_we_sent_this_round)
{
	static const char *const one[] = {"a"};
	struct fd *fd = fd_with("e", one, 1, true);
	struct fd_node *a = fd_find(fd, "a");
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 1000, &out); /* round 1: [1000, 2000) */
	fd_sent(a, 900);
	ck_assert(fd_heartbeat_asked(fd, a));
	fd_sent(a, 1200);
	ck_assert(!fd_heartbeat_asked(fd, a));
	ck_assert_uint_eq(fd_stats(fd)->replies, 1);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_watched_node_silent_past_the_timeout_is_down_and_told)
{
	static const char *const two[] = {"a", "b"};
	struct fd *fd = fd_with("e", two, 2, true);
	struct fd_actions out;
	const struct fd_action *a;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	fd_heard(fd_find(fd, "a"), 500);
	fd_heard(fd_find(fd, "b"), 2400);
	/* Exactly the timeout is not past it. */
	ck_assert_uint_eq(count_kind(tick(fd, 2500, &out), FD_DOWN, NULL), 0);
	tick(fd, 2600, &out);
	ck_assert_uint_eq(out.n, 2);
	a = &out.v[0];
	ck_assert_int_eq(a->kind, FD_DOWN);
	ck_assert_str_eq(a->name, "a");
	ck_assert_int_eq(a->reason, FD_TIMEOUT);
	ck_assert_uint_eq(a->silent_ms, 2100);
	a = &out.v[1];
	ck_assert_int_eq(a->kind, FD_SILENT_TELL);
	ck_assert_str_eq(a->name, "a");
	ck_assert_uint_eq(a->silent_ms, 2100);
	ck_assert(!fd_is_up(fd_find(fd, "a")));
	ck_assert(fd_is_up(fd_find(fd, "b")));
	ck_assert_uint_eq(fd_stats(fd)->timeouts, 1);
	/* Down once: no second verdict. */
	ck_assert_uint_eq(count_kind(tick(fd, 2700, &out), FD_DOWN, "a"), 0);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_unwatched_node_is_not_timed_out)
{
	struct fd *fd = fd_with("e", ten, 10, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	for (size_t i = 0; i < 10; i++)
		if (watched(fd, ten[i]))
			fd_heard(fd_find(fd, ten[i]), 9000);
	/* a is no neighbour of e: its silence is its watchers' to see. */
	tick(fd, 9100, &out);
	ck_assert_uint_eq(count_kind(&out, FD_DOWN, NULL), 0);
	ck_assert(fd_is_up(fd_find(fd, "a")));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_newly_watched_node_gets_a_whole_timeout)
{
	struct fd *fd = fd_with("e", ten, 10, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	fd_node_down(fd, fd_find(fd, "g"));
	/* h, silent since 0 but never watched, becomes a neighbour at 5000. */
	tick(fd, 5000, &out);
	ck_assert(watched(fd, "h"));
	ck_assert_uint_eq(count_kind(&out, FD_DOWN, "h"), 0);
	ck_assert_uint_eq(count_kind(tick(fd, 7000, &out), FD_DOWN, "h"), 0);
	ck_assert_uint_eq(count_kind(tick(fd, 7100, &out), FD_DOWN, "h"), 1);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

/* The grace a newly watched node gets is no hearing of it: two watchers
 * saying it is silent are believed (a node next to two crashed ones in a
 * full mesh: when the first is timed out the ring moves onto the second,
 * whose other watchers' reports then arrive). */
START_TEST(test_newly_watched_grace_is_not_hearing_it)
{
	struct fd *fd = fd_with("e", ten, 10, true);
	struct fd_node *h = fd_find(fd, "h");
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	keep_alive(fd, "h", 4900); /* h silent since 0 */
	fd_node_down(fd, fd_find(fd, "g"));
	tick(fd, 5000, &out);
	ck_assert(watched(fd, "h"));
	fd_silent_report(fd, fd_find(fd, "i"), h, 5000, false, 5005, &out);
	fd_silent_report(fd, fd_find(fd, "j"), h, 5000, false, 5008, &out);
	ck_assert_uint_eq(count_kind(&out, FD_SUSPECT, "h"), 0);
	ck_assert_uint_eq(count_kind(&out, FD_DOWN, "h"), 1);
	ck_assert_uint_eq(out.v[out.n - 1].heard_ago_ms, 5008);
	ck_assert(!fd_is_up(h));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

/* Big ring, self e: a is not watched, b and k are two of a's watchers. */
static struct fd *fd_ring_for_silent(void)
{
	struct fd *fd = fd_with("e", ten, 10, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	fd_actions_free(&out);
	return fd;
}

START_TEST(test_one_watcher_saying_silent_is_not_enough)
{
	struct fd *fd = fd_ring_for_silent();
	struct fd_node *a = fd_find(fd, "a"), *b = fd_find(fd, "b");
	struct fd_actions out;

	fd_actions_init(&out);
	fd_silent_report(fd, b, a, 2100, false, 5000, &out);
	ck_assert_uint_eq(out.n, 0);
	/* The same watcher again is still one watcher. */
	fd_silent_report(fd, b, a, 2200, false, 5100, &out);
	ck_assert_uint_eq(out.n, 0);
	ck_assert(fd_is_up(a));
	/* Nor is a report about the reporter itself, or a node not up. */
	fd_silent_report(fd, b, b, 2100, false, 5200, &out);
	fd_node_down(fd, fd_find(fd, "c"));
	fd_silent_report(fd, b, fd_find(fd, "c"), 2100, false, 5200, &out);
	fd_silent_report(fd, fd_find(fd, "k"), fd_find(fd, "c"), 2100, false, 5300, &out);
	ck_assert_uint_eq(out.n, 0);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_second_watcher_within_the_timeout_takes_it_down)
{
	struct fd *fd = fd_ring_for_silent();
	struct fd_node *a = fd_find(fd, "a");
	struct fd_actions out;

	fd_actions_init(&out);
	fd_silent_report(fd, fd_find(fd, "b"), a, 2100, false, 5000, &out);
	fd_silent_report(fd, fd_find(fd, "k"), a, 2150, false, 5050, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_int_eq(out.v[0].kind, FD_DOWN);
	ck_assert_int_eq(out.v[0].reason, FD_SILENT);
	ck_assert_str_eq(out.v[0].name, "a");
	ck_assert_str_eq(out.v[0].by, "k");
	ck_assert_uint_eq(out.v[0].silent_ms, 2150);
	ck_assert_uint_eq(out.v[0].heard_ago_ms, 5050);
	ck_assert(!fd_is_up(a));
	ck_assert_uint_eq(fd_stats(fd)->silent, 1);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_second_watcher_after_the_timeout_counts_as_a_first)
{
	struct fd *fd = fd_ring_for_silent();
	struct fd_node *a = fd_find(fd, "a");
	struct fd_actions out;

	fd_actions_init(&out);
	fd_silent_report(fd, fd_find(fd, "b"), a, 2100, false, 5000, &out);
	fd_silent_report(fd, fd_find(fd, "k"), a, 2100, false, 7001, &out);
	ck_assert_uint_eq(out.n, 0);
	ck_assert(fd_is_up(a));
	/* ... and a third, from b again, is then the second. */
	fd_silent_report(fd, fd_find(fd, "b"), a, 2100, false, 7100, &out);
	ck_assert_uint_eq(count_kind(&out, FD_DOWN, "a"), 1);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_heard_lately_turns_two_reports_into_a_suspicion)
{
	struct fd *fd = fd_ring_for_silent();
	struct fd_node *a = fd_find(fd, "a");
	struct fd_actions out;
	uint64_t since = 0;

	fd_actions_init(&out);
	fd_heard(a, 4000); /* 1000 ms ago at 5000: within the timeout */
	fd_silent_report(fd, fd_find(fd, "b"), a, 2100, false, 5000, &out);
	fd_silent_report(fd, fd_find(fd, "k"), a, 2100, false, 5000, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_int_eq(out.v[0].kind, FD_SUSPECT);
	ck_assert_str_eq(out.v[0].by, "k");
	ck_assert_uint_eq(out.v[0].heard_ago_ms, 1000);
	ck_assert(fd_is_up(a));
	ck_assert(fd_suspect(a, &since));
	ck_assert_uint_eq(since, 5000);
	/* Said again: no second request. */
	fd_silent_report(fd, fd_find(fd, "j"), a, 2100, false, 5100, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_uint_eq(fd_stats(fd)->suspicions, 1);
	/* Not watched, but suspected: timed out once our own silence is past
	 * the timeout (heard at 4000), and not told (we were no watcher). */
	keep_alive(fd, "a", 6000);
	ck_assert_uint_eq(count_kind(tick(fd, 6000, &out), FD_DOWN, NULL), 0);
	keep_alive(fd, "a", 6100);
	tick(fd, 6100, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_int_eq(out.v[0].kind, FD_DOWN);
	ck_assert_int_eq(out.v[0].reason, FD_TIMEOUT);
	ck_assert(!fd_suspect(a, &since));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_suspicion_cleared_when_it_speaks)
{
	struct fd *fd = fd_ring_for_silent();
	struct fd_node *a = fd_find(fd, "a");
	struct fd_actions out;
	uint64_t since;

	fd_actions_init(&out);
	fd_heard(a, 4000);
	fd_silent_report(fd, fd_find(fd, "b"), a, 2100, false, 5000, &out);
	fd_silent_report(fd, fd_find(fd, "k"), a, 2100, false, 5000, &out);
	ck_assert(fd_suspect(a, &since));
	fd_heard(a, 5010); /* its answer */
	keep_alive(fd, "a", 5100);
	tick(fd, 5100, &out);
	ck_assert(!fd_suspect(a, &since));
	/* No longer timed: its silence is again its watchers' to see. */
	keep_alive(fd, "a", 9000);
	ck_assert_uint_eq(count_kind(tick(fd, 9000, &out), FD_DOWN, NULL), 0);
	ck_assert(fd_is_up(a));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_unread_bytes_count_as_life)
{
	static const char *const two[] = {"a", "b"};
	struct fd *fd = fd_with("e", two, 2, true);
	struct fd_node *a = fd_find(fd, "a"), **due;
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	fd_heard(fd_find(fd, "b"), 2500);
	ck_assert_uint_eq(fd_overdue(fd, 2500, &due), 1);
	ck_assert_uint_eq(fd_overdue(fd, 2050, &due), 0);
	ck_assert_uint_eq(fd_overdue(fd, 2600, &due), 1);
	ck_assert_ptr_eq(due[0], a);
	fd_unread(a, 2600); /* bytes from a wait unread */
	ck_assert_uint_eq(count_kind(tick(fd, 2600, &out), FD_DOWN, NULL), 0);
	ck_assert(fd_is_up(a));
	/* That was life at 2600: a whole timeout from there. */
	fd_heard(fd_find(fd, "b"), 4600);
	ck_assert_uint_eq(fd_overdue(fd, 4600, &due), 0);
	/* An old unread mark does not count. */
	fd_heard(fd_find(fd, "b"), 4700);
	ck_assert_uint_eq(count_kind(tick(fd, 4700, &out), FD_DOWN, "a"), 1);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_unread_bytes_make_a_silent_report_a_suspicion)
{
	struct fd *fd = fd_ring_for_silent();
	struct fd_node *a = fd_find(fd, "a");
	struct fd_actions out;

	fd_actions_init(&out);
	fd_silent_report(fd, fd_find(fd, "b"), a, 2100, false, 5000, &out);
	fd_silent_report(fd, fd_find(fd, "k"), a, 2100, true, 5000, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_int_eq(out.v[0].kind, FD_SUSPECT);
	ck_assert(fd_is_up(a));
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_forgive_counts_everyone_as_heard_now)
{
	static const char *const two[] = {"a", "b"};
	struct fd *fd = fd_with("e", two, 2, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	/* This process was paused from 100 to 10000. */
	fd_forgive(fd, 10000);
	ck_assert_uint_eq(count_kind(tick(fd, 10000, &out), FD_DOWN, NULL), 0);
	ck_assert_uint_eq(count_kind(tick(fd, 12000, &out), FD_DOWN, NULL), 0);
	/* Still silent a whole timeout after: down. */
	ck_assert_uint_eq(count_kind(tick(fd, 12100, &out), FD_DOWN, NULL), 2);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

START_TEST(test_forget_drops_a_watched_record)
{
	static const char *const two[] = {"a", "b"};
	struct fd *fd = fd_with("e", two, 2, true);
	struct fd_actions out;

	fd_actions_init(&out);
	tick(fd, 100, &out);
	fd_node_down(fd, fd_find(fd, "a"));
	fd_forget(fd, fd_find(fd, "a"));
	ck_assert_ptr_null(fd_find(fd, "a"));
	fd_heard(fd_find(fd, "b"), 5000);
	ck_assert_uint_eq(tick(fd, 5000, &out)->n, 1); /* b's heartbeat, nothing of a */
	ck_assert_str_eq(out.v[0].name, "b");
	ck_assert_uint_eq(fd_nwatched(fd), 1);
	fd_actions_free(&out);
	fd_destroy(fd);
}
END_TEST

static Suite *fd_suite(void)
{
	Suite *s = suite_create("fd");
	TCase *t = tcase_create("fd");

	tcase_add_test(t, test_small_ring_watches_everyone);
	tcase_add_test(t, test_big_full_mesh_ring_watches_two_each_side);
	tcase_add_test(t, test_not_full_mesh_watches_every_up_node);
	tcase_add_test(t, test_ring_moves_when_a_neighbour_goes_down);
	tcase_add_test(t, test_heartbeat_only_when_nothing_was_sent_this_round);
	tcase_add_test(t, test_heartbeat_request_answered_unless_we_sent_this_round);
	tcase_add_test(t, test_watched_node_silent_past_the_timeout_is_down_and_told);
	tcase_add_test(t, test_unwatched_node_is_not_timed_out);
	tcase_add_test(t, test_newly_watched_node_gets_a_whole_timeout);
	tcase_add_test(t, test_newly_watched_grace_is_not_hearing_it);
	tcase_add_test(t, test_one_watcher_saying_silent_is_not_enough);
	tcase_add_test(t, test_second_watcher_within_the_timeout_takes_it_down);
	tcase_add_test(t, test_second_watcher_after_the_timeout_counts_as_a_first);
	tcase_add_test(t, test_heard_lately_turns_two_reports_into_a_suspicion);
	tcase_add_test(t, test_suspicion_cleared_when_it_speaks);
	tcase_add_test(t, test_unread_bytes_count_as_life);
	tcase_add_test(t, test_unread_bytes_make_a_silent_report_a_suspicion);
	tcase_add_test(t, test_forgive_counts_everyone_as_heard_now);
	tcase_add_test(t, test_forget_drops_a_watched_record);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(fd_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
