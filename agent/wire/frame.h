/*
 * frame.h — the stream framing shared by the peer and RPC ports.
 *
 *   +------------------------+-----------------------------+
 *   | length: uint32, big-   | payload: one protobuf       |
 *   | endian, 1..FRAME_MAX   | mv.Envelope, `length` bytes |
 *   +------------------------+-----------------------------+
 *
 * The decoder is incremental (bytes arrive in any split) and checks the
 * length before allocating anything: 0 or more than the decoder's cap is
 * an error and the connection must be closed. Frames are returned one at
 * a time.
 *
 * What a sender can make the receiver hold is bounded (issue 13):
 *   - memory grows as bytes arrive (FRAME_BUF_MIN, then doubling), never
 *     from the declared length: a header announcing 4 MiB costs nothing
 *     until 4 MiB have come;
 *   - an optional budget shared by many decoders (struct frame_budget)
 *     bounds the bytes they buffer together; a decoder that would go over
 *     it fails with -ENOBUFS;
 *   - an optional per-frame cap (frame_cap_fn) decided from the declared
 *     length and the frame's first bytes (FRAME_PEEK_LEN): a frame over it
 *     is refused before it is buffered (-EFBIG) and its bytes are skipped;
 *   - a deadline: a frame must be whole within FRAME_DEADLINE_MS of its
 *     first header byte, plus 1 s per FRAME_MIN_RATE bytes it declares
 *     (a refused frame being skipped gets the base deadline only); the
 *     owner checks frame_decoder_overdue() and closes the stream.
 *
 * Ownership: a payload returned by frame_decoder_next() points into the
 * decoder's buffer and is valid until the next frame_decoder_* call.
 */
#ifndef MESHVISOR_FRAME_H
#define MESHVISOR_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_LEN 4
#define FRAME_MAX (4u * 1024u * 1024u) /* 4 MiB: a full push-pull of 10k members fits */
#define FRAME_BUF_MIN 4096u            /* first allocation of a frame's buffer */
#define FRAME_PEEK_LEN 64u             /* bytes a frame_cap_fn sees (fewer if shorter) */
#define FRAME_DEADLINE_MS 10000u       /* first header byte to last payload byte */
#define FRAME_MIN_RATE (256u * 1024u)  /* bytes/s: a large frame's deadline grows by len/rate */

/* Bytes buffered by a set of decoders together (one per listener kind). */
struct frame_budget {
	size_t used;
	size_t max; /* 0: unbounded */
};

/* The cap for one frame, from its declared length and its first
 * min(len, FRAME_PEEK_LEN) payload bytes. */
typedef uint32_t (*frame_cap_fn)(const uint8_t *prefix, size_t prefix_len, uint32_t len, void *ud);

struct frame_decoder {
	uint8_t hdr[FRAME_HEADER_LEN];
	size_t hdr_have;
	uint8_t *buf; /* payload being assembled: `alloc` bytes, grown as data arrives */
	size_t alloc;
	size_t need; /* payload length of the current frame */
	size_t have;
	uint32_t max;                /* cap for this decoder (<= FRAME_MAX) */
	int error;                   /* sticky: once set, the stream is dead */
	bool in_frame;               /* a frame's first byte came, its last not yet */
	bool handed;                 /* the last frame was handed out: drop it on the next call */
	bool skipping;               /* the current frame was refused by cap_fn: discard it */
	uint64_t started;            /* `now` of the current frame's first byte */
	struct frame_budget *budget; /* may be NULL */
	frame_cap_fn cap_fn;         /* may be NULL */
	void *cap_ud;
	uint32_t refused_cap; /* the cap that refused the last -EFBIG frame */
};

void frame_decoder_init(struct frame_decoder *d, uint32_t max);
/* Optional limits (see above); call after init, before the first byte. */
void frame_decoder_limit(struct frame_decoder *d, struct frame_budget *budget, frame_cap_fn cap_fn,
                         void *cap_ud);
void frame_decoder_close(struct frame_decoder *d);

/*
 * Takes bytes from data/len, advancing them, until one whole frame is
 * assembled; `now` (ms, any monotonic clock) times the frame's deadline.
 * Returns:
 *    1  a frame is ready: payload/payload_len point at it
 *    0  all input consumed, frame incomplete (feed more later)
 *   -EFBIG  the frame is over cap_fn's cap (d->refused_cap): payload and
 *           payload_len point at its first bytes (as cap_fn saw them);
 *           its remaining bytes are skipped by the next calls. Not sticky.
 *   -EMSGSIZE  declared length 0 or above the decoder's cap (nothing allocated)
 *   -ENOBUFS   the shared budget has no room for the bytes that came
 *   -ENOMEM
 * Call repeatedly until it returns 0 to drain all frames in one read.
 */
int frame_decoder_next_at(struct frame_decoder *d, uint64_t now, const uint8_t **data, size_t *len,
                          const uint8_t **payload, size_t *payload_len);
/* frame_decoder_next_at without a clock (no deadline is kept). */
int frame_decoder_next(struct frame_decoder *d, const uint8_t **data, size_t *len,
                       const uint8_t **payload, size_t *payload_len);

/* When the frame in progress must be whole (0: none in progress). */
uint64_t frame_decoder_deadline(const struct frame_decoder *d);
/* A frame is in progress and its deadline has passed. */
bool frame_decoder_overdue(const struct frame_decoder *d, uint64_t now);

/* Writes the 4-byte header for a payload of `len` bytes. */
void frame_header_write(uint8_t out[FRAME_HEADER_LEN], uint32_t len);

#endif
