/* fd.c: the failure detector, a pure core (fd.h).
 *
 * A node is up while its link is; this core says when to stop believing
 * that link, without O(N^2) heartbeats:
 * - The watch ring. The up nodes and this one, sorted by name, form a ring,
 *   and a node watches its FD_WATCH neighbours on each side (everyone when
 *   the ring has 2 * FD_WATCH + 1 nodes or fewer). That needs every node
 *   linked to every other (full_mesh); other managers link a bounded set
 *   (hyparview's active view, a client's servers, a static list) and watch
 *   every node they have up. A node newly watched gets a whole timeout
 *   before it counts as silent: it had no reason to send us anything. That
 *   grace is no hearing of it: two watchers' Silent reports still take it
 *   down (a node next to two crashed ones otherwise took two timeouts).
 * - Heartbeat rounds of half the failure timeout (at least 50 ms), begun at
 *   multiples of their length on the monotonic clock, so the daemons of one
 *   host send theirs in the same instant. A watched node to which nothing
 *   of ours went since the round began gets a heartbeat request; traffic is
 *   proof enough of life. A request is answered unless something of ours
 *   already went to the asker this round.
 * - Timeout. Any frame heard from a node is life. A watched node silent for
 *   more than the failure timeout is taken down, and every other up node is
 *   told (Silent) how long it was silent.
 * - Second watcher. One Silent report is not believed (its watcher may be
 *   the slow one); a second from another watcher within the timeout is,
 *   unless we heard from the node ourselves within the timeout: then it may
 *   be the watchers that are slow, and we suspect it and ask it ourselves.
 *   A live node answers, which clears the suspicion; a hung one is timed
 *   out by us too once our own silence reaches the timeout. A hung node is
 *   so down everywhere within about the timeout, though only its ring
 *   neighbours exchanged heartbeats with it. A killed node needs none of
 *   this: its links close.
 * - Unread bytes are life. Bytes from a node waiting unread on its links
 *   mean it spoke and only this process, short of CPU, has not read them:
 *   the shell says so (fd_unread, fd_silent_report's unread) and a timeout
 *   or a Silent report is then not believed.
 * - Forgiveness. After a pause of this process (SIGSTOP, swap) the shell
 *   counts every node as heard from now: the silence was ours.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fd.h"
#include "nodespec.h"
#include "strmap.h"

struct fd_node {
	char *name;
	uint64_t hash;       /* name hashed: tells Silent reporters apart */
	bool up;             /* its link is up (the shell says) */
	bool watched;        /* a ring neighbour: heartbeats and timeout */
	bool ring_mark;      /* fd_ring_update's scratch */
	uint64_t unread_at;  /* when the shell last saw bytes from it waiting unread */
	uint64_t last_rx_ms; /* when a frame from it was last heard */
	uint64_t watch_from; /* when it last became watched: the timeout runs from
	                      * then at the earliest (a grace, not a hearing) */
	uint64_t last_tx_ms; /* when something of ours last went to it */
	uint64_t silent_at;  /* when a watcher last reported it silent */
	uint64_t silent_by;  /* that watcher's name, hashed */
	uint64_t suspect_at; /* two watchers said silent, but we heard it lately */
};

struct fd {
	char *self;
	uint64_t timeout_ms, round_ms;
	bool ring;           /* watch only ring neighbours (full_mesh) */
	struct strmap nodes; /* name -> struct fd_node */
	struct fd_node **watch;
	size_t nwatch, capwatch;
	struct fd_node **due; /* fd_overdue's answer */
	size_t ndue, capdue;
	size_t nsuspect; /* nodes with suspect_at set */
	bool ring_dirty; /* the set of up nodes changed */
	uint64_t round;  /* the heartbeat round last begun */
	struct fd_stats st;
};

/* ---- actions ---- */

void fd_actions_init(struct fd_actions *a)
{
	memset(a, 0, sizeof(*a));
}

void fd_actions_clear(struct fd_actions *a)
{
	a->n = 0;
}

void fd_actions_free(struct fd_actions *a)
{
	free(a->v);
	fd_actions_init(a);
}

static struct fd_action *fd_act(struct fd_actions *out, enum fd_action_kind kind, struct fd_node *n)
{
	struct fd_action *a;

	if (out->n == out->cap) {
		out->cap = out->cap ? 2 * out->cap : 8;
		out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
	}
	a = &out->v[out->n++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->node = n;
	a->name = n->name;
	return a;
}

/* ---- records ---- */

struct fd *fd_create(const char *self, uint64_t timeout_ms, bool ring)
{
	struct fd *fd = xcalloc(1, sizeof(*fd));

	fd->self = xstrdup(self);
	fd->timeout_ms = timeout_ms;
	fd->round_ms = timeout_ms / 2 > 50 ? timeout_ms / 2 : 50;
	fd->ring = ring;
	strmap_init(&fd->nodes);
	return fd;
}

static void fd_node_free(struct fd_node *n)
{
	free(n->name);
	free(n);
}

void fd_destroy(struct fd *fd)
{
	const char *k;
	void *v;

	if (fd == NULL)
		return;
	for (size_t i = 0; strmap_next(&fd->nodes, &i, &k, &v);)
		fd_node_free(v);
	strmap_free(&fd->nodes);
	free(fd->watch);
	free(fd->due);
	free(fd->self);
	free(fd);
}

struct fd_node *fd_find(const struct fd *fd, const char *name)
{
	return strmap_get(&fd->nodes, name);
}

struct fd_node *fd_node(struct fd *fd, const char *name)
{
	struct fd_node *n = fd_find(fd, name);

	if (n)
		return n;
	n = xcalloc(1, sizeof(*n));
	n->name = xstrdup(name);
	n->hash = hash_bytes(HASH_INIT, name, strlen(name));
	strmap_put(&fd->nodes, name, n);
	return n;
}

const char *fd_node_name(const struct fd_node *n)
{
	return n->name;
}

static void fd_unsuspect(struct fd *fd, struct fd_node *n)
{
	if (n->suspect_at) {
		n->suspect_at = 0;
		fd->nsuspect--;
	}
}

void fd_forget(struct fd *fd, struct fd_node *n)
{
	for (size_t i = 0; i < fd->nwatch; i++) {
		if (fd->watch[i] == n) {
			fd->watch[i] = fd->watch[--fd->nwatch];
			fd->ring_dirty = true;
			break;
		}
	}
	fd_unsuspect(fd, n);
	fd->ndue = 0;
	strmap_del(&fd->nodes, n->name);
	fd_node_free(n);
}

/* ---- inputs ---- */

void fd_node_up(struct fd *fd, struct fd_node *n, uint64_t now)
{
	if (n->up)
		return;
	n->up = true;
	fd->ring_dirty = true;
	n->last_rx_ms = now;
}

void fd_node_down(struct fd *fd, struct fd_node *n)
{
	fd->ring_dirty = fd->ring_dirty || n->up;
	n->up = false;
	fd_unsuspect(fd, n);
}

bool fd_is_up(const struct fd_node *n)
{
	return n->up;
}

void fd_heard(struct fd_node *n, uint64_t now)
{
	n->last_rx_ms = now;
}

void fd_sent(struct fd_node *n, uint64_t now)
{
	n->last_tx_ms = now;
}

void fd_unread(struct fd_node *n, uint64_t now)
{
	n->unread_at = now;
}

bool fd_unread_now(const struct fd_node *n, uint64_t now)
{
	return now != 0 && n->unread_at == now;
}

const char *fd_next_up(const struct fd *fd, size_t *it)
{
	const char *k;
	void *v;

	while (strmap_next(&fd->nodes, it, &k, &v))
		if (((struct fd_node *)v)->up)
			return ((struct fd_node *)v)->name;
	return NULL;
}

bool fd_heartbeat_asked(struct fd *fd, struct fd_node *n)
{
	bool reply = n->last_tx_ms < fd->round * fd->round_ms;

	fd->st.replies += reply;
	return reply;
}

void fd_forgive(struct fd *fd, uint64_t now)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&fd->nodes, &i, &k, &v);)
		((struct fd_node *)v)->last_rx_ms = now;
}

/* n is down: say so, and (FD_TIMEOUT, watched) tell the others. */
static void fd_take_down(struct fd *fd, struct fd_node *n, struct fd_action *a,
                         struct fd_actions *out)
{
	bool tell = a->reason == FD_TIMEOUT && n->watched;
	uint64_t silent = a->silent_ms;

	fd_node_down(fd, n);
	if (tell) {
		fd->st.silent_tell++;
		fd_act(out, FD_SILENT_TELL, n)->silent_ms = silent;
	}
}

/* Whether we heard from n (or bytes from it wait unread) within the
 * timeout. */
static bool fd_heard_lately(const struct fd *fd, const struct fd_node *n, bool unread, uint64_t now)
{
	return now < n->last_rx_ms + fd->timeout_ms || unread;
}

static void fd_suspect_it(struct fd *fd, struct fd_node *from, struct fd_node *n, uint64_t now,
                          struct fd_actions *out)
{
	struct fd_action *a;

	if (n->suspect_at)
		return; /* the watchers say it only once */
	fd->st.suspicions++;
	fd->st.heartbeats++;
	a = fd_act(out, FD_SUSPECT, n);
	a->by = from->name;
	a->heard_ago_ms = now - n->last_rx_ms;
	n->suspect_at = now;
	fd->nsuspect++;
}

void fd_silent_report(struct fd *fd, struct fd_node *from, struct fd_node *n, uint64_t silent_ms,
                      bool unread, uint64_t now, struct fd_actions *out)
{
	struct fd_action *a;
	bool second;

	if (n == NULL || n == from || !n->up)
		return;
	second = n->silent_at && now <= n->silent_at + fd->timeout_ms && n->silent_by != from->hash;
	if (!second) {
		n->silent_at = now;
		n->silent_by = from->hash;
		return;
	}
	if (fd_heard_lately(fd, n, unread, now)) {
		fd_suspect_it(fd, from, n, now, out);
		return;
	}
	fd->st.silent++;
	a = fd_act(out, FD_DOWN, n);
	a->reason = FD_SILENT;
	a->by = from->name;
	a->silent_ms = silent_ms;
	a->heard_ago_ms = now - n->last_rx_ms;
	fd_take_down(fd, n, a, out);
}

/* ---- the ring ---- */

static int fd_name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The up nodes' names and self, sorted; *me: self's index. */
static const char **fd_ring_names(struct fd *fd, size_t *len, size_t *me)
{
	const char **names = xcalloc(fd->nodes.len + 1, sizeof(*names)), *k;
	size_t n = 0;
	void *v;

	for (size_t i = 0; strmap_next(&fd->nodes, &i, &k, &v);) {
		struct fd_node *p = v;

		p->ring_mark = false;
		if (p->up)
			names[n++] = p->name;
	}
	names[n++] = fd->self;
	qsort(names, n, sizeof(*names), fd_name_cmp);
	for (*me = 0; *me < n && names[*me] != fd->self;)
		(*me)++;
	*len = n;
	return names;
}

/* Whether ring position j is watched from position me of n. */
static bool fd_ring_watches(const struct fd *fd, size_t j, size_t me, size_t n)
{
	size_t fwd = (j + n - me) % n, back = (me + n - j) % n;

	if (j == me)
		return false;
	return n <= 2 * FD_WATCH + 1 || !fd->ring || fwd <= FD_WATCH || back <= FD_WATCH;
}

static void fd_watch_add(struct fd *fd, struct fd_node *p)
{
	if (fd->nwatch == fd->capwatch) {
		fd->capwatch = fd->capwatch ? 2 * fd->capwatch : 8;
		fd->watch = xrealloc(fd->watch, fd->capwatch * sizeof(*fd->watch));
	}
	fd->watch[fd->nwatch++] = p;
}

/* Mark the nodes to watch: ring neighbours, or (no ring) every up node. */
static void fd_ring_mark(struct fd *fd)
{
	size_t n, me;
	const char **names, *k;
	void *v;

	if (!fd->ring) {
		for (size_t i = 0; strmap_next(&fd->nodes, &i, &k, &v);)
			((struct fd_node *)v)->ring_mark = ((struct fd_node *)v)->up;
		return;
	}
	names = fd_ring_names(fd, &n, &me);
	for (size_t j = 0; j < n; j++)
		if (fd_ring_watches(fd, j, me, n))
			fd_find(fd, names[j])->ring_mark = true;
	free(names);
}

static void fd_ring_update(struct fd *fd, uint64_t now)
{
	const char *k;
	void *v;

	fd->ring_dirty = false;
	fd_ring_mark(fd);
	fd->nwatch = 0;
	for (size_t i = 0; strmap_next(&fd->nodes, &i, &k, &v);) {
		struct fd_node *p = v;

		/* Newly watched: a whole timeout before it counts as silent.
		 * Not heard, though: two watchers saying it is silent are
		 * still believed (fd_heard_lately). */
		if (p->ring_mark && !p->watched)
			p->watch_from = now;
		p->watched = p->ring_mark;
		if (p->watched)
			fd_watch_add(fd, p);
	}
}

/* ---- the tick ---- */

/* Whether n is timed now: up, and watched or suspected (a suspicion ends
 * when it spoke after the watchers gave up on it). */
static bool fd_timed(const struct fd_node *n)
{
	bool suspect = n->suspect_at && n->last_rx_ms <= n->suspect_at;

	return n->up && (n->watched || suspect);
}

static bool fd_silent_for(const struct fd *fd, const struct fd_node *n, uint64_t now)
{
	uint64_t from = n->last_rx_ms > n->watch_from ? n->last_rx_ms : n->watch_from;

	return now > from + fd->timeout_ms;
}

static void fd_due_add(struct fd *fd, struct fd_node *n)
{
	if (fd->ndue == fd->capdue) {
		fd->capdue = fd->capdue ? 2 * fd->capdue : 8;
		fd->due = xrealloc(fd->due, fd->capdue * sizeof(*fd->due));
	}
	fd->due[fd->ndue++] = n;
}

/* Call fn on every node the tick looks at: the watched ones, and every
 * suspected one. */
static void fd_each_timed(struct fd *fd, void (*fn)(struct fd *, struct fd_node *, void *),
                          void *arg)
{
	const char *k;
	void *v;

	for (size_t i = 0; i < fd->nwatch; i++)
		fn(fd, fd->watch[i], arg);
	if (fd->nsuspect == 0)
		return;
	for (size_t i = 0; strmap_next(&fd->nodes, &i, &k, &v);)
		if (!((struct fd_node *)v)->watched && ((struct fd_node *)v)->suspect_at)
			fn(fd, v, arg);
}

static void fd_due_one(struct fd *fd, struct fd_node *n, void *arg)
{
	uint64_t now = *(const uint64_t *)arg;

	if (fd_timed(n) && fd_silent_for(fd, n, now))
		fd_due_add(fd, n);
}

size_t fd_overdue(struct fd *fd, uint64_t now, struct fd_node ***out)
{
	if (fd->ring_dirty)
		fd_ring_update(fd, now);
	fd->ndue = 0;
	fd_each_timed(fd, fd_due_one, &now);
	*out = fd->due;
	return fd->ndue;
}

struct fd_tick_ctx {
	uint64_t now, hb_from; /* hb_from: the round's start on its first tick, else 0 */
	struct fd_actions *out;
};

static void fd_check(struct fd *fd, struct fd_node *n, void *arg)
{
	struct fd_tick_ctx *t = arg;
	struct fd_action *a;

	if (n->suspect_at && n->last_rx_ms > n->suspect_at)
		fd_unsuspect(fd, n); /* it spoke after the watchers gave up on it */
	if (fd_timed(n) && fd_silent_for(fd, n, t->now) && n->unread_at == t->now)
		n->last_rx_ms = t->now;
	if (fd_timed(n) && fd_silent_for(fd, n, t->now)) {
		fd->st.timeouts++;
		a = fd_act(t->out, FD_DOWN, n);
		a->reason = FD_TIMEOUT;
		a->silent_ms = t->now - n->last_rx_ms;
		fd_take_down(fd, n, a, t->out);
		return;
	}
	if (n->up && n->watched && t->hb_from && n->last_tx_ms < t->hb_from) {
		fd->st.heartbeats++;
		fd_act(t->out, FD_HEARTBEAT, n);
	}
}

bool fd_tick(struct fd *fd, uint64_t now, struct fd_actions *out)
{
	struct fd_tick_ctx t = {now, 0, out};
	uint64_t round = now / fd->round_ms;

	if (round != fd->round) {
		fd->round = round;
		t.hb_from = round * fd->round_ms;
	}
	if (fd->ring_dirty)
		fd_ring_update(fd, now);
	fd_each_timed(fd, fd_check, &t);
	return t.hb_from != 0;
}

/* ---- queries ---- */

bool fd_suspect(const struct fd_node *n, uint64_t *since_ms)
{
	if (!n->up || n->suspect_at == 0)
		return false;
	*since_ms = n->suspect_at;
	return true;
}

bool fd_watched(const struct fd_node *n)
{
	return n->watched;
}

size_t fd_nwatched(const struct fd *fd)
{
	return fd->nwatch;
}

uint64_t fd_round_ms(const struct fd *fd)
{
	return fd->round_ms;
}

const struct fd_stats *fd_stats(const struct fd *fd)
{
	return &fd->st;
}
