/*
 * agent.h — the running daemon: one libuv loop that drives the membership
 * core, the network and the RPC service. Shared by agent.c (wiring, timers,
 * signals) and rpc_server.c (requests).
 *
 * Ownership: struct agent owns everything it points to; it lives for the
 * whole `meshvisor agent` process. A service that owns its state keeps it
 * in a struct private to its file and the agent holds only the handle
 * (node state: struct nodestate, nodestate.c; migration: struct
 * migration_service, migration.c; failover: struct ha, ha.c);
 * other modules ask the service through its header, never read its fields.
 */
#ifndef MESHVISOR_AGENT_H
#define MESHVISOR_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "meshvisor.pb-c.h"
#include "meshvisor/swim.h"
#include "tls.h"
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
	uv_timer_t swim_timer; /* membership.c */
	bool swim_timer_on;
	uv_timer_t leave_timer; /* leave_timeout_ms deadline */
	uv_timer_t leave_poll;  /* checks swim_leave_done() */
	uv_signal_t sig_term, sig_int, sig_hup;
	int64_t started_unix_ms;  /* wall clock at start */
	uint64_t started_mono_ms; /* uv_now at start */
	bool leaving;
	bool stopping;
	bool leave_requested;      /* set by an RPC; acted on after its answer is sent */
	bool exit_deadline_passed; /* stopping: waited AGENT_EXIT_WORK_MS for workers */
	int exit_code;

	/* node state (nodestate.c) */
	struct nodestate *nodestate;

	/* requests to other hosts (peer_client.c) and long operations' answers (rpc_service.c) */
	struct rpc_pending *rpc_pending;
	uint64_t rpc_next_fwd_id;
	uv_timer_t rpc_timer;
	struct rpc_sink *rpc_sinks;
	uint64_t rpc_next_sink;

	/* migrations (migration.c) */
	struct migration_service *migration;

	/* failover (ha.c) */
	struct ha *ha;
};

/* `meshvisor agent ...`: runs the agent until it is stopped; returns the
 * process exit code (exit_codes.h). */
int agent_main(int argc, char **argv);

/* Starts a graceful leave: peers will see us LEFT, then the process exits. */
void agent_begin_leave(struct agent *a, const char *why);
/* Converts a core timestamp (uv_now ms) into Unix milliseconds. */
static inline int64_t agent_mono_to_unix_ms(const struct agent *a, uint64_t mono_ms)
{
	return a->started_unix_ms + ((int64_t)mono_ms - (int64_t)a->started_mono_ms);
}

#endif
