/*
 * fo_codec.h — struct fo_msg (the failover core's view, fo.h) <->
 * mv.FailoverMessage in an Envelope.
 *
 * Field mapping is one to one: inst.dead / inst.incarnation / inst.round are
 * dead / dead_incarnation / round; ballot.number / ballot.proposer are
 * ballot / ballot_proposer; accepted_ballot.{number,proposer} are
 * accepted_ballot / accepted_proposer; the sender (m->from) travels as
 * Envelope.from.
 *
 * Ownership: the decoder allocates m->plan.entries and m->removed (malloc);
 * they belong to *m and are freed with fo_codec_clear() (or the core's
 * fo_msg_clear(), which frees the same arrays). On a decoding error nothing
 * is left allocated and *m is zeroed.
 */
#ifndef MESHVISOR_FO_CODEC_H
#define MESHVISOR_FO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/fo.h"

/* Encodes m as a whole frame (4-byte BE length + Envelope{from = m->from,
 * version, failover}); *out is malloc'd, the caller frees it. Returns 0,
 * -EINVAL (unknown type, more than FO_PLAN_MAX plan entries or
 * FO_REMOVED_MAX removed members: what a peer's decoder would refuse),
 * -ENOMEM, or what envelope_encode_frame() returns (e.g. over the frame
 * cap). */
int fo_codec_encode_frame(const struct fo_msg *m, uint8_t **out, size_t *out_len);

/* Fills *m from env (which must carry a failover body; env->from is the
 * sender). Returns 0 (*why = ""), or -EINVAL / -ENOMEM with a static reason
 * in *why: not a failover message, an unknown type, a string too long for
 * the core's fixed fields, more than FO_PLAN_MAX plan entries or more than
 * FO_REMOVED_MAX removed members. */
int fo_codec_decode(const Mv__Envelope *env, struct fo_msg *m, const char **why);

/* Frees what fo_codec_decode() allocated in *m and empties the arrays
 * (safe on a zeroed or already cleared message). */
void fo_codec_clear(struct fo_msg *m);

#endif
