/*
 * sdservice.h — the agent as a systemd service (Type=notify), and its
 * once-a-second housekeeping.
 *
 * Under systemd ($NOTIFY_SOCKET set; sdnotify.h speaks the protocol):
 *   - READY=1 once the agent serves (its ports are bound: sdservice_start
 *     runs after agent_start) and has joined: another member is alive, or
 *     no seeds were configured (the first host of a new cluster). A host
 *     whose seeds do not answer is declared ready after SDSERVICE_JOIN_WAIT_MS
 *     anyway, serving alone, with STATUS saying so — else a whole-site
 *     power-up, where every host waits for the others, would never start
 *     (systemd kills a notify service that is not ready by
 *     TimeoutStartSec=);
 *   - STATUS= every time it changes (checked each second): joined or
 *     not, members alive, quorum, libvirt, loop lag p99;
 *   - WATCHDOG=1 from the loop every $WATCHDOG_USEC / 2 (the unit's
 *     WatchdogSec=): a loop stalled for WatchdogSec gets the agent killed
 *     (SIGABRT) and restarted by systemd — its VMs keep running, and it
 *     comes back at a new incarnation;
 *   - STOPPING=1 when the graceful leave begins; RELOADING=1 and READY=1
 *     around a SIGHUP reload.
 * Without systemd, only the housekeeping runs: each second the summaries
 * of held-back repeated warnings are written (log.h).
 *
 * Ownership: struct sdservice is embedded in struct agent; sdservice_close
 * closes its one timer (run the loop once more). Loop thread only.
 */
#ifndef MESHVISOR_SDSERVICE_H
#define MESHVISOR_SDSERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SDSERVICE_TICK_MS 1000u
#define SDSERVICE_JOIN_WAIT_MS 30000u

struct agent;

struct sdservice {
	uv_timer_t timer;
	bool started, notify, ready;
	uint64_t watchdog_ms; /* pet at least this often; 0: not watched */
	uint64_t started_at, last_pet;
	char status[256]; /* STATUS= last sent */
};

/* After agent_start: starts the timer, and with systemd says READY=1 at
 * once when the agent needs no join. 0 or a libuv error. */
int sdservice_start(struct agent *a);
/* The graceful leave began / a reload begins / it ended. */
void sdservice_stopping(struct agent *a);
void sdservice_reloading(struct agent *a);
void sdservice_reloaded(struct agent *a);
void sdservice_close(struct agent *a);

#endif
