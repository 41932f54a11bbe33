/*
 * slowlibvirt.c — an LD_PRELOAD shim that makes libvirt's calls that change
 * a VM (define, start, shutdown, destroy, undefine, metadata writes) take
 * MV_SLOW_LIBVIRT_MS milliseconds longer: a libvirtd that answers slowly,
 * for the tests that check that the agent's event loop never waits for one
 * (test_slowlibvirt.py). Reads pass through untouched (the loop still
 * makes some itself: a lifecycle event's refresh); unset or 0, the shim
 * does nothing. While the file MV_SLOW_LIBVIRT_FAIL_START names exists,
 * virDomainCreate fails after its delay (a VM that will not start). Works
 * for the in-process test driver too: the agent calls libvirt's public
 * entry points through the PLT.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

static void slowlibvirt_wait(void)
{
	const char *s = getenv("MV_SLOW_LIBVIRT_MS");
	unsigned long ms = s != NULL ? strtoul(s, NULL, 10) : 0;
	if (ms == 0)
		return;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	int saved = errno;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	errno = saved;
}

/* The real function `name` (looked up once). */
static void *slowlibvirt_real(void **cache, const char *name)
{
	if (*cache == NULL)
		*cache = dlsym(RTLD_NEXT, name);
	return *cache;
}

int virDomainCreate(virDomainPtr d)
{
	static void *real;
	slowlibvirt_wait();
	const char *fail = getenv("MV_SLOW_LIBVIRT_FAIL_START");
	if (fail != NULL && fail[0] != '\0' && access(fail, F_OK) == 0)
		return -1;
	return ((int (*)(virDomainPtr))slowlibvirt_real(&real, "virDomainCreate"))(d);
}

int virDomainShutdown(virDomainPtr d)
{
	static void *real;
	slowlibvirt_wait();
	return ((int (*)(virDomainPtr))slowlibvirt_real(&real, "virDomainShutdown"))(d);
}

int virDomainDestroy(virDomainPtr d)
{
	static void *real;
	slowlibvirt_wait();
	return ((int (*)(virDomainPtr))slowlibvirt_real(&real, "virDomainDestroy"))(d);
}

int virDomainUndefineFlags(virDomainPtr d, unsigned int flags)
{
	static void *real;
	slowlibvirt_wait();
	return ((int (*)(virDomainPtr, unsigned))slowlibvirt_real(&real, "virDomainUndefineFlags"))(
	    d, flags);
}

virDomainPtr virDomainDefineXML(virConnectPtr c, const char *xml)
{
	static void *real;
	slowlibvirt_wait();
	return ((virDomainPtr(*)(virConnectPtr, const char *))slowlibvirt_real(
	    &real, "virDomainDefineXML"))(c, xml);
}

int virDomainSetMetadata(virDomainPtr d, int type, const char *metadata, const char *key,
                         const char *uri, unsigned int flags)
{
	static void *real;
	slowlibvirt_wait();
	return ((int (*)(virDomainPtr, int, const char *, const char *, const char *,
	                 unsigned))slowlibvirt_real(&real, "virDomainSetMetadata"))(
	    d, type, metadata, key, uri, flags);
}
