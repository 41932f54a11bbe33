/*
 * state_codec.h — struct nstate_msg (the core's view) <-> mv.StateMessage.
 *
 * Encoding builds a temporary protobuf-c tree that points at the message's
 * own strings and record bytes (no copies) and packs it straight into a
 * frame. Decoding points a struct nstate_msg at the strings and bytes of an
 * unpacked Envelope, so the decoded message is valid exactly as long as
 * that Envelope (and the two arrays the decoder allocates).
 */
#ifndef MESHVISOR_STATE_CODEC_H
#define MESHVISOR_STATE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/placement.h"
#include "meshvisor/nstate.h"

/* Envelope{from=m->from, state=...} framed; *out malloc'd, caller frees. */
int state_codec_encode_frame(const struct nstate_msg *m, uint8_t **out, size_t *out_len);
/* Bytes the frame for m would take on the wire inside TLS (header included),
 * 0 if it cannot be built (no memory). */
size_t state_codec_frame_size(const struct nstate_msg *m);

/* Fills *m from env (which must carry a state body). The versions and
 * records go into malloc'd arrays stored in *versions_out and *records_out
 * (caller frees both with free(); NULL when empty or on error); strings
 * and record bytes are borrowed from env. m->to and m->to_addr are ""
 * (StateMessage names no receiver: the connection does). Returns 0, or
 * -EINVAL with a static reason (unknown type, missing or oversized name,
 * record larger than NSTATE_RECORD_MAX), or -ENOMEM. */
int state_codec_decode(const Mv__Envelope *env, struct nstate_msg *m,
                       struct nstate_version **versions_out, struct nstate_record **records_out,
                       const char **why);

/* The capacity a host's NodeState record gives placement (strings point
 * into s): `alive` as the caller's membership says; draining as the host
 * publishes it (a caller that must never place on a witness adds that). */
struct placement_host state_codec_placement_host(const Mv__NodeState *s, bool alive);

#endif
