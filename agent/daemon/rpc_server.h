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
#include "tls.h"

struct agent;
struct net_conn;

/* The one authorization check, made before any handler runs: may a
 * caller with this certificate role (from_peer: another agent, on the peer
 * port) ask for op_case (an Mv__RpcRequest__OpCase)? RPC_OK, or the code
 * to answer with (INVALID: unknown operation, or one between agents only
 * asked on the RPC port; PERMISSION: the role may not) and err filled. */
int rpc_server_authorize(int op_case, enum tls_role role, bool from_peer, const char *caller,
                         char *err, size_t errlen);

/* Request size caps on the RPC port (docs/limits.md): a request frame over
 * its op's cap is refused before it is buffered, answered with an error
 * naming the cap, and its bytes are skipped. */
#define RPC_REQUEST_MAX (64u * 1024u)       /* every op but those below */
#define RPC_XML_REQUEST_MAX (1024u * 1024u) /* vm_create, vm_receive, replica_put */

/* net_config.rpc_frame_cap: the cap from a frame's first bytes. */
uint32_t rpc_server_frame_cap(const uint8_t *prefix, size_t prefix_len, uint32_t len, void *ud);
/* net_config.on_rpc_frame_refused: answers the request with the error. */
void rpc_server_frame_refused(struct agent *a, struct net_conn *c, const uint8_t *prefix,
                              size_t prefix_len, uint32_t len, uint32_t cap);

/* One request frame from an RPC client. */
void rpc_server_handle_frame(struct agent *a, struct net_conn *c, const uint8_t *payload,
                             size_t len);
/* A request forwarded to us by another agent (peer port; sender identity
 * already checked). */
void rpc_server_handle_peer_request(struct agent *a, const char *from, Mv__RpcRequest *req);
/* A client connection closed; forget what waits for it (forwarded
 * requests, sinks). */
void rpc_server_on_conn_closed(struct agent *a, struct net_conn *c);

/* Requests answered so far (this process), by op and code (metrics.c):
 * fills up to cap entries, returns how many there are. code is "ok",
 * "invalid", "permission", "not_found", "unavailable", "internal",
 * "conflict", "no_room", or "deferred" (not answered at once: through a stream,
 * or forwarded to another agent). */
struct rpc_request_count {
	const char *op;
	const char *code;
	uint64_t count;
};
size_t rpc_server_request_counts(struct rpc_request_count *out, size_t cap);

#endif
