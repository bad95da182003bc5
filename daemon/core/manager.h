/* manager.h: the peer service manager interface. One file per strategy
 * (full_mesh.c, hyparview.c, static.c; client_server is full_mesh.c with
 * params.client_server, see its first comment), chosen by
 * peer_service_manager; each is a pure core driven by the daemon's shell or
 * by the simulator. */
#ifndef PARTISAN_MANAGER_H
#define PARTISAN_MANAGER_H

#include "core.h"

struct manager_params {
	const struct node_spec *self; /* copied */
	const char *actor;            /* unique per incarnation: "NAME/INC" */
	unsigned gossip_interval_ms;
	unsigned fanout;      /* gossip targets per round */
	bool client_server;   /* full mesh among servers; clients reach servers only */
	unsigned max_members; /* a merge that would hold more is refused (0: 4096) */
	/* hyparview */
	unsigned active_max, passive_max, arwl, prwl;
	unsigned shuffle_interval_ms, shuffle_k_active, shuffle_k_passive;
	unsigned promotion_interval_ms;
};

struct manager_stats {
	uint64_t rounds;      /* gossip rounds */
	uint64_t states_sent; /* full membership states sent */
	uint64_t state_bytes; /* their packed size */
};

struct manager_ops {
	const char *name;
	void *(*create)(const struct manager_params *p);
	void (*destroy)(void *m);
	/* Join the cluster that spec's node belongs to. */
	void (*join)(void *m, const struct node_spec *spec, const struct core_env *env,
	             struct actions *out);
	/* Remove node from the cluster; node == self: this node leaves. */
	void (*leave)(void *m, const char *node, const struct core_env *env, struct actions *out);
	/* A membership-protocol message from a connected node. Returns -1 with
	 * *why for a message this manager refuses (the shell closes that link). */
	int (*receive)(void *m, const char *from, const PartisanPeer__PeerMsg *msg,
	               const struct core_env *env, struct actions *out, const char **why);
	/* A node's connections are up (spec as it said in its hello) / all gone. */
	void (*peer_up)(void *m, const struct node_spec *spec, const struct core_env *env,
	                struct actions *out);
	void (*peer_down)(void *m, const char *node, const struct core_env *env,
	                  struct actions *out);
	void (*tick)(void *m, const struct core_env *env, struct actions *out);
	/* Members as this node sees them, self included. The array and specs stay
	 * valid until the next call into the manager. */
	size_t (*members)(void *m, const struct node_spec *const **out);
	bool (*is_member)(void *m, const char *node);
	/* The current spec of a member, or NULL (also when the manager keeps no
	 * specs of nodes it is not linked to). May be NULL. */
	const struct node_spec *(*spec_of)(void *m, const char *node);
	/* node left the cluster (news from the overlay): forget it everywhere,
	 * passive candidates included. May be NULL. */
	void (*forget)(void *m, const char *node, const struct core_env *env, struct actions *out);
	/* Counters for /metrics. May be NULL. */
	void (*stats)(void *m, struct manager_stats *out);
	/* Overlay views for status (may return 0). */
	size_t (*active_view)(void *m, const char *const **out);
	size_t (*passive_view)(void *m, const char *const **out);
};

extern const struct manager_ops full_mesh_ops;
extern const struct manager_ops hyparview_ops;
extern const struct manager_ops static_ops;

#endif
