/*
 * fo_driver.c — the one glue between the failover core and its inputs (see
 * fo_driver.h). It exists so that the daemon and the simulator cannot
 * drift: before it, each carried its own copy, and they disagreed (a member
 * restarted at a new address was ALIVE to the daemon and nothing to the
 * simulator). Every rule that decides what the core is told lives here.
 */
#include "fo_driver.h"
#include "envelope.h"
#include "state_codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fo_driver_member_event(struct fo *f, const char *self, const struct swim_event *e,
                            uint64_t now)
{
	const char *name = e->name ? e->name : "";
	if (e->type == SWIM_EV_SELF_REFUTED) {
		fo_set_incarnation(f, e->incarnation);
		return;
	}
	if (!name[0] || (self && strcmp(name, self) == 0))
		return;
	enum fo_member_state st;
	switch (e->type) {
	case SWIM_EV_MEMBER_JOINED:
	case SWIM_EV_MEMBER_ALIVE:
	case SWIM_EV_MEMBER_ADDR_CHANGED:
		st = FO_ALIVE;
		break;
	case SWIM_EV_MEMBER_SUSPECT:
		st = FO_SUSPECT;
		break;
	case SWIM_EV_MEMBER_DEAD:
		st = FO_DEAD;
		break;
	case SWIM_EV_MEMBER_LEFT:
		st = FO_LEFT;
		break;
	default:
		return;
	}
	fo_member(f, name, st, e->incarnation, now);
}

void fo_driver_new_incarnation(struct fo *f, struct swim *sw, const struct fo_event *e,
                               uint64_t now)
{
	if (swim_raise_incarnation(sw, e->inst.incarnation, e->text, now) == 0)
		fo_set_incarnation(f, swim_incarnation(sw));
}

bool fo_driver_vm_active(const Mv__VmInfo *vm)
{
	return vm->state == MV__VM_STATE__VM_RUNNING || vm->state == MV__VM_STATE__VM_PAUSED;
}

bool fo_driver_vm_protected(const Mv__VmInfo *vm)
{
	return vm->ha && vm->desired != MV__VM_DESIRED__VM_DESIRED_STOPPED;
}

/* Definitely not running: shut off or crashed. (Anything else — starting,
 * shutting down, suspended — is not a VM to restart elsewhere.) */
static bool vm_stopped(const Mv__VmInfo *vm)
{
	return vm->state == MV__VM_STATE__VM_SHUTOFF || vm->state == MV__VM_STATE__VM_CRASHED;
}

int fo_driver_view_build(struct fo_driver_view *v, const Mv__NodeState *const *states, size_t n,
                         bool (*up)(void *arg, const char *name), void *arg)
{
	memset(v, 0, sizeof(*v));
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (states[i] != NULL)
			total += states[i]->n_vms;
	v->hosts = calloc(n ? n : 1, sizeof(*v->hosts));
	v->vms = calloc(total ? total : 1, sizeof(*v->vms));
	if (v->hosts == NULL || v->vms == NULL) {
		fo_driver_view_free(v);
		return -ENOMEM;
	}
	size_t nv = 0;
	for (size_t i = 0; i < n; i++) {
		const Mv__NodeState *s = states[i];
		if (s == NULL || s->name == NULL || s->name[0] == '\0')
			continue;
		struct fo_host *h = &v->hosts[v->n_hosts++];
		h->cap = state_codec_placement_host(s, up ? up(arg, s->name) : true);
		h->witness = s->witness;
		h->quorate = s->quorate;
		h->inventory_unknown = s->inventory_unknown;
		h->incarnation = s->incarnation;
		h->legacy = s->wire_rev < MV_WIRE_REV_CHOSEN_READ;
		h->vms = &v->vms[nv];
		for (size_t j = 0; j < s->n_vms; j++) {
			const Mv__VmInfo *vm = s->vms[j];
			if (vm == NULL || !fo_driver_vm_protected(vm))
				continue;
			bool active = fo_driver_vm_active(vm);
			if (!active && !vm_stopped(vm))
				active = true; /* in between: not owed */
			if (!active && (s->inventory_stale || vm->restarting))
				active = true; /* libvirt away, or the host restarts it itself */
			v->vms[nv++] = (struct fo_vm){
			    .uuid = vm->uuid,
			    .name = vm->name,
			    .priority = vm->priority,
			    .vcpus = vm->vcpus,
			    .memory_kib = vm->memory_kib,
			    .epoch = vm->owner_epoch,
			    .group = vm->ha_group,
			    .running = active,
			};
			h->n_vms++;
		}
	}
	return 0;
}

void fo_driver_view_free(struct fo_driver_view *v)
{
	free(v->hosts);
	free(v->vms);
	memset(v, 0, sizeof(*v));
}

size_t fo_driver_settle_moves(struct fo *f, const char *self,
                              bool (*at_start)(void *arg, const char *id), uint64_t now,
                              bool (*copy)(void *arg, const char *uuid, struct fo_driver_copy *out),
                              bool (*incoming)(void *arg, const char *id), void *arg)
{
	struct fo_move um[FO_MOVES_MAX];
	size_t n = fo_moves_unsettled(f, um, FO_MOVES_MAX);
	for (size_t k = 0; k < n && k < FO_MOVES_MAX; k++) {
		struct fo_driver_copy c = {0};
		bool found = copy(arg, um[k].uuid, &c);
		bool here = found && c.running;
		if (strcmp(um[k].target, self) == 0) {
			if (here && c.epoch >= um[k].epoch)
				fo_move_outcome(f, um[k].id, um[k].uuid, um[k].source, true,
				                c.epoch, now);
			else if (!incoming(arg, um[k].id) && !(found && c.paused))
				fo_move_outcome(f, um[k].id, um[k].uuid, um[k].source, false, 0,
				                now);
		} else if (here && at_start != NULL && at_start(arg, um[k].id)) {
			fo_move_end(f, um[k].id, false, now);
		}
	}
	return n;
}

/*
 * The force-leave guard. Guarantees: a node that does not hear a majority
 * of its voting set removes no voter, unless the operator states that the
 * hosts it does not hear are gone (`--majority-is-gone`, logged).
 *
 * Why this is the condition. Every voter counts majorities over the voting
 * set V it knows (or a larger one, never a smaller: fo.c, effective
 * voters), and two majorities of one set intersect, so at most one side of
 * a partition is quorate. A force-leave shrinks the count of the remover
 * and of the voters it tells — only hosts it hears, its own side — while
 * the other side keeps counting V. So a side S (the hosts that hear each
 * other) that is a minority of V (|S| < maj(V)) becomes quorate exactly
 * when its removals shrink V to V' with |S| >= maj(V'); if the hosts it
 * removed are alive, the other side, V \ S, is a majority of V by itself
 * (or becomes one by removals of its own: two halves of an even split, each
 * removing one host of the other, are both quorate) and both sides decide
 * the same failovers differently. Refusing every removal on a node that
 * hears fewer than maj(V) voters closes this: such a node is on a minority
 * side (or half of an even split), its set stays V, and it stays
 * non-quorate. A node that hears a majority of V removes safely: the
 * hosts it does not hear are fewer than maj(V) and keep counting V (the
 * removed hosts' heartbeats are refused by every voter that learned the
 * removal, which the remover tells at once every voter it hears: a
 * majority of V), so they cannot become quorate; one removal leaves
 * quorums of V' and V intersecting (maj(n - 1) + maj(n) > n), and the next
 * removal is checked again against the set as it is then. The guard is
 * checked per request, against the acknowledgements of the last quorate
 * window (fo_acknowledged), so a node cut off a moment ago may still pass
 * it once; that one removal cannot make its side quorate against a side
 * that counts V (the intersection above), and the next one is refused.
 * What it cannot see: whether a host removed from a majority side is gone
 * for good (one that comes back is a new member that must prove itself,
 * fo.c): the runbook's rule, force-leave only hosts that will not come
 * back, stands.
 * A voting set of two (no witness) that lost one host never passes: one
 * host cannot tell its peer's death from a cut link.
 */
int fo_driver_force_leave_guard(const char *self, const char *node, size_t heard, size_t voters,
                                size_t majority, bool majority_is_gone, char *err, size_t errlen)
{
	if (majority_is_gone || heard >= majority)
		return 0;
	snprintf(err, errlen,
	         "%s hears %zu of %zu voters (itself included), not a majority (%zu): it may be on "
	         "the minority side of a partition, and if %s or others it does not hear are "
	         "alive, both sides would decide failovers (a VM on two hosts). Check their power "
	         "or consoles, or force-leave from a host that hears a majority; if they are off "
	         "for good, repeat with --majority-is-gone",
	         self, heard, voters, majority, node);
	return -EBUSY;
}
