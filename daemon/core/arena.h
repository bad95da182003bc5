/* arena.h: a bump allocator for decoding one frame. protobuf-c's unpack
 * makes a dozen small allocations per message and free_unpacked walks them
 * all back; with an arena the decode is a few pointer bumps and the free is
 * a reset. */
#ifndef PARTISAN_ARENA_H
#define PARTISAN_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena_big;

struct arena {
	unsigned char *buf;
	size_t cap, used;
	struct arena_big *big; /* allocations that did not fit, freed at reset */
	bool busy;             /* a decoded message is alive */
	ProtobufCAllocator pb; /* hands out of this arena */
};

void arena_init(struct arena *a, size_t cap);
void arena_free(struct arena *a);
/* The allocator for one decode, or NULL (protobuf-c's malloc) when the
 * arena already holds a live message: a nested decode must not reset it. */
ProtobufCAllocator *arena_begin(struct arena *a);
/* Drop everything allocated since arena_begin. */
void arena_end(struct arena *a, ProtobufCAllocator *used);

#endif
