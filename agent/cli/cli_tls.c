/*
 * cli_tls.c — `meshvisor tls`: make the cluster CA and its certificates.
 *
 * Why it exists
 *   Setting up a cluster starts with one CA and a certificate per node and
 *   per person. This command makes them exactly the way the agents expect
 *   (see agent/net/tls_cert.c for what goes into each certificate), so nobody
 *   has to get openssl's flags right by hand.
 *
 *     meshvisor tls ca create [--dir D | --cert F --key F] [--name N] [--days N]
 *     meshvisor tls cert create --role node|operator|viewer --name NAME
 *                               [--ip ADDR]... [--dns NAME]... [--days N]
 *                               [--ca-dir D | --ca-cert F --ca-key F]
 *                               [--out-dir D | --cert F --key F]
 *     meshvisor tls cert show FILE
 *     meshvisor tls crl create [--revoke CERT]... [--keep OLD_CRL] [--days N]
 *                              [--ca-dir D | --ca-cert F --ca-key F] [--out FILE]
 *
 * How it works
 *   Flags are parsed by hand from a small table per command (both "--flag
 *   value" and "--flag=value"), so every mistake gets its own sentence and
 *   exit code 2; a failure to create (file exists, CA missing) is exit 1.
 *   Files default to ca.pem / ca-key.pem and NAME.pem / NAME-key.pem in the
 *   current directory or the one given (created, mode 0700, if missing). Leaf certificates start 5 minutes in
 *   the past so that a host whose clock is slightly behind accepts them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "tls.h"

#define CLI_TLS_CA_DAYS 3650
#define CLI_TLS_CERT_DAYS 365
#define CLI_TLS_CRL_DAYS 365
#define CLI_TLS_DAYS_MAX 36500
/* notBefore this far back: tolerates clock skew between hosts. */
#define CLI_TLS_BACKDATE_S 300

static void cli_tls_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: meshvisor tls ca create [--dir D | --cert F --key F] [--name N] [--days N]\n"
	    "       meshvisor tls cert create --role node|operator|viewer --name NAME\n"
	    "                                 [--ip ADDR]... [--dns NAME]... [--days N]\n"
	    "                                 [--ca-dir D | --ca-cert F --ca-key F]\n"
	    "                                 [--out-dir D | --cert F --key F]\n"
	    "       meshvisor tls cert show FILE\n"
	    "       meshvisor tls crl create [--revoke CERT]... [--keep OLD_CRL] [--days N]\n"
	    "                                [--ca-dir D | --ca-cert F --ca-key F] [--out FILE]\n"
	    "\n"
	    "ca create    make the cluster CA: ca.pem and ca-key.pem in the current\n"
	    "             directory or --dir (default name 'meshvisor cluster CA',\n"
	    "             %d days). Keep ca-key.pem offline: it signs every certificate.\n"
	    "cert create  sign a certificate with the CA (ca.pem and ca-key.pem in the\n"
	    "             current directory or --ca-dir). Writes NAME.pem and NAME-key.pem\n"
	    "             to the current directory or --out-dir (default %d days).\n"
	    "               node      an agent: accepts and makes connections; give its\n"
	    "                         addresses with --ip and --dns\n"
	    "               operator  a person or tool that may change the cluster\n"
	    "               viewer    a person or tool that may only look\n"
	    "cert show    print what a certificate says (name, role, validity, names)\n"
	    "crl create   sign a revocation list that lists each --revoke certificate\n"
	    "             and every entry of --keep (the list in force), written to\n"
	    "             --out (default crl.pem; replaced atomically; %d days). Copy\n"
	    "             it to every host's tls.crl and reload (SIGHUP): the agents\n"
	    "             close the revoked certificates' connections and refuse them.\n"
	    "\n"
	    "Keys are EC P-256, written with mode 0600. Existing files are never\n"
	    "overwritten. Missing --dir/--out-dir directories are created (mode 0700).\n",
	    CLI_TLS_CA_DAYS, CLI_TLS_CERT_DAYS, CLI_TLS_CRL_DAYS);
}

/* ---- flag parsing --------------------------------------------------- */

struct cli_tls_flag {
	const char *name;  /* "--days" */
	bool repeat;       /* may be given more than once */
	const char *value; /* last value given */
	const char **all;  /* every value, for repeatable flags */
	size_t n;
};

/* Parses argv[first..] against flags. Returns -1 after --help (printed),
 * CLI_EXIT_USAGE on a mistake (printed), 0 otherwise. */
static int cli_tls_parse(const char *cmd, int argc, char **argv, int first,
                         struct cli_tls_flag *flags, size_t n_flags)
{
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		const char *eq, *val;
		struct cli_tls_flag *f = NULL;
		size_t len;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			cli_tls_usage(stdout);
			return -1;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(
			    stderr,
			    "meshvisor %s: unexpected argument '%s': see 'meshvisor tls --help'\n",
			    cmd, a);
			return CLI_EXIT_USAGE;
		}
		eq = strchr(a, '=');
		len = eq ? (size_t)(eq - a) : strlen(a);
		for (size_t k = 0; k < n_flags; k++)
			if (strlen(flags[k].name) == len && strncmp(flags[k].name, a, len) == 0)
				f = &flags[k];
		if (!f) {
			fprintf(stderr,
			        "meshvisor %s: unknown flag %.*s: see 'meshvisor tls --help'\n",
			        cmd, (int)len, a);
			return CLI_EXIT_USAGE;
		}
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(stderr, "meshvisor %s: %s needs a value\n", cmd, f->name);
			return CLI_EXIT_USAGE;
		}
		if (*val == '\0') {
			fprintf(stderr, "meshvisor %s: %s needs a value\n", cmd, f->name);
			return CLI_EXIT_USAGE;
		}
		if (f->value && !f->repeat) {
			fprintf(stderr, "meshvisor %s: %s given twice\n", cmd, f->name);
			return CLI_EXIT_USAGE;
		}
		f->value = val;
		if (f->repeat) {
			/* at most argc values: the array was sized for that */
			f->all[f->n++] = val;
		}
	}
	return 0;
}

static int cli_tls_days(const char *cmd, const char *s, int dflt, int *out)
{
	char *end;
	long v;

	if (!s) {
		*out = dflt;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < 1 || v > CLI_TLS_DAYS_MAX) {
		fprintf(
		    stderr,
		    "meshvisor %s: --days must be a whole number of days from 1 to %d, not '%s'\n",
		    cmd, CLI_TLS_DAYS_MAX, s);
		return CLI_EXIT_USAGE;
	}
	*out = (int)v;
	return 0;
}

/* mkdir -p, new directories 0700 (they are about to hold a private key). */
static int cli_tls_mkdirs(const char *cmd, const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return 0;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			fprintf(stderr, "meshvisor %s: cannot create directory '%s': %s\n", cmd,
			        path, strerror(errno));
			return CLI_EXIT_FAIL;
		}
		if (i < n)
			path[i] = '/';
	}
	return 0;
}

/* --dir D | --cert F --key F (or neither: the current directory). */
static int cli_tls_paths(const char *cmd, const char *dir_flag, const char *dir,
                         const char *cert_flag, const char *cert, const char *key_flag,
                         const char *key, const char *base, char *cert_out, char *key_out,
                         size_t len)
{
	if (dir && (cert || key)) {
		fprintf(stderr, "meshvisor %s: give either %s or %s and %s, not both\n", cmd,
		        dir_flag, cert_flag, key_flag);
		return CLI_EXIT_USAGE;
	}
	if (!cert != !key) {
		fprintf(stderr, "meshvisor %s: %s and %s go together\n", cmd, cert_flag, key_flag);
		return CLI_EXIT_USAGE;
	}
	if (cert) {
		snprintf(cert_out, len, "%s", cert);
		snprintf(key_out, len, "%s", key);
	} else {
		if (!dir)
			dir = ".";
		if ((size_t)snprintf(cert_out, len, "%s/%s.pem", dir, base) >= len ||
		    (size_t)snprintf(key_out, len, "%s/%s-key.pem", dir, base) >= len) {
			fprintf(stderr, "meshvisor %s: path in %s is too long\n", cmd, dir);
			return CLI_EXIT_USAGE;
		}
	}
	return 0;
}

/* ---- commands ------------------------------------------------------- */

enum { CA_DIR, CA_CERT, CA_KEY, CA_NAME, CA_DAYS, CA_NFLAGS };

static int cli_tls_ca_create(int argc, char **argv)
{
	const char *cmd = "tls ca create";
	struct cli_tls_flag f[CA_NFLAGS] = {
	    [CA_DIR] = {.name = "--dir"},   [CA_CERT] = {.name = "--cert"},
	    [CA_KEY] = {.name = "--key"},   [CA_NAME] = {.name = "--name"},
	    [CA_DAYS] = {.name = "--days"},
	};
	char cert[4096], key[4096], err[512];
	int rc, days;

	rc = cli_tls_parse(cmd, argc, argv, 3, f, CA_NFLAGS);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if ((rc = cli_tls_days(cmd, f[CA_DAYS].value, CLI_TLS_CA_DAYS, &days)) != 0)
		return rc;
	rc = cli_tls_paths(cmd, "--dir", f[CA_DIR].value, "--cert", f[CA_CERT].value, "--key",
	                   f[CA_KEY].value, "ca", cert, key, sizeof(cert));
	if (rc)
		return rc;
	if (f[CA_DIR].value && (rc = cli_tls_mkdirs(cmd, f[CA_DIR].value)) != 0)
		return rc;
	rc = tls_ca_create(cert, key, f[CA_NAME].value, days, err, sizeof(err));
	if (rc == -EINVAL) {
		fprintf(stderr, "meshvisor %s: %s\n", cmd, err);
		return CLI_EXIT_USAGE;
	}
	if (rc) {
		fprintf(stderr, "meshvisor %s: %s\n", cmd, err);
		return CLI_EXIT_FAIL;
	}
	printf("created CA '%s', valid %d days\n"
	       "  certificate: %s  (give it to every node and user)\n"
	       "  key:         %s  (mode 0600; keep it offline: it signs every certificate)\n",
	       f[CA_NAME].value ? f[CA_NAME].value : "meshvisor cluster CA", days, cert, key);
	return CLI_EXIT_OK;
}

enum {
	CE_ROLE,
	CE_NAME,
	CE_IP,
	CE_DNS,
	CE_DAYS,
	CE_CA_DIR,
	CE_CA_CERT,
	CE_CA_KEY,
	CE_OUT_DIR,
	CE_CERT,
	CE_KEY,
	CE_NFLAGS
};

static int cli_tls_cert_create(int argc, char **argv)
{
	const char *cmd = "tls cert create";
	const char **ips = calloc((size_t)argc + 1, sizeof(*ips));
	const char **dns = calloc((size_t)argc + 1, sizeof(*dns));
	struct cli_tls_flag f[CE_NFLAGS] = {
	    [CE_ROLE] = {.name = "--role"},
	    [CE_NAME] = {.name = "--name"},
	    [CE_IP] = {.name = "--ip", .repeat = true, .all = ips},
	    [CE_DNS] = {.name = "--dns", .repeat = true, .all = dns},
	    [CE_DAYS] = {.name = "--days"},
	    [CE_CA_DIR] = {.name = "--ca-dir"},
	    [CE_CA_CERT] = {.name = "--ca-cert"},
	    [CE_CA_KEY] = {.name = "--ca-key"},
	    [CE_OUT_DIR] = {.name = "--out-dir"},
	    [CE_CERT] = {.name = "--cert"},
	    [CE_KEY] = {.name = "--key"},
	};
	struct tls_cert_request req;
	struct tls_cert_info ca_info;
	char ca_cert[4096], ca_key[4096], cert[4096], key[4096], err[512];
	enum tls_role role;
	int rc, days;

	if (!ips || !dns) {
		fprintf(stderr, "meshvisor %s: out of memory\n", cmd);
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	rc = cli_tls_parse(cmd, argc, argv, 3, f, CE_NFLAGS);
	if (rc) {
		rc = rc < 0 ? CLI_EXIT_OK : rc;
		goto out;
	}
	rc = CLI_EXIT_USAGE;
	if (!f[CE_ROLE].value) {
		fprintf(stderr, "meshvisor %s: --role is required: node, operator or viewer\n",
		        cmd);
		goto out;
	}
	role = tls_role_parse(f[CE_ROLE].value);
	if (role == TLS_ROLE_NONE) {
		fprintf(stderr,
		        "meshvisor %s: unknown role '%s': expected node, operator or viewer\n", cmd,
		        f[CE_ROLE].value);
		goto out;
	}
	if (!f[CE_NAME].value) {
		fprintf(
		    stderr,
		    "meshvisor %s: --name is required (the node or user name, e.g. --name n1)\n",
		    cmd);
		goto out;
	}
	if (cli_tls_days(cmd, f[CE_DAYS].value, CLI_TLS_CERT_DAYS, &days) != 0)
		goto out;
	if (cli_tls_paths(cmd, "--ca-dir", f[CE_CA_DIR].value, "--ca-cert", f[CE_CA_CERT].value,
	                  "--ca-key", f[CE_CA_KEY].value, "ca", ca_cert, ca_key, sizeof(ca_cert)) ||
	    cli_tls_paths(cmd, "--out-dir", f[CE_OUT_DIR].value, "--cert", f[CE_CERT].value,
	                  "--key", f[CE_KEY].value, f[CE_NAME].value, cert, key, sizeof(cert)))
		goto out;
	if (f[CE_OUT_DIR].value && cli_tls_mkdirs(cmd, f[CE_OUT_DIR].value) != 0) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}

	memset(&req, 0, sizeof(req));
	req.name = f[CE_NAME].value;
	req.role = role;
	req.ips = ips;
	req.n_ips = f[CE_IP].n;
	req.dns = dns;
	req.n_dns = f[CE_DNS].n;
	req.not_before_offset_s = -CLI_TLS_BACKDATE_S;
	req.valid_s = (int64_t)days * 86400 + CLI_TLS_BACKDATE_S;
	rc = tls_cert_create(ca_cert, ca_key, &req, cert, key, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "meshvisor %s: %s\n", cmd, err);
		/* bad name, address or DNS name: the user's words; the rest: the files */
		rc = (rc == -EINVAL &&
		      (strncmp(err, "invalid", 7) == 0 || strstr(err, "is not an IP")))
		         ? CLI_EXIT_USAGE
		         : CLI_EXIT_FAIL;
		goto out;
	}
	if (tls_cert_info_read(ca_cert, &ca_info, err, sizeof(err)) != 0)
		ca_info.name[0] = '\0';
	printf("created %s certificate '%s', signed by '%s', valid %d days\n"
	       "  certificate: %s\n"
	       "  key:         %s  (mode 0600)\n",
	       tls_role_name(role), req.name, ca_info.name[0] ? ca_info.name : ca_cert, days, cert,
	       key);
	rc = CLI_EXIT_OK;
out:
	free(ips);
	free(dns);
	return rc;
}

enum { CR_REVOKE, CR_KEEP, CR_DAYS, CR_CA_DIR, CR_CA_CERT, CR_CA_KEY, CR_OUT, CR_NFLAGS };

static int cli_tls_crl_create(int argc, char **argv)
{
	const char *cmd = "tls crl create";
	const char **revoke = calloc((size_t)argc + 1, sizeof(*revoke));
	struct cli_tls_flag f[CR_NFLAGS] = {
	    [CR_REVOKE] = {.name = "--revoke", .repeat = true, .all = revoke},
	    [CR_KEEP] = {.name = "--keep"},
	    [CR_DAYS] = {.name = "--days"},
	    [CR_CA_DIR] = {.name = "--ca-dir"},
	    [CR_CA_CERT] = {.name = "--ca-cert"},
	    [CR_CA_KEY] = {.name = "--ca-key"},
	    [CR_OUT] = {.name = "--out"},
	};
	char ca_cert[4096], ca_key[4096], err[512];
	const char *out;
	int rc, days;

	if (!revoke) {
		fprintf(stderr, "meshvisor %s: out of memory\n", cmd);
		return CLI_EXIT_FAIL;
	}
	rc = cli_tls_parse(cmd, argc, argv, 3, f, CR_NFLAGS);
	if (rc) {
		rc = rc < 0 ? CLI_EXIT_OK : rc;
		goto out;
	}
	if ((rc = cli_tls_days(cmd, f[CR_DAYS].value, CLI_TLS_CRL_DAYS, &days)) != 0 ||
	    (rc = cli_tls_paths(cmd, "--ca-dir", f[CR_CA_DIR].value, "--ca-cert",
	                        f[CR_CA_CERT].value, "--ca-key", f[CR_CA_KEY].value, "ca", ca_cert,
	                        ca_key, sizeof(ca_cert))) != 0)
		goto out;
	out = f[CR_OUT].value ? f[CR_OUT].value : "crl.pem";
	rc = tls_crl_create(ca_cert, ca_key, revoke, f[CR_REVOKE].n, f[CR_KEEP].value, days, out,
	                    err, sizeof(err));
	if (rc) {
		fprintf(stderr, "meshvisor %s: %s\n", cmd, err);
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	printf("wrote CRL %s: %zu certificate%s revoked here%s, valid %d days\n"
	       "  copy it to every host (tls.crl) and reload the agents (SIGHUP)\n",
	       out, f[CR_REVOKE].n, f[CR_REVOKE].n == 1 ? "" : "s",
	       f[CR_KEEP].value ? " plus those of --keep" : "", days);
	rc = CLI_EXIT_OK;
out:
	free(revoke);
	return rc;
}

static void cli_tls_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

static int cli_tls_cert_show(int argc, char **argv)
{
	struct tls_cert_info ci;
	char err[512], nb[32], na[32];
	int64_t now = time(NULL);

	if (argc == 4 && (strcmp(argv[3], "--help") == 0 || strcmp(argv[3], "-h") == 0)) {
		cli_tls_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc != 4) {
		fprintf(stderr, "meshvisor tls cert show: give one certificate file\n");
		return CLI_EXIT_USAGE;
	}
	if (tls_cert_info_read(argv[3], &ci, err, sizeof(err)) != 0) {
		fprintf(stderr, "meshvisor tls cert show: %s\n", err);
		return CLI_EXIT_FAIL;
	}
	cli_tls_time(ci.not_before, nb, sizeof(nb));
	cli_tls_time(ci.not_after, na, sizeof(na));
	printf("name:     %s\n", ci.name);
	printf("role:     %s\n", ci.is_ca ? "certificate authority" : tls_role_name(ci.role));
	printf("issuer:   %s\n", ci.issuer);
	printf("valid:    %s to %s (%s)\n", nb, na,
	       now < ci.not_before  ? "NOT YET VALID"
	       : now > ci.not_after ? "EXPIRED"
	                            : "valid now");
	if (!ci.is_ca)
		printf("usage:    %s%s%s\n", ci.eku_server ? "server" : "",
		       ci.eku_server && ci.eku_client ? ", " : "", ci.eku_client ? "client" : "");
	for (size_t i = 0; i < ci.n_ips; i++)
		printf("ip:       %s\n", ci.ips[i]);
	for (size_t i = 0; i < ci.n_dns; i++)
		printf("dns:      %s\n", ci.dns[i]);
	return CLI_EXIT_OK;
}

int cli_tls_main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : NULL;
	const char *verb = argc > 2 ? argv[2] : NULL;

	if (!what) {
		cli_tls_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0 || strcmp(what, "help") == 0) {
		cli_tls_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(what, "ca") != 0 && strcmp(what, "cert") != 0 && strcmp(what, "crl") != 0) {
		fprintf(stderr,
		        "meshvisor tls: unknown command '%s': expected 'ca', 'cert' or 'crl'\n",
		        what);
		return CLI_EXIT_USAGE;
	}
	if (verb && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)) {
		cli_tls_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(what, "ca") == 0 || strcmp(what, "crl") == 0) {
		if (verb && strcmp(verb, "create") == 0)
			return what[1] == 'a' ? cli_tls_ca_create(argc, argv)
			                      : cli_tls_crl_create(argc, argv);
		fprintf(stderr, "meshvisor tls %s: %s%s%s: expected 'create'\n", what,
		        verb ? "unknown command '" : "missing command", verb ? verb : "",
		        verb ? "'" : "");
		return CLI_EXIT_USAGE;
	}
	if (verb && strcmp(verb, "create") == 0)
		return cli_tls_cert_create(argc, argv);
	if (verb && strcmp(verb, "show") == 0)
		return cli_tls_cert_show(argc, argv);
	fprintf(stderr, "meshvisor tls cert: %s%s%s: expected 'create' or 'show'\n",
	        verb ? "unknown command '" : "missing command", verb ? verb : "", verb ? "'" : "");
	return CLI_EXIT_USAGE;
}
