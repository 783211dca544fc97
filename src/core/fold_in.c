/*
 * fold_in.c
 *	  Projected gradient steps that fit factors to their rows.
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "encoding.h"
#include "fold_in.h"
#include "helper_thread.h"

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
			float		e;

			e = (dmf_dot(u, a, dim) - dmf_scale_target(x->val[k], rmin, rmax)) * inv_n;
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

/*
 * The rows of all sides, numbered one side after the other, are handed out
 * in chunks from a shared counter to this thread and at most one helper.
 * The helper touches only memory allocated before it started and never
 * calls into the server; it stops between chunks when told to.
 */
#define FOLD_IN_CHUNK 64

typedef struct FoldInJob
{
	const DmfFoldInSide *sides;	/* their rows are numbered one after the other */
	int64_t		total_rows;
	int			dim;
	int			steps;
	float		rate;
	double		rmin;
	double		rmax;
	int64_t		next_row;		/* shared counter (atomic) */
	int			stop;			/* tells the helper to return (atomic) */
} FoldInJob;

typedef struct FoldInThread
{
	FoldInJob  *job;
	float	   *g;				/* scratch, dim floats each */
	float	   *u0;
} FoldInThread;

static void
fold_in_one(const FoldInJob *job, int64_t row, float *g, float *u0)
{
	const DmfFoldInSide *side = job->sides;
	int32_t		r;
	float	   *u;
	bool		has_factor = false;

	while (row >= side->x->nrows)
	{
		row -= side->x->nrows;
		side++;
	}
	r = (int32_t) row;
	if (side->x->rowptr[r + 1] == side->x->rowptr[r])
		return;
	if (side->skip_trained && side->input[r] >= 0)
		return;
	u = side->factors + (size_t) r * job->dim;
	for (int j = 0; j < job->dim && !has_factor; j++)
		has_factor = u[j] != 0.0f;
	if (!has_factor)
		return;
	DMF_CALL(fold_in_row, (u, side->x, r, side->anchors, job->dim, job->steps,
						   job->rate, job->rmin, job->rmax, g, u0));
}

/* Folds in one chunk of rows; false when there are none left. */
static bool
fold_in_chunk(FoldInJob *job, float *g, float *u0)
{
	int64_t		lo = __atomic_fetch_add(&job->next_row, FOLD_IN_CHUNK, __ATOMIC_RELAXED);
	int64_t		hi = lo + FOLD_IN_CHUNK < job->total_rows ? lo + FOLD_IN_CHUNK : job->total_rows;

	for (int64_t row = lo; row < hi; row++)
		fold_in_one(job, row, g, u0);
	return lo < job->total_rows;
}

static void
fold_in_helper(void *arg)
{
	FoldInThread *t = (FoldInThread *) arg;

	while (!__atomic_load_n(&t->job->stop, __ATOMIC_RELAXED) &&
		   fold_in_chunk(t->job, t->g, t->u0))
		;
}

void
dmf_fold_in_sides(const DmfFoldInSide *sides, int n_sides, int dim, int steps,
				  double rate, double rating_min, double rating_max, int threads)
{
	FoldInJob	job;
	FoldInThread self,
				helper;
	DmfHelper  *helper_thread = NULL;

	if (steps <= 0)
		return;
	memset(&job, 0, sizeof(job));
	job.sides = sides;
	for (int k = 0; k < n_sides; k++)
		job.total_rows += sides[k].x->nrows;
	job.dim = dim;
	job.steps = steps;
	job.rate = (float) rate;
	job.rmin = rating_min;
	job.rmax = rating_max;
	self.job = helper.job = &job;
	self.g = dmf_alloc(sizeof(float) * dim);
	self.u0 = dmf_alloc(sizeof(float) * dim);
	helper.g = dmf_alloc(sizeof(float) * dim);
	helper.u0 = dmf_alloc(sizeof(float) * dim);

	if (threads >= 2 && job.total_rows > FOLD_IN_CHUNK)
		helper_thread = dmf_helper_start();
	if (helper_thread)
		dmf_helper_run(helper_thread, fold_in_helper, &helper);

	for (;;)
	{
		if (helper_thread && dmf_interrupt_pending())
		{
			/* an ERROR must not leave the helper running: stop it first */
			__atomic_store_n(&job.stop, 1, __ATOMIC_RELAXED);
			dmf_helper_stop(helper_thread);
			helper_thread = NULL;
		}
		if (!helper_thread)
			dmf_check_interrupts();
		if (!fold_in_chunk(&job, self.g, self.u0))
			break;
	}
	if (helper_thread)
		dmf_helper_stop(helper_thread);
	dmf_free(self.g);
	dmf_free(self.u0);
	dmf_free(helper.g);
	dmf_free(helper.u0);
}

void
dmf_fold_in(const DmfCsr *x, float *factors, const float *anchors, int dim,
			int steps, double rate, double rating_min, double rating_max)
{
	DmfFoldInSide side = {x, factors, anchors, NULL, false};

	dmf_fold_in_sides(&side, 1, dim, steps, rate, rating_min, rating_max, 1);
}
