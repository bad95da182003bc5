/* convert.c: turns decoded ipc.proto messages into the public structs of
 * partisan/client.h. Events keep the decoded message and point into it (no
 * copy); every other result is copied into memory the caller owns and frees
 * with the matching partisan_*_free(). On ENOMEM nothing is left allocated. */
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

void partisan_strlist_free(partisan_strlist_t *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int pc_conv_strlist(char *const *v, size_t n, partisan_strlist_t *out)
{
	out->n = 0;
	out->v = n > 0 ? calloc(n, sizeof(char *)) : NULL;
	if (n > 0 && out->v == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n < n; out->n++) {
		out->v[out->n] = strdup(v[out->n]);
		if (out->v[out->n] == NULL) {
			partisan_strlist_free(out);
			return PARTISAN_ENOMEM;
		}
	}
	return 0;
}

/* ---- node specs -------------------------------------------------------- */

void pc_conv_spec_clear(partisan_node_spec_t *s)
{
	for (size_t i = 0; i < s->n_addrs; i++)
		free(s->addrs[i].ip);
	for (size_t i = 0; i < s->n_channels; i++)
		free(s->channels[i].name);
	free(s->addrs);
	free(s->channels);
	free(s->name);
	memset(s, 0, sizeof(*s));
}

void partisan_node_spec_free(partisan_node_spec_t *spec)
{
	if (spec == NULL)
		return;
	pc_conv_spec_clear(spec);
	free(spec);
}

static int conv_addrs(const PartisanIpc__NodeSpec *s, partisan_node_spec_t *out)
{
	if (s->n_listen_addrs == 0)
		return 0;
	out->addrs = calloc(s->n_listen_addrs, sizeof(*out->addrs));
	if (out->addrs == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n_addrs < s->n_listen_addrs; out->n_addrs++) {
		const PartisanIpc__Addr *a = s->listen_addrs[out->n_addrs];

		out->addrs[out->n_addrs].port = (uint16_t)a->port;
		if ((out->addrs[out->n_addrs].ip = strdup(a->ip)) == NULL)
			return PARTISAN_ENOMEM;
	}
	return 0;
}

static int conv_channels(const PartisanIpc__NodeSpec *s, partisan_node_spec_t *out)
{
	if (s->n_channels == 0)
		return 0;
	out->channels = calloc(s->n_channels, sizeof(*out->channels));
	if (out->channels == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n_channels < s->n_channels; out->n_channels++) {
		const PartisanIpc__ChannelSpec *ch = s->channels[out->n_channels];
		partisan_channel_t *dst = &out->channels[out->n_channels];

		dst->parallelism = ch->has_parallelism ? ch->parallelism : 0;
		dst->monotonic = ch->has_monotonic && ch->monotonic;
		if ((dst->name = strdup(ch->name)) == NULL)
			return PARTISAN_ENOMEM;
	}
	return 0;
}

const char *pc_status_name(const char *s)
{
	static const char *const names[] = {"alive", "suspect", "down", "left"};

	for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return names[i];
	return NULL;
}

int pc_conv_spec(const PartisanIpc__NodeSpec *s, partisan_node_spec_t *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	out->parallelism = s->has_parallelism ? s->parallelism : 0;
	out->status = pc_status_name(s->status);
	out->since_ms = s->has_since_ms ? s->since_ms : 0;
	if ((out->name = strdup(s->name)) == NULL)
		r = PARTISAN_ENOMEM;
	else if ((r = conv_addrs(s, out)) == 0)
		r = conv_channels(s, out);
	if (r < 0)
		pc_conv_spec_clear(out);
	return r;
}

void partisan_spec_list_free(partisan_spec_list_t *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		pc_conv_spec_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---- status ------------------------------------------------------------ */

static void conv_endpoints_free(partisan_endpoint_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].ref);
		partisan_strlist_free(&v[i].names);
	}
	free(v);
}

void partisan_status_free(partisan_status_t *s)
{
	if (s == NULL)
		return;
	free(s->name);
	free(s->manager);
	free(s->cluster);
	pc_conv_spec_clear(&s->spec);
	conv_endpoints_free(s->endpoints, s->n_endpoints);
	partisan_strlist_free(&s->active_view);
	partisan_strlist_free(&s->passive_view);
	free(s);
}

static int conv_endpoints(const PartisanIpc__StatusReply *s, partisan_status_t *out)
{
	if (s->n_endpoints == 0)
		return 0;
	out->endpoints = calloc(s->n_endpoints, sizeof(*out->endpoints));
	if (out->endpoints == NULL)
		return PARTISAN_ENOMEM;
	for (size_t i = 0; i < s->n_endpoints; i++) {
		const PartisanIpc__Endpoint *e = s->endpoints[i];
		partisan_endpoint_t *dst = &out->endpoints[i];

		out->n_endpoints = i + 1; /* so partisan_status_free() frees it */
		if ((dst->ref = strdup(e->ref)) == NULL)
			return PARTISAN_ENOMEM;
		if (pc_conv_strlist(e->names, e->n_names, &dst->names) < 0)
			return PARTISAN_ENOMEM;
	}
	return 0;
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

int pc_conv_status(const PartisanIpc__StatusReply *s, partisan_status_t *out)
{
	conv_counters(s, out);
	out->name = strdup(s->name);
	out->manager = strdup(s->manager);
	out->cluster = strdup(s->cluster != NULL ? s->cluster : "");
	if (out->name == NULL || out->manager == NULL || out->cluster == NULL)
		return PARTISAN_ENOMEM;
	if (pc_conv_spec(s->spec, &out->spec) < 0 || conv_endpoints(s, out) < 0)
		return PARTISAN_ENOMEM;
	if (pc_conv_strlist(s->active_view, s->n_active_view, &out->active_view) < 0)
		return PARTISAN_ENOMEM;
	return pc_conv_strlist(s->passive_view, s->n_passive_view, &out->passive_view);
}

/* ---- connections, registry, partitions --------------------------------- */

void partisan_conn_list_free(partisan_conn_list_t *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].node);
		free(l->v[i].channel);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int pc_conv_conns(const PartisanIpc__ConnList *l, partisan_conn_list_t *out)
{
	memset(out, 0, sizeof(*out));
	if (l == NULL || l->n_connections == 0)
		return 0;
	if ((out->v = calloc(l->n_connections, sizeof(*out->v))) == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n < l->n_connections; out->n++) {
		const PartisanIpc__ConnInfo *ci = l->connections[out->n];
		partisan_conn_t *dst = &out->v[out->n];

		dst->connected = ci->connected;
		dst->wanted = ci->wanted;
		dst->node = strdup(ci->node);
		dst->channel = strdup(ci->channel);
		if (dst->node == NULL || dst->channel == NULL) {
			out->n++;
			partisan_conn_list_free(out);
			return PARTISAN_ENOMEM;
		}
	}
	return 0;
}

void partisan_registry_free(partisan_registry_t *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].name);
		partisan_strlist_free(&r->v[i].refs);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int pc_conv_registry(const PartisanIpc__RegistryReply *r, partisan_registry_t *out)
{
	memset(out, 0, sizeof(*out));
	if (r == NULL || r->n_entries == 0)
		return 0;
	if ((out->v = calloc(r->n_entries, sizeof(*out->v))) == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n < r->n_entries; out->n++) {
		const PartisanIpc__RegistryEntry *e = r->entries[out->n];
		partisan_registry_entry_t *dst = &out->v[out->n];

		dst->name = strdup(e->name);
		if (dst->name == NULL || pc_conv_strlist(e->refs, e->n_refs, &dst->refs) < 0) {
			out->n++;
			partisan_registry_free(out);
			return PARTISAN_ENOMEM;
		}
	}
	return 0;
}

void partisan_partition_list_free(partisan_partition_list_t *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].ref);
		free(l->v[i].node);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int pc_conv_partitions(const PartisanIpc__PartitionList *l, partisan_partition_list_t *out)
{
	memset(out, 0, sizeof(*out));
	if (l == NULL || l->n_partitions == 0)
		return 0;
	if ((out->v = calloc(l->n_partitions, sizeof(*out->v))) == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n < l->n_partitions; out->n++) {
		const PartisanIpc__PartitionInfo *p = l->partitions[out->n];

		out->v[out->n].ref = strdup(p->ref);
		out->v[out->n].node = strdup(p->node);
		if (out->v[out->n].ref == NULL || out->v[out->n].node == NULL) {
			out->n++;
			partisan_partition_list_free(out);
			return PARTISAN_ENOMEM;
		}
	}
	return 0;
}

int pc_conv_members(const PartisanIpc__MemberList *l, partisan_spec_list_t *out)
{
	memset(out, 0, sizeof(*out));
	if (l == NULL || l->n_members == 0)
		return 0;
	if ((out->v = calloc(l->n_members, sizeof(*out->v))) == NULL)
		return PARTISAN_ENOMEM;
	for (; out->n < l->n_members; out->n++) {
		if (pc_conv_spec(l->members[out->n], &out->v[out->n]) < 0) {
			partisan_spec_list_free(out);
			return PARTISAN_ENOMEM;
		}
	}
	return 0;
}
