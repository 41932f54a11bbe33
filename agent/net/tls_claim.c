/*
 * tls_claim.c — signed self-claims (tls_claim.h): proofs made with our
 * node key, checked against the cluster CA, certificate checks cached.
 */
#include "tls_claim.h"
#include "tls.h"
#include "tls_internal.h"
#include "prng.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

/* Direct-mapped: a slot per certificate digest's first bytes. At 1,024
 * slots a cluster of hundreds of nodes rarely evicts a live one, and an
 * eviction only costs one more certificate check. */
#define TLS_CLAIM_SLOTS 1024

struct tls_claim_slot {
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char name[256];   /* CN of the certificate */
	EVP_PKEY *key;    /* its public key (a reference); NULL: empty slot */
	uint64_t checked; /* now_ms of the check */
};

/* A signer's certificate by name (bare claims), as learned: not trusted
 * for itself, checked through the slots like a full proof's. */
struct tls_claim_signer {
	char name[256];
	uint8_t *der; /* NULL: empty */
	size_t n;
};

struct tls_claim_cache {
	struct tls_claim_slot slot[TLS_CLAIM_SLOTS];
	struct tls_claim_signer signer[TLS_CLAIM_SLOTS];
};

struct tls_claim_cache *tls_claim_cache_new(void)
{
	return calloc(1, sizeof(struct tls_claim_cache));
}

void tls_claim_cache_free(struct tls_claim_cache *cc)
{
	if (cc == NULL)
		return;
	tls_claim_cache_clear(cc);
	for (size_t i = 0; i < TLS_CLAIM_SLOTS; i++)
		free(cc->signer[i].der);
	free(cc);
}

void tls_claim_cache_clear(struct tls_claim_cache *cc)
{
	if (cc == NULL)
		return;
	for (size_t i = 0; i < TLS_CLAIM_SLOTS; i++) {
		EVP_PKEY_free(cc->slot[i].key);
		cc->slot[i].key = NULL;
	}
}

typedef int (*tls_claim_update_fn)(EVP_MD_CTX *, const void *, size_t);

/* Feeds the claim's bytes (the layout in tls_claim.h) to a sign or verify
 * digest. 1, or 0 when OpenSSL refused. */
static int tls_claim_feed(EVP_MD_CTX *md, tls_claim_update_fn update, const struct tls_claim *c)
{
	char head[96];
	int n = snprintf(head, sizeof(head), "meshvisor %s v1", c->kind);
	if (n < 0 || (size_t)n >= sizeof(head))
		return 0;
	uint8_t num[16];
	for (int k = 0; k < 8; k++) {
		num[k] = (uint8_t)(c->a >> (56 - 8 * k));
		num[8 + k] = (uint8_t)(c->b >> (56 - 8 * k));
	}
	return update(md, head, (size_t)n + 1) == 1 &&
	       update(md, c->name, strlen(c->name) + 1) == 1 && update(md, num, sizeof(num)) == 1 &&
	       (c->len == 0 || update(md, c->data, c->len) == 1);
}

/* Signs c with key into out (cap >= the key's signature size): the
 * signature's length, or -EIO. */
static int tls_claim_sig(EVP_PKEY *key, const struct tls_claim *c, uint8_t *out, size_t cap)
{
	int rc = -EIO;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t sig_len = cap;
	if (md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    tls_claim_feed(md, EVP_DigestSignUpdate, c) &&
	    EVP_DigestSignFinal(md, out, &sig_len) == 1)
		rc = (int)sig_len;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

int tls_claim_sign(struct tls_ctx *ctx, const struct tls_claim *c, uint8_t *out, size_t cap)
{
	if (strcmp(c->name, tls_ctx_own_name(ctx)) != 0)
		return -EINVAL;
	SSL_CTX *sctx = tls_ctx_ssl(ctx);
	X509 *cert = SSL_CTX_get0_certificate(sctx);
	EVP_PKEY *key = SSL_CTX_get0_privatekey(sctx);
	if (cert == NULL || key == NULL)
		return -EIO;
	int der = i2d_X509(cert, NULL);
	if (der <= 0 || der > 0xffff)
		return -EIO;
	size_t sig_max = (size_t)EVP_PKEY_get_size(key);
	if (cap < 2 + (size_t)der + sig_max)
		return -ENOSPC;
	out[0] = (uint8_t)(der >> 8);
	out[1] = (uint8_t)der;
	uint8_t *p = out + 2;
	i2d_X509(cert, &p);
	int rc = tls_claim_sig(key, c, p, sig_max);
	return rc < 0 ? rc : (int)(2 + (size_t)der + (size_t)rc);
}

int tls_claim_sign_bare(struct tls_ctx *ctx, const struct tls_claim *c, uint8_t *out, size_t cap)
{
	if (strcmp(c->name, tls_ctx_own_name(ctx)) != 0)
		return -EINVAL;
	EVP_PKEY *key = SSL_CTX_get0_privatekey(tls_ctx_ssl(ctx));
	if (key == NULL)
		return -EIO;
	if (cap < (size_t)EVP_PKEY_get_size(key))
		return -ENOSPC;
	return tls_claim_sig(key, c, out, cap);
}

/* Checks the certificate of a proof (der, n bytes) for claims by `name`:
 * chains to ctx's CA store now, role node, CN = name. Returns its public
 * key (a new reference), or NULL with the reason in why. */
static EVP_PKEY *tls_claim_cert_key(struct tls_ctx *ctx, const uint8_t *der, size_t n,
                                    const char *name, char *why, size_t whylen)
{
	const uint8_t *p = der;
	X509 *cert = d2i_X509(NULL, &p, (long)n);
	EVP_PKEY *key = NULL;
	if (cert == NULL || p != der + n) {
		tls_errf(why, whylen, "undecodable certificate in the proof");
		goto out;
	}
	char cn[256], ou[64];
	tls_x509_text(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
	tls_x509_text(X509_get_subject_name(cert), NID_organizationalUnitName, ou, sizeof(ou));
	if (strcmp(cn, name) != 0) {
		tls_errf(why, whylen, "certificate is for '%s', not '%s'", cn, name);
		goto out;
	}
	if (tls_role_parse(ou) != TLS_ROLE_NODE) {
		tls_errf(why, whylen, "certificate of '%s' has role '%s', not node", cn, ou);
		goto out;
	}
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	if (vc == NULL ||
	    !X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(tls_ctx_ssl(ctx)), cert, NULL)) {
		X509_STORE_CTX_free(vc);
		tls_errf(why, whylen, "out of memory checking a certificate");
		goto out;
	}
	if (X509_verify_cert(vc) != 1) {
		tls_errf(why, whylen, "certificate of '%s' refused by the cluster CA (%s)", cn,
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
		X509_STORE_CTX_free(vc);
		goto out;
	}
	X509_STORE_CTX_free(vc);
	key = X509_get_pubkey(cert);
	if (key == NULL)
		tls_errf(why, whylen, "certificate of '%s' has no usable key", cn);
out:
	X509_free(cert);
	ERR_clear_error();
	return key;
}

static int tls_claim_check(struct tls_claim_cache *cc, struct tls_ctx *ctx,
                           const struct tls_claim *c, const uint8_t *der, size_t n,
                           const uint8_t *sig, size_t sig_len, uint64_t now_ms, char *why,
                           size_t whylen);

static struct tls_claim_signer *tls_claim_signer_of(struct tls_claim_cache *cc, const char *name)
{
	uint64_t h = mv_fnv1a64(MV_FNV1A64_OFFSET, name);
	return &cc->signer[h % TLS_CLAIM_SLOTS];
}

void tls_claim_learn(struct tls_claim_cache *cc, const char *name, const uint8_t *der, size_t n)
{
	struct tls_claim_signer *g = tls_claim_signer_of(cc, name);
	if (g->der != NULL && g->n == n && strcmp(g->name, name) == 0 &&
	    memcmp(g->der, der, n) == 0)
		return;
	uint8_t *copy = malloc(n ? n : 1);
	if (copy == NULL)
		return; /* its bare claims wait for the next full proof */
	memcpy(copy, der, n);
	free(g->der);
	g->der = copy;
	g->n = n;
	snprintf(g->name, sizeof(g->name), "%s", name);
}

int tls_claim_verify_bare(struct tls_claim_cache *cc, struct tls_ctx *ctx,
                          const struct tls_claim *c, const uint8_t *sig, size_t len,
                          uint64_t now_ms, char *why, size_t whylen)
{
	if (sig == NULL || len == 0) {
		tls_errf(why, whylen, "no proof");
		return -EACCES;
	}
	if (len > TLS_CLAIM_SIG_MAX) {
		tls_errf(why, whylen, "malformed proof");
		return -EACCES;
	}
	struct tls_claim_signer *g = tls_claim_signer_of(cc, c->name);
	if (g->der == NULL || strcmp(g->name, c->name) != 0) {
		tls_errf(why, whylen, "no certificate of '%s' known yet", c->name);
		return -ENOKEY;
	}
	return tls_claim_check(cc, ctx, c, g->der, g->n, sig, len, now_ms, why, whylen);
}

int tls_claim_verify(struct tls_claim_cache *cc, struct tls_ctx *ctx, const struct tls_claim *c,
                     const uint8_t *proof, size_t len, uint64_t now_ms, char *why, size_t whylen)
{
	if (proof == NULL || len == 0) {
		tls_errf(why, whylen, "no proof");
		return -EACCES;
	}
	size_t n = len >= 2 ? (size_t)proof[0] << 8 | proof[1] : 0;
	if (len < 2 || n == 0 || len - 2 <= n || len - 2 - n > TLS_CLAIM_SIG_MAX) {
		tls_errf(why, whylen, "malformed proof");
		return -EACCES;
	}
	const uint8_t *der = proof + 2, *sig = proof + 2 + n;
	size_t sig_len = len - 2 - n;
	int rc = tls_claim_check(cc, ctx, c, der, n, sig, sig_len, now_ms, why, whylen);
	if (rc == 0)
		tls_claim_learn(cc, c->name, der, n);
	return rc;
}

/* Checks that sig (sig_len bytes) signs c with the key of certificate der
 * (n bytes), which must pass tls_claim_cert_key (cached). */
static int tls_claim_check(struct tls_claim_cache *cc, struct tls_ctx *ctx,
                           const struct tls_claim *c, const uint8_t *der, size_t n,
                           const uint8_t *sig, size_t sig_len, uint64_t now_ms, char *why,
                           size_t whylen)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256(der, n, digest);
	struct tls_claim_slot *s =
	    &cc->slot[((size_t)digest[0] << 8 | digest[1]) % TLS_CLAIM_SLOTS];
	if (s->key == NULL || memcmp(s->digest, digest, sizeof(digest)) != 0 ||
	    strcmp(s->name, c->name) != 0 || now_ms - s->checked >= TLS_CLAIM_CACHE_MS) {
		EVP_PKEY *key = tls_claim_cert_key(ctx, der, n, c->name, why, whylen);
		if (key == NULL)
			return -EACCES;
		EVP_PKEY_free(s->key);
		s->key = key;
		memcpy(s->digest, digest, sizeof(digest));
		snprintf(s->name, sizeof(s->name), "%s", c->name);
		s->checked = now_ms;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, s->key) == 1 &&
	          tls_claim_feed(md, EVP_DigestVerifyUpdate, c) &&
	          EVP_DigestVerifyFinal(md, sig, sig_len) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok) {
		tls_errf(why, whylen, "bad signature by '%s'", c->name);
		return -EACCES;
	}
	return 0;
}
