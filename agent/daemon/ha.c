/*
 * ha.c — automatic failover in the daemon (see ha.h; the protocol and its
 * safety argument are in fo.c).
 *
 * Wiring, one libuv loop:
 *
 *   peer frame (failover) --> fo_codec_decode --> fo_handle_message(now)
 *   SWIM event            --> fo_member(name, state, incarnation)
 *   node-state change     --> (debounced) fo_set_hosts(gossiped view)
 *                             + stale-copy check
 *   core timer            --> fo_handle_timer(now)
 *   pump: fo_journal_version moved --> data_dir/failover-journal written
 *         (temporary file, fsync, rename) BEFORE anything below is sent
 *         or done: the write runs on the hypervisor worker's journal lane
 *         (a slow disk must not hold the loop), and until it completed the
 *         core's events and messages stay queued in it (ha_journal_busy);
 *         read back into the core at start (a bad file stops the agent)
 *         fo_pop_output --> fo_codec_encode_frame --> net_send_to(member addr)
 *         (HEARTBEAT, HB_ACK, HB_NACK: core_driver_send_dgram, a sealed UDP
 *         datagram when a key exists, else TLS; everything else: TLS)
 *         fo_pop_event  --> log + event stream, and the actions:
 *           FENCE_SELF    destroy every local HA VM, on the hypervisor
 *                         worker's critical lane; nothing the core
 *                         produced after it leaves before the destroys
 *                         are done ("a fence's local destroys"); one
 *                         that survives is retried, and the watchdog
 *                         left unpetted ("fences that failed")
 *           FENCE_VMS     destroy these local VMs (the same way); with
 *                         all_ha every local HA VM too (an order for
 *                         the incarnation we live in)
 *           REMOTE_FENCE  virt_remote_fence(dead host's fence URI) on the
 *                         hypervisor worker's critical lane (hvwork.h;
 *                         migrations cannot take its threads)
 *                         -> fo_remote_fence_done
 *           RESTART       definition from our replica store or a holder
 *                         (replica_get over the peer port), define, set
 *                         the new epoch, start (critical lane)
 *                         -> fo_restart_done
 *
 *   quorate moments --> data_dir/quorate-stamp (every F/4, and at the loss
 *         of quorum); read at start into fo_resume_fence_base() when HA VMs
 *         run here ("the last quorate moment")
 *
 * Replication: each local HA VM's inactive XML goes to the R alive,
 * non-witness peers with the highest rendezvous score hash(uuid, peer).
 * It is re-sent when the XML changes, when the holder set changes, and
 * every HA_REPLICA_REFRESH_MS anyway (a holder that restarted lost its
 * store). A target asks peers in the same rank order, so it normally asks
 * a holder first.
 *
 * VM-level HA: an HA VM that stops because the guest crashed or its
 * emulator died (libvirt's reason, not a shutdown or destroy) restarts
 * here after 1 s, 2 s, 4 s ... up to failover.vm_restarts times within
 * HA_CRASH_WINDOW_MS; after that it moves, through the migration
 * service's negotiated offline move (migration_move_crashed: target by
 * placement, its reservation, MOVES, epoch bumped, defined and started
 * there under the reservation, undefined here). Only while we
 * are quorate: a host without quorum may be failed over by the others.
 * While a restart is pending or the move under way, the VM is published
 * as restarting (VmInfo.restarting): the cluster does not count it owed.
 * Whether to restart is judged from the inventory cache, and the start
 * runs on the hypervisor worker's critical lane (virt_vm_start_async).
 */
#include "ha.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "core_driver.h"
#include "membership.h"
#include "peer_client.h"
#include "rpc_service.h"
#include "envelope.h"
#include "fileio.h"
#include "fo_codec.h"
#include "fo_driver.h"
#include "meshvisor/fo.h"
#include "log.h"
#include "migration.h"
#include "nodestate.h"
#include "prng.h"
#include "watchdog.h"

#define HA_EVENTS_MAX 1024          /* event stream backlog kept */
#define HA_EVENT_SUBS_MAX 64        /* `events` streams open at once (docs/limits.md) */
#define HA_EVENT_SUBS_PER_CERT 16   /* ... by one certificate (viewers cannot take them all) */
#define HA_REPLICA_REFRESH_MS 30000 /* full re-send of our replicas */
#define HA_STATE_DEBOUNCE_MS 50     /* gossip bursts -> one host rebuild */
#define HA_CRASH_WINDOW_MS (10 * 60 * 1000)
#define HA_EXPECT_MS 120000      /* an expected stop is remembered this long */
#define HA_FENCE_TIMEOUT_S 10    /* remote fence connect keepalive bound */
#define HA_JOURNAL_RETRY_MS 1000 /* a failed journal write is retried after */
#define HA_FENCE_SLOW_MS 5000    /* a fence's destroys this late are logged */
#define HA_HOLDERS_MAX 16

static int64_t ha_wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct ha_replica {
	char owner[FO_NAME_MAX];
	char uuid[FO_UUID_MAX];
	char name[VIRT_NAME_MAX];
	uint64_t epoch;
	int32_t priority;
	char group[FO_GROUP_MAX];
	char *xml;
	int64_t updated_unix_ms;
};

/* What we last sent for one of our HA VMs. */
struct ha_sent {
	char uuid[FO_UUID_MAX];
	uint64_t xml_hash;
	char holders[HA_HOLDERS_MAX][FO_NAME_MAX];
	size_t n_holders;
	uint64_t sent_at;
	bool seen; /* still an HA VM here (mark and sweep) */
};

struct ha_event_rec {
	uint64_t seq;
	int64_t unix_ms;
	char kind[32];
	char node[FO_NAME_MAX];
	char vm[VIRT_NAME_MAX];
	char text[512];
};

struct ha_sub {
	uint64_t sink;
	char peer[FO_NAME_MAX]; /* the certificate that opened it */
	size_t unacked;         /* rpc_sink_keepalive's figure of the last keepalive */
	struct ha_sub *next;
};

struct ha_crash {
	char uuid[FO_UUID_MAX];
	char name[VIRT_NAME_MAX];
	unsigned count; /* crashes within the window */
	uint64_t first_at;
	uint64_t restart_at; /* 0: nothing scheduled */
	bool moving;
	struct ha_crash *next;
};

struct ha_expect {
	char key[VIRT_NAME_MAX];
	uint64_t until;
	struct ha_expect *next;
};

/* One FO_EV_RESTART being carried out. */
struct ha_restart {
	struct agent *a;
	struct fo_instance_id inst;
	struct fo_plan_entry entry;
	char cands[HA_HOLDERS_MAX * 2][FO_NAME_MAX]; /* peers to ask for the XML, in order */
	size_t n_cands, next;
	bool dead;          /* the agent is stopping: ignore the answer */
	bool fenced;        /* a fence that covers this VM ran while it was being
	                started: whatever started is destroyed, not reported */
	char fail_why[512]; /* why the start failed (reported after the cleanup) */
	struct ha_restart *next_job;
};

/* A local VM that a fence (self-fence or fence order) could not destroy:
 * the host is not fenced while one is left. */
struct ha_unfenced {
	char uuid[VIRT_UUID_LEN];
	char name[VIRT_NAME_MAX];
	uint64_t below_epoch; /* destroyed while its epoch is below this */
	char why[FO_TEXT_MAX + 96];
	char err[256]; /* the last failure */
};

struct ha_fence_work {
	struct hvwork_job w;
	struct agent *a;
	struct fo_instance_id inst;
	char uri[512];
	char **uuids;
	uint64_t *below; /* each listed VM's new epoch: a copy at or above it is a newer plan's */
	size_t n;
	int rc;
	struct virt_fence_result res;
	char err[512];
};

struct ha {
	struct fo *fo;
	uv_timer_t timer;       /* the core's next deadline */
	uv_timer_t tick;        /* watchdog, replication refresh, crash restarts */
	uv_timer_t state_timer; /* debounced node-state rebuild */
	uv_timer_t keepalive;   /* keepalives on the event streams */
	bool quorate_last;
	bool fenced_last;
	struct ha_replica *replicas;
	size_t n_replicas, cap_replicas;
	struct ha_sent *sent;
	size_t n_sent, cap_sent;
	struct ha_event_rec *events; /* ring of HA_EVENTS_MAX */
	uint64_t next_seq;
	struct ha_sub *subs;
	struct ha_crash *crashes;
	struct ha_settle_read *settle_read; /* ha_settle_moves' reads on the worker */
	/* the moves still MOVING at the agent's start (a previous life's),
	 * each until a settling read libvirt for it or it is settled
	 * otherwise (ha_settle_moves) */
	char start_moves[FO_MOVES_MAX][FO_MOVE_ID_MAX];
	size_t n_start_moves;
	struct ha_expect *expects;
	struct ha_restart *restarts;
	uint64_t repl_refresh_at;
	bool repl_dirty;
	uint64_t holders_sig;   /* hash of the hosts that may hold replicas */
	struct mv_watchdog wd;  /* failover.watchdog: see "the watchdog" below */
	bool wd_on;             /* configured and not stopped */
	bool wd_petting;        /* armed and petted at the last tick */
	bool wd_failing;        /* the last arm or pet failed (logged once) */
	bool wd_hurried;        /* set to 1 s at a self-fence (mv_watchdog_hurry):
	                              re-configured before the next pet */
	bool fence_clock_known; /* the core's self-fence clock runs from a real last
	                              quorate moment (a quorum this life, or the
	                              previous agent's stamp): pets may go on until
	                              the self-fence while not quorate */
	unsigned fence_work_running;
	unsigned restart_work_running; /* VM starts on worker threads (use a->virt) */
	bool timers_on;     /* timer, tick, state_timer, keepalive initialized (ha_close closes) */
	char *journal_path; /* data_dir/failover-journal */
	uint64_t journal_saved;    /* fo_journal_version() last written */
	bool journal_failing;      /* the last write failed (logged once) */
	uint64_t journal_retry_at; /* uv_now: no new write before (after a failure) */
	/* the write in flight on the worker's critical lane; while there is
	 * one, nothing the core produced leaves (ha_pump) */
	struct ha_journal_job *journal_job;
	/* the last quorate moment, across restarts: see "the last quorate moment" */
	int stamp_fd; /* data_dir/quorate-stamp, -1 when not kept */
	char *stamp_path;
	char boot_id[HA_STAMP_BOOT_LEN + 1];
	int64_t mono_offset;      /* CLOCK_MONOTONIC ms minus the core's clock */
	uint64_t quorate_seen_at; /* core clock: the last moment seen quorate, 0 never */
	uint64_t stamp_written;   /* the core time last written, 0 none */
	uint64_t stamp_retry_at;  /* after a failed write */
	bool stamp_sized;         /* truncated to one line once */
	bool stamp_failing;       /* the last write failed (logged once) */
	/* fences that did not destroy everything: see "fences that failed" */
	struct ha_unfenced *unfenced;
	size_t n_unfenced, cap_unfenced;
	bool fence_unknown;   /* a self-fence ran while libvirt did not answer */
	bool fence_order_all; /* ... or a fence order for every HA VM (all_ha) */
	uint64_t unfenced_retry_at;
	/* a fence's local destroys on the worker: see "a fence's local
	 * destroys"; while fence_hold is set the core's output waits */
	struct ha_lfence *fence_hold;
	bool fence_retrying;     /* a retry's destroys are on the worker */
	unsigned lfence_running; /* both kinds, and ha_vm_async's (use a->virt) */
	unsigned stale_running;  /* stale copies being removed */
	bool fence_slow_told;    /* the destroys' delay was logged */
};

static void ha_on_state_change(struct agent *a);
static bool ha_vm_restarting(struct agent *a, const char *uuid);
static void ha_fill_node_state(struct agent *a, Mv__NodeState *ns);

static struct ha *HA(struct agent *a)
{
	return a->ha;
}

/* ---- event stream ----------------------------------------------------------------- */

static void ha_event_fill(const struct ha_event_rec *e, Mv__ClusterEvent *out)
{
	mv__cluster_event__init(out);
	out->seq = e->seq;
	out->unix_ms = e->unix_ms;
	out->kind = (char *)e->kind;
	out->node = (char *)e->node;
	out->vm = (char *)e->vm;
	out->text = (char *)e->text;
}

static void ha_event_send(struct agent *a, uint64_t sink, const struct ha_event_rec *e)
{
	Mv__ClusterEvent ev;
	ha_event_fill(e, &ev);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.code = MV__RPC_CODE__RPC_OK;
	resp.result_case = MV__RPC_RESPONSE__RESULT_EVENT;
	resp.event = &ev;
	rpc_sink_send(a, sink, &resp, false);
}

void ha_event(struct agent *a, const char *kind, const char *node, const char *vm, const char *fmt,
              ...)
{
	struct ha *h = HA(a);
	if (h == NULL || h->events == NULL)
		return;
	struct ha_event_rec *e = &h->events[h->next_seq % HA_EVENTS_MAX];
	memset(e, 0, sizeof(*e));
	e->seq = ++h->next_seq;
	e->unix_ms = ha_wall_ms();
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	snprintf(e->node, sizeof(e->node), "%s", node ? node : "");
	snprintf(e->vm, sizeof(e->vm), "%s", vm ? vm : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	struct ha_sub **pp = &h->subs;
	while (*pp != NULL) {
		struct ha_sub *s = *pp;
		if (!rpc_sink_alive(a, s->sink)) {
			rpc_sink_drop(a, s->sink);
			*pp = s->next;
			free(s);
			continue;
		}
		ha_event_send(a, s->sink, e);
		pp = &s->next;
	}
}

/* How often each event stream gets a keepalive: a third of the idle
 * timeout, so that one held back (the client acknowledged nothing since
 * the last) or one late is not yet the end of the stream, and two held back
 * in a row leave the idle timeout to close it. */
static uint64_t ha_keepalive_ms(const struct agent_options *o)
{
	uint64_t ms = o->peer_idle_timeout_ms / 3;
	return ms > 0 ? ms : 1;
}

/* The keepalive timer: one frame per stream whose client acknowledges what
 * it is sent (rpc_sink_keepalive), a few bytes and one ioctl each; the
 * streams are capped (HA_EVENT_SUBS_MAX). Subscribers gone are dropped. */
static void ha_on_keepalive(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct ha *h = HA(a);
	struct ha_sub **pp = &h->subs;
	while (*pp != NULL) {
		struct ha_sub *s = *pp;
		if (rpc_sink_keepalive(a, s->sink, &s->unacked) < 0) {
			rpc_sink_drop(a, s->sink);
			*pp = s->next;
			free(s);
			continue;
		}
		pp = &s->next;
	}
}

/* The i-th most recent event (0 = newest), or NULL. */
static const struct ha_event_rec *ha_event_back(const struct ha *h, uint64_t i)
{
	if (i >= h->next_seq || i >= HA_EVENTS_MAX)
		return NULL;
	return &h->events[(h->next_seq - 1 - i) % HA_EVENTS_MAX];
}

/* ---- hashing -------------------------------------------------------------------------- */

/* Rendezvous score of b for a: FNV-1a 64 of a, a 0xff separator and b,
 * mixed (prng.h). */
static uint64_t ha_hash(const char *a, const char *b)
{
	return mv_mix64(mv_fnv1a64(mv_fnv1a64(mv_fnv1a64(MV_FNV1A64_OFFSET, a), "\xff"), b));
}

/* ---- the gossiped view ------------------------------------------------------------------ */

struct ha_view {
	Mv__NodeState **states;
	size_t n_states;
	struct fo_host *hosts;
	struct fo_vm *vms;
	size_t n_hosts;
};

static void ha_view_free(struct ha_view *v)
{
	for (size_t i = 0; i < v->n_states; i++)
		if (v->states[i] != NULL)
			mv__node_state__free_unpacked(v->states[i], NULL);
	free(v->states);
	free(v->hosts);
	free(v->vms);
	memset(v, 0, sizeof(*v));
}

static bool ha_member_alive(struct agent *a, const char *name)
{
	if (strcmp(name, a->opt.name) == 0)
		return true;
	struct swim_member_info mi;
	return swim_member_find(membership_swim(a), name, &mi) && mi.state == SWIM_ALIVE;
}

static bool ha_vm_active(Mv__VmState s)
{
	return s == MV__VM_STATE__VM_RUNNING || s == MV__VM_STATE__VM_PAUSED;
}

static bool ha_up_cb(void *arg, const char *name)
{
	return ha_member_alive(arg, name);
}

/* Every host's gossiped record as the core wants it (fo_driver.c: the same
 * rules the simulator runs): capacity, witness and quorum flags, the
 * incarnation it published at, its HA VMs whose desired state is running.
 * Strings point into v->states. */
static int ha_view_load(struct agent *a, struct ha_view *v)
{
	memset(v, 0, sizeof(*v));
	size_t n = nodestate_count(a);
	v->states = calloc(n ? n : 1, sizeof(*v->states));
	if (v->states == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v->states[i] = nodestate_unpack_at(a, i);
	v->n_states = n;
	struct fo_driver_view dv;
	int rc = fo_driver_view_build(&dv, (const Mv__NodeState *const *)v->states, n, ha_up_cb, a);
	if (rc < 0)
		return rc;
	v->hosts = dv.hosts;
	v->vms = dv.vms;
	v->n_hosts = dv.n_hosts;
	return 0;
}

/* ---- core <-> network ----------------------------------------------------------------- */

static void ha_on_timer(uv_timer_t *t);
static void ha_handle_core_event(struct agent *a, struct fo_event *e);
static void ha_watchdog_pet(struct agent *a, uint64_t now);
static void ha_watchdog_after_self_fence(struct agent *a);
static void ha_watchdog_hurry(struct agent *a, const char *why);
static void ha_stamp_note(struct agent *a, uint64_t now);

/* ---- the journal (fo.h): durable before anything is sent -------------------------- */

/* What the core produced that waits for something to complete (the
 * journal's write, a fence's destroys): its events, to be carried out in
 * order from first_ev, then its messages, to be sent. */
struct ha_hold {
	struct fo_event *ev;
	size_t first_ev, n_ev, cap_ev;
	struct fo_msg *msg;
	size_t n_msg, cap_msg;
};

static void ha_hold_free(struct ha_hold *hd)
{
	for (size_t i = hd->first_ev; i < hd->n_ev; i++)
		fo_event_clear(&hd->ev[i]);
	for (size_t i = 0; i < hd->n_msg; i++)
		fo_msg_clear(&hd->msg[i]);
	free(hd->ev);
	free(hd->msg);
	memset(hd, 0, sizeof(*hd));
}

/* A fence's local destroys (see "a fence's local destroys"), with what
 * waits for them. */
enum ha_lfence_kind { HA_LFENCE_SELF, HA_LFENCE_ORDER, HA_LFENCE_RETRY };

struct ha_lfence_vm {
	char name[VIRT_NAME_MAX];
	char why[FO_TEXT_MAX + 96];
};

struct ha_lfence {
	struct agent *a;
	enum ha_lfence_kind kind;
	bool blind; /* libvirt did not answer when the fence began */
	struct virt_destroy_item *items;
	struct ha_lfence_vm *vms; /* beside items */
	size_t n, cap;
	uint64_t started_at; /* uv_now */
	struct ha_hold hold; /* what waits for these destroys (not for a retry) */
};

/* A journal write: the text encoded on the loop, written and fsynced
 * (temporary file, fsync, rename, fsync of the directory) on the worker's
 * journal lane, the outcome applied on the loop. */
struct ha_journal_job {
	struct hvwork_job w;
	struct agent *a;
	char *path;
	char *text;
	size_t len;
	uint64_t version; /* fo_journal_version() the text holds */
	int rc;
	uint64_t took_us;
	/* What the core had produced when the write started: it may depend on
	 * what the write records, so it waits for it, and only for it (what
	 * the core produces meanwhile waits for the next write: a proposer
	 * that retries faster than our disk cannot starve our answers). */
	struct ha_hold hold;
};

static void ha_send_msg(struct agent *a, struct fo_msg *m);
static bool ha_fence_pending(const struct ha *h);
static bool ha_order_all_pending(const struct ha *h);

static void ha_pump(struct agent *a);
static void ha_block_starts(struct agent *a);
static void ha_release(struct agent *a, struct ha_hold *hd);

/* The outcome of a write of `version`: the core learns whether its votes
 * are durable; a failure is logged once. */
static void ha_journal_written(struct ha *h, int rc, uint64_t version, size_t len, uint64_t took_us,
                               uint64_t now)
{
	if (rc < 0) {
		/* Until a write succeeds this agent does not vote (its PROMISE and
		 * ACCEPTED are not sent, ha_pump): a promise the file does not
		 * hold would be forgotten by a restart, and the restarted acceptor
		 * would trust the stale file. One full disk costs one vote. Its
		 * acks count as a young core's meanwhile. */
		if (!h->journal_failing)
			MV_ERROR(
			    "failover",
			    "cannot write the failover journal path=%s error=\"%s\" "
			    "cause=\"this agent does not vote in failovers until it is written\"",
			    h->journal_path, strerror(-rc));
		h->journal_failing = true;
		fo_journal_set_durable(h->fo, false); /* our acks count as a young core's */
		/* a failing disk (ENOSPC, EROFS) fails in microseconds: retry at
		 * most once per HA_JOURNAL_RETRY_MS, not on every pump (the pump
		 * that follows a failed write would start the next one at once) */
		h->journal_retry_at = now + HA_JOURNAL_RETRY_MS;
		return;
	}
	MV_DEBUG("failover", "failover journal written path=%s bytes=%zu took_us=%" PRIu64,
	         h->journal_path, len, took_us);
	if (h->journal_failing)
		MV_INFO("failover", "failover journal written again path=%s", h->journal_path);
	h->journal_failing = false;
	fo_journal_set_durable(h->fo, true);
	h->journal_saved = version;
}

static uint64_t ha_mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void ha_journal_work(struct hvwork_job *w)
{
	struct ha_journal_job *j = w->data;
	uint64_t t0 = ha_mono_us();
	j->rc = mv_file_write_durable(j->path, j->text, j->len);
	j->took_us = ha_mono_us() - t0;
}

/* Moves what the core has produced so far into the hold (as much as
 * memory allows: the rest stays queued in the core, for the next write). */
static void ha_hold_take(struct ha *h, struct ha_hold *j)
{
	for (;;) {
		if (j->n_ev == j->cap_ev) {
			size_t cap = j->cap_ev ? 2 * j->cap_ev : 8;
			struct fo_event *p = realloc(j->ev, cap * sizeof(*p));
			if (p == NULL)
				return; /* events left in the core: so are the messages
				         * (sent by a later pump, after those events) */
			j->ev = p;
			j->cap_ev = cap;
		}
		if (!fo_pop_event(h->fo, &j->ev[j->n_ev]))
			break;
		j->n_ev++;
	}
	for (;;) {
		if (j->n_msg == j->cap_msg) {
			size_t cap = j->cap_msg ? 2 * j->cap_msg : 16;
			struct fo_msg *p = realloc(j->msg, cap * sizeof(*p));
			if (p == NULL)
				break;
			j->msg = p;
			j->cap_msg = cap;
		}
		if (!fo_pop_output(h->fo, &j->msg[j->n_msg]))
			break;
		j->n_msg++;
	}
}

static void ha_journal_job_free(struct ha_journal_job *j)
{
	ha_hold_free(&j->hold);
	free(j->path);
	free(j->text);
	free(j);
}

static void ha_journal_done(struct hvwork_job *w, int status)
{
	struct ha_journal_job *j = w->data;
	struct agent *a = j->a;
	struct ha *h = HA(a);
	bool live = h != NULL && h->fo != NULL && !a->stopping && status == 0;
	if (h != NULL) {
		h->journal_job = NULL;
		if (status == 0 && h->fo != NULL)
			ha_journal_written(h, j->rc, j->version, j->len, j->took_us,
			                   uv_now(a->loop));
	}
	if (live)
		ha_release(a, &j->hold); /* what waited for this write */
	ha_journal_job_free(j);
	if (live)
		ha_pump(a); /* what the core produced meanwhile (or the next write) */
}

/* Makes the journal durable if it changed: true while a write is in
 * flight, and then nothing the core produced may leave yet (EVENTS BEFORE
 * MESSAGES extends to the journal: a PROMISE or ACCEPTED, and any action,
 * only once what the core recorded is on disk). The write runs on the
 * worker so that a slow disk (an fsync can take seconds) never holds the
 * loop that answers probes; without a worker (tests) it runs here. */
static bool ha_journal_busy(struct agent *a)
{
	struct ha *h = HA(a);
	if (h->journal_job != NULL)
		return true;
	uint64_t v = fo_journal_version(h->fo);
	if (v == h->journal_saved || h->journal_path == NULL)
		return false;
	if (h->journal_failing && uv_now(a->loop) < h->journal_retry_at)
		return false; /* (not voting meanwhile: ha_journal_written) */
	char *text;
	size_t len;
	int rc = fo_journal_encode(h->fo, &text, &len);
	if (rc < 0) {
		ha_journal_written(h, rc, v, 0, 0, uv_now(a->loop));
		return false;
	}
	struct ha_journal_job *j = a->hv != NULL ? calloc(1, sizeof(*j)) : NULL;
	if (j != NULL)
		j->path = strdup(h->journal_path);
	if (j != NULL && j->path != NULL) {
		j->a = a;
		j->text = text;
		j->len = len;
		j->version = v;
		j->w.work = ha_journal_work;
		j->w.done = ha_journal_done;
		j->w.data = j;
		if (hvwork_submit(a->hv, HVWORK_JOURNAL, &j->w) == 0) {
			h->journal_job = j;
			ha_hold_take(h, &j->hold);
			return true;
		}
		j->text = NULL; /* (still ours, below) */
	}
	if (j != NULL)
		ha_journal_job_free(j);
	/* no worker, or it cannot take the job: write here, as before */
	uint64_t t0 = ha_mono_us();
	rc = mv_file_write_durable(h->journal_path, text, len);
	ha_journal_written(h, rc, v, len, ha_mono_us() - t0, uv_now(a->loop));
	free(text);
	return false;
}

/* Reads data_dir/failover-journal into the fresh core. A missing file is a
 * first start; an unreadable or invalid one stops the agent (it would
 * otherwise forget whom it must not acknowledge). */
static int ha_journal_load(struct ha *h, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = mv_file_read(h->journal_path, FO_JOURNAL_MAX_BYTES, &buf, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		snprintf(err, errlen, "cannot read the failover journal %s: %s", h->journal_path,
		         rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
		return rc;
	}
	char why[256];
	int n = fo_journal_restore(h->fo, buf, len, why, sizeof(why));
	free(buf);
	if (n < 0) {
		snprintf(
		    err, errlen,
		    "the failover journal %s is invalid (%s). It records the hosts this agent "
		    "helped fail over; restore it, or, if every host it names has since rejoined "
		    "the cluster, remove it",
		    h->journal_path, n == -ENOMEM ? "out of memory" : why);
		return n;
	}
	h->journal_saved = fo_journal_version(h->fo);
	fo_journal_set_durable(h->fo, true);
	if (n > 0)
		MV_INFO("failover", "failover journal restored path=%s entries=%d", h->journal_path,
		        n);
	return 0;
}

/* One core message out (and cleared): a vote only with a durable journal,
 * nothing that vouches for an incomplete fence, heartbeats as datagrams. */
static void ha_send_msg(struct agent *a, struct fo_msg *m)
{
	struct ha *h = HA(a);
	if (h->journal_failing && (m->type == FO_PROMISE || m->type == FO_ACCEPTED)) {
		MV_DEBUG("failover",
		         "vote not sent: the journal cannot be written type=%s "
		         "to=%s",
		         fo_msg_type_name(m->type), m->to);
		fo_msg_clear(m);
		return;
	}
	if (ha_fence_pending(h) && fo_msg_vouches_fence(h->fo, m)) {
		MV_WARN("failover",
		        "not sent: it would vouch for an incomplete fence "
		        "type=%s to=%s",
		        fo_msg_type_name(m->type), m->to);
		fo_msg_clear(m);
		return;
	}
	struct swim_member_info mi;
	if (a->net != NULL && swim_member_find(membership_swim(a), m->to, &mi) && mi.addr != NULL &&
	    mi.addr[0] != '\0') {
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = fo_codec_encode_frame(m, &frame, &len);
		/* heartbeats and their answers go as datagrams;
		 * consensus and fencing stay on TLS */
		bool hb = m->type == FO_HEARTBEAT || m->type == FO_HB_ACK || m->type == FO_HB_NACK;
		(hb ? core_driver_send_dgram : core_driver_send)(
		    a, "failover", fo_msg_type_name(m->type), rc, frame, len, mi.addr, m->to);
		MV_DEBUG("failover", "sent type=%s to=%s", fo_msg_type_name(m->type), m->to);
	}
	fo_msg_clear(m);
}

/* Carries out what waited in hd (the journal's write or a fence's
 * destroys completed), in the pump's order: the actions, then the
 * messages, each through the same filters. An action that starts local
 * destroys (a fence: h->fence_hold) stops it there: what is left moves
 * into that fence's hold and waits for its destroys. hd is left empty. */
static void ha_release(struct agent *a, struct ha_hold *hd)
{
	struct ha *h = HA(a);
	while (hd->first_ev < hd->n_ev) {
		struct fo_event *e = &hd->ev[hd->first_ev++];
		ha_handle_core_event(a, e);
		fo_event_clear(e);
		if (h->fence_hold != NULL) {
			h->fence_hold->hold = *hd; /* (its own hold is empty: it just began) */
			memset(hd, 0, sizeof(*hd));
			return;
		}
	}
	fo_fence_incomplete(h->fo, ha_fence_pending(h));
	for (size_t i = 0; i < hd->n_msg; i++)
		ha_send_msg(a, &hd->msg[i]); /* (clears it) */
	hd->n_msg = 0;
	ha_hold_free(hd);
}

static void ha_pump(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL || h->fo == NULL)
		return;
	for (int guard = 0; guard < 64; guard++) {
		bool any = false;
		/* a fence's destroys in flight on the worker: everything the core
		 * produced since stays queued in it (the fence's end pumps) */
		if (h->fence_hold != NULL)
			break;
		/* the journal first: while its write is in flight, events and
		 * messages stay queued in the core (ha_journal_done pumps) */
		if (ha_journal_busy(a))
			break;
		/* actions first: a FENCED or ACCEPTED that vouches for a destroy
		 * leaves only once the destroy is done (fo.h) */
		struct fo_event e;
		while (h->fence_hold == NULL && fo_pop_event(h->fo, &e)) {
			any = true;
			ha_handle_core_event(a, &e);
			fo_event_clear(&e);
		}
		if (h->fence_hold != NULL) /* (the destroys it started run on) */
			break;
		if (ha_journal_busy(a)) /* (an action may have fed the core) */
			break;
		/* a fence that left VMs running is not claimed: the core stops
		 * claiming it, and what it queued before we knew is dropped */
		fo_fence_incomplete(h->fo, ha_fence_pending(h));
		struct fo_msg m;
		while (fo_pop_output(h->fo, &m)) {
			any = true;
			ha_send_msg(a, &m);
		}

		if (!any)
			break;
	}
	uint64_t now = uv_now(a->loop);
	bool q = fo_quorate(h->fo, now), f = fo_fenced(h->fo);
	ha_block_starts(a);
	ha_stamp_note(a, now);
	if (q != h->quorate_last || f != h->fenced_last) {
		if (q && !h->quorate_last)
			ha_watchdog_pet(a, now); /* armed before anything can start here */
		h->quorate_last = q;
		h->fenced_last = f;
		nodestate_refresh(a);
	}
	core_driver_rearm(a, &h->timer, ha_on_timer, fo_next_deadline(h->fo));
}

static void ha_on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	fo_handle_timer(HA(a)->fo, uv_now(a->loop));
	ha_pump(a);
}

void ha_handle_envelope(struct agent *a, const Mv__Envelope *env)
{
	struct ha *h = HA(a);
	if (h == NULL || h->fo == NULL)
		return;
	struct fo_msg m;
	const char *why = "";
	if (fo_codec_decode(env, &m, &why) < 0) {
		MV_WARN("failover", "rejected failover message from=%s reason=\"%s\"", env->from,
		        why);
		return;
	}
	if (fo_handle_message(h->fo, &m, uv_now(a->loop)) < 0)
		MV_WARN("failover", "failover core rejected message type=%s from=%s",
		        fo_msg_type_name(m.type), env->from);
	fo_msg_clear(&m);
	ha_pump(a);
}

/* ---- membership -------------------------------------------------------------------------- */

static void ha_replicate_soon(struct agent *a);

void ha_on_member_event(struct agent *a, const struct swim_event *e)
{
	struct ha *h = HA(a);
	if (h == NULL || h->fo == NULL)
		return;
	uint64_t now = uv_now(a->loop);
	const char *name = e->name ? e->name : "";
	const char *cause = e->cause ? e->cause : "";
	switch (e->type) {
	case SWIM_EV_MEMBER_JOINED:
		ha_event(a, "member-joined", name, NULL, "joined at %s (incarnation %" PRIu64 ")",
		         e->addr ? e->addr : "?", e->incarnation);
		break;
	case SWIM_EV_MEMBER_ALIVE:
		ha_event(a, "member-alive", name, NULL, "alive again (incarnation %" PRIu64 "): %s",
		         e->incarnation, cause);
		break;
	case SWIM_EV_MEMBER_ADDR_CHANGED:
		ha_event(a, "member-alive", name, NULL, "restarted at %s (incarnation %" PRIu64 ")",
		         e->addr ? e->addr : "?", e->incarnation);
		break;
	case SWIM_EV_MEMBER_SUSPECT:
		ha_event(a, "member-suspect", name, NULL, "suspected (incarnation %" PRIu64 "): %s",
		         e->incarnation, cause);
		break;
	case SWIM_EV_MEMBER_DEAD:
		ha_event(a, "member-dead", name, NULL,
		         "declared dead (incarnation %" PRIu64 ", %u confirmations): %s",
		         e->incarnation, e->confirmations, cause);
		break;
	case SWIM_EV_MEMBER_LEFT:
		ha_event(a, "member-left", name, NULL, "left the cluster (incarnation %" PRIu64 ")",
		         e->incarnation);
		break;
	case SWIM_EV_SELF_REFUTED:
		ha_event(a, "self-refuted", a->opt.name, NULL,
		         "we were suspected; refuted with incarnation %" PRIu64 ": %s",
		         e->incarnation, cause);
		break;
	default:
		return;
	}
	/* what the core is told: the shared glue (fo_driver.c) */
	fo_driver_member_event(h->fo, a->opt.name, e, now);
	ha_pump(a);
	ha_replicate_soon(a);
}

/* ---- actions -------------------------------------------------------------------------------- */

static bool ha_expected(struct agent *a, const char *name, const char *uuid)
{
	uint64_t now = uv_now(a->loop);
	struct ha_expect **pp = &HA(a)->expects;
	bool hit = false;
	while (*pp != NULL) {
		struct ha_expect *x = *pp;
		if (x->until <= now) {
			*pp = x->next;
			free(x);
			continue;
		}
		if (strcmp(x->key, name) == 0 || strcmp(x->key, uuid) == 0)
			hit = true;
		pp = &x->next;
	}
	return hit;
}

void ha_expect_stop(struct agent *a, const char *key)
{
	struct ha *h = HA(a);
	if (h == NULL || key == NULL)
		return;
	struct ha_expect *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return;
	snprintf(x->key, sizeof(x->key), "%s", key);
	x->until = uv_now(a->loop) + HA_EXPECT_MS;
	x->next = h->expects;
	h->expects = x;
}

bool ha_may_start_vm(struct agent *a, const char *uuid, bool vm_ha, uint64_t vm_epoch, char *err,
                     size_t errlen)
{
	struct ha *h = HA(a);
	if (!vm_ha || h == NULL || h->fo == NULL)
		return true;
	if (ha_order_all_pending(h)) {
		snprintf(err, errlen,
		         "%s was failed over, and its fence order for every HA VM here waits for "
		         "libvirt to answer again: no HA VM starts here before it is carried out",
		         a->opt.name);
		return false;
	}
	if (!fo_quorate(h->fo, uv_now(a->loop))) {
		snprintf(
		    err, errlen,
		    "%s is not quorate (%zu of %zu voters acknowledge it, %zu needed): an HA VM "
		    "starts only on a quorate host, which the others cannot be failing over",
		    a->opt.name, fo_acknowledged(h->fo, uv_now(a->loop)), fo_voters(h->fo),
		    fo_majority(h->fo));
		return false;
	}
	size_t n = nodestate_count(a);
	for (size_t i = 0; i < n; i++) {
		Mv__NodeState *s = nodestate_unpack_at(a, i);
		if (s == NULL)
			continue;
		bool stale = false;
		if (strcmp(s->name, a->opt.name) != 0 && ha_member_alive(a, s->name))
			for (size_t j = 0; j < s->n_vms && !stale; j++)
				stale = strcmp(s->vms[j]->uuid, uuid) == 0 &&
				        ha_vm_active(s->vms[j]->state) &&
				        s->vms[j]->owner_epoch > vm_epoch;
		if (stale)
			snprintf(err, errlen,
			         "%s runs this VM with a higher owner epoch: the copy here (epoch "
			         "%" PRIu64 ") is stale and will be removed",
			         s->name, vm_epoch);
		mv__node_state__free_unpacked(s, NULL);
		if (stale)
			return false;
	}
	return true;
}

static bool ha_virt_active(enum virt_vm_state s)
{
	return s == VIRT_VM_RUNNING || s == VIRT_VM_PAUSED || s == VIRT_VM_OTHER;
}

/* ---- fences that failed -------------------------------------------------------------------
 *
 * The core marks a fence done when it emits the action (fo.h): the
 * heartbeats that follow say "fenced through", and the others may restart
 * the VMs elsewhere on that word, or once they have waited out the fence
 * deadline. A destroy that fails (libvirt down, an error) leaves the VM
 * running here all the same, so this host is NOT fenced. Then:
 *   - the VM is remembered (uuid, and the epoch below which it is a stale
 *     copy: its epoch + 1 for a self-fence, the plan's new epoch for a
 *     fence order) and the destroy retried every second while libvirt
 *     answers (a VM found stopped, undefined, or at that epoch or newer —
 *     restarted here by a later plan — needs nothing more);
 *   - a self-fence that ran while libvirt did not answer (the inventory
 *     may be stale or empty) destroys, once libvirt answers again, every
 *     HA VM then active, provided the core is still fenced (nothing can
 *     have started here since: starts and restarts need quorum);
 *   - the watchdog is not petted while any of this is left, quorate or
 *     not, and is armed if it was not: it resets the host F after the last
 *     pet, which is what the others count on (if failover.watchdog is not
 *     set, nothing does: the event says so);
 *   - one event says the fence is incomplete, one that it completed.
 */

/* A fence order for every HA VM (all_ha) came while libvirt did not
 * answer, and its retry (ha_fence_retry) has not listed the VMs yet: it
 * will destroy every HA VM active then, so nothing may start here before
 * (a restart started now would be destroyed with the order's VMs). */
static bool ha_order_all_pending(const struct ha *h)
{
	return h != NULL && h->fence_unknown && h->fence_order_all;
}

/* Tells the worker whether an HA VM's start already checked on the loop
 * and still queued there may run (virt_block_ha_starts): not while this
 * host is not quorate or fenced, nor while a fence order for every HA VM
 * waits for libvirt. Guarantees the worker's view matches ours from the
 * moment either changes (called by ha_pump and ha_order_all_set). */
static void ha_block_starts(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL || h->fo == NULL)
		return;
	if (ha_order_all_pending(h))
		virt_block_ha_starts(
		    "a fence order for every HA VM here waits for libvirt to "
		    "answer again (no HA VM starts here before it is carried out)");
	else if (!fo_quorate(h->fo, uv_now(a->loop)) || fo_fenced(h->fo))
		virt_block_ha_starts("this host is not quorate (an HA VM starts only on a host "
		                     "with quorum)");
	else
		virt_block_ha_starts(NULL);
}

/* Sets or clears that state; while it is set, no VM moves in (a VM that
 * landed before the retry lists the VMs would be destroyed with them: new
 * proposals are refused, and a move reserved before does not start an HA
 * VM here), and HA VMs start neither by ha_may_start_vm's check on the
 * loop nor on the worker (ha_block_starts). */
static void ha_order_all_set(struct agent *a, bool pending)
{
	HA(a)->fence_order_all = pending;
	migration_hold_incoming(a, pending ? "a fence order for every HA VM here waits for "
	                                     "libvirt to answer again"
	                                   : NULL);
	ha_block_starts(a);
}

static bool ha_fence_pending(const struct ha *h)
{
	return h != NULL && (h->n_unfenced > 0 || h->fence_unknown);
}

static void ha_unfenced_add(struct agent *a, const char *uuid, const char *name,
                            uint64_t below_epoch, const char *why, const char *err)
{
	struct ha *h = HA(a);
	struct ha_unfenced *u = NULL;
	for (size_t i = 0; i < h->n_unfenced && u == NULL; i++)
		if (strcmp(h->unfenced[i].uuid, uuid) == 0)
			u = &h->unfenced[i];
	if (u == NULL) {
		if (h->n_unfenced == h->cap_unfenced) {
			size_t cap = h->cap_unfenced ? h->cap_unfenced * 2 : 8;
			struct ha_unfenced *p = realloc(h->unfenced, cap * sizeof(*p));
			if (p == NULL) {
				/* cannot remember it: the watchdog still sees it running */
				MV_ERROR("failover",
				         "out of memory recording an unfenced vm uuid=%s", uuid);
				return;
			}
			h->unfenced = p;
			h->cap_unfenced = cap;
		}
		u = &h->unfenced[h->n_unfenced++];
		memset(u, 0, sizeof(*u));
		snprintf(u->uuid, sizeof(u->uuid), "%s", uuid);
	}
	snprintf(u->name, sizeof(u->name), "%s", name);
	if (below_epoch > u->below_epoch)
		u->below_epoch = below_epoch;
	snprintf(u->why, sizeof(u->why), "%s", why);
	snprintf(u->err, sizeof(u->err), "%.250s", err);
}

/* ---- a fence's local destroys, on the worker ---------------------------------------------
 *
 * A self-fence, a fence order and the retries of what they left running
 * destroy local VMs. With libvirtd slow or stopped a destroy takes seconds
 * or never returns, so they run on the hypervisor worker's critical lane
 * (virt_vm_destroy_async; migrations cannot take its threads, and a
 * listing in flight does not refuse them), and the loop goes on answering
 * SWIM and clients meanwhile. EVENTS BEFORE MESSAGES still holds: from a
 * fence's event until its destroys completed (h->fence_hold), nothing the
 * core produced leaves — what the pump or a journal write had popped after
 * the event waits in the fence's hold, the rest stays queued in the core —
 * and then the usual filters apply (a destroy that failed makes the fence
 * incomplete: nothing that vouches for it is sent). The worker reads each
 * VM's epoch just before its destroy, so a copy restarted here by a later
 * plan is left alone, as the loop's check did. The watchdog is not petted
 * while the destroys run: one that never returns (libvirtd stopped) ends
 * with the host reset by the watchdog, timeout_s after its last pet (a
 * self-fence hurried it to 1 s first), as when the destroys held the loop.
 * Retries do not hold the core: a fence left incomplete already keeps
 * everything that vouches for it from leaving. Without a worker (unit
 * fixtures), or when its lane is full, the destroys run on the loop as
 * before. */

static void ha_lfence_free(struct ha_lfence *lf)
{
	ha_hold_free(&lf->hold);
	free(lf->items);
	free(lf->vms);
	free(lf);
}

/* One VM more (once per UUID: the highest below epoch wins, as in
 * ha_unfenced_add). -ENOMEM. */
static int ha_lfence_add(struct ha_lfence *lf, const char *uuid, const char *name,
                         uint64_t below_epoch, const char *why)
{
	for (size_t i = 0; i < lf->n; i++)
		if (strcmp(lf->items[i].key, uuid) == 0) {
			if (below_epoch > lf->items[i].below_epoch)
				lf->items[i].below_epoch = below_epoch;
			return 0;
		}
	if (lf->n == lf->cap) {
		size_t cap = lf->cap ? 2 * lf->cap : 8;
		struct virt_destroy_item *it = realloc(lf->items, cap * sizeof(*it));
		if (it == NULL)
			return -ENOMEM;
		lf->items = it;
		struct ha_lfence_vm *vm = realloc(lf->vms, cap * sizeof(*vm));
		if (vm == NULL)
			return -ENOMEM;
		lf->vms = vm;
		lf->cap = cap;
	}
	struct virt_destroy_item *it = &lf->items[lf->n];
	memset(it, 0, sizeof(*it));
	snprintf(it->key, sizeof(it->key), "%s", uuid);
	it->below_epoch = below_epoch;
	snprintf(lf->vms[lf->n].name, sizeof(lf->vms[lf->n].name), "%s", name);
	snprintf(lf->vms[lf->n].why, sizeof(lf->vms[lf->n].why), "%s", why);
	lf->n++;
	return 0;
}

/* The local VMs a fence destroys, from the inventory cache: every active
 * HA one (only NULL: below its epoch + 1), or the active ones the plan
 * lists below their new epochs. -ENOMEM. */
static int ha_lfence_collect(struct agent *a, struct ha_lfence *lf, const struct fo_plan *only,
                             bool all, const char *why)
{
	size_t n = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	for (size_t i = 0; i < n; i++) {
		if (!ha_virt_active(vms[i].state))
			continue;
		bool hit = false;
		uint64_t b = 0;
		if (only == NULL || all) {
			hit = vms[i].ha;
			b = vms[i].epoch + 1;
		}
		for (size_t j = 0; only != NULL && j < only->n; j++)
			if (strcmp(only->entries[j].uuid, vms[i].uuid) == 0 &&
			    vms[i].epoch < only->entries[j].new_epoch) {
				hit = true;
				if (only->entries[j].new_epoch > b)
					b = only->entries[j].new_epoch;
			}
		if (hit && ha_lfence_add(lf, vms[i].uuid, vms[i].name, b, why) < 0)
			return -ENOMEM;
	}
	return 0;
}

static struct ha_unfenced *ha_unfenced_find(struct ha *h, const char *uuid)
{
	for (size_t i = 0; i < h->n_unfenced; i++)
		if (strcmp(h->unfenced[i].uuid, uuid) == 0)
			return &h->unfenced[i];
	return NULL;
}

static void ha_fence_incomplete(struct agent *a, const char *what);

/* The destroys' outcome, on the loop: logged, failures remembered for the
 * retry (and the rest forgotten), the fence's own ending, and then what
 * waited for it. lf is freed. */
static void ha_lfence_finish(struct agent *a, struct ha_lfence *lf)
{
	struct ha *h = HA(a);
	uint64_t now = uv_now(a->loop);
	unsigned done = 0, failed = 0;
	bool retry = lf->kind == HA_LFENCE_RETRY;
	for (size_t i = 0; i < lf->n; i++) {
		const struct virt_destroy_item *it = &lf->items[i];
		const struct ha_lfence_vm *vm = &lf->vms[i];
		if (it->rc > 0) {
			done++;
			MV_WARN_ALWAYS("failover", "fenced vm%s name=%s uuid=%s cause=\"%s\"",
			               retry ? " on retry" : "", vm->name, it->key, vm->why);
			ha_event(a, "vm-fenced", a->opt.name, vm->name, "destroyed here%s: %s",
			         retry ? " (on retry)" : "", vm->why);
		}
		if (it->rc >= 0) {
			/* (one a later fence recorded below a higher epoch stays) */
			struct ha_unfenced *u = ha_unfenced_find(h, it->key);
			if (u == NULL || u->below_epoch > it->below_epoch)
				continue;
			if (it->rc == 0)
				MV_INFO("failover",
				        "unfenced vm no longer runs here name=%s uuid=%s", u->name,
				        u->uuid);
			*u = h->unfenced[--h->n_unfenced];
			continue;
		}
		failed++;
		if (retry) {
			MV_DEBUG("failover", "fence retry failed name=%s uuid=%s error=\"%s\"",
			         vm->name, it->key, it->err);
		} else {
			MV_ERROR("failover", "cannot fence vm name=%s uuid=%s error=\"%s\"",
			         vm->name, it->key, it->err);
			ha_event(
			    a, "vm-fence-failed", a->opt.name, vm->name,
			    "could not destroy: %s (retried; this host is not fenced meanwhile)",
			    it->err);
		}
		ha_unfenced_add(a, it->key, vm->name, it->below_epoch, vm->why, it->err);
	}
	if (lf->n > 0)
		nodestate_refresh(a);
	uint64_t took = now - lf->started_at;
	switch (lf->kind) {
	case HA_LFENCE_SELF:
		if (lf->blind)
			h->fence_unknown = true; /* the inventory may be stale: retried blind */
		MV_WARN(
		    "failover",
		    "self-fence done destroyed=%u failed=%u libvirt_unknown=%d took_ms=%" PRIu64,
		    done, failed, h->fence_unknown, took);
		if (ha_fence_pending(h))
			ha_fence_incomplete(a, "self-fence");
		ha_watchdog_after_self_fence(a);
		break;
	case HA_LFENCE_ORDER:
		MV_WARN(
		    "failover",
		    "fence order done destroyed=%u failed=%u libvirt_unknown=%d took_ms=%" PRIu64,
		    done, failed, lf->blind, took);
		if (failed > 0 || lf->blind) {
			ha_fence_incomplete(a, "fence order");
			ha_watchdog_pet(a, now); /* no more pets until it is done */
		}
		break;
	case HA_LFENCE_RETRY:
		if (done > 0 || failed > 0)
			MV_INFO("failover", "fence retry destroyed=%u failed=%u took_ms=%" PRIu64,
			        done, failed, took);
		if (!ha_fence_pending(h)) {
			MV_WARN("failover",
			        "fence complete: every VM a fence left running is destroyed now");
			ha_event(a, "fence-completed", a->opt.name, NULL,
			         "every VM the fence left running is destroyed now: this host is "
			         "fenced");
			ha_watchdog_pet(a, now); /* the usual rule applies again */
		}
		break;
	}
	ha_release(a, &lf->hold); /* (moves it on if an action there fences again) */
	ha_lfence_free(lf);
}

static void ha_lfence_done(struct virt *v, int status, struct virt_destroy_item *items, size_t n,
                           void *ud)
{
	(void)v;
	(void)items;
	(void)n;
	struct ha_lfence *lf = ud;
	struct agent *a = lf->a;
	struct ha *h = HA(a);
	h->lfence_running--;
	if (h->fence_hold == lf)
		h->fence_hold = NULL;
	if (lf->kind == HA_LFENCE_RETRY)
		h->fence_retrying = false;
	if (status != 0 || a->stopping || h->fo == NULL) {
		MV_INFO("failover", "fence destroys ended while stopping vms=%zu", lf->n);
		ha_lfence_free(lf);
		return;
	}
	uv_update_time(a->loop); /* (took_ms) */
	ha_lfence_finish(a, lf);
	ha_pump(a); /* what the core produced meanwhile */
}

/* One destroy on the loop (no worker): as the worker's (virt.h). */
static void ha_lfence_here(struct agent *a, struct virt_destroy_item *it)
{
	struct virt_vm cur;
	it->rc = virt_vm_find(a->virt, it->key, &cur, it->err, sizeof(it->err));
	if (it->rc == -ENOENT)
		it->rc = 0;
	if (it->rc < 0 || cur.epoch >= it->below_epoch)
		return;
	if (ha_virt_active(cur.state)) {
		it->rc = virt_vm_destroy(a->virt, it->key, it->err, sizeof(it->err));
		if (it->rc < 0)
			return;
		it->rc = 1;
	}
	if (it->undefine && cur.persistent)
		it->undefined = virt_vm_undefine(a->virt, it->key, it->err, sizeof(it->err)) == 0;
}

/* Carries out lf: on the worker's critical lane (a self-fence or a fence
 * order then holds the core's output until done), else here. */
static void ha_lfence_run(struct agent *a, struct ha_lfence *lf)
{
	struct ha *h = HA(a);
	lf->started_at = uv_now(a->loop);
	for (size_t i = 0; i < lf->n; i++)
		ha_expect_stop(a, lf->items[i].key);
	int rc = lf->n == 0 ? -EINVAL
	                    : virt_vm_destroy_async(a->virt, lf->items, lf->n, HVWORK_CRITICAL,
	                                            ha_lfence_done, lf);
	if (rc == 0) {
		h->lfence_running++;
		if (lf->kind == HA_LFENCE_RETRY)
			h->fence_retrying = true;
		else
			h->fence_hold = lf;
		h->fence_slow_told = false;
		MV_INFO("failover", "fence destroys started on the worker kind=%s vms=%zu",
		        lf->kind == HA_LFENCE_SELF    ? "self-fence"
		        : lf->kind == HA_LFENCE_ORDER ? "fence order"
		                                      : "retry",
		        lf->n);
		return;
	}
	if (rc != -EINVAL && rc != -ENOTSUP)
		MV_DEBUG("failover", "fence destroys run on the loop vms=%zu error=\"%s\"", lf->n,
		         strerror(-rc));
	for (size_t i = 0; i < lf->n; i++)
		ha_lfence_here(a, &lf->items[i]);
	ha_lfence_finish(a, lf);
}

/* A fence's job; NULL when out of memory (then nothing is destroyed: the
 * fence is remembered as blind, and retried). */
static struct ha_lfence *ha_lfence_new(struct agent *a, enum ha_lfence_kind kind,
                                       const struct fo_plan *only, bool all, const char *why)
{
	struct ha_lfence *lf = calloc(1, sizeof(*lf));
	if (lf != NULL) {
		lf->a = a;
		lf->kind = kind;
		if (kind != HA_LFENCE_RETRY && ha_lfence_collect(a, lf, only, all, why) < 0) {
			ha_lfence_free(lf);
			lf = NULL;
		}
	}
	if (lf == NULL) {
		MV_ERROR("failover", "out of memory listing the VMs a fence destroys");
		if (kind == HA_LFENCE_SELF || all) {
			HA(a)->fence_unknown = true; /* retried blind */
			if (all)                     /* (a pending one stays) */
				ha_order_all_set(a, true);
		}
	}
	return lf;
}

static uint32_t ha_fence_retry_ms(const struct agent *a)
{
	return a->opt.fo_heartbeat_ms > 1000 ? a->opt.fo_heartbeat_ms : 1000;
}

/* A fence left VMs running: said once per fence, loudly. */
static void ha_fence_incomplete(struct agent *a, const char *what)
{
	struct ha *h = HA(a);
	char names[400] = "";
	size_t used = 0;
	for (size_t i = 0; i < h->n_unfenced && used < sizeof(names) - 1; i++)
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
		                         used ? ", " : "", h->unfenced[i].name);
	char wd[200];
	if (h->wd_on)
		snprintf(wd, sizeof(wd),
		         "the watchdog stays armed and unpetted: it resets this host "
		         "within %u s of its last pet",
		         h->wd.timeout_s);
	else
		snprintf(wd, sizeof(wd),
		         "no watchdog is set (failover.watchdog): nothing resets this "
		         "host, and the cluster may restart these VMs elsewhere");
	MV_ERROR("failover",
	         "fence incomplete: this host is NOT fenced what=\"%s\" unfenced=%zu "
	         "vms=\"%s\" libvirt_unknown=%d watchdog=%d retry_ms=%u",
	         what, h->n_unfenced, names, h->fence_unknown, h->wd_on, ha_fence_retry_ms(a));
	ha_event(a, "fence-incomplete", a->opt.name, NULL,
	         "the %s could not destroy %s%s: this host is NOT fenced; %s; retrying the "
	         "destroys every %u ms",
	         what, h->n_unfenced > 0 ? names : "the HA VMs here",
	         h->fence_unknown ? " (libvirt does not answer: it may run more)" : "", wd,
	         ha_fence_retry_ms(a));
	h->unfenced_retry_at = uv_now(a->loop) + ha_fence_retry_ms(a);
}

/* ---- one VM's destroy (or read) on the worker -------------------------------------------
 *
 * The other libvirt calls of HA that used to run on the loop (an HA
 * restart's cleanups and its cache refresh, a stale copy's destroy and
 * undefine) go through virt_vm_destroy_async too, one VM at a time, and
 * the caller's continuation runs on the loop afterwards (or at once,
 * after the same call on the loop, without a worker). Lane: critical for
 * each of them — a stale copy or a start a fence overtook may be a VM
 * running twice, and a restart's answer (RESTARTED, or a hand-back that
 * says "not running here") waits for it; none can queue behind an
 * operator's or a listing's calls on the general lane. */

typedef void (*ha_vm_then_fn)(struct agent *a, struct virt_destroy_item *it, void *arg);

struct ha_vm_job {
	struct agent *a;
	struct virt_destroy_item it;
	ha_vm_then_fn then;
	void *arg;
};

static void ha_vm_job_done(struct virt *v, int status, struct virt_destroy_item *items, size_t n,
                           void *ud)
{
	(void)v;
	(void)status; /* (items say -ECANCELED) */
	(void)items;
	(void)n;
	struct ha_vm_job *j = ud;
	HA(j->a)->lfence_running--;
	j->then(j->a, &j->it, j->arg);
	free(j);
}

/* Destroys uuid while active below below_epoch (0: only reads it into the
 * cache), then undefines it when asked (virt.h), and calls then(a, item,
 * arg) on the loop. then always runs (with -ENOMEM in the item when even
 * this cannot be allocated). */
static void ha_vm_async(struct agent *a, const char *uuid, uint64_t below_epoch, bool undefine,
                        ha_vm_then_fn then, void *arg)
{
	struct ha_vm_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		struct virt_destroy_item it = {.rc = -ENOMEM};
		snprintf(it.key, sizeof(it.key), "%s", uuid);
		snprintf(it.err, sizeof(it.err), "out of memory");
		then(a, &it, arg);
		return;
	}
	j->a = a;
	j->then = then;
	j->arg = arg;
	snprintf(j->it.key, sizeof(j->it.key), "%s", uuid);
	j->it.below_epoch = below_epoch;
	j->it.undefine = undefine;
	if (virt_vm_destroy_async(a->virt, &j->it, 1, HVWORK_CRITICAL, ha_vm_job_done, j) == 0) {
		HA(a)->lfence_running++;
		return;
	}
	ha_lfence_here(a, &j->it);
	then(a, &j->it, arg);
	free(j);
}

static void ha_fence_retry(struct agent *a, uint64_t now)
{
	struct ha *h = HA(a);
	if (!ha_fence_pending(h) || now < h->unfenced_retry_at || h->fence_hold != NULL ||
	    h->fence_retrying)
		return;
	h->unfenced_retry_at = now + ha_fence_retry_ms(a);
	const struct virt_health *vh = a->virt ? virt_health(a->virt) : NULL;
	if (a->virt != NULL && (vh == NULL || !vh->reachable))
		return; /* nothing to try while libvirt is away */
	if (a->virt == NULL) {
		h->n_unfenced = 0;
		h->fence_unknown = false;
		return;
	}
	struct ha_lfence *lf = calloc(1, sizeof(*lf));
	if (lf == NULL)
		return; /* (next second) */
	lf->a = a;
	lf->kind = HA_LFENCE_RETRY;
	int rc = 0;
	if (h->fence_unknown) {
		if (fo_fenced(h->fo)) {
			/* still fenced: every HA VM active now predates the fence */
			MV_WARN("failover", "self-fence goes on now that libvirt answers");
			rc = ha_lfence_collect(a, lf, NULL, false,
			                       "self-fence (it ran while libvirt did not answer)");
		} else if (h->fence_order_all) {
			/* a fence order for the incarnation we lived in: no
			 * failover restart started here since (ha_restart_checked
			 * refuses while this is pending; those in flight at the
			 * order were marked fenced), so every HA VM active now
			 * predates it */
			MV_WARN("failover", "fence order goes on now that libvirt answers");
			rc = ha_lfence_collect(
			    a, lf, NULL, false,
			    "fence order, every HA VM (it ran while libvirt did not answer)");
		} else {
			MV_WARN("failover",
			        "libvirt answers again after a blind self-fence, but this host "
			        "is quorate again since: HA VMs running now are left alone");
		}
	}
	for (size_t i = 0; i < h->n_unfenced && rc == 0; i++)
		rc = ha_lfence_add(lf, h->unfenced[i].uuid, h->unfenced[i].name,
		                   h->unfenced[i].below_epoch, h->unfenced[i].why);
	if (rc < 0) {
		ha_lfence_free(lf);
		return; /* (next second) */
	}
	h->fence_unknown = false;
	ha_order_all_set(a, false);
	ha_lfence_run(a, lf);
}

static void ha_fence_work_free(struct ha_fence_work *fw)
{
	for (size_t i = 0; fw->uuids != NULL && i < fw->n; i++)
		free(fw->uuids[i]);
	free(fw->uuids);
	free(fw->below);
	free(fw);
}

static void ha_fence_work(struct hvwork_job *w)
{
	struct ha_fence_work *fw = w->data;
	fw->rc = virt_remote_fence_below(fw->uri, (const char *const *)fw->uuids, fw->below, fw->n,
	                                 HA_FENCE_TIMEOUT_S, &fw->res, fw->err, sizeof(fw->err));
}

static void ha_fence_after(struct hvwork_job *w, int status)
{
	struct ha_fence_work *fw = w->data;
	struct agent *a = fw->a;
	struct ha *h = HA(a);
	if (h != NULL)
		h->fence_work_running--;
	if (a->stopping)
		MV_INFO("failover",
		        "remote fence dead=%s incarnation=%" PRIu64 " ended while stopping ok=%d",
		        fw->inst.dead, fw->inst.incarnation, status == 0 && fw->rc == 0);
	if (h != NULL && h->fo != NULL && !a->stopping) {
		bool ok = status == 0 && fw->rc == 0;
		char how[FO_TEXT_MAX];
		if (ok)
			snprintf(how, sizeof(how), "through its libvirt %.200s", fw->uri);
		else
			snprintf(how, sizeof(how), "its libvirt %.100s: %.140s", fw->uri,
			         status ? "cancelled" : fw->err);
		MV_INFO("failover", "remote fence dead=%s incarnation=%" PRIu64 " ok=%d how=\"%s\"",
		        fw->inst.dead, fw->inst.incarnation, ok, how);
		ha_event(a, ok ? "fence-remote" : "fence-remote-failed", fw->inst.dead, NULL,
		         "%s%s", ok ? "fenced " : "could not fence: ", how);
		fo_remote_fence_done(h->fo, &fw->inst, ok, how, uv_now(a->loop));
		ha_pump(a);
	}
	ha_fence_work_free(fw);
}

static void ha_remote_fence(struct agent *a, const struct fo_event *e)
{
	struct ha *h = HA(a);
	uint64_t now = uv_now(a->loop);
	Mv__NodeState *s = nodestate_unpack_name(a, e->inst.dead);
	const char *uri = s != NULL ? s->fence_uri : "";
	if (uri == NULL || uri[0] == '\0') {
		fo_remote_fence_done(h->fo, &e->inst, false, "no fence URI published", now);
		if (s)
			mv__node_state__free_unpacked(s, NULL);
		return;
	}
	struct ha_fence_work *fw = calloc(1, sizeof(*fw));
	const struct fo_plan *plan = NULL;
	fo_chosen_plan(h->fo, &e->inst, &plan);
	size_t n = plan ? plan->n : 0;
	if (fw != NULL) {
		fw->uuids = calloc(n ? n : 1, sizeof(char *));
		fw->below = calloc(n ? n : 1, sizeof(uint64_t));
	}
	if (fw == NULL || fw->uuids == NULL || fw->below == NULL) {
		if (fw != NULL)
			ha_fence_work_free(fw);
		mv__node_state__free_unpacked(s, NULL);
		fo_remote_fence_done(h->fo, &e->inst, false, "out of memory", now);
		return;
	}
	fw->a = a;
	fw->inst = e->inst;
	snprintf(fw->uri, sizeof(fw->uri), "%s", uri);
	for (size_t i = 0; i < n; i++)
		if ((fw->uuids[fw->n] = strdup(plan->entries[i].uuid)) != NULL)
			fw->below[fw->n++] = plan->entries[i].new_epoch;
	mv__node_state__free_unpacked(s, NULL);
	fw->w.data = fw;
	fw->w.work = ha_fence_work;
	fw->w.done = ha_fence_after;
	fw->w.what = "remote-fence";
	MV_INFO("failover", "remote fence started dead=%s incarnation=%" PRIu64 " uri=%s",
	        e->inst.dead, e->inst.incarnation, fw->uri);
	ha_event(a, "fence-remote-start", e->inst.dead, NULL, "fencing through its libvirt %s",
	         fw->uri);
	if (hvwork_submit(a->hv, HVWORK_CRITICAL, &fw->w) != 0) {
		fo_remote_fence_done(h->fo, &e->inst, false, "cannot queue work", now);
		ha_fence_work_free(fw);
		return;
	}
	h->fence_work_running++;
}

/* ---- restarts --------------------------------------------------------------------------- */

static void ha_replicate_soon(struct agent *a);

static void ha_restart_finish(struct agent *a, struct ha_restart *r, bool ok, const char *why)
{
	struct ha *h = HA(a);
	uv_update_time(a->loop);
	struct ha_restart **pp = &h->restarts;
	while (*pp != NULL && *pp != r)
		pp = &(*pp)->next_job;
	if (*pp == r)
		*pp = r->next_job;
	if (!r->dead) {
		fo_restart_done(h->fo, &r->inst, r->entry.uuid, ok, why, uv_now(a->loop));
		ha_pump(a);
	}
	free(r);
}

static const struct ha_replica *ha_replica_find(struct ha *h, const char *uuid)
{
	for (size_t i = 0; i < h->n_replicas; i++)
		if (strcmp(h->replicas[i].uuid, uuid) == 0)
			return &h->replicas[i];
	return NULL;
}

/* The define + start of one restart, on the hypervisor worker's critical
 * lane (hvwork.h): starting a QEMU guest takes a few hundred ms, the loop
 * must keep answering probes, and live migrations (their own lane) can
 * never hold the threads a restart or a remote fence needs. */
struct ha_restart_work {
	struct hvwork_job w;
	struct agent *a;
	struct ha_restart *r;
	char *xml;
	int rc;
	char name[VIRT_NAME_MAX];
	char err[512];
};

static void ha_restart_work(struct hvwork_job *w)
{
	struct ha_restart_work *rw = w->data;
	rw->rc = virt_vm_define_start(rw->a->virt, rw->xml, rw->r->entry.new_epoch, rw->name,
	                              sizeof(rw->name), rw->err, sizeof(rw->err));
}

/* After a fence overtook a start: whatever started is destroyed (a
 * failure is remembered for the fence's retry), then the restart is
 * reported failed. */
static void ha_restart_undone(struct agent *a, struct virt_destroy_item *it, void *arg)
{
	struct ha_restart *r = arg;
	if (!a->stopping) {
		if (it->rc < 0)
			ha_unfenced_add(a, r->entry.uuid, r->entry.name, r->entry.new_epoch + 1,
			                "fenced while it was being started", it->err);
		MV_WARN("failover",
		        "vm start undone: a fence ran while it was starting name=%s uuid=%s",
		        r->entry.name, r->entry.uuid);
		nodestate_refresh(a);
	}
	ha_restart_finish(a, r, false, "a fence ran while it was being started");
}

/* A start that succeeded: the cache has the VM (read on the worker), and
 * the restart is reported. */
static void ha_restart_started(struct agent *a, struct virt_destroy_item *it, void *arg)
{
	(void)it;
	if (!a->stopping) {
		nodestate_refresh(a);
		ha_replicate_soon(a);
	}
	ha_restart_finish(a, arg, true, "started");
}

/* A start that failed: the VM is destroyed if it runs after all, before
 * it is handed back (as before, a failure of that destroy is logged). */
static void ha_restart_cleaned(struct agent *a, struct virt_destroy_item *it, void *arg)
{
	struct ha_restart *r = arg;
	if (it->rc < 0 && !a->stopping)
		MV_WARN("failover", "cannot destroy a failed start name=%s uuid=%s error=\"%s\"",
		        r->entry.name, r->entry.uuid, it->err);
	if (!a->stopping)
		nodestate_refresh(a);
	ha_restart_finish(a, r, false, r->fail_why);
}

static void ha_restart_after(struct hvwork_job *w, int status)
{
	struct ha_restart_work *rw = w->data;
	struct agent *a = rw->a;
	struct ha_restart *r = rw->r;
	HA(a)->restart_work_running--;
	uv_update_time(a->loop); /* took_ms must include the start itself */
	bool ok = status == 0 && rw->rc == 0;
	if (r->dead) {
		ha_restart_finish(a, r, false, "agent stopping");
	} else if (r->fenced) {
		/* a fence ran while it was starting: it must not run on (the
		 * core handed the entry back, and it may be placed elsewhere) */
		ha_vm_async(a, r->entry.uuid, UINT64_MAX, false, ha_restart_undone, r);
	} else if (ok) {
		/* refresh the cache now rather than wait for the events */
		ha_vm_async(a, r->entry.uuid, 0, false, ha_restart_started, r);
	} else {
		snprintf(r->fail_why, sizeof(r->fail_why), "%s", status ? "cancelled" : rw->err);
		/* make sure it does not run here before handing it back */
		ha_vm_async(a, r->entry.uuid, UINT64_MAX, false, ha_restart_cleaned, r);
	}
	free(rw->xml);
	free(rw);
}

/* Defines and starts the VM here from xml with the plan's epoch. */
/* The check before a start: the VM as libvirt has it now was read on the
 * worker into the cache (ha_vm_async, read only); rw carries the XML. */
static void ha_restart_checked(struct agent *a, struct virt_destroy_item *it, void *arg)
{
	struct ha_restart_work *rw = arg;
	struct ha_restart *r = rw->r;
	const struct virt_vm *cur = NULL;
	size_t n = 0;
	const struct virt_vm *vms = it->rc >= 0 ? virt_vms(a->virt, &n) : NULL;
	for (size_t i = 0; i < n && cur == NULL; i++)
		if (strcmp(vms[i].uuid, r->entry.uuid) == 0)
			cur = &vms[i];
	const char *why = NULL;
	bool ok = false;
	if (a->stopping || r->dead)
		why = "agent stopping";
	else if (r->fenced)
		why = "a fence ran while its definition was fetched";
	else if (ha_order_all_pending(HA(a)))
		why = "a fence order of every HA VM waits for libvirt here";
	else if ((ok = cur != NULL &&
	               (cur->state == VIRT_VM_RUNNING || cur->state == VIRT_VM_PAUSED) &&
	               cur->epoch >= r->entry.new_epoch))
		why = "already running here";
	else if (hvwork_submit(a->hv, HVWORK_CRITICAL, &rw->w) != 0)
		why = "cannot queue the restart";
	if (why == NULL) {
		HA(a)->restart_work_running++;
		return;
	}
	free(rw->xml);
	free(rw);
	ha_restart_finish(a, r, ok, why);
}

/* Defines and starts the VM here from xml with the plan's epoch, unless it
 * runs here at that epoch already: first read on the worker, then defined
 * and started there (critical lane), nothing on the loop. */
static void ha_restart_with_xml(struct agent *a, struct ha_restart *r, const char *xml)
{
	if (r->fenced) {
		ha_restart_finish(a, r, false, "a fence ran while its definition was fetched");
		return;
	}
	struct ha_restart_work *rw = calloc(1, sizeof(*rw));
	char *copy = strdup(xml);
	if (rw == NULL || copy == NULL) {
		free(rw);
		free(copy);
		ha_restart_finish(a, r, false, "out of memory");
		return;
	}
	rw->a = a;
	rw->r = r;
	rw->xml = copy;
	rw->w.data = rw;
	rw->w.work = ha_restart_work;
	rw->w.done = ha_restart_after;
	rw->w.what = "ha-restart";
	ha_vm_async(a, r->entry.uuid, 0, false, ha_restart_checked, rw);
}

static void ha_restart_ask_next(struct agent *a, struct ha_restart *r);

static void ha_restart_on_replica(struct agent *a, void *arg, Mv__RpcResponse *resp)
{
	struct ha_restart *r = arg;
	if (r->dead) {
		ha_restart_finish(a, r, false, "agent stopping");
		return;
	}
	if (resp->code == MV__RPC_CODE__RPC_OK &&
	    resp->result_case == MV__RPC_RESPONSE__RESULT_REPLICA && resp->replica->xml != NULL &&
	    resp->replica->xml[0] != '\0') {
		ha_restart_with_xml(a, r, resp->replica->xml);
		return;
	}
	ha_restart_ask_next(a, r);
}

static void ha_restart_ask_next(struct agent *a, struct ha_restart *r)
{
	while (r->next < r->n_cands) {
		const char *peer = r->cands[r->next++];
		Mv__ReplicaGetRequest q = MV__REPLICA_GET_REQUEST__INIT;
		q.uuid = r->entry.uuid;
		Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
		req.op_case = MV__RPC_REQUEST__OP_REPLICA_GET;
		req.replica_get = &q;
		char err[256];
		if (peer_client_request(a, peer, &req, ha_restart_on_replica, r, err,
		                        sizeof(err)) == 0)
			return;
	}
	ha_restart_finish(a, r, false, "no reachable peer holds its definition");
}

struct ha_rank {
	const char *name;
	uint64_t score;
};

static int ha_rank_cmp(const void *x, const void *y)
{
	const struct ha_rank *a = x, *b = y;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Alive, non-witness peers (not `skip`) ranked by rendezvous score for uuid. */
static size_t ha_rank_peers(struct agent *a, const struct ha_view *v, const char *uuid,
                            const char *skip, char out[][FO_NAME_MAX], size_t cap)
{
	size_t n = v->n_states, k = 0;
	struct ha_rank *rk = calloc(n ? n : 1, sizeof(*rk));
	if (rk == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const Mv__NodeState *s = v->states[i];
		if (s == NULL || s->witness || strcmp(s->name, a->opt.name) == 0 ||
		    (skip && strcmp(s->name, skip) == 0) || !ha_member_alive(a, s->name))
			continue;
		rk[k].name = s->name;
		rk[k].score = ha_hash(uuid, s->name);
		k++;
	}
	qsort(rk, k, sizeof(*rk), ha_rank_cmp);
	size_t m = k < cap ? k : cap;
	for (size_t i = 0; i < m; i++)
		snprintf(out[i], FO_NAME_MAX, "%s", rk[i].name);
	free(rk);
	return m;
}

static void ha_restart(struct agent *a, const struct fo_event *e)
{
	struct ha *h = HA(a);
	struct ha_restart *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		fo_restart_done(h->fo, &e->inst, e->entry.uuid, false, "out of memory",
		                uv_now(a->loop));
		return;
	}
	r->a = a;
	r->inst = e->inst;
	r->entry = e->entry;
	r->next_job = h->restarts;
	h->restarts = r;
	MV_INFO("failover", "restarting vm name=%s uuid=%s from=%s epoch=%" PRIu64 " priority=%d",
	        e->entry.name, e->entry.uuid, e->inst.dead, e->entry.new_epoch, e->entry.priority);
	const struct ha_replica *rep = ha_replica_find(h, e->entry.uuid);
	if (rep != NULL && rep->xml != NULL) {
		char *xml = strdup(rep->xml);
		if (xml != NULL) {
			ha_restart_with_xml(a, r, xml);
			free(xml);
			return;
		}
	}
	struct ha_view v;
	if (ha_view_load(a, &v) == 0)
		r->n_cands = ha_rank_peers(a, &v, e->entry.uuid, e->inst.dead, r->cands,
		                           sizeof(r->cands) / sizeof(r->cands[0]));
	ha_view_free(&v);
	ha_restart_ask_next(a, r);
}

/* ---- core events ---------------------------------------------------------------------------- */

/* The VMs that die with a host and are not restarted: its running non-HA
 * ones, as last gossiped. One event, and one log line, naming them. */
static void ha_report_lost(struct agent *a, const char *dead)
{
	Mv__NodeState *s = nodestate_unpack_name(a, dead);
	if (s == NULL)
		return;
	char names[400] = "";
	size_t n = 0, used = 0;
	for (size_t i = 0; i < s->n_vms; i++) {
		const Mv__VmInfo *v = s->vms[i];
		if (v->ha || !ha_vm_active(v->state))
			continue;
		n++;
		if (used < sizeof(names) - 1)
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
			                         used ? ", " : "", v->name);
	}
	if (used >= sizeof(names) - 1)
		snprintf(names + sizeof(names) - 5, 5, "...");
	if (n > 0) {
		MV_WARN("failover",
		        "vms lost with their host (not HA, not restarted) host=%s count=%zu "
		        "vms=\"%s\"",
		        dead, n, names);
		ha_event(a, "vms-lost", dead, NULL,
		         "%zu VM%s without HA went down with %s and will not be restarted: %s", n,
		         n == 1 ? "" : "s", dead, names);
	}
	mv__node_state__free_unpacked(s, NULL);
}

/* A fence (self-fence, or a fence order for uuid, or for every HA VM
 * when uuid is NULL) cancels the crash restarts it covers: the VM may be
 * failed over and run elsewhere at a newer epoch, so this host must not
 * start its old copy; reconciliation takes it from here. */
static void ha_crash_cancel(struct agent *a, const char *uuid)
{
	struct ha *h = HA(a);
	bool any = false;
	for (struct ha_crash *c = h->crashes; c != NULL; c = c->next) {
		if (c->restart_at == 0 || (uuid != NULL && strcmp(c->uuid, uuid) != 0))
			continue;
		MV_WARN("failover", "crash restart cancelled by a fence name=%s uuid=%s", c->name,
		        c->uuid);
		c->restart_at = 0;
		any = true;
	}
	if (any)
		nodestate_refresh(a); /* no longer restarting */
}

/* FO_EV_FENCE_SELF: we lost quorum for F. Every local HA VM is destroyed
 * (retried until it is: ha_fence_incomplete), the watchdog hurried first. */
static void ha_on_fence_self(struct agent *a, const struct fo_event *e)
{
	struct ha *h = HA(a);
	MV_WARN("failover", "fencing ourselves cause=\"%s\"", e->text);
	ha_event(a, "fenced-self", a->opt.name, NULL, "%s", e->text);
	for (struct ha_restart *r = h->restarts; r != NULL; r = r->next_job)
		r->fenced = true; /* starts in flight are undone when they finish */
	ha_crash_cancel(a, NULL); /* and pending crash restarts never start */
	/* the watchdog first: from here the host goes within a second
	 * unless the destroys below leave nothing to protect (then it is
	 * disarmed): neither their time nor this agent's death (its close
	 * pings the device) can postpone that */
	ha_watchdog_hurry(a, "self-fence");
	const struct virt_health *vh = a->virt ? virt_health(a->virt) : NULL;
	struct ha_lfence *lf =
	    a->virt ? ha_lfence_new(a, HA_LFENCE_SELF, NULL, false, e->text) : NULL;
	if (lf != NULL) {
		lf->blind = vh == NULL || !vh->reachable;
		ha_lfence_run(a, lf); /* (the rest when the destroys are done) */
		return;
	}
	MV_WARN("failover", "self-fence done destroyed=0 failed=0 libvirt_unknown=%d",
	        h->fence_unknown);
	if (ha_fence_pending(h))
		ha_fence_incomplete(a, "self-fence");
	ha_watchdog_after_self_fence(a);
}

/* FO_EV_FENCE_VMS: the cluster failed us over (or a plan for our own
 * incarnation says so): the order's VMs are destroyed below their new
 * epochs, starts in flight below them undone. */
static void ha_on_fence_vms(struct agent *a, const struct fo_event *e)
{
	struct ha *h = HA(a);
	char why[FO_TEXT_MAX + 96];
	snprintf(why, sizeof(why), "failed over by the cluster (incarnation %" PRIu64 ")",
	         e->inst.incarnation);
	MV_WARN("failover", "fence order vms=%zu every_ha_vm=%d cause=\"%s\"", e->plan.n, e->all_ha,
	        why);
	ha_event(a, "fence-order", a->opt.name, NULL, "%s%zu VMs %s",
	         e->all_ha ? "every HA VM here, " : "", e->plan.n, why);
	for (struct ha_restart *r = h->restarts; r != NULL; r = r->next_job) {
		r->fenced |= e->all_ha; /* every start in flight is of the dead life */
		for (size_t i = 0; i < e->plan.n; i++)
			if (strcmp(e->plan.entries[i].uuid, r->entry.uuid) == 0 &&
			    r->entry.new_epoch < e->plan.entries[i].new_epoch)
				r->fenced = true; /* started below the order's epoch */
	}
	if (e->all_ha)
		ha_crash_cancel(a, NULL);
	for (size_t i = 0; i < e->plan.n && !e->all_ha; i++)
		ha_crash_cancel(a, e->plan.entries[i].uuid);
	const struct virt_health *vh = a->virt ? virt_health(a->virt) : NULL;
	bool blind = a->virt != NULL && (vh == NULL || !vh->reachable);
	if (blind && e->all_ha) {
		/* every HA VM when libvirt answers again (ha_fence_retry) */
		h->fence_unknown = true;
		ha_order_all_set(a, true);
	}
	if (blind) {
		/* the inventory may be stale: every VM of the order is
		 * checked (and destroyed) once libvirt answers again */
		for (size_t i = 0; i < e->plan.n; i++)
			ha_unfenced_add(a, e->plan.entries[i].uuid, e->plan.entries[i].name,
			                e->plan.entries[i].new_epoch, why,
			                "libvirt does not answer");
	}
	struct ha_lfence *lf =
	    a->virt ? ha_lfence_new(a, HA_LFENCE_ORDER, &e->plan, e->all_ha, why) : NULL;
	if (lf != NULL) {
		lf->blind = blind && (e->plan.n > 0 || e->all_ha);
		ha_lfence_run(a, lf); /* (the rest when the destroys are done) */
		return;
	}
	if ((blind && (e->plan.n > 0 || e->all_ha)) ||
	    a->virt != NULL) { /* (a->virt: out of memory) */
		ha_fence_incomplete(a, "fence order");
		ha_watchdog_pet(a, uv_now(a->loop)); /* no more pets until it is done */
	}
}

/* Core events about the voting set and the failover of a host: logged and
 * published as cluster events. */
static void ha_report_cluster_event(struct agent *a, const struct fo_event *e)
{
	struct ha *h = HA(a);
	switch (e->type) {
	case FO_EV_QUORUM_LOST:
		MV_WARN("failover", "quorum lost voters=%zu acknowledged=%zu cause=\"%s\"",
		        fo_voters(h->fo), fo_acknowledged(h->fo, uv_now(a->loop)), e->text);
		ha_event(a, "quorum-lost", a->opt.name, NULL, "%s", e->text);
		break;
	case FO_EV_QUORUM_REGAINED:
		MV_INFO("failover", "quorum regained voters=%zu cause=\"%s\"", fo_voters(h->fo),
		        e->text);
		ha_event(a, "quorum-regained", a->opt.name, NULL, "%s", e->text);
		break;
	case FO_EV_DETECTED:
		MV_WARN("failover", "failover opened dead=%s incarnation=%" PRIu64, e->inst.dead,
		        e->inst.incarnation);
		ha_event(a, "failover-detected", e->inst.dead, NULL,
		         "incarnation %" PRIu64 " confirmed dead: recovery plan needed%s%s",
		         e->inst.incarnation, e->text[0] ? ": " : "", e->text);
		ha_report_lost(a, e->inst.dead);
		break;
	case FO_EV_PROPOSING:
		MV_INFO("failover",
		        "coordinating dead=%s incarnation=%" PRIu64 " round=%u text=\"%s\"",
		        e->inst.dead, e->inst.incarnation, e->inst.round, e->text);
		ha_event(a, "plan-proposing", e->inst.dead, NULL, "%s coordinates round %u: %s",
		         a->opt.name, e->inst.round, e->text);
		break;
	case FO_EV_CHOSEN:
		MV_WARN("failover",
		        "plan chosen dead=%s incarnation=%" PRIu64 " round=%u vms=%zu "
		        "text=\"%s\"",
		        e->inst.dead, e->inst.incarnation, e->inst.round, e->plan.n, e->text);
		ha_event(a, "plan-chosen", e->inst.dead, NULL, "round %u, %zu VMs: %s",
		         e->inst.round, e->plan.n, e->text);
		break;
	case FO_EV_FENCE_CONFIRMED:
		MV_WARN("failover", "fence confirmed dead=%s incarnation=%" PRIu64 " how=\"%s\"",
		        e->inst.dead, e->inst.incarnation, e->text);
		ha_event(a, "fence-confirmed", e->inst.dead, NULL, "%s", e->text);
		break;
	case FO_EV_MEMBER_REMOVED:
		MV_WARN("failover", "member removed from the voting set name=%s cause=\"%s\"",
		        e->peer, e->text);
		ha_event(a, "member-removed", e->peer, NULL, "removed from the voting set: %s",
		         e->text);
		break;
	case FO_EV_REFUSED:
		MV_WARN("failover", "refused failover message from=%s cause=\"%s\"", e->peer,
		        e->text);
		break;
	default:
		break;
	}
}

/* Core events about one HA VM: logged and published as cluster events. */
static void ha_report_vm_event(struct agent *a, const struct fo_event *e)
{
	const struct fo_plan_entry *en = &e->entry;
	switch (e->type) {
	case FO_EV_RESTARTED:
		MV_WARN_ALWAYS("failover",
		               "vm restarted name=%s uuid=%s on=%s from=%s took_ms=%" PRIu64,
		               en->name, en->uuid, e->peer, e->inst.dead, e->took_ms);
		ha_event(a, "vm-restarted", e->peer, en->name,
		         "restarted on %s (was on %s, epoch %" PRIu64 ", priority %d) in %" PRIu64
		         " ms",
		         e->peer, e->inst.dead, en->new_epoch, en->priority, e->took_ms);
		break;
	case FO_EV_RESTART_FAILED:
		MV_WARN_ALWAYS("failover", "vm restart failed name=%s uuid=%s on=%s cause=\"%s\"",
		               en->name, en->uuid, e->peer, e->text);
		ha_event(a, "vm-restart-failed", e->peer, en->name, "%s", e->text);
		break;
	case FO_EV_HANDED_BACK:
		MV_WARN_ALWAYS("failover", "vm handed back name=%s uuid=%s by=%s cause=\"%s\"",
		               en->name, en->uuid, e->peer, e->text);
		ha_event(a, "vm-handed-back", e->peer, en->name, "handed back for a new plan: %s",
		         e->text);
		break;
	case FO_EV_NO_ROOM:
		MV_ERROR("failover", "vm not restarted: no host has room name=%s uuid=%s from=%s",
		         en->name, en->uuid, e->inst.dead);
		ha_event(a, "vm-no-room", e->inst.dead, en->name,
		         "not restarted: no host has room for %u vCPUs / %" PRIu64 " MiB%s%s",
		         en->vcpus, en->memory_kib / 1024, e->text[0] ? ": " : "", e->text);
		break;
	case FO_EV_VM_DOWN:
		MV_WARN("failover",
		        "ha vm down name=%s uuid=%s host=%s epoch=%" PRIu64 " cause=\"%s\"",
		        en->name, en->uuid, e->peer, en->new_epoch, e->text);
		ha_event(a, "vm-down", e->peer, en->name, "%s", e->text);
		break;
	case FO_EV_VM_RECOVERED:
		MV_INFO("failover", "ha vm recovered name=%s uuid=%s on=%s down_ms=%" PRIu64,
		        en->name, en->uuid, e->peer, e->took_ms);
		ha_event(a, "vm-recovered", e->peer, en->name, "%s", e->text);
		break;
	default:
		break;
	}
}

/* One event from the failover core: the ones that ask this node to act
 * (fence, restart, take a new incarnation) are carried out; the rest are
 * reported. */
static void ha_handle_core_event(struct agent *a, struct fo_event *e)
{
	struct ha *h = HA(a);
	switch (e->type) {
	case FO_EV_FENCE_SELF:
		ha_on_fence_self(a, e);
		break;
	case FO_EV_FENCE_VMS:
		ha_on_fence_vms(a, e);
		break;
	case FO_EV_REMOTE_FENCE:
		ha_remote_fence(a, e);
		break;
	case FO_EV_RESTART:
		ha_restart(a, e);
		break;
	case FO_EV_NEW_INCARNATION:
		MV_WARN("failover", "new incarnation asked=%" PRIu64 " cause=\"%s\"",
		        e->inst.incarnation, e->text);
		fo_driver_new_incarnation(h->fo, membership_swim(a), e, uv_now(a->loop));
		membership_pump(a); /* gossip it; SELF_REFUTED reaches us and is saved */
		nodestate_refresh(a);
		break;
	case FO_EV_QUORUM_LOST:
	case FO_EV_QUORUM_REGAINED:
	case FO_EV_DETECTED:
	case FO_EV_PROPOSING:
	case FO_EV_CHOSEN:
	case FO_EV_FENCE_CONFIRMED:
	case FO_EV_MEMBER_REMOVED:
	case FO_EV_REFUSED:
		ha_report_cluster_event(a, e);
		break;
	case FO_EV_RESTARTED:
	case FO_EV_RESTART_FAILED:
	case FO_EV_HANDED_BACK:
	case FO_EV_NO_ROOM:
	case FO_EV_VM_DOWN:
	case FO_EV_VM_RECOVERED:
		ha_report_vm_event(a, e);
		break;
	}
}

/* ---- the gossiped view -> core; stale copies --------------------------------------------- */

/* A stale copy being removed (on the worker: ha_vm_async). */
struct ha_stale {
	char name[VIRT_NAME_MAX];
	char owner[FO_NAME_MAX];
	uint64_t ours, theirs;
};

static void ha_stale_removed(struct agent *a, struct virt_destroy_item *it, void *arg)
{
	struct ha_stale *st = arg;
	HA(a)->stale_running--;
	if (!a->stopping && it->rc >= 0 && (it->rc > 0 || it->undefined)) {
		MV_WARN("failover",
		        "stale copy removed name=%s uuid=%s our_epoch=%" PRIu64
		        " running_on=%s their_epoch=%" PRIu64 " destroyed=%d undefined=%d",
		        st->name, it->key, st->ours, st->owner, st->theirs, it->rc > 0,
		        it->undefined);
		ha_event(a, "stale-copy-removed", a->opt.name, st->name,
		         "runs on %s with epoch %" PRIu64 " > ours %" PRIu64 ": destroyed%s here",
		         st->owner, st->theirs, st->ours, it->undefined ? " and undefined" : "");
		nodestate_refresh(a);
	} else if (!a->stopping && it->rc < 0) {
		MV_WARN("failover", "cannot remove a stale copy name=%s uuid=%s error=\"%s\"",
		        st->name, it->key, it->err);
	}
	free(st);
}

/* A VM here whose UUID runs on another alive host with a higher epoch is a
 * stale copy (we were failed over, or a move finished elsewhere): destroy
 * and undefine it, on the worker (one batch at a time: the next state
 * change looks again). */
static void ha_remove_stale(struct agent *a, const struct ha_view *v)
{
	if (a->virt == NULL || HA(a)->stale_running > 0)
		return;
	size_t n = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	char stale[8][VIRT_UUID_LEN], names[8][VIRT_NAME_MAX], owner[8][FO_NAME_MAX];
	uint64_t theirs[8], ours[8];
	size_t k = 0;
	for (size_t i = 0; i < n && k < 8; i++) {
		for (size_t s = 0; s < v->n_states; s++) {
			const Mv__NodeState *st = v->states[s];
			if (st == NULL || strcmp(st->name, a->opt.name) == 0 ||
			    !ha_member_alive(a, st->name))
				continue;
			for (size_t j = 0; j < st->n_vms; j++) {
				const Mv__VmInfo *o = st->vms[j];
				if (strcmp(o->uuid, vms[i].uuid) == 0 && ha_vm_active(o->state) &&
				    o->owner_epoch > vms[i].epoch) {
					snprintf(stale[k], sizeof(stale[k]), "%s", vms[i].uuid);
					snprintf(names[k], sizeof(names[k]), "%s", vms[i].name);
					snprintf(owner[k], sizeof(owner[k]), "%s", st->name);
					theirs[k] = o->owner_epoch;
					ours[k] = vms[i].epoch;
					k++;
					goto next_vm;
				}
			}
		}
next_vm:;
	}
	for (size_t i = 0; i < k; i++) {
		char src[FO_NAME_MAX];
		if (migration_incoming_source(a, stale[i], src, sizeof(src)))
			continue;
		struct ha_stale *st = calloc(1, sizeof(*st));
		if (st == NULL)
			continue; /* (the next state change) */
		snprintf(st->name, sizeof(st->name), "%s", names[i]);
		snprintf(st->owner, sizeof(st->owner), "%s", owner[i]);
		st->ours = ours[i];
		st->theirs = theirs[i];
		ha_expect_stop(a, stale[i]);
		HA(a)->stale_running++;
		/* (destroyed and undefined only while still below their epoch) */
		ha_vm_async(a, stale[i], theirs[i], true, ha_stale_removed, st);
	}
}

static void ha_on_state_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct ha *h = HA(a);
	struct ha_view v;
	if (ha_view_load(a, &v) == 0) {
		fo_set_hosts(h->fo, v.hosts, v.n_hosts, uv_now(a->loop));
		ha_remove_stale(a, &v);
		/* a host whose state just arrived may now hold replicas */
		uint64_t sig = 0;
		for (size_t i = 0; i < v.n_states; i++)
			if (v.states[i] != NULL && !v.states[i]->witness &&
			    ha_member_alive(a, v.states[i]->name))
				sig += ha_hash(v.states[i]->name, "holder");
		if (sig != h->holders_sig) {
			h->holders_sig = sig;
			ha_replicate_soon(a);
		}
	}
	ha_view_free(&v);
	ha_pump(a);
}

static void ha_on_state_change(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL || a->stopping || uv_is_active((uv_handle_t *)&h->state_timer))
		return;
	uv_timer_start(&h->state_timer, ha_on_state_timer, HA_STATE_DEBOUNCE_MS, 0);
}

/* ---- replication ------------------------------------------------------------------------------ */

static struct ha_sent *ha_sent_get(struct ha *h, const char *uuid)
{
	for (size_t i = 0; i < h->n_sent; i++)
		if (strcmp(h->sent[i].uuid, uuid) == 0)
			return &h->sent[i];
	if (h->n_sent == h->cap_sent) {
		size_t cap = h->cap_sent ? h->cap_sent * 2 : 16;
		struct ha_sent *p = realloc(h->sent, cap * sizeof(*p));
		if (p == NULL)
			return NULL;
		h->sent = p;
		h->cap_sent = cap;
	}
	struct ha_sent *s = &h->sent[h->n_sent++];
	memset(s, 0, sizeof(*s));
	snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
	return s;
}

static void ha_on_put_answer(struct agent *a, void *arg, Mv__RpcResponse *resp)
{
	(void)a;
	(void)arg;
	if (resp->code != MV__RPC_CODE__RPC_OK)
		MV_DEBUG("failover", "replica not stored error=\"%s\"",
		         resp->error ? resp->error : "");
}

static void ha_send_replica(struct agent *a, const char *peer, const struct virt_vm *vm,
                            const char *xml, bool drop, const char *uuid)
{
	Mv__HaReplica rep = MV__HA_REPLICA__INIT;
	rep.owner = a->opt.name;
	rep.uuid = (char *)(vm ? vm->uuid : uuid);
	rep.name = (char *)(vm ? vm->name : "");
	rep.epoch = vm ? vm->epoch : 0;
	rep.priority = vm ? vm->priority : 0;
	rep.group = (char *)(vm ? vm->group : "");
	rep.xml = (char *)(xml ? xml : "");
	rep.updated_unix_ms = ha_wall_ms();
	Mv__ReplicaPutRequest q = MV__REPLICA_PUT_REQUEST__INIT;
	q.replica = &rep;
	q.drop = drop;
	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	req.op_case = MV__RPC_REQUEST__OP_REPLICA_PUT;
	req.replica_put = &q;
	char err[256];
	if (peer_client_request(a, peer, &req, ha_on_put_answer, NULL, err, sizeof(err)) < 0)
		MV_DEBUG("failover", "cannot send replica to=%s error=\"%s\"", peer, err);
}

/* What a replication round sends, once the definitions are read: vms[i]
 * (the HA persistent VMs here) with xmls[i] (NULL: unreadable, err[i]
 * says why when known). */
static void ha_replicate_apply(struct agent *a, bool refresh, const struct virt_vm *vms, size_t n,
                               char *const *xmls)
{
	struct ha *h = HA(a);
	uint64_t now = uv_now(a->loop);
	struct ha_view v;
	if (ha_view_load(a, &v) < 0) {
		ha_view_free(&v);
		return;
	}
	for (size_t i = 0; i < h->n_sent; i++)
		h->sent[i].seen = false;
	size_t R = a->opt.fo_replicas < HA_HOLDERS_MAX ? a->opt.fo_replicas : HA_HOLDERS_MAX;
	for (size_t i = 0; i < n; i++) {
		const struct virt_vm *vm = &vms[i];
		struct ha_sent *s = ha_sent_get(h, vm->uuid);
		if (s == NULL)
			continue;
		s->seen = true;
		const char *xml = xmls[i];
		if (xml == NULL) {
			MV_WARN("failover", "cannot export vm for replication name=%s", vm->name);
			continue;
		}
		uint64_t hx = mv_fnv1a64(MV_FNV1A64_OFFSET, xml);
		char holders[HA_HOLDERS_MAX][FO_NAME_MAX];
		size_t nh = ha_rank_peers(a, &v, vm->uuid, NULL, holders, R);
		for (size_t j = 0; j < nh; j++) {
			bool had = false;
			for (size_t q = 0; q < s->n_holders; q++)
				had = had || strcmp(s->holders[q], holders[j]) == 0;
			if (refresh || !had || hx != s->xml_hash)
				ha_send_replica(a, holders[j], vm, xml, false, NULL);
		}
		/* holders that are no longer: drop their copy */
		for (size_t q = 0; q < s->n_holders; q++) {
			bool still = false;
			for (size_t j = 0; j < nh; j++)
				still = still || strcmp(s->holders[q], holders[j]) == 0;
			if (!still && ha_member_alive(a, s->holders[q]))
				ha_send_replica(a, s->holders[q], NULL, NULL, true, vm->uuid);
		}
		memcpy(s->holders, holders, sizeof(holders));
		s->n_holders = nh;
		s->xml_hash = hx;
		s->sent_at = now;
	}
	/* VMs that are no longer HA here: drop their replicas */
	for (size_t i = 0; i < h->n_sent;) {
		struct ha_sent *s = &h->sent[i];
		if (s->seen) {
			i++;
			continue;
		}
		for (size_t q = 0; q < s->n_holders; q++)
			if (ha_member_alive(a, s->holders[q]))
				ha_send_replica(a, s->holders[q], NULL, NULL, true, s->uuid);
		h->sent[i] = h->sent[--h->n_sent];
	}
	ha_view_free(&v);
}

/* A round whose definitions are read on the worker. */
struct ha_repl_round {
	struct agent *a;
	bool refresh;
	struct virt_vm *vms;
	size_t n;
};

static void ha_replicate_exported(struct virt *virt, int status, char *const *xmls, size_t n,
                                  void *ud)
{
	(void)virt;
	struct ha_repl_round *r = ud;
	struct agent *a = r->a;
	if (status == 0 && n == r->n && HA(a) != NULL && !a->stopping)
		ha_replicate_apply(a, r->refresh, r->vms, r->n, xmls);
	free(r->vms);
	free(r);
}

/* Sends each local HA VM's definition to its holders (when it changed,
 * the holders changed, or every HA_REPLICA_REFRESH_MS). The definitions
 * are read on the hypervisor worker (a libvirtd that does not answer
 * must not hold the loop every 30 s); while another worker call on the
 * connection runs, the round waits for the next tick. */
static void ha_replicate(struct agent *a)
{
	struct ha *h = HA(a);
	if (a->virt == NULL || a->opt.witness || a->stopping)
		return;
	uint64_t now = uv_now(a->loop);
	bool refresh = now >= h->repl_refresh_at;
	size_t n = 0, k = 0;
	const struct virt_vm *cache = virt_vms(a->virt, &n);
	struct virt_vm *vms = n ? malloc(n * sizeof(*vms)) : NULL;
	const char **keys = n ? malloc(n * sizeof(*keys)) : NULL;
	struct ha_repl_round *r = calloc(1, sizeof(*r));
	if ((n && (vms == NULL || keys == NULL)) || r == NULL) {
		free(vms);
		free(keys);
		free(r);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (cache[i].ha && cache[i].persistent)
			vms[k++] = cache[i];
	for (size_t i = 0; i < k; i++)
		keys[i] = vms[i].uuid;
	*r = (struct ha_repl_round){.a = a, .refresh = refresh, .vms = vms, .n = k};
	int rc = virt_vm_export_xml_async(a->virt, keys, k, ha_replicate_exported, r);
	free(keys);
	if (rc < 0 && rc != -ENOTSUP) {
		/* busy, full, libvirt away or no memory: the next tick (only a
		 * process without a worker reads them on the loop, below) */
		free(vms);
		free(r);
		h->repl_dirty = true;
		return;
	}
	if (refresh)
		h->repl_refresh_at = now + HA_REPLICA_REFRESH_MS;
	h->repl_dirty = false;
	if (rc == 0)
		return; /* ha_replicate_exported goes on */
	free(r);
	/* no worker: read them here */
	char **xmls = k ? calloc(k, sizeof(*xmls)) : NULL;
	if (k && xmls == NULL) {
		free(vms);
		return;
	}
	for (size_t i = 0; i < k; i++) {
		char err[512];
		if (virt_vm_export_xml(a->virt, vms[i].uuid, &xmls[i], err, sizeof(err)) < 0)
			MV_WARN("failover", "cannot export vm for replication name=%s error=\"%s\"",
			        vms[i].name, err);
	}
	ha_replicate_apply(a, refresh, vms, k, xmls);
	for (size_t i = 0; i < k; i++)
		free(xmls[i]);
	free(xmls);
	free(vms);
}

static void ha_replicate_soon(struct agent *a)
{
	struct ha *h = HA(a);
	if (h != NULL)
		h->repl_dirty = true;
}

static int ha_replica_store(struct ha *h, const char *from, const Mv__ReplicaPutRequest *q,
                            char *err, size_t errlen)
{
	const Mv__HaReplica *r = q->replica;
	if (r == NULL || r->uuid == NULL || r->uuid[0] == '\0' || strlen(r->uuid) >= FO_UUID_MAX) {
		snprintf(err, errlen, "replica without a valid UUID");
		return -EINVAL;
	}
	if (strcmp(r->owner, from) != 0) {
		snprintf(err, errlen, "replica of %s sent by %s: only the owner replicates",
		         r->owner, from);
		return -EINVAL;
	}
	struct ha_replica *x = NULL;
	size_t at = 0;
	for (size_t i = 0; i < h->n_replicas && x == NULL; i++)
		if (strcmp(h->replicas[i].uuid, r->uuid) == 0) {
			x = &h->replicas[i];
			at = i;
		}
	if (q->drop) {
		if (x != NULL && strcmp(x->owner, from) == 0) {
			free(x->xml);
			h->replicas[at] = h->replicas[--h->n_replicas];
		}
		return 0;
	}
	if (r->xml == NULL || r->xml[0] == '\0' || strlen(r->name) >= VIRT_NAME_MAX ||
	    strlen(r->group) >= FO_GROUP_MAX) {
		snprintf(err, errlen, "replica without XML, or a name or group too long");
		return -EINVAL;
	}
	/* an older epoch never overwrites a newer one */
	if (x != NULL && r->epoch < x->epoch) {
		snprintf(err, errlen, "stale replica (epoch %" PRIu64 " < %" PRIu64 ")", r->epoch,
		         x->epoch);
		return -EEXIST;
	}
	char *xml = strdup(r->xml);
	if (xml == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (x == NULL) {
		if (h->n_replicas == h->cap_replicas) {
			size_t cap = h->cap_replicas ? h->cap_replicas * 2 : 16;
			struct ha_replica *p = realloc(h->replicas, cap * sizeof(*p));
			if (p == NULL) {
				free(xml);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			h->replicas = p;
			h->cap_replicas = cap;
		}
		x = &h->replicas[h->n_replicas++];
		memset(x, 0, sizeof(*x));
	}
	free(x->xml);
	snprintf(x->owner, sizeof(x->owner), "%s", from);
	snprintf(x->uuid, sizeof(x->uuid), "%s", r->uuid);
	snprintf(x->name, sizeof(x->name), "%s", r->name);
	snprintf(x->group, sizeof(x->group), "%s", r->group);
	x->epoch = r->epoch;
	x->priority = r->priority;
	x->updated_unix_ms = r->updated_unix_ms;
	x->xml = xml;
	return 0;
}

/* ---- VM-level HA ------------------------------------------------------------------------------ */

static struct ha_crash *ha_crash_get(struct ha *h, const char *uuid, const char *name)
{
	for (struct ha_crash *c = h->crashes; c != NULL; c = c->next)
		if (strcmp(c->uuid, uuid) == 0)
			return c;
	struct ha_crash *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->next = h->crashes;
	h->crashes = c;
	return c;
}

void ha_on_vm_event(struct agent *a, const char *vm_name)
{
	struct ha *h = HA(a);
	if (h == NULL || a->virt == NULL || vm_name == NULL || a->stopping)
		return;
	ha_replicate_soon(a);
	size_t n = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	for (size_t i = 0; i < n; i++) {
		const struct virt_vm *vm = &vms[i];
		if (strcmp(vm->name, vm_name) != 0 || !vm->ha)
			continue;
		if (vm->state != VIRT_VM_SHUTOFF && vm->state != VIRT_VM_CRASHED)
			continue;
		if (vm->stop_reason != VIRT_STOP_CRASHED && vm->stop_reason != VIRT_STOP_FAILED)
			continue;
		if (ha_expected(a, vm->name, vm->uuid) || vm->desired == VIRT_DESIRED_STOPPED)
			continue;
		uint64_t now = uv_now(a->loop);
		struct ha_crash *c = ha_crash_get(h, vm->uuid, vm->name);
		if (c == NULL || c->restart_at != 0 || c->moving)
			return;
		if (c->count == 0 || now - c->first_at > HA_CRASH_WINDOW_MS) {
			c->count = 0;
			c->first_at = now;
		}
		c->count++;
		uint64_t delay = 1000ull << (c->count - 1 < 10 ? c->count - 1 : 10);
		c->restart_at = now + delay;
		MV_WARN_ALWAYS(
		    "failover", "ha vm stopped unexpectedly name=%s uuid=%s reason=%s crash=%u",
		    vm->name, vm->uuid, virt_stop_reason_name(vm->stop_reason), c->count);
		if (c->count > a->opt.fo_vm_restarts)
			ha_event(a, "vm-crashed", a->opt.name, vm->name,
			         "stopped unexpectedly (%s), crash %u within %u min: moving it to "
			         "another host",
			         virt_stop_reason_name(vm->stop_reason), c->count,
			         HA_CRASH_WINDOW_MS / 60000);
		else
			ha_event(a, "vm-crashed", a->opt.name, vm->name,
			         "stopped unexpectedly (%s), crash %u: restarting here in %" PRIu64
			         " ms",
			         virt_stop_reason_name(vm->stop_reason), c->count, delay);
		return;
	}
}

static bool ha_vm_restarting(struct agent *a, const char *uuid)
{
	struct ha *h = HA(a);
	if (h == NULL || uuid == NULL)
		return false;
	for (const struct ha_crash *c = h->crashes; c != NULL; c = c->next)
		if (strcmp(c->uuid, uuid) == 0)
			return c->restart_at != 0 || c->moving;
	return false;
}

/* The move of a VM that crashed too often: the migration service's move
 * of a stopped VM (migration_move_crashed), the same negotiation as an
 * operator's: a target chosen by placement, its reservation, the owner
 * epoch bumped, the move announced to the voters (MOVES: ha_move_begin
 * below), then the definition handed over under the reservation and
 * the VM started there, undefined here. Its libvirt calls are the
 * migration's, on the hypervisor worker's general lane. While it is
 * under way the crash entry says "moving" (ha_vm_restarting); once it
 * ended, either way, its crash count starts again. */
static struct ha_crash *ha_crash_find(struct agent *a, const char *uuid)
{
	struct ha *h = HA(a);
	for (struct ha_crash *c = h ? h->crashes : NULL; c != NULL; c = c->next)
		if (strcmp(c->uuid, uuid) == 0)
			return c;
	return NULL;
}

static void ha_crash_moved(struct agent *a, const char *uuid, const char *vm, bool ok,
                           const char *target, const char *message)
{
	struct ha_crash *c = ha_crash_find(a, uuid);
	if (c != NULL) {
		c->moving = false;
		c->count = 0;
	}
	if (a->stopping)
		return;
	if (ok) {
		MV_WARN("failover", "crashed ha vm moved name=%s to=%s", vm, target);
		ha_event(a, "vm-moved", target, vm, "kept crashing on %s: started on %s instead",
		         a->opt.name, target);
	} else {
		MV_ERROR("failover", "cannot move crashed ha vm name=%s to=%s error=\"%s\"", vm,
		         target[0] ? target : "-", message);
		ha_event(a, "vm-move-failed", target[0] ? target : a->opt.name, vm,
		         "kept crashing, and could not be moved: %s", message);
	}
	nodestate_refresh(a); /* no longer restarting: the cluster takes it from here */
}

/* Moves a crashed HA VM to the best host that takes it. */
static void ha_move_crashed(struct agent *a, struct ha_crash *c)
{
	char err[512];
	c->moving = true;
	int rc = migration_move_crashed(a, c->uuid, ha_crash_moved, err, sizeof(err));
	if (rc < 0) {
		c->moving = false;
		c->count = 0;
		ha_event(a, "vm-move-failed", a->opt.name, c->name, "cannot prepare the move: %s",
		         err);
	}
}

/* A crash restart on the worker's critical lane has come back. */
struct ha_crash_start {
	struct agent *a;
	char name[VIRT_NAME_MAX];
	unsigned count;
};

static void ha_crash_restarted(struct agent *a, const char *name, unsigned count, int rc,
                               const char *err)
{
	MV_WARN_ALWAYS("failover", "ha vm restarted here name=%s crash=%u ok=%d error=\"%s\"", name,
	               count, rc == 0, rc == 0 ? "" : err);
	ha_event(a, rc == 0 ? "vm-restarted-locally" : "vm-restart-failed", a->opt.name, name,
	         rc == 0 ? "restarted here after crash %u"
	                 : "restart after crash %u "
	                   "failed: %s",
	         count, rc == 0 ? "" : err);
	nodestate_refresh(a);
}

static void ha_crash_start_done(struct virt *v, int status, int rc, const char *err, void *ud)
{
	(void)v;
	struct ha_crash_start *cs = ud;
	if (status == 0 && !cs->a->stopping)
		ha_crash_restarted(cs->a, cs->name, cs->count, rc, err);
	free(cs);
}

/* The cached entry of uuid, or NULL. */
static const struct virt_vm *ha_cached_vm(struct agent *a, const char *uuid)
{
	size_t n = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(vms[i].uuid, uuid) == 0)
			return &vms[i];
	return NULL;
}

static void ha_crash_tick(struct agent *a, uint64_t now)
{
	struct ha *h = HA(a);
	bool quorate = fo_quorate(h->fo, now);
	/* a fence not yet done (ha_fence_pending: a destroy left, or libvirt
	 * blind during one) or this host fenced: no restart, its VMs may run
	 * elsewhere (the fence itself cancels the restarts it covers) */
	bool fenced = ha_fence_pending(h) || fo_fenced(h->fo);
	for (struct ha_crash *c = h->crashes; c != NULL; c = c->next) {
		if (c->restart_at == 0 || c->restart_at > now)
			continue;
		if (!quorate || fenced)
			continue; /* a host without quorum may be failed over: wait */
		char err[512];
		/* no longer ours to restart: gone, running again, HA turned off,
		 * or stopped by the operator through meshvisor meanwhile (the
		 * cache: its lifecycle events keep it, and reading libvirt here
		 * would hold the loop on a slow daemon) */
		const struct virt_vm *vm = ha_cached_vm(a, c->uuid);
		if (vm == NULL || vm->state == VIRT_VM_RUNNING || vm->state == VIRT_VM_PAUSED ||
		    !vm->ha || vm->desired == VIRT_DESIRED_STOPPED) {
			c->restart_at = 0;
			nodestate_refresh(a); /* no longer restarting */
			continue;
		}
		if (c->count > a->opt.fo_vm_restarts) {
			c->restart_at = 0;
			ha_move_crashed(a, c);
			nodestate_refresh(a);
			continue;
		}
		/* the start on the worker's critical lane (a QEMU start takes
		 * hundreds of ms; a slow libvirtd must not hold the loop) */
		struct ha_crash_start *cs = calloc(1, sizeof(*cs));
		int rc = -ENOMEM;
		if (cs != NULL) {
			cs->a = a;
			snprintf(cs->name, sizeof(cs->name), "%s", c->name);
			cs->count = c->count;
			rc = virt_vm_start_async(a->virt, c->uuid, HVWORK_CRITICAL,
			                         ha_crash_start_done, cs);
		}
		if (rc == 0) {
			c->restart_at = 0;
			continue;
		}
		free(cs);
		if (rc == -EBUSY || rc == -EAGAIN) {
			c->restart_at = now + 100; /* another call on the connection: soon */
			continue;
		}
		c->restart_at = 0;
		/* no worker: here, as before */
		rc = virt_vm_start(a->virt, c->uuid, err, sizeof(err));
		ha_crash_restarted(a, c->name, c->count, rc, err);
	}
}

/* ---- the watchdog (failover.watchdog; the device itself is agent/hv/watchdog.c's) -----------
 *
 * The timed fence (fo.c, "WHY NO VM RUNS TWICE") assumes that a
 * host cut off since its last quorate moment q has destroyed its HA VMs by
 * q + F + margin (F = fence_after_ms): its self-fence runs at q + F, and
 * the others restart nothing before q + F + margin. The watchdog covers an
 * agent that cannot run that self-fence: hung, or dead. Linux pings a
 * device whose file closes without the magic close ("watchdog did not
 * stop!"), and a dying process closes its files, so a device with a
 * timeout of F would reset the host of an agent killed just before its
 * self-fence up to F too late. Hence the device's timeout is the margin
 * (T = floor((min(fence_margin_ms, F) - 250) / 1000) s, at least 2 s:
 * watchdog.h), and it is petted until the self-fence's deadline, quorate
 * or not: a hang or a death at time d <= q + F resets the host by d + T <
 * q + F + margin. The self-fence itself first hurries the device to 1 s
 * (mv_watchdog_hurry), then destroys: the host resets by q + F + 1 s unless
 * the destroys leave nothing to protect and it is disarmed, and a death
 * meanwhile (a ping) moves that by a second at most. A reset protects the HA
 * VMs the others may restart elsewhere, and kills everything else on the
 * host, so the device is armed only where it protects something or may
 * soon have to. An agent stalled (or down) longer than T has its host
 * reset. The rule, applied at start, on every tick (heartbeat_ms), the
 * moment the core becomes quorate, and after a self-fence:
 *
 *   quorate        armed (open, configure, pet, if it was not) and petted,
 *                  whether libvirt answers or not. What the watchdog covers
 *                  is a hung agent, and a quorate agent is not hung; its
 *                  VMs run on while libvirtd restarts (an upgrade, a
 *                  crash), and nobody fails them over. Resetting the host
 *                  then would kill every VM on it for nothing.
 *   not quorate, before the self-fence:
 *     libvirt answers, no HA VM runs here: disarmed (magic close). That is
 *                  a host that just booted (resetting it before it ever had
 *                  quorum made agents that restarted a few seconds apart
 *                  under loss reset each other forever), and a host whose
 *                  self-fence destroyed every HA VM (a reset would kill its
 *                  other VMs for nothing);
 *     otherwise    (an HA VM runs here, or libvirt does not answer and the
 *                  device is armed): armed and petted, while the core's
 *                  self-fence clock runs from a real last quorate moment (a
 *                  quorum in this life, or the previous agent's stamp);
 *                  without one (an agent restarted with no usable stamp)
 *                  armed, unpetted: the device's countdown from the
 *                  previous agent's last pet or death is left to run. A
 *                  disarmed device stays disarmed while libvirt does not
 *                  answer (no HA VM ran when it last answered, and none can
 *                  start without it).
 *   the self-fence: hurried to 1 s before its destroys; HA VMs left after
 *                  them (a destroy failed, libvirt does not answer): armed,
 *                  never petted: the host resets within a second, and
 *                  dying cannot postpone that by more than another. The
 *                  destroys must finish within that second, or the reset
 *                  comes first (it is a fence too).
 *   a fence left VMs running (see "fences that failed"), quorate or not:
 *                  armed, never petted until every such VM is destroyed:
 *                  the others may be restarting them elsewhere on the
 *                  strength of that fence, and the reset is what destroys
 *                  them then.
 *   clean stop     disarmed.
 * A disarmed host is armed again the moment it is quorate, before anything
 * can start here (restarts, crash restarts and starts of HA VMs all need
 * quorum; restarts run on a worker, after this). */

/* HA VMs running here by the inventory, or -1 when libvirt does not answer
 * (the inventory may be stale: unknown). */
static int ha_watchdog_ha_vms(struct agent *a)
{
	if (a->virt == NULL)
		return 0;
	const struct virt_health *vh = virt_health(a->virt);
	if (vh == NULL || !vh->reachable)
		return -1;
	size_t n = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	int k = 0;
	for (size_t i = 0; i < n; i++)
		if (vms[i].ha && ha_virt_active(vms[i].state))
			k++;
	return k;
}

/* An arm or a pet failed: said once until one succeeds again. */
static void ha_watchdog_failed(struct agent *a, const char *what, const char *err)
{
	struct ha *h = HA(a);
	if (h->wd_failing)
		return;
	h->wd_failing = true;
	MV_ERROR("failover", "watchdog %s path=%s error=\"%s\"", what, h->wd.path, err);
	ha_event(a, "watchdog-failed", a->opt.name, NULL, "%s: %s", what, err);
}

static void ha_watchdog_disarm(struct agent *a, const char *cause)
{
	struct ha *h = HA(a);
	char err[512];
	h->wd_petting = false;
	if (!mv_watchdog_armed(&h->wd))
		return;
	if (mv_watchdog_disarm(&h->wd, err, sizeof(err)) < 0) {
		MV_ERROR("failover", "watchdog disarm failed path=%s cause=\"%s\" error=\"%s\"",
		         h->wd.path, cause, err);
		ha_event(a, "watchdog-failed", a->opt.name, NULL, "disarm (%s) failed: %s", cause,
		         err);
		return;
	}
	MV_INFO("failover", "watchdog disarmed path=%s cause=\"%s\"", h->wd.path, cause);
	ha_event(a, "watchdog-disarmed", a->opt.name, NULL, "%s", cause);
}

/* At a self-fence (and after one that left HA VMs): armed, the device is
 * set to 1 s and no longer petted (ha_watchdog_pet checks wd_hurried):
 * the host resets within a second unless the destroys leave nothing to
 * protect and it is disarmed. Not armed: nothing (after_self_fence arms it
 * if HA VMs are left). */
static void ha_watchdog_hurry(struct agent *a, const char *why)
{
	struct ha *h = HA(a);
	if (h == NULL || !h->wd_on || !mv_watchdog_armed(&h->wd) || h->wd_hurried)
		return;
	char err[512];
	h->wd_petting = false;
	if (mv_watchdog_hurry(&h->wd, err, sizeof(err)) < 0) {
		ha_watchdog_failed(a, "hurry failed", err);
		return;
	}
	h->wd_hurried = true;
	MV_WARN("failover", "watchdog hurried path=%s timeout_s=%u cause=\"%s\"", h->wd.path,
	        h->wd.timeout_s, why);
}

/* Armed without a pet: the host resets timeout_s from now (or from the
 * last pet, on a device still running) unless quorum comes first. */
static void ha_watchdog_arm_unpetted(struct agent *a, const char *cause)
{
	struct ha *h = HA(a);
	char err[512];
	if (mv_watchdog_armed(&h->wd))
		return;
	if (mv_watchdog_open(&h->wd, err, sizeof(err)) < 0) {
		ha_watchdog_failed(a, "cannot arm", err);
		return;
	}
	h->wd_failing = false;
	MV_WARN("failover", "watchdog armed unpetted path=%s timeout_s=%u cause=\"%s\"", h->wd.path,
	        h->wd.timeout_s, cause);
	ha_event(a, "watchdog-armed", a->opt.name, NULL,
	         "%s: not petted without quorum, it resets this host within %u s", cause,
	         h->wd.timeout_s);
}

/* A fence left VMs running here: armed, no pets (the rule above). */
static void ha_watchdog_hold_for_fence(struct agent *a)
{
	struct ha *h = HA(a);
	if (!mv_watchdog_armed(&h->wd)) {
		ha_watchdog_arm_unpetted(a, "a fence left VMs running here");
	} else if (h->wd_petting) {
		MV_ERROR("failover",
		         "watchdog no longer petted path=%s timeout_s=%u cause=\"a "
		         "fence left VMs running here\"",
		         h->wd.path, h->wd.timeout_s);
		ha_event(a, "watchdog-unpetted", a->opt.name, NULL,
		         "a fence left VMs running here: no more pets until they are destroyed; "
		         "it resets this host %u s after the last pet",
		         h->wd.timeout_s);
	}
	h->wd_petting = false;
}

/* Quorate: armed (re-configured after a self-fence hurried it) and
 * petted, whether libvirt answers or not (the rule above). */
static void ha_watchdog_pet_quorate(struct agent *a)
{
	struct ha *h = HA(a);
	char err[512];
	h->fence_clock_known = true;
	if (h->wd_hurried && mv_watchdog_armed(&h->wd)) {
		/* set to 1 s at the self-fence: opened and configured again
		 * (the pets below would not keep a 1 s device) */
		ha_watchdog_disarm(a, "quorate again after a self-fence: re-configured");
	}
	h->wd_hurried = false;
	if (!mv_watchdog_armed(&h->wd)) {
		if (mv_watchdog_arm(&h->wd, err, sizeof(err)) < 0) {
			ha_watchdog_failed(a, "cannot arm", err);
			return;
		}
		MV_INFO("failover", "watchdog armed path=%s timeout_s=%u cause=quorate", h->wd.path,
		        h->wd.timeout_s);
		ha_event(a, "watchdog-armed", a->opt.name, NULL,
		         "quorate: petted every %u ms while quorate, it resets this host %u s "
		         "after the last pet",
		         a->opt.fo_heartbeat_ms, h->wd.timeout_s);
	} else if (mv_watchdog_pet(&h->wd, err, sizeof(err)) < 0) {
		ha_watchdog_failed(a, "pet failed", err);
		return;
	} else if (!h->wd_petting) {
		MV_INFO("failover", "watchdog petted again path=%s cause=quorate", h->wd.path);
		ha_event(a, "watchdog-petted", a->opt.name, NULL, "quorate again: petted again");
	}
	h->wd_petting = true;
	h->wd_failing = false;
}

/* Not quorate, an HA VM runs here and the device is not armed: armed and
 * petted if the self-fence is still ahead (pets), else armed unpetted. */
static void ha_watchdog_arm_not_quorate(struct agent *a, int vms, bool pets)
{
	struct ha *h = HA(a);
	char err[512];
	if (!pets) {
		ha_watchdog_arm_unpetted(a, "not quorate, and an HA VM runs here");
		return;
	}
	if (mv_watchdog_arm(&h->wd, err, sizeof(err)) < 0) {
		ha_watchdog_failed(a, "cannot arm", err);
		return;
	}
	h->wd_failing = false;
	MV_WARN("failover",
	        "watchdog armed path=%s timeout_s=%u ha_vms=%d cause=\"not quorate, "
	        "and an HA VM runs here: petted until the self-fence\"",
	        h->wd.path, h->wd.timeout_s, vms);
	ha_event(a, "watchdog-armed", a->opt.name, NULL,
	         "not quorate, and an HA VM runs here: petted until this host fences itself, "
	         "it resets this host %u s after the last pet",
	         h->wd.timeout_s);
	h->wd_petting = true;
}

/* Not quorate, armed: petted until the self-fence's deadline (pets), and
 * from then on no more (said once). */
static void ha_watchdog_pet_until_self_fence(struct agent *a, int vms, bool pets)
{
	struct ha *h = HA(a);
	char err[512];
	if (pets) {
		if (mv_watchdog_pet(&h->wd, err, sizeof(err)) < 0) {
			ha_watchdog_failed(a, "pet failed", err);
			return;
		}
		h->wd_failing = false;
		if (!h->wd_petting) {
			MV_INFO("failover",
			        "watchdog petted path=%s cause=\"not quorate: petted until "
			        "the self-fence\"",
			        h->wd.path);
			ha_event(a, "watchdog-petted", a->opt.name, NULL,
			         "not quorate: petted until this host fences itself");
		}
		h->wd_petting = true;
		return;
	}
	if (h->wd_petting) {
		h->wd_petting = false;
		MV_WARN("failover",
		        "watchdog no longer petted path=%s timeout_s=%u ha_vms=%d "
		        "cause=\"%s\"",
		        h->wd.path, h->wd.timeout_s, vms,
		        fo_fenced(h->fo) ? "self-fenced" : "no known last quorate moment");
		ha_event(
		    a, "watchdog-unpetted", a->opt.name, NULL,
		    "%s: no more pets; unless quorum returns or no HA VM is left here, it resets "
		    "this host %u s after the last pet",
		    fo_fenced(h->fo) ? "this host fenced itself" : "no known last quorate moment",
		    h->wd.timeout_s);
	}
}

/* Not quorate: disarmed if there is nothing to protect, else petted until
 * the self-fence (the rule above). */
static void ha_watchdog_not_quorate(struct agent *a, uint64_t now)
{
	struct ha *h = HA(a);
	int vms = ha_watchdog_ha_vms(a);
	if (vms == 0 && h->restarts == NULL && mv_watchdog_armed(&h->wd)) {
		/* (not while a start is in flight on a worker) */
		ha_watchdog_disarm(a, "not quorate, and no HA VM runs here: nothing to protect");
		return;
	}
	/* before the self-fence's deadline, not just before it ran (a tick may
	 * come first, or an agent start after the deadline) */
	bool pets = !fo_fenced(h->fo) && h->fence_clock_known && !h->wd_hurried &&
	            now < fo_self_fence_at(h->fo);
	if (vms > 0 && !mv_watchdog_armed(&h->wd))
		ha_watchdog_arm_not_quorate(a, vms, pets);
	else if (mv_watchdog_armed(&h->wd))
		ha_watchdog_pet_until_self_fence(a, vms, pets);
}

/* The rule above, for one moment (the name is the tick's: it pets). */
static void ha_watchdog_pet(struct agent *a, uint64_t now)
{
	struct ha *h = HA(a);
	if (h == NULL || !h->wd_on)
		return;
	if (ha_fence_pending(h))
		ha_watchdog_hold_for_fence(a);
	else if (h->fence_hold != NULL)
		return; /* destroys in flight: one that never returns is the watchdog's */
	else if (fo_quorate(h->fo, now))
		ha_watchdog_pet_quorate(a);
	else
		ha_watchdog_not_quorate(a, now);
}

/* After FO_EV_FENCE_SELF was carried out: disarmed if every local HA VM
 * is gone (libvirt answers and lists none running), else kept armed and
 * unpetted, so that the host resets. */
static void ha_watchdog_after_self_fence(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL || !h->wd_on)
		return;
	int vms = ha_watchdog_ha_vms(a);
	if (vms == 0 && !ha_fence_pending(h) && h->restarts == NULL) {
		/* (not while a start is in flight: it is undone when it ends) */
		ha_watchdog_disarm(a, "the self-fence destroyed every HA VM here: nothing left to "
		                      "protect, and a reset would kill the other VMs for nothing");
		return;
	}
	if (vms == 0)
		vms = (int)h->n_unfenced;
	h->wd_petting = false;
	MV_ERROR("failover",
	         "self-fence incomplete: watchdog stays armed, unpetted path=%s "
	         "timeout_s=%u ha_vms=%d cause=\"%s\"",
	         h->wd.path, h->wd.timeout_s, vms,
	         vms < 0 ? "libvirt does not answer" : "HA VMs still run here");
	if (!mv_watchdog_armed(&h->wd))
		ha_watchdog_arm_unpetted(a, "the self-fence left HA VMs running");
	if (!mv_watchdog_armed(&h->wd))
		return;
	ha_watchdog_hurry(a, "the self-fence left HA VMs running");
	ha_event(a, "watchdog-kept-armed", a->opt.name, NULL,
	         "the self-fence left HA VMs running (%s): the watchdog, no longer petted and set "
	         "to %u s, resets this host",
	         vms < 0 ? "libvirt does not answer" : "a destroy failed", h->wd.timeout_s);
}

/* At start: opens and checks the device (an agent whose device cannot
 * guarantee the timeout refuses to start), then applies the rule. */
static int ha_watchdog_start(struct agent *a, uint64_t now, char *err, size_t errlen)
{
	struct ha *h = HA(a);
	const struct agent_options *o = &a->opt;
	uint32_t limit = o->fo_fence_margin_ms < o->fo_fence_after_ms ? o->fo_fence_margin_ms
	                                                              : o->fo_fence_after_ms;
	int rc = mv_watchdog_init(&h->wd, o->fo_watchdog, limit, o->fo_heartbeat_ms, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = mv_watchdog_open(&h->wd, err, errlen)) < 0)
		return rc;
	h->wd_on = true;
	MV_INFO("failover",
	        "watchdog opened path=%s timeout_s=%u identity=\"%s\" fence_margin_ms=%u "
	        "heartbeat_ms=%u",
	        h->wd.path, h->wd.timeout_s, h->wd.identity, o->fo_fence_margin_ms,
	        o->fo_heartbeat_ms);
	if (fo_quorate(h->fo, now)) {
		ha_watchdog_pet(a, now); /* a cluster of one: quorate from the start */
		return 0;
	}
	int vms = ha_watchdog_ha_vms(a);
	if (vms == 0) {
		ha_watchdog_disarm(a, "started without quorum, and no HA VM runs here: not reset "
		                      "before it ever had quorum; armed at the first quorum");
		return 0;
	}
	if (h->fence_clock_known) {
		/* the self-fence clock runs from the previous agent's last quorate
		 * moment: petted until the self-fence, as that agent would have */
		ha_watchdog_pet(a, now);
		return 0;
	}
	MV_WARN("failover", "watchdog armed unpetted path=%s timeout_s=%u ha_vms=%d cause=\"%s\"",
	        h->wd.path, h->wd.timeout_s, vms,
	        vms < 0 ? "libvirt does not answer: HA VMs may run here, and no last quorate "
	                  "moment is known"
	                : "HA VMs run here: the agent restarted, the VMs lived on, and no last "
	                  "quorate moment is known");
	ha_event(a, "watchdog-armed", a->opt.name, NULL,
	         "at start, %s: not petted until quorate, it resets this host within %u s",
	         vms < 0 ? "libvirt does not answer and HA VMs may run here" : "HA VMs run here",
	         h->wd.timeout_s);
	return 0;
}

/* ---- the last quorate moment -------------------------------------------------------------
 *
 * The others may fail this host over once it has been cut off long enough,
 * counting on it to destroy its HA VMs F = fence_after_ms after its last
 * quorate moment (fo.c, "WHY NO VM RUNS TWICE": its own self-fence
 * at q + F, or the watchdog F after its last pet, i.e. by q + quorate_ms
 * + F). A fresh core counts F from its own start (fo_new), so an agent
 * that restarts while cut off, with its HA VMs still running (the agent
 * crashed, was killed, or was restarted by systemd: the VMs live on),
 * would fence up to its whole downtime + F late. So the last moment the
 * agent saw itself quorate is kept in data_dir/quorate-stamp (format in
 * ha.h), and a restarted agent hands it to fo_resume_fence_base().
 *
 * What is written: CLOCK_MONOTONIC ms of a moment at which fo_quorate()
 * was true, with the boot id. It only ever errs early: written at most
 * every F/4 while quorate (so up to F/4 before the real last quorate
 * moment), and once more with the last moment seen quorate when quorum is
 * lost. A moment at which the agent was quorate lies before q + quorate_ms,
 * so a restarted agent that fences F after it fences no later than the
 * watchdog would have: within what the others wait for.
 *
 * How: one fixed-length line rewritten in place with pwrite() on a
 * descriptor kept open, no fsync: it must survive the agent's death, not
 * the machine's (the page cache outlives the process; a reboot changes the
 * boot id, and a stamp of another boot is never used), and a one-page
 * write costs the loop no more than a memory copy. A torn or foreign line
 * fails its checksum and counts as no stamp.
 *
 * At start, if the stamp is of this boot and an HA VM runs here (or
 * libvirt does not answer, so one may), fo_resume_fence_base() gets it in
 * the core's clock. The core's clock is libuv's loop time, which is
 * CLOCK_MONOTONIC in ms on Linux; the conversion goes through the
 * difference between the two read at start right after uv_update_time(),
 * so it holds even if they had different origins.
 *
 * No usable stamp (the first start with this version, a stamp removed
 * after a graceful leave, an unreadable boot id): the core's default, F
 * after this start. It is the only choice that never fences a host whose
 * HA VMs nobody fails over (after a graceful leave the others do not);
 * the time the previous agent was down is then covered only by the
 * watchdog, which keeps counting from its last pet across the restart.
 *
 * A clean stop after a graceful leave that completed while quorate removes
 * the stamp: the others know this host left and fail nothing of it over,
 * so the next start, however much later, must not fence its HA VMs at
 * once. Any other stop leaves it, rewritten with the stop time if quorate.
 */

int ha_stamp_format(char *buf, size_t len, const char *boot_id, uint64_t mono_ms)
{
	if (buf == NULL || boot_id == NULL || len < HA_STAMP_LINE_LEN + 1 ||
	    strlen(boot_id) != HA_STAMP_BOOT_LEN ||
	    strspn(boot_id, "0123456789abcdef-") != HA_STAMP_BOOT_LEN)
		return -EINVAL;
	int n = snprintf(buf, len, "meshvisor-quorate-stamp v1 boot=%s mono_ms=%020" PRIu64,
	                 boot_id, mono_ms);
	uint64_t sum = mv_fnv1a64(MV_FNV1A64_OFFSET, buf);
	snprintf(buf + n, len - (size_t)n, " sum=%016" PRIx64 "\n", sum);
	return HA_STAMP_LINE_LEN;
}

int ha_stamp_parse(const char *text, size_t len, char *boot_id, uint64_t *mono_ms)
{
	static const char head[] = "meshvisor-quorate-stamp v1 boot=";
	const size_t hl = sizeof(head) - 1, ms_at = hl + HA_STAMP_BOOT_LEN + 9, sum_at = ms_at + 20;
	if (text == NULL || len != HA_STAMP_LINE_LEN || memchr(text, '\0', len) != NULL)
		return -EINVAL;
	char line[HA_STAMP_LINE_LEN + 1];
	memcpy(line, text, len);
	line[len] = '\0';
	if (memcmp(line, head, hl) != 0 ||
	    memcmp(line + hl + HA_STAMP_BOOT_LEN, " mono_ms=", 9) != 0 ||
	    memcmp(line + sum_at, " sum=", 5) != 0 || line[len - 1] != '\n')
		return -EINVAL;
	for (size_t i = hl; i < hl + HA_STAMP_BOOT_LEN; i++)
		if (!strchr("0123456789abcdef-", line[i]))
			return -EINVAL;
	uint64_t v = 0, sum = 0;
	for (size_t i = ms_at; i < sum_at; i++) {
		uint64_t d = (uint64_t)(line[i] - '0');
		if (line[i] < '0' || line[i] > '9' || v > UINT64_MAX / 10 ||
		    (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return -EINVAL;
		v = v * 10 + d;
	}
	for (size_t i = sum_at + 5; i < len - 1; i++) {
		int d = line[i] >= '0' && line[i] <= '9'   ? line[i] - '0'
		        : line[i] >= 'a' && line[i] <= 'f' ? line[i] - 'a' + 10
		                                           : -1;
		if (d < 0)
			return -EINVAL;
		sum = sum << 4 | (uint64_t)d;
	}
	line[sum_at] = '\0';
	if (mv_fnv1a64(MV_FNV1A64_OFFSET, line) != sum)
		return -EINVAL;
	memcpy(boot_id, line + hl, HA_STAMP_BOOT_LEN);
	boot_id[HA_STAMP_BOOT_LEN] = '\0';
	*mono_ms = v;
	return 0;
}

uint64_t ha_stamp_to_core(uint64_t stamp_mono, uint64_t mono_now, uint64_t core_now)
{
	uint64_t ago = mono_now > stamp_mono ? mono_now - stamp_mono : 0;
	return core_now > ago ? core_now - ago : 0;
}

static uint64_t ha_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* /proc/sys/kernel/random/boot_id: 0, or -errno / -EINVAL. */
static int ha_boot_id(char *out)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = mv_file_read("/proc/sys/kernel/random/boot_id", 256, &buf, &len);
	if (rc < 0)
		return rc;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	rc = len == HA_STAMP_BOOT_LEN && strspn(buf, "0123456789abcdef-") >= len ? 0 : -EINVAL;
	if (rc == 0) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
	free(buf);
	return rc;
}

/* Writes the core time t as the last quorate moment. */
static void ha_stamp_write(struct agent *a, uint64_t t, uint64_t now)
{
	struct ha *h = HA(a);
	int64_t m = (int64_t)t + h->mono_offset;
	char line[HA_STAMP_LINE_LEN + 1];
	int n = ha_stamp_format(line, sizeof(line), h->boot_id, m > 0 ? (uint64_t)m : 0);
	if (n < 0)
		return;
	ssize_t w = pwrite(h->stamp_fd, line, (size_t)n, 0);
	int rc = w == n ? 0 : w < 0 ? -errno : -EIO;
	if (rc == 0 && !h->stamp_sized) {
		if (ftruncate(h->stamp_fd, n) < 0)
			rc = -errno;
		else
			h->stamp_sized = true;
	}
	if (rc < 0) {
		if (!h->stamp_failing)
			MV_ERROR(
			    "failover",
			    "cannot write the quorate stamp path=%s error=\"%s\" "
			    "cause=\"a restart of this agent while cut off would fence up to the "
			    "time it was down late\"",
			    h->stamp_path, strerror(-rc));
		h->stamp_failing = true;
		h->stamp_retry_at = now + 1000;
		return;
	}
	if (h->stamp_failing)
		MV_INFO("failover", "quorate stamp written again path=%s", h->stamp_path);
	h->stamp_failing = false;
	h->stamp_written = t;
}

/* While quorate: the moment is noted, and written every F/4. Once not
 * quorate: the last moment seen quorate is written, once. */
static void ha_stamp_note(struct agent *a, uint64_t now)
{
	struct ha *h = HA(a);
	if (h == NULL || h->fo == NULL || h->stamp_fd < 0)
		return;
	bool q = fo_quorate(h->fo, now);
	if (q)
		h->quorate_seen_at = now;
	if (now < h->stamp_retry_at)
		return;
	uint64_t every = a->opt.fo_fence_after_ms / 4 ? a->opt.fo_fence_after_ms / 4 : 1;
	if (q && (h->stamp_written == 0 || now - h->stamp_written >= every))
		ha_stamp_write(a, now, now);
	else if (!q && h->quorate_seen_at > h->stamp_written)
		ha_stamp_write(a, h->quorate_seen_at, now);
}

/* At start, before the core runs: the previous agent's last quorate moment
 * (see above), then the descriptor for ours. Never fails the start. */
static void ha_stamp_start(struct agent *a)
{
	struct ha *h = HA(a);
	const struct agent_options *o = &a->opt;
	size_t dl = strlen(o->data_dir);
	h->stamp_path = malloc(dl + sizeof("/quorate-stamp"));
	if (h->stamp_path == NULL)
		return;
	memcpy(h->stamp_path, o->data_dir, dl);
	memcpy(h->stamp_path + dl, "/quorate-stamp", sizeof("/quorate-stamp"));
	int rc = ha_boot_id(h->boot_id);
	if (rc < 0) {
		MV_WARN(
		    "failover",
		    "cannot read the boot id path=/proc/sys/kernel/random/boot_id "
		    "error=\"%s\" cause=\"the last quorate moment is not kept across restarts\"",
		    strerror(-rc));
		return;
	}
	uv_update_time(a->loop);
	uint64_t core_now = uv_now(a->loop), mono_now = ha_mono_ms();
	h->mono_offset = (int64_t)mono_now - (int64_t)core_now;
	char *buf = NULL;
	size_t len = 0;
	char boot[HA_STAMP_BOOT_LEN + 1] = "";
	uint64_t stamp = 0;
	const char *none = NULL; /* why there is no usable stamp */
	bool earlier_boot = false;
	rc = mv_file_read(h->stamp_path, 4096, &buf, &len);
	if (rc == -ENOENT)
		none = "no stamp (a first start, or the previous agent left gracefully)";
	else if (rc < 0)
		none = "the stamp cannot be read";
	else if (ha_stamp_parse(buf, len, boot, &stamp) < 0)
		none = "the stamp is invalid";
	else if (strcmp(boot, h->boot_id) != 0) {
		none = "the stamp is of an earlier boot";
		earlier_boot = true;
	}
	free(buf);
	int vms = ha_watchdog_ha_vms(a);
	uint64_t F = o->fo_fence_after_ms;
	/* no stamp (a first start, or a graceful leave: the device was
	 * disarmed) or one of an earlier boot: this life's self-fence clock
	 * from its start is a real bound (no plan can be for this incarnation
	 * before it began); an unreadable or invalid one is not */
	if (rc == -ENOENT || earlier_boot)
		h->fence_clock_known = true;
	if (none == NULL && vms != 0) {
		uint64_t base = ha_stamp_to_core(stamp, mono_now, core_now);
		fo_resume_fence_base(h->fo, base);
		h->fence_clock_known = true;
		uint64_t ago = core_now - base, in = base + F > core_now ? base + F - core_now : 0;
		MV_WARN(
		    "failover",
		    "self-fence clock resumed last_quorate_ago_ms=%" PRIu64 " fence_in_ms=%" PRIu64
		    " ha_vms=%d path=%s cause=\"HA VMs run here: unless "
		    "quorate by then, this host fences itself fence_after_ms after the previous "
		    "agent's last quorate moment\"",
		    ago, in, vms, h->stamp_path);
		ha_event(
		    a, "fence-clock-resumed", o->name, NULL,
		    "%s: the previous agent was last quorate %" PRIu64 " ms ago; unless quorate "
		    "by then, this host fences itself in %" PRIu64 " ms",
		    vms > 0 ? "HA VMs run here" : "libvirt does not answer (HA VMs may run here)",
		    ago, in);
	} else if (vms != 0) {
		/* (said loudly only when a stamp was there but unusable) */
		if (rc == -ENOENT || (rc == 0 && strcmp(boot, h->boot_id) != 0 && boot[0] != '\0'))
			MV_INFO("failover",
			        "self-fence clock starts now ha_vms=%d path=%s cause=\"%s: "
			        "unless quorate, this host fences itself fence_after_ms after this "
			        "start\"",
			        vms, h->stamp_path, none);
		else
			MV_WARN("failover",
			        "self-fence clock starts now ha_vms=%d path=%s cause=\"%s: "
			        "unless quorate, this host fences itself fence_after_ms after this "
			        "start\"",
			        vms, h->stamp_path, none);
	} else if (none == NULL) {
		MV_INFO("failover", "quorate stamp not needed path=%s cause=\"no HA VM runs here\"",
		        h->stamp_path);
	}
	if (rc < 0 && rc != -ENOENT)
		MV_WARN("failover", "cannot read the quorate stamp path=%s error=\"%s\"",
		        h->stamp_path, rc == -EFBIG ? "too large" : strerror(-rc));
	h->stamp_fd = open(h->stamp_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (h->stamp_fd < 0)
		MV_ERROR(
		    "failover",
		    "cannot open the quorate stamp path=%s error=\"%s\" cause=\"a "
		    "restart of this agent while cut off would fence up to the time it was down "
		    "late\"",
		    h->stamp_path, strerror(errno));
}

static void ha_stamp_stop(struct agent *a)
{
	struct ha *h = HA(a);
	if (h->stamp_fd < 0)
		return;
	uint64_t now = uv_now(a->loop);
	bool q = fo_quorate(h->fo, now) || h->quorate_last;
	if (q && membership_left(a)) {
		if (unlink(h->stamp_path) < 0 && errno != ENOENT)
			MV_WARN("failover", "cannot remove the quorate stamp path=%s error=\"%s\"",
			        h->stamp_path, strerror(errno));
		else
			MV_INFO(
			    "failover",
			    "quorate stamp removed path=%s cause=\"left gracefully while "
			    "quorate: nobody fails this host over, so the next start counts its "
			    "self-fence from that start\"",
			    h->stamp_path);
	} else if (fo_quorate(h->fo, now)) {
		ha_stamp_write(a, now, now);
	} else {
		ha_stamp_note(a, now);
	}
	close(h->stamp_fd);
	h->stamp_fd = -1;
}

/* ---- live migration of HA VMs (MOVES in agent/core/fo.c) ---------------------------- */

static int ha_move_begin(struct agent *a, const char *id, const char *uuid, const char *target,
                         uint64_t epoch, char *err, size_t errlen)
{
	struct ha *h = HA(a);
	int rc = fo_move_begin(h->fo, id, uuid, target, epoch, uv_now(a->loop));
	if (rc == -EAGAIN)
		snprintf(err, errlen,
		         "this host is not quorate (or has fenced itself): an HA VM moves only "
		         "while a majority of the voters acknowledges its host");
	else if (rc < 0)
		snprintf(err, errlen, "the failover core refuses the move: %s", strerror(-rc));
	ha_pump(a); /* the heartbeats that announce it */
	return rc;
}

static bool ha_move_ready(struct agent *a, const char *id)
{
	return fo_move_ready(HA(a)->fo, id, uv_now(a->loop));
}

static void ha_move_end(struct agent *a, const char *id, bool moved)
{
	fo_move_end(HA(a)->fo, id, moved, uv_now(a->loop));
	ha_pump(a);
}

/* An incoming move ended here: told to the voters. "Never landed" is said
 * only when libvirt answered that no copy of it is here: one running here
 * landed after all; a paused one (an incoming migration still there) is
 * settled later (ha_settle_moves). The VM is read on the hypervisor worker
 * (an operator job on the general lane, in front of the operators' queue,
 * never refused for a full one), the rest is done on the loop when it is
 * back. A VM not read (the read could not be queued, or libvirt did not
 * answer) counts as paused here, as ha_settle_copy has it: a move that
 * ended without COMMITTED is then left to ha_settle_moves (never "never
 * landed" from the cache, which may not show the landed VM yet); one that
 * COMMITTED is told landed, at the epoch the cache shows. */
struct ha_outcome {
	struct agent *a;
	char id[FO_MOVE_ID_MAX];
	char uuid[FO_UUID_MAX];
	char source[FO_NAME_MAX];
	bool landed;
};

static void ha_move_outcome_tell(struct ha_outcome *o, bool found, const struct virt_vm *vm)
{
	struct agent *a = o->a;
	struct ha *h = HA(a);
	bool known = fo_move_find(h->fo, o->id, NULL);
	bool landed = o->landed;
	uint64_t epoch = 0;
	if (!landed && found && vm->state == VIRT_VM_RUNNING)
		landed = true;
	if (landed) {
		if (found && vm->ha)
			epoch = vm->epoch;
		else if (!known)
			return;
	} else if (found && vm->state == VIRT_VM_PAUSED) {
		return;
	}
	/* (an outcome we never heard announced is told all the same: its
	 * source may have reached a majority without us, and nobody else can
	 * say it never landed) */
	if (fo_move_outcome(h->fo, o->id, o->uuid, o->source, landed, epoch, uv_now(a->loop)) == 0)
		MV_INFO("failover", "incoming move %s id=%s vm=%s source=%s",
		        landed ? "landed" : "ended without the VM", o->id, o->uuid, o->source);
	ha_pump(a);
}

/* The VM could not be read (ha_move_outcome's comment). */
static void ha_move_outcome_unread(struct ha_outcome *o)
{
	if (!o->landed) {
		MV_INFO("failover",
		        "incoming move ended id=%s vm=%s source=%s: the VM could not be read here; "
		        "settled later",
		        o->id, o->uuid, o->source);
		return;
	}
	struct virt_vm vm;
	char err[256];
	bool found = virt_vm_cached(o->a->virt, o->uuid, &vm, err, sizeof(err)) == 0;
	ha_move_outcome_tell(o, found, &vm);
}

static void ha_move_outcome_read(struct virt *v, int status, const struct virt_op_result *res,
                                 void *ud)
{
	struct ha_outcome *o = ud;
	(void)v;
	if (status == 0 && !o->a->stopping && HA(o->a) != NULL && HA(o->a)->fo != NULL) {
		if (res->rc == 0 || res->rc == -ENOENT)
			ha_move_outcome_tell(o, res->rc == 0, &res->vm);
		else
			ha_move_outcome_unread(o);
	}
	free(o);
}

static void ha_move_outcome(struct agent *a, const char *id, const char *uuid, const char *source,
                            bool landed)
{
	if (a->virt == NULL)
		return;
	struct ha_outcome *o = calloc(1, sizeof(*o));
	if (o == NULL) {
		MV_ERROR("failover", "out of memory: incoming move outcome not told id=%s", id);
		return;
	}
	o->a = a;
	o->landed = landed;
	snprintf(o->id, sizeof(o->id), "%s", id);
	snprintf(o->uuid, sizeof(o->uuid), "%s", uuid);
	snprintf(o->source, sizeof(o->source), "%s", source);
	char err[256];
	struct virt_op_req req = {.kind = VIRT_OPK_FIND, .key = o->uuid};
	if (virt_vm_op_next(a->virt, &req, ha_move_outcome_read, o, err, sizeof(err)) == 0)
		return;
	ha_move_outcome_unread(o);
	free(o);
}

static const struct migration_move_hooks ha_move_hooks = {
    .begin = ha_move_begin,
    .ready = ha_move_ready,
    .end = ha_move_end,
    .outcome = ha_move_outcome,
};

/* Moves still MOVING that name us, settled from what libvirt runs
 * (fo_driver_settle_moves, the rule the simulator runs too). At the
 * agent's start as from the tick, the reads run on the hypervisor worker
 * (a chain of FINDs on the general lane, one per move, one chain at a
 * time; ha_settle_moves) and the rule is applied on the loop when they
 * are back (a previous life's move not read yet gets the start's rule),
 * with two rules for answers that are not fresh: a move not read (announced
 * meanwhile) or whose read failed counts as "a copy is paused here"
 * (nothing is decided for it this round), and a move counts as still
 * held by an incoming job or reservation when it was before its read was
 * queued (a VM that landed is in libvirt before its reservation ends, so
 * only a read made after that can say it never landed). */
struct ha_settle_read {
	struct agent *a;
	size_t n, next;
	struct {
		char id[FO_MOVE_ID_MAX];
		char uuid[FO_UUID_MAX];
		bool incoming_before; /* held when the read was queued */
		bool known;           /* read, and libvirt answered (or: no such VM) */
		bool found;
		struct fo_driver_copy c;
	} m[FO_MOVES_MAX];
};

static bool ha_settle_copy(void *arg, const char *uuid, struct fo_driver_copy *out)
{
	struct ha_settle_read *sr = arg;
	for (size_t i = 0; i < sr->n; i++)
		if (strcmp(sr->m[i].uuid, uuid) == 0 && sr->m[i].known) {
			*out = sr->m[i].c;
			return sr->m[i].found;
		}
	out->running = false; /* not read: as if paused here, nothing decided */
	out->paused = true;
	out->epoch = 0;
	return true;
}

static bool ha_settle_incoming(void *arg, const char *id)
{
	struct ha_settle_read *sr = arg;
	for (size_t i = 0; i < sr->n; i++)
		if (strcmp(sr->m[i].id, id) == 0)
			return sr->m[i].incoming_before || migration_has_incoming(sr->a, id);
	return true;
}

/* Whether move `id` was still MOVING at the agent's start and no
 * settling has read libvirt for it since. */
static bool ha_start_move(const struct ha *h, const char *id)
{
	for (size_t i = 0; i < h->n_start_moves; i++)
		if (strcmp(h->start_moves[i], id) == 0)
			return true;
	return false;
}

/* Move `id` no longer gets the start's rule (ha_start_move is false for
 * it from now on). */
static void ha_start_move_drop(struct ha *h, const char *id)
{
	for (size_t i = 0; i < h->n_start_moves; i++)
		if (strcmp(h->start_moves[i], id) == 0) {
			memmove(h->start_moves[i], h->start_moves[--h->n_start_moves],
			        FO_MOVE_ID_MAX);
			return;
		}
}

/* fo_driver_settle_moves' at_start: the start's rule for a previous
 * life's move not read before. */
static bool ha_settle_at_start(void *arg, const char *id)
{
	const struct ha_settle_read *sr = arg;
	return ha_start_move(HA(sr->a), id);
}

static void ha_settle_read_done(struct virt *v, int status, const struct virt_op_result *res,
                                void *ud)
{
	struct ha_settle_read *sr = ud;
	struct agent *a = sr->a;
	struct ha *h = HA(a);
	if (status != 0 || a->stopping || h == NULL || h->fo == NULL) {
		if (h != NULL)
			h->settle_read = NULL;
		free(sr);
		return;
	}
	size_t i = sr->next++;
	sr->m[i].known = res->rc == 0 || res->rc == -ENOENT;
	sr->m[i].found = res->rc == 0;
	if (res->rc == 0) {
		sr->m[i].c.running = res->vm.state == VIRT_VM_RUNNING;
		sr->m[i].c.paused = res->vm.state == VIRT_VM_PAUSED;
		sr->m[i].c.epoch = res->vm.epoch;
	}
	if (sr->next < sr->n) {
		char err[256];
		struct virt_op_req req = {.kind = VIRT_OPK_FIND, .key = sr->m[sr->next].uuid};
		if (virt_vm_op_next(v, &req, ha_settle_read_done, sr, err, sizeof(err)) == 0)
			return;
		sr->n = sr->next; /* the rest: not read, nothing decided for them */
	}
	h->settle_read = NULL;
	size_t nu = fo_driver_settle_moves(h->fo, a->opt.name, ha_settle_at_start, uv_now(a->loop),
	                                   ha_settle_copy, ha_settle_incoming, sr);
	/* a previous life's move read: the start's rule was applied to it;
	 * what was not known then is its target's */
	for (size_t k = 0; k < sr->n; k++)
		if (sr->m[k].known)
			ha_start_move_drop(h, sr->m[k].id);
	if (nu)
		ha_pump(a);
	free(sr);
}

/* Settles the moves still MOVING that name us from reads on the worker
 * (never on the loop). at_start (the agent's start, before the loop
 * serves): the moves MOVING now are a previous life's, remembered; each
 * keeps the start's rule (as the source too: STAYED when the VM runs
 * here) until a settling has read libvirt for it, or it is settled
 * otherwise (by its target). This life's moves are read in the same
 * chains, with the rule for this life. A read that failed (libvirt does
 * not answer) decides nothing for its move, at start as later. */
static void ha_settle_moves(struct agent *a, bool at_start)
{
	struct ha *h = HA(a);
	if (a->virt == NULL)
		return;
	struct fo_move um[FO_MOVES_MAX];
	size_t n = fo_moves_unsettled(h->fo, um, FO_MOVES_MAX);
	if (n > FO_MOVES_MAX)
		n = FO_MOVES_MAX;
	if (at_start) {
		h->n_start_moves = 0;
		for (size_t i = 0; i < n; i++)
			memcpy(h->start_moves[h->n_start_moves++], um[i].id, FO_MOVE_ID_MAX);
	}
	for (size_t k = h->n_start_moves; k-- > 0;) {
		bool unsettled = false;
		for (size_t i = 0; i < n && !unsettled; i++)
			unsettled = strcmp(um[i].id, h->start_moves[k]) == 0;
		if (!unsettled)
			ha_start_move_drop(h, h->start_moves[k]);
	}
	if (h->settle_read != NULL || n == 0)
		return;
	struct ha_settle_read *sr = calloc(1, sizeof(*sr));
	if (sr == NULL)
		return; /* the next tick */
	sr->a = a;
	for (size_t i = 0; i < n; i++) {
		memcpy(sr->m[sr->n].id, um[i].id, sizeof(sr->m[sr->n].id)); /* same sizes */
		memcpy(sr->m[sr->n].uuid, um[i].uuid, sizeof(sr->m[sr->n].uuid));
		sr->m[sr->n].incoming_before = migration_has_incoming(a, um[i].id);
		sr->n++;
	}
	char err[256];
	struct virt_op_req req = {.kind = VIRT_OPK_FIND, .key = sr->m[0].uuid};
	if (virt_vm_op_async(a->virt, &req, ha_settle_read_done, sr, err, sizeof(err)) < 0) {
		free(sr); /* busy or unreachable: the next tick */
		return;
	}
	h->settle_read = sr;
}

/* ---- periodic ---------------------------------------------------------------------------- */

/* A fence's destroys still running on the worker after HA_FENCE_SLOW_MS:
 * said once (libvirtd slow or stopped), with what it costs meanwhile. */
static void ha_fence_slow(struct agent *a, uint64_t now)
{
	struct ha *h = HA(a);
	if (h->fence_hold == NULL || h->fence_slow_told ||
	    now - h->fence_hold->started_at < HA_FENCE_SLOW_MS)
		return;
	h->fence_slow_told = true;
	MV_ERROR("failover",
	         "fence destroys not finished after %" PRIu64 " ms vms=%zu watchdog=%d "
	         "cause=\"libvirt does not answer: failover messages wait for the "
	         "destroys, and the watchdog is not petted\"",
	         now - h->fence_hold->started_at, h->fence_hold->n, h->wd_on);
	ha_event(a, "fence-slow", a->opt.name, NULL,
	         "the fence's destroys have not finished after %" PRIu64
	         " ms (libvirt does not answer): %s",
	         now - h->fence_hold->started_at,
	         h->wd_on ? "the watchdog, no longer petted, resets this host"
	                  : "no watchdog is set (failover.watchdog): nothing resets this host");
}

static void ha_on_tick(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct ha *h = HA(a);
	uint64_t now = uv_now(a->loop);
	ha_fence_retry(a, now);
	ha_fence_slow(a, now);
	ha_watchdog_pet(a, now);
	ha_stamp_note(a, now);
	if (a->virt != NULL) {
		ha_settle_moves(a, false);
		ha_crash_tick(a, now);
		if (h->repl_dirty || now >= h->repl_refresh_at)
			ha_replicate(a);
	}
	/* drop event subscribers whose client went away */
	struct ha_sub **pp = &h->subs;
	while (*pp != NULL) {
		struct ha_sub *s = *pp;
		if (!rpc_sink_alive(a, s->sink)) {
			rpc_sink_drop(a, s->sink);
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

/* A URI other hosts can use: it names a host ("qemu+tls://10.0.0.5/system"),
 * unlike "qemu:///system" or "qemu+unix:///system?socket=...". */
static bool ha_uri_is_remote(const char *uri)
{
	const char *p = uri ? strstr(uri, "://") : NULL;
	return p != NULL && p[3] != '\0' && p[3] != '/';
}

/* failover.fence_uri, else migration.libvirt_uri when it is remote. */
static const char *ha_fence_uri(const struct agent *a)
{
	if (a->opt.fo_fence_uri != NULL)
		return a->opt.fo_fence_uri;
	if (ha_uri_is_remote(a->opt.mig_libvirt_uri))
		return a->opt.mig_libvirt_uri;
	return "";
}

static void ha_fill_node_state(struct agent *a, Mv__NodeState *ns)
{
	struct ha *h = HA(a);
	ns->witness = a->opt.witness;
	ns->fence_uri = (char *)ha_fence_uri(a);
	if (h != NULL && h->fo != NULL) {
		ns->fenced = h->fenced_last;
		ns->quorate = h->quorate_last;
	}
}

/* ---- RPC --------------------------------------------------------------------------------------- */

static void ha_reply_ok(struct agent *a, uint64_t sink, Mv__RpcResponse *resp)
{
	resp->code = MV__RPC_CODE__RPC_OK;
	rpc_sink_send(a, sink, resp, true);
}

static int ha_rpc_failovers(struct agent *a, uint64_t sink)
{
	struct ha *h = HA(a);
	size_t n = fo_instance_count(h->fo);
	Mv__FailoverInfo *infos = calloc(n ? n : 1, sizeof(*infos));
	Mv__FailoverInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	struct fo_instance_info *ii = calloc(n ? n : 1, sizeof(*ii));
	Mv__FailoverVm **vm_blocks = calloc(n ? n : 1, sizeof(*vm_blocks));
	Mv__FailoverVm ***vm_ptrs = calloc(n ? n : 1, sizeof(*vm_ptrs));
	struct fo_vm_outcome **outs = calloc(n ? n : 1, sizeof(*outs));
	int rc = 0;
	if (!infos || !ptrs || !ii || !vm_blocks || !vm_ptrs || !outs) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		fo_instance_at(h->fo, i, &ii[i]);
		Mv__FailoverInfo *f = &infos[i];
		mv__failover_info__init(f);
		ptrs[i] = f;
		f->dead = ii[i].inst.dead;
		f->incarnation = ii[i].inst.incarnation;
		f->round = ii[i].inst.round;
		f->phase = (char *)fo_phase_name(ii[i].phase);
		f->coordinator = ii[i].coordinator;
		f->detected_unix_ms =
		    ii[i].detected_at ? agent_mono_to_unix_ms(a, ii[i].detected_at) : 0;
		f->chosen_unix_ms = ii[i].chosen_at ? agent_mono_to_unix_ms(a, ii[i].chosen_at) : 0;
		f->fenced_unix_ms = ii[i].fenced_at ? agent_mono_to_unix_ms(a, ii[i].fenced_at) : 0;
		f->fence_how = ii[i].fence_how;
		f->cause = ii[i].cause;
		f->reporter = a->opt.name;
		if (ii[i].detected_at && ii[i].chosen_at >= ii[i].detected_at)
			f->detect_to_chosen_ms = ii[i].chosen_at - ii[i].detected_at;
		if (ii[i].chosen_at && ii[i].fenced_at >= ii[i].chosen_at)
			f->chosen_to_fenced_ms = ii[i].fenced_at - ii[i].chosen_at;
		size_t nv = fo_instance_vm_count(h->fo, i);
		vm_blocks[i] = calloc(nv ? nv : 1, sizeof(Mv__FailoverVm));
		vm_ptrs[i] = calloc(nv ? nv : 1, sizeof(Mv__FailoverVm *));
		outs[i] = calloc(nv ? nv : 1, sizeof(struct fo_vm_outcome));
		if (!vm_blocks[i] || !vm_ptrs[i] || !outs[i]) {
			rc = -ENOMEM;
			goto out;
		}
		uint64_t last = 0;
		for (size_t j = 0; j < nv; j++) {
			struct fo_vm_outcome *o = &outs[i][j];
			fo_instance_vm_at(h->fo, i, j, o);
			Mv__FailoverVm *fv = &vm_blocks[i][j];
			mv__failover_vm__init(fv);
			fv->vm = o->entry.name;
			fv->uuid = o->entry.uuid;
			fv->target = o->entry.target;
			fv->priority = o->entry.priority;
			fv->done = o->done;
			fv->ok = o->ok;
			fv->took_ms = o->took_ms;
			fv->message = o->text;
			fv->new_epoch = o->entry.new_epoch;
			vm_ptrs[i][j] = fv;
			if (o->ok && o->took_ms > last)
				last = o->took_ms;
		}
		f->n_vms = nv;
		f->vms = vm_ptrs[i];
		if (last && ii[i].fenced_at && ii[i].chosen_at + last >= ii[i].fenced_at)
			f->fenced_to_last_restart_ms = ii[i].chosen_at + last - ii[i].fenced_at;
	}
	Mv__FailoversReply rep = MV__FAILOVERS_REPLY__INIT;
	rep.n_failovers = n;
	rep.failovers = ptrs;
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.result_case = MV__RPC_RESPONSE__RESULT_FAILOVERS;
	resp.failovers = &rep;
	ha_reply_ok(a, sink, &resp);
out:
	for (size_t i = 0; i < n; i++) {
		if (vm_blocks)
			free(vm_blocks[i]);
		if (vm_ptrs)
			free(vm_ptrs[i]);
		if (outs)
			free(outs[i]);
	}
	free(infos);
	free(ptrs);
	free(ii);
	free(vm_blocks);
	free(vm_ptrs);
	free(outs);
	return rc;
}

static int ha_str_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* `meshvisor ha`, per alive host: what losing it would leave without room,
 * from its failover plan computed on gossiped capacity. Arrays are indexed
 * by host; losses[0..n) are the hosts reported, in host order. */
struct ha_losses {
	size_t n_hosts;
	struct fo_plan *plans;
	char ***unplaced;  /* names (into plans) of the VMs left without a target */
	char (*msgs)[256]; /* each loss's message */
	Mv__HaLoss *losses;
	Mv__HaLoss **ptrs;
	size_t n;
};

static int ha_losses_alloc(struct ha_losses *ls, size_t n_hosts)
{
	size_t n = n_hosts ? n_hosts : 1;
	memset(ls, 0, sizeof(*ls));
	ls->n_hosts = n_hosts;
	ls->losses = calloc(n, sizeof(*ls->losses));
	ls->ptrs = calloc(n, sizeof(*ls->ptrs));
	ls->unplaced = calloc(n, sizeof(*ls->unplaced));
	ls->msgs = calloc(n, sizeof(*ls->msgs));
	ls->plans = calloc(n, sizeof(*ls->plans));
	if (!ls->losses || !ls->ptrs || !ls->unplaced || !ls->msgs || !ls->plans)
		return -ENOMEM;
	return 0;
}

static void ha_losses_free(struct ha_losses *ls)
{
	for (size_t i = 0; i < ls->n_hosts; i++) {
		if (ls->unplaced)
			free(ls->unplaced[i]);
		if (ls->plans)
			fo_plan_clear(&ls->plans[i]);
	}
	free(ls->losses);
	free(ls->ptrs);
	free(ls->unplaced);
	free(ls->msgs);
	free(ls->plans);
}

/* Simulates the loss of host i (alive, with HA VMs) and reports it as the
 * next loss. *all_fit becomes false if its plan leaves a VM without room. */
static int ha_loss_simulate(const struct ha_view *v, size_t i, struct ha_losses *ls, bool *all_fit)
{
	const struct fo_host *host = &v->hosts[i];
	struct fo_plan *plan = &ls->plans[i];
	if (fo_plan_compute(v->hosts, v->n_hosts, host->cap.name, host->vms, host->n_vms, 0, NULL,
	                    plan) < 0)
		return -ENOMEM;
	Mv__HaLoss *l = &ls->losses[ls->n];
	mv__ha_loss__init(l);
	ls->ptrs[ls->n++] = l;
	l->node = (char *)host->cap.name;
	l->ha_vms = host->n_vms;
	ls->unplaced[i] = calloc(plan->n ? plan->n : 1, sizeof(char *));
	if (ls->unplaced[i] == NULL)
		return -ENOMEM;
	for (size_t j = 0; j < plan->n; j++) {
		if (plan->entries[j].target[0] == '\0')
			ls->unplaced[i][l->n_unplaced++] = plan->entries[j].name;
		else
			l->placed++;
	}
	l->unplaced = ls->unplaced[i];
	if (l->n_unplaced > 0) {
		*all_fit = false;
		snprintf(ls->msgs[i], sizeof(ls->msgs[i]),
		         "losing %s leaves %zu of %u HA VMs without room", host->cap.name,
		         l->n_unplaced, l->ha_vms);
	} else {
		snprintf(ls->msgs[i], sizeof(ls->msgs[i]), "losing %s: all %u HA VMs fit elsewhere",
		         host->cap.name, l->ha_vms);
	}
	l->message = ls->msgs[i];
	return 0;
}

/* HA VMs that should run and run nowhere alive, from this node's core (a
 * node without quorum says so: the CLI marks its view as stale). */
struct ha_owed_list {
	size_t n;
	struct fo_owed *owed;
	Mv__OwedVm *msgs;
	Mv__OwedVm **ptrs;
};

static int ha_owed_list_fill(struct agent *a, uint64_t now, struct ha_owed_list *ol)
{
	struct ha *h = HA(a);
	size_t no = fo_owed_count(h->fo);
	ol->n = no;
	ol->owed = calloc(no ? no : 1, sizeof(*ol->owed));
	ol->msgs = calloc(no ? no : 1, sizeof(*ol->msgs));
	ol->ptrs = calloc(no ? no : 1, sizeof(*ol->ptrs));
	if (!ol->owed || !ol->msgs || !ol->ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < no; i++) {
		struct fo_owed *o = &ol->owed[i];
		fo_owed_at(h->fo, i, now, o);
		Mv__OwedVm *m = &ol->msgs[i];
		mv__owed_vm__init(m);
		m->uuid = o->uuid;
		m->name = o->name;
		m->host = o->host;
		m->epoch = o->epoch;
		m->priority = o->priority;
		m->down_ms = now > o->since ? now - o->since : 0;
		m->since_unix_ms = agent_mono_to_unix_ms(a, o->since);
		m->why = o->why;
		m->doing = o->doing;
		ol->ptrs[i] = m;
	}
	return 0;
}

static void ha_owed_list_free(struct ha_owed_list *ol)
{
	free(ol->owed);
	free(ol->msgs);
	free(ol->ptrs);
}

/* HA VMs that should run: those alive hosts list, and those down (owed),
 * each UUID counted once. */
static int ha_count_ha_vms(const struct ha_view *v, const struct ha_owed_list *ol, uint32_t *count)
{
	size_t nu = ol->n;
	for (size_t i = 0; i < v->n_hosts; i++)
		nu += v->hosts[i].cap.alive ? v->hosts[i].n_vms : 0;
	const char **uuids = calloc(nu ? nu : 1, sizeof(*uuids));
	if (uuids == NULL)
		return -ENOMEM;
	nu = 0;
	for (size_t i = 0; i < v->n_hosts; i++)
		for (size_t j = 0; v->hosts[i].cap.alive && j < v->hosts[i].n_vms; j++)
			uuids[nu++] = v->hosts[i].vms[j].uuid;
	for (size_t i = 0; i < ol->n; i++)
		uuids[nu++] = ol->owed[i].uuid;
	qsort(uuids, nu, sizeof(*uuids), ha_str_cmp);
	*count = 0;
	for (size_t i = 0; i < nu; i++)
		*count += i == 0 || strcmp(uuids[i], uuids[i - 1]) != 0;
	free(uuids);
	return 0;
}

/* `meshvisor ha`: HA VMs that should run and do not (the core's owed
 * list), the loss of each alive host simulated on gossiped capacity, the
 * voting set. */
static int ha_rpc_ha(struct agent *a, uint64_t sink)
{
	struct ha *h = HA(a);
	struct ha_view v;
	struct ha_losses ls;
	struct ha_owed_list ol = {0};
	int rc = ha_view_load(a, &v);
	if (rc < 0) {
		ha_view_free(&v);
		return rc;
	}
	Mv__HaReply rep = MV__HA_REPLY__INIT;
	bool all_fit = true;
	rc = ha_losses_alloc(&ls, v.n_hosts);
	for (size_t i = 0; rc == 0 && i < v.n_hosts; i++)
		/* a host that is dead or gone is lost already: its HA VMs run
		 * elsewhere now, or are listed as down below */
		if (v.hosts[i].n_vms > 0 && v.hosts[i].cap.alive)
			rc = ha_loss_simulate(&v, i, &ls, &all_fit);
	uint64_t now = uv_now(a->loop);
	if (rc == 0)
		rc = ha_owed_list_fill(a, now, &ol);
	if (rc == 0)
		rc = ha_count_ha_vms(&v, &ol, &rep.ha_vms);
	if (rc == 0) {
		rep.ok = all_fit;
		rep.voters = fo_voters(h->fo);
		rep.majority = fo_majority(h->fo);
		rep.alive_voters = fo_acknowledged(h->fo, now);
		rep.quorate = fo_quorate(h->fo, now);
		rep.n_losses = ls.n;
		rep.losses = ls.ptrs;
		rep.replicas_held = h->n_replicas;
		rep.reporter = a->opt.name;
		rep.n_owed = ol.n;
		rep.owed = ol.ptrs;
		Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
		resp.result_case = MV__RPC_RESPONSE__RESULT_HA;
		resp.ha = &rep;
		ha_reply_ok(a, sink, &resp);
	}
	ha_losses_free(&ls);
	ha_owed_list_free(&ol);
	ha_view_free(&v);
	return rc;
}

/* `meshvisor events`: the last `backlog` events now, then each new one
 * until the client goes (the sink stays open). */
static int ha_rpc_events(struct agent *a, uint32_t backlog, uint64_t sink, char *err, size_t errlen)
{
	struct ha *h = HA(a);
	size_t subs = 0, mine = 0;
	const char *who = rpc_sink_caller(a, sink);
	for (struct ha_sub **pp = &h->subs; *pp != NULL;) {
		struct ha_sub *s = *pp;
		if (!rpc_sink_alive(a, s->sink)) { /* a client gone: its slot is free */
			rpc_sink_drop(a, s->sink);
			*pp = s->next;
			free(s);
			continue;
		}
		subs++;
		mine += strcmp(s->peer, who) == 0;
		pp = &s->next;
	}
	if (mine >= HA_EVENT_SUBS_PER_CERT) {
		snprintf(
		    err, errlen,
		    "too many event subscribers for certificate '%.64s' on %s (%d streams open, "
		    "the cap per certificate); close one and try again",
		    who, a->opt.name, HA_EVENT_SUBS_PER_CERT);
		return -EBUSY;
	}
	if (subs >= HA_EVENT_SUBS_MAX) {
		snprintf(err, errlen,
		         "too many event subscribers on %s (%d streams open, the cap); close one "
		         "and try again",
		         a->opt.name, HA_EVENT_SUBS_MAX);
		return -EBUSY;
	}
	if (backlog > HA_EVENTS_MAX)
		backlog = HA_EVENTS_MAX;
	for (uint64_t i = backlog; i > 0; i--) {
		const struct ha_event_rec *e = ha_event_back(h, i - 1);
		if (e != NULL)
			ha_event_send(a, sink, e);
	}
	struct ha_sub *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->sink = sink;
	snprintf(s->peer, sizeof(s->peer), "%s", who);
	s->next = h->subs;
	h->subs = s;
	return 0;
}

/* Why fo_force_leave refused (rc < 0) to remove node. */
static void ha_force_leave_error(struct agent *a, const char *node, int rc, char *err,
                                 size_t errlen)
{
	if (rc == -ENOENT)
		snprintf(err, errlen, "%s is not a voting member of this cluster", node);
	else if (rc == -EBUSY)
		snprintf(err, errlen,
		         "%s is not dead in %s's view; only a dead host can be removed (stop its "
		         "agent, or let it leave gracefully)",
		         node, a->opt.name);
	else if (rc == -EINVAL)
		snprintf(err, errlen, "a node cannot force-leave itself; use `meshvisor leave`");
	else
		snprintf(err, errlen, "force-leave failed: %s", strerror(-rc));
}

/* `meshvisor force-leave NODE`: removes a dead node from the voting set
 * (the operator typed its name again), only where the force-leave guard
 * lets it (or the operator overrode it, logged); answers with the event. */
static int ha_rpc_force_leave(struct agent *a, const Mv__ForceLeaveRequest *q, const char *peer,
                              uint64_t sink, char *err, size_t errlen)
{
	struct ha *h = HA(a);
	if (q->node == NULL || q->node[0] == '\0') {
		snprintf(err, errlen, "force-leave needs a node name");
		return -EINVAL;
	}
	if (q->confirm == NULL || strcmp(q->confirm, q->node) != 0) {
		snprintf(err, errlen,
		         "not confirmed: removing %s from the voting set needs its name typed "
		         "again (or --yes)",
		         q->node);
		return -EINVAL;
	}
	uint64_t now = uv_now(a->loop);
	const char *who = rpc_sink_caller(a, sink); /* the certificate that asked */
	size_t heard = fo_acknowledged(h->fo, now), voters = fo_voters(h->fo);
	size_t majority = fo_majority(h->fo);
	bool overridden = q->majority_is_gone && heard < majority;
	int rc = fo_driver_force_leave_guard(a->opt.name, q->node, heard, voters, majority,
	                                     q->majority_is_gone, err, errlen);
	if (rc < 0) {
		MV_WARN(
		    "failover",
		    "force-leave refused name=%s client=%s requested_via=%s heard=%zu voters=%zu "
		    "majority=%zu reason=\"no majority heard; no --majority-is-gone\"",
		    q->node, who, peer ? peer : "rpc", heard, voters, majority);
		return rc;
	}
	rc = fo_force_leave(h->fo, q->node, now);
	if (rc < 0) {
		ha_force_leave_error(a, q->node, rc, err, errlen);
		return rc;
	}
	if (overridden)
		MV_WARN(
		    "failover",
		    "force-leave OVERRIDE: client=%s requested_via=%s stated the majority is gone "
		    "(--majority-is-gone) name=%s heard=%zu voters_before=%zu "
		    "majority_before=%zu: if the hosts this node does not hear are alive, two "
		    "sides may decide failovers",
		    who, peer ? peer : "rpc", q->node, heard, voters, majority);
	MV_WARN("failover",
	        "force-leave name=%s client=%s requested_via=%s voters=%zu majority=%zu", q->node,
	        who, peer ? peer : "rpc", fo_voters(h->fo), fo_majority(h->fo));
	ha_pump(a);
	struct ha_event_rec e;
	memset(&e, 0, sizeof(e));
	snprintf(e.kind, sizeof(e.kind), "member-removed");
	snprintf(e.node, sizeof(e.node), "%s", q->node);
	snprintf(e.text, sizeof(e.text), "removed from the voting set: %zu voters, majority %zu%s",
	         fo_voters(h->fo), fo_majority(h->fo),
	         overridden ? " (operator stated the majority is gone)" : "");
	e.unix_ms = ha_wall_ms();
	Mv__ClusterEvent ev;
	ha_event_fill(&e, &ev);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.result_case = MV__RPC_RESPONSE__RESULT_EVENT;
	resp.event = &ev;
	ha_reply_ok(a, sink, &resp);
	return 0;
}

/* A peer asks for the replica of a VM definition we hold. */
static int ha_rpc_replica_get(struct agent *a, const char *uuid, uint64_t sink, char *err,
                              size_t errlen)
{
	const struct ha_replica *r = ha_replica_find(HA(a), uuid);
	if (r == NULL) {
		snprintf(err, errlen, "%s holds no replica of %s", a->opt.name, uuid);
		return -ENOENT;
	}
	Mv__HaReplica rep = MV__HA_REPLICA__INIT;
	rep.owner = (char *)r->owner;
	rep.uuid = (char *)r->uuid;
	rep.name = (char *)r->name;
	rep.epoch = r->epoch;
	rep.priority = r->priority;
	rep.group = (char *)r->group;
	rep.xml = r->xml;
	rep.updated_unix_ms = r->updated_unix_ms;
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.result_case = MV__RPC_RESPONSE__RESULT_REPLICA;
	resp.replica = &rep;
	ha_reply_ok(a, sink, &resp);
	return 0;
}

/* RPC: events, failovers, ha, force_leave, replica_put, replica_get
 * (registered by ha_start: ha_rpc_ops). The answer goes out through the
 * sink (one final frame; `events` keeps it open). */
static int ha_rpc(struct agent *a, const Mv__RpcRequest *req, const char *peer, uint64_t sink,
                  char *err, size_t errlen)
{
	struct ha *h = HA(a);
	if (h == NULL || h->fo == NULL) {
		snprintf(err, errlen, "failover is not running on %s", a->opt.name);
		return -ENOTCONN;
	}
	int rc;
	switch (req->op_case) {
	case MV__RPC_REQUEST__OP_EVENTS:
		return ha_rpc_events(a, req->events->backlog, sink, err, errlen);
	case MV__RPC_REQUEST__OP_FAILOVERS:
	case MV__RPC_REQUEST__OP_HA:
		rc = req->op_case == MV__RPC_REQUEST__OP_HA ? ha_rpc_ha(a, sink)
		                                            : ha_rpc_failovers(a, sink);
		if (rc < 0) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	case MV__RPC_REQUEST__OP_FORCE_LEAVE:
		return ha_rpc_force_leave(a, req->force_leave, peer, sink, err, errlen);
	case MV__RPC_REQUEST__OP_REPLICA_PUT: {
		rc = ha_replica_store(h, peer, req->replica_put, err, errlen);
		if (rc < 0)
			return rc;
		Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
		ha_reply_ok(a, sink, &resp);
		return 0;
	}
	case MV__RPC_REQUEST__OP_REPLICA_GET:
		return ha_rpc_replica_get(a, req->replica_get->uuid, sink, err, errlen);
	default:
		snprintf(err, errlen, "not a failover operation");
		return -EINVAL;
	}
}

/* ---- life ----------------------------------------------------------------------------------- */

static const struct {
	Mv__RpcRequest__OpCase op;
	const char *name;
	enum rpc_access access;
} ha_rpc_ops[] = {
    {MV__RPC_REQUEST__OP_EVENTS, "events", RPC_READ},
    {MV__RPC_REQUEST__OP_FAILOVERS, "failovers", RPC_READ},
    {MV__RPC_REQUEST__OP_HA, "ha", RPC_READ},
    {MV__RPC_REQUEST__OP_FORCE_LEAVE, "force-leave", RPC_WRITE},
    /* replicas of HA definitions travel between agents only */
    {MV__RPC_REQUEST__OP_REPLICA_PUT, "replica put", RPC_NODE_ONLY},
    {MV__RPC_REQUEST__OP_REPLICA_GET, "replica get", RPC_NODE_ONLY},
};

/* HA's part of this host's record: the failover fields, VM-level HA's
 * restarts; and it hears of every record that changes. */
static const struct nodestate_contributor ha_state_contributor = {
    .vm_restarting = ha_vm_restarting,
    .fill = ha_fill_node_state,
    .changed = ha_on_state_change,
};

int ha_start(struct agent *a, char *err, size_t errlen)
{
	if (nodestate_add_contributor(&ha_state_contributor) < 0 ||
	    membership_add_listener(ha_on_member_event) < 0) {
		snprintf(err, errlen, "cannot register with node state and membership");
		return -ENOSPC;
	}
	for (size_t i = 0; i < sizeof(ha_rpc_ops) / sizeof(ha_rpc_ops[0]); i++) {
		int rc = rpc_register_op(ha_rpc_ops[i].op, ha_rpc_ops[i].name, ha_rpc_ops[i].access,
		                         ha_rpc);
		if (rc < 0) {
			snprintf(err, errlen, "cannot register the RPC operation %s: %s",
			         ha_rpc_ops[i].name, strerror(-rc));
			return rc;
		}
	}
	struct ha *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	h->wd.fd = -1;
	h->stamp_fd = -1;
	h->events = calloc(HA_EVENTS_MAX, sizeof(*h->events));
	if (h->events == NULL) {
		free(h);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	a->ha = h;
	const struct agent_options *o = &a->opt;
	struct fo_config cfg;
	fo_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", o->name);
	if (getrandom(&cfg.seed, sizeof(cfg.seed), 0) != (ssize_t)sizeof(cfg.seed))
		cfg.seed = (uint64_t)ha_wall_ms() ^ (uint64_t)getpid();
	cfg.witness = o->witness;
	cfg.expect_cluster = o->n_seeds > 0;
	cfg.heartbeat_ms = o->fo_heartbeat_ms;
	cfg.fence_after_ms = o->fo_fence_after_ms;
	cfg.fence_margin_ms = o->fo_fence_margin_ms;
	cfg.quorate_ms = agent_options_quorate_ms(o);
	cfg.max_parallel = o->fo_max_parallel;
	cfg.restart_attempts = o->fo_restart_attempts;
	uint64_t now = uv_now(a->loop);
	h->fo = fo_new(&cfg, now);
	if (h->fo == NULL) {
		snprintf(err, errlen, "cannot create the failover core");
		return -ENOMEM;
	}
	size_t dl = strlen(o->data_dir);
	h->journal_path = malloc(dl + sizeof("/failover-journal"));
	if (h->journal_path == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(h->journal_path, o->data_dir, dl);
	memcpy(h->journal_path + dl, "/failover-journal", sizeof("/failover-journal"));
	int jrc = ha_journal_load(h, err, errlen);
	if (jrc < 0)
		return jrc;
	fo_set_incarnation(h->fo, swim_incarnation(membership_swim(a)));
	fo_member(h->fo, o->name, FO_ALIVE, swim_incarnation(membership_swim(a)), now);
	ha_stamp_start(a); /* may resume the self-fence clock of the previous agent */
	now = uv_now(a->loop);
	if (o->fo_watchdog != NULL && o->fo_watchdog[0] != '\0') {
		/* refuses to start when the device cannot guarantee the timeout */
		int wrc = ha_watchdog_start(a, now, err, errlen);
		if (wrc < 0)
			return wrc;
	}
	uv_timer_init(a->loop, &h->timer);
	uv_timer_init(a->loop, &h->tick);
	uv_timer_init(a->loop, &h->state_timer);
	uv_timer_init(a->loop, &h->keepalive);
	h->timer.data = h->tick.data = h->state_timer.data = h->keepalive.data = a;
	h->timers_on = true;
	h->repl_refresh_at = now + HA_REPLICA_REFRESH_MS;
	uv_timer_start(&h->tick, ha_on_tick, o->fo_heartbeat_ms, o->fo_heartbeat_ms);
	uint64_t ka = ha_keepalive_ms(o);
	uv_timer_start(&h->keepalive, ha_on_keepalive, ka, ka);
	MV_INFO("failover",
	        "started witness=%d fence_after_ms=%u fence_margin_ms=%u replicas=%u "
	        "expect_cluster=%d",
	        o->witness, o->fo_fence_after_ms, o->fo_fence_margin_ms, o->fo_replicas,
	        cfg.expect_cluster);
	ha_event(a, "agent-started", o->name, NULL, "agent started%s",
	         o->witness ? " (witness)" : "");
	migration_set_move_hooks(a, &ha_move_hooks);
	ha_settle_moves(a, true);
	ha_pump(a);
	return 0;
}

void ha_stop(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL)
		return;
	migration_set_move_hooks(a, NULL);
	uv_timer_stop(&h->timer);
	uv_timer_stop(&h->tick);
	uv_timer_stop(&h->state_timer);
	uv_timer_stop(&h->keepalive);
	for (struct ha_sub *s = h->subs; s != NULL; s = s->next) {
		Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
		resp.code = MV__RPC_CODE__RPC_ERR_UNAVAILABLE;
		resp.error = "the agent is stopping";
		rpc_sink_send(a, s->sink, &resp, true);
	}
	while (h->subs != NULL) {
		struct ha_sub *s = h->subs;
		h->subs = s->next;
		free(s);
	}
	for (struct ha_restart *r = h->restarts; r != NULL; r = r->next_job)
		r->dead = true;
	if (h->fo != NULL)
		ha_stamp_stop(a);
	if (h->wd_on) {
		/* the magic close: a clean stop disarms the watchdog */
		ha_watchdog_disarm(a, "clean stop");
		h->wd_on = false;
	}
}

unsigned ha_work_running(const struct agent *a)
{
	const struct ha *h = a->ha;
	return h != NULL ? h->fence_work_running + h->restart_work_running + h->lfence_running : 0;
}

/* metrics.c: the failover core, read-only (NULL outside ha_start..ha_free). */
const struct fo *ha_core(const struct agent *a)
{
	return a->ha != NULL ? a->ha->fo : NULL;
}

/* metrics.c: HA VMs in the cluster and those owed, counted as `meshvisor ha`
 * counts them (ha_rpc_ha). 0 or -ENOMEM. */
int ha_vm_counts(struct agent *a, uint32_t *ha_vms, uint32_t *owed)
{
	*ha_vms = *owed = 0;
	if (a->ha == NULL || a->ha->fo == NULL)
		return 0;
	struct ha_view v;
	struct ha_owed_list ol = {0};
	int rc = ha_view_load(a, &v);
	if (rc == 0)
		rc = ha_owed_list_fill(a, uv_now(a->loop), &ol);
	if (rc == 0)
		rc = ha_count_ha_vms(&v, &ol, ha_vms);
	*owed = (uint32_t)ol.n;
	ha_owed_list_free(&ol);
	ha_view_free(&v);
	return rc;
}

bool ha_quorate(const struct agent *a)
{
	const struct ha *h = a->ha;
	return h != NULL && h->fo != NULL && fo_quorate(h->fo, uv_now(a->loop));
}

void ha_close(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL || !h->timers_on)
		return;
	h->timers_on = false;
	uv_close((uv_handle_t *)&h->timer, NULL);
	uv_close((uv_handle_t *)&h->tick, NULL);
	uv_close((uv_handle_t *)&h->state_timer, NULL);
	uv_close((uv_handle_t *)&h->keepalive, NULL);
}

void ha_free(struct agent *a)
{
	struct ha *h = HA(a);
	if (h == NULL)
		return;
	fo_free(h->fo);
	free(h->journal_path);
	if (h->stamp_fd >= 0)
		close(h->stamp_fd);
	free(h->stamp_path);
	free(h->unfenced);
	for (size_t i = 0; i < h->n_replicas; i++)
		free(h->replicas[i].xml);
	free(h->replicas);
	free(h->sent);
	free(h->events);
	while (h->crashes) {
		struct ha_crash *c = h->crashes;
		h->crashes = c->next;
		free(c);
	}
	while (h->expects) {
		struct ha_expect *x = h->expects;
		h->expects = x->next;
		free(x);
	}
	/* restarts still waiting for an answer are owned by rpc callbacks that
	 * will never run now */
	while (h->restarts) {
		struct ha_restart *r = h->restarts;
		h->restarts = r->next_job;
		free(r);
	}
	free(h);
	a->ha = NULL;
	/* the worker's block (ha_block_starts) is process-wide: a failover
	 * service started again in this process begins unblocked, as the
	 * first did (not at ha_stop: the worker may still take a queued
	 * start until hvwork_stop, and the block holds for it) */
	virt_block_ha_starts(NULL);
}
