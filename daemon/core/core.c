/* core.c: actions lists, the seeded PRNG and lower_bound, shared by every
 * protocol core (the allocation helpers are xmalloc.c). Pure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

size_t lower_bound(const void *base, size_t n, size_t sz, const void *key,
                   int (*cmp)(const void *element, const void *key))
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp((const char *)base + mid * sz, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = rng_splitmix(&seed);
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rng_rotl(s[3], 45);
	return out;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

void actions_init(struct actions *a)
{
	memset(a, 0, sizeof(*a));
}

void actions_clear(struct actions *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].node);
		free(a->v[i].buf);
		free(a->v[i].key);
		free(a->v[i].text);
		if (a->v[i].spec)
			node_spec_free(a->v[i].spec);
	}
	a->n = 0;
}

void actions_free(struct actions *a)
{
	actions_clear(a);
	free(a->v);
	actions_init(a);
}

static struct action *actions_push(struct actions *a, enum action_kind kind)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	memset(&a->v[a->n], 0, sizeof(a->v[0]));
	a->v[a->n].kind = kind;
	return &a->v[a->n++];
}

void actions_send(struct actions *a, const char *node, const char *channel,
                  const PartisanPeer__PeerMsg *msg)
{
	struct action *x = actions_push(a, ACT_SEND);

	x->node = xstrdup(node);
	x->channel = channel;
	x->len = partisan_peer__peer_msg__get_packed_size(msg);
	x->buf = xmalloc(x->len);
	partisan_peer__peer_msg__pack(msg, x->buf);
}

void actions_send_key(struct actions *a, const char *node, const char *channel, const void *key,
                      size_t keylen, const PartisanPeer__PeerMsg *msg)
{
	struct action *x;

	actions_send(a, node, channel, msg);
	x = &a->v[a->n - 1];
	if (key && keylen) {
		x->key = memcpy(xmalloc(keylen), key, keylen);
		x->keylen = keylen;
	}
}

void actions_send_raw(struct actions *a, const char *node, const char *channel, const uint8_t *buf,
                      size_t len, const void *key, size_t keylen)
{
	struct action *x = actions_push(a, ACT_SEND);

	x->node = xstrdup(node);
	x->channel = channel;
	x->buf = memcpy(xmalloc(len), buf, len);
	x->len = len;
	if (key && keylen) {
		x->key = memcpy(xmalloc(keylen), key, keylen);
		x->keylen = keylen;
	}
}

void actions_connect(struct actions *a, const struct node_spec *spec)
{
	actions_push(a, ACT_CONNECT)->spec = node_spec_dup(spec);
}

void actions_disconnect(struct actions *a, const char *node)
{
	actions_push(a, ACT_DISCONNECT)->node = xstrdup(node);
}

void actions_event(struct actions *a, enum core_event ev, const char *node)
{
	struct action *x = actions_push(a, ACT_EVENT);

	x->event = ev;
	x->node = node ? xstrdup(node) : NULL;
}

struct action *actions_last(struct actions *a)
{
	return &a->v[a->n - 1];
}

void actions_down(struct actions *a, const char *node, const char *why)
{
	struct action *x = actions_push(a, ACT_DOWN);

	x->node = xstrdup(node);
	x->text = xstrdup(why);
}

void actions_deliver(struct actions *a, const char *topic, const char *origin,
                     const uint8_t *payload, size_t len, uint32_t hops)
{
	struct action *x = actions_push(a, ACT_DELIVER);

	x->text = xstrdup(topic);
	x->node = xstrdup(origin);
	x->buf = xmalloc(len ? len : 1);
	if (len)
		memcpy(x->buf, payload, len);
	x->len = len;
	x->hops = hops;
}

void actions_log(struct actions *a, enum core_level level, const char *fmt, ...)
{
	struct action *x = actions_push(a, ACT_LOG);
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	x->level = level;
	x->text = xstrdup(line);
}
