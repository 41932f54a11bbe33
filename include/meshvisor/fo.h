/*
 * fo.h — the failover core: quorum, self-fencing, and the recovery
 * plan for a dead host's HA VMs chosen by single-decree consensus. No I/O.
 *
 * Driven like the other cores (swim.h, nstate.h, mig.h): messages and
 * timer expiries go in with `now` (ms, any monotonic origin), messages to
 * send come out of fo_pop_output(), events and actions out of
 * fo_pop_event(), and the timer is re-armed at fo_next_deadline(). It never
 * reads a clock, draws randomness or touches a socket. The algorithm and
 * the safety argument are in agent/core/fo.c.
 *
 * What the caller feeds in:
 *   - membership: fo_member() for every SWIM state change (including its
 *     own name at start, ALIVE); the voting set is every member ever fed
 *     that has not LEFT and has not been force-left (fo_force_leave);
 *   - the cluster's capacity and each host's HA VMs whose desired state is
 *     running, active or stopped (fo_set_hosts), from gossiped node state,
 *     with the incarnation each host published it at; the core copies what
 *     it is given and keeps each host's last state of its previous
 *     incarnation (a host that restarted without its VMs, or fenced
 *     itself, owes them);
 *   - the outcome of the actions it asked for: fo_remote_fence_done(),
 *     fo_restart_done().
 *
 * Actions (events the caller MUST carry out, in the order popped, before it
 * feeds anything else to the core, and before it sends the messages popped
 * with them — pop and carry out every event, then send: a FENCED or an
 * ACCEPTED may follow a destroy and vouch for it):
 *   FO_EV_FENCE_SELF     destroy every local HA VM now (quorum lost for
 *                        fence_after_ms, or told we were failed over);
 *   FO_EV_FENCE_VMS      destroy these local VMs (a chosen plan restarts
 *                        them elsewhere with a higher epoch); with all_ha,
 *                        every local HA VM too, whatever the list says (a
 *                        fence order for the incarnation we live in);
 *   FO_EV_REMOTE_FENCE   try to destroy the dead host's HA VMs through its
 *                        own hypervisor; report with fo_remote_fence_done()
 *                        (asked by the coordinator of a first round and by
 *                        every target of a chosen plan);
 *   FO_EV_RESTART        define and start this VM here with new_epoch;
 *                        report with fo_restart_done();
 *   FO_EV_NEW_INCARNATION raise this host's SWIM incarnation to at least
 *                        inst.incarnation (a self-fence ended the old one,
 *                        or HA VMs stopped here are owed a restart) and
 *                        call fo_set_incarnation() with it.
 * The core marks a fence done when it emits the action (the caller's
 * destroy is synchronous), so heartbeats sent afterwards report it.
 *
 * Ownership: messages and events may carry a plan (entries array). The
 * receiver of a popped message or event owns it and frees it with
 * fo_msg_clear() / fo_event_clear(). Input messages stay the caller's.
 */
#ifndef MESHVISOR_FO_H
#define MESHVISOR_FO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "placement.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FO_NAME_MAX 64     /* host and VM names, with the NUL */
#define FO_UUID_MAX 40     /* 36 characters + NUL */
#define FO_GROUP_MAX 64    /* anti-affinity group, with the NUL */
#define FO_TEXT_MAX 256    /* human text */
#define FO_PLAN_MAX 4096   /* entries in one plan (decoders reject more) */
#define FO_REMOVED_MAX 256 /* force-left members carried in a heartbeat */
#define FO_MOVE_ID_MAX 96  /* a live migration's id (its proposal id) */
#define FO_MOVES_MAX 32    /* live migrations announced in one heartbeat */

/* Membership as SWIM reports it. */
enum fo_member_state {
	FO_ALIVE = 0,
	FO_SUSPECT = 1,
	FO_DEAD = 2,
	FO_LEFT = 3,
};

/* One consensus instance: the recovery of `dead`'s incarnation
 * `incarnation`; round 0 is the first plan, round k > 0 re-places VMs that
 * targets of earlier rounds handed back. */
struct fo_instance_id {
	char dead[FO_NAME_MAX];
	uint64_t incarnation;
	uint32_t round;
};

/* Ballots order by (number, proposer name). number 0 is "none". */
struct fo_ballot {
	uint64_t number;
	char proposer[FO_NAME_MAX];
};

/* One VM of a plan. target "" means no host had room (reported, not
 * restarted). */
struct fo_plan_entry {
	char uuid[FO_UUID_MAX];
	char name[FO_NAME_MAX];
	char target[FO_NAME_MAX];
	int32_t priority;
	uint32_t vcpus;
	uint64_t memory_kib;
	uint64_t new_epoch;          /* the epoch it runs with after the restart */
	char group[FO_GROUP_MAX];    /* anti-affinity group ("" = none) */
	uint64_t target_incarnation; /* the target's SWIM incarnation when the plan
	                                was computed (0 = unknown). A target that has
	                                since been failed over at or after it
	                                (fenced_through >= this) never starts the
	                                entry: it hands it back, and the others may
	                                re-place entries of a failed-over target. */
	bool has_base;               /* base_epoch is set (plans of older agents lack it) */
	uint64_t base_epoch;         /* the epoch the VM moves from (< new_epoch): the
	                        placement it replaces. Without it, new_epoch - 1 -
	                        the round; an entry adopted into another round
	                        (RECOVERY) keeps its own. */
};

struct fo_plan {
	size_t n;
	struct fo_plan_entry *entries; /* sorted by priority, highest first,
	                                  then by name */
};

enum fo_msg_type {
	FO_HEARTBEAT = 0,   /* "am I alive to you?" sent to every voter each heartbeat_ms */
	FO_HB_ACK = 1,      /* yes: echoes stamp */
	FO_HB_NACK = 2,     /* no: you are dead to me, or a failover of you is
	                     pending (reason text); not an acknowledgement */
	FO_FENCE_ORDER = 3, /* no: a plan of yours was chosen: destroy these
	                       VMs (plan), then say so in fenced_through */
	FO_PREPARE = 4,     /* phase 1a */
	FO_PROMISE = 5,     /* phase 1b: with the highest accepted ballot and value */
	FO_REJECT = 6,      /* phase 1b/2b refusal: higher ballot promised, or the
	                     acceptor does not consider the host dead (reason) */
	FO_ACCEPT = 7,      /* phase 2a: ballot + plan */
	FO_ACCEPTED = 8,    /* phase 2b */
	FO_CHOSEN = 9,      /* plan chosen (sent to every voter): a claim the
	                     others learn only once a majority read proves it
	                     (READ / READ_REPLY) */
	FO_FENCED = 10,     /* the dead host's VMs are confirmed destroyed
	                     (through its libvirt, or by the host itself) */
	FO_RESTARTED = 11,  /* a target's outcome for one VM: ok, or handed back */
	FO_READ = 12,       /* a learner asks a voter what it accepted in (inst):
	                     a CHOSEN from another node is learned only once a
	                     majority answered the same ballot and value
	                     (agent/core/fo.c, CHOSEN NEEDS A MAJORITY'S PROOF);
	                     ballot: the one the CHOSEN claimed (for the record) */
	FO_READ_REPLY = 13, /* the answer, from the acceptor's state: has_plan set
	                     when it accepted a value (accepted_ballot, plan),
	                     has_ack_ago/ack_ago_ms as in ACCEPTED; ballot echoed */
};
#define FO_MSG_TYPES 14

struct fo_removed {
	char name[FO_NAME_MAX];
	uint64_t incarnation; /* removed for incarnations <= this */
};

/* A live migration of an HA VM, as its source announces it (MOVING, then
 * MOVED or STAYED) and as its target reports its outcome (MOVED: the VM
 * runs there; STAYED: it never will from this move). See MOVES in
 * agent/core/fo.c. */
enum fo_move_state {
	FO_MOVE_MOVING = 0,
	FO_MOVE_MOVED = 1,
	FO_MOVE_STAYED = 2,
};

struct fo_move {
	char id[FO_MOVE_ID_MAX];
	char uuid[FO_UUID_MAX];
	char source[FO_NAME_MAX];
	char target[FO_NAME_MAX];
	uint64_t epoch; /* the VM's epoch from the move on (0: not known) */
	enum fo_move_state state;
	uint64_t target_inc; /* MOVED, told by the target: its incarnation when
	                        the VM landed (0: not known) */
};

/* A placement held from an older recovery of the same host (PROMISE). */
struct fo_adopt {
	struct fo_plan_entry e;
	uint64_t incarnation; /* of that older instance */
	uint32_t round;
	struct fo_ballot ballot;
};

struct fo_msg {
	enum fo_msg_type type;
	char from[FO_NAME_MAX];
	char to[FO_NAME_MAX];
	/* HEARTBEAT, HB_ACK, HB_NACK, FENCE_ORDER */
	uint64_t incarnation;    /* HEARTBEAT: sender's SWIM incarnation */
	uint64_t stamp;          /* HEARTBEAT: sender's clock; echoed in replies */
	uint64_t fenced_through; /* HEARTBEAT: every failover of the sender with
	                            incarnation <= this is fenced by it (0 = none;
	                            incarnations start at 1) */
	size_t n_removed;        /* HEARTBEAT: force-left members, spread */
	struct fo_removed *removed;
	size_t n_moves; /* HEARTBEAT: live migrations the sender is the source
	                   of, or the target that reports the outcome;
	                   HB_ACK: moves the sender still holds MOVING that the
	                   acknowledged host is a party of: tell them again
	                   (MOVES, m6) */
	struct fo_move *moves;
	uint32_t voters; /* HEARTBEAT: the sender's voting-set size (0 = not
	                            told). A receiver whose own set is smaller (a
	                            restarted agent that never heard of a dead
	                            member) counts majorities over the larger
	                            size, so it can never decide with too few. */
	/* consensus and after: PREPARE .. RESTARTED, FENCE_ORDER */
	struct fo_instance_id inst;
	struct fo_ballot ballot;          /* PREPARE, PROMISE, REJECT (the higher
	                                     promised one, or zero), ACCEPT,
	                                     ACCEPTED, CHOSEN */
	struct fo_ballot accepted_ballot; /* PROMISE: zero if nothing accepted */
	bool has_plan;                    /* PROMISE (accepted value), ACCEPT,
	                                     CHOSEN, FENCE_ORDER */
	struct fo_plan plan;
	struct fo_plan superseded; /* PROMISE: entries of chosen plans of OTHER
	                                     incarnations of the same dead host that
	                                     this acceptor learned (uuid, new_epoch):
	                                     the proposer leaves those VMs out */
	size_t n_adopt;            /* PROMISE, first round: placements held
	                                     from OLDER incarnations' recoveries of the
	                                     same host, per VM (agent/core/fo.c,
	                                     RECOVERY): the proposer adopts, per VM,
	                                     the highest (incarnation, round, ballot) */
	struct fo_adopt *adopt;
	/* RESTARTED */
	char vm_uuid[FO_UUID_MAX];
	bool ok;                /* RESTARTED: running on `from`; false = handed back;
	                           HB_NACK, FENCE_ORDER: the sender itself
	                           accepted a non-empty value of a failover of
	                           the receiver above its fenced_through (the
	                           evidence fence orders need from a majority:
	                           agent/core/fo.c) */
	uint64_t took_ms;       /* RESTARTED: from plan learned to running */
	uint64_t age_ms;        /* PREPARE, ACCEPT: how long ago the proposer first
	                        heard of the instance; an acceptor whose core is
	                        younger than that refuses (it may have promised
	                        in a previous life and forgotten).
	                        HB_ACK: the acker's core age (a young, restarted
	                        acker's acks count only for young receivers),
	                        or FO_ACK_AGE_DURABLE for a journalled core */
	bool has_ack_ago;       /* ACCEPTED, CHOSEN, READ_REPLY: ack_ago_ms is set
	                        (false: this core never acked the dead host / no
	                        bound) */
	uint64_t ack_ago_ms;    /* ACCEPTED, READ_REPLY: how long ago (sender's
	                        clock, at sending) this acceptor last sent HB_ACK
	                        to the dead host, any incarnation, in this core's
	                        life. CHOSEN: how long ago (sender's clock) an
	                        upper bound of the last such ack of every acceptor
	                        of the choosing majority lies (for older peers: a
	                        learner takes its bound from its READ_REPLYs); a
	                        learner waits from there instead of from learning
	                        when that is sooner (see agent/core/fo.c) */
	char text[FO_TEXT_MAX]; /* HB_NACK, REJECT, RESTARTED(!ok), FENCED: why/how */
};

struct fo_config {
	char name[FO_NAME_MAX];       /* this host */
	uint64_t seed;                /* PRNG (jitter only) */
	bool witness;                 /* votes, never a restart target */
	bool expect_cluster;          /* started with seeds: not quorate while
	                               alone, until a majority acknowledges us */
	uint32_t heartbeat_ms;        /* heartbeat period (default 1000) */
	uint32_t quorate_ms;          /* quorate while a majority acknowledged a
	                               heartbeat sent within this (default 3000) */
	uint32_t fence_after_ms;      /* F: self-fence after this long without a
	                               majority's acknowledgement (default 10000) */
	uint32_t fence_margin_ms;     /* targets wait F + margin after learning a
	                               plan when no fence is confirmed, or
	                               quorate_ms + F + margin after the acceptors'
	                               last acknowledgement of the dead host if
	                               sooner; covers clock-rate drift over that
	                               span and must be >= quorate_ms (default 3000) */
	uint32_t coordinator_step_ms; /* the k-th ranked coordinator takes over
	                                 after k * step without a chosen plan
	                                 (default 3000) */
	uint32_t retry_ms;            /* consensus messages resent (default 500) */
	uint32_t max_parallel;        /* restarts at once per target (default 4) */
	uint32_t restart_attempts;    /* per VM before handing it back (default 3) */
	uint32_t restart_backoff_ms;  /* first retry delay, doubled (default 1000) */
	uint32_t max_rounds;          /* hand-back rounds per instance (default 3) */
	uint32_t history;             /* finished instances remembered (default 64) */
	uint32_t dead_grace_ms;       /* a coordinator proposes a first plan only after
	                               holding the host DEAD this long: a falsely
	                               declared host refutes meanwhile and keeps
	                               what it runs (default 1500; 0 = none) */
	uint32_t reconcile_ms;        /* an HA VM stopped on this healthy, quorate
	                               host (desired running, not restarting) is
	                               recovered through a new incarnation after
	                               this long; doubled while it stays down, up
	                               to 64x (default 5000) */
	uint32_t join_after_ms;       /* a member membership reports alive joins the
	                               voting set only once membership has held it
	                               alive this long and it has heartbeated or
	                               acknowledged us meanwhile (it runs a failover
	                               core that counts us); one reported dead
	                               before we ever saw it alive joins only
	                               through the journal (default 1000, at most
	                               F / 3; 0 = at once, on membership's word) */
};

/* A host as the caller's gossiped view has it, with its HA VMs. */
struct fo_vm {
	const char *uuid;
	const char *name;
	int32_t priority;
	uint32_t vcpus;
	uint64_t memory_kib;
	uint64_t epoch;
	const char *group; /* anti-affinity group, NULL or "" = none */
	bool running;      /* active on that host; false: defined there, stopped,
	                      and its desired state is running */
};

struct fo_host {
	struct placement_host cap; /* cap.name is the host name; alive/healthy/
	                              draining as gossiped (alive is ignored:
	                              membership comes from fo_member) */
	bool witness;
	bool quorate;           /* as the host published it */
	bool inventory_unknown; /* its libvirt has not answered since its agent
	                           started: `vms` says nothing about what runs */
	uint64_t incarnation;   /* the host's SWIM incarnation when it published
	                         this state (0 = unknown: taken as older than
	                         any instance) */
	bool legacy;            /* its agent is of a release that does not answer
	                           FO_READ (a rolling upgrade's older half) */
	size_t n_vms;
	const struct fo_vm *vms; /* HA VMs whose desired state is running:
	                            active (running = true) or defined here and
	                            stopped (running = false: owed a restart) */
};

enum fo_event_type {
	/* actions: see the top of this file */
	FO_EV_FENCE_SELF = 0,
	FO_EV_FENCE_VMS = 1,       /* inst, plan (the entries whose VMs to destroy) */
	FO_EV_REMOTE_FENCE = 2,    /* inst (dead host) */
	FO_EV_RESTART = 3,         /* inst, entry */
	FO_EV_NEW_INCARNATION = 4, /* inst.incarnation: the least new incarnation */
	/* information, for the log and `meshvisor events` */
	FO_EV_QUORUM_LOST = 10,
	FO_EV_QUORUM_REGAINED = 11,
	FO_EV_DETECTED = 12,        /* a voter's death noted: instance opened */
	FO_EV_PROPOSING = 13,       /* we coordinate: ballot */
	FO_EV_CHOSEN = 14,          /* plan chosen (text summarises) */
	FO_EV_FENCE_CONFIRMED = 15, /* text: how (libvirt, host itself, waited) */
	FO_EV_RESTARTED = 16,       /* entry, peer = where, took_ms */
	FO_EV_RESTART_FAILED = 17,  /* entry, text; retried or handed back */
	FO_EV_HANDED_BACK = 18,     /* entry: will be re-planned */
	FO_EV_NO_ROOM = 19,         /* entry: no host could take it */
	FO_EV_MEMBER_REMOVED = 20,  /* force-left (peer) */
	FO_EV_VM_DOWN = 21,         /* entry (uuid, name, epoch as new_epoch), peer =
	                              its host: an HA VM that should run runs
	                              nowhere alive (text: why) */
	FO_EV_VM_RECOVERED = 22,    /* entry, peer = where it runs, took_ms = down for */
	FO_EV_REFUSED = 23,         /* peer = a sender whose message (or part of one)
	                               this node refused to believe (text: what and
	                               why); at most one a second, with a count of
	                               those left unlogged */
};

struct fo_event {
	enum fo_event_type type;
	struct fo_instance_id inst;
	struct fo_plan plan;        /* FENCE_VMS, CHOSEN */
	struct fo_plan_entry entry; /* RESTART, RESTARTED, RESTART_FAILED,
	                                HANDED_BACK, NO_ROOM */
	char peer[FO_NAME_MAX];
	uint64_t took_ms;
	bool all_ha; /* FENCE_VMS: every local HA VM too, not only the plan's */
	char text[FO_TEXT_MAX];
};

/* `meshvisor failovers`: one instance as this node knows it. */
enum fo_phase {
	FO_PH_DETECTED = 0, /* no plan chosen yet */
	FO_PH_CHOSEN = 1,   /* waiting for the fence */
	FO_PH_FENCED = 2,   /* restarting */
	FO_PH_DONE = 3,     /* every entry restarted, handed back or without room */
};

struct fo_instance_info {
	struct fo_instance_id inst;
	enum fo_phase phase;
	char coordinator[FO_NAME_MAX]; /* the chosen ballot's proposer */
	uint64_t detected_at;          /* this node noted the death (0 = learned only) */
	uint64_t chosen_at;            /* this node learned the plan */
	uint64_t fenced_at;
	char fence_how[FO_TEXT_MAX];
	char cause[FO_TEXT_MAX]; /* why it opened: "declared dead", "restarted
	                            without 2 HA VMs", "fenced itself" ... */
	size_t n_vms, n_restarted, n_failed, n_no_room;
};

/* `meshvisor ha`: an HA VM whose desired state is running and that runs on
 * no alive host, as this node sees it. */
struct fo_owed {
	char uuid[FO_UUID_MAX];
	char name[FO_NAME_MAX];
	char host[FO_NAME_MAX]; /* where it last ran or is defined */
	uint64_t epoch;
	int32_t priority;
	uint64_t since;          /* down since (our clock) */
	char why[FO_TEXT_MAX];   /* "stopped on n2", "n3 is dead", ... */
	char doing[FO_TEXT_MAX]; /* what the cluster is doing about it */
};

struct fo_vm_outcome {
	struct fo_plan_entry entry;
	bool done;
	bool ok;
	uint64_t took_ms; /* from plan learned (by the target) to running */
	char text[FO_TEXT_MAX];
};

struct fo;

void fo_config_default(struct fo_config *cfg);
/* NULL on allocation failure or a bad config (empty name). */
struct fo *fo_new(const struct fo_config *cfg, uint64_t now);
void fo_free(struct fo *f);

/* Membership. The first report of a name adds it to the voting set; LEFT
 * removes it; DEAD opens the instance (name, incarnation) if the name is a
 * voter. Our own name may be fed (ignored apart from the voting set). */
void fo_member(struct fo *f, const char *name, enum fo_member_state st, uint64_t incarnation,
               uint64_t now);
/* Our own SWIM incarnation (sent in heartbeats). The first one set is this
 * core's life: entries of plans assigned to an earlier incarnation of this
 * host belong to a previous life of the agent and are never started here. */
void fo_set_incarnation(struct fo *f, uint64_t incarnation);
/* The agent restarted while HA VMs kept running here: the previous agent
 * was last quorate at `last_quorate_at` (this core's clock, same boot). The
 * self-fence clock runs from there, not from fo_new(): the others may be
 * failing this host over since and count on it. */
void fo_resume_fence_base(struct fo *f, uint64_t last_quorate_at);
/* A fence action (FENCE_SELF, FENCE_VMS) could not destroy everything (the
 * caller retries): until it says `false` again, heartbeats keep claiming
 * the fenced_through they claimed before, no FENCED is sent and this node
 * does not vote (ACCEPTED) on recoveries of its own incarnations — nobody
 * restarts these VMs on our word while they may still run. Messages
 * popped before the caller learned of the failure may vouch for it:
 * fo_msg_vouches_fence() says which to drop instead of sending (FENCED,
 * an ACCEPTED or a READ_REPLY with an accepted value of a recovery of
 * ours, and a hand-back: each has our VMs restarted elsewhere on our
 * word). */
void fo_fence_incomplete(struct fo *f, bool incomplete);
bool fo_msg_vouches_fence(const struct fo *f, const struct fo_msg *m);
/* Operator: remove a dead member from the voting set (spread to every
 * voter in heartbeats). -ENOENT unknown, -EBUSY not dead in our view,
 * -EINVAL ourselves. */
int fo_force_leave(struct fo *f, const char *name, uint64_t now);

/* Live migration of an HA VM (MOVES in agent/core/fo.c). Source:
 * announce the move (id: the migration's proposal id; epoch: the VM's
 * epoch from the move on) before the hypervisor starts it, and start it
 * only once fo_move_ready() — a majority acknowledged a heartbeat that
 * carried it, and we are quorate; then report the outcome. -EAGAIN: not
 * quorate or fenced (do not move it now); -EEXIST: id known; -ENOSPC:
 * too many moves; -EINVAL: bad arguments. */
int fo_move_begin(struct fo *f, const char *id, const char *uuid, const char *target,
                  uint64_t epoch, uint64_t now);
bool fo_move_ready(const struct fo *f, const char *id, uint64_t now);
/* moved: the VM runs on the target now; false: it stayed here (or was
 * destroyed here). -ENOENT: not a move of ours. */
int fo_move_end(struct fo *f, const char *id, bool moved, uint64_t now);
/* Target: an incoming move ended (landed: the VM runs here at `epoch`;
 * else its reservation ended without it, and no incoming copy is left). */
int fo_move_outcome(struct fo *f, const char *id, const char *uuid, const char *source, bool landed,
                    uint64_t epoch, uint64_t now);
/* Moves still MOVING that name us as source or target. A restarted agent
 * settles them from what libvirt runs: as target, fo_move_outcome (after
 * killing a previous life's incoming job); as source, fo_move_end(false)
 * when the VM runs here (a move left unsettled is settled by its target).
 * Returns how many; up to `cap` are copied to `out`. */
size_t fo_moves_unsettled(const struct fo *f, struct fo_move *out, size_t cap);
/* What we know of a move, by id (false: unknown). */
bool fo_move_find(const struct fo *f, const char *id, struct fo_move *out);

/* The gossiped view of every host (replaces the previous one). A host whose
 * incarnation rose since its last state leaves that state behind as "its
 * previous incarnation"; what it listed then and does not run now is owed
 * a restart (an instance opens, agent/core/fo.c RECOVERY). */
void fo_set_hosts(struct fo *f, const struct fo_host *hosts, size_t n, uint64_t now);

int fo_handle_message(struct fo *f, const struct fo_msg *m, uint64_t now);
int fo_handle_timer(struct fo *f, uint64_t now);
uint64_t fo_next_deadline(const struct fo *f); /* UINT64_MAX when idle */
bool fo_pop_output(struct fo *f, struct fo_msg *out);
bool fo_pop_event(struct fo *f, struct fo_event *out);
void fo_msg_clear(struct fo_msg *m);
void fo_event_clear(struct fo_event *e);

/* Outcomes of actions. */
void fo_remote_fence_done(struct fo *f, const struct fo_instance_id *inst, bool ok, const char *how,
                          uint64_t now);
void fo_restart_done(struct fo *f, const struct fo_instance_id *inst, const char *uuid, bool ok,
                     const char *why, uint64_t now);

/* State. */
bool fo_quorate(const struct fo *f, uint64_t now); /* may decide and start */
bool fo_fenced(const struct fo *f);                /* self-fenced and not quorate since */
/* When this core fences itself unless quorate before: its last quorate
 * moment (or its start, or the resumed base) + F; 0 once fenced, and
 * UINT64_MAX where it never fences (a cluster of one). The watchdog is
 * petted only before it (agent/daemon/ha.c). */
uint64_t fo_self_fence_at(const struct fo *f);
size_t fo_voters(const struct fo *f);   /* voting set size, self included */
size_t fo_majority(const struct fo *f); /* voters / 2 + 1 */
/* How many voters acknowledged us recently (self included). */
size_t fo_acknowledged(const struct fo *f, uint64_t now);
size_t fo_instance_count(const struct fo *f);
void fo_instance_at(const struct fo *f, size_t i, struct fo_instance_info *out);
size_t fo_instance_vm_count(const struct fo *f, size_t i);
void fo_instance_vm_at(const struct fo *f, size_t i, size_t j, struct fo_vm_outcome *out);
/* HA VMs that should run and run nowhere alive, as this node sees them. */
size_t fo_owed_count(const struct fo *f);
void fo_owed_at(const struct fo *f, size_t i, uint64_t now, struct fo_owed *out);
/* Learned plan of an instance, or false. The plan stays the core's. */
bool fo_chosen_plan(const struct fo *f, const struct fo_instance_id *inst,
                    const struct fo_plan **out);

/*
 * Planning (pure): places `vms` (sorted here by priority, highest first,
 * then name) on `hosts` other than `exclude_host` and witnesses, skipping
 * hosts not alive, unhealthy or draining, within each host's capacity
 * minus what earlier entries took and minus `outstanding` (VMs already
 * promised to hosts by other chosen plans not yet restarted, may be NULL),
 * never two VMs of one anti-affinity group on one host (nor on the host
 * already running a VM of that group). Picks the host with the most memory
 * left after placing (placement.h's rule). Entries that fit nowhere get
 * target "". Returns 0, or -ENOMEM. `out` must be freed with
 * fo_plan_clear(). new_epoch = epoch + 1 + round.
 */
int fo_plan_compute(const struct fo_host *hosts, size_t n_hosts, const char *exclude_host,
                    const struct fo_vm *vms, size_t n_vms, uint32_t round,
                    const struct fo_plan *outstanding, struct fo_plan *out);
/* The same, placing each VM on `prefer` (a host of `hosts`, not excluded)
 * whenever it fits there: a host recovering its own stopped VMs keeps
 * them. */
int fo_plan_compute_prefer(const struct fo_host *hosts, size_t n_hosts, const char *exclude_host,
                           const char *prefer, const struct fo_vm *vms, size_t n_vms,
                           uint32_t round, const struct fo_plan *outstanding, struct fo_plan *out);
void fo_plan_clear(struct fo_plan *p);
int fo_plan_copy(struct fo_plan *dst, const struct fo_plan *src);
bool fo_plan_equal(const struct fo_plan *a, const struct fo_plan *b);

/*
 * The journal: what a restarted core must not forget (agent/core/fo.c,
 * RESTARTS) — for each member, the highest incarnation of it this node
 * took part in failing over (it will not acknowledge that member until
 * the member reports itself fenced through it); its promises and accepted
 * values as an acceptor (so it may vote in instances older than its
 * restart); and the voting set.
 *
 * fo_journal_version() moves whenever the journal changes. The caller
 * stores fo_journal_encode()'s text durably (write, fsync, rename) BEFORE
 * it sends the messages it pops after the change. At start, before
 * anything else is fed, it hands the stored text to fo_journal_restore().
 *
 * Format 2 (the line "format 2"; a journal without it is format 1, which
 * has only failed-over lines), one record per line; blank lines and lines
 * starting with '#' are ignored:
 *     failed-over NAME INCARNATION
 *     forgotten NAME INCARNATION
 *     voter NAME
 *     promised NAME INCARNATION ROUND BALLOT PROPOSER
 *     accepted NAME INCARNATION ROUND BALLOT PROPOSER N
 *     entry =UUID =VM-NAME =TARGET PRIORITY VCPUS MEMORY-KIB EPOCH =GROUP
 *           TARGET-INCARNATION [base BASE-EPOCH]     (one line, N of them)
 *     given =UUID =TARGET EPOCH TARGET-INCARNATION [base BASE-EPOCH]
 * NAME, PROPOSER: 1..63 characters of [A-Za-z0-9._-] (node names);
 * numbers: decimals without sign or leading zeros (INCARNATION, BALLOT,
 * EPOCH >= 1; ROUND < the configured rounds; PRIORITY signed); '='
 * fields: the value with every byte outside [A-Za-z0-9._-] written %XX
 * (an empty value is a lone '='; TARGET empty: no room); BASE-EPOCH, the
 * epoch the VM moves from, is below EPOCH. "forgotten": the
 * instance was dropped from memory after it finished (its promises with
 * it: the core refuses to vote in it again). The N entry lines follow
 * their accepted line. "given": the highest epoch a plan this core learned
 * chosen gave the VM, and the placement (never re-placed from below it,
 * never started at it elsewhere, also after the instance left the
 * history). A name may appear more than once (the highest incarnation
 * counts).
 */
#define FO_JOURNAL_MAX_BYTES (4u << 20) /* restore refuses larger text */
#define FO_JOURNAL_MAX_ENTRIES 65536u
uint64_t fo_journal_version(const struct fo *f);
/* The caller restored the journal at start and every write since has
 * succeeded (true), or a write failed (false, until one succeeds). While
 * true, this core's HB_ACKs carry age_ms = FO_ACK_AGE_DURABLE: peers count
 * them even right after a restart (agent/core/fo.c, RESTARTS). */
#define FO_ACK_AGE_DURABLE (UINT64_C(1) << 62)
void fo_journal_set_durable(struct fo *f, bool durable);
/* The journal as text (NUL-terminated; *len excludes the NUL), to free().
 * 0 or -ENOMEM. */
int fo_journal_encode(const struct fo *f, char **out, size_t *len);
/* Parses `text` and, only if every line is valid, applies it. Returns the
 * number of entries, or -EINVAL with a message naming the line in err, or
 * -ENOMEM. Nothing is applied on error. */
int fo_journal_restore(struct fo *f, const char *text, size_t len, char *err, size_t errlen);

const char *fo_msg_type_name(enum fo_msg_type t);
const char *fo_event_name(enum fo_event_type t);
const char *fo_phase_name(enum fo_phase p);

#ifdef __cplusplus
}
#endif
#endif
