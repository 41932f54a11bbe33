/*
 * fo.c — the failover core (prefix fo_): quorum, self-fencing and the
 * recovery plan of a dead host's HA VMs, chosen by single-decree Paxos, as
 * a pure state machine (contract
 * in meshvisor/fo.h; the algorithm and invariants below).
 *
 * The algorithm and its full safety argument: docs/failover-protocol.md
 * (section names in CAPITALS below and in the code's comments refer to it).
 *
 * ALGORITHM
 * When a host X dies, the survivors restart X's HA VMs elsewhere:
 *   1. Heartbeat quorum. Every heartbeat_ms each node sends HEARTBEAT
 *      {stamp, incarnation, fenced_through, removed, voters} to every voter
 *      (and candidate); acks echo the stamp. A node is quorate while a
 *      majority of the voting set (every member this node admitted —
 *      membership held it alive for join_after_ms and it heartbeated or
 *      acked us meanwhile — not left or force-left; THE VOTING SET) acked
 *      a heartbeat sent within quorate_ms, and destroys its own HA VMs
 *      (self-fence) after F = fence_after_ms without. Only its own clock
 *      is involved. A node that opened a failover of X with a non-empty
 *      value stops acking X until X reports itself fenced for it.
 *   2. Consensus. One single-decree Paxos instance per (dead host,
 *      incarnation, round) chooses the plan (VM -> target, new epoch).
 *      Coordinators are ranked by a hash; acceptors vote only once the
 *      incarnation is over to them. Round 0 places what the incarnation
 *      owes (RECOVERY); later rounds re-place hand-backs. A node learns a
 *      plan from its own proposal's majority of ACCEPTEDs, or from a
 *      majority read: another's CHOSEN is a claim that makes it ask every
 *      voter what it accepted there (READ), and the value a majority
 *      answers at one ballot is learned (CHOSEN NEEDS A MAJORITY'S
 *      PROOF).
 *   3. Fence, then restart. A target starts an entry only once X's copies
 *      are known destroyed, on evidence it checks itself: its own remote
 *      fence through X's libvirt (every target asks for one, as does the
 *      first round's coordinator), X's own FENCED or heartbeat
 *      (fenced_through), or the timed wait for X's self-fence (F + margin
 *      from learning the plan, or quorate_ms + F + margin from an upper
 *      bound of the accepting majority's last ack to X). Another voter's
 *      FENCED is recorded and believed by no one (WHY NO VM RUNS TWICE,
 *      whose word fences).
 *   4. Recovery. Every incarnation that is over (declared dead, fenced
 *      itself, refuted, restarted, removed) owes the HA VMs that should run
 *      and that no live host runs at that epoch or newer; a recovery
 *      instance re-places them, back on X when X is up and eligible.
 *   5. Moves (live migration of an HA VM, no consensus). The source X
 *      announces it in its heartbeats (MOVING, to T, at epoch e') and
 *      the hypervisor moves it only once a majority acknowledged a
 *      heartbeat that carried it (fo_move_ready); X, then T, say how it
 *      ended (MOVED, STAYED). While a move is MOVING or MOVED, no value of
 *      X's failovers may re-place the VM from an epoch <= e' (acceptors
 *      refuse it; their PROMISEs tell the proposer) and none of anyone's
 *      from below e': X's fence does not reach T. T's failover owes what
 *      landed on it; a move whose target was fenced since, or that stayed,
 *      is X's again, re-placed above e'.
 *
 * INVARIANTS
 *   - Never two plans for one VM at one epoch: Paxos within an instance;
 *     across instances an acceptor refuses a value that clashes with one
 *     it accepted or learned chosen elsewhere (rule (e)), or that
 *     re-places a VM from an epoch a chosen plan gave, live, to another
 *     host, and epochs only grow (WHY THERE ARE NEVER TWO PLANS FOR ONE
 *     VM).
 *   - Never twice: every new copy comes from a chosen plan, started only
 *     after that plan's instance is fenced; the timed fence outlasts X's
 *     self-fence (or watchdog) on every clock within the rate bound (WHY
 *     NO VM RUNS TWICE). A target never starts an entry given to an
 *     incarnation of its own that was failed over since, nor before a
 *     majority acknowledged a heartbeat it sent after learning the plan.
 *   - A moved VM is re-placed only by an instance whose fence covers where
 *     it may run: an announced move was acknowledged by a majority, and
 *     any majority that chooses a plan shares an acceptor with it, which
 *     knew the move before it could accept (it acknowledged X, so it had
 *     accepted no value of X's failover) (MOVES). A move that stayed is
 *     owed again only by a failover of the incarnation the source
 *     announced it at, or a later one (m4, move_after): an older one was
 *     decided before the copy existed there, and re-placing it from the
 *     move's epoch slipped past rule (e) (then only "above the base")
 *     while the failover of the right incarnation had restarted it
 *     elsewhere at that epoch (seed 3258347705468433741).
 *   - An HA VM that should run runs again once faults heal: whatever an
 *     over incarnation owes is re-placed by some instance, hand-backs and
 *     parked VMs are retried (RECOVERY; the simulator's liveness oracle).
 *   - Nothing destructive on one peer's word: only a voter's messages
 *     count (a stranger's heartbeat is answered, nothing else is taken),
 *     and a fence order for us (FENCE_ORDER, or a plan chosen for the
 *     incarnation we live in) is obeyed only once a majority of voters
 *     told us they withhold their acks from us for a non-empty value of
 *     a failover of ours (HB_NACK or FENCE_ORDER with ok: an acceptor
 *     that accepted one, or a voter that learned one chosen) — the
 *     majority that would make us fence ourselves at q + F anyway — or once we
 *     fenced ourselves; else it is held (NOTHING DESTRUCTIVE ON ONE
 *     PEER'S WORD). Obeyed for the incarnation we live in, it destroys
 *     every HA VM here, not the list it carries (one voter's word: a
 *     shorter list would leave copies our FENCED claims destroyed) —
 *     what our self-fence does at q + F anyway. A FENCED is believed
 *     only from the host it is about (its name is its certificate's):
 *     a lying voter's starts nothing; the timed wait still ends every
 *     wait, so nothing waits forever. A plan is learned only with
 *     proof that a majority accepted it: our own count of ACCEPTEDs, or a majority of the
 *     voting set answering a READ with one (ballot, value) from their
 *     acceptor state (never from what they learned). The ack bound of
 *     the timed fence comes from those answers too, never from the
 *     claim. Reads are bounded (FO_READS_MAX, FO_READS_PER_SENDER),
 *     retried with backoff and given up FO_READ_FOR_MS after the last
 *     claim; a claim the answers rule out is refused once. An acceptor
 *     that learned a round stays its acceptor for the chosen value (it
 *     promises, reporting that value, and accepts only it), so acceptors
 *     split between two ballots of it are joined again at a higher one;
 *     a proposer free to choose takes a value its read's answers report,
 *     and without a durable journal first waits for every live voter's
 *     promise (CHOSEN NEEDS A MAJORITY'S PROOF).
 *   - Numbers peers report are bounded before they count: a heartbeat's
 *     voting-set size above twice ours plus 8 is refused (FO_EV_REFUSED),
 *     else one lie would make every majority unreachable (THE VOTING SET).
 *   - The caller carries out every event (destroys) and stores the journal
 *     before it sends any message popped after them (EVENTS BEFORE
 *     MESSAGES); the journal keeps whom this node stopped acking and its
 *     acceptor state across restarts (RESTARTS). An action event (fence,
 *     restart, new incarnation) that cannot be queued (no memory) aborts
 *     the process instead of being dropped: the watchdog takes over, as
 *     for a dead agent (push_event).
 *
 * Costs: members are an array with a name index (name_index.h); a heartbeat is O(1)
 * apart from the removed list; an ack is O(1) unless it moves the quorum
 * stamp (then O(N), quickselect); consensus scans the few open instances.
 */
#include "meshvisor/fo.h"
#include "arena.h"
#include "name_index.h"
#include "names.h"
#include "prng.h"
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Incarnations, ballots and epochs in a peer's message above this are
 * refused (validate): honest ones grow by one per step and never get near;
 * a "+ 1" on a larger one could wrap. */
#define FO_NUM_MAX (UINT64_C(1) << 62)
/* Undrained outputs/events kept (the oldest are kept, the newest dropped). */
#define FO_QUEUE_MAX (1u << 20)
/* Instances remembered at most (finished ones are dropped first). */
#define FO_INST_MAX 4096
/* Rounds per instance at most, whatever the config says. */
#define FO_ROUNDS_MAX 16

enum ent_state { E_WAIT = 0, E_OK, E_HANDED, E_NOROOM };

struct ent {
	uint8_t st;
	uint64_t nudged_inc; /* its target's incarnation we last re-sent the plan to */
	uint64_t nudged_at;  /* when we last (re-)sent the plan to its target */
	uint32_t attempts;
	bool running;      /* RESTART emitted here, outcome pending */
	bool told;         /* self target: we broadcast its outcome (RESTARTED ok,
	                      or a hand-back); resent to peers still waiting */
	bool deferred;     /* self target: another instance's live placement
	                      holds the VM (schedule_restarts), not started now */
	uint64_t next_try; /* self target: earliest (re)try */
	uint64_t took_ms;
	uint64_t ok_at; /* when it was learned running (E_OK), for outstanding_entry */
	char text[FO_TEXT_MAX];
};

struct round {
	/* acceptor */
	struct fo_ballot promised;
	struct fo_ballot acc_ballot;
	bool has_acc;
	struct fo_plan acc_plan;
	/* learner */
	bool chosen;
	struct fo_ballot chosen_ballot;
	struct fo_plan plan;
	uint64_t chosen_at;
	bool has_bound;     /* ack_bound is known (see WHY NO VM RUNS TWICE) */
	uint64_t ack_bound; /* upper bound (our clock) of the last ack to the
	                       dead host by every acceptor of a choosing majority */
	struct ent *ents;
	/* proposer */
	int pphase; /* 0 idle, 1 prepare, 2 accept, 3 backing off */
	struct fo_ballot ballot;
	uint64_t max_n;
	uint8_t *resp; /* per member: 1 answered (counted in n_resp), 2 refused
	                  our value in phase 2 (counted in n_refused) */
	size_t resp_cap, n_resp, n_refused;
	bool has_best;
	struct fo_ballot best_ballot;
	struct fo_plan best_plan;
	struct fo_plan value;
	struct fo_plan sup; /* superseded entries the promises reported */
	bool acc_unbounded; /* phase 2: an ACCEPTED counted came without an ack age */
	uint64_t acc_bound; /* phase 2: max over counted ACCEPTEDs of receipt - ack age */
	uint64_t next_retry;
	uint32_t preempted;       /* proposals in a row that a higher ballot cut off */
	uint64_t maj_at;          /* phase 1: when a majority had promised while the
	                    highest accepted value's fate hung on the others (+1) */
	bool own_val;             /* phase 2: the value is ours (no accepted one adopted) */
	char (*xvm)[FO_UUID_MAX]; /* VMs acceptors refused as placed by another
	                             instance: our own value leaves them out */
	size_t n_xvm;
	struct fo_adopt *adopted; /* phase 1, round 0: per VM, the highest
	                             placement the promises hold from older
	                             recoveries of the host (RECOVERY) */
	size_t n_adopted;
	struct pvals *vals; /* phase 1: the accepted values the promises
	                             reported, each with how many reported it */
	size_t n_vals;
};

struct pvals {
	struct fo_plan p;
	uint32_t n;
};

struct pend {
	struct fo_plan_entry e;
	uint32_t failed_round;
	uint64_t added_at;
	uint32_t tries; /* rounds that placed it and got it back */
};

struct inst {
	char dead[FO_NAME_MAX];
	uint64_t inc;
	uint64_t seq;
	uint64_t detected_at, first_heard, work_since;
	uint64_t known_at; /* when this node opened the record */
	uint64_t heard_at; /* our own recovery: last PREPARE/ACCEPT about it */
	bool working;
	uint32_t work_round;
	uint64_t propose_at; /* UINT64_MAX: not our turn / nothing to do */
	uint64_t batch_at;   /* hand-backs wait for their batch until (0 none) */
	bool reclaimed;      /* entries on other plans targeted at us re-planned */
	bool fenced;
	bool fence_total; /* fenced by a means that covers every HA VM of the host */
	uint64_t fenced_at;
	char fence_how[FO_TEXT_MAX];
	uint64_t fence_wait_at; /* 0 none */
	bool fence_wait_bound;  /* fence_wait_at comes from an ack bound */
	bool remote_fence_sent;
	bool done;
	uint64_t done_at;
	char cause[FO_TEXT_MAX]; /* why it opened */
	struct round rounds[FO_ROUNDS_MAX];
	struct pend *pend;
	size_t n_pend, cap_pend;
	/* the smallest majority of the voting set this node saw while the
	 * record was open: another proposer may have chosen with a set that
	 * small (the free-value rule, promises_decide) */
	size_t maj_low;
	/* VMs no host could take (or that failed max_rounds times): retried
	 * when the view has room, while rounds remain (RECOVERY) */
	struct pend *parked;
	size_t n_parked, cap_parked;
	uint64_t park_retry_at; /* earliest next retry (0: none parked) */
	uint32_t park_backoff;
	/* the dead host's HA VMs as of this incarnation (its latest state at
	 * an incarnation <= inc), kept while the instance is open: the view
	 * moves on (the host restarts again, fences itself again) */
	struct hvm *base;
	size_t n_base;
	bool has_base;
	uint64_t superseded_by; /* a newer recovery of the host took over its
	                           undecided first round (0: none) */
};

/* One HA VM of a host's state, owned copy (a previous incarnation's). */
struct hvm {
	char uuid[FO_UUID_MAX];
	char name[FO_NAME_MAX];
	char group[FO_GROUP_MAX];
	int32_t priority;
	uint32_t vcpus;
	uint64_t memory_kib;
	uint64_t epoch;
	bool running;
};

/* An HA VM that runs nowhere alive, as we see it (`meshvisor ha`). */
struct owed {
	struct hvm vm;
	char host[FO_NAME_MAX];
	char why[FO_TEXT_MAX];
	uint64_t since;
	bool seen; /* mark and sweep */
};

struct mrec {
	char name[FO_NAME_MAX];
	enum fo_member_state st;
	uint64_t inc;
	uint64_t dead_max; /* highest incarnation reported DEAD, 0 none */
	uint64_t dead_at;  /* when membership last turned it DEAD (+1), 0 never */
	bool fed;          /* reported by fo_member (or self) */
	bool left;
	uint64_t left_inc;
	bool removed;
	uint64_t removed_inc;
	uint64_t removed_at; /* when we learned of the removal (+1) */
	bool voter;
	bool admitted;            /* in the voting set by our decision (THE VOTING
	                            SET): never undone (left and removed members
	                            leave it by those flags) */
	uint64_t alive_since;     /* membership holds it alive since (+1), 0 not */
	bool heard_alive;         /* it heartbeated or acknowledged us since */
	bool restored_voter;      /* a voter per the journal of a previous life, not
	                        (yet) reported by membership: it still counts */
	uint64_t ack;             /* highest echoed stamp + 1, 0 none */
	uint64_t acked_at;        /* when we last sent it HB_ACK (+1), any
	                            incarnation, this core's life; 0 never */
	uint64_t fenced_through;  /* as its heartbeats report */
	uint64_t inst_max;        /* highest instance incarnation against it */
	uint32_t reported_voters; /* voting-set size its last heartbeat told */
	uint64_t hb_at;           /* when that heartbeat arrived (+1), 0 never */
	uint64_t hb_inc;          /* the incarnation its last heartbeat told */
	uint64_t hb_stamp;        /* that heartbeat's stamp (the sender's clock) */
	uint64_t withheld_at;     /* when it last told us (HB_NACK or FENCE_ORDER
	                            with ok) that it accepted a non-empty value of
	                            a failover of ours, so withholds its acks (+1) */
	uint64_t withheld_inc;    /* the incarnation of ours it named then */
	uint64_t shared_at;       /* when we last told it every plan we know chosen
	                            (share_chosen), 0 never */
	uint64_t forgot_max;      /* highest incarnation whose finished instance
	                            was dropped from history: never reopened */
	uint64_t restored_max;    /* inst_max as the journal of a previous life
	                            of this core had it (see RESTARTS), 0 none */
	uint32_t host_idx;        /* its state in f->hosts + 1, 0 none */
	/* its last state of a previous incarnation (RECOVERY) */
	bool has_prev;
	bool prev_checked; /* owed VMs of it looked for */
	uint64_t prev_inc;
	struct hvm *prev;
	size_t n_prev;
};

struct fo {
	struct fo_config cfg;
	uint32_t n_rounds;
	uint64_t rng[4];
	uint64_t started, last_now;
	uint64_t incarnation;

	struct mrec *m; /* never removed: an index stays the member's */
	size_t n_m, cap_m;
	struct name_index m_by_name; /* name -> index in m */
	size_t self_idx;
	size_t n_voters;
	size_t eff_voters; /* max(n_voters, sizes recent heartbeats report) */
	size_t n_removed;

	uint64_t qstamp; /* k-th highest ack (stamp + 1) among other voters */
	bool quorate_flag;
	uint64_t quorate_since; /* when quorate_flag last turned true (+1) */
	bool fence_incomplete;  /* fo_fence_incomplete(): a destroy failed */
	uint64_t ft_told;       /* fenced_through our heartbeats last claimed */
	uint64_t lost_since;    /* not quorate since (when !quorate_flag) */
	bool lost_emitted;      /* QUORUM_LOST told; REGAINED owed */
	bool fenced;
	uint64_t fenced_through;
	uint64_t seen_against;
	uint64_t next_hb;
	uint64_t restart_wake;
	/* an entry waits for a majority to acknowledge a heartbeat sent after
	 * we learned its plan (acked_since): new acks run schedule_restarts */
	bool wait_fresh_acks;
	size_t running;
	uint64_t *scratch;
	size_t scratch_cap;

	struct inst **inst;
	size_t n_inst, cap_inst;
	uint64_t inst_seq;

	struct mv_arena harena;
	struct fo_host *hosts;
	size_t n_hosts;

	struct mv_queue outq; /* struct fo_msg */
	struct mv_queue evq;  /* struct fo_event */

	uint64_t journal_version; /* bumped whenever an inst_max rises */
	bool journal_durable;     /* fo_journal_set_durable(): our acks count
	                             at any core age */
	bool acceptor_journal;    /* the restored journal kept acceptor state
	                             (format 2): we forgot no promise */
	bool journal_restored;    /* fo_journal_restore() was called */

	uint64_t first_inc; /* our incarnation when this core started */
	bool resumed;       /* fo_resume_fence_base() */
	uint64_t resume_base;
	uint64_t inc_wanted; /* NEW_INCARNATION last asked for */
	/* our own stopped HA VMs (RECOVERY: the owner's new incarnation) */
	uint64_t owed_here_since; /* 0: none owed here */
	uint64_t bump_at;         /* when we ask for a new incarnation for them */
	uint32_t bump_backoff;
	/* HA VMs down cluster-wide, as we see them */
	struct owed *owed;
	size_t n_owed, cap_owed;
	/* per VM, the placement with the highest epoch a plan we learned chosen
	 * gave it: kept when the instance is dropped from the history, so that
	 * no value is built, and nothing started, from an epoch below it
	 * (never removed; FO_GIVEN_LIMIT at most) */
	struct given *given;
	size_t n_given, cap_given;
	struct name_index given_by_uuid; /* uuid -> index in given */
	/* live migrations we know of (MOVES), by id */
	struct move *moves;
	size_t n_moves, cap_moves;
	uint64_t last_hb_stamp; /* the stamp of our last heartbeat round */
	uint64_t refused_at;    /* when the last REFUSED event was pushed (+1) */
	uint32_t refused_quiet; /* refusals not logged since (rate limit) */
	/* a fence order for us (a FENCE_ORDER, or a plan chosen for the
	 * incarnation we live in) not obeyed yet: too few voters vouch that
	 * they accepted a failover of ours (NOTHING DESTRUCTIVE ON ONE PEER'S
	 * WORD) */
	bool order_held;
	struct fo_instance_id order_inst;
	bool order_has_plan;
	struct fo_plan order_plan; /* owned */
	char order_from[FO_NAME_MAX];
	uint64_t order_at;
	/* CHOSENs from other nodes not proven yet: the majority reads under
	 * way (CHOSEN NEEDS A MAJORITY'S PROOF) */
	struct pread *reads;
	size_t n_reads, cap_reads;
};

/* One voter's answer to a majority read (FO_READ_REPLY). */
struct pans {
	uint32_t idx; /* its member index */
	bool has;     /* it accepted a value (b, p) */
	struct fo_ballot b;
	struct fo_plan p;  /* owned */
	bool has_ack;      /* last_ack is known */
	uint64_t last_ack; /* upper bound (our clock) of its last ack to the host */
};

/* A CHOSEN for (dead, inc, round) we cannot prove yet: we ask every voter
 * what it accepted there, and learn once a majority answers one ballot
 * and value. */
struct pread {
	char dead[FO_NAME_MAX];
	uint64_t inc;
	uint32_t round;
	uint32_t claimant;        /* member index of the node whose CHOSEN opened it */
	struct fo_ballot claimed; /* the latest CHOSEN's ballot (for the record) */
	uint64_t claim_at;        /* the latest CHOSEN for it */
	uint64_t next_ask;        /* when the READs go again */
	uint32_t asks;
	bool logged; /* refused once already (a majority answered otherwise) */
	struct pans *ans;
	size_t n_ans;
};

/* A live migration (MOVES). */
struct move {
	struct fo_move m;
	bool announce;           /* ours to tell: we are its source, or its
	                            target reporting the outcome */
	uint64_t first_stamp;    /* source: the first heartbeat stamp that
	                            carried it (0: none yet) */
	uint64_t announce_until; /* told in our heartbeats until then (a
	                            MOVING move of ours: as long as it lasts) */
	uint64_t learned;        /* when its state last changed here */
	uint64_t heard;          /* when we first heard of it */
	uint64_t src_inc;        /* the source's incarnation when it told us
	                            (its own heartbeat, or ours: 0 not known —
	                            heard from the target only, or restored) */
	/* the VM as a state we held listed it when we heard of the move (the
	 * target may die before any state of its shows it) */
	struct hvm info;
	bool has_info;
};
#define FO_MOVES_KNOWN_MAX 4096    /* (journalled) */
#define FO_MOVE_KEEP_MS 3600000ull /* a STAYED move is forgotten after an hour */

struct given {
	char uuid[FO_UUID_MAX];
	char target[FO_NAME_MAX];
	uint64_t epoch, base, target_incarnation;
	bool has_base;
};
#define FO_GIVEN_MAX 16384 /* (journalled: about 1.5 MiB of it at most) */
/* Records kept at most: 3/4 of 2 * FO_GIVEN_MAX, what the open-addressed
 * table this array replaced could hold; at the limit given_note changes
 * nothing, not even the epoch of a VM already recorded (as that table). */
#define FO_GIVEN_LIMIT (FO_GIVEN_MAX * 2 / 4 * 3)

/* Forward declarations (the file reads top-down by topic). */
static void ask_incarnation(struct fo *f, uint64_t want, const char *why);
static void pread_free(struct pread *p);
static size_t pread_find(const struct fo *f, const struct fo_instance_id *id);
struct inst;
static bool read_hint(const struct fo *f, const struct inst *in, uint32_t round,
                      struct fo_plan *out);
static void park(struct fo *f, struct inst *in, const struct fo_plan_entry *e, uint32_t r,
                 uint32_t tries, const char *why, bool report);
static const struct inst *placement_started(const struct fo *f, const struct inst *in,
                                            const struct fo_plan_entry *pe, bool *in_flight);
static bool excluded_vm(const struct round *rd, const char *uuid);
static const char *accept_clash(const struct fo *f, const struct inst *in, uint32_t round,
                                const struct fo_plan *plan, char *buf, size_t len,
                                const char **vm_uuid);
static bool places_above(const struct fo_plan *p, const char *uuid, uint64_t base);
static uint64_t entry_base(const struct fo_plan_entry *pe, uint32_t round);
static bool has_placement(const struct fo_plan *p, const struct fo_plan_entry *pe);
static bool vm_in_care(const struct fo *f, const char *uuid);
static bool moved_on(const struct fo *f, const struct fo_plan_entry *pe);
static bool pend_gone_by(const struct fo *f, const struct inst *in, const struct pend *pd);
static bool runs_besides_handed_back(const struct fo *f, const struct fo_plan_entry *e,
                                     uint64_t base);
static bool given_above(const struct fo *f, const char *uuid, uint64_t epoch);
static struct given *given_find(const struct fo *f, const char *uuid);
static bool pending_elsewhere(const struct fo *f, const struct inst *in, const char *uuid,
                              uint64_t epoch);
static const struct move *move_away(const struct fo *f, const char *uuid, const char *from,
                                    uint64_t epoch);
static uint64_t move_stayed_epoch(const struct fo *f, const char *uuid, const char *from,
                                  uint64_t listed);
struct move;
static bool move_holds_away(const struct fo *f, const struct move *r, const char *from);
static bool move_epoch_floor(const struct fo *f, const struct move *r, const char *from);
static bool move_target_gone(const struct fo *f, const struct move *r);
static bool move_target_removed(const struct fo *f, const struct move *r);
static bool move_doubt_on_target(const struct fo *f, const struct move *r, uint64_t inc);
static void moves_retell(struct fo *f, uint64_t now);
static bool vm_info_any(const struct fo *f, const char *uuid, struct fo_vm *out);
static bool kept_by_newer(const struct fo_host *newer, const char *uuid, uint64_t epoch);
static void given_note(struct fo *f, const struct fo_plan_entry *pe);
static bool epoch_taken(const struct fo *f, const struct fo_plan_entry *pe);
static bool inst_holds(const struct fo *f, const struct inst *in, const char *uuid);
static bool reclaimable(const struct fo *f, const struct inst *tin);
static bool own_state_known(const struct fo *f);
static bool runs_here(const struct fo *f, const char *uuid, uint64_t epoch);
static bool started_here(const struct fo *f, const struct inst *in, const struct round *rd,
                         size_t e);
static void promises_decide(struct fo *f, struct inst *in, uint32_t round, uint64_t now,
                            bool timed_out);
static void accepted_decide(struct fo *f, struct inst *in, uint32_t round, uint64_t now);
static bool given_newest(const struct fo *f, const char *x, uint64_t inc,
                         const struct fo_plan_entry *pe);
static void detect_newer_deaths(struct fo *f, uint64_t now);
static uint64_t newest_known_inc(const struct fo *f, const struct mrec *r);
static bool target_fenced(const struct fo *f, const struct fo_plan_entry *pe);
static bool places_live(const struct fo *f, const struct round *rd, const char *uuid,
                        uint64_t base);
static bool placement_live_above(const struct fo *f, const struct round *rd, size_t k,
                                 const char *uuid, uint64_t base);
static bool places_live_not_handed(const struct fo *f, const struct inst *o, const struct round *rd,
                                   const char *uuid, uint64_t base);
static const struct inst *placement_handed_exact(const struct fo *f, const struct inst *in,
                                                 const struct fo_plan_entry *pe);
static bool re_placing(const struct fo *f, const struct inst *in, uint32_t round,
                       const struct fo_plan *op, const char *uuid);
static bool member_up(const struct fo *f, const struct mrec *r);
static bool beating(const struct fo *f, const struct mrec *r);
static bool known_after(const struct mrec *r, uint64_t inc);
static const char *running_elsewhere(const struct fo *f, const char *uuid, uint64_t above,
                                     const char *not_on, uint64_t *epoch);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void cpy(char *dst, size_t size, const char *src)
{
	if (!src)
		src = "";
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool terminated(const char *a, size_t size)
{
	return memchr(a, '\0', size) != NULL;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t nc = *cap ? *cap * 2 : 8;
	while (nc < need)
		nc *= 2;
	void *np = realloc(p, nc * elem);
	if (np)
		*cap = nc;
	return np;
}

static int ballot_cmp(const struct fo_ballot *a, const struct fo_ballot *b)
{
	if (a->number != b->number)
		return a->number < b->number ? -1 : 1;
	int c = strncmp(a->proposer, b->proposer, FO_NAME_MAX);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}

/* FNV-1a of "dead/inc/" (the prefix every voter's rank hash shares). */
static uint64_t rank_prefix(const char *dead, uint64_t inc)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "/%" PRIu64 "/", inc);
	return mv_fnv1a64(mv_fnv1a64(MV_FNV1A64_OFFSET, dead), buf);
}

static uint64_t rank_hash(uint64_t prefix, const char *name)
{
	return mv_mix64(mv_fnv1a64(prefix, name));
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ------------------------------------------------------------------------ */
/* Plans                                                                    */

void fo_plan_clear(struct fo_plan *p)
{
	if (!p)
		return;
	free(p->entries);
	p->entries = NULL;
	p->n = 0;
}

int fo_plan_copy(struct fo_plan *dst, const struct fo_plan *src)
{
	dst->n = 0;
	dst->entries = NULL;
	if (!src || src->n == 0 || !src->entries)
		return 0;
	dst->entries = malloc(src->n * sizeof(*dst->entries));
	if (!dst->entries)
		return -ENOMEM;
	memcpy(dst->entries, src->entries, src->n * sizeof(*dst->entries));
	dst->n = src->n;
	return 0;
}

static bool entry_equal(const struct fo_plan_entry *a, const struct fo_plan_entry *b)
{
	return strcmp(a->uuid, b->uuid) == 0 && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->target, b->target) == 0 && a->priority == b->priority &&
	       a->vcpus == b->vcpus && a->memory_kib == b->memory_kib &&
	       a->new_epoch == b->new_epoch && strcmp(a->group, b->group) == 0 &&
	       a->has_base == b->has_base && (!a->has_base || a->base_epoch == b->base_epoch);
}

bool fo_plan_equal(const struct fo_plan *a, const struct fo_plan *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!entry_equal(&a->entries[i], &b->entries[i]))
			return false;
	return true;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

struct vm_sort {
	const struct fo_vm *vm;
};

static int vm_order(const void *pa, const void *pb)
{
	const struct fo_vm *a = ((const struct vm_sort *)pa)->vm;
	const struct fo_vm *b = ((const struct vm_sort *)pb)->vm;
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	int c = strcmp(nz(a->name), nz(b->name));
	if (c)
		return c;
	return strcmp(nz(a->uuid), nz(b->uuid));
}

static int vm_cmp(const void *a, const void *b)
{
	struct vm_sort x = {.vm = a}, y = {.vm = b};
	return vm_order(&x, &y);
}

struct cand {
	struct placement_host cap;
	size_t host; /* index into hosts */
	const char **groups;
	size_t n_groups, cap_groups;
};

static bool cand_has_group(const struct cand *c, const char *g)
{
	for (size_t i = 0; i < c->n_groups; i++)
		if (strcmp(c->groups[i], g) == 0)
			return true;
	return false;
}

static int cand_add_group(struct cand *c, const char *g)
{
	if (!g || !g[0] || cand_has_group(c, g))
		return 0;
	const char **ng = grow(c->groups, &c->cap_groups, c->n_groups + 1, sizeof(*ng));
	if (!ng)
		return -ENOMEM;
	c->groups = ng;
	c->groups[c->n_groups++] = g;
	return 0;
}

int fo_plan_compute(const struct fo_host *hosts, size_t n_hosts, const char *exclude_host,
                    const struct fo_vm *vms, size_t n_vms, uint32_t round,
                    const struct fo_plan *outstanding, struct fo_plan *out)
{
	return fo_plan_compute_prefer(hosts, n_hosts, exclude_host, NULL, vms, n_vms, round,
	                              outstanding, out);
}

int fo_plan_compute_prefer(const struct fo_host *hosts, size_t n_hosts, const char *exclude_host,
                           const char *prefer, const struct fo_vm *vms, size_t n_vms,
                           uint32_t round, const struct fo_plan *outstanding, struct fo_plan *out)
{
	out->n = 0;
	out->entries = NULL;
	if (n_vms == 0)
		return 0;
	int rc = -ENOMEM;
	struct vm_sort *order = malloc(n_vms * sizeof(*order));
	struct cand *cands = calloc(n_hosts ? n_hosts : 1, sizeof(*cands));
	struct placement_host *pick = malloc((n_hosts ? n_hosts : 1) * sizeof(*pick));
	size_t *pick_idx = malloc((n_hosts ? n_hosts : 1) * sizeof(*pick_idx));
	out->entries = calloc(n_vms, sizeof(*out->entries));
	size_t nc = 0;
	if (!order || !cands || !pick || !pick_idx || !out->entries)
		goto done;
	for (size_t i = 0; i < n_vms; i++)
		order[i].vm = &vms[i];
	qsort(order, n_vms, sizeof(*order), vm_order);

	for (size_t h = 0; h < n_hosts; h++) {
		const struct fo_host *fh = &hosts[h];
		const char *name = nz(fh->cap.name);
		if (!name[0] || fh->witness || !fh->cap.alive || !fh->cap.healthy ||
		    fh->cap.draining)
			continue;
		if (exclude_host && strcmp(name, exclude_host) == 0)
			continue;
		struct cand *c = &cands[nc++];
		c->cap = fh->cap;
		c->cap.name = name;
		c->host = h;
		for (size_t v = 0; v < fh->n_vms; v++)
			if (fh->vms[v].running && cand_add_group(c, fh->vms[v].group) < 0)
				goto done;
		if (outstanding) {
			for (size_t o = 0; o < outstanding->n; o++) {
				const struct fo_plan_entry *e = &outstanding->entries[o];
				if (strcmp(e->target, name) != 0)
					continue;
				c->cap.vcpus_allocated += e->vcpus;
				c->cap.memory_allocated_kib += e->memory_kib;
				if (cand_add_group(c, e->group) < 0)
					goto done;
			}
		}
	}

	for (size_t i = 0; i < n_vms; i++) {
		const struct fo_vm *vm = order[i].vm;
		struct fo_plan_entry *e = &out->entries[i];
		cpy(e->uuid, sizeof(e->uuid), vm->uuid);
		cpy(e->name, sizeof(e->name), vm->name);
		cpy(e->group, sizeof(e->group), vm->group);
		e->priority = vm->priority;
		e->vcpus = vm->vcpus;
		e->memory_kib = vm->memory_kib;
		e->new_epoch = vm->epoch + 1 + round;
		e->has_base = true;
		e->base_epoch = vm->epoch;
		size_t np = 0;
		struct placement_request req = {.vcpus = vm->vcpus, .memory_kib = vm->memory_kib};
		int best = -1;
		for (size_t c = 0; c < nc; c++) {
			if (e->group[0] && cand_has_group(&cands[c], e->group))
				continue;
			if (prefer && strcmp(cands[c].cap.name, prefer) == 0 &&
			    placement_fits(&cands[c].cap, &req, NULL, 0)) {
				best = (int)np; /* its own host keeps it when it fits */
				pick[np] = cands[c].cap;
				pick_idx[np++] = c;
				break;
			}
			pick[np] = cands[c].cap;
			pick_idx[np++] = c;
		}
		if (best < 0)
			best = placement_choose(pick, np, &req, NULL, 0);
		if (best >= 0) {
			struct cand *c = &cands[pick_idx[best]];
			cpy(e->target, sizeof(e->target), c->cap.name);
			c->cap.vcpus_allocated += vm->vcpus;
			c->cap.memory_allocated_kib += vm->memory_kib;
			if (cand_add_group(c, e->group) < 0)
				goto done;
		}
	}
	out->n = n_vms;
	rc = 0;
done:
	for (size_t c = 0; c < nc; c++)
		free(cands[c].groups);
	free(order);
	free(cands);
	free(pick);
	free(pick_idx);
	if (rc < 0)
		fo_plan_clear(out);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

const char *fo_msg_type_name(enum fo_msg_type t)
{
	static const char *const names[FO_MSG_TYPES] = {
	    "HEARTBEAT", "HB_ACK",   "HB_NACK", "FENCE_ORDER", "PREPARE",   "PROMISE", "REJECT",
	    "ACCEPT",    "ACCEPTED", "CHOSEN",  "FENCED",      "RESTARTED", "READ",    "READ_REPLY",
	};
	return (unsigned)t < FO_MSG_TYPES ? names[t] : "?";
}

const char *fo_event_name(enum fo_event_type t)
{
	switch (t) {
	case FO_EV_FENCE_SELF:
		return "fence-self";
	case FO_EV_FENCE_VMS:
		return "fence-vms";
	case FO_EV_REMOTE_FENCE:
		return "remote-fence";
	case FO_EV_RESTART:
		return "restart";
	case FO_EV_QUORUM_LOST:
		return "quorum-lost";
	case FO_EV_QUORUM_REGAINED:
		return "quorum-regained";
	case FO_EV_DETECTED:
		return "detected";
	case FO_EV_PROPOSING:
		return "proposing";
	case FO_EV_CHOSEN:
		return "chosen";
	case FO_EV_FENCE_CONFIRMED:
		return "fence-confirmed";
	case FO_EV_RESTARTED:
		return "restarted";
	case FO_EV_RESTART_FAILED:
		return "restart-failed";
	case FO_EV_HANDED_BACK:
		return "handed-back";
	case FO_EV_NO_ROOM:
		return "no-room";
	case FO_EV_MEMBER_REMOVED:
		return "member-removed";
	case FO_EV_NEW_INCARNATION:
		return "new-incarnation";
	case FO_EV_VM_DOWN:
		return "vm-down";
	case FO_EV_VM_RECOVERED:
		return "vm-recovered";
	case FO_EV_REFUSED:
		return "refused";
	}
	return "?";
}

const char *fo_phase_name(enum fo_phase p)
{
	static const char *const names[] = {"detected", "chosen", "fenced", "done"};
	return (unsigned)p < 4 ? names[p] : "?";
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */

void fo_msg_clear(struct fo_msg *m)
{
	if (!m)
		return;
	fo_plan_clear(&m->plan);
	fo_plan_clear(&m->superseded);
	free(m->removed);
	m->removed = NULL;
	m->n_removed = 0;
	free(m->adopt);
	m->adopt = NULL;
	m->n_adopt = 0;
	free(m->moves);
	m->moves = NULL;
	m->n_moves = 0;
	m->has_plan = false;
}

void fo_event_clear(struct fo_event *e)
{
	if (!e)
		return;
	fo_plan_clear(&e->plan);
}

/* Takes ownership of msg's heap parts. */
static void push_msg(struct fo *f, struct fo_msg *msg)
{
	struct fo_msg *q = mv_queue_push(&f->outq, sizeof(*q), FO_QUEUE_MAX);
	if (!q) {
		fo_msg_clear(msg);
		return;
	}
	*q = *msg;
}

bool fo_pop_output(struct fo *f, struct fo_msg *out)
{
	return mv_queue_pop(&f->outq, out, sizeof(*out));
}

static struct fo_event *push_event(struct fo *f, enum fo_event_type t,
                                   const struct fo_instance_id *id, const char *peer,
                                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static struct fo_event *push_event(struct fo *f, enum fo_event_type t,
                                   const struct fo_instance_id *id, const char *peer,
                                   const char *fmt, ...)
{
	static struct fo_event sink;
	struct fo_event *e = mv_queue_push(&f->evq, sizeof(*e), FO_QUEUE_MAX);
	if (!e && t < FO_EV_QUORUM_LOST) {
		/* An action (fence, restart, new incarnation) that cannot be
		 * queued must not be lost: a dropped FENCE_SELF would leave VMs
		 * running that the others restart after F. Stop hard; an armed
		 * watchdog resets the host, as for any agent that dies. */
		fprintf(stderr,
		        "meshvisor: failover: no memory to queue action event %d; aborting\n",
		        (int)t);
		abort();
	}
	if (!e) { /* information only (log, `events`): dropped */
		e = &sink;
		fo_plan_clear(&sink.plan);
	}
	memset(e, 0, sizeof(*e));
	e->type = t;
	if (id)
		e->inst = *id;
	cpy(e->peer, sizeof(e->peer), peer);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return e;
}

/* A message (or a field of one) we refuse to believe: one REFUSED event a
 * second at most, naming how many were refused unlogged since the last. */
#define FO_REFUSED_EVERY_MS 1000
static void refuse(struct fo *f, const char *from, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(struct fo *f, const char *from, const char *fmt, ...)
{
	if (f->refused_at && f->last_now < f->refused_at - 1 + FO_REFUSED_EVERY_MS) {
		f->refused_quiet++;
		return;
	}
	char what[FO_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	push_event(f, FO_EV_REFUSED, NULL, from, "%.200s (%" PRIu32 " more refused unlogged)", what,
	           f->refused_quiet);
	f->refused_at = f->last_now + 1;
	f->refused_quiet = 0;
}

bool fo_pop_event(struct fo *f, struct fo_event *out)
{
	return mv_queue_pop(&f->evq, out, sizeof(*out));
}

/* ------------------------------------------------------------------------ */
/* Members                                                                  */

static const char *member_key(const void *f, uint32_t i)
{
	return ((const struct fo *)f)->m[i].name;
}

static const struct name_index_ops member_index_ops = {member_key, NULL, NULL};

static const char *given_key(const void *f, uint32_t i)
{
	return ((const struct fo *)f)->given[i].uuid;
}

static const struct name_index_ops given_index_ops = {given_key, NULL, NULL};

static struct mrec *member_find(const struct fo *f, const char *name)
{
	uint32_t i = name_index_find(&f->m_by_name, name);
	return i == NAME_INDEX_NONE ? NULL : &f->m[i];
}

/* Every rise of an inst_max is journalled (RESTARTS) before the messages
 * that follow it leave: the caller sees journal_version move. inst_max is
 * the highest incarnation of the member for which we accepted or learned a
 * non-empty first plan: from then on we do not acknowledge it until it
 * reports itself fenced through it (WHY NO VM RUNS TWICE). */
static void raise_inst_max(struct fo *f, struct mrec *r, uint64_t inc)
{
	if (r == &f->m[f->self_idx])
		return; /* nobody withholds acks from itself */
	if (inc > r->inst_max) {
		r->inst_max = inc;
		f->journal_version++;
	}
}

/* Did we accept or learn a non-empty first plan for this instance? Then we
 * must not acknowledge its host until it reports itself fenced for it. */
static bool inst_blocks(const struct inst *in)
{
	for (uint32_t r = 0; r < FO_ROUNDS_MAX; r++) {
		const struct round *rd = &in->rounds[r];
		if ((rd->chosen && rd->plan.n > 0) || (rd->has_acc && rd->acc_plan.n > 0))
			return true;
	}
	return false;
}

static struct mrec *member_add(struct fo *f, const char *name)
{
	struct mrec *r = member_find(f, name);
	if (r)
		return r;
	struct mrec *nm = grow(f->m, &f->cap_m, f->n_m + 1, sizeof(*nm));
	if (!nm)
		return NULL;
	f->m = nm;
	r = &f->m[f->n_m];
	memset(r, 0, sizeof(*r));
	cpy(r->name, sizeof(r->name), name);
	r->st = FO_ALIVE;
	if (name_index_insert(&f->m_by_name, (uint32_t)f->n_m) < 0)
		return NULL;
	f->n_m++;
	/* first plans learned before we knew the member (a CHOSEN from a
	 * peer): we never acknowledge it for them either */
	for (size_t k = 0; k < f->n_inst; k++)
		if (strcmp(f->inst[k]->dead, r->name) == 0 && inst_blocks(f->inst[k]))
			raise_inst_max(f, r, f->inst[k]->inc);
	return r;
}

static bool is_self(const struct fo *f, const char *name)
{
	return strcmp(f->cfg.name, name) == 0;
}

static bool considered_alive(const struct mrec *r)
{
	return r->voter && (r->st == FO_ALIVE || r->st == FO_SUSPECT);
}

/* ------------------------------------------------------------------------ */
/* Quorum                                                                   */

static size_t majority_of(size_t v)
{
	return v / 2 + 1;
}

/* The k-th largest (1-based) of a[0..n), by quickselect (three-way). */
static uint64_t kth_largest(uint64_t *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n, want = k - 1;
	while (hi - lo > 1) {
		uint64_t pivot = a[lo + (hi - lo) / 2], t;
		size_t lt = lo, i = lo, gt = hi;
		while (i < gt) {
			if (a[i] > pivot) {
				t = a[lt], a[lt] = a[i], a[i] = t;
				lt++, i++;
			} else if (a[i] < pivot) {
				gt--;
				t = a[gt], a[gt] = a[i], a[i] = t;
			} else {
				i++;
			}
		}
		if (want < lt)
			hi = lt;
		else if (want >= gt)
			lo = gt;
		else
			return pivot;
	}
	return a[lo];
}

static void recompute_qstamp(struct fo *f)
{
	size_t k = majority_of(f->eff_voters) - 1;
	if (k == 0) {
		f->qstamp = 0;
		return;
	}
	size_t n = 0;
	uint64_t *s = grow(f->scratch, &f->scratch_cap, f->n_m, sizeof(uint64_t));
	if (!s) {
		f->qstamp = 0;
		return;
	}
	f->scratch = s;
	for (size_t i = 0; i < f->n_m; i++)
		if (i != f->self_idx && f->m[i].voter)
			s[n++] = f->m[i].ack;
	f->qstamp = n >= k ? kth_largest(s, n, k) : 0;
}

/* The largest voting-set size a heartbeat may report and count: twice
 * our own set plus FO_VOTERS_SLACK (and FO_VOTERS_MAX at most). A report
 * exists for an agent that restarted and has not yet heard of members that
 * died before its start (membership teaches it them within seconds); a
 * cluster that lost more than half its voters that way has no majority
 * anyway. A larger report is a lie or a bug: counted, it would make every
 * majority unreachable, and every host would fence itself after F. */
#define FO_VOTERS_SLACK 8
#define FO_VOTERS_MAX 65536
static size_t voters_believable(const struct fo *f)
{
	size_t b = 2 * f->n_voters + FO_VOTERS_SLACK;
	return b < FO_VOTERS_MAX ? b : FO_VOTERS_MAX;
}

/* The size majorities are counted over: our voting set, or more if a voter
 * that heartbeated us recently (within F) knows a larger one — a restarted
 * agent may never have heard of a member that died before its start.
 * Voters we hold DEAD count too: dead members stay voters, and one held
 * dead may well be up and accepting (a restarted agent that held all it
 * knew dead would otherwise count over its own too small set and choose
 * with a minority). A dead sender cannot tell us of removals it missed, so
 * its report is lowered by the force-leaves we learned after it (an alive
 * one too, until its next heartbeat, which knows them). */
static size_t effective_voters(const struct fo *f)
{
	size_t e = f->n_voters;
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *m = &f->m[i];
		if (!m->voter || !m->hb_at || m->reported_voters <= e ||
		    m->reported_voters > voters_believable(f) ||
		    f->last_now >= sat_add(m->hb_at - 1, f->cfg.fence_after_ms))
			continue;
		size_t v = m->reported_voters;
		for (size_t j = 0; f->n_removed && j < f->n_m && v > e; j++)
			if (f->m[j].removed && f->m[j].removed_at > m->hb_at)
				v--;
		if (v > e)
			e = v;
	}
	return e;
}

/* The voting set's size for majorities is now `eff`: every open record
 * remembers the smallest majority it saw. */
static void set_eff_voters(struct fo *f, size_t eff)
{
	f->eff_voters = eff;
	size_t maj = majority_of(eff);
	for (size_t i = 0; i < f->n_inst; i++)
		if (!f->inst[i]->done && f->inst[i]->maj_low > maj)
			f->inst[i]->maj_low = maj;
}

static void recount_voters(struct fo *f)
{
	size_t v = 0, r = 0;
	for (size_t i = 0; i < f->n_m; i++) {
		struct mrec *m = &f->m[i];
		bool was = m->voter;
		m->voter = i == f->self_idx || (((m->fed && m->admitted) || m->restored_voter) &&
		                                !m->left && !m->removed);
		if (was != m->voter && i != f->self_idx)
			f->journal_version++; /* the voting set is journalled (not us) */
		v += m->voter;
		r += m->removed;
	}
	f->n_voters = v;
	f->n_removed = r;
	set_eff_voters(f, effective_voters(f));
	recompute_qstamp(f);
}

static bool alone_unquorate(const struct fo *f)
{
	return f->cfg.expect_cluster && f->eff_voters <= 1;
}

bool fo_quorate(const struct fo *f, uint64_t now)
{
	/* Fenced through our own incarnation: we must come back as a new
	 * incarnation (SWIM refutes) before acting again, so that whatever we
	 * start afterwards is never covered by that old claim. */
	if (f->incarnation && f->fenced_through >= f->incarnation)
		return false;
	if (majority_of(f->eff_voters) <= 1)
		return !alone_unquorate(f);
	return f->qstamp && now < sat_add(f->qstamp - 1, f->cfg.quorate_ms);
}

/* Did a majority acknowledge a heartbeat we sent after `t` (our clock)?
 * A plan that targets us is started only then. Its fence may have been a
 * remote one, which destroys only what ran at that moment, while we, still
 * quorate on older acknowledgements, could start what a plan gives us
 * afterwards. Every acceptor of a failover of our incarnation opened it
 * before accepting and has not acknowledged us since, so a majority that
 * acknowledges a later heartbeat proves no such failover was chosen before
 * we learned the plan (its majority would intersect ours). */
static bool acked_since(const struct fo *f, uint64_t t)
{
	if (majority_of(f->eff_voters) <= 1)
		return true;
	return f->qstamp && f->qstamp - 1 > t;
}

/* The time the self-fence clock runs from: our quorum stamp, else our
 * start — or, for an agent that restarted while HA VMs ran on, the moment
 * its predecessor was last quorate (fo_resume_fence_base). */
static uint64_t fence_base(const struct fo *f)
{
	uint64_t q = f->qstamp ? f->qstamp - 1 : 0;
	uint64_t start = f->resumed && f->resume_base < f->started ? f->resume_base : f->started;
	return q > start ? q : start;
}

/* fenced_through reached our own incarnation (a self-fence, or a FENCE_ORDER
 * for it): that incarnation is over. Ask the caller for a newer one; until
 * it comes we are not quorate (fo_quorate), so nothing started later is
 * ever covered by the old claim. */
static void want_new_incarnation(struct fo *f, const char *why)
{
	if (!f->incarnation || f->fenced_through < f->incarnation)
		return;
	char text[FO_TEXT_MAX];
	snprintf(text, sizeof(text), "incarnation %" PRIu64 " is over (%.180s)", f->incarnation,
	         why);
	ask_incarnation(f, f->fenced_through + 1, text);
}

static bool can_fence(const struct fo *f)
{
	return majority_of(f->eff_voters) > 1 || alone_unquorate(f);
}

bool fo_fenced(const struct fo *f)
{
	return f->fenced;
}

uint64_t fo_self_fence_at(const struct fo *f)
{
	if (f->fenced)
		return 0;
	if (!can_fence(f))
		return UINT64_MAX;
	return sat_add(fence_base(f), f->cfg.fence_after_ms);
}
size_t fo_voters(const struct fo *f)
{
	return f->n_voters;
}
size_t fo_majority(const struct fo *f)
{
	return majority_of(f->eff_voters);
}

size_t fo_acknowledged(const struct fo *f, uint64_t now)
{
	size_t n = 1;
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *m = &f->m[i];
		if (i != f->self_idx && m->voter && m->ack &&
		    now < sat_add(m->ack - 1, f->cfg.quorate_ms))
			n++;
	}
	return n;
}

static void run_work(struct fo *f, uint64_t now);
static void track_owed(struct fo *f, uint64_t now);
static void hand_back_mine(struct fo *f, const char *why, const struct fo_plan *order,
                           uint64_t upto, bool extras, uint64_t now);

/* When QUORUM_LOST is due (not quorate since lost_since): after 2
 * heartbeats — and, for a core never quorate yet, not before its voting
 * set had time to form (members join after join_after_ms, THE VOTING
 * SET). */
static uint64_t lost_due(const struct fo *f)
{
	uint64_t due = sat_add(f->lost_since, 2 * (uint64_t)f->cfg.heartbeat_ms);
	if (!f->quorate_since) {
		uint64_t forming =
		    sat_add(f->started, f->cfg.join_after_ms + 2 * (uint64_t)f->cfg.heartbeat_ms);
		if (forming > due)
			due = forming;
	}
	return due;
}

/* Quorum transitions and the self-fence; `work` runs the instance work
 * when quorum comes back (not from inside the work itself). */
static void update_quorum(struct fo *f, uint64_t now, bool work)
{
	/* Events: LOST once not quorate for 2 heartbeats in a row (members
	 * joining grow the set a moment before their acks arrive), REGAINED
	 * only after a LOST. */
	bool q = fo_quorate(f, now);
	if (q && !f->quorate_flag) {
		f->quorate_flag = true;
		f->quorate_since = now + 1;
		f->fenced = false;
		if (f->lost_emitted)
			push_event(f, FO_EV_QUORUM_REGAINED, NULL, NULL,
			           "%zu of %zu voters acknowledge us", fo_acknowledged(f, now),
			           f->eff_voters);
		f->lost_emitted = false;
		if (work)
			run_work(f, now);
	} else if (!q && f->quorate_flag) {
		f->quorate_flag = false;
		f->lost_since = now;
	}
	if (!q && !f->lost_emitted && now >= lost_due(f)) {
		f->lost_emitted = true;
		push_event(f, FO_EV_QUORUM_LOST, NULL, NULL,
		           "%zu of %zu voters acknowledged us within %u ms; need %zu",
		           fo_acknowledged(f, now), f->eff_voters, f->cfg.quorate_ms,
		           majority_of(f->eff_voters));
	}
	if (!q && !f->fenced && can_fence(f) &&
	    now >= sat_add(fence_base(f), f->cfg.fence_after_ms)) {
		f->fenced = true;
		/* Every HA VM here is destroyed, and nothing starts here until we
		 * are quorate at a newer incarnation: the self-fence covers every
		 * failover of this incarnation and of older ones (RECOVERY). */
		if (f->seen_against > f->fenced_through)
			f->fenced_through = f->seen_against;
		if (f->incarnation > f->fenced_through)
			f->fenced_through = f->incarnation;
		push_event(f, FO_EV_FENCE_SELF, NULL, NULL,
		           "no majority acknowledged us for %" PRIu64 " ms: %zu of %zu voters",
		           now - fence_base(f), fo_acknowledged(f, now), f->eff_voters);
		hand_back_mine(f, "this host fenced itself before starting it", NULL, 0, true, now);
		want_new_incarnation(f, "this host fenced itself");
	}
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

void fo_config_default(struct fo_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;
	cfg->heartbeat_ms = 1000;
	cfg->quorate_ms = 3000;
	cfg->fence_after_ms = 10000;
	cfg->fence_margin_ms = 3000;
	cfg->coordinator_step_ms = 3000;
	cfg->retry_ms = 500;
	cfg->max_parallel = 4;
	cfg->restart_attempts = 3;
	cfg->restart_backoff_ms = 1000;
	cfg->max_rounds = 3;
	cfg->history = 64;
	cfg->dead_grace_ms = 1500;
	cfg->reconcile_ms = 5000;
	cfg->join_after_ms = 1000;
}

struct fo *fo_new(const struct fo_config *cfg, uint64_t now)
{
	if (!cfg || !cfg->name[0] || !terminated(cfg->name, sizeof(cfg->name)))
		return NULL;
	struct fo *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	name_index_init(&f->m_by_name, &member_index_ops, f);
	name_index_init(&f->given_by_uuid, &given_index_ops, f);
	f->cfg = *cfg;
	struct fo_config *c = &f->cfg;
	if (!c->heartbeat_ms)
		c->heartbeat_ms = 1000;
	if (!c->quorate_ms)
		c->quorate_ms = 3000;
	if (!c->fence_after_ms)
		c->fence_after_ms = 10000;
	if (!c->coordinator_step_ms)
		c->coordinator_step_ms = 3000;
	if (!c->retry_ms)
		c->retry_ms = 500;
	if (!c->max_parallel)
		c->max_parallel = 1;
	if (!c->restart_attempts)
		c->restart_attempts = 1;
	if (c->restart_attempts > 32)
		c->restart_attempts = 32;
	if (c->max_rounds > FO_ROUNDS_MAX - 1)
		c->max_rounds = FO_ROUNDS_MAX - 1;
	if (!c->reconcile_ms)
		c->reconcile_ms = 5000;
	/* a newcomer must be able to join and make a quorum well before a
	 * node started with seeds fences itself alone */
	if (c->join_after_ms > c->fence_after_ms / 3)
		c->join_after_ms = c->fence_after_ms / 3;
	/* hand-backs get max_rounds rounds per VM; rounds after those serve
	 * parked VMs once there is room (RECOVERY) */
	f->n_rounds = FO_ROUNDS_MAX;
	uint64_t x = c->seed;
	for (int i = 0; i < 4; i++)
		f->rng[i] = mv_splitmix64(&x);
	f->started = now;
	f->last_now = now;
	f->next_hb = now;
	f->restart_wake = UINT64_MAX;
	struct mrec *self = member_add(f, c->name);
	if (!self) {
		fo_free(f);
		return NULL;
	}
	self->fed = true;
	f->self_idx = 0;
	recount_voters(f);
	f->quorate_flag = false;
	f->lost_since = now;
	return f;
}

static void round_vals_clear(struct round *r)
{
	for (size_t i = 0; i < r->n_vals; i++)
		fo_plan_clear(&r->vals[i].p);
	free(r->vals);
	r->vals = NULL;
	r->n_vals = 0;
}

static void round_free(struct round *r)
{
	free(r->xvm);
	free(r->adopted);
	round_vals_clear(r);
	fo_plan_clear(&r->acc_plan);
	fo_plan_clear(&r->plan);
	fo_plan_clear(&r->best_plan);
	fo_plan_clear(&r->value);
	fo_plan_clear(&r->sup);
	free(r->ents);
	free(r->resp);
}

static void inst_free(struct inst *in)
{
	if (!in)
		return;
	for (size_t r = 0; r < FO_ROUNDS_MAX; r++)
		round_free(&in->rounds[r]);
	free(in->pend);
	free(in->parked);
	free(in->base);
	free(in);
}

void fo_free(struct fo *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_inst; i++)
		inst_free(f->inst[i]);
	free(f->inst);
	struct fo_msg m;
	while (mv_queue_pop(&f->outq, &m, sizeof(m)))
		fo_msg_clear(&m);
	struct fo_event e;
	while (mv_queue_pop(&f->evq, &e, sizeof(e)))
		fo_event_clear(&e);
	mv_queue_free(&f->outq);
	mv_queue_free(&f->evq);
	for (size_t i = 0; i < f->n_m; i++)
		free(f->m[i].prev);
	free(f->owed);
	free(f->given);
	free(f->moves);
	free(f->m);
	name_index_free(&f->m_by_name);
	name_index_free(&f->given_by_uuid);
	free(f->scratch);
	fo_plan_clear(&f->order_plan);
	for (size_t i = 0; i < f->n_reads; i++)
		pread_free(&f->reads[i]);
	free(f->reads);
	mv_arena_free(&f->harena);
	free(f);
}

void fo_set_incarnation(struct fo *f, uint64_t incarnation)
{
	if (!f->first_inc)
		f->first_inc = incarnation;
	f->incarnation = incarnation;
}

void fo_fence_incomplete(struct fo *f, bool incomplete)
{
	if (f)
		f->fence_incomplete = incomplete;
}

bool fo_msg_vouches_fence(const struct fo *f, const struct fo_msg *m)
{
	/* (a hand-back says "not started, or destroyed here": re-placed on
	 * our word, so held back too) */
	return f && m &&
	       (m->type == FO_FENCED || (m->type == FO_ACCEPTED && is_self(f, m->inst.dead)) ||
	        (m->type == FO_READ_REPLY && m->has_plan && is_self(f, m->inst.dead)) ||
	        (m->type == FO_RESTARTED && !m->ok));
}

void fo_resume_fence_base(struct fo *f, uint64_t last_quorate_at)
{
	if (!f)
		return;
	f->resumed = true;
	f->resume_base = last_quorate_at;
}

/* A host's state in the current view, or NULL. */
static const struct fo_host *host_of(const struct fo *f, const char *name)
{
	const struct mrec *r = member_find(f, name);
	if (!r || !r->host_idx || r->host_idx > f->n_hosts)
		return NULL;
	const struct fo_host *h = &f->hosts[r->host_idx - 1];
	return strcmp(h->cap.name, name) == 0 ? h : NULL;
}

/* r's state `old` is of an incarnation it has left: keep its HA VMs. */
/* An owned copy of a VM of the view, and back (the view's strings point
 * into the copy). */
static void hvm_keep(struct hvm *p, const struct fo_vm *v)
{
	cpy(p->uuid, sizeof(p->uuid), v->uuid);
	cpy(p->name, sizeof(p->name), v->name);
	cpy(p->group, sizeof(p->group), v->group);
	p->priority = v->priority;
	p->vcpus = v->vcpus;
	p->memory_kib = v->memory_kib;
	p->epoch = v->epoch;
	p->running = v->running;
}

static struct fo_vm hvm_view(const struct hvm *h)
{
	return (struct fo_vm){.uuid = h->uuid,
	                      .name = h->name,
	                      .group = h->group,
	                      .priority = h->priority,
	                      .vcpus = h->vcpus,
	                      .memory_kib = h->memory_kib,
	                      .epoch = h->epoch,
	                      .running = h->running};
}

static void save_prev(struct mrec *r, const struct fo_host *old)
{
	struct hvm *p = calloc(old->n_vms ? old->n_vms : 1, sizeof(*p));
	if (!p)
		return;
	for (size_t i = 0; i < old->n_vms; i++)
		hvm_keep(&p[i], &old->vms[i]);
	free(r->prev);
	r->prev = p;
	r->n_prev = old->n_vms;
	r->prev_inc = old->incarnation;
	r->has_prev = true;
	r->prev_checked = false;
}

static void after_view(struct fo *f, uint64_t now);

void fo_set_hosts(struct fo *f, const struct fo_host *hosts, size_t n, uint64_t now)
{
	if (now > f->last_now)
		f->last_now = now;
	now = f->last_now;
	/* every host has a record (a record, not a vote: votes come from
	 * fo_member); one that moved to a newer incarnation leaves its last
	 * state of the old one behind (RECOVERY) */
	for (size_t i = 0; hosts && i < n; i++) {
		const char *name = nz(hosts[i].cap.name);
		if (name[0] && strlen(name) < FO_NAME_MAX)
			member_add(f, name);
	}
	for (size_t i = 0; hosts && i < n; i++) {
		const char *name = nz(hosts[i].cap.name);
		struct mrec *r =
		    name[0] && strlen(name) < FO_NAME_MAX ? member_find(f, name) : NULL;
		const struct fo_host *old = r ? host_of(f, name) : NULL;
		if (old && hosts[i].incarnation > old->incarnation)
			save_prev(r, old);
	}
	for (size_t k = 0; k < f->n_m; k++)
		f->m[k].host_idx = 0;
	mv_arena_reset(&f->harena);
	f->hosts = NULL;
	f->n_hosts = 0;
	if (!hosts || !n) {
		after_view(f, now);
		return;
	}
	struct fo_host *h = mv_arena_alloc(&f->harena, n * sizeof(*h));
	if (!h)
		return;
	for (size_t i = 0; i < n; i++) {
		h[i] = hosts[i];
		h[i].cap.name = mv_arena_strdup(&f->harena, nz(hosts[i].cap.name));
		h[i].vms = NULL;
		h[i].n_vms = 0;
		if (!h[i].cap.name)
			return;
		if (hosts[i].n_vms && hosts[i].vms) {
			struct fo_vm *v = mv_arena_alloc(&f->harena, hosts[i].n_vms * sizeof(*v));
			if (!v)
				return;
			for (size_t j = 0; j < hosts[i].n_vms; j++) {
				v[j] = hosts[i].vms[j];
				v[j].uuid = mv_arena_strdup(&f->harena, nz(v[j].uuid));
				v[j].name = mv_arena_strdup(&f->harena, nz(v[j].name));
				v[j].group = mv_arena_strdup(&f->harena, nz(v[j].group));
				if (!v[j].uuid || !v[j].name || !v[j].group)
					return;
			}
			h[i].vms = v;
			h[i].n_vms = hosts[i].n_vms;
		}
		f->hosts = h;
		f->n_hosts = i + 1;
		struct mrec *r = member_find(f, h[i].cap.name);
		if (r && !r->host_idx)
			r->host_idx = (uint32_t)(i + 1);
	}
	after_view(f, now);
}

/* ------------------------------------------------------------------------ */
/* Messages out                                                             */

static void msg_init(const struct fo *f, struct fo_msg *m, enum fo_msg_type t, const char *to)
{
	memset(m, 0, sizeof(*m));
	m->type = t;
	cpy(m->from, sizeof(m->from), f->cfg.name);
	cpy(m->to, sizeof(m->to), to);
}

static void msg_inst(struct fo_msg *m, const struct inst *in, uint32_t round)
{
	cpy(m->inst.dead, sizeof(m->inst.dead), in->dead);
	m->inst.incarnation = in->inc;
	m->inst.round = round;
}

static void inst_id(struct fo_instance_id *id, const struct inst *in, uint32_t round)
{
	memset(id, 0, sizeof(*id));
	cpy(id->dead, sizeof(id->dead), in->dead);
	id->incarnation = in->inc;
	id->round = round;
}

/* A copy of `tmpl` (plan deep-copied) to every other voter. */
static void broadcast(struct fo *f, const struct fo_msg *tmpl)
{
	for (size_t i = 0; i < f->n_m; i++) {
		if (i == f->self_idx || !f->m[i].voter)
			continue;
		struct fo_msg m = *tmpl;
		m.removed = NULL;
		m.n_removed = 0;
		m.adopt = NULL;
		m.n_adopt = 0;
		cpy(m.to, sizeof(m.to), f->m[i].name);
		if (tmpl->has_plan && fo_plan_copy(&m.plan, &tmpl->plan) < 0)
			continue;
		push_msg(f, &m);
	}
}

static size_t moves_to_tell(struct fo *f, uint64_t now, struct fo_move *out);

/* Joining the voting set (THE VOTING SET). A member membership holds
 * alive is a candidate: we heartbeat it (so that it can admit us) but do
 * not count it. It joins once membership has held it alive for
 * join_after_ms and it heartbeated or acknowledged us meanwhile — a
 * failover core runs there and counts us. One PING from a stranger made
 * it a member; the stranger never heartbeats, dies, and never votes. */
static bool candidate(const struct fo *f, const struct mrec *r)
{
	return f->cfg.join_after_ms && r->fed && !r->admitted && !r->restored_voter && !r->left &&
	       !r->removed && r->alive_since;
}

static void try_admit(struct fo *f, struct mrec *r, uint64_t now)
{
	if (!candidate(f, r) || !r->heard_alive ||
	    now < sat_add(r->alive_since - 1, f->cfg.join_after_ms))
		return;
	r->admitted = true;
	f->journal_version++; /* the voting set is journalled */
}

/* x (may be NULL) heartbeated or acknowledged us. */
static void heard_from(struct fo *f, struct mrec *x, uint64_t now)
{
	if (!x || !candidate(f, x))
		return;
	x->heard_alive = true;
	try_admit(f, x, now);
	if (x->admitted) {
		recount_voters(f);
		update_quorum(f, now, true);
	}
}

static void send_heartbeats(struct fo *f, uint64_t now)
{
	struct fo_removed *rem = NULL;
	size_t n_rem = 0;
	struct fo_move tell[FO_MOVES_MAX];
	size_t n_tell = moves_to_tell(f, now, tell);
	f->last_hb_stamp = now;
	for (size_t i = 0; i < f->n_m; i++) {
		if (i == f->self_idx || !(f->m[i].voter || candidate(f, &f->m[i])))
			continue;
		struct fo_msg m;
		msg_init(f, &m, FO_HEARTBEAT, f->m[i].name);
		m.stamp = now;
		m.incarnation = f->incarnation;
		/* a fence whose destroys failed is not claimed (fo_fence_incomplete) */
		if (!f->fence_incomplete)
			f->ft_told = f->fenced_through;
		m.fenced_through = f->ft_told;
		m.voters = (uint32_t)f->n_voters;
		if (f->n_removed) {
			if (!rem) {
				rem = calloc(f->n_removed < FO_REMOVED_MAX ? f->n_removed
				                                           : FO_REMOVED_MAX,
				             sizeof(*rem));
				for (size_t j = 0; rem && j < f->n_m && n_rem < FO_REMOVED_MAX;
				     j++) {
					if (!f->m[j].removed)
						continue;
					cpy(rem[n_rem].name, FO_NAME_MAX, f->m[j].name);
					rem[n_rem++].incarnation = f->m[j].removed_inc;
				}
			}
			if (rem) {
				m.removed = malloc(n_rem * sizeof(*rem));
				if (m.removed) {
					memcpy(m.removed, rem, n_rem * sizeof(*rem));
					m.n_removed = n_rem;
				}
			}
		}
		if (n_tell && (m.moves = malloc(n_tell * sizeof(*m.moves))) != NULL) {
			memcpy(m.moves, tell, n_tell * sizeof(*m.moves));
			m.n_moves = n_tell;
		}
		push_msg(f, &m);
	}
	free(rem);
}

/* ------------------------------------------------------------------------ */
/* Instances                                                                */

static struct inst *inst_find(const struct fo *f, const char *dead, uint64_t inc)
{
	for (size_t i = 0; i < f->n_inst; i++)
		if (f->inst[i]->inc == inc && strcmp(f->inst[i]->dead, dead) == 0)
			return f->inst[i];
	return NULL;
}

static void trim_history(struct fo *f)
{
	size_t done = 0;
	for (size_t i = 0; i < f->n_inst; i++)
		done += f->inst[i]->done;
	while (done > f->cfg.history || (f->n_inst >= FO_INST_MAX && done > 0)) {
		size_t oldest = SIZE_MAX;
		bool full = f->n_inst >= FO_INST_MAX;
		for (size_t i = 0; i < f->n_inst; i++)
			if (f->inst[i]->done && (full || !f->inst[i]->n_parked) &&
			    (oldest == SIZE_MAX || f->inst[i]->done_at < f->inst[oldest]->done_at))
				oldest = i;
		if (oldest == SIZE_MAX)
			break;
		struct mrec *r = member_find(f, f->inst[oldest]->dead);
		if (r && r->forgot_max < f->inst[oldest]->inc) {
			r->forgot_max = f->inst[oldest]->inc;
			f->journal_version++;
		}
		inst_free(f->inst[oldest]);
		memmove(&f->inst[oldest], &f->inst[oldest + 1],
		        (f->n_inst - oldest - 1) * sizeof(*f->inst));
		f->n_inst--;
		done--;
	}
}

static struct inst *inst_open(struct fo *f, const char *dead, uint64_t inc, uint64_t now)
{
	struct inst *in = inst_find(f, dead, inc);
	if (in)
		return in;
	const struct mrec *fr = member_find(f, dead);
	if (fr && fr->forgot_max >= inc)
		return NULL; /* finished and forgotten: never decided twice */
	trim_history(f);
	if (f->n_inst >= FO_INST_MAX)
		return NULL;
	struct inst **ni = grow(f->inst, &f->cap_inst, f->n_inst + 1, sizeof(*ni));
	if (!ni)
		return NULL;
	f->inst = ni;
	in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	cpy(in->dead, sizeof(in->dead), dead);
	in->inc = inc;
	in->seq = ++f->inst_seq;
	in->maj_low = majority_of(f->eff_voters);
	in->first_heard = now;
	in->known_at = now;
	in->propose_at = UINT64_MAX;
	f->inst[f->n_inst++] = in;
	return in;
}

/* Is incarnation `inc` of member r over, as far as we know? We held it
 * DEAD at `inc` or later, the operator removed it, or it is known at a
 * newer incarnation (it refuted, restarted, or fenced itself and moved
 * on: RECOVERY). A plan for an incarnation that is over lists only what
 * the host does not run at its newer one. */
static bool incarnation_over(const struct mrec *r, uint64_t inc)
{
	return r && (r->dead_max >= inc || (r->removed && r->removed_inc >= inc) ||
	             (r->fed && r->inc > inc) || r->hb_inc > inc);
}

/* Do we (as an acceptor) consider `in`'s host failed for this round? */
/* A member membership never told us of, while we have been up long enough
 * to know every live one (a join's push-pull lists them all at once): it
 * is not alive. (SWIM adds an unknown member only from an ALIVE record, so
 * an agent that restarted after a death never hears of the dead host.) */
#define FO_UNKNOWN_IS_GONE_MS 30000
static bool unknown_gone(const struct fo *f, const struct mrec *r)
{
	return (!r || !r->fed) && f->last_now >= sat_add(f->started, FO_UNKNOWN_IS_GONE_MS);
}

/* Is incarnation inc of member r failed as far as we know: over (dead,
 * removed, or it lives at a newer one), never heard of, or dead to us for
 * FO_LONG_DEAD_MS with no sign of life meanwhile (no heartbeat, no newer
 * incarnation from membership): its agent died right after it moved on,
 * before our membership heard of the new incarnation — it never will now.
 * (A heartbeat from the newer incarnation that stopped FO_LONG_DEAD_MS ago
 * is no sign of life: that incarnation died too.)
 * (A live host refutes its death well within that time once it can reach
 * us; until it can, it is not acknowledged by us either.) */
#define FO_LONG_DEAD_MS 30000
static bool long_dead(const struct fo *f, const struct mrec *r)
{
	uint64_t now = f->last_now;
	/* and we have been quorate (hearing from a majority) all that while:
	 * right after a partition heals, silence proves nothing yet */
	return r && r->fed && r->st == FO_DEAD && r->dead_at && f->quorate_flag &&
	       f->quorate_since && now >= sat_add(f->quorate_since - 1, FO_LONG_DEAD_MS) &&
	       now >= sat_add(r->dead_at - 1, FO_LONG_DEAD_MS) &&
	       (!r->hb_at || now >= sat_add(r->hb_at - 1, FO_LONG_DEAD_MS)) &&
	       r->inc <= r->dead_max;
}

static bool dead_to_me(const struct fo *f, const struct mrec *r, uint64_t inc)
{
	return incarnation_over(r, inc) || unknown_gone(f, r) || long_dead(f, r);
}

static bool acceptor_may(const struct fo *f, const struct inst *in, uint32_t round)
{
	if (is_self(f, in->dead))
		return in->inc < f->incarnation; /* one of ours that is over */
	if (dead_to_me(f, member_find(f, in->dead), in->inc))
		return true;
	return round > 0 && in->rounds[0].chosen;
}

static uint32_t highest_chosen(const struct inst *in, uint32_t n_rounds, bool *any)
{
	uint32_t h = 0;
	*any = false;
	for (uint32_t r = 0; r < n_rounds; r++)
		if (in->rounds[r].chosen) {
			h = r;
			*any = true;
		}
	return h;
}

static bool plan_has_uuid(const struct fo_plan *p, const char *uuid)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->entries[i].uuid, uuid) == 0)
			return true;
	return false;
}

/* Is `uuid` in a chosen round > r? */
static bool replaced_after(const struct fo *f, const struct inst *in, uint32_t r, const char *uuid)
{
	for (uint32_t k = r + 1; k < f->n_rounds; k++)
		if (in->rounds[k].chosen && plan_has_uuid(&in->rounds[k].plan, uuid))
			return true;
	return false;
}

/* How long hand-backs wait for the rest of their batch: a whole retry
 * cycle of a target (restart_backoff_ms doubled restart_attempts times). */
static uint64_t batch_wait(const struct fo *f)
{
	uint32_t a = f->cfg.restart_attempts < 20 ? f->cfg.restart_attempts : 20;
	return (uint64_t)f->cfg.restart_backoff_ms << a;
}

/* Hand-backs are proposed in batches: once no target of the instance has
 * an entry outstanding, or batch_wait after the oldest one. */
static bool batch_ready(const struct fo *f, const struct inst *in, uint64_t now, uint64_t *at)
{
	uint64_t oldest = UINT64_MAX;
	for (size_t p = 0; p < in->n_pend; p++)
		if (in->pend[p].added_at < oldest)
			oldest = in->pend[p].added_at;
	*at = sat_add(oldest, batch_wait(f));
	if (now >= *at)
		return true;
	for (uint32_t r = 0; r < f->n_rounds; r++) {
		const struct round *rd = &in->rounds[r];
		for (size_t e = 0; rd->chosen && e < rd->plan.n; e++)
			if (rd->ents[e].st == E_WAIT && rd->plan.entries[e].target[0])
				return false;
	}
	return true;
}

/* Reads asked this often without a proof: the read is stuck. */
#define FO_OWN_READ_ASKS 3

/* Was the first round of a recovery of ours (an incarnation of ours that is
 * over) claimed chosen by a voter, and has our majority read failed to
 * prove it for FO_OWN_READ_ASKS asks? Its acceptors are split between
 * ballots of the value, or too few of them answer; the others learned it
 * and propose it no more, so only a new ballot of ours ends the wait. */
static bool own_claim_unproven(const struct fo *f, const struct inst *in)
{
	struct fo_instance_id id;
	inst_id(&id, in, 0);
	size_t i = pread_find(f, &id);
	return i != SIZE_MAX && f->reads[i].asks >= FO_OWN_READ_ASKS;
}

/* Which round needs proposing, if any. */
static bool work_round(const struct fo *f, const struct inst *in, uint64_t now, uint32_t *out)
{
	/* nobody coordinates its own failover, nor the first round of a
	 * recovery of its own (the others decide what it owes) — except to
	 * carry a value the others chose there when our read of it is stuck
	 * (own_claim_unproven; promises_decide never lets us choose our own);
	 * the later rounds of one of an incarnation of ours that is over, we
	 * may: the hand-backs and parked VMs of our own recovery, when its
	 * other coordinators are gone */
	if (in->done ||
	    (is_self(f, in->dead) &&
	     (in->inc >= f->incarnation || (!in->rounds[0].chosen && !own_claim_unproven(f, in)))))
		return false;
	bool any;
	uint32_t h = highest_chosen(in, f->n_rounds, &any);
	if (!in->rounds[0].chosen) {
		if (!acceptor_may(f, in, 0) || in->superseded_by)
			return false;
		*out = 0;
		return true;
	}
	for (uint32_t r = 1; r < h; r++)
		if (!in->rounds[r].chosen) {
			*out = r;
			return true;
		}
	if (h + 1 >= f->n_rounds)
		return false;
	uint64_t at;
	for (size_t p = 0; p < in->n_pend; p++)
		if (in->pend[p].failed_round <= h) {
			if (!batch_ready(f, in, now, &at))
				return false;
			*out = h + 1;
			return true;
		}
	return false;
}

static void check_done(struct fo *f, struct inst *in, uint64_t now)
{
	if (in->done || !in->rounds[0].chosen)
		return;
	for (uint32_t r = 0; r < f->n_rounds; r++) {
		struct round *rd = &in->rounds[r];
		if (!rd->chosen)
			continue;
		for (size_t e = 0; e < rd->plan.n; e++)
			if (rd->ents[e].st == E_WAIT)
				return;
	}
	uint32_t w;
	if (work_round(f, in, now, &w))
		return;
	bool any;
	uint32_t h = highest_chosen(in, f->n_rounds, &any);
	if (in->n_pend && h + 1 >= f->n_rounds) {
		for (size_t p = 0; p < in->n_pend; p++)
			park(f, in, &in->pend[p].e, in->pend[p].failed_round, in->pend[p].tries,
			     "not placed: every round of this failover is used", true);
		in->n_pend = 0;
	}
	in->done = true;
	in->done_at = now;
	for (uint32_t r = 0; r < f->n_rounds; r++) {
		struct round *rd = &in->rounds[r];
		rd->pphase = 0;
		fo_plan_clear(&rd->best_plan);
		fo_plan_clear(&rd->value);
	}
}

static void set_fenced(struct fo *f, struct inst *in, const char *how, uint64_t now, bool event)
{
	if (in->fenced)
		return;
	in->fenced = true;
	in->fenced_at = now;
	in->fence_wait_at = 0;
	cpy(in->fence_how, sizeof(in->fence_how), how);
	if (event) {
		struct fo_instance_id id;
		inst_id(&id, in, 0);
		push_event(f, FO_EV_FENCE_CONFIRMED, &id, in->dead, "%s", how);
	}
}

/* A recovery of ours that we heard being decided holds back our next new
 * incarnation (for VMs stopped here) this long after the last message. */
#define FO_OWN_RECOVERY_QUIET_MS 60000

/* The first retry of parked VMs waits this long, doubled per retry that
 * changed nothing, at most twice (40 s): a retry only computes a
 * placement here (a round is proposed only when one fits), and room that
 * comes back (a host rejoins, an operator adds one) should be used within
 * a minute, not five. */
#define FO_PARK_RETRY_MS 10000
#define FO_PARK_BACKOFF_MAX 2

/* Parks a VM no round could place (no room, or handed back max_rounds
 * times): it waits for room (retry_parked) instead of being given up. */
static void park(struct fo *f, struct inst *in, const struct fo_plan_entry *e, uint32_t r,
                 uint32_t tries, const char *why, bool report)
{
	if (replaced_after(f, in, r, e->uuid))
		return; /* a later round (learned first) has it already */
	for (size_t p = 0; p < in->n_parked; p++)
		if (strcmp(in->parked[p].e.uuid, e->uuid) == 0) {
			if (in->parked[p].failed_round < r) {
				in->parked[p].e = *e;
				in->parked[p].failed_round = r;
			}
			return;
		}
	struct pend *np = grow(in->parked, &in->cap_parked, in->n_parked + 1, sizeof(*np));
	if (!np)
		return;
	in->parked = np;
	in->parked[in->n_parked] =
	    (struct pend){.e = *e, .failed_round = r, .added_at = f->last_now, .tries = tries};
	in->n_parked++;
	if (!in->park_retry_at)
		in->park_retry_at =
		    sat_add(f->last_now, (uint64_t)FO_PARK_RETRY_MS << in->park_backoff);
	if (!report)
		return;
	struct fo_instance_id id;
	inst_id(&id, in, r);
	struct fo_event *ev =
	    push_event(f, FO_EV_NO_ROOM, &id, NULL, "%s %s: waiting for room", e->name, why);
	ev->entry = *e;
	ev->entry.target[0] = '\0';
}

static void add_pending(struct fo *f, struct inst *in, const struct fo_plan_entry *e, uint32_t r)
{
	if (replaced_after(f, in, r, e->uuid))
		return;
	/* The same placement in an older recovery of the host (ours adopted
	 * it): the oldest one holding it re-places it, so that one instance
	 * only does (the others mark theirs handed back too). */
	struct inst *oldest = NULL;
	uint32_t oround = 0;
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *o = f->inst[i];
		if (o == in || o->inc >= in->inc || strcmp(o->dead, in->dead) != 0)
			continue;
		for (uint32_t k = 0; k < f->n_rounds; k++) {
			struct round *ok = &o->rounds[k];
			for (size_t j = 0; ok->chosen && j < ok->plan.n; j++) {
				const struct fo_plan_entry *q = &ok->plan.entries[j];
				if (q->new_epoch != e->new_epoch || strcmp(q->uuid, e->uuid) != 0 ||
				    strcmp(q->target, e->target) != 0)
					continue;
				if (ok->ents[j].st == E_OK || ok->ents[j].running)
					return; /* it was started for that one: it runs, or its own
					           report decides */
				if (ok->ents[j].st == E_WAIT) {
					ok->ents[j].st = E_HANDED;
					cpy(ok->ents[j].text, sizeof(ok->ents[j].text),
					    "handed back (the same placement in a newer recovery)");
				}
				if (!oldest || o->inc < oldest->inc) {
					oldest = o;
					oround = k;
				}
			}
		}
	}
	if (oldest) {
		oldest->done = false;
		if (!oldest->working)
			oldest->work_since = f->last_now;
		in = oldest;
		r = oround;
		if (replaced_after(f, in, r, e->uuid))
			return;
	}
	for (size_t p = 0; p < in->n_pend; p++)
		if (strcmp(in->pend[p].e.uuid, e->uuid) == 0) {
			if (in->pend[p].failed_round < r) {
				in->pend[p].e = *e;
				in->pend[p].failed_round = r;
				in->pend[p].tries++;
			}
			return;
		}
	/* a VM handed back by every host it was given to, max_rounds times */
	uint32_t tries = 1;
	for (uint32_t k = 0; k < r && k < FO_ROUNDS_MAX; k++)
		if (in->rounds[k].chosen && plan_has_uuid(&in->rounds[k].plan, e->uuid))
			tries++;
	if (tries > f->cfg.max_rounds) {
		char why[64];
		snprintf(why, sizeof(why), "handed back %u times", tries);
		park(f, in, e, r, tries, why, true);
		return;
	}
	struct pend *np = grow(in->pend, &in->cap_pend, in->n_pend + 1, sizeof(*np));
	if (!np)
		return;
	in->pend = np;
	in->pend[in->n_pend] =
	    (struct pend){.e = *e, .failed_round = r, .added_at = f->last_now, .tries = tries};
	in->n_pend++;
}

static void schedule_restarts(struct fo *f, uint64_t now);
static void obey_fence_order(struct fo *f, const struct fo_instance_id *inst,
                             const struct fo_plan *plan, const char *from, uint64_t now);
static size_t withholding(const struct fo *f, uint64_t now);
static void fence_order_in(struct fo *f, const struct fo_instance_id *inst,
                           const struct fo_plan *plan, const char *from, uint64_t now);

/* The timed fence of a chosen plan: F + margin from learning it, or, with
 * an ack bound (our clock), quorate_ms + F + margin from the bound when
 * that is sooner. Every candidate is safe on its own, so the earliest
 * wins (WHY NO VM RUNS TWICE). */
static void arm_fence_wait(struct fo *f, struct inst *in, bool has_bound, uint64_t bound,
                           uint64_t now)
{
	if (in->fenced)
		return;
	uint64_t wait = (uint64_t)f->cfg.fence_after_ms + f->cfg.fence_margin_ms;
	uint64_t at = sat_add(now, wait);
	bool by_bound = false;
	if (has_bound) {
		uint64_t ab = sat_add(bound, wait + f->cfg.quorate_ms);
		if (ab < at) {
			at = ab;
			by_bound = true;
		}
	}
	if (!in->fence_wait_at || at < in->fence_wait_at) {
		in->fence_wait_at = at;
		in->fence_wait_bound = by_bound;
	}
}

static void send_fenced(struct fo *f, const struct fo_instance_id *id, const char *how);

/* A first plan for an incarnation of ours (RECOVERY). Fenced through it
 * already (a self-fence, an order): nothing runs here below those epochs.
 * Otherwise destroy here every VM it lists whose local copy is older than
 * the plan's epoch: exactly what a FENCE_ORDER for this plan alone would
 * do. Then say so. fenced_through does not move: other instances of ours
 * may still be undecided, and only an order that lists them all may claim
 * them. */
static void obey_own_plan(struct fo *f, struct inst *in, uint32_t round, const struct fo_plan *plan,
                          uint64_t now)
{
	struct fo_instance_id id;
	inst_id(&id, in, round);
	char how[FO_TEXT_MAX];
	if (f->fenced_through >= in->inc) {
		snprintf(how, sizeof(how), "the host itself: fenced through incarnation %" PRIu64,
		         f->fenced_through);
	} else {
		struct fo_event *e = push_event(f, FO_EV_FENCE_VMS, &id, f->cfg.name,
		                                "recovery plan for our incarnation %" PRIu64
		                                ": destroy %zu listed VMs below their new epochs",
		                                in->inc, plan->n);
		fo_plan_copy(&e->plan, plan);
		snprintf(how, sizeof(how), "destroyed by the host itself");
	}
	set_fenced(f, in, how, now, true);
	send_fenced(f, &id, how); /* (FENCED is per instance: round 0) */
}

/* Learn that `plan` is chosen for (in, round); with has_bound, `bound` (our
 * clock) is an upper bound of the last ack to in->dead by every acceptor
 * of a majority that accepted in this instance. */
/* A chosen first round of a recovery: older recoveries of the same host
 * still undecided are over — this plan took over what they may have
 * placed (RECOVERY). (One with a later round chosen was decided, though we
 * did not learn its round 0: a later round follows a chosen round 0.) */
static void supersede_older_recoveries(struct fo *f, const struct inst *in, uint64_t now)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *o = f->inst[i];
		bool decided = false;
		(void)highest_chosen(o, f->n_rounds, &decided);
		if (o->inc < in->inc && !decided && !o->done && strcmp(o->dead, in->dead) == 0) {
			/* (not a recovery of our own whose CHOSEN the others claim
			 * and we are reading: they hold it decided, so the newer
			 * plan left its VMs to it, and we are their target — over
			 * here, it would never start them; we may still carry its
			 * value at a higher ballot, own_claim_unproven. Seed
			 * 4964100799923450909) */
			struct fo_instance_id oid;
			inst_id(&oid, o, 0);
			if (is_self(f, o->dead) && pread_find(f, &oid) != SIZE_MAX)
				continue;
			if (in->inc > o->superseded_by)
				o->superseded_by = in->inc;
			o->done = true;
			o->done_at = now;
			o->rounds[0].pphase = 0;
		}
	}
}

/* What a chosen round settles of the instance's waiting VMs: pending and
 * parked VMs it re-places (or finds no room for) leave their lists, and
 * so do pending ones it left out because another instance holds them
 * (they wait, parked), because they run after all, or moved on since
 * (own_value leaves those out: kept here, they would make round after
 * empty round); its entries without room are parked. */
static void settle_waiting_vms(struct fo *f, struct inst *in, uint32_t round,
                               const struct fo_plan *copy)
{
	struct round *rd = &in->rounds[round];
	for (size_t p = 0; p < in->n_pend;) {
		const struct pend *pd = &in->pend[p];
		if (pd->failed_round < round &&
		    (plan_has_uuid(copy, pd->e.uuid) || pend_gone_by(f, in, pd))) {
			in->pend[p] = in->pend[--in->n_pend];
		} else if (pd->failed_round < round && excluded_vm(rd, pd->e.uuid)) {
			/* acceptors said another failover's value holds it: that
			 * value may never be chosen, so the VM waits, parked (it
			 * leaves the list once a chosen plan places it elsewhere) */
			struct pend keep = *pd;
			in->pend[p] = in->pend[--in->n_pend];
			park(f, in, &keep.e, keep.failed_round, keep.tries,
			     "is in another failover's value", false);
		} else {
			p++;
		}
	}
	for (size_t p = 0; p < in->n_parked;) {
		if (in->parked[p].failed_round < round && plan_has_uuid(copy, in->parked[p].e.uuid))
			in->parked[p] = in->parked[--in->n_parked];
		else
			p++;
	}
	for (size_t e = 0; e < copy->n; e++) {
		if (copy->entries[e].target[0])
			continue;
		rd->ents[e].st = E_NOROOM;
		cpy(rd->ents[e].text, sizeof(rd->ents[e].text), "no host had room");
		char why[96];
		snprintf(why, sizeof(why), "(%u vCPUs, %" PRIu64 " MiB) fits on no host",
		         copy->entries[e].vcpus, copy->entries[e].memory_kib / 1024);
		park(f, in, &copy->entries[e], round, 0, why, true);
	}
}

/* This node's part in the fence of a chosen plan: a plan for one of our
 * own incarnations is obeyed here; another host's is tracked (the timed
 * fence); the coordinator of a first round asks for the remote fence of a
 * host that is not back. */
static void fence_chosen(struct fo *f, struct inst *in, uint32_t round, const struct fo_ballot *b,
                         const struct fo_plan *copy, const struct fo_instance_id *id, uint64_t now,
                         bool mine, bool has_bound, uint64_t bound)
{
	if (is_self(f, in->dead)) {
		/* A plan for one of our own incarnations (we restarted, fenced
		 * ourselves, or recover our stopped VMs): we are alive to carry
		 * it out. Its VMs die here first, below their new epochs, then
		 * the targets — often this host — start them. A plan for the
		 * incarnation we live in (the others failed us over while we were
		 * cut off) is a fence order: what we started for other failovers
		 * at this incarnation goes too — a later round re-places it
		 * (late_owed), counting on this fence — and we move on to a new
		 * incarnation. */
		bool living = in->inc >= f->incarnation && f->fenced_through < in->inc;
		if (copy->n > 0 && !in->fenced && !living) {
			obey_own_plan(f, in, round, copy, now);
		} else if (copy->n > 0 && !in->fenced && round > 0 &&
		           withholding(f, now) >= majority_of(f->eff_voters)) {
			/* a later round learned before round 0 (which the order
			 * must carry, with everything up to it): its VMs die, and
			 * nothing is vouched for until the order comes (without a
			 * majority withholding from us, nothing dies on the word
			 * of the peer that told us: the order, or our self-fence,
			 * comes) */
			struct fo_event *e =
			    push_event(f, FO_EV_FENCE_VMS, id, f->cfg.name,
			               "failed over at the incarnation we live in "
			               "(%" PRIu64 "), round %u first: destroy %zu listed "
			               "VMs below their new epochs",
			               in->inc, round, copy->n);
			fo_plan_copy(&e->plan, copy);
		} else if (copy->n > 0 && !in->fenced && round == 0) {
			struct fo_instance_id iid;
			inst_id(&iid, in, 0);
			fence_order_in(f, &iid, copy, b->proposer, now);
		}
	} else if (copy->n && !in->fenced) {
		/* every learner tracks the fence (for the record); only targets act */
		arm_fence_wait(f, in, has_bound, bound, now);
	}
	/* A remote fence destroys every HA VM on the host, as a dead agent's
	 * host must be: not for a host that is up at a newer incarnation (it
	 * carries the plan out itself, and may run VMs of newer plans). The
	 * first round's coordinator asks, and so does every target of the
	 * first round: a target believes only its own result (or X's word,
	 * or the timed wait), never another voter's FENCED (handle_fenced).
	 * Only round 0, chosen soon after the death: a later round may be
	 * chosen minutes later, when X may have come back at a newer
	 * incarnation we have not heard of yet and run VMs of newer plans,
	 * which a fence of every HA VM would destroy (the daemon also leaves
	 * a listed VM alone at or above its new epoch, and the fence then
	 * fails). A later round's target waits for X's word or the timed
	 * wait, which it armed when it learned round 0 (arm_fence_wait), or
	 * uses its own round-0 fence. The destroys are idempotent. Never X
	 * itself, whose ballot may choose a round 0 of its own recovery
	 * (own_claim_unproven): it carries the plan out (obey_own_plan). */
	const struct mrec *xr = member_find(f, in->dead);
	bool back = xr && (member_up(f, xr) || beating(f, xr)) && known_after(xr, in->inc);
	bool target = false;
	for (size_t e = 0; e < copy->n && !target; e++)
		target = is_self(f, copy->entries[e].target);
	if (round == 0 && (mine || target) && !is_self(f, in->dead) && copy->n > 0 && !in->fenced &&
	    !in->remote_fence_sent && !back) {
		in->remote_fence_sent = true;
		push_event(f, FO_EV_REMOTE_FENCE, id, in->dead,
		           "destroy %s's HA VMs through its hypervisor", in->dead);
	}
}

static void learn(struct fo *f, struct inst *in, uint32_t round, const struct fo_ballot *b,
                  const struct fo_plan *plan, uint64_t now, bool mine, bool has_bound,
                  uint64_t bound)
{
	struct round *rd = &in->rounds[round];
	if (rd->chosen) {
		/* another choosing majority's bound (a later CHOSEN): just as good */
		if (has_bound && (!rd->has_bound || bound < rd->ack_bound)) {
			rd->has_bound = true;
			rd->ack_bound = bound;
			if (rd->plan.n)
				arm_fence_wait(f, in, true, bound, now);
		}
		return;
	}
	struct fo_plan copy;
	if (fo_plan_copy(&copy, plan) < 0)
		return;
	struct ent *ents = calloc(copy.n ? copy.n : 1, sizeof(*ents));
	if (!ents) {
		fo_plan_clear(&copy);
		return;
	}
	rd->chosen = true;
	rd->chosen_ballot = *b;
	for (size_t e = 0; e < copy.n; e++)
		given_note(f, &copy.entries[e]);
	rd->plan = copy;
	rd->ents = ents;
	rd->chosen_at = now;
	rd->has_bound = has_bound;
	rd->ack_bound = has_bound ? bound : 0;
	rd->pphase = 0;
	fo_plan_clear(&rd->best_plan);
	fo_plan_clear(&rd->value);
	in->done = false;
	if (copy.n > 0) {
		struct mrec *xr = member_add(f, in->dead);
		if (xr)
			raise_inst_max(f, xr, in->inc);
	}
	if (round == 0)
		supersede_older_recoveries(f, in, now);

	struct fo_instance_id id;
	inst_id(&id, in, round);
	size_t n_self = 0, n_room = 0;
	for (size_t e = 0; e < copy.n; e++) {
		if (!copy.entries[e].target[0])
			n_room++;
		else if (is_self(f, copy.entries[e].target))
			n_self++;
	}
	struct fo_event *ev =
	    push_event(f, FO_EV_CHOSEN, &id, b->proposer,
	               "plan for %s incarnation %" PRIu64 " round %u: %zu VMs, "
	               "%zu here, %zu without room (ballot %" PRIu64 "/%s)",
	               in->dead, in->inc, round, copy.n, n_self, n_room, b->number, b->proposer);
	fo_plan_copy(&ev->plan, &copy);
	settle_waiting_vms(f, in, round, &copy);
	fence_chosen(f, in, round, b, &copy, &id, now, mine, has_bound, bound);
	in->working = false;
	in->propose_at = UINT64_MAX;
	schedule_restarts(f, now);
	check_done(f, in, now);
}

/* The epoch of the stopped copy of uuid our own published state lists
 * (0: none, or it runs). */
static uint64_t stopped_here_epoch(const struct fo *f, const char *uuid)
{
	const struct fo_host *h = host_of(f, f->cfg.name);
	for (size_t v = 0; h && v < h->n_vms; v++)
		if (!h->vms[v].running && strcmp(h->vms[v].uuid, uuid) == 0)
			return h->vms[v].epoch;
	return 0;
}

/* Whether host `name`'s gossiped state lists VM uuid running at `epoch`
 * or newer (its published allocation then counts it). */
static bool host_lists_running(const struct fo *f, const char *name, const char *uuid,
                               uint64_t epoch)
{
	const struct fo_host *h = host_of(f, name);
	for (size_t v = 0; h && v < h->n_vms; v++)
		if (h->vms[v].running && h->vms[v].epoch >= epoch &&
		    strcmp(h->vms[v].uuid, uuid) == 0)
			return true;
	return false;
}

/* An entry of a chosen plan that holds room on its target: with a
 * target, not known dead (its target fenced since, or its VM moved on by
 * a newer plan), and either still to be started or started so recently
 * that the target's gossiped state may not count it yet — for up to
 * FO_OK_HOLD_MS after it was learned running, until that state lists it.
 * Without the second half a plan made in that window (a later round
 * placing parked VMs) saw the room the restart had just taken, and
 * overbooked the target (simulator: test_no_room_lowest_priority, O5,
 * about one seed in ten). */
#define FO_OK_HOLD_MS 30000
static bool outstanding_entry(const struct fo *f, const struct round *rd, size_t e)
{
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	const struct ent *st = &rd->ents[e];
	if (!pe->target[0] || target_fenced(f, pe) || moved_on(f, pe))
		return false;
	if (st->st == E_WAIT)
		return true;
	return st->st == E_OK && f->last_now - st->ok_at < FO_OK_HOLD_MS &&
	       !host_lists_running(f, pe->target, pe->uuid, pe->new_epoch);
}

static void outstanding_plan(const struct fo *f, struct fo_plan *out)
{
	size_t n = 0;
	out->n = 0;
	out->entries = NULL;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			if (rd->chosen)
				for (size_t e = 0; e < rd->plan.n; e++)
					n += outstanding_entry(f, rd, e);
		}
	if (!n || !(out->entries = malloc(n * sizeof(*out->entries))))
		return;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			if (rd->chosen)
				for (size_t e = 0; e < rd->plan.n; e++)
					if (outstanding_entry(f, rd, e))
						out->entries[out->n++] = rd->plan.entries[e];
		}
}

/* Hosts as membership sees them (alive from fo_member), minus `excl`. */
static struct fo_host *hosts_view(const struct fo *f, const char *const *excl, size_t n_excl,
                                  size_t *n_out)
{
	*n_out = 0;
	struct fo_host *h = malloc((f->n_hosts ? f->n_hosts : 1) * sizeof(*h));
	if (!h)
		return NULL;
	for (size_t i = 0; i < f->n_hosts; i++) {
		const char *name = f->hosts[i].cap.name;
		bool skip = false;
		for (size_t x = 0; x < n_excl && !skip; x++)
			skip = strcmp(excl[x], name) == 0;
		if (skip)
			continue;
		struct fo_host c = f->hosts[i];
		const struct mrec *r = member_find(f, name);
		/* alive to membership, or heartbeating us now from an incarnation
		 * newer than membership holds dead (SWIM has not caught up yet) */
		c.cap.alive = is_self(f, name) || (r && r->voter && !r->removed &&
		                                   (r->st == FO_ALIVE || beating(f, r)));
		h[(*n_out)++] = c;
	}
	return h;
}

/* Was this VM already moved by a chosen plan we know, to an epoch above
 * the one the (possibly stale) gossiped view shows? Then the view's copy
 * on the dead host is history, not a VM to restart. */
static bool moved_since(const struct fo *f, const struct fo_vm *vm, const struct fo_plan *sup,
                        const char *x)
{
	if (given_above(f, nz(vm->uuid), vm->epoch))
		return true; /* (also when that plan has left the history) */
	/* (an entry without a target placed nothing: no room; one at x's own
	 * epoch on another host is a live migration away from x, MOVES) */
	for (size_t e = 0; sup && e < sup->n; e++)
		if (sup->entries[e].target[0] &&
		    (sup->entries[e].new_epoch > vm->epoch ||
		     (sup->entries[e].new_epoch == vm->epoch &&
		      strcmp(sup->entries[e].target, x) != 0)) &&
		    strcmp(sup->entries[e].uuid, nz(vm->uuid)) == 0)
			return true;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			if (!rd->chosen)
				continue;
			for (size_t e = 0; e < rd->plan.n; e++)
				if (rd->plan.entries[e].target[0] &&
				    rd->plan.entries[e].new_epoch > vm->epoch &&
				    strcmp(rd->plan.entries[e].uuid, nz(vm->uuid)) == 0)
					return true;
		}
	return false;
}

static bool excluded_vm(const struct round *rd, const char *uuid)
{
	for (size_t i = 0; i < rd->n_xvm; i++)
		if (strcmp(rd->xvm[i], uuid) == 0)
			return true;
	return false;
}

/* Leaves `uuid` out of our own values for this round from now on (an
 * acceptor refused it as placed by another instance). False when out of
 * memory. */
static bool exclude_vm(struct round *rd, const char *uuid)
{
	if (excluded_vm(rd, uuid))
		return true;
	char(*nx)[FO_UUID_MAX] = realloc(rd->xvm, (rd->n_xvm + 1) * sizeof(*nx));
	if (!nx)
		return false;
	rd->xvm = nx;
	cpy(rd->xvm[rd->n_xvm++], FO_UUID_MAX, uuid);
	return true;
}

/* ------------------------------------------------------------------------ */
/* Recovery: owed VMs (RECOVERY, docs/failover-protocol.md)                */

/* Is this member up, as far as we know (ourselves, or fed and alive or
 * suspected, not gone)? */
/* Heartbeating us now (within the quorate window) from an incarnation
 * newer than the one membership holds it dead at: alive, whatever SWIM
 * still says (under loss SWIM's probes can keep failing while our
 * heartbeats get through). */
/* Is r known at an incarnation newer than `inc` (membership or its
 * heartbeats say so)? */
static bool known_after(const struct mrec *r, uint64_t inc)
{
	return r->inc > inc || r->hb_inc > inc;
}

static bool beating(const struct fo *f, const struct mrec *r)
{
	return r->hb_at && r->hb_inc > r->dead_max && !r->removed && !r->left &&
	       f->last_now < sat_add(r->hb_at - 1, f->cfg.quorate_ms);
}

static bool member_up(const struct fo *f, const struct mrec *r)
{
	if (r == &f->m[f->self_idx])
		return true;
	return r->fed && !r->left && !r->removed && (r->st == FO_ALIVE || r->st == FO_SUSPECT);
}

/* Did a live migration from `source` land `uuid` on `x` at `epoch` (MOVED)?
 * Then source's listing of it at that epoch is the copy that left. */
static bool moved_copy_of(const struct fo *f, const char *uuid, uint64_t epoch, const char *source,
                          const char *x)
{
	for (size_t k = 0; k < f->n_moves; k++) {
		const struct fo_move *mv = &f->moves[k].m;
		if (mv->state == FO_MOVE_MOVED && mv->epoch == epoch &&
		    strcmp(mv->uuid, uuid) == 0 && strcmp(mv->source, source) == 0 &&
		    strcmp(mv->target, x) == 0)
			return true;
	}
	return false;
}

/* The host (and *epoch) of an up host other than `not_on` that runs
 * `uuid` with an epoch above `above`, in the view; NULL when none. With
 * `landed_on`, a listing by the source of a live migration that landed
 * that very copy on `landed_on` (moved_copy_of) does not count; with
 * `handed`, neither does its target's listing at its epoch (the copy it
 * handed back: runs_besides_handed_back). */
static const char *copy_elsewhere(const struct fo *f, const char *uuid, uint64_t above,
                                  const char *not_on, const char *landed_on,
                                  const struct fo_plan_entry *handed, uint64_t *epoch)
{
	for (size_t i = 0; i < f->n_hosts; i++) {
		const struct fo_host *h = &f->hosts[i];
		if (not_on && strcmp(h->cap.name, not_on) == 0)
			continue;
		const struct mrec *r = member_find(f, h->cap.name);
		if (!r || !(member_up(f, r) || beating(f, r)))
			continue;
		bool handed_here = handed && strcmp(h->cap.name, handed->target) == 0;
		for (size_t v = 0; v < h->n_vms; v++) {
			const struct fo_vm *hv = &h->vms[v];
			if (!hv->running || hv->epoch <= above || strcmp(nz(hv->uuid), uuid) != 0 ||
			    (landed_on &&
			     moved_copy_of(f, uuid, hv->epoch, h->cap.name, landed_on)) ||
			    (handed_here && hv->epoch == handed->new_epoch))
				continue;
			if (epoch)
				*epoch = hv->epoch;
			return h->cap.name;
		}
	}
	return NULL;
}

/* Does an up host other than `not_on` run `uuid` with an epoch above
 * `above`, in the view? (It moved there: a newer generation.) */
static const char *running_elsewhere(const struct fo *f, const char *uuid, uint64_t above,
                                     const char *not_on, uint64_t *epoch)
{
	return copy_elsewhere(f, uuid, above, not_on, NULL, NULL, epoch);
}

/* What owed_of works from: x's listing at an incarnation <= inc (a view's
 * state of x, or owned copies: a member's previous state, the instance's
 * base), x's state at a newer incarnation (may be NULL), and where the VMs
 * owed go (out, up to cap; n counts them all). */
struct owed_scan {
	const char *x;
	uint64_t inc;
	const struct fo_plan *sup;
	const struct inst *in;
	const struct fo_host *newer;
	const struct fo_vm *bv;
	const struct hvm *bp;
	size_t nb;
	struct fo_vm *out;
	size_t cap, n;
};

/* Does the listing show `uuid` at `epoch` or a newer one? */
static bool owed_listed_at(const struct owed_scan *o, const char *uuid, uint64_t epoch)
{
	for (size_t b = 0; b < o->nb; b++)
		if (strcmp(o->bv ? nz(o->bv[b].uuid) : o->bp[b].uuid, uuid) == 0 &&
		    (o->bv ? o->bv[b].epoch : o->bp[b].epoch) >= epoch)
			return true;
	return false;
}

/* Does an up host other than x run `uuid` above `above` (running_elsewhere),
 * leaving out a listing of it at epoch e by the source of a live migration
 * that landed it on x at e (MOVED)? A move keeps the epoch the source bumped
 * at its start and carries that very copy to x, so such a listing is the
 * source's stale one (published before the VM left, and not yet replaced:
 * a partition, say), as in runs_at_base_elsewhere. Any other copy — at a
 * newer epoch, or on another host — counts. Before, n4's stale listing of
 * vm4.3 at epoch 2, which had moved to n6 at 2, made the VM "running
 * elsewhere" for n6's failover, decided without it, and nobody owed it once
 * n4's fresh state came (seed 4200452354537950962, migrations). */
static bool runs_elsewhere_not_landed(const struct fo *f, const char *uuid, uint64_t above,
                                      const char *x)
{
	return copy_elsewhere(f, uuid, above, x, x, NULL, NULL) != NULL;
}

/* Is VM v (uuid, at v->epoch) no longer x's: a chosen plan we know (or
 * `sup`) moved it on, an up host runs it above `above` (not the source's
 * stale listing of a copy that moved to x: runs_elsewhere_not_landed), a
 * live migration took it away, or x kept it at its newer incarnation? */
static bool owed_gone(const struct fo *f, const struct owed_scan *o, const struct fo_vm *v,
                      const char *uuid, uint64_t above)
{
	return moved_since(f, v, o->sup, o->x) || runs_elsewhere_not_landed(f, uuid, above, o->x) ||
	       move_away(f, uuid, o->x, v->epoch) || kept_by_newer(o->newer, uuid, v->epoch);
}

static void owed_add(struct owed_scan *o, const struct fo_vm *v)
{
	if (o->out && o->n < o->cap)
		o->out[o->n] = *v;
	o->n++;
}

/* v owed, from at least the epoch a live migration of it away from x that
 * stayed left on x's copy (no epoch is given twice): what x listed, what
 * plans gave it and what landed on it alike. A VM that landed on x (or was
 * given to it) and then stayed from a move away had its copy bumped past
 * the epoch it arrived with (simulator, fresh seed 6186887688534639916 on
 * the CHOSEN-proof branch: owed at the landed epoch 3, a move away stayed
 * at 4, the plan gave 4 again: O4). */
static void owed_add_above_stayed(const struct fo *f, struct owed_scan *o, struct fo_vm *v)
{
	uint64_t stayed = move_stayed_epoch(f, nz(v->uuid), o->x, v->epoch);
	/* ... and one an acceptor told in its PROMISE (an entry without a
	 * target and without a base: m7), which we may never have heard of.
	 * (A chosen plan's no-room entry, also in a PROMISE, has no target
	 * but a base: not a floor.) */
	for (size_t e = 0; o->sup && e < o->sup->n; e++) {
		const struct fo_plan_entry *se = &o->sup->entries[e];
		if (!se->target[0] && !se->has_base && se->new_epoch > stayed &&
		    strcmp(se->uuid, nz(v->uuid)) == 0)
			stayed = se->new_epoch;
	}
	if (stayed > v->epoch)
		v->epoch = stayed;
	owed_add(o, v);
}

/* What x listed: owed unless gone (owed_gone), from at least the epoch a
 * live migration that stayed left on x's copy. */
static void owed_listing(const struct fo *f, struct owed_scan *o)
{
	for (size_t i = 0; i < o->nb; i++) {
		struct fo_vm v = o->bv ? o->bv[i] : hvm_view(&o->bp[i]);
		/* (at the same epoch too: a live migration keeps the epoch the
		 * source bumped at its start, so the source may have published
		 * it before the VM moved) */
		if (owed_gone(f, o, &v, nz(v.uuid), v.epoch ? v.epoch - 1 : 0))
			continue;
		/* (after the tests above: x's copy may still be at the epoch it
		 * had, a move called off before its bump) */
		v.running = true;
		owed_add_above_stayed(f, o, &v);
	}
}

/* What chosen plans gave to x at an incarnation <= inc: x may have started
 * it (or been about to) before its state showed it — once the plan's own
 * fence is confirmed (before that, the VM may still run on the host that
 * plan fails over, and x would not start it yet). */
static void owed_given(const struct fo *f, struct owed_scan *o)
{
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; f->inst[i]->fenced && r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				if ((rd->ents[e].st != E_OK && rd->ents[e].st != E_WAIT) ||
				    !pe->target_incarnation || pe->target_incarnation > o->inc ||
				    strcmp(pe->target, o->x) != 0 ||
				    !given_newest(f, o->x, o->inc, pe))
					continue;
				struct fo_vm v = {.uuid = pe->uuid,
				                  .name = pe->name,
				                  .group = pe->group,
				                  .priority = pe->priority,
				                  .vcpus = pe->vcpus,
				                  .memory_kib = pe->memory_kib,
				                  .epoch = pe->new_epoch,
				                  .running = true};
				if (owed_listed_at(o, pe->uuid, pe->new_epoch) ||
				    owed_gone(f, o, &v, pe->uuid, pe->new_epoch))
					continue;
				owed_add_above_stayed(f, o, &v);
			}
		}
}

/* Did move r land (MOVED) on in's host at an incarnation in fails over
 * (or one the target never said: it died before telling), and did in's
 * fence, one that covers every HA VM of that life (self-fence, watchdog,
 * remote fence), come after this node heard of the move? Then the copy
 * that landed went with that life: in owes it (m3) — also when the target
 * is back at a newer incarnation, where move_target_gone says no (it may
 * run what landed there). What its newer state runs is left out
 * (owed_of: kept_by_newer), and a later round's value for a host that is
 * back carries a fence order that makes it destroy what the plan lists
 * before anyone starts the VM (stayed_owed). Before, the target's failover
 * never owed such a VM once the target was back: seeds 5278054762612387037
 * and 3906509806453018642 (migrations; in the second the target's agent
 * crashed before the move landed, so no target incarnation). */
static bool landed_fenced(const struct inst *in, const struct move *r)
{
	return in && in->fenced && in->fence_total && in->known_at >= r->heard &&
	       r->m.state == FO_MOVE_MOVED && strcmp(r->m.target, in->dead) == 0 &&
	       (!r->m.target_inc || r->m.target_inc <= in->inc);
}

/* A VM that landed on x at `epoch` (owed_landed), which a chosen plan of
 * another instance then placed from that very copy (base `epoch`) above
 * it — the newest placement of it we know (given) — and every chosen
 * placement of it above `epoch` that we hold is handed back and not
 * running (E_HANDED: its target never starts it, or what it started was
 * destroyed): no placement above the landed copy runs it, so that dead
 * placement does not make the VM "moved on" for x's failover. Returns the
 * epoch to owe it from (the dead placement's, so that no epoch is given
 * twice), 0 when the rule does not apply — also while another instance
 * holds the VM pending (a hand-back re-plans it there): that one re-places
 * it, never both. The instance whose placement was handed back stops owing
 * it once the move took it away (pend_gone_by: moved_from). Before, n7's
 * failover placed vm7.1 from n7's copy after it had moved to n4 (handed
 * back: not n7's), and that placement hid the VM from n4's failover for
 * good (seed 5278054762612387037 with migrations). */
static uint64_t handed_back_floor(const struct fo *f, const struct inst *in, const char *uuid,
                                  uint64_t epoch)
{
	const struct given *g = given_find(f, uuid);
	if (!g || g->epoch <= epoch || !g->has_base || g->base != epoch ||
	    pending_elsewhere(f, in, uuid, 0))
		return 0;
	bool seen = false;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *q = &rd->plan.entries[e];
				if (!q->target[0] || q->new_epoch <= epoch ||
				    strcmp(q->uuid, uuid) != 0)
					continue;
				if (rd->ents[e].st != E_HANDED || rd->ents[e].running)
					return 0;
				seen = seen || (q->new_epoch == g->epoch && q->has_base &&
				                q->base_epoch == g->base &&
				                strcmp(q->target, g->target) == 0);
			}
		}
	return seen ? g->epoch : 0;
}

/* Does move i land its VM on o->x for (o->x, o->inc) (m3, m3b), still owed
 * from there? *v: the VM at the epoch it is owed from. */
static bool landed_owed(const struct fo *f, const struct owed_scan *o, size_t i, struct fo_vm *v)
{
	const struct fo_move *mv = &f->moves[i].m;
	bool doubt = strcmp(mv->target, o->x) == 0 &&
	             move_doubt_on_target(f, &f->moves[i], o->inc); /* m3b */
	if (!doubt && (mv->state != FO_MOVE_MOVED || !mv->epoch || strcmp(mv->target, o->x) != 0 ||
	               !((mv->target_inc && mv->target_inc <= o->inc) ||
	                 move_target_gone(f, &f->moves[i]) || landed_fenced(o->in, &f->moves[i]) ||
	                 (!mv->target_inc && move_target_removed(f, &f->moves[i])))))
		return false;
	if (owed_listed_at(o, mv->uuid, mv->epoch))
		return false;
	if (!vm_info_any(f, mv->uuid, v)) {
		if (!f->moves[i].has_info)
			return false;
		*v = hvm_view(&f->moves[i].info);
	}
	v->epoch = mv->epoch;
	v->running = true;
	if (owed_gone(f, o, v, mv->uuid, mv->epoch - 1)) {
		/* (gone only by a dead placement above the landed copy:
		 * owed from that placement's epoch, handed_back_floor) */
		struct fo_vm w = *v;
		w.epoch = handed_back_floor(f, o->in, mv->uuid, mv->epoch);
		if (!w.epoch || moved_since(f, &w, o->sup, o->x) ||
		    running_elsewhere(f, mv->uuid, mv->epoch - 1, o->x, NULL) ||
		    move_away(f, mv->uuid, o->x, mv->epoch) ||
		    kept_by_newer(o->newer, mv->uuid, mv->epoch))
			return false;
		v->epoch = w.epoch;
	}
	return true;
}

/* What live migrations landed on x at an incarnation <= inc, as the target
 * said, or whose target was fenced whole since we heard of them, or that
 * are in doubt on x (MOVES, m3, m3b): x may run it before its state showed
 * it. Once, though several moves may have landed it there: the first that
 * owes it (a record that does not owe it — moved on since, listed — does
 * not hide a later one that does: a review's test,
 * test_move_in_doubt_after_earlier_landing). */
static void owed_landed(const struct fo *f, struct owed_scan *o)
{
	for (size_t i = 0; i < f->n_moves; i++) {
		struct fo_vm v, w;
		if (!landed_owed(f, o, i, &v))
			continue;
		bool twice = false;
		for (size_t j = 0; j < i && !twice; j++)
			twice = strcmp(f->moves[j].m.uuid, f->moves[i].m.uuid) == 0 &&
			        landed_owed(f, o, j, &w);
		if (!twice)
			owed_add_above_stayed(f, o, &v);
	}
}

/* The HA VMs that (x, inc) owes: those x listed in its latest state
 * published at an incarnation <= inc (running or stopped: their desired
 * state is running), and those chosen plans gave to x or live migrations
 * landed on x at such an incarnation (owed_listing, owed_given,
 * owed_landed), minus those
 *   - a chosen plan we know (or `sup`) moved to a newer epoch,
 *   - an up host runs at a newer epoch (moved by a migration),
 *   - x itself reports running at a newer incarnation (it kept them).
 * *has_base: we know such a state. *ready: we know x's state at its newer
 * incarnation too when x is up at one (else a plan could list VMs it still
 * runs: wait for it). `out` (may be NULL) gets up to `cap` VMs, pointing
 * into the view and member records: valid until the next fo_set_hosts. */
static size_t owed_of(const struct fo *f, const char *x, uint64_t inc, const struct fo_plan *sup,
                      const struct inst *in, struct fo_vm *out, size_t cap, bool *has_base,
                      bool *ready)
{
	const struct mrec *xr = member_find(f, x);
	const struct fo_host *cur = host_of(f, x);
	const struct fo_host *newer = cur && cur->incarnation > inc ? cur : NULL;
	bool up_newer = xr && xr != &f->m[f->self_idx] && (member_up(f, xr) || beating(f, xr)) &&
	                known_after(xr, inc);
	/* what x runs at its newer incarnation must be known: its state, and a
	 * VM list libvirt gave (not the empty list of an agent that never got
	 * one) */
	*ready = !(up_newer && (!newer || newer->inventory_unknown));
	size_t nb = 0;
	const struct fo_vm *bv = NULL;
	const struct hvm *bp = NULL;
	if (cur && cur->incarnation <= inc) {
		bv = cur->vms;
		nb = cur->n_vms;
	} else if (xr && xr->has_prev && xr->prev_inc <= inc) {
		bp = xr->prev;
		nb = xr->n_prev;
	} else if (in && in->has_base) {
		bp = in->base;
		nb = in->n_base;
	} else {
		*has_base = false;
		return 0;
	}
	*has_base = true;
	struct owed_scan o = {.x = x,
	                      .inc = inc,
	                      .sup = sup,
	                      .in = in,
	                      .newer = newer,
	                      .bv = bv,
	                      .bp = bp,
	                      .nb = nb,
	                      .out = out,
	                      .cap = cap};
	owed_listing(f, &o);
	owed_given(f, &o);
	owed_landed(f, &o);
	return o.n;
}

/* Does `newer` (x's state at a newer incarnation, may be NULL) run `uuid`
 * at `epoch` or a newer one: x kept it? */
static bool kept_by_newer(const struct fo_host *newer, const char *uuid, uint64_t epoch)
{
	for (size_t k = 0; newer && k < newer->n_vms; k++)
		if (newer->vms[k].running && newer->vms[k].epoch >= epoch &&
		    strcmp(newer->vms[k].uuid, uuid) == 0)
			return true;
	return false;
}

/* A VM's name, size, priority and group as any state we hold lists it
 * (a host's current one, or a previous incarnation's). */
static bool vm_info_any(const struct fo *f, const char *uuid, struct fo_vm *out)
{
	for (size_t i = 0; i < f->n_hosts; i++)
		for (size_t v = 0; v < f->hosts[i].n_vms; v++)
			if (strcmp(nz(f->hosts[i].vms[v].uuid), uuid) == 0) {
				*out = f->hosts[i].vms[v];
				return true;
			}
	for (size_t i = 0; i < f->n_m; i++)
		for (size_t v = 0; f->m[i].has_prev && v < f->m[i].n_prev; v++) {
			const struct hvm *h = &f->m[i].prev[v];
			if (strcmp(h->uuid, uuid) == 0) {
				*out = hvm_view(h);
				return true;
			}
		}
	return false;
}

/* Is pe the placement of its VM on x (at an incarnation <= inc) with the
 * highest epoch, the first such in plan order among equals? */
static bool given_newest(const struct fo *f, const char *x, uint64_t inc,
                         const struct fo_plan_entry *pe)
{
	bool seen = false;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *q = &rd->plan.entries[e];
				if (q == pe) {
					seen = true;
					continue;
				}
				if (q->target_incarnation && q->target_incarnation <= inc &&
				    (q->new_epoch > pe->new_epoch ||
				     (q->new_epoch == pe->new_epoch && !seen)) &&
				    strcmp(q->target, x) == 0 && strcmp(q->uuid, pe->uuid) == 0 &&
				    (rd->ents[e].st == E_OK || rd->ents[e].st == E_WAIT))
					return false;
			}
		}
	return true;
}

/* Does a chosen plan of another instance place this VM (on a host) above
 * epoch `base`? Then that instance has it in hand. */
static bool placed_by_other(const struct fo *f, const struct inst *in, const char *uuid,
                            uint64_t base)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		for (uint32_t r = 0; o != in && r < f->n_rounds; r++)
			if (o->rounds[r].chosen && places_live(f, &o->rounds[r], uuid, base))
				return true;
	}
	return false;
}

/* A host's newest incarnation we know: from membership or its state. */
static uint64_t newest_inc(const struct fo *f, const char *name)
{
	if (is_self(f, name))
		return f->incarnation;
	const struct mrec *t = member_find(f, name);
	const struct fo_host *h = host_of(f, name);
	uint64_t a = t ? t->inc : 0, b = h ? h->incarnation : 0;
	if (t && t->hb_inc > a)
		a = t->hb_inc;
	return a > b ? a : b;
}

/* May x (recovering an incarnation of its own that is over) take its own
 * VMs back? Only when it is up at a newer incarnation, quorate, healthy and
 * not draining, as it published. */
static bool own_host_eligible(const struct fo *f, const char *x, uint64_t inc)
{
	const struct mrec *xr = member_find(f, x);
	const struct fo_host *cur = host_of(f, x);
	if (!xr || !cur || !((member_up(f, xr) && xr->st == FO_ALIVE) || beating(f, xr)) ||
	    cur->incarnation <= inc)
		return false;
	return cur->quorate && cur->cap.healthy && !cur->cap.draining && !cur->witness;
}

/* Hosts that failed `uuid` in rounds of `in` below `round` chosen within
 * the last FO_EXCLUDE_MS (into excl, at most FO_ROUNDS_MAX): kept off it
 * for a while — not forever (a host short of room then may have room now)
 * and not when it was an incarnation the host has left since (it handed
 * the VM back for that alone). */
#define FO_EXCLUDE_MS 60000
static size_t failed_hosts(const struct fo *f, const struct inst *in, uint32_t round,
                           const char *uuid, const char **excl)
{
	size_t n = 0;
	for (uint32_t k = 0; k < round && k < FO_ROUNDS_MAX; k++) {
		const struct round *rd = &in->rounds[k];
		if (!rd->chosen || f->last_now >= sat_add(rd->chosen_at, FO_EXCLUDE_MS))
			continue;
		for (size_t j = 0; j < rd->plan.n; j++) {
			const struct fo_plan_entry *pj = &rd->plan.entries[j];
			if (pj->target[0] && strcmp(pj->uuid, uuid) == 0 &&
			    !(pj->target_incarnation &&
			      newest_inc(f, pj->target) > pj->target_incarnation)) {
				excl[n++] = pj->target;
				break;
			}
		}
	}
	return n;
}

/* Is `o` an older recovery of in's host that no round of was chosen? Once
 * in's round 0 is chosen, `o` is over (supersede_older_recoveries), and its
 * acceptors refuse its first round as soon as they took part in in's. */
static bool older_undecided(const struct fo *f, const struct inst *in, const struct inst *o)
{
	bool decided = false;
	(void)highest_chosen(o, f->n_rounds, &decided);
	/* (not one a recovery older than in superseded already: that one owed
	 * its VMs, a review) */
	return o != in && o->inc < in->inc && !decided && strcmp(o->dead, in->dead) == 0 &&
	       !(o->superseded_by && o->superseded_by < in->inc);
}

/* Adds to vms[0, *n) (room for cap) what the older undecided recoveries of
 * in's host owe (older_undecided), each VM once: a newer recovery
 * supersedes them, so it owes what they owe as well as what its own
 * incarnation does. Before, a host that came back twice, the second time
 * with a state at the newer incarnation that no longer listed the VMs the
 * older one owed (the host lost their definitions in the crash), had them
 * owed by the older recovery alone; the acceptors refused that one as
 * superseded, the newer plan placed only its own two VMs, and the other
 * four stayed down for good (simulator seed 3060733284737464586,
 * migrations). The older ones' VMs ran on the same host at an older
 * incarnation: the newer instance's fence (the host's own, fenced_through,
 * or the timed one) covers them as it covers its own. */
static size_t owed_by_older(const struct fo *f, const struct inst *in, struct fo_vm *vms, size_t n,
                            size_t cap)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (!older_undecided(f, in, o))
			continue;
		bool has_base = false, ready = false;
		size_t c =
		    owed_of(f, o->dead, o->inc, &in->rounds[0].sup, o, NULL, 0, &has_base, &ready);
		if (!has_base || !ready || !c)
			continue;
		struct fo_vm *ov = calloc(c, sizeof(*ov));
		if (!ov)
			continue;
		size_t on =
		    owed_of(f, o->dead, o->inc, &in->rounds[0].sup, o, ov, c, &has_base, &ready);
		if (on > c)
			on = c;
		for (size_t v = 0; v < on; v++) {
			size_t k = 0;
			while (k < n && strcmp(nz(vms[k].uuid), nz(ov[v].uuid)) != 0)
				k++;
			if (k < n) {
				/* (epochs only grow: from the newer of the two) */
				if (ov[v].epoch > vms[k].epoch)
					vms[k].epoch = ov[v].epoch;
			} else if (n < cap) {
				vms[n++] = ov[v];
			}
		}
		free(ov);
	}
	return n;
}

/* How many VMs the older undecided recoveries of in's host owe at most. */
static size_t owed_by_older_cap(const struct fo *f, const struct inst *in)
{
	size_t cap = 0;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (!older_undecided(f, in, o))
			continue;
		bool has_base = false, ready = false;
		cap +=
		    owed_of(f, o->dead, o->inc, &in->rounds[0].sup, o, NULL, 0, &has_base, &ready);
	}
	return cap;
}

/* Round 0's value: what the dead host owes (owed_of) and what the older
 * undecided recoveries of it owe (owed_by_older), less the VMs the
 * acceptors said another failover's value holds, placed over the view
 * with what chosen plans still hold outstanding. -EAGAIN while we do not
 * know what it owes (others may). */
static int first_round_value(struct fo *f, struct inst *in, const char *excl_host,
                             const char *prefer, const struct fo_plan *outst, struct fo_plan *out)
{
	bool has_base, ready;
	size_t n_h = 0;
	size_t cap =
	    owed_of(f, in->dead, in->inc, &in->rounds[0].sup, in, NULL, 0, &has_base, &ready);
	if (!has_base || !ready)
		return -EAGAIN;
	size_t own_cap = cap;
	cap += owed_by_older_cap(f, in);
	int rc = -ENOMEM;
	struct fo_host *hv = hosts_view(f, NULL, 0, &n_h);
	struct fo_vm *vms = calloc(cap ? cap : 1, sizeof(*vms));
	if (hv && vms) {
		size_t n_vms = owed_of(f, in->dead, in->inc, &in->rounds[0].sup, in, vms, own_cap,
		                       &has_base, &ready);
		if (n_vms > own_cap)
			n_vms = own_cap;
		n_vms = owed_by_older(f, in, vms, n_vms, cap);
		for (size_t v = 0; v < n_vms;)
			if (excluded_vm(&in->rounds[0], vms[v].uuid))
				vms[v] = vms[--n_vms];
			else
				v++;
		rc = fo_plan_compute_prefer(hv, n_h, excl_host, prefer, vms, n_vms, 0, outst, out);
	}
	free(hv);
	free(vms);
	return rc;
}

/* The epochs of a handed-back VM v that a later round places (pe): it
 * moves from the epoch the handed-back entry moved from (an adopted entry
 * keeps its own base), to one above every epoch tried before, and above
 * any epoch a live migration that stayed left on a copy (MOVES): no epoch
 * is given twice. */
static void handed_back_epochs(const struct fo *f, const struct inst *in, uint32_t round,
                               const struct fo_vm *v, struct fo_plan_entry *pe)
{
	for (size_t p = 0; p < in->n_pend; p++) {
		const struct pend *pd = &in->pend[p];
		if (pd->failed_round < round && strcmp(pd->e.uuid, v->uuid) == 0 &&
		    pd->e.new_epoch - 1 - pd->failed_round == v->epoch) {
			pe->base_epoch = entry_base(&pd->e, pd->failed_round);
			break;
		}
	}
	uint64_t stayed = move_stayed_epoch(f, v->uuid, NULL, v->epoch);
	if (stayed >= pe->new_epoch)
		pe->new_epoch = sat_add(stayed, 1);
}

/* A later round's value: the VMs handed back (pending) that are still
 * this instance's, one at a time, in plan order, each kept off every host
 * that already failed it, the earlier ones counted as outstanding
 * (capacity, anti-affinity) for the later ones. */
static int handed_back_value(struct fo *f, struct inst *in, uint32_t round, const char *excl_host,
                             const char *prefer, const struct fo_plan *outst, struct fo_plan *out)
{
	int rc = -ENOMEM;
	size_t n_vms = 0, n_excl = 0, n_h = 0;
	struct fo_host *hv = NULL;
	struct fo_vm *vms = calloc(in->n_pend ? in->n_pend : 1, sizeof(*vms));
	const char **excl = calloc(in->n_pend * FO_ROUNDS_MAX + 1, sizeof(*excl));
	struct fo_plan_entry *acc = calloc(outst->n + in->n_pend + 1, sizeof(struct fo_plan_entry));
	out->entries = calloc(in->n_pend ? in->n_pend : 1, sizeof(*out->entries));
	if (!vms || !excl || !acc || !out->entries) {
		fo_plan_clear(out);
		goto out;
	}
	for (size_t p = 0; p < in->n_pend; p++) {
		const struct pend *pd = &in->pend[p];
		if (pd->failed_round >= round || excluded_vm(&in->rounds[round], pd->e.uuid))
			continue;
		if (pend_gone_by(f, in, pd))
			continue;
		const struct fo_plan_entry *e = &pd->e;
		struct fo_vm *v = &vms[n_vms++];
		v->uuid = e->uuid;
		v->name = e->name;
		v->group = e->group;
		v->priority = e->priority;
		v->vcpus = e->vcpus;
		v->memory_kib = e->memory_kib;
		v->epoch = e->new_epoch - 1 - pd->failed_round;
		v->running = true;
	}
	qsort(vms, n_vms, sizeof(*vms), vm_cmp);
	if (outst->n)
		memcpy(acc, outst->entries, outst->n * sizeof(*acc));
	struct fo_plan so_far = {.n = outst->n, .entries = acc};
	rc = 0;
	for (size_t v = 0; v < n_vms && rc == 0; v++) {
		n_excl = failed_hosts(f, in, round, vms[v].uuid, excl);
		free(hv);
		hv = hosts_view(f, excl, n_excl, &n_h);
		struct fo_plan one;
		rc = hv ? fo_plan_compute_prefer(hv, n_h, excl_host, prefer, &vms[v], 1, round,
		                                 &so_far, &one)
		        : -ENOMEM;
		if (rc == 0) {
			handed_back_epochs(f, in, round, &vms[v], &one.entries[0]);
			out->entries[out->n++] = one.entries[0];
			acc[so_far.n++] = one.entries[0];
			fo_plan_clear(&one);
		}
	}
	if (rc < 0)
		fo_plan_clear(out);
out:
	free(acc);
	free(hv);
	free(vms);
	free(excl);
	return rc;
}

/* The value this node proposes for (in, round) when nothing was accepted. */
static int own_value(struct fo *f, struct inst *in, uint32_t round, struct fo_plan *out)
{
	out->n = 0;
	out->entries = NULL;
	/* the host back at a newer incarnation, quorate and healthy, keeps
	 * what fits on it (RECOVERY) */
	bool own = own_host_eligible(f, in->dead, in->inc);
	const char *excl_host = own ? NULL : in->dead, *prefer = own ? in->dead : NULL;
	struct fo_plan outst;
	outstanding_plan(f, &outst);
	int rc = round == 0 ? first_round_value(f, in, excl_host, prefer, &outst, out)
	                    : handed_back_value(f, in, round, excl_host, prefer, &outst, out);
	for (size_t e = 0; rc == 0 && e < out->n; e++) {
		struct fo_plan_entry *pe = &out->entries[e];
		pe->target_incarnation = pe->target[0] ? newest_inc(f, pe->target) : 0;
	}
	fo_plan_clear(&outst);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Proposer                                                                 */

static uint64_t age_of(const struct inst *in, uint64_t now)
{
	return now > in->first_heard ? now - in->first_heard : 0;
}

static bool resp_mark_as(struct round *rd, size_t idx, uint8_t how)
{
	if (idx >= rd->resp_cap) {
		size_t nc = rd->resp_cap ? rd->resp_cap : 16;
		while (nc <= idx)
			nc *= 2;
		uint8_t *n = realloc(rd->resp, nc);
		if (!n)
			return false;
		memset(n + rd->resp_cap, 0, nc - rd->resp_cap);
		rd->resp = n;
		rd->resp_cap = nc;
	}
	if (rd->resp[idx])
		return false;
	rd->resp[idx] = how;
	if (how == 1)
		rd->n_resp++;
	else
		rd->n_refused++;
	return true;
}

static bool resp_mark(struct round *rd, size_t idx)
{
	return resp_mark_as(rd, idx, 1);
}

static bool resp_has(const struct round *rd, size_t idx)
{
	return idx < rd->resp_cap && rd->resp[idx];
}

static void resp_reset(struct round *rd)
{
	if (rd->resp)
		memset(rd->resp, 0, rd->resp_cap);
	rd->n_resp = 0;
	rd->n_refused = 0;
}

static void acceptor_prepare(struct fo *f, struct inst *in, uint32_t round, const char *from,
                             const struct fo_ballot *b, uint64_t age, uint64_t now);
static void acceptor_accept(struct fo *f, struct inst *in, uint32_t round, const char *from,
                            const struct fo_ballot *b, uint64_t age, const struct fo_plan *plan,
                            uint64_t now);

/* Sends PREPARE or ACCEPT to every voter that has not answered (and to
 * ourselves, in-process, if we have not). */
static void send_phase(struct fo *f, struct inst *in, uint32_t round, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	uint64_t age = age_of(in, now);
	rd->next_retry = sat_add(now, f->cfg.retry_ms);
	for (size_t i = 0; i < f->n_m; i++) {
		if (i == f->self_idx || !f->m[i].voter || resp_has(rd, i))
			continue;
		struct fo_msg m;
		msg_init(f, &m, rd->pphase == 1 ? FO_PREPARE : FO_ACCEPT, f->m[i].name);
		msg_inst(&m, in, round);
		m.ballot = rd->ballot;
		m.age_ms = age;
		if (rd->pphase == 2) {
			m.has_plan = true;
			if (fo_plan_copy(&m.plan, &rd->value) < 0)
				continue;
		}
		push_msg(f, &m);
	}
	if (!resp_has(rd, f->self_idx)) {
		struct fo_ballot b = rd->ballot;
		if (rd->pphase == 1)
			acceptor_prepare(f, in, round, f->cfg.name, &b, age, now);
		else if (rd->pphase == 2) {
			struct fo_plan v;
			if (fo_plan_copy(&v, &rd->value) == 0) {
				acceptor_accept(f, in, round, f->cfg.name, &b, age, &v, now);
				fo_plan_clear(&v);
			}
		}
	}
}

static void start_phase1(struct fo *f, struct inst *in, uint32_t round, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	uint64_t n = rd->max_n;
	if (rd->promised.number > n)
		n = rd->promised.number;
	if (rd->ballot.number > n)
		n = rd->ballot.number;
	rd->ballot.number = n + 1;
	cpy(rd->ballot.proposer, sizeof(rd->ballot.proposer), f->cfg.name);
	rd->maj_at = 0;
	rd->pphase = 1;
	rd->has_best = false;
	fo_plan_clear(&rd->best_plan);
	fo_plan_clear(&rd->value);
	fo_plan_clear(&rd->sup);
	free(rd->adopted);
	rd->adopted = NULL;
	rd->n_adopted = 0;
	round_vals_clear(rd);
	resp_reset(rd);
	struct fo_instance_id id;
	inst_id(&id, in, round);
	push_event(f, FO_EV_PROPOSING, &id, NULL, "ballot %" PRIu64 "/%s", rd->ballot.number,
	           rd->ballot.proposer);
	send_phase(f, in, round, now);
}

static void backoff(struct fo *f, struct round *rd, uint64_t now)
{
	rd->pphase = 3;
	uint32_t j = f->cfg.retry_ms ? mv_xoshiro_below(f->rng, f->cfg.retry_ms) : 0;
	rd->next_retry = sat_add(now, (uint64_t)f->cfg.retry_ms + j);
}

/* Cut off by a higher ballot: another proposer works on the round. Every
 * such proposer retrying within one fixed window livelocks once a phase
 * lasts longer than the gap between their attempts (phase 1 may wait
 * retry_ms for silent voters; nine proposers in [retry, 2 retry) leave
 * ~80 ms): the window doubles with each cut-off in a row, up to
 * 2^FO_PREEMPT_DOUBLINGS times retry_ms, so that one of them finishes. */
#define FO_PREEMPT_DOUBLINGS 5
static void backoff_preempted(struct fo *f, struct round *rd, uint64_t now)
{
	rd->pphase = 3;
	if (rd->preempted < FO_PREEMPT_DOUBLINGS)
		rd->preempted++;
	uint64_t span = (uint64_t)f->cfg.retry_ms << rd->preempted;
	uint64_t j =
	    span ? mv_xoshiro_below(f->rng, span > UINT32_MAX ? UINT32_MAX : (uint32_t)span) : 0;
	rd->next_retry = sat_add(now, (uint64_t)f->cfg.retry_ms + j);
}

/* Orders placements held from older recoveries: (incarnation, round,
 * ballot). */
static int adopt_cmp(const struct fo_adopt *a, const struct fo_adopt *b)
{
	if (a->incarnation != b->incarnation)
		return a->incarnation < b->incarnation ? -1 : 1;
	if (a->round != b->round)
		return a->round < b->round ? -1 : 1;
	return ballot_cmp(&a->ballot, &b->ballot);
}

/* Keeps, per VM, the highest placement the promises report. */
static void adopt_merge(struct round *rd, const struct fo_adopt *a)
{
	if (!a->e.uuid[0])
		return;
	for (size_t i = 0; i < rd->n_adopted; i++)
		if (strcmp(rd->adopted[i].e.uuid, a->e.uuid) == 0) {
			if (adopt_cmp(a, &rd->adopted[i]) > 0)
				rd->adopted[i] = *a;
			return;
		}
	if (rd->n_adopted >= FO_PLAN_MAX)
		return;
	struct fo_adopt *na = realloc(rd->adopted, (rd->n_adopted + 1) * sizeof(*na));
	if (!na)
		return;
	rd->adopted = na;
	rd->adopted[rd->n_adopted++] = *a;
}

static int entry_cmp_plan(const void *a, const void *b)
{
	const struct fo_plan_entry *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->uuid, y->uuid);
}

/* Our own first plan, with each VM an older recovery of the host placed
 * taking that placement as it is (added if ours lacks the VM): if that
 * older plan was chosen, ours must agree with it VM by VM (RECOVERY).
 * A placement whose VM runs somewhere at its epoch or later is done. */
/* Does pe place its VM on the incarnation this instance fails over (or an
 * older one of that host)? Such a placement is dead: whatever it started
 * died with the host, and the instance owes the VM itself. */
static bool places_on_dead(const struct inst *in, const struct fo_plan_entry *pe)
{
	return pe->target[0] && strcmp(pe->target, in->dead) == 0 &&
	       pe->target_incarnation <= in->inc;
}

static int overlay_adopted(const struct fo *f, const struct round *rd, struct fo_plan *v)
{
	size_t extra = 0;
	for (size_t a = 0; a < rd->n_adopted; a++)
		extra += !plan_has_uuid(v, rd->adopted[a].e.uuid);
	if (v->n + extra > FO_PLAN_MAX)
		return -ENOMEM;
	if (extra) {
		struct fo_plan_entry *ne = realloc(v->entries, (v->n + extra) * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		v->entries = ne;
	}
	for (size_t a = 0; a < rd->n_adopted; a++) {
		const struct fo_plan_entry *ae = &rd->adopted[a].e;
		bool done = running_elsewhere(f, ae->uuid, ae->new_epoch ? ae->new_epoch - 1 : 0,
		                              NULL, NULL);
		size_t k = 0;
		while (k < v->n && strcmp(v->entries[k].uuid, ae->uuid) != 0)
			k++;
		if (done || excluded_vm(rd, ae->uuid) || moved_on(f, ae)) {
			if (k < v->n)
				v->entries[k] = v->entries[--v->n];
			continue;
		}
		if (target_fenced(f, ae) || move_away(f, ae->uuid, NULL, ae->new_epoch)) {
			/* a dead placement (its target fenced since, or the VM moved
			 * away from it by live migration, MOVES): nothing runs there,
			 * and the VM is still owed — our own placement stands, above
			 * the epoch the dead one took (epochs only grow) */
			if (k < v->n && v->entries[k].new_epoch <= ae->new_epoch)
				v->entries[k].new_epoch = ae->new_epoch + 1;
			continue;
		}
		v->entries[k] = *ae;
		if (k == v->n)
			v->n++;
	}
	if (v->n > 1)
		qsort(v->entries, v->n, sizeof(*v->entries), entry_cmp_plan);
	if (!v->n) {
		free(v->entries);
		v->entries = NULL;
	}
	return 0;
}

/* A PROMISE (phase 1) or ACCEPTED (phase 2) for our ballot of a round we
 * are still proposing, from a voter that had not answered yet (marked). */
static bool counts_for_phase(struct fo *f, struct round *rd, int phase, size_t from_idx,
                             const struct fo_msg *m)
{
	if (rd->chosen || rd->pphase != phase || ballot_cmp(&m->ballot, &rd->ballot) != 0)
		return false;
	return f->m[from_idx].voter && resp_mark(rd, from_idx);
}

static void on_promise(struct fo *f, struct inst *in, uint32_t round, size_t from_idx,
                       const struct fo_msg *m, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (!counts_for_phase(f, rd, 1, from_idx, m))
		return;
	if (m->superseded.n) {
		struct fo_plan_entry *ne =
		    realloc(rd->sup.entries, (rd->sup.n + m->superseded.n) * sizeof(*ne));
		if (ne) {
			memcpy(ne + rd->sup.n, m->superseded.entries,
			       m->superseded.n * sizeof(*ne));
			rd->sup.entries = ne;
			rd->sup.n += m->superseded.n;
		}
	}
	for (size_t a = 0; round == 0 && a < m->n_adopt; a++)
		if (!places_on_dead(in, &m->adopt[a].e) && !target_fenced(f, &m->adopt[a].e) &&
		    !moved_on(f, &m->adopt[a].e))
			adopt_merge(rd, &m->adopt[a]);
	if (m->has_plan && m->accepted_ballot.number) {
		size_t k = 0;
		while (k < rd->n_vals && !fo_plan_equal(&rd->vals[k].p, &m->plan))
			k++;
		if (k < rd->n_vals) {
			rd->vals[k].n++;
		} else {
			struct pvals *nv = realloc(rd->vals, (rd->n_vals + 1) * sizeof(*nv));
			if (nv) {
				rd->vals = nv;
				if (fo_plan_copy(&rd->vals[rd->n_vals].p, &m->plan) == 0)
					rd->vals[rd->n_vals++].n = 1;
			}
		}
	}
	if (m->has_plan && m->accepted_ballot.number &&
	    (!rd->has_best || ballot_cmp(&m->accepted_ballot, &rd->best_ballot) > 0)) {
		struct fo_plan c;
		if (fo_plan_copy(&c, &m->plan) == 0) {
			fo_plan_clear(&rd->best_plan);
			rd->best_plan = c;
			rd->best_ballot = m->accepted_ballot;
			rd->has_best = true;
		}
	}
	promises_decide(f, in, round, now, false);
}

/* Our own value for (in, round) with the placements older recoveries
 * hold (overlay_adopted); -EAGAIN: we do not know yet what the host owes,
 * and no older recovery placed anything to go on with. */
static int own_value_adopted(struct fo *f, struct inst *in, uint32_t round, struct fo_plan *out)
{
	struct round *rd = &in->rounds[round];
	int rc = own_value(f, in, round, out);
	if (rc == -EAGAIN && rd->n_adopted)
		rc = 0; /* what older recoveries placed is enough to go on */
	if (rc == 0 && overlay_adopted(f, rd, out) < 0)
		rc = -ENOMEM;
	return rc;
}

/* Phase 1 of (in, round) with the promises so far: go on to phase 2 with a
 * value once a majority promised. When the highest accepted value may or
 * may not have been chosen depending on voters that have not answered
 * yet, wait for them up to retry_ms (timed_out: the wait is over) — their
 * answers may show it was not, and free us to propose a value that the
 * acceptors will take. */
/* Members the operator removed (force-leave): they may have accepted a
 * value before, and may have made it chosen with the voting set of that
 * time. For the free-value rule they count as voters that did not answer. */
static size_t removed_members(const struct fo *f)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_m; i++)
		n += f->m[i].removed;
	return n;
}

static void promises_decide(struct fo *f, struct inst *in, uint32_t round, uint64_t now,
                            bool timed_out)
{
	struct round *rd = &in->rounds[round];
	size_t maj = majority_of(f->eff_voters);
	if (rd->n_resp < maj)
		return;
	/* a value may have been chosen by a majority of any voting set seen
	 * while the record was open, the smallest included: the free-value
	 * rule counts against that one */
	size_t maj_any = in->maj_low && in->maj_low < maj ? in->maj_low : maj;
	if (rd->has_best && !timed_out && rd->n_resp < f->eff_voters) {
		uint32_t c = 0;
		for (size_t k = 0; k < rd->n_vals; k++)
			if (fo_plan_equal(&rd->vals[k].p, &rd->best_plan))
				c = rd->vals[k].n;
		size_t unknown = f->eff_voters - rd->n_resp;
		if ((size_t)c < maj_any && (size_t)c + unknown >= maj_any) {
			if (!rd->maj_at) {
				rd->maj_at = now + 1;
				rd->next_retry = sat_add(now, f->cfg.retry_ms);
			}
			return;
		}
	}
	uint64_t held_since = rd->maj_at;
	rd->maj_at = 0;
	fo_plan_clear(&rd->value);
	if (rd->has_best) {
		/* The highest accepted value must be proposed again if it may have
		 * been chosen. It may not have been when the promisers that report
		 * it, and the voters that did not answer, are fewer than a
		 * majority: a chosen value is reported by every promiser of a
		 * majority that accepted it (any proposal after it has it), so
		 * then nothing was chosen yet and our own value is safe. (An
		 * acceptor that refuses it for good otherwise keeps it stuck.) */
		uint32_t c = 0;
		for (size_t k = 0; k < rd->n_vals; k++)
			if (fo_plan_equal(&rd->vals[k].p, &rd->best_plan))
				c = rd->vals[k].n;
		size_t unknown = f->eff_voters > rd->n_resp ? f->eff_voters - rd->n_resp : 0;
		/* (a removed member may have accepted it: a majority of the
		 * voting set before the removal may have chosen it) */
		unknown += removed_members(f);
		if ((size_t)c + unknown < maj_any) {
			fo_plan_clear(&rd->best_plan);
			rd->has_best = false;
		}
	}
	/* Free to choose, without a durable journal: first every live voter's
	 * promise (up to retry_ms). An acceptor that restarted without its
	 * journal forgot what it accepted, so a majority of promises may
	 * report nothing although a value was chosen; a live voter that
	 * accepted it, or learned it, reports it (acceptor_prepare). (With a
	 * journal no acceptor forgets, and the free-value rule stands.) Before
	 * the majority read, such a proposer learned the value from that
	 * voter's CHOSEN instead (simulator test_amnesiac_acceptor, journal
	 * off: a second plan for a decided round, O3) */
	if (!rd->has_best && !timed_out && !f->journal_durable) {
		bool waiting = false;
		for (size_t k = 0; k < f->n_m && !waiting; k++)
			waiting = considered_alive(&f->m[k]) && !resp_has(rd, k) &&
			          strcmp(f->m[k].name, in->dead) != 0;
		if (waiting) {
			rd->maj_at = held_since ? held_since : now + 1;
			rd->next_retry = sat_add(rd->maj_at - 1, f->cfg.retry_ms);
			return;
		}
	}
	/* Free to choose: a value a voter answered our majority read with
	 * (we were told it was chosen, and could not prove it) goes before a
	 * plan of our own. Any value is safe here; this one keeps what the
	 * others may have learned: an acceptor that forgot its acceptance (no
	 * journal) would otherwise let a second value be chosen beside it
	 * (simulator test_amnesiac_acceptor, journal off) */
	if (!rd->has_best && read_hint(f, in, round, &rd->best_plan))
		rd->has_best = true;
	/* The first round of a recovery of ours: we carry only a value the
	 * others proposed (work_round), never our own (the others decide what
	 * we owe): none, and we ask again a coordinator step later while our
	 * read stays stuck. */
	if (!rd->has_best && round == 0 && is_self(f, in->dead)) {
		rd->pphase = own_claim_unproven(f, in) ? 3 : 0;
		rd->next_retry = sat_add(now, f->cfg.coordinator_step_ms);
		return;
	}
	rd->own_val = !rd->has_best;
	if (rd->has_best) {
		rd->value = rd->best_plan;
		rd->best_plan.entries = NULL;
		rd->best_plan.n = 0;
	} else {
		int rc = own_value_adopted(f, in, round, &rd->value);
		/* Leave out what our own acceptor would refuse (accept_clash): a
		 * VM that another instance's value we accepted places. Its
		 * refusal comes back only after the ACCEPTs have gone to the
		 * others, and those that had not heard of the other value
		 * accept ours: the voters split between two values that place
		 * the same VM, each refusing the other's for good. Our value is
		 * free here, so it may leave the VM to the other instance, as
		 * it does once an acceptor's refusal names it. Before, one
		 * proposer sent both values a few ms apart (the recovery of a
		 * host and the re-placement of a VM that host had been given
		 * and lost with its self-fence), the two voters each accepted
		 * one of them, and neither was ever chosen, while the
		 * force-left third may have accepted either (simulator seed
		 * 761198723923549814: four VMs stayed down). */
		for (size_t k = 0; rc == 0 && k < FO_PLAN_MAX; k++) {
			char buf[FO_TEXT_MAX];
			const char *clash = NULL;
			bool same = (rd->has_acc && fo_plan_equal(&rd->acc_plan, &rd->value)) ||
			            (rd->chosen && fo_plan_equal(&rd->plan, &rd->value));
			if (same ||
			    !accept_clash(f, in, round, &rd->value, buf, sizeof(buf), &clash) ||
			    !clash || excluded_vm(rd, clash) || !exclude_vm(rd, clash))
				break;
			fo_plan_clear(&rd->value);
			rc = own_value_adopted(f, in, round, &rd->value);
		}
		if (rc == -EAGAIN) {
			/* we do not know (yet) what the host owes (its newer state
			 * has not reached us): try again a coordinator step later */
			rd->pphase = 3;
			rd->next_retry = sat_add(now, f->cfg.coordinator_step_ms);
			return;
		}
		if (rc < 0) {
			backoff(f, rd, now);
			return;
		}
	}
	rd->pphase = 2;
	rd->preempted = 0; /* a majority promised: the run of cut-offs is over */
	resp_reset(rd);
	rd->acc_unbounded = false;
	rd->acc_bound = 0;
	send_phase(f, in, round, now);
}

static void on_accepted(struct fo *f, struct inst *in, uint32_t round, size_t from_idx,
                        const struct fo_msg *m, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (!counts_for_phase(f, rd, 2, from_idx, m))
		return;
	/* The acceptor's last ack to the dead host, in our clock: at most
	 * receipt - its age (transit only makes the real ack earlier). One
	 * counted acceptor without an age (it never acked the host in its
	 * current life, or an older peer) and there is no bound at all. */
	if (!m->has_ack_ago)
		rd->acc_unbounded = true;
	else {
		uint64_t b = now > m->ack_ago_ms ? now - m->ack_ago_ms : 0;
		if (b > rd->acc_bound)
			rd->acc_bound = b;
	}
	accepted_decide(f, in, round, now);
}

/* Phase 2 of (in, round): a majority accepted our value, so it is chosen. */
static void accepted_decide(struct fo *f, struct inst *in, uint32_t round, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (rd->chosen || rd->pphase != 2 || rd->n_resp < majority_of(f->eff_voters))
		return;
	bool has_bound = !rd->acc_unbounded;
	uint64_t bound = rd->acc_bound;
	struct fo_msg c;
	msg_init(f, &c, FO_CHOSEN, "");
	msg_inst(&c, in, round);
	c.ballot = rd->ballot;
	c.has_plan = true;
	c.plan = rd->value;
	c.has_ack_ago = has_bound;
	c.ack_ago_ms = has_bound ? now - bound : 0;
	broadcast(f, &c);
	struct fo_plan v = rd->value;
	rd->value.entries = NULL;
	rd->value.n = 0;
	struct fo_ballot b = rd->ballot;
	learn(f, in, round, &b, &v, now, true, has_bound, bound);
	fo_plan_clear(&v);
}

/* An acceptor refused a value for a clash with another instance's value
 * it accepted: if that one was chosen since without the VM, the acceptor
 * may never have heard (a lost CHOSEN), and refuses forever. Tell it every
 * plan we know chosen, at most once per FO_SHARE_CHOSEN_MS. */
#define FO_SHARE_CHOSEN_MS 5000
static void send_chosen_to(struct fo *f, struct inst *in, uint32_t round, const char *to);
static void share_chosen(struct fo *f, const char *to, uint64_t now)
{
	struct mrec *r = member_find(f, to);
	if (!r || is_self(f, to) ||
	    (r->shared_at && now < sat_add(r->shared_at, FO_SHARE_CHOSEN_MS)))
		return;
	r->shared_at = now;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t k = 0; k < f->n_rounds; k++)
			if (f->inst[i]->rounds[k].chosen)
				send_chosen_to(f, f->inst[i], k, to);
}

/* Can the voters that have not answered (nor refused) no longer make a
 * majority with the answers so far? */
static bool majority_out_of_reach(const struct fo *f, const struct round *rd)
{
	size_t open = f->eff_voters > rd->n_resp + rd->n_refused
	                  ? f->eff_voters - rd->n_resp - rd->n_refused
	                  : 0;
	return rd->n_resp + open < majority_of(f->eff_voters);
}

static void on_reject(struct fo *f, struct inst *in, uint32_t round, const struct fo_msg *m,
                      uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (m->ballot.number > rd->max_n)
		rd->max_n = m->ballot.number;
	if (rd->chosen || (rd->pphase != 1 && rd->pphase != 2))
		return;
	if (m->vm_uuid[0] && ballot_cmp(&m->ballot, &rd->ballot) <= 0)
		share_chosen(f, m->from, now);
	if (round == 0 && m->incarnation > in->inc) {
		if (is_self(f, in->dead) && own_claim_unproven(f, in)) {
			/* we carry a value the others claim chosen and we cannot
			 * prove: acceptors that learned it promise, those that did
			 * not refuse so, and the newer recovery left its VMs to it
			 * (seed 4964100799923450909). That voter refuses for good
			 * — counted, not asked again each retry; with no majority
			 * left among the others, back off as one cut off */
			const struct mrec *x = member_find(f, m->from);
			if (x && x->voter)
				resp_mark_as(rd, (size_t)(x - f->m), 2);
			if (majority_out_of_reach(f, rd))
				backoff_preempted(f, rd, now);
			return;
		}
		/* a newer recovery of the host took over: it adopts what this
		 * one may have placed; we stop proposing here */
		if (m->incarnation > in->superseded_by)
			in->superseded_by = m->incarnation;
		rd->pphase = 0;
		return;
	}
	if (ballot_cmp(&m->ballot, &rd->ballot) > 0) {
		backoff_preempted(f, rd, now);
		return;
	}
	/* A VM of our own value is placed by another instance: propose again
	 * without it. (An adopted value may not change: it stays refused by
	 * this acceptor, and needs a majority without it.) */
	if (rd->pphase == 2 && m->vm_uuid[0] && ballot_cmp(&m->ballot, &rd->ballot) <= 0) {
		exclude_vm(rd, m->vm_uuid);
		/* An adopted value may not change, but a new phase 1 may find it
		 * was never chosen (on_promise): then ours goes, without it.
		 * Not before the other voters could still make a majority for
		 * it: an acceptor's refusal is its own, the value may be chosen
		 * without it. Before, the first refusal ended phase 2 — our own
		 * acceptor's comes back at once, before any ACCEPTED — so a
		 * proposer that could not prove a chosen value (it had refused
		 * the claim), re-proposed it, and clashed with it itself, never
		 * let it be chosen again: every other voter accepted, round
		 * after round, and nothing was learned (seed
		 * 5860160051390273588 with migrations). */
		const struct mrec *x = member_find(f, m->from);
		/* (only a refusal of our current ACCEPT counts: a late one of an
		 * earlier ballot's would keep its voter's ACCEPTED of this one
		 * out; older releases send no ballot, taken as this one) */
		if (x && x->voter &&
		    (m->ballot.number == 0 || ballot_cmp(&m->ballot, &rd->ballot) == 0))
			resp_mark_as(rd, (size_t)(x - f->m), 2);
		if (majority_out_of_reach(f, rd))
			backoff(f, rd, now);
		/* (else the others have until the retry: fo_tick backs off
		 * then, so that voters that never answer do not hold it) */
	}
}

/* ------------------------------------------------------------------------ */
/* Acceptor                                                                 */

static void deliver_local(struct fo *f, struct inst *in, uint32_t round, struct fo_msg *r,
                          uint64_t now)
{
	switch (r->type) {
	case FO_PROMISE:
		on_promise(f, in, round, f->self_idx, r, now);
		break;
	case FO_ACCEPTED:
		on_accepted(f, in, round, f->self_idx, r, now);
		break;
	case FO_REJECT:
		on_reject(f, in, round, r, now);
		break;
	default:
		break;
	}
	fo_msg_clear(r);
}

static void reply(struct fo *f, struct inst *in, uint32_t round, struct fo_msg *r, uint64_t now)
{
	if (is_self(f, r->to))
		deliver_local(f, in, round, r, now);
	else
		push_msg(f, r);
}

static void send_chosen_to(struct fo *f, struct inst *in, uint32_t round, const char *to)
{
	if (is_self(f, to))
		return;
	struct round *rd = &in->rounds[round];
	struct fo_msg c;
	msg_init(f, &c, FO_CHOSEN, to);
	msg_inst(&c, in, round);
	c.ballot = rd->chosen_ballot;
	c.has_plan = true;
	if (rd->has_bound) {
		c.has_ack_ago = true;
		c.ack_ago_ms = f->last_now > rd->ack_bound ? f->last_now - rd->ack_bound : 0;
	}
	if (fo_plan_copy(&c.plan, &rd->plan) < 0)
		return;
	push_msg(f, &c);
}

/* Why an acceptor refuses (a), (c), (d), or NULL. */
static const char *acceptor_refusal(const struct fo *f, const struct inst *in, uint32_t round,
                                    uint64_t age, uint64_t now, char *buf, size_t len)
{
	/* We vote on the recovery of an incarnation of ours that is over (we
	 * are alive at a newer one), not on a failover of the one we live in:
	 * what we accept there, we carry out before we say so (acceptor_accept) */
	if (is_self(f, in->dead) && in->inc >= f->incarnation)
		return "I am the host being failed over";
	/* A core whose journal keeps its promises (RESTARTS) forgot none: it
	 * may vote in instances older than itself. */
	bool remembers = f->journal_durable && (f->acceptor_journal || !f->journal_restored);
	if (!remembers && age > now - f->started) {
		snprintf(buf, len,
		         "my core is %" PRIu64 " ms old, younger than the instance (%" PRIu64
		         " ms): "
		         "I may have forgotten promises",
		         now - f->started, age);
		return buf;
	}
	if (!acceptor_may(f, in, round)) {
		snprintf(buf, len, "%s is not dead to me at incarnation %" PRIu64, in->dead,
		         in->inc);
		return buf;
	}
	return NULL;
}

static void send_reject(struct fo *f, struct inst *in, uint32_t round, const char *to,
                        const struct fo_ballot *promised, const char *why, uint64_t now)
{
	struct fo_msg r;
	msg_init(f, &r, FO_REJECT, to);
	msg_inst(&r, in, round);
	if (promised)
		r.ballot = *promised;
	cpy(r.text, sizeof(r.text), why);
	reply(f, in, round, &r, now);
}

static void merge_age(struct inst *in, uint64_t age, uint64_t now)
{
	uint64_t t = age < now ? now - age : 0;
	if (t < in->first_heard)
		in->first_heard = t;
}

/* What PREPARE and ACCEPT check first: a chosen round is answered with
 * CHOSEN, an acceptor that may not vote (acceptor_refusal) or promised a
 * higher ballot answers REJECT. True when the acceptor may go on. */
/* The highest incarnation of in's host whose recovery we promised or
 * accepted in (first round) above in's own, or 0. */
static uint64_t newer_recovery(const struct fo *f, const struct inst *in)
{
	uint64_t best = 0;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (o->inc > in->inc && o->inc > best && strcmp(o->dead, in->dead) == 0 &&
		    (o->rounds[0].promised.number || o->rounds[0].has_acc))
			best = o->inc;
	}
	return best;
}

static bool acceptor_may_answer(struct fo *f, struct inst *in, uint32_t round, const char *from,
                                const struct fo_ballot *b, uint64_t age, const struct fo_plan *plan,
                                uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (rd->chosen) {
		/* We tell what we learned, and stay an acceptor: a CHOSEN is
		 * learned by a majority read (CHOSEN NEEDS A MAJORITY'S PROOF),
		 * so a proposer at a higher ballot must be able to gather a
		 * majority at one ballot again when the acceptors are split
		 * between two ballots of the chosen value. A PREPARE is
		 * answered as ever (the promise reports what we accepted); an
		 * ACCEPT only of the value we learned chosen. */
		send_chosen_to(f, in, round, from);
		if (plan && !fo_plan_equal(plan, &rd->plan))
			return false;
	}
	char buf[FO_TEXT_MAX];
	const char *why = acceptor_refusal(f, in, round, age, now, buf, sizeof(buf));
	if (why) {
		send_reject(f, in, round, from, NULL, why, now);
		return false;
	}
	if (ballot_cmp(b, &rd->promised) < 0) {
		send_reject(f, in, round, from, &rd->promised, "promised a higher ballot", now);
		return false;
	}
	/* (not for a round we learned chosen: what we accept there is its
	 * value alone, above, so a newer recovery loses nothing; refused as
	 * superseded, the host a recovery's chosen plan placed VMs on, which
	 * could not prove it because the acceptors held it at two ballots,
	 * could never gather them at one: seed 4964100799923450909, where
	 * (n6, 2, 0) was chosen at 1/n9 and accepted again at 2/n7, and
	 * (n6, 3, 0) was chosen empty, leaving the VMs to it) */
	uint64_t newer = round == 0 && !rd->chosen ? newer_recovery(f, in) : 0;
	if (newer) {
		/* we took part in a newer recovery of this host: it adopts what
		 * this one may have placed, and this one's first round is over */
		struct fo_msg r;
		msg_init(f, &r, FO_REJECT, from);
		msg_inst(&r, in, round);
		r.incarnation = newer;
		snprintf(r.text, sizeof(r.text),
		         "superseded by the recovery of %.64s incarnation %" PRIu64, in->dead,
		         newer);
		reply(f, in, round, &r, now);
		return false;
	}
	return true;
}

/* Placements this acceptor holds from older recoveries of in's host, per
 * VM the highest (incarnation, round, ballot): accepted values, and plans
 * learned chosen (RECOVERY). */
/* Does a chosen plan we know place pe's VM (on a host) above pe's epoch?
 * Then pe's placement is history: the VM moved on since. */
/* The record of `uuid` in f->given, or NULL. */
static struct given *given_find(const struct fo *f, const char *uuid)
{
	uint32_t i = name_index_find(&f->given_by_uuid, uuid);
	return i == NAME_INDEX_NONE ? NULL : &f->given[i];
}

/* A plan we learned chosen gave pe's VM pe's epoch: kept if it is the
 * highest given. (Full, FO_GIVEN_MAX VMs: not recorded; the instances in
 * memory still say it.) */
static void given_note(struct fo *f, const struct fo_plan_entry *pe)
{
	if (!pe->target[0] || !pe->uuid[0] || f->n_given >= FO_GIVEN_LIMIT)
		return;
	struct given *g = given_find(f, pe->uuid);
	if (!g) {
		struct given *ng = grow(f->given, &f->cap_given, f->n_given + 1, sizeof(*ng));
		if (!ng)
			return;
		f->given = ng;
		g = &f->given[f->n_given];
		memset(g, 0, sizeof(*g));
		cpy(g->uuid, sizeof(g->uuid), pe->uuid);
		if (name_index_insert(&f->given_by_uuid, (uint32_t)f->n_given) < 0)
			return;
		f->n_given++;
	} else if (g->epoch >= pe->new_epoch) {
		return;
	}
	cpy(g->target, sizeof(g->target), pe->target);
	g->epoch = pe->new_epoch;
	g->has_base = pe->has_base;
	g->base = pe->base_epoch;
	g->target_incarnation = pe->target_incarnation;
	f->journal_version++; /* journalled: an agent that restarts keeps it */
}

/* Did a plan we learned chosen give this VM an epoch above `epoch`? */
static bool given_above(const struct fo *f, const char *uuid, uint64_t epoch)
{
	const struct given *g = given_find(f, uuid);
	return g && g->epoch > epoch;
}

/* Was pe's epoch given to its VM by another placement (another target,
 * life or base): pe would run it a second time at that epoch? */
static bool epoch_taken(const struct fo *f, const struct fo_plan_entry *pe)
{
	const struct given *g = given_find(f, pe->uuid);
	if (!g || g->epoch != pe->new_epoch)
		return false;
	return strcmp(g->target, pe->target) != 0 ||
	       (g->has_base && pe->has_base && g->base != pe->base_epoch) ||
	       (g->target_incarnation && pe->target_incarnation &&
	        g->target_incarnation != pe->target_incarnation);
}

static bool moved_on(const struct fo *f, const struct fo_plan_entry *pe)
{
	if (given_above(f, pe->uuid, pe->new_epoch))
		return true;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			if (rd->chosen && places_above(&rd->plan, pe->uuid, pe->new_epoch))
				return true;
		}
	return false;
}

/* Does an up host other than in's dead one run `uuid` at exactly `base`,
 * other than as the source of a settled live migration of it to the dead
 * host at that epoch (MOVED: it landed there, the source's copy is gone;
 * its listing there has not caught up)? A move still MOVING, or one whose
 * epoch is not known, keeps the copy counted: it may still run there. */
static bool runs_at_base_elsewhere(const struct fo *f, const struct inst *in, const char *uuid,
                                   uint64_t base)
{
	for (size_t i = 0; i < f->n_hosts; i++) {
		const struct fo_host *h = &f->hosts[i];
		if (strcmp(h->cap.name, in->dead) == 0)
			continue;
		const struct mrec *r = member_find(f, h->cap.name);
		if (!r || !(member_up(f, r) || beating(f, r)))
			continue;
		bool runs = false;
		for (size_t v = 0; v < h->n_vms && !runs; v++)
			runs = h->vms[v].running && h->vms[v].epoch == base &&
			       strcmp(h->vms[v].uuid, uuid) == 0;
		if (!runs)
			continue;
		bool moved_there = false;
		for (size_t k = 0; k < f->n_moves && !moved_there; k++) {
			const struct move *mv = &f->moves[k];
			moved_there = mv->m.state == FO_MOVE_MOVED && mv->m.epoch == base &&
			              strcmp(mv->m.uuid, uuid) == 0 &&
			              strcmp(mv->m.source, h->cap.name) == 0 &&
			              strcmp(mv->m.target, in->dead) == 0;
		}
		if (!moved_there)
			return true;
	}
	return false;
}

/* Did a live migration that landed (MOVED) take `uuid` away from x, from
 * its copy at `base` or later (as move_away, from x only)? An entry of x's
 * failover from that base is handed back by its target in every round
 * ("not x's to re-place": settle_waiting_entry), and the failovers of the
 * move's target owe what landed there (m3): x's failover no longer owes
 * it. Kept pending, it made x's rounds empty until none was left, and held
 * the VM from the target's failover (pending_elsewhere, handed_back_floor):
 * seed 5278054762612387037 with migrations. (Dropping never starts
 * anything.) */
static bool moved_from(const struct fo *f, const char *uuid, const char *x, uint64_t base)
{
	for (size_t i = 0; base && i < f->n_moves; i++) {
		const struct move *r = &f->moves[i];
		if (r->m.state == FO_MOVE_MOVED && (!r->m.epoch || r->m.epoch >= base) &&
		    strcmp(r->m.uuid, uuid) == 0 && strcmp(r->m.source, x) == 0 &&
		    !move_target_gone(f, r))
			return true;
	}
	return false;
}

/* Does an up host run e's VM above `base`, e being a pending (or parked)
 * VM? When e is a placement its target handed back (the very copy: VM,
 * target, epoch, E_HANDED in a chosen round we hold), the target's own
 * listing of it at e's epoch does not count: the hand-back is the target's
 * word that it never started that copy or destroyed it (the word a later
 * round re-places on; a hand-back leaves only once the destroys are done,
 * fo_msg_vouches_fence), and a target never starts a placement it handed
 * back, so such a listing is the target's state from before, a view not
 * yet caught up. Counted, it dropped the hand-back for good: n3, failed
 * over, destroyed v2-0 (epoch 3), handed it back, and at once proposed the
 * giving instance's next round from a view of itself still listing the
 * copy: an empty round, chosen, and v2-0 ran nowhere again (simulator seed
 * 1383148215796797374, issue 9's loss-everywhere scenario). Any other copy
 * counts: on another host, or on the target at another epoch — and our own
 * listing while a destroy of ours failed (fence_incomplete: the copy may
 * still run here, and a re-placement would start at once; a review's
 * finding). */
static bool runs_besides_handed_back(const struct fo *f, const struct fo_plan_entry *e,
                                     uint64_t base)
{
	bool handed = e->target[0] && !(is_self(f, e->target) && f->fence_incomplete) &&
	              placement_handed_exact(f, NULL, e);
	return copy_elsewhere(f, e->uuid, base, NULL, NULL, handed ? e : NULL, NULL) != NULL;
}

/* Is a handed-back entry no longer this instance's to re-place: started
 * after all (a late report), or moved on since — an up host runs it above
 * the epoch it moved from (this entry's start, or another placement's: a
 * no-room entry's epoch was never given, so another instance may give one
 * below it; not the target's stale listing of the very copy it handed
 * back: runs_besides_handed_back), a chosen plan placed it above (that plan's instance answers
 * for it now), or a live migration took it above (MOVES)? own_value leaves
 * such entries out and a chosen round settles them, by this one test: kept
 * pending, they would make round after empty round until every round of
 * the instance is used, and keep the VM "in care" so that nobody else
 * restarts it (seed 8857356392224828463). A copy that an up host other
 * than the dead one runs at the base epoch itself counts too: a failover
 * gives an epoch once, so it is another placement's, and the entry's base
 * may be a guess that equals it (move_stayed_epoch's listed + 1 for a
 * stayed move told without its epoch); re-placing it ran the VM twice
 * (seed 7502270134573458010). Not a copy that a live migration took from
 * that host to the dead one at that epoch (runs_at_base_elsewhere): a move
 * writes its epoch on the source and the same copy runs at it on the
 * target, so that listing is the source's stale one of the copy the dead
 * host ran — leaving the entry out would leave the VM owed by nobody.
 * Leaving an entry out never starts anything. */
static bool pend_gone_by(const struct fo *f, const struct inst *in, const struct pend *pd)
{
	uint64_t base = entry_base(&pd->e, pd->failed_round);
	return runs_besides_handed_back(f, &pd->e, base) ||
	       (base > 0 && runs_at_base_elsewhere(f, in, pd->e.uuid, base)) ||
	       moved_on(f, &pd->e) || move_away(f, pd->e.uuid, NULL, pd->e.new_epoch) ||
	       moved_from(f, pd->e.uuid, in->dead, base);
}

/* ------------------------------------------------------------------------ */
/* Moves (live migrations of HA VMs)                                        */

static struct move *move_find(const struct fo *f, const char *id)
{
	for (size_t i = 0; i < f->n_moves; i++)
		if (strcmp(f->moves[i].m.id, id) == 0)
			return &f->moves[i];
	return NULL;
}

/* A new record (NULL when full of moves still MOVING, or out of memory):
 * makes room by forgetting the oldest settled one. */
static struct move *move_add(struct fo *f, const struct fo_move *mv, uint64_t now)
{
	if (f->n_moves >= FO_MOVES_KNOWN_MAX) {
		size_t victim = SIZE_MAX;
		for (int pass = 0; pass < 2 && victim == SIZE_MAX; pass++)
			for (size_t i = 0; i < f->n_moves; i++) {
				const struct move *r = &f->moves[i];
				bool kind = pass == 0 ? r->m.state == FO_MOVE_STAYED
				                      : r->m.state == FO_MOVE_MOVED;
				if (kind && !r->announce &&
				    (victim == SIZE_MAX || r->learned < f->moves[victim].learned))
					victim = i;
			}
		if (victim == SIZE_MAX)
			return NULL;
		f->moves[victim] = f->moves[--f->n_moves];
	}
	struct move *nm = grow(f->moves, &f->cap_moves, f->n_moves + 1, sizeof(*nm));
	if (!nm)
		return NULL;
	f->moves = nm;
	struct move *r = &f->moves[f->n_moves++];
	memset(r, 0, sizeof(*r));
	r->m = *mv;
	r->learned = r->heard = now;
	struct fo_vm v;
	if (vm_info_any(f, mv->uuid, &v)) {
		hvm_keep(&r->info, &v);
		r->has_info = true;
	}
	f->journal_version++;
	return r;
}

static uint64_t move_announce_ms(const struct fo *f)
{
	return (uint64_t)f->cfg.quorate_ms + f->cfg.fence_after_ms + f->cfg.fence_margin_ms;
}

/* A settled move of ours is told in our heartbeats for move_announce_ms. */
static void move_tell(const struct fo *f, struct move *r, uint64_t now)
{
	r->announce = true;
	r->announce_until = sat_add(now, move_announce_ms(f));
}

/* Did the operator remove the move's target (force-leave) at the
 * incarnation it landed on or later, and has it not been heard of since at
 * a newer one? (A removed member that comes back alive at a newer
 * incarnation is no longer removed; one heard at a newer one settles the
 * move itself.) For a MOVED move the target's failovers owe the VM then
 * (owed_landed), even when its state never listed it and the target never
 * said the move landed (no target incarnation): its own word could not
 * come, and the source holds the VM away (a review's test,
 * test_moved_target_force_left). */
static bool move_target_removed(const struct fo *f, const struct move *r)
{
	const struct mrec *t = member_find(f, r->m.target);
	return t && t->removed && (!r->m.target_inc || t->removed_inc >= r->m.target_inc) &&
	       !known_after(t, t->removed_inc);
}

/* A MOVING move whose target has been fenced since we learned of it, by a
 * fence that covers every HA VM there (its failover), or removed by the
 * operator (force-leave) at the incarnation it landed on or later: whatever
 * landed there is gone, so the VM is the source's again (its own fence
 * covers it there) — the move can no longer be settled by its target.
 * A removal counts as such a fence, as for plan entries (target_fenced)
 * and reclaim (reclaimable): the operator says the host is gone (the
 * runbook's precondition: powered off or wiped). Before, a move whose
 * source and target both died, the target force-left with an empty
 * failover (no fence armed), stayed MOVING for good and every recovery of
 * the source left the VM out (m2) — simulator seed 411361976068016995
 * with migrations. Only a MOVING move: a MOVED one landed, T's own failovers
 * owe its VM (owed_landed), and taking it back to the source as well made the
 * recoveries of both place it — the acceptors split between the two
 * values and neither was ever chosen (seed 5029691623247226633). */
static bool move_target_gone(const struct fo *f, const struct move *r)
{
	if (r->m.state == FO_MOVE_STAYED)
		return false;
	/* (not a target known alive at a newer incarnation than the fenced
	 * one: it refuted or restarted and may run what landed — a timed fence
	 * then proves only what its fence order listed; it settles the move
	 * itself, from what it runs) */
	const struct mrec *t = member_find(f, r->m.target);
	if (r->m.state == FO_MOVE_MOVING && move_target_removed(f, r))
		return true;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (in->fenced && in->fence_total && in->known_at >= r->heard &&
		    (!r->m.target_inc || in->inc >= r->m.target_inc) &&
		    strcmp(in->dead, r->m.target) == 0 && !(t && known_after(t, in->inc)))
			return true;
	}
	return false;
}

/* Can the source of MOVING move r no longer run its VM (m3b)? Either the
 * source is known at an incarnation newer than the one it announced the
 * move at, and its state there (inventory read) does not show the VM
 * running — a host starts an HA VM only for a plan, and no plan of the
 * source re-places a VM its move holds away (m1, m2), so its copy stays
 * down — or the source's latest incarnation, at or after the announced
 * one, was fenced since we heard of the move by a fence that covers every
 * HA VM there (its failover). */
static bool move_source_cleared(const struct fo *f, const struct move *r)
{
	const struct mrec *x = member_find(f, r->m.source);
	if (x == NULL || x == &f->m[f->self_idx])
		return false;
	const struct fo_host *cur = host_of(f, r->m.source);
	if (r->src_inc && cur && cur->incarnation > r->src_inc && !cur->inventory_unknown) {
		bool runs = false;
		for (size_t v = 0; v < cur->n_vms && !runs; v++)
			runs = cur->vms[v].running && strcmp(nz(cur->vms[v].uuid), r->m.uuid) == 0;
		if (!runs)
			return true;
	}
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (in->fenced && in->fence_total && in->known_at >= r->heard &&
		    in->inc >= r->src_inc && strcmp(in->dead, r->m.source) == 0 &&
		    !known_after(x, in->inc))
			return true;
	}
	return false;
}

/* Is MOVING move r in doubt on its target's failover of incarnation inc
 * (m3b)? Its source and target both failed: the source can no longer run
 * the VM (move_source_cleared), and the target, not known after inc, can
 * no longer say whether it landed — nobody will settle the move. The VM
 * may run on the target (the hypervisor started the move once a majority
 * acknowledged it), so the target's failover owes it, as if it had landed
 * (m3): its value is then not empty, its acceptors withhold
 * acknowledgements from the target, and its fence covers whatever landed
 * there. Before, the target's failover was decided empty (no fence), every
 * failover of the source left the VM out (m1, m2), and the VM stayed down
 * for good: simulator seeds 8476817979126233075 and 8898256724608617090
 * with migrations. */
static bool move_doubt_on_target(const struct fo *f, const struct move *r, uint64_t inc)
{
	if (r->m.state != FO_MOVE_MOVING || !r->m.epoch || move_target_gone(f, r))
		return false;
	const struct mrec *t = member_find(f, r->m.target);
	if (t == NULL || t == &f->m[f->self_idx] || known_after(t, inc))
		return false;
	/* only a failover of T opened after we heard of the move: one opened
	 * before may be of a life the move never targeted (T back at a newer
	 * incarnation we have not heard of), and its fence may predate the
	 * landing — the node-local order m4 uses (a review's interleaving:
	 * test_move_in_doubt_target_back_unheard) */
	bool after = false;
	for (size_t i = 0; i < f->n_inst && !after; i++)
		after = f->inst[i]->inc == inc && strcmp(f->inst[i]->dead, r->m.target) == 0 &&
		        f->inst[i]->known_at >= r->heard;
	return after && move_source_cleared(f, r);
}

/* Does this move give its VM back to `from` at a known epoch (STAYED, or
 * its target gone): a floor for the epoch `from`'s failover gives it
 * (m7: the proposer may never have heard of the move)? */
static bool move_epoch_floor(const struct fo *f, const struct move *r, const char *from)
{
	return r->m.epoch && strcmp(r->m.source, from) == 0 &&
	       (r->m.state == FO_MOVE_STAYED || move_target_gone(f, r));
}

/* Does this move keep its VM away from `from` (MOVING or MOVED, its target
 * not gone), at a known epoch? */
static bool move_holds_away(const struct fo *f, const struct move *r, const char *from)
{
	return r->m.state != FO_MOVE_STAYED && r->m.epoch && strcmp(r->m.source, from) == 0 &&
	       !move_target_gone(f, r);
}

/* A move (MOVING or MOVED, its target not gone) that took `uuid` past a
 * placement at `epoch`: one away from `from` (may be NULL) to an epoch >=
 * `epoch` — from there on the VM is not (only) `from`'s, it may run on the
 * target and `from`'s fence does not reach it there — or any move of it to
 * an epoch above `epoch` (that placement is an old one: the VM moved on
 * since). */
static const struct move *move_away(const struct fo *f, const char *uuid, const char *from,
                                    uint64_t epoch)
{
	for (size_t i = 0; i < f->n_moves; i++) {
		const struct move *r = &f->moves[i];
		if (r->m.state == FO_MOVE_STAYED || strcmp(r->m.uuid, uuid) != 0)
			continue;
		bool from_there = from && strcmp(r->m.source, from) == 0;
		if ((r->m.epoch == 0
		         ? from_there
		         : (r->m.epoch > epoch || (from_there && r->m.epoch == epoch))) &&
		    !move_target_gone(f, r))
			return r;
	}
	return NULL;
}

/* What our heartbeats carry: our moves still MOVING, and moves we settled
 * (as source or target) within move_announce_ms. Settled moves long past
 * are forgotten here. */
static size_t moves_to_tell(struct fo *f, uint64_t now, struct fo_move *out)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_moves;) {
		struct move *r = &f->moves[i];
		if (r->announce && r->m.state != FO_MOVE_MOVING && r->announce_until <= now)
			r->announce = false;
		if (!r->announce && r->m.state == FO_MOVE_STAYED &&
		    sat_add(r->learned, FO_MOVE_KEEP_MS) <= now) {
			f->moves[i] = f->moves[--f->n_moves];
			f->journal_version++;
			continue;
		}
		i++;
	}
	/* our moves under way first (their acknowledgements are what lets the
	 * hypervisor start: every heartbeat must carry them), then outcomes */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < f->n_moves && n < FO_MOVES_MAX; i++) {
			struct move *r = &f->moves[i];
			bool moving = r->m.state == FO_MOVE_MOVING;
			if (!r->announce || moving != (pass == 0))
				continue;
			if (moving && !r->first_stamp)
				/* a round already sent at this stamp did not carry it:
				 * its acknowledgements must not count */
				r->first_stamp =
				    f->last_hb_stamp >= now ? f->last_hb_stamp + 1 : now;
			out[n++] = r->m;
		}
	return n;
}

/* A voter's heartbeat tells us of moves: its own (as source), or the
 * outcome of moves to it (as target). Nobody speaks for another's move.
 * False when one could not be recorded (then we do not acknowledge). */
static bool merge_moves(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	const struct mrec *x = member_find(f, m->from);
	if (!x || !x->voter)
		return true;
	bool ok = true;
	for (size_t i = 0; i < m->n_moves; i++) {
		const struct fo_move *mv = &m->moves[i];
		bool as_source = strcmp(mv->source, m->from) == 0;
		bool as_target = strcmp(mv->target, m->from) == 0 && mv->state != FO_MOVE_MOVING;
		if (!as_source && !as_target)
			continue;
		struct fo_move heard = *mv;
		if (!as_target)
			heard.target_inc = 0; /* only the target says it */
		struct move *r = move_find(f, mv->id);
		if (!r) {
			r = move_add(f, &heard, now);
			ok &= r != NULL;
			if (r && as_source)
				r->src_inc = m->incarnation;
			continue;
		}
		if (strcmp(r->m.uuid, mv->uuid) != 0 || strcmp(r->m.source, mv->source) != 0 ||
		    strcmp(r->m.target, mv->target) != 0)
			continue; /* not the same move: the first word stands */
		/* (the source's lowest incarnation that told it) */
		if (as_source && m->incarnation && (!r->src_inc || m->incarnation < r->src_inc))
			r->src_inc = m->incarnation;
		/* settled once; the target's MOVED (the VM runs there) wins */
		if (as_target && mv->state == FO_MOVE_MOVED && mv->target_inc &&
		    r->m.target_inc != mv->target_inc) {
			r->m.target_inc = mv->target_inc; /* only the target says it */
			f->journal_version++;
		}
		bool upgrade = (r->m.state == FO_MOVE_MOVING && mv->state != FO_MOVE_MOVING) ||
		               (r->m.state == FO_MOVE_STAYED && mv->state == FO_MOVE_MOVED);
		if (!upgrade)
			continue;
		r->m.state = mv->state;
		if (mv->epoch > r->m.epoch)
			r->m.epoch = mv->epoch; /* (epochs only grow) */
		r->learned = now;
		f->journal_version++;
	}
	return ok;
}

/* The highest epoch a move of `uuid` away from `from` (NULL: any host) that
 * STAYED may have left on the source's copy (0: none). A move whose epoch
 * nobody told us (the target settled one it never heard announced) may
 * have bumped the copy once: `listed` + 1. */
static uint64_t move_stayed_epoch(const struct fo *f, const char *uuid, const char *from,
                                  uint64_t listed)
{
	uint64_t e = 0;
	for (size_t i = 0; i < f->n_moves; i++) {
		const struct fo_move *mv = &f->moves[i].m;
		if (!(mv->state == FO_MOVE_STAYED || move_target_gone(f, &f->moves[i])) ||
		    strcmp(mv->uuid, uuid) != 0 || (from && strcmp(mv->source, from) != 0))
			continue;
		uint64_t left = mv->epoch ? mv->epoch : sat_add(listed, 1);
		if (left > e)
			e = left;
	}
	return e;
}

/* Does heartbeat `hb` tell move `id` as under way? */
static bool tells_moving(const struct fo_msg *hb, const char *id)
{
	for (size_t k = 0; k < hb->n_moves; k++)
		if (hb->moves[k].state == FO_MOVE_MOVING && strcmp(hb->moves[k].id, id) == 0)
			return true;
	return false;
}

/* Moves of other hosts that we have held MOVING, unchanged, for
 * move_announce_ms although one of their parties — the sender of heartbeat
 * `hb` — is heard from and does not tell them as under way: it settled
 * them while we missed its telling (loss, a partition), and nobody tells
 * a settled move again unless a member returns. Our acknowledgement names
 * them (FailoverMessage.moves in an HB_ACK), and the party tells them
 * again (retell_asked). Without that we would refuse, for good, every
 * value that re-places the VM (m1; seed 2368021078732317579). */
static void ask_retell(const struct fo *f, const struct fo_msg *hb, struct fo_msg *ack,
                       uint64_t now)
{
	struct fo_move ask[FO_MOVES_MAX];
	size_t n = 0;
	for (size_t i = 0; i < f->n_moves && n < FO_MOVES_MAX; i++) {
		const struct move *r = &f->moves[i];
		bool party =
		    strcmp(r->m.source, hb->from) == 0 || strcmp(r->m.target, hb->from) == 0;
		if (r->m.state != FO_MOVE_MOVING || !party || is_self(f, r->m.source) ||
		    is_self(f, r->m.target) || sat_add(r->learned, move_announce_ms(f)) > now ||
		    tells_moving(hb, r->m.id))
			continue;
		ask[n++] = r->m;
	}
	if (n && (ack->moves = malloc(n * sizeof(*ack->moves))) != NULL) {
		memcpy(ack->moves, ask, n * sizeof(*ask));
		ack->n_moves = n;
	}
}

/* A move of ours (we are its source or target) that is settled. */
static bool settled_ours(const struct fo *f, const struct move *r)
{
	return r->m.state != FO_MOVE_MOVING && (is_self(f, r->m.source) || is_self(f, r->m.target));
}

/* An acknowledgement named moves its sender still holds under way: those
 * we settled, as their source or target, are told again. */
static void retell_asked(struct fo *f, const struct fo_msg *ack, uint64_t now)
{
	for (size_t k = 0; k < ack->n_moves; k++) {
		struct move *r = move_find(f, ack->moves[k].id);
		if (r && settled_ours(f, r) && !r->announce)
			move_tell(f, r, now);
	}
}

/* Our settled moves (as source or target) are told again for
 * move_announce_ms. */
static void moves_retell(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_moves; i++) {
		if (settled_ours(f, &f->moves[i]))
			move_tell(f, &f->moves[i], now);
	}
}

static bool move_args_ok(const char *id, const char *uuid, const char *host)
{
	return id && uuid && host && id[0] && uuid[0] && host[0] && strlen(id) < FO_MOVE_ID_MAX &&
	       strlen(uuid) < FO_UUID_MAX && strlen(host) < FO_NAME_MAX;
}

int fo_move_begin(struct fo *f, const char *id, const char *uuid, const char *target,
                  uint64_t epoch, uint64_t now)
{
	if (!f || !move_args_ok(id, uuid, target) || is_self(f, target) || !epoch)
		return -EINVAL;
	if (f->fenced || !fo_quorate(f, now))
		return -EAGAIN;
	if (move_find(f, id))
		return -EEXIST;
	size_t mine = 0;
	for (size_t i = 0; i < f->n_moves; i++)
		mine += f->moves[i].announce && f->moves[i].m.state == FO_MOVE_MOVING;
	if (mine >= FO_MOVES_MAX)
		return -ENOSPC;
	struct fo_move mv = {.epoch = epoch, .state = FO_MOVE_MOVING};
	cpy(mv.id, sizeof(mv.id), id);
	cpy(mv.uuid, sizeof(mv.uuid), uuid);
	cpy(mv.source, sizeof(mv.source), f->cfg.name);
	cpy(mv.target, sizeof(mv.target), target);
	struct move *r = move_add(f, &mv, now);
	if (!r)
		return -ENOSPC;
	r->src_inc = f->incarnation;
	r->announce = true;
	/* tell the voters now rather than at the next heartbeat */
	send_heartbeats(f, now);
	return 0;
}

bool fo_move_ready(const struct fo *f, const char *id, uint64_t now)
{
	const struct move *r = f && id ? move_find(f, id) : NULL;
	if (!r || !r->announce || r->m.state != FO_MOVE_MOVING || f->fenced || !fo_quorate(f, now))
		return false;
	if (majority_of(f->eff_voters) <= 1)
		return true;
	return r->first_stamp && acked_since(f, r->first_stamp - 1);
}

int fo_move_end(struct fo *f, const char *id, bool moved, uint64_t now)
{
	struct move *r = f && id ? move_find(f, id) : NULL;
	if (!r || !is_self(f, r->m.source))
		return -ENOENT;
	enum fo_move_state st = moved ? FO_MOVE_MOVED : FO_MOVE_STAYED;
	if (r->m.state == FO_MOVE_MOVING || (r->m.state == FO_MOVE_STAYED && moved)) {
		r->m.state = st;
		r->learned = now;
		f->journal_version++;
	}
	move_tell(f, r, now);
	return 0;
}

int fo_move_outcome(struct fo *f, const char *id, const char *uuid, const char *source, bool landed,
                    uint64_t epoch, uint64_t now)
{
	if (!f || !move_args_ok(id, uuid, source) || is_self(f, source))
		return -EINVAL;
	struct move *r = move_find(f, id);
	if (!r) {
		struct fo_move mv = {.epoch = epoch, .state = FO_MOVE_MOVING};
		cpy(mv.id, sizeof(mv.id), id);
		cpy(mv.uuid, sizeof(mv.uuid), uuid);
		cpy(mv.source, sizeof(mv.source), source);
		cpy(mv.target, sizeof(mv.target), f->cfg.name);
		if (!(r = move_add(f, &mv, now)))
			return -ENOSPC;
	}
	if (!is_self(f, r->m.target) || strcmp(r->m.uuid, uuid) != 0)
		return -EINVAL;
	if (r->m.state == FO_MOVE_MOVING || (r->m.state == FO_MOVE_STAYED && landed)) {
		r->m.state = landed ? FO_MOVE_MOVED : FO_MOVE_STAYED;
		r->learned = now;
		f->journal_version++;
	}
	if (landed) {
		/* (also when the source's MOVED came first: only we can say on
		 * which incarnation of ours it landed) */
		if (epoch > r->m.epoch)
			r->m.epoch = epoch;
		if (!r->m.target_inc) {
			r->m.target_inc = f->incarnation;
			f->journal_version++;
		}
	}
	move_tell(f, r, now);
	return 0;
}

size_t fo_moves_unsettled(const struct fo *f, struct fo_move *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; f && i < f->n_moves; i++)
		if (f->moves[i].m.state == FO_MOVE_MOVING &&
		    (is_self(f, f->moves[i].m.target) || is_self(f, f->moves[i].m.source))) {
			if (out && n < cap)
				out[n] = f->moves[i].m;
			n++;
		}
	return n;
}

bool fo_move_find(const struct fo *f, const char *id, struct fo_move *out)
{
	const struct move *r = f && id ? move_find(f, id) : NULL;
	if (r && out)
		*out = r->m;
	return r != NULL;
}

/* f->inst[i] when it is an older recovery of in's host, else NULL. */
static const struct inst *older_recovery(const struct fo *f, const struct inst *in, size_t i)
{
	const struct inst *o = f->inst[i];
	return o->inc < in->inc && strcmp(o->dead, in->dead) == 0 ? o : NULL;
}

/* A placement of an older recovery of in's host known dead here: on the
 * dead host itself, on a target incarnation fenced since, or moved on. */
static bool placement_dead(const struct fo *f, const struct inst *in,
                           const struct fo_plan_entry *pe)
{
	return places_on_dead(in, pe) || target_fenced(f, pe) || moved_on(f, pe);
}

static void collect_adopt(const struct fo *f, const struct inst *in, struct fo_msg *p)
{
	struct round tmp;
	memset(&tmp, 0, sizeof(tmp));
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = older_recovery(f, in, i);
		for (uint32_t r = 0; o && r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			const struct fo_plan *pl = od->chosen    ? &od->plan
			                           : od->has_acc ? &od->acc_plan
			                                         : NULL;
			for (size_t e = 0; pl && e < pl->n; e++) {
				/* placements known dead are not adopted: handed back, no
				 * room, or on an incarnation fenced since */
				if (!pl->entries[e].target[0] ||
				    placement_dead(f, in, &pl->entries[e]) ||
				    (od->chosen &&
				     (od->ents[e].st == E_HANDED || od->ents[e].st == E_NOROOM)))
					continue;
				struct fo_adopt a = {.e = pl->entries[e],
				                     .incarnation = o->inc,
				                     .round = r,
				                     .ballot = od->chosen ? od->chosen_ballot
				                                          : od->acc_ballot};
				adopt_merge(&tmp, &a);
			}
		}
	}
	p->adopt = tmp.adopted;
	p->n_adopt = tmp.n_adopted;
}

/* Epoch floors for a PROMISE in a recovery of host x (`in`): every epoch
 * that a value we accepted (never learned chosen) in an older recovery of
 * x gave a VM — entries without a target and without a base, which the
 * proposer owes the VM from at least (owed_add_above_stayed, as m7's).
 * The placements themselves reach it only when live (collect_adopt, and
 * on_promise again in the proposer's view): one known dead (handed back,
 * its target fenced since) is not adopted, and a proposer that never
 * learned the older plan re-placed the VM from the epoch below it.
 * Before, (n1,2,0) restarted vm1.1 at epoch 2 on n1, which (n1,1,0) had
 * given on n2, whose copy went with n2's self-fence (simulator seed
 * 1237837291802719264 with migrations: an epoch given twice, O4, no
 * second copy). Chosen plans go whole (superseded). Writes
 * up to `cap` entries to out (NULL: counts them). */
static size_t older_floors(const struct fo *f, const struct inst *in, struct fo_plan_entry *out,
                           size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = older_recovery(f, in, i);
		for (uint32_t r = 0; o && r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			for (size_t e = 0; !od->chosen && od->has_acc && e < od->acc_plan.n; e++) {
				const struct fo_plan_entry *pe = &od->acc_plan.entries[e];
				/* (a live one too: the proposer may take it for dead, and
				 * drop the adopt, on_promise; a floor only raises the
				 * epoch, and an adopted placement replaces ours) */
				if (!pe->target[0] || n >= cap)
					continue;
				if (out) {
					struct fo_plan_entry *se = &out[n];
					memset(se, 0, sizeof(*se));
					cpy(se->uuid, sizeof(se->uuid), pe->uuid);
					cpy(se->name, sizeof(se->name), pe->name);
					se->new_epoch = pe->new_epoch;
				}
				n++;
			}
		}
	}
	return n;
}

static void acceptor_prepare(struct fo *f, struct inst *in, uint32_t round, const char *from,
                             const struct fo_ballot *b, uint64_t age, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (!acceptor_may_answer(f, in, round, from, b, age, NULL, now))
		return;
	merge_age(in, age, now);
	if (ballot_cmp(b, &rd->promised) != 0)
		f->journal_version++; /* the promise is journalled before it leaves */
	rd->promised = *b;
	struct fo_msg p;
	msg_init(f, &p, FO_PROMISE, from);
	msg_inst(&p, in, round);
	p.ballot = *b;
	size_t n_sup = 0;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (o->inc == in->inc || strcmp(o->dead, in->dead) != 0)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++)
			if (o->rounds[r].chosen)
				n_sup += o->rounds[r].plan.n;
	}
	/* the VMs the dead host moved away (MOVES), so the proposer leaves
	 * them out of its value */
	/* (at most what a message carries: FO_PLAN_MAX) */
	for (size_t i = 0; i < f->n_moves && n_sup < FO_PLAN_MAX; i++)
		n_sup += move_holds_away(f, &f->moves[i], in->dead) ||
		         move_epoch_floor(f, &f->moves[i], in->dead);
	n_sup += older_floors(f, in, NULL, FO_PLAN_MAX > n_sup ? FO_PLAN_MAX - n_sup : 0);
	if (n_sup && (p.superseded.entries = malloc(n_sup * sizeof(*p.superseded.entries)))) {
		for (size_t i = 0; i < f->n_inst; i++) {
			const struct inst *o = f->inst[i];
			if (o->inc == in->inc || strcmp(o->dead, in->dead) != 0)
				continue;
			for (uint32_t r = 0; r < f->n_rounds; r++)
				for (size_t e = 0; o->rounds[r].chosen && e < o->rounds[r].plan.n;
				     e++)
					p.superseded.entries[p.superseded.n++] =
					    o->rounds[r].plan.entries[e];
		}
		for (size_t i = 0; i < f->n_moves && p.superseded.n < n_sup; i++) {
			const struct fo_move *mv = &f->moves[i].m;
			bool away = move_holds_away(f, &f->moves[i], in->dead);
			if (!away && !move_epoch_floor(f, &f->moves[i], in->dead))
				continue;
			struct fo_plan_entry *se = &p.superseded.entries[p.superseded.n++];
			memset(se, 0, sizeof(*se));
			cpy(se->uuid, sizeof(se->uuid), mv->uuid);
			cpy(se->name, sizeof(se->name), mv->uuid);
			/* a move that stayed (or whose target is gone) leaves the
			 * VM to the dead host's failover, from at least its epoch:
			 * without a target the entry moves nothing (moved_since),
			 * and without a base it is a floor (owed_add_above_stayed) */
			if (away)
				cpy(se->target, sizeof(se->target), mv->target);
			se->new_epoch = mv->epoch;
		}
		p.superseded.n += older_floors(f, in, p.superseded.entries + p.superseded.n,
		                               n_sup - p.superseded.n);
	}
	if (round == 0)
		collect_adopt(f, in, &p);
	/* What we accepted; or the value we learned chosen, at its ballot,
	 * when we accepted nothing above that ballot (every value accepted at
	 * a higher ballot is that one): the proposer adopts the chosen value
	 * as it would from its acceptors (acceptor_may_answer) */
	bool learned =
	    rd->chosen && (!rd->has_acc || ballot_cmp(&rd->acc_ballot, &rd->chosen_ballot) < 0);
	if (rd->has_acc || learned) {
		p.accepted_ballot = learned ? rd->chosen_ballot : rd->acc_ballot;
		p.has_plan = true;
		if (fo_plan_copy(&p.plan, learned ? &rd->plan : &rd->acc_plan) < 0) {
			fo_msg_clear(&p);
			return;
		}
	}
	reply(f, in, round, &p, now);
}

/* One death can open instances for several incarnations of the host (nodes
 * saw it die at different incarnations). Their plans must never place the
 * same VM at the same or an older epoch: an acceptor refuses a value
 * sharing such a VM with what it accepted in another incarnation's
 * instance (unless that one is chosen here without it), or with a chosen
 * plan of one. Any two chosen plans have an acceptor in common, which
 * accepted both values — the second one it would have refused. */
/* Does `p` place `uuid` on a host with an epoch above `base`? */
static bool places_above(const struct fo_plan *p, const char *uuid, uint64_t base)
{
	for (size_t k = 0; k < p->n; k++)
		if (p->entries[k].target[0] && p->entries[k].new_epoch > base &&
		    strcmp(p->entries[k].uuid, uuid) == 0)
			return true;
	return false;
}

/* Does p place `uuid` (on a host) at exactly `epoch`? */
static bool places_at(const struct fo_plan *p, const char *uuid, uint64_t epoch)
{
	for (size_t k = 0; k < p->n; k++)
		if (p->entries[k].target[0] && p->entries[k].new_epoch == epoch &&
		    strcmp(p->entries[k].uuid, uuid) == 0)
			return true;
	return false;
}

/* Has the target of pe fenced the incarnation pe was given to, as its own
 * heartbeats (or we, for ourselves) report, or did the operator remove it
 * at that incarnation or later (force-leave: it is gone)? Then the
 * placement is dead: never started, or destroyed by that fence (a host
 * reports fenced_through only once its fence ran). */
static bool target_fenced(const struct fo *f, const struct fo_plan_entry *pe)
{
	if (!pe->target[0] || !pe->target_incarnation)
		return false;
	if (is_self(f, pe->target))
		return f->fenced_through >= pe->target_incarnation;
	const struct mrec *t = member_find(f, pe->target);
	return t && (t->fenced_through >= pe->target_incarnation ||
	             (t->removed && t->removed_inc >= pe->target_incarnation));
}

/* Does a chosen round place `uuid` (on a host) above `base` with a
 * placement that is not known dead — handed back by its target, given up
 * when its target was failed over, or fenced with its target's
 * incarnation? Those never start (or run no more). */
static bool places_live(const struct fo *f, const struct round *rd, const char *uuid, uint64_t base)
{
	for (size_t k = 0; rd->chosen && k < rd->plan.n; k++)
		if (placement_live_above(f, rd, k, uuid, base))
			return true;
	return false;
}

/* Entry k of chosen round rd: a placement of `uuid` above `base` that is
 * not known dead (places_live)? */
static bool placement_live_above(const struct fo *f, const struct round *rd, size_t k,
                                 const char *uuid, uint64_t base)
{
	const struct fo_plan_entry *q = &rd->plan.entries[k];
	return q->target[0] && q->new_epoch > base && strcmp(q->uuid, uuid) == 0 &&
	       rd->ents[k].st != E_HANDED && rd->ents[k].st != E_NOROOM && !target_fenced(f, q);
}

/* places_live for the restart of an entry of ours (superseded_by_ex):
 * leaves out, too, a placement still waiting (not reported running) whose
 * very copy is held as handed back for another recovery of the same host
 * (placement_handed_exact): an adopted placement handed back for a newer
 * recovery is marked dead in the older one only where the older one was
 * learned first (add_pending), and the target's own mark of it is silent.
 * The acceptors' clash rules (places_live) are unchanged. Before, n0 marked (n3,3,0)'s
 * placement of v3-1 dead when it handed back the same placement for
 * (n3,6,0), (n3,7,0) and (n3,9,0), and left it unstarted because (n3,7,1)
 * re-placed the VM on n3; n3, which learned (n3,3,0) after those
 * hand-backs, held that placement live and never started (n3,7,1)'s
 * entry (simulator seed 9100639744153442696, loss everywhere). */
static bool places_live_not_handed(const struct fo *f, const struct inst *o, const struct round *rd,
                                   const char *uuid, uint64_t base)
{
	for (size_t k = 0; rd->chosen && k < rd->plan.n; k++)
		if (placement_live_above(f, rd, k, uuid, base) &&
		    (rd->ents[k].st == E_OK || !placement_handed_exact(f, o, &rd->plan.entries[k])))
			return true;
	return false;
}

/* Does chosen round rd hold a live placement of uuid at exactly `epoch`
 * on a host other than x (not handed back, not without room, its target
 * not fenced since)? Then the VM at that epoch is there, not on x. */
static bool places_live_at_other(const struct fo *f, const struct round *rd, const char *uuid,
                                 uint64_t epoch, const char *x)
{
	for (size_t k = 0; rd->chosen && k < rd->plan.n; k++) {
		const struct fo_plan_entry *q = &rd->plan.entries[k];
		if (q->target[0] && q->new_epoch == epoch && strcmp(q->uuid, uuid) == 0 &&
		    strcmp(q->target, x) != 0 && rd->ents[k].st != E_HANDED &&
		    rd->ents[k].st != E_NOROOM && !target_fenced(f, q))
			return true;
	}
	return false;
}

/* Does p hold exactly this placement (VM, target and its life, epoch, base)? */
static bool has_placement(const struct fo_plan *p, const struct fo_plan_entry *pe)
{
	for (size_t k = 0; k < p->n; k++) {
		const struct fo_plan_entry *q = &p->entries[k];
		/* (a copy is identical: two plans that happen to give the same
		 * epoch to the same host, from different epochs or to different
		 * lives of it, are two placements) */
		if (q->new_epoch == pe->new_epoch && strcmp(q->uuid, pe->uuid) == 0 &&
		    strcmp(q->target, pe->target) == 0 &&
		    (!q->has_base || !pe->has_base || q->base_epoch == pe->base_epoch) &&
		    (!q->target_incarnation || !pe->target_incarnation ||
		     q->target_incarnation == pe->target_incarnation))
			return true;
	}
	return false;
}

/* The epoch an entry of round `round` moves its VM from: its base_epoch
 * (an entry adopted into another instance's round keeps the base it was
 * planned with: the round no longer tells it), or new_epoch - 1 - round
 * for plans without one. */
static uint64_t entry_base(const struct fo_plan_entry *pe, uint32_t round)
{
	if (pe->has_base)
		return pe->base_epoch;
	uint64_t d = 1 + (uint64_t)round;
	return pe->new_epoch > d ? pe->new_epoch - d : 0;
}

/* Is chosen round r of instance o the failover of the very life pe gives
 * its VM to (pe's target at pe's target incarnation), re-placing that VM
 * from exactly the epoch pe gives it, and only from there? Then o's
 * placements of it succeed pe's rather than clash with it: o's fence
 * reaches that life (what it ran at pe's epoch dies before o's targets
 * start theirs), and that life can start pe no more once o's majority
 * accepted (a target starts only after a majority acknowledged it since
 * learning the plan, and o's acceptors acknowledge it no more). */
static bool succeeded_by(const struct inst *o, const struct round *od, uint32_t r,
                         const struct fo_plan_entry *pe)
{
	if (!od->chosen || !pe->target[0] || !pe->target_incarnation ||
	    o->inc != pe->target_incarnation || strcmp(o->dead, pe->target) != 0)
		return false;
	bool any = false;
	for (size_t k = 0; k < od->plan.n; k++) {
		const struct fo_plan_entry *oe = &od->plan.entries[k];
		if (!oe->target[0] || strcmp(oe->uuid, pe->uuid) != 0)
			continue;
		if (entry_base(oe, r) != pe->new_epoch)
			return false;
		any = true;
	}
	return any;
}

/* Is every placement of `uuid` above nothing in `op` one that an earlier
 * round of `in` held as well (handed back since, now re-placed)? */
static bool re_placing(const struct fo *f, const struct inst *in, uint32_t round,
                       const struct fo_plan *op, const char *uuid)
{
	(void)f;
	bool any = false;
	for (size_t k = 0; k < op->n; k++) {
		const struct fo_plan_entry *oe = &op->entries[k];
		if (!oe->target[0] || strcmp(oe->uuid, uuid) != 0)
			continue;
		bool held = false;
		for (uint32_t r = 0; r < round && !held; r++)
			held = in->rounds[r].chosen && has_placement(&in->rounds[r].plan, oe);
		if (!held)
			return false;
		any = true;
	}
	return any;
}

static const char *accept_clash(const struct fo *f, const struct inst *in, uint32_t round,
                                const struct fo_plan *plan, char *buf, size_t len,
                                const char **vm_uuid)
{
	/* Refused: a value that places a VM (with a target) from an epoch that
	 * another instance's value we accepted (not since chosen without it),
	 * or a plan we learned chosen, already placed it above — it was
	 * computed from a stale view, or concurrently with that one. (An entry
	 * without a target places nothing.) */
	for (size_t e = 0; e < plan->n; e++) {
		/* ... or a VM the dead host moved away by live migration (MOVES):
		 * its fence does not reach the target */
		const struct fo_plan_entry *pe = &plan->entries[e];
		const struct move *mv =
		    pe->target[0] ? move_away(f, pe->uuid, in->dead, entry_base(pe, round)) : NULL;
		if (mv) {
			snprintf(buf, len, "VM %.40s was moved by %.40s to %.40s (live migration)",
			         pe->name, mv->m.source, mv->m.target);
			*vm_uuid = pe->uuid;
			return buf;
		}
	}
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (o == in)
			continue;
		/* first rounds of one host's recoveries at different incarnations:
		 * the newer supersedes and adopts (newer_recovery, collect_adopt) */
		bool same_host = strcmp(o->dead, in->dead) == 0;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			if (!od->has_acc && !od->chosen)
				continue;
			if (same_host && r == 0 && round == 0)
				continue;
			/* the accepted (never chosen) first round of a recovery that a
			 * newer one superseded: what it may have placed, the newer
			 * chosen plan adopted (collect_adopt) */
			if (!od->chosen && r == 0 && o->superseded_by)
				continue;
			for (size_t e = 0; e < plan->n; e++) {
				const struct fo_plan_entry *pe = &plan->entries[e];
				if (!pe->target[0])
					continue;
				uint64_t base = entry_base(pe, round);
				const struct fo_plan *op = od->chosen ? &od->plan : &od->acc_plan;
				/* a chosen plan gave the very epoch we re-place from to
				 * another host, which holds it still: the VM at that epoch
				 * runs there, out of reach of our fence (a base raised
				 * past the truth: seed 3258347705468433741) */
				if (base && places_live_at_other(f, od, pe->uuid, base, in->dead) &&
				    !re_placing(f, in, round, op, pe->uuid)) {
					snprintf(buf, len,
					         "VM %.40s: epoch %" PRIu64
					         " is another host's, given by the plan for %.64s "
					         "incarnation %" PRIu64,
					         pe->name, base, o->dead, o->inc);
					*vm_uuid = pe->uuid;
					return buf;
				}
				if (od->chosen && !places_live(f, od, pe->uuid, base)) {
					/* its placements above ours are dead (handed back, or
					 * their target fenced): no clash — unless ours would
					 * reuse an epoch one of them took (epochs only grow) */
					if (!places_above(op, pe->uuid, pe->new_epoch - 1) ||
					    has_placement(op, pe))
						continue;
					snprintf(buf, len,
					         "VM %.40s: epoch %" PRIu64
					         " was given by the plan for %.64s "
					         "incarnation %" PRIu64,
					         pe->name, pe->new_epoch, o->dead, o->inc);
					*vm_uuid = pe->uuid;
					return buf;
				}
				/* the same placement (an adopted copy) is no clash, nor one
				 * an earlier round of ours held too (we re-place it: it was
				 * handed back) */
				bool clash = places_above(op, pe->uuid, base) &&
				             !has_placement(op, pe) &&
				             !re_placing(f, in, round, op, pe->uuid);
				/* Our placement is dead itself when its target has been
				 * fenced through its incarnation since (or removed): the
				 * target never starts it (restart_ready), so it clashes
				 * with nothing, as a dead placement of theirs does not —
				 * unless it would give an epoch theirs gave (no epoch is
				 * given twice). Before, a chosen value could not be
				 * chosen again once a later plan had re-placed one of its
				 * VMs from the very copy it gave (the target failed over
				 * since): with some of its acceptors dead, no majority
				 * read could prove it either, so the voters that had not
				 * learned it never did, and a target's new life never
				 * handed back the entry it was given (simulator seed
				 * 1736501381016617636: vm4.4 stayed down). */
				if (clash && target_fenced(f, pe) &&
				    !places_at(op, pe->uuid, pe->new_epoch))
					clash = false;
				/* Nor does a chosen plan that failed over the life ours
				 * gives the VM to and moved it on from the epoch ours
				 * gives (succeeded_by): it followed ours, as when it ran
				 * there. Before, a chosen round re-proposed by a later
				 * coordinator was refused by every acceptor that had
				 * learned such a successor while its target's life ended
				 * by a timed fence only (no fenced_through from it): with
				 * the other acceptors dead, no majority read proved it,
				 * its later rounds were never proposed and a VM handed
				 * back meanwhile stayed down (simulator seed
				 * 1401844136278748164: vm1.1). */
				if (clash && succeeded_by(o, od, r, pe) &&
				    !places_at(op, pe->uuid, pe->new_epoch))
					clash = false;
				if (clash) {
					snprintf(buf, len,
					         "VM %.40s is also in the plan for %.64s "
					         "incarnation %" PRIu64,
					         pe->name, o->dead, o->inc);
					*vm_uuid = pe->uuid;
					return buf;
				}
			}
		}
	}
	return NULL;
}

static void acceptor_accept(struct fo *f, struct inst *in, uint32_t round, const char *from,
                            const struct fo_ballot *b, uint64_t age, const struct fo_plan *plan,
                            uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (!acceptor_may_answer(f, in, round, from, b, age, plan, now))
		return;
	char buf[FO_TEXT_MAX];
	const char *clash_uuid = NULL;
	/* the value we accepted in this round already, again at a higher
	 * ballot: it was checked when we first accepted it, and whatever we
	 * accepted since was checked against it; or the value we learned
	 * chosen here (a majority accepted it, checked) */
	bool same = (rd->has_acc && fo_plan_equal(&rd->acc_plan, plan)) ||
	            (rd->chosen && fo_plan_equal(&rd->plan, plan));
	const char *why =
	    same ? NULL : accept_clash(f, in, round, plan, buf, sizeof(buf), &clash_uuid);
	if (why != NULL) {
		struct fo_msg r;
		msg_init(f, &r, FO_REJECT, from);
		msg_inst(&r, in, round);
		r.ballot = *b; /* the ACCEPT refused (0 from older releases) */
		cpy(r.text, sizeof(r.text), why);
		cpy(r.vm_uuid, sizeof(r.vm_uuid), clash_uuid); /* the proposer leaves it out */
		reply(f, in, round, &r, now);
		return;
	}
	struct fo_plan c;
	if (fo_plan_copy(&c, plan) < 0)
		return;
	merge_age(in, age, now);
	f->journal_version++; /* what we accept is journalled before ACCEPTED leaves */
	rd->promised = *b;
	fo_plan_clear(&rd->acc_plan);
	rd->acc_plan = c;
	rd->acc_ballot = *b;
	rd->has_acc = true;
	/* From here on we do not acknowledge the host until it reports itself
	 * fenced for this instance: the timed fence counts on it. */
	if (c.n > 0) {
		struct mrec *xr = member_add(f, in->dead);
		if (xr)
			raise_inst_max(f, xr, in->inc);
	}
	/* Our own recovery: we may be in the majority that chooses it, and
	 * ours is not an acknowledgement we could withhold, so its VMs die
	 * here (below their new epochs) before our ACCEPTED leaves (the
	 * caller carries out actions before it sends messages). */
	if (is_self(f, in->dead) && c.n > 0) {
		struct fo_instance_id iid;
		inst_id(&iid, in, round);
		struct fo_event *ev =
		    push_event(f, FO_EV_FENCE_VMS, &iid, f->cfg.name,
		               "accepting a recovery plan for our incarnation %" PRIu64
		               ": destroy %zu listed VMs below their new epochs",
		               in->inc, c.n);
		fo_plan_copy(&ev->plan, &c);
	}
	if (is_self(f, in->dead) && f->fence_incomplete)
		return; /* our vote would vouch for destroys that failed */
	struct fo_msg a;
	msg_init(f, &a, FO_ACCEPTED, from);
	msg_inst(&a, in, round);
	a.ballot = *b;
	/* We opened (in) before accepting and no longer ack its host (unless
	 * it reports itself fenced for it): our last ack so far bounds it. */
	const struct mrec *x = member_find(f, in->dead);
	if (x && x->acked_at) {
		a.has_ack_ago = true;
		a.ack_ago_ms = now - (x->acked_at - 1);
	}
	reply(f, in, round, &a, now);
}

/* ------------------------------------------------------------------------ */
/* Restarts (this node as a target)                                         */

/* Gives entry e of (in, round), targeted at us, back for re-planning:
 * HANDED_BACK here, RESTARTED(ok=false, with the entry) to every voter. */
static void hand_back(struct fo *f, struct inst *in, uint32_t round, size_t e, const char *text,
                      uint64_t now)
{
	struct round *rd = &in->rounds[round];
	struct ent *st = &rd->ents[e];
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	if (st->running && f->running)
		f->running--;
	st->running = false;
	st->st = E_HANDED;
	st->told = true;
	cpy(st->text, sizeof(st->text), text);
	struct fo_instance_id iid;
	inst_id(&iid, in, round);
	struct fo_event *h = push_event(f, FO_EV_HANDED_BACK, &iid, f->cfg.name,
	                                "%s handed back for re-planning: %.180s", pe->name, text);
	h->entry = *pe;
	struct fo_msg r;
	msg_init(f, &r, FO_RESTARTED, "");
	msg_inst(&r, in, round);
	cpy(r.vm_uuid, sizeof(r.vm_uuid), pe->uuid);
	r.ok = false;
	cpy(r.text, sizeof(r.text), text);
	r.has_plan = true;
	r.plan.n = 1;
	r.plan.entries = (struct fo_plan_entry *)pe; /* copied by broadcast */
	broadcast(f, &r);
	add_pending(f, in, pe, round);
	if (!in->working)
		in->work_since = now;
}

/* We fenced ourselves (order == NULL) or obeyed a FENCE_ORDER for our
 * incarnations up to `upto`: what happens to the entries of chosen plans
 * that name us as their target. (An order leaves alone the entries given
 * to a later incarnation of ours than the one it fences.)
 *   - never started: handed back (RESTARTED ok=false to everyone); we
 *     will not start them now, and no plan of ours can hold them (the
 *     gossiped view only lists running VMs);
 *   - starting or running: the fence destroyed them. A FENCE_ORDER's plan
 *     re-places those it lists; the others were destroyed with the kill
 *     list and are handed back. After a self-fence every one is handed
 *     back: our own recovery may list it too (if our state did), and the
 *     acceptors let only one of the two place it (accept_clash). */
static void hand_back_mine(struct fo *f, const char *why, const struct fo_plan *order,
                           uint64_t upto, bool extras, uint64_t now)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				struct ent *st = &rd->ents[e];
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				/* An entry reported running is the VM's new home: its host's
				 * own failover takes it over. Only a FENCE_ORDER whose plans
				 * do not list it (a stale view) destroys it: then it is
				 * handed back (the acceptors' epoch check keeps it from
				 * being placed twice). */
				if (!is_self(f, pe->target) ||
				    (st->st != E_WAIT && !(order && st->st == E_OK)))
					continue;
				if (order && pe->target_incarnation > upto)
					continue;
				/* given to an earlier life of this agent: that life may have
				 * started it; what runs here (our own state) says so — and
				 * until we know our own state, it is left alone */
				bool prev_life = pe->target_incarnation && f->first_inc &&
				                 pe->target_incarnation < f->first_inc;
				if (prev_life && !own_state_known(f))
					continue;
				/* started here (the same placement started for another
				 * instance, adopted, shares its fate: never handed back
				 * while that copy may run); the fence's kill list
				 * (fenced_extra) uses the same test */
				bool started = started_here(f, in, rd, e);
				bool listed = order && plan_has_uuid(order, pe->uuid);
				if (started && move_away(f, pe->uuid, NULL, pe->new_epoch))
					continue; /* moved on by live migration: not here */
				if (order && started && !listed && !extras && is_self(f, in->dead))
					continue; /* not destroyed: ours at our newer incarnation */
				if (!started && !listed) {
					hand_back(f, in, r, e, why, now);
				} else if (!order) {
					/* destroyed by our self-fence: re-placed by whoever gets it
					 * first, this hand-back or our own recovery (its plan lists
					 * it if our state did; the acceptors let one of the two
					 * place it) */
					hand_back(f, in, r, e,
					          "destroyed by its target's self-fence", now);
				} else if (!started || listed) {
					if (st->running && f->running)
						f->running--;
					st->running = false;
					st->st = E_HANDED;
					snprintf(st->text, sizeof(st->text),
					         "destroyed by the fence of %.64s%s", f->cfg.name,
					         listed ? ", re-placed by its failover" : "");
				} else {
					hand_back(f, in, r, e,
					          "destroyed: this host was failed over", now);
				}
			}
		}
		in->done = in->done && in->n_pend == 0;
	}
}

/* Does a chosen plan we know (a later round of this instance, or another
 * instance) place this VM at the same or a newer epoch? */
static const char *superseded_by_ex(const struct fo *f, const struct inst *in, uint32_t round,
                                    const struct fo_plan_entry *pe, bool *other)
{
	static char buf[FO_TEXT_MAX];
	if (other)
		*other = false;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			if (!od->chosen || (o == in && r <= round))
				continue;
			/* a later round of ours at the same or a newer epoch; another
			 * instance that placed it above the epoch we start it from */
			bool hit = o == in ? places_above(&od->plan, pe->uuid, pe->new_epoch - 1)
			                   : places_live_not_handed(f, o, od, pe->uuid,
			                                            entry_base(pe, round)) &&
			                         !has_placement(&od->plan, pe) &&
			                         !re_placing(f, in, round, &od->plan, pe->uuid);
			if (hit) {
				if (other)
					*other = o != in;
				snprintf(buf, sizeof(buf),
				         "the plan for %.64s incarnation %" PRIu64
				         " round %u places it",
				         o->dead, o->inc, r);
				return buf;
			}
		}
	}
	return NULL;
}

static const char *superseded_by(const struct fo *f, const struct inst *in, uint32_t round,
                                 const struct fo_plan_entry *pe)
{
	return superseded_by_ex(f, in, round, pe, NULL);
}

static int entry_order(const struct fo_plan_entry *a, const struct fo_plan_entry *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Is our own state in the view, published by this life of the agent, with
 * a VM list libvirt gave (not the empty list of an agent that has none
 * yet)? Before, an earlier life's entry was handed back as "not started"
 * from that empty list while the earlier life's copy ran (a review's
 * finding). */
static bool own_state_known(const struct fo *f)
{
	const struct fo_host *me = host_of(f, f->cfg.name);
	return me && me->incarnation >= f->first_inc && !me->inventory_unknown;
}

/* Does our own state (the view of us) list this VM active at `epoch` or
 * newer? */
static bool runs_here(const struct fo *f, const char *uuid, uint64_t epoch)
{
	return host_lists_running(f, f->cfg.name, uuid, epoch);
}

/* Another instance of ours holds the same placement (VM, target us,
 * epoch) and started it (it runs or ran here at that epoch)? */
static const struct inst *placement_started(const struct fo *f, const struct inst *in,
                                            const struct fo_plan_entry *pe, bool *in_flight)
{
	*in_flight = false;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (o == in)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			for (size_t e = 0; od->chosen && e < od->plan.n; e++) {
				const struct fo_plan_entry *q = &od->plan.entries[e];
				if (q->new_epoch != pe->new_epoch ||
				    strcmp(q->uuid, pe->uuid) != 0 ||
				    strcmp(q->target, pe->target) != 0)
					continue;
				if (od->ents[e].st == E_OK)
					return o;
				if (od->ents[e].running)
					*in_flight = true;
			}
		}
	}
	return NULL;
}

/* Did this node start entry e of (in, rd), which targets it, or may it run
 * here: reported running, starting now, the same placement started for
 * another instance (twin), or given to an earlier life of this agent whose
 * start our own state shows. A fence destroys exactly these (fenced_extra)
 * and hands them back (hand_back_mine): one test for both, so that nothing
 * is handed back that still runs. (With our own state unknown, an earlier
 * life's entry is neither: hand_back_mine leaves it alone.) */
static bool started_here(const struct fo *f, const struct inst *in, const struct round *rd,
                         size_t e)
{
	const struct ent *st = &rd->ents[e];
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	if (st->running || st->st == E_OK)
		return true;
	if (st->st != E_WAIT)
		return false;
	bool twin_flight = false;
	if (placement_started(f, in, pe, &twin_flight) != NULL || twin_flight)
		return true;
	bool prev_life =
	    pe->target_incarnation && f->first_inc && pe->target_incarnation < f->first_inc;
	return prev_life && own_state_known(f) && runs_here(f, pe->uuid, pe->new_epoch);
}

/* Another instance of ours holds the same placement (VM, target us,
 * epoch) and we handed it back there: one placement, one fate. */
static const struct inst *placement_handed(const struct fo *f, const struct inst *in,
                                           const struct fo_plan_entry *pe)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		for (uint32_t r = 0; o != in && r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			for (size_t e = 0; od->chosen && e < od->plan.n; e++) {
				const struct fo_plan_entry *q = &od->plan.entries[e];
				if (od->ents[e].st == E_HANDED && q->new_epoch == pe->new_epoch &&
				    strcmp(q->uuid, pe->uuid) == 0 &&
				    strcmp(q->target, pe->target) == 0)
					return o;
			}
		}
	}
	return NULL;
}

/* Is the very copy pe (VM, target, its life, epoch, base: has_placement)
 * held as handed back (E_HANDED, not running) by a chosen round of
 * another instance than `in` of the same dead host — or, with `in` NULL,
 * of any instance? E_HANDED there is the target's word (its hand-back)
 * or a mark made from it or from the fence of the target's life
 * (add_pending, reclaim): that copy never runs. The exact match keeps a
 * copy given to another life of the target, or from another base, apart
 * (a review's finding). */
static const struct inst *placement_handed_exact(const struct fo *f, const struct inst *in,
                                                 const struct fo_plan_entry *pe)
{
	const struct fo_plan one = {.n = 1, .entries = (struct fo_plan_entry *)pe};
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (o == in || (in && strcmp(o->dead, in->dead) != 0))
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			for (size_t e = 0; od->chosen && e < od->plan.n; e++)
				if (od->ents[e].st == E_HANDED && !od->ents[e].running &&
				    has_placement(&one, &od->plan.entries[e]))
					return o;
		}
	}
	return NULL;
}

/* Entry e of (in, r), targeted at us, runs here: RESTARTED(ok) to all. */
static void report_running(struct fo *f, struct inst *in, uint32_t r, size_t e, const char *text,
                           uint64_t now)
{
	struct round *rd = &in->rounds[r];
	struct ent *st = &rd->ents[e];
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	st->st = E_OK;
	st->ok_at = now;
	st->told = true;
	st->took_ms = now > rd->chosen_at ? now - rd->chosen_at : 0;
	cpy(st->text, sizeof(st->text), text);
	struct fo_instance_id iid;
	inst_id(&iid, in, r);
	struct fo_event *ev =
	    push_event(f, FO_EV_RESTARTED, &iid, f->cfg.name, "%s %s (epoch %" PRIu64 ")", pe->name,
	               text, pe->new_epoch);
	ev->entry = *pe;
	struct fo_msg m;
	msg_init(f, &m, FO_RESTARTED, "");
	msg_inst(&m, in, r);
	cpy(m.vm_uuid, sizeof(m.vm_uuid), pe->uuid);
	m.ok = true;
	m.took_ms = st->took_ms;
	cpy(m.text, sizeof(m.text), text);
	broadcast(f, &m);
}

/* Emits RESTART for our fenced entries, best priority first, while fewer
 * than max_parallel are outstanding and we are quorate; notes the next
 * backoff expiry in restart_wake. */
/* An entry of ours assigned to an incarnation of ours that was failed
 * over since (fenced_through) is not ours to start any more: the others
 * may re-place it — unless it runs here already (the same placement
 * started for an older recovery, or by a previous life of this agent). */
static void settle_failed_over_entry(struct fo *f, struct inst *in, uint32_t r, size_t e,
                                     uint64_t now)
{
	struct round *rd = &in->rounds[r];
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	if (rd->ents[e].st != E_WAIT || rd->ents[e].running || !pe->target_incarnation ||
	    pe->target_incarnation > f->fenced_through || !is_self(f, pe->target))
		return;
	bool flight = false;
	const struct inst *twin = placement_started(f, in, pe, &flight);
	if (twin || flight) {
		/* the same placement runs here for an older
		 * recovery (adopted): it is that one's */
		if (twin)
			report_running(f, in, r, e, "started here for an older recovery", now);
		return;
	}
	bool prev_life = f->first_inc && pe->target_incarnation < f->first_inc;
	if (prev_life && !own_state_known(f))
		return; /* what runs here is not known yet */
	if (prev_life && runs_here(f, pe->uuid, pe->new_epoch)) {
		/* an earlier life of this agent started it, and the
		 * fence since did not list it: it runs here */
		report_running(f, in, r, e,
		               "running here (started by a previous "
		               "life of this agent)",
		               now);
		return;
	}
	char text[FO_TEXT_MAX];
	snprintf(text, sizeof(text),
	         "assigned to incarnation %" PRIu64 " of %.64s, failed over since",
	         pe->target_incarnation, f->cfg.name);
	hand_back(f, in, r, e, text, now);
}

/* Did we accept, in a round not decided here yet, a value of a recovery
 * of our own incarnation (pe's, or a later one) that places pe's VM at a
 * newer epoch? Accepting it destroyed our copy below that epoch (RECOVERY:
 * a recovery plan's fence is X's own), and its majority may count on that
 * — its other acceptors stop acknowledging us, but our own quorum may not
 * need them, so no self-fence covers a copy we start afterwards (WHY NO VM
 * RUNS TWICE assumes an acceptor other than X). So pe waits until that
 * round is decided: chosen with the VM, it is handed back (given_above);
 * chosen otherwise, pe may start. Before, a host whose recovery (n2, 4)
 * it had accepted, re-placing vm2.1 on n1 at epoch 3, started the entry
 * vm2.1 epoch 2 that the older recovery (n2, 3) had given to its
 * incarnation 4, and n1 started epoch 3 after the timed fence: two copies
 * (simulator seed 4295884217860200359 with migrations, on main too). */
static bool own_recovery_accepted_above(const struct fo *f, const struct fo_plan_entry *pe)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (!is_self(f, o->dead) ||
		    (pe->target_incarnation && o->inc < pe->target_incarnation))
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &o->rounds[r];
			if (rd->has_acc && !rd->chosen &&
			    places_above(&rd->acc_plan, pe->uuid, pe->new_epoch))
				return true;
		}
	}
	return false;
}

/* An entry of ours waiting to start, looked at again with every change:
 * handed back when a live migration took the VM away, a known plan gave it
 * this epoch elsewhere or a newer one, or the same placement was handed
 * back elsewhere; reported running when the same placement runs here for
 * another recovery; settled (not started) when another plan supersedes it
 * or a newer copy runs elsewhere; deferred while another instance's
 * placement may be live or our own state is not known yet. What is left
 * waits to start (next_restart). */
static void settle_waiting_entry(struct fo *f, struct inst *in, uint32_t r, size_t e, uint64_t now)
{
	struct round *rd = &in->rounds[r];
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	struct ent *st = &rd->ents[e];
	st->deferred = false;
	if (st->st != E_WAIT || st->running || !is_self(f, pe->target))
		return;
	const struct move *away = move_away(f, pe->uuid, in->dead, entry_base(pe, r));
	if (away) {
		char text[FO_TEXT_MAX];
		snprintf(text, sizeof(text),
		         "%.64s moved it to %.64s by live migration: not "
		         "%.64s's to "
		         "re-place",
		         away->m.source, away->m.target, in->dead);
		hand_back(f, in, r, e, text, now);
		return;
	}
	if (own_recovery_accepted_above(f, pe)) {
		/* we accepted a recovery of our own incarnation that re-places
		 * it at a newer epoch, not yet decided: not now (below) */
		st->deferred = true;
		return;
	}
	if (given_above(f, pe->uuid, pe->new_epoch) || epoch_taken(f, pe)) {
		/* a plan we learned gave the VM this epoch elsewhere, or
		 * a newer one (maybe long ago: that plan may have left
		 * our history): never a second copy, nor an older one */
		hand_back(f, in, r, e,
		          "a newer placement, or another at this epoch, "
		          "was chosen for this VM",
		          now);
		return;
	}
	bool other = false;
	const char *by = superseded_by_ex(f, in, r, pe, &other);
	uint64_t ep = 0;
	const char *host =
	    by ? NULL : running_elsewhere(f, pe->uuid, pe->new_epoch - 1, f->cfg.name, &ep);
	bool flight = false;
	const struct inst *twin = by || host ? NULL : placement_started(f, in, pe, &flight);
	const struct inst *gone = twin || flight ? NULL : placement_handed(f, in, pe);
	if (gone) {
		char text[FO_TEXT_MAX];
		snprintf(text, sizeof(text),
		         "the same placement was handed back for the "
		         "recovery of %.64s "
		         "incarnation %" PRIu64,
		         gone->dead, gone->inc);
		hand_back(f, in, r, e, text, now);
	} else if (flight && !twin) {
		return; /* being started for the other one: its outcome decides */
	} else if (twin) {
		/* the same placement (adopted) was started here for an
		 * older recovery: once, never again at this epoch (if
		 * it died since, it is owed a new one) */
		char text[FO_TEXT_MAX];
		snprintf(text, sizeof(text),
		         "started here for the recovery of %.64s "
		         "incarnation %" PRIu64,
		         twin->dead, twin->inc);
		report_running(f, in, r, e, text, now);
	} else if (by && other) {
		/* another instance's placement, live as far as we
		 * know: not now. Looked at again with every change —
		 * once we learn it is dead (handed back, its target
		 * fenced), this entry is the VM's. */
		st->deferred = true;
		return;
	} else if (by) {
		st->st = E_HANDED;
		snprintf(st->text, sizeof(st->text), "not started: %.200s", by);
	} else if (host) {
		/* started by a newer plan, or moved on since: never a
		 * second copy */
		st->st = E_HANDED;
		snprintf(st->text, sizeof(st->text),
		         "not started: %.64s runs it with epoch %" PRIu64, host, ep);
	} else if (pe->target_incarnation && f->first_inc &&
	           pe->target_incarnation < f->first_inc && !own_state_known(f)) {
		/* a previous life's entry, and what runs here is not
		 * known yet: wait for our own state */
		st->deferred = true;
	} else if (pe->target_incarnation && f->first_inc &&
	           pe->target_incarnation < f->first_inc) {
		/* Given to an earlier life of this agent: that life may
		 * have started it, or been failed over since (it would
		 * not know). Never started here; what really runs here
		 * says which. */
		if (runs_here(f, pe->uuid, pe->new_epoch)) {
			report_running(f, in, r, e,
			               "running here (started by a previous "
			               "life of this agent)",
			               now);
		} else {
			char text[FO_TEXT_MAX];
			snprintf(text, sizeof(text),
			         "assigned to incarnation %" PRIu64 " of %.64s, a previous "
			         "life of its agent: not started",
			         pe->target_incarnation, f->cfg.name);
			hand_back(f, in, r, e, text, now);
		}
	} else if (st->attempts == 0 && own_state_known(f)) {
		/* A stopped copy here already carries this epoch or a newer
		 * one, which no attempt of ours wrote: the plan was made
		 * from an older view of the VM (an HA move that failed and
		 * stayed here raised the epoch on this copy, and the voters
		 * that chose the plan never heard of it: sim seed
		 * 8975791287407931656). Started at the plan's epoch, two
		 * lives of the VM would share one epoch; handed back, a
		 * later round places it at base + 1 + round (above it in that
		 * seed; if not, it comes back here and is handed back again,
		 * and failed_hosts keeps later rounds off this host). */
		uint64_t have = stopped_here_epoch(f, pe->uuid);
		if (have >= pe->new_epoch) {
			char text[FO_TEXT_MAX];
			snprintf(text, sizeof(text),
			         "the stopped copy here has epoch %" PRIu64
			         ", not below the plan's %" PRIu64,
			         have, pe->new_epoch);
			hand_back(f, in, r, e, text, now);
		}
	}
}

/* May entry e of rd (a chosen round of in) start here now? It must be
 * ours, waiting, not deferred, not given to an incarnation of ours that is
 * over or to an earlier life of this agent, not the same placement started
 * for another instance, and its plan acknowledged since we learned it;
 * notes when to look again (restart_wake, wait_fresh_acks). */
static bool restart_ready(struct fo *f, struct inst *in, struct round *rd, size_t e, uint64_t now)
{
	struct ent *st = &rd->ents[e];
	const struct fo_plan_entry *ce = &rd->plan.entries[e];
	if (st->st != E_WAIT || st->running || st->deferred || !is_self(f, ce->target))
		return false;
	/* never an entry given to an incarnation of ours that is
	 * over, or to an earlier life of this agent (the first
	 * loop hands those back or reports them) */
	if (ce->target_incarnation && (ce->target_incarnation <= f->fenced_through ||
	                               (f->first_inc && ce->target_incarnation < f->first_inc)))
		return false;
	bool flight = false;
	if (placement_started(f, in, &rd->plan.entries[e], &flight) || flight)
		return false; /* the same placement, started for another */
	if (!acked_since(f, rd->chosen_at)) {
		/* not before a majority acknowledged a heartbeat
		 * we sent after learning the plan (WHY NO VM RUNS
		 * TWICE: a failover of our incarnation, chosen by
		 * acceptors that no longer ack us, may have
		 * remote-fenced us already) */
		f->wait_fresh_acks = true;
		return false;
	}
	if (st->next_try > now) {
		if (st->next_try < f->restart_wake)
			f->restart_wake = st->next_try;
		return false;
	}
	return true;
}

/* The entry of ours to start next, in plan order (entry_order) over every
 * ready entry of every fenced instance: false if none. */
static bool next_restart(struct fo *f, uint64_t now, struct inst **bi, uint32_t *br, size_t *be)
{
	*bi = NULL;
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (in->done || !in->fenced)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				if (!restart_ready(f, in, rd, e, now))
					continue;
				if (!*bi ||
				    entry_order(&rd->plan.entries[e],
				                &(*bi)->rounds[*br].plan.entries[*be]) < 0) {
					*bi = in;
					*br = r;
					*be = e;
				}
			}
		}
	}
	return *bi != NULL;
}

/* Settles what our chosen entries should no longer start, then starts the
 * next ready ones (one FO_EV_RESTART each), up to max_parallel at a time,
 * while quorate and unfenced. */
static void schedule_restarts(struct fo *f, uint64_t now)
{
	for (size_t i = 0; f->fenced_through && i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++)
			for (size_t e = 0;
			     f->inst[i]->rounds[r].chosen && e < f->inst[i]->rounds[r].plan.n; e++)
				settle_failed_over_entry(f, f->inst[i], r, e, now);
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (in->done || !in->fenced)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++)
			for (size_t e = 0; in->rounds[r].chosen && e < in->rounds[r].plan.n; e++)
				settle_waiting_entry(f, in, r, e, now);
	}
	f->restart_wake = UINT64_MAX;
	f->wait_fresh_acks = false;
	bool quorate = fo_quorate(f, now);
	for (;;) {
		struct inst *bi;
		uint32_t br = 0;
		size_t be = 0;
		if (!next_restart(f, now, &bi, &br, &be) || !quorate || f->fenced ||
		    f->running >= f->cfg.max_parallel)
			return;
		struct round *rd = &bi->rounds[br];
		rd->ents[be].running = true;
		f->running++;
		struct fo_instance_id id;
		inst_id(&id, bi, br);
		const struct fo_plan_entry *e = &rd->plan.entries[be];
		struct fo_event *ev =
		    push_event(f, FO_EV_RESTART, &id, bi->dead,
		               "start %s (failed over from %s) with epoch %" PRIu64 ", attempt %u",
		               e->name, bi->dead, e->new_epoch, rd->ents[be].attempts + 1);
		ev->entry = *e;
	}
}

/* ------------------------------------------------------------------------ */
/* Input: membership                                                        */

void fo_member(struct fo *f, const char *name, enum fo_member_state st, uint64_t incarnation,
               uint64_t now)
{
	if (now > f->last_now)
		f->last_now = now;
	if (!name || !name[0] || !terminated(name, FO_NAME_MAX) || (unsigned)st > FO_LEFT)
		return;
	if (is_self(f, name))
		return;
	struct mrec *r = member_add(f, name);
	if (!r)
		return;
	r->fed = true;
	if (st == FO_ALIVE || st == FO_SUSPECT) {
		if (!r->alive_since) {
			r->alive_since = now + 1;
			r->heard_alive = false;
		}
	} else {
		r->alive_since = 0;
		r->heard_alive = false;
	}
	/* membership's word admits it at once only where the caller asks for
	 * that (join_after_ms 0); else it must prove itself (try_admit) */
	if (!f->cfg.join_after_ms)
		r->admitted = true;
	if (st == FO_LEFT) {
		r->left = true;
		if (incarnation > r->left_inc)
			r->left_inc = incarnation;
	} else if (st == FO_ALIVE || st == FO_SUSPECT) {
		bool back = false;
		if (r->left && incarnation > r->left_inc) {
			r->left = false;
			back = true;
		}
		if (r->removed && incarnation > r->removed_inc) {
			r->removed = false;
			back = true;
			f->journal_version++; /* removals are journalled */
		}
		/* back from LEFT or a force-leave: a new member, which must prove
		 * itself again before it votes (a force-left rogue that returns at
		 * a higher incarnation voted again at once) */
		if (back && f->cfg.join_after_ms) {
			r->admitted = false;
			r->restored_voter = false;
			r->heard_alive = false;
		}
	}
	if (st == FO_DEAD && r->st != FO_DEAD)
		r->dead_at = now + 1;
	/* a member back from the dead, or restarted, may have missed how our
	 * moves ended: tell them again */
	if ((st == FO_ALIVE || st == FO_SUSPECT) &&
	    (r->st == FO_DEAD || r->st == FO_LEFT || incarnation > r->inc))
		moves_retell(f, now);
	r->st = st;
	r->inc = incarnation;
	if (st == FO_DEAD && incarnation > r->dead_max)
		r->dead_max = incarnation;
	try_admit(f, r, now);
	recount_voters(f);
	if (st == FO_DEAD && r->voter) {
		struct inst *in = inst_find(f, name, incarnation);
		if (!in || !in->detected_at) {
			in = inst_open(f, name, incarnation, now);
			if (in) {
				in->detected_at = now;
				snprintf(in->cause, sizeof(in->cause),
				         "declared dead at incarnation %" PRIu64, incarnation);
				if (now < in->first_heard)
					in->first_heard = now;
				struct fo_instance_id id;
				inst_id(&id, in, 0);
				push_event(f, FO_EV_DETECTED, &id, name,
				           "%s is dead (incarnation %" PRIu64 "): failover opened",
				           name, incarnation);
			}
		}
	}
	if (st == FO_DEAD)
		detect_newer_deaths(f, now);
	update_quorum(f, now, true);
	track_owed(f, now);
	run_work(f, now);
}

int fo_force_leave(struct fo *f, const char *name, uint64_t now)
{
	if (now > f->last_now)
		f->last_now = now;
	if (!name || !terminated(name, FO_NAME_MAX))
		return -EINVAL;
	if (is_self(f, name))
		return -EINVAL;
	struct mrec *r = member_find(f, name);
	if (!r || (!r->fed && !r->restored_voter))
		return -ENOENT;
	if (r->removed || r->left)
		return 0;
	if (r->st != FO_DEAD)
		return -EBUSY;
	r->removed = true;
	f->journal_version++; /* removals are journalled */
	/* the operator says the host is gone: at the newest incarnation we
	 * know of, whose VMs are then failed over (detect_newer_deaths) */
	r->removed_inc = newest_known_inc(f, r);
	r->removed_at = f->last_now + 1;
	recount_voters(f);
	push_event(f, FO_EV_MEMBER_REMOVED, NULL, name,
	           "%s force-left (incarnation %" PRIu64 "): %zu voters, majority %zu", name,
	           r->removed_inc, f->n_voters, majority_of(f->eff_voters));
	detect_newer_deaths(f, now);
	update_quorum(f, now, true);
	/* tell the voters now rather than at the next heartbeat: the removal
	 * lives only here until a heartbeat carries it, and an agent that
	 * dies before its next round takes it along (the others keep
	 * counting the removed host and may never be a majority again) */
	send_heartbeats(f, now);
	run_work(f, now);
	return 0;
}

static void merge_removed(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	bool changed = false;
	for (size_t i = 0; i < m->n_removed; i++) {
		const struct fo_removed *rm = &m->removed[i];
		if (!rm->name[0] || is_self(f, rm->name))
			continue;
		struct mrec *r = member_find(f, rm->name);
		if (r && r->removed && r->removed_inc >= rm->incarnation)
			continue;
		if (r && r->fed && r->inc > rm->incarnation && r->st != FO_DEAD)
			continue; /* known alive at a newer incarnation */
		if (!r)
			r = member_add(f, rm->name);
		if (!r)
			continue;
		bool was = r->removed, beat = beating(f, r);
		r->removed = true;
		f->journal_version++; /* removals are journalled */
		if (!was)
			r->removed_at = (now > f->last_now ? now : f->last_now) + 1;
		if (rm->incarnation > r->removed_inc)
			r->removed_inc = rm->incarnation;
		/* the operator removed the host, not one life of it: the removal
		 * covers the newest incarnation we know of too (the remover may
		 * never have heard of it — a restarted agent that never saw the
		 * host alive removes "incarnation 0"), so that its VMs are
		 * failed over (detect_newer_deaths). One we know alive at a
		 * newer incarnation was skipped above; one heartbeating us now
		 * keeps the incarnation the remover named. */
		uint64_t known = newest_known_inc(f, r);
		if (known > r->removed_inc && !beat)
			r->removed_inc = known;
		changed = true;
		if (!was)
			push_event(f, FO_EV_MEMBER_REMOVED, NULL, rm->name,
			           "%s force-left (incarnation %" PRIu64 ", told by %s)", rm->name,
			           rm->incarnation, m->from);
	}
	if (changed) {
		recount_voters(f);
		detect_newer_deaths(f, now);
		update_quorum(f, now, true);
	}
}

/* ------------------------------------------------------------------------ */
/* Input: messages                                                          */

static bool plan_ok(const struct fo_plan *p)
{
	if (p->n > FO_PLAN_MAX || (p->n && !p->entries))
		return false;
	for (size_t i = 0; i < p->n; i++) {
		const struct fo_plan_entry *e = &p->entries[i];
		if (!terminated(e->uuid, sizeof(e->uuid)) ||
		    !terminated(e->name, sizeof(e->name)) ||
		    !terminated(e->target, sizeof(e->target)) ||
		    !terminated(e->group, sizeof(e->group)))
			return false;
		if (e->has_base && e->base_epoch >= e->new_epoch)
			return false; /* a move goes to a newer epoch */
		if (e->new_epoch > FO_NUM_MAX || e->target_incarnation > FO_NUM_MAX)
			return false;
	}
	return true;
}

static int validate(const struct fo *f, const struct fo_msg *m)
{
	if ((unsigned)m->type >= FO_MSG_TYPES)
		return -EINVAL;
	if (!terminated(m->from, sizeof(m->from)) || !terminated(m->to, sizeof(m->to)) ||
	    !terminated(m->inst.dead, sizeof(m->inst.dead)) ||
	    !terminated(m->ballot.proposer, sizeof(m->ballot.proposer)) ||
	    !terminated(m->accepted_ballot.proposer, sizeof(m->accepted_ballot.proposer)) ||
	    !terminated(m->vm_uuid, sizeof(m->vm_uuid)) || !terminated(m->text, sizeof(m->text)))
		return -EINVAL;
	if (!m->from[0] || !is_self(f, m->to) || is_self(f, m->from))
		return -EINVAL;
	if (m->n_removed > FO_REMOVED_MAX || (m->n_removed && !m->removed))
		return -EINVAL;
	for (size_t i = 0; i < m->n_removed; i++)
		if (!terminated(m->removed[i].name, FO_NAME_MAX))
			return -EINVAL;
	if (m->plan.n > FO_PLAN_MAX)
		return -EINVAL;
	if (m->has_plan && !plan_ok(&m->plan))
		return -EINVAL;
	if (!plan_ok(&m->superseded))
		return -EINVAL;
	if (m->n_adopt > FO_PLAN_MAX || (m->n_adopt && !m->adopt))
		return -EINVAL;
	if (m->n_moves > FO_MOVES_MAX || (m->n_moves && !m->moves))
		return -EINVAL;
	for (size_t i = 0; i < m->n_moves; i++) {
		const struct fo_move *mv = &m->moves[i];
		if (!terminated(mv->id, sizeof(mv->id)) ||
		    !terminated(mv->uuid, sizeof(mv->uuid)) ||
		    !terminated(mv->source, sizeof(mv->source)) ||
		    !terminated(mv->target, sizeof(mv->target)) || !mv->id[0] || !mv->uuid[0] ||
		    !mv->source[0] || !mv->target[0] || (unsigned)mv->state > FO_MOVE_STAYED)
			return -EINVAL;
	}
	for (size_t i = 0; i < m->n_adopt; i++) {
		struct fo_plan one = {.n = 1, .entries = &m->adopt[i].e};
		if (!plan_ok(&one) || !terminated(m->adopt[i].ballot.proposer, FO_NAME_MAX))
			return -EINVAL;
	}
	if (m->type >= FO_FENCE_ORDER || m->type == FO_HB_NACK) {
		if (m->type != FO_HB_NACK && !m->inst.dead[0])
			return -EINVAL;
		if (m->inst.round >= f->n_rounds)
			return -EINVAL;
	}
	/* numbers no honest peer reaches (they grow by one per step): taken,
	 * one would wrap a "+ 1" (a ballot, an incarnation to move to) */
	if (m->incarnation > FO_NUM_MAX || m->fenced_through > FO_NUM_MAX ||
	    m->inst.incarnation > FO_NUM_MAX || m->ballot.number > FO_NUM_MAX ||
	    m->accepted_ballot.number > FO_NUM_MAX)
		return -EINVAL;
	for (size_t i = 0; i < m->n_removed; i++)
		if (m->removed[i].incarnation > FO_NUM_MAX)
			return -EINVAL;
	for (size_t i = 0; i < m->n_adopt; i++)
		if (m->adopt[i].ballot.number > FO_NUM_MAX || m->adopt[i].incarnation > FO_NUM_MAX)
			return -EINVAL;
	return 0;
}

static void send_chosen_to(struct fo *f, struct inst *in, uint32_t round, const char *to);

/* An entry still waiting on its target (a heartbeat from it just came) gets
 * the plan to it again: the target may never have learned it — the CHOSEN
 * was lost, or its agent restarted (a restarted agent hears of no dead
 * member) — at most every FO_RESEND_CHOSEN_MS, and at once when the target
 * moved to a newer incarnation. It never starts an entry of an earlier
 * incarnation of its agent; it hands it back or reports it running
 * (schedule_restarts). */
#define FO_RESEND_CHOSEN_MS 10000
static void nudge_target(struct fo *f, const char *target, uint64_t inc, uint64_t now)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			struct round *rd = &in->rounds[r];
			bool sent = false;
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				struct ent *st = &rd->ents[e];
				if (st->st != E_WAIT || strcmp(pe->target, target) != 0)
					continue;
				bool newer = pe->target_incarnation &&
				             pe->target_incarnation < inc && st->nudged_inc < inc;
				uint64_t since = st->nudged_at ? st->nudged_at : rd->chosen_at;
				if (!newer && now < sat_add(since, FO_RESEND_CHOSEN_MS))
					continue;
				st->nudged_inc = inc;
				st->nudged_at = now;
				if (!sent) {
					send_chosen_to(f, in, r, target);
					sent = true;
				}
			}
		}
	}
}

static bool merge_moves(struct fo *f, const struct fo_msg *m, uint64_t now);
/* Heartbeat m reports its sender x fenced through a newer incarnation. */
static void note_fenced_through(struct fo *f, struct mrec *x, const struct fo_msg *m, uint64_t now)
{
	x->fenced_through = m->fenced_through;
	/* It reports itself fenced through an incarnation: every plan of
	 * its failovers up to it that was chosen is carried out there (a
	 * self-fence destroyed everything; an order through k listed every
	 * plan chosen up to k). Its targets need not wait. */
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		bool any_chosen = false;
		highest_chosen(in, f->n_rounds, &any_chosen);
		if (!in->fenced && any_chosen && in->inc <= m->fenced_through &&
		    strcmp(in->dead, m->from) == 0) {
			char how[FO_TEXT_MAX];
			snprintf(how, sizeof(how),
			         "the host itself: it reports itself fenced through incarnation "
			         "%" PRIu64,
			         m->fenced_through);
			set_fenced(f, in, how, now, true);
			in->fence_total = true;
		}
	}
}

/* Heartbeat m from x: when it was heard, at which incarnation, and the
 * voting-set size x reports (majorities count over the larger set). */
static void note_heartbeat(struct fo *f, struct mrec *x, const struct fo_msg *m, uint64_t now)
{
	/* Heartbeats travel as datagrams and may arrive out of order: one
	 * older than the last we noted (an earlier incarnation, or an earlier
	 * stamp of the same one — the sender's clock only grows within a
	 * life) says nothing new, and must not lower the voting set it
	 * reported or the incarnation it lives in. */
	if (x->hb_at && (m->incarnation < x->hb_inc ||
	                 (m->incarnation == x->hb_inc && m->stamp <= x->hb_stamp)))
		return;
	x->hb_stamp = m->stamp;
	uint32_t was = x->reported_voters;
	uint32_t told = m->voters;
	if (told > voters_believable(f)) {
		/* no honest voter can know that many: counted, it would make
		 * every majority unreachable and fence the whole cluster */
		refuse(f, x->name,
		       "heartbeat reports %" PRIu32 " voters, more than this node "
		       "can believe (%zu): ignored for majorities",
		       told, voters_believable(f));
		told = 0;
	}
	/* A removal we hold that the heartbeat does not list (the list is
	 * whole below FO_REMOVED_MAX): the sender had not heard of it when it
	 * counted its voters, so its report still counts the removed host —
	 * as effective_voters assumes of one sent before we learned the
	 * removal. Before, a voter's heartbeat sent in the moment between the
	 * operator's force-leave here and its news there grew our voting set
	 * back for F; quorum is measured over the grown count from the last
	 * majority of it, so this host fenced itself at once (seed
	 * 6064821209421971394, migrations: the two live hosts fenced, and a
	 * cross-instance clash kept the VMs down). It errs where that rule
	 * errs: a sender that never counted the removed host is lowered by
	 * one too many until its next heartbeat, which lists the removal
	 * learned from ours (THE VOTING SET). */
	if (told && m->n_removed < FO_REMOVED_MAX) {
		uint32_t unlisted = 0;
		for (size_t j = 0; f->n_removed && j < f->n_m; j++) {
			if (!f->m[j].removed || j == f->self_idx)
				continue;
			bool listed = false;
			for (size_t k = 0; k < m->n_removed && !listed; k++)
				listed = strcmp(m->removed[k].name, f->m[j].name) == 0;
			unlisted += !listed;
		}
		told = told > unlisted ? told - unlisted : 0;
	}
	x->reported_voters = told;
	x->hb_at = now + 1;
	x->hb_inc = m->incarnation;
	if (told != was || told > f->eff_voters) {
		size_t eff = effective_voters(f);
		if (eff != f->eff_voters) {
			set_eff_voters(f, eff);
			recompute_qstamp(f);
			update_quorum(f, now, true);
		}
	}
}

/* x (sender of heartbeat m, fenced through ft) has failovers of
 * incarnations it has not fenced. When some in (ft, low) are chosen — low
 * being its lowest undecided one — send it the FENCE_ORDER for them all
 * and return true (also when it could not be built). A FENCE_ORDER up to
 * incarnation k makes it claim fenced_through = k, so it must list the
 * VMs of every chosen instance in (ft, k], and k stays below the lowest
 * one still undecided. *lowp: that lowest undecided incarnation
 * (UINT64_MAX: none). */
static bool order_fence(struct fo *f, const struct mrec *x, const struct fo_msg *m, uint64_t ft,
                        uint64_t *lowp)
{
	uint64_t low = UINT64_MAX, upto = 0;
	size_t n = 0;
	for (size_t i = 0; i < f->n_inst; i++) {
		/* undecided ones, but not first rounds a learned newer
		 * recovery superseded: those can never be chosen */
		const struct inst *in = f->inst[i];
		if (in->inc > ft && !in->rounds[0].chosen && !in->superseded_by &&
		    strcmp(in->dead, x->name) == 0 && in->inc < low)
			low = in->inc;
	}
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (in->inc > ft && in->inc < low && in->rounds[0].chosen &&
		    strcmp(in->dead, x->name) == 0) {
			for (uint32_t k = 0; k < f->n_rounds; k++)
				if (in->rounds[k].chosen)
					n += in->rounds[k].plan.n;
			if (in->inc > upto)
				upto = in->inc;
		}
	}
	*lowp = low;
	if (!upto)
		return false;
	struct fo_msg o;
	msg_init(f, &o, FO_FENCE_ORDER, m->from);
	cpy(o.inst.dead, sizeof(o.inst.dead), x->name);
	o.inst.incarnation = upto;
	o.stamp = m->stamp;
	o.has_plan = true;
	/* We know a plan for x chosen and withhold our acks from x until it
	 * fences through it: we vouch, as for an HB_NACK (a learner that does
	 * not vouch still makes x lose its quorum and fence ALL its HA VMs at
	 * q + F; the order destroys only the listed ones: issue 9 case 3 came
	 * back, a majority-side host fencing itself after a heal) */
	o.ok = true;
	if (n && !(o.plan.entries = malloc(n * sizeof(*o.plan.entries))))
		return true;
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (in->inc <= ft || in->inc > upto || !in->rounds[0].chosen ||
		    strcmp(in->dead, x->name) != 0)
			continue;
		/* every round's placements (a later round may re-place
		 * what X was given late: late_owed), each VM once, at the
		 * highest new epoch: X destroys its copies below it */
		for (uint32_t k = 0; k < f->n_rounds; k++) {
			const struct fo_plan *p = &in->rounds[k].plan;
			for (size_t e = 0; in->rounds[k].chosen && e < p->n; e++) {
				size_t j = 0;
				while (j < o.plan.n &&
				       strcmp(o.plan.entries[j].uuid, p->entries[e].uuid) != 0)
					j++;
				if (j == o.plan.n)
					o.plan.entries[o.plan.n++] = p->entries[e];
				else if (p->entries[e].new_epoch > o.plan.entries[j].new_epoch)
					o.plan.entries[j] = p->entries[e];
			}
		}
	}
	snprintf(o.text, sizeof(o.text),
	         "you were failed over (incarnation %" PRIu64 "): destroy these VMs", upto);
	push_msg(f, &o);
	return true;
}

static void handle_heartbeat(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	struct mrec *x = member_find(f, m->from);
	struct fo_msg r;
	msg_init(f, &r, FO_HB_NACK, m->from);
	r.stamp = m->stamp;
	r.incarnation = m->incarnation;
	heard_from(f, x, now);
	if (!x || !x->voter) {
		/* nothing it says counts: not its removals (a stranger would
		 * force-leave live members and fail them over), not its moves */
		cpy(r.text, sizeof(r.text), "not a voter here");
		push_msg(f, &r);
		return;
	}
	merge_removed(f, m, now);
	/* (before we answer: an acknowledgement says we know its moves) */
	bool recorded = merge_moves(f, m, now);
	x = member_find(f, m->from);
	if (!x || !x->voter) {
		cpy(r.text, sizeof(r.text), "not a voter here");
		push_msg(f, &r);
		return;
	}
	if (!recorded) {
		/* an acknowledgement would vouch for moves we could not keep */
		cpy(r.text, sizeof(r.text), "cannot record the live migrations it announces");
		push_msg(f, &r);
		return;
	}
	if (m->fenced_through > x->fenced_through) {
		note_fenced_through(f, x, m, now);
		x = member_find(f, m->from);
	}
	note_heartbeat(f, x, m, now);
	if (x->st == FO_DEAD && x->inc >= m->incarnation) {
		cpy(r.inst.dead, sizeof(r.inst.dead), x->name);
		r.inst.incarnation = x->inc;
		snprintf(r.text, sizeof(r.text), "you are dead to me (incarnation %" PRIu64 ")",
		         x->inc);
		push_msg(f, &r);
		return;
	}
	uint64_t ft = m->fenced_through;
	/* (a finished instance dropped from the history withholds nothing by
	 * itself: one that did — a non-empty value — raised inst_max, below,
	 * which the journal keeps) */
	if (x->inst_max > ft) {
		/* failovers of incarnations it has not fenced. Its own chosen
		 * plans that wait on it still go to it (nudge_target): a plan
		 * for an incarnation it left, whose CHOSEN it missed, is what
		 * it must learn (by its read) to carry out — the order that
		 * follows is held while fewer than a majority withhold, which
		 * is so when it was itself in the choosing majority (sim seed
		 * 7151404553202125990: its VMs stayed down for good). */
		nudge_target(f, m->from, m->incarnation, now);
		uint64_t low;
		if (order_fence(f, x, m, ft, &low))
			return;
		uint64_t inc = low != UINT64_MAX ? low : x->inst_max;
		cpy(r.inst.dead, sizeof(r.inst.dead), x->name);
		r.inst.incarnation = inc;
		r.ok = true; /* we withhold for a value of a failover of it */
		snprintf(r.text, sizeof(r.text), "failover of incarnation %" PRIu64 " %s", inc,
		         low != UINT64_MAX ? "pending"
		         : x->restored_max >= inc
		             ? "(from before my restart, journalled) not fenced: fence first"
		             : "done: fence first");
		push_msg(f, &r);
		return;
	}
	nudge_target(f, m->from, m->incarnation, now);
	r.type = FO_HB_ACK;
	ask_retell(f, m, &r, now);
	/* see handle_ack; a journalled core remembers whom it must not ack
	 * across restarts, so it is as good as an old one (RESTARTS) */
	r.age_ms = f->journal_durable ? FO_ACK_AGE_DURABLE : now - f->started;
	x->acked_at = now + 1; /* ACCEPTED reports it (ack bound) */
	push_msg(f, &r);
}

static void handle_ack(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	heard_from(f, member_find(f, m->from), now);
	struct mrec *y = member_find(f, m->from);
	if (!y || !y->voter || m->stamp > now)
		return;
	/* An agent that restarted lost the instances it had opened and would
	 * acknowledge a host it helped fail over. Once our core is older than
	 * F + margin + quorate_ms, we count only acks from cores at least
	 * F + margin old: every plan chosen before such an acker's start has
	 * been restarted by then, and we have fenced ourselves. Younger, we
	 * count acks from cores about as old as ours (within quorate_ms): a
	 * cluster starting together forms at once. */
	uint64_t window = (uint64_t)f->cfg.fence_after_ms + f->cfg.fence_margin_ms;
	uint64_t mine = now - f->started;
	bool counts = mine < window + f->cfg.quorate_ms
	                  ? sat_add(m->age_ms, f->cfg.quorate_ms) >= mine
	                  : m->age_ms >= window;
	if (!counts)
		return;
	uint64_t s = m->stamp + 1, old = y->ack;
	if (s <= old)
		return;
	y->ack = s;
	if (old <= f->qstamp && s > f->qstamp) {
		uint64_t before = f->qstamp;
		recompute_qstamp(f);
		if (f->wait_fresh_acks && f->qstamp > before)
			schedule_restarts(f, now);
	}
	if (!f->quorate_flag)
		update_quorum(f, now, true);
}

static void try_held_order(struct fo *f, uint64_t now);

/* Voter y (the sender of m, which has ok set) accepted, as an acceptor, a
 * non-empty value of a failover of ours and withholds its acks from us:
 * evidence for a fence order (NOTHING DESTRUCTIVE ON ONE PEER'S WORD). */
static void note_withheld(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	struct mrec *y = member_find(f, m->from);
	if (!y || !y->voter || !is_self(f, m->inst.dead))
		return;
	y->withheld_at = now + 1;
	y->withheld_inc = m->inst.incarnation;
}

static void handle_nack(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	if (is_self(f, m->inst.dead) && m->inst.incarnation > f->seen_against)
		f->seen_against = m->inst.incarnation;
	if (m->ok) {
		note_withheld(f, m, now);
		try_held_order(f, now);
	}
	/* Self-fenced and not quorate since: every HA VM we had is destroyed
	 * and we started none (restarts need quorum), so the claim covers
	 * instances we hear of only now (e.g. after a partition heals). */
	if (f->fenced && f->seen_against > f->fenced_through) {
		f->fenced_through = f->seen_against;
		want_new_incarnation(f, "failed over while fenced");
	}
}

/* Entries of chosen plans that we run or are starting, assigned to an
 * incarnation of ours up to `upto` (0: unknown, counted), not in `order`:
 * a fence of those incarnations destroys them too — those of our own
 * recoveries only when `extras` (obey_fence_order). */
static bool fenced_extra(const struct fo *f, const struct inst *in, const struct round *rd,
                         size_t e, const struct fo_plan *order, uint64_t upto, bool extras)
{
	const struct fo_plan_entry *pe = &rd->plan.entries[e];
	return (extras || !is_self(f, in->dead)) && is_self(f, pe->target) &&
	       pe->target_incarnation <= upto && started_here(f, in, rd, e) &&
	       !plan_has_uuid(order, pe->uuid);
}

static void send_fenced(struct fo *f, const struct fo_instance_id *id, const char *how)
{
	if (f->fence_incomplete)
		return; /* not true until the destroys succeed */
	struct fo_msg d;
	msg_init(f, &d, FO_FENCED, "");
	d.inst = *id;
	d.inst.round = 0;
	cpy(d.text, sizeof(d.text), how);
	broadcast(f, &d);
}

/* A fence order for our incarnation inst->incarnation, from `from`,
 * listing `plan` (may be NULL): a FENCE_ORDER's, or a chosen plan we learn
 * for the incarnation we live in. */
static void obey_fence_order(struct fo *f, const struct fo_instance_id *inst,
                             const struct fo_plan *plan, const char *from, uint64_t now)
{
	if (inst->incarnation > f->seen_against)
		f->seen_against = inst->incarnation;
	if (f->fenced_through >= inst->incarnation) {
		/* done already (by a self-fence or an earlier order that listed
		 * this plan): say so, so that its targets need not wait */
		char how[FO_TEXT_MAX];
		snprintf(how, sizeof(how), "the host itself: fenced through incarnation %" PRIu64,
		         f->fenced_through);
		send_fenced(f, inst, how);
		return;
	}
	uint64_t upto = inst->incarnation;
	/* Failed over at our current incarnation (or a later one we never
	 * had): what we started for other failovers goes too, the others may
	 * re-place it. An order for an incarnation we have left behind (we
	 * refuted, restarted, fenced ourselves) spares what our own
	 * recoveries gave back to us — our state at the newer incarnation
	 * shows it, and the order's plan left it here on purpose — but not
	 * what other hosts' failovers gave to the fenced incarnation: a
	 * proposer that has not heard of our newer one re-places those in a
	 * later round of our failover (late_owed) once we report the fence
	 * (sim seed 2434670326187296738 ran such a VM twice). Placements given
	 * to a newer incarnation than the order's stay (fenced_extra: target
	 * incarnation <= upto). */
	bool extras = upto >= f->incarnation;
	f->fenced_through = upto;
	/* The VMs to destroy: the order's, and those we started (or are
	 * starting) for other failovers, assigned to a fenced incarnation of
	 * ours, that the order does not re-place — the others may not know we
	 * started them, and will re-place them. A FENCE_VMS entry destroys
	 * the local copy whose epoch is below its new_epoch: for those we
	 * started, that is one above the epoch we started them with. */
	struct fo_plan order = {0};
	if (plan)
		order = *plan;
	size_t extra = 0;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++)
				extra += fenced_extra(f, f->inst[i], rd, e, &order, upto, extras);
		}
	struct fo_plan kill = {0};
	if (order.n + extra)
		kill.entries = malloc((order.n + extra) * sizeof(*kill.entries));
	if (kill.entries) {
		for (size_t e = 0; e < order.n; e++)
			kill.entries[kill.n++] = order.entries[e];
		for (size_t i = 0; i < f->n_inst; i++)
			for (uint32_t r = 0; r < f->n_rounds; r++) {
				const struct round *rd = &f->inst[i]->rounds[r];
				for (size_t e = 0; rd->chosen && e < rd->plan.n; e++)
					if (fenced_extra(f, f->inst[i], rd, e, &order, upto,
					                 extras)) {
						kill.entries[kill.n] = rd->plan.entries[e];
						kill.entries[kill.n++].new_epoch++;
					}
			}
	}
	/* Failed over at the incarnation we live in: every HA VM here dies,
	 * whatever the order lists — the order's list is one voter's word (a
	 * majority vouched that a failover of ours was accepted, not what its
	 * plans re-place: a lying voter's shorter list would leave copies
	 * running that our FENCED then claims destroyed). It is what our
	 * self-fence would do at q + F anyway, since that majority withholds
	 * its acks; what no plan re-places is owed again, and our next
	 * incarnation's recovery restarts it (RECOVERY). */
	if (kill.n || extras) {
		struct fo_event *e =
		    push_event(f, FO_EV_FENCE_VMS, inst, from,
		               "failed over (incarnation %" PRIu64 ") by %s: destroy "
		               "%s%zu VMs",
		               inst->incarnation, from, extras ? "every HA VM here, " : "", kill.n);
		e->plan = kill;
		e->all_ha = extras;
	} else {
		free(kill.entries);
	}
	hand_back_mine(f, "destroyed: this host was failed over", &order, upto, extras, now);
	send_fenced(f, inst, "destroyed by the host itself");
	/* our own instances up to here are fenced too (we may be a target of
	 * our own recovery: RECOVERY) */
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (is_self(f, in->dead) && in->inc <= upto && in->rounds[0].chosen)
			set_fenced(f, in, "by this host itself", now, true);
	}
	want_new_incarnation(f, "failed over by the cluster");
}

/* How many voters (not us) told us within quorate_ms that they accepted a
 * non-empty value of a failover of an incarnation of ours above what we
 * have fenced through (and so withhold their acks from us). */
static size_t withholding(const struct fo *f, uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *y = &f->m[i];
		if (i != f->self_idx && y->voter && y->withheld_at &&
		    now < sat_add(y->withheld_at - 1, f->cfg.quorate_ms) &&
		    y->withheld_inc > f->fenced_through)
			n++;
	}
	return n;
}

static void order_drop(struct fo *f)
{
	f->order_held = false;
	fo_plan_clear(&f->order_plan);
	f->order_has_plan = false;
}

/* A fence order for us (NOTHING DESTRUCTIVE ON ONE PEER'S WORD): obeyed
 * at once only when it asks for nothing new (fenced through it already)
 * or a majority of the voting set withholds its acks from us for a
 * non-empty value of a failover of ours; else held — the latest one —
 * and obeyed when that evidence comes, or dropped once we fenced through
 * it or after F + margin (a genuine failover has fenced us by then: its
 * acceptors withhold their acks, and we self-fence). */
static void fence_order_in(struct fo *f, const struct fo_instance_id *inst,
                           const struct fo_plan *plan, const char *from, uint64_t now)
{
	/* (self-fenced and not quorate since: every HA VM here is destroyed
	 * already and nothing started since, so obeying destroys nothing —
	 * as handle_nack's claim) */
	if (f->fenced_through >= inst->incarnation || f->fenced ||
	    withholding(f, now) >= majority_of(f->eff_voters)) {
		if (f->order_held && f->order_inst.incarnation <= inst->incarnation)
			order_drop(f);
		obey_fence_order(f, inst, plan, from, now);
		return;
	}
	/* a self-fence claims it (update_quorum), as an HB_NACK's */
	if (inst->incarnation > f->seen_against)
		f->seen_against = inst->incarnation;
	if (f->order_held && f->order_inst.incarnation > inst->incarnation)
		return;
	struct fo_plan copy = {0};
	if (plan && fo_plan_copy(&copy, plan) < 0)
		return;
	if (!f->order_held || f->order_inst.incarnation < inst->incarnation)
		refuse(f, from,
		       "fence order for our incarnation %" PRIu64 " held: %zu of %zu voters "
		       "withhold their acks from us, %zu needed",
		       inst->incarnation, withholding(f, now), f->eff_voters,
		       majority_of(f->eff_voters));
	order_drop(f);
	f->order_held = true;
	f->order_inst = *inst;
	f->order_has_plan = plan != NULL;
	f->order_plan = copy;
	cpy(f->order_from, sizeof(f->order_from), from);
	f->order_at = now;
}

/* The held order: obeyed once the evidence is there, dropped once moot. */
static void try_held_order(struct fo *f, uint64_t now)
{
	if (!f->order_held)
		return;
	uint64_t wait = (uint64_t)f->cfg.fence_after_ms + f->cfg.fence_margin_ms;
	if (f->fenced_through >= f->order_inst.incarnation || now >= sat_add(f->order_at, wait)) {
		order_drop(f);
		return;
	}
	if (!f->fenced && withholding(f, now) < majority_of(f->eff_voters))
		return;
	struct fo_instance_id id = f->order_inst;
	struct fo_plan plan = f->order_plan;
	bool has_plan = f->order_has_plan;
	char from[FO_NAME_MAX];
	cpy(from, sizeof(from), f->order_from);
	f->order_held = false;
	f->order_plan = (struct fo_plan){0};
	obey_fence_order(f, &id, has_plan ? &plan : NULL, from, now);
	fo_plan_clear(&plan);
}

static void handle_fence_order(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	if (!is_self(f, m->inst.dead))
		return;
	if (m->ok)
		note_withheld(f, m, now);
	fence_order_in(f, &m->inst, m->has_plan ? &m->plan : NULL, m->from, now);
}

/* A FENCED: believed only from the host it is about (X speaks for itself:
 * the sender's name is its certificate's). Another voter's — its own
 * remote fence, or a lie — is recorded (`meshvisor failovers` shows it)
 * and starts nothing: a target starts an entry on X's word, its own
 * remote fence, or the timed wait (WHY NO VM RUNS TWICE, whose word
 * fences). */
static void handle_fenced(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	bool own = strcmp(m->from, m->inst.dead) == 0 && !is_self(f, m->from);
	struct inst *in = inst_find(f, m->inst.dead, m->inst.incarnation);
	if (!in) {
		if (!own)
			return;
		in = inst_open(f, m->inst.dead, m->inst.incarnation, now);
		if (!in)
			return;
	}
	if (in->fenced)
		return;
	char how[FO_TEXT_MAX];
	if (!own) {
		snprintf(how, sizeof(how),
		         "not yet: %.40s reports \"%.60s\" (only the host's own word, our own "
		         "remote fence or the timed wait count)",
		         m->from, m->text[0] ? m->text : "fenced");
		cpy(in->fence_how, sizeof(in->fence_how), how);
		return;
	}
	snprintf(how, sizeof(how), "%.120s (reported by %.64s)", m->text[0] ? m->text : "fenced",
	         m->from);
	set_fenced(f, in, how, now, true);
	schedule_restarts(f, now);
}

static struct ent *find_entry(struct inst *in, uint32_t round, const char *uuid, const char *target,
                              const struct fo_plan_entry **pe)
{
	struct round *rd = &in->rounds[round];
	if (!rd->chosen)
		return NULL;
	for (size_t e = 0; e < rd->plan.n; e++)
		if (strcmp(rd->plan.entries[e].uuid, uuid) == 0 &&
		    (!target || strcmp(rd->plan.entries[e].target, target) == 0)) {
			if (pe)
				*pe = &rd->plan.entries[e];
			return &rd->ents[e];
		}
	return NULL;
}

/* A peer sent us a plan we learned long ago (nudge_target: it still waits
 * on entries targeted at us — our RESTARTED was lost, or it learned the
 * plan after we reported): tell it again what became of each of them. */
static void resend_outcomes(struct fo *f, struct inst *in, uint32_t round, const char *to)
{
	struct round *rd = &in->rounds[round];
	for (size_t e = 0; to[0] && !is_self(f, to) && e < rd->plan.n; e++) {
		const struct fo_plan_entry *pe = &rd->plan.entries[e];
		const struct ent *st = &rd->ents[e];
		/* only outcomes we broadcast: a silent E_HANDED (another plan
		 * re-places the VM) is no hand-back to re-plan */
		if (!is_self(f, pe->target) || !st->told || (st->st != E_OK && st->st != E_HANDED))
			continue;
		struct fo_msg r;
		msg_init(f, &r, FO_RESTARTED, to);
		msg_inst(&r, in, round);
		cpy(r.vm_uuid, sizeof(r.vm_uuid), pe->uuid);
		r.ok = st->st == E_OK;
		r.took_ms = st->took_ms;
		cpy(r.text, sizeof(r.text),
		    st->text[0] ? st->text
		    : r.ok      ? "running"
		                : "not started");
		if (!r.ok) {
			r.has_plan = true;
			if (fo_plan_copy(&r.plan,
			                 &(struct fo_plan){
					     .n = 1, .entries = (struct fo_plan_entry *)pe}) < 0)
				continue;
		}
		push_msg(f, &r);
	}
}

static void handle_restarted(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	struct inst *in = inst_find(f, m->inst.dead, m->inst.incarnation);
	if (!in)
		return;
	const struct fo_plan_entry *pe = NULL;
	struct ent *st = find_entry(in, m->inst.round, m->vm_uuid, m->from, &pe);
	if (st) {
		/* waiting; or running and since destroyed by a FENCE_ORDER */
		if (st->st != E_WAIT && !(st->st == E_OK && !m->ok))
			return;
		st->st = m->ok ? E_OK : E_HANDED;
		st->ok_at = f->last_now;
		st->took_ms = m->took_ms;
		cpy(st->text, sizeof(st->text), m->text);
		struct fo_event *ev =
		    m->ok
			? push_event(f, FO_EV_RESTARTED, &m->inst, m->from,
		                     "%s running on %s with epoch %" PRIu64 " after %" PRIu64 " ms",
		                     pe->name, m->from, pe->new_epoch, m->took_ms)
			: push_event(f, FO_EV_HANDED_BACK, &m->inst, m->from,
		                     "%s handed back by %s: %.180s", pe->name, m->from, m->text);
		ev->entry = *pe;
		ev->took_ms = m->took_ms;
		if (!m->ok)
			add_pending(f, in, pe, m->inst.round);
	} else if (!m->ok && m->has_plan && m->plan.n == 1 &&
	           strcmp(m->plan.entries[0].uuid, m->vm_uuid) == 0 &&
	           strcmp(m->plan.entries[0].target, m->from) == 0) {
		/* the round is not learned here yet: keep the hand-back (only
		 * its target hands an entry back) */
		add_pending(f, in, &m->plan.entries[0], m->inst.round);
	} else {
		return;
	}
	if (!in->working)
		in->work_since = now;
	check_done(f, in, now);
	run_work(f, now);
}

/* ------------------------------------------------------------------------ */
/* Learner: a CHOSEN needs a majority's proof                               */

/* A CHOSEN from another node is a claim: the voter that sends it may lie
 * (a stolen node key). It is learned only once a majority of the voting
 * set answered a READ with the same accepted ballot and value — by Paxos'
 * definition that value is chosen, whoever claimed it (CHOSEN NEEDS A
 * MAJORITY'S PROOF). Reads are retried with backoff while a claim is
 * fresh (FO_READ_FOR_MS after the latest CHOSEN for the round), at most
 * FO_READS_MAX at once and FO_READS_PER_SENDER opened by one claimant, both
 * raised by the hosts with an instance open here (reads_cap): an honest
 * coordinator of a failover of many hosts at once claims one round of
 * each, and a claim beyond the cap waits for its resend; a liar gets no
 * more than that. */
#define FO_READ_FOR_MS 30000
#define FO_READS_MAX 64
#define FO_READS_PER_SENDER 8
#define FO_READ_BACKOFF_MAX 4 /* retries every retry_ms << (at most this) */

static void pread_free(struct pread *p)
{
	for (size_t a = 0; a < p->n_ans; a++)
		fo_plan_clear(&p->ans[a].p);
	free(p->ans);
	p->ans = NULL;
	p->n_ans = 0;
}

static void pread_drop(struct fo *f, size_t i)
{
	pread_free(&f->reads[i]);
	memmove(&f->reads[i], &f->reads[i + 1], (f->n_reads - i - 1) * sizeof(*f->reads));
	f->n_reads--;
}

static size_t pread_find(const struct fo *f, const struct fo_instance_id *id)
{
	for (size_t i = 0; i < f->n_reads; i++) {
		const struct pread *p = &f->reads[i];
		if (p->inc == id->incarnation && p->round == id->round &&
		    strcmp(p->dead, id->dead) == 0)
			return i;
	}
	return SIZE_MAX;
}

/* Our own acceptor state for the read's round, as an answer. */
static bool pread_self(const struct fo *f, const struct pread *p, struct pans *out)
{
	const struct inst *in = inst_find(f, p->dead, p->inc);
	if (!in || !in->rounds[p->round].has_acc || !f->m[f->self_idx].voter)
		return false;
	memset(out, 0, sizeof(*out));
	out->idx = (uint32_t)f->self_idx;
	out->has = true;
	out->b = in->rounds[p->round].acc_ballot;
	out->p = in->rounds[p->round].acc_plan; /* borrowed */
	const struct mrec *x = member_find(f, p->dead);
	if (x && x->acked_at) {
		out->has_ack = true;
		out->last_ack = x->acked_at - 1;
	}
	return true;
}

static bool pans_same(const struct pans *a, const struct pans *b)
{
	return a->has && b->has && ballot_cmp(&a->b, &b->b) == 0 && fo_plan_equal(&a->p, &b->p);
}

/* (Re)sends READ to every voter whose answer does not back the claim yet. */
static void pread_ask(struct fo *f, struct pread *p, uint64_t now)
{
	for (size_t i = 0; i < f->n_m; i++) {
		if (i == f->self_idx || !f->m[i].voter)
			continue;
		/* an older release never answers: asking it only fills its log */
		const struct fo_host *h = host_of(f, f->m[i].name);
		if (h != NULL && h->legacy)
			continue;
		bool backs = false;
		for (size_t a = 0; a < p->n_ans && !backs; a++)
			backs = p->ans[a].idx == i && p->ans[a].has &&
			        ballot_cmp(&p->ans[a].b, &p->claimed) == 0;
		if (backs)
			continue;
		struct fo_msg r;
		msg_init(f, &r, FO_READ, f->m[i].name);
		cpy(r.inst.dead, sizeof(r.inst.dead), p->dead);
		r.inst.incarnation = p->inc;
		r.inst.round = p->round;
		r.ballot = p->claimed;
		push_msg(f, &r);
	}
	uint32_t k = p->asks < FO_READ_BACKOFF_MAX ? p->asks : FO_READ_BACKOFF_MAX;
	p->asks++;
	p->next_ask = sat_add(now, (uint64_t)(f->cfg.retry_ms ? f->cfg.retry_ms : 1) << k);
}

/* Does a majority of the voting set back one (ballot, value) in p's
 * answers (our own acceptor state included)? Then learn it and drop p
 * (returns true). Else refuse the claim once when the answers already
 * rule out its ballot. */
static bool pread_check(struct fo *f, size_t i, uint64_t now)
{
	struct pread *p = &f->reads[i];
	struct pans self;
	bool has_self = pread_self(f, p, &self);
	size_t maj = majority_of(f->eff_voters), voters = 0, against = 0;
	for (size_t k = 0; k < f->n_m; k++)
		voters += f->m[k].voter;
	if (!has_self && f->m[f->self_idx].voter)
		against++; /* we accepted nothing there ourselves */
	const struct pans *won = NULL;
	size_t n_all = p->n_ans + has_self;
	for (size_t a = 0; a < n_all && !won; a++) {
		const struct pans *c = a < p->n_ans ? &p->ans[a] : &self;
		if (!f->m[c->idx].voter)
			continue;
		if (!c->has || ballot_cmp(&c->b, &p->claimed) != 0)
			against++;
		if (!c->has)
			continue;
		size_t n = 0;
		for (size_t o = 0; o < n_all; o++) {
			const struct pans *d = o < p->n_ans ? &p->ans[o] : &self;
			n += f->m[d->idx].voter && pans_same(c, d);
		}
		if (n >= maj)
			won = c;
	}
	if (!won) {
		if (!p->logged && voters < maj + against) {
			p->logged = true;
			refuse(f, f->m[p->claimant].name,
			       "CHOSEN for %.64s incarnation %" PRIu64 " round %u (ballot %" PRIu64
			       "/%.64s) from %.64s not proven: %zu of %zu voters answered "
			       "otherwise (majority %zu)",
			       p->dead, p->inc, p->round, p->claimed.number, p->claimed.proposer,
			       f->m[p->claimant].name, against, voters, maj);
		}
		return false;
	}
	/* the bound of the timed fence: the latest last ack to the host of the
	 * majority that backs the value (each withholds its acks from then on) */
	bool has_bound = true;
	uint64_t bound = 0;
	for (size_t o = 0; o < n_all; o++) {
		const struct pans *d = o < p->n_ans ? &p->ans[o] : &self;
		if (!f->m[d->idx].voter || !pans_same(won, d))
			continue;
		if (!d->has_ack)
			has_bound = false;
		else if (d->last_ack > bound)
			bound = d->last_ack;
	}
	struct fo_ballot b = won->b;
	struct fo_plan v;
	int rc = fo_plan_copy(&v, &won->p);
	char dead[FO_NAME_MAX];
	cpy(dead, sizeof(dead), p->dead);
	uint64_t inc = p->inc;
	uint32_t round = p->round;
	pread_drop(f, i);
	if (rc < 0)
		return true;
	struct inst *in = inst_open(f, dead, inc, now);
	if (in)
		learn(f, in, round, &b, &v, now, false, has_bound, bound);
	fo_plan_clear(&v);
	return true;
}

/* The value of the highest ballot the answers of a read under way for
 * (in, round) report accepted, copied to *out (promises_decide). */
static bool read_hint(const struct fo *f, const struct inst *in, uint32_t round,
                      struct fo_plan *out)
{
	struct fo_instance_id id;
	inst_id(&id, in, round);
	size_t i = pread_find(f, &id);
	const struct pans *best = NULL;
	for (size_t a = 0; i != SIZE_MAX && a < f->reads[i].n_ans; a++) {
		const struct pans *c = &f->reads[i].ans[a];
		if (c->has && f->m[c->idx].voter && (!best || ballot_cmp(&c->b, &best->b) > 0))
			best = c;
	}
	return best && fo_plan_copy(out, &best->p) == 0;
}

/* A CHOSEN from another voter (m): start (or refresh) its majority read. */
/* A rolling upgrade's window: can a read still prove a CHOSEN? Only
 * voters whose published record shows a revision that answers FO_READ
 * (fo_host.legacy false), that are alive to us, and we ourselves can
 * answer; when known legacy voters leave fewer of those than a majority,
 * no read can ever prove a CHOSEN, and one is taken from the voter that
 * sends it, as the older release does. Voters we have no record of, and
 * the size other voters report beyond ours (eff_voters), count as
 * answering: only a signed record of a legacy release opens the window,
 * never a claim or a heartbeat's count (a rogue voter's voters = 2N + 8
 * would otherwise raise the majority past what can answer and open it in
 * a cluster that has no legacy host at all). The window closes once the
 * upgrade reaches a majority. */
static bool reads_unprovable(const struct fo *f)
{
	size_t voters = 0, legacy = 0, silent = 0;
	for (size_t k = 0; k < f->n_m; k++) {
		if (!f->m[k].voter)
			continue;
		voters++;
		if (k == f->self_idx)
			continue;
		const struct fo_host *h = host_of(f, f->m[k].name);
		if (h != NULL && h->legacy)
			legacy++;
		else if (f->m[k].st == FO_DEAD || f->m[k].st == FO_LEFT)
			silent++; /* an upgraded voter that is gone cannot answer either */
	}
	if (legacy == 0)
		return false;
	size_t eff = voters > f->eff_voters ? voters : f->eff_voters;
	return eff - legacy - silent < majority_of(eff);
}

/* How many reads may be under way at once: `total` all of them, `each`
 * those of one claimant. The hosts with an instance open here (dead to
 * us, or us in a recovery we vote in) raise both: an honest claimant
 * claims at most a round of each host's failover at a time (the fixed part
 * is the slack for other claims, older rounds and older incarnations).
 * Hosts, not instances: a voter's PREPARE or ACCEPT opens an instance for
 * each past incarnation of ours, or of a host dead to us, that it names
 * (and for names we never heard of, once they count as gone), so a liar
 * could raise a count of instances at will. Members count once each, the
 * names that are no member once in all. */
static void reads_cap(const struct fo *f, size_t *total, size_t *each)
{
	size_t open = 0;
	bool stranger = false;
	bool *seen = f->n_m ? calloc(f->n_m, sizeof(*seen)) : NULL;
	for (size_t k = 0; k < f->n_inst; k++) {
		if (f->inst[k]->done)
			continue;
		uint32_t i = name_index_find(&f->m_by_name, f->inst[k]->dead);
		if (i == NAME_INDEX_NONE) {
			open += !stranger;
			stranger = true;
		} else if (!seen) {
			open++; /* out of memory: at most one a member */
			if (open > f->n_m + 1)
				open = f->n_m + 1;
		} else if (!seen[i]) {
			seen[i] = true;
			open++;
		}
	}
	free(seen);
	*each = FO_READS_PER_SENDER + open;
	*total = FO_READS_MAX + 2 * open;
}

static void chosen_claim(struct fo *f, const struct fo_msg *m, size_t from_idx, uint64_t now)
{
	const struct mrec *x = member_find(f, m->inst.dead);
	if (x && x->forgot_max >= m->inst.incarnation)
		return; /* finished and forgotten here: never decided twice */
	size_t i = pread_find(f, &m->inst);
	if (i == SIZE_MAX) {
		size_t mine = 0, total, each;
		for (size_t k = 0; k < f->n_reads; k++)
			mine += f->reads[k].claimant == from_idx;
		reads_cap(f, &total, &each);
		if (f->n_reads >= total || mine >= each) {
			refuse(f, m->from,
			       "CHOSEN for %.64s incarnation %" PRIu64 " from %.64s not read: "
			       "%zu reads under way (%zu of them for %.64s's claims)",
			       m->inst.dead, m->inst.incarnation, m->from, f->n_reads, mine,
			       m->from);
			return;
		}
		struct pread *nr = grow(f->reads, &f->cap_reads, f->n_reads + 1, sizeof(*nr));
		if (!nr)
			return;
		f->reads = nr;
		i = f->n_reads++;
		memset(&f->reads[i], 0, sizeof(f->reads[i]));
		cpy(f->reads[i].dead, sizeof(f->reads[i].dead), m->inst.dead);
		f->reads[i].inc = m->inst.incarnation;
		f->reads[i].round = m->inst.round;
		f->reads[i].next_ask = now;
	}
	struct pread *p = &f->reads[i];
	p->claimant = (uint32_t)from_idx;
	p->claimed = m->ballot;
	p->claim_at = now;
	if (pread_check(f, i, now))
		return;
	if (now >= p->next_ask)
		pread_ask(f, p, now);
}

/* A voter asks what we accepted in (inst): answered from our acceptor
 * state (which the journal keeps), never from what we learned. */
static void handle_read(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	struct fo_msg r;
	msg_init(f, &r, FO_READ_REPLY, m->from);
	r.inst = m->inst;
	r.ballot = m->ballot;
	const struct inst *in = inst_find(f, m->inst.dead, m->inst.incarnation);
	const struct round *rd = in ? &in->rounds[m->inst.round] : NULL;
	/* (a recovery of ours whose destroys failed: our acceptance would
	 * vouch for them, as our ACCEPTED would: acceptor_accept) */
	if (rd && rd->has_acc && !(is_self(f, in->dead) && f->fence_incomplete)) {
		if (fo_plan_copy(&r.plan, &rd->acc_plan) < 0)
			return;
		r.has_plan = true;
		r.accepted_ballot = rd->acc_ballot;
		const struct mrec *x = member_find(f, m->inst.dead);
		if (x && x->acked_at) {
			r.has_ack_ago = true;
			r.ack_ago_ms = now - (x->acked_at - 1);
		}
	}
	push_msg(f, &r);
}

/* A voter's answer to our READ: kept (its latest), then counted. */
static void handle_read_reply(struct fo *f, const struct fo_msg *m, size_t from_idx, uint64_t now)
{
	size_t i = pread_find(f, &m->inst);
	if (i == SIZE_MAX || from_idx == SIZE_MAX)
		return;
	struct pread *p = &f->reads[i];
	struct pans *a = NULL;
	for (size_t k = 0; k < p->n_ans && !a; k++)
		if (p->ans[k].idx == from_idx)
			a = &p->ans[k];
	if (!a) {
		struct pans *na = realloc(p->ans, (p->n_ans + 1) * sizeof(*na));
		if (!na)
			return;
		p->ans = na;
		a = &p->ans[p->n_ans++];
		memset(a, 0, sizeof(*a));
		a->idx = (uint32_t)from_idx;
	}
	fo_plan_clear(&a->p);
	a->has = false;
	a->has_ack = false;
	if (m->has_plan && m->accepted_ballot.number) {
		if (fo_plan_copy(&a->p, &m->plan) < 0)
			return;
		a->has = true;
		a->b = m->accepted_ballot;
		if (m->has_ack_ago) {
			a->has_ack = true;
			a->last_ack = now > m->ack_ago_ms ? now - m->ack_ago_ms : 0;
		}
	}
	pread_check(f, i, now);
}

/* Timer: reads whose round was learned otherwise are dropped, stale ones
 * (no CHOSEN for FO_READ_FOR_MS) too, the others are asked again. */
static void reads_work(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_reads;) {
		struct pread *p = &f->reads[i];
		const struct inst *in = inst_find(f, p->dead, p->inc);
		if ((in && in->rounds[p->round].chosen) ||
		    now >= sat_add(p->claim_at, FO_READ_FOR_MS)) {
			if (!p->logged && !(in && in->rounds[p->round].chosen))
				refuse(f, f->m[p->claimant].name,
				       "CHOSEN for %.64s incarnation %" PRIu64
				       " round %u from %.64s "
				       "not proven by a majority within %u ms",
				       p->dead, p->inc, p->round, f->m[p->claimant].name,
				       FO_READ_FOR_MS);
			pread_drop(f, i);
			continue;
		}
		if (pread_check(f, i, now))
			continue;
		if (now >= p->next_ask)
			pread_ask(f, p, now);
		i++;
	}
}

int fo_handle_message(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	if (!f || !m)
		return -EINVAL;
	int rc = validate(f, m);
	if (rc < 0)
		return rc;
	if (now > f->last_now)
		f->last_now = now;
	now = f->last_now;
	struct mrec *from = member_find(f, m->from);
	size_t from_idx = from ? (size_t)(from - f->m) : SIZE_MAX;
	struct inst *in = NULL;
	uint32_t round = m->inst.round;
	if (m->type == FO_HB_NACK && from && candidate(f, from))
		return 0; /* it has not admitted us yet either: joining, no news */
	if (m->type != FO_HEARTBEAT && !(m->type == FO_HB_ACK && from && candidate(f, from)) &&
	    (!from || !from->voter)) {
		/* Only a voter's word counts (THE VOTING SET): a stranger's
		 * FENCE_ORDER, CHOSEN, FENCED, PREPARE or REJECT would destroy,
		 * restart or stall on its say alone. A HEARTBEAT is answered
		 * (HB_NACK "not a voter here"). */
		refuse(f, m->from, "%s from %.64s, not a voter here", fo_msg_type_name(m->type),
		       m->from);
		return 0;
	}

	switch (m->type) {
	case FO_HEARTBEAT:
		handle_heartbeat(f, m, now);
		break;
	case FO_HB_ACK:
		retell_asked(f, m, now);
		handle_ack(f, m, now);
		break;
	case FO_HB_NACK:
		handle_nack(f, m, now);
		break;
	case FO_FENCE_ORDER:
		handle_fence_order(f, m, now);
		break;
	case FO_PREPARE:
	case FO_ACCEPT:
		if (m->type == FO_ACCEPT && !m->has_plan)
			return -EINVAL;
		in = inst_find(f, m->inst.dead, m->inst.incarnation);
		if (is_self(f, m->inst.dead)) {
			/* a recovery of an incarnation of ours that is over: we note
			 * it (no new incarnation for our stopped VMs while a value is
			 * being proposed) and vote (acceptor_refusal) */
			if (!in && m->inst.incarnation < f->incarnation)
				in = inst_open(f, m->inst.dead, m->inst.incarnation, now);
			if (in && m->type == FO_ACCEPT)
				in->heard_at = now + 1;
		}
		if (!in) {
			struct mrec *x = member_find(f, m->inst.dead);
			bool may =
			    !is_self(f, m->inst.dead) && dead_to_me(f, x, m->inst.incarnation);
			if (may)
				in = inst_open(f, m->inst.dead, m->inst.incarnation, now);
			if (!in) {
				struct fo_msg r;
				msg_init(f, &r, FO_REJECT, m->from);
				r.inst = m->inst;
				if (may)
					snprintf(r.text, sizeof(r.text),
					         "the failover of %s incarnation %" PRIu64
					         " finished long ago and is forgotten here",
					         m->inst.dead, m->inst.incarnation);
				else if (is_self(f, m->inst.dead))
					snprintf(r.text, sizeof(r.text),
					         "I am the host being failed over");
				else
					snprintf(r.text, sizeof(r.text),
					         "%s is not dead to me at incarnation %" PRIu64,
					         m->inst.dead, m->inst.incarnation);
				push_msg(f, &r);
				break;
			}
		}
		if (m->type == FO_PREPARE)
			acceptor_prepare(f, in, round, m->from, &m->ballot, m->age_ms, now);
		else
			acceptor_accept(f, in, round, m->from, &m->ballot, m->age_ms, &m->plan,
			                now);
		break;
	case FO_PROMISE:
	case FO_ACCEPTED:
	case FO_REJECT:
		in = inst_find(f, m->inst.dead, m->inst.incarnation);
		if (!in)
			break;
		if (m->type == FO_REJECT)
			on_reject(f, in, round, m, now);
		else if (from_idx != SIZE_MAX && m->type == FO_PROMISE)
			on_promise(f, in, round, from_idx, m, now);
		else if (from_idx != SIZE_MAX)
			on_accepted(f, in, round, from_idx, m, now);
		break;
	case FO_CHOSEN:
		if (!m->has_plan)
			return -EINVAL;
		/* a claim: learned once a majority read proves it (its bound
		 * too comes from the answers, not from the claim) */
		in = inst_find(f, m->inst.dead, m->inst.incarnation);
		if (in && in->rounds[round].chosen) {
			resend_outcomes(f, in, round, m->from);
		} else if (reads_unprovable(f)) {
			/* a rolling upgrade: too few voters answer reads for any
			 * proof; taken from the voter, as an older release does */
			in = inst_open(f, m->inst.dead, m->inst.incarnation, now);
			if (in)
				learn(f, in, round, &m->ballot, &m->plan, now, false,
				      m->has_ack_ago,
				      m->has_ack_ago && now > m->ack_ago_ms ? now - m->ack_ago_ms
				                                            : 0);
		} else {
			chosen_claim(f, m, from_idx, now);
		}
		break;
	case FO_READ:
		handle_read(f, m, now);
		break;
	case FO_READ_REPLY:
		handle_read_reply(f, m, from_idx, now);
		break;
	case FO_FENCED:
		handle_fenced(f, m, now);
		break;
	case FO_RESTARTED:
		handle_restarted(f, m, now);
		break;
	}
	/* a plan learned may target a dead host's newer life (no instance
	 * pointer is held here: opening one may drop an old finished one) */
	if (m->type == FO_READ_REPLY || m->type == FO_ACCEPTED)
		detect_newer_deaths(f, now);
	if (m->type >= FO_FENCE_ORDER && m->type != FO_RESTARTED && m->type != FO_READ)
		run_work(f, now);
	trim_history(f);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Outcomes of actions                                                      */

void fo_remote_fence_done(struct fo *f, const struct fo_instance_id *id, bool ok, const char *how,
                          uint64_t now)
{
	if (now > f->last_now)
		f->last_now = now;
	if (!id || !terminated(id->dead, sizeof(id->dead)))
		return;
	struct inst *in = inst_find(f, id->dead, id->incarnation);
	if (!in || !ok || in->fenced)
		return;
	char text[FO_TEXT_MAX];
	snprintf(text, sizeof(text), "libvirt: %.200s", how && how[0] ? how : "destroyed remotely");
	set_fenced(f, in, text, now, true);
	in->fence_total = true; /* every HA VM of the host (virt_remote_fence) */
	struct fo_msg d;
	msg_init(f, &d, FO_FENCED, "");
	msg_inst(&d, in, 0);
	cpy(d.text, sizeof(d.text), text);
	broadcast(f, &d);
	schedule_restarts(f, now);
}

void fo_restart_done(struct fo *f, const struct fo_instance_id *id, const char *uuid, bool ok,
                     const char *why, uint64_t now)
{
	if (now > f->last_now)
		f->last_now = now;
	if (!id || !uuid || !terminated(id->dead, sizeof(id->dead)) ||
	    !terminated(uuid, FO_UUID_MAX))
		return;
	struct inst *in = inst_find(f, id->dead, id->incarnation);
	if (!in || id->round >= f->n_rounds)
		return;
	const struct fo_plan_entry *pe = NULL;
	struct ent *st = find_entry(in, id->round, uuid, f->cfg.name, &pe);
	if (!st || !st->running)
		return;
	st->running = false;
	if (f->running)
		f->running--;
	struct round *rd = &in->rounds[id->round];
	struct fo_instance_id iid;
	inst_id(&iid, in, id->round);
	struct fo_msg r;
	msg_init(f, &r, FO_RESTARTED, "");
	msg_inst(&r, in, id->round);
	cpy(r.vm_uuid, sizeof(r.vm_uuid), uuid);
	if (ok) {
		st->st = E_OK;
		st->ok_at = now;
		st->told = true;
		st->took_ms = now - rd->chosen_at;
		cpy(st->text, sizeof(st->text), "running");
		struct fo_event *e =
		    push_event(f, FO_EV_RESTARTED, &iid, f->cfg.name,
		               "%s running here with epoch %" PRIu64 " after %" PRIu64 " ms",
		               pe->name, pe->new_epoch, st->took_ms);
		e->entry = *pe;
		e->took_ms = st->took_ms;
		r.ok = true;
		r.took_ms = st->took_ms;
		cpy(r.text, sizeof(r.text), "running");
		broadcast(f, &r);
	} else {
		st->attempts++;
		bool retry = st->attempts < f->cfg.restart_attempts;
		struct fo_event *e = push_event(f, FO_EV_RESTART_FAILED, &iid, f->cfg.name,
		                                "%s failed to start (attempt %u of %u): %.150s%s",
		                                pe->name, st->attempts, f->cfg.restart_attempts,
		                                why ? why : "", retry ? "" : "; handing back");
		e->entry = *pe;
		if (retry) {
			uint64_t d = (uint64_t)f->cfg.restart_backoff_ms << (st->attempts - 1);
			st->next_try = sat_add(now, d ? d : 1);
		} else {
			char text[FO_TEXT_MAX];
			snprintf(text, sizeof(text), "handed back after %u attempts: %.150s",
			         st->attempts, why ? why : "");
			hand_back(f, in, id->round, (size_t)(st - rd->ents), text, now);
		}
	}
	schedule_restarts(f, now);
	check_done(f, in, now);
	run_work(f, now);
	trim_history(f);
}

/* ------------------------------------------------------------------------ */
/* Timer                                                                    */

/* Our rank among the alive voters for coordinating (X, i): how many rank
 * above us. */
static size_t my_rank(const struct fo *f, const struct inst *in)
{
	uint64_t pre = rank_prefix(in->dead, in->inc);
	uint64_t mine = rank_hash(pre, f->cfg.name);
	size_t k = 0;
	/* a recovery of our own past incarnation: behind every live member
	 * (we coordinate its later rounds only when the others are gone) */
	bool last = is_self(f, in->dead);
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *r = &f->m[i];
		if (i == f->self_idx || !considered_alive(r) || r->st != FO_ALIVE ||
		    strcmp(r->name, in->dead) == 0)
			continue;
		uint64_t h = rank_hash(pre, r->name);
		if (last || h > mine || (h == mine && strcmp(r->name, f->cfg.name) < 0))
			k++;
	}
	return k;
}

/* The timed fence of (in), once due: confirmed. Also for an instance done
 * meanwhile (every VM of its plan ran before the wait was over, as on a
 * learner with nothing to start that could not bound the wait): the fence
 * is just as true, and a move to the host in doubt waits for it (m4); a
 * done instance that never confirmed it left the move MOVING here for
 * good, so this node refused the source's recovery that re-placed the VM
 * (seed 9043298157095463658, with migrations). */
static void fence_wait_work(struct fo *f, struct inst *in, uint64_t now)
{
	if (in->fence_wait_at && !in->fenced && now >= in->fence_wait_at) {
		char how[FO_TEXT_MAX];
		if (in->fence_wait_bound)
			snprintf(how, sizeof(how),
			         "waited quorate+F+margin (%u ms) from the last acknowledgement of "
			         "%s for the self-fence",
			         f->cfg.quorate_ms + f->cfg.fence_after_ms + f->cfg.fence_margin_ms,
			         in->dead);
		else
			snprintf(how, sizeof(how), "waited F+margin (%u ms) for the self-fence",
			         f->cfg.fence_after_ms + f->cfg.fence_margin_ms);
		set_fenced(f, in, how, now, true);
		in->fence_total = true; /* its self-fence (or watchdog): every HA VM */
	}
}

static void inst_work(struct fo *f, struct inst *in, uint64_t now, bool quorate)
{
	fence_wait_work(f, in, now);
	/* proposer retries */
	for (uint32_t r = 0; r < f->n_rounds; r++) {
		struct round *rd = &in->rounds[r];
		if (rd->chosen || !rd->pphase || now < rd->next_retry)
			continue;
		/* (the answers so far may make a majority now: the voting set
		 * shrank by a force-leave meanwhile) */
		size_t maj = majority_of(f->eff_voters);
		if (rd->pphase == 3) {
			start_phase1(f, in, r, now);
		} else if (rd->pphase == 1 && rd->n_resp >= maj) {
			promises_decide(f, in, r, now,
			                rd->maj_at &&
			                    now >= sat_add(rd->maj_at - 1, f->cfg.retry_ms));
			if (rd->pphase == 1)
				send_phase(f, in, r, now);
		} else if (rd->pphase == 2 && rd->n_resp >= maj) {
			accepted_decide(f, in, r, now);
		} else if (rd->pphase == 2 && rd->n_refused > 0) {
			/* refused for a clash, and no majority within retry_ms
			 * of the others: a new phase 1 (on_reject) */
			backoff(f, rd, now);
		} else {
			send_phase(f, in, r, now);
		}
	}
	uint32_t w;
	in->batch_at = 0;
	if (!work_round(f, in, now, &w)) {
		in->working = false;
		in->propose_at = UINT64_MAX;
		uint64_t at;
		if (in->n_pend && in->rounds[0].chosen && !batch_ready(f, in, now, &at))
			in->batch_at = at;
		return;
	}
	if (!in->working || in->work_round != w) {
		in->working = true;
		in->work_round = w;
		in->work_since = now;
	}
	if (in->rounds[w].pphase) {
		in->propose_at = UINT64_MAX;
		return;
	}
	in->propose_at =
	    sat_add(in->work_since, (uint64_t)my_rank(f, in) * f->cfg.coordinator_step_ms);
	if (w == 0) {
		/* a first plan only once the death has held for dead_grace_ms */
		uint64_t since = in->detected_at ? in->detected_at : in->known_at;
		uint64_t grace = sat_add(since, f->cfg.dead_grace_ms);
		if (grace > in->propose_at)
			in->propose_at = grace;
	}
	if (quorate && now >= in->propose_at) {
		in->propose_at = UINT64_MAX;
		start_phase1(f, in, w, now);
	}
}

/* Does o hold `uuid` pending or parked for a later round, at an epoch >=
 * `epoch`? */
static bool owes_later(const struct inst *o, const char *uuid, uint64_t epoch)
{
	for (size_t p = 0; p < o->n_pend; p++)
		if (o->pend[p].e.new_epoch >= epoch && strcmp(o->pend[p].e.uuid, uuid) == 0)
			return true;
	for (size_t p = 0; p < o->n_parked; p++)
		if (o->parked[p].e.new_epoch >= epoch && strcmp(o->parked[p].e.uuid, uuid) == 0)
			return true;
	return false;
}

/* Is the incarnation of tin's host known to run nothing any more: the host
 * said it is fenced through it, the operator removed it at it or later, or
 * we confirmed the instance's fence by a means that covers every HA VM of
 * the host (the timed wait for its self-fence, the remote fence) — not a
 * recovery's fence, which destroys only what its plan lists. */
static bool reclaimable(const struct fo *f, const struct inst *tin)
{
	const struct mrec *t = member_find(f, tin->dead);
	return (tin->fenced && tin->fence_total) ||
	       (t && (t->fenced_through >= tin->inc || (t->removed && t->removed_inc >= tin->inc)));
}

static uint64_t reclaim_at(const struct fo *f, const struct inst *tin)
{
	return sat_add(tin->rounds[0].chosen_at,
	               (uint64_t)f->cfg.fence_after_ms + f->cfg.fence_margin_ms);
}

/* A target T of chosen plans was itself failed over: (T, j) was chosen
 * here F + margin ago and its fence is confirmed (an empty plan fences
 * nothing: T may be alive at j, and start what it was given). By then T
 * has destroyed whatever it started — by
 * its self-fence (everything), a FENCE_ORDER (hand_back_mine() adds what
 * it started for others) or its hypervisor's remote fence — and it never
 * starts an entry after a fence (hand_back_mine()). So entries still
 * waiting on T are re-planned, unless T's own plan re-places the VM, or
 * T is back: alive at a newer incarnation, it carries its entries out
 * (or hands them back) itself. */
static void reclaim(struct fo *f, struct inst *tin, uint64_t now)
{
	tin->reclaimed = true;
	const struct mrec *t = member_find(f, tin->dead);
	if (is_self(f, tin->dead) || !t)
		return;
	bool back = t->hb_inc > tin->inc ||
	            ((t->st == FO_ALIVE || t->st == FO_SUSPECT) && t->inc > tin->inc);
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (in == tin || strcmp(in->dead, tin->dead) == 0)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				struct ent *st = &rd->ents[e];
				/* a plan learned after T's failure targets T because its
				 * proposer saw T back: T's entries are T's business */
				if ((st->st != E_WAIT && st->st != E_OK) ||
				    strcmp(pe->target, tin->dead) != 0)
					continue;
				bool theirs = false;
				for (size_t j = 0; j < f->n_inst && !theirs; j++) {
					const struct inst *o = f->inst[j];
					if (strcmp(o->dead, tin->dead) != 0)
						continue;
					for (uint32_t k = 0; k < f->n_rounds && !theirs; k++)
						theirs = o->rounds[k].chosen &&
						         places_above(&o->rounds[k].plan, pe->uuid,
						                      pe->new_epoch);
					/* (or owes it already, from the epoch this entry gave
					 * it, in a later round not chosen yet, pending or
					 * parked: late_owed took it once this plan's fence was
					 * confirmed. Re-planned here as well, the VM was owed
					 * by two instances, each node's later rounds of both
					 * placed it, and the acceptors split between the two
					 * values with a dead voter: neither was ever chosen,
					 * seed 3004879218773957613 with migrations. late_owed
					 * leaves out what this instance has pending already,
					 * pending_elsewhere: one owner either way.) */
					theirs =
					    theirs || (st->st == E_WAIT &&
					               owes_later(o, pe->uuid, pe->new_epoch + 1));
				}
				if (st->st == E_OK) {
					/* Started on T at the failed-over incarnation (or an
					 * older one), so destroyed with it, while T's own plans
					 * do not list it: T died before its state showed the
					 * VM. Re-planned here, unless it runs (or is placed)
					 * at a newer epoch or someone has it in hand. Not when
					 * T is back: a recovery's fence destroys only what its
					 * plan lists; T's own state (and its recoveries, which
					 * count what was given to it: owed_of) decide. */
					if (back || !pe->target_incarnation ||
					    pe->target_incarnation > tin->inc || theirs ||
					    running_elsewhere(f, pe->uuid, pe->new_epoch - 1, NULL,
					                      NULL) ||
					    superseded_by(f, in, r, pe) || vm_in_care(f, pe->uuid))
						continue;
					st->st = E_HANDED;
					snprintf(st->text, sizeof(st->text),
					         "ran on %.64s, lost with its incarnation %" PRIu64,
					         tin->dead, tin->inc);
					add_pending(f, in, pe, r);
					if (!in->working)
						in->work_since = now;
					continue;
				}
				/* Assigned to the failed-over incarnation (or older): T
				 * hands it back rather than start it (schedule_restarts).
				 * Without the incarnation (old peers), only if T is not
				 * back and the plan predates T's failure. */
				if (back ||
				    (pe->target_incarnation ? pe->target_incarnation > tin->inc
				                            : rd->chosen_at > tin->known_at))
					continue;
				st->st = E_HANDED;
				snprintf(st->text, sizeof(st->text), "target %.64s failed over %s",
				         tin->dead,
				         theirs ? "(its plan re-places it)" : "before starting it");
				if (!theirs) {
					add_pending(f, in, pe, r);
					if (!in->working)
						in->work_since = now;
				}
			}
		}
		in->done = in->done && in->n_pend == 0;
	}
}

/* ------------------------------------------------------------------------ */
/* Recovery: instances for incarnations that are over, parked VMs, our own  */
/* stopped VMs, and the list of VMs down                                    */

/* Is this VM in some instance's hands: an entry with a target not yet
 * settled, a hand-back being re-planned, or parked waiting for room? */
static bool vm_in_care(const struct fo *f, const char *uuid)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		for (size_t p = 0; p < in->n_pend; p++)
			if (strcmp(in->pend[p].e.uuid, uuid) == 0)
				return true;
		for (size_t p = 0; p < in->n_parked; p++)
			if (strcmp(in->parked[p].e.uuid, uuid) == 0)
				return true;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++)
				if (rd->ents[e].st == E_WAIT && rd->plan.entries[e].target[0] &&
				    !target_fenced(f, &rd->plan.entries[e]) &&
				    strcmp(rd->plan.entries[e].uuid, uuid) == 0)
					return true;
		}
	}
	return false;
}

/* A host moved to a newer incarnation (it restarted, refuted a death, or
 * fenced itself and moved on) while its state of the old one listed HA VMs
 * it does not run now: open the instance (X, old) for them, unless one
 * covering that state exists. Every node that saw both states does this;
 * the instance then runs like a death's (RECOVERY). */
static void detect_recoveries(struct fo *f, uint64_t now)
{
	for (size_t k = 0; k < f->n_m; k++) {
		struct mrec *r = &f->m[k];
		if (!r->has_prev || r->prev_checked || k == f->self_idx || !r->voter)
			continue;
		const struct fo_host *cur = host_of(f, r->name);
		if (!cur || cur->incarnation <= r->prev_inc || cur->inventory_unknown)
			continue; /* (an unknown inventory proves nothing gone: wait) */
		r->prev_checked = true;
		uint64_t j = r->prev_inc;
		if (!j || r->forgot_max >= j)
			continue;
		/* an instance for an incarnation in [j, now) plans from this very
		 * state already; older open ones are superseded by this one (it
		 * adopts what they may have placed: collect_adopt) */
		bool covered = false;
		for (size_t i = 0; i < f->n_inst && !covered; i++) {
			const struct inst *o = f->inst[i];
			covered = strcmp(o->dead, r->name) == 0 && o->inc >= j &&
			          o->inc < cur->incarnation;
		}
		if (covered)
			continue;
		bool has_base, ready;
		size_t cap = owed_of(f, r->name, j, NULL, NULL, NULL, 0, &has_base, &ready);
		struct fo_vm *vms = calloc(cap ? cap : 1, sizeof(*vms));
		if (!vms)
			continue;
		size_t n = owed_of(f, r->name, j, NULL, NULL, vms, cap, &has_base, &ready),
		       owed = 0;
		for (size_t v = 0; v < n && v < cap; v++)
			owed += !vm_in_care(f, nz(vms[v].uuid));
		free(vms);
		if (!owed)
			continue;
		char name[FO_NAME_MAX];
		cpy(name, sizeof(name), r->name);
		bool fenced = r->fenced_through >= j;
		uint64_t to = cur->incarnation;
		struct inst *in = inst_open(f, name, j, now); /* r may move: not used after */
		if (!in || in->detected_at)
			continue;
		in->detected_at = now;
		if (fenced)
			snprintf(in->cause, sizeof(in->cause),
			         "fenced itself at incarnation %" PRIu64 ": %zu HA VMs to restart",
			         j, owed);
		else
			snprintf(in->cause, sizeof(in->cause),
			         "came back at incarnation %" PRIu64
			         " without %zu HA VMs it ran at %" PRIu64,
			         to, owed, j);
		struct fo_instance_id id;
		inst_id(&id, in, 0);
		push_event(f, FO_EV_DETECTED, &id, name, "%s %s: recovery opened", name, in->cause);
	}
}

static void ask_incarnation(struct fo *f, uint64_t want, const char *why)
{
	if (want <= f->inc_wanted)
		return;
	f->inc_wanted = want;
	struct fo_instance_id id;
	memset(&id, 0, sizeof(id));
	cpy(id.dead, sizeof(id.dead), f->cfg.name);
	id.incarnation = want;
	push_event(f, FO_EV_NEW_INCARNATION, &id, f->cfg.name, "%s: now incarnation %" PRIu64, why,
	           want);
}

/* HA VMs stopped here that should run (the guest shut itself down, a fence
 * destroyed them before our new incarnation, a start failed...): after
 * reconcile_ms (doubled each time it changes nothing, up to 64x) we end
 * this incarnation, so that the others open a recovery of it and restart
 * them — on this host, which keeps what fits — through the same consensus,
 * fence and epoch path as any failover. Only while quorate and unfenced. */
static void check_own_owed(struct fo *f, uint64_t now)
{
	const struct fo_host *me = host_of(f, f->cfg.name);
	size_t n = 0;
	for (size_t v = 0; me && v < me->n_vms; v++) {
		const struct fo_vm *vm = &me->vms[v];
		if (!vm->running && !vm_in_care(f, nz(vm->uuid)) &&
		    !running_elsewhere(f, nz(vm->uuid), vm->epoch ? vm->epoch - 1 : 0, f->cfg.name,
		                       NULL))
			n++;
	}
	/* our state lags, or libvirt has not listed our VMs yet */
	bool busy = !me || me->incarnation != f->incarnation || me->inventory_unknown;
	for (size_t i = 0; i < f->n_inst && !busy; i++) {
		/* a recovery of ours being decided (a PREPARE or ACCEPT about it
		 * within a minute): it may take these VMs too */
		const struct inst *in = f->inst[i];
		busy = is_self(f, in->dead) && !in->done && !in->rounds[0].chosen && in->heard_at &&
		       now < sat_add(in->heard_at, FO_OWN_RECOVERY_QUIET_MS);
	}
	/* VMs a chosen recovery of ours that is still at work holds are in its
	 * hands, not owed anew */
	for (size_t v = 0; me && v < me->n_vms && n; v++) {
		const struct fo_vm *vm = &me->vms[v];
		if (vm->running || vm_in_care(f, nz(vm->uuid)) ||
		    running_elsewhere(f, nz(vm->uuid), vm->epoch ? vm->epoch - 1 : 0, f->cfg.name,
		                      NULL))
			continue;
		for (size_t i = 0; i < f->n_inst; i++) {
			const struct inst *in = f->inst[i];
			if (is_self(f, in->dead) && !in->done && in->rounds[0].chosen &&
			    inst_holds(f, in, nz(vm->uuid))) {
				n--;
				break;
			}
		}
	}
	if (!n || busy) {
		if (!n)
			f->bump_backoff = 0;
		f->owed_here_since = 0;
		f->bump_at = 0;
		return;
	}
	if (!f->owed_here_since) {
		f->owed_here_since = now;
		f->bump_at = sat_add(now, (uint64_t)f->cfg.reconcile_ms << f->bump_backoff);
	}
	if (now < f->bump_at || !fo_quorate(f, now) || f->fenced)
		return;
	char why[FO_TEXT_MAX];
	snprintf(why, sizeof(why), "%zu HA VM%s stopped here should run: recovering them", n,
	         n == 1 ? "" : "s");
	ask_incarnation(f, f->incarnation + 1, why);
	if (f->bump_backoff < 6)
		f->bump_backoff++;
	f->owed_here_since = 0;
	f->bump_at = 0;
}

/* Parked VMs (no room, or failed too often) get another round when the
 * view has room for one of them; each retry that places nothing doubles
 * the wait (10 s up to 40 s). A VM that runs somewhere meanwhile, or
 * that another instance placed, leaves the list. */
static void retry_parked(struct fo *f, struct inst *in, uint64_t now)
{
	if (!in->n_parked) {
		in->park_retry_at = 0;
		return;
	}
	if (!in->park_retry_at || now < in->park_retry_at)
		return;
	if (!in->rounds[0].chosen) { /* learned a later round first */
		in->park_retry_at = sat_add(now, FO_PARK_RETRY_MS);
		return;
	}
	bool any;
	uint32_t h = highest_chosen(in, f->n_rounds, &any);
	if (h + 1 >= f->n_rounds) {
		in->park_retry_at = 0; /* no round left: it stays reported */
		return;
	}
	struct fo_plan outst;
	outstanding_plan(f, &outst);
	size_t n_h = 0;
	struct fo_host *hv = hosts_view(f, NULL, 0, &n_h);
	bool own = own_host_eligible(f, in->dead, in->inc);
	size_t moved = 0;
	for (size_t p = 0; hv && p < in->n_parked;) {
		struct pend *pd = &in->parked[p];
		uint64_t base = entry_base(&pd->e, pd->failed_round);
		struct fo_vm v = {.uuid = pd->e.uuid,
		                  .name = pd->e.name,
		                  .group = pd->e.group,
		                  .priority = pd->e.priority,
		                  .vcpus = pd->e.vcpus,
		                  .memory_kib = pd->e.memory_kib,
		                  .epoch = base,
		                  .running = true};
		if (runs_besides_handed_back(f, &pd->e, base) ||
		    placed_by_other(f, in, pd->e.uuid, base) ||
		    replaced_after(f, in, pd->failed_round, pd->e.uuid)) {
			in->parked[p] = in->parked[--in->n_parked];
			continue;
		}
		const char *excl[FO_ROUNDS_MAX];
		size_t n_excl = failed_hosts(f, in, h + 1, pd->e.uuid, excl);
		size_t n_hx = 0;
		struct fo_host *hx = n_excl ? hosts_view(f, excl, n_excl, &n_hx) : NULL;
		struct fo_plan one;
		bool fits = fo_plan_compute_prefer(hx ? hx : hv, hx ? n_hx : n_h,
		                                   own ? NULL : in->dead, own ? in->dead : NULL, &v,
		                                   1, h + 1, &outst, &one) == 0 &&
		            one.n == 1 && one.entries[0].target[0];
		free(hx);
		fo_plan_clear(&one);
		if (!fits) {
			p++;
			continue;
		}
		struct pend *np = grow(in->pend, &in->cap_pend, in->n_pend + 1, sizeof(*np));
		if (!np) {
			p++;
			continue;
		}
		in->pend = np;
		in->pend[in->n_pend] = *pd;
		in->pend[in->n_pend].added_at = now;
		in->pend[in->n_pend].tries = 0;
		in->n_pend++;
		in->parked[p] = in->parked[--in->n_parked];
		moved++;
	}
	free(hv);
	fo_plan_clear(&outst);
	if (moved) {
		in->done = false;
		in->park_backoff = 0;
		if (!in->working)
			in->work_since = now;
	} else if (in->park_backoff < FO_PARK_BACKOFF_MAX) {
		in->park_backoff++;
	}
	in->park_retry_at =
	    in->n_parked ? sat_add(now, (uint64_t)FO_PARK_RETRY_MS << in->park_backoff) : 0;
}

static struct owed *owed_get(struct fo *f, const char *uuid)
{
	for (size_t i = 0; i < f->n_owed; i++)
		if (strcmp(f->owed[i].vm.uuid, uuid) == 0)
			return &f->owed[i];
	return NULL;
}

/* Notes what runs nowhere alive. A VM is up when an up host (alive or
 * suspected; us) lists it active. It is down when some host's state lists
 * it (active on a host that is dead or force-left, or stopped with its
 * desired state running), or a host's previous incarnation did and the
 * host runs it no more. A host that left gracefully is not reported on:
 * its VMs may well run on, unprotected. The highest epoch seen names it. */
/* A VM as some host's state lists it, for track_owed. */
struct owed_cand {
	struct hvm vm;
	const char *host;
	const char *why;
	bool up;
};

/* Every VM some state lists (*n of them; NULL on ENOMEM): each host's
 * current listing (not a host that left gracefully: its VMs may well run
 * on, unprotected), and a previous incarnation's while a recovery of it is
 * open or some instance has them in hand (afterwards the current listing
 * says it all: an operator may have stopped one). */
static struct owed_cand *owed_candidates(const struct fo *f, size_t *n_out)
{
	size_t cap = 0;
	for (size_t i = 0; i < f->n_hosts; i++)
		cap += f->hosts[i].n_vms;
	for (size_t k = 0; k < f->n_m; k++)
		cap += f->m[k].has_prev ? f->m[k].n_prev : 0;
	struct owed_cand *c = calloc(cap ? cap : 1, sizeof(*c));
	if (!c)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < f->n_hosts; i++) {
		const struct fo_host *h = &f->hosts[i];
		const struct mrec *r = member_find(f, h->cap.name);
		if (!r || r->left)
			continue;
		bool up = member_up(f, r);
		for (size_t v = 0; v < h->n_vms; v++) {
			const struct fo_vm *vm = &h->vms[v];
			struct owed_cand *x = &c[n++];
			cpy(x->vm.uuid, sizeof(x->vm.uuid), vm->uuid);
			cpy(x->vm.name, sizeof(x->vm.name), vm->name);
			x->vm.priority = vm->priority;
			x->vm.epoch = vm->epoch;
			x->host = h->cap.name;
			x->up = up && vm->running;
			x->why = x->up ? ""
			         : !up
			             ? (r->removed ? "its host was force-left" : "its host is dead")
			             : "stopped on its host";
		}
	}
	for (size_t k = 0; k < f->n_m; k++) {
		const struct mrec *r = &f->m[k];
		if (!r->has_prev || r->left || k == f->self_idx)
			continue;
		/* a previous incarnation's VMs count while a recovery of it is
		 * open, or while some instance has them in hand (afterwards the
		 * current listing says it all: an operator may have stopped one) */
		bool open = false;
		for (size_t i = 0; i < f->n_inst && !open; i++)
			open = !f->inst[i]->done && f->inst[i]->inc >= r->prev_inc &&
			       strcmp(f->inst[i]->dead, r->name) == 0;
		for (size_t v = 0; v < r->n_prev; v++) {
			if (!open && !vm_in_care(f, r->prev[v].uuid))
				continue;
			struct owed_cand *x = &c[n++];
			x->vm = r->prev[v];
			x->host = r->name;
			x->up = false;
			x->why = "its host came back without it";
		}
	}
	*n_out = n;
	return c;
}

/* VM b runs nowhere: noted (with its host, why, and since when), and
 * told once (FO_EV_VM_DOWN). */
static void note_down(struct fo *f, const struct owed_cand *b, uint64_t now)
{
	struct owed *o = owed_get(f, b->vm.uuid);
	if (!o) {
		struct owed *no = grow(f->owed, &f->cap_owed, f->n_owed + 1, sizeof(*no));
		if (!no)
			return;
		f->owed = no;
		o = &f->owed[f->n_owed++];
		memset(o, 0, sizeof(*o));
		o->since = now;
		o->vm = b->vm;
		cpy(o->host, sizeof(o->host), b->host);
		cpy(o->why, sizeof(o->why), b->why);
		struct fo_event *ev = push_event(f, FO_EV_VM_DOWN, NULL, b->host,
		                                 "%s (epoch %" PRIu64 ") runs nowhere: %s on %s",
		                                 b->vm.name, b->vm.epoch, b->why, b->host);
		cpy(ev->entry.uuid, sizeof(ev->entry.uuid), b->vm.uuid);
		cpy(ev->entry.name, sizeof(ev->entry.name), b->vm.name);
		ev->entry.new_epoch = b->vm.epoch;
		ev->entry.priority = b->vm.priority;
	} else {
		o->vm = b->vm;
		cpy(o->host, sizeof(o->host), b->host);
		cpy(o->why, sizeof(o->why), b->why);
	}
	o->seen = true;
}

/* VMs noted down that no state lists as down any more run again (or were
 * stopped by an operator): told (FO_EV_VM_RECOVERED) and forgotten. */
static void note_recovered(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_owed;) {
		struct owed *o = &f->owed[i];
		if (o->seen) {
			i++;
			continue;
		}
		uint64_t ep = 0;
		const char *where = running_elsewhere(f, o->vm.uuid, 0, NULL, &ep);
		struct fo_event *ev = push_event(
		    f, FO_EV_VM_RECOVERED, NULL, where ? where : "",
		    "%s runs again%s%s (epoch %" PRIu64 ") after %" PRIu64 " ms down", o->vm.name,
		    where ? " on " : "", where ? where : "", ep, now - o->since);
		cpy(ev->entry.uuid, sizeof(ev->entry.uuid), o->vm.uuid);
		cpy(ev->entry.name, sizeof(ev->entry.name), o->vm.name);
		ev->entry.new_epoch = ep;
		ev->took_ms = now - o->since;
		f->owed[i] = f->owed[--f->n_owed];
	}
}

static void track_owed(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_owed; i++)
		f->owed[i].seen = false;
	size_t n = 0;
	struct owed_cand *c = owed_candidates(f, &n);
	if (!c)
		return;
	/* per VM: up anywhere? else the record with the highest epoch */
	for (size_t i = 0; i < n; i++) {
		if (!c[i].vm.uuid[0])
			continue;
		bool up = false;
		size_t best = i;
		for (size_t j = i; j < n; j++) {
			if (strcmp(c[j].vm.uuid, c[i].vm.uuid) != 0)
				continue;
			up = up || c[j].up;
			if (c[j].vm.epoch > c[best].vm.epoch)
				best = j;
		}
		/* a previous incarnation's copy older than what the host lists
		 * now is superseded by the current listing */
		struct owed_cand b = c[best];
		for (size_t j = i; j < n; j++)
			if (strcmp(c[j].vm.uuid, b.vm.uuid) == 0 && j != i)
				c[j].vm.uuid[0] = '\0';
		c[i].vm.uuid[0] = '\0';
		if (up)
			continue;
		note_down(f, &b, now);
	}
	free(c);
	note_recovered(f, now);
}

/* Keeps each open instance's base (the dead host's latest state at an
 * incarnation <= the instance's) while the view still has it. */
static void snapshot_bases(struct fo *f)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (in->done || in->rounds[0].chosen)
			continue;
		const struct mrec *xr = member_find(f, in->dead);
		const struct fo_host *cur = host_of(f, in->dead);
		struct fo_host tmp;
		const struct fo_host *src = NULL;
		if (cur && cur->incarnation <= in->inc) {
			src = cur;
		} else if (xr && xr->has_prev && xr->prev_inc <= in->inc) {
			struct hvm *p = calloc(xr->n_prev ? xr->n_prev : 1, sizeof(*p));
			if (!p)
				continue;
			memcpy(p, xr->prev, xr->n_prev * sizeof(*p));
			free(in->base);
			in->base = p;
			in->n_base = xr->n_prev;
			in->has_base = true;
			continue;
		}
		if (!src)
			continue;
		tmp = *src;
		struct mrec holder;
		memset(&holder, 0, sizeof(holder));
		save_prev(&holder, &tmp);
		if (!holder.has_prev)
			continue;
		free(in->base);
		in->base = holder.prev;
		in->n_base = holder.n_prev;
		in->has_base = true;
	}
}

/* The newest incarnation of r we know of: from membership, its heartbeats,
 * its gossiped state, or a chosen plan that placed VMs on it. */
static uint64_t newest_known_inc(const struct fo *f, const struct mrec *r)
{
	uint64_t known = r->inc;
	if (r->dead_max > known)
		known = r->dead_max;
	if (r->hb_inc > known)
		known = r->hb_inc;
	const struct fo_host *h = host_of(f, r->name);
	if (h && h->incarnation > known)
		known = h->incarnation;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t rd = 0; rd < f->n_rounds; rd++) {
			const struct round *o = &f->inst[i]->rounds[rd];
			for (size_t e = 0; o->chosen && e < o->plan.n; e++)
				if (o->plan.entries[e].target_incarnation > known &&
				    strcmp(o->plan.entries[e].target, r->name) == 0)
					known = o->plan.entries[e].target_incarnation;
		}
	return known;
}

/* A member membership declared dead at incarnation d that we know lived at
 * a newer one k — its state of k reached us, a plan placed VMs on k, or it
 * heartbeat us at k (while SWIM held it dead: a plan may have given k VMs)
 * — and that stayed dead with no sign of life, heartbeats included, for
 * FO_LONG_DEAD_MS while we were quorate (long_dead):
 * it fenced itself (or restarted) and died before its new incarnation
 * reached our membership, which will never tell us of k now. Likewise a
 * voter membership never told this core of (our journal lists it) whose
 * state we know, once the core is old enough to have heard of every live
 * member (unknown_gone): it died before we started. (X, k) is failed over
 * too: else what k ran, or was given, waits on a host nobody fails over. */
static void detect_newer_deaths(struct fo *f, uint64_t now)
{
	for (size_t k = 0; k < f->n_m; k++) {
		const struct mrec *r = &f->m[k];
		if (k == f->self_idx || r->left ||
		    !(r->removed || (r->voter && (long_dead(f, r) || unknown_gone(f, r)))))
			continue;
		uint64_t known = newest_known_inc(f, r);
		if (known <= r->dead_max || known <= r->forgot_max ||
		    (r->removed && known > r->removed_inc))
			continue;
		const struct inst *have = inst_find(f, r->name, known);
		if (have && have->detected_at)
			continue;
		char name[FO_NAME_MAX];
		cpy(name, sizeof(name), r->name);
		uint64_t d = r->dead_max;
		struct inst *in = inst_open(f, name, known, now); /* r may move */
		if (!in || in->detected_at)
			continue;
		in->detected_at = now;
		snprintf(in->cause, sizeof(in->cause),
		         "declared dead at incarnation %" PRIu64 ", it had moved to %" PRIu64, d,
		         known);
		struct fo_instance_id id;
		inst_id(&id, in, 0);
		push_event(f, FO_EV_DETECTED, &id, name, "%s is dead (incarnation %" PRIu64 "): %s",
		           name, known, in->cause);
	}
}

/* Does `in` hold uuid already: in a chosen round, pending or parked? */
static bool inst_holds(const struct fo *f, const struct inst *in, const char *uuid)
{
	for (uint32_t r = 0; r < f->n_rounds; r++)
		if (in->rounds[r].chosen && plan_has_uuid(&in->rounds[r].plan, uuid))
			return true;
	for (size_t p = 0; p < in->n_pend; p++)
		if (strcmp(in->pend[p].e.uuid, uuid) == 0)
			return true;
	for (size_t p = 0; p < in->n_parked; p++)
		if (strcmp(in->parked[p].e.uuid, uuid) == 0)
			return true;
	return false;
}

/* Is `uuid` pending or parked, from `epoch` or a newer one, in an instance
 * other than `in` (that one re-places it: the instance that gave it,
 * reclaiming it)? An older, stale entry does not count. */
static bool pending_elsewhere(const struct fo *f, const struct inst *in, const char *uuid,
                              uint64_t epoch)
{
	for (size_t i = 0; i < f->n_inst; i++)
		if (f->inst[i] != in && owes_later(f->inst[i], uuid, epoch))
			return true;
	return false;
}

/* A VM the instance owes after its first round: pending for a later one. */
static void owe_later(struct fo *f, struct inst *in, const struct fo_plan_entry *owed, uint64_t now)
{
	size_t before = in->n_pend;
	add_pending(f, in, owed, 0);
	if (in->n_pend > before) {
		in->done = false;
		if (!in->working)
			in->work_since = now;
	}
}

/* Was move r announced by its source at an incarnation newer than inc?
 * Then the copy it left on the source belongs to that later life: a
 * failover of the source's incarnation inc does not owe it (that later
 * incarnation's own failover does, from its own listing). Before, a move
 * that stayed at n4's incarnation 2 was owed again by (n4, 1), decided
 * empty long before, whose later round re-placed the VM from the move's
 * epoch while (n4, 2), decided on the other side of a partition that never
 * heard of the move, had already restarted it at that epoch elsewhere:
 * O1, seed 3258347705468433741 with migrations. */
static bool move_after(const struct move *r, uint64_t inc)
{
	return r->src_inc && r->src_inc > inc;
}

/* A live migration away from X that ended STAYED, or one to X that landed
 * (MOVES), learned after round 0 of (X, i) was chosen without its VM: X
 * still owes it, so a later round re-places it — while X's incarnation i
 * may run it, once the instance's fence covers it (as late_owed); when X
 * is back at a newer incarnation, once X's state there is known (owed_of
 * leaves out what X runs; the plan's fence order makes X destroy what it
 * lists before anyone starts it). */
static void stayed_owed(struct fo *f, struct inst *in, bool back, uint64_t now)
{
	if (!in->rounds[0].chosen || is_self(f, in->dead))
		return;
	if (!back && in->fenced && !reclaimable(f, in))
		return;
	/* (back: what X runs there must be known; owed_of leaves out what it
	 * runs) */
	const struct fo_host *cur = host_of(f, in->dead);
	if (back && (!cur || cur->incarnation <= in->inc || cur->inventory_unknown))
		return;
	/* what (X, i) owes, computed once, when a move needs it */
	struct fo_vm *vms = NULL;
	size_t n = 0;
	bool computed = false;
	for (size_t m = 0; m < f->n_moves; m++) {
		const struct fo_move *mv = &f->moves[m].m;
		/* stayed on X, or landed on X (learned after round 0) */
		bool stayed = (mv->state == FO_MOVE_STAYED || move_target_gone(f, &f->moves[m])) &&
		              strcmp(mv->source, in->dead) == 0 &&
		              !move_after(&f->moves[m], in->inc);
		/* (landed: before the instance's fence, which then covers it, on
		 * an incarnation it fails over; or the target was fenced since we
		 * heard of the move by a fence that covers all it ran) */
		bool gone = move_target_gone(f, &f->moves[m]);
		bool landed =
		    (mv->state == FO_MOVE_MOVED && strcmp(mv->target, in->dead) == 0 &&
		     ((!gone && mv->target_inc && mv->target_inc <= in->inc && !in->fenced) ||
		      (gone && in->fenced && in->fence_total &&
		       in->known_at >= f->moves[m].heard) ||
		      ((!mv->target_inc || mv->target_inc <= in->inc) &&
		       move_target_removed(f, &f->moves[m])) ||
		      (back && landed_fenced(in, &f->moves[m])))) ||
		    /* (in doubt, its source cleared: m3b) */
		    (strcmp(mv->target, in->dead) == 0 &&
		     move_doubt_on_target(f, &f->moves[m], in->inc));
		if ((!stayed && !landed) || inst_holds(f, in, mv->uuid))
			continue;
		if (!computed) {
			computed = true;
			bool has_base = false, ready = false;
			size_t cap =
			    owed_of(f, in->dead, in->inc, NULL, in, NULL, 0, &has_base, &ready);
			if (!has_base || !cap)
				return;
			if (!(vms = calloc(cap, sizeof(*vms))))
				return;
			n = owed_of(f, in->dead, in->inc, NULL, in, vms, cap, &has_base, &ready);
			if (n > cap)
				n = cap;
			if (!ready)
				n = 0;
		}
		for (size_t v = 0; v < n; v++) {
			if (strcmp(nz(vms[v].uuid), mv->uuid) != 0 ||
			    pending_elsewhere(f, in, mv->uuid, vms[v].epoch))
				continue;
			struct fo_plan_entry owed = {.priority = vms[v].priority,
			                             .vcpus = vms[v].vcpus,
			                             .memory_kib = vms[v].memory_kib,
			                             .new_epoch = vms[v].epoch + 1,
			                             .has_base = true,
			                             .base_epoch = vms[v].epoch};
			cpy(owed.uuid, sizeof(owed.uuid), nz(vms[v].uuid));
			cpy(owed.name, sizeof(owed.name), nz(vms[v].name));
			cpy(owed.group, sizeof(owed.group), nz(vms[v].group));
			owe_later(f, in, &owed, now);
		}
	}
	free(vms);
}

/* Placements given to a failed-over incarnation after its plan was made:
 * (X, j) was decided while a plan giving X a VM at an incarnation <= j
 * was not fenced yet (its VM might still have run where it came from),
 * so (X, j) left it out. Once that plan's fence is confirmed, X (not back:
 * its own state speaks for it otherwise) may have started the VM before
 * it failed: (X, j) owes it, and re-places it in a later round — whose
 * value, like any non-empty one, blocks acknowledgements of X <= j and
 * waits for X's fence before anything starts. */
static void late_owed(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (!in->rounds[0].chosen || is_self(f, in->dead))
			continue;
		const struct mrec *xr = member_find(f, in->dead);
		bool back = !xr || xr->hb_inc > in->inc ||
		            ((member_up(f, xr) || beating(f, xr)) && xr->inc > in->inc);
		stayed_owed(f, in, back, now);
		if (back)
			continue; /* back at a newer incarnation */
		/* fenced already, by a fence that covered only its plan (a
		 * recovery's): X's incarnation may still run what it got, and a
		 * later round would start at once. Not fenced yet: the later
		 * round's value withholds acks from X and its fence (X's own
		 * self-fence, or the remote one) covers everything. */
		if (in->fenced && !reclaimable(f, in))
			continue;
		for (size_t k = 0; k < f->n_inst; k++) {
			const struct inst *o = f->inst[k];
			for (uint32_t r = 0; o != in && o->fenced && r < f->n_rounds; r++) {
				const struct round *rd = &o->rounds[r];
				for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
					const struct fo_plan_entry *pe = &rd->plan.entries[e];
					if ((rd->ents[e].st != E_WAIT && rd->ents[e].st != E_OK) ||
					    !pe->target_incarnation ||
					    pe->target_incarnation > in->inc ||
					    strcmp(pe->target, in->dead) != 0 ||
					    inst_holds(f, in, pe->uuid) ||
					    pending_elsewhere(f, in, pe->uuid, pe->new_epoch) ||
					    !given_newest(f, in->dead, in->inc, pe) ||
					    moved_on(f, pe) ||
					    move_away(f, pe->uuid, NULL, pe->new_epoch) ||
					    running_elsewhere(f, pe->uuid, pe->new_epoch - 1, NULL,
					                      NULL))
						continue;
					struct fo_plan_entry owed = *pe;
					owed.new_epoch =
					    pe->new_epoch + 1; /* from the epoch X got */
					owed.has_base = true;
					owed.base_epoch = pe->new_epoch;
					owe_later(f, in, &owed, now);
				}
			}
		}
	}
}

static void after_view(struct fo *f, uint64_t now)
{
	detect_newer_deaths(f, now);
	detect_recoveries(f, now);
	snapshot_bases(f);
	track_owed(f, now);
	run_work(f, now);
}

static void run_work(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *tin = f->inst[i];
		if (tin->rounds[0].chosen && reclaimable(f, tin) && !tin->reclaimed &&
		    now >= reclaim_at(f, tin))
			reclaim(f, tin, now);
	}
	for (size_t i = 0; i < f->n_inst; i++)
		retry_parked(f, f->inst[i], now);
	bool quorate = fo_quorate(f, now);
	for (size_t i = 0; i < f->n_inst; i++)
		if (!f->inst[i]->done)
			inst_work(f, f->inst[i], now, quorate);
		else
			fence_wait_work(f, f->inst[i], now);
	/* again: inst_work may have just confirmed a due timed fence */
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *tin = f->inst[i];
		if (tin->rounds[0].chosen && reclaimable(f, tin) && !tin->reclaimed &&
		    now >= reclaim_at(f, tin))
			reclaim(f, tin, now);
	}
	schedule_restarts(f, now);
	for (size_t i = 0; i < f->n_inst; i++)
		check_done(f, f->inst[i], now);
	check_own_owed(f, now);
}

int fo_handle_timer(struct fo *f, uint64_t now)
{
	if (!f)
		return -EINVAL;
	if (now > f->last_now)
		f->last_now = now;
	now = f->last_now;
	if (now >= f->next_hb) {
		send_heartbeats(f, now);
		f->next_hb = now + f->cfg.heartbeat_ms;
	}
	size_t eff = effective_voters(f);
	if (eff != f->eff_voters) {
		set_eff_voters(f, eff);
		recompute_qstamp(f);
	}
	update_quorum(f, now, false);
	try_held_order(f, now);
	detect_newer_deaths(f, now);
	late_owed(f, now);
	reads_work(f, now);
	run_work(f, now);
	trim_history(f);
	return 0;
}

uint64_t fo_next_deadline(const struct fo *f)
{
	/* Overdue times count (the next timer handles them), except a
	 * coordinator turn blocked by a lost quorum: regaining it runs the
	 * work at once. */
	uint64_t d = f->next_hb;
	uint64_t now = f->last_now;
	bool quorate = fo_quorate(f, now);
#define CONSIDER(t)                \
	do {                       \
		uint64_t t_ = (t); \
		if (t_ < d)        \
			d = t_;    \
	} while (0)
	if (f->quorate_flag) {
		if (majority_of(f->eff_voters) > 1)
			CONSIDER(sat_add(f->qstamp ? f->qstamp - 1 : 0, f->cfg.quorate_ms));
	} else {
		if (!f->fenced && can_fence(f))
			CONSIDER(sat_add(fence_base(f), f->cfg.fence_after_ms));
		if (!f->lost_emitted)
			CONSIDER(lost_due(f));
	}
	if (f->restart_wake != UINT64_MAX)
		CONSIDER(f->restart_wake);
	if (f->bump_at && quorate)
		CONSIDER(f->bump_at);
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (in->rounds[0].chosen && reclaimable(f, in) && !in->reclaimed)
			CONSIDER(reclaim_at(f, in));
		if (in->park_retry_at)
			CONSIDER(in->park_retry_at);
		if (in->fence_wait_at && !in->fenced)
			CONSIDER(in->fence_wait_at); /* (done or not: fence_wait_work) */
		if (in->done)
			continue;
		if (in->batch_at)
			CONSIDER(in->batch_at);
		if (in->propose_at != UINT64_MAX && (quorate || in->propose_at > now))
			CONSIDER(in->propose_at);
		for (uint32_t r = 0; r < f->n_rounds; r++)
			if (!in->rounds[r].chosen && in->rounds[r].pphase)
				CONSIDER(in->rounds[r].next_retry);
	}
	for (size_t i = 0; i < f->n_reads; i++) {
		CONSIDER(f->reads[i].next_ask);
		CONSIDER(sat_add(f->reads[i].claim_at, FO_READ_FOR_MS));
	}
#undef CONSIDER
	return d < now ? now : d;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */

size_t fo_instance_count(const struct fo *f)
{
	return f->n_inst;
}

size_t fo_owed_count(const struct fo *f)
{
	return f->n_owed;
}

/* What is being done about a VM down: the instance that has it in hand. */
static void owed_doing(const struct fo *f, const struct owed *o, uint64_t now, char *buf,
                       size_t len)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		for (int r = (int)f->n_rounds - 1; r >= 0; r--) {
			const struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				if (strcmp(pe->uuid, o->vm.uuid) != 0 || rd->ents[e].st != E_WAIT ||
				    !pe->target[0])
					continue;
				if (in->fenced)
					snprintf(buf, len,
					         "restarting on %.64s (recovery of %.64s "
					         "incarnation %" PRIu64 " round %d, epoch %" PRIu64
					         ")",
					         pe->target, in->dead, in->inc, r, pe->new_epoch);
				else if (in->fence_wait_at > now)
					snprintf(buf, len,
					         "planned on %.64s; waiting %" PRIu64
					         " ms more for the "
					         "fence of %.64s",
					         pe->target, in->fence_wait_at - now, in->dead);
				else
					snprintf(buf, len,
					         "planned on %.64s; waiting for the fence of %.64s",
					         pe->target, in->dead);
				return;
			}
		}
		for (size_t p = 0; p < in->n_pend; p++)
			if (strcmp(in->pend[p].e.uuid, o->vm.uuid) == 0) {
				snprintf(buf, len,
				         "handed back: being re-placed (recovery of %.64s "
				         "incarnation %" PRIu64 ")",
				         in->dead, in->inc);
				return;
			}
		for (size_t p = 0; p < in->n_parked; p++)
			if (strcmp(in->parked[p].e.uuid, o->vm.uuid) == 0) {
				if (in->park_retry_at > now)
					snprintf(buf, len,
					         "no host has room: next try in %" PRIu64
					         " s, or when "
					         "room appears",
					         (in->park_retry_at - now + 999) / 1000);
				else
					snprintf(buf, len,
					         "no host has room, and no retry is left: start it "
					         "where there is room (meshvisor vm start)");
				return;
			}
	}
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (!in->done && !in->rounds[0].chosen && strcmp(in->dead, o->host) == 0) {
			snprintf(buf, len, "recovery of %.64s incarnation %" PRIu64 " opened: %s",
			         in->dead, in->inc,
			         fo_quorate(f, now) ? "a plan is being chosen"
			                            : "waiting for quorum here");
			return;
		}
	}
	if (is_self(f, o->host) && f->bump_at > now) {
		snprintf(buf, len,
		         "this host recovers it through a new incarnation in %" PRIu64 " s",
		         (f->bump_at - now + 999) / 1000);
		return;
	}
	const struct mrec *r = member_find(f, o->host);
	if (r && member_up(f, r))
		snprintf(buf, len,
		         "%.64s recovers it through a new incarnation after %u ms or more", o->host,
		         f->cfg.reconcile_ms);
	else
		snprintf(buf, len, "waiting for %.64s to be declared dead, and for a quorum",
		         o->host);
}

void fo_owed_at(const struct fo *f, size_t i, uint64_t now, struct fo_owed *out)
{
	memset(out, 0, sizeof(*out));
	if (i >= f->n_owed)
		return;
	const struct owed *o = &f->owed[i];
	cpy(out->uuid, sizeof(out->uuid), o->vm.uuid);
	cpy(out->name, sizeof(out->name), o->vm.name);
	cpy(out->host, sizeof(out->host), o->host);
	out->epoch = o->vm.epoch;
	out->priority = o->vm.priority;
	out->since = o->since;
	cpy(out->why, sizeof(out->why), o->why);
	owed_doing(f, o, now, out->doing, sizeof(out->doing));
}

bool fo_chosen_plan(const struct fo *f, const struct fo_instance_id *id, const struct fo_plan **out)
{
	if (!id || !terminated(id->dead, sizeof(id->dead)) || id->round >= f->n_rounds)
		return false;
	const struct inst *in = inst_find(f, id->dead, id->incarnation);
	if (!in || !in->rounds[id->round].chosen)
		return false;
	if (out)
		*out = &in->rounds[id->round].plan;
	return true;
}

/* The latest chosen round placing `uuid`, or -1. */
static int latest_round_of(const struct fo *f, const struct inst *in, const char *uuid, size_t *idx)
{
	for (int r = (int)f->n_rounds - 1; r >= 0; r--) {
		const struct round *rd = &in->rounds[r];
		if (!rd->chosen)
			continue;
		for (size_t e = 0; e < rd->plan.n; e++)
			if (strcmp(rd->plan.entries[e].uuid, uuid) == 0) {
				*idx = e;
				return r;
			}
	}
	return -1;
}

size_t fo_instance_vm_count(const struct fo *f, size_t i)
{
	if (i >= f->n_inst || !f->inst[i]->rounds[0].chosen)
		return 0;
	return f->inst[i]->rounds[0].plan.n;
}

void fo_instance_vm_at(const struct fo *f, size_t i, size_t j, struct fo_vm_outcome *out)
{
	memset(out, 0, sizeof(*out));
	if (j >= fo_instance_vm_count(f, i))
		return;
	const struct inst *in = f->inst[i];
	size_t e = j;
	int r = latest_round_of(f, in, in->rounds[0].plan.entries[j].uuid, &e);
	if (r < 0) {
		r = 0;
		e = j;
	}
	const struct round *rd = &in->rounds[r];
	const struct ent *st = &rd->ents[e];
	out->entry = rd->plan.entries[e];
	out->ok = st->st == E_OK;
	out->took_ms = st->took_ms;
	cpy(out->text, sizeof(out->text), st->text);
	bool pending = false;
	for (size_t p = 0; p < in->n_pend; p++)
		if (strcmp(in->pend[p].e.uuid, out->entry.uuid) == 0)
			pending = !in->done;
	out->done = st->st == E_OK || st->st == E_NOROOM || (st->st == E_HANDED && !pending);
}

void fo_instance_at(const struct fo *f, size_t i, struct fo_instance_info *out)
{
	memset(out, 0, sizeof(*out));
	if (i >= f->n_inst)
		return;
	const struct inst *in = f->inst[i];
	inst_id(&out->inst, in, 0);
	bool any;
	out->inst.round = highest_chosen(in, f->n_rounds, &any);
	out->phase = in->done                             ? FO_PH_DONE
	             : in->fenced && in->rounds[0].chosen ? FO_PH_FENCED
	             : in->rounds[0].chosen               ? FO_PH_CHOSEN
	                                                  : FO_PH_DETECTED;
	if (in->rounds[0].chosen)
		cpy(out->coordinator, sizeof(out->coordinator),
		    in->rounds[0].chosen_ballot.proposer);
	out->detected_at = in->detected_at;
	out->chosen_at = in->rounds[0].chosen_at;
	out->fenced_at = in->fenced_at;
	cpy(out->fence_how, sizeof(out->fence_how), in->fence_how);
	cpy(out->cause, sizeof(out->cause), in->cause[0] ? in->cause : "learned from a peer");
	size_t n = fo_instance_vm_count(f, i);
	out->n_vms = n;
	for (size_t j = 0; j < n; j++) {
		struct fo_vm_outcome o;
		fo_instance_vm_at(f, i, j, &o);
		if (o.ok)
			out->n_restarted++;
		else if (!o.entry.target[0])
			out->n_no_room++;
		else if (o.done)
			out->n_failed++;
	}
}

/* ------------------------------------------------------------------------ */
/* Journal (RESTARTS)                                                       */

uint64_t fo_journal_version(const struct fo *f)
{
	return f ? f->journal_version : 0;
}

void fo_journal_set_durable(struct fo *f, bool durable)
{
	if (f)
		f->journal_durable = durable;
}

static bool journal_name_ok(const char *s, size_t n)
{
	return mv_name_span_ok(s, n, FO_NAME_MAX - 1);
}

static const char JOURNAL_HEADER[] =
    "# meshvisor failover journal, written by the agent: do not edit.\n"
    "# \"failed-over NAME INCARNATION\": this agent took part in failing NAME\n"
    "# over at INCARNATION, and will not acknowledge NAME as alive until NAME\n"
    "# reports itself fenced through it, restarts included. \"forgotten\",\n"
    "# \"promised\", \"accepted\" and \"entry\" lines keep its promises as an\n"
    "# acceptor, so that it may vote in failovers older than its restart.\n"
    "# \"voter NAME\": NAME was in the voting set (it counts in every majority\n"
    "# until it leaves or is removed, even if membership never reports it).\n"
    "# \"removed NAME INCARNATION\": the operator force-left NAME (it may have\n"
    "# accepted values before: a proposer still counts it as not answering).\n"
    "# \"given\": the highest epoch a chosen plan gave each VM, and to whom.\n"
    "# \"move ID UUID SOURCE TARGET EPOCH STATE TARGET-INCARNATION\": a live\n"
    "# migration of an HA VM (state 0 moving, 1 moved, 2 stayed), so that no\n"
    "# plan re-places it.\n"
    "format 2\n";

/* A growing text buffer; on allocation failure `failed` is set. */
struct jbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(struct jbuf *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = b->cap ? b->cap * 2 : 1024;
		while (nc <= b->len + (size_t)n)
			nc *= 2;
		char *ns = realloc(b->s, nc);
		if (!ns) {
			b->failed = true;
			return;
		}
		b->s = ns;
		b->cap = nc;
	}
}

/* A free-text field: "=" then the bytes, [A-Za-z0-9._-] as they are and
 * anything else as %XX (so an empty string is "="). */
static void jb_str(struct jbuf *b, const char *v)
{
	jb_printf(b, " =");
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')
			jb_printf(b, "%c", *p);
		else
			jb_printf(b, "%%%02X", *p);
	}
}

static int mrec_name_order(const void *a, const void *b)
{
	const struct mrec *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int given_cmp(const void *a, const void *b)
{
	const struct given *x = *(const struct given *const *)a,
			   *y = *(const struct given *const *)b;
	return strcmp(x->uuid, y->uuid);
}

/* What the journal lists per member, each kind of line in name order. */
enum journal_pick { JP_FAILED_OVER, JP_VOTER, JP_REMOVED };

/* The members (their names fit the journal) a kind of line is written
 * for, sorted by name, into list; how many. Voter and removal lines are
 * about the others only. */
static size_t journal_members(const struct fo *f, enum journal_pick pick, const struct mrec **list)
{
	size_t k = 0;
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *r = &f->m[i];
		bool want;
		switch (pick) {
		case JP_FAILED_OVER:
			want = r->inst_max > 0 || r->forgot_max > 0;
			break;
		case JP_VOTER:
			want = i != f->self_idx && r->voter;
			break;
		default:
			want = i != f->self_idx && r->removed;
			break;
		}
		if (want && journal_name_ok(r->name, strlen(r->name)))
			list[k++] = r;
	}
	qsort(list, k, sizeof(*list), mrec_name_order);
	return k;
}

int fo_journal_encode(const struct fo *f, char **out, size_t *len)
{
	struct jbuf b = {0};
	const struct mrec **list = calloc(f->n_m ? f->n_m : 1, sizeof(*list));
	if (!list)
		return -ENOMEM;
	size_t k = journal_members(f, JP_FAILED_OVER, list);
	jb_printf(&b, "%s", JOURNAL_HEADER);
	for (size_t i = 0; i < k; i++) {
		if (list[i]->inst_max)
			jb_printf(&b, "failed-over %s %" PRIu64 "\n", list[i]->name,
			          list[i]->inst_max);
		if (list[i]->forgot_max)
			jb_printf(&b, "forgotten %s %" PRIu64 "\n", list[i]->name,
			          list[i]->forgot_max);
	}
	/* the voting set: a restarted agent's membership only learns the live
	 * members, yet the dead ones still count in every majority */
	k = journal_members(f, JP_VOTER, list);
	for (size_t i = 0; i < k; i++)
		jb_printf(&b, "voter %s\n", list[i]->name);
	/* the members the operator removed: they may have accepted a value a
	 * majority of the voting set before the removal chose, so a restarted
	 * proposer still counts them as voters that did not answer (the
	 * free-value rule, promises_decide) */
	k = journal_members(f, JP_REMOVED, list);
	for (size_t i = 0; i < k; i++)
		jb_printf(&b, "removed %s %" PRIu64 "\n", list[i]->name, list[i]->removed_inc);
	free(list);
	/* acceptor state: what we promised and accepted, per round */
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (!journal_name_ok(in->dead, strlen(in->dead)))
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &in->rounds[r];
			if (rd->promised.number && rd->promised.proposer[0])
				jb_printf(&b, "promised %s %" PRIu64 " %u %" PRIu64 " %s\n",
				          in->dead, in->inc, r, rd->promised.number,
				          rd->promised.proposer);
			if (!rd->has_acc || !rd->acc_ballot.proposer[0])
				continue;
			jb_printf(&b, "accepted %s %" PRIu64 " %u %" PRIu64 " %s %zu\n", in->dead,
			          in->inc, r, rd->acc_ballot.number, rd->acc_ballot.proposer,
			          rd->acc_plan.n);
			for (size_t e = 0; e < rd->acc_plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->acc_plan.entries[e];
				jb_printf(&b, "entry");
				jb_str(&b, pe->uuid);
				jb_str(&b, pe->name);
				jb_str(&b, pe->target);
				jb_printf(&b, " %" PRId32 " %" PRIu32 " %" PRIu64 " %" PRIu64,
				          pe->priority, pe->vcpus, pe->memory_kib, pe->new_epoch);
				jb_str(&b, pe->group);
				jb_printf(&b, " %" PRIu64, pe->target_incarnation);
				if (pe->has_base)
					jb_printf(&b, " base %" PRIu64, pe->base_epoch);
				jb_printf(&b, "\n");
			}
		}
	}
	/* the highest epoch each VM was given (f->given), by VM: not in table
	 * order, which depends on the order of insertion (a restored table can
	 * lay out differently), so that what we write reads back to itself */
	const struct given **gs = f->n_given ? malloc(f->n_given * sizeof(*gs)) : NULL;
	size_t n_gs = 0;
	if (f->n_given && !gs)
		b.failed = true;
	for (size_t gi = 0; gs && gi < f->cap_given && n_gs < f->n_given; gi++)
		if (f->given[gi].uuid[0])
			gs[n_gs++] = &f->given[gi];
	if (n_gs)
		qsort(gs, n_gs, sizeof(*gs), given_cmp);
	for (size_t gi = 0; gi < n_gs; gi++) {
		const struct given *g = gs[gi];
		jb_printf(&b, "given");
		jb_str(&b, g->uuid);
		jb_str(&b, g->target);
		jb_printf(&b, " %" PRIu64 " %" PRIu64, g->epoch, g->target_incarnation);
		if (g->has_base)
			jb_printf(&b, " base %" PRIu64, g->base);
		jb_printf(&b, "\n");
	}
	free(gs);
	/* live migrations (MOVES), in table order (moves are few) */
	for (size_t i = 0; i < f->n_moves; i++) {
		const struct fo_move *mv = &f->moves[i].m;
		jb_printf(&b, "move");
		jb_str(&b, mv->id);
		jb_str(&b, mv->uuid);
		jb_str(&b, mv->source);
		jb_str(&b, mv->target);
		jb_printf(&b, " %" PRIu64 " %d %" PRIu64 "\n", mv->epoch, (int)mv->state,
		          mv->target_inc);
	}
	if (b.failed) {
		free(b.s);
		return -ENOMEM;
	}
	*out = b.s;
	*len = b.len;
	return 0;
}

/* The optional end of an entry or given line: "base N" (N below the
 * entry's epoch), then nothing. NULL, or why not. */
struct jtok;
static const char *jt_base(struct jtok *t, struct fo_plan_entry *e);

/* A parsed journal, applied only once all of it is valid. */
struct journal_rec {
	int kind; /* 0 failed-over, 1 forgotten, 2 promised, 3 accepted, 4 voter, 5 given,
	             6 move, 7 removed */
	struct fo_plan_entry given; /* given: uuid, target, epoch, its incarnation, base */
	struct fo_move move;        /* move */
	char name[FO_NAME_MAX];
	uint64_t inc;
	uint32_t round;
	struct fo_ballot ballot;
	struct fo_plan plan; /* accepted */
};

/* Tokenizer over one line: space-separated fields. */
struct jtok {
	const char *s;
	size_t n, pos;
};

static bool jt_next(struct jtok *t, const char **tok, size_t *len)
{
	if (t->pos >= t->n)
		return false;
	if (t->pos > 0) {
		if (t->s[t->pos] != ' ')
			return false;
		t->pos++;
	}
	size_t start = t->pos;
	while (t->pos < t->n && t->s[t->pos] != ' ')
		t->pos++;
	*tok = t->s + start;
	*len = t->pos - start;
	return *len > 0;
}

/* A decimal field named `what` (for the message). */
static const char *jt_u64(struct jtok *t, uint64_t *out, bool allow_zero, const char *what)
{
	static char buf[160];
	const char *d;
	size_t dl;
	if (!jt_next(t, &d, &dl)) {
		snprintf(buf, sizeof(buf), "the %s is missing", what);
		return buf;
	}
	if (dl > 20 || (d[0] == '0' && (dl > 1 || !allow_zero))) {
		snprintf(buf, sizeof(buf),
		         "the %s must be a decimal from %d to 18446744073709551615 without leading "
		         "zeros",
		         what, allow_zero ? 0 : 1);
		return buf;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < dl; i++) {
		if (d[i] < '0' || d[i] > '9') {
			snprintf(buf, sizeof(buf), "the %s must be decimal digits only", what);
			return buf;
		}
		uint64_t dig = (uint64_t)(d[i] - '0');
		if (v > (UINT64_MAX - dig) / 10) {
			snprintf(buf, sizeof(buf), "the %s is larger than 18446744073709551615",
			         what);
			return buf;
		}
		v = v * 10 + dig;
	}
	*out = v;
	return NULL;
}

static const char *jt_name(struct jtok *t, char *out)
{
	const char *s;
	size_t n;
	if (!jt_next(t, &s, &n))
		return "a name is missing";
	if (!journal_name_ok(s, n))
		return "the name must be 1 to 63 characters of A-Z a-z 0-9 . _ -";
	memcpy(out, s, n);
	out[n] = '\0';
	return NULL;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static const char *jt_str(struct jtok *t, char *out, size_t size)
{
	const char *s;
	size_t n, o = 0;
	if (!jt_next(t, &s, &n) || s[0] != '=')
		return "a field must start with '='";
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int h = i + 1 < n ? hexval(s[i + 1]) : -1;
			int l = i + 2 < n ? hexval(s[i + 2]) : -1;
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return "a %XX escape is not two upper-case hex digits of a non-NUL "
				       "byte";
			c = (char)(h * 16 + l);
			i += 2;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
			return "a field has a character that must be %XX-escaped";
		}
		if (o + 1 >= size)
			return "a field is too long";
		out[o++] = c;
	}
	out[o] = '\0';
	return NULL;
}

static const char *jt_base(struct jtok *t, struct fo_plan_entry *e)
{
	const char *rest, *why;
	size_t rl;
	if (!jt_next(t, &rest, &rl))
		return NULL;
	if (rl != 4 || memcmp(rest, "base", 4) != 0)
		return "extra fields at the end of the line";
	if ((why = jt_u64(t, &e->base_epoch, true, "base epoch")) != NULL)
		return why;
	if (e->base_epoch >= e->new_epoch)
		return "the base epoch is not below the epoch";
	e->has_base = true;
	if (jt_next(t, &rest, &rl))
		return "extra fields at the end of the line";
	return NULL;
}

static const char *journal_parse_line(struct jtok *t, struct journal_rec *r, bool *format)
{
	const char *kw;
	size_t kl;
	memset(r, 0, sizeof(*r));
	if (!jt_next(t, &kw, &kl))
		return "expected \"failed-over NAME INCARNATION\"";
#define KW(x) (kl == sizeof(x) - 1 && memcmp(kw, x, kl) == 0)
	const char *why = NULL;
	uint64_t v;
	if (KW("format")) {
		if ((why = jt_u64(t, &v, false, "format")) != NULL || v != 2)
			return "unknown journal format (this agent writes format 2)";
		*format = true;
		r->kind = -1;
	} else if (KW("failed-over") || KW("forgotten")) {
		r->kind = KW("failed-over") ? 0 : 1;
		if ((why = jt_name(t, r->name)) != NULL ||
		    (why = jt_u64(t, &r->inc, false, "incarnation")) != NULL)
			return why;
	} else if (KW("removed")) {
		r->kind = 7;
		if ((why = jt_name(t, r->name)) != NULL ||
		    (why = jt_u64(t, &r->inc, true, "incarnation")) != NULL)
			return why;
	} else if (KW("voter")) {
		r->kind = 4;
		if ((why = jt_name(t, r->name)) != NULL)
			return why;
	} else if (KW("given")) {
		r->kind = 5;
		struct fo_plan_entry *g = &r->given;
		if ((why = jt_str(t, g->uuid, sizeof(g->uuid))) != NULL ||
		    (why = jt_str(t, g->target, sizeof(g->target))) != NULL ||
		    (why = jt_u64(t, &g->new_epoch, false, "epoch")) != NULL ||
		    (why = jt_u64(t, &g->target_incarnation, true, "target incarnation")) != NULL)
			return why;
		if (!g->uuid[0] || !g->target[0])
			return "a given epoch needs a VM and a target";
		if ((why = jt_base(t, g)) != NULL)
			return why;
	} else if (KW("move")) {
		r->kind = 6;
		struct fo_move *mv = &r->move;
		if ((why = jt_str(t, mv->id, sizeof(mv->id))) != NULL ||
		    (why = jt_str(t, mv->uuid, sizeof(mv->uuid))) != NULL ||
		    (why = jt_str(t, mv->source, sizeof(mv->source))) != NULL ||
		    (why = jt_str(t, mv->target, sizeof(mv->target))) != NULL ||
		    (why = jt_u64(t, &mv->epoch, true, "epoch")) != NULL ||
		    (why = jt_u64(t, &v, true, "move state")) != NULL ||
		    (why = jt_u64(t, &mv->target_inc, true, "target incarnation")) != NULL)
			return why;
		if (!mv->id[0] || !mv->uuid[0] || !mv->source[0] || !mv->target[0])
			return "a move needs an id, a VM, a source and a target";
		if (v > FO_MOVE_STAYED)
			return "unknown move state";
		mv->state = (enum fo_move_state)v;
	} else if (KW("promised") || KW("accepted")) {
		r->kind = KW("promised") ? 2 : 3;
		if ((why = jt_name(t, r->name)) != NULL ||
		    (why = jt_u64(t, &r->inc, false, "incarnation")) != NULL)
			return why;
		if ((why = jt_u64(t, &v, true, "round")) != NULL)
			return why;
		if (v >= FO_ROUNDS_MAX)
			return "the round is out of range";
		r->round = (uint32_t)v;
		if ((why = jt_u64(t, &r->ballot.number, false, "ballot number")) != NULL)
			return "the ballot must be a number from 1";
		if ((why = jt_name(t, r->ballot.proposer)) != NULL)
			return why;
		if (r->kind == 3) {
			if ((why = jt_u64(t, &v, true, "entry count")) != NULL)
				return why;
			if (v > FO_PLAN_MAX)
				return "more entries than a plan may have";
			r->plan.n = (size_t)v; /* entries follow */
		}
	} else {
		return "expected \"failed-over NAME INCARNATION\"";
	}
#undef KW
	const char *rest;
	size_t rl;
	if (jt_next(t, &rest, &rl))
		return "extra fields at the end of the line";
	return NULL;
}

static const char *journal_parse_entry(struct jtok *t, struct fo_plan_entry *e)
{
	const char *kw, *why;
	size_t kl;
	uint64_t v;
	memset(e, 0, sizeof(*e));
	if (!jt_next(t, &kw, &kl) || kl != 5 || memcmp(kw, "entry", 5) != 0)
		return "expected an \"entry\" line of the accepted plan above";
	if ((why = jt_str(t, e->uuid, sizeof(e->uuid))) != NULL ||
	    (why = jt_str(t, e->name, sizeof(e->name))) != NULL ||
	    (why = jt_str(t, e->target, sizeof(e->target))) != NULL)
		return why;
	const char *d;
	size_t dl;
	if (!jt_next(t, &d, &dl) || dl > 11)
		return "the priority is missing or too long";
	long long p = 0;
	size_t i = d[0] == '-' ? 1 : 0;
	if (i == dl)
		return "the priority is not a number";
	for (; i < dl; i++) {
		if (d[i] < '0' || d[i] > '9')
			return "the priority is not a number";
		p = p * 10 + (d[i] - '0');
	}
	if (d[0] == '-')
		p = -p;
	if (p < INT32_MIN || p > INT32_MAX)
		return "the priority is out of range";
	e->priority = (int32_t)p;
	if ((why = jt_u64(t, &v, true, "vCPU count")) != NULL)
		return why;
	if (v > UINT32_MAX)
		return "the vCPU count is out of range";
	e->vcpus = (uint32_t)v;
	if ((why = jt_u64(t, &e->memory_kib, true, "memory")) != NULL ||
	    (why = jt_u64(t, &e->new_epoch, true, "epoch")) != NULL ||
	    (why = jt_str(t, e->group, sizeof(e->group))) != NULL ||
	    (why = jt_u64(t, &e->target_incarnation, true, "target incarnation")) != NULL)
		return why;
	if ((why = jt_base(t, e)) != NULL)
		return why;
	return NULL;
}

static void journal_recs_free(struct journal_rec *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fo_plan_clear(&r[i].plan);
	free(r);
}

/* Parses the whole journal into records (*recs, *n; the caller frees
 * them with journal_recs_free); *format: it says which format it is in.
 * Nothing is applied here: 0, or -EINVAL (err says which line and why) or
 * -ENOMEM with nothing returned. */
static int journal_parse(const char *text, size_t len, struct journal_rec **recs_out, size_t *n_out,
                         bool *format, char *err, size_t errlen)
{
	struct journal_rec *recs = NULL;
	size_t n = 0, cap = 0, line = 0, pos = 0, lines = 0;
	struct journal_rec *want = NULL; /* an "accepted" still taking entries */
	size_t want_have = 0;
	while (pos < len) {
		line++;
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - s) : len - pos;
		pos += ll + (nl ? 1 : 0);
		const char *why = NULL;
		if (memchr(s, '\0', ll)) {
			why = "contains a NUL byte";
		} else if (ll == 0 || s[0] == '#') {
			continue;
		} else if (++lines > FO_JOURNAL_MAX_ENTRIES) {
			snprintf(err, errlen, "line %zu: more than %u entries", line,
			         FO_JOURNAL_MAX_ENTRIES);
			journal_recs_free(recs, n);
			return -EINVAL;
		} else if (want) {
			struct jtok t = {.s = s, .n = ll};
			why = journal_parse_entry(&t, &want->plan.entries[want_have]);
			if (!why && ++want_have == want->plan.n)
				want = NULL;
		} else {
			struct journal_rec *g = grow(recs, &cap, n + 1, sizeof(*recs));
			if (!g) {
				journal_recs_free(recs, n);
				return -ENOMEM;
			}
			recs = g;
			struct jtok t = {.s = s, .n = ll};
			why = journal_parse_line(&t, &recs[n], format);
			if (!why && recs[n].kind == 3 && recs[n].plan.n) {
				/* its entries follow on the next lines */
				size_t cnt = recs[n].plan.n;
				recs[n].plan.n = 0;
				recs[n].plan.entries = calloc(cnt, sizeof(*recs[n].plan.entries));
				if (!recs[n].plan.entries) {
					journal_recs_free(recs, n);
					return -ENOMEM;
				}
				recs[n].plan.n = cnt;
				want = &recs[n];
				want_have = 0;
			}
			if (!why && recs[n].kind >= 0)
				n++; /* (recs[n] owns its entries from here on) */
		}
		if (why) {
			snprintf(err, errlen, "line %zu: %s: \"%.*s\"", line, why,
			         (int)(ll > 80 ? 80 : ll), s);
			journal_recs_free(recs, n);
			return -EINVAL;
		}
	}
	if (want) {
		snprintf(err, errlen,
		         "line %zu: the accepted plan above lists %zu entries, %zu follow", line,
		         want->plan.n, want_have);
		journal_recs_free(recs, n);
		return -EINVAL;
	}
	*recs_out = recs;
	*n_out = n;
	return 0;
}

/* Applies the journal's members, given epochs and live migrations.
 * Members get records, not votes: the voting set still comes from
 * fo_member. 0 or -ENOMEM. */
static int journal_apply_records(struct fo *f, struct journal_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct journal_rec *r = &recs[i];
		if (r->kind == 5) {
			given_note(f, &r->given);
			continue;
		}
		if (r->kind == 6) {
			/* (what the restore runs at counts as when we learned it) */
			struct move *mv = move_find(f, r->move.id);
			if (!mv && !(mv = move_add(f, &r->move, f->last_now))) {
				return -ENOMEM;
			}
			/* a move of ours still MOVING died with the agent before it
			 * could say how it ended: its caller settles it
			 * (fo_move_end); until then it is announced */
			mv->announce = is_self(f, mv->m.source) && mv->m.state == FO_MOVE_MOVING;
			continue;
		}
		if (is_self(f, r->name) && (r->kind < 2 || r->kind == 4 || r->kind == 7))
			continue; /* nobody fails itself over; a renamed host's journal */
		struct mrec *m = member_add(f, r->name);
		if (!m) {
			return -ENOMEM;
		}
		if (r->kind == 0) {
			raise_inst_max(f, m, r->inc);
			if (r->inc > m->restored_max)
				m->restored_max = r->inc;
		} else if (r->kind == 1) {
			if (r->inc > m->forgot_max)
				m->forgot_max = r->inc;
		} else if (r->kind == 4) {
			m->restored_voter = true;
			if (!m->fed)
				m->st = FO_DEAD; /* not known alive until membership says so */
		} else if (r->kind == 7) {
			if (!m->removed)
				m->removed_at = f->last_now + 1;
			m->removed = true;
			if (r->inc > m->removed_inc)
				m->removed_inc = r->inc;
			if (!m->fed)
				m->st = FO_DEAD;
		}
	}
	return 0;
}

/* Applies the journal's promises and accepted values: each reopens its
 * instance (unless it was forgotten since). */
static void journal_apply_votes(struct fo *f, struct journal_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct journal_rec *r = &recs[i];
		if (r->kind < 2 || r->kind >= 4)
			continue;
		struct inst *in = inst_open(f, r->name, r->inc, f->last_now);
		if (!in)
			continue; /* forgotten since: never reopened */
		struct round *rd = &in->rounds[r->round];
		if (r->kind == 2) {
			if (ballot_cmp(&r->ballot, &rd->promised) > 0)
				rd->promised = r->ballot;
		} else {
			fo_plan_clear(&rd->acc_plan);
			rd->acc_plan = r->plan;
			r->plan.entries = NULL;
			r->plan.n = 0;
			rd->acc_ballot = r->ballot;
			rd->has_acc = true;
			if (ballot_cmp(&r->ballot, &rd->promised) > 0)
				rd->promised = r->ballot;
		}
	}
}

int fo_journal_restore(struct fo *f, const char *text, size_t len, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	if (!f || (!text && len))
		return -EINVAL;
	if (len > FO_JOURNAL_MAX_BYTES) {
		snprintf(err, errlen, "journal is %zu bytes, more than the %u allowed", len,
		         FO_JOURNAL_MAX_BYTES);
		return -EINVAL;
	}
	struct journal_rec *recs = NULL;
	size_t n = 0;
	bool format = false;
	int rc = journal_parse(text, len, &recs, &n, &format, err, errlen);
	if (rc < 0)
		return rc;
	/* apply only once everything parsed */
	if (journal_apply_records(f, recs, n) < 0) {
		journal_recs_free(recs, n);
		return -ENOMEM;
	}
	recount_voters(f);
	journal_apply_votes(f, recs, n);
	f->acceptor_journal = format;
	f->journal_restored = true;
	journal_recs_free(recs, n);
	return (int)n;
}
