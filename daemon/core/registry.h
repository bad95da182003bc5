/* registry.h: the distributed name registry (seed 003's registry), the
 * records of what names every other node has registered. Pure.
 *
 * A record is one node's names at (epoch, version): epoch is the node's
 * incarnation, version counts its changes; the higher pair wins. A
 * tombstone (gone) says the node of that version left or failed: it wins
 * at an equal pair, so a merge never brings the names back, and the node
 * itself, if alive, answers with a higher version (registry_merge tells the
 * caller). Tombstones are forgotten REGISTRY_TOMB_MS after they were made.
 * This node's own names live in the router, which sends them as a record.
 */
#ifndef PARTISAN_REGISTRY_H
#define PARTISAN_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "peer.pb-c.h"

#define REGISTRY_TOMB_MS   60000 /* how long a tombstone is kept */
#define REGISTRY_NAMES_MAX 65536 /* names in one record */

struct registry;

struct registry *registry_create(void);
void registry_destroy(struct registry *r);

/* Merge rec, received at now. Returns 1 when it was news (the table
 * changed), 0 when we knew as much, -1 with *why for a malformed record. */
int registry_merge(struct registry *r, const PartisanPeer__RegistryRecord *rec, uint64_t now,
                   const char **why);
/* node is gone (left, or its link failed): its live record becomes a
 * tombstone. Returns true if there was one; then *tomb (owned by r, valid
 * until the next call) is that tombstone, for telling others. */
bool registry_gone(struct registry *r, const char *node, uint64_t now,
                   const PartisanPeer__RegistryRecord **tomb);
/* Forget tombstones older than REGISTRY_TOMB_MS. */
void registry_tick(struct registry *r, uint64_t now);

/* Every record as a Registry message (pointers into r, valid until r
 * changes); extra, if not NULL, is added first. Release with
 * registry_pb_release. */
void registry_to_pb(const struct registry *r, PartisanPeer__RegistryRecord *extra,
                    PartisanPeer__Registry *out);
void registry_pb_release(PartisanPeer__Registry *out);

typedef void (*registry_fn)(void *arg, const char *node, const char *name, const char *ref);
/* Call fn for every live remote (name, ref) with that name ("" for all). */
void registry_each(const struct registry *r, const char *name, registry_fn fn, void *arg);
/* The ref of name on node, or NULL. */
const char *registry_find(const struct registry *r, const char *node, const char *name);
/* An order-independent hash of every record held, and of extra if not
 * NULL: equal tables, equal hashes. */
uint64_t registry_hash(const struct registry *r, const PartisanPeer__RegistryRecord *extra);
/* Records held (live and tombstones). */
size_t registry_count(const struct registry *r);

#endif
