/* graph.c: the cluster's links for `partisanctl graph` (see graph.h).
 *
 * A request asks every node this one is linked to for its links (a
 * GraphQuery over the link); the answer (GraphReport) and this node's own
 * links make the edges. The reply goes once every node asked has answered,
 * or after GRAPH_WAIT_MS with what came: one hop, so a partial view
 * (hyparview) shows this node's neighbourhood and theirs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "ipc.h"
#include "peer.h"

#define GRAPH_WAIT_MS 1000

struct graph_req {
	uint64_t id;       /* the query id in GraphQuery */
	uint64_t sid, rid; /* the asking session and its request */
	uint64_t deadline;
	char **asked; /* nodes not answered yet (NULL once they have) */
	size_t nasked, waiting;
	PartisanIpc__GraphEdge **edges;
	size_t nedges;
	struct graph_req *next;
};

struct graph {
	struct graph_req *reqs;
	uint64_t next_id;
};

static struct graph *graph_of(struct daemon *d)
{
	if (d->graph == NULL)
		d->graph = xcalloc(1, sizeof(*d->graph));
	return d->graph;
}

/* One edge from -> to; channels as "NAME:CONNECTED/WANTED". */
static void graph_edge(struct graph_req *g, const char *from, const char *to, bool passive,
                       char *const *channels, size_t nch)
{
	PartisanIpc__GraphEdge *e = xmalloc(sizeof(*e));

	partisan_ipc__graph_edge__init(e);
	e->from = xstrdup(from);
	e->to = xstrdup(to);
	e->has_passive = e->passive = passive;
	e->channels = xcalloc(nch + 1, sizeof(*e->channels));
	for (size_t i = 0; i < nch; i++) {
		PartisanIpc__ConnInfo *c = xmalloc(sizeof(*c));
		char name[80];
		unsigned connected = 0, wanted = 0;

		partisan_ipc__conn_info__init(c);
		if (sscanf(channels[i], "%79[^:]:%u/%u", name, &connected, &wanted) != 3) {
			free(c);
			continue;
		}
		c->node = e->to;
		c->channel = xstrdup(name);
		c->connected = connected;
		c->wanted = wanted;
		e->channels[e->n_channels++] = c;
	}
	g->edges = xrealloc(g->edges, (g->nedges + 1) * sizeof(*g->edges));
	g->edges[g->nedges++] = e;
}

/* This node's links, as a report: filled into *rep (free with graph_report_free). */
static void graph_links(struct daemon *d, PartisanPeer__GraphReport *rep)
{
	const char **up;
	const char *const *passive;
	size_t n = peer_up_nodes(d, &up), np = d->mops->passive_view(d->mgr, &passive);

	rep->links = xcalloc(n + np + 1, sizeof(*rep->links));
	for (size_t i = 0; i < n + np; i++) {
		PartisanPeer__GraphLink *l = xmalloc(sizeof(*l));

		partisan_peer__graph_link__init(l);
		l->node = xstrdup(i < n ? up[i] : passive[i - n]);
		l->has_passive = l->passive = i >= n;
		l->channels = xcalloc(d->cfg->nchannels + 1, sizeof(*l->channels));
		for (size_t ch = 0; i < n && ch < d->cfg->nchannels; ch++) {
			unsigned c = 0, w = 0;
			char buf[100];

			peer_conn_count(d, up[i], d->cfg->channels[ch].name, &c, &w);
			snprintf(buf, sizeof(buf), "%s:%u/%u", d->cfg->channels[ch].name, c, w);
			l->channels[l->n_channels++] = xstrdup(buf);
		}
		rep->links[rep->n_links++] = l;
	}
	free(up);
}

static void graph_report_free(PartisanPeer__GraphReport *rep)
{
	for (size_t i = 0; i < rep->n_links; i++) {
		for (size_t j = 0; j < rep->links[i]->n_channels; j++)
			free(rep->links[i]->channels[j]);
		free(rep->links[i]->channels);
		free(rep->links[i]->node);
		free(rep->links[i]);
	}
	free(rep->links);
}

static void graph_add_report(struct graph_req *g, const char *from,
                             const PartisanPeer__GraphReport *rep)
{
	for (size_t i = 0; i < rep->n_links; i++)
		graph_edge(g, from, rep->links[i]->node,
		           rep->links[i]->has_passive && rep->links[i]->passive,
		           rep->links[i]->channels, rep->links[i]->n_channels);
}

/* A node's status as this node knows it; one it never had a link to is
 * alive if a node that answered is linked to it, else unknown. */
static const char *graph_status(struct daemon *d, const struct graph_req *g, const char *name)
{
	uint64_t since;

	if (daemon_member_known(d, name))
		return daemon_member_state_name(daemon_member_status(d, name, &since));
	for (size_t i = 0; i < g->nedges; i++)
		if (!g->edges[i]->passive &&
		    (strcmp(g->edges[i]->to, name) == 0 || strcmp(g->edges[i]->from, name) == 0))
			return "alive";
	return "unknown";
}

static void graph_node(struct daemon *d, const struct graph_req *g, PartisanIpc__GraphReply *r,
                       const char *name)
{
	PartisanIpc__GraphNode *n;

	for (size_t i = 0; i < r->n_nodes; i++)
		if (strcmp(r->nodes[i]->name, name) == 0)
			return;
	n = xmalloc(sizeof(*n));
	partisan_ipc__graph_node__init(n);
	n->name = (char *)name;
	n->status = (char *)graph_status(d, g, name);
	r->nodes = xrealloc(r->nodes, (r->n_nodes + 1) * sizeof(*r->nodes));
	r->nodes[r->n_nodes++] = n;
}

static void graph_req_free(struct graph_req *g)
{
	for (size_t i = 0; i < g->nasked; i++)
		free(g->asked[i]);
	free(g->asked);
	for (size_t i = 0; i < g->nedges; i++) {
		PartisanIpc__GraphEdge *e = g->edges[i];

		for (size_t j = 0; j < e->n_channels; j++) {
			free(e->channels[j]->channel);
			free(e->channels[j]);
		}
		free(e->channels);
		free(e->from);
		free(e->to);
		free(e);
	}
	free(g->edges);
	free(g);
}

/* Answer g's session (if it is still there) and forget g. */
static void graph_finish(struct daemon *d, struct graph_req *g)
{
	struct graph_req **p = &graph_of(d)->reqs;
	PartisanIpc__Response r = PARTISAN_IPC__RESPONSE__INIT;
	PartisanIpc__GraphReply gr = PARTISAN_IPC__GRAPH_REPLY__INIT;
	const struct node_spec *const *v;
	size_t n = d->mops->members(d->mgr, &v);

	while (*p != g)
		p = &(*p)->next;
	*p = g->next;
	for (size_t i = 0; i < n; i++)
		graph_node(d, g, &gr, v[i]->name);
	for (size_t i = 0; i < g->nedges; i++) {
		graph_node(d, g, &gr, g->edges[i]->from);
		graph_node(d, g, &gr, g->edges[i]->to);
	}
	gr.n_edges = g->nedges;
	gr.edges = g->edges;
	r.body_case = PARTISAN_IPC__RESPONSE__BODY_GRAPH;
	r.graph = &gr;
	for (struct session *s = ipc_first(d); s; s = ipc_next(s))
		if (s->id == g->sid && !s->closing)
			ipc_respond(s, g->rid, &r);
	for (size_t i = 0; i < gr.n_nodes; i++)
		free(gr.nodes[i]);
	free(gr.nodes);
	graph_req_free(g);
}

void graph_request(struct session *s, const PartisanIpc__Request *rq)
{
	struct daemon *d = s->d;
	struct graph *gs = graph_of(d);
	struct graph_req *g = xcalloc(1, sizeof(*g));
	PartisanPeer__GraphReport own = PARTISAN_PEER__GRAPH_REPORT__INIT;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__GraphQuery q = PARTISAN_PEER__GRAPH_QUERY__INIT;
	const char **up;
	size_t n = peer_up_nodes(d, &up);

	g->id = q.id = ++gs->next_id;
	g->sid = s->id;
	g->rid = rq->id;
	g->deadline = daemon_now_ms() + GRAPH_WAIT_MS;
	g->next = gs->reqs;
	gs->reqs = g;
	graph_links(d, &own);
	graph_add_report(g, d->self->name, &own);
	graph_report_free(&own);
	g->asked = xcalloc(n + 1, sizeof(*g->asked));
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_GRAPH_QUERY;
	m.graph_query = &q;
	for (size_t i = 0; i < n; i++)
		if (peer_send_msg(d, up[i], NULL, NULL, 0, &m) >= 0)
			g->asked[g->nasked++] = xstrdup(up[i]);
	g->waiting = g->nasked;
	free(up);
	if (g->waiting == 0)
		graph_finish(d, g);
}

static void graph_on_report(struct daemon *d, const char *from,
                            const PartisanPeer__GraphReport *rep)
{
	struct graph_req *g = graph_of(d)->reqs;

	while (g && g->id != rep->id)
		g = g->next;
	if (g == NULL)
		return; /* too late */
	for (size_t i = 0; i < g->nasked; i++) {
		if (g->asked[i] && strcmp(g->asked[i], from) == 0) {
			free(g->asked[i]);
			g->asked[i] = NULL;
			graph_add_report(g, from, rep);
			if (--g->waiting == 0)
				graph_finish(d, g);
			return;
		}
	}
}

int graph_peer_msg(struct daemon *d, const char *from, const PartisanPeer__PeerMsg *m)
{
	PartisanPeer__PeerMsg out = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__GraphReport rep = PARTISAN_PEER__GRAPH_REPORT__INIT;

	if (m->body_case == PARTISAN_PEER__PEER_MSG__BODY_GRAPH_REPORT) {
		graph_on_report(d, from, m->graph_report);
		return 0;
	}
	rep.id = m->graph_query->id;
	graph_links(d, &rep);
	out.body_case = PARTISAN_PEER__PEER_MSG__BODY_GRAPH_REPORT;
	out.graph_report = &rep;
	peer_send_msg(d, from, NULL, NULL, 0, &out);
	graph_report_free(&rep);
	return 0;
}

void graph_tick(struct daemon *d, uint64_t now)
{
	struct graph_req *g;

	if (d->graph == NULL)
		return;
	for (g = d->graph->reqs; g;) {
		struct graph_req *next = g->next;

		if (now >= g->deadline)
			graph_finish(d, g);
		g = next;
	}
}

void graph_free(struct daemon *d)
{
	if (d->graph == NULL)
		return;
	while (d->graph->reqs) {
		struct graph_req *g = d->graph->reqs;

		d->graph->reqs = g->next;
		graph_req_free(g);
	}
	free(d->graph);
	d->graph = NULL;
}
