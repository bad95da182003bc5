/* hello.c: the handshake on a peer connection (link.c), and where a peer
 * proves who it is. The acceptor sends a Challenge (a nonce), the dialer
 * answers with a Hello (its spec, channel, incarnation), the acceptor with a
 * HelloAck or a Refuse; each state takes only the message it expects. It
 * owns the checks either side makes of the other: the protocol version and
 * cluster, the cluster secret's HMAC over the nonce (only with certificates
 * and a secret: security_hello_mac), the name a certificate proves
 * (pconn_name_unproven, with tls.c), a name someone else is linked under
 * (pconn_name_taken), a usable advertised address, incarnations (a restart
 * closes the old process's links), the completion of a join-by-address
 * probe, the handshake timeout, and a TLS record where a plain hello
 * belongs. Once the hello completes, the link is open and its node's
 * (peer.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <mbedtls/md.h>

#include "advertise.h"
#include "node.h"
#include "log.h"
#include "peer-int.h"
#include "security.h"
#include "transport.h"
#include "wire.h"

/* ---- the cluster secret ---- */

/* With certificates and a secret, the hello proves the secret too: an HMAC
 * of the other side's nonce under the current secret, or the next one. */
static void hello_mac_with(const uint8_t *key, size_t keylen, const char *tag, const uint8_t *nonce,
                           size_t nlen, const char *name, uint8_t out[32])
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	mbedtls_md_context_t ctx;

	mbedtls_md_init(&ctx);
	mbedtls_md_setup(&ctx, md, 1);
	mbedtls_md_hmac_starts(&ctx, key, keylen);
	mbedtls_md_hmac_update(&ctx, (const unsigned char *)tag, 4);
	mbedtls_md_hmac_update(&ctx, nonce, nlen);
	mbedtls_md_hmac_update(&ctx, (const unsigned char *)name, strlen(name));
	mbedtls_md_hmac_finish(&ctx, out);
	mbedtls_md_free(&ctx);
}

static void hello_mac(struct daemon *d, const char *tag, const uint8_t *nonce, size_t nlen,
                      const char *name, uint8_t out[32])
{
	const struct secrets *s = security_secrets(d);

	hello_mac_with(s->key[0], s->len[0], tag, nonce, nlen, name, out);
}

static bool hello_mac_ok(struct daemon *d, const char *tag, const uint8_t *nonce, size_t nlen,
                         const char *name, const ProtobufCBinaryData *mac)
{
	const struct secrets *s = security_secrets(d);
	bool ok = false;

	if (!security_hello_mac(d))
		return true;
	if (mac == NULL || mac->len != 32)
		return false;
	for (size_t k = 0; k < s->n; k++) {
		uint8_t want[32], diff = 0;

		hello_mac_with(s->key[k], s->len[k], tag, nonce, nlen, name, want);
		for (size_t i = 0; i < 32; i++)
			diff |= want[i] ^ mac->data[i];
		ok = ok || diff == 0;
	}
	return ok;
}

static void hello_fill_nonce(uint8_t *buf, size_t n)
{
	if (getrandom(buf, n, 0) != (ssize_t)n)
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)(daemon_now_ms() >> (i % 8));
}

/* ---- the acceptor's Challenge, the dialer's Hello ---- */

void hello_challenge(struct pconn *c)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Challenge ch = PARTISAN_PEER__CHALLENGE__INIT;

	hello_fill_nonce(c->nonce, PEER_NONCE);
	ch.version = PEER_PROTOCOL_VERSION;
	ch.nonce.data = c->nonce;
	ch.nonce.len = PEER_NONCE;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_CHALLENGE;
	m.challenge = &ch;
	/* Written while still PC_CONNECTING: queued, not sent directly. */
	pconn_write_msg(c, &m);
	pconn_set_state(c, PC_WAIT_HELLO);
}

static int pconn_on_challenge(struct pconn *c, const PartisanPeer__Challenge *ch, const char **why)
{
	struct daemon *d = c->d;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Hello h = PARTISAN_PEER__HELLO__INIT;
	PartisanCommon__NodeSpec spec;
	uint8_t mac[32];

	if (ch->version != PEER_PROTOCOL_VERSION)
		return *why = "peer speaks another protocol version", -1;
	hello_fill_nonce(c->nonce, PEER_NONCE);
	node_spec_to_pb(d->self, &spec);
	h.version = PEER_PROTOCOL_VERSION;
	h.cluster = d->cfg->cluster_name;
	h.spec = &spec;
	h.channel = d->cfg->channels[c->chan].name;
	h.index = c->idx;
	h.has_nonce = 1;
	h.nonce.data = c->nonce;
	h.nonce.len = PEER_NONCE;
	h.has_incarnation = 1;
	h.incarnation = d->incarnation;
	if (security_hello_mac(d)) {
		hello_mac(d, "dial", ch->nonce.data, ch->nonce.len, d->self->name, mac);
		h.has_mac = 1;
		h.mac.data = mac;
		h.mac.len = sizeof(mac);
	}
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HELLO;
	m.hello = &h;
	pconn_write_msg(c, &m);
	node_spec_pb_release(&spec);
	pconn_set_state(c, PC_WAIT_ACK);
	return 0;
}

/* ---- identity ---- */

/* The node behind keep speaks as incarnation inc. A newer one than we knew
 * means it restarted: the links of the old one go now (they lead to a dead
 * process, or to one about to die) and it is dialled afresh at the spec it
 * just gave. An older one is refused. 0, or -1 with *why. */
static int hello_incarnation(struct daemon *d, struct pnode *n, struct pconn *keep, uint64_t inc,
                             const char **why)
{
	struct pnode *kept = keep->node;

	if (inc == 0 || inc == n->incarnation)
		return 0;
	if (inc < n->incarnation)
		return *why = "an older incarnation of that node", -1;
	if (n->incarnation != 0 && (n->up || pnode_has_conns(d, n))) {
		log_notice("peer", "%s: restarted (new incarnation): its old links close", n->name);
		keep->node = NULL; /* spared by pnode_down */
		pnode_down(d, n, "restarted", true);
		keep->node = kept;
		n->backoff_ms = PEER_BACKOFF_MIN_MS;
		n->next_try_ms = 0;
	}
	n->incarnation = inc;
	return 0;
}

/* Why a hello's spec is refused: it gives no address we could dial back. */
static const char *pconn_unusable(struct pconn *c, const struct node_spec *s)
{
	const struct ns_addr *a = &s->addrs[0];

	snprintf(c->refusal, sizeof(c->refusal),
	         "hello: %s advertises no address other nodes can dial (%s%s): set its "
	         "advertise_addrs",
	         s->name, peer_addr_text(a->ip, a->port), s->naddrs > 1 ? ", ..." : "");
	log_warnx("peer", "%s: refused: %s", c->addr, c->refusal);
	return c->refusal;
}

/* With certificates, the name a peer claims must be one its certificate
 * names (tls.c says which do). True, with *why, when it is not. */
static bool pconn_name_unproven(struct pconn *c, const char *name, const char **why)
{
	const struct transport_ops *t = c->d->transport;
	char reason[sizeof(c->refusal) - 16];

	if (t->peer_name_ok == NULL || c->tconn == NULL ||
	    t->peer_name_ok(c->tconn, name, reason, sizeof(reason)) == 0)
		return false;
	snprintf(c->refusal, sizeof(c->refusal), "hello: %s", reason);
	*why = c->refusal;
	return true;
}

/* A hello naming a node that is linked to us from another address, not one
 * it advertises: someone else claims its name (whatever incarnation it
 * says). A node that really moved to another host is let in once its old
 * links are found dead. */
static bool pconn_name_taken(struct pconn *c, const char *name, const char **why)
{
	struct pnode *n = pnode_get(c->d, name, false);
	const struct pconn *o;

	if (n == NULL || !n->up)
		return false;
	for (size_t i = 0; n->spec && i < n->spec->naddrs; i++)
		if (strcmp(n->spec->addrs[i].ip, c->host) == 0)
			return false; /* one of its own addresses (dual stack, say) */
	TAILQ_FOREACH(o, &c->d->conns, entry)
	if (o->node == n && !o->outbound && o->state == PC_OPEN && strcmp(o->host, c->host) != 0) {
		snprintf(c->refusal, sizeof(c->refusal), "hello: %s is linked from %s already",
		         name, o->host);
		log_notice("peer", "%s: refused: %s", c->addr, c->refusal);
		*why = c->refusal;
		return true;
	}
	return false;
}

/* ---- the acceptor: Hello in, HelloAck or Refuse out ---- */

static void pconn_refuse(struct pconn *c, const char *reason)
{
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__Refuse r = PARTISAN_PEER__REFUSE__INIT;

	r.reason = (char *)reason;
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_REFUSE;
	m.refuse = &r;
	pconn_write_msg(c, &m);
}

/* Every check of a Hello, in order. *their gets its spec (the caller's to
 * free, NULL when it did not decode). 0, or -1 with *why: refused. */
static int pconn_hello_check(struct pconn *c, const PartisanPeer__Hello *h,
                             struct node_spec **their, const char **why)
{
	struct daemon *d = c->d;

	*their = NULL;
	if (h->version != PEER_PROTOCOL_VERSION)
		*why = "hello: another protocol version";
	else if (strcmp(h->cluster, d->cfg->cluster_name) != 0)
		*why = "hello: node of another cluster";
	else if (!hello_mac_ok(d, "dial", c->nonce, PEER_NONCE, h->spec->name,
	                       h->has_mac ? &h->mac : NULL))
		*why = "hello: cluster secret not proven";
	else if ((*their = node_spec_from_pb(h->spec, why)) == NULL)
		;
	else if (strcmp((*their)->name, d->self->name) == 0)
		*why = "hello: node has our own name";
	else if (pconn_name_unproven(c, (*their)->name, why))
		;
	else if (pconn_name_taken(c, (*their)->name, why))
		;
	else if (!advertise_spec_usable(*their, c->from_loopback))
		*why = pconn_unusable(c, *their);
	else if (peer_partitioned(d, (*their)->name))
		*why = "hello: node is behind an injected partition";
	else if (d->stopped)
		*why = "hello: this node has left the cluster";
	return *why ? -1 : 0;
}

/* The HelloAck to h: our spec, incarnation and (with a secret) proof. */
static void pconn_send_ack(struct pconn *c, const PartisanPeer__Hello *h)
{
	struct daemon *d = c->d;
	PartisanPeer__PeerMsg m = PARTISAN_PEER__PEER_MSG__INIT;
	PartisanPeer__HelloAck ack = PARTISAN_PEER__HELLO_ACK__INIT;
	PartisanCommon__NodeSpec spec;
	uint8_t mac[32];

	node_spec_to_pb(d->self, &spec);
	ack.spec = &spec;
	ack.has_incarnation = 1;
	ack.incarnation = d->incarnation;
	if (security_hello_mac(d) && h->has_nonce) {
		hello_mac(d, "acpt", h->nonce.data, h->nonce.len, d->self->name, mac);
		ack.has_mac = 1;
		ack.mac.data = mac;
		ack.mac.len = sizeof(mac);
	}
	m.body_case = PARTISAN_PEER__PEER_MSG__BODY_HELLO_ACK;
	m.hello_ack = &ack;
	pconn_write_msg(c, &m);
	node_spec_pb_release(&spec);
}

static int pconn_on_hello(struct pconn *c, const PartisanPeer__Hello *h, const char **why)
{
	struct daemon *d = c->d;
	struct node_spec *their;
	struct pnode *n;

	if (pconn_hello_check(c, h, &their, why) < 0)
		goto refuse;
	n = pnode_get(d, their->name, true);
	if (hello_incarnation(d, n, c, h->has_incarnation ? h->incarnation : 0, why) < 0)
		goto refuse;
	if (n->spec == NULL || !node_spec_equal(n->spec, their)) {
		node_spec_free(n->spec);
		n->spec = their;
	} else {
		node_spec_free(their);
	}
	c->node = n;
	node_heard(n->fd, daemon_now_ms());
	pconn_send_ack(c, h);
	pconn_set_state(c, PC_OPEN);
	c->chan = config_channel_index(d->cfg, h->channel); /* for the counters */
	d->stats.conns_opened++;
	log_debug("peer", "%s: accepted %s connection %u", n->name, h->channel, h->index);
	return 0;
refuse:
	node_spec_free(their);
	pconn_refuse(c, *why);
	return -1;
}

/* ---- the dialer: HelloAck (or Refuse) in ---- */

/* A probe learned who answers at an address: hand the spec over. */
static void pconn_finish_probe(struct pconn *c, const struct node_spec *spec)
{
	struct probe *p = c->probe;

	c->probe = NULL;
	p->cb(c->d, p->arg, spec, NULL, false);
	free(p);
}

/* Every check of a HelloAck whose spec is their. 0, or -1 with *why. */
static int pconn_ack_check(struct pconn *c, const PartisanPeer__HelloAck *ack,
                           const struct node_spec *their, const char **why)
{
	struct daemon *d = c->d;

	if (!hello_mac_ok(d, "acpt", c->nonce, PEER_NONCE, their->name,
	                  ack->has_mac ? &ack->mac : NULL))
		return *why = "hello ack: cluster secret not proven", -1;
	if (c->node && strcmp(c->node->name, their->name) != 0) {
		log_warnx("peer", "%s: expected %s at this address, found %s", c->addr,
		          c->node->name, their->name);
		return *why = "another node answers at this address", -1;
	}
	if (strcmp(their->name, d->self->name) == 0)
		return *why = "that address is this node", -1;
	if (pconn_name_unproven(c, their->name, why))
		return -1;
	if (peer_partitioned(d, their->name))
		return *why = "node is behind an injected partition", -1;
	return 0;
}

/* A probe's link: kept as the node's first default connection. */
static void pconn_adopt(struct pconn *c, struct pnode *n)
{
	c->node = n;
	if (n->out[0][0] == NULL) {
		n->out[0][0] = c;
		c->chan = 0;
		c->idx = 0;
	}
}

static int pconn_on_ack(struct pconn *c, const PartisanPeer__HelloAck *ack, const char **why)
{
	struct daemon *d = c->d;
	struct node_spec *their = node_spec_from_pb(ack->spec, why);
	struct pnode *n;

	if (their == NULL)
		return -1;
	if (pconn_ack_check(c, ack, their, why) < 0) {
		node_spec_free(their);
		return -1;
	}
	n = pnode_get(d, their->name, true);
	if (hello_incarnation(d, n, c, ack->has_incarnation ? ack->incarnation : 0, why) < 0) {
		node_spec_free(their);
		return -1;
	}
	node_spec_free(n->spec);
	n->spec = their;
	node_heard(n->fd, daemon_now_ms());
	pconn_set_state(c, PC_OPEN);
	pconn_dial_done(c);
	d->stats.conns_opened++;
	if (c->node == NULL)
		pconn_adopt(c, n);
	if (c->probe)
		pconn_finish_probe(c, their);
	if (c->outbound && n->out[c->chan][c->idx] != c) {
		/* The slot was filled meanwhile: this link is surplus. */
		return *why = "duplicate connection", -1;
	}
	pnode_set_up(d, n);
	daemon_link_up(d, n->name); /* a sync_join may be complete with this link */
	return 0;
}

static int pconn_refused(struct pconn *c, const PartisanPeer__Refuse *r, const char **why)
{
	log_warnx("peer", "%s: refused us: %s", pconn_who(c), r->reason);
	snprintf(c->refusal, sizeof(c->refusal), "refused: %s", r->reason);
	return *why = c->refusal, -1;
}

int hello_receive(struct pconn *c, const PartisanPeer__PeerMsg *m, const char **why)
{
	PartisanPeer__PeerMsg__BodyCase k = m->body_case;

	switch (c->state) {
	case PC_CONNECTING: /* bytes can be read before the connect event is seen */
	case PC_WAIT_CHALLENGE:
		if (k != PARTISAN_PEER__PEER_MSG__BODY_CHALLENGE)
			return *why = "expected challenge", -1;
		return pconn_on_challenge(c, m->challenge, why);
	case PC_WAIT_HELLO:
		if (k != PARTISAN_PEER__PEER_MSG__BODY_HELLO)
			return *why = "expected hello", -1;
		return pconn_on_hello(c, m->hello, why);
	case PC_WAIT_ACK:
		if (k == PARTISAN_PEER__PEER_MSG__BODY_REFUSE)
			return pconn_refused(c, m->refuse, why);
		if (k != PARTISAN_PEER__PEER_MSG__BODY_HELLO_ACK)
			return *why = "expected hello ack", -1;
		return pconn_on_ack(c, m->hello_ack, why);
	default:
		return 0;
	}
}

/* ---- what goes wrong before the hello ---- */

/* A TLS record where a plain hello frame belongs: a TLS peer (the plain
 * reader would take it for a frame of some 369 MB). */
bool hello_tls_record(struct pconn *c, struct evbuffer *in)
{
	uint8_t hdr[2];

	if (c->state != PC_WAIT_HELLO || evbuffer_copyout(in, hdr, 2) < 2 || hdr[0] != 0x16 ||
	    hdr[1] != 0x03)
		return false;
	log_warnx("peer",
	          "%s: refused: the peer speaks TLS and links here are plain TCP "
	          "(set tls or cluster.secret_file alike on both)",
	          pconn_who(c));
	c->d->stats.peer_frames_bad++;
	pconn_close(c, "a TLS peer");
	return true;
}

/* No hello within connect_timeout_ms. Where the silence has a likely
 * cause (a TLS peer waiting for our ClientHello, or one sending nothing
 * TLS could read), say it once: a dialer retries with backoff. */
void hello_timeout(struct pconn *c)
{
	const char *why = pconn_transport_error(c);

	if (why == NULL && c->state == PC_WAIT_CHALLENGE && c->d->transport->direct_io)
		why = "no challenge from the peer (busy or stopped, or a TLS node? tls and "
		      "cluster.secret_file must agree on both sides)";
	if (why == NULL) {
		pconn_close(c, "handshake timed out");
		return;
	}
	if (c->d->transport->direct_io)
		log_info("peer", "%s: handshake timed out: %s", pconn_who(c), why);
	else
		log_warnx("peer", "%s: handshake timed out: %s", pconn_who(c), why);
	pconn_close(c, why);
}
