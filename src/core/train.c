/*
 * train.c
 *	  Minibatch training of the two branches of DMF.
 *
 * Batches are blocks of the rating matrix: each epoch shuffles users into
 * G_u groups and items into G_i groups, and a block holds the training
 * ratings of one user group x one item group.  A block computes each of its
 * users' and items' factors once and uses them for all its ratings, so an
 * epoch embeds every user G_i times (not once per rating), which is what
 * makes an epoch cost O(nnz * width) with a small constant.
 *
 * The target is never part of the input: while training on a block, each
 * user's row leaves out the ratings that are targets of this block, and so
 * does each item's column.  At prediction time a rating is never inside
 * the rows it is predicted from; training sees the same situation.
 */
#include "platform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "blas.h"
#include "encoding.h"
#include "fold_in.h"
#include "helper_thread.h"
#include "quantizer.h"
#include "train.h"

#define COSINE_EPS 1e-8f

double
dmf_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int64_t
dmf_build_inputs(const DmfTriples *const *parts, int n_parts,
				 int32_t n_users, int32_t n_items, int encoding,
				 double rating_min, double rating_max,
				 DmfCsr *user_rows, DmfCsr *item_rows, int64_t *dup_index,
				 int64_t *user_pos, int64_t *item_pos)
{
	int64_t		n = 0,
				pos = 0,
				dups;
	int32_t    *u;
	int32_t    *i;
	float	   *x;

	for (int p = 0; p < n_parts; p++)
		n += parts[p]->n;
	u = dmf_alloc(sizeof(int32_t) * (size_t) (n + 1));
	i = dmf_alloc(sizeof(int32_t) * (size_t) (n + 1));
	x = dmf_alloc(sizeof(float) * (size_t) (n + 1));
	for (int p = 0; p < n_parts; p++)
	{
		const DmfTriples *t = parts[p];

		for (int64_t k = 0; k < t->n; k++, pos++)
		{
			u[pos] = t->user[k];
			i[pos] = t->item[k];
			x[pos] = t->rating[k];
		}
	}
	dups = dmf_csr_build(user_rows, n_users, n_items, n, u, i, x, dup_index,
						 user_pos);
	if (dups == 0)
		dmf_csr_build(item_rows, n_items, n_users, n, i, u, x, NULL, item_pos);
	else
		memset(item_rows, 0, sizeof(*item_rows));
	dmf_free(u);
	dmf_free(i);
	dmf_free(x);
	return dups;
}

static void
branch_sizes(int n_hidden, const int *hidden, int input, int dim, int *sizes)
{
	sizes[0] = input;
	for (int l = 0; l < n_hidden; l++)
		sizes[l + 1] = hidden[l];
	sizes[n_hidden + 1] = dim;
}

uint64_t
dmf_train_memory_estimate(const DmfTrainConfig *cfg, int32_t n_users,
						  int32_t n_items, int64_t n_train, int64_t n_input)
{
	uint64_t	params = 0;
	uint64_t	act = 0;
	int			sizes[DMF_MAX_LAYERS + 1];

	for (int side = 0; side < 2; side++)
	{
		int			nh = side == 0 ? cfg->n_user_hidden : cfg->n_item_hidden;
		const int  *h = side == 0 ? cfg->user_hidden : cfg->item_hidden;
		uint64_t	rows = (uint64_t) (side == 0 ? n_users : n_items);
		uint64_t	per_row = 0;

		branch_sizes(nh, h, side == 0 ? n_items : n_users, cfg->dim, sizes);
		for (int l = 0; l <= nh; l++)
		{
			params += (uint64_t) sizes[l] * sizes[l + 1] + sizes[l + 1];
			/* pre-activation, activation, dropout mask, two gradients */
			per_row += 5 * (uint64_t) sizes[l + 1];
		}
		/* a block holds at most a whole side; factors go by chunks */
		act += per_row * (rows + DMF_FACTOR_CHUNK);
	}
	/* params, gradient, two Adam moments, best copy */
	return params * 5 * sizeof(float)
	/* inputs (both orientations) and the training triples */
		+ (uint64_t) (n_train + n_input) * 2 * (sizeof(int32_t) + sizeof(float))
		+ (uint64_t) n_train * (2 * sizeof(int32_t) + sizeof(float) + sizeof(int64_t))
		+ act * sizeof(float)
		+ ((uint64_t) n_users + n_items) * (cfg->dim * sizeof(float) + 32);
}

/*
 * Mean squared error on the rating scale of factors against triples;
 * through the hard quantizer when q is not NULL.
 */
static double
triples_mse(const DmfTriples *t, const float *uf, const float *vf, int dim,
			double rmin, double rmax, const DmfQuantizer *q)
{
	double		se = 0.0;

	if (t->n == 0)
		return NAN;
	for (int64_t k = 0; k < t->n; k++)
	{
		const float *u = uf + (size_t) t->user[k] * dim;
		const float *v = vf + (size_t) t->item[k] * dim;
		double		dot = 0.0;
		double		err;

		for (int j = 0; j < dim; j++)
			dot += (double) u[j] * v[j];
		err = dmf_unscale_prediction(dot, rmin, rmax);
		if (q)
			err = dmf_quantize(q, err);
		err -= t->rating[k];
		se += err * err;
		if ((k & 0xFFFF) == 0)
			dmf_check_interrupts();
	}
	return se / (double) t->n;
}

static void
all_factors(const DmfBranch *b, DmfBranchWork *w, const DmfCsr *x,
			const int32_t *identity, float *out)
{
	dmf_branch_factors(b, w, x, identity, x->nrows, out);
}

/*
 * DMF-D's boundaries were learned on the branch's factors; predictions use
 * the factors after fold-in, whose values spread differently.  So the
 * boundaries are finally set where the hard quantizer's squared error on
 * the validation ratings is least, with the factors as they will be
 * predicted from (training inputs only: no validation rating among them).
 */
static void
calibrate_boundaries(const DmfTrainConfig *cfg, const DmfTrainSet *data,
					 const DmfBranch *ub, const DmfBranch *ib,
					 DmfBranchWork *ufw, DmfBranchWork *ifw,
					 const DmfCsr *xu, const DmfCsr *xi,
					 const int32_t *identity_users, const int32_t *identity_items,
					 double *bounds)
{
	int			dim = cfg->dim;
	size_t		nu = (size_t) data->n_users,
				ni = (size_t) data->n_items;
	float	   *uf = dmf_alloc(sizeof(float) * nu * dim);
	float	   *vf = dmf_alloc(sizeof(float) * ni * dim);
	float	   *ua = dmf_alloc(sizeof(float) * nu * dim);
	float	   *va = dmf_alloc(sizeof(float) * ni * dim);
	const DmfTriples *val = &data->validation;
	double	   *x = dmf_alloc(sizeof(double) * (size_t) val->n);
	double	   *r = dmf_alloc(sizeof(double) * (size_t) val->n);

	dmf_branch_factors(ub, ufw, xu, identity_users, (int) nu, uf);
	dmf_branch_factors(ib, ifw, xi, identity_items, (int) ni, vf);
	memcpy(ua, uf, sizeof(float) * nu * dim);
	memcpy(va, vf, sizeof(float) * ni * dim);
	{
		DmfFoldInSide sides[2] = {{xu, uf, va}, {xi, vf, ua}};

		dmf_fold_in_sides(sides, 2, dim, cfg->fold_in_steps, cfg->fold_in_rate,
						  cfg->rating_min, cfg->rating_max, cfg->threads);
	}
	for (int64_t k = 0; k < val->n; k++)
	{
		const float *u = uf + (size_t) val->user[k] * dim;
		const float *v = vf + (size_t) val->item[k] * dim;
		double		dot = 0.0;

		for (int j = 0; j < dim; j++)
			dot += (double) u[j] * v[j];
		x[k] = dmf_unscale_prediction(dot, cfg->rating_min, cfg->rating_max);
		r[k] = val->rating[k];
	}
	dmf_fit_boundaries(x, r, val->n, cfg->levels, cfg->n_levels, bounds);
	dmf_free(uf);
	dmf_free(vf);
	dmf_free(ua);
	dmf_free(va);
	dmf_free(x);
	dmf_free(r);
}

/*
 * Adam step on the quantizer's inner boundaries, with the pull towards the
 * uniform quantizer (gamma2 ||b - b~||^2); each b_v then stays within
 * [I_v, I_{v+1}], which also keeps the boundaries sorted.
 */
static void
boundary_step(const DmfTrainConfig *cfg, double *b, const double *uniform,
			  double *grad, double *m, double *v, double lr, long t)
{
	double		c1 = lr * sqrt(1.0 - pow(DMF_ADAM_BETA2, (double) t)) /
		(1.0 - pow(DMF_ADAM_BETA1, (double) t));

	for (int k = 1; k < cfg->n_levels; k++)
	{
		double		g = grad[k] + 2.0 * cfg->boundary_l2 * (b[k] - uniform[k]);

		m[k] = DMF_ADAM_BETA1 * m[k] + (1.0 - DMF_ADAM_BETA1) * g;
		v[k] = DMF_ADAM_BETA2 * v[k] + (1.0 - DMF_ADAM_BETA2) * g * g;
		b[k] -= c1 * m[k] / (sqrt(v[k]) + DMF_ADAM_EPS);
		if (b[k] < cfg->levels[k - 1])
			b[k] = cfg->levels[k - 1];
		if (b[k] > cfg->levels[k])
			b[k] = cfg->levels[k];
		grad[k] = 0.0;
	}
}

/* Marks a random fraction of the (not yet skipped) inputs of rows as skipped. */
static void
drop_inputs(const DmfCsr *x, const int32_t *rows, int nb, uint8_t *skip,
			double rate, DmfRng *rng)
{
	for (int r = 0; r < nb; r++)
		for (int64_t k = x->rowptr[rows[r]]; k < x->rowptr[rows[r] + 1]; k++)
			if (!skip[k] && dmf_rng_uniform(rng) < rate)
				skip[k] = 1;
}

static void
clear_marks(const DmfCsr *x, const int32_t *rows, int nb, uint8_t *skip)
{
	for (int r = 0; r < nb; r++)
		memset(skip + x->rowptr[rows[r]], 0,
			   x->rowptr[rows[r] + 1] - x->rowptr[rows[r]]);
}

/* Assigns a shuffled group to each of n entities: g = rank % groups. */
static void
shuffle_groups(DmfRng *rng, int32_t *perm, int32_t n, int groups,
			   int32_t *group_of)
{
	dmf_rng_shuffle(rng, perm, n);
	for (int32_t k = 0; k < n; k++)
		group_of[perm[k]] = k % groups;
}

/*
 * One side of a block: its branch, inputs and buffers.  The two sides of a
 * block are independent until the loss joins them, so with two threads
 * each side runs on its own core (OpenBLAS single-threaded in each), and
 * each has its own random stream: the result does not depend on the
 * number of threads.
 */
typedef struct SideTask
{
	DmfBranch  *branch;
	DmfBranchWork *work;
	DmfAdam	   *adam;
	const DmfCsr *x;
	const int32_t *rows;
	int			nb;
	uint8_t    *skip;
	DmfRng		rng;
	double		input_dropout;
	float		dropout;
	const float *out;			/* forward: nb x dim */
	float	   *norm;			/* forward: |out| per row */
	float	   *dout;			/* backward: gradient of the loss */
	double		lr;
	double		l2;
	long		step;
} SideTask;

static void
side_task_init(SideTask *t, const DmfTrainConfig *cfg, DmfBranch *branch,
			   DmfBranchWork *work, DmfAdam *adam, const DmfCsr *x, uint8_t *skip,
			   float *norm, DmfRng *seeder)
{
	memset(t, 0, sizeof(*t));
	t->branch = branch;
	t->work = work;
	t->adam = adam;
	t->x = x;
	t->skip = skip;
	t->norm = norm;
	t->input_dropout = cfg->input_dropout;
	t->dropout = (float) cfg->dropout;
	t->l2 = cfg->l2;
	dmf_rng_seed(&t->rng, dmf_rng_next(seeder));
}

static void
side_forward(SideTask *t)
{
	int			dim = t->branch->sizes[t->branch->n_layers];

	/* input dropout: rows must also work with ratings missing */
	if (t->input_dropout > 0.0)
		drop_inputs(t->x, t->rows, t->nb, t->skip, t->input_dropout, &t->rng);
	t->out = dmf_branch_forward(t->branch, t->work, t->x, t->rows, t->nb,
								t->skip, t->dropout, &t->rng);
	for (int r = 0; r < t->nb; r++)
	{
		const float *o = t->out + (size_t) r * dim;
		double		ss = 0.0;

		for (int j = 0; j < dim; j++)
			ss += (double) o[j] * o[j];
		t->norm[r] = (float) sqrt(ss) + COSINE_EPS;
	}
}

static void
side_backward(SideTask *t)
{
	dmf_branch_backward(t->branch, t->work, t->x, t->rows, t->nb, t->skip,
						t->dout, t->adam->grad);
	dmf_adam_step(t->branch, t->adam, t->lr, t->l2, t->step);
}

/*
 * The item side of a block runs on the helper thread (helper_thread.h)
 * while the calling thread runs the user side.
 */
typedef struct SideCall
{
	void		(*job) (SideTask *);
	SideTask   *task;
} SideCall;

static void
side_call(void *arg)
{
	SideCall   *c = (SideCall *) arg;

	c->job(c->task);
}

/* job(user) here and job(item) on the helper thread, if there is one. */
static void
run_sides(DmfHelper *helper, void (*job) (SideTask *), SideTask *user, SideTask *item)
{
	SideCall	call = {job, item};

	if (helper == NULL)
	{
		job(user);
		job(item);
		return;
	}
	dmf_helper_run(helper, side_call, &call);
	job(user);
	dmf_helper_wait(helper);
}

void
dmf_train_model(const DmfTrainConfig *cfg, const DmfTrainSet *data,
				DmfTrainResult *res)
{
	const DmfTriples *train = &data->train;
	int32_t		nu = data->n_users;
	int32_t		ni = data->n_items;
	int			dim = cfg->dim;
	double		rmin = cfg->rating_min;
	double		rmax = cfg->rating_max;
	double		t_start = dmf_now_seconds();
	DmfRng		rng;
	DmfCsr		xu,
				xi;
	int			sizes[DMF_MAX_LAYERS + 1];
	DmfBranch  *ub = &res->user_branch;
	DmfBranch  *ib = &res->item_branch;
	DmfAdam		ua,
				ia;
	DmfBranchWork uw,
				iw,
				ufw,
				ifw;
	int			gu,
				gi,
				n_blocks;
	int32_t    *user_perm,
			   *item_perm,
			   *user_group,
			   *item_group,
			   *user_local,
			   *item_local,
			   *block_users,
			   *block_items,
			   *pair_u,
			   *pair_i,
			   *block_order;
	int64_t    *block_start,
			   *block_fill,
			   *order;
	uint8_t    *skip_u,
			   *skip_i;
	int64_t    *pos_u,
			   *pos_i;
	float	   *best_u,
			   *best_i,
			   *dU,
			   *dV,
			   *unorm,
			   *vnorm,
			   *target;
	int			max_block_users,
				max_block_items;
	const DmfTriples *tparts[2];
	double		lr = cfg->learning_rate;
	int			since_best = 0;
	int			drops_done = 0;
	long		step = 0;
	float		dropout = (float) cfg->dropout;
	double		half = 0.5 * (rmax - rmin);
	double		mid = 0.5 * (rmin + rmax);
	DmfQuantizer quant;
	double	   *bounds = NULL,
			   *best_bounds = NULL,
			   *uniform = NULL,
			   *bgrad = NULL,
			   *bm = NULL,
			   *bv = NULL;
	double		lambda = cfg->lambda_start;
	bool		quantizing = false;	/* DMF-D's second phase */
	SideTask	ut,
				it;
	DmfHelper  *worker;
	int64_t		ignored;
	int32_t    *identity_users,
			   *identity_items;

	memset(res, 0, sizeof(*res));
	res->best_validation_rmse = NAN;
	if (cfg->discrete)
	{
		int			nb = cfg->n_levels + 1;

		bounds = dmf_alloc(sizeof(double) * nb);
		best_bounds = dmf_alloc(sizeof(double) * nb);
		uniform = dmf_alloc(sizeof(double) * nb);
		bgrad = dmf_alloc0(sizeof(double) * nb);
		bm = dmf_alloc0(sizeof(double) * nb);
		bv = dmf_alloc0(sizeof(double) * nb);
		dmf_uniform_boundaries(cfg->levels, cfg->n_levels, uniform);
		memcpy(bounds, uniform, sizeof(double) * nb);
		memcpy(best_bounds, uniform, sizeof(double) * nb);
		quant.n_levels = cfg->n_levels;
		quant.step = cfg->levels[1] - cfg->levels[0];
		quant.levels = cfg->levels;
		quant.boundaries = bounds;
		quant.lambda = lambda;
		res->lambda = lambda;
	}
	dmf_rng_seed(&rng, cfg->seed);

	/* inputs while training: the training ratings only */
	tparts[0] = train;
	pos_u = dmf_alloc(sizeof(int64_t) * (size_t) (train->n + 1));
	pos_i = dmf_alloc(sizeof(int64_t) * (size_t) (train->n + 1));
	dmf_build_inputs(tparts, 1, nu, ni, cfg->input_encoding, rmin, rmax, &xu, &xi, &ignored,
					 pos_u, pos_i);

	branch_sizes(cfg->n_user_hidden, cfg->user_hidden, ni, dim, sizes);
	dmf_branch_layout(ub, cfg->n_user_hidden + 1, sizes, cfg->activation);
	branch_sizes(cfg->n_item_hidden, cfg->item_hidden, nu, dim, sizes);
	dmf_branch_layout(ib, cfg->n_item_hidden + 1, sizes, cfg->activation);
	{
		DmfInputCoding coding = {cfg->input_encoding, cfg->row_scale, rmin, rmax};

		ub->coding = coding;
		ib->coding = coding;
	}
	dmf_branch_init(ub, &rng);
	dmf_branch_init(ib, &rng);
	dmf_adam_alloc(&ua, ub->n_params);
	dmf_adam_alloc(&ia, ib->n_params);
	best_u = dmf_alloc(sizeof(float) * ub->n_params);
	best_i = dmf_alloc(sizeof(float) * ib->n_params);
	memcpy(best_u, ub->params, sizeof(float) * ub->n_params);
	memcpy(best_i, ib->params, sizeof(float) * ib->n_params);

	/* block grid: about batch_size ratings per block */
	{
		/* the caller resolves the automatic size (0); never divide by it */
		double		g = sqrt((double) train->n / (double) (cfg->batch_size > 0 ? cfg->batch_size : 1));
		int			G = g < 1.0 ? 1 : (int) (g + 0.5);

		gu = G < nu ? G : nu;
		gi = G < ni ? G : ni;
	}
	n_blocks = gu * gi;
	max_block_users = (nu + gu - 1) / gu;
	max_block_items = (ni + gi - 1) / gi;

	dmf_branch_work_alloc(&uw, ub, max_block_users, dropout > 0.0f);
	dmf_branch_work_alloc(&iw, ib, max_block_items, dropout > 0.0f);
	dmf_branch_work_alloc(&ufw, ub, DMF_FACTOR_CHUNK, false);
	dmf_branch_work_alloc(&ifw, ib, DMF_FACTOR_CHUNK, false);
	unorm = dmf_alloc(sizeof(float) * max_block_users);
	vnorm = dmf_alloc(sizeof(float) * max_block_items);

	skip_u = dmf_alloc0((size_t) train->n + 1);
	skip_i = dmf_alloc0((size_t) train->n + 1);
	side_task_init(&ut, cfg, ub, &uw, &ua, &xu, skip_u, unorm, &rng);
	side_task_init(&it, cfg, ib, &iw, &ia, &xi, skip_i, vnorm, &rng);
	worker = cfg->threads >= 2 ? dmf_helper_start() : NULL;
	res->user_factors = dmf_alloc(sizeof(float) * (size_t) nu * dim);
	res->item_factors = dmf_alloc(sizeof(float) * (size_t) ni * dim);

	user_perm = dmf_alloc(sizeof(int32_t) * nu);
	item_perm = dmf_alloc(sizeof(int32_t) * ni);
	for (int32_t k = 0; k < nu; k++)
		user_perm[k] = k;
	for (int32_t k = 0; k < ni; k++)
		item_perm[k] = k;
	identity_users = dmf_alloc(sizeof(int32_t) * nu);
	identity_items = dmf_alloc(sizeof(int32_t) * ni);
	for (int32_t k = 0; k < nu; k++)
		identity_users[k] = k;
	for (int32_t k = 0; k < ni; k++)
		identity_items[k] = k;

	/*
	 * Early stopping is armed only once the model beats the global mean on
	 * validation by 1%.  Before that, a flat validation curve is the plateau
	 * of a factorization leaving its random start, not convergence.
	 */
	res->mean_validation_rmse = NAN;
	if (data->validation.n > 0)
	{
		double		mu = 0.0,
					se = 0.0;

		for (int64_t k = 0; k < train->n; k++)
			mu += train->rating[k];
		mu /= (double) train->n;
		for (int64_t k = 0; k < data->validation.n; k++)
			se += (data->validation.rating[k] - mu) * (data->validation.rating[k] - mu);
		res->mean_validation_rmse = sqrt(se / (double) data->validation.n);
	}

	user_group = dmf_alloc(sizeof(int32_t) * nu);
	item_group = dmf_alloc(sizeof(int32_t) * ni);
	user_local = dmf_alloc(sizeof(int32_t) * nu);
	item_local = dmf_alloc(sizeof(int32_t) * ni);
	for (int32_t k = 0; k < nu; k++)
		user_local[k] = -1;
	for (int32_t k = 0; k < ni; k++)
		item_local[k] = -1;
	block_users = dmf_alloc(sizeof(int32_t) * max_block_users);
	block_items = dmf_alloc(sizeof(int32_t) * max_block_items);
	block_start = dmf_alloc(sizeof(int64_t) * (n_blocks + 1));
	block_fill = dmf_alloc(sizeof(int64_t) * (n_blocks + 1));
	block_order = dmf_alloc(sizeof(int32_t) * n_blocks);
	order = dmf_alloc(sizeof(int64_t) * (size_t) (train->n + 1));
	dU = dmf_alloc(sizeof(float) * (size_t) max_block_users * dim);
	dV = dmf_alloc(sizeof(float) * (size_t) max_block_items * dim);
	{
		/* no block holds more ratings than the largest user x item group */
		size_t		cap = (size_t) train->n + 1;

		pair_u = dmf_alloc(sizeof(int32_t) * cap);
		pair_i = dmf_alloc(sizeof(int32_t) * cap);
		target = dmf_alloc(sizeof(float) * cap);
	}
	/* DMF-D trains twice as long: the continuous phase, then the quantizer's */
	res->history = dmf_alloc0(sizeof(DmfEpochStats) * (2 * (size_t) cfg->epochs + 1));

	for (int epoch = 1, phase_epoch = 1;; epoch++, phase_epoch++)
	{
		double		t_epoch = dmf_now_seconds();
		double		se_sum = 0.0;
		int64_t		se_n = 0;
		DmfEpochStats *st = &res->history[epoch - 1];

		shuffle_groups(&rng, user_perm, nu, gu, user_group);
		shuffle_groups(&rng, item_perm, ni, gi, item_group);

		/* bucket the ratings by block (counting sort) */
		memset(block_start, 0, sizeof(int64_t) * (n_blocks + 1));
		for (int64_t k = 0; k < train->n; k++)
			block_start[user_group[train->user[k]] * gi +
						item_group[train->item[k]] + 1]++;
		for (int b = 0; b < n_blocks; b++)
			block_start[b + 1] += block_start[b];
		memcpy(block_fill, block_start, sizeof(int64_t) * (n_blocks + 1));
		for (int64_t k = 0; k < train->n; k++)
			order[block_fill[user_group[train->user[k]] * gi +
							 item_group[train->item[k]]]++] = k;
		for (int b = 0; b < n_blocks; b++)
			block_order[b] = b;
		dmf_rng_shuffle(&rng, block_order, n_blocks);

		for (int bo = 0; bo < n_blocks; bo++)
		{
			int			blk = block_order[bo];
			int64_t		lo = block_start[blk];
			int64_t		hi = block_start[blk + 1];
			int			nbu = 0,
						nbi = 0;
			int64_t		np = hi - lo;
			const float *U;
			const float *V;
			double		block_se = 0.0;

			dmf_check_interrupts();
			if (np == 0)
				continue;

			/* the block's distinct users and items, and local pair indices */
			for (int64_t p = 0; p < np; p++)
			{
				int64_t		k = order[lo + p];
				int32_t		u = train->user[k];
				int32_t		i = train->item[k];

				if (user_local[u] < 0)
				{
					user_local[u] = nbu;
					block_users[nbu++] = u;
				}
				if (item_local[i] < 0)
				{
					item_local[i] = nbi;
					block_items[nbi++] = i;
				}
				pair_u[p] = user_local[u];
				pair_i[p] = item_local[i];
				target[p] = dmf_scale_target(train->rating[k], rmin, rmax);
				/* hide the block's targets from the inputs */
				skip_u[pos_u[k]] = 1;
				skip_i[pos_i[k]] = 1;
			}

			ut.rows = block_users;
			ut.nb = nbu;
			it.rows = block_items;
			it.nb = nbi;
			if (worker)
				dmf_blas_set_threads(1);
			run_sides(worker, side_forward, &ut, &it);
			U = ut.out;
			V = it.out;

			memset(dU, 0, sizeof(float) * (size_t) nbu * dim);
			memset(dV, 0, sizeof(float) * (size_t) nbi * dim);

			/*
			 * pred = u.v / (|u||v|);  d pred / d u = v/(|u||v|) - pred u/|u|^2
			 * Loss is the mean squared error over the block's ratings.
			 */
			for (int64_t p = 0; p < np; p++)
			{
				int			a = pair_u[p];
				int			c = pair_i[p];
				const float *u = U + (size_t) a * dim;
				const float *v = V + (size_t) c * dim;
				float	   *du = dU + (size_t) a * dim;
				float	   *dv = dV + (size_t) c * dim;
				float		nn = unorm[a] * vnorm[c];
				float		dot = 0.0f;
				float		pred,
							err,
							g,
							gu_self,
							gv_self;

				for (int j = 0; j < dim; j++)
					dot += u[j] * v[j];
				pred = dot / nn;
				if (quantizing)
				{
					/* through G: d loss / d cos = 2 err G'(x) half */
					double		dgdx,
								dgdb;
					int			bi_;
					double		x = mid + half * pred;
					double		gx = dmf_quantize_smooth(&quant, x, &dgdx, &dgdb, &bi_);
					double		e = gx - (mid + half * target[p]);

					block_se += e * e;
					g = (float) (2.0 * e / (double) np * dgdx * half);
					bgrad[bi_] += 2.0 * e / (double) np * dgdb;
				}
				else
				{
					err = pred - target[p];
					block_se += (double) err * err * half * half;
					g = 2.0f * err / (float) np;
				}
				gu_self = g * pred / (unorm[a] * unorm[a]);
				gv_self = g * pred / (vnorm[c] * vnorm[c]);
				for (int j = 0; j < dim; j++)
				{
					du[j] += g * v[j] / nn - gu_self * u[j];
					dv[j] += g * u[j] / nn - gv_self * v[j];
				}
			}

			step++;
			ut.dout = dU;
			it.dout = dV;
			ut.lr = it.lr = lr;
			ut.step = it.step = step;
			run_sides(worker, side_backward, &ut, &it);
			if (quantizing)
				boundary_step(cfg, bounds, uniform, bgrad, bm, bv, lr, step);

			/* undo the block's marks */
			clear_marks(&xu, block_users, nbu, skip_u);
			clear_marks(&xi, block_items, nbi, skip_i);
			for (int r = 0; r < nbu; r++)
				user_local[block_users[r]] = -1;
			for (int r = 0; r < nbi; r++)
				item_local[block_items[r]] = -1;

			se_sum += block_se;
			se_n += np;
		}

		/* rating-scale RMSE: the [-1, 1] scale times half the range */
		st->epoch = epoch;
		st->learning_rate = lr;
		st->train_rmse = sqrt(se_sum / (double) (se_n > 0 ? se_n : 1));
		st->lambda = quantizing ? lambda : 0.0;
		st->validation_rmse = NAN;
		res->epochs_run = epoch;

		if (worker)
			dmf_blas_set_threads(cfg->threads);
		if (data->validation.n > 0)
		{
			double		mse;

			all_factors(ub, &ufw, &xu, identity_users, res->user_factors);
			all_factors(ib, &ifw, &xi, identity_items, res->item_factors);
			mse = triples_mse(&data->validation, res->user_factors,
							  res->item_factors, dim, rmin, rmax,
							  quantizing ? &quant : NULL);
			st->validation_rmse = sqrt(mse);
		}
		st->seconds = dmf_now_seconds() - t_epoch;

		/* early stopping keeps the weights of the best validation epoch */
		if (data->validation.n == 0 ||
			isnan(res->best_validation_rmse) ||
			st->validation_rmse < res->best_validation_rmse)
		{
			res->best_validation_rmse = st->validation_rmse;
			res->best_epoch = epoch;
			res->final_train_rmse = st->train_rmse;
			memcpy(best_u, ub->params, sizeof(float) * ub->n_params);
			memcpy(best_i, ib->params, sizeof(float) * ib->n_params);
			if (quantizing)
			{
				memcpy(best_bounds, bounds, sizeof(double) * (cfg->n_levels + 1));
				res->lambda = lambda;
			}
			since_best = 0;
		}
		else if (res->best_validation_rmse < 0.99 * res->mean_validation_rmse &&
				 (!quantizing || lambda >= cfg->lambda_max))
			since_best++;

		if (cfg->on_epoch)
			cfg->on_epoch(cfg->on_epoch_arg, st);
		if (since_best >= cfg->patience && drops_done < cfg->plateau_drops &&
			phase_epoch < cfg->epochs && !quantizing)
		{
			/* validation stalled: back to the best weights with a smaller step */
			memcpy(ub->params, best_u, sizeof(float) * ub->n_params);
			memcpy(ib->params, best_i, sizeof(float) * ib->n_params);
			lr *= cfg->plateau_factor;
			drops_done++;
			since_best = 0;
			continue;
		}
		if (since_best >= cfg->patience || phase_epoch >= cfg->epochs)
		{
			if (!cfg->discrete || quantizing)
				break;
			/*
			 * DMF-D: from the best continuous model and the uniform quantizer
			 * (rounding), train through the smooth quantizer while its slope
			 * grows.  Its validation RMSE (hard quantizer) is the one to beat,
			 * so DMF-D is never worse than rounding on validation.
			 */
			memcpy(ub->params, best_u, sizeof(float) * ub->n_params);
			memcpy(ib->params, best_i, sizeof(float) * ib->n_params);
			quantizing = true;
			phase_epoch = 0;
			since_best = 0;
			lambda = cfg->lambda_start;
			quant.lambda = lambda;
			res->lambda = 0.0;
			if (data->validation.n > 0)
			{
				all_factors(ub, &ufw, &xu, identity_users, res->user_factors);
				all_factors(ib, &ifw, &xi, identity_items, res->item_factors);
				res->best_validation_rmse =
					sqrt(triples_mse(&data->validation, res->user_factors,
									 res->item_factors, dim, rmin, rmax, &quant));
			}
			continue;
		}
		lr *= cfg->learning_rate_decay;
		if (quantizing)
		{
			/* anneal: the smooth quantizer tends to the hard one */
			lambda *= cfg->lambda_growth;
			if (lambda > cfg->lambda_max)
				lambda = cfg->lambda_max;
			quant.lambda = lambda;
		}
	}

	if (worker)
	{
		dmf_helper_stop(worker);
		dmf_blas_set_threads(cfg->threads);
	}
	memcpy(ub->params, best_u, sizeof(float) * ub->n_params);
	memcpy(ib->params, best_i, sizeof(float) * ib->n_params);
	res->boundaries = best_bounds;

	/* training memory is no longer needed; the final inputs may be larger */
	dmf_branch_work_free(&uw, ub);
	dmf_branch_work_free(&iw, ib);
	dmf_adam_free(&ua);
	dmf_adam_free(&ia);
	dmf_free(best_u);
	dmf_free(best_i);
	dmf_free(order);
	dmf_free(pair_u);
	dmf_free(pair_i);
	dmf_free(target);

	if (cfg->discrete && data->validation.n > 0)
		calibrate_boundaries(cfg, data, ub, ib, &ufw, &ifw, &xu, &xi,
							 identity_users, identity_items, best_bounds);

	/* the stored factors see every rating of the table, held-out ones too */
	if (data->extra_input.n > 0)
	{
		dmf_csr_free(&xu);
		dmf_csr_free(&xi);
		tparts[0] = train;
		tparts[1] = &data->extra_input;
		dmf_build_inputs(tparts, 2, nu, ni, cfg->input_encoding, rmin, rmax, &xu, &xi, &ignored,
						 NULL, NULL);
	}
	all_factors(ub, &ufw, &xu, identity_users, res->user_factors);
	all_factors(ib, &ifw, &xi, identity_items, res->item_factors);

	/* every entity here is a training entity: its branch factor is its anchor */
	res->user_anchors = dmf_alloc(sizeof(float) * (size_t) nu * dim);
	res->item_anchors = dmf_alloc(sizeof(float) * (size_t) ni * dim);
	memcpy(res->user_anchors, res->user_factors, sizeof(float) * (size_t) nu * dim);
	memcpy(res->item_anchors, res->item_factors, sizeof(float) * (size_t) ni * dim);
	{
		DmfFoldInSide sides[2] = {{&xu, res->user_factors, res->item_anchors},
								  {&xi, res->item_factors, res->user_anchors}};

		dmf_fold_in_sides(sides, 2, dim, cfg->fold_in_steps, cfg->fold_in_rate,
						  rmin, rmax, cfg->threads);
	}

	dmf_branch_work_free(&ufw, ub);
	dmf_branch_work_free(&ifw, ib);
	dmf_csr_free(&xu);
	dmf_csr_free(&xi);
	res->seconds = dmf_now_seconds() - t_start;
}
