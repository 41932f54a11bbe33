/*
 * slowvirt.c — an LD_PRELOAD shim that makes libvirt's virDomainDestroy
 * and virDomainDestroyFlags take MV_SLOW_DESTROY_MS milliseconds longer,
 * and virDomainCreate / virDomainCreateWithFlags MV_SLOW_CREATE_MS longer:
 * a libvirtd slow to destroy or start a guest, for the test that checks
 * that the agent's event loop never waits for a fence's destroys or an HA
 * restart's cleanup (test_fence_slow.py). Unset or 0, the shim does
 * nothing for that call. The product
 * has no test hooks; this slows the agent binary's own calls into
 * libvirt.so (the test driver runs inside that library).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static void slowvirt_wait(const char *var)
{
	const char *s = getenv(var);
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
int virDomainCreate(void *dom);
int virDomainCreateWithFlags(void *dom, unsigned int flags);

/* fn(dom[, flags]): waits for var, then calls libvirt's own fn */
#define SLOWVIRT_WRAP(fn, var, params, args, types)                 \
	int fn params                                               \
	{                                                           \
		static int(*real) types;                            \
		if (real == NULL)                                   \
			real = (int(*) types)dlsym(RTLD_NEXT, #fn); \
		slowvirt_wait(var);                                 \
		return real args;                                   \
	}

SLOWVIRT_WRAP(virDomainDestroy, "MV_SLOW_DESTROY_MS", (void *dom), (dom), (void *))
SLOWVIRT_WRAP(virDomainDestroyFlags, "MV_SLOW_DESTROY_MS", (void *dom, unsigned int flags),
              (dom, flags), (void *, unsigned int))
SLOWVIRT_WRAP(virDomainCreate, "MV_SLOW_CREATE_MS", (void *dom), (dom), (void *))
SLOWVIRT_WRAP(virDomainCreateWithFlags, "MV_SLOW_CREATE_MS", (void *dom, unsigned int flags),
              (dom, flags), (void *, unsigned int))
