/*
 * virt.c — the agent's hypervisor through libvirt (see virt.h).
 *
 * Connection states, and what moves between them:
 *
 *   DISCONNECTED --open ok--> CONNECTED --close callback / dead on use--> LOST
 *        ^   |                                                            |
 *        |   +--open failed: retry after 1 s, 2, 4, ... 30 s              |
 *        +----------- teardown on the next loop iteration ----------------+
 *
 * A connection is LOST when libvirt's close callback fires (the remote
 * daemon went away: EOF, I/O error or keepalive timeout) or when a call
 * fails and virConnectIsAlive() says so. The close callback runs inside
 * libvirt's own dispatch, where closing the connection is not allowed, so
 * teardown (deregister callbacks, virConnectClose) waits for the retry
 * timer at 0 ms; the first reconnect follows after the minimum backoff.
 * The timer only detaches the connection; with a worker its teardown (a
 * round trip per call to a remote libvirtd, which may be the one that
 * stalls) runs there (virt_drop).
 * Without a loop there are no callbacks and no timers: virt_check() does
 * the same steps synchronously.
 *
 * The inventory cache is rewritten whole by reconcile (every connect and
 * every reconcile_ms) and per VM by events and by our own operations, which
 * always re-read the VM from libvirt rather than guess its new state — an
 * event only says "look at this VM again", so events that arrive late or
 * twice are harmless.
 *
 * Events, with a worker, are read there too ("events: the read on the
 * worker" below): an event records its VM and stop reason, a job reads
 * the queued VMs, and the loop applies the reads in order.
 *
 * The periodic reconcile, with a worker (virt_options.worker), lists on
 * the worker's general lane through its own reference on the connection
 * (a full listing is one round trip per VM and more: it must not hold the
 * loop, least of all when libvirtd is slow) and applies the listing on the
 * loop. The cache may have changed in between (an event, our own
 * operation: cache_gen moved); the listing is then older than the cache
 * and is dropped — the events keep the cache exact, and the next pass
 * comes reconcile_ms later.
 *
 * libvirt prints every error to stderr by default; we install an error
 * handler that drops that printing and instead carry libvirt's message
 * into the health record, the log and the caller's error buffer.
 * libxml2 (already a libvirt dependency) reads the few XML fragments we
 * need: our metadata element, the host CPU model from the capabilities,
 * and a new domain's name and UUID.
 */
#include "virt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hvwork.h"
#include "log.h"
#include "names.h"

/* A lifecycle or metadata event waiting for its read on the worker (see
 * "events" below): which VM, and the stop reason the event carried. */
struct virt_ev_item {
	char uuid[VIRT_UUID_LEN];
	char name[VIRT_NAME_MAX];  /* as the event named it, for the notice */
	enum virt_stop_reason why; /* NONE: the events carried none */
};

struct virt {
	char *uri;
	uv_loop_t *loop;
	/* conn and conn_dead are written only by the loop thread, under
	 * conn_lock; worker-thread calls (migrate, where) read them only under
	 * it, to take their own reference (virt_conn_ref). */
	pthread_mutex_t conn_lock;
	virConnectPtr conn;
	bool conn_dead;   /* LOST: teardown pending */
	bool local;       /* URI names this machine: /proc/loadavg applies */
	bool test_driver; /* connection type "TEST": free memory is fake */
	int lifecycle_cb; /* libvirt callback ids, -1 when not registered */
	int metadata_cb;
	bool close_cb;
	char cpu_model[64]; /* from the capabilities, kept across reconnects */
	struct virt_health health;
	bool logged_state; /* health.reachable value we last logged */
	bool logged_once;
	bool warned_long_name;
	struct virt_vm *vms;
	size_t n_vms;
	uint64_t cache_gen; /* bumped by every change of the cache */
	struct hvwork *worker;
	struct virt_reconcile_job *reconcile_job; /* in flight on the worker */
	/* with a worker: the host's figures as last read there (kept across
	 * reconnects: the host does not change), and the read in flight */
	struct virt_host host;
	bool host_known;
	struct virt_host_job *host_job;
	struct virt_open_job *open_job; /* a reconnect in flight on the worker */
	struct virt_export_job *export_job;
	struct virt_start_job *start_job;
	/* operator jobs (virt_vm_op_async): the one in flight on the worker,
	 * the queue behind it, and how deep the done callbacks are nested */
	struct virt_op_job *op_job;
	struct virt_op_job *opq;
	size_t opq_n;
	/* aborts in flight outside that queue (virt_vm_abort_job_async) */
	struct virt_op_job *solo;
	unsigned op_delivering;
	/* with a worker: events waiting for their read (one entry per VM, in
	 * arrival order), the read in flight, and whether an event was
	 * dropped because the queue was full (a reconcile follows) */
	struct virt_ev_item evq[VIRT_EVQ_MAX];
	size_t evq_n;
	bool evq_overflow;
	struct virt_ev_job *ev_job;
	/* a critical start (virt_vm_start_async) found the connection busy
	 * with operator work: no new operator command starts before this
	 * (uv_now), so that its retry gets the connection first */
	uint64_t op_yield_until;
	/* virt_test_inject_stop: the reason the next STOPPED event of that
	 * VM is taken as (its uuid; "" when the slot is free). */
	struct {
		char uuid[VIRT_UUID_LEN];
		enum virt_stop_reason why;
	} injected[8];
	/* loop mode */
	unsigned reconcile_ms, backoff_min_ms, backoff_max_ms;
	int ka_interval;
	unsigned ka_count;
	unsigned retry_n; /* retries scheduled since the last success */
	uv_timer_t retry_timer;
	uv_timer_t reconcile_timer;
	int open_handles;
	virt_change_fn on_change;
	void *ud;
};

static void virt_silence_errors(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

static void virt_notify(struct virt *v, enum virt_change what, const char *name)
{
	if (v->on_change != NULL)
		v->on_change(v, what, name, v->ud);
}

/* ---- errors ------------------------------------------------------------- */

static const char *virt_last_message(void)
{
	virErrorPtr e = virGetLastError();
	return e != NULL && e->message != NULL ? e->message : "unknown libvirt error";
}

static int virt_code_errno(int code)
{
	switch (code) {
	case VIR_ERR_NO_DOMAIN:
		return -ENOENT;
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_XML_DETAIL:
	case VIR_ERR_XML_INVALID_SCHEMA:
	case VIR_ERR_CONFIG_UNSUPPORTED:
	case VIR_ERR_INVALID_ARG:
	case VIR_ERR_OPERATION_INVALID:
		return -EINVAL;
	case VIR_ERR_NO_SUPPORT:
		return -ENOTSUP;
	case VIR_ERR_OPERATION_DENIED:
	case VIR_ERR_AUTH_FAILED:
	case VIR_ERR_ACCESS_DENIED:
		return -EPERM;
	case VIR_ERR_OPERATION_TIMEOUT:
		return -ETIMEDOUT;
	case VIR_ERR_NO_CONNECT:
		return -ENOTCONN;
	default:
		return -EIO;
	}
}

static void virt_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void virt_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A read of the host's figures on the worker (virt_host_info). */
struct virt_host_job {
	struct hvwork_job j;
	struct virt *v; /* NULL once virt_free ran */
	virConnectPtr c;
	bool test_driver, local;
	char cpu_model[64];
	struct virt_host host;
	int rc;
};

static void virt_lost(struct virt *v, const char *why);
static void virt_opq_kick(struct virt *v);
static void virt_opq_cancel(struct virt *v);

/* A start on the worker (virt_vm_start_async). */
struct virt_start_job {
	struct hvwork_job j;
	struct virt *v; /* NULL once virt_free ran */
	virConnectPtr c;
	char *key;
	int rc;
	char err[512];
	virt_op_done_fn done;
	void *ud;
};

/* Definitions read on the worker (virt_vm_export_xml_async). */
struct virt_export_job {
	struct hvwork_job j;
	struct virt *v; /* NULL once virt_free ran */
	virConnectPtr c;
	char **keys, **xmls;
	size_t n;
	virt_export_done_fn done;
	void *ud;
};

/* A worker call on the agent's connection is in flight (see
 * virt_host_refresh_async: one at a time). */
static bool virt_conn_job_busy(const struct virt *v)
{
	return v->reconcile_job != NULL || v->host_job != NULL || v->export_job != NULL ||
	       v->start_job != NULL || v->op_job != NULL || v->ev_job != NULL;
}

/* A crash restart's start was refused -EBUSY moments ago: new operator
 * commands and event reads leave the connection to its retry for up to
 * VIRT_OP_YIELD_MS (virt_vm_start_async). */
static bool virt_conn_yielding(const struct virt *v)
{
	return v->loop != NULL && uv_now(v->loop) < v->op_yield_until;
}

static void virt_evq_kick(struct virt *v);

/* A libvirt call just failed: "what: libvirt's message" into err, libvirt's
 * code as errno. A connection that died under the call is marked LOST. */
static int virt_failed(struct virt *v, char *err, size_t errlen, const char *what)
{
	virErrorPtr e = virGetLastError();
	int code = e != NULL ? e->code : VIR_ERR_INTERNAL_ERROR;
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", virt_last_message());
	virt_set_err(err, errlen, "%s: %s", what, msg);
	if (v->conn != NULL && !v->conn_dead && virConnectIsAlive(v->conn) == 0) {
		char why[600];
		snprintf(why, sizeof(why), "libvirt connection lost: %s", msg);
		virt_lost(v, why);
		return -ENOTCONN;
	}
	return virt_code_errno(code);
}

static bool virt_connected(const struct virt *v)
{
	return v->conn != NULL && !v->conn_dead;
}

static int virt_unreachable(const struct virt *v, char *err, size_t errlen)
{
	virt_set_err(err, errlen, "libvirt is not reachable at %s: %s", v->uri,
	             v->health.error[0] ? v->health.error : "not connected yet");
	return -ENOTCONN;
}

/* ---- small XML reads (libxml2) ----------------------------------------- */

static xmlDocPtr virt_xml_read(const char *xml)
{
	size_t len = strlen(xml);
	if (len == 0 || len > (size_t)64 << 20)
		return NULL;
	return xmlReadMemory(xml, (int)len, "libvirt.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* The XPath expression's string value, whitespace-trimmed; "" if none. */
static void virt_xpath_string(xmlDocPtr doc, const char *expr, char *buf, size_t len)
{
	buf[0] = '\0';
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	if (ctx == NULL)
		return;
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	if (o != NULL && o->type == XPATH_STRING && o->stringval != NULL) {
		const char *s = (const char *)o->stringval;
		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		size_t n = strlen(s);
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
		                 s[n - 1] == '\r'))
			n--;
		snprintf(buf, len, "%.*s", (int)n, s);
	}
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
}

bool virt_group_valid(const char *group)
{
	if (group == NULL)
		return false;
	size_t n = strlen(group);
	return n == 0 || mv_name_span_ok(group, n, VIRT_GROUP_MAX - 1); /* "" = no group */
}

/* <vm ha="yes" priority="10" epoch="3" group="db"/> as libvirt returns our element.
 * A value we cannot read leaves that field at its default, with a warning:
 * someone edited the XML by hand, and the VM must stay listed. */
static void virt_meta_parse(const char *xml, struct virt_vm *vm)
{
	xmlDocPtr doc = virt_xml_read(xml);
	xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL) {
		MV_WARN("virt", "unreadable meshvisor metadata vm=%s", vm->name);
		xmlFreeDoc(doc);
		return;
	}
	xmlChar *ha = xmlGetProp(root, (const xmlChar *)"ha");
	xmlChar *prio = xmlGetProp(root, (const xmlChar *)"priority");
	xmlChar *epoch = xmlGetProp(root, (const xmlChar *)"epoch");
	xmlChar *group = xmlGetProp(root, (const xmlChar *)"group");
	xmlChar *desired = xmlGetProp(root, (const xmlChar *)"desired");
	if (ha != NULL) {
		if (strcmp((char *)ha, "yes") == 0)
			vm->ha = true;
		else if (strcmp((char *)ha, "no") != 0)
			MV_WARN("virt", "meshvisor metadata ha must be yes or no vm=%s", vm->name);
	}
	if (prio != NULL) {
		char *end;
		errno = 0;
		long p = strtol((char *)prio, &end, 10);
		if (errno == 0 && *end == '\0' && end != (char *)prio && p >= 0 &&
		    p <= VIRT_PRIORITY_MAX)
			vm->priority = (int)p;
		else
			MV_WARN("virt", "meshvisor metadata priority out of range vm=%s", vm->name);
	}
	if (epoch != NULL) {
		char *end;
		errno = 0;
		unsigned long long e = strtoull((char *)epoch, &end, 10);
		if (errno == 0 && *end == '\0' && end != (char *)epoch && epoch[0] != '-')
			vm->epoch = e;
		else
			MV_WARN("virt", "meshvisor metadata epoch unreadable vm=%s", vm->name);
	}
	if (group != NULL) {
		if (virt_group_valid((char *)group))
			snprintf(vm->group, sizeof(vm->group), "%s", (char *)group);
		else
			MV_WARN("virt", "meshvisor metadata group unreadable vm=%s", vm->name);
	}
	/* Anything but "stopped" reads as running: an HA VM is never left
	 * stopped because of a value we cannot read. */
	if (desired != NULL) {
		if (strcmp((char *)desired, "stopped") == 0)
			vm->desired = VIRT_DESIRED_STOPPED;
		else if (strcmp((char *)desired, "running") != 0)
			MV_WARN("virt",
			        "meshvisor metadata desired must be running or stopped vm=%s",
			        vm->name);
	}
	xmlFree(ha);
	xmlFree(prio);
	xmlFree(epoch);
	xmlFree(group);
	xmlFree(desired);
	xmlFreeDoc(doc);
}

/* The <meshvisor:vm/> element for vm with owner epoch `epoch`. Attributes
 * at their defaults are left out (no group, desired running), so the
 * element reads as older versions wrote it. The group is [A-Za-z0-9._-]
 * only: nothing to escape. */
static void virt_meta_format(char *buf, size_t len, const struct virt_vm *vm, uint64_t epoch)
{
	snprintf(buf, len, "<vm ha=\"%s\" priority=\"%d\" epoch=\"%" PRIu64 "\"%s%s%s%s/>",
	         vm->ha ? "yes" : "no", vm->priority, epoch, vm->group[0] ? " group=\"" : "",
	         vm->group, vm->group[0] ? "\"" : "",
	         vm->desired == VIRT_DESIRED_STOPPED ? " desired=\"stopped\"" : "");
}

const char *virt_desired_name(enum virt_desired d)
{
	return d == VIRT_DESIRED_STOPPED ? "stopped" : "running";
}

/* ---- reading VMs -------------------------------------------------------- */

const char *virt_vm_state_name(enum virt_vm_state s)
{
	switch (s) {
	case VIRT_VM_RUNNING:
		return "running";
	case VIRT_VM_PAUSED:
		return "paused";
	case VIRT_VM_SHUTOFF:
		return "shutoff";
	case VIRT_VM_CRASHED:
		return "crashed";
	default:
		return "other";
	}
}

const char *virt_stop_reason_name(enum virt_stop_reason r)
{
	switch (r) {
	case VIRT_STOP_NONE:
		return "none";
	case VIRT_STOP_SHUTDOWN:
		return "shutdown";
	case VIRT_STOP_DESTROYED:
		return "destroyed";
	case VIRT_STOP_CRASHED:
		return "crashed";
	case VIRT_STOP_FAILED:
		return "failed";
	case VIRT_STOP_MIGRATED:
		return "migrated";
	case VIRT_STOP_SAVED:
		return "saved";
	default:
		return "other";
	}
}

/* A STOPPED lifecycle event's detail. */
static enum virt_stop_reason virt_stop_from_event(int detail)
{
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return VIRT_STOP_SHUTDOWN;
	case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
		return VIRT_STOP_DESTROYED;
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
		return VIRT_STOP_CRASHED;
	case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
		return VIRT_STOP_MIGRATED;
	case VIR_DOMAIN_EVENT_STOPPED_SAVED:
		return VIRT_STOP_SAVED;
	case VIR_DOMAIN_EVENT_STOPPED_FAILED:
		return VIRT_STOP_FAILED;
	default:
		return VIRT_STOP_OTHER;
	}
}

/* A shutoff state's reason (virDomainGetState), used when no event told
 * us: coarser (a killed QEMU reads SHUTOFF_CRASHED there). */
static enum virt_stop_reason virt_stop_from_state(int state, int reason)
{
	if (state == VIR_DOMAIN_CRASHED)
		return VIRT_STOP_CRASHED;
	if (state != VIR_DOMAIN_SHUTOFF)
		return VIRT_STOP_NONE;
	switch (reason) {
	case VIR_DOMAIN_SHUTOFF_SHUTDOWN:
		return VIRT_STOP_SHUTDOWN;
	case VIR_DOMAIN_SHUTOFF_DESTROYED:
		return VIRT_STOP_DESTROYED;
	case VIR_DOMAIN_SHUTOFF_CRASHED:
		return VIRT_STOP_CRASHED;
	case VIR_DOMAIN_SHUTOFF_MIGRATED:
		return VIRT_STOP_MIGRATED;
	case VIR_DOMAIN_SHUTOFF_SAVED:
		return VIRT_STOP_SAVED;
	case VIR_DOMAIN_SHUTOFF_FAILED:
		return VIRT_STOP_FAILED;
	case VIR_DOMAIN_SHUTOFF_UNKNOWN:
		return VIRT_STOP_NONE;
	default:
		return VIRT_STOP_OTHER;
	}
}

/* Stopped: a state that has a stop reason (shutoff, crashed). */
static bool virt_vm_stopped(enum virt_vm_state s)
{
	return s == VIRT_VM_SHUTOFF || s == VIRT_VM_CRASHED;
}

static enum virt_vm_state virt_state_from_libvirt(unsigned char s)
{
	switch (s) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
		return VIRT_VM_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VIRT_VM_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		return VIRT_VM_SHUTOFF;
	case VIR_DOMAIN_CRASHED:
		return VIRT_VM_CRASHED;
	default:
		return VIRT_VM_OTHER;
	}
}

static int virt_conn_failed(virConnectPtr c, char *err, size_t errlen, const char *what);
static virConnectPtr virt_conn_ref(struct virt *v);
static int virt_dom_job_stats(virConnectPtr c, virDomainPtr d, bool completed,
                              struct virt_job_stats *out, char *err, size_t errlen);
static int virt_conn_submit(struct virt *v, enum hvwork_lane lane, struct hvwork_job *j,
                            hvwork_fn work, hvwork_done_fn done, void *data, virConnectPtr *c);

/* Who learns of a failed libvirt call during a read: the loop's struct
 * virt (virt_failed: a dead connection is marked LOST), or, on a worker,
 * only the bare connection (virt_conn_failed: nothing shared is touched). */
struct virt_reader {
	struct virt *v;
	virConnectPtr c;
};

static int virt_reader_failed(const struct virt_reader *r, char *err, size_t errlen,
                              const char *what)
{
	return r->v != NULL ? virt_failed(r->v, err, errlen, what)
	                    : virt_conn_failed(r->c, err, errlen, what);
}

/* 0, -ENOENT (the domain went away meanwhile), -ENAMETOOLONG, or -errno. */
static int virt_dom_read(const struct virt_reader *rd, virDomainPtr d, struct virt_vm *vm,
                         char *err, size_t errlen)
{
	memset(vm, 0, sizeof(*vm));
	const char *name = virDomainGetName(d);
	if (name == NULL)
		return virt_reader_failed(rd, err, errlen, "cannot read a VM's name");
	if (strlen(name) >= sizeof(vm->name)) {
		virt_set_err(err, errlen, "VM name longer than %d bytes", VIRT_NAME_MAX - 1);
		return -ENAMETOOLONG;
	}
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	if (virDomainGetUUIDString(d, vm->uuid) < 0)
		return virt_reader_failed(rd, err, errlen, "cannot read a VM's UUID");
	virDomainInfo info;
	if (virDomainGetInfo(d, &info) < 0)
		return virt_reader_failed(rd, err, errlen, "cannot read VM state");
	vm->state = virt_state_from_libvirt(info.state);
	if (virt_vm_stopped(vm->state)) {
		int st, reason;
		if (virDomainGetState(d, &st, &reason, 0) == 0)
			vm->stop_reason = virt_stop_from_state(st, reason);
		else if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
			return -ENOENT;
		/* else: no reason known, NONE */
	}
	vm->vcpus = info.nrVirtCpu;
	vm->memory_kib = info.memory;
	vm->max_memory_kib = info.maxMem;
	int p = virDomainIsPersistent(d);
	if (p < 0)
		return virt_reader_failed(rd, err, errlen, "cannot read VM persistence");
	vm->persistent = p == 1;
	char *meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS,
	                                  VIR_DOMAIN_AFFECT_CURRENT);
	if (meta != NULL) {
		virt_meta_parse(meta, vm);
		free(meta);
	} else {
		int code = virGetLastErrorCode();
		if (code != VIR_ERR_NO_DOMAIN_METADATA && code != VIR_ERR_NO_SUPPORT)
			return virt_reader_failed(rd, err, errlen, "cannot read VM metadata");
	}
	return 0;
}

static int virt_vm_read(struct virt *v, virDomainPtr d, struct virt_vm *vm, char *err,
                        size_t errlen)
{
	struct virt_reader rd = {.v = v};
	return virt_dom_read(&rd, d, vm, err, errlen);
}

#ifdef MV_TEST_HOOKS
static _Atomic unsigned virt_test_delay_ms, virt_test_open_delay_ms, virt_test_op_delay_ms,
    virt_test_register_delay_ms, virt_test_drop_delay_ms;
void virt_test_set_drop_delay(unsigned ms)
{
	virt_test_drop_delay_ms = ms;
}
void virt_test_set_register_delay(unsigned ms)
{
	virt_test_register_delay_ms = ms;
}
void virt_test_set_delay(unsigned ms)
{
	virt_test_delay_ms = ms;
}
void virt_test_set_open_delay(unsigned ms)
{
	virt_test_open_delay_ms = ms;
}
void virt_test_set_op_delay(unsigned ms)
{
	virt_test_op_delay_ms = ms;
}
#endif

/* A libvirtd that answers slowly, for tests (virt_test_set_delay;
 * virt_test_set_open_delay when opening; virt_test_set_op_delay for the
 * operator calls). */
#ifdef MV_TEST_HOOKS
static void virt_test_sleep(unsigned ms)
{
	if (ms > 0) {
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
}
#endif

static void virt_test_slow_for(bool open)
{
#ifdef MV_TEST_HOOKS
	virt_test_sleep(open ? virt_test_open_delay_ms : virt_test_delay_ms);
#else
	(void)open;
#endif
}

static void virt_test_slow(void)
{
	virt_test_slow_for(false);
}

static void virt_test_slow_op(void)
{
#ifdef MV_TEST_HOOKS
	virt_test_sleep(virt_test_op_delay_ms);
#endif
}

/* Every VM on connection c. A VM whose name is too long is left out, with
 * *long_name set (the caller warns once). */
static int virt_list_conn(const struct virt_reader *rd, virConnectPtr c, struct virt_vm **out,
                          size_t *n, bool *long_name, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	virt_test_slow();
	virDomainPtr *doms = NULL;
	int nd = virConnectListAllDomains(c, &doms, 0);
	if (nd < 0)
		return virt_reader_failed(rd, err, errlen, "cannot list VMs");
	struct virt_vm *vms = nd > 0 ? calloc((size_t)nd, sizeof(*vms)) : NULL;
	int rc = nd > 0 && vms == NULL ? -ENOMEM : 0;
	size_t k = 0;
	for (int i = 0; i < nd; i++) {
		if (rc == 0) {
			char e[512];
			int r = virt_dom_read(rd, doms[i], &vms[k], e, sizeof(e));
			if (r == 0) {
				k++;
			} else if (r == -ENAMETOOLONG) {
				*long_name = true;
			} else if (r != -ENOENT) { /* -ENOENT: undefined while we listed */
				virt_set_err(err, errlen, "%s", e);
				rc = r;
			}
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	if (rc < 0) {
		free(vms);
		return rc;
	}
	*out = vms;
	*n = k;
	return 0;
}

static void virt_warn_long_name(struct virt *v, bool long_name)
{
	if (long_name && !v->warned_long_name) {
		MV_WARN("virt",
		        "VM left out of the inventory error=\"VM name longer than %d bytes\"",
		        VIRT_NAME_MAX - 1);
		v->warned_long_name = true;
	}
}

static int virt_list_raw(struct virt *v, struct virt_vm **out, size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (!virt_connected(v))
		return virt_unreachable(v, err, errlen);
	struct virt_reader rd = {.v = v};
	bool long_name = false;
	int rc = virt_list_conn(&rd, v->conn, out, n, &long_name, err, errlen);
	virt_warn_long_name(v, long_name);
	return rc;
}

int virt_list_vms(struct virt *v, struct virt_vm **out, size_t *n)
{
	char err[512];
	int rc = virt_list_raw(v, out, n, err, sizeof(err));
	if (rc < 0 && rc != -ENOTCONN) {
		char q[600];
		MV_WARN("virt", "cannot list VMs error=%s", mv_log_quote(q, sizeof(q), err));
	}
	return rc;
}

/* ---- the cache ---------------------------------------------------------- */

const struct virt_vm *virt_vms(const struct virt *v, size_t *n)
{
	*n = v->n_vms;
	return v->vms;
}

static struct virt_vm *virt_cache_find(struct virt *v, const char *uuid)
{
	for (size_t i = 0; i < v->n_vms; i++)
		if (strcmp(v->vms[i].uuid, uuid) == 0)
			return &v->vms[i];
	return NULL;
}

static bool virt_vm_equal(const struct virt_vm *a, const struct virt_vm *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->uuid, b->uuid) == 0 &&
	       a->state == b->state && a->vcpus == b->vcpus && a->memory_kib == b->memory_kib &&
	       a->max_memory_kib == b->max_memory_kib && a->persistent == b->persistent &&
	       a->ha == b->ha && a->priority == b->priority && a->epoch == b->epoch &&
	       strcmp(a->group, b->group) == 0 && a->desired == b->desired &&
	       a->stop_reason == b->stop_reason;
}

/* A fresh read of a VM against its cache entry: a stop reason the cache
 * learned from an event outlives re-reads while the VM stays stopped (the
 * state's reason is coarser); a VM seen running again forgets it, and any
 * injected reason still waiting for its event. */
static void virt_merge_stop(struct virt *v, const struct virt_vm *old, struct virt_vm *vm)
{
	if (!virt_vm_stopped(vm->state)) {
		vm->stop_reason = VIRT_STOP_NONE;
		for (size_t i = 0; i < sizeof(v->injected) / sizeof(v->injected[0]); i++)
			if (strcmp(v->injected[i].uuid, vm->uuid) == 0)
				v->injected[i].uuid[0] = '\0';
		return;
	}
	if (old != NULL && virt_vm_stopped(old->state) && old->stop_reason != VIRT_STOP_NONE)
		vm->stop_reason = old->stop_reason;
}

/* Stores vm (its stop reason merged with the entry's, written back). */
static int virt_cache_upsert(struct virt *v, struct virt_vm *vm)
{
	struct virt_vm *old = virt_cache_find(v, vm->uuid);
	virt_merge_stop(v, old, vm);
	v->cache_gen++;
	if (old != NULL) {
		*old = *vm;
		return 0;
	}
	struct virt_vm *n = realloc(v->vms, (v->n_vms + 1) * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	v->vms = n;
	v->vms[v->n_vms++] = *vm;
	return 0;
}

static void virt_cache_remove(struct virt *v, const char *uuid)
{
	struct virt_vm *old = virt_cache_find(v, uuid);
	if (old == NULL)
		return;
	v->cache_gen++;
	size_t i = (size_t)(old - v->vms);
	memmove(&v->vms[i], &v->vms[i + 1], (v->n_vms - i - 1) * sizeof(*v->vms));
	v->n_vms--;
}

/* Re-reads one domain into the cache (or drops it if it is gone). Fills
 * name (VIRT_NAME_MAX) with the VM's name for the caller's notification. */
static void virt_cache_refresh(struct virt *v, virDomainPtr d, char *name)
{
	struct virt_vm vm;
	char err[512];
	const char *n = virDomainGetName(d);
	snprintf(name, VIRT_NAME_MAX, "%s", n != NULL ? n : "");
	int rc = virt_vm_read(v, d, &vm, err, sizeof(err));
	if (rc == 0) {
		if (virt_cache_upsert(v, &vm) < 0)
			MV_ERROR("virt", "out of memory caching VM name=%s", vm.name);
	} else if (rc == -ENOENT) {
		char uuid[VIR_UUID_STRING_BUFLEN];
		if (virDomainGetUUIDString(d, uuid) == 0)
			virt_cache_remove(v, uuid);
	} else {
		char q[600];
		MV_WARN("virt", "cannot refresh VM name=%s error=%s", name,
		        mv_log_quote(q, sizeof(q), err));
	}
}

static void virt_reconcile_failed(int rc, const char *err)
{
	if (rc != -ENOTCONN) {
		char q[600];
		MV_WARN("virt", "reconcile failed error=%s", mv_log_quote(q, sizeof(q), err));
	}
}

/* The cache becomes vms (n of them, taken over); on_change for every VM
 * added, removed or changed. Returns how many, or -ENOMEM (vms freed). */
static int virt_reconcile_apply(struct virt *v, struct virt_vm *vms, size_t n)
{
	/* Names of VMs that differ, collected before notifying: the callback
	 * may call back into virt and rewrite the cache. */
	size_t cap = n + v->n_vms, nc = 0;
	char(*changed)[VIRT_NAME_MAX] = cap > 0 ? malloc(cap * VIRT_NAME_MAX) : NULL;
	if (cap > 0 && changed == NULL) {
		free(vms);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct virt_vm *old = virt_cache_find(v, vms[i].uuid);
		virt_merge_stop(v, old, &vms[i]);
		if (old == NULL || !virt_vm_equal(old, &vms[i]))
			memcpy(changed[nc++], vms[i].name, VIRT_NAME_MAX);
	}
	for (size_t i = 0; i < v->n_vms; i++) {
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = strcmp(vms[j].uuid, v->vms[i].uuid) == 0;
		if (!found)
			memcpy(changed[nc++], v->vms[i].name, VIRT_NAME_MAX);
	}
	free(v->vms);
	v->vms = vms;
	v->n_vms = n;
	v->cache_gen++;
	if (nc > 0)
		MV_DEBUG("virt", "reconcile found changes vms=%zu", nc);
	for (size_t i = 0; i < nc; i++)
		virt_notify(v, VIRT_CHANGE_VM_RECONCILED, changed[i]);
	free(changed);
	return (int)nc;
}

int virt_reconcile(struct virt *v)
{
	struct virt_vm *vms;
	size_t n;
	char err[512];
	int rc = virt_list_raw(v, &vms, &n, err, sizeof(err));
	if (rc < 0) {
		virt_reconcile_failed(rc, err);
		return rc;
	}
	return virt_reconcile_apply(v, vms, n);
}

/* The periodic reconcile on the worker: the listing there, through the
 * job's own reference on the connection; the rest on the loop. */
struct virt_reconcile_job {
	struct hvwork_job j;
	struct virt *v; /* NULL once virt_free ran: only the job is freed */
	virConnectPtr c;
	uint64_t gen; /* v->cache_gen when the listing was asked for */
	struct virt_vm *vms;
	size_t n;
	bool long_name;
	int rc;
	char err[512];
};

static void virt_reconcile_work(struct hvwork_job *j)
{
	struct virt_reconcile_job *r = j->data;
	struct virt_reader rd = {.c = r->c};
	r->rc = virt_list_conn(&rd, r->c, &r->vms, &r->n, &r->long_name, r->err, sizeof(r->err));
}

static void virt_reconcile_done(struct hvwork_job *j, int status)
{
	struct virt_reconcile_job *r = j->data;
	struct virt *v = r->v;
	if (v != NULL) {
		v->reconcile_job = NULL;
		if (status != 0) {
			/* cancelled: the agent stops */
		} else if (r->rc == -ENOTCONN && v->conn == r->c) {
			char why[600];
			snprintf(why, sizeof(why), "libvirt connection lost: %s", r->err);
			virt_lost(v, why);
		} else if (r->rc < 0) {
			virt_reconcile_failed(r->rc, r->err);
		} else if (r->gen != v->cache_gen) {
			MV_DEBUG("virt", "reconcile listing dropped: the cache changed meanwhile");
		} else {
			virt_warn_long_name(v, r->long_name);
			virt_reconcile_apply(v, r->vms, r->n);
			r->vms = NULL;
		}
		virt_opq_kick(v); /* an operator job may have waited for it */
	}
	virConnectClose(r->c);
	free(r->vms);
	free(r);
}

/* Starts a reconcile on the worker; false when it could not (no worker, no
 * connection, out of memory, the lane is full): nothing started. True also
 * when one is already under way. */
static bool virt_reconcile_async(struct virt *v)
{
	if (v->worker == NULL)
		return false;
	if (virt_conn_job_busy(v))
		return true; /* one worker call on the connection at a time (below) */
	struct virt_reconcile_job *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return false;
	r->c = virt_conn_ref(v);
	if (r->c == NULL) {
		free(r);
		return false;
	}
	r->v = v;
	r->gen = v->cache_gen;
	r->j.work = virt_reconcile_work;
	r->j.done = virt_reconcile_done;
	r->j.data = r;
	if (hvwork_submit(v->worker, HVWORK_GENERAL, &r->j) < 0) {
		virConnectClose(r->c);
		free(r);
		return false;
	}
	v->reconcile_job = r;
	return true;
}

/* ---- connection --------------------------------------------------------- */

unsigned virt_backoff_ms(unsigned failures, unsigned min_ms, unsigned max_ms)
{
	uint64_t d = min_ms;
	for (unsigned i = 0; i < failures && d < max_ms; i++)
		d *= 2;
	return d > max_ms ? max_ms : (unsigned)d;
}

static void virt_log_state(struct virt *v)
{
	if (v->logged_once && v->logged_state == v->health.reachable)
		return;
	char q[300];
	if (v->health.reachable)
		MV_INFO("virt",
		        "libvirt reachable uri=%s cpus=%u memory_kib=%" PRIu64 " cpu_model=%s",
		        v->uri, v->health.cpus, v->health.memory_kib,
		        mv_log_quote(q, sizeof(q), v->health.cpu_model));
	else
		MV_WARN("virt", "libvirt unreachable uri=%s error=%s", v->uri,
		        mv_log_quote(q, sizeof(q), v->health.error));
	v->logged_once = true;
	v->logged_state = v->health.reachable;
}

static void virt_set_unreachable(struct virt *v, const char *msg)
{
	v->health.reachable = false;
	size_t n = strnlen(msg, sizeof(v->health.error) - 1);
	memcpy(v->health.error, msg, n);
	v->health.error[n] = '\0';
	virt_log_state(v);
}

static void virt_on_retry(uv_timer_t *t);

static void virt_schedule_retry(struct virt *v)
{
	if (v->loop == NULL)
		return;
	unsigned d = virt_backoff_ms(v->retry_n++, v->backoff_min_ms, v->backoff_max_ms);
	v->health.retry_ms = d;
	uv_timer_start(&v->retry_timer, virt_on_retry, d, 0);
}

static void virt_lost(struct virt *v, const char *why)
{
	if (!virt_connected(v))
		return;
	pthread_mutex_lock(&v->conn_lock);
	v->conn_dead = true;
	pthread_mutex_unlock(&v->conn_lock);
	virt_set_unreachable(v, why);
	if (v->loop != NULL) {
		/* We may be inside libvirt's close callback, where neither we nor
		 * the agent's callback may close the connection: teardown and the
		 * DISCONNECTED notice run from the retry timer, on a clean stack. */
		v->health.retry_ms = 0;
		uv_timer_start(&v->retry_timer, virt_on_retry, 0, 0);
		return;
	}
	virt_notify(v, VIRT_CHANGE_DISCONNECTED, NULL);
}

static void virt_on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct virt *v = opaque;
	if (conn != v->conn)
		return;
	const char *r;
	switch (reason) {
	case VIR_CONNECT_CLOSE_REASON_ERROR:
		r = "I/O error";
		break;
	case VIR_CONNECT_CLOSE_REASON_EOF:
		r = "end of file from libvirt";
		break;
	case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
		r = "keepalive timeout";
		break;
	case VIR_CONNECT_CLOSE_REASON_CLIENT:
		r = "closed by client";
		break;
	default:
		r = "unknown reason";
		break;
	}
	char why[512];
	virErrorPtr e = virGetLastError();
	if (e != NULL && e->message != NULL)
		snprintf(why, sizeof(why), "libvirt connection closed (%s): %s", r, e->message);
	else
		snprintf(why, sizeof(why), "libvirt connection closed (%s)", r);
	virt_lost(v, why);
}

#ifdef MV_TEST_HOOKS
void virt_inject_close(struct virt *v)
{
	if (v->conn != NULL)
		virt_on_close(v->conn, VIR_CONNECT_CLOSE_REASON_EOF, v);
}
#endif

/* The reason a virt_test_inject_stop left for this VM's next STOPPED
 * event (consumed), or `why` itself. */
static enum virt_stop_reason virt_injected_reason(struct virt *v, const char *uuid,
                                                  enum virt_stop_reason why)
{
	for (size_t i = 0; i < sizeof(v->injected) / sizeof(v->injected[0]); i++) {
		if (v->injected[i].uuid[0] != '\0' && strcmp(v->injected[i].uuid, uuid) == 0) {
			v->injected[i].uuid[0] = '\0';
			return v->injected[i].why;
		}
	}
	return why;
}

/* Records why for the VM, when the cache has it stopped (a late event for
 * a VM that was started again meanwhile changes nothing). */
static void virt_cache_set_stop(struct virt *v, const char *uuid, enum virt_stop_reason why)
{
	struct virt_vm *e = virt_cache_find(v, uuid);
	if (e != NULL && virt_vm_stopped(e->state)) {
		e->stop_reason = why;
		v->cache_gen++;
	}
}

/* An event without a worker: the read here, on the loop. why:
 * VIRT_STOP_NONE for events that carry no stop reason. */
static void virt_on_domain_event(struct virt *v, virDomainPtr dom, enum virt_stop_reason why)
{
	char name[VIRT_NAME_MAX];
	virt_cache_refresh(v, dom, name);
	char uuid[VIR_UUID_STRING_BUFLEN];
	if (why != VIRT_STOP_NONE && virDomainGetUUIDString(dom, uuid) == 0)
		virt_cache_set_stop(v, uuid, virt_injected_reason(v, uuid, why));
	virt_notify(v, VIRT_CHANGE_VM_EVENT, name);
}

/* ---- events: the read on the worker ------------------------------------- */
/*
 * Without a worker an event re-reads its domain at once, on the loop
 * (virt_on_domain_event). With one, that read (five or six round trips)
 * must not happen on the loop: libvirtd answers a read of a domain only
 * once the job holding that domain (a start: hundreds of ms for a QEMU
 * guest, seconds when libvirtd is busy) has finished, and the lab saw a
 * host that restarted failed-over guests stall its loop 0.4-1.4 s, get
 * suspected, refute, and self-fence the guests it had just restarted.
 *
 * So an event only records (VM uuid and name, stop reason) in v->evq, and
 * a job on the worker reads the queued VMs through its own reference on
 * the connection; its completion, on the loop, applies each read in order
 * (cache upsert or removal), then the stop reason the events carried
 * (virt_cache_set_stop: the reason reaches the cache although the read
 * comes later), then on_change(VIRT_CHANGE_VM_EVENT): the callers' rule,
 * "the notice comes after the cache reflects the event", holds.
 *
 * Coalescing and order. An event of a VM already waiting in the queue
 * adds nothing but its stop reason (the latest one carried wins): one
 * read, one notice, for all of them. An event of a VM whose read is in
 * flight queues a new entry (that read may predate the event), read by
 * the next job: reads of one VM never overlap and are applied in the
 * order they were made, so the cache never goes back to an older state.
 *
 * The connection rule. The read is a worker call on the agent's
 * connection like the others (virt_conn_job_busy: one at a time, see
 * virt_host_refresh_async): it starts only when no other call is in
 * flight, and when a call ends the events' read goes first, before the
 * operators' queue (virt_opq_kick calls virt_evq_kick): it is short, and
 * a crash restart waits for the stop reason it brings. A crash restart's
 * start refused -EBUSY makes it wait, as operator commands do
 * (VIRT_OP_YIELD_MS), so a stream of events cannot starve it either
 * (its retry, or the next event, call or reconcile tick, moves the
 * queue on again).
 *
 * Which lane: the general one. The one-call-at-a-time rule already
 * serializes this connection's work, and the general lane carries only
 * those calls (and a reconnect, when there are no events), so a read
 * there waits for at most the connection's current call, which it would
 * wait for on any lane. The critical lane would not make crash detection
 * faster; it would take a thread from the remote fences of a dead host
 * (each up to 10 s) and the local fence's destroys, which HA needs most
 * exactly when hosts die and events flood in.
 *
 * Bounds. One entry per VM, at most VIRT_EVQ_MAX: an event for a further
 * VM is dropped with a warning (once per episode), and once the queue
 * has drained a reconcile reads everything (the periodic one would, too,
 * reconcile_ms later); its notices are VIRT_CHANGE_VM_RECONCILED and the
 * stop reasons are the coarser ones of the domain state. A read whose
 * connection was replaced meanwhile is dropped (the reconnect's listing
 * is newer); entries still queued at a reconnect are read on the new
 * connection, so their stop reasons survive it.
 */
struct virt_ev_read {
	struct virt_ev_item ev;
	struct virt_vm vm;
	int rc; /* 0 read into vm; -ENOENT gone; else -errno */
};

struct virt_ev_job {
	struct hvwork_job j;
	struct virt *v; /* NULL once virt_free ran */
	virConnectPtr c;
	char err[512]; /* the first failure's message */
	size_t n;
	struct virt_ev_read r[];
};

static void virt_ev_work(struct hvwork_job *j)
{
	struct virt_ev_job *e = j->data;
	struct virt_reader rd = {.c = e->c};
	virt_test_slow();
	for (size_t i = 0; i < e->n; i++) {
		struct virt_ev_read *r = &e->r[i];
		char err[512] = "";
		virDomainPtr d = virDomainLookupByUUIDString(e->c, r->ev.uuid);
		if (d == NULL && virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
			r->rc = -ENOENT;
		} else if (d == NULL) {
			r->rc = virt_conn_failed(e->c, err, sizeof(err), "cannot look up a VM");
		} else {
			r->rc = virt_dom_read(&rd, d, &r->vm, err, sizeof(err));
			virDomainFree(d);
		}
		if (r->rc < 0 && r->rc != -ENOENT && e->err[0] == '\0')
			snprintf(e->err, sizeof(e->err), "%s", err);
	}
}

/* One read, on the loop: the cache, the stop reason, the notice. */
static void virt_ev_apply(struct virt *v, struct virt_ev_read *r)
{
	if (r->rc == 0) {
		if (virt_cache_upsert(v, &r->vm) < 0)
			MV_ERROR("virt", "out of memory caching VM name=%s", r->vm.name);
	} else if (r->rc == -ENOENT) {
		virt_cache_remove(v, r->ev.uuid);
	}
	if (r->ev.why != VIRT_STOP_NONE)
		virt_cache_set_stop(v, r->ev.uuid, virt_injected_reason(v, r->ev.uuid, r->ev.why));
	virt_notify(v, VIRT_CHANGE_VM_EVENT, r->rc == 0 ? r->vm.name : r->ev.name);
}

static void virt_ev_done(struct hvwork_job *j, int status)
{
	struct virt_ev_job *e = j->data;
	struct virt *v = e->v;
	if (v != NULL) {
		v->ev_job = NULL;
		if (status != 0) {
			/* cancelled: the agent stops */
		} else if (v->conn != e->c) {
			MV_DEBUG("virt", "event reads dropped: the connection was replaced vms=%zu",
			         e->n);
		} else {
			bool lost = false;
			for (size_t i = 0; i < e->n; i++) {
				lost = lost || e->r[i].rc == -ENOTCONN;
				virt_ev_apply(v, &e->r[i]);
			}
			char q[600];
			if (lost && v->conn == e->c) {
				char why[600];
				snprintf(why, sizeof(why), "libvirt connection lost: %s", e->err);
				virt_lost(v, why);
			} else if (e->err[0] != '\0') {
				MV_WARN("virt", "cannot refresh VM after an event error=%s",
				        mv_log_quote(q, sizeof(q), e->err));
			}
		}
		virt_opq_kick(v); /* the next reads, then operator work */
	}
	virConnectClose(e->c);
	free(e);
}

/* Starts the read of the queued events when the connection is free, or,
 * after an overflow, the reconcile that stands in for what was dropped. */
static void virt_evq_kick(struct virt *v)
{
	if (virt_conn_job_busy(v) || !virt_connected(v) || virt_conn_yielding(v))
		return;
	if (v->evq_n == 0) {
		if (v->evq_overflow && virt_reconcile_async(v)) {
			v->evq_overflow = false;
			MV_INFO("virt", "event queue drained: reconciling for the dropped events");
		}
		return;
	}
	struct virt_ev_job *e = calloc(1, sizeof(*e) + v->evq_n * sizeof(e->r[0]));
	if (e == NULL)
		return; /* the queue stays: the next kick */
	e->n = v->evq_n;
	for (size_t i = 0; i < e->n; i++)
		e->r[i].ev = v->evq[i];
	if (virt_conn_submit(v, HVWORK_GENERAL, &e->j, virt_ev_work, virt_ev_done, e, &e->c) < 0) {
		free(e); /* lane full, or stopping: the queue stays */
		return;
	}
	e->v = v;
	v->ev_job = e;
	v->evq_n = 0;
}

/* An event of dom, with a worker: queued (coalesced) for its read. */
static void virt_evq_add(struct virt *v, virDomainPtr dom, enum virt_stop_reason why)
{
	/* name and UUID are in the domain object: no round trip */
	const char *name = virDomainGetName(dom);
	char uuid[VIR_UUID_STRING_BUFLEN];
	if (name == NULL || virDomainGetUUIDString(dom, uuid) < 0)
		return;
	struct virt_ev_item *it = NULL;
	for (size_t i = 0; i < v->evq_n && it == NULL; i++)
		if (strcmp(v->evq[i].uuid, uuid) == 0)
			it = &v->evq[i];
	if (it == NULL && v->evq_n == VIRT_EVQ_MAX) {
		if (!v->evq_overflow)
			MV_WARN("virt",
			        "event queue full, VM left to a reconcile name=%s queued=%u", name,
			        (unsigned)VIRT_EVQ_MAX);
		v->evq_overflow = true;
		return;
	}
	if (it == NULL) {
		it = &v->evq[v->evq_n++];
		snprintf(it->uuid, sizeof(it->uuid), "%s", uuid);
		it->why = VIRT_STOP_NONE;
	}
	snprintf(it->name, sizeof(it->name), "%s", name);
	if (why != VIRT_STOP_NONE)
		it->why = why;
	virt_evq_kick(v);
}

/* why: VIRT_STOP_NONE for events that carry no stop reason. */
static void virt_on_event(struct virt *v, virDomainPtr dom, enum virt_stop_reason why)
{
	if (v->worker != NULL)
		virt_evq_add(v, dom, why);
	else
		virt_on_domain_event(v, dom, why);
}

static void virt_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                              void *opaque)
{
	struct virt *v = opaque;
	if (conn != v->conn || v->conn_dead)
		return;
	MV_DEBUG("virt", "lifecycle event vm=%s event=%d detail=%d", virDomainGetName(dom), event,
	         detail);
	enum virt_stop_reason why = VIRT_STOP_NONE;
	if (event == VIR_DOMAIN_EVENT_STOPPED)
		why = virt_stop_from_event(detail);
	else if (event == VIR_DOMAIN_EVENT_CRASHED)
		why = VIRT_STOP_CRASHED;
	virt_on_event(v, dom, why);
}

static void virt_on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                             void *opaque)
{
	struct virt *v = opaque;
	if (conn != v->conn || v->conn_dead)
		return;
	if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri != NULL &&
	    strcmp(nsuri, VIRT_META_NS) != 0)
		return;
	virt_on_event(v, dom, VIRT_STOP_NONE);
}

/* Reads node info into health; false (and LOST) on failure. */
static bool virt_refresh_node(struct virt *v)
{
	virNodeInfo info;
	if (virNodeGetInfo(v->conn, &info) < 0) {
		char why[512];
		snprintf(why, sizeof(why), "cannot read node info: %s", virt_last_message());
		virt_lost(v, why);
		return false;
	}
	v->health.cpus = info.cpus;
	v->health.memory_kib = info.memory;
	snprintf(v->health.cpu_model, sizeof(v->health.cpu_model), "%s",
	         v->cpu_model[0] ? v->cpu_model : info.model);
	return true;
}

/* The callbacks registered on a connection (virt_register_conn), and what
 * failed there, for the loop to log. */
struct virt_callbacks {
	bool done; /* registered (or tried): the ids below are the connection's */
	int lifecycle_cb, metadata_cb;
	bool close_cb;
	char keepalive_err[512], close_err[512], lifecycle_err[512], metadata_err[512];
};

/* Keepalive, the close callback and the domain events on c, with v as
 * their opaque (not dereferenced here): the events' registration is a
 * round trip to a remote libvirtd, so a reconnect makes it on the worker
 * (virt_open_work), before the connection is handed to the loop. Any
 * thread (virt_uvloop.c takes libvirt's handle changes from any). */
static void virt_register_conn(virConnectPtr c, struct virt *v, int ka_interval, unsigned ka_count,
                               struct virt_callbacks *cb)
{
	memset(cb, 0, sizeof(*cb));
	cb->done = true;
#ifdef MV_TEST_HOOKS
	virt_test_sleep(virt_test_register_delay_ms);
#endif
	if (ka_interval > 0 && virConnectSetKeepAlive(c, ka_interval, ka_count) < 0 &&
	    virGetLastErrorCode() != VIR_ERR_NO_SUPPORT) /* in-process drivers have none */
		snprintf(cb->keepalive_err, sizeof(cb->keepalive_err), "%s", virt_last_message());
	if (virConnectRegisterCloseCallback(c, virt_on_close, v, NULL) == 0)
		cb->close_cb = true;
	else if (virGetLastErrorCode() != VIR_ERR_NO_SUPPORT)
		snprintf(cb->close_err, sizeof(cb->close_err), "%s", virt_last_message());
	cb->lifecycle_cb =
	    virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	                                     VIR_DOMAIN_EVENT_CALLBACK(virt_on_lifecycle), v, NULL);
	if (cb->lifecycle_cb < 0)
		snprintf(cb->lifecycle_err, sizeof(cb->lifecycle_err), "%s", virt_last_message());
	cb->metadata_cb =
	    virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
	                                     VIR_DOMAIN_EVENT_CALLBACK(virt_on_metadata), v, NULL);
	if (cb->metadata_cb < 0)
		snprintf(cb->metadata_err, sizeof(cb->metadata_err), "%s", virt_last_message());
}

/* Undoes virt_register_conn on a connection the loop never took. */
static void virt_unregister_conn(virConnectPtr c, const struct virt_callbacks *cb)
{
	if (!cb->done)
		return;
	if (cb->lifecycle_cb >= 0)
		virConnectDomainEventDeregisterAny(c, cb->lifecycle_cb);
	if (cb->metadata_cb >= 0)
		virConnectDomainEventDeregisterAny(c, cb->metadata_cb);
	if (cb->close_cb)
		virConnectUnregisterCloseCallback(c, virt_on_close);
}

/* Deregisters cb's callbacks of c and closes it (each a round trip to a
 * remote libvirtd: seconds with one that stalls). Errors are expected here
 * (the connection may be dead) and mean nothing. Any thread; touches no
 * struct virt. */
static void virt_close_conn(virConnectPtr c, const struct virt_callbacks *cb)
{
#ifdef MV_TEST_HOOKS
	virt_test_sleep(virt_test_drop_delay_ms);
#endif
	virt_unregister_conn(c, cb);
	virConnectClose(c); /* a worker's reference keeps it open for the worker */
}

/* A connection's teardown on the worker (virt_drop). */
struct virt_close_job {
	struct hvwork_job j;
	virConnectPtr c; /* NULL once closed */
	struct virt_callbacks cb;
};

static void virt_close_work(struct hvwork_job *j)
{
	struct virt_close_job *q = j->data;
	virt_close_conn(q->c, &q->cb);
	q->c = NULL;
}

static void virt_close_done(struct hvwork_job *j, int status)
{
	struct virt_close_job *q = j->data;
	(void)status;
	if (q->c != NULL) /* cancelled (the agent stops): here */
		virt_close_conn(q->c, &q->cb);
	free(q);
}

/* Detaches v's connection (from now on none of its callbacks acts: they
 * check v->conn) and tears it down: on the worker's general lane when
 * on_worker and the worker takes the job (the loop never waits for a
 * libvirtd that stalls; the callbacks' opaque v must outlive the job,
 * which the agent's stop ensures by freeing v only once the worker is
 * idle), else here. */
static void virt_drop(struct virt *v, bool on_worker)
{
	if (v->conn == NULL)
		return;
	struct virt_callbacks cb = {.done = true,
	                            .lifecycle_cb = v->lifecycle_cb,
	                            .metadata_cb = v->metadata_cb,
	                            .close_cb = v->close_cb};
	v->lifecycle_cb = v->metadata_cb = -1;
	v->close_cb = false;
	pthread_mutex_lock(&v->conn_lock);
	virConnectPtr c = v->conn;
	v->conn = NULL;
	v->conn_dead = false;
	pthread_mutex_unlock(&v->conn_lock);
	struct virt_close_job *q = on_worker && v->worker != NULL ? calloc(1, sizeof(*q)) : NULL;
	if (q != NULL) {
		q->c = c;
		q->cb = cb;
		q->j = (struct hvwork_job){.work = virt_close_work,
		                           .done = virt_close_done,
		                           .data = q,
		                           .what = "libvirt connection teardown"};
		if (hvwork_submit(v->worker, HVWORK_GENERAL, &q->j) == 0)
			return;
		free(q);
	}
	virt_close_conn(c, &cb);
}

/* The connection's callbacks are v's now (the loop); what failed is logged. */
static void virt_take_callbacks(struct virt *v, const struct virt_callbacks *cb)
{
	char q[600];
	if (cb->keepalive_err[0] != '\0')
		MV_WARN("virt", "cannot enable libvirt keepalive error=%s",
		        mv_log_quote(q, sizeof(q), cb->keepalive_err));
	if (cb->close_err[0] != '\0')
		MV_WARN("virt", "cannot watch the libvirt connection error=%s",
		        mv_log_quote(q, sizeof(q), cb->close_err));
	if (cb->lifecycle_cb < 0)
		MV_WARN("virt", "no lifecycle events, reconcile only error=%s",
		        mv_log_quote(q, sizeof(q), cb->lifecycle_err));
	if (cb->metadata_cb < 0)
		MV_DEBUG("virt", "no metadata events error=%s",
		         mv_log_quote(q, sizeof(q), cb->metadata_err));
	v->close_cb = cb->close_cb;
	v->lifecycle_cb = cb->lifecycle_cb;
	v->metadata_cb = cb->metadata_cb;
}

/* What opening a connection found out (virt_open_conn): any thread. */
struct virt_opened {
	virConnectPtr c; /* NULL: failed, err says why */
	bool test_driver;
	char cpu_model[64]; /* from the capabilities; "" when not read */
	virNodeInfo info;
	char err[512];
	/* a reconnect on the worker registers the callbacks there */
	struct virt_callbacks cb;
	/* a reconnect on the worker lists the VMs there too (virt_open_work) */
	bool listed;
	int list_rc;
	struct virt_vm *vms;
	size_t n_vms;
	bool long_name;
	char list_err[512];
};

/* The host CPU model as libvirt names it (what migration compatibility is
 * judged by; "" when unknown), read once per struct virt: a cold
 * qemu:///system daemon can take seconds to build its capabilities (8 s
 * measured in the lab). The agent's first connect is its synchronous
 * virt_check() before it starts serving; reconnects read it on the worker
 * when it is still unknown. */
static void virt_caps_cpu_model(virConnectPtr c, char *out, size_t len)
{
	out[0] = '\0';
	char *caps = virConnectGetCapabilities(c);
	if (caps == NULL)
		return;
	xmlDocPtr doc = virt_xml_read(caps);
	if (doc != NULL)
		virt_xpath_string(doc, "string(/capabilities/host/cpu/model)", out, len);
	xmlFreeDoc(doc);
	free(caps);
}

/* Opens uri and reads what a new connection needs: the driver type, the
 * CPU model (want_caps: seconds on a cold qemu:///system) and the node
 * info. Touches no struct virt: runs on the loop or on the worker. */
static void virt_open_conn(const char *uri, bool want_caps, struct virt_opened *o)
{
	memset(o, 0, sizeof(*o));
	virt_test_slow_for(true);
	o->c = virConnectOpen(uri);
	if (o->c == NULL) {
		snprintf(o->err, sizeof(o->err), "cannot connect to libvirt: %s",
		         virt_last_message());
		return;
	}
	const char *type = virConnectGetType(o->c);
	o->test_driver = type != NULL && strcmp(type, "TEST") == 0;
	if (want_caps)
		virt_caps_cpu_model(o->c, o->cpu_model, sizeof(o->cpu_model));
	if (virNodeGetInfo(o->c, &o->info) < 0) {
		snprintf(o->err, sizeof(o->err), "cannot read node info: %s", virt_last_message());
		virConnectClose(o->c);
		o->c = NULL;
	}
}

/* DISCONNECTED -> CONNECTED with what virt_open_conn opened (taken over),
 * or stays DISCONNECTED with health saying why. Loop thread. */
static int virt_connect_finish(struct virt *v, struct virt_opened *o)
{
	if (o->c == NULL) {
		v->health.failures++;
		virt_set_unreachable(v, o->err);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&v->conn_lock);
	v->conn = o->c;
	v->conn_dead = false;
	pthread_mutex_unlock(&v->conn_lock);
	v->test_driver = o->test_driver;
	if (v->cpu_model[0] == '\0')
		snprintf(v->cpu_model, sizeof(v->cpu_model), "%s", o->cpu_model);
	if (v->loop != NULL) {
		struct virt_callbacks cb;
		if (!o->cb.done) /* the agent's first connect, before it serves */
			virt_register_conn(v->conn, v, v->ka_interval, v->ka_count, &cb);
		virt_take_callbacks(v, o->cb.done ? &o->cb : &cb);
	}
	v->health.cpus = o->info.cpus;
	v->health.memory_kib = o->info.memory;
	snprintf(v->health.cpu_model, sizeof(v->health.cpu_model), "%s",
	         v->cpu_model[0] ? v->cpu_model : o->info.model);
	v->health.reachable = true;
	v->health.error[0] = '\0';
	v->health.connects++;
	v->health.failures = 0;
	v->health.retry_ms = 0;
	v->retry_n = 0;
	if (v->loop != NULL)
		uv_timer_stop(&v->retry_timer);
	virt_log_state(v);
	/* The first listing of a new connection is in the cache before
	 * CONNECTED is told (and before the agent acts on reachable): the
	 * agent's start reads the inventory at once (HA VMs here resume the
	 * self-fence clock), and a blind fence's retry after a reconnect
	 * destroys from it. The agent's first connect (virt_check, before it
	 * serves) lists here; a reconnect on the worker registered the
	 * callbacks and then listed there (virt_open_work): that listing is
	 * applied here, and since the events that came between the
	 * registration and now were dropped (the connection was not yet
	 * v->conn), a second listing on the worker catches what changed in
	 * between. */
	if (o->listed && o->list_rc == 0) {
		virt_warn_long_name(v, o->long_name);
		virt_reconcile_apply(v, o->vms, o->n_vms);
		o->vms = NULL;
		virt_reconcile_async(v);
	} else if (o->listed) {
		virt_reconcile_failed(o->list_rc, o->list_err);
		virt_reconcile_async(v);
	} else {
		virt_reconcile(v);
	}
	if (virt_connected(v))
		virt_notify(v, VIRT_CHANGE_CONNECTED, NULL);
	virt_evq_kick(v); /* events queued before the loss, read on this connection */
	return 0;
}

static int virt_connect(struct virt *v)
{
	struct virt_opened o;
	virt_open_conn(v->uri, v->cpu_model[0] == '\0', &o);
	return virt_connect_finish(v, &o);
}

/* A reconnect on the worker: virConnectOpen to a libvirtd that is alive
 * but does not answer (stopped, hung) blocks until it does, with no
 * timeout of libvirt's: there it holds a worker thread, not the loop. */
struct virt_open_job {
	struct hvwork_job j;
	struct virt *v;      /* NULL once virt_free ran */
	struct virt *opaque; /* v as the callbacks' opaque (never read on the worker) */
	char *uri;
	bool want_caps;
	int ka_interval;
	unsigned ka_count;
	struct virt_opened o;
};

static void virt_open_work(struct hvwork_job *j)
{
	struct virt_open_job *o = j->data;
	virt_open_conn(o->uri, o->want_caps, &o->o);
	if (o->o.c != NULL) {
		/* registered before the listing: the second listing on the loop's
		 * side (virt_connect_finish) covers events until the loop takes
		 * the connection (they are dropped: not yet v->conn) */
		virt_register_conn(o->o.c, o->opaque, o->ka_interval, o->ka_count, &o->o.cb);
		struct virt_reader rd = {.c = o->o.c};
		o->o.listed = true;
		o->o.list_rc = virt_list_conn(&rd, o->o.c, &o->o.vms, &o->o.n_vms, &o->o.long_name,
		                              o->o.list_err, sizeof(o->o.list_err));
	}
}

static void virt_open_done(struct hvwork_job *j, int status)
{
	struct virt_open_job *o = j->data;
	struct virt *v = o->v;
	if (v != NULL)
		v->open_job = NULL;
	if (v == NULL || status != 0) {
		if (o->o.c != NULL) {
			/* virt_free ran: its callbacks must not outlive it (the
			 * agent frees it only once the worker is idle) */
			virt_unregister_conn(o->o.c, &o->o.cb);
			virConnectClose(o->o.c);
		}
	} else if (virt_connect_finish(v, &o->o) < 0) {
		virt_schedule_retry(v);
		char q[300];
		MV_DEBUG("virt", "reconnect failed error=%s retry_in_ms=%u",
		         mv_log_quote(q, sizeof(q), v->health.error), v->health.retry_ms);
	}
	free(o->o.vms); /* NULL when applied */
	free(o->uri);
	free(o);
}

/* Starts a reconnect on the worker; false when there is none or it cannot
 * take the job (then the caller connects here). */
static bool virt_connect_async(struct virt *v)
{
	if (v->worker == NULL)
		return false;
	if (v->open_job != NULL)
		return true;
	struct virt_open_job *o = calloc(1, sizeof(*o));
	if (o == NULL || (o->uri = strdup(v->uri)) == NULL) {
		free(o);
		return false;
	}
	o->v = o->opaque = v;
	o->ka_interval = v->ka_interval;
	o->ka_count = v->ka_count;
	o->want_caps = v->cpu_model[0] == '\0';
	o->j.work = virt_open_work;
	o->j.done = virt_open_done;
	o->j.data = o;
	if (hvwork_submit(v->worker, HVWORK_GENERAL, &o->j) < 0) {
		free(o->uri);
		free(o);
		return false;
	}
	v->open_job = o;
	return true;
}

static void virt_on_retry(uv_timer_t *t)
{
	struct virt *v = t->data;
	v->health.retry_ms = 0;
	if (v->conn != NULL && v->conn_dead) { /* LOST: tear down, retry later */
		virt_drop(v, true);
		virt_schedule_retry(v);
		virt_notify(v, VIRT_CHANGE_DISCONNECTED, NULL);
		return;
	}
	if (v->conn != NULL || v->open_job != NULL)
		return;
	/* (one line per attempt, at the backoff's pace: 1 s doubling to 30 s) */
	MV_DEBUG("virt", "reconnecting uri=%s attempt=%u", v->uri, v->retry_n);
	if (!virt_connect_async(v) && virt_connect(v) < 0)
		virt_schedule_retry(v);
}

static void virt_on_reconcile(uv_timer_t *t)
{
	struct virt *v = t->data;
	virt_opq_kick(v); /* operator work left waiting for a start that never came */
	if (virt_connected(v) && !virt_reconcile_async(v) && v->worker == NULL)
		virt_reconcile(v);
}

/* Without a loop this is the whole connection machine, run by polling.
 * With one, reconnecting belongs to the retry timer and its backoff: a
 * check only makes the very first attempt synchronously (so the agent
 * connects before it serves) and otherwise reports. */
bool virt_check(struct virt *v)
{
	if (virt_connected(v) && virConnectIsAlive(v->conn) != 1)
		virt_lost(v, "libvirt connection is not alive");
	if (v->loop == NULL) {
		if (v->conn != NULL && v->conn_dead)
			virt_drop(v, false);
		if (v->conn == NULL)
			virt_connect(v);
	} else if (v->conn == NULL && v->health.connects == 0 && v->health.failures == 0) {
		uv_timer_stop(&v->retry_timer);
		if (virt_connect(v) < 0)
			virt_schedule_retry(v);
	}
	if (virt_connected(v) && v->worker != NULL && v->health.connects > 0) {
		/* no round trip here: the figures come from the worker's reads
		 * (virt_host_info), and a dead daemon from keepalive, the close
		 * callback and the worker's failures */
		if (v->host_known) {
			v->health.cpus = v->host.cpus;
			v->health.memory_kib = v->host.memory_kib;
		}
		v->health.reachable = true;
	} else if (virt_connected(v) && virt_refresh_node(v)) {
		v->health.reachable = true;
	}
	virt_log_state(v);
	return v->health.reachable;
}

/* ---- lifetime ----------------------------------------------------------- */

static bool virt_uri_local(const char *uri)
{
	const char *s = strstr(uri, "://");
	return s == NULL || s[3] == '/' || s[3] == '\0' || s[3] == '?';
}

struct virt *virt_new(const char *uri)
{
	struct virt_options o = {.uri = uri};
	return virt_new_opts(&o);
}

struct virt *virt_new_opts(const struct virt_options *o)
{
	struct virt *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->uri = strdup(o->uri != NULL ? o->uri : "");
	if (v->uri == NULL || pthread_mutex_init(&v->conn_lock, NULL) != 0) {
		free(v->uri);
		free(v);
		return NULL;
	}
	v->local = virt_uri_local(v->uri);
	v->loop = o->loop;
	v->lifecycle_cb = v->metadata_cb = -1;
	v->reconcile_ms = o->reconcile_ms ? o->reconcile_ms : VIRT_RECONCILE_MS_DEFAULT;
	v->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : VIRT_BACKOFF_MIN_MS_DEFAULT;
	v->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : VIRT_BACKOFF_MAX_MS_DEFAULT;
	if (v->backoff_max_ms < v->backoff_min_ms)
		v->backoff_max_ms = v->backoff_min_ms;
	v->ka_interval =
	    o->keepalive_interval_s ? o->keepalive_interval_s : VIRT_KEEPALIVE_INTERVAL_S_DEFAULT;
	v->ka_count = o->keepalive_count ? o->keepalive_count : VIRT_KEEPALIVE_COUNT_DEFAULT;
	v->on_change = o->on_change;
	v->ud = o->ud;
	v->worker = o->worker;
	snprintf(v->health.error, sizeof(v->health.error), "not connected yet");
	virSetErrorFunc(NULL, virt_silence_errors);
	if (v->loop != NULL) {
		uv_timer_init(v->loop, &v->retry_timer);
		uv_timer_init(v->loop, &v->reconcile_timer);
		v->retry_timer.data = v->reconcile_timer.data = v;
		v->open_handles = 2;
		uv_timer_start(&v->retry_timer, virt_on_retry, 0, 0);
		uv_timer_start(&v->reconcile_timer, virt_on_reconcile, v->reconcile_ms,
		               v->reconcile_ms);
	}
	return v;
}

static void virt_on_handle_closed(uv_handle_t *h)
{
	struct virt *v = h->data;
	if (--v->open_handles == 0) {
		pthread_mutex_destroy(&v->conn_lock);
		free(v);
	}
}

void virt_free(struct virt *v)
{
	if (v == NULL)
		return;
	if (v->reconcile_job != NULL)
		v->reconcile_job->v = NULL; /* its listing goes nowhere */
	if (v->host_job != NULL)
		v->host_job->v = NULL;
	if (v->open_job != NULL)
		v->open_job->v = NULL;
	if (v->export_job != NULL)
		v->export_job->v = NULL;
	if (v->start_job != NULL)
		v->start_job->v = NULL;
	if (v->ev_job != NULL)
		v->ev_job->v = NULL; /* its reads go nowhere */
	virt_opq_cancel(v);
	virt_drop(v, false);
	free(v->vms);
	free(v->uri);
	v->vms = NULL;
	v->uri = NULL;
	if (v->loop != NULL) {
		uv_close((uv_handle_t *)&v->retry_timer, virt_on_handle_closed);
		uv_close((uv_handle_t *)&v->reconcile_timer, virt_on_handle_closed);
		return;
	}
	pthread_mutex_destroy(&v->conn_lock);
	free(v);
}

const char *virt_uri(const struct virt *v)
{
	return v->uri;
}

const struct virt_health *virt_health(const struct virt *v)
{
	return &v->health;
}

/* ---- host capacity ------------------------------------------------------ */

/* free + buffers + cached over all cells, in KiB; -1 if not reported. */
static int virt_node_free_kib(virConnectPtr c, uint64_t *out)
{
	int n = 0;
	if (virNodeGetMemoryStats(c, VIR_NODE_MEMORY_STATS_ALL_CELLS, NULL, &n, 0) < 0 || n <= 0)
		return -1;
	virNodeMemoryStatsPtr p = calloc((size_t)n, sizeof(*p));
	if (p == NULL)
		return -1;
	int rc = -1;
	if (virNodeGetMemoryStats(c, VIR_NODE_MEMORY_STATS_ALL_CELLS, p, &n, 0) == 0) {
		uint64_t sum = 0;
		for (int i = 0; i < n; i++) {
			if (strcmp(p[i].field, VIR_NODE_MEMORY_STATS_FREE) == 0 ||
			    strcmp(p[i].field, VIR_NODE_MEMORY_STATS_BUFFERS) == 0 ||
			    strcmp(p[i].field, VIR_NODE_MEMORY_STATS_CACHED) == 0) {
				sum += p[i].value;
				rc = 0;
			}
		}
		*out = sum;
	}
	free(p);
	return rc;
}

/* What the host's libvirt says of it (the test driver's free memory is
 * left to the caller: it is computed from the cache). Any thread. */
static int virt_node_read(const struct virt_reader *rd, virConnectPtr c, bool test_driver,
                          bool local, const char *cpu_model, struct virt_host *out)
{
	memset(out, 0, sizeof(*out));
	virt_test_slow();
	virNodeInfo info;
	if (virNodeGetInfo(c, &info) < 0)
		return virt_reader_failed(rd, NULL, 0, "cannot read node info");
	out->cpus = info.cpus;
	out->mhz = info.mhz;
	out->memory_kib = info.memory;
	snprintf(out->cpu_model, sizeof(out->cpu_model), "%s",
	         cpu_model[0] ? cpu_model : info.model);
	if (test_driver) {
		out->free_estimated = true;
	} else if (virt_node_free_kib(c, &out->free_kib) < 0) {
		unsigned long long b = virNodeGetFreeMemory(c);
		if (b == 0)
			return virt_reader_failed(rd, NULL, 0, "cannot read free memory");
		out->free_kib = b / 1024;
	}
	if (local) {
		FILE *f = fopen("/proc/loadavg", "r");
		if (f != NULL) {
			out->have_load = fscanf(f, "%lf %lf %lf", &out->load[0], &out->load[1],
			                        &out->load[2]) == 3;
			fclose(f);
		}
	}
	return 0;
}

static void virt_host_work(struct hvwork_job *j)
{
	struct virt_host_job *h = j->data;
	struct virt_reader rd = {.c = h->c};
	h->rc = virt_node_read(&rd, h->c, h->test_driver, h->local, h->cpu_model, &h->host);
}

static void virt_host_done(struct hvwork_job *j, int status)
{
	struct virt_host_job *h = j->data;
	if (h->v != NULL) {
		h->v->host_job = NULL;
		if (status == 0 && h->rc == 0) {
			h->v->host = h->host;
			h->v->host_known = true;
		} else if (status == 0 && h->rc == -ENOTCONN && h->v->conn == h->c) {
			/* the daemon went away under the read: as a loop call would */
			virt_lost(h->v, "libvirt connection lost (reading the host's figures)");
		}
		/* any other failure: the figures last read stay */
		virt_opq_kick(h->v);
	}
	virConnectClose(h->c);
	free(h);
}

static void virt_host_refresh_async(struct virt *v)
{
	/* One worker call on the agent's connection at a time: libvirt 9.0
	 * crashed (SIGSEGV in g_main_loop_quit, inside virNetClient's I/O
	 * loop) when two worker threads were blocked on a stopped libvirtd
	 * whose connection the keepalive then closed, at the daemon's
	 * SIGCONT (tests/lab/test_lab_libvirt_stall.py). */
	if (virt_conn_job_busy(v))
		return;
	struct virt_host_job *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return;
	h->c = virt_conn_ref(v);
	if (h->c == NULL) {
		free(h);
		return;
	}
	h->v = v;
	h->test_driver = v->test_driver;
	h->local = v->local;
	snprintf(h->cpu_model, sizeof(h->cpu_model), "%s", v->cpu_model);
	h->j.work = virt_host_work;
	h->j.done = virt_host_done;
	h->j.data = h;
	if (hvwork_submit(v->worker, HVWORK_GENERAL, &h->j) < 0) {
		virConnectClose(h->c);
		free(h);
		return;
	}
	v->host_job = h;
}

int virt_host_info(struct virt *v, struct virt_host *out)
{
	memset(out, 0, sizeof(*out));
	if (!virt_connected(v))
		return -ENOTCONN;
	if (v->worker != NULL && v->host_known) {
		/* the figures last read on the worker, and a fresh read there for
		 * the next call: a slow libvirtd never holds the loop here */
		*out = v->host;
		virt_host_refresh_async(v);
	} else {
		struct virt_reader rd = {.v = v};
		int rc = virt_node_read(&rd, v->conn, v->test_driver, v->local, v->cpu_model, out);
		if (rc < 0)
			return rc;
		v->host = *out;
		v->host_known = true;
	}
	if (v->test_driver) {
		/* The test driver's free-memory figures are constants unrelated to
		 * its VMs; what its VMs take is the only honest measure. */
		uint64_t used = 0;
		for (size_t i = 0; i < v->n_vms; i++)
			if (v->vms[i].state == VIRT_VM_RUNNING || v->vms[i].state == VIRT_VM_PAUSED)
				used += v->vms[i].memory_kib;
		out->free_kib = used < out->memory_kib ? out->memory_kib - used : 0;
		out->free_estimated = true;
	}
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */
/*
 * Every operator call (find, define, start, shutdown, destroy, undefine,
 * the metadata setters) is one primitive, virt_op_exec, that does its
 * libvirt round trips through a struct virt_reader and leaves what it
 * learned in a struct virt_op_out: the result, a fresh read of the VM
 * after the call (or that it is gone), and a log line. virt_op_apply then
 * puts that into the cache and the log, on the loop thread. The
 * synchronous virt_vm_* run both on the loop; virt_vm_op_async runs the
 * primitive on the worker with the job's own connection reference (the
 * reader with no struct virt: nothing shared is touched there) and the
 * apply on the loop when it is done.
 */

/* What a primitive leaves for virt_op_apply. */
struct virt_op_out {
	struct virt_op_result res; /* first: handed to the caller */
	enum { VIRT_AFTER_NONE, VIRT_AFTER_VM, VIRT_AFTER_GONE, VIRT_AFTER_UNREAD } after;
	char uuid[VIRT_UUID_LEN];      /* VIRT_AFTER_GONE */
	char name[VIRT_NAME_MAX];      /* VIRT_AFTER_UNREAD */
	char refresh_err[512];         /* VIRT_AFTER_UNREAD */
	char log[VIRT_NAME_MAX + 700]; /* "" or an INFO line for the loop */
};

/* Resolves a name or UUID to one domain; the caller frees *out. */
static int virt_rd_lookup(const struct virt_reader *rd, const char *key, virDomainPtr *out,
                          char *err, size_t errlen)
{
	*out = NULL;
	if (key == NULL || key[0] == '\0') {
		virt_set_err(err, errlen, "no VM name or UUID given");
		return -EINVAL;
	}
	char what[VIRT_NAME_MAX + 64];
	snprintf(what, sizeof(what), "cannot look up VM %s", key);
	virDomainPtr by_name = virDomainLookupByName(rd->c, key);
	if (by_name == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN)
		return virt_reader_failed(rd, err, errlen, what);
	virDomainPtr by_uuid = virDomainLookupByUUIDString(rd->c, key);
	if (by_uuid == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN &&
	    virGetLastErrorCode() != VIR_ERR_INVALID_ARG) { /* INVALID_ARG: not a UUID */
		int rc = virt_reader_failed(rd, err, errlen, what);
		if (by_name != NULL)
			virDomainFree(by_name);
		return rc;
	}
	if (by_name != NULL && by_uuid != NULL) {
		char u1[VIR_UUID_STRING_BUFLEN] = "", u2[VIR_UUID_STRING_BUFLEN] = "";
		virDomainGetUUIDString(by_name, u1);
		virDomainGetUUIDString(by_uuid, u2);
		if (strcmp(u1, u2) != 0) {
			virt_set_err(
			    err, errlen,
			    "'%s' is ambiguous: it is the name of one VM (UUID %s) and the UUID "
			    "of another (%s); name the VM by its UUID",
			    key, u1, virDomainGetName(by_uuid));
			virDomainFree(by_name);
			virDomainFree(by_uuid);
			return -EEXIST;
		}
		virDomainFree(by_uuid);
		by_uuid = NULL;
	}
	*out = by_name != NULL ? by_name : by_uuid;
	if (*out == NULL) {
		virt_set_err(err, errlen, "no VM named %s on this host", key);
		return -ENOENT;
	}
	return 0;
}

/* virt_rd_lookup, and the VM's name (VIRT_NAME_MAX) and "cannot VERB VM
 * NAME" (VIRT_NAME_MAX + 64) for the messages of what follows. */
static int virt_rd_lookup_what(const struct virt_reader *rd, const char *key, const char *verb,
                               virDomainPtr *d, char *name, char *what, char *err, size_t errlen)
{
	int rc = virt_rd_lookup(rd, key, d, err, errlen);
	if (rc < 0)
		return rc;
	snprintf(name, VIRT_NAME_MAX, "%s", virDomainGetName(*d));
	snprintf(what, VIRT_NAME_MAX + 64, "cannot %s VM %s", verb, name);
	return 0;
}

static int virt_lookup(struct virt *v, const char *key, virDomainPtr *out, char *err, size_t errlen)
{
	*out = NULL;
	if (!virt_connected(v))
		return virt_unreachable(v, err, errlen);
	struct virt_reader rd = {.v = v, .c = v->conn};
	return virt_rd_lookup(&rd, key, out, err, errlen);
}

/* The VM as it is after a call that succeeded (for the cache). */
static void virt_op_reread(const struct virt_reader *rd, virDomainPtr d, struct virt_op_out *o)
{
	const char *n = virDomainGetName(d);
	snprintf(o->name, sizeof(o->name), "%s", n != NULL ? n : "");
	int rc = virt_dom_read(rd, d, &o->res.vm, o->refresh_err, sizeof(o->refresh_err));
	if (rc == 0) {
		o->after = VIRT_AFTER_VM;
		o->res.have_vm = true;
	} else if (rc == -ENOENT) {
		if (virDomainGetUUIDString(d, o->uuid) == 0)
			o->after = VIRT_AFTER_GONE;
	} else {
		o->after = VIRT_AFTER_UNREAD;
	}
}

static int virt_do_find(const struct virt_reader *rd, const char *key, struct virt_op_out *o)
{
	virDomainPtr d;
	int rc = virt_rd_lookup(rd, key, &d, o->res.err, sizeof(o->res.err));
	if (rc == -ENOENT && strlen(key) == VIRT_UUID_LEN - 1) {
		/* asked by UUID and gone (a VM that migrated away): not cached */
		o->after = VIRT_AFTER_GONE;
		snprintf(o->uuid, sizeof(o->uuid), "%s", key);
	}
	if (rc < 0)
		return rc;
	rc = virt_dom_read(rd, d, &o->res.vm, o->res.err, sizeof(o->res.err));
	if (rc == 0) {
		o->after = VIRT_AFTER_VM;
		o->res.have_vm = true;
	} else if (rc == -ENOENT) {
		virt_set_err(o->res.err, sizeof(o->res.err), "no VM named %s on this host", key);
	}
	virDomainFree(d);
	return rc;
}

static int virt_do_define(const struct virt_reader *rd, const char *xml, struct virt_op_out *o)
{
	char *err = o->res.err;
	size_t errlen = sizeof(o->res.err);
	if (xml == NULL || xml[0] == '\0') {
		virt_set_err(err, errlen, "cannot define VM: empty domain XML");
		return -EINVAL;
	}
	/* libvirt silently redefines an existing VM of the same name and UUID;
	 * `vm create` must never overwrite one. Unparseable XML goes on to
	 * libvirt, whose message says where it breaks. */
	xmlDocPtr doc = virt_xml_read(xml);
	if (doc != NULL) {
		char name[VIRT_NAME_MAX], uuid[VIR_UUID_STRING_BUFLEN + 16];
		virt_xpath_string(doc, "string(/domain/name)", name, sizeof(name));
		virt_xpath_string(doc, "string(/domain/uuid)", uuid, sizeof(uuid));
		xmlFreeDoc(doc);
		virDomainPtr d = name[0] ? virDomainLookupByName(rd->c, name) : NULL;
		if (d != NULL) {
			char u[VIR_UUID_STRING_BUFLEN] = "";
			virDomainGetUUIDString(d, u);
			virDomainFree(d);
			virt_set_err(err, errlen,
			             "a VM named %s already exists on this host (UUID %s)", name,
			             u);
			return -EEXIST;
		}
		d = uuid[0] ? virDomainLookupByUUIDString(rd->c, uuid) : NULL;
		if (d != NULL) {
			virt_set_err(err, errlen, "UUID %s is already used by VM %s on this host",
			             uuid, virDomainGetName(d));
			virDomainFree(d);
			return -EEXIST;
		}
	}
	virDomainPtr d = virDomainDefineXML(rd->c, xml);
	if (d == NULL)
		return virt_reader_failed(rd, err, errlen, "cannot define VM");
	struct virt_vm *vm = &o->res.vm;
	int rc = virt_dom_read(rd, d, vm, err, errlen);
	virDomainFree(d);
	if (rc < 0)
		return rc;
	o->after = VIRT_AFTER_VM;
	o->res.have_vm = true;
	snprintf(o->log, sizeof(o->log), "vm defined name=%s uuid=%s vcpus=%u memory_kib=%" PRIu64,
	         vm->name, vm->uuid, vm->vcpus, vm->max_memory_kib);
	return 0;
}

/* NVRAM is kept: it is the guest's firmware state, not ours to delete.
 * Drivers that know fewer flags (the test driver) get the two every
 * driver knows. Any thread (libvirt's error is per thread). */
static int virt_dom_undefine(virDomainPtr d)
{
	int r = virDomainUndefineFlags(
	    d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		   VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_KEEP_NVRAM);
	if (r < 0 && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
		r = virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
		                                  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
	return r;
}

/* The libvirt call of a state change. */
static int virt_do_act_call(virDomainPtr d, enum virt_op_kind kind)
{
	switch (kind) {
	case VIRT_OPK_START:
		return virDomainCreate(d);
	case VIRT_OPK_SHUTDOWN:
		return virDomainShutdown(d);
	case VIRT_OPK_DESTROY:
		return virDomainDestroy(d);
	default:
		return virt_dom_undefine(d);
	}
}

/* The state checks are ours, not left to libvirt: drivers word (and code)
 * them differently, and the operator should read one message. 0 when the
 * call may go ahead. */
static int virt_do_act_check(const struct virt_reader *rd, virDomainPtr d, enum virt_op_kind kind,
                             const char *name, const char *what, char *err, size_t errlen)
{
	int active = virDomainIsActive(d);
	if (active < 0)
		return virt_reader_failed(rd, err, errlen, what);
	bool undefine = kind == VIRT_OPK_UNDEFINE;
	if (active == 1 && (kind == VIRT_OPK_START || undefine)) {
		virDomainInfo info;
		bool paused = virDomainGetInfo(d, &info) == 0 &&
		              virt_state_from_libvirt(info.state) == VIRT_VM_PAUSED;
		/* Undefine: libvirt would turn a running VM transient and drop its
		 * definition, so that it vanishes at its next stop. An operator
		 * saying "undefine" means "remove a stopped VM". */
		if (undefine)
			virt_set_err(err, errlen, "VM %s is %s; destroy or shut it down first",
			             name, paused ? "paused" : "running");
		else
			virt_set_err(err, errlen, "VM %s is already %s", name,
			             paused ? "running (paused)" : "running");
		return undefine ? -EBUSY : -EINVAL;
	}
	if (active == 0 && (kind == VIRT_OPK_SHUTDOWN || kind == VIRT_OPK_DESTROY)) {
		virt_set_err(err, errlen, "VM %s is not running", name);
		return -EINVAL;
	}
	return 0;
}

static const char *_Atomic virt_ha_starts_blocked;

void virt_block_ha_starts(const char *why)
{
	virt_ha_starts_blocked = why;
}

static int virt_do_act(const struct virt_reader *rd, enum virt_op_kind kind, const char *key,
                       bool needs_quorum, struct virt_op_out *o)
{
	static const char *const verb[] = {"start", "shut down", "destroy", "undefine"};
	static const char *const done[] = {"started", "shutting down", "destroyed", "undefined"};
	unsigned i = (unsigned)(kind - VIRT_OPK_START);
	char *err = o->res.err;
	size_t errlen = sizeof(o->res.err);
	virDomainPtr d;
	char name[VIRT_NAME_MAX], what[VIRT_NAME_MAX + 64];
	int rc = virt_rd_lookup_what(rd, key, verb[i], &d, name, what, err, errlen);
	if (rc < 0)
		return rc;
	rc = virt_do_act_check(rd, d, kind, name, what, err, errlen);
	const char *blocked = needs_quorum ? virt_ha_starts_blocked : NULL;
	if (rc == 0 && kind == VIRT_OPK_START && blocked != NULL) {
		virt_set_err(err, errlen, "cannot start VM %s: %s", name, blocked);
		rc = -EAGAIN;
	}
	if (rc == 0 && virt_do_act_call(d, kind) < 0) {
		rc = virt_reader_failed(rd, err, errlen, what);
		char q[600];
		snprintf(o->log, sizeof(o->log), "vm %s refused name=%s error=%s", verb[i], name,
		         mv_log_quote(q, sizeof(q), err));
	} else if (rc == 0) {
		virt_op_reread(rd, d, o);
		snprintf(o->log, sizeof(o->log), "vm %s name=%s", done[i], name);
	}
	virDomainFree(d);
	return rc;
}

/* What virt_do_meta takes from the request; the rest is kept as read. */
static unsigned virt_meta_what(const struct virt_op_req *req)
{
	switch (req->kind) {
	case VIRT_OPK_SET_HA:
		return 1u /* ha and priority */ | (req->group != NULL ? 4u : 0u);
	case VIRT_OPK_SET_EPOCH:
		return 2u;
	default:
		return 8u; /* desired: written only when it differs */
	}
}

/* Rewrites <meshvisor:vm/> with the request's values, in the persistent
 * config and (when active) the live definition. */
static int virt_do_meta(const struct virt_reader *rd, const struct virt_op_req *req,
                        struct virt_op_out *o)
{
	char *err = o->res.err;
	size_t errlen = sizeof(o->res.err);
	unsigned what_set = virt_meta_what(req);
	virDomainPtr d;
	int rc = virt_rd_lookup(rd, req->key, &d, err, errlen);
	if (rc < 0)
		return rc;
	struct virt_vm vm;
	rc = virt_dom_read(rd, d, &vm, err, errlen);
	if (rc < 0 || (what_set == 8u && vm.desired == req->desired)) {
		virDomainFree(d); /* unreadable, or unchanged: nothing to write */
		return rc;
	}
	if (what_set & 1u) {
		vm.ha = req->ha;
		vm.priority = req->priority;
	}
	if (what_set & 2u)
		vm.epoch = req->epoch;
	if (what_set & 4u)
		snprintf(vm.group, sizeof(vm.group), "%s", req->group);
	if (what_set & 8u)
		vm.desired = req->desired;
	char xml[200 + VIRT_GROUP_MAX];
	virt_meta_format(xml, sizeof(xml), &vm, vm.epoch);
	char what[VIRT_NAME_MAX + 64];
	snprintf(what, sizeof(what), "cannot set meshvisor metadata of VM %s", vm.name);
	int active = virDomainIsActive(d);
	unsigned flags = (vm.persistent ? VIR_DOMAIN_AFFECT_CONFIG : 0) |
	                 (active == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
	if (active < 0 || virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml,
	                                       VIRT_META_PREFIX, VIRT_META_NS, flags) < 0) {
		rc = virt_reader_failed(rd, err, errlen, what);
		virDomainFree(d);
		return rc;
	}
	virt_op_reread(rd, d, o);
	virDomainFree(d);
	snprintf(o->log, sizeof(o->log),
	         "vm metadata set name=%s ha=%s priority=%d epoch=%" PRIu64 " group=%s desired=%s",
	         vm.name, vm.ha ? "yes" : "no", vm.priority, vm.epoch, vm.group,
	         virt_desired_name(vm.desired));
	return 0;
}

/* The request's own arguments; 0 or -EINVAL with the reason. */
static int virt_op_check(const struct virt_op_req *req, char *err, size_t errlen)
{
	switch (req->kind) {
	case VIRT_OPK_SET_HA:
		if (req->priority < 0 || req->priority > VIRT_PRIORITY_MAX) {
			virt_set_err(err, errlen, "restart priority must be 0 to %d, got %d",
			             VIRT_PRIORITY_MAX, req->priority);
			return -EINVAL;
		}
		if (req->group != NULL && !virt_group_valid(req->group)) {
			if (strlen(req->group) >= VIRT_GROUP_MAX)
				virt_set_err(err, errlen,
				             "anti-affinity group is longer than %d characters",
				             VIRT_GROUP_MAX - 1);
			else
				virt_set_err(
				    err, errlen,
				    "anti-affinity group '%.*s' may only use letters, digits, "
				    "'.', '_' and '-'",
				    VIRT_GROUP_MAX, req->group);
			return -EINVAL;
		}
		return 0;
	case VIRT_OPK_SET_DESIRED:
		if (req->desired != VIRT_DESIRED_RUNNING && req->desired != VIRT_DESIRED_STOPPED) {
			virt_set_err(err, errlen,
			             "desired state must be running or stopped, got %d",
			             (int)req->desired);
			return -EINVAL;
		}
		return 0;
	case VIRT_OPK_FIND:
	case VIRT_OPK_DEFINE:
	case VIRT_OPK_START:
	case VIRT_OPK_SHUTDOWN:
	case VIRT_OPK_DESTROY:
	case VIRT_OPK_UNDEFINE:
	case VIRT_OPK_SET_EPOCH:
	case VIRT_OPK_EXPORT:
	case VIRT_OPK_JOB_STATS:
	case VIRT_OPK_ABORT_JOB:
		return 0;
	}
	virt_set_err(err, errlen, "unknown VM operation %d", (int)req->kind);
	return -EINVAL;
}

/* The VM's persistent definition for another host (virt_vm_export_xml):
 * inactive, secure, migratable where the driver can. */
static int virt_do_export(const struct virt_reader *rd, const char *key, struct virt_op_out *o)
{
	virDomainPtr d;
	int rc = virt_rd_lookup(rd, key, &d, o->res.err, sizeof(o->res.err));
	if (rc < 0)
		return rc;
	char *x = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE |
	                                     VIR_DOMAIN_XML_MIGRATABLE);
	if (x == NULL && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
		x = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
	if (x == NULL) {
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot read the definition of VM %s", key);
		rc = virt_reader_failed(rd, o->res.err, sizeof(o->res.err), what);
	}
	virDomainFree(d);
	o->res.xml = x;
	return rc;
}

static int virt_do_job_stats(const struct virt_reader *rd, const char *key, struct virt_op_out *o)
{
	virDomainPtr d;
	int rc = virt_rd_lookup(rd, key, &d, o->res.err, sizeof(o->res.err));
	if (rc < 0)
		return rc;
	rc = virt_dom_job_stats(rd->c, d, false, &o->res.job, o->res.err, sizeof(o->res.err));
	virDomainFree(d);
	return rc;
}

static int virt_do_abort(const struct virt_reader *rd, const char *key, struct virt_op_out *o)
{
	char *err = o->res.err;
	size_t errlen = sizeof(o->res.err);
	virDomainPtr d;
	char name[VIRT_NAME_MAX], what[VIRT_NAME_MAX + 64];
	int rc = virt_rd_lookup_what(rd, key, "abort the job of", &d, name, what, err, errlen);
	if (rc < 0)
		return rc;
	/* Ours, not the driver's wording: "no job" reads the same everywhere. */
	virDomainJobInfo info;
	if (virDomainGetJobInfo(d, &info) == 0 && info.type == VIR_DOMAIN_JOB_NONE) {
		virt_set_err(err, errlen, "VM %s has no job running (no migration to abort)", name);
		virDomainFree(d);
		return -EINVAL;
	}
	if (virDomainAbortJob(d) < 0) {
		rc = virt_reader_failed(rd, err, errlen, what);
		if (rc == -EINVAL && virGetLastErrorCode() == VIR_ERR_OPERATION_INVALID)
			virt_set_err(err, errlen,
			             "VM %s has no job running (no migration to abort)", name);
	} else {
		snprintf(o->log, sizeof(o->log), "job aborted vm=%s", name);
	}
	virDomainFree(d);
	return rc;
}

/* The primitive: the request's libvirt round trips through rd (any
 * thread when rd has no struct virt). */
static int virt_op_exec(const struct virt_reader *rd, const struct virt_op_req *req,
                        struct virt_op_out *o)
{
	virt_test_slow_op();
	int rc;
	switch (req->kind) {
	case VIRT_OPK_FIND:
		rc = virt_do_find(rd, req->key, o);
		break;
	case VIRT_OPK_DEFINE:
		rc = virt_do_define(rd, req->xml, o);
		break;
	case VIRT_OPK_START:
	case VIRT_OPK_SHUTDOWN:
	case VIRT_OPK_DESTROY:
	case VIRT_OPK_UNDEFINE:
		rc = virt_do_act(rd, req->kind, req->key, req->needs_quorum, o);
		break;
	case VIRT_OPK_EXPORT:
		rc = virt_do_export(rd, req->key, o);
		break;
	case VIRT_OPK_JOB_STATS:
		rc = virt_do_job_stats(rd, req->key, o);
		break;
	case VIRT_OPK_ABORT_JOB:
		rc = virt_do_abort(rd, req->key, o);
		break;
	default:
		rc = virt_do_meta(rd, req, o);
		break;
	}
	o->res.rc = rc;
	return rc;
}

/* On the loop: the primitive's findings into the cache and the log; a
 * connection that died under the call (c, the one it used) is LOST. */
static void virt_op_apply(struct virt *v, virConnectPtr c, struct virt_op_out *o)
{
	/* a result read on a connection that was lost and replaced meanwhile
	 * may be older than the new connection's listing: the cache keeps the
	 * listing (the next reconcile settles it), never the stale read */
	int after = c != NULL && c != v->conn ? VIRT_AFTER_NONE : o->after;
	switch (after) {
	case VIRT_AFTER_VM:
		if (virt_cache_upsert(v, &o->res.vm) < 0)
			MV_ERROR("virt", "out of memory caching VM name=%s", o->res.vm.name);
		break;
	case VIRT_AFTER_GONE:
		virt_cache_remove(v, o->uuid);
		break;
	case VIRT_AFTER_UNREAD: {
		char q[600];
		MV_WARN("virt", "cannot refresh VM name=%s error=%s", o->name,
		        mv_log_quote(q, sizeof(q), o->refresh_err));
		break;
	}
	case VIRT_AFTER_NONE:
		break;
	}
	if (o->log[0] != '\0')
		MV_INFO("virt", "%s", o->log);
	if (o->res.rc == -ENOTCONN && c != NULL && c == v->conn) {
		char why[600];
		snprintf(why, sizeof(why), "libvirt connection lost: %s", o->res.err);
		virt_lost(v, why); /* nothing when the loop knew already */
	}
}

/* A request on the loop, synchronously: 0 or -errno with err filled. */
static int virt_op_run(struct virt *v, const struct virt_op_req *req, struct virt_op_out *o,
                       char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	int rc = virt_op_check(req, o->res.err, sizeof(o->res.err));
	if (rc == 0 && !virt_connected(v))
		rc = virt_unreachable(v, o->res.err, sizeof(o->res.err));
	if (rc == 0) {
		struct virt_reader rd = {.v = v, .c = v->conn};
		rc = virt_op_exec(&rd, req, o);
		virt_op_apply(v, rd.c, o);
	}
	if (rc < 0)
		virt_set_err(err, errlen, "%s", o->res.err);
	return rc;
}

int virt_vm_find(struct virt *v, const char *name_or_uuid, struct virt_vm *out, char *err,
                 size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_FIND, .key = name_or_uuid};
	int rc = virt_op_run(v, &req, &o, err, errlen);
	if (rc == 0 && out != NULL)
		*out = o.res.vm;
	return rc;
}

int virt_vm_cached(struct virt *v, const char *name_or_uuid, struct virt_vm *out, char *err,
                   size_t errlen)
{
	if (!virt_connected(v))
		return virt_unreachable(v, err, errlen);
	const char *key = name_or_uuid;
	if (key == NULL || key[0] == '\0') {
		virt_set_err(err, errlen, "no VM name or UUID given");
		return -EINVAL;
	}
	const struct virt_vm *by_name = NULL, *by_uuid = NULL;
	for (size_t i = 0; i < v->n_vms; i++) {
		if (strcmp(v->vms[i].name, key) == 0)
			by_name = &v->vms[i];
		if (strcasecmp(v->vms[i].uuid, key) == 0)
			by_uuid = &v->vms[i];
	}
	if (by_name != NULL && by_uuid != NULL && by_name != by_uuid) {
		virt_set_err(err, errlen,
		             "'%s' is ambiguous: it is the name of one VM (UUID %s) and the UUID "
		             "of another (%s); name the VM by its UUID",
		             key, by_name->uuid, by_uuid->name);
		return -EEXIST;
	}
	const struct virt_vm *vm = by_name != NULL ? by_name : by_uuid;
	if (vm == NULL) {
		virt_set_err(err, errlen, "no VM named %s on this host", key);
		return -ENOENT;
	}
	if (out != NULL)
		*out = *vm;
	return 0;
}

int virt_vm_define(struct virt *v, const char *xml, struct virt_vm *out, char *err, size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_DEFINE, .xml = xml};
	int rc = virt_op_run(v, &req, &o, err, errlen);
	if (rc == 0 && out != NULL)
		*out = o.res.vm;
	return rc;
}

static int virt_op_key(struct virt *v, enum virt_op_kind kind, const char *key, char *err,
                       size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = kind, .key = key};
	return virt_op_run(v, &req, &o, err, errlen);
}

int virt_vm_start(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op_key(v, VIRT_OPK_START, name_or_uuid, err, errlen);
}

int virt_vm_shutdown(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op_key(v, VIRT_OPK_SHUTDOWN, name_or_uuid, err, errlen);
}

int virt_vm_destroy(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op_key(v, VIRT_OPK_DESTROY, name_or_uuid, err, errlen);
}

int virt_vm_undefine(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op_key(v, VIRT_OPK_UNDEFINE, name_or_uuid, err, errlen);
}

int virt_vm_set_ha(struct virt *v, const char *name_or_uuid, bool on, int priority, char *err,
                   size_t errlen)
{
	return virt_vm_set_ha_group(v, name_or_uuid, on, priority, NULL, err, errlen);
}

int virt_vm_set_ha_group(struct virt *v, const char *name_or_uuid, bool on, int priority,
                         const char *group, char *err, size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_SET_HA,
	                          .key = name_or_uuid,
	                          .ha = on,
	                          .priority = priority,
	                          .group = group};
	return virt_op_run(v, &req, &o, err, errlen);
}

int virt_vm_set_epoch(struct virt *v, const char *name_or_uuid, uint64_t epoch, char *err,
                      size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_SET_EPOCH, .key = name_or_uuid, .epoch = epoch};
	return virt_op_run(v, &req, &o, err, errlen);
}

int virt_vm_set_desired(struct virt *v, const char *name_or_uuid, enum virt_desired d, char *err,
                        size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_SET_DESIRED, .key = name_or_uuid, .desired = d};
	return virt_op_run(v, &req, &o, err, errlen);
}

/* ---- operator jobs on the worker ---------------------------------------- */
/*
 * One in flight per struct virt (v->op_job, counted by virt_conn_job_busy:
 * see virt_host_refresh_async), the rest queued in order (v->opq, at most
 * VIRT_OPQ_MAX from virt_vm_op_async; virt_vm_op_next goes to the front,
 * so a job's next step runs before anyone else's). The queue moves on when
 * the job in flight is done and whenever another worker call on the
 * connection ends (virt_opq_kick).
 */
struct virt_op_job {
	struct hvwork_job j;
	struct virt_op_job *next;
	struct virt *v; /* set while in flight; NULL once virt_free ran */
	virConnectPtr c;
	struct virt_op_req req; /* key, xml and group are the job's copies */
	bool cont;              /* a command's next step: virt_vm_op_next from a done callback */
	struct virt_op_job *solo_next; /* v->solo: virt_vm_abort_job_async */
	struct virt_op_out out;
	virt_op_result_fn done;
	void *ud;
};

static void virt_opjob_free(struct virt_op_job *q)
{
	if (q->c != NULL)
		virConnectClose(q->c);
	free(q->out.res.xml);
	free((char *)q->req.key);
	free((char *)q->req.xml);
	free((char *)q->req.group);
	free(q);
}

static char *virt_strdup_opt(const char *s, bool *fail)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*fail = true;
	return d;
}

static struct virt_op_job *virt_opjob_new(const struct virt_op_req *req, virt_op_result_fn done,
                                          void *ud)
{
	struct virt_op_job *q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	bool fail = false;
	q->req = *req;
	q->req.key = virt_strdup_opt(req->key, &fail);
	q->req.xml = virt_strdup_opt(req->xml, &fail);
	q->req.group = virt_strdup_opt(req->group, &fail);
	q->done = done;
	q->ud = ud;
	if (fail) {
		virt_opjob_free(q);
		return NULL;
	}
	return q;
}

static void virt_opjob_work(struct hvwork_job *j)
{
	struct virt_op_job *q = j->data;
	struct virt_reader rd = {.c = q->c};
	virt_op_exec(&rd, &q->req, &q->out);
}

/* Hands q's result to its caller (v NULL once virt_free ran) and frees it. */
static void virt_opjob_deliver(struct virt *v, struct virt_op_job *q, int status)
{
	if (v != NULL)
		v->op_delivering++;
	q->done(v, status, &q->out.res, q->ud);
	if (v != NULL)
		v->op_delivering--;
	virt_opjob_free(q);
}

static void virt_opq_kick(struct virt *v);

static void virt_opjob_done(struct hvwork_job *j, int status)
{
	struct virt_op_job *q = j->data;
	struct virt *v = q->v;
	if (v == NULL) {
		virt_opjob_deliver(NULL, q, -ECANCELED);
		return;
	}
	if (status == 0)
		virt_op_apply(v, q->c, &q->out);
	/* still in flight while its caller hears of it: what the caller asks
	 * for now queues behind (or, virt_vm_op_next, in front) */
	virt_opjob_deliver(v, q, status);
	v->op_job = NULL;
	virt_opq_kick(v);
}

/* The reason a job could not be handed to the worker, in err. */
static int virt_opjob_refused(const struct virt *v, int rc, char *err, size_t errlen)
{
	if (rc == -ENOTCONN)
		return virt_unreachable(v, err, errlen);
	if (rc == -EAGAIN)
		virt_set_err(err, errlen,
		             "busy: the hypervisor worker's queue is full; try again shortly");
	else if (rc == -ESHUTDOWN)
		virt_set_err(err, errlen, "the agent is stopping");
	else
		virt_set_err(err, errlen, "cannot queue the libvirt call: %s", strerror(-rc));
	return rc;
}

/* Starts q on the worker's general lane: 0 (v->op_job is q), or -errno
 * with nothing started. */
static int virt_opjob_start(struct virt *v, struct virt_op_job *q)
{
	if (!virt_connected(v))
		return -ENOTCONN;
	int rc =
	    virt_conn_submit(v, HVWORK_GENERAL, &q->j, virt_opjob_work, virt_opjob_done, q, &q->c);
	if (rc < 0)
		return rc;
	q->v = v;
	v->op_job = q;
	return 0;
}

/* Whether a new operator command must wait for a critical start's retry
 * (a command's next step, queued from its previous step's done callback,
 * never waits: it holds the command's turn; a first step queued in front
 * from elsewhere, such as a move's, does wait, or parallel moves could
 * keep the connection from a crash restart). */
static bool virt_opq_yielding(const struct virt *v)
{
	return v->opq != NULL && !v->opq->cont && virt_conn_yielding(v);
}

/* Starts the first queued job when the connection has no worker call in
 * flight; one that cannot start is answered at once (the agent stopping:
 * status -ECANCELED) and the next tried. */
static void virt_opq_kick(struct virt *v)
{
	virt_evq_kick(v); /* the events' read first */
	while (v->opq != NULL && !virt_conn_job_busy(v) && !virt_opq_yielding(v)) {
		struct virt_op_job *q = v->opq;
		v->opq = q->next;
		v->opq_n--;
		q->next = NULL;
		int rc = virt_opjob_start(v, q);
		if (rc == 0)
			return;
		q->out.res.rc = virt_opjob_refused(v, rc, q->out.res.err, sizeof(q->out.res.err));
		virt_opjob_deliver(v, q, rc == -ESHUTDOWN ? -ECANCELED : 0);
	}
}

/* A job for the request, or NULL with err and *rc set. */
static struct virt_op_job *virt_opjob_make(struct virt *v, const struct virt_op_req *req,
                                           virt_op_result_fn done, void *ud, int *rc, char *err,
                                           size_t errlen)
{
	if (v->worker == NULL) {
		virt_set_err(err, errlen, "no hypervisor worker");
		*rc = -ENOTSUP;
		return NULL;
	}
	if ((*rc = virt_op_check(req, err, errlen)) < 0)
		return NULL;
	struct virt_op_job *q = virt_opjob_new(req, done, ud);
	if (q == NULL) {
		virt_set_err(err, errlen, "out of memory");
		*rc = -ENOMEM;
	}
	return q;
}

int virt_vm_op_async(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done,
                     void *ud, char *err, size_t errlen)
{
	if (v->opq_n >= VIRT_OPQ_MAX) {
		virt_set_err(err, errlen,
		             "busy: %u libvirt calls are already queued on this host; try again "
		             "shortly",
		             (unsigned)v->opq_n);
		return -EAGAIN;
	}
	int rc;
	struct virt_op_job *q = virt_opjob_make(v, req, done, ud, &rc, err, errlen);
	if (q == NULL)
		return rc;
	if (v->opq == NULL && !virt_conn_job_busy(v) && !virt_opq_yielding(v)) {
		rc = virt_opjob_start(v, q);
		if (rc < 0) {
			virt_opjob_free(q);
			return virt_opjob_refused(v, rc, err, errlen);
		}
		return 0;
	}
	struct virt_op_job **t = &v->opq;
	while (*t != NULL)
		t = &(*t)->next;
	*t = q;
	v->opq_n++;
	return 0;
}

int virt_vm_op_next(struct virt *v, const struct virt_op_req *req, virt_op_result_fn done, void *ud,
                    char *err, size_t errlen)
{
	int rc;
	struct virt_op_job *q = virt_opjob_make(v, req, done, ud, &rc, err, errlen);
	if (q == NULL)
		return rc;
	q->cont = v->op_delivering > 0; /* from a done callback: the command's turn */
	q->next = v->opq;
	v->opq = q;
	v->opq_n++;
	if (v->op_delivering == 0)
		virt_opq_kick(v);
	return 0;
}

/* An abort outside the queue is back: unlinked from v->solo, answered. */
static void virt_solo_done(struct hvwork_job *j, int status)
{
	struct virt_op_job *q = j->data;
	struct virt *v = q->v;
	if (v == NULL) {
		virt_opjob_deliver(NULL, q, -ECANCELED);
		return;
	}
	for (struct virt_op_job **p = &v->solo; *p != NULL; p = &(*p)->solo_next)
		if (*p == q) {
			*p = q->solo_next;
			break;
		}
	if (status == 0)
		virt_op_apply(v, q->c, &q->out);
	virt_opjob_deliver(v, q, status);
	virt_opq_kick(v); /* a step its caller queued meanwhile (virt_vm_op_next) */
}

int virt_vm_abort_job_async(struct virt *v, const char *key, enum hvwork_lane lane,
                            virt_op_result_fn done, void *ud, char *err, size_t errlen)
{
	int rc;
	struct virt_op_req req = {.kind = VIRT_OPK_ABORT_JOB, .key = key};
	struct virt_op_job *q = virt_opjob_make(v, &req, done, ud, &rc, err, errlen);
	if (q == NULL)
		return rc;
	q->j.what = "vm-abort-job";
	rc = virt_connected(v)
	         ? virt_conn_submit(v, lane, &q->j, virt_opjob_work, virt_solo_done, q, &q->c)
	         : -ENOTCONN;
	if (rc < 0) {
		virt_opjob_free(q);
		return virt_opjob_refused(v, rc, err, errlen);
	}
	q->v = v;
	q->solo_next = v->solo;
	v->solo = q;
	return 0;
}

size_t virt_vm_op_queued(const struct virt *v)
{
	return v->opq_n + (v->op_job != NULL ? 1u : 0u);
}

/* virt_free: the queued jobs are answered (-ECANCELED, v NULL), the one in
 * flight is when it comes back. */
static void virt_opq_cancel(struct virt *v)
{
	for (struct virt_op_job *q = v->solo; q != NULL; q = q->solo_next)
		q->v = NULL; /* answered when it comes back */
	v->solo = NULL;
	if (v->op_job != NULL)
		v->op_job->v = NULL;
	v->op_job = NULL;
	while (v->opq != NULL) {
		struct virt_op_job *q = v->opq;
		v->opq = q->next;
		v->opq_n--;
		q->out.res.rc = -ECANCELED;
		virt_set_err(q->out.res.err, sizeof(q->out.res.err), "the agent is stopping");
		virt_opjob_deliver(NULL, q, -ECANCELED);
	}
}

/* ---- migration: worker-safe helpers ------------------------------------ */
/*
 * Everything from here to "loop-thread calls" may run on a worker thread:
 * it works on a virConnectPtr the caller holds a reference to, never on
 * the struct virt's cache, health or timers, and never marks the struct's
 * connection lost (libvirt's errors are per thread, so reading them here
 * is safe).
 */

/* A reference on v's current connection, or NULL when there is none. */
static virConnectPtr virt_conn_ref(struct virt *v)
{
	virConnectPtr c = NULL;
	pthread_mutex_lock(&v->conn_lock);
	if (v->conn != NULL && !v->conn_dead && virConnectRef(v->conn) == 0)
		c = v->conn;
	pthread_mutex_unlock(&v->conn_lock);
	return c;
}

static uint64_t virt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* virt_failed for a bare connection: no LOST marking, no shared state. */
static int virt_conn_failed(virConnectPtr c, char *err, size_t errlen, const char *what)
{
	virErrorPtr e = virGetLastError();
	int code = e != NULL ? e->code : VIR_ERR_INTERNAL_ERROR;
	virt_set_err(err, errlen, "%s: %s", what, virt_last_message());
	if (code == VIR_ERR_OPERATION_ABORTED)
		return -ECANCELED;
	if (c != NULL && virConnectIsAlive(c) == 0)
		return -ENOTCONN;
	return virt_code_errno(code);
}

/* virt_lookup on a bare connection (by name, else by UUID). */
static int virt_conn_lookup(virConnectPtr c, const char *key, virDomainPtr *out, char *err,
                            size_t errlen)
{
	*out = NULL;
	if (key == NULL || key[0] == '\0') {
		virt_set_err(err, errlen, "no VM name or UUID given");
		return -EINVAL;
	}
	char what[VIRT_NAME_MAX + 64];
	snprintf(what, sizeof(what), "cannot look up VM %s", key);
	virDomainPtr d = virDomainLookupByName(c, key);
	if (d == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN)
		return virt_conn_failed(c, err, errlen, what);
	if (d == NULL) {
		d = virDomainLookupByUUIDString(c, key);
		if (d == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN &&
		    virGetLastErrorCode() != VIR_ERR_INVALID_ARG)
			return virt_conn_failed(c, err, errlen, what);
	}
	if (d == NULL) {
		virt_set_err(err, errlen, "no VM named %s on this host", key);
		return -ENOENT;
	}
	*out = d;
	return 0;
}

static enum virt_job_state virt_job_state_from(int type)
{
	switch (type) {
	case VIR_DOMAIN_JOB_BOUNDED:
	case VIR_DOMAIN_JOB_UNBOUNDED:
		return VIRT_JOB_RUNNING;
	case VIR_DOMAIN_JOB_COMPLETED:
		return VIRT_JOB_COMPLETED;
	case VIR_DOMAIN_JOB_FAILED:
		return VIRT_JOB_FAILED;
	case VIR_DOMAIN_JOB_CANCELLED:
		return VIRT_JOB_CANCELLED;
	default:
		return VIRT_JOB_NONE;
	}
}

static int virt_dom_job_stats(virConnectPtr c, virDomainPtr d, bool completed,
                              struct virt_job_stats *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	int type = VIR_DOMAIN_JOB_NONE;
	virTypedParameterPtr prm = NULL;
	int n = 0;
	unsigned flags =
	    completed ? VIR_DOMAIN_JOB_STATS_COMPLETED | VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED : 0;
	if (virDomainGetJobStats(d, &type, &prm, &n, flags) < 0)
		return virt_conn_failed(c, err, errlen, "cannot read job statistics");
	out->state = virt_job_state_from(type);
	unsigned long long u;
	int op;
	if (virTypedParamsGetInt(prm, n, VIR_DOMAIN_JOB_OPERATION, &op) == 1)
		out->migration = op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT ||
		                 op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN;
	static const struct {
		const char *field;
		size_t off;
	} map[] = {
	    {VIR_DOMAIN_JOB_TIME_ELAPSED, offsetof(struct virt_job_stats, elapsed_ms)},
	    {VIR_DOMAIN_JOB_DATA_TOTAL, offsetof(struct virt_job_stats, data_total)},
	    {VIR_DOMAIN_JOB_DATA_PROCESSED, offsetof(struct virt_job_stats, data_processed)},
	    {VIR_DOMAIN_JOB_DATA_REMAINING, offsetof(struct virt_job_stats, data_remaining)},
	    {VIR_DOMAIN_JOB_MEMORY_TOTAL, offsetof(struct virt_job_stats, memory_total)},
	    {VIR_DOMAIN_JOB_MEMORY_PROCESSED, offsetof(struct virt_job_stats, memory_processed)},
	    {VIR_DOMAIN_JOB_MEMORY_REMAINING, offsetof(struct virt_job_stats, memory_remaining)},
	    {VIR_DOMAIN_JOB_MEMORY_BPS, offsetof(struct virt_job_stats, memory_bps)},
	    {VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, offsetof(struct virt_job_stats, dirty_rate)},
	    {VIR_DOMAIN_JOB_MEMORY_ITERATION, offsetof(struct virt_job_stats, iteration)},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (virTypedParamsGetULLong(prm, n, map[i].field, &u) == 1)
			*(uint64_t *)(void *)((char *)out + map[i].off) = u;
	/* While a migration runs libvirt reports the expected downtime; only a
	 * finished job's figure is the guest's real one. */
	if (out->state != VIRT_JOB_RUNNING &&
	    virTypedParamsGetULLong(prm, n, VIR_DOMAIN_JOB_DOWNTIME, &u) == 1) {
		out->have_downtime = true;
		out->downtime_ms = u;
	}
	virTypedParamsFree(prm, n);
	return 0;
}

/* ---- migration ---------------------------------------------------------- */

int virt_migrate_build(const struct virt_migrate_params *p, void **params, int *nparams,
                       unsigned *flags, char *err, size_t errlen)
{
	*params = NULL;
	*nparams = 0;
	*flags = 0;
	if (p == NULL || p->dest_uri == NULL || p->dest_uri[0] == '\0') {
		virt_set_err(err, errlen, "migration needs the target's libvirt URI");
		return -EINVAL;
	}
	if (strstr(p->dest_uri, "://") == NULL) {
		virt_set_err(err, errlen, "target libvirt URI '%s' is not a URI", p->dest_uri);
		return -EINVAL;
	}
	if (p->migrate_uri != NULL && p->migrate_uri[0] != '\0' &&
	    (strncmp(p->migrate_uri, "tcp://", 6) != 0 || p->migrate_uri[6] == '\0' ||
	     p->migrate_uri[6] == ':' || p->migrate_uri[6] == '/')) {
		virt_set_err(err, errlen, "migration URI '%s' must be tcp://HOST[:PORT]",
		             p->migrate_uri);
		return -EINVAL;
	}
	if (p->bandwidth_mib_s > (uint64_t)1 << 20) {
		virt_set_err(err, errlen, "migration bandwidth %" PRIu64 " MiB/s is out of range",
		             p->bandwidth_mib_s);
		return -EINVAL;
	}
	if (p->max_downtime_ms > 3600000u) {
		virt_set_err(err, errlen, "maximum downtime %" PRIu64 " ms is out of range",
		             p->max_downtime_ms);
		return -EINVAL;
	}
	virTypedParameterPtr prm = NULL;
	int n = 0, max = 0;
	int r = 0;
	if (p->migrate_uri != NULL && p->migrate_uri[0] != '\0')
		r = virTypedParamsAddString(&prm, &n, &max, VIR_MIGRATE_PARAM_URI, p->migrate_uri);
	if (r == 0 && p->bandwidth_mib_s > 0)
		r = virTypedParamsAddULLong(&prm, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
		                            p->bandwidth_mib_s);
	if (r < 0) {
		virTypedParamsFree(prm, n);
		virt_set_err(err, errlen, "cannot build migration parameters: %s",
		             virt_last_message());
		return -ENOMEM;
	}
	*params = prm;
	*nparams = n;
	*flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
	         VIR_MIGRATE_UNDEFINE_SOURCE | VIR_MIGRATE_AUTO_CONVERGE |
	         (p->tls ? VIR_MIGRATE_TLS : 0);
	return 0;
}

void virt_migrate_params_free(void *params, int nparams)
{
	virTypedParamsFree(params, nparams);
}

/* After success: the completed job's statistics, kept by the target
 * (libvirt hands the source's figures, downtime included, to the target's
 * domain; the source's domain is gone with UNDEFINE_SOURCE). */
static void virt_migrate_read_stats(const struct virt_migrate_params *p,
                                    struct virt_migrate_result *out)
{
	const char *uri = p->query_uri != NULL && p->query_uri[0] ? p->query_uri : p->dest_uri;
	virConnectPtr dc = virConnectOpen(uri);
	if (dc == NULL) {
		virt_set_err(out->stats_error, sizeof(out->stats_error), "cannot connect to %s: %s",
		             uri, virt_last_message());
		return;
	}
	virDomainPtr dd = virDomainLookupByUUIDString(dc, out->uuid);
	if (dd == NULL) {
		virt_set_err(out->stats_error, sizeof(out->stats_error),
		             "VM %s not found on the target: %s", out->uuid, virt_last_message());
	} else {
		if (virt_dom_job_stats(dc, dd, true, &out->stats, out->stats_error,
		                       sizeof(out->stats_error)) == 0)
			out->have_stats = true;
		virDomainFree(dd);
	}
	virConnectClose(dc);
}

int virt_vm_migrate(struct virt *v, const char *name_or_uuid, const struct virt_migrate_params *p,
                    struct virt_migrate_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	void *prm;
	int n;
	unsigned flags;
	int rc = virt_migrate_build(p, &prm, &n, &flags, err, errlen);
	if (rc < 0)
		return rc;
	/* The migration gets a connection of its own: on the shared one, every
	 * call the agent's loop makes (lookups, job stats, abort) queued behind
	 * this call for the whole migration and stalled the agent, membership
	 * included. v->uri is written only by virt_new/virt_free: safe to read. */
	virConnectPtr c = virConnectOpen(v->uri);
	if (c == NULL) {
		virt_migrate_params_free(prm, n);
		const char *msg = virGetLastErrorMessage();
		virt_set_err(err, errlen, "libvirt is not reachable at %s: %s", v->uri,
		             msg ? msg : "unknown error");
		return -ENOTCONN;
	}
	virDomainPtr d = NULL;
	rc = virt_conn_lookup(c, name_or_uuid, &d, err, errlen);
	if (rc < 0)
		goto out;
	snprintf(out->name, sizeof(out->name), "%s", virDomainGetName(d));
	if (virDomainGetUUIDString(d, out->uuid) < 0) {
		rc = virt_conn_failed(c, err, errlen, "cannot read the VM's UUID");
		goto out;
	}
	int active = virDomainIsActive(d);
	if (active != 1) {
		if (active < 0)
			rc = virt_conn_failed(c, err, errlen, "cannot read the VM's state");
		else {
			virt_set_err(err, errlen,
			             "VM %s is not running; live migration needs a running VM",
			             out->name);
			rc = -EINVAL;
		}
		goto out;
	}
	if (p->max_downtime_ms > 0 &&
	    virDomainMigrateSetMaxDowntime(d, p->max_downtime_ms, 0) < 0) {
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot set the maximum downtime of VM %s", out->name);
		rc = virt_conn_failed(c, err, errlen, what);
		goto out;
	}
	MV_INFO("virt",
	        "migration start vm=%s uuid=%s dest=%s bandwidth_mib_s=%" PRIu64
	        " max_downtime_ms=%" PRIu64 " tls=%s",
	        out->name, out->uuid, p->dest_uri, p->bandwidth_mib_s, p->max_downtime_ms,
	        p->tls ? "yes" : "no");
	uint64_t t0 = virt_now_ms();
	int r = virDomainMigrateToURI3(d, p->dest_uri, prm, (unsigned)n, flags);
	out->elapsed_ms = virt_now_ms() - t0;
	if (r < 0) {
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "migration of VM %s failed", out->name);
		rc = virt_conn_failed(c, err, errlen, what);
		char q[600];
		MV_WARN("virt", "migration failed vm=%s elapsed_ms=%" PRIu64 " error=%s", out->name,
		        out->elapsed_ms, mv_log_quote(q, sizeof(q), err != NULL ? err : ""));
		goto out;
	}
	virt_migrate_read_stats(p, out);
	MV_INFO("virt", "migration done vm=%s elapsed_ms=%" PRIu64 " downtime_ms=%" PRIu64,
	        out->name, out->elapsed_ms, out->stats.downtime_ms);
	rc = 0;
out:
	if (d != NULL)
		virDomainFree(d);
	virConnectClose(c);
	virt_migrate_params_free(prm, n);
	return rc;
}

/* ---- where is it? ------------------------------------------------------- */

const char *virt_location_name(enum virt_location l)
{
	switch (l) {
	case VIRT_LOC_SOURCE:
		return "source";
	case VIRT_LOC_DEST:
		return "dest";
	case VIRT_LOC_BOTH_ACTIVE:
		return "both-active";
	case VIRT_LOC_DEFINED_BOTH:
		return "defined-both";
	case VIRT_LOC_STOPPED_SOURCE:
		return "stopped-source";
	case VIRT_LOC_STOPPED_DEST:
		return "stopped-dest";
	case VIRT_LOC_NEITHER:
		return "neither";
	default:
		return "unknown";
	}
}

const char *virt_presence_name(enum virt_presence p)
{
	switch (p) {
	case VIRT_PRESENCE_ABSENT:
		return "absent";
	case VIRT_PRESENCE_DEFINED:
		return "defined";
	case VIRT_PRESENCE_ACTIVE:
		return "active";
	default:
		return "unknown";
	}
}

/* One side: presence, state, persistence, UUID. Never fails: a side that
 * cannot be asked is UNKNOWN with the reason in why. */
static enum virt_presence virt_probe(virConnectPtr c, const char *key, enum virt_vm_state *state,
                                     bool *persistent, char *uuid, char *why, size_t whylen)
{
	virDomainPtr d;
	int rc = virt_conn_lookup(c, key, &d, why, whylen);
	if (rc == -ENOENT) {
		why[0] = '\0';
		return VIRT_PRESENCE_ABSENT;
	}
	if (rc < 0)
		return VIRT_PRESENCE_UNKNOWN;
	enum virt_presence pr = VIRT_PRESENCE_UNKNOWN;
	virDomainInfo info;
	int active = virDomainIsActive(d);
	int pers = virDomainIsPersistent(d);
	if (active < 0 || pers < 0 || virDomainGetInfo(d, &info) < 0) {
		if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
			why[0] = '\0';
			pr = VIRT_PRESENCE_ABSENT; /* vanished meanwhile */
		} else {
			virt_conn_failed(c, why, whylen, "cannot read VM state");
		}
	} else {
		pr = active == 1 ? VIRT_PRESENCE_ACTIVE : VIRT_PRESENCE_DEFINED;
		*state = virt_state_from_libvirt(info.state);
		*persistent = pers == 1;
		if (uuid[0] == '\0')
			virDomainGetUUIDString(d, uuid);
	}
	virDomainFree(d);
	return pr;
}

static enum virt_location virt_locate(enum virt_presence s, enum virt_presence d)
{
	if (s == VIRT_PRESENCE_ACTIVE && d == VIRT_PRESENCE_ACTIVE)
		return VIRT_LOC_BOTH_ACTIVE;
	if (s == VIRT_PRESENCE_UNKNOWN || d == VIRT_PRESENCE_UNKNOWN)
		return VIRT_LOC_UNKNOWN; /* the side we could not ask may run it */
	if (s == VIRT_PRESENCE_ACTIVE)
		return VIRT_LOC_SOURCE;
	if (d == VIRT_PRESENCE_ACTIVE)
		return VIRT_LOC_DEST;
	if (s == VIRT_PRESENCE_DEFINED && d == VIRT_PRESENCE_DEFINED)
		return VIRT_LOC_DEFINED_BOTH;
	if (s == VIRT_PRESENCE_DEFINED)
		return VIRT_LOC_STOPPED_SOURCE;
	if (d == VIRT_PRESENCE_DEFINED)
		return VIRT_LOC_STOPPED_DEST;
	return VIRT_LOC_NEITHER;
}

int virt_vm_where(struct virt *v, const char *name_or_uuid, const char *dest_uri,
                  struct virt_where *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (name_or_uuid == NULL || name_or_uuid[0] == '\0' || dest_uri == NULL ||
	    dest_uri[0] == '\0') {
		virt_set_err(err, errlen, "where: need a VM name or UUID and the target's URI");
		return -EINVAL;
	}
	virConnectPtr c = virt_conn_ref(v);
	if (c == NULL) {
		virt_set_err(out->source_error, sizeof(out->source_error),
		             "libvirt is not reachable at %s", v->uri);
		out->source = VIRT_PRESENCE_UNKNOWN;
	} else {
		out->source = virt_probe(c, name_or_uuid, &out->source_state, &(bool){false},
		                         out->uuid, out->source_error, sizeof(out->source_error));
		virConnectClose(c);
	}
	/* On the target, the UUID (when the source told us) is the safe key. */
	const char *key = out->uuid[0] ? out->uuid : name_or_uuid;
	virConnectPtr dc = virConnectOpen(dest_uri);
	if (dc == NULL) {
		virt_set_err(out->dest_error, sizeof(out->dest_error), "cannot connect to %s: %s",
		             dest_uri, virt_last_message());
		out->dest = VIRT_PRESENCE_UNKNOWN;
	} else {
		out->dest = virt_probe(dc, key, &out->dest_state, &out->dest_persistent, out->uuid,
		                       out->dest_error, sizeof(out->dest_error));
		virConnectClose(dc);
	}
	out->where = virt_locate(out->source, out->dest);
	if (out->where == VIRT_LOC_UNKNOWN)
		virt_set_err(err, errlen, "cannot tell where VM %s is: %s%s%s", name_or_uuid,
		             out->source_error,
		             out->source_error[0] && out->dest_error[0] ? "; " : "",
		             out->dest_error);
	return 0;
}

int virt_vm_define_start(struct virt *v, const char *xml, uint64_t epoch, char *name_out,
                         size_t name_len, char *err, size_t errlen)
{
	if (name_out != NULL && name_len > 0)
		name_out[0] = '\0';
	if (xml == NULL || xml[0] == '\0') {
		virt_set_err(err, errlen, "no domain XML given");
		return -EINVAL;
	}
	virConnectPtr c = virt_conn_ref(v);
	if (c == NULL) {
		virt_set_err(err, errlen, "libvirt is not reachable at %s", v->uri);
		return -ENOTCONN;
	}
	int rc = 0;
	virDomainPtr d = virDomainDefineXML(c, xml);
	if (d == NULL) {
		rc = virt_conn_failed(c, err, errlen, "cannot define the VM");
		if (rc == -EIO && virGetLastErrorCode() == VIR_ERR_OPERATION_FAILED)
			rc = -EEXIST; /* a name or UUID clash */
		virConnectClose(c);
		return rc;
	}
	const char *name = virDomainGetName(d);
	if (name_out != NULL && name != NULL)
		snprintf(name_out, name_len, "%s", name);
	/* keep ha/priority/group/desired from the definition, set the epoch */
	struct virt_vm vm;
	memset(&vm, 0, sizeof(vm));
	char *meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS,
	                                  VIR_DOMAIN_AFFECT_CONFIG);
	if (meta != NULL) {
		virt_meta_parse(meta, &vm);
		free(meta);
	}
	char mx[200 + VIRT_GROUP_MAX];
	virt_meta_format(mx, sizeof(mx), &vm, epoch);
	if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, mx, VIRT_META_PREFIX, VIRT_META_NS,
	                         VIR_DOMAIN_AFFECT_CONFIG) < 0)
		rc = virt_conn_failed(c, err, errlen, "cannot set the VM's owner epoch");
	else if (virDomainCreate(d) < 0)
		rc = virt_conn_failed(c, err, errlen, "cannot start the VM");
	if (rc < 0 && virDomainIsActive(d) == 1)
		virDomainDestroy(d); /* never leave a half-restarted copy running */
	virDomainFree(d);
	virConnectClose(c);
	return rc;
}

/* ---- loop-thread calls: job statistics, abort, export ------------------ */

int virt_vm_job_stats(struct virt *v, const char *name_or_uuid, bool completed,
                      struct virt_job_stats *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (completed) { /* only the migration's own read asks for a finished job */
		virDomainPtr d;
		int rc = virt_lookup(v, name_or_uuid, &d, err, errlen);
		if (rc < 0)
			return rc;
		rc = virt_dom_job_stats(v->conn, d, true, out, err, errlen);
		if (rc == -ENOTCONN)
			virt_failed(v, NULL, 0, "cannot read job statistics");
		virDomainFree(d);
		return rc;
	}
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_JOB_STATS, .key = name_or_uuid};
	int rc = virt_op_run(v, &req, &o, err, errlen);
	if (rc == 0)
		*out = o.res.job;
	return rc;
}

int virt_vm_abort_job(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op_key(v, VIRT_OPK_ABORT_JOB, name_or_uuid, err, errlen);
}

int virt_vm_export_xml(struct virt *v, const char *name_or_uuid, char **xml, char *err,
                       size_t errlen)
{
	struct virt_op_out o;
	struct virt_op_req req = {.kind = VIRT_OPK_EXPORT, .key = name_or_uuid};
	int rc = virt_op_run(v, &req, &o, err, errlen);
	*xml = rc == 0 ? o.res.xml : NULL;
	if (rc < 0)
		free(o.res.xml);
	return rc;
}

/* virt_vm_export_xml's read on a bare connection (any thread). */
static char *virt_conn_export(virConnectPtr c, const char *key)
{
	struct virt_reader rd = {.c = c};
	struct virt_op_out o;
	memset(&o, 0, sizeof(o));
	virt_do_export(&rd, key, &o);
	return o.res.xml;
}

static void virt_export_job_free(struct virt_export_job *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->keys[i]);
		free(e->xmls[i]);
	}
	free(e->keys);
	free(e->xmls);
	free(e);
}

static void virt_export_work(struct hvwork_job *j)
{
	struct virt_export_job *e = j->data;
	for (size_t i = 0; i < e->n; i++)
		e->xmls[i] = virt_conn_export(e->c, e->keys[i]);
}

static void virt_export_done(struct hvwork_job *j, int status)
{
	struct virt_export_job *e = j->data;
	virConnectClose(e->c);
	if (e->v != NULL) {
		e->v->export_job = NULL;
		e->done(e->v, status, e->xmls, e->n, e->ud);
		virt_opq_kick(e->v);
	}
	virt_export_job_free(e);
}

/* Takes a reference on v's connection into *c and queues j (work, done,
 * data) on lane: 0, or -ENOTCONN / hvwork_submit's error with nothing
 * queued and no reference kept. */
static int virt_conn_submit(struct virt *v, enum hvwork_lane lane, struct hvwork_job *j,
                            hvwork_fn work, hvwork_done_fn done, void *data, virConnectPtr *c)
{
	*c = virt_conn_ref(v);
	if (*c == NULL)
		return -ENOTCONN;
	j->work = work;
	j->done = done;
	j->data = data;
	int rc = hvwork_submit(v->worker, lane, j);
	if (rc < 0) {
		virConnectClose(*c);
		*c = NULL;
	}
	return rc;
}

int virt_vm_export_xml_async(struct virt *v, const char *const *keys, size_t n,
                             virt_export_done_fn done, void *ud)
{
	if (v->worker == NULL)
		return -ENOTSUP;
	if (virt_conn_job_busy(v))
		return -EBUSY;
	if (!virt_connected(v))
		return -ENOTCONN;
	struct virt_export_job *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->keys = calloc(n ? n : 1, sizeof(char *));
	e->xmls = calloc(n ? n : 1, sizeof(char *));
	if (e->keys == NULL || e->xmls == NULL) {
		virt_export_job_free(e);
		return -ENOMEM;
	}
	for (; e->n < n; e->n++)
		if ((e->keys[e->n] = strdup(keys[e->n])) == NULL) {
			virt_export_job_free(e);
			return -ENOMEM;
		}
	e->v = v;
	e->done = done;
	e->ud = ud;
	int rc = virt_conn_submit(v, HVWORK_GENERAL, &e->j, virt_export_work, virt_export_done, e,
	                          &e->c);
	if (rc < 0) {
		virt_export_job_free(e);
		return rc;
	}
	v->export_job = e;
	return 0;
}

static void virt_start_work(struct hvwork_job *j)
{
	struct virt_start_job *sj = j->data;
	virDomainPtr d;
	sj->rc = virt_conn_lookup(sj->c, sj->key, &d, sj->err, sizeof(sj->err));
	if (sj->rc < 0)
		return;
	if (virDomainCreate(d) < 0) {
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot start VM %s", sj->key);
		sj->rc = virt_conn_failed(sj->c, sj->err, sizeof(sj->err), what);
	}
	virDomainFree(d);
}

static void virt_start_done(struct hvwork_job *j, int status)
{
	struct virt_start_job *sj = j->data;
	if (sj->v != NULL) {
		sj->v->start_job = NULL;
		sj->done(sj->v, status, sj->rc, sj->err, sj->ud);
		virt_opq_kick(sj->v);
	}
	virConnectClose(sj->c);
	free(sj->key);
	free(sj);
}

int virt_vm_start_async(struct virt *v, const char *key, enum hvwork_lane lane,
                        virt_op_done_fn done, void *ud)
{
	if (v->worker == NULL)
		return -ENOTSUP;
	if (virt_conn_job_busy(v)) {
		/* operators' commands and event reads must not starve a crash
		 * restart: the next waits up to VIRT_OP_YIELD_MS for this
		 * caller's retry */
		if ((v->op_job != NULL || v->opq != NULL || v->ev_job != NULL || v->evq_n > 0) &&
		    v->loop != NULL)
			v->op_yield_until = uv_now(v->loop) + VIRT_OP_YIELD_MS;
		return -EBUSY;
	}
	struct virt_start_job *sj = calloc(1, sizeof(*sj));
	if (sj == NULL || (sj->key = strdup(key)) == NULL) {
		free(sj);
		return -ENOMEM;
	}
	sj->v = v;
	sj->done = done;
	sj->ud = ud;
	int rc = virt_conn_submit(v, lane, &sj->j, virt_start_work, virt_start_done, sj, &sj->c);
	if (rc < 0) {
		free(sj->key);
		free(sj);
		return rc;
	}
	v->start_job = sj;
	v->op_yield_until = 0;
	return 0;
}

/* ---- tests: an injected stop -------------------------------------------- */

#ifdef MV_TEST_HOOKS

void virt_test_inject_stop(struct virt *v, const char *name_or_uuid, enum virt_stop_reason why)
{
	char err[512];
	virDomainPtr d;
	if (virt_lookup(v, name_or_uuid, &d, err, sizeof(err)) < 0) {
		char q[600];
		MV_WARN("virt", "inject stop: no such VM error=%s",
		        mv_log_quote(q, sizeof(q), err));
		return;
	}
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	virDomainGetUUIDString(d, uuid);
	bool destroyed = false;
	if (virDomainIsActive(d) == 1) {
		if (virDomainDestroy(d) < 0) {
			char q[600];
			virt_failed(v, err, sizeof(err), "inject stop: cannot destroy VM");
			MV_WARN("virt", "inject stop failed vm=%s error=%s", name_or_uuid,
			        mv_log_quote(q, sizeof(q), err));
			virDomainFree(d);
			return;
		}
		destroyed = true;
	}
	char name[VIRT_NAME_MAX];
	virt_cache_refresh(v, d, name);
	virDomainFree(d);
	/* The destroy's own STOPPED event (still queued) must read as `why`. */
	if (destroyed && v->loop != NULL) {
		size_t n = sizeof(v->injected) / sizeof(v->injected[0]), slot = 0;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v->injected[i].uuid, uuid) == 0 ||
			    v->injected[i].uuid[0] == '\0') {
				slot = i;
				break;
			}
		}
		snprintf(v->injected[slot].uuid, sizeof(v->injected[slot].uuid), "%s", uuid);
		v->injected[slot].why = why;
	}
	virt_cache_set_stop(v, uuid, why);
	MV_INFO("virt", "vm stop injected (test) name=%s reason=%s", name,
	        virt_stop_reason_name(why));
	virt_notify(v, VIRT_CHANGE_VM_EVENT, name);
}
#endif /* MV_TEST_HOOKS */

/* ---- fencing a failed host (worker-safe) -------------------------------- */

const char *virt_fence_outcome_name(enum virt_fence_outcome o)
{
	switch (o) {
	case VIRT_FENCE_DESTROYED:
		return "destroyed";
	case VIRT_FENCE_ALREADY_STOPPED:
		return "already-stopped";
	case VIRT_FENCE_ABSENT:
		return "absent";
	case VIRT_FENCE_FAILED:
		return "failed";
	case VIRT_FENCE_NEWER:
		return "newer";
	default:
		return "pending";
	}
}

/* HOST and PORT of a network libvirt URI (driver+tcp://, +tls://, +ssh://,
 * +libssh://, +libssh2://, or driver://HOST/ which is TLS); false when the
 * URI names no remote host (local, unix socket, ext, test driver). */
static bool virt_uri_host_port(const char *uri, char *host, size_t hostlen, char *port,
                               size_t portlen)
{
	const char *sep = strstr(uri, "://");
	if (sep == NULL)
		return false;
	const char *plus = memchr(uri, '+', (size_t)(sep - uri));
	char transport[16] = "";
	if (plus != NULL)
		snprintf(transport, sizeof(transport), "%.*s", (int)(sep - plus - 1), plus + 1);
	const char *defport;
	if (transport[0] == '\0' || strcmp(transport, "tls") == 0)
		defport = "16514";
	else if (strcmp(transport, "tcp") == 0)
		defport = "16509";
	else if (strcmp(transport, "ssh") == 0 || strcmp(transport, "libssh") == 0 ||
	         strcmp(transport, "libssh2") == 0)
		defport = "22";
	else
		return false; /* unix, ext, ... */
	const char *a = sep + 3;
	size_t alen = strcspn(a, "/?#");
	const char *at = memchr(a, '@', alen);
	if (at != NULL) {
		alen -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	if (alen == 0)
		return false; /* driver:///path: local */
	const char *p = NULL;
	size_t hlen;
	if (a[0] == '[') {
		const char *close = memchr(a, ']', alen);
		if (close == NULL)
			return false;
		hlen = (size_t)(close - a - 1);
		snprintf(host, hostlen, "%.*s", (int)hlen, a + 1);
		if ((size_t)(close + 1 - a) < alen && close[1] == ':')
			p = close + 2;
	} else {
		const char *colon = memchr(a, ':', alen);
		hlen = colon != NULL ? (size_t)(colon - a) : alen;
		snprintf(host, hostlen, "%.*s", (int)hlen, a);
		if (colon != NULL)
			p = colon + 1;
	}
	if (p != NULL && (size_t)(a + alen - p) > 0)
		snprintf(port, portlen, "%.*s", (int)(a + alen - p), p);
	else
		snprintf(port, portlen, "%s", defport);
	return host[0] != '\0';
}

/* Can HOST:PORT be reached over TCP within timeout_ms? 0, or -ENOTCONN
 * with the reason in err. */
static int virt_tcp_probe(const char *host, const char *port, unsigned timeout_ms, char *err,
                          size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int g = getaddrinfo(host, port, &hints, &res);
	if (g != 0) {
		virt_set_err(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
		return -ENOTCONN;
	}
	uint64_t end = virt_now_ms() + timeout_ms;
	int last = ETIMEDOUT;
	int rc = -ENOTCONN;
	for (struct addrinfo *ai = res; ai != NULL && rc != 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			rc = 0;
		} else if (errno != EINPROGRESS) {
			last = errno;
		} else {
			uint64_t now = virt_now_ms();
			int wait = now < end ? (int)(end - now) : 0;
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int pr;
			do
				pr = poll(&pfd, 1, wait);
			while (pr < 0 && errno == EINTR);
			if (pr == 1) {
				int soerr = 0;
				socklen_t sl = sizeof(soerr);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
				    soerr == 0)
					rc = 0;
				else
					last = soerr != 0 ? soerr : errno;
			} else {
				last = pr == 0 ? ETIMEDOUT : errno;
			}
		}
		close(fd);
	}
	freeaddrinfo(res);
	if (rc != 0) {
		if (last == ETIMEDOUT)
			virt_set_err(err, errlen, "%s port %s did not answer within %u ms", host,
			             port, timeout_ms);
		else
			virt_set_err(err, errlen, "cannot reach %s port %s: %s", host, port,
			             strerror(last));
	}
	return rc;
}

static pthread_once_t virt_quiet_once = PTHREAD_ONCE_INIT;
static void virt_quiet_errors(void)
{
	virSetErrorFunc(NULL, virt_silence_errors);
}

/* Looks a fence target up by UUID (by name when it is not a UUID). */
static virDomainPtr virt_fence_lookup(virConnectPtr c, const char *key)
{
	virDomainPtr d = virDomainLookupByUUIDString(c, key);
	if (d == NULL && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
		d = virDomainLookupByName(c, key);
	return d;
}

/* Destroys d if active and confirms it is not. */
static enum virt_fence_outcome virt_fence_one(virConnectPtr c, virDomainPtr d, const char *key,
                                              char *why, size_t whylen)
{
	int a = virDomainIsActive(d);
	if (a < 0) {
		if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
			return VIRT_FENCE_ALREADY_STOPPED; /* gone meanwhile */
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot read the state of VM %s", key);
		virt_conn_failed(c, why, whylen, what);
		return VIRT_FENCE_FAILED;
	}
	if (a == 0)
		return VIRT_FENCE_ALREADY_STOPPED;
	if (virDomainDestroyFlags(d, VIR_DOMAIN_DESTROY_DEFAULT) < 0) {
		int code = virGetLastErrorCode();
		/* Stopped or undefined (transient) between our look and the destroy. */
		if (code == VIR_ERR_NO_DOMAIN)
			return VIRT_FENCE_ALREADY_STOPPED;
		if (code == VIR_ERR_OPERATION_INVALID && virDomainIsActive(d) == 0)
			return VIRT_FENCE_ALREADY_STOPPED;
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot destroy VM %s", key);
		virt_conn_failed(c, why, whylen, what);
		return VIRT_FENCE_FAILED;
	}
	/* Confirm: the destroy said yes; make sure libvirt agrees. */
	a = virDomainIsActive(d);
	if (a == 0 || (a < 0 && virGetLastErrorCode() == VIR_ERR_NO_DOMAIN))
		return VIRT_FENCE_DESTROYED;
	if (a < 0) {
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot confirm that VM %s stopped", key);
		virt_conn_failed(c, why, whylen, what);
	} else {
		virt_set_err(why, whylen, "VM %s is still active after destroy", key);
	}
	return VIRT_FENCE_FAILED;
}

/* One virt_remote_fence call: the connection and what it found so far. */
struct virt_fence_run {
	virConnectPtr conn;
	const char *uri;
	struct virt_fence_result *out;
	int rc;          /* 0, -EIO (a VM not confirmed stopped), -ENOTCONN (host lost) */
	char first[512]; /* the first failure, for the caller's error */
};

/* Resets out (keeping its outcomes array, all set to PENDING) and checks
 * the arguments. Returns 0 or -EINVAL (err says why). */
static int virt_fence_check_args(const char *uri, const char *const *uuids, size_t n,
                                 struct virt_fence_result *out, char *err, size_t errlen)
{
	if (out == NULL) {
		virt_set_err(err, errlen, "fence: no result given");
		return -EINVAL;
	}
	enum virt_fence_outcome *outcomes = out->outcomes;
	memset(out, 0, sizeof(*out));
	out->outcomes = outcomes;
	if (outcomes != NULL)
		for (size_t i = 0; i < n; i++)
			outcomes[i] = VIRT_FENCE_PENDING;
	if (uri == NULL || uri[0] == '\0' || (n > 0 && uuids == NULL)) {
		virt_set_err(err, errlen, "fence: need the host's URI (and the VMs' UUIDs)");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (uuids[i] == NULL || uuids[i][0] == '\0') {
			virt_set_err(err, errlen, "fence: VM %zu has no UUID", i);
			return -EINVAL;
		}
	}
	return 0;
}

/* Opens the fence connection to uri: a TCP probe first (when the URI names
 * a host) so that a dead host fails within tmo_s, then libvirt, with a
 * keepalive. Returns the connection, or NULL (err says why). */
static virConnectPtr virt_fence_connect(const char *uri, unsigned tmo_s, char *err, size_t errlen)
{
	char host[256], port[16];
	if (virt_uri_host_port(uri, host, sizeof(host), port, sizeof(port))) {
		char why[400];
		if (virt_tcp_probe(host, port, tmo_s * 1000u, why, sizeof(why)) < 0) {
			virt_set_err(err, errlen, "cannot fence at %s: %s", uri, why);
			MV_WARN("virt", "fence: host unreachable uri=%s", uri);
			return NULL;
		}
	}
	virConnectPtr c = virConnectOpen(uri);
	if (c == NULL) {
		virt_set_err(err, errlen, "cannot fence at %s: cannot connect: %s", uri,
		             virt_last_message());
		return NULL;
	}
	/* Bound each later call: a host dying mid-fence fails the pending call
	 * after about interval * (count + 1) seconds. In-process drivers have
	 * no keepalive (an error that means nothing here). */
	int ka = (int)(tmo_s / 3 > 0 ? tmo_s / 3 : 1);
	if (virConnectSetKeepAlive(c, ka, 2) < 0)
		MV_DEBUG("virt", "fence: no keepalive uri=%s error=%s", uri, virt_last_message());
	return c;
}

/* Records a VM the run could not confirm stopped: keeps the first reason,
 * and makes the run's result -ENOTCONN if the host is gone, else -EIO. */
static void virt_fence_note_failure(struct virt_fence_run *run, const char *why)
{
	if (run->first[0] == '\0')
		snprintf(run->first, sizeof(run->first), "%s", why);
	if (virConnectIsAlive(run->conn) == 0)
		run->rc = -ENOTCONN;
	else if (run->rc == 0)
		run->rc = -EIO;
}

/* Our metadata of the running domain d (whose UUID is uuid) into vm: 0,
 * also when it carries none (vm then says ha off, epoch 0); -1 when it
 * cannot be read (why says why). */
static int virt_fence_dom_meta(virConnectPtr c, virDomainPtr d, const char *uuid,
                               struct virt_vm *vm, char *why, size_t whylen)
{
	memset(vm, 0, sizeof(*vm));
	snprintf(vm->name, sizeof(vm->name), "%s", uuid);
	char *meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS,
	                                  VIR_DOMAIN_AFFECT_LIVE);
	if (meta == NULL) {
		int code = virGetLastErrorCode();
		if (code == VIR_ERR_NO_DOMAIN_METADATA || code == VIR_ERR_NO_DOMAIN ||
		    code == VIR_ERR_OPERATION_INVALID)
			return 0;
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot read the owner epoch of VM %s", uuid);
		virt_conn_failed(c, why, whylen, what);
		return -1;
	}
	virt_meta_parse(meta, vm);
	free(meta);
	return 0;
}

/* Looks up and fences one VM the caller listed; below (0: none): an active
 * copy whose owner epoch is at or above it is a newer placement's, left
 * running (VIRT_FENCE_NEWER). */
static enum virt_fence_outcome virt_fence_listed_one(virConnectPtr c, const char *key,
                                                     uint64_t below, char *why, size_t whylen)
{
	virDomainPtr d = virt_fence_lookup(c, key);
	if (d == NULL) {
		int code = virGetLastErrorCode();
		if (code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_INVALID_ARG)
			return VIRT_FENCE_ABSENT;
		char what[VIRT_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot look up VM %s", key);
		virt_conn_failed(c, why, whylen, what);
		return VIRT_FENCE_FAILED;
	}
	if (below > 0 && virDomainIsActive(d) == 1) {
		struct virt_vm vm;
		if (virt_fence_dom_meta(c, d, key, &vm, why, whylen) < 0) {
			virDomainFree(d);
			return VIRT_FENCE_FAILED;
		}
		if (vm.epoch >= below) {
			virt_set_err(why, whylen,
			             "VM %s runs at owner epoch %" PRIu64 ", at or above the "
			             "fence's %" PRIu64 ": a newer placement's, left running",
			             key, vm.epoch, below);
			virDomainFree(d);
			return VIRT_FENCE_NEWER;
		}
	}
	enum virt_fence_outcome o = virt_fence_one(c, d, key, why, whylen);
	virDomainFree(d);
	return o;
}

/* Fences the listed VMs in order; stops at the first sign the host is
 * gone (the rest stay PENDING). */
static void virt_fence_listed(struct virt_fence_run *run, const char *const *uuids,
                              const uint64_t *below, size_t n)
{
	struct virt_fence_result *out = run->out;
	for (size_t i = 0; i < n; i++) {
		char why[512] = "";
		enum virt_fence_outcome o = virt_fence_listed_one(
		    run->conn, uuids[i], below != NULL ? below[i] : 0, why, sizeof(why));
		if (out->outcomes != NULL)
			out->outcomes[i] = o;
		switch (o) {
		case VIRT_FENCE_DESTROYED:
			out->destroyed++;
			break;
		case VIRT_FENCE_ALREADY_STOPPED:
			out->already_stopped++;
			break;
		case VIRT_FENCE_ABSENT:
			out->absent++;
			break;
		case VIRT_FENCE_NEWER:
			/* not a failure to destroy, but not the fence asked for
			 * either: the caller must not start its own copy */
			out->newer++;
			virt_fence_note_failure(run, why);
			break;
		default:
			out->failed++;
			virt_fence_note_failure(run, why);
			break;
		}
		MV_INFO("virt", "fence vm=%s outcome=%s uri=%s", uuids[i],
		        virt_fence_outcome_name(o), run->uri);
		if (run->rc == -ENOTCONN)
			break;
	}
}

/* Whether d (whose UUID is uuid) is one of the n VMs the caller named, by
 * UUID or by name. */
static bool virt_fence_is_listed(virDomainPtr d, const char *uuid, const char *const *uuids,
                                 size_t n)
{
	const char *nm = virDomainGetName(d);
	for (size_t j = 0; j < n; j++)
		if (strcasecmp(uuids[j], uuid) == 0 || (nm != NULL && strcmp(uuids[j], nm) == 0))
			return true;
	return false;
}

/* Whether the running domain d carries our metadata with ha on. */
static bool virt_fence_dom_is_ha(virConnectPtr c, virDomainPtr d, const char *uuid)
{
	struct virt_vm vm;
	char why[512];
	return virt_fence_dom_meta(c, d, uuid, &vm, why, sizeof(why)) == 0 && vm.ha;
}

/* The host's other HA VMs, which the caller may not know of: fences every
 * active domain not listed that carries ha on. */
static void virt_fence_unlisted_ha(struct virt_fence_run *run, const char *const *uuids, size_t n)
{
	virDomainPtr *doms = NULL;
	int nd = virConnectListAllDomains(run->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (nd < 0) {
		char why[512];
		virt_conn_failed(run->conn, why, sizeof(why), "cannot list the host's VMs");
		virt_fence_note_failure(run, why);
		return;
	}
	for (int i = 0; i < nd; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN] = "";
		virDomainGetUUIDString(doms[i], uuid);
		if (!virt_fence_is_listed(doms[i], uuid, uuids, n) &&
		    virt_fence_dom_is_ha(run->conn, doms[i], uuid)) {
			char why[512] = "";
			enum virt_fence_outcome o =
			    virt_fence_one(run->conn, doms[i], uuid, why, sizeof(why));
			if (o == VIRT_FENCE_FAILED) {
				run->out->extra_failed++;
				virt_fence_note_failure(run, why);
			} else if (o == VIRT_FENCE_DESTROYED) {
				run->out->extra_destroyed++;
			}
			MV_INFO("virt", "fence unlisted ha vm=%s outcome=%s uri=%s", uuid,
			        virt_fence_outcome_name(o), run->uri);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
}

int virt_remote_fence(const char *uri, const char *const *uuids, size_t n, unsigned timeout_s,
                      struct virt_fence_result *out, char *err, size_t errlen)
{
	return virt_remote_fence_below(uri, uuids, NULL, n, timeout_s, out, err, errlen);
}

int virt_remote_fence_below(const char *uri, const char *const *uuids, const uint64_t *below,
                            size_t n, unsigned timeout_s, struct virt_fence_result *out, char *err,
                            size_t errlen)
{
	int rc = virt_fence_check_args(uri, uuids, n, out, err, errlen);
	if (rc < 0)
		return rc;
	/* No struct virt may exist in this process (a CLI, a test): keep
	 * libvirt's own printing of errors off here too. */
	pthread_once(&virt_quiet_once, virt_quiet_errors);
	uint64_t t0 = virt_now_ms();
	struct virt_fence_run run = {.uri = uri, .out = out};
	run.conn = virt_fence_connect(uri, timeout_s ? timeout_s : 5, err, errlen);
	if (run.conn == NULL) {
		out->elapsed_ms = virt_now_ms() - t0;
		return -ENOTCONN;
	}
	virt_fence_listed(&run, uuids, below, n);
	if (run.rc != -ENOTCONN)
		virt_fence_unlisted_ha(&run, uuids, n);
	virConnectClose(run.conn);
	out->elapsed_ms = virt_now_ms() - t0;
	if (run.rc < 0)
		virt_set_err(err, errlen,
		             "fence at %s incomplete (%u of %zu VMs not confirmed "
		             "stopped%s%s): %s",
		             uri, out->failed, n, out->extra_failed ? ", and unlisted HA VMs" : "",
		             out->newer ? ", some run at a newer epoch" : "", run.first);
	MV_INFO("virt",
	        "fence done uri=%s destroyed=%u already_stopped=%u absent=%u failed=%u "
	        "newer=%u extra_destroyed=%u extra_failed=%u elapsed_ms=%" PRIu64 " rc=%d",
	        uri, out->destroyed, out->already_stopped, out->absent, out->failed, out->newer,
	        out->extra_destroyed, out->extra_failed, out->elapsed_ms, run.rc);
	return run.rc;
}

/* ---- destroys of a local fence on the worker (ha.c; virt.h) ------------- */

struct virt_destroy_job {
	struct hvwork_job j;
	struct virt *v;
	virConnectPtr c;
	struct virt_destroy_item *items;
	size_t n;
	struct virt_vm *after; /* each VM as read after its destroy (or before: nothing done) */
	unsigned char *seen;   /* 0 not read, 1 read into after[i], 2 gone (not defined) */
	virt_destroy_done_fn done;
	void *ud;
};

#ifdef MV_TEST_HOOKS
static _Atomic unsigned virt_test_destroy_delay_ms;
void virt_test_set_destroy_delay(unsigned ms)
{
	virt_test_destroy_delay_ms = ms;
}
#endif

/* One item, on the worker: looked up, read, destroyed when active below its
 * epoch, read again. */
static void virt_destroy_one(struct virt_destroy_job *dj, size_t i)
{
	struct virt_destroy_item *it = &dj->items[i];
	struct virt_reader rd = {.c = dj->c};
	virDomainPtr d;
	it->err[0] = '\0';
	it->rc = virt_conn_lookup(dj->c, it->key, &d, it->err, sizeof(it->err));
	if (it->rc == -ENOENT) {
		dj->seen[i] = 2;
		it->rc = 0;
		return;
	}
	if (it->rc < 0)
		return;
	struct virt_vm *vm = &dj->after[i];
	it->rc = virt_dom_read(&rd, d, vm, it->err, sizeof(it->err));
	if (it->rc == -ENOENT) {
		dj->seen[i] = 2;
		it->rc = 0;
	} else if (it->rc == 0) {
		dj->seen[i] = 1;
		if (virDomainIsActive(d) == 1 && vm->epoch < it->below_epoch) {
#ifdef MV_TEST_HOOKS
			unsigned ms = virt_test_destroy_delay_ms;
			if (ms > 0) {
				struct timespec ts = {(time_t)(ms / 1000),
				                      (long)(ms % 1000) * 1000000L};
				while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
					;
			}
#endif
			if (virDomainDestroy(d) < 0) {
				char what[VIRT_UUID_LEN + 32];
				snprintf(what, sizeof(what), "cannot destroy VM %s", it->key);
				it->rc = virt_conn_failed(dj->c, it->err, sizeof(it->err), what);
			} else {
				it->rc = 1;
				char ignored[64];
				int r = virt_dom_read(&rd, d, vm, ignored, sizeof(ignored));
				if (r == -ENOENT)
					dj->seen[i] = 2; /* transient: gone once stopped */
				else if (r < 0)
					dj->seen[i] = 0;
			}
		}
		if (it->undefine && it->rc >= 0 && dj->seen[i] == 1 && vm->persistent &&
		    vm->epoch < it->below_epoch && virDomainIsActive(d) == 0) {
			if (virt_dom_undefine(d) == 0) {
				it->undefined = true;
				dj->seen[i] = 2;
			} else {
				virt_conn_failed(dj->c, it->err, sizeof(it->err),
				                 "cannot undefine the VM");
			}
		}
	}
	virDomainFree(d);
}

static void virt_destroy_work(struct hvwork_job *j)
{
	struct virt_destroy_job *dj = j->data;
	for (size_t i = 0; i < dj->n; i++)
		virt_destroy_one(dj, i);
}

static void virt_destroy_done(struct hvwork_job *j, int status)
{
	struct virt_destroy_job *dj = j->data;
	struct virt *v = dj->v;
	/* outcomes read on a connection since replaced are not cached (they
	 * may be older than the new one's listing; virt_op_apply) */
	bool current = dj->c == v->conn;
	virConnectClose(dj->c);
	for (size_t i = 0; i < dj->n && status != 0; i++) {
		dj->items[i].rc = -ECANCELED;
		snprintf(dj->items[i].err, sizeof(dj->items[i].err),
		         "cancelled: the agent is stopping");
	}
	for (size_t i = 0; i < dj->n && status == 0 && current; i++) {
		char name[VIRT_NAME_MAX];
		if (dj->seen[i] == 1) {
			snprintf(name, sizeof(name), "%s", dj->after[i].name);
			if (virt_cache_upsert(v, &dj->after[i]) < 0)
				MV_ERROR("virt", "out of memory caching VM name=%s", name);
		} else if (dj->seen[i] == 2) {
			const struct virt_vm *old = virt_cache_find(v, dj->items[i].key);
			if (old == NULL)
				continue;
			snprintf(name, sizeof(name), "%s", old->name);
			virt_cache_remove(v, dj->items[i].key);
		} else {
			continue;
		}
		virt_notify(v, VIRT_CHANGE_VM_EVENT, name);
	}
	dj->done(v, status, dj->items, dj->n, dj->ud);
	free(dj->after);
	free(dj->seen);
	free(dj);
}

int virt_vm_destroy_async(struct virt *v, struct virt_destroy_item *items, size_t n,
                          enum hvwork_lane lane, virt_destroy_done_fn done, void *ud)
{
	if (v->worker == NULL)
		return -ENOTSUP;
	if (n == 0 || items == NULL || done == NULL)
		return -EINVAL;
	if (!virt_connected(v))
		return -ENOTCONN;
	struct virt_destroy_job *dj = calloc(1, sizeof(*dj));
	if (dj != NULL) {
		dj->after = calloc(n, sizeof(*dj->after));
		dj->seen = calloc(n, 1);
	}
	if (dj == NULL || dj->after == NULL || dj->seen == NULL) {
		if (dj != NULL) {
			free(dj->after);
			free(dj->seen);
		}
		free(dj);
		return -ENOMEM;
	}
	dj->v = v;
	dj->items = items;
	dj->n = n;
	dj->done = done;
	dj->ud = ud;
	dj->j.what = "vm-destroy";
	int rc =
	    virt_conn_submit(v, lane, &dj->j, virt_destroy_work, virt_destroy_done, dj, &dj->c);
	if (rc < 0) {
		free(dj->after);
		free(dj->seen);
		free(dj);
	}
	return rc;
}
