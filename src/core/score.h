/*
 * score.h
 *	  Predictions from factors: the cosine of a user's and an item's factor
 *	  on the rating scale, and factors of rows through a branch.
 */
#ifndef DMF_SCORE_H
#define DMF_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_format.h"

/* A zero factor stands for "no factor" (an entity without ratings). */
bool		dmf_factor_is_zero(const float *f, int dim);

/* Whether all of v[0..n) are finite numbers. */
bool		dmf_all_finite(const float *v, size_t n);

/* Cosine of two factors in double, or false if either is zero (no factor). */
bool		dmf_factor_cosine(const float *u, const float *v, int dim, double *cosine);

/* Prediction on the rating scale from two factors; false if either is zero. */
bool		dmf_score_factors(const DmfModel *m, const float *u, const float *v,
							  double *rating);

/* The prediction for two ids; false if the model has no factor for either. */
bool		dmf_predict_ids(const DmfModel *m, int64_t user_id, int64_t item_id,
							double *rating);

/*
 * Factors of every row of x (inputs over the other side's training
 * entities) through a branch: unit length, or zero for an empty row.
 */
void		dmf_branch_factors_of_rows(const DmfBranch *b, const DmfCsr *x, float *out);

/* The side (users or items) of a model, and the branch that maps its rows. */
static inline const DmfSide *
dmf_model_side(const DmfModel *m, bool user_side)
{
	return user_side ? &m->users : &m->items;
}

static inline const DmfBranch *
dmf_model_branch(const DmfModel *m, bool user_side)
{
	return user_side ? &m->user_branch : &m->item_branch;
}

#endif
