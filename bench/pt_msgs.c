/* pt_msgs.c: partisan's messaging figures, measured at the application:
 * app -> libpartisan-client -> partisand -> TCP -> partisand -> app.
 *   pt_msgs recv SOCK NAME WARM_S WINDOW_S       one-way: count messages
 *   pt_msgs send SOCK NODE NAME SIZE SECONDS [more]
 *                                                send to NAME on NODE, flat out
 *                                                (with opts.more: bursts)
 *   pt_msgs echo SOCK NAME                       answer every call with its payload
 *   pt_msgs call SOCK NODE NAME SIZE SECONDS     partisan_call round trips
 * recv and echo print "ready" once registered. recv prints "msgs N secs S"
 * (the same counting window as raw_stream); call prints
 * "rtt N P50_US P99_US". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <partisan/client.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "pt_msgs: %s: %s\n", what, partisan_strerror(rc));
	return 1;
}

/* The counting window of raw_stream.c: whole messages from the first one
 * after WARM seconds for WINDOW seconds; the clock is read every 64th small
 * message. */
struct window {
	double warm, len, first, start, last;
	long count, seen;
};

static int window_frame(struct window *w, size_t size)
{
	double t;

	if (++w->seen % 64 != 1 && size < 4096 && w->first != 0)
		return 0;
	t = now_s();
	if (w->first == 0)
		w->first = t;
	if (w->start == 0) {
		if (t - w->first < w->warm)
			return 0;
		w->start = t;
		w->seen = 1;
	}
	w->count = w->seen - 1;
	w->last = t;
	return t - w->start >= w->len;
}

static int do_recv(partisan_t *c, const char *name, double warm, double window)
{
	struct window w = {.warm = warm, .len = window};
	int rc;

	if ((rc = partisan_register(c, name)) < 0)
		return fail("register", rc);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		partisan_event_t *ev;
		int done = 0;

		if ((rc = partisan_recv(c, &ev, 10000)) < 0)
			return fail("recv", rc);
		if (ev->type == PARTISAN_EV_MESSAGE)
			done = window_frame(&w, ev->message.len);
		partisan_event_free(ev);
		if (done)
			break;
	}
	printf("msgs %ld secs %.6f\n", w.count, w.last - w.start);
	return 0;
}

static int do_send(partisan_t *c, const char *node, const char *name, size_t size, double secs,
                   bool more)
{
	partisan_send_opts_t o = {.more = more};
	char *buf = malloc(size ? size : 1);
	double end = now_s() + secs;
	int rc = 0;

	if (!buf)
		return fail("malloc", PARTISAN_ENOMEM);
	memset(buf, 'x', size);
	for (long i = 0; rc >= 0; i++) {
		if (i % 64 == 0 && now_s() >= end)
			break;
		rc = partisan_send_name(c, node, name, buf, size, more ? &o : NULL);
	}
	free(buf);
	return 0; /* an error here means the receiver is done */
}

static int do_echo(partisan_t *c, const char *name)
{
	int rc;

	if ((rc = partisan_register(c, name)) < 0)
		return fail("register", rc);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		partisan_event_t *ev;

		if ((rc = partisan_recv(c, &ev, -1)) < 0)
			return fail("recv", rc);
		if (ev->type == PARTISAN_EV_MESSAGE && ev->message.call_ref)
			partisan_reply(c, ev, ev->message.payload, ev->message.len);
		partisan_event_free(ev);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int do_call(partisan_t *c, const char *node, const char *name, size_t size, double secs)
{
	char *buf = malloc(size ? size : 1);
	size_t cap = 1 << 20, n = 0;
	double *lat = malloc(cap * sizeof(double));
	double warm_end = now_s() + 0.3, end = warm_end + secs;
	int rc;

	if (!buf || !lat)
		return fail("malloc", PARTISAN_ENOMEM);
	memset(buf, 'p', size);
	for (double t = now_s(); t < end && n < cap; t = now_s()) {
		partisan_buf_t reply = {0};

		if ((rc = partisan_call_name(c, node, name, buf, size, 5000, &reply)) < 0)
			return fail("call", rc);
		if (reply.len != size)
			return fail("call: reply size", PARTISAN_EPROTO);
		partisan_buf_free(&reply);
		if (t >= warm_end)
			lat[n++] = now_s() - t;
	}
	if (n == 0)
		return fail("call: no round trips", PARTISAN_ETIMEDOUT);
	qsort(lat, n, sizeof(double), cmp_double);
	printf("rtt %zu %.1f %.1f\n", n, lat[n / 2] * 1e6, lat[n * 99 / 100] * 1e6);
	free(lat);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	partisan_t *c;
	int rc = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: pt_msgs recv|send|echo|call SOCK ...\n");
		return 2;
	}
	if ((rc = partisan_connect(argv[2], &c)) < 0)
		return fail("connect", rc);
	if (argc == 6 && strcmp(argv[1], "recv") == 0)
		rc = do_recv(c, argv[3], atof(argv[4]), atof(argv[5]));
	else if ((argc == 7 || (argc == 8 && strcmp(argv[7], "more") == 0)) &&
	         strcmp(argv[1], "send") == 0)
		rc = do_send(c, argv[3], argv[4], (size_t)atol(argv[5]), atof(argv[6]), argc == 8);
	else if (argc == 4 && strcmp(argv[1], "echo") == 0)
		rc = do_echo(c, argv[3]);
	else if (argc == 7 && strcmp(argv[1], "call") == 0)
		rc = do_call(c, argv[3], argv[4], (size_t)atol(argv[5]), atof(argv[6]));
	else
		fprintf(stderr, "pt_msgs: bad arguments\n"), rc = 2;
	partisan_close(c);
	return rc;
}
