/* metrics.h: the metrics endpoint (SPEC: metrics.listen, IP:PORT): HTTP
 * GET /metrics in the Prometheus text format, names partisan_* in base
 * units; nothing else is served. */
#ifndef PARTISAN_METRICS_H
#define PARTISAN_METRICS_H

#include "daemon.h"

struct evbuffer;

/* Listen on metrics.listen, if set. 0, or -1 after logging why. */
int metrics_start(struct daemon *d);
void metrics_stop(struct daemon *d);
/* The exposition text of every metric, appended to b. */
void metrics_render(struct daemon *d, struct evbuffer *b);

#endif
