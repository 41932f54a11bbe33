/*
 * rpc_server.h — the agent's RPC dispatcher (rpc_server.c): requests from
 * clients on the RPC port and from other agents on the peer port, checked
 * once for access, answered by its own handlers or by the operations
 * services registered (rpc_service.h); requests to other agents go
 * through peer_client.h.
 */
#ifndef MESHVISOR_RPC_SERVER_H
#define MESHVISOR_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"

struct agent;
struct net_conn;

/* One request frame from an RPC client. */
void rpc_server_handle_frame(struct agent *a, struct net_conn *c, const uint8_t *payload,
                             size_t len);
/* A request forwarded to us by another agent (peer port; sender identity
 * already checked). */
void rpc_server_handle_peer_request(struct agent *a, const char *from, Mv__RpcRequest *req);
/* A client connection closed; forget what waits for it (forwarded
 * requests, sinks). */
void rpc_server_on_conn_closed(struct agent *a, struct net_conn *c);
/* At exit, drops requests still waiting for other hosts, and sinks. */
void rpc_server_free_pending(struct agent *a);

#endif
