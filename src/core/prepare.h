/*
 * prepare.h
 *	  From the rows of a ratings table to a training set: dense indices for
 *	  ids, the held-out rows, and the branches' input matrices (where
 *	  duplicate pairs are found).  (The rating scale is in encoding.h, the
 *	  levels in levels.h.)
 */
#ifndef DMF_PREPARE_H
#define DMF_PREPARE_H

#include <stdint.h>

#include "encoding.h"
#include "train.h"

/* The sorted distinct values of ids[0..n) in *out (allocated); their count. */
int64_t		dmf_sorted_distinct(const int64_t *ids, int64_t n, int64_t **out);

/* Position of id in sorted[0..n), or -1. */
int32_t		dmf_find_id(const int64_t *sorted, int32_t n, int64_t id);

/* out[k] = position of raw[k] in sorted[0..n_sorted), or -1. */
void		dmf_map_ids(const int64_t *raw, int64_t n, const int64_t *sorted,
						int32_t n_sorted, int32_t *out);

/*
 * The training rows in (user, item) order, whatever the order the table was
 * read in (rank[k] is row k's place in that order): the same rows give the
 * same model after a VACUUM FULL, a dump and restore or a parallel CREATE
 * TABLE AS.  A row is held out when a hash of the seed and its two ids falls
 * below fraction (0: none); held-out rows go to the end of the same arrays.
 * user_id/item_id are the table's ids, u/i their dense positions, ratings
 * on the table's scale (entering on the working scale).
 */
void		dmf_split_holdout(int64_t n, const int64_t *user_id, const int64_t *item_id,
							  const int32_t *u, const int32_t *i, const double *ratings,
							  const DmfRatingScale *scale, const int64_t *rank,
							  uint64_t seed, double fraction,
							  DmfTriples *train, DmfTriples *held);

/*
 * Builds the input matrices of both branches from triples (the user rows
 * over n_items columns, the item rows over n_users columns), with encoded
 * inputs.  Returns the number of duplicate pairs (see dmf_csr_build).
 * user_pos/item_pos (may be NULL) receive each triple's entry in either
 * matrix, parts numbered one after the other.
 */
int64_t		dmf_build_inputs(const DmfTriples *const *parts, int n_parts,
							 int32_t n_users, int32_t n_items, int encoding,
							 double rating_min, double rating_max,
							 DmfCsr *user_rows, DmfCsr *item_rows,
							 int64_t *dup_index,
							 int64_t *user_pos, int64_t *item_pos);

/*
 * Implicit feedback: the rows in (user, item) order with each pair once,
 * its weight the sum of its rows' (a pair interacted with three times
 * weighs 3).  Returns the count of distinct pairs, which stay at the front
 * of the arrays.
 */
int64_t		dmf_merge_pairs(int64_t n, int32_t n_users, int32_t n_items,
							int64_t *user_id, int64_t *item_id, int32_t *u,
							int32_t *i, double *w);

#endif
