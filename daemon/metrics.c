/* metrics.c: Prometheus text exposition on metrics.listen (see metrics.h).
 *
 * libevent's evhttp serves GET (and HEAD) /metrics and nothing else: any
 * other path is 404, any other method 405. Each request is answered from
 * the counters where the events happen (daemon_stats, the ack and Plumtree
 * cores, the peer layer's nodes); nothing is kept here. A client gets a
 * few seconds for its request and small headers, so a slow or flooding one
 * holds its own connection and no more.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "ack.h"
#include "ipc.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "node.h"

#define METRICS_TIMEOUT_S   5    /* to send a whole request */
#define METRICS_HEADERS_MAX 8192 /* bytes of request headers */
#define METRICS_BODY_MAX    0    /* a GET has none */

struct metrics {
	struct evhttp *http;
};

static void m_printf(struct evbuffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void m_printf(struct evbuffer *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(b, fmt, ap);
	va_end(ap);
}

/* A metric's HELP and TYPE lines. */
static void m_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	m_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void m_one(struct evbuffer *b, const char *name, const char *type, const char *help,
                  uint64_t v)
{
	m_head(b, name, type, help);
	m_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* One sample of a counter family with a single label (value fixed text). */
static void m_labelled(struct evbuffer *b, const char *name, const char *label, const char *value,
                       uint64_t v)
{
	m_printf(b, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

/* A label value: node names are printable, but " and \ must be escaped. */
static void m_label(struct evbuffer *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			evbuffer_add(b, "\\", 1);
		if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

static void m_membership(struct daemon *d, struct evbuffer *b)
{
	static const enum member_state states[] = {MEMBER_ALIVE, MEMBER_SUSPECT, MEMBER_DOWN};
	const struct node_spec *const *v;
	size_t n = d->mops->members(d->mgr, &v), count[4] = {0}, nleft;
	const char **left;
	uint64_t since;

	for (size_t i = 0; i < n; i++)
		count[daemon_member_status(d, v[i]->name, &since)]++;
	nleft = daemon_left(d, &left);
	free(left);
	m_one(b, "partisan_members", "gauge", "Members as this node sees them, itself included.",
	      n);
	m_head(b, "partisan_members_by_status", "gauge", "Members by status; left: seen leaving.");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		m_printf(b, "partisan_members_by_status{status=\"%s\"} %zu\n",
		         daemon_member_state_name(states[i]), count[states[i]]);
	m_printf(b, "partisan_members_by_status{status=\"left\"} %zu\n", nleft);
}

static void m_connections(struct daemon *d, struct evbuffer *b)
{
	const struct node_spec *const *v;
	size_t n = d->mops->members(d->mgr, &v);

	m_head(b, "partisan_connections", "gauge", "Open peer connections, by channel.");
	for (size_t ch = 0; ch < d->cfg->nchannels; ch++) {
		unsigned total = 0;

		for (size_t i = 0; i < n; i++) {
			unsigned connected = 0, wanted = 0;

			if (strcmp(v[i]->name, d->self->name) == 0)
				continue;
			peer_conn_count(d, v[i]->name, d->cfg->channels[ch].name, &connected,
			                &wanted);
			total += connected;
		}
		m_printf(b, "partisan_connections{channel=\"%s\"} %u\n", d->cfg->channels[ch].name,
		         total);
	}
}

/* A counter of struct chan_stats (at off), one series per channel. */
static void m_per_channel(struct daemon *d, struct evbuffer *b, const char *name, const char *help,
                          size_t off)
{
	m_head(b, name, "counter", help);
	for (size_t ch = 0; ch < d->cfg->nchannels; ch++) {
		const uint64_t *v = (const uint64_t *)((const char *)&d->stats.chan[ch] + off);

		m_printf(b, "%s{channel=\"%s\"} %llu\n", name, d->cfg->channels[ch].name,
		         (unsigned long long)*v);
	}
}

static void m_traffic(struct daemon *d, struct evbuffer *b)
{
	const struct daemon_stats *s = &d->stats;
	static const struct {
		PartisanIpc__Error err;
		const char *result;
	} results[] = {
	    {PARTISAN_IPC__ERROR__OK, "ok"},
	    {PARTISAN_IPC__ERROR__ENOPROC, "noproc"},
	    {PARTISAN_IPC__ERROR__ENOCONNECTION, "noconnection"},
	    {PARTISAN_IPC__ERROR__ETIMEDOUT, "timeout"},
	    {PARTISAN_IPC__ERROR__EPARTITION, "partition"},
	};

	m_per_channel(d, b, "partisan_messages_received_total",
	              "Application messages received from other nodes, by channel.",
	              offsetof(struct chan_stats, messages_in));
	m_per_channel(d, b, "partisan_messages_sent_total",
	              "Application messages sent to other nodes, by channel.",
	              offsetof(struct chan_stats, messages_out));
	m_per_channel(d, b, "partisan_peer_received_bytes_total",
	              "Framed bytes read from peer links, by channel.",
	              offsetof(struct chan_stats, bytes_in));
	m_per_channel(d, b, "partisan_peer_sent_bytes_total",
	              "Framed bytes queued on peer links, by channel.",
	              offsetof(struct chan_stats, bytes_out));
	m_one(b, "partisan_messages_dropped_total", "counter",
	      "Messages for endpoints that did not exist.", s->dropped_no_proc);
	m_one(b, "partisan_messages_shed_total", "counter", "Messages shed on monotonic channels.",
	      s->dropped_monotonic);
	m_one(b, "partisan_broadcasts_shed_total", "counter",
	      "Broadcasts not queued to subscribers whose queue was full.", s->broadcasts_shed);
	m_one(b, "partisan_ack_outstanding", "gauge", "Acknowledged messages not yet acknowledged.",
	      ack_outstanding(d->ack));
	m_one(b, "partisan_ack_retransmits_total", "counter",
	      "Acknowledged messages resent for want of an Ack.", ack_retransmits(d->ack));
	m_head(b, "partisan_calls_total", "counter", "Calls made through this node, by result.");
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		m_printf(b, "partisan_calls_total{result=\"%s\"} %llu\n", results[i].result,
		         (unsigned long long)s->calls[results[i].err]);
}

static void m_links(struct daemon *d, struct evbuffer *b)
{
	const struct daemon_stats *s = &d->stats;
	const struct fd_stats *fs = fd_stats(node_fd(d->node));

	m_one(b, "partisan_peer_connections_opened_total", "counter",
	      "Peer connections whose hello completed.", s->conns_opened);
	m_one(b, "partisan_peer_connections_failed_total", "counter",
	      "Peer connections that failed or closed before their hello.", s->conns_failed);
	m_one(b, "partisan_peer_frames_bad_total", "counter", "Peer links closed for bad input.",
	      s->peer_frames_bad);
	m_head(b, "partisan_peer_refusals_total", "counter",
	       "What the resource limits refused: pending (max_pending_connections), "
	       "hello_timeout (hello_timeout_ms), accept_pause (out of descriptors), members "
	       "(max_members), push_rate (max_state_pushes_per_s).");
	m_labelled(b, "partisan_peer_refusals_total", "limit", "pending", s->pending_evicted);
	m_labelled(b, "partisan_peer_refusals_total", "limit", "hello_timeout", s->hello_timeouts);
	m_labelled(b, "partisan_peer_refusals_total", "limit", "accept_pause", s->accept_pauses);
	m_labelled(b, "partisan_peer_refusals_total", "limit", "members", s->states_capped);
	m_labelled(b, "partisan_peer_refusals_total", "limit", "push_rate",
	           s->state_pushes_dropped);
	m_head(b, "partisan_failure_detector_verdicts_total", "counter",
	       "Failure detector verdicts: timeout (nothing heard), silent (a watcher's report), "
	       "suspicion (a report doubted).");
	m_labelled(b, "partisan_failure_detector_verdicts_total", "verdict", "timeout",
	           fs->timeouts);
	m_labelled(b, "partisan_failure_detector_verdicts_total", "verdict", "silent", fs->silent);
	m_labelled(b, "partisan_failure_detector_verdicts_total", "verdict", "suspicion",
	           fs->suspicions);
}

static void m_broadcast(struct daemon *d, struct evbuffer *b)
{
	const struct plumtree_stats *p = plumtree_stats(d->plumtree);
	struct manager_stats ms = {0};

	if (d->mops->stats)
		d->mops->stats(d->mgr, &ms);
	m_one(b, "partisan_gossip_rounds_total", "counter", "Membership gossip rounds.", ms.rounds);
	m_one(b, "partisan_gossip_state_sent_total", "counter", "Full membership states sent.",
	      ms.states_sent);
	m_one(b, "partisan_gossip_state_sent_bytes_total", "counter",
	      "Bytes of full membership states sent.", ms.state_bytes);
	m_one(b, "partisan_broadcast_deliveries_total", "counter",
	      "Plumtree broadcasts delivered here, own ones included.", p->delivered);
	m_one(b, "partisan_broadcast_grafts_total", "counter", "Plumtree Graft messages sent.",
	      p->sent[PLUMTREE_GRAFT]);
	m_one(b, "partisan_broadcast_prunes_total", "counter", "Plumtree Prune messages sent.",
	      p->sent[PLUMTREE_PRUNE]);
}

struct m_nodes {
	struct evbuffer *b;
	size_t queued;
	bool rtt_pass;
};

static void m_node(void *arg, const char *node, bool up, const struct peer_rtt *rtt, size_t queued)
{
	struct m_nodes *mn = arg;
	struct evbuffer *b = mn->b;

	if (!mn->rtt_pass) {
		mn->queued += queued;
		return;
	}
	if (rtt->count == 0)
		return;
	for (size_t i = 0; i < PEER_RTT_BUCKETS; i++) {
		m_printf(b, "partisan_peer_rtt_seconds_bucket{node=\"");
		m_label(b, node);
		m_printf(b, "\",le=\"%g\"} %llu\n", peer_rtt_bounds_ms[i] / 1000,
		         (unsigned long long)rtt->buckets[i]);
	}
	m_printf(b, "partisan_peer_rtt_seconds_bucket{node=\"");
	m_label(b, node);
	m_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)rtt->count);
	m_printf(b, "partisan_peer_rtt_seconds_sum{node=\"");
	m_label(b, node);
	m_printf(b, "\"} %g\n", (double)rtt->sum_ms / 1000);
	m_printf(b, "partisan_peer_rtt_seconds_count{node=\"");
	m_label(b, node);
	m_printf(b, "\"} %llu\n", (unsigned long long)rtt->count);
}

static void m_nodes(struct daemon *d, struct evbuffer *b)
{
	struct m_nodes mn = {.b = b};

	peer_each_node(d, m_node, &mn);
	m_one(b, "partisan_peer_queue_bytes", "gauge",
	      "Bytes queued on peer links, not yet written.", mn.queued);
	m_head(b, "partisan_peer_rtt_seconds", "histogram",
	       "Heartbeat round trips per peer (a few ms of clock grain).");
	mn.rtt_pass = true;
	peer_each_node(d, m_node, &mn);
}

void metrics_render(struct daemon *d, struct evbuffer *b)
{
	m_one(b, "partisan_uptime_seconds", "gauge", "Seconds since this daemon started.",
	      (daemon_now_ms() - d->start_ms) / 1000);
	m_membership(d, b);
	m_connections(d, b);
	m_traffic(d, b);
	m_links(d, b);
	m_broadcast(d, b);
	m_nodes(d, b);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b;

	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		evhttp_send_error(req, 405, "only GET /metrics is served here");
		return;
	}
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
		return;
	}
	b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(d, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

int metrics_start(struct daemon *d)
{
	struct config_addr a;
	struct metrics *m;
	struct evhttp_bound_socket *h;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	if (d->cfg->metrics_listen == NULL)
		return 0;
	if (config_parse_ip_port(d->cfg->metrics_listen, &a) < 0)
		return -1; /* config validated it */
	m = xcalloc(1, sizeof(*m));
	d->metrics = m;
	if ((m->http = evhttp_new(d->base)) == NULL)
		return -1;
	/* Every method reaches metrics_cb, which answers 405 to all but GET
	 * and HEAD (evhttp itself would say 501). */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(m->http, METRICS_BODY_MAX);
	evhttp_set_gencb(m->http, metrics_cb, d);
	if ((h = evhttp_bind_socket_with_handle(m->http, a.ip, a.port)) == NULL) {
		log_error("metrics", "metrics.listen: cannot listen on %s", d->cfg->metrics_listen);
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sslen) == 0)
		a.port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* port 0: what was bound */
	log_info("metrics", "serving /metrics on %s", peer_addr_text(a.ip, a.port));
	return 0;
}

void metrics_stop(struct daemon *d)
{
	struct metrics *m = d->metrics;

	if (m == NULL)
		return;
	if (m->http)
		evhttp_free(m->http);
	free(m);
	d->metrics = NULL;
}
