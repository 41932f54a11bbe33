/*
 * swim_codec.h — struct swim_msg (the core's view) <-> mv.SwimMessage.
 *
 * Encoding builds a temporary protobuf-c tree that points at the message's
 * own strings (no copies) and packs it straight into a frame. Decoding
 * points a struct swim_msg at the strings of an unpacked Envelope, so the
 * decoded message is valid exactly as long as that Envelope.
 */
#ifndef MESHVISOR_SWIM_CODEC_H
#define MESHVISOR_SWIM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/swim.h"

/* Envelope{from=m->from, swim=...} framed; *out malloc'd, caller frees. */
int swim_codec_encode_frame(const struct swim_msg *m, uint8_t **out, size_t *out_len);
/* Bytes the frame for m would take on the wire inside TLS (header included). */
size_t swim_codec_frame_size(const struct swim_msg *m);

/* Fills *m from env (which must carry a swim body). The updates go into a
 * malloc'd array stored in *updates_out (caller frees with free()).
 * Returns 0, -ENOMSG for a message type this version does not know (a
 * newer agent's: drop it, keep the connection), or -EINVAL with a reason
 * (an unknown member state, an oversized string: a violation). */
int swim_codec_decode(const Mv__Envelope *env, struct swim_msg *m, struct swim_update **updates_out,
                      const char **why);

#endif
