/*
 * membership.h — the daemon's side of the membership core
 * (agent/core/swim.c): carries its messages over the peer port, runs its
 * timer, logs each of its events with the cause, keeps this node's
 * incarnation in data_dir across restarts, and hands every member event to
 * the services that subscribed (node state, migration, HA), in the order
 * they subscribed. It also runs this node's graceful leave: peers are told
 * we leave, and the agent hears when they know it (or when
 * leave_timeout_ms passed without it).
 *
 * Ownership: the service's state (struct membership: the SWIM core, its
 * timer, the leave's timers and flags) is private to membership.c; the
 * agent holds only a pointer to it (a->membership: set by
 * membership_start, freed by membership_free). Other services reach the
 * core through membership_swim() to ask it about members; only this
 * module pops its outputs and arms its timer.
 */
#ifndef MESHVISOR_MEMBERSHIP_H
#define MESHVISOR_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>

#include "meshvisor/swim.h"

struct agent;
struct membership;

typedef void (*membership_listener_fn)(struct agent *a, const struct swim_event *e);
/* Subscribes fn to every member event. 0, or -ENOSPC. */
int membership_add_listener(membership_listener_fn fn);

/* Whether member `name` is known to sign no LEFTs (an agent older than
 * proofs of leaving, by its own signed node-state record): its LEFT
 * relayed without a proof is then taken as before (swim.h, alive_verify).
 * Set by the node-state service (which holds the records); unset: no. */
typedef bool (*membership_signs_no_left_fn)(const struct agent *a, const char *name,
                                            uint64_t left_incarnation);
void membership_set_signs_no_left(membership_signs_no_left_fn fn);

/* Creates the SWIM core at one incarnation above the one saved in
 * data_dir (and saves that). */
int membership_start(struct agent *a, char *err, size_t errlen);
/* The SWIM core, for queries and inputs (swim_member_find,
 * swim_handle_message, swim_join...; call membership_pump after an
 * input); NULL before membership_start. */
struct swim *membership_swim(const struct agent *a);
/* Runs the core's pending output and events through the network, the log
 * and the listeners, then re-arms its timer. Call after every swim_ input. */
void membership_pump(struct agent *a);
/* Nothing listens on the peer port of `name` (the network saw a refused
 * connect or an ICMP port unreachable): proof that its agent is down,
 * given to the core (swim_peer_refused), which suspects it at once and
 * asks others to confirm. */
void membership_peer_refused(struct agent *a, const char *name);
/* Stops the timer (the agent is stopping), then closes it once no one may
 * arm it again (the caller runs the loop until its close callback ran). */
void membership_stop(struct agent *a);
void membership_close(struct agent *a);
/* After membership_close and the close callbacks: frees the core and the
 * service (a->membership becomes NULL); nothing without one. */
void membership_free(struct agent *a);
/* Saves the current incarnation (at exit). */
void membership_save_incarnation(struct agent *a);

/* Graceful leave. membership_leave tells the cluster we leave (peers will
 * see us LEFT); on_left is called once: confirmed when the LEFT update has
 * been spread (swim_leave_done), or not when leave_timeout_ms passed
 * first. 0, or -EALREADY when a leave is already under way (nothing
 * changes). */
typedef void (*membership_left_fn)(struct agent *a, bool confirmed);
int membership_leave(struct agent *a, membership_left_fn on_left);
/* A leave was started. */
bool membership_leaving(const struct agent *a);
/* A leave was started and the cluster has been told (swim_leave_done). */
bool membership_left(const struct agent *a);
/* A `leave` RPC: recorded here; the agent starts the leave once the
 * request's answer has been sent. */
void membership_request_leave(struct agent *a);
bool membership_leave_requested(const struct agent *a);

#endif
