/*
 * state_driver.c — the one mapping from membership events to the node-state
 * gossip core (see state_driver.h), shared by the daemon and the simulator
 * so that the simulator runs the glue that ships.
 */
#include "state_driver.h"

#include <string.h>

bool state_driver_member_event(struct nstate *ns, const char *self, const struct swim_event *e)
{
	if (ns == NULL || e->name == NULL || e->name[0] == '\0' ||
	    (self != NULL && strcmp(e->name, self) == 0))
		return false;
	switch (e->type) {
	case SWIM_EV_MEMBER_JOINED:
	case SWIM_EV_MEMBER_ALIVE:
	case SWIM_EV_MEMBER_ADDR_CHANGED:
		nstate_peer_up(ns, e->name, e->addr);
		return true;
	case SWIM_EV_MEMBER_DEAD:
	case SWIM_EV_MEMBER_LEFT:
		nstate_peer_down(ns, e->name);
		return true;
	case SWIM_EV_MEMBER_REAPED:
		nstate_forget(ns, e->name);
		return true;
	default:
		/* SUSPECT: keep gossiping with it until it is dead */
		return false;
	}
}
