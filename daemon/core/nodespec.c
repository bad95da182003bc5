/* nodespec.c: node specs, their comparison, hashing and protobuf form. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "nodespec.h"
#include "xmalloc.h"

uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

bool node_name_valid(const char *name)
{
	const char *at = strchr(name, '@');
	size_t n = strlen(name);

	if (at == NULL || at == name || at[1] == '\0' || n > NODE_NAME_MAX)
		return false;
	if (strchr(at + 1, '@') != NULL)
		return false;
	for (const char *p = name; *p; p++)
		if (isspace((unsigned char)*p) || (*p == ':' && p < at) ||
		    iscntrl((unsigned char)*p))
			return false;
	return true;
}

struct node_spec *node_spec_dup(const struct node_spec *s)
{
	struct node_spec *d = xcalloc(1, sizeof(*d));

	d->name = xstrdup(s->name);
	d->naddrs = s->naddrs;
	d->addrs = xcalloc(s->naddrs, sizeof(*d->addrs));
	memcpy(d->addrs, s->addrs, s->naddrs * sizeof(*d->addrs));
	d->nchannels = s->nchannels;
	d->channels = xcalloc(s->nchannels, sizeof(*d->channels));
	for (size_t i = 0; i < s->nchannels; i++) {
		d->channels[i] = s->channels[i];
		d->channels[i].name = xstrdup(s->channels[i].name);
	}
	d->parallelism = s->parallelism;
	d->client = s->client;
	return d;
}

void node_spec_free(struct node_spec *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nchannels; i++)
		free(s->channels[i].name);
	free(s->channels);
	free(s->addrs);
	free(s->name);
	free(s);
}

static int node_spec_addr_cmp(const struct ns_addr *a, const struct ns_addr *b)
{
	int c = strcmp(a->ip, b->ip);

	return c ? c : (int)a->port - (int)b->port;
}

int node_spec_cmp(const struct node_spec *a, const struct node_spec *b)
{
	int c = strcmp(a->name, b->name);

	if (c)
		return c;
	if (a->naddrs != b->naddrs)
		return a->naddrs < b->naddrs ? -1 : 1;
	for (size_t i = 0; i < a->naddrs; i++)
		if ((c = node_spec_addr_cmp(&a->addrs[i], &b->addrs[i])) != 0)
			return c;
	return 0;
}

bool node_spec_equal(const struct node_spec *a, const struct node_spec *b)
{
	if (node_spec_cmp(a, b) != 0 || a->nchannels != b->nchannels ||
	    a->parallelism != b->parallelism || a->client != b->client)
		return false;
	for (size_t i = 0; i < a->nchannels; i++)
		if (strcmp(a->channels[i].name, b->channels[i].name) ||
		    a->channels[i].parallelism != b->channels[i].parallelism ||
		    a->channels[i].monotonic != b->channels[i].monotonic)
			return false;
	return true;
}

uint64_t node_spec_hash(const struct node_spec *s, uint64_t h)
{
	h = hash_bytes(h, s->name, strlen(s->name) + 1);
	for (size_t i = 0; i < s->naddrs; i++) {
		h = hash_bytes(h, s->addrs[i].ip, strlen(s->addrs[i].ip) + 1);
		h = hash_bytes(h, &s->addrs[i].port, sizeof(s->addrs[i].port));
	}
	return h;
}

const struct ns_channel *node_spec_channel(const struct node_spec *s, const char *name)
{
	for (size_t i = 0; i < s->nchannels; i++)
		if (strcmp(s->channels[i].name, name) == 0)
			return &s->channels[i];
	return NULL;
}

void node_spec_to_pb(const struct node_spec *s, PartisanCommon__NodeSpec *out)
{
	partisan_common__node_spec__init(out);
	out->name = s->name;
	out->n_listen_addrs = s->naddrs;
	out->listen_addrs = xcalloc(s->naddrs, sizeof(*out->listen_addrs));
	for (size_t i = 0; i < s->naddrs; i++) {
		PartisanCommon__Addr *a = xmalloc(sizeof(*a));

		partisan_common__addr__init(a);
		a->ip = (char *)s->addrs[i].ip;
		a->port = s->addrs[i].port;
		out->listen_addrs[i] = a;
	}
	out->n_channels = s->nchannels;
	out->channels = xcalloc(s->nchannels, sizeof(*out->channels));
	for (size_t i = 0; i < s->nchannels; i++) {
		PartisanCommon__ChannelSpec *c = xmalloc(sizeof(*c));

		partisan_common__channel_spec__init(c);
		c->name = s->channels[i].name;
		c->has_parallelism = c->has_monotonic = 1;
		c->parallelism = s->channels[i].parallelism;
		c->monotonic = s->channels[i].monotonic;
		out->channels[i] = c;
	}
	out->has_parallelism = 1;
	out->parallelism = s->parallelism;
	if (s->client)
		out->role = "client";
}

void node_spec_pb_release(PartisanCommon__NodeSpec *out)
{
	for (size_t i = 0; i < out->n_listen_addrs; i++)
		free(out->listen_addrs[i]);
	for (size_t i = 0; i < out->n_channels; i++)
		free(out->channels[i]);
	free(out->listen_addrs);
	free(out->channels);
	out->listen_addrs = NULL;
	out->channels = NULL;
	out->n_listen_addrs = out->n_channels = 0;
}

static bool node_spec_ip_valid(const char *ip)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

struct node_spec *node_spec_from_pb(const PartisanCommon__NodeSpec *pb, const char **why)
{
	struct node_spec *s;

	*why = NULL;
	if (!node_name_valid(pb->name))
		return *why = "node spec: bad node name", NULL;
	if (pb->n_listen_addrs == 0 || pb->n_listen_addrs > 16)
		return *why = "node spec: expected 1..16 listen addresses", NULL;
	if (pb->n_channels == 0 || pb->n_channels > 64)
		return *why = "node spec: expected 1..64 channels", NULL;
	s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(pb->name);
	s->addrs = xcalloc(pb->n_listen_addrs, sizeof(*s->addrs));
	for (size_t i = 0; i < pb->n_listen_addrs; i++) {
		const PartisanCommon__Addr *a = pb->listen_addrs[i];

		if (strlen(a->ip) >= sizeof(s->addrs[i].ip) || !node_spec_ip_valid(a->ip) ||
		    a->port == 0 || a->port > 65535) {
			*why = "node spec: bad listen address";
			goto fail;
		}
		strcpy(s->addrs[i].ip, a->ip);
		s->addrs[i].port = (uint16_t)a->port;
		s->naddrs++;
	}
	s->channels = xcalloc(pb->n_channels, sizeof(*s->channels));
	for (size_t i = 0; i < pb->n_channels; i++) {
		const PartisanCommon__ChannelSpec *c = pb->channels[i];
		unsigned par = c->has_parallelism ? c->parallelism : 1;

		if (c->name[0] == '\0' || strlen(c->name) > 64 || par < 1 || par > 64) {
			*why = "node spec: bad channel";
			goto fail;
		}
		s->channels[i].name = xstrdup(c->name);
		s->channels[i].parallelism = par;
		s->channels[i].monotonic = c->has_monotonic && c->monotonic;
		s->nchannels++;
	}
	if (strcmp(s->channels[0].name, "default") != 0) {
		*why = "node spec: first channel must be \"default\"";
		goto fail;
	}
	s->parallelism = s->channels[0].parallelism;
	s->client = pb->role && strcmp(pb->role, "client") == 0;
	return s;
fail:
	node_spec_free(s);
	return NULL;
}
