/* driver.c: runs a fuzz target without libFuzzer, for `make check`.
 *
 *   fuzz_X [--runs N] [--seed S] [--write-seeds DIR] [FILE|DIR...]
 *
 * Replays each FILE (every file of a DIR: a committed corpus), then the target's seeds, then N inputs made by
 * mutating them (bit flips, special bytes, inserts, deletes, repeats,
 * splices, truncation) with a PRNG seeded by S (default: the clock; the
 * seed is printed, and the same seed replays the same run). Built with
 * ASan + UBSan, a crash, leak or undefined behaviour fails the run.
 * --write-seeds writes the seeds as files, a corpus for libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"

#define MAX_SEEDS 64
#define FUZZ_MAX_INPUT 8192
#define POOL      256 /* recent inputs kept to mutate further */

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t below(size_t n)
{
	return n ? (size_t)(next() % n) : 0;
}

static void mutate(struct fuzz_buf *b, const struct fuzz_buf *other)
{
	static const uint8_t special[] = {0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x22, 0x3a};
	size_t ops = 1 + below(4);

	b->data = realloc(b->data, FUZZ_MAX_INPUT);
	for (size_t k = 0; k < ops; k++) {
		size_t at = below(b->len + 1), n;

		switch (below(7)) {
		case 0: /* flip a bit */
			if (b->len)
				b->data[below(b->len)] ^= (uint8_t)(1u << below(8));
			break;
		case 1: /* a special byte */
			if (b->len)
				b->data[below(b->len)] = special[below(sizeof(special))];
			break;
		case 2: /* insert random bytes */
			n = 1 + below(16);
			if (b->len + n > FUZZ_MAX_INPUT)
				break;
			memmove(b->data + at + n, b->data + at, b->len - at);
			for (size_t i = 0; i < n; i++)
				b->data[at + i] = (uint8_t)next();
			b->len += n;
			break;
		case 3: /* delete a range */
			n = below(b->len - (at < b->len ? at : b->len) + 1);
			memmove(b->data + at, b->data + at + n, b->len - at - n);
			b->len -= n;
			break;
		case 4: /* repeat a range */
			if (at >= b->len)
				break;
			n = 1 + below(b->len - at);
			if (b->len + n > FUZZ_MAX_INPUT)
				break;
			memmove(b->data + at + n, b->data + at, b->len - at);
			b->len += n;
			break;
		case 5: /* splice in a piece of another input */
			n = below(other->len + 1);
			if (n == 0 || b->len + n > FUZZ_MAX_INPUT)
				break;
			memmove(b->data + at + n, b->data + at, b->len - at);
			memcpy(b->data + at, other->data + below(other->len - n + 1), n);
			b->len += n;
			break;
		default: /* truncate */
			b->len = at;
		}
	}
}

static int run_file(const char *path);

/* Every file in dir (a committed corpus, tests/fuzz/corpus/TARGET). */
static int run_dir(const char *path, DIR *dir)
{
	struct dirent *e;
	size_t n = 0;
	int rc = 0;

	while ((e = readdir(dir)) != NULL) {
		char file[4096];

		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
		rc |= run_file(file);
		n++;
	}
	closedir(dir);
	printf("%s: %zu corpus inputs replayed\n", path, n);
	return rc;
}

static int run_file(const char *path)
{
	DIR *dir = opendir(path);
	FILE *f;
	uint8_t *buf;
	size_t n;

	if (dir != NULL)
		return run_dir(path, dir);
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		return 1;
	}
	buf = malloc(1 << 20);
	n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	struct fuzz_buf seeds[MAX_SEEDS], pool[POOL] = {{0}};
	const char *write_dir = NULL;
	long runs = 0;
	size_t nseeds;
	uint64_t seed = (uint64_t)time(NULL);
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atol(argv[++i]);
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc)
			write_dir = argv[++i];
		else if (argv[i][0] == '-') {
			fprintf(stderr,
			        "usage: %s [--runs N] [--seed S] [--write-seeds DIR] [FILE|DIR...]\n",
			        argv[0]);
			return 2;
		} else
			rc |= run_file(argv[i]);
	}
	nseeds = fuzz_seeds(seeds, MAX_SEEDS);
	if (write_dir) {
		for (size_t i = 0; i < nseeds; i++) {
			char path[4096];
			FILE *f;

			snprintf(path, sizeof(path), "%s/seed-%02zu", write_dir, i);
			if ((f = fopen(path, "wb")) == NULL) {
				fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
				return 1;
			}
			fwrite(seeds[i].data, 1, seeds[i].len, f);
			fclose(f);
			free(seeds[i].data);
		}
		return 0;
	}
	for (size_t i = 0; i < nseeds; i++)
		LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);
	rng = seed ? seed : 1;
	for (long r = 0; r < runs && nseeds > 0; r++) {
		struct fuzz_buf *slot = &pool[r % POOL];
		/* Start from a seed, or from an earlier mutant (deeper changes). */
		const struct fuzz_buf *from =
		    r >= POOL && below(2) ? &pool[below(POOL)] : &seeds[below(nseeds)];
		struct fuzz_buf b = {malloc(FUZZ_MAX_INPUT), from->len};

		memcpy(b.data, from->data, from->len);
		mutate(&b, &seeds[below(nseeds)]);
		LLVMFuzzerTestOneInput(b.data, b.len);
		free(slot->data);
		*slot = b;
	}
	printf("%s: %zu seeds and %ld mutated inputs, seed %" PRIu64 ": no crash\n", argv[0],
	       nseeds, runs, seed);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].data);
	for (size_t i = 0; i < POOL; i++)
		free(pool[i].data);
	return rc;
}
