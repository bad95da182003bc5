/* sim_trace.c: `--trace NAME|all`: one line per thing that happens to a node
 * (sends, deliveries, links, events, starts and crashes), on the virtual
 * clock, to follow a failing seed step by step. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

bool sim_tracing(const struct sim_world *w, unsigned i)
{
	const char *t = w->o.trace;

	return t && (strcmp(t, "all") == 0 || strcmp(t, w->nodes[i].name) == 0);
}

void sim_trace(const struct sim_world *w, unsigned i, const char *fmt, ...)
{
	va_list ap;

	if (!sim_tracing(w, i))
		return;
	printf("sim: t=%llu %s: ", (unsigned long long)w->now, w->nodes[i].name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

const char *sim_msg_kind(const uint8_t *buf, size_t len)
{
	const ProtobufCMessageDescriptor *d = &partisan_peer__peer_msg__descriptor;
	PartisanPeer__PeerMsg *m = partisan_peer__peer_msg__unpack(NULL, len, buf);
	const char *name = "undecodable";

	if (m == NULL)
		return name;
	for (unsigned k = 0; k < d->n_fields; k++)
		if (d->fields[k].id == (uint32_t)m->body_case)
			name = d->fields[k].name;
	partisan_peer__peer_msg__free_unpacked(m, NULL);
	return name;
}

static const char *sim_event_name(enum core_event ev)
{
	switch (ev) {
	case EV_MEMBER_ADDED:
		return "member_added";
	case EV_MEMBER_REMOVED:
		return "member_removed";
	case EV_SELF_REMOVED:
		return "self_removed";
	case EV_VIEW_CHANGED:
		return "view_changed";
	case EV_MEMBER_LEFT:
		return "member_left";
	case EV_STATE_REFUSED:
		return "state_refused";
	}
	return "?";
}

void sim_trace_action(const struct sim_world *w, unsigned i, const struct action *a)
{
	if (!sim_tracing(w, i))
		return;
	switch (a->kind) {
	case ACT_SEND:
		sim_trace(w, i, "send %s to %s (%zu B)", sim_msg_kind(a->buf, a->len), a->node,
		          a->len);
		break;
	case ACT_CONNECT:
		sim_trace(w, i, "connect to %s port %u", a->spec->name,
		          a->spec->naddrs ? a->spec->addrs[0].port : 0);
		break;
	case ACT_DISCONNECT:
		sim_trace(w, i, "disconnect %s", a->node);
		break;
	case ACT_EVENT:
		sim_trace(w, i, "event %s %s", sim_event_name(a->event), a->node ? a->node : "");
		break;
	case ACT_DOWN:
		sim_trace(w, i, "down %s (%s)", a->node, a->text);
		break;
	case ACT_DELIVER:
		sim_trace(w, i, "deliver %s from %s (%zu B, %u hops)", a->text, a->node, a->len,
		          a->hops);
		break;
	case ACT_LOG:
		sim_trace(w, i, "log %s", a->text);
		break;
	}
}
