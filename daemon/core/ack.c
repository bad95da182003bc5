/* ack.c: acknowledged delivery with retransmission and de-duplication. */
#include <stdlib.h>
#include <string.h>

#include "ack.h"
#include "strmap.h"

#define ACK_GAVEUP 256 /* ids remembered as given up on, per peer */

struct ack_msg {
	uint64_t id;
	uint64_t owner;
	uint8_t *buf; /* the packed PeerMsg */
	size_t len;
	const char *channel;
	uint8_t *key;
	size_t keylen;
	uint64_t due_ms; /* next retransmission */
	struct ack_msg *next;
};

/* Everything about one remote node. */
struct ack_peer {
	char *node;
	bool up;
	uint64_t next_seq; /* last id given to a message for this node */
	struct ack_msg *head, *tail;
	size_t nout;
	/* receiving side: de-duplication state for messages from this node */
	uint64_t epoch;  /* the sender's incarnation we track */
	uint64_t upto;   /* every id <= upto was delivered */
	uint64_t *above; /* delivered ids > upto + 1, sorted */
	size_t nabove, capabove;
	uint64_t *pending; /* ids to acknowledge */
	size_t npending, cappending;
	uint64_t *noproc; /* ids to report undeliverable (no endpoint) */
	size_t nnoproc, capnoproc;
	uint64_t gaveup[ACK_GAVEUP]; /* the last ids given up on, to answer */
	size_t ngaveup;              /* their retransmissions alike */
};

struct ack_core {
	uint64_t epoch;
	unsigned retransmit_ms;
	uint64_t retransmits; /* resent at their interval (not counting reconnects) */
	struct strmap peers;  /* node -> ack_peer */
	size_t outstanding;
	bool unflushed; /* some peer has ids to acknowledge */
};

struct ack_core *ack_create(uint64_t epoch, unsigned retransmit_ms)
{
	struct ack_core *a = xcalloc(1, sizeof(*a));

	a->epoch = epoch;
	a->retransmit_ms = retransmit_ms ? retransmit_ms : 1000;
	strmap_init(&a->peers);
	return a;
}

static void ack_msg_free(struct ack_msg *m)
{
	free(m->buf);
	free(m->key);
	free(m);
}

static void ack_peer_free(struct ack_peer *p)
{
	while (p->head) {
		struct ack_msg *m = p->head;

		p->head = m->next;
		ack_msg_free(m);
	}
	free(p->above);
	free(p->pending);
	free(p->noproc);
	free(p->node);
	free(p);
}

void ack_destroy(struct ack_core *a)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&a->peers, &i, &k, &v);)
		ack_peer_free(v);
	strmap_free(&a->peers);
	free(a);
}

static struct ack_peer *ack_peer(struct ack_core *a, const char *node)
{
	struct ack_peer *p = strmap_get(&a->peers, node);

	if (p == NULL) {
		p = xcalloc(1, sizeof(*p));
		p->node = xstrdup(node);
		strmap_put(&a->peers, node, p);
	}
	return p;
}

static void ack_transmit(const struct ack_peer *p, struct ack_msg *m, struct actions *out)
{
	actions_send_raw(out, p->node, m->channel, m->buf, m->len, m->key, m->keylen);
}

void ack_track(struct ack_core *a, const char *node, PartisanPeer__Data *data, const char *channel,
               const void *key, size_t keylen, uint64_t owner, const struct core_env *env,
               struct actions *out)
{
	struct ack_peer *p = ack_peer(a, node);
	struct ack_msg *m = xcalloc(1, sizeof(*m));
	PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;

	m->id = ++p->next_seq;
	data->has_ack_id = data->has_ack_epoch = 1;
	data->ack_id = m->id;
	data->ack_epoch = a->epoch;
	msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_DATA;
	msg.data = data;
	m->len = partisan_peer__peer_msg__get_packed_size(&msg);
	m->buf = xmalloc(m->len);
	partisan_peer__peer_msg__pack(&msg, m->buf);
	m->owner = owner;
	m->channel = channel;
	if (key && keylen) {
		m->key = memcpy(xmalloc(keylen), key, keylen);
		m->keylen = keylen;
	}
	m->due_ms = env->now_ms + a->retransmit_ms;
	if (p->tail)
		p->tail->next = m;
	else
		p->head = m;
	p->tail = m;
	p->nout++;
	a->outstanding++;
	if (p->up)
		ack_transmit(p, m, out);
}

/* Forget outstanding message id; its owner, or 0 when it was not kept. */
static uint64_t ack_settle(struct ack_core *a, struct ack_peer *p, uint64_t id)
{
	struct ack_msg **pp = &p->head, *prev = NULL, *m;
	uint64_t owner;

	while (*pp && (*pp)->id != id) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if ((m = *pp) == NULL)
		return 0;
	*pp = m->next;
	if (p->tail == m)
		p->tail = prev;
	owner = m->owner ? m->owner : UINT64_MAX;
	ack_msg_free(m);
	p->nout--;
	a->outstanding--;
	return owner;
}

size_t ack_on_ack(struct ack_core *a, const char *node, const PartisanPeer__Ack *ack)
{
	struct ack_peer *p = strmap_get(&a->peers, node);
	size_t settled = 0;

	for (size_t i = 0; p && i < ack->n_ids; i++)
		settled += ack_settle(a, p, ack->ids[i]) != 0;
	return settled;
}

/* Add one message of owner to losses (one entry per owner). */
static size_t ack_loss_add(struct ack_loss **v, size_t n, uint64_t owner)
{
	for (size_t i = 0; i < n; i++)
		if ((*v)[i].owner == owner) {
			(*v)[i].count++;
			return n;
		}
	*v = xrealloc(*v, (n + 1) * sizeof(**v));
	(*v)[n].owner = owner;
	(*v)[n].count = 1;
	return n + 1;
}

size_t ack_on_noproc(struct ack_core *a, const char *node, const PartisanPeer__Ack *ack,
                     struct ack_loss **out)
{
	struct ack_peer *p = strmap_get(&a->peers, node);
	size_t n = 0;

	*out = NULL;
	for (size_t i = 0; p && i < ack->n_noproc; i++) {
		uint64_t owner = ack_settle(a, p, ack->noproc[i]);

		if (owner != 0)
			n = ack_loss_add(out, n, owner == UINT64_MAX ? 0 : owner);
	}
	return n;
}

static bool ack_seen(struct ack_peer *p, uint64_t id)
{
	size_t lo = 0, hi = p->nabove;

	if (id <= p->upto)
		return true;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p->above[mid] == id)
			return true;
		if (p->above[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void ack_mark(struct ack_peer *p, uint64_t id)
{
	size_t i = 0, k = 0;

	if (id == p->upto + 1) {
		p->upto = id;
		while (k < p->nabove && p->above[k] == p->upto + 1)
			p->upto = p->above[k++];
		if (k > 0) {
			memmove(p->above, p->above + k, (p->nabove - k) * sizeof(*p->above));
			p->nabove -= k;
		}
		return;
	}
	if (p->nabove == p->capabove) {
		p->capabove = p->capabove ? p->capabove * 2 : 16;
		p->above = xrealloc(p->above, p->capabove * sizeof(*p->above));
	}
	while (i < p->nabove && p->above[i] < id)
		i++;
	memmove(p->above + i + 1, p->above + i, (p->nabove - i) * sizeof(*p->above));
	p->above[i] = id;
	p->nabove++;
}

static void ack_queue_id(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = id;
}

/* The peer record for data's sender, its numbering brought to data's epoch. */
static struct ack_peer *ack_peer_for(struct ack_core *a, const char *node,
                                     const PartisanPeer__Data *data)
{
	struct ack_peer *p = ack_peer(a, node);
	uint64_t epoch = data->has_ack_epoch ? data->ack_epoch : 0;

	if (epoch > p->epoch) {
		/* The sender restarted: its numbering starts over. */
		p->epoch = epoch;
		p->upto = 0;
		p->nabove = 0;
		p->ngaveup = 0;
	}
	return p;
}

static bool ack_gave_up(const struct ack_peer *p, uint64_t id)
{
	for (size_t i = 0; i < p->ngaveup && i < ACK_GAVEUP; i++)
		if (p->gaveup[i] == id)
			return true;
	return false;
}

bool ack_on_data(struct ack_core *a, const char *node, const PartisanPeer__Data *data)
{
	struct ack_peer *p = ack_peer_for(a, node, data);
	uint64_t epoch = data->has_ack_epoch ? data->ack_epoch : 0;
	bool fresh = epoch == p->epoch && !ack_seen(p, data->ack_id);

	if (fresh)
		ack_mark(p, data->ack_id);
	if (!fresh && ack_gave_up(p, data->ack_id))
		ack_queue_id(&p->noproc, &p->nnoproc, &p->capnoproc, data->ack_id);
	else
		ack_queue_id(&p->pending, &p->npending, &p->cappending, data->ack_id);
	a->unflushed = true;
	return fresh;
}

bool ack_known(struct ack_core *a, const char *node, const PartisanPeer__Data *data)
{
	struct ack_peer *p = ack_peer_for(a, node, data);
	uint64_t epoch = data->has_ack_epoch ? data->ack_epoch : 0;

	return epoch < p->epoch || ack_seen(p, data->ack_id);
}

void ack_give_up(struct ack_core *a, const char *node, const PartisanPeer__Data *data)
{
	struct ack_peer *p = ack_peer_for(a, node, data);

	if (ack_known(a, node, data))
		return;
	ack_mark(p, data->ack_id);
	p->gaveup[p->ngaveup++ % ACK_GAVEUP] = data->ack_id;
	ack_queue_id(&p->noproc, &p->nnoproc, &p->capnoproc, data->ack_id);
	a->unflushed = true;
}

void ack_flush(struct ack_core *a, struct actions *out)
{
	const char *k;
	void *v;

	if (!a->unflushed)
		return; /* every tick: no walk over the peers when idle */
	a->unflushed = false;
	for (size_t i = 0; strmap_next(&a->peers, &i, &k, &v);) {
		struct ack_peer *p = v;
		PartisanPeer__PeerMsg msg = PARTISAN_PEER__PEER_MSG__INIT;
		PartisanPeer__Ack ack = PARTISAN_PEER__ACK__INIT;

		if (p->npending == 0 && p->nnoproc == 0)
			continue;
		ack.n_ids = p->npending;
		ack.ids = p->pending;
		ack.n_noproc = p->nnoproc;
		ack.noproc = p->noproc;
		msg.body_case = PARTISAN_PEER__PEER_MSG__BODY_ACK;
		msg.ack = &ack;
		actions_send(out, p->node, NULL, &msg);
		p->npending = 0;
		p->nnoproc = 0;
	}
}

void ack_tick(struct ack_core *a, const struct core_env *env, struct actions *out)
{
	const char *k;
	void *v;

	ack_flush(a, out);
	if (a->outstanding == 0)
		return;
	for (size_t i = 0; strmap_next(&a->peers, &i, &k, &v);) {
		struct ack_peer *p = v;

		if (!p->up)
			continue;
		for (struct ack_msg *m = p->head; m; m = m->next) {
			if (env->now_ms < m->due_ms)
				continue;
			m->due_ms = env->now_ms + a->retransmit_ms;
			a->retransmits++;
			ack_transmit(p, m, out);
		}
	}
}

uint64_t ack_retransmits(const struct ack_core *a)
{
	return a->retransmits;
}

void ack_node_up(struct ack_core *a, const char *node, const struct core_env *env,
                 struct actions *out)
{
	struct ack_peer *p = ack_peer(a, node);

	p->up = true;
	/* A new connection: what was in flight on the old one may be lost. */
	for (struct ack_msg *m = p->head; m; m = m->next) {
		m->due_ms = env->now_ms + a->retransmit_ms;
		ack_transmit(p, m, out);
	}
}

void ack_node_down(struct ack_core *a, const char *node)
{
	struct ack_peer *p = strmap_get(&a->peers, node);

	if (p)
		p->up = false;
}

size_t ack_node_removed(struct ack_core *a, const char *node, struct ack_loss **out)
{
	struct ack_peer *p = strmap_del(&a->peers, node);
	size_t n = 0;

	*out = NULL;
	if (p == NULL)
		return 0;
	for (struct ack_msg *m = p->head; m; m = m->next)
		n = ack_loss_add(out, n, m->owner);
	a->outstanding -= p->nout;
	ack_peer_free(p);
	return n;
}

size_t ack_outstanding(const struct ack_core *a)
{
	return a->outstanding;
}
