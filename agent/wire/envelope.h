/*
 * envelope.h — mv.Envelope to and from frame payloads.
 *
 * Decoding is the trust boundary for every byte a peer or client sends:
 * the frame decoder has already capped the length; here protobuf-c unpacks
 * and the envelope is checked (version, a body present). Every failure
 * comes with a static human reason for the log.
 *
 * Ownership: envelope_decode() returns a protobuf-c tree that the caller
 * frees with envelope_free(). envelope_encode_frame() returns a malloc'd
 * buffer (4-byte length header + payload) the caller frees with free().
 */
#ifndef MESHVISOR_ENVELOPE_H
#define MESHVISOR_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"

#define ENVELOPE_VERSION 1

/* The protocol revision within wire version 1, published in each agent's
 * node-state record (NodeState.wire_rev): a rolling upgrade mixes agents
 * of two releases, and a newer one uses what an older peer cannot follow
 * only with peers that publish a revision that has it.
 *   0 (absent) 0.1.0
 *   2          0.2.0: LEFT carries the leaver's proof (MemberUpdate.left_proof);
 *              a CHOSEN is proven by a majority read (FO_READ, FO_READ_REPLY)
 * Unknown fields are skipped by every revision; an unknown message type is
 * dropped (logged), never a reason to close the connection. */
#define MV_WIRE_REV 2u
/* The first revision whose agents sign their LEFT: a relayed LEFT of a
 * peer publishing less carries no proof and is taken as before (swim.c,
 * A HOST SPEAKS ONLY FOR ITSELF; agent/daemon/nodestate.c). */
#define MV_WIRE_REV_LEFT_PROOF 2u
/* The first revision whose agents answer FO_READ: with fewer voters of
 * this revision than a majority, a CHOSEN cannot be proven by a read, and
 * the failover core takes it from one voter as 0.1.0 did (fo_host.legacy;
 * docs/failover-protocol.md, CHOSEN NEEDS A MAJORITY'S PROOF). */
#define MV_WIRE_REV_CHOSEN_READ 2u

/* Unknown fields an envelope may carry in all (a newer sender's few
 * additions); more is refused before protobuf-c unpacks anything. */
#define ENVELOPE_MAX_UNKNOWN 64
/* Field occurrences (packed arrays count once) and sub-messages in one
 * envelope, at every depth: a push-pull of 10,000 members has about
 * 60,000 and 10,000. protobuf-c spends ~32 bytes of scratch per field and
 * an allocation per sub-message (2 bytes on the wire each when empty). */
#define ENVELOPE_MAX_FIELDS 262144
#define ENVELOPE_MAX_MESSAGES 65536

/* Before unpacking, the payload is pre-scanned against the schema
 * (protobuf-c's descriptors): every tag and length must be well formed and
 * unknown fields are counted; more than ENVELOPE_MAX_UNKNOWN is refused
 * (why: "too many unknown fields"), and so are more than
 * ENVELOPE_MAX_FIELDS fields or ENVELOPE_MAX_MESSAGES sub-messages
 * ("too many fields"). protobuf-c keeps each unknown field as
 * a separate allocation (about 30 bytes of memory and a malloc per 3-byte
 * field): the scan keeps decode cost and memory linear and small per byte. */
int envelope_decode(const uint8_t *payload, size_t len, Mv__Envelope **out, const char **why);

/* From the first bytes of an Envelope payload (a frame's prefix, possibly
 * cut anywhere), the request it carries: its id (0 if not seen before the
 * op) and the field number of its op (RpcRequest's oneof: 10 status, 18
 * vm_create, ...). 0 when found; -EAGAIN when the prefix ends first;
 * -EBADMSG when it is no request. Never reads past len. */
int envelope_peek_op(const uint8_t *prefix, size_t len, uint64_t *id, uint32_t *op_field);
void envelope_free(Mv__Envelope *env);
/* For a payload envelope_decode refused as "unsupported wire version"
 * (-EPROTO): if it is an Envelope carrying a request, its version and the
 * request's id (so the RPC port can answer "unsupported wire version"
 * instead of closing in silence). 0, or -EBADMSG when it is not. */
int envelope_peek_request(const uint8_t *payload, size_t len, uint32_t *version, uint64_t *id);
int envelope_encode_frame(const Mv__Envelope *env, uint8_t **out, size_t *out_len);

#endif
