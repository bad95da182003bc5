/* strmap.h: a small open-addressing hash map from strings to pointers.
 * Keys are copied and owned by the map; values are the caller's. */
#ifndef PARTISAN_STRMAP_H
#define PARTISAN_STRMAP_H

#include <stddef.h>

struct strmap_slot {
	char *key; /* NULL: empty; STRMAP_TOMB: deleted */
	void *value;
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap, len, used; /* used counts tombstones too */
};

void strmap_init(struct strmap *m);
/* Free the keys (not the values). */
void strmap_free(struct strmap *m);
void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Remove; returns the value or NULL. */
void *strmap_del(struct strmap *m, const char *key);

/* Iterate: for (size_t i = 0; strmap_next(m, &i, &k, &v);) ... Removing the
 * current key while iterating is allowed. */
int strmap_next(const struct strmap *m, size_t *i, const char **key, void **value);

#endif
