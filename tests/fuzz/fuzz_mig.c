/*
 * fuzz_mig.c — libFuzzer target for the path a peer's bytes take into the
 * migration negotiation core: envelope_decode -> mig_codec_decode ->
 * mig_handle_message.
 *
 * Input: a stream of frames (4-byte BE length + Envelope), each one message
 * from "the network" to a core named "self" that has capacity, one outgoing
 * proposal of its own, and whose clock moves between messages by an amount
 * taken from the stream (every due timer run). The core must not crash,
 * must answer malformed input with 0 or -EINVAL only, must never emit a
 * message to itself, and every message it emits must survive its own codec
 * (encode, decode, same type and proposal id).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "frame.h"
#include "meshvisor/mig.h"
#include "mig_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64

static void check_output(const struct mig_msg *m)
{
	if (strcmp(m->to, "self") == 0 || strcmp(m->from, "self") != 0)
		abort(); /* never to ourselves, always from ourselves */
	uint8_t *f = NULL;
	size_t n = 0;
	if (mig_codec_encode_frame(m, "qemu+tcp://h/system", "", &f, &n) != 0)
		abort(); /* the core emitted something its own codec cannot send */
	Mv__Envelope *env = NULL;
	const char *why = NULL, *d, *u;
	if (envelope_decode(f + FRAME_HEADER_LEN, n - FRAME_HEADER_LEN, &env, &why) != 0)
		abort();
	struct mig_msg back;
	if (mig_codec_decode(env, &back, &d, &u, &why) != 0)
		abort();
	if (back.type != m->type || strcmp(back.proposal_id, m->proposal_id) != 0 ||
	    back.vcpus != m->vcpus || back.memory_kib != m->memory_kib)
		abort();
	envelope_free(env);
	free(f);
}

static void drain(struct mig *c)
{
	struct mig_msg out;
	while (mig_pop_output(c, &out))
		check_output(&out);
	struct mig_event ev;
	while (mig_pop_event(c, &ev)) {
		volatile size_t t = strlen(ev.text) + strlen(ev.proposal_id);
		(void)t;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_config cfg;
	mig_config_default(&cfg);
	strcpy(cfg.name, "self");
	cfg.seed = 1;
	cfg.lease_ms = 3000;
	cfg.startup_quiet_ms = 0;
	uint64_t now = 1000;
	struct mig *c = mig_new(&cfg, now);
	if (c == NULL)
		abort();
	struct mig_capacity cap = {.cpus = 16,
	                           .cpu_overcommit = 4,
	                           .memory_kib = 64ull << 20,
	                           .memory_reserved_kib = 1 << 20,
	                           .memory_overcommit = 1};
	mig_set_capacity(c, &cap);
	struct mig_vm vm = {.name = "vm1",
	                    .uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f",
	                    .vcpus = 2,
	                    .memory_kib = 1 << 20};
	char id[MIG_ID_MAX];
	enum mig_reason why_local;
	mig_propose(c, &vm, "peer", now, id, &why_local);
	drain(c);

	size_t off = 0;
	for (int k = 0; k < MAX_MSGS && off + FRAME_HEADER_LEN <= size; k++) {
		uint32_t len = ((uint32_t)data[off] << 24) | ((uint32_t)data[off + 1] << 16) |
		               ((uint32_t)data[off + 2] << 8) | data[off + 3];
		off += FRAME_HEADER_LEN;
		if (len > size - off)
			len = (uint32_t)(size - off);
		Mv__Envelope *env = NULL;
		const char *why = NULL, *d, *u;
		if (envelope_decode(data + off, len, &env, &why) == 0) {
			struct mig_msg m;
			if (mig_codec_decode(env, &m, &d, &u, &why) == 0) {
				int rc = mig_handle_message(c, &m, now);
				if (rc != 0 && rc != -EINVAL)
					abort();
			}
			envelope_free(env);
		}
		off += len;
		now += len * 97u; /* time moves by an input-chosen amount */
		while (mig_next_deadline(c) <= now)
			mig_handle_timer(c, mig_next_deadline(c));
		mig_handle_timer(c, now);
		drain(c);
		if (k % 7 == 3) {
			mig_peer_down(c, "peer", now);
			drain(c);
		}
	}
	mig_free(c);
	return 0;
}
