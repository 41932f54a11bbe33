/*
 * watchdog.c — see watchdog.h: opening, configuring, petting and the magic
 * close of a Linux watchdog device, nothing more.
 *
 * What the kernel's watchdog core (drivers/watchdog/watchdog_dev.c) does
 * with each call, which this file relies on:
 *   open        starts the timer (only one opener at a time: EBUSY); a
 *               device already running because a previous opener died
 *               without the magic close keeps its countdown
 *   write       pets; any 'V' in the written bytes allows the next close
 *               to stop the timer, any write without one takes that back
 *   WDIOC_SETTIMEOUT  sets the timeout (the driver may round it, or
 *               refuse it with EINVAL when out of its range) and pets
 *   WDIOC_GETTIMEOUT  the timeout really in use
 *   close       stops the timer if the magic character came last (and the
 *               driver was not loaded with nowayout), else logs "watchdog
 *               did not stop!" and keeps counting
 * So a configuration error must end in the magic close, or the host would
 * be reset for an agent that merely refused to start.
 */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* ---- the system call table (tests replace its entries) -------------------------------- */

static int wd_sys_open(const char *path, int flags)
{
	return open(path, flags);
}

static int wd_sys_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

static ssize_t wd_sys_write(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len);
}

static int wd_sys_close(int fd)
{
	return close(fd);
}

struct mv_watchdog_sys mv_watchdog_sys = {
    .open = wd_sys_open,
    .ioctl = wd_sys_ioctl,
    .write = wd_sys_write,
    .close = wd_sys_close,
};

void mv_watchdog_sys_reset(void)
{
	mv_watchdog_sys.open = wd_sys_open;
	mv_watchdog_sys.ioctl = wd_sys_ioctl;
	mv_watchdog_sys.write = wd_sys_write;
	mv_watchdog_sys.close = wd_sys_close;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* "failover.watchdog PATH: " + the message. */
static __attribute__((format(printf, 4, 5))) void
wd_err(char *err, size_t errlen, const struct mv_watchdog *w, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	int n = snprintf(err, errlen, "failover.watchdog %s: ", w->path);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Appends to an error already in err. */
static __attribute__((format(printf, 3, 4))) void wd_err_append(char *err, size_t errlen,
                                                                const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	size_t n = strnlen(err, errlen);
	if (n + 1 >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

/* Why an open failed, in words an operator can act on. */
static const char *wd_open_hint(int e)
{
	switch (e) {
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return " (no watchdog driver is loaded for it: load the board's driver, "
		       "or softdog, and check the path)";
	case EBUSY:
		return " (another process holds it open, e.g. a watchdog daemon or systemd's "
		       "RuntimeWatchdogSec; a watchdog device takes one opener at a time)";
	case EACCES:
	case EPERM:
		return " (not allowed: run the agent as root, and let the systemd unit reach the "
		       "device with DeviceAllow=)";
	default:
		return "";
	}
}

/* ---- API --------------------------------------------------------------------------------- */

int mv_watchdog_init(struct mv_watchdog *w, const char *path, uint32_t limit_ms, uint32_t pet_ms,
                     char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->limit_ms = limit_ms;
	w->pet_ms = pet_ms;
	size_t len = strlen(path);
	if (len == 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "failover.watchdog: empty path");
		return -EINVAL;
	}
	if (len >= sizeof(w->path)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			         "failover.watchdog %.64s...: path longer than %zu bytes", path,
			         sizeof(w->path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(w->path, path, len + 1);
	return 0;
}

unsigned mv_watchdog_wanted_s(uint32_t limit_ms)
{
	return limit_ms >= MV_WATCHDOG_SLACK_MS ? (limit_ms - MV_WATCHDOG_SLACK_MS) / 1000u : 0;
}

bool mv_watchdog_armed(const struct mv_watchdog *w)
{
	return w->fd >= 0;
}

/* The configuration steps on an open descriptor; 0, or -errno with err
 * filled (the caller then disarms). */
static int wd_configure(struct mv_watchdog *w, char *err, size_t errlen)
{
	unsigned wanted = mv_watchdog_wanted_s(w->limit_ms);
	if (wanted < MV_WATCHDOG_MIN_TIMEOUT_S) {
		wd_err(err, errlen, w,
		       "failover.fence_margin_ms %u is below %u: the watchdog's timeout is the "
		       "margin less %u ms, in whole seconds, at least %u",
		       (unsigned)w->limit_ms,
		       MV_WATCHDOG_MIN_TIMEOUT_S * 1000u + MV_WATCHDOG_SLACK_MS,
		       MV_WATCHDOG_SLACK_MS, MV_WATCHDOG_MIN_TIMEOUT_S);
		return -EINVAL;
	}
	struct watchdog_info info;
	memset(&info, 0, sizeof(info));
	if (mv_watchdog_sys.ioctl(w->fd, WDIOC_GETSUPPORT, &info) < 0) {
		int e = errno;
		wd_err(err, errlen, w, "WDIOC_GETSUPPORT failed: %s (not a watchdog device?)",
		       strerror(e));
		return -e;
	}
	w->options = info.options;
	memcpy(w->identity, info.identity, sizeof(info.identity));
	w->identity[sizeof(w->identity) - 1] = '\0';
	bool no_set = !(info.options & WDIOF_SETTIMEOUT);
	bool no_magic = !(info.options & WDIOF_MAGICCLOSE);
	if (no_set || no_magic) {
		wd_err(err, errlen, w,
		       "the device (%s) %s%s%s; the agent needs both, to make it fire within "
		       "failover.fence_margin_ms and to stop it on a host with nothing to protect",
		       w->identity[0] ? w->identity : "no identity",
		       no_set ? "cannot set its timeout (no WDIOF_SETTIMEOUT)" : "",
		       no_set && no_magic ? " and " : "",
		       no_magic ? "cannot be stopped by the magic close (no WDIOF_MAGICCLOSE)"
		                : "");
		return -EOPNOTSUPP;
	}
	int t = 0;
	if (mv_watchdog_sys.ioctl(w->fd, WDIOC_GETTIMEOUT, &t) < 0) {
		int e = errno;
		wd_err(err, errlen, w, "WDIOC_GETTIMEOUT failed: %s", strerror(e));
		return -e;
	}
	/* A set is also a pet: skipped when the device already uses the wanted
	 * timeout, so that an agent restarting while the device still counts
	 * for its predecessor does not extend that countdown. */
	if (t != (int)wanted) {
		t = (int)wanted;
		if (mv_watchdog_sys.ioctl(w->fd, WDIOC_SETTIMEOUT, &t) < 0) {
			int e = errno;
			wd_err(err, errlen, w, "WDIOC_SETTIMEOUT to %u s failed: %s%s", wanted,
			       strerror(e),
			       e == EINVAL
			           ? " (outside the device's range; failover.fence_margin_ms "
			             "decides the timeout)"
			           : "");
			return -e;
		}
		t = 0;
		if (mv_watchdog_sys.ioctl(w->fd, WDIOC_GETTIMEOUT, &t) < 0) {
			int e = errno;
			wd_err(err, errlen, w, "WDIOC_GETTIMEOUT after setting %u s failed: %s",
			       wanted, strerror(e));
			return -e;
		}
	}
	w->timeout_s = t > 0 ? (unsigned)t : 0;
	if (t > (int)wanted) {
		wd_err(
		    err, errlen, w,
		    "the device set a %d s timeout, but failover.fence_margin_ms %u needs one of "
		    "at most %u s (the other hosts restart this host's HA VMs on the assumption "
		    "that its watchdog fires within fence_margin_ms of the last pet)",
		    t, (unsigned)w->limit_ms, wanted);
		return -ERANGE;
	}
	if (t < (int)MV_WATCHDOG_MIN_TIMEOUT_S) {
		wd_err(
		    err, errlen, w,
		    "the device set a %d s timeout, but at least %u s are needed (asked for %u s)",
		    t, MV_WATCHDOG_MIN_TIMEOUT_S, wanted);
		return -ERANGE;
	}
	if ((uint64_t)w->pet_ms * 2 >= (uint64_t)t * 1000) {
		wd_err(err, errlen, w,
		       "the device set a %d s timeout, but failover.heartbeat_ms %u pets it too "
		       "seldom: the pet period must be below half the timeout (%d ms)",
		       t, (unsigned)w->pet_ms, t * 500);
		return -ERANGE;
	}
	return 0;
}

int mv_watchdog_open(struct mv_watchdog *w, char *err, size_t errlen)
{
	if (w->fd >= 0)
		return 0;
	int fd = mv_watchdog_sys.open(w->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		wd_err(err, errlen, w, "cannot open: %s%s", strerror(e), wd_open_hint(e));
		return -e;
	}
	w->fd = fd;
	int rc = wd_configure(w, err, errlen);
	if (rc < 0) {
		/* opening started the timer: stop it again */
		char why[256];
		if (mv_watchdog_disarm(w, why, sizeof(why)) < 0)
			wd_err_append(err, errlen, "; and disarming it again failed: %s", why);
		return rc;
	}
	return 0;
}

int mv_watchdog_arm(struct mv_watchdog *w, char *err, size_t errlen)
{
	int rc = mv_watchdog_open(w, err, errlen);
	if (rc < 0)
		return rc;
	return mv_watchdog_pet(w, err, errlen);
}

int mv_watchdog_pet(struct mv_watchdog *w, char *err, size_t errlen)
{
	if (w->fd < 0) {
		wd_err(err, errlen, w, "not armed");
		return -EBADF;
	}
	ssize_t n = mv_watchdog_sys.write(w->fd, "1", 1);
	if (n == 1)
		return 0;
	int e = n < 0 ? errno : EIO;
	wd_err(err, errlen, w, "pet failed: %s", strerror(e));
	return -e;
}

int mv_watchdog_hurry(struct mv_watchdog *w, char *err, size_t errlen)
{
	if (w->fd < 0) {
		wd_err(err, errlen, w, "not armed");
		return -EBADF;
	}
	/* 1 s, or the least the driver takes (EINVAL below its range): a
	 * failed set is no pet, so trying upwards changes nothing until one
	 * takes */
	int t = 1, e = 0;
	for (int want = 1; want == 1 || (unsigned)want < w->timeout_s; want++) {
		t = want;
		if (mv_watchdog_sys.ioctl(w->fd, WDIOC_SETTIMEOUT, &t) == 0) {
			e = 0;
			break;
		}
		e = errno;
		if (e != EINVAL)
			break;
	}
	if (e != 0) {
		wd_err(err, errlen, w,
		       "WDIOC_SETTIMEOUT to 1 s (to reset the host now) failed: %s; "
		       "it resets the host %u s after the last pet",
		       strerror(e), w->timeout_s);
		return -e;
	}
	t = 0;
	if (mv_watchdog_sys.ioctl(w->fd, WDIOC_GETTIMEOUT, &t) < 0) {
		e = errno;
		wd_err(err, errlen, w, "WDIOC_GETTIMEOUT after setting 1 s failed: %s",
		       strerror(e));
		return -e;
	}
	if (t > 0)
		w->timeout_s = (unsigned)t;
	return 0;
}

int mv_watchdog_disarm(struct mv_watchdog *w, char *err, size_t errlen)
{
	if (w->fd < 0)
		return 0;
	int fd = w->fd;
	w->fd = -1;
	ssize_t n = mv_watchdog_sys.write(fd, "V", 1);
	int we = n == 1 ? 0 : n < 0 ? errno : EIO;
	int rc = mv_watchdog_sys.close(fd);
	int ce = rc < 0 ? errno : 0;
	if (we == 0 && ce == 0)
		return 0;
	if (we != 0)
		wd_err(err, errlen, w,
		       "the magic close failed: writing 'V': %s; the device keeps running and "
		       "resets the host %u s after the last pet unless it is opened and petted "
		       "again",
		       strerror(we), w->timeout_s);
	else
		wd_err(err, errlen, w,
		       "the magic close failed: close: %s; the device may keep running and reset "
		       "the host %u s after the last pet",
		       strerror(ce), w->timeout_s);
	return -(we != 0 ? we : ce);
}
