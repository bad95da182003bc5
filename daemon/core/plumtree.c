/* plumtree.c: Plumtree broadcast trees with lazy IHave/Graft repair and
 * Partisan's anti-entropy exchange, as a pure core (see plumtree.h).
 *
 * Messages get a sequence number in the order this node first received
 * them. Two rings indexed by that number bound the memory: the payload store
 * (max_store) and the seen ids (4 * max_store); `known` maps an id's hash to
 * its sequence number. Lazy queues hold sequence numbers, so an announcement
 * whose message left the store is simply dropped.
 *
 * An id forgotten from the seen ring may still come back: a node that
 * restarted took a whole store from one exchange as its newest messages,
 * and passes them on, store to store, long after the others forgot them.
 * So each forgotten id raises its origin incarnation's floor (floors:
 * hash of origin and incarnation -> highest forgotten counter), and an id
 * at or below its floor counts as seen: it was delivered, or it is so late
 * (older than seen_cap arrivals) that it is dropped. */
#include <stdlib.h>
#include <string.h>

#include "plumtree.h"
#include "strmap.h"

#define PT_SEEN_FACTOR 4   /* seen ids kept per stored message */
#define PT_ANNOUNCERS  8   /* announcers remembered per missing id */
#define PT_GRAFT_TRIES 8   /* grafts per missing id before leaving it to exchange */
#define PT_IHAVE_BATCH 512 /* ids per IHave message */
#define PT_IHAVE_TRIES 5   /* lazy ticks an unacknowledged id is announced */
#define PT_ID_HEAD     16  /* id: incarnation (8, BE), counter (8, BE), origin */
#define PT_ORIGIN_MAX  255

/* uint64 -> uint64 open-addressing map; key 0 marks an empty slot. */
struct pt_slot {
	uint64_t key, val;
};

struct pt_map {
	struct pt_slot *v;
	size_t cap, n; /* cap: 0 or a power of two */
};

struct pt_msg {
	uint64_t key;  /* hash of id */
	uint32_t hops; /* rounds it travelled to reach this node */
	size_t idlen, len, bytes;
	uint8_t *id, *payload; /* id, topic, origin, payload follow the struct */
	char *topic, *origin;
};

struct pt_seen {
	uint64_t key;  /* hash of the id */
	uint64_t okey; /* hash of its origin and incarnation */
	uint64_t ctr;  /* its counter */
};

struct pt_lazy {
	uint64_t seq;  /* the stored message to announce */
	uint32_t sent; /* IHave that carried it so far */
};

struct pt_peer {
	char *name;
	bool eager;
	size_t idx;           /* position in plumtree.peers */
	struct pt_lazy *lazy; /* announcements not yet acknowledged */
	size_t nlazy, caplazy;
};

struct pt_missing {
	uint64_t key;
	uint8_t *id;
	size_t idlen;
	uint64_t deadline;
	char *ann[PT_ANNOUNCERS]; /* who announced it, in order */
	unsigned nann, next, tries;
};

struct plumtree {
	char *self;
	uint64_t incarnation, counter;
	unsigned lazy_ms, exchange_ms;
	size_t max_store, seen_cap;
	bool started;
	uint64_t next_lazy, next_exchange;

	struct strmap by_name; /* name -> struct pt_peer */
	struct pt_peer **peers;
	size_t npeers, cappeers;

	uint64_t seq;          /* messages received so far */
	struct pt_map known;   /* id hash -> sequence number, for the seen ids */
	struct pt_seen *seen;  /* ring: seq % seen_cap -> the id seen */
	struct pt_map floors;  /* origin incarnation hash -> highest forgotten counter */
	size_t seen_size;      /* allocated slots, grows up to seen_cap */
	struct pt_msg **store; /* ring: seq % max_store -> message */
	size_t store_size;
	size_t store_bytes;

	struct pt_map missing_at; /* id hash -> index in missing */
	struct pt_missing *missing;
	size_t nmissing, capmissing;

	struct plumtree_stats stats;
};

/* ---- the map ---- */

static size_t pt_map_home(const struct pt_map *m, uint64_t key)
{
	return (size_t)(key ^ (key >> 29)) & (m->cap - 1);
}

static struct pt_slot *pt_map_slot(const struct pt_map *m, uint64_t key)
{
	size_t i = pt_map_home(m, key);

	while (m->v[i].key != 0 && m->v[i].key != key)
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

static uint64_t *pt_map_get(const struct pt_map *m, uint64_t key)
{
	struct pt_slot *s;

	if (m->cap == 0)
		return NULL;
	s = pt_map_slot(m, key);
	return s->key ? &s->val : NULL;
}

static void pt_map_grow(struct pt_map *m)
{
	struct pt_map g = {.cap = m->cap ? m->cap * 2 : 16};

	g.v = xcalloc(g.cap, sizeof(*g.v));
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].key)
			*pt_map_slot(&g, m->v[i].key) = m->v[i];
	g.n = m->n;
	free(m->v);
	*m = g;
}

static void pt_map_put(struct pt_map *m, uint64_t key, uint64_t val)
{
	struct pt_slot *s;

	if ((m->n + 1) * 4 > m->cap * 3)
		pt_map_grow(m);
	s = pt_map_slot(m, key);
	if (s->key == 0)
		m->n++;
	s->key = key;
	s->val = val;
}

/* Linear probing deletion by shifting back the entries that follow. */
static void pt_map_del(struct pt_map *m, uint64_t key)
{
	size_t mask = m->cap - 1, i, j;

	if (m->cap == 0 || pt_map_slot(m, key)->key == 0)
		return;
	i = (size_t)(pt_map_slot(m, key) - m->v);
	for (j = (i + 1) & mask; m->v[j].key; j = (j + 1) & mask) {
		size_t h = pt_map_home(m, m->v[j].key);

		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->v[i] = m->v[j];
			i = j;
		}
	}
	m->v[i].key = 0;
	m->n--;
}

static void pt_map_free(struct pt_map *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- ids and stored messages ---- */

/* FNV-1a, then the murmur3 finaliser; never 0 (the map's empty key). */
static uint64_t pt_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h ? h : 1;
}

/* The counter of a well-formed id, and the hash of its origin and
 * incarnation (the id without its counter). */
static uint64_t pt_id_counter(const uint8_t *id)
{
	uint64_t c = 0;

	for (int i = 8; i < PT_ID_HEAD; i++)
		c = c << 8 | id[i];
	return c;
}

static uint64_t pt_id_origin_key(const uint8_t *id, size_t idlen)
{
	uint8_t buf[PT_ID_HEAD + PT_ORIGIN_MAX];

	memcpy(buf, id, 8);
	memcpy(buf + 8, id + PT_ID_HEAD, idlen - PT_ID_HEAD);
	return pt_hash(buf, idlen - 8);
}

static bool pt_id_ok(const ProtobufCBinaryData *id)
{
	return id->data != NULL && id->len > PT_ID_HEAD && id->len <= PT_ID_HEAD + PT_ORIGIN_MAX;
}

static size_t pt_make_id(const struct plumtree *pt, uint8_t *id)
{
	size_t n = strlen(pt->self);

	for (int i = 0; i < 8; i++) {
		id[i] = (uint8_t)(pt->incarnation >> (56 - 8 * i));
		id[8 + i] = (uint8_t)(pt->counter >> (56 - 8 * i));
	}
	memcpy(id + PT_ID_HEAD, pt->self, n);
	return PT_ID_HEAD + n;
}

static struct pt_msg *pt_msg_new(const uint8_t *id, size_t idlen, const char *topic,
                                 const char *origin, const uint8_t *payload, size_t len,
                                 uint32_t hops)
{
	size_t tl = strlen(topic) + 1, ol = strlen(origin) + 1;
	size_t bytes = sizeof(struct pt_msg) + idlen + tl + ol + len;
	struct pt_msg *m = xmalloc(bytes);
	uint8_t *p = (uint8_t *)(m + 1);

	m->key = pt_hash(id, idlen);
	m->hops = hops;
	m->idlen = idlen;
	m->len = len;
	m->bytes = bytes;
	m->id = memcpy(p, id, idlen);
	m->topic = memcpy(p + idlen, topic, tl);
	m->origin = memcpy(p + idlen + tl, origin, ol);
	m->payload = p + idlen + tl + ol;
	if (len)
		memcpy(m->payload, payload, len);
	return m;
}

/* The stored message with sequence number seq, or NULL once it left. */
static struct pt_msg *pt_stored(const struct plumtree *pt, uint64_t seq)
{
	if (seq >= pt->seq || pt->seq - seq > pt->max_store)
		return NULL;
	return pt->store[seq % pt->max_store];
}

static struct pt_msg *pt_lookup(const struct plumtree *pt, uint64_t key)
{
	uint64_t *seq = pt_map_get(&pt->known, key);

	return seq ? pt_stored(pt, *seq) : NULL;
}

/* Make room for index seq % cap in a ring that grows up to cap slots. */
static void *pt_ring_reserve(void *v, size_t *size, size_t cap, uint64_t seq, size_t elem)
{
	size_t n;

	if (*size == cap || seq < *size)
		return v;
	n = *size ? *size * 2 : 16;
	n = n < cap ? n : cap;
	v = xrealloc(v, n * elem);
	memset((char *)v + *size * elem, 0, (n - *size) * elem);
	*size = n;
	return v;
}

static void pt_forget_oldest_seen(struct plumtree *pt, uint64_t seq)
{
	const struct pt_seen *old = &pt->seen[seq % pt->seen_cap];
	uint64_t *at = pt_map_get(&pt->known, old->key), *floor;

	if (at && *at == seq - pt->seen_cap)
		pt_map_del(&pt->known, old->key);
	floor = pt_map_get(&pt->floors, old->okey);
	if (floor) {
		if (old->ctr > *floor)
			*floor = old->ctr;
		return;
	}
	/* Bounded like the rest: origins past seen_cap (a flood of made-up
	 * ones) start the floors afresh. */
	if (pt->floors.n >= pt->seen_cap) {
		pt_map_free(&pt->floors);
		pt->stats.floors_reset++;
	}
	pt_map_put(&pt->floors, old->okey, old->ctr);
}

/* Whether id (well-formed, hash key) was seen here, or is older than what
 * this node already forgot of its origin. */
static bool pt_seen_id(const struct plumtree *pt, uint64_t key, const uint8_t *id, size_t idlen)
{
	const uint64_t *floor;

	if (pt_map_get(&pt->known, key))
		return true;
	if (pt->floors.n == 0)
		return false;
	floor = pt_map_get(&pt->floors, pt_id_origin_key(id, idlen));
	return floor && pt_id_counter(id) <= *floor;
}

/* Number m, keep it (dropping the oldest beyond the bounds) and mark it seen. */
static void pt_remember(struct plumtree *pt, struct pt_msg *m)
{
	uint64_t seq = pt->seq++;
	struct pt_msg **slot;

	pt->seen = pt_ring_reserve(pt->seen, &pt->seen_size, pt->seen_cap, seq, sizeof(*pt->seen));
	if (seq >= pt->seen_cap)
		pt_forget_oldest_seen(pt, seq);
	pt->seen[seq % pt->seen_cap] = (struct pt_seen){
	    .key = m->key, .okey = pt_id_origin_key(m->id, m->idlen), .ctr = pt_id_counter(m->id)};
	pt->store = pt_ring_reserve(pt->store, &pt->store_size, pt->max_store, seq,
	                            sizeof(struct pt_msg *));
	slot = &pt->store[seq % pt->max_store];
	if (*slot) {
		pt->store_bytes -= (*slot)->bytes;
		free(*slot);
	}
	*slot = m;
	pt->store_bytes += m->bytes;
	pt_map_put(&pt->known, m->key, seq);
}

/* ---- peers ---- */

static struct pt_peer *pt_peer(const struct plumtree *pt, const char *name)
{
	return strmap_get(&pt->by_name, name);
}

static void pt_peer_free(struct pt_peer *p)
{
	free(p->name);
	free(p->lazy);
	free(p);
}

static void pt_set_eager(struct plumtree *pt, const char *name, bool eager)
{
	struct pt_peer *p = pt_peer(pt, name);

	if (p)
		p->eager = eager;
}

static void pt_lazy_push(struct pt_peer *p, uint64_t seq, size_t bound)
{
	if (p->nlazy >= bound)
		return;
	if (p->nlazy == p->caplazy) {
		p->caplazy = p->caplazy ? p->caplazy * 2 : 8;
		p->lazy = xrealloc(p->lazy, p->caplazy * sizeof(*p->lazy));
	}
	p->lazy[p->nlazy++] = (struct pt_lazy){.seq = seq};
}

/* ---- sending ---- */

static void pt_send(struct plumtree *pt, const char *to, enum plumtree_kind kind,
                    const PartisanPeer__PeerMsg *pm, struct actions *out)
{
	actions_send(out, to, NULL, pm);
	pt->stats.sent[kind]++;
}

static uint8_t *pt_pack_gossip(const struct pt_msg *m, bool catch_up, size_t *len)
{
	PartisanPeer__PeerMsg pm = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Gossip g = PARTISAN_PEER__GOSSIP__INIT;
	uint8_t *buf;

	g.topic = m->topic;
	g.id.data = m->id;
	g.id.len = m->idlen;
	g.payload.data = m->payload;
	g.payload.len = m->len;
	g.round = m->hops + 1;
	g.origin = m->origin;
	g.has_catch_up = catch_up;
	g.catch_up = catch_up;
	pm.body_case = PARTISAN_PEER__PEER_MSG__BODY_GOSSIP;
	pm.gossip = &g;
	*len = partisan_peer__peer_msg__get_packed_size(&pm);
	buf = xmalloc(*len);
	partisan_peer__peer_msg__pack(&pm, buf);
	return buf;
}

static void pt_send_gossip(struct plumtree *pt, const struct pt_msg *m, const char *to,
                           bool catch_up, struct actions *out)
{
	size_t len;
	uint8_t *buf = pt_pack_gossip(m, catch_up, &len);

	actions_send_raw(out, to, NULL, buf, len, NULL, 0);
	free(buf);
	pt->stats.sent[PLUMTREE_GOSSIP]++;
	pt->stats.catch_up_sent += catch_up;
}

static void pt_send_prune(struct plumtree *pt, const char *to, struct actions *out)
{
	PartisanPeer__PeerMsg pm = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Prune pr = PARTISAN_PEER__PRUNE__INIT;

	pm.body_case = PARTISAN_PEER__PEER_MSG__BODY_PRUNE;
	pm.prune = &pr;
	pt_send(pt, to, PLUMTREE_PRUNE, &pm, out);
}

static void pt_send_graft(struct plumtree *pt, const struct pt_missing *ms, const char *to,
                          struct actions *out)
{
	PartisanPeer__PeerMsg pm = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Graft gr = PARTISAN_PEER__GRAFT__INIT;

	gr.id.data = ms->id;
	gr.id.len = ms->idlen;
	gr.round = ms->tries;
	pm.body_case = PARTISAN_PEER__PEER_MSG__BODY_GRAFT;
	pm.graft = &gr;
	pt_send(pt, to, PLUMTREE_GRAFT, &pm, out);
}

/* Send every stored id to `to` in one Exchange. */
static void pt_send_exchange(struct plumtree *pt, const char *to, bool reply, struct actions *out)
{
	PartisanPeer__PeerMsg pm = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Exchange ex = PARTISAN_PEER__EXCHANGE__INIT;
	uint64_t first = pt->seq > pt->max_store ? pt->seq - pt->max_store : 0;

	ex.ids = xcalloc(pt->seq - first, sizeof(*ex.ids));
	for (uint64_t s = first; s < pt->seq; s++) {
		const struct pt_msg *m = pt_stored(pt, s);

		ex.ids[ex.n_ids].data = m->id;
		ex.ids[ex.n_ids++].len = m->idlen;
	}
	ex.has_reply = reply;
	ex.reply = reply;
	pm.body_case = PARTISAN_PEER__PEER_MSG__BODY_EXCHANGE;
	pm.exchange = &ex;
	pt_send(pt, to, PLUMTREE_EXCHANGE, &pm, out);
	free(ex.ids);
}

/* An IHave being filled for one peer, sent PT_IHAVE_BATCH ids at a time. */
struct pt_ihave {
	PartisanPeer__PeerMsg pm;
	PartisanPeer__IHave ih;
	ProtobufCBinaryData ids[PT_IHAVE_BATCH];
	char *topics[PT_IHAVE_BATCH];
	const char *to;
};

static void pt_ihave_init(struct pt_ihave *b, const char *to, bool ack)
{
	b->pm = (PartisanPeer__PeerMsg)PARTISAN_PEER__PEER_MSG__INIT;
	b->ih = (PartisanPeer__IHave)PARTISAN_PEER__IHAVE__INIT;
	b->pm.body_case = PARTISAN_PEER__PEER_MSG__BODY_IHAVE;
	b->pm.ihave = &b->ih;
	b->ih.ids = b->ids;
	b->ih.topics = b->topics;
	b->ih.has_ack = ack;
	b->ih.ack = ack;
	b->to = to;
}

static void pt_ihave_send(struct plumtree *pt, struct pt_ihave *b, struct actions *out)
{
	if (b->ih.n_ids == 0)
		return;
	b->ih.n_topics = b->ih.ack ? 0 : b->ih.n_ids;
	pt_send(pt, b->to, PLUMTREE_IHAVE, &b->pm, out);
	if (b->ih.ack)
		pt->stats.ihave_acks++;
	else
		pt->stats.ihave_ids += b->ih.n_ids;
	b->ih.n_ids = 0;
}

/* topic: NULL in an acknowledgement. */
static void pt_ihave_add(struct plumtree *pt, struct pt_ihave *b, uint8_t *id, size_t idlen,
                         char *topic, struct actions *out)
{
	b->ids[b->ih.n_ids] = (ProtobufCBinaryData){.len = idlen, .data = id};
	b->topics[b->ih.n_ids++] = topic;
	if (b->ih.n_ids == PT_IHAVE_BATCH)
		pt_ihave_send(pt, b, out);
}

/* ---- first receipt ---- */

static void pt_deliver(struct plumtree *pt, const struct pt_msg *m, plumtree_deliver_fn deliver,
                       void *arg)
{
	pt->stats.delivered++;
	pt->stats.hops_sum += m->hops;
	if (m->hops > pt->stats.hops_max)
		pt->stats.hops_max = m->hops;
	pt->stats.last_hops = m->hops;
	if (deliver)
		deliver(arg, m->topic, m->origin, m->payload, m->len);
}

/* Eager push to the tree, IHave to the others. A catch-up message is only
 * announced: the neighbors most likely have it, and an eager duplicate
 * would prune a tree link. */
static void pt_forward(struct plumtree *pt, const struct pt_msg *m, uint64_t seq, const char *from,
                       bool catch_up, struct actions *out)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	for (size_t i = 0; i < pt->npeers; i++) {
		struct pt_peer *p = pt->peers[i];

		if (from && strcmp(p->name, from) == 0)
			continue;
		if (!p->eager || catch_up) {
			pt_lazy_push(p, seq, pt->max_store);
			continue;
		}
		if (buf == NULL)
			buf = pt_pack_gossip(m, false, &len);
		actions_send_raw(out, p->name, NULL, buf, len, NULL, 0);
		pt->stats.sent[PLUMTREE_GOSSIP]++;
	}
	free(buf);
}

static void pt_accept(struct plumtree *pt, struct pt_msg *m, const char *from, bool catch_up,
                      struct actions *out, plumtree_deliver_fn deliver, void *arg)
{
	uint64_t seq = pt->seq;

	pt_remember(pt, m);
	pt_deliver(pt, m, deliver, arg);
	pt_forward(pt, m, seq, from, catch_up, out);
}

/* ---- missing ids and graft timers ---- */

static struct pt_missing *pt_missing_find(const struct plumtree *pt, uint64_t key)
{
	uint64_t *i = pt_map_get(&pt->missing_at, key);

	return i ? &pt->missing[*i] : NULL;
}

static void pt_missing_drop(struct plumtree *pt, size_t i)
{
	struct pt_missing *ms = &pt->missing[i];

	pt_map_del(&pt->missing_at, ms->key);
	free(ms->id);
	for (unsigned a = 0; a < ms->nann; a++)
		free(ms->ann[a]);
	if (i != --pt->nmissing) {
		*ms = pt->missing[pt->nmissing];
		pt_map_put(&pt->missing_at, ms->key, i);
	}
}

static void pt_missing_announcer(struct pt_missing *ms, const char *from)
{
	for (unsigned a = 0; a < ms->nann; a++)
		if (strcmp(ms->ann[a], from) == 0)
			return;
	if (ms->nann < PT_ANNOUNCERS)
		ms->ann[ms->nann++] = xstrdup(from);
}

/* `from` has id: graft it within a lazy tick unless it arrives first. */
static void pt_missing_note(struct plumtree *pt, uint64_t key, const ProtobufCBinaryData *id,
                            const char *from, uint64_t now)
{
	struct pt_missing *ms = pt_missing_find(pt, key);

	if (ms == NULL) {
		if (pt->nmissing >= pt->max_store)
			return; /* left to the exchange */
		if (pt->nmissing == pt->capmissing) {
			pt->capmissing = pt->capmissing ? pt->capmissing * 2 : 8;
			pt->missing = xrealloc(pt->missing, pt->capmissing * sizeof(*pt->missing));
		}
		ms = &pt->missing[pt->nmissing];
		memset(ms, 0, sizeof(*ms));
		ms->key = key;
		ms->id = memcpy(xmalloc(id->len), id->data, id->len);
		ms->idlen = id->len;
		ms->deadline = now + pt->lazy_ms;
		pt_map_put(&pt->missing_at, key, pt->nmissing++);
	}
	pt_missing_announcer(ms, from);
}

/* The timer of ms expired: graft the next announcer. Returns false when
 * there is nobody left to ask (drop it; the exchange will catch up). */
static bool pt_graft_next(struct plumtree *pt, struct pt_missing *ms, const struct core_env *env,
                          struct actions *out)
{
	const char *to;

	if (ms->nann == 0 || ms->tries >= PT_GRAFT_TRIES)
		return false;
	to = ms->ann[ms->next++ % ms->nann];
	pt_set_eager(pt, to, true);
	pt_send_graft(pt, ms, to, out);
	ms->tries++;
	ms->deadline = env->now_ms + (pt->lazy_ms / 2 ? pt->lazy_ms / 2 : 1);
	return true;
}

static void pt_graft_timers(struct plumtree *pt, const struct core_env *env, struct actions *out)
{
	size_t i = 0;

	while (i < pt->nmissing) {
		struct pt_missing *ms = &pt->missing[i];

		if (ms->deadline > env->now_ms || pt_graft_next(pt, ms, env, out))
			i++;
		else
			pt_missing_drop(pt, i);
	}
}

static void pt_missing_forget_node(struct plumtree *pt, const char *node)
{
	for (size_t i = 0; i < pt->nmissing; i++) {
		struct pt_missing *ms = &pt->missing[i];

		for (unsigned a = 0; a < ms->nann; a++) {
			if (strcmp(ms->ann[a], node) != 0)
				continue;
			free(ms->ann[a]);
			memmove(&ms->ann[a], &ms->ann[a + 1], (ms->nann - a - 1) * sizeof(char *));
			ms->nann--;
			break;
		}
	}
}

/* ---- receiving ---- */

static bool pt_gossip_ok(const PartisanPeer__Gossip *g, const char **why)
{
	size_t ol;

	if (g->topic == NULL || g->origin == NULL || !pt_id_ok(&g->id)) {
		*why = "gossip: bad id";
		return false;
	}
	ol = strlen(g->origin);
	if (g->payload.len && g->payload.data == NULL) {
		*why = "gossip: bad payload";
		return false;
	}
	if (ol != g->id.len - PT_ID_HEAD || memcmp(g->id.data + PT_ID_HEAD, g->origin, ol) != 0) {
		*why = "gossip: id does not name its origin";
		return false;
	}
	return true;
}

static void pt_on_duplicate(struct plumtree *pt, const char *from, bool catch_up,
                            struct actions *out)
{
	pt->stats.duplicates++;
	if (catch_up)
		return;
	/* The sender has us in its tree: a redundant link, prune it both ways. */
	pt_set_eager(pt, from, false);
	pt_send_prune(pt, from, out);
}

static int pt_on_gossip(struct plumtree *pt, const char *from, const PartisanPeer__Gossip *g,
                        struct actions *out, plumtree_deliver_fn deliver, void *arg,
                        const char **why)
{
	uint64_t key;
	struct pt_missing *ms;
	struct pt_msg *m;

	if (!pt_gossip_ok(g, why))
		return -1;
	key = pt_hash(g->id.data, g->id.len);
	if (pt_seen_id(pt, key, g->id.data, g->id.len)) {
		pt_on_duplicate(pt, from, g->catch_up, out);
		return 0;
	}
	ms = pt_missing_find(pt, key);
	if (ms && ms->tries)
		pt->stats.delivered_after_graft++;
	if (ms)
		pt_missing_drop(pt, (size_t)(ms - pt->missing));
	pt->stats.delivered_by_exchange += g->catch_up;
	if (!g->catch_up)
		pt_set_eager(pt, from, true);
	m = pt_msg_new(g->id.data, g->id.len, g->topic, g->origin, g->payload.data, g->payload.len,
	               g->round);
	pt_accept(pt, m, from, g->catch_up, out, deliver, arg);
	return 0;
}

static bool pt_ids_ok(const ProtobufCBinaryData *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!pt_id_ok(&ids[i]))
			return false;
	return true;
}

/* from has these ids: stop announcing them to it. */
static void pt_settle(struct plumtree *pt, const char *from, const ProtobufCBinaryData *ids,
                      size_t n)
{
	struct pt_peer *p = pt_peer(pt, from);
	struct pt_map acked = {0};
	size_t keep = 0;

	if (p == NULL || p->nlazy == 0)
		return;
	for (size_t i = 0; i < n; i++)
		pt_map_put(&acked, pt_hash(ids[i].data, ids[i].len), 1);
	for (size_t i = 0; i < p->nlazy; i++) {
		const struct pt_msg *m = pt_stored(pt, p->lazy[i].seq);

		if (m && pt_map_get(&acked, m->key) == NULL)
			p->lazy[keep++] = p->lazy[i];
	}
	p->nlazy = keep;
	pt_map_free(&acked);
}

/* Time the ids we lack for a graft; acknowledge those we have. */
static int pt_on_ihave(struct plumtree *pt, const char *from, const PartisanPeer__IHave *ih,
                       const struct core_env *env, struct actions *out, const char **why)
{
	struct pt_ihave ack;

	if (!pt_ids_ok(ih->ids, ih->n_ids) || (ih->n_topics && ih->n_topics != ih->n_ids)) {
		*why = "ihave: bad ids";
		return -1;
	}
	if (ih->ack) {
		pt_settle(pt, from, ih->ids, ih->n_ids);
		return 0;
	}
	pt_ihave_init(&ack, from, true);
	for (size_t i = 0; i < ih->n_ids; i++) {
		uint64_t key = pt_hash(ih->ids[i].data, ih->ids[i].len);

		if (pt_seen_id(pt, key, ih->ids[i].data, ih->ids[i].len))
			pt_ihave_add(pt, &ack, ih->ids[i].data, ih->ids[i].len, NULL, out);
		else
			pt_missing_note(pt, key, &ih->ids[i], from, env->now_ms);
	}
	pt_ihave_send(pt, &ack, out);
	return 0;
}

static int pt_on_graft(struct plumtree *pt, const char *from, const PartisanPeer__Graft *gr,
                       struct actions *out, const char **why)
{
	const struct pt_msg *m;

	if (!pt_id_ok(&gr->id)) {
		*why = "graft: bad id";
		return -1;
	}
	pt_set_eager(pt, from, true);
	pt_settle(pt, from, &gr->id, 1);
	m = pt_lookup(pt, pt_hash(gr->id.data, gr->id.len));
	if (m)
		pt_send_gossip(pt, m, from, false, out);
	return 0;
}

/* Push to `from` what we store and its Exchange did not list; true when
 * the list names ids we have not seen. */
static bool pt_exchange_diff(struct plumtree *pt, const char *from,
                             const PartisanPeer__Exchange *ex, struct actions *out)
{
	struct pt_map theirs = {0};
	bool lacking = false;
	uint64_t first = pt->seq > pt->max_store ? pt->seq - pt->max_store : 0;

	for (size_t i = 0; i < ex->n_ids; i++) {
		uint64_t key = pt_hash(ex->ids[i].data, ex->ids[i].len);

		pt_map_put(&theirs, key, 1);
		lacking = lacking || !pt_seen_id(pt, key, ex->ids[i].data, ex->ids[i].len);
	}
	for (uint64_t s = first; s < pt->seq; s++) {
		const struct pt_msg *m = pt_stored(pt, s);

		if (pt_map_get(&theirs, m->key) == NULL)
			pt_send_gossip(pt, m, from, true, out);
	}
	pt_map_free(&theirs);
	return lacking;
}

static int pt_on_exchange(struct plumtree *pt, const char *from, const PartisanPeer__Exchange *ex,
                          struct actions *out, const char **why)
{
	if (!pt_ids_ok(ex->ids, ex->n_ids)) {
		*why = "exchange: bad ids";
		return -1;
	}
	if (pt_exchange_diff(pt, from, ex, out) && !ex->reply)
		pt_send_exchange(pt, from, true, out);
	return 0;
}

static int pt_dispatch(struct plumtree *pt, const char *from, const PartisanPeer__PeerMsg *msg,
                       const struct core_env *env, struct actions *out, plumtree_deliver_fn deliver,
                       void *arg, const char **why)
{
	switch (msg->body_case) {
	case PARTISAN_PEER__PEER_MSG__BODY_GOSSIP:
		return pt_on_gossip(pt, from, msg->gossip, out, deliver, arg, why);
	case PARTISAN_PEER__PEER_MSG__BODY_IHAVE:
		return pt_on_ihave(pt, from, msg->ihave, env, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_GRAFT:
		return pt_on_graft(pt, from, msg->graft, out, why);
	case PARTISAN_PEER__PEER_MSG__BODY_PRUNE:
		pt_set_eager(pt, from, false);
		return 0;
	case PARTISAN_PEER__PEER_MSG__BODY_EXCHANGE:
		return pt_on_exchange(pt, from, msg->exchange, out, why);
	default:
		*why = "not a plumtree message";
		return -1;
	}
}

static int pt_kind_of(PartisanPeer__PeerMsg__BodyCase c)
{
	switch (c) {
	case PARTISAN_PEER__PEER_MSG__BODY_GOSSIP:
		return PLUMTREE_GOSSIP;
	case PARTISAN_PEER__PEER_MSG__BODY_IHAVE:
		return PLUMTREE_IHAVE;
	case PARTISAN_PEER__PEER_MSG__BODY_GRAFT:
		return PLUMTREE_GRAFT;
	case PARTISAN_PEER__PEER_MSG__BODY_PRUNE:
		return PLUMTREE_PRUNE;
	case PARTISAN_PEER__PEER_MSG__BODY_EXCHANGE:
		return PLUMTREE_EXCHANGE;
	default:
		return -1;
	}
}

int plumtree_receive(struct plumtree *pt, const char *from, const PartisanPeer__PeerMsg *msg,
                     const struct core_env *env, struct actions *out, plumtree_deliver_fn deliver,
                     void *arg, const char **why)
{
	const char *ignored;
	int kind = pt_kind_of(msg->body_case);

	if (why == NULL)
		why = &ignored;
	if (kind < 0 || msg->gossip == NULL || from == NULL) {
		*why = "not a plumtree message";
		pt->stats.refused++;
		return -1;
	}
	if (pt_dispatch(pt, from, msg, env, out, deliver, arg, why) < 0) {
		pt->stats.refused++;
		return -1;
	}
	pt->stats.received[kind]++;
	return 0;
}

/* ---- ticks ---- */

/* Announce to p what it has not acknowledged; forget what left the store
 * or was announced PT_IHAVE_TRIES times (the exchange covers the rest). */
static void pt_flush_peer(struct plumtree *pt, struct pt_peer *p, struct actions *out)
{
	struct pt_ihave b;
	size_t keep = 0;

	pt_ihave_init(&b, p->name, false);
	for (size_t i = 0; i < p->nlazy; i++) {
		struct pt_lazy e = p->lazy[i];
		struct pt_msg *m = pt_stored(pt, e.seq);

		if (m == NULL || e.sent >= PT_IHAVE_TRIES)
			continue;
		pt_ihave_add(pt, &b, m->id, m->idlen, m->topic, out);
		e.sent++;
		p->lazy[keep++] = e;
	}
	pt_ihave_send(pt, &b, out);
	p->nlazy = keep;
}

static void pt_exchange_start(struct plumtree *pt, const struct core_env *env, struct actions *out)
{
	if (pt->npeers)
		pt_send_exchange(pt, pt->peers[rng_below(env->rng, pt->npeers)]->name, false, out);
}

void plumtree_tick(struct plumtree *pt, const struct core_env *env, struct actions *out)
{
	uint64_t now = env->now_ms;

	if (!pt->started) {
		pt->started = true;
		pt->next_lazy = now + pt->lazy_ms;
		/* Spread the nodes' exchanges over the period. */
		pt->next_exchange = now + 1 + rng_below(env->rng, pt->exchange_ms);
	}
	if (now >= pt->next_lazy) {
		for (size_t i = 0; i < pt->npeers; i++)
			pt_flush_peer(pt, pt->peers[i], out);
		pt->next_lazy = now + pt->lazy_ms;
	}
	pt_graft_timers(pt, env, out);
	if (now >= pt->next_exchange) {
		pt_exchange_start(pt, env, out);
		pt->next_exchange = now + pt->exchange_ms;
	}
}

uint64_t plumtree_next_deadline(const struct plumtree *pt)
{
	uint64_t t;

	if (!pt->started)
		return 0;
	t = pt->next_lazy < pt->next_exchange ? pt->next_lazy : pt->next_exchange;
	for (size_t i = 0; i < pt->nmissing; i++)
		if (pt->missing[i].deadline < t)
			t = pt->missing[i].deadline;
	return t;
}

/* ---- the API ---- */

struct plumtree *plumtree_create(const char *self, uint64_t incarnation, unsigned lazy_tick_ms,
                                 unsigned exchange_tick_ms, size_t max_store)
{
	struct plumtree *pt;

	if (self == NULL || self[0] == '\0' || strlen(self) > PT_ORIGIN_MAX)
		return NULL;
	pt = xcalloc(1, sizeof(*pt));
	pt->self = xstrdup(self);
	pt->incarnation = incarnation;
	pt->lazy_ms = lazy_tick_ms ? lazy_tick_ms : 1;
	pt->exchange_ms = exchange_tick_ms ? exchange_tick_ms : 1;
	pt->max_store = max_store ? max_store : 1;
	pt->seen_cap = pt->max_store * PT_SEEN_FACTOR;
	strmap_init(&pt->by_name);
	return pt;
}

void plumtree_destroy(struct plumtree *pt)
{
	if (pt == NULL)
		return;
	while (pt->nmissing)
		pt_missing_drop(pt, pt->nmissing - 1);
	for (size_t i = 0; i < pt->npeers; i++)
		pt_peer_free(pt->peers[i]);
	for (size_t i = 0; i < pt->store_size; i++)
		free(pt->store[i]);
	strmap_free(&pt->by_name);
	pt_map_free(&pt->known);
	pt_map_free(&pt->floors);
	pt_map_free(&pt->missing_at);
	free(pt->missing);
	free(pt->peers);
	free(pt->store);
	free(pt->seen);
	free(pt->self);
	free(pt);
}

void plumtree_neighbor_up(struct plumtree *pt, const char *node)
{
	struct pt_peer *p;

	if (strcmp(node, pt->self) == 0 || pt_peer(pt, node))
		return;
	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(node);
	p->eager = true;
	if (pt->npeers == pt->cappeers) {
		pt->cappeers = pt->cappeers ? pt->cappeers * 2 : 8;
		pt->peers = xrealloc(pt->peers, pt->cappeers * sizeof(*pt->peers));
	}
	p->idx = pt->npeers;
	pt->peers[pt->npeers++] = p;
	strmap_put(&pt->by_name, node, p);
}

void plumtree_neighbor_down(struct plumtree *pt, const char *node)
{
	struct pt_peer *p = strmap_del(&pt->by_name, node);

	if (p == NULL)
		return;
	pt->peers[p->idx] = pt->peers[--pt->npeers];
	pt->peers[p->idx]->idx = p->idx;
	pt_peer_free(p);
	pt_missing_forget_node(pt, node);
}

void plumtree_broadcast(struct plumtree *pt, const char *topic, const uint8_t *payload, size_t len,
                        const struct core_env *env, struct actions *out,
                        plumtree_deliver_fn deliver, void *arg)
{
	uint8_t id[PT_ID_HEAD + PT_ORIGIN_MAX];
	size_t idlen = pt_make_id(pt, id);

	(void)env;
	pt->counter++;
	pt_accept(pt, pt_msg_new(id, idlen, topic, pt->self, payload, len, 0), NULL, false, out,
	          deliver, arg);
}

const struct plumtree_stats *plumtree_stats(const struct plumtree *pt)
{
	return &pt->stats;
}

size_t plumtree_memory(const struct plumtree *pt)
{
	size_t n = sizeof(*pt) + strlen(pt->self) + 1 + pt->store_bytes;

	n += pt->seen_size * sizeof(*pt->seen) + pt->store_size * sizeof(struct pt_msg *);
	n += (pt->known.cap + pt->floors.cap + pt->missing_at.cap) * sizeof(struct pt_slot);
	n += pt->by_name.cap * sizeof(struct strmap_slot) + pt->cappeers * sizeof(*pt->peers);
	for (size_t i = 0; i < pt->npeers; i++)
		n += sizeof(struct pt_peer) + 2 * (strlen(pt->peers[i]->name) + 1) +
		     pt->peers[i]->caplazy * sizeof(struct pt_lazy);
	n += pt->capmissing * sizeof(struct pt_missing);
	for (size_t i = 0; i < pt->nmissing; i++)
		n += pt->missing[i].idlen + pt->missing[i].nann * 16;
	return n;
}

size_t plumtree_neighbors(const struct plumtree *pt)
{
	return pt->npeers;
}

size_t plumtree_eager(const struct plumtree *pt)
{
	size_t n = 0;

	for (size_t i = 0; i < pt->npeers; i++)
		n += pt->peers[i]->eager;
	return n;
}

bool plumtree_is_eager(const struct plumtree *pt, const char *node)
{
	const struct pt_peer *p = pt_peer(pt, node);

	return p && p->eager;
}
