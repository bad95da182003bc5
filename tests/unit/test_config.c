/* test_config.c: partisand's config: defaults, every kind of error text,
 * command-line overrides, cross-checks, the dump round trip and the golden
 * dumps in tests/golden/config (each X.json must dump as X.ok).
 *
 * Files are read relative to $PARTISAN_SRCDIR (default ".").
 */
#include "config.h"

#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The golden runner fixes the name so the hostname does not leak in. */
#define GOLDEN_NAME "golden@localhost"

static glob_t golden;

static const char *srcdir(void)
{
	const char *d = getenv("PARTISAN_SRCDIR");

	return d && *d ? d : ".";
}

static char *srcpath(const char *rel)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", srcdir(), rel), 0);
	return p;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	ck_assert_msg(fp != NULL, "cannot open %s", path);
	FILE *mem = open_memstream(&buf, &len);
	int ch;

	while ((ch = fgetc(fp)) != EOF)
		fputc(ch, mem);
	fclose(mem);
	fclose(fp);
	return buf;
}

/* A temporary file holding text; returns its path (caller unlinks, frees). */
static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/test_config.XXXXXX");
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void load_ok(struct config *c, const char *json)
{
	char err[CONFIG_ERR_MAX];

	config_defaults(c);
	ck_assert_msg(config_load_string(c, json, err, sizeof(err)) == 0, "%s: %s", json, err);
}

/* Loading json over the defaults fails with exactly want. */
static void load_fails(const char *json, const char *want)
{
	struct config c;
	char err[CONFIG_ERR_MAX] = "";

	config_defaults(&c);
	ck_assert_int_eq(config_load_string(&c, json, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	config_free(&c);
}

START_TEST(test_defaults_follow_spec)
{
	struct config c;

	config_defaults(&c);
	ck_assert_uint_eq(c.nlisten_addrs, 1);
	ck_assert_str_eq(c.listen_addrs[0].ip, "::"); /* dual stack */
	ck_assert_uint_eq(c.listen_addrs[0].port, 10200);
	ck_assert_uint_eq(c.nadvertise_addrs, 0);
	ck_assert_int_eq(c.manager, MANAGER_FULL_MESH);
	ck_assert_uint_eq(c.njoin, 0);
	ck_assert_uint_eq(c.nchannels, 1);
	ck_assert_str_eq(c.channels[0].name, "default");
	ck_assert_uint_eq(c.channels[0].parallelism, 1);
	ck_assert(!c.channels[0].monotonic);
	ck_assert_uint_eq(c.gossip_interval_ms, 1000);
	ck_assert_uint_eq(c.failure_timeout_ms, 2000);
	ck_assert_uint_eq(c.connect_timeout_ms, 2000);
	ck_assert_uint_eq(c.retransmit_interval_ms, 1000);
	ck_assert_uint_eq(c.max_frame_bytes, 16777216);
	ck_assert_uint_eq(c.session_queue_bytes, 8388608);
	ck_assert_uint_eq(c.peer_queue_bytes, 8388608);
	ck_assert_uint_eq(c.max_outstanding_acks, 65536);
	ck_assert_str_eq(c.cluster_name, "default");
	ck_assert_ptr_null(c.secret_file);
	config_free(&c);
}
END_TEST

START_TEST(test_defaults_of_nested_sections_follow_spec)
{
	struct config c;

	config_defaults(&c);
	ck_assert(!c.tls.enabled);
	ck_assert(c.tls.verify_peer);
	ck_assert_ptr_null(c.tls.cert);
	ck_assert_ptr_null(c.tls.key);
	ck_assert_ptr_null(c.tls.ca);
	ck_assert_str_eq(c.ipc.socket, CONFIG_DEFAULT_SOCKET);
	ck_assert_uint_eq(c.ipc.mode, 0660);
	ck_assert_uint_eq(c.ipc.nallow_uids + c.ipc.nallow_gids, 0);
	ck_assert_uint_eq(c.hyparview.active_max_size, 5);
	ck_assert_uint_eq(c.hyparview.passive_max_size, 30);
	ck_assert_uint_eq(c.hyparview.arwl, 6);
	ck_assert_uint_eq(c.hyparview.prwl, 3);
	ck_assert_uint_eq(c.hyparview.shuffle_interval_ms, 10000);
	ck_assert_uint_eq(c.hyparview.shuffle_k_active, 3);
	ck_assert_uint_eq(c.hyparview.shuffle_k_passive, 4);
	ck_assert_uint_eq(c.hyparview.random_promotion_interval_ms, 5000);
	ck_assert(c.client_server_is_server);
	ck_assert_uint_eq(c.broadcast.lazy_tick_ms, 1000);
	ck_assert_uint_eq(c.broadcast.exchange_tick_ms, 10000);
	ck_assert_ptr_null(c.metrics_listen);
	ck_assert_int_eq(c.log_level, LOG_LEVEL_INFO);
	config_free(&c);
}
END_TEST

START_TEST(test_default_name_is_partisan_at_hostname)
{
	struct config c;
	char host[256] = "", want[300];

	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	snprintf(want, sizeof(want), "partisan@%s", host);
	config_defaults(&c);
	ck_assert_str_eq(c.name, want);
	config_free(&c);
}
END_TEST

START_TEST(test_defaults_pass_finish)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	config_defaults(&c);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), 0);
	config_free(&c);
}
END_TEST

START_TEST(test_shipped_example_parses_and_finishes)
{
	struct config c;
	char err[CONFIG_ERR_MAX], *path = srcpath("conf/partisand.json");

	config_defaults(&c);
	ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.name, "a@127.0.0.1");
	ck_assert_str_eq(c.listen_addrs[0].ip, "127.0.0.1");
	ck_assert_uint_eq(c.listen_addrs[0].port, 10200);
	ck_assert_uint_eq(c.njoin, 0);
	ck_assert_str_eq(c.ipc.socket, "/run/partisan/partisand.sock");
	ck_assert_uint_eq(c.nchannels, 3);
	ck_assert_str_eq(c.channels[0].name, "default");
	ck_assert_str_eq(c.channels[1].name, "bulk");
	ck_assert_uint_eq(c.channels[1].parallelism, 4);
	ck_assert_str_eq(c.channels[2].name, "telemetry");
	ck_assert(c.channels[2].monotonic);
	config_free(&c);
	free(path);
}
END_TEST

START_TEST(test_unknown_top_level_key_is_refused)
{
	load_fails("{\"gossip_interval\": 10}", "config: gossip_interval: unknown key");
}
END_TEST

START_TEST(test_unknown_key_is_refused_with_path)
{
	load_fails("{\"tls\": {\"verfy_peer\": true}}", "config: tls.verfy_peer: unknown key");
	load_fails("{\"channels\": {\"bulk\": {\"width\": 2}}}",
	           "config: channels.bulk.width: unknown key");
	load_fails("{\"listen_addrs\": [{\"ip\": \"127.0.0.1\", \"port\": 1, \"host\": \"x\"}]}",
	           "config: listen_addrs[0].host: unknown key");
}
END_TEST

START_TEST(test_wrong_type_names_path_and_value)
{
	load_fails("{\"channels\": {\"bulk\": {\"parallelism\": \"four\"}}}",
	           "config: channels.bulk.parallelism: expected integer 1..64, got \"four\"");
	load_fails("{\"tls\": {\"enabled\": 1}}", "config: tls.enabled: expected boolean, got 1");
	load_fails("{\"tls\": []}", "config: tls: expected object, got []");
	load_fails("{\"gossip_interval_ms\": 1.5}",
	           "config: gossip_interval_ms: expected integer 1..3600000, got 1.5");
}
END_TEST

START_TEST(test_out_of_range_integers_are_refused)
{
	load_fails("{\"gossip_interval_ms\": 0}",
	           "config: gossip_interval_ms: expected integer 1..3600000, got 0");
	load_fails("{\"max_frame_bytes\": 1023}",
	           "config: max_frame_bytes: expected integer 1024..1073741824, got 1023");
	load_fails("{\"hyparview\": {\"arwl\": 1001}}",
	           "config: hyparview.arwl: expected integer 1..1000, got 1001");
	load_fails("{\"channels\": {\"bulk\": {\"parallelism\": 65}}}",
	           "config: channels.bulk.parallelism: expected integer 1..64, got 65");
}
END_TEST

START_TEST(test_queue_and_ack_limits_are_accepted_and_range_checked)
{
	struct config c;

	load_ok(&c, "{\"session_queue_bytes\": 4096, \"peer_queue_bytes\": 1073741824, "
	            "\"max_outstanding_acks\": 10000000}");
	ck_assert_uint_eq(c.session_queue_bytes, 4096);
	ck_assert_uint_eq(c.peer_queue_bytes, 1073741824);
	ck_assert_uint_eq(c.max_outstanding_acks, 10000000);
	config_free(&c);
	load_fails("{\"session_queue_bytes\": 4095}",
	           "config: session_queue_bytes: expected integer 4096..1073741824, got 4095");
	load_fails("{\"peer_queue_bytes\": 1073741825}",
	           "config: peer_queue_bytes: expected integer 4096..1073741824, got 1073741825");
	load_fails("{\"max_outstanding_acks\": 0}",
	           "config: max_outstanding_acks: expected integer 1..10000000, got 0");
}
END_TEST

START_TEST(test_syntax_error_names_file_line_and_column)
{
	struct config c;
	char err[CONFIG_ERR_MAX], want[CONFIG_ERR_MAX];
	char *path = write_temp("{\n  \"name\": \"a@b\",\n  \"join\": [,]\n}\n");

	snprintf(want, sizeof(want), "config: %s:3:12: unexpected token near ','", path);
	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
	config_free(&c);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_syntax_error_in_string_is_reported_as_string)
{
	load_fails("{\"name\": }", "config: <string>:1:10: unexpected token near '}'");
	load_fails("{\"log\": {}, \"log\": {}}",
	           "config: <string>:1:17: duplicate object key near '\"log\"'");
}
END_TEST

START_TEST(test_missing_file_is_reported_with_strerror)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	config_defaults(&c);
	ck_assert_int_eq(config_load_file(&c, "/nonexistent/partisand.json", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: /nonexistent/partisand.json: No such file or directory");
	ck_assert_int_eq(config_load_file(&c, "/", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: /: Is a directory");
	config_free(&c);
}
END_TEST

START_TEST(test_document_must_be_an_object)
{
	load_fails("[1, 2]", "config: expected object, got [1,2]");
}
END_TEST

START_TEST(test_malformed_node_names_are_refused)
{
	static const char *const bad[] = {"\"nohost\"",   "\"@host\"", "\"name@\"", "\"a:b@host\"",
	                                  "\"a b@host\"", "\"a@b@c\"", "42"};
	const char *what = "expected NAME@HOST (no ':' in NAME, no spaces, at most 255 bytes)";
	char json[64], want[CONFIG_ERR_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(json, sizeof(json), "{\"name\": %s}", bad[i]);
		snprintf(want, sizeof(want), "config: name: %s, got %s", what, bad[i]);
		load_fails(json, want);
	}
}
END_TEST

START_TEST(test_node_name_longer_than_255_bytes_is_refused)
{
	struct config c;
	char name[300], err[CONFIG_ERR_MAX];

	memset(name, 'x', sizeof(name));
	memcpy(name, "n@", 2);
	name[255] = '\0';
	config_defaults(&c);
	ck_assert_int_eq(config_set_name(&c, name, err, sizeof(err)), 0);
	name[255] = 'x';
	name[256] = '\0';
	ck_assert_int_eq(config_set_name(&c, name, err, sizeof(err)), -1);
	ck_assert(strncmp(err, "--name: expected NAME@HOST", 26) == 0);
	config_free(&c);
}
END_TEST

START_TEST(test_advertise_addrs_are_reachable_addresses)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	load_ok(&c, "{\"advertise_addrs\": [{\"ip\": \"10.0.0.1\", \"port\": 10200},"
	            " {\"ip\": \"FD00::1\", \"port\": 0}]}");
	ck_assert_uint_eq(c.nadvertise_addrs, 2);
	ck_assert_str_eq(c.advertise_addrs[1].ip, "fd00::1");
	ck_assert_uint_eq(c.advertise_addrs[1].port, 0);
	config_free(&c);
	load_fails(
	    "{\"advertise_addrs\": [{\"ip\": \"0.0.0.0\", \"port\": 1}]}",
	    "config: advertise_addrs[0].ip: expected numeric IPv4 or IPv6 address that peers "
	    "can reach (not a wildcard), got \"0.0.0.0\"");
	load_fails(
	    "{\"advertise_addrs\": [{\"ip\": \"10.0.0.1\", \"port\": 1},"
	    " {\"ip\": \"host.example\", \"port\": 1}]}",
	    "config: advertise_addrs[1].ip: expected numeric IPv4 or IPv6 address that peers "
	    "can reach (not a wildcard), got \"host.example\"");
	load_fails(
	    "{\"advertise_addrs\": [{\"ip\": \"::\", \"port\": 1}]}",
	    "config: advertise_addrs[0].ip: expected numeric IPv4 or IPv6 address that peers "
	    "can reach (not a wildcard), got \"::\"");
	load_fails("{\"advertise_addrs\": [{\"ip\": \"10.0.0.1\", \"port\": 70000}]}",
	           "config: advertise_addrs[0].port: expected integer 0..65535, got 70000");
	config_defaults(&c);
	ck_assert_int_eq(config_set_advertise(&c, "[fd00::2]:10300", true, err, sizeof(err)), 0);
	ck_assert_int_eq(config_set_advertise(&c, "10.0.0.2:10300", false, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.nadvertise_addrs, 2);
	ck_assert_int_eq(config_set_advertise(&c, "0.0.0.0:1", false, err, sizeof(err)), -1);
	ck_assert_str_eq(err,
	                 "--advertise: expected IP:PORT that peers can reach (not a wildcard), "
	                 "got \"0.0.0.0:1\"");
	ck_assert_int_eq(config_set_advertise(&c, "10.0.0.1:99999", true, err, sizeof(err)), -1);
	ck_assert_uint_eq(c.nadvertise_addrs, 2);
	config_free(&c);
}
END_TEST

START_TEST(test_listen_addrs_must_be_a_non_empty_array)
{
	load_fails("{\"listen_addrs\": []}",
	           "config: listen_addrs: expected non-empty array of {\"ip\", \"port\"}, got []");
	load_fails("{\"listen_addrs\": [5]}", "config: listen_addrs[0]: expected object, got 5");
}
END_TEST

START_TEST(test_listen_address_needs_numeric_ip_and_port)
{
	load_fails("{\"listen_addrs\": [{\"ip\": \"localhost\", \"port\": 1}]}",
	           "config: listen_addrs[0].ip: expected numeric IPv4 or IPv6 address, got "
	           "\"localhost\"");
	load_fails("{\"listen_addrs\": [{\"ip\": \"127.0.0.1\", \"port\": 1}, "
	           "{\"ip\": \"::1\", \"port\": 65536}]}",
	           "config: listen_addrs[1].port: expected integer 0..65535, got 65536");
	load_fails("{\"listen_addrs\": [{\"ip\": \"127.0.0.1\"}]}",
	           "config: listen_addrs[0].port: required key is missing");
	load_fails("{\"listen_addrs\": [{\"port\": 1}]}",
	           "config: listen_addrs[0].ip: required key is missing");
}
END_TEST

START_TEST(test_listen_addresses_are_normalised)
{
	struct config c;

	load_ok(&c, "{\"listen_addrs\": [{\"ip\": \"0:0::0001\", \"port\": 0}, "
	            "{\"ip\": \"10.0.0.1\", \"port\": 65535}]}");
	ck_assert_uint_eq(c.nlisten_addrs, 2);
	ck_assert_str_eq(c.listen_addrs[0].ip, "::1");
	ck_assert_uint_eq(c.listen_addrs[0].port, 0);
	ck_assert_str_eq(c.listen_addrs[1].ip, "10.0.0.1");
	ck_assert_uint_eq(c.listen_addrs[1].port, 65535);
	config_free(&c);
}
END_TEST

START_TEST(test_every_manager_name_is_accepted)
{
	static const char *const names[] = {"full_mesh", "hyparview", "client_server", "static"};
	struct config c;
	char json[64];

	for (size_t i = 0; i < 4; i++) {
		snprintf(json, sizeof(json), "{\"peer_service_manager\": \"%s\"}", names[i]);
		load_ok(&c, json);
		ck_assert_int_eq(c.manager, (int)i);
		ck_assert_str_eq(config_manager_name(c.manager), names[i]);
		config_free(&c);
	}
	load_fails("{\"peer_service_manager\": \"mesh\"}",
	           "config: peer_service_manager: expected one of "
	           "full_mesh|hyparview|client_server|static, got \"mesh\"");
}
END_TEST

START_TEST(test_join_accepts_node_and_host_targets)
{
	struct config c;

	load_ok(&c, "{\"join\": [\"b@127.0.0.1:10201\", \"host.example:1\", \"[::1]:65535\", "
	            "\"c@::1:10200\"]}");
	ck_assert_uint_eq(c.njoin, 4);
	ck_assert_str_eq(c.join[0], "b@127.0.0.1:10201");
	ck_assert_str_eq(c.join[3], "c@::1:10200");
	config_free(&c);
}
END_TEST

START_TEST(test_malformed_join_targets_are_refused)
{
	static const char *const bad[] = {"\"b@host\"",
	                                  "\"host:0\"",
	                                  "\"host:65536\"",
	                                  "\"host:\"",
	                                  "\":10200\"",
	                                  "\"a:b@h:1\"",
	                                  "\"::1:10200\"",
	                                  "\"[nope]:1\"",
	                                  "\"h:+1\"",
	                                  "\"a b:1\"",
	                                  "1"};
	char json[64], want[CONFIG_ERR_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(json, sizeof(json), "{\"join\": [\"x@y:1\", %s]}", bad[i]);
		snprintf(want, sizeof(want),
		         "config: join[1]: expected NAME@HOST:PORT or HOST:PORT, got %s", bad[i]);
		load_fails(json, want);
	}
	load_fails("{\"join\": \"a@b:1\"}",
	           "config: join: expected array of strings, got \"a@b:1\"");
}
END_TEST

START_TEST(test_default_channel_is_added_first_when_absent)
{
	struct config c;

	load_ok(&c,
	        "{\"channels\": {\"bulk\": {\"parallelism\": 4}, \"t\": {\"monotonic\": true}}}");
	ck_assert_uint_eq(c.nchannels, 3);
	ck_assert_str_eq(c.channels[0].name, "default");
	ck_assert_uint_eq(c.channels[0].parallelism, 1);
	ck_assert_str_eq(c.channels[1].name, "bulk");
	ck_assert_uint_eq(c.channels[1].parallelism, 4);
	ck_assert(!c.channels[1].monotonic);
	ck_assert_str_eq(c.channels[2].name, "t");
	ck_assert_uint_eq(c.channels[2].parallelism, 1);
	ck_assert(c.channels[2].monotonic);
	config_free(&c);
}
END_TEST

START_TEST(test_default_channel_stays_first_when_configured)
{
	struct config c;

	load_ok(&c, "{\"channels\": {\"bulk\": {}, \"default\": {\"parallelism\": 8}}}");
	ck_assert_uint_eq(c.nchannels, 2);
	ck_assert_str_eq(c.channels[0].name, "default");
	ck_assert_uint_eq(c.channels[0].parallelism, 8);
	ck_assert_str_eq(c.channels[1].name, "bulk");
	config_free(&c);
}
END_TEST

START_TEST(test_bad_channel_names_and_options_are_refused)
{
	load_fails("{\"channels\": {\"b@d\": {}}}",
	           "config: channels: expected channel name of 1..64 characters from "
	           "[A-Za-z0-9_.-], got \"b@d\"");
	load_fails("{\"channels\": {\"\": {}}}",
	           "config: channels: expected channel name of 1..64 characters from "
	           "[A-Za-z0-9_.-], got \"\"");
	load_fails("{\"channels\": {\"t\": {\"monotonic\": \"yes\"}}}",
	           "config: channels.t.monotonic: expected boolean, got \"yes\"");
	load_fails("{\"channels\": {\"t\": 1}}", "config: channels.t: expected object, got 1");
	load_fails("{\"channels\": []}", "config: channels: expected object, got []");
}
END_TEST

START_TEST(test_ipc_mode_is_an_octal_string)
{
	struct config c;

	load_ok(&c, "{\"ipc\": {\"mode\": \"0600\"}}");
	ck_assert_uint_eq(c.ipc.mode, 0600);
	config_free(&c);
	load_ok(&c, "{\"ipc\": {\"mode\": \"777\"}}");
	ck_assert_uint_eq(c.ipc.mode, 0777);
	config_free(&c);
	load_fails("{\"ipc\": {\"mode\": \"0989\"}}",
	           "config: ipc.mode: expected octal mode string \"0000\"..\"0777\", got \"0989\"");
	load_fails("{\"ipc\": {\"mode\": \"1777\"}}",
	           "config: ipc.mode: expected octal mode string \"0000\"..\"0777\", got \"1777\"");
	load_fails("{\"ipc\": {\"mode\": 432}}",
	           "config: ipc.mode: expected octal mode string \"0000\"..\"0777\", got 432");
}
END_TEST

START_TEST(test_ipc_socket_must_fit_sun_path)
{
	struct config c;
	const char *want = "config: ipc.socket: expected non-empty path of at most 107 bytes, got";
	char path[110], json[200], err[CONFIG_ERR_MAX];

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	snprintf(json, sizeof(json), "{\"ipc\": {\"socket\": \"%s\"}}", path);
	load_ok(&c, json);
	ck_assert_str_eq(c.ipc.socket, path);
	config_free(&c);
	path[107] = 'a';
	path[108] = '\0';
	snprintf(json, sizeof(json), "{\"ipc\": {\"socket\": \"%s\"}}", path);
	config_defaults(&c);
	ck_assert_int_eq(config_load_string(&c, json, err, sizeof(err)), -1);
	ck_assert(strncmp(err, want, strlen(want)) == 0);
	config_free(&c);
	load_fails("{\"ipc\": {\"socket\": \"\"}}",
	           "config: ipc.socket: expected non-empty path of at most 107 bytes, got \"\"");
}
END_TEST

START_TEST(test_ipc_allow_lists_hold_non_negative_ids)
{
	struct config c;

	load_ok(&c, "{\"ipc\": {\"allow_uids\": [0, 1000], \"allow_gids\": [4294967294]}}");
	ck_assert_uint_eq(c.ipc.nallow_uids, 2);
	ck_assert_uint_eq(c.ipc.allow_uids[1], 1000);
	ck_assert_uint_eq(c.ipc.nallow_gids, 1);
	ck_assert_uint_eq(c.ipc.allow_gids[0], 4294967294u);
	config_free(&c);
	load_fails("{\"ipc\": {\"allow_uids\": [1, -1]}}",
	           "config: ipc.allow_uids[1]: expected integer 0..4294967294, got -1");
	load_fails("{\"ipc\": {\"allow_gids\": [\"wheel\"]}}",
	           "config: ipc.allow_gids[0]: expected integer 0..4294967294, got \"wheel\"");
	load_fails("{\"ipc\": {\"allow_gids\": 5}}",
	           "config: ipc.allow_gids: expected array of integers 0..4294967294, got 5");
}
END_TEST

START_TEST(test_cluster_name_and_secret_file_are_checked)
{
	char json[256], want[CONFIG_ERR_MAX], name[130];

	load_fails(
	    "{\"cluster\": {\"name\": \"\"}}",
	    "config: cluster.name: expected non-empty string of at most 128 bytes, got \"\"");
	memset(name, 'c', sizeof(name));
	name[129] = '\0';
	snprintf(json, sizeof(json), "{\"cluster\": {\"name\": \"%s\"}}", name);
	snprintf(want, sizeof(want),
	         "config: cluster.name: expected non-empty string of at most 128 bytes, got \"%s\"",
	         name);
	load_fails(json, want);
	load_fails("{\"cluster\": {\"secret_file\": 3}}",
	           "config: cluster.secret_file: expected null or non-empty string, got 3");
	load_fails("{\"tls\": {\"ca\": \"\"}}",
	           "config: tls.ca: expected null or non-empty string, got \"\"");
}
END_TEST

START_TEST(test_cluster_insecure_is_a_boolean_off_by_default)
{
	struct config c;
	char *dump;

	config_defaults(&c);
	ck_assert(!c.insecure);
	dump = config_dump(&c);
	ck_assert_ptr_nonnull(strstr(dump, "\"insecure\": false"));
	free(dump);
	config_free(&c);
	load_ok(&c, "{\"cluster\": {\"insecure\": true}}");
	ck_assert(c.insecure);
	ck_assert_str_eq(c.cluster_name, "default");
	dump = config_dump(&c);
	ck_assert_ptr_nonnull(strstr(dump, "\"insecure\": true"));
	free(dump);
	config_free(&c);
	load_fails("{\"cluster\": {\"insecure\": \"yes\"}}",
	           "config: cluster.insecure: expected boolean, got \"yes\"");
}
END_TEST

START_TEST(test_log_level_role_and_metrics_are_validated)
{
	struct config c;

	load_ok(&c,
	        "{\"log\": {\"level\": \"warning\"}, \"client_server\": {\"role\": \"client\"}, "
	        "\"metrics\": {\"listen\": \"[::1]:9100\"}}");
	ck_assert_int_eq(c.log_level, LOG_LEVEL_WARNING);
	ck_assert_str_eq(config_log_level_name(c.log_level), "warning");
	ck_assert(!c.client_server_is_server);
	ck_assert_str_eq(c.metrics_listen, "[::1]:9100");
	config_free(&c);
	load_fails("{\"log\": {\"level\": \"verbose\"}}",
	           "config: log.level: expected one of debug|info|notice|warning|error, got "
	           "\"verbose\"");
	load_fails("{\"client_server\": {\"role\": \"peer\"}}",
	           "config: client_server.role: expected one of server|client, got \"peer\"");
	load_fails("{\"metrics\": {\"listen\": \"localhost:9100\"}}",
	           "config: metrics.listen: expected null or \"IP:PORT\", got \"localhost:9100\"");
}
END_TEST

START_TEST(test_failed_load_leaves_config_unchanged)
{
	struct config c;
	char err[CONFIG_ERR_MAX], *before, *after;

	load_ok(&c, "{\"name\": \"keep@host\", \"join\": [\"x@y:1\"]}");
	before = config_dump(&c);
	ck_assert_int_eq(config_load_string(&c,
	                                    "{\"name\": \"lost@host\", \"join\": [], "
	                                    "\"channels\": {\"x\": {}}, \"tls\": {\"bad\": 1}}",
	                                    err, sizeof(err)),
	                 -1);
	after = config_dump(&c);
	ck_assert_str_eq(after, before);
	ck_assert_str_eq(c.name, "keep@host");
	free(before);
	free(after);
	config_free(&c);
}
END_TEST

START_TEST(test_second_load_overrides_only_its_keys)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	load_ok(&c, "{\"name\": \"one@host\", \"tls\": {\"cert\": \"/c\", \"key\": \"/k\"}, "
	            "\"join\": [\"x@y:1\"], \"channels\": {\"a\": {}}}");
	ck_assert_int_eq(config_load_string(&c,
	                                    "{\"name\": \"two@host\", \"tls\": {\"cert\": null}, "
	                                    "\"join\": [\"z@y:2\"], \"channels\": {\"b\": {}}}",
	                                    err, sizeof(err)),
	                 0);
	ck_assert_str_eq(c.name, "two@host");
	ck_assert_ptr_null(c.tls.cert);
	ck_assert_str_eq(c.tls.key, "/k");
	ck_assert_uint_eq(c.njoin, 1);
	ck_assert_str_eq(c.join[0], "z@y:2");
	ck_assert_uint_eq(c.nchannels, 2);
	ck_assert_str_eq(c.channels[1].name, "b");
	config_free(&c);
}
END_TEST

START_TEST(test_tls_enabled_requires_cert_and_key)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	load_ok(&c, "{\"tls\": {\"enabled\": true, \"key\": \"/k\"}}");
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: tls.cert: required when tls.enabled is true");
	config_free(&c);
	load_ok(&c, "{\"tls\": {\"enabled\": true, \"cert\": \"/c\"}}");
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: tls.key: required when tls.enabled is true");
	config_free(&c);
}
END_TEST

START_TEST(test_tls_files_must_be_readable)
{
	struct config c;
	char err[CONFIG_ERR_MAX], json[256], *cert = write_temp("cert");

	snprintf(json, sizeof(json),
	         "{\"tls\": {\"enabled\": true, \"cert\": \"%s\", \"key\": \"/nonexistent/k\"}}",
	         cert);
	load_ok(&c, json);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: tls.key: /nonexistent/k: No such file or directory");
	config_free(&c);
	/* Readable is not enough: verified peers need a CA, and each file
	 * must load as what it is. */
	snprintf(json, sizeof(json),
	         "{\"tls\": {\"enabled\": true, \"cert\": \"%s\", \"key\": \"%s\"}}", cert, cert);
	load_ok(&c, json);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: tls.ca: required when tls.verify_peer is true");
	config_free(&c);
	snprintf(json, sizeof(json),
	         "{\"tls\": {\"enabled\": true, \"cert\": \"%s\", \"key\": \"%s\", "
	         "\"verify_peer\": false}}",
	         cert, cert);
	load_ok(&c, json);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "config: tls.cert: ", 18) == 0 &&
	                  strstr(err, "not a certificate"),
	              "%s", err);
	config_free(&c);
	unlink(cert);
	free(cert);
}
END_TEST

START_TEST(test_secret_file_must_be_readable)
{
	struct config c;
	char err[CONFIG_ERR_MAX], json[256], *secret = write_temp("s3cret");

	load_ok(&c, "{\"cluster\": {\"secret_file\": \"/nonexistent/secret\"}}");
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(
	    err, "config: cluster.secret_file: /nonexistent/secret: No such file or directory");
	config_free(&c);
	load_ok(&c, "{\"cluster\": {\"secret_file\": \"/\"}}");
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "config: cluster.secret_file: /: not a regular file");
	config_free(&c);
	snprintf(json, sizeof(json), "{\"cluster\": {\"secret_file\": \"%s\"}}", secret);
	chmod(secret, 0644);
	load_ok(&c, json);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "open to group or others (mode 0644)") != NULL, "%s", err);
	config_free(&c);
	chmod(secret, 0600);
	load_ok(&c, json);
	ck_assert_int_eq(config_finish(&c, err, sizeof(err)), 0);
	config_free(&c);
	unlink(secret);
	free(secret);
}
END_TEST

START_TEST(test_flags_override_file_values)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	load_ok(&c, "{\"name\": \"file@host\", \"listen_addrs\": [{\"ip\": \"10.0.0.1\", \"port\": "
	            "1}, {\"ip\": \"10.0.0.2\", \"port\": 2}], \"join\": [\"x@y:1\"]}");
	ck_assert_int_eq(config_set_name(&c, "flag@host", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set_listen(&c, "[::1]:0", err, sizeof(err)), 0);
	ck_assert_int_eq(config_set_socket(&c, "/tmp/p.sock", err, sizeof(err)), 0);
	ck_assert_int_eq(config_add_join(&c, "10.0.0.9:10200", err, sizeof(err)), 0);
	ck_assert_str_eq(c.name, "flag@host");
	ck_assert_uint_eq(c.nlisten_addrs, 1);
	ck_assert_str_eq(c.listen_addrs[0].ip, "::1");
	ck_assert_uint_eq(c.listen_addrs[0].port, 0);
	ck_assert_str_eq(c.ipc.socket, "/tmp/p.sock");
	ck_assert_uint_eq(c.njoin, 2);
	ck_assert_str_eq(c.join[0], "x@y:1");
	ck_assert_str_eq(c.join[1], "10.0.0.9:10200");
	config_free(&c);
}
END_TEST

START_TEST(test_bad_flags_are_refused_with_the_flag_name)
{
	struct config c;
	char err[CONFIG_ERR_MAX];

	config_defaults(&c);
	ck_assert_int_eq(config_set_name(&c, "nohost", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--name: expected NAME@HOST (no ':' in NAME, no spaces, at most 255 "
	                      "bytes), got \"nohost\"");
	ck_assert_int_eq(config_set_listen(&c, "x", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--listen: expected IP:PORT, got \"x\"");
	ck_assert_int_eq(config_set_socket(&c, "", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--socket: expected non-empty path of at most 107 bytes, got \"\"");
	ck_assert_int_eq(config_add_join(&c, "host", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--join: expected NAME@HOST:PORT or HOST:PORT, got \"host\"");
	ck_assert_int_eq(config_set_listen(&c, "\xff:1", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--listen: expected IP:PORT, got \"\xff:1\"");
	ck_assert(strncmp(c.name, "partisan@", 9) == 0);
	ck_assert_uint_eq(c.listen_addrs[0].port, 10200);
	ck_assert_uint_eq(c.njoin, 0);
	config_free(&c);
}
END_TEST

START_TEST(test_parse_ip_port_accepts_v4_and_bracketed_v6)
{
	struct config_addr a;

	ck_assert_int_eq(config_parse_ip_port("127.0.0.1:10200", &a), 0);
	ck_assert_str_eq(a.ip, "127.0.0.1");
	ck_assert_uint_eq(a.port, 10200);
	ck_assert_int_eq(config_parse_ip_port("[::1]:0", &a), 0);
	ck_assert_str_eq(a.ip, "::1");
	ck_assert_uint_eq(a.port, 0);
	ck_assert_int_eq(config_parse_ip_port("[fe80::0:1]:65535", &a), 0);
	ck_assert_str_eq(a.ip, "fe80::1");
	ck_assert_uint_eq(a.port, 65535);
}
END_TEST

START_TEST(test_parse_ip_port_rejects_malformed_input)
{
	static const char *const bad[] = {"",
	                                  "127.0.0.1",
	                                  "127.0.0.1:",
	                                  ":80",
	                                  "127.0.0.1:65536",
	                                  "::1:80",
	                                  "[127.0.0.1]:80",
	                                  "[::1]80",
	                                  "[::1:80",
	                                  "localhost:80",
	                                  "1.2.3:80",
	                                  "1.2.3.4:-1",
	                                  "1.2.3.4: 80",
	                                  "1.2.3.4:123456",
	                                  "[]:80"};
	struct config_addr a = {.ip = "keep", .port = 7};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_parse_ip_port(bad[i], &a) == -1, "accepted \"%s\"", bad[i]);
	ck_assert_int_eq(config_parse_ip_port(NULL, &a), -1);
	ck_assert_str_eq(a.ip, "keep");
	ck_assert_uint_eq(a.port, 7);
}
END_TEST

START_TEST(test_dump_round_trips)
{
	struct config c, d;
	char err[CONFIG_ERR_MAX], *first, *second;

	load_ok(&c,
	        "{\"name\": \"rt@host\", \"channels\": {\"z\": {\"monotonic\": true}, \"a\": {}}, "
	        "\"tls\": {\"ca\": \"/ca\"}, \"ipc\": {\"mode\": \"7\", \"allow_gids\": [5]}, "
	        "\"metrics\": {\"listen\": \"0.0.0.0:1\"}, \"log\": {\"level\": \"error\"}}");
	first = config_dump(&c);
	ck_assert_ptr_nonnull(first);
	load_ok(&d, first);
	second = config_dump(&d);
	ck_assert_str_eq(second, first);
	ck_assert_ptr_nonnull(strstr(first, "\"mode\": \"0007\""));
	ck_assert_int_eq(config_finish(&d, err, sizeof(err)), 0);
	free(first);
	free(second);
	config_free(&c);
	config_free(&d);
}
END_TEST

START_TEST(test_free_twice_is_harmless)
{
	struct config c;

	config_defaults(&c);
	config_free(&c);
	ck_assert_ptr_null(c.name);
	ck_assert_uint_eq(c.nchannels, 0);
	config_free(&c);
	config_free(NULL);
}
END_TEST

START_TEST(test_golden_set_is_present)
{
	ck_assert_msg(golden.gl_pathc >= 4, "found %zu golden configs under %s", golden.gl_pathc,
	              srcdir());
}
END_TEST

/* Each golden X.json dumps exactly as X.ok, and that dump loads back to itself. */
START_TEST(test_golden_configs_dump_as_recorded)
{
	struct config c, d;
	char err[CONFIG_ERR_MAX], ok[4096], *want, *got, *again;
	const char *in = golden.gl_pathv[_i];

	snprintf(ok, sizeof(ok), "%.*s.ok", (int)(strlen(in) - 5), in);
	config_defaults(&c);
	ck_assert_int_eq(config_set_name(&c, GOLDEN_NAME, err, sizeof(err)), 0);
	ck_assert_msg(config_load_file(&c, in, err, sizeof(err)) == 0, "%s", err);
	got = config_dump(&c);
	want = slurp(ok);
	ck_assert_msg(strcmp(got, want) == 0, "%s: dump differs from %s:\n%s", in, ok, got);
	config_defaults(&d);
	ck_assert_msg(config_load_string(&d, got, err, sizeof(err)) == 0, "%s", err);
	again = config_dump(&d);
	ck_assert_str_eq(again, got);
	free(got);
	free(want);
	free(again);
	config_free(&c);
	config_free(&d);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_defaults_follow_spec);
	tcase_add_test(tc, test_advertise_addrs_are_reachable_addresses);
	tcase_add_test(tc, test_defaults_of_nested_sections_follow_spec);
	tcase_add_test(tc, test_default_name_is_partisan_at_hostname);
	tcase_add_test(tc, test_defaults_pass_finish);
	tcase_add_test(tc, test_shipped_example_parses_and_finishes);
	tcase_add_test(tc, test_unknown_top_level_key_is_refused);
	tcase_add_test(tc, test_unknown_key_is_refused_with_path);
	tcase_add_test(tc, test_wrong_type_names_path_and_value);
	tcase_add_test(tc, test_out_of_range_integers_are_refused);
	tcase_add_test(tc, test_queue_and_ack_limits_are_accepted_and_range_checked);
	tcase_add_test(tc, test_syntax_error_names_file_line_and_column);
	tcase_add_test(tc, test_syntax_error_in_string_is_reported_as_string);
	tcase_add_test(tc, test_missing_file_is_reported_with_strerror);
	tcase_add_test(tc, test_document_must_be_an_object);
	tcase_add_test(tc, test_malformed_node_names_are_refused);
	tcase_add_test(tc, test_node_name_longer_than_255_bytes_is_refused);
	tcase_add_test(tc, test_listen_addrs_must_be_a_non_empty_array);
	tcase_add_test(tc, test_listen_address_needs_numeric_ip_and_port);
	tcase_add_test(tc, test_listen_addresses_are_normalised);
	tcase_add_test(tc, test_every_manager_name_is_accepted);
	tcase_add_test(tc, test_join_accepts_node_and_host_targets);
	tcase_add_test(tc, test_malformed_join_targets_are_refused);
	tcase_add_test(tc, test_default_channel_is_added_first_when_absent);
	tcase_add_test(tc, test_default_channel_stays_first_when_configured);
	tcase_add_test(tc, test_bad_channel_names_and_options_are_refused);
	tcase_add_test(tc, test_ipc_mode_is_an_octal_string);
	tcase_add_test(tc, test_ipc_socket_must_fit_sun_path);
	tcase_add_test(tc, test_ipc_allow_lists_hold_non_negative_ids);
	tcase_add_test(tc, test_cluster_name_and_secret_file_are_checked);
	tcase_add_test(tc, test_cluster_insecure_is_a_boolean_off_by_default);
	tcase_add_test(tc, test_log_level_role_and_metrics_are_validated);
	tcase_add_test(tc, test_failed_load_leaves_config_unchanged);
	tcase_add_test(tc, test_second_load_overrides_only_its_keys);
	tcase_add_test(tc, test_tls_enabled_requires_cert_and_key);
	tcase_add_test(tc, test_tls_files_must_be_readable);
	tcase_add_test(tc, test_secret_file_must_be_readable);
	tcase_add_test(tc, test_flags_override_file_values);
	tcase_add_test(tc, test_bad_flags_are_refused_with_the_flag_name);
	tcase_add_test(tc, test_parse_ip_port_accepts_v4_and_bracketed_v6);
	tcase_add_test(tc, test_parse_ip_port_rejects_malformed_input);
	tcase_add_test(tc, test_dump_round_trips);
	tcase_add_test(tc, test_free_twice_is_harmless);
	tcase_add_test(tc, test_golden_set_is_present);
	tcase_add_loop_test(tc, test_golden_configs_dump_as_recorded, 0, (int)golden.gl_pathc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	char *pattern = NULL;
	int failed;

	if (asprintf(&pattern, "%s/tests/golden/config/*.json", srcdir()) < 0)
		return 1;
	if (glob(pattern, 0, NULL, &golden) != 0)
		golden.gl_pathc = 0;
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	globfree(&golden);
	free(pattern);
	return failed != 0;
}
