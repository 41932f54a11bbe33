/*
 * fuzz_failover.c — libFuzzer target for the path a peer's bytes take into
 * the failover core: envelope_decode -> fo_codec_decode.
 *
 * Input: a stream of frames (4-byte BE length + Envelope payload, a short
 * last frame is cut to what is left), each one message from "the network".
 * For every envelope that decodes:
 *   - fo_codec_decode must return 0 or -EINVAL with a non-empty reason, and
 *     on refusal leave nothing allocated (ASan's leak check) and *m zeroed;
 *   - what it accepts must stay within the core's limits (counts, and every
 *     fixed string terminated inside its array);
 *   - re-encoding it must succeed, decoding that must succeed, and the two
 *     decoded messages must be equal field by field (the codec loses
 *     nothing it accepted), and a second encoding gives the same bytes.
 * The core itself is not driven here (agent/failover.c is fed by the
 * agent's own tests and simulator).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fo_codec.h"
#include "meshvisor/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64

/* A fixed string must be terminated inside its array. */
static void check_str(const char *s, size_t cap)
{
	if (memchr(s, '\0', cap) == NULL)
		abort();
}

static void check_limits(const struct fo_msg *m)
{
	if ((int)m->type < 0 || (int)m->type >= FO_MSG_TYPES)
		abort();
	if (m->plan.n > FO_PLAN_MAX || m->superseded.n > FO_PLAN_MAX ||
	    m->n_removed > FO_REMOVED_MAX)
		abort();
	if ((m->superseded.n == 0) != (m->superseded.entries == NULL))
		abort();
	for (size_t i = 0; i < m->superseded.n; i++) {
		check_str(m->superseded.entries[i].uuid, sizeof(m->superseded.entries[i].uuid));
		check_str(m->superseded.entries[i].name, sizeof(m->superseded.entries[i].name));
		check_str(m->superseded.entries[i].target, sizeof(m->superseded.entries[i].target));
		check_str(m->superseded.entries[i].group, sizeof(m->superseded.entries[i].group));
	}
	if ((m->plan.n == 0) != (m->plan.entries == NULL) ||
	    (m->n_removed == 0) != (m->removed == NULL))
		abort();
	check_str(m->from, sizeof(m->from));
	check_str(m->to, sizeof(m->to));
	check_str(m->inst.dead, sizeof(m->inst.dead));
	check_str(m->ballot.proposer, sizeof(m->ballot.proposer));
	check_str(m->accepted_ballot.proposer, sizeof(m->accepted_ballot.proposer));
	check_str(m->vm_uuid, sizeof(m->vm_uuid));
	check_str(m->text, sizeof(m->text));
	for (size_t i = 0; i < m->n_removed; i++)
		check_str(m->removed[i].name, sizeof(m->removed[i].name));
	for (size_t i = 0; i < m->plan.n; i++) {
		const struct fo_plan_entry *e = &m->plan.entries[i];
		check_str(e->uuid, sizeof(e->uuid));
		check_str(e->name, sizeof(e->name));
		check_str(e->target, sizeof(e->target));
		check_str(e->group, sizeof(e->group));
	}
}

static bool same_plan(const struct fo_plan *a, const struct fo_plan *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct fo_plan_entry *x = &a->entries[i], *y = &b->entries[i];
		if (strcmp(x->uuid, y->uuid) != 0 || strcmp(x->name, y->name) != 0 ||
		    strcmp(x->target, y->target) != 0 || strcmp(x->group, y->group) != 0 ||
		    x->priority != y->priority || x->vcpus != y->vcpus ||
		    x->memory_kib != y->memory_kib || x->new_epoch != y->new_epoch ||
		    x->target_incarnation != y->target_incarnation)
			return false;
	}
	return true;
}

static bool same(const struct fo_msg *a, const struct fo_msg *b)
{
	if (!same_plan(&a->superseded, &b->superseded) || !same_plan(&a->plan, &b->plan) ||
	    a->voters != b->voters)
		return false;
	if (a->type != b->type || strcmp(a->from, b->from) != 0 || strcmp(a->to, b->to) != 0 ||
	    a->incarnation != b->incarnation || a->stamp != b->stamp ||
	    a->fenced_through != b->fenced_through || a->n_removed != b->n_removed ||
	    strcmp(a->inst.dead, b->inst.dead) != 0 || a->inst.incarnation != b->inst.incarnation ||
	    a->inst.round != b->inst.round || a->ballot.number != b->ballot.number ||
	    strcmp(a->ballot.proposer, b->ballot.proposer) != 0 ||
	    a->accepted_ballot.number != b->accepted_ballot.number ||
	    strcmp(a->accepted_ballot.proposer, b->accepted_ballot.proposer) != 0 ||
	    a->has_plan != b->has_plan || a->plan.n != b->plan.n ||
	    strcmp(a->vm_uuid, b->vm_uuid) != 0 || a->ok != b->ok || a->took_ms != b->took_ms ||
	    a->age_ms != b->age_ms || strcmp(a->text, b->text) != 0)
		return false;
	for (size_t i = 0; i < a->n_removed; i++)
		if (strcmp(a->removed[i].name, b->removed[i].name) != 0 ||
		    a->removed[i].incarnation != b->removed[i].incarnation)
			return false;
	for (size_t i = 0; i < a->plan.n; i++) {
		const struct fo_plan_entry *x = &a->plan.entries[i], *y = &b->plan.entries[i];
		if (strcmp(x->uuid, y->uuid) != 0 || strcmp(x->name, y->name) != 0 ||
		    strcmp(x->target, y->target) != 0 || strcmp(x->group, y->group) != 0 ||
		    x->priority != y->priority || x->vcpus != y->vcpus ||
		    x->memory_kib != y->memory_kib || x->new_epoch != y->new_epoch)
			return false;
	}
	return true;
}

static void one(const uint8_t *payload, size_t len)
{
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	if (envelope_decode(payload, len, &env, &why) != 0)
		return;
	struct fo_msg m;
	int rc = fo_codec_decode(env, &m, &why);
	envelope_free(env); /* the decoded message must not point into the tree */
	if (why == NULL)
		abort();
	if (rc != 0) {
		if (rc != -EINVAL || why[0] == '\0' || m.plan.entries != NULL || m.removed != NULL ||
		    m.plan.n != 0 || m.n_removed != 0)
			abort();
		return;
	}
	if (why[0] != '\0')
		abort();
	check_limits(&m);

	uint8_t *f1 = NULL, *f2 = NULL;
	size_t n1 = 0, n2 = 0;
	if (fo_codec_encode_frame(&m, &f1, &n1) != 0)
		abort(); /* what we accept, we can send */
	if (n1 <= FRAME_HEADER_LEN)
		abort();
	Mv__Envelope *env2 = NULL;
	if (envelope_decode(f1 + FRAME_HEADER_LEN, n1 - FRAME_HEADER_LEN, &env2, &why) != 0)
		abort(); /* what we send, we must accept */
	struct fo_msg back;
	if (fo_codec_decode(env2, &back, &why) != 0)
		abort();
	envelope_free(env2);
	if (!same(&m, &back))
		abort();
	if (fo_codec_encode_frame(&back, &f2, &n2) != 0 || n1 != n2 || memcmp(f1, f2, n1) != 0)
		abort(); /* encoding is a function of the message */
	free(f1);
	free(f2);
	fo_codec_clear(&back);
	fo_codec_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	for (int k = 0; k < MAX_MSGS && off + FRAME_HEADER_LEN <= size; k++) {
		uint32_t len = ((uint32_t)data[off] << 24) | ((uint32_t)data[off + 1] << 16) |
		               ((uint32_t)data[off + 2] << 8) | data[off + 3];
		off += FRAME_HEADER_LEN;
		if (len > size - off)
			len = (uint32_t)(size - off);
		one(data + off, len);
		off += len;
	}
	return 0;
}
