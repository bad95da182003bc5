/* registry.c: remote nodes' registered names (see registry.h). */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "registry.h"
#include "strmap.h"

struct node_names {
	size_t n;
	char **names; /* owned */
	char **refs;  /* owned */
};

struct registry {
	struct strmap nodes; /* node -> struct node_names */
};

struct registry *registry_create(void)
{
	struct registry *r = xcalloc(1, sizeof(*r));

	strmap_init(&r->nodes);
	return r;
}

static void registry_names_free(struct node_names *nn)
{
	for (size_t i = 0; i < nn->n; i++) {
		free(nn->names[i]);
		free(nn->refs[i]);
	}
	free(nn->names);
	free(nn->refs);
	free(nn);
}

void registry_destroy(struct registry *r)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);)
		registry_names_free(v);
	strmap_free(&r->nodes);
	free(r);
}

void registry_replace(struct registry *r, const char *node, const PartisanPeer__Registry *snap)
{
	struct node_names *nn = xcalloc(1, sizeof(*nn));
	struct node_names *old;

	nn->names = xcalloc(snap->n_names + 1, sizeof(char *));
	nn->refs = xcalloc(snap->n_names + 1, sizeof(char *));
	for (size_t i = 0; i < snap->n_names; i++) {
		nn->names[nn->n] = xstrdup(snap->names[i]->name);
		nn->refs[nn->n++] = xstrdup(snap->names[i]->ref);
	}
	old = strmap_put(&r->nodes, node, nn);
	if (old)
		registry_names_free(old);
}

void registry_drop(struct registry *r, const char *node)
{
	struct node_names *nn = strmap_del(&r->nodes, node);

	if (nn)
		registry_names_free(nn);
}

void registry_each(const struct registry *r, const char *name, registry_fn fn, void *arg)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);) {
		const struct node_names *nn = v;

		for (size_t j = 0; j < nn->n; j++)
			if (name[0] == '\0' || strcmp(name, nn->names[j]) == 0)
				fn(arg, nn->names[j], nn->refs[j]);
	}
}
