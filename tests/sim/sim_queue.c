/* sim_queue.c: the simulator's event queue, a binary min-heap ordered by
 * (time, sequence number) so that events due at the same virtual time run in
 * the order they were scheduled: the same seed, the same run. */
#include <stdlib.h>

#include "sim.h"

static bool simq_before(const struct sim_event *a, const struct sim_event *b)
{
	return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static void simq_swap(struct sim_queue *q, size_t i, size_t j)
{
	struct sim_event t = q->v[i];

	q->v[i] = q->v[j];
	q->v[j] = t;
}

static void simq_up(struct sim_queue *q, size_t i)
{
	while (i > 0 && simq_before(&q->v[i], &q->v[(i - 1) / 2])) {
		simq_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void simq_down(struct sim_queue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < q->n && simq_before(&q->v[l], &q->v[m]))
			m = l;
		if (r < q->n && simq_before(&q->v[r], &q->v[m]))
			m = r;
		if (m == i)
			return;
		simq_swap(q, i, m);
		i = m;
	}
}

void simq_push(struct sim_queue *q, struct sim_event *e)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 1024;
		q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
	}
	e->seq = q->seq++;
	q->v[q->n++] = *e;
	simq_up(q, q->n - 1);
}

bool simq_pop(struct sim_queue *q, uint64_t until, struct sim_event *out)
{
	if (q->n == 0 || q->v[0].at > until)
		return false;
	*out = q->v[0];
	q->v[0] = q->v[--q->n];
	simq_down(q, 0);
	return true;
}

void simq_free(struct sim_queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->v[i].buf);
	free(q->v);
	q->v = NULL;
	q->n = q->cap = 0;
}
