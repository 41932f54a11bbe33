/*
 * core_driver.h — what driving a protocol core looks like for all four
 * services that own one (membership: SWIM, node state, migration, HA:
 * failover): each core says what to send and when it next needs the
 * clock; the service pops its core's outputs and events in the order that
 * core requires (HA: events and the journal before any message) and hands
 * the generic parts here — one frame to a peer (over TLS, or for the
 * failure detector's probes and heartbeats as a datagram first), and the
 * core's one timer kept armed at its next deadline.
 */
#ifndef MESHVISOR_CORE_DRIVER_H
#define MESHVISOR_CORE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct agent;

/* Sends one encoded frame (encode_rc: what the codec returned; the frame,
 * which exists only when it is 0, is freed here) to the peer named `to` at
 * addr. Logs an
 * encoding failure as "<core>: cannot encode <type>". False when nothing
 * was sent (encoding failed, or the network is closed: stopping). */
bool core_driver_send(struct agent *a, const char *core, const char *type, int encode_rc,
                      uint8_t *frame, size_t len, const char *addr, const char *to);

/* The same, datagram first: for the failure detector's messages (SWIM
 * probes, failover heartbeats). The frame's payload goes as one sealed UDP
 * datagram (net_dgram_send) when we hold a datagram key for `to` and it
 * fits; otherwise over TLS exactly as core_driver_send (and that TLS
 * session's handshake makes the keys for next time). */
bool core_driver_send_dgram(struct agent *a, const char *core, const char *type, int encode_rc,
                            uint8_t *frame, size_t len, const char *addr, const char *to);

/* Arms t to call cb at the core's next deadline (next, on the loop's
 * clock; UINT64_MAX: none, the timer stops). Nothing while stopping. */
void core_driver_rearm(struct agent *a, uv_timer_t *t, uv_timer_cb cb, uint64_t next);

#endif
