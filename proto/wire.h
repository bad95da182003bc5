/* wire.h: framing shared by the IPC and peer protocols, protocol versions,
 * and reference URIs (partisan:pid:NODE:ID, partisan:name:NODE:NAME,
 * partisan:ref:NODE:ID), used by the daemon and libpartisan-client alike. */
#ifndef PARTISAN_WIRE_H
#define PARTISAN_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Bump if you change proto/peer.proto incompatibly. */
#define PEER_PROTOCOL_VERSION 1
/* Bump if you change proto/ipc.proto incompatibly. */
#define IPC_PROTOCOL_VERSION 1

#define FRAME_HEADER 4

/* Write the 4-byte big-endian length of a frame body into hdr. */
void frame_put_header(uint8_t hdr[FRAME_HEADER], uint32_t len);

/* Look at the first bytes of a stream buffer. Returns 1 with *len set when a
 * whole header is there, 0 when more bytes are needed, -1 when the length is
 * over max (the connection must be closed). */
int frame_peek(const uint8_t *buf, size_t avail, uint64_t max, uint32_t *len);

enum ref_kind { REF_PID, REF_NAME, REF_REF };

#define REF_NODE_MAX 256
#define REF_ID_MAX   256

struct ref {
	enum ref_kind kind;
	char node[REF_NODE_MAX]; /* NAME@HOST */
	char id[REF_ID_MAX];     /* numeric id for pid/ref, the name for name */
};

/* Parse a reference URI. Returns 0, or -1 when s is not a valid ref. */
int ref_parse(const char *s, struct ref *out);
/* Format a ref into buf (size n). Returns the length, or -1 if it won't fit. */
int ref_format(const struct ref *r, char *buf, size_t n);
/* Convenience: format kind/node/id into buf. */
int ref_make(enum ref_kind kind, const char *node, const char *id, char *buf, size_t n);

#endif
