/*
 * test_virt.c — the hypervisor layer against libvirt's real test driver,
 * in-process: test:///default (one shared state per process, the one VM
 * "test" running) and test:///PATH host files that each test writes (a
 * fresh state on every open). Events travel through virt_uvloop.c on this
 * file's libuv loop, exactly as in the agent.
 *
 * What the test driver cannot show, and where it is covered instead:
 *   - persistence across processes: the driver never writes its state back
 *     (a test:///PATH host is reloaded from the file on every open, and
 *     test:///default lives only as long as some connection to it in this
 *     process), so "HA flag survives an agent restart" is shown here as
 *     "survives closing and reopening our connection while the state
 *     lives" plus "metadata in a host's XML is read on open"; the real
 *     restart is an integration test on a system libvirtd;
 *   - a daemon going away: the driver never closes a connection, has no
 *     keepalive and no close callback, so loss is injected
 *     (virt_inject_close, the same path the close callback takes) and an
 *     unreachable daemon is a unix socket path that does not exist; a
 *     successful reconnect to a daemon that comes back needs the lab;
 *   - fd watches: no remote connection exists here, so virt_uvloop's
 *     handle functions are driven directly with a pipe;
 *   - free memory: the driver's figure is a constant, so host info reports
 *     an estimate (flagged free_estimated);
 *   - crashes: the driver cannot crash a VM or kill its emulator, so a
 *     guest crash / dead QEMU is virt_test_inject_stop (a real destroy, its
 *     reason recorded as the event's); the lab shows the real events;
 *   - a failed destroy while fencing (-EIO): the driver never refuses one;
 *     a remote host that is down is a TCP port nothing listens on.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <uv.h>

#include "hvwork.h"
#include "log.h"
#include "virt.h"

static uv_loop_t loop;

/* ---- loop helpers ------------------------------------------------------- */

struct until {
	bool (*pred)(void *);
	void *arg;
};

static void on_deadline(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Before the loop would block: stop it once the condition holds (a stopped
 * loop polls with no timeout, so this never waits for the next timer). */
static void on_prepare(uv_prepare_t *p)
{
	struct until *u = p->data;
	if (u->pred(u->arg))
		uv_stop(p->loop);
}

/* Runs the loop until pred(arg) or timeout_ms; returns pred's last value. */
static bool run_until(bool (*pred)(void *), void *arg, unsigned timeout_ms)
{
	struct until u = {pred, arg};
	if (pred(arg))
		return true;
	uv_timer_t t;
	uv_prepare_t p;
	uv_timer_init(&loop, &t);
	uv_prepare_init(&loop, &p);
	p.data = &u;
	uv_timer_start(&t, on_deadline, timeout_ms, 0);
	uv_prepare_start(&p, on_prepare);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_close((uv_handle_t *)&p, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	return pred(arg);
}

/* Lets close callbacks and zero-delay work finish. */
static void settle(void)
{
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- change recorder ---------------------------------------------------- */

struct rec {
	int n;
	enum virt_change what[128];
	char name[128][VIRT_NAME_MAX];
};

static void record(struct virt *v, enum virt_change what, const char *name, void *ud)
{
	(void)v;
	struct rec *r = ud;
	if (r->n >= 128)
		return;
	r->what[r->n] = what;
	snprintf(r->name[r->n], VIRT_NAME_MAX, "%s", name != NULL ? name : "");
	r->n++;
}

static int rec_count(const struct rec *r, enum virt_change what, const char *name)
{
	int c = 0;
	for (int i = 0; i < r->n; i++)
		if (r->what[i] == what && (name == NULL || strcmp(r->name[i], name) == 0))
			c++;
	return c;
}

struct wait_rec {
	struct rec *r;
	enum virt_change what;
	const char *name;
};

static bool pred_rec(void *arg)
{
	struct wait_rec *w = arg;
	return rec_count(w->r, w->what, w->name) > 0;
}

static bool wait_change(struct rec *r, enum virt_change what, const char *name, unsigned ms)
{
	struct wait_rec w = {r, what, name};
	return run_until(pred_rec, &w, ms);
}

/* ---- fixtures ----------------------------------------------------------- */

static const char HOST_XML[] =
    "<node>\n"
    "  <cpu><mhz>2400</mhz><model>meshvisor-cpu</model><active>8</active><nodes>1</nodes>"
    "<sockets>1</sockets><cores>4</cores><threads>2</threads></cpu>\n"
    "  <memory>16777216</memory>\n"
    "  <domain type='test'>\n"
    "    <name>alpha</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\n"
    "    <metadata><meshvisor:vm xmlns:meshvisor='https://meshvisor.dev/xmlns/vm/1'"
    " ha='yes' priority='7' epoch='4'/></metadata>\n"
    "    <memory>2097152</memory><currentMemory>1048576</currentMemory><vcpu>2</vcpu>\n"
    "    <os><type>hvm</type></os>\n"
    "  </domain>\n"
    "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
    "    <name>beta</name><uuid>22222222-2222-3333-4444-555555555555</uuid>\n"
    "    <memory>524288</memory><vcpu>1</vcpu><os><type>hvm</type></os>\n"
    "    <test:runstate>5</test:runstate>\n"
    "  </domain>\n"
    "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
    "    <name>gamma</name><uuid>33333333-2222-3333-4444-555555555555</uuid>\n"
    "    <memory>262144</memory><vcpu>4</vcpu><os><type>hvm</type></os>\n"
    "    <test:transient/>\n"
    "  </domain>\n"
    "</node>\n";

struct fx {
	char dir[64];
	char path[128];
	char uri[160];
	struct rec rec;
	struct virt *v;
	char err[1024];
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_virt.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/host.xml", f->dir);
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs(HOST_XML, fp);
	fclose(fp);
	snprintf(f->uri, sizeof(f->uri), "test://%s", f->path);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	virt_test_set_delay(0); /* a test that failed half-way left it set */
	virt_test_set_open_delay(0);
	virt_test_set_op_delay(0);
	virt_free(f->v);
	settle();
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static bool pred_reachable(void *arg)
{
	return virt_health(arg)->reachable;
}

/* A virt on the loop, connected (waits for the first connect). */
static struct virt *open_loop(struct fx *f, const char *uri)
{
	struct virt_options o = {
	    .uri = uri,
	    .loop = &loop,
	    .on_change = record,
	    .ud = &f->rec,
	    .backoff_min_ms = 20,
	    .backoff_max_ms = 80,
	};
	struct virt *v = virt_new_opts(&o);
	assert_non_null(v);
	assert_true(run_until(pred_reachable, v, 2000));
	return v;
}

static const struct virt_vm *cached(struct virt *v, const char *name)
{
	size_t n;
	const struct virt_vm *vms = virt_vms(v, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(vms[i].name, name) == 0)
			return &vms[i];
	return NULL;
}

static const char *small_vm_xml(const char *name, char *buf, size_t len)
{
	snprintf(buf, len,
	         "<domain type='test'><name>%s</name><memory unit='MiB'>256</memory>"
	         "<vcpu>2</vcpu><os><type>hvm</type></os></domain>",
	         name);
	return buf;
}

/* ---- the event loop (virt_uvloop.c) ------------------------------------ */

static void test_register_twice(void **state)
{
	(void)state;
	assert_int_equal(virt_event_register_uv(&loop), 0);
	uv_loop_t other;
	assert_int_equal(uv_loop_init(&other), 0);
	assert_int_equal(virt_event_register_uv(&other), -EBUSY);
	uv_loop_close(&other);
}

struct ev_probe {
	int fired;
	int last_events;
	int freed;
	int timer_id;
	int stop_after; /* timeout: set to -1 after this many fires */
};

static void probe_handle_cb(int watch, int fd, int events, void *opaque)
{
	(void)watch;
	struct ev_probe *p = opaque;
	p->fired++;
	p->last_events = events;
	char c;
	if (events & VIR_EVENT_HANDLE_READABLE)
		assert_int_equal(read(fd, &c, 1), 1);
}

static void probe_free(void *opaque)
{
	((struct ev_probe *)opaque)->freed++;
}

static bool pred_fired(void *arg)
{
	return ((struct ev_probe *)arg)->fired > 0;
}
static bool pred_fired3(void *arg)
{
	return ((struct ev_probe *)arg)->fired >= 3;
}
static bool pred_never(void *arg)
{
	(void)arg;
	return false;
}

static void test_uvloop_handle(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	struct ev_probe p = {0};
	int w =
	    virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, probe_handle_cb, &p, probe_free);
	assert_true(w > 0);
	/* A second watch on the same fd is refused (one uv_poll_t per fd). */
	assert_int_equal(
	    virEventAddHandle(fds[0], VIR_EVENT_HANDLE_WRITABLE, probe_handle_cb, &p, NULL), -1);
	assert_false(run_until(pred_fired, &p, 30)); /* nothing to read yet */
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_true(run_until(pred_fired, &p, 1000));
	assert_int_equal(p.last_events, VIR_EVENT_HANDLE_READABLE);

	/* Disabled: data waits, callback stays quiet. */
	virEventUpdateHandle(w, 0);
	p.fired = 0;
	assert_int_equal(write(fds[1], "y", 1), 1);
	assert_false(run_until(pred_fired, &p, 30));
	virEventUpdateHandle(w, VIR_EVENT_HANDLE_READABLE);
	assert_true(run_until(pred_fired, &p, 1000));

	/* Removal: no callback afterwards, free function deferred to the loop. */
	size_t handles;
	virt_event_uv_counts(&handles, NULL);
	assert_int_equal(handles, 1);
	assert_int_equal(write(fds[1], "z", 1), 1);
	p.fired = 0;
	assert_int_equal(virEventRemoveHandle(w), 0);
	assert_int_equal(p.freed, 0);
	assert_int_equal(virEventRemoveHandle(w), -1);
	settle();
	assert_int_equal(p.freed, 1);
	assert_int_equal(p.fired, 0);
	virt_event_uv_counts(&handles, NULL);
	assert_int_equal(handles, 0);

	/* The peer closing is reported (as readable, then EOF on read). */
	struct ev_probe h = {0};
	w = virEventAddHandle(fds[1], VIR_EVENT_HANDLE_WRITABLE, probe_handle_cb, &h, NULL);
	assert_true(w > 0);
	assert_true(run_until(pred_fired, &h, 1000));
	assert_true(h.last_events & VIR_EVENT_HANDLE_WRITABLE);
	assert_int_equal(virEventRemoveHandle(w), 0);
	close(fds[0]);
	close(fds[1]);
	settle();
}

static void probe_timeout_cb(int timer, void *opaque)
{
	struct ev_probe *p = opaque;
	p->fired++;
	if (p->stop_after > 0 && p->fired >= p->stop_after)
		virEventUpdateTimeout(timer, -1);
}

static void test_uvloop_timeout(void **state)
{
	(void)state;
	size_t before;
	virt_event_uv_counts(NULL, &before);

	/* 0: every iteration, and I/O still runs in between (the loop turns). */
	struct ev_probe p = {.stop_after = 3};
	int t = virEventAddTimeout(0, probe_timeout_cb, &p, probe_free);
	assert_true(t > 0);
	assert_true(run_until(pred_fired3, &p, 1000));
	assert_false(run_until(pred_never, NULL, 30));
	assert_int_equal(p.fired, 3); /* disabled by -1 from its own callback */

	/* N ms: periodic. */
	p.fired = 0;
	p.stop_after = 0;
	uint64_t t0 = uv_now(&loop);
	virEventUpdateTimeout(t, 20);
	assert_true(run_until(pred_fired3, &p, 1000));
	assert_true(uv_now(&loop) - t0 >= 55);

	/* Remove from inside no callback: free deferred, no more fires. */
	assert_int_equal(virEventRemoveTimeout(t), 0);
	assert_int_equal(virEventRemoveTimeout(t), -1);
	int fired = p.fired;
	assert_int_equal(p.freed, 0);
	settle();
	assert_int_equal(p.freed, 1);
	assert_false(run_until(pred_never, NULL, 50));
	assert_int_equal(p.fired, fired);
	size_t after;
	virt_event_uv_counts(NULL, &after);
	assert_int_equal(after, before);
	virEventUpdateTimeout(t, 10); /* unknown id: ignored */
}

/* ---- the event loop, called from other threads ------------------------- */
/*
 * A migration on a libuv worker makes libvirt's remote driver add, update
 * and remove its watches and timeouts from that worker. Here a thread makes
 * those calls (through libvirt's public virEvent* API, which dispatches to
 * virt_uvloop.c) and the main thread runs the loop: callbacks and free
 * functions must run on the loop thread only, a watch removed before the
 * loop applied it must never fire, and each ff must run exactly once.
 */

static uv_thread_t loop_tid;

static bool on_loop_thread(void)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &loop_tid) != 0;
}

struct tprobe {
	atomic_int fired;
	atomic_int freed;
	atomic_int off_loop; /* callbacks or ffs seen off the loop thread */
	int last_events;
};

static void tp_handle_cb(int watch, int fd, int events, void *opaque)
{
	(void)watch;
	struct tprobe *p = opaque;
	if (!on_loop_thread())
		atomic_fetch_add(&p->off_loop, 1);
	atomic_fetch_add(&p->fired, 1);
	p->last_events = events;
	char c;
	if (events & VIR_EVENT_HANDLE_READABLE)
		(void)!read(fd, &c, 1);
}

static void tp_timeout_cb(int timer, void *opaque)
{
	(void)timer;
	struct tprobe *p = opaque;
	if (!on_loop_thread())
		atomic_fetch_add(&p->off_loop, 1);
	atomic_fetch_add(&p->fired, 1);
}

static void tp_free(void *opaque)
{
	struct tprobe *p = opaque;
	if (!on_loop_thread())
		atomic_fetch_add(&p->off_loop, 1);
	atomic_fetch_add(&p->freed, 1);
}

static bool pred_tp_fired(void *arg)
{
	return atomic_load(&((struct tprobe *)arg)->fired) > 0;
}
static bool pred_tp_fired3(void *arg)
{
	return atomic_load(&((struct tprobe *)arg)->fired) >= 3;
}

enum tcall_op { T_ADD_H, T_UPD_H, T_REM_H, T_ADD_T, T_UPD_T, T_REM_T };

/* One libvirt event call; id < 0 means "the id the last add returned". */
struct tcall {
	enum tcall_op op;
	int fd_or_freq;
	int events;
	int id;
	struct tprobe *p;
	int rc; /* out: the add's id, or remove's result */
};

struct tscript {
	struct tcall c[4];
	int n;
};

static void tscript_thread(void *arg)
{
	struct tscript *s = arg;
	int last = -1;
	for (int i = 0; i < s->n; i++) {
		struct tcall *c = &s->c[i];
		int id = c->id < 0 ? last : c->id;
		switch (c->op) {
		case T_ADD_H:
			c->rc = last = virEventAddHandle(c->fd_or_freq, c->events, tp_handle_cb,
			                                 c->p, tp_free);
			break;
		case T_UPD_H:
			virEventUpdateHandle(id, c->events);
			break;
		case T_REM_H:
			c->rc = virEventRemoveHandle(id);
			break;
		case T_ADD_T:
			c->rc = last =
			    virEventAddTimeout(c->fd_or_freq, tp_timeout_cb, c->p, tp_free);
			break;
		case T_UPD_T:
			virEventUpdateTimeout(id, c->fd_or_freq);
			break;
		case T_REM_T:
			c->rc = virEventRemoveTimeout(id);
			break;
		}
	}
}

/* Runs the calls on a new thread, waits for it (the loop does not run
 * meanwhile: the changes are all pending when it next runs). */
static void off_thread(struct tscript *s)
{
	uv_thread_t t;
	assert_int_equal(uv_thread_create(&t, tscript_thread, s), 0);
	assert_int_equal(uv_thread_join(&t), 0);
}

#define TCALL(...) ((struct tcall){__VA_ARGS__})

static void test_uvloop_handle_off_thread(void **state)
{
	(void)state;
	loop_tid = uv_thread_self();
	size_t before, n;
	virt_event_uv_counts(&before, NULL);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "a", 1), 1);

	/* Add: the id comes back at once; the watch starts when the loop runs. */
	struct tprobe p = {0};
	struct tscript s = {.n = 1};
	s.c[0] = TCALL(.op = T_ADD_H, .fd_or_freq = fds[0], .events = VIR_EVENT_HANDLE_READABLE,
	               .p = &p);
	off_thread(&s);
	int w = s.c[0].rc;
	assert_true(w > 0);
	virt_event_uv_counts(&n, NULL);
	assert_int_equal(n, before + 1);
	assert_int_equal(atomic_load(&p.fired), 0);
	assert_true(run_until(pred_tp_fired, &p, 1000));
	assert_int_equal(p.last_events, VIR_EVENT_HANDLE_READABLE);

	/* Update to nothing: quiet, even before the loop has applied it. */
	s = (struct tscript){.n = 1};
	s.c[0] = TCALL(.op = T_UPD_H, .id = w, .events = 0);
	off_thread(&s);
	atomic_store(&p.fired, 0);
	assert_int_equal(write(fds[1], "b", 1), 1);
	assert_false(run_until(pred_tp_fired, &p, 30));
	s.c[0].events = VIR_EVENT_HANDLE_READABLE;
	off_thread(&s);
	assert_true(run_until(pred_tp_fired, &p, 1000));

	/* Remove with data waiting: no callback, ff once, later, on the loop. */
	assert_int_equal(write(fds[1], "c", 1), 1);
	atomic_store(&p.fired, 0);
	s = (struct tscript){.n = 2};
	s.c[0] = TCALL(.op = T_REM_H, .id = w);
	s.c[1] = TCALL(.op = T_REM_H, .id = w);
	off_thread(&s);
	assert_int_equal(s.c[0].rc, 0);
	assert_int_equal(s.c[1].rc, -1);
	assert_int_equal(atomic_load(&p.freed), 0);
	settle();
	assert_int_equal(atomic_load(&p.freed), 1);
	assert_int_equal(atomic_load(&p.fired), 0);
	virt_event_uv_counts(&n, NULL);
	assert_int_equal(n, before);

	/* Added and removed before the loop ran: never polled, never fires, ff
	 * once on the loop thread. */
	struct tprobe q = {0};
	s = (struct tscript){.n = 2};
	s.c[0] = TCALL(.op = T_ADD_H, .fd_or_freq = fds[0], .events = VIR_EVENT_HANDLE_READABLE,
	               .p = &q);
	s.c[1] = TCALL(.op = T_REM_H, .id = -1);
	off_thread(&s);
	assert_true(s.c[0].rc > 0);
	assert_int_equal(s.c[1].rc, 0);
	assert_int_equal(atomic_load(&q.freed), 0);
	settle();
	assert_false(run_until(pred_tp_fired, &q, 30));
	assert_int_equal(atomic_load(&q.freed), 1);

	/* Updated before the loop applied the add: the update wins. */
	struct tprobe r = {0};
	s = (struct tscript){.n = 2};
	s.c[0] = TCALL(.op = T_ADD_H, .fd_or_freq = fds[0], .events = 0, .p = &r);
	s.c[1] = TCALL(.op = T_UPD_H, .id = -1, .events = VIR_EVENT_HANDLE_READABLE);
	off_thread(&s);
	w = s.c[0].rc;
	assert_true(w > 0);
	/* A second watch on the fd is refused, pending or not. */
	assert_int_equal(
	    virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, tp_handle_cb, &r, NULL), -1);
	assert_true(run_until(pred_tp_fired, &r, 1000));
	assert_int_equal(virEventRemoveHandle(w), 0); /* from the loop thread */
	settle();
	assert_int_equal(atomic_load(&r.freed), 1);

	/* Added off the loop, removed on the loop thread before it applied. */
	struct tprobe u = {0};
	assert_int_equal(write(fds[1], "d", 1), 1);
	s = (struct tscript){.n = 1};
	s.c[0] = TCALL(.op = T_ADD_H, .fd_or_freq = fds[0], .events = VIR_EVENT_HANDLE_READABLE,
	               .p = &u);
	off_thread(&s);
	assert_int_equal(virEventRemoveHandle(s.c[0].rc), 0);
	assert_int_equal(atomic_load(&u.freed), 0);
	settle();
	assert_false(run_until(pred_tp_fired, &u, 30));
	assert_int_equal(atomic_load(&u.freed), 1);

	assert_int_equal(atomic_load(&p.off_loop) + atomic_load(&q.off_loop) +
	                     atomic_load(&r.off_loop) + atomic_load(&u.off_loop),
	                 0);
	virt_event_uv_counts(&n, NULL);
	assert_int_equal(n, before);
	close(fds[0]);
	close(fds[1]);
}

static void test_uvloop_timeout_off_thread(void **state)
{
	(void)state;
	loop_tid = uv_thread_self();
	size_t before, n;
	virt_event_uv_counts(NULL, &before);

	struct tprobe p = {0};
	struct tscript s = {.n = 1};
	s.c[0] = TCALL(.op = T_ADD_T, .fd_or_freq = 10, .p = &p);
	off_thread(&s);
	int t = s.c[0].rc;
	assert_true(t > 0);
	assert_true(run_until(pred_tp_fired3, &p, 1000));

	/* Disabled from the thread: no more fires, even if already due. */
	s.c[0] = TCALL(.op = T_UPD_T, .id = t, .fd_or_freq = -1);
	off_thread(&s);
	atomic_store(&p.fired, 0);
	assert_false(run_until(pred_tp_fired, &p, 50));

	/* 0: every iteration. */
	s.c[0].fd_or_freq = 0;
	off_thread(&s);
	assert_true(run_until(pred_tp_fired3, &p, 1000));

	s.c[0] = TCALL(.op = T_REM_T, .id = t);
	off_thread(&s);
	assert_int_equal(s.c[0].rc, 0);
	assert_int_equal(atomic_load(&p.freed), 0);
	settle();
	assert_int_equal(atomic_load(&p.freed), 1);
	int fired = atomic_load(&p.fired);
	assert_false(run_until(pred_never, NULL, 30));
	assert_int_equal(atomic_load(&p.fired), fired);

	/* Added and removed before the loop ran: never fires, ff once. */
	struct tprobe q = {0};
	s = (struct tscript){.n = 2};
	s.c[0] = TCALL(.op = T_ADD_T, .fd_or_freq = 0, .p = &q);
	s.c[1] = TCALL(.op = T_REM_T, .id = -1);
	off_thread(&s);
	assert_int_equal(s.c[1].rc, 0);
	settle();
	assert_false(run_until(pred_tp_fired, &q, 30));
	assert_int_equal(atomic_load(&q.freed), 1);

	assert_int_equal(atomic_load(&p.off_loop) + atomic_load(&q.off_loop), 0);
	virt_event_uv_counts(NULL, &n);
	assert_int_equal(n, before);
}

/* The thread hammers add/update/remove while the loop runs (and dispatches)
 * in this thread: for TSan, and for "every ff exactly once, on the loop". */
struct hammer {
	int fd;
	int rounds;
	struct tprobe p;
	int adds;     /* thread-private until done */
	int failures; /* thread-private until done */
	atomic_int done;
};

static void hammer_thread(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < h->rounds; i++) {
		int w = virEventAddHandle(h->fd, VIR_EVENT_HANDLE_WRITABLE, tp_handle_cb, &h->p,
		                          tp_free);
		int t = virEventAddTimeout(i % 2 ? 0 : 1, tp_timeout_cb, &h->p, tp_free);
		if (w <= 0 || t <= 0) {
			h->failures++;
			continue;
		}
		h->adds += 2;
		if (i % 3 == 0)
			uv_sleep(1); /* let the loop apply and dispatch some */
		virEventUpdateHandle(w, 0);
		virEventUpdateTimeout(t, -1);
		virEventUpdateHandle(w, VIR_EVENT_HANDLE_WRITABLE);
		virEventUpdateTimeout(t, 0);
		if (i % 5 == 0)
			uv_sleep(1);
		if (virEventRemoveHandle(w) != 0 || virEventRemoveTimeout(t) != 0)
			h->failures++;
	}
	atomic_store(&h->done, 1);
}

static bool pred_hammer_done(void *arg)
{
	struct hammer *h = arg;
	return atomic_load(&h->done) && atomic_load(&h->p.freed) == h->adds;
}

static void test_uvloop_concurrent(void **state)
{
	(void)state;
	loop_tid = uv_thread_self();
	size_t hb, tb, ha, ta;
	virt_event_uv_counts(&hb, &tb);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	struct hammer *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->fd = fds[1]; /* always writable: fires whenever it is polled */
	h->rounds = 300;
	uv_thread_t th;
	assert_int_equal(uv_thread_create(&th, hammer_thread, h), 0);
	bool ok = run_until(pred_hammer_done, h, 10000);
	assert_int_equal(uv_thread_join(&th), 0);
	settle();
	assert_true(ok);
	assert_int_equal(h->failures, 0);
	assert_int_equal(h->adds, 2 * h->rounds);
	assert_int_equal(atomic_load(&h->p.freed), h->adds);
	assert_int_equal(atomic_load(&h->p.off_loop), 0);
	assert_true(atomic_load(&h->p.fired) > 0);
	virt_event_uv_counts(&ha, &ta);
	assert_int_equal(ha, hb);
	assert_int_equal(ta, tb);
	close(fds[0]);
	close(fds[1]);
	free(h);
}

/* ---- connection --------------------------------------------------------- */

static void test_backoff_schedule(void **state)
{
	(void)state;
	const unsigned want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(virt_backoff_ms(i, 1000, 30000), want[i]);
	assert_int_equal(virt_backoff_ms(1000, 1000, 30000), 30000); /* no overflow */
	assert_int_equal(virt_backoff_ms(3, 20, 80), 80);
}

static void test_plain_check(void **state)
{
	(void)state;
	/* The polling interface the agent started with: no loop, no events. */
	struct virt *v = virt_new("test:///default");
	assert_non_null(v);
	assert_string_equal(virt_uri(v), "test:///default");
	assert_false(virt_health(v)->reachable);
	assert_true(virt_check(v));
	const struct virt_health *h = virt_health(v);
	assert_int_equal(h->cpus, 16);
	assert_int_equal(h->memory_kib, 3145728);
	assert_string_equal(h->cpu_model, "i686");
	assert_string_equal(h->error, "");
	assert_int_equal(h->connects, 1);
	assert_true(virt_check(v));
	assert_int_equal(virt_health(v)->connects, 1); /* still the same connection */
	assert_non_null(cached(v, "test"));
	virt_free(v);
}

static void test_inventory_file(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 1);
	/* First connect: every VM is news. */
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_RECONCILED, NULL), 3);
	size_t n;
	virt_vms(f->v, &n);
	assert_int_equal(n, 3);

	const struct virt_vm *a = cached(f->v, "alpha");
	assert_non_null(a);
	assert_string_equal(a->uuid, "11111111-2222-3333-4444-555555555555");
	assert_int_equal(a->state, VIRT_VM_RUNNING);
	assert_int_equal(a->vcpus, 2);
	assert_int_equal(a->memory_kib, 1048576);
	assert_int_equal(a->max_memory_kib, 2097152);
	assert_true(a->persistent);
	/* HA metadata written into the host's XML is read on open. */
	assert_true(a->ha);
	assert_int_equal(a->priority, 7);
	assert_int_equal(a->epoch, 4);

	const struct virt_vm *b = cached(f->v, "beta");
	assert_non_null(b);
	assert_int_equal(b->state, VIRT_VM_SHUTOFF);
	assert_string_equal(virt_vm_state_name(b->state), "shutoff");
	assert_int_equal(b->vcpus, 1);
	assert_int_equal(b->memory_kib, 524288);
	assert_true(b->persistent);
	assert_false(b->ha);
	assert_int_equal(b->priority, 0);
	assert_int_equal(b->epoch, 0);
	assert_string_equal(b->uuid, "22222222-2222-3333-4444-555555555555");

	const struct virt_vm *g = cached(f->v, "gamma");
	assert_non_null(g);
	assert_false(g->persistent);
	assert_int_equal(g->state, VIRT_VM_RUNNING);

	/* A fresh read agrees with the cache; reconcile finds nothing new. */
	struct virt_vm *list;
	assert_int_equal(virt_list_vms(f->v, &list, &n), 0);
	assert_int_equal(n, 3);
	free(list);
	assert_int_equal(virt_reconcile(f->v), 0);
}

static void test_host_info(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	struct virt_host h;
	assert_int_equal(virt_host_info(f->v, &h), 0);
	assert_int_equal(h.cpus, 8);
	assert_int_equal(h.mhz, 2400);
	assert_int_equal(h.memory_kib, 16777216);
	assert_string_equal(h.cpu_model, "meshvisor-cpu");
	/* The test driver's own free figure is a constant: estimated from the
	 * active VMs (alpha 1 GiB, gamma 256 MiB). */
	assert_true(h.free_estimated);
	assert_int_equal(h.free_kib, 16777216 - 1048576 - 262144);
	assert_true(h.have_load); /* local URI: /proc/loadavg */
	assert_true(h.load[0] >= 0.0);
	assert_int_equal(virt_health(f->v)->cpus, 8);
	assert_string_equal(virt_health(f->v)->cpu_model, "meshvisor-cpu");
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	char xml[512];
	struct virt_vm vm;
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("rt1", xml, sizeof(xml)), &vm, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_string_equal(vm.name, "rt1");
	assert_int_equal(strlen(vm.uuid), 36);
	assert_int_equal(vm.state, VIRT_VM_SHUTOFF);
	assert_int_equal(vm.vcpus, 2);
	assert_int_equal(vm.max_memory_kib, 262144);
	assert_true(vm.persistent);
	assert_non_null(cached(f->v, "rt1")); /* cache updated at once */

	assert_int_equal(virt_vm_start(f->v, "rt1", f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "rt1")->state, VIRT_VM_RUNNING);
	/* Start twice: libvirt's reason, as EINVAL. */
	assert_int_equal(virt_vm_start(f->v, "rt1", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "VM rt1 is already running");

	assert_int_equal(virt_vm_shutdown(f->v, vm.uuid, f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "rt1")->state, VIRT_VM_SHUTOFF);
	assert_int_equal(virt_vm_shutdown(f->v, "rt1", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "VM rt1 is not running");
	assert_int_equal(virt_vm_destroy(f->v, "rt1", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "VM rt1 is not running");

	assert_int_equal(virt_vm_start(f->v, "rt1", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_destroy(f->v, "rt1", f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "rt1")->state, VIRT_VM_SHUTOFF);

	assert_int_equal(virt_vm_undefine(f->v, "rt1", f->err, sizeof(f->err)), 0);
	assert_null(cached(f->v, "rt1"));
	assert_int_equal(virt_vm_find(f->v, "rt1", &vm, f->err, sizeof(f->err)), -ENOENT);
	assert_string_equal(f->err, "no VM named rt1 on this host");
}

static void test_bad_xml(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	size_t before, after;
	virt_vms(f->v, &before);
	struct virt_vm vm;
	assert_int_equal(
	    virt_vm_define(f->v, "<domain type='test'><name>x</name", &vm, f->err, sizeof(f->err)),
	    -EINVAL);
	assert_non_null(strstr(f->err, "cannot define VM: "));
	assert_non_null(strstr(f->err, "(domain_definition)")); /* libvirt's own parser */
	/* Well-formed, but not a domain libvirt accepts. */
	assert_int_equal(virt_vm_define(f->v, "<domain type='test'><name>y</name></domain>", &vm,
	                                f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_non_null(strstr(f->err, "cannot define VM: "));
	assert_int_equal(virt_vm_define(f->v, "", &vm, f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(virt_reconcile(f->v), 0); /* nothing was defined */
	virt_vms(f->v, &after);
	assert_int_equal(after, before);
}

static void test_define_existing(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	char xml[512];
	struct virt_vm vm;
	/* Same name: refused, the existing VM keeps its definition. */
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("alpha", xml, sizeof(xml)), &vm, f->err,
	                                sizeof(f->err)),
	                 -EEXIST);
	assert_string_equal(f->err, "a VM named alpha already exists on this host "
	                            "(UUID 11111111-2222-3333-4444-555555555555)");
	assert_int_equal(cached(f->v, "alpha")->vcpus, 2);
	/* Same UUID under a new name: refused. */
	assert_int_equal(virt_vm_define(f->v,
	                                "<domain type='test'><name>alpha2</name>"
	                                "<uuid>11111111-2222-3333-4444-555555555555</uuid>"
	                                "<memory>1024</memory><os><type>hvm</type></os></domain>",
	                                &vm, f->err, sizeof(f->err)),
	                 -EEXIST);
	assert_non_null(strstr(f->err, "already used by VM alpha"));
	assert_int_equal(virt_reconcile(f->v), 0);
}

static void test_unknown_vm(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	int (*ops[])(struct virt *, const char *, char *,
	             size_t) = {virt_vm_start, virt_vm_shutdown, virt_vm_destroy, virt_vm_undefine};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		f->err[0] = '\0';
		assert_int_equal(ops[i](f->v, "nope", f->err, sizeof(f->err)), -ENOENT);
		assert_string_equal(f->err, "no VM named nope on this host");
	}
	assert_int_equal(virt_vm_set_ha(f->v, "nope", true, 1, f->err, sizeof(f->err)), -ENOENT);
	assert_int_equal(virt_vm_find(f->v, "00000000-0000-0000-0000-000000000001", NULL, f->err,
	                              sizeof(f->err)),
	                 -ENOENT);
	assert_int_equal(virt_vm_find(f->v, "", NULL, f->err, sizeof(f->err)), -EINVAL);
	/* By UUID works like by name. */
	struct virt_vm vm;
	assert_int_equal(
	    virt_vm_find(f->v, "11111111-2222-3333-4444-555555555555", &vm, f->err, sizeof(f->err)),
	    0);
	assert_string_equal(vm.name, "alpha");
	assert_int_equal(virt_reconcile(f->v), 0);
}

static void test_undefine_running_refused(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	assert_int_equal(virt_vm_undefine(f->v, "alpha", f->err, sizeof(f->err)), -EBUSY);
	assert_string_equal(f->err, "VM alpha is running; destroy or shut it down first");
	const struct virt_vm *a = cached(f->v, "alpha");
	assert_true(a->persistent); /* not made transient behind our back */
	assert_int_equal(a->state, VIRT_VM_RUNNING);
	assert_int_equal(virt_reconcile(f->v), 0);
	/* Stopped, it goes. */
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_undefine(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_null(cached(f->v, "alpha"));
}

static void test_ambiguous_name(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	/* A VM named like alpha's UUID: that string now means two VMs. */
	char xml[512];
	struct virt_vm vm;
	assert_int_equal(
	    virt_vm_define(f->v,
	                   small_vm_xml("11111111-2222-3333-4444-555555555555", xml, sizeof(xml)),
	                   &vm, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(
	    virt_vm_start(f->v, "11111111-2222-3333-4444-555555555555", f->err, sizeof(f->err)),
	    -EEXIST);
	assert_non_null(strstr(f->err, "is ambiguous"));
	assert_non_null(strstr(f->err, vm.uuid));
	assert_non_null(strstr(f->err, "(alpha)"));
	assert_int_equal(cached(f->v, vm.name)->state, VIRT_VM_SHUTOFF); /* nothing changed */
	/* the cache's look-up says the same, word for word */
	char err2[sizeof(f->err)];
	assert_int_equal(
	    virt_vm_cached(f->v, "11111111-2222-3333-4444-555555555555", NULL, err2, sizeof(err2)),
	    -EEXIST);
	assert_string_equal(err2, f->err);
	/* Its own UUID still names it alone. */
	assert_int_equal(virt_vm_undefine(f->v, vm.uuid, f->err, sizeof(f->err)), 0);
}

/* virt_vm_cached: virt_vm_find's answers from the cache, no libvirt call
 * (a libvirtd that takes 1.5 s per call does not slow it). */
static void test_vm_cached(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	struct virt_vm vm, found;
	char err2[sizeof(f->err)];
	virt_test_set_op_delay(1500);
	uint64_t t0 = uv_hrtime();
	assert_int_equal(virt_vm_cached(f->v, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_string_equal(vm.uuid, "11111111-2222-3333-4444-555555555555");
	assert_true(vm.ha);
	assert_int_equal(virt_vm_cached(f->v, "11111111-2222-3333-4444-555555555555", &vm, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_string_equal(vm.name, "alpha");
	assert_int_equal(virt_vm_cached(f->v, "11111111-2222-3333-4444-55555555555A", &vm, f->err,
	                                sizeof(f->err)),
	                 -ENOENT);
	assert_int_equal(virt_vm_cached(f->v, "", &vm, f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(virt_vm_cached(f->v, "nope", &vm, f->err, sizeof(f->err)), -ENOENT);
	assert_true((uv_hrtime() - t0) / 1000000u < 500);
	virt_test_set_op_delay(0);
	assert_int_equal(virt_vm_find(f->v, "nope", &found, err2, sizeof(err2)), -ENOENT);
	assert_string_equal(f->err, err2);
	assert_int_equal(virt_vm_find(f->v, "alpha", &found, err2, sizeof(err2)), 0);
	assert_int_equal(virt_vm_cached(f->v, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_memory_equal(&vm, &found, sizeof(vm));
	/* libvirt unreachable: as virt_vm_find */
	virt_inject_close(f->v);
	assert_int_equal(virt_vm_cached(f->v, "alpha", &vm, f->err, sizeof(f->err)), -ENOTCONN);
	assert_int_equal(virt_vm_find(f->v, "alpha", &vm, err2, sizeof(err2)), -ENOTCONN);
	assert_string_equal(f->err, err2);
}

static void test_set_ha(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	char xml[512];
	struct virt_vm vm;
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("ha1", xml, sizeof(xml)), &vm, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_set_ha(f->v, "ha1", true, 10, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_set_epoch(f->v, "ha1", 3, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_find(f->v, "ha1", &vm, f->err, sizeof(f->err)), 0);
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 10);
	assert_int_equal(vm.epoch, 3); /* set_epoch kept the HA flag, and set_ha the epoch */
	assert_int_equal(
	    virt_vm_set_ha(f->v, "ha1", true, VIRT_PRIORITY_MAX + 1, f->err, sizeof(f->err)),
	    -EINVAL);
	assert_string_equal(f->err, "restart priority must be 0 to 1000, got 1001");
	assert_int_equal(virt_vm_set_ha(f->v, "ha1", true, -1, f->err, sizeof(f->err)), -EINVAL);

	/* What virsh sees, through a connection of its own. */
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, "ha1");
	assert_non_null(d);
	char *m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS,
	                               VIR_DOMAIN_AFFECT_CONFIG);
	assert_non_null(m);
	assert_string_equal(m, "<vm ha=\"yes\" priority=\"10\" epoch=\"3\"/>");
	free(m);
	char *dx = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	assert_non_null(strstr(dx,
	                       "<meshvisor:vm xmlns:meshvisor=\"https://meshvisor.dev/xmlns/vm/1\" "
	                       "ha=\"yes\" priority=\"10\" epoch=\"3\"/>"));
	free(dx);

	/* Running: live and persistent definitions both carry it. */
	assert_int_equal(virt_vm_start(f->v, "ha1", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_set_ha(f->v, "ha1", false, 5, f->err, sizeof(f->err)), 0);
	unsigned where[] = {VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_AFFECT_CONFIG};
	for (int i = 0; i < 2; i++) {
		m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS, where[i]);
		assert_non_null(m);
		assert_string_equal(m, "<vm ha=\"no\" priority=\"5\" epoch=\"3\"/>");
		free(m);
	}
	/* Edited behind our back (virsh metadata --config --live): the event
	 * brings it into the cache. */
	assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
	                                      "<vm ha='yes' priority='9' epoch='8'/>",
	                                      VIRT_META_PREFIX, VIRT_META_NS,
	                                      VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG),
	                 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "ha1", 2000));
	assert_true(cached(f->v, "ha1")->ha);
	assert_int_equal(cached(f->v, "ha1")->priority, 9);
	assert_int_equal(cached(f->v, "ha1")->epoch, 8);
	/* Unreadable values fall back to defaults; the VM stays listed. */
	assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
	                                      "<vm ha='maybe' priority='99999' epoch='-1'/>",
	                                      VIRT_META_PREFIX, VIRT_META_NS,
	                                      VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG),
	                 0);
	assert_int_equal(virt_vm_find(f->v, "ha1", &vm, f->err, sizeof(f->err)), 0);
	assert_false(vm.ha);
	assert_int_equal(vm.priority, 0);
	assert_int_equal(vm.epoch, 0);

	assert_int_equal(virt_vm_destroy(f->v, "ha1", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_undefine(f->v, "ha1", f->err, sizeof(f->err)), 0);
	virDomainFree(d);
	virConnectClose(c);
}

static void test_ha_survives_reopen(void **state)
{
	struct fx *f = *state;
	/* test:///default keeps its state while any connection is open: hold
	 * one, as libvirtd would hold the VMs while the agent restarts. */
	virConnectPtr holder = virConnectOpen("test:///default");
	assert_non_null(holder);
	struct virt *v1 = open_loop(f, "test:///default");
	char xml[512];
	assert_int_equal(virt_vm_define(v1, small_vm_xml("keep1", xml, sizeof(xml)), NULL, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_set_ha(v1, "keep1", true, 42, f->err, sizeof(f->err)), 0);
	virt_free(v1);
	settle();

	f->rec.n = 0;
	f->v = open_loop(f, "test:///default");
	const struct virt_vm *k = cached(f->v, "keep1");
	assert_non_null(k);
	assert_true(k->ha);
	assert_int_equal(k->priority, 42);
	assert_int_equal(virt_vm_undefine(f->v, "keep1", f->err, sizeof(f->err)), 0);
	virConnectClose(holder);
}

/* ---- events and reconcile ---------------------------------------------- */

static void test_lifecycle_event(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	char xml[512];
	f->rec.n = 0;
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("ev1", xml, sizeof(xml)), NULL, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_start(f->v, "ev1", f->err, sizeof(f->err)), 0);
	/* Events are delivered by the loop, never from inside the call. */
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "ev1"), 0);
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "ev1", 2000));
	assert_int_equal(cached(f->v, "ev1")->state, VIRT_VM_RUNNING);

	/* Someone else (virsh destroy) stops it: the event updates the cache. */
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, "ev1");
	assert_non_null(d);
	assert_int_equal(virDomainDestroy(d), 0);
	assert_int_equal(cached(f->v, "ev1")->state, VIRT_VM_RUNNING); /* not yet */
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "ev1", 2000));
	assert_int_equal(cached(f->v, "ev1")->state, VIRT_VM_SHUTOFF);

	/* ... and undefines it: gone from the cache. */
	assert_int_equal(virDomainUndefine(d), 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "ev1", 2000));
	assert_null(cached(f->v, "ev1"));
	virDomainFree(d);
	virConnectClose(c);
}

static void test_reconcile_catches_missed(void **state)
{
	struct fx *f = *state;
	/* No loop: no events at all, so only reconcile can see changes. */
	struct virt_options o = {.uri = "test:///default", .on_change = record, .ud = &f->rec};
	f->v = virt_new_opts(&o);
	assert_true(virt_check(f->v));
	assert_int_equal(virt_reconcile(f->v), 0);
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	char xml[512];
	virDomainPtr d = virDomainDefineXML(c, small_vm_xml("missed1", xml, sizeof(xml)));
	assert_non_null(d);
	assert_null(cached(f->v, "missed1"));
	f->rec.n = 0;
	assert_int_equal(virt_reconcile(f->v), 1);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_RECONCILED, "missed1"), 1);
	assert_non_null(cached(f->v, "missed1"));
	assert_int_equal(virDomainCreate(d), 0);
	assert_int_equal(virt_reconcile(f->v), 1);
	assert_int_equal(cached(f->v, "missed1")->state, VIRT_VM_RUNNING);
	assert_int_equal(virDomainDestroy(d), 0);
	assert_int_equal(virDomainUndefine(d), 0);
	f->rec.n = 0;
	assert_int_equal(virt_reconcile(f->v), 1);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_RECONCILED, "missed1"), 1);
	assert_null(cached(f->v, "missed1"));
	virDomainFree(d);
	virConnectClose(c);
}

static void test_periodic_reconcile(void **state)
{
	struct fx *f = *state;
	struct virt_options o = {.uri = "test:///default",
	                         .loop = &loop,
	                         .on_change = record,
	                         .ud = &f->rec,
	                         .reconcile_ms = 20};
	f->v = virt_new_opts(&o);
	assert_true(run_until(pred_reachable, f->v, 2000));
	assert_int_equal(cached(f->v, "test")->memory_kib, 2097152);
	/* A balloon change raises no lifecycle event: only the periodic
	 * reconcile can notice it. */
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, "test");
	assert_non_null(d);
	assert_int_equal(virDomainSetMemory(d, 1048576), 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_RECONCILED, "test", 2000));
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "test"), 0);
	assert_int_equal(cached(f->v, "test")->memory_kib, 1048576);
	/* Once seen, later passes are quiet. */
	f->rec.n = 0;
	assert_false(run_until(pred_never, NULL, 70));
	assert_int_equal(f->rec.n, 0);
	assert_int_equal(virDomainSetMemory(d, 2097152), 0);
	virDomainFree(d);
	virConnectClose(c);
}

static void on_tick(uv_timer_t *t)
{
	(*(unsigned *)t->data)++;
}

static bool pred_worker_idle(void *arg)
{
	return hvwork_inflight(arg) == 0;
}

/* The worker tests' scaffolding: a hypervisor worker on the test loop, a
 * 10 ms timer counting how often the loop ran meanwhile, and the
 * teardown (the struct virt first, then the worker once idle). */
struct worker_fx {
	struct hvwork *w;
	uv_timer_t tick;
	unsigned ticks;
	uint64_t t0; /* uv_hrtime at worker_tick_start */
};

static void worker_start(struct worker_fx *wf)
{
	struct hvwork_lane_config lanes[HVWORK_LANES];
	hvwork_default_config(lanes, 1);
	wf->w = hvwork_new(&loop, lanes);
	assert_non_null(wf->w);
	uv_timer_init(&loop, &wf->tick);
	wf->tick.data = &wf->ticks;
}

/* worker_start, and f->v on the fixture's host with it, connected and
 * its first listing done. */
static void worker_open(struct fx *f, struct worker_fx *wf)
{
	worker_start(wf);
	struct virt_options o = {.uri = f->uri, .loop = &loop, .worker = wf->w};
	f->v = virt_new_opts(&o);
	assert_true(run_until(pred_reachable, f->v, 2000));
	assert_true(run_until(pred_worker_idle, wf->w, 2000));
}

static void worker_tick_start(struct worker_fx *wf)
{
	wf->ticks = 0;
	wf->t0 = uv_hrtime();
	uv_timer_start(&wf->tick, on_tick, 10, 10);
}

/* Stops the counting; the milliseconds since worker_tick_start. */
static uint64_t worker_tick_stop(struct worker_fx *wf)
{
	uv_timer_stop(&wf->tick);
	return (uv_hrtime() - wf->t0) / 1000000u;
}

/* Stops the counting and checks that the loop kept ticking meanwhile (at
 * least half the 10 ms ticks: a busy machine) for at least min_ms. */
static void worker_tick_check(struct worker_fx *wf, const char *what, uint64_t min_ms)
{
	uint64_t took_ms = worker_tick_stop(wf);
	print_message("%s: done after %" PRIu64 " ms; the loop ticked %u times (10 ms timer) "
	              "meanwhile\n",
	              what, took_ms, wf->ticks);
	assert_true(took_ms >= min_ms);
	assert_true(wf->ticks >= took_ms / 10 / 2);
}

static void worker_stop(struct fx *f, struct worker_fx *wf)
{
	uv_close((uv_handle_t *)&wf->tick, NULL);
	virt_free(f->v);
	f->v = NULL;
	assert_true(run_until(pred_worker_idle, wf->w, 5000));
	hvwork_stop(wf->w);
	hvwork_free(wf->w);
	settle();
}

/* With a worker the periodic reconcile lists there: a libvirtd that takes
 * 1.5 s to list (the test hook) holds a worker thread, not the loop, whose
 * 10 ms timer keeps ticking meanwhile; the listing is applied on the loop
 * when it comes back. */
static void test_periodic_reconcile_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_start(&wf);
	struct virt_options o = {.uri = "test:///default",
	                         .loop = &loop,
	                         .on_change = record,
	                         .ud = &f->rec,
	                         .reconcile_ms = 100,
	                         .worker = wf.w};
	f->v = virt_new_opts(&o);
	assert_true(run_until(pred_reachable, f->v, 2000));
	/* the connect's second listing (virt_connect_finish) done */
	assert_true(run_until(pred_worker_idle, wf.w, 2000));
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, "test");
	assert_non_null(d);
	/* a balloon change: no event, only a reconcile sees it */
	assert_int_equal(virDomainSetMemory(d, 1048576), 0);
	virt_test_set_delay(1500);
	f->rec.n = 0;
	worker_tick_start(&wf);
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_RECONCILED, "test", 5000));
	uint64_t took_ms = worker_tick_stop(&wf);
	virt_test_set_delay(0);
	print_message("reconcile with a 1.5 s listing took %" PRIu64
	              " ms; the loop ticked %u times (10 ms timer) meanwhile\n",
	              took_ms, wf.ticks);
	assert_true(took_ms >= 1400);
	assert_true(wf.ticks >= took_ms / 10 / 2); /* at least half: a busy machine */
	assert_int_equal(cached(f->v, "test")->memory_kib, 1048576);
	assert_int_equal(virDomainSetMemory(d, 2097152), 0);
	virDomainFree(d);
	virConnectClose(c);
	worker_stop(f, &wf);
}

/* With a worker, host figures come from the last read there: a libvirtd
 * that takes 1.5 s to answer does not hold the caller (the loop), and the
 * fresh read it starts runs on the worker while the loop keeps ticking. */
static void test_host_info_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	struct virt_host hi;
	assert_int_equal(virt_host_info(f->v, &hi), 0); /* the first read: here */
	assert_int_equal(hi.cpus, 8);
	assert_true(hi.free_estimated);
	virt_test_set_delay(1500);
	worker_tick_start(&wf);
	assert_int_equal(virt_host_info(f->v, &hi), 0);
	uint64_t call_ms = (uv_hrtime() - wf.t0) / 1000000u;
	assert_int_equal(hi.cpus, 8);
	assert_int_equal(hi.memory_kib, 16777216);
	assert_int_equal(hvwork_inflight(wf.w), 1); /* the fresh read */
	assert_int_equal(virt_host_info(f->v, &hi), 0);
	assert_int_equal(hvwork_inflight(wf.w), 1); /* one at a time */
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	uint64_t read_ms = worker_tick_stop(&wf);
	virt_test_set_delay(0);
	print_message("host info with a 1.5 s libvirtd: the call took %" PRIu64
	              " ms, the read on the worker %" PRIu64 " ms, the loop ticked %u times\n",
	              call_ms, read_ms, wf.ticks);
	assert_true(call_ms < 500);
	assert_true(read_ms >= 1400);
	assert_true(wf.ticks >= read_ms / 10 / 2);
	worker_stop(f, &wf);
}

/* ---- losing libvirt ----------------------------------------------------- */

static bool pred_failures5(void *arg)
{
	return virt_health(arg)->failures >= 5;
}

static void test_unreachable(void **state)
{
	struct fx *f = *state;
	struct virt_options o = {
	    .uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
	    .loop = &loop,
	    .on_change = record,
	    .ud = &f->rec,
	    .backoff_min_ms = 20,
	    .backoff_max_ms = 80,
	};
	f->v = virt_new_opts(&o);
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	/* The first check connects synchronously (as the agent does before it
	 * serves); later checks leave reconnecting to the backoff timer. */
	assert_false(virt_check(f->v));
	assert_int_equal(virt_health(f->v)->failures, 1);
	assert_false(virt_check(f->v));
	assert_int_equal(virt_health(f->v)->failures, 1);
	const struct virt_health *h = virt_health(f->v);
	assert_false(h->reachable);
	assert_non_null(strstr(h->error, "cannot connect to libvirt: "));
	assert_non_null(strstr(h->error, "/nonexistent/libvirt-sock")); /* libvirt's own words */
	assert_int_equal(h->retry_ms, 20);

	/* Everything the agent asks fails cleanly, with the reason. */
	assert_int_equal(virt_vm_start(f->v, "web", f->err, sizeof(f->err)), -ENOTCONN);
	assert_non_null(strstr(f->err, "libvirt is not reachable at qemu+unix:///system"));
	assert_non_null(strstr(f->err, "/nonexistent/libvirt-sock"));
	assert_int_equal(virt_vm_define(f->v, "<domain/>", NULL, f->err, sizeof(f->err)),
	                 -ENOTCONN);
	assert_int_equal(virt_vm_set_ha(f->v, "web", true, 1, f->err, sizeof(f->err)), -ENOTCONN);
	struct virt_vm *list;
	size_t n;
	assert_int_equal(virt_list_vms(f->v, &list, &n), -ENOTCONN);
	assert_int_equal(n, 0);
	struct virt_host hi;
	assert_int_equal(virt_host_info(f->v, &hi), -ENOTCONN);
	assert_int_equal(virt_reconcile(f->v), -ENOTCONN);
	virt_vms(f->v, &n);
	assert_int_equal(n, 0);

	/* Retries back off: attempts at 0, 20, 60, 140, 220 ms. */
	assert_true(run_until(pred_failures5, f->v, 3000));
	assert_true(uv_now(&loop) - t0 >= 20 + 40 + 80 + 80);
	assert_int_equal(virt_health(f->v)->retry_ms, 80);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 0);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL), 0); /* never was */
	assert_int_equal(virt_health(f->v)->connects, 0);
}

struct wait_connects {
	struct virt *v;
	uint64_t n;
};

static bool pred_connects(void *arg)
{
	struct wait_connects *w = arg;
	return virt_health(w->v)->connects >= w->n && virt_health(w->v)->reachable;
}

/* A worker, and f->v on the fixture's host with it, recording changes
 * into f->rec, reconnecting after 20 ms; connected. */
static void worker_open_rec(struct fx *f, struct worker_fx *wf)
{
	worker_start(wf);
	struct virt_options o = {.uri = f->uri,
	                         .loop = &loop,
	                         .on_change = record,
	                         .ud = &f->rec,
	                         .backoff_min_ms = 20,
	                         .backoff_max_ms = 80,
	                         .worker = wf->w};
	f->v = virt_new_opts(&o);
	assert_true(run_until(pred_reachable, f->v, 2000));
}

/* With a worker, reconnecting opens the connection there and makes its
 * first listing there: a libvirtd that takes 0.5 s to accept (a stopped
 * or hung daemon takes forever, libvirt has no connect timeout) and 1 s
 * to list holds a worker thread while the loop keeps ticking; the agent
 * hears DISCONNECTED, then CONNECTED. */
static void test_reconnect_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open_rec(f, &wf);
	assert_int_equal(virt_health(f->v)->connects, 1);
	virt_test_set_open_delay(500);
	virt_test_set_delay(1000); /* the new connection's first listing */
	f->rec.n = 0;
	worker_tick_start(&wf);
	virt_inject_close(f->v);
	assert_false(virt_health(f->v)->reachable);
	struct wait_connects wc = {f->v, 2};
	assert_true(run_until(pred_connects, &wc, 5000));
	uint64_t took_ms = worker_tick_stop(&wf);
	virt_test_set_open_delay(0);
	virt_test_set_delay(0);
	print_message("reconnect to a libvirtd that takes 0.5 s to open and 1 s to list: %" PRIu64
	              " ms; the loop ticked %u times meanwhile\n",
	              took_ms, wf.ticks);
	/* the listing made there is in the cache before CONNECTED */
	assert_non_null(cached(f->v, "alpha"));
	assert_true(took_ms >= 1400);
	assert_true(wf.ticks >= took_ms / 10 / 2);
	assert_true(virt_health(f->v)->reachable);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL), 1);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 1);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	worker_stop(f, &wf);
}

/* A worker and f->v on it (worker_open_rec), a libvirtd that takes 1 s
 * for what set_delay slows down, and the connection lost (the loop's
 * ticks counted from then on). */
static void lose_slowly(struct fx *f, struct worker_fx *wf, void (*set_delay)(unsigned))
{
	worker_open_rec(f, wf);
	set_delay(1000);
	f->rec.n = 0;
	worker_tick_start(wf);
	virt_inject_close(f->v);
}

/* Issue 13: the teardown of a connection found lost (deregistering its
 * callbacks and closing it: a round trip each to a remote libvirtd, which
 * may be the one that stalls) runs on the worker. With a teardown that
 * takes 1 s, DISCONNECTED is told at once, the reconnect does not wait
 * for it, the loop keeps ticking until it is done, and the new
 * connection's events arrive (the old one's callbacks are gone). */
static void test_teardown_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	lose_slowly(f, &wf, virt_test_set_drop_delay);
	bool told = wait_change(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL, 3000);
	uint64_t told_ms = (uv_hrtime() - wf.t0) / 1000000u;
	struct wait_connects wc = {f->v, 2};
	bool back = run_until(pred_connects, &wc, 5000);
	uint64_t back_ms = (uv_hrtime() - wf.t0) / 1000000u;
	bool idle = run_until(pred_worker_idle, wf.w, 5000);
	virt_test_set_drop_delay(0);
	print_message("teardown that takes 1 s: DISCONNECTED after %" PRIu64
	              " ms, reconnected after %" PRIu64 " ms\n",
	              told_ms, back_ms);
	worker_tick_check(&wf, "teardown that takes 1 s", 1000);
	assert_true(told && back && idle);
	assert_true(told_ms < 500);
	assert_true(back_ms < 900);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL), 1);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 1);
	f->rec.n = 0;
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha", 3000));
	worker_stop(f, &wf);
}

/* A reconnect registers the connection's callbacks (keepalive, close,
 * the domain events: a round trip each to a remote libvirtd) on the
 * worker too: with a libvirtd that takes 1 s to register them, the loop
 * keeps ticking, and the new connection's events arrive. */
static void test_reconnect_registers_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	lose_slowly(f, &wf, virt_test_set_register_delay);
	struct wait_connects wc = {f->v, 2};
	assert_true(run_until(pred_connects, &wc, 5000));
	uint64_t took_ms = worker_tick_stop(&wf);
	virt_test_set_register_delay(0);
	print_message("reconnect to a libvirtd that takes 1 s to register the events: %" PRIu64
	              " ms; the loop ticked %u times meanwhile\n",
	              took_ms, wf.ticks);
	assert_true(took_ms >= 1000);
	assert_true(wf.ticks >= took_ms / 10 / 2);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 1);
	/* the callbacks are the new connection's: an event of it arrives */
	f->rec.n = 0;
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha", 3000));
	worker_stop(f, &wf);
}

struct export_rec {
	int calls, status;
	size_t n;
	bool have[2];
	bool alpha_named;
};

static void on_exported(struct virt *v, int status, char *const *xmls, size_t n, void *ud)
{
	(void)v;
	struct export_rec *r = ud;
	r->calls++;
	r->status = status;
	r->n = n;
	for (size_t i = 0; i < n && i < 2; i++)
		r->have[i] = xmls[i] != NULL;
	r->alpha_named = n > 0 && xmls[0] != NULL && strstr(xmls[0], "<name>alpha</name>") != NULL;
}

static bool pred_exported(void *arg)
{
	return ((struct export_rec *)arg)->calls > 0;
}

/* HA replication's reads on the worker: one definition per key (NULL for
 * a VM that is not there), on the loop afterwards; -EBUSY while another
 * worker call on the connection runs; -ENOTSUP without a worker. */
static void test_export_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	const char *keys[] = {"11111111-2222-3333-4444-555555555555", "no-such-vm"};
	struct export_rec r = {0};
	virt_test_set_delay(300); /* (only listings and host reads: the call stays busy) */
	struct virt_host hi;
	assert_int_equal(virt_host_info(f->v, &hi), 0); /* the first read: here */
	assert_int_equal(virt_host_info(f->v, &hi), 0); /* a fresh one on the worker */
	assert_int_equal(virt_vm_export_xml_async(f->v, keys, 2, on_exported, &r), -EBUSY);
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	virt_test_set_delay(0);
	assert_int_equal(virt_vm_export_xml_async(f->v, keys, 2, on_exported, &r), 0);
	assert_int_equal(r.calls, 0); /* not before the loop runs */
	assert_true(run_until(pred_exported, &r, 5000));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 2);
	assert_true(r.have[0] && r.alpha_named);
	assert_false(r.have[1]);
	worker_stop(f, &wf);
	struct virt *plain = virt_new(f->uri);
	assert_true(virt_check(plain));
	assert_int_equal(virt_vm_export_xml_async(plain, keys, 2, on_exported, &r), -ENOTSUP);
	virt_free(plain);
}

struct start_rec {
	int calls, status, rc;
	char err[256];
};

static void on_started(struct virt *v, int status, int rc, const char *err, void *ud)
{
	(void)v;
	struct start_rec *r = ud;
	r->calls++;
	r->status = status;
	r->rc = rc;
	snprintf(r->err, sizeof(r->err), "%s", err);
}

static bool pred_started(void *arg)
{
	return ((struct start_rec *)arg)->calls > 0;
}

struct alpha_idle {
	struct virt *v;
	struct hvwork *w;
};

static bool pred_alpha_running_idle(void *arg)
{
	struct alpha_idle *a = arg;
	return cached(a->v, "alpha")->state == VIRT_VM_RUNNING && hvwork_inflight(a->w) == 0;
}

/* A crash restart's start on the worker's critical lane: done on the
 * loop with virt_vm_start's result; the lifecycle event refreshes the
 * cache; an unknown VM is -ENOENT with the reason. */
static void test_start_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_SHUTOFF);
	struct start_rec r = {0};
	assert_int_equal(virt_vm_start_async(f->v, "alpha", HVWORK_CRITICAL, on_started, &r), 0);
	assert_int_equal(virt_vm_start_async(f->v, "alpha", HVWORK_CRITICAL, on_started, &r),
	                 -EBUSY); /* one worker call on the connection at a time */
	assert_true(run_until(pred_started, &r, 5000));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(hvwork_lane_inflight(wf.w, HVWORK_CRITICAL), 0);
	/* the event's read (on the worker, a call on the connection too) */
	struct alpha_idle ai = {f->v, wf.w};
	assert_true(run_until(pred_alpha_running_idle, &ai, 5000));
	memset(&r, 0, sizeof(r));
	assert_int_equal(virt_vm_start_async(f->v, "nope", HVWORK_CRITICAL, on_started, &r), 0);
	assert_true(run_until(pred_started, &r, 5000));
	assert_int_equal(r.rc, -ENOENT);
	assert_non_null(strstr(r.err, "no VM named nope"));
	worker_stop(f, &wf);
}

struct destroy_rec {
	int calls, status;
	int rc[4];
	enum virt_vm_state alpha_state; /* in the cache when done ran */
	enum virt_stop_reason alpha_why;
	bool gamma_cached, beta_cached;
	bool undefined[4];
};

static void on_destroyed(struct virt *v, int status, struct virt_destroy_item *items, size_t n,
                         void *ud)
{
	struct destroy_rec *r = ud;
	r->calls++;
	r->status = status;
	for (size_t i = 0; i < n && i < 4; i++) {
		r->rc[i] = items[i].rc;
		r->undefined[i] = items[i].undefined;
	}
	const struct virt_vm *a = cached(v, "alpha");
	r->alpha_state = a != NULL ? a->state : VIRT_VM_OTHER;
	r->alpha_why = a != NULL ? a->stop_reason : VIRT_STOP_NONE;
	r->gamma_cached = cached(v, "gamma") != NULL;
	r->beta_cached = cached(v, "beta") != NULL;
}

static bool pred_destroyed(void *arg)
{
	return ((struct destroy_rec *)arg)->calls > 0;
}

/* A fence's destroys on the worker (ha.c): each VM destroyed only while
 * active below its epoch, read on the worker; the cache has the outcome
 * (and on_change ran) before done; slow destroys (the test hook, 300 ms
 * each) hold a worker thread while the loop's 10 ms timer ticks on; a
 * worker call in flight on the connection does not refuse them; a stale
 * copy is undefined once stopped, only below its epoch. */
static void test_destroy_on_worker(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_start(&wf);
	struct virt_options o = {
	    .uri = f->uri, .loop = &loop, .on_change = record, .ud = &f->rec, .worker = wf.w};
	f->v = virt_new_opts(&o);
	assert_true(run_until(pred_reachable, f->v, 2000));
	assert_true(run_until(pred_worker_idle, wf.w, 2000));
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
	assert_non_null(cached(f->v, "gamma"));
	struct virt_destroy_item it[4];
	memset(it, 0, sizeof(it));
	assert_int_equal(virt_vm_destroy_async(f->v, it, 0, HVWORK_CRITICAL, on_destroyed, NULL),
	                 -EINVAL);
	/* alpha runs at epoch 4: not below 4, left alone (and not undefined) */
	snprintf(it[0].key, sizeof(it[0].key), "11111111-2222-3333-4444-555555555555");
	it[0].below_epoch = 4;
	it[0].undefine = true;
	struct destroy_rec r = {0};
	assert_int_equal(virt_vm_destroy_async(f->v, it, 1, HVWORK_CRITICAL, on_destroyed, &r), 0);
	assert_true(run_until(pred_destroyed, &r, 5000));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.rc[0], 0);
	assert_false(r.undefined[0]);
	assert_int_equal(r.alpha_state, VIRT_VM_RUNNING);
	it[0].undefine = false;
	/* below 5: destroyed; beta is shut off (a stale copy: undefined),
	 * the third is not there, gamma (transient, any epoch) destroyed and
	 * gone */
	it[0].below_epoch = 5;
	snprintf(it[1].key, sizeof(it[1].key), "22222222-2222-3333-4444-555555555555");
	it[1].below_epoch = UINT64_MAX;
	it[1].undefine = true;
	snprintf(it[2].key, sizeof(it[2].key), "44444444-2222-3333-4444-555555555555");
	it[2].below_epoch = UINT64_MAX;
	snprintf(it[3].key, sizeof(it[3].key), "33333333-2222-3333-4444-555555555555");
	it[3].below_epoch = UINT64_MAX;
	memset(&r, 0, sizeof(r));
	f->rec.n = 0;
	virt_test_set_delay(300); /* a fresh host read on the worker: a call in flight */
	struct virt_host hi;
	assert_int_equal(virt_host_info(f->v, &hi), 0);
	assert_int_equal(virt_host_info(f->v, &hi), 0);
	virt_test_set_destroy_delay(300);
	worker_tick_start(&wf);
	assert_int_equal(virt_vm_destroy_async(f->v, it, 4, HVWORK_CRITICAL, on_destroyed, &r), 0);
	assert_int_equal(r.calls, 0); /* not before the loop runs */
	assert_true(run_until(pred_destroyed, &r, 5000));
	uint64_t ms = worker_tick_stop(&wf);
	virt_test_set_destroy_delay(0);
	virt_test_set_delay(0);
	print_message("two destroys of 300 ms: %" PRIu64 " ms, the loop ticked %u times\n", ms,
	              wf.ticks);
	assert_true(ms >= 600);
	assert_true(wf.ticks >= 20); /* (on the loop: 1 tick in 600 ms) */
	assert_int_equal(r.status, 0);
	assert_int_equal(r.rc[0], 1);
	assert_int_equal(r.rc[1], 0);
	assert_true(r.undefined[1]);
	assert_false(r.beta_cached);
	assert_int_equal(r.rc[2], 0);
	assert_int_equal(r.rc[3], 1);
	assert_int_equal(r.alpha_state, VIRT_VM_SHUTOFF);
	assert_int_equal(r.alpha_why, VIRT_STOP_DESTROYED);
	assert_false(r.gamma_cached);
	assert_true(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha") >= 1);
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	worker_stop(f, &wf);
	struct virt *plain = virt_new(f->uri);
	assert_true(virt_check(plain));
	assert_int_equal(virt_vm_destroy_async(plain, it, 1, HVWORK_CRITICAL, on_destroyed, &r),
	                 -ENOTSUP);
	virt_free(plain);
}

/* ---- operator jobs on the worker (virt_vm_op_async) --------------------- */

struct op_rec {
	struct virt *v;
	int calls;
	int order[16]; /* tags in the order their done ran */
	int status[16];
	struct virt_op_result res[16];
	bool cache_at_done[16]; /* the cache already had the result (have_vm) */
	int next_tag;           /* >0: the done of tag next_after queues this tag next */
	int next_after;
	struct virt_op_req next_req;
};

struct op_tag {
	struct op_rec *r;
	int tag;
};

static void on_op(struct virt *v, int status, const struct virt_op_result *res, void *ud)
{
	struct op_tag *t = ud;
	struct op_rec *r = t->r;
	int i = r->calls++;
	if (i >= 16)
		return; /* counted only */
	r->order[i] = t->tag;
	r->status[i] = status;
	r->res[i] = *res;
	if (v != NULL && res->have_vm) {
		const struct virt_vm *c = cached(v, res->vm.name);
		r->cache_at_done[i] = c != NULL && c->state == res->vm.state &&
		                      c->desired == res->vm.desired && c->ha == res->vm.ha;
	}
	if (v != NULL && r->next_tag > 0 && t->tag == r->next_after) {
		static struct op_tag nt;
		nt = (struct op_tag){r, r->next_tag};
		char err[256];
		assert_int_equal(virt_vm_op_next(v, &r->next_req, on_op, &nt, err, sizeof(err)), 0);
		r->next_tag = 0;
	}
}

struct op_wait {
	struct op_rec *r;
	int n;
};

static bool pred_op_calls(void *arg)
{
	struct op_wait *w = arg;
	return w->r->calls >= w->n;
}

/* A start that takes 1.5 s (the test hook) runs on the worker: the loop
 * keeps ticking meanwhile, the cache still says shut off until the job is
 * done and says running when its done runs (the VM as read after the
 * start). */
static void test_op_async_keeps_loop(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	virt_test_set_op_delay(1500);
	struct op_rec r = {0};
	struct op_tag t = {&r, 1};
	struct virt_op_req req = {.kind = VIRT_OPK_START, .key = "alpha"};
	worker_tick_start(&wf);
	assert_int_equal(virt_vm_op_async(f->v, &req, on_op, &t, f->err, sizeof(f->err)), 0);
	assert_int_equal(r.calls, 0); /* never from inside the call */
	assert_int_equal(virt_vm_op_queued(f->v), 1);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_SHUTOFF);
	struct op_wait w = {&r, 1};
	assert_true(run_until(pred_op_calls, &w, 5000));
	virt_test_set_op_delay(0);
	worker_tick_check(&wf, "a start taking 1.5 s on the worker", 1400);
	assert_int_equal(r.status[0], 0);
	assert_int_equal(r.res[0].rc, 0);
	assert_true(r.res[0].have_vm);
	assert_int_equal(r.res[0].vm.state, VIRT_VM_RUNNING);
	assert_true(r.cache_at_done[0]);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
	assert_int_equal(virt_vm_op_queued(f->v), 0);
	worker_stop(f, &wf);
}

/* Errors come back as the synchronous calls give them, wording included;
 * refusals before anything is queued are the caller's at once. */
/* Review: an HA VM's start checked on the loop, then queued on the worker,
 * must not run once the host lost quorum: the worker refuses it (-EAGAIN)
 * while virt_block_ha_starts says why (the refusal carries it); a start
 * without needs_quorum (not an HA VM) goes ahead, and so does the HA one
 * once unblocked. */
static void test_op_start_blocked_without_quorum(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	struct op_rec r = {0};
	struct op_tag t1 = {&r, 1}, t2 = {&r, 2};
	struct virt_op_req ha_start = {
	    .kind = VIRT_OPK_START, .key = "alpha", .needs_quorum = true};
	virt_block_ha_starts("this host is not quorate");
	assert_int_equal(virt_vm_op_async(f->v, &ha_start, on_op, &t1, f->err, 256), 0);
	struct op_wait w = {&r, 1};
	assert_true(run_until(pred_op_calls, &w, 5000));
	assert_int_equal(r.res[0].rc, -EAGAIN);
	assert_string_equal(r.res[0].err, "cannot start VM alpha: this host is not quorate");
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_SHUTOFF);
	virt_block_ha_starts(NULL);
	assert_int_equal(virt_vm_op_async(f->v, &ha_start, on_op, &t2, f->err, 256), 0);
	w.n = 2;
	assert_true(run_until(pred_op_calls, &w, 5000));
	assert_int_equal(r.res[1].rc, 0);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
	worker_stop(f, &wf);
}

static void test_op_async_errors(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	struct op_rec r = {0};
	struct op_tag t1 = {&r, 1}, t2 = {&r, 2}, t3 = {&r, 3}, t4 = {&r, 4};
	struct virt_op_req start_running = {.kind = VIRT_OPK_START, .key = "alpha"};
	struct virt_op_req find_nope = {.kind = VIRT_OPK_FIND, .key = "nope"};
	struct virt_op_req undef_running = {.kind = VIRT_OPK_UNDEFINE, .key = "alpha"};
	struct virt_op_req define_dup = {
	    .kind = VIRT_OPK_DEFINE,
	    .xml = "<domain type='test'><name>alpha</name><memory>1024</memory>"
		   "<os><type>hvm</type></os></domain>"};
	assert_int_equal(virt_vm_op_async(f->v, &start_running, on_op, &t1, f->err, 256), 0);
	assert_int_equal(virt_vm_op_async(f->v, &find_nope, on_op, &t2, f->err, 256), 0);
	assert_int_equal(virt_vm_op_async(f->v, &undef_running, on_op, &t3, f->err, 256), 0);
	assert_int_equal(virt_vm_op_async(f->v, &define_dup, on_op, &t4, f->err, 256), 0);
	struct op_wait w = {&r, 4};
	assert_true(run_until(pred_op_calls, &w, 5000));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r.order[i], i + 1);
		assert_int_equal(r.status[i], 0);
	}
	assert_int_equal(r.res[0].rc, -EINVAL);
	assert_string_equal(r.res[0].err, "VM alpha is already running");
	assert_int_equal(r.res[1].rc, -ENOENT);
	assert_string_equal(r.res[1].err, "no VM named nope on this host");
	assert_int_equal(r.res[2].rc, -EBUSY);
	assert_non_null(strstr(r.res[2].err, "destroy or shut it down first"));
	assert_int_equal(r.res[3].rc, -EEXIST);
	assert_non_null(strstr(r.res[3].err, "a VM named alpha already exists"));
	/* refused at once, nothing queued: bad arguments ... */
	struct virt_op_req bad_prio = {.kind = VIRT_OPK_SET_HA, .key = "alpha", .priority = 5000};
	assert_int_equal(virt_vm_op_async(f->v, &bad_prio, on_op, &t1, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_non_null(strstr(f->err, "restart priority must be 0 to"));
	/* ... a full queue: "busy", and the jobs already queued still run */
	virt_test_set_op_delay(50);
	struct op_rec many = {0};
	struct op_tag mt = {&many, 0};
	int queued = 0, rc;
	while ((rc = virt_vm_op_async(f->v, &find_nope, on_op, &mt, f->err, sizeof(f->err))) == 0)
		queued++;
	virt_test_set_op_delay(0);
	assert_int_equal(rc, -EAGAIN);
	assert_non_null(strstr(f->err, "busy"));
	assert_int_equal(queued, VIRT_OPQ_MAX + 1); /* one in flight, the bound waiting */
	struct op_wait mw = {&many, queued};
	assert_true(run_until(pred_op_calls, &mw, 10000));
	assert_int_equal(many.res[0].rc, -ENOENT);
	/* the synchronous call reads the same as the worker's */
	assert_int_equal(virt_vm_start(f->v, "alpha", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, r.res[0].err);
	worker_stop(f, &wf);
	/* no worker: refused, the caller calls virt_vm_* itself */
	struct virt *plain = virt_new(f->uri);
	assert_true(virt_check(plain));
	assert_int_equal(virt_vm_op_async(plain, &find_nope, on_op, &t1, f->err, sizeof(f->err)),
	                 -ENOTSUP);
	virt_free(plain);
}

/* Jobs run one at a time, in the order asked; a done callback's
 * virt_vm_op_next runs before what others queued meanwhile; and every
 * done sees the cache already right. */
static void test_op_async_order(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	char xml[512];
	struct virt_op_req define = {.kind = VIRT_OPK_DEFINE,
	                             .xml = small_vm_xml("opq1", xml, sizeof(xml))};
	struct virt_op_req start = {.kind = VIRT_OPK_START, .key = "opq1"};
	struct virt_op_req set_ha = {
	    .kind = VIRT_OPK_SET_HA, .key = "opq1", .ha = true, .priority = 9, .group = "g1"};
	struct virt_op_req stop = {.kind = VIRT_OPK_DESTROY, .key = "opq1"};
	struct op_rec r = {0};
	/* tag 5 (a desired=stopped write) is queued by the define's done: it
	 * must run right after the define, before the start queued earlier */
	r.next_tag = 5;
	r.next_after = 1;
	r.next_req = (struct virt_op_req){
	    .kind = VIRT_OPK_SET_DESIRED, .key = "opq1", .desired = VIRT_DESIRED_STOPPED};
	struct op_tag t1 = {&r, 1}, t2 = {&r, 2}, t3 = {&r, 3}, t4 = {&r, 4};
	virt_test_set_op_delay(200);
	assert_int_equal(virt_vm_op_async(f->v, &define, on_op, &t1, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_async(f->v, &start, on_op, &t2, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_async(f->v, &set_ha, on_op, &t3, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_async(f->v, &stop, on_op, &t4, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_queued(f->v), 4);
	/* one at a time: never two on the general lane */
	unsigned most = 0;
	uint64_t t0 = uv_now(&loop);
	while (r.calls < 5 && uv_now(&loop) - t0 < 10000) {
		uv_run(&loop, UV_RUN_ONCE);
		unsigned n = hvwork_lane_inflight(wf.w, HVWORK_GENERAL);
		most = n > most ? n : most;
	}
	virt_test_set_op_delay(0);
	assert_int_equal(r.calls, 5);
	assert_true(most <= 1);
	int want[] = {1, 5, 2, 3, 4};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(r.order[i], want[i]);
		assert_int_equal(r.status[i], 0);
		assert_int_equal(r.res[i].rc, 0);
		assert_true(r.res[i].have_vm);
		assert_true(r.cache_at_done[i]);
	}
	assert_int_equal(r.res[0].vm.state, VIRT_VM_SHUTOFF);
	assert_int_equal(r.res[1].vm.desired, VIRT_DESIRED_STOPPED);
	assert_int_equal(r.res[2].vm.state, VIRT_VM_RUNNING);
	assert_true(r.res[3].vm.ha);
	assert_int_equal(r.res[3].vm.priority, 9);
	assert_string_equal(r.res[3].vm.group, "g1");
	assert_int_equal(r.res[4].vm.state, VIRT_VM_SHUTOFF);
	const struct virt_vm *c = cached(f->v, "opq1");
	assert_non_null(c);
	assert_int_equal(c->state, VIRT_VM_SHUTOFF);
	assert_true(c->ha);
	assert_int_equal(c->desired, VIRT_DESIRED_STOPPED);
	/* undefine on the worker: gone from the cache when done runs */
	struct virt_op_req undef = {.kind = VIRT_OPK_UNDEFINE, .key = "opq1"};
	struct op_tag t6 = {&r, 6};
	assert_int_equal(virt_vm_op_async(f->v, &undef, on_op, &t6, f->err, sizeof(f->err)), 0);
	struct op_wait w = {&r, 6};
	assert_true(run_until(pred_op_calls, &w, 5000));
	assert_int_equal(r.res[5].rc, 0);
	assert_false(r.res[5].have_vm);
	assert_null(cached(f->v, "opq1"));
	worker_stop(f, &wf);
}

/* Operators' commands never starve a crash restart: a start on the
 * critical lane refused -EBUSY because operator work holds the connection
 * gets it on its retry, before the operator commands queued behind; a
 * command's next step still runs first (it holds its turn). */
static void test_op_async_yields_to_restart(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	struct op_rec r = {0};
	struct op_tag t1 = {&r, 1}, t2 = {&r, 2}, t3 = {&r, 3};
	struct virt_op_req find = {.kind = VIRT_OPK_FIND, .key = "beta"};
	r.next_tag = 4; /* tag 1's next step */
	r.next_after = 1;
	r.next_req = find;
	virt_test_set_op_delay(100); /* the two steps: well within VIRT_OP_YIELD_MS */
	assert_int_equal(virt_vm_op_async(f->v, &find, on_op, &t1, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_async(f->v, &find, on_op, &t2, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_async(f->v, &find, on_op, &t3, f->err, sizeof(f->err)), 0);
	struct start_rec sr = {0};
	assert_int_equal(virt_vm_start_async(f->v, "alpha", HVWORK_CRITICAL, on_started, &sr),
	                 -EBUSY);
	/* tag 1 and its next step (4) run; then the queue waits for the retry */
	struct op_wait w = {&r, 2};
	assert_true(run_until(pred_op_calls, &w, 5000));
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.order[1], 4);
	assert_int_equal(virt_vm_start_async(f->v, "alpha", HVWORK_CRITICAL, on_started, &sr), 0);
	assert_true(run_until(pred_started, &sr, 5000));
	assert_int_equal(sr.rc, 0);
	/* and the operators' commands go on after it */
	w.n = 4;
	assert_true(run_until(pred_op_calls, &w, 5000));
	virt_test_set_op_delay(0);
	assert_int_equal(r.order[2], 2);
	assert_int_equal(r.order[3], 3);
	worker_stop(f, &wf);
}

/* A step queued in front from outside a done callback (a move's first
 * step, migration.c) is no command's next step: it waits for a crash
 * restart's retry like an operator's command, or parallel moves could keep
 * the connection from the restart. */
static void test_op_next_first_step_yields_to_restart(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	struct op_rec r = {0};
	struct op_tag t1 = {&r, 1}, t2 = {&r, 2};
	struct virt_op_req find = {.kind = VIRT_OPK_FIND, .key = "beta"};
	virt_test_set_op_delay(100);
	assert_int_equal(virt_vm_op_async(f->v, &find, on_op, &t1, f->err, sizeof(f->err)), 0);
	/* a move's first step, not from a done callback */
	assert_int_equal(virt_vm_op_next(f->v, &find, on_op, &t2, f->err, sizeof(f->err)), 0);
	struct start_rec sr = {0};
	assert_int_equal(virt_vm_start_async(f->v, "alpha", HVWORK_CRITICAL, on_started, &sr),
	                 -EBUSY);
	/* tag 1 runs; the first step waits for the retry */
	struct op_wait w = {&r, 1};
	assert_true(run_until(pred_op_calls, &w, 5000));
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	assert_int_equal(r.calls, 1);
	assert_int_equal(virt_vm_start_async(f->v, "alpha", HVWORK_CRITICAL, on_started, &sr), 0);
	assert_true(run_until(pred_started, &sr, 5000));
	assert_int_equal(sr.rc, 0);
	/* and the step goes on after it */
	w.n = 2;
	assert_true(run_until(pred_op_calls, &w, 5000));
	virt_test_set_op_delay(0);
	assert_int_equal(r.order[1], 2);
	worker_stop(f, &wf);
}

/* ---- events read on the worker ----------------------------------------- */

/* What the cache held for the VM when each notice about it came. */
struct ev_seen {
	struct rec rec;
	const char *vm;
	int n;
	enum virt_vm_state state[16];
	enum virt_stop_reason why[16];
	int evq_events, evq_reconciled; /* notices about the evq* VMs */
	int want;                       /* pred_seen waits for this many */
};

static void record_seen(struct virt *v, enum virt_change what, const char *name, void *ud)
{
	struct ev_seen *s = ud;
	record(v, what, name, &s->rec);
	if (name != NULL && strncmp(name, "evq", 3) == 0) {
		s->evq_events += what == VIRT_CHANGE_VM_EVENT;
		s->evq_reconciled += what == VIRT_CHANGE_VM_RECONCILED;
	}
	if (what != VIRT_CHANGE_VM_EVENT || name == NULL || strcmp(name, s->vm) != 0 || s->n >= 16)
		return;
	const struct virt_vm *vm = cached(v, s->vm);
	s->state[s->n] = vm != NULL ? vm->state : VIRT_VM_OTHER;
	s->why[s->n] = vm != NULL ? vm->stop_reason : VIRT_STOP_NONE;
	s->n++;
}

/* s->n has reached s->want */
static bool pred_seen(void *arg)
{
	const struct ev_seen *s = arg;
	return s->n >= s->want;
}

/* A worker, and a virt on the shared test:///default (other connections'
 * changes reach it as events, as an admin's virsh would) with ev1 defined
 * and running there; every event of that settled. */
struct ev_fx {
	struct worker_fx wf;
	struct ev_seen s;
	virConnectPtr c; /* the admin's connection */
	virDomainPtr d;  /* ev1 on it */
	struct virt *v;
};

static void ev_open(struct ev_fx *e)
{
	struct worker_fx *wf = &e->wf;
	struct ev_seen *s = &e->s;
	virConnectPtr *c = &e->c;
	virDomainPtr *d = &e->d;
	worker_start(wf);
	struct virt_options o = {.uri = "test:///default",
	                         .loop = &loop,
	                         .on_change = record_seen,
	                         .ud = s,
	                         .worker = wf->w};
	struct virt *v = e->v = virt_new_opts(&o);
	assert_true(run_until(pred_reachable, v, 2000));
	*c = virConnectOpen("test:///default");
	assert_non_null(*c);
	char xml[512];
	*d = virDomainDefineXML(*c, small_vm_xml(s->vm, xml, sizeof(xml)));
	assert_non_null(*d);
	assert_int_equal(virDomainCreate(*d), 0);
	s->want = 1;
	assert_true(run_until(pred_seen, s, 2000));
	assert_false(run_until(pred_never, NULL, 50));
	assert_true(run_until(pred_worker_idle, wf->w, 2000));
	assert_int_equal(cached(v, s->vm)->state, VIRT_VM_RUNNING);
	s->n = 0;
	s->rec.n = 0;
}

static void ev_close(struct ev_fx *e)
{
	virDomainDestroy(e->d);
	assert_int_equal(virDomainUndefine(e->d), 0);
	virDomainFree(e->d);
	virConnectClose(e->c);
	struct fx f = {.v = e->v};
	worker_stop(&f, &e->wf);
}

/* With a worker, an event's read of its VM runs there (a libvirtd that
 * answers in 800 ms, the test hook): the loop keeps ticking meanwhile, the
 * cache keeps the old state until the read is back, and the notice comes
 * once the cache has the new state and the event's stop reason. Events
 * that come while a read is in flight coalesce into one more read and
 * one more notice, applied after the first: the cache ends with the last
 * event's state and reason. An injected stop (the crash the test driver
 * cannot make) survives the late read of its destroy's event. */
static void test_event_read_on_worker(void **state)
{
	(void)state;
	struct ev_fx e = {.s = {.vm = "ev1"}};
	ev_open(&e);
	struct virt *v = e.v;
	struct ev_seen *s = &e.s;

	virt_test_set_delay(800);
	worker_tick_start(&e.wf);
	assert_int_equal(virDomainDestroy(e.d), 0); /* STOPPED, destroyed */
	assert_false(run_until(pred_never, NULL, 200));
	assert_int_equal(s->n, 0); /* the read is still on the worker */
	assert_int_equal(cached(v, "ev1")->state, VIRT_VM_RUNNING);
	s->want = 1;
	assert_true(run_until(pred_seen, s, 3000));
	worker_tick_check(&e.wf, "an event's read taking 0.8 s on the worker", 700);
	assert_int_equal(s->state[0], VIRT_VM_SHUTOFF);
	assert_int_equal(s->why[0], VIRT_STOP_DESTROYED);
	assert_int_equal(rec_count(&s->rec, VIRT_CHANGE_VM_EVENT, "ev1"), 1);

	/* three events: the first read starts at once, the other two wait
	 * for it as one entry */
	s->n = 0;
	s->rec.n = 0;
	assert_int_equal(virDomainCreate(e.d), 0);   /* STARTED */
	assert_int_equal(virDomainDestroy(e.d), 0);  /* STOPPED, destroyed */
	assert_int_equal(virDomainCreate(e.d), 0);   /* STARTED */
	assert_int_equal(virDomainShutdown(e.d), 0); /* STOPPED, shutdown */
	s->want = 2;
	assert_true(run_until(pred_seen, s, 5000));
	assert_true(run_until(pred_worker_idle, e.wf.w, 3000));
	assert_false(run_until(pred_never, NULL, 50));
	assert_int_equal(s->n, 2);
	assert_int_equal(rec_count(&s->rec, VIRT_CHANGE_VM_EVENT, "ev1"), 2);
	assert_int_equal(s->state[1], VIRT_VM_SHUTOFF);
	assert_int_equal(s->why[1], VIRT_STOP_SHUTDOWN);
	assert_int_equal(cached(v, "ev1")->stop_reason, VIRT_STOP_SHUTDOWN);

	/* an injected crash: at once; the destroy's event, read late, keeps it */
	assert_int_equal(virDomainCreate(e.d), 0);
	s->want = 3;
	assert_true(run_until(pred_seen, s, 3000));
	assert_int_equal(s->state[2], VIRT_VM_RUNNING);
	assert_int_equal(s->why[2], VIRT_STOP_NONE);
	virt_test_set_delay(300);
	virt_test_inject_stop(v, "ev1", VIRT_STOP_CRASHED);
	assert_int_equal(s->n, 4);
	assert_int_equal(s->why[3], VIRT_STOP_CRASHED);
	s->want = 5;
	assert_true(run_until(pred_seen, s, 3000));
	virt_test_set_delay(0);
	assert_int_equal(s->state[4], VIRT_VM_SHUTOFF);
	assert_int_equal(s->why[4], VIRT_STOP_CRASHED);
	ev_close(&e);
}

/* More VMs with events waiting than VIRT_EVQ_MAX: the further ones are
 * dropped (a warning) and a reconcile, once the queue has drained, brings
 * them into the cache (VIRT_CHANGE_VM_RECONCILED). */
static void test_event_queue_overflow(void **state)
{
	(void)state;
	struct ev_fx e = {.s = {.vm = "ev1"}};
	ev_open(&e);
	struct virt *v = e.v;
	struct ev_seen *s = &e.s;
	enum { N = VIRT_EVQ_MAX + 4 };
	virDomainPtr doms[N];
	char name[32], xml[512];
	virt_test_set_delay(300); /* the reads queue up behind the first */
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "evq%d", i);
		doms[i] = virDomainDefineXML(e.c, small_vm_xml(name, xml, sizeof(xml)));
		assert_non_null(doms[i]);
	}
	assert_false(run_until(pred_never, NULL, 100));
	virt_test_set_delay(0);
	assert_false(run_until(pred_never, NULL, 100));
	assert_true(run_until(pred_worker_idle, e.wf.w, 5000));
	assert_false(run_until(pred_never, NULL, 50));
	assert_true(run_until(pred_worker_idle, e.wf.w, 5000));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "evq%d", i);
		assert_non_null(cached(v, name));
	}
	int events = s->evq_events, reconciled = s->evq_reconciled;
	print_message("%d VMs defined at once: %d read for their event, %d by the reconcile\n", N,
	              events, reconciled);
	assert_int_equal(events, VIRT_EVQ_MAX + 1); /* the one in flight, and the queue */
	assert_int_equal(reconciled, N - events);
	for (int i = 0; i < N; i++) {
		assert_int_equal(virDomainUndefine(doms[i]), 0);
		virDomainFree(doms[i]);
	}
	ev_close(&e);
}

static bool pred_worker_busy(void *arg)
{
	return hvwork_inflight(arg) > 0;
}

/* An event's read in flight when the connection is lost and replaced is
 * dropped: the new connection's listing is newer. (The fixture's host
 * file gives every connection its own state: on the new one alpha runs
 * again; the late read, from the old one, says it is shut off.) */
static void test_event_read_dropped_on_reconnect(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open_rec(f, &wf);
	assert_true(run_until(pred_worker_idle, wf.w, 2000));
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	virt_test_set_delay(400);
	assert_true(run_until(pred_worker_busy, wf.w, 2000)); /* the event's read */
	f->rec.n = 0;
	virt_inject_close(f->v);
	struct wait_connects wc = {f->v, 2};
	assert_true(run_until(pred_connects, &wc, 5000));
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	virt_test_set_delay(0);
	settle();
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha"), 0);
	worker_stop(f, &wf);
}

/* Jobs still queued when the struct virt goes away are answered
 * -ECANCELED (v NULL); so is the one in flight when it comes back. */
static void test_op_async_cancel(void **state)
{
	struct op_rec r = {0};
	struct op_tag t1 = {&r, 1}, t2 = {&r, 2};
	struct virt_op_req find = {.kind = VIRT_OPK_FIND, .key = "alpha"};
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	virt_test_set_op_delay(300);
	assert_int_equal(virt_vm_op_async(f->v, &find, on_op, &t1, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_op_async(f->v, &find, on_op, &t2, f->err, sizeof(f->err)), 0);
	virt_free(f->v);
	f->v = NULL;
	assert_int_equal(r.calls, 1); /* the queued one, at once */
	assert_int_equal(r.order[0], 2);
	assert_int_equal(r.status[0], -ECANCELED);
	struct op_wait w = {&r, 2};
	assert_true(run_until(pred_op_calls, &w, 5000));
	virt_test_set_op_delay(0);
	assert_int_equal(r.order[1], 1);
	assert_int_equal(r.status[1], -ECANCELED);
	worker_stop(f, &wf);
}

/* Review: a migration's abort after a lost reservation must land before
 * the target's lease runs out. virt_vm_abort_job_async runs it on the
 * critical lane through its own reference on the connection: it does not
 * wait for the call in flight on the connection (here a host read that
 * takes 1.5 s on the general lane) as an operator job does (the
 * operators' queue starts nothing while any call is in flight). Its
 * answer comes while that read is still running; errors as the
 * synchronous abort gives them. */
struct abort_rec {
	struct hvwork *w;
	unsigned calls;
	int status, rc;
	unsigned general_inflight; /* general-lane jobs in flight at the answer */
};

static void on_abort(struct virt *v, int status, const struct virt_op_result *res, void *ud)
{
	struct abort_rec *r = ud;
	(void)v;
	r->calls++;
	r->status = status;
	r->rc = res->rc;
	r->general_inflight = hvwork_lane_inflight(r->w, HVWORK_GENERAL);
}

static bool pred_abort_answered(void *arg)
{
	return ((struct abort_rec *)arg)->calls > 0;
}

static void test_abort_job_async_does_not_wait(void **state)
{
	struct fx *f = *state;
	struct worker_fx wf;
	worker_open(f, &wf);
	struct abort_rec r = {.w = wf.w};
	assert_int_equal(virt_vm_abort_job_async(f->v, "nosuch", HVWORK_CRITICAL, on_abort, &r,
	                                         f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(r.calls, 0); /* never from inside the call */
	assert_true(run_until(pred_abort_answered, &r, 5000));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.rc, -ENOENT);
	/* a host read on the worker holds the connection for 1.5 s */
	virt_test_set_delay(1500);
	struct virt_host hi;
	assert_int_equal(virt_host_info(f->v, &hi), 0);
	assert_int_equal(virt_host_info(f->v, &hi), 0);
	assert_int_equal(hvwork_lane_inflight(wf.w, HVWORK_GENERAL), 1);
	memset(&r, 0, sizeof(r));
	r.w = wf.w;
	assert_int_equal(virt_vm_abort_job_async(f->v, "alpha", HVWORK_CRITICAL, on_abort, &r,
	                                         f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_op_queued(f->v), 0); /* not an operator job */
	assert_true(run_until(pred_abort_answered, &r, 5000));
	assert_int_equal(r.status, 0);
	assert_true(r.rc == -EINVAL || r.rc == -ENOTSUP); /* alpha runs no job */
	assert_int_equal(r.general_inflight, 1);          /* the host read: still running */
	assert_true(run_until(pred_worker_idle, wf.w, 5000));
	virt_test_set_delay(0);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
	worker_stop(f, &wf);
}

static void test_lost_and_reconnect(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	assert_int_equal(virt_health(f->v)->connects, 1);
	f->rec.n = 0;
	uint64_t t0 = uv_now(&loop);
	virt_inject_close(f->v);
	/* Health flips at once; the agent keeps answering from the cache. */
	const struct virt_health *h = virt_health(f->v);
	assert_false(h->reachable);
	assert_string_equal(h->error, "libvirt connection closed (end of file from libvirt)");
	/* The notice itself comes from the loop, never from inside libvirt's
	 * close callback (where the agent could not touch the connection). */
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL), 0);
	size_t n;
	virt_vms(f->v, &n);
	assert_int_equal(n, 3);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), -ENOTCONN);
	assert_non_null(strstr(f->err, "connection closed"));
	virt_inject_close(f->v); /* a second notice changes nothing */
	assert_true(wait_change(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL, 1000));
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_DISCONNECTED, NULL), 1);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 0);
	assert_int_equal(virt_health(f->v)->retry_ms, 20);

	/* Teardown on the next iteration, then the first retry after 20 ms. */
	struct wait_connects w = {f->v, 2};
	assert_true(run_until(pred_connects, &w, 2000));
	assert_true(uv_now(&loop) - t0 >= 20);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_CONNECTED, NULL), 1);
	assert_string_equal(virt_health(f->v)->error, "");
	assert_int_equal(virt_health(f->v)->failures, 0);
	/* The reopened file is the same host: nothing to report. */
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_RECONCILED, NULL), 0);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
}

static void test_free_releases_loop_handles(void **state)
{
	(void)state;
	size_t h0, t0;
	settle();
	virt_event_uv_counts(&h0, &t0);
	struct fx f = {0};
	struct virt *v = open_loop(&f, "test:///default");
	virt_free(v);
	settle();
	size_t h1, t1;
	virt_event_uv_counts(&h1, &t1);
	assert_int_equal(h1, h0);
	assert_int_equal(t1, t0);
}

/* ---- migration ---------------------------------------------------------- */
/*
 * The test driver cannot migrate (virDomainMigrateToURI3 is refused) and
 * never has a job, so here: parameter building, the refusals that come
 * before libvirt, job stats/abort on a VM with no job, and the "where is
 * it" reconciliation. The live migration itself, job progress while it
 * runs, abort and a link cut are in tests/lab/test_lab_migrate.py.
 */

static void test_migrate_build(void **state)
{
	(void)state;
	char err[256];
	void *prm;
	int n;
	unsigned flags;
	struct virt_migrate_params p = {.dest_uri = "qemu+tcp://10.77.0.2/system"};
	assert_int_equal(virt_migrate_build(&p, &prm, &n, &flags, err, sizeof(err)), 0);
	assert_int_equal(flags, VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER |
	                            VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE |
	                            VIR_MIGRATE_AUTO_CONVERGE);
	assert_int_equal(n, 0); /* nothing given: libvirt's defaults */
	virt_migrate_params_free(prm, n);

	p.migrate_uri = "tcp://10.77.0.2";
	p.bandwidth_mib_s = 2;
	p.max_downtime_ms = 50; /* set on the domain, not a parameter */
	p.tls = true;
	assert_int_equal(virt_migrate_build(&p, &prm, &n, &flags, err, sizeof(err)), 0);
	assert_true(flags & VIR_MIGRATE_TLS);
	assert_true(flags & VIR_MIGRATE_PEER2PEER);
	assert_int_equal(n, 2);
	const char *uri = NULL;
	unsigned long long bw = 0;
	assert_int_equal(virTypedParamsGetString(prm, n, VIR_MIGRATE_PARAM_URI, &uri), 1);
	assert_string_equal(uri, "tcp://10.77.0.2");
	assert_int_equal(virTypedParamsGetULLong(prm, n, VIR_MIGRATE_PARAM_BANDWIDTH, &bw), 1);
	assert_int_equal(bw, 2);
	virt_migrate_params_free(prm, n);

	/* refusals */
	struct virt_migrate_params bad[] = {
	    {.dest_uri = NULL},
	    {.dest_uri = ""},
	    {.dest_uri = "10.77.0.2"},
	    {.dest_uri = "qemu+tcp://h2/system", .migrate_uri = "10.77.0.2"},
	    {.dest_uri = "qemu+tcp://h2/system", .migrate_uri = "tcp://"},
	    {.dest_uri = "qemu+tcp://h2/system", .migrate_uri = "tcp://:49152"},
	    {.dest_uri = "qemu+tcp://h2/system", .bandwidth_mib_s = (uint64_t)1 << 40},
	    {.dest_uri = "qemu+tcp://h2/system", .max_downtime_ms = 86400000},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(virt_migrate_build(&bad[i], &prm, &n, &flags, err, sizeof(err)),
		                 -EINVAL);
		assert_true(err[0] != '\0');
		assert_null(prm);
	}
	assert_int_equal(virt_migrate_build(NULL, &prm, &n, &flags, err, sizeof(err)), -EINVAL);
}

static void test_migrate_refused(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	struct virt_migrate_params p = {.dest_uri = "test:///default", .bandwidth_mib_s = 1};
	struct virt_migrate_result r;
	assert_int_equal(virt_vm_migrate(f->v, "nosuch", &p, &r, f->err, sizeof(f->err)), -ENOENT);
	assert_string_equal(f->err, "no VM named nosuch on this host");
	assert_int_equal(virt_vm_migrate(f->v, "beta", &p, &r, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "not running"));
	struct virt_migrate_params nodest = {.dest_uri = NULL};
	assert_int_equal(virt_vm_migrate(f->v, "alpha", &nodest, &r, f->err, sizeof(f->err)),
	                 -EINVAL);
	/* The test driver cannot migrate: libvirt's refusal, the VM stays. */
	int rc = virt_vm_migrate(f->v, "alpha", &p, &r, f->err, sizeof(f->err));
	assert_true(rc < 0);
	assert_non_null(strstr(f->err, "migration of VM alpha failed: "));
	assert_string_equal(r.uuid, "11111111-2222-3333-4444-555555555555");
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(f->v, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_RUNNING);
	/* Unreachable libvirt: a clean -ENOTCONN. */
	struct virt *dead = virt_new("qemu+unix:///system?socket=/nonexistent/mv-sock");
	assert_non_null(dead);
	assert_int_equal(virt_vm_migrate(dead, "alpha", &p, &r, f->err, sizeof(f->err)), -ENOTCONN);
	virt_free(dead);
}

static void test_job_no_job(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	struct virt_job_stats js;
	int rc = virt_vm_job_stats(f->v, "alpha", false, &js, f->err, sizeof(f->err));
	/* libvirt 9's test driver reports "no job"; a driver without job
	 * statistics would say -ENOTSUP. Either way: clean, nothing made up. */
	assert_true(rc == 0 || rc == -ENOTSUP);
	if (rc == 0) {
		assert_int_equal(js.state, VIRT_JOB_NONE);
		assert_int_equal(js.data_total, 0);
		assert_false(js.have_downtime);
	}
	assert_int_equal(virt_vm_job_stats(f->v, "nosuch", false, &js, f->err, sizeof(f->err)),
	                 -ENOENT);
	rc = virt_vm_abort_job(f->v, "alpha", f->err, sizeof(f->err));
	assert_true(rc == -EINVAL || rc == -ENOTSUP);
	if (rc == -EINVAL)
		assert_string_equal(f->err, "VM alpha has no job running (no migration to abort)");
	assert_int_equal(virt_vm_abort_job(f->v, "nosuch", f->err, sizeof(f->err)), -ENOENT);
	/* nothing happened to the VM */
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
}

/* test:///default is one host shared by every connection of this process
 * (while one stays open), so a short-lived connection to its URI reaches
 * the same state: where() uses it as the target. */
static void test_where(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	virConnectPtr keep = virConnectOpen("test:///default");
	assert_non_null(keep);
	struct virt_where w;
	const char *dst = "test:///default";

	/* running here only */
	assert_int_equal(virt_vm_where(f->v, "alpha", dst, &w, f->err, sizeof(f->err)), 0);
	assert_int_equal(w.where, VIRT_LOC_SOURCE);
	assert_int_equal(w.source, VIRT_PRESENCE_ACTIVE);
	assert_int_equal(w.dest, VIRT_PRESENCE_ABSENT);
	assert_int_equal(w.source_state, VIRT_VM_RUNNING);
	assert_string_equal(w.uuid, "11111111-2222-3333-4444-555555555555");
	assert_string_equal(virt_location_name(w.where), "source");
	/* stopped here only */
	assert_int_equal(virt_vm_where(f->v, "beta", dst, &w, f->err, sizeof(f->err)), 0);
	assert_int_equal(w.where, VIRT_LOC_STOPPED_SOURCE);
	/* nowhere */
	assert_int_equal(virt_vm_where(f->v, "nosuch", dst, &w, f->err, sizeof(f->err)), 0);
	assert_int_equal(w.where, VIRT_LOC_NEITHER);
	assert_int_equal(w.source, VIRT_PRESENCE_ABSENT);
	/* target unreachable: the source's side is known, the verdict is not */
	assert_int_equal(virt_vm_where(f->v, "alpha",
	                               "qemu+unix:///system?socket=/nonexistent/mv-sock", &w,
	                               f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(w.where, VIRT_LOC_UNKNOWN);
	assert_int_equal(w.source, VIRT_PRESENCE_ACTIVE);
	assert_int_equal(w.dest, VIRT_PRESENCE_UNKNOWN);
	assert_non_null(strstr(w.dest_error, "cannot connect"));
	assert_int_equal(virt_vm_where(f->v, "", dst, &w, f->err, sizeof(f->err)), -EINVAL);

	/* alpha moved to test:///default by hand (as a migration leaves it):
	 * defined and started there, stopped and undefined here */
	char *axml = NULL;
	assert_int_equal(virt_vm_export_xml(f->v, "alpha", &axml, f->err, sizeof(f->err)), 0);
	virDomainPtr moved = virDomainDefineXML(keep, axml);
	free(axml);
	assert_non_null(moved);
	assert_int_equal(virDomainCreate(moved), 0);
	virDomainFree(moved);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_undefine(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_where(f->v, "11111111-2222-3333-4444-555555555555", dst, &w,
	                               f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(w.where, VIRT_LOC_DEST);
	assert_int_equal(w.source, VIRT_PRESENCE_ABSENT);
	assert_int_equal(w.dest, VIRT_PRESENCE_ACTIVE);
	assert_true(w.dest_persistent);
	assert_int_equal(w.dest_state, VIRT_VM_RUNNING);

	/* the same definition on both, running nowhere */
	virDomainPtr d = virDomainLookupByName(keep, "alpha");
	assert_non_null(d);
	assert_int_equal(virDomainDestroy(d), 0);
	char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	assert_non_null(xml);
	struct virt_vm vm;
	assert_int_equal(virt_vm_define(f->v, xml, &vm, f->err, sizeof(f->err)), 0);
	free(xml);
	assert_int_equal(virt_vm_where(f->v, "alpha", dst, &w, f->err, sizeof(f->err)), 0);
	assert_int_equal(w.where, VIRT_LOC_DEFINED_BOTH);
	/* stopped on the target only */
	assert_int_equal(virt_vm_undefine(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_where(f->v, "11111111-2222-3333-4444-555555555555", dst, &w,
	                               f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(w.where, VIRT_LOC_STOPPED_DEST);
	/* leave test:///default as it was */
	assert_int_equal(virDomainUndefine(d), 0);
	virDomainFree(d);
	virConnectClose(keep);
}

/* The exported XML carries our metadata and can be defined elsewhere. */
static void test_export_xml(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	char *xml = NULL;
	assert_int_equal(virt_vm_export_xml(f->v, "alpha", &xml, f->err, sizeof(f->err)), 0);
	assert_non_null(xml);
	assert_non_null(strstr(xml, VIRT_META_NS));
	assert_non_null(strstr(xml, "epoch=\"4\""));
	free(xml);
	assert_int_equal(virt_vm_export_xml(f->v, "nosuch", &xml, f->err, sizeof(f->err)), -ENOENT);
	assert_null(xml);
}

/* ---- anti-affinity group ------------------------------------------------ */

static char *meta_of(virConnectPtr c, const char *name)
{
	virDomainPtr d = virDomainLookupByName(c, name);
	assert_non_null(d);
	char *m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS,
	                               VIR_DOMAIN_AFFECT_CONFIG);
	virDomainFree(d);
	return m;
}

static void test_group(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	char xml[512];
	struct virt_vm vm;
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("grp1", xml, sizeof(xml)), &vm, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_string_equal(vm.group, ""); /* no element: no group */
	assert_int_equal(virt_vm_set_ha_group(f->v, "grp1", true, 10, "db", f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_set_epoch(f->v, "grp1", 3, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_find(f->v, "grp1", &vm, f->err, sizeof(f->err)), 0);
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 10);
	assert_int_equal(vm.epoch, 3);
	assert_string_equal(vm.group, "db"); /* set_epoch kept it */
	assert_string_equal(cached(f->v, "grp1")->group, "db");
	char *m = meta_of(c, "grp1");
	assert_non_null(m);
	assert_string_equal(m, "<vm ha=\"yes\" priority=\"10\" epoch=\"3\" group=\"db\"/>");
	free(m);

	/* set_ha keeps the group; NULL keeps it too; "" clears it. */
	assert_int_equal(virt_vm_set_ha(f->v, "grp1", false, 5, f->err, sizeof(f->err)), 0);
	assert_string_equal(cached(f->v, "grp1")->group, "db");
	assert_false(cached(f->v, "grp1")->ha);
	assert_int_equal(virt_vm_set_ha_group(f->v, "grp1", true, 6, NULL, f->err, sizeof(f->err)),
	                 0);
	assert_string_equal(cached(f->v, "grp1")->group, "db");
	assert_int_equal(cached(f->v, "grp1")->priority, 6);
	char g63[64];
	memset(g63, 'a', 63);
	g63[63] = '\0';
	g63[0] = 'Z';
	g63[1] = '.';
	g63[2] = '_';
	g63[3] = '-';
	g63[4] = '9';
	assert_int_equal(virt_vm_set_ha_group(f->v, "grp1", true, 6, g63, f->err, sizeof(f->err)),
	                 0);
	assert_string_equal(cached(f->v, "grp1")->group, g63);
	assert_int_equal(virt_vm_set_ha_group(f->v, "grp1", true, 6, "", f->err, sizeof(f->err)),
	                 0);
	assert_string_equal(cached(f->v, "grp1")->group, "");
	m = meta_of(c, "grp1");
	assert_string_equal(m, "<vm ha=\"yes\" priority=\"6\" epoch=\"3\"/>");
	free(m);

	/* Refused, nothing changed. */
	assert_int_equal(virt_vm_set_ha_group(f->v, "grp1", true, 6, "db", f->err, sizeof(f->err)),
	                 0);
	char g64[65];
	memset(g64, 'a', 64);
	g64[64] = '\0';
	assert_int_equal(virt_vm_set_ha_group(f->v, "grp1", false, 1, g64, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_string_equal(f->err, "anti-affinity group is longer than 63 characters");
	const char *bad[] = {"a b", "db;x", "d\"b", "<x>", "ü", "db/1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->err[0] = '\0';
		assert_int_equal(
		    virt_vm_set_ha_group(f->v, "grp1", false, 1, bad[i], f->err, sizeof(f->err)),
		    -EINVAL);
		assert_non_null(strstr(f->err, "may only use letters, digits"));
		assert_false(virt_group_valid(bad[i]));
	}
	assert_int_equal(
	    virt_vm_set_ha_group(f->v, "grp1", true, 1001, "db", f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "restart priority must be 0 to 1000, got 1001");
	assert_int_equal(virt_vm_set_ha_group(f->v, "nope", true, 1, "db", f->err, sizeof(f->err)),
	                 -ENOENT);
	assert_string_equal(f->err, "no VM named nope on this host");
	assert_int_equal(virt_vm_find(f->v, "grp1", &vm, f->err, sizeof(f->err)), 0);
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 6);
	assert_string_equal(vm.group, "db");
	assert_true(virt_group_valid(""));
	assert_false(virt_group_valid(NULL));

	/* Edited by hand: a bad group reads as none, the rest stays, the VM
	 * stays listed; a good one comes in through the metadata event. */
	virDomainPtr d = virDomainLookupByName(c, "grp1");
	assert_non_null(d);
	assert_int_equal(
	    virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
	                         "<vm ha='yes' priority='8' epoch='2' group='web tier'/>",
	                         VIRT_META_PREFIX, VIRT_META_NS, VIR_DOMAIN_AFFECT_CONFIG),
	    0);
	assert_int_equal(virt_vm_find(f->v, "grp1", &vm, f->err, sizeof(f->err)), 0);
	assert_string_equal(vm.group, "");
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 8);
	assert_int_equal(vm.epoch, 2);
	assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
	                                      "<vm ha='yes' priority='8' epoch='2' group='web'/>",
	                                      VIRT_META_PREFIX, VIRT_META_NS,
	                                      VIR_DOMAIN_AFFECT_CONFIG),
	                 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "grp1", 2000));
	assert_string_equal(cached(f->v, "grp1")->group, "web");
	/* Reconcile agrees with the cache: nothing to report. */
	assert_int_equal(virt_reconcile(f->v), 0);
	assert_int_equal(virt_vm_undefine(f->v, "grp1", f->err, sizeof(f->err)), 0);
	virDomainFree(d);
	virConnectClose(c);
}

/* ---- desired state (issue 9) ------------------------------------------ */

static char *meta_where(virConnectPtr c, const char *name, unsigned where)
{
	virDomainPtr d = virDomainLookupByName(c, name);
	assert_non_null(d);
	char *m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_META_NS, where);
	virDomainFree(d);
	return m;
}

/* Sets the element by hand, as an older version or an admin would. */
static void meta_put(virConnectPtr c, const char *name, const char *xml)
{
	virDomainPtr d = virDomainLookupByName(c, name);
	assert_non_null(d);
	unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
	if (virDomainIsActive(d) == 1)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml, VIRT_META_PREFIX,
	                                      VIRT_META_NS, flags),
	                 0);
	virDomainFree(d);
}

static enum virt_desired desired_of(struct virt *v, const char *name)
{
	struct virt_vm vm;
	char err[512];
	assert_int_equal(virt_vm_find(v, name, &vm, err, sizeof(err)), 0);
	return vm.desired;
}

static void test_desired(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	char xml[512];
	struct virt_vm vm;
	assert_string_equal(virt_desired_name(VIRT_DESIRED_RUNNING), "running");
	assert_string_equal(virt_desired_name(VIRT_DESIRED_STOPPED), "stopped");

	/* A new VM should run; setting what it has writes nothing. */
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("des1", xml, sizeof(xml)), &vm, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(vm.desired, VIRT_DESIRED_RUNNING);
	assert_int_equal(cached(f->v, "des1")->desired, VIRT_DESIRED_RUNNING);
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", VIRT_DESIRED_RUNNING, f->err, sizeof(f->err)), 0);
	assert_null(meta_where(c, "des1", VIR_DOMAIN_AFFECT_CONFIG)); /* still no element */

	/* Round trip, persistent (stopped VM): only "stopped" is written. */
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", VIRT_DESIRED_STOPPED, f->err, sizeof(f->err)), 0);
	assert_int_equal(desired_of(f->v, "des1"), VIRT_DESIRED_STOPPED);
	assert_int_equal(cached(f->v, "des1")->desired, VIRT_DESIRED_STOPPED);
	char *m = meta_where(c, "des1", VIR_DOMAIN_AFFECT_CONFIG);
	assert_non_null(m);
	assert_string_equal(m, "<vm ha=\"no\" priority=\"0\" epoch=\"0\" desired=\"stopped\"/>");
	free(m);

	/* The other setters keep it. */
	assert_int_equal(virt_vm_set_ha(f->v, "des1", true, 10, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_set_epoch(f->v, "des1", 3, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_set_ha_group(f->v, "des1", true, 11, "db", f->err, sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_find(f->v, "des1", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.desired, VIRT_DESIRED_STOPPED);
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 11);
	assert_int_equal(vm.epoch, 3);
	assert_string_equal(vm.group, "db");
	m = meta_where(c, "des1", VIR_DOMAIN_AFFECT_CONFIG);
	assert_string_equal(m, "<vm ha=\"yes\" priority=\"11\" epoch=\"3\" group=\"db\" "
	                       "desired=\"stopped\"/>");
	free(m);
	/* ... and set_desired keeps them. */
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", VIRT_DESIRED_RUNNING, f->err, sizeof(f->err)), 0);
	m = meta_where(c, "des1", VIR_DOMAIN_AFFECT_CONFIG);
	assert_string_equal(m, "<vm ha=\"yes\" priority=\"11\" epoch=\"3\" group=\"db\"/>");
	free(m);
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", VIRT_DESIRED_STOPPED, f->err, sizeof(f->err)), 0);

	/* Round trip, live (running VM): both definitions carry it. A VM
	 * started outside set_desired keeps "stopped": only the operator's
	 * actions (rpc_server.c) change it. */
	assert_int_equal(virt_vm_start(f->v, "des1", f->err, sizeof(f->err)), 0);
	assert_int_equal(desired_of(f->v, "des1"), VIRT_DESIRED_STOPPED);
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", VIRT_DESIRED_RUNNING, f->err, sizeof(f->err)), 0);
	unsigned where[] = {VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_AFFECT_CONFIG};
	for (int i = 0; i < 2; i++) {
		m = meta_where(c, "des1", where[i]);
		assert_string_equal(m, "<vm ha=\"yes\" priority=\"11\" epoch=\"3\" group=\"db\"/>");
		free(m);
	}
	assert_int_equal(cached(f->v, "des1")->desired, VIRT_DESIRED_RUNNING);
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", VIRT_DESIRED_STOPPED, f->err, sizeof(f->err)), 0);
	for (int i = 0; i < 2; i++) {
		m = meta_where(c, "des1", where[i]);
		assert_string_equal(m, "<vm ha=\"yes\" priority=\"11\" epoch=\"3\" group=\"db\" "
		                       "desired=\"stopped\"/>");
		free(m);
	}
	assert_int_equal(cached(f->v, "des1")->desired, VIRT_DESIRED_STOPPED);
	/* Stopping it leaves it as it is too. */
	assert_int_equal(virt_vm_destroy(f->v, "des1", f->err, sizeof(f->err)), 0);
	assert_int_equal(desired_of(f->v, "des1"), VIRT_DESIRED_STOPPED);

	/* Metadata an older version wrote (no attribute): running. */
	meta_put(c, "des1", "<vm ha='yes' priority='8' epoch='2'/>");
	assert_int_equal(desired_of(f->v, "des1"), VIRT_DESIRED_RUNNING);
	meta_put(c, "des1", "<vm ha='yes' priority='8' epoch='2' desired='running'/>");
	assert_int_equal(desired_of(f->v, "des1"), VIRT_DESIRED_RUNNING);
	/* Unreadable values read as running, the rest stays, the VM stays
	 * listed. */
	const char *bad[] = {"<vm ha='yes' priority='8' epoch='2' desired='maybe'/>",
	                     "<vm ha='yes' priority='8' epoch='2' desired='STOPPED'/>",
	                     "<vm ha='yes' priority='8' epoch='2' desired=''/>"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		meta_put(c, "des1", bad[i]);
		assert_int_equal(virt_vm_find(f->v, "des1", &vm, f->err, sizeof(f->err)), 0);
		assert_int_equal(vm.desired, VIRT_DESIRED_RUNNING);
		assert_true(vm.ha);
		assert_int_equal(vm.priority, 8);
		assert_int_equal(vm.epoch, 2);
	}
	/* Edited by hand: the metadata event brings it into the cache, and
	 * reconcile then agrees. */
	meta_put(c, "des1", "<vm ha='yes' priority='8' epoch='2' desired='stopped'/>");
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "des1", 2000));
	assert_int_equal(cached(f->v, "des1")->desired, VIRT_DESIRED_STOPPED);
	assert_int_equal(virt_reconcile(f->v), 0);

	/* Refused, nothing changed. */
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des1", (enum virt_desired)7, f->err, sizeof(f->err)),
	    -EINVAL);
	assert_string_equal(f->err, "desired state must be running or stopped, got 7");
	assert_int_equal(
	    virt_vm_set_desired(f->v, "nope", VIRT_DESIRED_STOPPED, f->err, sizeof(f->err)),
	    -ENOENT);
	assert_int_equal(desired_of(f->v, "des1"), VIRT_DESIRED_STOPPED);

	assert_int_equal(virt_vm_undefine(f->v, "des1", f->err, sizeof(f->err)), 0);
	virConnectClose(c);
}

/* The definition replicas hold (virt_vm_export_xml) carries the desired
 * state, and a failover restart from it (virt_vm_define_start) keeps it
 * while it sets the new epoch. */
static void test_desired_travels(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	char xml[512];
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("des2", xml, sizeof(xml)), NULL, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(
	    virt_vm_set_ha_group(f->v, "des2", true, 20, "web", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_set_epoch(f->v, "des2", 5, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("des3", xml, sizeof(xml)), NULL, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_set_ha(f->v, "des3", true, 30, f->err, sizeof(f->err)), 0);
	assert_int_equal(
	    virt_vm_set_desired(f->v, "des2", VIRT_DESIRED_STOPPED, f->err, sizeof(f->err)), 0);
	char *x2 = NULL, *x3 = NULL;
	assert_int_equal(virt_vm_export_xml(f->v, "des2", &x2, f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_export_xml(f->v, "des3", &x3, f->err, sizeof(f->err)), 0);
	assert_non_null(strstr(x2, "desired=\"stopped\""));
	assert_non_null(strstr(x2, "group=\"web\""));
	assert_null(strstr(x3, "desired=")); /* running: no attribute */
	assert_non_null(strstr(x3, VIRT_META_NS));

	/* Another host (a test:///PATH file host: a state of its own). */
	struct virt *h2 = virt_new(f->uri);
	assert_non_null(h2);
	assert_true(virt_check(h2));
	char name[VIRT_NAME_MAX];
	assert_int_equal(
	    virt_vm_define_start(h2, x2, 6, name, sizeof(name), f->err, sizeof(f->err)), 0);
	assert_string_equal(name, "des2");
	assert_int_equal(
	    virt_vm_define_start(h2, x3, 9, name, sizeof(name), f->err, sizeof(f->err)), 0);
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(h2, "des2", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.state, VIRT_VM_RUNNING);
	assert_int_equal(vm.desired, VIRT_DESIRED_STOPPED);
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 20);
	assert_int_equal(vm.epoch, 6);
	assert_string_equal(vm.group, "web");
	assert_int_equal(virt_vm_find(h2, "des3", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.desired, VIRT_DESIRED_RUNNING);
	assert_true(vm.ha);
	assert_int_equal(vm.priority, 30);
	assert_int_equal(vm.epoch, 9);
	/* And it is in the definition there, for the next move. */
	char *back = NULL;
	assert_int_equal(virt_vm_export_xml(h2, "des2", &back, f->err, sizeof(f->err)), 0);
	assert_non_null(strstr(back, "epoch=\"6\" group=\"web\" desired=\"stopped\""));
	free(back);
	virt_free(h2);
	free(x2);
	free(x3);
	assert_int_equal(virt_vm_undefine(f->v, "des2", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_undefine(f->v, "des3", f->err, sizeof(f->err)), 0);
}

/* ---- why a VM stopped --------------------------------------------------- */

static void test_stop_reason_names(void **state)
{
	(void)state;
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_NONE), "none");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_SHUTDOWN), "shutdown");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_DESTROYED), "destroyed");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_CRASHED), "crashed");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_FAILED), "failed");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_MIGRATED), "migrated");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_SAVED), "saved");
	assert_string_equal(virt_stop_reason_name(VIRT_STOP_OTHER), "other");
	assert_string_equal(virt_fence_outcome_name(VIRT_FENCE_DESTROYED), "destroyed");
	assert_string_equal(virt_fence_outcome_name(VIRT_FENCE_ALREADY_STOPPED), "already-stopped");
	assert_string_equal(virt_fence_outcome_name(VIRT_FENCE_ABSENT), "absent");
	assert_string_equal(virt_fence_outcome_name(VIRT_FENCE_FAILED), "failed");
	assert_string_equal(virt_fence_outcome_name(VIRT_FENCE_PENDING), "pending");
}

static bool pred_two_events(void *arg)
{
	struct wait_rec *w = arg;
	return rec_count(w->r, w->what, w->name) >= 2;
}

static void test_stop_reason(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_NONE); /* running */
	assert_int_equal(cached(f->v, "beta")->stop_reason, VIRT_STOP_NONE);  /* never seen stop */

	/* Destroyed through libvirt: known at once, and the event agrees. */
	f->rec.n = 0;
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_DESTROYED);
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha", 2000));
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_SHUTOFF);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_DESTROYED);
	/* Started again: forgotten. */
	assert_int_equal(virt_vm_start(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_NONE);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha", 2000));
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_NONE);

	/* Guest shutdown (the test driver powers off at once). */
	assert_int_equal(virt_vm_shutdown(f->v, "alpha", f->err, sizeof(f->err)), 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha", 2000));
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_SHUTOFF);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_SHUTDOWN);
	assert_int_equal(virt_vm_start(f->v, "alpha", f->err, sizeof(f->err)), 0);
	settle();

	/* An injected crash: on_change at once, as an event would; the
	 * destroy's own STOPPED event (later) does not turn it into
	 * "destroyed"; neither does a reconcile. */
	f->rec.n = 0;
	virt_test_inject_stop(f->v, "alpha", VIRT_STOP_CRASHED);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha"), 1);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_SHUTOFF);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_CRASHED);
	struct wait_rec w = {&f->rec, VIRT_CHANGE_VM_EVENT, "alpha"};
	assert_true(run_until(pred_two_events, &w, 2000));
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_CRASHED);
	assert_int_equal(virt_reconcile(f->v), 0);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_CRASHED);
	struct virt_vm vm;
	assert_int_equal(virt_vm_find(f->v, "alpha", &vm, f->err, sizeof(f->err)), 0);
	assert_int_equal(vm.stop_reason, VIRT_STOP_CRASHED);
	/* ... a fresh read (no cache) only has libvirt's state reason. */
	struct virt_vm *all;
	size_t n;
	assert_int_equal(virt_list_vms(f->v, &all, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(all[i].name, "alpha") == 0)
			assert_int_equal(all[i].stop_reason, VIRT_STOP_DESTROYED);
	free(all);

	/* The emulator died (qemu killed -9: STOPPED_FAILED). */
	assert_int_equal(virt_vm_start(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_NONE);
	settle();
	f->rec.n = 0;
	virt_test_inject_stop(f->v, "11111111-2222-3333-4444-555555555555", VIRT_STOP_FAILED);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha"), 1);
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_FAILED);
	assert_true(run_until(pred_two_events, &w, 2000));
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_FAILED);
	/* And a plain destroy after a restart is a destroy again (the injected
	 * reason was used up). */
	assert_int_equal(virt_vm_start(f->v, "alpha", f->err, sizeof(f->err)), 0);
	assert_int_equal(virt_vm_destroy(f->v, "alpha", f->err, sizeof(f->err)), 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "alpha", 2000));
	assert_int_equal(cached(f->v, "alpha")->stop_reason, VIRT_STOP_DESTROYED);

	/* A stopped VM: the reason is just recorded. Unknown VM: nothing. */
	f->rec.n = 0;
	virt_test_inject_stop(f->v, "beta", VIRT_STOP_CRASHED);
	assert_int_equal(cached(f->v, "beta")->stop_reason, VIRT_STOP_CRASHED);
	assert_int_equal(rec_count(&f->rec, VIRT_CHANGE_VM_EVENT, "beta"), 1);
	f->rec.n = 0;
	virt_test_inject_stop(f->v, "nope", VIRT_STOP_CRASHED);
	assert_int_equal(f->rec.n, 0);
	assert_null(cached(f->v, "nope"));
}

/* Someone else destroys it (virsh destroy): the event says so; without a
 * loop, the state's reason does. */
static void test_stop_reason_external(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, "test:///default");
	char xml[512];
	assert_int_equal(virt_vm_define(f->v, small_vm_xml("sr1", xml, sizeof(xml)), NULL, f->err,
	                                sizeof(f->err)),
	                 0);
	assert_int_equal(virt_vm_start(f->v, "sr1", f->err, sizeof(f->err)), 0);
	settle();
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, "sr1");
	assert_non_null(d);
	assert_int_equal(virDomainDestroy(d), 0);
	f->rec.n = 0;
	assert_true(wait_change(&f->rec, VIRT_CHANGE_VM_EVENT, "sr1", 2000));
	assert_int_equal(cached(f->v, "sr1")->stop_reason, VIRT_STOP_DESTROYED);

	struct virt *plain = virt_new("test:///default");
	assert_non_null(plain);
	assert_true(virt_check(plain));
	assert_int_equal(cached(plain, "sr1")->stop_reason, VIRT_STOP_DESTROYED);
	assert_int_equal(virDomainCreate(d), 0);
	assert_int_equal(virt_reconcile(plain), 1);
	assert_int_equal(cached(plain, "sr1")->stop_reason, VIRT_STOP_NONE);
	assert_int_equal(virDomainShutdown(d), 0);
	assert_int_equal(virt_reconcile(plain), 1);
	assert_int_equal(cached(plain, "sr1")->stop_reason, VIRT_STOP_SHUTDOWN);
	virt_free(plain);

	assert_int_equal(virt_vm_undefine(f->v, "sr1", f->err, sizeof(f->err)), 0);
	virDomainFree(d);
	virConnectClose(c);
}

/* ---- fencing ------------------------------------------------------------ */

static void test_fence_unreachable(void **state)
{
	(void)state;
	char err[512] = "";
	const char *uuids[] = {"11111111-2222-3333-4444-555555555555"};
	enum virt_fence_outcome oc[1] = {VIRT_FENCE_DESTROYED};
	struct virt_fence_result r = {.outcomes = oc};
	/* Nothing listens: refused at once. */
	assert_int_equal(
	    virt_remote_fence("qemu+tcp://127.0.0.1:1/system", uuids, 1, 5, &r, err, sizeof(err)),
	    -ENOTCONN);
	assert_true(r.elapsed_ms < 2000);
	assert_non_null(strstr(err, "qemu+tcp://127.0.0.1:1/system"));
	assert_non_null(strstr(err, "cannot reach 127.0.0.1 port 1"));
	assert_int_equal(oc[0], VIRT_FENCE_PENDING);
	assert_ptr_equal(r.outcomes, oc);
	assert_int_equal(r.destroyed + r.already_stopped + r.absent + r.failed, 0);
	/* No daemon socket. */
	err[0] = '\0';
	assert_int_equal(virt_remote_fence("qemu+unix:///system?socket=/nonexistent/mv-sock", uuids,
	                                   1, 5, &r, err, sizeof(err)),
	                 -ENOTCONN);
	assert_non_null(strstr(err, "cannot connect"));
	/* An address that does not answer (or no route at all): bounded by the
	 * timeout either way, never the kernel's minutes of SYN retries. */
	r.outcomes = NULL;
	assert_int_equal(
	    virt_remote_fence("qemu+tcp://192.0.2.1/system", uuids, 1, 1, &r, err, sizeof(err)),
	    -ENOTCONN);
	assert_true(r.elapsed_ms < 3000);
	/* Bad arguments. */
	assert_int_equal(virt_remote_fence(NULL, uuids, 1, 5, &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(virt_remote_fence("", uuids, 1, 5, &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(virt_remote_fence("test:///default", NULL, 1, 5, &r, err, sizeof(err)),
	                 -EINVAL);
	const char *empty[] = {""};
	assert_int_equal(virt_remote_fence("test:///default", empty, 1, 5, &r, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(virt_remote_fence("test:///default", uuids, 1, 5, NULL, err, sizeof(err)),
	                 -EINVAL);
}

static void define_ha(virConnectPtr c, const char *name, const char *ha, bool start, char *uuid)
{
	char xml[512];
	virDomainPtr d = virDomainDefineXML(c, small_vm_xml(name, xml, sizeof(xml)));
	assert_non_null(d);
	if (ha != NULL) {
		char m[128];
		snprintf(m, sizeof(m), "<vm ha='%s' priority='1' epoch='1'/>", ha);
		assert_int_equal(virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, m,
		                                      VIRT_META_PREFIX, VIRT_META_NS,
		                                      VIR_DOMAIN_AFFECT_CONFIG),
		                 0);
	}
	if (start)
		assert_int_equal(virDomainCreate(d), 0);
	if (uuid != NULL)
		assert_int_equal(virDomainGetUUIDString(d, uuid), 0);
	virDomainFree(d);
}

static int active_of(virConnectPtr c, const char *name)
{
	virDomainPtr d = virDomainLookupByName(c, name);
	assert_non_null(d);
	int a = virDomainIsActive(d);
	virDomainFree(d);
	return a;
}

static void undefine_any(virConnectPtr c, const char *name)
{
	virDomainPtr d = virDomainLookupByName(c, name);
	assert_non_null(d);
	if (virDomainIsActive(d) == 1)
		assert_int_equal(virDomainDestroy(d), 0);
	assert_int_equal(virDomainUndefine(d), 0);
	virDomainFree(d);
}

struct fence_work {
	uv_work_t req;
	const char *uri;
	const char *const *uuids;
	size_t n;
	struct virt_fence_result r;
	enum virt_fence_outcome oc[8];
	char err[512];
	int rc;
	atomic_bool done;
};

static void fence_work_cb(uv_work_t *req)
{
	struct fence_work *w = req->data;
	w->r.outcomes = w->oc;
	w->rc = virt_remote_fence(w->uri, w->uuids, w->n, 5, &w->r, w->err, sizeof(w->err));
}

static void fence_after_cb(uv_work_t *req, int status)
{
	(void)status;
	struct fence_work *w = req->data;
	atomic_store(&w->done, true);
}

static bool pred_fence_done(void *arg)
{
	return atomic_load(&((struct fence_work *)arg)->done);
}

static void test_fence(void **state)
{
	(void)state;
	/* test:///default: one shared state, so a connection of our own sees
	 * what the fence's own connection did. */
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	char u1[VIRT_UUID_LEN], u2[VIRT_UUID_LEN], u3[VIRT_UUID_LEN], u4[VIRT_UUID_LEN];
	define_ha(c, "fence1", "yes", true, u1);    /* listed, running */
	define_ha(c, "fence2", "yes", false, u2);   /* listed, stopped */
	define_ha(c, "fence3", "yes", true, u3);    /* unlisted HA: fenced too */
	define_ha(c, "fence4", "no", true, u4);     /* unlisted, not HA: left alone */
	define_ha(c, "fence5", "yes", false, NULL); /* unlisted, stopped: nothing to do */
	const char *uuids[] = {u1, u2, "99999999-2222-3333-4444-555555555555", "fence4"};

	/* On a worker, as the agent runs it. */
	struct fence_work w = {.uri = "test:///default", .uuids = uuids, .n = 3};
	w.req.data = &w;
	assert_int_equal(uv_queue_work(&loop, &w.req, fence_work_cb, fence_after_cb), 0);
	assert_true(run_until(pred_fence_done, &w, 5000));
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.r.destroyed, 1);
	assert_int_equal(w.r.already_stopped, 1);
	assert_int_equal(w.r.absent, 1);
	assert_int_equal(w.r.failed, 0);
	assert_int_equal(w.r.extra_destroyed, 1);
	assert_int_equal(w.r.extra_failed, 0);
	assert_int_equal(w.oc[0], VIRT_FENCE_DESTROYED);
	assert_int_equal(w.oc[1], VIRT_FENCE_ALREADY_STOPPED);
	assert_int_equal(w.oc[2], VIRT_FENCE_ABSENT);
	assert_int_equal(active_of(c, "fence1"), 0);
	assert_int_equal(active_of(c, "fence2"), 0);
	assert_int_equal(active_of(c, "fence3"), 0);
	assert_int_equal(active_of(c, "fence4"), 1);
	assert_int_equal(active_of(c, "fence5"), 0);
	assert_int_equal(active_of(c, "test"), 1); /* no meshvisor metadata: not ours */

	/* Again: everything already stopped; a name works as a key too. */
	char err[512] = "";
	enum virt_fence_outcome oc[4];
	struct virt_fence_result r = {.outcomes = oc};
	assert_int_equal(virt_remote_fence("test:///default", uuids, 4, 0, &r, err, sizeof(err)),
	                 0);
	assert_int_equal(r.destroyed, 1); /* fence4, by name */
	assert_int_equal(r.already_stopped, 2);
	assert_int_equal(r.absent, 1);
	assert_int_equal(r.extra_destroyed, 0);
	assert_int_equal(oc[3], VIRT_FENCE_DESTROYED);
	assert_int_equal(active_of(c, "fence4"), 0);
	assert_int_equal(active_of(c, "test"), 1);
	/* Nothing listed: only the host's HA VMs. */
	define_ha(c, "fence6", "yes", true, NULL);
	assert_int_equal(virt_remote_fence("test:///default", NULL, 0, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.extra_destroyed, 1);
	assert_int_equal(active_of(c, "fence6"), 0);

	const char *names[] = {"fence1", "fence2", "fence3", "fence4", "fence5", "fence6"};
	for (size_t i = 0; i < 6; i++)
		undefine_any(c, names[i]);
	virConnectClose(c);
}

/* A bounded remote fence (failover: each listed VM's new epoch): a listed
 * copy running at or above its bound is a newer placement's — left
 * running, and the fence is not done (-EIO: the caller must not start its
 * own copy); below it, destroyed; no bound, destroyed as before. The
 * unlisted sweep does not touch the listed copy it left running. */
static void test_fence_below(void **state)
{
	(void)state;
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	char u1[VIRT_UUID_LEN], u2[VIRT_UUID_LEN], u3[VIRT_UUID_LEN];
	define_ha(c, "fb1", "yes", true, u1); /* epoch 1, bound 2: destroyed */
	define_ha(c, "fb2", "yes", true, u2); /* epoch 1, bound 1: a newer plan's */
	define_ha(c, "fb3", "yes", true, u3); /* epoch 1, no bound: destroyed */
	const char *uuids[] = {u1, u2, u3};
	const uint64_t below[] = {2, 1, 0};
	enum virt_fence_outcome oc[3];
	struct virt_fence_result r = {.outcomes = oc};
	char err[512] = "";
	assert_int_equal(
	    virt_remote_fence_below("test:///default", uuids, below, 3, 5, &r, err, sizeof(err)),
	    -EIO);
	assert_int_equal(oc[0], VIRT_FENCE_DESTROYED);
	assert_int_equal(oc[1], VIRT_FENCE_NEWER);
	assert_int_equal(oc[2], VIRT_FENCE_DESTROYED);
	assert_int_equal(r.destroyed, 2);
	assert_int_equal(r.newer, 1);
	assert_int_equal(r.failed, 0);
	assert_int_equal(r.extra_destroyed, 0);
	assert_non_null(strstr(err, "newer"));
	assert_int_equal(active_of(c, "fb1"), 0);
	assert_int_equal(active_of(c, "fb2"), 1);
	assert_int_equal(active_of(c, "fb3"), 0);
	/* with its bound above the copy's epoch, it goes too */
	const uint64_t above[] = {2, 2, 2};
	assert_int_equal(
	    virt_remote_fence_below("test:///default", uuids, above, 3, 5, &r, err, sizeof(err)),
	    0);
	assert_int_equal(oc[1], VIRT_FENCE_DESTROYED);
	assert_int_equal(active_of(c, "fb2"), 0);
	const char *names[] = {"fb1", "fb2", "fb3"};
	for (size_t i = 0; i < 3; i++)
		undefine_any(c, names[i]);
	virConnectClose(c);
}

/* A test:///PATH host: the fence gets a state of its own (as the move
 * tests note), so its effect shows in its counts, not in f->v's copy. */
static void test_fence_host_file(void **state)
{
	struct fx *f = *state;
	f->v = open_loop(f, f->uri);
	const char *uuids[] = {"11111111-2222-3333-4444-555555555555",
	                       "22222222-2222-3333-4444-555555555555"};
	struct virt_fence_result r = {0};
	assert_int_equal(virt_remote_fence(f->uri, uuids, 2, 5, &r, f->err, sizeof(f->err)), 0);
	assert_int_equal(r.destroyed, 1);       /* alpha */
	assert_int_equal(r.already_stopped, 1); /* beta */
	assert_int_equal(r.extra_destroyed, 0); /* gamma has no HA metadata */
	assert_null(r.outcomes);
	assert_int_equal(cached(f->v, "alpha")->state, VIRT_VM_RUNNING);
}

int main(void)
{
	mv_log_set_level(MV_LOG_ERROR);
	if (uv_loop_init(&loop) != 0 || virt_event_register_uv(&loop) != 0) {
		fprintf(stderr, "cannot set up the event loop\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_twice),
	    cmocka_unit_test(test_uvloop_handle),
	    cmocka_unit_test(test_uvloop_timeout),
	    cmocka_unit_test(test_uvloop_handle_off_thread),
	    cmocka_unit_test(test_uvloop_timeout_off_thread),
	    cmocka_unit_test(test_uvloop_concurrent),
	    cmocka_unit_test(test_backoff_schedule),
	    cmocka_unit_test(test_plain_check),
	    cmocka_unit_test_setup_teardown(test_inventory_file, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_host_info, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_xml, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_define_existing, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_vm, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_undefine_running_refused, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_ambiguous_name, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_vm_cached, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_set_ha, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_ha_survives_reopen, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_lifecycle_event, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reconcile_catches_missed, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_periodic_reconcile, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_periodic_reconcile_on_worker, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_host_info_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_unreachable, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_lost_and_reconnect, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect_registers_on_worker, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_teardown_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_export_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_start_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_destroy_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_async_keeps_loop, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_start_blocked_without_quorum, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_async_errors, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_async_order, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_async_cancel, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_abort_job_async_does_not_wait, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_async_yields_to_restart, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_op_next_first_step_yields_to_restart, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_event_read_on_worker, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_event_queue_overflow, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_event_read_dropped_on_reconnect, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test(test_free_releases_loop_handles),
	    cmocka_unit_test(test_migrate_build),
	    cmocka_unit_test_setup_teardown(test_migrate_refused, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_job_no_job, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_where, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_export_xml, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_group, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_desired, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_desired_travels, fx_setup, fx_teardown),
	    cmocka_unit_test(test_stop_reason_names),
	    cmocka_unit_test_setup_teardown(test_stop_reason, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stop_reason_external, fx_setup, fx_teardown),
	    cmocka_unit_test(test_fence_unreachable),
	    cmocka_unit_test(test_fence),
	    cmocka_unit_test(test_fence_below),
	    cmocka_unit_test_setup_teardown(test_fence_host_file, fx_setup, fx_teardown),
	};
	if (getenv("TEST_FILTER") != NULL) /* e.g. TEST_FILTER='test_uvloop*' */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	settle();
	return rc;
}
