/*
 * peer_client.c — node-to-node requests over the peer port (see
 * peer_client.h): the agent's own requests to another agent, and clients'
 * requests forwarded once to the host that owns what they concern. Each
 * waits in a pending table until its answer comes back (progress frames
 * are relayed and extend the wait), its client goes away (the answer is
 * then dropped) or its deadline passes (then the asker gets "host X did
 * not answer").
 *
 * Invariants: the service's state (struct peer_client) is private to this
 * file; every request sent and not yet answered is in `pending`, under an
 * id no other request had (next_id only grows); the timer runs while
 * anything is pending (it stops once the table is empty).
 */
#include "peer_client.h"
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "log.h"
#include "membership.h"
#include "rpc_service.h"

#define PEER_FORWARD_TIMEOUT_MS 30000            /* libvirt define+start can take seconds */
#define PEER_LONG_OP_TIMEOUT_MS (30 * 60 * 1000) /* migrate, drain: silence this long = lost */

struct rpc_pending {
	uint64_t fwd_id;
	struct net_conn *client; /* NULL: gone, or an internal request (cb) */
	uint64_t client_id;
	uint64_t deadline;
	uint32_t timeout_ms;
	char node[SWIM_NAME_MAX];
	peer_client_done_fn cb; /* internal requests: called with the answer, or NULL */
	void *cb_arg;
	const char *gone; /* the node died or left: answered at the next timer */
	struct rpc_pending *next;
};

struct peer_client {
	struct rpc_pending *pending; /* newest first */
	uint64_t next_id;            /* the last id given to a request */
	uv_timer_t timer;            /* deadlines of what is pending, every second */
	bool timer_on;               /* initialized, not yet closed */
};

/* Long operations answer with progress frames; give them time. */
static uint32_t peer_client_timeout_ms(const Mv__RpcRequest *req)
{
	if (req->op_case == MV__RPC_REQUEST__OP_MIGRATE ||
	    req->op_case == MV__RPC_REQUEST__OP_DRAIN)
		return PEER_LONG_OP_TIMEOUT_MS;
	return PEER_FORWARD_TIMEOUT_MS;
}

static void peer_client_on_timer(uv_timer_t *t);

int peer_client_forward(struct agent *a, struct net_conn *client, Mv__RpcRequest *req,
                        const char *owner, Mv__RpcCode *code, char *err, size_t errlen)
{
	struct swim_member_info mi;
	if (!swim_member_find(membership_swim(a), owner, &mi)) {
		*code = MV__RPC_CODE__RPC_ERR_UNAVAILABLE;
		snprintf(err, errlen, "host %s is not a member any more", owner);
		return -1;
	}
	if (mi.state != SWIM_ALIVE && mi.state != SWIM_SUSPECT) {
		*code = MV__RPC_CODE__RPC_ERR_UNAVAILABLE;
		snprintf(err, errlen, "host %s is %s; nothing was changed", owner,
		         swim_state_name(mi.state));
		return -1;
	}
	struct rpc_pending *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		*code = MV__RPC_CODE__RPC_ERR_INTERNAL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct peer_client *pc = a->peer_client;
	p->fwd_id = ++pc->next_id;
	p->client = client;
	p->client_id = req->id;
	p->timeout_ms = peer_client_timeout_ms(req);
	p->deadline = uv_now(a->loop) + p->timeout_ms;
	snprintf(p->node, sizeof(p->node), "%s", owner);

	uint64_t saved_id = req->id;
	char *saved_name = req->caller_name, *saved_role = req->caller_role;
	req->id = p->fwd_id;
	req->forwarded = true;
	/* who asked us, for the owner's log and its own authorization */
	req->caller_name = (char *)(client != NULL ? net_conn_peer_name(client) : a->opt.name);
	req->caller_role =
	    (char *)tls_role_name(client != NULL ? net_conn_peer_role(client) : TLS_ROLE_NODE);
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.from = a->opt.name;
	env.body_case = MV__ENVELOPE__BODY_REQUEST;
	env.request = req;
	uint8_t *frame;
	size_t len;
	int rc = envelope_encode_frame(&env, &frame, &len);
	req->id = saved_id;
	req->forwarded = false;
	req->caller_name = saved_name;
	req->caller_role = saved_role;
	if (rc == 0) {
		rc = net_send_to(a->net, mi.addr, owner, frame, len);
		free(frame);
	}
	if (rc < 0) {
		free(p);
		*code = MV__RPC_CODE__RPC_ERR_UNAVAILABLE;
		snprintf(err, errlen, "cannot reach host %s: %s", owner, strerror(-rc));
		return -1;
	}
	p->next = pc->pending;
	pc->pending = p;
	if (!uv_is_active((uv_handle_t *)&pc->timer))
		uv_timer_start(&pc->timer, peer_client_on_timer, 1000, 1000);
	MV_DEBUG("rpc", "forwarded request id=%" PRIu64 " to=%s", p->fwd_id, owner);
	return 0;
}

static void peer_client_on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct peer_client *pc = a->peer_client;
	uint64_t now = uv_now(a->loop);
	struct rpc_pending **pp = &pc->pending;
	while (*pp != NULL) {
		struct rpc_pending *p = *pp;
		if (now < p->deadline) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		char text[256];
		if (p->gone != NULL)
			snprintf(text, sizeof(text),
			         "host %s %s before it answered; the operation may or may not "
			         "have happened there",
			         p->node, p->gone);
		else
			snprintf(text, sizeof(text),
			         "host %s did not answer within %u s; the operation may or may not "
			         "have happened there",
			         p->node, p->timeout_ms / 1000);
		/* A client gets UNAVAILABLE (what every release's CLI knows);
		 * the agent's own caller IN_DOUBT: the node may have done it. */
		Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
		resp.id = p->client_id;
		resp.code = p->client != NULL ? MV__RPC_CODE__RPC_ERR_UNAVAILABLE
		                              : MV__RPC_CODE__RPC_ERR_IN_DOUBT;
		resp.error = text;
		if (p->client != NULL)
			rpc_send_response(a, p->client, NULL, &resp);
		else if (p->cb != NULL)
			p->cb(a, p->cb_arg, &resp);
		free(p);
	}
	if (pc->pending == NULL)
		uv_timer_stop(&pc->timer);
}

int peer_client_request(struct agent *a, const char *node, Mv__RpcRequest *req,
                        peer_client_done_fn cb, void *arg, char *err, size_t errlen)
{
	Mv__RpcCode code;
	req->id = 0;
	if (peer_client_forward(a, NULL, req, node, &code, err, errlen) < 0)
		return -EHOSTUNREACH;
	a->peer_client->pending->cb = cb; /* peer_client_forward put it first */
	a->peer_client->pending->cb_arg = arg;
	return 0;
}

/* A response to one of our forwarded requests, from a peer. */
void peer_client_handle_response(struct agent *a, const char *from, Mv__RpcResponse *resp)
{
	struct rpc_pending **pp = &a->peer_client->pending;
	while (*pp != NULL && (*pp)->fwd_id != resp->id)
		pp = &(*pp)->next;
	struct rpc_pending *p = *pp;
	if (p == NULL || strcmp(p->node, from) != 0) {
		MV_DEBUG("rpc", "dropped late or unknown forwarded answer id=%" PRIu64 " from=%s",
		         resp->id, from);
		return;
	}
	if (resp->more) {
		/* a progress frame: relay it, keep waiting for the last one */
		p->deadline = uv_now(a->loop) + p->timeout_ms;
		if (p->client != NULL) {
			uint64_t fwd_id = resp->id;
			resp->id = p->client_id;
			rpc_send_response(a, p->client, NULL, resp);
			resp->id = fwd_id;
		}
		return;
	}
	*pp = p->next;
	if (p->client != NULL) {
		resp->id = p->client_id;
		rpc_send_response(a, p->client, NULL, resp);
	} else if (p->cb != NULL) {
		p->cb(a, p->cb_arg, resp);
	}
	free(p);
}

void peer_client_on_conn_closed(struct agent *a, struct net_conn *c)
{
	for (struct rpc_pending *p = a->peer_client->pending; p != NULL; p = p->next)
		if (p->client == c)
			p->client = NULL; /* the owner's answer will be dropped */
}

void peer_client_stop(struct agent *a)
{
	struct peer_client *pc = a->peer_client;
	if (pc != NULL && pc->timer_on)
		uv_timer_stop(&pc->timer);
}

void peer_client_close(struct agent *a)
{
	struct peer_client *pc = a->peer_client;
	if (pc == NULL || !pc->timer_on)
		return;
	pc->timer_on = false;
	uv_close((uv_handle_t *)&pc->timer, NULL);
}

void peer_client_free(struct agent *a)
{
	struct peer_client *pc = a->peer_client;
	if (pc == NULL)
		return;
	while (pc->pending != NULL) {
		struct rpc_pending *p = pc->pending;
		pc->pending = p->next;
		free(p);
	}
	free(pc);
	a->peer_client = NULL;
}

/* A member died, left or was forgotten: what waits for its answer gets
 * one now rather than at its deadline (up to 30 minutes for a drain) —
 * from the timer, not from inside the membership pump that reports it. */
static void peer_client_on_member_event(struct agent *a, const struct swim_event *e)
{
	if (e->type != SWIM_EV_MEMBER_DEAD && e->type != SWIM_EV_MEMBER_LEFT &&
	    e->type != SWIM_EV_MEMBER_REAPED)
		return;
	struct peer_client *pc = a->peer_client;
	if (pc == NULL)
		return; /* the listener outlives a stopped agent (unit tests) */
	bool any = false;
	for (struct rpc_pending *p = pc->pending; p != NULL; p = p->next) {
		if (strcmp(p->node, e->name) != 0)
			continue;
		p->gone = e->type == SWIM_EV_MEMBER_LEFT ? "left the cluster" : "died";
		p->deadline = 0;
		any = true;
	}
	if (any && !a->stopping)
		uv_timer_start(&pc->timer, peer_client_on_timer, 0, 1000);
}

int peer_client_start(struct agent *a, char *err, size_t errlen)
{
	struct peer_client *pc = calloc(1, sizeof(*pc));
	if (pc == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = membership_add_listener(peer_client_on_member_event);
	if (rc < 0) {
		free(pc);
		snprintf(err, errlen, "cannot subscribe to membership events");
		return rc;
	}
	uv_timer_init(a->loop, &pc->timer);
	pc->timer.data = a;
	pc->timer_on = true;
	a->peer_client = pc;
	return 0;
}
