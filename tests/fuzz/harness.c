/* harness.c: one real partisand opened in the fuzzing process
 * (daemon_open, as partisand's main does), fed through real sockets with its
 * event loop turned by the caller: no threads, no second process. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

#include "daemon.h"
#include "fuzz.h"
#include "log.h"
#include "nodespec.h"
#include "wire.h"

#define FUZZ_TURNS 20000 /* loop turns an input may take before it is cut off */

static struct config cfg;
static struct daemon d;
static bool opened;
static unsigned long long fed, answered, closed_by_daemon;
static char dir[] = "/tmp/partisan-fuzz-XXXXXX";

static void fuzz_daemon_close(void)
{
	printf("daemon: %llu connections fed, %llu bytes answered, %llu closed by the daemon\n",
	       fed, answered, closed_by_daemon);
	daemon_close(&d);
	config_free(&cfg);
	rmdir(dir);
}

struct daemon *fuzz_daemon(void)
{
	char json[512], err[256];

	if (opened)
		return &d;
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL) {
		perror("fuzz: mkdtemp");
		exit(1);
	}
	snprintf(json, sizeof(json),
	         "{\"name\": \"fuzzed@127.0.0.1\", \"listen_addrs\": [{\"ip\": \"127.0.0.1\", "
	         "\"port\": 0}], \"ipc\": {\"socket\": \"%s/f.sock\"}, \"log\": {\"level\": "
	         "\"error\"}, \"max_frame_bytes\": 65536}",
	         dir);
	config_defaults(&cfg);
	if (config_load_string(&cfg, json, err, sizeof(err)) < 0 ||
	    config_finish(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz: config: %s\n", err);
		exit(1);
	}
	log_init(cfg.log_level);
	if (daemon_open(&d, &cfg, 1) < 0) {
		fprintf(stderr, "fuzz: the daemon did not open\n");
		exit(1);
	}
	opened = true;
	atexit(fuzz_daemon_close);
	return &d;
}

int fuzz_connect_peer(void)
{
	struct daemon *dm = fuzz_daemon();
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_port = htons(dm->self->addrs[0].port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("fuzz: connect to the peer port");
		exit(1);
	}
	return fd;
}

int fuzz_connect_ipc(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	fuzz_daemon();
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/f.sock", dir);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		perror("fuzz: connect to the IPC socket");
		exit(1);
	}
	return fd;
}

/* Read and drop what the daemon sent; false once it closed the connection. */
static bool fuzz_drain(int fd)
{
	uint8_t sink[16384];
	ssize_t n;

	while ((n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
		answered += (size_t)n;
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void fuzz_feed(int fd, const uint8_t *buf, size_t len)
{
	size_t off = 0;
	int turns = 0;

	fed++;
	while (off < len && turns++ < FUZZ_TURNS) {
		ssize_t n = send(fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break; /* the daemon closed it: fine, that is its answer */
		event_base_loop(d.base, EVLOOP_NONBLOCK);
		if (!fuzz_drain(fd))
			break;
	}
	shutdown(fd, SHUT_WR);
	for (turns = 0; turns < FUZZ_TURNS; turns++) {
		event_base_loop(d.base, EVLOOP_NONBLOCK);
		if (!fuzz_drain(fd)) {
			closed_by_daemon++;
			break;
		}
	}
	close(fd);
	for (turns = 0; turns < 4; turns++)
		event_base_loop(d.base, EVLOOP_NONBLOCK);
}

void fuzz_input(int (*connect)(void), void (*hello)(struct fuzz_buf *), const uint8_t *data,
                size_t size)
{
	struct fuzz_buf b = {0};

	if (size == 0)
		return;
	if (data[0] & 1)
		hello(&b);
	b.data = realloc(b.data, b.len + size);
	memcpy(b.data + b.len, data + 1, size - 1);
	b.len += size - 1;
	fuzz_feed(connect(), b.data, b.len);
	free(b.data);
}

void fuzz_frame(struct fuzz_buf *b, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);

	b->data = realloc(b->data, b->len + FRAME_HEADER + len);
	frame_put_header(b->data + b->len, (uint32_t)len);
	protobuf_c_message_pack(msg, b->data + b->len + FRAME_HEADER);
	b->len += FRAME_HEADER + len;
}
