/*
 * virt.h — the agent's hypervisor, through libvirt. The only module that
 * includes libvirt headers (virt.c, virt_uvloop.c).
 *
 * What it does:
 *   - opens the configured URI (test:///default, test:///ABS/PATH/host.xml,
 *     qemu:///system, qemu+unix:///system?socket=...), turns on keepalive
 *     for remote drivers (5 s x 3), and when libvirt goes away marks the
 *     host unreachable (health carries libvirt's own message) and reconnects
 *     with backoff (1 s doubling to 30 s) from a uv timer, while the agent
 *     keeps serving;
 *   - keeps the VM inventory cached, updated by libvirt's lifecycle and
 *     metadata events (delivered on the agent's libuv loop, see
 *     virt_event_register_uv) and by a periodic reconcile (10 s) that
 *     re-reads everything to catch what an event missed;
 *   - keeps each VM's HA flag, restart priority and owner epoch in the
 *     domain's own <metadata> under the meshvisor namespace, so they
 *     survive agent restarts and `virsh metadata DOM VIRT_META_NS` shows
 *     them:  <meshvisor:vm ha="yes" priority="10" epoch="3"/>
 *   - defines, starts, shuts down, destroys and undefines VMs, with errors
 *     as negative errno and libvirt's message carried into the caller's
 *     buffer.
 *
 * Two ways to use it:
 *   - virt_new(uri): no loop. Nothing happens by itself; the caller polls
 *     virt_check() (opens, checks, re-opens), and gets no events.
 *   - virt_new_opts() with a loop: virt_event_register_uv(loop) must have
 *     been called first, once per process, before any connection opens.
 *     Connecting, reconnecting, events and reconcile run on that loop; the
 *     first attempt happens on the loop's next iteration (or at once with
 *     virt_check()).
 * Every function must be called from the loop's thread (libvirt calls the
 * event implementation from the thread that calls it).
 *
 * Blocking: calls that go to libvirt (virt_check, virt_list_vms,
 * virt_host_info, virt_reconcile, virt_vm_*) are synchronous round trips —
 * nothing for the test driver, a local socket for qemu:///system. So are
 * the connects the loop makes: the first successful one also reads the
 * host capabilities (seconds on a cold qemu:///system daemon; 8 s in the
 * lab), so the agent should make it with virt_check() before it serves.
 * A daemon that is down fails a connect at once; one that is hung (alive
 * but not answering) holds the connect, and the loop, until it answers.
 * virt_vms() and virt_health() only read the cache.
 *
 * Ownership: struct virt owns its connection and cache. virt_health() and
 * virt_vms() return views valid until the next virt_ call that talks to
 * libvirt or until control returns to the loop (an event may refresh the
 * cache). virt_list_vms() gives the caller an array to free().
 * With a loop, virt_free() closes uv handles: its memory (and libvirt's
 * handles and timers) is released from close callbacks, so run the loop
 * once more after it (uv_run until it returns, or UV_RUN_NOWAIT a few
 * times). Never call virt_free() from inside the on_change callback.
 */
#ifndef MESHVISOR_VIRT_H
#define MESHVISOR_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The XML namespace of meshvisor's per-VM metadata element, and its prefix. */
#define VIRT_META_NS "https://meshvisor.dev/xmlns/vm/1"
#define VIRT_META_PREFIX "meshvisor"

#define VIRT_NAME_MAX 256    /* longer domain names are left out, with a warning */
#define VIRT_UUID_LEN 37     /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */
#define VIRT_PRIORITY_MAX 1000

/* Defaults (why these values):
 * reconcile 10 s: events normally keep the cache exact; reconcile only
 *   bounds how stale a missed event can leave it, and costs a few libvirt
 *   round trips per VM;
 * backoff 1 s doubling to 30 s: a restarted libvirtd is back within a few
 *   seconds, a broken one is not worth hammering;
 * keepalive 5 s x 3: a dead remote libvirtd is noticed within ~20 s even
 *   with no traffic (the lab uses 1 s x 3 on the daemon side). */
#define VIRT_RECONCILE_MS_DEFAULT 10000u
#define VIRT_BACKOFF_MIN_MS_DEFAULT 1000u
#define VIRT_BACKOFF_MAX_MS_DEFAULT 30000u
#define VIRT_KEEPALIVE_INTERVAL_S_DEFAULT 5
#define VIRT_KEEPALIVE_COUNT_DEFAULT 3u

enum virt_vm_state {
	VIRT_VM_OTHER = 0, /* no state, being shut down, or unknown */
	VIRT_VM_RUNNING,   /* running or blocked */
	VIRT_VM_PAUSED,    /* paused by the host, or suspended by the guest (PM) */
	VIRT_VM_SHUTOFF,
	VIRT_VM_CRASHED,
};

struct virt_vm {
	char name[VIRT_NAME_MAX];
	char uuid[VIRT_UUID_LEN];
	enum virt_vm_state state;
	unsigned vcpus;            /* current vCPUs */
	uint64_t memory_kib;       /* current allocation */
	uint64_t max_memory_kib;
	bool persistent;           /* defined (false: transient, gone when stopped) */
	/* From <meshvisor:vm/>; false/0/0 when the element is absent. */
	bool ha;
	int priority;              /* 0..VIRT_PRIORITY_MAX, larger restarts first */
	uint64_t epoch;            /* ownership epoch, bumped by every move */
};

struct virt_host {
	unsigned cpus;             /* logical CPUs */
	unsigned mhz;
	uint64_t memory_kib;       /* total */
	uint64_t free_kib;         /* free + buffers + cache where libvirt reports them */
	bool free_estimated;       /* driver has no real figure (test driver):
	                              total minus the memory of active VMs */
	char cpu_model[64];        /* host CPU model from capabilities, else the arch */
	bool have_load;            /* load average read (local URIs only) */
	double load[3];            /* 1, 5, 15 minutes */
};

struct virt_health {
	bool reachable;
	char error[512];   /* libvirt's own message when not reachable */
	unsigned cpus;
	uint64_t memory_kib;
	char cpu_model[64];
	uint64_t connects; /* successful connections so far */
	unsigned failures; /* failed attempts since the last success */
	unsigned retry_ms; /* delay before the scheduled next attempt; 0 if none */
};

enum virt_change {
	VIRT_CHANGE_CONNECTED,      /* vm_name NULL */
	VIRT_CHANGE_DISCONNECTED,   /* vm_name NULL; health says why */
	VIRT_CHANGE_VM_EVENT,       /* a lifecycle or metadata event; cache updated */
	VIRT_CHANGE_VM_RECONCILED,  /* a reconcile found this VM added, removed or changed */
};

struct virt;
typedef void (*virt_change_fn)(struct virt *v, enum virt_change what, const char *vm_name,
                               void *ud);

struct virt_options {
	const char *uri;             /* copied */
	uv_loop_t *loop;             /* NULL: no events, timers or reconnects */
	unsigned reconcile_ms;       /* 0: VIRT_RECONCILE_MS_DEFAULT */
	unsigned backoff_min_ms;     /* 0: VIRT_BACKOFF_MIN_MS_DEFAULT */
	unsigned backoff_max_ms;     /* 0: VIRT_BACKOFF_MAX_MS_DEFAULT */
	int keepalive_interval_s;    /* 0: default; <0: keepalive off */
	unsigned keepalive_count;    /* 0: default */
	virt_change_fn on_change;    /* may be NULL; called from the loop */
	void *ud;
};

/* Registers libvirt's event loop implementation on this libuv loop
 * (virt_uvloop.c). Once per process, before any connection opens.
 * Returns 0 (also when called again with the same loop), -EBUSY when
 * already registered on another loop. */
int virt_event_register_uv(uv_loop_t *loop);
/* Handles (fd watches) and timeouts libvirt holds on the loop right now,
 * including removed ones whose close has not completed. For tests. */
void virt_event_uv_counts(size_t *handles, size_t *timeouts);

struct virt *virt_new(const char *uri);
struct virt *virt_new_opts(const struct virt_options *o);
void virt_free(struct virt *v);
const char *virt_uri(const struct virt *v);
/* Checks the connection and refreshes health; returns true if libvirt is
 * reachable. Without a loop it also (re)opens a closed or dead connection.
 * With a loop it opens only the very first time (call it once right after
 * virt_new_opts, before serving); later reconnects are the retry timer's,
 * with backoff, so calling this often never hammers a broken daemon.
 * Blocking: a local socket round trip (nothing for the test driver). */
bool virt_check(struct virt *v);
const struct virt_health *virt_health(const struct virt *v);

/* Delay before reconnect attempt number `failures` (0 for the first retry
 * after a loss): min_ms doubled per failure, capped at max_ms. */
unsigned virt_backoff_ms(unsigned failures, unsigned min_ms, unsigned max_ms);

/* ---- inventory and capacity -------------------------------------------- */

/* The cached inventory, in libvirt's listing order. */
const struct virt_vm *virt_vms(const struct virt *v, size_t *n);
/* Reads every VM from libvirt now. *out is malloc'ed (NULL when n is 0),
 * the caller frees it. Does not touch the cache. 0 or -errno. */
int virt_list_vms(struct virt *v, struct virt_vm **out, size_t *n);
/* Re-reads the inventory into the cache and calls on_change for every VM
 * added, removed or changed. Returns the number of such VMs, or -errno. */
int virt_reconcile(struct virt *v);
/* Host capacity now. 0 or -errno (-ENOTCONN when libvirt is unreachable). */
int virt_host_info(struct virt *v, struct virt_host *out);

const char *virt_vm_state_name(enum virt_vm_state s);

/* ---- lifecycle ---------------------------------------------------------- */
/*
 * Each returns 0 or a negative errno with a message for the operator in
 * err (libvirt's own text where libvirt refused):
 *   -ENOENT   no VM named X on this host
 *   -EEXIST   X names one VM and is the UUID of another; or define of a
 *             name or UUID that already exists
 *   -EINVAL   bad XML, bad argument, or an operation invalid in the VM's
 *             state (start of a running VM, shutdown of a stopped one)
 *   -EBUSY    undefine of a running or paused VM
 *   -ENOTCONN libvirt is not reachable
 *   -EIO      any other libvirt failure
 * Every successful call refreshes that VM in the cache at once (events
 * follow and are harmless repeats).
 */
int virt_vm_find(struct virt *v, const char *name_or_uuid, struct virt_vm *out, char *err,
                 size_t errlen);
/* Defines a persistent VM; *out (may be NULL) gets its name, UUID, ... */
int virt_vm_define(struct virt *v, const char *xml, struct virt_vm *out, char *err,
                   size_t errlen);
int virt_vm_start(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Asks the guest to power off (ACPI); returns before it has. */
int virt_vm_shutdown(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Powers off at once. */
int virt_vm_destroy(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Removes the definition of a stopped VM (managed save and snapshot
 * metadata go with it; NVRAM is kept). A running or paused VM is refused. */
int virt_vm_undefine(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Sets the HA flag and restart priority (0..VIRT_PRIORITY_MAX), keeping the
 * epoch. Written to the persistent config and, when active, the live one. */
int virt_vm_set_ha(struct virt *v, const char *name_or_uuid, bool on, int priority, char *err,
                   size_t errlen);
/* Sets the ownership epoch, keeping the HA flag and priority. */
int virt_vm_set_epoch(struct virt *v, const char *name_or_uuid, uint64_t epoch, char *err,
                      size_t errlen);

/* Tests only: behave as if libvirt had reported the connection closed
 * (what the close callback does for a dead remote daemon; the test driver
 * never closes by itself). */
void virt_inject_close(struct virt *v);

#endif
