/* ss_links.c: simulated connections. Each link lives in a pool of fixed
 * chunks (its address never moves while the cores are called back), and
 * each node keeps a small array of (peer, link id) sorted by peer: memory
 * grows with the links that exist, not with N x N. */
#include <stdlib.h>
#include <string.h>

#include "simscale.h"

static struct ss_link *ss_link_at(const struct ss_world *w, uint32_t id)
{
	return &w->chunks[id / SS_CHUNK][id % SS_CHUNK];
}

static uint32_t ss_link_id(const struct ss_world *w, const struct ss_link *l)
{
	for (uint32_t c = 0; c < w->nchunks; c++)
		if (l >= w->chunks[c] && l < w->chunks[c] + SS_CHUNK)
			return c * SS_CHUNK + (uint32_t)(l - w->chunks[c]);
	abort();
}

/* First position in nd's refs whose peer is >= peer. */
static uint32_t ss_ref_lower(const struct ss_node *nd, uint32_t peer)
{
	uint32_t lo = 0, hi = nd->nrefs;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (nd->refs[mid].peer < peer)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void ss_ref_insert(struct ss_node *nd, uint32_t peer, uint32_t link)
{
	uint32_t at = ss_ref_lower(nd, peer);

	if (nd->nrefs == nd->caprefs) {
		nd->caprefs = nd->caprefs ? 2 * nd->caprefs : 4;
		nd->refs = xrealloc(nd->refs, nd->caprefs * sizeof(*nd->refs));
	}
	memmove(&nd->refs[at + 1], &nd->refs[at], (nd->nrefs - at) * sizeof(*nd->refs));
	nd->refs[at] = (struct ss_ref){peer, link};
	nd->nrefs++;
}

static void ss_ref_erase(struct ss_node *nd, uint32_t peer)
{
	uint32_t at = ss_ref_lower(nd, peer);

	if (at == nd->nrefs || nd->refs[at].peer != peer)
		abort(); /* the two ends disagree: a simulator bug */
	memmove(&nd->refs[at], &nd->refs[at + 1], (nd->nrefs - at - 1) * sizeof(*nd->refs));
	nd->nrefs--;
}

struct ss_link *ss_link_get(struct ss_world *w, uint32_t a, uint32_t b)
{
	const struct ss_node *nd = &w->nodes[a];
	uint32_t at = ss_ref_lower(nd, b);

	if (at == nd->nrefs || nd->refs[at].peer != b)
		return NULL;
	return ss_link_at(w, nd->refs[at].link);
}

static uint32_t ss_link_alloc(struct ss_world *w)
{
	if (w->nfree > 0)
		return w->free_links[--w->nfree];
	if (w->nlinks == w->nchunks * SS_CHUNK) {
		w->chunks = xrealloc(w->chunks, (w->nchunks + 1) * sizeof(*w->chunks));
		w->chunks[w->nchunks++] = xcalloc(SS_CHUNK, sizeof(struct ss_link));
	}
	return w->nlinks++;
}

struct ss_link *ss_link_open(struct ss_world *w, uint32_t a, uint32_t b)
{
	uint32_t id = ss_link_alloc(w);
	struct ss_link *l = ss_link_at(w, id);

	memset(l, 0, sizeof(*l));
	l->a = a < b ? a : b;
	l->b = a < b ? b : a;
	l->gen = ++w->gen;
	l->state = SS_CONNECTING;
	ss_ref_insert(&w->nodes[a], b, id);
	ss_ref_insert(&w->nodes[b], a, id);
	w->live_links++;
	return l;
}

void ss_link_remove(struct ss_world *w, struct ss_link *l)
{
	ss_ref_erase(&w->nodes[l->a], l->b);
	ss_ref_erase(&w->nodes[l->b], l->a);
	l->state = SS_NONE;
	l->gen = 0;
	if (w->nfree == w->capfree) {
		w->capfree = w->capfree ? 2 * w->capfree : 1024;
		w->free_links = xrealloc(w->free_links, w->capfree * sizeof(*w->free_links));
	}
	w->free_links[w->nfree++] = ss_link_id(w, l);
	w->live_links--;
}

unsigned ss_end(const struct ss_link *l, uint32_t x)
{
	return x == l->a ? 0 : 1;
}

void ss_links_free(struct ss_world *w)
{
	for (uint32_t c = 0; c < w->nchunks; c++)
		free(w->chunks[c]);
	free(w->chunks);
	free(w->free_links);
}

size_t ss_links_bytes(const struct ss_world *w)
{
	size_t n = (size_t)w->nchunks * (SS_CHUNK * sizeof(struct ss_link) + sizeof(void *));

	n += w->capfree * sizeof(uint32_t);
	for (uint32_t i = 0; i < w->n; i++)
		n += w->nodes[i].caprefs * sizeof(struct ss_ref);
	return n;
}
