/* ptclient.c: a small program built on libpartisan-client that the
 * integration tests drive: it plays a sender, a receiver that checks order,
 * a monitor, an endpoint that waits to be killed or closed, and a receiver
 * that never reads. Each mode prints "ready ..." once it is set up. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <partisan/client.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "ptclient: %s: %s\n", what, partisan_strerror(rc));
	return 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *opt(int argc, char **argv, const char *name)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

/* "ID:SEQ:..." from a payload that is not NUL-terminated. */
static int parse_seq(const partisan_event_t *ev, char id[32], long *seq)
{
	char head[64];
	size_t n = ev->message.len < sizeof(head) - 1 ? ev->message.len : sizeof(head) - 1;

	memcpy(head, ev->message.payload, n);
	head[n] = '\0';
	return sscanf(head, "%31[^:]:%ld:", id, seq) == 2 ? 0 : -1;
}

/* After "ID:SEQ:" a source's payload is 'x' to the end: a byte lost,
 * doubled or moved on the way shows. */
static bool filler_ok(const partisan_event_t *ev)
{
	const char *p = ev->message.payload, *end = p + ev->message.len;
	int colons = 0;

	while (p < end && colons < 2)
		colons += *p++ == ':';
	for (; p < end; p++)
		if (*p != 'x')
			return false;
	return true;
}

static bool flag(int argc, char **argv, const char *name)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

/* Wait until stdin says something or closes. */
static void wait_stdin(void)
{
	char buf[64];

	while (read(0, buf, sizeof(buf)) < 0 && errno == EINTR)
		;
}

/* source SOCK NODE NAME COUNT [--ack] [--size N] [--id S] [--channel C] [--key K] [--pace-us N]
 *        [--more] [--close] */
static int mode_source(partisan_t *c, int argc, char **argv)
{
	partisan_send_opts_t o = {0};
	long count = atol(argv[4]);
	size_t size = opt(argc, argv, "--size") ? (size_t)atol(opt(argc, argv, "--size")) : 64;
	const char *id = opt(argc, argv, "--id") ? opt(argc, argv, "--id") : "s";
	long every = opt(argc, argv, "--flush-every") ? atol(opt(argc, argv, "--flush-every")) : 0;
	long pace = opt(argc, argv, "--pace-us") ? atol(opt(argc, argv, "--pace-us")) : 0;
	char *buf = calloc(1, size + 64);
	double t0;
	int rc;

	o.ack = flag(argc, argv, "--ack");
	o.channel = opt(argc, argv, "--channel");
	o.causal_label = opt(argc, argv, "--causal");
	o.transitive = flag(argc, argv, "--transitive");
	o.more = flag(argc, argv, "--more");
	if (opt(argc, argv, "--key")) {
		o.partition_key = opt(argc, argv, "--key");
		o.partition_key_len = strlen(o.partition_key);
	}
	printf("ready\n");
	fflush(stdout);
	t0 = now_s();
	for (long i = 0; i < count; i++) {
		int n = snprintf(buf, 64, "%s:%ld:", id, i);

		memset(buf + n, 'x', size > (size_t)n ? size - (size_t)n : 0);
		rc = partisan_send_name(c, argv[2], argv[3], buf,
		                        size > (size_t)n ? size : (size_t)n, &o);
		if (rc < 0)
			return fail("send", rc);
		/* --flush-every N: wait for the daemon after every N sends, so
		 * that messages leave one by one (a packet each) */
		if (every > 0 && (i + 1) % every == 0 && (rc = partisan_flush(c)) < 0)
			return fail("flush", rc);
		/* --pace-us N: a steady stream over a while (load during a
		 * reload, say), not a burst */
		if (pace > 0 && (rc = partisan_flush(c)) == 0)
			usleep((useconds_t)pace);
	}
	/* --close: what sends with more held back must go out with the close */
	if (flag(argc, argv, "--close")) {
		printf("sent %ld in %.3fs\n", count, now_s() - t0);
		fflush(stdout);
		free(buf);
		partisan_close(c);
		exit(0);
	}
	if ((rc = partisan_flush(c)) < 0)
		return fail("flush", rc);
	printf("sent %ld in %.3fs\n", count, now_s() - t0);
	free(buf);
	if (flag(argc, argv, "--wait-lost")) {
		partisan_event_t *ev;

		while ((rc = partisan_recv(c, &ev, 30000)) == 0) {
			if (ev->type == PARTISAN_EV_ACK_LOST) {
				printf("lost %llu to %s (%s)\n",
				       (unsigned long long)ev->ack_lost.count, ev->ack_lost.to,
				       ev->ack_lost.reason ? ev->ack_lost.reason : "");
				partisan_event_free(ev);
				return 0;
			}
			partisan_event_free(ev);
		}
		return fail("waiting for ack_lost", rc);
	}
	if (flag(argc, argv, "--wait"))
		wait_stdin();
	return 0;
}

/* relay SOCK NAME NODE TARGET LABEL: forward every message received to
 * TARGET on NODE with causal label LABEL. */
static int mode_relay(partisan_t *c, int argc, char **argv)
{
	partisan_send_opts_t o = {.causal_label = argv[5]};
	int rc;

	if ((rc = partisan_register(c, argv[2])) < 0)
		return fail("register", rc);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		partisan_event_t *ev;

		if ((rc = partisan_recv(c, &ev, -1)) < 0)
			return fail("recv", rc);
		if (ev->type == PARTISAN_EV_MESSAGE) {
			char buf[256];
			size_t n = ev->message.len < 200 ? ev->message.len : 200;

			memcpy(buf, "relayed-", 8);
			memcpy(buf + 8, ev->message.payload, n);
			rc = partisan_send_name(c, argv[3], argv[4], buf, n + 8, &o);
			printf("relayed %d\n", rc);
		}
		partisan_event_free(ev);
	}
}

/* Hand every event to fn until stdin speaks or closes (exit 0) or the
 * daemon goes away (exit 1). */
static int until_stdin(partisan_t *c, void (*fn)(const partisan_event_t *))
{
	for (;;) {
		struct pollfd p[2] = {{.fd = 0, .events = POLLIN},
		                      {.fd = partisan_fd(c), .events = POLLIN}};
		partisan_event_t *ev;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (p[0].revents)
			return 0;
		if (partisan_dispatch(c) < 0)
			return fail("dispatch", PARTISAN_EIO);
		while (partisan_recv(c, &ev, 0) == 0) {
			fn(ev);
			partisan_event_free(ev);
		}
	}
}

static void print_broadcast(const partisan_event_t *ev)
{
	if (ev->type == PARTISAN_EV_BROADCAST)
		printf("%.*s\n", (int)ev->broadcast.len, (const char *)ev->broadcast.payload);
}

static void print_got(const partisan_event_t *ev)
{
	(void)ev;
	printf("got\n");
}

/* subscribe SOCK TOPIC: print each broadcast payload, one per line, until
 * stdin speaks. */
static int mode_subscribe(partisan_t *c, int argc, char **argv)
{
	int rc = partisan_subscribe(c, argv[2]);

	if (rc < 0)
		return fail("subscribe", rc);
	printf("ready\n");
	fflush(stdout);
	return until_stdin(c, print_broadcast);
}

/* print SOCK NAME COUNT: print each payload received, one per line. */
static int mode_print(partisan_t *c, int argc, char **argv)
{
	long want = atol(argv[3]);
	int rc;

	if ((rc = partisan_register(c, argv[2])) < 0)
		return fail("register", rc);
	printf("ready\n");
	fflush(stdout);
	for (long got = 0; got < want;) {
		partisan_event_t *ev;

		if ((rc = partisan_recv(c, &ev, 60000)) < 0)
			return fail("recv", rc);
		if (ev->type == PARTISAN_EV_MESSAGE) {
			printf("%.*s\n", (int)ev->message.len, (const char *)ev->message.payload);
			got++;
		}
		partisan_event_free(ev);
	}
	return 0;
}

/* sink SOCK NAME COUNT: every sender's sequence must arrive whole, in order. */
static int mode_sink(partisan_t *c, int argc, char **argv)
{
	long want = atol(argv[3]), got = 0;
	char senders[16][32];
	long next[16];
	int nsenders = 0, rc;
	double t0 = 0;

	if ((rc = partisan_register(c, argv[2])) < 0)
		return fail("register", rc);
	printf("ready\n");
	fflush(stdout);
	while (got < want) {
		partisan_event_t *ev;
		char id[32];
		long seq;
		int k;

		rc = partisan_recv(c, &ev, 30000);
		if (rc < 0)
			return fprintf(stderr, "ptclient: after %ld messages: %s\n", got,
			               partisan_strerror(rc)),
			       1;
		if (ev->type != PARTISAN_EV_MESSAGE) {
			partisan_event_free(ev);
			continue;
		}
		if (got == 0)
			t0 = now_s();
		if (parse_seq(ev, id, &seq) < 0 || !filler_ok(ev)) {
			fprintf(stderr, "ptclient: bad payload\n");
			return 1;
		}
		for (k = 0; k < nsenders && strcmp(senders[k], id) != 0; k++)
			;
		if (k == nsenders) {
			if (nsenders == 16)
				return fprintf(stderr, "ptclient: too many senders\n"), 1;
			snprintf(senders[nsenders], sizeof(senders[0]), "%s", id);
			next[nsenders++] = 0;
		}
		if (seq != next[k]) {
			fprintf(stderr, "ptclient: from %s expected #%ld, got #%ld\n", id, next[k],
			        seq);
			return 1;
		}
		next[k]++;
		got++;
		partisan_event_free(ev);
	}
	printf("ok %ld in %.3fs\n", got, now_s() - t0);
	return 0;
}

/* usink SOCK NAME COUNT: exactly once, any order: every sequence number in
 * 0..COUNT-1 arrives once; a duplicate fails. */
static int mode_usink(partisan_t *c, int argc, char **argv)
{
	long want = atol(argv[3]), got = 0, dups = 0;
	unsigned char *seen = calloc((size_t)want + 1, 1);
	int rc;

	if ((rc = partisan_register(c, argv[2])) < 0)
		return fail("register", rc);
	printf("ready\n");
	fflush(stdout);
	while (got < want) {
		partisan_event_t *ev;
		char id[32];
		long seq;

		if ((rc = partisan_recv(c, &ev, 60000)) < 0) {
			fprintf(stderr, "ptclient: after %ld messages: %s\n", got,
			        partisan_strerror(rc));
			free(seen);
			return 1;
		}
		if (ev->type == PARTISAN_EV_MESSAGE && parse_seq(ev, id, &seq) == 0 && seq >= 0 &&
		    seq < want) {
			if (seen[seq])
				dups++;
			else
				got++;
			seen[seq] = 1;
		}
		partisan_event_free(ev);
	}
	printf("ok %ld duplicates %ld\n", got, dups);
	free(seen);
	return dups ? 1 : 0;
}

/* caller SOCK NODE NAME TIMEOUT_MS: call in a loop until stdin speaks,
 * printing "T ok MS" or "T E<code> MS <text>" per call (T: seconds since
 * start; code: the positive PARTISAN_E* number). */
static int mode_caller(partisan_t *c, int argc, char **argv)
{
	int timeout = atoi(argv[4]);
	double t0 = now_s();
	struct pollfd in = {.fd = 0, .events = POLLIN};

	printf("ready\n");
	fflush(stdout);
	for (long i = 0;; i++) {
		partisan_buf_t reply = {0};
		char req[32];
		double t = now_s();
		int rc;

		snprintf(req, sizeof(req), "req-%ld", i);
		rc = partisan_call_name(c, argv[2], argv[3], req, strlen(req), timeout, &reply);
		if (rc == 0 &&
		    (reply.len != strlen(req) || memcmp(reply.data, req, reply.len) != 0))
			rc = PARTISAN_EPROTO;
		if (rc == 0)
			printf("%.3f ok %.0f\n", t - t0, (now_s() - t) * 1000);
		else
			printf("%.3f E%d %.0f %s\n", t - t0, -rc, (now_s() - t) * 1000,
			       partisan_strerror(rc));
		partisan_buf_free(&reply);
		/* Pace failing calls; successful ones go back to back. */
		if (poll(&in, 1, rc == 0 ? 0 : 20) > 0)
			return 0;
	}
}

/* monitor SOCK REF: print the DOWN that comes. */
static int mode_monitor(partisan_t *c, int argc, char **argv)
{
	char mref[PARTISAN_REF_MAX];
	int rc = partisan_monitor(c, argv[2], mref, sizeof(mref));

	if (rc < 0)
		return fail("monitor", rc);
	/* A message behind the monitor request on the same link: when the target
	 * has it, the monitor is in place there too. */
	partisan_send(c, argv[2], "ping", 4, NULL);
	printf("ready %s\n", mref);
	fflush(stdout);
	for (;;) {
		partisan_event_t *ev;

		if ((rc = partisan_recv(c, &ev, 60000)) < 0)
			return fail("recv", rc);
		if (ev->type == PARTISAN_EV_DOWN) {
			printf("DOWN %s %s %s\n", ev->down.mref, ev->down.target, ev->down.reason);
			partisan_event_free(ev);
			return 0;
		}
		partisan_event_free(ev);
	}
}

/* nodemon SOCK NODE [CALLS]: monitor_node(NODE) CALLS times (default 2:
 * still one monitor), print the nodedown that comes, then "extra" for any
 * second one that follows within a second, or "once". */
static int mode_nodemon(partisan_t *c, int argc, char **argv)
{
	partisan_event_t *ev;
	int calls = argc > 3 ? atoi(argv[3]) : 2, rc;

	for (int i = 0; i < calls; i++)
		if ((rc = partisan_monitor_node(c, argv[2], true)) < 0)
			return fail("monitor_node", rc);
	printf("ready\n");
	for (;;) {
		if ((rc = partisan_recv(c, &ev, 60000)) < 0)
			return fail("recv", rc);
		if (ev->type == PARTISAN_EV_NODEDOWN)
			break;
		partisan_event_free(ev);
	}
	printf("NODEDOWN %s %s\n", ev->node.node, ev->node.reason ? ev->node.reason : "-");
	partisan_event_free(ev);
	while ((rc = partisan_recv(c, &ev, 1000)) == 0) {
		bool again = ev->type == PARTISAN_EV_NODEDOWN;

		partisan_event_free(ev);
		if (again) {
			printf("extra\n");
			return 1;
		}
	}
	printf("once\n");
	return 0;
}

/* hold SOCK NAME: register, print "got" for each message, close cleanly
 * when stdin speaks. */
static int mode_hold(partisan_t *c, int argc, char **argv)
{
	char self[PARTISAN_REF_MAX];
	int rc = partisan_register(c, argv[2]);

	if (rc < 0)
		return fail("register", rc);
	partisan_self(c, self, sizeof(self));
	printf("ready %s\n", self);
	fflush(stdout);
	return until_stdin(c, print_got);
}

/* deaf SOCK NAME: register and never read; exit when stdin speaks. */
static int mode_deaf(partisan_t *c, int argc, char **argv)
{
	char self[PARTISAN_REF_MAX];
	int rc = partisan_register(c, argv[2]);

	if (rc < 0)
		return fail("register", rc);
	partisan_self(c, self, sizeof(self));
	printf("ready %s\n", self);
	fflush(stdout);
	wait_stdin();
	return 0;
}

/* flood SOCK NODE NAME SECONDS SIZE [--channel C]: nonblocking sends for a
 * while; prints how many went and how often the daemon pushed back. */
static int mode_flood(partisan_t *c, int argc, char **argv)
{
	partisan_send_opts_t o = {.nonblock = true, .channel = opt(argc, argv, "--channel")};
	double end = now_s() + atof(argv[4]);
	size_t size = (size_t)atol(argv[5]);
	char *buf = calloc(1, size);
	long sent = 0, again = 0;

	memset(buf, 'f', size);
	printf("ready\n");
	fflush(stdout);
	while (now_s() < end) {
		int rc = partisan_send_name(c, argv[2], argv[3], buf, size, &o);

		if (rc == PARTISAN_EAGAIN) {
			again++;
			poll(NULL, 0, 1);
			continue;
		}
		if (rc < 0)
			return fail("send", rc);
		sent++;
	}
	printf("sent %ld eagain %ld\n", sent, again);
	free(buf);
	return 0;
}

struct mode {
	const char *name;
	int argc;
	int (*run)(partisan_t *, int, char **);
};

static const struct mode modes[] = {
    {"source", 6, mode_source}, {"sink", 5, mode_sink},           {"monitor", 4, mode_monitor},
    {"hold", 4, mode_hold},     {"deaf", 4, mode_deaf},           {"flood", 7, mode_flood},
    {"usink", 5, mode_usink},   {"caller", 6, mode_caller},       {"relay", 7, mode_relay},
    {"print", 5, mode_print},   {"subscribe", 4, mode_subscribe}, {"nodemon", 4, mode_nodemon},
};

int main(int argc, char **argv)
{
	partisan_t *c;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc >= 3 && i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(argv[1], modes[i].name) != 0)
			continue;
		if (argc < modes[i].argc)
			break;
		if ((rc = partisan_connect(argv[2], &c)) < 0)
			return fail("connect", rc);
		/* argv shifted so that argv[1] is the socket */
		rc = modes[i].run(c, argc - 1, argv + 1);
		partisan_close(c);
		return rc;
	}
	fprintf(stderr, "usage: ptclient source|sink|monitor|hold|deaf|flood SOCKET ...\n");
	return 2;
}
