/*
 * cli_client.c — `meshvisor members | status | join | leave | ...`: a
 * small blocking RPC client.
 *
 * It opens one TCP connection to the agent's RPC port, runs the TLS session
 * (tls.h, over memory BIOs) with blocking send/recv and a deadline, sends
 * one framed request and waits for the response with the same id. Every
 * failure is turned into one sentence on stderr that says what to check:
 * the address, the certificate files, or what the agent refused and why.
 *
 * Whom it talks to. Every agent holds a node certificate of the same
 * cluster CA, so "signed by our CA" only says that some agent answered.
 * The client also requires the agent certificate's subjectAltName to list
 * what it dialed: the IP address of --addr, or its host name (resolved,
 * each address tried in turn), or the name given with --server-name. An
 * impostor that answers at the agent's address with another node's
 * certificate is refused before the request leaves (tls_conn_expect_host).
 *
 * Flags override environment variables (MESHVISOR_ADDR, MESHVISOR_CA,
 * MESHVISOR_CERT, MESHVISOR_KEY, MESHVISOR_SERVER_NAME), as in consul and
 * serf, so a shell set up once needs no flags.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_client.h"
#include "envelope.h"
#include "frame.h"
#include "tls.h"

#define CLI_DEFAULT_ADDR "127.0.0.1:7947"
#define CLI_DEFAULT_TIMEOUT_MS 5000

struct cli_opts {
	const char *cmd;
	const char *addr;
	const char *server_name; /* --server-name: checked instead of addr's host */
	const char *ca, *cert, *key;
	bool json;
	int timeout_ms;
	char **args; /* positional arguments (join seeds, vm subcommand and name) */
	int n_args;
	const char *node;     /* --node */
	const char *xml_file; /* --xml */
	int priority;         /* --priority */
	bool has_priority;
	const char *group; /* --group (vm set-ha): anti-affinity group, "" clears */
	bool no_start;     /* --no-start */
	const char *to;    /* --to (migrate) */
	char *same[4];     /* --same KEY (migrate), repeatable */
	size_t n_same;
	bool abort_op;     /* --abort (migrate) */
	uint32_t parallel; /* --parallel (drain) */
	uint32_t backlog;  /* --backlog (events) */
	bool has_backlog;
	bool yes;           /* --yes (force-leave) */
	bool majority_gone; /* --majority-is-gone (force-leave) */
	char confirm[256];  /* force-leave: what the operator typed */
	size_t n_events;    /* events printed so far */
};

struct cli_conn {
	int fd;
	struct tls_conn *tls;
	struct tls_ctx *ctx;
	struct frame_decoder dec;
	int64_t deadline;
	const char *addr;
	int timeout_ms;
	bool stream; /* events: once the TLS handshake is done, wait for ever */
	char err[768];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *cli_synopsis(const char *cmd)
{
	static const struct {
		const char *cmd, *synopsis;
	} syn[] = {
	    {"members", ""},
	    {"status", ""},
	    {"join", " SEED_ADDR..."},
	    {"leave", ""},
	    {"nodes", ""},
	    {"node", " NAME"},
	    {"vms", " [--node NAME]"},
	    {"migrate", " VM [--to HOST] [--same KEY]... | --abort VM\n"
	                "\n"
	                "  Moves VM (name or UUID) from any node: its host negotiates with the\n"
	                "  target (--to, or the best host that accepts) and live-migrates it\n"
	                "  (offline: stop, define, start, on hypervisors that cannot migrate).\n"
	                "  --same zone (or rack, or any label key) keeps it among hosts with the\n"
	                "  same value as its current host. Progress is shown while it runs; the\n"
	                "  exit status is the outcome"},
	    {"migrations", "\n\n  running and recent migrations across the cluster"},
	    {"drain", " HOST [--parallel N]\n"
	              "\n"
	              "  Marks HOST draining (no new placements) and moves every VM off it,\n"
	              "  N at a time (default: its outgoing limit); reports each VM"},
	    {"undrain", " HOST\n\n  returns a drained host to service"},
	    {"events", " [--backlog N]\n"
	               "\n"
	               "  Streams cluster events as that node sees them (membership changes,\n"
	               "  quorum lost and regained, fencing, failover plans, VM restarts, HA\n"
	               "  VMs down and recovered), one\n"
	               "  line each: local time, kind, host, VM, what happened. The last N\n"
	               "  events come first (default 10, 0: only new ones); then it runs until\n"
	               "  interrupted or the agent closes the connection. --json: one object\n"
	               "  per line"},
	    {"failovers", "\n"
	                  "\n"
	                  "  Past and running recoveries as that node knows them: the host and\n"
	                  "  incarnation, why the recovery opened (declared dead; came back\n"
	                  "  without its HA VMs after a crash, reboot or self-fence; fenced\n"
	                  "  itself), round, phase, the coordinator whose plan was chosen, how\n"
	                  "  long detection -> chosen plan -> fence -> last restart took, and\n"
	                  "  each HA VM's outcome (target, ok or failed, restart time)"},
	    {"ha", "\n"
	           "\n"
	           "  Lists every HA VM that should run (desired state running) and runs on\n"
	           "  no alive host: its host, how long it has been down, why, and what the\n"
	           "  cluster is doing about it. Checks that every HA VM could be restarted\n"
	           "  after the loss of any one host (from gossiped capacity), and shows the\n"
	           "  voting set and whether that node has quorum (a node without quorum\n"
	           "  may be cut off: its view may be stale; ask another).\n"
	           "  Exit status 1 if an HA VM that should run does not, or if the loss\n"
	           "  of some one host would leave HA VMs without room; 0 otherwise"},
	    {"force-leave",
	     " NODE [--yes] [--majority-is-gone]\n"
	     "\n"
	     "  Removes a dead host from the voting set so that the remaining\n"
	     "  majority shrinks. Only for a host that is gone for good: asks you to\n"
	     "  type its name to confirm (--yes: do not ask, required when stdin is\n"
	     "  not a terminal). The node asked refuses unless it hears a majority of\n"
	     "  its voting set: one cut off on the minority side of a partition would\n"
	     "  otherwise decide failovers alone while the other side does too.\n"
	     "  --majority-is-gone: you have verified that the hosts that node does\n"
	     "  not hear are powered off for good (the majority died): remove anyway\n"
	     "  (logged as an override)"},
	    {"vm", " NAME|UUID\n"
	           "       meshvisor vm create --xml FILE [--node NAME] [--no-start]\n"
	           "       meshvisor vm start|shutdown|destroy|undefine NAME|UUID\n"
	           "       meshvisor vm set-ha NAME|UUID on|off [--priority N] [--group G]\n"
	           "\n"
	           "  vm create places the VM on the host with the most room that fits it\n"
	           "  (or on --node), defines it and starts it (--no-start: define only).\n"
	           "  The other operations go to whichever host owns the VM.\n"
	           "  set-ha marks a VM for restart elsewhere if its host dies (priority\n"
	           "  0..1000, higher restarts first); VMs of one --group (anti-affinity)\n"
	           "  are never restarted onto one host (--group \"\" clears it).\n"
	           "  start, shutdown, destroy, create and set-ha on also set the VM's\n"
	           "  desired state (running or stopped), which the cluster keeps an HA\n"
	           "  VM at; an HA VM starts only on a host with quorum"},
	};
	for (size_t i = 0; i < sizeof(syn) / sizeof(syn[0]); i++)
		if (strcmp(syn[i].cmd, cmd) == 0)
			return syn[i].synopsis;
	return "";
}

static void cli_usage(FILE *out, const char *cmd)
{
	fprintf(out,
	        "usage: meshvisor %s%s [options]\n"
	        "\n"
	        "  --addr HOST:PORT   agent RPC address: IP or host name (env MESHVISOR_ADDR,\n"
	        "                     default %s); the agent's certificate must list\n"
	        "                     HOST among its IP addresses or DNS names\n"
	        "  --server-name NAME check NAME (an IP address or DNS name) in the agent's\n"
	        "                     certificate instead of HOST (env MESHVISOR_SERVER_NAME)\n"
	        "  --ca FILE          cluster CA certificate (env MESHVISOR_CA)\n"
	        "  --cert FILE        your operator or viewer certificate (env MESHVISOR_CERT)\n"
	        "  --key FILE         its private key (env MESHVISOR_KEY)\n"
	        "  --json             machine-readable output\n"
	        "  --timeout MS       give up after this long (default %d)\n",
	        cmd, cli_synopsis(cmd), CLI_DEFAULT_ADDR, CLI_DEFAULT_TIMEOUT_MS);
}

/* The flags that take no value. Returns false if flag is not one of them. */
static bool cli_parse_switch(struct cli_opts *o, const char *flag)
{
	if (strcmp(flag, "--json") == 0)
		o->json = true;
	else if (strcmp(flag, "--no-start") == 0)
		o->no_start = true;
	else if (strcmp(flag, "--abort") == 0)
		o->abort_op = true;
	else if (strcmp(flag, "--yes") == 0)
		o->yes = true;
	else if (strcmp(flag, "--majority-is-gone") == 0)
		o->majority_gone = true;
	else
		return false;
	return true;
}

/* The flags whose value is any string: where the value goes, or NULL if
 * flag is not one of them. */
static const char **cli_string_flag_slot(struct cli_opts *o, const char *flag)
{
	if (strcmp(flag, "--addr") == 0)
		return &o->addr;
	if (strcmp(flag, "--server-name") == 0)
		return &o->server_name;
	if (strcmp(flag, "--ca") == 0)
		return &o->ca;
	if (strcmp(flag, "--cert") == 0)
		return &o->cert;
	if (strcmp(flag, "--key") == 0)
		return &o->key;
	if (strcmp(flag, "--node") == 0)
		return &o->node;
	if (strcmp(flag, "--xml") == 0)
		return &o->xml_file;
	if (strcmp(flag, "--to") == 0)
		return &o->to;
	return NULL;
}

/* Whether s (NULL: no value given) is a whole decimal number from lo to hi. */
static bool cli_parse_number(const char *s, long lo, long hi, long *v)
{
	if (s == NULL || s[0] == '\0')
		return false;
	char *end;
	*v = strtol(s, &end, 10);
	return *end == '\0' && *v >= lo && *v <= hi;
}

#define CLI_NOT_A_NUMBER_FLAG (-2)

/* The flags whose value is a number in a range. value is the next argument
 * (NULL if there is none). Returns 0 when the value was taken, an exit code
 * (the message printed) when it is wrong, or CLI_NOT_A_NUMBER_FLAG. */
static int cli_parse_number_flag(struct cli_opts *o, const char *flag, const char *value)
{
	long v;
	if (strcmp(flag, "--backlog") == 0) {
		if (!cli_parse_number(value, 0, 10000, &v)) {
			fprintf(stderr,
			        "meshvisor %s: --backlog: expected a number from 0 to 10000\n",
			        o->cmd);
			return CLI_EXIT_USAGE;
		}
		o->backlog = (uint32_t)v;
		o->has_backlog = true;
	} else if (strcmp(flag, "--parallel") == 0) {
		if (!cli_parse_number(value, 1, 64, &v)) {
			fprintf(stderr,
			        "meshvisor %s: --parallel: expected a number from 1 to 64\n",
			        o->cmd);
			return CLI_EXIT_USAGE;
		}
		o->parallel = (uint32_t)v;
	} else if (strcmp(flag, "--priority") == 0) {
		if (!cli_parse_number(value, 0, 1000, &v)) {
			fprintf(
			    stderr,
			    "meshvisor %s: --priority: expected a number from 0 to 1000%s%s%s\n",
			    o->cmd, value ? ", got '" : "", value ? value : "", value ? "'" : "");
			return CLI_EXIT_USAGE;
		}
		o->priority = (int)v;
		o->has_priority = true;
	} else if (strcmp(flag, "--timeout") == 0) {
		if (value == NULL) {
			fprintf(stderr, "meshvisor %s: --timeout needs a value in milliseconds\n",
			        o->cmd);
			return CLI_EXIT_USAGE;
		}
		if (!cli_parse_number(value, 1, 3600000, &v)) {
			fprintf(stderr,
			        "meshvisor %s: --timeout: expected milliseconds from 1 to 3600000, "
			        "got '%s'\n",
			        o->cmd, value);
			return CLI_EXIT_USAGE;
		}
		o->timeout_ms = (int)v;
	} else {
		return CLI_NOT_A_NUMBER_FLAG;
	}
	return 0;
}

/* Parses argv[*i], and its value if it takes one (advancing *i past it).
 * Returns 0, -1 after printing --help, or an exit code (the message
 * printed). */
static int cli_parse_arg(struct cli_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *value = *i + 1 < argc ? argv[*i + 1] : NULL;
	if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
		cli_usage(stdout, o->cmd);
		return -1;
	}
	if (cli_parse_switch(o, a))
		return 0;
	const char **slot = cli_string_flag_slot(o, a);
	if (slot != NULL) {
		if (value == NULL) {
			fprintf(stderr, "meshvisor %s: %s needs a value\n", o->cmd, a);
			return CLI_EXIT_USAGE;
		}
		*slot = value;
		(*i)++;
		return 0;
	}
	int rc = cli_parse_number_flag(o, a, value);
	if (rc != CLI_NOT_A_NUMBER_FLAG) {
		if (rc == 0)
			(*i)++;
		return rc;
	}
	if (strcmp(a, "--same") == 0) {
		if (value == NULL || o->n_same == 4) {
			fprintf(stderr, "meshvisor %s: --same needs a label key (at most 4)\n",
			        o->cmd);
			return CLI_EXIT_USAGE;
		}
		o->same[o->n_same++] = argv[++*i];
	} else if (strcmp(a, "--group") == 0) {
		if (value == NULL) {
			fprintf(stderr,
			        "meshvisor %s: --group: expected a group name "
			        "(letters, digits, '.', '_', '-'; \"\" clears)\n",
			        o->cmd);
			return CLI_EXIT_USAGE;
		}
		o->group = argv[++*i];
	} else if (a[0] == '-' && a[1] == '-') {
		fprintf(stderr, "meshvisor %s: unknown flag %s: see 'meshvisor %s --help'\n",
		        o->cmd, a, o->cmd);
		return CLI_EXIT_USAGE;
	} else {
		o->args[o->n_args++] = argv[*i];
	}
	return 0;
}

static int cli_parse(struct cli_opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->cmd = argv[0];
	o->addr = getenv("MESHVISOR_ADDR");
	o->server_name = getenv("MESHVISOR_SERVER_NAME");
	o->ca = getenv("MESHVISOR_CA");
	o->cert = getenv("MESHVISOR_CERT");
	o->key = getenv("MESHVISOR_KEY");
	o->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	o->args = calloc((size_t)argc, sizeof(char *));
	if (o->args == NULL)
		return CLI_EXIT_FAIL;
	for (int i = 1; i < argc; i++) {
		int rc = cli_parse_arg(o, argc, argv, &i);
		if (rc != 0)
			return rc;
	}
	if (o->addr == NULL || o->addr[0] == '\0')
		o->addr = CLI_DEFAULT_ADDR;
	if (o->server_name != NULL && o->server_name[0] == '\0')
		o->server_name = NULL;
	const char *missing = o->ca == NULL     ? "--ca (or MESHVISOR_CA)"
	                      : o->cert == NULL ? "--cert (or MESHVISOR_CERT)"
	                      : o->key == NULL  ? "--key (or MESHVISOR_KEY)"
	                                        : NULL;
	if (missing != NULL) {
		fprintf(stderr, "meshvisor %s: no certificate given: set %s\n", o->cmd, missing);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

/* ---- blocking transport ---------------------------------------------------- */

static int cli_wait(struct cli_conn *cc, short events)
{
	if (cc->stream && cc->tls != NULL && tls_conn_handshake_done(cc->tls)) {
		struct pollfd p = {.fd = cc->fd, .events = events};
		int rc = poll(&p, 1, -1);
		return rc < 0 ? -errno : 0;
	}
	int64_t left = cc->deadline - mono_ms();
	if (left <= 0)
		return -ETIMEDOUT;
	struct pollfd p = {.fd = cc->fd, .events = events};
	int rc = poll(&p, 1, (int)left);
	if (rc == 0)
		return -ETIMEDOUT;
	return rc < 0 ? -errno : 0;
}

static int cli_flush(struct cli_conn *cc)
{
	char buf[16384];
	size_t n;
	while ((n = tls_conn_take_cipher(cc->tls, buf, sizeof(buf))) > 0) {
		size_t off = 0;
		while (off < n) {
			ssize_t w = send(cc->fd, buf + off, n - off, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				int rc = cli_wait(cc, POLLOUT);
				if (rc < 0)
					return rc;
				continue;
			}
			if (w < 0)
				return -errno;
			off += (size_t)w;
		}
	}
	return 0;
}

int cli_split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *h = addr, *colon, *p;
	size_t n;
	if (addr == NULL)
		return -EINVAL;
	colon = strrchr(addr, ':');
	if (colon == NULL)
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (addr[0] == '[') { /* [IPv6]:PORT */
		if (n < 2 || addr[n - 1] != ']')
			return -EINVAL;
		h = addr + 1;
		n -= 2;
	}
	p = colon + 1;
	long v;
	if (n == 0 || n >= hlen || strlen(p) >= plen || !cli_parse_number(p, 1, 65535, &v) ||
	    p[0] < '0' || p[0] > '9' || memchr(h, '[', n) || memchr(h, ']', n))
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	strcpy(port, p);
	return 0;
}

/* One non-blocking connect to ai, waiting until the deadline. 0 or -errno. */
static int cli_connect_one(struct cli_conn *cc, const struct addrinfo *ai)
{
	cc->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cc->fd < 0)
		return -errno;
	int rc = connect(cc->fd, ai->ai_addr, ai->ai_addrlen);
	if (rc < 0 && errno == EINPROGRESS) {
		rc = cli_wait(cc, POLLOUT);
		if (rc == 0) {
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			getsockopt(cc->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			rc = soerr ? -soerr : 0;
		}
	} else if (rc < 0) {
		rc = -errno;
	}
	if (rc < 0) {
		close(cc->fd);
		cc->fd = -1;
	}
	return rc;
}

/* Resolves o->addr (an IP or a host name), connects to the first address
 * that answers and starts a TLS session that accepts only an agent whose
 * certificate names --server-name or the host dialed. */
static int cli_connect(struct cli_conn *cc, const struct cli_opts *o)
{
	char host[256], port[8], terr[512];
	if (cli_split_addr(o->addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(cc->err, sizeof(cc->err),
		         "invalid agent address '%s': expected HOST:PORT, IP:PORT or [IPv6]:PORT",
		         o->addr);
		return CLI_EXIT_USAGE;
	}
	if (tls_ctx_new(&cc->ctx, false, o->ca, o->cert, o->key, terr, sizeof(terr)) < 0) {
		snprintf(cc->err, sizeof(cc->err), "cannot use the certificate: %s", terr);
		return CLI_EXIT_FAIL;
	}
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		snprintf(cc->err, sizeof(cc->err), "cannot resolve the agent address '%s': %s",
		         host, gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		return CLI_EXIT_FAIL;
	}
	int rc = -EHOSTUNREACH, tried = 0;
	for (const struct addrinfo *ai = res; ai != NULL && cc->fd < 0; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		tried++;
		rc = cli_connect_one(cc, ai);
		if (rc == -ETIMEDOUT)
			break; /* the deadline is spent */
	}
	freeaddrinfo(res);
	if (cc->fd < 0) {
		snprintf(cc->err, sizeof(cc->err), "cannot reach the agent at %s%s: %s%s", o->addr,
		         tried > 1 ? " (tried each of its addresses)" : "", strerror(-rc),
		         rc == -ECONNREFUSED ? " (is it running, and is this its RPC port?)" : "");
		return CLI_EXIT_FAIL;
	}
	cc->tls = tls_conn_new(cc->ctx, NULL, TLS_ROLE_NODE, NULL);
	if (cc->tls == NULL ||
	    tls_conn_expect_host(cc->tls, o->server_name ? o->server_name : host) < 0) {
		snprintf(cc->err, sizeof(cc->err), "cannot create a TLS session");
		return CLI_EXIT_FAIL;
	}
	frame_decoder_init(&cc->dec, FRAME_MAX);
	return 0;
}

static void cli_close(struct cli_conn *cc)
{
	if (cc->tls != NULL)
		tls_conn_free(cc->tls);
	if (cc->ctx != NULL)
		tls_ctx_free(cc->ctx);
	if (cc->fd >= 0)
		close(cc->fd);
	frame_decoder_close(&cc->dec);
}

static void cli_tls_failed(struct cli_conn *cc)
{
	snprintf(cc->err, sizeof(cc->err), "TLS with the agent at %s failed: %s", cc->addr,
	         tls_conn_error(cc->tls));
}

/* What cli_call does with each progress frame of a long operation. */
typedef void (*cli_progress_fn)(const Mv__RpcResponse *r, void *arg);

/* Encodes req into one frame and sends it. */
static int cli_send_request(struct cli_conn *cc, Mv__RpcRequest *req)
{
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.body_case = MV__ENVELOPE__BODY_REQUEST;
	env.request = req;
	uint8_t *frame;
	size_t flen;
	if (envelope_encode_frame(&env, &frame, &flen) < 0) {
		snprintf(cc->err, sizeof(cc->err), "cannot encode the request");
		return CLI_EXIT_FAIL;
	}
	int rc = tls_conn_write(cc->tls, frame, flen);
	free(frame);
	if (rc < 0 || cli_flush(cc) < 0) {
		cli_tls_failed(cc);
		return CLI_EXIT_FAIL;
	}
	return 0;
}

/* Decodes the response frames in plain[0..len) (a frame may span calls).
 * Sets *out and *done on the final response to request id; hands progress
 * frames to on_progress and extends the deadline for each. Returns 0 or
 * CLI_EXIT_FAIL (cc->err says why). */
static int cli_take_responses(struct cli_conn *cc, uint64_t id, const uint8_t *plain, size_t len,
                              Mv__Envelope **out, bool *done, cli_progress_fn on_progress,
                              void *arg)
{
	const uint8_t *payload;
	size_t plen;
	int frc;
	while ((frc = frame_decoder_next(&cc->dec, &plain, &len, &payload, &plen)) == 1) {
		const char *why;
		if (envelope_decode(payload, plen, out, &why) < 0) {
			snprintf(cc->err, sizeof(cc->err), "the agent sent a bad response: %s",
			         why);
			return CLI_EXIT_FAIL;
		}
		if ((*out)->body_case != MV__ENVELOPE__BODY_RESPONSE ||
		    (*out)->response->id != id) {
			envelope_free(*out);
			snprintf(cc->err, sizeof(cc->err),
			         "the agent answered something other than our request");
			return CLI_EXIT_FAIL;
		}
		if (!(*out)->response->more) {
			*done = true;
			return 0;
		}
		if (on_progress != NULL)
			on_progress((*out)->response, arg);
		envelope_free(*out);
		*out = NULL;
		int64_t quiet = cc->timeout_ms > 60000 ? cc->timeout_ms : 60000;
		cc->deadline = mono_ms() + quiet;
	}
	if (frc < 0) {
		snprintf(cc->err, sizeof(cc->err), "the agent sent an invalid frame");
		return CLI_EXIT_FAIL;
	}
	return 0;
}

/* The agent closed the socket: says why, as far as the TLS state tells. */
static void cli_explain_close(struct cli_conn *cc)
{
	/* A TLS alert (if any) was already fed. */
	if (cc->stream && !tls_conn_failed(cc->tls) && tls_conn_handshake_done(cc->tls)) {
		snprintf(cc->err, sizeof(cc->err), "the agent at %s closed the event stream",
		         cc->addr);
	} else if (tls_conn_failed(cc->tls)) {
		cli_tls_failed(cc);
	} else if (!tls_conn_handshake_done(cc->tls)) {
		snprintf(cc->err, sizeof(cc->err),
		         "the agent at %s closed the connection during the TLS handshake "
		         "(is this its RPC port, and is your certificate from its cluster CA?)",
		         cc->addr);
	} else {
		snprintf(cc->err, sizeof(cc->err),
		         "the agent at %s closed the connection without answering", cc->addr);
	}
}

/* Sends what TLS has queued (handshake, alerts), waits for the socket until
 * the deadline and feeds what arrives to TLS. Returns 0 (also when the wait
 * was interrupted) or CLI_EXIT_FAIL (cc->err says why). */
static int cli_receive_cipher(struct cli_conn *cc)
{
	char buf[65536];
	if (cli_flush(cc) < 0) {
		cli_tls_failed(cc);
		return CLI_EXIT_FAIL;
	}
	int rc = cli_wait(cc, POLLIN);
	if (rc == -ETIMEDOUT) {
		snprintf(cc->err, sizeof(cc->err), "the agent at %s did not answer within %d ms",
		         cc->addr, cc->timeout_ms);
		return CLI_EXIT_FAIL;
	}
	ssize_t n = recv(cc->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		cli_explain_close(cc);
		return CLI_EXIT_FAIL;
	}
	if (tls_conn_feed(cc->tls, buf, (size_t)n) < 0) {
		cli_flush(cc);
		cli_tls_failed(cc);
		return CLI_EXIT_FAIL;
	}
	return 0;
}

/* Sends one request and returns its final response envelope. Progress
 * frames (more = true) go to on_progress, and each one extends the
 * deadline: a long operation that keeps reporting is not timed out. */
static int cli_call(struct cli_conn *cc, Mv__RpcRequest *req, Mv__Envelope **out,
                    cli_progress_fn on_progress, void *arg)
{
	int rc = cli_send_request(cc, req);
	if (rc != 0)
		return rc;
	uint8_t plain[65536];
	for (;;) {
		ssize_t got = tls_conn_read(cc->tls, plain, sizeof(plain));
		if (got < 0) {
			if (got == -ECONNRESET && tls_conn_error(cc->tls)[0] == '\0')
				snprintf(cc->err, sizeof(cc->err),
				         "the agent at %s closed the connection without answering",
				         cc->addr);
			else
				cli_tls_failed(cc);
			return CLI_EXIT_FAIL;
		}
		bool done = false;
		if (got > 0)
			rc = cli_take_responses(cc, req->id, plain, (size_t)got, out, &done,
			                        on_progress, arg);
		else
			rc = cli_receive_cipher(cc);
		if (rc != 0 || done)
			return rc;
	}
}

/* ---- output ------------------------------------------------------------------------ */

static const char *member_state_name(Mv__MemberState s)
{
	switch (s) {
	case MV__MEMBER_STATE__MEMBER_ALIVE:
		return "alive";
	case MV__MEMBER_STATE__MEMBER_SUSPECT:
		return "suspect";
	case MV__MEMBER_STATE__MEMBER_DEAD:
		return "dead";
	case MV__MEMBER_STATE__MEMBER_LEFT:
		return "left";
	default:
		return "unknown";
	}
}

static void format_since(int64_t unix_ms, char *out, size_t len)
{
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_members(const Mv__MembersReply *mr, bool json)
{
	if (json) {
		json_object *root = json_object_new_object();
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < mr->n_members; i++) {
			const Mv__Member *m = mr->members[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(m->name));
			json_object_object_add(o, "addr", json_object_new_string(m->addr));
			json_object_object_add(o, "state",
			                       json_object_new_string(member_state_name(m->state)));
			json_object_object_add(o, "incarnation",
			                       json_object_new_uint64(m->incarnation));
			json_object_object_add(o, "since_unix_ms",
			                       json_object_new_int64(m->since_unix_ms));
			json_object_object_add(o, "cause", json_object_new_string(m->cause));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "members", arr);
		printf("%s\n", json_object_to_json_string_ext(
				   root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
		return;
	}
	printf("%-20s %-24s %-8s %11s %-20s %s\n", "NAME", "ADDR", "STATE", "INCARNATION", "SINCE",
	       "CAUSE");
	for (size_t i = 0; i < mr->n_members; i++) {
		const Mv__Member *m = mr->members[i];
		char since[32];
		format_since(m->since_unix_ms, since, sizeof(since));
		printf("%-20s %-24s %-8s %11" PRIu64 " %-20s %s\n", m->name, m->addr,
		       member_state_name(m->state), m->incarnation, since, m->cause);
	}
}

static void print_status(const Mv__StatusReply *s, bool json)
{
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(s->name));
		json_object_object_add(o, "version", json_object_new_string(s->version));
		json_object_object_add(o, "peer_addr", json_object_new_string(s->peer_addr));
		json_object_object_add(o, "rpc_addr", json_object_new_string(s->rpc_addr));
		json_object_object_add(o, "started_unix_ms",
		                       json_object_new_int64(s->started_unix_ms));
		json_object_object_add(o, "uptime_ms", json_object_new_uint64(s->uptime_ms));
		json_object_object_add(o, "incarnation", json_object_new_uint64(s->incarnation));
		json_object_object_add(o, "local_health", json_object_new_int(s->local_health));
		json_object_object_add(o, "members_alive", json_object_new_int(s->members_alive));
		json_object_object_add(o, "members_suspect",
		                       json_object_new_int(s->members_suspect));
		json_object_object_add(o, "members_dead", json_object_new_int(s->members_dead));
		json_object_object_add(o, "members_left", json_object_new_int(s->members_left));
		json_object_object_add(o, "libvirt_uri", json_object_new_string(s->libvirt_uri));
		json_object_object_add(o, "libvirt_reachable",
		                       json_object_new_boolean(s->libvirt_reachable));
		json_object_object_add(o, "libvirt_error",
		                       json_object_new_string(s->libvirt_error));
		json_object_object_add(o, "peer_connections",
		                       json_object_new_int(s->peer_connections));
		json_object_object_add(o, "role", json_object_new_string(s->role));
		json_object_object_add(o, "datagrams_in", json_object_new_uint64(s->datagrams_in));
		json_object_object_add(o, "datagrams_out",
		                       json_object_new_uint64(s->datagrams_out));
		json_object_object_add(o, "datagram_auth_failures",
		                       json_object_new_uint64(s->datagram_auth_failures));
		json_object_object_add(o, "datagram_replays",
		                       json_object_new_uint64(s->datagram_replays));
		json_object_object_add(o, "datagram_no_key",
		                       json_object_new_uint64(s->datagram_no_key));
		json_object_object_add(o, "peer_connections_out",
		                       json_object_new_int(s->peer_connections_out));
		json_object_object_add(o, "peer_connections_in",
		                       json_object_new_int(s->peer_connections_in));
		json_object_object_add(o, "peer_handshakes",
		                       json_object_new_uint64(s->peer_handshakes));
		json_object_object_add(o, "peer_handshake_failures",
		                       json_object_new_uint64(s->peer_handshake_failures));
		json_object_object_add(o, "peer_evictions",
		                       json_object_new_uint64(s->peer_evictions));
		json_object_object_add(o, "peer_idle_closes",
		                       json_object_new_uint64(s->peer_idle_closes));
		json_object_object_add(o, "datagram_rekeys",
		                       json_object_new_uint64(s->datagram_rekeys));
		json_object_object_add(o, "peer_reused_in",
		                       json_object_new_uint64(s->peer_reused_in));
		json_object_object_add(o, "loop_lag_p99_us",
		                       json_object_new_int64(s->loop_lag_p99_us));
		json_object_object_add(o, "loop_lag_max_us",
		                       json_object_new_int64(s->loop_lag_max_us));
		json_object_object_add(o, "loop_lag_max_ever_us",
		                       json_object_new_int64(s->loop_lag_max_ever_us));
		json_object_object_add(o, "loop_stalls", json_object_new_uint64(s->loop_stalls));
		printf("%s\n", json_object_to_json_string_ext(
				   o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return;
	}
	char started[32];
	format_since(s->started_unix_ms, started, sizeof(started));
	printf("name:             %s\n", s->name);
	printf("version:          %s\n", s->version);
	printf("peer address:     %s\n", s->peer_addr);
	printf("rpc address:      %s\n", s->rpc_addr);
	printf("started:          %s (up %" PRIu64 " s)\n", started, s->uptime_ms / 1000);
	printf("incarnation:      %" PRIu64 "\n", s->incarnation);
	printf("local health:     %u%s\n", s->local_health,
	       s->local_health == 0 ? " (healthy)" : " (degraded: probing slower)");
	printf("members:          %u alive, %u suspect, %u dead, %u left\n", s->members_alive,
	       s->members_suspect, s->members_dead, s->members_left);
	printf("libvirt:          %s, %s%s%s\n", s->libvirt_uri,
	       s->libvirt_reachable ? "reachable" : "UNREACHABLE", s->libvirt_error[0] ? ": " : "",
	       s->libvirt_error);
	printf("peer connections: %u (%u out, %u in on the peer port); %" PRIu64
	       " handshakes, %" PRIu64 " failed, %" PRIu64 " evicted, %" PRIu64 " closed idle\n",
	       s->peer_connections, s->peer_connections_out, s->peer_connections_in,
	       s->peer_handshakes, s->peer_handshake_failures, s->peer_evictions,
	       s->peer_idle_closes);
	printf("datagrams:        %" PRIu64 " in, %" PRIu64 " out, %" PRIu64
	       " failed authentication, %" PRIu64 " replayed, %" PRIu64
	       " sent by TLS (no key); %" PRIu64 " rekeys\n",
	       s->datagrams_in, s->datagrams_out, s->datagram_auth_failures, s->datagram_replays,
	       s->datagram_no_key, s->datagram_rekeys);
	printf("loop lag:         p99 %.1f ms, max %.1f ms over 30 s; max ever %.1f ms, %" PRIu64
	       " stalls\n",
	       s->loop_lag_p99_us / 1000.0, s->loop_lag_max_us / 1000.0,
	       s->loop_lag_max_ever_us / 1000.0, s->loop_stalls);
	printf("your role:        %s\n", s->role);
}

static const char *vm_state_name(Mv__VmState s)
{
	switch (s) {
	case MV__VM_STATE__VM_RUNNING:
		return "running";
	case MV__VM_STATE__VM_PAUSED:
		return "paused";
	case MV__VM_STATE__VM_SHUTOFF:
		return "shut off";
	case MV__VM_STATE__VM_CRASHED:
		return "crashed";
	case MV__VM_STATE__VM_OTHER:
		return "other";
	default:
		return "unknown";
	}
}

static const char *vm_desired_name(Mv__VmDesired d)
{
	return d == MV__VM_DESIRED__VM_DESIRED_STOPPED ? "stopped" : "running";
}

/* An HA VM that should run and is not running on its host (fenced, powered
 * off by its guest or by virsh): the cluster owes it a restart, unless the
 * same VM (by UUID) is active on another host in `all` (a copy left behind
 * by a move). */
static bool vm_wants_running(const Mv__VmsReply *all, const Mv__VmInfo *v)
{
	if (!v->ha || v->desired != MV__VM_DESIRED__VM_DESIRED_RUNNING ||
	    v->state == MV__VM_STATE__VM_RUNNING || v->state == MV__VM_STATE__VM_PAUSED)
		return false;
	for (size_t i = 0; all != NULL && i < all->n_vms; i++) {
		const Mv__VmInfo *o = all->vms[i]->vm;
		if (o != v && strcmp(o->uuid, v->uuid) == 0 &&
		    (o->state == MV__VM_STATE__VM_RUNNING || o->state == MV__VM_STATE__VM_PAUSED))
			return false;
	}
	return true;
}

static json_object *json_str(const char *s)
{
	return json_object_new_string(s ? s : "");
}

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static json_object *vm_json(const Mv__VmInfo *v, const char *node, bool stale);

static json_object *vm_view_json(const Mv__VmView *w)
{
	json_object *o = vm_json(w->vm, w->node, w->stale);
	json_object_object_add(o, "node_state", json_str(member_state_name(w->node_state)));
	return o;
}

static json_object *vm_json(const Mv__VmInfo *v, const char *node, bool stale)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_str(v->name));
	json_object_object_add(o, "uuid", json_str(v->uuid));
	if (node != NULL)
		json_object_object_add(o, "node", json_str(node));
	json_object_object_add(o, "state", json_str(vm_state_name(v->state)));
	json_object_object_add(o, "vcpus", json_object_new_int(v->vcpus));
	json_object_object_add(o, "memory_kib", json_object_new_uint64(v->memory_kib));
	json_object_object_add(o, "ha", json_object_new_boolean(v->ha));
	json_object_object_add(o, "priority", json_object_new_int(v->priority));
	json_object_object_add(o, "owner_epoch", json_object_new_uint64(v->owner_epoch));
	json_object_object_add(o, "ha_group", json_str(v->ha_group));
	json_object_object_add(o, "desired", json_str(vm_desired_name(v->desired)));
	json_object_object_add(o, "stale", json_object_new_boolean(stale));
	return o;
}

/* vCPU and memory capacity under overcommit (same arithmetic as placement.c) */
static uint32_t node_vcpu_cap(const Mv__NodeState *s)
{
	return (uint32_t)((double)s->cpus * (s->cpu_overcommit > 0 ? s->cpu_overcommit : 1) + 1e-9);
}

static uint64_t node_mem_cap(const Mv__NodeState *s)
{
	if (s->memory_reserved_kib >= s->memory_kib)
		return 0;
	return (uint64_t)((double)(s->memory_kib - s->memory_reserved_kib) *
	                      (s->memory_overcommit > 0 ? s->memory_overcommit : 1) +
	                  1e-9);
}

static json_object *node_json(const Mv__NodeView *v)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_str(v->member_name));
	json_object_object_add(o, "state", json_str(member_state_name(v->member_state)));
	json_object_object_add(o, "known_state", json_object_new_boolean(v->known_state));
	const Mv__NodeState *s = v->state;
	if (s == NULL)
		return o;
	json_object_object_add(o, "incarnation", json_object_new_uint64(s->incarnation));
	json_object_object_add(o, "version", json_object_new_uint64(s->version));
	json_object_object_add(o, "updated_unix_ms", json_object_new_int64(s->updated_unix_ms));
	json_object_object_add(o, "rpc_addr", json_str(s->rpc_addr));
	json_object_object_add(o, "cpus", json_object_new_int(s->cpus));
	json_object_object_add(o, "vcpus_allocated", json_object_new_int(s->vcpus_allocated));
	json_object_object_add(o, "vcpus_allowed", json_object_new_int(node_vcpu_cap(s)));
	json_object_object_add(o, "memory_kib", json_object_new_uint64(s->memory_kib));
	json_object_object_add(o, "memory_reserved_kib",
	                       json_object_new_uint64(s->memory_reserved_kib));
	json_object_object_add(o, "memory_allocated_kib",
	                       json_object_new_uint64(s->memory_allocated_kib));
	json_object_object_add(o, "memory_allowed_kib", json_object_new_uint64(node_mem_cap(s)));
	json_object_object_add(o, "memory_free_kib", json_object_new_uint64(s->memory_free_kib));
	json_object_object_add(o, "cpu_overcommit", json_object_new_double(s->cpu_overcommit));
	json_object_object_add(o, "memory_overcommit",
	                       json_object_new_double(s->memory_overcommit));
	json_object_object_add(o, "libvirt_reachable",
	                       json_object_new_boolean(s->libvirt_reachable));
	json_object_object_add(o, "libvirt_error", json_str(s->libvirt_error));
	json_object_object_add(o, "load1", json_object_new_double(s->load1));
	json_object_object_add(o, "agent_version", json_str(s->agent_version));
	json_object_object_add(o, "draining", json_object_new_boolean(s->draining));
	json_object_object_add(o, "inventory_stale", json_object_new_boolean(s->inventory_stale));
	json_object_object_add(o, "witness", json_object_new_boolean(s->witness));
	json_object_object_add(o, "quorate", json_object_new_boolean(s->quorate));
	json_object_object_add(o, "fenced", json_object_new_boolean(s->fenced));
	json_object_object_add(o, "fence_uri", json_str(s->fence_uri));
	json_object_object_add(o, "zone", json_str(s->zone));
	json_object_object_add(o, "rack", json_str(s->rack));
	json_object_object_add(o, "cpu_model", json_str(s->cpu_model));
	json_object *labels = json_object_new_object();
	for (size_t i = 0; i < s->n_labels; i++)
		json_object_object_add(labels, s->labels[i]->key, json_str(s->labels[i]->value));
	json_object_object_add(o, "labels", labels);
	json_object *vms = json_object_new_array();
	for (size_t i = 0; i < s->n_vms; i++)
		json_object_array_add(vms, vm_json(s->vms[i], NULL, s->inventory_stale));
	json_object_object_add(o, "vms", vms);
	return o;
}

static void node_labels_text(const Mv__NodeState *s, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	if (s->zone[0])
		used += (size_t)snprintf(buf + used, len - used, "zone=%s", s->zone);
	if (s->rack[0] && used < len)
		used +=
		    (size_t)snprintf(buf + used, len - used, "%srack=%s", used ? "," : "", s->rack);
	for (size_t i = 0; i < s->n_labels && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s=%s", used ? "," : "",
		                         s->labels[i]->key, s->labels[i]->value);
	if (buf[0] == '\0')
		snprintf(buf, len, "-");
}

static void print_nodes(const Mv__NodesReply *nr, bool json, bool one)
{
	if (json) {
		if (one && nr->n_nodes == 1) {
			print_json(node_json(nr->nodes[0]));
			return;
		}
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < nr->n_nodes; i++)
			json_object_array_add(arr, node_json(nr->nodes[i]));
		json_object *root = json_object_new_object();
		json_object_object_add(root, "nodes", arr);
		print_json(root);
		return;
	}
	if (one && nr->n_nodes == 1) {
		const Mv__NodeView *v = nr->nodes[0];
		const Mv__NodeState *s = v->state;
		printf("name:          %s\n", v->member_name);
		printf("member state:  %s\n", member_state_name(v->member_state));
		if (s == NULL) {
			printf("(its node state has not arrived here yet)\n");
			return;
		}
		char labels[256];
		node_labels_text(s, labels, sizeof(labels));
		printf("rpc address:   %s\n", s->rpc_addr);
		printf("health:        libvirt %s%s%s, load %.2f%s\n",
		       s->libvirt_reachable ? "reachable" : "UNREACHABLE",
		       s->libvirt_error[0] ? ": " : "", s->libvirt_error, s->load1,
		       s->draining ? ", DRAINING" : "");
		printf("cpu:           %u logical (%s), vCPUs %u allocated of %u allowed (x%.2g)\n",
		       s->cpus, s->cpu_model, s->vcpus_allocated, node_vcpu_cap(s),
		       s->cpu_overcommit);
		printf("memory:        %" PRIu64 " MiB total, %" PRIu64 " reserved, %" PRIu64
		       " allocated of %" PRIu64 " allowed (x%.2g), %" PRIu64 " free\n",
		       s->memory_kib / 1024, s->memory_reserved_kib / 1024,
		       s->memory_allocated_kib / 1024, node_mem_cap(s) / 1024, s->memory_overcommit,
		       s->memory_free_kib / 1024);
		printf("labels:        %s\n", labels);
		printf("failover:      %s%s%s, fence URI %s\n", s->witness ? "witness, " : "",
		       s->quorate ? "quorate" : "NOT QUORATE",
		       s->fenced ? ", FENCED (its HA VMs were destroyed)" : "",
		       s->fence_uri[0] ? s->fence_uri : "none");
		printf("agent:         %s, state incarnation %" PRIu64 " version %" PRIu64 "\n",
		       s->agent_version, s->incarnation, s->version);
		printf("vms:           %zu\n", s->n_vms);
		for (size_t i = 0; i < s->n_vms; i++)
			printf("  %-24s %-9s %3u vCPU %8" PRIu64 " MiB%s\n", s->vms[i]->name,
			       vm_state_name(s->vms[i]->state), s->vms[i]->vcpus,
			       s->vms[i]->memory_kib / 1024, s->vms[i]->ha ? "  HA" : "");
		return;
	}
	printf("%-16s %-8s %5s %13s %22s %4s %-12s %-8s %s\n", "NAME", "STATE", "CPUS", "VCPUS",
	       "MEMORY MiB", "VMS", "HEALTH", "DRAINING", "LABELS");
	for (size_t i = 0; i < nr->n_nodes; i++) {
		const Mv__NodeView *v = nr->nodes[i];
		const Mv__NodeState *s = v->state;
		if (s == NULL) {
			printf("%-16s %-8s %5s %13s %22s %4s %-12s %-8s %s\n", v->member_name,
			       member_state_name(v->member_state), "?", "?", "?", "?", "unknown",
			       "?", "(state not arrived)");
			continue;
		}
		char vc[32], mem[80], labels[256];
		snprintf(vc, sizeof(vc), "%u/%u", s->vcpus_allocated, node_vcpu_cap(s));
		snprintf(mem, sizeof(mem), "%" PRIu64 "/%" PRIu64 "/%" PRIu64,
		         s->memory_allocated_kib / 1024, node_mem_cap(s) / 1024,
		         s->memory_free_kib / 1024);
		node_labels_text(s, labels, sizeof(labels));
		printf("%-16s %-8s %5u %13s %22s %4zu %-12s %-8s %s\n", v->member_name,
		       member_state_name(v->member_state), s->cpus, vc, mem, s->n_vms,
		       s->witness             ? "witness"
		       : s->fenced            ? "FENCED"
		       : s->libvirt_reachable ? "ok"
		                              : "libvirt-down",
		       s->draining ? "yes" : "no", labels);
	}
	printf("(VCPUS: allocated/allowed; MEMORY: allocated/allowed/free)\n");
}

static void print_vms(const Mv__VmsReply *vr, bool json, bool one)
{
	if (json) {
		if (one && vr->n_vms == 1) {
			print_json(vm_view_json(vr->vms[0]));
			return;
		}
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < vr->n_vms; i++)
			json_object_array_add(arr, vm_view_json(vr->vms[i]));
		json_object *root = json_object_new_object();
		json_object_object_add(root, "vms", arr);
		print_json(root);
		return;
	}
	if (one) {
		for (size_t i = 0; i < vr->n_vms; i++) {
			const Mv__VmInfo *v = vr->vms[i]->vm;
			printf("%sname:        %s\n", i ? "\n" : "", v->name);
			printf("uuid:        %s\n", v->uuid);
			printf("host:        %s (%s)\n", vr->vms[i]->node,
			       member_state_name(vr->vms[i]->node_state));
			printf("state:       %s%s\n", vm_state_name(v->state),
			       vr->vms[i]->stale
			           ? " (last known: the host's libvirt is unreachable)"
			           : "");
			printf("vcpus:       %u\n", v->vcpus);
			printf("memory:      %" PRIu64 " MiB\n", v->memory_kib / 1024);
			printf("ha:          %s, priority %d%s%s\n", v->ha ? "on" : "off",
			       v->priority, v->ha_group[0] ? ", anti-affinity group " : "",
			       v->ha_group);
			printf("owner epoch: %" PRIu64 "\n", v->owner_epoch);
			const char *note = "";
			if (vm_wants_running(vr, v))
				note = " (NOT RUNNING: the cluster starts it again where a quorate "
				       "side "
				       "has room)";
			else if (!v->ha)
				note = " (HA off: the cluster does not act on it)";
			printf("desired:     %s%s\n", vm_desired_name(v->desired), note);
		}
		return;
	}
	printf("%-24s %-16s %-9s %5s %10s %-3s %8s\n", "NAME", "HOST", "STATE", "VCPUS",
	       "MEMORY MiB", "HA", "PRIORITY");
	bool any_stale = false, any_lost = false, any_wants = false;
	for (size_t i = 0; i < vr->n_vms; i++) {
		const Mv__VmInfo *v = vr->vms[i]->vm;
		char st[24];
		bool lost = vr->vms[i]->node_state == MV__MEMBER_STATE__MEMBER_DEAD ||
		            vr->vms[i]->node_state == MV__MEMBER_STATE__MEMBER_LEFT;
		bool wants = vm_wants_running(vr, v);
		snprintf(st, sizeof(st), "%s%s%s", vm_state_name(v->state), wants ? "^" : "",
		         lost                ? "!"
		         : vr->vms[i]->stale ? "*"
		                             : "");
		any_stale |= vr->vms[i]->stale && !lost;
		any_lost |= lost;
		any_wants |= wants;
		printf("%-24s %-16s %-9s %5u %10" PRIu64 " %-3s %8d\n", v->name, vr->vms[i]->node,
		       st, v->vcpus, v->memory_kib / 1024, v->ha ? "yes" : "no", v->priority);
	}
	if (any_stale)
		printf("(*: last known state; that host's libvirt is unreachable)\n");
	if (any_lost)
		printf("(!: last known state of a host that is dead or gone; HA VMs run again "
		       "elsewhere, see `meshvisor failovers`)\n");
	if (any_wants)
		printf(
		    "(^: an HA VM that should be running and is not: the cluster starts it again "
		    "where a quorate side has room; `meshvisor vm destroy` keeps it stopped)\n");
}

static void print_vm_op(const Mv__VmOpReply *op, bool json)
{
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "vm", json_str(op->vm));
		json_object_object_add(o, "uuid", json_str(op->uuid));
		json_object_object_add(o, "node", json_str(op->node));
		json_object_object_add(o, "message", json_str(op->message));
		print_json(o);
		return;
	}
	printf("%s: %s on %s\n", op->vm, op->message, op->node);
}

static json_object *migration_json(const Mv__MigrationInfo *m)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_str(m->id));
	json_object_object_add(o, "vm", json_str(m->vm));
	json_object_object_add(o, "uuid", json_str(m->uuid));
	json_object_object_add(o, "source", json_str(m->source));
	json_object_object_add(o, "target", json_str(m->target));
	json_object_object_add(o, "phase", json_str(m->phase));
	json_object_object_add(o, "done", json_object_new_boolean(m->done));
	json_object_object_add(o, "ok", json_object_new_boolean(m->ok));
	json_object_object_add(o, "offline", json_object_new_boolean(m->offline));
	json_object_object_add(o, "message", json_str(m->message));
	json_object_object_add(o, "started_unix_ms", json_object_new_int64(m->started_unix_ms));
	json_object_object_add(o, "ended_unix_ms", json_object_new_int64(m->ended_unix_ms));
	json_object_object_add(o, "elapsed_ms", json_object_new_uint64(m->elapsed_ms));
	json_object_object_add(o, "data_processed", json_object_new_uint64(m->data_processed));
	json_object_object_add(o, "data_remaining", json_object_new_uint64(m->data_remaining));
	json_object_object_add(o, "data_total", json_object_new_uint64(m->data_total));
	json_object_object_add(o, "downtime_ms", json_object_new_uint64(m->downtime_ms));
	return o;
}

static void migration_line(const Mv__MigrationInfo *m)
{
	if (m->done) {
		printf("%s: %s\n", m->vm, m->message);
		return;
	}
	if (m->data_total > 0)
		printf("%s: %s %s -> %s, %" PRIu64 " of %" PRIu64 " MiB sent, %" PRIu64
		       " MiB left, %.1f s\n",
		       m->vm, m->phase, m->source, m->target, m->data_processed >> 20,
		       m->data_total >> 20, m->data_remaining >> 20, (double)m->elapsed_ms / 1000);
	else
		printf("%s: %s %s -> %s%s, %.1f s\n", m->vm, m->phase, m->source,
		       m->target[0] ? m->target : "(choosing)", m->offline ? " (offline move)" : "",
		       (double)m->elapsed_ms / 1000);
	fflush(stdout);
}

/* "2026-11-26 15:58:53.123", local time */
static void format_local_ms(int64_t unix_ms, char *out, size_t len)
{
	time_t t = (time_t)(unix_ms / 1000);
	int ms = (int)(unix_ms % 1000);
	if (ms < 0) {
		ms += 1000;
		t--;
	}
	struct tm tm;
	char base[32];
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(base, sizeof(base), "@%lld", (long long)t);
	snprintf(out, len, "%s.%03d", base, ms);
}

static json_object *event_json(const Mv__ClusterEvent *e)
{
	char utc[32];
	format_since(e->unix_ms, utc, sizeof(utc));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "seq", json_object_new_uint64(e->seq));
	json_object_object_add(o, "unix_ms", json_object_new_int64(e->unix_ms));
	json_object_object_add(o, "time", json_str(utc));
	json_object_object_add(o, "kind", json_str(e->kind));
	json_object_object_add(o, "node", json_str(e->node));
	json_object_object_add(o, "vm", json_str(e->vm));
	json_object_object_add(o, "text", json_str(e->text));
	return o;
}

/* One event, one line: time, kind, host, VM ("-" when none), text. */
static void print_event(const Mv__ClusterEvent *e, bool json)
{
	if (json) {
		json_object *j = event_json(e);
		printf("%s\n", json_object_to_json_string_ext(
				   j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		char when[48];
		format_local_ms(e->unix_ms, when, sizeof(when));
		printf("%-23s %-16s %-16s %-20s %s\n", when, e->kind[0] ? e->kind : "-",
		       e->node[0] ? e->node : "-", e->vm[0] ? e->vm : "-", e->text);
	}
	fflush(stdout);
}

static const char *ms_text(uint64_t ms, bool known, char *buf, size_t len)
{
	if (!known)
		return "-";
	if (ms < 10000)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	else
		snprintf(buf, len, "%.1f s", (double)ms / 1000);
	return buf;
}

static const char *failover_vm_result(const Mv__FailoverVm *v)
{
	if (v->target == NULL || v->target[0] == '\0')
		return "no room";
	if (!v->done)
		return "pending";
	return v->ok ? "ok" : "failed";
}

static json_object *failover_json(const Mv__FailoverInfo *f)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "dead", json_str(f->dead));
	json_object_object_add(o, "incarnation", json_object_new_uint64(f->incarnation));
	json_object_object_add(o, "round", json_object_new_int64(f->round));
	json_object_object_add(o, "phase", json_str(f->phase));
	json_object_object_add(o, "coordinator", json_str(f->coordinator));
	json_object_object_add(o, "detected_unix_ms", json_object_new_int64(f->detected_unix_ms));
	json_object_object_add(o, "chosen_unix_ms", json_object_new_int64(f->chosen_unix_ms));
	json_object_object_add(o, "fenced_unix_ms", json_object_new_int64(f->fenced_unix_ms));
	json_object_object_add(o, "fence_how", json_str(f->fence_how));
	json_object_object_add(o, "detect_to_chosen_ms",
	                       json_object_new_uint64(f->detect_to_chosen_ms));
	json_object_object_add(o, "chosen_to_fenced_ms",
	                       json_object_new_uint64(f->chosen_to_fenced_ms));
	json_object_object_add(o, "fenced_to_last_restart_ms",
	                       json_object_new_uint64(f->fenced_to_last_restart_ms));
	json_object_object_add(o, "reporter", json_str(f->reporter));
	json_object_object_add(o, "cause", json_str(f->cause));
	json_object *vms = json_object_new_array();
	for (size_t i = 0; i < f->n_vms; i++) {
		const Mv__FailoverVm *v = f->vms[i];
		json_object *j = json_object_new_object();
		json_object_object_add(j, "vm", json_str(v->vm));
		json_object_object_add(j, "uuid", json_str(v->uuid));
		json_object_object_add(j, "target", json_str(v->target));
		json_object_object_add(j, "priority", json_object_new_int(v->priority));
		json_object_object_add(j, "done", json_object_new_boolean(v->done));
		json_object_object_add(j, "ok", json_object_new_boolean(v->ok));
		json_object_object_add(j, "took_ms", json_object_new_uint64(v->took_ms));
		json_object_object_add(j, "message", json_str(v->message));
		json_object_object_add(j, "new_epoch", json_object_new_uint64(v->new_epoch));
		json_object_array_add(vms, j);
	}
	json_object_object_add(o, "vms", vms);
	return o;
}

static void print_failovers(const Mv__FailoversReply *fr, bool json)
{
	if (json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < fr->n_failovers; i++)
			json_object_array_add(arr, failover_json(fr->failovers[i]));
		json_object *root = json_object_new_object();
		json_object_object_add(root, "failovers", arr);
		print_json(root);
		return;
	}
	if (fr->n_failovers == 0) {
		printf("no failovers known to this node\n");
		return;
	}
	printf("%-16s %11s %5s %-9s %-16s %13s %-24s %13s\n", "DEAD HOST", "INCARNATION", "ROUND",
	       "PHASE", "COORDINATOR", "DETECT>CHOSEN", "CHOSEN>FENCED (HOW)", "FENCED>LAST");
	for (size_t i = 0; i < fr->n_failovers; i++) {
		const Mv__FailoverInfo *f = fr->failovers[i];
		char a[32], b[32], c[32], fenced[320];
		bool restarted = false;
		for (size_t j = 0; j < f->n_vms; j++)
			restarted |= f->vms[j]->done && f->vms[j]->ok;
		snprintf(fenced, sizeof(fenced), "%s%s%s%s",
		         ms_text(f->chosen_to_fenced_ms,
		                 f->fenced_unix_ms != 0 && f->chosen_unix_ms != 0, b, sizeof(b)),
		         f->fence_how[0] ? " (" : "", f->fence_how, f->fence_how[0] ? ")" : "");
		printf("%-16s %11" PRIu64 " %5u %-9s %-16s %13s %-24s %13s\n", f->dead,
		       f->incarnation, f->round, f->phase[0] ? f->phase : "-",
		       f->coordinator[0] ? f->coordinator : "-",
		       ms_text(f->detect_to_chosen_ms,
		               f->detected_unix_ms != 0 && f->chosen_unix_ms != 0, a, sizeof(a)),
		       fenced,
		       ms_text(f->fenced_to_last_restart_ms, f->fenced_unix_ms != 0 && restarted, c,
		               sizeof(c)));
		if (f->cause != NULL && f->cause[0] != '\0')
			printf("    cause: %s\n", f->cause);
		for (size_t j = 0; j < f->n_vms; j++) {
			const Mv__FailoverVm *v = f->vms[j];
			char took[32];
			printf("    %-24s -> %-16s %-8s %10s%s%s\n", v->vm,
			       v->target[0] ? v->target : "-", failover_vm_result(v),
			       ms_text(v->took_ms, v->done && v->ok, took, sizeof(took)),
			       v->message[0] ? "  " : "", v->message);
		}
	}
}

/* ---- meshvisor ha ----------------------------------------------------------------- */

const char *cli_duration_text(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;
	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	else if (ms < 60000)
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " s", s, (ms % 1000) / 100);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 " min %02" PRIu64 " s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 " h %02" PRIu64 " min", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, len, "%" PRIu64 " d %02" PRIu64 " h", s / 86400, (s % 86400) / 3600);
	return buf;
}

static const char *cli_or_dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

const char *cli_owed_header(char *buf, size_t len)
{
	snprintf(buf, len, "%-24s %-16s %-11s %-28s %s", "VM", "HOST", "DOWN FOR", "WHY",
	         "WHAT THE CLUSTER IS DOING");
	return buf;
}

const char *cli_owed_row(const Mv__OwedVm *o, char *buf, size_t len)
{
	char down[32];
	snprintf(buf, len, "%-24s %-16s %-11s %-28s %s", cli_or_dash(o->name), cli_or_dash(o->host),
	         cli_duration_text(o->down_ms, down, sizeof(down)), cli_or_dash(o->why),
	         cli_or_dash(o->doing));
	return buf;
}

int cli_ha_exit_code(const Mv__HaReply *h)
{
	return h->n_owed > 0 || !h->ok ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static void print_ha(const Mv__HaReply *h, bool json)
{
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(h->ok));
		json_object_object_add(o, "all_running", json_object_new_boolean(h->n_owed == 0));
		json_object_object_add(o, "ha_vms", json_object_new_int64(h->ha_vms));
		json_object_object_add(o, "voters", json_object_new_int64(h->voters));
		json_object_object_add(o, "majority", json_object_new_int64(h->majority));
		json_object_object_add(o, "alive_voters", json_object_new_int64(h->alive_voters));
		json_object_object_add(o, "quorate", json_object_new_boolean(h->quorate));
		json_object_object_add(o, "view_may_be_stale",
		                       json_object_new_boolean(!h->quorate));
		json_object_object_add(o, "reporter", json_str(h->reporter));
		json_object_object_add(o, "replicas_held", json_object_new_int64(h->replicas_held));
		json_object *owed = json_object_new_array();
		for (size_t i = 0; i < h->n_owed; i++) {
			const Mv__OwedVm *v = h->owed[i];
			json_object *j = json_object_new_object();
			json_object_object_add(j, "name", json_str(v->name));
			json_object_object_add(j, "uuid", json_str(v->uuid));
			json_object_object_add(j, "host", json_str(v->host));
			json_object_object_add(j, "epoch", json_object_new_uint64(v->epoch));
			json_object_object_add(j, "priority", json_object_new_int(v->priority));
			json_object_object_add(j, "down_ms", json_object_new_uint64(v->down_ms));
			json_object_object_add(j, "since_unix_ms",
			                       json_object_new_int64(v->since_unix_ms));
			json_object_object_add(j, "why", json_str(v->why));
			json_object_object_add(j, "doing", json_str(v->doing));
			json_object_array_add(owed, j);
		}
		json_object_object_add(o, "owed", owed);
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < h->n_losses; i++) {
			const Mv__HaLoss *l = h->losses[i];
			json_object *j = json_object_new_object();
			json_object_object_add(j, "node", json_str(l->node));
			json_object_object_add(j, "ha_vms", json_object_new_int64(l->ha_vms));
			json_object_object_add(j, "placed", json_object_new_int64(l->placed));
			json_object *un = json_object_new_array();
			for (size_t k = 0; k < l->n_unplaced; k++)
				json_object_array_add(un, json_str(l->unplaced[k]));
			json_object_object_add(j, "unplaced", un);
			json_object_object_add(j, "message", json_str(l->message));
			json_object_array_add(arr, j);
		}
		json_object_object_add(o, "losses", arr);
		print_json(o);
		return;
	}
	const char *who = h->reporter != NULL && h->reporter[0] != '\0' ? h->reporter : "this node";
	if (!h->quorate)
		printf(
		    "WARNING: %s is NOT quorate (%u of %u voters acknowledge it, %u needed): it "
		    "may "
		    "be cut off from the majority, so what follows may be stale; ask a node of the "
		    "majority\n",
		    who, h->alive_voters, h->voters, h->majority);
	if (h->n_owed == 0) {
		printf("every HA VM that should run is running (%u HA VM%s)\n", h->ha_vms,
		       h->ha_vms == 1 ? "" : "s");
	} else {
		char line[1024];
		printf("%zu HA VM%s should run and %s NOT running:\n", h->n_owed,
		       h->n_owed == 1 ? "" : "s", h->n_owed == 1 ? "is" : "are");
		printf("  %s\n", cli_owed_header(line, sizeof(line)));
		for (size_t i = 0; i < h->n_owed; i++)
			printf("  %s\n", cli_owed_row(h->owed[i], line, sizeof(line)));
	}
	if (h->ok)
		printf("every HA VM survives the loss of any one host (%u HA VM%s)\n", h->ha_vms,
		       h->ha_vms == 1 ? "" : "s");
	else
		printf("NOT every HA VM survives the loss of any one host (%u HA VM%s):\n",
		       h->ha_vms, h->ha_vms == 1 ? "" : "s");
	for (size_t i = 0; i < h->n_losses; i++) {
		const Mv__HaLoss *l = h->losses[i];
		size_t left = l->n_unplaced;
		if (left == 0 && l->ha_vms > l->placed)
			left = l->ha_vms - l->placed;
		if (left == 0)
			continue;
		printf("  losing %s leaves %zu of its %u HA VM%s without room%s", l->node, left,
		       l->ha_vms, l->ha_vms == 1 ? "" : "s", l->n_unplaced ? ":" : "");
		for (size_t k = 0; k < l->n_unplaced; k++)
			printf("%s %s", k ? "," : "", l->unplaced[k]);
		printf("\n");
	}
	printf("voters: %u, majority %u, %u alive; %s is %s\n", h->voters, h->majority,
	       h->alive_voters, who,
	       h->quorate ? "quorate" : "NOT quorate (it may not start failovers)");
	printf("HA VM definitions held here: %u\n", h->replicas_held);
}

/* Progress frames of migrate, drain and events: one line each (JSON: one
 * object). An event stream's keepalives print nothing. */
static void cli_print_progress(const Mv__RpcResponse *r, void *arg)
{
	struct cli_opts *o = arg;
	if (r->keepalive)
		return;
	if (r->result_case == MV__RPC_RESPONSE__RESULT_EVENT) {
		print_event(r->event, o->json);
		o->n_events++;
		return;
	}
	if (r->result_case != MV__RPC_RESPONSE__RESULT_MIGRATION)
		return;
	if (o->json) {
		json_object *j = migration_json(r->migration);
		printf("%s\n", json_object_to_json_string_ext(
				   j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
		fflush(stdout);
		return;
	}
	migration_line(r->migration);
}

static void print_migrations(const Mv__MigrationsReply *mr, bool json)
{
	if (json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < mr->n_migrations; i++)
			json_object_array_add(arr, migration_json(mr->migrations[i]));
		json_object *root = json_object_new_object();
		json_object_object_add(root, "migrations", arr);
		print_json(root);
		return;
	}
	printf("%-20s %-12s %-12s %-10s %-8s %9s  %s\n", "VM", "SOURCE", "TARGET", "PHASE",
	       "RESULT", "SECONDS", "MESSAGE");
	for (size_t i = 0; i < mr->n_migrations; i++) {
		const Mv__MigrationInfo *m = mr->migrations[i];
		printf("%-20s %-12s %-12s %-10s %-8s %9.1f  %s\n", m->vm, m->source,
		       m->target[0] ? m->target : "-", m->phase,
		       !m->done ? "running"
		       : m->ok  ? "moved"
		                : "stayed",
		       (double)m->elapsed_ms / 1000, m->message);
	}
}

static void print_drain(const Mv__DrainReply *d, bool json)
{
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "node", json_str(d->node));
		json_object_object_add(o, "moved", json_object_new_int(d->moved));
		json_object_object_add(o, "stayed", json_object_new_int(d->stayed));
		json_object_object_add(o, "message", json_str(d->message));
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < d->n_results; i++)
			json_object_array_add(arr, migration_json(d->results[i]));
		json_object_object_add(o, "results", arr);
		print_json(o);
		return;
	}
	printf("%s\n", d->message);
}

/* Request storage: everything the request points at. */
struct cli_request {
	Mv__RpcRequest req;
	Mv__StatusRequest status;
	Mv__MembersRequest members;
	Mv__JoinRequest join;
	Mv__LeaveRequest leave;
	Mv__NodesRequest nodes;
	Mv__NodeRequest node;
	Mv__VmsRequest vms;
	Mv__VmRequest vm;
	Mv__VmCreateRequest vm_create;
	Mv__VmActionRequest vm_action;
	Mv__VmSetHaRequest vm_set_ha;
	Mv__MigrateRequest migrate;
	Mv__MigrationsRequest migrations;
	Mv__DrainRequest drain;
	Mv__EventsRequest events;
	Mv__FailoversRequest failovers;
	Mv__HaRequest ha;
	Mv__ForceLeaveRequest force_leave;
	char *xml; /* malloc'd file contents */
};

static char *cli_read_file(const char *path, const char *cmd)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "meshvisor %s: cannot open %s: %s\n", cmd, path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 20, len = 0; /* domain XML is capped at 1 MiB */
	char *buf = malloc(cap + 1);
	if (buf != NULL)
		len = fread(buf, 1, cap + 1, f);
	fclose(f);
	if (buf == NULL || len > cap) {
		fprintf(stderr, "meshvisor %s: %s is larger than 1 MiB\n", cmd, path);
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		fprintf(stderr, "meshvisor %s: %s contains a NUL byte; is it XML?\n", cmd, path);
		free(buf);
		return NULL;
	}
	return buf;
}

static int cli_usage_error(const struct cli_opts *o, const char *fmt, const char *arg)
{
	fprintf(stderr, "meshvisor %s: ", o->cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nsee 'meshvisor %s --help'\n", o->cmd);
	return CLI_EXIT_USAGE;
}

/* Flags that go with one command only, and the positional argument count
 * each command takes: checked before anything is built. */
static int cli_check_flag_use(const struct cli_opts *o)
{
	const char *cmd = o->cmd;
	int want_args = 0; /* exact positional count, -1: at least one */
	if (strcmp(cmd, "join") == 0 || strcmp(cmd, "vm") == 0)
		want_args = -1;
	else if (strcmp(cmd, "node") == 0 || strcmp(cmd, "migrate") == 0 ||
	         strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0 ||
	         strcmp(cmd, "force-leave") == 0)
		want_args = 1;
	if ((o->to || o->abort_op || o->n_same) && strcmp(cmd, "migrate") != 0)
		return cli_usage_error(o, "%s", "--to, --same and --abort go with 'migrate'");
	if (o->parallel && strcmp(cmd, "drain") != 0)
		return cli_usage_error(o, "%s", "--parallel goes with 'drain'");
	if (o->has_backlog && strcmp(cmd, "events") != 0)
		return cli_usage_error(o, "%s", "--backlog goes with 'events'");
	if (o->yes && strcmp(cmd, "force-leave") != 0)
		return cli_usage_error(o, "%s", "--yes goes with 'force-leave'");
	if (o->majority_gone && strcmp(cmd, "force-leave") != 0)
		return cli_usage_error(o, "%s", "--majority-is-gone goes with 'force-leave'");
	if (o->to && o->abort_op)
		return cli_usage_error(o, "%s", "--abort takes no --to");
	if (want_args == 0 && o->n_args > 0)
		return cli_usage_error(o, "unexpected argument '%s'", o->args[0]);
	if (want_args == 1 && o->n_args != 1)
		return cli_usage_error(o, "%s",
		                       strcmp(cmd, "migrate") == 0
		                           ? "give exactly one VM name or UUID"
		                           : "give exactly one host name");
	if (strcmp(cmd, "force-leave") == 0 && o->args[0][0] == '\0')
		return cli_usage_error(o, "%s", "give exactly one host name");
	if ((o->node && strcmp(cmd, "vms") != 0 && strcmp(cmd, "vm") != 0) ||
	    (o->xml_file && strcmp(cmd, "vm") != 0))
		return cli_usage_error(
		    o, "%s", "--node and --xml go with 'vm create' (and --node with 'vms')");
	return 0;
}

/* Returned by the cli_build_*_request groups for a command not theirs. */
#define CLI_NOT_THIS_GROUP (-1)

/* status, members, join, leave, force-leave. */
static int cli_build_membership_request(struct cli_opts *o, struct cli_request *q)
{
	Mv__RpcRequest *req = &q->req;
	const char *cmd = o->cmd;
	if (strcmp(cmd, "status") == 0) {
		mv__status_request__init(&q->status);
		req->op_case = MV__RPC_REQUEST__OP_STATUS;
		req->status = &q->status;
	} else if (strcmp(cmd, "members") == 0) {
		mv__members_request__init(&q->members);
		req->op_case = MV__RPC_REQUEST__OP_MEMBERS;
		req->members = &q->members;
	} else if (strcmp(cmd, "join") == 0) {
		if (o->n_args == 0)
			return cli_usage_error(o, "%s", "give at least one seed address (IP:PORT)");
		mv__join_request__init(&q->join);
		q->join.seeds = o->args;
		q->join.n_seeds = (size_t)o->n_args;
		req->op_case = MV__RPC_REQUEST__OP_JOIN;
		req->join = &q->join;
	} else if (strcmp(cmd, "leave") == 0) {
		mv__leave_request__init(&q->leave);
		req->op_case = MV__RPC_REQUEST__OP_LEAVE;
		req->leave = &q->leave;
	} else if (strcmp(cmd, "force-leave") == 0) {
		/* confirm is filled in by cli_confirm() (--yes: the name itself) */
		mv__force_leave_request__init(&q->force_leave);
		q->force_leave.node = o->args[0];
		q->force_leave.confirm = o->confirm;
		q->force_leave.majority_is_gone = o->majority_gone;
		req->op_case = MV__RPC_REQUEST__OP_FORCE_LEAVE;
		req->force_leave = &q->force_leave;
	} else {
		return CLI_NOT_THIS_GROUP;
	}
	return 0;
}

/* nodes, node, vms, events: what the cluster holds and what happens in it. */
static int cli_build_inventory_request(const struct cli_opts *o, struct cli_request *q)
{
	Mv__RpcRequest *req = &q->req;
	const char *cmd = o->cmd;
	if (strcmp(cmd, "nodes") == 0) {
		mv__nodes_request__init(&q->nodes);
		req->op_case = MV__RPC_REQUEST__OP_NODES;
		req->nodes = &q->nodes;
	} else if (strcmp(cmd, "node") == 0) {
		mv__node_request__init(&q->node);
		q->node.name = o->args[0];
		req->op_case = MV__RPC_REQUEST__OP_NODE;
		req->node = &q->node;
	} else if (strcmp(cmd, "vms") == 0) {
		mv__vms_request__init(&q->vms);
		q->vms.node = (char *)(o->node ? o->node : "");
		req->op_case = MV__RPC_REQUEST__OP_VMS;
		req->vms = &q->vms;
	} else if (strcmp(cmd, "events") == 0) {
		mv__events_request__init(&q->events);
		q->events.backlog = o->has_backlog ? o->backlog : 10;
		req->op_case = MV__RPC_REQUEST__OP_EVENTS;
		req->events = &q->events;
	} else {
		return CLI_NOT_THIS_GROUP;
	}
	return 0;
}

/* migrate, migrations, drain, undrain, failovers, ha. */
static int cli_build_migration_ha_request(struct cli_opts *o, struct cli_request *q)
{
	Mv__RpcRequest *req = &q->req;
	const char *cmd = o->cmd;
	if (strcmp(cmd, "migrate") == 0) {
		mv__migrate_request__init(&q->migrate);
		q->migrate.vm = o->args[0];
		q->migrate.to = (char *)(o->to ? o->to : "");
		q->migrate.abort = o->abort_op;
		q->migrate.same = o->same;
		q->migrate.n_same = o->n_same;
		req->op_case = MV__RPC_REQUEST__OP_MIGRATE;
		req->migrate = &q->migrate;
	} else if (strcmp(cmd, "migrations") == 0) {
		mv__migrations_request__init(&q->migrations);
		req->op_case = MV__RPC_REQUEST__OP_MIGRATIONS;
		req->migrations = &q->migrations;
	} else if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0) {
		mv__drain_request__init(&q->drain);
		q->drain.node = o->args[0];
		q->drain.parallel = o->parallel;
		q->drain.undrain = strcmp(cmd, "undrain") == 0;
		req->op_case = MV__RPC_REQUEST__OP_DRAIN;
		req->drain = &q->drain;
	} else if (strcmp(cmd, "failovers") == 0) {
		mv__failovers_request__init(&q->failovers);
		req->op_case = MV__RPC_REQUEST__OP_FAILOVERS;
		req->failovers = &q->failovers;
	} else if (strcmp(cmd, "ha") == 0) {
		mv__ha_request__init(&q->ha);
		req->op_case = MV__RPC_REQUEST__OP_HA;
		req->ha = &q->ha;
	} else {
		return CLI_NOT_THIS_GROUP;
	}
	return 0;
}

/* `vm create --xml FILE [--node N] [--no-start]`: reads the domain XML. */
static int cli_build_vm_create(const struct cli_opts *o, struct cli_request *q)
{
	if (o->n_args != 1)
		return cli_usage_error(o, "vm create takes no name ('%s'): the name is in the XML",
		                       o->args[1]);
	if (o->xml_file == NULL)
		return cli_usage_error(o, "%s", "vm create needs --xml FILE (libvirt domain XML)");
	q->xml = cli_read_file(o->xml_file, o->cmd);
	if (q->xml == NULL)
		return CLI_EXIT_FAIL;
	mv__vm_create_request__init(&q->vm_create);
	q->vm_create.xml = q->xml;
	q->vm_create.node = (char *)(o->node ? o->node : "");
	q->vm_create.start = !o->no_start;
	q->req.op_case = MV__RPC_REQUEST__OP_VM_CREATE;
	q->req.vm_create = &q->vm_create;
	return 0;
}

/* `vm set-ha NAME|UUID on|off [--priority N] [--group G]`. */
static int cli_build_vm_set_ha(const struct cli_opts *o, struct cli_request *q)
{
	if (o->n_args != 3 || (strcmp(o->args[2], "on") != 0 && strcmp(o->args[2], "off") != 0))
		return cli_usage_error(o, "%s",
		                       "usage: vm set-ha NAME|UUID on|off [--priority N] "
		                       "[--group G]");
	mv__vm_set_ha_request__init(&q->vm_set_ha);
	q->vm_set_ha.vm = o->args[1];
	q->vm_set_ha.ha = strcmp(o->args[2], "on") == 0;
	q->vm_set_ha.priority = o->priority;
	q->vm_set_ha.has_priority = o->has_priority;
	q->vm_set_ha.group = (char *)(o->group ? o->group : "");
	q->vm_set_ha.has_group = o->group != NULL;
	q->req.op_case = MV__RPC_REQUEST__OP_VM_SET_HA;
	q->req.vm_set_ha = &q->vm_set_ha;
	return 0;
}

/* `vm create`, `vm start|shutdown|destroy|undefine NAME`, `vm set-ha`, or
 * `vm NAME` to show one VM. */
static int cli_build_vm_request(const struct cli_opts *o, struct cli_request *q)
{
	static const struct {
		const char *name;
		Mv__VmAction action;
	} actions[] = {
	    {"start", MV__VM_ACTION__VM_START},
	    {"shutdown", MV__VM_ACTION__VM_SHUTDOWN},
	    {"destroy", MV__VM_ACTION__VM_DESTROY},
	    {"undefine", MV__VM_ACTION__VM_UNDEFINE},
	};
	if (o->n_args == 0)
		return cli_usage_error(o, "%s", "give a VM name or UUID, or a subcommand");
	const char *sub = o->args[0];
	if (strcmp(sub, "create") == 0)
		return cli_build_vm_create(o, q);
	if (o->xml_file || o->node || o->no_start)
		return cli_usage_error(o, "%s", "--xml, --node and --no-start go with 'vm create'");
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (strcmp(sub, actions[i].name) != 0)
			continue;
		if (o->n_args != 2)
			return cli_usage_error(o, "vm %s needs exactly one VM name or UUID", sub);
		mv__vm_action_request__init(&q->vm_action);
		q->vm_action.vm = o->args[1];
		q->vm_action.action = actions[i].action;
		q->req.op_case = MV__RPC_REQUEST__OP_VM_ACTION;
		q->req.vm_action = &q->vm_action;
		return 0;
	}
	if (strcmp(sub, "set-ha") == 0)
		return cli_build_vm_set_ha(o, q);
	if (o->n_args != 1)
		return cli_usage_error(o,
		                       "unknown vm subcommand '%s' (create, start, shutdown, "
		                       "destroy, undefine, set-ha, or a VM name to show)",
		                       sub);
	mv__vm_request__init(&q->vm);
	q->vm.vm = o->args[0];
	q->req.op_case = MV__RPC_REQUEST__OP_VM;
	q->req.vm = &q->vm;
	return 0;
}

/* --priority and --group go with 'vm set-ha' only: anywhere else they
 * would be ignored, so they are refused as a usage error. */
static int cli_check_set_ha_flags(const struct cli_opts *o, Mv__RpcRequest__OpCase op)
{
	if (op == MV__RPC_REQUEST__OP_VM_SET_HA)
		return 0;
	if (o->has_priority)
		return cli_usage_error(o, "%s", "--priority goes with 'vm set-ha'");
	if (o->group != NULL)
		return cli_usage_error(o, "%s", "--group goes with 'vm set-ha'");
	return 0;
}

/* Builds the request for o's command; validates arguments first so that a
 * usage mistake never reaches the agent. */
static int cli_build_request(struct cli_opts *o, struct cli_request *q)
{
	memset(q, 0, sizeof(*q));
	mv__rpc_request__init(&q->req);
	q->req.id = (uint64_t)mono_ms();
	int rc = cli_check_flag_use(o);
	if (rc != 0)
		return rc;
	if (strcmp(o->cmd, "vm") == 0)
		rc = cli_build_vm_request(o, q);
	else if ((rc = cli_build_membership_request(o, q)) == CLI_NOT_THIS_GROUP &&
	         (rc = cli_build_inventory_request(o, q)) == CLI_NOT_THIS_GROUP)
		rc = cli_build_migration_ha_request(o, q);
	if (rc == CLI_NOT_THIS_GROUP)
		rc = 0; /* an unknown command: main never calls us with one */
	if (rc != 0)
		return rc;
	return cli_check_set_ha_flags(o, q->req.op_case);
}

/* force-leave: --yes, or the operator types the node name on the terminal.
 * Fills o->confirm; returns 0 or an exit code (the message printed). */
static int cli_confirm(struct cli_opts *o, const char *node)
{
	if (o->yes) {
		snprintf(o->confirm, sizeof(o->confirm), "%s", node);
		return 0;
	}
	if (!isatty(STDIN_FILENO)) {
		fprintf(
		    stderr,
		    "meshvisor %s: stdin is not a terminal, so it cannot ask: pass --yes to remove "
		    "%s from the voting set\n",
		    o->cmd, node);
		return CLI_EXIT_USAGE;
	}
	fprintf(stderr,
	        "This removes %s from the voting set for good: do it only if that host is\n"
	        "dead and will not come back with its current state (a live host that is\n"
	        "force-left keeps running VMs that may be restarted elsewhere).\n"
	        "Type the node name to confirm: ",
	        node);
	fflush(stderr);
	char line[256];
	if (fgets(line, sizeof(line), stdin) == NULL) {
		fprintf(stderr, "\nmeshvisor %s: no confirmation given; nothing was done\n",
		        o->cmd);
		return CLI_EXIT_FAIL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (strcmp(line, node) != 0) {
		fprintf(stderr, "meshvisor %s: '%s' is not '%s'; nothing was done\n", o->cmd, line,
		        node);
		return CLI_EXIT_FAIL;
	}
	snprintf(o->confirm, sizeof(o->confirm), "%s", line);
	return 0;
}

int cli_client_main(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_parse(&o, argc, argv);
	if (rc != 0) {
		free(o.args);
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	struct cli_request q;
	rc = cli_build_request(&o, &q);
	if (rc == 0 && q.req.op_case == MV__RPC_REQUEST__OP_FORCE_LEAVE)
		rc = cli_confirm(&o, o.args[0]);
	if (rc != 0) {
		free(q.xml);
		free(o.args);
		return rc;
	}
	struct cli_conn cc = {.fd = -1, .addr = o.addr, .timeout_ms = o.timeout_ms};
	cc.deadline = mono_ms() + o.timeout_ms;
	rc = cli_connect(&cc, &o);
	if (rc != 0) {
		fprintf(stderr, "meshvisor %s: %s\n", o.cmd, cc.err);
		cli_close(&cc);
		free(q.xml);
		free(o.args);
		return rc;
	}

	Mv__Envelope *resp_env = NULL;
	bool events = q.req.op_case == MV__RPC_REQUEST__OP_EVENTS;
	cc.stream = events;
	rc = cli_call(&cc, &q.req, &resp_env, cli_print_progress, &o);
	if (rc != 0) {
		fprintf(stderr, "meshvisor %s: %s\n", o.cmd, cc.err);
	} else {
		const Mv__RpcResponse *r = resp_env->response;
		if (r->code != MV__RPC_CODE__RPC_OK) {
			fprintf(stderr, "meshvisor %s: the agent refused: %s\n", o.cmd, r->error);
			rc = CLI_EXIT_FAIL;
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_MEMBERS) {
			print_members(r->members, o.json);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_STATUS) {
			print_status(r->status, o.json);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_NODES) {
			print_nodes(r->nodes, o.json, q.req.op_case == MV__RPC_REQUEST__OP_NODE);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_VMS) {
			print_vms(r->vms, o.json, q.req.op_case == MV__RPC_REQUEST__OP_VM);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_VM_OP) {
			print_vm_op(r->vm_op, o.json);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_MIGRATION) {
			if (o.json)
				print_json(migration_json(r->migration));
			else
				migration_line(r->migration);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_MIGRATIONS) {
			print_migrations(r->migrations, o.json);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_DRAIN) {
			print_drain(r->drain, o.json);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_EVENT) {
			print_event(r->event, o.json); /* the last of a stream */
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_FAILOVERS) {
			print_failovers(r->failovers, o.json);
		} else if (r->result_case == MV__RPC_RESPONSE__RESULT_HA) {
			print_ha(r->ha, o.json);
			rc = cli_ha_exit_code(r->ha);
		} else if (o.json) {
			printf("{\"ok\": true}\n");
		} else if (q.req.op_case == MV__RPC_REQUEST__OP_JOIN) {
			printf("joining through %d seed%s\n", o.n_args, o.n_args == 1 ? "" : "s");
		} else if (q.req.op_case == MV__RPC_REQUEST__OP_FORCE_LEAVE) {
			printf("%s is removed from the voting set\n", o.args[0]);
		} else if (events) {
			printf("the agent ended the event stream\n");
		} else if (q.req.op_case == MV__RPC_REQUEST__OP_FAILOVERS ||
		           q.req.op_case == MV__RPC_REQUEST__OP_HA) {
			fprintf(stderr,
			        "meshvisor %s: the agent answered without a result; is it older "
			        "than this client?\n",
			        o.cmd);
			rc = CLI_EXIT_FAIL;
		} else {
			printf("the agent is leaving the cluster and will stop\n");
		}
		envelope_free(resp_env);
	}
	tls_conn_shutdown(cc.tls);
	cli_flush(&cc);
	cli_close(&cc);
	free(q.xml);
	free(o.args);
	return rc;
}
