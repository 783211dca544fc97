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

#include "sparse.h"

/*
 * Refines factors[r] (unit length, or zero = no factor, left alone) of
 * every row r of x, whose entries are raw ratings of the other side's
 * training entities by position; anchors is n_positions x dim.
 */
void		dmf_fold_in(const DmfCsr *x, float *factors, const float *anchors,
						int dim, int steps, double rate,
						double rating_min, double rating_max);

#endif
