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
 * Then the message goes into a live failover core (one per input, node
 * "n1" of a five-voter cluster whose member n3 is dead, with a gossiped
 * view so that plans can be computed), addressed to it whatever its `to`
 * said, with the clock advancing and the core's timer run after each
 * message: no input may crash it, make it loop or leak (outputs and events
 * are drained and freed), and its next deadline must never be in the past.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fo_codec.h"
#include "meshvisor/fo.h"
#include "frame.h"

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
	if (m->n_adopt > FO_PLAN_MAX || (m->n_adopt == 0) != (m->adopt == NULL))
		abort();
	for (size_t i = 0; i < m->n_adopt; i++) {
		const struct fo_plan_entry *e = &m->adopt[i].e;
		check_str(e->uuid, sizeof(e->uuid));
		check_str(e->name, sizeof(e->name));
		check_str(e->target, sizeof(e->target));
		check_str(e->group, sizeof(e->group));
		check_str(m->adopt[i].ballot.proposer, sizeof(m->adopt[i].ballot.proposer));
	}
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
		    x->target_incarnation != y->target_incarnation || x->has_base != y->has_base ||
		    x->base_epoch != y->base_epoch)
			return false;
	}
	return true;
}

static bool same(const struct fo_msg *a, const struct fo_msg *b)
{
	if (!same_plan(&a->superseded, &b->superseded) || !same_plan(&a->plan, &b->plan) ||
	    a->voters != b->voters || a->has_ack_ago != b->has_ack_ago ||
	    a->ack_ago_ms != b->ack_ago_ms)
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
	if (a->n_adopt != b->n_adopt)
		return false;
	for (size_t i = 0; i < a->n_adopt; i++) {
		const struct fo_adopt *x = &a->adopt[i], *y = &b->adopt[i];
		struct fo_plan px = {.n = 1, .entries = (struct fo_plan_entry *)&x->e};
		struct fo_plan py = {.n = 1, .entries = (struct fo_plan_entry *)&y->e};
		if (!same_plan(&px, &py) || x->incarnation != y->incarnation ||
		    x->round != y->round || x->ballot.number != y->ballot.number ||
		    strcmp(x->ballot.proposer, y->ballot.proposer) != 0)
			return false;
	}
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

static struct fo *core;
static uint64_t now;

static struct fo *core_new(void)
{
	struct fo_config cfg;
	fo_config_default(&cfg);
	strcpy(cfg.name, "n1");
	cfg.seed = 1;
	cfg.join_after_ms = 0; /* members vote at once: a formed cluster to attack */
	now = 1000;
	struct fo *f = fo_new(&cfg, now);
	if (f == NULL)
		abort();
	static const char *const names[] = {"n1", "n2", "n3", "n4", "n5"};
	for (size_t i = 0; i < 5; i++)
		fo_member(f, names[i], FO_ALIVE, 1, now);
	static const struct fo_vm vms[] = {
	    {"6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", 900, 2, 1u << 20, 3, "db", true},
	    {"7795eb01-f6a4-8304-79aa-97f2502e1940", "web1", 10, 1, 1u << 19, 0, "", true},
	};
	struct fo_host hosts[5];
	memset(hosts, 0, sizeof(hosts));
	for (size_t i = 0; i < 5; i++) {
		hosts[i].cap.name = names[i];
		hosts[i].cap.alive = hosts[i].cap.healthy = true;
		hosts[i].cap.cpus = 8;
		hosts[i].cap.cpu_overcommit = 4;
		hosts[i].cap.memory_kib = 16u << 20;
		hosts[i].cap.memory_overcommit = 1;
		if (i == 2) {
			hosts[i].vms = vms;
			hosts[i].n_vms = 2;
		}
	}
	fo_set_hosts(f, hosts, 5, now);
	fo_member(f, "n3", FO_DEAD, 1, now);
	return f;
}

static void core_drain(void)
{
	struct fo_msg out;
	while (fo_pop_output(core, &out))
		fo_msg_clear(&out);
	struct fo_event ev;
	while (fo_pop_event(core, &ev)) {
		if (ev.type == FO_EV_RESTART)
			fo_restart_done(core, &ev.inst, ev.entry.uuid, (now & 1) != 0, "fuzz", now);
		else if (ev.type == FO_EV_REMOTE_FENCE)
			fo_remote_fence_done(core, &ev.inst, (now & 2) != 0, "fuzz", now);
		fo_event_clear(&ev);
	}
}

static void core_feed(struct fo_msg *m)
{
	strcpy(m->to, "n1");
	now += 37;
	fo_handle_message(core, m, now);
	core_drain();
	uint64_t next = fo_next_deadline(core);
	if (next != UINT64_MAX && next > now && next - now < 60000)
		now = next;
	fo_handle_timer(core, now);
	core_drain();
	next = fo_next_deadline(core);
	if (next != UINT64_MAX && next < now)
		abort(); /* a deadline in the past would spin the agent's loop */
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
		if (rc != -EINVAL || why[0] == '\0' || m.plan.entries != NULL ||
		    m.removed != NULL || m.plan.n != 0 || m.n_removed != 0)
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
	core_feed(&m);
	fo_codec_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	core = core_new();
	for (int k = 0; k < MAX_MSGS && off + FRAME_HEADER_LEN <= size; k++) {
		uint32_t len = ((uint32_t)data[off] << 24) | ((uint32_t)data[off + 1] << 16) |
		               ((uint32_t)data[off + 2] << 8) | data[off + 3];
		off += FRAME_HEADER_LEN;
		if (len > size - off)
			len = (uint32_t)(size - off);
		one(data + off, len);
		off += len;
	}
	fo_free(core);
	core = NULL;
	return 0;
}
