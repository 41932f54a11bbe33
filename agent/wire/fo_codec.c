/*
 * fo_codec.c — map the failover core's flat messages to the wire and back
 * (see fo_codec.h). The core's strings are fixed arrays, so decoding checks
 * every length before copying; nothing is truncated silently. Counts are
 * checked before anything is allocated, so a hostile peer cannot make us
 * allocate more than FO_PLAN_MAX entries.
 */
#include "fo_codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

/* One plan entry as protobuf, pointing into e. */
static void fo_encode_entry(Mv__FoPlanEntry *pe, const struct fo_plan_entry *e)
{
	mv__fo_plan_entry__init(pe);
	pe->uuid = (char *)e->uuid;
	pe->name = (char *)e->name;
	pe->target = (char *)e->target;
	pe->priority = e->priority;
	pe->vcpus = e->vcpus;
	pe->memory_kib = e->memory_kib;
	pe->new_epoch = e->new_epoch;
	pe->group = (char *)e->group;
	pe->target_incarnation = e->target_incarnation;
	pe->has_base_epoch = e->has_base;
	pe->base_epoch = e->has_base ? e->base_epoch : 0;
}

/* A plan as protobuf entries pointing into p (two arrays, freed by the caller). */
static int fo_encode_plan(const struct fo_plan *p, Mv__FoPlanEntry **pe_out,
                          Mv__FoPlanEntry ***pep_out)
{
	*pe_out = NULL;
	*pep_out = NULL;
	if (p->n == 0)
		return 0;
	Mv__FoPlanEntry *pe = calloc(p->n, sizeof(*pe));
	Mv__FoPlanEntry **pep = calloc(p->n, sizeof(*pep));
	if (pe == NULL || pep == NULL) {
		free(pe);
		free(pep);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->n; i++) {
		fo_encode_entry(&pe[i], &p->entries[i]);
		pep[i] = &pe[i];
	}
	*pe_out = pe;
	*pep_out = pep;
	return 0;
}

/* Whether m's type is known, its counts are within the wire's caps, and
 * every array it counts is there. */
static bool fo_encode_counts_ok(const struct fo_msg *m)
{
	if ((int)m->type < 0 || (int)m->type >= FO_MSG_TYPES)
		return false;
	if (m->plan.n > FO_PLAN_MAX || m->superseded.n > FO_PLAN_MAX || m->n_adopt > FO_PLAN_MAX ||
	    m->n_removed > FO_REMOVED_MAX || m->n_moves > FO_MOVES_MAX)
		return false;
	return !((m->plan.n > 0 && m->plan.entries == NULL) ||
	         (m->superseded.n > 0 && m->superseded.entries == NULL) ||
	         (m->n_removed > 0 && m->removed == NULL) || (m->n_adopt > 0 && m->adopt == NULL) ||
	         (m->n_moves > 0 && m->moves == NULL));
}

/* The scalar and string fields of m, pointing into m. */
static void fo_encode_fields(Mv__FailoverMessage *pm, const struct fo_msg *m)
{
	pm->type = (Mv__FoType)m->type;
	pm->to = (char *)m->to;
	pm->incarnation = m->incarnation;
	pm->stamp = m->stamp;
	pm->fenced_through = m->fenced_through;
	pm->dead = (char *)m->inst.dead;
	pm->dead_incarnation = m->inst.incarnation;
	pm->round = m->inst.round;
	pm->ballot = m->ballot.number;
	pm->ballot_proposer = (char *)m->ballot.proposer;
	pm->accepted_ballot = m->accepted_ballot.number;
	pm->accepted_proposer = (char *)m->accepted_ballot.proposer;
	pm->has_plan = m->has_plan;
	pm->vm_uuid = (char *)m->vm_uuid;
	pm->ok = m->ok;
	pm->took_ms = m->took_ms;
	pm->age_ms = m->age_ms;
	pm->voters = (uint32_t)m->voters;
	pm->has_ack_ago = m->has_ack_ago;
	pm->ack_ago_ms = m->has_ack_ago ? m->ack_ago_ms : 0;
	pm->text = (char *)m->text;
}

/* The repeated fields of one encoded message: for each, one allocation for
 * the structs and one for the pointer array protobuf-c wants. */
struct fo_encode_arrays {
	Mv__FoRemoved *rm, **rmp;
	Mv__FoPlanEntry *pe, **pep, *se, **sep, *ae;
	Mv__FoAdopt *ad, **adp;
	Mv__FoMove *mo, **mop;
};

static void fo_encode_arrays_free(struct fo_encode_arrays *a)
{
	free(a->rm);
	free(a->rmp);
	free(a->pe);
	free(a->pep);
	free(a->se);
	free(a->sep);
	free(a->ae);
	free(a->ad);
	free(a->adp);
	free(a->mo);
	free(a->mop);
}

static int fo_encode_moves(const struct fo_msg *m, struct fo_encode_arrays *a,
                           Mv__FailoverMessage *pm)
{
	if (m->n_moves == 0)
		return 0;
	a->mo = calloc(m->n_moves, sizeof(*a->mo));
	a->mop = calloc(m->n_moves, sizeof(*a->mop));
	if (a->mo == NULL || a->mop == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_moves; i++) {
		const struct fo_move *mv = &m->moves[i];
		Mv__FoMove *mo = &a->mo[i];
		mv__fo_move__init(mo);
		mo->id = (char *)mv->id;
		mo->uuid = (char *)mv->uuid;
		mo->source = (char *)mv->source;
		mo->target = (char *)mv->target;
		mo->epoch = mv->epoch;
		mo->state = (uint32_t)mv->state;
		mo->target_incarnation = mv->target_inc;
		a->mop[i] = mo;
	}
	pm->moves = a->mop;
	pm->n_moves = m->n_moves;
	return 0;
}

static int fo_encode_removed(const struct fo_msg *m, struct fo_encode_arrays *a,
                             Mv__FailoverMessage *pm)
{
	if (m->n_removed == 0)
		return 0;
	a->rm = calloc(m->n_removed, sizeof(*a->rm));
	a->rmp = calloc(m->n_removed, sizeof(*a->rmp));
	if (a->rm == NULL || a->rmp == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_removed; i++) {
		mv__fo_removed__init(&a->rm[i]);
		a->rm[i].name = (char *)m->removed[i].name;
		a->rm[i].incarnation = m->removed[i].incarnation;
		a->rmp[i] = &a->rm[i];
	}
	pm->removed = a->rmp;
	pm->n_removed = m->n_removed;
	return 0;
}

static int fo_encode_adopt(const struct fo_msg *m, struct fo_encode_arrays *a,
                           Mv__FailoverMessage *pm)
{
	if (m->n_adopt == 0)
		return 0;
	a->ad = calloc(m->n_adopt, sizeof(*a->ad));
	a->adp = calloc(m->n_adopt, sizeof(*a->adp));
	a->ae = calloc(m->n_adopt, sizeof(*a->ae));
	if (a->ad == NULL || a->adp == NULL || a->ae == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_adopt; i++) {
		const struct fo_adopt *in = &m->adopt[i];
		Mv__FoAdopt *ad = &a->ad[i];
		fo_encode_entry(&a->ae[i], &in->e);
		mv__fo_adopt__init(ad);
		ad->entry = &a->ae[i];
		ad->incarnation = in->incarnation;
		ad->round = in->round;
		ad->ballot = in->ballot.number;
		ad->ballot_proposer = (char *)in->ballot.proposer;
		a->adp[i] = ad;
	}
	pm->adopt = a->adp;
	pm->n_adopt = m->n_adopt;
	return 0;
}

int fo_codec_encode_frame(const struct fo_msg *m, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (!fo_encode_counts_ok(m))
		return -EINVAL;
	Mv__FailoverMessage pm = MV__FAILOVER_MESSAGE__INIT;
	fo_encode_fields(&pm, m);
	struct fo_encode_arrays a = {0};
	int rc = -ENOMEM;
	if (fo_encode_moves(m, &a, &pm) < 0 || fo_encode_removed(m, &a, &pm) < 0 ||
	    fo_encode_plan(&m->plan, &a.pe, &a.pep) < 0 ||
	    fo_encode_plan(&m->superseded, &a.se, &a.sep) < 0)
		goto out;
	pm.plan = a.pep;
	pm.n_plan = m->plan.n;
	pm.superseded = a.sep;
	pm.n_superseded = m->superseded.n;
	if (fo_encode_adopt(m, &a, &pm) < 0)
		goto out;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.from = (char *)m->from;
	env.body_case = MV__ENVELOPE__BODY_FAILOVER;
	env.failover = &pm;
	rc = envelope_encode_frame(&env, out, out_len);
out:
	fo_encode_arrays_free(&a);
	return rc;
}

static int fo_copy(char *dst, size_t cap, const char *src)
{
	if (src == NULL)
		src = "";
	size_t n = strlen(src);
	if (n >= cap)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

void fo_codec_clear(struct fo_msg *m)
{
	free(m->plan.entries);
	m->plan.entries = NULL;
	m->plan.n = 0;
	free(m->superseded.entries);
	m->superseded.entries = NULL;
	m->superseded.n = 0;
	free(m->removed);
	m->removed = NULL;
	m->n_removed = 0;
	free(m->adopt);
	m->adopt = NULL;
	m->n_adopt = 0;
	free(m->moves);
	m->moves = NULL;
	m->n_moves = 0;
}

/* One plan entry from the wire. -EINVAL: a string too long. */
static int fo_decode_entry(const Mv__FoPlanEntry *pe, struct fo_plan_entry *e)
{
	if (fo_copy(e->uuid, sizeof(e->uuid), pe->uuid) < 0 ||
	    fo_copy(e->name, sizeof(e->name), pe->name) < 0 ||
	    fo_copy(e->target, sizeof(e->target), pe->target) < 0 ||
	    fo_copy(e->group, sizeof(e->group), pe->group) < 0)
		return -EINVAL;
	e->priority = pe->priority;
	e->vcpus = pe->vcpus;
	e->memory_kib = pe->memory_kib;
	e->new_epoch = pe->new_epoch;
	e->target_incarnation = pe->target_incarnation;
	e->has_base = pe->has_base_epoch;
	e->base_epoch = pe->has_base_epoch ? pe->base_epoch : 0;
	return 0;
}

/* Entries into p (allocated; freed by fo_codec_clear). -EINVAL: a string too long. */
static int fo_decode_plan(Mv__FoPlanEntry **in, size_t n, struct fo_plan *p)
{
	if (n == 0)
		return 0;
	p->entries = calloc(n, sizeof(*p->entries));
	if (p->entries == NULL)
		return -ENOMEM;
	p->n = n;
	for (size_t i = 0; i < n; i++)
		if (in[i] != NULL && fo_decode_entry(in[i], &p->entries[i]) < 0)
			return -EINVAL;
	return 0;
}

static const char too_long[] = "a name, UUID or text in the failover message is too long";

/* Checks what must hold before anything is copied or allocated: a known
 * type, counts within the caps, known migration states. */
static int fo_decode_check(const Mv__Envelope *env, const char **why)
{
	if (env->body_case != MV__ENVELOPE__BODY_FAILOVER || env->failover == NULL) {
		*why = "not a failover message";
		return -EINVAL;
	}
	const Mv__FailoverMessage *pm = env->failover;
	if ((int)pm->type < 0 || (int)pm->type >= FO_MSG_TYPES) {
		*why = "unknown failover message type";
		return -EINVAL;
	}
	if (pm->n_plan > FO_PLAN_MAX || pm->n_superseded > FO_PLAN_MAX ||
	    pm->n_adopt > FO_PLAN_MAX) {
		*why = "too many plan entries in the failover message";
		return -EINVAL;
	}
	if (pm->n_removed > FO_REMOVED_MAX) {
		*why = "too many removed members in the failover message";
		return -EINVAL;
	}
	if (pm->n_moves > FO_MOVES_MAX) {
		*why = "too many live migrations in the failover message";
		return -EINVAL;
	}
	for (size_t i = 0; i < pm->n_moves; i++)
		if (pm->moves[i] == NULL || pm->moves[i]->state > FO_MOVE_STAYED) {
			*why = "unknown live migration state in the failover message";
			return -EINVAL;
		}
	return 0;
}

/* The scalar and string fields. -EINVAL: a string too long. */
static int fo_decode_fields(const Mv__Envelope *env, struct fo_msg *m)
{
	const Mv__FailoverMessage *pm = env->failover;
	if (fo_copy(m->from, sizeof(m->from), env->from) < 0 ||
	    fo_copy(m->to, sizeof(m->to), pm->to) < 0 ||
	    fo_copy(m->inst.dead, sizeof(m->inst.dead), pm->dead) < 0 ||
	    fo_copy(m->ballot.proposer, sizeof(m->ballot.proposer), pm->ballot_proposer) < 0 ||
	    fo_copy(m->accepted_ballot.proposer, sizeof(m->accepted_ballot.proposer),
	            pm->accepted_proposer) < 0 ||
	    fo_copy(m->vm_uuid, sizeof(m->vm_uuid), pm->vm_uuid) < 0 ||
	    fo_copy(m->text, sizeof(m->text), pm->text) < 0)
		return -EINVAL;
	m->type = (enum fo_msg_type)pm->type;
	m->incarnation = pm->incarnation;
	m->stamp = pm->stamp;
	m->fenced_through = pm->fenced_through;
	m->inst.incarnation = pm->dead_incarnation;
	m->inst.round = pm->round;
	m->ballot.number = pm->ballot;
	m->accepted_ballot.number = pm->accepted_ballot;
	m->has_plan = pm->has_plan;
	m->ok = pm->ok;
	m->took_ms = pm->took_ms;
	m->age_ms = pm->age_ms;
	m->voters = pm->voters;
	m->has_ack_ago = pm->has_ack_ago;
	m->ack_ago_ms = pm->has_ack_ago ? pm->ack_ago_ms : 0;
	return 0;
}

/* The members removed from the voting set. 0, -ENOMEM, or -EINVAL. */
static int fo_decode_removed(const Mv__FailoverMessage *pm, struct fo_msg *m)
{
	if (pm->n_removed == 0)
		return 0;
	m->removed = calloc(pm->n_removed, sizeof(*m->removed));
	if (m->removed == NULL)
		return -ENOMEM;
	m->n_removed = pm->n_removed;
	for (size_t i = 0; i < pm->n_removed; i++) {
		const Mv__FoRemoved *r = pm->removed[i];
		if (r == NULL)
			continue;
		if (fo_copy(m->removed[i].name, sizeof(m->removed[i].name), r->name) < 0)
			return -EINVAL;
		m->removed[i].incarnation = r->incarnation;
	}
	return 0;
}

/* Plan entries adopted from earlier rounds. 0, -ENOMEM, or -EINVAL. */
static int fo_decode_adopt(const Mv__FailoverMessage *pm, struct fo_msg *m)
{
	if (pm->n_adopt == 0)
		return 0;
	m->adopt = calloc(pm->n_adopt, sizeof(*m->adopt));
	if (m->adopt == NULL)
		return -ENOMEM;
	m->n_adopt = pm->n_adopt;
	for (size_t i = 0; i < pm->n_adopt; i++) {
		const Mv__FoAdopt *a = pm->adopt[i];
		struct fo_adopt *o = &m->adopt[i];
		if (a == NULL)
			continue;
		if (fo_copy(o->ballot.proposer, sizeof(o->ballot.proposer), a->ballot_proposer) < 0)
			return -EINVAL;
		o->incarnation = a->incarnation;
		o->round = a->round;
		o->ballot.number = a->ballot;
		if (a->entry != NULL && fo_decode_entry(a->entry, &o->e) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Live migrations in flight (states checked by fo_decode_check). 0,
 * -ENOMEM, or -EINVAL. */
static int fo_decode_moves(const Mv__FailoverMessage *pm, struct fo_msg *m)
{
	if (pm->n_moves == 0)
		return 0;
	m->moves = calloc(pm->n_moves, sizeof(*m->moves));
	if (m->moves == NULL)
		return -ENOMEM;
	m->n_moves = pm->n_moves;
	for (size_t i = 0; i < pm->n_moves; i++) {
		const Mv__FoMove *a = pm->moves[i];
		struct fo_move *o = &m->moves[i];
		if (fo_copy(o->id, sizeof(o->id), a->id) < 0 ||
		    fo_copy(o->uuid, sizeof(o->uuid), a->uuid) < 0 ||
		    fo_copy(o->source, sizeof(o->source), a->source) < 0 ||
		    fo_copy(o->target, sizeof(o->target), a->target) < 0)
			return -EINVAL;
		o->epoch = a->epoch;
		o->state = (enum fo_move_state)a->state;
		o->target_inc = a->target_incarnation;
	}
	return 0;
}

int fo_codec_decode(const Mv__Envelope *env, struct fo_msg *m, const char **why)
{
	memset(m, 0, sizeof(*m));
	int rc = fo_decode_check(env, why);
	if (rc < 0)
		return rc;
	const Mv__FailoverMessage *pm = env->failover;
	rc = fo_decode_fields(env, m);
	if (rc == 0)
		rc = fo_decode_removed(pm, m);
	if (rc == 0)
		rc = fo_decode_plan(pm->plan, pm->n_plan, &m->plan);
	if (rc == 0)
		rc = fo_decode_plan(pm->superseded, pm->n_superseded, &m->superseded);
	if (rc == 0)
		rc = fo_decode_adopt(pm, m);
	if (rc == 0)
		rc = fo_decode_moves(pm, m);
	if (rc == 0) {
		*why = "";
		return 0;
	}
	fo_codec_clear(m);
	memset(m, 0, sizeof(*m));
	*why = rc == -ENOMEM ? "out of memory decoding a failover message" : too_long;
	return rc;
}
