/*
 * encoding.h
 *	  How ratings enter and leave the network; one place for both rules.
 *
 * Targets are scaled to [-1, 1] as in the paper (footnote 1), because the
 * model's output is a cosine.  Inputs are NOT scaled that way: the middle
 * rating would become 0, the value of "not rated", and a branch could not
 * tell a 3-star rating from a missing one.  Two input encodings:
 *
 *   offset    the rating mapped to [0.5, 1.5]: every observed entry is
 *             non-zero, the absent ones are zero, so a row says both what
 *             was rated and how.
 *   centered  the rating minus the row's mean, over half the range: only
 *             how the row's ratings differ from its own average.
 */
#ifndef DMF_ENCODING_H
#define DMF_ENCODING_H

#include <float.h>
#include <math.h>
#include <stdbool.h>

/*
 * The working scale.  The numeric core holds ratings as float, which cannot
 * hold 100000004 apart from 100000005, nor 1e-300 at all.  So a rating
 * enters the core as w = (r - rating_min) * 2^k, computed in double: the
 * shift keeps the digits that tell ratings apart, and k (a power of two, so
 * the product is exact) brings a very large or very small range near 1.
 * For every ordinary scale k is 0 and w is r - rating_min, which keeps
 * DMF-D's quantizer parameters (lambda, boundaries) in rating units.  In
 * the working scale the range is [0, working_max].
 */
typedef struct DmfRatingScale
{
	double		rating_min;
	double		rating_max;
	double		factor;			/* 2^k */
	double		working_max;	/* (rating_max - rating_min) * factor */
} DmfRatingScale;

/* false if the range is empty, not finite, or too narrow for a double */
static inline bool
dmf_rating_scale_init(DmfRatingScale *s, double rating_min, double rating_max)
{
	double		range = rating_max - rating_min;
	int			e;

	if (!isfinite(rating_min) || !isfinite(rating_max) || !isfinite(range) ||
		!(range >= DBL_MIN))
		return false;
	s->rating_min = rating_min;
	s->rating_max = rating_max;
	s->factor = 1.0;
	if (range < 0x1p-16 || range > 0x1p16)
	{
		/* range = f * 2^e with f in [0.5, 1): scale it to 2f, in [1, 2) */
		(void) frexp(range, &e);
		s->factor = ldexp(1.0, 1 - e);
	}
	s->working_max = range * s->factor;
	return isfinite(s->working_max) && s->working_max > 0.0;
}

static inline double
dmf_to_working(const DmfRatingScale *s, double rating)
{
	return (rating - s->rating_min) * s->factor;
}

static inline double
dmf_from_working(const DmfRatingScale *s, double w)
{
	return s->rating_min + w / s->factor;
}

typedef enum DmfInputEncoding
{
	DMF_INPUT_OFFSET = 0,
	DMF_INPUT_CENTERED = 1
} DmfInputEncoding;

/*
 * input = a * rating + c for the entries of one row; mean is the mean raw
 * rating of the row's entries that are kept (used when centered).
 */
static inline void
dmf_input_coefficients(int encoding, double rating_min, double rating_max,
					   double mean, float *a, float *c)
{
	if (encoding == DMF_INPUT_CENTERED)
	{
		double		half = 0.5 * (rating_max - rating_min);

		*a = (float) (1.0 / half);
		*c = (float) (-mean / half);
	}
	else
	{
		*a = (float) (1.0 / (rating_max - rating_min));
		*c = (float) (0.5 - rating_min / (rating_max - rating_min));
	}
}

static inline float
dmf_scale_target(double rating, double rating_min, double rating_max)
{
	double		mid = 0.5 * (rating_min + rating_max);
	double		half = 0.5 * (rating_max - rating_min);

	return (float) ((rating - mid) / half);
}

/* cosine in [-1, 1] back to the rating scale, clamped against rounding */
static inline double
dmf_unscale_prediction(double cosine, double rating_min, double rating_max)
{
	double		mid = 0.5 * (rating_min + rating_max);
	double		half = 0.5 * (rating_max - rating_min);
	double		r = mid + cosine * half;

	if (r < rating_min)
		r = rating_min;
	if (r > rating_max)
		r = rating_max;
	return r;
}

#endif
