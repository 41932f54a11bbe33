/*
 * prng.h — the one pseudo-random generator of the protocol cores and the
 * simulators: xoshiro256** seeded through splitmix64 (Blackman & Vigna);
 * and the string hash the failover core and daemon rank hosts with
 * (rendezvous hashing): FNV-1a 64 followed by splitmix64's finaliser.
 *
 * The cores never draw system randomness: each owns a 4-word state seeded
 * from its config, so a simulated run replays exactly from its seed. Small
 * enough to inline; not for cryptography.
 */
#ifndef MESHVISOR_PRNG_H
#define MESHVISOR_PRNG_H

#include <stdint.h>

/* splitmix64's finaliser: a well-mixed word from any 64-bit value. */
static inline uint64_t mv_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* One splitmix64 step: advances *x, returns a well-mixed word (seeding). */
static inline uint64_t mv_splitmix64(uint64_t *x)
{
	return mv_mix64(*x += 0x9e3779b97f4a7c15ULL);
}

#define MV_FNV1A64_OFFSET 0xcbf29ce484222325ULL

/* FNV-1a 64 of the string s, continued from h (start at MV_FNV1A64_OFFSET). */
static inline uint64_t mv_fnv1a64(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static inline uint64_t mv_rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Next xoshiro256** output; s must not be all zero (seed with splitmix64). */
static inline uint64_t mv_xoshiro_next(uint64_t s[4])
{
	uint64_t result = mv_rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = mv_rotl64(s[3], 45);
	return result;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; bias < n / 2^32). */
static inline uint32_t mv_xoshiro_below(uint64_t s[4], uint32_t n)
{
	return (uint32_t)(((mv_xoshiro_next(s) >> 32) * (uint64_t)n) >> 32);
}

#endif
