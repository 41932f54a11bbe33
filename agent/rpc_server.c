/*
 * rpc_server.c — the request/response service on the RPC port.
 *
 * Each frame on an RPC connection must be an Envelope carrying an
 * RpcRequest; the answer is an Envelope carrying an RpcResponse with the
 * same id, on the same connection, in request order. A frame that is not a
 * valid request closes that connection (logged with the reason); every
 * other client is unaffected.
 *
 * Authorization: the caller's role comes from its certificate (verified
 * against the cluster CA by the TLS layer). Reads (status, members) need a
 * role that may read; writes (join, leave) need one that may write:
 * operator or node. A refused request changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "envelope.h"
#include "meshvisor/log.h"

struct rpc_op {
	Mv__RpcRequest__OpCase op;
	const char *name;
	bool write;
};

static const struct rpc_op rpc_ops[] = {
	{MV__RPC_REQUEST__OP_STATUS, "status", false},
	{MV__RPC_REQUEST__OP_MEMBERS, "members", false},
	{MV__RPC_REQUEST__OP_JOIN, "join", true},
	{MV__RPC_REQUEST__OP_LEAVE, "leave", true},
};

static const struct rpc_op *rpc_op_find(Mv__RpcRequest__OpCase op)
{
	for (size_t i = 0; i < sizeof(rpc_ops) / sizeof(rpc_ops[0]); i++)
		if (rpc_ops[i].op == op)
			return &rpc_ops[i];
	return NULL;
}

static void rpc_send(struct net_conn *c, Mv__RpcResponse *resp)
{
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.body_case = MV__ENVELOPE__BODY_RESPONSE;
	env.response = resp;
	uint8_t *frame;
	size_t len;
	int rc = envelope_encode_frame(&env, &frame, &len);
	if (rc < 0) {
		MV_ERROR("rpc", "cannot encode response id=%llu error=%s",
		         (unsigned long long)resp->id, strerror(-rc));
		net_conn_close(c, "cannot encode response");
		return;
	}
	net_conn_send(c, frame, len);
	free(frame);
}

static void rpc_fill_status(struct agent *a, struct net_conn *c, Mv__StatusReply *st)
{
	const struct virt_health *vh = virt_health(a->virt);
	uint32_t counts[4];
	struct net_stats ns;
	swim_state_counts(a->swim, counts);
	net_get_stats(a->net, &ns);
	uint64_t now = uv_now(a->loop);
	st->name = a->opt.name;
	st->version = MV_VERSION;
	st->peer_addr = a->peer_addr;
	st->rpc_addr = a->rpc_addr;
	st->started_unix_ms = a->started_unix_ms;
	st->uptime_ms = now - a->started_mono_ms;
	st->incarnation = swim_incarnation(a->swim);
	st->local_health = swim_local_health(a->swim);
	st->members_alive = counts[SWIM_ALIVE];
	st->members_suspect = counts[SWIM_SUSPECT];
	st->members_dead = counts[SWIM_DEAD];
	st->members_left = counts[SWIM_LEFT];
	st->libvirt_uri = (char *)virt_uri(a->virt);
	st->libvirt_reachable = vh->reachable;
	st->libvirt_error = (char *)vh->error;
	st->peer_connections = ns.out_conns + ns.in_conns;
	st->role = (char *)tls_role_name(net_conn_peer_role(c));
}

void rpc_server_handle_frame(struct agent *a, struct net_conn *c, const uint8_t *payload,
                             size_t len)
{
	Mv__Envelope *env;
	const char *why;
	if (envelope_decode(payload, len, &env, &why) < 0) {
		MV_WARN("rpc", "rejected frame remote=%s client=%s reason=\"%s\"", net_conn_remote(c),
		        net_conn_peer_name(c), why);
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
	const Mv__RpcRequest *req = env->request;
	enum tls_role role = net_conn_peer_role(c);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.id = req->id;
	char errbuf[256];
	const struct rpc_op *op = rpc_op_find(req->op_case);

	Mv__StatusReply status = MV__STATUS_REPLY__INIT;
	Mv__MembersReply members = MV__MEMBERS_REPLY__INIT;
	Mv__Member *mbuf = NULL;
	Mv__Member **mptrs = NULL;
	bool leave_after = false;

	if (op == NULL) {
		resp.code = MV__RPC_CODE__RPC_ERR_INVALID;
		resp.error = "unknown or missing operation (is the client newer than this agent?)";
	} else if (op->write ? !tls_role_may_write(role) : !tls_role_may_read(role)) {
		resp.code = MV__RPC_CODE__RPC_ERR_PERMISSION;
		snprintf(errbuf, sizeof(errbuf),
		         "permission denied: certificate '%s' has role %s, which may not %s "
		         "(needs operator or node)",
		         net_conn_peer_name(c), tls_role_name(role), op->name);
		resp.error = errbuf;
		MV_WARN("rpc", "refused request op=%s client=%s role=%s reason=\"permission denied\"",
		        op->name, net_conn_peer_name(c), tls_role_name(role));
	} else {
		switch (req->op_case) {
		case MV__RPC_REQUEST__OP_STATUS:
			rpc_fill_status(a, c, &status);
			resp.result_case = MV__RPC_RESPONSE__RESULT_STATUS;
			resp.status = &status;
			break;
		case MV__RPC_REQUEST__OP_MEMBERS: {
			size_t n = swim_member_count(a->swim);
			mbuf = calloc(n ? n : 1, sizeof(*mbuf));
			mptrs = calloc(n ? n : 1, sizeof(*mptrs));
			if (mbuf == NULL || mptrs == NULL) {
				resp.code = MV__RPC_CODE__RPC_ERR_INTERNAL;
				resp.error = "out of memory";
				break;
			}
			for (size_t i = 0; i < n; i++) {
				struct swim_member_info mi;
				swim_member_at(a->swim, i, &mi);
				mv__member__init(&mbuf[i]);
				mbuf[i].name = (char *)mi.name;
				mbuf[i].addr = (char *)mi.addr;
				mbuf[i].state = (Mv__MemberState)mi.state;
				mbuf[i].incarnation = mi.incarnation;
				mbuf[i].since_unix_ms = agent_mono_to_unix_ms(a, mi.since_ms);
				mbuf[i].cause = (char *)(mi.cause && mi.cause[0] ? mi.cause
				                         : mi.is_self ? "this node" : "");
				mptrs[i] = &mbuf[i];
			}
			members.n_members = n;
			members.members = mptrs;
			resp.result_case = MV__RPC_RESPONSE__RESULT_MEMBERS;
			resp.members = &members;
			break;
		}
		case MV__RPC_REQUEST__OP_JOIN: {
			const Mv__JoinRequest *j = req->join;
			if (j->n_seeds == 0) {
				resp.code = MV__RPC_CODE__RPC_ERR_INVALID;
				resp.error = "join needs at least one seed address";
				break;
			}
			for (size_t i = 0; i < j->n_seeds; i++) {
				struct sockaddr_storage ss;
				if (strlen(j->seeds[i]) >= SWIM_ADDR_MAX ||
				    net_parse_addr(j->seeds[i], &ss) < 0) {
					resp.code = MV__RPC_CODE__RPC_ERR_INVALID;
					snprintf(errbuf, sizeof(errbuf),
					         "invalid seed address '%.64s': expected IP:PORT or "
					         "[IPv6]:PORT", j->seeds[i]);
					resp.error = errbuf;
					break;
				}
			}
			if (resp.code != MV__RPC_CODE__RPC_OK)
				break;
			MV_INFO("rpc", "join requested client=%s seeds=%zu", net_conn_peer_name(c),
			        j->n_seeds);
			swim_join(a->swim, (const char *const *)j->seeds, j->n_seeds, uv_now(a->loop));
			agent_swim_pump(a);
			break;
		}
		case MV__RPC_REQUEST__OP_LEAVE:
			MV_INFO("rpc", "leave requested client=%s", net_conn_peer_name(c));
			leave_after = true;
			break;
		default:
			break;
		}
	}
	rpc_send(c, &resp);
	free(mbuf);
	free(mptrs);
	envelope_free(env);
	if (leave_after)
		agent_begin_leave(a, "requested over RPC");
}
