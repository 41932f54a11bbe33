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
 * Threads. libvirt calls these six functions from whichever thread makes a
 * libvirt call: the loop thread for everything meshvisor does there, but a
 * worker thread too (virt_vm_migrate / virt_vm_where on hvwork.h's lanes:
 * the remote driver updates its fd watch and keepalive timer from the
 * calling thread). libuv handles belong to the loop thread, so:
 *   - the tables (live lists, ids, counts, each record's events/frequency/
 *     flags, the pending list) are under one mutex, uvl_mu; every function
 *     may be called from any thread;
 *   - on the loop thread a call applies to its uv handles at once, as it
 *     always has;
 *   - off the loop thread a call only records the change (add allocates the
 *     record and its id at once, since libvirt needs the id synchronously;
 *     update stores the new events/frequency; remove unlinks and marks the
 *     record removed), queues the record on the pending list and wakes the
 *     loop with uv_async_send(); the async callback, on the loop thread,
 *     initialises/starts/stops/closes the uv handles. It applies removals
 *     before adds, so a watch removed and re-added on a reused fd number
 *     never has two uv_poll_t live on one fd;
 *   - a record removed before its add was applied has no uv handle: the
 *     async callback calls its ff and frees it (on the loop thread, from a
 *     clean stack, exactly once, like every other ff);
 *   - dispatch (libvirt's handle and timeout callbacks) only ever happens on
 *     the loop thread. It reads the record under the lock and calls the
 *     callback with the lock released (the callback calls back into these
 *     functions): a watch or timeout removed from any thread before the loop
 *     looks at it never fires, and events a watch no longer asks for (an
 *     update not yet applied) are masked out. As in libvirt's own poll loop,
 *     a remove from another thread racing with a dispatch already under way
 *     may see that one callback run after remove returned; its opaque stays
 *     valid, because ff runs only later on the loop thread.
 *   No callback (cb or ff) and no call into libvirt runs under uvl_mu, so
 *   it is a leaf lock: no ordering against libvirt's own locks.
 * The async handle is created by virt_event_register_uv() and lives for the
 * process, like libvirt's registration itself (an event implementation can
 * never be unregistered). It is unref'd, so it never keeps uv_run() alive;
 * it does make uv_loop_close() return UV_EBUSY, which the agent never calls
 * (it runs on uv_default_loop() until exit).
 *
 * Limits: one watch per file descriptor (libuv allows one poll handle per
 * fd; libvirt's client side never registers an fd twice — a second watch
 * on a watched fd is refused and logged). A watch added off the loop thread
 * whose uv_poll_init() later fails (the loop finds out, not the caller) is
 * logged and stays inert until libvirt removes it.
 */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "virt.h"

struct uvl_watch {
	uv_poll_t poll;
	int id;
	int fd;
	int events; /* libvirt's VIR_EVENT_HANDLE_* set */
	bool removed;
	bool inited; /* poll initialised (on the loop thread) */
	bool failed; /* uv_poll_init failed when the loop applied the add */
	bool dirty;  /* events changed off the loop; not applied yet */
	bool queued; /* on uvl_pending_watches */
	virEventHandleCallback cb;
	void *opaque;
	virFreeCallback ff;
	struct uvl_watch *next;  /* live list only */
	struct uvl_watch *pnext; /* pending list only */
};

struct uvl_timeout {
	uv_timer_t timer;
	uv_idle_t idle;
	int id;
	int frequency;
	bool removed;
	bool inited;
	bool dirty;
	bool queued;
	int open_handles; /* closes still to complete after remove */
	virEventTimeoutCallback cb;
	void *opaque;
	virFreeCallback ff;
	struct uvl_timeout *next;
	struct uvl_timeout *pnext;
};

/* Set once by virt_event_register_uv, before libvirt can call anything. */
static uv_loop_t *uvl_loop;
static uv_thread_t uvl_thread;
static uv_async_t uvl_async;
static uv_mutex_t uvl_mu;

/* Under uvl_mu. */
static int uvl_next_watch = 1;
static int uvl_next_timeout = 1;
static struct uvl_watch *uvl_watches;        /* live (not removed) */
static struct uvl_timeout *uvl_timeouts;     /* live (not removed) */
static size_t uvl_n_watches, uvl_n_timeouts; /* live + pending + closing */
static struct uvl_watch *uvl_pending_watches;
static struct uvl_timeout *uvl_pending_timeouts;

static bool uvl_on_loop(void)
{
	uv_thread_t self = uv_thread_self();
	return uv_thread_equal(&self, &uvl_thread) != 0;
}

static void uvl_wake(void)
{
	int rc = uv_async_send(&uvl_async);
	if (rc < 0)
		MV_ERROR("virt", "cannot wake the loop for libvirt error=%s", uv_strerror(rc));
}

/* Both under uvl_mu; true when newly queued (the loop must be woken). */
static bool uvl_watch_queue(struct uvl_watch *w)
{
	if (w->queued)
		return false;
	w->queued = true;
	w->pnext = uvl_pending_watches;
	uvl_pending_watches = w;
	return true;
}

static bool uvl_timeout_queue(struct uvl_timeout *t)
{
	if (t->queued)
		return false;
	t->queued = true;
	t->pnext = uvl_pending_timeouts;
	uvl_pending_timeouts = t;
	return true;
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
	uv_mutex_lock(&uvl_mu);
	int want = w->events & (VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_WRITABLE);
	if (w->removed || want == 0) {
		uv_mutex_unlock(&uvl_mu);
		return;
	}
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
	/* An update from another thread may not be applied to the poll yet. */
	ev &= want | VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP;
	virEventHandleCallback cb = w->cb;
	int id = w->id, fd = w->fd;
	void *opaque = w->opaque;
	uv_mutex_unlock(&uvl_mu);
	if (ev != 0)
		cb(id, fd, ev, opaque);
}

/* Loop thread, under uvl_mu, w->inited. */
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

/* Loop thread, under uvl_mu. */
static int uvl_watch_init(struct uvl_watch *w)
{
	int rc = uv_poll_init(uvl_loop, &w->poll, w->fd);
	if (rc < 0) {
		MV_ERROR("virt", "cannot watch libvirt fd fd=%d error=%s", w->fd, uv_strerror(rc));
		return rc;
	}
	w->poll.data = w;
	w->inited = true;
	return 0;
}

static int uvl_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                          virFreeCallback ff)
{
	bool on_loop = uvl_on_loop();
	uv_mutex_lock(&uvl_mu);
	for (struct uvl_watch *o = uvl_watches; o != NULL; o = o->next) {
		if (o->fd == fd) {
			uv_mutex_unlock(&uvl_mu);
			MV_ERROR("virt", "libvirt asked for a second watch on one fd fd=%d", fd);
			return -1;
		}
	}
	struct uvl_watch *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		uv_mutex_unlock(&uvl_mu);
		return -1;
	}
	w->fd = fd;
	w->events = events;
	w->cb = cb;
	w->opaque = opaque;
	w->ff = ff;
	bool wake = false;
	if (on_loop) {
		if (uvl_watch_init(w) < 0) {
			uv_mutex_unlock(&uvl_mu);
			free(w);
			return -1;
		}
		uvl_watch_apply(w);
	} else {
		w->dirty = true;
		wake = uvl_watch_queue(w);
	}
	w->id = uvl_next_watch++;
	w->next = uvl_watches;
	uvl_watches = w;
	uvl_n_watches++;
	int id = w->id;
	uv_mutex_unlock(&uvl_mu);
	if (wake)
		uvl_wake();
	return id;
}

static void uvl_update_handle(int id, int events)
{
	bool on_loop = uvl_on_loop(), wake = false;
	uv_mutex_lock(&uvl_mu);
	struct uvl_watch *w = uvl_watch_find(id);
	if (w != NULL) {
		w->events = events;
		if (on_loop && w->inited) {
			w->dirty = false;
			uvl_watch_apply(w);
		} else {
			/* Off the loop, or an add the loop has not applied yet. */
			w->dirty = true;
			wake = uvl_watch_queue(w);
		}
	}
	uv_mutex_unlock(&uvl_mu);
	if (wake)
		uvl_wake();
}

static void uvl_watch_closed(uv_handle_t *h)
{
	struct uvl_watch *w = h->data;
	if (w->ff != NULL)
		w->ff(w->opaque);
	uv_mutex_lock(&uvl_mu);
	uvl_n_watches--;
	uv_mutex_unlock(&uvl_mu);
	free(w);
}

static int uvl_remove_handle(int id)
{
	bool on_loop = uvl_on_loop(), wake = false;
	int rc = -1;
	uv_mutex_lock(&uvl_mu);
	for (struct uvl_watch **pp = &uvl_watches; *pp != NULL; pp = &(*pp)->next) {
		struct uvl_watch *w = *pp;
		if (w->id != id)
			continue;
		*pp = w->next;
		w->next = NULL;
		w->removed = true;
		if (on_loop && w->inited && !w->queued)
			uv_close((uv_handle_t *)&w->poll, uvl_watch_closed);
		else /* the async callback closes it, or frees it if never applied */
			wake = uvl_watch_queue(w);
		rc = 0;
		break;
	}
	uv_mutex_unlock(&uvl_mu);
	if (wake)
		uvl_wake();
	return rc;
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
	uv_mutex_lock(&uvl_mu);
	/* frequency < 0: disabled from another thread, not applied yet. */
	bool fire = !t->removed && t->frequency >= 0;
	virEventTimeoutCallback cb = t->cb;
	int id = t->id;
	void *opaque = t->opaque;
	uv_mutex_unlock(&uvl_mu);
	if (fire)
		cb(id, opaque);
}

static void uvl_on_timer(uv_timer_t *h)
{
	uvl_fire(h->data);
}
static void uvl_on_idle(uv_idle_t *h)
{
	uvl_fire(h->data);
}

/* Loop thread, under uvl_mu, t->inited. */
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

/* Loop thread, under uvl_mu. */
static void uvl_timeout_init(struct uvl_timeout *t)
{
	uv_timer_init(uvl_loop, &t->timer);
	uv_idle_init(uvl_loop, &t->idle);
	t->timer.data = t->idle.data = t;
	t->inited = true;
}

static int uvl_add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque,
                           virFreeCallback ff)
{
	bool on_loop = uvl_on_loop(), wake = false;
	struct uvl_timeout *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -1;
	t->frequency = frequency;
	t->cb = cb;
	t->opaque = opaque;
	t->ff = ff;
	uv_mutex_lock(&uvl_mu);
	if (on_loop) {
		uvl_timeout_init(t);
		uvl_timeout_apply(t);
	} else {
		t->dirty = true;
		wake = uvl_timeout_queue(t);
	}
	t->id = uvl_next_timeout++;
	t->next = uvl_timeouts;
	uvl_timeouts = t;
	uvl_n_timeouts++;
	int id = t->id;
	uv_mutex_unlock(&uvl_mu);
	if (wake)
		uvl_wake();
	return id;
}

static void uvl_update_timeout(int id, int frequency)
{
	bool on_loop = uvl_on_loop(), wake = false;
	uv_mutex_lock(&uvl_mu);
	struct uvl_timeout *t = uvl_timeout_find(id);
	if (t != NULL) {
		/* As in libvirt's own loops, an update restarts the period from
		 * now (off the loop: from when the loop applies it). */
		t->frequency = frequency;
		if (on_loop && t->inited) {
			t->dirty = false;
			uvl_timeout_apply(t);
		} else {
			t->dirty = true;
			wake = uvl_timeout_queue(t);
		}
	}
	uv_mutex_unlock(&uvl_mu);
	if (wake)
		uvl_wake();
}

static void uvl_timeout_closed(uv_handle_t *h)
{
	struct uvl_timeout *t = h->data;
	if (--t->open_handles > 0) /* loop thread only */
		return;
	if (t->ff != NULL)
		t->ff(t->opaque);
	uv_mutex_lock(&uvl_mu);
	uvl_n_timeouts--;
	uv_mutex_unlock(&uvl_mu);
	free(t);
}

/* Loop thread, under uvl_mu. */
static void uvl_timeout_close(struct uvl_timeout *t)
{
	t->open_handles = 2;
	uv_close((uv_handle_t *)&t->timer, uvl_timeout_closed);
	uv_close((uv_handle_t *)&t->idle, uvl_timeout_closed);
}

static int uvl_remove_timeout(int id)
{
	bool on_loop = uvl_on_loop(), wake = false;
	int rc = -1;
	uv_mutex_lock(&uvl_mu);
	for (struct uvl_timeout **pp = &uvl_timeouts; *pp != NULL; pp = &(*pp)->next) {
		struct uvl_timeout *t = *pp;
		if (t->id != id)
			continue;
		*pp = t->next;
		t->next = NULL;
		t->removed = true;
		if (on_loop && t->inited && !t->queued)
			uvl_timeout_close(t);
		else
			wake = uvl_timeout_queue(t);
		rc = 0;
		break;
	}
	uv_mutex_unlock(&uvl_mu);
	if (wake)
		uvl_wake();
	return rc;
}

/* ---- changes made off the loop thread ----------------------------------- */

/* Loop thread: applies what other threads recorded. Records removed before
 * their add was applied never had a uv handle; their ff runs here, after
 * the lock is released (ff may call into libvirt). */
static void uvl_on_async(uv_async_t *a)
{
	(void)a;
	struct uvl_watch *free_w = NULL;
	struct uvl_timeout *free_t = NULL;

	uv_mutex_lock(&uvl_mu);
	struct uvl_watch *pw = uvl_pending_watches;
	struct uvl_timeout *pt = uvl_pending_timeouts;
	uvl_pending_watches = NULL;
	uvl_pending_timeouts = NULL;

	/* Removals first: a closed fd's number may come back in a new add. */
	for (struct uvl_watch *w = pw; w != NULL; w = w->pnext) {
		if (!w->removed)
			continue;
		if (w->inited)
			uv_close((uv_handle_t *)&w->poll, uvl_watch_closed);
	}
	for (struct uvl_watch *w = pw, *next; w != NULL; w = next) {
		next = w->pnext;
		w->queued = false;
		if (w->removed) {
			if (!w->inited) {
				w->pnext = free_w;
				free_w = w;
			}
			continue;
		}
		if (!w->dirty)
			continue;
		w->dirty = false;
		if (!w->inited && !w->failed && uvl_watch_init(w) < 0)
			w->failed = true;
		if (w->inited)
			uvl_watch_apply(w);
	}
	for (struct uvl_timeout *t = pt, *next; t != NULL; t = next) {
		next = t->pnext;
		t->queued = false;
		if (t->removed) {
			if (t->inited) {
				uvl_timeout_close(t);
			} else {
				t->pnext = free_t;
				free_t = t;
			}
			continue;
		}
		if (!t->dirty)
			continue;
		t->dirty = false;
		if (!t->inited)
			uvl_timeout_init(t);
		uvl_timeout_apply(t);
	}
	uv_mutex_unlock(&uvl_mu);

	for (struct uvl_watch *w = free_w, *next; w != NULL; w = next) {
		next = w->pnext;
		if (w->ff != NULL)
			w->ff(w->opaque);
		uv_mutex_lock(&uvl_mu);
		uvl_n_watches--;
		uv_mutex_unlock(&uvl_mu);
		free(w);
	}
	for (struct uvl_timeout *t = free_t, *next; t != NULL; t = next) {
		next = t->pnext;
		if (t->ff != NULL)
			t->ff(t->opaque);
		uv_mutex_lock(&uvl_mu);
		uvl_n_timeouts--;
		uv_mutex_unlock(&uvl_mu);
		free(t);
	}
}

/* ---- registration ------------------------------------------------------- */

int virt_event_register_uv(uv_loop_t *loop)
{
	if (uvl_loop != NULL)
		return uvl_loop == loop ? 0 : -EBUSY;
	if (virInitialize() < 0)
		return -EIO;
	int rc = uv_mutex_init(&uvl_mu);
	if (rc < 0)
		return rc;
	rc = uv_async_init(loop, &uvl_async, uvl_on_async);
	if (rc < 0) {
		uv_mutex_destroy(&uvl_mu);
		return rc;
	}
	uv_unref((uv_handle_t *)&uvl_async); /* lives for the process; see top */
	uvl_loop = loop;
	uvl_thread = uv_thread_self();
	virEventRegisterImpl(uvl_add_handle, uvl_update_handle, uvl_remove_handle, uvl_add_timeout,
	                     uvl_update_timeout, uvl_remove_timeout);
	return 0;
}

bool virt_event_is_bridge(const uv_handle_t *h)
{
	return h == (const uv_handle_t *)&uvl_async;
}

void virt_event_uv_counts(size_t *handles, size_t *timeouts)
{
	uv_mutex_lock(&uvl_mu);
	if (handles != NULL)
		*handles = uvl_n_watches;
	if (timeouts != NULL)
		*timeouts = uvl_n_timeouts;
	uv_mutex_unlock(&uvl_mu);
}
