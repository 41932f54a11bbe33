/*
 * test_state_codec.c — struct nstate_msg <-> framed mv.Envelope{state}.
 *
 * Round trips of every message type (what goes in comes out, and
 * state_codec_frame_size() is the exact frame length), the VM desired
 * state inside a node state record (and an older record without it), and
 * the decoder's refusals: another body, an unknown type, missing or
 * oversized names, a record over NSTATE_RECORD_MAX, a push without a
 * record, and malformed or oversized bucket-tree fields (a TREE past the
 * leaves, with hashes not 16 per node or more nodes than its level has; a
 * DIGEST listing too many buckets or one outside the tree).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "frame.h"
#include "state_codec.h"

/* Encodes m, checks the size, decodes the frame back into *env. */
static Mv__Envelope *roundtrip_env(const struct nstate_msg *m)
{
	uint8_t *f = NULL;
	size_t n = 0;
	assert_int_equal(state_codec_encode_frame(m, &f, &n), 0);
	assert_int_equal(n, state_codec_frame_size(m));
	assert_true(n > FRAME_HEADER_LEN);
	uint32_t len = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
	assert_int_equal(len, n - FRAME_HEADER_LEN);
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	assert_int_equal(envelope_decode(f + FRAME_HEADER_LEN, n - FRAME_HEADER_LEN, &env, &why),
	                 0);
	free(f);
	return env;
}

static void check_same(const struct nstate_msg *a, const struct nstate_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_string_equal(a->from, b->from);
	assert_int_equal(a->hash, b->hash);
	assert_int_equal(a->hops, b->hops);
	assert_int_equal(a->reply, b->reply);
	assert_int_equal(a->n_versions, b->n_versions);
	assert_int_equal(a->n_records, b->n_records);
	assert_int_equal(a->tree, b->tree);
	assert_int_equal(a->level, b->level);
	assert_int_equal(a->n_nodes, b->n_nodes);
	assert_int_equal(a->n_hashes, b->n_hashes);
	if (a->n_nodes)
		assert_memory_equal(a->nodes, b->nodes, a->n_nodes * sizeof(*a->nodes));
	if (a->n_hashes)
		assert_memory_equal(a->hashes, b->hashes, a->n_hashes * sizeof(*a->hashes));
	for (size_t i = 0; i < a->n_versions; i++) {
		assert_string_equal(a->versions[i].name, b->versions[i].name);
		assert_int_equal(a->versions[i].incarnation, b->versions[i].incarnation);
		assert_int_equal(a->versions[i].version, b->versions[i].version);
	}
	for (size_t i = 0; i < a->n_records; i++) {
		assert_string_equal(a->records[i].name, b->records[i].name);
		assert_int_equal(a->records[i].incarnation, b->records[i].incarnation);
		assert_int_equal(a->records[i].version, b->records[i].version);
		assert_int_equal(a->records[i].len, b->records[i].len);
		if (a->records[i].len)
			assert_memory_equal(a->records[i].data, b->records[i].data,
			                    a->records[i].len);
		assert_int_equal(a->records[i].proof_len, b->records[i].proof_len);
		if (a->records[i].proof_len)
			assert_memory_equal(a->records[i].proof, b->records[i].proof,
			                    a->records[i].proof_len);
	}
}

static void roundtrip(const struct nstate_msg *m)
{
	Mv__Envelope *env = roundtrip_env(m);
	struct nstate_msg back;
	struct nstate_version *vs = NULL;
	struct nstate_record *rs = NULL;
	const char *why = NULL;
	assert_int_equal(state_codec_decode(env, &back, &vs, &rs, &why), 0);
	assert_string_equal(why, "");
	check_same(m, &back);
	assert_string_equal(back.to, "");
	assert_string_equal(back.to_addr, "");
	free(vs);
	free(rs);
	envelope_free(env);
}

static void test_roundtrip_all_types(void **state)
{
	struct nstate_msg sync = {.type = NSTATE_SYNC,
	                          .from = "n1",
	                          .to = "n2",
	                          .to_addr = "10.0.0.2:7946",
	                          .hash = 0xfedcba9876543210ULL};
	roundtrip(&sync);
	sync.hash = 0; /* defaults vanish on the wire and come back */
	roundtrip(&sync);

	struct nstate_version vs[3] = {
	    {"n1", 1, 2}, {"n2", 0, 0}, {"a-long-host-name.example", 99, 1ULL << 40}};
	struct nstate_msg digest = {
	    .type = NSTATE_DIGEST, .from = "n2", .hash = 42, .versions = vs, .n_versions = 3};
	roundtrip(&digest);

	static uint8_t data[900];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 7);
	/* the first with its owner's proof (opaque here), the second without */
	struct nstate_record rs[2] = {{"n1", 3, 4, data, sizeof(data), data + 100, 72},
	                              {"n3", 1, 0, data, 0, NULL, 0}};
	struct nstate_msg delta = {.type = NSTATE_DELTA,
	                           .from = "n1",
	                           .versions = vs,
	                           .n_versions = 2,
	                           .records = rs,
	                           .n_records = 2,
	                           .reply = true};
	roundtrip(&delta);

	struct nstate_msg push = {
	    .type = NSTATE_PUSH, .from = "n1", .records = rs, .n_records = 1, .hops = 6};
	roundtrip(&push);

	/* the bucket tree: SYNC says it speaks it, TREE carries 16 hashes per
	 * node, a DIGEST lists the buckets it covers */
	sync.tree = NSTATE_TREE_V1;
	roundtrip(&sync);
	static uint64_t h[32];
	for (size_t i = 0; i < 32; i++)
		h[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
	static const uint32_t nodes[2] = {7, 200};
	struct nstate_msg tree = {.type = NSTATE_TREE, .from = "n1", .level = 2};
	tree.nodes = nodes;
	tree.n_nodes = 2;
	tree.hashes = h;
	tree.n_hashes = 32;
	roundtrip(&tree);
	static const uint32_t leaves[3] = {0, 5, 4095};
	digest.level = 3;
	digest.nodes = leaves;
	digest.n_nodes = 3;
	roundtrip(&digest);
}

/* A node state record carries each VM's desired state (VmInfo.desired,
 * issue 9) through a push: stopped comes back stopped; running, the
 * default, is not on the wire at all, so a record of an older agent (no
 * field 10) reads as running, and older agents read ours. */
static void test_vm_desired_in_record(void **state)
{
	(void)state;
	Mv__VmInfo vm[2];
	Mv__VmInfo *vp[2] = {&vm[0], &vm[1]};
	for (int i = 0; i < 2; i++) {
		mv__vm_info__init(&vm[i]);
		vm[i].uuid = i ? "22222222-2222-3333-4444-555555555555"
		               : "11111111-2222-3333-4444-555555555555";
		vm[i].name = i ? "web1" : "db1";
		vm[i].state = MV__VM_STATE__VM_SHUTOFF;
		vm[i].ha = true;
		vm[i].owner_epoch = 3;
	}
	vm[0].desired = MV__VM_DESIRED__VM_DESIRED_STOPPED;
	vm[1].desired = MV__VM_DESIRED__VM_DESIRED_RUNNING;
	Mv__NodeState ns;
	mv__node_state__init(&ns);
	ns.name = "n1";
	ns.incarnation = 2;
	ns.version = 9;
	ns.n_vms = 2;
	ns.vms = vp;
	uint8_t buf[512];
	size_t len = mv__node_state__get_packed_size(&ns);
	assert_true(len <= sizeof(buf));
	mv__node_state__pack(&ns, buf);
	/* running is the default: not on the wire (stopped costs 2 bytes) */
	Mv__VmInfo stopped = vm[1];
	stopped.desired = MV__VM_DESIRED__VM_DESIRED_STOPPED;
	assert_int_equal(mv__vm_info__get_packed_size(&stopped),
	                 mv__vm_info__get_packed_size(&vm[1]) + 2);

	struct nstate_record rs[1] = {{"n1", 2, 9, buf, len, NULL, 0}};
	struct nstate_msg push = {.type = NSTATE_PUSH, .from = "n1", .records = rs, .n_records = 1};
	Mv__Envelope *env = roundtrip_env(&push);
	struct nstate_msg back;
	struct nstate_version *vs = NULL;
	struct nstate_record *rb = NULL;
	const char *why = NULL;
	assert_int_equal(state_codec_decode(env, &back, &vs, &rb, &why), 0);
	assert_int_equal(back.n_records, 1);
	Mv__NodeState *got = mv__node_state__unpack(NULL, rb[0].len, rb[0].data);
	assert_non_null(got);
	assert_int_equal(got->n_vms, 2);
	assert_string_equal(got->vms[0]->name, "db1");
	assert_int_equal(got->vms[0]->desired, MV__VM_DESIRED__VM_DESIRED_STOPPED);
	assert_string_equal(got->vms[1]->name, "web1");
	assert_int_equal(got->vms[1]->desired, MV__VM_DESIRED__VM_DESIRED_RUNNING);
	assert_true(got->vms[0]->ha);
	assert_int_equal(got->vms[0]->owner_epoch, 3);
	mv__node_state__free_unpacked(got, NULL);
	free(vs);
	free(rb);
	envelope_free(env);

	/* An older agent's VmInfo: name (1), uuid (2), state SHUTOFF (3), ha
	 * (6), and no desired: running. */
	static const uint8_t old[] = {0x0a, 0x03, 'o',  'l',  'd',  0x12,
	                              0x01, 'u',  0x18, 0x03, 0x30, 0x01};
	Mv__VmInfo *ov = mv__vm_info__unpack(NULL, sizeof(old), old);
	assert_non_null(ov);
	assert_string_equal(ov->name, "old");
	assert_true(ov->ha);
	assert_int_equal(ov->state, MV__VM_STATE__VM_SHUTOFF);
	assert_int_equal(ov->desired, MV__VM_DESIRED__VM_DESIRED_RUNNING);
	mv__vm_info__free_unpacked(ov, NULL);
}

/* Packs an envelope (possibly invalid for the codec) and tries to decode. */
static int decode_env(Mv__Envelope *e, const char **why)
{
	size_t n = mv__envelope__get_packed_size(e);
	uint8_t *buf = malloc(n + 1);
	assert_non_null(buf);
	mv__envelope__pack(e, buf);
	Mv__Envelope *env = NULL;
	const char *ewhy = NULL;
	int rc = envelope_decode(buf, n, &env, &ewhy);
	free(buf);
	if (rc != 0) {
		*why = ewhy;
		return rc;
	}
	struct nstate_msg m;
	struct nstate_version *vs = (void *)1;
	struct nstate_record *rs = (void *)1;
	rc = state_codec_decode(env, &m, &vs, &rs, why);
	if (rc != 0) {
		assert_null(vs);
		assert_null(rs);
	}
	free(vs);
	free(rs);
	envelope_free(env);
	return rc;
}

struct pbmsg {
	Mv__Envelope env;
	Mv__StateMessage sm;
	Mv__StateVersion v;
	Mv__StateVersion *vp[1];
	Mv__StateRecord r;
	Mv__StateRecord *rp[1];
};

static void pb_init(struct pbmsg *p)
{
	mv__envelope__init(&p->env);
	mv__state_message__init(&p->sm);
	mv__state_version__init(&p->v);
	mv__state_record__init(&p->r);
	p->env.version = ENVELOPE_VERSION;
	p->env.from = "n1";
	p->env.body_case = MV__ENVELOPE__BODY_STATE;
	p->env.state = &p->sm;
	p->v.name = "n2";
	p->vp[0] = &p->v;
	p->r.name = "n3";
	p->rp[0] = &p->r;
	p->sm.type = MV__STATE_TYPE__STATE_DELTA;
}

static void test_decode_rejects(void **state)
{
	char longname[NSTATE_NAME_MAX + 1];
	memset(longname, 'x', NSTATE_NAME_MAX);
	longname[NSTATE_NAME_MAX] = '\0';
	const char *why = NULL;
	struct pbmsg p;

	/* the reference: valid */
	pb_init(&p);
	p.sm.n_versions = 1;
	p.sm.versions = p.vp;
	p.sm.n_records = 1;
	p.sm.records = p.rp;
	assert_int_equal(decode_env(&p.env, &why), 0);

	/* not a state body */
	pb_init(&p);
	Mv__SwimMessage sw;
	mv__swim_message__init(&sw);
	p.env.body_case = MV__ENVELOPE__BODY_SWIM;
	p.env.swim = &sw;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "not a node-state"));

	/* unknown type */
	pb_init(&p);
	p.sm.type = (Mv__StateType)7;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "type"));

	/* sender name missing, too long */
	pb_init(&p);
	p.env.from = "";
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	pb_init(&p);
	p.env.from = longname;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "sender"));

	/* version name too long, empty */
	pb_init(&p);
	p.v.name = longname;
	p.sm.n_versions = 1;
	p.sm.versions = p.vp;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "version"));
	p.v.name = "";
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);

	/* record name too long */
	pb_init(&p);
	p.r.name = longname;
	p.sm.n_records = 1;
	p.sm.records = p.rp;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "record"));

	/* record data over NSTATE_RECORD_MAX (the frame itself is fine) */
	pb_init(&p);
	uint8_t *big = calloc(1, NSTATE_RECORD_MAX + 1);
	assert_non_null(big);
	p.r.data.data = big;
	p.r.data.len = NSTATE_RECORD_MAX + 1;
	p.sm.n_records = 1;
	p.sm.records = p.rp;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "NSTATE_RECORD_MAX"));
	/* exactly the maximum is accepted */
	p.r.data.len = NSTATE_RECORD_MAX;
	assert_int_equal(decode_env(&p.env, &why), 0);
	/* a proof over NSTATE_PROOF_MAX; exactly the maximum is accepted */
	p.r.data.len = 10;
	p.r.proof.data = big;
	p.r.proof.len = NSTATE_PROOF_MAX + 1;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "NSTATE_PROOF_MAX"));
	p.r.proof.len = NSTATE_PROOF_MAX;
	assert_int_equal(decode_env(&p.env, &why), 0);
	free(big);

	/* push without a record */
	pb_init(&p);
	p.sm.type = MV__STATE_TYPE__STATE_PUSH;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "push"));

	/* the bucket tree: refused with the core's reason (nstate_msg_check),
	 * the borrowed arrays never copied */
	static uint64_t hashes[4097];
	static uint32_t nodes[4097];
	for (uint32_t k = 0; k < 4097; k++)
		nodes[k] = k;
	pb_init(&p);
	p.sm.type = MV__STATE_TYPE__STATE_TREE;
	p.sm.level = 1;
	p.sm.n_nodes = 1;
	p.sm.nodes = nodes;
	p.sm.n_hashes = 16;
	p.sm.hashes = hashes;
	assert_int_equal(decode_env(&p.env, &why), 0); /* the reference */
	p.sm.level = 3;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "tree level"));
	p.sm.level = 1;
	p.sm.n_hashes = 15;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "16 per node"));
	p.sm.level = 2; /* 257 nodes: more than level 2 has (oversized) */
	p.sm.n_nodes = 257;
	p.sm.n_hashes = 257 * 16;
	static uint64_t many[257 * 16];
	p.sm.hashes = many;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "more nodes"));
	pb_init(&p); /* a digest listing 4097 buckets, or one past the tree */
	p.sm.type = MV__STATE_TYPE__STATE_DIGEST;
	p.sm.level = 3;
	p.sm.n_nodes = 4097;
	p.sm.nodes = nodes;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "digest bucket"));
	p.sm.n_nodes = 1;
	p.sm.nodes = nodes + 4096;
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "digest bucket"));
	p.sm.nodes = nodes + 4095;
	assert_int_equal(decode_env(&p.env, &why), 0);
	p.sm.level = 0; /* buckets of no depth */
	assert_int_equal(decode_env(&p.env, &why), -EINVAL);
	assert_non_null(strstr(why, "digest level"));
}

static void test_frame_size_matches(void **state)
{
	/* the byte counts the simulator reports rely on this equality */
	static uint8_t data[700];
	struct nstate_record rs[20];
	struct nstate_version vs[20];
	char names[20][16];
	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "host-%d", i * 37);
		rs[i] = (struct nstate_record){
		    names[i], (uint64_t)i, (uint64_t)i * 1000, data, (size_t)i * 35, NULL, 0};
		vs[i] = (struct nstate_version){names[i], (uint64_t)i * 3, (uint64_t)i};
	}
	for (size_t n = 0; n <= 20; n += 5) {
		struct nstate_msg m = {.type = NSTATE_DELTA,
		                       .from = "n0",
		                       .versions = vs,
		                       .n_versions = n,
		                       .records = rs,
		                       .n_records = n,
		                       .reply = n > 0};
		uint8_t *f = NULL;
		size_t len = 0;
		assert_int_equal(state_codec_encode_frame(&m, &f, &len), 0);
		assert_int_equal(len, state_codec_frame_size(&m));
		free(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_all_types),
	    cmocka_unit_test(test_decode_rejects),
	    cmocka_unit_test(test_frame_size_matches),
	    cmocka_unit_test(test_vm_desired_in_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
