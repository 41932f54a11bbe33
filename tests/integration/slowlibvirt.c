/*
 * slowlibvirt.c — an LD_PRELOAD shim for a libvirtd that answers slowly,
 * for the tests that check that the agent's event loop never waits for one
 * (test_slowlibvirt.py, test_fence_slow.py). The calls that change a VM
 * (define, start, shutdown, destroy, undefine, metadata writes) take
 * MV_SLOW_LIBVIRT_MS milliseconds longer; MV_SLOW_DESTROY_MS overrides that
 * delay for virDomainDestroy / virDomainDestroyFlags, and MV_SLOW_CREATE_MS
 * for virDomainCreate / virDomainCreateWithFlags (a libvirtd slow to destroy
 * or start a guest, say, and quick otherwise). Reads pass through untouched
 * (the loop still makes some itself: a lifecycle event's refresh); with no
 * variable set, the shim does nothing. While the file
 * MV_SLOW_LIBVIRT_FAIL_START names exists, a start fails after its delay
 * (a VM that will not start). The product has no test hooks; this slows
 * the agent binary's own calls into libvirt.so, through the PLT (the
 * in-process test driver runs inside that library).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

/* The delay in milliseconds for a call: $var if set (0 included), else
 * MV_SLOW_LIBVIRT_MS, else none. var NULL: the general delay only. */
static unsigned long slowlibvirt_ms(const char *var)
{
	const char *s = var != NULL ? getenv(var) : NULL;
	if (s == NULL || s[0] == '\0')
		s = getenv("MV_SLOW_LIBVIRT_MS");
	return s != NULL ? strtoul(s, NULL, 10) : 0;
}

static void slowlibvirt_wait(const char *var)
{
	unsigned long ms = slowlibvirt_ms(var);
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

/* Whether starts are to fail now (MV_SLOW_LIBVIRT_FAIL_START's file exists). */
static int slowlibvirt_start_fails(void)
{
	const char *fail = getenv("MV_SLOW_LIBVIRT_FAIL_START");
	return fail != NULL && fail[0] != '\0' && access(fail, F_OK) == 0;
}

int virDomainCreate(virDomainPtr d)
{
	static void *real;
	slowlibvirt_wait("MV_SLOW_CREATE_MS");
	if (slowlibvirt_start_fails())
		return -1;
	return ((int (*)(virDomainPtr))slowlibvirt_real(&real, "virDomainCreate"))(d);
}

int virDomainCreateWithFlags(virDomainPtr d, unsigned int flags)
{
	static void *real;
	slowlibvirt_wait("MV_SLOW_CREATE_MS");
	if (slowlibvirt_start_fails())
		return -1;
	return ((int (*)(virDomainPtr, unsigned))slowlibvirt_real(
	    &real, "virDomainCreateWithFlags"))(d, flags);
}

int virDomainShutdown(virDomainPtr d)
{
	static void *real;
	slowlibvirt_wait(NULL);
	return ((int (*)(virDomainPtr))slowlibvirt_real(&real, "virDomainShutdown"))(d);
}

int virDomainDestroy(virDomainPtr d)
{
	static void *real;
	slowlibvirt_wait("MV_SLOW_DESTROY_MS");
	return ((int (*)(virDomainPtr))slowlibvirt_real(&real, "virDomainDestroy"))(d);
}

int virDomainDestroyFlags(virDomainPtr d, unsigned int flags)
{
	static void *real;
	slowlibvirt_wait("MV_SLOW_DESTROY_MS");
	return ((int (*)(virDomainPtr, unsigned))slowlibvirt_real(&real, "virDomainDestroyFlags"))(
	    d, flags);
}

int virDomainUndefineFlags(virDomainPtr d, unsigned int flags)
{
	static void *real;
	slowlibvirt_wait(NULL);
	return ((int (*)(virDomainPtr, unsigned))slowlibvirt_real(&real, "virDomainUndefineFlags"))(
	    d, flags);
}

virDomainPtr virDomainDefineXML(virConnectPtr c, const char *xml)
{
	static void *real;
	slowlibvirt_wait(NULL);
	return ((virDomainPtr(*)(virConnectPtr, const char *))slowlibvirt_real(
	    &real, "virDomainDefineXML"))(c, xml);
}

int virDomainSetMetadata(virDomainPtr d, int type, const char *metadata, const char *key,
                         const char *uri, unsigned int flags)
{
	static void *real;
	slowlibvirt_wait(NULL);
	return ((int (*)(virDomainPtr, int, const char *, const char *, const char *,
	                 unsigned))slowlibvirt_real(&real, "virDomainSetMetadata"))(
	    d, type, metadata, key, uri, flags);
}
