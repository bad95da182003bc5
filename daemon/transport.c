/* transport.c: the plain TCP transport (tls.c is the other). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "transport.h"

int transport_fd(struct bufferevent *bev)
{
	struct bufferevent *under;

	while ((under = bufferevent_get_underlying(bev)) != NULL)
		bev = under;
	return (int)bufferevent_getfd(bev);
}

static struct bufferevent *tcp_dial(void *ctx, struct event_base *base, const struct sockaddr *sa,
                                    socklen_t len, void **conn)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	*conn = NULL;
	if (bev == NULL)
		return NULL;
	if (bufferevent_socket_connect(bev, (struct sockaddr *)sa, (int)len) < 0) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

static struct bufferevent *tcp_accept(void *ctx, struct event_base *base, int fd,
                                      const struct sockaddr *sa, void **conn)
{
	int one = 1;

	struct bufferevent *bev;

	*conn = NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		close(fd);
	return bev;
}

static void tcp_close_write(struct bufferevent *bev, void *conn)
{
	int fd = transport_fd(bev);

	if (fd >= 0)
		shutdown(fd, SHUT_WR);
}

const struct transport_ops transport_tcp = {
    .name = "tcp",
    .direct_io = true,
    .dial = tcp_dial,
    .accept = tcp_accept,
    .close_write = tcp_close_write,
};
