/*
 * bfloat16.h
 *	  The 16-bit floats of compact model storage.
 *
 * bfloat16 is the upper half of an IEEE float: the same exponent range, 8
 * significant bits instead of 24.  A model stored in it is half the size;
 * rounding moves a weight or a factor by 0.4% of its value at most, far
 * below what moves a prediction (README, "The model value", measures it).
 * Widening is exact and a shift, so readers convert whole sections at no
 * real cost.
 */
#ifndef DMF_BFLOAT16_H
#define DMF_BFLOAT16_H

#include <stdint.h>
#include <string.h>

/*
 * Rounds to the nearest bfloat16, ties to even; NaN stays NaN.  A value
 * that is a bfloat16 already comes back bit for bit (NaN payloads too), so
 * a decoded model encodes to the same bytes.
 */
static inline uint16_t
dmf_bfloat16_from_float(float f)
{
	uint32_t	x;

	memcpy(&x, &f, sizeof(x));
	if ((x & 0xffffu) == 0)
		return (uint16_t) (x >> 16);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((x >> 16) | 0x0040u);	/* quiet, keeps the sign */
	x += 0x7fffu + ((x >> 16) & 1u);
	return (uint16_t) (x >> 16);
}

static inline float
dmf_bfloat16_to_float(uint16_t h)
{
	uint32_t	x = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &x, sizeof(f));
	return f;
}

/* n little-endian bfloat16 values at src (any alignment) to floats. */
static inline void
dmf_bfloat16_widen(const uint8_t *src, float *dst, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		dst[k] = dmf_bfloat16_to_float((uint16_t) (src[2 * k] | (src[2 * k + 1] << 8)));
}

static inline void
dmf_bfloat16_narrow(const float *src, uint8_t *dst, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
	{
		uint16_t	h = dmf_bfloat16_from_float(src[k]);

		dst[2 * k] = (uint8_t) h;
		dst[2 * k + 1] = (uint8_t) (h >> 8);
	}
}

#endif
