/*
 * test_migration.c — the migration service (agent/daemon/migration.c)
 * through its interface, in process: an agent on libvirt's test driver, no
 * network (daemon_fixture.h); peers' answers are migration messages fed
 * through the real codec. What it shows:
 *   - every refusal of a move request, with its error (unknown VM, itself
 *     as target, a target that is not a member or not alive, bad --same
 *     labels, a VM already moving, an abort of nothing or of a move that
 *     cannot be aborted now), and nothing started;
 *   - a move no host can take ends at once, reported in our record;
 *   - a proposal aborted by the operator; the failover service's hooks:
 *     an HA VM's move it refuses to announce, and one whose reservation is
 *     lost while it waits for the voters (end reports "not moved");
 *   - the target side: a reservation for an incoming move, its source, its
 *     release reported to the hooks, VmReceive only with a reservation;
 *   - drain bookkeeping: the draining flag in our record, one drain at a
 *     time, undrain refused while VMs are still being moved.
 *   - the move of a VM that crashed too often (migration_move_crashed,
 *     ha.c's): proposed to the host placement chose, announced once
 *     accepted, handed over under the reservation to be started there
 *     (the VmReceive captured: peer_client_request is wrapped), undefined
 *     here; and a target that cannot take it.
 * Not here: an operator's move that actually runs (offline: the last
 * step goes to the target over the network; live: needs two libvirt
 * hosts) — the integration tests (it_migrate) cover it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon_fixture.h"
#include "meshvisor/fo.h"
#include "ha.h"
#include "hvwork.h"
#include "membership.h"
#include "migration.h"
#include "nodestate.h"
#include "peer_client.h"
#include "rpc_service.h"

#define GAMMA_UUID "33333333-2222-3333-4444-555555555555"

static const char GAMMA_XML[] = "<domain type='test'><name>gamma</name><uuid>" GAMMA_UUID
				"</uuid><memory>262144</memory><vcpu>1</vcpu>"
				"<os><type>hvm</type></os></domain>";

/* ---- the failover service's hooks, as the tests steer them -------------------- */

static struct {
	bool refuse; /* begin says no */
	bool ready;  /* the voters acknowledged (ready says yes) */
	unsigned begun, ended, outcomes;
	bool ended_moved, outcome_landed;
	uint64_t epoch;
	char id[MIG_ID_MAX], target[MIG_NAME_MAX], source[MIG_NAME_MAX];
} hk;

static int hk_begin(struct agent *a, const char *id, const char *uuid, const char *target,
                    uint64_t epoch, char *err, size_t errlen)
{
	(void)a;
	hk.begun++;
	snprintf(hk.id, sizeof(hk.id), "%s", id);
	snprintf(hk.target, sizeof(hk.target), "%s", target);
	assert_string_equal(uuid, ALPHA_UUID);
	hk.epoch = epoch;
	if (hk.refuse) {
		snprintf(err, errlen, "this host is not quorate");
		return -EAGAIN;
	}
	return 0;
}

static bool hk_ready(struct agent *a, const char *id)
{
	(void)a, (void)id;
	return hk.ready; /* unless a test says so, the voters never acknowledge */
}

static void hk_end(struct agent *a, const char *id, bool moved)
{
	(void)a;
	assert_string_equal(id, hk.id);
	hk.ended++;
	hk.ended_moved = moved;
}

static void hk_outcome(struct agent *a, const char *id, const char *uuid, const char *source,
                       bool landed)
{
	(void)a, (void)id;
	assert_string_equal(uuid, GAMMA_UUID);
	snprintf(hk.source, sizeof(hk.source), "%s", source);
	hk.outcomes++;
	hk.outcome_landed = landed;
}

static const struct migration_move_hooks hooks = {
    .begin = hk_begin, .ready = hk_ready, .end = hk_end, .outcome = hk_outcome};

/* ---- helpers ------------------------------------------------------------------- */

/* Leases of 300 ms: the quiet time after a start (a lease) passes quickly. */
#define SHORT_LEASE_MS 300

static int setup_lease(void **state, uint32_t lease_ms)
{
	memset(&hk, 0, sizeof(hk));
	return fixture_setup(state, "a", true, lease_ms);
}

static int setup(void **state)
{
	return setup_lease(state, 0);
}

static int setup_short_lease(void **state)
{
	return setup_lease(state, SHORT_LEASE_MS);
}

/* An agent restarted on a data_dir it used before (incarnation 4 saved). */
static int setup_short_lease_restarted(void **state)
{
	fixture_prior_incarnation = 4;
	int rc = setup_lease(state, SHORT_LEASE_MS);
	fixture_prior_incarnation = 0;
	return rc;
}

/* Asks to move vm (to: NULL for the best host); returns the rc, err in f->err. */
static int migrate(struct daemon_fixture *f, const char *vm, const char *to, uint64_t sink)
{
	Mv__MigrateRequest q = MV__MIGRATE_REQUEST__INIT;
	q.vm = (char *)vm;
	q.to = (char *)(to ? to : "");
	f->err[0] = '\0';
	return migration_rpc_migrate(&f->a, &q, sink, f->err, sizeof(f->err));
}

static int abort_move(struct daemon_fixture *f, const char *vm, uint64_t sink)
{
	Mv__MigrateRequest q = MV__MIGRATE_REQUEST__INIT;
	q.vm = (char *)vm;
	q.to = "";
	q.abort = true;
	f->err[0] = '\0';
	return migration_rpc_migrate(&f->a, &q, sink, f->err, sizeof(f->err));
}

static int drain(struct daemon_fixture *f, bool undrain, uint32_t parallel, uint64_t sink)
{
	Mv__DrainRequest q = MV__DRAIN_REQUEST__INIT;
	q.node = "a";
	q.undrain = undrain;
	q.parallel = parallel;
	f->err[0] = '\0';
	return migration_rpc_drain(&f->a, &q, sink, f->err, sizeof(f->err));
}

/* A sink whose answers go nowhere (its agent is not a member) but that
 * exists until its final frame: alive = still waiting for an answer. */
static uint64_t sink(struct daemon_fixture *f)
{
	uint64_t k = rpc_sink_open(&f->a, NULL, "ghost", 1);
	assert_true(k != 0);
	return k;
}

struct sink_wait {
	struct daemon_fixture *f;
	uint64_t k;
};

/* The sink sent its final frame. */
static bool pred_sink_answered(void *arg)
{
	struct sink_wait *w = arg;
	return !rpc_sink_alive(&w->f->a, w->k);
}

/* Our record's entry for the move of vm (the newest), copied into out. */
struct move_view {
	bool found, done, ok;
	char id[MIG_ID_MAX], phase[16], target[MIG_NAME_MAX], message[768];
	size_t n;
};

static struct move_view move_of(struct daemon_fixture *f, const char *vm)
{
	struct move_view v;
	memset(&v, 0, sizeof(v));
	nodestate_refresh(&f->a);
	Mv__NodeState *ns = nodestate_unpack_name(&f->a, "a");
	assert_non_null(ns);
	v.n = ns->n_migrations;
	for (size_t i = 0; i < ns->n_migrations && !v.found; i++) {
		const Mv__MigrationInfo *m = ns->migrations[i];
		if (strcmp(m->vm, vm) != 0)
			continue;
		v.found = true;
		v.done = m->done;
		v.ok = m->ok;
		snprintf(v.id, sizeof(v.id), "%s", m->id);
		snprintf(v.phase, sizeof(v.phase), "%s", m->phase);
		snprintf(v.target, sizeof(v.target), "%s", m->target);
		snprintf(v.message, sizeof(v.message), "%s", m->message);
	}
	mv__node_state__free_unpacked(ns, NULL);
	return v;
}

static bool own_draining(struct daemon_fixture *f)
{
	Mv__NodeState *ns = nodestate_unpack_name(&f->a, "a");
	assert_non_null(ns);
	bool d = ns->draining;
	mv__node_state__free_unpacked(ns, NULL);
	return d;
}

/* Peer b: alive, and its record says it has room. */
static void peer_b_with_room(struct daemon_fixture *f)
{
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	Mv__NodeState ns = MV__NODE_STATE__INIT;
	ns.name = "b";
	ns.rpc_addr = "127.0.0.2:7947";
	ns.cpus = 8;
	ns.memory_kib = 16777216;
	ns.memory_free_kib = 16777216;
	ns.cpu_overcommit = 4;
	ns.memory_overcommit = 1;
	ns.libvirt_reachable = true;
	ns.cpu_model = "meshvisor-cpu";
	ns.incarnation = 1;
	ns.version = 1;
	size_t len = mv__node_state__get_packed_size(&ns);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	mv__node_state__pack(&ns, buf);
	fixture_push_state(f, "b", 1, 1, buf, len);
	free(buf);
	assert_int_equal(nodestate_count(&f->a), 2);
}

/* b sends a migration message about proposal id: as a target (ACCEPT, with
 * a lease of lease_ms) or as the source of gamma (PROPOSE, ABORT). */
static void b_sends(struct daemon_fixture *f, enum mig_msg_type type, const char *id,
                    uint32_t lease_ms)
{
	struct mig_msg m;
	memset(&m, 0, sizeof(m));
	m.type = type;
	snprintf(m.from, sizeof(m.from), "b");
	snprintf(m.to, sizeof(m.to), "a");
	snprintf(m.proposal_id, sizeof(m.proposal_id), "%s", id);
	snprintf(m.vm_name, sizeof(m.vm_name), "gamma");
	snprintf(m.vm_uuid, sizeof(m.vm_uuid), "%s", GAMMA_UUID);
	m.vcpus = 1;
	m.memory_kib = 262144;
	snprintf(m.cpu_model, sizeof(m.cpu_model), "meshvisor-cpu");
	m.lease_ms = lease_ms;
	uv_update_time(f->a.loop);
	m.stamp = uv_now(f->a.loop);
	fixture_send_mig(f, &m);
}

/* ---- refusals ------------------------------------------------------------------ */

static void test_refusals(void **state)
{
	struct daemon_fixture *f = *state;
	fixture_ping(f, "c", NULL, SWIM_ALIVE);
	fixture_ping(f, "b", "c", SWIM_SUSPECT); /* b alive, says c is suspect */
	uint64_t k = sink(f);

	assert_true(migrate(f, "nope", NULL, k) < 0);
	assert_non_null(strstr(f->err, "nope"));
	assert_int_equal(migrate(f, "beta", "a", k), -EINVAL);
	assert_non_null(strstr(f->err, "migration to itself"));
	assert_int_equal(migrate(f, "beta", "zz", k), -ENOENT);
	assert_string_equal(f->err, "no host named 'zz' in the cluster");
	assert_int_equal(migrate(f, "beta", "c", k), -EHOSTUNREACH);
	assert_string_equal(f->err, "host c is suspect");

	Mv__MigrateRequest q = MV__MIGRATE_REQUEST__INIT;
	char *same[5] = {"zone", "rack", "a", "b", "c"};
	q.vm = "beta";
	q.to = "";
	q.same = same;
	q.n_same = 5;
	assert_int_equal(migration_rpc_migrate(&f->a, &q, k, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "at most 4 --same labels"));
	char *empty[1] = {""};
	q.same = empty;
	q.n_same = 1;
	assert_int_equal(migration_rpc_migrate(&f->a, &q, k, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "--same needs a label key"));

	assert_int_equal(abort_move(f, "beta", k), -ENOENT);
	assert_string_equal(f->err, "no migration of 'beta' is running on a");

	Mv__VmReceiveRequest rq = MV__VM_RECEIVE_REQUEST__INIT;
	rq.xml = (char *)GAMMA_XML;
	rq.proposal_id = "p-unknown";
	assert_int_equal(migration_rpc_receive(&f->a, &rq, "b", k, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_string_equal(f->err, "a holds no reservation for proposal p-unknown from b");

	/* nothing started, nothing answered */
	assert_int_equal(move_of(f, "beta").n, 0);
	assert_true(rpc_sink_alive(&f->a, k));
	rpc_sink_drop(&f->a, k);
}

/* No other host: the move ends at once, and says why. */
static void test_no_host_can_take_it(void **state)
{
	struct daemon_fixture *f = *state;
	uint64_t k = sink(f);
	assert_int_equal(migrate(f, "beta", NULL, k), 0);
	struct move_view v = move_of(f, "beta");
	assert_true(v.found);
	assert_true(v.done);
	assert_false(v.ok);
	assert_non_null(strstr(v.message, "no host can take beta"));
	assert_non_null(strstr(v.message, "it stays on a"));
	assert_false(rpc_sink_alive(&f->a, k)); /* the final answer went out */
	/* a finished move does not block the next request */
	assert_int_equal(migrate(f, "beta", NULL, 0), 0);
}

static void test_duplicate_then_abort(void **state)
{
	struct daemon_fixture *f = *state;
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	uint64_t k = sink(f);
	assert_int_equal(migrate(f, "beta", "b", k), 0);
	struct move_view v = move_of(f, "beta");
	assert_true(v.found);
	assert_false(v.done);
	assert_string_equal(v.phase, "proposing");
	assert_string_equal(v.target, "b");
	assert_true(rpc_sink_alive(&f->a, k));

	/* by name or by UUID: the same VM */
	assert_int_equal(migrate(f, "beta", "b", 0), -EBUSY);
	assert_string_equal(f->err, "beta is already being moved");
	assert_int_equal(migrate(f, BETA_UUID, NULL, 0), -EBUSY);

	uint64_t k2 = sink(f);
	assert_int_equal(abort_move(f, "beta", k2), 0);
	assert_false(rpc_sink_alive(&f->a, k2)); /* the abort is answered */
	v = move_of(f, "beta");
	assert_true(v.done);
	assert_false(v.ok);
	assert_string_equal(v.message, "aborted by an operator before it started");
	assert_false(rpc_sink_alive(&f->a, k)); /* and so is the move */
}

/* ---- the failover service's hooks ---------------------------------------------- */

static bool hk_has_begun(void *arg)
{
	(void)arg;
	return hk.begun > 0;
}

static void test_ha_move_refused_by_voters(void **state)
{
	struct daemon_fixture *f = *state;
	migration_set_move_hooks(&f->a, &hooks);
	hk.refuse = true;
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	assert_int_equal(migrate(f, "alpha", "b", 0), 0);
	struct move_view v = move_of(f, "alpha");
	assert_string_equal(v.phase, "proposing");
	assert_int_equal(hk.begun, 0); /* nothing announced before the target accepts */
	b_sends(f, MIG_ACCEPT, v.id, 30000);
	assert_int_equal(hk.begun, 0); /* the VM is read on the hypervisor worker first */
	assert_string_equal(move_of(f, "alpha").phase, "starting");
	assert_true(fixture_run_until(f, hk_has_begun, NULL, 3000));
	assert_int_equal(hk.begun, 1);
	assert_string_equal(hk.id, v.id);
	assert_string_equal(hk.target, "b");
	assert_int_equal(hk.epoch, 5); /* the VM's epoch 4, plus one */
	v = move_of(f, "alpha");
	assert_true(v.done);
	assert_false(v.ok);
	assert_string_equal(v.message, "alpha stays on a: this host is not quorate");
	assert_int_equal(hk.ended, 0); /* never announced: nothing to end */
	/* not a running job, not proposing: nothing to abort */
	assert_int_equal(abort_move(f, "alpha", 0), -ENOENT);
}

static bool hk_has_ended(void *arg)
{
	(void)arg;
	return hk.ended > 0;
}

/* The HA move of alpha to b, accepted by b (a reservation of lease_ms)
 * and announced to the (hooked) voters: our record's entry for it. */
static struct move_view announce_alpha_to_b(struct daemon_fixture *f, uint32_t lease_ms)
{
	migration_set_move_hooks(&f->a, &hooks);
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	assert_int_equal(migrate(f, "alpha", "b", 0), 0);
	struct move_view v = move_of(f, "alpha");
	b_sends(f, MIG_ACCEPT, v.id, lease_ms);
	assert_true(fixture_run_until(f, hk_has_begun, NULL, 3000));
	assert_int_equal(hk.begun, 1);
	v = move_of(f, "alpha");
	assert_string_equal(v.phase, "announcing");
	return v;
}

static void test_ha_move_lease_lost_while_announcing(void **state)
{
	struct daemon_fixture *f = *state;
	/* a lease 100 ms longer than the guard (lease_ms / 10 of our 30 s) */
	struct move_view v = announce_alpha_to_b(f, 3100);
	assert_int_equal(abort_move(f, "alpha", 0), -EBUSY);
	assert_string_equal(f->err, "the move of alpha is announcing and cannot be aborted now");
	assert_true(fixture_run_until(f, hk_has_ended, NULL, 3000));
	assert_int_equal(hk.ended, 1);
	assert_false(hk.ended_moved);
	v = move_of(f, "alpha");
	assert_true(v.done);
	assert_false(v.ok);
	assert_non_null(strstr(v.message, "the reservation on b was lost before the move began"));
}

static bool pred_alpha_done(void *arg)
{
	return move_of(arg, "alpha").done;
}

/* The reservation is lost while the VM is read on the hypervisor worker
 * (the target forgot it: REFUSE "unknown" to a RENEW): the move gives up
 * before anything is stopped, and the VM runs on here. */
static void test_lease_lost_while_reading_the_vm(void **state)
{
	struct daemon_fixture *f = *state;
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	assert_int_equal(migrate(f, "alpha", "b", 0), 0);
	struct move_view v = move_of(f, "alpha");
	b_sends(f, MIG_ACCEPT, v.id, 30000);
	assert_string_equal(move_of(f, "alpha").phase, "starting");
	struct mig_msg m;
	memset(&m, 0, sizeof(m));
	m.type = MIG_REFUSE;
	m.reason = MIG_R_UNKNOWN;
	snprintf(m.reason_text, sizeof(m.reason_text), "no such reservation");
	snprintf(m.from, sizeof(m.from), "b");
	snprintf(m.to, sizeof(m.to), "a");
	snprintf(m.proposal_id, sizeof(m.proposal_id), "%s", v.id);
	uv_update_time(f->a.loop);
	m.stamp = uv_now(f->a.loop);
	fixture_send_mig(f, &m);
	assert_true(fixture_run_until(f, pred_alpha_done, f, 5000));
	v = move_of(f, "alpha");
	assert_false(v.ok);
	assert_non_null(strstr(v.message, "the reservation on b was lost before the move began"));
	struct virt_vm vm;
	char err[256];
	assert_int_equal(virt_vm_cached(f->a.virt, "alpha", &vm, err, sizeof(err)), 0);
	assert_int_equal(vm.state, VIRT_VM_RUNNING); /* never stopped */
}

/* ---- the move of a VM that crashed too often (ha.c) ------------------------------ */

/* The node-to-node requests the agent sends (peer_client_request,
 * wrapped: the fixture has no network): a VmReceive is kept for the test
 * to look at and answer; nothing else is sent here (migration.c sends
 * only VmReceive) and would be refused as unreachable. */
static struct {
	unsigned n;
	char proposal_id[MIG_ID_MAX], node[MIG_NAME_MAX];
	bool start, has_xml;
	peer_client_done_fn cb;
	void *arg;
} rcv;

int __wrap_peer_client_request(struct agent *a, const char *node, Mv__RpcRequest *req,
                               peer_client_done_fn cb, void *arg, char *err, size_t errlen);
int __wrap_peer_client_request(struct agent *a, const char *node, Mv__RpcRequest *req,
                               peer_client_done_fn cb, void *arg, char *err, size_t errlen)
{
	(void)a;
	if (req->op_case != MV__RPC_REQUEST__OP_VM_RECEIVE) {
		snprintf(err, errlen, "no network in this test");
		return -EHOSTUNREACH;
	}
	rcv.n++;
	snprintf(rcv.node, sizeof(rcv.node), "%s", node);
	snprintf(rcv.proposal_id, sizeof(rcv.proposal_id), "%s", req->vm_receive->proposal_id);
	rcv.start = req->vm_receive->start;
	rcv.has_xml =
	    req->vm_receive->xml != NULL && strstr(req->vm_receive->xml, ALPHA_UUID) != NULL;
	rcv.cb = cb;
	rcv.arg = arg;
	return 0;
}

/* A move's steps on the hypervisor worker (virt_vm_op_next, wrapped): a
 * START can be made to fail after it ran (libvirtd lost its reply: QEMU
 * runs all the same), a DESTROY to fail having done nothing. */
static struct {
	bool fail_start, fail_destroy;
	unsigned fail_finds;       /* the next FINDs queued behind another call fail */
	const char *hold_at_start; /* incoming moves held once a START is queued */
	struct agent *hold_a;
	struct hvwork *stop; /* stopped once a call of kind stop_at is queued */
	enum virt_op_kind stop_at;
	virt_op_result_fn done;
} opx;

/* The final answers given through sinks (rpc_sink_send, wrapped): the
 * last one's code and error. */
static struct {
	unsigned finals;
	Mv__RpcCode code;
	char error[512];
} sent;

void __real_rpc_sink_send(struct agent *a, uint64_t token, Mv__RpcResponse *resp, bool final);
void __wrap_rpc_sink_send(struct agent *a, uint64_t token, Mv__RpcResponse *resp, bool final);
void __wrap_rpc_sink_send(struct agent *a, uint64_t token, Mv__RpcResponse *resp, bool final)
{
	if (final) {
		sent.finals++;
		sent.code = resp->code;
		snprintf(sent.error, sizeof(sent.error), "%s", resp->error ? resp->error : "");
	}
	__real_rpc_sink_send(a, token, resp, final);
}

int __real_virt_vm_op_next(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done,
                           void *ud, char *err, size_t errlen);
static void opx_failed(struct virt *v, int status, const struct virt_op_result *res, void *ud)
{
	struct virt_op_result r = *res;
	if (status == 0) {
		r.rc = -EIO;
		snprintf(r.err, sizeof(r.err), "lost the connection to libvirtd");
	}
	opx.done(v, status, &r, ud);
}
int __wrap_virt_vm_op_next(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done,
                           void *ud, char *err, size_t errlen);
int __wrap_virt_vm_op_next(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done,
                           void *ud, char *err, size_t errlen)
{
	if (opx.stop != NULL && req->kind == opx.stop_at) {
		/* the agent stops with this call queued: it comes back cancelled */
		struct virt_op_req r = *req;
		if (opx.fail_destroy && r.kind == VIRT_OPK_DESTROY)
			r.kind = VIRT_OPK_FIND; /* (nothing destroyed) */
		int rc = __real_virt_vm_op_next(v, &r, done, ud, err, errlen);
		hvwork_stop(opx.stop);
		return rc;
	}
	if (opx.hold_at_start != NULL && req->kind == VIRT_OPK_START) {
		migration_hold_incoming(opx.hold_a, opx.hold_at_start);
		opx.hold_at_start = NULL;
	}
	bool fail_find = opx.fail_finds > 0 && req->kind == VIRT_OPK_FIND;
	if (fail_find)
		opx.fail_finds--;
	if (fail_find || (opx.fail_start && req->kind == VIRT_OPK_START) ||
	    (opx.fail_destroy && req->kind == VIRT_OPK_DESTROY)) {
		struct virt_op_req r = *req;
		if (r.kind == VIRT_OPK_DESTROY)
			r.kind = VIRT_OPK_FIND; /* nothing destroyed */
		opx.done = done;
		return __real_virt_vm_op_next(v, &r, opx_failed, ud, err, errlen);
	}
	return __real_virt_vm_op_next(v, req, done, ud, err, errlen);
}

static struct {
	unsigned n;
	bool ok;
	char target[MIG_NAME_MAX], message[768];
} crash_done;

static void on_crash_move_done(struct agent *a, const char *uuid, const char *vm, bool ok,
                               const char *target, const char *message)
{
	(void)a;
	assert_string_equal(uuid, ALPHA_UUID);
	assert_string_equal(vm, "alpha");
	crash_done.n++;
	crash_done.ok = ok;
	snprintf(crash_done.target, sizeof(crash_done.target), "%s", target);
	snprintf(crash_done.message, sizeof(crash_done.message), "%s", message);
}

static bool pred_vm_receive_sent(void *arg)
{
	(void)arg;
	return rcv.n > 0;
}

static bool pred_crash_move_done(void *arg)
{
	(void)arg;
	return crash_done.n > 0;
}

/* alpha (HA) crashed too often: shut off here, with the voters
 * acknowledging and b having room, ha.c moves it (check_running: first
 * see that a running alpha is not a crashed VM's move). The move is
 * proposed to the host placement chose, and announced to the voters only
 * once b accepted; this runs it until the VmReceive goes out, and returns
 * the move as our record shows it then. */
static struct move_view crash_move_to_handover(struct daemon_fixture *f, bool check_running)
{
	memset(&rcv, 0, sizeof(rcv));
	memset(&crash_done, 0, sizeof(crash_done));
	migration_set_move_hooks(&f->a, &hooks);
	hk.ready = true;
	peer_b_with_room(f);
	if (check_running)
		assert_int_equal(migration_move_crashed(&f->a, ALPHA_UUID, on_crash_move_done,
		                                        f->err, sizeof(f->err)),
		                 -EALREADY);
	assert_int_equal(virt_vm_destroy(f->a.virt, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(
	    migration_move_crashed(&f->a, ALPHA_UUID, on_crash_move_done, f->err, sizeof(f->err)),
	    0);
	struct move_view v = move_of(f, "alpha");
	assert_true(v.found);
	assert_string_equal(v.phase, "proposing");
	assert_string_equal(v.target, "b"); /* chosen by placement */
	assert_true(v.id[0] != '\0');
	assert_int_equal(hk.begun, 0);
	b_sends(f, MIG_ACCEPT, v.id, 30000);
	assert_true(fixture_run_until(f, pred_vm_receive_sent, NULL, 5000));
	assert_int_equal(crash_done.n, 0);
	return v;
}

/* The hand-over is announced (owner epoch 4 + 1), the VmReceive goes
 * under that proposal's reservation asking the target to START it, and
 * alpha is undefined here once the target has it; the failover service
 * hears the move ended with the VM moved. */
static void test_crash_move_negotiates(void **state)
{
	struct daemon_fixture *f = *state;
	struct move_view v = crash_move_to_handover(f, true);
	assert_int_equal(hk.begun, 1); /* announced before the hand-over */
	assert_string_equal(hk.id, v.id);
	assert_string_equal(hk.target, "b");
	assert_int_equal(hk.epoch, 5);
	assert_int_equal(rcv.n, 1);
	assert_string_equal(rcv.node, "b");
	assert_string_equal(rcv.proposal_id, v.id); /* under b's reservation */
	assert_true(rcv.start);                     /* started there, though stopped here */
	assert_true(rcv.has_xml);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	rcv.cb(&f->a, rcv.arg, &resp); /* b: received */
	assert_true(fixture_run_until(f, pred_crash_move_done, NULL, 5000));
	assert_int_equal(crash_done.n, 1);
	assert_true(crash_done.ok);
	assert_string_equal(crash_done.target, "b");
	assert_int_equal(hk.ended, 1);
	assert_true(hk.ended_moved);
	v = move_of(f, "alpha");
	assert_true(v.done);
	assert_true(v.ok);
	assert_non_null(strstr(v.message, "defined and started there"));
	struct virt_vm vm;
	assert_true(virt_vm_cached(f->a.virt, "alpha", &vm, f->err, sizeof(f->err)) < 0);
}

/* The target could not take it: the move ends, and the failover service
 * hears it stays here (not moved), still defined and stopped. */
static void test_crash_move_target_fails(void **state)
{
	struct daemon_fixture *f = *state;
	crash_move_to_handover(f, false);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.code = MV__RPC_CODE__RPC_ERR_INTERNAL;
	resp.error = "define failed";
	rcv.cb(&f->a, rcv.arg, &resp);
	assert_true(fixture_run_until(f, pred_crash_move_done, NULL, 5000));
	assert_false(crash_done.ok);
	assert_non_null(strstr(crash_done.message, "define failed"));
	assert_int_equal(hk.ended, 1);
	assert_false(hk.ended_moved);
	struct virt_vm vm;
	assert_int_equal(virt_vm_cached(f->a.virt, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_SHUTOFF);
}

/* Running again by the time the target accepted (an operator started
 * it): left alone, never announced, nothing stopped. */
static void test_crash_move_left_alone_when_running_again(void **state)
{
	struct daemon_fixture *f = *state;
	memset(&crash_done, 0, sizeof(crash_done));
	migration_set_move_hooks(&f->a, &hooks);
	hk.ready = true;
	peer_b_with_room(f);
	assert_int_equal(virt_vm_destroy(f->a.virt, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(
	    migration_move_crashed(&f->a, ALPHA_UUID, on_crash_move_done, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(virt_vm_start(f->a.virt, "alpha", f->err, sizeof(f->err)), 0);
	b_sends(f, MIG_ACCEPT, move_of(f, "alpha").id, 30000);
	assert_true(fixture_run_until(f, pred_crash_move_done, NULL, 5000));
	assert_false(crash_done.ok);
	assert_string_equal(crash_done.message, "alpha not moved: running again meanwhile");
	assert_int_equal(hk.begun, 0);
	struct virt_vm vm;
	assert_int_equal(virt_vm_cached(f->a.virt, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_RUNNING);
}

/* No other host: the caller hears at once (before the call returns). */
static void test_crash_move_nowhere(void **state)
{
	struct daemon_fixture *f = *state;
	memset(&crash_done, 0, sizeof(crash_done));
	assert_int_equal(virt_vm_destroy(f->a.virt, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(
	    migration_move_crashed(&f->a, ALPHA_UUID, on_crash_move_done, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(crash_done.n, 1);
	assert_false(crash_done.ok);
	assert_non_null(strstr(crash_done.message, "no host can take alpha"));
	assert_int_equal(
	    migration_move_crashed(&f->a, "nope", on_crash_move_done, f->err, sizeof(f->err)),
	    -ENOENT);
	assert_int_equal(crash_done.n, 1);
}

/* Review: a step of a move that was on the worker when the agent began
 * to stop comes back with status 0: nothing follows it (here the read
 * before an HA move: the failover service is not asked to announce it). */
static bool pred_no_op_queued(void *arg)
{
	struct daemon_fixture *f = arg;
	return virt_vm_op_queued(f->a.virt) == 0;
}

static void test_step_back_while_stopping(void **state)
{
	struct daemon_fixture *f = *state;
	migration_set_move_hooks(&f->a, &hooks);
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	assert_int_equal(migrate(f, "alpha", "b", 0), 0);
	struct move_view v = move_of(f, "alpha");
	b_sends(f, MIG_ACCEPT, v.id, 30000);
	assert_string_equal(move_of(f, "alpha").phase, "starting");
	assert_true(virt_vm_op_queued(f->a.virt) > 0); /* the read, on the worker */
	f->a.stopping = true;
	assert_true(fixture_run_until(f, pred_no_op_queued, f, 3000));
	assert_int_equal(hk.begun, 0);
}

static void op_ignored(struct virt *v, int status, const struct virt_op_result *res, void *ud)
{
	(void)v, (void)status, (void)res, (void)ud;
}

/* Fills the operators' queue (VIRT_OPQ_MAX waiting behind the one in
 * flight), without running the loop: until it runs, the next operator
 * command is refused "busy". */
static void fill_op_queue(struct daemon_fixture *f)
{
	char err[256];
	struct virt_op_req find = {.kind = VIRT_OPK_FIND, .key = BETA_UUID};
	unsigned n = 0;
	while (n <= VIRT_OPQ_MAX &&
	       virt_vm_op_async(f->a.virt, &find, op_ignored, NULL, err, sizeof(err)) == 0)
		n++;
	assert_true(n >= VIRT_OPQ_MAX);
	assert_int_equal(virt_vm_op_async(f->a.virt, &find, op_ignored, NULL, err, sizeof(err)),
	                 -EAGAIN);
}

static bool pred_alpha_at_epoch_5(void *arg)
{
	struct daemon_fixture *f = arg;
	struct virt_vm vm;
	char err[256];
	return virt_vm_cached(f->a.virt, "alpha", &vm, err, sizeof(err)) == 0 && vm.epoch == 5;
}

/* Review: once the voters acknowledged an HA move, its owner-epoch write
 * is not refused for a full operators' queue (it goes in front of it):
 * the VM moves at the epoch the voters were told. */
static void test_ha_move_epoch_written_while_queue_full(void **state)
{
	struct daemon_fixture *f = *state;
	announce_alpha_to_b(f, 30000);
	fill_op_queue(f);
	hk.ready = true;
	/* the ready poll (50 ms) is due when the loop runs next: it runs
	 * before the worker's answers drain the queue */
	usleep(60 * 1000);
	assert_true(fixture_run_until(f, pred_alpha_at_epoch_5, f, 3000));
}

/* Review: an HA move whose owner-epoch write fails ends there (the voters
 * hear "not moved"): it never moves at the old epoch. */
static void test_ha_move_fails_when_epoch_write_fails(void **state)
{
	struct daemon_fixture *f = *state;
	struct move_view v = announce_alpha_to_b(f, 30000);
	/* the VM goes away meanwhile: its epoch cannot be written */
	char err[256];
	assert_int_equal(virt_vm_destroy(f->a.virt, "alpha", err, sizeof(err)), 0);
	assert_int_equal(virt_vm_undefine(f->a.virt, ALPHA_UUID, err, sizeof(err)), 0);
	hk.ready = true;
	assert_true(fixture_run_until(f, hk_has_ended, NULL, 3000));
	assert_false(hk.ended_moved);
	v = move_of(f, "alpha");
	assert_true(v.done);
	assert_false(v.ok);
	assert_non_null(strstr(v.message, "cannot write alpha's owner epoch 5 before the move"));
}

static bool pred_alpha_running(void *arg)
{
	struct daemon_fixture *f = arg;
	struct virt_vm vm;
	return virt_vm_cached(f->a.virt, "alpha", &vm, f->err, sizeof(f->err)) == 0 &&
	       vm.state == VIRT_VM_RUNNING;
}

/* Moves alpha offline to b, and answers its VmReceive with code and
 * error; then checks that alpha was not started here again and the move
 * was left for b to settle. */
static void check_in_doubt_not_restarted(struct daemon_fixture *f, Mv__RpcCode code,
                                         const char *error)
{
	memset(&rcv, 0, sizeof(rcv));
	announce_alpha_to_b(f, 30000);
	hk.ready = true;
	assert_true(fixture_run_until(f, pred_vm_receive_sent, NULL, 5000));
	assert_true(rcv.start);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.code = code;
	resp.error = (char *)error;
	rcv.cb(&f->a, rcv.arg, &resp);
	assert_true(fixture_run_until(f, pred_alpha_done, f, 3000));
	/* the voters are not told it stayed (that would make this stopped
	 * copy owed while b may run it): the move stays unsettled, b settles
	 * it from what it runs */
	assert_int_equal(hk.ended, 0);
	struct move_view v = move_of(f, "alpha");
	assert_true(v.done);
	assert_false(v.ok);
	assert_non_null(strstr(v.message, "it may run there; not started again here"));
	/* a restart, had one been queued, has run by then */
	assert_true(fixture_run_till(f, uv_now(f->a.loop) + 300));
	struct virt_vm vm;
	assert_int_equal(virt_vm_cached(f->a.virt, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_SHUTOFF);
}

/* An offline move of a running VM whose VmReceive got no answer (the
 * target did not answer in time, died or left: peer_client made the
 * answer up, RPC_ERR_IN_DOUBT: test_peer_client): the target may have
 * started it, so it is not started here again — it stays stopped and
 * defined, and the move fails saying so. */
static void test_offline_move_in_doubt_not_restarted(void **state)
{
	check_in_doubt_not_restarted(*state, MV__RPC_CODE__RPC_ERR_IN_DOUBT,
	                             "host b did not answer within 30 s; the operation may or may "
	                             "not have happened there");
}

/* The target answered that its start failed and it could not remove its
 * copy (RPC_ERR_IN_DOUBT): as with no answer. */
static void test_offline_move_target_in_doubt(void **state)
{
	check_in_doubt_not_restarted(
	    *state, MV__RPC_CODE__RPC_ERR_IN_DOUBT,
	    "b could not start alpha (lost the connection to libvirtd) nor remove it");
}

/* The same move refused by the target (its own answer): it runs here
 * again. */
static void test_offline_move_refused_restarted(void **state)
{
	struct daemon_fixture *f = *state;
	memset(&rcv, 0, sizeof(rcv));
	announce_alpha_to_b(f, 30000);
	hk.ready = true;
	assert_true(fixture_run_until(f, pred_vm_receive_sent, NULL, 5000));
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.code = MV__RPC_CODE__RPC_ERR_INTERNAL;
	resp.error = "define failed";
	rcv.cb(&f->a, rcv.arg, &resp);
	assert_true(fixture_run_until(f, hk_has_ended, NULL, 3000));
	assert_true(fixture_run_until(f, pred_alpha_running, f, 3000));
	assert_non_null(strstr(move_of(f, "alpha").message, "b could not take alpha"));
}

/* ---- the target side ------------------------------------------------------------- */

/* A brand-new agent (incarnation 1: no previous life on this data_dir)
 * promised nothing before: it takes a reservation at once. */
static void test_fresh_agent_takes_at_once(void **state)
{
	struct daemon_fixture *f = *state;
	assert_int_equal(swim_incarnation(membership_swim(&f->a)), 1);
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	b_sends(f, MIG_PROPOSE, "b-0", 0);
	assert_true(migration_has_incoming(&f->a, "b-0"));
}

static void test_incoming_reservation(void **state)
{
	struct daemon_fixture *f = *state;
	migration_set_move_hooks(&f->a, &hooks);
	assert_int_equal(swim_incarnation(membership_swim(&f->a)), 5);
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	char src[64] = "";
	/* a restarted agent takes no reservation during its first lease */
	b_sends(f, MIG_PROPOSE, "b-0", 0);
	assert_false(migration_has_incoming(&f->a, "b-0"));
	assert_true(fixture_run_till(f, uv_now(f->a.loop) + SHORT_LEASE_MS));
	assert_false(migration_has_incoming(&f->a, "b-1"));
	assert_false(migration_incoming_source(&f->a, "gamma", src, sizeof(src)));

	b_sends(f, MIG_PROPOSE, "b-1", 0);
	assert_true(migration_has_incoming(&f->a, "b-1"));
	assert_false(migration_has_incoming(&f->a, "b-2"));
	assert_true(migration_incoming_source(&f->a, "gamma", src, sizeof(src)));
	assert_string_equal(src, "b");
	assert_true(migration_incoming_source(&f->a, GAMMA_UUID, src, sizeof(src)));

	/* the last step of an offline move: only from the source that holds it */
	Mv__VmReceiveRequest rq = MV__VM_RECEIVE_REQUEST__INIT;
	rq.xml = (char *)GAMMA_XML;
	rq.proposal_id = "b-1";
	uint64_t k = sink(f);
	assert_int_equal(migration_rpc_receive(&f->a, &rq, "c", k, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_string_equal(f->err, "a holds no reservation for proposal b-1 from c");

	/* the source gives up: the reservation ends, the hooks hear it did not land */
	b_sends(f, MIG_ABORT, "b-1", 0);
	assert_false(migration_has_incoming(&f->a, "b-1"));
	assert_int_equal(hk.outcomes, 1);
	assert_false(hk.outcome_landed);
	assert_string_equal(hk.source, "b");

	/* a second proposal, and this time the VM arrives */
	b_sends(f, MIG_PROPOSE, "b-2", 0);
	assert_true(migration_has_incoming(&f->a, "b-2"));
	assert_int_equal(migration_rpc_receive(&f->a, &rq, "b", k, f->err, sizeof(f->err)),
	                 -EINVAL); /* rq still names b-1 */
	rq.proposal_id = "b-2";
	rq.start = true;
	/* defined and started on the worker; answered through the sink */
	assert_int_equal(migration_rpc_receive(&f->a, &rq, "b", k, f->err, sizeof(f->err)), 0);
	assert_true(migration_has_incoming(&f->a, "b-2")); /* not before libvirt is done */
	struct sink_wait sw = {f, k};
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	assert_false(migration_has_incoming(&f->a, "b-2"));
	assert_int_equal(hk.outcomes, 2); /* the hooks hear it landed */
	assert_true(hk.outcome_landed);
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(f->a.virt, "gamma", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_RUNNING);
}

/* b's VmReceive of xml under proposal b-1 (to be started) comes in;
 * returns the sink its answer goes to. */
static uint64_t receive_from_b(struct daemon_fixture *f, const char *xml)
{
	Mv__VmReceiveRequest rq = MV__VM_RECEIVE_REQUEST__INIT;
	rq.xml = (char *)xml;
	rq.proposal_id = "b-1";
	rq.start = true;
	uint64_t k = sink(f);
	assert_int_equal(migration_rpc_receive(&f->a, &rq, "b", k, f->err, sizeof(f->err)), 0);
	return k;
}

/* b's proposal b-1 is reserved here and its VmReceive of xml comes in
 * (receive_from_b). */
static uint64_t reserve_receive_from_b(struct daemon_fixture *f, const char *xml)
{
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	assert_true(fixture_run_till(f, uv_now(f->a.loop) + SHORT_LEASE_MS));
	b_sends(f, MIG_PROPOSE, "b-1", 0);
	assert_true(migration_has_incoming(&f->a, "b-1"));
	return receive_from_b(f, xml);
}

static uint64_t receive_gamma_from_b(struct daemon_fixture *f)
{
	return reserve_receive_from_b(f, GAMMA_XML);
}

/* The source gives up (ABORT) while its VmReceive is still queued here
 * (a slow libvirt): the VM is defined, but not started, and its
 * definition removed; the VmReceive is refused, and the hooks hear how
 * the move ended only once that is done (read before, libvirt would show
 * a VM about to start here as one that never landed). */
static void test_receive_after_the_source_gave_up(void **state)
{
	struct daemon_fixture *f = *state;
	migration_set_move_hooks(&f->a, &hooks);
	uint64_t k = receive_gamma_from_b(f);
	b_sends(f, MIG_ABORT, "b-1", 0); /* before the worker ran the DEFINE */
	assert_false(migration_has_incoming(&f->a, "b-1"));
	assert_int_equal(hk.outcomes, 0); /* not while the VmReceive runs */
	struct sink_wait sw = {f, k};
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	assert_int_equal(hk.outcomes, 1);
	assert_false(hk.outcome_landed);
	assert_string_equal(hk.source, "b");
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(f->a.virt, "gamma", &vm, f->err, sizeof(f->err)), -ENOENT);
}

/* gamma as an HA VM (the failover glue's metadata) */
static const char GAMMA_HA_XML[] =
    "<domain type='test'><name>gamma</name><uuid>" GAMMA_UUID
    "</uuid><memory>262144</memory><vcpu>1</vcpu><metadata><meshvisor:vm "
    "xmlns:meshvisor='https://meshvisor.dev/xmlns/vm/1' ha='yes' priority='1' epoch='2'/>"
    "</metadata><os><type>hvm</type></os></domain>";

/* The only VmReceive was refused with the test's hold reason, and no
 * gamma is left here. */
static void check_refused_held(struct daemon_fixture *f)
{
	assert_int_equal(sent.finals, 1);
	assert_int_equal(sent.code, rpc_code_of_errno(-EAGAIN));
	assert_string_equal(
	    sent.error, "a takes no HA VM now: a fence order for every HA VM here waits (test)");
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(f->a.virt, "gamma", &vm, f->err, sizeof(f->err)), -ENOENT);
}

/* Issue 13: while incoming moves are held (ha.c sets the hold while a
 * fence order for every HA VM waits for libvirt: its retry destroys every
 * HA VM active then), an HA VM whose move was reserved before the hold,
 * and whose VmReceive came before it too, is not started here: it is
 * defined, undefined again, and the VmReceive refused with the hold's
 * reason (the source runs it again); a new proposal is refused. Once the
 * hold ends, the same VmReceive lands and starts. */
static void test_receive_held_ha_vm_not_started(void **state)
{
	struct daemon_fixture *f = *state;
	migration_set_move_hooks(&f->a, &hooks);
	memset(&sent, 0, sizeof(sent));
	uint64_t k = reserve_receive_from_b(f, GAMMA_HA_XML);
	/* the hold begins while the DEFINE is queued on the worker */
	migration_hold_incoming(&f->a, "a fence order for every HA VM here waits (test)");
	struct sink_wait sw = {f, k};
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	check_refused_held(f);
	struct virt_vm vm;
	b_sends(f, MIG_PROPOSE, "b-2", 0);
	assert_false(migration_has_incoming(&f->a, "b-2"));

	/* the hold ends: the move reserved before lands */
	migration_hold_incoming(&f->a, NULL);
	assert_true(migration_has_incoming(&f->a, "b-1"));
	sw.k = receive_from_b(f, GAMMA_HA_XML);
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	assert_int_equal(sent.finals, 2);
	assert_int_equal(sent.code, MV__RPC_CODE__RPC_OK);
	assert_int_equal(virt_vm_find(f->a.virt, "gamma", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_RUNNING);
	assert_true(vm.ha);
}

/* The same hold, begun while the START runs on the worker (after the
 * checks on the loop and on the worker before libvirt's start; here the
 * hold is set as the START is queued, the worker's block left unset, as
 * if it came after that check): the copy that started is destroyed, its
 * definition removed, and the VmReceive refused with the hold's reason
 * (before: answered OK, gamma running here). */
static void test_receive_held_while_starting(void **state)
{
	struct daemon_fixture *f = *state;
	migration_set_move_hooks(&f->a, &hooks);
	memset(&sent, 0, sizeof(sent));
	memset(&opx, 0, sizeof(opx));
	opx.hold_at_start = "a fence order for every HA VM here waits (test)";
	opx.hold_a = &f->a;
	uint64_t k = reserve_receive_from_b(f, GAMMA_HA_XML);
	struct sink_wait sw = {f, k};
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	assert_null(opx.hold_at_start); /* the START was queued */
	memset(&opx, 0, sizeof(opx));
	check_refused_held(f);
	migration_hold_incoming(&f->a, NULL);
}

/* A previous life's journal, written anew: the caller writes its entries
 * and closes it. */
static FILE *journal_open(struct daemon_fixture *f)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/failover-journal", f->dir);
	FILE *j = fopen(path, "w");
	assert_non_null(j);
	return j;
}

/* The journal of a previous life: b's move m-1 of alpha to us at epoch 4
 * (alpha runs here at epoch 4: it landed) is still MOVING. */
static void journal_m1(struct daemon_fixture *f)
{
	FILE *j = journal_open(f);
	fprintf(j, "move =m-1 =%s =b =a 4 %d 0\n", ALPHA_UUID, (int)FO_MOVE_MOVING);
	fclose(j);
}

/* A move of the failover service's record (pred_move_settled). */
struct move_wait {
	struct daemon_fixture *f;
	const char *id;
};

/* Move w->id is no longer MOVING here. */
static bool pred_move_settled(void *arg)
{
	const struct move_wait *w = arg;
	struct fo_move mv;
	return fo_move_find(ha_core(&w->f->a), w->id, &mv) && mv.state != FO_MOVE_MOVING;
}

/* Issue 13: a restarted agent settles the moves its previous life left
 * MOVING from reads on the worker, not on the loop. Here the journal
 * holds b's move m-1 of alpha to us at epoch 4 (alpha runs here at epoch
 * 4: it landed), and libvirt does not answer when the failover service
 * starts: nothing is decided then (before, the failed read counted as "no
 * copy here", and the move was settled as never landed while the VM ran
 * here); once libvirt answers again, a read on the worker settles it as
 * landed. */
static void test_start_settles_moves_on_worker(void **state)
{
	struct daemon_fixture *f = *state;
	struct move_wait m1 = {f, "m-1"};
	journal_m1(f);
	/* libvirt does not answer: a connection that cannot open (its host
	 * file is away) replaces the fixture's */
	char away[200];
	snprintf(away, sizeof(away), "%s.away", f->host_path);
	assert_int_equal(rename(f->host_path, away), 0);
	virt_free(f->a.virt);
	struct virt_options vo = {
	    .uri = f->a.opt.libvirt_uri, .loop = f->a.loop, .worker = f->a.hv};
	f->a.virt = virt_new_opts(&vo);
	assert_non_null(f->a.virt);
	assert_false(virt_check(f->a.virt));
	assert_int_equal(ha_start(&f->a, f->err, sizeof(f->err)), 0);
	struct fo_move mv;
	assert_true(fo_move_find(ha_core(&f->a), "m-1", &mv));
	assert_int_equal(mv.state, FO_MOVE_MOVING);
	assert_int_equal(rename(away, f->host_path), 0);
	assert_true(fixture_run_until(f, pred_move_settled, &m1, 8000));
	assert_true(fo_move_find(ha_core(&f->a), "m-1", &mv));
	assert_int_equal(mv.state, FO_MOVE_MOVED);
	assert_true(virt_health(f->a.virt)->reachable);
}

/* The same with libvirt answering: ha_start (before the loop serves)
 * only queues the read; the move is settled as landed once the loop has
 * run its completion (before, ha_start read libvirt on the loop). */
static void test_start_settle_read_queued(void **state)
{
	struct daemon_fixture *f = *state;
	struct move_wait m1 = {f, "m-1"};
	journal_m1(f);
	assert_int_equal(ha_start(&f->a, f->err, sizeof(f->err)), 0);
	struct fo_move mv;
	assert_true(fo_move_find(ha_core(&f->a), "m-1", &mv));
	assert_int_equal(mv.state, FO_MOVE_MOVING);
	assert_true(fixture_run_until(f, pred_move_settled, &m1, 5000));
	assert_true(fo_move_find(ha_core(&f->a), "m-1", &mv));
	assert_int_equal(mv.state, FO_MOVE_MOVED);
}

/* A previous life's moves keep the start's rule each until a settling
 * has read libvirt for it: the journal holds b's move m-3 of gamma to us
 * (no gamma here: it never landed) and our move m-2 of alpha to b (alpha
 * still runs here: it stayed). The start's chain reads m-3, and m-2's
 * FIND fails: m-3 is settled as never landed, nothing is decided for
 * m-2, and a later chain, libvirt answering, settles it as the source by
 * the start's rule (before: the failed chain ended the start's rule for
 * every move, and m-2 stayed MOVING for good, its target to settle it). */
static void test_start_rule_kept_after_failed_read(void **state)
{
	struct daemon_fixture *f = *state;
	struct move_wait m3 = {f, "m-3"}, m2 = {f, "m-2"};
	FILE *j = journal_open(f);
	fprintf(j, "move =m-3 =%s =b =a 4 %d 0\n", GAMMA_UUID, (int)FO_MOVE_MOVING);
	fprintf(j, "move =m-2 =%s =a =b 5 %d 0\n", ALPHA_UUID, (int)FO_MOVE_MOVING);
	fclose(j);
	memset(&opx, 0, sizeof(opx));
	opx.fail_finds = 1; /* the chain's second FIND: m-2's */
	assert_int_equal(ha_start(&f->a, f->err, sizeof(f->err)), 0);
	struct fo_move mv;
	assert_true(fixture_run_until(f, pred_move_settled, &m3, 5000));
	assert_int_equal(opx.fail_finds, 0);
	assert_true(fo_move_find(ha_core(&f->a), "m-2", &mv));
	assert_int_equal(mv.state, FO_MOVE_MOVING);
	assert_true(fixture_run_until(f, pred_move_settled, &m2, 5000));
	assert_true(fo_move_find(ha_core(&f->a), "m-2", &mv));
	assert_int_equal(mv.state, FO_MOVE_STAYED);
}

/* A call's answer from the worker (op_seen_record). */
struct op_seen {
	bool done;
	int rc;
};

static void op_seen_record(struct virt *v, int status, const struct virt_op_result *res, void *ud)
{
	struct op_seen *o = ud;
	(void)v;
	o->done = true;
	o->rc = status == 0 ? res->rc : status;
}

static bool pred_op_seen(void *arg)
{
	return ((const struct op_seen *)arg)->done;
}

/* An HA VM's start of alpha, run on the worker: its result. */
static int ha_vm_start_alpha(struct daemon_fixture *f)
{
	struct op_seen o = {0};
	struct virt_op_req req = {.kind = VIRT_OPK_START, .key = "alpha", .needs_quorum = true};
	assert_int_equal(
	    virt_vm_op_async(f->a.virt, &req, op_seen_record, &o, f->err, sizeof(f->err)), 0);
	assert_true(fixture_run_until(f, pred_op_seen, &o, 5000));
	return o.rc;
}

/* The worker's block of HA VM starts (process-wide) is lifted when the
 * failover service is freed: here it is stopped while the block it sets
 * (ha_block_starts: lost quorum, a fence order waiting) holds, and the
 * same start of alpha refused then runs once the service is freed
 * (before, the block outlived it, and a failover service started again
 * in the process began with HA starts refused). */
static void test_ha_free_lifts_start_block(void **state)
{
	struct daemon_fixture *f = *state;
	assert_int_equal(virt_vm_destroy(f->a.virt, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(ha_start(&f->a, f->err, sizeof(f->err)), 0);
	ha_stop(&f->a);
	virt_block_ha_starts("this host is not quorate (test)"); /* as ha_block_starts */
	assert_int_equal(ha_vm_start_alpha(f), -EAGAIN);
	ha_close(&f->a);
	for (int i = 0; i < 4; i++)
		uv_run(f->a.loop, UV_RUN_NOWAIT);
	ha_free(&f->a);
	assert_int_equal(ha_vm_start_alpha(f), 0);
}

/* The target's START fails after QEMU started (libvirtd lost the reply):
 * the copy is destroyed before its definition is removed, so that a
 * refusal (on which the source runs the VM again) leaves nothing running
 * here. */
static void test_receive_start_failed_destroyed(void **state)
{
	struct daemon_fixture *f = *state;
	memset(&opx, 0, sizeof(opx));
	opx.fail_start = true;
	uint64_t k = receive_gamma_from_b(f);
	struct sink_wait sw = {f, k};
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	memset(&opx, 0, sizeof(opx));
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(f->a.virt, "gamma", &vm, f->err, sizeof(f->err)), -ENOENT);
}

/* The same failed START, and the agent stops before an undo step ran (it
 * comes back cancelled): the DESTROY that would remove the copy, or the
 * UNDEFINE after a DESTROY that did nothing (its result is not read): a
 * copy may run here, so the answer is RPC_ERR_IN_DOUBT (the source keeps
 * the VM stopped), not the plain refusal on which the source runs it
 * again. */
static void check_stopped_during_undo(struct daemon_fixture *f, enum virt_op_kind at)
{
	memset(&opx, 0, sizeof(opx));
	memset(&sent, 0, sizeof(sent));
	opx.fail_start = true;
	opx.fail_destroy = at == VIRT_OPK_UNDEFINE;
	opx.stop = f->a.hv;
	opx.stop_at = at;
	uint64_t k = receive_gamma_from_b(f);
	struct sink_wait sw = {f, k};
	assert_true(fixture_run_until(f, pred_sink_answered, &sw, 5000));
	memset(&opx, 0, sizeof(opx));
	assert_int_equal(sent.finals, 1);
	assert_int_equal(sent.code, MV__RPC_CODE__RPC_ERR_IN_DOUBT);
	assert_non_null(strstr(sent.error, "nor remove it (the agent is stopping)"));
}

static void test_receive_start_failed_then_stopping(void **state)
{
	check_stopped_during_undo(*state, VIRT_OPK_DESTROY);
}

static void test_receive_destroy_failed_then_stopping(void **state)
{
	check_stopped_during_undo(*state, VIRT_OPK_UNDEFINE);
}

/* ---- drain ----------------------------------------------------------------------------- */

/* Nowhere to go: every VM stays, the drain ends at once, the host stays
 * draining until undrained. */
static void test_drain_nowhere_to_go(void **state)
{
	struct daemon_fixture *f = *state;
	assert_false(migration_draining(&f->a));
	assert_false(own_draining(f));
	uint64_t k = sink(f);
	assert_int_equal(drain(f, false, 0, k), 0);
	assert_false(rpc_sink_alive(&f->a, k)); /* finished */
	assert_true(migration_draining(&f->a));
	assert_true(own_draining(f));
	assert_false(move_of(f, "alpha").ok);
	assert_false(move_of(f, "beta").ok);

	uint64_t k2 = sink(f);
	assert_int_equal(drain(f, true, 0, k2), 0);
	assert_false(rpc_sink_alive(&f->a, k2));
	assert_false(migration_draining(&f->a));
	assert_false(own_draining(f));
}

/* One move at a time to b, which never answers: one drain at a time, and
 * no undrain while it runs; aborting the moves finishes it. */
static void test_drain_in_progress(void **state)
{
	struct daemon_fixture *f = *state;
	peer_b_with_room(f);
	uint64_t k = sink(f);
	assert_int_equal(drain(f, false, 1, k), 0);
	assert_true(rpc_sink_alive(&f->a, k));
	assert_true(own_draining(f));
	struct move_view va = move_of(f, "alpha"), vb = move_of(f, "beta");
	assert_int_equal(va.found + vb.found, 1); /* parallel 1 */
	const char *first = va.found ? "alpha" : "beta";
	const char *second = va.found ? "beta" : "alpha";
	assert_string_equal(move_of(f, first).phase, "proposing");
	assert_string_equal(move_of(f, first).target, "b");

	assert_int_equal(drain(f, false, 1, 0), -EBUSY);
	assert_string_equal(f->err, "a is already draining");
	assert_int_equal(drain(f, true, 0, 0), -EBUSY);
	assert_string_equal(f->err, "a is still draining (1 of 2 VMs started)");

	assert_int_equal(abort_move(f, first, 0), 0);
	assert_true(move_of(f, first).done);
	assert_string_equal(move_of(f, second).phase, "proposing");
	assert_true(rpc_sink_alive(&f->a, k));
	assert_int_equal(abort_move(f, second, 0), 0);
	assert_false(rpc_sink_alive(&f->a, k)); /* the drain's final answer */
	assert_true(migration_draining(&f->a));
	assert_int_equal(drain(f, true, 0, 0), 0);
	assert_false(migration_draining(&f->a));
}

/* Before the service starts (or after it is freed): nothing runs. */
static void test_no_service(void **state)
{
	(void)state;
	struct agent a;
	memset(&a, 0, sizeof(a));
	assert_int_equal(migration_work_running(&a), 0);
	assert_false(migration_draining(&a));
	assert_false(migration_has_incoming(&a, "x"));
	migration_set_move_hooks(&a, &hooks);
	migration_on_vm_event(&a, "x");
	migration_stop(&a);
	migration_close(&a);
	migration_free_all(&a);
	assert_null(a.migration);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_refusals, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_no_host_can_take_it, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_then_abort, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_ha_move_refused_by_voters, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_ha_move_lease_lost_while_announcing, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_lease_lost_while_reading_the_vm, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_crash_move_negotiates, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_crash_move_target_fails, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_crash_move_left_alone_when_running_again, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_crash_move_nowhere, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_step_back_while_stopping, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_ha_move_epoch_written_while_queue_full, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_ha_move_fails_when_epoch_write_fails, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_offline_move_in_doubt_not_restarted, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_offline_move_target_in_doubt, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_receive_start_failed_destroyed,
	                                    setup_short_lease_restarted, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_receive_start_failed_then_stopping,
	                                    setup_short_lease_restarted, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_receive_destroy_failed_then_stopping,
	                                    setup_short_lease_restarted, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_offline_move_refused_restarted, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_fresh_agent_takes_at_once, setup_short_lease,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_incoming_reservation, setup_short_lease_restarted,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_receive_after_the_source_gave_up,
	                                    setup_short_lease_restarted, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_receive_held_ha_vm_not_started,
	                                    setup_short_lease_restarted, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_start_settles_moves_on_worker, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_start_settle_read_queued, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_start_rule_kept_after_failed_read, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_ha_free_lifts_start_block, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_receive_held_while_starting,
	                                    setup_short_lease_restarted, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_drain_nowhere_to_go, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_drain_in_progress, setup, fixture_teardown),
	    cmocka_unit_test(test_no_service),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
