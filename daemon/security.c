/* security.c: protected mode, the cluster secret, certificates (see
 * security.h); the TLS itself is tls.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "security.h"
#include "strmap.h"
#include "tls.h"

#define SECURITY_REFUSED_MAX 1024 /* hosts remembered as told of */

enum sec_mode { SEC_PROTECTED, SEC_INSECURE, SEC_SECRET, SEC_CERTS, SEC_BOTH };

struct security {
	enum sec_mode mode;
	struct secrets secrets;
	struct tls *tls;
	struct strmap refused; /* hosts refused in protected mode, logged once */
};

static enum sec_mode mode_of(const struct config *c)
{
	if (c->tls.enabled)
		return c->secret_file ? SEC_BOTH : SEC_CERTS;
	if (c->secret_file)
		return SEC_SECRET;
	return c->insecure ? SEC_INSECURE : SEC_PROTECTED;
}

/* Read c's files into secrets and a TLS configuration. */
static int load(struct security *s, const struct config *c, char *err, size_t errlen)
{
	struct secrets fresh;
	struct tls_params p = {0};
	enum sec_mode m = mode_of(c);

	memset(&fresh, 0, sizeof(fresh));
	if (c->secret_file && secrets_read(c->secret_file, &fresh, err, errlen) < 0)
		return -1;
	if (m == SEC_SECRET || m == SEC_CERTS || m == SEC_BOTH) {
		if (m != SEC_SECRET) {
			p.cert = c->tls.cert;
			p.key = c->tls.key;
			p.ca = c->tls.ca;
			p.verify_peer = c->tls.verify_peer;
		}
		for (size_t i = 0; i < fresh.n; i++) {
			p.secret[i] = fresh.key[i];
			p.secret_len[i] = fresh.len[i];
		}
		p.nsecrets = fresh.n;
		if (tls_load(s->tls, &p, err, errlen) < 0) {
			mbedtls_platform_zeroize(&fresh, sizeof(fresh));
			return -1;
		}
	}
	s->secrets = fresh;
	mbedtls_platform_zeroize(&fresh, sizeof(fresh));
	return 0;
}

int security_open(struct daemon *d)
{
	struct security *s = xcalloc(1, sizeof(*s));
	char err[512];

	d->sec = s;
	strmap_init(&s->refused);
	s->mode = mode_of(d->cfg);
	d->transport = &transport_tcp;
	if (s->mode >= SEC_SECRET && (s->tls = tls_new()) == NULL) {
		log_error("tls", "cannot seed the random generator");
		return -1;
	}
	if (load(s, d->cfg, err, sizeof(err)) < 0) {
		log_error("main", "%s", err);
		return -1;
	}
	if (s->tls) {
		d->transport = &transport_tls;
		d->transport_ctx = s->tls;
	}
	if (s->mode == SEC_INSECURE)
		log_warnx("main",
		          "cluster.insecure: peer links from anywhere, with no secret and no "
		          "TLS: anyone who reaches the peer port can join and speak as a member");
	return 0;
}

void security_close(struct daemon *d)
{
	struct security *s = d->sec;

	if (s == NULL)
		return;
	tls_free(s->tls);
	strmap_free(&s->refused);
	mbedtls_platform_zeroize(&s->secrets, sizeof(s->secrets));
	free(s);
	d->sec = NULL;
}

int security_reload(struct daemon *d, const struct config *fresh, char *err, size_t errlen)
{
	struct security *s = d->sec;

	if (mode_of(fresh) != s->mode) {
		snprintf(err, errlen, "the link security changes (%s to %s) only at a restart",
		         security_mode(d),
		         mode_of(fresh) == SEC_PROTECTED ? "protected" : "another");
		return -1;
	}
	return load(s, fresh, err, errlen);
}

bool security_admits(struct daemon *d, const char *host, bool loopback)
{
	struct security *s = d->sec;

	if (s->mode != SEC_PROTECTED || loopback)
		return true;
	if (strmap_get(&s->refused, host) == NULL && s->refused.len < SECURITY_REFUSED_MAX) {
		strmap_put(&s->refused, host, (void *)1);
		log_warnx("peer",
		          "%s: refused: protected mode: set cluster.secret_file or tls, or "
		          "cluster.insecure",
		          host);
	}
	return false;
}

const char *security_mode(const struct daemon *d)
{
	static const char *const names[] = {"protected", "insecure", "secret", "certificates",
	                                    "certificates+secret"};

	return names[d->sec->mode];
}

bool security_hello_mac(const struct daemon *d)
{
	return d->sec->mode == SEC_BOTH;
}

const struct secrets *security_secrets(const struct daemon *d)
{
	return &d->sec->secrets;
}
