/*
 * watchdog.h — the Linux watchdog device behind failover.watchdog
 * (/dev/watchdog, /dev/watchdogN; <linux/watchdog.h>). The only code in
 * the agent that talks to one.
 *
 * Why it exists: the failover core's timed fence (fo.c, "WHY NO VM
 * RUNS TWICE") lets the other hosts restart this host's HA VMs once they
 * have waited long enough for this host to have destroyed them itself
 * (F = fence_after_ms after its last quorate moment, plus the margin).
 * When the agent hangs or dies before that, nothing here destroys them;
 * the hardware watchdog does, by resetting the host, provided it fires
 * within limit_ms (the agent passes failover.fence_margin_ms) of its last
 * pet — the agent pets it until its self-fence (agent/daemon/ha.c, "the
 * watchdog"). Linux pings a device whose file closes without the magic
 * close, as when the agent dies, so the reset may come limit_ms after the
 * death: hence a timeout of the margin, not of F. So the device is not
 * just opened: it must be able to take a timeout the agent sets, and to
 * be stopped by the magic close; the timeout is set, read back, and
 * refused unless what the device really uses is one the arithmetic
 * allows:
 *
 *   2 s <= timeout <= floor((limit_ms - 250) / 1000) s,  and  pet period < timeout / 2
 *
 * (whole seconds: that is the unit of WDIOC_SETTIMEOUT; below 2 s the
 * pets could not keep a healthy host alive). What the agent does with the
 * device — when it is armed, petted, hurried, disarmed — is agent/daemon/ha.c's.
 *
 * States: disarmed (no file open; the device does not count) and armed
 * (open: it resets the host `timeout` seconds after the last pet unless
 * disarmed first). Disarming writes the magic character 'V' and closes:
 * the driver stops the timer (unless its kernel module was loaded with
 * nowayout=1, which the agent cannot see: then nothing stops it, and such
 * a host must not use failover.watchdog). An armed descriptor closed any
 * other way, also by the process dying, leaves the device running.
 *
 * Errors: negative errno, with a message naming failover.watchdog, the
 * path and the OS's own text (strerror) written into the caller's err
 * buffer; nothing is logged here.
 *
 * System calls go through mv_watchdog_sys, a table of function pointers
 * that points at libc; unit tests replace its entries to fail the N-th
 * call or to emulate a device (the idea of SQLite's test_syscall.c).
 *
 * Ownership: struct mv_watchdog is embedded by its user; it copies the
 * path and owns the descriptor while armed. mv_watchdog_disarm() releases
 * it; there is nothing else to free. One thread only (the agent's loop).
 */
#ifndef MESHVISOR_WATCHDOG_H
#define MESHVISOR_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MV_WATCHDOG_PATH_MAX 256
#define MV_WATCHDOG_MIN_TIMEOUT_S 2u /* whole seconds; a shorter one pets could not keep */
/* What the timeout stays below limit_ms by: the clock-rate drift between
 * this host and the ones that wait out its fence (2000 ppm over two
 * minutes), and the device's own imprecision. */
#define MV_WATCHDOG_SLACK_MS 250u

/* The system calls the module makes. open() here takes no mode (nothing is
 * created); ioctl()'s argument is always a pointer for the requests used. */
struct mv_watchdog_sys {
	int (*open)(const char *path, int flags);
	int (*ioctl)(int fd, unsigned long request, void *arg);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*close)(int fd);
};

/* The table in use: libc's by default. Tests assign entries, and call
 * mv_watchdog_sys_reset() to put libc's back. */
extern struct mv_watchdog_sys mv_watchdog_sys;
void mv_watchdog_sys_reset(void);

struct mv_watchdog {
	char path[MV_WATCHDOG_PATH_MAX];
	uint32_t limit_ms;  /* the device must fire within it of the last pet */
	uint32_t pet_ms;    /* how often the caller pets (failover.heartbeat_ms) */
	int fd;             /* >= 0 while armed */
	unsigned timeout_s; /* what the device uses, read back; 0 before */
	uint32_t options;   /* WDIOC_GETSUPPORT's WDIOF_* flags */
	char identity[33];  /* the driver's name for the device */
};

/* Sets w up for a device at path (copied; -ENAMETOOLONG if it does not
 * fit, with err filled), disarmed. No I/O. */
int mv_watchdog_init(struct mv_watchdog *w, const char *path, uint32_t limit_ms, uint32_t pet_ms,
                     char *err, size_t errlen);

/* The timeout the agent asks for: floor((limit_ms - MV_WATCHDOG_SLACK_MS) /
 * 1000) seconds (0 below the slack). */
unsigned mv_watchdog_wanted_s(uint32_t limit_ms);

/* Opens the device (which arms it) and configures it: WDIOC_GETSUPPORT
 * must list WDIOF_SETTIMEOUT and WDIOF_MAGICCLOSE; the timeout is read
 * (WDIOC_GETTIMEOUT) and, unless it already is the wanted one, set
 * (WDIOC_SETTIMEOUT, which the driver takes as a pet) and read back; the
 * value read back must satisfy the rule above. No pet beyond that: an
 * agent that restarted and finds the device still counting for its
 * predecessor does not extend the countdown. On any error the device is
 * disarmed again (magic close) before returning, and err says why,
 * with the numbers (also when that magic close failed, and the device
 * keeps running). Already armed: 0 at once. */
int mv_watchdog_open(struct mv_watchdog *w, char *err, size_t errlen);

/* mv_watchdog_open(), then a pet. */
int mv_watchdog_arm(struct mv_watchdog *w, char *err, size_t errlen);

/* One pet (a one-byte write). -EBADF when not armed; the write's errno
 * (-EIO for a short write) otherwise, with err filled. */
int mv_watchdog_pet(struct mv_watchdog *w, char *err, size_t errlen);

/* Sets the timeout to 1 s (WDIOC_SETTIMEOUT, a pet; then read back into
 * timeout_s), or to the least the driver takes below the current one
 * when it refuses 1 s (EINVAL): left unpetted, the device resets the host
 * within that. For a host that must go unless its self-fence leaves
 * nothing to protect. -EBADF when not armed; an ioctl's -errno otherwise
 * (EINVAL: no shorter timeout taken), with err filled. */
int mv_watchdog_hurry(struct mv_watchdog *w, char *err, size_t errlen);

/* The magic close: writes 'V', then closes. Afterwards w is disarmed in
 * any case (the descriptor is gone); a failed write or close returns its
 * -errno with err saying that the device may still be running and will
 * reset the host timeout_s after the last pet. 0 when not armed. */
int mv_watchdog_disarm(struct mv_watchdog *w, char *err, size_t errlen);

bool mv_watchdog_armed(const struct mv_watchdog *w);

#endif
