/*
 * train_block.c
 *	  One minibatch of a training (training.h): a block's pairs, implicit
 *	  feedback's sampled negatives, the forward passes of both sides, the
 *	  loss and its gradients, the backward passes and Adam steps.
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "blas.h"
#include "dmfd.h"
#include "encoding.h"
#include "implicit.h"
#include "training.h"

/*
 * The block's distinct users and items, its pairs as local indices and its
 * targets, with the targets hidden from the inputs.
 */
static void
block_gather(Training *t, int64_t lo, int64_t np, int *nbu, int *nbi)
{
	const DmfTriples *train = &t->data->train;

	*nbu = *nbi = 0;
	for (int64_t p = 0; p < np; p++)
	{
		int64_t		k = t->order[lo + p];
		int32_t		u = train->user[k];
		int32_t		i = train->item[k];

		if (t->user_local[u] < 0)
		{
			t->user_local[u] = *nbu;
			t->block_users[(*nbu)++] = u;
		}
		if (t->item_local[i] < 0)
		{
			t->item_local[i] = *nbi;
			t->block_items[(*nbi)++] = i;
		}
		t->pair_u[p] = t->user_local[u];
		t->pair_i[p] = t->item_local[i];
		if (t->implicit)
		{
			t->target[p] = 1.0f;
			t->pair_weight[p] = t->weight[k];
		}
		else
			t->target[p] = dmf_scale_target(train->rating[k], t->cfg->rating_min, t->cfg->rating_max);
		/* hide the block's targets from the inputs */
		t->skip_u[t->pos_u[k]] = 1;
		t->skip_i[t->pos_i[k]] = 1;
	}
}

/* The negatives of positives [from, to) of a block, drawn with a stream of their own. */
typedef struct NegativeJob
{
	Training   *t;
	DmfRng		rng;
	int64_t		from,
				to;
	const int32_t *pool;		/* the block's item group */
	int32_t		pool_n;
} NegativeJob;

static void
draw_negatives(void *arg, int task, int worker)
{
	NegativeJob *job = (NegativeJob *) arg + task;
	Training   *t = job->t;
	int			k = t->cfg->negatives;

	for (int64_t p = job->from; p < job->to; p++)
	{
		int32_t		u = t->block_users[t->pair_u[p]];

		for (int s = 0; s < k; s++)
			t->drawn[p * k + s] = dmf_sample_negative(&job->rng, &t->positives, u, job->pool,
													   t->gi, job->pool_n);
	}
}

/*
 * Implicit feedback: after the block's np positives, cfg->negatives pairs
 * per positive of its user with items of the block's item group that the
 * user has no interaction with, held-out ones included (the sampled items
 * join the block's items).
 * Returns the block's count of pairs.
 */
static int64_t
block_negatives(Training *t, int blk, int64_t np, int *nbi)
{
	int			group = blk % t->gi;
	int			k = t->cfg->negatives;
	NegativeJob jobs[2] = {{.t = t, .from = 0, .to = np / 2, .pool = t->item_perm + group,
	.pool_n = (t->ni - group + t->gi - 1) / t->gi}};
	int64_t		n = np;

	if ((size_t) (np * k) > t->drawn_cap)
	{
		if (t->drawn)
			dmf_free(t->drawn);
		t->drawn_cap = (size_t) (np * k) + (size_t) (np * k) / 4;
		t->drawn = dmf_alloc(sizeof(int32_t) * t->drawn_cap);
	}
	/*
	 * Two streams, each half the positives, seeded from the training's: the
	 * draws are the same on any number of threads.
	 */
	jobs[1] = jobs[0];
	dmf_rng_seed(&jobs[0].rng, dmf_rng_next(&t->rng));
	dmf_rng_seed(&jobs[1].rng, dmf_rng_next(&t->rng));
	jobs[1].from = jobs[0].to;
	jobs[1].to = np;
	dmf_team_run(t->team, draw_negatives, jobs, 2);

	/* the drawn items join the block's, in the order they were drawn */
	for (int64_t p = 0; p < np; p++)
		for (int s = 0; s < k; s++)
		{
			int32_t		j = t->drawn[p * k + s];

			if (j < 0)
				continue;
			if (t->item_local[j] < 0)
			{
				t->item_local[j] = *nbi;
				t->block_items[(*nbi)++] = j;
			}
			t->pair_u[n] = t->pair_u[p];
			t->pair_i[n] = t->item_local[j];
			t->target[n] = -1.0f;
			t->pair_weight[n] = 1.0f;
			n++;
		}
	return n;
}

/*
 * The block's loss and its gradients with respect to the factors U and V
 * (into dU, dV; DMF-D's boundary gradients into bgrad); returns the sum of
 * squared errors on the rating scale.
 *
 * pred = u.v / (|u||v|);  d pred / d u = v/(|u||v|) - pred u/|u|^2
 * Loss is the mean squared error over the block's ratings.
 */
#define DOT_GROUP 8

/*
 * The dot products u.v of pairs p0 .. p0 + n - 1 (n <= DOT_GROUP), each
 * summed in order of j as one chain of float additions.  One chain waits
 * on its own previous addition; DOT_GROUP pairs' chains side by side keep
 * the adder busy, and each still adds the same terms in the same order.
 */
static void
group_dots(const Training *t, int64_t p0, int n, const float *U, const float *V,
		   float *dots)
{
	const float *u[DOT_GROUP];
	const float *v[DOT_GROUP];
	float		acc[DOT_GROUP];

	for (int l = 0; l < DOT_GROUP; l++)
	{
		/* a short group repeats its first pair in the spare lanes */
		int64_t		p = p0 + (l < n ? l : 0);

		u[l] = U + (size_t) t->pair_u[p] * t->dim;
		v[l] = V + (size_t) t->pair_i[p] * t->dim;
		acc[l] = 0.0f;
	}
	for (int j = 0; j < t->dim; j++)
		for (int l = 0; l < DOT_GROUP; l++)
			acc[l] += u[l][j] * v[l][j];
	memcpy(dots, acc, sizeof(float) * n);
}

/*
 * The loss's coefficients go by tasks of LOSS_TASK_PAIRS pairs (a multiple
 * of DOT_GROUP: the groups are those of one loop over the block).
 */
#define LOSS_TASK_PAIRS (64 * DOT_GROUP)

typedef struct LossJob
{
	Training   *t;
	int64_t		np;
	const float *U;
	const float *V;
} LossJob;

/* The loss's coefficients of one task's pairs; its loss into t->pair_se. */
static void
pair_losses(void *arg, int task, int worker)
{
	const LossJob *job = (const LossJob *) arg;
	Training   *t = job->t;
	int64_t		np = job->np;
	int64_t		from = (int64_t) task * LOSS_TASK_PAIRS;
	int64_t		to = np - from < LOSS_TASK_PAIRS ? np : from + LOSS_TASK_PAIRS;
	double		half = 0.5 * (t->cfg->rating_max - t->cfg->rating_min);
	double		mid = 0.5 * (t->cfg->rating_min + t->cfg->rating_max);
	double		se = 0.0;
	float		dots[DOT_GROUP];

	for (int64_t p = from; p < to; p++)
	{
		int			a = t->pair_u[p];
		int			c = t->pair_i[p];
		DmfPairGradient *pg = &t->pair_grad[p];
		float		nn = t->unorm[a] * t->vnorm[c];
		float		pred,
					err,
					g;

		/* the gradients change dU and dV, never U or V: dots can run ahead */
		if ((p - from) % DOT_GROUP == 0)
			group_dots(t, p, (int) (to - p < DOT_GROUP ? to - p : DOT_GROUP),
					   job->U, job->V, dots);
		pred = dots[(p - from) % DOT_GROUP] / nn;
		if (t->implicit)
		{
			double		dloss;

			se += dmf_implicit_loss(pred, t->target[p] > 0.0f, t->pair_weight[p], &dloss);
			g = (float) (dloss / (double) np);
		}
		else if (t->quantizing)
		{
			/* through G: d loss / d cos = 2 err G'(x) half */
			double		dgdx,
						dgdb;
			int			bi_;
			double		x = mid + half * pred;
			double		gx = dmf_quantize_smooth(&t->quant, x, &dgdx, &dgdb, &bi_);
			double		e = gx - (mid + half * t->target[p]);

			se += e * e;
			g = (float) (2.0 * e / (double) np * dgdx * half);
			t->bgrad[bi_] += 2.0 * e / (double) np * dgdb;
		}
		else
		{
			err = pred - t->target[p];
			se += (double) err * err * half * half;
			g = 2.0f * err / (float) np;
		}
		pg->g = g;
		pg->nn = nn;
		pg->u_self = g * pred / (t->unorm[a] * t->unorm[a]);
		pg->v_self = g * pred / (t->vnorm[c] * t->vnorm[c]);
	}
	t->pair_se[task] = se;
}

/*
 * Each pair's coefficients depend on that pair alone, so the tasks run on
 * any thread; the block's loss is the sum of the tasks' in task order, the
 * same on any number of threads.  DMF-D's boundary gradients are one
 * shared sum, in pair order: those blocks run their tasks in order here.
 */
static double
block_loss(Training *t, int64_t np, const float *U, const float *V)
{
	LossJob		job = {t, np, U, V};
	int			n_tasks = (int) ((np + LOSS_TASK_PAIRS - 1) / LOSS_TASK_PAIRS);
	double		se = 0.0;

	if ((size_t) np > t->pair_grad_cap)
	{
		if (t->pair_grad)
			dmf_free(t->pair_grad);
		if (t->pair_se)
			dmf_free(t->pair_se);
		t->pair_grad_cap = (size_t) np + (size_t) np / 4;
		t->pair_grad = dmf_alloc(sizeof(DmfPairGradient) * t->pair_grad_cap);
		t->pair_se = dmf_alloc(sizeof(double) * (t->pair_grad_cap / LOSS_TASK_PAIRS + 1));
	}
	dmf_team_run(t->quantizing ? NULL : t->team, pair_losses, &job, n_tasks);
	for (int k = 0; k < n_tasks; k++)
		se += t->pair_se[k];
	return se;
}

/* The gradients' tasks: columns of dU, then of dV. */
#define GRADIENT_TASK_COLUMNS 32

typedef struct GradientJob
{
	const Training *t;
	int64_t		np;
	const float *U;
	const float *V;
	int			per_side;		/* tasks of each side */
} GradientJob;

/*
 * d pred / d u = v/(|u||v|) - pred u/|u|^2, times the loss's g, summed
 * into each row in the order of the pairs.  A task takes some columns of
 * the users' rows or the items', over all the pairs: each element's sum is
 * the same as in one loop.
 */
static void
side_gradients(void *arg, int task, int worker)
{
	const GradientJob *job = (const GradientJob *) arg;
	const Training *t = job->t;
	int			dim = t->dim;
	bool		users = task < job->per_side;
	int			j0 = (users ? task : task - job->per_side) * GRADIENT_TASK_COLUMNS;
	int			j1 = dim - j0 < GRADIENT_TASK_COLUMNS ? dim : j0 + GRADIENT_TASK_COLUMNS;

	for (int64_t p = 0; p < job->np; p++)
	{
		const DmfPairGradient *pg = &t->pair_grad[p];
		const float *u = job->U + (size_t) t->pair_u[p] * dim;
		const float *v = job->V + (size_t) t->pair_i[p] * dim;

		if (users)
		{
			float	   *du = t->dU + (size_t) t->pair_u[p] * dim;

			for (int j = j0; j < j1; j++)
				du[j] += pg->g * v[j] / pg->nn - pg->u_self * u[j];
		}
		else
		{
			float	   *dv = t->dV + (size_t) t->pair_i[p] * dim;

			for (int j = j0; j < j1; j++)
				dv[j] += pg->g * u[j] / pg->nn - pg->v_self * v[j];
		}
	}
}

static void
block_gradients(Training *t, int64_t np, const float *U, const float *V)
{
	GradientJob job = {t, np, U, V, (t->dim + GRADIENT_TASK_COLUMNS - 1) / GRADIENT_TASK_COLUMNS};

	dmf_team_run(t->team, side_gradients, &job, 2 * job.per_side);
}

double
dmf_train_block(Training *t, int blk, int64_t *n_pairs)
{
	int64_t		lo = t->block_start[blk];
	int64_t		np = t->block_start[blk + 1] - lo;
	int			nbu,
				nbi;
	double		block_se;

	if (np == 0)
	{
		*n_pairs = 0;
		return 0.0;
	}
	block_gather(t, lo, np, &nbu, &nbi);
	if (t->implicit)
		np = block_negatives(t, blk, np, &nbi);
	*n_pairs = np;

	t->ut.rows = t->block_users;
	t->ut.nb = nbu;
	t->it.rows = t->block_items;
	t->it.nb = nbi;
	dmf_side_forward(&t->ut);
	dmf_side_forward(&t->it);

	memset(t->dU, 0, sizeof(float) * (size_t) nbu * t->dim);
	memset(t->dV, 0, sizeof(float) * (size_t) nbi * t->dim);
	block_se = block_loss(t, np, t->ut.out, t->it.out);
	block_gradients(t, np, t->ut.out, t->it.out);

	t->step++;
	t->ut.dout = t->dU;
	t->it.dout = t->dV;
	t->ut.lr = t->it.lr = t->lr;
	t->ut.step = t->it.step = t->step;
	dmf_side_backward(&t->ut);
	dmf_side_backward(&t->it);
	if (t->quantizing)
		dmf_boundary_step(t->cfg, t->bounds, t->uniform, t->bgrad, t->bm, t->bv, t->lr, t->step);

	/* undo the block's marks */
	dmf_clear_marks(&t->xu, t->block_users, nbu, t->skip_u);
	dmf_clear_marks(&t->xi, t->block_items, nbi, t->skip_i);
	for (int r = 0; r < nbu; r++)
		t->user_local[t->block_users[r]] = -1;
	for (int r = 0; r < nbi; r++)
		t->item_local[t->block_items[r]] = -1;
	return block_se;
}
