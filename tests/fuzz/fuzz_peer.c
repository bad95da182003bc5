/* fuzz_peer.c: bytes from a peer, into a real daemon's peer port.
 *
 * Input: the first byte's low bit says whether the harness first sends a
 * valid Hello (so the rest reaches the post-hello messages); the rest is
 * written to the TCP connection as is. Whatever comes, the daemon must
 * close at most that connection, and neither crash nor leak (ASan). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "peer.pb-c.h"
#include "wire.h"

/* A dialer's Hello from node fz@127.0.0.1 on the default channel. */
static void hello(struct fuzz_buf *b)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Hello h = PARTISAN_PEER__HELLO__INIT;
	PartisanCommon__NodeSpec spec = PARTISAN_COMMON__NODE_SPEC__INIT;
	PartisanCommon__Addr addr = PARTISAN_COMMON__ADDR__INIT;
	PartisanCommon__Addr *addrs[1] = {&addr};
	PartisanCommon__ChannelSpec ch = PARTISAN_COMMON__CHANNEL_SPEC__INIT;
	PartisanCommon__ChannelSpec *chs[1] = {&ch};

	addr.ip = "127.0.0.1";
	addr.port = 9; /* nobody listens: the daemon's dial back fails at once */
	ch.name = "default";
	spec.name = "fz@127.0.0.1";
	spec.n_listen_addrs = 1;
	spec.listen_addrs = addrs;
	spec.n_channels = 1;
	spec.channels = chs;
	h.version = PEER_PROTOCOL_VERSION;
	h.cluster = "default";
	h.spec = &spec;
	h.channel = "default";
	h.index = 0;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HELLO;
	m.hello = &h;
	fuzz_frame(b, &m.base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_input(fuzz_connect_peer, hello, data, size);
	return 0;
}

/* ---- seeds: a hello, then one of each kind of post-hello message ---- */

static struct fuzz_buf seed(const PartisanPeer__PeerMsg *m)
{
	struct fuzz_buf b = {malloc(1), 1};

	b.data[0] = 1; /* send a hello first */
	fuzz_frame(&b, &m->base);
	return b;
}

size_t fuzz_seeds(struct fuzz_buf *v, size_t max)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Heartbeat hb = PARTISAN_PEER__HEARTBEAT__INIT;
	PartisanPeer__Digest dg = PARTISAN_PEER__DIGEST__INIT;
	PartisanPeer__Data da = PARTISAN_PEER__DATA__INIT;
	PartisanPeer__Monitor mo = PARTISAN_PEER__MONITOR__INIT;
	PartisanPeer__Down dn = PARTISAN_PEER__DOWN__INIT;
	PartisanPeer__Silent si = PARTISAN_PEER__SILENT__INIT;
	PartisanPeer__Gossip go = PARTISAN_PEER__GOSSIP__INIT;
	PartisanPeer__Membership me = PARTISAN_PEER__MEMBERSHIP__INIT;
	PartisanPeer__Dot dot = PARTISAN_PEER__DOT__INIT;
	PartisanPeer__Dot *dots[1] = {&dot};
	size_t n = 0;

#define SEED(kind, field, value)                                                                   \
	do {                                                                                       \
		if (n < max) {                                                                     \
			m.body_case = kind;                                                        \
			m.field = &value;                                                          \
			v[n++] = seed(&m);                                                         \
		}                                                                                  \
	} while (0)

	hb.has_seq = 1;
	hb.seq = 7;
	SEED(PARTISAN_PEER__PEER_MSG__BODY_HEARTBEAT, heartbeat, hb);
	dg.hash = 0x1234;
	SEED(PARTISAN_PEER__PEER_MSG__BODY_DIGEST, digest, dg);
	da.from = "partisan:pid:fz@127.0.0.1:1";
	da.to = "partisan:name:fuzzed@127.0.0.1:svc";
	da.payload.data = (uint8_t *)"hello";
	da.payload.len = 5;
	da.call_ref = "partisan:ref:fz@127.0.0.1:2";
	SEED(PARTISAN_PEER__PEER_MSG__BODY_DATA, data, da);
	mo.mref = "partisan:ref:fz@127.0.0.1:3";
	mo.watcher = "partisan:pid:fz@127.0.0.1:1";
	mo.target = "partisan:pid:fuzzed@127.0.0.1:1";
	SEED(PARTISAN_PEER__PEER_MSG__BODY_MONITOR, monitor, mo);
	dn.mref = "partisan:ref:fuzzed@127.0.0.1:1";
	dn.target = "partisan:pid:fz@127.0.0.1:1";
	dn.reason = "killed";
	SEED(PARTISAN_PEER__PEER_MSG__BODY_DOWN, down, dn);
	si.node = "other@127.0.0.1";
	SEED(PARTISAN_PEER__PEER_MSG__BODY_SILENT, silent, si);
	go.topic = "news";
	go.id.data = (uint8_t *)"fz@127.0.0.1/1";
	go.id.len = 14;
	go.payload.data = (uint8_t *)"x";
	go.payload.len = 1;
	go.origin = "fz@127.0.0.1";
	SEED(PARTISAN_PEER__PEER_MSG__BODY_GOSSIP, gossip, go);
	dot.actor = "fz@127.0.0.1/1";
	dot.counter = 1;
	me.n_clock = 1;
	me.clock = dots;
	SEED(PARTISAN_PEER__PEER_MSG__BODY_MEMBERSHIP, membership, me);
#undef SEED
	return n;
}
