/*
 * fuzz_swim.c — libFuzzer target for the path a peer's bytes take into the
 * membership core: envelope_decode -> swim_codec_decode -> swim_handle_message.
 *
 * Input layout:
 *   byte 0     flags: bit 0 the core is joining through a seed first,
 *              bit 1 the core leaves gracefully after the messages,
 *              bit 2 after each message the transport reports its sender
 *              and its target refused (swim_peer_refused),
 *              bit 3 signed ALIVE claims: the core signs and checks proofs
 *              (a fake: the proof of (name, inc) is the text "name@inc";
 *              a LEFT's, in MemberUpdate.left_proof, "name@(inc | 2^63)")
 *   bytes 1..  a stream of frames (4-byte BE length + Envelope), each one
 *              message from "the network" to a core named "self"
 *
 * Every message is handed to a fresh core in order, with the clock moving
 * between messages (by an amount derived from the payload) and every due
 * timer run, so suspicion, ping-req and push-pull paths (full and by
 * digest: digest, want, buckets) are reached with hostile state. Afterwards the clock runs on for a simulated minute.
 * The core must not crash, must keep itself in its member table, and every
 * message it emits must survive its own codec (encode, decode, same type,
 * every update's proof byte for byte).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "frame.h"
#include "meshvisor/swim.h"
#include "swim_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64

static void check_output(const struct swim_msg *m)
{
	uint8_t *f = NULL;
	size_t n = 0;
	if (swim_codec_encode_frame(m, &f, &n) != 0)
		abort(); /* the core emitted something its own codec cannot send */
	if (n < FRAME_HEADER_LEN + 1 || n != swim_codec_frame_size(m))
		abort();
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	if (envelope_decode(f + FRAME_HEADER_LEN, n - FRAME_HEADER_LEN, &env, &why) != 0)
		abort();
	struct swim_msg back;
	struct swim_update *ups = NULL;
	memset(&back, 0, sizeof(back));
	if (swim_codec_decode(env, &back, &ups, &why) != 0)
		abort();
	if (back.type != m->type || back.seq != m->seq || back.n_updates != m->n_updates ||
	    back.refused != m->refused || back.n_digest != m->n_digest ||
	    back.n_want != m->n_want || back.buckets != m->buckets)
		abort();
	for (size_t k = 0; k < m->n_digest; k++)
		if (back.digest[k] != m->digest[k])
			abort();
	for (size_t k = 0; k < m->n_want; k++)
		if (back.want[k] != m->want[k])
			abort();
	for (size_t k = 0; k < m->n_updates; k++)
		if (back.updates[k].proof_len != m->updates[k].proof_len ||
		    (m->updates[k].proof_len &&
		     memcmp(back.updates[k].proof, m->updates[k].proof, m->updates[k].proof_len)))
			abort();
	free(ups);
	envelope_free(env);
	free(f);
}

static void drain(struct swim *s)
{
	struct swim_msg out;
	while (swim_pop_output(s, &out))
		check_output(&out);
	struct swim_event ev;
	while (swim_pop_event(s, &ev)) {
		volatile size_t t = strlen(ev.name ? ev.name : "") +
		                    strlen(ev.cause ? ev.cause : "") +
		                    strlen(ev.addr ? ev.addr : "");
		(void)t;
	}
}

static void check_invariants(struct swim *s)
{
	size_t n = swim_member_count(s);
	if (n == 0)
		abort();
	uint32_t counts[4] = {0, 0, 0, 0};
	swim_state_counts(s, counts);
	if ((size_t)counts[0] + counts[1] + counts[2] + counts[3] != n)
		abort();
	struct swim_member_info self;
	if (!swim_member_find(s, "self", &self) || !self.is_self)
		abort();
	size_t selves = 0;
	for (size_t i = 0; i < n; i++) {
		struct swim_member_info mi;
		swim_member_at(s, i, &mi);
		if (mi.name == NULL || mi.addr == NULL || (unsigned)mi.state > SWIM_LEFT)
			abort();
		selves += mi.is_self;
	}
	if (selves != 1)
		abort();
}

static int fake_sign(void *arg, const char *name, uint64_t inc, uint8_t *out, size_t cap)
{
	(void)arg;
	int n = snprintf((char *)out, cap, "%s@%llu", name, (unsigned long long)inc);
	return n > 0 && (size_t)n < cap ? n : -ENOSPC;
}

static int fake_verify(void *arg, const char *name, uint64_t inc, const uint8_t *proof, size_t len)
{
	uint8_t want[SWIM_PROOF_MAX];
	int n = fake_sign(arg, name, inc, want, sizeof(want));
	return n > 0 && (size_t)n == len && memcmp(want, proof, len) == 0 ? 0 : -EACCES;
}

/* Run every timer due up to `until`, draining after each step. */
static void run_until(struct swim *s, uint64_t *now, uint64_t until)
{
	for (int guard = 0; guard < 100000; guard++) {
		uint64_t dl = swim_next_deadline(s);
		if (dl > until)
			break;
		if (dl > *now)
			*now = dl;
		swim_handle_timer(s, *now);
		drain(s);
	}
	*now = until;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const uint8_t *p = data + 1;
	size_t len = size - 1;

	struct swim_config cfg;
	swim_config_default(&cfg);
	strcpy(cfg.name, "self");
	strcpy(cfg.addr, "127.0.0.1:7946");
	cfg.seed = 42;
	cfg.reap_ms = 20000; /* reach the reaper within the simulated minute */
	if (flags & 8) {
		cfg.alive_sign = fake_sign;
		cfg.alive_verify = fake_verify;
	}
	uint64_t now = 1000000;
	struct swim *s = swim_new(&cfg, 0, now);
	if (s == NULL)
		abort();
	if (flags & 1) {
		const char *seeds[] = {"127.0.0.1:7000", "127.0.0.1:7946"};
		swim_join(s, seeds, 2, now);
		drain(s);
	}

	struct frame_decoder d;
	frame_decoder_init(&d, FRAME_MAX);
	for (int i = 0; i < MAX_MSGS; i++) {
		const uint8_t *payload;
		size_t plen;
		if (frame_decoder_next(&d, &p, &len, &payload, &plen) != 1)
			break;
		/* time moves 0..2047 ms, chosen by the message's last bytes */
		uint64_t step =
		    ((uint64_t)payload[plen - 1] << 3 | (plen > 1 ? payload[0] & 7 : 0)) % 2048;

		Mv__Envelope *env = NULL;
		const char *why = NULL;
		if (envelope_decode(payload, plen, &env, &why) != 0)
			continue;
		if (env->body_case == MV__ENVELOPE__BODY_SWIM) {
			struct swim_msg m;
			struct swim_update *ups = NULL;
			memset(&m, 0, sizeof(m));
			int r = swim_codec_decode(env, &m, &ups, &why);
			if (r == 0) {
				if (swim_handle_message(s, &m, now) > 0)
					abort(); /* 0 or negative errno */
				drain(s);
				if (flags & 4) {
					if (swim_peer_refused(s, m.from, now) > 0 ||
					    swim_peer_refused(s, m.target, now) > 0)
						abort();
					drain(s);
				}
			} else if (why == NULL || why[0] == '\0') {
				abort(); /* a rejection must say why */
			}
			free(ups);
		}
		envelope_free(env);
		run_until(s, &now, now + step);
		check_invariants(s);
	}
	frame_decoder_close(&d);

	if (flags & 2) {
		swim_leave(s, now);
		drain(s);
	}
	run_until(s, &now, now + 60000);
	check_invariants(s);
	swim_free(s);
	return 0;
}
