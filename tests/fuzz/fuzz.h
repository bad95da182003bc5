/* fuzz.h: what a fuzz target provides, and the in-process daemon the
 * socket-level targets feed.
 *
 * Each target defines LLVMFuzzerTestOneInput (libFuzzer's entry point) and
 * fuzz_seeds(), a few valid inputs to start from. Built with clang's
 * -fsanitize=fuzzer (`make fuzz`) libFuzzer drives it with coverage
 * feedback; built with any compiler and tests/fuzz/driver.c (`make check`,
 * under ASan + UBSan) it replays files and a seeded run of mutations. */
#ifndef PARTISAN_FUZZ_H
#define PARTISAN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_buf {
	uint8_t *data;
	size_t len;
};

/* Fill v (room for max) with seed inputs, malloc'ed; returns how many. */
size_t fuzz_seeds(struct fuzz_buf *v, size_t max);

/* ---- harness.c: one partisand in this process ---- */

/* Open the daemon on first use (IPC socket in a temporary directory, peer
 * listener on a loopback port the kernel picks, log level error). */
struct daemon *fuzz_daemon(void);
/* Connect to its peer port (TCP) or its IPC socket. */
int fuzz_connect_peer(void);
int fuzz_connect_ipc(void);
/* Write all of buf to fd while turning the daemon's loop, then half-close
 * and turn until the daemon closes fd's connection (or stops reading);
 * what the daemon sends back is read and thrown away. */
void fuzz_feed(int fd, const uint8_t *buf, size_t len);
/* One input for a socket target: connect, send hello's bytes first when
 * the input's first byte is odd, then the rest of the input; fuzz_feed it. */
void fuzz_input(int (*connect)(void), void (*hello)(struct fuzz_buf *), const uint8_t *data,
                size_t size);
/* msg packed as one frame (4-byte length, then the message), appended to b. */
struct ProtobufCMessage;
void fuzz_frame(struct fuzz_buf *b, const struct ProtobufCMessage *msg);

#endif
