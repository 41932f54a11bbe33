/*
 * crashvirt.c — an LD_PRELOAD shim that crashes a guest the way libvirt
 * reports it, for the test of VM-level HA's move (test_crash_move.py):
 * libvirt's test driver cannot crash a VM or kill its emulator. While the
 * agent has its lifecycle callback registered, a thread of the shim looks
 * every 50 ms for a file in MV_CRASHVIRT_DIR named after a VM; it removes
 * the file and destroys that VM through libvirt (not through the agent:
 * the VM's desired state stays "running"), and from then on the VM's
 * STOPPED event says CRASHED instead of DESTROYED and its shut-off state's
 * reason is CRASHED, until it starts again. Unset, the shim does nothing.
 * The product has no test hooks; this changes what the agent binary's own
 * calls into libvirt.so (the test driver runs inside that library) see.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#define CRASHVIRT_MAX 16
#define CRASHVIRT_NAME 256

static pthread_mutex_t crashvirt_lock = PTHREAD_MUTEX_INITIALIZER;
static char crashvirt_names[CRASHVIRT_MAX][CRASHVIRT_NAME]; /* crashed, not started since */
static virConnectPtr crashvirt_conn;                        /* the agent's, referenced */
static bool crashvirt_thread_on;

static bool crashvirt_is_crashed(const char *name)
{
	bool yes = false;
	pthread_mutex_lock(&crashvirt_lock);
	for (int i = 0; i < CRASHVIRT_MAX && name != NULL; i++)
		yes = yes || strcmp(crashvirt_names[i], name) == 0;
	pthread_mutex_unlock(&crashvirt_lock);
	return yes;
}

static void crashvirt_set(const char *name, bool crashed)
{
	pthread_mutex_lock(&crashvirt_lock);
	int free_slot = -1;
	for (int i = 0; i < CRASHVIRT_MAX; i++) {
		if (strcmp(crashvirt_names[i], name) == 0) {
			if (!crashed)
				crashvirt_names[i][0] = '\0';
			pthread_mutex_unlock(&crashvirt_lock);
			return;
		}
		if (crashvirt_names[i][0] == '\0' && free_slot < 0)
			free_slot = i;
	}
	if (crashed && free_slot >= 0)
		snprintf(crashvirt_names[free_slot], CRASHVIRT_NAME, "%s", name);
	pthread_mutex_unlock(&crashvirt_lock);
}

static void crashvirt_crash(const char *name)
{
	pthread_mutex_lock(&crashvirt_lock);
	virConnectPtr c = crashvirt_conn;
	if (c != NULL)
		virConnectRef(c);
	pthread_mutex_unlock(&crashvirt_lock);
	if (c == NULL)
		return;
	virDomainPtr d = virDomainLookupByName(c, name);
	if (d != NULL) {
		crashvirt_set(name, true);
		if (virDomainDestroy(d) < 0)
			crashvirt_set(name, false);
		else
			fprintf(stderr, "crashvirt: crashed %s\n", name);
		virDomainFree(d);
	}
	virConnectClose(c);
}

static void *crashvirt_watch(void *arg)
{
	const char *dir = arg;
	for (;;) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
		DIR *dh = opendir(dir);
		if (dh == NULL)
			continue;
		struct dirent *e;
		while ((e = readdir(dh)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (unlink(path) == 0)
				crashvirt_crash(e->d_name);
		}
		closedir(dh);
	}
	return NULL;
}

struct crashvirt_cb {
	virConnectDomainEventGenericCallback cb; /* a lifecycle callback, as registered */
	void *opaque;
	virFreeCallback freecb;
};

static int crashvirt_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	struct crashvirt_cb *w = opaque;
	const char *name = virDomainGetName(d);
	if (event == VIR_DOMAIN_EVENT_STARTED && name != NULL)
		crashvirt_set(name, false);
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED &&
	    crashvirt_is_crashed(name))
		detail = VIR_DOMAIN_EVENT_STOPPED_CRASHED;
	typedef int (*lifecycle_fn)(virConnectPtr, virDomainPtr, int, int, void *);
	return ((lifecycle_fn)(void (*)(void))w->cb)(c, d, event, detail, w->opaque);
}

static void crashvirt_free(void *opaque)
{
	struct crashvirt_cb *w = opaque;
	if (w->freecb != NULL)
		w->freecb(w->opaque);
	free(w);
}

int virConnectDomainEventRegisterAny(virConnectPtr c, virDomainPtr d, int id,
                                     virConnectDomainEventGenericCallback cb, void *opaque,
                                     virFreeCallback freecb)
{
	static void *real;
	if (real == NULL)
		real = dlsym(RTLD_NEXT, "virConnectDomainEventRegisterAny");
	typedef int (*reg_fn)(virConnectPtr, virDomainPtr, int,
	                      virConnectDomainEventGenericCallback, void *, virFreeCallback);
	const char *dir = getenv("MV_CRASHVIRT_DIR");
	struct crashvirt_cb *w = NULL;
	if (dir != NULL && dir[0] != '\0' && id == VIR_DOMAIN_EVENT_ID_LIFECYCLE &&
	    (w = calloc(1, sizeof(*w))) != NULL) {
		w->cb = cb;
		w->opaque = opaque;
		w->freecb = freecb;
		pthread_mutex_lock(&crashvirt_lock);
		if (crashvirt_conn != NULL)
			virConnectClose(crashvirt_conn);
		virConnectRef(c);
		crashvirt_conn = c;
		bool start = !crashvirt_thread_on;
		crashvirt_thread_on = true;
		pthread_mutex_unlock(&crashvirt_lock);
		pthread_t t;
		if (start && pthread_create(&t, NULL, crashvirt_watch, (void *)dir) == 0)
			pthread_detach(t);
		int rc = ((reg_fn)real)(c, d, id, VIR_DOMAIN_EVENT_CALLBACK(crashvirt_lifecycle), w,
		                        crashvirt_free);
		if (rc < 0)
			free(w);
		return rc;
	}
	return ((reg_fn)real)(c, d, id, cb, opaque, freecb);
}

int virDomainGetState(virDomainPtr d, int *state, int *reason, unsigned int flags)
{
	static void *real;
	if (real == NULL)
		real = dlsym(RTLD_NEXT, "virDomainGetState");
	int rc = ((int (*)(virDomainPtr, int *, int *, unsigned int))real)(d, state, reason, flags);
	if (rc == 0 && state != NULL && reason != NULL && *state == VIR_DOMAIN_SHUTOFF &&
	    *reason == VIR_DOMAIN_SHUTOFF_DESTROYED && crashvirt_is_crashed(virDomainGetName(d)))
		*reason = VIR_DOMAIN_SHUTOFF_CRASHED;
	return rc;
}
