/*
 * fold_choice.h
 *	  Which of the entities a training saw get fold-in, chosen on validation.
 *
 * A new row's branch factor is an amortised guess, and fold-in (fold_in.h)
 * improves it a great deal.  A training row's branch factor was itself
 * fitted by the training, and fold-in may help it or overfit it: on
 * MovieLens-1M it helps users and hurts items (docs/bench/search.md).  So
 * at the end of a training, each side's fold-in of training entities is
 * kept only if it lowers the validation RMSE.  New entities (refresh,
 * aggregates) are always folded in.
 */
#ifndef DMF_FOLD_CHOICE_H
#define DMF_FOLD_CHOICE_H

#include <stdint.h>

#include "network.h"
#include "train.h"				/* DmfFoldChoice */

/*
 * Chooses, on data->validation, which sides' training entities to fold in,
 * from the branch factors (user_branch, item_branch: data->n_users and
 * n_items rows of cfg->dim) of the training inputs xu, xi, unless
 * cfg->fold_in_training fixes it.  Without validation ratings (or without
 * fold-in steps) both sides are folded in.
 * If predictions is not NULL it gets the validation predictions (rating
 * scale) of the chosen factors.
 */
void		dmf_choose_fold_in(const DmfTrainConfig *cfg, const DmfTrainSet *data,
							   const float *user_branch, const float *item_branch,
							   const DmfCsr *xu, const DmfCsr *xi,
							   DmfFoldChoice *choice, double *predictions);

#endif
