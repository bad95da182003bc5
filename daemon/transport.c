/* transport.c: the plain TCP transport. */
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "transport.h"

static struct bufferevent *tcp_dial(void *ctx, struct event_base *base, const struct sockaddr *sa,
                                    socklen_t len)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL)
		return NULL;
	if (bufferevent_socket_connect(bev, (struct sockaddr *)sa, (int)len) < 0) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

static struct bufferevent *tcp_accept(void *ctx, struct event_base *base, int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
}

const struct transport_ops transport_tcp = {
    .name = "tcp",
    .direct_write = true,
    .dial = tcp_dial,
    .accept = tcp_accept,
};
