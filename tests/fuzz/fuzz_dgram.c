/*
 * fuzz_dgram.c — libFuzzer target for opening sealed datagrams
 * (agent/net/dgram.c), the bytes anyone can send to the peer port's UDP
 * socket.
 *
 * Two tables hold the keys of one fixed "handshake" (material bytes i*7+1,
 * the same formula as tests/fuzz/gen_corpus.py, so seeds can carry a real
 * key id): "a" is the client, "b" the server. Input layout:
 *
 *   byte 0 even  the rest is one datagram, opened by b (length, version,
 *                key lookup, replay window and tag paths); it must not
 *                open, since nobody but a can seal for a's key
 *   byte 0 odd   the rest is a script of steps, 4 bytes each:
 *                  [0] payload length (x 5, capped at DGRAM_MAX_PAYLOAD)
 *                  [1] what to do with the sealed datagram: 0 deliver,
 *                      1 deliver twice, 2 flip bit [2] of byte [3] first,
 *                      3 hold back (delivered after the next step)
 *                  [2],[3] as above; the clock moves [3] x 100 ms
 *                and checks: a genuine datagram opens exactly once with
 *                the same bytes; an altered or repeated one never does.
 *
 * Any violated invariant aborts; ASan/UBSan catch out-of-bounds accesses.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dgram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void tables(struct dgram_table **a, struct dgram_table **b)
{
	struct dgram_config cfg = {.max_peers = 4, .key_lifetime_ms = 60000, .grace_ms = 1000};
	uint8_t m[DGRAM_MATERIAL_LEN];
	for (size_t i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)(i * 7 + 1);
	*a = dgram_new(&cfg);
	*b = dgram_new(&cfg);
	if (*a == NULL || *b == NULL || dgram_install(*a, "b", m, sizeof(m), true, 0) != 0 ||
	    dgram_install(*b, "a", m, sizeof(m), false, 0) != 0)
		abort();
}

static uint8_t payload[DGRAM_MAX_PAYLOAD];

static void open_expect(struct dgram_table *b, const uint8_t *dg, size_t len, uint64_t now,
                        const uint8_t *want, size_t want_len, bool ok)
{
	uint8_t out[DGRAM_MAX_PAYLOAD];
	size_t ol = 0;
	const char *peer = NULL;
	enum dgram_drop d = dgram_open(b, dg, len, out, sizeof(out), &ol, &peer, now);
	if (ok != (d == DGRAM_OK))
		abort();
	if (ok && (ol != want_len || memcmp(out, want, ol) != 0 || strcmp(peer, "a") != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct dgram_table *a, *b;
	tables(&a, &b);
	if ((data[0] & 1) == 0) {
		open_expect(b, data + 1, size - 1, 1, NULL, 0, false);
		dgram_free(a);
		dgram_free(b);
		return 0;
	}
	uint64_t now = 0;
	uint8_t held[DGRAM_MAX_LEN], dg[DGRAM_MAX_LEN];
	size_t held_len = 0, held_plen = 0;
	uint8_t held_plain[DGRAM_MAX_PAYLOAD];
	for (size_t i = 1; i + 4 <= size; i += 4) {
		const uint8_t *s = data + i;
		size_t plen = (size_t)s[0] * 5;
		if (plen > DGRAM_MAX_PAYLOAD)
			plen = DGRAM_MAX_PAYLOAD;
		for (size_t k = 0; k < plen; k++)
			payload[k] = (uint8_t)(s[2] + k);
		now += (uint64_t)s[3] * 100;
		size_t len = 0;
		int rc = dgram_seal(a, "b", payload, plen, dg, sizeof(dg), &len, now);
		if (rc == -ENOKEY)
			break; /* the key retired: nothing more to check */
		if (rc != 0)
			abort();
		switch (s[1] & 3) {
		case 0:
			open_expect(b, dg, len, now, payload, plen, true);
			break;
		case 1:
			open_expect(b, dg, len, now, payload, plen, true);
			open_expect(b, dg, len, now, payload, plen, false);
			break;
		case 2:
			dg[s[3] % len] ^= (uint8_t)(1u << (s[2] & 7));
			open_expect(b, dg, len, now, payload, plen, false);
			break;
		case 3:
			if (held_len > 0) /* the earlier held one: now within the window */
				open_expect(b, held, held_len, now, held_plain, held_plen, true);
			memcpy(held, dg, len);
			memcpy(held_plain, payload, plen);
			held_len = len;
			held_plen = plen;
			continue;
		}
		if (held_len > 0) {
			/* reordered by one: still inside the 64-entry window */
			open_expect(b, held, held_len, now, held_plain, held_plen, true);
			held_len = 0;
		}
	}
	dgram_free(a);
	dgram_free(b);
	return 0;
}
