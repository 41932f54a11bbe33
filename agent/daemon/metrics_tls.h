/*
 * metrics_tls.h — the metrics listener's TLS front (metrics.tls = true):
 * the same mutual TLS as the RPC port, with the agent's own server context
 * (cluster CA, CRL, reloaded on SIGHUP), in front of libmicrohttpd.
 *
 * libmicrohttpd's own TLS is GnuTLS, and the agent's certificate checks
 * are OpenSSL code behind tls.h; rather than a second TLS stack with a
 * second copy of those checks, this module accepts the TCP connection,
 * runs the TLS session with tls.h's sans-I/O session (tls_conn_feed /
 * read / write / take_cipher) and, once the client's certificate passed
 * (the cluster CA and the CRL in force, checked by the handshake; any
 * role: viewer, operator, node), hands libmicrohttpd one
 * end of a socketpair (MHD_add_connection, with the client's address for
 * its per-address limit) and relays plaintext between the two, all on the
 * agent's loop.
 *
 * Bounds: METRICS_MAX_CONNS sessions at once (handshaking ones included;
 * more are closed as soon as accepted), METRICS_TIMEOUT_S for the
 * handshake, then libmicrohttpd's own limits and idle timeout; a client
 * that does not read its responses gets at most METRICS_TLS_BACKLOG bytes
 * queued before the relay stops reading libmicrohttpd's side.
 *
 * Ownership: struct metrics_tls is metrics.c's (metrics_tls_start ..
 * metrics_tls_close, then freed after the loop ran the close callbacks);
 * each session frees itself once its handles are closed. Loop thread only.
 */
#ifndef MESHVISOR_METRICS_TLS_H
#define MESHVISOR_METRICS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct MHD_Daemon;
struct tls_ctx;

#define METRICS_TLS_BACKLOG (256u * 1024u)

struct metrics_tls_conn;

struct metrics_tls {
	uv_loop_t *loop;
	uv_tcp_t listener;
	bool listening;
	struct tls_ctx *ctx;
	struct MHD_Daemon *d;
	void (*kick)(void *ud); /* after handing MHD a connection: run it */
	void *ud;
	struct metrics_tls_conn *conns; /* open sessions */
	unsigned n_conns;
	uint64_t refused; /* handshakes failed, roles refused, over the cap */
};

/* Listens on addr (a sockaddr for bind:port) and serves d through TLS.
 * 0 or a negative errno (libuv's). */
int metrics_tls_start(struct metrics_tls *t, uv_loop_t *loop, const struct sockaddr *addr,
                      struct tls_ctx *ctx, struct MHD_Daemon *d, void (*kick)(void *ud), void *ud);
/* Closes the listener and every session (their memory is freed by the
 * close callbacks: run the loop afterwards). */
void metrics_tls_close(struct metrics_tls *t);

#endif
