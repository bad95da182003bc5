/* splice.h: big payloads through the daemon without copies. A frame whose
 * message carries one large bytes field (a Send's payload, a Data's) is
 * split as it is read: the field's bytes move into an evbuffer of their own
 * (libevent hands the chains over; only the partly used chains at the two
 * ends are copied), the small rest is decoded as usual, and on the way out
 * the bytes are appended to the new frame as the same kind of field.
 * Protobuf lets a later occurrence of a field override an earlier one, so
 * the message is packed with the field empty and the bytes follow it. */
#ifndef PARTISAN_SPLICE_H
#define PARTISAN_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct evbuffer;

/* Frames smaller than this are decoded whole: a copy costs less there. */
#define SPLICE_MIN (32 * 1024)

/* Split the frame body of len bytes at the front of in along path:
 * path[0 .. depth-2] are message fields each present once, path[depth-1]
 * is the bytes field. Returns 1 when the frame has that shape: the frame
 * is consumed from in, *rest (restlen bytes, allocated from al) is the
 * frame with the field empty, and big holds the field's bytes (the last
 * occurrence's, as a decoder takes). Returns 0 when it does not, leaving
 * in untouched: the caller decodes the frame as usual (and a malformed
 * frame fails there). */
int splice_split(struct evbuffer *in, size_t len, const uint32_t *path, size_t depth,
                 ProtobufCAllocator *al, uint8_t **rest, size_t *restlen, struct evbuffer *big);

/* Decode the frame body of len bytes at the front of in (consumed) as a
 * desc message, with al. When path is given (depth > 0), the frame is big
 * enough and has its shape, the bytes field is split out into big
 * (splice_split) and *split is set. NULL: undecodable (big left empty). */
ProtobufCMessage *splice_unpack(struct evbuffer *in, size_t len,
                                const ProtobufCMessageDescriptor *desc, const uint32_t *path,
                                size_t depth, ProtobufCAllocator *al, struct evbuffer *big,
                                bool *split);

/* Append one frame to out: the wrap fields (outermost first), each a
 * message holding only the next, around inner, whose bytes field `field`
 * must be empty in inner; big's bytes follow as that field (moved out of
 * big, not copied). */
void splice_frame_add(struct evbuffer *out, const uint32_t *wrap, size_t nwrap,
                      const ProtobufCMessage *inner, uint32_t field, struct evbuffer *big);

/* Move big's bytes into memory from al, as into's value: for the paths that
 * keep a payload (acknowledged or causal sends, local deliveries). */
void splice_take(struct evbuffer *big, ProtobufCAllocator *al, ProtobufCBinaryData *into);

#endif
