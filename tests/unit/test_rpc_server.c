/*
 * test_rpc_server.c — the daemon's service seams, in process:
 *   - the RPC dispatcher's one authorization check (rpc_server_authorize)
 *     over every operation it answers itself, every role, both ports, and
 *     over operations a service registered: reads for every role that may
 *     read, writes for operators (directly or through an agent) and agents
 *     on the peer port, never a node certificate on the RPC port; node-only
 *     operations from the peer port only; unknown operations refused;
 *   - the registries services meet through: RPC operations
 *     (rpc_register_op), membership listeners, node-state contributors —
 *     the same registration twice is one, a conflicting one is refused, a
 *     full table says so;
 *   - the sinks long operations answer through (rpc_sink_*): tokens never
 *     0 and never given twice, a sink forgotten after its final frame or a
 *     drop, a closed client's sink alive no more, none before
 *     rpc_service_start or after rpc_service_free.
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

/* The whole policy, written out by hand (not computed from the agent's own
 * table): every operation the dispatcher answers itself, asked by every
 * role on the RPC port and through the peer port (an agent for itself, or
 * forwarding for the caller it names). A node certificate on the RPC port
 * only reads; writes need an operator, directly or through an agent. */
enum {
	OK = MV__RPC_CODE__RPC_OK,
	NO = MV__RPC_CODE__RPC_ERR_PERMISSION,
	BAD = MV__RPC_CODE__RPC_ERR_INVALID
};
static void test_policy_table(void **state)
{
	(void)state;
	/* columns: none, node, operator, viewer on the RPC port; then the same
	 * roles arriving from the peer port */
	static const int read_[8] = {NO, OK, OK, OK, NO, OK, OK, OK};
	static const int write_[8] = {NO, NO, OK, NO, NO, OK, OK, NO};
	static const int agents[8] = {BAD, BAD, BAD, BAD, BAD, OK, BAD, BAD};
	static const struct {
		int op;
		const char *name;
		const int *want;
	} ops[] = {
	    {MV__RPC_REQUEST__OP_STATUS, "status", read_},
	    {MV__RPC_REQUEST__OP_MEMBERS, "members", read_},
	    {MV__RPC_REQUEST__OP_NODES, "nodes", read_},
	    {MV__RPC_REQUEST__OP_NODE, "node", read_},
	    {MV__RPC_REQUEST__OP_VMS, "vms", read_},
	    {MV__RPC_REQUEST__OP_VM, "vm", read_},
	    {MV__RPC_REQUEST__OP_MIGRATIONS, "migrations", read_},
	    {MV__RPC_REQUEST__OP_JOIN, "join", write_},
	    {MV__RPC_REQUEST__OP_LEAVE, "leave", write_},
	    {MV__RPC_REQUEST__OP_VM_CREATE, "vm create", write_},
	    {MV__RPC_REQUEST__OP_VM_ACTION, "vm action", write_},
	    {MV__RPC_REQUEST__OP_VM_SET_HA, "vm set-ha", write_},
	    {MV__RPC_REQUEST__OP_MIGRATE, "migrate", write_},
	    {MV__RPC_REQUEST__OP_DRAIN, "drain", write_},
	    {MV__RPC_REQUEST__OP_VM_RECEIVE, "vm receive", agents},
	};
	char err[512];
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		for (int col = 0; col < 8; col++) {
			enum tls_role role = roles[col % 4];
			bool peer = col >= 4;
			int got = authorize(ops[i].op, role, peer, err, sizeof(err));
			if (got != ops[i].want[col])
				fail_msg("%s by %s%s: code %d, want %d (%s)", ops[i].name,
				         tls_role_name(role), peer ? " via the peer port" : "", got,
				         ops[i].want[col], err);
			if (got == NO) {
				assert_non_null(strstr(err, "permission denied"));
				assert_non_null(strstr(err, "test-client"));
				assert_non_null(strstr(err, ops[i].name));
				assert_non_null(strstr(err, tls_role_name(role)));
			}
			if (got == BAD)
				assert_non_null(strstr(err, "between agents only"));
		}
	}
	/* a node certificate on the RPC port is told why */
	assert_int_equal(
	    authorize(MV__RPC_REQUEST__OP_LEAVE, TLS_ROLE_NODE, false, err, sizeof(err)), NO);
	assert_string_equal(err,
	                    "permission denied: certificate 'test-client' has role node on the "
	                    "RPC port, which may not leave (needs operator)");
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
	assert_int_equal(rpc_service_start(&a), 0);
	uint64_t k = rpc_sink_open(&a, NULL, "n2", 7);
	assert_true(k != 0);
	assert_true(rpc_sink_alive(&a, k));
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	rpc_sink_send(&a, k, &resp, false); /* progress */
	assert_true(rpc_sink_alive(&a, k));
	rpc_sink_send(&a, k, &resp, true); /* final: the sink is forgotten */
	assert_false(rpc_sink_alive(&a, k));
	assert_int_equal(rpc_sink_count(&a), 0);
	rpc_service_free(&a);
}

/* Tokens, lifetimes and a client that goes away (no frame is sent: the
 * sinks below have no network to send on, or nobody left to hear). */
static void test_sink_registry(void **state)
{
	(void)state;
	static struct agent a; /* zeroed: no network, no membership */
	a.opt.name = "n1";
	assert_int_equal(rpc_sink_open(&a, NULL, "n2", 1), 0); /* no registry yet */
	assert_int_equal(rpc_sink_count(&a), 0);
	assert_int_equal(rpc_service_start(&a), 0);

	/* tokens: never 0, each new one above the last, so none is reused */
	enum { N = 5 };
	uint64_t k[N];
	for (int i = 0; i < N; i++) {
		k[i] = rpc_sink_open(&a, NULL, "n2", (uint64_t)(100 + i));
		assert_true(k[i] != 0);
		if (i > 0)
			assert_true(k[i] > k[i - 1]);
		assert_true(rpc_sink_alive(&a, k[i]));
	}
	assert_int_equal(rpc_sink_count(&a), N);

	/* a drop forgets that one sink only; its token then names nothing */
	rpc_sink_drop(&a, k[2]);
	assert_false(rpc_sink_alive(&a, k[2]));
	assert_int_equal(rpc_sink_count(&a), N - 1);
	rpc_sink_drop(&a, k[2]); /* again: nothing */
	rpc_sink_drop(&a, 0);
	assert_int_equal(rpc_sink_count(&a), N - 1);
	for (int i = 0; i < N; i++)
		assert_true(rpc_sink_alive(&a, k[i]) == (i != 2));

	/* a token of no open sink is ignored, even for a final frame */
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	rpc_sink_send(&a, k[N - 1] + 1, &resp, true);
	rpc_sink_send(&a, k[2], &resp, true);
	assert_int_equal(rpc_sink_count(&a), N - 1);
	/* a final frame forgets the sink it went to, and only it */
	rpc_sink_send(&a, k[0], &resp, true);
	assert_int_equal(resp.id, 100); /* the request's id, as asked */
	assert_false(resp.more);
	assert_false(rpc_sink_alive(&a, k[0]));
	assert_int_equal(rpc_sink_count(&a), N - 2);

	/* after a drop and a final frame, the next token is still a new one */
	uint64_t next = rpc_sink_open(&a, NULL, "n2", 200);
	for (int i = 0; i < N; i++)
		assert_true(next > k[i]);

	/* a client's sink: alive until that client's connection closes; the
	 * operation goes on (the sink stays open) with nobody to hear it */
	static char conn_1, conn_2; /* stand-ins: sinks only compare them */
	struct net_conn *c1 = (struct net_conn *)&conn_1, *c2 = (struct net_conn *)&conn_2;
	uint64_t kc1 = rpc_sink_open(&a, c1, NULL, 300);
	uint64_t kc2 = rpc_sink_open(&a, c2, NULL, 301);
	assert_true(rpc_sink_alive(&a, kc1) && rpc_sink_alive(&a, kc2));
	rpc_sinks_on_conn_closed(&a, c1);
	assert_false(rpc_sink_alive(&a, kc1));
	assert_true(rpc_sink_alive(&a, kc2));
	assert_true(rpc_sink_alive(&a, next)); /* an agent's sink: not a client's */
	size_t open = rpc_sink_count(&a);
	rpc_sink_send(&a, kc1, &resp, false); /* progress to nobody */
	assert_int_equal(rpc_sink_count(&a), open);
	rpc_sink_send(&a, kc1, &resp, true); /* final to nobody: forgotten */
	assert_int_equal(rpc_sink_count(&a), open - 1);
	rpc_sinks_on_conn_closed(&a, c2);

	/* free forgets them all; nothing is open without a registry */
	rpc_service_free(&a);
	assert_int_equal(rpc_sink_count(&a), 0);
	assert_false(rpc_sink_alive(&a, kc2));
	rpc_service_free(&a); /* twice: nothing */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_policy_table),
	    cmocka_unit_test(test_node_only),
	    cmocka_unit_test(test_unknown_op),
	    cmocka_unit_test(test_registered_ops),
	    cmocka_unit_test(test_membership_listeners),
	    cmocka_unit_test(test_nodestate_contributors),
	    cmocka_unit_test(test_sink_after_network_closed),
	    cmocka_unit_test(test_sink_registry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
