/* keys.h: reading what secures the peer links, before anything uses it:
 * the cluster secret file and the TLS certificate files. --check-config,
 * the start and a reload all read them through here, so they agree. No
 * state; mbedTLS parses. */
#ifndef PARTISAN_KEYS_H
#define PARTISAN_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define SECRET_MAX 1024 /* bytes in one secret */
#define SECRETS    2    /* current, next */

struct secrets {
	size_t n;
	size_t len[SECRETS];
	uint8_t key[SECRETS][SECRET_MAX];
};

/* Read a secret file: one or two lines (current, then next), each the
 * whole line, a trailing newline not part of it. The file must not be
 * open to group or others. 0, or -1 with "FILE: why" in err. */
int secrets_read(const char *path, struct secrets *s, char *err, size_t errlen);

/* Check that cert and key load and belong together, and that ca loads (any
 * may be NULL). 0, or -1 with "FILE: reason" in err and *which set to the
 * key at fault ("cert", "key" or "ca"). */
int keys_check_tls(const char *cert, const char *key, const char *ca, const char **which, char *err,
                   size_t errlen);
/* mbedTLS's text for error r, with its code. */
void keys_strerror(int r, char *buf, size_t n);

#endif
