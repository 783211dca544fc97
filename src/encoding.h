/*
 * encoding.h
 *	  How ratings enter and leave the network; one place for both rules.
 *
 * Targets are scaled to [-1, 1] as in the paper (footnote 1), because the
 * model's output is a cosine.  Inputs are NOT scaled that way: the middle
 * rating would become 0, the value of "not rated", and a branch could not
 * tell a 3-star rating from a missing one.  An input is the rating mapped
 * to [0.5, 1.5], so every observed entry is non-zero and the absent ones
 * are zero.
 */
#ifndef DMF_ENCODING_H
#define DMF_ENCODING_H

static inline float
dmf_encode_input(double rating, double rating_min, double rating_max)
{
	return (float) (0.5 + (rating - rating_min) / (rating_max - rating_min));
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
