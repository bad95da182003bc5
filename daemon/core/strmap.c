/* strmap.c: open-addressing string map with linear probing. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "nodespec.h"
#include "strmap.h"

static char strmap_tomb_byte;
#define STRMAP_TOMB (&strmap_tomb_byte)

void strmap_init(struct strmap *m)
{
	memset(m, 0, sizeof(*m));
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != STRMAP_TOMB)
			free(m->slots[i].key);
	free(m->slots);
	strmap_init(m);
}

static size_t strmap_hash(const char *key)
{
	return (size_t)hash_bytes(HASH_INIT, key, strlen(key));
}

/* The slot holding key, or NULL. */
static struct strmap_slot *strmap_find(const struct strmap *m, const char *key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = strmap_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct strmap_slot *s = &m->slots[i];

		if (s->key == NULL)
			return NULL;
		if (s->key != STRMAP_TOMB && strcmp(s->key, key) == 0)
			return s;
	}
}

static void strmap_grow(struct strmap *m)
{
	struct strmap old = *m;

	m->cap = old.cap ? (old.len * 4 > old.cap ? old.cap * 2 : old.cap) : 16;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	m->len = m->used = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct strmap_slot *s = &old.slots[i];

		if (s->key == NULL || s->key == STRMAP_TOMB)
			continue;
		for (size_t j = strmap_hash(s->key) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
			if (m->slots[j].key == NULL) {
				m->slots[j] = *s;
				break;
			}
		}
		m->len++;
		m->used++;
	}
	free(old.slots);
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_slot *s = strmap_find(m, key);

	return s ? s->value : NULL;
}

void *strmap_put(struct strmap *m, const char *key, void *value)
{
	struct strmap_slot *s = strmap_find(m, key);
	void *prev;

	if (s) {
		prev = s->value;
		s->value = value;
		return prev;
	}
	if ((m->used + 1) * 4 >= m->cap * 3)
		strmap_grow(m);
	for (size_t i = strmap_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		s = &m->slots[i];
		if (s->key == NULL || s->key == STRMAP_TOMB) {
			if (s->key == NULL)
				m->used++;
			s->key = xstrdup(key);
			s->value = value;
			m->len++;
			return NULL;
		}
	}
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct strmap_slot *s = strmap_find(m, key);
	void *v;

	if (s == NULL)
		return NULL;
	v = s->value;
	free(s->key);
	s->key = STRMAP_TOMB;
	s->value = NULL;
	m->len--;
	return v;
}

int strmap_next(const struct strmap *m, size_t *i, const char **key, void **value)
{
	for (; *i < m->cap; (*i)++) {
		struct strmap_slot *s = &m->slots[*i];

		if (s->key && s->key != STRMAP_TOMB) {
			*key = s->key;
			*value = s->value;
			(*i)++;
			return 1;
		}
	}
	return 0;
}
