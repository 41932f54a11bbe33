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
 * Without a loop there are no callbacks and no timers: virt_check() does
 * the same steps synchronously.
 *
 * The inventory cache is rewritten whole by reconcile (every connect and
 * every reconcile_ms) and per VM by events and by our own operations, which
 * always re-read the VM from libvirt rather than guess its new state — an
 * event only says "look at this VM again", so events that arrive late or
 * twice are harmless.
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
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvisor/log.h"

struct virt {
	char *uri;
	uv_loop_t *loop;
	virConnectPtr conn;
	bool conn_dead;     /* LOST: teardown pending */
	bool local;         /* URI names this machine: /proc/loadavg applies */
	bool test_driver;   /* connection type "TEST": free memory is fake */
	int lifecycle_cb;   /* libvirt callback ids, -1 when not registered */
	int metadata_cb;
	bool close_cb;
	char cpu_model[64]; /* from the capabilities, kept across reconnects */
	struct virt_health health;
	bool logged_state;  /* health.reachable value we last logged */
	bool logged_once;
	bool warned_long_name;
	struct virt_vm *vms;
	size_t n_vms;
	/* loop mode */
	unsigned reconcile_ms, backoff_min_ms, backoff_max_ms;
	int ka_interval;
	unsigned ka_count;
	unsigned retry_n;   /* retries scheduled since the last success */
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

static void virt_lost(struct virt *v, const char *why);

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

static bool virt_connected(const struct virt *v) { return v->conn != NULL && !v->conn_dead; }

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

/* <vm ha="yes" priority="10" epoch="3"/> as libvirt returns our element.
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
	xmlFree(ha);
	xmlFree(prio);
	xmlFree(epoch);
	xmlFreeDoc(doc);
}

/* ---- reading VMs -------------------------------------------------------- */

const char *virt_vm_state_name(enum virt_vm_state s)
{
	switch (s) {
	case VIRT_VM_RUNNING: return "running";
	case VIRT_VM_PAUSED: return "paused";
	case VIRT_VM_SHUTOFF: return "shutoff";
	case VIRT_VM_CRASHED: return "crashed";
	default: return "other";
	}
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

/* 0, -ENOENT (the domain went away meanwhile), -ENAMETOOLONG, or -errno. */
static int virt_vm_read(struct virt *v, virDomainPtr d, struct virt_vm *vm, char *err,
                        size_t errlen)
{
	memset(vm, 0, sizeof(*vm));
	const char *name = virDomainGetName(d);
	if (name == NULL)
		return virt_failed(v, err, errlen, "cannot read a VM's name");
	if (strlen(name) >= sizeof(vm->name)) {
		virt_set_err(err, errlen, "VM name longer than %d bytes", VIRT_NAME_MAX - 1);
		return -ENAMETOOLONG;
	}
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	if (virDomainGetUUIDString(d, vm->uuid) < 0)
		return virt_failed(v, err, errlen, "cannot read a VM's UUID");
	virDomainInfo info;
	if (virDomainGetInfo(d, &info) < 0)
		return virt_failed(v, err, errlen, "cannot read VM state");
	vm->state = virt_state_from_libvirt(info.state);
	vm->vcpus = info.nrVirtCpu;
	vm->memory_kib = info.memory;
	vm->max_memory_kib = info.maxMem;
	int p = virDomainIsPersistent(d);
	if (p < 0)
		return virt_failed(v, err, errlen, "cannot read VM persistence");
	vm->persistent = p == 1;
	char *meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS,
	                                  VIR_DOMAIN_AFFECT_CURRENT);
	if (meta != NULL) {
		virt_meta_parse(meta, vm);
		free(meta);
	} else {
		int code = virGetLastErrorCode();
		if (code != VIR_ERR_NO_DOMAIN_METADATA && code != VIR_ERR_NO_SUPPORT)
			return virt_failed(v, err, errlen, "cannot read VM metadata");
	}
	return 0;
}

static int virt_list_raw(struct virt *v, struct virt_vm **out, size_t *n, char *err,
                         size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (!virt_connected(v))
		return virt_unreachable(v, err, errlen);
	virDomainPtr *doms = NULL;
	int nd = virConnectListAllDomains(v->conn, &doms, 0);
	if (nd < 0)
		return virt_failed(v, err, errlen, "cannot list VMs");
	struct virt_vm *vms = nd > 0 ? calloc((size_t)nd, sizeof(*vms)) : NULL;
	int rc = nd > 0 && vms == NULL ? -ENOMEM : 0;
	size_t k = 0;
	for (int i = 0; i < nd; i++) {
		if (rc == 0) {
			char e[512];
			int r = virt_vm_read(v, doms[i], &vms[k], e, sizeof(e));
			if (r == 0) {
				k++;
			} else if (r == -ENAMETOOLONG) {
				if (!v->warned_long_name) {
					char q[300];
					MV_WARN("virt", "VM left out of the inventory error=%s",
					        mv_log_quote(q, sizeof(q), e));
					v->warned_long_name = true;
				}
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
	       a->ha == b->ha && a->priority == b->priority && a->epoch == b->epoch;
}

static int virt_cache_upsert(struct virt *v, const struct virt_vm *vm)
{
	struct virt_vm *old = virt_cache_find(v, vm->uuid);
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

int virt_reconcile(struct virt *v)
{
	struct virt_vm *vms;
	size_t n;
	char err[512];
	int rc = virt_list_raw(v, &vms, &n, err, sizeof(err));
	if (rc < 0) {
		if (rc != -ENOTCONN) {
			char q[600];
			MV_WARN("virt", "reconcile failed error=%s", mv_log_quote(q, sizeof(q), err));
		}
		return rc;
	}
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
	if (nc > 0)
		MV_DEBUG("virt", "reconcile found changes vms=%zu", nc);
	for (size_t i = 0; i < nc; i++)
		virt_notify(v, VIRT_CHANGE_VM_RECONCILED, changed[i]);
	free(changed);
	return (int)nc;
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
		MV_INFO("virt", "libvirt reachable uri=%s cpus=%u memory_kib=%" PRIu64 " cpu_model=%s",
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
	v->conn_dead = true;
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
	case VIR_CONNECT_CLOSE_REASON_ERROR: r = "I/O error"; break;
	case VIR_CONNECT_CLOSE_REASON_EOF: r = "end of file from libvirt"; break;
	case VIR_CONNECT_CLOSE_REASON_KEEPALIVE: r = "keepalive timeout"; break;
	case VIR_CONNECT_CLOSE_REASON_CLIENT: r = "closed by client"; break;
	default: r = "unknown reason"; break;
	}
	char why[512];
	virErrorPtr e = virGetLastError();
	if (e != NULL && e->message != NULL)
		snprintf(why, sizeof(why), "libvirt connection closed (%s): %s", r, e->message);
	else
		snprintf(why, sizeof(why), "libvirt connection closed (%s)", r);
	virt_lost(v, why);
}

void virt_inject_close(struct virt *v)
{
	if (v->conn != NULL)
		virt_on_close(v->conn, VIR_CONNECT_CLOSE_REASON_EOF, v);
}

/* Deregisters everything and closes the connection. Errors are expected
 * here (the connection may be dead) and mean nothing. */
static void virt_drop(struct virt *v)
{
	if (v->conn == NULL)
		return;
	if (v->lifecycle_cb >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->lifecycle_cb);
	if (v->metadata_cb >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->metadata_cb);
	if (v->close_cb)
		virConnectUnregisterCloseCallback(v->conn, virt_on_close);
	v->lifecycle_cb = v->metadata_cb = -1;
	v->close_cb = false;
	virConnectClose(v->conn);
	v->conn = NULL;
	v->conn_dead = false;
}

static void virt_on_domain_event(struct virt *v, virDomainPtr dom)
{
	char name[VIRT_NAME_MAX];
	virt_cache_refresh(v, dom, name);
	virt_notify(v, VIRT_CHANGE_VM_EVENT, name);
}

static void virt_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                              void *opaque)
{
	struct virt *v = opaque;
	if (conn != v->conn || v->conn_dead)
		return;
	MV_DEBUG("virt", "lifecycle event vm=%s event=%d detail=%d", virDomainGetName(dom), event,
	         detail);
	virt_on_domain_event(v, dom);
}

static void virt_on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                             void *opaque)
{
	struct virt *v = opaque;
	if (conn != v->conn || v->conn_dead)
		return;
	if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri != NULL && strcmp(nsuri, VIRT_META_NS) != 0)
		return;
	virt_on_domain_event(v, dom);
}

/* The host CPU model as libvirt names it (what migration compatibility is
 * judged by), read once per struct virt: a cold qemu:///system daemon can
 * take seconds to build its capabilities (8 s measured in the lab), and the
 * loop must not stall like that on every reconnect. The agent's first
 * connect is its synchronous virt_check() before it starts serving. */
static void virt_read_cpu_model(struct virt *v)
{
	if (v->cpu_model[0] != '\0')
		return;
	char *caps = virConnectGetCapabilities(v->conn);
	if (caps == NULL)
		return;
	xmlDocPtr doc = virt_xml_read(caps);
	if (doc != NULL)
		virt_xpath_string(doc, "string(/capabilities/host/cpu/model)", v->cpu_model,
		                  sizeof(v->cpu_model));
	xmlFreeDoc(doc);
	free(caps);
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

static void virt_register_callbacks(struct virt *v)
{
	char q[600];
	if (v->ka_interval > 0 && virConnectSetKeepAlive(v->conn, v->ka_interval, v->ka_count) < 0 &&
	    virGetLastErrorCode() != VIR_ERR_NO_SUPPORT) /* in-process drivers have none */
		MV_WARN("virt", "cannot enable libvirt keepalive error=%s",
		        mv_log_quote(q, sizeof(q), virt_last_message()));
	if (virConnectRegisterCloseCallback(v->conn, virt_on_close, v, NULL) == 0)
		v->close_cb = true;
	else if (virGetLastErrorCode() != VIR_ERR_NO_SUPPORT)
		MV_WARN("virt", "cannot watch the libvirt connection error=%s",
		        mv_log_quote(q, sizeof(q), virt_last_message()));
	v->lifecycle_cb = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(virt_on_lifecycle),
		v, NULL);
	if (v->lifecycle_cb < 0)
		MV_WARN("virt", "no lifecycle events, reconcile only error=%s",
		        mv_log_quote(q, sizeof(q), virt_last_message()));
	v->metadata_cb = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(virt_on_metadata), v, NULL);
	if (v->metadata_cb < 0)
		MV_DEBUG("virt", "no metadata events error=%s",
		         mv_log_quote(q, sizeof(q), virt_last_message()));
}

/* DISCONNECTED -> CONNECTED, or stays DISCONNECTED with health saying why. */
static int virt_connect(struct virt *v)
{
	v->conn = virConnectOpen(v->uri);
	if (v->conn == NULL) {
		char why[512];
		snprintf(why, sizeof(why), "cannot connect to libvirt: %s", virt_last_message());
		v->health.failures++;
		virt_set_unreachable(v, why);
		return -ENOTCONN;
	}
	v->conn_dead = false;
	const char *type = virConnectGetType(v->conn);
	v->test_driver = type != NULL && strcmp(type, "TEST") == 0;
	if (v->loop != NULL)
		virt_register_callbacks(v);
	virt_read_cpu_model(v);
	if (!virt_refresh_node(v)) {
		virt_drop(v);
		v->health.failures++;
		return -ENOTCONN;
	}
	v->health.reachable = true;
	v->health.error[0] = '\0';
	v->health.connects++;
	v->health.failures = 0;
	v->health.retry_ms = 0;
	v->retry_n = 0;
	if (v->loop != NULL)
		uv_timer_stop(&v->retry_timer);
	virt_log_state(v);
	virt_reconcile(v);
	if (virt_connected(v))
		virt_notify(v, VIRT_CHANGE_CONNECTED, NULL);
	return 0;
}

static void virt_on_retry(uv_timer_t *t)
{
	struct virt *v = t->data;
	v->health.retry_ms = 0;
	if (v->conn != NULL && v->conn_dead) { /* LOST: tear down, retry later */
		virt_drop(v);
		virt_schedule_retry(v);
		virt_notify(v, VIRT_CHANGE_DISCONNECTED, NULL);
		return;
	}
	if (v->conn != NULL)
		return;
	if (virt_connect(v) < 0)
		virt_schedule_retry(v);
}

static void virt_on_reconcile(uv_timer_t *t)
{
	struct virt *v = t->data;
	if (virt_connected(v))
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
			virt_drop(v);
		if (v->conn == NULL)
			virt_connect(v);
	} else if (v->conn == NULL && v->health.connects == 0 && v->health.failures == 0) {
		uv_timer_stop(&v->retry_timer);
		if (virt_connect(v) < 0)
			virt_schedule_retry(v);
	}
	if (virt_connected(v) && virt_refresh_node(v))
		v->health.reachable = true;
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
	if (v->uri == NULL) {
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
	v->ka_interval = o->keepalive_interval_s ? o->keepalive_interval_s
	                                         : VIRT_KEEPALIVE_INTERVAL_S_DEFAULT;
	v->ka_count = o->keepalive_count ? o->keepalive_count : VIRT_KEEPALIVE_COUNT_DEFAULT;
	v->on_change = o->on_change;
	v->ud = o->ud;
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
	if (--v->open_handles == 0)
		free(v);
}

void virt_free(struct virt *v)
{
	if (v == NULL)
		return;
	virt_drop(v);
	free(v->vms);
	free(v->uri);
	v->vms = NULL;
	v->uri = NULL;
	if (v->loop != NULL) {
		uv_close((uv_handle_t *)&v->retry_timer, virt_on_handle_closed);
		uv_close((uv_handle_t *)&v->reconcile_timer, virt_on_handle_closed);
		return;
	}
	free(v);
}

const char *virt_uri(const struct virt *v) { return v->uri; }

const struct virt_health *virt_health(const struct virt *v) { return &v->health; }

/* ---- host capacity ------------------------------------------------------ */

/* free + buffers + cached over all cells, in KiB; -1 if not reported. */
static int virt_node_free_kib(struct virt *v, uint64_t *out)
{
	int n = 0;
	if (virNodeGetMemoryStats(v->conn, VIR_NODE_MEMORY_STATS_ALL_CELLS, NULL, &n, 0) < 0 ||
	    n <= 0)
		return -1;
	virNodeMemoryStatsPtr p = calloc((size_t)n, sizeof(*p));
	if (p == NULL)
		return -1;
	int rc = -1;
	if (virNodeGetMemoryStats(v->conn, VIR_NODE_MEMORY_STATS_ALL_CELLS, p, &n, 0) == 0) {
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

int virt_host_info(struct virt *v, struct virt_host *out)
{
	memset(out, 0, sizeof(*out));
	if (!virt_connected(v))
		return -ENOTCONN;
	virNodeInfo info;
	if (virNodeGetInfo(v->conn, &info) < 0)
		return virt_failed(v, NULL, 0, "cannot read node info");
	out->cpus = info.cpus;
	out->mhz = info.mhz;
	out->memory_kib = info.memory;
	snprintf(out->cpu_model, sizeof(out->cpu_model), "%s",
	         v->cpu_model[0] ? v->cpu_model : info.model);
	if (v->test_driver) {
		/* The test driver's free-memory figures are constants unrelated to
		 * its VMs; what its VMs take is the only honest measure. */
		uint64_t used = 0;
		for (size_t i = 0; i < v->n_vms; i++)
			if (v->vms[i].state == VIRT_VM_RUNNING || v->vms[i].state == VIRT_VM_PAUSED)
				used += v->vms[i].memory_kib;
		out->free_kib = used < out->memory_kib ? out->memory_kib - used : 0;
		out->free_estimated = true;
	} else if (virt_node_free_kib(v, &out->free_kib) < 0) {
		unsigned long long b = virNodeGetFreeMemory(v->conn);
		if (b == 0)
			return virt_failed(v, NULL, 0, "cannot read free memory");
		out->free_kib = b / 1024;
	}
	if (v->local) {
		FILE *f = fopen("/proc/loadavg", "r");
		if (f != NULL) {
			out->have_load = fscanf(f, "%lf %lf %lf", &out->load[0], &out->load[1],
			                        &out->load[2]) == 3;
			fclose(f);
		}
	}
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* Resolves a name or UUID to one domain; the caller frees *out. */
static int virt_lookup(struct virt *v, const char *key, virDomainPtr *out, char *err,
                       size_t errlen)
{
	*out = NULL;
	if (!virt_connected(v))
		return virt_unreachable(v, err, errlen);
	if (key == NULL || key[0] == '\0') {
		virt_set_err(err, errlen, "no VM name or UUID given");
		return -EINVAL;
	}
	char what[VIRT_NAME_MAX + 64];
	snprintf(what, sizeof(what), "cannot look up VM %s", key);
	virDomainPtr by_name = virDomainLookupByName(v->conn, key);
	if (by_name == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN)
		return virt_failed(v, err, errlen, what);
	virDomainPtr by_uuid = virDomainLookupByUUIDString(v->conn, key);
	if (by_uuid == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN &&
	    virGetLastErrorCode() != VIR_ERR_INVALID_ARG) { /* INVALID_ARG: not a UUID */
		int rc = virt_failed(v, err, errlen, what);
		if (by_name != NULL)
			virDomainFree(by_name);
		return rc;
	}
	if (by_name != NULL && by_uuid != NULL) {
		char u1[VIR_UUID_STRING_BUFLEN] = "", u2[VIR_UUID_STRING_BUFLEN] = "";
		virDomainGetUUIDString(by_name, u1);
		virDomainGetUUIDString(by_uuid, u2);
		if (strcmp(u1, u2) != 0) {
			virt_set_err(err, errlen,
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

int virt_vm_find(struct virt *v, const char *name_or_uuid, struct virt_vm *out, char *err,
                 size_t errlen)
{
	virDomainPtr d;
	int rc = virt_lookup(v, name_or_uuid, &d, err, errlen);
	if (rc < 0)
		return rc;
	struct virt_vm vm;
	rc = virt_vm_read(v, d, &vm, err, errlen);
	if (rc == 0) {
		virt_cache_upsert(v, &vm);
		if (out != NULL)
			*out = vm;
	} else if (rc == -ENOENT) {
		virt_set_err(err, errlen, "no VM named %s on this host", name_or_uuid);
	}
	virDomainFree(d);
	return rc;
}

int virt_vm_define(struct virt *v, const char *xml, struct virt_vm *out, char *err,
                   size_t errlen)
{
	if (!virt_connected(v))
		return virt_unreachable(v, err, errlen);
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
		virDomainPtr d = name[0] ? virDomainLookupByName(v->conn, name) : NULL;
		if (d != NULL) {
			char u[VIR_UUID_STRING_BUFLEN] = "";
			virDomainGetUUIDString(d, u);
			virDomainFree(d);
			virt_set_err(err, errlen, "a VM named %s already exists on this host (UUID %s)",
			             name, u);
			return -EEXIST;
		}
		d = uuid[0] ? virDomainLookupByUUIDString(v->conn, uuid) : NULL;
		if (d != NULL) {
			virt_set_err(err, errlen, "UUID %s is already used by VM %s on this host", uuid,
			             virDomainGetName(d));
			virDomainFree(d);
			return -EEXIST;
		}
	}
	virDomainPtr d = virDomainDefineXML(v->conn, xml);
	if (d == NULL)
		return virt_failed(v, err, errlen, "cannot define VM");
	struct virt_vm vm;
	int rc = virt_vm_read(v, d, &vm, err, errlen);
	virDomainFree(d);
	if (rc < 0)
		return rc;
	virt_cache_upsert(v, &vm);
	if (out != NULL)
		*out = vm;
	MV_INFO("virt", "vm defined name=%s uuid=%s vcpus=%u memory_kib=%" PRIu64, vm.name, vm.uuid,
	        vm.vcpus, vm.max_memory_kib);
	return 0;
}

enum virt_op { VIRT_OP_START, VIRT_OP_SHUTDOWN, VIRT_OP_DESTROY, VIRT_OP_UNDEFINE };

static int virt_op(struct virt *v, enum virt_op op, const char *key, char *err, size_t errlen)
{
	static const char *const verb[] = {"start", "shut down", "destroy", "undefine"};
	static const char *const done[] = {"started", "shutting down", "destroyed", "undefined"};
	virDomainPtr d;
	int rc = virt_lookup(v, key, &d, err, errlen);
	if (rc < 0)
		return rc;
	char name[VIRT_NAME_MAX], what[VIRT_NAME_MAX + 64];
	snprintf(name, sizeof(name), "%s", virDomainGetName(d));
	snprintf(what, sizeof(what), "cannot %s VM %s", verb[op], name);
	/* The state checks are ours, not left to libvirt: drivers word (and
	 * code) them differently, and the operator should read one message. */
	int active = virDomainIsActive(d);
	if (active < 0) {
		rc = virt_failed(v, err, errlen, what);
		virDomainFree(d);
		return rc;
	}
	if (active == 1 && (op == VIRT_OP_START || op == VIRT_OP_UNDEFINE)) {
		virDomainInfo info;
		bool paused = virDomainGetInfo(d, &info) == 0 &&
		              virt_state_from_libvirt(info.state) == VIRT_VM_PAUSED;
		/* Undefine: libvirt would turn a running VM transient and drop its
		 * definition, so that it vanishes at its next stop. An operator
		 * saying "undefine" means "remove a stopped VM". */
		if (op == VIRT_OP_UNDEFINE)
			virt_set_err(err, errlen, "VM %s is %s; destroy or shut it down first", name,
			             paused ? "paused" : "running");
		else
			virt_set_err(err, errlen, "VM %s is already %s", name,
			             paused ? "running (paused)" : "running");
		virDomainFree(d);
		return op == VIRT_OP_UNDEFINE ? -EBUSY : -EINVAL;
	}
	if (active == 0 && (op == VIRT_OP_SHUTDOWN || op == VIRT_OP_DESTROY)) {
		virt_set_err(err, errlen, "VM %s is not running", name);
		virDomainFree(d);
		return -EINVAL;
	}
	int r = 0;
	switch (op) {
	case VIRT_OP_START:
		r = virDomainCreate(d);
		break;
	case VIRT_OP_SHUTDOWN:
		r = virDomainShutdown(d);
		break;
	case VIRT_OP_DESTROY:
		r = virDomainDestroy(d);
		break;
	case VIRT_OP_UNDEFINE: {
		/* NVRAM is kept: it is the guest's firmware state, not ours to
		 * delete. Drivers that know fewer flags (the test driver) get the
		 * two every driver knows. */
		r = virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
		                                  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		                                  VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
		                                  VIR_DOMAIN_UNDEFINE_KEEP_NVRAM);
		if (r < 0 && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
			r = virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
			                                  VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
		break;
	}
	}
	if (r < 0) {
		rc = virt_failed(v, err, errlen, what);
		virDomainFree(d);
		char q[600];
		MV_INFO("virt", "vm %s refused name=%s error=%s", verb[op], name,
		        mv_log_quote(q, sizeof(q), err != NULL ? err : ""));
		return rc;
	}
	char ignored[VIRT_NAME_MAX];
	virt_cache_refresh(v, d, ignored);
	virDomainFree(d);
	MV_INFO("virt", "vm %s name=%s", done[op], name);
	return 0;
}

int virt_vm_start(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op(v, VIRT_OP_START, name_or_uuid, err, errlen);
}

int virt_vm_shutdown(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op(v, VIRT_OP_SHUTDOWN, name_or_uuid, err, errlen);
}

int virt_vm_destroy(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op(v, VIRT_OP_DESTROY, name_or_uuid, err, errlen);
}

int virt_vm_undefine(struct virt *v, const char *name_or_uuid, char *err, size_t errlen)
{
	return virt_op(v, VIRT_OP_UNDEFINE, name_or_uuid, err, errlen);
}

/* Rewrites <meshvisor:vm/> with the given values, in the persistent config
 * and (when active) the live definition. */
static int virt_meta_write(struct virt *v, const char *key, const struct virt_vm *want,
                           bool set_ha, bool set_epoch, char *err, size_t errlen)
{
	virDomainPtr d;
	int rc = virt_lookup(v, key, &d, err, errlen);
	if (rc < 0)
		return rc;
	struct virt_vm vm;
	rc = virt_vm_read(v, d, &vm, err, errlen);
	if (rc < 0) {
		virDomainFree(d);
		return rc;
	}
	if (set_ha) {
		vm.ha = want->ha;
		vm.priority = want->priority;
	}
	if (set_epoch)
		vm.epoch = want->epoch;
	char xml[160];
	snprintf(xml, sizeof(xml), "<vm ha=\"%s\" priority=\"%d\" epoch=\"%" PRIu64 "\"/>",
	         vm.ha ? "yes" : "no", vm.priority, vm.epoch);
	char what[VIRT_NAME_MAX + 64];
	snprintf(what, sizeof(what), "cannot set meshvisor metadata of VM %s", vm.name);
	int active = virDomainIsActive(d);
	if (active < 0) {
		rc = virt_failed(v, err, errlen, what);
		virDomainFree(d);
		return rc;
	}
	unsigned flags = (vm.persistent ? VIR_DOMAIN_AFFECT_CONFIG : 0) |
	                 (active == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
	if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml, VIRT_META_PREFIX, VIRT_META_NS,
	                         flags) < 0) {
		rc = virt_failed(v, err, errlen, what);
		virDomainFree(d);
		return rc;
	}
	char ignored[VIRT_NAME_MAX];
	virt_cache_refresh(v, d, ignored);
	virDomainFree(d);
	MV_INFO("virt", "vm metadata set name=%s ha=%s priority=%d epoch=%" PRIu64, vm.name,
	        vm.ha ? "yes" : "no", vm.priority, vm.epoch);
	return 0;
}

int virt_vm_set_ha(struct virt *v, const char *name_or_uuid, bool on, int priority, char *err,
                   size_t errlen)
{
	if (priority < 0 || priority > VIRT_PRIORITY_MAX) {
		virt_set_err(err, errlen, "restart priority must be 0 to %d, got %d", VIRT_PRIORITY_MAX,
		             priority);
		return -EINVAL;
	}
	struct virt_vm want = {.ha = on, .priority = priority};
	return virt_meta_write(v, name_or_uuid, &want, true, false, err, errlen);
}

int virt_vm_set_epoch(struct virt *v, const char *name_or_uuid, uint64_t epoch, char *err,
                      size_t errlen)
{
	struct virt_vm want = {.epoch = epoch};
	return virt_meta_write(v, name_or_uuid, &want, false, true, err, errlen);
}
