/*
 * slowvirt.c — an LD_PRELOAD shim that makes libvirt's virDomainDestroy
 * and virDomainDestroyFlags take MV_SLOW_DESTROY_MS milliseconds longer:
 * a libvirtd slow to destroy a guest, for the test that checks that the
 * agent's event loop never waits for a fence's destroys
 * (test_fence_slow.py). Unset or 0, the shim does nothing. The product
 * has no test hooks; this slows the agent binary's own calls into
 * libvirt.so (the test driver runs inside that library).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static void slowvirt_wait(void)
{
	const char *s = getenv("MV_SLOW_DESTROY_MS");
	unsigned long ms = s != NULL ? strtoul(s, NULL, 10) : 0;
	if (ms == 0)
		return;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	int saved = errno;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	errno = saved;
}

/* (libvirt's virDomainPtr is a pointer: no libvirt header needed) */
int virDomainDestroy(void *dom);
int virDomainDestroyFlags(void *dom, unsigned int flags);

int virDomainDestroy(void *dom)
{
	static int (*real)(void *);
	if (real == NULL)
		real = (int (*)(void *))dlsym(RTLD_NEXT, "virDomainDestroy");
	slowvirt_wait();
	return real(dom);
}

int virDomainDestroyFlags(void *dom, unsigned int flags)
{
	static int (*real)(void *, unsigned int);
	if (real == NULL)
		real = (int (*)(void *, unsigned int))dlsym(RTLD_NEXT, "virDomainDestroyFlags");
	slowvirt_wait();
	return real(dom, flags);
}
