/* tls.h: the TLS transport (mbedTLS 2.x), behind transport.h.
 *
 * Two ways to authenticate a link, either or both:
 *   - certificates (tls.enabled): mutual TLS 1.2 with ECDHE and AES-GCM or
 *     ChaCha20-Poly1305; the peer's certificate must chain to tls.ca, and the
 *     node name it claims in the hello must be one the certificate names
 *     (tls_name_ok);
 *   - a cluster secret alone: TLS 1.2 with ECDHE-PSK, the pre-shared key
 *     derived from the secret. A secret file may hold two secrets (current,
 *     next): a link is offered the first and accepts either.
 * A configuration is immutable once loaded; a reload makes a new one for the
 * connections opened after it, and each connection keeps the one it began
 * with until it closes. */
#ifndef PARTISAN_TLS_H
#define PARTISAN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define TLS_MAX_SECRETS 2

struct tls_params {
	const char *cert, *key, *ca; /* NULL cert: no certificates (PSK only) */
	bool verify_peer;
	const uint8_t *secret[TLS_MAX_SECRETS];
	size_t secret_len[TLS_MAX_SECRETS];
	size_t nsecrets; /* used for PSK only when there is no cert */
};

struct tls;

/* NULL when mbedTLS cannot seed its generator. */
struct tls *tls_new(void);
void tls_free(struct tls *t);
/* Load p as the configuration for new connections. 0, or -1 with a reason
 * naming the file in err (the previous configuration stays). */
int tls_load(struct tls *t, const struct tls_params *p, char *err, size_t errlen);

extern const struct transport_ops transport_tls;

#endif
