/*
 * virt_uvloop.c — libvirt's event loop, implemented on the agent's libuv
 * loop (see virt.h: virt_event_register_uv).
 *
 * Why: libvirt delivers domain events, keepalive and connection-close
 * notices only through an event loop the application provides
 * (virEventRegisterImpl). The agent already runs one libuv loop; running
 * libvirt's default loop in a second thread would mean locking around every
 * cache the callbacks touch. Here libvirt's callbacks run on the loop
 * thread, between the agent's own callbacks, and need no locks.
 *
 * The six functions libvirt asks for, and how each maps onto libuv:
 *   add/update/remove handle   one uv_poll_t per watch. libvirt's
 *       READABLE/WRITABLE become UV_READABLE/UV_WRITABLE; a poll error is
 *       reported as VIR_EVENT_HANDLE_ERROR and UV_DISCONNECT as HANGUP.
 *       An update to no events stops the poll.
 *   add/update/remove timeout  libvirt's "frequency": -1 disabled, 0 fire
 *       on every loop iteration, N > 0 every N ms. N > 0 is a repeating
 *       uv_timer_t. 0 is a uv_idle_t, not a 0 ms timer: in libuv before
 *       1.45 a 0 ms timer re-armed from its own callback fires again in the
 *       same pass and starves I/O; an idle handle runs once per iteration
 *       and keeps the poll from blocking, which is what libvirt means.
 *
 * Removal: libvirt's contract is that the free function (ff) of a removed
 * watch or timeout runs later, from a clean stack (calling it inside remove
 * deadlocks libvirt). remove therefore only unlinks the record, marks it
 * removed (so its callback never runs once remove has returned, even if
 * libuv already has its event in hand) and uv_close()s its handles; the
 * last close callback calls ff(opaque) and frees the record. Until the loop
 * runs again the record is still counted by virt_event_uv_counts().
 *
 * Limits: one watch per file descriptor (libuv allows one poll handle per
 * fd; libvirt's client side never registers an fd twice — a second watch
 * on a watched fd is refused and logged). Single-threaded: every call must
 * come from the loop's thread, as all of meshvisor's libvirt calls do; a
 * call from another thread is logged as a bug.
 */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stdlib.h>

#include "meshvisor/log.h"
#include "virt.h"

struct uvl_watch {
	uv_poll_t poll;
	int id;
	int fd;
	int events; /* libvirt's VIR_EVENT_HANDLE_* set */
	bool removed;
	virEventHandleCallback cb;
	void *opaque;
	virFreeCallback ff;
	struct uvl_watch *next; /* live list only */
};

struct uvl_timeout {
	uv_timer_t timer;
	uv_idle_t idle;
	int id;
	int frequency;
	bool removed;
	int open_handles; /* closes still to complete after remove */
	virEventTimeoutCallback cb;
	void *opaque;
	virFreeCallback ff;
	struct uvl_timeout *next;
};

static uv_loop_t *uvl_loop;
static uv_thread_t uvl_thread;
static int uvl_next_watch = 1;
static int uvl_next_timeout = 1;
static struct uvl_watch *uvl_watches;     /* live (not removed) */
static struct uvl_timeout *uvl_timeouts;  /* live (not removed) */
static size_t uvl_n_watches, uvl_n_timeouts; /* live + closing */
static bool uvl_warned_thread;

static void uvl_check_thread(const char *fn)
{
	uv_thread_t self = uv_thread_self();
	if (!uv_thread_equal(&self, &uvl_thread) && !uvl_warned_thread) {
		uvl_warned_thread = true;
		MV_ERROR("virt", "libvirt event function called off the loop thread fn=%s", fn);
	}
}

/* ---- handles ------------------------------------------------------------ */

static struct uvl_watch *uvl_watch_find(int id)
{
	for (struct uvl_watch *w = uvl_watches; w != NULL; w = w->next)
		if (w->id == id)
			return w;
	return NULL;
}

static int uvl_to_uv_events(int events)
{
	int e = 0;
	if (events & VIR_EVENT_HANDLE_READABLE)
		e |= UV_READABLE;
	if (events & VIR_EVENT_HANDLE_WRITABLE)
		e |= UV_WRITABLE;
	return e;
}

static void uvl_on_poll(uv_poll_t *p, int status, int uv_events)
{
	struct uvl_watch *w = p->data;
	if (w->removed)
		return;
	int ev = 0;
	if (status < 0) {
		ev = VIR_EVENT_HANDLE_ERROR;
	} else {
		if (uv_events & UV_READABLE)
			ev |= VIR_EVENT_HANDLE_READABLE;
		if (uv_events & UV_WRITABLE)
			ev |= VIR_EVENT_HANDLE_WRITABLE;
		if (uv_events & UV_DISCONNECT)
			ev |= VIR_EVENT_HANDLE_HANGUP;
	}
	if (ev != 0)
		w->cb(w->id, w->fd, ev, w->opaque);
}

static void uvl_watch_apply(struct uvl_watch *w)
{
	int e = uvl_to_uv_events(w->events);
	if (e == 0) {
		uv_poll_stop(&w->poll);
		return;
	}
	int rc = uv_poll_start(&w->poll, e | UV_DISCONNECT, uvl_on_poll);
	if (rc < 0)
		MV_ERROR("virt", "cannot poll libvirt fd fd=%d error=%s", w->fd, uv_strerror(rc));
}

static int uvl_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                          virFreeCallback ff)
{
	uvl_check_thread("add_handle");
	for (struct uvl_watch *o = uvl_watches; o != NULL; o = o->next) {
		if (o->fd == fd) {
			MV_ERROR("virt", "libvirt asked for a second watch on one fd fd=%d", fd);
			return -1;
		}
	}
	struct uvl_watch *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	int rc = uv_poll_init(uvl_loop, &w->poll, fd);
	if (rc < 0) {
		MV_ERROR("virt", "cannot watch libvirt fd fd=%d error=%s", fd, uv_strerror(rc));
		free(w);
		return -1;
	}
	w->poll.data = w;
	w->id = uvl_next_watch++;
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->opaque = opaque;
	w->ff = ff;
	w->next = uvl_watches;
	uvl_watches = w;
	uvl_n_watches++;
	uvl_watch_apply(w);
	return w->id;
}

static void uvl_update_handle(int id, int events)
{
	uvl_check_thread("update_handle");
	struct uvl_watch *w = uvl_watch_find(id);
	if (w == NULL)
		return;
	w->events = events;
	uvl_watch_apply(w);
}

static void uvl_watch_closed(uv_handle_t *h)
{
	struct uvl_watch *w = h->data;
	if (w->ff != NULL)
		w->ff(w->opaque);
	uvl_n_watches--;
	free(w);
}

static int uvl_remove_handle(int id)
{
	uvl_check_thread("remove_handle");
	for (struct uvl_watch **pp = &uvl_watches; *pp != NULL; pp = &(*pp)->next) {
		struct uvl_watch *w = *pp;
		if (w->id != id)
			continue;
		*pp = w->next;
		w->removed = true;
		uv_close((uv_handle_t *)&w->poll, uvl_watch_closed);
		return 0;
	}
	return -1;
}

/* ---- timeouts ----------------------------------------------------------- */

static struct uvl_timeout *uvl_timeout_find(int id)
{
	for (struct uvl_timeout *t = uvl_timeouts; t != NULL; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static void uvl_fire(struct uvl_timeout *t)
{
	if (!t->removed)
		t->cb(t->id, t->opaque);
}

static void uvl_on_timer(uv_timer_t *h) { uvl_fire(h->data); }
static void uvl_on_idle(uv_idle_t *h) { uvl_fire(h->data); }

static void uvl_timeout_apply(struct uvl_timeout *t)
{
	if (t->frequency < 0) {
		uv_timer_stop(&t->timer);
		uv_idle_stop(&t->idle);
	} else if (t->frequency == 0) {
		uv_timer_stop(&t->timer);
		uv_idle_start(&t->idle, uvl_on_idle);
	} else {
		uv_idle_stop(&t->idle);
		uv_timer_start(&t->timer, uvl_on_timer, (uint64_t)t->frequency,
		               (uint64_t)t->frequency);
	}
}

static int uvl_add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque,
                           virFreeCallback ff)
{
	uvl_check_thread("add_timeout");
	struct uvl_timeout *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -1;
	uv_timer_init(uvl_loop, &t->timer);
	uv_idle_init(uvl_loop, &t->idle);
	t->timer.data = t->idle.data = t;
	t->id = uvl_next_timeout++;
	t->frequency = frequency;
	t->cb = cb;
	t->opaque = opaque;
	t->ff = ff;
	t->next = uvl_timeouts;
	uvl_timeouts = t;
	uvl_n_timeouts++;
	uvl_timeout_apply(t);
	return t->id;
}

static void uvl_update_timeout(int id, int frequency)
{
	uvl_check_thread("update_timeout");
	struct uvl_timeout *t = uvl_timeout_find(id);
	if (t == NULL)
		return;
	/* As in libvirt's own loops, an update restarts the period from now. */
	t->frequency = frequency;
	uvl_timeout_apply(t);
}

static void uvl_timeout_closed(uv_handle_t *h)
{
	struct uvl_timeout *t = h->data;
	if (--t->open_handles > 0)
		return;
	if (t->ff != NULL)
		t->ff(t->opaque);
	uvl_n_timeouts--;
	free(t);
}

static int uvl_remove_timeout(int id)
{
	uvl_check_thread("remove_timeout");
	for (struct uvl_timeout **pp = &uvl_timeouts; *pp != NULL; pp = &(*pp)->next) {
		struct uvl_timeout *t = *pp;
		if (t->id != id)
			continue;
		*pp = t->next;
		t->removed = true;
		t->open_handles = 2;
		uv_close((uv_handle_t *)&t->timer, uvl_timeout_closed);
		uv_close((uv_handle_t *)&t->idle, uvl_timeout_closed);
		return 0;
	}
	return -1;
}

/* ---- registration ------------------------------------------------------- */

int virt_event_register_uv(uv_loop_t *loop)
{
	if (uvl_loop != NULL)
		return uvl_loop == loop ? 0 : -EBUSY;
	if (virInitialize() < 0)
		return -EIO;
	uvl_loop = loop;
	uvl_thread = uv_thread_self();
	virEventRegisterImpl(uvl_add_handle, uvl_update_handle, uvl_remove_handle,
	                     uvl_add_timeout, uvl_update_timeout, uvl_remove_timeout);
	return 0;
}

void virt_event_uv_counts(size_t *handles, size_t *timeouts)
{
	if (handles != NULL)
		*handles = uvl_n_watches;
	if (timeouts != NULL)
		*timeouts = uvl_n_timeouts;
}
