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
 *     virt_event_register_uv; with a worker the event's read of its VM
 *     runs there and only its result is applied on the loop) and by a
 *     periodic reconcile (10 s) that re-reads everything to catch what an
 *     event missed;
 *   - keeps each VM's HA flag, restart priority, owner epoch,
 *     anti-affinity group and desired state in the domain's own <metadata>
 *     under the meshvisor namespace, so they survive agent restarts,
 *     travel with the definition (migration, offline move, the replicas
 *     failover restarts from) and `virsh metadata DOM VIRT_META_NS` shows
 *     them:
 *       <meshvisor:vm ha="yes" priority="10" epoch="3" group="db"
 *                     desired="stopped"/>
 *     (group="" or no group attribute: in no group; no desired attribute,
 *     or desired="running": the VM should run, so VMs defined by older
 *     versions keep running; desired="stopped": an operator stopped it
 *     through meshvisor, and the cluster leaves it stopped);
 *   - remembers why each VM last stopped (lifecycle event detail), for
 *     the agent's crash handling;
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
 * Every function must be called from the loop's thread, except where noted
 * (virt_vm_migrate, virt_vm_where: see "Threads" below; virt_remote_fence,
 * which needs no struct virt at all). libvirt calls the
 * event implementation from the thread that makes a libvirt call;
 * virt_uvloop.c takes those calls from any thread and applies them to its
 * uv handles on the loop thread, where libvirt's callbacks always run.
 *
 * Blocking: calls that go to libvirt (virt_check, virt_list_vms,
 * virt_host_info, virt_reconcile, virt_vm_*) are synchronous round trips —
 * nothing for the test driver, a local socket for qemu:///system. So are
 * the connects the loop makes: the first successful one also reads the
 * host capabilities (seconds on a cold qemu:///system daemon; 8 s in the
 * lab), so the agent should make it with virt_check() before it serves.
 * A daemon that is down fails a connect at once; one that is hung (alive
 * but not answering) holds the connect, and the loop, until it answers.
 * With a worker (virt_options.worker) the calls the loop makes by itself
 * do not: the periodic reconcile lists on the worker's general lane and
 * applies the listing on the loop; reconnects open the connection there
 * (and read the capabilities, node info and the first listing there,
 * and register keepalive, the close callback and the domain events there;
 * the listing is applied before CONNECTED, and a second listing there
 * covers what changed before the events were registered); virt_host_info returns
 * the figures last read there and renews them; virt_check makes no round
 * trip; each lifecycle or metadata event only queues a read of its VM
 * there (coalesced per VM, at most VIRT_EVQ_MAX VMs waiting). A slow or
 * stopped libvirtd then holds worker threads, not the loop, unless the
 * agent itself asks (the synchronous virt_vm_* calls);
 * virt_vm_op_async runs the operator's calls there too.
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

#include "hvwork.h"

/* The XML namespace of meshvisor's per-VM metadata element, and its prefix. */
#define VIRT_META_NS "https://meshvisor.dev/xmlns/vm/1"
#define VIRT_META_PREFIX "meshvisor"

#define VIRT_NAME_MAX 256 /* longer domain names are left out, with a warning */
#define VIRT_UUID_LEN 37  /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */
#define VIRT_PRIORITY_MAX 1000
#define VIRT_GROUP_MAX 64 /* anti-affinity group: 1..63 of [A-Za-z0-9._-], NUL */

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
/* With a worker: VMs whose event waits for its read there (several events
 * of one VM take one entry). An event for a further VM is dropped, with a
 * warning, and a reconcile reads everything once the queue has drained:
 * libvirt sends a few events per VM start or stop, so only a host with
 * more VMs than this changing at once ever gets there. */
#define VIRT_EVQ_MAX 128

enum virt_vm_state {
	VIRT_VM_OTHER = 0, /* no state, being shut down, or unknown */
	VIRT_VM_RUNNING,   /* running or blocked */
	VIRT_VM_PAUSED,    /* paused by the host, or suspended by the guest (PM) */
	VIRT_VM_SHUTOFF,
	VIRT_VM_CRASHED,
};

/* Why a VM last stopped, as libvirt told us. Kept in the cache entry while
 * the VM stays stopped (shutoff or crashed) and reset to NONE when it is
 * seen running or paused again. Sources, most precise first:
 *   1. the STOPPED lifecycle event's detail (VIR_DOMAIN_EVENT_STOPPED_*),
 *      and the CRASHED event (a guest panic with <on_crash>preserve</>);
 *   2. when no event was seen (no loop, or the VM stopped while the agent
 *      was down), the shutoff state's reason (virDomainGetState). That one
 *      is coarser: the QEMU driver records VIR_DOMAIN_SHUTOFF_CRASHED both
 *      for a guest panic and for a QEMU that died (killed -9), so that
 *      case reads CRASHED, not FAILED; an unknown reason reads NONE.
 * A killed QEMU: libvirt's QEMU driver sees its monitor close without a
 * SHUTDOWN event ("assuming the domain crashed", qemu_process.c
 * processMonitorEOFEvent) and sends STOPPED with detail
 * VIR_DOMAIN_EVENT_STOPPED_FAILED (state reason VIR_DOMAIN_SHUTOFF_CRASHED):
 * VIRT_STOP_FAILED here. A guest panic with <on_crash>destroy</> sends
 * CRASHED/PANICKED then STOPPED/VIR_DOMAIN_EVENT_STOPPED_CRASHED. A clean
 * guest poweroff sends STOPPED_SHUTDOWN; virsh destroy / virDomainDestroy
 * STOPPED_DESTROYED. A transient VM is gone from the cache once stopped,
 * so only persistent VMs keep a reason. */
enum virt_stop_reason {
	VIRT_STOP_NONE = 0,  /* running, or never seen stopping */
	VIRT_STOP_SHUTDOWN,  /* guest / ACPI shutdown (STOPPED_SHUTDOWN) */
	VIRT_STOP_DESTROYED, /* destroyed through libvirt, by us or an admin */
	VIRT_STOP_CRASHED,   /* guest crashed / panicked (STOPPED_CRASHED, CRASHED) */
	VIRT_STOP_FAILED,    /* the emulator died, e.g. qemu killed -9 (STOPPED_FAILED) */
	VIRT_STOP_MIGRATED,  /* migrated away (STOPPED_MIGRATED) */
	VIRT_STOP_SAVED,     /* saved to a state file (STOPPED_SAVED) */
	VIRT_STOP_OTHER,     /* any other detail (e.g. snapshot revert) */
};

/* What the cluster keeps a VM at (meaningful for HA VMs: failover restarts
 * an HA VM whose desired state is running wherever it runs nowhere). Set
 * only by the operator's actions through meshvisor (vm start, shutdown,
 * destroy, create, set-ha); a VM started or stopped outside meshvisor
 * (virsh, the guest powering off) keeps its desired state. RUNNING is 0:
 * a VM without the attribute (or the element) should run. */
enum virt_desired {
	VIRT_DESIRED_RUNNING = 0,
	VIRT_DESIRED_STOPPED = 1,
};

struct virt_vm {
	char name[VIRT_NAME_MAX];
	char uuid[VIRT_UUID_LEN];
	enum virt_vm_state state;
	unsigned vcpus;      /* current vCPUs */
	uint64_t memory_kib; /* current allocation */
	uint64_t max_memory_kib;
	bool persistent; /* defined (false: transient, gone when stopped) */
	/* From <meshvisor:vm/>; false/0/0/""/RUNNING when the element is absent. */
	bool ha;
	int priority;                      /* 0..VIRT_PRIORITY_MAX, larger restarts first */
	uint64_t epoch;                    /* ownership epoch, bumped by every move */
	char group[VIRT_GROUP_MAX];        /* anti-affinity group; "" when none (or unreadable) */
	enum virt_desired desired;         /* RUNNING when absent (or unreadable) */
	enum virt_stop_reason stop_reason; /* see enum virt_stop_reason */
};

struct virt_host {
	unsigned cpus; /* logical CPUs */
	unsigned mhz;
	uint64_t memory_kib; /* total */
	uint64_t free_kib;   /* free + buffers + cache where libvirt reports them */
	bool free_estimated; /* driver has no real figure (test driver):
	                              total minus the memory of active VMs */
	char cpu_model[64];  /* host CPU model from capabilities, else the arch */
	bool have_load;      /* load average read (local URIs only) */
	double load[3];      /* 1, 5, 15 minutes */
};

struct virt_health {
	bool reachable;
	char error[512]; /* libvirt's own message when not reachable */
	unsigned cpus;
	uint64_t memory_kib;
	char cpu_model[64];
	uint64_t connects; /* successful connections so far */
	unsigned failures; /* failed attempts since the last success */
	unsigned retry_ms; /* delay before the scheduled next attempt; 0 if none */
};

enum virt_change {
	VIRT_CHANGE_CONNECTED,    /* vm_name NULL */
	VIRT_CHANGE_DISCONNECTED, /* vm_name NULL; health says why */
	/* A lifecycle or metadata event; the cache already has the VM as read
	 * after it, with the event's stop reason. With a worker the read runs
	 * there: the notice comes when it is back, and the events of one VM
	 * that came while its read waited share one read and one notice. */
	VIRT_CHANGE_VM_EVENT,
	VIRT_CHANGE_VM_RECONCILED, /* a reconcile found this VM added, removed or changed */
};

struct virt;
typedef void (*virt_change_fn)(struct virt *v, enum virt_change what, const char *vm_name,
                               void *ud);

struct virt_options {
	const char *uri;          /* copied */
	uv_loop_t *loop;          /* NULL: no events, timers or reconnects */
	unsigned reconcile_ms;    /* 0: VIRT_RECONCILE_MS_DEFAULT */
	unsigned backoff_min_ms;  /* 0: VIRT_BACKOFF_MIN_MS_DEFAULT */
	unsigned backoff_max_ms;  /* 0: VIRT_BACKOFF_MAX_MS_DEFAULT */
	int keepalive_interval_s; /* 0: default; <0: keepalive off */
	unsigned keepalive_count; /* 0: default */
	virt_change_fn on_change; /* may be NULL; called from the loop */
	void *ud;
	/* NULL: the periodic reconcile lists on the loop. Else it lists on
	 * this worker's general lane and applies the result on the loop (the
	 * worker must outlive the struct virt's jobs: stop it and wait for
	 * hvwork_inflight() == 0 before virt_free, or virt_free first: a
	 * listing still in flight is then dropped). */
	struct hvwork *worker;
};

/* Registers libvirt's event loop implementation on this libuv loop
 * (virt_uvloop.c). Once per process, before any connection opens.
 * Returns 0 (also when called again with the same loop), -EBUSY when
 * already registered on another loop. */
int virt_event_register_uv(uv_loop_t *loop);
/* Handles (fd watches) and timeouts libvirt holds on the loop right now,
 * including removed ones whose close has not completed. For tests. */
void virt_event_uv_counts(size_t *handles, size_t *timeouts);
/* Is h the one handle the bridge keeps for the process (unreferenced; an
 * exit check of the loop's handles skips it)? */
bool virt_event_is_bridge(const uv_handle_t *h);

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
/* Host capacity now. 0 or -errno (-ENOTCONN when libvirt is unreachable).
 * With a worker (virt_options.worker) only the first call reads libvirt
 * on the loop; later ones return the figures last read and start a fresh
 * read on the worker's general lane for the next call (at most one in
 * flight), so a slow libvirtd never holds the loop here; the test
 * driver's free memory, computed from the cached inventory, is always
 * current. */
int virt_host_info(struct virt *v, struct virt_host *out);

const char *virt_vm_state_name(enum virt_vm_state s);
/* "none", "shutdown", "destroyed", "crashed", "failed", "migrated",
 * "saved", "other". */
const char *virt_stop_reason_name(enum virt_stop_reason r);

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
/* virt_vm_find from the cache, without a libvirt round trip: the same
 * results and messages (-ENOTCONN when libvirt is unreachable, -ENOENT,
 * -EEXIST for an ambiguous key), as of the last event, reconcile or
 * operator call. For callers that must not wait on libvirt (the loop),
 * right after a look-up on the worker refreshed the entry. */
int virt_vm_cached(struct virt *v, const char *name_or_uuid, struct virt_vm *out, char *err,
                   size_t errlen);
/* Defines a persistent VM; *out (may be NULL) gets its name, UUID, ... */
int virt_vm_define(struct virt *v, const char *xml, struct virt_vm *out, char *err, size_t errlen);
int virt_vm_start(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Asks the guest to power off (ACPI); returns before it has. */
int virt_vm_shutdown(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Powers off at once. */
int virt_vm_destroy(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Removes the definition of a stopped VM (managed save and snapshot
 * metadata go with it; NVRAM is kept). A running or paused VM is refused. */
int virt_vm_undefine(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);
/* Sets the HA flag and restart priority (0..VIRT_PRIORITY_MAX), keeping the
 * epoch and the group. Written to the persistent config and, when active,
 * the live one. */
int virt_vm_set_ha(struct virt *v, const char *name_or_uuid, bool on, int priority, char *err,
                   size_t errlen);
/* Like virt_vm_set_ha, and also sets the anti-affinity group: NULL keeps
 * the current one, "" clears it. A group longer than VIRT_GROUP_MAX - 1
 * or with characters outside [A-Za-z0-9._-] is refused (-EINVAL, nothing
 * changed). */
int virt_vm_set_ha_group(struct virt *v, const char *name_or_uuid, bool on, int priority,
                         const char *group, char *err, size_t errlen);
/* true when group is a valid group name ("" included: no group). */
bool virt_group_valid(const char *group);
/* Sets the ownership epoch, keeping the HA flag, priority and group. */
int virt_vm_set_epoch(struct virt *v, const char *name_or_uuid, uint64_t epoch, char *err,
                      size_t errlen);
/* Sets the desired state (enum virt_desired), keeping everything else, in
 * the persistent config and, when active, the live one. Nothing is written
 * when it already has that value (a VM without the element that should
 * run gets none). The setters above keep the desired state, and
 * virt_vm_define_start keeps the one in its XML. */
int virt_vm_set_desired(struct virt *v, const char *name_or_uuid, enum virt_desired d, char *err,
                        size_t errlen);
/* "running", "stopped". */
const char *virt_desired_name(enum virt_desired d);

enum virt_job_state {
	VIRT_JOB_NONE = 0,  /* no job (and, with completed, none remembered) */
	VIRT_JOB_RUNNING,   /* a job is running now */
	VIRT_JOB_COMPLETED, /* the last job finished successfully */
	VIRT_JOB_FAILED,
	VIRT_JOB_CANCELLED,
};

struct virt_job_stats {
	enum virt_job_state state;
	bool migration;      /* the job is an outgoing or incoming migration */
	uint64_t elapsed_ms; /* since the job started */
	uint64_t data_total; /* bytes: memory + disks; 0 when not reported */
	uint64_t data_processed;
	uint64_t data_remaining;
	uint64_t memory_total; /* bytes of guest memory */
	uint64_t memory_processed;
	uint64_t memory_remaining;
	uint64_t memory_bps;  /* transfer rate, bytes/s */
	uint64_t dirty_rate;  /* pages/s the guest dirties */
	uint64_t iteration;   /* memory passes so far */
	bool have_downtime;   /* set when the job is done (completed stats) */
	uint64_t downtime_ms; /* guest paused time at switch-over */
};

/* ---- operator jobs on the worker ------------------------------------------ */
/*
 * The calls above, on the worker (virt_options.worker), so that a slow or
 * stopped libvirtd holds a worker thread, not the loop: each runs on the
 * general lane through the job's own reference on the connection, and
 * done runs on the loop afterwards, once, with the cache already updated
 * (the VM as read after the call, or removed when it is gone) and a
 * connection that died under the call marked lost, as the synchronous
 * call would have. Result and err (wording included) are the synchronous
 * call's.
 *
 * Order: one operator job per struct virt is in flight at a time (and
 * none while another worker call on the connection is: see
 * virt_host_refresh_async in virt.c), the rest wait in the order asked,
 * at most VIRT_OPQ_MAX of them. virt_vm_op_next, called from a done
 * callback, queues the caller's next step in FRONT of the queue, so that
 * a command of several steps runs as one, before anyone else's.
 */
enum virt_op_kind {
	VIRT_OPK_FIND = 0,    /* virt_vm_find(key) */
	VIRT_OPK_DEFINE,      /* virt_vm_define(xml) */
	VIRT_OPK_START,       /* virt_vm_start(key) */
	VIRT_OPK_SHUTDOWN,    /* virt_vm_shutdown(key) */
	VIRT_OPK_DESTROY,     /* virt_vm_destroy(key) */
	VIRT_OPK_UNDEFINE,    /* virt_vm_undefine(key) */
	VIRT_OPK_SET_HA,      /* virt_vm_set_ha_group(key, ha, priority, group) */
	VIRT_OPK_SET_EPOCH,   /* virt_vm_set_epoch(key, epoch) */
	VIRT_OPK_SET_DESIRED, /* virt_vm_set_desired(key, desired) */
	VIRT_OPK_EXPORT,      /* virt_vm_export_xml(key): res->xml */
	VIRT_OPK_JOB_STATS,   /* virt_vm_job_stats(key, false): res->job */
	VIRT_OPK_ABORT_JOB,   /* virt_vm_abort_job(key) */
};

struct virt_op_req {
	enum virt_op_kind kind;
	const char *key;           /* name or UUID (copied) */
	const char *xml;           /* DEFINE (copied) */
	bool ha;                   /* SET_HA */
	int priority;              /* SET_HA */
	const char *group;         /* SET_HA: NULL keeps the current one (copied) */
	uint64_t epoch;            /* SET_EPOCH */
	enum virt_desired desired; /* SET_DESIRED */
	bool needs_quorum;         /* START of an HA VM: refused on the worker, right
	                              before libvirt's start, while
	                              virt_block_ha_starts says why (-EAGAIN) */
};

/* The failover glue says whether HA VMs may start on this host now: NULL
 * when they may, else why not (a string of static storage: the worker's
 * refusal reads "cannot start VM <name>: <why>"). Blocked from the moment
 * the host is not quorate or fenced itself, and while a fence order for
 * every HA VM waits for libvirt (its retry would destroy what started):
 * an operator's or a migration's start of an HA VM checked on the loop
 * runs seconds later on the worker, and must not start a VM there then
 * (a self-fence would not see it: it collects from the cache). Any
 * thread; process-wide, lifted when the failover service is freed
 * (ha_free). */
void virt_block_ha_starts(const char *why);

/* res->xml (EXPORT) is valid during done only: the job frees it. */
struct virt_op_result {
	int rc;        /* 0 or the synchronous call's -errno */
	char err[512]; /* its message when rc < 0 */
	bool have_vm;  /* vm is the VM as read after the call (FIND, DEFINE: the VM) */
	struct virt_vm vm;
	char *xml;                 /* EXPORT: the definition (the callee's: copy it) */
	struct virt_job_stats job; /* JOB_STATS */
};

/* Operator jobs that may wait behind the one in flight. */
#define VIRT_OPQ_MAX 32
/* A crash restart's start (virt_vm_start_async) refused -EBUSY because
 * operator work holds the connection: no new operator command starts for
 * this long (a command's next step, queued from its done callback, still
 * does), so that its retry (100 ms
 * later, ha.c) gets the connection first; operators' commands never
 * starve HA restarts. */
#define VIRT_OP_YIELD_MS 1000

/* status: 0 (res says how the call went), or -ECANCELED: the worker
 * stopped or virt_free ran (then v is NULL), nothing was done. res is
 * valid during the call only. Never virt_free() v from here. */
typedef void (*virt_op_result_fn)(struct virt *v, int status, const struct virt_op_result *res,
                                  void *ud);
/* 0 when queued (done will run, never from inside this call); else
 * nothing queued and err says why: -ENOTSUP without a worker, -EINVAL bad
 * arguments (as the synchronous call), -ENOTCONN libvirt unreachable,
 * -EAGAIN busy (VIRT_OPQ_MAX queued, or the lane is full: "busy ... try
 * again"), -ENOMEM. A job that cannot start when its turn comes (libvirt
 * went away meanwhile) gets done with status 0 and res->rc -ENOTCONN. */
int virt_vm_op_async(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done,
                     void *ud, char *err, size_t errlen);
/* The same from inside a done callback: the step runs next, before what
 * others queued (no VIRT_OPQ_MAX bound: a command's next step is never
 * refused for being busy); also for a step of a command already under
 * way (a move's steps after its target accepted, migration.c): it runs
 * as soon as the call in flight on the connection is back. Called from
 * elsewhere than a done callback (a move's first step, one after a
 * migration-lane job), it also waits while a crash restart's retry is
 * owed the connection (VIRT_OP_YIELD_MS). */
int virt_vm_op_next(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done, void *ud,
                    char *err, size_t errlen);
/* Aborts key's running job (VIRT_OPK_ABORT_JOB: a migration) on lane,
 * through its own reference on the connection, outside the operators'
 * queue and the one-call-at-a-time rule: it waits for no other call on
 * the connection (a listing, a host read, an event read, a slow operator
 * command), only for a free thread of its lane. For an abort that must
 * land by a deadline (a move whose reservation was lost: mig.h). done as
 * for virt_vm_op_async (status -ECANCELED, v NULL: the agent stopped).
 * 0, or -errno with err (nothing queued): -ENOTSUP without a worker,
 * -ENOTCONN, -EAGAIN (the lane is full), -ENOMEM, -EINVAL. */
int virt_vm_abort_job_async(struct virt *v, const char *key, enum hvwork_lane lane,
                            virt_op_result_fn done, void *ud, char *err, size_t errlen);
/* Operator jobs in flight or queued. */
size_t virt_vm_op_queued(const struct virt *v);

/* ---- migration and moves ------------------------------------------------ */
/*
 * Threads. virt_vm_migrate() blocks for the whole migration (seconds to
 * minutes), and virt_vm_where() may block for as long as a connect to an
 * unreachable host takes, so the daemon runs them on a worker thread
 * (hvwork.h, the migration lane). Both are written for that:
 *   - they use the struct virt only to take their own reference on its
 *     current libvirt connection (under a lock the loop also takes when it
 *     opens or drops the connection); a libvirt connection may be used
 *     from several threads at once, so the loop keeps using it meanwhile;
 *   - they never read or write the inventory cache, health or timers
 *     (none of that is thread-safe), and never mark the connection lost:
 *     a dead connection is reported as -ENOTCONN and the loop's own close
 *     callback / next call deals with it;
 *   - the caller applies the result on the loop thread afterwards
 *     (after_work_cb: e.g. virt_reconcile() or virt_vm_find() to refresh
 *     the cache, bump the epoch, release the reservation);
 *   - the struct virt must outlive the work: never virt_free() it while a
 *     migration or where() is in flight.
 *   A remote libvirt call made on a worker makes libvirt add/update/remove
 *   its fd watches and timeouts from that thread (found in the lab,
 *   tests/lab/mv_migrate_probe). virt_uvloop.c accepts those calls from any
 *   thread: it records the change under a lock and wakes the loop
 *   (uv_async), which applies it to the uv handles; libvirt's event
 *   callbacks and free functions still run only on the loop thread. (Before
 *   this, such a call touched the uv handle from the worker: a data race.)
 * Everything else here (job stats, abort, export, virt_migrate_build)
 * belongs to the loop thread, like the rest of this module; job stats and
 * abort are meant to be called while a worker's migration runs. The
 * agent's loop makes them as operator jobs on the worker instead
 * (VIRT_OPK_JOB_STATS, VIRT_OPK_ABORT_JOB, VIRT_OPK_EXPORT): the
 * synchronous calls are for the agent's start and stop and for tools.
 */

struct virt_migrate_params {
	/* The target's libvirt URI as the SOURCE libvirtd reaches it
	 * (peer-to-peer: the source daemon connects there itself), e.g.
	 * qemu+tcp://10.77.0.2/system or qemu+unix:///system?socket=PATH.
	 * Never plain qemu:///system (libvirt refuses it as "same host"). */
	const char *dest_uri;
	/* Where QEMU sends the migration stream, "tcp://ADDR[:PORT]"; NULL:
	 * the target's migration_host and a port from its range. */
	const char *migrate_uri;
	/* The target's libvirt URI as THIS process reaches it, used only after
	 * a successful migration to read the completed job's statistics
	 * (downtime) from the target; NULL: dest_uri. */
	const char *query_uri;
	uint64_t bandwidth_mib_s; /* 0: unlimited (libvirt's default) */
	uint64_t max_downtime_ms; /* 0: leave QEMU's (300 ms by default) */
	bool tls;                 /* VIR_MIGRATE_TLS for the migration stream */
};

struct virt_migrate_result {
	char name[VIRT_NAME_MAX];
	char uuid[VIRT_UUID_LEN];
	uint64_t elapsed_ms; /* wall time of virDomainMigrateToURI3 */
	bool have_stats;     /* stats read (completed job, from the target) */
	struct virt_job_stats stats;
	char stats_error[256]; /* why not, when have_stats is false */
};

/* The flags and typed parameters virt_vm_migrate() passes to
 * virDomainMigrateToURI3 (exposed for tests and logs). *params is a
 * virTypedParameterPtr with *nparams entries, freed with
 * virt_migrate_params_free(). 0, or -EINVAL with a message for a missing
 * dest_uri, a migrate_uri that is not tcp://HOST[:PORT], or an absurd
 * bandwidth (> 1 TiB/s). */
int virt_migrate_build(const struct virt_migrate_params *p, void **params, int *nparams,
                       unsigned *flags, char *err, size_t errlen);
void virt_migrate_params_free(void *params, int nparams);

/* Live, peer-to-peer migration to p->dest_uri: VIR_MIGRATE_LIVE |
 * PEER2PEER | PERSIST_DEST | UNDEFINE_SOURCE | AUTO_CONVERGE (| TLS), with
 * the bandwidth cap as a migration parameter and the maximum downtime set
 * on the domain just before. BLOCKS until the migration ends; may run on a
 * worker thread (see "Threads" above). 0: the VM runs on the target and is
 * gone from this host; *out has the wall time and, if the target could be
 * asked, the completed job's statistics (downtime). Errors (err gets
 * libvirt's text):
 *   -ENOENT    no such VM here     -EINVAL  bad parameters, VM not running
 *   -ECANCELED aborted (virt_vm_abort_job)
 *   -ENOTCONN  libvirt here unreachable, or the connection died meanwhile
 *   -EIO etc.  libvirt failed (target refused, link cut, ...).
 * After ANY failure the VM may still have landed: ask virt_vm_where()
 * before releasing anything. */
int virt_vm_migrate(struct virt *v, const char *name_or_uuid, const struct virt_migrate_params *p,
                    struct virt_migrate_result *out, char *err, size_t errlen);

/* The VM's current job (virDomainGetJobStats), or with completed=true the
 * last finished one (kept for later calls). Loop thread; safe to call while
 * a worker runs virt_vm_migrate on the same struct virt. A VM with no job
 * gives 0 and state VIRT_JOB_NONE. Errors as for lifecycle calls (-ENOTSUP
 * when the driver has no job statistics). */
int virt_vm_job_stats(struct virt *v, const char *name_or_uuid, bool completed,
                      struct virt_job_stats *out, char *err, size_t errlen);
/* Aborts the VM's running job (a migration: the VM keeps running here and
 * the worker's virt_vm_migrate returns -ECANCELED). -EINVAL with "no job is
 * running" when there is none; -ENOTSUP when the driver cannot abort. */
int virt_vm_abort_job(struct virt *v, const char *name_or_uuid, char *err, size_t errlen);

enum virt_presence {
	VIRT_PRESENCE_UNKNOWN = 0, /* that host could not be asked */
	VIRT_PRESENCE_ABSENT,      /* not defined there */
	VIRT_PRESENCE_DEFINED,     /* defined there, not active */
	VIRT_PRESENCE_ACTIVE,      /* active there (running, paused, ...) */
};

enum virt_location {
	VIRT_LOC_UNKNOWN = 0,    /* a host could not be asked and the other does not settle it */
	VIRT_LOC_SOURCE,         /* active on the source only */
	VIRT_LOC_DEST,           /* active on the target only */
	VIRT_LOC_BOTH_ACTIVE,    /* active on both (mid switch-over; ask again) */
	VIRT_LOC_DEFINED_BOTH,   /* active nowhere, defined on both */
	VIRT_LOC_STOPPED_SOURCE, /* active nowhere, defined on the source only */
	VIRT_LOC_STOPPED_DEST,   /* active nowhere, defined on the target only */
	VIRT_LOC_NEITHER,        /* known to neither host */
};

struct virt_where {
	enum virt_location where;
	enum virt_presence source, dest;
	enum virt_vm_state source_state, dest_state; /* when present */
	bool dest_persistent;     /* the target's copy is persistent (when present) */
	char uuid[VIRT_UUID_LEN]; /* when found on either side */
	char source_error[256];   /* why UNKNOWN */
	char dest_error[256];
};

/* Where is the VM really? Asks this host (its connection) and the target
 * through a short-lived connection to dest_uri (the URI THIS process
 * reaches the target by). Returns 0 whenever it could decide anything (see
 * out->where; a side that could not be asked is UNKNOWN with its reason),
 * -EINVAL for bad arguments. Name the VM by UUID where possible: names can
 * differ between hosts. May run on a worker thread (a connect to a cut
 * host blocks until TCP gives up). A partly arrived incoming migration is
 * "active" on the target (paused): BOTH_ACTIVE, not a verdict. */
int virt_vm_where(struct virt *v, const char *name_or_uuid, const char *dest_uri,
                  struct virt_where *out, char *err, size_t errlen);
const char *virt_location_name(enum virt_location l);
/* Defines xml (a VM's inactive definition with its meshvisor metadata) on
 * this host, sets its owner epoch to `epoch` (keeping HA flag, priority,
 * group and desired state) and starts it. Worker-safe like virt_vm_migrate
 * (the same connection by reference; the cache is refreshed by the events
 * that follow, or by the caller with virt_vm_find on the loop): starting a
 * QEMU guest takes a few hundred ms, which must not stall the agent's loop.
 * The VM's name goes to name_out. On any failure after the start the VM is
 * destroyed again. -EINVAL no XML, -ENOTCONN libvirt unreachable, -EEXIST
 * a clash with another VM's name or UUID, -EIO otherwise (libvirt's text). */
int virt_vm_define_start(struct virt *v, const char *xml, uint64_t epoch, char *name_out,
                         size_t name_len, char *err, size_t errlen);
const char *virt_presence_name(enum virt_presence p);

/* The VM's persistent definition as XML for defining it on another host
 * (inactive, secure, migratable: includes the <meshvisor:vm/> metadata,
 * so the HA settings and the desired state travel with it).
 * *xml is malloc'ed, the caller frees it. For agents that hand a VM over
 * offline themselves (each with its own test driver). */
int virt_vm_export_xml(struct virt *v, const char *name_or_uuid, char **xml, char *err,
                       size_t errlen);
/* The same for several VMs, on the worker (virt_options.worker), through
 * its own reference on the connection: done runs on the loop with
 * xmls[i] the definition of keys[i], or NULL where it could not be read
 * (both arrays and the strings are the callee's: valid during done only;
 * status -ECANCELED: the worker stopped, nothing was read). One worker
 * call on the connection at a time: -EBUSY while another runs (ask again
 * later). 0 when started; -ENOTSUP without a worker (export here instead),
 * -ENOTCONN, -ENOMEM, -EAGAIN (the lane is full). */
typedef void (*virt_export_done_fn)(struct virt *v, int status, char *const *xmls, size_t n,
                                    void *ud);
int virt_vm_export_xml_async(struct virt *v, const char *const *keys, size_t n,
                             virt_export_done_fn done, void *ud);
/* Starts the defined VM key (name or UUID) on the worker, on `lane`
 * (HVWORK_CRITICAL for an HA restart), through its own reference on the
 * connection, as virt_vm_start does but without refreshing the cache
 * (the lifecycle event that follows does). done runs on the loop: status
 * -ECANCELED (the worker stopped: nothing was done), else 0 with rc and
 * err as virt_vm_start's. Returns 0 when started, -EBUSY while another
 * worker call on the connection runs (when that is operator work, the
 * operators' next command waits for the retry: VIRT_OP_YIELD_MS),
 * -ENOTSUP without a worker (start here instead), -ENOTCONN, -ENOMEM,
 * -EAGAIN. */
typedef void (*virt_op_done_fn)(struct virt *v, int status, int rc, const char *err, void *ud);
int virt_vm_start_async(struct virt *v, const char *key, enum hvwork_lane lane,
                        virt_op_done_fn done, void *ud);

/* ---- destroys of a local fence on the worker (agent/daemon/ha.c) ------------
 *
 * A self-fence or a fence order destroys local HA VMs; with libvirtd slow
 * or stopped a destroy can take seconds or never return, so they run on
 * the worker (the critical lane) instead of the loop that answers SWIM.
 * One item per VM: in, key (its UUID) and below_epoch: the VM is
 * destroyed only while it is active and its owner epoch (read on the
 * worker, just before the destroy) is below it (UINT64_MAX: any epoch;
 * 0: never, the VM is only read into the cache); with undefine, a
 * persistent VM then stopped below that epoch is undefined too (a stale
 * copy). Out, rc: 1 destroyed; 0 nothing to do (not defined here, not
 * active, or at below_epoch or newer: restarted here by a later plan); or
 * -errno as virt_vm_destroy's, with err; undefined, or err says why not. */
struct virt_destroy_item {
	char key[VIRT_UUID_LEN];
	uint64_t below_epoch;
	bool undefine;
	int rc;
	bool undefined;
	char err[256];
};
/* done runs on the loop once every item was tried: status 0, or
 * -ECANCELED when the worker stopped before the job ran (no item tried;
 * their rc say so). Before done, the cache has each VM as the worker read
 * it after its destroy (a VM gone is dropped), with on_change called for
 * it, so the inventory is current without a round trip on the loop. */
typedef void (*virt_destroy_done_fn)(struct virt *v, int status, struct virt_destroy_item *items,
                                     size_t n, void *ud);
/* Queues the destroys of items[0..n) (the caller's, valid until done ran)
 * on `lane` through its own reference on the connection. Unlike the other
 * worker calls it is never refused because another one runs (-EBUSY):
 * a fence must not wait for a listing. The struct virt must outlive the
 * job (as for virt_vm_define_start). 0 when queued; -ENOTSUP without a
 * worker (destroy on the loop instead), -ENOTCONN (libvirt unreachable:
 * nothing tried), -ENOMEM, -EAGAIN (the lane is full), -EINVAL (n is 0). */
int virt_vm_destroy_async(struct virt *v, struct virt_destroy_item *items, size_t n,
                          enum hvwork_lane lane, virt_destroy_done_fn done, void *ud);

/* ---- fencing a failed host (failover) ------------------------------------ */

enum virt_fence_outcome {
	VIRT_FENCE_PENDING = 0,     /* not reached (the connection failed first) */
	VIRT_FENCE_DESTROYED,       /* was active, destroyed by this call */
	VIRT_FENCE_ALREADY_STOPPED, /* defined there but not active (or gone meanwhile) */
	VIRT_FENCE_ABSENT,          /* not known there */
	VIRT_FENCE_FAILED,          /* could not be confirmed stopped */
	VIRT_FENCE_NEWER,           /* runs at or above its bound: left running */
};

struct virt_fence_result {
	/* In: NULL, or an array of n the call fills with each listed VM's
	 * outcome (kept across the call's reset of the counts below). */
	enum virt_fence_outcome *outcomes;
	/* The listed VMs: */
	unsigned destroyed;
	unsigned already_stopped;
	unsigned absent;
	unsigned failed;
	unsigned newer; /* active at or above their bound (virt_remote_fence_below) */
	/* Active VMs not listed but carrying ha="yes" (HA VMs of that host we
	 * may not know of), destroyed too: */
	unsigned extra_destroyed;
	unsigned extra_failed;
	uint64_t elapsed_ms; /* wall time of the whole call, connect included */
};

/* Fences a failed (or partitioned) host's VMs before failover restarts
 * them elsewhere: opens `uri` read-write on a short-lived connection of
 * its own, and for each of uuids[0..n) (a UUID, or a name when it is not
 * a UUID) looks it up and, if active, destroys it (virDomainDestroyFlags,
 * VIR_DOMAIN_DESTROY_DEFAULT), then checks that it is no longer active.
 * Then destroys every other active domain there whose meshvisor metadata
 * says ha="yes". Returns
 *   0          the host answered and every listed VM is confirmed not
 *              running there (destroyed, already stopped or absent), and
 *              no HA VM there is left running;
 *   -ENOTCONN  the host could not be reached, or the connection died
 *              before every VM was confirmed (err says why);
 *   -EIO       some destroy failed (err: the first failure);
 *   -EINVAL    bad arguments.
 * out (required) has the counts either way.
 *
 * Threads: like virt_vm_where it needs no struct virt and touches no
 * shared state; it may (and should) run on a worker (hvwork.h: the
 * critical lane).
 * Blocking and timeouts: libvirt has no connect timeout. For network
 * URIs (driver+tcp/tls/ssh://HOST[:PORT]/...) this call first probes the
 * host's TCP port with a non-blocking connect bounded by timeout_s (0: 5 s)
 * so that a host that is down or cut off fails with -ENOTCONN within
 * timeout_s instead of after the kernel's SYN retries (minutes); and after
 * the connect it enables libvirt keepalive (interval ~timeout_s/3, 2
 * missed) so that a host dying mid-fence fails the pending call. The
 * probe is not a hard bound (name resolution, a host that accepts TCP but
 * whose libvirtd hangs, the ssh transport's own handshake): the caller
 * must still treat "no answer within X" as failure itself (a worker that
 * has not finished is NOT a fence) and must not assume VMs are stopped
 * unless this returned 0. */
int virt_remote_fence(const char *uri, const char *const *uuids, size_t n, unsigned timeout_s,
                      struct virt_fence_result *out, char *err, size_t errlen);
/* The same, with a bound per listed VM (below NULL, or an entry 0: none):
 * a listed VM active at an owner epoch at or above its bound is a newer
 * placement's (the failover plan that listed it gave it that epoch, or a
 * later one placed it there since): it is left running, counted in
 * out->newer, and the call returns -EIO (the fence is NOT done: the
 * caller must not start its own copy on its strength). */
int virt_remote_fence_below(const char *uri, const char *const *uuids, const uint64_t *below,
                            size_t n, unsigned timeout_s, struct virt_fence_result *out, char *err,
                            size_t errlen);
const char *virt_fence_outcome_name(enum virt_fence_outcome o);

#ifdef MV_TEST_HOOKS
/* Test hooks, compiled only into the test build of this layer
 * (mv_hv_testing); the product has none.
 *
 * Stop the VM as if for `why`: destroys it through libvirt
 * (when active), then records `why` as its stop reason as if libvirt's
 * STOPPED event had said so (the test driver cannot crash a VM or kill
 * its emulator), and calls on_change(VIRT_CHANGE_VM_EVENT) like an event.
 * The STOPPED event that libvirt then sends for the destroy is taken as
 * `why` too. Loop thread. Failures are logged (the VM's cache entry shows
 * what happened). */
void virt_test_inject_stop(struct virt *v, const char *name_or_uuid, enum virt_stop_reason why);

/* Behave as if libvirt had reported the connection closed (what the close
 * callback does for a dead remote daemon; the test driver never closes by
 * itself). */
void virt_inject_close(struct virt *v);

/* Every full listing (virt_list_vms, reconcile) and every read of the
 * host's figures (virt_host_info), on the loop or the worker, first
 * sleeps ms: a libvirtd that answers slowly (the test driver never
 * does). Process-wide; 0 turns it off. */
void virt_test_set_delay(unsigned ms);
/* The same for every open of a connection (a daemon slow to accept). */
void virt_test_set_open_delay(unsigned ms);
/* The same for every registration of a connection's callbacks (a remote
 * libvirtd's event registration is a round trip). */
void virt_test_set_register_delay(unsigned ms);
/* The same for every teardown of a connection (deregistering its callbacks
 * and closing it: round trips to a remote libvirtd). */
void virt_test_set_drop_delay(unsigned ms);
/* The same for every operator call (virt_vm_find, _define, _start, ...,
 * the metadata setters), synchronous or on the worker. */
void virt_test_set_op_delay(unsigned ms);
/* Every destroy made by virt_vm_destroy_async first sleeps ms (a libvirtd
 * slow to destroy). Process-wide; 0 turns it off. */
void virt_test_set_destroy_delay(unsigned ms);
#endif /* MV_TEST_HOOKS */

#endif
