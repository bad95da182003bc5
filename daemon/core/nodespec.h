/* nodespec.h: a node's spec, {name, listen_addrs, channels, parallelism},
 * as Partisan's node_spec(): what another node joins with. */
#ifndef PARTISAN_NODESPEC_H
#define PARTISAN_NODESPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.pb-c.h"

struct ns_addr {
	char ip[64];
	uint16_t port;
};

struct ns_channel {
	char *name; /* owned */
	unsigned parallelism;
	bool monotonic;
};

struct node_spec {
	char *name;            /* owned, NAME@HOST */
	struct ns_addr *addrs; /* owned */
	size_t naddrs;
	struct ns_channel *channels; /* owned; [0] is "default" */
	size_t nchannels;
	unsigned parallelism; /* of the default channel */
	bool client;          /* client_server manager: a client node */
};

struct node_spec *node_spec_dup(const struct node_spec *s);
void node_spec_free(struct node_spec *s);
/* Same name, addresses and channels. */
bool node_spec_equal(const struct node_spec *a, const struct node_spec *b);
/* Total order: by name, then by addresses. */
int node_spec_cmp(const struct node_spec *a, const struct node_spec *b);
uint64_t node_spec_hash(const struct node_spec *s, uint64_t h);
const struct ns_channel *node_spec_channel(const struct node_spec *s, const char *name);

/* Protobuf conversion (proto/common.proto, the NodeSpec both protocols
 * carry). to_pb fills *out with pointers into s (valid while s lives);
 * free the arrays with node_spec_pb_release. from_pb validates and returns
 * NULL with a reason on bad input. */
void node_spec_to_pb(const struct node_spec *s, PartisanCommon__NodeSpec *out);
void node_spec_pb_release(PartisanCommon__NodeSpec *out);
struct node_spec *node_spec_from_pb(const PartisanCommon__NodeSpec *pb, const char **why);

/* Is NAME@HOST well formed? */
#define NODE_NAME_MAX 255 /* bytes in a node name */
bool node_name_valid(const char *name);

/* FNV-1a over bytes, chained. */
uint64_t hash_bytes(uint64_t h, const void *p, size_t n);
#define HASH_INIT 1469598103934665603ULL

#endif
