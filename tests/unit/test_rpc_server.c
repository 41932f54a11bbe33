/*
 * test_rpc_server.c — the daemon's service seams, in process:
 *   - the RPC dispatcher's one authorization check (rpc_server_authorize)
 *     over every operation it answers itself and over operations a service
 *     registered: reads for every role that may read, writes for operator
 *     and node only, node-only operations from the peer port only, unknown
 *     operations refused;
 *   - the registries services meet through: RPC operations
 *     (rpc_register_op), membership listeners, node-state contributors —
 *     the same registration twice is one, a conflicting one is refused, a
 *     full table says so.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"
#include "membership.h"
#include "nodestate.h"
#include "rpc_server.h"
#include "rpc_service.h"

static const enum tls_role roles[] = {TLS_ROLE_NONE, TLS_ROLE_NODE, TLS_ROLE_OPERATOR,
                                      TLS_ROLE_VIEWER};

static int authorize(int op, enum tls_role role, bool from_peer, char *err, size_t len)
{
	err[0] = '\0';
	return rpc_server_authorize(op, role, from_peer, "test-client", err, len);
}

/* Reads: every role that may read; writes: operator and node. */
static void test_reads_and_writes(void **state)
{
	(void)state;
	static const int reads[] = {MV__RPC_REQUEST__OP_STATUS,    MV__RPC_REQUEST__OP_MEMBERS,
	                            MV__RPC_REQUEST__OP_NODES,     MV__RPC_REQUEST__OP_NODE,
	                            MV__RPC_REQUEST__OP_VMS,       MV__RPC_REQUEST__OP_VM,
	                            MV__RPC_REQUEST__OP_MIGRATIONS};
	static const int writes[] = {MV__RPC_REQUEST__OP_JOIN,      MV__RPC_REQUEST__OP_LEAVE,
	                             MV__RPC_REQUEST__OP_VM_CREATE, MV__RPC_REQUEST__OP_VM_ACTION,
	                             MV__RPC_REQUEST__OP_VM_SET_HA, MV__RPC_REQUEST__OP_MIGRATE,
	                             MV__RPC_REQUEST__OP_DRAIN};
	char err[512];
	for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
		for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
			int want = tls_role_may_read(roles[r]) ? MV__RPC_CODE__RPC_OK
			                                       : MV__RPC_CODE__RPC_ERR_PERMISSION;
			assert_int_equal(authorize(reads[i], roles[r], false, err, sizeof(err)),
			                 want);
		}
		for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
			bool may = roles[r] == TLS_ROLE_OPERATOR || roles[r] == TLS_ROLE_NODE;
			int got = authorize(writes[i], roles[r], false, err, sizeof(err));
			assert_int_equal(got, may ? MV__RPC_CODE__RPC_OK
			                          : MV__RPC_CODE__RPC_ERR_PERMISSION);
			if (!may) {
				assert_non_null(strstr(err, "permission denied"));
				assert_non_null(strstr(err, "test-client"));
				assert_non_null(strstr(err, tls_role_name(roles[r])));
			}
		}
	}
	/* a viewer reads */
	assert_true(tls_role_may_read(TLS_ROLE_VIEWER));
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_VMS, TLS_ROLE_VIEWER, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_OK);
	/* and may not create a VM */
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_VM_CREATE, TLS_ROLE_VIEWER, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_ERR_PERMISSION);
	assert_non_null(strstr(err, "vm create"));
}

/* The last step of a move is between agents only: no certificate makes it
 * acceptable on the RPC port, and another agent may send it. */
static void test_node_only(void **state)
{
	(void)state;
	char err[512];
	for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
		assert_int_equal(
		    authorize(MV__RPC_REQUEST__OP_VM_RECEIVE, roles[r], false, err, sizeof(err)),
		    MV__RPC_CODE__RPC_ERR_INVALID);
		assert_non_null(strstr(err, "between agents only"));
	}
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_VM_RECEIVE, TLS_ROLE_NODE, true, err, sizeof(err)),
	    MV__RPC_CODE__RPC_OK);
}

static void test_unknown_op(void **state)
{
	(void)state;
	char err[512];
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP__NOT_SET, TLS_ROLE_OPERATOR, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_ERR_INVALID);
	assert_non_null(strstr(err, "unknown or missing operation"));
	assert_int_equal(authorize(4242, TLS_ROLE_NODE, true, err, sizeof(err)),
	                 MV__RPC_CODE__RPC_ERR_INVALID);
}

static int service_a(struct agent *a, const Mv__RpcRequest *req, const char *peer, uint64_t sink,
                     char *err, size_t errlen)
{
	(void)a, (void)req, (void)peer, (void)sink, (void)err, (void)errlen;
	return 0;
}

static int service_b(struct agent *a, const Mv__RpcRequest *req, const char *peer, uint64_t sink,
                     char *err, size_t errlen)
{
	(void)a, (void)req, (void)peer, (void)sink, (void)err, (void)errlen;
	return -ENOTSUP;
}

/* Operations a service registers are checked like the dispatcher's own. */
static void test_registered_ops(void **state)
{
	(void)state;
	char err[512];
	/* not registered yet: unknown */
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_HA, TLS_ROLE_VIEWER, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_ERR_INVALID);
	assert_int_equal(rpc_register_op(MV__RPC_REQUEST__OP_HA, "ha", RPC_READ, service_a), 0);
	assert_int_equal(rpc_register_op(MV__RPC_REQUEST__OP_HA, "ha", RPC_READ, service_a), 0);
	assert_int_equal(rpc_register_op(MV__RPC_REQUEST__OP_HA, "ha", RPC_READ, service_b),
	                 -EEXIST);
	assert_int_equal(rpc_register_op(MV__RPC_REQUEST__OP_HA, "ha", RPC_WRITE, service_a),
	                 -EEXIST);
	assert_int_equal(rpc_register_op(MV__RPC_REQUEST__OP_FAILOVERS, NULL, RPC_READ, service_a),
	                 -EINVAL);
	assert_int_equal(
	    rpc_register_op(MV__RPC_REQUEST__OP_FAILOVERS, "failovers", RPC_READ, NULL), -EINVAL);
	const struct rpc_service_op *so = rpc_service_find(MV__RPC_REQUEST__OP_HA);
	assert_non_null(so);
	assert_ptr_equal(so->fn, service_a);
	assert_string_equal(so->name, "ha");
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_HA, TLS_ROLE_VIEWER, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_OK);

	assert_int_equal(
	    rpc_register_op(MV__RPC_REQUEST__OP_FORCE_LEAVE, "force-leave", RPC_WRITE, service_a),
	    0);
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_FORCE_LEAVE, TLS_ROLE_VIEWER, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_ERR_PERMISSION);
	assert_non_null(strstr(err, "force-leave"));
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_FORCE_LEAVE, TLS_ROLE_OPERATOR, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_OK);

	assert_int_equal(rpc_register_op(MV__RPC_REQUEST__OP_REPLICA_PUT, "replica put",
	                                 RPC_NODE_ONLY, service_a),
	                 0);
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_REPLICA_PUT, TLS_ROLE_NODE, false, err, sizeof(err)),
	    MV__RPC_CODE__RPC_ERR_INVALID);
	assert_non_null(strstr(err, "replica put is between agents only"));
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_REPLICA_PUT, TLS_ROLE_NODE, true, err, sizeof(err)),
	    MV__RPC_CODE__RPC_OK);

	/* the table is bounded: 3 used, 13 more fit */
	int added = 0, rc = 0;
	for (int op = 5000; op < 5100 && rc == 0; op++) {
		rc = rpc_register_op(op, "filler", RPC_READ, service_b);
		added += rc == 0;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(added, 13);
}

#define LISTENER(n)                                                           \
	static void listener_##n(struct agent *a, const struct swim_event *e) \
	{                                                                     \
		(void)a, (void)e;                                             \
	}
LISTENER(0)
LISTENER(1)
LISTENER(2)
LISTENER(3)
LISTENER(4)
LISTENER(5)
LISTENER(6)
LISTENER(7)
LISTENER(8)

static void test_membership_listeners(void **state)
{
	(void)state;
	membership_listener_fn fns[] = {listener_0, listener_1, listener_2, listener_3, listener_4,
	                                listener_5, listener_6, listener_7, listener_8};
	assert_int_equal(membership_add_listener(fns[0]), 0);
	assert_int_equal(membership_add_listener(fns[0]), 0); /* once */
	for (int i = 1; i < 8; i++)
		assert_int_equal(membership_add_listener(fns[i]), 0);
	assert_int_equal(membership_add_listener(fns[8]), -ENOSPC); /* 8 at most */
	assert_int_equal(membership_add_listener(fns[3]), 0);       /* already in */
}

static const struct nodestate_contributor contributors[6];

static void test_nodestate_contributors(void **state)
{
	(void)state;
	assert_int_equal(nodestate_add_contributor(&contributors[0]), 0);
	assert_int_equal(nodestate_add_contributor(&contributors[0]), 0); /* once */
	for (int i = 1; i < 4; i++)
		assert_int_equal(nodestate_add_contributor(&contributors[i]), 0);
	assert_int_equal(nodestate_add_contributor(&contributors[4]), -ENOSPC);
	assert_int_equal(nodestate_add_contributor(&contributors[1]), 0); /* already in */
}

/* A long operation that finishes while the agent stops (its network
 * already closed) answers into nothing: no crash, the sink is gone. */
static void test_sink_after_network_closed(void **state)
{
	(void)state;
	static struct agent a; /* zeroed: no network, no membership */
	a.opt.name = "n1";
	uint64_t k = rpc_sink_open(&a, NULL, "n2", 7);
	assert_true(k != 0);
	assert_true(rpc_sink_alive(&a, k));
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	rpc_sink_send(&a, k, &resp, false); /* progress */
	assert_true(rpc_sink_alive(&a, k));
	rpc_sink_send(&a, k, &resp, true); /* final: the sink is forgotten */
	assert_false(rpc_sink_alive(&a, k));
	assert_null(a.rpc_sinks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_and_writes),
	    cmocka_unit_test(test_node_only),
	    cmocka_unit_test(test_unknown_op),
	    cmocka_unit_test(test_registered_ops),
	    cmocka_unit_test(test_membership_listeners),
	    cmocka_unit_test(test_nodestate_contributors),
	    cmocka_unit_test(test_sink_after_network_closed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
