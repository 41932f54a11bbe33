/*
 * mig.h — migration negotiation core: a source proposes a VM move, the
 * target checks its real free capacity and reserves it under a lease, the
 * source migrates (the caller runs libvirt) and commits or aborts. No I/O.
 *
 * One struct mig per host plays both roles:
 *   - target: answers PROPOSE with ACCEPT (a leased reservation) or REFUSE
 *     (an explicit reason), keeps the lease alive on RENEW, releases the
 *     reservation on COMMIT, ABORT, the VM's arrival or lease expiry;
 *   - source: mig_propose() starts an outgoing negotiation, retries the
 *     PROPOSE until propose_timeout_ms, turns ACCEPT into a "go" event,
 *     RENEWs while the caller migrates, and sends COMMIT or ABORT when the
 *     caller reports the outcome (mig_migration_done).
 * The protocol, the lease rules and every failure case are in agent/core/mig.c.
 *
 * Driving it is the same as the other cores (swim.h, nstate.h): pass
 * messages and timer expiries in with `now` (ms, any monotonic origin),
 * drain outputs with mig_pop_output() and events with mig_pop_event(),
 * re-arm the timer at mig_next_deadline(). The caller feeds the host's
 * capacity (mig_set_capacity), its draining flag and membership
 * (mig_peer_down), and adds its migration URI to ACCEPTs it sends.
 *
 * The capacity contract (how a reservation never double-counts): a
 * reservation is released at the moment the VM becomes the caller's to
 * count — on COMMIT (event MIG_EV_COMMITTED) or on mig_vm_arrived() — and
 * the caller then calls mig_set_capacity() with the VM in the allocation
 * before it feeds anything else to the core. Between those two calls no
 * PROPOSE is handled, so the VM is never counted twice and never missing.
 *
 * Ownership: every struct here is flat (fixed-size strings, no pointers):
 * messages, events and listings are copied out by value and stay valid for
 * as long as the caller keeps them. Input messages belong to the caller.
 */
#ifndef MESHVISOR_MIG_H
#define MESHVISOR_MIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "placement.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIG_NAME_MAX 64  /* host and VM names, with the NUL */
#define MIG_ID_MAX 96    /* proposal ids: "<source>-<8 hex>-<counter>" */
#define MIG_UUID_MAX 40  /* 36 characters + NUL */
#define MIG_CPU_MAX 64   /* CPU model name */
#define MIG_TEXT_MAX 192 /* human reason */

enum mig_msg_type {
	MIG_PROPOSE = 0, /* source -> target: reserve room for this VM */
	MIG_ACCEPT = 1,  /* target -> source: reserved for lease_ms; migrate */
	MIG_REFUSE = 2,  /* target -> source: not reserved (reason) */
	MIG_RENEW = 3,   /* source -> target: still migrating, extend the lease */
	MIG_RENEWED = 4, /* target -> source: lease extended by lease_ms */
	MIG_COMMIT = 5,  /* source -> target: the VM is yours; release */
	MIG_ABORT = 6,   /* source -> target: the move failed; release */
};
#define MIG_MSG_TYPES 7

/* Why a proposal was refused (REFUSE.reason; also local refusals). */
enum mig_reason {
	MIG_R_NONE = 0,
	MIG_R_NO_ROOM = 1,    /* free capacity minus reservations too small */
	MIG_R_DRAINING = 2,   /* target is in maintenance */
	MIG_R_CPU = 3,        /* CPU model incompatible */
	MIG_R_TOO_MANY = 4,   /* concurrent incoming (or outgoing) limit */
	MIG_R_SELF = 5,       /* source and target are the same host */
	MIG_R_DUPLICATE = 6,  /* proposal already finished, or VM already incoming */
	MIG_R_UNKNOWN = 7,    /* RENEW for no reservation (expired, restarted) */
	MIG_R_STARTING = 8,   /* target restarted less than a lease ago */
	MIG_R_BAD = 9,        /* malformed proposal (no id, zero size) */
	MIG_R_TIMEOUT = 10,   /* no answer within propose_timeout_ms */
	MIG_R_PEER_DOWN = 11, /* membership reports the peer dead or gone */
};
#define MIG_REASONS 12

/*
 * One message; the lead maps it to a protobuf message field for field.
 * Every string is NUL-terminated inside its array (a message that is not is
 * rejected). Fields a type does not use are zero/empty.
 */
struct mig_msg {
	enum mig_msg_type type;
	char from[MIG_NAME_MAX];        /* sender host name (all types) */
	char to[MIG_NAME_MAX];          /* receiver host name (all types) */
	char proposal_id[MIG_ID_MAX];   /* chosen by the source, unique (all types) */
	char vm_name[MIG_NAME_MAX];     /* PROPOSE: the VM's name (also echoed in ACCEPT/REFUSE) */
	char vm_uuid[MIG_UUID_MAX];     /* PROPOSE: the VM's UUID, how the target
	                                  recognises its arrival */
	uint32_t vcpus;                 /* PROPOSE: vCPUs to reserve */
	uint64_t memory_kib;            /* PROPOSE: memory to reserve */
	char cpu_model[MIG_CPU_MAX];    /* PROPOSE: the source host's CPU model */
	uint32_t lease_ms;              /* ACCEPT, RENEWED: lease granted from receipt */
	uint64_t stamp;                 /* PROPOSE, RENEW: the source's clock at
	                                  sending; echoed in ACCEPT, RENEWED and
	                                  REFUSE so the source dates its lease from
	                                  its own clock (conservatively) */
	enum mig_reason reason;         /* REFUSE: why */
	char reason_text[MIG_TEXT_MAX]; /* REFUSE: human text, with numbers */
};

struct mig_config {
	char name[MIG_NAME_MAX];     /* this host */
	char cpu_model[MIG_CPU_MAX]; /* this host's CPU model; "" accepts any */
	uint64_t seed;               /* PRNG: proposal ids, target choice */
	uint32_t max_incoming;       /* concurrent reservations held (default 2) */
	uint32_t max_outgoing;       /* concurrent outgoing negotiations (default 2) */
	uint32_t lease_ms;           /* reservation lease (default 30000) */
	uint32_t renew_interval_ms;  /* source RENEW period (default lease_ms / 3) */
	uint32_t lease_guard_ms;     /* source treats its lease as lost this long
	                                before it ends, so an abort has time to
	                                act (default lease_ms / 10) */
	uint32_t propose_timeout_ms; /* no answer -> unreachable (default 5000) */
	uint32_t propose_retry_ms;   /* PROPOSE resent this often (default 1000) */
	uint32_t startup_quiet_ms;   /* refuse PROPOSE this long after mig_new
	                                (default lease_ms; see mig.c) */
	uint32_t recent_ms;          /* finished proposal ids remembered (default
	                                2 * lease_ms) for idempotent answers */
	uint32_t choose_top;         /* mig_choose_target picks among this many
	                                best candidates (default 3) */
};

/* This host's capacity and allocation as placement.h computes them (the
 * caller's view from libvirt; name/alive/healthy are ignored here). */
struct mig_capacity {
	uint32_t cpus;
	double cpu_overcommit;
	uint64_t memory_kib;
	uint64_t memory_reserved_kib;
	double memory_overcommit;
	uint32_t vcpus_allocated;
	uint64_t memory_allocated_kib;
};

/* What the source proposes to move. */
struct mig_vm {
	const char *name;
	const char *uuid;
	uint32_t vcpus;
	uint64_t memory_kib;
};

enum mig_event_type {
	/* target role */
	MIG_EV_RESERVED = 0,   /* accepted a proposal: room reserved */
	MIG_EV_REFUSED_IN = 1, /* refused a proposal (reason) */
	MIG_EV_COMMITTED = 2,  /* COMMIT or arrival: count the VM in allocation now */
	MIG_EV_RELEASED = 3,   /* ABORT: reservation released */
	MIG_EV_EXPIRED = 4,    /* lease ran out: source vanished; released. The
	                          caller kills an incoming migration of this VM
	                          still in progress (its source cannot stop it) */
	/* source role */
	MIG_EV_GO = 5,         /* ACCEPTed: run the migration to `peer` now */
	MIG_EV_REFUSED = 6,    /* the target refused (or local timeout/peer down
	                          before ACCEPT): try the next candidate */
	MIG_EV_LEASE_LOST = 7, /* migrating, but the lease is gone or about to
	                          (no RENEWED in time, target forgot it, target
	                          down): abort the libvirt job, then report done */
	MIG_EV_FINISHED = 8,   /* outgoing finished: COMMIT (ok) or ABORT sent */
};
#define MIG_EVENT_TYPES 9

struct mig_event {
	enum mig_event_type type;
	char proposal_id[MIG_ID_MAX];
	char vm_name[MIG_NAME_MAX];
	char vm_uuid[MIG_UUID_MAX];
	char peer[MIG_NAME_MAX]; /* the other host */
	uint32_t vcpus;
	uint64_t memory_kib;
	enum mig_reason reason;      /* REFUSED_IN, REFUSED, LEASE_LOST */
	bool ok;                     /* FINISHED: committed (true) or aborted */
	char text[MIG_TEXT_MAX * 2]; /* the cause, for the log */
};

/* How the source's caller reports the libvirt outcome. */
enum mig_outcome {
	MIG_DONE_OK = 0,            /* migrated: COMMIT */
	MIG_DONE_FAILED = 1,        /* did not move (reconciled): ABORT */
	MIG_DONE_LANDED_ANYWAY = 2, /* libvirt said failed, but the VM runs on
	                                the target (reconciled): COMMIT */
};

/* Listings for `meshvisor migrations`. */
enum mig_out_state {
	MIG_OUT_PROPOSING = 0, /* PROPOSE sent, no answer yet */
	MIG_OUT_MIGRATING = 1, /* ACCEPTed; the caller migrates; RENEWing */
};

struct mig_in_info {
	char proposal_id[MIG_ID_MAX];
	char source[MIG_NAME_MAX];
	char vm_name[MIG_NAME_MAX];
	char vm_uuid[MIG_UUID_MAX];
	uint32_t vcpus;
	uint64_t memory_kib;
	uint64_t since;      /* reserved at */
	uint64_t last_renew; /* last PROPOSE/RENEW received */
	uint64_t expires_at;
};

struct mig_out_info {
	char proposal_id[MIG_ID_MAX];
	char target[MIG_NAME_MAX];
	char vm_name[MIG_NAME_MAX];
	char vm_uuid[MIG_UUID_MAX];
	uint32_t vcpus;
	uint64_t memory_kib;
	enum mig_out_state state;
	uint64_t since;       /* mig_propose at */
	uint64_t accepted_at; /* 0 while proposing */
	uint64_t lease_until; /* source's conservative view; 0 = lost/none */
	bool lease_lost;      /* LEASE_LOST was reported */
};

struct mig;

void mig_config_default(struct mig_config *cfg);
/* NULL on allocation failure or a bad config (empty name). A new core
 * knows no reservation: the agent that starts one first aborts the
 * outgoing and kills the incoming migration jobs it finds (a previous
 * life's), and the core refuses proposals for startup_quiet_ms. */
struct mig *mig_new(const struct mig_config *cfg, uint64_t now);
void mig_free(struct mig *m);

/* Target role inputs. */
void mig_set_capacity(struct mig *m, const struct mig_capacity *cap);
void mig_set_draining(struct mig *m, bool draining);
/* why != NULL: every proposal is refused (MIG_R_DRAINING, why as its text)
 * until mig_set_hold(m, NULL); reservations already held run on. The
 * failover glue holds incoming moves while a fence order for every HA VM
 * here waits for libvirt (a VM that landed meanwhile would be destroyed
 * with the others). */
void mig_set_hold(struct mig *m, const char *why);
/* The VM with this UUID now runs here (libvirt's event on the target):
 * releases its reservation, as COMMIT would (MIG_EV_COMMITTED). Returns
 * true if a reservation was released. */
bool mig_vm_arrived(struct mig *m, const char *uuid, uint64_t now);

/* Source role. Starts an outgoing negotiation of `vm` to `target` and
 * queues its PROPOSE; the proposal id is copied to id_out. Returns 0, or a
 * local refusal with its reason in *why (may be NULL) and nothing queued:
 * -EINVAL (bad VM, target is this host: MIG_R_SELF/MIG_R_BAD), -EBUSY
 * (max_outgoing reached: MIG_R_TOO_MANY), -EEXIST (this VM is already
 * being moved: MIG_R_DUPLICATE). */
int mig_propose(struct mig *m, const struct mig_vm *vm, const char *target, uint64_t now,
                char id_out[MIG_ID_MAX], enum mig_reason *why);
/* The caller's libvirt outcome for an outgoing migration that got GO (or
 * LEASE_LOST): sends COMMIT or ABORT and forgets it. -ENOENT if unknown
 * (already finished: ignored safely). */
int mig_migration_done(struct mig *m, const char *proposal_id, enum mig_outcome outcome,
                       uint64_t now);
/* The caller gives up on an outgoing negotiation (operator abort): ABORT is
 * sent, FINISHED(ok = false) queued. -ENOENT if unknown. The caller must
 * already have cancelled any libvirt job. */
int mig_cancel(struct mig *m, const char *proposal_id, uint64_t now);

/* Membership: the peer is dead or left. Outgoing negotiations to it end
 * (proposing) or lose their lease (migrating). Reservations it holds here
 * are NOT dropped: they expire by lease (see mig.c, "why leases"). */
void mig_peer_down(struct mig *m, const char *name, uint64_t now);

/* A message addressed to us. -EINVAL for malformed input or another
 * host's message (nothing changes); 0 otherwise, unknown ids included. */
int mig_handle_message(struct mig *m, const struct mig_msg *msg, uint64_t now);
int mig_handle_timer(struct mig *m, uint64_t now);
/* UINT64_MAX when nothing is pending. */
uint64_t mig_next_deadline(const struct mig *m);
bool mig_pop_output(struct mig *m, struct mig_msg *out);
bool mig_pop_event(struct mig *m, struct mig_event *out);

/* Listings and totals. */
size_t mig_in_count(const struct mig *m);
void mig_in_at(const struct mig *m, size_t i, struct mig_in_info *out);
size_t mig_out_count(const struct mig *m);
void mig_out_at(const struct mig *m, size_t i, struct mig_out_info *out);
void mig_reserved_total(const struct mig *m, uint32_t *vcpus, uint64_t *memory_kib);

const char *mig_reason_name(enum mig_reason r);
const char *mig_event_name(enum mig_event_type t);
const char *mig_msg_type_name(enum mig_msg_type t);

/*
 * Target choice for a source (pure apart from the core's PRNG): among
 * `hosts` (the gossiped view), skips this host, names in `exclude` (e.g.
 * targets that already refused), hosts not alive, unhealthy, draining or
 * where the VM does not fit within overcommit; ranks the rest by memory
 * left after placing it, then vCPUs left; picks uniformly among the best
 * cfg.choose_top so that many sources do not herd onto one host. Returns
 * the index, or -1 with each host's reason in `why` (may be NULL).
 */
int mig_choose_target(struct mig *m, const struct placement_host *hosts, size_t n,
                      const struct placement_request *req, const char *const *exclude,
                      size_t n_exclude, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
