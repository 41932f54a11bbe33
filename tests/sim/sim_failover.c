/*
 * sim_failover.c — the failover world (see sim_failover.h for the model
 * and the oracle).
 *
 * The world runs on sim_net.h (one virtual clock, event queue, PRNG and
 * fake network; host i is network endpoint i). Its queue orders
 * everything by (virtual ms, seq): the cores' timers of every host (one
 * live entry each, re-armed with a generation number), messages in flight,
 * the completion of actions (a libvirt start, a remote fence), the
 * periodic node-state publication, watchdog expiries and the scenario's
 * own timed calls. The world runs it one event at a time
 * (simnet_step_one), so that run_until looks at the world after each.
 * After every call into a core the world drains it completely: SWIM's
 * member events become fo_member() calls, failover messages go onto the
 * network, failover events are carried out on the truth and checked, and
 * the timers are re-armed. Each host's clock is its own view of the
 * world's (fw_local_now: a random origin and a drift), not a clock of its
 * own.
 *
 * Every message (SWIM packet, failover message, node-state or migration
 * frame) travels in one envelope, struct fw_msg, that names its kind, so
 * that all kinds see the same faults (partition sides, one-way blocks,
 * loss, delay). The network decides a message's fate (and makes its
 * draws) when it is sent, as the world did before it ran on sim_net; the
 * body is made after that, so nothing is built for a dropped message.
 * Invariants: endpoint i is up exactly while host i's agent is, and its
 * epoch changes exactly when the agent's life does (at every start and
 * stop), so a message (epoch) or job (life) addressed to one life is
 * dropped in another; a frozen host's input waits in its own queue until
 * it resumes (fw_resume).
 *
 * The truth is a list of copies per VM: (host, epoch). A copy counts as
 * running while its host is up and not frozen (O1 counts those). A whole-
 * host crash removes the host's copies; fences remove copies; a start adds
 * one.
 */
#include "sim_failover.h"
#include "envelope.h"
#include "fo_codec.h"
#include "fo_driver.h"
#include "swim_codec.h"
#include "state_codec.h"
#include "state_driver.h"
#include "mig_codec.h"
#include "mig_driver.h"
#include "meshvisor.pb-c.h"
#include "meshvisor/placement.h"
#include "sim_net.h"
#include "prng.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FW_MAXCOPY 32
#define FW_MOVE_READY_MS 5000 /* a move not acknowledged by then is off */
#define FW_GIB (1024ull * 1024)

/* The world's own events (messages are the network's SIMNET_EV_DELIVER,
 * their payload a struct fw_msg). */
enum fw_ev_kind {
	E_SWIM_TIMER = SIMNET_EV_USER,
	E_FO_TIMER,
	E_JOB, /* gen = the agent's life, p = struct fw_job */
	E_PUBLISH,
	E_WATCHDOG,
	E_CALL,         /* p = struct fw_call */
	E_JOIN,         /* gen = the agent's life, arg = the host it joins through */
	E_NS_TIMER,     /* opts.gossip_state: the node-state core's timer */
	E_MIG_TIMER,    /* opts.migrate_every_ms: the migration core's timer */
	E_MIG_JOB,      /* ... a live migration's libvirt job ends (arg = job) */
	E_MIG_OPERATOR, /* ... an operator asks for a move */
};

/* What a message on the network carries. */
enum fw_msg_kind {
	M_SWIM, /* struct swim_msg (one allocation with its strings) */
	M_FO,   /* struct fo_msg */
	M_NS,   /* struct fw_frame: a node-state frame */
	M_MIG,  /* struct fw_frame: a migration frame */
};

/* The envelope of every message in flight. body is NULL when the message
 * could not be made after the network took it (a codec failure, which
 * fails the world): it arrives as nothing. */
struct fw_msg {
	enum fw_msg_kind kind;
	void *body;
	struct fw_msg *next_spare; /* envelopes are reused (a list per world) */
};

/* A scenario's timed call (fw_at). */
struct fw_call {
	fw_call_f fn;
	int a, b;
	void *arg;
};

/* A live migration as libvirt runs it for the source's agent. */
struct fw_mig_job {
	char pid[MIG_ID_MAX];
	int vm, src, dst;
	uint32_t src_life; /* the source agent that runs it (its death aborts it) */
	uint64_t epoch;    /* the VM's epoch after the move (bumped at GO) */
	bool active, kill;
	bool started;      /* the hypervisor moves it (after fo_move_ready) */
	uint64_t ready_by; /* world time: not ready by then, the move is off */
};

enum fw_job_kind { J_RESTART_DONE, J_FENCE_DONE };

struct fw_job {
	enum fw_job_kind kind;
	struct fo_instance_id inst;
	char uuid[FO_UUID_MAX];
	bool ok;
	char why[64];
};

/* A frame on the wire (node-state messages: encoded at the sender, decoded
 * at the receiver). */
struct fw_frame {
	size_t len;
	uint8_t bytes[];
};

struct fw_swim_pkt {
	struct swim_msg msg; /* strings and updates follow in the allocation */
};

/* A definition of the VM on a host (its libvirt): running, or stopped
 * (destroyed by a fence, its host crashed) and kept on disk. */
struct fw_copy {
	int host;
	uint64_t epoch;
	bool running;
};

struct fw_vm {
	char uuid[FO_UUID_MAX], name[FO_NAME_MAX], group[FO_GROUP_MAX];
	int32_t prio;
	uint32_t vcpus;
	uint64_t mem;
	int home;
	struct fw_copy c[FW_MAXCOPY];
	int nc;
	uint64_t max_epoch;
	bool doubled; /* O1 reported for the current incident */
};

/* One publication of a host's node state: a packed NodeState as the
 * daemon gossips it, unpacked once (immutable, shared by views). */
struct fw_pub {
	int refs;
	uint64_t ns_inc, ns_ver; /* opts.gossip_state: the record's version */
	size_t len;
	uint8_t *bytes;
	Mv__NodeState *ns;
};

struct fw_host {
	char name[FO_NAME_MAX];
	char addr[SWIM_ADDR_MAX];
	uint32_t cpus, base_vcpus;
	uint64_t mem, base_mem;
	bool witness;
	bool hv_up, agent_up, frozen, refuse;
	uint32_t life; /* bumped at every start and stop of its agent */
	struct swim *sw;
	struct fo *fo;
	uint64_t inc_persist;
	uint32_t sw_gen, fo_gen;
	uint64_t sw_armed, fo_armed;
	uint64_t redue_at;
	uint32_t redue_n;
	struct simnet_event *fq; /* input queued while frozen */
	size_t fq_n, fq_cap;
	struct fw_pub *pub;
	bool dirty;
	struct fw_pub **view; /* [n] */
	struct nstate *ns;    /* opts.gossip_state: the node-state gossip core */
	uint32_t ns_gen;
	uint64_t ns_armed;
	uint64_t ns_inc, ns_ver; /* what it last published */
	struct mig *mg;          /* opts.migrate_every_ms: the migration core */
	uint32_t mg_gen;
	uint64_t mg_armed;
	uint64_t wd_pet;
	bool wd_armed; /* the watchdog counts (armed at the first quorum) */
	bool quorate_since_start;
	bool swim_pending;     /* SWIM has output to drain (a new incarnation) */
	uint64_t last_quorate; /* world time it was last quorate (any life) */
	bool removed;          /* force-left by the operator (O2 stops counting it) */
	bool joined;           /* another host heard of it (O2 counts it from then on) */
	uint64_t clk_off;      /* this host's clock: clk_off + now * clk_rate */
	double clk_rate;
	char *journal; /* its disk: the failover journal (opts.journal) */
	size_t journal_len;
	uint64_t journal_ver; /* fo_journal_version() when last written */
};

/* A ballot seen on the wire: its ACCEPT's plan and who ACCEPTED it. */
struct fw_ballot {
	struct fo_instance_id inst;
	struct fo_ballot ballot;
	bool has_plan;
	struct fo_plan plan;
	uint64_t acc[FW_MAXN / 64];
	/* the acceptances reached a majority of the voting set in force at
	 * that moment (an operator's force-leave shrinks it; a plan chosen
	 * then stays chosen when the removed host comes back) */
	bool majority;
};

struct fw {
	struct fw_opts o;
	struct simnet *net;        /* clock, queue, PRNG, network (endpoint i = host i) */
	struct fw_msg *spare_msgs; /* envelopes not in flight */
	int n;
	struct fw_host *h;
	struct fw_vm *vm;
	int nvm, capvm;
	bool started;
	/* log, registry */
	struct fw_rec *log;
	size_t log_n, log_cap;
	struct fw_chosen *ch;
	size_t ch_n, ch_cap;
	struct fw_ballot *bal;
	size_t bal_n, bal_cap;
	struct fw_mig_job *mj; /* opts.migrate_every_ms */
	size_t mj_n, mj_cap;
	bool operators_rest; /* fw_operators_rest(): no more moves are asked */
	struct fw_counters ctr;
	char fail[512];
	fw_send_hook_f send_hook;
	void *send_arg;
	fw_event_hook_f ev_hook;
	void *ev_arg;
};

/* ------------------------------------------------------------ basics */

uint64_t fw_rand(struct fw *w)
{
	return simnet_rand(w->net);
}
static uint32_t fw_below(struct fw *w, uint32_t n)
{
	return simnet_below(w->net, n);
}
static double fw_unit(struct fw *w)
{
	return simnet_unit(w->net);
}

static void vlog(struct fw *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void vlog(struct fw *w, int level, const char *fmt, ...)
{
	if (w->o.verbose < level)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fw t=%" PRIu64 " ", fw_now(w));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void fw_fail(struct fw *w, const char *fmt, ...)
{
	w->ctr.violations++;
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (w->o.verbose)
		fprintf(stderr, "fw t=%" PRIu64 " VIOLATION %s\n", fw_now(w), buf);
	if (!w->fail[0])
		snprintf(w->fail, sizeof(w->fail), "t=%" PRIu64 ": %s", fw_now(w), buf);
}

static void fw_push(struct fw *w, uint64_t at, enum fw_ev_kind kind, int node, uint32_t gen,
                    void *p)
{
	struct simnet_event ev = {.at = at, .kind = kind, .node = node, .gen = gen, .p = p};
	simnet_at(w->net, ev);
}

static struct fw_rec *fw_log(struct fw *w, int type, int node)
{
	if (w->log_n == w->log_cap) {
		w->log_cap = w->log_cap ? w->log_cap * 2 : 256;
		w->log = realloc(w->log, w->log_cap * sizeof(*w->log));
		if (w->log == NULL)
			abort();
	}
	struct fw_rec *r = &w->log[w->log_n++];
	memset(r, 0, sizeof(*r));
	r->t = fw_now(w);
	r->type = type;
	r->node = node;
	r->peer = -1;
	r->vm = -1;
	r->plan_pos = -1;
	return r;
}

int fw_index(const struct fw *w, const char *name)
{
	if (name == NULL || name[0] != 'n' || name[1] < '0' || name[1] > '9')
		return -1;
	char *end;
	long i = strtol(name + 1, &end, 10);
	if (*end || i < 0 || i >= w->n || strcmp(w->h[i].name, name) != 0)
		return -1;
	return (int)i;
}

/* Host i's clock, what its cores are given as `now`: its own origin and a
 * rate off by a few hundred ppm (opts), never the world's. */
uint64_t fw_local_now(const struct fw *w, int i)
{
	const struct fw_host *h = &w->h[i];
	return h->clk_off + (uint64_t)((double)fw_now(w) * h->clk_rate);
}

/* The first world time at which host i's clock reads at least `d`. */
static uint64_t fw_global(const struct fw *w, int i, uint64_t d)
{
	const struct fw_host *h = &w->h[i];
	if (d == UINT64_MAX)
		return UINT64_MAX;
	if (d <= h->clk_off)
		return 0;
	uint64_t t = (uint64_t)((double)(d - h->clk_off) / h->clk_rate);
	while (h->clk_off + (uint64_t)((double)t * h->clk_rate) < d)
		t++;
	while (t > 0 && h->clk_off + (uint64_t)((double)(t - 1) * h->clk_rate) >= d)
		t--;
	return t;
}

static int fw_addr_index(const struct fw *w, const char *addr)
{
	unsigned hi, lo;
	if (addr == NULL || sscanf(addr, "10.0.%u.%u:", &hi, &lo) != 2)
		return -1;
	long i = (long)hi * 256 + lo - 1;
	if (i < 0 || i >= w->n || strcmp(w->h[i].addr, addr) != 0)
		return -1;
	return (int)i;
}

int fw_vm_index(const struct fw *w, const char *uuid)
{
	for (int k = 0; k < w->nvm; k++)
		if (strcmp(w->vm[k].uuid, uuid) == 0)
			return k;
	return -1;
}

/* ------------------------------------------------------------ network */

bool fw_link_open(const struct fw *w, int a, int b)
{
	return simnet_link_open(w->net, a, b);
}

/* Back to the spare list, its body freed. */
static void fw_msg_free(struct fw *w, struct fw_msg *m)
{
	if (m->kind == M_FO && m->body != NULL)
		fo_msg_clear(m->body);
	free(m->body);
	m->body = NULL;
	m->next_spare = w->spare_msgs;
	w->spare_msgs = m;
}

/* An envelope for a message of `kind` from a to b onto the network (the
 * network's draws are made here, as a message is sent); returns it, for
 * the caller to put the body in before the next event runs (so nothing is
 * made for a message the network drops), or NULL when the link dropped it
 * (counted). */
static struct fw_msg *fw_net_send(struct fw *w, int a, int b, enum fw_msg_kind kind)
{
	struct fw_msg *m = w->spare_msgs;
	if (m != NULL)
		w->spare_msgs = m->next_spare;
	else if ((m = malloc(sizeof(*m))) == NULL)
		abort();
	m->kind = kind;
	m->body = NULL;
	if (simnet_send(w->net, a, b, m) != SIMNET_SENT) {
		w->ctr.dropped++;
		return NULL;
	}
	return m;
}

void fw_partition(struct fw *w, const int *group)
{
	simnet_partition(w->net, group);
	vlog(w, 1, "partition");
}

void fw_heal(struct fw *w)
{
	simnet_heal(w->net);
	vlog(w, 1, "heal");
}

void fw_block(struct fw *w, int a, int b)
{
	simnet_block(w->net, a, b);
}
void fw_unblock(struct fw *w, int a, int b)
{
	simnet_unblock(w->net, a, b);
}

void fw_set_loss(struct fw *w, int a, int b, double p)
{
	simnet_set_loss(w->net, a, b, p);
}

void fw_refuse_starts(struct fw *w, int i, bool on)
{
	w->h[i].refuse = on;
}

static void fw_fo_drain(struct fw *w, int i, bool after_timer);

static void fw_recount_majorities(struct fw *w);

int fw_force_leave(struct fw *w, int at, int target)
{
	struct fw_host *h = &w->h[at];
	if (!h->agent_up || h->frozen)
		return -1;
	/* the guard the daemon applies (fo_driver.c): the simulated operator
	 * never states that the majority is gone (the hosts it removes may
	 * boot again: the runbook forbids that statement then) */
	uint64_t now = fw_local_now(w, at);
	char why[512];
	int rc = fo_driver_force_leave_guard(h->name, w->h[target].name,
	                                     fo_acknowledged(h->fo, now), fo_voters(h->fo),
	                                     fo_majority(h->fo), false, why, sizeof(why));
	if (rc < 0) {
		vlog(w, 1, "%s: operator force-leaves %s: refused: %s", h->name, w->h[target].name,
		     why);
		return rc;
	}
	rc = fo_force_leave(h->fo, w->h[target].name, now);
	vlog(w, 1, "%s: operator force-leaves %s: %d", h->name, w->h[target].name, rc);
	if (rc == 0) {
		w->h[target].removed = true;
		fw_recount_majorities(w);
	}
	fw_fo_drain(w, at, false);
	return rc;
}

/* ------------------------------------------------------------ truth */

static int fw_live_copies(const struct fw *w, const struct fw_vm *v)
{
	int c = 0;
	for (int k = 0; k < v->nc; k++)
		if (v->c[k].running && w->h[v->c[k].host].hv_up && !w->h[v->c[k].host].frozen)
			c++;
	return c;
}

/* O1 for one VM. */
static void fw_check_vm(struct fw *w, struct fw_vm *v)
{
	int c = fw_live_copies(w, v);
	if (c <= 1) {
		v->doubled = false;
		return;
	}
	if (v->doubled)
		return;
	v->doubled = true;
	w->ctr.double_starts++;
	char where[256] = "";
	size_t off = 0;
	for (int k = 0; k < v->nc && off < sizeof(where) - 40; k++)
		if (v->c[k].running)
			off += (size_t)snprintf(where + off, sizeof(where) - off,
			                        " %s(epoch %" PRIu64 "%s)", w->h[v->c[k].host].name,
			                        v->c[k].epoch,
			                        w->h[v->c[k].host].frozen ? ", frozen" : "");
	fw_fail(w, "O1 %s (%s) runs on %d live hosts:%s", v->name, v->uuid, c, where);
}

static struct fw_copy *fw_copy_on(struct fw_vm *v, int host)
{
	for (int k = 0; k < v->nc; k++)
		if (v->c[k].host == host)
			return &v->c[k];
	return NULL;
}

/* Destroys the VM's running copy on `host` if its epoch is below `below`
 * (UINT64_MAX: any); the definition stays, stopped (libvirt's destroy). */
static void fw_destroy_copy(struct fw *w, int vmi, int host, uint64_t below, const char *why)
{
	struct fw_vm *v = &w->vm[vmi];
	struct fw_copy *c = fw_copy_on(v, host);
	if (c == NULL || !c->running || c->epoch >= below)
		return;
	c->running = false;
	w->h[host].dirty = true;
	w->ctr.vms_destroyed++;
	struct fw_rec *r = fw_log(w, FW_R_VM_DESTROY, host);
	r->vm = vmi;
	vlog(w, 1, "%s: %s destroyed (%s)", w->h[host].name, v->name, why);
}

static void fw_destroy_all(struct fw *w, int host, const char *why)
{
	for (int k = 0; k < w->nvm; k++)
		fw_destroy_copy(w, k, host, UINT64_MAX, why);
}

static void fw_undefine(struct fw *w, int vmi, int host)
{
	struct fw_vm *v = &w->vm[vmi];
	for (int k = 0; k < v->nc; k++)
		if (v->c[k].host == host) {
			v->c[k] = v->c[--v->nc];
			w->h[host].dirty = true;
			return;
		}
}

bool fw_vm_on(const struct fw *w, int vmi, int host)
{
	const struct fw_vm *v = &w->vm[vmi];
	for (int k = 0; k < v->nc; k++)
		if (v->c[k].host == host && v->c[k].running)
			return true;
	return false;
}

bool fw_vm_defined_on(const struct fw *w, int vmi, int host)
{
	const struct fw_vm *v = &w->vm[vmi];
	for (int k = 0; k < v->nc; k++)
		if (v->c[k].host == host)
			return true;
	return false;
}

void fw_host_load(const struct fw *w, int i, uint32_t *vcpus, uint64_t *mem_kib)
{
	uint32_t vc = w->h[i].base_vcpus;
	uint64_t m = w->h[i].base_mem;
	for (int k = 0; k < w->nvm; k++)
		if (fw_vm_on(w, k, i)) {
			vc += w->vm[k].vcpus;
			m += w->vm[k].mem;
		}
	*vcpus = vc;
	*mem_kib = m;
}

static struct placement_host fw_placement(const struct fw *w, int i)
{
	const struct fw_host *h = &w->h[i];
	struct placement_host p = {
	    .name = h->name,
	    .alive = true,
	    .healthy = true,
	    .draining = false,
	    .cpus = h->cpus,
	    .cpu_overcommit = 1.0,
	    .memory_kib = h->mem,
	    .memory_reserved_kib = 0,
	    .memory_overcommit = 1.0,
	};
	fw_host_load(w, i, &p.vcpus_allocated, &p.memory_allocated_kib);
	return p;
}

bool fw_host_fits(const struct fw *w, int i)
{
	struct placement_host p = fw_placement(w, i);
	return p.vcpus_allocated <= placement_vcpu_capacity(&p) &&
	       p.memory_allocated_kib <= placement_memory_capacity_kib(&p);
}

/* ------------------------------------------------------------ publication */

static void fw_pub_unref(struct fw_pub *p)
{
	if (p && --p->refs == 0) {
		mv__node_state__free_unpacked(p->ns, NULL);
		free(p->bytes);
		free(p);
	}
}

/* A publication from its packed bytes (taken): what the peers get is what
 * the wire carries. */
static struct fw_pub *fw_pub_wrap(uint8_t *bytes, size_t len)
{
	struct fw_pub *p = calloc(1, sizeof(*p));
	if (p == NULL)
		abort();
	p->refs = 1;
	p->len = len;
	p->bytes = bytes;
	p->ns = mv__node_state__unpack(NULL, p->len, p->bytes);
	if (p->ns == NULL)
		abort();
	return p;
}

/* Host i's node state as its agent publishes it: a NodeState with its
 * capacity, its quorum as its core says, its SWIM incarnation, and every
 * VM defined on it (running or stopped; all are HA with desired state
 * running here), packed as the daemon gossips it. */
static struct fw_pub *fw_pub_make(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	struct placement_host cap = fw_placement(w, i);
	size_t n = 0;
	for (int k = 0; k < w->nvm; k++)
		n += fw_vm_defined_on(w, k, i);
	Mv__VmInfo *vi = calloc(n ? n : 1, sizeof(*vi));
	Mv__VmInfo **vp = calloc(n ? n : 1, sizeof(*vp));
	if (vi == NULL || vp == NULL)
		abort();
	size_t m = 0;
	for (int k = 0; k < w->nvm; k++) {
		struct fw_vm *v = &w->vm[k];
		const struct fw_copy *c = fw_copy_on(v, i);
		if (c == NULL)
			continue;
		mv__vm_info__init(&vi[m]);
		vi[m].name = v->name;
		vi[m].uuid = v->uuid;
		vi[m].state = c->running ? MV__VM_STATE__VM_RUNNING : MV__VM_STATE__VM_SHUTOFF;
		vi[m].vcpus = v->vcpus;
		vi[m].memory_kib = v->mem;
		vi[m].ha = true;
		vi[m].priority = v->prio;
		vi[m].owner_epoch = c->epoch;
		vi[m].ha_group = v->group;
		vi[m].desired = MV__VM_DESIRED__VM_DESIRED_RUNNING;
		vp[m] = &vi[m];
		m++;
	}
	Mv__NodeState ns = MV__NODE_STATE__INIT;
	ns.name = h->name;
	ns.incarnation = h->sw ? swim_incarnation(h->sw) : 0;
	ns.cpus = cap.cpus;
	ns.cpu_overcommit = cap.cpu_overcommit;
	ns.vcpus_allocated = cap.vcpus_allocated;
	ns.memory_kib = cap.memory_kib;
	ns.memory_overcommit = cap.memory_overcommit;
	ns.memory_allocated_kib = cap.memory_allocated_kib;
	ns.libvirt_reachable = true;
	ns.witness = h->witness;
	ns.wire_rev = MV_WIRE_REV;
	ns.quorate = h->fo && fo_quorate(h->fo, fw_local_now(w, i));
	ns.fenced = h->fo && fo_fenced(h->fo);
	ns.n_vms = m;
	ns.vms = vp;
	size_t len = mv__node_state__get_packed_size(&ns);
	uint8_t *bytes = malloc(len ? len : 1);
	if (bytes == NULL)
		abort();
	mv__node_state__pack(&ns, bytes);
	free(vi);
	free(vp);
	return fw_pub_wrap(bytes, len);
}

static bool fw_pub_same(const struct fw_pub *a, const struct fw_pub *b)
{
	return a && b && a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static void fw_fo_drain(struct fw *w, int i, bool after_timer);
static void fw_ns_drain(struct fw *w, int i);
static void fw_mig_drain(struct fw *w, int i);

/* Whether host o's SWIM holds `name` alive (the placement's `alive`). */
static bool fw_view_up(void *arg, const char *name)
{
	struct fw_host *ho = arg;
	struct swim_member_info mi;
	if (strcmp(name, ho->name) == 0)
		return true;
	return ho->sw && swim_member_find(ho->sw, name, &mi) && mi.state == SWIM_ALIVE;
}

static void fw_give_view(struct fw *w, int o)
{
	struct fw_host *ho = &w->h[o];
	const Mv__NodeState **states = calloc((size_t)w->n, sizeof(*states));
	if (states == NULL)
		abort();
	size_t n = 0;
	for (int k = 0; k < w->n; k++)
		if (ho->view[k] != NULL)
			states[n++] = ho->view[k]->ns;
	struct fo_driver_view v;
	if (fo_driver_view_build(&v, states, n, fw_view_up, ho) < 0)
		abort();
	fo_set_hosts(ho->fo, v.hosts, v.n_hosts, fw_local_now(w, o));
	fo_driver_view_free(&v);
	free(states);
	fw_fo_drain(w, o, false);
}

/* The daemon's stale-copy rule (ha.c): a VM defined here that an alive
 * host (in our view and membership) runs with a higher epoch is destroyed
 * and undefined here. */
static void fw_remove_stale(struct fw *w, int o)
{
	struct fw_host *ho = &w->h[o];
	for (int k = 0; k < w->nvm; k++) {
		struct fw_vm *v = &w->vm[k];
		const struct fw_copy *c = fw_copy_on(v, o);
		if (c == NULL)
			continue;
		uint64_t mine = c->epoch;
		bool stale = false;
		for (int j = 0; j < w->n && !stale; j++) {
			const struct fw_pub *p = ho->view[j];
			if (j == o || p == NULL || !fw_view_up(ho, w->h[j].name))
				continue;
			for (size_t q = 0; q < p->ns->n_vms && !stale; q++) {
				const Mv__VmInfo *vi = p->ns->vms[q];
				stale = fo_driver_vm_active(vi) && vi->owner_epoch > mine &&
				        strcmp(vi->uuid, v->uuid) == 0;
			}
		}
		if (!stale)
			continue;
		fw_destroy_copy(w, k, o, UINT64_MAX, "stale copy");
		fw_undefine(w, k, o);
		vlog(w, 1, "%s: stale copy of %s (epoch %" PRIu64 ") undefined", ho->name, v->name,
		     mine);
	}
}

static void fw_publish(struct fw *w)
{
	for (int i = 0; i < w->n; i++) {
		struct fw_host *h = &w->h[i];
		if (!h->hv_up || !h->agent_up || h->frozen)
			continue;
		fw_remove_stale(w, i);
		struct fw_pub *p = fw_pub_make(w, i);
		if (fw_pub_same(p, h->pub)) {
			fw_pub_unref(p);
		} else {
			fw_pub_unref(h->pub);
			h->pub = p;
			if (h->ns != NULL) {
				/* as the daemon does: a changed record is pushed at once */
				p->ns_inc = h->ns_inc;
				p->ns_ver = ++h->ns_ver;
				if (nstate_set_local(h->ns, p->ns_inc, p->ns_ver, p->bytes, p->len,
				                     true, fw_local_now(w, i)) < 0)
					abort();
				fw_ns_drain(w, i);
			}
		}
		h->dirty = false;
	}
	for (int o = 0; o < w->n; o++) {
		struct fw_host *ho = &w->h[o];
		if (!ho->agent_up || ho->frozen)
			continue;
		bool changed = false;
		for (int k = 0; k < w->n; k++) {
			struct fw_pub *p = w->h[k].pub;
			/* (gossiped: only its own record; the core brings the others) */
			if (w->o.gossip_state && k != o)
				continue;
			if (p == NULL || ho->view[k] == p || !fw_link_open(w, k, o))
				continue;
			fw_pub_unref(ho->view[k]);
			ho->view[k] = p;
			p->refs++;
			changed = true;
		}
		if (changed)
			fw_give_view(w, o);
	}
}

/* ------------------------------------------------------------ oracle */

static bool fw_plan_same(const struct fo_plan *a, const struct fo_plan *b)
{
	if (a->n != b->n)
		return false;
	for (size_t k = 0; k < a->n; k++) {
		const struct fo_plan_entry *x = &a->entries[k], *y = &b->entries[k];
		if (strcmp(x->uuid, y->uuid) != 0 || strcmp(x->target, y->target) != 0 ||
		    x->new_epoch != y->new_epoch)
			return false;
	}
	return true;
}

static bool fw_inst_eq(const struct fo_instance_id *a, const struct fo_instance_id *b)
{
	return a->incarnation == b->incarnation && a->round == b->round &&
	       strcmp(a->dead, b->dead) == 0;
}

static bool fw_ballot_eq(const struct fo_ballot *a, const struct fo_ballot *b)
{
	return a->number == b->number && strcmp(a->proposer, b->proposer) == 0;
}

const struct fw_chosen *fw_chosen_find(const struct fw *w, const char *dead, uint64_t inc,
                                       uint32_t round)
{
	for (size_t k = 0; k < w->ch_n; k++)
		if (w->ch[k].inst.incarnation == inc && w->ch[k].inst.round == round &&
		    strcmp(w->ch[k].inst.dead, dead) == 0)
			return &w->ch[k];
	return NULL;
}

/* O3: a plan learned by node i. */
static void fw_learned(struct fw *w, int i, const struct fo_instance_id *inst,
                       const struct fo_plan *plan, bool from_event)
{
	struct fw_chosen *c =
	    (struct fw_chosen *)fw_chosen_find(w, inst->dead, inst->incarnation, inst->round);
	if (c == NULL) {
		if (w->ch_n == w->ch_cap) {
			w->ch_cap = w->ch_cap ? w->ch_cap * 2 : 16;
			w->ch = realloc(w->ch, w->ch_cap * sizeof(*w->ch));
			if (w->ch == NULL)
				abort();
		}
		c = &w->ch[w->ch_n++];
		memset(c, 0, sizeof(*c));
		c->inst = *inst;
		if (fo_plan_copy(&c->plan, plan) != 0)
			abort();
		c->first_node = i;
		c->chosen_at = fw_now(w);
		c->learners = from_event ? 1 : 0;
		w->ctr.plans_chosen++;
		return;
	}
	if (!fw_plan_same(&c->plan, plan))
		fw_fail(w,
		        "O3 %s learned another plan for (%s, %" PRIu64 ", round %u) than %s did "
		        "(%zu vs %zu entries)",
		        w->h[i].name, inst->dead, inst->incarnation, inst->round,
		        w->h[c->first_node].name, plan->n, c->plan.n);
	else if (from_event)
		c->learners++;
}

static struct fw_ballot *fw_ballot_get(struct fw *w, const struct fo_instance_id *inst,
                                       const struct fo_ballot *b)
{
	for (size_t k = 0; k < w->bal_n; k++)
		if (fw_inst_eq(&w->bal[k].inst, inst) && fw_ballot_eq(&w->bal[k].ballot, b))
			return &w->bal[k];
	if (w->bal_n == w->bal_cap) {
		w->bal_cap = w->bal_cap ? w->bal_cap * 2 : 16;
		w->bal = realloc(w->bal, w->bal_cap * sizeof(*w->bal));
		if (w->bal == NULL)
			abort();
	}
	struct fw_ballot *r = &w->bal[w->bal_n++];
	memset(r, 0, sizeof(*r));
	r->inst = *inst;
	r->ballot = *b;
	return r;
}

static int fw_popcount(const uint64_t *m)
{
	int c = 0;
	for (int k = 0; k < FW_MAXN / 64; k++)
		c += __builtin_popcountll(m[k]);
	return c;
}

/* The voting set of the moment: every host another host has heard of (a
 * host cut off from its start is in nobody's voting set until it joins),
 * less those the operator removed. */
static int fw_voters(const struct fw *w)
{
	int voters = 0;
	for (int k = 0; k < w->n; k++)
		voters += !w->h[k].removed && w->h[k].joined;
	return voters;
}

static void fw_heard_of(struct fw *w, int by, const char *name)
{
	int k = name ? fw_index(w, name) : -1;
	if (k >= 0 && k != by)
		w->h[k].joined = true;
}

/* The ballot's proposer accepts its own value (locally, maybe without
 * any ACCEPT on the network: every other voter may be gone). */
static void fw_count_proposer(struct fw *w, struct fw_ballot *b)
{
	for (int k = 0; k < w->n; k++)
		if (strcmp(w->h[k].name, b->ballot.proposer) == 0)
			b->acc[k / 64] |= 1ull << (k % 64);
}

static void fw_count_acceptance(struct fw *w, struct fw_ballot *b, int from)
{
	b->acc[from / 64] |= 1ull << (from % 64);
	int voters = fw_voters(w);
	if (!b->majority && fw_popcount(b->acc) >= voters / 2 + 1) {
		b->majority = true;
	}
}

/* A force-leave shrank the voting set: acceptances that are a majority of
 * the smaller set choose their value now (the cores decide on it). */
static void fw_recount_majorities(struct fw *w)
{
	int voters = fw_voters(w);
	for (size_t k = 0; k < w->bal_n; k++) {
		struct fw_ballot *b = &w->bal[k];
		if (!b->majority && b->has_plan && fw_popcount(b->acc) >= voters / 2 + 1)
			b->majority = true;
	}
}

static void fw_sniff(struct fw *w, int from, const struct fo_msg *m)
{
	if (m->type == FO_ACCEPT) {
		struct fw_ballot *b = fw_ballot_get(w, &m->inst, &m->ballot);
		if (!b->has_plan && m->has_plan) {
			if (fo_plan_copy(&b->plan, &m->plan) != 0)
				abort();
			b->has_plan = true;
		}
		/* the proposer's own acceptor: assumed to accept its proposal
		 * (it may handle itself without the network) */
		fw_count_proposer(w, b);
		fw_count_acceptance(w, b, from);
	} else if (m->type == FO_ACCEPTED) {
		struct fw_ballot *b = fw_ballot_get(w, &m->inst, &m->ballot);
		fw_count_acceptance(w, b, from);
	}
}

/* O2 for a RESTART of `e` emitted by node i; returns the plan position. */
static int fw_check_restart(struct fw *w, int i, const struct fo_event *e)
{
	struct fw_host *h = &w->h[i];
	const struct fo_plan_entry *en = &e->entry;
	if (!fo_quorate(h->fo, fw_local_now(w, i)))
		fw_fail(w, "O2 %s restarts %s without quorum (%zu of %zu acknowledged)", h->name,
		        en->name, fo_acknowledged(h->fo, fw_local_now(w, i)), fo_voters(h->fo));
	if (fo_fenced(h->fo))
		fw_fail(w, "O2 %s restarts %s while self-fenced", h->name, en->name);
	if (strcmp(en->target, h->name) != 0)
		fw_fail(w, "O2 %s restarts %s whose target is '%s'", h->name, en->name, en->target);
	const struct fo_plan *p = NULL;
	if (!fo_chosen_plan(h->fo, &e->inst, &p) || p == NULL) {
		fw_fail(w, "O2 %s restarts %s for (%s, %" PRIu64 ", %u) without a learned plan",
		        h->name, en->name, e->inst.dead, e->inst.incarnation, e->inst.round);
		return -1;
	}
	int pos = -1;
	for (size_t k = 0; k < p->n; k++)
		if (strcmp(p->entries[k].uuid, en->uuid) == 0)
			pos = (int)k;
	if (pos < 0 || strcmp(p->entries[pos].target, h->name) != 0 ||
	    p->entries[pos].new_epoch != en->new_epoch)
		fw_fail(w, "O2 %s restarts %s (epoch %" PRIu64 ") not as its learned plan says",
		        h->name, en->name, en->new_epoch);
	const struct fw_chosen *c =
	    fw_chosen_find(w, e->inst.dead, e->inst.incarnation, e->inst.round);
	if (c == NULL || !fw_plan_same(&c->plan, p))
		fw_fail(w, "O2 %s restarts %s from a plan that is not the one learned first",
		        h->name, en->name);
	int voters = fw_voters(w);
	int majority = voters / 2 + 1, best = 0;
	bool found = false;
	for (size_t k = 0; k < w->bal_n && !found; k++) {
		const struct fw_ballot *b = &w->bal[k];
		if (!fw_inst_eq(&b->inst, &e->inst) || !b->has_plan || !fw_plan_same(&b->plan, p))
			continue;
		int cnt = fw_popcount(b->acc);
		if (cnt > best)
			best = cnt;
		found = b->majority || cnt >= majority;
	}
	if (!found)
		fw_fail(
		    w,
		    "O2 %s restarts %s from a plan at most %d of %d voters accepted (majority %d), "
		    "never a majority of the voting set of its time",
		    h->name, en->name, best, voters, majority);
	return pos;
}

void fw_check(struct fw *w)
{
	for (int i = 0; i < w->n; i++) {
		struct fw_host *h = &w->h[i];
		if (!h->agent_up || h->frozen)
			continue;
		size_t n = fo_instance_count(h->fo);
		for (size_t k = 0; k < n; k++) {
			struct fo_instance_info info;
			fo_instance_at(h->fo, k, &info);
			if (info.phase == FO_PH_DETECTED)
				continue;
			const struct fo_plan *p = NULL;
			if (!fo_chosen_plan(h->fo, &info.inst, &p) || p == NULL) {
				if (info.phase != FO_PH_DONE)
					fw_fail(w,
					        "O3 %s: instance (%s, %" PRIu64 ", %u) in phase %s "
					        "without a plan",
					        h->name, info.inst.dead, info.inst.incarnation,
					        info.inst.round, fo_phase_name(info.phase));
				continue;
			}
			fw_learned(w, i, &info.inst, p, false);
		}
	}
}

/* ------------------------------------------------------------ actions */

static void fw_start_vm(struct fw *w, int i, const struct fo_event *e, int pos)
{
	struct fw_host *h = &w->h[i];
	const struct fo_plan_entry *en = &e->entry;
	int vmi = fw_vm_index(w, en->uuid);
	struct fw_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		abort();
	j->kind = J_RESTART_DONE;
	j->inst = e->inst;
	snprintf(j->uuid, sizeof(j->uuid), "%s", en->uuid);
	j->ok = true;
	w->ctr.restarts++;
	if (vmi < 0) {
		j->ok = false;
		snprintf(j->why, sizeof(j->why), "no definition of %s", en->uuid);
		fw_fail(w, "%s asked to restart unknown VM %s", h->name, en->uuid);
	} else if (fw_vm_on(w, vmi, i)) {
		/* idempotent: already running here at that epoch or later is a
		 * success; an older copy here is not */
		uint64_t ce = fw_copy_on(&w->vm[vmi], i)->epoch;
		j->ok = ce >= en->new_epoch;
		snprintf(j->why, sizeof(j->why), "domain is already running with epoch %" PRIu64,
		         ce);
		w->ctr.already_running++;
	} else if (h->refuse) {
		j->ok = false;
		w->ctr.starts_refused_host++;
		snprintf(j->why, sizeof(j->why), "libvirt: internal error (refusing host)");
	} else if (w->o.restart_fail_p > 0 && fw_unit(w) < w->o.restart_fail_p) {
		j->ok = false;
		snprintf(j->why, sizeof(j->why), "libvirt: qemu exited (injected)");
	} else {
		struct fw_vm *v = &w->vm[vmi];
		struct placement_host p = fw_placement(w, i);
		bool fits = p.vcpus_allocated + v->vcpus <= placement_vcpu_capacity(&p) &&
		            p.memory_allocated_kib + v->mem <= placement_memory_capacity_kib(&p);
		if (!fits && w->o.cap_refuse) {
			j->ok = false;
			w->ctr.cap_refusals++;
			snprintf(j->why, sizeof(j->why), "no room in the truth");
		} else {
			if (!fits)
				fw_fail(w,
				        "O5 %s over capacity with %s: %u+%u vCPUs of %u, %" PRIu64
				        "+%" PRIu64 " KiB of %" PRIu64,
				        h->name, v->name, p.vcpus_allocated, v->vcpus,
				        placement_vcpu_capacity(&p), p.memory_allocated_kib, v->mem,
				        placement_memory_capacity_kib(&p));
			/* O4 against every copy on a host that is up; an epoch known
			 * only to copies on hosts that are down (whose every witness
			 * restarted since) can be reused: counted, not a violation —
			 * those copies are stale and stay stopped when they return */
			uint64_t live_max = 0;
			for (int k = 0; k < v->nc; k++)
				if (w->h[v->c[k].host].hv_up && v->c[k].epoch > live_max)
					live_max = v->c[k].epoch;
			if (en->new_epoch <= live_max)
				fw_fail(
				    w, "O4 %s starts %s with epoch %" PRIu64 ", not above %" PRIu64,
				    h->name, v->name, en->new_epoch, live_max);
			else if (en->new_epoch <= v->max_epoch)
				w->ctr.epoch_reused++;
			/* define (or redefine) and start, with the new epoch */
			struct fw_copy *c = fw_copy_on(v, i);
			if (c == NULL) {
				if (v->nc == FW_MAXCOPY)
					abort();
				c = &v->c[v->nc++];
			}
			*c = (struct fw_copy){.host = i, .epoch = en->new_epoch, .running = true};
			if (en->new_epoch > v->max_epoch)
				v->max_epoch = en->new_epoch;
			h->dirty = true;
			struct fw_rec *r = fw_log(w, FW_R_VM_START, i);
			r->vm = vmi;
			r->epoch = en->new_epoch;
			r->inst = e->inst;
			r->peer = fw_index(w, e->inst.dead);
			r->plan_pos = pos;
			vlog(w, 1, "%s: %s started, epoch %" PRIu64, h->name, v->name,
			     en->new_epoch);
			fw_check_vm(w, v);
		}
	}
	if (j->ok) {
		w->ctr.restarts_ok++;
	} else {
		w->ctr.restarts_failed++;
		struct fw_rec *r = fw_log(w, FW_R_VM_FAILED, i);
		r->vm = vmi;
		r->inst = e->inst;
		vlog(w, 1, "%s: start of %s fails: %s", h->name, en->name, j->why);
	}
	uint32_t lo = w->o.restart_min_ms, hi = w->o.restart_max_ms;
	fw_push(w, fw_now(w) + lo + fw_below(w, hi > lo ? hi - lo + 1 : 1), E_JOB, i, h->life, j);
}

static void fw_handle_event(struct fw *w, int i, const struct fo_event *e)
{
	struct fw_host *h = &w->h[i];
	struct fw_rec *r = fw_log(w, (int)e->type, i);
	r->inst = e->inst;
	r->peer = fw_index(w, e->inst.dead);
	r->priority = e->entry.priority;
	r->epoch = e->entry.new_epoch;
	if (e->entry.uuid[0])
		r->vm = fw_vm_index(w, e->entry.uuid);
	size_t ri = w->log_n - 1; /* r may move when the log grows */
	vlog(w, 1, "%s: %s (%s,%" PRIu64 ",%u) %s%s%s", h->name, fo_event_name(e->type),
	     e->inst.dead, e->inst.incarnation, e->inst.round, e->entry.name,
	     e->entry.name[0] ? " " : "", e->text);
	switch (e->type) {
	case FO_EV_FENCE_SELF:
		w->ctr.fence_self++;
		fw_destroy_all(w, i, "self-fence");
		/* the daemon's rule: every HA VM destroyed, nothing left to
		 * protect: the watchdog is disarmed until the next quorum */
		h->wd_armed = false;
		break;
	case FO_EV_FENCE_VMS:
		w->ctr.fence_vms++;
		if (e->all_ha) /* as the daemon does: every HA VM here */
			fw_destroy_all(w, i, "fence order (every HA VM)");
		for (size_t k = 0; k < e->plan.n; k++) {
			int vmi = fw_vm_index(w, e->plan.entries[k].uuid);
			if (vmi >= 0)
				fw_destroy_copy(w, vmi, i, e->plan.entries[k].new_epoch,
				                "fence order");
		}
		break;
	case FO_EV_NEW_INCARNATION:
		w->ctr.new_incarnations++;
		fo_driver_new_incarnation(h->fo, h->sw, e, fw_local_now(w, i));
		h->swim_pending = true;
		h->dirty = true;
		break;
	case FO_EV_REMOTE_FENCE: {
		int x = fw_index(w, e->inst.dead);
		bool ok = x >= 0 && w->h[x].hv_up && !w->h[x].frozen && fw_link_open(w, i, x) &&
		          fw_link_open(w, x, i);
		if (ok) {
			/* as the daemon does (virt_remote_fence_below): every HA
			 * VM but a listed one at or above the plan's new epoch
			 * (a newer placement's), which fails the fence */
			const struct fo_plan *plan = NULL;
			fo_chosen_plan(h->fo, &e->inst, &plan);
			for (int k = 0; k < w->nvm; k++) {
				uint64_t below = UINT64_MAX;
				for (size_t p = 0; plan != NULL && p < plan->n; p++)
					if (strcmp(plan->entries[p].uuid, w->vm[k].uuid) == 0)
						below = plan->entries[p].new_epoch;
				const struct fw_copy *c = fw_copy_on(&w->vm[k], x);
				if (c != NULL && c->running && c->epoch >= below)
					ok = false;
				else
					fw_destroy_copy(w, k, x, UINT64_MAX, "remote fence");
			}
		}
		w->log[ri].ok = ok;
		struct fw_job *j = calloc(1, sizeof(*j));
		if (j == NULL)
			abort();
		j->kind = J_FENCE_DONE;
		j->inst = e->inst;
		j->ok = ok;
		snprintf(j->why, sizeof(j->why), "%s",
		         ok ? "destroyed through its libvirt" : "libvirt unreachable: timed out");
		if (ok)
			w->ctr.remote_fence_ok++;
		else
			w->ctr.remote_fence_failed++;
		fw_push(w, fw_now(w) + (ok ? 20 + fw_below(w, 280) : 1000 + fw_below(w, 2000)),
		        E_JOB, i, h->life, j);
		break;
	}
	case FO_EV_RESTART: {
		int pos = fw_check_restart(w, i, e);
		w->log[ri].plan_pos = pos;
		fw_start_vm(w, i, e, pos);
		break;
	}
	case FO_EV_CHOSEN: {
		if (strcmp(e->peer, h->name) == 0) {
			/* our own ballot: our acceptance of it is local, and may
			 * have needed no ACCEPT on the network at all (every other
			 * voter force-left) */
			struct fo_ballot own = {0};
			snprintf(own.proposer, sizeof(own.proposer), "%s", h->name);
			struct fw_ballot *b = fw_ballot_get(w, &e->inst, &own);
			if (!b->has_plan) {
				if (fo_plan_copy(&b->plan, &e->plan) != 0)
					abort();
				b->has_plan = true;
			}
			fw_count_acceptance(w, b, i);
		}
		fw_learned(w, i, &e->inst, &e->plan, true);
		/* (MV_SIM_VERBOSE=3: what the plan says, entry by entry) */
		for (size_t k = 0; w->o.verbose >= 3 && k < e->plan.n; k++) {
			const struct fo_plan_entry *pe = &e->plan.entries[k];
			vlog(w, 3,
			     "%s:   (%s,%" PRIu64 ",%u) %s -> %s (incarnation %" PRIu64
			     ") epoch %" PRIu64 " from %s%" PRIu64,
			     h->name, e->inst.dead, e->inst.incarnation, e->inst.round, pe->name,
			     pe->target[0] ? pe->target : "(no room)", pe->target_incarnation,
			     pe->new_epoch, pe->has_base ? "" : "~", pe->base_epoch);
		}
		const struct fo_plan *p = NULL;
		if (!fo_chosen_plan(h->fo, &e->inst, &p) || p == NULL || !fw_plan_same(p, &e->plan))
			fw_fail(w, "O3 %s: FO_EV_CHOSEN's plan differs from fo_chosen_plan()",
			        h->name);
		break;
	}
	case FO_EV_NO_ROOM:
		w->ctr.no_room++;
		break;
	case FO_EV_HANDED_BACK: /* by the target itself (others echo it) */
		if (!e->peer[0] || strcmp(e->peer, h->name) == 0)
			w->ctr.handed_back++;
		break;
	default:
		break;
	}
	if (w->ev_hook)
		w->ev_hook(w, i, e, w->ev_arg);
}

/* ------------------------------------------------------------ cores */

static void fw_fo_rearm(struct fw *w, int i, bool after_timer)
{
	struct fw_host *h = &w->h[i];
	uint64_t d = fw_global(w, i, fo_next_deadline(h->fo));
	if (d == UINT64_MAX) {
		h->fo_gen++;
		h->fo_armed = UINT64_MAX;
		return;
	}
	if (d <= fw_now(w)) {
		if (after_timer && h->redue_at == fw_now(w) && ++h->redue_n >= 3) {
			w->ctr.timer_spins++;
			fprintf(stderr,
			        "fw t=%" PRIu64 " %s: timer spin: fo deadline %" PRIu64
			        " still due after 3 fo_handle_timer calls\n",
			        fw_now(w), h->name, d);
			d = fw_now(w) + 1;
		} else {
			if (after_timer && h->redue_at != fw_now(w)) {
				h->redue_at = fw_now(w);
				h->redue_n = 0;
			}
			d = fw_now(w);
		}
	}
	if (d == h->fo_armed)
		return;
	h->fo_gen++;
	h->fo_armed = d;
	fw_push(w, d, E_FO_TIMER, i, h->fo_gen, NULL);
}

/* The frame's envelope, decoded as a receiving agent would (NULL, the world
 * failed, when it does not decode). */
static Mv__Envelope *fw_wire(struct fw *w, const char *what, int rc, uint8_t *frame, size_t len)
{
	if (rc < 0) {
		fw_fail(w, "%s: the codec cannot encode it (error %d)", what, rc);
		return NULL;
	}
	Mv__Envelope *env = NULL;
	const char *why = "";
	if (len < 4 || envelope_decode(frame + 4, len - 4, &env, &why) < 0)
		fw_fail(w, "%s: the frame does not decode: %s", what, why);
	free(frame);
	return env;
}

/* m to frame and back into *out (fo_msg_clear frees it). */
static bool fw_fo_through_codec(struct fw *w, const struct fo_msg *m, struct fo_msg *out)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	int rc = fo_codec_encode_frame(m, &frame, &len);
	Mv__Envelope *env = fw_wire(w, fo_msg_type_name(m->type), rc, frame, len);
	if (env == NULL)
		return false;
	const char *why = "";
	memset(out, 0, sizeof(*out));
	rc = fo_codec_decode(env, out, &why);
	envelope_free(env);
	if (rc < 0) {
		fw_fail(w, "%s from %s: the failover codec refuses it: %s",
		        fo_msg_type_name(m->type), m->from, why);
		return false;
	}
	if (out->type != m->type || strcmp(out->from, m->from) != 0 ||
	    out->inst.incarnation != m->inst.incarnation || out->inst.round != m->inst.round ||
	    strcmp(out->inst.dead, m->inst.dead) != 0 || out->plan.n != m->plan.n ||
	    out->stamp != m->stamp || out->ballot.number != m->ballot.number) {
		fw_fail(w, "%s from %s: not the same message after the codec",
		        fo_msg_type_name(m->type), m->from);
		fo_msg_clear(out);
		return false;
	}
	snprintf(out->to, sizeof(out->to), "%s", m->to);
	return true;
}

static void fw_send_fo(struct fw *w, int i, struct fo_msg *m)
{
	w->ctr.fo_msgs++;
	fw_sniff(w, i, m);
	int to = fw_index(w, m->to);
	if (w->o.verbose >= 2)
		fprintf(stderr,
		        "fw t=%" PRIu64 " %s -> %s %s (%s,%" PRIu64 ",%u) b=%" PRIu64
		        "/%s inc=%" PRIu64 " fenced_through=%" PRIu64 " stamp=%" PRIu64 "%s%s\n",
		        fw_now(w), w->h[i].name, m->to, fo_msg_type_name(m->type), m->inst.dead,
		        m->inst.incarnation, m->inst.round, m->ballot.number, m->ballot.proposer,
		        m->incarnation, m->fenced_through, m->stamp, m->text[0] ? " " : "",
		        m->text);
	if (to < 0 || strcmp(m->from, w->h[i].name) != 0) {
		w->ctr.rejected++;
		fw_fail(w, "%s sent a %s from '%s' to unknown '%s'", w->h[i].name,
		        fo_msg_type_name(m->type), m->from, m->to);
		fo_msg_clear(m);
		return;
	}
	struct fw_msg *sent = NULL;
	if ((w->send_hook && !w->send_hook(w, i, to, m, w->send_arg)) ||
	    (sent = fw_net_send(w, i, to, M_FO)) == NULL) {
		fo_msg_clear(m);
		return;
	}
	struct fo_msg *c = malloc(sizeof(*c));
	if (c == NULL)
		abort();
	if (w->o.codecs) {
		/* as between agents: a frame on the wire, decoded at the peer */
		bool ok = fw_fo_through_codec(w, m, c);
		fo_msg_clear(m);
		if (!ok) {
			free(c);
			return;
		}
	} else {
		*c = *m; /* takes the plan and removed arrays */
	}
	sent->body = c;
}

static void fw_swim_drain(struct fw *w, int i);

/* The journal text as the core has it now, "on the host's disk". */
static void fw_journal_sync(struct fw *w, struct fw_host *h)
{
	if (!w->o.journal || fo_journal_version(h->fo) == h->journal_ver)
		return;
	free(h->journal);
	if (fo_journal_encode(h->fo, &h->journal, &h->journal_len) < 0)
		abort();
	h->journal_ver = fo_journal_version(h->fo);
}

/* The watchdog device's timeout, as the daemon sets it: fence_margin_ms
 * (at most F) less the slack, in whole seconds (agent/daemon/ha.c, "the
 * watchdog"); the simulator's fast settings may go below the daemon's
 * 2 s floor. */
static uint64_t fw_wd_timeout(const struct fw *w)
{
	uint64_t limit = w->o.fo.fence_margin_ms < w->o.fo.fence_after_ms ? w->o.fo.fence_margin_ms
	                                                                  : w->o.fo.fence_after_ms;
	uint64_t t = limit > 250 ? (limit - 250) / 1000 * 1000 : 0;
	return t ? t : 1000;
}

static void fw_fo_drain(struct fw *w, int i, bool after_timer)
{
	struct fw_host *h = &w->h[i];
	uint32_t life = h->life;
	bool any = true;
	while (any && h->agent_up && h->life == life) {
		any = false;
		/* as the daemon does: the journal is on disk before anything is sent */
		fw_journal_sync(w, h);
		/* as the daemon does: actions first (a destroy is done before
		 * the FENCED or ACCEPTED that follows it leaves), then messages */
		struct fo_event e;
		while (h->agent_up && h->life == life && fo_pop_event(h->fo, &e)) {
			any = true;
			fw_handle_event(w, i, &e);
			fo_event_clear(&e);
		}
		if (h->agent_up && h->life == life)
			fw_journal_sync(w, h);
		struct fo_msg m;
		while (h->agent_up && h->life == life && fo_pop_output(h->fo, &m)) {
			any = true;
			fw_send_fo(w, i, &m);
		}
	}
	if (!h->agent_up || h->life != life)
		return;
	if (fo_quorate(h->fo, fw_local_now(w, i))) {
		/* the daemon arms its watchdog at the first quorum and pets it
		 * while quorate */
		h->wd_armed = true;
		h->wd_pet = fw_now(w);
		h->last_quorate = fw_now(w);
		h->quorate_since_start = true;
		/* a force-left host that came back counts for O2 again once a
		 * majority acknowledges it (they hold it a voter again) */
		h->removed = false;
	} else if (h->wd_armed && !fo_fenced(h->fo) &&
	           fw_local_now(w, i) < fo_self_fence_at(h->fo)) {
		/* ... and, not quorate, until its self-fence: the device's
		 * timeout is the margin, so that a hang or a death (whose close
		 * pings the device) resets the host within F + margin of its
		 * last quorate moment (agent/daemon/ha.c, "the watchdog") */
		h->wd_pet = fw_now(w);
	}
	if (h->swim_pending) {
		h->swim_pending = false;
		fw_swim_drain(w, i); /* drains the core again, re-arms both timers */
		return;
	}
	fw_fo_rearm(w, i, after_timer);
}

static struct swim_msg *fw_swim_copy(const struct swim_msg *m)
{
#define SL(p) ((p) ? strlen(p) + 1 : 1)
	size_t strs = SL(m->from) + SL(m->from_addr) + SL(m->to) + SL(m->to_addr) + SL(m->target) +
	              SL(m->target_addr);
	for (size_t k = 0; k < m->n_updates; k++)
		strs += SL(m->updates[k].name) + SL(m->updates[k].addr) + SL(m->updates[k].origin) +
		        (m->updates[k].proof ? m->updates[k].proof_len : 0);
#undef SL
	/* updates, then the digest and want arrays (issue 12), then strings */
	size_t ups_end = sizeof(struct swim_msg) + m->n_updates * sizeof(struct swim_update);
	size_t want_at = ups_end + m->n_digest * sizeof(uint64_t);
	size_t head = want_at + m->n_want * sizeof(uint32_t);
	struct swim_msg *c = malloc(head + strs);
	if (c == NULL)
		abort();
	struct swim_update *ups = (struct swim_update *)(c + 1);
	char *sp = (char *)c + head;
	*c = *m;
	c->digest = m->n_digest
	                ? memcpy((char *)c + ups_end, m->digest, m->n_digest * sizeof(uint64_t))
	                : NULL;
	c->want =
	    m->n_want ? memcpy((char *)c + want_at, m->want, m->n_want * sizeof(uint32_t)) : NULL;
#define SC(dst, src)                                   \
	do {                                           \
		size_t len_ = (src) ? strlen(src) : 0; \
		memcpy(sp, (src) ? (src) : "", len_);  \
		sp[len_] = '\0';                       \
		(dst) = sp;                            \
		sp += len_ + 1;                        \
	} while (0)
	SC(c->from, m->from);
	SC(c->from_addr, m->from_addr);
	SC(c->to, m->to);
	SC(c->to_addr, m->to_addr);
	SC(c->target, m->target);
	SC(c->target_addr, m->target_addr);
	for (size_t k = 0; k < m->n_updates; k++) {
		ups[k] = m->updates[k];
		SC(ups[k].name, m->updates[k].name);
		SC(ups[k].addr, m->updates[k].addr);
		SC(ups[k].origin, m->updates[k].origin);
		if (ups[k].proof != NULL && ups[k].proof_len > 0) {
			ups[k].proof = memcpy(sp, m->updates[k].proof, m->updates[k].proof_len);
			sp += m->updates[k].proof_len;
		} else {
			ups[k].proof = NULL;
			ups[k].proof_len = 0;
		}
	}
#undef SC
	c->updates = m->n_updates ? ups : NULL;
	return c;
}

/* m to frame and back, as between agents; NULL (the world failed) when it
 * does not survive the trip. */
static struct swim_msg *fw_swim_through_codec(struct fw *w, const struct swim_msg *m)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	int rc = swim_codec_encode_frame(m, &frame, &len);
	Mv__Envelope *env = fw_wire(w, swim_msg_type_name(m->type), rc, frame, len);
	if (env == NULL)
		return NULL;
	struct swim_msg d;
	struct swim_update *ups = NULL;
	const char *why = "";
	memset(&d, 0, sizeof(d));
	rc = swim_codec_decode(env, &d, &ups, &why);
	struct swim_msg *c = NULL;
	if (rc < 0) {
		fw_fail(w, "%s: the SWIM codec refuses it: %s", swim_msg_type_name(m->type), why);
	} else if (d.type != m->type || d.n_updates != m->n_updates || d.seq != m->seq ||
	           d.join != m->join || d.n_digest != m->n_digest || d.n_want != m->n_want) {
		fw_fail(w, "%s: not the same message after the codec", swim_msg_type_name(m->type));
	} else {
		/* the receiver knows whom it was sent to; the wire does not say */
		d.to = m->to;
		d.to_addr = m->to_addr;
		c = fw_swim_copy(&d); /* copies the strings out of env */
	}
	free(ups);
	envelope_free(env);
	return c;
}

/* Keeps one timer event of a core armed at its next deadline (on host i's
 * clock): a new generation makes the events armed before it stale. */
static void fw_rearm(struct fw *w, int i, uint64_t local_deadline, uint32_t *gen, uint64_t *armed,
                     enum fw_ev_kind kind)
{
	uint64_t d = fw_global(w, i, local_deadline);
	if (d == UINT64_MAX) {
		(*gen)++;
		*armed = UINT64_MAX;
		return;
	}
	if (d < fw_now(w))
		d = fw_now(w);
	if (d == *armed)
		return;
	(*gen)++;
	*armed = d;
	fw_push(w, d, kind, i, *gen, NULL);
}

static void fw_swim_rearm(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	fw_rearm(w, i, swim_next_deadline(h->sw), &h->sw_gen, &h->sw_armed, E_SWIM_TIMER);
}

static void fw_swim_drain(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	struct swim_msg m;
	while (swim_pop_output(h->sw, &m)) {
		w->ctr.swim_msgs++;
		int to = m.to && m.to[0] ? fw_index(w, m.to) : fw_addr_index(w, m.to_addr);
		if (to < 0)
			to = fw_addr_index(w, m.to_addr);
		struct fw_msg *sent = to < 0 ? NULL : fw_net_send(w, i, to, M_SWIM);
		if (sent != NULL)
			sent->body = w->o.codecs ? fw_swim_through_codec(w, &m) : fw_swim_copy(&m);
	}
	struct swim_event ev;
	bool ns_fed = false, mig_fed = false;
	while (swim_pop_event(h->sw, &ev)) {
		fw_heard_of(w, i, ev.name);
		if (ev.type == SWIM_EV_MEMBER_DEAD) {
			struct fw_rec *r = fw_log(w, FW_R_MEMBER_DEAD, i);
			r->peer = fw_index(w, ev.name);
			r->epoch = ev.incarnation;
			vlog(w, 1, "%s: swim says %s dead (incarnation %" PRIu64 ")", h->name,
			     ev.name, ev.incarnation);
		} else if (w->o.verbose >= 2 && ev.name && ev.name[0]) {
			vlog(w, 2, "%s: swim says %s %s (incarnation %" PRIu64 ")", h->name,
			     ev.name, swim_state_name(ev.state), ev.incarnation);
		}
		if (ev.type == SWIM_EV_SELF_REFUTED)
			h->dirty = true;
		/* the daemon's glue, shared (fo_driver.c, state_driver.c) */
		fo_driver_member_event(h->fo, h->name, &ev, fw_local_now(w, i));
		ns_fed |= state_driver_member_event(h->ns, h->name, &ev);
		mig_fed |= mig_driver_member_event(h->mg, &ev, fw_local_now(w, i));
	}
	uint32_t life = h->life;
	if (ns_fed)
		fw_ns_drain(w, i);
	if (mig_fed && h->agent_up && h->life == life)
		fw_mig_drain(w, i);
	if (!h->agent_up || h->life != life)
		return;
	fw_fo_drain(w, i, false);
	if (h->agent_up && h->life == life)
		fw_swim_rearm(w, i);
}

void fw_inject_swim(struct fw *w, int i, const struct swim_msg *m)
{
	struct fw_host *h = &w->h[i];
	if (!h->agent_up || h->frozen)
		return;
	swim_handle_message(h->sw, m, fw_local_now(w, i));
	fw_swim_drain(w, i);
}

static uint64_t fw_fake_alive_mac(const char *name, uint64_t inc)
{
	return mv_mix64(mv_fnv1a64(MV_FNV1A64_OFFSET, name) ^
	                mv_mix64(inc ^ 0x6d65736876697372ULL));
}

int fw_fake_alive_sign(void *arg, const char *name, uint64_t inc, uint8_t *out, size_t cap)
{
	(void)arg;
	if (cap < 8)
		return -ENOSPC;
	uint64_t t = fw_fake_alive_mac(name, inc);
	memcpy(out, &t, 8);
	return 8;
}

int fw_fake_alive_verify(void *arg, const char *name, uint64_t inc, const uint8_t *proof,
                         size_t len)
{
	uint8_t want[8];
	if (len != 8 || fw_fake_alive_sign(arg, name, inc, want, sizeof(want)) != 8)
		return -EACCES;
	return memcmp(want, proof, 8) == 0 ? 0 : -EACCES;
}

void fw_opts_signed_alive(struct fw_opts *o)
{
	o->swim.alive_sign = fw_fake_alive_sign;
	o->swim.alive_verify = fw_fake_alive_verify;
	o->swim.claim_arg = NULL;
}

/* ------------------------------------------------------------ node-state gossip */

/* opts.gossip_state: host i's view of the others is what its node-state
 * core holds (records dropped when membership reaps a host), not the
 * world's direct copy. */
static void fw_ns_sync_view(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	bool changed = false;
	for (int k = 0; k < w->n; k++) {
		if (k == i)
			continue;
		struct nstate_record r;
		struct fw_pub *cur = h->view[k];
		if (!nstate_find(h->ns, w->h[k].name, &r)) {
			if (cur != NULL) {
				fw_pub_unref(cur);
				h->view[k] = NULL;
				changed = true;
			}
			continue;
		}
		if (cur != NULL && cur->ns_inc == r.incarnation && cur->ns_ver == r.version)
			continue;
		uint8_t *bytes = malloc(r.len ? r.len : 1);
		if (bytes == NULL)
			abort();
		memcpy(bytes, r.data, r.len);
		struct fw_pub *p = fw_pub_wrap(bytes, r.len);
		p->ns_inc = r.incarnation;
		p->ns_ver = r.version;
		fw_pub_unref(cur);
		h->view[k] = p;
		changed = true;
	}
	if (changed)
		fw_give_view(w, i);
}

static void fw_ns_rearm(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	fw_rearm(w, i, nstate_next_deadline(h->ns), &h->ns_gen, &h->ns_armed, E_NS_TIMER);
}

/* An encoded frame (taken) from host i to host `to` (-1: unknown) over the
 * network; `rc` is the encoder's result (< 0 fails the world). */
static void fw_send_frame(struct fw *w, int i, int to, enum fw_msg_kind kind, const char *what,
                          int rc, uint8_t *frame, size_t len)
{
	if (rc < 0) {
		fw_fail(w, "%s: the codec cannot encode a %s (error %d)", w->h[i].name, what, rc);
		free(frame);
		return;
	}
	struct fw_msg *sent = to < 0 ? NULL : fw_net_send(w, i, to, kind);
	if (sent == NULL) {
		free(frame);
		return;
	}
	struct fw_frame *f = malloc(sizeof(*f) + len);
	if (f == NULL)
		abort();
	f->len = len;
	memcpy(f->bytes, frame, len);
	free(frame);
	sent->body = f;
}

/* A frame's envelope, decoded as the receiving agent does (NULL: the
 * world failed). */
static Mv__Envelope *fw_frame_envelope(struct fw *w, const struct fw_frame *f, const char *what)
{
	uint8_t *copy = malloc(f->len ? f->len : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, f->bytes, f->len);
	return fw_wire(w, what, 0, copy, f->len);
}

/* Sends what the core has to send, as frames (the real codec, always),
 * then brings the view up to date and re-arms the timer. */
static void fw_ns_drain(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (h->ns == NULL)
		return;
	uint32_t life = h->life;
	struct nstate_msg m;
	while (nstate_pop_output(h->ns, &m)) {
		w->ctr.state_msgs++;
		int to = m.to && m.to[0] ? fw_index(w, m.to) : -1;
		if (to < 0 && m.to_addr)
			to = fw_addr_index(w, m.to_addr);
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = state_codec_encode_frame(&m, &frame, &len);
		if (rc >= 0)
			w->ctr.state_bytes += len;
		fw_send_frame(w, i, to, M_NS, "state message", rc, frame, len);
	}
	struct nstate_event e;
	while (nstate_pop_event(h->ns, &e))
		;
	fw_ns_sync_view(w, i);
	if (h->agent_up && h->life == life && h->ns != NULL)
		fw_ns_rearm(w, i);
}

/* A node-state frame arrives at host i, decoded as the daemon does
 * (nodestate_handle_envelope). */
static void fw_ns_deliver(struct fw *w, int i, const struct fw_frame *f)
{
	struct fw_host *h = &w->h[i];
	Mv__Envelope *env = fw_frame_envelope(w, f, "state message");
	if (env == NULL)
		return;
	struct nstate_msg m;
	struct nstate_version *versions = NULL;
	struct nstate_record *records = NULL;
	const char *why = "";
	if (state_codec_decode(env, &m, &versions, &records, &why) < 0) {
		fw_fail(w, "%s: the state codec refuses a frame: %s", h->name, why);
	} else if (nstate_handle_message(h->ns, &m, fw_local_now(w, i)) < 0) {
		w->ctr.rejected++;
	}
	free(versions);
	free(records);
	envelope_free(env);
	fw_ns_drain(w, i);
}

/* ------------------------------------------------------------ live migration */

/* The core is told the host's capacity from the truth before each call,
 * as the daemon tells it its own published capacity. */
static void fw_mig_capacity(struct fw *w, int i)
{
	struct placement_host p = fw_placement(w, i);
	struct mig_capacity cap = {
	    .cpus = p.cpus,
	    .cpu_overcommit = p.cpu_overcommit,
	    .memory_kib = p.memory_kib,
	    .memory_overcommit = p.memory_overcommit,
	    .vcpus_allocated = p.vcpus_allocated,
	    .memory_allocated_kib = p.memory_allocated_kib,
	};
	mig_set_capacity(w->h[i].mg, &cap);
}

static void fw_mig_rearm(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	fw_rearm(w, i, mig_next_deadline(h->mg), &h->mg_gen, &h->mg_armed, E_MIG_TIMER);
}

static void fw_push_mig_job(struct fw *w, uint64_t at, int job)
{
	struct simnet_event ev = {.at = at, .kind = E_MIG_JOB, .node = w->mj[job].src, .arg = job};
	simnet_at(w->net, ev);
}

static struct fw_mig_job *fw_mig_job_find(struct fw *w, const char *pid)
{
	for (size_t k = 0; k < w->mj_n; k++)
		if (w->mj[k].active && strcmp(w->mj[k].pid, pid) == 0)
			return &w->mj[k];
	return NULL;
}

/* GO at the source, as the daemon's migration.c does it: the VM's owner
 * epoch is bumped on its definition here (it travels with it), then the
 * libvirt job runs for a while. */
static void fw_mig_go(struct fw *w, int i, const struct mig_event *e)
{
	struct fw_host *h = &w->h[i];
	int vmi = fw_vm_index(w, e->vm_uuid), dst = fw_index(w, e->peer);
	struct fw_copy *c = vmi >= 0 ? fw_copy_on(&w->vm[vmi], i) : NULL;
	if (c == NULL || !c->running || dst < 0) {
		/* it is not running here any more (fenced meanwhile) */
		mig_migration_done(h->mg, e->proposal_id, MIG_DONE_FAILED, fw_local_now(w, i));
		return;
	}
	struct fw_vm *v = &w->vm[vmi];
	/* as the daemon does (migration.c): an HA VM's move is announced to
	 * the failover core first (MOVES); not quorate, it does not move */
	if (!w->o.moves_unguarded) {
		int rc = fo_move_begin(h->fo, e->proposal_id, v->uuid, e->peer, c->epoch + 1,
		                       fw_local_now(w, i));
		fw_fo_drain(w, i, false);
		if (rc < 0) {
			vlog(w, 1, "%s: will not move %s now: %s", h->name, v->name,
			     rc == -EAGAIN ? "not quorate" : "the failover core refuses");
			if (h->mg != NULL)
				mig_migration_done(h->mg, e->proposal_id, MIG_DONE_FAILED,
				                   fw_local_now(w, i));
			return;
		}
	}
	if (w->o.moves_unguarded) {
		c->epoch++;
		if (c->epoch > v->max_epoch)
			v->max_epoch = c->epoch;
		h->dirty = true;
	}
	if (w->mj_n == w->mj_cap) {
		w->mj_cap = w->mj_cap ? w->mj_cap * 2 : 16;
		w->mj = realloc(w->mj, w->mj_cap * sizeof(*w->mj));
		if (w->mj == NULL)
			abort();
	}
	struct fw_mig_job *j = &w->mj[w->mj_n];
	*j = (struct fw_mig_job){.vm = vmi,
	                         .src = i,
	                         .dst = dst,
	                         .src_life = h->life,
	                         .epoch = w->o.moves_unguarded ? c->epoch : c->epoch + 1,
	                         .active = true,
	                         .started = w->o.moves_unguarded,
	                         .ready_by = fw_now(w) + FW_MOVE_READY_MS};
	snprintf(j->pid, sizeof(j->pid), "%s", e->proposal_id);
	w->ctr.migrations_started++;
	vlog(w, 1, "%s: migrating %s to %s (epoch %" PRIu64 ")", h->name, v->name, e->peer,
	     j->epoch);
	fw_push_mig_job(w, fw_now(w) + (j->started ? 300 + fw_below(w, 2700) : 0), (int)w->mj_n);
	w->mj_n++;
}

/* Before the hypervisor starts: wait until a majority acknowledged the
 * announcement (fo_move_ready), as the daemon does; true when the job is
 * still waiting (re-armed), or ends here (given up). */
static bool fw_mig_job_wait(struct fw *w, int k)
{
	struct fw_mig_job *j = &w->mj[k];
	if (j->started || j->kill)
		return false;
	struct fw_host *hs = &w->h[j->src];
	bool src_agent = hs->agent_up && hs->life == j->src_life && !hs->frozen;
	if (src_agent && fo_move_ready(hs->fo, j->pid, fw_local_now(w, j->src))) {
		/* acknowledged: the epoch is bumped on the definition (it travels
		 * with it), then the hypervisor moves it */
		struct fw_vm *v = &w->vm[j->vm];
		struct fw_copy *c = fw_copy_on(v, j->src);
		if (c == NULL || !c->running) {
			j->kill = true; /* fenced meanwhile */
			return false;
		}
		c->epoch = j->epoch;
		if (c->epoch > v->max_epoch)
			v->max_epoch = c->epoch;
		hs->dirty = true;
		j->started = true;
		fw_push_mig_job(w, fw_now(w) + 300 + fw_below(w, 2700), k);
		return true;
	}
	if (fw_now(w) < j->ready_by && (src_agent || hs->frozen)) {
		fw_push_mig_job(w, fw_now(w) + 50, k);
		return true;
	}
	j->kill = true; /* not acknowledged in time: the move is off */
	return false;
}

/* The job ends: the VM moved (source copy gone, target copy running at the
 * new epoch) when nothing stopped it, else it stays where it is. */
static void fw_mig_job_end(struct fw *w, int k)
{
	if (!w->mj[k].active || fw_mig_job_wait(w, k))
		return;
	/* (a copy: what follows may start another job and move the array) */
	struct fw_mig_job job = w->mj[k], *j = &job;
	struct fw_host *hs = &w->h[j->src], *hd = &w->h[j->dst];
	if (hs->frozen || (hd->frozen && !j->kill)) {
		/* a paused host's libvirtd is paused too: the job waits */
		fw_push_mig_job(w, fw_now(w) + 200, k);
		return;
	}
	struct fw_vm *v = &w->vm[j->vm];
	struct fw_copy *c = fw_copy_on(v, j->src);
	bool src_agent = hs->agent_up && hs->life == j->src_life;
	bool ok = !j->kill && src_agent && hs->hv_up && hd->hv_up && c != NULL && c->running &&
	          c->epoch == j->epoch && fw_link_open(w, j->src, j->dst) &&
	          fw_link_open(w, j->dst, j->src);
	w->mj[k].active = false;
	if (ok) {
		/* the source's definition goes (undefinesource), the target's
		 * replaces whatever stale one it had */
		fw_undefine(w, j->vm, j->src);
		struct fw_copy *d = fw_copy_on(v, j->dst);
		if (d == NULL) {
			if (v->nc == FW_MAXCOPY)
				abort();
			d = &v->c[v->nc++];
		}
		*d = (struct fw_copy){.host = j->dst, .epoch = j->epoch, .running = true};
		hs->dirty = hd->dirty = true;
		w->ctr.migrations_moved++;
		vlog(w, 1, "%s: %s moved to %s (epoch %" PRIu64 ")", hs->name, v->name, hd->name,
		     j->epoch);
		fw_check_vm(w, v);
		if (hd->agent_up && hd->mg != NULL) {
			mig_vm_arrived(hd->mg, v->uuid, fw_local_now(w, j->dst));
			fw_mig_drain(w, j->dst);
		}
		if (hd->agent_up && !hd->frozen && !w->o.moves_unguarded) {
			/* the target says where the VM is now */
			fo_move_outcome(hd->fo, j->pid, v->uuid, hs->name, true, j->epoch,
			                fw_local_now(w, j->dst));
			fw_fo_drain(w, j->dst, false);
		}
	} else {
		w->ctr.migrations_failed++;
		vlog(w, 1, "%s: migration of %s to %s fails", hs->name, v->name, hd->name);
	}
	if (src_agent && hs->mg != NULL) {
		if (!w->o.moves_unguarded) {
			fo_move_end(hs->fo, j->pid, ok, fw_local_now(w, j->src));
			fw_fo_drain(w, j->src, false);
		}
		if (hs->agent_up && hs->life == j->src_life && hs->mg != NULL) {
			fw_mig_capacity(w, j->src);
			mig_migration_done(hs->mg, j->pid, ok ? MIG_DONE_OK : MIG_DONE_FAILED,
			                   fw_local_now(w, j->src));
			fw_mig_drain(w, j->src);
		}
	}
}

/* The target's reservation ended without the VM (ABORT, or the lease ran
 * out and the incoming job was killed): the move will never land here. */
static void fw_mig_not_landed(struct fw *w, int i, const struct mig_event *e)
{
	struct fw_host *h = &w->h[i];
	int src = fw_index(w, e->peer);
	/* (told even when we never heard it announced, as the daemon does) */
	if (w->o.moves_unguarded || src < 0)
		return;
	fo_move_outcome(h->fo, e->proposal_id, e->vm_uuid, e->peer, false, 0, fw_local_now(w, i));
	fw_fo_drain(w, i, false);
}

/* Ends a running job early (LEASE_LOST at the source, EXPIRED at the
 * target: the daemon aborts or kills the libvirt job). */
static void fw_mig_kill(struct fw *w, struct fw_mig_job *j)
{
	if (j == NULL || j->kill)
		return;
	j->kill = true;
	fw_push_mig_job(w, fw_now(w) + 50, (int)(j - w->mj));
}

static void fw_mig_drain(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (h->mg == NULL)
		return;
	uint32_t life = h->life;
	struct mig_msg m;
	while (mig_pop_output(h->mg, &m)) {
		w->ctr.mig_msgs++;
		int to = fw_index(w, m.to);
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = mig_codec_encode_frame(
		    &m, m.type == MIG_ACCEPT ? "qemu+tls://x/system" : NULL, NULL, &frame, &len);
		fw_send_frame(w, i, to, M_MIG, mig_msg_type_name(m.type), rc, frame, len);
	}
	struct mig_event e;
	while (h->agent_up && h->life == life && mig_pop_event(h->mg, &e)) {
		switch (e.type) {
		case MIG_EV_GO:
			fw_mig_go(w, i, &e);
			break;
		case MIG_EV_LEASE_LOST:
			fw_mig_kill(w, fw_mig_job_find(w, e.proposal_id));
			break;
		case MIG_EV_EXPIRED:
			for (size_t k = 0; k < w->mj_n; k++)
				if (w->mj[k].active && w->mj[k].dst == i &&
				    strcmp(w->vm[w->mj[k].vm].uuid, e.vm_uuid) == 0)
					fw_mig_kill(w, &w->mj[k]);
			fw_mig_not_landed(w, i, &e);
			break;
		case MIG_EV_RELEASED:
			fw_mig_not_landed(w, i, &e);
			break;
		default:
			break;
		}
	}
	if (h->agent_up && h->life == life && h->mg != NULL)
		fw_mig_rearm(w, i);
}

static void fw_mig_deliver(struct fw *w, int i, const struct fw_frame *f)
{
	struct fw_host *h = &w->h[i];
	Mv__Envelope *env = fw_frame_envelope(w, f, "migration message");
	if (env == NULL)
		return;
	struct mig_msg m;
	const char *dest_uri, *stream_uri, *why = "";
	if (mig_codec_decode(env, &m, &dest_uri, &stream_uri, &why) < 0) {
		fw_fail(w, "%s: the migration codec refuses a frame: %s", h->name, why);
	} else {
		fw_mig_capacity(w, i);
		if (mig_handle_message(h->mg, &m, fw_local_now(w, i)) < 0)
			w->ctr.rejected++;
	}
	envelope_free(env);
	fw_mig_drain(w, i);
}

/* An operator asks a random host that runs a VM to move it to another host
 * it holds alive (`meshvisor migrate VM --to HOST`), then comes back later. */
void fw_operators_rest(struct fw *w)
{
	w->operators_rest = true;
}

static void fw_mig_operator(struct fw *w)
{
	if (w->operators_rest)
		return;
	fw_push(w, fw_now(w) + 1 + fw_below(w, 2 * w->o.migrate_every_ms), E_MIG_OPERATOR, 0, 0,
	        NULL);
	if (w->nvm == 0)
		return;
	int vmi = (int)fw_below(w, (uint32_t)w->nvm), src = -1;
	for (int i = 0; i < w->n && src < 0; i++)
		if (fw_vm_on(w, vmi, i))
			src = i;
	if (src < 0)
		return;
	struct fw_host *h = &w->h[src];
	if (!h->agent_up || h->frozen || h->mg == NULL)
		return;
	int dst = (int)fw_below(w, (uint32_t)w->n);
	if (dst == src || w->h[dst].witness || !fw_view_up(h, w->h[dst].name))
		return;
	const struct fw_vm *v = &w->vm[vmi];
	struct mig_vm mv = {
	    .name = v->name, .uuid = v->uuid, .vcpus = v->vcpus, .memory_kib = v->mem};
	char pid[MIG_ID_MAX];
	enum mig_reason why;
	fw_mig_capacity(w, src);
	if (mig_propose(h->mg, &mv, w->h[dst].name, fw_local_now(w, src), pid, &why) == 0) {
		w->ctr.migrations_proposed++;
		vlog(w, 1, "%s: operator migrates %s to %s", h->name, v->name, w->h[dst].name);
	}
	fw_mig_drain(w, src);
}

/* Does host i's migration core hold a reservation for proposal `id`, or
 * does an incoming job for it still run there? */
static bool fw_mig_incoming(struct fw *w, int i, const char *id)
{
	struct fw_host *h = &w->h[i];
	for (size_t k = 0; h->mg != NULL && k < mig_in_count(h->mg); k++) {
		struct mig_in_info in;
		mig_in_at(h->mg, k, &in);
		if (strcmp(in.proposal_id, id) == 0)
			return true;
	}
	for (size_t k = 0; k < w->mj_n; k++)
		if (w->mj[k].active && !w->mj[k].kill && w->mj[k].dst == i &&
		    strcmp(w->mj[k].pid, id) == 0)
			return true;
	return false;
}

/* Host i of world w, for fo_driver_settle_moves' callbacks. */
struct fw_at {
	struct fw *w;
	int i;
	bool start; /* the agent's start: every move MOVING is a previous life's */
};

/* What runs on host i of `uuid` (a copy that is not running is no copy
 * here: the simulated hypervisor never pauses one). */
static bool fw_move_copy(void *arg, const char *uuid, struct fo_driver_copy *out)
{
	const struct fw_at *at = arg;
	int vmi = fw_vm_index(at->w, uuid);
	if (vmi < 0 || !fw_vm_on(at->w, vmi, at->i))
		return false;
	out->running = true;
	out->epoch = fw_copy_on(&at->w->vm[vmi], at->i)->epoch;
	return true;
}

static bool fw_move_incoming(void *arg, const char *id)
{
	const struct fw_at *at = arg;
	return fw_mig_incoming(at->w, at->i, id);
}

static bool fw_move_at_start(void *arg, const char *id)
{
	const struct fw_at *at = arg;
	(void)id;
	return at->start;
}

/* As the daemon does (ha.c, ha_settle_moves), with the same rule
 * (fo_driver_settle_moves): moves still MOVING that name host i, settled
 * from what its hypervisor runs. */
static void fw_settle_moves(struct fw *w, int i, bool at_start)
{
	struct fw_at at = {w, i, at_start};
	size_t nu = fo_driver_settle_moves(w->h[i].fo, w->h[i].name, fw_move_at_start,
	                                   fw_local_now(w, i), fw_move_copy, fw_move_incoming, &at);
	if (nu && !at_start)
		fw_fo_drain(w, i, false);
}

static void fw_agent_start(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	h->life++;
	simnet_up(w->net, i); /* its endpoint's epoch moves with the life */
	struct swim_config sc = w->o.swim;
	snprintf(sc.name, sizeof(sc.name), "%s", h->name);
	snprintf(sc.addr, sizeof(sc.addr), "%s", h->addr);
	sc.seed = fw_rand(w);
	uint64_t inc = h->inc_persist + 1;
	h->sw = swim_new(&sc, inc, fw_local_now(w, i));
	struct fo_config fc = w->o.fo;
	snprintf(fc.name, sizeof(fc.name), "%s", h->name);
	fc.seed = fw_rand(w);
	fc.witness = h->witness;
	h->fo = fo_new(&fc, fw_local_now(w, i));
	if (h->sw == NULL || h->fo == NULL) {
		fprintf(stderr, "fw: cannot create the cores of %s\n", h->name);
		abort();
	}
	if (w->o.journal && h->journal) {
		char err[256];
		if (fo_journal_restore(h->fo, h->journal, h->journal_len, err, sizeof(err)) < 0) {
			fprintf(stderr, "fw: %s cannot restore its journal: %s\n", h->name, err);
			abort();
		}
	}
	h->journal_ver = fo_journal_version(h->fo);
	fo_journal_set_durable(h->fo, w->o.journal);
	if (w->o.gossip_state) {
		struct nstate_config nc;
		nstate_config_default(&nc);
		snprintf(nc.name, sizeof(nc.name), "%s", h->name);
		nc.seed = fw_rand(w);
		h->ns = nstate_new(&nc, fw_local_now(w, i));
		if (h->ns == NULL)
			abort();
		/* a record of this life outranks every one of an earlier life */
		h->ns_inc = inc;
		h->ns_ver = 0;
		h->ns_armed = UINT64_MAX;
		fw_pub_unref(h->pub); /* published again, by this life */
		h->pub = NULL;
	}
	if (w->o.migrate_every_ms) {
		struct mig_config mc;
		mig_config_default(&mc);
		snprintf(mc.name, sizeof(mc.name), "%s", h->name);
		mc.seed = fw_rand(w);
		mc.lease_ms = 6000;
		mc.renew_interval_ms = 2000;
		mc.lease_guard_ms = 600;
		mc.startup_quiet_ms = 6000;
		mc.recent_ms = 12000;
		mc.propose_timeout_ms = 3000;
		h->mg = mig_new(&mc, fw_local_now(w, i));
		if (h->mg == NULL)
			abort();
		h->mg_armed = UINT64_MAX;
		fw_mig_capacity(w, i);
		/* a previous life's jobs are aborted (outgoing) and killed
		 * (incoming) at start (mig.h) */
		for (size_t k = 0; k < w->mj_n; k++)
			if (w->mj[k].active && (w->mj[k].src == i || w->mj[k].dst == i))
				fw_mig_kill(w, &w->mj[k]);
	}
	h->agent_up = true;
	h->sw_armed = h->fo_armed = UINT64_MAX;
	h->quorate_since_start = false;
	/* The daemon at start: HA VMs running here (only the agent restarted)
	 * keep the watchdog armed, and the new core's self-fence clock runs
	 * from the moment the previous agent was last quorate (kept across the
	 * restart, same boot); none running: disarmed until the first quorum,
	 * so that a booting host is never reset before it could have one. */
	bool running = false;
	for (int k = 0; k < w->nvm && !running; k++)
		running = fw_vm_on(w, k, i);
	if (running && h->last_quorate) {
		uint64_t ago = fw_now(w) - h->last_quorate;
		uint64_t local = fw_local_now(w, i);
		fo_resume_fence_base(h->fo, local > ago ? local - ago : 0);
	}
	if (!running)
		h->wd_armed = false;
	fo_member(h->fo, h->name, FO_ALIVE, swim_incarnation(h->sw), fw_local_now(w, i));
	fo_set_incarnation(h->fo, swim_incarnation(h->sw));
	if (w->o.migrate_every_ms && !w->o.moves_unguarded)
		fw_settle_moves(w, i, true);
	h->dirty = true;
	fw_swim_drain(w, i);
}

static void fw_free_payload(void *owner, int kind, void *p);

static void fw_freeq_drop(struct fw *w, struct fw_host *h)
{
	for (size_t k = 0; k < h->fq_n; k++)
		fw_free_payload(w, h->fq[k].kind, h->fq[k].p);
	h->fq_n = 0;
}

static void fw_agent_stop(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!h->agent_up)
		return;
	uint64_t inc = swim_incarnation(h->sw);
	if (inc > h->inc_persist)
		h->inc_persist = inc;
	swim_free(h->sw);
	fo_free(h->fo);
	nstate_free(h->ns);
	mig_free(h->mg);
	h->mg = NULL;
	h->mg_gen++;
	h->mg_armed = UINT64_MAX;
	h->sw = NULL;
	h->fo = NULL;
	h->ns = NULL;
	h->ns_gen++;
	h->ns_armed = UINT64_MAX;
	h->agent_up = false;
	h->life++;
	simnet_down(w->net, i); /* what was on its way to this life is lost */
	h->sw_gen++;
	h->fo_gen++;
	h->sw_armed = h->fo_armed = UINT64_MAX;
	fw_freeq_drop(w, h);
	for (int k = 0; k < w->n; k++) {
		fw_pub_unref(h->view[k]);
		h->view[k] = NULL;
	}
}

/* ------------------------------------------------------------ faults */

void fw_crash_agent(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!h->agent_up || h->frozen)
		return;
	fw_agent_stop(w, i);
	fw_log(w, FW_R_CRASH_AGENT, i);
	vlog(w, 1, "%s: agent crashes (VMs run on)", h->name);
	/* Linux pings a watchdog whose file closes without the magic close
	 * (watchdog_release: "watchdog did not stop!"), as when its process
	 * dies */
	if (w->o.watchdog && h->wd_armed)
		h->wd_pet = fw_now(w);
	if (w->o.watchdog && h->wd_armed)
		fw_push(w, h->wd_pet + fw_wd_timeout(w), E_WATCHDOG, i, 0, NULL);
}

void fw_crash_host(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!h->hv_up)
		return;
	fw_agent_stop(w, i);
	fw_freeq_drop(w, h);
	h->frozen = false;
	/* every VM stops; definitions stay on its disk (fw_boot_host may lose
	 * them) */
	for (int k = 0; k < w->nvm; k++) {
		struct fw_copy *c = fw_copy_on(&w->vm[k], i);
		if (c != NULL)
			c->running = false;
	}
	h->hv_up = false;
	h->wd_armed = false; /* a new boot: nothing armed */
	h->last_quorate = 0; /* a new boot: the next agent resumes nothing */
	h->dirty = true;
	fw_log(w, FW_R_CRASH_HOST, i);
	vlog(w, 1, "%s: host crashes (VMs gone)", h->name);
}

static void fw_join_later(struct fw *w, int i, uint64_t at)
{
	/* through a live host other than i that it can talk to (an agent has
	 * several seeds; one that answers), from a random start */
	int via = -1, start = (int)fw_below(w, (uint32_t)w->n);
	for (int pass = 0; pass < 2 && via < 0; pass++)
		for (int k = 0; k < w->n && via < 0; k++) {
			int j = (start + k) % w->n;
			if (j != i && w->h[j].agent_up && !w->h[j].frozen &&
			    (pass == 1 || (fw_link_open(w, i, j) && fw_link_open(w, j, i))))
				via = j;
		}
	if (via < 0)
		via = (i + 1) % w->n;
	struct simnet_event ev = {
	    .at = at, .kind = E_JOIN, .node = i, .gen = w->h[i].life, .arg = via};
	simnet_at(w->net, ev);
}

static void fw_restart_later(struct fw *w, int a, int b, void *arg)
{
	(void)b;
	(void)arg;
	fw_restart_agent(w, a);
}

void fw_restart_agent(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!h->hv_up || h->agent_up)
		return;
	if (h->frozen) { /* a frozen host starts nothing: once it runs again */
		fw_at(w, fw_now(w) + 500, fw_restart_later, i, 0, NULL);
		return;
	}
	fw_log(w, FW_R_RESTART_AGENT, i);
	vlog(w, 1, "%s: agent restarts (incarnation %" PRIu64 ")", h->name, h->inc_persist + 1);
	fw_agent_start(w, i);
	fw_join_later(w, i, fw_now(w));
}

void fw_boot_host_ex(struct fw *w, int i, bool keep_definitions)
{
	struct fw_host *h = &w->h[i];
	if (h->hv_up)
		return;
	h->hv_up = true;
	h->dirty = true;
	if (!keep_definitions)
		for (int k = 0; k < w->nvm; k++)
			fw_undefine(w, k, i);
	fw_log(w, FW_R_BOOT_HOST, i);
	vlog(w, 1, "%s: host boots (no VM runs%s)", h->name,
	     keep_definitions ? "" : "; its VM definitions are gone");
	fw_agent_start(w, i);
	fw_join_later(w, i, fw_now(w));
}

void fw_boot_host(struct fw *w, int i)
{
	fw_boot_host_ex(w, i, true);
}

static void fw_boot_later(struct fw *w, int a, int b, void *arg)
{
	(void)b;
	(void)arg;
	fw_boot_host(w, a);
}

void fw_pause(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!h->hv_up || h->frozen)
		return;
	h->frozen = true;
	fw_log(w, FW_R_PAUSE, i);
	vlog(w, 1, "%s: paused", h->name);
}

static void fw_dispatch(void *owner, struct simnet_event *ev);

/* The hardware watchdog of host i, if it is due: armed, and not petted
 * for F (its agent is down, or not quorate since). It resets the host: the
 * VMs die, and the host boots again 10..30 s later with its definitions. */
static void fw_watchdog(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!w->o.watchdog || !h->hv_up || !h->wd_armed || fw_now(w) < h->wd_pet + fw_wd_timeout(w))
		return;
	for (int k = 0; k < w->nvm; k++)
		if (fw_vm_on(w, k, i))
			w->ctr.watchdog_kills++;
	w->ctr.watchdog_resets++;
	fw_log(w, FW_R_WATCHDOG, i);
	vlog(w, 1, "%s: watchdog fires: the host resets", h->name);
	fw_crash_host(w, i);
	fw_at(w, fw_now(w) + 10000 + fw_below(w, 20001), fw_boot_later, i, 0, NULL);
}

void fw_resume(struct fw *w, int i)
{
	struct fw_host *h = &w->h[i];
	if (!h->frozen)
		return;
	fw_log(w, FW_R_RESUME, i);
	vlog(w, 1, "%s: resumes", h->name);
	/* 1. the failover core's timer, its actions carried out while the VMs
	 *    are still frozen (the watchdog/ordering assumption) */
	if (h->agent_up && h->fo_armed <= fw_now(w)) {
		h->fo_armed = UINT64_MAX;
		h->fo_gen++;
		fo_handle_timer(h->fo, fw_local_now(w, i));
		fw_fo_drain(w, i, true);
	}
	/*    (and the hardware watchdog, if the agent is down or fenced) */
	fw_watchdog(w, i);
	if (!h->hv_up)
		return;
	/* 2. the VMs run again */
	h->frozen = false;
	h->dirty = true;
	for (int k = 0; k < w->nvm; k++)
		if (fw_vm_on(w, k, i))
			fw_check_vm(w, &w->vm[k]);
	/* 3. SWIM's timer, then what queued, in order */
	if (h->agent_up && h->sw_armed <= fw_now(w)) {
		h->sw_armed = UINT64_MAX;
		h->sw_gen++;
		swim_handle_timer(h->sw, fw_local_now(w, i));
		fw_swim_drain(w, i);
	}
	if (h->agent_up && h->mg != NULL && h->mg_armed <= fw_now(w)) {
		h->mg_armed = UINT64_MAX;
		h->mg_gen++;
		fw_mig_capacity(w, i);
		mig_handle_timer(h->mg, fw_local_now(w, i));
		fw_mig_drain(w, i);
	}
	if (h->agent_up && h->ns != NULL && h->ns_armed <= fw_now(w)) {
		h->ns_armed = UINT64_MAX;
		h->ns_gen++;
		nstate_handle_timer(h->ns, fw_local_now(w, i));
		fw_ns_drain(w, i);
	}
	struct simnet_event *q = h->fq;
	size_t qn = h->fq_n;
	h->fq = NULL;
	h->fq_n = h->fq_cap = 0;
	for (size_t k = 0; k < qn; k++)
		fw_dispatch(w, &q[k]);
	free(q);
	if (h->agent_up) {
		fw_swim_rearm(w, i);
		fw_fo_rearm(w, i, false);
		if (h->ns != NULL)
			fw_ns_rearm(w, i);
		if (h->mg != NULL)
			fw_mig_rearm(w, i);
	}
}

/* ------------------------------------------------------------ dispatch */

/* The network's ops.free_payload, and what drops queued input: a message
 * envelope, a job or a call record. */
static void fw_free_payload(void *owner, int kind, void *p)
{
	if (kind == SIMNET_EV_DELIVER && p != NULL)
		fw_msg_free(owner, p);
	else
		free(p);
}

/* A message reaches host i's agent (awake, of the life it was sent to);
 * the envelope and its body are freed here. */
static void fw_deliver(struct fw *w, int i, struct fw_msg *msg)
{
	struct fw_host *h = &w->h[i];
	enum fw_msg_kind kind = msg->kind;
	void *body = msg->body;
	msg->body = NULL;
	fw_msg_free(w, msg);
	if (body == NULL) /* not made after the network took it (the world failed) */
		return;
	switch (kind) {
	case M_SWIM:
		swim_handle_message(h->sw, body, fw_local_now(w, i));
		free(body);
		fw_swim_drain(w, i);
		return;
	case M_NS:
		fw_ns_deliver(w, i, body);
		free(body);
		return;
	case M_MIG:
		fw_mig_deliver(w, i, body);
		free(body);
		return;
	case M_FO: {
		struct fo_msg *m = body;
		fw_heard_of(w, i, m->from);
		if (fo_handle_message(h->fo, m, fw_local_now(w, i)) < 0) {
			w->ctr.rejected++;
			vlog(w, 1, "%s rejected a %s", h->name, fo_msg_type_name(m->type));
		}
		fo_msg_clear(m);
		free(m);
		fw_fo_drain(w, i, false);
		return;
	}
	}
}

/* Runs one event: the network's ops.dispatch, and fw_resume's for the
 * input a frozen host queued. */
static void fw_dispatch(void *owner, struct simnet_event *ev)
{
	struct fw *w = owner;
	struct fw_host *h = &w->h[ev->node];
	switch (ev->kind) {
	case E_SWIM_TIMER:
		if (!h->agent_up || h->frozen || ev->gen != h->sw_gen)
			return;
		h->sw_armed = UINT64_MAX;
		h->sw_gen++;
		swim_handle_timer(h->sw, fw_local_now(w, ev->node));
		fw_swim_drain(w, ev->node);
		return;
	case E_FO_TIMER:
		if (!h->agent_up || h->frozen || ev->gen != h->fo_gen)
			return;
		h->fo_armed = UINT64_MAX;
		h->fo_gen++;
		fo_handle_timer(h->fo, fw_local_now(w, ev->node));
		fw_fo_drain(w, ev->node, true);
		return;
	case E_NS_TIMER:
		if (!h->agent_up || h->frozen || ev->gen != h->ns_gen || h->ns == NULL)
			return;
		h->ns_armed = UINT64_MAX;
		h->ns_gen++;
		nstate_handle_timer(h->ns, fw_local_now(w, ev->node));
		fw_ns_drain(w, ev->node);
		return;
	case E_MIG_TIMER:
		if (!h->agent_up || h->frozen || ev->gen != h->mg_gen || h->mg == NULL)
			return;
		h->mg_armed = UINT64_MAX;
		h->mg_gen++;
		fw_mig_capacity(w, ev->node);
		mig_handle_timer(h->mg, fw_local_now(w, ev->node));
		fw_mig_drain(w, ev->node);
		return;
	case E_MIG_JOB:
		fw_mig_job_end(w, ev->arg);
		return;
	case E_MIG_OPERATOR:
		fw_mig_operator(w);
		return;
	case SIMNET_EV_DELIVER: /* the network checked the life at arrival */
	case E_JOB:
		/* input queued while frozen comes here again at the resume */
		if (!h->agent_up ||
		    ev->gen != (ev->kind == E_JOB ? h->life : simnet_epoch(w->net, ev->node))) {
			fw_free_payload(w, ev->kind, ev->p);
			return;
		}
		if (h->frozen) {
			if (h->fq_n == h->fq_cap) {
				h->fq_cap = h->fq_cap ? h->fq_cap * 2 : 64;
				h->fq = realloc(h->fq, h->fq_cap * sizeof(*h->fq));
				if (h->fq == NULL)
					abort();
			}
			h->fq[h->fq_n++] = *ev;
			return;
		}
		if (ev->kind == SIMNET_EV_DELIVER) {
			fw_deliver(w, ev->node, ev->p);
		} else {
			struct fw_job *j = ev->p;
			if (j->kind == J_RESTART_DONE)
				fo_restart_done(h->fo, &j->inst, j->uuid, j->ok,
				                j->ok ? NULL : j->why, fw_local_now(w, ev->node));
			else
				fo_remote_fence_done(h->fo, &j->inst, j->ok, j->why,
				                     fw_local_now(w, ev->node));
			free(j);
			fw_fo_drain(w, ev->node, false);
		}
		return;
	case E_PUBLISH:
		for (int i = 0; w->o.migrate_every_ms && !w->o.moves_unguarded && i < w->n; i++)
			if (w->h[i].agent_up && !w->h[i].frozen)
				fw_settle_moves(w, i, false);
		fw_publish(w);
		fw_check(w);
		fw_push(w, fw_now(w) + w->o.publish_ms, E_PUBLISH, 0, 0, NULL);
		return;
	case E_WATCHDOG:
		if (h->frozen) /* fires at the resume, before the VMs run */
			return;
		fw_watchdog(w, ev->node);
		return;
	case E_CALL: {
		struct fw_call *c = ev->p;
		c->fn(w, c->a, c->b, c->arg);
		free(c);
		return;
	}
	case E_JOIN:
		if (h->agent_up && h->life == ev->gen && !h->frozen) {
			const char *seed = w->h[ev->arg].addr;
			swim_join(h->sw, &seed, 1, fw_local_now(w, ev->node));
			fw_swim_drain(w, ev->node);
		}
		return;
	}
}

/* One event (a message dropped at arrival is one too). */
static void fw_step(struct fw *w)
{
	simnet_step_one(w->net);
	w->ctr.steps++;
}

void fw_run_for(struct fw *w, uint64_t ms)
{
	uint64_t end = fw_now(w) + ms;
	while (simnet_next_at(w->net) <= end)
		fw_step(w);
	simnet_advance_to(w->net, end);
}

int64_t fw_run_until(struct fw *w, fw_pred_f pred, void *arg, uint64_t timeout_ms)
{
	uint64_t start = fw_now(w), end = start + timeout_ms;
	if (pred(w, arg))
		return 0;
	while (simnet_next_at(w->net) <= end) {
		fw_step(w);
		if (pred(w, arg))
			return (int64_t)(fw_now(w) - start);
	}
	simnet_advance_to(w->net, end);
	return -1;
}

void fw_at(struct fw *w, uint64_t at, fw_call_f fn, int a, int b, void *arg)
{
	struct fw_call *c = malloc(sizeof(*c));
	if (c == NULL)
		abort();
	*c = (struct fw_call){.fn = fn, .a = a, .b = b, .arg = arg};
	fw_push(w, at < fw_now(w) ? fw_now(w) : at, E_CALL, 0, 0, c);
}

/* ------------------------------------------------------------ life cycle */

void fw_opts_default(struct fw_opts *o, int n, uint64_t seed)
{
	memset(o, 0, sizeof(*o));
	o->n = n;
	o->seed = seed;
	fo_config_default(&o->fo);
	o->fo.expect_cluster = true;
	swim_config_default(&o->swim);
	o->watchdog = true;
	o->journal = true;
	o->publish_ms = 1000;
	o->delay_ms = 1;
	o->jitter_ms = 1;
	o->restart_min_ms = 200;
	o->restart_max_ms = 1500;
	o->join_spread_ms = 500;
	o->clock_offsets = true;
}

struct fw *fw_new(const struct fw_opts *o)
{
	if (o->n < 1 || o->n > FW_MAXN)
		abort();
	struct fw *w = calloc(1, sizeof(*w));
	if (w == NULL)
		abort();
	w->o = *o;
	w->n = o->n;
	struct simnet_ops ops = {.dispatch = fw_dispatch, .free_payload = fw_free_payload};
	w->net = simnet_new(w->n, o->seed, &ops, w);
	simnet_set_delay(w->net, -1, -1, o->delay_ms, o->jitter_ms);
	w->h = calloc((size_t)w->n, sizeof(*w->h));
	if (w->h == NULL)
		abort();
	for (int i = 0; i < w->n; i++)
		simnet_down(w->net, i); /* up at its agent's start */
	for (int i = 0; i < w->n; i++) {
		struct fw_host *h = &w->h[i];
		snprintf(h->name, sizeof(h->name), "n%d", i);
		unsigned v = (unsigned)i + 1;
		snprintf(h->addr, sizeof(h->addr), "10.0.%u.%u:7946", v >> 8, v & 0xff);
		h->cpus = 32;
		h->mem = 128 * FW_GIB;
		h->hv_up = true;
		h->sw_armed = h->fo_armed = UINT64_MAX;
		h->view = calloc((size_t)w->n, sizeof(*h->view));
		if (h->view == NULL)
			abort();
		h->clk_rate = 1.0;
		if (o->clock_offsets)
			h->clk_off = fw_rand(w) % (30ull * 24 * 3600 * 1000); /* up to 30 days */
		if (o->clock_drift_ppm)
			h->clk_rate += ((double)fw_below(w, 2 * o->clock_drift_ppm + 1) -
			                (double)o->clock_drift_ppm) *
			               1e-6;
	}
	if (!o->quiet)
		fprintf(stderr, "fw seed=%" PRIu64 " n=%d (replay: MV_SIM_SEED=%" PRIu64 ")\n",
		        o->seed, o->n, o->seed);
	return w;
}

void fw_set_host(struct fw *w, int i, uint32_t cpus, uint64_t mem_kib, bool witness)
{
	w->h[i].cpus = cpus;
	w->h[i].mem = mem_kib;
	w->h[i].witness = witness;
}

void fw_set_base_load(struct fw *w, int i, uint32_t vcpus, uint64_t mem_kib)
{
	w->h[i].base_vcpus = vcpus;
	w->h[i].base_mem = mem_kib;
}

int fw_add_vm(struct fw *w, int host, const char *name, int32_t priority, uint32_t vcpus,
              uint64_t mem_kib, const char *group)
{
	if (w->started)
		abort();
	if (w->nvm == w->capvm) {
		w->capvm = w->capvm ? w->capvm * 2 : 64;
		w->vm = realloc(w->vm, (size_t)w->capvm * sizeof(*w->vm));
		if (w->vm == NULL)
			abort();
	}
	int k = w->nvm++;
	struct fw_vm *v = &w->vm[k];
	memset(v, 0, sizeof(*v));
	snprintf(v->uuid, sizeof(v->uuid), "%08x-0000-4000-8000-%012d", (unsigned)host, k);
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(v->group, sizeof(v->group), "%s", group ? group : "");
	v->prio = priority;
	v->vcpus = vcpus;
	v->mem = mem_kib;
	v->home = host;
	v->c[0] = (struct fw_copy){.host = host, .epoch = 1, .running = true};
	v->nc = 1;
	v->max_epoch = 1;
	return k;
}

void fw_start(struct fw *w)
{
	w->started = true;
	for (int i = 0; i < w->n; i++)
		fw_agent_start(w, i);
	for (int i = 1; i < w->n; i++) {
		struct simnet_event ev = {.at = fw_now(w) + fw_below(w, w->o.join_spread_ms + 1),
		                          .kind = E_JOIN,
		                          .node = i,
		                          .gen = w->h[i].life,
		                          .arg = 0};
		simnet_at(w->net, ev);
	}
	fw_publish(w);
	fw_push(w, fw_now(w) + w->o.publish_ms, E_PUBLISH, 0, 0, NULL);
	if (w->o.migrate_every_ms)
		fw_push(w, fw_now(w) + w->o.migrate_every_ms, E_MIG_OPERATOR, 0, 0, NULL);
}

void fw_free(struct fw *w)
{
	if (w == NULL)
		return;
	for (int i = 0; i < w->n; i++) {
		fw_agent_stop(w, i);
		fw_freeq_drop(w, &w->h[i]);
		free(w->h[i].fq);
		free(w->h[i].journal);
		fw_pub_unref(w->h[i].pub);
		free(w->h[i].view);
	}
	simnet_free(w->net);
	while (w->spare_msgs != NULL) {
		struct fw_msg *m = w->spare_msgs;
		w->spare_msgs = m->next_spare;
		free(m);
	}
	for (size_t k = 0; k < w->ch_n; k++)
		fo_plan_clear(&w->ch[k].plan);
	for (size_t k = 0; k < w->bal_n; k++)
		fo_plan_clear(&w->bal[k].plan);
	free(w->ch);
	free(w->bal);
	free(w->mj);
	free(w->log);
	free(w->vm);
	free(w->h);
	free(w);
}

/* ------------------------------------------------------------ queries */

uint64_t fw_seed(const struct fw *w)
{
	return w->o.seed;
}
int fw_size(const struct fw *w)
{
	return w->n;
}
uint64_t fw_now(const struct fw *w)
{
	return simnet_now(w->net);
}
const char *fw_name(const struct fw *w, int i)
{
	return w->h[i].name;
}
bool fw_host_up(const struct fw *w, int i)
{
	return w->h[i].hv_up;
}
bool fw_agent_up(const struct fw *w, int i)
{
	return w->h[i].agent_up;
}
bool fw_frozen(const struct fw *w, int i)
{
	return w->h[i].frozen;
}
struct fo *fw_fo(struct fw *w, int i)
{
	return w->h[i].fo;
}
struct swim *fw_swim(struct fw *w, int i)
{
	return w->h[i].sw;
}
int fw_vm_count(const struct fw *w)
{
	return w->nvm;
}
const char *fw_vm_uuid(const struct fw *w, int vm)
{
	return w->vm[vm].uuid;
}
const char *fw_vm_name(const struct fw *w, int vm)
{
	return w->vm[vm].name;
}
int fw_vm_home(const struct fw *w, int vm)
{
	return w->vm[vm].home;
}
int32_t fw_vm_priority(const struct fw *w, int vm)
{
	return w->vm[vm].prio;
}
int fw_vm_copies(const struct fw *w, int vm)
{
	return fw_live_copies(w, &w->vm[vm]);
}

int fw_vm_host(const struct fw *w, int vm, uint64_t *epoch)
{
	const struct fw_vm *v = &w->vm[vm];
	int best = -1;
	uint64_t be = 0;
	for (int k = 0; k < v->nc; k++)
		if (v->c[k].running && (best < 0 || v->c[k].epoch > be)) {
			best = v->c[k].host;
			be = v->c[k].epoch;
		}
	if (epoch)
		*epoch = be;
	return best;
}

/* A VM the whole live cluster has lost track of: no live host holds a
 * definition of it — the hosts that had one lost theirs (a reinstall,
 * fw_boot_host_ex without definitions) or are down — and no live agent's
 * core counts it as owed (every agent that saw its last state restarted
 * since). The simulator has no replica store (the daemon keeps HA
 * definitions on failover.replicas hosts), so here nothing could bring it
 * back: the liveness oracle leaves such a VM out and the callers count
 * and print it.
 * So is a VM the cluster never knew: its host was never heard of by
 * another host (every message of its join was lost, and its only seed is
 * gone) and no plan ever placed it (epoch 1). The simulator gives every
 * agent every host's node state, but a real cluster learns of a host's
 * VMs only from that host; the host itself, alone, is never quorate, so
 * it fences them (its join may have reached a seed that will fail it
 * over) and cannot restart them until it joins — when it does, `joined`
 * is set and the VM counts again. (Seeds 1504318466858329642,
 * 9057212193302037426.) */
bool fw_vm_forgotten(struct fw *w, int vm)
{
	const struct fw_vm *v = &w->vm[vm];
	if (!w->h[v->home].joined && v->max_epoch <= 1)
		return true;
	for (int k = 0; k < w->vm[vm].nc; k++) {
		const struct fw_host *dh = &w->h[w->vm[vm].c[k].host];
		if (dh->hv_up && !dh->frozen)
			return false;
	}
	for (int i = 0; i < w->n; i++) {
		struct fw_host *h = &w->h[i];
		if (!h->agent_up || h->frozen || h->fo == NULL)
			continue;
		size_t n = fo_owed_count(h->fo);
		for (size_t k = 0; k < n; k++) {
			struct fo_owed o;
			fo_owed_at(h->fo, k, fw_local_now(w, i), &o);
			if (strcmp(o.uuid, w->vm[vm].uuid) == 0)
				return false;
		}
	}
	return true;
}

int fw_liveness(struct fw *w, char *why, size_t len)
{
	if (why && len)
		why[0] = '\0';
	int up = 0;
	for (int i = 0; i < w->n; i++)
		up += w->h[i].agent_up && !w->h[i].frozen && !w->h[i].removed;
	/* (an agent started with seeds is never quorate alone: a cluster the
	 * operator shrank to one voter by force-leave has no quorate side) */
	if (up < fw_voters(w) / 2 + 1 || (fw_voters(w) <= 1 && w->o.fo.expect_cluster)) {
		if (why && len)
			snprintf(why, len, "no quorate side: %d agents up of %d voters", up,
			         fw_voters(w));
		return 0;
	}
	/* the live hosts as they really are, and the VMs that run nowhere */
	struct fo_host *hosts = calloc((size_t)w->n, sizeof(*hosts));
	/* (a VM may run on several hosts: O1 has failed the schedule then) */
	struct fo_vm *running = calloc((size_t)w->nvm * (size_t)w->n + 1, sizeof(*running));
	struct fo_vm *down = calloc((size_t)w->nvm + 1, sizeof(*down));
	if (hosts == NULL || running == NULL || down == NULL)
		abort();
	size_t nh = 0, nr = 0, nd = 0;
	for (int i = 0; i < w->n; i++) {
		struct fw_host *h = &w->h[i];
		if (!h->hv_up || !h->agent_up || h->frozen || h->witness)
			continue;
		hosts[nh].cap = fw_placement(w, i);
		hosts[nh].vms = &running[nr];
		for (int k = 0; k < w->nvm; k++)
			if (fw_vm_on(w, k, i)) {
				const struct fw_vm *v = &w->vm[k];
				running[nr++] = (struct fo_vm){.uuid = v->uuid,
				                               .name = v->name,
				                               .group = v->group,
				                               .running = true};
				hosts[nh].n_vms++;
			}
		nh++;
	}
	for (int k = 0; k < w->nvm; k++) {
		const struct fw_vm *v = &w->vm[k];
		if (fw_live_copies(w, v) == 0 && !fw_vm_forgotten(w, k))
			down[nd++] = (struct fo_vm){.uuid = v->uuid,
			                            .name = v->name,
			                            .group = v->group,
			                            .priority = v->prio,
			                            .vcpus = v->vcpus,
			                            .memory_kib = v->mem,
			                            .epoch = v->max_epoch,
			                            .running = true};
	}
	int missing = 0;
	struct fo_plan plan;
	if (nd && fo_plan_compute(hosts, nh, NULL, down, nd, 0, NULL, &plan) == 0) {
		for (size_t e = 0; e < plan.n; e++) {
			if (!plan.entries[e].target[0])
				continue;
			if (!missing++ && why && len)
				snprintf(why, len, "%s runs nowhere, and %s has room for it",
				         plan.entries[e].name, plan.entries[e].target);
		}
		fo_plan_clear(&plan);
	}
	free(hosts);
	free(running);
	free(down);
	return missing;
}

size_t fw_log_count(const struct fw *w)
{
	return w->log_n;
}
const struct fw_rec *fw_log_at(const struct fw *w, size_t k)
{
	return &w->log[k];
}
size_t fw_chosen_count(const struct fw *w)
{
	return w->ch_n;
}
const struct fw_chosen *fw_chosen_at(const struct fw *w, size_t k)
{
	return &w->ch[k];
}
const struct fw_counters *fw_counters(const struct fw *w)
{
	return &w->ctr;
}
const char *fw_violation(const struct fw *w)
{
	return w->fail[0] ? w->fail : NULL;
}
void fw_set_send_hook(struct fw *w, fw_send_hook_f fn, void *arg)
{
	w->send_hook = fn;
	w->send_arg = arg;
}
void fw_set_event_hook(struct fw *w, fw_event_hook_f fn, void *arg)
{
	w->ev_hook = fn;
	w->ev_arg = arg;
}
