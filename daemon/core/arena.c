/* arena.c: the bump allocator for decoding one frame (see arena.h). */
#include <stdint.h>
#include <stdlib.h>

#include "arena.h"
#include "core.h"

#define ARENA_ALIGN 16

struct arena_big {
	struct arena_big *next;
	max_align_t data[];
};

static void *arena_alloc(void *arg, size_t n)
{
	struct arena *a = arg;
	size_t at = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	struct arena_big *b;

	if (at + n <= a->cap) {
		a->used = at + n;
		return a->buf + at;
	}
	b = xmalloc(sizeof(*b) + n);
	b->next = a->big;
	a->big = b;
	return b->data;
}

static void arena_nofree(void *arg, void *p)
{
	(void)arg;
	(void)p; /* everything goes at arena_end */
}

void arena_init(struct arena *a, size_t cap)
{
	a->buf = xmalloc(cap);
	a->cap = cap;
	a->used = 0;
	a->big = NULL;
	a->busy = false;
	a->pb.alloc = arena_alloc;
	a->pb.free = arena_nofree;
	a->pb.allocator_data = a;
}

static void arena_reset(struct arena *a)
{
	while (a->big) {
		struct arena_big *b = a->big;

		a->big = b->next;
		free(b);
	}
	a->used = 0;
}

void arena_free(struct arena *a)
{
	arena_reset(a);
	free(a->buf);
	a->buf = NULL;
	a->cap = 0;
}

ProtobufCAllocator *arena_begin(struct arena *a)
{
	if (a->busy || a->buf == NULL)
		return NULL;
	a->busy = true;
	return &a->pb;
}

void arena_end(struct arena *a, ProtobufCAllocator *used)
{
	if (used != &a->pb)
		return;
	arena_reset(a);
	a->busy = false;
}
