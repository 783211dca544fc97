/*
 * rng.c
 *	  Seeded pseudo-random numbers for weight init, shuffling and splits.
 */
#include "platform.h"

#include <math.h>

#include "rng.h"

uint64_t
dmf_mix64(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

void
dmf_rng_seed(DmfRng *rng, uint64_t seed)
{
	uint64_t	x = seed;

	for (int k = 0; k < 4; k++)
	{
		x = dmf_mix64(x);
		rng->s[k] = x;
	}
	/* the all-zero state is the one state xoshiro cannot leave */
	if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
		rng->s[0] = 1;
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
dmf_rng_next(DmfRng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
dmf_rng_uniform(DmfRng *rng)
{
	return (dmf_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

double
dmf_rng_normal(DmfRng *rng)
{
	double		u1 = dmf_rng_uniform(rng);
	double		u2 = dmf_rng_uniform(rng);

	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t
dmf_rng_below(DmfRng *rng, uint32_t n)
{
	/* Lemire's multiply-shift; the tiny bias is irrelevant here */
	return (uint32_t) (((dmf_rng_next(rng) >> 32) * (uint64_t) n) >> 32);
}

void
dmf_rng_shuffle(DmfRng *rng, int32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--)
	{
		size_t		j = dmf_rng_below(rng, (uint32_t) i);
		int32_t		t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}
