/*
 * score.c
 *	  Predictions from factors, and factors of rows through a branch.
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "encoding.h"
#include "network.h"
#include "implicit.h"
#include "score.h"

bool
dmf_factor_is_zero(const float *f, int dim)
{
	for (int j = 0; j < dim; j++)
		if (f[j] != 0.0f)
			return false;
	return true;
}

/*
 * The three sums of a cosine, in double.  Eight lanes of partial sums make
 * the order of the additions explicit, so the loop runs as vector
 * instructions without reassociating anything (one chain of dependent
 * double adds is what made a prediction slow), and every instruction set
 * adds in the same order.  The eight lanes are two vectors of four: a
 * vector of eight doubles is wider than AVX2's registers, and GCC lowers
 * it through the stack, which cost more than the arithmetic.  (A product
 * of two floats is exact in double, so fused or not, every lane rounds the
 * same way.)
 */
typedef float DmfFloat4 __attribute__((vector_size(16)));
typedef double DmfDouble4 __attribute__((vector_size(32)));

DMF_INLINE void
cosine_sums_impl(const float *u, const float *v, int dim, double *sums)
{
	DmfDouble4	uu[2] = {{0}},
				vv[2] = {{0}},
				uv[2] = {{0}};
	double		tail_uu = 0.0,
				tail_vv = 0.0,
				tail_uv = 0.0;
	int			j = 0;

	for (; j + 8 <= dim; j += 8)
	{
		for (int h = 0; h < 2; h++)
		{
			DmfFloat4	uf,
						vf;
			DmfDouble4	a,
						b;

			memcpy(&uf, u + j + 4 * h, sizeof(uf));
			memcpy(&vf, v + j + 4 * h, sizeof(vf));
			a = __builtin_convertvector(uf, DmfDouble4);
			b = __builtin_convertvector(vf, DmfDouble4);
			uu[h] += a * a;
			vv[h] += b * b;
			uv[h] += a * b;
		}
	}
	for (; j < dim; j++)
	{
		tail_uu += (double) u[j] * u[j];
		tail_vv += (double) v[j] * v[j];
		tail_uv += (double) u[j] * v[j];
	}
	sums[0] = tail_uu;
	sums[1] = tail_vv;
	sums[2] = tail_uv;
	for (int l = 0; l < 8; l++)
	{
		sums[0] += uu[l / 4][l % 4];
		sums[1] += vv[l / 4][l % 4];
		sums[2] += uv[l / 4][l % 4];
	}
}

DMF_KERNEL(cosine_sums,
		   (const float *u, const float *v, int dim, double *sums),
		   (u, v, dim, sums))

bool
dmf_factor_cosine(const float *u, const float *v, int dim, double *cosine)
{
	double		sums[3];

	DMF_CALL(cosine_sums, (u, v, dim, sums));
	if (sums[0] <= 0.0 || sums[1] <= 0.0 || !isfinite(sums[2]))
		return false;
	*cosine = sums[2] / sqrt(sums[0] * sums[1]);
	return true;
}

bool
dmf_score_factors(const DmfModel *m, const float *u, const float *v, double *rating)
{
	double		c;

	if (!dmf_factor_cosine(u, v, m->dim, &c))
		return false;
	*rating = (m->flags & DMF_FLAG_IMPLICIT) ? dmf_implicit_score(c)
		: dmf_unscale_prediction(c, m->rating_min, m->rating_max);
	return true;
}

bool
dmf_predict_ids(const DmfModel *m, int64_t user_id, int64_t item_id, double *rating)
{
	int32_t		u = dmf_side_find(&m->users, user_id);
	int32_t		i;

	if (u < 0)
		return false;
	i = dmf_side_find(&m->items, item_id);
	if (i < 0)
		return false;
	return dmf_score_factors(m, m->users.factors + (size_t) u * m->dim,
							 m->items.factors + (size_t) i * m->dim, rating);
}

void
dmf_branch_factors_of_rows(const DmfBranch *b, const DmfCsr *x, float *out)
{
	DmfBranchWork w;
	int32_t    *rows = dmf_alloc(sizeof(int32_t) * (x->nrows > 0 ? x->nrows : 1));

	for (int32_t r = 0; r < x->nrows; r++)
		rows[r] = r;
	dmf_branch_work_alloc(&w, b, DMF_FACTOR_CHUNK, false);
	dmf_branch_factors(b, &w, x, rows, x->nrows, out);
	dmf_branch_work_free(&w, b);
	dmf_free(rows);
}

bool
dmf_all_finite(const float *v, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (!isfinite(v[k]))
			return false;
	return true;
}
