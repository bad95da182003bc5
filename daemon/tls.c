/* tls.c: the TLS transport (see tls.h).
 *
 * A TLS link is a libevent filter over the socket's bufferevent: the peer
 * layer reads and writes plaintext on the filter as it would on a socket,
 * and mbedTLS reads ciphertext from, and writes it to, the socket
 * bufferevent's buffers (never the socket itself), so nothing here blocks.
 * The handshake runs as bytes arrive: the dialer's ClientHello is queued at
 * dial time, and plaintext written before the handshake ends waits in the
 * filter. Small writes are not encrypted one by one: the filter seals a
 * record once 16 KiB are waiting, or at the end of the loop pass in which
 * they were written (a zero-delay event), and then tries the socket at once,
 * as the plain transport's direct write does.
 *
 * Who the peer is: with certificates, the peer layer asks tls_name_ok
 * whether the certificate names the node the hello claims. The rule: the
 * node name "NAME@HOST" matches when a subjectAltName is a dNSName equal to
 * HOST or to the whole node name, or an iPAddress equal to HOST; a
 * certificate without subjectAltNames matches by its CN the same way. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "keys.h"
#include "log.h"
#include "tls.h"
#include "core.h"

#define TLS_RECORD   16384        /* most plaintext one record carries */
#define TLS_IO_CHUNK (256 * 1024) /* socket reads and the ciphertext queue */

/* ChaCha20-Poly1305 first: mbedTLS 2.28 seals 335 MB/s with it on one core
 * of the bench machine, and 192 MB/s with AES-128-GCM (its GHASH is slow). */
static const int tls_suites_cert[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

/* The only AEAD suite mbedTLS 2.28 has for ECDHE-PSK. */
static const int tls_suites_psk[] = {
    MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

struct tls_conf {
	unsigned refs;
	struct tls *t;
	mbedtls_ssl_config cli, srv;
	mbedtls_x509_crt cert, ca;
	mbedtls_pk_context key;
	bool certs, verify;
	size_t npsk;
	uint8_t psk[TLS_MAX_SECRETS][32];
	char psk_id[TLS_MAX_SECRETS][40];
};

struct tls {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	struct tls_conf *cur;
};

struct tls_conn {
	struct tls_conf *conf;
	mbedtls_ssl_context ssl;
	struct bufferevent *under, *bev;
	struct event *flush_ev;
	struct evbuffer_cb_entry *drain_cb;
	bool handshaken, failed, forcing, seen_byte;
	unsigned char first_byte;
	char addr[64];
	char subject[256];
	char error[256];
};

/* ---- configurations ---- */

static void conf_unref(struct tls_conf *f)
{
	if (f == NULL || --f->refs > 0)
		return;
	mbedtls_ssl_config_free(&f->cli);
	mbedtls_ssl_config_free(&f->srv);
	mbedtls_x509_crt_free(&f->cert);
	mbedtls_x509_crt_free(&f->ca);
	mbedtls_pk_free(&f->key);
	mbedtls_platform_zeroize(f->psk, sizeof(f->psk));
	free(f);
}

/* The pre-shared key of a secret, and an identity that names it without
 * giving it away (so an acceptor holding two secrets knows which one). */
static void psk_derive(const uint8_t *secret, size_t len, uint8_t psk[32], char id[40])
{
	const mbedtls_md_info_t *sha = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	static const char label[] = "partisan peer psk v1";
	uint8_t h[32];

	mbedtls_md_hmac(sha, secret, len, (const unsigned char *)label, sizeof(label) - 1, psk);
	mbedtls_md(sha, psk, 32, h);
	snprintf(id, 40, "partisan-");
	for (size_t i = 0; i < 8; i++)
		snprintf(id + 9 + 2 * i, 3, "%02x", h[i]);
}

static int psk_pick(void *arg, mbedtls_ssl_context *ssl, const unsigned char *id, size_t len)
{
	struct tls_conf *f = arg;

	for (size_t i = 0; i < f->npsk; i++)
		if (len == strlen(f->psk_id[i]) && memcmp(id, f->psk_id[i], len) == 0)
			return mbedtls_ssl_set_hs_psk(ssl, f->psk[i], sizeof(f->psk[i]));
	return -1; /* another cluster secret */
}

static int conf_side(struct tls_conf *f, mbedtls_ssl_config *s, int endpoint)
{
	int r = mbedtls_ssl_config_defaults(s, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
	                                    MBEDTLS_SSL_PRESET_DEFAULT);

	if (r != 0)
		return r;
	mbedtls_ssl_conf_rng(s, mbedtls_ctr_drbg_random, &f->t->drbg);
	mbedtls_ssl_conf_min_version(s, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_renegotiation(s, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	if (!f->certs) {
		mbedtls_ssl_conf_ciphersuites(s, tls_suites_psk);
		mbedtls_ssl_conf_authmode(s, MBEDTLS_SSL_VERIFY_NONE);
		if (endpoint == MBEDTLS_SSL_IS_SERVER) {
			mbedtls_ssl_conf_psk_cb(s, psk_pick, f);
			return 0;
		}
		return mbedtls_ssl_conf_psk(s, f->psk[0], sizeof(f->psk[0]),
		                            (const unsigned char *)f->psk_id[0],
		                            strlen(f->psk_id[0]));
	}
	mbedtls_ssl_conf_ciphersuites(s, tls_suites_cert);
	mbedtls_ssl_conf_authmode(s, f->verify ? MBEDTLS_SSL_VERIFY_REQUIRED
	                                       : MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_ca_chain(s, &f->ca, NULL);
	return mbedtls_ssl_conf_own_cert(s, &f->cert, &f->key);
}

static int conf_files(struct tls_conf *f, const struct tls_params *p, char *err, size_t errlen)
{
	const char *which;
	int r;

	if (keys_check_tls(p->cert, p->key, p->ca, &which, err, errlen) < 0)
		return -1;
	if (p->verify_peer && p->ca == NULL)
		return snprintf(err, errlen, "tls.ca is needed to verify peers"), -1;
	r = mbedtls_x509_crt_parse_file(&f->cert, p->cert);
	if (r == 0)
		r = mbedtls_pk_parse_keyfile(&f->key, p->key, NULL);
	if (r == 0 && p->ca)
		r = mbedtls_x509_crt_parse_file(&f->ca, p->ca);
	if (r != 0)
		return snprintf(err, errlen, "certificate files changed while loading"), -1;
	return 0;
}

int tls_load(struct tls *t, const struct tls_params *p, char *err, size_t errlen)
{
	struct tls_conf *f = xcalloc(1, sizeof(*f));
	int r;

	f->refs = 1;
	f->t = t;
	f->certs = p->cert != NULL;
	f->verify = p->verify_peer;
	mbedtls_ssl_config_init(&f->cli);
	mbedtls_ssl_config_init(&f->srv);
	mbedtls_x509_crt_init(&f->cert);
	mbedtls_x509_crt_init(&f->ca);
	mbedtls_pk_init(&f->key);
	if (f->certs && conf_files(f, p, err, errlen) < 0) {
		conf_unref(f);
		return -1;
	}
	if (!f->certs && p->nsecrets == 0) {
		conf_unref(f);
		return snprintf(err, errlen, "neither certificates nor a cluster secret"), -1;
	}
	for (size_t i = 0; !f->certs && i < p->nsecrets && i < TLS_MAX_SECRETS; i++)
		psk_derive(p->secret[i], p->secret_len[i], f->psk[i], f->psk_id[i]);
	f->npsk = f->certs ? 0 : p->nsecrets;
	if ((r = conf_side(f, &f->cli, MBEDTLS_SSL_IS_CLIENT)) != 0 ||
	    (r = conf_side(f, &f->srv, MBEDTLS_SSL_IS_SERVER)) != 0) {
		char e[160];

		keys_strerror(r, e, sizeof(e));
		snprintf(err, errlen, "cannot set up TLS: %s", e);
		conf_unref(f);
		return -1;
	}
	conf_unref(t->cur);
	t->cur = f;
	return 0;
}

struct tls *tls_new(void)
{
	struct tls *t = xcalloc(1, sizeof(*t));
	static const char pers[] = "partisand";

	mbedtls_entropy_init(&t->entropy);
	mbedtls_ctr_drbg_init(&t->drbg);
	if (mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
	                          (const unsigned char *)pers, sizeof(pers) - 1) != 0) {
		tls_free(t);
		return NULL;
	}
	return t;
}

void tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	conf_unref(t->cur);
	mbedtls_ctr_drbg_free(&t->drbg);
	mbedtls_entropy_free(&t->entropy);
	free(t);
}

/* ---- one connection ---- */

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
	struct tls_conn *c = arg;

	if (evbuffer_add(bufferevent_get_output(c->under), buf, len) < 0)
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	return (int)len;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
	struct tls_conn *c = arg;
	int n = evbuffer_remove(bufferevent_get_input(c->under), buf, len);

	if (n <= 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (!c->seen_byte) {
		c->seen_byte = true;
		c->first_byte = buf[0];
	}
	return n;
}

/* The link is unusable: say why once, and let the peer layer close it. */
static void conn_fail(struct tls_conn *c, int r)
{
	char e[200];

	if (c->failed)
		return;
	c->failed = true;
	if (c->seen_byte && c->first_byte != 0x16 && c->first_byte != 0x15 && !c->handshaken) {
		snprintf(e, sizeof(e), "the peer does not speak TLS (a plain-TCP node?)");
	} else if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		char info[160];

		mbedtls_x509_crt_verify_info(info, sizeof(info), "",
		                             mbedtls_ssl_get_verify_result(&c->ssl));
		info[strcspn(info, "\n")] = '\0';
		snprintf(e, sizeof(e), "peer certificate refused: %s", info);
	} else if (r == MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY) {
		snprintf(e, sizeof(e), "the peer holds another cluster secret");
	} else {
		keys_strerror(r, e, sizeof(e));
	}
	snprintf(c->error, sizeof(c->error), "TLS %s: %s",
	         c->handshaken ? "error" : "handshake failed", e);
	log_warnx("tls", "%s: %s", c->addr, c->error);
	bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
}

static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->under);

	if (c->failed)
		return;
	c->forcing = true;
	bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
	c->forcing = false;
	/* Like the plain transport's direct write: no loop pass between a
	 * lone message and the socket. What the socket refuses stays queued. */
	if (evbuffer_get_length(out) > 0)
		evbuffer_write_atmost(out, transport_fd(c->under), TLS_IO_CHUNK);
}

static void conn_handshaken(struct tls_conn *c)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);

	c->handshaken = true;
	if (peer)
		mbedtls_x509_dn_gets(c->subject, sizeof(c->subject), &peer->subject);
	else if (!c->conf->certs)
		snprintf(c->subject, sizeof(c->subject), "psk");
	log_debug("tls", "%s: %s %s, peer %s", c->addr, mbedtls_ssl_get_version(&c->ssl),
	          mbedtls_ssl_get_ciphersuite(&c->ssl), c->subject[0] ? c->subject : "unverified");
	event_active(c->flush_ev, EV_WRITE, 1); /* what waited for the handshake */
}

/* Move the handshake on. 1: done; 0: waiting for bytes; -1: failed. */
static int conn_handshake(struct tls_conn *c)
{
	int r = mbedtls_ssl_handshake(&c->ssl);

	if (r == 0) {
		conn_handshaken(c);
		return 1;
	}
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return 0;
	conn_fail(c, r);
	return -1;
}

static enum bufferevent_filter_result tls_in(struct evbuffer *src, struct evbuffer *dst,
                                             ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                             void *arg)
{
	struct tls_conn *c = arg;
	size_t got = 0;

	if (c->failed) {
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	if (!c->handshaken && conn_handshake(c) <= 0)
		return c->failed ? BEV_ERROR : BEV_NEED_MORE;
	while (limit < 0 || got < (size_t)limit) {
		struct evbuffer_iovec v;
		int n;

		if (evbuffer_reserve_space(dst, TLS_RECORD, &v, 1) < 1)
			return BEV_ERROR;
		n = mbedtls_ssl_read(&c->ssl, v.iov_base,
		                     v.iov_len < TLS_RECORD ? v.iov_len : TLS_RECORD);
		if (n <= 0) {
			if (n == 0 || n == MBEDTLS_ERR_SSL_WANT_READ ||
			    n == MBEDTLS_ERR_SSL_WANT_WRITE ||
			    n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
				break; /* a close_notify: the EOF that follows closes */
			conn_fail(c, n);
			return BEV_ERROR;
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(dst, &v, 1);
		got += (size_t)n;
	}
	return got ? BEV_OK : BEV_NEED_MORE;
}

static enum bufferevent_filter_result tls_out(struct evbuffer *src, struct evbuffer *dst,
                                              ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                              void *arg)
{
	struct tls_conn *c = arg;
	size_t start = evbuffer_get_length(dst), len;
	bool lazy = mode == BEV_NORMAL && !c->forcing;

	if (c->failed)
		return BEV_ERROR;
	if (!c->handshaken)
		return BEV_NEED_MORE;
	while ((len = evbuffer_get_length(src)) > 0 &&
	       (limit < 0 || evbuffer_get_length(dst) - start < (size_t)limit)) {
		size_t n = len < TLS_RECORD ? len : TLS_RECORD;
		int w;

		if (n < TLS_RECORD && lazy) {
			event_active(c->flush_ev, EV_WRITE, 1); /* seal it at the loop's end */
			break;
		}
		w = mbedtls_ssl_write(&c->ssl, evbuffer_pullup(src, (ev_ssize_t)n), n);
		if (w < 0) {
			if (w == MBEDTLS_ERR_SSL_WANT_WRITE || w == MBEDTLS_ERR_SSL_WANT_READ)
				break;
			conn_fail(c, w);
			return BEV_ERROR;
		}
		evbuffer_drain(src, (size_t)w);
	}
	return evbuffer_get_length(dst) > start ? BEV_OK : BEV_NEED_MORE;
}

static void conn_free(void *arg)
{
	struct tls_conn *c = arg;

	if (c->drain_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->under), c->drain_cb);
	event_free(c->flush_ev);
	mbedtls_ssl_free(&c->ssl);
	conf_unref(c->conf);
	free(c);
}

static void sa_text(const struct sockaddr *sa, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(buf, n, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

/* Wrap under (a socket bufferevent) in TLS; NULL (under freed) on failure. */
static struct tls_conn *conn_new(struct tls *t, struct bufferevent *under, int endpoint,
                                 const struct sockaddr *sa)
{
	struct tls_conn *c = xcalloc(1, sizeof(*c));
	struct tls_conf *f = t->cur;

	c->conf = f;
	f->refs++;
	c->under = under;
	sa_text(sa, c->addr, sizeof(c->addr));
	mbedtls_ssl_init(&c->ssl);
	c->flush_ev = event_new(bufferevent_get_base(under), -1, 0, conn_flush_cb, c);
	if (c->flush_ev == NULL ||
	    mbedtls_ssl_setup(&c->ssl, endpoint == MBEDTLS_SSL_IS_CLIENT ? &f->cli : &f->srv) != 0)
		goto fail;
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	bufferevent_set_max_single_read(under, TLS_IO_CHUNK);
	bufferevent_set_max_single_write(under, TLS_IO_CHUNK);
	bufferevent_setwatermark(under, EV_WRITE, TLS_IO_CHUNK / 2, TLS_IO_CHUNK);
	c->bev =
	    bufferevent_filter_new(under, tls_in, tls_out, BEV_OPT_CLOSE_ON_FREE, conn_free, c);
	if (c->bev == NULL)
		goto fail;
	return c;
fail:
	if (c->flush_ev)
		event_free(c->flush_ev);
	mbedtls_ssl_free(&c->ssl);
	conf_unref(c->conf);
	free(c);
	bufferevent_free(under);
	return NULL;
}

static struct bufferevent *tls_dial(void *ctx, struct event_base *base, const struct sockaddr *sa,
                                    socklen_t len, void **conn)
{
	struct bufferevent *under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct tls_conn *c;

	*conn = NULL;
	if (under == NULL)
		return NULL;
	if (bufferevent_socket_connect(under, (struct sockaddr *)sa, (int)len) < 0) {
		bufferevent_free(under);
		return NULL;
	}
	if ((c = conn_new(ctx, under, MBEDTLS_SSL_IS_CLIENT, sa)) == NULL)
		return NULL;
	conn_handshake(c); /* the ClientHello leaves once connected */
	*conn = c;
	return c->bev;
}

static struct bufferevent *tls_accept(void *ctx, struct event_base *base, int fd,
                                      const struct sockaddr *sa, void **conn)
{
	struct bufferevent *under = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct tls_conn *c;
	int one = 1;

	*conn = NULL;
	if (under == NULL) {
		close(fd);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((c = conn_new(ctx, under, MBEDTLS_SSL_IS_SERVER, sa)) == NULL)
		return NULL;
	*conn = c;
	return c->bev;
}

/* Once the ciphertext queue is empty, the TCP half-close. */
static void conn_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct tls_conn *c = arg;

	if (evbuffer_get_length(buf) > 0)
		return;
	shutdown(transport_fd(c->under), SHUT_WR);
	evbuffer_remove_cb_entry(buf, c->drain_cb);
	c->drain_cb = NULL;
}

static void tls_close_write(struct bufferevent *bev, void *conn)
{
	struct tls_conn *c = conn;
	struct evbuffer *out = bufferevent_get_output(c->under);

	if (c->drain_cb)
		return;
	if (c->handshaken && !c->failed)
		mbedtls_ssl_close_notify(&c->ssl);
	if (evbuffer_get_length(out) == 0) {
		shutdown(transport_fd(c->under), SHUT_WR);
		return;
	}
	c->drain_cb = evbuffer_add_cb(out, conn_drained, c);
}

/* Whether the certificate names node ("NAME@HOST"): see the first comment. */
static bool san_names(const mbedtls_x509_buf *b, const char *node, const char *host)
{
	uint8_t ip[16];
	size_t iplen = 0;

	if (b->tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) /* dNSName */
		return (b->len == strlen(node) &&
		        strncasecmp((const char *)b->p, node, b->len) == 0) ||
		       (b->len == strlen(host) &&
		        strncasecmp((const char *)b->p, host, b->len) == 0);
	if (b->tag != (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)) /* iPAddress */
		return false;
	if (inet_pton(AF_INET, host, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, host, ip) == 1)
		iplen = 16;
	return iplen && b->len == iplen && memcmp(b->p, ip, iplen) == 0;
}

static bool cert_names(const mbedtls_x509_crt *crt, const char *node)
{
	const char *at = strrchr(node, '@');
	char host[256];
	const mbedtls_x509_name *n;

	snprintf(host, sizeof(host), "%s", at ? at + 1 : node);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (crt->subject_alt_names.buf.p != NULL) {
		for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next)
			if (san_names(&s->buf, node, host))
				return true;
		return false;
	}
	for (n = &crt->subject; n; n = n->next) {
		mbedtls_x509_buf cn = n->val;

		cn.tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2; /* compared as a dNSName */
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 && san_names(&cn, node, host))
			return true;
	}
	return false;
}

static int tls_peer_name_ok(void *conn, const char *node, char *why, size_t whylen)
{
	struct tls_conn *c = conn;
	const mbedtls_x509_crt *crt;

	if (!c->conf->certs || !c->conf->verify)
		return 0; /* the secret vouches for the cluster; or nothing is verified */
	crt = mbedtls_ssl_get_peer_cert(&c->ssl);
	if (crt == NULL)
		return snprintf(why, whylen, "no peer certificate"), -1;
	if (cert_names(crt, node))
		return 0;
	snprintf(why, whylen, "its certificate (%s) does not name %s", c->subject, node);
	return -1;
}

static const char *tls_peer_subject(void *conn)
{
	struct tls_conn *c = conn;

	return c->subject[0] ? c->subject : NULL;
}

static const char *tls_error(void *conn)
{
	struct tls_conn *c = conn;

	if (c->error[0] == '\0' && !c->handshaken && !c->seen_byte)
		return "no TLS handshake from the peer (a plain-TCP node?)";
	return c->error[0] ? c->error : NULL;
}

const struct transport_ops transport_tls = {
    .name = "tls",
    .direct_io = false,
    .dial = tls_dial,
    .accept = tls_accept,
    .close_write = tls_close_write,
    .peer_name_ok = tls_peer_name_ok,
    .peer_subject = tls_peer_subject,
    .error = tls_error,
};
