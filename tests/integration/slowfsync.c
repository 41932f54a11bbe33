/*
 * slowfsync.c — an LD_PRELOAD shim that makes fsync(2) and fdatasync(2)
 * of regular files take MV_SLOW_FSYNC_MS milliseconds longer: a slow or
 * saturated disk, for the tests that check that the agent's event loop
 * never waits for one (test_slowdisk.py). Directories and everything else
 * pass through untouched; unset or 0, the shim does nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void slowfsync_wait(int fd)
{
	const char *s = getenv("MV_SLOW_FSYNC_MS");
	unsigned long ms = s != NULL ? strtoul(s, NULL, 10) : 0;
	struct stat st;
	if (ms == 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	int saved = errno;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	errno = saved;
}

int fsync(int fd)
{
	static int (*real)(int);
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	slowfsync_wait(fd);
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	slowfsync_wait(fd);
	return real(fd);
}
