/* ss_heap.c: the simulator's event queue, a binary heap ordered by (time,
 * sequence number) so that events due at the same time run in the order
 * they were scheduled. */
#include "simscale.h"

static bool ss_before(const struct ss_event *a, const struct ss_event *b)
{
	return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

void ss_heap_push(struct ss_world *w, struct ss_event e)
{
	size_t i;

	if (w->nheap == w->capheap) {
		w->capheap = w->capheap ? 2 * w->capheap : 1024;
		w->heap = xrealloc(w->heap, w->capheap * sizeof(*w->heap));
	}
	e.seq = w->seq++;
	i = w->nheap++;
	while (i > 0 && ss_before(&e, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = e;
}

struct ss_event ss_heap_pop(struct ss_world *w)
{
	struct ss_event top = w->heap[0], last = w->heap[--w->nheap];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < w->nheap) {
		if (c + 1 < w->nheap && ss_before(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!ss_before(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->nheap > 0)
		w->heap[i] = last;
	return top;
}
