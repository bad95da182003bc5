/* xmalloc.h: allocation helpers for the cores and the shell. Out of memory
 * is the one failure the daemon aborts on (DESIGN: conventions): each
 * prints "partisand: out of memory" and calls abort(). A size of 0 is
 * allocated as 1, so the result is never NULL. */
#ifndef PARTISAN_XMALLOC_H
#define PARTISAN_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
/* A copy of s, owned by the caller. */
char *xstrdup(const char *s);

#endif
