/*
 * mig_driver.c — the one mapping from membership events to the migration
 * negotiation core (see mig_driver.h), shared by the daemon and the
 * simulator.
 */
#include "mig_driver.h"

#include <stddef.h>

bool mig_driver_member_event(struct mig *m, const struct swim_event *e, uint64_t now)
{
	if (m == NULL || e->name == NULL || e->name[0] == '\0')
		return false;
	if (e->type != SWIM_EV_MEMBER_DEAD && e->type != SWIM_EV_MEMBER_LEFT &&
	    e->type != SWIM_EV_MEMBER_REAPED)
		return false;
	mig_peer_down(m, e->name, now);
	return true;
}
