/*
 * config.h — the agent's settings: defaults, then the JSON config file
 * (parsed with json-c), then command-line flags, each overriding the last.
 *
 * Config file keys (all optional; unknown keys and bad values are errors
 * that name the key, e.g. "config /etc/meshvisor.json: swim.probe_interval_ms:
 * expected an integer from 50 to 60000, got \"fast\""):
 *
 *   {
 *     "name": "host-a",                  node name; must equal the CN of tls.cert
 *     "bind": "0.0.0.0",                 IP (or host name) the peer and RPC ports listen on
 *     "advertise": "10.0.0.5",           IP (or host name) other nodes use to reach us
 *                                        (default: bind, or required when bind is
 *                                        0.0.0.0/::); names resolve once, at start
 *     "peer_port": 7946,
 *     "rpc_bind": "127.0.0.1",           IP (or host name) of the RPC port (default: bind)
 *     "rpc_port": 7947,
 *     "join": ["10.0.0.6:7946"],         seed peer addresses
 *     "tls": {"ca": "...", "cert": "...", "key": "..."},
 *     "data_dir": "/var/lib/meshvisor",
 *     "log_level": "info",               debug|info|warn|error
 *     "libvirt_uri": "test:///default",
 *     "witness": false,                  vote in quorum, run no VMs (two-host clusters)
 *     "max_peer_connections": 64,        outgoing pooled connections
 *     "peer_idle_timeout_ms": 60000,     close connections unused this long (peer and
 *                                        RPC; `events` streams get keepalives every third)
 *     "leave_timeout_ms": 3000,          how long a graceful leave may gossip
 *     "swim": { "probe_interval_ms": 1000, "probe_timeout_ms": 500,
 *               "indirect_probes": 3, "retransmit_mult": 4,
 *               "suspicion_min_mult": 1, "suspicion_max_mult": 6,
 *               "awareness_max": 8, "push_pull_interval_ms": 30000,
 *               "gossip_interval_ms": 200, "gossip_fanout": 3,
 *               "join_retry_ms": 1000, "reap_ms": 86400000,
 *               "max_updates_per_msg": 16 },
 *     "node": { "zone": "eu-1a", "rack": "r12",
 *               "labels": ["ssd=yes", "gpu=none"],   key=value, up to 16
 *               "cpu_overcommit": 4.0,               vCPUs per logical CPU
 *               "memory_overcommit": 1.0,
 *               "memory_reserved_mib": 1024 },       kept for the host
 *     "state": { "load_step": 1.0,            publish load only once it moved by more
 *                "load_step_pct": 50,         than max(load_step, pct % of the last
 *                                             one published)
 *                "republish_s": 0 },          freshness floor for such small changes
 *                                             (0 = none: the view's cost stays flat)
 *     "migration": { "libvirt_uri": "qemu+tls://10.0.0.5/system",  how peers reach our libvirt
 *                    "stream_uri": "tcp://10.0.0.5",   QEMU's migration stream ("" = default)
 *                    "bandwidth_mib_s": 0, "max_downtime_ms": 0, "tls": false,
 *                    "max_incoming": 2, "max_outgoing": 2, "lease_ms": 30000 },
 *     "failover": { "heartbeat_ms": 1000, "fence_after_ms": 10000, "fence_margin_ms": 3000,
 *                   "fence_uri": "qemu+tls://10.0.0.5/system",  how peers fence us
 *                   "replicas": 3, "max_parallel": 4, "restart_attempts": 3,
 *                   "vm_restarts": 3, "watchdog": "/dev/watchdog" },
 *     "metrics": { "bind": "127.0.0.1", "port": 7948,   Prometheus, GET /metrics (0: off)
 *                  "tls": false }                     mutual TLS, as the RPC port
 *       (fence_margin_ms must be at least the quorate window,
 *       agent_options_quorate_ms(); with a watchdog, fence_after_ms at least 2000)
 *   }
 *
 * Ownership: strings in struct agent_options are owned by it (heap) and
 * freed by agent_options_free().
 */
#ifndef MESHVISOR_CONFIG_H
#define MESHVISOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "meshvisor/swim.h"

#define AGENT_MAX_SEEDS 32
#define AGENT_MAX_LABELS 16

struct agent_options {
	char *config_file;
	char *name;
	char *bind;
	char *advertise;
	uint16_t peer_port;
	char *rpc_bind;
	uint16_t rpc_port;
	char *seeds[AGENT_MAX_SEEDS];
	size_t n_seeds;
	char *ca_file;
	char *cert_file;
	char *key_file;
	char *crl_file; /* tls.crl: revocation list, NULL for none */
	char *data_dir;
	int log_level; /* enum mv_log_level */
	char *libvirt_uri;
	bool witness;
	uint32_t max_peer_connections;
	uint32_t peer_idle_timeout_ms;
	uint32_t leave_timeout_ms;
	struct swim_config swim; /* name/addr/seed filled by the agent at start */
	/* section "node": what this host offers and how it is labelled */
	char *zone;
	char *rack;
	char *labels[AGENT_MAX_LABELS]; /* "key=value" */
	size_t n_labels;
	double cpu_overcommit; /* vCPUs allowed per logical CPU */
	double memory_overcommit;
	uint32_t memory_reserved_mib; /* kept for the host itself */
	/* section "state": when this host's load is republished (nodestate.c) */
	double state_load_step;       /* absolute load-average step */
	uint32_t state_load_step_pct; /* ... or this % of the published load, if larger */
	uint32_t state_republish_s;   /* republish a changed record at least this often; 0 never */
	/* section "migration" */
	char *mig_libvirt_uri; /* how peers' libvirt reaches ours (default: libvirt_uri) */
	char *mig_stream_uri;  /* where QEMU's stream goes, tcp://HOST[:PORT] ("": default) */
	uint32_t mig_bandwidth_mib_s; /* 0: unlimited */
	uint32_t mig_max_downtime_ms; /* 0: libvirt's default */
	bool mig_tls;                 /* TLS for the migration stream */
	uint32_t mig_max_incoming;
	uint32_t mig_max_outgoing;
	uint32_t mig_lease_ms; /* reservation lease; also the quiet time after start */
	/* section "failover" (agent/daemon/ha.c, include/meshvisor/fo.h) */
	uint32_t fo_heartbeat_ms;
	uint32_t fo_fence_after_ms;  /* F: self-fence without a majority this long */
	uint32_t fo_fence_margin_ms; /* targets wait F + margin when unconfirmed */
	char *fo_fence_uri;          /* our libvirt as peers reach it to fence us */
	uint32_t fo_replicas;        /* R: peers holding each HA VM's definition */
	uint32_t fo_max_parallel;
	uint32_t fo_restart_attempts;
	uint32_t fo_vm_restarts; /* local restarts of a crashed HA VM */
	char *fo_watchdog;       /* watchdog device path, or NULL */
	/* section "metrics" (agent/daemon/metrics.c) */
	char *metrics_bind;    /* IP of the Prometheus listener */
	uint32_t metrics_port; /* 0: no listener */
	bool metrics_tls;      /* mutual TLS as on the RPC port (metrics_tls.c) */
};

/* Fills defaults (ports 7946/7947, bind 127.0.0.1, libvirt test:///default,
 * data dir /var/lib/meshvisor, swim_config_default, ...). */
void agent_options_init(struct agent_options *o);
void agent_options_free(struct agent_options *o);

/* Parses `meshvisor agent` arguments (argv[0] is "agent"). If --config FILE
 * is given, the file is applied first, then the other flags, whatever their
 * order. Returns 0, or -EINVAL with a message naming the flag or key written
 * to err. --help prints usage to stdout and returns 1. */
int agent_options_parse_args(struct agent_options *o, int argc, char **argv, char *err,
                             size_t errlen);
/* Applies a JSON config file on top of o. */
int agent_options_load_file(struct agent_options *o, const char *path, char *err, size_t errlen);
/* Final checks after parsing: name, cert files given, advertise resolvable
 * from bind, ports distinct, swim timings consistent (timeout < interval),
 * failover timings consistent: fence_after_ms at least three heartbeats,
 * fence_margin_ms at least the quorate window, fence_after_ms at least
 * 2000 when failover.watchdog is set. */
int agent_options_validate(struct agent_options *o, char *err, size_t errlen);
/* After agent_options_validate, before the agent serves: bind, advertise
 * and rpc_bind given as host names become the IP literal each resolves to
 * (IPv4 first; blocking, see config.c), each logged; the address checks
 * are made again on the literals. 0, -ENOENT with "KEY: host name 'X'
 * does not resolve: ..." in err, or -EINVAL. */
int agent_options_resolve(struct agent_options *o, char *err, size_t errlen);
/* The failover core's quorate window (fo_config.quorate_ms) for these
 * settings: the core's default (3000 ms), at most fence_after_ms / 2, but
 * at least 3 x heartbeat_ms (the raise wins). */
uint32_t agent_options_quorate_ms(const struct agent_options *o);

void agent_options_usage(FILE *out);

#endif
