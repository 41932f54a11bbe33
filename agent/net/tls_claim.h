/*
 * tls_claim.h — signed self-claims (issue 13: a host speaks only for
 * itself). A node signs what it says about itself (its node-state record)
 * with the key of its TLS node certificate, and the proof travels with the
 * claim, unchanged by whoever relays it. Any receiver checks it alone: the
 * proof carries the signer's certificate, which must chain to the cluster
 * CA (and pass whatever checks the CA store makes, revocation included),
 * have role node and CN = the claim's name.
 *
 * Proof layout (the wire contract, mv.StateRecord.proof):
 *   u16 big-endian n | n bytes: the signer's certificate, DER |
 *   the rest: ECDSA (or the key's algorithm) signature, DER, with SHA-256
 * over the claim's bytes:
 *   "meshvisor " kind " v1" NUL name NUL a (u64 BE) b (u64 BE) data
 *
 * Certificate checks are cached per certificate (by its SHA-256) for
 * TLS_CLAIM_CACHE_MS, so a claim costs one signature verification once its
 * signer's certificate was seen; a certificate that failed is not cached.
 * Threads: the loop's, like the tls_ctx it uses.
 */
#ifndef MESHVISOR_TLS_CLAIM_H
#define MESHVISOR_TLS_CLAIM_H

#include <stddef.h>
#include <stdint.h>

struct tls_ctx;

/* What a node says about itself. */
struct tls_claim {
	const char *kind; /* what it is, e.g. "state record" */
	const char *name; /* the node: must be the signer's CN */
	uint64_t a, b;    /* e.g. incarnation, version */
	const void *data; /* e.g. the record */
	size_t len;
};

#define TLS_CLAIM_CACHE_MS 60000
#define TLS_CLAIM_SIG_MAX 256 /* signature bytes accepted */

/* Writes the proof of c, made with ctx's own certificate and key, into out
 * (cap bytes). Returns its length, or -EINVAL (c->name is not our CN),
 * -ENOSPC (cap too small), -EIO (OpenSSL refused). */
int tls_claim_sign(struct tls_ctx *ctx, const struct tls_claim *c, uint8_t *out, size_t cap);

struct tls_claim_cache;
struct tls_claim_cache *tls_claim_cache_new(void); /* NULL: no memory */
void tls_claim_cache_free(struct tls_claim_cache *cc);
/* Forgets every checked certificate: the next claim of each signer is
 * checked against the CA store again (after a reload of the CA or CRL). */
void tls_claim_cache_clear(struct tls_claim_cache *cc);

/* Checks that proof (len bytes) proves c against ctx's CA. now_ms: any
 * monotonic clock, for the cache. 0, or -EACCES with the reason in why
 * ("no proof", "certificate is for 'n9', not 'n1'", "bad signature", ...). */
int tls_claim_verify(struct tls_claim_cache *cc, struct tls_ctx *ctx, const struct tls_claim *c,
                     const uint8_t *proof, size_t len, uint64_t now_ms, char *why, size_t whylen);

/*
 * Bare claims: the signature alone (no certificate: <= 72 bytes with a
 * P-256 key), for claims that must be small — a SWIM ALIVE rides in a
 * 1200-byte datagram. A receiver checks one with the certificate it holds
 * for the claim's name: learned from a full proof this cache verified
 * (tls_claim_verify learns it: every host's node-state record carries one)
 * or handed in (tls_claim_learn). A learned certificate is not trusted for
 * itself: each check passes it through the same certificate check (CA,
 * role, CN, revocation; cached TLS_CLAIM_CACHE_MS, cleared by
 * tls_claim_cache_clear) as a full proof's.
 */
/* The signature of c by our key into out (cap >= the key's signature size,
 * 72 for P-256). Its length, or -EINVAL (c->name is not our CN), -ENOSPC,
 * -EIO. */
int tls_claim_sign_bare(struct tls_ctx *ctx, const struct tls_claim *c, uint8_t *out, size_t cap);
/* 0, -EACCES (no or bad signature, refused certificate) or -ENOKEY (no
 * certificate of c->name known yet), with the reason in why. */
int tls_claim_verify_bare(struct tls_claim_cache *cc, struct tls_ctx *ctx,
                          const struct tls_claim *c, const uint8_t *sig, size_t len,
                          uint64_t now_ms, char *why, size_t whylen);
/* Holds der (n bytes) as name's certificate for bare claims (replacing
 * the one held; a memory failure keeps the old one). */
void tls_claim_learn(struct tls_claim_cache *cc, const char *name, const uint8_t *der, size_t n);

#endif
