/*
 * fakewd.c — an LD_PRELOAD shim that makes one plain file look like a
 * Linux watchdog character device to the agent, and writes down what the
 * agent did with it, so that integration tests can tell whether a real
 * watchdog would have reset the host.
 *
 * Why: the agent's watchdog code (agent/hv/watchdog.c) needs the ioctls of
 * <linux/watchdog.h>, which a plain file refuses; softdog would reboot the
 * test machine. The shim answers them for the file named by MV_FAKEWD_PATH
 * and passes every other descriptor through to libc untouched.
 *
 * Environment:
 *   MV_FAKEWD_PATH     the path to emulate (an existing plain file; its
 *                      contents are never touched). Unset: the shim does
 *                      nothing.
 *   MV_FAKEWD_LOG      file the operations are appended to (default
 *                      MV_FAKEWD_PATH.log)
 *   MV_FAKEWD_MIN_TIMEOUT  WDIOC_SETTIMEOUT rounds up to this many seconds
 *                      (a driver with a coarse timer), default 1
 *   MV_FAKEWD_TIMEOUT  the timeout before any set, default 60 (softdog's)
 *   MV_FAKEWD_OPTIONS  WDIOC_GETSUPPORT's options, default
 *                      WDIOF_SETTIMEOUT|WDIOF_MAGICCLOSE|WDIOF_KEEPALIVEPING
 *
 * Like the kernel's watchdog core: one opener at a time (EBUSY), open
 * starts the timer, a write pets and a 'V' in it allows the next close to
 * stop the timer, WDIOC_SETTIMEOUT pets, WDIOC_KEEPALIVE pets. Log lines,
 * "SECONDS OP [ARGS]" with SECONDS from CLOCK_MONOTONIC (Python's
 * time.monotonic() reads the same clock):
 *   open                     opened: the timer runs
 *   open-failed ERRNO
 *   getsupport
 *   gettimeout N
 *   settimeout ASKED USED    the timer now uses USED seconds (a pet)
 *   keepalive                a pet
 *   pet                      a write without 'V'
 *   magic                    a write with 'V' (also a pet)
 *   magic-close              closed after 'V': the timer stopped
 *   close                    closed without: the timer runs on
 *   exit-open                the process exits with it open (it runs on)
 * Each line is one write(2) with O_APPEND, so concurrent agents' lines do
 * not interleave (each agent gets its own file in the tests anyway).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* glibc's entry points for open with _FORTIFY_SOURCE; declared here
 * because only the fortify headers do. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_close)(int);

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *wd_path; /* MV_FAKEWD_PATH, or NULL: pass everything through */
static char wd_log[4096];
static int wd_fd = -1; /* the emulated device's descriptor while open */
static int wd_timeout = 60;
static int wd_min_timeout = 1;
static unsigned wd_options = WDIOF_SETTIMEOUT | WDIOF_MAGICCLOSE | WDIOF_KEEPALIVEPING;
static int wd_allow_release;

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return dflt;
	return (int)strtol(v, NULL, 0);
}

__attribute__((constructor)) static void fakewd_init(void)
{
	if (real_open != NULL)
		return;
	real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	real_openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
	real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	const char *p = getenv("MV_FAKEWD_PATH");
	if (p == NULL || *p == '\0')
		return;
	wd_path = p;
	const char *l = getenv("MV_FAKEWD_LOG");
	if (l != NULL && *l != '\0')
		snprintf(wd_log, sizeof(wd_log), "%s", l);
	else
		snprintf(wd_log, sizeof(wd_log), "%s.log", p);
	wd_timeout = env_int("MV_FAKEWD_TIMEOUT", 60);
	wd_min_timeout = env_int("MV_FAKEWD_MIN_TIMEOUT", 1);
	wd_options = (unsigned)env_int("MV_FAKEWD_OPTIONS", (int)wd_options);
}

static void wd_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wd_note(const char *fmt, ...)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char line[256];
	int n = snprintf(line, sizeof(line), "%lld.%09ld ", (long long)ts.tv_sec, ts.tv_nsec);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	int saved = errno;
	int fd = real_open(wd_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (real_write(fd, line, (size_t)n) < 0) {
			/* nothing to do: the test will miss a line and say so */
		}
		real_close(fd);
	}
	errno = saved;
}

__attribute__((destructor)) static void fakewd_fini(void)
{
	if (wd_path != NULL && wd_fd >= 0)
		wd_note("exit-open");
}

static int is_wd_path(const char *path)
{
	return wd_path != NULL && path != NULL && strcmp(path, wd_path) == 0;
}

static int wd_open(const char *path, int flags)
{
	pthread_mutex_lock(&wd_lock);
	int fd;
	if (wd_fd >= 0) {
		wd_note("open-failed EBUSY");
		errno = EBUSY;
		fd = -1;
	} else {
		fd = real_open(path, flags & ~(O_CREAT | O_TRUNC | O_APPEND));
		if (fd < 0) {
			int e = errno;
			wd_note("open-failed %d", e);
			errno = e;
		} else {
			wd_fd = fd;
			wd_allow_release = 0;
			wd_note("open");
		}
	}
	pthread_mutex_unlock(&wd_lock);
	return fd;
}

/* ---- the intercepted calls ------------------------------------------------------------- */

int open(const char *path, int flags, ...)
{
	fakewd_init();
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (is_wd_path(path))
		return wd_open(path, flags);
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	fakewd_init();
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (is_wd_path(path))
		return wd_open(path, flags);
	return real_open(path, flags, mode);
}

int __open_2(const char *path, int flags)
{
	fakewd_init();
	if (is_wd_path(path))
		return wd_open(path, flags);
	return real_open(path, flags);
}

int __open64_2(const char *path, int flags)
{
	return __open_2(path, flags);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	fakewd_init();
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (is_wd_path(path))
		return wd_open(path, flags);
	return real_openat(dirfd, path, flags, mode);
}

int ioctl(int fd, unsigned long request, ...)
{
	fakewd_init();
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (wd_path == NULL || fd < 0 || fd != wd_fd)
		return real_ioctl(fd, request, arg);
	pthread_mutex_lock(&wd_lock);
	int rc = 0, e = 0;
	switch (request) {
	case WDIOC_GETSUPPORT: {
		struct watchdog_info *wi = arg;
		memset(wi, 0, sizeof(*wi));
		wi->options = wd_options;
		snprintf((char *)wi->identity, sizeof(wi->identity), "meshvisor fakewd");
		wd_note("getsupport");
		break;
	}
	case WDIOC_GETTIMEOUT:
		*(int *)arg = wd_timeout;
		wd_note("gettimeout %d", wd_timeout);
		break;
	case WDIOC_SETTIMEOUT: {
		int asked = *(int *)arg;
		if (!(wd_options & WDIOF_SETTIMEOUT)) {
			rc = -1;
			e = EOPNOTSUPP;
			break;
		}
		if (asked < 1 || asked > 65535) {
			rc = -1;
			e = EINVAL;
			break;
		}
		wd_timeout = asked < wd_min_timeout ? wd_min_timeout : asked;
		*(int *)arg = wd_timeout;
		wd_note("settimeout %d %d", asked, wd_timeout);
		break;
	}
	case WDIOC_KEEPALIVE:
		wd_note("keepalive");
		break;
	default:
		rc = -1;
		e = ENOTTY;
	}
	pthread_mutex_unlock(&wd_lock);
	if (rc < 0)
		errno = e;
	return rc;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	fakewd_init();
	if (wd_path == NULL || fd < 0 || fd != wd_fd)
		return real_write(fd, buf, len);
	pthread_mutex_lock(&wd_lock);
	wd_allow_release = memchr(buf, 'V', len) != NULL;
	wd_note("%s", wd_allow_release ? "magic" : "pet");
	pthread_mutex_unlock(&wd_lock);
	return (ssize_t)len;
}

int close(int fd)
{
	fakewd_init();
	if (wd_path == NULL || fd < 0 || fd != wd_fd)
		return real_close(fd);
	pthread_mutex_lock(&wd_lock);
	/* a driver without WDIOF_MAGICCLOSE stops on any close */
	if (wd_allow_release || !(wd_options & WDIOF_MAGICCLOSE))
		wd_note("magic-close");
	else
		wd_note("close");
	wd_fd = -1;
	wd_allow_release = 0;
	int rc = real_close(fd);
	pthread_mutex_unlock(&wd_lock);
	return rc;
}
