/*
 * mv_testcert.c — makes the certificates that `meshvisor tls` refuses to.
 *
 * Why it exists
 *   The integration tests must show that an agent refuses a client with an
 *   expired certificate, one that is not valid yet, one without a role, one
 *   from another CA, or none at all. The product CLI only makes good
 *   certificates, and it will not even load some bad ones, so this helper
 *   makes them (through the same tls_ca_create/tls_cert_create) and can
 *   present them to a running agent:
 *
 *     mv_testcert KIND --name N [--role R] [--ca-dir D | --ca-cert F --ca-key F]
 *                 [--cert F --key F | --out-dir D] [--ip ADDR]... [--dns NAME]...
 *                 [--offset SECONDS] [--valid SECONDS]
 *       KIND  expired        valid from 3 days ago for 1 day
 *             notyet         valid from 2 days ahead for 1 day (also: not-yet-valid)
 *             norole         no OU at all (--role is ignored)
 *             valid          an ordinary certificate (from 5 minutes ago, 1 day)
 *       Defaults as the product CLI: ca.pem/ca-key.pem in the current directory
 *       or --ca-dir, NAME.pem/NAME-key.pem in the current directory or
 *       --out-dir, role operator.
 *     mv_testcert ca [--dir D | --cert F --key F] [--name N]
 *       a second, unrelated CA.
 *     mv_testcert probe --addr HOST:PORT --ca F [--cert F --key F] [--expect NAME]
 *       one TLS handshake against an agent, with no certificate when --cert
 *       and --key are absent, and with --cert whatever its role or issuer.
 *       Prints "ok NAME ROLE" (exit 0) or the client-side error text (exit 1).
 *
 * It lives with the unit tests because it links mv_tls only.
 */
#include <errno.h>
#include <stddef.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"

#define DAY ((int64_t)86400)
#define PROBE_TIMEOUT_MS 5000

static int usage(void)
{
	fprintf(stderr,
	        "usage: mv_testcert expired|notyet|norole|valid --name N [--role R]\n"
	        "                   [--ca-dir D | --ca-cert F --ca-key F] [--cert F --key F | "
	        "--out-dir D]\n"
	        "                   [--ip ADDR]... [--dns NAME]... [--offset S] [--valid S]\n"
	        "       mv_testcert ca [--dir D | --cert F --key F] [--name N]\n"
	        "       mv_testcert probe --addr HOST:PORT --ca F [--cert F --key F] "
	        "[--expect NAME]\n");
	return 2;
}

/* Every flag takes one value; --ip and --dns may repeat. */
struct opts {
	const char *name, *role, *dir, *ca_dir, *ca_cert, *ca_key, *out_dir, *cert, *key;
	const char *addr, *ca, *expect, *offset, *valid;
	const char **ips, **dns;
	size_t n_ips, n_dns;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct {
		const char *flag;
		size_t off;
	} tab[] = {
	    {"--name", offsetof(struct opts, name)},
	    {"--role", offsetof(struct opts, role)},
	    {"--dir", offsetof(struct opts, dir)},
	    {"--ca-dir", offsetof(struct opts, ca_dir)},
	    {"--ca-cert", offsetof(struct opts, ca_cert)},
	    {"--ca-key", offsetof(struct opts, ca_key)},
	    {"--out-dir", offsetof(struct opts, out_dir)},
	    {"--cert", offsetof(struct opts, cert)},
	    {"--key", offsetof(struct opts, key)},
	    {"--addr", offsetof(struct opts, addr)},
	    {"--ca", offsetof(struct opts, ca)},
	    {"--expect", offsetof(struct opts, expect)},
	    {"--offset", offsetof(struct opts, offset)},
	    {"--valid", offsetof(struct opts, valid)},
	};

	o->ips = calloc((size_t)argc, sizeof(*o->ips));
	o->dns = calloc((size_t)argc, sizeof(*o->dns));
	if (!o->ips || !o->dns)
		return -1;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		bool known = false;

		if (i + 1 >= argc) {
			fprintf(stderr, "mv_testcert: %s needs a value\n", a);
			return -1;
		}
		if (strcmp(a, "--ip") == 0) {
			o->ips[o->n_ips++] = argv[++i];
			continue;
		}
		if (strcmp(a, "--dns") == 0) {
			o->dns[o->n_dns++] = argv[++i];
			continue;
		}
		for (size_t k = 0; k < sizeof(tab) / sizeof(tab[0]); k++)
			if (strcmp(a, tab[k].flag) == 0) {
				*(const char **)((char *)o + tab[k].off) = argv[++i];
				known = true;
				break;
			}
		if (!known) {
			fprintf(stderr, "mv_testcert: unknown flag '%s'\n", a);
			return -1;
		}
	}
	return 0;
}

/* mkdir -p, as the product CLI does for --dir and --out-dir. */
static void mkdirs(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s", dir);
	for (char *p = path + 1;; p++) {
		char ch = *p;
		if (ch != '/' && ch != '\0')
			continue;
		*p = '\0';
		(void)mkdir(path, 0700);
		*p = ch;
		if (ch == '\0')
			break;
	}
}

/* dir/base.pem and dir/base-key.pem unless both files were named. */
static void pair_paths(const char *dir, const char *cert, const char *key, const char *base,
                       char *cert_out, char *key_out, size_t len)
{
	if (cert && key) {
		snprintf(cert_out, len, "%s", cert);
		snprintf(key_out, len, "%s", key);
	} else {
		if (dir)
			mkdirs(dir);
		snprintf(cert_out, len, "%s/%s.pem", dir ? dir : ".", base);
		snprintf(key_out, len, "%s/%s-key.pem", dir ? dir : ".", base);
	}
}

static int cmd_ca(const struct opts *o)
{
	char cert[4096], key[4096], err[512];

	pair_paths(o->dir, o->cert, o->key, "ca", cert, key, sizeof(cert));
	if (tls_ca_create(cert, key, o->name ? o->name : "mv_testcert CA", 30, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "mv_testcert: %s\n", err);
		return 1;
	}
	return 0;
}

static int cmd_cert(const char *kind, const struct opts *o)
{
	struct tls_cert_request r = {.not_before_offset_s = -300, .valid_s = DAY};
	char ca_cert[4096], ca_key[4096], cert[4096], key[4096], err[512];

	if (!o->name)
		return usage();
	r.name = o->name;
	r.role = tls_role_parse(o->role ? o->role : "operator");
	if (r.role == TLS_ROLE_NONE) {
		fprintf(stderr, "mv_testcert: unknown role '%s'\n", o->role);
		return 2;
	}
	if (strcmp(kind, "expired") == 0) {
		r.not_before_offset_s = -3 * DAY;
		r.valid_s = DAY;
	} else if (strcmp(kind, "notyet") == 0 || strcmp(kind, "not-yet-valid") == 0) {
		r.not_before_offset_s = 2 * DAY;
		r.valid_s = DAY;
	} else if (strcmp(kind, "norole") == 0) {
		r.role = TLS_ROLE_NONE;
	} else if (strcmp(kind, "valid") != 0) {
		return usage();
	}
	if (o->offset)
		r.not_before_offset_s = strtoll(o->offset, NULL, 10);
	if (o->valid)
		r.valid_s = strtoll(o->valid, NULL, 10);
	r.ips = o->ips;
	r.n_ips = o->n_ips;
	r.dns = o->dns;
	r.n_dns = o->n_dns;
	pair_paths(o->ca_dir, o->ca_cert, o->ca_key, "ca", ca_cert, ca_key, sizeof(ca_cert));
	pair_paths(o->out_dir, o->cert, o->key, o->name, cert, key, sizeof(cert));
	if (tls_cert_create(ca_cert, ca_key, &r, cert, key, err, sizeof(err)) != 0) {
		fprintf(stderr, "mv_testcert: %s\n", err);
		return 1;
	}
	return 0;
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool send_all(int fd, struct tls_conn *c)
{
	unsigned char buf[16384];
	size_t n;

	while ((n = tls_conn_take_cipher(c, buf, sizeof(buf))) > 0)
		for (size_t off = 0; off < n;) {
			ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
			if (w <= 0)
				return false;
			off += (size_t)w;
		}
	return true;
}

/* Handshakes, then waits a moment for a late refusal (TLS 1.3 sends it
 * after the client thinks the handshake is done). */
static int cmd_probe(const struct opts *o)
{
	const char *expect = o->expect, *cert = o->cert, *key = o->key;
	struct tls_ctx *ctx = NULL;
	struct tls_conn *c = NULL;
	unsigned char buf[16384];
	char err[512], host[256];
	const char *port;
	int fd = -1, rc = 1, waited = 0;
	bool closed = false;

	if (!o->addr || !o->ca || !cert != !key || !(port = strrchr(o->addr, ':')))
		return usage();
	snprintf(host, sizeof(host), "%.*s", (int)(port - o->addr), o->addr);
	port++;
	if (tls_ctx_new_flags(&ctx, false, o->ca, cert, key,
	                      TLS_CTX_TEST_ANY_ROLE | TLS_CTX_TEST_ANY_ISSUER |
	                          (cert ? 0 : TLS_CTX_TEST_NO_CERT),
	                      err, sizeof(err)) != 0) {
		fprintf(stderr, "mv_testcert: %s\n", err);
		return 1;
	}
	fd = dial(host, port);
	if (fd < 0) {
		fprintf(stderr, "mv_testcert: cannot connect to %s\n", o->addr);
		goto out;
	}
	c = tls_conn_new(ctx, expect, TLS_ROLE_NONE, NULL);
	if (!c)
		goto out;
	/* after the handshake, a quiet 300 ms means the agent accepted us */
	while (waited < PROBE_TIMEOUT_MS && !tls_conn_failed(c) &&
	       !(tls_conn_handshake_done(c) && waited >= 300)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (!send_all(fd, c))
			break;
		if (poll(&p, 1, 100) == 0) {
			waited += 100;
			continue;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			closed = true;
			break;
		}
		(void)tls_conn_feed(c, buf, (size_t)n);
		while (tls_conn_read(c, buf, sizeof(buf)) > 0)
			;
	}
	if (tls_conn_failed(c)) {
		send_all(fd, c);
		printf("%s\n", tls_conn_error(c));
	} else if (tls_conn_handshake_done(c)) {
		printf("ok %s %s%s\n", tls_conn_peer_name(c), tls_role_name(tls_conn_peer_role(c)),
		       closed ? " (then the agent closed the connection)" : "");
		rc = 0;
	} else if (closed) {
		printf("the agent closed the connection without saying why\n");
	} else {
		printf("no answer from the agent\n");
	}
out:
	if (fd >= 0)
		close(fd);
	tls_conn_free(c);
	tls_ctx_free(ctx);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	if (argc < 2 || parse(argc, argv, &o) != 0) {
		rc = usage();
	} else if (strcmp(argv[1], "ca") == 0) {
		rc = cmd_ca(&o);
	} else if (strcmp(argv[1], "probe") == 0) {
		rc = cmd_probe(&o);
	} else {
		rc = cmd_cert(argv[1], &o);
	}
	free(o.ips);
	free(o.dns);
	return rc;
}
