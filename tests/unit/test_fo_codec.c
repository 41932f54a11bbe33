/*
 * test_fo_codec.c — struct fo_msg <-> framed mv.Envelope{failover}.
 *
 * Round trips of every message type with every field set (what goes in
 * comes out, the frame header matches), empty and NULL arrays, the largest
 * accepted strings and counts, and the decoder's refusals with their
 * reasons: another body, an unknown type, each fixed-size string one byte
 * too long (top level, in a removed member, in a plan entry, in an adopted
 * placement), more than FO_PLAN_MAX plan entries or adopted placements or
 * FO_REMOVED_MAX removed members. A refusal leaves *m zeroed with nothing
 * allocated (the ASan build checks leaks).
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
#include "fo_codec.h"
#include "frame.h"

static Mv__Envelope *roundtrip_env(const struct fo_msg *m)
{
	uint8_t *f = NULL;
	size_t n = 0;
	assert_int_equal(fo_codec_encode_frame(m, &f, &n), 0);
	assert_true(n > FRAME_HEADER_LEN);
	uint32_t len = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
	assert_int_equal(len, n - FRAME_HEADER_LEN);
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	assert_int_equal(envelope_decode(f + FRAME_HEADER_LEN, n - FRAME_HEADER_LEN, &env, &why),
	                 0);
	free(f);
	assert_int_equal(env->version, ENVELOPE_VERSION);
	assert_int_equal(env->body_case, MV__ENVELOPE__BODY_FAILOVER);
	assert_string_equal(env->from, m->from);
	return env;
}

static void check_same(const struct fo_msg *a, const struct fo_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_string_equal(a->from, b->from);
	assert_string_equal(a->to, b->to);
	assert_int_equal(a->incarnation, b->incarnation);
	assert_int_equal(a->stamp, b->stamp);
	assert_int_equal(a->fenced_through, b->fenced_through);
	assert_int_equal(a->n_removed, b->n_removed);
	for (size_t i = 0; i < a->n_removed; i++) {
		assert_string_equal(a->removed[i].name, b->removed[i].name);
		assert_int_equal(a->removed[i].incarnation, b->removed[i].incarnation);
	}
	assert_string_equal(a->inst.dead, b->inst.dead);
	assert_int_equal(a->inst.incarnation, b->inst.incarnation);
	assert_int_equal(a->inst.round, b->inst.round);
	assert_int_equal(a->ballot.number, b->ballot.number);
	assert_string_equal(a->ballot.proposer, b->ballot.proposer);
	assert_int_equal(a->accepted_ballot.number, b->accepted_ballot.number);
	assert_string_equal(a->accepted_ballot.proposer, b->accepted_ballot.proposer);
	assert_int_equal(a->has_plan, b->has_plan);
	assert_int_equal(a->plan.n, b->plan.n);
	for (size_t i = 0; i < a->plan.n; i++) {
		const struct fo_plan_entry *x = &a->plan.entries[i], *y = &b->plan.entries[i];
		assert_string_equal(x->uuid, y->uuid);
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->target, y->target);
		assert_int_equal(x->priority, y->priority);
		assert_int_equal(x->vcpus, y->vcpus);
		assert_int_equal(x->memory_kib, y->memory_kib);
		assert_int_equal(x->new_epoch, y->new_epoch);
		assert_string_equal(x->group, y->group);
		assert_int_equal(x->target_incarnation, y->target_incarnation);
		assert_int_equal(x->has_base, y->has_base);
		assert_int_equal(x->base_epoch, y->base_epoch);
	}
	assert_int_equal(a->voters, b->voters);
	assert_int_equal(a->n_moves, b->n_moves);
	for (size_t i = 0; i < a->n_moves; i++) {
		const struct fo_move *x = &a->moves[i], *y = &b->moves[i];
		assert_string_equal(x->id, y->id);
		assert_string_equal(x->uuid, y->uuid);
		assert_string_equal(x->source, y->source);
		assert_string_equal(x->target, y->target);
		assert_int_equal(x->epoch, y->epoch);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->target_inc, y->target_inc);
	}
	if (a->n_moves == 0)
		assert_null(b->moves);
	assert_int_equal(a->has_ack_ago, b->has_ack_ago);
	assert_int_equal(a->ack_ago_ms, b->ack_ago_ms);
	if (a->plan.n == 0)
		assert_null(b->plan.entries);
	assert_int_equal(a->superseded.n, b->superseded.n);
	for (size_t i = 0; i < a->superseded.n; i++) {
		assert_string_equal(a->superseded.entries[i].uuid, b->superseded.entries[i].uuid);
		assert_string_equal(a->superseded.entries[i].name, b->superseded.entries[i].name);
		assert_int_equal(a->superseded.entries[i].new_epoch,
		                 b->superseded.entries[i].new_epoch);
	}
	if (a->n_removed == 0)
		assert_null(b->removed);
	assert_int_equal(a->n_adopt, b->n_adopt);
	for (size_t i = 0; i < a->n_adopt; i++) {
		const struct fo_adopt *x = &a->adopt[i], *y = &b->adopt[i];
		assert_string_equal(x->e.uuid, y->e.uuid);
		assert_string_equal(x->e.name, y->e.name);
		assert_string_equal(x->e.target, y->e.target);
		assert_int_equal(x->e.priority, y->e.priority);
		assert_int_equal(x->e.vcpus, y->e.vcpus);
		assert_int_equal(x->e.memory_kib, y->e.memory_kib);
		assert_int_equal(x->e.new_epoch, y->e.new_epoch);
		assert_string_equal(x->e.group, y->e.group);
		assert_int_equal(x->e.target_incarnation, y->e.target_incarnation);
		assert_int_equal(x->e.has_base, y->e.has_base);
		assert_int_equal(x->e.base_epoch, y->e.base_epoch);
		assert_int_equal(x->incarnation, y->incarnation);
		assert_int_equal(x->round, y->round);
		assert_int_equal(x->ballot.number, y->ballot.number);
		assert_string_equal(x->ballot.proposer, y->ballot.proposer);
	}
	if (a->n_adopt == 0)
		assert_null(b->adopt);
	assert_string_equal(a->vm_uuid, b->vm_uuid);
	assert_int_equal(a->ok, b->ok);
	assert_int_equal(a->took_ms, b->took_ms);
	assert_int_equal(a->age_ms, b->age_ms);
	assert_string_equal(a->text, b->text);
}

static void roundtrip(const struct fo_msg *m)
{
	Mv__Envelope *env = roundtrip_env(m);
	struct fo_msg back;
	const char *why = NULL;
	assert_int_equal(fo_codec_decode(env, &back, &why), 0);
	assert_non_null(why);
	assert_string_equal(why, "");
	check_same(m, &back);
	fo_codec_clear(&back);
	assert_null(back.plan.entries);
	assert_null(back.removed);
	assert_null(back.adopt);
	assert_null(back.moves);
	assert_int_equal(back.n_moves, 0);
	assert_int_equal(back.plan.n, 0);
	assert_int_equal(back.n_removed, 0);
	assert_int_equal(back.n_adopt, 0);
	fo_codec_clear(&back); /* twice is harmless */
	envelope_free(env);
}

static struct fo_removed removed3[3] = {
    {"n7", 4},
    {"gone-host", UINT64_MAX},
    {"", 0},
};

static struct fo_plan_entry plan3[3] = {
    {"6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", "n2", 1000, 8, 16u << 20, 9, "db", 3, true, 7},
    {"7795eb01-f6a4-8304-79aa-97f2502e1940", "web1", "n3", -5, 2, 1u << 20, 3, "", 0, false, 0},
    {"8895eb01-f6a4-8304-79aa-97f2502e1941", "big", "", 0, 64, UINT64_MAX, UINT64_MAX, "g",
     UINT64_MAX, true, UINT64_MAX - 1},
};

/* Placements held from older recoveries (PROMISE, first round). */
static struct fo_adopt adopt2[2] = {
    {{"6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", "n2", 1000, 8, 16u << 20, 9, "db", 3, true, 7},
     4,
     0,
     {7, "n3"}},
    {{"9995eb01-f6a4-8304-79aa-97f2502e1942", "max", "n5", INT32_MIN, UINT32_MAX, UINT64_MAX,
      UINT64_MAX, "g", UINT64_MAX, true, 0},
     UINT64_MAX,
     15,
     {UINT64_MAX, "n1"}},
};

/* Live migrations a heartbeat announces (MOVES). */
static struct fo_move moves2[2] = {
    {"n1-0000abcd-1", "6695eb01-f6a4-8304-79aa-97f2502e193f", "n1", "n3", 10, FO_MOVE_MOVING, 0},
    {"n9-ffffffff-18446744073709551615", "7795eb01-f6a4-8304-79aa-97f2502e1940", "n9", "n1",
     UINT64_MAX, FO_MOVE_MOVED, UINT64_MAX},
};

/* Every field set, whatever the type uses: the codec maps them all. */
static void fill(struct fo_msg *m, enum fo_msg_type t)
{
	memset(m, 0, sizeof(*m));
	m->type = t;
	strcpy(m->from, "n1");
	strcpy(m->to, "n2");
	m->incarnation = 17;
	m->stamp = 123456789012ull;
	m->fenced_through = 16;
	m->n_removed = 3;
	m->removed = removed3;
	strcpy(m->inst.dead, "n4");
	m->inst.incarnation = 5;
	m->inst.round = 2;
	m->ballot.number = 42;
	strcpy(m->ballot.proposer, "n1");
	m->accepted_ballot.number = 41;
	strcpy(m->accepted_ballot.proposer, "n3");
	m->has_plan = true;
	m->plan.n = 3;
	m->plan.entries = plan3;
	m->superseded.n = 2;
	m->superseded.entries = plan3 + 1;
	m->n_adopt = 2; /* PROMISE only, likewise */
	m->adopt = adopt2;
	strcpy(m->vm_uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
	m->ok = true;
	m->took_ms = 1234;
	m->age_ms = 99;
	m->voters = 7;  /* HEARTBEAT only, but carried for any type */
	m->n_moves = 2; /* HEARTBEAT only, likewise */
	m->moves = moves2;
	m->has_ack_ago = true; /* ACCEPTED and CHOSEN only, likewise */
	m->ack_ago_ms = 4000000000123ull;
	strcpy(m->text, "fenced through libvirt");
}

static void test_roundtrip_every_type(void **state)
{
	(void)state;
	for (int t = 0; t < FO_MSG_TYPES; t++) {
		struct fo_msg m;
		fill(&m, (enum fo_msg_type)t);
		roundtrip(&m);
		/* and as the core sends it: mostly empty */
		memset(&m, 0, sizeof(m));
		m.type = (enum fo_msg_type)t;
		strcpy(m.from, "a");
		roundtrip(&m);
	}
}

/* ack_ago_ms travels only with has_ack_ago (0 is a valid duration). */
static void test_ack_ago_flag(void **state)
{
	(void)state;
	struct fo_msg m;
	fill(&m, FO_CHOSEN);
	m.ack_ago_ms = 0; /* acked just now: still a bound */
	roundtrip(&m);
	m.has_ack_ago = false;
	m.ack_ago_ms = 5;
	Mv__Envelope *env = roundtrip_env(&m);
	assert_false(env->failover->has_ack_ago);
	assert_int_equal(env->failover->ack_ago_ms, 0);
	struct fo_msg back;
	const char *why = NULL;
	assert_int_equal(fo_codec_decode(env, &back, &why), 0);
	assert_false(back.has_ack_ago);
	assert_int_equal(back.ack_ago_ms, 0);
	fo_codec_clear(&back);
	/* a peer that sets the duration without the flag: no bound */
	env->failover->ack_ago_ms = 77;
	assert_int_equal(fo_codec_decode(env, &back, &why), 0);
	assert_false(back.has_ack_ago);
	assert_int_equal(back.ack_ago_ms, 0);
	fo_codec_clear(&back);
	envelope_free(env);
}

static void test_type_names_match_wire(void **state)
{
	(void)state;
	assert_int_equal(FO_MSG_TYPES, MV__FO_TYPE__FO_READ_REPLY + 1);
	assert_int_equal(FO_HEARTBEAT, MV__FO_TYPE__FO_HEARTBEAT);
	assert_int_equal(FO_FENCE_ORDER, MV__FO_TYPE__FO_FENCE_ORDER);
	assert_int_equal(FO_PREPARE, MV__FO_TYPE__FO_PREPARE);
	assert_int_equal(FO_CHOSEN, MV__FO_TYPE__FO_CHOSEN);
	assert_int_equal(FO_RESTARTED, MV__FO_TYPE__FO_RESTARTED);
	assert_int_equal(FO_READ, MV__FO_TYPE__FO_READ);
	assert_int_equal(FO_READ_REPLY, MV__FO_TYPE__FO_READ_REPLY);
}

static void test_empty_and_null_arrays(void **state)
{
	(void)state;
	struct fo_msg m;
	fill(&m, FO_ACCEPT);
	m.plan.n = 0;
	m.plan.entries = NULL;
	m.n_removed = 0;
	m.removed = NULL;
	roundtrip(&m);
	/* a count of 0 with a pointer: nothing sent, nothing allocated back */
	m.plan.entries = plan3;
	m.removed = removed3;
	m.n_adopt = 0;
	roundtrip(&m);
	m.adopt = NULL;
	roundtrip(&m);
	/* has_plan with an empty plan (a dead host without HA VMs) */
	m.has_plan = true;
	roundtrip(&m);
	/* a plan without has_plan is mapped as is */
	m.has_plan = false;
	m.plan.n = 1;
	roundtrip(&m);
}

static void test_limits_accepted(void **state)
{
	(void)state;
	struct fo_msg m;
	fill(&m, FO_CHOSEN);
	memset(m.from, 'f', FO_NAME_MAX - 1);
	memset(m.to, 't', FO_NAME_MAX - 1);
	memset(m.inst.dead, 'd', FO_NAME_MAX - 1);
	memset(m.ballot.proposer, 'p', FO_NAME_MAX - 1);
	memset(m.accepted_ballot.proposer, 'q', FO_NAME_MAX - 1);
	memset(m.vm_uuid, 'u', FO_UUID_MAX - 1);
	memset(m.text, 'x', FO_TEXT_MAX - 1);
	struct fo_plan_entry *pe = calloc(FO_PLAN_MAX, sizeof(*pe));
	struct fo_removed *rm = calloc(FO_REMOVED_MAX, sizeof(*rm));
	assert_non_null(pe);
	assert_non_null(rm);
	for (size_t i = 0; i < FO_PLAN_MAX; i++) {
		snprintf(pe[i].name, sizeof(pe[i].name), "vm%zu", i);
		pe[i].new_epoch = i;
	}
	memset(pe[0].uuid, 'U', FO_UUID_MAX - 1);
	memset(pe[0].name, 'N', FO_NAME_MAX - 1);
	memset(pe[0].target, 'T', FO_NAME_MAX - 1);
	memset(pe[0].group, 'G', FO_GROUP_MAX - 1);
	for (size_t i = 0; i < FO_REMOVED_MAX; i++) {
		snprintf(rm[i].name, sizeof(rm[i].name), "h%zu", i);
		rm[i].incarnation = i + 1;
	}
	memset(rm[1].name, 'R', FO_NAME_MAX - 1);
	struct fo_adopt *ad = calloc(FO_PLAN_MAX, sizeof(*ad));
	assert_non_null(ad);
	for (size_t i = 0; i < FO_PLAN_MAX; i++) {
		ad[i].e = pe[FO_PLAN_MAX - 1 - i];
		ad[i].incarnation = i;
		ad[i].round = (uint32_t)(i % 16);
		ad[i].ballot.number = i * 3;
	}
	memset(ad[1].e.uuid, 'U', FO_UUID_MAX - 1);
	memset(ad[1].e.name, 'N', FO_NAME_MAX - 1);
	memset(ad[1].e.target, 'T', FO_NAME_MAX - 1);
	memset(ad[1].e.group, 'G', FO_GROUP_MAX - 1);
	memset(ad[1].ballot.proposer, 'P', FO_NAME_MAX - 1);
	m.plan.n = FO_PLAN_MAX;
	m.plan.entries = pe;
	m.n_removed = FO_REMOVED_MAX;
	m.removed = rm;
	m.n_adopt = FO_PLAN_MAX;
	m.adopt = ad;
	roundtrip(&m);
	free(pe);
	free(rm);
	free(ad);
}

/* ---- refusals ------------------------------------------------------------ */

/* A hand-built envelope that decode sees as if it came off the wire. */
struct wire {
	Mv__Envelope env;
	Mv__FailoverMessage fm;
	Mv__FoRemoved rm[2];
	Mv__FoRemoved *rmp[2];
	Mv__FoPlanEntry pe[3];
	Mv__FoPlanEntry *pep[3];
	Mv__FoAdopt ad[2];
	Mv__FoAdopt *adp[2];
	Mv__FoPlanEntry ae[2];
};

static void wire_init(struct wire *w)
{
	mv__envelope__init(&w->env);
	mv__failover_message__init(&w->fm);
	w->env.version = ENVELOPE_VERSION;
	w->env.from = "n1";
	w->env.body_case = MV__ENVELOPE__BODY_FAILOVER;
	w->env.failover = &w->fm;
	w->fm.type = MV__FO_TYPE__FO_ACCEPT;
	w->fm.dead = "n4";
	w->fm.has_plan = true;
	for (int i = 0; i < 2; i++) {
		mv__fo_removed__init(&w->rm[i]);
		w->rm[i].name = "gone";
		w->rmp[i] = &w->rm[i];
	}
	for (int i = 0; i < 3; i++) {
		mv__fo_plan_entry__init(&w->pe[i]);
		w->pe[i].name = "vm";
		w->pe[i].target = "n2";
		w->pep[i] = &w->pe[i];
	}
	w->fm.removed = w->rmp;
	w->fm.n_removed = 2;
	w->fm.plan = w->pep;
	w->fm.n_plan = 3;
	for (int i = 0; i < 2; i++) {
		mv__fo_plan_entry__init(&w->ae[i]);
		w->ae[i].uuid = "u1";
		w->ae[i].target = "n3";
		w->ae[i].new_epoch = 6;
		mv__fo_adopt__init(&w->ad[i]);
		w->ad[i].entry = &w->ae[i];
		w->ad[i].incarnation = 2;
		w->ad[i].ballot = 5;
		w->ad[i].ballot_proposer = "n2";
		w->adp[i] = &w->ad[i];
	}
	w->fm.adopt = w->adp;
	w->fm.n_adopt = 2;
}

static void expect_refused(const Mv__Envelope *env, const char *reason)
{
	struct fo_msg m;
	memset(&m, 0xa5, sizeof(m));
	const char *why = NULL;
	assert_int_equal(fo_codec_decode(env, &m, &why), -EINVAL);
	assert_non_null(why);
	assert_string_equal(why, reason);
	/* nothing left allocated, nothing half-filled */
	assert_null(m.plan.entries);
	assert_null(m.removed);
	assert_null(m.superseded.entries);
	assert_null(m.adopt);
	assert_int_equal(m.plan.n, 0);
	assert_int_equal(m.n_removed, 0);
	assert_int_equal(m.n_adopt, 0);
	assert_string_equal(m.from, "");
}

static const char *TOO_LONG = "a name, UUID or text in the failover message is too long";

static void test_wire_ok(void **state)
{
	(void)state;
	struct wire w;
	wire_init(&w);
	struct fo_msg m;
	const char *why = NULL;
	assert_int_equal(fo_codec_decode(&w.env, &m, &why), 0);
	assert_int_equal(m.type, FO_ACCEPT);
	assert_string_equal(m.from, "n1");
	assert_string_equal(m.inst.dead, "n4");
	assert_int_equal(m.plan.n, 3);
	assert_int_equal(m.n_removed, 2);
	assert_string_equal(m.plan.entries[2].target, "n2");
	assert_int_equal(m.n_adopt, 2);
	assert_string_equal(m.adopt[1].e.uuid, "u1");
	assert_string_equal(m.adopt[1].e.target, "n3");
	assert_string_equal(m.adopt[1].e.name, "");
	assert_int_equal(m.adopt[1].e.new_epoch, 6);
	assert_int_equal(m.adopt[1].incarnation, 2);
	assert_int_equal(m.adopt[1].ballot.number, 5);
	assert_string_equal(m.adopt[1].ballot.proposer, "n2");
	fo_codec_clear(&m);
	/* an adopted placement without its entry (a peer's bug) decodes as an
	 * empty one, which the core ignores */
	w.ad[0].entry = NULL;
	w.ad[0].ballot_proposer = NULL;
	assert_int_equal(fo_codec_decode(&w.env, &m, &why), 0);
	assert_int_equal(m.n_adopt, 2);
	assert_string_equal(m.adopt[0].e.uuid, "");
	assert_string_equal(m.adopt[0].ballot.proposer, "");
	assert_int_equal(m.adopt[0].incarnation, 2);
	fo_codec_clear(&m);
	wire_init(&w);
	/* a NULL from (a client's envelope) decodes as "" */
	w.env.from = NULL;
	assert_int_equal(fo_codec_decode(&w.env, &m, &why), 0);
	assert_string_equal(m.from, "");
	fo_codec_clear(&m);
}

static void test_refuse_other_body(void **state)
{
	(void)state;
	struct wire w;
	wire_init(&w);
	Mv__MigMessage mig = MV__MIG_MESSAGE__INIT;
	w.env.body_case = MV__ENVELOPE__BODY_MIG;
	w.env.mig = &mig;
	expect_refused(&w.env, "not a failover message");
	wire_init(&w);
	w.env.failover = NULL;
	expect_refused(&w.env, "not a failover message");
}

static void test_refuse_unknown_type(void **state)
{
	(void)state;
	struct wire w;
	wire_init(&w);
	w.fm.type = (Mv__FoType)FO_MSG_TYPES;
	expect_refused(&w.env, "unknown failover message type");
	w.fm.type = (Mv__FoType)-1;
	expect_refused(&w.env, "unknown failover message type");
	w.fm.type = (Mv__FoType)1000;
	expect_refused(&w.env, "unknown failover message type");
}

static void test_refuse_too_many(void **state)
{
	(void)state;
	struct wire w;
	wire_init(&w);
	/* the counts are checked before the arrays are read */
	w.fm.n_plan = FO_PLAN_MAX + 1;
	expect_refused(&w.env, "too many plan entries in the failover message");
	wire_init(&w);
	w.fm.n_superseded = FO_PLAN_MAX + 1;
	expect_refused(&w.env, "too many plan entries in the failover message");
	wire_init(&w);
	w.fm.n_adopt = FO_PLAN_MAX + 1;
	expect_refused(&w.env, "too many plan entries in the failover message");
	wire_init(&w);
	w.fm.n_removed = FO_REMOVED_MAX + 1;
	expect_refused(&w.env, "too many removed members in the failover message");
	wire_init(&w);
	w.fm.n_moves = FO_MOVES_MAX + 1;
	expect_refused(&w.env, "too many live migrations in the failover message");
	/* a move in a state no agent writes: refused, not guessed */
	wire_init(&w);
	Mv__FoMove mo;
	mv__fo_move__init(&mo);
	mo.id = "m";
	mo.uuid = "u";
	mo.state = FO_MOVE_STAYED + 1;
	Mv__FoMove *mop = &mo;
	w.fm.moves = &mop;
	w.fm.n_moves = 1;
	expect_refused(&w.env, "unknown live migration state in the failover message");
	/* ... and a string too long for its field */
	wire_init(&w);
	char long_id[FO_MOVE_ID_MAX + 1];
	memset(long_id, 'a', FO_MOVE_ID_MAX);
	long_id[FO_MOVE_ID_MAX] = '\0';
	mo.id = long_id;
	mo.state = FO_MOVE_MOVING;
	w.fm.moves = &mop;
	w.fm.n_moves = 1;
	expect_refused(&w.env, TOO_LONG);
	/* and the encoder will not send what a peer refuses */
	struct fo_msg m;
	fill(&m, FO_CHOSEN);
	uint8_t *f = (uint8_t *)&m;
	size_t n = 1;
	m.plan.n = FO_PLAN_MAX + 1;
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	assert_null(f);
	assert_int_equal(n, 0);
	fill(&m, FO_HEARTBEAT);
	m.n_removed = FO_REMOVED_MAX + 1;
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	fill(&m, FO_HEARTBEAT);
	m.type = (enum fo_msg_type)FO_MSG_TYPES;
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	fill(&m, FO_HEARTBEAT);
	m.plan.entries = NULL; /* n = 3 without entries */
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	fill(&m, FO_PROMISE);
	m.n_adopt = FO_PLAN_MAX + 1;
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	fill(&m, FO_PROMISE);
	m.adopt = NULL; /* n_adopt = 2 without placements */
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	fill(&m, FO_HEARTBEAT);
	m.n_moves = FO_MOVES_MAX + 1;
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
	fill(&m, FO_HEARTBEAT);
	m.moves = NULL; /* n_moves = 2 without moves */
	assert_int_equal(fo_codec_encode_frame(&m, &f, &n), -EINVAL);
}

static void test_refuse_long_strings(void **state)
{
	(void)state;
	char name[FO_NAME_MAX + 1], uuid[FO_UUID_MAX + 1], group[FO_GROUP_MAX + 1],
	    text[FO_TEXT_MAX + 1];
	memset(name, 'n', FO_NAME_MAX);
	name[FO_NAME_MAX] = '\0';
	memset(uuid, 'u', FO_UUID_MAX);
	uuid[FO_UUID_MAX] = '\0';
	memset(group, 'g', FO_GROUP_MAX);
	group[FO_GROUP_MAX] = '\0';
	memset(text, 't', FO_TEXT_MAX);
	text[FO_TEXT_MAX] = '\0';
	struct wire w;
	for (int k = 0; k < 19; k++) {
		wire_init(&w);
		switch (k) {
		case 0:
			w.env.from = name;
			break;
		case 1:
			w.fm.to = name;
			break;
		case 2:
			w.fm.dead = name;
			break;
		case 3:
			w.fm.ballot_proposer = name;
			break;
		case 4:
			w.fm.accepted_proposer = name;
			break;
		case 5:
			w.fm.vm_uuid = uuid;
			break;
		case 6:
			w.fm.text = text;
			break;
		case 7:
			w.rm[1].name = name;
			break; /* after the removed array exists */
		case 8:
			w.pe[2].uuid = uuid;
			break; /* after both arrays exist */
		case 9:
			w.pe[0].name = name;
			break;
		case 10:
			w.pe[1].target = name;
			break;
		case 11:
			w.pe[2].group = group;
			break;
		case 12:
			w.rm[0].name = name;
			w.pe[0].name = name;
			break;
		/* in an adopted placement (after every other array exists) */
		case 13:
			w.ae[1].uuid = uuid;
			break;
		case 14:
			w.ae[0].name = name;
			break;
		case 15:
			w.ae[1].target = name;
			break;
		case 16:
			w.ae[1].group = group;
			break;
		case 17:
			w.ad[1].ballot_proposer = name;
			break;
		case 18:
			w.ad[0].ballot_proposer = name;
			w.ae[1].uuid = uuid;
			break;
		}
		expect_refused(&w.env, TOO_LONG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_every_type),
	    cmocka_unit_test(test_ack_ago_flag),
	    cmocka_unit_test(test_type_names_match_wire),
	    cmocka_unit_test(test_empty_and_null_arrays),
	    cmocka_unit_test(test_limits_accepted),
	    cmocka_unit_test(test_wire_ok),
	    cmocka_unit_test(test_refuse_other_body),
	    cmocka_unit_test(test_refuse_unknown_type),
	    cmocka_unit_test(test_refuse_too_many),
	    cmocka_unit_test(test_refuse_long_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
