/*
 * membership.h — the daemon's side of the membership core
 * (agent/core/swim.c): carries its messages over the peer port, runs its
 * timer, logs each of its events with the cause, keeps this node's
 * incarnation in data_dir across restarts, and hands every member event to
 * the services that subscribed (node state, migration, HA), in the order
 * they subscribed.
 */
#ifndef MESHVISOR_MEMBERSHIP_H
#define MESHVISOR_MEMBERSHIP_H

#include "meshvisor/swim.h"

struct agent;

typedef void (*membership_listener_fn)(struct agent *a, const struct swim_event *e);
/* Subscribes fn to every member event. 0, or -ENOSPC. */
int membership_add_listener(membership_listener_fn fn);

/* Creates the SWIM core at one incarnation above the one saved in
 * data_dir (and saves that). */
int membership_start(struct agent *a, char *err, size_t errlen);
/* Runs the core's pending output and events through the network, the log
 * and the listeners, then re-arms its timer. Call after every swim_ input. */
void membership_pump(struct agent *a);
/* Stops the timer (the agent is stopping), then closes it once no one may
 * arm it again (the caller runs the loop until its close callback ran). */
void membership_stop(struct agent *a);
void membership_close(struct agent *a);
/* Saves the current incarnation (at exit). */
void membership_save_incarnation(struct agent *a);

#endif
