/* test_advertise.c: unit tests for the advertise rule (daemon/advertise.c):
 * a node never advertises a wildcard, nor loopback to other hosts, and a
 * dual-stack host advertises both families. */
#include <check.h>
#include <string.h>

#include "advertise.h"

static char *ifaces[] = {"127.0.0.1", "10.1.0.5", "192.168.7.2", "::1", "fe80::1", "fd00::5"};

static struct advertise_host host(char **name_ips, size_t n, bool literal)
{
	struct advertise_host h = {.ifaces = ifaces,
	                           .nifaces = 6,
	                           .name_ips = name_ips,
	                           .nname_ips = n,
	                           .name_literal = literal};

	return h;
}

static struct advertise_listener listener(const char *ip, uint16_t port, bool dual)
{
	struct advertise_listener l = {.port = port, .dual_stack = dual};

	strcpy(l.ip, ip);
	return l;
}

START_TEST(test_wildcard_advertises_the_name_host_when_it_is_ours)
{
	char *name[] = {"10.1.0.5"};
	struct advertise_host h = host(name, 1, true);
	struct advertise_listener l = listener("0.0.0.0", 10200, false);
	struct ns_addr out[ADVERTISE_MAX];

	ck_assert_uint_eq(advertise_choose(NULL, 0, &l, 1, &h, out), 1);
	ck_assert_str_eq(out[0].ip, "10.1.0.5");
	ck_assert_uint_eq(out[0].port, 10200);
}
END_TEST

START_TEST(test_dual_stack_advertises_the_name_then_the_other_family)
{
	char *name[] = {"10.1.0.5"};
	struct advertise_host h = host(name, 1, true);
	struct advertise_listener l = listener("::", 10200, true);
	struct ns_addr out[ADVERTISE_MAX];

	ck_assert_uint_eq(advertise_choose(NULL, 0, &l, 1, &h, out), 2);
	ck_assert_str_eq(out[0].ip, "10.1.0.5");
	ck_assert_str_eq(out[1].ip, "fd00::5"); /* no ::1, no link-local */
}
END_TEST

START_TEST(test_a_name_that_is_not_ours_gives_the_interface_addresses)
{
	char *name[] = {"127.0.1.1"}; /* Debian's /etc/hosts entry for the host name */
	struct advertise_host h = host(name, 1, false);
	struct advertise_listener l = listener("::", 7, true);
	struct ns_addr out[ADVERTISE_MAX];
	size_t n = advertise_choose(NULL, 0, &l, 1, &h, out);

	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(out[0].ip, "10.1.0.5");
	ck_assert_str_eq(out[1].ip, "192.168.7.2");
	ck_assert_str_eq(out[2].ip, "fd00::5");
	for (size_t i = 0; i < n; i++)
		ck_assert(advertise_usable(out[i].ip, false));
}
END_TEST

START_TEST(test_a_literal_loopback_name_is_a_one_host_cluster)
{
	char *name[] = {"127.0.0.1"};
	struct advertise_host h = host(name, 1, true);
	struct advertise_listener l = listener("0.0.0.0", 5, false);
	struct ns_addr out[ADVERTISE_MAX];

	ck_assert_uint_eq(advertise_choose(NULL, 0, &l, 1, &h, out), 1);
	ck_assert_str_eq(out[0].ip, "127.0.0.1");
}
END_TEST

START_TEST(test_a_host_without_network_falls_back_to_loopback)
{
	char *lo[] = {"127.0.0.1", "::1"};
	struct advertise_host h = {.ifaces = lo, .nifaces = 2};
	struct advertise_listener l = listener("::", 5, true);
	struct ns_addr out[ADVERTISE_MAX];

	ck_assert_uint_eq(advertise_choose(NULL, 0, &l, 1, &h, out), 2);
	ck_assert_str_eq(out[0].ip, "127.0.0.1");
	ck_assert_str_eq(out[1].ip, "::1");
}
END_TEST

START_TEST(test_configured_advertise_wins_and_port_zero_is_the_bound_port)
{
	struct config_addr adv[2] = {{.ip = "203.0.113.9", .port = 0},
	                             {.ip = "fd00::9", .port = 99}};
	struct advertise_host h = host(NULL, 0, false);
	struct advertise_listener ls[2] = {listener("0.0.0.0", 4000, false),
	                                   listener("::", 4001, false)};
	struct ns_addr out[ADVERTISE_MAX];

	ck_assert_uint_eq(advertise_choose(adv, 2, ls, 2, &h, out), 2);
	ck_assert_str_eq(out[0].ip, "203.0.113.9");
	ck_assert_uint_eq(out[0].port, 4000);
	ck_assert_uint_eq(out[1].port, 99);
}
END_TEST

START_TEST(test_specific_listen_addresses_are_advertised_as_bound)
{
	struct advertise_host h = host(NULL, 0, false);
	struct advertise_listener ls[2] = {listener("127.0.0.1", 4000, false),
	                                   listener("fd00::5", 4001, false)};
	struct ns_addr out[ADVERTISE_MAX];

	ck_assert_uint_eq(advertise_choose(NULL, 0, ls, 2, &h, out), 2);
	ck_assert_str_eq(out[1].ip, "fd00::5");
	ck_assert_uint_eq(out[1].port, 4001);
}
END_TEST

START_TEST(test_usable_addresses)
{
	ck_assert(!advertise_usable("0.0.0.0", true));
	ck_assert(!advertise_usable("::", true));
	ck_assert(!advertise_usable("224.0.0.1", false));
	ck_assert(!advertise_usable("fe80::1", false));
	ck_assert(!advertise_usable("127.0.0.1", false));
	ck_assert(advertise_usable("127.0.0.1", true));
	ck_assert(advertise_usable("fd00::1", false));
	ck_assert(!advertise_usable("not an address", true));
}
END_TEST

static Suite *advertise_suite(void)
{
	Suite *s = suite_create("advertise");
	TCase *t = tcase_create("rule");

	tcase_add_test(t, test_wildcard_advertises_the_name_host_when_it_is_ours);
	tcase_add_test(t, test_dual_stack_advertises_the_name_then_the_other_family);
	tcase_add_test(t, test_a_name_that_is_not_ours_gives_the_interface_addresses);
	tcase_add_test(t, test_a_literal_loopback_name_is_a_one_host_cluster);
	tcase_add_test(t, test_a_host_without_network_falls_back_to_loopback);
	tcase_add_test(t, test_configured_advertise_wins_and_port_zero_is_the_bound_port);
	tcase_add_test(t, test_specific_listen_addresses_are_advertised_as_bound);
	tcase_add_test(t, test_usable_addresses);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(advertise_suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
