/*
 * state_codec.c — translate between the node-state core's struct
 * nstate_msg and the wire's mv.StateMessage inside an mv.Envelope.
 *
 *   Envelope { version = 1, from = sender's node name,
 *     state = StateMessage {
 *       type     SYNC | DIGEST | DELTA | PUSH | TREE
 *       hash     SYNC/DIGEST: the sender's version-vector hash
 *       versions DIGEST: every (name, incarnation, version) the sender holds
 *                below the tree nodes listed in `nodes` (none listed: all);
 *                DELTA: the versions the sender wants back (reply = true)
 *       records  DELTA/PUSH: (name, incarnation, version, data = packed
 *                NodeState, proof = the owner's signature; both opaque
 *                here, the proof at most NSTATE_PROOF_MAX bytes)
 *       hops     PUSH: relays left
 *       reply    DELTA: the sender wants the records named in `versions`
 *       tree     SYNC: bucket-tree version spoken (1; 0 = an older agent)
 *       level    TREE: depth of `nodes` (0 .. 2); DIGEST: depth of `nodes`
 *                (1 .. 3, 3 = buckets)
 *       nodes    TREE: nodes expanded; DIGEST: nodes whose buckets it
 *                covers (both increasing, < 16^level, at most 16^level)
 *       hashes   TREE: 16 fixed64 child hashes per node (at most 4096) } }
 *
 * Encoding points a stack-built protobuf-c tree at the message's own
 * strings and bytes, so nothing is copied but the packed output. Decoding
 * is the reverse: the struct nstate_msg borrows the unpacked envelope's
 * strings and bytes. Types, name lengths and record sizes are checked
 * here, so the core only sees well-formed messages (it re-checks anyway).
 * The frame decoder has already capped the whole frame (FRAME_MAX), which
 * bounds the arrays allocated below.
 */
#include "state_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "frame.h"

/* protobuf-c wants non-const pointers even for packing. */
#define MV_STR(s) ((char *)((s) != NULL ? (s) : ""))

struct state_pb {
	Mv__Envelope env;
	Mv__StateMessage sm;
	Mv__StateVersion *ver;
	Mv__StateVersion **ver_ptrs;
	Mv__StateRecord *rec;
	Mv__StateRecord **rec_ptrs;
};

static void state_pb_release(struct state_pb *pb)
{
	free(pb->ver);
	free(pb->ver_ptrs);
	free(pb->rec);
	free(pb->rec_ptrs);
}

static int state_pb_build(const struct nstate_msg *m, struct state_pb *pb)
{
	memset(pb, 0, sizeof(*pb));
	mv__envelope__init(&pb->env);
	mv__state_message__init(&pb->sm);
	pb->env.version = ENVELOPE_VERSION;
	pb->env.from = MV_STR(m->from);
	pb->env.body_case = MV__ENVELOPE__BODY_STATE;
	pb->env.state = &pb->sm;
	pb->sm.type = (Mv__StateType)m->type;
	pb->sm.hash = m->hash;
	pb->sm.hops = m->hops;
	pb->sm.reply = m->reply;
	pb->sm.tree = m->tree;
	pb->sm.level = m->level;
	/* borrowed as for strings: protobuf-c only reads them when packing */
	pb->sm.n_nodes = m->n_nodes;
	pb->sm.nodes = (uint32_t *)m->nodes;
	pb->sm.n_hashes = m->n_hashes;
	pb->sm.hashes = (uint64_t *)m->hashes;
	if (m->n_versions > 0) {
		pb->ver = calloc(m->n_versions, sizeof(*pb->ver));
		pb->ver_ptrs = calloc(m->n_versions, sizeof(*pb->ver_ptrs));
		if (pb->ver == NULL || pb->ver_ptrs == NULL) {
			state_pb_release(pb);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->n_versions; i++) {
			Mv__StateVersion *p = &pb->ver[i];
			mv__state_version__init(p);
			p->name = MV_STR(m->versions[i].name);
			p->incarnation = m->versions[i].incarnation;
			p->version = m->versions[i].version;
			pb->ver_ptrs[i] = p;
		}
	}
	pb->sm.n_versions = m->n_versions;
	pb->sm.versions = pb->ver_ptrs;
	if (m->n_records > 0) {
		pb->rec = calloc(m->n_records, sizeof(*pb->rec));
		pb->rec_ptrs = calloc(m->n_records, sizeof(*pb->rec_ptrs));
		if (pb->rec == NULL || pb->rec_ptrs == NULL) {
			state_pb_release(pb);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->n_records; i++) {
			const struct nstate_record *r = &m->records[i];
			Mv__StateRecord *p = &pb->rec[i];
			mv__state_record__init(p);
			p->name = MV_STR(r->name);
			p->incarnation = r->incarnation;
			p->version = r->version;
			p->data.len = r->len;
			p->data.data = (uint8_t *)r->data;
			p->proof.len = r->proof != NULL ? r->proof_len : 0;
			p->proof.data = (uint8_t *)r->proof;
			pb->rec_ptrs[i] = p;
		}
	}
	pb->sm.n_records = m->n_records;
	pb->sm.records = pb->rec_ptrs;
	return 0;
}

int state_codec_encode_frame(const struct nstate_msg *m, uint8_t **out, size_t *out_len)
{
	struct state_pb pb;
	int rc = state_pb_build(m, &pb);
	if (rc < 0)
		return rc;
	rc = envelope_encode_frame(&pb.env, out, out_len);
	state_pb_release(&pb);
	return rc;
}

size_t state_codec_frame_size(const struct nstate_msg *m)
{
	struct state_pb pb;
	if (state_pb_build(m, &pb) < 0)
		return 0;
	size_t n = mv__envelope__get_packed_size(&pb.env);
	state_pb_release(&pb);
	return FRAME_HEADER_LEN + n;
}

static bool codec_str_ok(const char *s, size_t max)
{
	return s != NULL && strnlen(s, max) < max;
}

static bool codec_name_ok(const char *s)
{
	return codec_str_ok(s, NSTATE_NAME_MAX) && s[0] != '\0';
}

int state_codec_decode(const Mv__Envelope *env, struct nstate_msg *m,
                       struct nstate_version **versions_out, struct nstate_record **records_out,
                       const char **why)
{
	*versions_out = NULL;
	*records_out = NULL;
	memset(m, 0, sizeof(*m));
	if (env->body_case != MV__ENVELOPE__BODY_STATE || env->state == NULL) {
		*why = "not a node-state message";
		return -EINVAL;
	}
	const Mv__StateMessage *sm = env->state;
	if ((int)sm->type < NSTATE_SYNC || (int)sm->type > NSTATE_TREE) {
		*why = "unknown node-state message type";
		return -EINVAL;
	}
	if (!codec_name_ok(env->from)) {
		*why = "node-state message with a missing or oversized sender name";
		return -EINVAL;
	}
	struct nstate_version *vs = NULL;
	struct nstate_record *rs = NULL;
	if (sm->n_versions > 0) {
		vs = calloc(sm->n_versions, sizeof(*vs));
		if (vs == NULL) {
			*why = "out of memory";
			return -ENOMEM;
		}
	}
	if (sm->n_records > 0) {
		rs = calloc(sm->n_records, sizeof(*rs));
		if (rs == NULL) {
			free(vs);
			*why = "out of memory";
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < sm->n_versions; i++) {
		const Mv__StateVersion *p = sm->versions[i];
		if (!codec_name_ok(p->name)) {
			*why = "state version with a missing or oversized name";
			goto bad;
		}
		vs[i].name = p->name;
		vs[i].incarnation = p->incarnation;
		vs[i].version = p->version;
	}
	for (size_t i = 0; i < sm->n_records; i++) {
		const Mv__StateRecord *p = sm->records[i];
		if (!codec_name_ok(p->name)) {
			*why = "state record with a missing or oversized name";
			goto bad;
		}
		if (p->data.len > NSTATE_RECORD_MAX) {
			*why = "state record larger than NSTATE_RECORD_MAX";
			goto bad;
		}
		rs[i].name = p->name;
		rs[i].incarnation = p->incarnation;
		rs[i].version = p->version;
		if (p->proof.len > NSTATE_PROOF_MAX) {
			*why = "state record proof larger than NSTATE_PROOF_MAX";
			goto bad;
		}
		rs[i].data = p->data.len > 0 ? p->data.data : (const uint8_t *)"";
		rs[i].len = p->data.len;
		rs[i].proof = p->proof.len > 0 ? p->proof.data : NULL;
		rs[i].proof_len = p->proof.len;
	}
	if (sm->type == MV__STATE_TYPE__STATE_PUSH && sm->n_records == 0) {
		*why = "state push without a record";
		goto bad;
	}
	m->type = (enum nstate_msg_type)sm->type;
	m->from = env->from;
	m->to = "";
	m->to_addr = "";
	m->hash = sm->hash;
	m->versions = vs;
	m->n_versions = sm->n_versions;
	m->records = rs;
	m->n_records = sm->n_records;
	m->hops = sm->hops;
	m->reply = sm->reply;
	m->tree = sm->tree;
	m->level = sm->level;
	m->nodes = sm->nodes;
	m->n_nodes = sm->n_nodes;
	m->hashes = sm->hashes;
	m->n_hashes = sm->n_hashes;
	/* the tree fields' bounds and order (the core's own check) */
	if (nstate_msg_check(m, why) < 0) {
		memset(m, 0, sizeof(*m));
		goto bad;
	}
	*versions_out = vs;
	*records_out = rs;
	*why = "";
	return 0;
bad:
	free(vs);
	free(rs);
	return -EINVAL;
}

struct placement_host state_codec_placement_host(const Mv__NodeState *s, bool alive)
{
	return (struct placement_host){
	    .name = s->name,
	    .alive = alive,
	    .healthy = s->libvirt_reachable,
	    .draining = s->draining,
	    .cpus = s->cpus,
	    .cpu_overcommit = s->cpu_overcommit,
	    .vcpus_allocated = s->vcpus_allocated,
	    .memory_kib = s->memory_kib,
	    .memory_reserved_kib = s->memory_reserved_kib,
	    .memory_overcommit = s->memory_overcommit,
	    .memory_allocated_kib = s->memory_allocated_kib,
	};
}
