/*
 * quantizer.c
 *	  Hard and smooth quantizers of DMF-D.
 */
#include "platform.h"

#include <math.h>
#include <stdlib.h>

#include "quantizer.h"

double
dmf_quantize(const DmfQuantizer *q, double x)
{
	/* the first inner boundary above x names the level */
	for (int v = 1; v < q->n_levels; v++)
		if (x < q->boundaries[v])
			return q->levels[v - 1];
	return q->levels[q->n_levels - 1];
}

double
dmf_round_to_level(const DmfQuantizer *q, double x)
{
	double		k = floor((x - q->levels[0]) / q->step + 0.5);

	if (k < 0)
		k = 0;
	if (k > q->n_levels - 1)
		k = q->n_levels - 1;
	return q->levels[(int) k];
}

double
dmf_quantize_smooth(const DmfQuantizer *q, double x, double *d_dx,
					double *d_db, int *boundary)
{
	int			v = (int) floor((x - q->levels[0]) / q->step) + 1;
	double		s,
				z;

	/* interval v covers [I_v, I_{v+1}); the outer ones extend to infinity */
	if (v < 1)
		v = 1;
	if (v > q->n_levels - 1)
		v = q->n_levels - 1;
	z = q->lambda * (x - q->boundaries[v]);
	s = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
	*d_dx = q->step * q->lambda * s * (1.0 - s);
	*d_db = -*d_dx;
	*boundary = v;
	return q->levels[v - 1] + q->step * s;
}

void
dmf_uniform_boundaries(const double *levels, int n, double *b)
{
	double		step = n > 1 ? levels[1] - levels[0] : 1.0;

	b[0] = levels[0] - 0.5 * step;
	for (int v = 1; v < n; v++)
		b[v] = 0.5 * (levels[v - 1] + levels[v]);
	b[n] = levels[n - 1] + 0.5 * step;
}

typedef struct PredRating
{
	double		x;
	double		r;
} PredRating;

static int
cmp_pred(const void *a, const void *b)
{
	double		x = ((const PredRating *) a)->x;
	double		y = ((const PredRating *) b)->x;

	return (x > y) - (x < y);
}

void
dmf_fit_boundaries(double *x, double *r, int64_t n, const double *levels,
				   int n_levels, double *b)
{
	PredRating *p = dmf_alloc(sizeof(PredRating) * (size_t) (n > 0 ? n : 1));
	int64_t		k = 0;

	for (int64_t i = 0; i < n; i++)
	{
		p[i].x = x[i];
		p[i].r = r[i];
	}
	qsort(p, (size_t) n, sizeof(PredRating), cmp_pred);

	for (int v = 1; v < n_levels; v++)
	{
		double		lo = levels[v - 1],
					hi = levels[v];
		int64_t		first,
					last;
		double		cost = 0.0,
					best;
		double		best_b = b[v];

		/* the points of [I_v, I_v+1]; all start above the boundary */
		while (k < n && p[k].x < lo)
			k++;
		first = k;
		last = first;
		while (last < n && p[last].x <= hi)
			last++;
		if (last == first)
			continue;
		for (int64_t i = first; i < last; i++)
			cost += (hi - p[i].r) * (hi - p[i].r);
		best = cost;
		best_b = lo;
		/* move the boundary up past one point at a time */
		for (int64_t i = first; i < last; i++)
		{
			cost += (lo - p[i].r) * (lo - p[i].r) - (hi - p[i].r) * (hi - p[i].r);
			if (cost < best - 1e-12)
			{
				best = cost;
				best_b = (i + 1 < last) ? 0.5 * (p[i].x + p[i + 1].x) : hi;
			}
		}
		b[v] = best_b < lo ? lo : (best_b > hi ? hi : best_b);
		k = first;
	}
	dmf_free(p);
}
