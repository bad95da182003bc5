/* vclock.c: vector clocks. Pure. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "vclock.h"

void vclock_init(struct vclock *c)
{
	c->v = NULL;
	c->n = 0;
}

void vclock_free(struct vclock *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].node);
	free(c->v);
	vclock_init(c);
}

static int vclock_entry_cmp(const void *e, const void *node)
{
	return strcmp(((const struct vc_entry *)e)->node, node);
}

static size_t vclock_pos(const struct vclock *c, const char *node, bool *found)
{
	size_t i = lower_bound(c->v, c->n, sizeof(*c->v), node, vclock_entry_cmp);

	*found = i < c->n && strcmp(c->v[i].node, node) == 0;
	return i;
}

uint64_t vclock_get(const struct vclock *c, const char *node)
{
	bool found;
	size_t i = vclock_pos(c, node, &found);

	return found ? c->v[i].counter : 0;
}

/* The entry for node, inserted with 0 if absent. */
static struct vc_entry *vclock_slot(struct vclock *c, const char *node)
{
	bool found;
	size_t i = vclock_pos(c, node, &found);

	if (!found) {
		c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
		memmove(&c->v[i + 1], &c->v[i], (c->n - i) * sizeof(*c->v));
		c->v[i].node = xstrdup(node);
		c->v[i].counter = 0;
		c->n++;
	}
	return &c->v[i];
}

void vclock_increment(struct vclock *c, const char *node)
{
	vclock_slot(c, node)->counter++;
}

void vclock_merge(struct vclock *c, const struct vclock *o)
{
	for (size_t i = 0; i < o->n; i++) {
		struct vc_entry *e = vclock_slot(c, o->v[i].node);

		if (e->counter < o->v[i].counter)
			e->counter = o->v[i].counter;
	}
}

bool vclock_leq(const struct vclock *a, const struct vclock *b)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].counter > vclock_get(b, a->v[i].node))
			return false;
	return true;
}

PartisanPeer__Dot **vclock_to_pb(const struct vclock *c, size_t *n)
{
	PartisanPeer__Dot **v = xcalloc(c->n, sizeof(*v));

	for (size_t i = 0; i < c->n; i++) {
		v[i] = xmalloc(sizeof(**v));
		partisan_peer__dot__init(v[i]);
		v[i]->actor = c->v[i].node;
		v[i]->counter = c->v[i].counter;
	}
	*n = c->n;
	return v;
}

void vclock_pb_release(PartisanPeer__Dot **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void vclock_from_pb(struct vclock *c, PartisanPeer__Dot *const *v, size_t n)
{
	vclock_free(c);
	for (size_t i = 0; i < n; i++) {
		struct vc_entry *e = vclock_slot(c, v[i]->actor);

		if (e->counter < v[i]->counter)
			e->counter = v[i]->counter;
	}
}
