/*
 * nstate.c — the node-state core (prefix nstate_): gossip of one opaque,
 * versioned record per host, spread to every node, as a pure state machine (contract in
 * meshvisor/nstate.h).
 *
 * THE ALGORITHM
 *
 * What is replicated. Every host publishes one record about itself (in the
 * daemon a packed mv.NodeState: capacity, health, labels, VM inventory).
 * Only the host itself writes its record, so there are no concurrent
 * writers to reconcile: the replicated object is a map name -> record in
 * which each entry has a single owner, and the only question for a
 * receiver is "is this copy newer than mine?". Copies are ordered by
 * (incarnation, version), compared lexicographically. The incarnation grows
 * on every agent start, the version on every change within one life, so
 *   - an older copy never overwrites a newer one, whatever the order in
 *     which messages arrive (reordering, duplicates, a slow relay);
 *   - a restarted host's first record (incarnation + 1, version 0) wins
 *     over anything its previous life published, however high its version.
 * Merging is therefore a join on a per-entry max: commutative, associative,
 * idempotent — every node that has seen the same set of copies holds the
 * same map, which is what lets the two dissemination paths below be sloppy
 * (lose, duplicate, reorder) and still converge.
 *
 * Two paths, as in Demers et al. "Epidemic algorithms for replicated
 * database maintenance" (1987), with Scuttlebutt-style digests (van
 * Renesse et al. 2008) for the anti-entropy half:
 *
 * 1. Anti-entropy (the path that guarantees convergence). Every
 *    sync_interval_ms (random phase per node) we send SYNC{hash, tree = 1}
 *    to one live peer: STICKY PARTNERS, NS_SYNC_PARTNERS (3) random peers
 *    taken in turn, one of them redrawn every NS_SYNC_ROTATE (20) syncs,
 *    so each is kept about a minute. A fresh random peer every second
 *    touched ~N peers a minute: at N = 100 real agents every agent kept
 *    ~74 TLS connections and reopened ~0.4 a second as they idled out;
 *    now it talks to 3 (and those that chose it) and still mixes, as the
 *    partner graph is redrawn continuously. `hash` summarises our whole version vector
 *    in 64 bits: the wrapping sum over records of a mixed hash of (name,
 *    incarnation, version). A sum is order-independent, so two nodes with
 *    the same versions have the same hash however they got there, and it
 *    is updated in O(1) when one record changes (subtract the old term, add
 *    the new). An idle cluster thus costs one ~30-byte SYNC per node per
 *    interval, whatever N.
 *
 *    The bucket tree. When the hashes differ, what must be found is which
 *    records differ, at a cost that follows their number, not N (a whole
 *    version digest is ~13 bytes per host: 130 KB at 10,000 hosts, paid on
 *    every sync of a cluster in which anything at all is changing). Every
 *    record falls in one of NSTATE_TREE_LEAVES = 4096 buckets (the top 12
 *    bits of a mixed 64-bit hash of its name, the same on every node), and
 *    the buckets are the leaves of a fixed tree of fanout 16 and depth 3:
 *    each node's hash is the same wrapping sum, over the records below it,
 *    so the root is `hash` and every node is kept up to date in O(depth)
 *    per record change (ns_tree_add). The exchange descends it:
 *
 *        A                               B
 *        SYNC{hash_A, tree = 1}  ->
 *                                <-      TREE{level 0: B's 16 child hashes}
 *        TREE{level 1: for each differing child, A's 16 hashes below it} ->
 *                                <-      TREE{level 2: the same, one down}
 *        DIGEST{level 3, nodes = the differing buckets,
 *               versions = A's records in them} ->
 *                                <-      DELTA{records B holds newer than
 *                                              that digest or A lacks there,
 *                                              versions = what B wants back,
 *                                              reply = true}
 *        DELTA{the records B asked for} ->
 *
 *    Each side compares the hashes it receives with its own and expands
 *    only the children that differ, so equal subtrees cost nothing past
 *    their one hash. Expanding a node costs 16 hashes (~136 bytes), while
 *    listing its records costs ~16 bytes each, so a differing subtree of
 *    at most NS_DIGEST_DIRECT (8) records is listed at once (DIGEST{level
 *    = its depth, nodes = such subtrees}) instead of expanded, and a
 *    vector of at most 8 records is answered with the whole DIGEST without
 *    a descent: the tree goes only as deep as N makes worthwhile (depth 2
 *    below N ~ 2,000, the leaves above). With d differing records the
 *    exchange costs about 2..3 * 136 bytes per differing path (at most
 *    256 nodes and 4096 hashes, 32 KiB, per level), ~13 bytes per record
 *    in the differing subtrees, and the records themselves; equal subtrees
 *    never cost a version or a record. When nearly every subtree differs
 *    (d in the hundreds at N = 1,000) the cost approaches the whole
 *    digest's, never far above it. The descent takes two or three more
 *    one-way delays than a whole digest did, milliseconds against a
 *    one-second round. Whichever side stops the descent sends
 *    the DIGEST; the DELTA rules are the same either way, and after the
 *    exchange the two hold the same map (barring changes meanwhile). A
 *    TREE, DIGEST or DELTA larger than max_msg_bytes is split (TREEs by
 *    nodes, DIGESTs by groups of buckets, DELTAs by records; a single
 *    record or bucket larger than the limit goes alone) and the receiver
 *    answers each part on its own. A descent that meets a change midway
 *    (hashes that moved between messages) just ends; the next round
 *    repairs it.
 *
 *    An older peer. An agent older than the tree sends SYNC without
 *    `tree` and answers a SYNC with the whole DIGEST{every version} (an
 *    older agent ignores the unknown field); we answer its SYNC with the
 *    whole DIGEST, and a DIGEST listing no buckets covers everything, so
 *    mixed clusters converge, at the old cost between old and new.
 *
 * 2. Prompt push (rumor mongering, for latency). nstate_set_local(...,
 *    urgent = true) sends PUSH{record, hops = H} to push_fanout random live
 *    peers. A receiver for which the record is new or newer stores it and,
 *    while hops > 0, relays PUSH{record, hops - 1} to push_fanout random
 *    live peers other than the sender and the record's owner. A receiver
 *    that already had it (a duplicate, or older) relays nothing: the rumor
 *    dies out by itself once most nodes have it ("feedback, blind" in
 *    Demers' terms, with the counter replaced by "relay once"). H defaults
 *    to ceil(log_fanout(N)) + 1: fanout^H exceeds N, so the hop limit only
 *    cuts relays that would reach nodes that already have it; it bounds
 *    the damage a hostile or buggy hops value could do. Because every
 *    informed node relays exactly once, about fanout * N PUSHes are sent
 *    per change and a node is missed with probability ~e^-fanout (5% at
 *    fanout 3); those few learn it from anti-entropy within about one
 *    sync interval. A push costs fanout * N * record-size bytes cluster
 *    wide, which is why only changes past a threshold are urgent.
 *
 * Peers. Membership (SWIM) tells us who is live: nstate_peer_up / _down /
 * nstate_forget. We only send to live peers and never to ourselves. A down
 * peer's record is kept, since failover planning needs the dead host's
 * last known state (its VMs); forget drops it, as SWIM's reaper does.
 * Records are taken from anyone who relays them, but only with their
 * owner's word (A HOST SPEAKS ONLY FOR ITSELF, below); a reply goes only
 * to a live peer, since only membership knows where a peer can be
 * reached.
 *
 * A HOST SPEAKS ONLY FOR ITSELF (issue 13). The transport only says that
 * the sender holds some node certificate of the cluster; a rogue one
 * (signed by the CA, never deployed) could push a record for n1 at
 * version 2^40 and every node showed n1 with its values until n1's next
 * incarnation. So every record carries its owner's proof: the owner makes
 * it when it publishes (nstate_config.sign, in set_local: once per
 * change, not per message), it is stored with the record and relayed
 * byte for byte, and a receiver takes a record of another host that would
 * be new or newer in its view only if nstate_config.verify accepts the
 * proof (the daemon: an ECDSA signature by the key of the owner's node
 * certificate, which the proof carries and which must chain to the
 * cluster CA with CN = the record's name: agent/net/tls_claim.h). A
 * refused record is counted (nstate_refused), is no news (a PUSH of it is
 * relayed to nobody) and changes nothing; the owner's own copies keep
 * spreading. What the core decides is only when to ask: once per record
 * that would change our view, never for a duplicate or an older copy, so
 * a peer cannot make us verify what we already hold. Nor can it make us
 * spend the loop on proofs that fail (each costs a signature check, more
 * with a certificate we have not checked yet: ~0.3 ms): after the first
 * failed proof in a message the rest of that message is refused unchecked,
 * and each sender gets NS_PROOF_FAILS_PER_S failed proofs per second, after
 * which its records are refused unchecked until the next second. A record
 * with no proof at all (an older agent) costs nothing to refuse and is not
 * counted. An honest sender relays only proofs that verified. A core without the
 * two callbacks (the simulator) neither makes nor checks proofs; a record
 * from an agent older than proofs carries none and is refused by one that
 * checks them.
 *
 * Bounded numbers (issue 13). An incarnation or version above
 * NSTATE_NUMBER_MAX (2^62) could never be beaten: a message listing one
 * (a record or a digest entry) is refused whole, with its reason
 * (nstate_msg_check; the daemon logs it rate-limited), and
 * nstate_set_local publishes none. No honest peer sends one, since none
 * can have stored one.
 *
 * Our own record. Only nstate_set_local writes it, and (incarnation,
 * version) must grow each time. Copies of our own record that others send
 * us are never stored — we are the authority — but the largest one seen is
 * remembered (nstate_self_seen) so that a daemon that restarted with a
 * lower incarnation than its previous life can tell, and pick one above.
 *
 * Events. Every time a record of another host becomes new or newer in our
 * view we queue an event (name, incarnation, version, is_new_host): caches
 * refresh from it, and the simulator measures spread time with it. Our
 * own set_local does not produce one (the caller knows).
 *
 * WHERE WE DEPART FROM THE PAPERS
 *  - Scuttlebutt keeps one version counter per (host, key) and sends a
 *    digest in every exchange. Our records are small (about a kilobyte),
 *    so the whole record is the unit, and a digest is only sent for the
 *    buckets whose hashes differ: an idle exchange is one SYNC.
 *  - Demers' anti-entropy compares whole databases with checksums and
 *    falls back to recent-update lists; we descend a Merkle-style tree of
 *    sums (as Dynamo and Cassandra repair do, with sums instead of hashes
 *    of hashes so that a change updates it in O(depth) and the tree never
 *    needs rebuilding), fixed in shape so that two nodes never negotiate
 *    it.
 *  - Rumors relay once per node and carry a hop limit, instead of being
 *    retransmitted until k duplicates are seen: fewer messages (about
 *    fanout * N per change), and anti-entropy mops up the ~e^-fanout
 *    residue in about one interval.
 *
 * DATA LAYOUT (the simulator runs 1,000 cores of 1,000 records each)
 *  Records live in one dense array; a record's name, data and proof are
 *  one malloc'd blob ("name\0", the data, the proof's length in two bytes,
 *  the proof), replaced when a newer copy comes.
 *  Live peers live in a second dense array (name and address in one blob),
 *  which is also the set random peers are drawn from. Each array has a
 *  name index (name_index.h: linear probing, backward-shift deletion, load
 *  <= 3/4) holding 4-byte indices into it, so lookups, inserts and removals
 *  are O(1). A record costs 48 bytes + 5.3..10.7 of index + its blob; the
 *  bucket tree is 4,368 sums and record counts (52 KiB) per core whatever N. Finding the
 *  records of listed buckets is one pass over the records (a bitmap of
 *  buckets), done only on a differing exchange. Output messages and events are built in chunked arenas
 *  (every string and record is copied there, so nothing a caller holds
 *  dangles if a record is replaced), reset at the next mutating call once
 *  drained.
 */
#include "meshvisor/nstate.h"
#include "arena.h"
#include "name_index.h"
#include "prng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

/* Undrained events and messages kept; a caller that never drains must not
 * make us grow without bound. */
#define NS_EVENT_QUEUE_MAX 65536
#define NS_OUTPUT_QUEUE_MAX 65536
/* Fanout and hop caps: far above the useful range, they keep arithmetic
 * and fixed arrays bounded. */
#define NS_FANOUT_MAX 16
/* Anti-entropy partners: SYNC goes to NS_SYNC_PARTNERS peers in turn, and
 * one of them is redrawn every NS_SYNC_ROTATE syncs (STICKY PARTNERS). */
/* Failed proofs one sender may cost us per second (then refused unchecked),
 * and the slots that count them. */
#define NS_PROOF_FAILS_PER_S 16
#define NS_PROOF_FAIL_SLOTS 64
#define NS_SYNC_PARTNERS 3
#define NS_SYNC_ROTATE 20
#define NS_HOPS_MAX 32
/* Smallest max_msg_bytes accepted: a DELTA must fit a few records. */
#define NS_MIN_MSG_BYTES 1024
/* Bytes a record or a version costs on the wire beyond its name and data:
 * field tags, lengths and two varints (a bound, used to split DELTAs). */
#define NS_REC_OVERHEAD 40
#define NS_VER_OVERHEAD 32
#define NS_MSG_OVERHEAD 128

/* The tree below the root: 16 + 256 + 4096 sums, depth d at NS_TREE_OFF[d]. */
#define NS_TREE_NODES (16 + 256 + 4096)
static const uint32_t NS_TREE_OFF[NSTATE_TREE_DEPTH + 1] = {0, 0, 16, 16 + 256};
static const uint32_t NS_TREE_WIDTH[NSTATE_TREE_DEPTH + 1] = {1, 16, 256, 4096};
/* Wire bytes of one TREE node (its id and 16 fixed64 hashes, bounded)
 * and of one listed leaf, to split TREEs and DIGESTs at max_msg_bytes. */
#define NS_TREE_NODE_WIRE (NSTATE_TREE_FANOUT * 8 + 8)
#define NS_LEAF_WIRE 3
/* A differing subtree of at most this many records is listed in a DIGEST
 * rather than expanded: 8 versions (~16 bytes each) cost about what its
 * 16 child hashes would, and the exchange is a round trip shorter. So the
 * descent stops where buckets get sparse: at the root below 9 records, at
 * depth 2 up to N ~ 2,000, at the leaves from N ~ 30,000. */
#define NS_DIGEST_DIRECT 8

/* ------------------------------------------------------------------------ */
/* Types                                                                    */

struct ns_rec {
	char *blob; /* "name\0" then len bytes of data */
	uint64_t incarnation;
	uint64_t version;
	uint64_t h; /* this record's term of the version-vector hash */
	uint32_t len;
	uint32_t name_hash;
	uint32_t stamp; /* DIGEST processing: seen in the peer's digest */
	uint16_t name_len;
	uint16_t leaf; /* its bucket in the tree (nstate_leaf_of) */
};

struct ns_peer {
	char *blob; /* "name\0addr\0" */
	uint32_t name_hash;
	uint32_t name_len;
};

struct nstate {
	struct nstate_config cfg;
	uint64_t rng[4];

	struct ns_rec *recs;
	uint32_t n_recs, cap_recs;
	struct name_index rec_idx; /* name -> index in recs */
	uint64_t hash;
	uint64_t *tree;   /* sums of record terms per tree node, depths 1..3 (NS_TREE_NODES) */
	uint32_t *tree_n; /* records per tree node, same layout */
	uint32_t stamp;

	struct ns_peer *peers;
	uint32_t n_peers, cap_peers;
	struct name_index peer_idx; /* name -> index in peers */

	bool published;
	uint64_t local_inc, local_ver;
	uint64_t seen_inc, seen_ver; /* largest copy of our record others hold */
	uint64_t refused;            /* nstate_refused() */
	uint64_t proofs_checked;     /* nstate_proofs_checked() */
	/* failed proofs per sender (direct-mapped by name hash; a collision
	 * starts the slot over): NS_PROOF_FAILS_PER_S per second each */
	struct ns_proof_fails {
		uint32_t name_hash;
		uint64_t window; /* start (ms) of its second */
		uint32_t n;
	} proof_fails[NS_PROOF_FAIL_SLOTS];
	struct ns_proof_fails *cur_fails; /* the sender of the message being handled */
	bool msg_proof_failed;            /* a proof in it failed: refuse the rest */

	uint64_t next_sync_at;
	uint32_t sync_partner[NS_SYNC_PARTNERS]; /* peer indices, NONE: to draw */
	uint64_t n_syncs;

	struct nstate_msg *out;
	uint32_t n_out, cap_out, out_head;
	struct mv_arena out_arena;

	struct nstate_event *ev;
	uint32_t n_ev, cap_ev, ev_head;
	struct mv_arena ev_arena;

	/* scratch */
	uint64_t leafset[NSTATE_TREE_LEAVES / 64]; /* leaves a DIGEST covers */
	uint32_t *leaf_bytes;                      /* per leaf, splitting DIGESTs (lazy) */
	uint32_t *pick;
	uint32_t *list;
	uint32_t cap_list;
};

/* ------------------------------------------------------------------------ */
/* PRNG (prng.h): xoshiro256** seeded through splitmix64.                   */

static uint32_t ns_rand_below(struct nstate *ns, uint32_t n)
{
	return mv_xoshiro_below(ns->rng, n);
}

/* ------------------------------------------------------------------------ */
/* Hashing                                                                  */

static uint64_t ns_fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

static uint64_t ns_str_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
	return h;
}

/* One record's term of the version-vector hash. Each input goes through a
 * full 64-bit mixer so that the sum over records behaves like a sum of
 * independent random values: two different vectors collide with
 * probability ~2^-64, and a version bump changes the term completely. */
static uint64_t ns_rec_term(uint64_t name_hash64, uint64_t inc, uint64_t ver)
{
	return ns_fmix64(name_hash64 ^ ns_fmix64(inc ^ ns_fmix64(ver + 0x632be59bd9b4e019ULL)));
}

uint32_t nstate_leaf_of(const char *name)
{
	return (uint32_t)(ns_fmix64(ns_str_hash(name, strlen(name))) >> 52);
}

/* Leaves below a node at `depth` are [j << shift, (j + 1) << shift). */
static uint32_t ns_shift(uint32_t depth)
{
	return 4 * (NSTATE_TREE_DEPTH - depth);
}

/* Adds d (wrapping; a removal adds -term) to the sums of every tree node
 * above `leaf`, and n (+1 a new record, -1 a removed one, 0) to their
 * record counts. */
static void ns_tree_add(struct nstate *ns, uint32_t leaf, uint64_t d, int n)
{
	for (uint32_t depth = 1; depth <= NSTATE_TREE_DEPTH; depth++) {
		uint32_t at = NS_TREE_OFF[depth] + (leaf >> ns_shift(depth));
		ns->tree[at] += d;
		ns->tree_n[at] += (uint32_t)n;
	}
}

/* (incarnation, version) order: <0, 0, >0. */
static int ns_cmp(uint64_t ia, uint64_t va, uint64_t ib, uint64_t vb)
{
	if (ia != ib)
		return ia < ib ? -1 : 1;
	if (va != vb)
		return va < vb ? -1 : 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Arenas                                                                   */

/* ------------------------------------------------------------------------ */
/* Name indexes (name_index.h): a record's or peer's name is the start of
 * its blob, its name_index_hash() cached in name_hash.                     */

static const char *ns_rec_key(const void *ns, uint32_t i)
{
	return ((const struct nstate *)ns)->recs[i].blob;
}

static uint32_t ns_rec_key_hash(const void *ns, uint32_t i)
{
	return ((const struct nstate *)ns)->recs[i].name_hash;
}

static const char *ns_peer_key(const void *ns, uint32_t i)
{
	return ((const struct nstate *)ns)->peers[i].blob;
}

static uint32_t ns_peer_key_hash(const void *ns, uint32_t i)
{
	return ((const struct nstate *)ns)->peers[i].name_hash;
}

static const struct name_index_ops ns_rec_index_ops = {ns_rec_key, ns_rec_key_hash, NULL};
static const struct name_index_ops ns_peer_index_ops = {ns_peer_key, ns_peer_key_hash, NULL};

/* The record named name, or NONE; *h64 (unless NULL): the name's 64-bit
 * hash, for the record's version-vector term. */
static uint32_t ns_rec_find(const struct nstate *ns, const char *name, uint64_t *h64)
{
	if (h64 != NULL)
		*h64 = ns_str_hash(name, strlen(name));
	return name_index_find(&ns->rec_idx, name);
}

static uint32_t ns_peer_find(const struct nstate *ns, const char *name)
{
	return name_index_find(&ns->peer_idx, name);
}

static const char *ns_peer_addr(const struct ns_peer *p)
{
	return p->blob + p->name_len + 1;
}
static const uint8_t *ns_rec_data(const struct ns_rec *r)
{
	return (const uint8_t *)r->blob + r->name_len + 1;
}

/* The proof, after the data: two bytes of length (little-endian), then
 * the proof's bytes. */
static const uint8_t *ns_rec_proof(const struct ns_rec *r, size_t *len)
{
	const uint8_t *p = ns_rec_data(r) + r->len;
	*len = (size_t)p[0] | (size_t)p[1] << 8;
	return p + 2;
}

static size_t ns_rec_blob_len(const struct ns_rec *r)
{
	size_t plen;
	ns_rec_proof(r, &plen);
	return (size_t)r->name_len + 1 + r->len + 2 + plen;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */

static bool ns_name_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strnlen(s, NSTATE_NAME_MAX) < NSTATE_NAME_MAX;
}

static bool ns_is_self(const struct nstate *ns, const char *name)
{
	return strcmp(name, ns->cfg.name) == 0;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */

static void ns_event(struct nstate *ns, const struct ns_rec *r, bool is_new)
{
	if (ns->n_ev - ns->ev_head >= NS_EVENT_QUEUE_MAX)
		return; /* undrained: drop rather than grow without bound */
	if (ns->n_ev == ns->cap_ev) {
		uint32_t cap = ns->cap_ev ? ns->cap_ev * 2 : 16;
		struct nstate_event *ev = realloc(ns->ev, (size_t)cap * sizeof(*ev));
		if (ev == NULL)
			return;
		ns->ev = ev;
		ns->cap_ev = cap;
	}
	const char *name = mv_arena_strdup(&ns->ev_arena, r->blob);
	if (name == NULL)
		return;
	struct nstate_event *e = &ns->ev[ns->n_ev++];
	e->name = name;
	e->incarnation = r->incarnation;
	e->version = r->version;
	e->is_new_host = is_new;
}

/* Stores a copy of (name, inc, ver, data) if it is new or newer than what
 * we hold. Returns the record's index, NONE if not stored (older, equal,
 * about ourselves from someone else, or no memory). */
/* Asks cfg.verify about rec's proof, within the budget (see the essay:
 * the rest of a message after a failed proof, and a sender past
 * NS_PROOF_FAILS_PER_S, are refused unchecked). */
static bool ns_proof_ok(struct nstate *ns, const struct nstate_record *rec)
{
	bool has_proof = rec->proof != NULL && rec->proof_len > 0;
	if (!has_proof)
		return ns->cfg.verify(ns->cfg.proof_ctx, rec); /* cheap: refused */
	struct ns_proof_fails *f = ns->cur_fails;
	if (ns->msg_proof_failed || (f != NULL && f->n >= NS_PROOF_FAILS_PER_S))
		return false;
	ns->proofs_checked++;
	if (ns->cfg.verify(ns->cfg.proof_ctx, rec))
		return true;
	ns->msg_proof_failed = true;
	if (f != NULL)
		f->n++;
	return false;
}

/* The failed-proof slot of sender `from` for this second (NULL: none). */
static struct ns_proof_fails *ns_proof_fails_of(struct nstate *ns, const char *from, uint64_t now)
{
	if (from == NULL)
		return NULL;
	uint32_t h = name_index_hash(from);
	struct ns_proof_fails *f = &ns->proof_fails[h % NS_PROOF_FAIL_SLOTS];
	if (f->name_hash != h || now - f->window >= 1000 || now < f->window) {
		f->name_hash = h;
		f->window = now;
		f->n = 0;
	}
	return f;
}

static uint32_t ns_store(struct nstate *ns, const struct nstate_record *rec, bool local)
{
	const char *name = rec->name;
	uint64_t inc = rec->incarnation, ver = rec->version;
	const uint8_t *data = rec->data;
	size_t len = rec->len;
	uint64_t h64;
	uint32_t i = ns_rec_find(ns, name, &h64);
	if (!local && ns_is_self(ns, name)) {
		if (ns_cmp(inc, ver, ns->seen_inc, ns->seen_ver) > 0) {
			ns->seen_inc = inc;
			ns->seen_ver = ver;
		}
		return NONE;
	}
	if (i != NONE && ns_cmp(inc, ver, ns->recs[i].incarnation, ns->recs[i].version) <= 0)
		return NONE;
	if (!local && ns->cfg.verify != NULL && !ns_proof_ok(ns, rec)) {
		ns->refused++;
		return NONE;
	}
	size_t name_len = strlen(name);
	size_t plen = rec->proof != NULL ? rec->proof_len : 0;
	char *blob = malloc(name_len + 1 + len + 2 + plen);
	if (blob == NULL)
		return NONE;
	memcpy(blob, name, name_len + 1);
	if (len > 0)
		memcpy(blob + name_len + 1, data, len);
	uint8_t *pl = (uint8_t *)blob + name_len + 1 + len;
	pl[0] = (uint8_t)(plen & 0xff);
	pl[1] = (uint8_t)(plen >> 8);
	if (plen > 0)
		memcpy(pl + 2, rec->proof, plen);
	bool is_new = i == NONE;
	if (is_new) {
		if (ns->n_recs == ns->cap_recs) {
			uint32_t cap = ns->cap_recs ? ns->cap_recs * 2 : 16;
			struct ns_rec *recs = realloc(ns->recs, (size_t)cap * sizeof(*recs));
			if (recs == NULL) {
				free(blob);
				return NONE;
			}
			ns->recs = recs;
			ns->cap_recs = cap;
		}
		i = ns->n_recs;
		memset(&ns->recs[i], 0, sizeof(ns->recs[i]));
		ns->recs[i].blob = blob;
		ns->recs[i].name_hash = name_index_hash(name);
		ns->recs[i].name_len = (uint16_t)name_len;
		ns->recs[i].leaf = (uint16_t)(ns_fmix64(h64) >> 52);
		if (name_index_insert(&ns->rec_idx, i) < 0) {
			free(blob);
			return NONE;
		}
		ns->n_recs++;
	} else {
		free(ns->recs[i].blob);
		ns->hash -= ns->recs[i].h;
		ns_tree_add(ns, ns->recs[i].leaf, 0 - ns->recs[i].h, 0);
	}
	struct ns_rec *r = &ns->recs[i];
	r->blob = blob;
	r->incarnation = inc;
	r->version = ver;
	r->len = (uint32_t)len;
	r->h = ns_rec_term(h64, inc, ver);
	ns->hash += r->h;
	ns_tree_add(ns, r->leaf, r->h, is_new ? 1 : 0);
	if (!local)
		ns_event(ns, r, is_new);
	return i;
}

static void ns_rec_remove(struct nstate *ns, uint32_t i)
{
	uint32_t last = ns->n_recs - 1;
	ns->hash -= ns->recs[i].h;
	ns_tree_add(ns, ns->recs[i].leaf, 0 - ns->recs[i].h, -1);
	name_index_remove(&ns->rec_idx, i);
	free(ns->recs[i].blob);
	ns->recs[i] = ns->recs[last];
	ns->n_recs--;
	name_index_move(&ns->rec_idx, last, i);
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                    */

static void ns_peer_remove(struct nstate *ns, uint32_t i)
{
	uint32_t last = ns->n_peers - 1;
	for (int k = 0; k < NS_SYNC_PARTNERS; k++)
		if (ns->sync_partner[k] == i)
			ns->sync_partner[k] = NONE;
		else if (ns->sync_partner[k] == last)
			ns->sync_partner[k] = i;
	name_index_remove(&ns->peer_idx, i);
	free(ns->peers[i].blob);
	ns->peers[i] = ns->peers[last];
	ns->n_peers--;
	name_index_move(&ns->peer_idx, last, i);
}

/* Up to `want` distinct random live peers, none of them named in `skip`
 * (n_skip names, NULL entries ignored), into ns->pick. Partial
 * Fisher-Yates over a scratch copy of the indices: O(n_peers) only when
 * most peers are wanted, else rejection sampling. */
static uint32_t ns_random_peers(struct nstate *ns, uint32_t want, const char *const *skip,
                                size_t n_skip)
{
	uint32_t skip_idx[4];
	uint32_t ns_skip = 0;
	for (size_t k = 0; k < n_skip && ns_skip < 4; k++) {
		if (skip[k] == NULL)
			continue;
		uint32_t p = ns_peer_find(ns, skip[k]);
		bool dup = false;
		for (uint32_t j = 0; j < ns_skip; j++)
			dup = dup || skip_idx[j] == p;
		if (p != NONE && !dup)
			skip_idx[ns_skip++] = p;
	}
	uint32_t avail = ns->n_peers - ns_skip;
	if (want > avail)
		want = avail;
	if (want == 0)
		return 0;
	uint32_t got = 0;
	if (want * 4 <= avail) {
		/* sparse: draw and reject repeats */
		for (uint32_t tries = 0; got < want && tries < want * 64; tries++) {
			uint32_t c = ns_rand_below(ns, ns->n_peers);
			bool dup = false;
			for (uint32_t k = 0; k < ns_skip && !dup; k++)
				dup = skip_idx[k] == c;
			for (uint32_t k = 0; k < got && !dup; k++)
				dup = ns->pick[k] == c;
			if (!dup)
				ns->pick[got++] = c;
		}
		return got;
	}
	if (ns->cap_list < ns->n_peers) {
		uint32_t *l = realloc(ns->list, (size_t)ns->n_peers * sizeof(*l));
		if (l == NULL)
			return 0;
		ns->list = l;
		ns->cap_list = ns->n_peers;
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < ns->n_peers; i++) {
		bool sk = false;
		for (uint32_t k = 0; k < ns_skip && !sk; k++)
			sk = skip_idx[k] == i;
		if (!sk)
			ns->list[n++] = i;
	}
	for (uint32_t k = 0; k < want; k++) {
		uint32_t j = k + ns_rand_below(ns, n - k);
		uint32_t t = ns->list[k];
		ns->list[k] = ns->list[j];
		ns->list[j] = t;
		ns->pick[got++] = ns->list[k];
	}
	return got;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

/* A fresh output message to peer p (index), from us; NULL if the queue is
 * full or memory is out (the message is then lost, like a dropped packet:
 * both paths tolerate loss). */
static struct nstate_msg *ns_out(struct nstate *ns, enum nstate_msg_type type, uint32_t p)
{
	if (ns->n_out - ns->out_head >= NS_OUTPUT_QUEUE_MAX)
		return NULL;
	if (ns->n_out == ns->cap_out) {
		uint32_t cap = ns->cap_out ? ns->cap_out * 2 : 16;
		struct nstate_msg *o = realloc(ns->out, (size_t)cap * sizeof(*o));
		if (o == NULL)
			return NULL;
		ns->out = o;
		ns->cap_out = cap;
	}
	const struct ns_peer *peer = &ns->peers[p];
	const char *to = mv_arena_strdup(&ns->out_arena, peer->blob);
	const char *to_addr = mv_arena_strdup(&ns->out_arena, ns_peer_addr(peer));
	const char *from = mv_arena_strdup(&ns->out_arena, ns->cfg.name);
	if (to == NULL || to_addr == NULL || from == NULL)
		return NULL;
	struct nstate_msg *m = &ns->out[ns->n_out++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = from;
	m->to = to;
	m->to_addr = to_addr;
	return m;
}

/* Copies record i into *dst with name and data in the output arena. */
static bool ns_out_record(struct nstate *ns, struct nstate_record *dst, uint32_t i)
{
	const struct ns_rec *r = &ns->recs[i];
	size_t bl = ns_rec_blob_len(r);
	char *blob = mv_arena_alloc(&ns->out_arena, bl);
	if (blob == NULL)
		return false;
	memcpy(blob, r->blob, bl);
	dst->name = blob;
	dst->incarnation = r->incarnation;
	dst->version = r->version;
	dst->data = (const uint8_t *)blob + r->name_len + 1;
	dst->len = r->len;
	dst->proof = dst->data + r->len + 2;
	dst->proof_len = bl - (size_t)r->name_len - 1 - r->len - 2;
	return true;
}

static size_t ns_rec_wire(const struct ns_rec *r)
{
	return ns_rec_blob_len(r) + NS_REC_OVERHEAD;
}

/* Sends DELTA messages to peer p carrying records idx[0..n) and, in the
 * first message, the wanted versions want[0..n_want) (reply = true when
 * there are any). Splits so that each message stays under max_msg_bytes by
 * our estimate; a record larger than that goes alone. */
static void ns_send_delta(struct nstate *ns, uint32_t p, const uint32_t *idx, uint32_t n,
                          const struct nstate_version *want, uint32_t n_want)
{
	size_t limit = ns->cfg.max_msg_bytes;
	uint32_t k = 0;
	bool first = true;
	while (first || k < n) {
		size_t est = NS_MSG_OVERHEAD;
		if (first)
			for (uint32_t w = 0; w < n_want; w++)
				est += strlen(want[w].name) + NS_VER_OVERHEAD;
		uint32_t end = k;
		while (end < n) {
			size_t sz = ns_rec_wire(&ns->recs[idx[end]]);
			if (end > k && est + sz > limit)
				break;
			if (end == k && first && n_want > 0 && est + sz > limit)
				break; /* the wants fill this one; records follow */
			est += sz;
			end++;
		}
		if (end == k && !(first && n_want > 0))
			return; /* nothing left to send */
		struct nstate_msg *m = ns_out(ns, NSTATE_DELTA, p);
		if (m == NULL)
			return;
		if (first && n_want > 0) {
			struct nstate_version *v =
			    mv_arena_alloc(&ns->out_arena, n_want * sizeof(*v));
			if (v == NULL) {
				ns->n_out--;
				return;
			}
			for (uint32_t w = 0; w < n_want; w++) {
				v[w] = want[w];
				v[w].name = mv_arena_strdup(&ns->out_arena, want[w].name);
				if (v[w].name == NULL) {
					ns->n_out--;
					return;
				}
			}
			m->versions = v;
			m->n_versions = n_want;
			m->reply = true;
		}
		if (end > k) {
			struct nstate_record *rs =
			    mv_arena_alloc(&ns->out_arena, (end - k) * sizeof(*rs));
			if (rs == NULL) {
				ns->n_out--;
				return;
			}
			for (uint32_t j = k; j < end; j++) {
				if (!ns_out_record(ns, &rs[j - k], idx[j])) {
					ns->n_out--;
					return;
				}
			}
			m->records = rs;
			m->n_records = end - k;
		}
		k = end;
		first = false;
	}
}

/* Relays hops-limited PUSHes of record i to fanout random live peers. */
static void ns_push(struct nstate *ns, uint32_t i, uint32_t hops, const char *exclude)
{
	const char *skip[2] = {exclude, ns->recs[i].blob};
	uint32_t n = ns_random_peers(ns, ns->cfg.push_fanout, skip, 2);
	for (uint32_t k = 0; k < n; k++) {
		struct nstate_msg *m = ns_out(ns, NSTATE_PUSH, ns->pick[k]);
		if (m == NULL)
			return;
		struct nstate_record *r = mv_arena_alloc(&ns->out_arena, sizeof(*r));
		if (r == NULL || !ns_out_record(ns, r, i)) {
			ns->n_out--;
			return;
		}
		m->records = r;
		m->n_records = 1;
		m->hops = hops;
	}
}

static uint32_t ns_push_hops(const struct nstate *ns)
{
	if (ns->cfg.push_hops > 0)
		return ns->cfg.push_hops;
	uint64_t n = (uint64_t)ns->n_peers + 1;
	uint32_t f = ns->cfg.push_fanout < 2 ? 2 : ns->cfg.push_fanout;
	uint32_t h = 0;
	for (uint64_t reach = 1; reach < n && h < NS_HOPS_MAX; reach *= f)
		h++;
	return h + 1 < NS_HOPS_MAX ? h + 1 : NS_HOPS_MAX;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

void nstate_config_default(struct nstate_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;
	cfg->sync_interval_ms = 1000;
	cfg->push_fanout = 3;
	cfg->push_hops = 0;
	cfg->max_msg_bytes = 512 * 1024;
}

struct nstate *nstate_new(const struct nstate_config *cfg, uint64_t now)
{
	if (cfg == NULL || strnlen(cfg->name, NSTATE_NAME_MAX) >= NSTATE_NAME_MAX ||
	    cfg->name[0] == '\0' || cfg->sync_interval_ms == 0 ||
	    cfg->push_fanout > NS_FANOUT_MAX || cfg->push_hops > NS_HOPS_MAX ||
	    cfg->max_msg_bytes < NS_MIN_MSG_BYTES)
		return NULL;
	struct nstate *ns = calloc(1, sizeof(*ns));
	if (ns == NULL)
		return NULL;
	ns->cfg = *cfg;
	name_index_init(&ns->rec_idx, &ns_rec_index_ops, ns);
	name_index_init(&ns->peer_idx, &ns_peer_index_ops, ns);
	ns->pick = calloc(NS_FANOUT_MAX, sizeof(*ns->pick));
	ns->tree = calloc(NS_TREE_NODES, sizeof(*ns->tree));
	ns->tree_n = calloc(NS_TREE_NODES, sizeof(*ns->tree_n));
	if (ns->pick == NULL || ns->tree == NULL || ns->tree_n == NULL) {
		free(ns->pick);
		free(ns->tree);
		free(ns->tree_n);
		free(ns);
		return NULL;
	}
	uint64_t seed = cfg->seed;
	for (int k = 0; k < 4; k++)
		ns->rng[k] = mv_splitmix64(&seed);
	/* random phase, so that nodes started together do not sync in step */
	ns->next_sync_at = now + ns_rand_below(ns, cfg->sync_interval_ms);
	for (int k = 0; k < NS_SYNC_PARTNERS; k++)
		ns->sync_partner[k] = NONE;
	return ns;
}

void nstate_free(struct nstate *ns)
{
	if (ns == NULL)
		return;
	for (uint32_t i = 0; i < ns->n_recs; i++)
		free(ns->recs[i].blob);
	for (uint32_t i = 0; i < ns->n_peers; i++)
		free(ns->peers[i].blob);
	free(ns->recs);
	free(ns->peers);
	name_index_free(&ns->rec_idx);
	name_index_free(&ns->peer_idx);
	free(ns->out);
	free(ns->ev);
	mv_arena_free(&ns->out_arena);
	mv_arena_free(&ns->ev_arena);
	free(ns->pick);
	free(ns->tree);
	free(ns->tree_n);
	free(ns->leaf_bytes);
	free(ns->list);
	free(ns);
}

/* Start of every mutating call: what was popped before is released. */
static void ns_begin(struct nstate *ns)
{
	if (ns->out_head == ns->n_out) {
		ns->out_head = ns->n_out = 0;
		mv_arena_reset(&ns->out_arena);
	}
	if (ns->ev_head == ns->n_ev) {
		ns->ev_head = ns->n_ev = 0;
		mv_arena_reset(&ns->ev_arena);
	}
}

/* ------------------------------------------------------------------------ */
/* Membership                                                               */

int nstate_peer_up(struct nstate *ns, const char *name, const char *addr)
{
	ns_begin(ns);
	if (!ns_name_ok(name) || addr == NULL || addr[0] == '\0' ||
	    strnlen(addr, NSTATE_ADDR_MAX) >= NSTATE_ADDR_MAX)
		return -EINVAL;
	if (ns_is_self(ns, name))
		return 0; /* never gossip with ourselves */
	size_t nl = strlen(name), al = strlen(addr);
	uint32_t i = ns_peer_find(ns, name);
	if (i != NONE && strcmp(ns_peer_addr(&ns->peers[i]), addr) == 0)
		return 0;
	char *blob = malloc(nl + al + 2);
	if (blob == NULL)
		return -ENOMEM;
	memcpy(blob, name, nl + 1);
	memcpy(blob + nl + 1, addr, al + 1);
	if (i != NONE) { /* same peer, new address (restarted elsewhere) */
		free(ns->peers[i].blob);
		ns->peers[i].blob = blob;
		return 0;
	}
	if (ns->n_peers == ns->cap_peers) {
		uint32_t cap = ns->cap_peers ? ns->cap_peers * 2 : 16;
		struct ns_peer *p = realloc(ns->peers, (size_t)cap * sizeof(*p));
		if (p == NULL) {
			free(blob);
			return -ENOMEM;
		}
		ns->peers = p;
		ns->cap_peers = cap;
	}
	i = ns->n_peers;
	ns->peers[i].blob = blob;
	ns->peers[i].name_hash = name_index_hash(name);
	ns->peers[i].name_len = (uint32_t)nl;
	if (name_index_insert(&ns->peer_idx, i) < 0) {
		free(blob);
		return -ENOMEM;
	}
	ns->n_peers++;
	return 0;
}

void nstate_peer_down(struct nstate *ns, const char *name)
{
	ns_begin(ns);
	if (!ns_name_ok(name))
		return;
	uint32_t i = ns_peer_find(ns, name);
	if (i != NONE)
		ns_peer_remove(ns, i);
}

void nstate_forget(struct nstate *ns, const char *name)
{
	ns_begin(ns);
	if (!ns_name_ok(name) || ns_is_self(ns, name))
		return;
	uint32_t i = ns_peer_find(ns, name);
	if (i != NONE)
		ns_peer_remove(ns, i);
	i = ns_rec_find(ns, name, NULL);
	if (i != NONE)
		ns_rec_remove(ns, i);
}

/* ------------------------------------------------------------------------ */
/* Local record                                                             */

int nstate_set_local(struct nstate *ns, uint64_t incarnation, uint64_t version, const uint8_t *data,
                     size_t len, bool urgent, uint64_t now)
{
	ns_begin(ns);
	if (len > NSTATE_RECORD_MAX || (len > 0 && data == NULL) ||
	    incarnation > NSTATE_NUMBER_MAX || version > NSTATE_NUMBER_MAX)
		return -EINVAL;
	if (ns->published && ns_cmp(incarnation, version, ns->local_inc, ns->local_ver) <= 0)
		return -EINVAL;
	struct nstate_record rec = {ns->cfg.name, incarnation, version, data, len, NULL, 0};
	uint8_t *proof = NULL;
	if (ns->cfg.sign != NULL) {
		proof = malloc(NSTATE_PROOF_MAX);
		if (proof == NULL)
			return -ENOMEM;
		int n = ns->cfg.sign(ns->cfg.proof_ctx, &rec, proof, NSTATE_PROOF_MAX);
		if (n < 0 || n > NSTATE_PROOF_MAX) {
			free(proof);
			return n < 0 ? n : -EOVERFLOW;
		}
		rec.proof = proof;
		rec.proof_len = (size_t)n;
	}
	uint32_t i = ns_store(ns, &rec, true);
	free(proof);
	if (i == NONE)
		return -ENOMEM;
	ns->published = true;
	ns->local_inc = incarnation;
	ns->local_ver = version;
	if (urgent)
		ns_push(ns, i, ns_push_hops(ns), NULL);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

/* nodes[0..n) strictly increasing, each below `width`. */
static bool ns_nodes_ok(const uint32_t *nodes, size_t n, uint32_t width)
{
	for (size_t k = 0; k < n; k++)
		if (nodes[k] >= width || (k > 0 && nodes[k] <= nodes[k - 1]))
			return false;
	return true;
}

/* The tree fields of a TREE or DIGEST (others must have none): what is
 * wrong with them, or NULL. Bounded: a TREE has at most 256 nodes and
 * 4096 hashes (32 KiB), a DIGEST lists at most 4096 nodes (of one depth). */
static const char *ns_tree_problem(const struct nstate_msg *m)
{
	if (m->type == NSTATE_TREE) {
		if (m->level >= NSTATE_TREE_DEPTH)
			return "node-state tree level out of range";
		if (m->n_nodes == 0 || m->n_nodes > NS_TREE_WIDTH[m->level])
			return "node-state tree with no nodes or more nodes than its level has";
		if (m->n_hashes != m->n_nodes * NSTATE_TREE_FANOUT)
			return "node-state tree whose hash count is not 16 per node";
		if (!ns_nodes_ok(m->nodes, m->n_nodes, NS_TREE_WIDTH[m->level]))
			return "node-state tree node out of range or out of order";
		return NULL;
	}
	if (m->n_hashes > 0)
		return "node-state hashes outside a tree message";
	if (m->n_nodes == 0)
		return NULL;
	if (m->type != NSTATE_DIGEST)
		return "node-state buckets outside a tree or digest message";
	if (m->level < 1 || m->level > NSTATE_TREE_DEPTH)
		return "node-state digest level out of range";
	if (m->n_nodes > NS_TREE_WIDTH[m->level] ||
	    !ns_nodes_ok(m->nodes, m->n_nodes, NS_TREE_WIDTH[m->level]))
		return "node-state digest bucket out of range or out of order";
	return NULL;
}

/* What is wrong with m, or NULL. */
static const char *ns_msg_problem(const struct nstate_msg *m)
{
	if (m == NULL || (int)m->type < NSTATE_SYNC || (int)m->type > NSTATE_TREE)
		return "unknown node-state message type";
	if (!ns_name_ok(m->from))
		return "node-state message with a missing or oversized sender name";
	if (m->to != NULL && strnlen(m->to, NSTATE_NAME_MAX) >= NSTATE_NAME_MAX)
		return "node-state message with an oversized receiver name";
	if ((m->n_versions > 0 && m->versions == NULL) ||
	    (m->n_records > 0 && m->records == NULL) || (m->n_nodes > 0 && m->nodes == NULL) ||
	    (m->n_hashes > 0 && m->hashes == NULL))
		return "node-state message with a count but no array";
	if (m->n_versions > UINT32_MAX / 2 || m->n_records > UINT32_MAX / 2)
		return "node-state message with too many versions or records";
	if (m->type == NSTATE_PUSH && m->n_records == 0)
		return "node-state push without a record";
	for (size_t k = 0; k < m->n_versions; k++) {
		if (!ns_name_ok(m->versions[k].name))
			return "state version with a missing or oversized name";
		if (m->versions[k].incarnation > NSTATE_NUMBER_MAX ||
		    m->versions[k].version > NSTATE_NUMBER_MAX)
			return "state version above NSTATE_NUMBER_MAX";
	}
	for (size_t k = 0; k < m->n_records; k++) {
		const struct nstate_record *r = &m->records[k];
		if (!ns_name_ok(r->name))
			return "state record with a missing or oversized name";
		if (r->len > NSTATE_RECORD_MAX || (r->len > 0 && r->data == NULL))
			return "state record larger than NSTATE_RECORD_MAX";
		if (r->incarnation > NSTATE_NUMBER_MAX || r->version > NSTATE_NUMBER_MAX)
			return "state record numbered above NSTATE_NUMBER_MAX";
		if (r->proof_len > NSTATE_PROOF_MAX || (r->proof_len > 0 && r->proof == NULL))
			return "state record proof larger than NSTATE_PROOF_MAX";
	}
	return ns_tree_problem(m);
}

int nstate_msg_check(const struct nstate_msg *m, const char **why)
{
	const char *w = ns_msg_problem(m);
	if (w == NULL)
		return 0;
	if (why != NULL)
		*why = w;
	return -EINVAL;
}

static int ns_validate(const struct nstate *ns, const struct nstate_msg *m)
{
	int rc = nstate_msg_check(m, NULL);
	if (rc < 0)
		return rc;
	return ns_is_self(ns, m->from) ? -EINVAL : 0;
}

static int ns_grow_list(struct nstate *ns, size_t n)
{
	if (ns->cap_list >= n)
		return 0;
	uint32_t *l = realloc(ns->list, n * sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	ns->list = l;
	ns->cap_list = (uint32_t)n;
	return 0;
}

/* The hash of tree node (depth, j). */
static uint64_t ns_node_hash(const struct nstate *ns, uint32_t depth, uint32_t j)
{
	return depth == 0 ? ns->hash : ns->tree[NS_TREE_OFF[depth] + j];
}

uint64_t nstate_tree_hash(const struct nstate *ns, uint32_t depth, uint32_t index)
{
	if (depth > NSTATE_TREE_DEPTH || index >= NS_TREE_WIDTH[depth])
		return 0;
	return ns_node_hash(ns, depth, index);
}

/* TREE{level, nodes, the 16 child hashes of each} to peer p, split so
 * that each message stays under max_msg_bytes: the receiver answers each
 * part on its own. */
static void ns_send_tree(struct nstate *ns, uint32_t p, uint32_t level, const uint32_t *nodes,
                         uint32_t n)
{
	uint32_t per = (uint32_t)((ns->cfg.max_msg_bytes - NS_MSG_OVERHEAD) / NS_TREE_NODE_WIRE);
	while (n > per) {
		ns_send_tree(ns, p, level, nodes, per);
		nodes += per;
		n -= per;
	}
	struct nstate_msg *m = ns_out(ns, NSTATE_TREE, p);
	if (m == NULL)
		return;
	uint32_t *nc = mv_arena_alloc(&ns->out_arena, n * sizeof(*nc));
	uint64_t *h = mv_arena_alloc(&ns->out_arena, (size_t)n * NSTATE_TREE_FANOUT * sizeof(*h));
	if (nc == NULL || h == NULL) {
		ns->n_out--;
		return;
	}
	for (uint32_t k = 0; k < n; k++) {
		nc[k] = nodes[k];
		for (uint32_t c = 0; c < NSTATE_TREE_FANOUT; c++)
			h[k * NSTATE_TREE_FANOUT + c] =
			    ns_node_hash(ns, level + 1, nodes[k] * NSTATE_TREE_FANOUT + c);
	}
	m->level = level;
	m->nodes = nc;
	m->n_nodes = n;
	m->hashes = h;
	m->n_hashes = (size_t)n * NSTATE_TREE_FANOUT;
}

/* Sets ns->leafset to the leaves below nodes[0..n) of `depth`, or to
 * every leaf when n == 0. */
static void ns_leafset(struct nstate *ns, uint32_t depth, const uint32_t *nodes, size_t n)
{
	memset(ns->leafset, n == 0 ? 0xff : 0, sizeof(ns->leafset));
	uint32_t s = n > 0 ? ns_shift(depth) : 0;
	for (size_t k = 0; k < n; k++)
		for (uint32_t l = nodes[k] << s; l < (nodes[k] + 1) << s; l++)
			ns->leafset[l / 64] |= 1ULL << (l % 64);
}

static bool ns_in_leafset(const struct nstate *ns, uint32_t leaf)
{
	return (ns->leafset[leaf / 64] >> (leaf % 64)) & 1;
}

/* One DIGEST to peer p: the versions of our records in ns->leafset; it
 * lists nodes[0..n_nodes) of `depth` (none: the whole vector). */
static void ns_send_digest_part(struct nstate *ns, uint32_t p, uint32_t depth,
                                const uint32_t *nodes, uint32_t n_nodes)
{
	struct nstate_msg *m = ns_out(ns, NSTATE_DIGEST, p);
	if (m == NULL)
		return;
	m->hash = ns->hash;
	if (n_nodes > 0) {
		uint32_t *l = mv_arena_alloc(&ns->out_arena, n_nodes * sizeof(*l));
		if (l == NULL) {
			ns->n_out--;
			return;
		}
		memcpy(l, nodes, n_nodes * sizeof(*l));
		m->level = depth;
		m->nodes = l;
		m->n_nodes = n_nodes;
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < ns->n_recs; i++)
		n += ns_in_leafset(ns, ns->recs[i].leaf);
	if (n == 0)
		return;
	struct nstate_version *v = mv_arena_alloc(&ns->out_arena, n * sizeof(*v));
	if (v == NULL) {
		ns->n_out--;
		return;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < ns->n_recs; i++) {
		if (!ns_in_leafset(ns, ns->recs[i].leaf))
			continue;
		/* names are copied by ns_out's arena too: records may go */
		char *name = mv_arena_alloc(&ns->out_arena, ns->recs[i].name_len + 1u);
		if (name == NULL) {
			ns->n_out--;
			return;
		}
		memcpy(name, ns->recs[i].blob, ns->recs[i].name_len + 1u);
		v[k].name = name;
		v[k].incarnation = ns->recs[i].incarnation;
		v[k].version = ns->recs[i].version;
		k++;
	}
	m->versions = v;
	m->n_versions = n;
}

/* Our version digest to peer p: of the records below nodes[0..n_nodes)
 * of `depth` (increasing), split by groups of nodes so that each part
 * stays under max_msg_bytes (a single node's part may exceed it: it goes
 * alone); or, n_nodes == 0, of every record in one message (an older peer,
 * or a vector too small to be worth a descent). */
static void ns_send_digest(struct nstate *ns, uint32_t p, uint32_t depth, const uint32_t *nodes,
                           uint32_t n_nodes)
{
	if (n_nodes == 0) {
		ns_leafset(ns, 0, NULL, 0);
		ns_send_digest_part(ns, p, 0, NULL, 0);
		return;
	}
	/* bytes each listed node's versions cost, by node index */
	if (ns->leaf_bytes == NULL &&
	    (ns->leaf_bytes = malloc(NSTATE_TREE_LEAVES * sizeof(*ns->leaf_bytes))) == NULL)
		return; /* lost, like a dropped packet */
	uint32_t *bytes = ns->leaf_bytes, s = ns_shift(depth);
	ns_leafset(ns, depth, nodes, n_nodes);
	for (uint32_t k = 0; k < n_nodes; k++)
		bytes[nodes[k]] = NS_LEAF_WIRE;
	for (uint32_t i = 0; i < ns->n_recs; i++)
		if (ns_in_leafset(ns, ns->recs[i].leaf))
			bytes[ns->recs[i].leaf >> s] += ns->recs[i].name_len + NS_VER_OVERHEAD;
	uint32_t k = 0;
	while (k < n_nodes) {
		size_t est = NS_MSG_OVERHEAD + bytes[nodes[k]];
		uint32_t end = k + 1;
		while (end < n_nodes && est + bytes[nodes[end]] <= ns->cfg.max_msg_bytes)
			est += bytes[nodes[end++]];
		ns_leafset(ns, depth, nodes + k, end - k);
		ns_send_digest_part(ns, p, depth, nodes + k, end - k);
		k = end;
	}
}

/* A peer's TREE: the children of its listed nodes that differ from ours
 * are expanded one level further, or answered with the digest of the
 * records below them when they are leaves or hold few records
 * (NS_DIGEST_DIRECT). Equal children end the descent there. */
static void ns_on_tree(struct nstate *ns, const struct nstate_msg *m, uint32_t p)
{
	uint32_t child = m->level + 1;
	if (ns_grow_list(ns, 2 * NSTATE_TREE_LEAVES) < 0)
		return;
	uint32_t *expand = ns->list, *digest = ns->list + NSTATE_TREE_LEAVES;
	uint32_t n_expand = 0, n_digest = 0;
	for (size_t k = 0; k < m->n_nodes; k++)
		for (uint32_t c = 0; c < NSTATE_TREE_FANOUT; c++) {
			uint32_t j = m->nodes[k] * NSTATE_TREE_FANOUT + c;
			if (m->hashes[k * NSTATE_TREE_FANOUT + c] == ns_node_hash(ns, child, j))
				continue;
			/* both lists increasing: nodes are */
			if (child == NSTATE_TREE_DEPTH ||
			    ns->tree_n[NS_TREE_OFF[child] + j] <= NS_DIGEST_DIRECT)
				digest[n_digest++] = j;
			else
				expand[n_expand++] = j;
		}
	if (n_expand > 0)
		ns_send_tree(ns, p, child, expand, n_expand);
	if (n_digest > 0)
		ns_send_digest(ns, p, child, digest, n_digest);
}

/* A peer's digest: send what it lacks, ask for what we lack. */
static void ns_on_digest(struct nstate *ns, const struct nstate_msg *m, uint32_t p)
{
	if (ns_grow_list(ns, ns->n_recs) < 0)
		return;
	struct nstate_version *want = NULL;
	if (m->n_versions > 0) {
		want = malloc(m->n_versions * sizeof(*want));
		if (want == NULL)
			return;
	}
	uint32_t n_want = 0, n_send = 0;
	if (++ns->stamp == 0) { /* wrapped: clear old stamps */
		for (uint32_t i = 0; i < ns->n_recs; i++)
			ns->recs[i].stamp = 0;
		ns->stamp = 1;
	}
	for (size_t k = 0; k < m->n_versions; k++) {
		const struct nstate_version *v = &m->versions[k];
		uint32_t i = ns_rec_find(ns, v->name, NULL);
		if (i != NONE) {
			struct ns_rec *r = &ns->recs[i];
			if (r->stamp == ns->stamp)
				continue; /* a name listed twice */
			r->stamp = ns->stamp;
			int c = ns_cmp(r->incarnation, r->version, v->incarnation, v->version);
			if (c > 0 && strcmp(r->blob, m->from) != 0)
				ns->list[n_send++] = i;
			else if (c < 0 && !ns_is_self(ns, v->name))
				want[n_want++] =
				    (struct nstate_version){r->blob, r->incarnation, r->version};
			else if (c < 0)
				ns_store(ns,
				         &(struct nstate_record){v->name, v->incarnation,
				                                 v->version, NULL, 0, NULL, 0},
				         false);
		} else if (!ns_is_self(ns, v->name)) {
			want[n_want++] = (struct nstate_version){v->name, 0, 0};
		} else {
			/* a copy of our own record we have not published (yet) */
			ns_store(ns,
			         &(struct nstate_record){v->name, v->incarnation, v->version, NULL,
			                                 0, NULL, 0},
			         false);
		}
	}
	/* what it lacks, among the leaves its digest covers */
	ns_leafset(ns, m->level, m->nodes, m->n_nodes);
	for (uint32_t i = 0; i < ns->n_recs; i++)
		if (ns->recs[i].stamp != ns->stamp && ns_in_leafset(ns, ns->recs[i].leaf) &&
		    strcmp(ns->recs[i].blob, m->from) != 0)
			ns->list[n_send++] = i;
	if (n_send > 0 || n_want > 0)
		ns_send_delta(ns, p, ns->list, n_send, want, n_want);
	free(want);
}

/* A peer asked for these: send every one we hold newer (or that it lacks:
 * listed at (0, 0)). */
static void ns_on_wants(struct nstate *ns, const struct nstate_msg *m, uint32_t p)
{
	if (ns_grow_list(ns, ns->n_recs) < 0)
		return;
	uint32_t n = 0;
	if (++ns->stamp == 0) {
		for (uint32_t i = 0; i < ns->n_recs; i++)
			ns->recs[i].stamp = 0;
		ns->stamp = 1;
	}
	for (size_t k = 0; k < m->n_versions; k++) {
		const struct nstate_version *v = &m->versions[k];
		uint32_t i = ns_rec_find(ns, v->name, NULL);
		if (i == NONE || ns->recs[i].stamp == ns->stamp)
			continue;
		const struct ns_rec *r = &ns->recs[i];
		bool lacks = v->incarnation == 0 && v->version == 0;
		if (lacks || ns_cmp(r->incarnation, r->version, v->incarnation, v->version) > 0) {
			ns->recs[i].stamp = ns->stamp;
			ns->list[n++] = i;
		}
	}
	if (n > 0)
		ns_send_delta(ns, p, ns->list, n, NULL, 0);
}

int nstate_handle_message(struct nstate *ns, const struct nstate_msg *m, uint64_t now)
{
	ns_begin(ns);
	int rc = ns_validate(ns, m);
	if (rc < 0)
		return rc;
	if (m->to != NULL && m->to[0] != '\0' && !ns_is_self(ns, m->to))
		return 0; /* meant for someone else (a previous owner of the address) */
	uint32_t p = ns_peer_find(ns, m->from); /* NONE: we cannot answer */
	ns->msg_proof_failed = false;
	ns->cur_fails = ns_proof_fails_of(ns, m->from, now);
	switch (m->type) {
	case NSTATE_SYNC:
		if (m->hash == ns->hash || p == NONE)
			break;
		if (m->tree == NSTATE_TREE_V1 && ns->n_recs > NS_DIGEST_DIRECT) {
			uint32_t root = 0;
			ns_send_tree(ns, p, 0, &root, 1);
		} else { /* an older peer, or a few records: everything */
			ns_send_digest(ns, p, 0, NULL, 0);
		}
		break;
	case NSTATE_TREE:
		if (p != NONE)
			ns_on_tree(ns, m, p);
		break;
	case NSTATE_DIGEST:
		if (p != NONE)
			ns_on_digest(ns, m, p);
		break;
	case NSTATE_DELTA:
		for (size_t k = 0; k < m->n_records; k++) {
			ns_store(ns, &m->records[k], false);
		}
		if (m->reply && m->n_versions > 0 && p != NONE)
			ns_on_wants(ns, m, p);
		break;
	case NSTATE_PUSH:
		for (size_t k = 0; k < m->n_records; k++) {
			uint32_t i = ns_store(ns, &m->records[k], false);
			/* only news is relayed: duplicates end the rumor */
			if (i != NONE && m->hops > 0)
				ns_push(ns, i,
				        m->hops - 1 < NS_HOPS_MAX ? m->hops - 1 : NS_HOPS_MAX,
				        m->from);
		}
		break;
	}
	return 0;
}

/* The peer this sync goes to (STICKY PARTNERS): the partners in turn;
 * every NS_SYNC_ROTATE syncs the next slot is redrawn, so each partner is
 * kept NS_SYNC_PARTNERS * NS_SYNC_ROTATE syncs, and a slot whose peer left
 * is redrawn at once. */
static uint32_t ns_sync_partner(struct nstate *ns)
{
	uint64_t k = ns->n_syncs++;
	if (k % NS_SYNC_ROTATE == 0)
		ns->sync_partner[(k / NS_SYNC_ROTATE) % NS_SYNC_PARTNERS] = NONE;
	uint32_t *slot = &ns->sync_partner[k % NS_SYNC_PARTNERS];
	if (*slot == NONE || *slot >= ns->n_peers)
		*slot = ns_rand_below(ns, ns->n_peers);
	return *slot;
}

int nstate_handle_timer(struct nstate *ns, uint64_t now)
{
	ns_begin(ns);
	if (now < ns->next_sync_at)
		return 0;
	ns->next_sync_at += ns->cfg.sync_interval_ms;
	if (ns->next_sync_at <= now)
		ns->next_sync_at = now + ns->cfg.sync_interval_ms;
	if (ns->n_peers == 0)
		return 0;
	uint32_t p = ns_sync_partner(ns);
	struct nstate_msg *m = ns_out(ns, NSTATE_SYNC, p);
	if (m != NULL) {
		m->hash = ns->hash;
		m->tree = NSTATE_TREE_V1;
	}
	return 0;
}

uint64_t nstate_next_deadline(const struct nstate *ns)
{
	return ns->next_sync_at;
}

bool nstate_pop_output(struct nstate *ns, struct nstate_msg *out)
{
	if (ns->out_head == ns->n_out)
		return false;
	*out = ns->out[ns->out_head++];
	return true;
}

bool nstate_pop_event(struct nstate *ns, struct nstate_event *out)
{
	if (ns->ev_head == ns->n_ev)
		return false;
	*out = ns->ev[ns->ev_head++];
	return true;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */

size_t nstate_count(const struct nstate *ns)
{
	return ns->n_recs;
}

static void ns_view(const struct ns_rec *r, struct nstate_record *out)
{
	out->name = r->blob;
	out->incarnation = r->incarnation;
	out->version = r->version;
	out->data = ns_rec_data(r);
	out->len = r->len;
	out->proof = ns_rec_proof(r, &out->proof_len);
}

void nstate_record_at(const struct nstate *ns, size_t i, struct nstate_record *out)
{
	ns_view(&ns->recs[i], out);
}

bool nstate_find(const struct nstate *ns, const char *name, struct nstate_record *out)
{
	if (name == NULL)
		return false;
	uint32_t i = ns_rec_find(ns, name, NULL);
	if (i == NONE)
		return false;
	if (out != NULL)
		ns_view(&ns->recs[i], out);
	return true;
}

bool nstate_threshold_crossed(const struct nstate_threshold *t, double published, double current)
{
	double mag = published < 0 ? -published : published;
	double step = t->rel_step * mag;
	if (step < t->abs_step)
		step = t->abs_step;
	double d = current - published;
	return d > step || d < -step; /* false for a NaN */
}

uint64_t nstate_hash(const struct nstate *ns)
{
	return ns->hash;
}

size_t nstate_peer_count(const struct nstate *ns)
{
	return ns->n_peers;
}

uint64_t nstate_refused(const struct nstate *ns)
{
	return ns->refused;
}

uint64_t nstate_proofs_checked(const struct nstate *ns)
{
	return ns->proofs_checked;
}

void nstate_self_seen(const struct nstate *ns, uint64_t *incarnation, uint64_t *version)
{
	*incarnation = ns->seen_inc;
	*version = ns->seen_ver;
}
