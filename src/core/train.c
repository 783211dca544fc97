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
 *
 * A training is a state machine over one Training: training_init, then
 * per epoch epoch_plan and dmf_train_block (train_block.c) for each block,
 * epoch_validate,
 * keep_if_best (early stopping) and next_epoch (the learning-rate schedule,
 * plateau cuts and DMF-D's second phase), and training_finish.
 */
#include "platform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "blas.h"
#include "block_sides.h"
#include "dmfd.h"
#include "encoding.h"
#include "fold_choice.h"
#include "fold_in.h"
#include "grouped.h"
#include "helper_thread.h"
#include "implicit.h"
#include "prepare.h"
#include "quantizer.h"
#include "train.h"
#include "training.h"

double
dmf_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * Rows of a task of the factors of every row (all_factors), each thread
 * with buffers of its own: at most DMF_FACTOR_CHUNK rows for the most
 * threads a training may have.
 */
#define FACTOR_TASK_ROWS (DMF_FACTOR_CHUNK / DMF_MAX_THREADS)

static void
branch_sizes(int n_hidden, const int *hidden, int input, int dim, int *sizes)
{
	sizes[0] = input;
	for (int l = 0; l < n_hidden; l++)
		sizes[l + 1] = hidden[l];
	sizes[n_hidden + 1] = dim;
}

/* What the alternating schedule holds beyond the branches, optimizers and inputs. */
static uint64_t
alternating_memory_estimate(const DmfTrainConfig *cfg, int32_t n_users, int32_t n_items,
							int64_t n_train)
{
	uint64_t	bytes = 0;
	uint64_t	most = (uint64_t) (n_users > n_items ? n_users : n_items);
	uint64_t	max_vr = (uint64_t) (cfg->batch_size > 0 ? cfg->batch_size : 1) + DMF_ALT_GROUPS;
	int			widest = 1;

	if (max_vr < DMF_ALT_FROZEN_ROWS)
		max_vr = DMF_ALT_FROZEN_ROWS;
	for (int side = 0; side < 2; side++)
	{
		int			nh = side == 0 ? cfg->n_user_hidden : cfg->n_item_hidden;
		const int  *h = side == 0 ? cfg->user_hidden : cfg->item_hidden;
		int			sizes[DMF_MAX_LAYERS + 1];
		uint64_t	per_row = 0;
		uint64_t	rows = (uint64_t) (side == 0 ? n_users : n_items);

		branch_sizes(nh, h, side == 0 ? n_items : n_users, cfg->dim, sizes);
		for (int l = 0; l <= nh; l++)
			per_row += 5 * (uint64_t) sizes[l + 1];
		if (sizes[1] > widest)
			widest = sizes[1];
		/* a minibatch's and the fixed factors' passes; sums, gradients and runs per virtual row */
		bytes += (max_vr + DMF_ALT_FROZEN_ROWS) * per_row * sizeof(float)
			+ max_vr * (3 * sizeof(int32_t) + 2 * (uint64_t) sizes[1] * sizeof(float) +
						(DMF_GROUPED_TASKS + 1) * sizeof(int64_t))
			+ (uint64_t) DMF_MAX_THREADS * DMF_GROUPED_SCRATCH(DMF_ALT_GROUPS, sizes[1]) * sizeof(float)
			+ (uint64_t) sizes[0]
		/* the rows regrouped each epoch, where each group starts */
			+ (uint64_t) n_train * (sizeof(int32_t) + sizeof(float) + (cfg->input_dropout > 0.0))
			+ rows * (DMF_ALT_GROUPS + 1) * sizeof(int64_t);
	}
	/* the fixed side's sums and factors, a minibatch's gradient */
	return bytes + most * (DMF_TOTALS_STRIDE(widest) + cfg->dim) * sizeof(float)
		+ max_vr * cfg->dim * sizeof(float);
}

uint64_t
dmf_train_memory_estimate(const DmfTrainConfig *cfg, int32_t n_users,
						  int32_t n_items, int64_t n_train, int64_t n_input)
{
	uint64_t	params = 0;
	uint64_t	act = 0;
	uint64_t	pair_terms = 0;
	int			sizes[DMF_MAX_LAYERS + 1];
	bool		alternating = cfg->schedule == DMF_SCHEDULE_ALTERNATING &&
		cfg->feedback != DMF_FEEDBACK_IMPLICIT;

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
		/* a block holds at most a whole side; factors go by chunks, per thread */
		act += per_row * ((alternating ? 0 : rows) + DMF_FACTOR_CHUNK);
	}
	if (alternating)
		return params * 5 * sizeof(float)
			+ alternating_memory_estimate(cfg, n_users, n_items, n_train)
		/* inputs (both orientations) and the training triples */
			+ (uint64_t) n_train * 2 * (sizeof(int32_t) + sizeof(float))
			+ (uint64_t) n_train * (2 * sizeof(int32_t) + sizeof(float))
			+ act * sizeof(float)
			+ ((uint64_t) n_users + n_items) * (cfg->dim * sizeof(float) + 32);
	/*
	 * implicit: weights, input values, sampled pairs and the validation's,
	 * and every interaction (with the arrays it is built from)
	 */
	if (cfg->feedback == DMF_FEEDBACK_IMPLICIT)
		pair_terms = (uint64_t) n_train * (2 * sizeof(float) + (uint64_t) (cfg->negatives + 1) *
										 (2 * sizeof(int32_t) + 2 * sizeof(float)))
			+ (uint64_t) n_input * (sizeof(float) + 4 * sizeof(int32_t) + 2 * sizeof(float));

	/*
	 * a block's gradient terms per pair, for a block of up to twice the
	 * average, and with implicit feedback its drawn negatives
	 */
	pair_terms += (uint64_t) 2 * (cfg->batch_size > 0 ? cfg->batch_size : 8192) *
		(cfg->feedback == DMF_FEEDBACK_IMPLICIT ?
		 (1 + cfg->negatives) * sizeof(DmfPairGradient) + cfg->negatives * sizeof(int32_t) :
		 sizeof(DmfPairGradient));

	/* where a block's rows split into the sparse backward's tasks */
	act += ((uint64_t) n_users + n_items) * (DMF_SPARSE_TASKS + 1) * sizeof(int64_t) / sizeof(float);

	/* params, gradient, two Adam moments, best copy */
	return params * 5 * sizeof(float) + pair_terms
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
			double rmin, double rmax, const DmfQuantizer *q, bool implicit)
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
		err = implicit ? dmf_implicit_score(dot) : dmf_unscale_prediction(dot, rmin, rmax);
		if (q)
			err = dmf_quantize(q, err);
		err -= t->rating[k];
		se += err * err;
		if ((k & 0xFFFF) == 0)
			dmf_check_interrupts();
	}
	return se / (double) t->n;
}

/*
 * Every row's factor, in tasks of FACTOR_TASK_ROWS rows on the team, each
 * thread with its work (max_rows FACTOR_TASK_ROWS): the same bits on any
 * number of threads.
 */

typedef struct FactorTasks
{
	const DmfBranch *b;
	DmfBranchWork *works;		/* one per worker */
	const DmfCsr *x;
	const int32_t *rows;
	float	   *out;
} FactorTasks;

static void
factor_task(void *arg, int task, int worker)
{
	const FactorTasks *p = (const FactorTasks *) arg;
	DmfBranchWork *w = &p->works[worker];
	int			dim = p->b->sizes[p->b->n_layers];
	int			r0 = task * FACTOR_TASK_ROWS;
	int			n = p->x->nrows - r0 < FACTOR_TASK_ROWS ? p->x->nrows - r0 : FACTOR_TASK_ROWS;
	float	   *out = p->out + (size_t) r0 * dim;
	const float *u = dmf_branch_forward(p->b, w, p->x, p->rows + r0, n, NULL, 0.0f, NULL);

	memcpy(out, u, sizeof(float) * (size_t) n * dim);
	/* a row without input has no factor, not the bias vector */
	for (int r = 0; r < n; r++)
		if (w->scale[r] == 0.0f)
			memset(out + (size_t) r * dim, 0, sizeof(float) * dim);
	dmf_normalize_rows(out, n, dim);
}

static void
all_factors(Training *t, const DmfBranch *b, DmfBranchWork *works, const DmfCsr *x,
			const int32_t *identity, float *out)
{
	FactorTasks p = {b, works, x, identity, out};

	dmf_check_interrupts();
	dmf_team_run(t->team, factor_task, &p, (x->nrows + FACTOR_TASK_ROWS - 1) / FACTOR_TASK_ROWS);
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


/* DMF-D's quantizer: uniform boundaries (rounding) to start from. */
static void
init_quantizer(Training *t)
{
	const DmfTrainConfig *cfg = t->cfg;
	int			nb = cfg->n_levels + 1;

	t->bounds = dmf_alloc(sizeof(double) * nb);
	t->best_bounds = dmf_alloc(sizeof(double) * nb);
	t->uniform = dmf_alloc(sizeof(double) * nb);
	t->bgrad = dmf_alloc0(sizeof(double) * nb);
	t->bm = dmf_alloc0(sizeof(double) * nb);
	t->bv = dmf_alloc0(sizeof(double) * nb);
	dmf_uniform_boundaries(cfg->levels, cfg->n_levels, t->uniform);
	/* a warm start's boundaries are the ones to beat, and kept if nothing does */
	memcpy(t->bounds, cfg->init && cfg->init->boundaries ? cfg->init->boundaries : t->uniform,
		   sizeof(double) * nb);
	memcpy(t->best_bounds, t->bounds, sizeof(double) * nb);
	t->quant.n_levels = cfg->n_levels;
	t->quant.step = cfg->levels[1] - cfg->levels[0];
	t->quant.levels = cfg->levels;
	t->quant.boundaries = t->bounds;
	t->quant.lambda = t->lambda;
	t->res->lambda = t->lambda;
}

/* The two branches, their optimizers and buffers, seeded from t->rng. */
static void
init_branches(Training *t, int max_block_users, int max_block_items)
{
	const DmfTrainConfig *cfg = t->cfg;
	DmfBranch  *ub = &t->res->user_branch;
	DmfBranch  *ib = &t->res->item_branch;
	int			sizes[DMF_MAX_LAYERS + 1];
	bool		dropout = (float) cfg->dropout > 0.0f;
	DmfInputCoding coding = {cfg->input_encoding, cfg->row_scale, cfg->rating_min, cfg->rating_max};

	branch_sizes(cfg->n_user_hidden, cfg->user_hidden, t->ni, t->dim, sizes);
	dmf_branch_layout(ub, cfg->n_user_hidden + 1, sizes, cfg->activation);
	branch_sizes(cfg->n_item_hidden, cfg->item_hidden, t->nu, t->dim, sizes);
	dmf_branch_layout(ib, cfg->n_item_hidden + 1, sizes, cfg->activation);
	ub->coding = coding;
	ib->coding = coding;
	dmf_branch_init(ub, &t->rng);
	dmf_branch_init(ib, &t->rng);
	if (cfg->init)
	{
		dmf_branch_copy_weights(ub, cfg->init->user_branch, cfg->init->user_branch_rows);
		dmf_branch_copy_weights(ib, cfg->init->item_branch, cfg->init->item_branch_rows);
	}
	dmf_adam_alloc(&t->ua, ub->n_params);
	dmf_adam_alloc(&t->ia, ib->n_params);
	t->best_u = dmf_alloc(sizeof(float) * ub->n_params);
	t->best_i = dmf_alloc(sizeof(float) * ib->n_params);
	memcpy(t->best_u, ub->params, sizeof(float) * ub->n_params);
	memcpy(t->best_i, ib->params, sizeof(float) * ib->n_params);

	t->fw_u = dmf_alloc(sizeof(DmfBranchWork) * dmf_team_size(t->team));
	t->fw_i = dmf_alloc(sizeof(DmfBranchWork) * dmf_team_size(t->team));
	for (int k = 0; k < dmf_team_size(t->team); k++)
	{
		dmf_branch_work_alloc(&t->fw_u[k], ub, FACTOR_TASK_ROWS, false);
		dmf_branch_work_alloc(&t->fw_i[k], ib, FACTOR_TASK_ROWS, false);
	}
	if (t->alt_schedule)
		return;
	dmf_branch_work_alloc(&t->uw, ub, max_block_users, dropout);
	dmf_branch_work_alloc(&t->iw, ib, max_block_items, dropout);
	/* a block's passes in tasks on the team (network.h) */
	dmf_branch_work_tasks(&t->uw, t->team);
	dmf_branch_work_tasks(&t->iw, t->team);
	t->unorm = dmf_alloc(sizeof(float) * max_block_users);
	t->vnorm = dmf_alloc(sizeof(float) * max_block_items);
	t->skip_u = dmf_alloc0((size_t) t->data->train.n + 1);
	t->skip_i = dmf_alloc0((size_t) t->data->train.n + 1);
	dmf_side_task_init(&t->ut, cfg, ub, &t->uw, &t->ua, &t->xu, t->skip_u, t->unorm, &t->rng);
	dmf_side_task_init(&t->it, cfg, ib, &t->iw, &t->ia, &t->xi, t->skip_i, t->vnorm, &t->rng);
}

static int32_t *
identity(int32_t n)
{
	int32_t    *v = dmf_alloc(sizeof(int32_t) * n);

	for (int32_t k = 0; k < n; k++)
		v[k] = k;
	return v;
}

static int32_t *
all_minus_one(int32_t n)
{
	int32_t    *v = dmf_alloc(sizeof(int32_t) * n);

	for (int32_t k = 0; k < n; k++)
		v[k] = -1;
	return v;
}

/*
 * Early stopping is armed only once the model beats the global mean on
 * validation by 1%.  Before that, a flat validation curve is the plateau
 * of a factorization leaving its random start, not convergence.
 */
static double
mean_validation_rmse(const DmfTriples *train, const DmfTriples *validation)
{
	double		mu = 0.0,
				se = 0.0;

	if (validation->n == 0)
		return NAN;
	for (int64_t k = 0; k < train->n; k++)
		mu += train->rating[k];
	mu /= (double) train->n;
	for (int64_t k = 0; k < validation->n; k++)
		se += (validation->rating[k] - mu) * (validation->rating[k] - mu);
	return sqrt(se / (double) validation->n);
}

/*
 * Implicit feedback: the weights, the inputs' values, and the validation
 * pairs (held-out positives and sampled negatives) that early stopping
 * measures; returns the triples the inputs are built from.
 */
static DmfTriples
implicit_init(Training *t)
{
	const DmfTrainSet *data = t->data;
	int64_t		n_ones = data->train.n > data->extra_input.n ? data->train.n : data->extra_input.n;
	const DmfTriples *parts[3] = {&data->train, &data->validation, &data->extra_input};

	/* the held-out pairs are interactions too (validation may be extra_input) */
	dmf_implicit_positives(parts, data->validation.user == data->extra_input.user ? 2 : 3,
						   t->nu, t->ni, &t->positives);
	t->weight = dmf_alloc(sizeof(float) * (size_t) (data->train.n + 1));
	dmf_implicit_weights(&data->train, t->weight);
	/* the values of both parts' inputs; the held-out part may be the larger */
	t->ones = dmf_alloc(sizeof(float) * (size_t) (n_ones + 1));
	for (int64_t k = 0; k <= n_ones; k++)
		t->ones[k] = 1.0f;
	return dmf_implicit_ones(&data->train, t->ones);
}

static void
training_init(Training *t, const DmfTrainConfig *cfg, const DmfTrainSet *data,
			  DmfTrainResult *res)
{
	const DmfTriples *train = &data->train;
	DmfTriples	inputs;
	const DmfTriples *tparts[1] = {&inputs};
	int64_t		ignored;
	int			max_block_users,
				max_block_items;
	/* pairs of a block: its ratings, and the negatives sampled per positive */
	size_t		max_pairs;

	memset(t, 0, sizeof(*t));
	t->cfg = cfg;
	t->data = data;
	t->res = res;
	t->nu = data->n_users;
	t->ni = data->n_items;
	t->dim = cfg->dim;
	t->t_start = dmf_now_seconds();
	t->lr = cfg->learning_rate;
	t->lambda = cfg->lambda_start;
	t->implicit = cfg->feedback == DMF_FEEDBACK_IMPLICIT;
	t->validation = &data->validation;
	inputs = t->implicit ? implicit_init(t) : *train;
	max_pairs = (size_t) train->n * (t->implicit ? 1 + cfg->negatives : 1) + 1;

	memset(res, 0, sizeof(*res));
	res->best_validation_rmse = NAN;
	if (cfg->discrete)
		init_quantizer(t);
	dmf_rng_seed(&t->rng, cfg->seed);

	/* the blocks hide their targets by entry; the alternating schedule by group */
	t->alt_schedule = cfg->schedule == DMF_SCHEDULE_ALTERNATING && !t->implicit;
	if (!t->alt_schedule)
	{
		t->pos_u = dmf_alloc(sizeof(int64_t) * (size_t) (train->n + 1));
		t->pos_i = dmf_alloc(sizeof(int64_t) * (size_t) (train->n + 1));
	}
	dmf_build_inputs(tparts, 1, t->nu, t->ni, cfg->input_encoding, cfg->rating_min,
					 cfg->rating_max, &t->xu, &t->xi, &ignored, t->pos_u, t->pos_i);
	if (t->implicit && data->validation.n > 0)
	{
		dmf_implicit_validation(&data->validation, &t->positives, t->ni, cfg->negatives,
								cfg->seed, &t->implicit_validation);
		t->validation = &t->implicit_validation;
		/* the mean of the targets, not of the weights */
		res->mean_validation_rmse = mean_validation_rmse(t->validation, t->validation);
	}
	else
		res->mean_validation_rmse = mean_validation_rmse(train, t->validation);

	/* block grid: about batch_size ratings per block; alternating: fixed groups */
	if (t->alt_schedule)
	{
		t->gu = t->nu < DMF_ALT_GROUPS ? t->nu : DMF_ALT_GROUPS;
		t->gi = t->ni < DMF_ALT_GROUPS ? t->ni : DMF_ALT_GROUPS;
	}
	else
	{
		/* the caller resolves the automatic size (0); never divide by it */
		double		g = sqrt((double) train->n / (double) (cfg->batch_size > 0 ? cfg->batch_size : 1));
		int			G = g < 1.0 ? 1 : (int) (g + 0.5);

		t->gu = G < t->nu ? G : t->nu;
		t->gi = G < t->ni ? G : t->ni;
	}
	t->n_blocks = t->gu * t->gi;
	max_block_users = (t->nu + t->gu - 1) / t->gu;
	max_block_items = (t->ni + t->gi - 1) / t->gi;

	/* the team's threads call OpenBLAS, each for a product of its own */
	t->team = dmf_team_start(cfg->threads < DMF_MAX_THREADS ? cfg->threads : DMF_MAX_THREADS);
	if (t->team)
		dmf_blas_set_threads(1);
	init_branches(t, max_block_users, max_block_items);
	res->user_factors = dmf_alloc(sizeof(float) * (size_t) t->nu * t->dim);
	res->item_factors = dmf_alloc(sizeof(float) * (size_t) t->ni * t->dim);

	t->user_perm = identity(t->nu);
	t->item_perm = identity(t->ni);
	t->identity_users = identity(t->nu);
	t->identity_items = identity(t->ni);

	t->user_group = dmf_alloc(sizeof(int32_t) * t->nu);
	t->item_group = dmf_alloc(sizeof(int32_t) * t->ni);
	t->user_local = all_minus_one(t->nu);
	t->item_local = all_minus_one(t->ni);
	if (t->alt_schedule)
	{
		dmf_alternating_init(t);
		goto history;
	}
	t->block_users = dmf_alloc(sizeof(int32_t) * max_block_users);
	t->block_items = dmf_alloc(sizeof(int32_t) * max_block_items);
	t->block_start = dmf_alloc(sizeof(int64_t) * (t->n_blocks + 1));
	t->block_fill = dmf_alloc(sizeof(int64_t) * (t->n_blocks + 1));
	t->block_order = dmf_alloc(sizeof(int32_t) * t->n_blocks);
	t->order = dmf_alloc(sizeof(int64_t) * (size_t) (train->n + 1));
	t->dU = dmf_alloc(sizeof(float) * (size_t) max_block_users * t->dim);
	t->dV = dmf_alloc(sizeof(float) * (size_t) max_block_items * t->dim);
	t->pair_u = dmf_alloc(sizeof(int32_t) * max_pairs);
	t->pair_i = dmf_alloc(sizeof(int32_t) * max_pairs);
	t->target = dmf_alloc(sizeof(float) * max_pairs);
	if (t->implicit)
		t->pair_weight = dmf_alloc(sizeof(float) * max_pairs);
history:
	/* DMF-D trains twice as long: the continuous phase, then the quantizer's */
	res->history = dmf_alloc0(sizeof(DmfEpochStats) * (2 * (size_t) cfg->epochs + 1));
}

/* This epoch's groups, the ratings bucketed by block, and the block order. */
static void
epoch_plan(Training *t)
{
	const DmfTriples *train = &t->data->train;
	int			gi = t->gi;

	shuffle_groups(&t->rng, t->user_perm, t->nu, t->gu, t->user_group);
	shuffle_groups(&t->rng, t->item_perm, t->ni, gi, t->item_group);

	/* bucket the ratings by block (counting sort) */
	memset(t->block_start, 0, sizeof(int64_t) * (t->n_blocks + 1));
	for (int64_t k = 0; k < train->n; k++)
		t->block_start[t->user_group[train->user[k]] * gi +
					   t->item_group[train->item[k]] + 1]++;
	for (int b = 0; b < t->n_blocks; b++)
		t->block_start[b + 1] += t->block_start[b];
	memcpy(t->block_fill, t->block_start, sizeof(int64_t) * (t->n_blocks + 1));
	for (int64_t k = 0; k < train->n; k++)
		t->order[t->block_fill[t->user_group[train->user[k]] * gi +
							   t->item_group[train->item[k]]]++] = k;
	for (int b = 0; b < t->n_blocks; b++)
		t->block_order[b] = b;
	dmf_rng_shuffle(&t->rng, t->block_order, t->n_blocks);
}

/* The validation RMSE of the current weights (through the hard quantizer in DMF-D's phase). */
static double
validation_rmse(Training *t, const DmfQuantizer *q)
{
	DmfTrainResult *res = t->res;
	double		t0 = dmf_now_seconds();

	all_factors(t, &res->user_branch, t->fw_u, &t->xu, t->identity_users, res->user_factors);
	all_factors(t, &res->item_branch, t->fw_i, &t->xi, t->identity_items, res->item_factors);
	t->factors_seconds = dmf_now_seconds() - t0;
	return sqrt(triples_mse(t->validation, res->user_factors, res->item_factors,
							t->dim, t->cfg->rating_min, t->cfg->rating_max, q, t->implicit));
}

/* One epoch: every block once, then the validation RMSE, into st. */
static void
train_epoch(Training *t, int epoch, DmfEpochStats *st)
{
	double		t_epoch = dmf_now_seconds();
	double		se_sum = 0.0;
	int64_t		se_n = 0;

	if (t->alt_schedule)
	{
		shuffle_groups(&t->rng, t->user_perm, t->nu, t->gu, t->user_group);
		shuffle_groups(&t->rng, t->item_perm, t->ni, t->gi, t->item_group);
		se_sum = dmf_alternating_epoch(t, &se_n);
	}
	else
		epoch_plan(t);
	for (int bo = 0; bo < t->n_blocks && !t->alt_schedule; bo++)
	{
		int64_t		np;

		dmf_check_interrupts();
		se_sum += dmf_train_block(t, t->block_order[bo], &np);
		se_n += np;
	}

	/* rating-scale RMSE: the [-1, 1] scale times half the range */
	st->epoch = epoch;
	st->learning_rate = t->lr;
	st->train_rmse = sqrt(se_sum / (double) (se_n > 0 ? se_n : 1));
	st->lambda = t->quantizing ? t->lambda : 0.0;
	st->validation_rmse = NAN;
	t->res->epochs_run = epoch;

	if (t->validation->n > 0)
		st->validation_rmse = validation_rmse(t, t->quantizing ? &t->quant : NULL);
	st->seconds = dmf_now_seconds() - t_epoch;
	st->budget_left = t->cfg->deadline > 0.0 ? t->cfg->deadline - dmf_now_seconds() : NAN;
}

static void
restore_best(Training *t)
{
	DmfTrainResult *res = t->res;

	memcpy(res->user_branch.params, t->best_u, sizeof(float) * res->user_branch.n_params);
	memcpy(res->item_branch.params, t->best_i, sizeof(float) * res->item_branch.n_params);
}

/* Early stopping: keeps the weights of the best validation epoch. */
static void
keep_if_best(Training *t, const DmfEpochStats *st)
{
	DmfTrainResult *res = t->res;

	if (t->validation->n == 0 ||
		isnan(res->best_validation_rmse) ||
		st->validation_rmse < res->best_validation_rmse)
	{
		res->best_validation_rmse = st->validation_rmse;
		res->best_epoch = st->epoch;
		res->final_train_rmse = st->train_rmse;
		memcpy(t->best_u, res->user_branch.params, sizeof(float) * res->user_branch.n_params);
		memcpy(t->best_i, res->item_branch.params, sizeof(float) * res->item_branch.n_params);
		if (t->quantizing)
		{
			memcpy(t->best_bounds, t->bounds, sizeof(double) * (t->cfg->n_levels + 1));
			res->lambda = t->lambda;
		}
		t->since_best = 0;
	}
	else if (res->best_validation_rmse < 0.99 * res->mean_validation_rmse &&
			 (!t->quantizing || t->lambda >= t->cfg->lambda_max))
		t->since_best++;
}

/*
 * DMF-D: from the best continuous model and the uniform quantizer
 * (rounding), train through the smooth quantizer while its slope grows.
 * Its validation RMSE (hard quantizer) is the one to beat, so DMF-D is
 * never worse than rounding on validation.
 */
static void
start_quantizer_phase(Training *t)
{
	restore_best(t);
	t->quantizing = true;
	t->since_best = 0;
	t->lambda = t->cfg->lambda_start;
	t->quant.lambda = t->lambda;
	t->res->lambda = 0.0;
	if (t->validation->n > 0)
		t->res->best_validation_rmse = validation_rmse(t, &t->quant);
}

/*
 * Whether the time budget leaves room for another epoch and the finish: an
 * epoch of the mean length so far, and the finish at one epoch's time or
 * three passes over every row's factors, whichever is longer.  (Measured:
 * the finish, mostly fold-in, took 1.1 epochs on MovieLens-1M, 1.8 on 25M
 * ratings, 3 on the Netflix shape.)
 */
static bool
out_of_time(const Training *t, int epochs_done)
{
	double		next_epoch,
				finish;

	if (t->cfg->deadline <= 0.0)
		return false;
	next_epoch = t->epochs_seconds / epochs_done;
	finish = fmax(next_epoch, 3.0 * t->factors_seconds);
	return dmf_now_seconds() + next_epoch + finish > t->cfg->deadline;
}

typedef enum NextStep
{
	NEXT_EPOCH,					/* go on in this phase */
	NEXT_PHASE,					/* DMF-D's quantizer phase starts */
	STOP
} NextStep;

/*
 * The schedule after an epoch (phase_epoch: epochs run in this phase): a
 * plateau cut of the learning rate, the end of a phase, or the decay of the
 * learning rate and DMF-D's slope.
 */
static NextStep
next_epoch(Training *t, int phase_epoch)
{
	const DmfTrainConfig *cfg = t->cfg;

	if (t->since_best >= cfg->patience && t->drops_done < cfg->plateau_drops &&
		phase_epoch < cfg->epochs && !t->quantizing)
	{
		/* validation stalled: back to the best weights with a smaller step */
		restore_best(t);
		t->lr *= cfg->plateau_factor;
		t->drops_done++;
		t->since_best = 0;
		return NEXT_EPOCH;
	}
	if (t->since_best >= cfg->patience || phase_epoch >= cfg->epochs)
	{
		if (!cfg->discrete || t->quantizing)
		{
			t->res->stop_reason = t->since_best >= cfg->patience ?
				DMF_STOP_EARLY_STOPPING : DMF_STOP_EPOCHS;
			return STOP;
		}
		start_quantizer_phase(t);
		return NEXT_PHASE;
	}
	t->lr *= cfg->learning_rate_decay;
	if (t->quantizing)
	{
		/* anneal: the smooth quantizer tends to the hard one */
		t->lambda *= cfg->lambda_growth;
		if (t->lambda > cfg->lambda_max)
			t->lambda = cfg->lambda_max;
		t->quant.lambda = t->lambda;
	}
	return NEXT_EPOCH;
}

/*
 * The best weights, the choice of which sides to fold in (fold_choice.h),
 * DMF-D's calibrated boundaries, and every factor from all the table's
 * ratings, folded in against the training anchors where chosen.
 */
static void
training_finish(Training *t)
{
	const DmfTrainConfig *cfg = t->cfg;
	const DmfTrainSet *data = t->data;
	DmfTrainResult *res = t->res;
	DmfBranch  *ub = &res->user_branch;
	DmfBranch  *ib = &res->item_branch;
	size_t		nu = (size_t) t->nu,
				ni = (size_t) t->ni;
	int64_t		ignored;
	double		t_finish = dmf_now_seconds();

	if (cfg->on_finish)
		cfg->on_finish(cfg->on_epoch_arg);
	restore_best(t);
	res->boundaries = t->best_bounds;

	/* training memory is no longer needed; the final inputs may be larger */
	if (t->alt_schedule)
		dmf_alternating_free(t);
	else
	{
		dmf_branch_work_free(&t->uw, ub);
		dmf_branch_work_free(&t->iw, ib);
		dmf_free(t->order);
		dmf_free(t->pair_u);
		dmf_free(t->pair_i);
		dmf_free(t->target);
	}
	dmf_adam_free(&t->ua);
	dmf_adam_free(&t->ia);
	dmf_free(t->best_u);
	dmf_free(t->best_i);
	if (t->pair_grad)
		dmf_free(t->pair_grad);
	if (t->pair_se)
		dmf_free(t->pair_se);
	if (t->drawn)
		dmf_free(t->drawn);
	if (t->implicit)
	{
		dmf_free(t->weight);
		dmf_free(t->pair_weight);
		dmf_csr_free(&t->positives);
		if (t->validation == &t->implicit_validation)
		{
			dmf_free(t->implicit_validation.user);
			dmf_free(t->implicit_validation.item);
			dmf_free(t->implicit_validation.rating);
		}
	}

	/* every factor of the training inputs, on the team; fold-in's choice starts from them */
	all_factors(t, ub, t->fw_u, &t->xu, t->identity_users, res->user_factors);
	all_factors(t, ib, t->fw_i, &t->xi, t->identity_items, res->item_factors);

	/*
	 * Which training entities fold-in helps; DMF-D's boundaries for those
	 * factors.  Fold-in fits ratings, which implicit data lacks: none.
	 */
	if (t->implicit)
		res->fold_choice = (DmfFoldChoice) {false, false, {NAN, NAN, NAN, NAN}};
	else
	{
		bool		calibrate = cfg->discrete && data->validation.n > 0;
		double	   *predictions = calibrate ?
			dmf_alloc(sizeof(double) * (size_t) data->validation.n) : NULL;

		dmf_choose_fold_in(cfg, data, res->user_factors, res->item_factors, &t->xu, &t->xi,
						   &res->fold_choice, predictions);
		if (calibrate)
		{
			dmf_calibrate_boundaries(cfg, &data->validation, predictions, t->best_bounds);
			dmf_free(predictions);
		}
	}

	/* the stored factors see every rating of the table, held-out ones too */
	if (data->extra_input.n > 0)
	{
		DmfTriples	train = t->implicit ? dmf_implicit_ones(&data->train, t->ones) : data->train;
		DmfTriples	extra = data->extra_input;
		const DmfTriples *tparts[2] = {&train, &extra};

		if (t->implicit)
		{
			/* one set of ones serves both parts: the inputs copy their values */
			extra.rating = t->ones;
		}

		dmf_csr_free(&t->xu);
		dmf_csr_free(&t->xi);
		dmf_build_inputs(tparts, 2, t->nu, t->ni, cfg->input_encoding, cfg->rating_min,
						 cfg->rating_max, &t->xu, &t->xi, &ignored, NULL, NULL);
		all_factors(t, ub, t->fw_u, &t->xu, t->identity_users, res->user_factors);
		all_factors(t, ib, t->fw_i, &t->xi, t->identity_items, res->item_factors);
	}
	for (int k = 0; k < dmf_team_size(t->team); k++)
	{
		dmf_branch_work_free(&t->fw_u[k], ub);
		dmf_branch_work_free(&t->fw_i[k], ib);
	}
	dmf_free(t->fw_u);
	dmf_free(t->fw_i);
	/* fold-in starts threads of its own; OpenBLAS may have them all again */
	dmf_team_stop(t->team);
	t->team = NULL;
	dmf_blas_set_threads(cfg->threads);

	/* every entity here is a training entity: its branch factor is its anchor */
	res->user_anchors = dmf_alloc(sizeof(float) * nu * t->dim);
	res->item_anchors = dmf_alloc(sizeof(float) * ni * t->dim);
	memcpy(res->user_anchors, res->user_factors, sizeof(float) * nu * t->dim);
	memcpy(res->item_anchors, res->item_factors, sizeof(float) * ni * t->dim);
	{
		DmfFoldInSide sides[2];
		int			n_sides = 0;

		if (res->fold_choice.users)
			sides[n_sides++] = (DmfFoldInSide) {&t->xu, res->user_factors, res->item_anchors, NULL, false};
		if (res->fold_choice.items)
			sides[n_sides++] = (DmfFoldInSide) {&t->xi, res->item_factors, res->user_anchors, NULL, false};
		dmf_fold_in_sides(sides, n_sides, t->dim, cfg->fold_in_steps, cfg->fold_in_rate,
						  cfg->rating_min, cfg->rating_max, cfg->threads);
	}

	dmf_csr_free(&t->xu);
	dmf_csr_free(&t->xi);
	if (t->implicit)
		dmf_free(t->ones);
	res->seconds = dmf_now_seconds() - t->t_start;
	res->finish_seconds = dmf_now_seconds() - t_finish;
}

void
dmf_train_model(const DmfTrainConfig *cfg, const DmfTrainSet *data,
				DmfTrainResult *res)
{
	Training	t;

	training_init(&t, cfg, data, res);
	for (int epoch = 1, phase_epoch = 1;; epoch++, phase_epoch++)
	{
		DmfEpochStats *st = &res->history[epoch - 1];
		NextStep	next;

		train_epoch(&t, epoch, st);
		t.epochs_seconds += st->seconds;
		keep_if_best(&t, st);
		if (cfg->on_epoch)
			cfg->on_epoch(cfg->on_epoch_arg, st);
		next = next_epoch(&t, phase_epoch);
		if (next == STOP)
			break;
		if (out_of_time(&t, epoch))
		{
			/* DMF-D out of time before its quantizer: the continuous model, rounded */
			if (cfg->discrete && !t.quantizing)
				start_quantizer_phase(&t);
			res->stop_reason = DMF_STOP_TIME_LIMIT;
			break;
		}
		if (next == NEXT_PHASE)
			phase_epoch = 0;
	}
	training_finish(&t);
}
