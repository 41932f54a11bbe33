/*
 * net.c — libuv TCP streams carrying TLS sessions carrying frames (net.h).
 *
 * Data path of one connection:
 *
 *   socket --read_cb--> tls_conn_feed --tls_conn_read--> frame decoder --> owner's callback
 *   owner --net_*_send--> tls_conn_write --tls_conn_take_cipher--> uv_write --> socket
 *
 * Life of a connection: CONNECTING (outgoing only, TCP connect pending) ->
 * HANDSHAKE (TLS) -> ESTABLISHED -> CLOSING (uv_close called; freed in the
 * close callback). One sweep timer per struct net enforces the handshake
 * deadline and the idle timeout of every connection; an application-level
 * deadline is what keeps a dead peer's SYN retries or a stalled handshake
 * from holding anything up.
 *
 * Datagrams: one uv_udp_t bound with the first peer listener. Receive:
 * dgram_open (key table in dgram.c) --> on_peer_dgram(peer name). Send:
 * dgram_seal --> uv_udp_try_send (no request to allocate; a full socket
 * buffer drops the datagram, as loss would). Keys are installed in
 * net_conn_established for every peer-port session, both directions.
 *
 * Failures of outgoing connections are logged once per address per 30 s
 * (a table of NET_ADDR_SLOTS addresses, util/ratelimit.h); a refused
 * connect also reaches on_peer_refused, once per address per second.
 *
 * Connections (docs/transport.md, "Connections"): one per pair of agents.
 * A frame for a peer goes on the pooled connection to its address, else on
 * the established connection that peer opened to us (net_incoming_find:
 * its certificate proves the name the frame is for), else on a new pooled
 * one. The pool is a plain list searched by address, bounded by
 * max_out_conns (64 by default): to open another, the least recently used
 * *established* connection is evicted; a connection still connecting or
 * shaking hands is never cut off (cutting it threw the handshake away and
 * the next send started another: a storm), so with none to evict the frame
 * is dropped. Connections idle for idle_timeout_ms close; the datagram keys
 * their handshakes made stay in the key table (dgram.c) until they retire.
 * Rekeying: a datagram whose send key has come due (dgram_rekey_due,
 * staggered over 60..90% of the key's lifetime) starts a rekey handshake
 * on a connection outside the pool (net_rekey_start), at most max_rekeys
 * in flight, that closes NET_REKEY_LINGER_MS after installing fresh keys;
 * the datagram still goes under the old key. Invariants: a rekey
 * connection is never found by net_pool_find nor evicted; rekeys_pending
 * counts rekey connections not yet past their handshake (incremented
 * when one opens, decremented exactly once: at its handshake or, if it
 * never got there, at its close).
 *
 * Inbound limits (docs/limits.md): accepted connections are capped per
 * port (at accept; a full port first closes its oldest connection still
 * in its handshake) and per certificate CN and port (at the end of the
 * handshake, before a peer's datagram keys are installed); each
 * connection's frame decoder grows its buffer as bytes arrive within the
 * port's shared byte budget (n->budget[kind]); RPC frames get a per-op
 * cap from their first bytes (cfg.rpc_frame_cap: over it,
 * on_rpc_frame_refused and the bytes are skipped); the sweep closes a
 * connection whose frame is past its deadline. A connection refused at
 * accept is still uv_accept()ed (a fresh handle, or the listener's
 * scratch handle when there is no memory) and closed: libuv stops
 * watching a listener whose callback does not accept. Lines about all of
 * these share one rate limit (limit_rl, 10 s).
 *
 * An accepted RPC connection stops being read (paused) for two reasons:
 * its unsent replies passed NET_RPC_PAUSE_BYTES (backpressed, until
 * net_on_write drains them below NET_RPC_RESUME_BYTES), or it handed out
 * NET_RPC_FRAMES_PER_TURN frames (yielded, until resume_idle runs on the
 * next loop iteration). Invariant: paused == backpressed || yielded, and
 * only a paused connection has held bytes (plaintext decrypted but not
 * yet cut into frames), which are delivered first when it resumes; a
 * paused connection has no frame deadline.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dgram.h"
#include "frame.h"
#include "log.h"
#include "ratelimit.h"

#define NET_ADDR_MAX 64
#define NET_READ_CHUNK 65536
#define NET_SWEEP_MS 200
#define NET_ADDR_SLOTS 64      /* addresses whose failures we rate-limit */
#define NET_FAIL_LOG_MS 30000  /* one failure line per address per 30 s */
#define NET_REFUSED_CB_MS 1000 /* on_peer_refused once per address per s */
/* A peer counts as speaking UDP to us while one of its datagrams verified
 * within this long; until then (and again after it) messages go over TLS,
 * with one datagram a NET_DGRAM_PROBE_MS beside them so that it can hear
 * us. In steady state every peer sends us several datagrams a second
 * (probes, acks, heartbeats). */
#define NET_DGRAM_HEARD_MS 10000
#define NET_DGRAM_PROBE_MS 1000
/* Rekey handshakes: at most max_rekeys in flight (default below); one that
 * could not start, or failed, is tried again after NET_REKEY_RETRY_MS; a
 * rekey connection lingers NET_REKEY_LINGER_MS after its handshake (the
 * server's session ticket arrives, so the next one resumes), then closes. */
#define NET_MAX_REKEYS 4
#define NET_REKEY_RETRY_MS 5000
#define NET_REKEY_LINGER_MS 1000
/* a rekey started by an unauthenticated hint (net_connect) at most this
 * often per peer, and only if no datagram of the peer verified within
 * NET_REKEY_HINT_HEARD_MS (a member heartbeats every second) */
#define NET_REKEY_HINT_COOLDOWN_MS 30000
#define NET_REKEY_HINT_HEARD_MS 3000
/* the least an accepted connection gets for its handshake (net_conn_alloc) */
#define NET_ACCEPT_HANDSHAKE_MS 10000
/* Inbound limits (net.h, docs/limits.md): defaults of the net_config keys,
 * and one log line per NET_LIMIT_LOG_MS for the connections they close. */
#define NET_MAX_RPC_CONNS 256
#define NET_MAX_PEER_IN_CONNS 1024
#define NET_MAX_CONNS_PER_CERT 32
#define NET_MAX_PEER_CONNS_PER_CERT 16
#define NET_RPC_INBOUND_BUDGET (64u * 1024 * 1024)
#define NET_PEER_INBOUND_BUDGET (256u * 1024 * 1024)
#define NET_LIMIT_LOG_MS 10000
/* RPC backpressure: an accepted RPC connection whose replies wait unsent
 * (the client does not read them) past NET_RPC_PAUSE_BYTES is not read
 * from until they drain below NET_RPC_RESUME_BYTES. */
#define NET_RPC_PAUSE_BYTES (256u * 1024)
#define NET_RPC_RESUME_BYTES (64u * 1024)
/* Fairness: an RPC connection hands out at most this many frames, then
 * yields (stops reading) until the next loop iteration: a client
 * pipelining thousands of requests cannot hold the loop for all of them
 * at once (libuv reads up to 32 chunks of 64 KiB per stream in a row). */
#define NET_RPC_FRAMES_PER_TURN 64

enum net_conn_state { NC_CONNECTING, NC_HANDSHAKE, NC_ESTABLISHED, NC_CLOSING };

struct net_conn {
	uv_tcp_t tcp;
	struct net *net;
	struct net_conn *next, *prev;
	enum net_kind kind;
	bool outgoing;
	enum net_conn_state state;
	struct tls_conn *tls;
	struct frame_decoder dec;
	char addr[NET_ADDR_MAX];   /* outgoing: pool key (peer's advertised address) */
	char remote[NET_ADDR_MAX]; /* socket's remote ip:port */
	char expect_name[64];
	uint64_t deadline; /* handshake deadline (uv_now ms) */
	uint64_t last_used;
	size_t queued_bytes; /* ciphertext handed to uv_write, not yet written */
	uv_connect_t connect_req;
	/* opened only to make fresh datagram keys: not in the pool (never
	 * found, never evicted), closes NET_REKEY_LINGER_MS after its
	 * handshake (deadline) */
	bool rekey;
	bool rekey_done; /* its handshake completed (no longer pending) */
	/* accepted RPC only: reading stopped (the essay above); the plaintext
	 * decrypted but not yet cut into frames waits in held */
	bool paused;      /* for one of the reasons below */
	bool backpressed; /* ... its replies wait unsent */
	bool yielded;     /* ... it had its turn (NET_RPC_FRAMES_PER_TURN) */
	uint32_t turn_frames;
	uint8_t *held;
	size_t held_len;
};

/* Per peer address: the rate limits of its failure lines and of
 * on_peer_refused (a bounded table, least recently seen replaced). */
struct net_addr_slot {
	char addr[NET_ADDR_MAX];
	uint64_t last_seen;
	struct mv_ratelimit log_rl;
	struct mv_ratelimit refused_rl;
	struct mv_ratelimit unknown_key_rl;
};

struct net_listener {
	uv_tcp_t tcp;
	struct net *net;
	enum net_kind kind;
	struct net_listener *next;
	/* accepts a connection we cannot keep (no memory), to close it: libuv
	 * stops watching a listener whose callback did not uv_accept */
	uv_tcp_t scratch;
	bool scratch_busy;   /* closing; its close callback accepts again */
	bool accept_waiting; /* a connection waits for the scratch handle */
	bool closing;        /* net_close called */
	bool tcp_closed;     /* ... and the listening handle is closed */
};

/* A peer certificate that datagram keys were made with (tls_cert) and
 * whether the material in force distrusts it (set by net_close_revoked). */
struct net_cert_ref {
	uint8_t id[TLS_CERT_ID_LEN];
	struct tls_cert *x;
	bool distrusted;
};

struct net {
	struct net_config cfg;
	uv_timer_t sweep;
	struct net_conn *conns; /* every live connection */
	struct net_listener *listeners;
	struct net_stats stats;
	struct dgram_table *dgram;
	uv_udp_t *udp; /* bound with the first peer listener; NULL until then */
	struct net_addr_slot addr_slots[NET_ADDR_SLOTS];
	bool closing;
	unsigned pending_closes;
	uint32_t rekey_conns;          /* open rekey connections (counted in out_conns too) */
	uint32_t rekeys_pending;       /* ... of them not yet past their handshake */
	struct frame_budget budget[2]; /* bytes of unfinished inbound frames, by kind */
	struct mv_ratelimit limit_rl;  /* lines about connections closed by a limit */
	struct mv_ratelimit aside_rl;  /* lines about a second certificate's keys */
	uint64_t cert_dials_seen;      /* dgram_stats.proof_rekeys already logged */
	/* the certificates datagram keys were made with (net_cert_keep), to
	 * judge them again after a reload: n_certs of cap_certs */
	struct net_cert_ref *certs;
	size_t n_certs, cap_certs;
	uv_idle_t resume_idle; /* resumes yielded connections, next iteration */
	void (*close_done)(void *);
	void *close_arg;
};

struct net_write {
	uv_write_t req;
	struct net_conn *conn;
	size_t len;
	char data[];
};

static void net_conn_flush(struct net_conn *c);
static void net_maybe_finish_close(struct net *n);

/* ---- addresses ----------------------------------------------------------- */

int net_parse_addr(const char *addr, struct sockaddr_storage *out)
{
	char host[NET_ADDR_MAX];
	const char *port_s;
	if (addr == NULL || strlen(addr) >= sizeof(host))
		return -EINVAL;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		size_t hl = (size_t)(end - addr - 1);
		memcpy(host, addr + 1, hl);
		host[hl] = '\0';
		port_s = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		size_t hl = (size_t)(colon - addr);
		memcpy(host, addr, hl);
		host[hl] = '\0';
		port_s = colon + 1;
	}
	char *endp;
	long port = strtol(port_s, &endp, 10);
	if (*port_s == '\0' || *endp != '\0' || port < 1 || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
		return 0;
	return -EINVAL;
}

static void net_format_sockaddr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		uv_ip4_name(s4, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		uv_ip6_name(s6, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

/* ---- per-address rate limits ------------------------------------------------ */

static struct net_addr_slot *net_addr_slot(struct net *n, const char *addr)
{
	uint64_t now = uv_now(n->cfg.loop);
	struct net_addr_slot *free_slot = NULL, *oldest = NULL;
	for (size_t i = 0; i < NET_ADDR_SLOTS; i++) {
		struct net_addr_slot *s = &n->addr_slots[i];
		if (s->addr[0] != '\0' && strcmp(s->addr, addr) == 0) {
			s->last_seen = now;
			return s;
		}
		if (s->addr[0] == '\0' && free_slot == NULL)
			free_slot = s;
		if (oldest == NULL || s->last_seen < oldest->last_seen)
			oldest = s;
	}
	struct net_addr_slot *s = free_slot ? free_slot : oldest;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	s->last_seen = now;
	mv_ratelimit_init(&s->log_rl, NET_FAIL_LOG_MS);
	mv_ratelimit_init(&s->refused_rl, NET_REFUSED_CB_MS);
	mv_ratelimit_init(&s->unknown_key_rl, NET_REFUSED_CB_MS);
	return s;
}

/* May the failure line of an outgoing connection to addr be written now?
 * *held: lines held back since the last one. */
static bool net_fail_log_allowed(struct net *n, const char *addr, uint64_t *held)
{
	return mv_ratelimit_allow(&net_addr_slot(n, addr)->log_rl, uv_now(n->cfg.loop), held);
}

/* " suppressed=N" (lines held back since the last one) or "" */
static void net_suppressed_field(char *out, size_t len, uint64_t held)
{
	if (held > 0)
		snprintf(out, len, " suppressed=%" PRIu64, held);
	else
		out[0] = '\0';
}

/* ---- connection life ------------------------------------------------------ */

static const char *kind_name(enum net_kind k)
{
	return k == NET_PEER ? "peer" : "rpc";
}

static struct net_conn *net_conn_alloc(struct net *n, enum net_kind kind, bool outgoing)
{
	struct net_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->net = n;
	c->kind = kind;
	c->outgoing = outgoing;
	c->state = outgoing ? NC_CONNECTING : NC_HANDSHAKE;
	/* An accepted handshake gets longer: the client's own deadline bounds
	 * its wait, ours only frees a stalled socket. And a loop stalled by a
	 * burst of handshakes (startup: every peer at once) runs the sweep
	 * before it reads a Finished already waiting in the socket; cutting
	 * that handshake left the client with datagram keys we never
	 * installed, its datagrams to us dropped as "unknown key". */
	uint32_t hs = n->cfg.handshake_timeout_ms;
	if (!outgoing && hs < NET_ACCEPT_HANDSHAKE_MS)
		hs = NET_ACCEPT_HANDSHAKE_MS;
	c->deadline = uv_now(n->cfg.loop) + hs;
	c->last_used = uv_now(n->cfg.loop);
	frame_decoder_init(&c->dec, FRAME_MAX);
	frame_decoder_limit(&c->dec, &n->budget[kind],
	                    kind == NET_RPC && !outgoing ? n->cfg.rpc_frame_cap : NULL, c);
	uv_tcp_init(n->cfg.loop, &c->tcp);
	c->tcp.data = c;
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	if (outgoing)
		n->stats.out_conns++;
	else
		n->stats.in_conns++;
	if (!outgoing && kind == NET_PEER)
		n->stats.in_peer_conns++;
	return c;
}

static void net_conn_on_closed(uv_handle_t *h)
{
	struct net_conn *c = h->data;
	struct net *n = c->net;
	tls_conn_free(c->tls);
	frame_decoder_close(&c->dec);
	free(c->held);
	free(c);
	n->pending_closes--;
	net_maybe_finish_close(n);
}

void net_conn_close(struct net_conn *c, const char *reason)
{
	if (c->state == NC_CLOSING)
		return;
	struct net *n = c->net;
	bool was_established = c->state == NC_ESTABLISHED;
	c->state = NC_CLOSING;
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->outgoing)
		n->stats.out_conns--;
	else
		n->stats.in_conns--;
	if (!c->outgoing && c->kind == NET_PEER)
		n->stats.in_peer_conns--;
	if (c->rekey) {
		n->rekey_conns--;
		if (!c->rekey_done)
			n->rekeys_pending--;
	}
	if (n->cfg.on_conn_closed != NULL)
		n->cfg.on_conn_closed(n, c, n->cfg.ud);
	const char *peer = c->tls ? tls_conn_peer_name(c->tls) : "";
	if (reason != NULL && reason[0] != '\0') {
		char q[512];
		enum mv_log_level lvl = was_established ? MV_LOG_DEBUG : MV_LOG_INFO;
		if (strncmp(reason, "idle", 4) == 0 || strncmp(reason, "peer closed", 11) == 0 ||
		    strncmp(reason, "rekey", 5) == 0 || n->closing)
			lvl = MV_LOG_DEBUG;
		uint64_t held = 0;
		/* a dead peer's refused connects: one line per address per 30 s */
		if (lvl == MV_LOG_INFO && c->outgoing && !net_fail_log_allowed(n, c->addr, &held))
			lvl = MV_LOG_DEBUG;
		char sup[48];
		net_suppressed_field(sup, sizeof(sup), held);
		mv_log(lvl, "net", "connection closed kind=%s dir=%s remote=%s peer=%s reason=%s%s",
		       kind_name(c->kind), c->outgoing ? "out" : "in",
		       c->outgoing ? c->addr : c->remote, peer[0] ? peer : "-",
		       mv_log_quote(q, sizeof(q), reason), sup);
	}
	n->pending_closes++;
	uv_close((uv_handle_t *)&c->tcp, net_conn_on_closed);
}

/* Logs why c closes ("<what> kind=... reason=... [suppressed=N]"), then
 * closes it. */
static void net_conn_log_close(struct net_conn *c, enum mv_log_level lvl, const char *what,
                               const char *reason, uint64_t held)
{
	char q[512], sup[48];
	const char *peer = c->tls ? tls_conn_peer_name(c->tls) : "";
	net_suppressed_field(sup, sizeof(sup), held);
	mv_log(lvl, "net", "%s kind=%s dir=%s remote=%s peer=%s reason=%s%s", what,
	       kind_name(c->kind), c->outgoing ? "out" : "in", c->outgoing ? c->addr : c->remote,
	       peer[0] ? peer : "-", mv_log_quote(q, sizeof(q), reason), sup);
	net_conn_close(c, NULL);
}

/* A connection refused for what the other side did (bad certificate, role,
 * frame): always worth a WARN line with the reason, then closed. */
static void net_conn_reject(struct net_conn *c, const char *reason)
{
	c->net->stats.rejected++;
	uint64_t held = 0;
	/* an outgoing handshake that keeps failing (timed out, refused
	 * certificate): one line per address per 30 s, the rest at DEBUG */
	enum mv_log_level lvl = MV_LOG_WARN;
	if (c->outgoing && !net_fail_log_allowed(c->net, c->addr, &held))
		lvl = MV_LOG_DEBUG;
	net_conn_log_close(c, lvl, "rejected connection", reason, held);
}

/* A connection closed by an inbound limit (net.h): a hostile client can
 * make thousands, so one WARN line per NET_LIMIT_LOG_MS for all of them,
 * with the number held back; the rest at DEBUG. */
static void net_conn_limit_close(struct net_conn *c, uint64_t *counter, const char *reason)
{
	struct net *n = c->net;
	uint64_t held = 0;
	(*counter)++;
	enum mv_log_level lvl = MV_LOG_DEBUG;
	if (mv_ratelimit_allow(&n->limit_rl, uv_now(n->cfg.loop), &held))
		lvl = MV_LOG_WARN;
	net_conn_log_close(c, lvl, "limit: closed connection", reason, held);
}

/* ---- writing ----------------------------------------------------------------- */

static void net_conn_resume(struct net_conn *c);

static void net_conn_pause(struct net_conn *c)
{
	if (!c->paused) {
		c->paused = true;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

static void net_on_resume_idle(uv_idle_t *h)
{
	struct net *n = h->data;
	bool again = false;
	for (struct net_conn *c = n->conns; c != NULL;) {
		struct net_conn *next = c->next;
		if (c->yielded && c->state != NC_CLOSING) {
			c->yielded = false;
			net_conn_resume(c);
			again |= c->yielded; /* had a full turn again: next iteration */
		}
		c = next;
	}
	if (!again)
		uv_idle_stop(h);
}

/* c had its turn: no more of its frames until the next loop iteration. */
static void net_conn_yield(struct net_conn *c)
{
	c->yielded = true;
	c->turn_frames = 0;
	net_conn_pause(c);
	if (!uv_is_active((uv_handle_t *)&c->net->resume_idle))
		uv_idle_start(&c->net->resume_idle, net_on_resume_idle);
}
static void net_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void net_on_write(uv_write_t *req, int status)
{
	struct net_write *w = (struct net_write *)req;
	struct net_conn *c = w->conn;
	c->queued_bytes -= w->len;
	if (status == 0)
		c->net->stats.bytes_out += w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED && c->state != NC_CLOSING)
		net_conn_close(c, uv_strerror(status));
	else if (c->backpressed && c->state != NC_CLOSING &&
	         c->queued_bytes <= NET_RPC_RESUME_BYTES) {
		c->backpressed = false;
		net_conn_resume(c);
	}
}

/* Moves all ciphertext the TLS session has produced onto the socket. Each
 * write is allocated at the size it carries (a 64 KiB buffer for a
 * 300-byte reply made unread replies cost 200 times what they counted). */
static void net_conn_flush(struct net_conn *c)
{
	static uint8_t chunk[NET_READ_CHUNK]; /* one loop thread; copied out at once */
	if (c->state == NC_CONNECTING || c->state == NC_CLOSING)
		return;
	for (;;) {
		size_t got = tls_conn_take_cipher(c->tls, chunk, sizeof(chunk));
		if (got == 0)
			break;
		struct net_write *w = malloc(sizeof(*w) + got);
		if (w == NULL) {
			net_conn_close(c, "out of memory");
			return;
		}
		memcpy(w->data, chunk, got);
		w->conn = c;
		w->len = got;
		uv_buf_t b = uv_buf_init(w->data, (unsigned)got);
		int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, net_on_write);
		if (rc < 0) {
			free(w);
			net_conn_close(c, uv_strerror(rc));
			return;
		}
		c->queued_bytes += got;
	}
	if (!c->backpressed && !c->outgoing && c->kind == NET_RPC &&
	    c->queued_bytes > NET_RPC_PAUSE_BYTES) {
		/* the client does not read its replies: stop reading its requests */
		c->backpressed = true;
		net_conn_pause(c);
		c->net->stats.rpc_pauses++;
	}
}

static int net_conn_queue_frame(struct net_conn *c, const uint8_t *frame, size_t len)
{
	if (c->state == NC_CLOSING)
		return -ENOTCONN;
	if (c->queued_bytes + len > c->net->cfg.max_queued_bytes) {
		c->net->stats.dropped++;
		MV_DEBUG("net", "frame dropped: send queue full remote=%s queued=%zu",
		         c->outgoing ? c->addr : c->remote, c->queued_bytes);
		return -ENOBUFS;
	}
	if (tls_conn_write(c->tls, frame, len) < 0) {
		net_conn_close(c, tls_conn_error(c->tls));
		return -EIO;
	}
	c->last_used = uv_now(c->net->cfg.loop);
	c->net->stats.frames_out++;
	net_conn_flush(c);
	return 0;
}

int net_conn_send(struct net_conn *c, const uint8_t *frame, size_t len)
{
	return net_conn_queue_frame(c, frame, len);
}

size_t net_conn_unacked(const struct net_conn *c)
{
	/* not c->queued_bytes: a write the kernel took is counted there until
	 * its callback runs, and would be counted twice */
	size_t n = uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
	uv_os_fd_t fd;
	int outq = 0;
	/* SIOCOUTQ: bytes in the kernel's send queue that the peer has not
	 * acknowledged yet (sent or not) */
	if (c->state != NC_CLOSING && uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0 &&
	    ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
		n += (size_t)outq;
	return n;
}

/* ---- reading --------------------------------------------------------------- */

static void net_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static char chunk[NET_READ_CHUNK]; /* one loop thread; consumed before returning */
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Does c's peer hold a certificate (issuer and serial) known and other
 * than `id`? A second certificate the CA issued for a name is another
 * party: it neither shares the name's connection cap nor gets frames meant
 * for the member. */
static bool net_conn_other_cert(const struct net_conn *c, const uint8_t id[TLS_CERT_ID_LEN])
{
	uint8_t cid[TLS_CERT_ID_LEN];
	return tls_conn_peer_cert_id(c->tls, cid) && memcmp(cid, id, sizeof(cid)) != 0;
}

/* Keeps the certificate of c's handshake, whose datagram keys were just
 * installed under its identity id, so that a trust change can judge keys
 * that outlive their connection (net_close_revoked). Guarantees: one
 * entry per identity (the first kept: identity is issuer and serial), and
 * memory bounded by the datagram table: entries whose identity no key
 * holds any more are dropped before the array grows. Out of memory: not
 * kept (its keys are then judged only through an open connection). */
static void net_cert_keep(struct net *n, const uint8_t id[TLS_CERT_ID_LEN], struct tls_conn *tls)
{
	for (size_t i = 0; i < n->n_certs; i++)
		if (memcmp(n->certs[i].id, id, TLS_CERT_ID_LEN) == 0)
			return;
	if (n->n_certs == n->cap_certs) {
		size_t w = 0;
		for (size_t i = 0; i < n->n_certs; i++) {
			if (dgram_holds_cert(n->dgram, n->certs[i].id))
				n->certs[w++] = n->certs[i];
			else
				tls_cert_free(n->certs[i].x);
		}
		n->n_certs = w;
	}
	if (n->n_certs == n->cap_certs) {
		size_t cap = n->cap_certs ? 2 * n->cap_certs : 16;
		struct net_cert_ref *a = realloc(n->certs, cap * sizeof(*a));
		if (a == NULL)
			return;
		n->certs = a;
		n->cap_certs = cap;
	}
	struct tls_cert *x = tls_conn_peer_cert(tls);
	if (x == NULL)
		return;
	struct net_cert_ref *r = &n->certs[n->n_certs++];
	memcpy(r->id, id, TLS_CERT_ID_LEN);
	r->x = x;
	r->distrusted = false;
}

/* dgram_forget_certs_if's question: the verdict net_close_revoked just
 * took for that certificate (one we never kept: not judged, kept). */
static bool net_cert_distrusted(const uint8_t *cert, void *arg)
{
	struct net *n = arg;
	for (size_t i = 0; i < n->n_certs; i++)
		if (memcmp(n->certs[i].id, cert, TLS_CERT_ID_LEN) == 0)
			return n->certs[i].distrusted;
	return false;
}

static void net_certs_free(struct net *n)
{
	for (size_t i = 0; i < n->n_certs; i++)
		tls_cert_free(n->certs[i].x);
	free(n->certs);
	n->certs = NULL;
	n->n_certs = n->cap_certs = 0;
}

/* Every completed peer-port handshake (either direction) gives both ends
 * fresh datagram keys for this peer (dgram.c explains the scheme), kept
 * per certificate: a second certificate the CA issued for the name cannot
 * take the name's datagrams from the peer that uses it (dgram.h,
 * dgram_install_cert). */
static void net_conn_install_dgram_keys(struct net_conn *c)
{
	struct net *n = c->net;
	uint8_t m[DGRAM_MATERIAL_LEN], cert[TLS_CERT_ID_LEN];
	const char *peer = tls_conn_peer_name(c->tls);
	bool has_cert = tls_conn_peer_cert_id(c->tls, cert);
	int rc = tls_conn_export(c->tls, DGRAM_EXPORTER_LABEL, m, sizeof(m));
	if (rc == 0)
		rc = dgram_install_cert(n->dgram, peer, m, sizeof(m), !tls_conn_is_server(c->tls),
		                        has_cert ? cert : NULL, uv_now(n->cfg.loop));
	explicit_bzero(m, sizeof(m));
	if (rc < 0) {
		MV_WARN("net", "no datagram keys from handshake peer=%s remote=%s error=%s", peer,
		        c->outgoing ? c->addr : c->remote, strerror(-rc));
		return;
	}
	if (has_cert)
		net_cert_keep(n, cert, c->tls);
	if (rc == DGRAM_INSTALLED_ASIDE || rc == DGRAM_INSTALLED_ASIDE_REDIAL) {
		n->stats.dgram_keys_aside++;
		uint64_t held = 0;
		if (mv_ratelimit_allow(&n->aside_rl, uv_now(n->cfg.loop), &held))
			MV_WARN("net",
			        "second certificate for peer=%s remote=%s: its datagram keys kept "
			        "aside, %s (revoke the certificate that is not the member's in the "
			        "CRL, unless this is a rotation) held=%" PRIu64,
			        peer, c->outgoing ? c->addr : c->remote,
			        rc == DGRAM_INSTALLED_ASIDE
			            ? "ours sealed for the certificate we dialed"
			            : "ours retired: we dial the member to learn which it uses",
			        held);
		return;
	}
	MV_DEBUG("net", "datagram keys installed peer=%s dir=%s", peer, c->outgoing ? "out" : "in");
}

static void net_conn_established(struct net_conn *c)
{
	c->state = NC_ESTABLISHED;
	enum tls_role role = tls_conn_peer_role(c->tls);
	if (c->kind == NET_PEER && role != TLS_ROLE_NODE) {
		char why[128];
		snprintf(why, sizeof(why), "peer port accepts only node certificates, got role %s",
		         tls_role_name(role));
		net_conn_reject(c, why);
		return;
	}
	if (!c->outgoing) {
		/* per-certificate cap: one client (or node) cannot take every slot */
		const char *name = tls_conn_peer_name(c->tls);
		uint32_t cap = c->kind == NET_RPC ? c->net->cfg.max_conns_per_cert
		                                  : c->net->cfg.max_peer_conns_per_cert;
		/* per certificate (issuer and serial), not per name: a second
		 * certificate the CA issued for a name cannot fill the real
		 * holder's share */
		uint8_t id[TLS_CERT_ID_LEN];
		bool has_id = tls_conn_peer_cert_id(c->tls, id);
		uint32_t same = 0;
		for (struct net_conn *o = c->net->conns; o != NULL; o = o->next)
			if (o != c && !o->outgoing && o->kind == c->kind &&
			    o->state == NC_ESTABLISHED &&
			    strcmp(tls_conn_peer_name(o->tls), name) == 0 &&
			    !(has_id && net_conn_other_cert(o, id)))
				same++;
		if (same >= cap) {
			char why[128];
			snprintf(why, sizeof(why),
			         "certificate %s already has %u connections (cap)", name, same);
			net_conn_limit_close(c, &c->net->stats.conn_cap_closes, why);
			return;
		}
	}
	if (c->outgoing && tls_conn_resumed(c->tls))
		c->net->stats.resumed++;
	if (c->kind == NET_PEER) {
		if (c->outgoing)
			c->net->stats.handshakes_out++;
		else
			c->net->stats.handshakes_in++;
		net_conn_install_dgram_keys(c);
	}
	if (c->rekey) {
		/* done: the sweep closes it after the linger */
		c->rekey_done = true;
		c->net->rekeys_pending--;
		c->deadline = uv_now(c->net->cfg.loop) + NET_REKEY_LINGER_MS;
	}
	MV_DEBUG("net",
	         "connection established kind=%s dir=%s remote=%s peer=%s role=%s resumed=%d",
	         kind_name(c->kind), c->outgoing ? "out" : "in", c->outgoing ? c->addr : c->remote,
	         tls_conn_peer_name(c->tls), tls_role_name(role), tls_conn_resumed(c->tls));
}

/* Cuts plaintext into frames and hands each to the owner. Stops early when
 * the connection closes (false) or is paused by backpressure (false; the
 * bytes not yet cut wait in c->held). True: all consumed. */
static bool net_conn_frames(struct net_conn *c, const uint8_t *p, size_t left)
{
	while (c->state != NC_CLOSING) {
		if (!c->paused && c->turn_frames >= NET_RPC_FRAMES_PER_TURN)
			net_conn_yield(c);
		if (c->paused) {
			if (left > 0) {
				uint8_t *h = malloc(left);
				if (h == NULL) {
					net_conn_close(c, "out of memory");
					return false;
				}
				memcpy(h, p, left);
				c->held = h;
				c->held_len = left;
			}
			return false;
		}
		const uint8_t *payload;
		size_t plen;
		int rc = frame_decoder_next_at(&c->dec, uv_now(c->net->cfg.loop), &p, &left,
		                               &payload, &plen);
		if (rc == 0)
			return true;
		if (rc == -EFBIG) {
			/* over the request's cap: its bytes are skipped */
			c->net->stats.frames_over_cap++;
			if (c->net->cfg.on_rpc_frame_refused != NULL)
				c->net->cfg.on_rpc_frame_refused(
				    c->net, c, payload, plen, (uint32_t)c->dec.need,
				    c->dec.refused_cap, c->net->cfg.ud);
			continue;
		}
		if (rc == -ENOBUFS) {
			char why[128];
			snprintf(why, sizeof(why),
			         "inbound byte budget of the %s port full (%zu bytes buffered)",
			         kind_name(c->kind), c->net->budget[c->kind].used);
			net_conn_limit_close(c, &c->net->stats.budget_closes, why);
			return false;
		}
		if (rc < 0) {
			net_conn_reject(c, rc == -EMSGSIZE ? "frame length 0 or over the 4 MiB cap"
			                                   : "out of memory for frame");
			return false;
		}
		c->net->stats.frames_in++;
		if (c->kind == NET_RPC && !c->outgoing)
			c->turn_frames++;
		c->last_used = uv_now(c->net->cfg.loop);
		net_frame_cb cb =
		    c->kind == NET_PEER ? c->net->cfg.on_peer_frame : c->net->cfg.on_rpc_frame;
		cb(c->net, c, payload, plen, c->net->cfg.ud);
	}
	return false;
}

static void net_conn_deliver(struct net_conn *c)
{
	static uint8_t plain[NET_READ_CHUNK];
	if (c->held != NULL && !c->paused) {
		uint8_t *h = c->held;
		size_t n = c->held_len;
		c->held = NULL;
		c->held_len = 0;
		bool go = net_conn_frames(c, h, n);
		free(h);
		if (!go)
			return;
	}
	for (;;) {
		if (c->state == NC_CLOSING || c->paused)
			return;
		ssize_t got = tls_conn_read(c->tls, plain, sizeof(plain));
		if (got == 0)
			return;
		if (got == -ECONNRESET) {
			net_conn_close(c, "peer closed the connection");
			return;
		}
		if (got < 0) {
			net_conn_reject(c, tls_conn_error(c->tls));
			return;
		}
		if (!net_conn_frames(c, plain, (size_t)got))
			return;
	}
}

/* Reading again once no reason to pause is left (the replies drained, the
 * turn came back): the held bytes first. */
static void net_conn_resume(struct net_conn *c)
{
	if (!c->paused || c->backpressed || c->yielded || c->state == NC_CLOSING)
		return;
	c->paused = false;
	int rc = uv_read_start((uv_stream_t *)&c->tcp, net_alloc, net_on_read);
	if (rc < 0) {
		net_conn_close(c, uv_strerror(rc));
		return;
	}
	net_conn_deliver(c);
	if (c->state != NC_CLOSING)
		net_conn_flush(c);
}

static void net_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct net_conn *c = s->data;
	if (c->state == NC_CLOSING)
		return;
	if (nread < 0) {
		net_conn_close(c, nread == UV_EOF ? "peer closed the connection"
		                                  : uv_strerror((int)nread));
		return;
	}
	if (nread == 0)
		return;
	c->net->stats.bytes_in += (uint64_t)nread;
	int rc = tls_conn_feed(c->tls, buf->base, (size_t)nread);
	net_conn_flush(c); /* handshake replies, alerts */
	if (c->state == NC_CLOSING)
		return;
	if (rc < 0) {
		net_conn_reject(c, tls_conn_error(c->tls));
		return;
	}
	if (c->state == NC_HANDSHAKE && tls_conn_handshake_done(c->tls)) {
		net_conn_established(c);
		net_conn_flush(c); /* frames queued before the handshake */
	}
	net_conn_deliver(c);
	if (c->state != NC_CLOSING)
		net_conn_flush(c);
}

/* ---- accepting ------------------------------------------------------------------ */

static void net_on_accept(uv_stream_t *server, int status);
static void net_on_handle_closed(uv_handle_t *h);

static void net_on_scratch_closed(uv_handle_t *h)
{
	struct net_listener *l = h->data;
	struct net *n = l->net;
	l->scratch_busy = false;
	if (l->closing) {
		if (l->tcp_closed)
			free(l);
		n->pending_closes--;
		net_maybe_finish_close(n);
		return;
	}
	n->pending_closes--;
	if (l->accept_waiting) {
		l->accept_waiting = false;
		net_on_accept((uv_stream_t *)&l->tcp, 0);
	}
}

/* A connection we will not keep (a cap, or no memory for it): accept it
 * and close it at once, so that libuv keeps watching the listener (it
 * stops until uv_accept when a callback returns without accepting). It
 * goes into a fresh handle, or, with no memory for one, into the
 * listener's scratch handle; with the scratch still closing, the accept
 * waits for its close callback. */
static void net_accept_drop(struct net_listener *l, const char *why)
{
	struct net *n = l->net;
	uv_tcp_t *h = malloc(sizeof(*h));
	if (h == NULL && l->scratch_busy) {
		l->accept_waiting = true;
		return;
	}
	n->stats.accept_drops++;
	uint64_t held = 0;
	if (mv_ratelimit_allow(&n->limit_rl, uv_now(n->cfg.loop), &held))
		MV_WARN(
		    "net",
		    "limit: dropped incoming connection kind=%s reason=\"%s\" suppressed=%" PRIu64,
		    kind_name(l->kind), why, held);
	if (h != NULL) {
		uv_tcp_init(n->cfg.loop, h);
		h->data = n;
		(void)uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)h);
		n->pending_closes++;
		uv_close((uv_handle_t *)h, net_on_handle_closed);
		return;
	}
	uv_tcp_init(n->cfg.loop, &l->scratch);
	l->scratch.data = l;
	l->scratch_busy = true;
	(void)uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&l->scratch);
	n->pending_closes++;
	uv_close((uv_handle_t *)&l->scratch, net_on_scratch_closed);
}

static void net_on_accept(uv_stream_t *server, int status)
{
	struct net_listener *l = server->data;
	struct net *n = l->net;
	if (status < 0) {
		MV_WARN("net", "accept failed kind=%s error=%s", kind_name(l->kind),
		        uv_strerror(status));
		return;
	}
	uint32_t in_kind = l->kind == NET_PEER ? n->stats.in_peer_conns
	                                       : n->stats.in_conns - n->stats.in_peer_conns;
	uint32_t cap = l->kind == NET_PEER ? n->cfg.max_peer_in_conns : n->cfg.max_rpc_conns;
	if (in_kind >= cap) {
		/* Full. A connection still in its handshake has proven nothing:
		 * the oldest such one makes room (half-open connections from a
		 * party without a certificate cannot keep the port for
		 * themselves); with every slot authenticated, the new one goes. */
		struct net_conn *oldest = NULL;
		for (struct net_conn *o = n->conns; o != NULL; o = o->next)
			if (!o->outgoing && o->kind == l->kind && o->state == NC_HANDSHAKE)
				oldest = o; /* the list is newest first */
		if (oldest != NULL) {
			net_conn_limit_close(oldest, &n->stats.conn_cap_closes,
			                     "connection cap of the port reached: the oldest "
			                     "unfinished handshake makes room");
			in_kind--;
		}
	}
	struct net_conn *c = in_kind < cap ? net_conn_alloc(n, l->kind, false) : NULL;
	if (c == NULL) {
		if (in_kind >= cap)
			n->stats.conn_cap_closes++;
		net_accept_drop(l, in_kind >= cap ? "connection cap of the port reached"
		                                  : "out of memory");
		return;
	}
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		net_conn_close(c, "accept failed");
		return;
	}
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
		net_format_sockaddr(&ss, c->remote, sizeof(c->remote));
	uv_tcp_nodelay(&c->tcp, 1);
	c->tls = tls_conn_new(n->cfg.server_tls, NULL, TLS_ROLE_NONE, NULL);
	if (c->tls == NULL) {
		net_conn_close(c, "cannot create TLS session");
		return;
	}
	int rc = uv_read_start((uv_stream_t *)&c->tcp, net_alloc, net_on_read);
	if (rc < 0)
		net_conn_close(c, uv_strerror(rc));
}

static void net_free_handle(uv_handle_t *h)
{
	free(h);
}

static int net_udp_bind(struct net *n, const struct sockaddr_storage *ss, const char *addr,
                        char *err, size_t errlen);

int net_listen(struct net *n, enum net_kind kind, const char *ip, uint16_t port, char *err,
               size_t errlen)
{
	char addr[NET_ADDR_MAX];
	snprintf(addr, sizeof(addr), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
	struct sockaddr_storage ss;
	if (net_parse_addr(addr, &ss) < 0) {
		snprintf(err, errlen, "invalid listen address %s", addr);
		return -EINVAL;
	}
	struct net_listener *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->net = n;
	l->kind = kind;
	uv_tcp_init(n->cfg.loop, &l->tcp);
	l->tcp.data = l;
	int rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, 128, net_on_accept);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s (%s port): %s", addr, kind_name(kind),
		         uv_strerror(rc));
		uv_close((uv_handle_t *)&l->tcp, net_free_handle);
		return rc;
	}
	if (kind == NET_PEER && n->udp == NULL) {
		/* port 0 asked the kernel for one: UDP takes the same number */
		struct sockaddr_storage bound;
		int bl = sizeof(bound);
		if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &bl) == 0)
			net_format_sockaddr(&bound, addr, sizeof(addr));
		if ((rc = net_udp_bind(n, &bound, addr, err, errlen)) < 0) {
			uv_close((uv_handle_t *)&l->tcp, net_free_handle);
			return rc;
		}
	}
	l->next = n->listeners;
	n->listeners = l;
	MV_INFO("net", "listening kind=%s addr=%s", kind_name(kind), addr);
	return 0;
}

/* ---- datagrams ----------------------------------------------------------------------- */

static void net_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	/* one more byte than the largest datagram, so an oversize one is seen
	 * as such (MSG_TRUNC) instead of being cut to a plausible length */
	static char chunk[DGRAM_MAX_LEN + 1];
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Reads the UDP socket's error queue (IP_RECVERR): an ICMP port
 * unreachable for a datagram we sent to a peer means its host is up and
 * nothing listens on the peer port — its agent is not running. Each one
 * reaches on_peer_refused (rate-limited per address, as a refused TCP
 * connect). Other errors (host unreachable, TTL) are silence, not proof. */
#define NET_ERRQUEUE_BATCH 64
static void net_udp_drain_errors(struct net *n)
{
	int fd;
	if (n->udp == NULL || uv_fileno((uv_handle_t *)n->udp, &fd) < 0)
		return;
	for (int k = 0; k < NET_ERRQUEUE_BATCH; k++) {
		struct sockaddr_storage dst;
		char ctrl[512], data[64];
		struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
		struct msghdr mh = {.msg_name = &dst,
		                    .msg_namelen = sizeof(dst),
		                    .msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = ctrl,
		                    .msg_controllen = sizeof(ctrl)};
		memset(&dst, 0, sizeof(dst));
		ssize_t got = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (got < 0)
			return; /* drained (EAGAIN) */
		bool refused = false;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			if (!((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
				continue;
			struct sock_extended_err ee;
			memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
			refused = refused || ee.ee_errno == ECONNREFUSED;
		}
		if (!refused || n->closing || n->cfg.on_peer_refused == NULL)
			continue;
		/* Believed only for a datagram we really sent: the error quotes
		 * it, and its key id and sequence must be one of our recent ones
		 * (an off-path forger would have to guess the key id). And only
		 * for a peer whose datagrams we heard lately: one that never
		 * spoke UDP (an older agent, a firewall that rejects UDP) is not
		 * proven down by an unreachable UDP port. */
		uint64_t now = uv_now(n->cfg.loop);
		const char *who =
		    dgram_quoted_sender(n->dgram, (const uint8_t *)data, (size_t)got, now);
		if (who == NULL || !dgram_heard(n->dgram, who, now, NET_DGRAM_HEARD_MS)) {
			n->stats.dgram_refused_ignored++;
			continue;
		}
		char addr[NET_ADDR_MAX], name[64];
		net_format_sockaddr(&dst, addr, sizeof(addr));
		snprintf(name, sizeof(name), "%s", who);
		n->stats.dgram_refused++;
		if (mv_ratelimit_allow(&net_addr_slot(n, addr)->refused_rl, now, NULL))
			n->cfg.on_peer_refused(n, addr, name, n->cfg.ud);
	}
}

static void net_on_udp_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                            const struct sockaddr *from, unsigned flags)
{
	struct net *n = u->data;
	if (nread == 0 && from == NULL) {
		/* nothing more to read; an error queue with entries but no
		 * pending error also wakes us this way: drain it, or the loop
		 * would be woken for it again and again */
		net_udp_drain_errors(n);
		return;
	}
	if (nread < 0) {
		/* an ICMP error for a datagram we sent (IP_RECVERR): the
		 * error queue names where it went */
		MV_DEBUG("net", "datagram receive error error=%s", uv_strerror((int)nread));
		net_udp_drain_errors(n);
		return;
	}
	if (n->closing)
		return;
	char remote[NET_ADDR_MAX] = "?";
	if (from != NULL) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, from,
		       from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		                                   : sizeof(struct sockaddr_in));
		net_format_sockaddr(&ss, remote, sizeof(remote));
	}
	static uint8_t plain[DGRAM_MAX_PAYLOAD];
	size_t plen = 0;
	const char *peer = NULL;
	size_t len = (flags & UV_UDP_PARTIAL) ? DGRAM_MAX_LEN + 1 : (size_t)nread;
	enum dgram_drop d = dgram_open(n->dgram, (const uint8_t *)buf->base, len, plain,
	                               sizeof(plain), &plen, &peer, uv_now(n->cfg.loop));
	if (d != DGRAM_OK) {
		/* counted; never believed. DEBUG only: a stream of forged
		 * datagrams must not become a stream of log lines */
		MV_DEBUG("net", "datagram dropped remote=%s len=%zd reason=\"%s\"", remote, nread,
		         dgram_drop_name(d));
		/* an unknown key from a peer's address: most likely we restarted
		 * and it still seals with the keys of our previous life. Told
		 * (once a second per address) so that the owner can open a TLS
		 * connection to that peer, whose handshake rekeys both ends. An
		 * unauthenticated hint: the owner acts only for a known
		 * member's address, and a connection to it is all it costs. */
		if (d == DGRAM_DROP_UNKNOWN_KEY && from != NULL && n->cfg.on_peer_unknown_key &&
		    mv_ratelimit_allow(&net_addr_slot(n, remote)->unknown_key_rl,
		                       uv_now(n->cfg.loop), NULL))
			n->cfg.on_peer_unknown_key(n, remote, n->cfg.ud);
		return;
	}
	n->stats.dgrams_in++;
	struct dgram_stats ds;
	dgram_get_stats(n->dgram, &ds);
	if (ds.proof_rekeys != n->cert_dials_seen) {
		/* this datagram, under another certificate's keys for the name,
		 * asked for a dial (dgram.h, dgram_install_cert) */
		n->cert_dials_seen = ds.proof_rekeys;
		uint64_t held = 0;
		if (mv_ratelimit_allow(&n->aside_rl, uv_now(n->cfg.loop), &held))
			MV_WARN("net",
			        "a second certificate for peer=%s remote=%s speaks, the one in use "
			        "silent: we dial the member to learn which it uses held=%" PRIu64,
			        peer, remote, held);
	}
	if (n->cfg.on_peer_dgram != NULL) {
		char name[64];
		snprintf(name, sizeof(name), "%s", peer); /* the table may change in the callback */
		n->cfg.on_peer_dgram(n, name, remote, plain, plen, n->cfg.ud);
	}
}

/* Binds the peer port's UDP socket to the TCP listener's address (same
 * port number, another port space). */
static int net_udp_bind(struct net *n, const struct sockaddr_storage *ss, const char *addr,
                        char *err, size_t errlen)
{
	uv_udp_t *u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	uv_udp_init(n->cfg.loop, u);
	u->data = n;
	int rc = uv_udp_bind(u, (const struct sockaddr *)ss, 0);
	int fd, on = 1;
	if (rc == 0 && uv_fileno((uv_handle_t *)u, &fd) == 0) {
		/* ICMP errors for what we send (port unreachable: the peer's
		 * agent is down) come back on the error queue */
		if (ss->ss_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof(on));
		/* (an IPv6 socket bound to :: also talks to IPv4 peers, whose
		 * ICMPv4 errors need IP_RECVERR) */
		(void)setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof(on));
	}
	if (rc == 0)
		rc = uv_udp_recv_start(u, net_udp_alloc, net_on_udp_recv);
	if (rc < 0) {
		snprintf(err, errlen, "cannot bind UDP %s (peer port, datagrams): %s", addr,
		         uv_strerror(rc));
		uv_close((uv_handle_t *)u, net_free_handle);
		return rc;
	}
	n->udp = u;
	MV_INFO("net", "listening kind=peer-udp addr=%s", addr);
	return 0;
}

static struct net_conn *net_pool_find(struct net *n, const char *addr);
static struct net_conn *net_incoming_find(struct net *n, const char *name);
static struct net_conn *net_conn_open(struct net *n, const char *addr, const char *expect_name,
                                      const struct sockaddr_storage *ss, int *rc);

/* Starts a rekey handshake with `peer` at addr: a connection outside the
 * pool whose handshake installs fresh datagram keys at both ends. One per
 * peer at a time, at most max_rekeys in flight; whatever cannot start now
 * (or fails) is due again NET_REKEY_RETRY_MS later. */
static void net_rekey_start(struct net *n, const char *addr, const char *peer, uint64_t now)
{
	dgram_rekey_defer(n->dgram, peer, now + NET_REKEY_RETRY_MS);
	for (struct net_conn *c = n->conns; c; c = c->next)
		if (c->rekey && !c->rekey_done && strcmp(c->expect_name, peer) == 0)
			return; /* one on its way */
	if (n->rekeys_pending >= n->cfg.max_rekeys) {
		n->stats.rekeys_held++;
		return;
	}
	struct sockaddr_storage ss;
	int rc = 0;
	if (strlen(addr) >= NET_ADDR_MAX || net_parse_addr(addr, &ss) < 0)
		return;
	struct net_conn *c = net_conn_open(n, addr, peer, &ss, &rc);
	if (c == NULL)
		return;
	c->rekey = true;
	n->rekey_conns++;
	n->rekeys_pending++;
	n->stats.rekeys++;
	MV_DEBUG("net", "rekey handshake started peer=%s addr=%s", peer, addr);
}

void net_dgram_retire(struct net *n, const char *peer_name)
{
	if (n->dgram != NULL && peer_name != NULL)
		dgram_retire_send(n->dgram, peer_name);
}

unsigned net_close_revoked(struct net *n)
{
	unsigned closed = 0;
	size_t wiped = 0;
	struct net_conn *c = n->conns;
	while (c != NULL) {
		const char *why = c->tls != NULL ? tls_conn_peer_distrusted(c->tls) : NULL;
		if (why == NULL) {
			c = c->next;
			continue;
		}
		char peer[64];
		snprintf(peer, sizeof(peer), "%s", tls_conn_peer_name(c->tls));
		uint8_t id[TLS_CERT_ID_LEN];
		bool has_id = tls_conn_peer_cert_id(c->tls, id);
		bool node = tls_conn_peer_role(c->tls) == TLS_ROLE_NODE;
		net_conn_reject(c, why);
		/* the keys its handshakes made (not another certificate's for
		 * the same name: dgram_install_cert) */
		if (node && n->dgram != NULL) {
			if (has_id)
				wiped += dgram_forget_cert(n->dgram, id);
			else
				dgram_forget(n->dgram, peer);
		}
		closed++;
		c = n->conns; /* closing may have changed the list: scan again */
	}
	/* and the keys of revoked certificates with no connection open now:
	 * their datagrams would verify until the keys expired (minutes) */
	uint8_t(*ids)[TLS_CERT_ID_LEN] = NULL;
	size_t n_ids = n->dgram != NULL && n->cfg.server_tls != NULL
	                   ? tls_ctx_revoked_ids(n->cfg.server_tls, &ids)
	                   : 0;
	for (size_t i = 0; i < n_ids; i++)
		wiped += dgram_forget_cert(n->dgram, ids[i]);
	free(ids);
	/* and the keys of every certificate the material in force no longer
	 * trusts, connected or not: a CA rotation's last step (the old CA
	 * removed) names no certificate in a CRL. Where it was the one in use,
	 * that choice goes too, so the next handshake installs and decides at
	 * once; before, keys of unconnected ones stayed here while the peer
	 * wiped its side (or the reverse), and one end sealed under keys the
	 * other had wiped ("unknown key", a member suspected) */
	if (n->dgram != NULL && n->cfg.server_tls != NULL && n->n_certs > 0) {
		for (size_t i = 0; i < n->n_certs; i++)
			n->certs[i].distrusted =
			    tls_ctx_cert_distrusted(n->cfg.server_tls, n->certs[i].x) != NULL;
		wiped += dgram_forget_certs_if(n->dgram, net_cert_distrusted, n);
	}
	if (wiped > 0)
		MV_WARN("net", "datagram keys of distrusted certificates wiped keys=%zu", wiped);
	return closed;
}

int net_dgram_send(struct net *n, const char *peer_name, const char *addr, const uint8_t *payload,
                   size_t len)
{
	if (n->closing || n->udp == NULL)
		return -ENOTCONN;
	if (len > DGRAM_MAX_PAYLOAD)
		return -EMSGSIZE;
	uint64_t now = uv_now(n->cfg.loop);
	if (peer_name == NULL || peer_name[0] == '\0' ||
	    !dgram_can_send(n->dgram, peer_name, now)) {
		n->stats.dgram_no_key++;
		/* Rekey: a connection with this peer that is already up made
		 * its keys, which have since retired (or were retired: the peer
		 * restarted), and makes no new ones; the TLS send that follows
		 * would use it. A rekey handshake beside it makes new keys. */
		if (peer_name != NULL && peer_name[0] != '\0') {
			struct net_conn *c = net_pool_find(n, addr);
			if ((c != NULL && c->state == NC_ESTABLISHED &&
			     strcmp(tls_conn_peer_name(c->tls), peer_name) == 0) ||
			    net_incoming_find(n, peer_name) != NULL)
				net_rekey_start(n, addr, peer_name, now);
		}
		return -ENOKEY;
	}
	/* due for fresh keys (staggered, before this one retires): a rekey
	 * handshake starts, the datagram goes under the old key meanwhile */
	if (dgram_rekey_due(n->dgram, peer_name, now))
		net_rekey_start(n, addr, peer_name, now);
	/* a peer not heard over UDP lately (just met, UDP blocked, an agent
	 * without datagrams): TLS carries the message; one datagram a second
	 * goes beside it so that, once the path works, the peer hears us and
	 * answers by datagram too */
	bool heard = dgram_heard(n->dgram, peer_name, now, NET_DGRAM_HEARD_MS);
	if (!heard && !dgram_probe_due(n->dgram, peer_name, now, NET_DGRAM_PROBE_MS)) {
		n->stats.dgram_unheard++;
		return -ENOKEY;
	}
	struct sockaddr_storage ss;
	if (strlen(addr) >= NET_ADDR_MAX || net_parse_addr(addr, &ss) < 0)
		return -EINVAL;
	static uint8_t dg[DGRAM_MAX_LEN];
	size_t dl = 0;
	int rc = dgram_seal(n->dgram, peer_name, payload, len, dg, sizeof(dg), &dl, now);
	if (rc < 0)
		return rc;
	uv_buf_t b = uv_buf_init((char *)dg, (unsigned)dl);
	rc = uv_udp_try_send(n->udp, &b, 1, (const struct sockaddr *)&ss);
	if (rc == UV_ECONNREFUSED || rc == UV_EHOSTUNREACH || rc == UV_ENETUNREACH) {
		/* a pending ICMP error (for an earlier datagram) surfaced on
		 * this send and was consumed by it: send again. The error queue
		 * is read by the receive callback, from the loop: never from
		 * here, where its callbacks would run inside the caller's pump */
		rc = uv_udp_try_send(n->udp, &b, 1, (const struct sockaddr *)&ss);
	}
	if (rc < 0) {
		n->stats.dgram_send_fail++;
		MV_DEBUG("net", "datagram not sent peer=%s addr=%s error=%s", peer_name, addr,
		         uv_strerror(rc));
		return rc;
	}
	n->stats.dgrams_out++;
	if (!heard) {
		n->stats.dgram_unheard++;
		return -EAGAIN; /* sent, and to be sent over TLS too */
	}
	return 0;
}

/* ---- outgoing pool ------------------------------------------------------------------ */

static void net_on_connect(uv_connect_t *req, int status)
{
	struct net_conn *c = req->data;
	if (c->state == NC_CLOSING)
		return;
	if (status < 0) {
		struct net *n = c->net;
		n->stats.dropped++;
		if (status == UV_ECONNREFUSED && n->cfg.on_peer_refused != NULL && !n->closing) {
			char addr[NET_ADDR_MAX], name[64];
			snprintf(addr, sizeof(addr), "%s", c->addr);
			snprintf(name, sizeof(name), "%s", c->expect_name);
			bool call = mv_ratelimit_allow(&net_addr_slot(n, addr)->refused_rl,
			                               uv_now(n->cfg.loop), NULL);
			net_conn_close(c, uv_strerror(status));
			if (call)
				n->cfg.on_peer_refused(n, addr, name, n->cfg.ud);
			return;
		}
		net_conn_close(c, uv_strerror(status));
		return;
	}
	c->state = NC_HANDSHAKE;
	uv_tcp_nodelay(&c->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)&c->tcp, net_alloc, net_on_read);
	if (rc < 0) {
		net_conn_close(c, uv_strerror(rc));
		return;
	}
	net_conn_flush(c); /* ClientHello and the frames queued behind it */
}

static struct net_conn *net_pool_find(struct net *n, const char *addr)
{
	for (struct net_conn *c = n->conns; c; c = c->next)
		if (c->outgoing && !c->rekey && c->state != NC_CLOSING &&
		    strcmp(c->addr, addr) == 0)
			return c;
	return NULL;
}

_Static_assert(TLS_CERT_ID_LEN == DGRAM_CERT_LEN, "one certificate identity for tls and dgram");

/* The established connection the peer `name` opened to us (its name
 * proven by its certificate), or NULL. */
static struct net_conn *net_incoming_find(struct net *n, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return NULL;
	/* the oldest one (new connections are listed first): a newer one may
	 * be the peer's rekey handshake, which it closes a second later, and
	 * what we wrote on it would be lost. Only one with the certificate we
	 * send datagrams under when we know it (dgram_install_cert: a dial
	 * decided it): a second certificate the CA issued for the name gets
	 * no frames meant for the member over its own connections (we dial
	 * the member instead). */
	uint8_t want[DGRAM_CERT_LEN];
	bool known = n->dgram != NULL && dgram_send_cert(n->dgram, name, want);
	struct net_conn *oldest = NULL;
	for (struct net_conn *c = n->conns; c; c = c->next) {
		if (c->outgoing || c->kind != NET_PEER || c->state != NC_ESTABLISHED ||
		    strcmp(tls_conn_peer_name(c->tls), name) != 0)
			continue;
		if (known && net_conn_other_cert(c, want))
			continue;
		oldest = c;
	}
	return oldest;
}

/* Makes room in the full pool: closes the least recently used
 * established connection. A connection still connecting or shaking hands
 * is never cut off (that would throw its handshake away, and the next
 * send would start another: a handshake storm); false when every pooled
 * connection is one. */
static bool net_pool_evict_lru(struct net *n)
{
	struct net_conn *lru = NULL;
	for (struct net_conn *c = n->conns; c; c = c->next)
		if (c->outgoing && !c->rekey && c->state == NC_ESTABLISHED &&
		    (lru == NULL || c->last_used < lru->last_used))
			lru = c;
	if (lru == NULL)
		return false;
	n->stats.evictions++;
	net_conn_close(lru, "idle: evicted from the full connection pool");
	return true;
}

/* A new outgoing peer connection to addr (connect started, then the
 * handshake). NULL with *rc set when it could not be started. */
static struct net_conn *net_conn_open(struct net *n, const char *addr, const char *expect_name,
                                      const struct sockaddr_storage *ss, int *rc)
{
	struct net_conn *c = net_conn_alloc(n, NET_PEER, true);
	if (c == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	snprintf(c->remote, sizeof(c->remote), "%s", addr);
	if (expect_name != NULL)
		snprintf(c->expect_name, sizeof(c->expect_name), "%s", expect_name);
	c->tls = tls_conn_new(n->cfg.client_tls, c->expect_name[0] ? c->expect_name : NULL,
	                      TLS_ROLE_NODE, addr);
	if (c->tls == NULL) {
		net_conn_close(c, "cannot create TLS session");
		*rc = -ENOMEM;
		return NULL;
	}
	c->connect_req.data = c;
	*rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)ss, net_on_connect);
	if (*rc < 0) {
		net_conn_close(c, uv_strerror(*rc));
		return NULL;
	}
	return c;
}

/* The pooled connection to addr, opened (connect, then handshake) when
 * there is none. 0 with *out set, or a negative errno. */
static int net_pool_get(struct net *n, const char *addr, const char *expect_name, bool use_incoming,
                        struct net_conn **out)
{
	if (n->closing)
		return -ESHUTDOWN;
	struct net_conn *c = net_pool_find(n, addr);
	if (c != NULL && expect_name != NULL && expect_name[0] != '\0' &&
	    c->expect_name[0] != '\0' && strcmp(c->expect_name, expect_name) != 0) {
		/* The address now belongs to another node (restart elsewhere). */
		net_conn_close(c, "address now expected to be another node");
		c = NULL;
	}
	if (c == NULL && use_incoming && (c = net_incoming_find(n, expect_name)) != NULL) {
		/* the peer's own connection to us: one connection per pair
		 * instead of two, and no handshake */
		n->stats.reused_in++;
		*out = c;
		return 0;
	}
	if (c == NULL) {
		struct sockaddr_storage ss;
		if (strlen(addr) >= NET_ADDR_MAX || net_parse_addr(addr, &ss) < 0) {
			MV_WARN("net", "cannot send: invalid peer address addr=%s", addr);
			return -EINVAL;
		}
		if (n->stats.out_conns - n->rekey_conns >= n->cfg.max_out_conns &&
		    !net_pool_evict_lru(n)) {
			n->stats.pool_full++;
			n->stats.dropped++;
			MV_DEBUG("net", "frame dropped: pool full of unfinished handshakes addr=%s",
			         addr);
			return -ENOBUFS;
		}
		int rc = 0;
		if ((c = net_conn_open(n, addr, expect_name, &ss, &rc)) == NULL)
			return rc;
	}
	*out = c;
	return 0;
}

int net_send_to(struct net *n, const char *addr, const char *expect_name, const uint8_t *frame,
                size_t len)
{
	struct net_conn *c = NULL;
	int rc = net_pool_get(n, addr, expect_name, true, &c);
	if (rc < 0)
		return rc;
	return net_conn_queue_frame(c, frame, len);
}

int net_connect(struct net *n, const char *addr, const char *expect_name)
{
	if (n->closing)
		return -ESHUTDOWN;
	struct net_conn *c = net_pool_find(n, addr);
	if (c != NULL && c->state != NC_ESTABLISHED)
		return 0; /* on its way: its handshake makes keys */
	/* one is up, ours or the peer's: never replaced, but its session's
	 * keys are not the ones the peer seals with (the handshake that made
	 * those completed at its end only, or we restarted): a rekey
	 * handshake beside it makes new ones at both ends */
	if ((c != NULL && expect_name != NULL && expect_name[0] != '\0' &&
	     strcmp(tls_conn_peer_name(c->tls), expect_name) == 0) ||
	    net_incoming_find(n, expect_name) != NULL) {
		/* the hint is a datagram nobody authenticated: it starts a
		 * handshake only while the peer's real datagrams do not verify
		 * here, and at most once per NET_REKEY_HINT_COOLDOWN_MS, so
		 * that forged ones cannot keep handshakes going */
		uint64_t now = uv_now(n->cfg.loop);
		if (n->dgram == NULL ||
		    dgram_hint_rekey_ok(n->dgram, expect_name, now, NET_REKEY_HINT_HEARD_MS,
		                        NET_REKEY_HINT_COOLDOWN_MS))
			net_rekey_start(n, addr, expect_name, now);
		else
			n->stats.rekeys_held++;
		return 0;
	}
	if (c != NULL)
		return 0; /* someone else's at that address: never replaced here */
	int rc = net_pool_get(n, addr, expect_name, false, &c);
	if (rc < 0)
		return rc;
	c->last_used = uv_now(n->cfg.loop);
	return 0;
}

/* ---- sweep: deadlines and idle ------------------------------------------------------ */

static void net_on_sweep(uv_timer_t *t)
{
	struct net *n = t->data;
	uint64_t now = uv_now(n->cfg.loop);
	struct net_conn *c = n->conns;
	while (c != NULL) {
		struct net_conn *next = c->next;
		if (c->state == NC_CONNECTING && now >= c->deadline) {
			n->stats.dropped++;
			n->stats.handshake_fail++;
			net_conn_close(c, "connect timed out");
		} else if (c->state == NC_HANDSHAKE && now >= c->deadline) {
			n->stats.handshake_fail++;
			net_conn_reject(c, "TLS handshake timed out");
		} else if (c->state == NC_ESTABLISHED && c->rekey && now >= c->deadline) {
			tls_conn_shutdown(c->tls);
			net_conn_flush(c);
			net_conn_close(c, "rekey: new datagram keys installed");
		} else if (c->state == NC_ESTABLISHED && !c->paused &&
		           frame_decoder_overdue(&c->dec, now)) {
			char why[128];
			snprintf(
			    why, sizeof(why),
			    "frame not whole within its deadline (%zu of %zu bytes after %" PRIu64
			    " ms)",
			    c->dec.have, c->dec.need, now - c->dec.started);
			net_conn_limit_close(c, &n->stats.frame_deadline_closes, why);
		} else if (c->state == NC_ESTABLISHED &&
		           now - c->last_used >= n->cfg.idle_timeout_ms) {
			n->stats.idle_closes++;
			net_conn_close(c, "idle timeout");
		}
		c = next;
	}
}

struct net *net_new(const struct net_config *cfg)
{
	struct net *n = calloc(1, sizeof(*n));
	if (n == NULL)
		return NULL;
	n->cfg = *cfg;
	struct dgram_config dc = {.key_lifetime_ms = cfg->dgram_key_lifetime_ms};
	n->dgram = dgram_new(&dc);
	if (n->dgram == NULL) {
		free(n);
		return NULL;
	}
	if (n->cfg.max_queued_bytes == 0)
		n->cfg.max_queued_bytes = 16u * 1024 * 1024;
	if (n->cfg.handshake_timeout_ms == 0)
		n->cfg.handshake_timeout_ms = 2000;
	if (n->cfg.idle_timeout_ms == 0)
		n->cfg.idle_timeout_ms = 60000;
	if (n->cfg.max_out_conns == 0)
		n->cfg.max_out_conns = 64;
	if (n->cfg.max_rekeys == 0)
		n->cfg.max_rekeys = NET_MAX_REKEYS;
	if (n->cfg.max_rpc_conns == 0)
		n->cfg.max_rpc_conns = NET_MAX_RPC_CONNS;
	if (n->cfg.max_peer_in_conns == 0)
		n->cfg.max_peer_in_conns = NET_MAX_PEER_IN_CONNS;
	if (n->cfg.max_conns_per_cert == 0)
		n->cfg.max_conns_per_cert = NET_MAX_CONNS_PER_CERT;
	if (n->cfg.max_peer_conns_per_cert == 0)
		n->cfg.max_peer_conns_per_cert = NET_MAX_PEER_CONNS_PER_CERT;
	n->budget[NET_RPC].max =
	    n->cfg.rpc_inbound_budget ? n->cfg.rpc_inbound_budget : NET_RPC_INBOUND_BUDGET;
	n->budget[NET_PEER].max =
	    n->cfg.peer_inbound_budget ? n->cfg.peer_inbound_budget : NET_PEER_INBOUND_BUDGET;
	mv_ratelimit_init(&n->limit_rl, NET_LIMIT_LOG_MS);
	mv_ratelimit_init(&n->aside_rl, NET_LIMIT_LOG_MS);
	uv_timer_init(cfg->loop, &n->sweep);
	n->sweep.data = n;
	uv_timer_start(&n->sweep, net_on_sweep, NET_SWEEP_MS, NET_SWEEP_MS);
	uv_idle_init(cfg->loop, &n->resume_idle);
	n->resume_idle.data = n;
	return n;
}

void net_get_stats(const struct net *n, struct net_stats *out)
{
	*out = n->stats;
	struct dgram_stats ds;
	dgram_get_stats(n->dgram, &ds);
	out->dgram_bytes_in = ds.bytes_opened;
	out->dgram_bytes_out = ds.bytes_sealed;
	out->dgram_auth_fail = ds.drop_short + ds.drop_version + ds.drop_unknown_key + ds.drop_auth;
	out->dgram_replays = ds.drop_replay;
	out->dgram_peers = ds.peers;
	out->dgram_cert_dials = ds.proof_rekeys;
}

const char *net_conn_peer_name(const struct net_conn *c)
{
	return tls_conn_peer_name(c->tls);
}
enum tls_role net_conn_peer_role(const struct net_conn *c)
{
	return tls_conn_peer_role(c->tls);
}
const char *net_conn_remote(const struct net_conn *c)
{
	return c->remote;
}
enum net_kind net_conn_kind(const struct net_conn *c)
{
	return c->kind;
}

/* ---- shutdown -------------------------------------------------------------------------- */

static void net_maybe_finish_close(struct net *n)
{
	if (!n->closing || n->pending_closes > 0)
		return;
	void (*done)(void *) = n->close_done;
	void *arg = n->close_arg;
	dgram_free(n->dgram);
	net_certs_free(n);
	free(n);
	if (done)
		done(arg);
}

static void net_on_handle_closed(uv_handle_t *h)
{
	struct net *n = h->data;
	if ((void *)h != (void *)&n->sweep && (void *)h != (void *)&n->resume_idle)
		free(h); /* the UDP socket, or a connection dropped at accept */
	n->pending_closes--;
	net_maybe_finish_close(n);
}

static void net_on_listener_closed(uv_handle_t *h)
{
	struct net_listener *l = h->data;
	struct net *n = l->net;
	l->tcp_closed = true;
	if (!l->scratch_busy)
		free(l); /* else the scratch's close callback frees it */
	n->pending_closes--;
	net_maybe_finish_close(n);
}

void net_close(struct net *n, void (*done)(void *arg), void *arg)
{
	n->closing = true;
	n->close_done = done;
	n->close_arg = arg;
	n->pending_closes++; /* guard while we start closing everything */
	n->pending_closes++;
	uv_close((uv_handle_t *)&n->sweep, net_on_handle_closed);
	n->pending_closes++;
	uv_close((uv_handle_t *)&n->resume_idle, net_on_handle_closed);
	struct net_listener *l = n->listeners;
	while (l != NULL) {
		struct net_listener *next = l->next;
		l->closing = true;
		l->accept_waiting = false;
		n->pending_closes++;
		uv_close((uv_handle_t *)&l->tcp, net_on_listener_closed);
		l = next;
	}
	n->listeners = NULL;
	if (n->udp != NULL) {
		n->pending_closes++;
		uv_close((uv_handle_t *)n->udp, net_on_handle_closed);
		n->udp = NULL;
	}
	while (n->conns != NULL) {
		struct net_conn *c = n->conns;
		if (c->tls != NULL && c->state == NC_ESTABLISHED) {
			tls_conn_shutdown(c->tls);
			net_conn_flush(c);
		}
		net_conn_close(c, "agent shutting down");
	}
	n->pending_closes--;
	net_maybe_finish_close(n);
}
