/* convert.c: turns decoded ipc.proto messages into the public structs of
 * partisan/client.h. Events keep the decoded message and point into it (no
 * copy); every other result is copied into memory the caller owns and frees
 * with the matching partisan_*_free(). On ENOMEM nothing is left allocated.
 * The pc_conv_fn answers each take a whole Response, for pc_query(). */
#include <stdlib.h>
#include <string.h>

#include "client-int.h"

/* ---- events ------------------------------------------------------------ */

static void conv_message(partisan_event_t *ev, const PartisanIpc__Message *m)
{
	ev->type = PARTISAN_EV_MESSAGE;
	ev->message.from = m->from;
	ev->message.to = m->to;
	ev->message.call_ref = m->call_ref;
	ev->message.channel = m->channel;
	ev->message.payload = m->payload.data;
	ev->message.len = m->payload.len;
}

static void conv_node(partisan_event_t *ev, const PartisanIpc__NodeEvent *n)
{
	ev->type = n->up ? PARTISAN_EV_NODEUP : PARTISAN_EV_NODEDOWN;
	ev->node.node = n->node;
	ev->node.reason = n->reason;
}

static void conv_broadcast(partisan_event_t *ev, const PartisanIpc__BroadcastEvent *b)
{
	ev->type = PARTISAN_EV_BROADCAST;
	ev->broadcast.topic = b->topic;
	ev->broadcast.from = b->from;
	ev->broadcast.payload = b->payload.data;
	ev->broadcast.len = b->payload.len;
}

static bool conv_fill_event(partisan_event_t *ev, const PartisanIpc__Event *e)
{
	switch (e->body_case) {
	case PARTISAN_IPC__EVENT__BODY_MESSAGE:
		conv_message(ev, e->message);
		return true;
	case PARTISAN_IPC__EVENT__BODY_DOWN:
		ev->type = PARTISAN_EV_DOWN;
		ev->down.mref = e->down->mref;
		ev->down.target = e->down->target;
		ev->down.reason = e->down->reason;
		return true;
	case PARTISAN_IPC__EVENT__BODY_NODE:
		conv_node(ev, e->node);
		return true;
	case PARTISAN_IPC__EVENT__BODY_BROADCAST:
		conv_broadcast(ev, e->broadcast);
		return true;
	case PARTISAN_IPC__EVENT__BODY_ACK_LOST:
		ev->type = PARTISAN_EV_ACK_LOST;
		ev->ack_lost.to = e->ack_lost->to;
		ev->ack_lost.reason = e->ack_lost->reason;
		ev->ack_lost.count = e->ack_lost->has_count ? e->ack_lost->count : 1;
		return true;
	case PARTISAN_IPC__EVENT__BODY_STOPPED:
		ev->type = PARTISAN_EV_STOPPED;
		return true;
	default:
		return false;
	}
}

struct pc_event *pc_conv_event(PartisanIpc__ServerMsg *m)
{
	struct pc_event *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	if (!conv_fill_event(&e->pub, m->event)) {
		free(e);
		return NULL;
	}
	e->msg = m;
	return e;
}

void pc_conv_event_free(struct pc_event *e)
{
	if (e == NULL)
		return;
	pc_msg_free(e->msg);
	free(e);
}

/* ---- lists ------------------------------------------------------------- */

/* Element i of a decoded message's list into dst (zeroed); what it
 * allocated before it failed stays in dst, for the matching clear. */
typedef int (*conv_one_fn)(const void *msg, size_t i, void *dst);
typedef void (*conv_clear_fn)(void *dst);

/* Clear and free n elements of size bytes at v; returns NULL, *n is 0. */
static void *conv_list_drop(void *v, size_t *n, size_t size, conv_clear_fn clear)
{
	for (size_t i = 0; i < *n; i++)
		clear((char *)v + i * size);
	free(v);
	*n = 0;
	return NULL;
}

/* A new array of n elements of size bytes, element i from one(msg, i),
 * and its length in *count: n, or 0 (nothing left allocated) on ENOMEM. */
static void *conv_list(const void *msg, size_t n, size_t size, conv_one_fn one, conv_clear_fn clear,
                       size_t *count)
{
	char *v = n > 0 ? calloc(n, size) : NULL;

	*count = 0;
	if (v == NULL)
		return NULL;
	for (; *count < n; ++*count)
		if (one(msg, *count, v + *count * size) < 0) {
			++*count;
			return conv_list_drop(v, count, size, clear);
		}
	return v;
}

static int conv_str(const void *msg, size_t i, void *dst)
{
	char **d = dst;

	*d = strdup(((char *const *)msg)[i]);
	return *d != NULL ? 0 : PARTISAN_ENOMEM;
}

static void conv_str_clear(void *dst)
{
	free(*(char **)dst);
}

void partisan_strlist_free(partisan_strlist_t *l)
{
	if (l != NULL)
		l->v = conv_list_drop(l->v, &l->n, sizeof(*l->v), conv_str_clear);
}

int pc_conv_strlist(char *const *v, size_t n, partisan_strlist_t *out)
{
	out->v = conv_list(v, n, sizeof(*out->v), conv_str, conv_str_clear, &out->n);
	return out->n == n ? 0 : PARTISAN_ENOMEM;
}

int pc_conv_nodes(const PartisanIpc__Response *r, void *out)
{
	const PartisanIpc__NodeList *l = r->body_case != 0 ? r->nodes : NULL;

	if (l == NULL)
		return 0;
	return pc_conv_strlist(l->nodes, l->n_nodes, out);
}

/* ---- node specs -------------------------------------------------------- */

static void conv_addr_clear(void *dst)
{
	free(((partisan_addr_t *)dst)->ip);
}

static void conv_channel_clear(void *dst)
{
	free(((partisan_channel_t *)dst)->name);
}

static void conv_spec_clear(void *dst)
{
	partisan_node_spec_t *s = dst;

	conv_list_drop(s->addrs, &s->n_addrs, sizeof(*s->addrs), conv_addr_clear);
	conv_list_drop(s->channels, &s->n_channels, sizeof(*s->channels), conv_channel_clear);
	free(s->name);
	memset(s, 0, sizeof(*s));
}

void partisan_node_spec_free(partisan_node_spec_t *spec)
{
	if (spec == NULL)
		return;
	conv_spec_clear(spec);
	free(spec);
}

static int conv_addr(const void *msg, size_t i, void *dst)
{
	const PartisanCommon__Addr *a = ((const PartisanCommon__NodeSpec *)msg)->listen_addrs[i];
	partisan_addr_t *d = dst;

	d->port = (uint16_t)a->port;
	d->ip = strdup(a->ip);
	return d->ip != NULL ? 0 : PARTISAN_ENOMEM;
}

static int conv_channel(const void *msg, size_t i, void *dst)
{
	const PartisanCommon__ChannelSpec *ch =
	    ((const PartisanCommon__NodeSpec *)msg)->channels[i];
	partisan_channel_t *d = dst;

	d->parallelism = ch->has_parallelism ? ch->parallelism : 0;
	d->monotonic = ch->has_monotonic && ch->monotonic;
	d->name = strdup(ch->name);
	return d->name != NULL ? 0 : PARTISAN_ENOMEM;
}

const char *pc_status_name(const char *s)
{
	static const char *const names[] = {"alive", "suspect", "down", "left"};

	for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return names[i];
	return NULL;
}

static int conv_spec(const PartisanCommon__NodeSpec *s, partisan_node_spec_t *out)
{
	memset(out, 0, sizeof(*out));
	out->parallelism = s->has_parallelism ? s->parallelism : 0;
	out->status = pc_status_name(s->status);
	out->since_ms = s->has_since_ms ? s->since_ms : 0;
	out->name = strdup(s->name);
	out->addrs = conv_list(s, s->n_listen_addrs, sizeof(*out->addrs), conv_addr,
	                       conv_addr_clear, &out->n_addrs);
	out->channels = conv_list(s, s->n_channels, sizeof(*out->channels), conv_channel,
	                          conv_channel_clear, &out->n_channels);
	if (out->name == NULL || out->n_addrs != s->n_listen_addrs ||
	    out->n_channels != s->n_channels) {
		conv_spec_clear(out);
		return PARTISAN_ENOMEM;
	}
	return 0;
}

int pc_conv_node_spec(const PartisanIpc__Response *r, void *out)
{
	partisan_node_spec_t *s = malloc(sizeof(*s));
	int rc;

	if (s == NULL)
		return PARTISAN_ENOMEM;
	if ((rc = conv_spec(r->spec, s)) < 0) {
		free(s);
		return rc;
	}
	*(partisan_node_spec_t **)out = s;
	return 0;
}

void partisan_spec_list_free(partisan_spec_list_t *l)
{
	if (l != NULL)
		l->v = conv_list_drop(l->v, &l->n, sizeof(*l->v), conv_spec_clear);
}

/* ---- status ------------------------------------------------------------ */

static int conv_endpoint(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__Endpoint *e = ((const PartisanIpc__StatusReply *)msg)->endpoints[i];
	partisan_endpoint_t *d = dst;

	if ((d->ref = strdup(e->ref)) == NULL)
		return PARTISAN_ENOMEM;
	return pc_conv_strlist(e->names, e->n_names, &d->names);
}

static void conv_endpoint_clear(void *dst)
{
	partisan_endpoint_t *e = dst;

	free(e->ref);
	partisan_strlist_free(&e->names);
}

void partisan_status_free(partisan_status_t *s)
{
	if (s == NULL)
		return;
	free(s->name);
	free(s->manager);
	free(s->cluster);
	free(s->security);
	conv_spec_clear(&s->spec);
	conv_list_drop(s->endpoints, &s->n_endpoints, sizeof(*s->endpoints), conv_endpoint_clear);
	partisan_strlist_free(&s->active_view);
	partisan_strlist_free(&s->passive_view);
	free(s);
}

static void conv_counters(const PartisanIpc__StatusReply *s, partisan_status_t *out)
{
	out->uptime_s = s->uptime_s;
	out->members = s->members;
	out->nodes = s->nodes;
	out->dropped_no_proc = s->has_dropped_no_proc ? s->dropped_no_proc : 0;
	out->outstanding_acks = s->has_outstanding_acks ? s->outstanding_acks : 0;
	out->sessions = s->has_sessions ? s->sessions : 0;
	out->messages_in = s->has_messages_in ? s->messages_in : 0;
	out->messages_out = s->has_messages_out ? s->messages_out : 0;
	out->partitions = s->has_partitions ? s->partitions : 0;
	if (s->counters != NULL) {
		const PartisanIpc__Counters *k = s->counters;
		partisan_counters_t *c = &out->counters;

		c->bytes_in = k->bytes_in;
		c->bytes_out = k->bytes_out;
		c->retransmits = k->retransmits;
		c->dropped_no_proc = k->dropped_no_proc;
		c->dropped_monotonic = k->dropped_monotonic;
		c->peer_frames_bad = k->peer_frames_bad;
		c->connections_opened = k->connections_opened;
		c->connections_failed = k->connections_failed;
		c->fd_timeouts = k->fd_timeouts;
		c->fd_silent = k->fd_silent;
		c->fd_suspicions = k->fd_suspicions;
		c->messages_in = k->messages_in;
		c->messages_out = k->messages_out;
	}
}

static int conv_status(const PartisanIpc__StatusReply *s, partisan_status_t *out)
{
	conv_counters(s, out);
	out->name = strdup(s->name);
	out->manager = strdup(s->manager);
	out->cluster = strdup(s->cluster != NULL ? s->cluster : "");
	out->security = strdup(s->security != NULL ? s->security : "");
	if (out->name == NULL || out->manager == NULL || out->cluster == NULL ||
	    out->security == NULL)
		return PARTISAN_ENOMEM;
	out->endpoints = conv_list(s, s->n_endpoints, sizeof(*out->endpoints), conv_endpoint,
	                           conv_endpoint_clear, &out->n_endpoints);
	if (out->n_endpoints != s->n_endpoints || conv_spec(s->spec, &out->spec) < 0)
		return PARTISAN_ENOMEM;
	if (pc_conv_strlist(s->active_view, s->n_active_view, &out->active_view) < 0)
		return PARTISAN_ENOMEM;
	return pc_conv_strlist(s->passive_view, s->n_passive_view, &out->passive_view);
}

int pc_conv_status(const PartisanIpc__Response *r, void *out)
{
	partisan_status_t *st = calloc(1, sizeof(*st));
	int rc;

	if (st == NULL)
		return PARTISAN_ENOMEM;
	if ((rc = conv_status(r->status, st)) < 0) {
		partisan_status_free(st);
		return rc;
	}
	*(partisan_status_t **)out = st;
	return 0;
}

/* ---- connections, registry, partitions --------------------------------- */

static int conv_conn(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__ConnInfo *ci = ((const PartisanIpc__ConnList *)msg)->connections[i];
	partisan_conn_t *d = dst;

	d->connected = ci->connected;
	d->wanted = ci->wanted;
	d->node = strdup(ci->node);
	d->channel = strdup(ci->channel);
	d->transport = ci->transport ? strdup(ci->transport) : NULL;
	d->peer_subject = ci->peer_subject ? strdup(ci->peer_subject) : NULL;
	if (d->node == NULL || d->channel == NULL || (ci->transport && d->transport == NULL) ||
	    (ci->peer_subject && d->peer_subject == NULL))
		return PARTISAN_ENOMEM;
	return 0;
}

static void conv_conn_clear(void *dst)
{
	partisan_conn_t *c = dst;

	free(c->node);
	free(c->channel);
	free(c->transport);
	free(c->peer_subject);
}

void partisan_conn_list_free(partisan_conn_list_t *l)
{
	if (l != NULL)
		l->v = conv_list_drop(l->v, &l->n, sizeof(*l->v), conv_conn_clear);
}

int pc_conv_conns(const PartisanIpc__Response *r, void *vout)
{
	const PartisanIpc__ConnList *l = r->body_case != 0 ? r->connections : NULL;
	partisan_conn_list_t *out = vout;
	size_t n = l != NULL ? l->n_connections : 0;

	out->v = conv_list(l, n, sizeof(*out->v), conv_conn, conv_conn_clear, &out->n);
	return out->n == n ? 0 : PARTISAN_ENOMEM;
}

static int conv_entry(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__RegistryEntry *e = ((const PartisanIpc__RegistryReply *)msg)->entries[i];
	partisan_registry_entry_t *d = dst;

	if ((d->name = strdup(e->name)) == NULL)
		return PARTISAN_ENOMEM;
	return pc_conv_strlist(e->refs, e->n_refs, &d->refs);
}

static void conv_entry_clear(void *dst)
{
	partisan_registry_entry_t *e = dst;

	free(e->name);
	partisan_strlist_free(&e->refs);
}

void partisan_registry_free(partisan_registry_t *r)
{
	if (r != NULL)
		r->v = conv_list_drop(r->v, &r->n, sizeof(*r->v), conv_entry_clear);
}

int pc_conv_registry(const PartisanIpc__Response *r, void *vout)
{
	const PartisanIpc__RegistryReply *l = r->body_case != 0 ? r->registry : NULL;
	partisan_registry_t *out = vout;
	size_t n = l != NULL ? l->n_entries : 0;

	out->v = conv_list(l, n, sizeof(*out->v), conv_entry, conv_entry_clear, &out->n);
	return out->n == n ? 0 : PARTISAN_ENOMEM;
}

static int conv_partition(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__PartitionInfo *p =
	    ((const PartisanIpc__PartitionList *)msg)->partitions[i];
	partisan_partition_t *d = dst;

	d->ref = strdup(p->ref);
	d->node = strdup(p->node);
	return d->ref != NULL && d->node != NULL ? 0 : PARTISAN_ENOMEM;
}

static void conv_partition_clear(void *dst)
{
	partisan_partition_t *p = dst;

	free(p->ref);
	free(p->node);
}

void partisan_partition_list_free(partisan_partition_list_t *l)
{
	if (l != NULL)
		l->v = conv_list_drop(l->v, &l->n, sizeof(*l->v), conv_partition_clear);
}

int pc_conv_partitions(const PartisanIpc__Response *r, void *vout)
{
	const PartisanIpc__PartitionList *l = r->body_case != 0 ? r->partitions : NULL;
	partisan_partition_list_t *out = vout;
	size_t n = l != NULL ? l->n_partitions : 0;

	out->v = conv_list(l, n, sizeof(*out->v), conv_partition, conv_partition_clear, &out->n);
	return out->n == n ? 0 : PARTISAN_ENOMEM;
}

static int conv_member(const void *msg, size_t i, void *dst)
{
	return conv_spec(((const PartisanIpc__MemberList *)msg)->members[i], dst);
}

int pc_conv_members(const PartisanIpc__Response *r, void *vout)
{
	const PartisanIpc__MemberList *l = r->body_case != 0 ? r->members : NULL;
	partisan_spec_list_t *out = vout;
	size_t n = l != NULL ? l->n_members : 0;

	out->v = conv_list(l, n, sizeof(*out->v), conv_member, conv_spec_clear, &out->n);
	return out->n == n ? 0 : PARTISAN_ENOMEM;
}

/* ---- graph -------------------------------------------------------------- */

static int conv_graph_node(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__GraphNode *n = ((const PartisanIpc__GraphReply *)msg)->nodes[i];
	partisan_graph_node_t *d = dst;

	d->status = pc_status_name(n->status);
	d->name = strdup(n->name);
	return d->name != NULL ? 0 : PARTISAN_ENOMEM;
}

static void conv_graph_node_clear(void *dst)
{
	free(((partisan_graph_node_t *)dst)->name);
}

/* An edge's channel: a partisan_conn_t whose node is the edge's far end. */
static int conv_graph_channel(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__GraphEdge *e = msg;
	partisan_conn_t *d = dst;

	d->connected = e->channels[i]->connected;
	d->wanted = e->channels[i]->wanted;
	d->node = strdup(e->to);
	d->channel = strdup(e->channels[i]->channel);
	return d->node != NULL && d->channel != NULL ? 0 : PARTISAN_ENOMEM;
}

static int conv_graph_edge(const void *msg, size_t i, void *dst)
{
	const PartisanIpc__GraphEdge *e = ((const PartisanIpc__GraphReply *)msg)->edges[i];
	partisan_graph_edge_t *d = dst;

	d->passive = e->has_passive && e->passive;
	d->from = strdup(e->from);
	d->to = strdup(e->to);
	d->channels = conv_list(e, e->n_channels, sizeof(*d->channels), conv_graph_channel,
	                        conv_conn_clear, &d->n_channels);
	if (d->from == NULL || d->to == NULL || d->n_channels != e->n_channels)
		return PARTISAN_ENOMEM;
	return 0;
}

static void conv_graph_edge_clear(void *dst)
{
	partisan_graph_edge_t *e = dst;

	conv_list_drop(e->channels, &e->n_channels, sizeof(*e->channels), conv_conn_clear);
	free(e->from);
	free(e->to);
}

void partisan_graph_free(partisan_graph_t *g)
{
	if (g == NULL)
		return;
	conv_list_drop(g->nodes, &g->n_nodes, sizeof(*g->nodes), conv_graph_node_clear);
	conv_list_drop(g->edges, &g->n_edges, sizeof(*g->edges), conv_graph_edge_clear);
	memset(g, 0, sizeof(*g));
}

int pc_conv_graph(const PartisanIpc__Response *r, void *vout)
{
	const PartisanIpc__GraphReply *g = r->graph;
	partisan_graph_t *out = vout;

	out->nodes = conv_list(g, g->n_nodes, sizeof(*out->nodes), conv_graph_node,
	                       conv_graph_node_clear, &out->n_nodes);
	out->edges = conv_list(g, g->n_edges, sizeof(*out->edges), conv_graph_edge,
	                       conv_graph_edge_clear, &out->n_edges);
	if (out->n_nodes != g->n_nodes || out->n_edges != g->n_edges) {
		partisan_graph_free(out);
		return PARTISAN_ENOMEM;
	}
	return 0;
}
