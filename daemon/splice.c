/* splice.c: see splice.h. The frame is walked in place in the evbuffer
 * (small copies of tags and lengths only); the wire format is protobuf's:
 * a field is a varint tag (number << 3 | wire type) and a value. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "splice.h"
#include "wire.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

#define SPLICE_DEPTH 4 /* deepest path handled */

struct field {
	size_t start, vstart, vend; /* its tag at start, its value [vstart, vend) */
};

/* Up to n bytes of in from off (fewer near the end). */
static size_t peek(struct evbuffer *in, size_t off, uint8_t *buf, size_t n)
{
	struct evbuffer_ptr p;
	ev_ssize_t got;

	if (n == 0 || evbuffer_ptr_set(in, &p, off, EVBUFFER_PTR_SET) < 0)
		return 0;
	got = evbuffer_copyout_from(in, &p, buf, n);
	return got < 0 ? 0 : (size_t)got;
}

/* The varint at off (before end): its size, 0 if malformed. */
static size_t varint_at(struct evbuffer *in, size_t off, size_t end, uint64_t *v)
{
	uint8_t b[10];
	size_t n = peek(in, off, b, end - off < sizeof(b) ? end - off : sizeof(b));

	*v = 0;
	for (size_t i = 0; i < n; i++) {
		*v |= (uint64_t)(b[i] & 0x7f) << (7 * i);
		if (!(b[i] & 0x80))
			return i + 1;
	}
	return 0;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* The next field of the message ending at end, starting at pos: its
 * extent and number; 0 if malformed. */
static int field_at(struct evbuffer *in, size_t pos, size_t end, struct field *f, uint64_t *num,
                    int *wt)
{
	uint64_t tag, v;
	size_t tl = varint_at(in, pos, end, &tag), vl = 0;

	if (tl == 0 || (tag >> 3) == 0)
		return 0;
	*num = tag >> 3;
	*wt = (int)(tag & 7);
	f->start = pos;
	f->vstart = pos + tl;
	switch (*wt) {
	case WT_VARINT:
		if ((vl = varint_at(in, f->vstart, end, &v)) == 0)
			return 0;
		break;
	case WT_I64:
		vl = 8;
		break;
	case WT_I32:
		vl = 4;
		break;
	case WT_LEN:
		if ((vl = varint_at(in, f->vstart, end, &v)) == 0 || v > end - f->vstart - vl)
			return 0;
		f->vstart += vl;
		vl = (size_t)v;
		break;
	default:
		return 0; /* groups: not in our protocols */
	}
	if (vl > end - f->vstart)
		return 0;
	f->vend = f->vstart + vl;
	return 1;
}

/* Occurrences of length-delimited field num in the message [start, end),
 * the last one in *last; -1 if the message is malformed. */
static int find(struct evbuffer *in, size_t start, size_t end, uint64_t num, struct field *last)
{
	int count = 0;

	for (size_t pos = start; pos < end;) {
		struct field f;
		uint64_t n;
		int wt;

		if (!field_at(in, pos, end, &f, &n, &wt))
			return -1;
		if (n == num && wt == WT_LEN) {
			*last = f;
			count++;
		}
		pos = f.vend;
	}
	return count;
}

/* Copy the message [start, end) to dst without any occurrence of field
 * num, then with one empty occurrence of it (a required field stays
 * present). Returns the bytes written. */
static size_t copy_emptied(struct evbuffer *in, size_t start, size_t end, uint64_t num,
                           uint8_t *dst)
{
	size_t n = 0;

	for (size_t pos = start; pos < end;) {
		struct field f;
		uint64_t fn;
		int wt;

		(void)field_at(in, pos, end, &f, &fn, &wt); /* find() vetted it */
		if (!(fn == num && wt == WT_LEN))
			n += peek(in, f.start, dst + n, f.vend - f.start);
		pos = f.vend;
	}
	n += varint_put(dst + n, num << 3 | WT_LEN);
	dst[n++] = 0;
	return n;
}

int splice_split(struct evbuffer *in, size_t len, const uint32_t *path, size_t depth,
                 ProtobufCAllocator *al, uint8_t **rest, size_t *restlen, struct evbuffer *big)
{
	struct field lv[SPLICE_DEPTH];
	size_t start = 0, end = len, cap, n;
	uint8_t *a, *b;

	if (depth == 0 || depth > SPLICE_DEPTH || evbuffer_get_length(in) < len)
		return 0;
	for (size_t k = 0; k < depth; k++) {
		int count = find(in, start, end, path[k], &lv[k]);

		/* A message field twice would be merged by a decoder: leave
		 * such a frame to the decoder. */
		if (count < 1 || (k + 1 < depth && count != 1))
			return 0;
		start = lv[k].vstart;
		end = lv[k].vend;
	}
	cap = len - (lv[depth - 1].vend - lv[depth - 1].vstart) + depth * 16 + 16;
	a = al->alloc(al->allocator_data, cap);
	b = al->alloc(al->allocator_data, cap);
	if (a == NULL || b == NULL)
		return 0;
	/* Innermost out: the message holding the bytes field, emptied... */
	start = depth > 1 ? lv[depth - 2].vstart : 0;
	end = depth > 1 ? lv[depth - 2].vend : len;
	n = copy_emptied(in, start, end, path[depth - 1], a);
	/* ...then each enclosing message around it. */
	for (size_t k = depth - 1; k-- > 0;) {
		size_t m = 0, s = k > 0 ? lv[k - 1].vstart : 0, e = k > 0 ? lv[k - 1].vend : len;
		uint8_t *t;

		m += peek(in, s, b, lv[k].start - s);
		m += varint_put(b + m, (uint64_t)path[k] << 3 | WT_LEN);
		m += varint_put(b + m, n);
		memcpy(b + m, a, n);
		m += n;
		m += peek(in, lv[k].vend, b + m, e - lv[k].vend);
		t = a;
		a = b;
		b = t;
		n = m;
	}
	*rest = a;
	*restlen = n;
	/* The bytes move to big; what was around them is in rest already. */
	evbuffer_drain(in, lv[depth - 1].vstart);
	evbuffer_remove_buffer(in, big, lv[depth - 1].vend - lv[depth - 1].vstart);
	evbuffer_drain(in, len - lv[depth - 1].vend);
	return 1;
}

ProtobufCMessage *splice_unpack(struct evbuffer *in, size_t len,
                                const ProtobufCMessageDescriptor *desc, const uint32_t *path,
                                size_t depth, ProtobufCAllocator *al, struct evbuffer *big,
                                bool *split)
{
	ProtobufCMessage *m;
	uint8_t *rest;
	size_t restlen;

	*split = al && depth > 0 && len >= SPLICE_MIN &&
	         splice_split(in, len, path, depth, al, &rest, &restlen, big);
	if (*split) {
		m = protobuf_c_message_unpack(desc, al, restlen, rest);
		if (m == NULL)
			evbuffer_drain(big, evbuffer_get_length(big));
		return m;
	}
	m = protobuf_c_message_unpack(desc, al, len, evbuffer_pullup(in, (ev_ssize_t)len));
	evbuffer_drain(in, len);
	return m;
}

void splice_frame_add(struct evbuffer *out, const uint32_t *wrap, size_t nwrap,
                      const ProtobufCMessage *inner, uint32_t field, struct evbuffer *big)
{
	size_t plen = evbuffer_get_length(big), ilen = protobuf_c_message_get_packed_size(inner);
	size_t lens[SPLICE_DEPTH + 1], head;
	uint64_t ftag = (uint64_t)field << 3 | WT_LEN;
	struct evbuffer_iovec v;
	uint8_t *p;

	if (nwrap > SPLICE_DEPTH)
		abort(); /* a programming error: the paths are constants */
	lens[nwrap] = ilen + varint_len(ftag) + varint_len(plen) + plen;
	for (size_t k = nwrap; k-- > 0;)
		lens[k] = varint_len((uint64_t)wrap[k] << 3 | WT_LEN) + varint_len(lens[k + 1]) +
		          lens[k + 1];
	head = FRAME_HEADER + lens[0] - plen;
	if (evbuffer_reserve_space(out, (ev_ssize_t)head, &v, 1) < 1)
		abort(); /* out of memory, as xmalloc */
	p = v.iov_base;
	frame_put_header(p, (uint32_t)lens[0]);
	p += FRAME_HEADER;
	for (size_t k = 0; k < nwrap; k++) {
		p += varint_put(p, (uint64_t)wrap[k] << 3 | WT_LEN);
		p += varint_put(p, lens[k + 1]);
	}
	p += protobuf_c_message_pack(inner, p);
	p += varint_put(p, ftag);
	p += varint_put(p, plen);
	v.iov_len = head;
	evbuffer_commit_space(out, &v, 1);
	evbuffer_add_buffer(out, big);
}

void splice_take(struct evbuffer *big, ProtobufCAllocator *al, ProtobufCBinaryData *into)
{
	size_t n = evbuffer_get_length(big);

	into->len = n;
	into->data = n ? al->alloc(al->allocator_data, n) : NULL;
	if (n && into->data == NULL)
		abort(); /* out of memory, as xmalloc */
	evbuffer_remove(big, into->data, n);
}
