/* ack.h: the acknowledgement backend (Partisan's partisan_acknowledgement_
 * backend). A message sent with `ack` is kept by the sending daemon until
 * the receiving daemon acknowledges it, retransmitted every interval (and at
 * once when the link comes back), and de-duplicated by the receiver, so the
 * receiving app sees it exactly once while both daemons live. Pure core. */
#ifndef PARTISAN_ACK_H
#define PARTISAN_ACK_H

#include "core.h"

struct ack_core;

/* epoch: this daemon's incarnation (distinct across restarts). */
struct ack_core *ack_create(uint64_t epoch, unsigned retransmit_ms);
void ack_destroy(struct ack_core *a);

/* Number the Data (sets ack_id / ack_epoch), keep it, and queue its first
 * transmission. owner names the sending session for ack_lost reports;
 * channel must outlive the core (a config string). */
void ack_track(struct ack_core *a, const char *node, PartisanPeer__Data *data, const char *channel,
               const void *key, size_t keylen, uint64_t owner, const struct core_env *env,
               struct actions *out);
/* An Ack from node. Returns how many outstanding messages it settled. */
size_t ack_on_ack(struct ack_core *a, const char *node, const PartisanPeer__Ack *ack);
/* Data with an ack_id from node: queue its acknowledgement and return true
 * when it is new (deliver it), false for a duplicate. */
bool ack_on_data(struct ack_core *a, const char *node, const PartisanPeer__Data *data);
/* Whether data (an acknowledged message from node) was delivered here, or
 * given up on, already: a retransmission, for ack_on_data to answer. */
bool ack_known(struct ack_core *a, const char *node, const PartisanPeer__Data *data);
/* Nobody here held data's target in time: tell its sender it is lost
 * (Ack.noproc), and answer its retransmissions the same way. */
void ack_give_up(struct ack_core *a, const char *node, const PartisanPeer__Data *data);
/* Send the queued acknowledgements. */
void ack_flush(struct ack_core *a, struct actions *out);
/* Retransmit what is due to nodes that are up. */
void ack_tick(struct ack_core *a, const struct core_env *env, struct actions *out);
void ack_node_up(struct ack_core *a, const char *node, const struct core_env *env,
                 struct actions *out);
void ack_node_down(struct ack_core *a, const char *node);

struct ack_loss {
	uint64_t owner;
	uint64_t count;
};
/* node left the cluster: forget what is outstanding to it and say, per
 * owner, how much will never be delivered (*out is the caller's to free). */
/* The noproc part of an Ack from node: forget those messages and say, per
 * owner, how many (*out is the caller's to free). */
size_t ack_on_noproc(struct ack_core *a, const char *node, const PartisanPeer__Ack *ack,
                     struct ack_loss **out);
size_t ack_node_removed(struct ack_core *a, const char *node, struct ack_loss **out);

size_t ack_outstanding(const struct ack_core *a);

/* Messages resent because no Ack came in time. */
uint64_t ack_retransmits(const struct ack_core *a);

#endif
