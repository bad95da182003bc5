/* test_causal_sim.c: the causal delivery core under a simulated network that
 * reorders. N nodes send labelled messages to random peers at random times;
 * every message takes a random 1..200 ms, so later messages often overtake
 * earlier ones. An independent happened-before tracker (true vector clocks
 * over send and delivery events) checks every delivery: nothing that
 * causally precedes a message and was sent to the same node may be
 * delivered after it, and in the end everything is delivered. Seeded and
 * deterministic: a failure names its seed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "causal.h"

#define N    8
#define MSGS 400

struct sent {
	int from, to;
	int vc[N]; /* true vector clock of the send event */
	bool delivered;
};

struct ev {
	uint64_t at, seq;
	bool is_send; /* a node sends now, else a message arrives */
	int node;     /* sender, or receiver */
	int msg;      /* arriving message */
	uint8_t *buf; /* its packed Data */
	size_t len;
};

struct world {
	struct causal_core *core[N];
	char name[N][32];
	int vc[N][N]; /* true vector clock of each node */
	struct sent m[MSGS];
	int nsent;
	struct ev *q;
	size_t nq, capq;
	uint64_t seq; /* event order among equal times */
	uint64_t now; /* virtual ms */
	struct rng rng;
	char err[256];
	int now_node; /* receiver during causal_receive callbacks */
};

static void push(struct world *w, struct ev e)
{
	size_t i;

	if (w->nq == w->capq) {
		w->capq = w->capq ? w->capq * 2 : 64;
		w->q = realloc(w->q, w->capq * sizeof(*w->q));
	}
	e.seq = w->seq++;
	i = w->nq++;
	while (i > 0) { /* binary heap on (at, seq) */
		size_t p = (i - 1) / 2;

		if (w->q[p].at < e.at || (w->q[p].at == e.at && w->q[p].seq < e.seq))
			break;
		w->q[i] = w->q[p];
		i = p;
	}
	w->q[i] = e;
}

static struct ev pop(struct world *w)
{
	struct ev top = w->q[0], last = w->q[--w->nq];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= w->nq)
			break;
		if (c + 1 < w->nq &&
		    (w->q[c + 1].at < w->q[c].at ||
		     (w->q[c + 1].at == w->q[c].at && w->q[c + 1].seq < w->q[c].seq)))
			c++;
		if (last.at < w->q[c].at || (last.at == w->q[c].at && last.seq < w->q[c].seq))
			break;
		w->q[i] = w->q[c];
		i = c;
	}
	w->q[i] = last;
	return top;
}

static bool vc_before(const int *a, const int *b)
{
	bool strictly = false;

	for (int k = 0; k < N; k++) {
		if (a[k] > b[k])
			return false;
		strictly |= a[k] < b[k];
	}
	return strictly;
}

/* causal_receive's callback: check, then record the delivery event. */
static void on_deliver(void *arg, const char *from, const PartisanPeer__Data *data)
{
	struct world *w = arg;
	int id = atoi((const char *)data->payload.data), j = w->now_node;

	for (int k = 0; k < w->nsent && !w->err[0]; k++)
		if (k != id && w->m[k].to == j && !w->m[k].delivered &&
		    vc_before(w->m[k].vc, w->m[id].vc))
			snprintf(w->err, sizeof(w->err), "message %d delivered at n%d before %d",
			         id, j, k);
	w->m[id].delivered = true;
	for (int k = 0; k < N; k++)
		if (w->vc[j][k] < w->m[id].vc[k])
			w->vc[j][k] = w->m[id].vc[k];
	w->vc[j][j]++;
}

static void do_send(struct world *w, int i)
{
	PartisanPeer__Data d = PARTISAN_PEER__DATA__INIT;
	struct causal_stamp *st;
	char payload[16];
	int to = (int)((i + 1 + rng_below(&w->rng, N - 1)) % N), id = w->nsent++;
	struct ev e = {.is_send = false, .node = to, .msg = id};

	w->vc[i][i]++;
	memcpy(w->m[id].vc, w->vc[i], sizeof(w->m[id].vc));
	w->m[id].from = i;
	w->m[id].to = to;
	snprintf(payload, sizeof(payload), "%d", id);
	d.from = "partisan:pid:x@y:1";
	d.to = "partisan:name:x@y:z";
	d.payload.data = (uint8_t *)payload;
	d.payload.len = strlen(payload) + 1;
	d.causal_label = "L";
	st = causal_stamp(w->core[i], w->name[to], &d);
	e.len = partisan_peer__data__get_packed_size(&d);
	e.buf = malloc(e.len);
	partisan_peer__data__pack(&d, e.buf);
	causal_stamp_release(st);
	e.at = w->now + 1 + rng_below(&w->rng, 200); /* 1..200 ms on the wire */
	push(w, e);
}

static void run_seed(uint64_t seed, char *err, size_t errlen)
{
	struct world *w = calloc(1, sizeof(*w));
	uint64_t t = 0;

	rng_seed(&w->rng, seed);
	for (int i = 0; i < N; i++) {
		snprintf(w->name[i], sizeof(w->name[i]), "n%d@sim", i);
		w->core[i] = causal_create(w->name[i]);
	}
	for (int k = 0; k < MSGS; k++) {
		t += rng_below(&w->rng, 5);
		push(w, (struct ev){.at = t, .is_send = true, .node = (int)rng_below(&w->rng, N)});
	}
	while (w->nq > 0 && !w->err[0]) {
		struct ev e = pop(w);

		w->now = e.at;
		if (e.is_send) {
			do_send(w, e.node);
			continue;
		}
		PartisanPeer__Data *d = partisan_peer__data__unpack(NULL, e.len, e.buf);

		w->now_node = e.node;
		causal_receive(w->core[e.node], w->name[w->m[e.msg].from], d, on_deliver, w);
		partisan_peer__data__free_unpacked(d, NULL);
		free(e.buf);
	}
	for (int k = 0; k < w->nsent && !w->err[0]; k++)
		if (!w->m[k].delivered)
			snprintf(w->err, sizeof(w->err), "message %d never delivered", k);
	snprintf(err, errlen, "%s", w->err);
	while (w->nq > 0) {
		struct ev e = pop(w);

		free(e.buf);
	}
	for (int i = 0; i < N; i++)
		causal_destroy(w->core[i]);
	free(w->q);
	free(w);
}

START_TEST(test_causal_order_holds_on_a_reordering_network_for_many_seeds)
{
	char err[256];

	for (uint64_t seed = 1; seed <= 40; seed++) {
		run_seed(seed, err, sizeof(err));
		if (err[0])
			ck_abort_msg("seed %llu: %s", (unsigned long long)seed, err);
	}
	printf("causal sim: seeds 1..40, %d nodes, %d messages each: causal order held\n", N, MSGS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("causal_sim");
	TCase *t = tcase_create("causal_sim");
	SRunner *r;
	int failed;

	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_causal_order_holds_on_a_reordering_network_for_many_seeds);
	suite_add_tcase(s, t);
	r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
