/*
 * test_dgram.c — agent/net/dgram.c: sealed datagrams. Two key tables, "a"
 * (the TLS client) and "b" (the server), get the same exporter material,
 * as two ends of one handshake do (test_tls.c derives it from a real
 * handshake); then every attack we can think of on a datagram: each byte
 * altered, truncated, extended, reflected, replayed, too old, sealed with
 * a retired or evicted key — each dropped and counted under its reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dgram.h"

static void material(uint8_t m[DGRAM_MATERIAL_LEN], uint8_t seed)
{
	for (size_t i = 0; i < DGRAM_MATERIAL_LEN; i++)
		m[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

struct pair {
	struct dgram_table *a, *b;
};

/* A handshake between a (the client) and b: both install its keys. */
static void pair_handshake(struct pair *p, uint8_t seed, uint64_t now)
{
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, seed);
	assert_int_equal(dgram_install(p->a, "b", m, sizeof(m), true, now), 0);
	assert_int_equal(dgram_install(p->b, "a", m, sizeof(m), false, now), 0);
}

static void pair_new(struct pair *p, const struct dgram_config *cfg, uint8_t seed, uint64_t now)
{
	p->a = dgram_new(cfg);
	p->b = dgram_new(cfg);
	assert_non_null(p->a);
	assert_non_null(p->b);
	pair_handshake(p, seed, now);
}

static void pair_free(struct pair *p)
{
	dgram_free(p->a);
	dgram_free(p->b);
}

static size_t seal(struct dgram_table *t, const char *to, const char *msg, uint8_t *out,
                   uint64_t now)
{
	size_t len = 0;
	assert_int_equal(
	    dgram_seal(t, to, (const uint8_t *)msg, strlen(msg), out, DGRAM_MAX_LEN, &len, now), 0);
	assert_int_equal(len, strlen(msg) + DGRAM_OVERHEAD);
	return len;
}

static enum dgram_drop open_(struct dgram_table *t, const uint8_t *dg, size_t len, uint64_t now,
                             char *got, const char **from)
{
	uint8_t out[DGRAM_MAX_PAYLOAD];
	size_t ol = 0;
	const char *peer = NULL;
	enum dgram_drop d = dgram_open(t, dg, len, out, sizeof(out), &ol, &peer, now);
	if (d == DGRAM_OK) {
		if (got) {
			memcpy(got, out, ol);
			got[ol] = '\0';
		}
		if (from)
			*from = peer;
	}
	return d;
}

/* Seals one datagram at `from` for `to_name` and opens it at `to`:
 * DGRAM_OK, or why it was dropped. */
static enum dgram_drop send_one(struct dgram_table *from, const char *to_name,
                                struct dgram_table *to, uint64_t now)
{
	uint8_t dg[DGRAM_MAX_LEN];
	size_t len = seal(from, to_name, "hb", dg, now);
	return open_(to, dg, len, now, NULL, NULL);
}

/* Identities of the certificates the CA issued for the name "a": the real
 * agent's (A), a second one (I: stolen or misissued), a rotation's new
 * one (R) and one more (Q). */
struct certs {
	uint8_t a[DGRAM_CERT_LEN], i[DGRAM_CERT_LEN], r[DGRAM_CERT_LEN], q[DGRAM_CERT_LEN];
};

static void certs_init(struct certs *c)
{
	memset(c->a, 0xa1, sizeof(c->a));
	memset(c->i, 0x17, sizeof(c->i));
	memset(c->r, 0x3c, sizeof(c->r));
	memset(c->q, 0x5e, sizeof(c->q));
}

/* A handshake that `holder` (the client, showing certificate `cert` for
 * "a") made to b: both ends install; what b's install returned. */
static int dial_b(struct dgram_table *holder, struct dgram_table *b, const uint8_t *cert,
                  uint8_t seed, uint64_t now)
{
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, seed);
	assert_int_equal(dgram_install(holder, "b", m, sizeof(m), true, now), 0);
	return dgram_install_cert(b, "a", m, sizeof(m), false, cert, now);
}

/* t put `aside` handshakes aside and asked for `dials` dials. */
static void assert_cert_stats(const struct dgram_table *t, uint64_t aside, uint64_t dials)
{
	struct dgram_stats st;
	dgram_get_stats(t, &st);
	assert_int_equal(st.aside, aside);
	assert_int_equal(st.proof_rekeys, dials);
}

static void test_round_trip_both_ways(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 1, 1000);
	uint8_t dg[DGRAM_MAX_LEN];
	char got[DGRAM_MAX_PAYLOAD + 1];
	const char *from = NULL;
	size_t len = seal(p.a, "b", "ping from a", dg, 1000);
	assert_int_equal(dg[0], DGRAM_VERSION);
	assert_null(memmem(dg, len, "ping", 4)); /* encrypted, not just signed */
	assert_int_equal(open_(p.b, dg, len, 1001, got, &from), DGRAM_OK);
	assert_string_equal(got, "ping from a");
	assert_string_equal(from, "a");
	len = seal(p.b, "a", "ack from b", dg, 1002);
	assert_int_equal(open_(p.a, dg, len, 1003, got, &from), DGRAM_OK);
	assert_string_equal(got, "ack from b");
	assert_string_equal(from, "b");
	/* empty payload too */
	size_t l0 = 0;
	assert_int_equal(dgram_seal(p.a, "b", NULL, 0, dg, sizeof(dg), &l0, 1004), 0);
	assert_int_equal(l0, DGRAM_OVERHEAD);
	assert_int_equal(open_(p.b, dg, l0, 1005, got, NULL), DGRAM_OK);
	struct dgram_stats s;
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.opened, 2);
	assert_int_equal(s.sealed, 1);
	pair_free(&p);
}

static void test_sequence_in_header(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 2, 0);
	uint8_t dg[DGRAM_MAX_LEN];
	for (uint64_t i = 1; i <= 3; i++) {
		seal(p.a, "b", "x", dg, 10);
		uint64_t seq = 0;
		for (int k = 0; k < 8; k++)
			seq = (seq << 8) | dg[9 + k];
		assert_int_equal(seq, i); /* starts at 1, big endian */
	}
	pair_free(&p);
}

/* Every single byte of header, ciphertext and tag altered: dropped,
 * counted under the reason its position implies, and the genuine datagram
 * still opens afterwards (nothing forged moved the window). */
static void test_tamper_every_byte(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 3, 0);
	uint8_t dg[DGRAM_MAX_LEN], bad[DGRAM_MAX_LEN];
	seal(p.a, "b", "x", dg, 5);
	seal(p.a, "b", "x", dg, 5);
	/* sequence 3: no flipped bit of it makes 0 */
	size_t len = seal(p.a, "b", "heartbeat stamp=42", dg, 5);
	uint64_t want_version = 0, want_key = 0, want_auth = 0;
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			memcpy(bad, dg, len);
			bad[i] ^= (uint8_t)(1u << bit);
			enum dgram_drop d = open_(p.b, bad, len, 6, NULL, NULL);
			if (i == 0) {
				assert_int_equal(d, DGRAM_DROP_VERSION);
				want_version++;
			} else if (i < 1 + DGRAM_KEY_ID_LEN) {
				assert_int_equal(d, DGRAM_DROP_UNKNOWN_KEY);
				want_key++;
			} else {
				/* sequence (AAD and nonce), ciphertext, tag */
				assert_int_equal(d, DGRAM_DROP_AUTH);
				want_auth++;
			}
		}
	}
	struct dgram_stats s;
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.drop_version, want_version);
	assert_int_equal(s.drop_unknown_key, want_key);
	assert_int_equal(s.drop_auth, want_auth);
	assert_int_equal(s.opened, 0);
	assert_int_equal(open_(p.b, dg, len, 7, NULL, NULL), DGRAM_OK);
	pair_free(&p);
}

static void test_bad_lengths(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 4, 0);
	uint8_t dg[DGRAM_MAX_LEN + 8];
	size_t len = seal(p.a, "b", "probe", dg, 1);
	/* truncated anywhere: too short for a header and tag, or tag mismatch */
	for (size_t l = 0; l < len; l++) {
		enum dgram_drop d = open_(p.b, dg, l, 2, NULL, NULL);
		assert_int_equal(d, l < DGRAM_OVERHEAD ? DGRAM_DROP_SHORT : DGRAM_DROP_AUTH);
	}
	/* extended by one byte */
	dg[len] = 0;
	assert_int_equal(open_(p.b, dg, len + 1, 2, NULL, NULL), DGRAM_DROP_AUTH);
	/* longer than any datagram we send */
	uint8_t big[DGRAM_MAX_LEN + 1];
	memcpy(big, dg, len);
	assert_int_equal(open_(p.b, big, sizeof(big), 2, NULL, NULL), DGRAM_DROP_SHORT);
	assert_int_equal(open_(p.b, NULL, 40, 2, NULL, NULL), DGRAM_DROP_SHORT);
	struct dgram_stats s;
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.drop_short, DGRAM_OVERHEAD + 2);
	assert_int_equal(open_(p.b, dg, len, 3, NULL, NULL), DGRAM_OK);
	pair_free(&p);
}

static void test_seal_errors(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 5, 0);
	uint8_t payload[DGRAM_MAX_PAYLOAD + 1] = {0}, out[DGRAM_MAX_LEN + 1];
	size_t len;
	assert_int_equal(
	    dgram_seal(p.a, "b", payload, DGRAM_MAX_PAYLOAD + 1, out, sizeof(out), &len, 1),
	    -EMSGSIZE);
	assert_int_equal(dgram_seal(p.a, "nobody", payload, 10, out, sizeof(out), &len, 1),
	                 -ENOKEY);
	assert_int_equal(dgram_seal(p.a, NULL, payload, 10, out, sizeof(out), &len, 1), -ENOKEY);
	assert_int_equal(dgram_seal(p.a, "b", payload, 10, out, 10 + DGRAM_OVERHEAD - 1, &len, 1),
	                 -ENOBUFS);
	assert_int_equal(
	    dgram_seal(p.a, "b", payload, DGRAM_MAX_PAYLOAD, out, sizeof(out), &len, 1), 0);
	struct dgram_stats s;
	dgram_get_stats(p.a, &s);
	assert_int_equal(s.too_big, 1);
	assert_int_equal(s.no_key, 2);
	/* install refuses bad input */
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, 9);
	assert_int_equal(dgram_install(p.a, "", m, sizeof(m), true, 0), -EINVAL);
	assert_int_equal(dgram_install(p.a, NULL, m, sizeof(m), true, 0), -EINVAL);
	assert_int_equal(dgram_install(p.a, "x", m, sizeof(m) - 1, true, 0), -EINVAL);
	char longname[80];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(dgram_install(p.a, longname, m, sizeof(m), true, 0), -EINVAL);
	pair_free(&p);
}

static void test_replay_window(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 6, 0);
	static uint8_t dg[200][DGRAM_MAX_LEN];
	size_t len[200];
	for (int i = 0; i < 200; i++)
		len[i] = seal(p.a, "b", "probe", dg[i], 1); /* sequences 1..200 */
	/* duplicate */
	assert_int_equal(open_(p.b, dg[0], len[0], 2, NULL, NULL), DGRAM_OK);
	assert_int_equal(open_(p.b, dg[0], len[0], 2, NULL, NULL), DGRAM_DROP_REPLAY);
	/* jump ahead to 100, then reordering within the window is accepted once */
	assert_int_equal(open_(p.b, dg[99], len[99], 2, NULL, NULL), DGRAM_OK);
	assert_int_equal(open_(p.b, dg[98], len[98], 2, NULL, NULL), DGRAM_OK);
	assert_int_equal(open_(p.b, dg[40], len[40], 2, NULL, NULL),
	                 DGRAM_OK); /* seq 41: 59 back */
	assert_int_equal(open_(p.b, dg[40], len[40], 2, NULL, NULL), DGRAM_DROP_REPLAY);
	assert_int_equal(open_(p.b, dg[36], len[36], 2, NULL, NULL),
	                 DGRAM_OK); /* seq 37: 63 back */
	/* seq 36 is 64 behind 100: older than the window, dropped though never seen */
	assert_int_equal(open_(p.b, dg[35], len[35], 2, NULL, NULL), DGRAM_DROP_REPLAY);
	/* a far jump clears the window */
	assert_int_equal(open_(p.b, dg[199], len[199], 2, NULL, NULL), DGRAM_OK);
	assert_int_equal(open_(p.b, dg[99], len[99], 2, NULL, NULL), DGRAM_DROP_REPLAY);
	assert_int_equal(open_(p.b, dg[150], len[150], 2, NULL, NULL), DGRAM_OK);
	struct dgram_stats s;
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.drop_replay, 4);
	assert_int_equal(s.opened, 7);
	pair_free(&p);
}

/* A forged datagram with a huge sequence must not move the window: the
 * genuine ones after it still open. */
static void test_forged_sequence_does_not_move_window(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 7, 0);
	uint8_t dg[DGRAM_MAX_LEN], forged[DGRAM_MAX_LEN];
	size_t len = seal(p.a, "b", "probe", dg, 1);
	memcpy(forged, dg, len);
	memset(forged + 9, 0x7f, 8); /* sequence 0x7f7f... */
	assert_int_equal(open_(p.b, forged, len, 2, NULL, NULL), DGRAM_DROP_AUTH);
	assert_int_equal(open_(p.b, dg, len, 2, NULL, NULL), DGRAM_OK);
	/* sequence 0 is never sent: dropped as a replay before any crypto */
	memset(forged + 9, 0, 8);
	assert_int_equal(open_(p.b, forged, len, 2, NULL, NULL), DGRAM_DROP_REPLAY);
	pair_free(&p);
}

/* A datagram a sent to b, sent back to a (or sealed towards a third party
 * with another session's keys): the key id is not one a receives with. */
static void test_reflection_and_foreign_keys(void **state)
{
	(void)state;
	struct pair p, q;
	pair_new(&p, NULL, 8, 0);
	pair_new(&q, NULL, 9, 0);
	uint8_t dg[DGRAM_MAX_LEN];
	size_t len = seal(p.a, "b", "ping", dg, 1);
	assert_int_equal(open_(p.a, dg, len, 2, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	assert_int_equal(open_(q.b, dg, len, 2, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	pair_free(&p);
	pair_free(&q);
}

/* A peer whose certificate was revoked (net_close_revoked): its datagrams,
 * sealed under a key that was valid a moment ago, are dropped, and nothing
 * is sealed for it; another peer's keys are untouched. */
static void test_forget_revoked_peer(void **state)
{
	(void)state;
	struct pair p;
	uint8_t m[DGRAM_MATERIAL_LEN], dg[DGRAM_MAX_LEN];
	struct dgram_stats s;
	pair_new(&p, NULL, 12, 0);
	material(m, 13);
	assert_int_equal(dgram_install(p.b, "c", m, sizeof(m), true, 0), 0);
	size_t len = seal(p.a, "b", "ping", dg, 1);
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.peers, 2);
	dgram_forget(p.b, "a");
	dgram_forget(p.b, "nobody"); /* unknown: nothing happens */
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.peers, 1);
	assert_int_equal(open_(p.b, dg, len, 2, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	assert_false(dgram_can_send(p.b, "a", 2));
	size_t l = 0;
	assert_true(dgram_seal(p.b, "a", (const uint8_t *)"x", 1, dg, sizeof(dg), &l, 2) < 0);
	assert_true(dgram_can_send(p.b, "c", 2));
	/* a new handshake installs it again */
	material(m, 12);
	assert_int_equal(dgram_install(p.b, "a", m, sizeof(m), false, 3), 0);
	len = seal(p.a, "b", "again", dg, 4);
	assert_int_equal(open_(p.b, dg, len, 5, NULL, NULL), DGRAM_OK);
	pair_free(&p);
}

static void test_key_expiry(void **state)
{
	(void)state;
	struct dgram_config cfg = {.key_lifetime_ms = 10000, .grace_ms = 1000};
	struct pair p;
	pair_new(&p, &cfg, 10, 0);
	uint8_t dg[DGRAM_MAX_LEN];
	assert_true(dgram_can_send(p.a, "b", 9999));
	size_t len = seal(p.a, "b", "late", dg, 9999);
	assert_false(dgram_can_send(p.a, "b", 10000));
	size_t l2;
	assert_int_equal(dgram_seal(p.a, "b", dg, 4, dg + 100, 100, &l2, 10000), -ENOKEY);
	/* the receiver still opens it within the grace after the lifetime */
	assert_int_equal(open_(p.b, dg, len, 10999, NULL, NULL), DGRAM_OK);
	/* and not after */
	struct pair q;
	pair_new(&q, &cfg, 11, 0);
	len = seal(q.a, "b", "late", dg, 9999);
	assert_int_equal(open_(q.b, dg, len, 11000, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	pair_free(&p);
	pair_free(&q);
}

static void test_sequence_limit_retires_key(void **state)
{
	(void)state;
	struct dgram_config cfg = {.max_seq = 3};
	struct pair p;
	pair_new(&p, &cfg, 12, 0);
	uint8_t dg[DGRAM_MAX_LEN];
	for (int i = 0; i < 3; i++)
		seal(p.a, "b", "x", dg, 1);
	size_t l;
	assert_false(dgram_can_send(p.a, "b", 1));
	assert_int_equal(dgram_seal(p.a, "b", dg, 1, dg + 100, 100, &l, 1), -ENOKEY);
	pair_free(&p);
}

/* A send key comes due for a rekey inside [0.6, 0.9) of its lifetime, at
 * a point its key id picks (so keys installed together come due apart),
 * keeps sealing until it retires, and a deferral moves the point; a fresh
 * install makes it not due. Past 3/4 of max_seq it is due as well. */
static void test_rekey_due_staggered(void **state)
{
	(void)state;
	const uint8_t lo[DGRAM_KEY_ID_LEN] = {0x00, 0x00}, hi[DGRAM_KEY_ID_LEN] = {0xff, 0xff},
		      mid[DGRAM_KEY_ID_LEN] = {0x80, 0x00};
	assert_int_equal(dgram_rekey_after(10000, lo), 6000);
	assert_int_equal(dgram_rekey_after(10000, mid), 7500);
	assert_true(dgram_rekey_after(10000, hi) >= 8990 && dgram_rekey_after(10000, hi) < 9000);

	struct dgram_config cfg = {.key_lifetime_ms = 10000};
	struct pair p;
	pair_new(&p, &cfg, 15, 1000);
	/* a's send key id is the client->server id of the material */
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, 15);
	uint64_t due = 1000 + dgram_rekey_after(10000, m + DGRAM_KEY_LEN);
	assert_false(dgram_rekey_due(p.a, "b", due - 1));
	assert_true(dgram_rekey_due(p.a, "b", due));
	assert_true(dgram_can_send(p.a, "b", due)); /* still seals */
	assert_false(dgram_rekey_due(p.a, "nobody", due));
	dgram_rekey_defer(p.a, "b", due + 500);
	assert_false(dgram_rekey_due(p.a, "b", due + 499));
	assert_true(dgram_rekey_due(p.a, "b", due + 500));
	/* retired: no key, so no rekey "due" (the caller gets -ENOKEY) */
	assert_false(dgram_rekey_due(p.a, "b", 11000));
	/* a fresh handshake's keys are not due */
	material(m, 16);
	assert_int_equal(dgram_install(p.a, "b", m, sizeof(m), true, due + 600), 0);
	assert_false(dgram_rekey_due(p.a, "b", due + 600));
	pair_free(&p);

	/* by the sequence: 6 of 8 used -> due */
	struct dgram_config sc = {.max_seq = 8};
	pair_new(&p, &sc, 17, 0);
	uint8_t dg[DGRAM_MAX_LEN];
	for (int i = 0; i < 6; i++) {
		assert_false(dgram_rekey_due(p.a, "b", 1));
		seal(p.a, "b", "x", dg, 1);
	}
	assert_true(dgram_rekey_due(p.a, "b", 1));
	pair_free(&p);
}

/* A new handshake replaces the send key; the old receive key opens
 * in-flight datagrams during the grace, then no more. */
static void test_rekey_grace(void **state)
{
	(void)state;
	struct dgram_config cfg = {.grace_ms = 1000};
	struct pair p;
	pair_new(&p, &cfg, 13, 0);
	uint8_t old[DGRAM_MAX_LEN], old2[DGRAM_MAX_LEN], fresh[DGRAM_MAX_LEN];
	size_t lo = seal(p.a, "b", "in flight", old, 100);
	size_t lo2 = seal(p.a, "b", "in flight 2", old2, 100);
	pair_handshake(&p, 14, 200);
	size_t lf = seal(p.a, "b", "new key", fresh, 201);
	assert_int_not_equal(memcmp(old + 1, fresh + 1, 8), 0);
	uint64_t seq = 0;
	for (int k = 0; k < 8; k++)
		seq = (seq << 8) | fresh[9 + k];
	assert_int_equal(seq, 1); /* sequence restarts with the key */
	assert_int_equal(open_(p.b, fresh, lf, 300, NULL, NULL), DGRAM_OK);
	assert_int_equal(open_(p.b, old, lo, 300, NULL, NULL), DGRAM_OK); /* grace */
	/* used at 300: valid until 1300, not after */
	assert_int_equal(open_(p.b, old2, lo2, 1300, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	struct dgram_stats s;
	dgram_get_stats(p.b, &s);
	assert_int_equal(s.installs, 2);
	assert_int_equal(s.peers, 1);
	pair_free(&p);
}

/* The same when the new key comes at time 0 (a clock that starts at 0, as
 * the simulator's does): the replaced key is marked replaced, not "newest
 * because replaced_at is 0", so its grace ends too. */
static void test_rekey_grace_at_time_zero(void **state)
{
	(void)state;
	struct dgram_config cfg = {.grace_ms = 1000, .key_lifetime_ms = 600000};
	struct pair p;
	pair_new(&p, &cfg, 15, 0);
	uint8_t old[DGRAM_MAX_LEN], old2[DGRAM_MAX_LEN];
	size_t lo = seal(p.a, "b", "old key", old, 0);
	size_t lo2 = seal(p.a, "b", "old key 2", old2, 0);
	pair_handshake(&p, 16, 0);
	assert_int_equal(open_(p.b, old, lo, 999, NULL, NULL), DGRAM_OK); /* grace */
	/* used at 999: valid until 1999, not after (before: until its lifetime) */
	assert_int_equal(open_(p.b, old2, lo2, 2999, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	pair_free(&p);
}

/* Both ends connect at once: a installs sessions 1 then 2, b installs 2
 * then 1. a sends with 2, which b holds as its previous key: it must keep
 * working while a uses it, beyond the grace. */
static void test_crossed_handshakes(void **state)
{
	(void)state;
	struct dgram_config cfg = {.grace_ms = 1000, .key_lifetime_ms = 600000};
	struct dgram_table *a = dgram_new(&cfg), *b = dgram_new(&cfg);
	uint8_t m1[DGRAM_MATERIAL_LEN], m2[DGRAM_MATERIAL_LEN];
	material(m1, 21);
	material(m2, 22);
	/* session 1: a is client; session 2: b is client */
	assert_int_equal(dgram_install(a, "b", m1, sizeof(m1), true, 0), 0);
	assert_int_equal(dgram_install(a, "b", m2, sizeof(m2), false, 1), 0);
	assert_int_equal(dgram_install(b, "a", m2, sizeof(m2), true, 0), 0);
	assert_int_equal(dgram_install(b, "a", m1, sizeof(m1), false, 1), 0);
	uint8_t dg[DGRAM_MAX_LEN];
	for (uint64_t now = 10; now < 100000; now += 500) {
		size_t len = seal(a, "b", "hb", dg, now);
		assert_int_equal(open_(b, dg, len, now, NULL, NULL), DGRAM_OK);
		len = seal(b, "a", "ack", dg, now);
		assert_int_equal(open_(a, dg, len, now, NULL, NULL), DGRAM_OK);
	}
	dgram_free(a);
	dgram_free(b);
}

/* Two certificates the CA issued for one name "a": the one the real agent
 * uses (A), and a second (I: stolen, misissued, or a rotation's new one).
 * A handshake we dialed decides which one we send under; handshakes the
 * other certificate's holder makes to us put its keys aside — one side
 * slot, our send key unchanged, or retired (for a dial) while no dial
 * vouched for ours. Before, each one replaced our send key to "a" (the
 * real agent dropped everything we sealed) and pushed A's receive keys
 * out (ten connections made a survivor declare the real agent dead); and
 * in a first version of the fix whoever connected first after a restart,
 * or after our key retired, kept the name (a review). */
static void test_second_certificate_kept_aside(void **state)
{
	(void)state;
	struct certs c;
	certs_init(&c);
	const uint8_t *cert_a = c.a, *cert_i = c.i, *cert_r = c.r;
	struct dgram_table *a = dgram_new(NULL), *b = dgram_new(NULL), *imp = dgram_new(NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(imp);
	uint8_t m[DGRAM_MATERIAL_LEN], dg[DGRAM_MAX_LEN];

	/* 1. I's holder is first (b just restarted): nothing to compare with,
	 * its keys install */
	material(m, 40);
	assert_int_equal(dgram_install(imp, "b", m, sizeof(m), true, 0), 0);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), false, cert_i, 0), 0);
	uint8_t sc[DGRAM_CERT_LEN];
	assert_true(dgram_send_cert(b, "a", sc));
	assert_memory_equal(sc, cert_i, DGRAM_CERT_LEN);
	assert_false(dgram_send_cert(b, "nobody", sc));
	/* the real a dials b: a second certificate, and no dial of ours vouched
	 * for I — aside, and our send key retires so that we dial "a" */
	material(m, 41);
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), true, 10), 0);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), false, cert_a, 10),
	                 DGRAM_INSTALLED_ASIDE_REDIAL);
	assert_false(dgram_can_send(b, "a", 11));
	assert_true(dgram_send_cert(b, "a", sc)); /* kept: a dial decides */
	assert_memory_equal(sc, cert_i, DGRAM_CERT_LEN);
	size_t len = seal(a, "b", "hb", dg, 12); /* a's datagrams verify meanwhile */
	assert_int_equal(open_(b, dg, len, 12, NULL, NULL), DGRAM_OK);
	assert_false(dgram_heard(b, "a", 12, 1000)); /* not the one we send under */
	/* 2. b's rekey dials a's address and meets A: that decides */
	material(m, 42);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, cert_a, 20), 0);
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), false, 20), 0);
	len = seal(b, "a", "ack", dg, 21);
	assert_int_equal(open_(a, dg, len, 21, NULL, NULL), DGRAM_OK);
	len = seal(a, "b", "hb", dg, 22);
	assert_int_equal(open_(b, dg, len, 22, NULL, NULL), DGRAM_OK);
	assert_true(dgram_heard(b, "a", 22, 1000));
	assert_true(dgram_send_cert(b, "a", sc));
	assert_memory_equal(sc, cert_a, DGRAM_CERT_LEN);

	/* 3. ten handshakes of I's holder: each aside, ours stays */
	uint8_t first_imp[DGRAM_MAX_LEN], last_imp[DGRAM_MAX_LEN];
	size_t l_first = 0, l_last = 0;
	for (uint8_t k = 0; k < 10; k++) {
		material(m, (uint8_t)(50 + k));
		assert_int_equal(dgram_install(imp, "b", m, sizeof(m), true, 100 + k), 0);
		assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), false, cert_i, 100 + k),
		                 DGRAM_INSTALLED_ASIDE);
		if (k == 0)
			l_first = seal(imp, "b", "imp", first_imp, 100 + k);
		else
			l_last = seal(imp, "b", "imp", last_imp, 100 + k);
	}
	for (uint64_t now = 200; now < 4000; now += 250) {
		len = seal(a, "b", "hb", dg, now);
		assert_int_equal(open_(b, dg, len, now, NULL, NULL), DGRAM_OK);
		len = seal(b, "a", "ack", dg, now);
		assert_int_equal(open_(a, dg, len, now, NULL, NULL), DGRAM_OK);
	}
	/* I's newest session speaks as "a" (the CA said so: revoke it), but
	 * does not count as hearing a; an older one of I's was replaced in the
	 * side slot */
	const char *from = NULL;
	assert_int_equal(open_(b, last_imp, l_last, 9000, NULL, &from), DGRAM_OK);
	assert_string_equal(from, "a");
	assert_false(dgram_heard(b, "a", 9000, 1000));
	assert_int_equal(open_(b, first_imp, l_first, 9000, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);

	/* 4. our send key retires (a's new incarnation): the certificate we
	 * dialed is kept, so I's next handshake still goes aside */
	dgram_retire_send(b, "a");
	material(m, 70);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), false, cert_i, 9100),
	                 DGRAM_INSTALLED_ASIDE);
	assert_false(dgram_can_send(b, "a", 9101));
	/* ... and a's own handshake (same certificate) installs */
	material(m, 71);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), false, cert_a, 9200), 0);
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), true, 9200), 0);
	len = seal(b, "a", "ack", dg, 9201);
	assert_int_equal(open_(a, dg, len, 9201, NULL, NULL), DGRAM_OK);

	/* 5. a rotation: b dials a, which shows its new certificate R */
	struct dgram_table *r = dgram_new(NULL);
	assert_non_null(r);
	material(m, 80);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, cert_r, 9300), 0);
	assert_int_equal(dgram_install(r, "b", m, sizeof(m), false, 9300), 0);
	len = seal(b, "a", "to r", dg, 9301);
	assert_int_equal(open_(r, dg, len, 9301, NULL, NULL), DGRAM_OK);
	assert_cert_stats(b, 12, 0);
	dgram_free(r);
	dgram_free(a);
	dgram_free(b);
	dgram_free(imp);
}

/* The certificate in use keeps every receive key its holder may still
 * seal with, whatever other certificates come. a dialed b; then b dialed a
 * twice and both completed at b's end only (a never read b's Finished), so
 * a still seals with the first session's key, the oldest of b's three.
 * Handshakes of other certificates go to side slots, one per certificate,
 * at most DGRAM_ASIDE_SLOTS (the least recently heard evicted). Before,
 * one such handshake took the oldest of the three and a's datagrams failed
 * as "unknown key" (a voter that heard nothing more from a). */
static void test_aside_never_evicts_key_in_use(void **state)
{
	(void)state;
	struct certs c;
	certs_init(&c);
	struct dgram_table *a = dgram_new(NULL), *b = dgram_new(NULL), *imp = dgram_new(NULL),
			   *r = dgram_new(NULL), *q = dgram_new(NULL);
	assert_true(a && b && imp && r && q);
	assert_int_equal(dial_b(a, b, c.a, 100, 0), 0);
	uint8_t m[DGRAM_MATERIAL_LEN];
	for (uint8_t k = 0; k < 2; k++) { /* b dials a: completed at b only */
		material(m, (uint8_t)(101 + k));
		assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, c.a, 10 + k), 0);
	}
	assert_int_equal(send_one(a, "b", b, 20), DGRAM_OK);
	for (uint8_t k = 0; k < 3; k++) /* I's holder dials b, three times */
		assert_int_equal(dial_b(imp, b, c.i, (uint8_t)(110 + k), 30 + k),
		                 DGRAM_INSTALLED_ASIDE);
	for (uint64_t now = 100; now < 5000; now += 500) {
		assert_int_equal(send_one(a, "b", b, now), DGRAM_OK);
		assert_true(dgram_heard(b, "a", now, 1000));
		/* I's newest speaks as "a" too (the CA said so: revoke it) */
		assert_int_equal(send_one(imp, "b", b, now + 1), DGRAM_OK);
	}
	/* R: a side slot of its own, I's stays */
	assert_int_equal(dial_b(r, b, c.r, 120, 5000), DGRAM_INSTALLED_ASIDE);
	assert_int_equal(send_one(r, "b", b, 5001), DGRAM_OK);
	assert_int_equal(send_one(imp, "b", b, 5002), DGRAM_OK);
	/* Q: the side slots are full, the least recently heard (R) goes */
	assert_int_equal(dial_b(q, b, c.q, 121, 5003), DGRAM_INSTALLED_ASIDE);
	assert_int_equal(send_one(r, "b", b, 5004), DGRAM_DROP_UNKNOWN_KEY);
	assert_int_equal(send_one(q, "b", b, 5005), DGRAM_OK);
	assert_int_equal(send_one(imp, "b", b, 5006), DGRAM_OK);
	assert_int_equal(send_one(a, "b", b, 5007), DGRAM_OK);
	dgram_free(q);
	dgram_free(r);
	dgram_free(imp);
	dgram_free(a);
	dgram_free(b);
}

/* A side slot may hold a key of the certificate in use: A's handshake went
 * aside while I was in use, then b's dial made A the one in use while a,
 * after crossed handshakes, still seals with the side slot's key. Two
 * other certificates (I again, then Q) must not evict it: before, Q took
 * the side slot heard least recently (A's at 38 s, I's at 39 s) and every
 * datagram of a was dropped as "unknown key" until a rekeyed. */
static void test_aside_keeps_key_of_certificate_in_use(void **state)
{
	(void)state;
	struct certs c;
	certs_init(&c);
	struct dgram_table *a = dgram_new(NULL), *b = dgram_new(NULL), *imp = dgram_new(NULL),
			   *q = dgram_new(NULL);
	assert_true(a && b && imp && q);
	assert_int_equal(dial_b(imp, b, c.i, 140, 0), 0); /* I in use (not dialed) */
	assert_int_equal(dial_b(a, b, c.a, 141, 10000), DGRAM_INSTALLED_ASIDE_REDIAL);
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, 142); /* b's redial meets A: completed at b only */
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, c.a, 20000), 0);
	assert_int_equal(dial_b(imp, b, c.i, 143, 30000), DGRAM_INSTALLED_ASIDE);
	assert_int_equal(send_one(a, "b", b, 38000), DGRAM_OK); /* the side slot's key */
	assert_true(dgram_heard(b, "a", 38000, 1000));
	assert_int_equal(send_one(imp, "b", b, 39000), DGRAM_OK);
	assert_int_equal(dial_b(q, b, c.q, 144, 40000), DGRAM_INSTALLED_ASIDE);
	assert_int_equal(send_one(a, "b", b, 40500), DGRAM_OK);
	assert_true(dgram_heard(b, "a", 40500, 1000));
	assert_int_equal(send_one(q, "b", b, 40600), DGRAM_OK);
	assert_int_equal(send_one(imp, "b", b, 40700), DGRAM_DROP_UNKNOWN_KEY); /* I's went */
	dgram_free(q);
	dgram_free(imp);
	dgram_free(a);
	dgram_free(b);
}

/* A certificate put aside becomes the one in use only when a dial to the
 * member's address shows it; its datagrams ask for that dial (our send
 * key comes due for a rekey) once the one in use fell silent for 10 s, at
 * most once per 30 s. I's holder, speaking while a speaks, asks nothing.
 * a then rotates to R: its handshake to b goes aside and it seals under
 * R's keys, so A falls silent; 10 s on, R's datagrams make the rekey due,
 * b's dial meets R, and R is in use (heard, sealed for). Before, only the
 * key's age made it due (6 to 9 minutes), and all that time b heard
 * nothing from a over UDP and sent every probe to it over TLS. */
static void test_aside_certificate_proves_itself_by_dial(void **state)
{
	(void)state;
	struct certs c;
	certs_init(&c);
	struct dgram_table *a = dgram_new(NULL), *b = dgram_new(NULL), *imp = dgram_new(NULL);
	assert_true(a && b && imp);
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, 130); /* b dialed a: A is in use */
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), false, 0), 0);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, c.a, 0), 0);
	assert_int_equal(dial_b(imp, b, c.i, 131, 100), DGRAM_INSTALLED_ASIDE);
	for (uint64_t now = 1000; now <= 30000; now += 1000) {
		assert_int_equal(send_one(a, "b", b, now), DGRAM_OK);
		assert_int_equal(send_one(imp, "b", b, now + 1), DGRAM_OK);
		assert_false(dgram_rekey_due(b, "a", now + 1)); /* A speaks */
	}
	/* a rotates to R (a SIGHUP: same agent, new certificate) */
	assert_int_equal(dial_b(a, b, c.r, 132, 30500), DGRAM_INSTALLED_ASIDE);
	assert_int_equal(send_one(b, "a", a, 30600), DGRAM_OK); /* a opens the old key */
	for (uint64_t now = 31000; now < 40000; now += 1000) {
		assert_int_equal(send_one(a, "b", b, now), DGRAM_OK);
		assert_false(dgram_rekey_due(b, "a", now)); /* A silent < 10 s */
	}
	assert_false(dgram_heard(b, "a", 39500, 5000));
	assert_int_equal(send_one(a, "b", b, 40000), DGRAM_OK);
	assert_true(dgram_rekey_due(b, "a", 40000)); /* A silent 10 s: dial */
	/* one try: the rekey could not start (or failed), not retried before
	 * the cooldown, however much R speaks */
	dgram_rekey_defer(b, "a", 45000);
	for (uint64_t now = 41000; now < 70000; now += 1000) {
		assert_int_equal(send_one(a, "b", b, now), DGRAM_OK);
		assert_false(dgram_rekey_due(b, "a", now));
	}
	assert_int_equal(send_one(a, "b", b, 70000), DGRAM_OK);
	assert_true(dgram_rekey_due(b, "a", 70000));
	/* b's rekey dials a's address and meets R: R is in use */
	material(m, 133);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, c.r, 71100), 0);
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), false, 71100), 0);
	assert_false(dgram_rekey_due(b, "a", 71200));
	uint8_t sc[DGRAM_CERT_LEN];
	assert_true(dgram_send_cert(b, "a", sc));
	assert_memory_equal(sc, c.r, DGRAM_CERT_LEN);
	assert_int_equal(send_one(a, "b", b, 71300), DGRAM_OK);
	assert_true(dgram_heard(b, "a", 71300, 1000));
	assert_int_equal(send_one(b, "a", a, 71400), DGRAM_OK);
	/* I's holder still speaks, R too: nothing asked */
	for (uint64_t now = 72000; now < 120000; now += 1000) {
		assert_int_equal(send_one(imp, "b", b, now), DGRAM_OK);
		assert_int_equal(send_one(a, "b", b, now + 1), DGRAM_OK);
		assert_false(dgram_rekey_due(b, "a", now + 1));
	}
	assert_cert_stats(b, 2, 2); /* the two dials asked for, at 40 s and 70 s */
	dgram_free(imp);
	dgram_free(a);
	dgram_free(b);
}

/* The old CA leaves the CA file (a CA rotation's last step): every key of
 * a certificate it signed goes, whether a connection of it is open or not
 * (dgram_forget_certs_if, asked by net_close_revoked), in the ring of the
 * certificate in use and in the side slots, and where it was the one in
 * use that choice goes too, so the next handshake with the new
 * certificate installs at once instead of going aside. Before, keys of an
 * unconnected certificate stayed (a CRL names no certificate here), and a
 * member's new certificate, put aside behind the old one chosen by a dial,
 * waited 10 s of silence and a dial while we sealed under keys the member
 * had wiped. */
struct old_ca {
	const uint8_t *a, *i;
	unsigned asked;
};

static bool old_ca_signed(const uint8_t *cert, void *arg)
{
	struct old_ca *o = arg;
	o->asked++;
	return memcmp(cert, o->a, DGRAM_CERT_LEN) == 0 || memcmp(cert, o->i, DGRAM_CERT_LEN) == 0;
}

static void test_trust_change_wipes_distrusted_certificates(void **state)
{
	(void)state;
	struct certs c;
	certs_init(&c);
	struct dgram_table *a = dgram_new(NULL), *b = dgram_new(NULL), *imp = dgram_new(NULL),
			   *d = dgram_new(NULL);
	assert_true(a && b && imp && d);
	uint8_t m[DGRAM_MATERIAL_LEN];
	material(m, 150); /* b dialed a: A (old CA) in use */
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), false, 0), 0);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, c.a, 0), 0);
	assert_int_equal(dial_b(imp, b, c.i, 151, 10), DGRAM_INSTALLED_ASIDE); /* old CA */
	assert_int_equal(dial_b(a, b, c.r, 152, 20), DGRAM_INSTALLED_ASIDE);   /* a rotated */
	material(m, 153); /* d: Q, of the new CA, in use */
	assert_int_equal(dgram_install(d, "b", m, sizeof(m), false, 30), 0);
	assert_int_equal(dgram_install_cert(b, "d", m, sizeof(m), true, c.q, 30), 0);
	struct old_ca o = {.a = c.a, .i = c.i};
	/* A: send key and receive key; I: its side slot */
	assert_int_equal(dgram_forget_certs_if(b, old_ca_signed, &o), 3);
	assert_true(o.asked > 0);
	assert_false(dgram_can_send(b, "a", 40));
	uint8_t sc[DGRAM_CERT_LEN];
	assert_false(dgram_send_cert(b, "a", sc)); /* to be decided again */
	assert_int_equal(send_one(imp, "b", b, 41), DGRAM_DROP_UNKNOWN_KEY);
	/* R's side slot and d's keys stay */
	assert_int_equal(send_one(a, "b", b, 42), DGRAM_OK); /* a seals under R */
	assert_true(dgram_heard(b, "a", 42, 100));
	assert_int_equal(send_one(d, "b", b, 43), DGRAM_OK);
	assert_int_equal(send_one(b, "d", d, 44), DGRAM_OK);
	/* a's next handshake with R, which b did not start, installs at once */
	assert_int_equal(dial_b(a, b, c.r, 154, 50), 0);
	assert_true(dgram_send_cert(b, "a", sc));
	assert_memory_equal(sc, c.r, DGRAM_CERT_LEN);
	assert_int_equal(send_one(b, "a", a, 51), DGRAM_OK);
	assert_int_equal(send_one(a, "b", b, 52), DGRAM_OK);
	assert_int_equal(dgram_forget_certs_if(b, old_ca_signed, &o), 0); /* nothing left */
	dgram_free(d);
	dgram_free(imp);
	dgram_free(a);
	dgram_free(b);
}

/* The CRL revokes a certificate: every key a handshake with it made goes
 * (send and receive, whatever name), and only those: the other
 * certificate's keys for the same name keep working. */
static void test_forget_revoked_certificate(void **state)
{
	(void)state;
	struct certs c;
	certs_init(&c);
	const uint8_t *cert_a = c.a, *cert_i = c.i;
	struct dgram_table *a = dgram_new(NULL), *b = dgram_new(NULL), *imp = dgram_new(NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(imp);
	uint8_t m[DGRAM_MATERIAL_LEN], dg[DGRAM_MAX_LEN];
	material(m, 90); /* b dialed a */
	assert_int_equal(dgram_install(a, "b", m, sizeof(m), false, 0), 0);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), true, cert_a, 0), 0);
	size_t len = seal(a, "b", "hb", dg, 1);
	assert_int_equal(open_(b, dg, len, 1, NULL, NULL), DGRAM_OK);
	material(m, 91); /* I's holder dials b: aside */
	assert_int_equal(dgram_install(imp, "b", m, sizeof(m), true, 2), 0);
	assert_int_equal(dgram_install_cert(b, "a", m, sizeof(m), false, cert_i, 2),
	                 DGRAM_INSTALLED_ASIDE);
	uint8_t dg_i[DGRAM_MAX_LEN];
	size_t len_i = seal(imp, "b", "imp", dg_i, 3);
	assert_int_equal(dgram_forget_cert(b, cert_i), 1);
	assert_int_equal(dgram_forget_cert(b, cert_i), 0); /* nothing left of it */
	assert_int_equal(open_(b, dg_i, len_i, 4, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	len = seal(a, "b", "hb", dg, 5); /* A's keys untouched, both ways */
	assert_int_equal(open_(b, dg, len, 5, NULL, NULL), DGRAM_OK);
	len = seal(b, "a", "ack", dg, 6);
	assert_int_equal(open_(a, dg, len, 6, NULL, NULL), DGRAM_OK);
	/* now A's: its send and receive key, and A as the certificate we
	 * send under */
	assert_int_equal(dgram_forget_cert(b, cert_a), 2);
	assert_false(dgram_can_send(b, "a", 7));
	uint8_t sc[DGRAM_CERT_LEN];
	assert_false(dgram_send_cert(b, "a", sc));
	len = seal(a, "b", "hb", dg, 8);
	assert_int_equal(open_(b, dg, len, 8, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	assert_int_equal(dgram_forget_cert(b, NULL), 0);
	dgram_free(a);
	dgram_free(b);
	dgram_free(imp);
}

static void test_table_bound_evicts_lru(void **state)
{
	(void)state;
	struct dgram_config cfg = {.max_peers = 4};
	struct dgram_table *t = dgram_new(&cfg), *b = dgram_new(NULL);
	uint8_t m[DGRAM_MATERIAL_LEN];
	char name[16];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		material(m, (uint8_t)(30 + i));
		assert_int_equal(dgram_install(t, name, m, sizeof(m), true, (uint64_t)i), 0);
	}
	/* p0's partner: b speaks to t as p0 would */
	material(m, 30);
	assert_int_equal(dgram_install(b, "t", m, sizeof(m), false, 0), 0);
	uint8_t dg[DGRAM_MAX_LEN];
	size_t len = seal(b, "t", "old", dg, 10);
	/* p0 is used (a datagram from it), so p1 is the oldest now */
	assert_int_equal(open_(t, dg, len, 10, NULL, NULL), DGRAM_OK);
	for (int i = 4; i < 1000; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		material(m, (uint8_t)(30 + i));
		assert_int_equal(dgram_install(t, name, m, sizeof(m), true, 20 + (uint64_t)i), 0);
		if (i == 4) {
			assert_true(dgram_can_send(t, "p0", 25));
			assert_false(dgram_can_send(t, "p1", 25));
		}
	}
	struct dgram_stats s;
	dgram_get_stats(t, &s);
	assert_int_equal(s.peers, 4);
	assert_int_equal(s.evictions, 996);
	assert_false(dgram_can_send(t, "p0", 2000));
	len = seal(b, "t", "after", dg, 2000);
	assert_int_equal(open_(t, dg, len, 2000, NULL, NULL), DGRAM_DROP_UNKNOWN_KEY);
	dgram_free(t);
	dgram_free(b);
}

/* The datagram an ICMP error quotes names the peer it was sealed for only
 * if it is one of our recent ones under our live send key: a forged error
 * (a guessed key id), one for a datagram we never sent, or one far older
 * than the window names nobody. */
static void test_quoted_sender(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 7, 1000);
	uint8_t dg[DGRAM_MAX_LEN];
	size_t len = seal(p.a, "b", "ping", dg, 1000);
	assert_string_equal(dgram_quoted_sender(p.a, dg, len, 1001), "b");
	/* the header alone is enough (an error may quote little) */
	assert_string_equal(dgram_quoted_sender(p.a, dg, DGRAM_HEADER_LEN, 1001), "b");
	assert_null(dgram_quoted_sender(p.a, dg, DGRAM_HEADER_LEN - 1, 1001));
	/* b's key to a is not a's: b cannot be told a's datagram came back */
	assert_null(dgram_quoted_sender(p.b, dg, len, 1001));
	uint8_t x[DGRAM_MAX_LEN];
	memcpy(x, dg, len);
	x[1] ^= 1; /* another key id */
	assert_null(dgram_quoted_sender(p.a, x, len, 1001));
	memcpy(x, dg, len);
	x[0] = DGRAM_VERSION + 1;
	assert_null(dgram_quoted_sender(p.a, x, len, 1001));
	memcpy(x, dg, len);
	x[DGRAM_HEADER_LEN - 1] += 1; /* a sequence not sealed yet */
	assert_null(dgram_quoted_sender(p.a, x, len, 1001));
	memset(x + 1 + DGRAM_KEY_ID_LEN, 0, 8); /* sequence 0 is never sealed */
	assert_null(dgram_quoted_sender(p.a, x, len, 1001));
	/* older than the window */
	for (int i = 0; i < DGRAM_QUOTE_WINDOW; i++)
		(void)seal(p.a, "b", "x", x, 1002);
	assert_null(dgram_quoted_sender(p.a, dg, len, 1003));
	assert_null(dgram_quoted_sender(p.a, NULL, 0, 1003));
	pair_free(&p);
}

/* A peer is "heard" while one of its datagrams verified within the window;
 * while not heard, a probe datagram is due at most once per interval. */
static void test_heard_and_probe_due(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 9, 1000);
	assert_false(dgram_heard(p.b, "a", 1000, 10000));
	assert_false(dgram_heard(p.b, "nobody", 1000, 10000));
	assert_true(dgram_probe_due(p.a, "b", 1000, 1000));
	assert_false(dgram_probe_due(p.a, "b", 1999, 1000));
	assert_true(dgram_probe_due(p.a, "b", 2000, 1000));
	assert_false(dgram_probe_due(p.a, "nobody", 2000, 1000));
	uint8_t dg[DGRAM_MAX_LEN];
	char got[DGRAM_MAX_PAYLOAD + 1];
	size_t len = seal(p.a, "b", "ping", dg, 2000);
	/* a datagram that fails verification is no sign of life */
	uint8_t bad[DGRAM_MAX_LEN];
	memcpy(bad, dg, len);
	bad[len - 1] ^= 1;
	assert_int_equal(open_(p.b, bad, len, 2001, got, NULL), DGRAM_DROP_AUTH);
	assert_false(dgram_heard(p.b, "a", 2001, 10000));
	assert_int_equal(open_(p.b, dg, len, 2002, got, NULL), DGRAM_OK);
	assert_true(dgram_heard(p.b, "a", 2002, 10000));
	assert_true(dgram_heard(p.b, "a", 12002, 10000));
	assert_false(dgram_heard(p.b, "a", 12003, 10000));
	pair_free(&p);
}

/* A rekey hint (a datagram under a key we do not hold: forgeable) starts a
 * handshake only while the peer's real datagrams do not verify here, and
 * at most once per cooldown. */
static void test_hint_rekey_bounded(void **state)
{
	(void)state;
	struct pair p;
	pair_new(&p, NULL, 9, 1000);
	/* no keys for that peer at all: allowed (nothing to protect) */
	assert_true(dgram_hint_rekey_ok(p.b, "nobody", 1000, 10000, 30000));
	/* never heard from a: allowed once, then not within the cooldown */
	assert_true(dgram_hint_rekey_ok(p.b, "a", 1000, 10000, 30000));
	assert_false(dgram_hint_rekey_ok(p.b, "a", 1001, 10000, 30000));
	assert_false(dgram_hint_rekey_ok(p.b, "a", 30999, 10000, 30000));
	assert_true(dgram_hint_rekey_ok(p.b, "a", 31000, 10000, 30000));
	/* a's real datagrams verify: a hint is stale or forged, refused
	 * however long since the last one */
	uint8_t dg[DGRAM_MAX_LEN];
	char got[DGRAM_MAX_PAYLOAD + 1];
	size_t len = seal(p.a, "b", "ping", dg, 70000);
	assert_int_equal(open_(p.b, dg, len, 70000, got, NULL), DGRAM_OK);
	assert_false(dgram_hint_rekey_ok(p.b, "a", 70001, 10000, 30000));
	assert_false(dgram_hint_rekey_ok(p.b, "a", 80000, 10000, 30000));
	/* silent again for longer than heard_ms: allowed */
	assert_true(dgram_hint_rekey_ok(p.b, "a", 80001, 10000, 30000));
	pair_free(&p);
}

static void test_drop_names(void **state)
{
	(void)state;
	assert_string_equal(dgram_drop_name(DGRAM_DROP_AUTH), "authentication failed");
	assert_string_equal(dgram_drop_name(DGRAM_DROP_REPLAY), "replayed");
	assert_string_equal(dgram_drop_name(DGRAM_DROP_UNKNOWN_KEY), "unknown key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_both_ways),
	    cmocka_unit_test(test_sequence_in_header),
	    cmocka_unit_test(test_tamper_every_byte),
	    cmocka_unit_test(test_bad_lengths),
	    cmocka_unit_test(test_seal_errors),
	    cmocka_unit_test(test_replay_window),
	    cmocka_unit_test(test_forged_sequence_does_not_move_window),
	    cmocka_unit_test(test_reflection_and_foreign_keys),
	    cmocka_unit_test(test_forget_revoked_peer),
	    cmocka_unit_test(test_key_expiry),
	    cmocka_unit_test(test_sequence_limit_retires_key),
	    cmocka_unit_test(test_rekey_grace),
	    cmocka_unit_test(test_rekey_grace_at_time_zero),
	    cmocka_unit_test(test_rekey_due_staggered),
	    cmocka_unit_test(test_crossed_handshakes),
	    cmocka_unit_test(test_second_certificate_kept_aside),
	    cmocka_unit_test(test_aside_never_evicts_key_in_use),
	    cmocka_unit_test(test_aside_keeps_key_of_certificate_in_use),
	    cmocka_unit_test(test_aside_certificate_proves_itself_by_dial),
	    cmocka_unit_test(test_forget_revoked_certificate),
	    cmocka_unit_test(test_trust_change_wipes_distrusted_certificates),
	    cmocka_unit_test(test_table_bound_evicts_lru),
	    cmocka_unit_test(test_quoted_sender),
	    cmocka_unit_test(test_heard_and_probe_due),
	    cmocka_unit_test(test_hint_rekey_bounded),
	    cmocka_unit_test(test_drop_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
