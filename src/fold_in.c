/*
 * fold_in.c
 *	  Projected gradient steps that fit factors to their rows.
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "encoding.h"
#include "fold_in.h"

/*
 * One row: minimise mean_k (u . a_k - t_k)^2 over unit vectors u, where a_k
 * are the anchors of the row's entries and t_k their targets on [-1, 1].
 * For unit vectors u . a_k is the cosine the model predicts.
 */
DMF_INLINE void
fold_in_row_impl(float *u, const DmfCsr *x, int32_t row, const float *anchors,
				 int dim, int steps, float rate, double rmin, double rmax,
				 float *g, float *u0)
{
	int64_t		lo = x->rowptr[row];
	int64_t		hi = x->rowptr[row + 1];
	float		inv_n = 2.0f / (float) (hi - lo);

	memcpy(u0, u, sizeof(float) * dim);
	for (int s = 0; s < steps; s++)
	{
		float		norm2 = 0.0f;

		memset(g, 0, sizeof(float) * dim);
		for (int64_t k = lo; k < hi; k++)
		{
			const float *restrict a = anchors + (size_t) x->col[k] * dim;
			float		p = 0.0f;
			float		e;

			for (int j = 0; j < dim; j++)
				p += u[j] * a[j];
			e = (p - dmf_scale_target(x->val[k], rmin, rmax)) * inv_n;
			for (int j = 0; j < dim; j++)
				g[j] += e * a[j];
		}
		for (int j = 0; j < dim; j++)
		{
			u[j] -= rate * g[j];
			norm2 += u[j] * u[j];
		}
		if (!(norm2 > 0.0f) || !isfinite(norm2))
		{
			/* cannot happen with unit anchors; keep the branch's factor */
			memcpy(u, u0, sizeof(float) * dim);
			break;
		}
		norm2 = 1.0f / sqrtf(norm2);
		for (int j = 0; j < dim; j++)
			u[j] *= norm2;
	}
}

DMF_KERNEL(fold_in_row,
		   (float *u, const DmfCsr *x, int32_t row, const float *anchors, int dim,
			int steps, float rate, double rmin, double rmax, float *g, float *u0),
		   (u, x, row, anchors, dim, steps, rate, rmin, rmax, g, u0))

void
dmf_fold_in(const DmfCsr *x, float *factors, const float *anchors, int dim,
			int steps, double rate, double rating_min, double rating_max)
{
	float	   *g;
	float	   *u0;

	if (steps <= 0)
		return;
	g = dmf_alloc(sizeof(float) * dim);
	u0 = dmf_alloc(sizeof(float) * dim);
	for (int32_t r = 0; r < x->nrows; r++)
	{
		float	   *u = factors + (size_t) r * dim;
		bool		has_factor = false;

		if (x->rowptr[r + 1] == x->rowptr[r])
			continue;
		for (int j = 0; j < dim && !has_factor; j++)
			has_factor = u[j] != 0.0f;
		if (!has_factor)
			continue;
		if ((r & 0xFF) == 0)
			dmf_check_interrupts();
		DMF_CALL(fold_in_row, (u, x, r, anchors, dim, steps, (float) rate,
							   rating_min, rating_max, g, u0));
	}
	dmf_free(g);
	dmf_free(u0);
}
