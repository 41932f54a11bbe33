/*
 * fuzz_state.c — libFuzzer target for the path a peer's bytes take into the
 * node-state core: envelope_decode -> state_codec_decode ->
 * nstate_handle_message.
 *
 * Input layout:
 *   byte 0     flags: bit 0 the core publishes its own record first,
 *              bit 1 a few peers are up (so replies and relays go out),
 *              bit 2 every other message, the sender goes down/forgotten,
 *              bit 3 records are signed and checked (a fake proof: a
 *              record's is valid when non-empty with an even first byte;
 *              ours is "\x02self")
 *   bytes 1..  a stream of frames (4-byte BE length + Envelope), each one
 *              message from "the network" to a core named "self"
 *
 * Every message is handed to one core in order, the clock moving between
 * messages by an amount taken from the payload and every due timer run.
 * The core must not crash, its hash must equal the sum it implies (a
 * second core fed its records reaches the same hash), a rejected message
 * must change nothing, and every message it emits must survive its own
 * codec (encode, decode, same type, counts and bucket-tree fields,
 * frame_size exact) and pass nstate_msg_check. The bucket tree's sums
 * must equal a fresh core's that holds the same records.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "frame.h"
#include "meshvisor/nstate.h"
#include "state_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64

static void check_output(const struct nstate_msg *m)
{
	uint8_t *f = NULL;
	size_t n = 0;
	if (state_codec_encode_frame(m, &f, &n) != 0)
		abort(); /* the core emitted something its own codec cannot send */
	if (n < FRAME_HEADER_LEN + 1 || n != state_codec_frame_size(m))
		abort();
	if (m->to == NULL || strcmp(m->to, "self") == 0)
		abort(); /* never to ourselves */
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	if (envelope_decode(f + FRAME_HEADER_LEN, n - FRAME_HEADER_LEN, &env, &why) != 0)
		abort();
	struct nstate_msg back;
	struct nstate_version *vs = NULL;
	struct nstate_record *rs = NULL;
	if (state_codec_decode(env, &back, &vs, &rs, &why) != 0)
		abort();
	for (size_t k = 0; k < m->n_records && k < back.n_records; k++)
		if (back.records[k].proof_len != m->records[k].proof_len ||
		    (m->records[k].proof_len != 0 &&
		     memcmp(back.records[k].proof, m->records[k].proof, m->records[k].proof_len) !=
		         0))
			abort(); /* a relay carries the proof unchanged */
	if (back.type != m->type || back.n_versions != m->n_versions ||
	    back.n_records != m->n_records || back.hops != m->hops || back.tree != m->tree ||
	    back.level != m->level || back.n_nodes != m->n_nodes || back.n_hashes != m->n_hashes)
		abort();
	/* the tree's nodes and hashes survive too, and what the core emits
	 * passes its own check (bounded, in range, in order) */
	if ((m->n_nodes && memcmp(back.nodes, m->nodes, m->n_nodes * sizeof(*m->nodes)) != 0) ||
	    (m->n_hashes && memcmp(back.hashes, m->hashes, m->n_hashes * sizeof(*m->hashes)) != 0))
		abort();
	if (nstate_msg_check(m, &why) != 0)
		abort();
	free(vs);
	free(rs);
	envelope_free(env);
	free(f);
}

static void drain(struct nstate *ns)
{
	struct nstate_msg out;
	while (nstate_pop_output(ns, &out))
		check_output(&out);
	struct nstate_event ev;
	while (nstate_pop_event(ns, &ev)) {
		volatile size_t t = strlen(ev.name);
		(void)t;
	}
}

/* A second core that holds exactly ns's records must have the same hash. */
static void check_hash(struct nstate *ns)
{
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	strcpy(cfg.name, "check");
	struct nstate *c = nstate_new(&cfg, 0);
	if (c == NULL)
		abort();
	for (size_t i = 0; i < nstate_count(ns); i++) {
		struct nstate_record r;
		nstate_record_at(ns, i, &r);
		struct nstate_record copy = r;
		struct nstate_msg m = {
		    .type = NSTATE_DELTA, .from = "x", .records = &copy, .n_records = 1};
		if (strcmp(r.name, "check") == 0)
			continue; /* that one would be c's own */
		if (nstate_handle_message(c, &m, 0) != 0)
			abort();
		struct nstate_record got;
		if (!nstate_find(c, r.name, &got) || got.version != r.version ||
		    got.incarnation != r.incarnation || got.len != r.len)
			abort();
		if (!nstate_find(ns, r.name, &got))
			abort();
	}
	/* a skipped record makes the sums differ; compare only without one;
	 * the bucket tree's sums follow the same records */
	if (!nstate_find(ns, "check", NULL)) {
		if (nstate_hash(c) != nstate_hash(ns))
			abort();
		for (uint32_t j = 0; j < NSTATE_TREE_LEAVES; j++)
			if (nstate_tree_hash(c, NSTATE_TREE_DEPTH, j) !=
			    nstate_tree_hash(ns, NSTATE_TREE_DEPTH, j))
				abort();
		for (uint32_t j = 0; j < NSTATE_TREE_FANOUT; j++)
			if (nstate_tree_hash(c, 1, j) != nstate_tree_hash(ns, 1, j))
				abort();
	}
	nstate_free(c);
}

static void run_until(struct nstate *ns, uint64_t *now, uint64_t until)
{
	for (int guard = 0; guard < 10000; guard++) {
		uint64_t dl = nstate_next_deadline(ns);
		if (dl > until)
			break;
		if (dl > *now)
			*now = dl;
		nstate_handle_timer(ns, *now);
		drain(ns);
		if (nstate_next_deadline(ns) <= *now)
			abort(); /* the timer must move on */
	}
	*now = until;
}

static int fake_sign(void *ctx, const struct nstate_record *r, uint8_t *out, size_t cap)
{
	(void)ctx;
	(void)r;
	if (cap < 5)
		abort();
	memcpy(out, "\x02self", 5);
	return 5;
}

static bool fake_verify(void *ctx, const struct nstate_record *r)
{
	(void)ctx;
	if (r->proof_len > NSTATE_PROOF_MAX || strcmp(r->name, "self") == 0)
		abort(); /* the core checks sizes first, and never our own record */
	return r->proof_len > 0 && (r->proof[0] & 1) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const uint8_t *p = data + 1;
	size_t len = size - 1;

	struct nstate_config cfg;
	nstate_config_default(&cfg);
	strcpy(cfg.name, "self");
	cfg.seed = 42;
	cfg.max_msg_bytes = 4096; /* reach DELTA splitting with small inputs */
	if (flags & 8) {
		cfg.sign = fake_sign;
		cfg.verify = fake_verify;
	}
	uint64_t now = 1000000;
	struct nstate *ns = nstate_new(&cfg, now);
	if (ns == NULL)
		abort();
	if (flags & 1) {
		if (nstate_set_local(ns, 1, 1, (const uint8_t *)"self-record", 11, false, now) != 0)
			abort();
	}
	if (flags & 2) {
		static const char *const peers[] = {"a", "b", "c", "d", "e"};
		for (size_t i = 0; i < 5; i++)
			if (nstate_peer_up(ns, peers[i], "127.0.0.1:7950") != 0)
				abort();
	}

	struct frame_decoder d;
	frame_decoder_init(&d, FRAME_MAX);
	for (int i = 0; i < MAX_MSGS; i++) {
		const uint8_t *payload;
		size_t plen;
		if (frame_decoder_next(&d, &p, &len, &payload, &plen) != 1)
			break;
		uint64_t step = ((uint64_t)payload[plen - 1] << 4) % 3000;
		Mv__Envelope *env = NULL;
		const char *why = NULL;
		if (envelope_decode(payload, plen, &env, &why) != 0)
			continue;
		if (env->body_case == MV__ENVELOPE__BODY_STATE) {
			struct nstate_msg m;
			struct nstate_version *vs = NULL;
			struct nstate_record *rs = NULL;
			int r = state_codec_decode(env, &m, &vs, &rs, &why);
			if (r == 0) {
				if (flags & 2)
					nstate_peer_up(ns, m.from, "127.0.0.1:7950");
				uint64_t h = nstate_hash(ns);
				size_t cnt = nstate_count(ns);
				int rc = nstate_handle_message(ns, &m, now);
				if (rc > 0)
					abort(); /* 0 or negative errno */
				if (rc < 0 && (nstate_hash(ns) != h || nstate_count(ns) != cnt))
					abort(); /* a rejection changes nothing */
				drain(ns);
				if ((flags & 4) && (i & 1)) {
					nstate_peer_down(ns, m.from);
					if (i & 2)
						nstate_forget(ns, m.from);
				}
			} else if (why == NULL || why[0] == '\0') {
				abort(); /* a rejection must say why */
			}
			free(vs);
			free(rs);
		}
		envelope_free(env);
		run_until(ns, &now, now + step);
	}
	frame_decoder_close(&d);
	if (flags & 1) {
		if (nstate_set_local(ns, 1, 2, (const uint8_t *)"changed", 7, true, now) != 0)
			abort();
		drain(ns);
	}
	run_until(ns, &now, now + 10000);
	check_hash(ns);
	nstate_free(ns);
	return 0;
}
