/* raw_stream.c: the physical limit partisan's messaging is compared with.
 * The same framed bytes (4-byte big-endian length + payload) over one raw
 * TCP loopback stream, no daemon in between:
 *   raw_stream recv WARM_S WINDOW_S        one-way: listen, count frames
 *   raw_stream send PORT SIZE SECONDS      write frames as fast as possible
 *   raw_stream pong                        echo each frame back
 *   raw_stream ping PORT SIZE SECONDS      round trips, one frame at a time
 * Listeners print "port N" once bound to 127.0.0.1 (port picked by the
 * kernel). recv prints "msgs N secs S"; ping prints "rtt N P50_US P99_US". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "raw_stream: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Listen on 127.0.0.1:0, print the port, accept one connection. */
static int accept_one(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), fd;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		die("listen");
	printf("port %d\n", ntohs(a.sin_port));
	fflush(stdout);
	if ((fd = accept(l, NULL, NULL)) < 0)
		die("accept");
	close(l);
	nodelay(fd);
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	nodelay(fd);
	return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Counting window shared by the one-way receivers: count whole frames from
 * the first one after WARM seconds for WINDOW seconds. The clock is read
 * every 64th small frame (it would cost as much as parsing one). */
struct window {
	double warm, len, first, start, last;
	long count, seen;
};

/* Returns 1 once the window is over. */
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
	w->count = w->seen - 1; /* frames after the one that opened the window */
	w->last = t;
	return t - w->start >= w->len;
}

static int do_recv(double warm, double window)
{
	static uint8_t buf[256 * 1024];
	int fd = accept_one();
	uint8_t hdr[4];
	size_t hlen = 0, left = 0; /* header bytes held; payload bytes still due */
	struct window w = {.warm = warm, .len = window};

	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (size_t i = 0; i < (size_t)r;) {
			if (left == 0 && hlen < 4) {
				hdr[hlen++] = buf[i++];
				if (hlen == 4)
					left = get_be32(hdr);
			} else {
				size_t take = (size_t)r - i < left ? (size_t)r - i : left;

				i += take;
				left -= take;
			}
			if (hlen == 4 && left == 0) { /* one whole frame */
				hlen = 0;
				if (window_frame(&w, get_be32(hdr))) {
					printf("msgs %ld secs %.6f\n", w.count, w.last - w.start);
					return 0;
				}
			}
		}
	}
	fprintf(stderr, "raw_stream: stream ended after %ld frames\n", w.seen);
	return 1;
}

/* Write frames back to back; small frames go out many per write. */
static int do_send(int port, size_t size, double secs)
{
	size_t per = size >= 65536 ? 1 : 65536 / (size + 4);
	size_t blen = per * (size + 4);
	uint8_t *b = malloc(blen);
	int fd = connect_to(port);
	double end = now_s() + secs;

	if (!b)
		die("malloc");
	for (size_t i = 0; i < per; i++) {
		put_be32(b + i * (size + 4), (uint32_t)size);
		memset(b + i * (size + 4) + 4, 'x', size);
	}
	while (now_s() < end)
		if (write_all(fd, b, blen) < 0)
			break; /* the reader is done */
	free(b);
	close(fd);
	return 0;
}

static int do_pong(void)
{
	int fd = accept_one();
	uint8_t *b = NULL;

	for (;;) {
		uint8_t hdr[4];
		uint32_t n;

		if (read_all(fd, hdr, 4) < 0)
			break;
		n = get_be32(hdr);
		if (!(b = realloc(b, n + 4)))
			die("malloc");
		memcpy(b, hdr, 4);
		if (read_all(fd, b + 4, n) < 0 || write_all(fd, b, n + 4) < 0)
			break;
	}
	free(b);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int do_ping(int port, size_t size, double secs)
{
	int fd = connect_to(port);
	uint8_t *b = malloc(size + 4);
	size_t cap = 1 << 20, n = 0;
	double *lat = malloc(cap * sizeof(double));
	double warm_end = now_s() + 0.3, end = warm_end + secs;

	if (!b || !lat)
		die("malloc");
	put_be32(b, (uint32_t)size);
	memset(b + 4, 'p', size);
	for (double t = now_s(); t < end && n < cap; t = now_s()) {
		if (write_all(fd, b, size + 4) < 0 || read_all(fd, b, size + 4) < 0)
			die("ping");
		if (t >= warm_end)
			lat[n++] = now_s() - t;
	}
	qsort(lat, n, sizeof(double), cmp_double);
	printf("rtt %zu %.1f %.1f\n", n, lat[n / 2] * 1e6, lat[n * 99 / 100] * 1e6);
	free(lat);
	free(b);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "recv") == 0)
		return do_recv(atof(argv[2]), atof(argv[3]));
	if (argc == 5 && strcmp(argv[1], "send") == 0)
		return do_send(atoi(argv[2]), (size_t)atol(argv[3]), atof(argv[4]));
	if (argc == 2 && strcmp(argv[1], "pong") == 0)
		return do_pong();
	if (argc == 5 && strcmp(argv[1], "ping") == 0)
		return do_ping(atoi(argv[2]), (size_t)atol(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: raw_stream recv WARM WINDOW | send PORT SIZE SECS | pong | "
	                "ping PORT SIZE SECS\n");
	return 2;
}
