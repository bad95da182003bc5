/* advertise.c: the addresses this node puts in its spec, which peers on
 * other hosts dial (see advertise.h).
 *
 * advertise_choose is the rule, pure: it is given the host's interface
 * addresses and what the node name's host resolves to. advertise_resolve
 * reads those from the system (getifaddrs, getaddrinfo) and applies it.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advertise.h"

int advertise_family(const char *ip)
{
	return strchr(ip, ':') ? AF_INET6 : AF_INET;
}

bool advertise_loopback(const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, ip, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, ip, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

bool advertise_usable(const char *ip, bool from_loopback)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, ip, &a4) == 1) {
		uint32_t h = ntohl(a4.s_addr);

		if (h == 0 || h == 0xffffffffu || (h >> 28) == 0xe) /* any, broadcast, multicast */
			return false;
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		/* Link-local needs a scope id, which a spec does not carry. */
		if (IN6_IS_ADDR_UNSPECIFIED(&a6) || IN6_IS_ADDR_MULTICAST(&a6) ||
		    IN6_IS_ADDR_LINKLOCAL(&a6))
			return false;
	} else {
		return false;
	}
	return from_loopback || !advertise_loopback(ip);
}

static bool advertise_has(const struct ns_addr *out, size_t n, const char *ip, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (out[i].port == port && strcmp(out[i].ip, ip) == 0)
			return true;
	return false;
}

static void advertise_put(struct ns_addr *out, size_t *n, const char *ip, uint16_t port)
{
	if (*n >= ADVERTISE_MAX || advertise_has(out, *n, ip, port))
		return;
	snprintf(out[*n].ip, sizeof(out[*n].ip), "%s", ip);
	out[*n].port = port;
	(*n)++;
}

static bool advertise_accepts(const struct advertise_listener *l, int family)
{
	return advertise_family(l->ip) == family || (l->dual_stack && family == AF_INET);
}

static bool advertise_is_iface(const struct advertise_host *h, const char *ip)
{
	for (size_t i = 0; i < h->nifaces; i++)
		if (strcmp(h->ifaces[i], ip) == 0)
			return true;
	return false;
}

/* Interface addresses a wildcard listener l advertises: families it accepts
 * (only: that family alone, 0: all), no loopback, no link-local. */
static void advertise_ifaces(const struct advertise_host *h, const struct advertise_listener *l,
                             int only, struct ns_addr *out, size_t *n)
{
	/* IPv4 first: the address most peers can reach. */
	static const int order[] = {AF_INET, AF_INET6};

	for (size_t f = 0; f < 2; f++) {
		if (!advertise_accepts(l, order[f]) || (only && order[f] != only))
			continue;
		for (size_t i = 0; i < h->nifaces; i++)
			if (advertise_family(h->ifaces[i]) == order[f] &&
			    advertise_usable(h->ifaces[i], false))
				advertise_put(out, n, h->ifaces[i], l->port);
	}
}

/* A wildcard listener: the name's host when it is an address of this host,
 * else the interface addresses; a host with none of those (no network) has
 * only loopback to offer. */
static void advertise_wildcard(const struct advertise_host *h, const struct advertise_listener *l,
                               struct ns_addr *out, size_t *n)
{
	size_t before = *n;
	int named_family = 0;

	for (size_t i = 0; i < h->nname_ips; i++) {
		const char *ip = h->name_ips[i];

		if (!advertise_accepts(l, advertise_family(ip)))
			continue;
		/* A literal loopback name (a@127.0.0.1) means a one-host cluster;
		 * a host name that resolves to loopback (Debian's 127.0.1.1) does not. */
		if ((h->name_literal && advertise_loopback(ip)) ||
		    (advertise_is_iface(h, ip) && advertise_usable(ip, false))) {
			advertise_put(out, n, ip, l->port);
			named_family = advertise_family(ip);
		}
	}
	if (*n > before) {
		/* Dual stack: the other family's addresses too, after the name's. */
		if (l->dual_stack)
			advertise_ifaces(h, l, named_family == AF_INET ? AF_INET6 : AF_INET, out,
			                 n);
		return;
	}
	advertise_ifaces(h, l, 0, out, n);
	if (*n > before)
		return;
	if (advertise_accepts(l, AF_INET))
		advertise_put(out, n, "127.0.0.1", l->port);
	if (advertise_accepts(l, AF_INET6))
		advertise_put(out, n, "::1", l->port);
}

/* The port an advertised address with port 0 gets: the first listener of
 * its family, else the first one. */
static uint16_t advertise_port_for(const char *ip, const struct advertise_listener *ls, size_t nls)
{
	for (size_t i = 0; i < nls; i++)
		if (advertise_accepts(&ls[i], advertise_family(ip)))
			return ls[i].port;
	return nls ? ls[0].port : 0;
}

size_t advertise_choose(const struct config_addr *adv, size_t nadv,
                        const struct advertise_listener *ls, size_t nls,
                        const struct advertise_host *h, struct ns_addr *out)
{
	size_t n = 0;

	for (size_t i = 0; i < nadv; i++)
		advertise_put(out, &n, adv[i].ip,
		              adv[i].port ? adv[i].port : advertise_port_for(adv[i].ip, ls, nls));
	if (nadv)
		return n;
	for (size_t i = 0; i < nls; i++) {
		if (config_ip_wildcard(ls[i].ip))
			advertise_wildcard(h, &ls[i], out, &n);
		else
			advertise_put(out, &n, ls[i].ip, ls[i].port);
	}
	return n;
}

/* ---- reading the host ---- */

static void advertise_host_add(char ***v, size_t *n, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN];
	const void *a;

	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
	                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (inet_ntop(sa->sa_family, a, ip, sizeof(ip)) == NULL)
		return;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], ip) == 0)
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(ip);
}

/* The host part of NAME@HOST, brackets off. */
static void advertise_name_host(const char *name, char *host, size_t n)
{
	const char *at = strchr(name, '@');
	size_t len;

	snprintf(host, n, "%s", at ? at + 1 : name);
	len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		memmove(host, host + 1, len - 2);
		host[len - 2] = '\0';
	}
}

void advertise_host_read(struct advertise_host *h, const char *name)
{
	struct ifaddrs *ifs = NULL;
	struct addrinfo hints = {0}, *res = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	char host[256];

	memset(h, 0, sizeof(*h));
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
			if ((i->ifa_flags & IFF_UP) && i->ifa_addr)
				advertise_host_add(&h->ifaces, &h->nifaces, i->ifa_addr);
		freeifaddrs(ifs);
	}
	advertise_name_host(name, host, sizeof(host));
	h->name_literal = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = h->name_literal ? AI_NUMERICHOST : 0;
	if (getaddrinfo(host, NULL, &hints, &res) == 0) {
		for (struct addrinfo *r = res; r; r = r->ai_next)
			advertise_host_add(&h->name_ips, &h->nname_ips, r->ai_addr);
		freeaddrinfo(res);
	}
}

void advertise_host_free(struct advertise_host *h)
{
	for (size_t i = 0; i < h->nifaces; i++)
		free(h->ifaces[i]);
	for (size_t i = 0; i < h->nname_ips; i++)
		free(h->name_ips[i]);
	free(h->ifaces);
	free(h->name_ips);
	memset(h, 0, sizeof(*h));
}

bool advertise_spec_usable(const struct node_spec *s, bool from_loopback)
{
	for (size_t i = 0; i < s->naddrs; i++)
		if (advertise_usable(s->addrs[i].ip, from_loopback))
			return true;
	return false;
}
