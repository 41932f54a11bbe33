/*
 * sim_state.h — a deterministic simulator for the node-state core
 * (meshvisor/nstate.h), a sibling of sim.h built on the same ideas.
 *
 * Runs N nstate cores in one process on the simulated world of sim_net.h
 * (its virtual clock in ms, and its fake network with loss, delay + jitter,
 * which reorders, and partitions):
 *
 *	struct ssim *s = ssim_new(100, NULL, 0);   // prints "sim seed=..."
 *	ssim_set_loss(s, 0.01);
 *	ssim_publish_all(s);                       // every host's first record
 *	assert(ssim_run_until(s, ssim_pred_converged, NULL, 30000) >= 0);
 *	ssim_change(s, 7, true);                   // host 7 changes, urgent
 *	int64_t t = ssim_run_until_all_have(s, 7, 60000);
 *	ssim_free(s);
 *
 * Membership is modelled, not run: every node starts with every other as
 * a live peer, and what SWIM would report is delivered to every live node
 * `member_delay_ms` later (default 2000, about SWIM's detection time at
 * N = 100): a crash becomes nstate_peer_down, a restart nstate_peer_up,
 * and a partition (when membership follows it, the default) peer_down of
 * the other side, and peer_up again at heal.
 *
 * Nodes are named "n<i>" at "10.0.<i/256>.<i%256>:7950". Every source of
 * randomness (loss, jitter, the cores' seeds) comes from one PRNG seeded by
 * `seed`, or by MV_SIM_SEED when set; a printed seed replays a run.
 * MV_SIM_VERBOSE=1 logs every record event.
 *
 * Records: host i publishes (incarnation, version) with `record_bytes`
 * bytes of data (default 800, a host with about ten VMs as a packed
 * mv.NodeState). Traffic is counted in exact wire bytes
 * (state_codec_frame_size: frame header + packed Envelope).
 *
 * Ownership: struct ssim owns the cores, the packets in flight (deep
 * copies) and the statistics; ssim_free() releases them.
 */
#ifndef MESHVISOR_SIM_STATE_H
#define MESHVISOR_SIM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshvisor/nstate.h"

struct ssim;

/* Per message type (enum nstate_msg_type: SYNC, DIGEST, DELTA, PUSH, TREE). */
#define SSIM_TYPES 5

struct ssim_traffic {
	uint64_t msgs;
	uint64_t bytes;
	uint64_t msgs_by_type[SSIM_TYPES];
	uint64_t bytes_by_type[SSIM_TYPES];
};

struct ssim_counters {
	uint64_t sent, delivered, dropped_loss, dropped_block, dropped_down, unroutable;
	uint64_t rejected; /* nstate_handle_message returned an error: a bug */
	uint64_t to_self;  /* a core addressed itself: a bug */
	uint64_t regress;  /* an event whose version is not above the last: a bug */
};

/* Spread of one change: published at `at`, every live node had it `spread`
 * ms later (-1 while some node lacks it). */
struct ssim_change {
	int host;
	uint64_t incarnation, version;
	uint64_t at;
	int64_t spread;
	uint32_t have; /* live nodes holding it or newer, the host included */
	bool urgent;
};

/* `tmpl`: template for every core's config (name and seed are set by the
 * sim); NULL = nstate_config_default(). seed 0 picks one from the clock. */
struct ssim *ssim_new(int n, const struct nstate_config *tmpl, uint64_t seed);
void ssim_free(struct ssim *s);
uint64_t ssim_seed(const struct ssim *s);
uint64_t ssim_now(const struct ssim *s);
int ssim_size(const struct ssim *s);
struct nstate *ssim_core(struct ssim *s, int i); /* NULL while down */
const char *ssim_name(const struct ssim *s, int i);
uint64_t ssim_rand(struct ssim *s);

/* Network (defaults: no loss, delay 1 ms + jitter 0..1 ms). */
void ssim_set_loss(struct ssim *s, double p);
void ssim_set_delay(struct ssim *s, uint32_t ms, uint32_t jitter_ms);
/* group[i] is node i's side; messages between sides are lost. When
 * membership follows (default), peers on the other side go down
 * member_delay_ms later, and come back up member_delay_ms after heal. */
void ssim_partition(struct ssim *s, const int *group);
void ssim_heal(struct ssim *s);
void ssim_set_member_delay(struct ssim *s, uint32_t ms, bool follows_partition);
void ssim_set_record_bytes(struct ssim *s, uint32_t bytes);

/* Records. publish_all: every live host publishes its first record (not
 * urgent: anti-entropy spreads them, as at cluster start). change: host i
 * publishes version + 1 and the change is tracked (ssim_changes). */
void ssim_publish_all(struct ssim *s);
const struct ssim_change *ssim_change(struct ssim *s, int i, bool urgent);
/* publish_all, then hand every live node every record directly: a cluster
 * that has been running a while, without simulating its start (benches). */
void ssim_prefill(struct ssim *s);
/* Faults. crash: the node is gone (its core freed). restart: a new core
 * at incarnation + 1 that publishes (incarnation + 1, 0) urgently, knows
 * every live node as a peer at once (it joined), and is announced to the
 * others member_delay_ms later. */
void ssim_crash(struct ssim *s, int i);
void ssim_restart(struct ssim *s, int i);
bool ssim_is_up(const struct ssim *s, int i);
uint64_t ssim_incarnation(const struct ssim *s, int i);
uint64_t ssim_version(const struct ssim *s, int i);

/* Clock, as sim.h: run_until returns the ms elapsed when pred first held
 * (checked after every instant), or -1 at timeout. */
typedef bool (*ssim_pred_f)(struct ssim *s, void *arg);
void ssim_run_for(struct ssim *s, uint64_t ms);
int64_t ssim_run_until(struct ssim *s, ssim_pred_f pred, void *arg, uint64_t timeout_ms);

/* Queries. has: observer holds target's record at (inc, ver) or newer.
 * all_have: every live node holds host i's current record. converged:
 * every live node holds every host's current record (dead hosts: their
 * last one) and all hashes are equal. */
bool ssim_has(struct ssim *s, int observer, int target, uint64_t inc, uint64_t ver);
bool ssim_all_have(struct ssim *s, int i);
bool ssim_converged(struct ssim *s);
bool ssim_pred_converged(struct ssim *s, void *arg);
int64_t ssim_run_until_all_have(struct ssim *s, int i, uint64_t timeout_ms);

/* Every tracked change so far (ssim_change, ssim_restart). */
size_t ssim_changes(const struct ssim *s, const struct ssim_change **out);
void ssim_changes_reset(struct ssim *s);

const struct ssim_traffic *ssim_traffic(const struct ssim *s, int i);
const struct ssim_counters *ssim_counters(struct ssim *s);
void ssim_traffic_reset(struct ssim *s);

/* Resident set size of this process in KiB (current, peak). */
void ssim_rss_kib(long *rss, long *peak);

#endif
