/*
 * test_config.c — agent settings: defaults, the JSON file, flags, and the
 * error each mistake gets. Every error test checks that the message names
 * the key or flag, because that is what an operator greps their config for.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------------ */

struct fixture {
	char path[64]; /* temp config file */
	struct agent_options o;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/test_config.XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	agent_options_init(&f->o);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unlink(f->path);
	agent_options_free(&f->o);
	free(f);
	return 0;
}

static void write_file(struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static int load(struct fixture *f, const char *text)
{
	write_file(f, text);
	f->err[0] = '\0';
	return agent_options_load_file(&f->o, f->path, f->err, sizeof(f->err));
}

/* Parses a NULL-terminated list of arguments after "agent". */
static int parse(struct fixture *f, ...)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = "agent";
	va_list ap;
	va_start(ap, f);
	char *a;
	while ((a = va_arg(ap, char *)) != NULL)
		argv[argc++] = a;
	va_end(ap);
	f->err[0] = '\0';
	return agent_options_parse_args(&f->o, argc, argv, f->err, sizeof(f->err));
}

#define assert_err_has(f, needle)                                                  \
	do {                                                                       \
		if (strstr((f)->err, (needle)) == NULL)                            \
			fail_msg("error \"%s\" lacks \"%s\"", (f)->err, (needle)); \
	} while (0)

/* Each {"SECTION": {bad[k][0]}} is refused with an error holding bad[k][1]. */
static void load_refused(struct fixture *f, const char *section, const char *const (*bad)[2],
                         size_t n)
{
	for (size_t k = 0; k < n; k++) {
		char text[160];
		snprintf(text, sizeof(text), "{\"%s\": {%s}}", section, bad[k][0]);
		assert_int_equal(load(f, text), -EINVAL);
		assert_err_has(f, bad[k][1]);
	}
}

/* A config that validates, for tests that break one thing. */
static void make_valid(struct fixture *f)
{
	assert_int_equal(parse(f, "--name", "n1", "--ca", "ca.pem", "--cert", "n1.pem", "--key",
	                       "n1-key.pem", NULL),
	                 0);
}

/* ---- defaults ----------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_null(o->config_file);
	assert_null(o->name);
	assert_string_equal(o->bind, "127.0.0.1");
	assert_null(o->advertise);
	assert_null(o->rpc_bind);
	assert_int_equal(o->peer_port, 7946);
	assert_int_equal(o->rpc_port, 7947);
	assert_int_equal(o->n_seeds, 0);
	assert_null(o->ca_file);
	assert_string_equal(o->data_dir, "/var/lib/meshvisor");
	assert_int_equal(o->log_level, MV_LOG_INFO);
	assert_string_equal(o->libvirt_uri, "test:///default");
	assert_false(o->witness);
	assert_int_equal(o->max_peer_connections, 64);
	assert_int_equal(o->peer_idle_timeout_ms, 60000);
	assert_int_equal(o->leave_timeout_ms, 3000);

	struct swim_config d;
	swim_config_default(&d);
	assert_memory_equal(&o->swim, &d, sizeof(d));
	/* the ranges config.c enforces must admit the shipped defaults */
	assert_int_equal(parse(f, NULL), 0);
	make_valid(f);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
}

/* ---- the file ----------------------------------------------------------- */

static const char full_config[] =
    "{\n"
    "  \"name\": \"host-a\",\n"
    "  \"bind\": \"0.0.0.0\",\n"
    "  \"advertise\": \"10.0.0.5\",\n"
    "  \"peer_port\": 8946,\n"
    "  \"rpc_bind\": \"127.0.0.1\",\n"
    "  \"rpc_port\": 8947,\n"
    "  \"join\": [\"10.0.0.6:7946\", \"[fd00::7]:7946\"],\n"
    "  \"tls\": {\"ca\": \"/etc/mv/ca.pem\", \"cert\": \"/etc/mv/a.pem\", \"key\": "
    "\"/etc/mv/a-key.pem\"},\n"
    "  \"data_dir\": \"/srv/mv\",\n"
    "  \"log_level\": \"debug\",\n"
    "  \"libvirt_uri\": \"qemu:///system\",\n"
    "  \"witness\": true,\n"
    "  \"max_peer_connections\": 16,\n"
    "  \"peer_idle_timeout_ms\": 5000,\n"
    "  \"leave_timeout_ms\": 1000,\n"
    "  \"swim\": { \"probe_interval_ms\": 1500, \"probe_timeout_ms\": 400,\n"
    "            \"indirect_probes\": 2, \"retransmit_mult\": 5,\n"
    "            \"suspicion_min_mult\": 3, \"suspicion_max_mult\": 7,\n"
    "            \"awareness_max\": 9, \"push_pull_interval_ms\": 20000,\n"
    "            \"gossip_interval_ms\": 300, \"gossip_fanout\": 4,\n"
    "            \"join_retry_ms\": 2000, \"reap_ms\": 3600000,\n"
    "            \"max_updates_per_msg\": 20 }\n"
    "}\n";

static void test_file_full(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_int_equal(load(f, full_config), 0);
	assert_string_equal(o->name, "host-a");
	assert_string_equal(o->bind, "0.0.0.0");
	assert_string_equal(o->advertise, "10.0.0.5");
	assert_int_equal(o->peer_port, 8946);
	assert_string_equal(o->rpc_bind, "127.0.0.1");
	assert_int_equal(o->rpc_port, 8947);
	assert_int_equal(o->n_seeds, 2);
	assert_string_equal(o->seeds[0], "10.0.0.6:7946");
	assert_string_equal(o->seeds[1], "[fd00::7]:7946");
	assert_string_equal(o->ca_file, "/etc/mv/ca.pem");
	assert_string_equal(o->cert_file, "/etc/mv/a.pem");
	assert_string_equal(o->key_file, "/etc/mv/a-key.pem");
	assert_string_equal(o->data_dir, "/srv/mv");
	assert_int_equal(o->log_level, MV_LOG_DEBUG);
	assert_string_equal(o->libvirt_uri, "qemu:///system");
	assert_true(o->witness);
	assert_int_equal(o->max_peer_connections, 16);
	assert_int_equal(o->peer_idle_timeout_ms, 5000);
	assert_int_equal(o->leave_timeout_ms, 1000);
	assert_int_equal(o->swim.probe_interval_ms, 1500);
	assert_int_equal(o->swim.probe_timeout_ms, 400);
	assert_int_equal(o->swim.indirect_probes, 2);
	assert_int_equal(o->swim.retransmit_mult, 5);
	assert_int_equal(o->swim.suspicion_min_mult, 3);
	assert_int_equal(o->swim.suspicion_max_mult, 7);
	assert_int_equal(o->swim.awareness_max, 9);
	assert_int_equal(o->swim.push_pull_interval_ms, 20000);
	assert_int_equal(o->swim.gossip_interval_ms, 300);
	assert_int_equal(o->swim.gossip_fanout, 4);
	assert_int_equal(o->swim.join_retry_ms, 2000);
	assert_int_equal(o->swim.reap_ms, 3600000);
	assert_int_equal(o->swim.max_updates_per_msg, 20);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
}

static void test_file_partial_keeps_defaults(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "{\"name\": \"n2\", \"swim\": {\"gossip_fanout\": 5}}"), 0);
	assert_string_equal(f->o.name, "n2");
	assert_int_equal(f->o.swim.gossip_fanout, 5);
	struct swim_config d;
	swim_config_default(&d);
	assert_int_equal(f->o.swim.probe_interval_ms, d.probe_interval_ms);
	assert_int_equal(f->o.peer_port, 7946);
	assert_string_equal(f->o.bind, "127.0.0.1");
	/* an empty object changes nothing */
	assert_int_equal(load(f, "{}"), 0);
	assert_string_equal(f->o.name, "n2");
}

static void test_file_unknown_key(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "{\"name\": \"n1\", \"prot\": 1}"), -EINVAL);
	assert_err_has(f, f->path);
	assert_err_has(f, "prot: unknown key");

	/* nested: the full path is named, with the likely intended key */
	assert_int_equal(load(f, "{\"swim\": {\"probe_intrval_ms\": 900}}"), -EINVAL);
	assert_err_has(f, "swim.probe_intrval_ms: unknown key");
	assert_err_has(f, "did you mean swim.probe_interval_ms?");

	assert_int_equal(load(f, "{\"tls\": {\"ca\": \"a\", \"crt\": \"b\"}}"), -EINVAL);
	assert_err_has(f, "tls.crt: unknown key");
	assert_err_has(f, "did you mean tls.cert?");

	/* a section key at the top level */
	assert_int_equal(load(f, "{\"probe_interval_ms\": 900}"), -EINVAL);
	assert_err_has(f, "probe_interval_ms: unknown key");
	assert_err_has(f, "swim.probe_interval_ms");

	/* a dotted key is not a path */
	assert_int_equal(load(f, "{\"swim.gossip_fanout\": 2}"), -EINVAL);
	assert_err_has(f, "swim.gossip_fanout: unknown key");

	/* nothing was applied by the failed loads */
	assert_null(f->o.name);
	assert_null(f->o.ca_file);
}

static void test_file_bad_values(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *json;
		const char *needle[2];
	} cases[] = {
	    {"{\"swim\": {\"probe_interval_ms\": \"fast\"}}",
	     {"swim.probe_interval_ms: expected an integer from 50 to 60000, got \"fast\"", NULL}},
	    {"{\"swim\": {\"probe_interval_ms\": 10}}",
	     {"swim.probe_interval_ms: expected an integer from 50 to 60000, got 10", NULL}},
	    {"{\"swim\": {\"probe_interval_ms\": 1000.5}}",
	     {"swim.probe_interval_ms: expected an integer", "got 1000.5"}},
	    {"{\"swim\": {\"gossip_fanout\": -1}}",
	     {"swim.gossip_fanout: expected an integer from 1 to 64, got -1", NULL}},
	    {"{\"swim\": {\"reap_ms\": 99999999999999999999}}", {"swim.reap_ms: expected", NULL}},
	    {"{\"peer_port\": \"7946\"}",
	     {"peer_port: expected a port number from 1 to 65535, got \"7946\"", NULL}},
	    {"{\"rpc_port\": 0}",
	     {"rpc_port: expected a port number from 1 to 65535, got 0", NULL}},
	    {"{\"rpc_port\": 65536}", {"rpc_port: expected a port number", "got 65536"}},
	    {"{\"name\": 5}", {"name: expected a string, got 5", NULL}},
	    {"{\"name\": \"bad name\"}",
	     {"name: expected 1 to 63 characters of A-Z a-z 0-9 . _ -, got \"bad name\"", NULL}},
	    {"{\"name\": \"\"}", {"name: expected 1 to 63 characters", NULL}},
	    {"{\"name\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	     {"name: expected 1 to 63", NULL}},
	    {"{\"bind\": \"bad_name!\"}",
	     {"bind: expected an IPv4 or IPv6 address literal or a host name",
	      "got \"bad_name!\""}},
	    {"{\"bind\": \"-bad.example\"}", {"bind: expected", "got \"-bad.example\""}},
	    {"{\"bind\": \"10.0.0.300\"}", {"bind: expected", "got \"10.0.0.300\""}},
	    {"{\"bind\": \"\"}", {"bind: expected", NULL}},
	    {"{\"advertise\": \"hv_a02.example\"}", {"advertise: expected", "hv_a02"}},
	    {"{\"rpc_bind\": \"[fd00::1]\"}", {"rpc_bind: expected", NULL}},
	    {"{\"advertise\": \"10.0.0.1:7946\"}", {"advertise: expected an IPv4 or IPv6", NULL}},
	    {"{\"rpc_bind\": \"[::1]\"}", {"rpc_bind: expected an IPv4 or IPv6", NULL}},
	    {"{\"join\": \"10.0.0.1:7946\"}", {"join: expected an array", NULL}},
	    {"{\"join\": [\"10.0.0.1\"]}",
	     {"join[0]: expected IPv4:PORT, [IPv6]:PORT or HOSTNAME:PORT", NULL}},
	    {"{\"join\": [\"10.0.0.1:1\", \"bad_host:7946\"]}",
	     {"join[1]: expected", "\"bad_host:7946\""}},
	    {"{\"join\": [\"hv-a02.example:0\"]}", {"join[0]: expected", "hv-a02.example:0"}},
	    {"{\"join\": [\"-bad.example:7946\"]}", {"join[0]: expected"}},
	    {"{\"join\": [\"10.0.0.300:7946\"]}", {"join[0]: expected"}},
	    {"{\"join\": [\"::1:7946\"]}", {"join[0]: expected", NULL}},
	    {"{\"join\": [\"10.0.0.1:0\"]}", {"join[0]: expected", "port 1 to 65535"}},
	    {"{\"join\": [7946]}", {"join[0]: expected a \"HOST:PORT\" string, got 7946", NULL}},
	    {"{\"tls\": \"/etc/ca.pem\"}", {"tls: expected an object", NULL}},
	    {"{\"tls\": {\"ca\": \"\"}}", {"tls.ca: expected a non-empty string", NULL}},
	    {"{\"tls\": {\"cert\": null}}", {"tls.cert: expected a string, got null", NULL}},
	    {"{\"swim\": []}", {"swim: expected an object", NULL}},
	    {"{\"log_level\": \"loud\"}",
	     {"log_level: expected debug, info, warn or error, got \"loud\"", NULL}},
	    {"{\"witness\": \"yes\"}", {"witness: expected true or false, got \"yes\"", NULL}},
	    {"{\"data_dir\": \"a\\u0000b\"}", {"data_dir: the string contains a NUL", NULL}},
	    {"{\"libvirt_uri\": \"\\u001b[31m\"}", {"libvirt_uri", NULL}},
	    {"{\"name\": \"\\u001b[31m\"}", {"got \"\\x1b[31m\"", NULL}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = load(f, cases[i].json);
		if (strstr(cases[i].json, "libvirt_uri")) {
			/* any non-empty URI is accepted here; libvirt judges it */
			assert_int_equal(rc, 0);
			continue;
		}
		if (rc != -EINVAL)
			fail_msg("case %zu %s: rc %d", i, cases[i].json, rc);
		assert_err_has(f, "config ");
		for (int k = 0; k < 2; k++)
			if (cases[i].needle[k])
				assert_err_has(f, cases[i].needle[k]);
	}
}

static void test_file_syntax(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "{\n  \"name\": \"n1\",\n  \"bind\" \"x\"\n}\n"), -EINVAL);
	assert_err_has(f, ":3:");
	assert_err_has(f, "invalid JSON");

	assert_int_equal(load(f, "{\"name\": \"n1\",}"), -EINVAL); /* trailing comma */
	assert_err_has(f, "invalid JSON");
	assert_int_equal(load(f, "// comment\n{}"), -EINVAL);
	assert_err_has(f, "invalid JSON");
	assert_int_equal(load(f, "{\"name\": \"n1\""), -EINVAL);
	assert_err_has(f, "unexpected end of file");
	assert_int_equal(load(f, ""), -EINVAL);
	assert_err_has(f, "invalid JSON");
	assert_int_equal(load(f, "{} {}"), -EINVAL);
	assert_err_has(f, "invalid JSON");
	assert_int_equal(load(f, "[1, 2]"), -EINVAL);
	assert_err_has(f, "expected a JSON object at the top, got an array");
	assert_int_equal(load(f, "{\"name\": \"\xff\"}"), -EINVAL); /* not UTF-8 */
	assert_err_has(f, "invalid JSON");
	/* trailing whitespace is fine */
	assert_int_equal(load(f, "{\"name\": \"n1\"}\n\n  \n"), 0);

	assert_int_equal(
	    agent_options_load_file(&f->o, "/nonexistent/mv.json", f->err, sizeof(f->err)),
	    -ENOENT);
	assert_err_has(f, "config /nonexistent/mv.json: cannot open: No such file or directory");
}

static void test_file_nul_and_size(void **state)
{
	struct fixture *f = *state;
	FILE *fp = fopen(f->path, "w");
	fwrite("{}\0", 1, 3, fp);
	fclose(fp);
	assert_int_equal(agent_options_load_file(&f->o, f->path, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "NUL byte");

	fp = fopen(f->path, "w");
	for (int i = 0; i < 1100 * 1024; i++)
		fputc(' ', fp);
	fclose(fp);
	assert_int_equal(agent_options_load_file(&f->o, f->path, f->err, sizeof(f->err)), -EFBIG);
	assert_err_has(f, "larger than");
}

static void test_file_is_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "{\"name\": \"n1\", \"join\": [\"10.0.0.1:7946\"]}"), 0);
	/* the good keys before the bad one must not stick */
	assert_int_equal(
	    load(f, "{\"name\": \"n9\", \"join\": [\"10.0.0.2:7946\"], \"peer_port\": 0}"),
	    -EINVAL);
	assert_string_equal(f->o.name, "n1");
	assert_int_equal(f->o.n_seeds, 1);
	assert_string_equal(f->o.seeds[0], "10.0.0.1:7946");
	assert_int_equal(f->o.peer_port, 7946);
}

static void test_file_join_limits(void **state)
{
	struct fixture *f = *state;
	char json[4096] = "{\"join\": [";
	for (int i = 0; i <= AGENT_MAX_SEEDS; i++) {
		char s[40];
		snprintf(s, sizeof(s), "%s\"10.0.0.%d:7946\"", i ? "," : "", i + 1);
		strcat(json, s);
	}
	strcat(json, "]}");
	assert_int_equal(load(f, json), -EINVAL);
	assert_err_has(f, "at most 32 seed addresses");
	/* duplicates are folded */
	assert_int_equal(load(f, "{\"join\": [\"10.0.0.1:7946\", \"10.0.0.1:7946\"]}"), 0);
	assert_int_equal(f->o.n_seeds, 1);
	/* an empty list clears */
	assert_int_equal(load(f, "{\"join\": []}"), 0);
	assert_int_equal(f->o.n_seeds, 0);
}

/* ---- flags -------------------------------------------------------------- */

static void test_flags_all(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	int rc = parse(
	    f, "--name", "n3", "--bind=::", "--advertise", "fd00::3", "--peer-port", "9000",
	    "--rpc-bind", "::1", "--rpc-port=9001", "--ca", "c", "--cert", "n3.pem", "--key", "k",
	    "--data-dir", "/d", "--log-level", "WARN", "--libvirt-uri", "test:///x.xml",
	    "--witness", "--max-peer-connections", "7", "--peer-idle-timeout-ms", "2000",
	    "--leave-timeout-ms", "0", "--probe-interval-ms", "700", "--probe-timeout-ms", "300",
	    "--indirect-probes", "0", "--retransmit-mult", "2", "--suspicion-min-mult", "5",
	    "--suspicion-max-mult", "1", "--awareness-max", "3", "--push-pull-interval-ms", "5000",
	    "--gossip-interval-ms", "100", "--gossip-fanout", "2", "--join-retry-ms", "250",
	    "--reap-ms", "60000", "--max-updates-per-msg", "8", NULL);
	assert_int_equal(rc, 0);
	assert_string_equal(o->name, "n3");
	assert_string_equal(o->bind, "::");
	assert_string_equal(o->advertise, "fd00::3");
	assert_int_equal(o->peer_port, 9000);
	assert_string_equal(o->rpc_bind, "::1");
	assert_int_equal(o->rpc_port, 9001);
	assert_string_equal(o->cert_file, "n3.pem");
	assert_string_equal(o->data_dir, "/d");
	assert_int_equal(o->log_level, MV_LOG_WARN);
	assert_string_equal(o->libvirt_uri, "test:///x.xml");
	assert_true(o->witness);
	assert_int_equal(o->max_peer_connections, 7);
	assert_int_equal(o->peer_idle_timeout_ms, 2000);
	assert_int_equal(o->leave_timeout_ms, 0);
	assert_int_equal(o->swim.probe_interval_ms, 700);
	assert_int_equal(o->swim.probe_timeout_ms, 300);
	assert_int_equal(o->swim.indirect_probes, 0);
	assert_int_equal(o->swim.retransmit_mult, 2);
	assert_int_equal(o->swim.suspicion_min_mult, 5);
	assert_int_equal(o->swim.suspicion_max_mult, 1);
	assert_int_equal(o->swim.awareness_max, 3);
	assert_int_equal(o->swim.push_pull_interval_ms, 5000);
	assert_int_equal(o->swim.gossip_interval_ms, 100);
	assert_int_equal(o->swim.gossip_fanout, 2);
	assert_int_equal(o->swim.join_retry_ms, 250);
	assert_int_equal(o->swim.reap_ms, 60000);
	assert_int_equal(o->swim.max_updates_per_msg, 8);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);

	assert_int_equal(parse(f, "--witness=false", NULL), 0);
	assert_false(o->witness);
	assert_int_equal(parse(f, "--witness", "true", NULL), 0);
	assert_true(o->witness);
}

static void test_flags_override_file(void **state)
{
	struct fixture *f = *state;
	write_file(f, "{\"name\": \"file\", \"peer_port\": 8000, \"join\": [\"10.0.0.9:7946\"],"
	              " \"swim\": {\"probe_interval_ms\": 1500}}");
	/* flag before --config */
	assert_int_equal(
	    parse(f, "--probe-interval-ms", "2000", "--name=flag", "--config", f->path, NULL), 0);
	assert_string_equal(f->o.name, "flag");
	assert_int_equal(f->o.swim.probe_interval_ms, 2000);
	assert_int_equal(f->o.peer_port, 8000); /* from the file */
	assert_string_equal(f->o.config_file, f->path);
	assert_int_equal(f->o.n_seeds, 1);

	/* flag after --config=FILE */
	agent_options_free(&f->o);
	agent_options_init(&f->o);
	char cfg[96];
	snprintf(cfg, sizeof(cfg), "--config=%s", f->path);
	assert_int_equal(parse(f, cfg, "--peer-port", "8100", NULL), 0);
	assert_int_equal(f->o.peer_port, 8100);
	assert_string_equal(f->o.name, "file");
	assert_int_equal(f->o.swim.probe_interval_ms, 1500);

	/* --join replaces the file's seeds; repeated and comma-separated add up */
	assert_int_equal(parse(f, "--join", "10.0.0.1:7946,10.0.0.2:7946", "--config", f->path,
	                       "--join=[fd00::1]:7946", NULL),
	                 0);
	assert_int_equal(f->o.n_seeds, 3);
	assert_string_equal(f->o.seeds[0], "10.0.0.1:7946");
	assert_string_equal(f->o.seeds[1], "10.0.0.2:7946");
	assert_string_equal(f->o.seeds[2], "[fd00::1]:7946");
	/* host names are seeds too (resolved off the loop at join: seeds.h) */
	assert_int_equal(parse(f, "--join", "hv-a02.example.com:7946,localhost:7946", NULL), 0);
	assert_int_equal(f->o.n_seeds, 2);
	assert_string_equal(f->o.seeds[0], "hv-a02.example.com:7946");

	/* last of a repeated flag wins */
	assert_int_equal(parse(f, "--name", "a", "--name", "b", NULL), 0);
	assert_string_equal(f->o.name, "b");

	/* a bad config file fails the parse with the file's error */
	write_file(f, "{\"swim\": {\"probe_intrval_ms\": 1}}");
	assert_int_equal(parse(f, "--config", f->path, NULL), -EINVAL);
	assert_err_has(f, "swim.probe_intrval_ms: unknown key");
	assert_int_equal(parse(f, "--config", "/nonexistent.json", NULL), -ENOENT);
	assert_err_has(f, "/nonexistent.json");
}

static void test_flags_errors(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f, "--prot", "1", NULL), -EINVAL);
	assert_string_equal(f->err, "unknown flag --prot: see 'meshvisor agent --help'");
	assert_int_equal(parse(f, "--prot=1", NULL), -EINVAL);
	assert_string_equal(f->err, "unknown flag --prot: see 'meshvisor agent --help'");
	assert_int_equal(parse(f, "-p", NULL), -EINVAL);
	assert_err_has(f, "unexpected argument \"-p\"");
	assert_int_equal(parse(f, "extra", NULL), -EINVAL);
	assert_err_has(f, "unexpected argument \"extra\"");

	assert_int_equal(parse(f, "--name", NULL), -EINVAL);
	assert_err_has(f, "--name: missing value");
	assert_int_equal(parse(f, "--name", "--bind", "1.2.3.4", NULL), -EINVAL);
	assert_err_has(f, "--name: missing value");
	assert_int_equal(parse(f, "--config", NULL), -EINVAL);
	assert_err_has(f, "--config: missing value");
	assert_int_equal(parse(f, "--config", "a", "--config", "b", NULL), -EINVAL);
	assert_err_has(f, "--config: given more than once");

	assert_int_equal(parse(f, "--probe-interval-ms", "fast", NULL), -EINVAL);
	assert_string_equal(
	    f->err, "--probe-interval-ms: expected an integer from 50 to 60000, got \"fast\"");
	assert_int_equal(parse(f, "--probe-interval-ms", "-100", NULL), -EINVAL);
	assert_err_has(f,
	               "--probe-interval-ms: expected an integer from 50 to 60000, got \"-100\"");
	assert_int_equal(parse(f, "--probe-interval-ms=-100", NULL), -EINVAL);
	assert_err_has(f, "--probe-interval-ms: expected an integer from 50 to 60000");
	assert_int_equal(parse(f, "--peer-port", "99999999999999999999999", NULL), -EINVAL);
	assert_err_has(f, "--peer-port: expected a port number from 1 to 65535");
	assert_int_equal(parse(f, "--rpc-port", " 80", NULL), -EINVAL);
	assert_err_has(f, "--rpc-port: expected a port number");
	assert_int_equal(parse(f, "--name=", NULL), -EINVAL);
	assert_err_has(f, "--name: expected 1 to 63 characters");
	assert_int_equal(parse(f, "--bind", "0.0.0.0:80", NULL), -EINVAL);
	assert_err_has(f, "--bind: expected an IPv4 or IPv6 address literal or a host name");
	assert_int_equal(parse(f, "--advertise", "localhost:7946", NULL), -EINVAL);
	assert_err_has(f, "--advertise: expected an IPv4 or IPv6 address literal or a host name");
	assert_int_equal(parse(f, "--rpc-bind", "a..b", NULL), -EINVAL);
	assert_err_has(f, "--rpc-bind: expected");
	assert_int_equal(parse(f, "--join", "10.0.0.1:7946,,10.0.0.2:7946", NULL), -EINVAL);
	assert_err_has(f, "--join: expected IPv4:PORT, [IPv6]:PORT or HOSTNAME:PORT");
	assert_int_equal(parse(f, "--join", "[fd00::1]7946", NULL), -EINVAL);
	assert_err_has(f, "--join: expected");
	assert_int_equal(parse(f, "--witness=maybe", NULL), -EINVAL);
	assert_err_has(f, "--witness: expected true or false");
	assert_int_equal(parse(f, "--log-level", "trace", NULL), -EINVAL);
	assert_err_has(f, "--log-level: expected debug, info, warn or error");

	/* nothing stuck from the failed parses */
	assert_null(f->o.name);
	assert_int_equal(f->o.n_seeds, 0);
	assert_int_equal(f->o.peer_port, 7946);
}

static void test_flags_help(void **state)
{
	struct fixture *f = *state;
	/* --help wins over everything else on the line, even mistakes */
	assert_int_equal(parse(f, "--prot", "--help", NULL), 1);
	assert_int_equal(parse(f, "-h", NULL), 1);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	agent_options_usage(m);
	fclose(m);
	static const char *const flags[] = {
	    "--config",
	    "--name",
	    "--bind",
	    "--advertise",
	    "--peer-port",
	    "--rpc-bind",
	    "--rpc-port",
	    "--join",
	    "--ca",
	    "--cert",
	    "--key",
	    "--data-dir",
	    "--log-level",
	    "--libvirt-uri",
	    "--witness",
	    "--max-peer-connections",
	    "--peer-idle-timeout-ms",
	    "--leave-timeout-ms",
	    "--probe-interval-ms",
	    "--probe-timeout-ms",
	    "--indirect-probes",
	    "--retransmit-mult",
	    "--suspicion-min-mult",
	    "--suspicion-max-mult",
	    "--awareness-max",
	    "--push-pull-interval-ms",
	    "--gossip-interval-ms",
	    "--gossip-fanout",
	    "--join-retry-ms",
	    "--reap-ms",
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strstr(buf, flags[i]) == NULL)
			fail_msg("usage lacks %s", flags[i]);
	assert_non_null(strstr(buf, "swim.probe_interval_ms, 50..60000"));
	free(buf);
}

/* ---- validate ----------------------------------------------------------- */

static void test_validate(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;

	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "name: required");

	assert_int_equal(parse(f, "--name", "n1", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "tls.ca: required");
	assert_int_equal(parse(f, "--ca", "ca.pem", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "tls.cert: required");
	assert_int_equal(parse(f, "--cert", "n1.pem", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "tls.key: required");
	assert_int_equal(parse(f, "--key", "n1-key.pem", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	/* advertise and rpc_bind default to bind */
	assert_string_equal(o->advertise, "127.0.0.1");
	assert_string_equal(o->rpc_bind, "127.0.0.1");
}

static void test_validate_addresses(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--bind", "0.0.0.0", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "advertise: required when bind is the wildcard 0.0.0.0");
	assert_int_equal(parse(f, "--bind", "::", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "advertise: required when bind is the wildcard ::");
	assert_int_equal(parse(f, "--advertise", "0.0.0.0", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "advertise: 0.0.0.0 is a wildcard");
	assert_int_equal(parse(f, "--advertise", "10.1.2.3", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_string_equal(o->rpc_bind, "::");
}

/* bind, advertise and rpc_bind may be host names: kept as written by the
 * parser and validate (a SIGHUP reload never resolves), resolved by
 * agent_options_resolve to literals, then checked again. */
static void test_host_names(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--bind", "localhost", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_string_equal(o->bind, "localhost");
	assert_string_equal(o->advertise, "localhost");
	assert_string_equal(o->rpc_bind, "localhost");
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), 0);
	assert_string_equal(o->bind, "127.0.0.1"); /* IPv4 first */
	assert_string_equal(o->advertise, "127.0.0.1");
	assert_string_equal(o->rpc_bind, "127.0.0.1");
	/* the metrics listener's too */
	assert_int_equal(parse(f, "--metrics-bind", "localhost", NULL), 0);
	assert_string_equal(o->metrics_bind, "localhost");
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), 0);
	assert_string_equal(o->metrics_bind, "127.0.0.1");
	/* literals pass through */
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), 0);
	assert_string_equal(o->bind, "127.0.0.1");
}

/* Options as agent_options_init leaves them, made valid. */
static void fresh(struct fixture *f)
{
	agent_options_free(&f->o);
	agent_options_init(&f->o);
	make_valid(f);
}

/* A bind or advertise name that resolves to loopback (Debian's
 * /etc/hosts maps the host's name to 127.0.1.1) is refused when a seed is
 * on another host: no other node could reach this one. With seeds on this
 * host only (a literal loopback, localhost) it is allowed. */

static void test_host_names_loopback(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--bind", "localhost", "--join", "10.0.0.6:7946", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "bind: host name 'localhost' resolves to the loopback address 127.0.0.1");
	assert_err_has(f, "seed 10.0.0.6:7946 is on another host");
	/* advertise alone (bind a literal) */
	fresh(f);
	assert_int_equal(parse(f, "--bind", "0.0.0.0", "--advertise", "localhost", "--join",
	                       "10.0.0.6:7946", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "advertise: host name 'localhost' resolves to the loopback");
	/* seeds on this host: allowed */
	fresh(f);
	assert_int_equal(parse(f, "--bind", "localhost", "--advertise", "localhost", "--join",
	                       "127.0.0.1:7950,[::1]:7951,localhost:7952", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), 0);
	assert_string_equal(o->bind, "127.0.0.1");
	/* a loopback literal is what was asked for: never refused */
	fresh(f);
	assert_int_equal(parse(f, "--bind", "127.0.0.1", "--advertise", "127.0.0.1", "--join",
	                       "10.0.0.6:7946", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), 0);
}

/* The same-port check compares names as written, and again once resolved. */
static void test_host_names_ports(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--bind", "localhost", "--rpc-port", "7946", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "must differ");
	assert_int_equal(parse(f, "--rpc-bind", "127.0.0.1", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(agent_options_resolve(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "rpc_port: 7946 is also the peer_port on 127.0.0.1");
}

static void test_validate_ports(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--rpc-port", "7946", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "rpc_port: 7946 is also the peer_port");
	/* different IPs may share a port number */
	assert_int_equal(parse(f, "--rpc-bind", "127.0.0.2", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	/* but not when one of them is a wildcard */
	assert_int_equal(parse(f, "--rpc-bind", "0.0.0.0", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "rpc_port");
	/* the same IP written two ways is the same IP */
	assert_int_equal(parse(f, "--bind", "::1", "--rpc-bind", "0:0::1", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "must differ");
}

static void test_validate_timings(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--probe-interval-ms", "500", "--probe-timeout-ms", "500", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "swim.probe_timeout_ms: 500 must be below swim.probe_interval_ms (500)");
	assert_int_equal(parse(f, "--probe-timeout-ms", "499", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(parse(f, "--suspicion-max-mult", "0", NULL), -EINVAL);
	assert_err_has(f, "--suspicion-max-mult: expected an integer from 1 to 100, got \"0\"");
	/* validate catches it even when set directly */
	o->swim.suspicion_max_mult = 0;
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "swim.suspicion_max_mult");
}

/* ---- section "node": labels and capacity ----------------------------- */

static void test_node_section(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_true(o->cpu_overcommit == 4.0);
	assert_true(o->memory_overcommit == 1.0);
	assert_int_equal(o->memory_reserved_mib, 1024);
	assert_int_equal(load(f, "{\"node\": {\"zone\": \"eu-1a\", \"rack\": \"r12\", "
	                         "\"labels\": [\"ssd=yes\", \"gpu=none\"], "
	                         "\"cpu_overcommit\": 2.5, \"memory_overcommit\": 1, "
	                         "\"memory_reserved_mib\": 2048}}"),
	                 0);
	assert_string_equal(o->zone, "eu-1a");
	assert_string_equal(o->rack, "r12");
	assert_int_equal(o->n_labels, 2);
	assert_string_equal(o->labels[0], "ssd=yes");
	assert_string_equal(o->labels[1], "gpu=none");
	assert_true(o->cpu_overcommit == 2.5);
	assert_true(o->memory_overcommit == 1.0);
	assert_int_equal(o->memory_reserved_mib, 2048);
	/* a flag with an existing key replaces it; a new key is added */
	assert_int_equal(
	    parse(f, "--label", "ssd=no", "--label=tier=gold", "--cpu-overcommit", "8", NULL), 0);
	assert_int_equal(o->n_labels, 3);
	assert_string_equal(o->labels[0], "ssd=no");
	assert_string_equal(o->labels[2], "tier=gold");
	assert_true(o->cpu_overcommit == 8.0);
}

static void test_node_section_errors(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(load(f, "{\"node\": {\"cpu_overcommit\": 0}}"), -EINVAL);
	assert_err_has(f, "node.cpu_overcommit: expected a number from 0.1 to 64, got 0");
	assert_int_equal(load(f, "{\"node\": {\"memory_overcommit\": \"lots\"}}"), -EINVAL);
	assert_err_has(f, "node.memory_overcommit: expected a number from 0.1 to 64");
	assert_int_equal(load(f, "{\"node\": {\"labels\": [\"novalue\"]}}"), -EINVAL);
	assert_err_has(f, "node.labels[0]: expected KEY=VALUE, got \"novalue\"");
	assert_int_equal(load(f, "{\"node\": {\"labels\": \"ssd=yes\"}}"), -EINVAL);
	assert_err_has(f, "node.labels: expected an array");
	assert_int_equal(load(f, "{\"node\": {\"zone\": \"eu 1\"}}"), -EINVAL);
	assert_err_has(f, "node.zone: expected 1 to 63 characters");
	assert_int_equal(load(f, "{\"node\": {\"zones\": \"a\"}}"), -EINVAL);
	assert_err_has(f, "node.zones: unknown key");
	assert_int_equal(parse(f, "--label", "a=b c", NULL), -EINVAL);
	assert_err_has(f, "--label: key and value must be 1 to 63 characters");
	assert_int_equal(parse(f, "--cpu-overcommit", "4x", NULL), -EINVAL);
	assert_err_has(f, "--cpu-overcommit: expected a number from 0.1 to 64, got \"4x\"");
	/* nothing of a failed file sticks */
	assert_null(f->o.zone);
	assert_int_equal(f->o.n_labels, 0);
}

/* ---- section "state" --------------------------------------------------- */

static void test_state_section(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_true(o->state_load_step == 1.0);
	assert_int_equal(o->state_load_step_pct, 50);
	assert_int_equal(o->state_republish_s, 0);
	assert_int_equal(load(f, "{\"state\": {\"load_step\": 1.5, \"load_step_pct\": 0, "
	                         "\"republish_s\": 600}}"),
	                 0);
	assert_true(o->state_load_step == 1.5);
	assert_int_equal(o->state_load_step_pct, 0);
	assert_int_equal(o->state_republish_s, 600);
	assert_int_equal(parse(f, "--state-load-step", "2", "--state-republish-s", "0", NULL), 0);
	assert_true(o->state_load_step == 2.0);
	assert_int_equal(o->state_republish_s, 0);
	/* bad values: a clear error naming the key, nothing kept */
	static const char *const bad[][2] = {
	    {"\"load_step\": 0", "state.load_step: expected a number from 0.1 to 64, got 0"},
	    {"\"load_step_pct\": 1001", "state.load_step_pct: expected an integer from 0 to 1000"},
	    {"\"republish_s\": 86401", "state.republish_s: expected an integer from 0 to 86400"},
	    {"\"load\": 1", "state.load: unknown key"},
	};
	load_refused(f, "state", bad, sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(parse(f, "--state-load-step", "-1", NULL), -EINVAL);
	assert_err_has(f, "--state-load-step: expected a number from 0.1 to 64");
	assert_true(o->state_load_step == 2.0);
}

/* ---- section "metrics" ------------------------------------------------- */

static void test_metrics_section(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	/* on by default, on localhost */
	assert_string_equal(o->metrics_bind, "127.0.0.1");
	assert_int_equal(o->metrics_port, 7948);
	assert_false(o->metrics_tls);
	assert_int_equal(load(f, "{\"metrics\": {\"bind\": \"::1\", \"port\": 0, \"tls\": true}}"),
	                 0);
	assert_string_equal(o->metrics_bind, "::1");
	assert_int_equal(o->metrics_port, 0);
	assert_true(o->metrics_tls);
	assert_int_equal(parse(f, "--metrics-bind", "10.0.0.5", "--metrics-port", "9100", NULL), 0);
	assert_string_equal(o->metrics_bind, "10.0.0.5");
	assert_int_equal(o->metrics_port, 9100);
	static const char *const bad[][2] = {
	    {"\"port\": 65536", "metrics.port: expected an integer from 0 to 65535"},
	    {"\"port\": \"x\"", "metrics.port: expected an integer"},
	    {"\"bind\": \"not a host!\"", "metrics.bind"},
	    {"\"path\": \"/m\"", "metrics.path: unknown key"},
	    {"\"tls\": 1", "metrics.tls"},
	};
	load_refused(f, "metrics", bad, sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(parse(f, "--metrics-port", "-1", NULL), -EINVAL);
	assert_err_has(f, "--metrics-port");
	assert_int_equal(o->metrics_port, 9100);
}

/* ---- section "failover" ------------------------------------------------ */

static void test_failover_section(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_int_equal(o->fo_heartbeat_ms, 1000);
	assert_int_equal(o->fo_fence_after_ms, 10000);
	assert_int_equal(o->fo_fence_margin_ms, 3000);
	assert_int_equal(o->fo_replicas, 3);
	assert_int_equal(o->fo_max_parallel, 4);
	assert_int_equal(o->fo_restart_attempts, 3);
	assert_int_equal(o->fo_vm_restarts, 3);
	assert_null(o->fo_fence_uri);
	assert_null(o->fo_watchdog);
	assert_int_equal(
	    load(f, "{\"failover\": {\"heartbeat_ms\": 250, \"fence_after_ms\": 4000, "
	            "\"fence_margin_ms\": 500, \"fence_uri\": \"qemu+tcp://10.0.0.5/system\", "
	            "\"replicas\": 2, \"max_parallel\": 8, \"restart_attempts\": 5, "
	            "\"vm_restarts\": 0, \"watchdog\": \"/dev/watchdog\"}}"),
	    0);
	assert_int_equal(o->fo_heartbeat_ms, 250);
	assert_int_equal(o->fo_fence_after_ms, 4000);
	assert_int_equal(o->fo_fence_margin_ms, 500);
	assert_string_equal(o->fo_fence_uri, "qemu+tcp://10.0.0.5/system");
	assert_int_equal(o->fo_replicas, 2);
	assert_int_equal(o->fo_max_parallel, 8);
	assert_int_equal(o->fo_restart_attempts, 5);
	assert_int_equal(o->fo_vm_restarts, 0);
	assert_string_equal(o->fo_watchdog, "/dev/watchdog");
	assert_int_equal(
	    parse(f, "--fence-after-ms", "6000", "--ha-replicas", "4", "--witness", NULL), 0);
	assert_int_equal(o->fo_fence_after_ms, 6000);
	assert_int_equal(o->fo_replicas, 4);
	assert_true(o->witness);
}

static void test_failover_section_errors(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_int_equal(load(f, "{\"failover\": {\"fence_after_ms\": 10}}"), -EINVAL);
	assert_err_has(f, "failover.fence_after_ms: expected an integer from 1000 to 600000");
	assert_int_equal(load(f, "{\"failover\": {\"replicas\": 0}}"), -EINVAL);
	assert_err_has(f, "failover.replicas: expected an integer from 1 to 16");
	assert_int_equal(load(f, "{\"failover\": {\"fence_afte_ms\": 1000}}"), -EINVAL);
	assert_err_has(f, "failover.fence_afte_ms: unknown key");
	assert_int_equal(parse(f, "--failover-parallel", "0", NULL), -EINVAL);
	assert_err_has(f, "--failover-parallel");
	/* fencing sooner than three heartbeats would fence a healthy host */
	make_valid(f);
	assert_int_equal(
	    parse(f, "--failover-heartbeat-ms", "2000", "--fence-after-ms", "5000", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "failover.fence_after_ms: 5000 must be at least three heartbeats");
	/* three heartbeats of 2 s make a 6 s quorate window: the margin follows */
	assert_int_equal(parse(f, "--fence-after-ms", "6000", "--fence-margin-ms", "6000", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
}

/* The quorate window: the core's 3000 ms, at most F / 2, at least three
 * heartbeats (that raise wins). */
static void test_failover_quorate_window(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	assert_int_equal(agent_options_quorate_ms(o), 3000); /* defaults: 1000, 10000 */
	o->fo_heartbeat_ms = 250;
	o->fo_fence_after_ms = 3000;
	assert_int_equal(agent_options_quorate_ms(o), 1500);
	o->fo_fence_after_ms = 10000;
	assert_int_equal(agent_options_quorate_ms(o), 3000);
	o->fo_heartbeat_ms = 2000;
	o->fo_fence_after_ms = 6000;
	assert_int_equal(agent_options_quorate_ms(o), 6000);
}

/* fence_margin_ms below the quorate window: a host petted its watchdog
 * until q + window, and targets restart F + margin after learning the plan
 * (fo.c, rule (1)). */
static void test_failover_margin_below_quorate_window(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	/* the shipped defaults sit on the boundary: margin 3000 = window 3000 */
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(parse(f, "--fence-margin-ms", "2999", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(
	    f->err, "failover.fence_margin_ms: 2999 is below the quorate window of 3000 ms "
		    "(heartbeat_ms 1000, fence_after_ms 10000); it must be at least that, or "
		    "a restart could overlap a host whose watchdog has not fired yet");
	assert_int_equal(parse(f, "--failover-heartbeat-ms", "250", "--fence-after-ms", "3000",
	                       "--fence-margin-ms", "1000", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err,
	                    "failover.fence_margin_ms: 1000 is below the quorate window of 1500 ms "
	                    "(heartbeat_ms 250, fence_after_ms 3000); it must be at least that, or "
	                    "a restart could overlap a host whose watchdog has not fired yet");
	assert_int_equal(parse(f, "--fence-margin-ms", "1499", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "failover.fence_margin_ms: 1499 is below the quorate window of 1500 ms");
	assert_int_equal(parse(f, "--fence-margin-ms", "1500", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	/* from the file too */
	assert_int_equal(load(f, "{\"failover\": {\"heartbeat_ms\": 250, \"fence_after_ms\": 4000, "
	                         "\"fence_margin_ms\": 500}}"),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "failover.fence_margin_ms: 500 is below the quorate window of 2000 ms "
	                  "(heartbeat_ms 250, fence_after_ms 4000)");
}

/* With a watchdog, its timeout is the margin (at most F) less 250 ms:
 * whole seconds, at least 2, more than two pets. */
static void test_failover_watchdog_needs_two_seconds(void **state)
{
	struct fixture *f = *state;
	struct agent_options *o = &f->o;
	make_valid(f);
	assert_int_equal(parse(f, "--failover-heartbeat-ms", "250", "--fence-after-ms", "3000",
	                       "--fence-margin-ms", "2249", NULL),
	                 0);
	/* without a watchdog a margin of 2249 ms is fine */
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	assert_int_equal(parse(f, "--watchdog", "/dev/watchdog", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(
	    f->err, "failover.fence_margin_ms: 2249 (or fence_after_ms 3000) is below 2250, "
		    "the least that failover.watchdog (/dev/watchdog) can take: its timeout "
		    "is the margin less 250 ms, in whole seconds, at least 2");
	assert_int_equal(parse(f, "--fence-margin-ms", "2250", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
	/* F below the margin caps it */
	assert_int_equal(parse(f, "--fence-after-ms", "2249", "--fence-margin-ms", "3000", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_err_has(f, "(or fence_after_ms 2249) is below 2250");
	/* the shipped heartbeat (1 s) needs a timeout of 3 s: a margin of 3250 */
	assert_int_equal(parse(f, "--fence-after-ms", "10000", "--fence-margin-ms", "3000",
	                       "--failover-heartbeat-ms", "1000", NULL),
	                 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(
	    f->err, "failover.fence_margin_ms: 3000 gives failover.watchdog (/dev/watchdog) a "
		    "timeout of 2 s, which heartbeat_ms 1000 pets too seldom (the pet period "
		    "must be below half the timeout): raise fence_margin_ms (and "
		    "fence_after_ms) to at least 3250");
	assert_int_equal(parse(f, "--fence-margin-ms", "3250", NULL), 0);
	assert_int_equal(agent_options_validate(o, f->err, sizeof(f->err)), 0);
}

static void test_null_err_buffer(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"agent", "--prot"};
	assert_int_equal(agent_options_parse_args(&f->o, 2, argv, NULL, 0), -EINVAL);
	char tiny[8];
	assert_int_equal(agent_options_parse_args(&f->o, 2, argv, tiny, sizeof(tiny)), -EINVAL);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	agent_options_free(&f->o);
	agent_options_free(&f->o); /* twice is harmless */
	agent_options_init(&f->o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_partial_keeps_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_unknown_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_bad_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_syntax, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_nul_and_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_is_all_or_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_join_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_override_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flags_help, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_validate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_validate_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_validate_ports, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_names_loopback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_names_ports, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_validate_timings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_err_buffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_section, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_node_section_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_section, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics_section, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_section, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_section_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_quorate_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_margin_below_quorate_window, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_failover_watchdog_needs_two_seconds, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
