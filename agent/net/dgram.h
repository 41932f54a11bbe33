/*
 * dgram.h — sealed datagrams for failure detection: the key table and the
 * seal/open of one datagram. Sans-I/O: no socket, no clock (now, in ms of
 * any monotonic clock, is passed in). net.c feeds it keys from completed
 * TLS handshakes and moves the sealed bytes over a UDP socket; dgram.c
 * explains the design (why the TLS exporter and not DTLS).
 *
 * Wire format of one datagram (all of it is what the socket carries):
 *
 *   version (1) = 1 | key id (8) | sequence (8, big endian) | ciphertext | tag (16)
 *   \____________ header, 17 bytes: the AEAD's associated data ____/
 *
 * AES-256-GCM; nonce = the key's 4-byte salt || the sequence. The
 * plaintext is one frame payload (an Envelope), at most DGRAM_MAX_PAYLOAD.
 *
 * Keys: per peer name (the certificate CN), one send key and up to
 * DGRAM_RX_SLOTS receive keys of the certificate in use, and one receive
 * key for each of up to DGRAM_ASIDE_SLOTS other certificates for the
 * name, installed from DGRAM_MATERIAL_LEN bytes of TLS exporter output.
 * Open finds the peer by the key id, so the peer's name that open returns
 * is the one its TLS certificate proved.
 *
 * Ownership: the table owns everything; a peer name returned by
 * dgram_open() is valid until the next call on the table.
 * Errors: negative errno (dgram_seal/dgram_install) or a drop reason
 * (dgram_open), each counted in struct dgram_stats.
 */
#ifndef MESHVISOR_DGRAM_H
#define MESHVISOR_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DGRAM_VERSION 1
#define DGRAM_HEADER_LEN 17
#define DGRAM_TAG_LEN 16
#define DGRAM_OVERHEAD (DGRAM_HEADER_LEN + DGRAM_TAG_LEN)
#define DGRAM_MAX_PAYLOAD 1200 /* below any path MTU we meet, IPv6 minimum 1280 */
#define DGRAM_MAX_LEN (DGRAM_MAX_PAYLOAD + DGRAM_OVERHEAD)
#define DGRAM_KEY_LEN 32
#define DGRAM_KEY_ID_LEN 8
#define DGRAM_SALT_LEN 4
/* Exporter output: client->server key, id, salt, then server->client. */
#define DGRAM_DIR_MATERIAL_LEN (DGRAM_KEY_LEN + DGRAM_KEY_ID_LEN + DGRAM_SALT_LEN)
#define DGRAM_MATERIAL_LEN (2 * DGRAM_DIR_MATERIAL_LEN)
#define DGRAM_EXPORTER_LABEL "EXPORTER-meshvisor-datagram-v1"
#define DGRAM_RX_SLOTS 3    /* the newest receive key and two before it */
#define DGRAM_ASIDE_SLOTS 2 /* per name: keys of other certificates, one each */
#define DGRAM_REPLAY_WINDOW 64

struct dgram_config {
	uint32_t max_peers;       /* table bound; 0: 4096 */
	uint64_t key_lifetime_ms; /* a send key retires this long after install; 0: 10 min */
	uint64_t grace_ms;        /* a replaced receive key stays valid; 0: 60 s */
	uint64_t max_seq;         /* a send key retires after this many datagrams; 0: 2^32 */
	/* another certificate's datagram asks for a dial when ours was this
	 * long silent (0: 10 s), at most once per cooldown (0: 30 s) */
	uint64_t proof_silence_ms;
	uint64_t proof_cooldown_ms;
};

/* Why dgram_open() dropped a datagram (each one counted). */
enum dgram_drop {
	DGRAM_OK = 0,
	DGRAM_DROP_SHORT = 1,       /* shorter than header + tag, or longer than DGRAM_MAX_LEN */
	DGRAM_DROP_VERSION = 2,     /* unknown version byte */
	DGRAM_DROP_UNKNOWN_KEY = 3, /* key id of no receive key (never, evicted, or expired) */
	DGRAM_DROP_AUTH = 4,        /* tag does not verify: forged or altered */
	DGRAM_DROP_REPLAY = 5,      /* sequence seen before, 0, or older than the window */
};

struct dgram_stats {
	uint64_t sealed, opened;
	uint64_t bytes_sealed, bytes_opened; /* datagram bytes (header and tag included) */
	uint64_t no_key;                     /* seal without a valid send key */
	uint64_t too_big;                    /* seal of a payload over DGRAM_MAX_PAYLOAD */
	uint64_t drop_short, drop_version, drop_unknown_key, drop_auth, drop_replay;
	uint64_t installs;     /* key material installed */
	uint64_t aside;        /* ... of which put aside (a second certificate for a name) */
	uint64_t proof_rekeys; /* dials asked for: another certificate spoke, ours silent */
	uint64_t evictions;    /* peers evicted from the full table */
	uint32_t peers;        /* peers in the table now */
};

struct dgram_table;

struct dgram_table *dgram_new(const struct dgram_config *cfg);
void dgram_free(struct dgram_table *t);

/* Installs the keys of one completed handshake with `peer`: the new send
 * key replaces ours (sequence from 1), the new receive key becomes the
 * newest; the one it replaces stays valid for grace_ms (longer while the
 * peer keeps using it, up to its lifetime). we_are_client: which half of
 * `material` is ours to send with. A new peer in a full table evicts the
 * least recently used one. 0, -EINVAL (bad name or length), -ENOMEM. */
int dgram_install(struct dgram_table *t, const char *peer, const uint8_t *material, size_t len,
                  bool we_are_client, uint64_t now);

/* The same, for a handshake whose peer showed the certificate with identity
 * `cert` (DGRAM_CERT_LEN bytes: tls_conn_peer_cert_id, a hash of its issuer
 * and serial; NULL: unknown, as one certificate). The CA may have issued
 * two certificates for one name (a rotation, or a stolen or misissued
 * one): keys are kept per (name, certificate), so that the second cannot
 * take the name's datagrams from the first. One certificate per name is
 * the one in use: we send under it, and only its datagrams count as heard
 * (dgram_heard). A handshake we started (we dialed the member's address
 * and its certificate proved the name) installs and makes its certificate
 * the one in use (kept when the send key retires or expires). One we did
 * not start (we are the server), with another certificate, is put aside:
 * its receive key takes that certificate's side slot (DGRAM_ASIDE_SLOTS a
 * name, one per certificate, the least recently heard evicted; the keys
 * of the one in use are never evicted by it), and our send key stays
 * (DGRAM_INSTALLED_ASIDE) — or, when no handshake we dialed showed the
 * certificate in use, our send key retires (DGRAM_INSTALLED_ASIDE_REDIAL):
 * the caller's next send goes over TLS and its rekey dials the member's
 * address, whose certificate decides. A certificate put aside proves it
 * is the one in use only through a dial: its verified datagrams, while
 * the one in use is silent, make our send key due for a rekey
 * (dgram_rekey_due), whose handshake dials the member. 0 (installed),
 * DGRAM_INSTALLED_ASIDE[_REDIAL], or -EINVAL / -ENOMEM. */
#define DGRAM_CERT_LEN 32
#define DGRAM_INSTALLED_ASIDE 1
#define DGRAM_INSTALLED_ASIDE_REDIAL 2
int dgram_install_cert(struct dgram_table *t, const char *peer, const uint8_t *material, size_t len,
                       bool we_are_client, const uint8_t *cert, uint64_t now);

/* Do we hold a send key for peer that has not retired? */
bool dgram_can_send(struct dgram_table *t, const char *peer, uint64_t now);
/* Has a datagram from `peer` verified within the last within_ms? (Its UDP
 * path works, at least towards us, and it runs a datagram-speaking agent.) */
bool dgram_heard(struct dgram_table *t, const char *peer, uint64_t now, uint64_t within_ms);
/* While `peer` is not heard: may we send it one datagram now (at most one
 * per interval_ms)? True stamps the time. */
bool dgram_probe_due(struct dgram_table *t, const char *peer, uint64_t now, uint64_t interval_ms);
/* The peer a returned datagram (the bytes an ICMP error quotes) was sealed
 * for: its key id is our live send key to that peer and its sequence one
 * of the last DGRAM_QUOTE_WINDOW we sealed. NULL otherwise (a forged or
 * stale error: an off-path sender would have to guess the 8-byte key id). */
#define DGRAM_QUOTE_WINDOW 1024
const char *dgram_quoted_sender(struct dgram_table *t, const uint8_t *quoted, size_t len,
                                uint64_t now);
/* Retires our send key to `peer` (its receive keys stay): the peer
 * restarted and forgot the keys, so datagrams sealed with it would only be
 * dropped there as "unknown key" until a TLS contact rekeyed both ends.
 * The next dgram_seal is -ENOKEY: the caller uses TLS, whose handshake
 * installs new keys. Nothing if there is none. */
void dgram_retire_send(struct dgram_table *t, const char *peer);
/* Wipes both directions' keys of peer (revoked): its datagrams fail as
 * "unknown key" and nothing more is sealed for it until a new handshake. */
void dgram_forget(struct dgram_table *t, const char *peer);

/* The certificate we send to `peer` under (kept across retire and expiry:
 * dgram_install_cert) into out; false when none is known. */
bool dgram_send_cert(const struct dgram_table *t, const char *peer, uint8_t out[DGRAM_CERT_LEN]);

/* Wipes every key (either direction, any peer) that a handshake with the
 * certificate `cert` made (the CRL revokes it): its datagrams fail as
 * "unknown key". Returns how many keys it wiped. */
size_t dgram_forget_cert(struct dgram_table *t, const uint8_t *cert);
/* The same for every certificate distrusted(cert, arg) names (a trust
 * change: the CA that signed it left the CA file, or the CRL revokes it),
 * whether a connection of it is open or not: its receive keys (those of
 * the certificate in use and the side slots) and, where it is the one in
 * use, our send key and that choice, so the next handshake with the name,
 * either direction, installs fresh keys at once and decides again.
 * distrusted is asked once per key, for no other certificate. Returns how
 * many keys it wiped. */
size_t dgram_forget_certs_if(struct dgram_table *t,
                             bool (*distrusted)(const uint8_t *cert, void *arg), void *arg);
/* Does any key (or the choice of the certificate in use) of any peer come
 * from a handshake with certificate cert? */
bool dgram_holds_cert(const struct dgram_table *t, const uint8_t *cert);

/* Is a fresh handshake with `peer` due? True once its live send key has
 * passed its rekey time (60%..90% of key_lifetime_ms after install, the
 * point taken from the key id: staggered) or 3/4 of max_seq, or since a
 * datagram of another certificate for the name verified while the one in
 * use was silent (dgram_install_cert: the dial decides which is). The key
 * still seals until it retires; the caller starts a handshake, whose
 * install replaces it. False without a live send key (then -ENOKEY anyway). */
bool dgram_rekey_due(struct dgram_table *t, const char *peer, uint64_t now);
/* Whether an unauthenticated hint (a datagram under a key we do not hold,
 * which anyone can forge from a member's address) may start a rekey with
 * peer: only when nothing authenticated came from it within heard_ms (its
 * real datagrams verify: the hint is stale or forged) and no hint started
 * one within cooldown_ms. True marks the start; a peer we hold no keys for
 * at all is always allowed. */
bool dgram_hint_rekey_ok(struct dgram_table *t, const char *peer, uint64_t now, uint64_t heard_ms,
                         uint64_t cooldown_ms);
/* Not due again before `until` (the handshake started, or could not start
 * now): a failed rekey is retried then, not on every datagram. */
void dgram_rekey_defer(struct dgram_table *t, const char *peer, uint64_t until);
/* When, after install, a key of that lifetime and id comes due: in
 * [0.6, 0.9) x lifetime_ms, by the id's first two bytes. */
uint64_t dgram_rekey_after(uint64_t lifetime_ms, const uint8_t id[DGRAM_KEY_ID_LEN]);

/* Seals payload for peer into out (capacity outcap >= len + DGRAM_OVERHEAD).
 * 0 with *outlen set; -ENOKEY (no send key, or it retired: the caller uses
 * TLS and a new handshake makes keys), -EMSGSIZE (payload over
 * DGRAM_MAX_PAYLOAD), -ENOBUFS (outcap), -EIO (OpenSSL). */
int dgram_seal(struct dgram_table *t, const char *peer, const uint8_t *payload, size_t len,
               uint8_t *out, size_t outcap, size_t *outlen, uint64_t now);

/* Opens one received datagram. DGRAM_OK with the plaintext in out
 * (capacity outcap >= DGRAM_MAX_PAYLOAD), *outlen and *peer (the sender's
 * proven name) set; otherwise the reason it was dropped. Nothing in a
 * dropped datagram changes the table (the replay window moves only after
 * the tag verified). */
enum dgram_drop dgram_open(struct dgram_table *t, const uint8_t *dg, size_t len, uint8_t *out,
                           size_t outcap, size_t *outlen, const char **peer, uint64_t now);

void dgram_get_stats(const struct dgram_table *t, struct dgram_stats *out);
const char *dgram_drop_name(enum dgram_drop d); /* "short", "version", ... */

#endif
