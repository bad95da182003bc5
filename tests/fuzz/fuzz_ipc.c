/* fuzz_ipc.c: bytes from a local program, into a real daemon's IPC socket.
 *
 * Input: the first byte's low bit says whether the harness first sends a
 * valid Hello (so the rest reaches the request handlers); the rest is
 * written to the session as is. Whatever comes, the daemon must end at most
 * that session, and neither crash nor leak (ASan). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ipc.pb-c.h"
#include "wire.h"

static void hello(struct fuzz_buf *b)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Hello h = PARTISAN_IPC__HELLO__INIT;

	h.version = IPC_PROTOCOL_VERSION;
	h.client = "fuzz";
	rq.id = 1;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_HELLO;
	rq.hello = &h;
	fuzz_frame(b, &rq.base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_input(fuzz_connect_ipc, hello, data, size);
	return 0;
}

static struct fuzz_buf seed(PartisanIpc__Request *rq)
{
	struct fuzz_buf b = {malloc(1), 1};

	b.data[0] = 1; /* send a hello first */
	rq->id = 2;
	fuzz_frame(&b, &rq->base);
	return b;
}

size_t fuzz_seeds(struct fuzz_buf *v, size_t max)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Name nm = PARTISAN_IPC__NAME__INIT;
	PartisanIpc__Send sd = PARTISAN_IPC__SEND__INIT;
	PartisanIpc__SendOpts so = PARTISAN_IPC__SEND_OPTS__INIT;
	PartisanIpc__Call cl = PARTISAN_IPC__CALL__INIT;
	PartisanIpc__Monitor mo = PARTISAN_IPC__MONITOR__INIT;
	PartisanIpc__MonitorNode mn = PARTISAN_IPC__MONITOR_NODE__INIT;
	PartisanIpc__Join jo = PARTISAN_IPC__JOIN__INIT;
	PartisanIpc__Broadcast bc = PARTISAN_IPC__BROADCAST__INIT;
	PartisanIpc__Empty em = PARTISAN_IPC__EMPTY__INIT;
	PartisanIpc__MembersRequest mr = PARTISAN_IPC__MEMBERS_REQUEST__INIT;
	size_t n = 0;

#define SEED(kind, field, value)                                                                   \
	do {                                                                                       \
		if (n < max) {                                                                     \
			rq.body_case = kind;                                                       \
			rq.field = &value;                                                         \
			v[n++] = seed(&rq);                                                        \
		}                                                                                  \
	} while (0)

	nm.name = "svc";
	SEED(PARTISAN_IPC__REQUEST__BODY_REGISTER, register_, nm);
	sd.to = "partisan:name:fuzzed@127.0.0.1:svc";
	sd.payload.data = (uint8_t *)"hi";
	sd.payload.len = 2;
	so.channel = "default";
	so.causal_label = "l";
	sd.opts = &so;
	SEED(PARTISAN_IPC__REQUEST__BODY_SEND, send, sd);
	cl.to = "partisan:name:other@127.0.0.1:svc";
	cl.payload = sd.payload;
	cl.timeout_ms = 10;
	SEED(PARTISAN_IPC__REQUEST__BODY_CALL, call, cl);
	mo.target = "partisan:pid:fuzzed@127.0.0.1:1";
	SEED(PARTISAN_IPC__REQUEST__BODY_MONITOR, monitor, mo);
	mn.node = "other@127.0.0.1";
	mn.flag = 1;
	SEED(PARTISAN_IPC__REQUEST__BODY_MONITOR_NODE, monitor_node, mn);
	jo.target = "127.0.0.1:9";
	SEED(PARTISAN_IPC__REQUEST__BODY_JOIN, join, jo);
	bc.topic = "news";
	bc.payload = sd.payload;
	SEED(PARTISAN_IPC__REQUEST__BODY_BROADCAST, broadcast, bc);
	SEED(PARTISAN_IPC__REQUEST__BODY_STATUS, status, em);
	SEED(PARTISAN_IPC__REQUEST__BODY_MEMBERS, members, mr);
	SEED(PARTISAN_IPC__REQUEST__BODY_PARTITION_LIST, partition_list, em);
#undef SEED
	return n;
}
