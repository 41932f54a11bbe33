/*
 * nodestate.h — the daemon's side of node-state gossip (issue 3).
 *
 * It owns the node-state core (nstate.h) inside the agent: builds this
 * host's mv.NodeState from libvirt and the config, publishes it when it
 * changes (urgent when capacity, inventory, health or the draining flag
 * changed or free memory moved by 5% of the total; the load only once it
 * moved past the thresholds of section "state", at most every
 * NODESTATE_LAZY_MS; see nodestate_policy), carries the core's
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

#include "config.h"
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

/* What was last published, as the publication policy needs it. */
struct nodestate_last {
	bool any;          /* something was published */
	uint64_t at_ms;    /* when (loop clock) */
	double load1;      /* its load average */
	uint64_t free_kib; /* its free memory */
};
/* What a freshly built record is worth. */
enum nodestate_publish {
	NODESTATE_KEEP,   /* nothing worth the cluster's bandwidth */
	NODESTATE_LAZY,   /* publish; anti-entropy carries it */
	NODESTATE_URGENT, /* publish and push at once */
};
/* The publication policy (pure): `sig_changed` — the significant form
 * (everything but load, free memory, timestamps) differs from the last
 * published; `full_changed` — anything at all does. Urgent: the first
 * record, a significant change, or free memory past 5% of memory_kib from
 * the last published. Lazy: the load past o->state_load_step /
 * state_load_step_pct (nstate_threshold_crossed) and NODESTATE_LAZY_MS
 * since the last publication; or, with o->state_republish_s, any change
 * that old. Otherwise keep. */
enum nodestate_publish nodestate_policy(const struct agent_options *o,
                                        const struct nodestate_last *last, bool sig_changed,
                                        bool full_changed, double load1, uint64_t memory_kib,
                                        uint64_t free_kib, uint64_t now_ms);

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

/* The CA or CRL was reloaded: every signer's certificate is checked again
 * at its next record (a revoked node's records are refused from now on,
 * not once the cache would have expired). */
void nodestate_recheck_signers(struct agent *a);

size_t nodestate_count(const struct agent *a);
/* i-th record / the record of `name`, decoded; NULL if none or undecodable. */
Mv__NodeState *nodestate_unpack_at(const struct agent *a, size_t i);
Mv__NodeState *nodestate_unpack_name(const struct agent *a, const char *name);

#endif
