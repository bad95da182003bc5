/* causal.c: causal order per label (see causal.h). */
#include <stdlib.h>
#include <string.h>

#include "causal.h"
#include "strmap.h"
#include "vclock.h"

struct pending {
	char *from;
	uint8_t *buf; /* the packed Data */
	size_t len;
	struct pending *next;
};

struct label {
	struct vclock clock; /* what this node has seen */
	struct strmap order; /* node -> struct vclock*: latest sent to node */
	struct pending *waiting;
	size_t nwaiting;
};

struct causal_core {
	char *self;
	struct strmap labels; /* label -> struct label */
};

struct causal_stamp {
	PartisanPeer__Data *data;
	size_t nclock;
};

struct causal_core *causal_create(const char *self)
{
	struct causal_core *c = xcalloc(1, sizeof(*c));

	c->self = xstrdup(self);
	strmap_init(&c->labels);
	return c;
}

static void label_free(struct label *l)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&l->order, &i, &k, &v);) {
		vclock_free(v);
		free(v);
	}
	strmap_free(&l->order);
	vclock_free(&l->clock);
	while (l->waiting) {
		struct pending *p = l->waiting;

		l->waiting = p->next;
		free(p->from);
		free(p->buf);
		free(p);
	}
	free(l);
}

void causal_destroy(struct causal_core *c)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&c->labels, &i, &k, &v);)
		label_free(v);
	strmap_free(&c->labels);
	free(c->self);
	free(c);
}

static struct label *causal_label(struct causal_core *c, const char *name)
{
	struct label *l = strmap_get(&c->labels, name);

	if (l == NULL) {
		l = xcalloc(1, sizeof(*l));
		vclock_init(&l->clock);
		strmap_init(&l->order);
		strmap_put(&c->labels, name, l);
	}
	return l;
}

/* order[node] = max(order[node], clock) */
static void causal_order_merge(struct label *l, const char *node, const struct vclock *clock)
{
	struct vclock *v = strmap_get(&l->order, node);

	if (v == NULL) {
		v = xcalloc(1, sizeof(*v));
		vclock_init(v);
		strmap_put(&l->order, node, v);
	}
	vclock_merge(v, clock);
}

struct causal_stamp *causal_stamp(struct causal_core *c, const char *dest, PartisanPeer__Data *data)
{
	struct label *l = causal_label(c, data->causal_label);
	struct causal_stamp *s = xcalloc(1, sizeof(*s));
	size_t n = 0;
	const char *k;
	void *v;

	vclock_increment(&l->clock, c->self);
	data->causal_clock = vclock_to_pb(&l->clock, &data->n_causal_clock);
	data->causal_order = xcalloc(l->order.len + 1, sizeof(*data->causal_order));
	for (size_t i = 0; strmap_next(&l->order, &i, &k, &v);) {
		PartisanPeer__CausalEntry *e = xmalloc(sizeof(*e));

		partisan_peer__causal_entry__init(e);
		e->node = (char *)k;
		e->clock = vclock_to_pb(v, &e->n_clock);
		data->causal_order[n++] = e;
	}
	data->n_causal_order = n;
	s->data = data;
	/* Sent after everything in the order buffer: dest now depends on it. */
	causal_order_merge(l, dest, &l->clock);
	return s;
}

void causal_stamp_release(struct causal_stamp *s)
{
	PartisanPeer__Data *d = s->data;

	vclock_pb_release(d->causal_clock, d->n_causal_clock);
	for (size_t i = 0; i < d->n_causal_order; i++) {
		vclock_pb_release(d->causal_order[i]->clock, d->causal_order[i]->n_clock);
		free(d->causal_order[i]);
	}
	free(d->causal_order);
	d->causal_clock = NULL;
	d->causal_order = NULL;
	d->n_causal_clock = d->n_causal_order = 0;
	free(s);
}

/* Has everything the sender knew was sent to us been delivered? */
static bool causal_ready(const struct causal_core *c, const struct label *l,
                         const PartisanPeer__Data *data)
{
	for (size_t i = 0; i < data->n_causal_order; i++) {
		const PartisanPeer__CausalEntry *e = data->causal_order[i];
		struct vclock need;
		bool ok;

		if (strcmp(e->node, c->self) != 0)
			continue;
		vclock_init(&need);
		vclock_from_pb(&need, e->clock, e->n_clock);
		ok = vclock_leq(&need, &l->clock);
		vclock_free(&need);
		return ok;
	}
	return true;
}

static void causal_deliver(struct causal_core *c, struct label *l, const char *from,
                           const PartisanPeer__Data *data, causal_deliver_fn fn, void *arg)
{
	struct vclock tmp;

	vclock_init(&tmp);
	vclock_from_pb(&tmp, data->causal_clock, data->n_causal_clock);
	vclock_merge(&l->clock, &tmp);
	vclock_increment(&l->clock, c->self);
	for (size_t i = 0; i < data->n_causal_order; i++) {
		const PartisanPeer__CausalEntry *e = data->causal_order[i];

		if (strcmp(e->node, c->self) == 0)
			continue;
		vclock_from_pb(&tmp, e->clock, e->n_clock);
		causal_order_merge(l, e->node, &tmp);
	}
	vclock_free(&tmp);
	fn(arg, from, data);
}

/* Deliver waiting messages that became ready, until none does. */
static void causal_drain(struct causal_core *c, struct label *l, causal_deliver_fn fn, void *arg)
{
	bool progress = true;

	while (progress) {
		progress = false;
		for (struct pending **pp = &l->waiting; *pp; pp = &(*pp)->next) {
			struct pending *p = *pp;
			PartisanPeer__Data *d = partisan_peer__data__unpack(NULL, p->len, p->buf);

			if (d && !causal_ready(c, l, d)) {
				partisan_peer__data__free_unpacked(d, NULL);
				continue;
			}
			*pp = p->next;
			l->nwaiting--;
			if (d) {
				causal_deliver(c, l, p->from, d, fn, arg);
				partisan_peer__data__free_unpacked(d, NULL);
			}
			free(p->from);
			free(p->buf);
			free(p);
			progress = true;
			break;
		}
	}
}

void causal_receive(struct causal_core *c, const char *from, const PartisanPeer__Data *data,
                    causal_deliver_fn fn, void *arg)
{
	struct label *l = causal_label(c, data->causal_label);
	struct pending *p, **tail;

	if (causal_ready(c, l, data)) {
		causal_deliver(c, l, from, data, fn, arg);
		causal_drain(c, l, fn, arg);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->from = xstrdup(from);
	p->len = partisan_peer__data__get_packed_size(data);
	p->buf = xmalloc(p->len);
	partisan_peer__data__pack(data, p->buf);
	for (tail = &l->waiting; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	l->nwaiting++;
}

size_t causal_buffered(const struct causal_core *c)
{
	size_t n = 0;
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&c->labels, &i, &k, &v);)
		n += ((struct label *)v)->nwaiting;
	return n;
}
