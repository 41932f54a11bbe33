/*
 * test_tls.c — TLS sessions over memory BIOs (agent/net/tls.c).
 *
 * A client and a server tls_conn live in this one process; pump() copies
 * ciphertext between them until neither has anything to say, exactly what
 * the libuv layer does with a socket in between. Each failure test hands one
 * side a bad certificate (none, another CA, expired, not yet valid, no role,
 * wrong name or role) and checks both that the session fails and that each
 * side says why in words a person understands — those sentences are part of
 * the contract and are compared exactly.
 *
 * The certificates are made once per run in a temporary directory (EC keys,
 * so the whole file runs in well under a second).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dgram.h"
#include "frame.h"
#include "meshvisor/swim.h"
#include "swim_codec.h"
#include "tls.h"
#include "tls_claim.h"

#define DAY 86400

static char g_dir[64];

static const char *path(const char *name)
{
	static char bufs[16][640];
	static int next;
	char *b = bufs[next++ % 16];

	snprintf(b, sizeof(bufs[0]), "%s/%s", g_dir, name);
	return b;
}

static const char *const g_san_ips[] = {"127.0.0.1", "fd00::1"};
static const char *const g_san_dns[] = {"n1.example.org", "*.pool.example"};

/* sans: the certificate lists g_san_ips and g_san_dns in its subjectAltName. */
static void mkcert_sans(const char *ca, const char *name, enum tls_role role, int64_t offset_s,
                        int64_t valid_s, bool sans)
{
	struct tls_cert_request r = {
	    .name = name, .role = role, .not_before_offset_s = offset_s, .valid_s = valid_s};
	char cert[64], key[64], cak[64], err[512];
	int rc;

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s-key.pem", name);
	snprintf(cak, sizeof(cak), "%s-key.pem", ca);
	snprintf(err, sizeof(err), "%s.pem", ca);
	if (sans) {
		r.ips = g_san_ips;
		r.n_ips = 2;
		r.dns = g_san_dns;
		r.n_dns = 2;
	}
	rc = tls_cert_create(path(err), path(cak), &r, path(cert), path(key), err, sizeof(err));
	if (rc) {
		fprintf(stderr, "mkcert %s: %s\n", name, err);
		abort();
	}
}

static void mkcert(const char *ca, const char *name, enum tls_role role, int64_t offset_s,
                   int64_t valid_s)
{
	mkcert_sans(ca, name, role, offset_s, valid_s, false);
}

static void concat(const char *out, const char *a, const char *b)
{
	FILE *o = fopen(path(out), "w");
	const char *ins[] = {a, b};

	assert_non_null(o);
	for (int i = 0; i < 2; i++) {
		char buf[8192];
		size_t n;
		FILE *f = fopen(path(ins[i]), "r");
		assert_non_null(f);
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			assert_int_equal(fwrite(buf, 1, n, o), n);
		fclose(f);
	}
	fclose(o);
}

static int group_setup(void **state)
{
	char err[512];

	snprintf(g_dir, sizeof(g_dir), "/tmp/mv-tls-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	if (tls_ca_create(path("ca.pem"), path("ca-key.pem"), "cluster", 10, err, sizeof(err)) ||
	    tls_ca_create(path("other.pem"), path("other-key.pem"), "other", 10, err,
	                  sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	mkcert("ca", "n1", TLS_ROLE_NODE, 0, DAY);
	mkcert("ca", "n2", TLS_ROLE_NODE, 0, DAY);
	mkcert("ca", "op", TLS_ROLE_OPERATOR, 0, DAY);
	mkcert("ca", "viewer", TLS_ROLE_VIEWER, 0, DAY);
	mkcert("ca", "old", TLS_ROLE_OPERATOR, -3 * DAY, DAY);
	mkcert("ca", "oldnode", TLS_ROLE_NODE, -3 * DAY, DAY);
	mkcert("ca", "early", TLS_ROLE_OPERATOR, 2 * DAY, DAY);
	mkcert("ca", "anon", TLS_ROLE_NONE, 0, DAY);
	mkcert("other", "stranger", TLS_ROLE_OPERATOR, 0, DAY);
	mkcert("other", "impostor", TLS_ROLE_NODE, 0, DAY);
	mkcert("ca", "n1-renewed", TLS_ROLE_NODE, 0, 30 * DAY);
	mkcert_sans("ca", "hosted", TLS_ROLE_NODE, 0, DAY, true);
	/* a client that trusts the cluster CA but holds a foreign certificate */
	concat("both.pem", "ca.pem", "other.pem");
	return 0;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			unlink(path(e->d_name));
	if (d)
		closedir(d);
	rmdir(g_dir);
	return 0;
}

/* ---- helpers -------------------------------------------------------- */

static struct tls_ctx *server_ctx(const char *ca, const char *name)
{
	struct tls_ctx *ctx = NULL;
	char cert[64], key[64], err[512];

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s-key.pem", name);
	if (tls_ctx_new(&ctx, true, path(ca), path(cert), path(key), err, sizeof(err)) != 0)
		fail_msg("server ctx %s: %s", name, err);
	return ctx;
}

static struct tls_ctx *client_ctx_flags(const char *ca, const char *name, unsigned flags)
{
	struct tls_ctx *ctx = NULL;
	char cert[64], key[64], err[512];

	snprintf(cert, sizeof(cert), "%s.pem", name ? name : "");
	snprintf(key, sizeof(key), "%s-key.pem", name ? name : "");
	if (tls_ctx_new_flags(&ctx, false, path(ca), name ? path(cert) : NULL,
	                      name ? path(key) : NULL, flags, err, sizeof(err)) != 0)
		fail_msg("client ctx %s: %s", name ? name : "(none)", err);
	return ctx;
}

static struct tls_ctx *client_ctx(const char *ca, const char *name)
{
	return client_ctx_flags(ca, name, 0);
}

struct side {
	struct tls_conn *c;
	char in[65536]; /* plaintext read */
	size_t n;
	int feed_rc;     /* first feed failure */
	ssize_t read_rc; /* last negative read result */
};

static void side_read(struct side *s)
{
	for (;;) {
		ssize_t r = tls_conn_read(s->c, s->in + s->n, sizeof(s->in) - 1 - s->n);
		if (r > 0) {
			s->n += (size_t)r;
			continue;
		}
		if (r < 0)
			s->read_rc = r;
		break;
	}
	s->in[s->n] = '\0';
}

static bool move(struct side *from, struct side *to)
{
	unsigned char buf[4096];
	bool moved = false;
	size_t n;

	while ((n = tls_conn_take_cipher(from->c, buf, sizeof(buf))) > 0) {
		int rc = tls_conn_feed(to->c, buf, n);
		if (rc && !to->feed_rc)
			to->feed_rc = rc;
		moved = true;
	}
	return moved;
}

/* Copies bytes both ways (reading plaintext as it comes) until quiet. */
static void pump(struct side *a, struct side *b)
{
	for (int round = 0; round < 100; round++) {
		bool moved = move(a, b);
		moved = move(b, a) || moved;
		side_read(a);
		side_read(b);
		if (!moved)
			return;
	}
	fail_msg("pump: sessions still talking after 100 rounds");
}

struct pair {
	struct side cli, srv;
};

static struct pair *pair_new(struct tls_ctx *cctx, struct tls_ctx *sctx, const char *expect,
                             enum tls_role role, const char *key)
{
	struct pair *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->cli.c = tls_conn_new(cctx, expect, role, key);
	p->srv.c = tls_conn_new(sctx, NULL, TLS_ROLE_NONE, NULL);
	assert_non_null(p->cli.c);
	assert_non_null(p->srv.c);
	return p;
}

static void pair_free(struct pair *p)
{
	tls_conn_free(p->cli.c);
	tls_conn_free(p->srv.c);
	free(p);
}

/* Runs a handshake that must fail; checks both sides' sentences. host, when
 * not NULL, is what the client dialed (tls_conn_expect_host). */
static void expect_refusal_host(struct tls_ctx *cctx, struct tls_ctx *sctx, const char *expect,
                                enum tls_role role, const char *host, const char *cli_err,
                                const char *srv_err)
{
	struct pair *p = pair_new(cctx, sctx, expect, role, NULL);

	if (host)
		assert_int_equal(tls_conn_expect_host(p->cli.c, host), 0);
	assert_int_equal(tls_conn_write(p->cli.c, "secret", 6), 0);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_failed(p->cli.c));
	assert_false(tls_conn_handshake_done(p->cli.c));
	assert_string_equal(tls_conn_error(p->cli.c), cli_err);
	/* the failure shows in feed or in read, as a negative errno */
	assert_true(p->cli.feed_rc < 0 || p->cli.read_rc < 0);
	assert_int_not_equal(p->cli.read_rc, -ECONNRESET);
	if (srv_err) {
		assert_true(tls_conn_failed(p->srv.c));
		assert_string_equal(tls_conn_error(p->srv.c), srv_err);
	}
	/* nothing written before the handshake reached the server */
	assert_int_equal(p->srv.n, 0);
	pair_free(p);
}

static void expect_refusal(struct tls_ctx *cctx, struct tls_ctx *sctx, const char *expect,
                           enum tls_role role, const char *cli_err, const char *srv_err)
{
	expect_refusal_host(cctx, sctx, expect, role, NULL, cli_err, srv_err);
}

/* ---- roles ---------------------------------------------------------- */

static void test_roles(void **state)
{
	assert_int_equal(tls_role_parse("node"), TLS_ROLE_NODE);
	assert_int_equal(tls_role_parse("operator"), TLS_ROLE_OPERATOR);
	assert_int_equal(tls_role_parse("viewer"), TLS_ROLE_VIEWER);
	assert_int_equal(tls_role_parse("admin"), TLS_ROLE_NONE);
	assert_int_equal(tls_role_parse("Node"), TLS_ROLE_NONE);
	assert_int_equal(tls_role_parse(""), TLS_ROLE_NONE);
	assert_int_equal(tls_role_parse(NULL), TLS_ROLE_NONE);
	assert_string_equal(tls_role_name(TLS_ROLE_NODE), "node");
	assert_string_equal(tls_role_name(TLS_ROLE_OPERATOR), "operator");
	assert_string_equal(tls_role_name(TLS_ROLE_VIEWER), "viewer");
	assert_string_equal(tls_role_name(TLS_ROLE_NONE), "none");
	assert_string_equal(tls_role_name((enum tls_role)42), "none");

	assert_true(tls_role_may_write(TLS_ROLE_NODE));
	assert_true(tls_role_may_write(TLS_ROLE_OPERATOR));
	assert_false(tls_role_may_write(TLS_ROLE_VIEWER));
	assert_false(tls_role_may_write(TLS_ROLE_NONE));
	assert_true(tls_role_may_read(TLS_ROLE_NODE));
	assert_true(tls_role_may_read(TLS_ROLE_OPERATOR));
	assert_true(tls_role_may_read(TLS_ROLE_VIEWER));
	assert_false(tls_role_may_read(TLS_ROLE_NONE));
	assert_false(tls_role_may_read((enum tls_role)42));
}

/* ---- success -------------------------------------------------------- */

static void test_handshake_and_data(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "op");
	struct pair *p = pair_new(cctx, sctx, "n1", TLS_ROLE_NODE, NULL);
	static char big[200000];

	assert_false(tls_conn_handshake_done(p->cli.c));
	assert_string_equal(tls_conn_peer_name(p->cli.c), "");
	/* written before the handshake: held, then delivered */
	assert_int_equal(tls_conn_write(p->cli.c, "ping", 4), 0);
	pump(&p->cli, &p->srv);

	assert_true(tls_conn_handshake_done(p->cli.c));
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_false(tls_conn_failed(p->cli.c));
	assert_false(tls_conn_failed(p->srv.c));
	assert_string_equal(tls_conn_error(p->cli.c), "");
	assert_string_equal(tls_conn_error(p->srv.c), "");
	assert_string_equal(tls_conn_peer_name(p->cli.c), "n1");
	assert_int_equal(tls_conn_peer_role(p->cli.c), TLS_ROLE_NODE);
	assert_string_equal(tls_conn_peer_name(p->srv.c), "op");
	assert_int_equal(tls_conn_peer_role(p->srv.c), TLS_ROLE_OPERATOR);
	assert_false(tls_conn_resumed(p->cli.c));
	assert_string_equal(p->srv.in, "ping");

	assert_int_equal(tls_conn_write(p->srv.c, "pong", 4), 0);
	pump(&p->cli, &p->srv);
	assert_string_equal(p->cli.in, "pong");

	/* more than one record, and more than one pump buffer */
	memset(big, 'x', sizeof(big));
	p->srv.n = 0;
	assert_int_equal(tls_conn_write(p->cli.c, big, 60000), 0);
	pump(&p->cli, &p->srv);
	assert_int_equal(p->srv.n, 60000);

	/* clean close: the peer sees -ECONNRESET after the data */
	p->srv.n = 0;
	assert_int_equal(tls_conn_write(p->cli.c, "bye", 3), 0);
	tls_conn_shutdown(p->cli.c);
	assert_int_equal(tls_conn_write(p->cli.c, "late", 4), -EPIPE);
	pump(&p->cli, &p->srv);
	assert_string_equal(p->srv.in, "bye");
	assert_int_equal(p->srv.read_rc, -ECONNRESET);
	assert_false(tls_conn_failed(p->srv.c));
	assert_string_equal(tls_conn_error(p->srv.c), "");

	pair_free(p);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_node_to_node_and_viewer(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *nctx = client_ctx("ca.pem", "n2");
	struct tls_ctx *vctx = client_ctx("ca.pem", "viewer");
	struct pair *p = pair_new(nctx, sctx, "n1", TLS_ROLE_NODE, NULL);

	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_string_equal(tls_conn_peer_name(p->srv.c), "n2");
	assert_int_equal(tls_conn_peer_role(p->srv.c), TLS_ROLE_NODE);
	pair_free(p);

	/* a viewer connects fine; what it may do is the RPC layer's call */
	p = pair_new(vctx, sctx, NULL, TLS_ROLE_NONE, NULL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_int_equal(tls_conn_peer_role(p->srv.c), TLS_ROLE_VIEWER);
	assert_false(tls_role_may_write(tls_conn_peer_role(p->srv.c)));
	pair_free(p);

	tls_ctx_free(sctx);
	tls_ctx_free(nctx);
	tls_ctx_free(vctx);
}

/* ---- the server refuses the client ---------------------------------- */

static void test_client_without_certificate(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx_flags("ca.pem", NULL, TLS_CTX_TEST_NO_CERT);

	expect_refusal(cctx, sctx, "n1", TLS_ROLE_NODE,
	               "the agent refused our certificate: no certificate presented (alert 116)",
	               "refused client: no certificate presented");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_client_from_another_ca(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("both.pem", "stranger");

	expect_refusal(cctx, sctx, "n1", TLS_ROLE_NODE,
	               "the agent refused our certificate: certificate not signed by the cluster "
	               "CA (unknown ca, alert 48)",
	               "refused client 'stranger': certificate not signed by the cluster CA "
	               "(unable to get local issuer certificate)");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_client_expired(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "old");

	expect_refusal(cctx, sctx, "n1", TLS_ROLE_NODE,
	               "the agent refused our certificate: certificate expired (TLS alert 45)",
	               "refused client 'old': certificate expired (certificate has expired)");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_client_not_yet_valid(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "early");

	expect_refusal(cctx, sctx, "n1", TLS_ROLE_NODE,
	               "the agent refused our certificate: bad certificate, perhaps not yet valid "
	               "(TLS alert 42)",
	               "refused client 'early': certificate not yet valid, check the clocks "
	               "(certificate is not yet valid)");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_client_without_role(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx_flags("ca.pem", "anon", TLS_CTX_TEST_ANY_ROLE);

	expect_refusal(cctx, sctx, "n1", TLS_ROLE_NODE,
	               "the agent refused our certificate: certificate has no role or is not meant "
	               "for this use (unsupported certificate, TLS alert 43)",
	               "refused client 'anon': certificate has no role (its subject OU must be "
	               "node, operator or viewer)");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_garbage_is_refused(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_conn *c = tls_conn_new(sctx, NULL, TLS_ROLE_NONE, NULL);
	static const char http[] = "GET / HTTP/1.1\r\nHost: n1\r\n\r\n";
	char buf[64];

	assert_int_equal(tls_conn_feed(c, http, sizeof(http) - 1), -EPROTO);
	assert_true(tls_conn_failed(c));
	assert_non_null(strstr(tls_conn_error(c), "TLS handshake with the client failed: "));
	assert_int_equal(tls_conn_read(c, buf, sizeof(buf)), -EPROTO);
	assert_int_equal(tls_conn_write(c, "x", 1), -EPROTO);
	assert_int_equal(tls_conn_feed(c, "more", 4), -EPROTO);
	tls_conn_free(c);
	tls_ctx_free(sctx);
}

/* ---- the client refuses the server ---------------------------------- */

static void test_server_from_another_ca(void **state)
{
	struct tls_ctx *sctx = server_ctx("other.pem", "impostor");
	struct tls_ctx *cctx = client_ctx("ca.pem", "op");

	expect_refusal(cctx, sctx, NULL, TLS_ROLE_NODE,
	               "agent certificate not signed by our cluster CA (unable to get local issuer "
	               "certificate)",
	               "the client refused our certificate: certificate not signed by the cluster "
	               "CA (unknown ca, alert 48)");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_server_expired(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "oldnode");
	struct tls_ctx *cctx = client_ctx("ca.pem", "op");

	expect_refusal(cctx, sctx, NULL, TLS_ROLE_NODE,
	               "agent certificate expired (certificate has expired)",
	               "the client refused our certificate: certificate expired (TLS alert 45)");
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_server_name_mismatch(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "op");

	expect_refusal(cctx, sctx, "n2", TLS_ROLE_NODE,
	               "agent certificate is for 'n1', expected 'n2'", NULL);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void test_server_role_mismatch(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "viewer");

	/* a viewer client that insists on talking to, say, an operator tool */
	expect_refusal(cctx, sctx, "n1", TLS_ROLE_OPERATOR,
	               "agent certificate 'n1' has role node, expected operator", NULL);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* The CLI's check of what it dialed: an address must be among the server
 * certificate's IP entries, a host name among its DNS entries; the CN
 * (another agent's name, or this one's) is never enough. */
static void test_server_host_check(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "hosted");
	struct tls_ctx *plain = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "op");
	const char *good[] = {"127.0.0.1", "fd00::1", "n1.example.org", "N1.Example.ORG",
	                      "a.pool.example"};
	const char *names = "it names IP 127.0.0.1, IP fd00::1, DNS n1.example.org, "
			    "DNS *.pool.example";
	char want[512];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct pair *p = pair_new(cctx, sctx, NULL, TLS_ROLE_NODE, NULL);
		assert_int_equal(tls_conn_expect_host(p->cli.c, good[i]), 0);
		assert_int_equal(tls_conn_write(p->cli.c, "hi", 2), 0);
		pump(&p->cli, &p->srv);
		assert_true(tls_conn_handshake_done(p->cli.c));
		assert_string_equal(p->srv.in, "hi");
		pair_free(p);
	}
	snprintf(want, sizeof(want), "agent certificate 'hosted' is not for address 127.0.0.2: %s",
	         names);
	expect_refusal_host(cctx, sctx, NULL, TLS_ROLE_NODE, "127.0.0.2", want, NULL);
	snprintf(want, sizeof(want), "agent certificate 'hosted' is not for address ::1: %s",
	         names);
	expect_refusal_host(cctx, sctx, NULL, TLS_ROLE_NODE, "::1", want, NULL);
	/* the CN is a node name, not a host name */
	snprintf(want, sizeof(want), "agent certificate 'hosted' is not for host hosted: %s",
	         names);
	expect_refusal_host(cctx, sctx, NULL, TLS_ROLE_NODE, "hosted", want, NULL);
	/* a wildcard covers one label, not two, and not the bare domain */
	snprintf(want, sizeof(want),
	         "agent certificate 'hosted' is not for host a.b.pool.example: %s", names);
	expect_refusal_host(cctx, sctx, NULL, TLS_ROLE_NODE, "a.b.pool.example", want, NULL);
	snprintf(want, sizeof(want), "agent certificate 'hosted' is not for host pool.example: %s",
	         names);
	expect_refusal_host(cctx, sctx, NULL, TLS_ROLE_NODE, "pool.example", want, NULL);
	/* a certificate without subjectAltName matches nothing */
	expect_refusal_host(cctx, plain, NULL, TLS_ROLE_NODE, "127.0.0.1",
	                    "agent certificate 'n1' is not for address 127.0.0.1: it names no "
	                    "address or host (no subjectAltName)",
	                    NULL);

	/* only a client, only before the handshake, only a real name */
	struct pair *p = pair_new(cctx, sctx, NULL, TLS_ROLE_NODE, NULL);
	assert_int_equal(tls_conn_expect_host(p->srv.c, "127.0.0.1"), -EINVAL);
	assert_int_equal(tls_conn_expect_host(p->cli.c, ""), -EINVAL);
	assert_int_equal(tls_conn_expect_host(p->cli.c, NULL), -EINVAL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->cli.c));
	assert_int_equal(tls_conn_expect_host(p->cli.c, "127.0.0.1"), -EINVAL);
	pair_free(p);
	tls_ctx_free(sctx);
	tls_ctx_free(plain);
	tls_ctx_free(cctx);
}

/* ---- resumption ----------------------------------------------------- */

static void connect_once(struct tls_ctx *cctx, struct tls_ctx *sctx, const char *key,
                         bool want_resumed, const char *want_server)
{
	struct pair *p = pair_new(cctx, sctx, want_server, TLS_ROLE_NODE, key);

	assert_int_equal(tls_conn_write(p->cli.c, "hello", 5), 0);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->cli.c));
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_int_equal(tls_conn_resumed(p->cli.c), want_resumed);
	assert_int_equal(tls_conn_resumed(p->srv.c), want_resumed);
	/* both sides know who the other is, resumed or not */
	assert_string_equal(tls_conn_peer_name(p->cli.c), want_server);
	assert_string_equal(tls_conn_peer_name(p->srv.c), "n2");
	assert_int_equal(tls_conn_peer_role(p->srv.c), TLS_ROLE_NODE);
	assert_string_equal(p->srv.in, "hello");
	pair_free(p);
}

static void test_resumption(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "n2");
	char err[512];

	connect_once(cctx, sctx, "10.0.0.1:7946", false, "n1");
	connect_once(cctx, sctx, "10.0.0.1:7946", true, "n1");
	connect_once(cctx, sctx, "10.0.0.1:7946", true, "n1");  /* the fresh ticket works too */
	connect_once(cctx, sctx, "10.0.0.2:7946", false, "n1"); /* another peer */
	connect_once(cctx, sctx, NULL, false, "n1");            /* no key, no resumption */

	/* a client reload forgets every session (the CA may have changed) */
	assert_int_equal(tls_ctx_reload(cctx, err, sizeof(err)), 0);
	connect_once(cctx, sctx, "10.0.0.1:7946", false, "n1");
	connect_once(cctx, sctx, "10.0.0.1:7946", true, "n1");

	/* a server reload invalidates its tickets: a full handshake, no error */
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), 0);
	connect_once(cctx, sctx, "10.0.0.1:7946", false, "n1");
	connect_once(cctx, sctx, "10.0.0.1:7946", true, "n1");

	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* A ticket must not outlive the certificate it was issued for: once the
 * client's certificate has expired the server ignores the ticket, and the
 * full handshake that follows refuses the client as usual. */
static void test_resumption_stops_at_expiry(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx;
	struct pair *p;

	mkcert("ca", "brief", TLS_ROLE_OPERATOR, -60, 60 + 2); /* expires in 2 s */
	cctx = client_ctx("ca.pem", "brief");
	p = pair_new(cctx, sctx, "n1", TLS_ROLE_NODE, "10.0.0.1:7946");
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->srv.c));
	pair_free(p);

	sleep(3);
	p = pair_new(cctx, sctx, "n1", TLS_ROLE_NODE, "10.0.0.1:7946");
	pump(&p->cli, &p->srv);
	assert_false(tls_conn_resumed(p->srv.c));
	assert_true(tls_conn_failed(p->srv.c));
	assert_string_equal(
	    tls_conn_error(p->srv.c),
	    "refused client 'brief': certificate expired (certificate has expired)");
	assert_string_equal(
	    tls_conn_error(p->cli.c),
	    "the agent refused our certificate: certificate expired (TLS alert 45)");
	pair_free(p);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* ---- reload --------------------------------------------------------- */

static void write_file(const char *name, const char *from)
{
	char buf[16384];
	size_t n;
	FILE *i = fopen(path(from), "r");
	FILE *o = fopen(path(name), "w");

	assert_non_null(i);
	assert_non_null(o);
	n = fread(buf, 1, sizeof(buf), i);
	assert_int_equal(fwrite(buf, 1, n, o), n);
	fclose(i);
	fclose(o);
}

static void test_reload(void **state)
{
	struct tls_ctx *sctx, *cctx = client_ctx("ca.pem", "op");
	struct pair *old, *p;
	char err[512];
	FILE *f;

	write_file("live.pem", "n1.pem");
	write_file("live-key.pem", "n1-key.pem");
	sctx = server_ctx("ca.pem", "live");
	assert_string_equal(tls_ctx_own_name(sctx), "n1");
	assert_true(tls_ctx_own_expiry_s(sctx) <= DAY);

	old = pair_new(cctx, sctx, "n1", TLS_ROLE_NODE, NULL);
	pump(&old->cli, &old->srv);
	assert_true(tls_conn_handshake_done(old->srv.c));

	/* renewed certificate: new name, 30 days */
	write_file("live.pem", "n1-renewed.pem");
	write_file("live-key.pem", "n1-renewed-key.pem");
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(tls_ctx_own_name(sctx), "n1-renewed");
	assert_true(tls_ctx_own_expiry_s(sctx) > 29 * DAY);

	/* the session from before the reload keeps working both ways */
	assert_int_equal(tls_conn_write(old->cli.c, "still", 5), 0);
	assert_int_equal(tls_conn_write(old->srv.c, "here", 4), 0);
	pump(&old->cli, &old->srv);
	assert_string_equal(old->srv.in, "still");
	assert_string_equal(old->cli.in, "here");

	/* new sessions present the new certificate */
	p = pair_new(cctx, sctx, "n1-renewed", TLS_ROLE_NODE, NULL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->cli.c));
	assert_string_equal(tls_conn_peer_name(p->cli.c), "n1-renewed");
	pair_free(p);

	/* a broken certificate file: keep the old material, say why */
	f = fopen(path("live.pem"), "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	assert_true(tls_ctx_reload(sctx, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "live.pem' holds no PEM certificate"));
	assert_string_equal(tls_ctx_own_name(sctx), "n1-renewed");

	/* a key that does not match */
	write_file("live.pem", "n2.pem");
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "live-key.pem' does not match certificate"));
	assert_string_equal(tls_ctx_own_name(sctx), "n1-renewed");

	p = pair_new(cctx, sctx, "n1-renewed", TLS_ROLE_NODE, NULL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->cli.c));
	pair_free(p);

	/* the owner may let go of the contexts before the sessions end */
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
	assert_int_equal(tls_conn_write(old->cli.c, "after", 5), 0);
	pump(&old->cli, &old->srv);
	assert_string_equal(old->srv.in, "stillafter");
	pair_free(old);
}

/* ---- datagram keys from the exporter -------------------------------- */

/* One handshake, both ends: the same exporter bytes, and keys installed
 * from them seal and open datagrams both ways with the names the
 * certificates proved. A resumed session exports different bytes. */
static void handshake(struct pair *p, uint8_t cm[DGRAM_MATERIAL_LEN],
                      uint8_t sm[DGRAM_MATERIAL_LEN])
{
	assert_int_equal(tls_conn_export(p->cli.c, DGRAM_EXPORTER_LABEL, cm, DGRAM_MATERIAL_LEN),
	                 -EINVAL); /* not before the handshake */
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->cli.c));
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_false(tls_conn_is_server(p->cli.c));
	assert_true(tls_conn_is_server(p->srv.c));
	assert_int_equal(tls_conn_export(p->cli.c, DGRAM_EXPORTER_LABEL, cm, DGRAM_MATERIAL_LEN),
	                 0);
	assert_int_equal(tls_conn_export(p->srv.c, DGRAM_EXPORTER_LABEL, sm, DGRAM_MATERIAL_LEN),
	                 0);
}

static void test_exporter_datagram_keys(void **state)
{
	struct tls_ctx *sctx = server_ctx("ca.pem", "n1");
	struct tls_ctx *cctx = client_ctx("ca.pem", "n2");
	uint8_t cm[DGRAM_MATERIAL_LEN], sm[DGRAM_MATERIAL_LEN], other[DGRAM_MATERIAL_LEN];
	struct pair *p = pair_new(cctx, sctx, "n1", TLS_ROLE_NODE, "10.0.0.9:7946");

	handshake(p, cm, sm);
	assert_memory_equal(cm, sm, DGRAM_MATERIAL_LEN);
	/* another label gives other bytes */
	assert_int_equal(tls_conn_export(p->cli.c, "EXPORTER-other", other, sizeof(other)), 0);
	assert_memory_not_equal(cm, other, sizeof(other));

	struct dgram_table *n2 = dgram_new(NULL), *n1 = dgram_new(NULL);
	assert_int_equal(dgram_install(n2, tls_conn_peer_name(p->cli.c), cm, sizeof(cm),
	                               !tls_conn_is_server(p->cli.c), 0),
	                 0);
	assert_int_equal(dgram_install(n1, tls_conn_peer_name(p->srv.c), sm, sizeof(sm),
	                               !tls_conn_is_server(p->srv.c), 0),
	                 0);
	uint8_t dg[DGRAM_MAX_LEN], out[DGRAM_MAX_PAYLOAD];
	size_t len, ol;
	const char *from;
	assert_int_equal(dgram_seal(n2, "n1", (const uint8_t *)"ping", 4, dg, sizeof(dg), &len, 1),
	                 0);
	assert_int_equal(dgram_open(n1, dg, len, out, sizeof(out), &ol, &from, 1), DGRAM_OK);
	assert_string_equal(from, "n2");
	assert_memory_equal(out, "ping", 4);
	assert_int_equal(dgram_seal(n1, "n2", (const uint8_t *)"ack", 3, dg, sizeof(dg), &len, 2),
	                 0);
	assert_int_equal(dgram_open(n2, dg, len, out, sizeof(out), &ol, &from, 2), DGRAM_OK);
	assert_string_equal(from, "n1");
	pair_free(p);

	/* a resumed session: fresh keys all the same */
	p = pair_new(cctx, sctx, "n1", TLS_ROLE_NODE, "10.0.0.9:7946");
	handshake(p, other, sm);
	assert_true(tls_conn_resumed(p->cli.c));
	assert_memory_equal(other, sm, DGRAM_MATERIAL_LEN);
	assert_memory_not_equal(cm, other, DGRAM_MATERIAL_LEN);
	pair_free(p);

	dgram_free(n1);
	dgram_free(n2);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* ---- signed self-claims (tls_claim.h) ------------------------------- */

static struct tls_claim claim_of(const char *name, uint64_t inc, uint64_t ver, const char *data)
{
	struct tls_claim c = {"state record", name, inc, ver, data, strlen(data)};
	return c;
}

/* signer's proof of a claim by `name` is refused by checker, the reason
 * containing want. */
static void claim_refused(struct tls_claim_cache *cc, struct tls_ctx *checker,
                          struct tls_ctx *signer, const char *name, const char *want)
{
	uint8_t proof[4096];
	char why[256];
	struct tls_claim c = claim_of(name, 1, 1, "x");
	int len = tls_claim_sign(signer, &c, proof, sizeof(proof));
	assert_true(len > 0);
	assert_int_equal(tls_claim_verify(cc, checker, &c, proof, (size_t)len, 3, why, sizeof(why)),
	                 -EACCES);
	assert_non_null(strstr(why, want));
}

/* A node's proof of its own record verifies anywhere in the cluster, as
 * relayed (the bytes unchanged); anything else is refused with a reason. */
static void test_claim_sign_verify(void **state)
{
	struct tls_ctx *n1 = server_ctx("ca.pem", "n1"), *n2 = server_ctx("ca.pem", "n2");
	struct tls_ctx *viewer = client_ctx("ca.pem", "viewer");
	struct tls_ctx *impostor = client_ctx_flags("other.pem", "impostor", 0);
	struct tls_ctx *oldnode = client_ctx_flags("ca.pem", "oldnode", 0);
	struct tls_claim_cache *cc = tls_claim_cache_new();
	assert_non_null(cc);
	uint8_t proof[4096];
	char why[256];
	struct tls_claim c = claim_of("n1", 3, 7, "cpus=8");
	int len = tls_claim_sign(n1, &c, proof, sizeof(proof));
	assert_true(len > 0);
	assert_int_equal(tls_claim_verify(cc, n2, &c, proof, (size_t)len, 0, why, sizeof(why)), 0);
	/* again, from the cache */
	assert_int_equal(tls_claim_verify(cc, n2, &c, proof, (size_t)len, 1, why, sizeof(why)), 0);
	/* we sign only for ourselves, and need room */
	struct tls_claim other = claim_of("n2", 3, 7, "cpus=8");
	assert_int_equal(tls_claim_sign(n1, &other, proof, sizeof(proof)), -EINVAL);
	assert_int_equal(tls_claim_sign(n1, &c, proof, 100), -ENOSPC);
	len = tls_claim_sign(n1, &c, proof, sizeof(proof));
	/* a forged record under n1's proof: other values, version, name */
	struct tls_claim forged[] = {claim_of("n1", 3, 7, "cpus=1"), claim_of("n1", 3, 8, "cpus=8"),
	                             claim_of("n1", 4, 7, "cpus=8")};
	for (size_t k = 0; k < 3; k++) {
		assert_int_equal(
		    tls_claim_verify(cc, n2, &forged[k], proof, (size_t)len, 2, why, sizeof(why)),
		    -EACCES);
		assert_string_equal(why, "bad signature by 'n1'");
	}
	assert_int_equal(tls_claim_verify(cc, n2, &other, proof, (size_t)len, 2, why, sizeof(why)),
	                 -EACCES);
	assert_string_equal(why, "certificate is for 'n1', not 'n2'");
	/* no proof, a truncated one, a flipped signature byte */
	assert_int_equal(tls_claim_verify(cc, n2, &c, NULL, 0, 2, why, sizeof(why)), -EACCES);
	assert_string_equal(why, "no proof");
	assert_int_equal(tls_claim_verify(cc, n2, &c, proof, 40, 2, why, sizeof(why)), -EACCES);
	assert_string_equal(why, "malformed proof");
	proof[len - 3] ^= 1;
	assert_int_equal(tls_claim_verify(cc, n2, &c, proof, (size_t)len, 2, why, sizeof(why)),
	                 -EACCES);
	/* a viewer, a node of another CA, an expired node: refused */
	claim_refused(cc, n2, viewer, "viewer",
	              "certificate of 'viewer' has role 'viewer', not node");
	claim_refused(cc, n2, impostor, "impostor", "refused by the cluster CA");
	claim_refused(cc, n2, oldnode, "oldnode", "expired");
	tls_claim_cache_free(cc);
	tls_ctx_free(n1);
	tls_ctx_free(n2);
	tls_ctx_free(viewer);
	tls_ctx_free(impostor);
	tls_ctx_free(oldnode);
}

/* Bare claims (a SWIM ALIVE's proof): the signature alone, checked with
 * the certificate a full proof taught the cache; a forged incarnation, a
 * signature by another node's key, and a name never learned are refused. */
static void test_claim_bare(void **state)
{
	(void)state;
	struct tls_ctx *n1 = server_ctx("ca.pem", "n1"), *n2 = server_ctx("ca.pem", "n2");
	struct tls_claim_cache *cc = tls_claim_cache_new();
	assert_non_null(cc);
	uint8_t sig[256], proof[4096];
	char why[256];
	struct tls_claim alive = {"alive", "n1", 5, 0, NULL, 0};
	int len = tls_claim_sign_bare(n1, &alive, sig, sizeof(sig));
	assert_true(len > 0 && len <= 72); /* P-256, DER */
	assert_int_equal(tls_claim_sign_bare(n1, &alive, sig, 10), -ENOSPC);
	struct tls_claim as_n2 = {"alive", "n2", 5, 0, NULL, 0};
	assert_int_equal(tls_claim_sign_bare(n1, &as_n2, sig + 100, 100), -EINVAL);
	/* n1's certificate not known yet */
	assert_int_equal(
	    tls_claim_verify_bare(cc, n2, &alive, sig, (size_t)len, 0, why, sizeof(why)), -ENOKEY);
	assert_string_equal(why, "no certificate of 'n1' known yet");
	/* a full proof of n1 (its node-state record) teaches it */
	struct tls_claim rec = claim_of("n1", 5, 1, "cpus=8");
	int plen = tls_claim_sign(n1, &rec, proof, sizeof(proof));
	assert_int_equal(tls_claim_verify(cc, n2, &rec, proof, (size_t)plen, 0, why, sizeof(why)),
	                 0);
	assert_int_equal(
	    tls_claim_verify_bare(cc, n2, &alive, sig, (size_t)len, 1, why, sizeof(why)), 0);
	/* another incarnation, another kind, n2's signature of n1's claim */
	struct tls_claim raised = {"alive", "n1", 6, 0, NULL, 0};
	assert_int_equal(
	    tls_claim_verify_bare(cc, n2, &raised, sig, (size_t)len, 1, why, sizeof(why)), -EACCES);
	assert_string_equal(why, "bad signature by 'n1'");
	struct tls_claim kind = {"state record", "n1", 5, 0, NULL, 0};
	assert_int_equal(
	    tls_claim_verify_bare(cc, n2, &kind, sig, (size_t)len, 1, why, sizeof(why)), -EACCES);
	struct tls_claim by_n2 = {"alive", "n2", 6, 0, NULL, 0};
	int l2 = tls_claim_sign_bare(n2, &by_n2, sig + 128, 128);
	assert_true(l2 > 0);
	assert_int_equal(
	    tls_claim_verify_bare(cc, n2, &raised, sig + 128, (size_t)l2, 1, why, sizeof(why)),
	    -EACCES);
	assert_int_equal(tls_claim_verify_bare(cc, n2, &alive, NULL, 0, 1, why, sizeof(why)),
	                 -EACCES);
	assert_string_equal(why, "no proof");
	tls_claim_cache_free(cc);
	tls_ctx_free(n1);
	tls_ctx_free(n2);
}

/* A SWIM LEFT's proof of leaving (agent/daemon/membership.c: a full
 * proof of ("left", name, incarnation), certificate included) verifies at
 * a member that never learned the leaver's certificate (a fresh cache:
 * the host that left a second after it joined), and a PING carrying it
 * still fits one datagram. Prints what it costs in bytes. */
static void test_claim_left_proof_fits_datagram(void **state)
{
	(void)state;
	struct tls_ctx *n1 = server_ctx("ca.pem", "n1"), *n2 = server_ctx("ca.pem", "n2");
	struct tls_claim_cache *fresh = tls_claim_cache_new();
	assert_non_null(fresh);
	uint8_t proof[SWIM_LEFT_PROOF_MAX];
	char why[256];
	struct tls_claim left = {"left", "n1", 8, 0, NULL, 0};
	int len = tls_claim_sign(n1, &left, proof, sizeof(proof));
	assert_true(len > 256); /* the certificate rides along */
	assert_int_equal(
	    tls_claim_verify(fresh, n2, &left, proof, (size_t)len, 0, why, sizeof(why)), 0);
	/* a proof of leaving at another incarnation, or as an ALIVE, is not */
	struct tls_claim other = {"left", "n1", 9, 0, NULL, 0};
	assert_int_equal(
	    tls_claim_verify(fresh, n2, &other, proof, (size_t)len, 0, why, sizeof(why)), -EACCES);
	struct tls_claim alive = {"alive", "n1", 8, 0, NULL, 0};
	assert_int_equal(
	    tls_claim_verify(fresh, n2, &alive, proof, (size_t)len, 0, why, sizeof(why)), -EACCES);
	struct swim_update u = {.name = "n1",
	                        .addr = "[2001:db8::101]:7946",
	                        .incarnation = 8,
	                        .state = SWIM_LEFT,
	                        .origin = "n1",
	                        .proof = proof,
	                        .proof_len = (size_t)len};
	struct swim_msg m = {.type = SWIM_MSG_PING,
	                     .from = "n3",
	                     .from_addr = "[2001:db8::103]:7946",
	                     .to = "n2",
	                     .to_addr = "[2001:db8::102]:7946",
	                     .seq = 1ull << 40,
	                     .target = "",
	                     .target_addr = "",
	                     .updates = &u,
	                     .n_updates = 1};
	size_t frame = swim_codec_frame_size(&m);
	printf("LEFT proof of leaving: %d bytes (certificate + signature); a PING carrying it: %zu "
	       "bytes of datagram payload (at most %d)\n",
	       len, frame - FRAME_HEADER_LEN, DGRAM_MAX_PAYLOAD);
	assert_true(frame - FRAME_HEADER_LEN <= DGRAM_MAX_PAYLOAD);
	tls_claim_cache_free(fresh);
	tls_ctx_free(n1);
	tls_ctx_free(n2);
}

static double claim_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The cost of a proof, printed (not asserted): signing a ~1 KiB record
 * (once per change of our record), verifying it with the signer's
 * certificate cached (each new record from a known host) and uncached. */
static void test_claim_cost(void **state)
{
	struct tls_ctx *n1 = server_ctx("ca.pem", "n1"), *n2 = server_ctx("ca.pem", "n2");
	char data[1024];
	memset(data, 'r', sizeof(data) - 1);
	data[sizeof(data) - 1] = '\0';
	struct tls_claim c = claim_of("n1", 3, 7, data);
	uint8_t proof[4096];
	char why[256];
	const int runs = 200;
	int len = 0;
	double t0 = claim_now_us();
	for (int k = 0; k < runs; k++)
		len = tls_claim_sign(n1, &c, proof, sizeof(proof));
	double t1 = claim_now_us();
	struct tls_claim_cache *cc = tls_claim_cache_new();
	for (int k = 0; k < runs; k++)
		assert_int_equal(
		    tls_claim_verify(cc, n2, &c, proof, (size_t)len, 0, why, sizeof(why)), 0);
	double t2 = claim_now_us();
	for (int k = 0; k < runs / 4; k++) {
		struct tls_claim_cache *fresh = tls_claim_cache_new();
		assert_int_equal(
		    tls_claim_verify(fresh, n2, &c, proof, (size_t)len, 0, why, sizeof(why)), 0);
		tls_claim_cache_free(fresh);
	}
	double t3 = claim_now_us();
	printf("claim proof: %d bytes; sign %.1f us/op, verify %.1f us/op (certificate cached), "
	       "%.1f us/op (certificate checked)\n",
	       len, (t1 - t0) / runs, (t2 - t1) / runs, (t3 - t2) / (runs / 4));
	/* a SWIM ALIVE's bare proof: signed once per incarnation change,
	 * verified once per raise of a member's incarnation (not per message) */
	struct tls_claim alive = {"alive", "n1", 9, 0, NULL, 0};
	uint8_t sig[256];
	int slen = 0;
	double t4 = claim_now_us();
	for (int k = 0; k < runs; k++)
		slen = tls_claim_sign_bare(n1, &alive, sig, sizeof(sig));
	double t5 = claim_now_us();
	for (int k = 0; k < runs; k++)
		assert_int_equal(
		    tls_claim_verify_bare(cc, n2, &alive, sig, (size_t)slen, 0, why, sizeof(why)),
		    0);
	double t6 = claim_now_us();
	printf("ALIVE proof: %d bytes; sign %.1f us/op, verify %.1f us/op (certificate cached)\n",
	       slen, (t5 - t4) / runs, (t6 - t5) / runs);
	tls_claim_cache_free(cc);
	tls_ctx_free(n1);
	tls_ctx_free(n2);
}

/* ---- revocation ----------------------------------------------------- */

/* path() of one file, in storage of its own (path's buffers rotate). */
#define STABLE_PATH(var, name)                                    \
	char var##_buf[640];                                      \
	snprintf(var##_buf, sizeof(var##_buf), "%s", path(name)); \
	const char *var = var##_buf

static void mkcrl(const char *out, const char *const *revoke, size_t n, const char *keep)
{
	char err[512];

	if (tls_crl_create(path("ca.pem"), path("ca-key.pem"), revoke, n, keep ? path(keep) : NULL,
	                   7, path(out), err, sizeof(err)) != 0)
		fail_msg("tls_crl_create %s: %s", out, err);
}

static struct tls_ctx *ctx_crl(bool server, const char *name, const char *crl)
{
	struct tls_ctx *ctx = NULL;
	char cert[64], key[64], err[512];

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s-key.pem", name);
	if (tls_ctx_new_crl(&ctx, server, path("ca.pem"), path(cert), path(key), path(crl), err,
	                    sizeof(err)) != 0)
		fail_msg("ctx %s with %s: %s", name, crl, err);
	return ctx;
}

/* n2 (on the CRL of sctx) is refused, and both sides say why. */
static void expect_n2_revoked(struct tls_ctx *n2, struct tls_ctx *sctx)
{
	expect_refusal(n2, sctx, "n1", TLS_ROLE_NODE,
	               "the agent refused our certificate: certificate revoked (TLS alert 44)",
	               "refused client 'n2': certificate revoked by the cluster CRL (certificate "
	               "revoked)");
}

/* A signer revoked by a CRL reload: a cached check of its certificate
 * still passes until the cache is cleared (the agent clears it on every
 * reload: nodestate_recheck_signers); after the clear its claims are
 * refused. */
static void test_claim_cache_clear_after_revocation(void **state)
{
	STABLE_PATH(n2_pem, "n2.pem");
	const char *revoke_n2[] = {n2_pem};
	char err[512], why[256];
	uint8_t proof[4096];

	(void)state;
	mkcrl("claims.crl", NULL, 0, NULL);
	struct tls_ctx *checker = ctx_crl(true, "n1", "claims.crl");
	struct tls_ctx *n2 = server_ctx("ca.pem", "n2");
	struct tls_claim_cache *cc = tls_claim_cache_new();
	assert_non_null(cc);
	struct tls_claim c = claim_of("n2", 1, 1, "cpus=4");
	int len = tls_claim_sign(n2, &c, proof, sizeof(proof));
	assert_true(len > 0);
	assert_int_equal(tls_claim_verify(cc, checker, &c, proof, (size_t)len, 0, why, sizeof(why)),
	                 0);

	mkcrl("claims.crl", revoke_n2, 1, "claims.crl");
	assert_int_equal(tls_ctx_reload(checker, err, sizeof(err)), 0);
	/* cached: still believed (within TLS_CLAIM_CACHE_MS) */
	assert_int_equal(tls_claim_verify(cc, checker, &c, proof, (size_t)len, 1, why, sizeof(why)),
	                 0);
	tls_claim_cache_clear(cc);
	assert_int_equal(tls_claim_verify(cc, checker, &c, proof, (size_t)len, 2, why, sizeof(why)),
	                 -EACCES);
	assert_non_null(strstr(why, "revoked"));
	/* clearing twice, and an empty cache, are harmless */
	tls_claim_cache_clear(cc);
	tls_claim_cache_clear(NULL);
	tls_claim_cache_free(cc);
	tls_ctx_free(n2);
	tls_ctx_free(checker);
}

/* A certificate on the CRL is refused on both sides of a handshake, with
 * the reason in words; one not on it is not. */
static void test_crl_refuses_revoked(void **state)
{
	STABLE_PATH(n2_pem, "n2.pem");
	const char *revoke[] = {n2_pem};
	struct tls_ctx *sctx, *cctx, *n2, *ok;
	struct pair *p;
	size_t n;
	int64_t next;

	mkcrl("revoke-n2.crl", revoke, 1, NULL);
	sctx = ctx_crl(true, "n1", "revoke-n2.crl");
	assert_true(tls_ctx_crl_info(sctx, &n, &next));
	assert_int_equal(n, 1);
	assert_true(next > time(NULL) + 6 * DAY && next <= time(NULL) + 7 * DAY);
	n2 = client_ctx("ca.pem", "n2");
	assert_false(tls_ctx_crl_info(n2, &n, &next));
	expect_n2_revoked(n2, sctx);
	/* an operator is not on the list */
	ok = client_ctx("ca.pem", "op");
	p = pair_new(ok, sctx, "n1", TLS_ROLE_NODE, NULL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_null(tls_conn_peer_distrusted(p->srv.c));
	pair_free(p);
	tls_ctx_free(sctx);
	tls_ctx_free(n2);
	tls_ctx_free(ok);

	/* a client checks the agent's certificate too */
	cctx = ctx_crl(false, "op", "revoke-n2.crl");
	sctx = server_ctx("ca.pem", "n2");
	expect_refusal(cctx, sctx, "n2", TLS_ROLE_NODE,
	               "agent certificate revoked by the cluster CRL (certificate revoked)", NULL);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* A CRL that cannot be used is an error at start, with the file named; at
 * reload the CRL in force stays. */
static void test_crl_bad_files(void **state)
{
	STABLE_PATH(n1_pem, "n1.pem");
	STABLE_PATH(stranger_pem, "stranger.pem");
	const char *revoke_n1[] = {n1_pem};
	const char *foreign[] = {stranger_pem};
	struct tls_ctx *ctx = NULL;
	char err[512];
	FILE *f;

	f = fopen(path("garbage.crl"), "w");
	assert_non_null(f);
	fputs("-----BEGIN X509 CRL-----\nnot base64 at all\n-----END X509 CRL-----\n", f);
	fclose(f);
	assert_int_equal(tls_ctx_new_crl(&ctx, true, path("ca.pem"), path("n1.pem"),
	                                 path("n1-key.pem"), path("garbage.crl"), err, sizeof(err)),
	                 -EINVAL);
	assert_null(ctx);
	assert_non_null(strstr(err, "garbage.crl' holds no PEM CRL"));
	assert_true(tls_ctx_new_crl(&ctx, true, path("ca.pem"), path("n1.pem"), path("n1-key.pem"),
	                            path("missing.crl"), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot open CRL file"));

	/* signed by another CA */
	assert_int_equal(tls_crl_create(path("other.pem"), path("other-key.pem"), NULL, 0, NULL, 7,
	                                path("other.crl"), err, sizeof(err)),
	                 0);
	assert_int_equal(tls_ctx_new_crl(&ctx, true, path("ca.pem"), path("n1.pem"),
	                                 path("n1-key.pem"), path("other.crl"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "other.crl' is not signed by the cluster CA"));

	/* revokes ourselves */
	mkcrl("revoke-n1.crl", revoke_n1, 1, NULL);
	assert_int_equal(tls_ctx_new_crl(&ctx, true, path("ca.pem"), path("n1.pem"),
	                                 path("n1-key.pem"), path("revoke-n1.crl"), err,
	                                 sizeof(err)),
	                 -EACCES);
	assert_non_null(strstr(err, "n1.pem' is revoked by the CRL"));

	/* the tool refuses a certificate of another CA, and a list of another CA */
	assert_int_equal(tls_crl_create(path("ca.pem"), path("ca-key.pem"), foreign, 1, NULL, 7,
	                                path("x.crl"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "stranger.pem' is not signed by the CA"));
	assert_int_equal(tls_crl_create(path("ca.pem"), path("ca-key.pem"), NULL, 0,
	                                path("other.crl"), 7, path("x.crl"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "other.crl' is not signed by the CA"));
	assert_int_equal(tls_crl_create(path("ca.pem"), path("ca-key.pem"), NULL, 0, NULL, 0,
	                                path("x.crl"), err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(access(path("x.crl"), F_OK), -1);
}

/* The last step of a CA rotation: the CA file first holds both CAs, then
 * only the new one. A session of a peer whose certificate the removed CA
 * signed is then distrusted (the agent closes it), and it cannot connect
 * again; peers of the CA that stays are untouched. */
static void test_ca_removed_on_reload(void **state)
{
	struct tls_ctx *sctx, *stranger = client_ctx("both.pem", "stranger"),
			      *n2 = client_ctx("both.pem", "n2");
	struct pair *old, *kept, *p;
	char err[512];

	concat("rot.pem", "ca.pem", "other.pem");
	sctx = server_ctx("rot.pem", "n1");
	old = pair_new(stranger, sctx, "n1", TLS_ROLE_NODE, NULL);
	pump(&old->cli, &old->srv);
	assert_true(tls_conn_handshake_done(old->srv.c));
	kept = pair_new(n2, sctx, "n1", TLS_ROLE_NODE, "n1-addr");
	pump(&kept->cli, &kept->srv);
	assert_true(tls_conn_handshake_done(kept->srv.c));
	assert_null(tls_conn_peer_distrusted(old->srv.c));
	assert_null(tls_conn_peer_distrusted(kept->srv.c));
	/* the certificates kept past their sessions (datagram keys outlive
	 * the connection that made them), judged again after the reload */
	struct tls_cert *x_old = tls_conn_peer_cert(old->srv.c),
			*x_kept = tls_conn_peer_cert(kept->srv.c);
	assert_non_null(x_old);
	assert_non_null(x_kept);
	assert_null(tls_ctx_cert_distrusted(sctx, x_old));

	/* the other CA leaves the file */
	concat("rot.pem", "ca.pem", "ca.pem");
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), 0);
	const char *why = tls_conn_peer_distrusted(old->srv.c);
	assert_non_null(why);
	assert_non_null(strstr(why, "not signed by a CA in the CA file now in force"));
	assert_null(tls_conn_peer_distrusted(kept->srv.c));
	/* and a new session of the old CA's certificate is refused */
	p = pair_new(stranger, sctx, "n1", TLS_ROLE_NODE, NULL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_failed(p->srv.c));
	pair_free(p);
	pair_free(old);
	pair_free(kept);
	why = tls_ctx_cert_distrusted(sctx, x_old); /* its session is gone */
	assert_non_null(why);
	assert_non_null(strstr(why, "not signed by a CA in the CA file now in force"));
	assert_null(tls_ctx_cert_distrusted(sctx, x_kept));
	tls_cert_free(x_old);
	tls_cert_free(x_kept);
	tls_ctx_free(sctx);
	tls_ctx_free(stranger);
	tls_ctx_free(n2);
	(void)state;
}

/* SIGHUP's reload: a peer revoked since its session began is found by
 * tls_conn_peer_distrusted (the agent closes it), cannot connect again, and a
 * broken CRL file at reload keeps the list in force. */
static void test_crl_reload(void **state)
{
	STABLE_PATH(n2_pem, "n2.pem");
	STABLE_PATH(op_pem, "op.pem");
	const char *revoke_n2[] = {n2_pem};
	const char *revoke_op[] = {op_pem};
	struct tls_ctx *sctx, *n2 = client_ctx("ca.pem", "n2"), *op = client_ctx("ca.pem", "op");
	struct pair *live, *p;
	char err[512];
	size_t n;
	int64_t next;
	FILE *f;

	mkcrl("live.crl", NULL, 0, NULL);
	sctx = ctx_crl(true, "n1", "live.crl");
	assert_true(tls_ctx_crl_info(sctx, &n, &next));
	assert_int_equal(n, 0);
	live = pair_new(n2, sctx, "n1", TLS_ROLE_NODE, "n1-addr");
	pump(&live->cli, &live->srv);
	assert_true(tls_conn_handshake_done(live->srv.c));
	assert_null(tls_conn_peer_distrusted(live->srv.c));
	/* certificate identities (issuer and serial: what the CRL names, and
	 * what the datagram keys are kept by): n2's as the server saw it, n1's
	 * as the client saw it */
	uint8_t id_n2[TLS_CERT_ID_LEN], id_n1[TLS_CERT_ID_LEN], (*ids)[TLS_CERT_ID_LEN] = NULL;
	assert_true(tls_conn_peer_cert_id(live->srv.c, id_n2));
	assert_true(tls_conn_peer_cert_id(live->cli.c, id_n1));
	assert_memory_not_equal(id_n1, id_n2, TLS_CERT_ID_LEN);
	assert_int_equal(tls_ctx_revoked_ids(sctx, &ids), 0);
	assert_null(ids);

	/* n2 revoked; the list grows from the old one */
	mkcrl("live.crl", revoke_n2, 1, "live.crl");
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), 0);
	assert_true(tls_ctx_crl_info(sctx, &n, &next));
	assert_int_equal(n, 1);
	assert_non_null(tls_conn_peer_distrusted(live->srv.c));
	assert_int_equal(tls_ctx_revoked_ids(sctx, &ids), 1);
	assert_memory_equal(ids[0], id_n2, TLS_CERT_ID_LEN);
	free(ids);
	/* a new session of n2 is refused */
	expect_n2_revoked(n2, sctx);

	/* the operator is added, n2 kept */
	mkcrl("live.crl", revoke_op, 1, "live.crl");
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), 0);
	assert_true(tls_ctx_crl_info(sctx, &n, &next));
	assert_int_equal(n, 2);
	assert_int_equal(tls_ctx_revoked_ids(sctx, &ids), 2);
	assert_true(memcmp(ids[0], id_n2, TLS_CERT_ID_LEN) == 0 ||
	            memcmp(ids[1], id_n2, TLS_CERT_ID_LEN) == 0);
	assert_memory_not_equal(ids[0], ids[1], TLS_CERT_ID_LEN);
	free(ids);
	p = pair_new(op, sctx, "n1", TLS_ROLE_NODE, NULL);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_failed(p->srv.c));
	pair_free(p);

	/* a broken file at reload: the old list stays in force */
	f = fopen(path("live.crl"), "w");
	assert_non_null(f);
	fputs("garbage\n", f);
	fclose(f);
	assert_int_equal(tls_ctx_reload(sctx, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "live.crl' holds no PEM CRL"));
	assert_true(tls_ctx_crl_info(sctx, &n, &next));
	assert_int_equal(n, 2);
	assert_non_null(tls_conn_peer_distrusted(live->srv.c));
	expect_n2_revoked(n2, sctx);
	pair_free(live);
	tls_ctx_free(sctx);
	tls_ctx_free(n2);
	tls_ctx_free(op);
}

/* Re-signs CRL file `name` with the CA so that its nextUpdate lies a day
 * in the past (tls_crl_create makes only current ones). */
static void make_stale(const char *name)
{
	FILE *f = fopen(path(name), "r");
	X509_CRL *crl = f ? PEM_read_X509_CRL(f, NULL, NULL, NULL) : NULL;
	FILE *k = fopen(path("ca-key.pem"), "r");
	EVP_PKEY *key = k ? PEM_read_PrivateKey(k, NULL, NULL, NULL) : NULL;
	ASN1_TIME *last = X509_gmtime_adj(NULL, -3 * DAY), *next = X509_gmtime_adj(NULL, -DAY);

	assert_non_null(crl);
	assert_non_null(key);
	fclose(f);
	fclose(k);
	assert_true(X509_CRL_set1_lastUpdate(crl, last) && X509_CRL_set1_nextUpdate(crl, next));
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	f = fopen(path(name), "w");
	assert_non_null(f);
	assert_true(PEM_write_X509_CRL(f, crl));
	fclose(f);
	X509_CRL_free(crl);
	EVP_PKEY_free(key);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
}

/* Nobody re-signed the list in time: it still applies (n2 refused), and it
 * does not turn into a refusal of everyone else. */
static void test_crl_stale_still_applies(void **state)
{
	STABLE_PATH(n2_pem, "n2.pem");
	const char *revoke[] = {n2_pem};
	struct tls_ctx *sctx, *n2 = client_ctx("ca.pem", "n2"), *op = client_ctx("ca.pem", "op");
	struct pair *p;
	size_t n;
	int64_t next;

	mkcrl("stale.crl", revoke, 1, NULL);
	make_stale("stale.crl");
	sctx = ctx_crl(true, "n1", "stale.crl");
	assert_true(tls_ctx_crl_info(sctx, &n, &next));
	assert_int_equal(n, 1);
	assert_true(next < time(NULL));
	p = pair_new(op, sctx, "n1", TLS_ROLE_NODE, NULL);
	assert_int_equal(tls_conn_write(p->cli.c, "hi", 2), 0);
	pump(&p->cli, &p->srv);
	assert_true(tls_conn_handshake_done(p->srv.c));
	assert_string_equal(p->srv.in, "hi");
	pair_free(p);
	expect_n2_revoked(n2, sctx);
	tls_ctx_free(sctx);
	tls_ctx_free(n2);
	tls_ctx_free(op);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_claim_sign_verify),
	    cmocka_unit_test(test_claim_cost),
	    cmocka_unit_test(test_claim_bare),
	    cmocka_unit_test(test_claim_left_proof_fits_datagram),
	    cmocka_unit_test(test_handshake_and_data),
	    cmocka_unit_test(test_node_to_node_and_viewer),
	    cmocka_unit_test(test_client_without_certificate),
	    cmocka_unit_test(test_client_from_another_ca),
	    cmocka_unit_test(test_client_expired),
	    cmocka_unit_test(test_client_not_yet_valid),
	    cmocka_unit_test(test_client_without_role),
	    cmocka_unit_test(test_garbage_is_refused),
	    cmocka_unit_test(test_server_from_another_ca),
	    cmocka_unit_test(test_server_expired),
	    cmocka_unit_test(test_server_name_mismatch),
	    cmocka_unit_test(test_server_role_mismatch),
	    cmocka_unit_test(test_server_host_check),
	    cmocka_unit_test(test_resumption),
	    cmocka_unit_test(test_resumption_stops_at_expiry),
	    cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_exporter_datagram_keys),
	    cmocka_unit_test(test_crl_refuses_revoked),
	    cmocka_unit_test(test_crl_bad_files),
	    cmocka_unit_test(test_crl_reload),
	    cmocka_unit_test(test_ca_removed_on_reload),
	    cmocka_unit_test(test_claim_cache_clear_after_revocation),
	    cmocka_unit_test(test_crl_stale_still_applies),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
