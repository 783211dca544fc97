/*
 * fold_in.h
 *	  Fitting a factor to its own row, after the branch has computed it.
 *
 * A branch maps a rating row to a factor in one forward pass; the pass is
 * an amortised guess, fitted to the training rows.  Fold-in refines each
 * factor by a few projected gradient steps on the unit sphere so that its
 * cosines with the factors of the entities the row rated ("anchors", the
 * branch factors of the other side's training entities) match the row's
 * ratings.  No weight changes: it needs the row, the anchors and nothing
 * else, so it applies alike to training rows, refreshed rows and rows
 * aggregated inside a query.
 */
#ifndef DMF_FOLD_IN_H
#define DMF_FOLD_IN_H

#include <stdbool.h>
#include <stdint.h>

#include "sparse.h"

/* One side of a model to fold in: its rows, factors and the anchors. */
typedef struct DmfFoldInSide
{
	const DmfCsr *x;			/* raw ratings of the other side's training
								 * entities, by position */
	float	   *factors;		/* x->nrows x dim */
	const float *anchors;		/* n_positions x dim */
	/* with skip_trained, rows r with input[r] >= 0 (trained on) are left alone */
	const int32_t *input;
	bool		skip_trained;
} DmfFoldInSide;

/*
 * Refines factors[r] (unit length, or zero = no factor, left alone) of
 * every row r of each side.  With threads >= 2 a helper thread shares the
 * rows; the result does not depend on the number of threads.  A cancel is
 * processed within about a millisecond of work, even inside a row: call it
 * on the backend's thread.
 */
void		dmf_fold_in_sides(const DmfFoldInSide *sides, int n_sides, int dim,
							  int steps, double rate, double rating_min,
							  double rating_max, int threads);

/* One side, in this thread. */
void		dmf_fold_in(const DmfCsr *x, float *factors, const float *anchors,
						int dim, int steps, double rate,
						double rating_min, double rating_max);

#endif
