/*
 * fo_driver.h — what feeds the failover core (include/meshvisor/fo.h)
 * and carries out its one request to the membership core, in one place
 * that both the daemon (agent/daemon/ha.c) and the failover simulator
 * (tests/sim/sim_failover.c) use, so that the simulator runs the glue that
 * ships:
 *
 *   SWIM member event            -> fo_member() / fo_set_incarnation()
 *   gossiped NodeState records   -> the core's host view (fo_set_hosts())
 *   FO_EV_NEW_INCARNATION        -> swim_raise_incarnation(), then
 *                                   fo_set_incarnation()
 *   what the hypervisor runs     -> fo_move_outcome() / fo_move_end() for
 *                                   live migrations still MOVING
 *
 * No I/O, no clock: the caller passes `now` (each core's own clock).
 *
 * Ownership: fo_driver_view borrows the NodeState records it was built
 * from (strings point into them); free the view before them.
 */
#ifndef MESHVISOR_FO_DRIVER_H
#define MESHVISOR_FO_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/fo.h"
#include "meshvisor/swim.h"

/* Feeds one SWIM event to the core: a member joined, came back, was
 * suspected, died or left (ALIVE / SUSPECT / DEAD / LEFT with its
 * incarnation; a member that restarted at a new address is ALIVE at its
 * new incarnation), or we refuted (our own new incarnation). Other events
 * and events about `self` change nothing. */
void fo_driver_member_event(struct fo *f, const char *self, const struct swim_event *e,
                            uint64_t now);

/* Carries out FO_EV_NEW_INCARNATION: SWIM raises our incarnation to at
 * least e->inst.incarnation and gossips it, then the core learns it. */
void fo_driver_new_incarnation(struct fo *f, struct swim *sw, const struct fo_event *e,
                               uint64_t now);

/* The core's view of every host, built from gossiped records:
 *   - capacity, health (libvirt reachable), draining, witness, quorate,
 *     the incarnation the host published at;
 *   - its HA VMs whose desired state is running: active ones (running or
 *     paused) as running; stopped ones (shut off, crashed) as owed a
 *     restart — unless the host's inventory is stale (libvirt unreachable:
 *     they most likely run on) or the host is restarting it itself (VM-level
 *     HA), which count as running. HA VMs an operator stopped through
 *     meshvisor (desired stopped) are not listed: nothing is owed.
 * `up(arg, name)` says whether membership has the host alive (the
 * placement's `alive`; the core uses its own membership anyway). */
struct fo_driver_view {
	struct fo_host *hosts;
	size_t n_hosts;
	struct fo_vm *vms; /* storage for every host's list */
};

int fo_driver_view_build(struct fo_driver_view *v, const Mv__NodeState *const *states, size_t n,
                         bool (*up)(void *arg, const char *name), void *arg);
void fo_driver_view_free(struct fo_driver_view *v);

/* Whether a VmInfo is active (running or paused) / an HA VM the cluster
 * keeps running (HA and desired running). */
bool fo_driver_vm_active(const Mv__VmInfo *vm);
bool fo_driver_vm_protected(const Mv__VmInfo *vm);

/* Live migrations still MOVING that name this host (MOVES), settled from
 * what its hypervisor runs: as the target, MOVED when a copy runs here at
 * the move's epoch or a newer one, else "never landed" once no incoming
 * job or reservation holds it and no copy is paused here (an incoming
 * migration pauses it); as the source, for a previous life's move only
 * (`at_start(arg, move id)`; NULL: none is), STAYED when the VM still
 * runs here — else its target settles it. `copy(arg, uuid, out)` says
 * what runs here (false: no copy at all); `incoming(arg, move id)`
 * whether an incoming job or reservation still holds the move. Returns
 * how many moves were still MOVING. */
struct fo_driver_copy {
	bool running, paused;
	uint64_t epoch;
};
size_t fo_driver_settle_moves(struct fo *f, const char *self,
                              bool (*at_start)(void *arg, const char *id), uint64_t now,
                              bool (*copy)(void *arg, const char *uuid, struct fo_driver_copy *out),
                              bool (*incoming)(void *arg, const char *id), void *arg);

/* The force-leave guard (fo_driver.c, "the force-leave guard"): may
 * `self`, which hears `heard` voters (itself included, acknowledged within
 * the quorate window: fo_acknowledged) of a voting set of `voters` whose
 * majority is `majority`, remove `node`? 0 when it hears a majority, or
 * when the operator stated that the majority is gone (`majority_is_gone`:
 * the caller logs it); otherwise -EBUSY with why and what to check in err.
 * Pure; the daemon (ha.c) and the simulator's operator both ask it before
 * fo_force_leave(). */
int fo_driver_force_leave_guard(const char *self, const char *node, size_t heard, size_t voters,
                                size_t majority, bool majority_is_gone, char *err, size_t errlen);

#endif
