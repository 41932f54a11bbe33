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

int envelope_decode(const uint8_t *payload, size_t len, Mv__Envelope **out, const char **why);
void envelope_free(Mv__Envelope *env);
/* For a payload envelope_decode refused as "unsupported wire version"
 * (-EPROTO): if it is an Envelope carrying a request, its version and the
 * request's id (so the RPC port can answer "unsupported wire version"
 * instead of closing in silence). 0, or -EBADMSG when it is not. */
int envelope_peek_request(const uint8_t *payload, size_t len, uint32_t *version, uint64_t *id);
int envelope_encode_frame(const Mv__Envelope *env, uint8_t **out, size_t *out_len);

#endif
