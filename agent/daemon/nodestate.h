/*
 * nodestate.h — the daemon's side of node-state gossip (issue 3).
 *
 * It owns the node-state core (nstate.h) inside the agent: builds this
 * host's mv.NodeState from libvirt and the config, publishes it when it
 * changes (urgent when capacity, inventory, health or the draining flag
 * moved; otherwise at most every NODESTATE_LAZY_MS), carries the core's
 * messages over the peer port, follows membership (alive peers gossip;
 * dead ones keep their record; reaped ones are forgotten) and hands RPC the
 * decoded records of every host.
 *
 * Ownership: the service's state (struct nodestate: the core, its timers,
 * the last record published) is private to nodestate.c; the agent holds
 * only a pointer to it (a->nodestate: set by nodestate_start, freed by
 * nodestate_free). Records returned by nodestate_unpack_* are protobuf-c
 * trees the caller frees with mv__node_state__free_unpacked(p, NULL).
 */
#ifndef MESHVISOR_NODESTATE_H
#define MESHVISOR_NODESTATE_H

#include <stdbool.h>
#include <stddef.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/swim.h"

struct agent;
struct nodestate;

/* What another service contributes to this host's record, and hears of its
 * changes: each service registers one when it starts, so node state never
 * calls into HA or migration by name. Every member may be NULL. */
struct nodestate_contributor {
	/* this host restarts the stopped HA VM itself (VmInfo.restarting) */
	bool (*vm_restarting)(struct agent *a, const char *uuid);
	/* adds its fields to the record being built (after the VMs) */
	void (*fill)(struct agent *a, Mv__NodeState *ns);
	/* this host's recent moves, newest first, at most cap; strings point
	 * into the contributor's own records */
	size_t (*list_migrations)(struct agent *a, Mv__MigrationInfo *out, size_t cap);
	/* sees every record built, before it is compared and published */
	void (*built)(struct agent *a, const Mv__NodeState *ns);
	/* a record changed: ours was published, or a peer's learned */
	void (*changed)(struct agent *a);
};
/* Registers c (kept by pointer: static storage). 0, or -ENOSPC. */
int nodestate_add_contributor(const struct nodestate_contributor *c);

int nodestate_start(struct agent *a, char *err, size_t errlen);
void nodestate_stop(struct agent *a);
/* After nodestate_stop: closes the module's timers (the caller runs the
 * loop until their close callbacks ran), then nodestate_free. */
void nodestate_close(struct agent *a);
/* Frees the service (a->nodestate becomes NULL); nothing without one. */
void nodestate_free(struct agent *a);
/* Rebuilds our record from libvirt; publishes it if it changed. */
void nodestate_refresh(struct agent *a);
/* Membership changed (called for every swim event). */
void nodestate_on_member_event(struct agent *a, const struct swim_event *e);
/* A peer frame whose body is `state` (identity already checked). */
void nodestate_handle_envelope(struct agent *a, const Mv__Envelope *env);

size_t nodestate_count(const struct agent *a);
/* i-th record / the record of `name`, decoded; NULL if none or undecodable. */
Mv__NodeState *nodestate_unpack_at(const struct agent *a, size_t i);
Mv__NodeState *nodestate_unpack_name(const struct agent *a, const char *name);

#endif
