/* util/rng.h: belt's random numbers.  Internal: never installed.
 *
 * Two generators, both from well-known public-domain sources and both
 * owned by whoever uses them (no global or shared state):
 *   - splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom
 *     number generators", OOPSLA 2014; Vigna's C version): one 64-bit
 *     counter, every seed fine.  For short streams (retry jitter, the
 *     sample stage, reconnect backoff) and for seeding.
 *   - xorshift64* (Marsaglia, "Xorshift RNGs", 2003; the * output
 *     multiplier is Vigna's, "An experimental exploration of Marsaglia's
 *     xorshift generators, scrambled", 2016): the policies' and the
 *     simulator's generator.  State is never 0.
 * Not for secrets: neither is cryptographic.
 */
#ifndef BELT_UTIL_RNG_H
#define BELT_UTIL_RNG_H

#include <stdint.h>

/* The next value of the splitmix64 stream whose state is *state (any
 * value, 0 included); advances *state.  Can't fail. */
static inline uint64_t belt__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct belt__rng {
    uint64_t s;
} belt__rng;

/* Seeds r from any 64-bit seed (0 included) through splitmix64, so nearby
 * seeds give unrelated streams.  Can't fail. */
static inline void belt__rng_seed(belt__rng *r, uint64_t seed)
{
    uint64_t z = belt__splitmix64(&seed);
    r->s = z ? z : 0x9E3779B97F4A7C15ull;
}

/* The next 64 random bits. */
static inline uint64_t belt__rng_next(belt__rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A number in [0, n), n > 0, by Lemire's multiply-shift on the top 32 bits
 * (no division).  Bias is at most n / 2^32: below 1e-6 for n <= 4096. */
static inline unsigned belt__rng_below(belt__rng *r, unsigned n)
{
    uint64_t hi = belt__rng_next(r) >> 32;
    return (unsigned)((hi * (uint64_t)n) >> 32);
}

/* A uniform double in (0, 1] from the top 53 bits (never 0, so its log is
 * finite).  Can't fail. */
static inline double belt__rng_unit(belt__rng *r)
{
    return (double)((belt__rng_next(r) >> 11) + 1) * 0x1.0p-53;
}

#endif /* BELT_UTIL_RNG_H */
