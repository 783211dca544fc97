/*
 * quantizer.c
 *	  Hard and smooth quantizers of DMF-D.
 */
#include "platform.h"

#include <math.h>

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
