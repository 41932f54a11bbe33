/*
 * sdnotify.h — systemd's service notification protocol (sd_notify(3)),
 * spoken directly: one datagram of "KEY=VALUE\n..." lines to the unix
 * socket systemd names in $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace). No libsystemd. Without $NOTIFY_SOCKET (not started
 * by systemd, or Type= other than notify) every call is a no-op.
 *
 * The send never blocks (MSG_DONTWAIT): a full socket drops the message,
 * which the caller's next periodic notification replaces. Any thread.
 */
#ifndef MESHVISOR_SDNOTIFY_H
#define MESHVISOR_SDNOTIFY_H

#include <stdint.h>

/* Sends state (e.g. "READY=1\nSTATUS=joined"). 1: sent; 0: no
 * $NOTIFY_SOCKET, nothing to do; -errno: the socket is named but the send
 * failed (a bad name: -EINVAL; a full or gone socket). */
int mv_sd_notify(const char *state);

/* How often systemd wants "WATCHDOG=1" at the latest ($WATCHDOG_USEC,
 * when $WATCHDOG_PID is absent or this process): in microseconds, or 0
 * when systemd does not watch this process. */
uint64_t mv_sd_watchdog_usec(void);

#endif
