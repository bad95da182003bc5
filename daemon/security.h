/* security.h: how this node's peer links are protected, in one place.
 *
 *   protected   no secret, no TLS: links only from loopback addresses
 *               (cluster.insecure: true opens the door, with a warning);
 *   secret      cluster.secret_file: every link is TLS with a key derived
 *               from the secret (ECDHE-PSK), so it is encrypted and both
 *               ends proved they hold the secret;
 *   certificates tls.enabled: mutual TLS; a peer's node name must be one
 *               its certificate names. With a secret too, the hello also
 *               proves the secret (an HMAC of the other side's nonce).
 */
#ifndef PARTISAN_SECURITY_H
#define PARTISAN_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

struct config;
struct daemon;

/* Choose and set up d's transport for d->cfg: reads the secret, loads the
 * certificates. 0, or -1 after logging why. */
int security_open(struct daemon *d);
void security_close(struct daemon *d);
/* SIGHUP: read the secret and certificate files of fresh (whose mode must be
 * the running one) for the links opened from now on. 0, or -1 with err
 * (nothing changed). */
int security_reload(struct daemon *d, const struct config *fresh, char *err, size_t errlen);

/* Whether an inbound link from host may proceed to the hello; in protected
 * mode only loopback may, and each other host is told of once (logged). */
bool security_admits(struct daemon *d, const char *host, bool loopback);
/* "protected", "insecure", "secret", "certificates", "certificates+secret". */
const char *security_mode(const struct daemon *d);
/* Whether the hello carries the secret's HMAC (certificates and a secret). */
bool security_hello_mac(const struct daemon *d);
/* The secrets read (none without cluster.secret_file). */
const struct secrets *security_secrets(const struct daemon *d);

#endif
