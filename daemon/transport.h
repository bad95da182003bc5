/* transport.h: how a peer connection's byte stream is made. The peer layer
 * reads and writes a bufferevent and never knows whether plain TCP or TLS is
 * beneath it: a transport turns a socket into that bufferevent, for both the
 * dialing and the accepting side (as redis's ConnectionType does), and
 * answers the few questions only it can (who the peer proved to be, why a
 * link failed). The per-connection handle it returns lives as long as the
 * bufferevent and is freed with it. */
#ifndef PARTISAN_TRANSPORT_H
#define PARTISAN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct bufferevent;

struct transport_ops {
	const char *name;
	/* Frames may be written to and read from the socket fd directly. */
	bool direct_io;
	/* Start connecting to sa; NULL on failure. Completion is reported as
	 * BEV_EVENT_CONNECTED on the bufferevent. *conn: the handle. */
	struct bufferevent *(*dial)(void *ctx, struct event_base *base, const struct sockaddr *sa,
	                            socklen_t len, void **conn);
	/* Wrap an accepted socket from sa: fd is the result's, or closed (NULL). */
	struct bufferevent *(*accept)(void *ctx, struct event_base *base, int fd,
	                              const struct sockaddr *sa, void **conn);
	/* No more output: once what is queued has left, half-close. */
	void (*close_write)(struct bufferevent *bev, void *conn);
	/* 0 when the peer may call itself node (its credentials name it), else
	 * -1 with why. NULL: any name. */
	int (*peer_name_ok)(void *conn, const char *node, char *why, size_t whylen);
	/* What the peer proved (a certificate's subject, "psk"), or NULL. */
	const char *(*peer_subject)(void *conn);
	/* Why the link failed when the transport knows (else NULL: errno). */
	const char *(*error)(void *conn);
};

extern const struct transport_ops transport_tcp;

/* The socket beneath bev, whatever wraps it; -1 if none. */
int transport_fd(struct bufferevent *bev);

#endif
