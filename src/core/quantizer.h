/*
 * quantizer.h
 *	  The discretizer of DMF-D (paper section 3): a quantizer Q_b with
 *	  learnable boundaries, and its smooth approximation G_{lambda,b}.
 *
 * Levels I_1 < ... < I_d are equally spaced by step; b_1..b_{d-1} are the
 * inner boundaries (b_v lies in [I_v, I_{v+1}]).  The hard quantizer maps x
 * to I_v when b_{v-1} <= x < b_v (b_0 = -inf, b_d = +inf).  On the interval
 * [I_v, I_{v+1}) the smooth one is G(x) = I_v + step * sigmoid(lambda *
 * (x - b_v)) (eq. 4, with q = [b_0, I_2, ..., I_{d-1}, b_d]), which tends to
 * Q_b as lambda grows.
 */
#ifndef DMF_QUANTIZER_H
#define DMF_QUANTIZER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct DmfQuantizer
{
	int			n_levels;
	double		step;
	const double *levels;		/* n_levels */
	const double *boundaries;	/* n_levels + 1: b_0 .. b_d */
	double		lambda;
} DmfQuantizer;

/* Q_b(x): the level of the interval x falls in. */
double		dmf_quantize(const DmfQuantizer *q, double x);

/*
 * G(x), with dG/dx and dG/db_v for the one boundary v it depends on
 * (*boundary gets v, 1-based).
 */
double		dmf_quantize_smooth(const DmfQuantizer *q, double x, double *d_dx,
								double *d_db, int *boundary);

/* Round to the nearest level, clamped: the uniform quantizer. */
double		dmf_round_to_level(const DmfQuantizer *q, double x);

/*
 * Sets each inner boundary b_v within [I_v, I_{v+1}] to the value that
 * minimises the squared error of the hard quantizer over (x_k, r_k): a
 * point of that interval goes to I_v below b_v and to I_{v+1} from it on.
 * x is sorted in place (with r).
 */
void		dmf_fit_boundaries(double *x, double *r, int64_t n, const double *levels,
							   int n_levels, double *b);

/* Uniform boundaries: midpoints between levels, b_0/b_d half a step out. */
void		dmf_uniform_boundaries(const double *levels, int n, double *b);

#endif
