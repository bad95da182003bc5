/* hold.c: see hold.h. A queue per (sender, target), in arrival order. */
#include <stdlib.h>
#include <string.h>

#include "hold.h"
#include "strmap.h"
#include "xmalloc.h"

struct held {
	uint64_t epoch, id, deadline;
	uint8_t *buf;
	size_t len;
};

struct holdq {
	char *from, *to;
	struct held *v;
	size_t head, n, cap; /* v[head..n) wait */
};

struct hold {
	struct strmap queues; /* "from\n to" -> holdq */
	size_t bytes, max_bytes, count;
};

struct hold *hold_create(size_t max_bytes)
{
	struct hold *h = xcalloc(1, sizeof(*h));

	strmap_init(&h->queues);
	h->max_bytes = max_bytes;
	return h;
}

static void holdq_free(struct holdq *q)
{
	for (size_t i = q->head; i < q->n; i++)
		free(q->v[i].buf);
	free(q->v);
	free(q->from);
	free(q->to);
	free(q);
}

void hold_destroy(struct hold *h)
{
	const char *k;
	void *v;

	if (h == NULL)
		return;
	for (size_t i = 0; strmap_next(&h->queues, &i, &k, &v);)
		holdq_free(v);
	strmap_free(&h->queues);
	free(h);
}

static char *hold_key(const char *from, const char *to)
{
	size_t a = strlen(from), b = strlen(to);
	char *k = xmalloc(a + b + 2);

	memcpy(k, from, a);
	k[a] = '\n';
	memcpy(k + a + 1, to, b + 1);
	return k;
}

static struct holdq *hold_queue(const struct hold *h, const char *from, const char *to)
{
	char *k = hold_key(from, to);
	struct holdq *q = strmap_get(&h->queues, k);

	free(k);
	return q;
}

bool hold_waiting(const struct hold *h, const char *from, const char *to)
{
	return hold_queue(h, from, to) != NULL;
}

static bool holdq_has(const struct holdq *q, uint64_t epoch, uint64_t id)
{
	for (size_t i = q->head; i < q->n; i++)
		if (q->v[i].epoch == epoch && q->v[i].id == id)
			return true;
	return false;
}

enum hold_result hold_push(struct hold *h, const char *from, const char *to, uint64_t epoch,
                           uint64_t id, const uint8_t *buf, size_t len, uint64_t deadline)
{
	struct holdq *q = hold_queue(h, from, to);
	struct held *e;

	if (q && holdq_has(q, epoch, id))
		return HOLD_DUP;
	if (h->bytes + len > h->max_bytes)
		return HOLD_FULL;
	if (q == NULL) {
		char *k = hold_key(from, to);

		q = xcalloc(1, sizeof(*q));
		q->from = xstrdup(from);
		q->to = xstrdup(to);
		strmap_put(&h->queues, k, q);
		free(k);
	}
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 8;
		q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
	}
	e = &q->v[q->n++];
	*e = (struct held){.epoch = epoch, .id = id, .deadline = deadline, .len = len};
	e->buf = xmalloc(len ? len : 1);
	memcpy(e->buf, buf, len);
	h->bytes += len;
	h->count++;
	return HOLD_KEPT;
}

/* Take q's oldest message out and give it to fn. */
static void holdq_pop(struct hold *h, struct holdq *q, hold_msg_fn fn, void *arg)
{
	struct held e = q->v[q->head++];

	h->bytes -= e.len;
	h->count--;
	fn(arg, q->from, e.buf, e.len);
	free(e.buf);
}

void hold_sweep(struct hold *h, uint64_t now, hold_ready_fn ready, hold_msg_fn deliver,
                hold_msg_fn expire, void *arg)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&h->queues, &i, &k, &v);) {
		struct holdq *q = v;
		bool go = ready(arg, q->to);

		while (q->head < q->n && (go || q->v[q->head].deadline <= now))
			holdq_pop(h, q, go ? deliver : expire, arg);
		if (q->head == q->n) {
			char *key = hold_key(q->from, q->to);

			strmap_del(&h->queues, key);
			free(key);
			holdq_free(q);
		}
	}
}

size_t hold_count(const struct hold *h)
{
	return h->count;
}
