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
		const struct fo_plan_entry *e = &p->entries[i];
		mv__fo_plan_entry__init(&pe[i]);
		pe[i].uuid = (char *)e->uuid;
		pe[i].name = (char *)e->name;
		pe[i].target = (char *)e->target;
		pe[i].priority = e->priority;
		pe[i].vcpus = e->vcpus;
		pe[i].memory_kib = e->memory_kib;
		pe[i].new_epoch = e->new_epoch;
		pe[i].group = (char *)e->group;
		pe[i].target_incarnation = e->target_incarnation;
		pe[i].has_base_epoch = e->has_base;
		pe[i].base_epoch = e->has_base ? e->base_epoch : 0;
		pep[i] = &pe[i];
	}
	*pe_out = pe;
	*pep_out = pep;
	return 0;
}

int fo_codec_encode_frame(const struct fo_msg *m, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if ((int)m->type < 0 || (int)m->type >= FO_MSG_TYPES || m->plan.n > FO_PLAN_MAX ||
	    m->superseded.n > FO_PLAN_MAX ||
	    (m->superseded.n > 0 && m->superseded.entries == NULL) ||
	    m->n_removed > FO_REMOVED_MAX || (m->plan.n > 0 && m->plan.entries == NULL) ||
	    (m->n_removed > 0 && m->removed == NULL) || m->n_adopt > FO_PLAN_MAX ||
	    (m->n_adopt > 0 && m->adopt == NULL) || m->n_moves > FO_MOVES_MAX ||
	    (m->n_moves > 0 && m->moves == NULL))
		return -EINVAL;
	Mv__FailoverMessage pm = MV__FAILOVER_MESSAGE__INIT;
	pm.type = (Mv__FoType)m->type;
	pm.to = (char *)m->to;
	pm.incarnation = m->incarnation;
	pm.stamp = m->stamp;
	pm.fenced_through = m->fenced_through;
	pm.dead = (char *)m->inst.dead;
	pm.dead_incarnation = m->inst.incarnation;
	pm.round = m->inst.round;
	pm.ballot = m->ballot.number;
	pm.ballot_proposer = (char *)m->ballot.proposer;
	pm.accepted_ballot = m->accepted_ballot.number;
	pm.accepted_proposer = (char *)m->accepted_ballot.proposer;
	pm.has_plan = m->has_plan;
	pm.vm_uuid = (char *)m->vm_uuid;
	pm.ok = m->ok;
	pm.took_ms = m->took_ms;
	pm.age_ms = m->age_ms;
	pm.voters = (uint32_t)m->voters;
	pm.has_ack_ago = m->has_ack_ago;
	pm.ack_ago_ms = m->has_ack_ago ? m->ack_ago_ms : 0;
	pm.text = (char *)m->text;

	/* one allocation each for the pointer array and the structs */
	Mv__FoRemoved *rm = NULL, **rmp = NULL;
	Mv__FoPlanEntry *pe = NULL, **pep = NULL, *se = NULL, **sep = NULL, *ae = NULL;
	Mv__FoAdopt *ad = NULL, **adp = NULL;
	Mv__FoMove *mo = NULL, **mop = NULL;
	int rc = -ENOMEM;
	if (m->n_moves > 0) {
		mo = calloc(m->n_moves, sizeof(*mo));
		mop = calloc(m->n_moves, sizeof(*mop));
		if (mo == NULL || mop == NULL)
			goto out;
		for (size_t i = 0; i < m->n_moves; i++) {
			const struct fo_move *mv = &m->moves[i];
			mv__fo_move__init(&mo[i]);
			mo[i].id = (char *)mv->id;
			mo[i].uuid = (char *)mv->uuid;
			mo[i].source = (char *)mv->source;
			mo[i].target = (char *)mv->target;
			mo[i].epoch = mv->epoch;
			mo[i].state = (uint32_t)mv->state;
			mo[i].target_incarnation = mv->target_inc;
			mop[i] = &mo[i];
		}
		pm.moves = mop;
		pm.n_moves = m->n_moves;
	}
	if (m->n_removed > 0) {
		rm = calloc(m->n_removed, sizeof(*rm));
		rmp = calloc(m->n_removed, sizeof(*rmp));
		if (rm == NULL || rmp == NULL)
			goto out;
		for (size_t i = 0; i < m->n_removed; i++) {
			mv__fo_removed__init(&rm[i]);
			rm[i].name = (char *)m->removed[i].name;
			rm[i].incarnation = m->removed[i].incarnation;
			rmp[i] = &rm[i];
		}
		pm.removed = rmp;
		pm.n_removed = m->n_removed;
	}
	if (fo_encode_plan(&m->plan, &pe, &pep) < 0 ||
	    fo_encode_plan(&m->superseded, &se, &sep) < 0)
		goto out;
	pm.plan = pep;
	pm.n_plan = m->plan.n;
	pm.superseded = sep;
	pm.n_superseded = m->superseded.n;
	if (m->n_adopt > 0) {
		ad = calloc(m->n_adopt, sizeof(*ad));
		adp = calloc(m->n_adopt, sizeof(*adp));
		ae = calloc(m->n_adopt, sizeof(*ae));
		if (ad == NULL || adp == NULL || ae == NULL)
			goto out;
		for (size_t i = 0; i < m->n_adopt; i++) {
			const struct fo_adopt *a = &m->adopt[i];
			mv__fo_plan_entry__init(&ae[i]);
			ae[i].uuid = (char *)a->e.uuid;
			ae[i].name = (char *)a->e.name;
			ae[i].target = (char *)a->e.target;
			ae[i].priority = a->e.priority;
			ae[i].vcpus = a->e.vcpus;
			ae[i].memory_kib = a->e.memory_kib;
			ae[i].new_epoch = a->e.new_epoch;
			ae[i].group = (char *)a->e.group;
			ae[i].target_incarnation = a->e.target_incarnation;
			ae[i].has_base_epoch = a->e.has_base;
			ae[i].base_epoch = a->e.has_base ? a->e.base_epoch : 0;
			mv__fo_adopt__init(&ad[i]);
			ad[i].entry = &ae[i];
			ad[i].incarnation = a->incarnation;
			ad[i].round = a->round;
			ad[i].ballot = a->ballot.number;
			ad[i].ballot_proposer = (char *)a->ballot.proposer;
			adp[i] = &ad[i];
		}
		pm.adopt = adp;
		pm.n_adopt = m->n_adopt;
	}
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.from = (char *)m->from;
	env.body_case = MV__ENVELOPE__BODY_FAILOVER;
	env.failover = &pm;
	rc = envelope_encode_frame(&env, out, out_len);
out:
	free(rm);
	free(rmp);
	free(pe);
	free(pep);
	free(se);
	free(sep);
	free(ae);
	free(ad);
	free(adp);
	free(mo);
	free(mop);
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

/* Entries into p (allocated; freed by fo_codec_clear). -EINVAL: a string too long. */
static int fo_decode_plan(Mv__FoPlanEntry **in, size_t n, struct fo_plan *p)
{
	if (n == 0)
		return 0;
	p->entries = calloc(n, sizeof(*p->entries));
	if (p->entries == NULL)
		return -ENOMEM;
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		const Mv__FoPlanEntry *pe = in[i];
		struct fo_plan_entry *e = &p->entries[i];
		if (pe == NULL)
			continue;
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
	}
	return 0;
}

static const char too_long[] = "a name, UUID or text in the failover message is too long";

int fo_codec_decode(const Mv__Envelope *env, struct fo_msg *m, const char **why)
{
	memset(m, 0, sizeof(*m));
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
	if (fo_copy(m->from, sizeof(m->from), env->from) < 0 ||
	    fo_copy(m->to, sizeof(m->to), pm->to) < 0 ||
	    fo_copy(m->inst.dead, sizeof(m->inst.dead), pm->dead) < 0 ||
	    fo_copy(m->ballot.proposer, sizeof(m->ballot.proposer), pm->ballot_proposer) < 0 ||
	    fo_copy(m->accepted_ballot.proposer, sizeof(m->accepted_ballot.proposer),
	            pm->accepted_proposer) < 0 ||
	    fo_copy(m->vm_uuid, sizeof(m->vm_uuid), pm->vm_uuid) < 0 ||
	    fo_copy(m->text, sizeof(m->text), pm->text) < 0)
		goto too_long;
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

	if (pm->n_removed > 0) {
		m->removed = calloc(pm->n_removed, sizeof(*m->removed));
		if (m->removed == NULL)
			goto nomem;
		m->n_removed = pm->n_removed;
		for (size_t i = 0; i < pm->n_removed; i++) {
			const Mv__FoRemoved *r = pm->removed[i];
			if (r == NULL)
				continue;
			if (fo_copy(m->removed[i].name, sizeof(m->removed[i].name), r->name) < 0)
				goto too_long;
			m->removed[i].incarnation = r->incarnation;
		}
	}
	int prc = fo_decode_plan(pm->plan, pm->n_plan, &m->plan);
	if (prc == 0)
		prc = fo_decode_plan(pm->superseded, pm->n_superseded, &m->superseded);
	if (prc == 0 && pm->n_adopt > 0) {
		m->adopt = calloc(pm->n_adopt, sizeof(*m->adopt));
		if (m->adopt == NULL)
			goto nomem;
		m->n_adopt = pm->n_adopt;
		for (size_t i = 0; i < pm->n_adopt && prc == 0; i++) {
			const Mv__FoAdopt *a = pm->adopt[i];
			struct fo_adopt *o = &m->adopt[i];
			if (a == NULL)
				continue;
			if (fo_copy(o->ballot.proposer, sizeof(o->ballot.proposer),
			            a->ballot_proposer) < 0)
				prc = -EINVAL;
			o->incarnation = a->incarnation;
			o->round = a->round;
			o->ballot.number = a->ballot;
			if (prc == 0 && a->entry != NULL) {
				struct fo_plan one = {0};
				Mv__FoPlanEntry *ep = a->entry;
				prc = fo_decode_plan(&ep, 1, &one);
				if (prc == 0)
					o->e = one.entries[0];
				free(one.entries);
			}
		}
	}
	if (prc == 0 && pm->n_moves > 0) {
		m->moves = calloc(pm->n_moves, sizeof(*m->moves));
		if (m->moves == NULL)
			goto nomem;
		m->n_moves = pm->n_moves;
		for (size_t i = 0; i < pm->n_moves && prc == 0; i++) {
			const Mv__FoMove *a = pm->moves[i];
			struct fo_move *o = &m->moves[i];
			if (fo_copy(o->id, sizeof(o->id), a->id) < 0 ||
			    fo_copy(o->uuid, sizeof(o->uuid), a->uuid) < 0 ||
			    fo_copy(o->source, sizeof(o->source), a->source) < 0 ||
			    fo_copy(o->target, sizeof(o->target), a->target) < 0)
				prc = -EINVAL;
			o->epoch = a->epoch;
			o->state = (enum fo_move_state)a->state;
			o->target_inc = a->target_incarnation;
		}
	}
	if (prc == -ENOMEM)
		goto nomem;
	if (prc < 0)
		goto too_long;
	*why = "";
	return 0;

too_long:
	fo_codec_clear(m);
	memset(m, 0, sizeof(*m));
	*why = too_long;
	return -EINVAL;
nomem:
	fo_codec_clear(m);
	memset(m, 0, sizeof(*m));
	*why = "out of memory decoding a failover message";
	return -ENOMEM;
}
