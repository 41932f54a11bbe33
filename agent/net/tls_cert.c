/*
 * tls_cert.c — the cluster's certificate authority, built on OpenSSL's API.
 *
 * Why it exists
 *   A meshvisor cluster trusts exactly one CA, and every process proves who
 *   it is with a certificate that CA signed: the subject CN is the node or
 *   user name and the subject OU is the role (node, operator, viewer). Making
 *   those certificates by hand with the openssl tool is easy to get subtly
 *   wrong (a missing extended key usage, a world-readable key), so
 *   `meshvisor tls ca create` and `meshvisor tls cert create` make them here,
 *   in-process, always the same way.
 *
 * What it makes
 *   - Keys: EC P-256. Small, and handshakes with it are several times
 *     faster than RSA-2048, which matters when a node reconnects to many
 *     peers at once.
 *   - CA: self-signed, basicConstraints critical CA:TRUE pathlen:0 (it signs
 *     leaves only), keyUsage critical keyCertSign+cRLSign.
 *   - Leaf: basicConstraints critical CA:FALSE, keyUsage critical
 *     digitalSignature, extendedKeyUsage serverAuth+clientAuth for nodes
 *     (they accept connections and make them) and clientAuth only for
 *     operators and viewers, so a leaked operator certificate cannot pose as
 *     an agent. subjectAltName carries the IP addresses and DNS names given.
 *   - Serial numbers: 159 random bits, as RFC 5280 asks (unique per CA,
 *     positive, at most 20 octets).
 *
 *   - CRL (tls_crl_create): version 2, signed by the CA with SHA-256,
 *     thisUpdate 5 minutes in the past, nextUpdate `days` ahead; it lists
 *     the serials of the certificates given plus those of an earlier CRL,
 *     so revoking one more is "the old list and this one".
 *
 * File rules: the certificate is written 0644 and the key 0600, both with
 * O_EXCL — an existing file is never overwritten (a CA key lost to a typo
 * would orphan the whole cluster). Both paths are checked before anything
 * is written, and a half-written pair is removed. A CRL is the exception:
 * it is replaced (through a temporary file and rename), as it is meant to
 * be re-issued in place.
 */
#include "tls.h"
#include "tls_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_CA_DEFAULT_NAME "meshvisor cluster CA"
/* ub-common-name in RFC 5280. */
#define TLS_NAME_MAX 64
/* A new CA's notBefore lies this far in the past: a host whose clock is a
 * little behind the one that made the CA would otherwise refuse every
 * certificate as "not yet valid" for the first minutes. */
#define TLS_CA_BACKDATE_S 300
/* A century is longer than any cluster will live; beyond it is a typo. */
#define TLS_DAYS_MAX 36500

static const char *tls_cert_ossl(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, len, "no detail from OpenSSL");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static int64_t tls_cert_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* ---- files ---------------------------------------------------------- */

static int tls_cert_absent(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		tls_errf(err, errlen, "'%s' already exists; refusing to overwrite it", path);
		return -EEXIST;
	}
	if (errno != ENOENT) {
		tls_errf(err, errlen, "cannot check '%s': %s", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static int tls_cert_write_one(const char *path, mode_t mode, X509 *x, EVP_PKEY *k, char *err,
                              size_t errlen)
{
	char detail[256];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0) {
		int e = errno;
		tls_errf(err, errlen, "cannot create '%s': %s", path, strerror(e));
		return -e;
	}
	if (fchmod(fd, mode) != 0) { /* exact mode whatever the umask */
		int e = errno;
		tls_errf(err, errlen, "cannot set the mode of '%s': %s", path, strerror(e));
		close(fd);
		return -e;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	ERR_clear_error();
	ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	if (!ok) {
		tls_errf(err, errlen, "cannot write '%s' (%s)", path,
		         tls_cert_ossl(detail, sizeof(detail)));
		fclose(f);
		return -EIO;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;
		tls_errf(err, errlen, "cannot write '%s': %s", path, strerror(e));
		fclose(f);
		return -e;
	}
	if (fclose(f) != 0) {
		int e = errno;
		tls_errf(err, errlen, "cannot write '%s': %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static int tls_cert_write_pair(const char *cert_out, const char *key_out, X509 *x, EVP_PKEY *k,
                               char *err, size_t errlen)
{
	int rc;

	if (strcmp(cert_out, key_out) == 0) {
		tls_errf(err, errlen, "certificate and key would both be written to '%s'",
		         cert_out);
		return -EINVAL;
	}
	if ((rc = tls_cert_absent(cert_out, err, errlen)) != 0 ||
	    (rc = tls_cert_absent(key_out, err, errlen)) != 0)
		return rc;
	rc = tls_cert_write_one(key_out, 0600, NULL, k, err, errlen);
	if (rc) {
		if (rc != -EEXIST)
			unlink(key_out);
		return rc;
	}
	rc = tls_cert_write_one(cert_out, 0644, x, NULL, err, errlen);
	if (rc) {
		unlink(key_out);
		if (rc != -EEXIST)
			unlink(cert_out);
		return rc;
	}
	return 0;
}

/* The first PEM certificate (crl false) or CRL (crl true) of a file. */
static int tls_cert_read_pem(const char *path, bool crl, void **out, char *err, size_t errlen)
{
	char detail[256];
	FILE *f = fopen(path, "r");

	*out = NULL;
	if (!f) {
		int e = errno;
		tls_errf(err, errlen, "cannot open '%s': %s", path, strerror(e));
		return -e;
	}
	ERR_clear_error();
	*out = crl ? (void *)PEM_read_X509_CRL(f, NULL, NULL, NULL)
	           : (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!*out) {
		tls_errf(err, errlen, "'%s' holds no PEM %s (%s)", path,
		         crl ? "CRL" : "certificate", tls_cert_ossl(detail, sizeof(detail)));
		return -EINVAL;
	}
	return 0;
}

static int tls_cert_read_x509(const char *path, X509 **out, char *err, size_t errlen)
{
	void *x;
	int rc = tls_cert_read_pem(path, false, &x, err, errlen);

	*out = x;
	return rc;
}

static int tls_crl_read(const char *path, X509_CRL **out, char *err, size_t errlen)
{
	void *x;
	int rc = tls_cert_read_pem(path, true, &x, err, errlen);

	*out = x;
	return rc;
}

static int tls_cert_no_password(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static int tls_cert_read_key(const char *path, EVP_PKEY **out, char *err, size_t errlen)
{
	char detail[256];
	FILE *f = fopen(path, "r");

	*out = NULL;
	if (!f) {
		int e = errno;
		tls_errf(err, errlen, "cannot open '%s': %s", path, strerror(e));
		return -e;
	}
	ERR_clear_error();
	*out = PEM_read_PrivateKey(f, NULL, tls_cert_no_password, NULL);
	fclose(f);
	if (!*out) {
		tls_errf(err, errlen, "'%s' holds no unencrypted PEM private key (%s)", path,
		         tls_cert_ossl(detail, sizeof(detail)));
		return -EINVAL;
	}
	return 0;
}

/* ---- building blocks ------------------------------------------------ */

static int tls_cert_name_ok(const char *s, char *err, size_t errlen)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > TLS_NAME_MAX || s[0] == '.' || s[0] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' || ch == '@'))
			goto bad;
	}
	return 0;
bad:
	tls_errf(err, errlen,
	         "invalid name '%s': use 1-%d letters, digits, '.', '-', '_' or '@', "
	         "not starting with '.' or '-'",
	         s ? s : "", TLS_NAME_MAX);
	return -EINVAL;
}

static int tls_cert_dns_ok(const char *s, char *err, size_t errlen)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || (ch == '*' && i == 0)))
			goto bad;
	}
	return 0;
bad:
	tls_errf(err, errlen, "invalid DNS name '%s'", s ? s : "");
	return -EINVAL;
}

static EVP_PKEY *tls_cert_keygen(char *err, size_t errlen)
{
	char detail[256];
	EVP_PKEY *k;

	ERR_clear_error();
	k = EVP_EC_gen("P-256");
	if (!k)
		tls_errf(err, errlen, "cannot generate an EC P-256 key (%s)",
		         tls_cert_ossl(detail, sizeof(detail)));
	return k;
}

/* A new X509 with version 3, a random serial, subject and validity. */
static X509 *tls_cert_skeleton(EVP_PKEY *key, const char *cn, const char *ou,
                               int64_t not_before_offset_s, int64_t valid_s)
{
	X509 *x = X509_new();
	X509_NAME *n;
	BIGNUM *bn = BN_new();
	time_t now = time(NULL);
	bool ok = x && bn;

	ok = ok && X509_set_version(x, X509_VERSION_3);
	ok = ok && BN_rand(bn, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
	ok = ok && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	/* one "now" for both ends, so the period is exactly valid_s */
	ok = ok && X509_time_adj_ex(X509_getm_notBefore(x), 0, (long)not_before_offset_s, &now);
	ok = ok && X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)(not_before_offset_s + valid_s),
	                            &now);
	ok = ok && X509_set_pubkey(x, key);
	n = ok ? X509_get_subject_name(x) : NULL;
	ok = ok && n;
	if (ok && ou)
		ok = X509_NAME_add_entry_by_NID(n, NID_organizationalUnitName, MBSTRING_UTF8,
		                                (const unsigned char *)ou, -1, -1, 0);
	ok = ok && X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
	                                      (const unsigned char *)cn, -1, -1, 0);
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static bool tls_cert_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	bool ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!e)
		return false;
	ok = X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok;
}

static int tls_cert_add_san(X509 *x, const struct tls_cert_request *req, char *err, size_t errlen)
{
	GENERAL_NAMES *gens;
	int rc = 0;

	if (req->n_ips == 0 && req->n_dns == 0)
		return 0;
	gens = sk_GENERAL_NAME_new_null();
	if (!gens)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_ips && rc == 0; i++) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(req->ips[i]);
		GENERAL_NAME *g;

		if (!ip) {
			ERR_clear_error();
			tls_errf(err, errlen, "'%s' is not an IP address", req->ips[i]);
			rc = -EINVAL;
			break;
		}
		g = GENERAL_NAME_new();
		if (!g) {
			ASN1_OCTET_STRING_free(ip);
			rc = -ENOMEM;
			break;
		}
		GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
		if (!sk_GENERAL_NAME_push(gens, g)) {
			GENERAL_NAME_free(g);
			rc = -ENOMEM;
		}
	}
	for (size_t i = 0; i < req->n_dns && rc == 0; i++) {
		ASN1_IA5STRING *s;
		GENERAL_NAME *g;

		rc = tls_cert_dns_ok(req->dns[i], err, errlen);
		if (rc)
			break;
		s = ASN1_IA5STRING_new();
		g = GENERAL_NAME_new();
		if (!s || !g || !ASN1_STRING_set(s, req->dns[i], -1)) {
			ASN1_IA5STRING_free(s);
			GENERAL_NAME_free(g);
			rc = -ENOMEM;
			break;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		if (!sk_GENERAL_NAME_push(gens, g)) {
			GENERAL_NAME_free(g);
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		rc = -ENOMEM;
	GENERAL_NAMES_free(gens);
	return rc;
}

/* ---- public --------------------------------------------------------- */

int tls_ca_create(const char *cert_out, const char *key_out, const char *name, int days, char *err,
                  size_t errlen)
{
	char detail[256];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!name || !*name)
		name = TLS_CA_DEFAULT_NAME;
	if (strlen(name) > TLS_NAME_MAX) {
		tls_errf(err, errlen, "CA name '%s' is longer than %d characters", name,
		         TLS_NAME_MAX);
		return -EINVAL;
	}
	if (days < 1 || days > TLS_DAYS_MAX) {
		tls_errf(err, errlen, "validity of %d days is out of range (1-%d)", days,
		         TLS_DAYS_MAX);
		return -EINVAL;
	}
	if ((rc = tls_cert_absent(cert_out, err, errlen)) != 0 ||
	    (rc = tls_cert_absent(key_out, err, errlen)) != 0)
		return rc;
	key = tls_cert_keygen(err, errlen);
	if (!key)
		return -EIO;
	ERR_clear_error();
	x = tls_cert_skeleton(key, name, NULL, -TLS_CA_BACKDATE_S,
	                      (int64_t)days * 86400 + TLS_CA_BACKDATE_S);
	if (!x || !X509_set_issuer_name(x, X509_get_subject_name(x)) ||
	    !tls_cert_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !tls_cert_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !tls_cert_ext(x, x, NID_subject_key_identifier, "hash") ||
	    !tls_cert_ext(x, x, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(x, key, EVP_sha256()) <= 0) {
		tls_errf(err, errlen, "cannot build the CA certificate (%s)",
		         tls_cert_ossl(detail, sizeof(detail)));
		rc = -EIO;
		goto out;
	}
	rc = tls_cert_write_pair(cert_out, key_out, x, key, err, errlen);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int tls_cert_create(const char *ca_cert, const char *ca_key, const struct tls_cert_request *req,
                    const char *cert_out, const char *key_out, char *err, size_t errlen)
{
	char detail[256];
	EVP_PKEY *cakey = NULL, *key = NULL;
	X509 *ca = NULL, *x = NULL;
	const char *eku;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if ((rc = tls_cert_name_ok(req->name, err, errlen)) != 0)
		return rc;
	if (req->role != TLS_ROLE_NONE && req->role != TLS_ROLE_NODE &&
	    req->role != TLS_ROLE_OPERATOR && req->role != TLS_ROLE_VIEWER) {
		tls_errf(err, errlen, "unknown role %d", (int)req->role);
		return -EINVAL;
	}
	if (req->valid_s <= 0 || req->valid_s > (int64_t)TLS_DAYS_MAX * 86400) {
		tls_errf(err, errlen, "validity of %lld seconds is out of range",
		         (long long)req->valid_s);
		return -EINVAL;
	}
	if ((rc = tls_cert_absent(cert_out, err, errlen)) != 0 ||
	    (rc = tls_cert_absent(key_out, err, errlen)) != 0)
		return rc;
	if ((rc = tls_cert_read_x509(ca_cert, &ca, err, errlen)) != 0 ||
	    (rc = tls_cert_read_key(ca_key, &cakey, err, errlen)) != 0)
		goto out;
	if (X509_check_ca(ca) < 1) {
		tls_errf(err, errlen, "'%s' is not a CA certificate", ca_cert);
		rc = -EINVAL;
		goto out;
	}
	if (X509_check_private_key(ca, cakey) != 1) {
		ERR_clear_error();
		tls_errf(err, errlen, "CA key '%s' does not match CA certificate '%s'", ca_key,
		         ca_cert);
		rc = -EINVAL;
		goto out;
	}
	key = tls_cert_keygen(err, errlen);
	if (!key) {
		rc = -EIO;
		goto out;
	}
	/* Nodes serve and connect; people only connect. A certificate without a
	 * role (tests only) gets both so that it fails on its role alone. */
	eku = (req->role == TLS_ROLE_OPERATOR || req->role == TLS_ROLE_VIEWER)
	          ? "clientAuth"
	          : "serverAuth,clientAuth";
	ERR_clear_error();
	x = tls_cert_skeleton(key, req->name,
	                      req->role == TLS_ROLE_NONE ? NULL : tls_role_name(req->role),
	                      req->not_before_offset_s, req->valid_s);
	if (!x || !X509_set_issuer_name(x, X509_get_subject_name(ca)) ||
	    !tls_cert_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    !tls_cert_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
	    !tls_cert_ext(x, ca, NID_ext_key_usage, eku) ||
	    !tls_cert_ext(x, ca, NID_subject_key_identifier, "hash") ||
	    !tls_cert_ext(x, ca, NID_authority_key_identifier, "keyid:always")) {
		tls_errf(err, errlen, "cannot build the certificate (%s)",
		         tls_cert_ossl(detail, sizeof(detail)));
		rc = -EIO;
		goto out;
	}
	if ((rc = tls_cert_add_san(x, req, err, errlen)) != 0)
		goto out;
	if (X509_sign(x, cakey, EVP_sha256()) <= 0) {
		tls_errf(err, errlen, "cannot sign the certificate (%s)",
		         tls_cert_ossl(detail, sizeof(detail)));
		rc = -EIO;
		goto out;
	}
	rc = tls_cert_write_pair(cert_out, key_out, x, key, err, errlen);
out:
	X509_free(ca);
	X509_free(x);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int tls_cert_info_read(const char *cert_file, struct tls_cert_info *out, char *err, size_t errlen)
{
	char ou[64];
	uint32_t flags;
	X509 *x = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	rc = tls_cert_read_x509(cert_file, &x, err, errlen);
	if (rc)
		return rc;
	tls_x509_text(X509_get_subject_name(x), NID_commonName, out->name, sizeof(out->name));
	tls_x509_text(X509_get_issuer_name(x), NID_commonName, out->issuer, sizeof(out->issuer));
	tls_x509_text(X509_get_subject_name(x), NID_organizationalUnitName, ou, sizeof(ou));
	out->role = tls_role_parse(ou);
	flags = X509_get_extension_flags(x);
	out->is_ca = (flags & EXFLAG_CA) != 0;
	if (flags & EXFLAG_XKUSAGE) {
		uint32_t xku = X509_get_extended_key_usage(x);
		out->eku_server = (xku & XKU_SSL_SERVER) != 0;
		out->eku_client = (xku & XKU_SSL_CLIENT) != 0;
	}
	out->not_before = tls_cert_time(X509_get0_notBefore(x));
	out->not_after = tls_cert_time(X509_get0_notAfter(x));
	tls_x509_sans(x, out);
	X509_free(x);
	ERR_clear_error();
	return 0;
}

/* ---- revocation list ------------------------------------------------ */

/* Adds a revocation of serial (dated `when`) unless crl already lists it. */
static int tls_crl_add(X509_CRL *crl, const ASN1_INTEGER *serial, const ASN1_TIME *when)
{
	STACK_OF(X509_REVOKED) *have = X509_CRL_get_REVOKED(crl);
	X509_REVOKED *r;

	for (int i = 0; i < sk_X509_REVOKED_num(have); i++)
		if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(have, i)),
		                     serial) == 0)
			return 0;
	r = X509_REVOKED_new();
	if (!r || !X509_REVOKED_set_serialNumber(r, (ASN1_INTEGER *)serial) ||
	    !X509_REVOKED_set_revocationDate(r, (ASN1_TIME *)when) ||
	    !X509_CRL_add0_revoked(crl, r)) {
		X509_REVOKED_free(r);
		return -ENOMEM;
	}
	return 0;
}

/* Writes crl to path through a temporary file and rename(2): an agent that
 * reloads at that moment reads the old list or the new one, never half. */
static int tls_crl_write(const char *path, X509_CRL *crl, char *err, size_t errlen)
{
	char tmp[4096], detail[256];
	FILE *f;
	int fd, ok;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= sizeof(tmp)) {
		tls_errf(err, errlen, "path '%s' is too long", path);
		return -EINVAL;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || fchmod(fd, 0644) != 0 || !(f = fdopen(fd, "w"))) {
		int e = errno;
		tls_errf(err, errlen, "cannot create '%s': %s", tmp, strerror(e));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return -e;
	}
	ERR_clear_error();
	ok = PEM_write_X509_CRL(f, crl);
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
		tls_errf(err, errlen, "cannot write '%s' (%s)", path,
		         errno ? strerror(errno) : tls_cert_ossl(detail, sizeof(detail)));
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

int tls_crl_create(const char *ca_cert, const char *ca_key, const char *const *revoke,
                   size_t n_revoke, const char *keep_crl, int days, const char *crl_out, char *err,
                   size_t errlen)
{
	EVP_PKEY *cakey = NULL;
	X509 *ca = NULL, *x = NULL;
	X509_CRL *crl = NULL, *old = NULL;
	ASN1_TIME *now = NULL, *next = NULL;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (days < 1 || days > TLS_DAYS_MAX) {
		tls_errf(err, errlen, "validity of %d days is out of range", days);
		return -EINVAL;
	}
	if ((rc = tls_cert_read_x509(ca_cert, &ca, err, errlen)) != 0 ||
	    (rc = tls_cert_read_key(ca_key, &cakey, err, errlen)) != 0)
		goto out;
	rc = -ENOMEM;
	crl = X509_CRL_new();
	now = X509_gmtime_adj(NULL, -TLS_CA_BACKDATE_S);
	next = X509_gmtime_adj(NULL, (long)days * 86400);
	if (!crl || !now || !next || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    !X509_CRL_set1_lastUpdate(crl, now) || !X509_CRL_set1_nextUpdate(crl, next))
		goto out;
	if (keep_crl) {
		STACK_OF(X509_REVOKED) * was;

		if ((rc = tls_crl_read(keep_crl, &old, err, errlen)) != 0)
			goto out;
		if (X509_CRL_verify(old, X509_get0_pubkey(ca)) != 1) {
			tls_errf(err, errlen, "CRL '%s' is not signed by the CA in '%s'", keep_crl,
			         ca_cert);
			rc = -EINVAL;
			goto out;
		}
		was = X509_CRL_get_REVOKED(old);
		for (int i = 0; i < sk_X509_REVOKED_num(was); i++) {
			const X509_REVOKED *r = sk_X509_REVOKED_value(was, i);
			if ((rc = tls_crl_add(crl, X509_REVOKED_get0_serialNumber(r),
			                      X509_REVOKED_get0_revocationDate(r))) != 0)
				goto out;
		}
	}
	for (size_t i = 0; i < n_revoke; i++) {
		if ((rc = tls_cert_read_x509(revoke[i], &x, err, errlen)) != 0)
			goto out;
		if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)) != 0 ||
		    X509_verify(x, X509_get0_pubkey(ca)) != 1) {
			tls_errf(err, errlen, "'%s' is not signed by the CA in '%s'", revoke[i],
			         ca_cert);
			rc = -EINVAL;
			goto out;
		}
		if ((rc = tls_crl_add(crl, X509_get0_serialNumber(x), now)) != 0)
			goto out;
		X509_free(x);
		x = NULL;
	}
	rc = -ENOMEM;
	if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, cakey, EVP_sha256()))
		goto out;
	rc = tls_crl_write(crl_out, crl, err, errlen);
out:
	if (rc == -ENOMEM)
		tls_errf(err, errlen, "cannot build the CRL (out of memory)");
	ERR_clear_error();
	X509_free(ca);
	X509_free(x);
	EVP_PKEY_free(cakey);
	X509_CRL_free(crl);
	X509_CRL_free(old);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	return rc;
}
