/* hold.h: acknowledged messages that arrived before anybody here held their
 * target (an app restarting, say). An `ack` means "handed to an application":
 * such a message is kept, not acknowledged, until an endpoint holds the
 * target (then it and every later one from the same sender to the same
 * target are handed over in order) or until its deadline (ack_hold_ms),
 * when the sender is told it is lost (noproc). Pure: time is an argument. */
#ifndef PARTISAN_HOLD_H
#define PARTISAN_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hold;

/* max_bytes: what all held messages may take together. */
struct hold *hold_create(size_t max_bytes);
void hold_destroy(struct hold *h);

/* Whether messages from node `from` to target `to` wait here: a later one
 * must wait behind them. */
bool hold_waiting(const struct hold *h, const char *from, const char *to);

enum hold_result {
	HOLD_KEPT,
	HOLD_DUP,  /* that message (epoch, id) waits already: a retransmission */
	HOLD_FULL, /* over max_bytes: not kept */
};
/* Keep a copy of buf (a packed message) until deadline. */
enum hold_result hold_push(struct hold *h, const char *from, const char *to, uint64_t epoch,
                           uint64_t id, const uint8_t *buf, size_t len, uint64_t deadline);

/* ready(arg, to): whether an endpoint holds to now. */
typedef bool (*hold_ready_fn)(void *arg, const char *to);
/* A message leaving the hold: handed over, or expired. */
typedef void (*hold_msg_fn)(void *arg, const char *from, const uint8_t *buf, size_t len);
/* For each waiting queue: if its target is ready, every message goes to
 * deliver, oldest first; else the expired ones at its front go to expire. */
void hold_sweep(struct hold *h, uint64_t now, hold_ready_fn ready, hold_msg_fn deliver,
                hold_msg_fn expire, void *arg);

size_t hold_count(const struct hold *h);

#endif
