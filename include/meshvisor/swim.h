/*
 * swim.h — cluster membership core: SWIM with the Lifeguard extensions.
 *
 * The core is a pure state machine ("sans I/O"). It never reads a clock,
 * draws system randomness, or touches a socket. The caller:
 *
 *   - passes every received message in:   swim_handle_message(s, msg, now)
 *   - calls it when its deadline passes:  swim_handle_timer(s, now)
 *   - drains what it wants sent:          while (swim_pop_output(s, &m)) send(m)
 *   - drains what happened (for logs):    while (swim_pop_event(s, &e)) log(e)
 *   - re-arms its one timer at:           swim_next_deadline(s)
 *
 * `now` is a monotonic time in milliseconds chosen by the caller (uv_now() in
 * the daemon, a virtual clock in the simulator). Randomness comes from a
 * deterministic PRNG seeded by swim_config.seed, so a simulated run replays
 * exactly from its seed.
 *
 * Ownership: struct swim owns its member table and output queue. A message
 * or event returned by swim_pop_output()/swim_pop_event() — including every
 * string and the updates array it points to — stays valid until the next
 * call of any swim_ function on the same core. Input messages are owned by
 * the caller and only read during swim_handle_message(). Strings in members
 * and messages are NUL-terminated, at most SWIM_NAME_MAX-1 / SWIM_ADDR_MAX-1
 * bytes; longer input is rejected with -EINVAL.
 *
 * Errors are negative errno values.
 */
#ifndef MESHVISOR_SWIM_H
#define MESHVISOR_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWIM_NAME_MAX 64 /* node name incl. NUL (certificate CN) */
#define SWIM_ADDR_MAX 64 /* "host:port" incl. NUL */

/* Bounds on incarnations (issue 13: a host speaks only for itself).
 * SWIM_INCARNATION_MAX: an update (a "claim") above it is refused, and our
 * own incarnation never passes it (a refutation stops there instead of
 * wrapping to 0, where it could never win again). It is far below 2^64 and
 * far above anything real: incarnations grow by one per restart or
 * refutation. SWIM_INCARNATION_JUMP_MAX: a claim about us may raise our own
 * incarnation by at most this much (we must refute a SUSPECT/DEAD at our
 * incarnation or above, and a restart that lost its data dir must catch up
 * with what the cluster remembers), and an ALIVE about another member the
 * incarnation we hold for it (unless 0), so a forger needs 2^42 messages,
 * not one, to drive anyone to the ceiling. */
#define SWIM_INCARNATION_MAX (UINT64_C(1) << 62)
#define SWIM_INCARNATION_JUMP_MAX (UINT64_C(1) << 20)
/* At most one SWIM_EV_CLAIM_REFUSED per this many ms (the rest counted). */
#define SWIM_REFUSED_EVENT_MS 10000
/* Largest ALIVE proof carried (a DER ECDSA P-256 signature is <= 72 bytes,
 * an RSA-4096 one 512), and the bytes of updates (proofs included,
 * estimated as strings + proof + 24) one message piggybacks at most while
 * proofs are on (at least one update), so that a PING with its gossip
 * stays within one 1200-byte datagram. */
#define SWIM_PROOF_MAX 512
#define SWIM_PIGGYBACK_BYTES 900
/* A LEFT is signed as the claim (name, incarnation | SWIM_LEFT_CLAIM), a
 * number no ALIVE can name (incarnations stop at SWIM_INCARNATION_MAX), so
 * neither proof stands for the other. Its proof must be checkable by a
 * member that never learned the leaver's key (a host may leave a second
 * after it joined): the daemon's carries the leaver's certificate, so it
 * may be up to SWIM_LEFT_PROOF_MAX bytes (mv.MemberUpdate.left_proof). */
#define SWIM_LEFT_CLAIM (UINT64_C(1) << 63)
#define SWIM_LEFT_PROOF_MAX 4096

enum swim_state {
	SWIM_ALIVE = 0,
	SWIM_SUSPECT = 1,
	SWIM_DEAD = 2,
	SWIM_LEFT = 3,
};

enum swim_msg_type {
	SWIM_MSG_PING = 0,
	SWIM_MSG_ACK = 1,
	SWIM_MSG_PING_REQ = 2,
	SWIM_MSG_NACK = 3,
	SWIM_MSG_PUSH_PULL = 4,
	SWIM_MSG_PUSH_PULL_REPLY = 5,
};

/* One member's state as gossiped. Mirrors mv.MemberUpdate on the wire. */
struct swim_update {
	const char *name;
	const char *addr;
	uint64_t incarnation;
	enum swim_state state;
	const char *origin; /* who asserted SUSPECT/DEAD/LEFT; "" otherwise */
	/* The member's own proof that it lives at this incarnation (its
	 * signature of (name, incarnation): swim_config.alive_sign), relayed
	 * unchanged; NULL/0 when none. At most SWIM_PROOF_MAX bytes. In a
	 * LEFT: its proof of leaving, (name, incarnation | SWIM_LEFT_CLAIM),
	 * at most SWIM_LEFT_PROOF_MAX bytes. */
	const uint8_t *proof;
	size_t proof_len;
};

/* One protocol message. Mirrors mv.SwimMessage (+ Envelope.from). */
struct swim_msg {
	enum swim_msg_type type;
	const char *from;      /* sender's name (peer port: equals its cert CN) */
	const char *from_addr; /* sender's advertised address */
	const char *to;        /* receiver's name; "" when only to_addr is known */
	const char *to_addr;   /* where to send it */
	uint64_t seq;
	const char *target; /* PING_REQ: whom to probe; relayed ACK/NACK */
	const char *target_addr;
	bool join; /* PUSH_PULL sent by a joining node */
	/* NACK: the helper's own probe of the target was refused (RST / ICMP
	 * port unreachable: its host is up, its agent is not). Counted only
	 * from a helper we asked, for the probe we asked about. */
	bool refused;
	const struct swim_update *updates;
	size_t n_updates;
	/* Digest push-pull (anti-entropy by buckets; see swim.c, PUSH-PULL BY
	 * DIGEST). PUSH_PULL: the sender's table as n_digest bucket hashes
	 * (a power of two, at most SWIM_DIGEST_MAX; 0: a full push-pull whose
	 * updates are the whole table, as a join or an older peer sends).
	 * PUSH_PULL_REPLY: `want` lists the buckets (of `buckets`) whose
	 * members the sender asks for; the updates are its own members of
	 * those buckets. */
	const uint64_t *digest;
	size_t n_digest;
	const uint32_t *want;
	size_t n_want;
	uint32_t buckets;
};

/* Most buckets a digest may have (8 KiB of hashes). We send at most
 * SWIM_DIGEST_MAX / 4 (a bucket per 32 members); a larger or malformed
 * digest is rejected (-EINVAL), so that a peer cannot make us scan or
 * answer more than that. */
#define SWIM_DIGEST_MAX 1024
/* Bucket of a member and hash of its record, the contract between peers:
 *   bucket = name_hash(name) & (buckets - 1)
 *   entry  = mix64(((uint64_t)name_hash(name) << 32 | name_hash(addr)) ^
 *                  mix64(incarnation * 4 + state)), or 0 when the state is
 *            DEAD or LEFT (tombstones, which the merge does not always copy)
 *   bucket hash = XOR of the entries of its members (0 when empty)
 * name_hash: FNV-1a 32 then murmur3's finaliser; mix64: splitmix64's
 * finaliser. Exposed for tests and other implementations. */
uint64_t swim_digest_entry(const char *name, const char *addr, uint64_t incarnation,
                           enum swim_state state);
uint32_t swim_digest_bucket(const char *name, uint32_t buckets);

/*
 * A string table (names, addresses, causes: interned, reference counted)
 * that several cores can share, so that a process running many cores (the
 * simulator) holds each string once instead of once per core. Optional: a
 * core whose swim_config.strtab is NULL keeps a private table. A shared
 * table is single-threaded (every core using it must be called from one
 * thread, one call at a time) and must outlive every core that uses it;
 * swim_free() gives back the core's references. Sharing changes nothing in
 * a core's behaviour, but a string returned by any swim_ function (member
 * listings) is then valid only until the next swim_ call on *any* core
 * sharing the table, not only on the same core.
 */
struct swim_strtab;

struct swim_strtab *swim_strtab_new(void);    /* NULL when out of memory */
void swim_strtab_free(struct swim_strtab *t); /* every core using it is freed */
/* Distinct strings held (by all the cores together), and their bytes. */
size_t swim_strtab_count(const struct swim_strtab *t);
size_t swim_strtab_bytes(const struct swim_strtab *t);

/*
 * Protocol timings and limits. swim_config_default() fills the defaults the
 * daemon ships with; every field is overridable from the agent config.
 */
struct swim_config {
	char name[SWIM_NAME_MAX]; /* this node */
	char addr[SWIM_ADDR_MAX]; /* this node's advertised peer address */
	uint64_t seed;            /* PRNG seed (deterministic replay) */

	uint32_t probe_interval_ms; /* base protocol period (default 1000) */
	uint32_t probe_timeout_ms;  /* direct-probe ack deadline (default 500) */
	uint32_t indirect_probes;   /* k peers asked to ping-req (default 3) */
	uint32_t retransmit_mult;   /* λ: retransmit limit = λ·ceil(log10(N+1)) (default 4) */
	uint32_t suspicion_min_mult; /* Lifeguard: min = mult·max(1,log10 N)·interval (default 4) */
	uint32_t suspicion_max_mult;    /* max = max_mult·min (default 6) */
	uint32_t awareness_max;         /* Lifeguard local-health cap (default 8) */
	uint32_t push_pull_interval_ms; /* base, scaled up with cluster size (default 30000) */
	uint32_t gossip_interval_ms;    /* extra gossip rounds between probes (default 200) */
	uint32_t gossip_fanout;         /* members per gossip round (default 3) */
	uint32_t join_retry_ms;         /* initial join retry, doubled up to 30 s (default 1000) */
	uint32_t reap_ms;               /* forget DEAD/LEFT members after (default 24 h) */
	uint32_t max_updates_per_msg;   /* piggyback budget (default 16) */
	struct swim_strtab *strtab;     /* shared string table; NULL: private (default) */
	/* Signed ALIVE claims (swim.c, A HOST SPEAKS ONLY FOR ITSELF); both
	 * NULL (the default): none made, none checked, as before.
	 * alive_sign: writes our proof of (name, incarnation) into out (cap =
	 * SWIM_PROOF_MAX bytes) and returns its length, or < 0 (then our ALIVE
	 * goes unsigned). Called once per change of our incarnation.
	 * alive_verify: 0 if proof proves that member `name` itself claimed
	 * `incarnation`, -ENOKEY if it cannot tell yet (no key of `name`
	 * known), another < 0 otherwise. An ALIVE that raises the incarnation
	 * we hold of a known member (ourselves included) is taken only if it
	 * verifies; refused and counted otherwise (reported by
	 * SWIM_EV_CLAIM_REFUSED unless -ENOKEY).
	 * A LEFT goes through the same two callbacks with incarnation |
	 * SWIM_LEFT_CLAIM (cap SWIM_LEFT_PROOF_MAX): alive_sign once per
	 * leave (and re-assertion), alive_verify for a LEFT relayed by anyone
	 * but the member. Its proof must verify without any key learned
	 * before (the daemon's carries the certificate). A relayed LEFT whose
	 * proof does not verify is refused as a LEFT and taken as a report of
	 * a death to check (a suspicion and our own probe). A relayed LEFT
	 * without a proof is handed over too (proof NULL, len 0): 0 if the
	 * glue knows its member for one that signs no LEFTs (an agent older
	 * than proofs of leaving, by its own signed word), which takes it as
	 * before. */
	int (*alive_sign)(void *arg, const char *name, uint64_t incarnation, uint8_t *out,
	                  size_t cap);
	int (*alive_verify)(void *arg, const char *name, uint64_t incarnation, const uint8_t *proof,
	                    size_t len);
	void *claim_arg;
};

enum swim_event_type {
	SWIM_EV_MEMBER_JOINED = 0,       /* first heard of, alive */
	SWIM_EV_MEMBER_SUSPECT = 1,      /* suspicion started (cause: probe failed, or gossip) */
	SWIM_EV_MEMBER_ALIVE = 2,        /* suspicion refuted / came back with new incarnation */
	SWIM_EV_MEMBER_DEAD = 3,         /* suspicion timed out (confirmations listed) or gossip */
	SWIM_EV_MEMBER_LEFT = 4,         /* graceful leave */
	SWIM_EV_MEMBER_REAPED = 5,       /* forgotten after reap_ms */
	SWIM_EV_MEMBER_ADDR_CHANGED = 6, /* same name, new address (restart elsewhere) */
	SWIM_EV_SELF_REFUTED = 7,        /* someone suspected us; incarnation bumped */
	SWIM_EV_JOINED_CLUSTER = 8,      /* a join push-pull got its reply */
	SWIM_EV_JOIN_FAILED = 9,         /* a join attempt timed out; will retry */
	SWIM_EV_LOCAL_HEALTH = 10,       /* our Lifeguard awareness score changed */
	/* An update was refused (out of bounds, or raising another member's
	 * incarnation: see swim.c, A HOST SPEAKS ONLY FOR ITSELF). name and
	 * incarnation are the claim's; cause says why, who sent it and how
	 * many were refused without an event since the last one: at most one
	 * such event per SWIM_REFUSED_EVENT_MS, the rest are only counted
	 * (swim_claims_refused). */
	SWIM_EV_CLAIM_REFUSED = 11,
};

struct swim_event {
	enum swim_event_type type;
	const char *name; /* member concerned ("" for cluster-level events) */
	const char *addr;
	uint64_t incarnation;
	enum swim_state state;  /* member's new state */
	const char *cause;      /* human text, e.g. "probe failed (direct+3 indirect)",
	                          "suspicion timeout, confirmed by n2,n4",
	                          "refuted by incarnation 7", "gossip from n3" */
	uint32_t confirmations; /* independent suspicions seen (DEAD/SUSPECT) */
	uint32_t local_health;  /* SWIM_EV_LOCAL_HEALTH: new score */
};

/* A read-only view of one member, for listings and tests. */
struct swim_member_info {
	const char *name;
	const char *addr;
	enum swim_state state;
	uint64_t incarnation;
	uint64_t since_ms; /* `now` of the last state change */
	const char *cause; /* cause of the last change */
	bool is_self;
};

struct swim;

void swim_config_default(struct swim_config *cfg);

/* Creates a core whose only member is itself (ALIVE, incarnation 0 unless
 * initial_incarnation is larger). Returns NULL on bad config (an
 * initial_incarnation above SWIM_INCARNATION_MAX included) or no memory. */
struct swim *swim_new(const struct swim_config *cfg, uint64_t initial_incarnation, uint64_t now);
void swim_free(struct swim *s);

/* Start joining through seed addresses ("host:port"). Sends a join
 * PUSH_PULL to each and retries with backoff until one answers. Seeds equal
 * to our own address are ignored. Can be called again (operator "join"). */
int swim_join(struct swim *s, const char *const *seed_addrs, size_t n, uint64_t now);

/* Graceful leave: mark self LEFT (incarnation+1) and gossip it. The caller
 * keeps the core running until swim_leave_done() (the LEFT update has been
 * sent to enough peers) or its own timeout, then stops. */
int swim_leave(struct swim *s, uint64_t now);
bool swim_leave_done(const struct swim *s);

/* Feed one received message. Returns 0, or -EINVAL for a malformed message
 * (nothing changed). Messages addressed to another name are ignored (0). */
int swim_handle_message(struct swim *s, const struct swim_msg *m, uint64_t now);

/* The transport saw member `name`'s kernel refuse us (TCP RST, ICMP port
 * unreachable: its host is up, its agent is not). A strong hint, not proof
 * (a stale address, an agent restarting): an ALIVE member becomes SUSPECT
 * at once (cause "connection refused") and is probed at once through k
 * helpers; a suspicion that a helper confirms with a refused NACK goes DEAD
 * after SWIM_REFUSED_DEAD_MS, not the silence timeout. On a helper, a
 * PING_REQ relay to that member pending here turns at once into a NACK with
 * refused = true. Repeated calls are cheap (the glue may call it for every
 * refused send). 0; -EINVAL for a bad name; -ENOENT for a member we do not
 * know (nothing changed). */
int swim_peer_refused(struct swim *s, const char *name, uint64_t now);

/* Run every timer that is due at `now`. */
int swim_handle_timer(struct swim *s, uint64_t now);

/* Absolute time (ms) of the next timer; UINT64_MAX if none. */
uint64_t swim_next_deadline(const struct swim *s);

bool swim_pop_output(struct swim *s, struct swim_msg *out);
bool swim_pop_event(struct swim *s, struct swim_event *out);

/* Lifeguard local health (awareness) score, 0 = healthy. */
uint32_t swim_local_health(const struct swim *s);
/* An outside sign that we are slow (the glue saw our event loop stall):
 * raises the awareness score by delta (capped at awareness_max), so our
 * probes and timeouts stretch before we suspect others. Successful probes
 * lower it again, one by one. Emits SWIM_EV_LOCAL_HEALTH with `why`. */
void swim_local_health_add(struct swim *s, uint32_t delta, const char *why);
uint64_t swim_incarnation(const struct swim *s);
/* Updates refused so far (SWIM_EV_CLAIM_REFUSED), every one counted. */
uint64_t swim_claims_refused(const struct swim *s);
/* Proofs handed to alive_verify so far: a sender's failed ones are
 * limited per second (swim.c, A HOST SPEAKS ONLY FOR ITSELF). */
uint64_t swim_proofs_checked(const struct swim *s);
/* Raises our own incarnation to at least `at_least` (at least by one) and
 * gossips it, as a refutation does: the failover core ends an incarnation
 * after a self-fence, or to recover HA VMs stopped here. Emits
 * SWIM_EV_SELF_REFUTED with `cause`. 0, or -EINVAL. */
int swim_raise_incarnation(struct swim *s, uint64_t at_least, const char *cause, uint64_t now);
const struct swim_config *swim_get_config(const struct swim *s);

/* Members, including self. Index order is stable between mutating calls
 * only. swim_member_find returns false if the name is unknown (or reaped). */
size_t swim_member_count(const struct swim *s);
void swim_member_at(const struct swim *s, size_t i, struct swim_member_info *out);
bool swim_member_find(const struct swim *s, const char *name, struct swim_member_info *out);

/* A counter that changes whenever the member table does (a member added,
 * removed, or its state, incarnation or address changed): the simulator
 * re-checks what it waits for only when some core's counter moved. */
uint64_t swim_view_version(const struct swim *s);

/* Number of members in each state (self counted as ALIVE/LEFT). */
void swim_state_counts(const struct swim *s, uint32_t counts[4]);

const char *swim_state_name(enum swim_state st); /* "alive", "suspect", ... */
const char *swim_msg_type_name(enum swim_msg_type t);

/* Lifeguard suspicion timeout arithmetic, exposed for unit tests:
 * timeout = max(min, max - (max - min) * log(c+1) / log(k+1)), where c is the
 * number of independent confirmations so far and k the number expected. */
uint64_t swim_suspicion_timeout_ms(uint64_t min_ms, uint64_t max_ms, uint32_t confirmations,
                                   uint32_t expected);

#ifdef __cplusplus
}
#endif
#endif
