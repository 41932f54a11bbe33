/*
 * migration.h — the daemon's side of VM moves (issue 4).
 *
 * It owns the negotiation core (mig.h) inside the agent and carries its
 * decisions out: negotiation messages over the peer port, the move itself
 * through libvirt (live on a worker thread, or offline where the hypervisor
 * cannot migrate), progress to whoever asked, drain of a whole host, and
 * each host's recent migrations in its gossiped node state.
 *
 * Ownership: the service's state (struct migration_service: the core, its
 * timers, the moves, the drain, the draining flag, the count of jobs on
 * worker threads) is private to migration.c; the agent holds only a pointer
 * to it (a->migration: set by migration_start, freed by migration_free_all)
 * and others ask through the functions below. Answers go out through
 * rpc_sink tokens (rpc_service.h).
 */
#ifndef MESHVISOR_MIGRATION_H
#define MESHVISOR_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "promtext.h"
#include "meshvisor/swim.h"

struct agent;
struct migration_service;

int migration_start(struct agent *a, char *err, size_t errlen);
void migration_stop(struct agent *a);
/* After migration_stop, once no worker runs: closes the module's timers
 * (the caller runs the loop until their close callbacks ran). */
void migration_close(struct agent *a);
/* Frees the service and every move (a->migration becomes NULL). */
void migration_free_all(struct agent *a);
/* Migration jobs still running on worker threads (agent_main waits for
 * them before it frees anything they use). */
uint64_t migration_work_running(const struct agent *a);
/* Is this host draining (a drain started it, an undrain ends it)? */
bool migration_draining(const struct agent *a);
/* Outgoing migrations finished so far (metrics.c): how many moved and
 * failed, the bytes libvirt reported moved (data_processed of those
 * whose job stats were read), and each one's duration, started to
 * finished, in seconds. NULL outside migration_start..migration_free_all. */
struct migration_totals {
	uint64_t ok, failed;
	uint64_t bytes;
	struct mv_hist duration;
};
const struct migration_totals *migration_totals(const struct agent *a);

/* A peer frame whose body is `mig` (sender identity already checked). */
void migration_handle_envelope(struct agent *a, const Mv__Envelope *env);
void migration_on_member_event(struct agent *a, const struct swim_event *e);
/* A VM changed here (libvirt event): may be an incoming migration landing. */
void migration_on_vm_event(struct agent *a, const char *vm_name);

/* RPC (on the host that owns the VM / the host to drain). Each returns 0
 * and answers later through the sink, or a negative errno with err filled
 * and nothing started. */
int migration_rpc_migrate(struct agent *a, const Mv__MigrateRequest *q, uint64_t sink, char *err,
                          size_t errlen);
int migration_rpc_drain(struct agent *a, const Mv__DrainRequest *q, uint64_t sink, char *err,
                        size_t errlen);
/* Node to node: the last step of an offline move lands here (define and
 * start on the hypervisor worker; answered through the sink, a VmOpReply
 * "received", when the VM is in place). 0, or a negative errno with err
 * filled and nothing started (no reservation from `from` for the
 * proposal: -EINVAL; the worker busy: -EAGAIN). */
int migration_rpc_receive(struct agent *a, const Mv__VmReceiveRequest *q, const char *from,
                          uint64_t sink, char *err, size_t errlen);

/* The failover service's part in moving an HA VM (MOVES in
 * agent/core/fo.c), which it registers (ha.c): `begin` announces the
 * move to the voters (< 0: it may not move now, e.g. not quorate), the move
 * starts once `ready` says a majority acknowledged it, `end` reports how it
 * ended (moved: it runs on the target now); on the target, `outcome`
 * reports how an incoming move ended (landed, or its reservation ended
 * without it). Without hooks, HA VMs move as any other. */
struct migration_move_hooks {
	int (*begin)(struct agent *a, const char *id, const char *uuid, const char *target,
	             uint64_t epoch, char *err, size_t errlen);
	bool (*ready)(struct agent *a, const char *id);
	void (*end)(struct agent *a, const char *id, bool moved);
	void (*outcome)(struct agent *a, const char *id, const char *uuid, const char *source,
	                bool landed);
};
void migration_set_move_hooks(struct agent *a, const struct migration_move_hooks *hooks);
/* The move of a stopped VM that the failover service (ha.c) takes off
 * this host because it crashed too often here: the same negotiation as
 * an operator's move of a stopped VM (a target chosen by placement from
 * the gossiped view, PROPOSE, the target's reservation, the next best
 * host after a refusal; an HA VM's move announced to the voters, MOVES),
 * offline: owner epoch bumped, definition exported, VmReceive under the
 * reservation, and the VM STARTED on the target; undefined here once the
 * target has it. done is called once when it ends (ok: it runs on target
 * now; message: what happened), possibly before this returns. 0, or a
 * negative errno with err filled, nothing started and done not called. */
typedef void (*migration_done_fn)(struct agent *a, const char *uuid, const char *vm, bool ok,
                                  const char *target, const char *message);
int migration_move_crashed(struct agent *a, const char *uuid, migration_done_fn done, char *err,
                           size_t errlen);
/* why != NULL: this host refuses every incoming move (the target's
 * refusal says why) until called with NULL; moves already reserved go
 * on (mig_set_hold). */
void migration_hold_incoming(struct agent *a, const char *why);
/* Does this host hold a reservation for the incoming move `id`? */
bool migration_has_incoming(struct agent *a, const char *id);

/* Is the VM named by `key` (name or UUID) being moved here? Then its
 * source host's name is copied to source. */
bool migration_incoming_source(struct agent *a, const char *key, char *source, size_t len);

#endif
