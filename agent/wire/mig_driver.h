/*
 * mig_driver.h — what membership tells the migration negotiation core
 * (include/meshvisor/mig.h), in one place that both the daemon
 * (agent/daemon/migration.c) and the simulated world
 * (tests/sim/sim_failover.c, opts.migrate_every_ms) use:
 *
 *   SWIM DEAD / LEFT / REAPED -> mig_peer_down (negotiations with it end,
 *                                leases it holds run out by themselves)
 *   anything else             -> nothing
 *
 * No I/O, no clock: the caller passes `now`.
 */
#ifndef MESHVISOR_MIG_DRIVER_H
#define MESHVISOR_MIG_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "meshvisor/mig.h"
#include "meshvisor/swim.h"

/* Returns whether the core was told anything (the caller then drains it). */
bool mig_driver_member_event(struct mig *m, const struct swim_event *e, uint64_t now);

#endif
