/*
 * tls_internal.h — helpers shared by the TLS module's two files (tls.c:
 * sessions and contexts; tls_cert.c: certificate authority). Not part of
 * the public API; only agent/tls*.c include it, as only they see OpenSSL.
 */
#ifndef MESHVISOR_TLS_INTERNAL_H
#define MESHVISOR_TLS_INTERNAL_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

struct tls_ctx;
#include "tls.h"

/* snprintf into the caller's error buffer; tolerates err == NULL. */
void tls_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* One text field (NID_commonName, ...) of an X.509 name; "" if absent. */
void tls_x509_text(X509_NAME *n, int nid, char *buf, size_t len);
/* The SSL_CTX new sessions of ctx use (its CA store, certificate and key
 * as of the last successful reload): tls_claim.c signs and checks with it. */
SSL_CTX *tls_ctx_ssl(struct tls_ctx *ctx);
/* The subjectAltName IP addresses and DNS names of x into out's ips/dns
 * (at most TLS_CERT_INFO_MAX_SAN of each; the other fields untouched). */
void tls_x509_sans(X509 *x, struct tls_cert_info *out);

#endif
