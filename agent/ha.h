/*
 * ha.h — the daemon's side of automatic failover (issue 5).
 *
 * It owns the failover core (include/meshvisor/failover.h) inside the
 * agent and carries its decisions out:
 *   - quorum heartbeats and plan consensus over the peer port;
 *   - membership (SWIM events) and the gossiped view of every host (node
 *     state) fed to the core;
 *   - the core's actions through libvirt: fencing ourselves, fencing a
 *     dead host through its own libvirt (on a worker thread), restarting a
 *     VM here from its replicated definition with a new owner epoch;
 *   - replication of each local HA VM's definition to R peers chosen by
 *     rendezvous hashing, and the replica store other hosts ask;
 *   - VM-level HA: a crashed HA VM restarts here with backoff, then moves;
 *   - stale copies: a VM that runs elsewhere with a higher epoch is
 *     destroyed and undefined here;
 *   - the event stream (`meshvisor events`), `failovers`, `ha`,
 *     `force-leave`, and the optional watchdog device.
 */
#ifndef MESHVISOR_HA_H
#define MESHVISOR_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/swim.h"

struct agent;

int ha_start(struct agent *a, char *err, size_t errlen);
void ha_stop(struct agent *a);
void ha_free(struct agent *a);

/* A peer frame whose body is `failover` (sender identity already checked). */
void ha_handle_envelope(struct agent *a, const Mv__Envelope *env);
/* Every SWIM event (also recorded in the event stream). */
void ha_on_member_event(struct agent *a, const struct swim_event *e);
/* The gossiped view of some host changed. */
void ha_on_state_change(struct agent *a);
/* A local VM changed (libvirt event or reconcile). */
void ha_on_vm_event(struct agent *a, const char *vm_name);
/* The operator stopped this VM through meshvisor: not a crash. */
void ha_expect_stop(struct agent *a, const char *name_or_uuid);
/* May the operator start this local VM now? Always for a VM without HA. An
 * HA VM starts only on a quorate host (one without quorum may be failed
 * over at any moment) and only if no alive host runs it with a higher
 * owner epoch (this copy would be a stale one). false with the reason in
 * err. */
bool ha_may_start_vm(struct agent *a, const char *uuid, bool vm_ha, uint64_t vm_epoch, char *err,
                     size_t errlen);
/* Our failover fields for the node state we publish. */
void ha_fill_node_state(struct agent *a, Mv__NodeState *ns);
/* Records one line of the event stream (and logs nothing: callers log). */
void ha_event(struct agent *a, const char *kind, const char *node, const char *vm,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* RPC: events, failovers, ha, force_leave, replica_put, replica_get. The
 * answer goes out through the sink (one final frame; `events` keeps it
 * open). Returns 0, or a negative errno with err filled and nothing sent. */
int ha_rpc(struct agent *a, const Mv__RpcRequest *req, const char *peer, uint64_t sink,
           char *err, size_t errlen);

#endif
