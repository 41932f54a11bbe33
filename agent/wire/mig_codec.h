/*
 * mig_codec.h — struct mig_msg (the negotiation core's view) <-> mv.MigMessage.
 *
 * An ACCEPT also carries the target's libvirt URI and migration URI, which
 * the core does not know about: the caller passes them to the encoder and
 * receives them from the decoder (pointers into the decoded Envelope, valid
 * as long as it is).
 */
#ifndef MESHVISOR_MIG_CODEC_H
#define MESHVISOR_MIG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"
#include "meshvisor/mig.h"

int mig_codec_encode_frame(const struct mig_msg *m, const char *dest_uri, const char *migrate_uri,
                           uint8_t **out, size_t *out_len);
/* Fills *m from env (which must carry a mig body; env->from is the sender).
 * Returns 0, or -EINVAL with a static reason (unknown type, a string too
 * long for the core's fixed fields). */
int mig_codec_decode(const Mv__Envelope *env, struct mig_msg *m, const char **dest_uri,
                     const char **migrate_uri, const char **why);

#endif
