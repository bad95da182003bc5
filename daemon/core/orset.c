/* orset.c: ORSWOT of node specs, the full-mesh membership. Pure. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "orset.h"

void orset_init(struct orset *s)
{
	memset(s, 0, sizeof(*s));
}

static void orset_dots_free(struct orset_dot *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].actor);
	free(d);
}

static void orset_entry_free(struct orset_entry *e)
{
	node_spec_free(e->spec);
	orset_dots_free(e->dots, e->ndots);
}

void orset_free(struct orset *s)
{
	for (size_t i = 0; i < s->nentries; i++)
		orset_entry_free(&s->entries[i]);
	free(s->entries);
	orset_dots_free(s->clock, s->nclock);
	orset_init(s);
}

static int dot_actor_cmp(const void *dot, const void *actor)
{
	return strcmp(((const struct orset_dot *)dot)->actor, actor);
}

static int entry_spec_cmp(const void *e, const void *spec)
{
	return node_spec_cmp(((const struct orset_entry *)e)->spec, spec);
}

static int entry_name_cmp(const void *e, const void *name)
{
	return strcmp(((const struct orset_entry *)e)->spec->name, name);
}

/* The clock's counter for actor, 0 if unseen. */
static uint64_t orset_clock_get(const struct orset_dot *clock, size_t n, const char *actor)
{
	size_t i = lower_bound(clock, n, sizeof(*clock), actor, dot_actor_cmp);

	return i < n && strcmp(clock[i].actor, actor) == 0 ? clock[i].counter : 0;
}

/* Raise actor's clock entry to at least counter, inserting it sorted. */
static void orset_clock_raise(struct orset *s, const char *actor, uint64_t counter)
{
	size_t i = lower_bound(s->clock, s->nclock, sizeof(*s->clock), actor, dot_actor_cmp);

	s->hashed = false;
	if (i < s->nclock && strcmp(s->clock[i].actor, actor) == 0) {
		if (s->clock[i].counter < counter)
			s->clock[i].counter = counter;
		return;
	}
	s->clock = xrealloc(s->clock, (s->nclock + 1) * sizeof(*s->clock));
	memmove(&s->clock[i + 1], &s->clock[i], (s->nclock - i) * sizeof(*s->clock));
	s->clock[i].actor = xstrdup(actor);
	s->clock[i].counter = counter;
	s->nclock++;
}

static size_t orset_find_pos(const struct orset *s, const struct node_spec *spec, bool *found)
{
	size_t i = lower_bound(s->entries, s->nentries, sizeof(*s->entries), spec, entry_spec_cmp);

	*found = i < s->nentries && node_spec_cmp(s->entries[i].spec, spec) == 0;
	return i;
}

static void orset_remove_at(struct orset *s, size_t i)
{
	s->hashed = false;
	orset_entry_free(&s->entries[i]);
	memmove(&s->entries[i], &s->entries[i + 1], (s->nentries - i - 1) * sizeof(*s->entries));
	s->nentries--;
}

/* Insert an entry (taking ownership of spec and dots) at its sorted place. */
static void orset_insert(struct orset *s, struct node_spec *spec, struct orset_dot *dots,
                         size_t ndots)
{
	bool found;
	size_t i = orset_find_pos(s, spec, &found);

	s->hashed = false;
	if (found)
		orset_remove_at(s, i);
	s->entries = xrealloc(s->entries, (s->nentries + 1) * sizeof(*s->entries));
	memmove(&s->entries[i + 1], &s->entries[i], (s->nentries - i) * sizeof(*s->entries));
	s->entries[i].spec = spec;
	s->entries[i].dots = dots;
	s->entries[i].ndots = ndots;
	s->nentries++;
}

void orset_add(struct orset *s, const char *actor, const struct node_spec *spec)
{
	struct orset_dot *dot = xmalloc(sizeof(*dot));
	uint64_t next = orset_clock_get(s->clock, s->nclock, actor) + 1;

	orset_clock_raise(s, actor, next);
	dot->actor = xstrdup(actor);
	dot->counter = next;
	orset_insert(s, node_spec_dup(spec), dot, 1);
}

size_t orset_remove_name(struct orset *s, const char *name)
{
	size_t removed = 0;

	for (size_t i = 0; i < s->nentries;) {
		if (strcmp(s->entries[i].spec->name, name) == 0) {
			orset_remove_at(s, i);
			removed++;
		} else {
			i++;
		}
	}
	return removed;
}

bool orset_remove(struct orset *s, const struct node_spec *spec)
{
	bool found;
	size_t i = orset_find_pos(s, spec, &found);

	if (found)
		orset_remove_at(s, i);
	return found;
}

static bool orset_dot_in(const struct orset_dot *d, const struct orset_dot *dots, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (dots[i].counter == d->counter && strcmp(dots[i].actor, d->actor) == 0)
			return true;
	return false;
}

static int orset_dot_cmp(const void *a, const void *b)
{
	const struct orset_dot *x = a, *y = b;
	int c = strcmp(x->actor, y->actor);

	if (c)
		return c;
	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/* The dots of an element after merge: those in both, and those in one side
 * only that the other side's clock has not seen. */
static size_t orset_merge_dots(const struct orset_entry *a, const struct orset_dot *aclock,
                               size_t naclock, const struct orset_entry *b,
                               const struct orset_dot *bclock, size_t nbclock,
                               struct orset_dot **out)
{
	size_t na = a ? a->ndots : 0, nb = b ? b->ndots : 0, n = 0;
	struct orset_dot *d = xcalloc(na + nb, sizeof(*d));

	for (size_t i = 0; i < na; i++) {
		const struct orset_dot *x = &a->dots[i];
		bool in_b = b && orset_dot_in(x, b->dots, nb);

		if (in_b || orset_clock_get(bclock, nbclock, x->actor) < x->counter)
			d[n].actor = xstrdup(x->actor), d[n++].counter = x->counter;
	}
	for (size_t i = 0; i < nb; i++) {
		const struct orset_dot *x = &b->dots[i];

		if (a && orset_dot_in(x, a->dots, na))
			continue;
		if (orset_clock_get(aclock, naclock, x->actor) < x->counter)
			d[n].actor = xstrdup(x->actor), d[n++].counter = x->counter;
	}
	qsort(d, n, sizeof(*d), orset_dot_cmp);
	*out = d;
	return n;
}

static bool orset_dots_equal(const struct orset_dot *a, size_t na, const struct orset_dot *b,
                             size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].counter != b[i].counter || strcmp(a[i].actor, b[i].actor) != 0)
			return false;
	return true;
}

bool orset_merge(struct orset *s, const struct orset *o)
{
	struct orset m;
	size_t i = 0, j = 0;
	bool changed;

	orset_init(&m);
	while (i < s->nentries || j < o->nentries) {
		const struct orset_entry *a = i < s->nentries ? &s->entries[i] : NULL;
		const struct orset_entry *b = j < o->nentries ? &o->entries[j] : NULL;
		int c = !a ? 1 : !b ? -1 : node_spec_cmp(a->spec, b->spec);
		struct orset_dot *dots;
		size_t n;

		if (c < 0)
			b = NULL, i++;
		else if (c > 0)
			a = NULL, j++;
		else
			i++, j++;
		n = orset_merge_dots(a, s->clock, s->nclock, b, o->clock, o->nclock, &dots);
		if (n == 0) {
			free(dots);
			continue;
		}
		/* An element present on both sides keeps the spec with more channels info
		 * from the side whose dots won; prefer ours when unchanged. */
		orset_insert(&m, node_spec_dup(a ? a->spec : b->spec), dots, n);
	}
	for (size_t k = 0; k < s->nclock; k++)
		orset_clock_raise(&m, s->clock[k].actor, s->clock[k].counter);
	for (size_t k = 0; k < o->nclock; k++)
		orset_clock_raise(&m, o->clock[k].actor, o->clock[k].counter);

	changed = m.nentries != s->nentries || m.nclock != s->nclock ||
	          !orset_dots_equal(m.clock, m.nclock, s->clock, s->nclock);
	for (size_t k = 0; !changed && k < m.nentries; k++)
		changed = node_spec_cmp(m.entries[k].spec, s->entries[k].spec) != 0 ||
		          !orset_dots_equal(m.entries[k].dots, m.entries[k].ndots,
		                            s->entries[k].dots, s->entries[k].ndots);
	orset_free(s);
	*s = m;
	return changed;
}

/* Entries sort by name first: the first of name's, by binary search. */
uint64_t actor_incarnation(const char *actor)
{
	const char *slash = actor ? strrchr(actor, '/') : NULL;

	return slash ? strtoull(slash + 1, NULL, 16) : 0;
}

uint64_t orset_entry_incarnation(const struct orset_entry *e)
{
	const char *name = e->spec->name;
	size_t n = strlen(name);
	uint64_t best = 0;

	for (size_t i = 0; i < e->ndots; i++) {
		const char *a = e->dots[i].actor;

		if (strncmp(a, name, n) == 0 && a[n] == '/' && actor_incarnation(a) > best)
			best = actor_incarnation(a);
	}
	return best;
}

const struct orset_entry *orset_newest(const struct orset *s, const char *name)
{
	size_t i = lower_bound(s->entries, s->nentries, sizeof(*s->entries), name, entry_name_cmp);
	const struct orset_entry *best = NULL;
	uint64_t best_inc = 0;

	/* Entries are sorted by name first: a name's twins sit together. */
	for (; i < s->nentries && strcmp(s->entries[i].spec->name, name) == 0; i++) {
		uint64_t inc = orset_entry_incarnation(&s->entries[i]);

		if (best == NULL || inc > best_inc) {
			best = &s->entries[i];
			best_inc = inc;
		}
	}
	return best;
}

const struct node_spec *orset_find(const struct orset *s, const char *name)
{
	const struct orset_entry *e = orset_newest(s, name);

	return e ? e->spec : NULL;
}

size_t orset_prune_stale(struct orset *s)
{
	size_t removed = 0, i = 0;

	while (i < s->nentries) {
		const char *name = s->entries[i].spec->name;
		uint64_t newest;
		size_t end = i;

		while (end < s->nentries && strcmp(s->entries[end].spec->name, name) == 0)
			end++;
		newest = orset_entry_incarnation(orset_newest(s, name));
		/* Backwards within the group, so removals do not move what is left. */
		for (size_t j = end; j-- > i;) {
			if (orset_entry_incarnation(&s->entries[j]) < newest) {
				orset_remove_at(s, j);
				removed++;
				end--;
			}
		}
		i = end;
	}
	return removed;
}

bool orset_contains(const struct orset *s, const struct node_spec *spec)
{
	bool found;

	orset_find_pos(s, spec, &found);
	return found;
}

uint64_t orset_hash(struct orset *s)
{
	uint64_t h = HASH_INIT;

	if (s->hashed)
		return s->hash;
	for (size_t i = 0; i < s->nclock; i++) {
		h = hash_bytes(h, s->clock[i].actor, strlen(s->clock[i].actor) + 1);
		h = hash_bytes(h, &s->clock[i].counter, sizeof(uint64_t));
	}
	for (size_t i = 0; i < s->nentries; i++) {
		h = node_spec_hash(s->entries[i].spec, h);
		for (size_t k = 0; k < s->entries[i].ndots; k++) {
			const struct orset_dot *d = &s->entries[i].dots[k];

			h = hash_bytes(h, d->actor, strlen(d->actor) + 1);
			h = hash_bytes(h, &d->counter, sizeof(uint64_t));
		}
	}
	s->hashed = true;
	return s->hash = h;
}

static PartisanPeer__Dot **orset_dots_to_pb(const struct orset_dot *d, size_t n)
{
	PartisanPeer__Dot **v = xcalloc(n, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		v[i] = xmalloc(sizeof(**v));
		partisan_peer__dot__init(v[i]);
		v[i]->actor = d[i].actor;
		v[i]->counter = d[i].counter;
	}
	return v;
}

static void orset_dots_pb_free(PartisanPeer__Dot **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void orset_to_pb(const struct orset *s, PartisanPeer__Membership *out)
{
	partisan_peer__membership__init(out);
	out->n_clock = s->nclock;
	out->clock = orset_dots_to_pb(s->clock, s->nclock);
	out->n_entries = s->nentries;
	out->entries = xcalloc(s->nentries, sizeof(*out->entries));
	for (size_t i = 0; i < s->nentries; i++) {
		PartisanPeer__MemberEntry *e = xmalloc(sizeof(*e));
		PartisanCommon__NodeSpec *ns = xmalloc(sizeof(*ns));

		partisan_peer__member_entry__init(e);
		node_spec_to_pb(s->entries[i].spec, ns);
		e->spec = ns;
		e->n_dots = s->entries[i].ndots;
		e->dots = orset_dots_to_pb(s->entries[i].dots, s->entries[i].ndots);
		out->entries[i] = e;
	}
}

void orset_pb_release(PartisanPeer__Membership *out)
{
	orset_dots_pb_free(out->clock, out->n_clock);
	for (size_t i = 0; i < out->n_entries; i++) {
		node_spec_pb_release(out->entries[i]->spec);
		free(out->entries[i]->spec);
		orset_dots_pb_free(out->entries[i]->dots, out->entries[i]->n_dots);
		free(out->entries[i]);
	}
	free(out->entries);
	partisan_peer__membership__init(out);
}

int orset_from_pb(struct orset *s, const PartisanPeer__Membership *pb, const char **why)
{
	orset_init(s);
	if (pb->n_entries > 100000 || pb->n_clock > 1000000) {
		*why = "membership: too large";
		return -1;
	}
	for (size_t i = 0; i < pb->n_clock; i++)
		orset_clock_raise(s, pb->clock[i]->actor, pb->clock[i]->counter);
	for (size_t i = 0; i < pb->n_entries; i++) {
		const PartisanPeer__MemberEntry *e = pb->entries[i];
		struct node_spec *spec = node_spec_from_pb(e->spec, why);
		struct orset_dot *dots;

		if (spec == NULL)
			goto fail;
		if (e->n_dots == 0 || e->n_dots > 1024) {
			node_spec_free(spec);
			*why = "membership: element without dots";
			goto fail;
		}
		dots = xcalloc(e->n_dots, sizeof(*dots));
		for (size_t k = 0; k < e->n_dots; k++) {
			dots[k].actor = xstrdup(e->dots[k]->actor);
			dots[k].counter = e->dots[k]->counter;
		}
		qsort(dots, e->n_dots, sizeof(*dots), orset_dot_cmp);
		orset_insert(s, spec, dots, e->n_dots);
	}
	return 0;
fail:
	orset_free(s);
	return -1;
}
