/* xmalloc.c: allocation that aborts on out-of-memory (see xmalloc.h). The
 * one way a core or the shell fails on memory: a message and abort(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fputs("partisand: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL) {
		fputs("partisand: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL) {
		fputs("partisand: out of memory\n", stderr);
		abort();
	}
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}
