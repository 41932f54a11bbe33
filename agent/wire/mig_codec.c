/*
 * mig_codec.c — map the migration core's flat messages to the wire and back
 * (see mig_codec.h). The core's strings are fixed arrays, so decoding checks
 * every length before copying; nothing is truncated silently.
 */
#include "mig_codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "envelope.h"

int mig_codec_encode_frame(const struct mig_msg *m, const char *dest_uri, const char *migrate_uri,
                           uint8_t **out, size_t *out_len)
{
	Mv__MigMessage pm = MV__MIG_MESSAGE__INIT;
	pm.type = (Mv__MigType)m->type;
	pm.to = (char *)m->to;
	pm.proposal_id = (char *)m->proposal_id;
	pm.vm_name = (char *)m->vm_name;
	pm.vm_uuid = (char *)m->vm_uuid;
	pm.vcpus = m->vcpus;
	pm.memory_kib = m->memory_kib;
	pm.cpu_model = (char *)m->cpu_model;
	pm.lease_ms = m->lease_ms;
	pm.stamp = m->stamp;
	pm.reason = (uint32_t)m->reason;
	pm.reason_text = (char *)m->reason_text;
	pm.dest_uri = (char *)(dest_uri ? dest_uri : "");
	pm.migrate_uri = (char *)(migrate_uri ? migrate_uri : "");
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = ENVELOPE_VERSION;
	env.from = (char *)m->from;
	env.body_case = MV__ENVELOPE__BODY_MIG;
	env.mig = &pm;
	return envelope_encode_frame(&env, out, out_len);
}

static int mig_copy(char *dst, size_t cap, const char *src)
{
	if (src == NULL)
		src = "";
	if (strlen(src) >= cap)
		return -EINVAL;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

int mig_codec_decode(const Mv__Envelope *env, struct mig_msg *m, const char **dest_uri,
                     const char **migrate_uri, const char **why)
{
	memset(m, 0, sizeof(*m));
	if (env->body_case != MV__ENVELOPE__BODY_MIG || env->mig == NULL) {
		*why = "not a migration message";
		return -EINVAL;
	}
	const Mv__MigMessage *pm = env->mig;
	if ((int)pm->type < MIG_PROPOSE || (int)pm->type >= MIG_MSG_TYPES) {
		*why = "unknown migration message type";
		return -EINVAL;
	}
	if (pm->reason >= MIG_REASONS) {
		*why = "unknown refusal reason";
		return -EINVAL;
	}
	if (mig_copy(m->from, sizeof(m->from), env->from) < 0 ||
	    mig_copy(m->to, sizeof(m->to), pm->to) < 0 ||
	    mig_copy(m->proposal_id, sizeof(m->proposal_id), pm->proposal_id) < 0 ||
	    mig_copy(m->vm_name, sizeof(m->vm_name), pm->vm_name) < 0 ||
	    mig_copy(m->vm_uuid, sizeof(m->vm_uuid), pm->vm_uuid) < 0 ||
	    mig_copy(m->cpu_model, sizeof(m->cpu_model), pm->cpu_model) < 0 ||
	    mig_copy(m->reason_text, sizeof(m->reason_text), pm->reason_text) < 0) {
		*why = "a name, id or text in the migration message is too long";
		return -EINVAL;
	}
	m->type = (enum mig_msg_type)pm->type;
	m->vcpus = pm->vcpus;
	m->memory_kib = pm->memory_kib;
	m->lease_ms = pm->lease_ms;
	m->stamp = pm->stamp;
	m->reason = (enum mig_reason)pm->reason;
	*dest_uri = pm->dest_uri;
	*migrate_uri = pm->migrate_uri;
	*why = "";
	return 0;
}
