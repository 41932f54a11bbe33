/* test_envelope.c — envelope decode/encode and the SWIM codec round trip. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.h"
#include "frame.h"
#include "swim_codec.h"

static void test_request_round_trip(void **state)
{
	(void)state;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	Mv__MembersRequest mr = MV__MEMBERS_REQUEST__INIT;
	env.version = ENVELOPE_VERSION;
	env.body_case = MV__ENVELOPE__BODY_REQUEST;
	env.request = &req;
	req.id = 42;
	req.op_case = MV__RPC_REQUEST__OP_MEMBERS;
	req.members = &mr;
	uint8_t *buf;
	size_t len;
	assert_int_equal(envelope_encode_frame(&env, &buf, &len), 0);
	uint32_t declared =
	    ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) | ((uint32_t)buf[2] << 8) | buf[3];
	assert_int_equal(declared, len - FRAME_HEADER_LEN);

	Mv__Envelope *out;
	const char *why;
	assert_int_equal(envelope_decode(buf + 4, len - 4, &out, &why), 0);
	assert_int_equal(out->body_case, MV__ENVELOPE__BODY_REQUEST);
	assert_int_equal(out->request->id, 42);
	assert_int_equal(out->request->op_case, MV__RPC_REQUEST__OP_MEMBERS);
	envelope_free(out);
	free(buf);
}

static void test_garbage_rejected(void **state)
{
	(void)state;
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
	Mv__Envelope *out = (Mv__Envelope *)1;
	const char *why = NULL;
	assert_int_equal(envelope_decode(junk, sizeof(junk), &out, &why), -EBADMSG);
	assert_null(out);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
}

static void test_wrong_version_rejected(void **state)
{
	(void)state;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	env.version = 99;
	env.body_case = MV__ENVELOPE__BODY_REQUEST;
	env.request = &req;
	uint8_t *buf;
	size_t len;
	assert_int_equal(envelope_encode_frame(&env, &buf, &len), 0);
	Mv__Envelope *out;
	const char *why;
	assert_int_equal(envelope_decode(buf + 4, len - 4, &out, &why), -EPROTO);
	assert_string_equal(why, "unsupported wire version");
	free(buf);
}

static void test_missing_body_rejected(void **state)
{
	(void)state;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.from = "n1";
	uint8_t *buf;
	size_t len;
	assert_int_equal(envelope_encode_frame(&env, &buf, &len), 0);
	Mv__Envelope *out;
	const char *why;
	assert_int_equal(envelope_decode(buf + 4, len - 4, &out, &why), -EBADMSG);
	assert_string_equal(why, "envelope carries no body");
	free(buf);
}

/* m through the codec and back: frame (its size as predicted), envelope,
 * swim_msg *d (borrowing *env; the caller frees *dups, *env, *buf). */
static void swim_through_wire(const struct swim_msg *m, uint8_t **buf, Mv__Envelope **env,
                              struct swim_msg *d, struct swim_update **dups)
{
	size_t len;
	const char *why;
	assert_int_equal(swim_codec_encode_frame(m, buf, &len), 0);
	assert_int_equal(swim_codec_frame_size(m), len);
	assert_int_equal(envelope_decode(*buf + 4, len - 4, env, &why), 0);
	assert_int_equal(swim_codec_decode(*env, d, dups, &why), 0);
}

static void test_swim_round_trip(void **state)
{
	(void)state;
	struct swim_update ups[2] = {
	    {.name = "n2",
	     .addr = "10.0.0.2:7946",
	     .incarnation = 7,
	     .state = SWIM_SUSPECT,
	     .origin = "n1"},
	    {.name = "n3",
	     .addr = "[::1]:7946",
	     .incarnation = 1,
	     .state = SWIM_LEFT,
	     .origin = "n3",
	     .proof = (const uint8_t *)"sig\0of n3",
	     .proof_len = 9},
	};
	struct swim_msg m = {.type = SWIM_MSG_PING_REQ,
	                     .from = "n1",
	                     .from_addr = "10.0.0.1:7946",
	                     .to = "n4",
	                     .to_addr = "10.0.0.4:7946",
	                     .seq = 99,
	                     .target = "n2",
	                     .target_addr = "10.0.0.2:7946",
	                     .updates = ups,
	                     .n_updates = 2};
	uint8_t *buf;
	Mv__Envelope *env;
	struct swim_msg d;
	struct swim_update *dups;
	swim_through_wire(&m, &buf, &env, &d, &dups);
	assert_int_equal(d.type, SWIM_MSG_PING_REQ);
	assert_string_equal(d.from, "n1");
	assert_string_equal(d.from_addr, "10.0.0.1:7946");
	assert_string_equal(d.to, "n4");
	assert_int_equal(d.seq, 99);
	assert_string_equal(d.target, "n2");
	assert_int_equal(d.n_updates, 2);
	assert_string_equal(d.updates[0].name, "n2");
	assert_int_equal(d.updates[0].state, SWIM_SUSPECT);
	assert_int_equal(d.updates[0].incarnation, 7);
	assert_string_equal(d.updates[1].addr, "[::1]:7946");
	assert_int_equal(d.updates[1].state, SWIM_LEFT);
	assert_int_equal(d.updates[0].proof_len, 0);
	assert_int_equal(d.updates[1].proof_len, 9); /* byte for byte, NUL included */
	assert_memory_equal(d.updates[1].proof, "sig\0of n3", 9);
	free(dups);
	envelope_free(env);
	free(buf);
}

/* NACK.refused (issue 11) survives the codec both ways, and is absent
 * (false) unless set: a plain NACK is not a refusal. */
static void test_swim_nack_refused_round_trip(void **state)
{
	(void)state;
	for (int refused = 0; refused < 2; refused++) {
		struct swim_msg m = {.type = SWIM_MSG_NACK,
		                     .from = "n1",
		                     .from_addr = "10.0.0.1:7946",
		                     .to = "n4",
		                     .to_addr = "10.0.0.4:7946",
		                     .seq = 7,
		                     .target = "n2",
		                     .target_addr = "",
		                     .refused = refused != 0};
		uint8_t *buf;
		size_t len;
		assert_int_equal(swim_codec_encode_frame(&m, &buf, &len), 0);
		assert_int_equal(swim_codec_frame_size(&m), len);
		Mv__Envelope *env;
		const char *why;
		assert_int_equal(envelope_decode(buf + 4, len - 4, &env, &why), 0);
		assert_int_equal(env->swim->refused, refused != 0);
		struct swim_msg d;
		struct swim_update *dups;
		assert_int_equal(swim_codec_decode(env, &d, &dups, &why), 0);
		assert_int_equal(d.type, SWIM_MSG_NACK);
		assert_string_equal(d.target, "n2");
		assert_int_equal(d.seq, 7);
		assert_int_equal(d.refused, refused != 0);
		free(dups);
		envelope_free(env);
		free(buf);
	}
}

static Mv__Envelope *encode_decode_raw(Mv__Envelope *env, uint8_t **buf)
{
	size_t len;
	assert_int_equal(envelope_encode_frame(env, buf, &len), 0);
	Mv__Envelope *out;
	const char *why;
	assert_int_equal(envelope_decode(*buf + 4, len - 4, &out, &why), 0);
	return out;
}

static void test_swim_bad_enum_and_long_name_rejected(void **state)
{
	(void)state;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	Mv__SwimMessage sm = MV__SWIM_MESSAGE__INIT;
	env.version = ENVELOPE_VERSION;
	env.from = "n1";
	env.body_case = MV__ENVELOPE__BODY_SWIM;
	env.swim = &sm;
	sm.type = (Mv__SwimType)17;
	uint8_t *buf;
	Mv__Envelope *out = encode_decode_raw(&env, &buf);
	struct swim_msg d;
	struct swim_update *dups;
	const char *why;
	/* a newer agent's type: -ENOMSG (dropped, the connection kept), not
	 * -EINVAL (a violation, the connection closed) */
	assert_int_equal(swim_codec_decode(out, &d, &dups, &why), -ENOMSG);
	assert_string_equal(why, "membership message of a type this version does not know");
	envelope_free(out);
	free(buf);

	char longname[100];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	Mv__MemberUpdate u = MV__MEMBER_UPDATE__INIT;
	Mv__MemberUpdate *up = &u;
	u.name = longname;
	sm.type = MV__SWIM_TYPE__SWIM_PING;
	sm.n_updates = 1;
	sm.updates = &up;
	out = encode_decode_raw(&env, &buf);
	assert_int_equal(swim_codec_decode(out, &d, &dups, &why), -EINVAL);
	assert_null(dups);
	envelope_free(out);
	free(buf);

	u.name = "n5";
	u.state = (Mv__MemberState)9;
	out = encode_decode_raw(&env, &buf);
	assert_int_equal(swim_codec_decode(out, &d, &dups, &why), -EINVAL);
	assert_string_equal(why, "member update with an unknown state");
	envelope_free(out);
	free(buf);

	/* a proof over SWIM_PROOF_MAX bytes (issue 13) */
	uint8_t proof[SWIM_PROOF_MAX + 1] = {0};
	u.state = MV__MEMBER_STATE__MEMBER_ALIVE;
	u.proof.data = proof;
	u.proof.len = sizeof(proof);
	out = encode_decode_raw(&env, &buf);
	assert_int_equal(swim_codec_decode(out, &d, &dups, &why), -EINVAL);
	assert_string_equal(why, "member update with an oversized proof");
	envelope_free(out);
	free(buf);
}

/* Digest fields round-trip, and each malformed digest is rejected with its
 * reason before the core sees it (issue 12). */
static void test_swim_digest_round_trip_and_rejected(void **state)
{
	(void)state;
	uint64_t digest[4] = {0, 1, 0xfedcba9876543210ULL, 7};
	uint32_t want[2] = {1, 3};
	struct swim_msg m = {.type = SWIM_MSG_PUSH_PULL_REPLY,
	                     .from = "n1",
	                     .from_addr = "10.0.0.1:7946",
	                     .to = "n2",
	                     .to_addr = "",
	                     .target = "",
	                     .target_addr = "",
	                     .digest = digest,
	                     .n_digest = 4,
	                     .want = want,
	                     .n_want = 2,
	                     .buckets = 4};
	uint8_t *buf;
	Mv__Envelope *env;
	struct swim_msg d;
	struct swim_update *dups;
	swim_through_wire(&m, &buf, &env, &d, &dups);
	assert_int_equal(d.n_digest, 4);
	assert_true(d.digest[2] == digest[2]);
	assert_int_equal(d.n_want, 2);
	assert_int_equal(d.want[1], 3);
	assert_int_equal(d.buckets, 4);
	free(dups);
	envelope_free(env);
	free(buf);
	const char *why;

	static const struct {
		size_t n_digest;
		size_t n_want;
		uint32_t want0, buckets;
		const char *why;
	} bad[] = {
	    {3, 0, 0, 0, "push-pull digest whose bucket count is not a power of two"},
	    {2 * SWIM_DIGEST_MAX, 0, 0, 0, "push-pull digest with more than 1024 buckets"},
	    {0, 1, 0, 6, "push-pull reply with a bucket count not a power of two up to 1024"},
	    {0, 1, 0, 2 * SWIM_DIGEST_MAX,
	     "push-pull reply with a bucket count not a power of two up to 1024"},
	    {0, 1, 0, 0, "push-pull reply with a bucket count not a power of two up to 1024"},
	    {0, 1, 4, 4, "push-pull reply wants a bucket out of range"},
	    {0, 3, 0, 2, "push-pull reply wants more buckets than there are"},
	};
	static uint64_t big[2 * SWIM_DIGEST_MAX];
	static uint32_t w[4];
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		Mv__Envelope e = MV__ENVELOPE__INIT;
		Mv__SwimMessage sm = MV__SWIM_MESSAGE__INIT;
		e.version = ENVELOPE_VERSION;
		e.from = "n1";
		e.body_case = MV__ENVELOPE__BODY_SWIM;
		e.swim = &sm;
		sm.type = MV__SWIM_TYPE__SWIM_PUSH_PULL;
		sm.n_digest = bad[k].n_digest;
		sm.digest = big;
		w[0] = bad[k].want0;
		sm.n_want = bad[k].n_want;
		sm.want = w;
		sm.buckets = bad[k].buckets;
		Mv__Envelope *out = encode_decode_raw(&e, &buf);
		assert_int_equal(swim_codec_decode(out, &d, &dups, &why), -EINVAL);
		assert_string_equal(why, bad[k].why);
		envelope_free(out);
		free(buf);
	}
}

static void test_rpc_envelope_is_not_swim(void **state)
{
	(void)state;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	env.version = ENVELOPE_VERSION;
	env.body_case = MV__ENVELOPE__BODY_REQUEST;
	env.request = &req;
	struct swim_msg d;
	struct swim_update *dups;
	const char *why;
	assert_int_equal(swim_codec_decode(&env, &d, &dups, &why), -EINVAL);
}

/* Issue 13: unknown fields are counted before protobuf-c unpacks; a few
 * (a newer sender) pass, a flood is refused with its reason. */
static size_t status_with_unknown(uint8_t *buf, size_t n_unknown, bool nested)
{
	/* Envelope{version 1, request{id 5, status{}}} */
	size_t n = 0;
	buf[n++] = 0x08, buf[n++] = 0x01;
	size_t inner = 2 + 2 + (nested ? 3 * n_unknown : 0);
	buf[n++] = 0xa2, buf[n++] = 0x01; /* field 20, length-delimited */
	/* inner length as a varint */
	size_t v = inner;
	do {
		buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	buf[n++] = 0x08, buf[n++] = 0x05;        /* id 5 */
	buf[n++] = 0x52, buf[n++] = 0x00;        /* status {} (field 10) */
	for (size_t i = 0; i < n_unknown; i++) { /* field 1000, varint 0 */
		buf[n++] = 0xc0, buf[n++] = 0x3e, buf[n++] = 0x00;
	}
	return n;
}

static void test_unknown_fields_bounded(void **state)
{
	(void)state;
	static uint8_t buf[16 + 3 * 70000];
	Mv__Envelope *env;
	const char *why;
	for (int nested = 0; nested <= 1; nested++) {
		size_t n = status_with_unknown(buf, ENVELOPE_MAX_UNKNOWN, nested);
		assert_int_equal(envelope_decode(buf, n, &env, &why), 0);
		assert_int_equal(env->request->op_case, MV__RPC_REQUEST__OP_STATUS);
		envelope_free(env);
		n = status_with_unknown(buf, ENVELOPE_MAX_UNKNOWN + 1, nested);
		assert_int_equal(envelope_decode(buf, n, &env, &why), -EBADMSG);
		assert_null(env);
		assert_string_equal(why, "too many unknown fields");
		n = status_with_unknown(buf, 70000, nested);
		assert_int_equal(envelope_decode(buf, n, &env, &why), -EBADMSG);
		assert_string_equal(why, "too many unknown fields");
	}
	/* a malformed one is still "not valid" (a length past the end) */
	uint8_t bad[] = {0x08, 0x01, 0xa2, 0x01, 0x10, 0x08, 0x05};
	assert_int_equal(envelope_decode(bad, sizeof(bad), &env, &why), -EBADMSG);
	assert_string_equal(why, "not a valid protobuf Envelope");
}

/* Known fields are bounded too: empty sub-messages (2 bytes each, an
 * allocation each for protobuf-c) and field occurrences in all. */
static void test_field_counts_bounded(void **state)
{
	(void)state;
	static uint8_t buf[16 + 2 * (ENVELOPE_MAX_FIELDS + 2)];
	Mv__Envelope *env;
	const char *why;
	for (size_t each = 0; each < 3; each++) {
		/* Envelope{version 1, swim{type PING, seq 1, updates: N x {}}} */
		/* the swim body is a sub-message too */
		size_t n_updates[] = {1000, ENVELOPE_MAX_MESSAGES - 1, ENVELOPE_MAX_MESSAGES};
		size_t n = 0, inner = 4 + 2 * n_updates[each];
		buf[n++] = 0x08, buf[n++] = 0x01, buf[n++] = 0x52; /* field 10 */
		for (size_t v = inner;; v >>= 7) {
			buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
			if (v <= 0x7f)
				break;
		}
		buf[n++] = 0x08, buf[n++] = 0x00, buf[n++] = 0x10, buf[n++] = 0x01;
		for (size_t i = 0; i < n_updates[each]; i++)
			buf[n++] = 0x42, buf[n++] = 0x00; /* updates (field 8), empty */
		int rc = envelope_decode(buf, n, &env, &why);
		if (each < 2) {
			assert_int_equal(rc, 0);
			assert_int_equal(env->swim->n_updates, n_updates[each]);
			envelope_free(env);
		} else {
			assert_int_equal(rc, -EBADMSG);
			assert_string_equal(why, "too many fields");
		}
	}
	/* field occurrences: a swim message of seq fields (varint 0, 2 bytes) */
	size_t n = 0, count = ENVELOPE_MAX_FIELDS + 1, inner = 2 * count;
	buf[n++] = 0x08, buf[n++] = 0x01, buf[n++] = 0x52;
	for (size_t v = inner;; v >>= 7) {
		buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		if (v <= 0x7f)
			break;
	}
	for (size_t i = 0; i < count; i++)
		buf[n++] = 0x10, buf[n++] = 0x00;
	assert_int_equal(envelope_decode(buf, n, &env, &why), -EBADMSG);
	assert_string_equal(why, "too many fields");
}

/* The RPC port's size caps read the op from a frame's first bytes. */
static void test_peek_request(void **state)
{
	(void)state;
	uint64_t id;
	uint32_t op;
	/* Envelope{version 1, request{id 300, vm_create{xml ...}}} */
	uint8_t b[] = {0x08, 0x01, 0xa2, 0x01, 0x08, 0x08, 0xac,
	               0x02, 0x92, 0x01, 0x02, 0x0a, 0x00};
	assert_int_equal(envelope_peek_op(b, sizeof(b), &id, &op), 0);
	assert_int_equal(id, 300);
	assert_int_equal(op, MV__RPC_REQUEST__OP_VM_CREATE);
	/* found as soon as the op's tag is in; not before */
	assert_int_equal(envelope_peek_op(b, 10, &id, &op), 0);
	assert_int_equal(op, MV__RPC_REQUEST__OP_VM_CREATE);
	for (size_t n = 0; n < 10; n++)
		assert_int_equal(envelope_peek_op(b, n, &id, &op), -EAGAIN);
	/* a sender name first is skipped */
	uint8_t c[] = {0x08, 0x01, 0x12, 0x02, 'n', '1', 0xa2, 0x01, 0x02, 0x52, 0x00};
	assert_int_equal(envelope_peek_op(c, sizeof(c), &id, &op), 0);
	assert_int_equal(op, MV__RPC_REQUEST__OP_STATUS);
	assert_int_equal(id, 0);
	/* a swim body is no request */
	uint8_t d[] = {0x08, 0x01, 0x52, 0x02, 0x08, 0x00};
	assert_int_equal(envelope_peek_op(d, sizeof(d), &id, &op), -EBADMSG);
	/* an op past the request's declared end is no op of it */
	uint8_t e[] = {0x08, 0x01, 0xa2, 0x01, 0x00, 0x52, 0x00};
	assert_int_equal(envelope_peek_op(e, sizeof(e), &id, &op), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_round_trip),
	    cmocka_unit_test(test_garbage_rejected),
	    cmocka_unit_test(test_wrong_version_rejected),
	    cmocka_unit_test(test_missing_body_rejected),
	    cmocka_unit_test(test_swim_round_trip),
	    cmocka_unit_test(test_swim_nack_refused_round_trip),
	    cmocka_unit_test(test_swim_bad_enum_and_long_name_rejected),
	    cmocka_unit_test(test_swim_digest_round_trip_and_rejected),
	    cmocka_unit_test(test_rpc_envelope_is_not_swim),
	    cmocka_unit_test(test_unknown_fields_bounded),
	    cmocka_unit_test(test_peek_request),
	    cmocka_unit_test(test_field_counts_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
