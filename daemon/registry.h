/* registry.h: the distributed name registry (seed 003's registry): what
 * names every other node has registered, from the snapshots they send. This
 * node's own names live in the router. Pure data structure. */
#ifndef PARTISAN_REGISTRY_H
#define PARTISAN_REGISTRY_H

#include "peer.pb-c.h"

struct registry;

struct registry *registry_create(void);
void registry_destroy(struct registry *r);
/* node's names are now exactly those in snap. */
void registry_replace(struct registry *r, const char *node, const PartisanPeer__Registry *snap);
/* node is gone: forget its names. */
void registry_drop(struct registry *r, const char *node);

typedef void (*registry_fn)(void *arg, const char *name, const char *ref);
/* Call fn for every remote (name, ref) with that name ("" for all). */
void registry_each(const struct registry *r, const char *name, registry_fn fn, void *arg);

#endif
