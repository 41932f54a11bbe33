/*
 * test_tls_cert.c — the cluster CA tooling (agent/net/tls_cert.c).
 *
 * Every test works in its own fresh temporary directory, makes real files
 * with tls_ca_create/tls_cert_create and reads them back through
 * tls_cert_info_read and tls_ctx_new, so it checks what an agent will
 * actually see: names, roles, key usages, SANs, validity, file modes, and
 * that nothing is ever overwritten.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "tls.h"

#define DAY 86400

struct dir {
	char path[64];
};

static char *in(struct dir *d, const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", d->path, name);
	return b;
}

static int dir_setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	snprintf(d->path, sizeof(d->path), "/tmp/mv-tls-cert-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	*state = d;
	return 0;
}

static int dir_teardown(void **state)
{
	struct dir *d = *state;
	DIR *dh = opendir(d->path);
	struct dirent *e;

	while (dh && (e = readdir(dh)) != NULL)
		if (e->d_name[0] != '.')
			unlink(in(d, e->d_name));
	if (dh)
		closedir(dh);
	rmdir(d->path);
	free(d);
	return 0;
}

static mode_t file_mode(const char *p)
{
	struct stat st;

	assert_int_equal(stat(p, &st), 0);
	return st.st_mode & 07777;
}

static bool exists(const char *p)
{
	return access(p, F_OK) == 0;
}

static char *slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *b = calloc(1, 65536);

	assert_non_null(f);
	assert_true(fread(b, 1, 65535, f) > 0);
	fclose(f);
	return b;
}

static void make_ca(struct dir *d, const char *cert, const char *key, const char *name)
{
	char err[512];

	assert_int_equal(tls_ca_create(in(d, cert), in(d, key), name, 3650, err, sizeof(err)), 0);
}

static int make_cert(struct dir *d, const char *name, enum tls_role role, int64_t offset_s,
                     int64_t valid_s, char *err, size_t errlen)
{
	struct tls_cert_request r = {
	    .name = name, .role = role, .not_before_offset_s = offset_s, .valid_s = valid_s};
	char cert[64], key[64];

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s-key.pem", name);
	return tls_cert_create(in(d, "ca.pem"), in(d, "ca-key.pem"), &r, in(d, cert), in(d, key),
	                       err, errlen);
}

static void test_ca_create(void **state)
{
	struct dir *d = *state;
	struct tls_cert_info ci;
	char err[512];
	int64_t now = time(NULL);

	assert_int_equal(
	    tls_ca_create(in(d, "ca.pem"), in(d, "ca-key.pem"), "test CA", 10, err, sizeof(err)),
	    0);
	assert_int_equal(file_mode(in(d, "ca-key.pem")), 0600);
	assert_int_equal(file_mode(in(d, "ca.pem")), 0644);
	assert_int_equal(tls_cert_info_read(in(d, "ca.pem"), &ci, err, sizeof(err)), 0);
	assert_string_equal(ci.name, "test CA");
	assert_string_equal(ci.issuer, "test CA");
	assert_true(ci.is_ca);
	assert_int_equal(ci.role, TLS_ROLE_NONE);
	/* backdated 5 minutes for clock skew; ends `days` from now */
	assert_true(ci.not_before >= now - 305 && ci.not_before <= now - 295);
	assert_true(ci.not_after >= now + 10 * DAY - 5 && ci.not_after <= now + 10 * DAY + 5);

	/* default name */
	assert_int_equal(
	    tls_ca_create(in(d, "ca2.pem"), in(d, "ca2-key.pem"), NULL, 1, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_info_read(in(d, "ca2.pem"), &ci, err, sizeof(err)), 0);
	assert_string_equal(ci.name, "meshvisor cluster CA");
}

static void test_ca_refuses_overwrite(void **state)
{
	struct dir *d = *state;
	char err[512];
	char *before, *after;

	make_ca(d, "ca.pem", "ca-key.pem", "first");
	before = slurp(in(d, "ca-key.pem"));

	assert_int_equal(
	    tls_ca_create(in(d, "ca.pem"), in(d, "ca-key.pem"), "second", 10, err, sizeof(err)),
	    -EEXIST);
	assert_non_null(strstr(err, "already exists; refusing to overwrite it"));
	after = slurp(in(d, "ca-key.pem"));
	assert_string_equal(before, after);
	free(after);

	/* only the key exists: nothing new may appear either */
	assert_int_equal(
	    tls_ca_create(in(d, "new.pem"), in(d, "ca-key.pem"), "third", 10, err, sizeof(err)),
	    -EEXIST);
	assert_false(exists(in(d, "new.pem")));
	after = slurp(in(d, "ca-key.pem"));
	assert_string_equal(before, after);
	free(after);
	free(before);

	assert_int_equal(
	    tls_ca_create(in(d, "x.pem"), in(d, "x-key.pem"), "x", 0, err, sizeof(err)), -EINVAL);
	assert_false(exists(in(d, "x.pem")));
}

static void test_cert_node(void **state)
{
	struct dir *d = *state;
	const char *ips[] = {"10.0.0.1", "fd00::7"};
	const char *dns[] = {"n1.example", "n1"};
	struct tls_cert_request r = {.name = "n1",
	                             .role = TLS_ROLE_NODE,
	                             .ips = ips,
	                             .n_ips = 2,
	                             .dns = dns,
	                             .n_dns = 2,
	                             .valid_s = 30 * DAY};
	struct tls_cert_info ci;
	struct tls_ctx *ctx;
	char err[512];
	int64_t now = time(NULL);

	make_ca(d, "ca.pem", "ca-key.pem", "cluster");
	assert_int_equal(tls_cert_create(in(d, "ca.pem"), in(d, "ca-key.pem"), &r, in(d, "n1.pem"),
	                                 in(d, "n1-key.pem"), err, sizeof(err)),
	                 0);
	assert_int_equal(file_mode(in(d, "n1-key.pem")), 0600);
	assert_int_equal(file_mode(in(d, "n1.pem")), 0644);
	assert_int_equal(tls_cert_info_read(in(d, "n1.pem"), &ci, err, sizeof(err)), 0);
	assert_string_equal(ci.name, "n1");
	assert_string_equal(ci.issuer, "cluster");
	assert_int_equal(ci.role, TLS_ROLE_NODE);
	assert_false(ci.is_ca);
	assert_true(ci.eku_server);
	assert_true(ci.eku_client);
	assert_int_equal(ci.n_ips, 2);
	assert_string_equal(ci.ips[0], "10.0.0.1");
	assert_string_equal(ci.ips[1], "fd00::7");
	assert_int_equal(ci.n_dns, 2);
	assert_string_equal(ci.dns[0], "n1.example");
	assert_string_equal(ci.dns[1], "n1");
	assert_true(ci.not_before >= now - 5 && ci.not_before <= now + 5);
	assert_int_equal(ci.not_after - ci.not_before, 30 * DAY);

	/* and an agent accepts it, both ways */
	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "ca.pem"), in(d, "n1.pem"),
	                             in(d, "n1-key.pem"), err, sizeof(err)),
	                 0);
	assert_string_equal(tls_ctx_own_name(ctx), "n1");
	assert_int_equal(tls_ctx_own_role(ctx), TLS_ROLE_NODE);
	assert_true(tls_ctx_own_expiry_s(ctx) > 30 * DAY - 10);
	assert_true(tls_ctx_own_expiry_s(ctx) <= 30 * DAY);
	tls_ctx_free(ctx);
	assert_int_equal(tls_ctx_new(&ctx, false, in(d, "ca.pem"), in(d, "n1.pem"),
	                             in(d, "n1-key.pem"), err, sizeof(err)),
	                 0);
	tls_ctx_free(ctx);

	/* same name again: refused, files untouched */
	assert_int_equal(tls_cert_create(in(d, "ca.pem"), in(d, "ca-key.pem"), &r, in(d, "n1.pem"),
	                                 in(d, "n1-key.pem"), err, sizeof(err)),
	                 -EEXIST);
}

static void test_cert_people_are_clients_only(void **state)
{
	struct dir *d = *state;
	struct tls_cert_info ci;
	struct tls_ctx *ctx = NULL;
	char err[512];

	make_ca(d, "ca.pem", "ca-key.pem", "cluster");
	assert_int_equal(make_cert(d, "alice", TLS_ROLE_OPERATOR, 0, DAY, err, sizeof(err)), 0);
	assert_int_equal(make_cert(d, "bob", TLS_ROLE_VIEWER, 0, DAY, err, sizeof(err)), 0);

	assert_int_equal(tls_cert_info_read(in(d, "alice.pem"), &ci, err, sizeof(err)), 0);
	assert_int_equal(ci.role, TLS_ROLE_OPERATOR);
	assert_false(ci.eku_server);
	assert_true(ci.eku_client);
	assert_int_equal(tls_cert_info_read(in(d, "bob.pem"), &ci, err, sizeof(err)), 0);
	assert_int_equal(ci.role, TLS_ROLE_VIEWER);
	assert_false(ci.eku_server);
	assert_true(ci.eku_client);

	assert_int_equal(tls_ctx_new(&ctx, false, in(d, "ca.pem"), in(d, "bob.pem"),
	                             in(d, "bob-key.pem"), err, sizeof(err)),
	                 0);
	assert_int_equal(tls_ctx_own_role(ctx), TLS_ROLE_VIEWER);
	tls_ctx_free(ctx);
	/* a viewer cannot pose as an agent */
	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "ca.pem"), in(d, "bob.pem"),
	                             in(d, "bob-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_null(ctx);
	assert_non_null(strstr(err, "only node certificates may serve"));
}

static void test_cert_no_role_and_backdated(void **state)
{
	struct dir *d = *state;
	struct tls_cert_info ci;
	struct tls_ctx *ctx = NULL;
	char err[512];
	int64_t now = time(NULL);

	make_ca(d, "ca.pem", "ca-key.pem", "cluster");
	assert_int_equal(make_cert(d, "anon", TLS_ROLE_NONE, 0, DAY, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_info_read(in(d, "anon.pem"), &ci, err, sizeof(err)), 0);
	assert_int_equal(ci.role, TLS_ROLE_NONE);
	assert_int_equal(tls_ctx_new(&ctx, false, in(d, "ca.pem"), in(d, "anon.pem"),
	                             in(d, "anon-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(
	    strstr(err, "has no role: its subject OU must be node, operator or viewer"));
	assert_int_equal(tls_ctx_new_flags(&ctx, false, in(d, "ca.pem"), in(d, "anon.pem"),
	                                   in(d, "anon-key.pem"), TLS_CTX_TEST_ANY_ROLE, err,
	                                   sizeof(err)),
	                 0);
	tls_ctx_free(ctx);

	/* expired two days ago: made, loadable (time is the peer's business) */
	assert_int_equal(make_cert(d, "old", TLS_ROLE_OPERATOR, -3 * DAY, DAY, err, sizeof(err)),
	                 0);
	assert_int_equal(tls_cert_info_read(in(d, "old.pem"), &ci, err, sizeof(err)), 0);
	assert_true(ci.not_after <= now - 2 * DAY + 5);
	assert_int_equal(tls_ctx_new(&ctx, false, in(d, "ca.pem"), in(d, "old.pem"),
	                             in(d, "old-key.pem"), err, sizeof(err)),
	                 0);
	assert_true(tls_ctx_own_expiry_s(ctx) < -2 * DAY + 10);
	tls_ctx_free(ctx);
}

static void test_cert_bad_input(void **state)
{
	struct dir *d = *state;
	const char *bad_ip[] = {"10.0.0.300"};
	const char *bad_dns[] = {"no spaces"};
	struct tls_cert_request r = {.name = "n1", .role = TLS_ROLE_NODE, .valid_s = DAY};
	char err[512];

	make_ca(d, "ca.pem", "ca-key.pem", "cluster");
	make_ca(d, "other.pem", "other-key.pem", "other");

	assert_int_equal(make_cert(d, "a/b", TLS_ROLE_NODE, 0, DAY, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "invalid name 'a/b'"));
	assert_int_equal(make_cert(d, "", TLS_ROLE_NODE, 0, DAY, err, sizeof(err)), -EINVAL);
	assert_int_equal(make_cert(d, "n1", TLS_ROLE_NODE, 0, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "out of range"));

	r.ips = bad_ip;
	r.n_ips = 1;
	assert_int_equal(tls_cert_create(in(d, "ca.pem"), in(d, "ca-key.pem"), &r, in(d, "n1.pem"),
	                                 in(d, "n1-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "'10.0.0.300' is not an IP address");
	r.n_ips = 0;
	r.dns = bad_dns;
	r.n_dns = 1;
	assert_int_equal(tls_cert_create(in(d, "ca.pem"), in(d, "ca-key.pem"), &r, in(d, "n1.pem"),
	                                 in(d, "n1-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, "invalid DNS name 'no spaces'");
	r.n_dns = 0;

	/* CA key from another CA */
	assert_int_equal(tls_cert_create(in(d, "ca.pem"), in(d, "other-key.pem"), &r,
	                                 in(d, "n1.pem"), in(d, "n1-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "does not match CA certificate"));
	/* missing CA */
	assert_int_equal(tls_cert_create(in(d, "nope.pem"), in(d, "ca-key.pem"), &r,
	                                 in(d, "n1.pem"), in(d, "n1-key.pem"), err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "cannot open"));
	assert_false(exists(in(d, "n1.pem")));
	assert_false(exists(in(d, "n1-key.pem")));

	/* a leaf is not a CA */
	assert_int_equal(make_cert(d, "leaf", TLS_ROLE_NODE, 0, DAY, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_create(in(d, "leaf.pem"), in(d, "leaf-key.pem"), &r,
	                                 in(d, "n1.pem"), in(d, "n1-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "is not a CA certificate"));
}

static void test_ctx_validation(void **state)
{
	struct dir *d = *state;
	struct tls_cert_request r = {.name = "n1", .role = TLS_ROLE_NODE, .valid_s = DAY};
	struct tls_ctx *ctx = NULL;
	char err[512];

	make_ca(d, "ca.pem", "ca-key.pem", "cluster");
	make_ca(d, "other.pem", "other-key.pem", "other");
	assert_int_equal(make_cert(d, "n1", TLS_ROLE_NODE, 0, DAY, err, sizeof(err)), 0);
	assert_int_equal(make_cert(d, "n2", TLS_ROLE_NODE, 0, DAY, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_create(in(d, "other.pem"), in(d, "other-key.pem"), &r,
	                                 in(d, "f1.pem"), in(d, "f1-key.pem"), err, sizeof(err)),
	                 0);

	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "ca.pem"), in(d, "n1.pem"),
	                             in(d, "n2-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "does not match certificate"));
	assert_non_null(strstr(err, "n2-key.pem"));

	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "ca.pem"), in(d, "f1.pem"),
	                             in(d, "f1-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "is not signed by the CA in"));
	assert_non_null(strstr(err, "(unable to get local issuer certificate)"));

	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "missing.pem"), in(d, "n1.pem"),
	                             in(d, "n1-key.pem"), err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "cannot open CA file"));
	assert_non_null(strstr(err, "No such file or directory"));

	/* a node certificate given as the CA */
	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "n2.pem"), in(d, "n1.pem"),
	                             in(d, "n1-key.pem"), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "is not a CA certificate"));

	/* a key file that is not PEM at all */
	assert_int_equal(tls_ctx_new(&ctx, true, in(d, "ca.pem"), in(d, "n1.pem"), in(d, "ca.pem"),
	                             err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "cannot read a private key"));
	assert_null(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ca_create, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_ca_refuses_overwrite, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_cert_node, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_cert_people_are_clients_only, dir_setup,
	                                    dir_teardown),
	    cmocka_unit_test_setup_teardown(test_cert_no_role_and_backdated, dir_setup,
	                                    dir_teardown),
	    cmocka_unit_test_setup_teardown(test_cert_bad_input, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_ctx_validation, dir_setup, dir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
