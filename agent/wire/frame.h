/*
 * frame.h — the stream framing shared by the peer and RPC ports.
 *
 *   +------------------------+-----------------------------+
 *   | length: uint32, big-   | payload: one protobuf       |
 *   | endian, 1..FRAME_MAX   | mv.Envelope, `length` bytes |
 *   +------------------------+-----------------------------+
 *
 * The decoder is incremental (bytes arrive in any split) and checks the
 * length before allocating anything: 0 or more than FRAME_MAX is an error
 * and the connection must be closed. Frames are returned one at a time.
 *
 * Ownership: a payload returned by frame_decoder_next() points into the
 * decoder's buffer and is valid until the next frame_decoder_* call.
 */
#ifndef MESHVISOR_FRAME_H
#define MESHVISOR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_LEN 4
#define FRAME_MAX (4u * 1024u * 1024u) /* 4 MiB: a full push-pull of 10k members fits */

struct frame_decoder {
	uint8_t hdr[FRAME_HEADER_LEN];
	size_t hdr_have;
	uint8_t *buf; /* payload being assembled (allocated once length is known+valid) */
	size_t need;  /* payload length of the current frame */
	size_t have;
	uint32_t max;    /* cap for this decoder (<= FRAME_MAX) */
	int error;       /* sticky: once set, the stream is dead */
	size_t consumed; /* bytes of the last feed not yet consumed */
};

void frame_decoder_init(struct frame_decoder *d, uint32_t max);
void frame_decoder_close(struct frame_decoder *d);

/*
 * Takes bytes from data/len, advancing them, until one whole frame is
 * assembled. Returns:
 *    1  a frame is ready: payload/payload_len point at it
 *    0  all input consumed, frame incomplete (feed more later)
 *   -EMSGSIZE  declared length 0 or above the cap (nothing allocated)
 *   -ENOMEM
 * Call repeatedly until it returns 0 to drain all frames in one read.
 */
int frame_decoder_next(struct frame_decoder *d, const uint8_t **data, size_t *len,
                       const uint8_t **payload, size_t *payload_len);

/* Writes the 4-byte header for a payload of `len` bytes. */
void frame_header_write(uint8_t out[FRAME_HEADER_LEN], uint32_t len);

#endif
