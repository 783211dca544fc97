/*
 * block_sides.c
 *	  The two sides of a training block (see block_sides.h).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "adam.h"
#include "block_sides.h"

#define COSINE_EPS 1e-8f

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

void
dmf_clear_marks(const DmfCsr *x, const int32_t *rows, int nb, uint8_t *skip)
{
	for (int r = 0; r < nb; r++)
		memset(skip + x->rowptr[rows[r]], 0,
			   x->rowptr[rows[r] + 1] - x->rowptr[rows[r]]);
}

void
dmf_side_task_init(SideTask *t, const DmfTrainConfig *cfg, DmfBranch *branch,
			   DmfBranchWork *work, DmfAdam *adam, const DmfCsr *x, uint8_t *skip,
			   float *norm, DmfRng *seeder)
{
	memset(t, 0, sizeof(*t));
	t->branch = branch;
	t->work = work;
	t->adam = adam;
	t->team = work->team;
	t->x = x;
	t->skip = skip;
	t->norm = norm;
	t->input_dropout = cfg->input_dropout;
	t->dropout = (float) cfg->dropout;
	t->l2 = cfg->l2;
	dmf_rng_seed(&t->rng, dmf_rng_next(seeder));
}

void
dmf_side_forward(SideTask *t)
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

void
dmf_side_backward(SideTask *t)
{
	dmf_branch_backward(t->branch, t->work, t->x, t->rows, t->nb, t->skip,
						t->dout, t->adam->grad);
	dmf_adam_step_team(t->branch, t->adam, t->lr, t->l2, t->step, t->team);
}
