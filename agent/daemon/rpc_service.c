/*
 * rpc_service.c — what a daemon service uses of the RPC layer (see
 * rpc_service.h): the table of operations services registered, the sinks
 * through which long operations answer, and sending a response to a client
 * or to the agent that forwarded the request. It calls no service but
 * membership (the address of an agent to answer): the other services and
 * the dispatcher (rpc_server.c) sit above it.
 *
 * Invariants: the sinks are the agent's (struct rpc_service, private to
 * this file); a sink's token is never 0 and never given twice (next_token
 * only grows); a sink is forgotten after its final frame or a drop, and
 * its token then names nothing.
 */
#include "rpc_service.h"
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "log.h"
#include "membership.h"
#include "utf8.h"

/* ---- operations services registered ---------------------------------------------------- */

#define RPC_SERVICE_OPS_MAX 16
static struct rpc_service_op rpc_service_ops[RPC_SERVICE_OPS_MAX];
static size_t rpc_n_service_ops;

const struct rpc_service_op *rpc_service_find(int op)
{
	for (size_t i = 0; i < rpc_n_service_ops; i++)
		if (rpc_service_ops[i].op == op)
			return &rpc_service_ops[i];
	return NULL;
}

int rpc_register_op(int op, const char *name, enum rpc_access access, rpc_service_fn fn)
{
	if (fn == NULL || name == NULL)
		return -EINVAL;
	const struct rpc_service_op *old = rpc_service_find(op);
	if (old != NULL)
		return old->fn == fn && old->access == access ? 0 : -EEXIST;
	if (rpc_n_service_ops == RPC_SERVICE_OPS_MAX)
		return -ENOSPC;
	rpc_service_ops[rpc_n_service_ops++] =
	    (struct rpc_service_op){.op = op, .name = name, .access = access, .fn = fn};
	return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

void rpc_send_response(struct agent *a, struct net_conn *c, const char *peer, Mv__RpcResponse *resp)
{
	if (c == NULL && a->net == NULL) {
		/* stopping: the network is closed (a long operation finishing
		 * while the agent waits for its worker threads) */
		MV_DEBUG("rpc", "answer dropped: the network is closed id=%" PRIu64 " to=%s",
		         resp->id, peer ? peer : "");
		return;
	}
	/* a protobuf string must be UTF-8 (clients in other languages refuse
	 * the whole reply otherwise); libvirt's and peers' words may not be */
	if (resp->error != NULL && !mv_utf8_valid(resp->error)) {
		MV_DEBUG("rpc", "error text was not UTF-8; invalid bytes replaced id=%" PRIu64,
		         resp->id);
		mv_utf8_sanitize(resp->error);
	}
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.body_case = MV__ENVELOPE__BODY_RESPONSE;
	env.response = resp;
	if (peer != NULL)
		env.from = a->opt.name;
	uint8_t *frame;
	size_t len;
	int rc = envelope_encode_frame(&env, &frame, &len);
	if (rc < 0) {
		MV_ERROR("rpc", "cannot encode response id=%" PRIu64 " error=%s", resp->id,
		         strerror(-rc));
		if (c != NULL)
			net_conn_close(c, "cannot encode response");
		return;
	}
	if (c != NULL) {
		net_conn_send(c, frame, len);
	} else {
		struct swim_member_info mi;
		if (swim_member_find(membership_swim(a), peer, &mi))
			net_send_to(a->net, mi.addr, peer, frame, len);
		else
			MV_WARN("rpc", "cannot answer forwarded request: unknown node name=%s",
			        peer);
	}
	free(frame);
}

Mv__RpcCode rpc_code_of_errno(int rc)
{
	switch (rc) {
	case -ENOENT:
		return MV__RPC_CODE__RPC_ERR_NOT_FOUND;
	case -EEXIST:
	case -EBUSY:
		return MV__RPC_CODE__RPC_ERR_CONFLICT;
	case -EINVAL:
		return MV__RPC_CODE__RPC_ERR_INVALID;
	case -ENOTCONN:
	case -EHOSTUNREACH:
	case -EAGAIN: /* the hypervisor worker is busy: try again */
		return MV__RPC_CODE__RPC_ERR_UNAVAILABLE;
	default:
		return MV__RPC_CODE__RPC_ERR_INTERNAL;
	}
}

/* ---- sinks: where the frames of a long operation go ----------------------------------- */

struct rpc_sink {
	uint64_t token;
	struct net_conn *client;  /* a client on the RPC port, or */
	char peer[SWIM_NAME_MAX]; /* an agent that forwarded the request to us */
	uint64_t req_id;
	struct rpc_sink *next;
};

struct rpc_service {
	struct rpc_sink *sinks; /* open sinks, newest first */
	uint64_t next_token;    /* the last token given */
};

int rpc_service_start(struct agent *a)
{
	a->rpc_service = calloc(1, sizeof(*a->rpc_service));
	return a->rpc_service != NULL ? 0 : -ENOMEM;
}

uint64_t rpc_sink_open(struct agent *a, struct net_conn *client, const char *peer, uint64_t req_id)
{
	struct rpc_service *rs = a->rpc_service;
	struct rpc_sink *k = rs != NULL ? calloc(1, sizeof(*k)) : NULL;
	if (k == NULL)
		return 0;
	k->token = ++rs->next_token;
	k->client = client;
	snprintf(k->peer, sizeof(k->peer), "%s", peer ? peer : "");
	k->req_id = req_id;
	k->next = rs->sinks;
	rs->sinks = k;
	return k->token;
}

/* The link that points at the sink `token`, or NULL when none is open. */
static struct rpc_sink **rpc_sink_link(const struct agent *a, uint64_t token)
{
	if (a->rpc_service == NULL)
		return NULL;
	struct rpc_sink **kk = &a->rpc_service->sinks;
	while (*kk != NULL && (*kk)->token != token)
		kk = &(*kk)->next;
	return *kk != NULL ? kk : NULL;
}

void rpc_sink_send(struct agent *a, uint64_t token, Mv__RpcResponse *resp, bool final)
{
	struct rpc_sink **kk = rpc_sink_link(a, token);
	if (kk == NULL)
		return;
	struct rpc_sink *k = *kk;
	resp->id = k->req_id;
	resp->more = !final;
	if (k->client != NULL)
		rpc_send_response(a, k->client, NULL, resp);
	else if (k->peer[0] != '\0')
		rpc_send_response(a, NULL, k->peer, resp);
	if (final) {
		*kk = k->next;
		free(k);
	}
}

int rpc_sink_keepalive(struct agent *a, uint64_t token, size_t *unacked)
{
	struct rpc_sink **kk = rpc_sink_link(a, token);
	if (kk == NULL || ((*kk)->client == NULL && (*kk)->peer[0] == '\0'))
		return -ENOTCONN;
	struct net_conn *c = (*kk)->client;
	if (c == NULL)
		return 0; /* an agent's: over pooled peer connections, nothing to keep */
	size_t before = net_conn_unacked(c);
	if (before > 0 && before >= *unacked) {
		/* nothing acknowledged since the last one: the peer is gone or
		 * stopped reading; its idle clock runs on */
		*unacked = before;
		return 0;
	}
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.code = MV__RPC_CODE__RPC_OK;
	resp.keepalive = true;
	rpc_sink_send(a, token, &resp, false);
	*unacked = net_conn_unacked(c);
	return 1;
}

void rpc_sink_drop(struct agent *a, uint64_t token)
{
	struct rpc_sink **kk = rpc_sink_link(a, token);
	if (kk != NULL) {
		struct rpc_sink *k = *kk;
		*kk = k->next;
		free(k);
	}
}

bool rpc_sink_alive(struct agent *a, uint64_t token)
{
	struct rpc_sink **kk = rpc_sink_link(a, token);
	return kk != NULL && ((*kk)->client != NULL || (*kk)->peer[0] != '\0');
}

const char *rpc_sink_caller(struct agent *a, uint64_t token)
{
	struct rpc_sink **kk = rpc_sink_link(a, token);
	if (kk == NULL)
		return "";
	if ((*kk)->client != NULL)
		return net_conn_peer_name((*kk)->client);
	return (*kk)->peer;
}

size_t rpc_sink_count(const struct agent *a)
{
	size_t n = 0;
	if (a->rpc_service != NULL)
		for (const struct rpc_sink *k = a->rpc_service->sinks; k != NULL; k = k->next)
			n++;
	return n;
}

void rpc_sinks_on_conn_closed(struct agent *a, struct net_conn *c)
{
	if (a->rpc_service == NULL)
		return;
	for (struct rpc_sink *k = a->rpc_service->sinks; k != NULL; k = k->next)
		if (k->client == c)
			k->client = NULL; /* the operation goes on; nobody hears of it */
}

void rpc_service_free(struct agent *a)
{
	struct rpc_service *rs = a->rpc_service;
	if (rs == NULL)
		return;
	while (rs->sinks != NULL) {
		struct rpc_sink *k = rs->sinks;
		rs->sinks = k->next;
		free(k);
	}
	free(rs);
	a->rpc_service = NULL;
}
