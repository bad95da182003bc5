/* orset.h: the membership set, an ORSWOT (observed-remove set without
 * tombstones, as riak_dt / Partisan's state_orswot) of node specs.
 *
 * Each element carries the dots (actor, counter) that added it; the set
 * carries a version vector of every dot it has seen. Merge keeps a dot that
 * both sides have, or that one side has and the other has not yet seen; so a
 * remove wins over the adds it observed and loses to concurrent adds.
 * Actors are "NAME/INCARNATION" so that a restarted node never reuses a dot.
 */
#ifndef PARTISAN_ORSET_H
#define PARTISAN_ORSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nodespec.h"
#include "peer.pb-c.h"

struct orset_dot {
	char *actor; /* owned */
	uint64_t counter;
};

struct orset_entry {
	struct node_spec *spec; /* owned */
	struct orset_dot *dots; /* owned, sorted by actor */
	size_t ndots;
};

struct orset {
	struct orset_dot *clock; /* sorted by actor */
	size_t nclock;
	struct orset_entry *entries; /* sorted by node_spec_cmp */
	size_t nentries;
	uint64_t hash; /* orset_hash's, valid while hashed */
	bool hashed;
};

void orset_init(struct orset *s);
void orset_free(struct orset *s);

/* Add spec (replacing an element with the same name and addresses) with a
 * fresh dot of actor. */
void orset_add(struct orset *s, const char *actor, const struct node_spec *spec);
/* Remove every element named name. Returns how many were removed. */
size_t orset_remove_name(struct orset *s, const char *name);
/* Remove one element equal (name and addresses) to spec. */
bool orset_remove(struct orset *s, const struct node_spec *spec);
/* Merge other into s. Returns true when s changed. */
bool orset_merge(struct orset *s, const struct orset *other);

/* A node that restarts on another address adds a second element with its
 * name (a twin) under a newer incarnation: the element whose own dots
 * (actor "NAME/INC") carry the highest INC is the node's current spec. */
uint64_t actor_incarnation(const char *actor);
uint64_t orset_entry_incarnation(const struct orset_entry *e);
/* The current element named name, or NULL. */
const struct orset_entry *orset_newest(const struct orset *s, const char *name);
/* Remove every twin older than its name's current element (anyone may: the
 * old incarnation never speaks again). Returns how many went. */
size_t orset_prune_stale(struct orset *s);

/* The current spec named name, or NULL. */
const struct node_spec *orset_find(const struct orset *s, const char *name);
bool orset_contains(const struct orset *s, const struct node_spec *spec);
/* A hash of the whole state (clock and entries): equal states, equal hashes. */
uint64_t orset_hash(struct orset *s);

/* Protobuf form. orset_to_pb allocates; free with orset_pb_release. */
void orset_to_pb(const struct orset *s, PartisanPeer__Membership *out);
void orset_pb_release(PartisanPeer__Membership *out);
/* Returns 0, or -1 with *why on a malformed state. */
int orset_from_pb(struct orset *s, const PartisanPeer__Membership *pb, const char **why);

#endif
