/*
 * tls.c — TLS 1.3 with mutual authentication, as a session with no socket.
 *
 * Why it exists
 *   Every byte between meshvisor processes is TLS 1.3 and both ends show a
 *   certificate signed by the cluster CA. This file is the only place that
 *   talks to libssl, so the rest of the agent sees a byte pipe plus "who is
 *   on the other end" (name = subject CN, role = subject OU) and, when it
 *   breaks, a sentence a person can act on.
 *
 * How it works
 *   struct tls_ctx wraps one SSL_CTX built from three PEM files (CA,
 *   certificate, key). Loading checks what OpenSSL would only find out at
 *   the first handshake: the key matches the certificate, the certificate
 *   chains to the CA (time is not checked here, so that tests can build
 *   clients with expired certificates on purpose) and carries a role. Only
 *   the cluster CA is trusted; the system trust store is never loaded.
 *
 *   struct tls_conn is one SSL object between two memory BIOs. The caller
 *   feeds socket bytes into the read BIO and takes ciphertext out of the
 *   write BIO; nothing here blocks or touches a file descriptor, so the
 *   unit tests run a client and a server in one process by copying bytes
 *   between them. Every feed drives the state machine as far as it goes:
 *   the handshake first, then SSL_read into an internal plaintext buffer.
 *   Reading eagerly is what lets feed report a failure as soon as the bytes
 *   that carry it arrive — which matters for the case below.
 *
 *   TLS 1.3 and the late alert. A TLS 1.3 client sends its certificate and
 *   its Finished message in one flight and considers the handshake done at
 *   that moment. The server checks the certificate only when it reads that
 *   flight, so its refusal ("certificate expired") arrives as an alert
 *   *after* the client's handshake completed. The info callback records
 *   every alert received; when a later read fails, the alert number is
 *   turned into "the agent refused our certificate: certificate expired
 *   (TLS alert 45)" instead of OpenSSL's "sslv3 alert certificate expired".
 *
 *   Verification reasons. The verify callback keeps the first X.509 error
 *   and the subject of the refused certificate, and also refuses a peer
 *   certificate without a role (reported as an unsupported purpose, alert
 *   43, to the peer). The side that refuses writes why ("refused client
 *   'op1': certificate expired (certificate has expired)") into
 *   tls_conn_error() for the caller to log.
 *
 *   After the handshake the client compares the server's CN and role with
 *   what the caller expected (expect_name, require_role). Plaintext written
 *   before the handshake is held until both checks pass, so nothing is
 *   ever sent to the wrong peer. A client that dialed an address or a host
 *   name (the CLI) also asks, with tls_conn_expect_host, that the server's
 *   subjectAltName lists it: every agent holds a certificate of the same CA,
 *   and only the address tells the one it meant from one that answers in
 *   its place.
 *
 *   Resumption. TLS 1.3 servers send session tickets after the handshake.
 *   Client contexts keep the newest ticket per session_key (the caller
 *   passes the peer address) in a small table owned by the tls_ctx, filled
 *   by OpenSSL's new-session callback. The next tls_conn with that key
 *   offers it and skips the certificate exchange. Server contexts issue one
 *   stateless ticket per handshake (the key lives in the SSL_CTX, so a
 *   server reload quietly turns old tickets into full handshakes). Neither
 *   side resumes a session whose peer certificate has expired since: that
 *   peer must show its certificate again, and be refused.
 *
 *   Revocation. A context made with a CRL file (tls_ctx_new_crl) adds the
 *   CRL to its store with X509_V_FLAG_CRL_CHECK, so a listed peer fails
 *   verification like an expired one ("certificate revoked by the cluster
 *   CRL", alert 44 to the peer), and neither side resumes a session of a
 *   listed certificate. Loading checks that the cluster CA signed the CRL
 *   and that it does not list our own certificate. A CRL past its
 *   nextUpdate still applies (refusing every peer because nobody re-signed
 *   the list would stop the cluster); a certificate of a second CA in the
 *   CA file, which has no CRL, is checked without one. The store carries
 *   the CRL, its check flag and that rule (tls_on_store_verify), so any
 *   other verification against the context's store (a peer's certificate
 *   behind a signed claim) refuses a revoked one the same way. Sessions that
 *   began before a reload are not re-verified by OpenSSL: the owner asks
 *   tls_conn_peer_distrusted after each reload and closes those whose peer
 *   the new CRL revokes or whose CA the new CA file no longer holds (a CA
 *   rotation's last step), and resumption checks both too.
 *
 *   Reload. tls_ctx_reload builds a complete new SSL_CTX from the files and
 *   swaps it in only when every check passed. Each SSL holds its own
 *   reference to the SSL_CTX it was made from, so established sessions keep
 *   the old one alive until they end; the tls_ctx itself is reference-
 *   counted by its tls_conns, so tls_ctx_free() may come first. A reload
 *   empties the session cache (a new CA must not be bypassed by resuming a
 *   session that the old one authenticated) and bumps a generation number
 *   so that tickets arriving on old sessions are not cached.
 *
 * Threads: none. A tls_ctx and its tls_conns belong to one thread (the
 * libuv loop); OpenSSL's error queue is cleared before every call.
 */
#include "tls.h"
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Sessions remembered per client context. A node keeps a bounded pool of
 * peer connections (far fewer than this), and the CLI talks to one agent;
 * 1024 entries of ~1-2 KiB each is cheap and a linear scan at connect time
 * costs nothing next to a handshake. */
#define TLS_SESSION_CACHE_MAX 1024
/* CA -> (optional intermediate) -> leaf, with room to spare. */
#define TLS_VERIFY_DEPTH 4
/* One TLS record's worth of plaintext per SSL_read. */
#define TLS_READ_CHUNK 16384
/* Ties server-side session tickets to this application. */
static const unsigned char tls_sid_ctx[] = "meshvisor";

/* ---- roles ---------------------------------------------------------- */

const char *tls_role_name(enum tls_role r)
{
	switch (r) {
	case TLS_ROLE_NODE:
		return "node";
	case TLS_ROLE_OPERATOR:
		return "operator";
	case TLS_ROLE_VIEWER:
		return "viewer";
	case TLS_ROLE_NONE:
		break;
	}
	return "none";
}

enum tls_role tls_role_parse(const char *s)
{
	if (!s)
		return TLS_ROLE_NONE;
	if (strcmp(s, "node") == 0)
		return TLS_ROLE_NODE;
	if (strcmp(s, "operator") == 0)
		return TLS_ROLE_OPERATOR;
	if (strcmp(s, "viewer") == 0)
		return TLS_ROLE_VIEWER;
	return TLS_ROLE_NONE;
}

bool tls_role_may_write(enum tls_role r)
{
	return r == TLS_ROLE_NODE || r == TLS_ROLE_OPERATOR;
}

bool tls_role_may_read(enum tls_role r)
{
	return r == TLS_ROLE_NODE || r == TLS_ROLE_OPERATOR || r == TLS_ROLE_VIEWER;
}

/* ---- small helpers -------------------------------------------------- */

void tls_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Drains OpenSSL's error queue into "reason; reason" (most useful last). */
static const char *tls_ossl_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t used = 0;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		const char *r = ERR_reason_error_string(e);

		if (!r) {
			ERR_error_string_n(e, one, sizeof(one));
			r = one;
		}
		if (used < len) {
			int n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "", r);
			if (n > 0)
				used += (size_t)n;
		}
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "no detail from OpenSSL");
	return buf;
}

void tls_x509_text(X509_NAME *n, int nid, char *buf, size_t len)
{
	buf[0] = '\0';
	if (n && X509_NAME_get_text_by_NID(n, nid, buf, (int)len) < 0)
		buf[0] = '\0';
}

void tls_x509_sans(X509 *x, struct tls_cert_info *out)
{
	GENERAL_NAMES *gens;

	out->n_ips = out->n_dns = 0;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_IPADD && out->n_ips < TLS_CERT_INFO_MAX_SAN) {
			const ASN1_OCTET_STRING *o = g->d.iPAddress;
			int af = ASN1_STRING_length(o) == 4 ? AF_INET : AF_INET6;

			if ((ASN1_STRING_length(o) == 4 || ASN1_STRING_length(o) == 16) &&
			    inet_ntop(af, ASN1_STRING_get0_data(o), out->ips[out->n_ips],
			              sizeof(out->ips[0])))
				out->n_ips++;
		} else if (g->type == GEN_DNS && out->n_dns < TLS_CERT_INFO_MAX_SAN) {
			snprintf(out->dns[out->n_dns++], sizeof(out->dns[0]), "%.*s",
			         ASN1_STRING_length(g->d.dNSName),
			         (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		}
	}
	GENERAL_NAMES_free(gens);
}

static enum tls_role tls_x509_role(X509 *x)
{
	char ou[64];

	tls_x509_text(X509_get_subject_name(x), NID_organizationalUnitName, ou, sizeof(ou));
	return tls_role_parse(ou);
}

static int64_t tls_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* A growable byte queue: data[off, len) is pending. */
struct tls_buf {
	unsigned char *data;
	size_t off, len, cap;
};

static int tls_buf_append(struct tls_buf *b, const void *p, size_t n)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t live = b->len - b->off;
		size_t cap = b->cap ? b->cap : 4096;

		if (b->off > 0) { /* compact first */
			memmove(b->data, b->data + b->off, live);
			b->off = 0;
			b->len = live;
		}
		while (cap < live + n)
			cap *= 2;
		if (cap > b->cap) {
			unsigned char *d = realloc(b->data, cap);
			if (!d)
				return -ENOMEM;
			b->data = d;
			b->cap = cap;
		}
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static size_t tls_buf_pending(const struct tls_buf *b)
{
	return b->len - b->off;
}

static void tls_buf_free(struct tls_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- context -------------------------------------------------------- */

struct tls_session_entry {
	char *key;
	SSL_SESSION *sess;
	uint64_t stamp; /* larger = stored more recently */
};

struct tls_ctx {
	unsigned refs; /* 1 for the owner until tls_ctx_free + 1 per tls_conn */
	bool server;
	unsigned flags;
	char *ca_file, *cert_file, *key_file;
	char *crl_file;      /* NULL: no revocation list */
	SSL_CTX *ssl_ctx;    /* what new tls_conns use */
	X509_CRL *crl;       /* the CRL ssl_ctx checks peers against, or NULL */
	uint64_t generation; /* bumped by every successful reload */
	char own_name[256];
	enum tls_role own_role;
	int64_t own_not_after;
	struct tls_session_entry *cache;
	size_t n_cache, cap_cache;
	uint64_t cache_clock;
};

SSL_CTX *tls_ctx_ssl(struct tls_ctx *ctx)
{
	return ctx->ssl_ctx;
}

struct tls_conn {
	struct tls_ctx *ctx;
	SSL *ssl;
	uint64_t generation; /* ctx->generation when made */
	bool server;
	char *expect_name;
	char *expect_host; /* client: an IP or DNS name the server's SAN must list */
	enum tls_role require_role;
	char *session_key;

	bool handshake_done;
	bool failed;
	bool peer_closed;
	bool shutdown_sent;
	bool resumed;
	int fail_rc;
	int alert_received; /* last alert the peer sent (not close_notify), -1 none */

	/* What the verify callback saw when it refused the peer. */
	int verify_err;
	bool verify_no_role;
	char verify_subject[256];

	char peer_name[256];
	enum tls_role peer_role;
	uint8_t peer_cert_id[TLS_CERT_ID_LEN]; /* tls_cert_id of its certificate */
	bool has_peer_cert_id;

	struct tls_buf pending_out; /* plaintext held until the handshake is done */
	struct tls_buf plain_in;    /* decrypted, not yet read by the caller */
	char err[512];
};

static void tls_cache_flush(struct tls_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_cache; i++) {
		free(ctx->cache[i].key);
		SSL_SESSION_free(ctx->cache[i].sess);
	}
	ctx->n_cache = 0;
}

static struct tls_session_entry *tls_cache_find(struct tls_ctx *ctx, const char *key)
{
	for (size_t i = 0; i < ctx->n_cache; i++)
		if (strcmp(ctx->cache[i].key, key) == 0)
			return &ctx->cache[i];
	return NULL;
}

static void tls_cache_drop(struct tls_ctx *ctx, const char *key)
{
	struct tls_session_entry *e = tls_cache_find(ctx, key);

	if (!e)
		return;
	free(e->key);
	SSL_SESSION_free(e->sess);
	*e = ctx->cache[--ctx->n_cache];
}

/* Takes ownership of sess on success (returns true). */
static bool tls_cache_put(struct tls_ctx *ctx, const char *key, SSL_SESSION *sess)
{
	struct tls_session_entry *e = tls_cache_find(ctx, key);

	if (e) {
		SSL_SESSION_free(e->sess);
		e->sess = sess;
		e->stamp = ++ctx->cache_clock;
		return true;
	}
	if (ctx->n_cache == TLS_SESSION_CACHE_MAX) {
		size_t oldest = 0;
		for (size_t i = 1; i < ctx->n_cache; i++)
			if (ctx->cache[i].stamp < ctx->cache[oldest].stamp)
				oldest = i;
		tls_cache_drop(ctx, ctx->cache[oldest].key);
	}
	if (ctx->n_cache == ctx->cap_cache) {
		size_t cap = ctx->cap_cache ? ctx->cap_cache * 2 : 16;
		struct tls_session_entry *n;

		if (cap > TLS_SESSION_CACHE_MAX)
			cap = TLS_SESSION_CACHE_MAX;
		n = realloc(ctx->cache, cap * sizeof(*n));
		if (!n)
			return false;
		ctx->cache = n;
		ctx->cap_cache = cap;
	}
	e = &ctx->cache[ctx->n_cache];
	e->key = strdup(key);
	if (!e->key)
		return false;
	e->sess = sess;
	e->stamp = ++ctx->cache_clock;
	ctx->n_cache++;
	return true;
}

/* OpenSSL: a client received a session ticket. */
static int tls_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *c = SSL_get_app_data(ssl);

	if (!c || c->server || !c->session_key || c->failed || c->generation != c->ctx->generation)
		return 0; /* OpenSSL keeps (and frees) the session */
	return tls_cache_put(c->ctx, c->session_key, sess) ? 1 : 0;
}

/* OpenSSL: every alert read or written. */
static void tls_on_info(const SSL *ssl, int where, int ret)
{
	struct tls_conn *c;

	if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT)
		return;
	c = SSL_get_app_data(ssl);
	if (c && (ret & 0xff) != SSL_AD_CLOSE_NOTIFY)
		c->alert_received = ret & 0xff;
}

/* Verification errors that a CRL in force does not turn into a refusal. A
 * CRL past its nextUpdate (or from a clock ahead of ours) still says who is
 * revoked: use it rather than refuse every peer. The CRL is the cluster
 * CA's: a second CA in the CA file (while the CA is being replaced) has
 * none, and its certificates are checked without one. */
static bool tls_crl_soft_error(int e)
{
	return e == X509_V_ERR_CRL_HAS_EXPIRED || e == X509_V_ERR_CRL_NOT_YET_VALID ||
	       e == X509_V_ERR_UNABLE_TO_GET_CRL;
}

/* The store's own callback: every verification against a context's store
 * outside a handshake (certificates checked for signed claims) applies the
 * CRL with the same rule as the handshake (tls_on_verify). */
static int tls_on_store_verify(int ok, X509_STORE_CTX *sc)
{
	return ok || tls_crl_soft_error(X509_STORE_CTX_get_error(sc));
}

/* OpenSSL: one step of certificate verification of the peer. */
static int tls_on_verify(int ok, X509_STORE_CTX *sc)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(sc, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(sc);

	if (!c)
		return ok;
	if (!ok) {
		if (tls_crl_soft_error(X509_STORE_CTX_get_error(sc)))
			return 1;
		if (c->verify_err == 0 && !c->verify_no_role) {
			c->verify_err = X509_STORE_CTX_get_error(sc);
			tls_x509_text(leaf ? X509_get_subject_name(leaf) : NULL, NID_commonName,
			              c->verify_subject, sizeof(c->verify_subject));
		}
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(sc) == 0 && leaf &&
	    tls_x509_role(leaf) == TLS_ROLE_NONE) {
		c->verify_no_role = true;
		tls_x509_text(X509_get_subject_name(leaf), NID_commonName, c->verify_subject,
		              sizeof(c->verify_subject));
		/* sent to the peer as "unsupported certificate" (alert 43) */
		X509_STORE_CTX_set_error(sc, X509_V_ERR_INVALID_PURPOSE);
		return 0;
	}
	return 1;
}

/* A resumed handshake shows no certificate, so without this check a peer
 * that keeps reconnecting could ride one ticket chain past its expiry or
 * its revocation. */
/* A certificate's identity: SHA-256 over the DER of its issuer's name and
 * of its serial number — what a CRL names, and unique per CA (RFC 5280
 * 4.1.2.2), so two certificates issued for one name differ. */
static bool tls_cert_id(const X509_NAME *issuer, const ASN1_INTEGER *serial,
                        uint8_t out[TLS_CERT_ID_LEN])
{
	unsigned char *in = NULL, *sn = NULL;
	int il = issuer ? i2d_X509_NAME(issuer, &in) : -1;
	int sl = serial ? i2d_ASN1_INTEGER(serial, &sn) : -1;
	bool ok = false;
	if (il > 0 && sl > 0) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		unsigned int dl = 0;
		ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		     EVP_DigestUpdate(md, in, (size_t)il) == 1 &&
		     EVP_DigestUpdate(md, sn, (size_t)sl) == 1 &&
		     EVP_DigestFinal_ex(md, out, &dl) == 1 && dl == TLS_CERT_ID_LEN;
		EVP_MD_CTX_free(md);
	}
	OPENSSL_free(in);
	OPENSSL_free(sn);
	ERR_clear_error();
	return ok;
}

static bool tls_crl_revokes(X509_CRL *crl, X509 *x)
{
	X509_REVOKED *r;

	return crl && x && X509_CRL_get0_by_cert(crl, &r, x) == 1;
}

/* Does a peer's certificate (with the intermediates it sent, if any) still
 * chain to a CA of the CA file now in force, for the role it played (the
 * other side of ours: a server's peer is a client)? Validity times are not
 * checked here. The store also applies the CRL (tls_on_store_verify). */
static bool tls_peer_chains(const struct tls_ctx *ctx, X509 *peer, STACK_OF(X509) * chain)
{
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	bool ok = false;

	if (vc && X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(ctx->ssl_ctx), peer, chain)) {
		X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(vc),
		                            X509_V_FLAG_NO_CHECK_TIME);
		X509_STORE_CTX_set_purpose(vc, ctx->server ? X509_PURPOSE_SSL_CLIENT
		                                           : X509_PURPOSE_SSL_SERVER);
		ok = X509_verify_cert(vc) == 1;
	}
	X509_STORE_CTX_free(vc);
	ERR_clear_error();
	return ok;
}

/* Is the certificate inside a session still within its validity period,
 * not revoked by the CRL now in force, and signed by a CA now trusted? (A
 * session keeps only the leaf: a certificate that needs an intermediate is
 * not resumed, which costs a full handshake, never trust.) */
static bool tls_session_peer_current(const struct tls_ctx *ctx, const SSL_SESSION *sess)
{
	X509 *peer = SSL_SESSION_get0_peer((SSL_SESSION *)sess);

	return peer && X509_cmp_current_time(X509_get0_notBefore(peer)) < 0 &&
	       X509_cmp_current_time(X509_get0_notAfter(peer)) > 0 &&
	       !tls_crl_revokes(ctx->crl, peer) && tls_peer_chains(ctx, peer, NULL);
}

/* OpenSSL (server): a client offered a ticket. One whose certificate has
 * expired since is ignored, so the client goes through a full handshake
 * and is refused there with the usual alert and log line. */
static SSL_TICKET_RETURN tls_on_ticket(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                       size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	struct tls_conn *c = SSL_get_app_data(ssl);
	bool ok = c && sess && tls_session_peer_current(c->ctx, sess);

	switch (status) {
	case SSL_TICKET_SUCCESS:
		return ok ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_IGNORE_RENEW;
	case SSL_TICKET_SUCCESS_RENEW:
		return ok ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_IGNORE_RENEW;
	default: /* empty, or not ours (e.g. from before a reload) */
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	}
}

static int tls_no_password(char *buf, int size, int rwflag, void *u)
{
	return 0; /* encrypted keys are not supported: fail instead of prompting */
}

static FILE *tls_fopen(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (!f)
		tls_errf(err, errlen, "cannot open %s '%s': %s", what, path, strerror(errno));
	return f;
}

/* Reads every PEM certificate in a file (at least one). */
static int tls_read_certs(const char *what, const char *path, STACK_OF(X509) * *out, char *err,
                          size_t errlen)
{
	char detail[256];
	FILE *f = tls_fopen(what, path, err, errlen);
	STACK_OF(X509) * sk;
	X509 *x;

	if (!f)
		return -errno;
	sk = sk_X509_new_null();
	if (!sk) {
		fclose(f);
		return -ENOMEM;
	}
	ERR_clear_error();
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	}
	fclose(f);
	if (sk_X509_num(sk) == 0) {
		tls_errf(err, errlen, "%s '%s' holds no PEM certificate (%s)", what, path,
		         tls_ossl_errors(detail, sizeof(detail)));
		sk_X509_free(sk);
		return -EINVAL;
	}
	ERR_clear_error(); /* the "no start line" that ended the loop */
	*out = sk;
	return 0;
}

static int tls_read_key(const char *path, EVP_PKEY **out, char *err, size_t errlen)
{
	char detail[256];
	FILE *f = tls_fopen("private key", path, err, errlen);

	if (!f)
		return -errno;
	ERR_clear_error();
	*out = PEM_read_PrivateKey(f, NULL, tls_no_password, NULL);
	fclose(f);
	if (!*out) {
		tls_errf(
		    err, errlen,
		    "cannot read a private key from '%s' (%s); it must be an unencrypted PEM key",
		    path, tls_ossl_errors(detail, sizeof(detail)));
		return -EINVAL;
	}
	return 0;
}

/* Everything one reload produces; swapped in as a whole. */
struct tls_material {
	SSL_CTX *ssl_ctx;
	X509_CRL *crl;
	char name[256];
	enum tls_role role;
	int64_t not_after;
};

/* Checks that cert chains to the CAs in store, ignoring time, for the use
 * this context makes of it. */
static int tls_check_chain(SSL_CTX *sctx, bool server, X509 *cert, STACK_OF(X509) * chain,
                           const char *cert_file, const char *ca_file, char *err, size_t errlen)
{
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	int rc = 0, e;

	if (!vc || !X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(sctx), cert, chain)) {
		X509_STORE_CTX_free(vc);
		tls_errf(err, errlen, "out of memory checking '%s'", cert_file);
		return -ENOMEM;
	}
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(vc), X509_V_FLAG_NO_CHECK_TIME);
	X509_STORE_CTX_set_purpose(vc, server ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(vc) != 1) {
		e = X509_STORE_CTX_get_error(vc);
		if (e == X509_V_ERR_INVALID_PURPOSE)
			tls_errf(err, errlen,
			         "certificate '%s' (role %s) cannot be used to %s: only node "
			         "certificates may serve (%s)",
			         cert_file, tls_role_name(tls_x509_role(cert)),
			         server ? "accept connections" : "connect",
			         X509_verify_cert_error_string(e));
		else
			tls_errf(err, errlen,
			         "certificate '%s' is not signed by the CA in '%s' (%s)", cert_file,
			         ca_file, X509_verify_cert_error_string(e));
		rc = -EINVAL;
	}
	X509_STORE_CTX_free(vc);
	ERR_clear_error();
	return rc;
}

/* Makes the cluster CA in ca_file, and nothing else, trusted by sctx. */
static int tls_trust_ca(SSL_CTX *sctx, const char *ca_file, char *err, size_t errlen)
{
	char detail[256];
	STACK_OF(X509) *cas = NULL;
	int rc = tls_read_certs("CA file", ca_file, &cas, err, errlen);
	if (rc)
		return rc;
	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);
		if (X509_check_ca(ca) < 1) {
			char cn[256];
			tls_x509_text(X509_get_subject_name(ca), NID_commonName, cn, sizeof(cn));
			tls_errf(err, errlen, "'%s' is not a CA certificate (CN=%s)", ca_file, cn);
			rc = -EINVAL;
			break;
		}
		if (!X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), ca)) {
			tls_errf(err, errlen, "cannot use CA from '%s' (%s)", ca_file,
			         tls_ossl_errors(detail, sizeof(detail)));
			rc = -EINVAL;
			break;
		}
	}
	sk_X509_pop_free(cas, X509_free); /* the store holds its own references */
	return rc;
}

/* Loads this side's certificate (with any intermediates) and key into
 * sctx, after checking that they match, that the certificate has a role
 * and (unless a test flag says otherwise) that the CA signed it. Fills
 * m's name, role and expiry. */
static int tls_use_identity(SSL_CTX *sctx, bool server, unsigned flags, const char *ca_file,
                            const char *cert_file, const char *key_file, struct tls_material *m,
                            char *err, size_t errlen)
{
	char detail[256];
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int rc = tls_read_certs("certificate file", cert_file, &certs, err, errlen);
	if (rc)
		goto out;
	cert = sk_X509_shift(certs); /* the rest, if any, are intermediates */
	rc = tls_read_key(key_file, &key, err, errlen);
	if (rc)
		goto out;
	if (X509_check_private_key(cert, key) != 1) {
		tls_errf(err, errlen, "private key '%s' does not match certificate '%s' (%s)",
		         key_file, cert_file, tls_ossl_errors(detail, sizeof(detail)));
		rc = -EINVAL;
		goto out;
	}
	tls_x509_text(X509_get_subject_name(cert), NID_commonName, m->name, sizeof(m->name));
	m->role = tls_x509_role(cert);
	m->not_after = tls_asn1_time(X509_get0_notAfter(cert));
	if (m->role == TLS_ROLE_NONE && !(flags & TLS_CTX_TEST_ANY_ROLE)) {
		tls_errf(err, errlen,
		         "certificate '%s' (CN=%s) has no role: its subject OU must be "
		         "node, operator or viewer",
		         cert_file, m->name);
		rc = -EINVAL;
		goto out;
	}
	if (!(flags & TLS_CTX_TEST_ANY_ISSUER)) {
		rc = tls_check_chain(sctx, server, cert, certs, cert_file, ca_file, err, errlen);
		if (rc)
			goto out;
	}
	if (SSL_CTX_use_certificate(sctx, cert) != 1 || SSL_CTX_use_PrivateKey(sctx, key) != 1 ||
	    (sk_X509_num(certs) > 0 && SSL_CTX_set1_chain(sctx, certs) != 1)) {
		tls_errf(err, errlen, "cannot use certificate '%s' with key '%s' (%s)", cert_file,
		         key_file, tls_ossl_errors(detail, sizeof(detail)));
		rc = -EINVAL;
	}
out:
	sk_X509_pop_free(certs, X509_free);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* Reads the CRL in crl_file, checks that a CA trusted by sctx signed it and
 * that it does not revoke our own certificate, and makes sctx refuse every
 * peer certificate it lists. */
static int tls_use_crl(SSL_CTX *sctx, const char *crl_file, const char *cert_file,
                       struct tls_material *m, char *err, size_t errlen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(sctx);
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
	char detail[256];
	X509_CRL *crl;
	bool signed_ok = false;
	FILE *f = tls_fopen("CRL file", crl_file, err, errlen);

	if (!f)
		return -errno;
	ERR_clear_error();
	crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	if (!crl) {
		tls_errf(err, errlen, "CRL file '%s' holds no PEM CRL (%s)", crl_file,
		         tls_ossl_errors(detail, sizeof(detail)));
		return -EINVAL;
	}
	for (int i = 0; i < sk_X509_OBJECT_num(objs) && !signed_ok; i++) {
		X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		signed_ok =
		    ca && X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1;
	}
	ERR_clear_error();
	if (!signed_ok) {
		tls_errf(err, errlen, "CRL file '%s' is not signed by the cluster CA", crl_file);
		X509_CRL_free(crl);
		return -EINVAL;
	}
	if (tls_crl_revokes(crl, SSL_CTX_get0_certificate(sctx))) {
		tls_errf(err, errlen, "our certificate '%s' is revoked by the CRL in '%s'",
		         cert_file, crl_file);
		X509_CRL_free(crl);
		return -EACCES;
	}
	if (!X509_STORE_add_crl(store, crl) ||
	    !X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK) ||
	    !X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(sctx), X509_V_FLAG_CRL_CHECK)) {
		tls_errf(err, errlen, "cannot use the CRL in '%s' (%s)", crl_file,
		         tls_ossl_errors(detail, sizeof(detail)));
		X509_CRL_free(crl);
		return -ENOMEM;
	}
	X509_STORE_set_verify_cb(store, tls_on_store_verify);
	m->crl = crl; /* the store holds its own reference */
	return 0;
}

/* Peer verification, session resumption and buffers, the same for every
 * context of one side. */
static void tls_ssl_ctx_configure(SSL_CTX *sctx, bool server)
{
	SSL_CTX_set_verify(
	    sctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
	    tls_on_verify);
	SSL_CTX_set_verify_depth(sctx, TLS_VERIFY_DEPTH);
	SSL_CTX_set_info_callback(sctx, tls_on_info);
	/* send our certificate alone: the peer has the CA, and an added root only
	 * turns "unknown issuer" into a murkier "self-signed certificate in chain" */
	SSL_CTX_set_mode(sctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
	if (server) {
		SSL_CTX_set_session_id_context(sctx, tls_sid_ctx, sizeof(tls_sid_ctx) - 1);
		SSL_CTX_set_num_tickets(sctx, 1); /* one stateless ticket per handshake */
		SSL_CTX_set_session_ticket_cb(sctx, NULL, tls_on_ticket, NULL);
	} else {
		SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_CLIENT |
		                                         SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(sctx, tls_on_new_session);
	}
}

static int tls_material_load(bool server, unsigned flags, const char *ca_file,
                             const char *cert_file, const char *key_file, const char *crl_file,
                             struct tls_material *m, char *err, size_t errlen)
{
	char detail[256];
	SSL_CTX *sctx;
	int rc;

	memset(m, 0, sizeof(*m));
	ERR_clear_error();
	sctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!sctx) {
		tls_errf(err, errlen, "cannot create a TLS context (%s)",
		         tls_ossl_errors(detail, sizeof(detail)));
		return -ENOMEM;
	}
	if (!SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(sctx, TLS1_3_VERSION)) {
		tls_errf(err, errlen, "this OpenSSL cannot do TLS 1.3 (%s)",
		         tls_ossl_errors(detail, sizeof(detail)));
		rc = -ENOTSUP;
		goto out;
	}
	rc = tls_trust_ca(sctx, ca_file, err, errlen);
	if (rc)
		goto out;
	if (!server && (flags & TLS_CTX_TEST_NO_CERT) && !cert_file && !key_file) {
		m->role = TLS_ROLE_NONE;
	} else if (!cert_file || !key_file) {
		tls_errf(err, errlen, "a certificate and its key are required");
		rc = -EINVAL;
		goto out;
	} else {
		rc = tls_use_identity(sctx, server, flags, ca_file, cert_file, key_file, m, err,
		                      errlen);
		if (rc)
			goto out;
	}
	if (crl_file) {
		rc = tls_use_crl(sctx, crl_file, cert_file, m, err, errlen);
		if (rc)
			goto out;
	}
	tls_ssl_ctx_configure(sctx, server);
	m->ssl_ctx = sctx;
	sctx = NULL;
out:
	SSL_CTX_free(sctx);
	ERR_clear_error();
	return rc;
}

static void tls_ctx_apply(struct tls_ctx *ctx, struct tls_material *m)
{
	SSL_CTX_free(ctx->ssl_ctx); /* live SSLs hold their own reference */
	ctx->ssl_ctx = m->ssl_ctx;
	X509_CRL_free(ctx->crl);
	ctx->crl = m->crl;
	memcpy(ctx->own_name, m->name, sizeof(ctx->own_name));
	ctx->own_role = m->role;
	ctx->own_not_after = m->not_after;
	ctx->generation++;
	tls_cache_flush(ctx);
}

static void tls_ctx_unref(struct tls_ctx *ctx)
{
	if (--ctx->refs > 0)
		return;
	tls_cache_flush(ctx);
	free(ctx->cache);
	SSL_CTX_free(ctx->ssl_ctx);
	X509_CRL_free(ctx->crl);
	free(ctx->crl_file);
	free(ctx->ca_file);
	free(ctx->cert_file);
	free(ctx->key_file);
	free(ctx);
}

static int tls_ctx_create(struct tls_ctx **out, bool server, const char *ca_file,
                          const char *cert_file, const char *key_file, const char *crl_file,
                          unsigned flags, char *err, size_t errlen)
{
	struct tls_material m;
	struct tls_ctx *ctx;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!ca_file) {
		tls_errf(err, errlen, "a CA file is required");
		return -EINVAL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->refs = 1;
	ctx->server = server;
	ctx->flags = flags;
	ctx->ca_file = strdup(ca_file);
	ctx->cert_file = cert_file ? strdup(cert_file) : NULL;
	ctx->key_file = key_file ? strdup(key_file) : NULL;
	ctx->crl_file = crl_file ? strdup(crl_file) : NULL;
	if (!ctx->ca_file || (cert_file && !ctx->cert_file) || (key_file && !ctx->key_file) ||
	    (crl_file && !ctx->crl_file)) {
		tls_ctx_unref(ctx);
		return -ENOMEM;
	}
	rc = tls_material_load(server, flags, ca_file, cert_file, key_file, crl_file, &m, err,
	                       errlen);
	if (rc) {
		tls_ctx_unref(ctx);
		return rc;
	}
	tls_ctx_apply(ctx, &m);
	*out = ctx;
	return 0;
}

int tls_ctx_new_flags(struct tls_ctx **out, bool server, const char *ca_file, const char *cert_file,
                      const char *key_file, unsigned flags, char *err, size_t errlen)
{
	return tls_ctx_create(out, server, ca_file, cert_file, key_file, NULL, flags, err, errlen);
}

int tls_ctx_new(struct tls_ctx **out, bool server, const char *ca_file, const char *cert_file,
                const char *key_file, char *err, size_t errlen)
{
	return tls_ctx_create(out, server, ca_file, cert_file, key_file, NULL, 0, err, errlen);
}

int tls_ctx_new_crl(struct tls_ctx **out, bool server, const char *ca_file, const char *cert_file,
                    const char *key_file, const char *crl_file, char *err, size_t errlen)
{
	return tls_ctx_create(out, server, ca_file, cert_file, key_file, crl_file, 0, err, errlen);
}

bool tls_ctx_crl_info(const struct tls_ctx *ctx, size_t *n_revoked, int64_t *next_update)
{
	const ASN1_TIME *nu;

	if (!ctx->crl)
		return false;
	int k = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(ctx->crl)); /* -1: none */

	*n_revoked = k > 0 ? (size_t)k : 0;
	nu = X509_CRL_get0_nextUpdate(ctx->crl);
	*next_update = nu ? tls_asn1_time(nu) : 0;
	return true;
}

int tls_ctx_reload(struct tls_ctx *ctx, char *err, size_t errlen)
{
	struct tls_material m;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	rc = tls_material_load(ctx->server, ctx->flags, ctx->ca_file, ctx->cert_file, ctx->key_file,
	                       ctx->crl_file, &m, err, errlen);
	if (rc)
		return rc; /* the old SSL_CTX stays */
	tls_ctx_apply(ctx, &m);
	return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx)
		tls_ctx_unref(ctx);
}

const char *tls_ctx_own_name(const struct tls_ctx *ctx)
{
	return ctx->own_name;
}

enum tls_role tls_ctx_own_role(const struct tls_ctx *ctx)
{
	return ctx->own_role;
}

int64_t tls_ctx_own_expiry_s(const struct tls_ctx *ctx)
{
	return ctx->own_not_after - (int64_t)time(NULL);
}

/* ---- one session ---------------------------------------------------- */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *expect_name,
                              enum tls_role require_role, const char *session_key)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	BIO *rbio = NULL, *wbio = NULL;

	if (!c)
		return NULL;
	c->ctx = ctx;
	ctx->refs++;
	c->generation = ctx->generation;
	c->server = ctx->server;
	c->require_role = ctx->server ? TLS_ROLE_NONE : require_role;
	c->alert_received = -1;
	if (!ctx->server && expect_name && !(c->expect_name = strdup(expect_name)))
		goto fail;
	if (!ctx->server && session_key && !(c->session_key = strdup(session_key)))
		goto fail;
	ERR_clear_error();
	c->ssl = SSL_new(ctx->ssl_ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !rbio || !wbio)
		goto fail;
	/* an empty memory BIO means "wait for more", not end of file */
	BIO_set_mem_eof_return(rbio, -1);
	BIO_set_mem_eof_return(wbio, -1);
	SSL_set_bio(c->ssl, rbio, wbio);
	rbio = wbio = NULL;
	SSL_set_app_data(c->ssl, c);
	if (ctx->server) {
		SSL_set_accept_state(c->ssl);
	} else {
		struct tls_session_entry *e =
		    c->session_key ? tls_cache_find(ctx, c->session_key) : NULL;

		SSL_set_connect_state(c->ssl);
		if (e && !tls_session_peer_current(ctx, e->sess)) {
			tls_cache_drop(ctx, c->session_key);
			e = NULL;
		}
		if (e && SSL_SESSION_is_resumable(e->sess))
			SSL_set_session(c->ssl, e->sess);
		/* ClientHello is ready for take_cipher straight away */
		ERR_clear_error();
		(void)SSL_do_handshake(c->ssl);
		ERR_clear_error();
	}
	return c;
fail:
	BIO_free(rbio);
	BIO_free(wbio);
	tls_conn_free(c);
	ERR_clear_error();
	return NULL;
}

int tls_conn_expect_host(struct tls_conn *c, const char *host)
{
	char *h;

	if (c->server || c->handshake_done || !host || !*host)
		return -EINVAL;
	h = strdup(host);
	if (!h)
		return -ENOMEM;
	free(c->expect_host);
	c->expect_host = h;
	return 0;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	/* SSL_free of a session that never exchanged close_notify marks its
	 * SSL_SESSION "not resumable" — including the ticket we cached. A
	 * connection that simply ends (pool trimmed, peer gone) leaves a ticket
	 * as good as before, so say the shutdown happened; failed sessions are
	 * dropped from the cache anyway. */
	if (c->ssl && !c->failed)
		SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c->ssl); /* and both BIOs */
	tls_buf_free(&c->pending_out);
	tls_buf_free(&c->plain_in);
	free(c->expect_name);
	free(c->expect_host);
	free(c->session_key);
	tls_ctx_unref(c->ctx);
	free(c);
}

static int tls_conn_fail(struct tls_conn *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tls_conn_fail(struct tls_conn *c, int rc, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return c->fail_rc;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->failed = true;
	c->fail_rc = rc;
	/* a session that failed is not worth resuming */
	if (c->session_key)
		tls_cache_drop(c->ctx, c->session_key);
	return rc;
}

/* The verify callback refused the peer's certificate: say why. */
static int tls_conn_fail_verify(struct tls_conn *c)
{
	const char *why = X509_verify_cert_error_string(c->verify_err);
	char who[300];

	if (c->server) {
		if (c->verify_subject[0])
			snprintf(who, sizeof(who), "refused client '%s': certificate",
			         c->verify_subject);
		else
			snprintf(who, sizeof(who), "refused client: certificate");
	} else {
		snprintf(who, sizeof(who), "agent certificate");
	}
	if (c->verify_no_role)
		return tls_conn_fail(
		    c, -EACCES, "%s has no role (its subject OU must be node, operator or viewer)",
		    who);
	switch (c->verify_err) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return tls_conn_fail(c, -EACCES, "%s not signed by %s cluster CA (%s)", who,
		                     c->server ? "the" : "our", why);
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return tls_conn_fail(c, -EACCES, "%s expired (%s)", who, why);
	case X509_V_ERR_CERT_REVOKED:
		return tls_conn_fail(c, -EACCES, "%s revoked by the cluster CRL (%s)", who, why);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return tls_conn_fail(c, -EACCES, "%s not yet valid, check the clocks (%s)", who,
		                     why);
	case X509_V_ERR_INVALID_PURPOSE:
		return tls_conn_fail(c, -EACCES, "%s not meant for a %s (%s)", who,
		                     c->server ? "client" : "server, only node certificates are",
		                     why);
	default:
		return tls_conn_fail(c, -EACCES, "%s rejected (%s)", who, why);
	}
}

/* The peer sent a fatal alert: turn its number into a sentence. */
static int tls_conn_fail_alert(struct tls_conn *c)
{
	int a = c->alert_received;
	const char *desc = SSL_alert_desc_string_long(a);
	const char *refused =
	    c->server ? "the client refused our certificate" : "the agent refused our certificate";

	switch (a) {
	case SSL_AD_CERTIFICATE_EXPIRED:
		return tls_conn_fail(c, -EACCES, "%s: certificate expired (TLS alert %d)", refused,
		                     a);
	case SSL_AD_CERTIFICATE_REQUIRED:
		return tls_conn_fail(c, -EACCES, "%s: no certificate presented (alert %d)", refused,
		                     a);
	case SSL_AD_UNKNOWN_CA:
		return tls_conn_fail(
		    c, -EACCES,
		    "%s: certificate not signed by the cluster CA (unknown ca, alert %d)", refused,
		    a);
	case SSL_AD_UNSUPPORTED_CERTIFICATE:
		return tls_conn_fail(c, -EACCES,
		                     "%s: certificate has no role or is not meant for this use "
		                     "(unsupported certificate, TLS alert %d)",
		                     refused, a);
	case SSL_AD_BAD_CERTIFICATE:
		return tls_conn_fail(c, -EACCES,
		                     "%s: bad certificate, perhaps not yet valid (TLS alert %d)",
		                     refused, a);
	case SSL_AD_CERTIFICATE_REVOKED:
	case SSL_AD_CERTIFICATE_UNKNOWN:
	case SSL_AD_DECRYPT_ERROR:
		return tls_conn_fail(c, -EACCES, "%s: %s (TLS alert %d)", refused, desc, a);
	default:
		return tls_conn_fail(c, -EPROTO, "the %s ended the session: %s (TLS alert %d)",
		                     c->server ? "client" : "agent", desc, a);
	}
}

/* An SSL call returned failure `r` with SSL_get_error() == e. */
static int tls_conn_fail_ssl(struct tls_conn *c, int e)
{
	unsigned long last = ERR_peek_last_error();
	char detail[256];

	if (c->verify_err || c->verify_no_role) {
		ERR_clear_error();
		return tls_conn_fail_verify(c);
	}
	if (c->alert_received >= 0) {
		ERR_clear_error();
		return tls_conn_fail_alert(c);
	}
	if (c->server && ERR_GET_LIB(last) == ERR_LIB_SSL &&
	    ERR_GET_REASON(last) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		ERR_clear_error();
		return tls_conn_fail(c, -EACCES, "refused client: no certificate presented");
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return tls_conn_fail(c, -ECONNRESET,
		                     "the %s closed the session during the handshake",
		                     c->server ? "client" : "agent");
	tls_ossl_errors(detail, sizeof(detail));
	return tls_conn_fail(c, -EPROTO, "TLS %s with the %s failed: %s",
	                     c->handshake_done ? "session" : "handshake",
	                     c->server ? "client" : "agent", detail);
}

static int tls_conn_flush_pending(struct tls_conn *c)
{
	while (tls_buf_pending(&c->pending_out) > 0) {
		size_t n = tls_buf_pending(&c->pending_out);
		int r;

		if (n > INT_MAX)
			n = INT_MAX;
		ERR_clear_error();
		r = SSL_write(c->ssl, c->pending_out.data + c->pending_out.off, (int)n);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0; /* retried on the next feed */
			return tls_conn_fail_ssl(c, e);
		}
		c->pending_out.off += (size_t)r;
	}
	c->pending_out.off = c->pending_out.len = 0;
	return 0;
}

/* Does the server certificate list expect_host in its subjectAltName? An
 * address is compared with the IP entries, a name with the DNS entries;
 * the CN (the node name) never counts. */
static int tls_conn_check_host(struct tls_conn *c, X509 *peer)
{
	const unsigned flags =
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
	unsigned char bin[16];
	bool is_ip = inet_pton(AF_INET, c->expect_host, bin) == 1 ||
	             inet_pton(AF_INET6, c->expect_host, bin) == 1;
	struct tls_cert_info names;
	char list[384] = "";
	size_t off = 0;

	if (peer && (is_ip ? X509_check_ip_asc(peer, c->expect_host, 0)
	                   : X509_check_host(peer, c->expect_host, 0, flags, NULL)) == 1)
		return 0;
	ERR_clear_error();
	if (peer)
		tls_x509_sans(peer, &names);
	else
		names.n_ips = names.n_dns = 0;
	for (size_t i = 0; i < names.n_ips + names.n_dns && off < sizeof(list); i++) {
		bool ip = i < names.n_ips;
		int n = snprintf(list + off, sizeof(list) - off, "%s%s %s", i ? ", " : "",
		                 ip ? "IP" : "DNS", ip ? names.ips[i] : names.dns[i - names.n_ips]);
		off += n > 0 ? (size_t)n : 0;
	}
	return tls_conn_fail(c, -EACCES, "agent certificate '%s' is not for %s %s: it names %s",
	                     c->peer_name, is_ip ? "address" : "host", c->expect_host,
	                     list[0] ? list : "no address or host (no subjectAltName)");
}

/* The handshake just finished: learn the peer, check it, release writes. */
static int tls_conn_established(struct tls_conn *c)
{
	X509 *peer = SSL_get0_peer_certificate(c->ssl);

	c->handshake_done = true;
	c->resumed = SSL_session_reused(c->ssl) == 1;
	if (peer) {
		tls_x509_text(X509_get_subject_name(peer), NID_commonName, c->peer_name,
		              sizeof(c->peer_name));
		c->peer_role = tls_x509_role(peer);
		c->has_peer_cert_id = tls_cert_id(X509_get_issuer_name(peer),
		                                  X509_get0_serialNumber(peer), c->peer_cert_id);
	}
	if (!c->server) {
		if (c->expect_name && strcmp(c->peer_name, c->expect_name) != 0)
			return tls_conn_fail(c, -EACCES,
			                     "agent certificate is for '%s', expected '%s'",
			                     c->peer_name, c->expect_name);
		if (c->require_role != TLS_ROLE_NONE && c->peer_role != c->require_role)
			return tls_conn_fail(c, -EACCES,
			                     "agent certificate '%s' has role %s, expected %s",
			                     c->peer_name, tls_role_name(c->peer_role),
			                     tls_role_name(c->require_role));
		if (c->expect_host && tls_conn_check_host(c, peer) != 0)
			return c->fail_rc;
	}
	return tls_conn_flush_pending(c);
}

/* Decrypts everything that has arrived into plain_in. */
static int tls_conn_pull(struct tls_conn *c)
{
	unsigned char chunk[TLS_READ_CHUNK];

	while (!c->peer_closed) {
		int r, e, rc;

		ERR_clear_error();
		r = SSL_read(c->ssl, chunk, sizeof(chunk));
		if (r > 0) {
			rc = tls_buf_append(&c->plain_in, chunk, (size_t)r);
			if (rc)
				return tls_conn_fail(c, rc,
				                     "out of memory buffering received data");
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN) {
			c->peer_closed = true;
			return 0;
		}
		return tls_conn_fail_ssl(c, e);
	}
	return 0;
}

/* Moves the state machine as far as the bytes received allow. */
static int tls_conn_advance(struct tls_conn *c)
{
	if (c->failed)
		return c->fail_rc;
	if (!c->handshake_done) {
		int r, e, rc;

		ERR_clear_error();
		r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			return tls_conn_fail_ssl(c, e);
		}
		rc = tls_conn_established(c);
		if (rc)
			return rc;
	}
	return tls_conn_pull(c);
}

int tls_conn_feed(struct tls_conn *c, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (c->failed)
		return c->fail_rc;
	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		int w = BIO_write(SSL_get_rbio(c->ssl), p, n);

		if (w <= 0)
			return tls_conn_fail(c, -ENOMEM, "out of memory buffering received data");
		p += w;
		len -= (size_t)w;
	}
	return tls_conn_advance(c);
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len)
{
	size_t n;

	if (tls_buf_pending(&c->plain_in) == 0 && !c->failed && c->handshake_done)
		(void)tls_conn_pull(c);
	n = tls_buf_pending(&c->plain_in);
	if (n > 0) {
		if (n > len)
			n = len;
		if (n > SSIZE_MAX)
			n = SSIZE_MAX;
		memcpy(buf, c->plain_in.data + c->plain_in.off, n);
		c->plain_in.off += n;
		return (ssize_t)n;
	}
	if (c->failed)
		return c->fail_rc;
	if (c->peer_closed)
		return -ECONNRESET;
	return 0;
}

int tls_conn_write(struct tls_conn *c, const void *data, size_t len)
{
	int rc;

	if (c->failed)
		return c->fail_rc;
	if (c->shutdown_sent)
		return -EPIPE;
	if (len == 0)
		return 0;
	rc = tls_buf_append(&c->pending_out, data, len);
	if (rc)
		return rc;
	if (!c->handshake_done)
		return 0;
	return tls_conn_flush_pending(c);
}

size_t tls_conn_take_cipher(struct tls_conn *c, void *buf, size_t len)
{
	int n = len > INT_MAX ? INT_MAX : (int)len;
	int r = BIO_read(SSL_get_wbio(c->ssl), buf, n);

	return r > 0 ? (size_t)r : 0;
}

void tls_conn_shutdown(struct tls_conn *c)
{
	if (c->failed || c->shutdown_sent)
		return;
	c->shutdown_sent = true;
	if (!c->handshake_done)
		return; /* nothing was established; the caller just closes */
	(void)tls_conn_flush_pending(c);
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl); /* queues close_notify in the write BIO */
	ERR_clear_error();
}

bool tls_conn_handshake_done(const struct tls_conn *c)
{
	return c->handshake_done && !c->failed;
}

bool tls_conn_failed(const struct tls_conn *c)
{
	return c->failed;
}

bool tls_conn_resumed(const struct tls_conn *c)
{
	return c->resumed;
}

bool tls_conn_is_server(const struct tls_conn *c)
{
	return c->server;
}

int tls_conn_export(const struct tls_conn *c, const char *label, uint8_t *out, size_t len)
{
	if (!tls_conn_handshake_done(c) || label == NULL || out == NULL || len == 0)
		return -EINVAL;
	ERR_clear_error();
	/* no context: RFC 8446 7.5 gives "no context" and "empty context" the
	 * same derivation, and both ends pass the same */
	if (SSL_export_keying_material(c->ssl, out, len, label, strlen(label), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

/* Why the material of ctx in force now no longer trusts peer (the CRL
 * revokes it, or no CA of the CA file signs it), NULL while it does. The
 * chain the peer sent begins with its own certificate (client side) or not
 * (server side); either way it only supplies intermediates. */
static const char *tls_distrust_why(const struct tls_ctx *ctx, X509 *peer, STACK_OF(X509) * chain)
{
	if (tls_crl_revokes(ctx->crl, peer))
		return "certificate revoked by the CRL now in force";
	if (!tls_peer_chains(ctx, peer, chain))
		return "certificate not signed by a CA in the CA file now in force";
	return NULL;
}

const char *tls_conn_peer_distrusted(const struct tls_conn *c)
{
	if (!c->handshake_done || !c->ssl)
		return NULL;
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (peer == NULL)
		return NULL;
	return tls_distrust_why(c->ctx, peer, SSL_get_peer_cert_chain(c->ssl));
}

struct tls_cert {
	X509 *leaf;
	STACK_OF(X509) * chain; /* as the peer sent it (NULL: a resumed session) */
};

/* Guarantees: a reference of its own to the leaf and to each certificate
 * of the chain the peer sent, valid after the session and its SSL_CTX are
 * gone (tls_cert_free releases them); NULL when nothing could be kept. */
struct tls_cert *tls_conn_peer_cert(const struct tls_conn *c)
{
	if (!c->handshake_done || !c->ssl)
		return NULL;
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl);
	struct tls_cert *x = peer ? calloc(1, sizeof(*x)) : NULL;
	if (x == NULL)
		return NULL;
	if (X509_up_ref(peer) != 1) {
		free(x);
		return NULL;
	}
	x->leaf = peer;
	if (chain != NULL && (x->chain = X509_chain_up_ref(chain)) == NULL) {
		tls_cert_free(x);
		return NULL;
	}
	return x;
}

void tls_cert_free(struct tls_cert *x)
{
	if (x == NULL)
		return;
	X509_free(x->leaf);
	sk_X509_pop_free(x->chain, X509_free);
	free(x);
}

/* Guarantees the same verdict as tls_conn_peer_distrusted for the session
 * the certificate came from: the CRL in force, then a chain to a CA of the
 * CA file in force (the intermediates the peer sent). */
const char *tls_ctx_cert_distrusted(const struct tls_ctx *ctx, const struct tls_cert *x)
{
	return x != NULL ? tls_distrust_why(ctx, x->leaf, x->chain) : NULL;
}

const char *tls_conn_peer_name(const struct tls_conn *c)
{
	return c->handshake_done ? c->peer_name : "";
}

bool tls_conn_peer_cert_id(const struct tls_conn *c, uint8_t out[TLS_CERT_ID_LEN])
{
	if (!c->handshake_done || !c->has_peer_cert_id)
		return false;
	memcpy(out, c->peer_cert_id, TLS_CERT_ID_LEN);
	return true;
}

size_t tls_ctx_revoked_ids(const struct tls_ctx *ctx, uint8_t (**out)[TLS_CERT_ID_LEN])
{
	*out = NULL;
	if (!ctx->crl)
		return 0;
	STACK_OF(X509_REVOKED) *rv = X509_CRL_get_REVOKED(ctx->crl);
	int k = sk_X509_REVOKED_num(rv); /* -1: none */
	if (k <= 0)
		return 0;
	uint8_t(*ids)[TLS_CERT_ID_LEN] = calloc((size_t)k, sizeof(*ids));
	if (ids == NULL)
		return 0;
	size_t n = 0;
	for (int i = 0; i < k; i++)
		if (tls_cert_id(X509_CRL_get_issuer(ctx->crl),
		                X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rv, i)),
		                ids[n]))
			n++;
	*out = ids;
	return n;
}

enum tls_role tls_conn_peer_role(const struct tls_conn *c)
{
	return c->handshake_done ? c->peer_role : TLS_ROLE_NONE;
}

const char *tls_conn_error(const struct tls_conn *c)
{
	return c->failed ? c->err : "";
}
