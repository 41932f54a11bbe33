/*
 * core_driver.c — the parts of driving a protocol core that every service
 * does the same way (core_driver.h).
 */
#include "core_driver.h"
#include "agent.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"

bool core_driver_send(struct agent *a, const char *core, const char *type, int encode_rc,
                      uint8_t *frame, size_t len, const char *addr, const char *to)
{
	if (encode_rc < 0) {
		MV_ERROR(core, "cannot encode message type=%s to=%s error=%s", type, to ? to : "",
		         strerror(-encode_rc));
		return false;
	}
	bool sent = false;
	if (a->net != NULL)
		sent = net_send_to(a->net, addr, to, frame, len) == 0;
	free(frame);
	return sent;
}

bool core_driver_send_dgram(struct agent *a, const char *core, const char *type, int encode_rc,
                            uint8_t *frame, size_t len, const char *addr, const char *to)
{
	if (encode_rc == 0 && a->net != NULL && to != NULL && to[0] != '\0' &&
	    len > FRAME_HEADER_LEN &&
	    net_dgram_send(a->net, to, addr, frame + FRAME_HEADER_LEN, len - FRAME_HEADER_LEN) ==
	        0) {
		free(frame);
		return true;
	}
	/* no key yet, retired, too big, the socket refused, or the peer not
	 * heard over UDP lately (-EAGAIN: a datagram went too): TLS, as ever */
	return core_driver_send(a, core, type, encode_rc, frame, len, addr, to);
}

void core_driver_rearm(struct agent *a, uv_timer_t *t, uv_timer_cb cb, uint64_t next)
{
	if (a->stopping)
		return;
	if (next == UINT64_MAX) {
		uv_timer_stop(t);
		return;
	}
	uint64_t now = uv_now(a->loop);
	uv_timer_start(t, cb, next > now ? next - now : 0, 0);
}
