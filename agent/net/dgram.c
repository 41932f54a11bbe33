/*
 * dgram.c — sealed datagrams: keys from the TLS exporter, AES-256-GCM,
 * a replay window (dgram.h has the wire format and the API).
 *
 * Why datagrams: the failure detector's probes and the failover heartbeats
 * measure whether a peer answers *now*. Over TCP a lost packet becomes a
 * retransmission with exponential backoff and, on a fresh connection, a
 * TLS handshake that times out: loss is amplified into silence and the
 * detector lies. A lost datagram is just one lost probe, which SWIM and
 * the failover core already expect and time themselves.
 *
 * Why keys from TLS and not DTLS: every pair of agents that talk already
 * holds a mutually authenticated TLS 1.3 session on the peer port (node
 * certificates of the cluster CA). DTLS would add a second handshake state
 * machine per peer, with its own retransmission timers, cookies, and
 * failure modes, to authenticate the same two certificates again. Instead,
 * when a peer-port session completes its handshake, both ends call the
 * TLS 1.3 exporter (RFC 8446 7.5, label DGRAM_EXPORTER_LABEL) and get the
 * same DGRAM_MATERIAL_LEN bytes, unique to that session: a client->server
 * key, key id and nonce salt, and the same for server->client. Two
 * directions, two keys: a datagram reflected back to its sender carries a
 * key id the sender does not receive with, and is dropped.
 *
 * Rekeying: every completed handshake with a peer installs fresh keys. The
 * send key is replaced at once (sequence from 1); the receive key it
 * replaces stays valid for grace_ms, and longer while the peer keeps
 * authenticating with it (when both ends connect to each other at the same
 * moment, the two ends may install the two sessions' keys in opposite
 * orders; the key the peer really uses must not die under it). A send key
 * retires key_lifetime_ms after install or after max_seq datagrams (the
 * sequence, hence the nonce, never repeats under one key); a retired key
 * is "no key": the caller sends over TLS and net.c makes a new handshake.
 * A receive key lives key_lifetime_ms + grace_ms.
 *
 * Staggered rekeying: a send key comes due for a fresh handshake
 * (dgram_rekey_due) well before it retires, at 60% to 90% of its lifetime
 * (or past 3/4 of max_seq). Where in that window is read from the key id,
 * which is exporter output and so uniform and different for every session:
 * an agent that met its N peers in the same second at startup does not
 * rekey with all of them in the same second ten minutes later. net.c
 * starts those handshakes (a bounded number at a time, dgram_rekey_defer
 * when it cannot now) while the old key keeps sealing, so the datagram
 * path never falls back to TLS for a rekey.
 *
 * Per (name, certificate): the CA may have issued two certificates for one
 * name — a rotation's new one, or one stolen or misissued. Both prove the
 * name; nothing in a datagram or a handshake tells the member's from the
 * other. Before, each handshake of the second replaced our send key to
 * the name and pushed the first's receive keys out: the member dropped
 * everything we sealed and its datagrams failed here (one connection made
 * a voter fence itself, ten made a survivor declare the member dead). So
 * every key remembers the identity (issuer and serial) of the peer's
 * certificate in the handshake that made it, and per name one certificate
 * is in use: the one we send under, whose datagrams alone count as heard.
 *
 *  - What decides which is in use is a handshake we dialed: we connected
 *    to the member's address (from membership) and the certificate there
 *    proved the name. A TCP handshake needs the SYN-ACK, so its holder
 *    receives at that address — where every datagram we send the member
 *    goes. A handshake we did not start, or a datagram, shows only that
 *    some holder of a certificate for the name is active somewhere, and
 *    UDP sources are easy to forge. The choice is kept when the send key
 *    retires or expires; only a revocation of it (dgram_forget_cert), or
 *    dgram_forget, clears it.
 *  - A handshake we did not start, with another certificate, goes aside:
 *    its receive key takes that certificate's side slot (DGRAM_ASIDE_SLOTS
 *    per name, one per certificate, its newest session; a new certificate
 *    evicts the side slot heard least recently), our send key stays. The
 *    side slots are apart from the DGRAM_RX_SLOTS keys of the certificate
 *    in use, so no number of other certificates evicts a key its holder
 *    may still seal with (the older keys it keeps in grace after crossed
 *    or half-completed handshakes), and memory per name stays bounded.
 *    When no dial has vouched for the certificate in use yet (whoever
 *    connected first after our restart), our send key retires instead:
 *    the next send dials the member's address, whose certificate decides.
 *  - A certificate put aside proves it is the one in use only through
 *    that dial. Its datagrams verify (as the name: the CA vouched for it;
 *    revoke it), and when the certificate in use has been silent for
 *    proof_silence_ms (10 s: no datagram under its keys verified, no
 *    handshake of it installed — the member rotated its certificate, say
 *    by a SIGHUP, and now seals under the new one), a datagram of another
 *    certificate makes our send key due for a rekey: one dial to the
 *    member's address, at most one per proof_cooldown_ms (30 s), whose
 *    certificate decides. While the certificate in use speaks, another's
 *    datagrams ask nothing, so a second certificate's holder cannot take
 *    the name from the member that speaks, nor make us dial it more than
 *    once per 30 s when it is silent. Without this, a rotation without a
 *    restart (no new incarnation) left the member "not heard" over UDP,
 *    its probes over TLS, until our key's age made a rekey due (6 to 9
 *    minutes).
 *
 * Replay: per receive key a DGRAM_REPLAY_WINDOW-bit sliding window over
 * the sequence, as IPsec (RFC 4303 3.4.3) and WireGuard do: the highest
 * sequence accepted and a bitmap of the ones below it. A duplicate, a
 * sequence older than the window, and 0 are dropped. The window moves only
 * after the tag verified, so a forged datagram cannot advance it.
 *
 * Bounds: at most max_peers peers (least recently used evicted); a remote
 * party can only add one by completing a TLS handshake with a node
 * certificate, and even then cannot grow memory. Lookup by key id is a
 * linear scan of the table: at the sizes we run (tens of peers, tens of
 * datagrams a second) it costs less than the AES.
 */
#include "dgram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define DGRAM_NAME_MAX 64
#define DGRAM_KEY_SLOTS (DGRAM_RX_SLOTS + DGRAM_ASIDE_SLOTS)

struct dgram_tx {
	bool valid;
	uint8_t key[DGRAM_KEY_LEN];
	uint8_t id[DGRAM_KEY_ID_LEN];
	uint8_t salt[DGRAM_SALT_LEN];
	uint64_t next_seq;
	uint64_t expires;
	uint64_t rekey_at; /* from here on a fresh handshake is due (dgram_rekey_due) */
};

struct dgram_rx {
	bool valid;
	uint8_t key[DGRAM_KEY_LEN];
	uint8_t id[DGRAM_KEY_ID_LEN];
	uint8_t salt[DGRAM_SALT_LEN];
	uint64_t expires;     /* hard end: lifetime + grace */
	bool replaced;        /* a newer key (or another certificate's) came */
	uint64_t replaced_at; /* when (meaningful once replaced) */
	uint64_t last_ok;     /* last datagram that verified */
	uint64_t top;         /* highest sequence accepted (0: none yet) */
	uint64_t bitmap;      /* bit i: top - i accepted */
	uint8_t cert[DGRAM_CERT_LEN];
};

struct dgram_peer {
	bool used;
	char name[DGRAM_NAME_MAX];
	uint64_t last_used;
	uint64_t heard;      /* last datagram from it that verified (0: none) */
	uint64_t probe_sent; /* last datagram sent to it while not heard (0: none) */
	uint64_t hint_at;    /* last rekey a hint (unauthenticated) started (0: none) */
	struct dgram_tx tx;
	/* [0, DGRAM_RX_SLOTS): the newest receive keys ([0] newest) of the
	 * handshakes that installed (the certificate we send under, and the
	 * one before it, in grace, after a dial changed it); then
	 * DGRAM_ASIDE_SLOTS side slots, one per other certificate (its newest
	 * session), which never touch the first ones */
	struct dgram_rx rx[DGRAM_KEY_SLOTS];
	uint64_t send_cert_at; /* last install of the certificate we send under */
	uint64_t proof_at;     /* last rekey a datagram of another one asked for (0: none) */
	bool proof_due;        /* ... and the dial it asks for has not started yet */
	/* The certificate our send keys come from, kept when the key retires
	 * or expires (only a revocation of it, or dgram_forget, clears it),
	 * and whether a handshake we dialed (the member's address, its
	 * certificate proving the name) showed it. */
	uint8_t send_cert[DGRAM_CERT_LEN];
	bool send_cert_set;
	bool send_dialed;
};

struct dgram_table {
	struct dgram_config cfg;
	struct dgram_peer *peers;
	uint32_t n_slots; /* peers[0, n_slots) were ever taken; the rest are free:
	                     every scan stops there (a few peers, not max_peers) */
	struct dgram_stats stats;
	EVP_CIPHER_CTX *ctx;
};

struct dgram_table *dgram_new(const struct dgram_config *cfg)
{
	struct dgram_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	if (cfg != NULL)
		t->cfg = *cfg;
	if (t->cfg.max_peers == 0)
		t->cfg.max_peers = 4096;
	if (t->cfg.key_lifetime_ms == 0)
		t->cfg.key_lifetime_ms = 10 * 60 * 1000;
	if (t->cfg.grace_ms == 0)
		t->cfg.grace_ms = 60 * 1000;
	if (t->cfg.max_seq == 0)
		t->cfg.max_seq = UINT64_C(1) << 32;
	if (t->cfg.proof_silence_ms == 0)
		t->cfg.proof_silence_ms = 10 * 1000;
	if (t->cfg.proof_cooldown_ms == 0)
		t->cfg.proof_cooldown_ms = 30 * 1000;
	t->peers = calloc(t->cfg.max_peers, sizeof(*t->peers));
	t->ctx = EVP_CIPHER_CTX_new();
	if (t->peers == NULL || t->ctx == NULL) {
		dgram_free(t);
		return NULL;
	}
	return t;
}

void dgram_free(struct dgram_table *t)
{
	if (t == NULL)
		return;
	if (t->peers != NULL) {
		OPENSSL_cleanse(t->peers, t->cfg.max_peers * sizeof(*t->peers));
		free(t->peers);
	}
	EVP_CIPHER_CTX_free(t->ctx);
	free(t);
}

static const struct dgram_peer *dgram_find_const(const struct dgram_table *t, const char *name)
{
	for (uint32_t i = 0; i < t->n_slots; i++)
		if (t->peers[i].used && strcmp(t->peers[i].name, name) == 0)
			return &t->peers[i];
	return NULL;
}

static struct dgram_peer *dgram_find(struct dgram_table *t, const char *name)
{
	return (struct dgram_peer *)dgram_find_const(t, name);
}

uint64_t dgram_rekey_after(uint64_t lifetime_ms, const uint8_t id[DGRAM_KEY_ID_LEN])
{
	/* the key id is exporter output: uniform, and different for every
	 * session and direction, so the N keys installed in the same second
	 * at startup come due spread over 30% of their lifetime */
	uint64_t u = (uint64_t)id[0] << 8 | id[1]; /* 0..65535 */
	return lifetime_ms * 6 / 10 + lifetime_ms * 3 / 10 * u / 65536;
}

/* A free slot, or the least recently used peer's, wiped. */
static struct dgram_peer *dgram_take_slot(struct dgram_table *t)
{
	struct dgram_peer *lru = NULL;
	for (uint32_t i = 0; i < t->n_slots; i++) {
		struct dgram_peer *p = &t->peers[i];
		if (!p->used)
			return p;
		if (lru == NULL || p->last_used < lru->last_used)
			lru = p;
	}
	if (t->n_slots < t->cfg.max_peers)
		return &t->peers[t->n_slots++];
	t->stats.evictions++;
	t->stats.peers--;
	OPENSSL_cleanse(lru, sizeof(*lru));
	return lru;
}

/* May a receive key still open datagrams at now? */
static bool dgram_rx_live(const struct dgram_table *t, const struct dgram_rx *r, uint64_t now)
{
	if (!r->valid || now >= r->expires)
		return false;
	if (!r->replaced)
		return true;
	uint64_t since = r->last_ok > r->replaced_at ? r->last_ok : r->replaced_at;
	return now < since + t->cfg.grace_ms;
}

static void dgram_rx_set(struct dgram_table *t, struct dgram_rx *r, const uint8_t *recv,
                         const uint8_t *cert, uint64_t now)
{
	OPENSSL_cleanse(r, sizeof(*r));
	memcpy(r->key, recv, DGRAM_KEY_LEN);
	memcpy(r->id, recv + DGRAM_KEY_LEN, DGRAM_KEY_ID_LEN);
	memcpy(r->salt, recv + DGRAM_KEY_LEN + DGRAM_KEY_ID_LEN, DGRAM_SALT_LEN);
	memcpy(r->cert, cert, DGRAM_CERT_LEN);
	r->expires = now + t->cfg.key_lifetime_ms + t->cfg.grace_ms;
	r->valid = true;
}

/* The side slot for a key of `cert`, a certificate other than the one we
 * send under: the slot that certificate holds already (its newest session
 * replaces its older one), else a free or dead one, else the one whose
 * holder spoke least recently. Guarantees: a side slot only, so the keys
 * of the certificate in use (rx[0, DGRAM_RX_SLOTS)) are never its victims,
 * however many certificates come; one slot per certificate; and a live
 * side slot of the certificate in use (put aside while another was, then
 * a dial made it the one in use, and its holder may still seal with that
 * key after crossed handshakes) is never taken while another slot can be:
 * with one slot per certificate and DGRAM_ASIDE_SLOTS >= 2 there always
 * is one, so other certificates never evict a key the member seals with. */
static int dgram_aside_slot(const struct dgram_table *t, const struct dgram_peer *p,
                            const uint8_t *cert, uint64_t now)
{
	int k = DGRAM_RX_SLOTS;
	uint64_t oldest = UINT64_MAX;
	for (int i = DGRAM_RX_SLOTS; i < DGRAM_KEY_SLOTS; i++) {
		const struct dgram_rx *x = &p->rx[i];
		if (x->valid && CRYPTO_memcmp(x->cert, cert, DGRAM_CERT_LEN) == 0)
			return i;
		uint64_t seen = 0; /* free or dead: first to go */
		if (dgram_rx_live(t, x, now))
			seen = x->last_ok > x->replaced_at ? x->last_ok : x->replaced_at;
		if (seen != 0 && p->send_cert_set &&
		    CRYPTO_memcmp(x->cert, p->send_cert, DGRAM_CERT_LEN) == 0)
			seen = UINT64_MAX - 1; /* the member's: last to go */
		if (seen < oldest) {
			k = i;
			oldest = seen;
		}
	}
	return k;
}

int dgram_install(struct dgram_table *t, const char *peer, const uint8_t *material, size_t len,
                  bool we_are_client, uint64_t now)
{
	return dgram_install_cert(t, peer, material, len, we_are_client, NULL, now);
}

int dgram_install_cert(struct dgram_table *t, const char *peer, const uint8_t *material, size_t len,
                       bool we_are_client, const uint8_t *cert_in, uint64_t now)
{
	static const uint8_t no_cert[DGRAM_CERT_LEN];
	const uint8_t *cert = cert_in ? cert_in : no_cert;
	if (peer == NULL || peer[0] == '\0' || strlen(peer) >= DGRAM_NAME_MAX ||
	    len != DGRAM_MATERIAL_LEN || material == NULL)
		return -EINVAL;
	struct dgram_peer *p = dgram_find(t, peer);
	if (p == NULL) {
		p = dgram_take_slot(t);
		p->used = true;
		memcpy(p->name, peer, strlen(peer) + 1);
		t->stats.peers++;
	}
	const uint8_t *c2s = material, *s2c = material + DGRAM_DIR_MATERIAL_LEN;
	const uint8_t *send = we_are_client ? c2s : s2c, *recv = we_are_client ? s2c : c2s;

	bool same = !p->send_cert_set || CRYPTO_memcmp(p->send_cert, cert, DGRAM_CERT_LEN) == 0;
	if (!we_are_client && !same) {
		/* A second certificate for this name, in a handshake we did not
		 * start: its keys go aside (one slot: the one another
		 * certificate's keys hold already, else the oldest), ours to send
		 * stay. Unless a handshake we dialed showed ours, which holder
		 * is the member is not known: our send key retires, and the
		 * caller's next send dials the member's address (its rekey),
		 * whose certificate then decides. */
		int k = dgram_aside_slot(t, p, cert, now);
		dgram_rx_set(t, &p->rx[k], recv, cert, now);
		p->rx[k].replaced = true; /* lives while that peer uses it */
		p->rx[k].replaced_at = now;
		p->last_used = now;
		t->stats.installs++;
		t->stats.aside++;
		if (p->send_dialed)
			return DGRAM_INSTALLED_ASIDE;
		OPENSSL_cleanse(&p->tx, sizeof(p->tx));
		return DGRAM_INSTALLED_ASIDE_REDIAL;
	}
	p->send_dialed = we_are_client || (p->send_dialed && p->send_cert_set);
	memcpy(p->send_cert, cert, DGRAM_CERT_LEN);
	p->send_cert_set = true;
	p->send_cert_at = now;

	memcpy(p->tx.key, send, DGRAM_KEY_LEN);
	memcpy(p->tx.id, send + DGRAM_KEY_LEN, DGRAM_KEY_ID_LEN);
	memcpy(p->tx.salt, send + DGRAM_KEY_LEN + DGRAM_KEY_ID_LEN, DGRAM_SALT_LEN);
	p->tx.next_seq = 1;
	p->tx.expires = now + t->cfg.key_lifetime_ms;
	p->tx.rekey_at = now + dgram_rekey_after(t->cfg.key_lifetime_ms, p->tx.id);
	p->tx.valid = true;
	p->proof_due = false;

	OPENSSL_cleanse(&p->rx[DGRAM_RX_SLOTS - 1], sizeof(p->rx[0]));
	memmove(&p->rx[1], &p->rx[0], (DGRAM_RX_SLOTS - 1) * sizeof(p->rx[0]));
	if (p->rx[1].valid && !p->rx[1].replaced) {
		p->rx[1].replaced = true;
		p->rx[1].replaced_at = now;
	}
	dgram_rx_set(t, &p->rx[0], recv, cert, now);
	p->last_used = now;
	t->stats.installs++;
	return 0;
}

static bool dgram_tx_live(const struct dgram_table *t, const struct dgram_tx *x, uint64_t now)
{
	return x->valid && now < x->expires && x->next_seq <= t->cfg.max_seq;
}

static uint64_t get_be64(const uint8_t *b);

bool dgram_heard(struct dgram_table *t, const char *peer, uint64_t now, uint64_t within_ms)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	return p != NULL && p->heard != 0 && now - p->heard <= within_ms;
}

bool dgram_probe_due(struct dgram_table *t, const char *peer, uint64_t now, uint64_t interval_ms)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	if (p == NULL || (p->probe_sent != 0 && now - p->probe_sent < interval_ms))
		return false;
	p->probe_sent = now;
	return true;
}

const char *dgram_quoted_sender(struct dgram_table *t, const uint8_t *quoted, size_t len,
                                uint64_t now)
{
	if (quoted == NULL || len < DGRAM_HEADER_LEN || quoted[0] != DGRAM_VERSION)
		return NULL;
	uint64_t seq = get_be64(quoted + 1 + DGRAM_KEY_ID_LEN);
	for (uint32_t i = 0; i < t->n_slots; i++) {
		struct dgram_peer *p = &t->peers[i];
		if (!p->used || !dgram_tx_live(t, &p->tx, now) ||
		    CRYPTO_memcmp(p->tx.id, quoted + 1, DGRAM_KEY_ID_LEN) != 0)
			continue;
		if (seq == 0 || seq >= p->tx.next_seq || p->tx.next_seq - seq > DGRAM_QUOTE_WINDOW)
			return NULL;
		return p->name;
	}
	return NULL;
}

void dgram_retire_send(struct dgram_table *t, const char *peer)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	if (p != NULL) {
		OPENSSL_cleanse(&p->tx, sizeof(p->tx));
		p->tx.valid = false;
	}
}

void dgram_forget(struct dgram_table *t, const char *peer)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	if (p != NULL) {
		OPENSSL_cleanse(p, sizeof(*p)); /* used = false: the slot is free */
		t->stats.peers--;
	}
}

bool dgram_send_cert(const struct dgram_table *t, const char *peer, uint8_t out[DGRAM_CERT_LEN])
{
	const struct dgram_peer *p = peer ? dgram_find_const(t, peer) : NULL;
	if (p == NULL || !p->send_cert_set)
		return false;
	memcpy(out, p->send_cert, DGRAM_CERT_LEN);
	return true;
}

/* Wipes what peer p holds of certificate cert: the send key and the choice
 * of it as the one in use (so the next handshake decides again), and every
 * receive key (ring and side slots) a handshake with it made. Returns how
 * many keys it wiped. */
static size_t dgram_peer_forget_cert(struct dgram_peer *p, const uint8_t *cert)
{
	size_t n = 0;
	if (p->send_cert_set && CRYPTO_memcmp(p->send_cert, cert, DGRAM_CERT_LEN) == 0) {
		n += p->tx.valid;
		OPENSSL_cleanse(&p->tx, sizeof(p->tx));
		OPENSSL_cleanse(p->send_cert, sizeof(p->send_cert));
		p->send_cert_set = false;
		p->send_dialed = false;
		p->proof_due = false;
	}
	for (int k = 0; k < DGRAM_KEY_SLOTS; k++)
		if (p->rx[k].valid && CRYPTO_memcmp(p->rx[k].cert, cert, DGRAM_CERT_LEN) == 0) {
			OPENSSL_cleanse(&p->rx[k], sizeof(p->rx[k]));
			n++;
		}
	return n;
}

size_t dgram_forget_cert(struct dgram_table *t, const uint8_t *cert)
{
	size_t n = 0;
	for (uint32_t i = 0; cert != NULL && i < t->n_slots; i++)
		if (t->peers[i].used)
			n += dgram_peer_forget_cert(&t->peers[i], cert);
	return n;
}

/* Guarantees: after it, no key of any peer (either direction, ring or side
 * slot) and no choice of the certificate in use comes from a certificate
 * distrusted names; keys of every other certificate are untouched. */
size_t dgram_forget_certs_if(struct dgram_table *t,
                             bool (*distrusted)(const uint8_t *cert, void *arg), void *arg)
{
	size_t n = 0;
	for (uint32_t i = 0; i < t->n_slots; i++) {
		struct dgram_peer *p = &t->peers[i];
		if (!p->used)
			continue;
		if (p->send_cert_set && distrusted(p->send_cert, arg)) {
			uint8_t c[DGRAM_CERT_LEN];
			memcpy(c, p->send_cert, sizeof(c));
			n += dgram_peer_forget_cert(p, c);
		}
		for (int k = 0; k < DGRAM_KEY_SLOTS; k++)
			if (p->rx[k].valid && distrusted(p->rx[k].cert, arg)) {
				uint8_t c[DGRAM_CERT_LEN];
				memcpy(c, p->rx[k].cert, sizeof(c));
				n += dgram_peer_forget_cert(p, c);
			}
	}
	return n;
}

/* Guarantees: true exactly while a key or a send choice of cert is held
 * (net keeps that certificate while this is so). */
bool dgram_holds_cert(const struct dgram_table *t, const uint8_t *cert)
{
	for (uint32_t i = 0; i < t->n_slots; i++) {
		const struct dgram_peer *p = &t->peers[i];
		if (!p->used)
			continue;
		if (p->send_cert_set && CRYPTO_memcmp(p->send_cert, cert, DGRAM_CERT_LEN) == 0)
			return true;
		for (int k = 0; k < DGRAM_KEY_SLOTS; k++)
			if (p->rx[k].valid &&
			    CRYPTO_memcmp(p->rx[k].cert, cert, DGRAM_CERT_LEN) == 0)
				return true;
	}
	return false;
}

bool dgram_can_send(struct dgram_table *t, const char *peer, uint64_t now)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	return p != NULL && dgram_tx_live(t, &p->tx, now);
}

bool dgram_rekey_due(struct dgram_table *t, const char *peer, uint64_t now)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	return p != NULL && dgram_tx_live(t, &p->tx, now) &&
	       (now >= p->tx.rekey_at || p->tx.next_seq > t->cfg.max_seq - t->cfg.max_seq / 4 ||
	        p->proof_due);
}

bool dgram_hint_rekey_ok(struct dgram_table *t, const char *peer, uint64_t now, uint64_t heard_ms,
                         uint64_t cooldown_ms)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	if (p == NULL)
		return true; /* no keys at all: nothing to protect */
	if ((p->heard != 0 && now - p->heard <= heard_ms) ||
	    (p->hint_at != 0 && now - p->hint_at < cooldown_ms))
		return false;
	p->hint_at = now;
	return true;
}

void dgram_rekey_defer(struct dgram_table *t, const char *peer, uint64_t until)
{
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	if (p == NULL || !p->tx.valid)
		return;
	if (p->proof_due) {
		/* the dial another certificate's datagram asked for is one
		 * try (dgram_other_cert_spoke), not a key come due */
		p->proof_due = false;
		if (until < p->tx.rekey_at)
			return;
	}
	p->tx.rekey_at = until;
}

static void put_be64(uint8_t *o, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		o[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

int dgram_seal(struct dgram_table *t, const char *peer, const uint8_t *payload, size_t len,
               uint8_t *out, size_t outcap, size_t *outlen, uint64_t now)
{
	if (len > DGRAM_MAX_PAYLOAD) {
		t->stats.too_big++;
		return -EMSGSIZE;
	}
	struct dgram_peer *p = peer ? dgram_find(t, peer) : NULL;
	if (p == NULL || !dgram_tx_live(t, &p->tx, now)) {
		t->stats.no_key++;
		return -ENOKEY;
	}
	if (outcap < len + DGRAM_OVERHEAD)
		return -ENOBUFS;
	uint64_t seq = p->tx.next_seq;
	out[0] = DGRAM_VERSION;
	memcpy(out + 1, p->tx.id, DGRAM_KEY_ID_LEN);
	put_be64(out + 1 + DGRAM_KEY_ID_LEN, seq);
	uint8_t nonce[12];
	memcpy(nonce, p->tx.salt, DGRAM_SALT_LEN);
	memcpy(nonce + DGRAM_SALT_LEN, out + 1 + DGRAM_KEY_ID_LEN, 8);

	EVP_CIPHER_CTX *c = t->ctx;
	int n = 0, fin = 0;
	if (EVP_CIPHER_CTX_reset(c) != 1 ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, p->tx.key, nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, out, DGRAM_HEADER_LEN) != 1 ||
	    (len > 0 && EVP_EncryptUpdate(c, out + DGRAM_HEADER_LEN, &n, payload, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(c, out + DGRAM_HEADER_LEN + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, DGRAM_TAG_LEN,
	                        out + DGRAM_HEADER_LEN + len) != 1)
		return -EIO;
	p->tx.next_seq++; /* the sequence is used even if the caller never sends */
	p->last_used = now;
	*outlen = len + DGRAM_OVERHEAD;
	t->stats.sealed++;
	t->stats.bytes_sealed += *outlen;
	return 0;
}

/* Is seq new for this window (not yet accepted, not too old)? */
static bool dgram_window_check(const struct dgram_rx *r, uint64_t seq)
{
	if (seq == 0)
		return false;
	if (seq > r->top)
		return true;
	uint64_t back = r->top - seq;
	if (back >= DGRAM_REPLAY_WINDOW)
		return false;
	return (r->bitmap & (UINT64_C(1) << back)) == 0;
}

static void dgram_window_accept(struct dgram_rx *r, uint64_t seq)
{
	if (seq > r->top) {
		uint64_t shift = seq - r->top;
		r->bitmap = shift >= DGRAM_REPLAY_WINDOW ? 0 : r->bitmap << shift;
		r->bitmap |= 1;
		r->top = seq;
	} else {
		r->bitmap |= UINT64_C(1) << (r->top - seq);
	}
}

static enum dgram_drop dgram_drop(struct dgram_table *t, enum dgram_drop d)
{
	switch (d) {
	case DGRAM_DROP_SHORT:
		t->stats.drop_short++;
		break;
	case DGRAM_DROP_VERSION:
		t->stats.drop_version++;
		break;
	case DGRAM_DROP_UNKNOWN_KEY:
		t->stats.drop_unknown_key++;
		break;
	case DGRAM_DROP_AUTH:
		t->stats.drop_auth++;
		break;
	case DGRAM_DROP_REPLAY:
		t->stats.drop_replay++;
		break;
	case DGRAM_OK:
		break;
	}
	return d;
}

/* A datagram under the keys of a certificate other than the one we send
 * under verified. That proves its holder is active, not that it is the
 * member: the CA vouched for both, and a stolen certificate's holder
 * speaks as readily as the member. So it never changes the certificate we
 * send under by itself. Guarantees: while ours has been silent for
 * proof_silence_ms (no datagram under its keys verified, no handshake of
 * it installed: the member rotated its certificate, or is gone), our live
 * send key comes due for a rekey now (dgram_rekey_due), whose handshake
 * dials the member's address: the certificate there decides, as for any
 * dial (dgram_install_cert). At most once per proof_cooldown_ms per peer;
 * one dial each (dgram_rekey_defer clears it: a try that fails is not
 * retried until another such datagram, after the cooldown); nothing while
 * ours speaks, or without a live send key (the next send then dials
 * anyway). */
static void dgram_other_cert_spoke(struct dgram_table *t, struct dgram_peer *p, uint64_t now)
{
	uint64_t alive = p->heard > p->send_cert_at ? p->heard : p->send_cert_at;
	if (now - alive < t->cfg.proof_silence_ms ||
	    (p->proof_at != 0 && now - p->proof_at < t->cfg.proof_cooldown_ms) ||
	    !dgram_tx_live(t, &p->tx, now))
		return;
	p->proof_at = now;
	p->proof_due = true;
	t->stats.proof_rekeys++;
}

enum dgram_drop dgram_open(struct dgram_table *t, const uint8_t *dg, size_t len, uint8_t *out,
                           size_t outcap, size_t *outlen, const char **peer, uint64_t now)
{
	if (dg == NULL || len < DGRAM_OVERHEAD || len > DGRAM_MAX_LEN)
		return dgram_drop(t, DGRAM_DROP_SHORT);
	if (dg[0] != DGRAM_VERSION)
		return dgram_drop(t, DGRAM_DROP_VERSION);
	const uint8_t *id = dg + 1;
	struct dgram_peer *p = NULL;
	struct dgram_rx *r = NULL;
	for (uint32_t i = 0; i < t->n_slots && r == NULL; i++) {
		if (!t->peers[i].used)
			continue;
		for (int k = 0; k < DGRAM_KEY_SLOTS; k++) {
			struct dgram_rx *x = &t->peers[i].rx[k];
			if (x->valid && CRYPTO_memcmp(x->id, id, DGRAM_KEY_ID_LEN) == 0) {
				p = &t->peers[i];
				r = x;
				break;
			}
		}
	}
	if (r == NULL || !dgram_rx_live(t, r, now))
		return dgram_drop(t, DGRAM_DROP_UNKNOWN_KEY);
	uint64_t seq = get_be64(dg + 1 + DGRAM_KEY_ID_LEN);
	if (!dgram_window_check(r, seq))
		return dgram_drop(t, DGRAM_DROP_REPLAY);
	size_t clen = len - DGRAM_OVERHEAD;
	if (outcap < clen)
		return dgram_drop(t, DGRAM_DROP_SHORT);

	uint8_t nonce[12], tag[DGRAM_TAG_LEN];
	memcpy(nonce, r->salt, DGRAM_SALT_LEN);
	memcpy(nonce + DGRAM_SALT_LEN, dg + 1 + DGRAM_KEY_ID_LEN, 8);
	memcpy(tag, dg + len - DGRAM_TAG_LEN, DGRAM_TAG_LEN);
	EVP_CIPHER_CTX *c = t->ctx;
	int n = 0, fin = 0;
	bool ok =
	    EVP_CIPHER_CTX_reset(c) == 1 &&
	    EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, r->key, nonce) == 1 &&
	    EVP_DecryptUpdate(c, NULL, &n, dg, DGRAM_HEADER_LEN) == 1 &&
	    (clen == 0 || EVP_DecryptUpdate(c, out, &n, dg + DGRAM_HEADER_LEN, (int)clen) == 1) &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, DGRAM_TAG_LEN, tag) == 1 &&
	    EVP_DecryptFinal_ex(c, out + clen, &fin) == 1;
	if (!ok) {
		OPENSSL_cleanse(out, clen); /* never hand out unauthenticated plaintext */
		return dgram_drop(t, DGRAM_DROP_AUTH);
	}
	dgram_window_accept(r, seq);
	r->last_ok = now;
	p->last_used = now;
	/* heard: the peer we send to (not a second certificate's holder,
	 * whose datagrams still verify as the name: revoke it); another
	 * certificate's datagram may ask for a dial (dgram_other_cert_spoke) */
	if (!p->send_cert_set || CRYPTO_memcmp(r->cert, p->send_cert, DGRAM_CERT_LEN) == 0)
		p->heard = now;
	else
		dgram_other_cert_spoke(t, p, now);
	*outlen = clen;
	*peer = p->name;
	t->stats.opened++;
	t->stats.bytes_opened += len;
	return DGRAM_OK;
}

void dgram_get_stats(const struct dgram_table *t, struct dgram_stats *out)
{
	*out = t->stats;
}

const char *dgram_drop_name(enum dgram_drop d)
{
	switch (d) {
	case DGRAM_OK:
		return "ok";
	case DGRAM_DROP_SHORT:
		return "bad length";
	case DGRAM_DROP_VERSION:
		return "unknown version";
	case DGRAM_DROP_UNKNOWN_KEY:
		return "unknown key";
	case DGRAM_DROP_AUTH:
		return "authentication failed";
	case DGRAM_DROP_REPLAY:
		return "replayed";
	}
	return "?";
}
