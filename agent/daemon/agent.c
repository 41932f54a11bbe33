/*
 * agent.c — `meshvisor agent`: the daemon's wiring.
 *
 * One libuv loop, one thread. This file is the composition root: it
 * starts the services (membership.c, nodestate.c, migration.c, ha.c, the
 * RPC server) on one network and one libvirt connection, routes each peer
 * frame to the service its body belongs to, and stops them in order.
 *
 *   peer frame --> envelope_decode --> identity check --> the service's
 *              handler (swim: swim_codec_decode, swim_handle_message(now),
 *              membership_pump())
 *
 * Identity: a peer frame's Envelope.from must equal the CN of the
 * certificate the connection was authenticated with; a node cannot speak
 * for another. A datagram (net.h, dgram.h) passes the same check against
 * the name its key was derived for, enters the same handlers, and may
 * carry only SWIM and failover bodies (probes and heartbeats go that way). (What it says about *other* members is gossip, which the
 * core weighs by incarnation.)
 *
 * Signals: SIGTERM/SIGINT start a graceful leave (peers see `left`), bounded
 * by leave_timeout_ms; SIGHUP reloads the CA, certificate, key and CRL
 * (tls.crl) without touching established connections, except those of
 * peers the CRL now revokes: they are closed (net_close_revoked).
 */
#include "agent.h"
#include "peer_client.h"
#include "rpc_server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "exit_codes.h"
#include "envelope.h"
#include "fileio.h"
#include "ha.h"
#include "log.h"
#include "migration.h"
#include "nodestate.h"
#include "membership.h"
#include "metrics.h"
#include "rpc_service.h"
#include "sdservice.h"
#include "seeds.h"
#include "swim_codec.h"

static int64_t wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void agent_begin_leave(struct agent *a, const char *why);

/* A `leave` request is recorded by membership; the leave starts once its
 * answer has been sent. */
static void agent_leave_if_requested(struct agent *a)
{
	if (membership_leave_requested(a) && !membership_leaving(a))
		agent_begin_leave(a, "requested over RPC");
}

/* What a bad peer message costs its carrier: a TLS connection is closed
 * (c not NULL); a datagram (c NULL) is just dropped. */
static void agent_peer_reject(struct net_conn *c, const char *why)
{
	if (c != NULL)
		net_conn_close(c, why);
}

/* One peer message, from a TLS connection c or (c NULL) from a datagram;
 * cert_name is the sender proven by the certificate, or by the datagram
 * key derived from a session with that certificate. Both enter the same
 * handlers after the same identity check. */
static void agent_handle_peer_message(struct agent *a, struct net_conn *c, const char *cert_name,
                                      const char *remote, const char *via, const uint8_t *payload,
                                      size_t len)
{
	Mv__Envelope *env;
	const char *why;
	if (envelope_decode(payload, len, &env, &why) < 0) {
		MV_WARN("swim", "rejected peer %s remote=%s peer=%s reason=\"%s\"", via, remote,
		        cert_name, why);
		agent_peer_reject(c, why);
		return;
	}
	if (strcmp(env->from, cert_name) != 0) {
		char q[96];
		MV_WARN("swim",
		        "rejected peer %s: sender claims to be another node remote=%s "
		        "claimed=%s certificate=%s",
		        via, remote, mv_log_quote(q, sizeof(q), env->from), cert_name);
		envelope_free(env);
		agent_peer_reject(c, "message claims to come from another node");
		return;
	}
	/* datagrams carry only what failure detection sends that way: the
	 * SWIM probes and the failover heartbeats (membership.c, ha.c) */
	if (c == NULL && env->body_case != MV__ENVELOPE__BODY_SWIM &&
	    env->body_case != MV__ENVELOPE__BODY_FAILOVER) {
		MV_WARN(
		    "swim",
		    "rejected peer datagram: body not sent by datagram remote=%s peer=%s body=%d",
		    remote, cert_name, (int)env->body_case);
		envelope_free(env);
		return;
	}
	switch (env->body_case) {
	case MV__ENVELOPE__BODY_SWIM: {
		struct swim_msg m;
		struct swim_update *ups;
		int drc = swim_codec_decode(env, &m, &ups, &why);
		if (drc == -ENOMSG) { /* a newer peer's message type: skip it, keep the link */
			MV_WARN("swim", "ignored peer %s remote=%s peer=%s type=%d reason=\"%s\"",
			        via, remote, cert_name,
			        env->swim != NULL ? (int)env->swim->type : -1, why);
			envelope_free(env);
			return;
		}
		if (drc < 0) {
			MV_WARN("swim", "rejected peer %s remote=%s peer=%s reason=\"%s\"", via,
			        remote, cert_name, why);
			envelope_free(env);
			agent_peer_reject(c, why);
			return;
		}
		if (swim_handle_message(membership_swim(a), &m, uv_now(a->loop)) < 0)
			MV_WARN("swim", "membership core rejected message type=%s from=%s",
			        swim_msg_type_name(m.type), cert_name);
		free(ups);
		membership_pump(a);
		break;
	}
	case MV__ENVELOPE__BODY_STATE:
		nodestate_handle_envelope(a, env);
		break;
	case MV__ENVELOPE__BODY_MIG:
		migration_handle_envelope(a, env);
		break;
	case MV__ENVELOPE__BODY_FAILOVER:
		ha_handle_envelope(a, env);
		break;
	case MV__ENVELOPE__BODY_REQUEST:
		rpc_server_handle_peer_request(a, cert_name, env->request);
		agent_leave_if_requested(a);
		break;
	case MV__ENVELOPE__BODY_RESPONSE:
		peer_client_handle_response(a, cert_name, env->response);
		break;
	default:
		break;
	}
	envelope_free(env);
}

static void agent_on_peer_frame(struct net *n, struct net_conn *c, const uint8_t *payload,
                                size_t len, void *ud)
{
	(void)n;
	agent_handle_peer_message(ud, c, net_conn_peer_name(c), net_conn_remote(c), "frame",
	                          payload, len);
}

static void agent_on_peer_dgram(struct net *n, const char *peer, const char *remote,
                                const uint8_t *payload, size_t len, void *ud)
{
	(void)n;
	agent_handle_peer_message(ud, NULL, peer, remote, "datagram", payload, len);
}

/* The member whose advertised peer address is addr (name into out), or
 * false. Linear in the members: called at most once a second per address. */
static bool agent_member_at_addr(struct agent *a, const char *addr, char *out, size_t len)
{
	const struct swim *s = membership_swim(a);
	if (s == NULL)
		return false;
	for (size_t i = 0, n = swim_member_count(s); i < n; i++) {
		struct swim_member_info mi;
		swim_member_at(s, i, &mi);
		/* (a dead or departed record at a reused address is not who is
		 * there now) */
		if (!mi.is_self && mi.addr != NULL && strcmp(mi.addr, addr) == 0 &&
		    (mi.state == SWIM_ALIVE || mi.state == SWIM_SUSPECT)) {
			snprintf(out, len, "%s", mi.name);
			return true;
		}
	}
	return false;
}

/* A datagram under a key we do not hold, from a member's address: it still
 * seals with the keys of our previous life (we restarted). A TLS
 * connection to it rekeys both ends at once, instead of its probes of us
 * failing until we happen to contact it. */
static void agent_on_peer_unknown_key(struct net *n, const char *addr, void *ud)
{
	struct agent *a = ud;
	char name[SWIM_NAME_MAX];
	if (agent_member_at_addr(a, addr, name, sizeof(name))) {
		MV_DEBUG("agent", "datagram under an unknown key from member=%s addr=%s: rekeying",
		         name, addr);
		(void)net_connect(n, addr, name);
	}
}

/* Nothing listens on the peer port at addr (refused connect, or ICMP
 * port unreachable for a datagram): if a member lives there, its agent is
 * down — proof for the failure detector. */
static void agent_on_peer_refused(struct net *n, const char *addr, const char *name, void *ud)
{
	(void)n;
	struct agent *a = ud;
	char found[SWIM_NAME_MAX];
	if ((name == NULL || name[0] == '\0') &&
	    agent_member_at_addr(a, addr, found, sizeof(found)))
		name = found;
	if (name != NULL && name[0] != '\0') {
		MV_DEBUG("agent", "peer port refused member=%s addr=%s", name, addr);
		membership_peer_refused(a, name);
	}
}

static void agent_on_rpc_frame(struct net *n, struct net_conn *c, const uint8_t *payload,
                               size_t len, void *ud)
{
	(void)n;
	rpc_server_handle_frame(ud, c, payload, len);
	agent_leave_if_requested(ud);
}

static void agent_on_rpc_frame_refused(struct net *n, struct net_conn *c, const uint8_t *prefix,
                                       size_t prefix_len, uint32_t len, uint32_t cap, void *ud)
{
	(void)n;
	rpc_server_frame_refused(ud, c, prefix, prefix_len, len, cap);
}

static void agent_on_conn_closed(struct net *n, struct net_conn *c, void *ud)
{
	(void)n;
	rpc_server_on_conn_closed(ud, c);
}

/* A member came back at a new incarnation (restarted, or refuted): a
 * restarted agent forgot our datagram keys, so ours to it retire and the
 * next probe goes over TLS, whose handshake rekeys both ends (instead of
 * datagrams dropped there as "unknown key" until it happens to contact us:
 * a false suspicion of every restarted agent). A refutation costs one
 * needless handshake. */
static void agent_on_member_event(struct agent *a, const struct swim_event *e)
{
	if (a->net != NULL && e->name != NULL &&
	    (e->type == SWIM_EV_MEMBER_ALIVE || e->type == SWIM_EV_MEMBER_JOINED ||
	     e->type == SWIM_EV_MEMBER_ADDR_CHANGED))
		net_dgram_retire(a->net, e->name);
}

/* ---- libvirt ------------------------------------------------------------------------ */

/* libvirt connected, disconnected, or a VM changed: publish at once. */
static void agent_on_virt_change(struct virt *v, enum virt_change what, const char *vm_name,
                                 void *ud)
{
	(void)v;
	struct agent *a = ud;
	bool vm = what == VIRT_CHANGE_VM_EVENT || what == VIRT_CHANGE_VM_RECONCILED;
	/* VM-level HA first: an HA VM that crashed and that it restarts here is
	 * published as restarting in the same record that shows it stopped (the
	 * cluster would otherwise count it owed a restart for a moment) */
	if (vm)
		ha_on_vm_event(a, vm_name);
	nodestate_refresh(a); /* nothing before the service started */
	if (vm)
		migration_on_vm_event(a, vm_name);
}

/* ---- leave and stop --------------------------------------------------------------- */

static void agent_on_net_closed(void *arg)
{
	struct agent *a = arg;
	a->net = NULL;
	uv_stop(a->loop);
}

static void agent_stop(struct agent *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	membership_stop(a); /* its leave timers too */
	peer_client_stop(a);
	uv_signal_stop(&a->sig_hup);
	nodestate_stop(a);
	migration_stop(a);
	ha_stop(a);
	hvwork_stop(a->hv); /* queued jobs come back cancelled; running ones finish */
	net_close(a->net, agent_on_net_closed, a);
}

/* The graceful leave ended: the cluster knows (confirmed), or
 * leave_timeout_ms passed first. */
static void agent_on_left(struct agent *a, bool confirmed)
{
	if (confirmed) {
		MV_INFO("agent", "left the cluster; stopping");
		agent_stop(a);
	} else if (!a->stopping) {
		MV_WARN("agent", "leave not confirmed within leave_timeout_ms=%u; stopping anyway",
		        a->opt.leave_timeout_ms);
		agent_stop(a);
	}
}

/* Starts a graceful leave (membership_leave): peers will see us LEFT, then
 * the process exits; a second request while leaving stops at once. */
static void agent_begin_leave(struct agent *a, const char *why)
{
	if (membership_leaving(a)) {
		MV_WARN("agent", "second stop request while leaving; stopping now");
		agent_stop(a);
		return;
	}
	MV_INFO("agent", "leaving the cluster gracefully cause=\"%s\"", why);
	sdservice_stopping(a);
	membership_leave(a, agent_on_left);
}

/* The CRL in force (tls.crl), at start and after each reload; a list past
 * its nextUpdate still applies, but someone should re-sign it. */
static void agent_log_crl(struct agent *a)
{
	size_t n;
	int64_t next;
	if (!tls_ctx_crl_info(a->tls_server, &n, &next))
		return;
	int64_t left = next - (int64_t)time(NULL);
	MV_INFO("tls", "revocation list in force file=%s revoked=%zu next_update_in_days=%" PRId64,
	        a->opt.crl_file, n, left / 86400);
	if (next != 0 && left < 0)
		MV_WARN("tls",
		        "revocation list is past its next update; still applied, re-sign it "
		        "(meshvisor tls crl create --keep) file=%s",
		        a->opt.crl_file);
}

/* SIGHUP: the log level from the config file and flags, read again (the
 * flags still win). Any other change in the file needs a restart. */
static void agent_reload_log_level(struct agent *a)
{
	struct agent_options o;
	agent_options_init(&o);
	char err[512] = "";
	int rc = agent_options_parse_args(&o, a->argc, a->argv, err, sizeof(err));
	if (rc == 0)
		rc = agent_options_validate(&o, err, sizeof(err));
	if (rc != 0) {
		char q[600];
		MV_ERROR("agent", "config reload failed; keeping log_level=%s error=%s",
		         mv_log_level_name((enum mv_log_level)a->opt.log_level),
		         mv_log_quote(q, sizeof(q), err));
	} else if (o.log_level != a->opt.log_level) {
		MV_INFO("agent", "log level changed from=%s to=%s",
		        mv_log_level_name((enum mv_log_level)a->opt.log_level),
		        mv_log_level_name((enum mv_log_level)o.log_level));
		a->opt.log_level = o.log_level;
		mv_log_set_level((enum mv_log_level)o.log_level);
	}
	agent_options_free(&o);
}

static void agent_on_signal(uv_signal_t *s, int signum)
{
	struct agent *a = s->data;
	if (signum == SIGHUP) {
		sdservice_reloading(a);
		agent_reload_log_level(a);
		char err[512];
		int rc1 = tls_ctx_reload(a->tls_server, err, sizeof(err));
		int rc2 = rc1 == 0 ? tls_ctx_reload(a->tls_client, err, sizeof(err)) : rc1;
		if (rc1 == 0 && rc2 == 0) {
			MV_INFO("tls", "certificates reloaded name=%s expires_in_days=%" PRId64,
			        tls_ctx_own_name(a->tls_server),
			        tls_ctx_own_expiry_s(a->tls_server) / 86400);
			agent_log_crl(a);
		} else {
			MV_ERROR("tls",
			         "certificate reload failed; keeping the old ones error=\"%s\"",
			         err);
		}
		/* sessions from before: a peer the list in force revokes goes now
		 * (also after a failed reload of a half-updated set of files) */
		if (a->net != NULL)
			net_close_revoked(a->net);
		nodestate_recheck_signers(a);
		sdservice_reloaded(a);
		return;
	}
	agent_begin_leave(a, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start-up ---------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The loop was held for lag_us (looplag.h): say so (one line per 10 s,
 * with the number held back), and tell SWIM that the fault is likely ours
 * before its timers, expired during the stall, blame the peers: +1 to the
 * local-health score, +1 more per probe interval the stall lasted. */
static void agent_on_loop_stall(struct looplag *l, uint64_t lag_us, const char *where, void *ud)
{
	struct agent *a = ud;
	struct mv_lag_summary sum;
	uint64_t held = 0;
	if (mv_ratelimit_allow(&a->looplag_log, uv_hrtime() / 1000000u, &held)) {
		looplag_summary(l, &sum);
		MV_WARN("loop",
		        "event loop stalled lag_ms=%" PRIu64 " seen_by=%s p99_ms=%u max_ms=%u "
		        "stalls=%" PRIu64 " suppressed=%" PRIu64,
		        lag_us / 1000u, where, sum.p99_us / 1000u, sum.max_us / 1000u,
		        looplag_stalls(l), held);
	}
	struct swim *s = membership_swim(a);
	if (s == NULL || a->stopping)
		return;
	uint64_t interval_us = (uint64_t)a->opt.swim.probe_interval_ms * 1000u;
	uint64_t delta = 1 + (interval_us ? lag_us / interval_us : 0);
	char why[96];
	snprintf(why, sizeof(why), "own event loop stalled %" PRIu64 " ms", lag_us / 1000u);
	swim_local_health_add(s, delta > UINT32_MAX ? UINT32_MAX : (uint32_t)delta, why);
	membership_pump(a);
}

static int agent_start(struct agent *a, char *err, size_t errlen)
{
	struct agent_options *o = &a->opt;
	mv_log_set_level((enum mv_log_level)o->log_level);

	if (tls_ctx_new_crl(&a->tls_server, true, o->ca_file, o->cert_file, o->key_file,
	                    o->crl_file, err, errlen) < 0 ||
	    tls_ctx_new_crl(&a->tls_client, false, o->ca_file, o->cert_file, o->key_file,
	                    o->crl_file, err, errlen) < 0)
		return -EINVAL;
	agent_log_crl(a);
	if (tls_ctx_own_role(a->tls_server) != TLS_ROLE_NODE) {
		snprintf(err, errlen,
		         "certificate %s has role %s; an agent needs a node certificate",
		         o->cert_file, tls_role_name(tls_ctx_own_role(a->tls_server)));
		return -EINVAL;
	}
	if (strcmp(tls_ctx_own_name(a->tls_server), o->name) != 0) {
		snprintf(err, errlen,
		         "node name '%s' does not match the certificate's name '%s' (%s)", o->name,
		         tls_ctx_own_name(a->tls_server), o->cert_file);
		return -EINVAL;
	}
	int64_t expiry = tls_ctx_own_expiry_s(a->tls_server);
	if (expiry <= 0) {
		snprintf(err, errlen, "certificate %s has expired", o->cert_file);
		return -EINVAL;
	}
	if (expiry < 30 * 86400)
		MV_WARN("tls", "own certificate expires soon days_left=%" PRId64, expiry / 86400);

	int rc = mkdir_p(o->data_dir);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create data_dir %s: %s", o->data_dir, strerror(-rc));
		return rc;
	}

	const char *adv = o->advertise ? o->advertise : o->bind;
	snprintf(a->peer_addr, sizeof(a->peer_addr), strchr(adv, ':') ? "[%s]:%u" : "%s:%u", adv,
	         o->peer_port);
	const char *rb = o->rpc_bind ? o->rpc_bind : o->bind;
	snprintf(a->rpc_addr, sizeof(a->rpc_addr), strchr(rb, ':') ? "[%s]:%u" : "%s:%u", rb,
	         o->rpc_port);

	if (o->witness && strcmp(o->libvirt_uri, "test:///default") == 0) {
		/* A witness runs no VMs: give it an empty host of its own rather
		 * than the test driver's default one (which has a VM). */
		char path[4096];
		snprintf(path, sizeof(path), "%s/witness-host.xml", o->data_dir);
		FILE *f = fopen(path, "w");
		if (f == NULL) {
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
			return -errno;
		}
		fputs(
		    "<?xml version=\"1.0\"?>\n<node>\n  <cpu><mhz>1000</mhz><model>witness</model>"
		    "<nodes>1</nodes><sockets>1</sockets><cores>1</cores><threads>1</threads>"
		    "<active>1</active></cpu>\n  <memory>1048576</memory>\n</node>\n",
		    f);
		fclose(f);
		free(o->libvirt_uri);
		size_t ul = strlen(path) + 16;
		o->libvirt_uri = malloc(ul);
		if (o->libvirt_uri == NULL)
			return -ENOMEM;
		snprintf(o->libvirt_uri, ul, "test://%s", path);
	}
	if ((rc = virt_event_register_uv(a->loop)) < 0) {
		snprintf(err, errlen, "cannot register libvirt's event loop on libuv");
		return rc;
	}
	struct hvwork_lane_config lanes[HVWORK_LANES];
	/* every outgoing migration its thread, and one for the where-checks
	 * after a failed one */
	hvwork_default_config(lanes, o->mig_max_outgoing + 1);
	a->hv = hvwork_new(a->loop, lanes);
	if (a->hv == NULL) {
		snprintf(err, errlen, "cannot start the hypervisor worker threads");
		return -ENOMEM;
	}

	struct virt_options vo = {
	    .uri = o->libvirt_uri,
	    .loop = a->loop,
	    .on_change = agent_on_virt_change,
	    .ud = a,
	    .worker = a->hv, /* the periodic reconcile lists there */
	};
	a->virt = virt_new_opts(&vo);
	if (a->virt == NULL)
		return -ENOMEM;
	virt_check(a->virt);

	struct net_config nc = {
	    .loop = a->loop,
	    .server_tls = a->tls_server,
	    .client_tls = a->tls_client,
	    .max_out_conns = o->max_peer_connections,
	    .idle_timeout_ms = o->peer_idle_timeout_ms,
	    .handshake_timeout_ms = o->swim.probe_interval_ms * 2,
	    .on_peer_frame = agent_on_peer_frame,
	    .on_peer_dgram = agent_on_peer_dgram,
	    .on_peer_unknown_key = agent_on_peer_unknown_key,
	    .on_peer_refused = agent_on_peer_refused,
	    .on_rpc_frame = agent_on_rpc_frame,
	    .rpc_frame_cap = rpc_server_frame_cap,
	    .on_rpc_frame_refused = agent_on_rpc_frame_refused,
	    .on_conn_closed = agent_on_conn_closed,
	    .ud = a,
	};
	a->net = net_new(&nc);
	if (a->net == NULL)
		return -ENOMEM;
	if ((rc = net_listen(a->net, NET_PEER, o->bind, o->peer_port, err, errlen)) < 0)
		return rc;
	if ((rc = net_listen(a->net, NET_RPC, rb, o->rpc_port, err, errlen)) < 0)
		return rc;

	if ((rc = membership_start(a, err, errlen)) < 0)
		return rc;
	/* a stall is half a probe timeout: our own probe verdicts become doubtful */
	mv_ratelimit_init(&a->looplag_log, 10000);
	if ((rc = looplag_start(&a->looplag, a->loop, o->swim.probe_timeout_ms / 2,
	                        agent_on_loop_stall, a)) < 0) {
		snprintf(err, errlen, "cannot start the loop-lag probe: %s", uv_strerror(rc));
		return rc;
	}
	if (membership_add_listener(agent_on_member_event) < 0) {
		snprintf(err, errlen, "too many membership listeners");
		return -ENOSPC;
	}
	if ((rc = peer_client_start(a, err, errlen)) < 0)
		return rc;
	if ((rc = rpc_service_start(a)) < 0) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	MV_INFO(
	    "agent", "started name=%s peer_addr=%s rpc_addr=%s incarnation=%" PRIu64 " version=%s",
	    o->name, a->peer_addr, a->rpc_addr, swim_incarnation(membership_swim(a)), MV_VERSION);
	if ((rc = nodestate_start(a, err, errlen)) < 0)
		return rc;
	if ((rc = migration_start(a, err, errlen)) < 0)
		return rc;
	if ((rc = ha_start(a, err, errlen)) < 0)
		return rc;
	if ((rc = metrics_start(a, err, errlen)) < 0)
		return rc;
	nodestate_refresh(a); /* feeds our capacity to the migration core */
	if (o->n_seeds > 0)
		seeds_join(a, (const char *const *)o->seeds,
		           o->n_seeds); /* names resolved off the loop */
	membership_pump(a);
	if ((rc = sdservice_start(a)) < 0) {
		snprintf(err, errlen, "cannot start the service timer: %s", uv_strerror(rc));
		return rc;
	}
	return 0;
}

/* How long a stopping agent waits for its work on worker threads. */
#define AGENT_EXIT_WORK_MS 30000

static void agent_on_exit_deadline(uv_timer_t *t)
{
	struct agent *a = t->data;
	a->exit_deadline_passed = true;
}

/* The agent's own handles: its exit timer and signal watchers. */
static void agent_close_handles(struct agent *a)
{
	uv_handle_t *hs[] = {(uv_handle_t *)&a->exit_timer, (uv_handle_t *)&a->sig_term,
	                     (uv_handle_t *)&a->sig_int, (uv_handle_t *)&a->sig_hup};
	for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
		if (!uv_is_closing(hs[i]))
			uv_close(hs[i], NULL);
	looplag_close(&a->looplag);
	sdservice_close(a);
	seeds_close(a);
}

/* uv_walk at exit: a handle nobody closed (the libvirt bridge's one
 * process-wide handle aside) is a shutdown bug; say which. */
static void agent_report_open_handle(uv_handle_t *h, void *arg)
{
	if (uv_is_closing(h) || virt_event_is_bridge(h))
		return;
	(*(size_t *)arg)++;
	MV_ERROR("agent", "handle left open at exit type=%s active=%d",
	         uv_handle_type_name(uv_handle_get_type(h)), uv_is_active(h));
}

int agent_main(int argc, char **argv)
{
	static struct agent agent; /* one per process; signal handlers point at it */
	struct agent *a = &agent;
	a->argc = argc;
	a->argv = argv;
	char err[1024] = "";
	agent_options_init(&a->opt);
	int rc = agent_options_parse_args(&a->opt, argc, argv, err, sizeof(err));
	if (rc == 1) {
		agent_options_free(&a->opt);
		return CLI_EXIT_OK;
	}
	if (rc < 0 || agent_options_validate(&a->opt, err, sizeof(err)) < 0) {
		fprintf(stderr, "meshvisor agent: %s\n", err);
		agent_options_free(&a->opt);
		return CLI_EXIT_USAGE;
	}
	/* host names in bind/advertise: resolved now, before the loop runs
	 * (why not uv_getaddrinfo: agent_options_resolve in config.c) */
	if ((rc = agent_options_resolve(&a->opt, err, sizeof(err))) < 0) {
		MV_ERROR("agent", "cannot start: %s", err);
		fprintf(stderr, "meshvisor agent: %s\n", err);
		agent_options_free(&a->opt);
		return rc == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
	}

	a->loop = uv_default_loop();
	uv_update_time(a->loop);
	a->started_unix_ms = wall_ms();
	a->started_mono_ms = uv_now(a->loop);
	uv_timer_init(a->loop, &a->exit_timer);
	a->exit_timer.data = a;
	uv_signal_init(a->loop, &a->sig_term);
	uv_signal_init(a->loop, &a->sig_int);
	uv_signal_init(a->loop, &a->sig_hup);
	a->sig_term.data = a->sig_int.data = a->sig_hup.data = a;
	signal(SIGPIPE, SIG_IGN);

	if (agent_start(a, err, sizeof(err)) < 0) {
		MV_ERROR("agent", "cannot start: %s", err);
		fprintf(stderr, "meshvisor agent: %s\n", err);
		return CLI_EXIT_FAIL;
	}
	uv_signal_start(&a->sig_term, agent_on_signal, SIGTERM);
	uv_signal_start(&a->sig_int, agent_on_signal, SIGINT);
	uv_signal_start(&a->sig_hup, agent_on_signal, SIGHUP);

	uv_run(a->loop, UV_RUN_DEFAULT);

	/* Orderly shutdown. 1. Work on worker threads: a migration or an HA
	 * restart still uses the libvirt connection (a migration was told to
	 * abort), a remote fence its own; wait for each to return (its after
	 * callback sees `stopping` and only frees). */
	uv_timer_start(&a->exit_timer, agent_on_exit_deadline, AGENT_EXIT_WORK_MS, 0);
	while ((migration_work_running(a) > 0 || ha_work_running(a) > 0 ||
	        hvwork_inflight(a->hv) > 0) &&
	       !a->exit_deadline_passed)
		uv_run(a->loop, UV_RUN_ONCE);
	uv_timer_stop(&a->exit_timer);
	if (migration_work_running(a) > 0 || ha_work_running(a) > 0 || hvwork_inflight(a->hv) > 0) {
		/* a job stuck in libvirt (a remote fence of an unreachable host, a
		 * migration that ignores its abort): nothing it uses may be freed
		 * under it, so the process ends here, without the orderly rest */
		MV_ERROR("agent",
		         "stopping without waiting any longer for work on worker threads "
		         "migrations=%" PRIu64 " ha_jobs=%u waited_ms=%u",
		         migration_work_running(a), ha_work_running(a), AGENT_EXIT_WORK_MS);
		membership_save_incarnation(a);
		return a->exit_code ? a->exit_code : CLI_EXIT_FAIL;
	}
	/* 2. libvirt's handles on our loop are released in close callbacks:
	 * free the connection, then let the loop run those callbacks. */
	metrics_close(a); /* its answers read libvirt's health and the worker */
	virt_free(a->virt);
	a->virt = NULL;
	for (int i = 0; i < 8; i++)
		uv_run(a->loop, UV_RUN_NOWAIT);
	/* 3. Every module closes its handles (the network closed its own
	 * before uv_stop); the loop runs until their close callbacks ran, and
	 * only then is anything freed. */
	agent_close_handles(a);
	hvwork_free(a->hv); /* nothing in flight: joins its idle threads */
	a->hv = NULL;
	membership_close(a);
	peer_client_close(a);
	nodestate_close(a);
	migration_close(a);
	ha_close(a);
	for (int i = 0; i < 1000 && uv_loop_alive(a->loop); i++)
		uv_run(a->loop, UV_RUN_NOWAIT);
	size_t left = 0;
	uv_walk(a->loop, agent_report_open_handle, &left);
	if (left > 0)
		MV_ERROR("agent", "handles left open at exit count=%zu", left);

	membership_save_incarnation(a);
	MV_INFO("agent", "stopped name=%s", a->opt.name);
	peer_client_free(a);
	rpc_service_free(a);
	migration_free_all(a);
	ha_free(a);
	nodestate_free(a);
	membership_free(a);
	metrics_free(a);
	tls_ctx_free(a->tls_server);
	tls_ctx_free(a->tls_client);
	agent_options_free(&a->opt);
	return a->exit_code;
}
