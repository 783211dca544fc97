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
 *
 * This runs `steps` of the row's steps from the factor u; u0 is the factor
 * before its first step.  If u leaves the sphere (cannot happen with unit
 * anchors) u becomes u0 again, the row is over and *left is set.
 */
DMF_INLINE void
fold_in_steps_impl(float *u, const DmfCsr *x, int32_t row, const float *anchors,
				   int dim, int steps, float rate, double rmin, double rmax,
				   float *g, const float *u0, bool *left)
{
	int64_t		lo = x->rowptr[row];
	int64_t		hi = x->rowptr[row + 1];
	float		inv_n = 2.0f / (float) (hi - lo);

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
			/* keep the branch's factor */
			memcpy(u, u0, sizeof(float) * dim);
			*left = true;
			return;
		}
		norm2 = 1.0f / sqrtf(norm2);
		for (int j = 0; j < dim; j++)
			u[j] *= norm2;
	}
}

DMF_KERNEL(fold_in_steps,
		   (float *u, const DmfCsr *x, int32_t row, const float *anchors, int dim,
			int steps, float rate, double rmin, double rmax, float *g, const float *u0,
			bool *left),
		   (u, x, row, anchors, dim, steps, rate, rmin, rmax, g, u0, left))

/*
 * The rows of all sides, numbered one side after the other, are handed out
 * in chunks from a shared counter to this thread and at most one helper.
 * The helper touches only memory allocated before it started and never
 * calls into the server.
 *
 * A row's steps run in slices of about SLICE_WORK multiply-adds (a
 * millisecond or less), and each thread looks between slices whether to
 * stop: the backend's thread processes a cancel there, and the helper
 * pauses there when told to.  A thread that pauses records its row, the
 * steps it had and the rest of its chunk, so that the backend's thread
 * can carry on where it stopped: the factors are the same whether or not
 * a pause came, and whichever thread folds a row in.
 */
#define FOLD_IN_CHUNK 64
#define SLICE_WORK (1 << 20)

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
	int			stop;			/* tells the helper to pause (atomic) */
	bool		helper_running; /* read and written by the backend's thread only */
} FoldInJob;

typedef struct FoldInThread
{
	FoldInJob  *job;
	bool		backend;		/* runs on the backend's thread */
	float	   *g;				/* scratch, dim floats */
	float	   *u0;				/* the factor of row before its first step */
	int64_t		row;			/* the row being folded in */
	int64_t		end;			/* the end of its chunk: [row, end) are left */
	int			step;			/* the steps row has had */
} FoldInThread;

/*
 * Whether t is to pause.  The backend's thread processes interrupts
 * itself while it is alone; while the helper runs it may not (an ERROR
 * would free the memory the helper works on), so it pauses to stop the
 * helper first.
 */
static bool
fold_in_pause(FoldInThread *t)
{
	if (!t->backend)
		return __atomic_load_n(&t->job->stop, __ATOMIC_RELAXED) != 0;
	if (t->job->helper_running)
		return dmf_interrupt_pending();
	dmf_check_interrupts();
	return false;
}

/* One slice of t's row, from where it was; true when the row is done. */
static bool
fold_in_slice(FoldInThread *t)
{
	const FoldInJob *job = t->job;
	const DmfFoldInSide *side = job->sides;
	int64_t		row = t->row;
	int64_t		len;
	int32_t		r;
	float	   *u;
	int			steps;
	bool		left = false;

	while (row >= side->x->nrows)
	{
		row -= side->x->nrows;
		side++;
	}
	r = (int32_t) row;
	len = side->x->rowptr[r + 1] - side->x->rowptr[r];
	u = side->factors + (size_t) r * job->dim;
	if (t->step == 0)
	{
		bool		has_factor = false;

		if (len == 0)
			return true;
		if (side->skip_trained && side->input[r] >= 0)
			return true;
		for (int j = 0; j < job->dim && !has_factor; j++)
			has_factor = u[j] != 0.0f;
		if (!has_factor)
			return true;
		memcpy(t->u0, u, sizeof(float) * job->dim);
	}
	/* a step costs about len * dim multiply-adds, twice */
	steps = (int) (SLICE_WORK / (2 * len * job->dim));
	steps = steps < 1 ? 1 : (steps > job->steps - t->step ? job->steps - t->step : steps);
	DMF_CALL(fold_in_steps, (u, side->x, r, side->anchors, job->dim, steps, job->rate,
							 job->rmin, job->rmax, t->g, t->u0, &left));
	t->step += steps;
	return left || t->step >= job->steps;
}

/*
 * Folds in rows, t's own first, then chunks taken from the shared counter
 * until none is left (true), or until t is to pause (false).
 */
static bool
fold_in_rows(FoldInThread *t)
{
	FoldInJob  *job = t->job;

	for (;;)
	{
		if (t->row >= t->end)
		{
			int64_t		lo = __atomic_fetch_add(&job->next_row, FOLD_IN_CHUNK, __ATOMIC_RELAXED);

			if (lo >= job->total_rows)
				return true;
			t->row = lo;
			t->end = lo + FOLD_IN_CHUNK < job->total_rows ? lo + FOLD_IN_CHUNK : job->total_rows;
			t->step = 0;
		}
		if (fold_in_slice(t))
		{
			t->row++;
			t->step = 0;
		}
		if (fold_in_pause(t))
			return false;
	}
}

static void
fold_in_helper(void *arg)
{
	fold_in_rows((FoldInThread *) arg);
}

/* Waits for the helper's job to end: true when it did, false on an interrupt first. */
static bool
helper_finished(DmfHelper *h)
{
	while (!dmf_helper_wait_for(h, 10))
		if (dmf_interrupt_pending())
			return false;
	return true;
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
	memset(&self, 0, sizeof(self));
	memset(&helper, 0, sizeof(helper));
	self.job = helper.job = &job;
	self.backend = true;
	self.g = dmf_alloc(sizeof(float) * dim);
	self.u0 = dmf_alloc(sizeof(float) * dim);
	helper.g = dmf_alloc(sizeof(float) * dim);
	helper.u0 = dmf_alloc(sizeof(float) * dim);

	if (threads >= 2 && job.total_rows > FOLD_IN_CHUNK)
		helper_thread = dmf_helper_start();
	if (helper_thread)
	{
		job.helper_running = true;
		dmf_helper_run(helper_thread, fold_in_helper, &helper);
		if (!fold_in_rows(&self) || !helper_finished(helper_thread))
		{
			/*
			 * An interrupt is pending.  Processing it may ERROR, which must
			 * not leave the helper running: pause it, stop it, process the
			 * interrupt, and if no ERROR came, go on alone with the rest of
			 * both threads' rows.
			 */
			__atomic_store_n(&job.stop, 1, __ATOMIC_RELAXED);
		}
		dmf_helper_stop(helper_thread);
		job.helper_running = false;
		helper.backend = true;
		dmf_check_interrupts();
		fold_in_rows(&helper);
	}
	fold_in_rows(&self);
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
