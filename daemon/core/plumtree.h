/* plumtree.h: Plumtree broadcast (Leitao, Pereira, Rodrigues, "Epidemic
 * Broadcast Trees", SRDS 2007), Partisan's partisan_plumtree_broadcast, with
 * its periodic anti-entropy exchange. Pure core: no sockets, no clock, no
 * rand(); time and randomness come from struct core_env, and what must be
 * sent is appended to a struct actions (ACT_SEND on the default channel).
 *
 * One eager/lazy split of the neighbors serves every origin: a Gossip seen
 * twice prunes the link it came on (both ends make it lazy), so after one
 * broadcast the eager links form a spanning tree and the next broadcast,
 * from any node, costs n - 1 payload messages. Lazy neighbors get the ids in
 * batched IHave every lazy_tick_ms, repeated for a few ticks until the
 * neighbor acknowledges them (IHave ack, or Graft); an id announced but not
 * received within about a lazy tick is grafted from its announcers in turn.
 * Every
 * exchange_tick_ms a random neighbor gets the ids this node stores; it
 * pushes back what is missing (Gossip.catch_up) and asks, with its own
 * Exchange, for what it lacks, so a node back from a crash or a partition
 * catches up within an exchange period or two.
 *
 * Memory is bounded: the max_store most recent messages keep their payload
 * (for Graft and Exchange); the 4 * max_store most recent ids are remembered
 * as seen, so each id is delivered once on a node as long as it is among
 * those; an id older than those (one that lingered in a store, passed on
 * by exchanges) is known by its origin incarnation's floor, the highest
 * counter forgotten, and never delivered a second time. Ids are compared by
 * a 64-bit hash of the wire id.
 *
 * Not re-entrant: a deliver callback must not call back into its plumtree.
 */
#ifndef PARTISAN_PLUMTREE_H
#define PARTISAN_PLUMTREE_H

#include "core.h"

struct plumtree;

/* Called once per message id on this node (also for its own broadcasts).
 * Every pointer is valid only during the call. */
typedef void (*plumtree_deliver_fn)(void *arg, const char *topic, const char *origin,
                                    const uint8_t *payload, size_t len);

enum plumtree_kind {
	PLUMTREE_GOSSIP, /* payload messages, catch-up pushes included */
	PLUMTREE_IHAVE,  /* IHave messages (each may batch many ids) */
	PLUMTREE_GRAFT,
	PLUMTREE_PRUNE,
	PLUMTREE_EXCHANGE, /* Exchange messages, replies included */
	PLUMTREE_KINDS,
};

struct plumtree_stats {
	uint64_t sent[PLUMTREE_KINDS];     /* messages sent, by kind */
	uint64_t received[PLUMTREE_KINDS]; /* well-formed messages received, by kind */
	uint64_t catch_up_sent;            /* Gossip pushed by an Exchange (in sent[GOSSIP]) */
	uint64_t ihave_ids;                /* ids announced in IHave, repeats included */
	uint64_t ihave_acks;               /* IHave ack = true sent (in sent[IHAVE]) */
	uint64_t duplicates;               /* Gossip for an id already seen */
	uint64_t delivered;                /* deliveries, own broadcasts included */
	uint64_t delivered_after_graft;    /* first received after this node sent a Graft */
	uint64_t delivered_by_exchange;    /* first received as a catch-up push */
	uint64_t hops_sum;                 /* sum of hops over deliveries */
	uint32_t hops_max;
	uint32_t last_hops; /* hops of the latest delivery (read it in the callback) */
	uint64_t refused;   /* malformed messages */
	uint64_t floors_reset; /* more origin incarnations than seen ids: floors dropped */
};

/* self: this node's name (copied, 1..255 bytes). incarnation: distinct on
 * every start of self (a boot time or a random value), so ids never repeat
 * across restarts. max_store: messages kept for Graft and Exchange (>= 1).
 * Returns NULL for an invalid self. */
struct plumtree *plumtree_create(const char *self, uint64_t incarnation, unsigned lazy_tick_ms,
                                 unsigned exchange_tick_ms, size_t max_store);
void plumtree_destroy(struct plumtree *pt);

/* The broadcast neighbors: full mesh: every connected member; hyparview:
 * the active view. A new neighbor starts eager. node is copied. */
void plumtree_neighbor_up(struct plumtree *pt, const char *node);
void plumtree_neighbor_down(struct plumtree *pt, const char *node);

/* Originate a message: deliver it here (hops 0) and push it. topic and
 * payload are copied. */
void plumtree_broadcast(struct plumtree *pt, const char *topic, const uint8_t *payload, size_t len,
                        const struct core_env *env, struct actions *out,
                        plumtree_deliver_fn deliver, void *arg);

/* A Gossip, IHave, Graft, Prune or Exchange from node `from`. Returns 0, or
 * -1 with *why (a static string) for a malformed or foreign message, which
 * changes nothing. */
int plumtree_receive(struct plumtree *pt, const char *from, const PartisanPeer__PeerMsg *msg,
                     const struct core_env *env, struct actions *out, plumtree_deliver_fn deliver,
                     void *arg, const char **why);

/* Flush IHave every lazy_tick_ms, fire graft timers, start an exchange
 * every exchange_tick_ms. Call at least every lazy_tick_ms / 4. */
void plumtree_tick(struct plumtree *pt, const struct core_env *env, struct actions *out);
/* When plumtree_tick next has work (0: call it now). */
uint64_t plumtree_next_deadline(const struct plumtree *pt);

const struct plumtree_stats *plumtree_stats(const struct plumtree *pt);
/* Bytes this core holds on the heap (stored messages, tables, queues). */
size_t plumtree_memory(const struct plumtree *pt);
size_t plumtree_neighbors(const struct plumtree *pt);
/* Neighbors currently in the eager (tree) set. */
size_t plumtree_eager(const struct plumtree *pt);
bool plumtree_is_eager(const struct plumtree *pt, const char *node);

#endif
