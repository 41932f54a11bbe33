/*
 * tls.h — the only door to OpenSSL in meshvisor.
 *
 * Three things live here:
 *   1. struct tls_ctx: the cluster CA, this process's certificate and key,
 *      TLS 1.3 only, mutual authentication required. Reloadable (SIGHUP)
 *      without dropping existing connections: new handshakes use the new
 *      files, established sessions continue.
 *   2. struct tls_conn: one TLS session over memory BIOs, with no socket.
 *      The caller moves ciphertext between the socket and the session:
 *         socket bytes in  -> tls_conn_feed()
 *         plaintext out    <- tls_conn_read()
 *         plaintext in     -> tls_conn_write()
 *         ciphertext out   <- tls_conn_take_cipher()  (send it on the socket)
 *      After every feed/write, drain take_cipher and read until they return 0.
 *   3. Certificate authority tooling: create a cluster CA and sign
 *      node/operator/viewer certificates.
 *
 * Roles: the certificate's role is its subject organizationalUnitName
 * (OU=node|operator|viewer); the node or user name is its commonName (CN).
 *
 * Ownership: tls_ctx is reference-counted by the connections made from it;
 * tls_ctx_free() may be called while connections still exist. Strings
 * returned by getters belong to the object and live as long as it does.
 *
 * Errors: negative errno; a human-readable reason (with OpenSSL's own text)
 * is written to the caller's `err` buffer or returned by tls_conn_error().
 * Refusals of a certificate (either side) are -EACCES.
 *
 * Threads: a tls_ctx and its tls_conns belong to one thread (the loop).
 */
#ifndef MESHVISOR_TLS_H
#define MESHVISOR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tls_role {
	TLS_ROLE_NONE = 0, /* missing or unknown OU */
	TLS_ROLE_NODE = 1,
	TLS_ROLE_OPERATOR = 2,
	TLS_ROLE_VIEWER = 3,
};

const char *tls_role_name(enum tls_role r);  /* "node", ... "none" */
enum tls_role tls_role_parse(const char *s); /* TLS_ROLE_NONE if unknown */
/* May a certificate of role r change cluster state (write RPCs)? */
bool tls_role_may_write(enum tls_role r);
/* May it read cluster state? (every known role) */
bool tls_role_may_read(enum tls_role r);

/* ---- context -------------------------------------------------------- */

struct tls_ctx;

/* Loads CA, certificate and private key (PEM). Fails if the certificate is
 * not signed by the CA, does not match the key, or has no role, and if a
 * server context's certificate is not a node's (no serverAuth usage). Our
 * own validity period is not checked here: peers judge it, and say so.
 * `server` contexts accept connections, client contexts make them; a node
 * uses one of each with the same files. */
int tls_ctx_new(struct tls_ctx **out, bool server, const char *ca_file, const char *cert_file,
                const char *key_file, char *err, size_t errlen);
/* Flags for tls_ctx_new_flags(). The product always uses 0 (that is what
 * tls_ctx_new does); the others exist so that tests can build the bad
 * clients that a server must refuse. */
#define TLS_CTX_TEST_NO_CERT \
	0x1u                         /* client only: cert_file and key_file are NULL,
                                    * present no certificate at all */
#define TLS_CTX_TEST_ANY_ROLE 0x2u   /* accept our own certificate without a role */
#define TLS_CTX_TEST_ANY_ISSUER 0x4u /* accept our own certificate from another CA */
int tls_ctx_new_flags(struct tls_ctx **out, bool server, const char *ca_file, const char *cert_file,
                      const char *key_file, unsigned flags, char *err, size_t errlen);
/* tls_ctx_new with a certificate revocation list: crl_file (PEM, one CRL
 * signed by the cluster CA) lists certificates whose handshakes fail
 * ("refused client 'n3': certificate revoked by the cluster CRL"), and
 * sessions of them are never resumed. A CRL not signed by the CA, or one
 * that revokes our own certificate, is an error. A CRL past its nextUpdate
 * still applies (tls_ctx_crl_info tells the caller, to warn). NULL crl_file:
 * the same as tls_ctx_new. */
int tls_ctx_new_crl(struct tls_ctx **out, bool server, const char *ca_file, const char *cert_file,
                    const char *key_file, const char *crl_file, char *err, size_t errlen);
/* Whether a CRL is in force; if so, how many certificates it revokes and
 * its nextUpdate (Unix time, 0 if it has none). */
bool tls_ctx_crl_info(const struct tls_ctx *ctx, size_t *n_revoked, int64_t *next_update);
/* Re-reads the same files (and the CRL, if one was given). On any error the
 * old material stays in use and the reason is written to err. Sessions
 * already established are not re-checked here: ask tls_conn_peer_distrusted. */
int tls_ctx_reload(struct tls_ctx *ctx, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);
const char *tls_ctx_own_name(const struct tls_ctx *ctx); /* our CN */
enum tls_role tls_ctx_own_role(const struct tls_ctx *ctx);
/* Seconds until our own certificate expires (negative: already expired). */
int64_t tls_ctx_own_expiry_s(const struct tls_ctx *ctx);

/* ---- one session ---------------------------------------------------- */

struct tls_conn;

/* Client side: `expect_name`, when not NULL, must equal the server
 * certificate's CN; `require_role` (not NONE) must equal its role.
 * `session_key` (e.g. the peer address) names a cached session for
 * resumption; NULL disables resumption. Server side: pass NULLs and
 * TLS_ROLE_NONE; the caller checks tls_conn_peer_role() itself. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *expect_name,
                              enum tls_role require_role, const char *session_key);
void tls_conn_free(struct tls_conn *c);
/* Client side, before the handshake ends: the server certificate's
 * subjectAltName must list `host` — an IPv4/IPv6 address among its IP
 * entries, anything else among its DNS entries (a "*.example.com" entry
 * matches one label). Otherwise the session fails (-EACCES) before any
 * plaintext is sent: "agent certificate 'n9' is not for address 10.0.0.1:
 * it names IP 10.0.0.9". 0, -EINVAL (server side, empty host, too late) or
 * -ENOMEM. */
int tls_conn_expect_host(struct tls_conn *c, const char *host);

/* Ciphertext received from the socket. Returns 0 or a negative errno when
 * the session failed (reason in tls_conn_error()). After a failure, still
 * drain take_cipher and send it before closing: it carries the TLS alert
 * that tells the peer why (that is how a refused client learns "certificate
 * expired"). A TLS 1.3 client learns that the server refused its
 * certificate only here, after tls_conn_handshake_done() was already true. */
int tls_conn_feed(struct tls_conn *c, const void *data, size_t len);
/* Plaintext available to the application: >0 bytes copied, 0 none yet,
 * -ECONNRESET when the peer closed cleanly, other negative: failure. */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len);
/* Queue plaintext; before the handshake completes it is buffered. */
int tls_conn_write(struct tls_conn *c, const void *data, size_t len);
/* Ciphertext to send to the socket: >0 bytes copied, 0 nothing pending. */
size_t tls_conn_take_cipher(struct tls_conn *c, void *buf, size_t len);
/* Begin a clean close (close_notify); drain take_cipher afterwards. */
void tls_conn_shutdown(struct tls_conn *c);

bool tls_conn_handshake_done(const struct tls_conn *c);
bool tls_conn_failed(const struct tls_conn *c);
bool tls_conn_resumed(const struct tls_conn *c);
const char *tls_conn_peer_name(const struct tls_conn *c); /* CN, "" before handshake */
/* Which end of the session we are (the accepting side is the server). */
bool tls_conn_is_server(const struct tls_conn *c);
/* TLS 1.3 exporter (RFC 8446 7.5): len bytes of keying material for label,
 * with no context, equal at both ends of this session and unique to it
 * (resumed sessions included). 0, or -EINVAL before the handshake is done,
 * -EIO when OpenSSL refuses. Used for the datagram keys (dgram.h). */
int tls_conn_export(const struct tls_conn *c, const char *label, uint8_t *out, size_t len);
enum tls_role tls_conn_peer_role(const struct tls_conn *c);
/* The identity of the peer's certificate once the handshake is done
 * (resumed sessions: the certificate of the session resumed): SHA-256 over
 * its issuer's name and its serial number (DER), what a CRL names. False
 * before, or when the peer showed none. Tells apart two certificates the CA
 * issued for one name (datagram keys are kept per certificate: dgram.h). */
#define TLS_CERT_ID_LEN 32
bool tls_conn_peer_cert_id(const struct tls_conn *c, uint8_t out[TLS_CERT_ID_LEN]);
/* The identities (as above) of every certificate the CRL in force revokes,
 * in *out (malloc'd, the caller frees; NULL when none): their count. 0
 * without a CRL, or out of memory. */
size_t tls_ctx_revoked_ids(const struct tls_ctx *ctx, uint8_t (**out)[TLS_CERT_ID_LEN]);
/* Is the peer's certificate no longer trusted by the material in force now
 * (after the latest reload of the context this session was made from)?
 * NULL while it is (and before the handshake, and for sessions that never
 * showed one), else why not: revoked by the CRL, or no longer signed by a
 * CA of the CA file (a CA removed at the end of a rotation). */
const char *tls_conn_peer_distrusted(const struct tls_conn *c);
/* The peer's certificate and the chain it sent, kept past the session
 * (datagram keys outlive the connection that made them), so that after a
 * reload the owner can ask whether the material in force still trusts it.
 * NULL before the handshake, when the peer showed none, or out of memory;
 * tls_cert_free releases it. */
struct tls_cert;
struct tls_cert *tls_conn_peer_cert(const struct tls_conn *c);
void tls_cert_free(struct tls_cert *x);
/* As tls_conn_peer_distrusted, for a certificate kept by tls_conn_peer_cert:
 * NULL while the material of ctx in force now trusts it, else why not. */
const char *tls_ctx_cert_distrusted(const struct tls_ctx *ctx, const struct tls_cert *x);
/* Why the session failed, in words a person understands, "" when nothing
 * failed. A server writes why it refused a client (log it):
 *   "refused client: no certificate presented"
 *   "refused client 'op1': certificate expired (certificate has expired)"
 *   "refused client 'op1': certificate not signed by the cluster CA (...)"
 *   "refused client 'op1': certificate has no role (...)"
 * A client writes why the agent refused it, or why it refused the agent:
 *   "the agent refused our certificate: certificate expired (TLS alert 45)"
 *   "the agent refused our certificate: no certificate presented (alert 116)"
 *   "agent certificate not signed by our cluster CA (unable to get local issuer certificate)"
 *   "agent certificate is for 'n1', expected 'n2'"
 *   "agent certificate 'n9' is not for address 10.0.0.1: it names IP 10.0.0.9" */
const char *tls_conn_error(const struct tls_conn *c);

/* ---- certificate authority ------------------------------------------ */

struct tls_cert_request {
	const char *name; /* CN: node or user name */
	enum tls_role role;
	const char *const *ips; /* subjectAltName IP addresses */
	size_t n_ips;
	const char *const *dns; /* subjectAltName DNS names */
	size_t n_dns;
	int64_t not_before_offset_s; /* relative to now; normally 0 (tests backdate) */
	int64_t valid_s;             /* validity period in seconds from not_before */
};

/* What a certificate file says, for tests and for `meshvisor tls` output.
 * Fixed-size fields keep it free of ownership rules; longer values are
 * truncated. */
#define TLS_CERT_INFO_MAX_SAN 16
struct tls_cert_info {
	char name[256];                      /* subject CN */
	char issuer[256];                    /* issuer CN */
	enum tls_role role;                  /* subject OU */
	bool is_ca;                          /* basicConstraints CA:TRUE */
	bool eku_server;                     /* extendedKeyUsage serverAuth */
	bool eku_client;                     /* extendedKeyUsage clientAuth */
	int64_t not_before;                  /* Unix time */
	int64_t not_after;                   /* Unix time */
	char ips[TLS_CERT_INFO_MAX_SAN][64]; /* subjectAltName IP addresses */
	size_t n_ips;
	char dns[TLS_CERT_INFO_MAX_SAN][256]; /* subjectAltName DNS names */
	size_t n_dns;
};
/* Reads the first certificate of a PEM file. */
int tls_cert_info_read(const char *cert_file, struct tls_cert_info *out, char *err, size_t errlen);

/* Creates a self-signed CA (EC P-256) valid for `days` from now (its
 * notBefore is 5 minutes in the past, for clock skew between hosts). Writes cert_out
 * (0644) and key_out (0600); refuses to overwrite existing files. */
int tls_ca_create(const char *cert_out, const char *key_out, const char *name, int days, char *err,
                  size_t errlen);
/* Signs a new certificate with the CA. Same file rules. role NONE makes a
 * certificate without a role (only tests want one: agents refuse it). */
int tls_cert_create(const char *ca_cert, const char *ca_key, const struct tls_cert_request *req,
                    const char *cert_out, const char *key_out, char *err, size_t errlen);

/* Writes crl_out (PEM, mode 0644, replaced atomically): a CRL signed by
 * the CA, valid `days`, that revokes each certificate file in revoke[]
 * (each must be signed by this CA) and every entry of keep_crl (an earlier
 * CRL of this CA; NULL: none), so a list grows by re-running with the old
 * one. Agents read it from tls.crl (tls_ctx_new_crl). */
int tls_crl_create(const char *ca_cert, const char *ca_key, const char *const *revoke,
                   size_t n_revoke, const char *keep_crl, int days, const char *crl_out, char *err,
                   size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
