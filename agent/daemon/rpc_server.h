/*
 * rpc_server.h — the agent's RPC service (rpc_server.c): requests from
 * clients on the RPC port and from other agents on the peer port, the
 * agent's own requests to other agents, and sinks that stream the frames
 * of a long operation back to whoever asked.
 */
#ifndef MESHVISOR_RPC_SERVER_H
#define MESHVISOR_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"

struct agent;
struct net_conn;

/* Who may ask for an operation; the dispatcher checks it once, before any
 * handler runs. */
enum rpc_access {
	RPC_READ,      /* viewer, operator or node certificate */
	RPC_WRITE,     /* operator or node certificate */
	RPC_NODE_ONLY, /* another agent, on the peer port only */
};

/* A service's operation: it answers through the sink (rpc_sink_send; one
 * final frame, or a stream). Returns 0 when started, or a negative errno
 * with err filled and nothing sent (the dispatcher answers the error). */
typedef int (*rpc_service_fn)(struct agent *a, const Mv__RpcRequest *req, const char *peer,
                              uint64_t sink, char *err, size_t errlen);

/* A service registers the operations it answers (op: a
 * Mv__RpcRequest__OpCase), with their access, when it starts. Returns 0
 * (also when the same registration is made again), -EEXIST when another
 * handler answers op, -ENOSPC when the table is full. */
int rpc_register_op(int op, const char *name, enum rpc_access access, rpc_service_fn fn);

/* One request frame from an RPC client. */
void rpc_server_handle_frame(struct agent *a, struct net_conn *c, const uint8_t *payload,
                             size_t len);
/* Requests forwarded to us by other agents, and the answers to the ones
 * we forwarded (peer port; sender identity already checked). */
void rpc_server_handle_peer_request(struct agent *a, const char *from, Mv__RpcRequest *req);
void rpc_server_handle_peer_response(struct agent *a, const char *from, Mv__RpcResponse *resp);
/* A client connection closed; forget what waits for it. */
void rpc_server_on_conn_closed(struct agent *a, struct net_conn *c);
/* At exit, drops requests still waiting for other hosts. */
void rpc_server_free_pending(struct agent *a);

/* The agent's own requests to another agent (node to node,
 * over the peer port): cb gets the final answer, or an RPC_ERR_UNAVAILABLE
 * one if the node does not answer in time. req->id is set here. */
typedef void (*rpc_done_fn)(struct agent *a, void *arg, Mv__RpcResponse *resp);
int rpc_node_request(struct agent *a, const char *node, Mv__RpcRequest *req, rpc_done_fn cb,
                     void *arg, char *err, size_t errlen);

/* A sink receives the frames of one long operation (progress
 * with more = true, then one final frame) and delivers them to the client
 * that asked, or to the agent that forwarded the request. Returns 0 on
 * allocation failure. A client that went away is skipped silently. */
uint64_t rpc_sink_open(struct agent *a, struct net_conn *client, const char *peer, uint64_t req_id);
void rpc_sink_send(struct agent *a, uint64_t token, Mv__RpcResponse *resp, bool final);
/* Forgets a sink without sending anything (the request failed at once). */
void rpc_sink_drop(struct agent *a, uint64_t token);
/* Whether anyone still listens on the sink (its client or agent). */
bool rpc_sink_alive(struct agent *a, uint64_t token);

#endif
