/*
 * sim_net.h — the simulated world every simulator runs on: one virtual
 * clock, one event queue, one PRNG and one fake network of N endpoints.
 *
 * The clock is a count of virtual milliseconds that moves only when the
 * queue says so: simnet_step() jumps to the earliest event and runs every
 * event due at that instant, in the order they were scheduled (the queue
 * is keyed by (time, sequence number stamped at push)). Nothing depends on
 * the machine's time, so a run depends on nothing but its seed.
 *
 * An event is a small record (kind, node, gen, arg, p) handed to the
 * owner's dispatch function. Kinds from SIMNET_EV_USER up are the owner's
 * (timers, crashes, jobs...); SIMNET_EV_DELIVER is a message the network
 * carries, p being the message (opaque to the network: the owner's deep
 * copy, a frame of bytes...), node the receiver and arg the sender.
 *
 * A link (a -> b, directed) has a delay, a jitter, a loss probability and
 * a duplication probability (the defaults: 1 ms, 1 ms, 0, 0, changed for
 * every link or per link), and can be blocked one way; partition groups
 * cut every link between different groups; simnet_heal() removes the
 * partition and every block. What happens to a message is decided when
 * it is sent; the PRNG draws, in this order, are:
 *
 *	src == dst:           none; it arrives now (the loopback).
 *	blocked/partitioned:  none; dropped (counted dropped_block).
 *	duplication > 0:      one unit draw; below dup -> two copies.
 *	then for each copy:   loss > 0: one unit draw; below loss -> lost;
 *	                      else one delay draw, below(jitter + 1), and if
 *	                      the sender is slow, one range(min, max) draw.
 *	arrival = now + delay + that draw (+ the sender's slowness).
 *
 * Jitter therefore reorders messages. At arrival a message is dropped
 * (dropped_down) if its receiver is down or went down and up again since
 * it was sent (a connection to a dead process is gone: simnet_down /
 * simnet_up bump the endpoint's epoch); a slow receiver holds it once
 * more, range(min, max) ms (one draw). Endpoints that are never taken
 * down receive everything that survived the send.
 *
 * PRNG: xoshiro256** seeded with four splitmix64 steps from the seed.
 * unit = (next >> 11) * 2^-53; below(n) = Lemire's multiply-shift of next
 * into [0, n), one draw (none when n == 0: 0); range(lo, hi) = lo +
 * below(hi - lo + 1), no draw when hi <= lo.
 *
 * Ownership: the world owns the queue and every message in flight. A
 * delivered message passes to the dispatch function (it frees it); one the
 * network drops, and every payload still queued at simnet_free(), goes to
 * ops.free_payload. Duplication needs ops.clone_msg.
 */
#ifndef MESHVISOR_SIM_NET_H
#define MESHVISOR_SIM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { SIMNET_EV_DELIVER = 0, SIMNET_EV_USER = 1 };

struct simnet_event {
	uint64_t at, seq;
	int kind;     /* SIMNET_EV_DELIVER or an owner's kind >= SIMNET_EV_USER */
	int node;     /* DELIVER: the receiver */
	uint32_t gen; /* DELIVER: the receiver's epoch at send; else the owner's */
	int arg;      /* DELIVER: the sender; else the owner's */
	bool slowed;  /* DELIVER: the receiver's slowness is applied */
	void *p;      /* DELIVER: the message; else the owner's */
};

struct simnet_ops {
	/* Runs one event; a DELIVER has passed the arrival checks. */
	void (*dispatch)(void *owner, struct simnet_event *ev);
	/* Frees a payload the world drops (NULL: free()). */
	void (*free_payload)(void *owner, int kind, void *p);
	/* A copy of a message, for duplication (NULL: no duplication). */
	void *(*clone_msg)(void *owner, const void *p);
};

/* What the network counted (a message's copies count once each). */
struct simnet_counters {
	uint64_t sent, delivered, duplicated, dropped_block, dropped_loss, dropped_down;
};

enum simnet_fate { SIMNET_SENT, SIMNET_BLOCKED, SIMNET_LOST };

struct simnet;

/* The seed a simulator runs with: MV_SIM_SEED when set (it overrides the
 * seed of every world, to replay a printed one), else `seed`, else (0)
 * one from the clock, 63 bits so that it pastes back. */
uint64_t simnet_pick_seed(uint64_t seed);

/* n >= 0 endpoints, numbered 0..n-1, all up. */
struct simnet *simnet_new(int n, uint64_t seed, const struct simnet_ops *ops, void *owner);
void simnet_free(struct simnet *net);
int simnet_size(const struct simnet *net);

/* PRNG (see above for the draws). */
uint64_t simnet_rand(struct simnet *net);
double simnet_unit(struct simnet *net);
uint32_t simnet_below(struct simnet *net, uint32_t n);
uint32_t simnet_range(struct simnet *net, uint32_t lo, uint32_t hi);

/* Clock and queue. at(): schedule an event (ev->at set by the caller, seq
 * stamped here). step(): run every event due at the next instant (the
 * queue must not be empty); step_one(): run only the earliest event (the
 * clock moves to it), for owners that look at the world after every
 * event (a DELIVER still passes the arrival checks first). run_for:
 * advance exactly ms. run_until: after every instant, check pred;
 * returns the ms elapsed when it first holds (0 if it held at the call),
 * or -1 with the clock at call + timeout_ms. next_at: the earliest
 * event's time, UINT64_MAX if none; pop: take it without running it (for
 * owners with their own loop: they move the clock with advance_to, which
 * never goes back). */
uint64_t simnet_now(const struct simnet *net);
void simnet_at(struct simnet *net, struct simnet_event ev);
void simnet_step(struct simnet *net);
void simnet_step_one(struct simnet *net);
void simnet_run_for(struct simnet *net, uint64_t ms);
typedef bool (*simnet_pred_f)(void *arg);
int64_t simnet_run_until(struct simnet *net, simnet_pred_f pred, void *arg, uint64_t timeout_ms);
uint64_t simnet_next_at(const struct simnet *net);
size_t simnet_pending(const struct simnet *net);
struct simnet_event simnet_pop(struct simnet *net);
void simnet_advance_to(struct simnet *net, uint64_t t);

/* Network settings. a or b = -1: every endpoint on that side; both -1
 * sets the default and clears the per-link overrides of that setting. */
void simnet_set_loss(struct simnet *net, int a, int b, double p);
void simnet_set_delay(struct simnet *net, int a, int b, uint32_t ms, uint32_t jitter_ms);
void simnet_set_dup(struct simnet *net, double p);   /* every link */
void simnet_block(struct simnet *net, int a, int b); /* a's messages never reach b */
void simnet_unblock(struct simnet *net, int a, int b);
void simnet_block_both(struct simnet *net, int a, int b);
void simnet_unblock_both(struct simnet *net, int a, int b);
/* group[i] is endpoint i's side; the partition holds until heal(), which
 * also lifts every block. */
void simnet_partition(struct simnet *net, const int *group);
void simnet_heal(struct simnet *net);
bool simnet_partitioned(const struct simnet *net);
int simnet_group(const struct simnet *net, int i);
/* Not blocked and not cut by the partition (a == b: always open). */
bool simnet_link_open(const struct simnet *net, int a, int b);

/* Endpoints. down/up bump the epoch (messages in flight to it are lost). */
void simnet_down(struct simnet *net, int i);
void simnet_up(struct simnet *net, int i);
bool simnet_is_up(const struct simnet *net, int i);
uint32_t simnet_epoch(const struct simnet *net, int i);
/* Everything i sends leaves, and everything it receives is taken in,
 * min..max ms late (an overloaded host); 0, 0 clears it. */
void simnet_set_slow(struct simnet *net, int i, uint32_t min_ms, uint32_t max_ms);
bool simnet_is_slow(const struct simnet *net, int i);

/* Sends msg (ownership passes to the world) from src to dst; returns its
 * fate (SIMNET_SENT when at least one copy is on its way). */
enum simnet_fate simnet_send(struct simnet *net, int src, int dst, void *msg);

const struct simnet_counters *simnet_counters(const struct simnet *net);

#endif
