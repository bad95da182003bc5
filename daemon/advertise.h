/* advertise.h: which addresses a node advertises in its spec.
 *
 * The rule (SPEC "Nodes"): advertise_addrs when set (port 0: the port the
 * listener of that family bound). Else each listen address as bound, except
 * a wildcard one (0.0.0.0, ::), which advertises the host part of the node
 * name when that is an address of this host (a literal loopback name too:
 * a one-host cluster), else this host's interface addresses without
 * loopback and IPv6 link-local; only a host with no other address falls
 * back to loopback. A dual-stack :: listener advertises both families.
 */
#ifndef PARTISAN_ADVERTISE_H
#define PARTISAN_ADVERTISE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "core.h"
#include "nodespec.h"

#define ADVERTISE_MAX 16 /* a node spec's limit */

struct advertise_listener {
	char ip[64];     /* as configured: a wildcard stays a wildcard */
	uint16_t port;   /* as bound */
	bool dual_stack; /* an IPv6 socket that takes IPv4 too */
};

/* What advertise_choose knows of the host. */
struct advertise_host {
	char **ifaces; /* numeric addresses of the interfaces that are up */
	size_t nifaces;
	char **name_ips; /* what the node name's host is, or resolves to */
	size_t nname_ips;
	bool name_literal; /* the name's host is a numeric address */
};

/* Fill out (room for ADVERTISE_MAX) by the rule above; returns how many. Pure. */
size_t advertise_choose(const struct config_addr *adv, size_t nadv,
                        const struct advertise_listener *ls, size_t nls,
                        const struct advertise_host *h, struct ns_addr *out);

/* Read the interfaces and resolve name's host into *h; free with
 * advertise_host_free. */
void advertise_host_read(struct advertise_host *h, const char *name);
void advertise_host_free(struct advertise_host *h);

/* AF_INET or AF_INET6 of a numeric address. */
int advertise_family(const char *ip);
bool advertise_loopback(const char *ip);
/* Can a peer dial ip? Not a wildcard, multicast, broadcast or IPv6
 * link-local; loopback only for a peer that is on loopback itself. */
bool advertise_usable(const char *ip, bool from_loopback);
/* Has s one address advertise_usable? */
bool advertise_spec_usable(const struct node_spec *s, bool from_loopback);

#endif
