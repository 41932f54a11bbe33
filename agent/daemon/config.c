/*
 * config.c — the agent's settings from three layers: built-in defaults, the
 * JSON config file, then `meshvisor agent` flags (see config.h for the keys).
 *
 * Every setting is one row of the table `config_opts` below: where it lives
 * in the file (section + key), its flag, its type and range, and where it
 * lands in struct agent_options. The file reader and the flag parser both
 * walk that one table, so a key and its flag can never disagree on what
 * they accept, and `--help` is printed from it too.
 *
 * Errors are meant to be acted on without reading this file:
 *   - every unknown key, at any depth, is an error that names its full path
 *     ("swim.probe_intrval_ms: unknown key (did you mean
 *     swim.probe_interval_ms?)") — a typo silently ignored would leave a
 *     production host on a default nobody chose;
 *   - every bad value names the key or flag, what was expected (with the
 *     range) and what was given;
 *   - JSON syntax errors give line and column.
 * The file is read as strict JSON (RFC 8259: no comments, no trailing
 * commas) and must be valid UTF-8 and at most CONFIG_MAX_FILE bytes.
 *
 * Applying a file or a set of flags is all-or-nothing: the work is done on
 * a copy, which replaces *o only when everything was accepted.
 */
#include "config.h"
#include "fileio.h"
#include "hostaddr.h"
#include "names.h"
#include "seeds.h"
#include "watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "meshvisor/fo.h"
#include "log.h"

/* A config file is a few hundred bytes; anything near this is a mistake
 * (wrong file) and reading it whole would only waste memory. */
#define CONFIG_MAX_FILE (1024 * 1024)

/* How much of an offending value or key is quoted back in an error. */
#define CONFIG_QUOTE_MAX 64

enum config_type {
	CT_NAME,     /* node name or label value: 1..63 of [A-Za-z0-9._-] */
	CT_ADDR,     /* IPv4 or IPv6 literal, no port */
	CT_HOST,     /* IPv4 or IPv6 literal or DNS host name, no port (resolved at start) */
	CT_PORT,     /* 1..65535 */
	CT_U32,      /* integer within [min, max] */
	CT_BOOL,     /* true/false */
	CT_STRING,   /* non-empty string (paths, URIs) */
	CT_LOGLEVEL, /* debug|info|warn|error */
	CT_SEEDS,    /* list of host:port */
	CT_LABELS,   /* list of key=value, each side a token */
	CT_RATIO,    /* decimal from 0.1 to 64 */
};

struct config_opt {
	const char *section; /* NULL (top level), "tls", "swim" or "node" */
	const char *key;
	const char *flag; /* without the leading "--" */
	enum config_type type;
	size_t off;        /* into struct agent_options */
	uint32_t min, max; /* CT_U32 only */
	const char *help;
};

#define OFF(field) offsetof(struct agent_options, field)

static const struct config_opt config_opts[] = {
    {NULL, "name", "name", CT_NAME, OFF(name), 0, 0,
     "node name, 1-63 of [A-Za-z0-9._-]; must equal the CN of --cert"},
    {NULL, "bind", "bind", CT_HOST, OFF(bind), 0, 0,
     "IP or host name the peer and RPC ports listen on (default 127.0.0.1)"},
    {NULL, "advertise", "advertise", CT_HOST, OFF(advertise), 0, 0,
     "IP or host name other nodes reach this one at (default: bind; required if bind is "
     "0.0.0.0 or ::); a name is resolved once, at start"},
    {NULL, "peer_port", "peer-port", CT_PORT, OFF(peer_port), 0, 0,
     "TCP port for cluster peers (default 7946)"},
    {NULL, "rpc_bind", "rpc-bind", CT_HOST, OFF(rpc_bind), 0, 0,
     "IP or host name of the RPC port (default: bind)"},
    {NULL, "rpc_port", "rpc-port", CT_PORT, OFF(rpc_port), 0, 0,
     "TCP port for clients (default 7947)"},
    {NULL, "join", "join", CT_SEEDS, OFF(seeds), 0, 0,
     "seed peer IP:PORT, [IPv6]:PORT or HOSTNAME:PORT; repeatable or comma-separated"},
    {"tls", "ca", "ca", CT_STRING, OFF(ca_file), 0, 0, "cluster CA certificate (PEM)"},
    {"tls", "cert", "cert", CT_STRING, OFF(cert_file), 0, 0,
     "this node's certificate (PEM, role node)"},
    {"tls", "key", "key", CT_STRING, OFF(key_file), 0, 0, "this node's private key (PEM)"},
    {"tls", "crl", "crl", CT_STRING, OFF(crl_file), 0, 0,
     "revocation list signed by the cluster CA (PEM; meshvisor tls crl create)"},
    {NULL, "data_dir", "data-dir", CT_STRING, OFF(data_dir), 0, 0,
     "state directory (default /var/lib/meshvisor)"},
    {NULL, "log_level", "log-level", CT_LOGLEVEL, OFF(log_level), 0, 0,
     "debug, info, warn or error (default info)"},
    {NULL, "libvirt_uri", "libvirt-uri", CT_STRING, OFF(libvirt_uri), 0, 0,
     "hypervisor URI (default test:///default; production qemu:///system)"},
    {NULL, "witness", "witness", CT_BOOL, OFF(witness), 0, 0,
     "vote in quorum but host no VMs: a third voter for a two-host cluster"},
    {NULL, "max_peer_connections", "max-peer-connections", CT_U32, OFF(max_peer_connections), 1,
     65536, "pooled outgoing peer connections (default 64)"},
    {NULL, "peer_idle_timeout_ms", "peer-idle-timeout-ms", CT_U32, OFF(peer_idle_timeout_ms), 1000,
     86400000, "close idle pooled connections after (default 60000)"},
    {NULL, "leave_timeout_ms", "leave-timeout-ms", CT_U32, OFF(leave_timeout_ms), 0, 60000,
     "how long a graceful leave may gossip (default 3000)"},
    {"swim", "probe_interval_ms", "probe-interval-ms", CT_U32, OFF(swim.probe_interval_ms), 50,
     60000, "SWIM protocol period"},
    {"swim", "probe_timeout_ms", "probe-timeout-ms", CT_U32, OFF(swim.probe_timeout_ms), 10, 60000,
     "direct probe ack deadline; below the probe interval"},
    {"swim", "indirect_probes", "indirect-probes", CT_U32, OFF(swim.indirect_probes), 0, 16,
     "peers asked to probe on our behalf"},
    {"swim", "retransmit_mult", "retransmit-mult", CT_U32, OFF(swim.retransmit_mult), 1, 32,
     "gossip retransmit multiplier"},
    {"swim", "suspicion_min_mult", "suspicion-min-mult", CT_U32, OFF(swim.suspicion_min_mult), 1,
     100, "Lifeguard minimum suspicion multiplier"},
    {"swim", "suspicion_max_mult", "suspicion-max-mult", CT_U32, OFF(swim.suspicion_max_mult), 1,
     100, "maximum suspicion, as a multiple of the minimum"},
    {"swim", "awareness_max", "awareness-max", CT_U32, OFF(swim.awareness_max), 1, 64,
     "Lifeguard local health cap"},
    {"swim", "push_pull_interval_ms", "push-pull-interval-ms", CT_U32,
     OFF(swim.push_pull_interval_ms), 1000, 3600000, "full state sync period"},
    {"swim", "gossip_interval_ms", "gossip-interval-ms", CT_U32, OFF(swim.gossip_interval_ms), 10,
     60000, "extra gossip round period"},
    {"swim", "gossip_fanout", "gossip-fanout", CT_U32, OFF(swim.gossip_fanout), 1, 64,
     "members per gossip round"},
    {"swim", "join_retry_ms", "join-retry-ms", CT_U32, OFF(swim.join_retry_ms), 10, 30000,
     "first join retry delay (doubles up to 30 s)"},
    {"swim", "reap_ms", "reap-ms", CT_U32, OFF(swim.reap_ms), 1000, 2592000000u,
     "forget dead/left members after (up to 30 days)"},
    {"swim", "max_updates_per_msg", "max-updates-per-msg", CT_U32, OFF(swim.max_updates_per_msg), 1,
     256, "member updates piggybacked per message"},
    {"node", "zone", "zone", CT_NAME, OFF(zone), 0, 0, "availability zone label"},
    {"node", "rack", "rack", CT_NAME, OFF(rack), 0, 0, "rack label"},
    {"node", "labels", "label", CT_LABELS, OFF(labels), 0, 0,
     "free-form KEY=VALUE label; repeatable (up to 16)"},
    {"node", "cpu_overcommit", "cpu-overcommit", CT_RATIO, OFF(cpu_overcommit), 0, 0,
     "vCPUs allowed per logical CPU, 0.1 to 64 (default 4)"},
    {"node", "memory_overcommit", "memory-overcommit", CT_RATIO, OFF(memory_overcommit), 0, 0,
     "VM memory allowed per byte of host memory, 0.1 to 64 (default 1)"},
    {"node", "memory_reserved_mib", "memory-reserved-mib", CT_U32, OFF(memory_reserved_mib), 0,
     16777216, "memory kept for the host itself, MiB (default 1024)"},
    {"state", "load_step", "state-load-step", CT_RATIO, OFF(state_load_step), 0, 0,
     "republish the load average once it moved by more than this, 0.1 to 64 (default 1)"},
    {"state", "load_step_pct", "state-load-step-pct", CT_U32, OFF(state_load_step_pct), 0, 1000,
     "... or by more than this percent of the load last published, if larger (default 50)"},
    {"state", "republish_s", "state-republish-s", CT_U32, OFF(state_republish_s), 0, 86400,
     "republish a record whose only changes are under the steps at least this often, "
     "seconds (default 0 = never: the cluster's state traffic stays flat in N)"},
    {"migration", "libvirt_uri", "migration-libvirt-uri", CT_STRING, OFF(mig_libvirt_uri), 0, 0,
     "this host's libvirt URI as other hosts reach it, for peer-to-peer migration "
     "(default: libvirt_uri)"},
    {"migration", "stream_uri", "migration-stream-uri", CT_STRING, OFF(mig_stream_uri), 0, 0,
     "where QEMU's migration stream connects, tcp://HOST[:PORT] (default: libvirt's choice)"},
    {"migration", "bandwidth_mib_s", "migration-bandwidth", CT_U32, OFF(mig_bandwidth_mib_s), 0,
     1000000, "migration bandwidth cap, MiB/s (default 0 = unlimited)"},
    {"migration", "max_downtime_ms", "migration-max-downtime-ms", CT_U32, OFF(mig_max_downtime_ms),
     0, 600000, "maximum guest downtime (default 0 = libvirt's)"},
    {"migration", "tls", "migration-tls", CT_BOOL, OFF(mig_tls), 0, 0,
     "encrypt the migration stream with libvirt's TLS (default false)"},
    {"migration", "max_incoming", "max-incoming-migrations", CT_U32, OFF(mig_max_incoming), 1, 64,
     "concurrent incoming migrations (default 2)"},
    {"migration", "max_outgoing", "max-outgoing-migrations", CT_U32, OFF(mig_max_outgoing), 1, 64,
     "concurrent outgoing migrations (default 2)"},
    {"migration", "lease_ms", "migration-lease-ms", CT_U32, OFF(mig_lease_ms), 1000, 600000,
     "how long a target holds room for a silent source; also how long a restarted agent "
     "refuses incoming migrations (default 30000)"},
    {"metrics", "bind", "metrics-bind", CT_HOST, OFF(metrics_bind), 0, 0,
     "IP or host name the Prometheus metrics listener (HTTP, GET /metrics) binds to "
     "(default 127.0.0.1); a name is resolved once, at start"},
    {"metrics", "port", "metrics-port", CT_U32, OFF(metrics_port), 0, 65535,
     "TCP port of the metrics listener (default 7948; 0 = no listener)"},
    {"metrics", "tls", "metrics-tls", CT_BOOL, OFF(metrics_tls), 0, 0,
     "serve the metrics over TLS with client certificates of the cluster CA, as the RPC "
     "port (default false: plain HTTP)"},
    {"failover", "heartbeat_ms", "failover-heartbeat-ms", CT_U32, OFF(fo_heartbeat_ms), 50, 60000,
     "quorum heartbeat period (default 1000)"},
    {"failover", "fence_after_ms", "fence-after-ms", CT_U32, OFF(fo_fence_after_ms), 1000, 600000,
     "a host without a majority's acknowledgement for this long destroys its own HA "
     "VMs (default 10000)"},
    {"failover", "fence_margin_ms", "fence-margin-ms", CT_U32, OFF(fo_fence_margin_ms), 0, 600000,
     "extra wait after fence_after_ms before restarting an unconfirmed host's VMs "
     "(default 3000)"},
    {"failover", "fence_uri", "fence-uri", CT_STRING, OFF(fo_fence_uri), 0, 0,
     "this host's libvirt URI as peers reach it to fence it when its agent is dead "
     "(default: migration.libvirt_uri when remote, else none)"},
    {"failover", "replicas", "ha-replicas", CT_U32, OFF(fo_replicas), 1, 16,
     "peers that keep each HA VM's definition (default 3)"},
    {"failover", "max_parallel", "failover-parallel", CT_U32, OFF(fo_max_parallel), 1, 256,
     "VM restarts at once per host (default 4)"},
    {"failover", "restart_attempts", "restart-attempts", CT_U32, OFF(fo_restart_attempts), 1, 100,
     "tries per VM before handing it back for a new plan (default 3)"},
    {"failover", "vm_restarts", "vm-restarts", CT_U32, OFF(fo_vm_restarts), 0, 100,
     "local restarts of a crashed HA VM (backoff 1 s doubling) before moving it elsewhere "
     "(default 3; 0 = move at once)"},
    {"failover", "watchdog", "watchdog", CT_STRING, OFF(fo_watchdog), 0, 0,
     "Linux watchdog device, e.g. /dev/watchdog: its timeout is set to fence_margin_ms "
     "(whole seconds, at least 2) and checked; petted while quorate and until the "
     "self-fence, disarmed where no HA VM runs (default none)"},
};

#define N_OPTS (sizeof(config_opts) / sizeof(config_opts[0]))

static const char *const config_sections[] = {"tls",       "swim",     "node",   "state",
                                              "migration", "failover", "metrics"};
#define N_SECTIONS (sizeof(config_sections) / sizeof(config_sections[0]))

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL) {
		fprintf(stderr, "meshvisor: out of memory reading configuration\n");
		abort();
	}
	return d;
}

static void replace_str(char **slot, const char *s)
{
	free(*slot);
	*slot = s ? xstrdup(s) : NULL;
}

/* Writes s (len bytes) into buf as a double-quoted string safe to print:
 * quotes and backslashes escaped, bytes outside printable ASCII as \xNN,
 * cut with "..." after CONFIG_QUOTE_MAX bytes. */
static const char *quote(char *buf, size_t buflen, const char *s, size_t len)
{
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (i == CONFIG_QUOTE_MAX || o + 8 > buflen) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define QBUF (CONFIG_QUOTE_MAX * 4 + 16)

static const char *quote_cstr(char *buf, const char *s)
{
	return quote(buf, QBUF, s, strlen(s));
}

/* A JSON value as the user wrote it (near enough), for "got ..." */
static const char *json_show(char *buf, struct json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		return quote(buf, QBUF, json_object_get_string(v),
		             (size_t)json_object_get_string_len(v));
	const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s);
	/* reuse quote()'s escaping and truncation, then drop its quotes */
	quote(buf, QBUF, s, len);
	size_t n = strlen(buf);
	memmove(buf, buf + 1, n - 2);
	buf[n - 2] = '\0';
	return buf;
}

static const char *json_type_word(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "a value";
}

static bool is_valid_name(const char *s)
{
	return mv_name_span_ok(s, strlen(s), SWIM_NAME_MAX - 1);
}

/* Decimal digits only (no sign, no spaces, no 0x); false on overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
	if (*s == '\0')
		return false;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* "IPv4:port", "[IPv6]:port" or "hostname:port", port 1..65535 (seeds.h;
 * names are resolved off the loop when the agent joins). */
static bool is_valid_seed(const char *s)
{
	char host[256];
	unsigned port;
	return seed_parse(s, host, sizeof(host), &port);
}

/* Frees the strings of a list option (seeds, labels) and empties it. */
static void str_list_clear(char **list, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free(list[i]);
		list[i] = NULL;
	}
	*n = 0;
}

/* Adds a checked seed, ignoring exact duplicates. `where` names the key or
 * flag for errors. */
static int seeds_add(struct agent_options *o, const char *where, const char *s, char *err,
                     size_t errlen)
{
	char q[QBUF];
	if (!is_valid_seed(s)) {
		set_err(err, errlen,
		        "%s: expected IPv4:PORT, [IPv6]:PORT or HOSTNAME:PORT with port 1 to "
		        "65535, got %s",
		        where, quote_cstr(q, s));
		return -EINVAL;
	}
	for (size_t i = 0; i < o->n_seeds; i++)
		if (strcmp(o->seeds[i], s) == 0)
			return 0;
	if (o->n_seeds == AGENT_MAX_SEEDS) {
		set_err(err, errlen, "%s: at most %d seed addresses are allowed", where,
		        AGENT_MAX_SEEDS);
		return -EINVAL;
	}
	o->seeds[o->n_seeds++] = xstrdup(s);
	return 0;
}

/* Splits a comma-separated --join value. */
static int seeds_add_list(struct agent_options *o, const char *where, const char *list, char *err,
                          size_t errlen)
{
	char *copy = xstrdup(list);
	char *p = copy;
	int rc = 0;
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		rc = seeds_add(o, where, p, err, errlen);
		if (rc < 0 || comma == NULL)
			break;
		p = comma + 1;
	}
	free(copy);
	return rc;
}

/* Deep copy for all-or-nothing updates. */
static void options_copy(struct agent_options *dst, const struct agent_options *src)
{
	*dst = *src;
	/* every string-valued option of the table, so a new one cannot be missed */
	if (dst->config_file)
		dst->config_file = xstrdup(dst->config_file);
	for (size_t i = 0; i < N_OPTS; i++) {
		enum config_type t = config_opts[i].type;
		if (t != CT_NAME && t != CT_ADDR && t != CT_HOST && t != CT_STRING)
			continue;
		char **slot = (char **)((char *)dst + config_opts[i].off);
		if (*slot)
			*slot = xstrdup(*slot);
	}
	for (size_t i = 0; i < dst->n_seeds; i++)
		dst->seeds[i] = xstrdup(src->seeds[i]);
	for (size_t i = 0; i < dst->n_labels; i++)
		dst->labels[i] = xstrdup(src->labels[i]);
}

/* Adds "key=value"; a label with the same key is replaced. */
static int labels_add(struct agent_options *o, const char *where, const char *s, char *err,
                      size_t errlen)
{
	char q[QBUF];
	const char *eq = strchr(s, '=');
	char key[SWIM_NAME_MAX];
	size_t kl = eq ? (size_t)(eq - s) : 0;
	if (eq == NULL || kl == 0 || kl >= sizeof(key)) {
		set_err(err, errlen, "%s: expected KEY=VALUE, got %s", where, quote_cstr(q, s));
		return -EINVAL;
	}
	memcpy(key, s, kl);
	key[kl] = '\0';
	if (!is_valid_name(key) || !is_valid_name(eq + 1)) {
		set_err(err, errlen,
		        "%s: key and value must be 1 to %d characters of A-Z a-z 0-9 . _ -, got %s",
		        where, SWIM_NAME_MAX - 1, quote_cstr(q, s));
		return -EINVAL;
	}
	for (size_t i = 0; i < o->n_labels; i++) {
		if (strncmp(o->labels[i], s, kl + 1) == 0) {
			replace_str(&o->labels[i], s);
			return 0;
		}
	}
	if (o->n_labels == AGENT_MAX_LABELS) {
		set_err(err, errlen, "%s: at most %d labels are allowed", where, AGENT_MAX_LABELS);
		return -EINVAL;
	}
	o->labels[o->n_labels++] = xstrdup(s);
	return 0;
}

/* A JSON array of strings, each checked and added by add(); `what` names
 * the expected form in errors ("IP:PORT"). The caller clears the list. */
static int opt_set_string_list(struct agent_options *o, const char *where, struct json_object *jv,
                               const char *what,
                               int (*add)(struct agent_options *, const char *, const char *,
                                          char *, size_t),
                               char *err, size_t errlen)
{
	char q[QBUF];
	if (!json_object_is_type(jv, json_type_array)) {
		set_err(err, errlen, "%s: expected an array of \"%s\" strings, got %s", where, what,
		        json_show(q, jv));
		return -EINVAL;
	}
	for (size_t i = 0; i < json_object_array_length(jv); i++) {
		struct json_object *e = json_object_array_get_idx(jv, i);
		char elem[64];
		snprintf(elem, sizeof(elem), "%s[%zu]", where, i);
		if (!json_object_is_type(e, json_type_string) ||
		    (size_t)json_object_get_string_len(e) != strlen(json_object_get_string(e))) {
			set_err(err, errlen, "%s: expected a%s \"%s\" string, got %s", elem,
			        what[0] == 'I' ? "n" : "", what, json_show(q, e));
			return -EINVAL;
		}
		int rc = add(o, elem, json_object_get_string(e), err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- one value, from the file or a flag --------------------------------- */

/* One value being set: from the config file (from_json: jv, NULL for JSON
 * null) or from a flag (s). where names it in errors:
 * "swim.probe_interval_ms" or "--probe-interval-ms". */
struct opt_value {
	const char *where;
	bool from_json;
	struct json_object *jv;
	const char *s;
};

/* What the user gave, quoted back for an error: the JSON value or the
 * flag's text. */
static const char *opt_given(char *q, const struct opt_value *v)
{
	return v->from_json ? json_show(q, v->jv) : quote_cstr(q, v->s);
}

/* The value of a text option: a JSON string (no NUL inside) or the flag's
 * text. Returns 0 and sets *str, or -EINVAL. */
static int opt_text(const struct opt_value *v, const char **str, char *err, size_t errlen)
{
	char q[QBUF];
	*str = v->s;
	if (!v->from_json)
		return 0;
	if (!json_object_is_type(v->jv, json_type_string)) {
		set_err(err, errlen, "%s: expected a string, got %s", v->where,
		        json_show(q, v->jv));
		return -EINVAL;
	}
	*str = json_object_get_string(v->jv);
	if ((size_t)json_object_get_string_len(v->jv) != strlen(*str)) {
		set_err(err, errlen, "%s: the string contains a NUL character", v->where);
		return -EINVAL;
	}
	return 0;
}

/* CT_NAME, CT_ADDR, CT_HOST, CT_STRING, CT_LOGLEVEL: checks str and stores it. */
static int opt_set_text(struct agent_options *o, const struct config_opt *d, const char *where,
                        const char *str, char *err, size_t errlen)
{
	char q[QBUF];
	char *base = (char *)o + d->off;
	switch (d->type) {
	case CT_NAME:
		if (!is_valid_name(str)) {
			set_err(err, errlen,
			        "%s: expected 1 to %d characters of A-Z a-z 0-9 . _ -, got %s",
			        where, SWIM_NAME_MAX - 1, quote_cstr(q, str));
			return -EINVAL;
		}
		break;
	case CT_ADDR:
	case CT_HOST:
		if (mv_addr_family(str, NULL) == 0 &&
		    (d->type == CT_ADDR || !mv_is_dns_name(str))) {
			set_err(err, errlen,
			        "%s: expected an IPv4 or IPv6 address literal%s (no port, no "
			        "brackets), got %s",
			        where, d->type == CT_HOST ? " or a host name" : "",
			        quote_cstr(q, str));
			return -EINVAL;
		}
		break;
	case CT_STRING:
		if (*str == '\0') {
			set_err(err, errlen, "%s: expected a non-empty string", where);
			return -EINVAL;
		}
		break;
	case CT_LOGLEVEL: {
		int lvl = mv_log_level_parse(str);
		if (lvl < 0) {
			set_err(err, errlen, "%s: expected debug, info, warn or error, got %s",
			        where, quote_cstr(q, str));
			return -EINVAL;
		}
		*(int *)base = lvl;
		return 0;
	}
	default:
		return -EINVAL;
	}
	replace_str((char **)base, str);
	return 0;
}

/* CT_PORT, CT_U32: a non-negative JSON integer or decimal digits, in range. */
static int opt_set_integer(struct agent_options *o, const struct config_opt *d,
                           const struct opt_value *v, char *err, size_t errlen)
{
	char q[QBUF];
	char *base = (char *)o + d->off;
	uint64_t num = 0;
	bool num_ok;
	if (v->from_json) {
		/* a non-integer falls through to the range error below */
		int64_t i =
		    json_object_is_type(v->jv, json_type_int) ? json_object_get_int64(v->jv) : -1;
		num_ok = i >= 0;
		num = num_ok ? (uint64_t)i : 0;
	} else {
		num_ok = parse_u64(v->s, &num);
	}
	if (d->type == CT_PORT) {
		if (!num_ok || num < 1 || num > 65535) {
			set_err(err, errlen, "%s: expected a port number from 1 to 65535, got %s",
			        v->where, opt_given(q, v));
			return -EINVAL;
		}
		*(uint16_t *)base = (uint16_t)num;
		return 0;
	}
	if (!num_ok || num < d->min || num > d->max) {
		set_err(err, errlen, "%s: expected an integer from %u to %u, got %s", v->where,
		        (unsigned)d->min, (unsigned)d->max, opt_given(q, v));
		return -EINVAL;
	}
	*(uint32_t *)base = (uint32_t)num;
	return 0;
}

/* CT_BOOL: JSON true/false, or true/1/yes/on and false/0/no/off as a flag. */
static int opt_set_bool(struct agent_options *o, const struct config_opt *d,
                        const struct opt_value *v, char *err, size_t errlen)
{
	char q[QBUF];
	bool *slot = (bool *)((char *)o + d->off);
	const char *s = v->s;
	if (v->from_json) {
		if (!json_object_is_type(v->jv, json_type_boolean)) {
			set_err(err, errlen, "%s: expected true or false, got %s", v->where,
			        json_show(q, v->jv));
			return -EINVAL;
		}
		*slot = json_object_get_boolean(v->jv);
	} else if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") ||
	           !strcasecmp(s, "on")) {
		*slot = true;
	} else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") ||
	           !strcasecmp(s, "off")) {
		*slot = false;
	} else {
		set_err(err, errlen, "%s: expected true or false, got %s", v->where,
		        quote_cstr(q, s));
		return -EINVAL;
	}
	return 0;
}

/* CT_RATIO: a number from 0.1 to 64 (JSON integer or fraction, or text). */
static int opt_set_ratio(struct agent_options *o, const struct config_opt *d,
                         const struct opt_value *v, char *err, size_t errlen)
{
	char q[QBUF];
	double ratio = -1;
	if (v->from_json) {
		if (json_object_is_type(v->jv, json_type_double) ||
		    json_object_is_type(v->jv, json_type_int))
			ratio = json_object_get_double(v->jv);
	} else {
		char *end;
		ratio = strtod(v->s, &end);
		if (v->s[0] == '\0' || *end != '\0')
			ratio = -1;
	}
	if (!(ratio >= 0.1 && ratio <= 64.0)) {
		set_err(err, errlen, "%s: expected a number from 0.1 to 64, got %s", v->where,
		        opt_given(q, v));
		return -EINVAL;
	}
	*(double *)((char *)o + d->off) = ratio;
	return 0;
}

/*
 * Sets option d from either a JSON value (from_json: jv, which is NULL for
 * JSON null) or a flag's text (s). `where` is what errors name:
 * "swim.probe_interval_ms" or "--probe-interval-ms". Errors quote the value
 * back as given. A list option (seeds, labels) given in the file replaces
 * the list; a flag adds to it.
 */
static int opt_set(struct agent_options *o, const struct config_opt *d, const char *where,
                   bool from_json, struct json_object *jv, const char *s, char *err, size_t errlen)
{
	const struct opt_value v = {.where = where, .from_json = from_json, .jv = jv, .s = s};
	switch (d->type) {
	case CT_NAME:
	case CT_ADDR:
	case CT_HOST:
	case CT_STRING:
	case CT_LOGLEVEL: {
		const char *str;
		int rc = opt_text(&v, &str, err, errlen);
		return rc < 0 ? rc : opt_set_text(o, d, where, str, err, errlen);
	}
	case CT_PORT:
	case CT_U32:
		return opt_set_integer(o, d, &v, err, errlen);
	case CT_BOOL:
		return opt_set_bool(o, d, &v, err, errlen);
	case CT_RATIO:
		return opt_set_ratio(o, d, &v, err, errlen);
	case CT_LABELS:
		if (!from_json)
			return labels_add(o, where, s, err, errlen);
		str_list_clear(o->labels, &o->n_labels);
		return opt_set_string_list(o, where, jv, "KEY=VALUE", labels_add, err, errlen);
	case CT_SEEDS:
		if (!from_json)
			return seeds_add_list(o, where, s, err, errlen);
		str_list_clear(o->seeds, &o->n_seeds);
		return opt_set_string_list(o, where, jv, "HOST:PORT", seeds_add, err, errlen);
	}
	return -EINVAL;
}

/* ---- defaults ----------------------------------------------------------- */

void agent_options_init(struct agent_options *o)
{
	memset(o, 0, sizeof(*o));
	o->bind = xstrdup("127.0.0.1");
	o->peer_port = 7946;
	o->rpc_port = 7947;
	o->data_dir = xstrdup("/var/lib/meshvisor");
	o->log_level = MV_LOG_INFO;
	o->libvirt_uri = xstrdup("test:///default");
	o->witness = false;
	o->max_peer_connections = 64;
	o->peer_idle_timeout_ms = 60000;
	o->leave_timeout_ms = 3000;
	swim_config_default(&o->swim);
	o->cpu_overcommit = 4.0;
	o->memory_overcommit = 1.0;
	o->memory_reserved_mib = 1024;
	o->state_load_step = 1.0;
	o->state_load_step_pct = 50;
	o->state_republish_s = 0;
	o->mig_max_incoming = 2;
	o->mig_max_outgoing = 2;
	o->mig_lease_ms = 30000;
	o->fo_heartbeat_ms = 1000;
	o->fo_fence_after_ms = 10000;
	o->fo_fence_margin_ms = 3000;
	o->fo_replicas = 3;
	o->fo_max_parallel = 4;
	o->fo_restart_attempts = 3;
	o->fo_vm_restarts = 3;
	o->metrics_bind = xstrdup("127.0.0.1");
	o->metrics_port = 7948;
}

void agent_options_free(struct agent_options *o)
{
	if (o == NULL)
		return;
	free(o->config_file);
	free(o->name);
	free(o->bind);
	free(o->advertise);
	free(o->rpc_bind);
	free(o->ca_file);
	free(o->cert_file);
	free(o->key_file);
	free(o->crl_file);
	free(o->data_dir);
	free(o->libvirt_uri);
	free(o->zone);
	free(o->rack);
	free(o->mig_libvirt_uri);
	free(o->mig_stream_uri);
	free(o->metrics_bind);
	free(o->fo_fence_uri);
	free(o->fo_watchdog);
	str_list_clear(o->seeds, &o->n_seeds);
	str_list_clear(o->labels, &o->n_labels);
	memset(o, 0, sizeof(*o));
}

/* ---- the config file ---------------------------------------------------- */

/* Edit distance, for "did you mean". Inputs are short (capped by caller). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[80];
	if (lb >= sizeof(row) / sizeof(row[0]))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void opt_path(char *buf, size_t len, const struct config_opt *d)
{
	if (d->section)
		snprintf(buf, len, "%s.%s", d->section, d->key);
	else
		snprintf(buf, len, "%s", d->key);
}

/* Error for an unknown key, with the nearest known key when it is close. */
static void unknown_key(const char *file, const char *section, const char *key, char *err,
                        size_t errlen)
{
	char q[QBUF], path[160];
	char shown[QBUF + 16];
	if (section)
		snprintf(shown, sizeof(shown), "%s.", section);
	else
		shown[0] = '\0';
	/* the key without surrounding quotes, escaped */
	quote_cstr(q, key);
	size_t ql = strlen(q);
	q[ql - 1] = '\0';
	strncat(shown, q + 1, sizeof(shown) - strlen(shown) - 1);

	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	char cand[N_OPTS + N_SECTIONS][64];
	size_t nc = 0;
	for (size_t i = 0; i < N_OPTS; i++)
		opt_path(cand[nc++], sizeof(cand[0]), &config_opts[i]);
	for (size_t i = 0; i < N_SECTIONS; i++)
		snprintf(cand[nc++], sizeof(cand[0]), "%s", config_sections[i]);
	if (strlen(shown) < 64) {
		for (size_t i = 0; i < nc; i++) {
			size_t dist = edit_distance(shown, cand[i]);
			if (dist < best_d) {
				best_d = dist;
				best = cand[i];
			}
		}
	}
	/* close enough: a typo or two, or the right key in the wrong place */
	if (best && (best_d <= 2 || best_d * 4 <= strlen(best))) {
		snprintf(path, sizeof(path), " (did you mean %s?)", best);
	} else if (best && !section && strlen(key) < 64) {
		/* the key exists inside a section: {"probe_interval_ms": ...} */
		path[0] = '\0';
		for (size_t i = 0; i < N_OPTS; i++)
			if (config_opts[i].section && strcmp(config_opts[i].key, key) == 0)
				snprintf(path, sizeof(path), " (did you mean %s.%s?)",
				         config_opts[i].section, key);
	} else {
		path[0] = '\0';
	}
	set_err(err, errlen, "config %s: %s: unknown key%s", file, shown, path);
}

static const struct config_opt *opt_by_key(const char *section, const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *d = &config_opts[i];
		if (((d->section == NULL && section == NULL) ||
		     (d->section && section && strcmp(d->section, section) == 0)) &&
		    strcmp(d->key, key) == 0)
			return d;
	}
	return NULL;
}

static bool is_section(const char *key)
{
	for (size_t i = 0; i < N_SECTIONS; i++)
		if (strcmp(config_sections[i], key) == 0)
			return true;
	return false;
}

/* Applies every key of one object level. section is NULL for the top. */
static int apply_object(struct agent_options *o, const char *file, const char *section,
                        struct json_object *obj, char *err, size_t errlen)
{
	char inner[512];
	json_object_object_foreach(obj, key, val)
	{
		const struct config_opt *d = opt_by_key(section, key);
		if (d == NULL && section == NULL && is_section(key)) {
			if (!json_object_is_type(val, json_type_object)) {
				char q[QBUF];
				set_err(err, errlen, "config %s: %s: expected an object, got %s",
				        file, key, json_show(q, val));
				return -EINVAL;
			}
			int rc = apply_object(o, file, key, val, err, errlen);
			if (rc < 0)
				return rc;
			continue;
		}
		if (d == NULL) {
			unknown_key(file, section, key, err, errlen);
			return -EINVAL;
		}
		char where[80];
		opt_path(where, sizeof(where), d);
		int rc = opt_set(o, d, where, true, val, NULL, inner, sizeof(inner));
		if (rc < 0) {
			set_err(err, errlen, "config %s: %s", file, inner);
			return rc;
		}
	}
	return 0;
}

/* Reads the whole file (bounded). Returns 0 or -errno with err set. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
	int rc = mv_file_read(path, CONFIG_MAX_FILE, out, outlen);
	if (rc == -EFBIG)
		set_err(err, errlen, "config %s: larger than %d bytes; is this the right file?",
		        path, CONFIG_MAX_FILE);
	else if (rc == -ENOMEM)
		set_err(err, errlen, "config %s: out of memory", path);
	else if (rc < 0)
		set_err(err, errlen, "config %s: cannot open: %s", path, strerror(-rc));
	return rc;
}

int agent_options_load_file(struct agent_options *o, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file(path, &text, &len, err, errlen);
	if (rc < 0)
		return rc;
	if (memchr(text, '\0', len) != NULL) {
		set_err(err, errlen, "config %s: contains a NUL byte; expected a JSON text file",
		        path);
		free(text);
		return -EINVAL;
	}

	struct json_tokener *tok = json_tokener_new();
	if (tok == NULL) {
		free(text);
		set_err(err, errlen, "config %s: out of memory", path);
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* len + 1: the terminating NUL tells json-c the input ends here */
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (root == NULL || jerr != json_tokener_success) {
		size_t end = json_tokener_get_parse_end(tok);
		if (end > len)
			end = len;
		size_t line = 1, col = 1;
		for (size_t i = 0; i < end; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		if (jerr == json_tokener_continue || end >= len)
			set_err(err, errlen, "config %s: invalid JSON: unexpected end of file",
			        path);
		else
			set_err(err, errlen, "config %s:%zu:%zu: invalid JSON: %s", path, line, col,
			        json_tokener_error_desc(jerr));
		json_object_put(root);
		json_tokener_free(tok);
		free(text);
		return -EINVAL;
	}
	json_tokener_free(tok);
	free(text);

	if (!json_object_is_type(root, json_type_object)) {
		set_err(err, errlen, "config %s: expected a JSON object at the top, got %s", path,
		        json_type_word(root));
		json_object_put(root);
		return -EINVAL;
	}

	struct agent_options work;
	options_copy(&work, o);
	rc = apply_object(&work, path, NULL, root, err, errlen);
	json_object_put(root);
	if (rc < 0) {
		agent_options_free(&work);
		return rc;
	}
	agent_options_free(o);
	*o = work;
	return 0;
}

/* ---- flags -------------------------------------------------------------- */

static const struct config_opt *opt_by_flag(const char *flag, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(config_opts[i].flag) == len &&
		    strncmp(config_opts[i].flag, flag, len) == 0)
			return &config_opts[i];
	return NULL;
}

/* One parsed flag: which option (NULL for --config) and its value. */
struct flag_arg {
	const struct config_opt *opt;
	const char *value;
	char name[80]; /* "--probe-interval-ms", for errors */
};

/*
 * First pass: recognise every argument, pair it with its value, find
 * --help and --config. Nothing is applied yet, so a mistake anywhere on the
 * line is reported before the config file is even read.
 */
static int scan_args(int argc, char **argv, struct flag_arg *out, int *n_out, const char **config,
                     bool *help, char *err, size_t errlen)
{
	char q[QBUF];
	*n_out = 0;
	*config = NULL;
	*help = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*help = true;
			return 0;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			set_err(err, errlen, "unexpected argument %s: see 'meshvisor agent --help'",
			        quote_cstr(q, a));
			return -EINVAL;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		bool is_config = nlen == 6 && strncmp(name, "config", 6) == 0;
		const struct config_opt *d = is_config ? NULL : opt_by_flag(name, nlen);
		if (!is_config && d == NULL) {
			char shown[QBUF];
			quote(shown, sizeof(shown), name, nlen);
			shown[strlen(shown) - 1] = '\0';
			set_err(err, errlen, "unknown flag --%s: see 'meshvisor agent --help'",
			        shown + 1);
			return -EINVAL;
		}
		struct flag_arg *f = &out[(*n_out)++];
		f->opt = d;
		snprintf(f->name, sizeof(f->name), "--%.*s", (int)nlen, name);
		if (eq) {
			f->value = eq + 1;
		} else if (d && d->type == CT_BOOL) {
			/* --witness alone means true; "--witness false" is accepted too */
			if (i + 1 < argc &&
			    (strcmp(argv[i + 1], "true") == 0 || strcmp(argv[i + 1], "false") == 0))
				f->value = argv[++i];
			else
				f->value = "true";
		} else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
			f->value = argv[++i];
		} else {
			set_err(err, errlen, "%s: missing value (%s)", f->name,
			        i + 1 < argc
			            ? "the next argument is a flag; use --flag=VALUE for a "
			              "value that starts with --"
			            : "it is the last argument");
			return -EINVAL;
		}
		if (is_config) {
			if (*config) {
				set_err(err, errlen, "--config: given more than once");
				return -EINVAL;
			}
			if (*f->value == '\0') {
				set_err(err, errlen, "--config: expected a file name");
				return -EINVAL;
			}
			*config = f->value;
		}
	}
	return 0;
}

int agent_options_parse_args(struct agent_options *o, int argc, char **argv, char *err,
                             size_t errlen)
{
	if (argc < 1) {
		set_err(err, errlen, "no arguments");
		return -EINVAL;
	}
	struct flag_arg *flags = calloc((size_t)argc, sizeof(*flags));
	if (flags == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int n = 0;
	const char *config = NULL;
	bool help = false;
	int rc = scan_args(argc, argv, flags, &n, &config, &help, err, errlen);
	if (rc < 0 || help) {
		free(flags);
		if (help) {
			agent_options_usage(stdout);
			return 1;
		}
		return rc;
	}

	struct agent_options work;
	options_copy(&work, o);
	if (config) {
		rc = agent_options_load_file(&work, config, err, errlen);
		if (rc < 0)
			goto fail;
		replace_str(&work.config_file, config);
	}
	bool seeds_from_flags = false;
	for (int i = 0; i < n; i++) {
		const struct config_opt *d = flags[i].opt;
		if (d == NULL)
			continue; /* --config, done above */
		/* --join replaces the file's seed list; repeated --join add up */
		if (d->type == CT_SEEDS && !seeds_from_flags) {
			str_list_clear(work.seeds, &work.n_seeds);
			seeds_from_flags = true;
		}
		rc = opt_set(&work, d, flags[i].name, false, NULL, flags[i].value, err, errlen);
		if (rc < 0)
			goto fail;
	}
	free(flags);
	agent_options_free(o);
	*o = work;
	return 0;
fail:
	free(flags);
	agent_options_free(&work);
	return rc;
}

/* ---- final checks ------------------------------------------------------- */

/* The settings without a default: the node's name and its TLS files. */
static int options_check_identity(const struct agent_options *o, char *err, size_t errlen)
{
	if (o->name == NULL) {
		set_err(err, errlen,
		        "name: required (set \"name\" in the config file or --name); it must "
		        "equal the CN of the node certificate");
		return -EINVAL;
	}
	if (o->ca_file == NULL || o->cert_file == NULL || o->key_file == NULL) {
		const char *which = o->ca_file == NULL     ? "ca"
		                    : o->cert_file == NULL ? "cert"
		                                           : "key";
		set_err(err, errlen,
		        "tls.%s: required (set \"tls\": {\"%s\": ...} in the config file or --%s)",
		        which, which, which);
		return -EINVAL;
	}
	return 0;
}

/* Same port on addresses that overlap: both listeners cannot bind. A host
 * name is compared as written here, and again once resolved
 * (agent_options_resolve). */
static int options_check_ports(const struct agent_options *o, char *err, size_t errlen)
{
	if (o->peer_port != o->rpc_port)
		return 0;
	unsigned char a[16] = {0}, b[16] = {0};
	int fa = mv_addr_family(o->bind, a), fb = mv_addr_family(o->rpc_bind, b);
	bool same = fa != 0 ? fa == fb && memcmp(a, b, fa == AF_INET ? 4 : 16) == 0
	                    : strcmp(o->bind, o->rpc_bind) == 0;
	if (same || mv_addr_is_wildcard(o->bind) || mv_addr_is_wildcard(o->rpc_bind)) {
		set_err(err, errlen,
		        "rpc_port: %u is also the peer_port on %s; the peer and RPC ports "
		        "must differ when they share an IP",
		        (unsigned)o->rpc_port, o->bind);
		return -EINVAL;
	}
	return 0;
}

/* Fills in advertise and rpc_bind from bind, and checks that peers can
 * reach the advertised address and that both listeners can bind. */
static int options_settle_addresses(struct agent_options *o, char *err, size_t errlen)
{
	if (o->bind == NULL) {
		set_err(err, errlen, "bind: required");
		return -EINVAL;
	}
	if (o->advertise == NULL) {
		if (mv_addr_is_wildcard(o->bind)) {
			set_err(
			    err, errlen,
			    "advertise: required when bind is the wildcard %s (set the IP other "
			    "nodes reach this host at, --advertise)",
			    o->bind);
			return -EINVAL;
		}
		o->advertise = xstrdup(o->bind);
	} else if (mv_addr_is_wildcard(o->advertise)) {
		set_err(err, errlen,
		        "advertise: %s is a wildcard; expected the IP other nodes reach this host "
		        "at",
		        o->advertise);
		return -EINVAL;
	}
	if (o->rpc_bind == NULL)
		o->rpc_bind = xstrdup(o->bind);

	return options_check_ports(o, err, errlen);
}

/* SWIM timings that only make sense together. */
static int options_check_swim(const struct agent_options *o, char *err, size_t errlen)
{
	if (o->swim.probe_timeout_ms >= o->swim.probe_interval_ms) {
		set_err(err, errlen,
		        "swim.probe_timeout_ms: %u must be below swim.probe_interval_ms (%u), so "
		        "that indirect probes fit in one protocol period",
		        (unsigned)o->swim.probe_timeout_ms, (unsigned)o->swim.probe_interval_ms);
		return -EINVAL;
	}
	if (o->swim.suspicion_max_mult < 1) {
		set_err(err, errlen, "swim.suspicion_max_mult: expected at least 1, got %u",
		        (unsigned)o->swim.suspicion_max_mult);
		return -EINVAL;
	}
	return 0;
}

/* Failover timings: a healthy host never fences itself, and a restart
 * elsewhere comes after the fence. */
static int options_check_failover_timing(const struct agent_options *o, char *err, size_t errlen)
{
	if (o->fo_heartbeat_ms * 3 > o->fo_fence_after_ms) {
		set_err(err, errlen,
		        "failover.fence_after_ms: %u must be at least three heartbeats "
		        "(failover.heartbeat_ms %u x 3), or a healthy host would fence itself",
		        (unsigned)o->fo_fence_after_ms, (unsigned)o->fo_heartbeat_ms);
		return -EINVAL;
	}
	/* The failover core's rule (1) (fo.c, "WHY NO VM RUNS TWICE"): a
	 * host cut off at q fences itself (or its watchdog, petted until then
	 * with a timeout of the margin, resets it) by q + quorate window + F,
	 * while targets that learned the plan after q restart its VMs F +
	 * margin after learning it: only margin >= the quorate window keeps
	 * the restart after the fence. */
	uint32_t quorate_ms = agent_options_quorate_ms(o);
	if (o->fo_fence_margin_ms < quorate_ms) {
		set_err(
		    err, errlen,
		    "failover.fence_margin_ms: %u is below the quorate window of %u ms "
		    "(heartbeat_ms %u, fence_after_ms %u); it must be at least that, or a restart "
		    "could overlap a host whose watchdog has not fired yet",
		    (unsigned)o->fo_fence_margin_ms, (unsigned)quorate_ms,
		    (unsigned)o->fo_heartbeat_ms, (unsigned)o->fo_fence_after_ms);
		return -EINVAL;
	}
	return 0;
}

/* The watchdog's timeout is the margin (at most F) less the slack, in
 * whole seconds, at least 2, more than two pets (agent/daemon/ha.c, "the
 * watchdog"; the device itself is checked at start: watchdog.c). */
static int options_check_watchdog(const struct agent_options *o, char *err, size_t errlen)
{
	if (o->fo_watchdog == NULL || o->fo_watchdog[0] == '\0')
		return 0;
	uint32_t limit = o->fo_fence_margin_ms < o->fo_fence_after_ms ? o->fo_fence_margin_ms
	                                                              : o->fo_fence_after_ms;
	uint32_t t_ms = mv_watchdog_wanted_s(limit) * 1000u;
	if (t_ms < MV_WATCHDOG_MIN_TIMEOUT_S * 1000u) {
		set_err(err, errlen,
		        "failover.fence_margin_ms: %u (or fence_after_ms %u) is below %u, the "
		        "least that failover.watchdog (%s) can take: its timeout is the margin "
		        "less %u ms, in whole seconds, at least %u",
		        (unsigned)o->fo_fence_margin_ms, (unsigned)o->fo_fence_after_ms,
		        MV_WATCHDOG_MIN_TIMEOUT_S * 1000u + MV_WATCHDOG_SLACK_MS, o->fo_watchdog,
		        MV_WATCHDOG_SLACK_MS, MV_WATCHDOG_MIN_TIMEOUT_S);
		return -EINVAL;
	}
	if ((uint64_t)o->fo_heartbeat_ms * 2 >= t_ms) {
		set_err(err, errlen,
		        "failover.fence_margin_ms: %u gives failover.watchdog (%s) a timeout of "
		        "%u s, which heartbeat_ms %u pets too seldom (the pet period must be below "
		        "half the timeout): raise fence_margin_ms (and fence_after_ms) to at least "
		        "%u",
		        (unsigned)o->fo_fence_margin_ms, o->fo_watchdog, (unsigned)(t_ms / 1000u),
		        (unsigned)o->fo_heartbeat_ms,
		        (unsigned)(((uint64_t)o->fo_heartbeat_ms * 2 / 1000u + 1) * 1000u +
		                   MV_WATCHDOG_SLACK_MS));
		return -EINVAL;
	}
	return 0;
}

int agent_options_validate(struct agent_options *o, char *err, size_t errlen)
{
	int rc;
	if ((rc = options_check_identity(o, err, errlen)) < 0 ||
	    (rc = options_settle_addresses(o, err, errlen)) < 0 ||
	    (rc = options_check_swim(o, err, errlen)) < 0)
		return rc;
	if (o->data_dir == NULL || o->libvirt_uri == NULL) {
		set_err(err, errlen, "%s: required",
		        o->data_dir == NULL ? "data_dir" : "libvirt_uri");
		return -EINVAL;
	}
	if ((rc = options_check_failover_timing(o, err, errlen)) < 0)
		return rc;
	return options_check_watchdog(o, err, errlen);
}

/* Host names in bind, advertise and rpc_bind are resolved here, once,
 * before the agent's loop runs (agent_main calls this between
 * agent_options_validate and agent_start), with the blocking resolver
 * rather than uv_getaddrinfo: nothing is served yet (no listener, no peer,
 * no timer), so a slow resolver delays only the start, and the agent
 * could not listen before it has the address anyway; uv_getaddrinfo
 * would run the loop just to wait for the same answer. Once serving, the
 * addresses never change: a SIGHUP reload parses and validates the config
 * but never resolves, and peers learn the advertised address by gossip,
 * as an IP literal. They dial that IP and check the certificate's CN
 * (the node name), as for any member; the DNS name only said which IP. */
/* Whether seed (HOST:PORT) is on this host: a loopback literal, or the
 * name localhost (or a name under .localhost, RFC 6761). */
static bool seed_is_local(const char *seed)
{
	char host[256];
	unsigned port;
	if (!seed_parse(seed, host, sizeof(host), &port))
		return false;
	if (mv_addr_family(host, NULL) != 0)
		return mv_addr_is_loopback(host);
	size_t n = strlen(host);
	return strcasecmp(host, "localhost") == 0 ||
	       (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0);
}

/* A bind or advertise host name that resolved to a loopback address
 * (Debian's /etc/hosts maps the host's own name to 127.0.1.1): with a
 * seed on another host, the other nodes could never reach this one —
 * refused; with no seed, or only seeds on this host, said once. */
static int check_loopback_name(const struct agent_options *o, const char *key, const char *name,
                               const char *ip, char *err, size_t errlen)
{
	if (!mv_addr_is_loopback(ip))
		return 0;
	for (size_t s = 0; s < o->n_seeds; s++)
		if (!seed_is_local(o->seeds[s])) {
			set_err(
			    err, errlen,
			    "%s: host name '%s' resolves to the loopback address %s, but seed %s "
			    "is on another host: no other node could reach this one (a Debian "
			    "/etc/hosts maps the host's own name to 127.0.1.1); give the IP "
			    "address other nodes reach this host at",
			    key, name, ip, o->seeds[s]);
			return -EINVAL;
		}
	MV_WARN("agent",
	        "host name resolves to loopback key=%s name=%s addr=%s; only nodes on this host "
	        "can reach this one",
	        key, name, ip);
	return 0;
}

int agent_options_resolve(struct agent_options *o, char *err, size_t errlen)
{
	struct {
		const char *key;
		char **slot;
	} hosts[] = {{"bind", &o->bind},
	             {"advertise", &o->advertise},
	             {"rpc_bind", &o->rpc_bind},
	             {"metrics.bind", &o->metrics_bind}};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		char *name = *hosts[i].slot;
		if (name == NULL || mv_addr_family(name, NULL) != 0)
			continue;
		char ip[64], why[400];
		if (mv_resolve_host(name, ip, sizeof(ip), why, sizeof(why)) != 0) {
			set_err(err, errlen, "%s: %s", hosts[i].key, why);
			return -ENOENT;
		}
		MV_INFO("agent", "host name resolved key=%s name=%s addr=%s", hosts[i].key, name,
		        ip);
		if (i < 2) { /* bind, advertise: the peer addresses (rpc_bind may be local) */
			int rc = check_loopback_name(o, hosts[i].key, name, ip, err, errlen);
			if (rc < 0)
				return rc;
		}
		free(name);
		*hosts[i].slot = xstrdup(ip);
	}
	if (o->advertise != NULL && mv_addr_is_wildcard(o->advertise)) {
		set_err(err, errlen,
		        "advertise: resolves to the wildcard %s; expected the IP other nodes reach "
		        "this host at",
		        o->advertise);
		return -EINVAL;
	}
	return options_check_ports(o, err, errlen);
}

uint32_t agent_options_quorate_ms(const struct agent_options *o)
{
	/* The core's default window (3 s), at most half of F so that a host
	 * loses quorum well before it fences, and at least three heartbeats
	 * so that one lost acknowledgement does not cost quorum. */
	struct fo_config d;
	fo_config_default(&d);
	uint32_t q = d.quorate_ms;
	if (q > o->fo_fence_after_ms / 2)
		q = o->fo_fence_after_ms / 2;
	if (q < 3 * o->fo_heartbeat_ms)
		q = 3 * o->fo_heartbeat_ms;
	return q;
}

/* ---- usage -------------------------------------------------------------- */

void agent_options_usage(FILE *out)
{
	fprintf(out,
	        "usage: meshvisor agent [--config FILE] [flags]\n"
	        "\n"
	        "Runs the node agent. Settings come from defaults, then the JSON file given\n"
	        "with --config, then flags (flags win, whatever their order). Each flag has a\n"
	        "config file key; flags take \"--flag VALUE\" or \"--flag=VALUE\".\n"
	        "\n"
	        "  %-28s %s\n",
	        "--config FILE", "JSON config file (keys below, strict JSON)");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct config_opt *d = &config_opts[i];
		const char *meta = "";
		switch (d->type) {
		case CT_NAME:
			meta = " NAME";
			break;
		case CT_ADDR:
			meta = " IP";
			break;
		case CT_HOST:
			meta = " HOST";
			break;
		case CT_PORT:
			meta = " PORT";
			break;
		case CT_U32:
			meta = " N";
			break;
		case CT_BOOL:
			meta = "";
			break;
		case CT_STRING:
			meta = d->section ? " FILE" : " VALUE";
			break;
		case CT_LOGLEVEL:
			meta = " LEVEL";
			break;
		case CT_SEEDS:
			meta = " IP:PORT";
			break;
		case CT_LABELS:
			meta = " KEY=VALUE";
			break;
		case CT_RATIO:
			meta = " RATIO";
			break;
		}
		if (d->section && strcmp(d->section, "swim") == 0 && i > 0 &&
		    (config_opts[i - 1].section == NULL ||
		     strcmp(config_opts[i - 1].section, "swim") != 0))
			fprintf(out, "\n  SWIM timings (config file section \"swim\"):\n");
		char left[64], path[80];
		snprintf(left, sizeof(left), "--%s%s", d->flag, meta);
		opt_path(path, sizeof(path), d);
		if (d->type == CT_U32)
			fprintf(out, "  %-28s %s [%s, %u..%u]\n", left, d->help, path,
			        (unsigned)d->min, (unsigned)d->max);
		else
			fprintf(out, "  %-28s %s [%s]\n", left, d->help, path);
	}
	fprintf(out,
	        "  %-28s %s\n"
	        "\n"
	        "Required: name, tls.ca, tls.cert, tls.key; advertise when bind is 0.0.0.0 or ::.\n"
	        "SIGHUP reloads certificates, the CRL and log_level; SIGTERM leaves the cluster "
	        "gracefully.\n",
	        "--help", "print this help");
}
