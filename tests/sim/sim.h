/*
 * sim.h — a deterministic simulator for the membership core (swim.h).
 *
 * Runs N swim cores in one process on the simulated world of sim_net.h (a
 * virtual clock in milliseconds, a fake network, one PRNG), in the style of
 * Tarantool's fakesys + swim_test_utils:
 *
 *	struct sim *s = sim_new(5, NULL, 0);   // prints "sim seed=..."
 *	sim_join_all(s, 0);                    // everyone joins through n0
 *	assert(sim_run_until(s, sim_pred_one_view, NULL, 10000) >= 0);
 *	sim_crash(s, 3);
 *	int64_t t = sim_run_until_all_see(s, 3, SWIM_DEAD, 30000);
 *	sim_free(s);
 *
 * Nodes are numbered 0..n-1, named "n<i>" and start at address
 * "10.<a>.<b>.<c>:7946". Every source of randomness (loss, jitter, the
 * cores' own seeds) is drawn from the world's PRNG seeded by `seed`,
 * or by the environment variable MV_SIM_SEED when it is set, so a printed
 * seed replays a run exactly. MV_SIM_VERBOSE=1 logs every member event, =2
 * every message too.
 *
 * Ownership: struct sim owns the cores, the queued packets (deep copies of
 * what the cores sent) and the statistics; sim_free() releases them all.
 * Pointers returned by query helpers (names, addresses) are valid until the
 * next sim_ call that runs the clock, restarts or frees.
 *
 * Memory: every core shares one string table (swim_config.strtab; the sim
 * creates it unless `cfg` brings one, which must then outlive sim_free()),
 * so a name or address is stored once, not once per core that knows it.
 */
#ifndef MESHVISOR_SIM_H
#define MESHVISOR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor/swim.h"

struct sim;

/* Per-target counters of what every observer reported about it. */
struct sim_member_stats {
	uint32_t suspected;       /* SWIM_EV_MEMBER_SUSPECT events about it, all observers */
	uint32_t dead;            /* SWIM_EV_MEMBER_DEAD events about it */
	uint32_t left;            /* SWIM_EV_MEMBER_LEFT events about it */
	uint32_t refuted;         /* SWIM_EV_SELF_REFUTED by the node itself */
	int64_t first_suspect_at; /* virtual ms, -1 if never */
	int64_t first_dead_at;
	uint32_t max_local_health; /* highest awareness score this node reported */
};

/* Per-node traffic counters (sent by the node). */
struct sim_traffic {
	uint64_t msgs;
	uint64_t bytes; /* frame header + exact protobuf size of the Envelope */
	uint64_t msgs_by_type[6];
	uint64_t pp_digests; /* PUSH_PULLs carrying a digest */
	uint64_t pp_full;    /* PUSH_PULLs carrying a whole table (a join, or legacy) */
};

/* Cross-cutting counters; a non-zero anomaly count is a core or sim bug. */
struct sim_counters {
	uint64_t sent, delivered, dropped_loss, dropped_block, dropped_down, dropped_unroutable,
	    queued_paused;
	uint64_t bad_from;    /* a core sent with from != its own name */
	uint64_t timer_spins; /* 3 handle_timer calls in one instant left it due */
	uint64_t timer_redue; /* handle_timer left a deadline <= now (run again) */
	uint64_t rejected;    /* swim_handle_message returned an error */
	uint64_t refused;     /* sends to a killed node's live host (refused) */
};

/* `cfg` is the template for every core (name, addr and seed are set by the
 * sim); NULL means swim_config_default(). seed 0 picks one from the time.
 * Cores are created at time 0 but do not join: call sim_join_all(). */
struct sim *sim_new(int n, const struct swim_config *cfg, uint64_t seed);
void sim_free(struct sim *s);
uint64_t sim_seed(const struct sim *s);
int sim_size(const struct sim *s);
uint64_t sim_now(const struct sim *s);
/* The core of node i, NULL while it is down. For read-only queries. */
struct swim *sim_core(struct sim *s, int i);
const char *sim_name(const struct sim *s, int i);
const char *sim_addr(const struct sim *s, int i);
int sim_index(const struct sim *s, const char *name); /* -1 if unknown */
/* A uniform random number from the simulation's PRNG (for scenarios). */
uint64_t sim_rand(struct sim *s);

/* Membership actions. sim_join_all() makes every node except `via` join
 * through node `via`, each at a random moment within `spread_ms`. */
void sim_join(struct sim *s, int i, int via);
void sim_join_all(struct sim *s, int via, uint32_t spread_ms);
/* A cluster started at once: every node (seeds too) joins through the
 * first n_seeds nodes (at most 8) at a random moment within spread_ms. */
void sim_start_all(struct sim *s, int n_seeds, uint32_t spread_ms);

/* Clock. run_for advances exactly ms. run_until checks pred (after every
 * instant at which a member table, an event count or a node's liveness
 * changed: pred must depend on nothing else) and returns the ms elapsed
 * since the call when it first holds, or -1 if timeout_ms passed (the clock then
 * stands at call time + timeout_ms). */
typedef bool (*sim_pred_f)(struct sim *s, void *arg);
void sim_run_for(struct sim *s, uint64_t ms);
int64_t sim_run_until(struct sim *s, sim_pred_f pred, void *arg, uint64_t timeout_ms);

/* Network. Defaults: no loss, delay 1 ms + uniform jitter 0..1 ms.
 * Links are directed (a -> b); -1 for a or b means "every node". */
void sim_set_loss(struct sim *s, int a, int b, double p);
void sim_set_delay(struct sim *s, int a, int b, uint32_t ms, uint32_t jitter_ms);
void sim_block(struct sim *s, int a, int b); /* one-way: a's messages never reach b */
void sim_unblock(struct sim *s, int a, int b);
/* group[i] is node i's side; messages between different sides are lost.
 * sim_heal() removes the partition and every block (loss and delay stay). */
void sim_partition(struct sim *s, const int *group);
void sim_heal(struct sim *s);

/* Faults. crash: the node drops everything and its core is freed.
 * restart: a brand-new core with the same name (incarnation 0) at new_addr
 * (NULL: its previous address) that joins through node `via`.
 * pause/resume: like SIGSTOP/SIGCONT — no timers, incoming messages queue
 * and are all handed over on resume (timers first, as libuv does).
 * slow: every incoming message is processed, and every outgoing message
 * leaves, min_ms..max_ms late (an overloaded host); 0,0 clears it.
 * leave: graceful leave; the node stops once swim_leave_done() or after
 * `leave_timeout_ms` (default 5000). */
void sim_crash(struct sim *s, int i);
/* kill -9 of the agent on a host that stays up: like crash, but sends to
 * it are refused (the sender's core gets swim_peer_refused). */
void sim_kill(struct sim *s, int i);
void sim_restart(struct sim *s, int i, const char *new_addr, int via);
void sim_pause(struct sim *s, int i);
void sim_resume(struct sim *s, int i);
void sim_set_slow(struct sim *s, int i, uint32_t min_ms, uint32_t max_ms);
void sim_leave(struct sim *s, int i);
bool sim_is_up(const struct sim *s, int i);   /* not crashed / stopped */
bool sim_is_live(const struct sim *s, int i); /* up and not paused */

/* Queries. state_of: member `target` as seen by `observer`, -1 if unknown. */
int sim_state_of(struct sim *s, int observer, int target);
bool sim_member_of(struct sim *s, int observer, int target, struct swim_member_info *out);
/* Every live node other than target sees target in `state` (and, when addr
 * is not NULL, at addr). */
bool sim_all_see(struct sim *s, int target, enum swim_state state, const char *addr);
/* Every live node knows the same members with the same state, incarnation
 * and address. */
bool sim_one_view(struct sim *s);
/* sim_one_view() and every live node sees every live node ALIVE. */
bool sim_all_alive(struct sim *s);
int64_t sim_run_until_all_see(struct sim *s, int target, enum swim_state state,
                              uint64_t timeout_ms);
/* Predicates for sim_run_until (arg unused). */
bool sim_pred_one_view(struct sim *s, void *arg);
bool sim_pred_all_alive(struct sim *s, void *arg);

/* Statistics. */
const struct sim_member_stats *sim_stats(const struct sim *s, int i);
const struct sim_traffic *sim_traffic(const struct sim *s, int i);
const struct sim_counters *sim_counters(struct sim *s);
void sim_stats_reset(struct sim *s); /* member stats and traffic, not counters */
/* Sum of member_stats.dead over every node (false-death counting). */
uint64_t sim_total_dead(const struct sim *s);
uint64_t sim_total_suspected(const struct sim *s);

/* Optional hook called for every event a core emits (observer index). */
typedef void (*sim_event_f)(struct sim *s, int observer, const struct swim_event *ev, void *arg);
void sim_set_event_cb(struct sim *s, sim_event_f cb, void *arg);

/* Lifeguard suspicion bounds the core should use for a cluster of n, from
 * cfg (memberlist rule: min = mult·log10(max(n,1))·interval, max = max_mult·min). */
uint64_t sim_suspicion_min_ms(const struct swim_config *cfg, int n);
uint64_t sim_suspicion_max_ms(const struct swim_config *cfg, int n);

/* Exact bytes m takes on the wire: 4-byte frame header + the protobuf size
 * of Envelope{version=1, from, swim=SwimMessage}. */
size_t sim_wire_size(const struct swim_msg *m);

/* Resident set size of this process in KiB (current, peak). */
void sim_rss_kib(long *rss, long *peak);

#endif
