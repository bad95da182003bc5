/* framer.c: see framer.h. */
#include <event2/buffer.h>

#include "arena.h"
#include "framer.h"
#include "splice.h"
#include "wire.h"

enum frame_status frame_next(const struct framer *fr, struct evbuffer *in, uint64_t max,
                             size_t depth, struct frame *f)
{
	uint8_t hdr[FRAME_HEADER];

	f->msg = NULL;
	f->al = NULL;
	f->big = false;
	f->len = 0;
	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return FRAME_WAIT;
	if (frame_peek(hdr, sizeof(hdr), max, &f->len) < 0)
		return FRAME_TOO_BIG;
	if (evbuffer_get_length(in) < FRAME_HEADER + (size_t)f->len)
		return FRAME_WAIT;
	evbuffer_drain(in, FRAME_HEADER);
	f->al = arena_begin(fr->arena);
	f->msg = splice_unpack(in, f->len, fr->desc, fr->path, depth, f->al, fr->big, &f->big);
	if (f->msg == NULL) {
		arena_end(fr->arena, f->al);
		f->al = NULL;
		return FRAME_BAD;
	}
	return FRAME_OK;
}

void frame_done(const struct framer *fr, struct frame *f)
{
	evbuffer_drain(fr->big, evbuffer_get_length(fr->big));
	if (f->al)
		arena_end(fr->arena, f->al);
	else if (f->msg)
		protobuf_c_message_free_unpacked(f->msg, NULL);
	f->msg = NULL;
	f->al = NULL;
}
