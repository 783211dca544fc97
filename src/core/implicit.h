/*
 * implicit.h
 *	  Implicit feedback: interactions instead of ratings (Xue et al. 2017,
 *	  "Deep Matrix Factorization Models for Recommender Systems").
 *
 * A pair the data holds is a positive, with a weight; the pairs it lacks
 * are unknown, and a training samples "negatives" of them per positive.
 * The network is unchanged: a row's inputs are 1 per interaction, and the
 * score dmf_implicit_score(cos) in (0, 1) is trained by the log loss to be
 * the probability that a pair is a positive rather than a sampled negative.
 */
#ifndef DMF_IMPLICIT_H
#define DMF_IMPLICIT_H

#include <math.h>
#include <stdint.h>

#include "rng.h"
#include "sparse.h"
#include "train.h"

/*
 * The score of a pair is sigmoid(SLOPE (cos - MIDPOINT)): near 0 for
 * factors at right angles, as most pairs in many dimensions are, and near
 * 1 for factors that point the same way.  (The paper of Xue et al. uses
 * max(cos, 1e-6), whose gradient vanishes for positives below 0; this one
 * is smooth, and its log loss has a gradient of at most SLOPE.)  Ranking
 * by it is ranking by the cosine.
 */
#define DMF_IMPLICIT_SLOPE 10.0
#define DMF_IMPLICIT_MIDPOINT 0.5

static inline double
dmf_implicit_score(double cosine)
{
	return 1.0 / (1.0 + exp(-DMF_IMPLICIT_SLOPE * (cosine - DMF_IMPLICIT_MIDPOINT)));
}

/*
 * Weights scaled to mean 1 (a pair of twice the weight counts twice in the
 * loss; the unit of the weights does not matter), into out[0..t->n).
 */
void		dmf_implicit_weights(const DmfTriples *t, float *out);

/*
 * The same pairs with every value 1 (the interactions as inputs); ones
 * must hold t->n values of 1.
 */
DmfTriples	dmf_implicit_ones(const DmfTriples *t, float *ones);

/*
 * An item of pool[0..pool_n) drawn uniformly that user u has not
 * interacted with in positives (rows ascending), or -1 after a few draws
 * that all hit positives (a user who has nearly every item).
 */
int32_t		dmf_sample_negative(DmfRng *rng, const DmfCsr *positives, int32_t u,
								const int32_t *pool, int32_t pool_step,
								int32_t pool_n);

/*
 * Every interaction the training knows, of all parts (training, held-out
 * and validation pairs), as users x items rows: what a sampled negative
 * must not be.  Allocates.
 */
void		dmf_implicit_positives(const DmfTriples *const *parts, int n_parts,
								   int32_t n_users, int32_t n_items, DmfCsr *out);

/*
 * Validation pairs of an implicit training: each held-out interaction
 * with target 1, and per interaction `negatives` items its user has no
 * interaction with in positives (targets 0), drawn with a fixed seed so
 * every epoch is measured on the same pairs.  Allocates.
 */
void		dmf_implicit_validation(const DmfTriples *held, const DmfCsr *positives,
									int32_t n_items, int negatives, uint64_t seed,
									DmfTriples *out);

/*
 * The log loss of a pair (positive: target > 0) at cosine c, weighted by
 * w; *dloss_dcos gets its derivative.  Returns the squared error of the
 * score against the target (0 or 1), what an epoch reports.
 */
double		dmf_implicit_loss(double c, int positive, double w, double *dloss_dcos);

#endif
