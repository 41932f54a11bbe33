/*
 * agent.h — the running daemon: one libuv loop that drives the services
 * (membership, node state, migration, failover, the RPC server) on one
 * network and one libvirt connection. agent.c is the composition root: it
 * starts the services, routes peer frames to them and stops them in order.
 *
 * Ownership: struct agent owns everything it points to; it lives for the
 * whole `meshvisor agent` process. It holds what the composition root
 * itself owns (options, loop, network, TLS contexts, libvirt, addresses,
 * signal watchers, start times, the stopping flag and exit bookkeeping)
 * and one handle per service. Each service keeps its state in a struct
 * private to its file (membership: struct membership, membership.c; node
 * state: struct nodestate, nodestate.c; migration: struct
 * migration_service, migration.c; failover: struct ha, ha.c; requests to
 * other agents: struct peer_client, peer_client.c; long operations'
 * answers: struct rpc_service, rpc_service.c; Prometheus metrics: struct
 * metrics, metrics.c); other modules ask the
 * service through its header, never read its fields.
 */
#ifndef MESHVISOR_AGENT_H
#define MESHVISOR_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "hvwork.h"
#include "looplag.h"
#include "ratelimit.h"
#include "sdservice.h"
#include "meshvisor.pb-c.h"
#include "meshvisor/swim.h"
#include "tls.h"
#include "net.h"
#include "virt.h"

struct agent {
	struct agent_options opt;
	uv_loop_t *loop;
	struct net *net;
	struct tls_ctx *tls_server;
	struct tls_ctx *tls_client;
	/* the node-state core's checked signers (nodestate.c owns it; NULL
	 * outside nodestate_start..nodestate_free), which membership's signed
	 * ALIVE claims are checked with too */
	struct tls_claim_cache *claims;
	struct virt *virt;
	/* libvirt's blocking calls run here, in lanes (hvwork.h): HA work never
	 * waits behind migrations, and the loop never waits on libvirt */
	struct hvwork *hv;
	char peer_addr[SWIM_ADDR_MAX]; /* advertised "ip:port" */
	char rpc_addr[SWIM_ADDR_MAX];
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t exit_timer;    /* stopping: bounds the wait for workers */
	int64_t started_unix_ms;  /* wall clock at start */
	uint64_t started_mono_ms; /* uv_now at start */
	bool stopping;
	bool exit_deadline_passed; /* stopping: waited AGENT_EXIT_WORK_MS for workers */
	int exit_code;
	/* how late the loop runs (looplag.h); stalls raise SWIM's local health */
	struct looplag looplag;
	struct mv_ratelimit looplag_log; /* one stall line per 10 s */
	/* systemd: readiness, status, watchdog; and the 1 s housekeeping */
	struct sdservice sd;
	/* the command line, read again on SIGHUP for the log level */
	int argc;
	char **argv;

	/* the services, each private to its file (see above) */
	struct membership *membership;
	struct nodestate *nodestate;
	struct peer_client *peer_client;
	struct rpc_service *rpc_service;
	struct migration_service *migration;
	struct ha *ha;
	struct metrics *metrics;   /* metrics.c: the Prometheus listener */
	struct seeds_state *seeds; /* seeds.c: host-name seeds being resolved */
};

/* `meshvisor agent ...`: runs the agent until it is stopped; returns the
 * process exit code (exit_codes.h). */
int agent_main(int argc, char **argv);

/* Converts a core timestamp (uv_now ms) into Unix milliseconds. */
static inline int64_t agent_mono_to_unix_ms(const struct agent *a, uint64_t mono_ms)
{
	return a->started_unix_ms + ((int64_t)mono_ms - (int64_t)a->started_mono_ms);
}

#endif
