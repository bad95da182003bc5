/* test_splice.c: daemon/splice.c splits a big bytes field out of a frame
 * held in many evbuffer chains and puts it back into a new frame; what a
 * decoder reads from the result is what it read before. Frames of another
 * shape are left alone. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "arena.h"
#include "ipc.pb-c.h"
#include "peer.pb-c.h"
#include "splice.h"
#include "wire.h"

#define BIG (200 * 1024 + 7)

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + i / 251);
	return p;
}

/* msg packed into an evbuffer in pieces of `piece` bytes (many chains). */
static struct evbuffer *packed(const ProtobufCMessage *msg, size_t piece, size_t *len)
{
	struct evbuffer *ev = evbuffer_new();
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n);

	protobuf_c_message_pack(msg, buf);
	for (size_t off = 0; off < n; off += piece) {
		struct evbuffer *part = evbuffer_new();

		evbuffer_add(part, buf + off, n - off < piece ? n - off : piece);
		evbuffer_add_buffer(ev, part); /* a chain of its own */
		evbuffer_free(part);
	}
	free(buf);
	*len = n;
	return ev;
}

static size_t send_request(PartisanIpc__Request *rq, PartisanIpc__Send *snd,
                           PartisanIpc__SendOpts *o, uint8_t *payload, size_t n)
{
	rq->id = 7;
	rq->has_quiet = rq->quiet = 1;
	snd->to = "partisan:name:a@127.0.0.1:inbox";
	snd->payload.data = payload;
	snd->payload.len = n;
	o->channel = "bulk";
	snd->opts = o;
	rq->body_case = PARTISAN_IPC__REQUEST__BODY_SEND;
	rq->send = snd;
	return 0;
}

START_TEST(test_send_payload_is_split_out_and_the_rest_decodes)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT, *got;
	PartisanIpc__Send snd = PARTISAN_IPC__SEND__INIT;
	PartisanIpc__SendOpts o = PARTISAN_IPC__SEND_OPTS__INIT;
	uint8_t *p = pattern(BIG), *rest = NULL;
	const uint32_t path[] = {23, 2};
	struct evbuffer *big = evbuffer_new(), *in;
	struct arena a;
	ProtobufCAllocator *al;
	size_t len, restlen;

	arena_init(&a, 4096);
	send_request(&rq, &snd, &o, p, BIG);
	in = packed(&rq.base, 3000, &len);
	evbuffer_add(in, "tail", 4); /* the next frame's bytes stay */
	al = arena_begin(&a);
	ck_assert_int_eq(splice_split(in, len, path, 2, al, &rest, &restlen, big), 1);
	ck_assert_uint_lt(restlen, 200);
	ck_assert_uint_eq(evbuffer_get_length(big), BIG);
	ck_assert_int_eq(memcmp(evbuffer_pullup(big, -1), p, BIG), 0);
	ck_assert_uint_eq(evbuffer_get_length(in), 4);
	got = partisan_ipc__request__unpack(al, restlen, rest);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(got->id, 7);
	ck_assert(got->quiet);
	ck_assert_int_eq(got->body_case, PARTISAN_IPC__REQUEST__BODY_SEND);
	ck_assert_str_eq(got->send->to, snd.to);
	ck_assert_uint_eq(got->send->payload.len, 0);
	ck_assert_str_eq(got->send->opts->channel, "bulk");
	/* What takes the payload back gets it whole. */
	splice_take(big, al, &got->send->payload);
	ck_assert_uint_eq(got->send->payload.len, BIG);
	ck_assert_int_eq(memcmp(got->send->payload.data, p, BIG), 0);
	arena_end(&a, al);
	arena_free(&a);
	evbuffer_free(in);
	evbuffer_free(big);
	free(p);
}
END_TEST

START_TEST(test_spliced_frame_decodes_as_the_plain_one)
{
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	PartisanPeer__PeerMsg *m;
	uint8_t *p = pattern(BIG), hdr[FRAME_HEADER];
	const uint32_t wrap[] = {8};
	struct evbuffer *big = evbuffer_new(), *out = evbuffer_new();
	uint32_t len;

	evbuffer_add(big, p, BIG);
	data.from = "partisan:pid:b@127.0.0.1:1.2";
	data.to = "partisan:name:a@127.0.0.1:inbox";
	data.channel = "bulk";
	data.has_ack_id = 1;
	data.ack_id = 99;
	splice_frame_add(out, wrap, 1, &data.base, 3, big);
	ck_assert_uint_eq(evbuffer_get_length(big), 0);
	evbuffer_remove(out, hdr, sizeof(hdr));
	ck_assert_int_eq(frame_peek(hdr, sizeof(hdr), 1u << 30, &len), 1);
	ck_assert_uint_eq(len, evbuffer_get_length(out));
	m = partisan_peer__peer_msg__unpack(NULL, len, evbuffer_pullup(out, -1));
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->body_case, PARTISAN_PEER__PEER_MSG__BODY_DATA);
	ck_assert_str_eq(m->data->from, data.from);
	ck_assert_str_eq(m->data->to, data.to);
	ck_assert_str_eq(m->data->channel, "bulk");
	ck_assert_uint_eq(m->data->ack_id, 99);
	ck_assert_uint_eq(m->data->payload.len, BIG);
	ck_assert_int_eq(memcmp(m->data->payload.data, p, BIG), 0);
	partisan_peer__peer_msg__free_unpacked(m, NULL);
	evbuffer_free(out);
	evbuffer_free(big);
	free(p);
}
END_TEST

START_TEST(test_spliced_frame_splits_again)
{
	/* A daemon reads back what another wrote: split of the doubled field. */
	PartisanPeer__Data data = PARTISAN_PEER__DATA__INIT;
	PartisanPeer__PeerMsg *m;
	uint8_t *p = pattern(BIG), hdr[FRAME_HEADER], *rest;
	const uint32_t wrap[] = {8}, path[] = {8, 3};
	struct evbuffer *big = evbuffer_new(), *out = evbuffer_new();
	struct arena a;
	ProtobufCAllocator *al;
	size_t restlen;
	uint32_t len;

	arena_init(&a, 4096);
	evbuffer_add(big, p, BIG);
	data.from = "f";
	data.to = "t";
	splice_frame_add(out, wrap, 1, &data.base, 3, big);
	evbuffer_remove(out, hdr, sizeof(hdr));
	ck_assert_int_eq(frame_peek(hdr, sizeof(hdr), 1u << 30, &len), 1);
	al = arena_begin(&a);
	ck_assert_int_eq(splice_split(out, len, path, 2, al, &rest, &restlen, big), 1);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	ck_assert_uint_eq(evbuffer_get_length(big), BIG);
	ck_assert_int_eq(memcmp(evbuffer_pullup(big, -1), p, BIG), 0);
	m = partisan_peer__peer_msg__unpack(al, restlen, rest);
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->data->to, "t");
	ck_assert_uint_eq(m->data->payload.len, 0);
	arena_end(&a, al);
	arena_free(&a);
	evbuffer_free(out);
	evbuffer_free(big);
	free(p);
}
END_TEST

START_TEST(test_other_shapes_are_left_to_the_decoder)
{
	PartisanIpc__Request rq = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Empty e = PARTISAN_IPC__EMPTY__INIT;
	const uint32_t path[] = {23, 2};
	struct evbuffer *big = evbuffer_new(), *in;
	struct arena a;
	ProtobufCAllocator *al;
	uint8_t *rest,
	    bad[] = {0xba, 0x01, 0xff, 0xff, 0x03, 0x0a}; /* field 23, length past the end */
	size_t len, restlen;

	arena_init(&a, 4096);
	al = arena_begin(&a);
	rq.id = 1;
	rq.body_case = PARTISAN_IPC__REQUEST__BODY_STATUS;
	rq.status = &e;
	in = packed(&rq.base, 1000, &len);
	ck_assert_int_eq(splice_split(in, len, path, 2, al, &rest, &restlen, big), 0);
	ck_assert_uint_eq(evbuffer_get_length(in), len);
	evbuffer_drain(in, len);
	evbuffer_add(in, bad, sizeof(bad));
	ck_assert_int_eq(splice_split(in, sizeof(bad), path, 2, al, &rest, &restlen, big), 0);
	ck_assert_uint_eq(evbuffer_get_length(in), sizeof(bad));
	ck_assert_uint_eq(evbuffer_get_length(big), 0);
	arena_end(&a, al);
	arena_free(&a);
	evbuffer_free(in);
	evbuffer_free(big);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("splice");
	TCase *tc = tcase_create("splice");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_send_payload_is_split_out_and_the_rest_decodes);
	tcase_add_test(tc, test_spliced_frame_decodes_as_the_plain_one);
	tcase_add_test(tc, test_spliced_frame_splits_again);
	tcase_add_test(tc, test_other_shapes_are_left_to_the_decoder);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
