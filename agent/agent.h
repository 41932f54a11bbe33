/*
 * agent.h — the running daemon: one libuv loop that drives the membership
 * core, the network and the RPC service. Shared by agent.c (wiring, timers,
 * signals) and rpc_server.c (requests).
 *
 * Ownership: struct agent owns everything it points to; it lives for the
 * whole `meshvisor agent` process.
 */
#ifndef MESHVISOR_AGENT_H
#define MESHVISOR_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "meshvisor/swim.h"
#include "meshvisor/tls.h"
#include "net.h"
#include "virt.h"

struct agent {
	struct agent_options opt;
	uv_loop_t *loop;
	struct swim *swim;
	struct net *net;
	struct tls_ctx *tls_server;
	struct tls_ctx *tls_client;
	struct virt *virt;
	char peer_addr[SWIM_ADDR_MAX]; /* advertised "ip:port" */
	char rpc_addr[SWIM_ADDR_MAX];
	uv_timer_t swim_timer;
	uv_timer_t virt_timer;
	uv_timer_t leave_timer; /* leave_timeout_ms deadline */
	uv_timer_t leave_poll;  /* checks swim_leave_done() */
	uv_signal_t sig_term, sig_int, sig_hup;
	int64_t started_unix_ms;  /* wall clock at start */
	uint64_t started_mono_ms; /* uv_now at start */
	bool leaving;
	bool stopping;
	int exit_code;
};

/* Runs the membership core's pending output and events through the network
 * and the log, then re-arms its timer. Call after every swim_ input. */
void agent_swim_pump(struct agent *a);
/* Starts a graceful leave: peers will see us LEFT, then the process exits. */
void agent_begin_leave(struct agent *a, const char *why);
/* Converts a core timestamp (uv_now ms) into Unix milliseconds. */
int64_t agent_mono_to_unix_ms(const struct agent *a, uint64_t mono_ms);

/* rpc_server.c: one request frame from an RPC client. */
void rpc_server_handle_frame(struct agent *a, struct net_conn *c, const uint8_t *payload,
                             size_t len);

#endif
