/*
 * rng.h
 *	  A small seeded generator (xoshiro256**), so that a model depends only
 *	  on its data, its options and its seed, never on the platform's rand().
 */
#ifndef DMF_RNG_H
#define DMF_RNG_H

#include <stdint.h>
#include <stddef.h>

typedef struct DmfRng
{
	uint64_t	s[4];
} DmfRng;

void		dmf_rng_seed(DmfRng *rng, uint64_t seed);
uint64_t	dmf_rng_next(DmfRng *rng);
/* uniform in [0, 1) */
double		dmf_rng_uniform(DmfRng *rng);
/* standard normal (Box-Muller) */
double		dmf_rng_normal(DmfRng *rng);
/* uniform integer in [0, n) */
uint32_t	dmf_rng_below(DmfRng *rng, uint32_t n);
void		dmf_rng_shuffle(DmfRng *rng, int32_t *a, size_t n);

/* A strong 64-bit mixer (splitmix64 finaliser), for hashing ids and seeds. */
uint64_t	dmf_mix64(uint64_t x);

#endif
