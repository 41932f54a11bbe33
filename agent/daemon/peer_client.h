/*
 * peer_client.h — node-to-node requests over the peer port (peer_client.c):
 * the agent's own requests to another agent, and a client's request
 * forwarded once to the host that owns what it concerns. Services and the
 * RPC dispatcher use it; it uses only the network, membership's view and
 * rpc_service (to relay answers to a waiting client).
 *
 * Ownership: the service's state (struct peer_client: the requests waiting
 * for an answer, their ids, the timer that watches their deadlines) is
 * private to peer_client.c; the agent holds only a pointer to it
 * (a->peer_client: set by peer_client_start, freed by peer_client_free).
 */
#ifndef MESHVISOR_PEER_CLIENT_H
#define MESHVISOR_PEER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"

struct agent;
struct net_conn;
struct peer_client;

/* Creates the service and subscribes it to member events: a request
 * waiting for a member that died or left is answered at once
 * (RPC_ERR_UNAVAILABLE). 0, or -ENOMEM / -ENOSPC with err filled. */
int peer_client_start(struct agent *a, char *err, size_t errlen);

/* The agent's own request to another agent: cb gets the final answer, or
 * one made up here with RPC_ERR_IN_DOUBT when the node never gave one (it
 * did not answer in time, died or left first: the request may or may not
 * have been carried out there, and a caller whose undo would be wrong if
 * it was — start a VM the node may have started — must not undo). req->id
 * is set here. 0, or -EHOSTUNREACH with err filled (nothing was sent). */
typedef void (*peer_client_done_fn)(struct agent *a, void *arg, Mv__RpcResponse *resp);
int peer_client_request(struct agent *a, const char *node, Mv__RpcRequest *req,
                        peer_client_done_fn cb, void *arg, char *err, size_t errlen);

/* Forwards a client's request (on connection client) to `owner`: its
 * answer, progress frames first, goes back to the client under the
 * client's id. 0, or -1 with *code and err saying why nothing was sent. */
int peer_client_forward(struct agent *a, struct net_conn *client, Mv__RpcRequest *req,
                        const char *owner, Mv__RpcCode *code, char *err, size_t errlen);

/* An answer to one of our requests, from agent `from` (peer port; identity
 * already checked). Late or unknown answers are dropped. */
void peer_client_handle_response(struct agent *a, const char *from, Mv__RpcResponse *resp);
/* A client connection closed: answers for it will be dropped. */
void peer_client_on_conn_closed(struct agent *a, struct net_conn *c);
/* The agent is stopping: the timer stops (nothing more is answered for a
 * deadline). */
void peer_client_stop(struct agent *a);
/* Closes the timer (the caller runs the loop until its close callback
 * ran, then calls peer_client_free). */
void peer_client_close(struct agent *a);
/* At exit: forgets every request still waiting and frees the service
 * (a->peer_client becomes NULL); nothing without one. */
void peer_client_free(struct agent *a);

#endif
