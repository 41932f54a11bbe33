/*
 * sim_failover.h — a deterministic world for the failover core: N hosts,
 * each running a SWIM core (swim.h) and a failover core (fo.h) on
 * the simulated world the other simulators share (sim_net.h: one virtual
 * clock, event queue, PRNG and fake network; host i is its endpoint i),
 * plus the ground truth of which VM is defined and runs where. The glue between the cores is the daemon's
 * own (agent/wire/fo_driver.c: SWIM member events and incarnations in, the view
 * built from packed NodeState publications), the cores' actions are
 * carried out on the truth, and an oracle checks the truth and the cores
 * after every step.
 *
 *	struct fw_opts o;
 *	fw_opts_default(&o, 10, seed);       // MV_SIM_SEED overrides seed
 *	struct fw *w = fw_new(&o);
 *	fw_add_vm(w, 3, "web", 100, 2, 4 << 20, NULL);
 *	fw_start(w);                         // joins everyone, publishes state
 *	fw_run_for(w, 10000);
 *	fw_crash_host(w, 3);
 *	fw_run_for(w, 60000);
 *	assert(fw_violation(w) == NULL && fw_vm_copies(w, 0) == 1);
 *	fw_free(w);
 *
 * The model of the caller (agent) and of the hosts:
 *   - a host has a hypervisor (VM definitions, each running or stopped, with
 *     its epoch) and an agent (both cores). A whole-host crash stops every
 *     VM and loses both cores; it boots later with its definitions (stopped)
 *     or without them (a reinstall: fw_boot_host_ex); an agent crash loses the cores
 *     only (VMs run on; the hypervisor still answers a remote fence); a
 *     pause freezes everything (SIGSTOP of the host: no timers, input
 *     queues, its VMs do not count as running). On resume the failover
 *     core's timer runs first and its actions (a self-fence) are carried
 *     out, then the VMs unfreeze, then SWIM's timer and the queued input
 *     run — the watchdog/ordering assumption: a host that wakes up destroys
 *     its HA VMs before they can run on if it has been without quorum for
 *     fence_after_ms;
 *   - the hardware watchdog (opts.watchdog), as the daemon drives it: armed
 *     at the agent's first quorum and petted while quorate, disarmed after
 *     a self-fence (nothing left to protect) and at an agent start with no
 *     HA VM running; an armed watchdog not petted for fence_after_ms fires:
 *     the host resets (every VM stops) and boots 10-30 s later; a frozen
 *     host's watchdog fires at its resume, before its VMs run again;
 *   - actions (carried out before the messages popped after them, and the
 *     journal stored, as the daemon does): FENCE_SELF destroys every VM of
 *     the host, FENCE_VMS the listed ones below their new epochs;
 *     REMOTE_FENCE destroys every HA VM of the dead host (as the daemon's
 *     virt_remote_fence does) when its hypervisor is up, not frozen and
 *     reachable both ways from the
 *     coordinator, and reports later (ok), else reports failure after a
 *     connect timeout; NEW_INCARNATION raises the SWIM incarnation;
 *     RESTART defines and starts the VM at once in the truth (counted
 *     as running from the start of the job: the strictest choice for the
 *     oracle) unless the start fails (opts.restart_fail_p, a refusing host,
 *     or no room in the truth with opts.cap_refuse), and reports
 *     fo_restart_done() restart_min..max ms later;
 *   - gossip of node state: every publish_ms each live host publishes its
 *     VMs and load (only if they changed), and each live host's view of a
 *     host is refreshed from that host's latest publication if the link
 *     from it is open (no relaying across a partition); fo_set_hosts() gets
 *     the view when it changed. A dead host's last publication stays in
 *     the views (that is how survivors know its HA VMs); stopped copies whose
 *     desired state is running are published too (owed), and a host undefines
 *     a stale copy once a newer epoch of the VM runs elsewhere;
 *   - a restarted agent starts SWIM at its persisted incarnation + 1 (as
 *     agent.c does) and a fresh failover core with expect_cluster, its
 *     journal restored (opts.journal), and — when HA VMs run on — its
 *     self-fence clock resumed from its predecessor's last quorate moment;
 *   - clocks: each host's cores run on their own view of the world's
 *     clock (fw_local_now), with a random origin (up to 30 days apart: the cores must use no clock offsets)
 *     and, with opts.clock_drift_ppm, a rate off by up to that much (the
 *     design assumes rates equal within fence_margin_ms / fence_after_ms).
 *
 * The oracle (violations are recorded, the first one kept as text):
 *   O1 no VM runs on two live (hypervisor up, not frozen) hosts;
 *   O2 every RESTART comes from a core that is quorate (fo_quorate) and not
 *      fenced, for an entry targeted at it of the plan that core learned,
 *      which is the plan registered for that (dead, incarnation, round),
 *      and whose ballot a majority of the hosts accepted (ACCEPTED messages
 *      seen on the wire, plus the proposer itself; hosts force-left by
 *      fw_force_leave() no longer count, nor hosts no other host has heard
 *      of yet — cut off from their start, they are in no voting set; a
 *      majority is judged when it is reached, so two decisions between
 *      which two or more such hosts joined are not compared here: O1 and
 *      O3 catch what a split choice would cause);
 *   O3 no two learned plans differ for one (dead, incarnation, round) —
 *      checked on every FO_EV_CHOSEN and by a sweep of every live core's
 *      fo_chosen_plan() each publish period;
 *   O4 a VM that starts gets an epoch higher than that of any copy of it
 *      on a host that is up (an epoch only copies on down hosts had, whose
 *      every witness restarted since, may be reused: counted as
 *      epoch_reused; such a copy is stale and stays stopped);
 *   O5 without opts.cap_refuse, a start never exceeds the target's
 *      capacity in the truth.
 * And the availability oracle, asked by the tests once faults heal
 * (fw_liveness): every HA VM whose desired state is running runs on
 * exactly one live host, unless no side has a quorum, the truth has no
 * room for it, or the cluster forgot it or never knew it (fw_vm_forgotten).
 * Replay: the seed is printed by the caller; opts.verbose (MV_SIM_VERBOSE=1)
 * logs every action and fault, =2 every failover message too.
 *
 * Ownership: the world owns the cores, messages in flight, the log and the
 * registry; pointers returned by queries live until fw_free().
 */
#ifndef MESHVISOR_SIM_FAILOVER_H
#define MESHVISOR_SIM_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor/fo.h"
#include "meshvisor/swim.h"

#define FW_MAXN 256

struct fw;

struct fw_opts {
	int n;
	uint64_t seed;
	struct fo_config fo;          /* template (name, seed, witness set per host) */
	struct swim_config swim;      /* template (name, addr, seed set per host) */
	double restart_fail_p;        /* a start fails with this probability */
	bool cap_refuse;              /* a start that does not fit fails (counted), else O5 */
	bool watchdog;                /* model the hardware watchdog (default true) */
	bool journal;                 /* agents keep the failover journal on their
	                            host's disk across restarts (default true) */
	uint32_t publish_ms;          /* node-state gossip period (default 1000) */
	uint32_t delay_ms, jitter_ms; /* network delay (default 1 + 0..1) */
	uint32_t restart_min_ms, restart_max_ms; /* libvirt start (default 200..1500) */
	uint32_t join_spread_ms;                 /* initial joins spread (default 500) */
	bool clock_offsets;        /* each host's clock has its own origin (default true) */
	uint32_t clock_drift_ppm;  /* and runs off by up to this many ppm (default 0) */
	bool codecs;               /* every SWIM and failover message goes through the
	                             real codecs (encoded to a frame, decoded on
	                             delivery, as between agents); a message that
	                             does not survive it fails the world */
	bool gossip_state;         /* node state travels through the real node-state
	                             gossip core (agent/core/nstate.c), the daemon's
	                             membership glue (state_driver.c) and the real
	                             codec, with the network's faults, instead of
	                             reaching every peer a link reaches each
	                             publish_ms (default false: faster, and the
	                             fixed batches replay as before) */
	uint32_t migrate_every_ms; /* > 0: every agent runs the migration
	                             negotiation core (agent/core/mig.c) with
	                             the daemon's glue (mig_driver.c) and the real
	                             codec, and operators ask for a live migration
	                             of a random VM to a random host about this
	                             often; a move bumps the VM's epoch at GO as
	                             the daemon does, runs 0.3-3 s, and fails if
	                             either host stops, the link breaks, the
	                             source agent dies, or the lease is lost
	                             (default 0: none) */
	bool moves_unguarded;      /* migrations skip the failover core's move
	                              announcement (MOVES), as before it
	                              existed, to measure what it changes
	                              (default false) */
	int verbose;               /* 0, 1 (actions, faults), 2 (+ messages) */
	bool quiet;                /* no line per world on stderr */
};

/* Defaults as above; n hosts named "n0".."n<n-1>"; MV_SIM_SEED and
 * MV_SIM_VERBOSE are read by the caller, not here. */
void fw_opts_default(struct fw_opts *o, int n, uint64_t seed);

/* Records in the log. Types below 100 are enum fo_event_type (what a core
 * emitted, node = the core); the others are the world's. */
enum {
	FW_R_VM_START = 100,   /* vm started on node (epoch) */
	FW_R_VM_DESTROY = 101, /* vm destroyed on node (a fence) */
	FW_R_VM_FAILED = 102,  /* a start of vm on node failed */
	FW_R_CRASH_HOST = 110,
	FW_R_CRASH_AGENT = 111,
	FW_R_RESTART_AGENT = 112,
	FW_R_BOOT_HOST = 113,
	FW_R_PAUSE = 114,
	FW_R_RESUME = 115,
	FW_R_WATCHDOG = 116,
	FW_R_MEMBER_DEAD = 120, /* node's SWIM declared peer dead */
};

struct fw_rec {
	uint64_t t;
	int type;
	int node;
	int peer; /* host concerned (dead host of inst, ...), -1 none */
	int vm;   /* VM index, -1 none */
	struct fo_instance_id inst;
	uint64_t epoch; /* new_epoch (RESTART, VM_START) */
	int32_t priority;
	int plan_pos; /* RESTART: index of the entry in the plan */
	bool ok;
};

struct fw_counters {
	uint64_t steps, swim_msgs, fo_msgs, dropped, rejected, timer_spins;
	uint64_t state_msgs, state_bytes; /* opts.gossip_state */
	uint64_t mig_msgs, migrations_proposed, migrations_started, migrations_moved,
	    migrations_failed; /* opts.migrate_every_ms */
	uint64_t restarts, restarts_ok, restarts_failed, cap_refusals, starts_refused_host;
	uint64_t already_running; /* a RESTART found the VM running there (ok if epoch >=) */
	uint64_t double_starts;   /* O1 violations */
	uint64_t violations;      /* all oracle violations */
	uint64_t fence_self, fence_vms, remote_fence_ok, remote_fence_failed, watchdog_kills;
	uint64_t watchdog_resets;  /* hosts reset by their watchdog */
	uint64_t new_incarnations; /* FO_EV_NEW_INCARNATION carried out */
	uint64_t vms_destroyed;
	uint64_t plans_chosen, no_room, handed_back;
	uint64_t epoch_reused; /* an epoch reused that only copies on down hosts had */
};

/* One (dead, incarnation, round) as first learned by any core. */
struct fw_chosen {
	struct fo_instance_id inst;
	struct fo_plan plan;
	int first_node;     /* who learned it first */
	uint64_t chosen_at; /* first learned */
	int learners;       /* how many CHOSEN events matched it */
};

struct fw *fw_new(const struct fw_opts *o);
void fw_free(struct fw *w);
uint64_t fw_seed(const struct fw *w);
int fw_size(const struct fw *w);
uint64_t fw_now(const struct fw *w); /* the world's time (ms), as the log shows it */
/* Host i's clock: what its cores get as `now` (pass this, not fw_now(), to
 * fo_quorate() and the like). */
uint64_t fw_local_now(const struct fw *w, int i);
const char *fw_name(const struct fw *w, int i);
int fw_index(const struct fw *w, const char *name);
uint64_t fw_rand(struct fw *w); /* the world's PRNG, for scenarios */

/* Set-up, before fw_start(). Default capacity: 32 CPUs, 128 GiB, overcommit 1. */
void fw_set_host(struct fw *w, int i, uint32_t cpus, uint64_t mem_kib, bool witness);
void fw_set_base_load(struct fw *w, int i, uint32_t vcpus, uint64_t mem_kib); /* non-HA */
/* Adds an HA VM running on `host` at epoch 1; returns its index. */
int fw_add_vm(struct fw *w, int host, const char *name, int32_t priority, uint32_t vcpus,
              uint64_t mem_kib, const char *group);
void fw_start(struct fw *w);

/* Clock. run_until evaluates pred after every step; returns the ms it took,
 * or -1 with the clock at the deadline. */
typedef bool (*fw_pred_f)(struct fw *w, void *arg);
void fw_run_for(struct fw *w, uint64_t ms);
int64_t fw_run_until(struct fw *w, fw_pred_f pred, void *arg, uint64_t timeout_ms);
/* A call at virtual time `at` (scheduled faults). */
typedef void (*fw_call_f)(struct fw *w, int a, int b, void *arg);
void fw_at(struct fw *w, uint64_t at, fw_call_f fn, int a, int b, void *arg);

/* Faults. */
void fw_crash_host(struct fw *w, int i);    /* hypervisor, VMs and agent */
void fw_crash_agent(struct fw *w, int i);   /* agent only */
void fw_restart_agent(struct fw *w, int i); /* new cores (host must be up) */
void fw_boot_host(struct fw *w, int i);     /* a crashed host boots: no VM runs, its
                                              definitions are kept (stopped) */
/* ... and with keep_definitions false, its VM definitions are gone too
 * (a reinstalled host, or the test driver's XML without them). */
void fw_boot_host_ex(struct fw *w, int i, bool keep_definitions);
void fw_pause(struct fw *w, int i);
void fw_resume(struct fw *w, int i);
/* Network, for SWIM and failover messages alike (a,b: -1 = every host). */
void fw_partition(struct fw *w, const int *group);
void fw_heal(struct fw *w); /* partition and blocks; loss stays */
/* Operators ask for no more live migrations (opts.migrate_every_ms); those
 * under way finish. */
void fw_operators_rest(struct fw *w);
void fw_block(struct fw *w, int a, int b);
void fw_unblock(struct fw *w, int a, int b);
void fw_set_loss(struct fw *w, int a, int b, double p);
bool fw_link_open(const struct fw *w, int a, int b); /* not partitioned or blocked */
/* The operator runs "force-leave target" on host `at` (fo_force_leave);
 * from then on O2 counts majorities without the target, until it is back
 * and quorate (a majority holds it a voter again). Returns
 * fo_force_leave()'s result, -1 if `at` cannot run it. */
int fw_force_leave(struct fw *w, int at, int target);
/* Starts on host i always fail (a broken libvirt). */
void fw_refuse_starts(struct fw *w, int i, bool on);

/* Hooks. The send hook sees every failover message before the network
 * does; returning false drops it. The event hook sees every core event
 * after the world has carried it out. */
typedef bool (*fw_send_hook_f)(struct fw *w, int from, int to, const struct fo_msg *m, void *arg);
typedef void (*fw_event_hook_f)(struct fw *w, int node, const struct fo_event *e, void *arg);
void fw_set_send_hook(struct fw *w, fw_send_hook_f fn, void *arg);
void fw_set_event_hook(struct fw *w, fw_event_hook_f fn, void *arg);
/* Hands host i's SWIM core a message as if it had arrived (a forger's: the
 * scenario builds it), then carries out what the core says, as a delivery
 * does. Nothing if the agent is down or frozen. */
void fw_inject_swim(struct fw *w, int i, const struct swim_msg *m);
/* Signed ALIVE claims in the simulator: a deterministic fake of the
 * daemon's signatures (8 bytes, a keyed hash of name and incarnation).
 * fw_opts_signed_alive sets both callbacks in o->swim; a scenario forges a
 * member's valid proof by calling fw_fake_alive_sign itself (as only that
 * member could, in the real cluster). */
int fw_fake_alive_sign(void *arg, const char *name, uint64_t inc, uint8_t *out, size_t cap);
int fw_fake_alive_verify(void *arg, const char *name, uint64_t inc, const uint8_t *proof,
                         size_t len);
void fw_opts_signed_alive(struct fw_opts *o);

/* State of hosts. */
bool fw_host_up(const struct fw *w, int i); /* hypervisor up */
bool fw_agent_up(const struct fw *w, int i);
bool fw_frozen(const struct fw *w, int i);
struct fo *fw_fo(struct fw *w, int i); /* NULL while the agent is down */
struct swim *fw_swim(struct fw *w, int i);

/* VMs. copies: running copies on live hosts (what O1 bounds by 1). */
int fw_vm_count(const struct fw *w);
const char *fw_vm_uuid(const struct fw *w, int vm);
const char *fw_vm_name(const struct fw *w, int vm);
int fw_vm_home(const struct fw *w, int vm); /* host it was added on */
int32_t fw_vm_priority(const struct fw *w, int vm);
int fw_vm_index(const struct fw *w, const char *uuid);
int fw_vm_copies(const struct fw *w, int vm);
/* The host of its copy with the highest epoch (live or frozen), -1 none. */
int fw_vm_host(const struct fw *w, int vm, uint64_t *epoch);
bool fw_vm_on(const struct fw *w, int vm, int host);         /* running there */
bool fw_vm_defined_on(const struct fw *w, int vm, int host); /* defined (maybe stopped) */
/* The availability oracle: how many HA VMs should run and do not. Each runs
 * on exactly one live host, unless the hosts whose agent is up are not a
 * majority of the voting set (no quorate side), or no live host has room
 * for it (the placement over their real load, by priority, honouring
 * anti-affinity, finds none). `why` names the first. */
int fw_liveness(struct fw *w, char *why, size_t len);
/* No host holds a definition of the VM any more and no live agent counts
 * it owed: the cluster forgot it (fw_liveness leaves it out). */
bool fw_vm_forgotten(struct fw *w, int vm);
/* Capacity in the truth: what runs on host i, and whether it fits. */
void fw_host_load(const struct fw *w, int i, uint32_t *vcpus, uint64_t *mem_kib);
bool fw_host_fits(const struct fw *w, int i); /* load within capacity */

/* Log, registry, counters, oracle. */
size_t fw_log_count(const struct fw *w);
const struct fw_rec *fw_log_at(const struct fw *w, size_t k);
size_t fw_chosen_count(const struct fw *w);
const struct fw_chosen *fw_chosen_at(const struct fw *w, size_t k);
const struct fw_chosen *fw_chosen_find(const struct fw *w, const char *dead, uint64_t inc,
                                       uint32_t round);
const struct fw_counters *fw_counters(const struct fw *w);
const char *fw_violation(const struct fw *w); /* first violation, NULL if none */
/* Records a violation found by a scenario's own check. */
void fw_fail(struct fw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs the sweep part of the oracle now (O3 over every live core). */
void fw_check(struct fw *w);

#endif
