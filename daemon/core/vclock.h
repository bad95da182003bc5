/* vclock.h: vector clocks (partisan_vclock): sorted (node, counter) lists. */
#ifndef PARTISAN_VCLOCK_H
#define PARTISAN_VCLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peer.pb-c.h"

struct vc_entry {
	char *node; /* owned */
	uint64_t counter;
};

struct vclock {
	struct vc_entry *v; /* sorted by node */
	size_t n;
};

void vclock_init(struct vclock *c);
void vclock_free(struct vclock *c);
uint64_t vclock_get(const struct vclock *c, const char *node);
void vclock_increment(struct vclock *c, const char *node);
/* c = pointwise max(c, o). */
void vclock_merge(struct vclock *c, const struct vclock *o);
/* a <= b pointwise (b descends from a). */
bool vclock_leq(const struct vclock *a, const struct vclock *b);

/* Protobuf form: to_pb allocates the Dot array (pointing into c); free it
 * with vclock_pb_release. */
PartisanPeer__Dot **vclock_to_pb(const struct vclock *c, size_t *n);
void vclock_pb_release(PartisanPeer__Dot **v, size_t n);
void vclock_from_pb(struct vclock *c, PartisanPeer__Dot *const *v, size_t n);

#endif
