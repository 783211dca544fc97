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
