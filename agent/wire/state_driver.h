/*
 * state_driver.h — what membership tells the node-state gossip core
 * (include/meshvisor/nstate.h), in one place that both the daemon
 * (agent/daemon/nodestate.c) and the simulated world
 * (tests/sim/sim_failover.c, opts.gossip_state) use:
 *
 *   SWIM JOINED / ALIVE / ADDR_CHANGED -> nstate_peer_up (gossip with it)
 *   SWIM SUSPECT                       -> nothing (a suspect may be fine)
 *   SWIM DEAD / LEFT                   -> nstate_peer_down (record kept)
 *   SWIM REAPED                        -> nstate_forget (record dropped)
 *
 * No I/O, no clock.
 */
#ifndef MESHVISOR_STATE_DRIVER_H
#define MESHVISOR_STATE_DRIVER_H

#include <stdbool.h>

#include "meshvisor/nstate.h"
#include "meshvisor/swim.h"

/* Feeds one SWIM event to the core; events about `self` (and events that
 * name no member) change nothing. Returns whether the core was told
 * anything (the caller then drains it). */
bool state_driver_member_event(struct nstate *ns, const char *self, const struct swim_event *e);

#endif
