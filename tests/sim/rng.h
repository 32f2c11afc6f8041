/* SPDX-License-Identifier: MIT */
/*
 * Deterministic pseudo-random numbers for the simulator: splitmix64 to seed,
 * xoshiro256** to draw. Never the OS: the same seed must give the same run,
 * bit for bit.
 */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
  uint64_t s[4];
};

static inline uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline void rng_seed(struct rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed * 0x2545f4914f6cdd1dULL + stream;

  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl64(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl64(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;

  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64(s[3], 45);
  return result;
}

/* Uniform in [0, 1). */
static inline double rng_double(struct rng *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n), n > 0 (the bias of a 64-bit modulo is negligible). */
static inline uint64_t rng_below(struct rng *r, uint64_t n) {
  return rng_next(r) % n;
}

static inline void rng_bytes(struct rng *r, uint8_t *dest, size_t len) {
  while (len > 0) {
    uint64_t v = rng_next(r);
    size_t n = len < 8 ? len : 8;

    for (size_t i = 0; i < n; i++)
      dest[i] = (uint8_t)(v >> (8 * i));
    dest += n;
    len -= n;
  }
}

#endif /* SIM_RNG_H */
