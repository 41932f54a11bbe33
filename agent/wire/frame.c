/*
 * frame.c — incremental decoder for the length-prefixed stream framing
 * (diagram in meshvisor/frame.h).
 *
 * State machine: collect the 4 header bytes (in any split), check the
 * declared length against the cap *before* allocating, then collect that
 * many payload bytes. A frame that arrives whole inside one read is still
 * copied once into the decoder's buffer; frames are small and this keeps
 * ownership simple (the payload is valid until the next decoder call).
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_decoder_init(struct frame_decoder *d, uint32_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = (max == 0 || max > FRAME_MAX) ? FRAME_MAX : max;
}

void frame_decoder_close(struct frame_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->need = d->have = d->hdr_have = 0;
}

void frame_header_write(uint8_t out[FRAME_HEADER_LEN], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

int frame_decoder_next(struct frame_decoder *d, const uint8_t **data, size_t *len,
                       const uint8_t **payload, size_t *payload_len)
{
	if (d->error)
		return d->error;
	/* The previous frame was handed out: drop it now. */
	if (d->buf != NULL && d->have == d->need && d->hdr_have == FRAME_HEADER_LEN) {
		free(d->buf);
		d->buf = NULL;
		d->hdr_have = 0;
		d->need = d->have = 0;
	}
	while (d->hdr_have < FRAME_HEADER_LEN) {
		if (*len == 0)
			return 0;
		d->hdr[d->hdr_have++] = **data;
		(*data)++;
		(*len)--;
	}
	if (d->buf == NULL) {
		uint32_t n = ((uint32_t)d->hdr[0] << 24) | ((uint32_t)d->hdr[1] << 16) |
		             ((uint32_t)d->hdr[2] << 8) | (uint32_t)d->hdr[3];
		if (n == 0 || n > d->max) {
			d->error = -EMSGSIZE;
			return d->error;
		}
		d->buf = malloc(n);
		if (d->buf == NULL) {
			d->error = -ENOMEM;
			return d->error;
		}
		d->need = n;
		d->have = 0;
	}
	size_t take = d->need - d->have;
	if (take > *len)
		take = *len;
	memcpy(d->buf + d->have, *data, take);
	d->have += take;
	*data += take;
	*len -= take;
	if (d->have < d->need)
		return 0;
	*payload = d->buf;
	*payload_len = d->need;
	return 1;
}
