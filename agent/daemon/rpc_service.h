/*
 * rpc_service.h — what a daemon service uses of the RPC layer
 * (rpc_service.c): it registers the operations it answers, with who may
 * ask for them, and answers through a sink. The dispatcher (rpc_server.c)
 * checks the access once and opens the sink; services never call it.
 *
 * Ownership: the open sinks are the agent's and private to rpc_service.c
 * (struct rpc_service: a->rpc_service, set by rpc_service_start, freed by
 * rpc_service_free); the table of registered operations is the process's
 * (static, filled as services start).
 */
#ifndef MESHVISOR_RPC_SERVICE_H
#define MESHVISOR_RPC_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"

struct agent;
struct net_conn;
struct rpc_service;

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

struct rpc_service_op {
	int op; /* Mv__RpcRequest__OpCase */
	const char *name;
	enum rpc_access access;
	rpc_service_fn fn;
};

/* A service registers the operations it answers, with their access, when
 * it starts (the dispatcher's own operations take precedence: never
 * register one of those). Returns 0 (also when the same registration is
 * made again), -EEXIST when another handler answers op, -ENOSPC when the
 * table is full. */
int rpc_register_op(int op, const char *name, enum rpc_access access, rpc_service_fn fn);
/* The registration for op, or NULL. */
const struct rpc_service_op *rpc_service_find(int op);

/* Creates the agent's sink registry (before anything opens a sink). 0, or
 * -ENOMEM. */
int rpc_service_start(struct agent *a);

/* A sink receives the frames of one long operation (progress with more =
 * true, then one final frame) and delivers them to the client that asked,
 * or to the agent that forwarded the request. rpc_sink_open returns its
 * token: never 0, never the same twice in the agent's life; 0 on
 * allocation failure or before rpc_service_start. A client that went away
 * is skipped silently; a token of no open sink is ignored. */
uint64_t rpc_sink_open(struct agent *a, struct net_conn *client, const char *peer, uint64_t req_id);
void rpc_sink_send(struct agent *a, uint64_t token, Mv__RpcResponse *resp, bool final);
/* Keeps a quiet stream (events) open: sends a keepalive frame
 * (RpcResponse.keepalive, more = true, no result) through the sink, which
 * counts on its connection's idle clock, but only while the client
 * acknowledges what it was sent: when everything sent before is
 * acknowledged, or less stands unacknowledged than at the last call
 * (*unacked: that figure; 0 at first, updated here). A client that is gone
 * without a word, or no longer reads, gets none, and the idle timeout
 * closes its connection. Returns 1 sent, 0 held back (or a sink that
 * answers another agent: nothing to keep open), -ENOTCONN when no sink is
 * open or its client went away. */
int rpc_sink_keepalive(struct agent *a, uint64_t token, size_t *unacked);
/* Forgets a sink without sending anything (the request failed at once). */
void rpc_sink_drop(struct agent *a, uint64_t token);
/* Whether anyone still listens on the sink (its client or agent). */
bool rpc_sink_alive(struct agent *a, uint64_t token);
/* Who the sink answers: the client certificate's name on the RPC port,
 * or the agent that forwarded the request; "" for no open sink. */
const char *rpc_sink_caller(struct agent *a, uint64_t token);
/* How many sinks are open (not yet sent their final frame or dropped). */
size_t rpc_sink_count(const struct agent *a);
/* A client connection closed: its sinks deliver to nobody from now on. */
void rpc_sinks_on_conn_closed(struct agent *a, struct net_conn *c);
/* At exit: forgets every sink and frees the registry (a->rpc_service
 * becomes NULL); nothing without one. */
void rpc_service_free(struct agent *a);

/* The answer's code for an operation's -errno (-ENOENT: not found,
 * -EEXIST/-EBUSY: conflict, -EINVAL: invalid, -ENOTCONN/-EHOSTUNREACH/
 * -EAGAIN: unavailable, anything else: internal). */
Mv__RpcCode rpc_code_of_errno(int rc);

/* Sends resp to client connection c, or, with c NULL, to agent `peer` on
 * the peer port. */
void rpc_send_response(struct agent *a, struct net_conn *c, const char *peer,
                       Mv__RpcResponse *resp);

#endif
