/*
 * nstate.h — node-state gossip core: every host's state record, spread to
 * every node by delta anti-entropy, with no I/O.
 *
 * What it spreads: one opaque record per host (in the daemon, a packed
 * mv.NodeState: capacity, health, labels, VM inventory), versioned by
 * (incarnation, version). A record replaces another of the same host only
 * if its (incarnation, version) is larger: a restarted host's new
 * incarnation wins over anything its previous life published, and an older
 * version never overwrites a newer one, whatever order messages arrive in.
 *
 * How (details in agent/core/nstate.c):
 *   - every sync interval, send SYNC{hash of our version vector} to one
 *     random live peer; equal hashes end there (idle cost: one small
 *     message per node per interval, whatever N);
 *   - a differing hash starts a descent of a fixed tree of hashes (records
 *     split into NSTATE_TREE_LEAVES buckets by a hash of the host name,
 *     NSTATE_TREE_FANOUT children per node): each TREE message carries the
 *     child hashes of the nodes that differed, and only differing subtrees
 *     are listed in a DIGEST{versions of the records in them} (a subtree
 *     as soon as it holds few records, a bucket at the latest); the other
 *     side answers with DELTA{records newer than that digest, plus the
 *     versions it wants back}. The cost follows the number of differences,
 *     not N. An older peer (SYNC without `tree`) gets the whole DIGEST;
 *   - a local change marked urgent is PUSHed at once to a few random peers,
 *     which relay it a bounded number of hops (rumor mongering), so a
 *     capacity change is everywhere within a few network round trips;
 *     anti-entropy repairs whatever the rumor missed.
 *
 * Driving it is the same as the membership core (swim.h): pass messages and
 * timer expiries in with `now` (ms), drain outputs and events, re-arm the
 * timer at nstate_next_deadline(). Membership tells it which peers are live.
 *
 * Ownership: struct nstate owns copies of every record. Popped messages,
 * events and record views stay valid until the next nstate_ call on the
 * same core. Input messages belong to the caller.
 */
#ifndef MESHVISOR_NSTATE_H
#define MESHVISOR_NSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NSTATE_NAME_MAX 64
#define NSTATE_ADDR_MAX 64
#define NSTATE_RECORD_MAX (1u << 20) /* one host's record: 1 MiB */

enum nstate_msg_type {
	NSTATE_SYNC = 0,
	NSTATE_DIGEST = 1,
	NSTATE_DELTA = 2,
	NSTATE_PUSH = 3,
	NSTATE_TREE = 4,
};

/* The bucket tree both sides of an exchange must agree on. A SYNC carries
 * the version the sender speaks (`tree`); 0 (an older peer) or another
 * version is answered with a whole DIGEST, as before the tree existed.
 * Leaf of a host: the top 12 bits of a mixed 64-bit hash of its name; a
 * node at depth d (0 = the root, NSTATE_TREE_DEPTH = the leaves) has index
 * j < 16^d and children j * 16 .. j * 16 + 15. */
#define NSTATE_TREE_V1 1
#define NSTATE_TREE_FANOUT 16
#define NSTATE_TREE_DEPTH 3
#define NSTATE_TREE_LEAVES 4096 /* FANOUT ^ DEPTH */

/* Ceiling of a record's incarnation and version (issue 13), far below
 * wrap: a message listing a record or version above it is refused whole
 * (nstate_msg_check), and nstate_set_local refuses to publish one. The
 * incarnation is the host's SWIM incarnation (SWIM_INCARNATION_MAX is the
 * same), the version counts publications within it. */
#define NSTATE_NUMBER_MAX (UINT64_C(1) << 62)

struct nstate_version {
	const char *name;
	uint64_t incarnation;
	uint64_t version;
};

struct nstate_record {
	const char *name;
	uint64_t incarnation;
	uint64_t version;
	const uint8_t *data;
	size_t len;
	/* The owner's proof that it published this (issue 13: a signature
	 * with its node key, made by nstate_config.sign on the owner and
	 * checked by nstate_config.verify on every receiver); opaque to the
	 * core, carried unchanged by relays. At most NSTATE_PROOF_MAX bytes;
	 * none (0) from a core without a signer or an older peer. */
	const uint8_t *proof;
	size_t proof_len;
};

#define NSTATE_PROOF_MAX 4096

/* Mirrors mv.StateMessage (+ Envelope.from). */
struct nstate_msg {
	enum nstate_msg_type type;
	const char *from;
	const char *to;      /* receiver's name */
	const char *to_addr; /* where to send it (peer address) */
	uint64_t hash;
	const struct nstate_version *versions;
	size_t n_versions;
	const struct nstate_record *records;
	size_t n_records;
	uint32_t hops;
	bool reply;
	/* SYNC: the tree version the sender speaks (0: none, an older peer). */
	uint32_t tree;
	/* TREE: depth of `nodes` (0 .. NSTATE_TREE_DEPTH - 1). DIGEST with
	 * nodes: their depth (1 .. NSTATE_TREE_DEPTH). */
	uint32_t level;
	/* TREE: the nodes expanded, strictly increasing, each < 16^level, at
	 * most 16^level of them. DIGEST: the nodes whose records it lists (all
	 * the leaves below them), same rules (none: the whole vector). */
	const uint32_t *nodes;
	size_t n_nodes;
	/* TREE: NSTATE_TREE_FANOUT child hashes per node, in `nodes` order. */
	const uint64_t *hashes;
	size_t n_hashes;
};

struct nstate_config {
	char name[NSTATE_NAME_MAX];
	uint64_t seed;
	uint32_t sync_interval_ms; /* anti-entropy round (default 1000) */
	uint32_t push_fanout;      /* peers per push (default 3) */
	uint32_t push_hops;        /* relays of a push; 0 = derive from N (default 0) */
	uint32_t max_msg_bytes;    /* split DELTAs above this (default 512 KiB) */
	/* Signed records (issue 13; both NULL by default: no proofs made or
	 * checked, as in the simulator). sign: writes the proof of our own
	 * record r (r->proof unset) into out (cap bytes), returns its length
	 * or a negative errno (nstate_set_local then fails with it). verify:
	 * whether r->proof proves that r->name published r; called for each
	 * record of another host that would be new or newer in our view, and
	 * a record it refuses is dropped (counted: nstate_refused; relayed to
	 * nobody). Both are called synchronously and must not call back into
	 * the core. */
	int (*sign)(void *ctx, const struct nstate_record *r, uint8_t *out, size_t cap);
	bool (*verify)(void *ctx, const struct nstate_record *r);
	void *proof_ctx;
};

/* A record changed in our view (new host, or a newer version). */
struct nstate_event {
	const char *name;
	uint64_t incarnation;
	uint64_t version;
	bool is_new_host;
};

struct nstate;

void nstate_config_default(struct nstate_config *cfg);
struct nstate *nstate_new(const struct nstate_config *cfg, uint64_t now);
void nstate_free(struct nstate *ns);

/* Membership: a peer we may gossip with (alive), or not any more
 * (suspect/dead/left: its record is kept), or forgotten (record dropped). */
int nstate_peer_up(struct nstate *ns, const char *name, const char *addr);
void nstate_peer_down(struct nstate *ns, const char *name);
void nstate_forget(struct nstate *ns, const char *name);

/* Publishes our own record. (incarnation, version) must be larger than the
 * last one we published and at most NSTATE_NUMBER_MAX each (-EINVAL
 * otherwise, nothing changed). `urgent`
 * pushes it at once; otherwise anti-entropy carries it. */
int nstate_set_local(struct nstate *ns, uint64_t incarnation, uint64_t version, const uint8_t *data,
                     size_t len, bool urgent, uint64_t now);

/* Checks a message's shape without a core: type, names, record sizes, and
 * the tree fields above (bounded counts, in range, in order). 0, or
 * -EINVAL with *why a static reason. nstate_handle_message applies it; the
 * codec calls it so that a malformed message is refused with its reason. */
int nstate_msg_check(const struct nstate_msg *m, const char **why);
int nstate_handle_message(struct nstate *ns, const struct nstate_msg *m, uint64_t now);
int nstate_handle_timer(struct nstate *ns, uint64_t now);
uint64_t nstate_next_deadline(const struct nstate *ns);
bool nstate_pop_output(struct nstate *ns, struct nstate_msg *out);
bool nstate_pop_event(struct nstate *ns, struct nstate_event *out);

size_t nstate_count(const struct nstate *ns);
void nstate_record_at(const struct nstate *ns, size_t i, struct nstate_record *out);
bool nstate_find(const struct nstate *ns, const char *name, struct nstate_record *out);
/* Proofs handed to nstate_config.verify so far (records without a proof,
 * and those refused unchecked past the failed-proof budget, not counted). */
uint64_t nstate_proofs_checked(const struct nstate *ns);
/* Records of others that nstate_config.verify refused, so far. */
uint64_t nstate_refused(const struct nstate *ns);
/* Hash of the version vector (what SYNC carries). */
uint64_t nstate_hash(const struct nstate *ns);
/* When a value that moves all the time (a host's load) is worth
 * publishing: only once it has left the band around the value last
 * published, [p - step, p + step] with step = max(abs_step, rel_step * |p|).
 * The band is centred on what was published, not on fixed grid lines, so a
 * value that hovers anywhere, even across a round number, publishes
 * nothing until its swing exceeds the step (hysteresis); a steady drift
 * publishes once per step. Returns true when `current` is outside it (a
 * NaN is never published). */
struct nstate_threshold {
	double abs_step; /* >= 0 */
	double rel_step; /* fraction of the published value, >= 0 */
};
bool nstate_threshold_crossed(const struct nstate_threshold *t, double published, double current);

/* Hash of tree node (depth, index) (depth 0: nstate_hash), 0 outside the
 * tree; and the leaf a host name falls in. */
uint64_t nstate_tree_hash(const struct nstate *ns, uint32_t depth, uint32_t index);
uint32_t nstate_leaf_of(const char *name);

/* Live peers we gossip with (those passed to nstate_peer_up, not down). */
size_t nstate_peer_count(const struct nstate *ns);
/* The largest (incarnation, version) of our own record that a peer has
 * sent us ((0, 0) if none). Copies of our own record are never stored, but
 * one above what we publish means a previous life of this host published
 * it: the daemon should restart with an incarnation above this one. */
void nstate_self_seen(const struct nstate *ns, uint64_t *incarnation, uint64_t *version);

#ifdef __cplusplus
}
#endif
#endif
