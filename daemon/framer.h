/* framer.h: the one frame reader of the shell, for the IPC socket and the
 * peer links alike. A frame is a 4-byte big-endian length and a protobuf
 * message (wire.h); the reader takes whole frames out of a bufferevent's
 * input, refuses one over its limit before buffering it, and decodes into
 * an arena, with a big payload's bytes split out instead of copied
 * (splice.h). */
#ifndef PARTISAN_FRAMER_H
#define PARTISAN_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct arena;
struct evbuffer;

struct framer {
	const ProtobufCMessageDescriptor *desc;
	const uint32_t *path; /* the bytes field a big payload is split from */
	struct arena *arena;  /* decodes go here */
	struct evbuffer *big; /* where a split payload's bytes go */
};

/* One decoded frame, until frame_done. */
struct frame {
	ProtobufCMessage *msg;
	ProtobufCAllocator *al; /* the arena's, or NULL: msg is protobuf-c's own */
	uint32_t len;           /* bytes after the header */
	bool big;               /* the payload is in the framer's big buffer */
};

enum frame_status {
	FRAME_OK,      /* *f holds the next message */
	FRAME_WAIT,    /* not a whole frame yet */
	FRAME_TOO_BIG, /* the header says over max bytes (f->len: how many) */
	FRAME_BAD,     /* the bytes do not decode as the message */
};

/* Take the next frame out of in. depth: how deep path may be followed
 * (0: never split). */
enum frame_status frame_next(const struct framer *fr, struct evbuffer *in, uint64_t max,
                             size_t depth, struct frame *f);
/* Free f's message and empty the big buffer. */
void frame_done(const struct framer *fr, struct frame *f);

#endif
