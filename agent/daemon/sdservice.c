/*
 * sdservice.c — readiness, status and the watchdog for systemd, and the
 * agent's once-a-second housekeeping; see sdservice.h.
 */
#include "sdservice.h"

#include "agent.h"
#include "ha.h"
#include "log.h"
#include "looplag.h"
#include "membership.h"
#include "sdnotify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sdservice *SD(struct agent *a)
{
	return &a->sd;
}

static void sd_send(struct agent *a, const char *state)
{
	int rc = mv_sd_notify(state);
	if (rc < 0) {
		static struct mv_ratelimit rl = {.interval_ms = 60000};
		if (mv_ratelimit_allow(&rl, uv_now(a->loop), NULL))
			MV_WARN("agent", "cannot notify systemd error=\"%s\"", strerror(-rc));
	}
}

static bool sd_joined(struct agent *a)
{
	uint32_t counts[4];
	swim_state_counts(membership_swim(a), counts);
	return a->opt.n_seeds == 0 || counts[SWIM_ALIVE] >= 2;
}

/* One line for `systemctl status`. */
static void sd_status_line(struct agent *a, char *out, size_t len)
{
	uint32_t counts[4];
	swim_state_counts(membership_swim(a), counts);
	const struct virt_health *vh = virt_health(a->virt);
	struct mv_lag_summary lag;
	looplag_summary(&a->looplag, &lag);
	const char *phase = a->stopping    ? "leaving the cluster"
	                    : sd_joined(a) ? "serving"
	                    : SD(a)->ready ? "serving alone: no seed answered yet"
	                                   : "joining";
	snprintf(out, len,
	         "%s; %" PRIu32 " members alive, %" PRIu32 " suspect, %" PRIu32
	         " dead; %s; libvirt %s; loop lag p99 %.1f ms",
	         phase, counts[SWIM_ALIVE], counts[SWIM_SUSPECT], counts[SWIM_DEAD],
	         ha_quorate(a) ? "quorate" : "not quorate",
	         vh->reachable ? "reachable" : "unreachable", lag.p99_us / 1000.0);
}

static void sd_tick(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct sdservice *s = SD(a);
	uint64_t now = uv_now(a->loop);
	mv_log_flush_suppressed();
	if (!s->notify)
		return;
	char line[sizeof(s->status)];
	sd_status_line(a, line, sizeof(line));
	char msg[sizeof(line) + 64];
	if (!s->ready && !a->stopping &&
	    (sd_joined(a) || now - s->started_at >= SDSERVICE_JOIN_WAIT_MS)) {
		s->ready = true;
		sd_status_line(a, line, sizeof(line)); /* "serving alone" when not joined */
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", line);
		sd_send(a, msg);
		MV_INFO("agent", "ready (systemd notified) joined=%s", sd_joined(a) ? "yes" : "no");
		snprintf(s->status, sizeof(s->status), "%s", line);
	} else if (strcmp(line, s->status) != 0) {
		snprintf(msg, sizeof(msg), "STATUS=%s", line);
		sd_send(a, msg);
		snprintf(s->status, sizeof(s->status), "%s", line);
	}
	if (s->watchdog_ms > 0 && now - s->last_pet >= s->watchdog_ms / 2) {
		sd_send(a, "WATCHDOG=1");
		s->last_pet = now;
	}
}

int sdservice_start(struct agent *a)
{
	struct sdservice *s = SD(a);
	memset(s, 0, sizeof(*s));
	const char *ns = getenv("NOTIFY_SOCKET");
	s->notify = ns != NULL && ns[0] != '\0';
	s->watchdog_ms = mv_sd_watchdog_usec() / 1000u;
	s->started_at = s->last_pet = uv_now(a->loop);
	unsigned tick = SDSERVICE_TICK_MS;
	/* petted at least twice per period, even with a short WatchdogSec */
	if (s->watchdog_ms > 0 && s->watchdog_ms / 4 < tick)
		tick = (unsigned)(s->watchdog_ms / 4 > 0 ? s->watchdog_ms / 4 : 1);
	int rc = uv_timer_init(a->loop, &s->timer);
	if (rc < 0)
		return rc;
	s->timer.data = a;
	s->started = true;
	if (s->notify)
		MV_INFO("agent", "systemd notification on watchdog_ms=%" PRIu64, s->watchdog_ms);
	sd_tick(&s->timer); /* ready at once when no join is needed */
	return uv_timer_start(&s->timer, sd_tick, tick, tick);
}

void sdservice_stopping(struct agent *a)
{
	if (SD(a)->notify)
		sd_send(a, "STOPPING=1\nSTATUS=leaving the cluster");
}

void sdservice_reloading(struct agent *a)
{
	if (SD(a)->notify)
		sd_send(a, "RELOADING=1\nSTATUS=reloading certificates, CRL and log level");
}

void sdservice_reloaded(struct agent *a)
{
	struct sdservice *s = SD(a);
	if (!s->notify)
		return;
	s->status[0] = '\0'; /* the next tick sends STATUS again */
	sd_send(a, s->ready ? "READY=1" : "STATUS=reloaded");
}

void sdservice_close(struct agent *a)
{
	struct sdservice *s = SD(a);
	if (s->started && !uv_is_closing((uv_handle_t *)&s->timer))
		uv_close((uv_handle_t *)&s->timer, NULL);
	s->started = false;
}
