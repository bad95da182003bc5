/* causal.h: causal delivery per label (Partisan's causality backend), by the
 * Schiper-Eggli-Sandoz algorithm: every message carries its sender's vector
 * clock and order buffer (the latest clock the sender knows was sent to each
 * node); a message waits in the receiver's buffer until every message that
 * causally precedes it and was sent to the same node has been delivered.
 * Pure core. */
#ifndef PARTISAN_CAUSAL_H
#define PARTISAN_CAUSAL_H

#include "core.h"

struct causal_core;
struct causal_stamp;

struct causal_core *causal_create(const char *self);
void causal_destroy(struct causal_core *c);

/* Stamp data (its causal_label must be set) as sent to dest: fills
 * causal_clock and causal_order. Release the stamp once data is packed. */
struct causal_stamp *causal_stamp(struct causal_core *c, const char *dest,
                                  PartisanPeer__Data *data);
void causal_stamp_release(struct causal_stamp *s);

typedef void (*causal_deliver_fn)(void *arg, const char *from, const PartisanPeer__Data *data);
/* data arrived from node `from`: deliver (through fn) whatever is now in
 * causal order, in that order; the rest waits. */
void causal_receive(struct causal_core *c, const char *from, const PartisanPeer__Data *data,
                    causal_deliver_fn fn, void *arg);
/* Messages waiting for their causal past. */
size_t causal_buffered(const struct causal_core *c);

#endif
