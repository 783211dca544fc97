/*
 * train_alternating.c
 *	  An epoch of the alternating training: each branch in turn learns
 *	  against the other's fixed factors.
 *
 * The block training (train_block.c) encodes each row once per block of
 * the other side: ten times an epoch on a 10 x 10 grid.  Here an epoch has
 * two phases.  In the user phase the item branch is fixed: the items'
 * factors are computed once per group of users, and the user branch learns
 * over minibatches of those users, each row encoded once, forward and
 * back; the item phase is the same the other way round.
 *
 * Targets stay out of the inputs, as in a block.  Each side is cut into
 * groups; a user predicts its ratings of item group g from its row without
 * group g (a virtual row, grouped.h), and the fixed item factors that user
 * group f learns against leave out group f's ratings.  A pair (u, i) sees
 * what it would see in block (f, g).
 *
 * Each minibatch's first layer touches only the inputs its rows hold, and
 * takes a lazy Adam step over them (adam.h), so a step costs what its
 * rows cost and the number of steps per epoch grows with the data: a large
 * table is not stuck at a hundred steps an epoch.
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "adam.h"
#include "dmfd.h"
#include "encoding.h"
#include "grouped.h"
#include "quantizer.h"
#include "training.h"

#define COSINE_EPS 1e-8f

/* Virtual rows of a task of the forward pass: whole rows, cut after this many entries. */
#define TASK_ENTRIES 256
/* Rows of a task of the fixed side's sums, and of the regrouping. */
#define ROWS_TASK 64
/* Virtual rows of a task of the loss. */
#define LOSS_TASK_ROWS 16

/* One side: its branch, its rows grouped by the other side's groups, its buffers. */
typedef struct AltSide
{
	DmfBranch  *branch;
	DmfAdam    *adam;
	const DmfCsr *x;
	DmfGroupedCsr gx;
	uint8_t    *skip;			/* input dropout over gx's entries; NULL when off */
	const int32_t *group;		/* this side's group of each row */
	const int32_t *perm;		/* this side's shuffled rows: group k % n_groups at k */
	int			n_groups;		/* groups of this side (the other side's gx) */
	DmfBranchWork active;		/* a minibatch's passes */
	DmfBranchWork frozen;		/* the fixed factors' passes */
	DmfVirtualRows vr;
	float	   *scratch;		/* per worker of the team */
	DmfRng		rng;			/* input dropout, and dropout's seeds, in order */
	long		steps;
	int32_t		group_order[DMF_ALT_GROUPS];	/* this epoch's order of the groups */
} AltSide;

struct AlternatingTraining
{
	AltSide		side[2];		/* users, items */
	int			batch;			/* pairs per minibatch, at least */
	float	   *totals;			/* the fixed side's rows' sums */
	float	   *codes;			/* the fixed side's factors, hiding the current group */
	float	   *dU;				/* a minibatch's gradient, nv x dim */
	double	   *task_se;
};

typedef struct AltRun
{
	Training   *t;
	AltSide    *a;				/* the side that learns */
	AltSide    *b;				/* the fixed side */
	int			dim;
	int64_t		n_pairs;		/* a minibatch's */
} AltRun;

static int
min_int(int a, int b)
{
	return a < b ? a : b;
}

void
dmf_alternating_init(Training *t)
{
	const DmfTrainConfig *cfg = t->cfg;
	struct AlternatingTraining *alt = dmf_alloc0(sizeof(*alt));
	int			n_workers = dmf_team_size(t->team);
	int			groups[2] = {min_int(DMF_ALT_GROUPS, t->nu), min_int(DMF_ALT_GROUPS, t->ni)};
	int			most = t->nu > t->ni ? t->nu : t->ni;
	int			max_vr;

	alt->batch = cfg->batch_size > 0 ? cfg->batch_size : 1;
	/* a minibatch closes once it has batch pairs: its last row adds at most a virtual row per group */
	max_vr = alt->batch + DMF_ALT_GROUPS;
	if (max_vr < DMF_ALT_FROZEN_ROWS)
		max_vr = DMF_ALT_FROZEN_ROWS;
	for (int s = 0; s < 2; s++)
	{
		AltSide    *a = &alt->side[s];
		int			width;

		a->branch = s == 0 ? &t->res->user_branch : &t->res->item_branch;
		a->adam = s == 0 ? &t->ua : &t->ia;
		a->x = s == 0 ? &t->xu : &t->xi;
		a->group = s == 0 ? t->user_group : t->item_group;
		a->perm = s == 0 ? t->user_perm : t->item_perm;
		a->n_groups = groups[s];
		width = a->branch->sizes[1];
		dmf_grouped_alloc(&a->gx, a->x, groups[1 - s], &a->branch->coding);
		if (cfg->input_dropout > 0.0)
			a->skip = dmf_alloc0((size_t) a->x->nnz + 1);
		dmf_branch_work_alloc(&a->active, a->branch, max_vr, (float) cfg->dropout > 0.0f);
		dmf_branch_work_tasks(&a->active, t->team);
		dmf_branch_work_alloc(&a->frozen, a->branch, DMF_ALT_FROZEN_ROWS, (float) cfg->dropout > 0.0f);
		dmf_branch_work_tasks(&a->frozen, t->team);
		a->vr.gx = &a->gx;
		a->vr.row = dmf_alloc(sizeof(int32_t) * (size_t) max_vr);
		a->vr.group = dmf_alloc(sizeof(int32_t) * (size_t) max_vr);
		a->vr.task_start = dmf_alloc(sizeof(int32_t) * ((size_t) max_vr + 1));
		a->vr.dsum = dmf_alloc(sizeof(float) * (size_t) max_vr * 2 * width);
		a->vr.runs = dmf_alloc(sizeof(int64_t) * (size_t) max_vr * (DMF_GROUPED_TASKS + 1));
		a->scratch = dmf_alloc(sizeof(float) * DMF_GROUPED_SCRATCH(groups[1 - s], width) * n_workers);
		a->vr.scratch = a->scratch;
		a->vr.touched = dmf_alloc0((size_t) a->branch->sizes[0] + 1);
		dmf_rng_seed(&a->rng, dmf_rng_next(&t->rng));
	}
	{
		int			w = alt->side[0].branch->sizes[1] > alt->side[1].branch->sizes[1] ?
			alt->side[0].branch->sizes[1] : alt->side[1].branch->sizes[1];

		alt->totals = dmf_alloc(sizeof(float) * (size_t) most * DMF_TOTALS_STRIDE(w));
	}
	alt->codes = dmf_alloc(sizeof(float) * (size_t) most * t->dim);
	alt->dU = dmf_alloc(sizeof(float) * (size_t) max_vr * t->dim);
	alt->task_se = dmf_alloc(sizeof(double) * ((size_t) max_vr / LOSS_TASK_ROWS + 1));
	t->alt = alt;
}

void
dmf_alternating_free(Training *t)
{
	struct AlternatingTraining *alt = t->alt;

	if (!alt)
		return;
	for (int s = 0; s < 2; s++)
	{
		AltSide    *a = &alt->side[s];

		dmf_grouped_free(&a->gx);
		if (a->skip)
			dmf_free(a->skip);
		dmf_branch_work_free(&a->active, a->branch);
		dmf_branch_work_free(&a->frozen, a->branch);
		dmf_free(a->vr.row);
		dmf_free(a->vr.group);
		dmf_free(a->vr.task_start);
		dmf_free(a->vr.dsum);
		dmf_free(a->vr.runs);
		dmf_free(a->scratch);
		dmf_free(a->vr.touched);
	}
	dmf_free(alt->totals);
	dmf_free(alt->codes);
	dmf_free(alt->dU);
	dmf_free(alt->task_se);
	dmf_free(alt);
	t->alt = NULL;
}

/*
 * Row passes of an epoch (regrouping, the fixed side's sums) run in slices
 * of SLICE_ROWS rows, in tasks of ROWS_TASK rows, with a check for a
 * cancel between slices.
 */
#define SLICE_ROWS (64 * ROWS_TASK)

typedef struct RowPass
{
	const AltRun *run;
	int32_t		r0;				/* the slice */
	int32_t		r1;
	void		(*rows) (const AltRun *run, int32_t r0, int32_t r1);
} RowPass;

static void
row_pass_task(void *arg, int task, int worker)
{
	const RowPass *p = (const RowPass *) arg;
	int32_t		r0 = p->r0 + task * ROWS_TASK;
	int32_t		r1 = p->r1 - r0 < ROWS_TASK ? p->r1 : r0 + ROWS_TASK;

	p->rows(p->run, r0, r1);
}

static void
row_pass(Training *t, const AltRun *run, int32_t n_rows,
		 void (*rows) (const AltRun *run, int32_t r0, int32_t r1))
{
	for (int32_t r0 = 0; r0 < n_rows; r0 += SLICE_ROWS)
	{
		RowPass		p = {run, r0, n_rows - r0 < SLICE_ROWS ? n_rows : r0 + SLICE_ROWS, rows};

		dmf_check_interrupts();
		dmf_team_run(t->team, row_pass_task, &p, (p.r1 - r0 + ROWS_TASK - 1) / ROWS_TASK);
	}
}

/* Side a's rows regrouped by side b's groups. */
static void
regroup_rows(const AltRun *run, int32_t r0, int32_t r1)
{
	dmf_grouped_fill(&run->a->gx, run->a->x, run->b->group, r0, r1);
}

/* The fixed side's rows' sums with its current weights. */
static void
totals_rows(const AltRun *run, int32_t r0, int32_t r1)
{
	AltSide    *b = run->b;

	dmf_grouped_totals(&b->gx, r0, r1, b->branch->params + b->branch->w_off[0],
					   b->branch->sizes[1], run->t->alt->totals);
}

/*
 * The fixed side b's factors without the learning side's group f, every row, into
 * alt->codes: unit length, zero for a row left without input.  They go
 * through dropout as in training: targets as noisy as the blocks' pairs
 * see them (0.0004 better on validation than clean ones, docs/bench/search.md).
 */
static void
frozen_codes(Training *t, AltSide *b, int f)
{
	struct AlternatingTraining *alt = t->alt;
	DmfVirtualRows *vr = &b->vr;
	int			dim = t->dim;

	vr->totals = alt->totals;
	b->frozen.vrows = vr;
	for (int32_t r0 = 0; r0 < b->x->nrows; r0 += DMF_ALT_FROZEN_ROWS)
	{
		int			n = b->x->nrows - r0 < DMF_ALT_FROZEN_ROWS ? b->x->nrows - r0 : DMF_ALT_FROZEN_ROWS;
		const float *out;
		float	   *codes = alt->codes + (size_t) r0 * dim;

		dmf_check_interrupts();
		vr->nv = n;
		vr->n_tasks = 0;
		for (int k = 0; k < n; k++)
		{
			vr->row[k] = r0 + k;
			vr->group[k] = f;
			/* one task per 8 rows: their sums are cached, only group f is summed */
			if (k % 8 == 0)
				vr->task_start[vr->n_tasks++] = k;
		}
		vr->task_start[vr->n_tasks] = n;
		out = dmf_branch_forward(b->branch, &b->frozen, NULL, NULL, n, NULL, (float) t->cfg->dropout,
								 &b->rng);
		memcpy(codes, out, sizeof(float) * (size_t) n * dim);
		for (int k = 0; k < n; k++)
			if (b->frozen.scale[k] == 0.0f)
				memset(codes + (size_t) k * dim, 0, sizeof(float) * dim);
		dmf_normalize_rows(codes, n, dim);
	}
	b->frozen.vrows = NULL;
	vr->totals = NULL;
}

/*
 * The virtual rows of a's rows perm[from], perm[from + step], ... until at
 * least batch pairs; returns the index after the last row taken, and the
 * minibatch's pairs (its rows' entries) in *n_pairs.
 */
static int32_t
minibatch_rows(struct AlternatingTraining *alt, AltSide *a, int32_t from, int32_t step,
			   int64_t *n_pairs)
{
	DmfVirtualRows *vr = &a->vr;
	int			G = a->gx.n_groups;
	int64_t		pairs = 0,
				since_cut = 0;
	int32_t		k = from;

	vr->nv = 0;
	vr->n_tasks = 0;
	vr->totals = NULL;
	while (k < a->x->nrows && pairs < alt->batch)
	{
		int32_t		r = a->perm[k];
		const int64_t *seg = a->gx.seg + (size_t) r * (G + 1);

		k += step;
		if (seg[0] == seg[G])
			continue;
		if (since_cut == 0)
			vr->task_start[vr->n_tasks++] = vr->nv;
		for (int g = 0; g < G; g++)
			if (seg[g] < seg[g + 1])
			{
				vr->row[vr->nv] = r;
				vr->group[vr->nv] = g;
				vr->nv++;
			}
		pairs += seg[G] - seg[0];
		since_cut += seg[G] - seg[0];
		if (since_cut >= TASK_ENTRIES)
			since_cut = 0;
	}
	vr->task_start[vr->n_tasks] = vr->nv;
	*n_pairs = pairs;
	return k;
}

/*
 * A virtual row's pairs (its hidden group: columns col, ratings val) with
 * the squared error: into *se the sum of (pred - target)^2, into du the
 * terms of v / |u|, and into *self the sum of g pred (the terms of u).
 */
DMF_INLINE void
row_pairs_impl(const float *u, float *restrict du, int dim, float norm,
			   const int32_t *col, const float *val, int64_t n, const float *codes,
			   float t_scale, float t_offset, float g_scale, double *se, float *self)
{
	double		sum = 0.0;
	float		gp_pred = 0.0f;

	for (int64_t k = 0; k < n; k++)
	{
		const float *code = codes + (size_t) col[k] * dim;
		float		pred = dmf_dot(u, code, dim) / norm;
		float		err = pred - (val[k] * t_scale + t_offset);
		float		coef = g_scale * err / norm;

		sum += (double) err * err;
		for (int j = 0; j < dim; j++)
			du[j] += coef * code[j];
		gp_pred += g_scale * err * pred;
	}
	*se = sum;
	*self = gp_pred;
}

DMF_KERNEL(row_pairs,
		   (const float *u, float *restrict du, int dim, float norm,
			const int32_t *col, const float *val, int64_t n, const float *codes,
			float t_scale, float t_offset, float g_scale, double *se, float *self),
		   (u, du, dim, norm, col, val, n, codes, t_scale, t_offset, g_scale, se, self))

/*
 * The rating of an entry of a grouped CSR is val * r_scale + r_offset:
 * val itself, or the offset input (grouped.h) decoded.
 */
static void
rating_of_val(const DmfGroupedCsr *gx, double *r_scale, double *r_offset)
{
	float		a,
				c;

	*r_scale = 1.0;
	*r_offset = 0.0;
	if (!gx->encoded)
		return;
	dmf_input_coefficients(gx->coding.encoding, gx->coding.rating_min, gx->coding.rating_max,
						   0.0, &a, &c);
	*r_scale = 1.0 / a;
	*r_offset = -c / (double) a;
}

/*
 * row_pairs through DMF-D's smooth quantizer G: the error is G(x) - r on
 * the rating scale (*se), d loss / d cos = 2 err G'(x) half, and the
 * boundaries' gradients go into t->bgrad, one sum in pair order.
 */
static void
row_pairs_quantized(Training *t, const float *u, float *du, int dim, float norm,
					const int32_t *col, const float *val, int64_t n, const float *codes,
					double r_scale, double r_offset, double inv_n, double *se, float *self)
{
	const DmfTrainConfig *cfg = t->cfg;
	double		half = 0.5 * (cfg->rating_max - cfg->rating_min);
	double		mid = 0.5 * (cfg->rating_min + cfg->rating_max);

	*se = 0.0;
	*self = 0.0f;
	for (int64_t k = 0; k < n; k++)
	{
		const float *code = codes + (size_t) col[k] * dim;
		float		pred = dmf_dot(u, code, dim) / norm;
		double		dgdx,
					dgdb;
		int			bi;
		double		gx = dmf_quantize_smooth(&t->quant, mid + half * pred, &dgdx, &dgdb, &bi);
		double		e = gx - (val[k] * r_scale + r_offset);
		float		gp = (float) (2.0 * e * inv_n * dgdx * half);

		*se += e * e;
		t->bgrad[bi] += 2.0 * e * inv_n * dgdb;
		for (int j = 0; j < dim; j++)
			du[j] += gp / norm * code[j];
		*self += gp * pred;
	}
}

/*
 * The loss of a task's virtual rows against the fixed factors, and its
 * gradient with respect to their outputs (into alt->dU); the task's sum
 * of squared errors on the rating scale into alt->task_se.
 *
 * pred = u.v / |u| (v of unit length); d pred / d u = v / |u| - pred u / |u|^2
 */
static void
loss_task(void *arg, int task, int worker)
{
	const AltRun *run = (const AltRun *) arg;
	Training   *t = run->t;
	struct AlternatingTraining *alt = t->alt;
	AltSide    *a = run->a;
	const DmfVirtualRows *vr = &a->vr;
	const DmfTrainConfig *cfg = t->cfg;
	int			dim = run->dim;
	int			G = a->gx.n_groups;
	int			v0 = task * LOSS_TASK_ROWS;
	int			v1 = vr->nv - v0 < LOSS_TASK_ROWS ? vr->nv : v0 + LOSS_TASK_ROWS;
	double		half = 0.5 * (cfg->rating_max - cfg->rating_min);
	double		mid = 0.5 * (cfg->rating_min + cfg->rating_max);
	double		inv_n = 1.0 / (double) run->n_pairs;
	double		se = 0.0,
				r_scale,
				r_offset;

	/* the target on the cosine's scale: (rating - mid) / half */
	rating_of_val(&a->gx, &r_scale, &r_offset);

	for (int v = v0; v < v1; v++)
	{
		const float *u = a->active.act[a->branch->n_layers - 1] + (size_t) v * dim;
		float	   *du = alt->dU + (size_t) v * dim;
		const int64_t *seg = a->gx.seg + (size_t) vr->row[v] * (G + 1);
		const int32_t *col = a->gx.x.col + seg[vr->group[v]];
		const float *val = a->gx.x.val + seg[vr->group[v]];
		int64_t		n = seg[vr->group[v] + 1] - seg[vr->group[v]];
		double		ss = 0.0,
					row_se;
		float		norm,
					self;

		for (int j = 0; j < dim; j++)
			ss += (double) u[j] * u[j];
		norm = (float) sqrt(ss) + COSINE_EPS;
		memset(du, 0, sizeof(float) * dim);
		if (t->quantizing)
			row_pairs_quantized(t, u, du, dim, norm, col, val, n, alt->codes, r_scale, r_offset,
								inv_n, &row_se, &self);
		else
		{
			/* on the cosine's scale: d loss / d cos = 2 (pred - target) / n */
			DMF_CALL(row_pairs, (u, du, dim, norm, col, val, n, alt->codes,
								 (float) (r_scale / half), (float) ((r_offset - mid) / half),
								 (float) (2.0 * inv_n), &row_se, &self));
			row_se *= half * half;
		}
		se += row_se;
		self /= norm * norm;
		for (int j = 0; j < dim; j++)
			du[j] -= self * u[j];
	}
	alt->task_se[task] = se;
}

/*
 * Input dropout: marks a random fraction of the entries of the minibatch's
 * rows as hidden (rate > 0), or clears the marks (rate 0).
 */
static void
drop_inputs(AltSide *a, double rate)
{
	const DmfVirtualRows *vr = &a->vr;

	for (int v = 0; v < vr->nv; v++)
	{
		int64_t		lo = a->x->rowptr[vr->row[v]],
					hi = a->x->rowptr[vr->row[v] + 1];

		if (v > 0 && vr->row[v] == vr->row[v - 1])
			continue;
		if (rate <= 0.0)
			memset(a->skip + lo, 0, hi - lo);
		else
			for (int64_t k = lo; k < hi; k++)
				a->skip[k] = dmf_rng_uniform(&a->rng) < rate;
	}
}

/* One minibatch of side a against b's fixed factors; returns its squared error. */
static double
minibatch_step(Training *t, AltSide *a, int64_t n_pairs)
{
	struct AlternatingTraining *alt = t->alt;
	AltRun		run = {t, a, NULL, t->dim, n_pairs};
	int			n_tasks = (a->vr.nv + LOSS_TASK_ROWS - 1) / LOSS_TASK_ROWS;
	double		se = 0.0;
	DmfAdamStep step;

	if (a->skip)
		drop_inputs(a, t->cfg->input_dropout);
	a->active.vrows = &a->vr;
	dmf_branch_forward(a->branch, &a->active, NULL, NULL, a->vr.nv, a->skip,
					   (float) t->cfg->dropout, &a->rng);
	/* DMF-D's boundary gradients are one sum, in order: those run on this thread */
	dmf_team_run(t->quantizing ? NULL : t->team, loss_task, &run, n_tasks);
	for (int k = 0; k < n_tasks; k++)
		se += alt->task_se[k];
	/* the first layer's rows take their step in the backward tasks that wrote their gradient */
	dmf_adam_begin(&step, a->branch, a->adam, t->lr, t->cfg->l2, ++a->steps);
	a->vr.adam = &step;
	dmf_branch_backward(a->branch, &a->active, NULL, NULL, a->vr.nv, a->skip, alt->dU,
						a->adam->grad);
	a->vr.adam = NULL;
	a->active.vrows = NULL;
	dmf_adam_step_past_first_layer(&step, t->team);
	if (t->quantizing)
		dmf_boundary_step(t->cfg, t->bounds, t->uniform, t->bgrad, t->bm, t->bv, t->lr,
						  ++t->step);
	if (a->skip)
		drop_inputs(a, 0.0);
	return se;
}

/* Side a learns against b, fixed, one group of a at a time; returns the squared error. */
static double
alternating_phase(Training *t, AltSide *a, AltSide *b, int64_t *n_pairs)
{
	struct AlternatingTraining *alt = t->alt;
	AltRun		run = {t, a, b, t->dim, 0};
	double		se = 0.0;

	row_pass(t, &run, b->x->nrows, totals_rows);
	for (int gk = 0; gk < a->n_groups; gk++)
	{
		int			f = a->group_order[gk];

		frozen_codes(t, b, f);
		/* a's rows of group f: perm[f], perm[f + n_groups], ... */
		for (int32_t k = f; k < a->x->nrows;)
		{
			int64_t		pairs;

			dmf_check_interrupts();
			k = minibatch_rows(alt, a, k, a->n_groups, &pairs);
			if (pairs == 0)
				continue;
			se += minibatch_step(t, a, pairs);
			*n_pairs += pairs;
		}
	}
	return se;
}

double
dmf_alternating_epoch(Training *t, int64_t *n_pairs)
{
	struct AlternatingTraining *alt = t->alt;
	double		se = 0.0;

	*n_pairs = 0;
	for (int s = 0; s < 2; s++)
	{
		AltSide    *a = &alt->side[s];
		AltRun		run = {t, a, &alt->side[1 - s], t->dim, 0};

		row_pass(t, &run, a->x->nrows, regroup_rows);
		for (int g = 0; g < a->n_groups; g++)
			a->group_order[g] = g;
		dmf_rng_shuffle(&t->rng, a->group_order, a->n_groups);
	}
	for (int s = 0; s < 2; s++)
		se += alternating_phase(t, &alt->side[s], &alt->side[1 - s], n_pairs);
	return se;
}
