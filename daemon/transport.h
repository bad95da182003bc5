/* transport.h: how a peer connection's byte stream is made. The peer layer
 * reads and writes a bufferevent and never knows whether plain TCP or TLS is
 * beneath it: a transport turns a socket into that bufferevent, for both the
 * dialing and the accepting side (as redis's ConnectionType does). */
#ifndef PARTISAN_TRANSPORT_H
#define PARTISAN_TRANSPORT_H

#include <stdbool.h>
#include <sys/socket.h>

struct event_base;
struct bufferevent;

struct transport_ops {
	const char *name;
	bool direct_write; /* frames may be written to the socket fd directly */
	/* Start connecting to sa; NULL on failure. Completion is reported as
	 * BEV_EVENT_CONNECTED on the bufferevent. */
	struct bufferevent *(*dial)(void *ctx, struct event_base *base, const struct sockaddr *sa,
	                            socklen_t len);
	/* Wrap an accepted socket (ownership of fd passes to the result). */
	struct bufferevent *(*accept)(void *ctx, struct event_base *base, int fd);
};

extern const struct transport_ops transport_tcp;

#endif
