/*
 * test_watchdog.c — agent/hv/watchdog.c against an emulated Linux watchdog
 * device: mv_watchdog_sys's entries are replaced by a fake that behaves
 * like the kernel's watchdog core (open starts the timer, writes pet and
 * a 'V' allows the next close to stop it, WDIOC_SETTIMEOUT may round or
 * refuse), records every call, and fails the N-th call on request (the
 * way SQLite's test_syscall.c does). Checked: the timeout is set and read
 * back; a device that cannot guarantee F is refused with the numbers, and
 * left stopped; missing features are named; open errors say what to do;
 * pets write, disarm writes 'V' then closes; every error path reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "watchdog.h"

#define FAKE_FD 42
#define PATH "/dev/watchdog0"

/* ---- the emulated device --------------------------------------------------------------- */

static struct fake {
	/* the device */
	int open_errno; /* open fails with it (ENOENT: no device) */
	bool held;      /* another process has it open: EBUSY */
	bool is_open;
	bool running;       /* the timer counts (armed in the kernel's sense) */
	bool allow_release; /* the last write held a 'V' */
	uint32_t options;
	int timeout;       /* in use */
	int min_timeout;   /* SETTIMEOUT rounds up to this */
	int max_timeout;   /* SETTIMEOUT refuses above (EINVAL) */
	int einval_below;  /* SETTIMEOUT refuses below (EINVAL), when set */
	int force_timeout; /* >0: SETTIMEOUT always ends here (a driver that rounds down) */
	bool short_write;  /* writes return 0 */
	/* what happened */
	char ops[64][32];
	int n_ops;
	int pets;
	/* failure injection: the fail_at-th and fail_at2-th calls (1-based, all
	 * four system calls counted together) fail with fail_errno */
	int calls, fail_at, fail_at2, fail_errno;
} fk;

static void fake_op(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fake_op(const char *fmt, ...)
{
	assert_true(fk.n_ops < 64);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fk.ops[fk.n_ops++], sizeof(fk.ops[0]), fmt, ap);
	va_end(ap);
}

/* Counts the call; true when it is one to fail (errno set). */
static bool fake_fail(void)
{
	fk.calls++;
	if (fk.calls == fk.fail_at || fk.calls == fk.fail_at2) {
		errno = fk.fail_errno;
		return true;
	}
	return false;
}

static int fake_open(const char *path, int flags)
{
	if (fake_fail())
		return -1;
	assert_string_equal(path, PATH);
	assert_int_equal(flags, O_WRONLY | O_CLOEXEC);
	if (fk.open_errno) {
		errno = fk.open_errno;
		return -1;
	}
	if (fk.held || fk.is_open) {
		errno = EBUSY;
		return -1;
	}
	fk.is_open = true;
	fk.running = true;
	fk.allow_release = false;
	fake_op("open");
	return FAKE_FD;
}

static int fake_ioctl(int fd, unsigned long request, void *arg)
{
	if (fake_fail())
		return -1;
	assert_int_equal(fd, FAKE_FD);
	assert_true(fk.is_open);
	switch (request) {
	case WDIOC_GETSUPPORT: {
		struct watchdog_info *wi = arg;
		memset(wi, 0, sizeof(*wi));
		wi->options = fk.options;
		snprintf((char *)wi->identity, sizeof(wi->identity), "fake wdt");
		fake_op("getsupport");
		return 0;
	}
	case WDIOC_GETTIMEOUT:
		*(int *)arg = fk.timeout;
		fake_op("gettimeout %d", fk.timeout);
		return 0;
	case WDIOC_SETTIMEOUT: {
		int v = *(int *)arg;
		if (v < 1 || v > fk.max_timeout || v < fk.einval_below) {
			errno = EINVAL;
			return -1;
		}
		if (v < fk.min_timeout)
			v = fk.min_timeout;
		if (fk.force_timeout > 0)
			v = fk.force_timeout;
		fk.timeout = v;
		*(int *)arg = v;
		fk.pets++; /* the kernel pings after a set */
		fake_op("settimeout %d", v);
		return 0;
	}
	case WDIOC_KEEPALIVE:
		fk.pets++;
		fake_op("keepalive");
		return 0;
	default:
		errno = ENOTTY;
		return -1;
	}
}

static ssize_t fake_write(int fd, const void *buf, size_t len)
{
	if (fake_fail())
		return -1;
	assert_int_equal(fd, FAKE_FD);
	assert_true(fk.is_open);
	if (fk.short_write)
		return 0;
	fk.allow_release = memchr(buf, 'V', len) != NULL;
	fk.pets++;
	fake_op("write %.*s", (int)len, (const char *)buf);
	return (ssize_t)len;
}

static int fake_close(int fd)
{
	assert_int_equal(fd, FAKE_FD);
	assert_true(fk.is_open);
	/* like close(2): the descriptor is gone even when it reports an error */
	fk.is_open = false;
	if (fk.allow_release || !(fk.options & WDIOF_MAGICCLOSE)) {
		fk.running = false;
		fake_op("magic-close");
	} else {
		fake_op("close"); /* "watchdog did not stop!" */
	}
	if (fake_fail())
		return -1;
	return 0;
}

static int setup(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof(fk));
	fk.options = WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING;
	fk.timeout = 60; /* softdog's default */
	fk.min_timeout = 1;
	fk.max_timeout = 600;
	fk.fail_errno = EIO;
	mv_watchdog_sys.open = fake_open;
	mv_watchdog_sys.ioctl = fake_ioctl;
	mv_watchdog_sys.write = fake_write;
	mv_watchdog_sys.close = fake_close;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mv_watchdog_sys_reset();
	return 0;
}

/* The recorded calls, joined with ", ". */
static const char *ops(void)
{
	static char buf[2048];
	buf[0] = '\0';
	for (int i = 0; i < fk.n_ops; i++) {
		if (i)
			strcat(buf, ", ");
		strcat(buf, fk.ops[i]);
	}
	return buf;
}

#define assert_has(hay, needle)                                           \
	do {                                                              \
		if (strstr((hay), (needle)) == NULL)                      \
			fail_msg("\"%s\" lacks \"%s\"", (hay), (needle)); \
	} while (0)

static void init(struct mv_watchdog *w, uint32_t fence_after_ms, uint32_t pet_ms)
{
	char err[256];
	assert_int_equal(mv_watchdog_init(w, PATH, fence_after_ms, pet_ms, err, sizeof(err)), 0);
	assert_false(mv_watchdog_armed(w));
}

/* ---- configuration ------------------------------------------------------------------------ */

static void test_timeout_set_and_read_back(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	assert_string_equal(ops(), "open, getsupport, gettimeout 60, settimeout 10, gettimeout 10, "
	                           "write 1");
	assert_true(mv_watchdog_armed(&w));
	assert_int_equal(w.timeout_s, 10);
	assert_string_equal(w.identity, "fake wdt");
	assert_true(fk.running);
	/* open again: nothing to do */
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	assert_int_equal(fk.n_ops, 6);
	/* floor((margin - 250) / 1000): 11249 ms allow 10 s, not 11 */
	assert_int_equal(mv_watchdog_wanted_s(11249), 10);
	assert_int_equal(mv_watchdog_wanted_s(11250), 11);
	assert_int_equal(mv_watchdog_wanted_s(2250), 2);
	assert_int_equal(mv_watchdog_wanted_s(2249), 1);
	assert_int_equal(mv_watchdog_wanted_s(249), 0);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
}

/* A device already at the wanted timeout (left running by the previous
 * agent) is not set: a set would pet it and extend that countdown. */
static void test_timeout_already_right_is_not_set(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	fk.timeout = 10;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	assert_string_equal(ops(), "open, getsupport, gettimeout 10");
	assert_int_equal(fk.pets, 0);
	assert_int_equal(w.timeout_s, 10);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
}

/* The driver rounds 10 s up to 30 s: the other hosts would restart this
 * host's VMs 20 s before its watchdog fires. Refused, and stopped again. */
static void test_rounded_above_fence_after_refused(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	fk.min_timeout = 30;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), -ERANGE);
	assert_has(err, "failover.watchdog /dev/watchdog0: the device set a 30 s timeout, but "
	                "failover.fence_margin_ms 10250 needs one of at most 10 s");
	assert_false(mv_watchdog_armed(&w));
	assert_false(fk.running);
	assert_false(fk.is_open);
	assert_string_equal(ops(), "open, getsupport, gettimeout 60, settimeout 30, gettimeout 30, "
	                           "write V, magic-close");
}

static void test_too_short_timeouts_refused(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	/* a driver that ends at 1 s */
	fk.force_timeout = 1;
	init(&w, 10250, 250);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -ERANGE);
	assert_has(err,
	           "the device set a 1 s timeout, but at least 2 s are needed (asked for 10 s)");
	assert_false(fk.running);
	/* one where the pets would come too seldom: 3 s, pets every 1500 ms */
	setup(NULL);
	fk.force_timeout = 3;
	init(&w, 10250, 1500);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -ERANGE);
	assert_has(err, "the device set a 3 s timeout, but failover.heartbeat_ms 1500 pets it too "
	                "seldom: the pet period must be below half the timeout (1500 ms)");
	assert_false(fk.running);
	/* just below half: accepted */
	setup(NULL);
	fk.force_timeout = 3;
	init(&w, 10250, 1499);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	assert_int_equal(w.timeout_s, 3);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
	/* a margin below 2250 ms: no whole-second timeout of 2 s fits; the
	 * device is not left running */
	setup(NULL);
	init(&w, 2249, 250);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EINVAL);
	assert_has(err, "failover.watchdog /dev/watchdog0: failover.fence_margin_ms 2249 is below "
	                "2250: the watchdog's timeout is the margin less 250 ms, in whole seconds, "
	                "at least 2");
	assert_false(fk.running);
	assert_string_equal(ops(), "open, write V, magic-close");
	/* the boundary: 2250 ms give 2 s */
	setup(NULL);
	init(&w, 2250, 250);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	assert_int_equal(w.timeout_s, 2);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
}

static void test_out_of_range_set_refused(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	fk.max_timeout = 5;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EINVAL);
	assert_has(err, "WDIOC_SETTIMEOUT to 10 s failed: Invalid argument (outside the device's "
	                "range");
	assert_false(fk.running);
}

static void test_missing_features_named(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	fk.options = WDIOF_SETTIMEOUT | WDIOF_KEEPALIVEPING;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EOPNOTSUPP);
	assert_has(err, "the device (fake wdt) cannot be stopped by the magic close "
	                "(no WDIOF_MAGICCLOSE); the agent needs both");
	assert_null(strstr(err, "WDIOF_SETTIMEOUT"));
	/* such a driver stops on any close */
	assert_false(fk.running);

	setup(NULL);
	fk.options = WDIOF_MAGICCLOSE;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EOPNOTSUPP);
	assert_has(err, "the device (fake wdt) cannot set its timeout (no WDIOF_SETTIMEOUT); the "
	                "agent needs both");
	assert_false(fk.running);

	setup(NULL);
	fk.options = 0;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EOPNOTSUPP);
	assert_has(err, "cannot set its timeout (no WDIOF_SETTIMEOUT) and cannot be stopped by the "
	                "magic close (no WDIOF_MAGICCLOSE)");
}

/* ---- open errors ------------------------------------------------------------------------- */

static void test_open_errors(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	fk.open_errno = ENOENT;
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -ENOENT);
	assert_has(err, "failover.watchdog /dev/watchdog0: cannot open: No such file or directory "
	                "(no watchdog driver is loaded");
	assert_false(mv_watchdog_armed(&w));

	fk.open_errno = 0;
	fk.held = true;
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), -EBUSY);
	assert_has(err, "cannot open: Device or resource busy (another process holds it open");

	fk.held = false;
	fk.open_errno = EACCES;
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EACCES);
	assert_has(err, "DeviceAllow=");

	fk.open_errno = EIO;
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EIO);
	assert_has(err, "cannot open: Input/output error");
	assert_int_equal(fk.n_ops, 0);
}

static void test_init_errors(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	assert_int_equal(mv_watchdog_init(&w, "", 10000, 1000, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "failover.watchdog: empty path");
	char longp[400];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(mv_watchdog_init(&w, longp, 10000, 1000, err, sizeof(err)), -ENAMETOOLONG);
	assert_has(err, "path longer than 255 bytes");
	assert_int_equal(mv_watchdog_init(&w, "", 10000, 1000, NULL, 0), -EINVAL);
}

/* ---- pets and the magic close ------------------------------------------------------------- */

static void test_pet_and_disarm(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_pet(&w, err, sizeof(err)), -EBADF);
	assert_has(err, "failover.watchdog /dev/watchdog0: not armed");
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	int pets = fk.pets;
	assert_int_equal(mv_watchdog_pet(&w, err, sizeof(err)), 0);
	assert_int_equal(mv_watchdog_pet(&w, err, sizeof(err)), 0);
	assert_int_equal(fk.pets, pets + 2);
	fk.n_ops = 0;
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
	assert_string_equal(ops(), "write V, magic-close");
	assert_false(fk.running);
	assert_false(mv_watchdog_armed(&w));
	/* disarmed already: nothing */
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
	assert_int_equal(fk.n_ops, 2);
	/* armed again: open, configure (no set: the device kept 10 s), pet */
	fk.n_ops = 0;
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	assert_string_equal(ops(), "open, getsupport, gettimeout 10, write 1");
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
}

/* A host that must go now (its self-fence left HA VMs): hurried to 1 s
 * (a set, which the kernel takes as a pet), read back; a driver whose
 * least timeout is above says so in timeout_s; errors name the call. */
static void test_hurry(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 3250, 1000);
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), -EBADF);
	assert_has(err, "failover.watchdog /dev/watchdog0: not armed");
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	assert_int_equal(w.timeout_s, 3);
	fk.n_ops = 0;
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), 0);
	assert_string_equal(ops(), "settimeout 1, gettimeout 1");
	assert_int_equal(w.timeout_s, 1);
	assert_true(fk.running);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
	/* a driver whose least timeout is 2 s */
	fk.min_timeout = 2;
	init(&w, 3250, 1000);
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), 0);
	assert_int_equal(w.timeout_s, 2);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
	/* a driver that refuses below 2 s: the least it takes */
	fk.min_timeout = 1;
	fk.einval_below = 2;
	init(&w, 3250, 1000);
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	fk.n_ops = 0;
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), 0);
	assert_string_equal(ops(), "settimeout 2, gettimeout 2");
	assert_int_equal(w.timeout_s, 2);
	/* ... and one that takes nothing below what it has: EINVAL, unchanged */
	fk.einval_below = 3;
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
	init(&w, 3250, 1000);
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), -EINVAL);
	assert_has(err, "WDIOC_SETTIMEOUT to 1 s (to reset the host now) failed: Invalid argument; "
	                "it resets the host 3 s after the last pet");
	assert_int_equal(w.timeout_s, 3);
	fk.einval_below = 0;
	fk.min_timeout = 2;
	/* the set fails, then the read-back */
	fk.calls = 0;
	fk.fail_at = 1;
	fk.fail_errno = EIO;
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), -EIO);
	assert_has(err,
	           "WDIOC_SETTIMEOUT to 1 s (to reset the host now) failed: Input/output error; "
	           "it resets the host 3 s after the last pet");
	fk.calls = 0;
	fk.fail_at = 2;
	assert_int_equal(mv_watchdog_hurry(&w, err, sizeof(err)), -EIO);
	assert_has(err, "WDIOC_GETTIMEOUT after setting 1 s failed");
	fk.fail_at = 0;
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
}

static void test_failing_pets_reported(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	fk.fail_at = fk.calls + 1;
	assert_int_equal(mv_watchdog_pet(&w, err, sizeof(err)), -EIO);
	assert_has(err, "failover.watchdog /dev/watchdog0: pet failed: Input/output error");
	assert_true(mv_watchdog_armed(&w)); /* still open: the next pet may work */
	fk.short_write = true;
	assert_int_equal(mv_watchdog_pet(&w, err, sizeof(err)), -EIO);
	fk.short_write = false;
	assert_int_equal(mv_watchdog_pet(&w, err, sizeof(err)), 0);
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
}

static void test_failing_magic_close_reported(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	/* writing 'V' fails: closed anyway, the device keeps running */
	fk.fail_at = fk.calls + 1;
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), -EIO);
	assert_has(err, "failover.watchdog /dev/watchdog0: the magic close failed: writing 'V': "
	                "Input/output error; the device keeps running and resets the host 10 s "
	                "after the last pet");
	assert_false(mv_watchdog_armed(&w));
	assert_false(fk.is_open);
	assert_true(fk.running);
	/* a short write of 'V' too */
	setup(NULL);
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	fk.short_write = true;
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), -EIO);
	assert_true(fk.running);
	/* close reports an error */
	setup(NULL);
	init(&w, 10250, 1000);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), 0);
	fk.fail_at = fk.calls + 2;
	fk.fail_errno = EINTR;
	assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), -EINTR);
	assert_has(err, "the magic close failed: close: Interrupted system call; the device may "
	                "keep running");
	assert_false(mv_watchdog_armed(&w));
}

/* Fails each call of a full arm in turn: every step reports in its own
 * words, and whatever failed after the open leaves the device stopped. */
static void test_every_call_failing(void **state)
{
	(void)state;
	static const char *const want[] = {
	    "cannot open: Input/output error",
	    "WDIOC_GETSUPPORT failed: Input/output error",
	    "WDIOC_GETTIMEOUT failed: Input/output error",
	    "WDIOC_SETTIMEOUT to 10 s failed: Input/output error",
	    "WDIOC_GETTIMEOUT after setting 10 s failed: Input/output error",
	    "pet failed: Input/output error",
	};
	for (int n = 1; n <= 6; n++) {
		setup(NULL);
		struct mv_watchdog w;
		char err[512] = "";
		init(&w, 10250, 1000);
		fk.fail_at = n;
		assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), -EIO);
		assert_has(err, "failover.watchdog /dev/watchdog0: ");
		assert_has(err, want[n - 1]);
		if (n < 6) {
			/* refused: not left armed */
			assert_false(mv_watchdog_armed(&w));
			assert_false(fk.running);
		} else {
			/* configured, only the pet failed: armed, the caller pets again */
			assert_true(mv_watchdog_armed(&w));
			assert_int_equal(mv_watchdog_disarm(&w, err, sizeof(err)), 0);
		}
	}
	/* one more call than an arm makes: nothing fails */
	setup(NULL);
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 10250, 1000);
	fk.fail_at = 7;
	assert_int_equal(mv_watchdog_arm(&w, err, sizeof(err)), 0);
	assert_int_equal(fk.calls, 6);
}

/* A configuration error, then the magic close that should stop the device
 * fails too: both are said, and the device is known to run on. */
static void test_refusal_then_failing_disarm(void **state)
{
	(void)state;
	struct mv_watchdog w;
	char err[512] = "";
	init(&w, 10250, 1000);
	fk.fail_at = 2;  /* WDIOC_GETSUPPORT */
	fk.fail_at2 = 3; /* the 'V' */
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -EIO);
	assert_has(err,
	           "WDIOC_GETSUPPORT failed: Input/output error (not a watchdog device?); "
	           "and disarming it again failed: failover.watchdog /dev/watchdog0: the magic "
	           "close failed: writing 'V'");
	assert_false(mv_watchdog_armed(&w));
	assert_true(fk.running);
	/* a small buffer truncates, never overflows */
	char small[24];
	setup(NULL);
	init(&w, 10250, 1000);
	fk.fail_at = 2;
	fk.fail_at2 = 3;
	assert_int_equal(mv_watchdog_open(&w, small, sizeof(small)), -EIO);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	setup(NULL);
	init(&w, 10250, 1000);
	fk.fail_at = 2;
	fk.fail_at2 = 3;
	assert_int_equal(mv_watchdog_open(&w, NULL, 0), -EIO);
}

/* ---- the default table: libc ----------------------------------------------------------- */

static void test_libc_table(void **state)
{
	(void)state;
	mv_watchdog_sys_reset();
	assert_true(mv_watchdog_sys.open != fake_open);
	struct mv_watchdog w;
	char err[512] = "";
	assert_int_equal(
	    mv_watchdog_init(&w, "/nonexistent/watchdog", 10000, 1000, err, sizeof(err)), 0);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -ENOENT);
	assert_has(err, "failover.watchdog /nonexistent/watchdog: cannot open: No such file or "
	                "directory");
	/* /dev/null opens, but is no watchdog: refused, and closed again */
	assert_int_equal(mv_watchdog_init(&w, "/dev/null", 10000, 1000, err, sizeof(err)), 0);
	assert_int_equal(mv_watchdog_open(&w, err, sizeof(err)), -ENOTTY);
	assert_has(err, "WDIOC_GETSUPPORT failed: Inappropriate ioctl for device (not a watchdog "
	                "device?)");
	assert_false(mv_watchdog_armed(&w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_timeout_set_and_read_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout_already_right_is_not_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rounded_above_fence_after_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_hurry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_short_timeouts_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_range_set_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_features_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_init_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pet_and_disarm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failing_pets_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failing_magic_close_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_call_failing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusal_then_failing_disarm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_libc_table, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
