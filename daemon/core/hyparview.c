/* hyparview.c: the HyParView peer service manager (Leitão, Pereira and
 * Rodrigues, DSN 2007) as a pure core. A node keeps a small active view of
 * symmetric, connected neighbors and a larger passive view of candidates,
 * kept fresh by shuffles; members() is the active view and this node.
 *
 * As in the paper: a join is sent to a contact, which forwards it on random
 * walks of ARWL hops to each of its neighbors (FORWARD_JOIN); the joiner
 * enters a passive view at hop PRWL and the contact and each walk's last node
 * become its neighbors. A neighbor request is high priority (always accepted,
 * a random neighbor dropped to make room) when the asker has no neighbor, low
 * priority (refused by a full view) otherwise. A failed neighbor is replaced
 * from the passive view at once; a short active view is topped up every
 * promotion interval. Every shuffle interval a node sends itself, ka
 * neighbors and kp passive entries on a random walk; the walk's last node
 * answers with as many of its own and both merge, evicting first what they
 * sent.
 *
 * Made for a network that drops, duplicates, delays and reorders, and for
 * Partisan's known holes:
 * - Handshakes. A node adds a neighbor only when the other side accepted
 *   its request (HvNeighborReply) or asked itself (HvNeighbor); both then
 *   keep a link (ACT_CONNECT) and end it with HvDisconnect + ACT_DISCONNECT,
 *   so active views are symmetric. A handshake in flight sits in a small
 *   pending table: the request goes out once the link is up, and the
 *   handshake is given up after HV_PENDING_MS. A join is sent again until
 *   the contact answers.
 * - Stamps. HvJoin, HvNeighbor, HvNeighborReply and HvDisconnect carry the
 *   sender's stamp: epoch (its incarnation, from the actor "NAME/INC") and
 *   seq (a counter). A node keeps the newest stamp of each neighbor and
 *   ignores older messages: a disconnect from before the peer restarted
 *   (Partisan's stale-disconnect hole), or one overtaken by a later accept.
 * - Repairs. A node that gets a walk (FORWARD_JOIN, SHUFFLE) from a node it
 *   does not count as a neighbor answers HvDisconnect; a link to a node in
 *   no view and no handshake is closed after HV_STRANGER_MS.
 * - No islands. A refused asker gets a sample of the refuser's views (an
 *   HvShuffleReply to no shuffle, as Partisan sends with its refusals); a
 *   node left without neighbors asks at once, with high priority, and with
 *   no candidate left joins its contact again; a node that just dropped us
 *   or refused us is asked last.
 * - Leaving. Neighbors of a node that leaves drop it from both views and keep
 *   it out for HV_TOMB_ROUNDS shuffles. A node that left, or never joined,
 *   answers requests with HvDisconnect{leaving}; other passive views lose
 *   it that way, as they lose a crashed node when they try it.
 */
#include <stdlib.h>
#include <string.h>

#include "manager.h"

#define HV_PENDING_MS  3000 /* a handshake or a temporary send gives up after this */
#define HV_STRANGER_MS 3000 /* a link to a node in no view is closed after this */
#define HV_TEMP_MAX    8    /* messages waiting for a temporary link */
#define HV_JOIN_TRIES  5    /* join sends before the contact goes to the passive view */
#define HV_TOMB_MAX    8    /* departed nodes kept out of the passive view */
#define HV_TOMB_ROUNDS 10   /* for this many shuffle intervals */

enum hv_kind {
	HV_PROMOTE, /* we asked a passive node to become a neighbor */
	HV_ACCEPT,  /* a join walk ended here: we asked the joiner */
	HV_JOIN,    /* we joined through this contact and wait for its request */
};

enum hv_drop {
	HV_TO_PASSIVE, /* a dropped neighbor stays a candidate */
	HV_FORGET,     /* a failed or departed one does not */
};

struct hv_stamp {
	uint64_t epoch; /* the sender's incarnation */
	uint64_t seq;   /* its message counter within the incarnation */
};

struct hv_node {
	struct node_spec *spec; /* owned, one block (hv_spec_copy) */
	uint64_t h;             /* hash of spec->name */
};

struct hv_cand {
	struct hv_node n;
	uint64_t quiet_until; /* not asked to be a neighbor before this */
};

struct hv_peer {
	struct hv_node n;
	struct hv_stamp st; /* the newest stamp this neighbor sent */
};

struct hv_pending {
	struct hv_node n;
	struct hv_stamp st; /* the newest stamp this node sent */
	uint64_t deadline;
	enum hv_kind kind;
	bool high;      /* a high priority request */
	bool sent;      /* the request went out on a link known to be up */
	unsigned tries; /* HV_JOIN: joins sent */
};

struct hv_temp {
	struct hv_node n;
	uint8_t *buf; /* packed PeerMsg, owned */
	size_t len;
	uint64_t deadline;
};

struct hv_tomb {
	uint64_t h; /* hash of a departed node's name */
	uint64_t until;
};

struct hv_link {
	char *name; /* owned */
	uint64_t h;
	uint64_t since;
};

#define HV_REJOIN_PERIODS 2  /* shuffle periods after start before the one re-join */
#define HV_DEFER_MAX      16 /* joins taken while we had no neighbours to walk them to */

struct hv_deferred {
	struct node_spec *spec; /* one block (hv_spec_copy) */
	struct hv_stamp st;
};

struct hv {
	struct node_spec *self;    /* owned (node_spec_dup) */
	struct node_spec *contact; /* the node we joined through, one block, or NULL */
	uint64_t self_h;
	struct hv_stamp me; /* our epoch and the last seq we sent */
	unsigned amax, pmax, arwl, prwl, ka, kp, shuffle_ms, promote_ms;
	struct hv_peer *active; /* active view, amax slots */
	size_t nactive;
	struct hv_cand *passive; /* passive view, pmax slots */
	size_t npassive;
	struct hv_pending *pend; /* handshakes, pend_max slots */
	size_t npend, pend_max;
	struct hv_temp *tmp; /* HV_TEMP_MAX slots */
	size_t ntmp;
	struct hv_link *links; /* nodes the shell said are up */
	size_t nlinks, links_cap;
	uint64_t shuffle_id;    /* of our last shuffle */
	uint64_t *shuffle_sent; /* hashes of what it carried, ka + kp slots */
	size_t nshuffle_sent;
	uint64_t next_shuffle_ms, next_promote_ms, rejoin_ms; /* rejoin_ms 0: done */
	struct hv_tomb tomb[HV_TOMB_MAX]; /* nodes that left, lest shuffles bring them back */
	size_t tomb_next;
	bool started, joined, stopped, changed;
	const struct node_spec **mcache; /* members() */
	const char **vcache;             /* active_view(), passive_view() */
	struct hv_deferred defer[HV_DEFER_MAX];
	size_t ndefer;
};

/* ---- small helpers ---- */

static uint64_t hv_hash(const char *name)
{
	return hash_bytes(HASH_INIT, name, strlen(name));
}

static int hv_stamp_cmp(struct hv_stamp a, struct hv_stamp b)
{
	if (a.epoch != b.epoch)
		return a.epoch < b.epoch ? -1 : 1;
	return a.seq < b.seq ? -1 : a.seq > b.seq;
}

static struct hv_stamp hv_stamp_of(bool has_epoch, uint64_t epoch, bool has_seq, uint64_t seq)
{
	struct hv_stamp st = {has_epoch ? epoch : 0, has_seq ? seq : 0};

	return st;
}

/* The incarnation in an actor "NAME/INC" (hex or decimal digits: either
 * grows with the incarnation); 0 when there is none. */
static uint64_t hv_epoch_of(const char *actor)
{
	const char *slash = actor ? strrchr(actor, '/') : NULL;

	return slash ? strtoull(slash + 1, NULL, 16) : 0;
}

/* A copy of s in one allocation (free() it): a view holds many specs. */
static struct node_spec *hv_spec_copy(const struct node_spec *s)
{
	size_t size = sizeof(*s) + s->nchannels * sizeof(*s->channels) +
	              s->naddrs * sizeof(*s->addrs) + strlen(s->name) + 1;
	struct node_spec *d;
	char *p;

	for (size_t i = 0; i < s->nchannels; i++)
		size += strlen(s->channels[i].name) + 1;
	d = xmalloc(size);
	*d = *s;
	d->channels = (struct ns_channel *)(d + 1);
	d->addrs = (struct ns_addr *)(d->channels + s->nchannels);
	memcpy(d->addrs, s->addrs, s->naddrs * sizeof(*s->addrs));
	p = (char *)(d->addrs + s->naddrs);
	d->name = strcpy(p, s->name);
	p += strlen(p) + 1;
	for (size_t i = 0; i < s->nchannels; i++) {
		d->channels[i] = s->channels[i];
		d->channels[i].name = strcpy(p, s->channels[i].name);
		p += strlen(p) + 1;
	}
	return d;
}

static struct hv_node hv_node_make(const struct node_spec *spec)
{
	struct hv_node n = {hv_spec_copy(spec), hv_hash(spec->name)};

	return n;
}

/* Replace n's spec if the node now says another one (it moved). */
static void hv_node_refresh(struct hv_node *n, const struct node_spec *spec)
{
	if (node_spec_equal(n->spec, spec))
		return;
	free(n->spec);
	n->spec = hv_spec_copy(spec);
}

/* Index of name in an array of structs that start with a struct hv_node. */
static long hv_find(const void *base, size_t n, size_t stride, const char *name, uint64_t h)
{
	const char *p = base;

	for (size_t i = 0; i < n; i++, p += stride) {
		const struct hv_node *x = (const struct hv_node *)p;

		if (x->h == h && strcmp(x->spec->name, name) == 0)
			return (long)i;
	}
	return -1;
}

#define HV_FIND(arr, n, name, h) hv_find((arr), (n), sizeof(*(arr)), (name), (h))

static long hv_active_find(const struct hv *m, const char *name, uint64_t h)
{
	return HV_FIND(m->active, m->nactive, name, h);
}

static long hv_passive_find(const struct hv *m, const char *name, uint64_t h)
{
	return HV_FIND(m->passive, m->npassive, name, h);
}

static long hv_pend_find(const struct hv *m, const char *name, uint64_t h)
{
	return HV_FIND(m->pend, m->npend, name, h);
}

static bool hv_is_self(const struct hv *m, const char *name, uint64_t h)
{
	return h == m->self_h && strcmp(name, m->self->name) == 0;
}

/* Do we want a link to name (neighbor, handshake or waiting message)? */
static bool hv_wanted(const struct hv *m, const char *name, uint64_t h)
{
	return hv_active_find(m, name, h) >= 0 || hv_pend_find(m, name, h) >= 0 ||
	       HV_FIND(m->tmp, m->ntmp, name, h) >= 0;
}

/* Up to k distinct indices of [0, n), in order (Knuth's selection sampling). */
static size_t hv_sample(struct rng *r, size_t n, size_t k, size_t *out)
{
	size_t c = 0;

	for (size_t i = 0; i < n && c < k; i++)
		if (rng_below(r, n - i) < k - c)
			out[c++] = i;
	return c;
}

/* ---- departed nodes ---- */

static void hv_tomb_add(struct hv *m, uint64_t h, const struct core_env *env)
{
	m->tomb[m->tomb_next].h = h;
	m->tomb[m->tomb_next].until = env->now_ms + (uint64_t)HV_TOMB_ROUNDS * m->shuffle_ms;
	m->tomb_next = (m->tomb_next + 1) % HV_TOMB_MAX;
}

static bool hv_tomb_has(const struct hv *m, uint64_t h, const struct core_env *env)
{
	for (size_t i = 0; i < HV_TOMB_MAX; i++)
		if (m->tomb[i].h == h && m->tomb[i].until > env->now_ms)
			return true;
	return false;
}

/* The node speaks for itself again (a new incarnation). */
static void hv_tomb_clear(struct hv *m, uint64_t h)
{
	for (size_t i = 0; i < HV_TOMB_MAX; i++)
		if (m->tomb[i].h == h)
			m->tomb[i].until = 0;
}

/* ---- links the shell reported ---- */

static long hv_link_find(const struct hv *m, const char *name, uint64_t h)
{
	for (size_t i = 0; i < m->nlinks; i++)
		if (m->links[i].h == h && strcmp(m->links[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void hv_link_up(struct hv *m, const char *name, uint64_t now)
{
	uint64_t h = hv_hash(name);

	if (hv_link_find(m, name, h) >= 0)
		return;
	if (m->nlinks == m->links_cap) {
		m->links_cap = m->links_cap ? 2 * m->links_cap : 8;
		m->links = xrealloc(m->links, m->links_cap * sizeof(*m->links));
	}
	m->links[m->nlinks].name = xstrdup(name);
	m->links[m->nlinks].h = h;
	m->links[m->nlinks++].since = now;
}

static void hv_link_down(struct hv *m, const char *name)
{
	long i = hv_link_find(m, name, hv_hash(name));

	if (i < 0)
		return;
	free(m->links[i].name);
	m->links[i] = m->links[--m->nlinks];
}

/* Close links to nodes we have had no use for since HV_STRANGER_MS: the far
 * side may count us as a neighbor, and the close tells it otherwise. */
static void hv_sweep_links(struct hv *m, uint64_t now, struct actions *out)
{
	for (size_t i = 0; i < m->nlinks; i++) {
		struct hv_link *l = &m->links[i];

		if (hv_wanted(m, l->name, l->h)) {
			l->since = now;
		} else if (now >= l->since + HV_STRANGER_MS) {
			actions_disconnect(out, l->name);
			free(l->name);
			m->links[i--] = m->links[--m->nlinks];
		}
	}
}

/* ---- messages out ---- */

static void hv_send_body(const char *to, PartisanPeer__PeerMsg *msg, struct actions *out)
{
	actions_send(out, to, NULL, msg);
}

static void hv_send_join(struct hv *m, const char *to, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvJoin j = PARTISAN_PEER__HV_JOIN__INIT;
	PartisanCommon__NodeSpec spec;

	node_spec_to_pb(m->self, &spec);
	j.spec = &spec;
	j.has_epoch = j.has_seq = 1;
	j.epoch = m->me.epoch;
	j.seq = ++m->me.seq;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN;
	msg.hv_join = &j;
	hv_send_body(to, &msg, out);
	node_spec_pb_release(&spec);
}

static void hv_send_forward_join(const char *to, const PartisanCommon__NodeSpec *spec, uint32_t ttl,
                                 struct hv_stamp st, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvForwardJoin fj = PARTISAN_PEER__HV_FORWARD_JOIN__INIT;

	fj.spec = (PartisanCommon__NodeSpec *)spec;
	fj.ttl = ttl;
	fj.has_epoch = fj.has_seq = 1;
	fj.epoch = st.epoch;
	fj.seq = st.seq;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_FORWARD_JOIN;
	msg.hv_forward_join = &fj;
	hv_send_body(to, &msg, out);
}

static void hv_send_neighbor(struct hv *m, const char *to, bool high, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvNeighbor nb = PARTISAN_PEER__HV_NEIGHBOR__INIT;
	PartisanCommon__NodeSpec spec;

	node_spec_to_pb(m->self, &spec);
	nb.spec = &spec;
	nb.high_priority = high;
	nb.has_epoch = nb.has_seq = 1;
	nb.epoch = m->me.epoch;
	nb.seq = ++m->me.seq;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR;
	msg.hv_neighbor = &nb;
	hv_send_body(to, &msg, out);
	node_spec_pb_release(&spec);
}

static void hv_send_reply(struct hv *m, const char *to, bool accepted, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvNeighborReply r = PARTISAN_PEER__HV_NEIGHBOR_REPLY__INIT;

	r.accepted = accepted;
	r.has_epoch = r.has_seq = 1;
	r.epoch = m->me.epoch;
	r.seq = ++m->me.seq;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY;
	msg.hv_neighbor_reply = &r;
	hv_send_body(to, &msg, out);
}

static void hv_send_disconnect(struct hv *m, const char *to, bool leaving, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvDisconnect d = PARTISAN_PEER__HV_DISCONNECT__INIT;

	d.has_epoch = d.has_seq = d.has_leaving = 1;
	d.epoch = m->me.epoch;
	d.seq = ++m->me.seq;
	d.leaving = leaving;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT;
	msg.hv_disconnect = &d;
	hv_send_body(to, &msg, out);
}

/* Send msg to spec's node: now when a link is up (linked, or the shell said
 * so), else over a temporary link closed once the message is out. */
static void hv_deliver(struct hv *m, const struct node_spec *spec, bool linked,
                       const PartisanPeer__PeerMsg *msg, const struct core_env *env,
                       struct actions *out)
{
	uint64_t h = hv_hash(spec->name);
	struct hv_temp *t;

	if (linked || hv_link_find(m, spec->name, h) >= 0 ||
	    hv_active_find(m, spec->name, h) >= 0) {
		actions_send(out, spec->name, NULL, msg);
		return;
	}
	if (m->ntmp == HV_TEMP_MAX)
		return; /* best effort, as the network is */
	t = &m->tmp[m->ntmp++];
	t->n = hv_node_make(spec);
	t->len = partisan_peer__peer_msg__get_packed_size(msg);
	t->buf = xmalloc(t->len);
	partisan_peer__peer_msg__pack(msg, t->buf);
	t->deadline = env->now_ms + HV_PENDING_MS;
	actions_connect(out, spec);
}

static void hv_temp_del(struct hv *m, size_t i, struct actions *out)
{
	struct hv_temp t = m->tmp[i];

	m->tmp[i] = m->tmp[--m->ntmp];
	if (!hv_wanted(m, t.n.spec->name, t.n.h))
		actions_disconnect(out, t.n.spec->name);
	free(t.buf);
	free(t.n.spec);
}

/* A link to name is up: send what waits for it. */
static void hv_temp_flush(struct hv *m, const char *name, uint64_t h, struct actions *out)
{
	long i;

	while ((i = HV_FIND(m->tmp, m->ntmp, name, h)) >= 0) {
		actions_send_raw(out, name, NULL, m->tmp[i].buf, m->tmp[i].len, NULL, 0);
		hv_temp_del(m, (size_t)i, out);
	}
}

/* ---- the passive view ---- */

static void hv_passive_del(struct hv *m, size_t i)
{
	free(m->passive[i].n.spec);
	m->passive[i] = m->passive[--m->npassive];
	m->changed = true;
}

static void hv_passive_forget(struct hv *m, const char *name, uint64_t h)
{
	long i = hv_passive_find(m, name, h);

	if (i >= 0)
		hv_passive_del(m, (size_t)i);
}

/* Make room: evict an entry named in prefer (hashes) if any, else a random
 * one. */
static void hv_passive_evict(struct hv *m, const uint64_t *prefer, size_t nprefer,
                             const struct core_env *env)
{
	for (size_t i = 0; i < m->npassive; i++)
		for (size_t k = 0; k < nprefer; k++)
			if (m->passive[i].n.h == prefer[k]) {
				hv_passive_del(m, i);
				return;
			}
	hv_passive_del(m, (size_t)rng_below(env->rng, m->npassive));
}

/* Add n (taken) to the passive view unless it is us or in a view; not to be
 * asked before quiet_until. */
static void hv_passive_put(struct hv *m, struct hv_node n, uint64_t quiet_until,
                           const uint64_t *prefer, size_t nprefer, const struct core_env *env)
{
	const char *name = n.spec->name;

	if (m->pmax == 0 || hv_is_self(m, name, n.h) || hv_active_find(m, name, n.h) >= 0 ||
	    hv_passive_find(m, name, n.h) >= 0) {
		free(n.spec);
		return;
	}
	if (m->npassive >= m->pmax)
		hv_passive_evict(m, prefer, nprefer, env);
	m->passive[m->npassive].n = n;
	m->passive[m->npassive++].quiet_until = quiet_until;
	m->changed = true;
}

static void hv_passive_add(struct hv *m, const struct node_spec *spec, const uint64_t *prefer,
                           size_t nprefer, const struct core_env *env)
{
	uint64_t h = hv_hash(spec->name);

	if (hv_is_self(m, spec->name, h) || hv_active_find(m, spec->name, h) >= 0 ||
	    hv_passive_find(m, spec->name, h) >= 0 || hv_tomb_has(m, h, env))
		return;
	hv_passive_put(m, hv_node_make(spec), 0, prefer, nprefer, env);
}

/* name left the cluster: no candidate, no contact to join again, and kept
 * out of the passive view for a while. */
static void hv_departed(struct hv *m, const char *name, uint64_t h, const struct core_env *env)
{
	hv_passive_forget(m, name, h);
	if (m->contact && strcmp(m->contact->name, name) == 0) {
		free(m->contact);
		m->contact = NULL;
	}
	hv_tomb_add(m, h, env);
}

/* ---- the active view ---- */

static void hv_retry_soon(struct hv *m, const struct core_env *env)
{
	uint64_t soon = env->now_ms + (m->promote_ms / 10 > 100 ? m->promote_ms / 10 : 100);

	if (m->next_promote_ms > soon)
		m->next_promote_ms = soon;
}

/* Remove neighbor i; close the link unless keep_link (the same name already
 * speaks for a newer incarnation on it). */
static void hv_active_del(struct hv *m, size_t i, enum hv_drop how, bool keep_link,
                          const struct core_env *env, struct actions *out)
{
	struct hv_peer p = m->active[i];

	m->active[i] = m->active[--m->nactive];
	m->changed = true;
	actions_event(out, EV_MEMBER_REMOVED, p.n.spec->name);
	if (!keep_link && !hv_wanted(m, p.n.spec->name, p.n.h))
		actions_disconnect(out, p.n.spec->name);
	if (how == HV_TO_PASSIVE) /* it just left us: ask others first */
		hv_passive_put(m, p.n, env->now_ms + m->promote_ms, NULL, 0, env);
	else
		free(p.n.spec);
	hv_retry_soon(m, env);
}

static void hv_active_drop_random(struct hv *m, const struct core_env *env, struct actions *out)
{
	size_t i = (size_t)rng_below(env->rng, m->nactive);

	hv_send_disconnect(m, m->active[i].n.spec->name, false, out);
	hv_active_del(m, i, HV_TO_PASSIVE, false, env, out);
}

/* spec becomes a neighbor (a random one makes room); st: its newest stamp. */
static void hv_active_add(struct hv *m, const struct node_spec *spec, struct hv_stamp st,
                          const struct core_env *env, struct actions *out)
{
	uint64_t h = hv_hash(spec->name);
	long i = hv_active_find(m, spec->name, h);

	if (i >= 0 || hv_is_self(m, spec->name, h) || m->amax == 0) {
		if (i >= 0 && hv_stamp_cmp(st, m->active[i].st) > 0)
			m->active[i].st = st;
		return;
	}
	hv_passive_forget(m, spec->name, h);
	if (m->nactive >= m->amax)
		hv_active_drop_random(m, env, out);
	m->active[m->nactive].n = hv_node_make(spec);
	m->active[m->nactive++].st = st;
	m->changed = true;
	m->joined = true;
	actions_connect(out, spec);
	actions_event(out, EV_MEMBER_ADDED, spec->name);
}

/* A random neighbor other than the two names (either may be NULL). */
static long hv_active_random_except(const struct hv *m, struct rng *r, const char *a, const char *b)
{
	size_t start, n = m->nactive;

	if (n == 0)
		return -1;
	start = (size_t)rng_below(r, n);
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		const char *name = m->active[i].n.spec->name;

		if ((a == NULL || strcmp(name, a) != 0) && (b == NULL || strcmp(name, b) != 0))
			return (long)i;
	}
	return -1;
}

/* ---- handshakes ---- */

static void hv_pend_send(struct hv *m, struct hv_pending *p, struct actions *out)
{
	if (p->kind == HV_JOIN)
		hv_send_join(m, p->n.spec->name, out);
	else
		hv_send_neighbor(m, p->n.spec->name, p->high, out);
}

/* Ask spec's node to become a neighbor (or join through it). linked: a link
 * to it is known to be up. False when the table is full. */
static bool hv_pend_start(struct hv *m, const struct node_spec *spec, enum hv_kind kind, bool high,
                          struct hv_stamp st, bool linked, const struct core_env *env,
                          struct actions *out)
{
	struct hv_pending *p;

	if (m->npend >= m->pend_max)
		return false;
	p = &m->pend[m->npend++];
	memset(p, 0, sizeof(*p));
	p->n = hv_node_make(spec);
	p->st = st;
	p->kind = kind;
	p->high = high;
	p->deadline = env->now_ms + HV_PENDING_MS;
	p->tries = 1;
	actions_connect(out, spec);
	p->sent = linked || hv_link_find(m, spec->name, p->n.h) >= 0;
	/* The shell calls join with a link to the contact it may not have
	 * reported yet: send now, and again when it does. */
	if (p->sent || kind == HV_JOIN)
		hv_pend_send(m, p, out);
	return true;
}

/* Take handshake i out of the table; the caller owns the returned spec. */
static struct hv_pending hv_pend_take(struct hv *m, size_t i)
{
	struct hv_pending p = m->pend[i];

	m->pend[i] = m->pend[--m->npend];
	return p;
}

/* End handshake i without a neighbor; close the link if nothing else uses it. */
static void hv_pend_drop(struct hv *m, size_t i, struct actions *out)
{
	struct hv_pending p = hv_pend_take(m, i);

	if (!hv_wanted(m, p.n.spec->name, p.n.h))
		actions_disconnect(out, p.n.spec->name);
	free(p.n.spec);
}

/* A random passive entry with no handshake going on, and not quiet unless
 * any will do. */
static long hv_pick_candidate(const struct hv *m, bool any, const struct core_env *env)
{
	size_t start;

	if (m->npassive == 0)
		return -1;
	start = (size_t)rng_below(env->rng, m->npassive);
	for (size_t k = 0; k < m->npassive; k++) {
		const struct hv_cand *c = &m->passive[(start + k) % m->npassive];

		if ((any || c->quiet_until <= env->now_ms) &&
		    hv_pend_find(m, c->n.spec->name, c->n.h) < 0)
			return (long)((start + k) % m->npassive);
	}
	return -1;
}

/* name said no: ask others first. */
static void hv_passive_quiet(struct hv *m, const char *name, uint64_t h, const struct core_env *env)
{
	long i = hv_passive_find(m, name, h);

	if (i >= 0)
		m->passive[i].quiet_until = env->now_ms + m->promote_ms;
}

/* Ask passive nodes to fill the free active slots: high priority when we
 * have no neighbor at all. With nobody left to ask, join again. */
static void hv_fill(struct hv *m, const struct core_env *env, struct actions *out)
{
	struct hv_stamp none = {0, 0};

	while (m->nactive + m->npend < m->amax) {
		long c = hv_pick_candidate(m, m->nactive == 0, env);

		if (c < 0 || !hv_pend_start(m, m->passive[c].n.spec, HV_PROMOTE, m->nactive == 0,
		                            none, false, env, out))
			break;
	}
	if (m->nactive == 0 && m->npend == 0 && m->npassive == 0 && m->contact)
		hv_pend_start(m, m->contact, HV_JOIN, true, none, false, env, out);
}

/* The joiner's end of a walk (FORWARD_JOIN) is here: ask it to be ours. */
static void hv_accept_walk(struct hv *m, const struct node_spec *spec, struct hv_stamp st,
                           const struct core_env *env, struct actions *out)
{
	uint64_t h = hv_hash(spec->name);

	if (hv_active_find(m, spec->name, h) >= 0 || hv_pend_find(m, spec->name, h) >= 0)
		return; /* already ours, or on the way */
	if (!hv_pend_start(m, spec, HV_ACCEPT, true, st, false, env, out))
		hv_passive_add(m, spec, NULL, 0, env);
}

static void hv_join_expired(struct hv *m, size_t i, const struct core_env *env, struct actions *out)
{
	struct hv_pending *p = &m->pend[i];
	struct hv_pending t;

	/* Others may have joined us meanwhile; still, until the contact asks
	 * us, we are not in its cluster (an island otherwise). */
	if (p->tries < HV_JOIN_TRIES) {
		p->tries++;
		p->deadline = env->now_ms + HV_PENDING_MS;
		actions_connect(out, p->n.spec);
		hv_send_join(m, p->n.spec->name, out);
		return;
	}
	/* The contact does not answer: a candidate like others. */
	t = hv_pend_take(m, i);
	if (!hv_wanted(m, t.n.spec->name, t.n.h))
		actions_disconnect(out, t.n.spec->name);
	hv_passive_put(m, t.n, 0, NULL, 0, env);
	hv_retry_soon(m, env);
}

static void hv_pend_expired(struct hv *m, size_t i, const struct core_env *env, struct actions *out)
{
	struct hv_pending *p = &m->pend[i];

	if (p->kind == HV_JOIN) {
		hv_join_expired(m, i, env, out);
		return;
	}
	/* Never reachable: no longer a candidate (the paper drops a passive
	 * node it fails to reach). */
	if (!p->sent)
		hv_passive_forget(m, p->n.spec->name, p->n.h);
	hv_pend_drop(m, i, out);
	hv_retry_soon(m, env);
}

/* The link to a handshake's node went down. Before the request went out
 * that was an older link (maybe closing as we asked): dial again. After, the
 * node failed: a candidate no more (the paper); a join is tried again. */
static void hv_pend_down(struct hv *m, size_t i, const struct core_env *env, struct actions *out)
{
	struct hv_pending *p = &m->pend[i];

	if (!p->sent || p->kind == HV_JOIN) {
		p->sent = false;
		actions_connect(out, p->n.spec);
		return;
	}
	hv_passive_forget(m, p->n.spec->name, p->n.h);
	hv_pend_drop(m, i, out);
	hv_retry_soon(m, env);
}

static void hv_expire(struct hv *m, const struct core_env *env, struct actions *out)
{
	for (size_t i = m->npend; i-- > 0;)
		if (i < m->npend && env->now_ms >= m->pend[i].deadline)
			hv_pend_expired(m, i, env, out);
	for (size_t i = m->ntmp; i-- > 0;)
		if (env->now_ms >= m->tmp[i].deadline)
			hv_temp_del(m, i, out);
}

/* ---- incoming specs ---- */

/* Decode a spec; want: the name it must have (the sender's), or NULL. */
static struct node_spec *hv_spec_in(const PartisanCommon__NodeSpec *pb, const char *want,
                                    const char **why)
{
	struct node_spec *s;

	if (pb == NULL || pb->name == NULL) {
		*why = "hyparview: message without a node spec";
		return NULL;
	}
	if ((s = node_spec_from_pb(pb, why)) == NULL)
		return NULL;
	if (want && strcmp(s->name, want) != 0) {
		node_spec_free(s);
		*why = "hyparview: node spec is not the sender's";
		return NULL;
	}
	return s;
}

static void hv_specs_free(struct node_spec **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		node_spec_free(v[i]);
	free(v);
}

/* Decode every spec of a shuffle, or none. */
static struct node_spec **hv_specs_in(const struct hv *m, PartisanCommon__NodeSpec *const *pb,
                                      size_t n, const char **why)
{
	struct node_spec **v;

	/* No shuffle (nor the sample a refusal sends) holds more than both
	 * views and its origin: more is no HyParView peer. */
	if (n > (size_t)m->amax + m->pmax + 1)
		return *why = "shuffle: more node specs than both views hold", NULL;
	v = xcalloc(n, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		if ((v[i] = hv_spec_in(pb[i], NULL, why)) == NULL) {
			hv_specs_free(v, i);
			return NULL;
		}
	}
	return v;
}

/* ---- join ---- */

/* A walk from a node we do not count as a neighbor: tell it so. */
static void hv_repair(struct hv *m, const char *from, struct actions *out)
{
	uint64_t h = hv_hash(from);

	if (hv_active_find(m, from, h) < 0 && hv_pend_find(m, from, h) < 0)
		hv_send_disconnect(m, from, false, out);
}

/* The contact's part: ask the joiner, and walk its join to every neighbor. */
static void hv_contact(struct hv *m, const char *from, const PartisanPeer__HvJoin *j,
                       const struct node_spec *spec, struct hv_stamp st, const struct core_env *env,
                       struct actions *out)
{
	size_t walks = 0;

	if (!hv_pend_start(m, spec, HV_ACCEPT, true, st, true, env, out))
		return;
	for (size_t i = 0; i < m->nactive; i++)
		if (strcmp(m->active[i].n.spec->name, from) != 0) {
			hv_send_forward_join(m->active[i].n.spec->name, j->spec, m->arwl, st, out);
			walks++;
		}
	/* No neighbour to walk the join to (our own join is still in flight):
	 * keep it, and walk it once we have some, or the joiner and whoever
	 * joins through it may stay an island. */
	if (walks == 0 && m->ndefer < HV_DEFER_MAX) {
		m->defer[m->ndefer].spec = hv_spec_copy(spec);
		m->defer[m->ndefer++].st = st;
	}
}

/* Walk the joins we took while alone, now that we have neighbours. */
static void hv_walk_deferred(struct hv *m, struct actions *out)
{
	if (m->ndefer == 0 || m->nactive == 0)
		return;
	for (size_t k = 0; k < m->ndefer; k++) {
		PartisanCommon__NodeSpec pb;

		node_spec_to_pb(m->defer[k].spec, &pb);
		for (size_t i = 0; i < m->nactive; i++)
			if (strcmp(m->active[i].n.spec->name, m->defer[k].spec->name) != 0)
				hv_send_forward_join(m->active[i].n.spec->name, &pb, m->arwl,
				                     m->defer[k].st, out);
		node_spec_pb_release(&pb);
		free(m->defer[k].spec);
	}
	m->ndefer = 0;
}

/* A join from a node we already count on (a duplicate, or it tries again):
 * say yes again, do not walk it again. */
static void hv_join_again(struct hv *m, const char *from, uint64_t h, struct hv_stamp st,
                          const struct core_env *env, struct actions *out)
{
	long i = hv_active_find(m, from, h);

	if (i < 0) {
		struct hv_pending *p = &m->pend[hv_pend_find(m, from, h)];

		p->high = true;
		p->deadline = env->now_ms + HV_PENDING_MS; /* it is alive */
	}
	if (i < 0 || hv_stamp_cmp(st, m->active[i].st) >= 0)
		hv_send_neighbor(m, from, true, out);
}

static int hv_on_join(struct hv *m, const char *from, const PartisanPeer__HvJoin *j,
                      const struct core_env *env, struct actions *out, const char **why)
{
	struct hv_stamp st = hv_stamp_of(j->has_epoch, j->epoch, j->has_seq, j->seq);
	struct node_spec *spec = hv_spec_in(j->spec, from, why);
	uint64_t h;
	long i;

	if (spec == NULL)
		return -1;
	h = hv_hash(from);
	m->joined = true;
	hv_tomb_clear(m, h);
	if ((i = hv_active_find(m, from, h)) >= 0 && st.epoch > m->active[i].st.epoch)
		hv_active_del(m, (size_t)i, HV_FORGET, true, env, out); /* it restarted */
	if ((i = hv_pend_find(m, from, h)) >= 0 && m->pend[i].kind == HV_JOIN)
		free(hv_pend_take(m, (size_t)i).n.spec); /* we both joined: be its contact */
	if (hv_active_find(m, from, h) >= 0 || hv_pend_find(m, from, h) >= 0)
		hv_join_again(m, from, h, st, env, out);
	else
		hv_contact(m, from, j, spec, st, env, out);
	node_spec_free(spec);
	return 0;
}

static void hv_walk_on(struct hv *m, const char *from, const PartisanPeer__HvForwardJoin *fj,
                       const struct node_spec *spec, struct hv_stamp st, const struct core_env *env,
                       struct actions *out)
{
	uint32_t ttl = fj->ttl < m->arwl ? fj->ttl : m->arwl;
	long next;

	if (ttl == 0 || m->nactive <= 1) {
		hv_accept_walk(m, spec, st, env, out);
		return;
	}
	if (ttl == m->prwl)
		hv_passive_add(m, spec, NULL, 0, env);
	next = hv_active_random_except(m, env->rng, from, spec->name);
	if (next < 0)
		hv_accept_walk(m, spec, st, env, out);
	else
		hv_send_forward_join(m->active[next].n.spec->name, fj->spec, ttl - 1, st, out);
}

static int hv_on_forward_join(struct hv *m, const char *from, const PartisanPeer__HvForwardJoin *fj,
                              const struct core_env *env, struct actions *out, const char **why)
{
	struct hv_stamp st = hv_stamp_of(fj->has_epoch, fj->epoch, fj->has_seq, fj->seq);
	struct node_spec *spec = hv_spec_in(fj->spec, NULL, why);
	uint64_t h;

	if (spec == NULL)
		return -1;
	h = hv_hash(spec->name);
	hv_repair(m, from, out);
	if (!hv_is_self(m, spec->name, h))
		hv_walk_on(m, from, fj, spec, st, env, out);
	node_spec_free(spec);
	return 0;
}

/* ---- neighbor requests ---- */

static void hv_send_sample(struct hv *m, const char *to, const struct core_env *env,
                           struct actions *out);

/* A request from a node with no entry of ours, or a handshake of ours
 * (pending index pi) crossing its request. */
static void hv_consider(struct hv *m, const struct node_spec *spec, bool high, struct hv_stamp st,
                        long pi, const struct core_env *env, struct actions *out)
{
	bool ours = pi >= 0 && m->pend[pi].high;

	if (!high && !ours && m->nactive >= m->amax) {
		hv_send_sample(m, spec->name, env, out);
		hv_send_reply(m, spec->name, false, out);
		return;
	}
	if (pi >= 0)
		free(hv_pend_take(m, (size_t)pi).n.spec);
	hv_send_reply(m, spec->name, true, out);
	hv_active_add(m, spec, st, env, out);
}

static int hv_on_neighbor(struct hv *m, const char *from, const PartisanPeer__HvNeighbor *nb,
                          const struct core_env *env, struct actions *out, const char **why)
{
	struct hv_stamp st = hv_stamp_of(nb->has_epoch, nb->epoch, nb->has_seq, nb->seq);
	struct node_spec *spec = hv_spec_in(nb->spec, from, why);
	uint64_t h;
	long i, pi;

	if (spec == NULL)
		return -1;
	h = hv_hash(from);
	hv_tomb_clear(m, h);
	i = hv_active_find(m, from, h);
	pi = hv_pend_find(m, from, h);
	if (i >= 0) {
		if (hv_stamp_cmp(st, m->active[i].st) >= 0) { /* not older: yes, again */
			m->active[i].st = st;
			hv_node_refresh(&m->active[i].n, spec);
			hv_send_reply(m, from, true, out);
		}
	} else if (pi >= 0 && hv_stamp_cmp(st, m->pend[pi].st) < 0) {
		; /* older than what it told us since */
	} else if (!m->joined && m->npassive == 0) {
		hv_send_disconnect(m, from, true, out); /* not part of a cluster */
	} else {
		hv_consider(m, spec, nb->high_priority, st, pi, env, out);
	}
	node_spec_free(spec);
	return 0;
}

/* Our request was accepted: a neighbor, unless a low priority one finds the
 * view full by now (then undone). */
static void hv_accepted(struct hv *m, size_t pi, struct hv_stamp st, const struct core_env *env,
                        struct actions *out)
{
	struct hv_pending p = hv_pend_take(m, pi);

	if (!p.high && m->nactive >= m->amax) {
		hv_send_disconnect(m, p.n.spec->name, false, out);
		if (!hv_wanted(m, p.n.spec->name, p.n.h))
			actions_disconnect(out, p.n.spec->name);
	} else {
		hv_active_add(m, p.n.spec, st, env, out);
	}
	free(p.n.spec);
}

static void hv_on_reply(struct hv *m, const char *from, const PartisanPeer__HvNeighborReply *r,
                        const struct core_env *env, struct actions *out)
{
	struct hv_stamp st = hv_stamp_of(r->has_epoch, r->epoch, r->has_seq, r->seq);
	uint64_t h = hv_hash(from);
	long i = hv_active_find(m, from, h), pi = hv_pend_find(m, from, h);

	if (i >= 0) {
		if (hv_stamp_cmp(st, m->active[i].st) <= 0)
			return; /* stale or repeated */
		m->active[i].st = st;
		if (!r->accepted)
			hv_active_del(m, (size_t)i, HV_TO_PASSIVE, false, env, out);
	} else if (pi >= 0) {
		if (m->pend[pi].kind == HV_JOIN || hv_stamp_cmp(st, m->pend[pi].st) < 0)
			return; /* answers an older request */
		if (r->accepted) {
			hv_accepted(m, (size_t)pi, st, env, out);
		} else {
			hv_pend_drop(m, (size_t)pi, out);
			hv_passive_quiet(m, from, h, env);
			hv_retry_soon(m, env);
		}
	} else if (r->accepted) {
		/* It counts us as a neighbor; we gave up on it: undo. */
		hv_send_disconnect(m, from, false, out);
		if (!hv_wanted(m, from, h))
			actions_disconnect(out, from);
	}
}

static void hv_on_disconnect(struct hv *m, const char *from, const PartisanPeer__HvDisconnect *d,
                             const struct core_env *env, struct actions *out)
{
	struct hv_stamp st = hv_stamp_of(d->has_epoch, d->epoch, d->has_seq, d->seq);
	bool leaving = d->has_leaving && d->leaving;
	uint64_t h = hv_hash(from);
	long i = hv_active_find(m, from, h), pi = hv_pend_find(m, from, h);

	if (i >= 0) {
		if (hv_stamp_cmp(st, m->active[i].st) < 0)
			return; /* from before its newest word: ignored */
		hv_active_del(m, (size_t)i, leaving ? HV_FORGET : HV_TO_PASSIVE, false, env, out);
	} else if (pi >= 0) {
		if (leaving) {
			hv_pend_drop(m, (size_t)pi, out);
		} else if (hv_stamp_cmp(st, m->pend[pi].st) > 0) {
			m->pend[pi].st = st; /* an older accept will not count */
		}
	}
	if (leaving)
		hv_departed(m, from, h, env);
}

/* ---- shuffles ---- */

struct hv_pbspecs {
	PartisanCommon__NodeSpec *v;
	PartisanCommon__NodeSpec **p;
	size_t n;
};

static void hv_pbspecs_init(struct hv_pbspecs *s, size_t cap)
{
	s->v = xcalloc(cap, sizeof(*s->v));
	s->p = xcalloc(cap, sizeof(*s->p));
	s->n = 0;
}

static void hv_pbspecs_add(struct hv_pbspecs *s, const struct node_spec *spec)
{
	node_spec_to_pb(spec, &s->v[s->n]);
	s->p[s->n] = &s->v[s->n];
	s->n++;
}

static void hv_pbspecs_free(struct hv_pbspecs *s)
{
	for (size_t i = 0; i < s->n; i++)
		node_spec_pb_release(&s->v[i]);
	free(s->v);
	free(s->p);
}

/* Add k random passive entries to s; their hashes to sent (if not NULL). */
static size_t hv_sample_passive(struct hv *m, size_t k, struct hv_pbspecs *s, uint64_t *sent,
                                struct rng *r)
{
	size_t *idx = xcalloc(k, sizeof(*idx));
	size_t n = hv_sample(r, m->npassive, k, idx);

	for (size_t i = 0; i < n; i++) {
		hv_pbspecs_add(s, m->passive[idx[i]].n.spec);
		if (sent)
			sent[i] = m->passive[idx[i]].n.h;
	}
	free(idx);
	return n;
}

static void hv_shuffle_start(struct hv *m, const struct core_env *env, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvShuffle sh = PARTISAN_PEER__HV_SHUFFLE__INIT;
	PartisanCommon__NodeSpec origin;
	struct hv_pbspecs s;
	size_t *idx = xcalloc(m->ka + 1, sizeof(*idx));
	size_t target = (size_t)rng_below(env->rng, m->nactive), n;

	hv_pbspecs_init(&s, m->ka + m->kp + 1);
	node_spec_to_pb(m->self, &origin);
	hv_pbspecs_add(&s, m->self);
	m->nshuffle_sent = 0;
	n = hv_sample(env->rng, m->nactive, m->ka + 1, idx);
	for (size_t i = 0; i < n && m->nshuffle_sent < m->ka; i++)
		if (idx[i] != target) {
			hv_pbspecs_add(&s, m->active[idx[i]].n.spec);
			m->shuffle_sent[m->nshuffle_sent++] = m->active[idx[i]].n.h;
		}
	m->nshuffle_sent +=
	    hv_sample_passive(m, m->kp, &s, m->shuffle_sent + m->nshuffle_sent, env->rng);
	m->shuffle_id = rng_next(env->rng);
	sh.origin = &origin;
	sh.n_specs = s.n;
	sh.specs = s.p;
	sh.ttl = m->arwl;
	sh.id = m->shuffle_id;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE;
	msg.hv_shuffle = &sh;
	hv_send_body(m->active[target].n.spec->name, &msg, out);
	node_spec_pb_release(&origin);
	hv_pbspecs_free(&s);
	free(idx);
}

/* A refused asker gets other candidates (as Partisan does): ka neighbors and
 * kp passive entries, in a reply to no shuffle. Nodes cut off in a corner
 * of the overlay learn of the rest this way. */
static void hv_send_sample(struct hv *m, const char *to, const struct core_env *env,
                           struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvShuffleReply rep = PARTISAN_PEER__HV_SHUFFLE_REPLY__INIT;
	struct hv_pbspecs s;
	size_t *idx = xcalloc(m->ka, sizeof(*idx));
	size_t n = hv_sample(env->rng, m->nactive, m->ka, idx);

	hv_pbspecs_init(&s, m->ka + m->kp);
	for (size_t i = 0; i < n; i++)
		hv_pbspecs_add(&s, m->active[idx[i]].n.spec);
	hv_sample_passive(m, m->kp, &s, NULL, env->rng);
	rep.n_specs = s.n;
	rep.specs = s.p;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY;
	msg.hv_shuffle_reply = &rep;
	hv_send_body(to, &msg, out);
	hv_pbspecs_free(&s);
	free(idx);
}

/* Merge specs into the passive view, evicting first what prefer names. */
static void hv_passive_merge(struct hv *m, struct node_spec *const *specs, size_t n,
                             const uint64_t *prefer, size_t nprefer, const struct core_env *env)
{
	for (size_t i = 0; i < n; i++)
		hv_passive_add(m, specs[i], prefer, nprefer, env);
}

/* The walk ends here: answer the origin with as many passive entries as it
 * sent, then merge what it sent. */
static void hv_shuffle_answer(struct hv *m, const char *from, const PartisanPeer__HvShuffle *sh,
                              const struct node_spec *origin, struct node_spec *const *specs,
                              const struct core_env *env, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvShuffleReply rep = PARTISAN_PEER__HV_SHUFFLE_REPLY__INIT;
	struct hv_pbspecs s;
	uint64_t *sent = xcalloc(sh->n_specs, sizeof(*sent));
	size_t nsent;

	hv_pbspecs_init(&s, sh->n_specs);
	nsent = hv_sample_passive(m, sh->n_specs, &s, sent, env->rng);
	rep.n_specs = s.n;
	rep.specs = s.p;
	rep.id = sh->id;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY;
	msg.hv_shuffle_reply = &rep;
	if (nsent > 0)
		hv_deliver(m, origin, strcmp(from, origin->name) == 0, &msg, env, out);
	hv_pbspecs_free(&s);
	hv_passive_merge(m, specs, sh->n_specs, sent, nsent, env);
	free(sent);
}

static void hv_shuffle_on(struct hv *m, const char *from, const PartisanPeer__HvShuffle *sh,
                          const struct node_spec *origin, struct node_spec *const *specs,
                          const struct core_env *env, struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HvShuffle fw = *sh;
	uint32_t ttl = sh->ttl < m->arwl ? sh->ttl : m->arwl;
	long next = -1;

	if (ttl > 1 && m->nactive > 1)
		next = hv_active_random_except(m, env->rng, from, origin->name);
	if (next < 0) {
		hv_shuffle_answer(m, from, sh, origin, specs, env, out);
		return;
	}
	fw.ttl = ttl - 1;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE;
	msg.hv_shuffle = &fw;
	hv_send_body(m->active[next].n.spec->name, &msg, out);
}

static int hv_on_shuffle(struct hv *m, const char *from, const PartisanPeer__HvShuffle *sh,
                         const struct core_env *env, struct actions *out, const char **why)
{
	struct node_spec *origin = hv_spec_in(sh->origin, NULL, why);
	struct node_spec **specs;

	if (origin == NULL)
		return -1;
	if ((specs = hv_specs_in(m, sh->specs, sh->n_specs, why)) == NULL) {
		node_spec_free(origin);
		return -1;
	}
	hv_repair(m, from, out);
	if (!hv_is_self(m, origin->name, hv_hash(origin->name)))
		hv_shuffle_on(m, from, sh, origin, specs, env, out);
	hv_specs_free(specs, sh->n_specs);
	node_spec_free(origin);
	return 0;
}

static int hv_on_shuffle_reply(struct hv *m, const PartisanPeer__HvShuffleReply *rep,
                               const struct core_env *env, const char **why)
{
	struct node_spec **specs = hv_specs_in(m, rep->specs, rep->n_specs, why);
	bool ours = rep->id == m->shuffle_id;

	if (specs == NULL)
		return -1;
	hv_passive_merge(m, specs, rep->n_specs, ours ? m->shuffle_sent : NULL,
	                 ours ? m->nshuffle_sent : 0, env);
	hv_specs_free(specs, rep->n_specs);
	return 0;
}

/* ---- leaving ---- */

static void hv_leave_self(struct hv *m, struct actions *out)
{
	while (m->nactive > 0) {
		struct hv_peer p = m->active[--m->nactive];

		hv_send_disconnect(m, p.n.spec->name, true, out);
		actions_disconnect(out, p.n.spec->name);
		actions_event(out, EV_MEMBER_REMOVED, p.n.spec->name);
		free(p.n.spec);
	}
	while (m->npend > 0)
		hv_pend_drop(m, m->npend - 1, out);
	while (m->ntmp > 0)
		hv_temp_del(m, m->ntmp - 1, out);
	while (m->npassive > 0)
		hv_passive_del(m, m->npassive - 1);
	for (size_t i = 0; i < m->nlinks; i++)
		actions_disconnect(out, m->links[i].name);
	m->stopped = m->changed = true;
	actions_event(out, EV_SELF_REMOVED, m->self->name);
}

/* Tell node to leave (it then says goodbye to its neighbors) and drop it. */
static void hv_leave_other(struct hv *m, const char *node, const struct core_env *env,
                           struct actions *out)
{
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Leave lv = PARTISAN_PEER__LEAVE__INIT;
	uint64_t h = hv_hash(node);
	long i = hv_active_find(m, node, h), pi = hv_pend_find(m, node, h),
	     k = hv_passive_find(m, node, h);
	const struct node_spec *spec = i >= 0    ? m->active[i].n.spec
	                               : pi >= 0 ? m->pend[pi].n.spec
	                               : k >= 0  ? m->passive[k].n.spec
	                                         : NULL;

	lv.node = (char *)node;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_LEAVE;
	msg.leave = &lv;
	if (spec)
		hv_deliver(m, spec, i >= 0, &msg, env, out);
	if (pi >= 0)
		free(hv_pend_take(m, (size_t)pi).n.spec);
	if (i >= 0)
		hv_active_del(m, (size_t)i, HV_FORGET, false, env, out);
	hv_departed(m, node, h, env);
}

static int hv_on_leave(struct hv *m, const char *from, const PartisanPeer__Leave *lv,
                       struct actions *out, const char **why)
{
	uint64_t h = hv_hash(from);

	if (lv->node == NULL) {
		*why = "hyparview: leave without a node";
		return -1;
	}
	/* Only a node that knows us may send us away. */
	if (strcmp(lv->node, m->self->name) == 0 &&
	    (hv_active_find(m, from, h) >= 0 || hv_passive_find(m, from, h) >= 0 ||
	     hv_pend_find(m, from, h) >= 0))
		hv_leave_self(m, out);
	return 0;
}

/* ---- the manager interface ---- */

static void hv_begin(struct hv *m, const struct core_env *env)
{
	if (m->started)
		return;
	m->started = true;
	m->next_shuffle_ms = env->now_ms + 1 + rng_below(env->rng, m->shuffle_ms);
	m->next_promote_ms = env->now_ms + 1 + rng_below(env->rng, m->promote_ms);
	m->rejoin_ms = env->now_ms + HV_REJOIN_PERIODS * m->shuffle_ms +
	               rng_below(env->rng, m->shuffle_ms + 1);
}

/* After each call: a node left without neighbors asks at once (with high
 * priority), before others come to count on it as their way in. */
static void hv_end(struct hv *m, const struct core_env *env, struct actions *out)
{
	if (m->nactive == 0 && m->npend == 0 && m->joined && !m->stopped)
		hv_fill(m, env, out);
	if (!m->changed)
		return;
	m->changed = false;
	actions_event(out, EV_VIEW_CHANGED, m->self->name);
}

static unsigned hv_param(unsigned v, unsigned dflt)
{
	return v ? v : dflt;
}

static void *hv_create(const struct manager_params *p)
{
	struct hv *m = xcalloc(1, sizeof(*m));

	m->self = node_spec_dup(p->self);
	m->self_h = hv_hash(m->self->name);
	m->me.epoch = hv_epoch_of(p->actor);
	m->amax = hv_param(p->active_max, 5);
	m->pmax = hv_param(p->passive_max, 30);
	m->arwl = hv_param(p->arwl, 6);
	m->prwl = hv_param(p->prwl, 3);
	m->ka = hv_param(p->shuffle_k_active, 3);
	m->kp = hv_param(p->shuffle_k_passive, 4);
	m->shuffle_ms = hv_param(p->shuffle_interval_ms, 10000);
	m->promote_ms = hv_param(p->promotion_interval_ms, 5000);
	m->pend_max = m->amax + 4;
	m->active = xcalloc(m->amax, sizeof(*m->active));
	m->passive = xcalloc(m->pmax, sizeof(*m->passive));
	m->pend = xcalloc(m->pend_max, sizeof(*m->pend));
	m->tmp = xcalloc(HV_TEMP_MAX, sizeof(*m->tmp));
	m->shuffle_sent = xcalloc(m->ka + m->kp, sizeof(*m->shuffle_sent));
	return m;
}

static void hv_destroy(void *mp)
{
	struct hv *m = mp;

	for (size_t i = 0; i < m->nactive; i++)
		free(m->active[i].n.spec);
	for (size_t i = 0; i < m->npassive; i++)
		free(m->passive[i].n.spec);
	for (size_t i = 0; i < m->npend; i++)
		free(m->pend[i].n.spec);
	for (size_t i = 0; i < m->ntmp; i++) {
		free(m->tmp[i].n.spec);
		free(m->tmp[i].buf);
	}
	for (size_t i = 0; i < m->nlinks; i++)
		free(m->links[i].name);
	free(m->active);
	free(m->passive);
	free(m->pend);
	free(m->tmp);
	free(m->links);
	free(m->shuffle_sent);
	free(m->mcache);
	free(m->vcache);
	free(m->contact);
	for (size_t i = 0; i < m->ndefer; i++)
		free(m->defer[i].spec);
	node_spec_free(m->self);
	free(m);
}

static void hv_join(void *mp, const struct node_spec *spec, const struct core_env *env,
                    struct actions *out)
{
	struct hv *m = mp;
	struct hv_stamp none = {0, 0};
	uint64_t h = hv_hash(spec->name);

	if (m->stopped || hv_is_self(m, spec->name, h) || hv_active_find(m, spec->name, h) >= 0 ||
	    hv_pend_find(m, spec->name, h) >= 0)
		return;
	hv_begin(m, env);
	m->joined = true;
	free(m->contact);
	m->contact = hv_spec_copy(spec);
	if (!hv_pend_start(m, spec, HV_JOIN, true, none, false, env, out)) {
		actions_connect(out, spec); /* every slot busy: still say hello */
		hv_send_join(m, spec->name, out);
	}
	hv_end(m, env, out);
}

static void hv_leave(void *mp, const char *node, const struct core_env *env, struct actions *out)
{
	struct hv *m = mp;

	if (m->stopped)
		return;
	hv_begin(m, env);
	if (strcmp(node, m->self->name) == 0)
		hv_leave_self(m, out);
	else
		hv_leave_other(m, node, env, out);
	hv_end(m, env, out);
}

/* After we left: whoever still counts on us hears that we are gone. */
static int hv_receive_stopped(struct hv *m, const char *from, const PartisanPeer__PeerMsg *msg,
                              struct actions *out)
{
	switch (msg->body_case) {
	case PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT:
	case PARTISAN_PEER__PEER_MSG__BODY_LEAVE:
		return 0;
	default:
		hv_send_disconnect(m, from, true, out);
		return 0;
	}
}

static int hv_dispatch(struct hv *m, const char *from, const PartisanPeer__PeerMsg *msg,
                       const struct core_env *env, struct actions *out, const char **why)
{
	switch (msg->body_case) {
	case PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN:
		return hv_on_join(m, from, msg->hv_join, env, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_HV_FORWARD_JOIN:
		return hv_on_forward_join(m, from, msg->hv_forward_join, env, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR:
		return hv_on_neighbor(m, from, msg->hv_neighbor, env, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY:
		hv_on_reply(m, from, msg->hv_neighbor_reply, env, out);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT:
		hv_on_disconnect(m, from, msg->hv_disconnect, env, out);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE:
		return hv_on_shuffle(m, from, msg->hv_shuffle, env, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY:
		return hv_on_shuffle_reply(m, msg->hv_shuffle_reply, env, why);
	case PARTISAN_PEER__PEER_MSG__BODY_LEAVE:
		return hv_on_leave(m, from, msg->leave, out, why);
	default:
		*why = "unexpected message for hyparview";
		return -1;
	}
}

static bool hv_body_present(const PartisanPeer__PeerMsg *msg)
{
	switch (msg->body_case) {
	case PARTISAN_PEER__PEER_MSG__BODY_HV_JOIN:
		return msg->hv_join != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_FORWARD_JOIN:
		return msg->hv_forward_join != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR:
		return msg->hv_neighbor != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_NEIGHBOR_REPLY:
		return msg->hv_neighbor_reply != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_DISCONNECT:
		return msg->hv_disconnect != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE:
		return msg->hv_shuffle != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_HV_SHUFFLE_REPLY:
		return msg->hv_shuffle_reply != NULL;
	case PARTISAN_PEER__PEER_MSG__BODY_LEAVE:
		return msg->leave != NULL;
	default:
		return true;
	}
}

static int hv_receive(void *mp, const char *from, const PartisanPeer__PeerMsg *msg,
                      const struct core_env *env, struct actions *out, const char **why)
{
	struct hv *m = mp;
	int r;

	if (!hv_body_present(msg)) {
		*why = "hyparview: message without a body";
		return -1;
	}
	if (strcmp(from, m->self->name) == 0) {
		*why = "hyparview: message from our own name";
		return -1;
	}
	if (m->stopped)
		return hv_receive_stopped(m, from, msg, out);
	hv_begin(m, env);
	r = hv_dispatch(m, from, msg, env, out, why);
	hv_end(m, env, out);
	return r;
}

static void hv_peer_up(void *mp, const struct node_spec *spec, const struct core_env *env,
                       struct actions *out)
{
	struct hv *m = mp;
	uint64_t h = hv_hash(spec->name);
	long i;

	if (m->stopped || hv_is_self(m, spec->name, h))
		return;
	hv_begin(m, env);
	hv_link_up(m, spec->name, env->now_ms);
	if ((i = hv_active_find(m, spec->name, h)) >= 0)
		hv_node_refresh(&m->active[i].n, spec);
	if ((i = hv_pend_find(m, spec->name, h)) >= 0) {
		struct hv_pending *p = &m->pend[i];

		hv_node_refresh(&p->n, spec);
		if (!p->sent) {
			p->sent = true;
			hv_pend_send(m, p, out);
		}
	}
	hv_temp_flush(m, spec->name, h, out);
	hv_end(m, env, out);
}

static void hv_peer_down(void *mp, const char *node, const struct core_env *env,
                         struct actions *out)
{
	struct hv *m = mp;
	uint64_t h = hv_hash(node);
	long i;

	hv_link_down(m, node);
	if (m->stopped)
		return;
	hv_begin(m, env);
	if ((i = hv_active_find(m, node, h)) >= 0) {
		hv_active_del(m, (size_t)i, HV_FORGET, false, env, out);
		hv_fill(m, env, out); /* replace it at once */
	}
	if ((i = hv_pend_find(m, node, h)) >= 0)
		hv_pend_down(m, (size_t)i, env, out);
	/* A message waits for a link not up yet: what went down was an older
	 * one (maybe closing as we asked); ask again. */
	if ((i = HV_FIND(m->tmp, m->ntmp, node, h)) >= 0)
		actions_connect(out, m->tmp[i].n.spec);
	hv_end(m, env, out);
}

/* Islands: nodes that joined through a contact still joining itself can end
 * up in a closed clique with full views, which shuffles never leave. Once,
 * after the joins have settled, join the contact again: its walks reach the
 * overlay it is in, so an island finds its way back. */
static void hv_rejoin(struct hv *m, const struct core_env *env, struct actions *out)
{
	struct hv_stamp none = {0, 0};
	uint64_t h;

	if (m->rejoin_ms == 0 || env->now_ms < m->rejoin_ms)
		return;
	m->rejoin_ms = 0;
	if (m->contact == NULL || m->nactive == 0)
		return; /* hv_fill joins again when we have nobody */
	h = hv_hash(m->contact->name);
	if (hv_active_find(m, m->contact->name, h) >= 0 ||
	    hv_pend_find(m, m->contact->name, h) >= 0)
		return;
	hv_pend_start(m, m->contact, HV_JOIN, true, none, false, env, out);
}

static void hv_tick(void *mp, const struct core_env *env, struct actions *out)
{
	struct hv *m = mp;

	if (m->stopped)
		return;
	hv_begin(m, env);
	hv_expire(m, env, out);
	hv_sweep_links(m, env->now_ms, out);
	hv_walk_deferred(m, out);
	if (env->now_ms >= m->next_shuffle_ms) {
		m->next_shuffle_ms = env->now_ms + m->shuffle_ms;
		if (m->nactive > 0)
			hv_shuffle_start(m, env, out);
	}
	if (env->now_ms >= m->next_promote_ms) {
		m->next_promote_ms = env->now_ms + m->promote_ms;
		hv_fill(m, env, out);
	}
	hv_rejoin(m, env, out);
	hv_end(m, env, out);
}

static int hv_spec_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct node_spec *const *)a)->name,
	              (*(const struct node_spec *const *)b)->name);
}

static size_t hv_members(void *mp, const struct node_spec *const **out)
{
	struct hv *m = mp;

	m->mcache = xrealloc(m->mcache, (m->nactive + 1) * sizeof(*m->mcache));
	m->mcache[0] = m->self;
	for (size_t i = 0; i < m->nactive; i++)
		m->mcache[i + 1] = m->active[i].n.spec;
	qsort(m->mcache, m->nactive + 1, sizeof(*m->mcache), hv_spec_ptr_cmp);
	*out = m->mcache;
	return m->nactive + 1;
}

static bool hv_is_member(void *mp, const char *node)
{
	struct hv *m = mp;
	uint64_t h = hv_hash(node);

	return hv_is_self(m, node, h) || hv_active_find(m, node, h) >= 0;
}

static size_t hv_active_view(void *mp, const char *const **out)
{
	struct hv *m = mp;

	m->vcache = xrealloc(m->vcache, (m->nactive + 1) * sizeof(*m->vcache));
	for (size_t i = 0; i < m->nactive; i++)
		m->vcache[i] = m->active[i].n.spec->name;
	*out = m->vcache;
	return m->nactive;
}

static size_t hv_passive_view(void *mp, const char *const **out)
{
	struct hv *m = mp;

	m->vcache = xrealloc(m->vcache, (m->npassive + 1) * sizeof(*m->vcache));
	for (size_t i = 0; i < m->npassive; i++)
		m->vcache[i] = m->passive[i].n.spec->name;
	*out = m->vcache;
	return m->npassive;
}

/* A departure heard through the overlay (the leaver's broadcast): drop the
 * node from both views, so no view keeps it as a candidate. */
static void hv_forget(void *mp, const char *node, const struct core_env *env, struct actions *out)
{
	struct hv *m = mp;
	uint64_t h = hv_hash(node);
	long i = hv_active_find(m, node, h);

	if (m->stopped || hv_is_self(m, node, h))
		return;
	if (i >= 0)
		hv_active_del(m, (size_t)i, HV_FORGET, false, env, out);
	hv_departed(m, node, h, env);
}

const struct manager_ops hyparview_ops = {
    .name = "hyparview",
    .create = hv_create,
    .destroy = hv_destroy,
    .join = hv_join,
    .leave = hv_leave,
    .receive = hv_receive,
    .peer_up = hv_peer_up,
    .peer_down = hv_peer_down,
    .tick = hv_tick,
    .members = hv_members,
    .is_member = hv_is_member,
    .active_view = hv_active_view,
    .passive_view = hv_passive_view,
    .forget = hv_forget,
};
