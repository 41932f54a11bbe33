/*
 * metrics_tls.c — the metrics listener's TLS front (metrics_tls.h).
 *
 *   accept --> tls_conn_new(agent's server context)      [cap, deadline]
 *   client bytes --> tls_conn_feed --> ciphertext back (handshake, alerts)
 *   handshake done (CA and CRL checked there), role viewer/operator/node:
 *       socketpair: one end to MHD_add_connection (with the client's
 *       address), the other a uv_pipe_t here
 *   client plaintext (tls_conn_read)  --> pipe  --> libmicrohttpd
 *   libmicrohttpd's answer (pipe)     --> tls_conn_write --> client
 *   either side closes                --> close_notify, both closed
 *
 * Invariants: a session's handles (tcp, deadline, and the pipe once handed
 * over) are closed together (mtls_close) and the session is freed when the
 * last close callback ran; writes carry their own copy of the bytes; each
 * direction stops reading while the other side has METRICS_TLS_BACKLOG
 * bytes queued, so a client that does not read holds at most that much.
 */
#include "metrics_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "tls.h"

struct metrics_tls_conn {
	struct metrics_tls_conn *next;
	struct metrics_tls *t;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
	uv_timer_t deadline;
	struct tls_conn *tls;
	struct sockaddr_storage peer;
	int peer_len;
	char remote[64];
	bool pipe_open;    /* the pipe handle exists (handed to libmicrohttpd) */
	bool tcp_paused;   /* not reading the client: the pipe is backed up */
	bool pipe_paused;  /* not reading the pipe: the client is backed up */
	bool closing;      /* mtls_close ran */
	bool close_queued; /* close once the last ciphertext went out */
	int handles;       /* open handles; freed at 0 */
};

struct mtls_write {
	uv_write_t req;
	struct metrics_tls_conn *c;
	char data[];
};

static void mtls_on_handle_closed(uv_handle_t *h)
{
	struct metrics_tls_conn *c = h->data;
	if (--c->handles == 0) {
		tls_conn_free(c->tls);
		free(c);
	}
}

static void mtls_close(struct metrics_tls_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct metrics_tls *t = c->t;
	for (struct metrics_tls_conn **p = &t->conns; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	t->n_conns--;
	uv_close((uv_handle_t *)&c->tcp, mtls_on_handle_closed);
	uv_close((uv_handle_t *)&c->deadline, mtls_on_handle_closed);
	if (c->pipe_open)
		uv_close((uv_handle_t *)&c->pipe, mtls_on_handle_closed);
}

static void mtls_on_read_tcp(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void mtls_on_read_pipe(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void mtls_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = malloc(16384);
	buf->len = buf->base != NULL ? 16384 : 0;
}

/* A write's callback: resumes the direction it held back, closes a
 * session that waited for its last ciphertext. */
static void mtls_on_written(uv_write_t *req, int status)
{
	struct mtls_write *w = (struct mtls_write *)req;
	struct metrics_tls_conn *c = w->c;
	uv_stream_t *s = req->handle;
	free(w);
	if (c->closing)
		return;
	if (status < 0) {
		mtls_close(c);
		return;
	}
	size_t queued = uv_stream_get_write_queue_size(s);
	if (s == (uv_stream_t *)&c->tcp) {
		if (c->close_queued && queued == 0)
			mtls_close(c);
		else if (c->pipe_paused && queued < METRICS_TLS_BACKLOG / 2 &&
		         uv_read_start((uv_stream_t *)&c->pipe, mtls_alloc, mtls_on_read_pipe) == 0)
			c->pipe_paused = false;
	} else if (c->tcp_paused && queued < METRICS_TLS_BACKLOG / 2 &&
	           uv_read_start((uv_stream_t *)&c->tcp, mtls_alloc, mtls_on_read_tcp) == 0) {
		c->tcp_paused = false;
	}
}

static int mtls_write(struct metrics_tls_conn *c, uv_stream_t *s, const void *data, size_t len)
{
	struct mtls_write *w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return -ENOMEM;
	w->c = c;
	memcpy(w->data, data, len);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	int rc = uv_write(&w->req, s, &b, 1, mtls_on_written);
	if (rc < 0)
		free(w);
	return rc;
}

/* Sends whatever ciphertext the session has (handshake, data, alerts). */
static int mtls_flush(struct metrics_tls_conn *c)
{
	char buf[16384];
	size_t n;
	while ((n = tls_conn_take_cipher(c->tls, buf, sizeof(buf))) > 0)
		if (mtls_write(c, (uv_stream_t *)&c->tcp, buf, n) < 0)
			return -EIO;
	return 0;
}

/* Closes once the ciphertext queued now (an alert, close_notify) is out. */
static void mtls_close_after_flush(struct metrics_tls_conn *c)
{
	c->close_queued = true;
	if (mtls_flush(c) < 0 || uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0)
		mtls_close(c);
	else
		uv_read_stop((uv_stream_t *)&c->tcp);
}

static void mtls_refuse(struct metrics_tls_conn *c, const char *why)
{
	c->t->refused++;
	char q[300];
	MV_INFO("metrics", "refused client remote=%s reason=%s", c->remote,
	        mv_log_quote(q, sizeof(q), why));
	mtls_close_after_flush(c);
}

/* The client's certificate passed the handshake (the CA, the CRL in force:
 * tls.c checks them there) and has a role that may read. libmicrohttpd
 * gets one end of a socketpair. */
static int mtls_hand_over(struct metrics_tls_conn *c)
{
	if (!tls_role_may_read(tls_conn_peer_role(c->tls))) {
		mtls_refuse(c, "role may not read");
		return -EACCES;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (uv_pipe_init(c->t->loop, &c->pipe, 0) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -EIO;
	}
	c->pipe.data = c;
	c->pipe_open = true;
	c->handles++;
	if (uv_pipe_open(&c->pipe, sv[0]) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -EIO;
	}
	/* MHD owns sv[1] from here, and closes it itself if it refuses it */
	if (MHD_add_connection(c->t->d, sv[1], (const struct sockaddr *)&c->peer,
	                       (socklen_t)c->peer_len) != MHD_YES) {
		mtls_refuse(c, "over the listener's connection limits");
		return -EBUSY;
	}
	uv_timer_stop(&c->deadline);
	if (uv_read_start((uv_stream_t *)&c->pipe, mtls_alloc, mtls_on_read_pipe) < 0)
		return -EIO;
	c->t->kick(c->t->ud);
	return 0;
}

/* Client plaintext to libmicrohttpd. */
static int mtls_pump_plain(struct metrics_tls_conn *c)
{
	char buf[16384];
	ssize_t n;
	while ((n = tls_conn_read(c->tls, buf, sizeof(buf))) > 0)
		if (mtls_write(c, (uv_stream_t *)&c->pipe, buf, (size_t)n) < 0)
			return -EIO;
	if (n < 0)
		return (int)n; /* -ECONNRESET: the client closed */
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > METRICS_TLS_BACKLOG) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->tcp_paused = true;
	}
	return 0;
}

/* Both read callbacks begin here: false when the session is closing or
 * the stream ended (on_end then ran); else *rc is fn's result on the bytes
 * (tls_conn_feed for the client's, tls_conn_write for libmicrohttpd's). */
static bool mtls_take(struct metrics_tls_conn *c, ssize_t nread, const uv_buf_t *buf,
                      int (*fn)(struct tls_conn *, const void *, size_t),
                      void (*on_end)(struct metrics_tls_conn *), int *rc)
{
	bool go = !c->closing && nread >= 0;
	*rc = go && nread > 0 ? fn(c->tls, buf->base, (size_t)nread) : 0;
	free(buf->base);
	if (!c->closing && nread < 0)
		on_end(c);
	return go;
}

/* libmicrohttpd closed its end: close_notify, then close. */
static void mtls_pipe_ended(struct metrics_tls_conn *c)
{
	uv_read_stop((uv_stream_t *)&c->pipe);
	tls_conn_shutdown(c->tls);
	mtls_close_after_flush(c);
}

static void mtls_on_read_tcp(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct metrics_tls_conn *c = s->data;
	int rc;
	if (!mtls_take(c, nread, buf, tls_conn_feed, mtls_close, &rc))
		return;
	if (rc < 0) {
		mtls_refuse(c, tls_conn_error(c->tls));
		return;
	}
	if (mtls_flush(c) < 0) {
		mtls_close(c);
		return;
	}
	if (!tls_conn_handshake_done(c->tls))
		return;
	if (!c->pipe_open && (rc = mtls_hand_over(c)) < 0) {
		if (rc != -EACCES && rc != -EBUSY)
			mtls_close(c);
		return;
	}
	if (mtls_pump_plain(c) < 0)
		mtls_close(c);
}

/* libmicrohttpd's bytes to the client; its close ends the session. */
static void mtls_on_read_pipe(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct metrics_tls_conn *c = s->data;
	int rc;
	if (!mtls_take(c, nread, buf, tls_conn_write, mtls_pipe_ended, &rc))
		return;
	if (rc < 0 || mtls_flush(c) < 0) {
		mtls_close(c);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > METRICS_TLS_BACKLOG) {
		uv_read_stop(s);
		c->pipe_paused = true;
	}
}

static void mtls_on_deadline(uv_timer_t *h)
{
	struct metrics_tls_conn *c = h->data;
	mtls_refuse(c, "handshake not finished in time");
}

static void mtls_on_connection(uv_stream_t *server, int status)
{
	struct metrics_tls *t = server->data;
	if (status < 0)
		return;
	struct metrics_tls_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->t = t;
	uv_tcp_init(t->loop, &c->tcp);
	uv_timer_init(t->loop, &c->deadline);
	c->tcp.data = c->deadline.data = c;
	c->handles = 2;
	c->next = t->conns;
	t->conns = c;
	t->n_conns++;
	snprintf(c->remote, sizeof(c->remote), "?");
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		mtls_close(c);
		return;
	}
	c->peer_len = sizeof(c->peer);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &c->peer_len) == 0) {
		char ip[48] = "?";
		int port = 0;
		if (c->peer.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&c->peer, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&c->peer)->sin6_port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&c->peer, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&c->peer)->sin_port);
		}
		snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
	}
	if (t->n_conns > METRICS_MAX_CONNS) {
		t->refused++;
		mtls_close(c);
		return;
	}
	c->tls = tls_conn_new(t->ctx, NULL, TLS_ROLE_NONE, NULL);
	if (c->tls == NULL ||
	    uv_read_start((uv_stream_t *)&c->tcp, mtls_alloc, mtls_on_read_tcp) < 0) {
		mtls_close(c);
		return;
	}
	uv_timer_start(&c->deadline, mtls_on_deadline, METRICS_TIMEOUT_S * 1000u, 0);
}

int metrics_tls_start(struct metrics_tls *t, uv_loop_t *loop, const struct sockaddr *addr,
                      struct tls_ctx *ctx, struct MHD_Daemon *d, void (*kick)(void *ud), void *ud)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->ctx = ctx;
	t->d = d;
	t->kick = kick;
	t->ud = ud;
	int rc = uv_tcp_init(loop, &t->listener);
	if (rc < 0)
		return rc;
	t->listener.data = t;
	t->listening = true;
	if ((rc = uv_tcp_bind(&t->listener, addr, 0)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&t->listener, 16, mtls_on_connection)) < 0)
		return rc;
	return 0;
}

void metrics_tls_close(struct metrics_tls *t)
{
	if (t->listening) {
		t->listening = false;
		uv_close((uv_handle_t *)&t->listener, NULL);
	}
	while (t->conns != NULL)
		mtls_close(t->conns);
}
