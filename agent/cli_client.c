/*
 * cli_client.c — `meshvisor members | status | join | leave`: a small
 * blocking RPC client.
 *
 * It opens one TCP connection to the agent's RPC port, runs the TLS session
 * (tls.h, over memory BIOs) with blocking send/recv and a deadline, sends
 * one framed request and waits for the response with the same id. Every
 * failure is turned into one sentence on stderr that says what to check:
 * the address, the certificate files, or what the agent refused and why.
 *
 * Flags override environment variables (MESHVISOR_ADDR, MESHVISOR_CA,
 * MESHVISOR_CERT, MESHVISOR_KEY), as in consul and serf, so a shell set up
 * once needs no flags.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "envelope.h"
#include "meshvisor/frame.h"
#include "meshvisor/tls.h"
#include "net.h"

#define CLI_DEFAULT_ADDR "127.0.0.1:7947"
#define CLI_DEFAULT_TIMEOUT_MS 5000

struct cli_opts {
	const char *cmd;
	const char *addr;
	const char *ca, *cert, *key;
	bool json;
	int timeout_ms;
	char **args; /* positional arguments (join seeds) */
	int n_args;
};

struct cli_conn {
	int fd;
	struct tls_conn *tls;
	struct tls_ctx *ctx;
	struct frame_decoder dec;
	int64_t deadline;
	const char *addr;
	int timeout_ms;
	char err[768];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cli_usage(FILE *out, const char *cmd)
{
	fprintf(out,
	        "usage: meshvisor %s [options]%s\n"
	        "\n"
	        "  --addr HOST:PORT   agent RPC address (env MESHVISOR_ADDR, default %s)\n"
	        "  --ca FILE          cluster CA certificate (env MESHVISOR_CA)\n"
	        "  --cert FILE        your operator or viewer certificate (env MESHVISOR_CERT)\n"
	        "  --key FILE         its private key (env MESHVISOR_KEY)\n"
	        "  --json             machine-readable output\n"
	        "  --timeout MS       give up after this long (default %d)\n",
	        cmd, strcmp(cmd, "join") == 0 ? " SEED_ADDR..." : "", CLI_DEFAULT_ADDR,
	        CLI_DEFAULT_TIMEOUT_MS);
}

static int cli_parse(struct cli_opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->cmd = argv[0];
	o->addr = getenv("MESHVISOR_ADDR");
	o->ca = getenv("MESHVISOR_CA");
	o->cert = getenv("MESHVISOR_CERT");
	o->key = getenv("MESHVISOR_KEY");
	o->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	o->args = calloc((size_t)argc, sizeof(char *));
	if (o->args == NULL)
		return CLI_EXIT_FAIL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			cli_usage(stdout, o->cmd);
			return -1;
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		} else if (strcmp(a, "--addr") == 0) {
			slot = &o->addr;
		} else if (strcmp(a, "--ca") == 0) {
			slot = &o->ca;
		} else if (strcmp(a, "--cert") == 0) {
			slot = &o->cert;
		} else if (strcmp(a, "--key") == 0) {
			slot = &o->key;
		} else if (strcmp(a, "--timeout") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "meshvisor %s: --timeout needs a value in milliseconds\n",
				        o->cmd);
				return CLI_EXIT_USAGE;
			}
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > 3600000) {
				fprintf(stderr,
				        "meshvisor %s: --timeout: expected milliseconds from 1 to 3600000, "
				        "got '%s'\n", o->cmd, argv[i]);
				return CLI_EXIT_USAGE;
			}
			o->timeout_ms = (int)v;
			continue;
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "meshvisor %s: unknown flag %s: see 'meshvisor %s --help'\n",
			        o->cmd, a, o->cmd);
			return CLI_EXIT_USAGE;
		} else {
			o->args[o->n_args++] = argv[i];
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "meshvisor %s: %s needs a value\n", o->cmd, a);
			return CLI_EXIT_USAGE;
		}
		*slot = argv[++i];
	}
	if (o->addr == NULL || o->addr[0] == '\0')
		o->addr = CLI_DEFAULT_ADDR;
	if (strcmp(o->cmd, "join") == 0 && o->n_args == 0) {
		fprintf(stderr, "meshvisor join: give at least one seed address (IP:PORT)\n");
		return CLI_EXIT_USAGE;
	}
	if (strcmp(o->cmd, "join") != 0 && o->n_args > 0) {
		fprintf(stderr, "meshvisor %s: unexpected argument '%s'\n", o->cmd, o->args[0]);
		return CLI_EXIT_USAGE;
	}
	const char *missing = o->ca == NULL ? "--ca (or MESHVISOR_CA)"
	                      : o->cert == NULL ? "--cert (or MESHVISOR_CERT)"
	                      : o->key == NULL ? "--key (or MESHVISOR_KEY)" : NULL;
	if (missing != NULL) {
		fprintf(stderr, "meshvisor %s: no certificate given: set %s\n", o->cmd, missing);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

/* ---- blocking transport ---------------------------------------------------- */

static int cli_wait(struct cli_conn *cc, short events)
{
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

static int cli_connect(struct cli_conn *cc, const struct cli_opts *o)
{
	struct sockaddr_storage ss;
	if (net_parse_addr(o->addr, &ss) < 0) {
		snprintf(cc->err, sizeof(cc->err),
		         "invalid agent address '%s': expected IP:PORT or [IPv6]:PORT", o->addr);
		return CLI_EXIT_USAGE;
	}
	char terr[512];
	if (tls_ctx_new(&cc->ctx, false, o->ca, o->cert, o->key, terr, sizeof(terr)) < 0) {
		snprintf(cc->err, sizeof(cc->err), "cannot use the certificate: %s", terr);
		return CLI_EXIT_FAIL;
	}
	cc->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cc->fd < 0) {
		snprintf(cc->err, sizeof(cc->err), "socket: %s", strerror(errno));
		return CLI_EXIT_FAIL;
	}
	socklen_t sl = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                       : sizeof(struct sockaddr_in6);
	int rc = connect(cc->fd, (struct sockaddr *)&ss, sl);
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
		snprintf(cc->err, sizeof(cc->err), "cannot reach the agent at %s: %s%s", o->addr,
		         strerror(-rc),
		         rc == -ECONNREFUSED ? " (is it running, and is this its RPC port?)" : "");
		return CLI_EXIT_FAIL;
	}
	cc->tls = tls_conn_new(cc->ctx, NULL, TLS_ROLE_NODE, NULL);
	if (cc->tls == NULL) {
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
	if (cc->fd > 0)
		close(cc->fd);
	frame_decoder_close(&cc->dec);
}

static void cli_tls_failed(struct cli_conn *cc)
{
	snprintf(cc->err, sizeof(cc->err), "TLS with the agent at %s failed: %s", cc->addr,
	         tls_conn_error(cc->tls));
}

/* Sends one request and returns its decoded response envelope. */
static int cli_call(struct cli_conn *cc, Mv__RpcRequest *req, Mv__Envelope **out)
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
	char buf[65536];
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
		if (got > 0) {
			const uint8_t *p = plain;
			size_t left = (size_t)got;
			const uint8_t *payload;
			size_t plen;
			int frc = frame_decoder_next(&cc->dec, &p, &left, &payload, &plen);
			if (frc < 0) {
				snprintf(cc->err, sizeof(cc->err), "the agent sent an invalid frame");
				return CLI_EXIT_FAIL;
			}
			if (frc == 1) {
				const char *why;
				if (envelope_decode(payload, plen, out, &why) < 0) {
					snprintf(cc->err, sizeof(cc->err), "the agent sent a bad response: %s",
					         why);
					return CLI_EXIT_FAIL;
				}
				if ((*out)->body_case != MV__ENVELOPE__BODY_RESPONSE ||
				    (*out)->response->id != req->id) {
					envelope_free(*out);
					snprintf(cc->err, sizeof(cc->err),
					         "the agent answered something other than our request");
					return CLI_EXIT_FAIL;
				}
				return 0;
			}
			continue;
		}
		if (cli_flush(cc) < 0) {
			cli_tls_failed(cc);
			return CLI_EXIT_FAIL;
		}
		rc = cli_wait(cc, POLLIN);
		if (rc == -ETIMEDOUT) {
			snprintf(cc->err, sizeof(cc->err), "the agent at %s did not answer within %d ms",
			         cc->addr, cc->timeout_ms);
			return CLI_EXIT_FAIL;
		}
		ssize_t n = recv(cc->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			/* The agent dropped us: a TLS alert (if any) was already fed. */
			if (tls_conn_failed(cc->tls)) {
				cli_tls_failed(cc);
			} else if (!tls_conn_handshake_done(cc->tls)) {
				snprintf(cc->err, sizeof(cc->err),
				         "the agent at %s closed the connection during the TLS handshake "
				         "(is this its RPC port, and is your certificate from its cluster "
				         "CA?)", cc->addr);
			} else {
				snprintf(cc->err, sizeof(cc->err),
				         "the agent at %s closed the connection without answering", cc->addr);
			}
			return CLI_EXIT_FAIL;
		}
		if (tls_conn_feed(cc->tls, buf, (size_t)n) < 0) {
			cli_flush(cc);
			cli_tls_failed(cc);
			return CLI_EXIT_FAIL;
		}
	}
}

/* ---- output ------------------------------------------------------------------------ */

static const char *member_state_name(Mv__MemberState s)
{
	switch (s) {
	case MV__MEMBER_STATE__MEMBER_ALIVE: return "alive";
	case MV__MEMBER_STATE__MEMBER_SUSPECT: return "suspect";
	case MV__MEMBER_STATE__MEMBER_DEAD: return "dead";
	case MV__MEMBER_STATE__MEMBER_LEFT: return "left";
	default: return "unknown";
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
			json_object_object_add(o, "incarnation", json_object_new_uint64(m->incarnation));
			json_object_object_add(o, "since_unix_ms", json_object_new_int64(m->since_unix_ms));
			json_object_object_add(o, "cause", json_object_new_string(m->cause));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "members", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
		                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
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
		json_object_object_add(o, "started_unix_ms", json_object_new_int64(s->started_unix_ms));
		json_object_object_add(o, "uptime_ms", json_object_new_uint64(s->uptime_ms));
		json_object_object_add(o, "incarnation", json_object_new_uint64(s->incarnation));
		json_object_object_add(o, "local_health", json_object_new_int(s->local_health));
		json_object_object_add(o, "members_alive", json_object_new_int(s->members_alive));
		json_object_object_add(o, "members_suspect", json_object_new_int(s->members_suspect));
		json_object_object_add(o, "members_dead", json_object_new_int(s->members_dead));
		json_object_object_add(o, "members_left", json_object_new_int(s->members_left));
		json_object_object_add(o, "libvirt_uri", json_object_new_string(s->libvirt_uri));
		json_object_object_add(o, "libvirt_reachable",
		                       json_object_new_boolean(s->libvirt_reachable));
		json_object_object_add(o, "libvirt_error", json_object_new_string(s->libvirt_error));
		json_object_object_add(o, "peer_connections", json_object_new_int(s->peer_connections));
		json_object_object_add(o, "role", json_object_new_string(s->role));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
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
	       s->libvirt_reachable ? "reachable" : "UNREACHABLE",
	       s->libvirt_error[0] ? ": " : "", s->libvirt_error);
	printf("peer connections: %u\n", s->peer_connections);
	printf("your role:        %s\n", s->role);
}

int cli_client_main(int argc, char **argv)
{
	struct cli_opts o;
	int rc = cli_parse(&o, argc, argv);
	if (rc != 0) {
		free(o.args);
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	struct cli_conn cc = {.fd = -1, .addr = o.addr, .timeout_ms = o.timeout_ms};
	cc.deadline = mono_ms() + o.timeout_ms;
	rc = cli_connect(&cc, &o);
	if (rc != 0) {
		fprintf(stderr, "meshvisor %s: %s\n", o.cmd, cc.err);
		cli_close(&cc);
		free(o.args);
		return rc;
	}

	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	Mv__StatusRequest sreq = MV__STATUS_REQUEST__INIT;
	Mv__MembersRequest mreq = MV__MEMBERS_REQUEST__INIT;
	Mv__JoinRequest jreq = MV__JOIN_REQUEST__INIT;
	Mv__LeaveRequest lreq = MV__LEAVE_REQUEST__INIT;
	req.id = (uint64_t)mono_ms();
	if (strcmp(o.cmd, "status") == 0) {
		req.op_case = MV__RPC_REQUEST__OP_STATUS;
		req.status = &sreq;
	} else if (strcmp(o.cmd, "members") == 0) {
		req.op_case = MV__RPC_REQUEST__OP_MEMBERS;
		req.members = &mreq;
	} else if (strcmp(o.cmd, "join") == 0) {
		req.op_case = MV__RPC_REQUEST__OP_JOIN;
		jreq.seeds = o.args;
		jreq.n_seeds = (size_t)o.n_args;
		req.join = &jreq;
	} else {
		req.op_case = MV__RPC_REQUEST__OP_LEAVE;
		req.leave = &lreq;
	}

	Mv__Envelope *resp_env = NULL;
	rc = cli_call(&cc, &req, &resp_env);
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
		} else if (o.json) {
			printf("{\"ok\": true}\n");
		} else if (req.op_case == MV__RPC_REQUEST__OP_JOIN) {
			printf("joining through %d seed%s\n", o.n_args, o.n_args == 1 ? "" : "s");
		} else {
			printf("the agent is leaving the cluster and will stop\n");
		}
		envelope_free(resp_env);
	}
	tls_conn_shutdown(cc.tls);
	cli_flush(&cc);
	cli_close(&cc);
	free(o.args);
	return rc;
}
