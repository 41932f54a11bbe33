/*
 * failover.c — quorum, self-fencing and the recovery plan of a dead host's
 * HA VMs, chosen by single-decree Paxos, as a pure state machine (contract
 * in meshvisor/failover.h; the protocol and its safety argument below).
 *
 * WHAT IT DOES
 * When a host X dies, the survivors must restart X's HA VMs elsewhere, and
 * a VM must never run twice. Three mechanisms cooperate:
 *   1. a heartbeat quorum, which tells every node whether a majority of the
 *      voting set still acknowledges it, and makes a node that lost that
 *      majority for F = fence_after_ms destroy its own HA VMs (self-fence);
 *   2. one consensus instance per (dead host, incarnation, round) that
 *      chooses exactly one plan (VM -> target host, new epoch);
 *   3. fence-then-restart: a target starts a VM of a chosen plan only once
 *      the dead host's copies are known destroyed — confirmed through its
 *      libvirt (remote fence), by the host itself (FENCE_ORDER answered),
 *      or by waiting out X's self-fence: quorate_ms + F + fence_margin_ms
 *      from an upper bound of the last acknowledgement X got from the
 *      accepting majority, or F + fence_margin_ms from learning the plan,
 *      whichever comes first.
 *
 * THE VOTING SET
 * Every name ever fed to fo_member() (and this node) that has not LEFT and
 * has not been force-left (fo_force_leave(), spread in heartbeats as the
 * `removed` list). Dead members stay voters: a majority is a majority of
 * the configured cluster, not of whoever is up, so a partition's two sides
 * can never both have one. A removed (or left) member that comes back
 * ALIVE with a higher incarnation votes again. A restarted agent may never
 * hear of a member that died before it started, so heartbeats carry the
 * sender's set size (`voters`) and majorities are counted over the largest
 * size a voter (one we hold dead too) reported within F (eff_voters): too
 * small a set would let two sides decide.
 *
 * HEARTBEAT QUORUM WITH ECHOED STAMPS
 * Every heartbeat_ms each node X sends HEARTBEAT{stamp = now_X,
 * incarnation, fenced_through, removed, voters} to every other voter (dead
 * ones too: they may merely be cut off). A receiver R answers HB_ACK
 * echoing the stamp, unless
 *   - X is not a voter in R's view (HB_NACK), or R has X DEAD at an
 *     incarnation >= the one X reports (HB_NACK "you are dead to me"), or
 *   - R knows a failover instance (X, i) with i > X's fenced_through: then
 *     FENCE_ORDER when R knows the plans (the union of the round-0 plans
 *     of every chosen (X, i) above fenced_through and below the lowest one
 *     still undecided, so that "fenced through k" is never claimed for an
 *     instance whose VMs were not listed), else HB_NACK "pending" with i.
 * X keeps, per voter, the highest stamp echoed in an ACK. Its quorum stamp
 * q is the (majority-1)-th highest of those (X counts itself): the send
 * time of the latest heartbeat a majority acknowledged. Only X's own clock
 * is involved — no offsets between hosts are ever compared. X is quorate
 * while now - q < quorate_ms, and self-fences (FO_EV_FENCE_SELF, exactly
 * once per loss) when now - q >= F. A one-voter cluster is always quorate,
 * unless cfg.expect_cluster (started with seeds): then it is not quorate
 * alone and fences F after fo_new(). X is also never quorate while its
 * fenced_through reaches its own incarnation: it must come back as a new
 * incarnation (SWIM refutes) before it acts again, so nothing it starts
 * later is ever covered by an old "fenced through" claim.
 *   fenced_through: raised to i by a FENCE_ORDER for (X, i) (after the
 * listed VMs are destroyed), and by a self-fence to the highest instance
 * incarnation X was told of (HB_NACK) — also later, while X stays fenced
 * (nothing was started since: restarts need quorum). Never to X's own
 * incarnation unprompted: VMs X receives later would be covered by a
 * stale claim.
 *   Restarted acceptors forget. An agent whose core restarted would ack a
 * host it had helped fail over. The journal (RESTARTS) keeps that from
 * happening where the caller has a disk; without one, once our core is
 * F + margin + quorate_ms old we count acks only from cores at least
 * F + margin old (HB_ACK's age_ms): every plan chosen before such an
 * acker's start was restarted by then and we had fenced ourselves.
 * Younger cores count acks from cores about as old as theirs, so a
 * cluster that starts together forms at once.
 *
 * INSTANCES AND COORDINATORS
 * fo_member(X, DEAD, i) opens instance (X, i) with round 0. Every node
 * ranks the voters it holds alive (itself included, X excluded) by a hash
 * of "X/i/name" (FNV-1a 64 + a splitmix finaliser), highest first; a node
 * with k voters ranked above it starts proposing coordinator_step_ms * k
 * after it first saw the work, while quorate, and never before it has
 * held X dead for dead_grace_ms (a falsely declared host refutes within
 * that and gets the empty plan, below). The ranking is recomputed on every
 * timer, so when the top coordinator dies it drops out and the next one
 * takes over one step later; two coordinators at once are merely slower
 * (Paxos keeps them safe, jitter breaks ballot duels).
 *
 * CONSENSUS (classic single-decree Paxos per (X, i, round))
 * Ballots are (number, proposer name). Phase 1: PREPARE(b) to all voters
 * (this node's own acceptor answers in-process). An acceptor promises when
 * (a) it is not X, (b) b >= its promise, (c) it has itself seen X DEAD at
 * an incarnation >= i, or X force-left, or round > 0 and it knows round 0
 * chosen, and (d) its core is older than the proposer's knowledge of the
 * instance (age_ms: a restarted agent lost its promises). The PROMISE
 * carries the acceptor's accepted (ballot, value), and `superseded`: the
 * entries of chosen plans it knows for other incarnations of X. With a
 * majority of promises the proposer takes the value of the highest
 * accepted ballot, or else its own: fo_plan_compute() over its gossiped
 * view (round 0: X's running HA VMs, minus VMs a known or superseded plan
 * already moved to a newer epoch; round k: the handed-back VMs, each kept
 * off the hosts that failed it). ACCEPT(b, value) is accepted under (a),
 * (c), (d), b >= promise, and (e) below. A majority of ACCEPTED makes the
 * value chosen: CHOSEN(b, value) goes to every voter. Anyone asked about a
 * round it knows chosen answers CHOSEN at once. Non-answers are retried
 * every retry_ms; a REJECT naming a higher ballot restarts phase 1 with a
 * higher number after retry_ms plus jitter.
 *   Condition (c) uses "has ever seen X dead", not "sees X dead now": an
 * acceptor that opened (X, i) stopped acknowledging X, and X will have to
 * fence for i, so the instance must be able to finish. A coordinator that
 * finds X back (ALIVE at a higher incarnation) and no accepted value in
 * its phase-1 replies proposes the EMPTY plan: chosen like any plan, it
 * restarts nothing, and its FENCE_ORDER lets X claim fenced_through >= i
 * without destroying anything — an instance never hangs half-decided.
 *
 * WHY THERE ARE NEVER TWO PLANS FOR ONE VM
 * Within one instance: standard Paxos — two majorities intersect, so a
 * proposer whose ballot is higher than a chosen one's sees the chosen
 * value in some promise and re-proposes it. Rounds re-place only VMs that
 * chosen earlier rounds handed back, and a round k is proposed only once
 * rounds < k are learned.
 *   Across instances (one death seen at two incarnations of X, or a VM
 * that moved to T before T died and gossip still lists it on X): (e) an
 * acceptor refuses an ACCEPT whose value holds a VM at a new_epoch <= the
 * one it has in a value this acceptor accepted (not since chosen without
 * it) or learned chosen in ANOTHER instance. Two chosen plans holding the
 * same VM at clashing epochs would need an acceptor in both accepting
 * majorities; whichever value it accepted second, it refused. (A VM that
 * really came back to X later has a higher epoch and is planned again.)
 * As a last net, a target never starts an entry that a chosen plan it
 * knows (a later round, another instance) places at the same or a newer
 * epoch.
 *   Acceptor state lives in memory. PREPARE/ACCEPT carry age_ms (how long
 * ago the proposer first heard of the instance, merged as the minimum seen
 * across messages) and a younger acceptor refuses, so a forgetful acceptor
 * never votes in an instance that started before it. Finished instances
 * dropped from the history are never reopened (forgot_max per member).
 *
 * WHY NO VM RUNS TWICE
 * A target restarts a VM of a chosen plan only after the instance is
 * fenced. Remote fence and FENCED-from-X are direct confirmations. The
 * timed one: every acceptor that accepted for (X, i) had opened (X, i)
 * before accepting, and from then on never acknowledges X until X reports
 * fenced_through >= i, i.e. X destroyed the VMs itself. Acks echo X's send
 * stamps, so X's quorum stamp q is the send time of a heartbeat that a
 * majority acked; that majority and the accepting one M_a share an
 * acceptor A, which acked it before it opened the instance — before the
 * plan was chosen, hence before any target learned it. X fences at q + F
 * by its own clock. If its agent is down, the hardware watchdog, petted
 * while quorate (until q + quorate_ms), fires F after the last pet: X's
 * VMs are gone by q + quorate_ms + F at the latest, so the timed fence
 * waits until the earlier of two instants, each later than that:
 *   (1) F + margin after learning the plan (the original rule: learning
 *       follows A's ack, so q; an agent that dies before X is declared
 *       DEAD pets no more after that; one that dies later stopped petting
 *       by q + quorate_ms, which needs margin >= quorate_ms, as by
 *       default);
 *   (2) quorate_ms + F + margin after an upper bound of A's last ack. No
 *       node knows which member of M_a is A, so the bound covers all of
 *       them. Each node notes when it last sent HB_ACK to each member (any
 *       incarnation: conservative); its ACCEPTED carries ack_ago_ms = now
 *       - that, and the proposer, receiving it at r, takes r - ack_ago_ms
 *       in its own clock (transit only makes the real ack earlier). When
 *       the value is chosen the bound is the maximum over the acceptors
 *       that counted for that majority, itself included, and CHOSEN
 *       carries its age (now - bound); a learner receiving it at t holds
 *       t - age, and a node that learned a bound forwards its own age
 *       when it answers a late PREPARE/ACCEPT with CHOSEN. If any counted
 *       acceptor has no ack to report (it never acked X in its current
 *       core's life: after a restart it may have acked X in a previous
 *       one and forgotten), or is an older peer, there is no bound, only
 *       (1). Acks after opening exist only to an X that reports itself
 *       fenced for i; they only make the bound later. Any majority that
 *       accepted in (X, i) works (every accepting acceptor opened it
 *       first), so a learner keeps the earliest bound it is told.
 * No clock offsets are compared, only durations: each node's elapsed
 * times add up along the chain ack -> ACCEPTED -> CHOSEN -> deadline, all
 * non-negative, to at least quorate_ms + F + margin on the clocks that
 * measured them. With every clock's rate within 1 +- rho of real time, the
 * real time from A's ack to the restart is at least (quorate_ms + F +
 * margin) / (1 + rho), and X's fence (or watchdog) comes at most (quorate_ms
 * + F) / (1 - rho) after q <= A's ack: margin must cover about 2 rho
 * (quorate_ms + F), the rate drift over that span (2000 ppm over 13 s:
 * 52 ms, against 3000 ms), whatever the delays before learning. The same
 * holds for (1). Hand-back rounds add no new fence; the instance is
 * fenced once. Only a quorate node emits FO_EV_RESTART, and only for
 * plans a majority accepted. Every move bumps the epoch:
 * new_epoch = epoch + 1 + round.
 *
 * FENCE, THEN RESTART; HAND-BACKS; TARGETS THAT DIE
 * The proposer whose round-0 value got chosen asks its caller for a remote
 * fence (FO_EV_REMOTE_FENCE); success is broadcast as FENCED. A node whose
 * chosen plan names it as a target and knows no fence arms the timed wait
 * above (FO_EV_FENCE_CONFIRMED "waited"). Fenced, it
 * restarts its entries by priority, at most max_parallel at once. A failed
 * restart is retried after restart_backoff_ms * 2^(attempt-1); after
 * restart_attempts the VM is handed back: RESTARTED(ok=false) to every
 * voter, which keep it pending for (X, i). Hand-backs are batched: round
 * k+1 is proposed once no target of the instance has an entry outstanding
 * (or restart_backoff_ms << restart_attempts after the oldest), with the
 * pending VMs, each kept off every host that failed it; when max_rounds
 * are used up each leftover VM is reported (FO_EV_NO_ROOM).
 *   Entries carry target_incarnation, the target's incarnation when the
 * plan was computed. A target T that was failed over at or after it
 * (fenced_through >= target_incarnation) never starts the entry: it hands
 * it back. On a self-fence T hands back the entries it had not started.
 * An entry T reported running is the VM's new home: T's own failover
 * takes it over — unless a FENCE_ORDER's plans do not list it (built from
 * a stale view of T): then T destroys it too (in FENCE_VMS, with what it
 * was still starting) and hands it back; the acceptors' epoch check keeps
 * a VM that T's own plan lists after all from being placed twice.
 * The others, once T's failover (T, j) was chosen here F + margin ago
 * (T has fenced itself or obeyed the order by then), re-plan the entries
 * still waiting on T with target_incarnation == j, unless a plan of T
 * already re-places the VM or T is back (alive at a newer incarnation,
 * e.g. refuted before its plan, then empty, was chosen: nothing of it was
 * destroyed): then T's own hand-backs say what it did not start.
 *
 * Instance bookkeeping for the CLI (fo_instance_at): phases DETECTED ->
 * CHOSEN -> FENCED -> DONE; cfg.history finished instances are kept.
 * Every node reports every restart it hears of (FO_EV_RESTARTED /
 * FO_EV_HANDED_BACK with the target as peer).
 *
 * RESTARTS (the journal)
 * What a restarted core must not forget is whom it stopped acknowledging:
 * every node that opened (X, i) — every acceptor of a chosen plan did —
 * refuses to ack X until X reports fenced_through >= i, and the timed
 * fence relies on that. inst_max per member is that promise, and it only
 * grows. fo_journal_encode() writes it as text ("failed-over X i" lines),
 * fo_journal_version() moves whenever an inst_max rises, and the caller
 * stores the text durably BEFORE it sends the messages popped after the
 * rise (the ACCEPTED/PROMISE that count this node in a majority come after
 * the instance was opened). fo_journal_restore() at start gives those
 * values back (restored_max): the restarted core NACKs X exactly as before
 * ("fence first") although it has no instance record, until X's
 * heartbeats report it fenced. X, meanwhile, cannot be quorate through
 * this node. That is all the acknowledgement age rule (above) protects,
 * so a core whose caller keeps the journal (fo_journal_set_durable: it
 * was restored at start and every write since succeeded) sends
 * HB_ACK.age_ms = FO_ACK_AGE_DURABLE and its acks count at once after a
 * restart; without that, a restarted acceptor in a three-host cluster
 * leaves the other survivor without a counted majority for F + margin,
 * so it self-fences in the middle of a failover. Instances themselves
 * (promises, accepted values, plans) are not restored: the Paxos age rule
 * keeps a restarted acceptor out of instances older than its core, and
 * peers re-send chosen plans.
 *
 * KNOWN LIMITS
 *  - A proposer that hears late of an instance older than an acceptor's
 *    restart can count that acceptor's acks for the instance's host; with
 *    the journal, only an acceptor that never opened the instance (so is
 *    in no accepting majority) can be in that position.
 *  - Without a journal (fo_journal_restore never called), two agents
 *    restarting close together (the failed-over host's and an acceptor's)
 *    can lose the acknowledgement rule: the young host counts the young
 *    amnesiac's acks.
 *
 * COSTS
 * Members are an array with a hash index; a heartbeat is O(1) apart from
 * the removed list; an ACK is O(1) unless it moves the quorum stamp, then
 * O(N) (quickselect). Consensus messages scan the (few) instances; plan
 * checks are O(entries x entries of the other open instances).
 */
#include "meshvisor/failover.h"
#include "arena.h"
#include "names.h"
#include "prng.h"
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Undrained outputs/events kept (the oldest are kept, the newest dropped). */
#define FO_QUEUE_MAX (1u << 20)
/* Instances remembered at most (finished ones are dropped first). */
#define FO_INST_MAX 4096
/* Rounds per instance at most, whatever the config says. */
#define FO_ROUNDS_MAX 16

enum ent_state { E_WAIT = 0, E_OK, E_HANDED, E_NOROOM };

struct ent {
	uint8_t st;
	uint32_t attempts;
	bool running;      /* RESTART emitted here, outcome pending */
	uint64_t next_try; /* self target: earliest (re)try */
	uint64_t took_ms;
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
	uint8_t *resp;
	size_t resp_cap, n_resp;
	bool has_best;
	struct fo_ballot best_ballot;
	struct fo_plan best_plan;
	struct fo_plan value;
	struct fo_plan sup; /* superseded entries the promises reported */
	bool acc_unbounded; /* phase 2: an ACCEPTED counted came without an ack age */
	uint64_t acc_bound; /* phase 2: max over counted ACCEPTEDs of receipt - ack age */
	uint64_t next_retry;
};

struct pend {
	struct fo_plan_entry e;
	uint32_t failed_round;
	uint64_t added_at;
};

struct inst {
	char dead[FO_NAME_MAX];
	uint64_t inc;
	uint64_t seq;
	uint64_t detected_at, first_heard, work_since;
	uint64_t known_at; /* when this node opened the record */
	bool working;
	uint32_t work_round;
	uint64_t propose_at; /* UINT64_MAX: not our turn / nothing to do */
	uint64_t batch_at;   /* hand-backs wait for their batch until (0 none) */
	bool reclaimed;      /* entries on other plans targeted at us re-planned */
	bool fenced;
	uint64_t fenced_at;
	char fence_how[FO_TEXT_MAX];
	uint64_t fence_wait_at; /* 0 none */
	bool fence_wait_bound;  /* fence_wait_at comes from an ack bound */
	bool remote_fence_sent;
	bool done;
	uint64_t done_at;
	struct round rounds[FO_ROUNDS_MAX];
	struct pend *pend;
	size_t n_pend, cap_pend;
};

struct mrec {
	char name[FO_NAME_MAX];
	enum fo_member_state st;
	uint64_t inc;
	uint64_t dead_max; /* highest incarnation reported DEAD, 0 none */
	bool fed;          /* reported by fo_member (or self) */
	bool left;
	uint64_t left_inc;
	bool removed;
	uint64_t removed_inc;
	uint64_t removed_at; /* when we learned of the removal (+1) */
	bool voter;
	uint64_t ack;            /* highest echoed stamp + 1, 0 none */
	uint64_t acked_at;       /* when we last sent it HB_ACK (+1), any
	                            incarnation, this core's life; 0 never */
	uint64_t fenced_through; /* as its heartbeats report */
	uint64_t inst_max;       /* highest instance incarnation against it */
	uint32_t reported_voters; /* voting-set size its last heartbeat told */
	uint64_t hb_at;           /* when that heartbeat arrived (+1), 0 never */
	uint64_t hb_inc;          /* the incarnation its last heartbeat told */
	uint64_t forgot_max;     /* highest incarnation whose finished instance
	                            was dropped from history: never reopened */
	uint64_t restored_max;   /* inst_max as the journal of a previous life
	                            of this core had it (see RESTARTS), 0 none */
};

struct fo {
	struct fo_config cfg;
	uint32_t n_rounds;
	uint64_t rng[4];
	uint64_t started, last_now;
	uint64_t incarnation;

	struct mrec *m;
	size_t n_m, cap_m;
	uint32_t *hidx;
	size_t hcap;
	size_t self_idx;
	size_t n_voters;
	size_t eff_voters; /* max(n_voters, sizes recent heartbeats report) */
	size_t n_removed;

	uint64_t qstamp; /* k-th highest ack (stamp + 1) among other voters */
	bool quorate_flag;
	uint64_t lost_since; /* not quorate since (when !quorate_flag) */
	bool lost_emitted;   /* QUORUM_LOST told; REGAINED owed */
	bool fenced;
	uint64_t fenced_through;
	uint64_t seen_against;
	uint64_t next_hb;
	uint64_t restart_wake;
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
};

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

static bool terminated(const char *a, size_t size) { return memchr(a, '\0', size) != NULL; }

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

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

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
	       a->new_epoch == b->new_epoch && strcmp(a->group, b->group) == 0;
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

static const char *nz(const char *s) { return s ? s : ""; }

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
		size_t np = 0;
		for (size_t c = 0; c < nc; c++) {
			if (e->group[0] && cand_has_group(&cands[c], e->group))
				continue;
			pick[np] = cands[c].cap;
			pick_idx[np++] = c;
		}
		struct placement_request req = {.vcpus = vm->vcpus, .memory_kib = vm->memory_kib};
		int best = placement_choose(pick, np, &req, NULL, 0);
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
	    "HEARTBEAT", "HB_ACK",   "HB_NACK",  "FENCE_ORDER", "PREPARE", "PROMISE",
	    "REJECT",    "ACCEPT",   "ACCEPTED", "CHOSEN",      "FENCED",  "RESTARTED",
	};
	return (unsigned)t < FO_MSG_TYPES ? names[t] : "?";
}

const char *fo_event_name(enum fo_event_type t)
{
	switch (t) {
	case FO_EV_FENCE_SELF: return "fence-self";
	case FO_EV_FENCE_VMS: return "fence-vms";
	case FO_EV_REMOTE_FENCE: return "remote-fence";
	case FO_EV_RESTART: return "restart";
	case FO_EV_QUORUM_LOST: return "quorum-lost";
	case FO_EV_QUORUM_REGAINED: return "quorum-regained";
	case FO_EV_DETECTED: return "detected";
	case FO_EV_PROPOSING: return "proposing";
	case FO_EV_CHOSEN: return "chosen";
	case FO_EV_FENCE_CONFIRMED: return "fence-confirmed";
	case FO_EV_RESTARTED: return "restarted";
	case FO_EV_RESTART_FAILED: return "restart-failed";
	case FO_EV_HANDED_BACK: return "handed-back";
	case FO_EV_NO_ROOM: return "no-room";
	case FO_EV_MEMBER_REMOVED: return "member-removed";
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
	if (!e) {
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

bool fo_pop_event(struct fo *f, struct fo_event *out)
{
	return mv_queue_pop(&f->evq, out, sizeof(*out));
}

/* ------------------------------------------------------------------------ */
/* Members                                                                  */

static uint64_t name_hash(const char *s) { return mv_mix64(mv_fnv1a64(MV_FNV1A64_OFFSET, s)); }

static struct mrec *member_find(const struct fo *f, const char *name)
{
	if (!f->hcap)
		return NULL;
	size_t mask = f->hcap - 1;
	for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
		uint32_t v = f->hidx[i];
		if (!v)
			return NULL;
		if (strcmp(f->m[v - 1].name, name) == 0)
			return &f->m[v - 1];
	}
}

static int hindex_rebuild(struct fo *f, size_t cap)
{
	uint32_t *h = calloc(cap, sizeof(*h));
	if (!h)
		return -ENOMEM;
	free(f->hidx);
	f->hidx = h;
	f->hcap = cap;
	for (size_t j = 0; j < f->n_m; j++) {
		size_t i = name_hash(f->m[j].name) & (cap - 1);
		while (h[i])
			i = (i + 1) & (cap - 1);
		h[i] = (uint32_t)(j + 1);
	}
	return 0;
}

/* Every rise of an inst_max is journalled (RESTARTS) before the messages
 * that follow it leave: the caller sees journal_version move. */
static void raise_inst_max(struct fo *f, struct mrec *r, uint64_t inc)
{
	if (inc > r->inst_max) {
		r->inst_max = inc;
		f->journal_version++;
	}
}

static struct mrec *member_add(struct fo *f, const char *name)
{
	struct mrec *r = member_find(f, name);
	if (r)
		return r;
	if ((f->n_m + 1) * 2 > f->hcap && hindex_rebuild(f, f->hcap ? f->hcap * 2 : 16) < 0)
		return NULL;
	struct mrec *nm = grow(f->m, &f->cap_m, f->n_m + 1, sizeof(*nm));
	if (!nm)
		return NULL;
	f->m = nm;
	r = &f->m[f->n_m];
	memset(r, 0, sizeof(*r));
	cpy(r->name, sizeof(r->name), name);
	r->st = FO_ALIVE;
	size_t i = name_hash(r->name) & (f->hcap - 1);
	while (f->hidx[i])
		i = (i + 1) & (f->hcap - 1);
	f->hidx[i] = (uint32_t)(f->n_m + 1);
	f->n_m++;
	/* instances opened before we knew the member (a CHOSEN from a peer):
	 * we never acknowledge it for them either (WHY NO VM RUNS TWICE) */
	for (size_t k = 0; k < f->n_inst; k++)
		if (strcmp(f->inst[k]->dead, r->name) == 0)
			raise_inst_max(f, r, f->inst[k]->inc);
	return r;
}

static bool is_self(const struct fo *f, const char *name) { return strcmp(f->cfg.name, name) == 0; }


static bool considered_alive(const struct mrec *r)
{
	return r->voter && (r->st == FO_ALIVE || r->st == FO_SUSPECT);
}

/* ------------------------------------------------------------------------ */
/* Quorum                                                                   */

static size_t majority_of(size_t v) { return v / 2 + 1; }

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

/* The size majorities are counted over: our voting set, or more if a voter
 * that heartbeated us recently (within F) knows a larger one — a restarted
 * agent may never have heard of a member that died before its start.
 * Voters we hold DEAD count too: dead members stay voters, and one held
 * dead may well be up and accepting (a restarted agent that held all it
 * knew dead would otherwise count over its own too small set and choose
 * with a minority). A dead sender cannot tell us of removals it missed, so
 * its report is lowered by the force-leaves we learned after it. */
static size_t effective_voters(const struct fo *f)
{
	size_t e = f->n_voters;
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *m = &f->m[i];
		if (!m->voter || !m->hb_at || m->reported_voters <= e ||
		    f->last_now >= sat_add(m->hb_at - 1, f->cfg.fence_after_ms))
			continue;
		size_t v = m->reported_voters;
		for (size_t j = 0; m->st == FO_DEAD && f->n_removed && j < f->n_m && v > e; j++)
			if (f->m[j].removed && f->m[j].removed_at > m->hb_at)
				v--;
		if (v > e)
			e = v;
	}
	return e;
}

static void recount_voters(struct fo *f)
{
	size_t v = 0, r = 0;
	for (size_t i = 0; i < f->n_m; i++) {
		struct mrec *m = &f->m[i];
		m->voter = i == f->self_idx || (m->fed && !m->left && !m->removed);
		v += m->voter;
		r += m->removed;
	}
	f->n_voters = v;
	f->n_removed = r;
	f->eff_voters = effective_voters(f);
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

/* The time the self-fence clock runs from. */
static uint64_t fence_base(const struct fo *f)
{
	uint64_t q = f->qstamp ? f->qstamp - 1 : 0;
	return q > f->started ? q : f->started;
}

static bool can_fence(const struct fo *f)
{
	return majority_of(f->eff_voters) > 1 || alone_unquorate(f);
}

bool fo_fenced(const struct fo *f) { return f->fenced; }
size_t fo_voters(const struct fo *f) { return f->n_voters; }
size_t fo_majority(const struct fo *f) { return majority_of(f->eff_voters); }

size_t fo_acknowledged(const struct fo *f, uint64_t now)
{
	size_t n = 1;
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *m = &f->m[i];
		if (i != f->self_idx && m->voter && m->ack && now < sat_add(m->ack - 1, f->cfg.quorate_ms))
			n++;
	}
	return n;
}

static void run_work(struct fo *f, uint64_t now);
static void hand_back_mine(struct fo *f, const char *why, const struct fo_plan *order,
                           uint64_t now);

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
	if (!q && !f->lost_emitted && now >= sat_add(f->lost_since, 2 * (uint64_t)f->cfg.heartbeat_ms)) {
		f->lost_emitted = true;
		push_event(f, FO_EV_QUORUM_LOST, NULL, NULL,
		           "%zu of %zu voters acknowledged us within %u ms; need %zu",
		           fo_acknowledged(f, now), f->eff_voters, f->cfg.quorate_ms,
		           majority_of(f->eff_voters));
	}
	if (!q && !f->fenced && can_fence(f) && now >= sat_add(fence_base(f), f->cfg.fence_after_ms)) {
		f->fenced = true;
		if (f->seen_against > f->fenced_through)
			f->fenced_through = f->seen_against;
		push_event(f, FO_EV_FENCE_SELF, NULL, NULL,
		           "no majority acknowledged us for %" PRIu64 " ms: %zu of %zu voters",
		           now - fence_base(f), fo_acknowledged(f, now), f->eff_voters);
		hand_back_mine(f, "this host fenced itself before starting it", NULL, now);
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
}

struct fo *fo_new(const struct fo_config *cfg, uint64_t now)
{
	if (!cfg || !cfg->name[0] || !terminated(cfg->name, sizeof(cfg->name)))
		return NULL;
	struct fo *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
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
	f->n_rounds = c->max_rounds + 1;
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

static void round_free(struct round *r)
{
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
	free(f->m);
	free(f->hidx);
	free(f->scratch);
	mv_arena_free(&f->harena);
	free(f);
}

void fo_set_incarnation(struct fo *f, uint64_t incarnation) { f->incarnation = incarnation; }

void fo_set_hosts(struct fo *f, const struct fo_host *hosts, size_t n)
{
	mv_arena_reset(&f->harena);
	f->hosts = NULL;
	f->n_hosts = 0;
	if (!hosts || !n)
		return;
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
	}
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
		cpy(m.to, sizeof(m.to), f->m[i].name);
		if (tmpl->has_plan && fo_plan_copy(&m.plan, &tmpl->plan) < 0)
			continue;
		push_msg(f, &m);
	}
}

static void send_heartbeats(struct fo *f, uint64_t now)
{
	struct fo_removed *rem = NULL;
	size_t n_rem = 0;
	for (size_t i = 0; i < f->n_m; i++) {
		if (i == f->self_idx || !f->m[i].voter)
			continue;
		struct fo_msg m;
		msg_init(f, &m, FO_HEARTBEAT, f->m[i].name);
		m.stamp = now;
		m.incarnation = f->incarnation;
		m.fenced_through = f->fenced_through;
		m.voters = (uint32_t)f->n_voters;
		if (f->n_removed) {
			if (!rem) {
				rem = calloc(f->n_removed < FO_REMOVED_MAX ? f->n_removed : FO_REMOVED_MAX,
				             sizeof(*rem));
				for (size_t j = 0; rem && j < f->n_m && n_rem < FO_REMOVED_MAX; j++) {
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
		for (size_t i = 0; i < f->n_inst; i++)
			if (f->inst[i]->done &&
			    (oldest == SIZE_MAX || f->inst[i]->done_at < f->inst[oldest]->done_at))
				oldest = i;
		if (oldest == SIZE_MAX)
			break;
		struct mrec *r = member_find(f, f->inst[oldest]->dead);
		if (r && r->forgot_max < f->inst[oldest]->inc)
			r->forgot_max = f->inst[oldest]->inc;
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
	in->first_heard = now;
	in->known_at = now;
	in->propose_at = UINT64_MAX;
	f->inst[f->n_inst++] = in;
	struct mrec *r = member_find(f, dead);
	if (r)
		raise_inst_max(f, r, inc);
	return in;
}

/* Do we (as an acceptor) consider `in`'s host failed for this round? */
static bool acceptor_may(const struct fo *f, const struct inst *in, uint32_t round)
{
	const struct mrec *r = member_find(f, in->dead);
	if (r && (r->dead_max >= in->inc || (r->removed && r->removed_inc >= in->inc)))
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

/* Which round needs proposing, if any. */
static bool work_round(const struct fo *f, const struct inst *in, uint64_t now, uint32_t *out)
{
	if (in->done)
		return false;
	bool any;
	uint32_t h = highest_chosen(in, f->n_rounds, &any);
	if (!in->rounds[0].chosen) {
		if (!acceptor_may(f, in, 0))
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
		struct fo_instance_id id;
		inst_id(&id, in, h);
		for (size_t p = 0; p < in->n_pend; p++) {
			struct fo_event *ev = push_event(
			    f, FO_EV_NO_ROOM, &id, NULL,
			    "%s not placed: handed back and all %u hand-back rounds used",
			    in->pend[p].e.name, f->cfg.max_rounds);
			ev->entry = in->pend[p].e;
			ev->entry.target[0] = '\0';
		}
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

static void add_pending(struct fo *f, struct inst *in, const struct fo_plan_entry *e, uint32_t r)
{
	if (replaced_after(f, in, r, e->uuid))
		return;
	for (size_t p = 0; p < in->n_pend; p++)
		if (strcmp(in->pend[p].e.uuid, e->uuid) == 0) {
			if (in->pend[p].failed_round < r) {
				in->pend[p].e = *e;
				in->pend[p].failed_round = r;
			}
			return;
		}
	struct pend *np = grow(in->pend, &in->cap_pend, in->n_pend + 1, sizeof(*np));
	if (!np)
		return;
	in->pend = np;
	in->pend[in->n_pend].e = *e;
	in->pend[in->n_pend].failed_round = r;
	in->pend[in->n_pend].added_at = f->last_now;
	in->n_pend++;
}

static void schedule_restarts(struct fo *f, uint64_t now);

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

/* Learn that `plan` is chosen for (in, round); with has_bound, `bound` (our
 * clock) is an upper bound of the last ack to in->dead by every acceptor
 * of a majority that accepted in this instance. */
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
	rd->plan = copy;
	rd->ents = ents;
	rd->chosen_at = now;
	rd->has_bound = has_bound;
	rd->ack_bound = has_bound ? bound : 0;
	rd->pphase = 0;
	fo_plan_clear(&rd->best_plan);
	fo_plan_clear(&rd->value);
	in->done = false;

	struct fo_instance_id id;
	inst_id(&id, in, round);
	size_t n_self = 0, n_room = 0;
	for (size_t e = 0; e < copy.n; e++) {
		if (!copy.entries[e].target[0])
			n_room++;
		else if (is_self(f, copy.entries[e].target))
			n_self++;
	}
	struct fo_event *ev = push_event(f, FO_EV_CHOSEN, &id, b->proposer,
	                                 "plan for %s incarnation %" PRIu64 " round %u: %zu VMs, "
	                                 "%zu here, %zu without room (ballot %" PRIu64 "/%s)",
	                                 in->dead, in->inc, round, copy.n, n_self, n_room,
	                                 b->number, b->proposer);
	fo_plan_copy(&ev->plan, &copy);
	for (size_t e = 0; e < copy.n; e++) {
		if (copy.entries[e].target[0])
			continue;
		rd->ents[e].st = E_NOROOM;
		cpy(rd->ents[e].text, sizeof(rd->ents[e].text), "no host had room");
		struct fo_event *nr =
		    push_event(f, FO_EV_NO_ROOM, &id, NULL, "no host has room for %s (%u vCPUs, %" PRIu64
		               " MiB)", copy.entries[e].name, copy.entries[e].vcpus,
		               copy.entries[e].memory_kib / 1024);
		nr->entry = copy.entries[e];
	}
	/* pending VMs this round re-places */
	for (size_t p = 0; p < in->n_pend;) {
		if (in->pend[p].failed_round < round && plan_has_uuid(&copy, in->pend[p].e.uuid))
			in->pend[p] = in->pend[--in->n_pend];
		else
			p++;
	}
	/* every learner tracks the fence (for the record); only targets act */
	if (copy.n && !in->fenced)
		arm_fence_wait(f, in, has_bound, bound, now);
	if (mine && round == 0 && copy.n > 0 && !in->fenced && !in->remote_fence_sent) {
		in->remote_fence_sent = true;
		push_event(f, FO_EV_REMOTE_FENCE, &id, in->dead,
		           "destroy %s's HA VMs through its hypervisor", in->dead);
	}
	in->working = false;
	in->propose_at = UINT64_MAX;
	schedule_restarts(f, now);
	check_done(f, in, now);
}

/* Outstanding assignments of chosen plans (not restarted, not handed back). */
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
					n += rd->ents[e].st == E_WAIT && rd->plan.entries[e].target[0];
		}
	if (!n || !(out->entries = malloc(n * sizeof(*out->entries))))
		return;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			if (rd->chosen)
				for (size_t e = 0; e < rd->plan.n; e++)
					if (rd->ents[e].st == E_WAIT && rd->plan.entries[e].target[0])
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
		c.cap.alive = is_self(f, name) || (r && r->voter && r->st == FO_ALIVE);
		h[(*n_out)++] = c;
	}
	return h;
}

/* Was this VM already moved by a chosen plan we know, to an epoch above
 * the one the (possibly stale) gossiped view shows? Then the view's copy
 * on the dead host is history, not a VM to restart. */
static bool moved_since(const struct fo *f, const struct fo_vm *vm, const struct fo_plan *sup)
{
	for (size_t e = 0; sup && e < sup->n; e++)
		if (sup->entries[e].new_epoch > vm->epoch && strcmp(sup->entries[e].uuid, nz(vm->uuid)) == 0)
			return true;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			if (!rd->chosen)
				continue;
			for (size_t e = 0; e < rd->plan.n; e++)
				if (rd->plan.entries[e].new_epoch > vm->epoch &&
				    strcmp(rd->plan.entries[e].uuid, nz(vm->uuid)) == 0)
					return true;
		}
	return false;
}

/* The value this node proposes for (in, round) when nothing was accepted. */
static int own_value(struct fo *f, struct inst *in, uint32_t round, struct fo_plan *out)
{
	out->n = 0;
	out->entries = NULL;
	const struct mrec *x = member_find(f, in->dead);
	if (round == 0 && x && x->voter && x->st == FO_ALIVE && x->inc > in->inc)
		return 0; /* the host came back: the empty plan */
	struct fo_plan outst;
	outstanding_plan(f, &outst);
	int rc = -ENOMEM;
	struct fo_vm *vms = NULL;
	const char **excl = NULL;
	size_t n_vms = 0, n_excl = 0, n_h = 0;
	struct fo_host *hv = NULL;
	if (round == 0) {
		hv = hosts_view(f, NULL, 0, &n_h);
		if (!hv)
			goto out;
		for (size_t i = 0; i < f->n_hosts; i++) {
			const struct fo_host *h = &f->hosts[i];
			if (strcmp(h->cap.name, in->dead) != 0)
				continue;
			vms = calloc(h->n_vms ? h->n_vms : 1, sizeof(*vms));
			if (!vms)
				goto out;
			for (size_t v = 0; v < h->n_vms; v++)
				if (h->vms[v].running && !moved_since(f, &h->vms[v], &in->rounds[0].sup))
					vms[n_vms++] = h->vms[v];
			break;
		}
	} else {
		/* hand-backs: one VM at a time, in plan order, each kept off every
		 * host that already failed it, the earlier ones counted as
		 * outstanding (capacity, anti-affinity) for the later ones */
		vms = calloc(in->n_pend ? in->n_pend : 1, sizeof(*vms));
		excl = calloc(in->n_pend * FO_ROUNDS_MAX + 1, sizeof(*excl));
		struct fo_plan_entry *acc =
		    calloc(outst.n + in->n_pend + 1, sizeof(struct fo_plan_entry));
		out->entries = calloc(in->n_pend ? in->n_pend : 1, sizeof(*out->entries));
		if (!vms || !excl || !acc || !out->entries) {
			free(acc);
			fo_plan_clear(out);
			goto out;
		}
		for (size_t p = 0; p < in->n_pend; p++) {
			const struct pend *pd = &in->pend[p];
			if (pd->failed_round >= round)
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
		if (outst.n)
			memcpy(acc, outst.entries, outst.n * sizeof(*acc));
		struct fo_plan so_far = {.n = outst.n, .entries = acc};
		rc = 0;
		for (size_t v = 0; v < n_vms && rc == 0; v++) {
			n_excl = 0;
			for (uint32_t k = 0; k < round; k++) {
				const struct round *rd = &in->rounds[k];
				for (size_t j = 0; rd->chosen && j < rd->plan.n; j++)
					if (rd->plan.entries[j].target[0] &&
					    strcmp(rd->plan.entries[j].uuid, vms[v].uuid) == 0)
						excl[n_excl++] = rd->plan.entries[j].target;
			}
			free(hv);
			hv = hosts_view(f, excl, n_excl, &n_h);
			struct fo_plan one;
			rc = hv ? fo_plan_compute(hv, n_h, in->dead, &vms[v], 1, round, &so_far, &one)
			        : -ENOMEM;
			if (rc == 0) {
				out->entries[out->n++] = one.entries[0];
				acc[so_far.n++] = one.entries[0];
				fo_plan_clear(&one);
			}
		}
		free(acc);
		if (rc < 0)
			fo_plan_clear(out);
	}
	if (round == 0)
		rc = fo_plan_compute(hv, n_h, in->dead, vms, n_vms, round, &outst, out);
	for (size_t e = 0; rc == 0 && e < out->n; e++) {
		struct fo_plan_entry *pe = &out->entries[e];
		const struct mrec *t = member_find(f, pe->target);
		pe->target_incarnation = !pe->target[0]       ? 0
		                         : is_self(f, pe->target) ? f->incarnation
		                         : t                      ? t->inc
		                                                  : 0;
	}
out:
	free(hv);
	free(vms);
	free(excl);
	fo_plan_clear(&outst);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Proposer                                                                 */

static uint64_t age_of(const struct inst *in, uint64_t now)
{
	return now > in->first_heard ? now - in->first_heard : 0;
}

static bool resp_mark(struct round *rd, size_t idx)
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
	rd->resp[idx] = 1;
	rd->n_resp++;
	return true;
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
	rd->pphase = 1;
	rd->has_best = false;
	fo_plan_clear(&rd->best_plan);
	fo_plan_clear(&rd->value);
	fo_plan_clear(&rd->sup);
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

static void on_promise(struct fo *f, struct inst *in, uint32_t round, size_t from_idx,
                       const struct fo_msg *m, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (rd->chosen || rd->pphase != 1 || ballot_cmp(&m->ballot, &rd->ballot) != 0)
		return;
	if (!f->m[from_idx].voter || !resp_mark(rd, from_idx))
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
	if (rd->n_resp < majority_of(f->eff_voters))
		return;
	fo_plan_clear(&rd->value);
	if (rd->has_best) {
		rd->value = rd->best_plan;
		rd->best_plan.entries = NULL;
		rd->best_plan.n = 0;
	} else if (own_value(f, in, round, &rd->value) < 0) {
		backoff(f, rd, now);
		return;
	}
	rd->pphase = 2;
	resp_reset(rd);
	rd->acc_unbounded = false;
	rd->acc_bound = 0;
	send_phase(f, in, round, now);
}

static void on_accepted(struct fo *f, struct inst *in, uint32_t round, size_t from_idx,
                        const struct fo_msg *m, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (rd->chosen || rd->pphase != 2 || ballot_cmp(&m->ballot, &rd->ballot) != 0)
		return;
	if (!f->m[from_idx].voter || !resp_mark(rd, from_idx))
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
	if (rd->n_resp < majority_of(f->eff_voters))
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

static void on_reject(struct fo *f, struct inst *in, uint32_t round, const struct fo_msg *m,
                      uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (m->ballot.number > rd->max_n)
		rd->max_n = m->ballot.number;
	if (rd->chosen || (rd->pphase != 1 && rd->pphase != 2))
		return;
	if (ballot_cmp(&m->ballot, &rd->ballot) > 0)
		backoff(f, rd, now);
}

/* ------------------------------------------------------------------------ */
/* Acceptor                                                                 */

static void deliver_local(struct fo *f, struct inst *in, uint32_t round, struct fo_msg *r,
                          uint64_t now)
{
	switch (r->type) {
	case FO_PROMISE: on_promise(f, in, round, f->self_idx, r, now); break;
	case FO_ACCEPTED: on_accepted(f, in, round, f->self_idx, r, now); break;
	case FO_REJECT: on_reject(f, in, round, r, now); break;
	default: break;
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
	if (is_self(f, in->dead))
		return "I am the host being failed over";
	if (age > now - f->started) {
		snprintf(buf, len,
		         "my core is %" PRIu64 " ms old, younger than the instance (%" PRIu64 " ms): "
		         "I may have forgotten promises",
		         now - f->started, age);
		return buf;
	}
	if (!acceptor_may(f, in, round)) {
		snprintf(buf, len, "%s is not dead to me at incarnation %" PRIu64, in->dead, in->inc);
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
static bool acceptor_may_answer(struct fo *f, struct inst *in, uint32_t round, const char *from,
                                const struct fo_ballot *b, uint64_t age, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (rd->chosen) {
		send_chosen_to(f, in, round, from);
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
	return true;
}

static void acceptor_prepare(struct fo *f, struct inst *in, uint32_t round, const char *from,
                             const struct fo_ballot *b, uint64_t age, uint64_t now)
{
	struct round *rd = &in->rounds[round];
	if (!acceptor_may_answer(f, in, round, from, b, age, now))
		return;
	merge_age(in, age, now);
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
	if (n_sup && (p.superseded.entries = malloc(n_sup * sizeof(*p.superseded.entries)))) {
		for (size_t i = 0; i < f->n_inst; i++) {
			const struct inst *o = f->inst[i];
			if (o->inc == in->inc || strcmp(o->dead, in->dead) != 0)
				continue;
			for (uint32_t r = 0; r < f->n_rounds; r++)
				for (size_t e = 0; o->rounds[r].chosen && e < o->rounds[r].plan.n; e++)
					p.superseded.entries[p.superseded.n++] = o->rounds[r].plan.entries[e];
		}
	}
	if (rd->has_acc) {
		p.accepted_ballot = rd->acc_ballot;
		p.has_plan = true;
		if (fo_plan_copy(&p.plan, &rd->acc_plan) < 0)
			return;
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
static const char *accept_clash(const struct fo *f, const struct inst *in,
                                const struct fo_plan *plan, char *buf, size_t len)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		if (o == in)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			if (!od->has_acc && !od->chosen)
				continue;
			for (size_t e = 0; e < plan->n; e++) {
				const struct fo_plan_entry *pe = &plan->entries[e];
				bool clash = false;
				for (size_t k = 0; od->chosen && k < od->plan.n && !clash; k++)
					clash = od->plan.entries[k].new_epoch >= pe->new_epoch &&
					        strcmp(od->plan.entries[k].uuid, pe->uuid) == 0;
				for (size_t k = 0; od->has_acc && !od->chosen && k < od->acc_plan.n && !clash;
				     k++)
					clash = od->acc_plan.entries[k].new_epoch >= pe->new_epoch &&
					        strcmp(od->acc_plan.entries[k].uuid, pe->uuid) == 0;
				if (clash) {
					snprintf(buf, len,
					         "VM %.40s is also in the plan for %.64s incarnation %" PRIu64,
					         pe->name, o->dead, o->inc);
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
	if (!acceptor_may_answer(f, in, round, from, b, age, now))
		return;
	char buf[FO_TEXT_MAX];
	const char *why = accept_clash(f, in, plan, buf, sizeof(buf));
	if (why != NULL) {
		send_reject(f, in, round, from, NULL, why, now);
		return;
	}
	struct fo_plan c;
	if (fo_plan_copy(&c, plan) < 0)
		return;
	merge_age(in, age, now);
	rd->promised = *b;
	fo_plan_clear(&rd->acc_plan);
	rd->acc_plan = c;
	rd->acc_ballot = *b;
	rd->has_acc = true;
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

/* We fenced ourselves (order == NULL) or obeyed a FENCE_ORDER: what
 * happens to the entries of chosen plans that name us as their target.
 *   - never started: handed back (RESTARTED ok=false to everyone); we
 *     will not start them now, and no plan of ours can hold them (the
 *     gossiped view only lists running VMs);
 *   - starting or running: the fence destroyed them. A FENCE_ORDER's plan
 *     re-places those it lists; the others were destroyed with the kill
 *     list and are handed back. After a self-fence they are only marked:
 *     our own failover's plan may list them (gossip), so the others
 *     re-plan them only once that plan is known (reclaim()). */
static void hand_back_mine(struct fo *f, const char *why, const struct fo_plan *order,
                           uint64_t now)
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
				if (!is_self(f, pe->target) || (st->st != E_WAIT && !(order && st->st == E_OK)))
					continue;
				bool started = st->running || st->st == E_OK;
				bool listed = order && plan_has_uuid(order, pe->uuid);
				if (!started && !listed) {
					hand_back(f, in, r, e, why, now);
				} else if (!started || listed || !order) {
					if (st->running && f->running)
						f->running--;
					st->running = false;
					st->st = E_HANDED;
					snprintf(st->text, sizeof(st->text), "destroyed by the fence of %.64s%s",
					         f->cfg.name, listed ? ", re-placed by its failover" : "");
				} else {
					hand_back(f, in, r, e, "destroyed: this host was failed over", now);
				}
			}
		}
		in->done = in->done && in->n_pend == 0;
	}
}

/* Does a chosen plan we know (a later round of this instance, or another
 * instance) place this VM at the same or a newer epoch? */
static const char *superseded_by(const struct fo *f, const struct inst *in, uint32_t round,
                                 const struct fo_plan_entry *pe)
{
	static char buf[FO_TEXT_MAX];
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *o = f->inst[i];
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *od = &o->rounds[r];
			if (!od->chosen || (o == in && r <= round))
				continue;
			for (size_t k = 0; k < od->plan.n; k++)
				if (od->plan.entries[k].new_epoch >= pe->new_epoch &&
				    strcmp(od->plan.entries[k].uuid, pe->uuid) == 0) {
					snprintf(buf, sizeof(buf),
					         "the plan for %.64s incarnation %" PRIu64 " round %u places it",
					         o->dead, o->inc, r);
					return buf;
				}
		}
	}
	return NULL;
}

static int entry_order(const struct fo_plan_entry *a, const struct fo_plan_entry *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Emits RESTART for our fenced entries, best priority first, while fewer
 * than max_parallel are outstanding and we are quorate; notes the next
 * backoff expiry in restart_wake. */
static void schedule_restarts(struct fo *f, uint64_t now)
{
	/* entries assigned to an incarnation of ours that was failed over since
	 * are not ours to start any more: the others may re-place them */
	for (size_t i = 0; f->fenced_through && i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				if (rd->ents[e].st == E_WAIT && !rd->ents[e].running &&
				    pe->target_incarnation && pe->target_incarnation <= f->fenced_through &&
				    is_self(f, pe->target)) {
					char text[FO_TEXT_MAX];
					snprintf(text, sizeof(text),
					         "assigned to incarnation %" PRIu64 " of %.64s, failed over since",
					         pe->target_incarnation, f->cfg.name);
					hand_back(f, in, r, e, text, now);
				}
			}
		}
	}
	/* entries another known plan re-places at the same or a newer epoch
	 * (a later round, or another failover that found the VM elsewhere) */
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *in = f->inst[i];
		if (in->done || !in->fenced)
			continue;
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			struct round *rd = &in->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++) {
				const struct fo_plan_entry *pe = &rd->plan.entries[e];
				struct ent *st = &rd->ents[e];
				if (st->st != E_WAIT || st->running || !is_self(f, pe->target))
					continue;
				const char *by = superseded_by(f, in, r, pe);
				if (by) {
					st->st = E_HANDED;
					snprintf(st->text, sizeof(st->text), "not started: %.200s", by);
				}
			}
		}
	}
	f->restart_wake = UINT64_MAX;
	bool quorate = fo_quorate(f, now);
	for (;;) {
		struct inst *bi = NULL;
		uint32_t br = 0;
		size_t be = 0;
		for (size_t i = 0; i < f->n_inst; i++) {
			struct inst *in = f->inst[i];
			if (in->done || !in->fenced)
				continue;
			for (uint32_t r = 0; r < f->n_rounds; r++) {
				struct round *rd = &in->rounds[r];
				if (!rd->chosen)
					continue;
				for (size_t e = 0; e < rd->plan.n; e++) {
					struct ent *st = &rd->ents[e];
					if (st->st != E_WAIT || st->running ||
					    !is_self(f, rd->plan.entries[e].target))
						continue;
					if (st->next_try > now) {
						if (st->next_try < f->restart_wake)
							f->restart_wake = st->next_try;
						continue;
					}
					if (!bi || entry_order(&rd->plan.entries[e],
					                       &bi->rounds[br].plan.entries[be]) < 0) {
						bi = in;
						br = r;
						be = e;
					}
				}
			}
		}
		if (!bi || !quorate || f->fenced || f->running >= f->cfg.max_parallel)
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
	if (st == FO_LEFT) {
		r->left = true;
		if (incarnation > r->left_inc)
			r->left_inc = incarnation;
	} else if (st == FO_ALIVE || st == FO_SUSPECT) {
		if (r->left && incarnation > r->left_inc)
			r->left = false;
		if (r->removed && incarnation > r->removed_inc)
			r->removed = false;
	}
	r->st = st;
	r->inc = incarnation;
	if (st == FO_DEAD && incarnation > r->dead_max)
		r->dead_max = incarnation;
	recount_voters(f);
	if (st == FO_DEAD && r->voter) {
		struct inst *in = inst_find(f, name, incarnation);
		if (!in || !in->detected_at) {
			in = inst_open(f, name, incarnation, now);
			if (in) {
				in->detected_at = now;
				if (now < in->first_heard)
					in->first_heard = now;
				struct fo_instance_id id;
				inst_id(&id, in, 0);
				push_event(f, FO_EV_DETECTED, &id, name,
				           "%s is dead (incarnation %" PRIu64 "): failover opened", name,
				           incarnation);
			}
		}
	}
	update_quorum(f, now, true);
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
	if (!r || !r->fed)
		return -ENOENT;
	if (r->removed || r->left)
		return 0;
	if (r->st != FO_DEAD)
		return -EBUSY;
	r->removed = true;
	r->removed_inc = r->inc > r->dead_max ? r->inc : r->dead_max;
	r->removed_at = f->last_now + 1;
	recount_voters(f);
	push_event(f, FO_EV_MEMBER_REMOVED, NULL, name,
	           "%s force-left (incarnation %" PRIu64 "): %zu voters, majority %zu", name,
	           r->removed_inc, f->n_voters, majority_of(f->eff_voters));
	update_quorum(f, now, true);
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
		bool was = r->removed;
		r->removed = true;
		if (!was)
			r->removed_at = (now > f->last_now ? now : f->last_now) + 1;
		if (rm->incarnation > r->removed_inc)
			r->removed_inc = rm->incarnation;
		changed = true;
		if (!was)
			push_event(f, FO_EV_MEMBER_REMOVED, NULL, rm->name,
			           "%s force-left (incarnation %" PRIu64 ", told by %s)", rm->name,
			           rm->incarnation, m->from);
	}
	if (changed) {
		recount_voters(f);
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
		if (!terminated(e->uuid, sizeof(e->uuid)) || !terminated(e->name, sizeof(e->name)) ||
		    !terminated(e->target, sizeof(e->target)) || !terminated(e->group, sizeof(e->group)))
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
	if (m->type >= FO_FENCE_ORDER || m->type == FO_HB_NACK) {
		if (m->type != FO_HB_NACK && !m->inst.dead[0])
			return -EINVAL;
		if (m->inst.round >= f->n_rounds)
			return -EINVAL;
	}
	return 0;
}

static void handle_heartbeat(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	merge_removed(f, m, now);
	struct mrec *x = member_find(f, m->from);
	struct fo_msg r;
	msg_init(f, &r, FO_HB_NACK, m->from);
	r.stamp = m->stamp;
	r.incarnation = m->incarnation;
	if (!x || !x->voter) {
		cpy(r.text, sizeof(r.text), "not a voter here");
		push_msg(f, &r);
		return;
	}
	if (m->fenced_through > x->fenced_through)
		x->fenced_through = m->fenced_through;
	uint32_t was = x->reported_voters;
	x->reported_voters = m->voters;
	x->hb_at = now + 1;
	x->hb_inc = m->incarnation;
	if (m->voters != was || m->voters > f->eff_voters) {
		size_t eff = effective_voters(f);
		if (eff != f->eff_voters) {
			f->eff_voters = eff;
			recompute_qstamp(f);
			update_quorum(f, now, true);
		}
	}
	if (x->st == FO_DEAD && x->inc >= m->incarnation) {
		cpy(r.inst.dead, sizeof(r.inst.dead), x->name);
		r.inst.incarnation = x->inc;
		snprintf(r.text, sizeof(r.text), "you are dead to me (incarnation %" PRIu64 ")", x->inc);
		push_msg(f, &r);
		return;
	}
	uint64_t ft = m->fenced_through;
	if (x->forgot_max > ft) {
		/* finished and forgotten here: we no longer have the plan */
		cpy(r.inst.dead, sizeof(r.inst.dead), x->name);
		r.inst.incarnation = x->forgot_max;
		snprintf(r.text, sizeof(r.text),
		         "failover of incarnation %" PRIu64 " done: fence first", x->forgot_max);
		push_msg(f, &r);
		return;
	}
	if (x->inst_max > ft) {
		/* Failovers of incarnations it has not fenced. A FENCE_ORDER up to
		 * incarnation k makes it claim fenced_through = k, so it must list
		 * the VMs of every chosen instance in (ft, k], and k stays below
		 * the lowest one still undecided. */
		uint64_t low = UINT64_MAX, upto = 0;
		size_t n = 0;
		for (size_t i = 0; i < f->n_inst; i++) {
			const struct inst *in = f->inst[i];
			if (in->inc > ft && !in->rounds[0].chosen && strcmp(in->dead, x->name) == 0 &&
			    in->inc < low)
				low = in->inc;
		}
		for (size_t i = 0; i < f->n_inst; i++) {
			const struct inst *in = f->inst[i];
			if (in->inc > ft && in->inc < low && in->rounds[0].chosen &&
			    strcmp(in->dead, x->name) == 0) {
				n += in->rounds[0].plan.n;
				if (in->inc > upto)
					upto = in->inc;
			}
		}
		if (upto) {
			struct fo_msg o;
			msg_init(f, &o, FO_FENCE_ORDER, m->from);
			cpy(o.inst.dead, sizeof(o.inst.dead), x->name);
			o.inst.incarnation = upto;
			o.stamp = m->stamp;
			o.has_plan = true;
			if (n && !(o.plan.entries = malloc(n * sizeof(*o.plan.entries))))
				return;
			for (size_t i = 0; i < f->n_inst; i++) {
				const struct inst *in = f->inst[i];
				if (in->inc <= ft || in->inc > upto || !in->rounds[0].chosen ||
				    strcmp(in->dead, x->name) != 0)
					continue;
				const struct fo_plan *p = &in->rounds[0].plan;
				for (size_t e = 0; e < p->n; e++)
					if (!plan_has_uuid(&o.plan, p->entries[e].uuid))
						o.plan.entries[o.plan.n++] = p->entries[e];
			}
			snprintf(o.text, sizeof(o.text),
			         "you were failed over (incarnation %" PRIu64 "): destroy these VMs", upto);
			push_msg(f, &o);
			return;
		}
		uint64_t inc = low != UINT64_MAX ? low : x->inst_max;
		cpy(r.inst.dead, sizeof(r.inst.dead), x->name);
		r.inst.incarnation = inc;
		snprintf(r.text, sizeof(r.text), "failover of incarnation %" PRIu64 " %s", inc,
		         low != UINT64_MAX ? "pending"
		         : x->restored_max >= inc
		                 ? "(from before my restart, journalled) not fenced: fence first"
		                 : "done: fence first");
		push_msg(f, &r);
		return;
	}
	r.type = FO_HB_ACK;
	/* see handle_ack; a journalled core remembers whom it must not ack
	 * across restarts, so it is as good as an old one (RESTARTS) */
	r.age_ms = f->journal_durable ? FO_ACK_AGE_DURABLE : now - f->started;
	x->acked_at = now + 1;       /* ACCEPTED reports it (ack bound) */
	push_msg(f, &r);
}

static void handle_ack(struct fo *f, const struct fo_msg *m, uint64_t now)
{
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
	if (old <= f->qstamp && s > f->qstamp)
		recompute_qstamp(f);
	if (!f->quorate_flag)
		update_quorum(f, now, true);
}

static void handle_nack(struct fo *f, const struct fo_msg *m)
{
	if (is_self(f, m->inst.dead) && m->inst.incarnation > f->seen_against)
		f->seen_against = m->inst.incarnation;
	/* Self-fenced and not quorate since: every HA VM we had is destroyed
	 * and we started none (restarts need quorum), so the claim covers
	 * instances we hear of only now (e.g. after a partition heals). */
	if (f->fenced && f->seen_against > f->fenced_through)
		f->fenced_through = f->seen_against;
}

static void handle_fence_order(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	if (!is_self(f, m->inst.dead))
		return;
	if (m->inst.incarnation > f->seen_against)
		f->seen_against = m->inst.incarnation;
	if (f->fenced_through >= m->inst.incarnation)
		return;
	f->fenced_through = m->inst.incarnation;
	/* The VMs to destroy: the order's, and those we started (or are
	 * starting) for other failovers that the order does not re-place —
	 * the others may not know we started them, and will re-place them. */
	struct fo_plan order = {0};
	if (m->has_plan)
		order = m->plan;
	size_t extra = 0;
	for (size_t i = 0; i < f->n_inst; i++)
		for (uint32_t r = 0; r < f->n_rounds; r++) {
			const struct round *rd = &f->inst[i]->rounds[r];
			for (size_t e = 0; rd->chosen && e < rd->plan.n; e++)
				extra += is_self(f, rd->plan.entries[e].target) &&
				         ((rd->ents[e].running && rd->ents[e].st == E_WAIT) ||
				          rd->ents[e].st == E_OK) &&
				         !plan_has_uuid(&order, rd->plan.entries[e].uuid);
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
					if (is_self(f, rd->plan.entries[e].target) &&
					    ((rd->ents[e].running && rd->ents[e].st == E_WAIT) ||
					     rd->ents[e].st == E_OK) &&
					    !plan_has_uuid(&order, rd->plan.entries[e].uuid))
						kill.entries[kill.n++] = rd->plan.entries[e];
			}
	}
	if (kill.n) {
		struct fo_event *e = push_event(f, FO_EV_FENCE_VMS, &m->inst, m->from,
		                                "failed over (incarnation %" PRIu64 ") by %s: destroy "
		                                "%zu VMs",
		                                m->inst.incarnation, m->from, kill.n);
		e->plan = kill;
	} else {
		free(kill.entries);
	}
	hand_back_mine(f, "destroyed: this host was failed over", &order, now);
	struct fo_msg d;
	msg_init(f, &d, FO_FENCED, "");
	d.inst = m->inst;
	d.inst.round = 0;
	cpy(d.text, sizeof(d.text), "destroyed by the host itself");
	broadcast(f, &d);
}

static void handle_fenced(struct fo *f, const struct fo_msg *m, uint64_t now)
{
	struct inst *in = inst_find(f, m->inst.dead, m->inst.incarnation);
	if (!in) {
		if (is_self(f, m->inst.dead))
			return;
		in = inst_open(f, m->inst.dead, m->inst.incarnation, now);
		if (!in)
			return;
	}
	if (in->fenced)
		return;
	char how[FO_TEXT_MAX];
	snprintf(how, sizeof(how), "%.120s (reported by %.64s)", m->text[0] ? m->text : "fenced",
	         m->from);
	set_fenced(f, in, how, now, true);
	schedule_restarts(f, now);
}

static struct ent *find_entry(struct inst *in, uint32_t round, const char *uuid,
                              const char *target, const struct fo_plan_entry **pe)
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
		st->took_ms = m->took_ms;
		cpy(st->text, sizeof(st->text), m->text);
		struct fo_event *ev =
		    m->ok ? push_event(f, FO_EV_RESTARTED, &m->inst, m->from,
		                       "%s running on %s with epoch %" PRIu64 " after %" PRIu64 " ms",
		                       pe->name, m->from, pe->new_epoch, m->took_ms)
		          : push_event(f, FO_EV_HANDED_BACK, &m->inst, m->from,
		                       "%s handed back by %s: %.180s", pe->name, m->from, m->text);
		ev->entry = *pe;
		ev->took_ms = m->took_ms;
		if (!m->ok)
			add_pending(f, in, pe, m->inst.round);
	} else if (!m->ok && m->has_plan && m->plan.n == 1 &&
	           strcmp(m->plan.entries[0].uuid, m->vm_uuid) == 0) {
		/* the round is not learned here yet: keep the hand-back */
		add_pending(f, in, &m->plan.entries[0], m->inst.round);
	} else {
		return;
	}
	if (!in->working)
		in->work_since = now;
	check_done(f, in, now);
	run_work(f, now);
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

	switch (m->type) {
	case FO_HEARTBEAT: handle_heartbeat(f, m, now); break;
	case FO_HB_ACK: handle_ack(f, m, now); break;
	case FO_HB_NACK: handle_nack(f, m); break;
	case FO_FENCE_ORDER: handle_fence_order(f, m, now); break;
	case FO_PREPARE:
	case FO_ACCEPT:
		if (m->type == FO_ACCEPT && !m->has_plan)
			return -EINVAL;
		in = inst_find(f, m->inst.dead, m->inst.incarnation);
		if (!in) {
			struct mrec *x = member_find(f, m->inst.dead);
			bool may = x && !is_self(f, m->inst.dead) &&
			           (x->dead_max >= m->inst.incarnation ||
			            (x->removed && x->removed_inc >= m->inst.incarnation));
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
				else
					snprintf(r.text, sizeof(r.text),
					         "%s is not dead to me at incarnation %" PRIu64, m->inst.dead,
					         m->inst.incarnation);
				push_msg(f, &r);
				break;
			}
		}
		if (m->type == FO_PREPARE)
			acceptor_prepare(f, in, round, m->from, &m->ballot, m->age_ms, now);
		else
			acceptor_accept(f, in, round, m->from, &m->ballot, m->age_ms, &m->plan, now);
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
		if (is_self(f, m->inst.dead))
			break;
		in = inst_open(f, m->inst.dead, m->inst.incarnation, now);
		if (in)
			learn(f, in, round, &m->ballot, &m->plan, now, false, m->has_ack_ago,
			      m->has_ack_ago && now > m->ack_ago_ms ? now - m->ack_ago_ms : 0);
		break;
	case FO_FENCED: handle_fenced(f, m, now); break;
	case FO_RESTARTED: handle_restarted(f, m, now); break;
	}
	if (m->type >= FO_FENCE_ORDER && m->type != FO_RESTARTED)
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
		st->took_ms = now - rd->chosen_at;
		cpy(st->text, sizeof(st->text), "running");
		struct fo_event *e = push_event(f, FO_EV_RESTARTED, &iid, f->cfg.name,
		                                "%s running here with epoch %" PRIu64 " after %" PRIu64
		                                " ms",
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
		struct fo_event *e =
		    push_event(f, FO_EV_RESTART_FAILED, &iid, f->cfg.name,
		               "%s failed to start (attempt %u of %u): %.150s%s", pe->name, st->attempts,
		               f->cfg.restart_attempts, why ? why : "", retry ? "" : "; handing back");
		e->entry = *pe;
		if (retry) {
			uint64_t d = (uint64_t)f->cfg.restart_backoff_ms << (st->attempts - 1);
			st->next_try = sat_add(now, d ? d : 1);
		} else {
			char text[FO_TEXT_MAX];
			snprintf(text, sizeof(text), "handed back after %u attempts: %.150s", st->attempts,
			         why ? why : "");
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
	for (size_t i = 0; i < f->n_m; i++) {
		const struct mrec *r = &f->m[i];
		if (i == f->self_idx || !considered_alive(r) || r->st != FO_ALIVE ||
		    strcmp(r->name, in->dead) == 0)
			continue;
		uint64_t h = rank_hash(pre, r->name);
		if (h > mine || (h == mine && strcmp(r->name, f->cfg.name) < 0))
			k++;
	}
	return k;
}

static void inst_work(struct fo *f, struct inst *in, uint64_t now, bool quorate)
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
	}
	/* proposer retries */
	for (uint32_t r = 0; r < f->n_rounds; r++) {
		struct round *rd = &in->rounds[r];
		if (rd->chosen || !rd->pphase || now < rd->next_retry)
			continue;
		if (rd->pphase == 3)
			start_phase1(f, in, r, now);
		else
			send_phase(f, in, r, now);
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

static uint64_t reclaim_at(const struct fo *f, const struct inst *tin)
{
	return sat_add(tin->rounds[0].chosen_at,
	               (uint64_t)f->cfg.fence_after_ms + f->cfg.fence_margin_ms);
}

/* A target T of chosen plans was itself failed over: (T, j) was chosen
 * here F + margin ago. By then T has destroyed whatever it started — by
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
				if (st->st != E_WAIT || strcmp(pe->target, tin->dead) != 0)
					continue;
				/* Assigned to the failed-over incarnation (or older): T
				 * hands it back rather than start it (schedule_restarts).
				 * Without the incarnation (old peers), only if T is not
				 * back and the plan predates T's failure. */
				if (back ||
				    (pe->target_incarnation ? pe->target_incarnation != tin->inc
				                            : rd->chosen_at > tin->known_at))
					continue;
				bool theirs = false;
				for (size_t j = 0; j < f->n_inst && !theirs; j++) {
					const struct inst *o = f->inst[j];
					if (strcmp(o->dead, tin->dead) != 0)
						continue;
					for (uint32_t k = 0; k < f->n_rounds && !theirs; k++)
						theirs = o->rounds[k].chosen && plan_has_uuid(&o->rounds[k].plan, pe->uuid);
				}
				st->st = E_HANDED;
				snprintf(st->text, sizeof(st->text), "target %.64s failed over %s", tin->dead,
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

static void run_work(struct fo *f, uint64_t now)
{
	for (size_t i = 0; i < f->n_inst; i++) {
		struct inst *tin = f->inst[i];
		if (tin->rounds[0].chosen && !tin->reclaimed && now >= reclaim_at(f, tin))
			reclaim(f, tin, now);
	}
	bool quorate = fo_quorate(f, now);
	for (size_t i = 0; i < f->n_inst; i++)
		if (!f->inst[i]->done)
			inst_work(f, f->inst[i], now, quorate);
	schedule_restarts(f, now);
	for (size_t i = 0; i < f->n_inst; i++)
		check_done(f, f->inst[i], now);
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
		f->eff_voters = eff;
		recompute_qstamp(f);
	}
	update_quorum(f, now, false);
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
#define CONSIDER(t)                                                                                \
	do {                                                                                       \
		uint64_t t_ = (t);                                                                 \
		if (t_ < d)                                                                        \
			d = t_;                                                                    \
	} while (0)
	if (f->quorate_flag) {
		if (majority_of(f->eff_voters) > 1)
			CONSIDER(sat_add(f->qstamp ? f->qstamp - 1 : 0, f->cfg.quorate_ms));
	} else {
		if (!f->fenced && can_fence(f))
			CONSIDER(sat_add(fence_base(f), f->cfg.fence_after_ms));
		if (!f->lost_emitted)
			CONSIDER(sat_add(f->lost_since, 2 * (uint64_t)f->cfg.heartbeat_ms));
	}
	if (f->restart_wake != UINT64_MAX)
		CONSIDER(f->restart_wake);
	for (size_t i = 0; i < f->n_inst; i++) {
		const struct inst *in = f->inst[i];
		if (in->rounds[0].chosen && !in->reclaimed)
			CONSIDER(reclaim_at(f, in));
		if (in->done)
			continue;
		if (in->fence_wait_at && !in->fenced)
			CONSIDER(in->fence_wait_at);
		if (in->batch_at)
			CONSIDER(in->batch_at);
		if (in->propose_at != UINT64_MAX && (quorate || in->propose_at > now))
			CONSIDER(in->propose_at);
		for (uint32_t r = 0; r < f->n_rounds; r++)
			if (!in->rounds[r].chosen && in->rounds[r].pphase)
				CONSIDER(in->rounds[r].next_retry);
	}
#undef CONSIDER
	return d < now ? now : d;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */

size_t fo_instance_count(const struct fo *f) { return f->n_inst; }

bool fo_chosen_plan(const struct fo *f, const struct fo_instance_id *id,
                    const struct fo_plan **out)
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
static int latest_round_of(const struct fo *f, const struct inst *in, const char *uuid,
                           size_t *idx)
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
	out->phase = in->done ? FO_PH_DONE
	             : in->fenced && in->rounds[0].chosen ? FO_PH_FENCED
	             : in->rounds[0].chosen              ? FO_PH_CHOSEN
	                                                 : FO_PH_DETECTED;
	if (in->rounds[0].chosen)
		cpy(out->coordinator, sizeof(out->coordinator), in->rounds[0].chosen_ballot.proposer);
	out->detected_at = in->detected_at;
	out->chosen_at = in->rounds[0].chosen_at;
	out->fenced_at = in->fenced_at;
	cpy(out->fence_how, sizeof(out->fence_how), in->fence_how);
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

uint64_t fo_journal_version(const struct fo *f) { return f ? f->journal_version : 0; }

void fo_journal_set_durable(struct fo *f, bool durable)
{
	if (f)
		f->journal_durable = durable;
}

static bool journal_name_ok(const char *s, size_t n) { return mv_name_span_ok(s, n, FO_NAME_MAX - 1); }

static int mrec_name_order(const void *a, const void *b)
{
	const struct mrec *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static const char JOURNAL_HEADER[] =
	"# meshvisor failover journal, written by the agent: do not edit.\n"
	"# \"failed-over NAME INCARNATION\": this agent took part in failing NAME\n"
	"# over at INCARNATION, and will not acknowledge NAME as alive until NAME\n"
	"# reports itself fenced through it, restarts included.\n";

int fo_journal_encode(const struct fo *f, char **out, size_t *len)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n_m; i++)
		n += f->m[i].inst_max > 0;
	const struct mrec **list = calloc(n ? n : 1, sizeof(*list));
	/* "failed-over " + name + ' ' + 20 digits + '\n' per entry */
	size_t cap = sizeof(JOURNAL_HEADER) + n * (12 + FO_NAME_MAX + 22) + 1;
	char *buf = malloc(cap);
	if (!list || !buf) {
		free(list);
		free(buf);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < f->n_m; i++)
		if (f->m[i].inst_max > 0 && journal_name_ok(f->m[i].name, strlen(f->m[i].name)))
			list[k++] = &f->m[i];
	qsort(list, k, sizeof(*list), mrec_name_order);
	size_t used = (size_t)snprintf(buf, cap, "%s", JOURNAL_HEADER);
	for (size_t i = 0; i < k; i++)
		used += (size_t)snprintf(buf + used, cap - used, "failed-over %s %" PRIu64 "\n",
		                         list[i]->name, list[i]->inst_max);
	free(list);
	*out = buf;
	*len = used;
	return 0;
}

struct journal_entry {
	char name[FO_NAME_MAX];
	uint64_t inc;
};

/* One non-comment line: "failed-over NAME INCARNATION". */
static const char *journal_parse_line(const char *s, size_t n, struct journal_entry *e)
{
	static const char kw[] = "failed-over ";
	if (n < sizeof(kw) - 1 || memcmp(s, kw, sizeof(kw) - 1) != 0)
		return "expected \"failed-over NAME INCARNATION\"";
	s += sizeof(kw) - 1;
	n -= sizeof(kw) - 1;
	const char *sp = memchr(s, ' ', n);
	if (!sp)
		return "expected a name and an incarnation separated by one space";
	size_t nl = (size_t)(sp - s);
	if (!journal_name_ok(s, nl))
		return "the name must be 1 to 63 characters of A-Z a-z 0-9 . _ -";
	memcpy(e->name, s, nl);
	e->name[nl] = '\0';
	const char *d = sp + 1;
	size_t dl = n - nl - 1;
	if (dl == 0 || dl > 20 || (d[0] == '0'))
		return "the incarnation must be a decimal from 1 to 18446744073709551615 "
		       "without leading zeros";
	uint64_t v = 0;
	for (size_t i = 0; i < dl; i++) {
		if (d[i] < '0' || d[i] > '9')
			return "the incarnation must be decimal digits only";
		uint64_t dig = (uint64_t)(d[i] - '0');
		if (v > (UINT64_MAX - dig) / 10)
			return "the incarnation is larger than 18446744073709551615";
		v = v * 10 + dig;
	}
	e->inc = v;
	return NULL;
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
	struct journal_entry *ents = NULL;
	size_t n = 0, cap = 0, line = 0;
	size_t pos = 0;
	while (pos < len) {
		line++;
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - s) : len - pos;
		pos += ll + (nl ? 1 : 0);
		if (memchr(s, '\0', ll)) {
			snprintf(err, errlen, "line %zu: contains a NUL byte", line);
			free(ents);
			return -EINVAL;
		}
		if (ll == 0 || s[0] == '#')
			continue;
		if (n >= FO_JOURNAL_MAX_ENTRIES) {
			snprintf(err, errlen, "line %zu: more than %u entries", line,
			         FO_JOURNAL_MAX_ENTRIES);
			free(ents);
			return -EINVAL;
		}
		struct journal_entry *g = grow(ents, &cap, n + 1, sizeof(*ents));
		if (!g) {
			free(ents);
			return -ENOMEM;
		}
		ents = g;
		const char *why = journal_parse_line(s, ll, &ents[n]);
		if (why) {
			snprintf(err, errlen, "line %zu: %s: \"%.*s\"", line, why, (int)(ll > 80 ? 80 : ll),
			         s);
			free(ents);
			return -EINVAL;
		}
		n++;
	}
	/* Apply only once everything parsed. Members get records (not votes:
	 * the voting set still comes from fo_member). */
	for (size_t i = 0; i < n; i++) {
		if (is_self(f, ents[i].name))
			continue; /* nobody fails itself over; a renamed host's journal */
		struct mrec *r = member_add(f, ents[i].name);
		if (!r) {
			free(ents);
			return -ENOMEM;
		}
		raise_inst_max(f, r, ents[i].inc);
		if (ents[i].inc > r->restored_max)
			r->restored_max = ents[i].inc;
	}
	free(ents);
	return (int)n;
}
