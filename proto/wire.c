/* wire.c: frame headers and reference URIs. */
#include <stdio.h>
#include <string.h>

#include "wire.h"

void frame_put_header(uint8_t hdr[FRAME_HEADER], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

int frame_peek(const uint8_t *buf, size_t avail, uint64_t max, uint32_t *len)
{
	if (avail < FRAME_HEADER)
		return 0;
	*len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	return *len > max ? -1 : 1;
}

static const char *const ref_kinds[] = {[REF_PID] = "pid", [REF_NAME] = "name", [REF_REF] = "ref"};

static int ref_node_ok(const char *node, size_t n)
{
	const char *at = memchr(node, '@', n);

	return n > 0 && n < REF_NODE_MAX && at != NULL && at != node && at != node + n - 1;
}

int ref_parse(const char *s, struct ref *out)
{
	const char *p, *colon;
	size_t n;
	int k;

	if (strncmp(s, "partisan:", 9) != 0)
		return -1;
	p = s + 9;
	for (k = 0; k < 3; k++) {
		n = strlen(ref_kinds[k]);
		if (strncmp(p, ref_kinds[k], n) == 0 && p[n] == ':')
			break;
	}
	if (k == 3)
		return -1;
	p += strlen(ref_kinds[k]) + 1;
	/* The node is NAME@HOST and may itself hold ':' only in an IPv6 host,
	 * so the id is what follows the last ':'. */
	colon = strrchr(p, ':');
	if (colon == NULL || !ref_node_ok(p, (size_t)(colon - p)))
		return -1;
	n = strlen(colon + 1);
	if (n == 0 || n >= REF_ID_MAX)
		return -1;
	if (k != REF_NAME)
		for (const char *d = colon + 1; *d; d++)
			if (*d < '0' || *d > '9')
				return -1;
	out->kind = (enum ref_kind)k;
	memcpy(out->node, p, (size_t)(colon - p));
	out->node[colon - p] = '\0';
	memcpy(out->id, colon + 1, n + 1);
	return 0;
}

int ref_format(const struct ref *r, char *buf, size_t n)
{
	return ref_make(r->kind, r->node, r->id, buf, n);
}

/* "partisan:KIND:NODE:ID", assembled by hand: this runs for every message
 * sent by name, and snprintf's format parsing cost more than the rest. */
int ref_make(enum ref_kind kind, const char *node, const char *id, char *buf, size_t n)
{
	const char *part[] = {"partisan:", ref_kinds[kind], ":", node, ":", id};
	size_t len = 0;

	for (size_t i = 0; i < sizeof(part) / sizeof(part[0]); i++) {
		size_t k = strlen(part[i]);

		if (len + k >= n)
			return -1;
		memcpy(buf + len, part[i], k);
		len += k;
	}
	buf[len] = '\0';
	return len > INT32_MAX ? -1 : (int)len;
}
