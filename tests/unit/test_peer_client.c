/*
 * test_peer_client.c — the peer client (agent/daemon/peer_client.c)
 * through its interface, in process: an agent on libvirt's test driver,
 * no network (daemon_fixture.h; net_send_to is wrapped and keeps the
 * frames). What an internal request's callback can tell of its answer:
 *   - a member that dies before answering gets an answer made up for it,
 *     RPC_ERR_IN_DOUBT (it may have done it);
 *   - a real answer (even an error) comes through as it was given.
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

#include <cmocka.h>

#include "daemon_fixture.h"
#include "peer_client.h"

/* The frames the agent sends (there is no network here). */
static unsigned sent;
int __wrap_net_send_to(struct net *n, const char *addr, const char *expect_name,
                       const uint8_t *frame, size_t len);
int __wrap_net_send_to(struct net *n, const char *addr, const char *expect_name,
                       const uint8_t *frame, size_t len)
{
	(void)n, (void)addr, (void)expect_name, (void)frame, (void)len;
	sent++;
	return 0;
}

/* What the request's callback saw. */
static struct {
	unsigned calls;
	Mv__RpcCode code;
	char error[256];
} seen;

static void on_answer(struct agent *a, void *arg, Mv__RpcResponse *resp)
{
	(void)a, (void)arg;
	seen.calls++;
	seen.code = resp->code;
	snprintf(seen.error, sizeof(seen.error), "%s", resp->error != NULL ? resp->error : "");
}

static bool pred_answered(void *arg)
{
	(void)arg;
	return seen.calls > 0;
}

static int setup(void **state)
{
	memset(&seen, 0, sizeof(seen));
	sent = 0;
	return fixture_setup(state, "a", false, 0);
}

static void request_to_b(struct daemon_fixture *f)
{
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	Mv__VmReceiveRequest rq = MV__VM_RECEIVE_REQUEST__INIT;
	rq.xml = "<domain/>";
	rq.proposal_id = "a-1";
	req.op_case = MV__RPC_REQUEST__OP_VM_RECEIVE;
	req.vm_receive = &rq;
	assert_int_equal(
	    peer_client_request(&f->a, "b", &req, on_answer, NULL, f->err, sizeof(f->err)), 0);
	assert_int_equal(sent, 1);
	assert_int_equal(seen.calls, 0);
}

/* b dies before it answers: the callback gets an answer made up here, and
 * knows it (in doubt: b may have done it). */
static void test_member_dead_answer_in_doubt(void **state)
{
	struct daemon_fixture *f = *state;
	request_to_b(f);
	fixture_ping(f, "c", "b", SWIM_DEAD);
	assert_true(fixture_run_until(f, pred_answered, NULL, 20000)); // suspicion, then dead
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.code, MV__RPC_CODE__RPC_ERR_IN_DOUBT);
	assert_non_null(strstr(seen.error, "host b died before it answered"));
}

/* b answers (a refusal): a real answer comes through as given. */
static void test_real_answer_not_in_doubt(void **state)
{
	struct daemon_fixture *f = *state;
	request_to_b(f);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.id = 1; /* the first id this agent's peer client gave */
	resp.code = MV__RPC_CODE__RPC_ERR_UNAVAILABLE;
	resp.error = "the agent is stopping";
	peer_client_handle_response(&f->a, "b", &resp);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.code, MV__RPC_CODE__RPC_ERR_UNAVAILABLE);
	assert_string_equal(seen.error, "the agent is stopping");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_member_dead_answer_in_doubt, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_real_answer_not_in_doubt, setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
