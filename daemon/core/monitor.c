/* monitor.c: the monitor tables (see monitor.h). */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "monitor.h"
#include "strmap.h"

struct monitor {
	enum mon_kind kind;
	uint64_t watcher; /* LOCAL, OUT: the watching session */
	uint64_t target;  /* LOCAL, IN: the watched session */
	char *target_ref; /* the ref as the watcher gave it */
	char *node;       /* OUT: the target's node; IN: the watcher's node */
};

/* Sessions that monitor one node. */
struct watchers {
	uint64_t *v;
	size_t n;
};

struct monitors {
	struct strmap byref; /* mref -> struct monitor */
	struct strmap nodes; /* node -> struct watchers */
	size_t nwatches;
};

void mon_notes_init(struct mon_notes *l)
{
	memset(l, 0, sizeof(*l));
}

void mon_notes_clear(struct mon_notes *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].node);
		free(l->v[i].mref);
		free(l->v[i].target);
		free(l->v[i].reason);
	}
	free(l->v);
	mon_notes_init(l);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void note(struct mon_notes *l, enum mon_note_kind kind, uint64_t session, const char *node,
                 const char *mref, const char *target, const char *reason)
{
	struct mon_note *n;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	n = &l->v[l->n++];
	n->kind = kind;
	n->session = session;
	n->node = dup_or_null(node);
	n->mref = dup_or_null(mref);
	n->target = dup_or_null(target);
	n->reason = dup_or_null(reason);
}

struct monitors *monitors_create(void)
{
	struct monitors *t = xcalloc(1, sizeof(*t));

	strmap_init(&t->byref);
	strmap_init(&t->nodes);
	return t;
}

static void monitor_free(struct monitor *m)
{
	free(m->target_ref);
	free(m->node);
	free(m);
}

void monitors_destroy(struct monitors *t)
{
	const char *k;
	void *v;

	if (t == NULL)
		return;
	for (size_t i = 0; strmap_next(&t->byref, &i, &k, &v);)
		monitor_free(v);
	for (size_t i = 0; strmap_next(&t->nodes, &i, &k, &v);) {
		free(((struct watchers *)v)->v);
		free(v);
	}
	strmap_free(&t->byref);
	strmap_free(&t->nodes);
	free(t);
}

static void monitors_put(struct monitors *t, const char *mref, enum mon_kind kind, uint64_t watcher,
                         uint64_t target, const char *target_ref, const char *node)
{
	struct monitor *m = xcalloc(1, sizeof(*m));
	struct monitor *old;

	m->kind = kind;
	m->watcher = watcher;
	m->target = target;
	m->target_ref = xstrdup(target_ref);
	m->node = dup_or_null(node);
	if ((old = strmap_put(&t->byref, mref, m)) != NULL)
		monitor_free(old); /* a reused mref replaces: never two owners */
}

void monitors_add_local(struct monitors *t, const char *mref, uint64_t watcher, uint64_t target,
                        const char *target_ref)
{
	monitors_put(t, mref, MON_LOCAL, watcher, target, target_ref, NULL);
}

void monitors_add_out(struct monitors *t, const char *mref, uint64_t watcher,
                      const char *target_ref, const char *node)
{
	monitors_put(t, mref, MON_OUT, watcher, 0, target_ref, node);
}

void monitors_add_in(struct monitors *t, const char *mref, uint64_t target, const char *target_ref,
                     const char *watcher_node)
{
	monitors_put(t, mref, MON_IN, 0, target, target_ref, watcher_node);
}

static void monitors_drop(struct monitors *t, const char *mref)
{
	monitor_free(strmap_del(&t->byref, mref));
}

bool monitors_demonitor(struct monitors *t, const char *mref, uint64_t watcher,
                        struct mon_notes *out)
{
	struct monitor *m = strmap_get(&t->byref, mref);

	if (m == NULL || m->kind == MON_IN || m->watcher != watcher)
		return false;
	if (m->kind == MON_OUT)
		note(out, MON_CANCEL_NODE, 0, m->node, mref, NULL, NULL);
	monitors_drop(t, mref);
	return true;
}

void monitors_peer_demonitor(struct monitors *t, const char *mref, const char *from)
{
	struct monitor *m = strmap_get(&t->byref, mref);

	if (m && m->kind == MON_IN && strcmp(m->node, from) == 0)
		monitors_drop(t, mref);
}

void monitors_peer_down(struct monitors *t, const char *mref, const char *from, const char *reason,
                        struct mon_notes *out)
{
	struct monitor *m = strmap_get(&t->byref, mref);

	if (m == NULL || m->kind != MON_OUT || strcmp(m->node, from) != 0)
		return;
	note(out, MON_TELL_SESSION, m->watcher, NULL, mref, m->target_ref, reason);
	monitors_drop(t, mref);
}

/* Remove s from every node's watchers. */
static void monitors_unwatch_all(struct monitors *t, uint64_t s)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&t->nodes, &i, &k, &v);)
		monitors_watch_node(t, s, k, false);
}

void monitors_session_gone(struct monitors *t, uint64_t s, const char *reason,
                           struct mon_notes *out)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&t->byref, &i, &k, &v);) {
		struct monitor *m = v;
		bool target = m->kind != MON_OUT && m->target == s;
		bool watcher = m->kind != MON_IN && m->watcher == s;

		if (!target && !watcher)
			continue;
		if (target && m->kind == MON_LOCAL && !watcher)
			note(out, MON_TELL_SESSION, m->watcher, NULL, k, m->target_ref, reason);
		else if (target && m->kind == MON_IN)
			note(out, MON_TELL_NODE, 0, m->node, k, m->target_ref, reason);
		else if (m->kind == MON_OUT)
			note(out, MON_CANCEL_NODE, 0, m->node, k, NULL, NULL);
		monitors_drop(t, k);
	}
	monitors_unwatch_all(t, s);
}

void monitors_node_down(struct monitors *t, const char *node, const char *reason,
                        struct mon_notes *out)
{
	struct watchers *w;
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&t->byref, &i, &k, &v);) {
		struct monitor *m = v;

		if (m->node == NULL || strcmp(m->node, node) != 0)
			continue;
		if (m->kind == MON_OUT)
			note(out, MON_TELL_SESSION, m->watcher, NULL, k, m->target_ref,
			     "noconnection");
		/* MON_IN: the watcher's node is lost to us, and the monitor with
		 * it. The loss may be ours alone (our link to it failed while its
		 * link to us lives): then it still hears us, and must get its
		 * DOWN now, as no other will come. If it is really gone, the
		 * note goes nowhere. */
		else if (m->kind == MON_IN)
			note(out, MON_TELL_NODE, 0, node, k, m->target_ref, "noconnection");
		monitors_drop(t, k);
	}
	if ((w = strmap_del(&t->nodes, node)) != NULL) {
		for (size_t i = 0; i < w->n; i++)
			note(out, MON_NODEDOWN, w->v[i], node, NULL, NULL, reason);
		t->nwatches -= w->n;
		free(w->v);
		free(w);
	}
}

void monitors_watch_node(struct monitors *t, uint64_t s, const char *node, bool flag)
{
	struct watchers *w = strmap_get(&t->nodes, node);
	size_t i = 0;

	while (w && i < w->n && w->v[i] != s)
		i++;
	if (flag && (w == NULL || i == w->n)) {
		if (w == NULL) {
			w = xcalloc(1, sizeof(*w));
			strmap_put(&t->nodes, node, w);
		}
		w->v = xrealloc(w->v, (w->n + 1) * sizeof(*w->v));
		w->v[w->n++] = s;
		t->nwatches++;
	} else if (!flag && w && i < w->n) {
		w->v[i] = w->v[--w->n];
		t->nwatches--;
		if (w->n == 0) {
			strmap_del(&t->nodes, node);
			free(w->v);
			free(w);
		}
	}
}

size_t monitors_count(const struct monitors *t)
{
	return t->byref.len;
}

size_t monitors_node_watches(const struct monitors *t)
{
	return t->nwatches;
}
