/*
 * fold_choice.c
 *	  Which of the entities a training saw get fold-in (see fold_choice.h).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "encoding.h"
#include "fold_choice.h"
#include "fold_in.h"

/* Squared error of the validation ratings with user factors uf, item factors vf. */
static double
validation_se(const DmfTriples *val, const float *uf, const float *vf, int dim,
			  double rmin, double rmax, double *predictions)
{
	double		se = 0.0;

	for (int64_t k = 0; k < val->n; k++)
	{
		double		x = dmf_unscale_prediction(dmf_dot(uf + (size_t) val->user[k] * dim,
													   vf + (size_t) val->item[k] * dim, dim),
											   rmin, rmax);

		if (predictions)
			predictions[k] = x;
		se += (x - val->rating[k]) * (x - val->rating[k]);
		if ((k & 0xFFFF) == 0)
			dmf_check_interrupts();
	}
	return se;
}

/* The option's fixed choice, if it fixes one. */
static void
apply_option(const DmfTrainConfig *cfg, DmfFoldChoice *choice)
{
	int			c;

	if (cfg->fold_in_training == DMF_FOLD_TRAINING_AUTO)
		return;
	c = cfg->fold_in_training - DMF_FOLD_TRAINING_NONE;	/* users + 2 * items */
	choice->users = (c & 1) != 0;
	choice->items = (c & 2) != 0;
}

void
dmf_choose_fold_in(const DmfTrainConfig *cfg, const DmfTrainSet *data,
				   const float *user_branch, const float *item_branch,
				   const DmfCsr *xu, const DmfCsr *xi,
				   DmfFoldChoice *choice, double *predictions)
{
	int			dim = cfg->dim;
	size_t		nu = (size_t) data->n_users,
				ni = (size_t) data->n_items;
	const DmfTriples *val = &data->validation;
	const float *branch[2] = {user_branch, item_branch};
	float	   *folded[2];

	choice->users = choice->items = true;
	for (int c = 0; c < 4; c++)
		choice->validation_rmse[c] = NAN;
	if (val->n == 0 || (cfg->fold_in_steps <= 0 && predictions == NULL))
	{
		/* nothing to measure, or nothing to choose: fold-in changes nothing */
		apply_option(cfg, choice);
		return;
	}

	/* the branch factors are the anchors: fold-in fits against them */
	folded[0] = dmf_alloc(sizeof(float) * nu * dim);
	folded[1] = dmf_alloc(sizeof(float) * ni * dim);
	memcpy(folded[0], branch[0], sizeof(float) * nu * dim);
	memcpy(folded[1], branch[1], sizeof(float) * ni * dim);
	{
		DmfFoldInSide sides[2] = {{xu, folded[0], branch[1], NULL, false},
								  {xi, folded[1], branch[0], NULL, false}};

		dmf_fold_in_sides(sides, 2, dim, cfg->fold_in_steps, cfg->fold_in_rate,
						  cfg->rating_min, cfg->rating_max, cfg->threads);
	}

	if (cfg->fold_in_steps > 0)
	{
		/* c = users + 2 * items; on a tie, folding in (as before any choice) wins */
		double		best_se = INFINITY;
		int			best = 3;

		for (int c = 3; c >= 0; c--)
		{
			const float *uf = (c & 1) ? folded[0] : branch[0];
			const float *vf = (c & 2) ? folded[1] : branch[1];
			double		se = validation_se(val, uf, vf, dim, cfg->rating_min,
										   cfg->rating_max, NULL);

			choice->validation_rmse[c] = sqrt(se / (double) val->n);
			if (se < best_se)
			{
				best_se = se;
				best = c;
			}
		}
		choice->users = (best & 1) != 0;
		choice->items = (best & 2) != 0;
	}
	apply_option(cfg, choice);
	if (predictions)
		validation_se(val, choice->users ? folded[0] : branch[0],
					  choice->items ? folded[1] : branch[1], dim,
					  cfg->rating_min, cfg->rating_max, predictions);
	for (int s = 0; s < 2; s++)
		dmf_free(folded[s]);
}
