/*
 * rpc_server.c — the request/response service.
 *
 * Requests arrive two ways:
 *   1. from clients on the RPC port: Envelope{request}; the answer goes back
 *      on the same connection with the same id: at once for what is
 *      answered here, when the owner answers for what is forwarded (so not
 *      necessarily in request order). A request of another wire version
 *      gets an error with its id (envelope_peek_request), not a close;
 *   2. from other agents on the peer port, forwarded to us because we own
 *      the VM concerned: Envelope{from, request{forwarded}}; the answer goes
 *      back to that agent's peer address as Envelope{from, response}.
 *
 * Cluster-wide reads (members, nodes, vms, vm) are answered from this
 * node's own view: membership and the gossiped node states. VM operations
 * are carried out where the VM lives: here through libvirt, on the
 * hypervisor worker (see "VM commands on the hypervisor worker" below:
 * answered through a sink when libvirt is done, the loop serving everyone
 * meanwhile), or forwarded once to the owning host (a forwarded request is
 * never forwarded again).
 * A forwarded request waits in a pending table until the owner answers, the
 * client goes away (its entry is dropped) or RPC_FORWARD_TIMEOUT_MS passes
 * (the client gets "host X did not answer").
 *
 * Authorization, in one place (rpc_authorize_op and its table): the caller
 * is a viewer, an operator, a node certificate on the RPC port, or an
 * agent on the peer port; each operation's access (read, write, between
 * agents) says which of them may ask. Reads: everyone. Writes: operators,
 * and agents forwarding a request. Between agents: the peer port only. A
 * node certificate on the RPC port may only read — nothing an agent does
 * goes through that port, so a stolen node key gets no operator power
 * there. A forwarded request names its original caller (caller_name,
 * caller_role, set by the forwarding agent from its client's certificate):
 * the owner logs who asked through whom and authorizes the request as that
 * caller (an operator's write, a viewer's read), never above a node. A
 * refused request changes nothing. Only node certificates may send
 * forwarded requests (the peer port admits no other).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "membership.h"
#include "rpc_server.h"
#include "seeds.h"
#include "peer_client.h"
#include "rpc_service.h"
#include "domxml.h"
#include "envelope.h"
#include "ha.h"
#include "log.h"
#include "ratelimit.h"
#include "migration.h"
#include "nodestate.h"
#include "meshvisor/placement.h"
#include "state_codec.h"

/* Everything one response points at, freed after it is sent. */
struct rpc_reply {
	Mv__RpcResponse resp;
	Mv__StatusReply status;
	Mv__MembersReply members;
	Mv__NodesReply nodes;
	Mv__VmsReply vms;
	Mv__VmOpReply vm_op;
	Mv__MigrationsReply migrations;
	char errbuf[768];
	char opbuf[4][256];
	void *allocs[8];
	size_t n_allocs;
	Mv__NodeState **states; /* unpacked node states to free */
	size_t n_states;
};

static void rpc_reply_init(struct rpc_reply *r, uint64_t id)
{
	memset(r, 0, sizeof(*r));
	mv__rpc_response__init(&r->resp);
	r->resp.id = id;
}

static void *rpc_alloc(struct rpc_reply *r, size_t n, size_t size)
{
	if (r->n_allocs == sizeof(r->allocs) / sizeof(r->allocs[0]))
		return NULL;
	void *p = calloc(n ? n : 1, size);
	if (p != NULL)
		r->allocs[r->n_allocs++] = p;
	return p;
}

static void rpc_reply_free(struct rpc_reply *r)
{
	for (size_t i = 0; i < r->n_allocs; i++)
		free(r->allocs[i]);
	for (size_t i = 0; i < r->n_states; i++)
		if (r->states[i] != NULL)
			mv__node_state__free_unpacked(r->states[i], NULL);
	free(r->states);
}

static void rpc_fail(struct rpc_reply *r, Mv__RpcCode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rpc_fail(struct rpc_reply *r, Mv__RpcCode code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->errbuf, sizeof(r->errbuf), fmt, ap);
	va_end(ap);
	r->resp.code = code;
	r->resp.error = r->errbuf;
	r->resp.result_case = MV__RPC_RESPONSE__RESULT__NOT_SET;
}

/* Unpacks every known node state into r->states (freed with r). */
static void rpc_load_states(struct agent *a, struct rpc_reply *r)
{
	size_t n = nodestate_count(a);
	r->states = calloc(n ? n : 1, sizeof(*r->states));
	if (r->states == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		r->states[r->n_states++] = nodestate_unpack_at(a, i);
}

static Mv__MemberState rpc_member_state(struct agent *a, const char *name, bool *known)
{
	struct swim_member_info mi;
	if (swim_member_find(membership_swim(a), name, &mi)) {
		if (known)
			*known = true;
		return (Mv__MemberState)mi.state;
	}
	if (known)
		*known = false;
	return MV__MEMBER_STATE__MEMBER_DEAD;
}

/* ---- reads ---------------------------------------------------------------------- */

static void rpc_status(struct agent *a, struct net_conn *c, struct rpc_reply *r)
{
	Mv__StatusReply *st = &r->status;
	mv__status_reply__init(st);
	const struct virt_health *vh = virt_health(a->virt);
	uint32_t counts[4];
	struct net_stats ns;
	swim_state_counts(membership_swim(a), counts);
	net_get_stats(a->net, &ns);
	uint64_t now = uv_now(a->loop);
	st->name = a->opt.name;
	st->version = MV_VERSION;
	st->peer_addr = a->peer_addr;
	st->rpc_addr = a->rpc_addr;
	st->started_unix_ms = a->started_unix_ms;
	st->uptime_ms = now - a->started_mono_ms;
	st->incarnation = swim_incarnation(membership_swim(a));
	st->local_health = swim_local_health(membership_swim(a));
	st->members_alive = counts[SWIM_ALIVE];
	st->members_suspect = counts[SWIM_SUSPECT];
	st->members_dead = counts[SWIM_DEAD];
	st->members_left = counts[SWIM_LEFT];
	st->libvirt_uri = (char *)virt_uri(a->virt);
	st->libvirt_reachable = vh->reachable;
	st->libvirt_error = (char *)vh->error;
	st->peer_connections = ns.out_conns + ns.in_conns;
	st->peer_connections_out = ns.out_conns;
	st->peer_connections_in = ns.in_peer_conns;
	st->peer_handshakes = ns.handshakes_out + ns.handshakes_in;
	st->peer_handshake_failures = ns.handshake_fail;
	st->peer_evictions = ns.evictions;
	st->peer_idle_closes = ns.idle_closes;
	st->datagram_rekeys = ns.rekeys;
	st->peer_reused_in = ns.reused_in;
	st->datagrams_in = ns.dgrams_in;
	st->datagrams_out = ns.dgrams_out;
	st->datagram_auth_failures = ns.dgram_auth_fail;
	st->datagram_replays = ns.dgram_replays;
	st->datagram_no_key = ns.dgram_no_key;
	st->role = (char *)tls_role_name(c ? net_conn_peer_role(c) : TLS_ROLE_NODE);
	struct mv_lag_summary lag;
	looplag_summary(&a->looplag, &lag);
	st->loop_lag_p99_us = lag.p99_us;
	st->loop_lag_max_us = lag.max_us;
	st->loop_lag_max_ever_us = lag.max_ever_us;
	st->loop_stalls = looplag_stalls(&a->looplag);
	r->resp.result_case = MV__RPC_RESPONSE__RESULT_STATUS;
	r->resp.status = st;
}

static void rpc_members(struct agent *a, struct rpc_reply *r)
{
	size_t n = swim_member_count(membership_swim(a));
	Mv__Member *mbuf = rpc_alloc(r, n, sizeof(*mbuf));
	Mv__Member **mptrs = rpc_alloc(r, n, sizeof(*mptrs));
	if (mbuf == NULL || mptrs == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct swim_member_info mi;
		swim_member_at(membership_swim(a), i, &mi);
		mv__member__init(&mbuf[i]);
		mbuf[i].name = (char *)mi.name;
		mbuf[i].addr = (char *)mi.addr;
		mbuf[i].state = (Mv__MemberState)mi.state;
		mbuf[i].incarnation = mi.incarnation;
		mbuf[i].since_unix_ms = agent_mono_to_unix_ms(a, mi.since_ms);
		mbuf[i].cause = (char *)(mi.cause && mi.cause[0] ? mi.cause
		                         : mi.is_self            ? "this node"
		                                                 : "");
		mptrs[i] = &mbuf[i];
	}
	mv__members_reply__init(&r->members);
	r->members.n_members = n;
	r->members.members = mptrs;
	r->resp.result_case = MV__RPC_RESPONSE__RESULT_MEMBERS;
	r->resp.members = &r->members;
}

/* nodes: every member, with its gossiped state when we have it. */
static void rpc_nodes(struct agent *a, struct rpc_reply *r, const char *only)
{
	rpc_load_states(a, r);
	size_t nm = swim_member_count(membership_swim(a));
	size_t cap = nm + r->n_states;
	Mv__NodeView *views = rpc_alloc(r, cap, sizeof(*views));
	Mv__NodeView **ptrs = rpc_alloc(r, cap, sizeof(*ptrs));
	if (views == NULL || ptrs == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < nm; i++) {
		struct swim_member_info mi;
		swim_member_at(membership_swim(a), i, &mi);
		if (only != NULL && strcmp(mi.name, only) != 0)
			continue;
		Mv__NodeView *v = &views[n];
		mv__node_view__init(v);
		v->member_name = (char *)mi.name;
		v->member_state = (Mv__MemberState)mi.state;
		for (size_t j = 0; j < r->n_states; j++) {
			if (r->states[j] != NULL && strcmp(r->states[j]->name, mi.name) == 0) {
				v->state = r->states[j];
				v->known_state = true;
			}
		}
		ptrs[n] = v;
		n++;
	}
	/* hosts whose record we hold but membership has reaped */
	for (size_t j = 0; j < r->n_states; j++) {
		Mv__NodeState *s = r->states[j];
		struct swim_member_info mi;
		if (s == NULL || swim_member_find(membership_swim(a), s->name, &mi) ||
		    (only != NULL && strcmp(s->name, only) != 0))
			continue;
		Mv__NodeView *v = &views[n];
		mv__node_view__init(v);
		v->member_name = s->name;
		v->member_state = MV__MEMBER_STATE__MEMBER_DEAD;
		v->state = s;
		v->known_state = true;
		ptrs[n] = v;
		n++;
	}
	if (only != NULL && n == 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND, "no host named '%s' in the cluster",
		         only);
		return;
	}
	mv__nodes_reply__init(&r->nodes);
	r->nodes.n_nodes = n;
	r->nodes.nodes = ptrs;
	r->resp.result_case = MV__RPC_RESPONSE__RESULT_NODES;
	r->resp.nodes = &r->nodes;
}

struct rpc_vm_match {
	Mv__VmInfo *vm;
	Mv__NodeState *host;
};

/* Finds VMs by name or UUID across every host's gossiped inventory. */
static size_t rpc_find_vm(struct rpc_reply *r, const char *key, struct rpc_vm_match *out,
                          size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_states; i++) {
		Mv__NodeState *s = r->states[i];
		if (s == NULL)
			continue;
		for (size_t j = 0; j < s->n_vms; j++) {
			Mv__VmInfo *v = s->vms[j];
			if (strcmp(v->name, key) != 0 && strcasecmp(v->uuid, key) != 0)
				continue;
			/* One VM twice: mid live migration the target holds a paused
			 * copy with the same UUID; the running one (the source, which
			 * owns the move) is the VM. */
			size_t same = n;
			for (size_t k = 0; k < n && k < cap; k++)
				if (v->uuid[0] != '\0' && strcasecmp(out[k].vm->uuid, v->uuid) == 0)
					same = k;
			if (same < n) {
				if (out[same].vm->state == MV__VM_STATE__VM_PAUSED &&
				    v->state != MV__VM_STATE__VM_PAUSED)
					out[same] = (struct rpc_vm_match){v, s};
				continue;
			}
			if (n < cap)
				out[n] = (struct rpc_vm_match){v, s};
			n++;
		}
	}
	return n;
}

static void rpc_vms(struct agent *a, struct rpc_reply *r, const char *node, const char *vm)
{
	rpc_load_states(a, r);
	if (node != NULL && node[0] != '\0') {
		bool found = false;
		for (size_t i = 0; i < r->n_states; i++)
			if (r->states[i] != NULL && strcmp(r->states[i]->name, node) == 0)
				found = true;
		if (!found) {
			rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND,
			         "no host named '%s' (or its state has not arrived yet)", node);
			return;
		}
	}
	size_t total = 0;
	for (size_t i = 0; i < r->n_states; i++)
		if (r->states[i] != NULL)
			total += r->states[i]->n_vms;
	Mv__VmView *views = rpc_alloc(r, total, sizeof(*views));
	Mv__VmView **ptrs = rpc_alloc(r, total, sizeof(*ptrs));
	if (views == NULL || ptrs == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < r->n_states; i++) {
		Mv__NodeState *s = r->states[i];
		if (s == NULL || (node != NULL && node[0] != '\0' && strcmp(s->name, node) != 0))
			continue;
		for (size_t j = 0; j < s->n_vms; j++) {
			Mv__VmInfo *v = s->vms[j];
			if (vm != NULL && strcmp(v->name, vm) != 0 && strcasecmp(v->uuid, vm) != 0)
				continue;
			mv__vm_view__init(&views[n]);
			views[n].vm = v;
			views[n].node = s->name;
			views[n].node_state = rpc_member_state(a, s->name, NULL);
			views[n].stale = s->inventory_stale;
			ptrs[n] = &views[n];
			n++;
		}
	}
	if (vm != NULL && n == 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND, "no VM named '%s' in the cluster", vm);
		return;
	}
	mv__vms_reply__init(&r->vms);
	r->vms.n_vms = n;
	r->vms.vms = ptrs;
	r->resp.result_case = MV__RPC_RESPONSE__RESULT_VMS;
	r->resp.vms = &r->vms;
}

/* ---- VM operations ------------------------------------------------------------------ */

static void rpc_vm_op_ok(struct agent *a, struct rpc_reply *r, const char *vm, const char *uuid,
                         const char *msg)
{
	snprintf(r->opbuf[0], sizeof(r->opbuf[0]), "%s", vm);
	snprintf(r->opbuf[1], sizeof(r->opbuf[1]), "%s", uuid ? uuid : "");
	snprintf(r->opbuf[2], sizeof(r->opbuf[2]), "%s", msg);
	mv__vm_op_reply__init(&r->vm_op);
	r->vm_op.vm = r->opbuf[0];
	r->vm_op.uuid = r->opbuf[1];
	r->vm_op.node = a->opt.name;
	r->vm_op.message = r->opbuf[2];
	r->resp.result_case = MV__RPC_RESPONSE__RESULT_VM_OP;
	r->resp.vm_op = &r->vm_op;
	nodestate_refresh(a); /* publish the change at once */
}

/* ---- desired state (issue 9) --------------------------------------------------------
 *
 * Every VM carries the state the cluster keeps it at (virt.h, enum
 * virt_desired): failover restarts an HA VM whose desired state is running
 * wherever it runs nowhere, and leaves one that is stopped alone. Only the
 * operator's actions through meshvisor set it, and each sets it BEFORE it
 * acts: a VM being shut down is never "recovered" meanwhile, and a VM
 * being started is one the cluster keeps running. If the record cannot be
 * written the action is refused; if the action then fails, the previous
 * value is put back (a refused action changes nothing). A VM that stops or
 * starts by itself or through virsh keeps its desired state.
 */

/* Active as the failover side counts it (ha.c): running, paused, or in
 * between. */
static bool rpc_vm_active(enum virt_vm_state s)
{
	return s == VIRT_VM_RUNNING || s == VIRT_VM_PAUSED || s == VIRT_VM_OTHER;
}

static const char *rpc_action_name(Mv__VmAction act)
{
	switch (act) {
	case MV__VM_ACTION__VM_START:
		return "start";
	case MV__VM_ACTION__VM_SHUTDOWN:
		return "shutdown";
	case MV__VM_ACTION__VM_DESTROY:
		return "destroy";
	case MV__VM_ACTION__VM_UNDEFINE:
		return "undefine";
	default:
		return "?";
	}
}

/* ---- forwarding ---------------------------------------------------------------------- */

/* Sends req to `owner` on the peer port (peer_client); its answer goes
 * back to the client later. -1 with r failed when nothing was sent. */
static int rpc_forward(struct agent *a, struct net_conn *client, Mv__RpcRequest *req,
                       const char *owner, struct rpc_reply *r)
{
	Mv__RpcCode code;
	char err[512];
	if (peer_client_forward(a, client, req, owner, &code, err, sizeof(err)) < 0) {
		rpc_fail(r, code, "%s", err);
		return -1;
	}
	return 0;
}

void rpc_server_on_conn_closed(struct agent *a, struct net_conn *c)
{
	peer_client_on_conn_closed(a, c);
	rpc_sinks_on_conn_closed(a, c);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static int rpc_start_drain(struct agent *a, const Mv__RpcRequest *req, const char *peer,
                           uint64_t sink, char *err, size_t errlen)
{
	(void)peer;
	return migration_rpc_drain(a, req->drain, sink, err, errlen);
}

static int rpc_start_migrate(struct agent *a, const Mv__RpcRequest *req, const char *peer,
                             uint64_t sink, char *err, size_t errlen)
{
	(void)peer;
	return migration_rpc_migrate(a, req->migrate, sink, err, errlen);
}

/* Opens the sink and starts the operation; if it does not start, the sink
 * is closed without a frame and r carries the error. Returns what
 * rpc_execute returns (true: the answer is in r). */
static bool rpc_run_in_sink(struct agent *a, struct net_conn *client, const char *peer,
                            Mv__RpcRequest *req, rpc_service_fn start, struct rpc_reply *r)
{
	uint64_t sink = rpc_sink_open(a, client, peer, req->id);
	char err[512];
	int rc = sink ? start(a, req, peer, sink, err, sizeof(err)) : -ENOMEM;
	if (rc < 0) {
		if (sink)
			rpc_sink_drop(a, sink);
		rpc_fail(r, rpc_code_of_errno(rc), "%s", sink ? err : "out of memory");
		return true;
	}
	return false;
}

/* One request being executed: who asked, and whether it may be forwarded
 * (a request another agent forwarded to us is answered here or refused). */
struct rpc_call {
	struct agent *a;
	struct net_conn *client; /* RPC port; NULL for a peer's request */
	const char *peer;        /* the agent that forwarded it, or NULL */
	Mv__RpcRequest *req;
	const char *caller; /* certificate name, for the log */
	bool may_forward;
};

/* An operation answered here: true when the answer is in r, false when it
 * was forwarded or goes out through a sink. */
typedef bool (*rpc_handler_fn)(struct rpc_call *c, struct rpc_reply *r);

/* ---- VM commands on the hypervisor worker (issue 13) ---------------------------------
 *
 * A VM command carried out here (create; start, shutdown, destroy,
 * undefine; set-ha; and the lookup that decides whether a VM is ours) is a
 * chain of libvirt calls on the hypervisor worker: the first through
 * virt_vm_op_async, each next one through virt_vm_op_next from the done
 * callback of the one before, so that a command's calls run as one, before
 * any other command's (virt.h: one operator job at a time per host, in
 * order), as they did when they ran on the loop. The loop keeps answering
 * SWIM and everyone else meanwhile. The decisions between the calls (may
 * an HA VM start here, what to put back after a failure) are made on the
 * loop, in the done callbacks; the answer, worded as before, goes out
 * through a sink (rpc_service.h) when the last call is done: a client that
 * went away meanwhile gets nothing, and the command still completes (its
 * restores included). A host whose worker queue is full answers
 * "busy ... try again" at once, nothing done.
 */

enum rpc_vmstage {
	RPC_VM_FIND,            /* is the VM ours? (rpc_op_owned_vm) */
	RPC_VM_CREATE_DEFINE,   /* vm create: define */
	RPC_VM_CREATE_DESIRED,  /* ... record the desired state */
	RPC_VM_CREATE_UNDEFINE, /* ... which failed: remove the definition again */
	RPC_VM_CREATE_START,    /* ... start */
	RPC_VM_ACT_DESIRED,     /* vm start/shutdown/destroy: record the desired state */
	RPC_VM_ACT,             /* ... the action itself (or undefine) */
	RPC_VM_HA_DESIRED,      /* vm set-ha on: record the desired state */
	RPC_VM_HA_SET,          /* ... the HA settings */
	RPC_VM_RESTORE,         /* a step failed: the desired state put back, then answer */
};

struct rpc_vmjob {
	struct agent *a;
	uint64_t sink;
	struct net_conn *client;  /* valid only while the sink is alive */
	char peer[SWIM_NAME_MAX]; /* the forwarding agent, or "" */
	char caller[256];         /* for the log */
	bool may_forward;
	Mv__RpcRequest *req; /* the job's own copy */
	enum rpc_vmstage stage;
	bool on_worker;    /* a step was queued: the next goes in front */
	struct virt_vm vm; /* as found or defined */
	bool start, set_desired, record_only;
	const char *done_msg;
	Mv__RpcCode code; /* RPC_VM_RESTORE: the answer after the restore */
	bool refresh;     /* ... and publish the node state first */
	char err[1400];   /* longer than an answer (rpc_reply.errbuf truncates) */
};

static void rpc_vmjob_free(struct rpc_vmjob *j)
{
	if (j->req != NULL)
		mv__rpc_request__free_unpacked(j->req, NULL);
	free(j);
}

/* A job for the call c, with its sink and its own copy of the request;
 * NULL when out of memory (nothing opened). */
static struct rpc_vmjob *rpc_vmjob_new(const struct rpc_call *c)
{
	struct rpc_vmjob *j = calloc(1, sizeof(*j));
	size_t n = mv__rpc_request__get_packed_size(c->req);
	uint8_t *buf = malloc(n ? n : 1);
	if (j != NULL && buf != NULL) {
		mv__rpc_request__pack(c->req, buf);
		j->req = mv__rpc_request__unpack(NULL, n, buf);
	}
	free(buf);
	if (j == NULL || j->req == NULL ||
	    (j->sink = rpc_sink_open(c->a, c->client, c->peer, c->req->id)) == 0) {
		if (j != NULL)
			rpc_vmjob_free(j);
		return NULL;
	}
	j->a = c->a;
	j->client = c->client;
	snprintf(j->peer, sizeof(j->peer), "%s", c->peer != NULL ? c->peer : "");
	snprintf(j->caller, sizeof(j->caller), "%s", c->caller != NULL ? c->caller : "");
	j->may_forward = c->may_forward;
	return j;
}

/* The answer in r goes out through the sink; the job ends. */
static void rpc_vmjob_send(struct rpc_vmjob *j, struct rpc_reply *r)
{
	rpc_sink_send(j->a, j->sink, &r->resp, true);
	rpc_reply_free(r);
	rpc_vmjob_free(j);
}

static void rpc_vmjob_fail(struct rpc_vmjob *j, Mv__RpcCode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rpc_vmjob_fail(struct rpc_vmjob *j, Mv__RpcCode code, const char *fmt, ...)
{
	struct rpc_reply r;
	rpc_reply_init(&r, 0);
	char msg[sizeof(r.errbuf)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rpc_fail(&r, code, "%s", msg);
	rpc_vmjob_send(j, &r);
}

static void rpc_vmjob_ok(struct rpc_vmjob *j, const char *msg)
{
	struct rpc_reply r;
	rpc_reply_init(&r, 0);
	rpc_vm_op_ok(j->a, &r, j->vm.name, j->vm.uuid, msg);
	rpc_vmjob_send(j, &r);
}

static void rpc_vmjob_step(struct rpc_vmjob *j, const struct virt_op_result *res);

static void rpc_vmjob_on_op(struct virt *v, int status, const struct virt_op_result *res, void *ud)
{
	(void)v;
	struct rpc_vmjob *j = ud;
	if (status != 0) {
		rpc_vmjob_fail(j, MV__RPC_CODE__RPC_ERR_UNAVAILABLE,
		               "the agent is stopping; the command was not finished");
		return;
	}
	rpc_vmjob_step(j, res);
}

/* The job's next libvirt call; one that cannot even be queued comes back
 * at once as that call's failure. */
static void rpc_vmjob_call(struct rpc_vmjob *j, enum rpc_vmstage stage, const struct virt_op_req *q)
{
	struct virt_op_result res = {0};
	j->stage = stage;
	res.rc =
	    j->on_worker
		? virt_vm_op_next(j->a->virt, q, rpc_vmjob_on_op, j, res.err, sizeof(res.err))
		: virt_vm_op_async(j->a->virt, q, rpc_vmjob_on_op, j, res.err, sizeof(res.err));
	if (res.rc == 0) {
		j->on_worker = true;
		return;
	}
	rpc_vmjob_step(j, &res);
}

static void rpc_vmjob_set_desired(struct rpc_vmjob *j, enum rpc_vmstage stage, enum virt_desired d)
{
	struct virt_op_req q = {.kind = VIRT_OPK_SET_DESIRED, .key = j->vm.uuid, .desired = d};
	rpc_vmjob_call(j, stage, &q);
}

/* A step failed after the desired state was written: put back `was`
 * (logged if that fails too), then answer code with the message in
 * j->err (a refresh: publish the node state first). */
static void rpc_vmjob_restore(struct rpc_vmjob *j, enum virt_desired was, Mv__RpcCode code,
                              bool refresh)
{
	j->code = code;
	j->refresh = refresh;
	j->vm.desired = was;
	rpc_vmjob_set_desired(j, RPC_VM_RESTORE, was);
}

static void rpc_vmjob_restored(struct rpc_vmjob *j, const struct virt_op_result *res)
{
	if (res->rc < 0)
		MV_WARN("rpc", "cannot restore the desired state of vm=%s to %s error=%s",
		        j->vm.name, virt_desired_name(j->vm.desired), res->err);
	if (j->refresh)
		nodestate_refresh(j->a);
	rpc_vmjob_fail(j, j->code, "%s", j->err);
}

/* ---- vm create (here) ---- */

static void rpc_vmjob_created(struct rpc_vmjob *j)
{
	MV_INFO("rpc", "vm created name=%s uuid=%s started=%d", j->vm.name, j->vm.uuid, j->start);
	rpc_vmjob_ok(j, j->start ? "defined and started" : "defined");
}

static void rpc_vmjob_create_step(struct rpc_vmjob *j, const struct virt_op_result *res)
{
	struct agent *a = j->a;
	const Mv__VmCreateRequest *q = j->req->vm_create;
	const char *name = j->vm.name;
	switch (j->stage) {
	case RPC_VM_CREATE_DEFINE:
		if (res->rc < 0) {
			rpc_vmjob_fail(j, rpc_code_of_errno(res->rc), "%s", res->err);
			return;
		}
		/* XML that already says ha="yes" (e.g. another host's dump) starts
		 * only where an HA VM may: it stays defined and stopped otherwise. */
		j->vm = res->vm;
		j->start = q->start && ha_may_start_vm(a, j->vm.uuid, j->vm.ha, j->vm.epoch, j->err,
		                                       sizeof(j->err));
		rpc_vmjob_set_desired(j, RPC_VM_CREATE_DESIRED,
		                      j->start ? VIRT_DESIRED_RUNNING : VIRT_DESIRED_STOPPED);
		return;
	case RPC_VM_CREATE_DESIRED:
		if (res->rc < 0) {
			j->code = rpc_code_of_errno(res->rc);
			snprintf(j->err, sizeof(j->err), "%s", res->err);
			struct virt_op_req u = {.kind = VIRT_OPK_UNDEFINE, .key = j->vm.uuid};
			rpc_vmjob_call(j, RPC_VM_CREATE_UNDEFINE, &u);
		} else if (q->start && !j->start) {
			nodestate_refresh(a);
			rpc_vmjob_fail(j, MV__RPC_CODE__RPC_ERR_UNAVAILABLE,
			               "defined '%s' on %s but did not start it: %s", name,
			               a->opt.name, j->err);
		} else if (j->start) {
			struct virt_op_req s = {
			    .kind = VIRT_OPK_START, .key = name, .needs_quorum = j->vm.ha};
			rpc_vmjob_call(j, RPC_VM_CREATE_START, &s);
		} else {
			rpc_vmjob_created(j);
		}
		return;
	case RPC_VM_CREATE_UNDEFINE:
		nodestate_refresh(a);
		rpc_vmjob_fail(j, j->code, "could not record the desired state of '%s' on %s%s: %s",
		               name, a->opt.name,
		               res->rc == 0 ? " (its definition was removed again)" : "", j->err);
		return;
	default: /* RPC_VM_CREATE_START */
		if (res->rc == 0) {
			rpc_vmjob_created(j);
			return;
		}
		snprintf(j->err, sizeof(j->err), "defined '%s' on %s but could not start it: %s",
		         name, a->opt.name, res->err);
		/* it is defined, not started */
		rpc_vmjob_restore(j, VIRT_DESIRED_STOPPED, rpc_code_of_errno(res->rc), true);
		return;
	}
}

/* ---- vm start, shutdown, destroy, undefine (the VM is ours) ---- */

static void rpc_vmjob_act(struct rpc_vmjob *j)
{
	const Mv__VmActionRequest *q = j->req->vm_action;
	if (j->record_only) {
		MV_INFO("rpc", "vm %s name=%s uuid=%s", rpc_action_name(q->action), j->vm.name,
		        j->vm.uuid);
		rpc_vmjob_ok(j, j->done_msg);
		return;
	}
	struct virt_op_req op = {.key = q->vm};
	switch (q->action) {
	case MV__VM_ACTION__VM_START:
		op.kind = VIRT_OPK_START;
		op.needs_quorum = j->vm.ha; /* checked again on the worker (virt.h) */
		j->done_msg = "started";
		break;
	case MV__VM_ACTION__VM_SHUTDOWN:
		ha_expect_stop(j->a, j->vm.uuid);
		op.kind = VIRT_OPK_SHUTDOWN;
		j->done_msg = "shutdown requested";
		break;
	case MV__VM_ACTION__VM_DESTROY:
		ha_expect_stop(j->a, j->vm.uuid);
		op.kind = VIRT_OPK_DESTROY;
		j->done_msg = "destroyed (powered off)";
		break;
	case MV__VM_ACTION__VM_UNDEFINE:
		op.kind = VIRT_OPK_UNDEFINE;
		j->done_msg = "undefined";
		break;
	default:
		rpc_vmjob_fail(j, MV__RPC_CODE__RPC_ERR_INVALID, "unknown VM action %d",
		               (int)q->action);
		return;
	}
	rpc_vmjob_call(j, RPC_VM_ACT, &op);
}

static void rpc_vmjob_action(struct rpc_vmjob *j)
{
	const Mv__VmActionRequest *q = j->req->vm_action;
	const struct virt_vm *vm = &j->vm;
	bool start = q->action == MV__VM_ACTION__VM_START;
	bool stop =
	    q->action == MV__VM_ACTION__VM_SHUTDOWN || q->action == MV__VM_ACTION__VM_DESTROY;
	enum virt_desired want = stop ? VIRT_DESIRED_STOPPED : VIRT_DESIRED_RUNNING;
	/* Already in the state asked for, but not recorded so (an HA VM its
	 * host fenced or its guest powered off, that should run; a VM started
	 * with virsh after the operator stopped it): the action only records
	 * the desired state. A VM already there and recorded so gets "not
	 * running" / "already running", nothing changed (the write below is a
	 * no-op then). A crashed VM may still be active: destroy goes ahead. */
	j->record_only = vm->desired != want && ((start && rpc_vm_active(vm->state)) ||
	                                         (stop && vm->state == VIRT_VM_SHUTOFF));
	j->done_msg = start ? "already running; desired state now running"
	                    : "already stopped; desired state now stopped (it stays stopped)";
	j->set_desired = start || stop;
	if (start && !ha_may_start_vm(j->a, vm->uuid, vm->ha, vm->epoch, j->err, sizeof(j->err))) {
		MV_INFO("rpc", "vm start refused name=%s uuid=%s error=%s", vm->name, vm->uuid,
		        j->err);
		rpc_vmjob_fail(j, MV__RPC_CODE__RPC_ERR_UNAVAILABLE, "%s", j->err);
		return;
	}
	if (j->set_desired)
		rpc_vmjob_set_desired(j, RPC_VM_ACT_DESIRED, want);
	else
		rpc_vmjob_act(j);
}

/* ---- vm set-ha (the VM is ours) ---- */

static void rpc_vmjob_set_ha(struct rpc_vmjob *j)
{
	const Mv__VmSetHaRequest *q = j->req->vm_set_ha;
	struct virt_op_req op = {.kind = VIRT_OPK_SET_HA,
	                         .key = q->vm,
	                         .ha = q->ha,
	                         .priority = q->has_priority ? q->priority : j->vm.priority,
	                         .group = q->has_group ? q->group : NULL};
	rpc_vmjob_call(j, RPC_VM_HA_SET, &op);
}

static void rpc_vmjob_ha(struct rpc_vmjob *j)
{
	/* Turning HA on keeps the VM as it is now: running if it runs, else
	 * stopped (enabling HA never starts a VM by surprise). Written first,
	 * so the VM is never HA with a desired state it did not get. Changing
	 * the settings of a VM that is already HA, or turning HA off, leaves
	 * the desired state alone. */
	j->set_desired = j->req->vm_set_ha->ha && !j->vm.ha;
	if (j->set_desired)
		rpc_vmjob_set_desired(j, RPC_VM_HA_DESIRED,
		                      rpc_vm_active(j->vm.state) ? VIRT_DESIRED_RUNNING
		                                                 : VIRT_DESIRED_STOPPED);
	else
		rpc_vmjob_set_ha(j);
}

/* A step of an action or set-ha failed: the desired state goes back to
 * what it was (when the command wrote it), and the step's error is the
 * answer. */
static void rpc_vmjob_failed(struct rpc_vmjob *j, const struct virt_op_result *res)
{
	snprintf(j->err, sizeof(j->err), "%s", res->err);
	if (j->set_desired)
		rpc_vmjob_restore(j, j->vm.desired, rpc_code_of_errno(res->rc), false);
	else
		rpc_vmjob_fail(j, rpc_code_of_errno(res->rc), "%s", j->err);
}

static void rpc_vmjob_found(struct rpc_vmjob *j, const struct virt_op_result *res);

static void rpc_vmjob_step(struct rpc_vmjob *j, const struct virt_op_result *res)
{
	switch (j->stage) {
	case RPC_VM_FIND:
		rpc_vmjob_found(j, res);
		return;
	case RPC_VM_CREATE_DEFINE:
	case RPC_VM_CREATE_DESIRED:
	case RPC_VM_CREATE_UNDEFINE:
	case RPC_VM_CREATE_START:
		rpc_vmjob_create_step(j, res);
		return;
	case RPC_VM_RESTORE:
		rpc_vmjob_restored(j, res);
		return;
	case RPC_VM_ACT_DESIRED:
	case RPC_VM_HA_DESIRED:
		if (res->rc < 0)
			rpc_vmjob_failed(j, res);
		else if (j->stage == RPC_VM_ACT_DESIRED)
			rpc_vmjob_act(j);
		else
			rpc_vmjob_set_ha(j);
		return;
	case RPC_VM_ACT:
		if (res->rc < 0) {
			rpc_vmjob_failed(j, res);
			return;
		}
		MV_INFO("rpc", "vm %s name=%s uuid=%s", rpc_action_name(j->req->vm_action->action),
		        j->vm.name, j->vm.uuid);
		rpc_vmjob_ok(j, j->done_msg);
		return;
	case RPC_VM_HA_SET:
		if (res->rc < 0) {
			rpc_vmjob_failed(j, res);
			return;
		}
		MV_INFO("rpc", "vm set-ha name=%s ha=%d", j->vm.name, j->req->vm_set_ha->ha);
		rpc_vmjob_ok(j, j->req->vm_set_ha->ha ? "HA on" : "HA off");
		return;
	}
}

static bool rpc_op_status(struct rpc_call *c, struct rpc_reply *r)
{
	rpc_status(c->a, c->client, r);
	return true;
}

static bool rpc_op_members(struct rpc_call *c, struct rpc_reply *r)
{
	rpc_members(c->a, r);
	return true;
}

static bool rpc_op_nodes(struct rpc_call *c, struct rpc_reply *r)
{
	rpc_nodes(c->a, r, c->req->op_case == MV__RPC_REQUEST__OP_NODE ? c->req->node->name : NULL);
	return true;
}

static bool rpc_op_vms(struct rpc_call *c, struct rpc_reply *r)
{
	if (c->req->op_case == MV__RPC_REQUEST__OP_VM)
		rpc_vms(c->a, r, NULL, c->req->vm->vm);
	else
		rpc_vms(c->a, r, c->req->vms->node, NULL);
	return true;
}

static bool rpc_op_join(struct rpc_call *c, struct rpc_reply *r)
{
	const Mv__JoinRequest *j = c->req->join;
	if (j->n_seeds == 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID, "join needs at least one seed address");
		return true;
	}
	if (j->n_seeds > AGENT_MAX_SEEDS) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID, "join takes at most %d seed addresses",
		         AGENT_MAX_SEEDS);
		return true;
	}
	for (size_t i = 0; i < j->n_seeds; i++) {
		char host[256];
		unsigned port;
		if (strlen(j->seeds[i]) >= SWIM_ADDR_MAX ||
		    !seed_parse(j->seeds[i], host, sizeof(host), &port)) {
			rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID,
			         "invalid seed address '%.64s': expected IP:PORT, [IPv6]:PORT or "
			         "HOSTNAME:PORT",
			         j->seeds[i]);
			return true;
		}
	}
	MV_INFO("rpc", "join requested client=%s seeds=%zu", c->caller, j->n_seeds);
	int rc = seeds_join(c->a, (const char *const *)j->seeds, j->n_seeds);
	if (rc < 0)
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "cannot join: %s", strerror(-rc));
	return true;
}

static bool rpc_op_leave(struct rpc_call *c, struct rpc_reply *r)
{
	(void)r;
	MV_INFO("rpc", "leave requested client=%s", c->caller);
	membership_request_leave(c->a);
	return true;
}

/* The host a new VM goes to: q->node, or the placement's choice among the
 * live, healthy, non-draining hosts. NULL with r failed. */
static const char *rpc_create_target(struct agent *a, const Mv__VmCreateRequest *q,
                                     const struct domxml_info *di, struct rpc_reply *r)
{
	char err[512];
	if (q->node[0] != '\0') {
		bool known;
		Mv__MemberState ms = rpc_member_state(a, q->node, &known);
		if (!known) {
			rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND,
			         "no host named '%s' in the cluster", q->node);
			return NULL;
		}
		if (ms != MV__MEMBER_STATE__MEMBER_ALIVE) {
			rpc_fail(r, MV__RPC_CODE__RPC_ERR_UNAVAILABLE,
			         "host %s is not alive; nothing was created", q->node);
			return NULL;
		}
		return q->node;
	}
	struct placement_host *hs = rpc_alloc(r, r->n_states, sizeof(*hs));
	if (hs == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	size_t n = 0;
	for (size_t i = 0; i < r->n_states; i++) {
		Mv__NodeState *s = r->states[i];
		if (s == NULL)
			continue;
		hs[n] = state_codec_placement_host(s, rpc_member_state(a, s->name, NULL) ==
		                                          MV__MEMBER_STATE__MEMBER_ALIVE);
		hs[n].draining = s->draining || s->witness;
		n++;
	}
	struct placement_request pr = {.vcpus = di->vcpus, .memory_kib = di->memory_kib};
	int best = placement_choose(hs, n, &pr, err, sizeof(err));
	if (best < 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NO_ROOM, "%s", err);
		return NULL;
	}
	return hs[best].name;
}

static bool rpc_op_vm_create(struct rpc_call *c, struct rpc_reply *r)
{
	struct agent *a = c->a;
	Mv__VmCreateRequest *q = c->req->vm_create;
	struct domxml_info di;
	char err[512];
	if (domxml_parse(q->xml, strlen(q->xml), &di, err, sizeof(err)) < 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID, "%s", err);
		return true;
	}
	rpc_load_states(a, r);
	struct rpc_vm_match m[2];
	if (rpc_find_vm(r, di.name, m, 2) > 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_CONFLICT,
		         "a VM named '%s' already exists on %s; nothing was created", di.name,
		         m[0].host->name);
		return true;
	}
	if (di.uuid[0] != '\0' && rpc_find_vm(r, di.uuid, m, 2) > 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_CONFLICT,
		         "a VM with UUID %s already exists on %s (%s); nothing was created",
		         di.uuid, m[0].host->name, m[0].vm->name);
		return true;
	}
	const char *target = rpc_create_target(a, q, &di, r);
	if (target == NULL)
		return true;
	if (strcmp(target, a->opt.name) == 0) {
		/* define, record the desired state, start: on the worker */
		struct rpc_vmjob *j = rpc_vmjob_new(c);
		if (j == NULL) {
			rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
			return true;
		}
		struct virt_op_req d = {.kind = VIRT_OPK_DEFINE, .xml = j->req->vm_create->xml};
		rpc_vmjob_call(j, RPC_VM_CREATE_DEFINE, &d);
		return false;
	}
	if (!c->may_forward) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID,
		         "forwarded create was meant for %s, not for %s", target, a->opt.name);
		return true;
	}
	/* tell the owner it is the chosen host, so it does not place again */
	char *saved = q->node;
	q->node = (char *)target;
	bool done = rpc_forward(a, c->client, c->req, target, r) < 0;
	q->node = saved;
	return done;
}

static bool rpc_op_migrations(struct rpc_call *c, struct rpc_reply *r)
{
	/* every host gossips its own recent moves: list them all */
	rpc_load_states(c->a, r);
	size_t total = 0;
	for (size_t i = 0; i < r->n_states; i++)
		if (r->states[i] != NULL)
			total += r->states[i]->n_migrations;
	Mv__MigrationInfo **ptrs = rpc_alloc(r, total, sizeof(*ptrs));
	if (ptrs == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
		return true;
	}
	size_t n = 0;
	for (size_t i = 0; i < r->n_states; i++)
		for (size_t j = 0; r->states[i] != NULL && j < r->states[i]->n_migrations; j++)
			ptrs[n++] = r->states[i]->migrations[j];
	mv__migrations_reply__init(&r->migrations);
	r->migrations.n_migrations = n;
	r->migrations.migrations = ptrs;
	r->resp.result_case = MV__RPC_RESPONSE__RESULT_MIGRATIONS;
	r->resp.migrations = &r->migrations;
	return true;
}

static bool rpc_op_drain(struct rpc_call *c, struct rpc_reply *r)
{
	struct agent *a = c->a;
	const char *node = c->req->drain->node;
	if (strcmp(node, a->opt.name) == 0)
		return rpc_run_in_sink(a, c->client, c->peer, c->req, rpc_start_drain, r);
	bool known;
	rpc_member_state(a, node, &known);
	if (!known) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND, "no host named '%s' in the cluster",
		         node);
		return true;
	}
	if (!c->may_forward) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID, "drain of %s reached %s", node,
		         a->opt.name);
		return true;
	}
	return rpc_forward(a, c->client, c->req, node, r) < 0;
}

static int rpc_start_receive(struct agent *a, const Mv__RpcRequest *req, const char *peer,
                             uint64_t sink, char *err, size_t errlen)
{
	return migration_rpc_receive(a, req->vm_receive, peer, sink, err, errlen);
}

/* The last step of another host's offline move: answered through a sink
 * when the VM is defined and started here (on the hypervisor worker). */
static bool rpc_op_vm_receive(struct rpc_call *c, struct rpc_reply *r)
{
	return rpc_run_in_sink(c->a, c->client, c->peer, c->req, rpc_start_receive, r);
}

/* The VM an owned-VM request names. */
static const char *rpc_owned_key(const Mv__RpcRequest *req)
{
	return req->op_case == MV__RPC_REQUEST__OP_VM_ACTION   ? req->vm_action->vm
	       : req->op_case == MV__RPC_REQUEST__OP_VM_SET_HA ? req->vm_set_ha->vm
	                                                       : req->migrate->vm;
}

/* Where an owned-VM request goes once the lookup here said rc (err): a
 * migration of ours starts, a VM of another host's is forwarded there.
 * True when the answer is in r. */
static bool rpc_owned_route(struct rpc_call *c, struct rpc_reply *r, int rc, const char *err)
{
	struct agent *a = c->a;
	Mv__RpcRequest *req = c->req;
	const char *key = rpc_owned_key(req);
	char src[SWIM_NAME_MAX];
	if (rc == 0 && c->may_forward && migration_incoming_source(a, key, src, sizeof(src)))
		/* the copy here is an arriving migration: its source owns it */
		return rpc_forward(a, c->client, req, src, r) < 0;
	if (rc == 0) /* ours */
		return rpc_run_in_sink(a, c->client, c->peer, req, rpc_start_migrate, r);
	if (rc != -ENOENT) {
		rpc_fail(r, rpc_code_of_errno(rc), "%s", err);
		return true;
	}
	if (!c->may_forward) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND,
		         "no VM '%s' on %s any more (it may have moved); try again", key,
		         a->opt.name);
		return true;
	}
	rpc_load_states(a, r);
	struct rpc_vm_match m[2];
	size_t found = rpc_find_vm(r, key, m, 2);
	if (found == 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND, "no VM named '%s' in the cluster",
		         key);
		return true;
	}
	if (found > 1) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_CONFLICT,
		         "'%s' names more than one VM (on %s and %s); use its UUID", key,
		         m[0].host->name, m[1].host->name);
		return true;
	}
	if (strcmp(m[0].host->name, a->opt.name) == 0) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_NOT_FOUND,
		         "VM '%s' is no longer defined on this host", key);
		return true;
	}
	return rpc_forward(a, c->client, req, m[0].host->name, r) < 0;
}

/* The lookup is back: an action or set-ha of a VM of ours goes on on the
 * worker; anything else is routed (rpc_owned_route), unless the client
 * went away meanwhile (nobody to forward or migrate for: dropped). */
static void rpc_vmjob_found(struct rpc_vmjob *j, const struct virt_op_result *res)
{
	Mv__RpcRequest *req = j->req;
	if (res->rc == 0 && req->op_case != MV__RPC_REQUEST__OP_MIGRATE) {
		j->vm = res->vm;
		if (req->op_case == MV__RPC_REQUEST__OP_VM_ACTION)
			rpc_vmjob_action(j);
		else
			rpc_vmjob_ha(j);
		return;
	}
	struct rpc_reply r;
	rpc_reply_init(&r, 0);
	struct rpc_call c = {.a = j->a,
	                     .client = j->client,
	                     .peer = j->peer[0] != '\0' ? j->peer : NULL,
	                     .req = req,
	                     .caller = j->caller,
	                     .may_forward = j->may_forward};
	bool gone = j->client != NULL && !rpc_sink_alive(j->a, j->sink);
	if (!gone && rpc_owned_route(&c, &r, res->rc, res->err)) {
		rpc_vmjob_send(j, &r);
		return;
	}
	rpc_reply_free(&r); /* forwarded, or a migration answering through its own sink */
	rpc_sink_drop(j->a, j->sink);
	rpc_vmjob_free(j);
}

/* migrate, vm action, vm set-ha: carried out by the VM's host; any other
 * node forwards the request there (once). Whether the VM is ours is
 * asked of libvirt on the worker (rpc_vmjob_found goes on from there). */
static bool rpc_op_owned_vm(struct rpc_call *c, struct rpc_reply *r)
{
	struct rpc_vmjob *j = rpc_vmjob_new(c);
	if (j == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INTERNAL, "out of memory");
		return true;
	}
	struct virt_op_req q = {.kind = VIRT_OPK_FIND, .key = rpc_owned_key(j->req)};
	rpc_vmjob_call(j, RPC_VM_FIND, &q);
	return false;
}

/* Every operation, with who may ask for it and what answers it: a handler
 * here, or the long operation a service registered (rpc_register_op,
 * rpc_service.h). */
struct rpc_op {
	Mv__RpcRequest__OpCase op;
	const char *name;
	enum rpc_access access;
	rpc_handler_fn handler; /* built in */
	rpc_service_fn service; /* registered by a service */
};

static const struct rpc_op rpc_builtin_ops[] = {
    {MV__RPC_REQUEST__OP_STATUS, "status", RPC_READ, rpc_op_status, NULL},
    {MV__RPC_REQUEST__OP_MEMBERS, "members", RPC_READ, rpc_op_members, NULL},
    {MV__RPC_REQUEST__OP_JOIN, "join", RPC_WRITE, rpc_op_join, NULL},
    {MV__RPC_REQUEST__OP_LEAVE, "leave", RPC_WRITE, rpc_op_leave, NULL},
    {MV__RPC_REQUEST__OP_NODES, "nodes", RPC_READ, rpc_op_nodes, NULL},
    {MV__RPC_REQUEST__OP_NODE, "node", RPC_READ, rpc_op_nodes, NULL},
    {MV__RPC_REQUEST__OP_VMS, "vms", RPC_READ, rpc_op_vms, NULL},
    {MV__RPC_REQUEST__OP_VM, "vm", RPC_READ, rpc_op_vms, NULL},
    {MV__RPC_REQUEST__OP_VM_CREATE, "vm create", RPC_WRITE, rpc_op_vm_create, NULL},
    {MV__RPC_REQUEST__OP_VM_ACTION, "vm action", RPC_WRITE, rpc_op_owned_vm, NULL},
    {MV__RPC_REQUEST__OP_VM_SET_HA, "vm set-ha", RPC_WRITE, rpc_op_owned_vm, NULL},
    {MV__RPC_REQUEST__OP_MIGRATE, "migrate", RPC_WRITE, rpc_op_owned_vm, NULL},
    {MV__RPC_REQUEST__OP_MIGRATIONS, "migrations", RPC_READ, rpc_op_migrations, NULL},
    {MV__RPC_REQUEST__OP_DRAIN, "drain", RPC_WRITE, rpc_op_drain, NULL},
    {MV__RPC_REQUEST__OP_VM_RECEIVE, "vm receive", RPC_NODE_ONLY, rpc_op_vm_receive, NULL},
};

/* The operation's entry: the dispatcher's own, or a service's (copied
 * into *tmp). */
static const struct rpc_op *rpc_op_find(Mv__RpcRequest__OpCase op, struct rpc_op *tmp)
{
	for (size_t i = 0; i < sizeof(rpc_builtin_ops) / sizeof(rpc_builtin_ops[0]); i++)
		if (rpc_builtin_ops[i].op == op)
			return &rpc_builtin_ops[i];
	const struct rpc_service_op *so = rpc_service_find(op);
	if (so == NULL)
		return NULL;
	*tmp = (struct rpc_op){.op = op, .name = so->name, .access = so->access, .service = so->fn};
	return tmp;
}

/* Who asks: the certificate's role, and for a node, which port. */
enum rpc_caller {
	RPC_CALLER_NONE,     /* no known role */
	RPC_CALLER_VIEWER,   /* viewer (directly, or through a forwarding agent) */
	RPC_CALLER_OPERATOR, /* operator (directly, or through a forwarding agent) */
	RPC_CALLER_NODE_RPC, /* a node certificate on the RPC port */
	RPC_CALLER_AGENT,    /* an agent on the peer port, for itself */
	RPC_CALLER_COUNT
};

/* The whole policy: which callers may ask for an operation of each access. */
static const bool rpc_allowed[][RPC_CALLER_COUNT] = {
    /*                  none   viewer operator node@rpc agent */
    [RPC_READ] = {false, true, true, true, true},
    [RPC_WRITE] = {false, false, true, false, true},
    [RPC_NODE_ONLY] = {false, false, false, false, true},
};

static enum rpc_caller rpc_caller_of(enum tls_role role, bool from_peer)
{
	switch (role) {
	case TLS_ROLE_VIEWER:
		return RPC_CALLER_VIEWER;
	case TLS_ROLE_OPERATOR:
		return RPC_CALLER_OPERATOR;
	case TLS_ROLE_NODE:
		return from_peer ? RPC_CALLER_AGENT : RPC_CALLER_NODE_RPC;
	default:
		return RPC_CALLER_NONE;
	}
}

/* The check itself, on the operation's entry (NULL: unknown). */
static int rpc_authorize_op(const struct rpc_op *op, enum tls_role role, bool from_peer,
                            const char *caller, char *err, size_t errlen)
{
	if (op == NULL) {
		snprintf(err, errlen,
		         "unknown or missing operation (is the client newer than this agent?)");
		return MV__RPC_CODE__RPC_ERR_INVALID;
	}
	enum rpc_caller who = rpc_caller_of(role, from_peer);
	bool known = (size_t)op->access < sizeof(rpc_allowed) / sizeof(rpc_allowed[0]);
	if (known && rpc_allowed[op->access][who])
		return MV__RPC_CODE__RPC_OK;
	if (!known || op->access == RPC_NODE_ONLY) {
		/* a node certificate is not enough: only the peer port carries
		 * what agents say to each other (and names the agent) */
		snprintf(err, errlen, "%s is between agents only (on the peer port)", op->name);
		return MV__RPC_CODE__RPC_ERR_INVALID;
	}
	snprintf(err, errlen,
	         "permission denied: certificate '%s' has role %s%s, which may not %s (needs %s)",
	         caller, tls_role_name(role), who == RPC_CALLER_NODE_RPC ? " on the RPC port" : "",
	         op->name, op->access == RPC_READ ? "viewer or operator" : "operator");
	MV_WARN("rpc", "refused request op=\"%s\" client=%s role=%s%s reason=\"permission denied\"",
	        op->name, caller, tls_role_name(role), from_peer ? " via=peer" : "");
	return MV__RPC_CODE__RPC_ERR_PERMISSION;
}

int rpc_server_authorize(int op_case, enum tls_role role, bool from_peer, const char *caller,
                         char *err, size_t errlen)
{
	struct rpc_op tmp;
	return rpc_authorize_op(rpc_op_find((Mv__RpcRequest__OpCase)op_case, &tmp), role, from_peer,
	                        caller, err, errlen);
}

/* Returns true when the answer is in r; false when it was forwarded or
 * goes out through a sink. */
static bool rpc_execute(struct agent *a, struct net_conn *client, const char *peer,
                        Mv__RpcRequest *req, enum tls_role role, const char *caller,
                        struct rpc_reply *r)
{
	struct rpc_call c = {.a = a,
	                     .client = client,
	                     .peer = peer,
	                     .req = req,
	                     .caller = caller,
	                     .may_forward = !req->forwarded};
	char err[512];
	struct rpc_op tmp;
	const struct rpc_op *op = rpc_op_find(req->op_case, &tmp);
	int code = rpc_authorize_op(op, role, peer != NULL, caller, err, sizeof(err));
	if (code != MV__RPC_CODE__RPC_OK) {
		rpc_fail(r, (Mv__RpcCode)code, "%s", err);
		return true;
	}
	if (req->forwarded && peer == NULL) {
		rpc_fail(r, MV__RPC_CODE__RPC_ERR_INVALID,
		         "only agents may send forwarded requests, on the peer port");
		return true;
	}
	if (op->service != NULL)
		return rpc_run_in_sink(a, client, peer, req, op->service, r);
	return op->handler(&c, r);
}

/* ---- request size caps (issue 13) -------------------------------------------------------- */

/* Ops whose request carries a libvirt domain XML get the larger cap. */
static bool rpc_op_carries_xml(uint32_t op_field)
{
	return op_field == MV__RPC_REQUEST__OP_VM_CREATE ||
	       op_field == MV__RPC_REQUEST__OP_VM_RECEIVE ||
	       op_field == MV__RPC_REQUEST__OP_REPLICA_PUT;
}

uint32_t rpc_server_frame_cap(const uint8_t *prefix, size_t prefix_len, uint32_t len, void *ud)
{
	(void)len;
	const struct net_conn *c = ud;
	uint64_t id;
	uint32_t op;
	/* Only an operator certificate gets the large cap: a viewer's
	 * vm_create would be refused after decoding anyway, and 1 MiB frames
	 * from every viewer connection would fill the port's byte budget
	 * (every other client's next frame refused while they last). */
	if (c != NULL && net_conn_peer_role(c) == TLS_ROLE_OPERATOR &&
	    envelope_peek_op(prefix, prefix_len, &id, &op) == 0 && rpc_op_carries_xml(op))
		return RPC_XML_REQUEST_MAX;
	return RPC_REQUEST_MAX; /* any other op, or none found in the first bytes */
}

void rpc_server_frame_refused(struct agent *a, struct net_conn *c, const uint8_t *prefix,
                              size_t prefix_len, uint32_t len, uint32_t cap)
{
	static struct mv_ratelimit rl = {.interval_ms = 10000};
	uint64_t id = 0, held = 0;
	uint32_t op = 0;
	(void)envelope_peek_op(prefix, prefix_len, &id, &op);
	struct rpc_op tmp;
	const struct rpc_op *o = rpc_op_find((Mv__RpcRequest__OpCase)op, &tmp);
	const char *name = o != NULL ? o->name : "an unknown op";
	if (mv_ratelimit_allow(&rl, uv_now(a->loop), &held))
		MV_WARN(
		    "rpc",
		    "limit: request over its size cap remote=%s client=%s op=\"%s\" bytes=%" PRIu32
		    " cap=%" PRIu32 " suppressed=%" PRIu64,
		    net_conn_remote(c), net_conn_peer_name(c), name, len, cap, held);
	struct rpc_reply r;
	rpc_reply_init(&r, id);
	rpc_fail(&r, MV__RPC_CODE__RPC_ERR_INVALID,
	         "request of %" PRIu32 " bytes is over the %" PRIu32 " KiB cap for %s", len,
	         cap / 1024, name);
	rpc_send_response(a, c, NULL, &r.resp);
	rpc_reply_free(&r);
}

/* ---- request counts (metrics.c) ------------------------------------------------- */

/* Requests answered, by op (the oneof's field number) and code; a request
 * not answered at once (a long operation or events answering through a
 * stream, or a request forwarded to the agent that owns the VM) is counted
 * once, as RPC_COUNT_DEFERRED. Loop thread only; one table per process. */
#define RPC_COUNT_OPS 64
#define RPC_COUNT_CODES 9
#define RPC_COUNT_DEFERRED (RPC_COUNT_CODES - 1)
static uint64_t rpc_counts[RPC_COUNT_OPS][RPC_COUNT_CODES];

static void rpc_count(Mv__RpcRequest__OpCase op, bool answered, Mv__RpcCode code)
{
	unsigned o = (unsigned)op < RPC_COUNT_OPS ? (unsigned)op : 0;
	unsigned c = !answered                             ? RPC_COUNT_DEFERRED
	             : (unsigned)code < RPC_COUNT_DEFERRED ? (unsigned)code
	                                                   : MV__RPC_CODE__RPC_ERR_INTERNAL;
	rpc_counts[o][c]++;
}

static const char *rpc_code_label(unsigned c)
{
	static const char *const names[RPC_COUNT_CODES] = {"ok",        "invalid",     "permission",
	                                                   "not_found", "unavailable", "internal",
	                                                   "conflict",  "no_room",     "deferred"};
	return c < RPC_COUNT_CODES ? names[c] : "?";
}

size_t rpc_server_request_counts(struct rpc_request_count *out, size_t cap)
{
	size_t n = 0;
	for (unsigned o = 0; o < RPC_COUNT_OPS; o++)
		for (unsigned c = 0; c < RPC_COUNT_CODES; c++) {
			if (rpc_counts[o][c] == 0)
				continue;
			if (n < cap) {
				struct rpc_op tmp;
				const struct rpc_op *op =
				    rpc_op_find((Mv__RpcRequest__OpCase)o, &tmp);
				out[n] = (struct rpc_request_count){.op = op != NULL ? op->name
				                                                     : "unknown",
				                                    .code = rpc_code_label(c),
				                                    .count = rpc_counts[o][c]};
			}
			n++;
		}
	return n;
}

/* A client frame on the RPC port. */
void rpc_server_handle_frame(struct agent *a, struct net_conn *c, const uint8_t *payload,
                             size_t len)
{
	Mv__Envelope *env;
	const char *why;
	int rc = envelope_decode(payload, len, &env, &why);
	uint32_t version;
	uint64_t id;
	if (rc == -EPROTO && envelope_peek_request(payload, len, &version, &id) == 0) {
		/* a client of another protocol version: tell it, keep the
		 * connection (its next request may be one we speak) */
		MV_WARN("rpc",
		        "refused request remote=%s client=%s reason=\"unsupported wire version "
		        "%" PRIu32 "\"",
		        net_conn_remote(c), net_conn_peer_name(c), version);
		struct rpc_reply r;
		rpc_reply_init(&r, id);
		rpc_fail(&r, MV__RPC_CODE__RPC_ERR_INVALID,
		         "unsupported wire version %" PRIu32 ": this agent speaks version %d",
		         version, ENVELOPE_VERSION);
		rpc_send_response(a, c, NULL, &r.resp);
		rpc_reply_free(&r);
		return;
	}
	if (rc < 0) {
		MV_WARN("rpc", "rejected frame remote=%s client=%s reason=\"%s\"",
		        net_conn_remote(c), net_conn_peer_name(c), why);
		net_conn_close(c, why);
		return;
	}
	if (env->body_case != MV__ENVELOPE__BODY_REQUEST) {
		MV_WARN("rpc", "rejected frame remote=%s client=%s reason=\"not a request\"",
		        net_conn_remote(c), net_conn_peer_name(c));
		envelope_free(env);
		net_conn_close(c, "not a request");
		return;
	}
	struct rpc_reply r;
	rpc_reply_init(&r, env->request->id);
	/* The frame cap was chosen from the first op field in its first bytes;
	 * protobuf keeps the last one of a oneof, so a small vm_create field
	 * followed by another op got the XML cap for that op: check again. */
	if (len > RPC_REQUEST_MAX && !rpc_op_carries_xml((uint32_t)env->request->op_case)) {
		rpc_fail(&r, MV__RPC_CODE__RPC_ERR_INVALID,
		         "request of %zu bytes is over the %u KiB cap for its op", len,
		         RPC_REQUEST_MAX / 1024);
		rpc_send_response(a, c, NULL, &r.resp);
		rpc_count(env->request->op_case, true, r.resp.code);
	} else if (rpc_execute(a, c, NULL, env->request, net_conn_peer_role(c),
	                       net_conn_peer_name(c), &r)) {
		rpc_count(env->request->op_case, true, r.resp.code);
		rpc_send_response(a, c, NULL, &r.resp);
	} else {
		rpc_count(env->request->op_case, false, MV__RPC_CODE__RPC_OK);
	}
	rpc_reply_free(&r);
	envelope_free(env);
}

/* A forwarded request from another agent, on the peer port. */
void rpc_server_handle_peer_request(struct agent *a, const char *from, Mv__RpcRequest *req)
{
	struct rpc_reply r;
	rpc_reply_init(&r, req->id);
	bool answered = true;
	if (!req->forwarded) {
		rpc_fail(&r, MV__RPC_CODE__RPC_ERR_INVALID, "peer requests must be forwarded ones");
	} else {
		/* authorized as the caller the forwarding agent names (never above
		 * a node: an unknown role is refused, an absent one is the node's) */
		enum tls_role role = TLS_ROLE_NODE;
		const char *caller = from;
		if (req->caller_role != NULL && req->caller_role[0] != '\0') {
			role = tls_role_parse(req->caller_role);
			caller = req->caller_name != NULL && req->caller_name[0] != '\0'
			             ? req->caller_name
			             : "?";
		}
		struct rpc_op tmp;
		const struct rpc_op *op = rpc_op_find(req->op_case, &tmp);
		char q[160];
		mv_log(op != NULL && op->access == RPC_READ ? MV_LOG_DEBUG : MV_LOG_INFO, "rpc",
		       "forwarded request op=\"%s\" from=%s caller=%s role=%s",
		       op != NULL ? op->name : "unknown", from, mv_log_quote(q, sizeof(q), caller),
		       tls_role_name(role));
		answered = rpc_execute(a, NULL, from, req, role, caller, &r);
	}
	rpc_count(req->op_case, answered, r.resp.code);
	if (answered) /* else a long operation answers through its sink */
		rpc_send_response(a, NULL, from, &r.resp);
	rpc_reply_free(&r);
}
