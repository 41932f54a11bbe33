/*
 * ha.h — the daemon's side of automatic failover (issue 5).
 *
 * It owns the failover core (include/meshvisor/fo.h) inside the
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
/* Remote fences and VM restarts still running on worker threads
 * (agent_main waits for them before it frees anything they use). */
unsigned ha_work_running(const struct agent *a);
/* Whether this host holds quorum now (false before ha_start). */
bool ha_quorate(const struct agent *a);
struct fo;
const struct fo *ha_core(const struct agent *a);
int ha_vm_counts(struct agent *a, uint32_t *ha_vms, uint32_t *owed);
/* After ha_stop, once no work runs: closes the module's handles; the
 * caller runs the loop until their close callbacks have run, then
 * ha_free. */
void ha_close(struct agent *a);
void ha_free(struct agent *a);

/* A peer frame whose body is `failover` (sender identity already checked). */
void ha_handle_envelope(struct agent *a, const Mv__Envelope *env);
/* Every SWIM event (also recorded in the event stream). */
void ha_on_member_event(struct agent *a, const struct swim_event *e);
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
/* Records one line of the event stream (and logs nothing: callers log). */
void ha_event(struct agent *a, const char *kind, const char *node, const char *vm, const char *fmt,
              ...) __attribute__((format(printf, 5, 6)));

/*
 * The last quorate moment, kept across agent restarts (ha.c, "the last
 * quorate moment"): data_dir/quorate-stamp holds one fixed-length line
 *
 *   meshvisor-quorate-stamp v1 boot=BOOT_ID mono_ms=MS sum=FNV\n
 *
 * BOOT_ID: /proc/sys/kernel/random/boot_id (36 characters), so a stamp of
 * an earlier boot is never used; MS: CLOCK_MONOTONIC milliseconds of a
 * moment at which this agent was quorate, 20 decimal digits; FNV: FNV-1a 64
 * of everything before " sum=", 16 lower-case hex digits. Pure helpers,
 * for ha.c and the unit tests.
 */
#define HA_STAMP_BOOT_LEN 36
#define HA_STAMP_LINE_LEN 119
/* Writes the line (HA_STAMP_LINE_LEN characters + NUL) into buf. Returns
 * its length, or -EINVAL for a boot id that is not 36 characters of
 * [0-9a-f-] or a buffer shorter than HA_STAMP_LINE_LEN + 1. */
int ha_stamp_format(char *buf, size_t len, const char *boot_id, uint64_t mono_ms);
/* Parses a file's whole text: 0 with boot_id (HA_STAMP_BOOT_LEN + 1 bytes)
 * and *mono_ms filled, or -EINVAL (wrong length, layout or checksum). */
int ha_stamp_parse(const char *text, size_t len, char *boot_id, uint64_t *mono_ms);
/* The stamp as a time of a clock that reads core_now while CLOCK_MONOTONIC
 * reads mono_now: core_now minus how long ago the stamp was, 0 if longer
 * ago than core_now, core_now for a stamp from the future. */
uint64_t ha_stamp_to_core(uint64_t stamp_mono, uint64_t mono_now, uint64_t core_now);

#endif
