/*
 * swim_codec.c — translate between the membership core's struct swim_msg
 * and the wire's mv.SwimMessage inside an mv.Envelope.
 *
 * Encoding points a stack-built protobuf-c tree at the message's own
 * strings, so nothing is copied but the packed bytes. Decoding is the
 * reverse: the struct swim_msg borrows the unpacked envelope's strings. Enum
 * values and string lengths are checked here, so the core only ever sees
 * well-formed messages (the core re-checks names it stores).
 */
#include "swim_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "frame.h"

/* protobuf-c wants non-const char * even for packing. */
#define MV_STR(s) ((char *)((s) != NULL ? (s) : ""))

struct swim_pb {
	Mv__Envelope env;
	Mv__SwimMessage sm;
	Mv__MemberUpdate *upd;
	Mv__MemberUpdate **upd_ptrs;
};

static int swim_pb_build(const struct swim_msg *m, struct swim_pb *pb)
{
	mv__envelope__init(&pb->env);
	mv__swim_message__init(&pb->sm);
	pb->upd = NULL;
	pb->upd_ptrs = NULL;
	pb->env.version = ENVELOPE_VERSION;
	pb->env.from = MV_STR(m->from);
	pb->env.body_case = MV__ENVELOPE__BODY_SWIM;
	pb->env.swim = &pb->sm;
	pb->sm.type = (Mv__SwimType)m->type;
	pb->sm.seq = m->seq;
	pb->sm.from_addr = MV_STR(m->from_addr);
	pb->sm.to = MV_STR(m->to);
	pb->sm.target = MV_STR(m->target);
	pb->sm.target_addr = MV_STR(m->target_addr);
	pb->sm.join = m->join;
	pb->sm.refused = m->refused;
	/* protobuf-c reads the arrays only (const-cast, as MV_STR). */
	pb->sm.n_digest = m->n_digest;
	pb->sm.digest = (uint64_t *)m->digest;
	pb->sm.n_want = m->n_want;
	pb->sm.want = (uint32_t *)m->want;
	pb->sm.buckets = m->buckets;
	if (m->n_updates > 0) {
		pb->upd = calloc(m->n_updates, sizeof(*pb->upd));
		pb->upd_ptrs = calloc(m->n_updates, sizeof(*pb->upd_ptrs));
		if (pb->upd == NULL || pb->upd_ptrs == NULL) {
			free(pb->upd);
			free(pb->upd_ptrs);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->n_updates; i++) {
			const struct swim_update *u = &m->updates[i];
			Mv__MemberUpdate *p = &pb->upd[i];
			mv__member_update__init(p);
			p->name = MV_STR(u->name);
			p->addr = MV_STR(u->addr);
			p->incarnation = u->incarnation;
			p->state = (Mv__MemberState)u->state;
			p->origin = MV_STR(u->origin);
			/* a LEFT's proof of leaving has a field of its own
			 * (older agents cap `proof` at 512 bytes) */
			ProtobufCBinaryData *pf =
			    u->state == SWIM_LEFT ? &p->left_proof : &p->proof;
			pf->data = (uint8_t *)u->proof;
			pf->len = u->proof ? u->proof_len : 0;
			pb->upd_ptrs[i] = p;
		}
	}
	pb->sm.n_updates = m->n_updates;
	pb->sm.updates = pb->upd_ptrs;
	return 0;
}

static void swim_pb_release(struct swim_pb *pb)
{
	free(pb->upd);
	free(pb->upd_ptrs);
}

int swim_codec_encode_frame(const struct swim_msg *m, uint8_t **out, size_t *out_len)
{
	struct swim_pb pb;
	int rc = swim_pb_build(m, &pb);
	if (rc < 0)
		return rc;
	rc = envelope_encode_frame(&pb.env, out, out_len);
	swim_pb_release(&pb);
	return rc;
}

size_t swim_codec_frame_size(const struct swim_msg *m)
{
	struct swim_pb pb;
	if (swim_pb_build(m, &pb) < 0)
		return 0;
	size_t n = mv__envelope__get_packed_size(&pb.env);
	swim_pb_release(&pb);
	return FRAME_HEADER_LEN + n;
}

static bool codec_str_ok(const char *s, size_t max)
{
	return s != NULL && strnlen(s, max) < max;
}

int swim_codec_decode(const Mv__Envelope *env, struct swim_msg *m, struct swim_update **updates_out,
                      const char **why)
{
	*updates_out = NULL;
	memset(m, 0, sizeof(*m));
	if (env->body_case != MV__ENVELOPE__BODY_SWIM || env->swim == NULL) {
		*why = "not a membership message";
		return -EINVAL;
	}
	const Mv__SwimMessage *sm = env->swim;
	if ((int)sm->type < SWIM_MSG_PING || (int)sm->type > SWIM_MSG_PUSH_PULL_REPLY) {
		/* a newer agent's: dropped, not a protocol violation (envelope.h) */
		*why = "membership message of a type this version does not know";
		return -ENOMSG;
	}
	if (!codec_str_ok(env->from, SWIM_NAME_MAX) || !codec_str_ok(sm->to, SWIM_NAME_MAX) ||
	    !codec_str_ok(sm->target, SWIM_NAME_MAX) ||
	    !codec_str_ok(sm->from_addr, SWIM_ADDR_MAX) ||
	    !codec_str_ok(sm->target_addr, SWIM_ADDR_MAX)) {
		*why = "name or address too long";
		return -EINVAL;
	}
	/* Digest fields (see swim.h): caps before the core sees them, so a
	 * peer cannot make us scan or answer more than SWIM_DIGEST_MAX
	 * buckets. */
	if (sm->n_digest > SWIM_DIGEST_MAX) {
		*why = "push-pull digest with more than 1024 buckets";
		return -EINVAL;
	}
	if (sm->n_digest & (sm->n_digest - 1)) {
		*why = "push-pull digest whose bucket count is not a power of two";
		return -EINVAL;
	}
	if (sm->n_want > 0 || sm->buckets != 0) {
		if (sm->buckets == 0 || sm->buckets > SWIM_DIGEST_MAX ||
		    (sm->buckets & (sm->buckets - 1))) {
			*why = "push-pull reply with a bucket count not a power of two up to 1024";
			return -EINVAL;
		}
		if (sm->n_want > sm->buckets) {
			*why = "push-pull reply wants more buckets than there are";
			return -EINVAL;
		}
		for (size_t i = 0; i < sm->n_want; i++)
			if (sm->want[i] >= sm->buckets) {
				*why = "push-pull reply wants a bucket out of range";
				return -EINVAL;
			}
	}
	struct swim_update *ups = NULL;
	if (sm->n_updates > 0) {
		ups = calloc(sm->n_updates, sizeof(*ups));
		if (ups == NULL) {
			*why = "out of memory";
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < sm->n_updates; i++) {
		const Mv__MemberUpdate *p = sm->updates[i];
		if (!codec_str_ok(p->name, SWIM_NAME_MAX) ||
		    !codec_str_ok(p->addr, SWIM_ADDR_MAX) ||
		    !codec_str_ok(p->origin, SWIM_NAME_MAX) || p->name[0] == '\0') {
			*why = "member update with a missing or oversized name or address";
			free(ups);
			return -EINVAL;
		}
		if ((int)p->state < SWIM_ALIVE || (int)p->state > SWIM_LEFT) {
			*why = "member update with an unknown state";
			free(ups);
			return -EINVAL;
		}
		if (p->proof.len > SWIM_PROOF_MAX || p->left_proof.len > SWIM_LEFT_PROOF_MAX) {
			*why = "member update with an oversized proof";
			free(ups);
			return -EINVAL;
		}
		/* a LEFT's proof is its left_proof (a `proof` on it is
		 * ignored), any other state's its proof */
		const ProtobufCBinaryData *pf =
		    p->state == MV__MEMBER_STATE__MEMBER_LEFT ? &p->left_proof : &p->proof;
		ups[i].name = p->name;
		ups[i].addr = p->addr;
		ups[i].incarnation = p->incarnation;
		ups[i].state = (enum swim_state)p->state;
		ups[i].origin = p->origin;
		ups[i].proof = pf->len ? pf->data : NULL;
		ups[i].proof_len = pf->len;
	}
	m->type = (enum swim_msg_type)sm->type;
	m->from = env->from;
	m->from_addr = sm->from_addr;
	m->to = sm->to;
	m->to_addr = "";
	m->seq = sm->seq;
	m->target = sm->target;
	m->target_addr = sm->target_addr;
	m->join = sm->join;
	m->refused = sm->refused;
	m->updates = ups;
	m->n_updates = sm->n_updates;
	m->digest = sm->digest;
	m->n_digest = sm->n_digest;
	m->want = sm->want;
	m->n_want = sm->n_want;
	m->buckets = sm->buckets;
	*updates_out = ups;
	*why = "";
	return 0;
}
