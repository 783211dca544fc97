/*
 * training.h
 *	  The state of one training, shared by train.c (the state machine of
 *	  epochs) and train_block.c (one minibatch).  Private to the two.
 */
#ifndef DMF_TRAINING_H
#define DMF_TRAINING_H

#include <stdbool.h>
#include <stdint.h>

#include "adam.h"
#include "block_sides.h"
#include "helper_thread.h"
#include "network.h"
#include "quantizer.h"
#include "rng.h"
#include "sparse.h"
#include "train.h"

/* A pair's share of the gradients: d loss / d cos and the terms of d cos. */
typedef struct DmfPairGradient
{
	float		g;				/* d loss / d cos */
	float		nn;				/* |u| |v| */
	float		u_self;			/* g cos / |u|^2 */
	float		v_self;			/* g cos / |v|^2 */
} DmfPairGradient;

/* Groups of each side in the alternating training: a row hides one tenth of its inputs. */
#define DMF_ALT_GROUPS 10
/* Rows of the fixed side's factors computed at once. */
#define DMF_ALT_FROZEN_ROWS 1024

struct AlternatingTraining;

/* Everything a training holds between its steps. */
typedef struct Training
{
	const DmfTrainConfig *cfg;
	const DmfTrainSet *data;
	DmfTrainResult *res;
	const DmfTriples *validation;	/* &data->validation, or implicit_validation */
	int32_t		nu;
	int32_t		ni;
	int			dim;
	double		t_start;
	DmfRng		rng;

	/* inputs while training: the training ratings only */
	DmfCsr		xu;
	DmfCsr		xi;
	int64_t    *pos_u;			/* each training rating's entry in xu, xi */
	int64_t    *pos_i;
	uint8_t    *skip_u;			/* inputs hidden in this block */
	uint8_t    *skip_i;

	/* the branches, their optimizers and the best weights so far */
	DmfAdam		ua;
	DmfAdam		ia;
	float	   *best_u;
	float	   *best_i;
	DmfBranchWork uw;			/* a block's passes */
	DmfBranchWork iw;
	SideTask	ut;
	SideTask	it;
	DmfTeam    *team;			/* cfg->threads threads; NULL with one */
	DmfBranchWork *fw_u;		/* factors of every row: a work per thread of the team */
	DmfBranchWork *fw_i;
	int32_t    *identity_users;
	int32_t    *identity_items;

	/* the alternating training's state (train_alternating.c); NULL with blocks */
	bool		alt_schedule;
	struct AlternatingTraining *alt;

	/* the block grid: gu x gi groups, reshuffled every epoch (also the alternating groups) */
	int			gu;
	int			gi;
	int			n_blocks;
	int32_t    *user_perm;
	int32_t    *item_perm;
	int32_t    *user_group;
	int32_t    *item_group;
	int64_t    *block_start;	/* ratings of block b: order[start[b] .. start[b+1]) */
	int64_t    *block_fill;
	int32_t    *block_order;
	int64_t    *order;

	/* one block: its users and items, pairs, targets and gradients */
	int32_t    *user_local;		/* entity -> row in the block, or -1 */
	int32_t    *item_local;
	int32_t    *block_users;
	int32_t    *block_items;
	int32_t    *pair_u;
	int32_t    *pair_i;
	float	   *target;			/* on the cosine's [-1, 1] */
	float	   *dU;
	float	   *dV;
	float	   *unorm;
	float	   *vnorm;
	DmfPairGradient *pair_grad; /* a block's pairs, grown to the largest block */
	size_t		pair_grad_cap;
	double	   *pair_se;		/* the loss of each task of pairs (train_block.c) */
	int32_t    *drawn;			/* implicit: a block's drawn negatives, grown likewise */
	size_t		drawn_cap;

	/* implicit feedback (implicit.h) */
	bool		implicit;
	float	   *weight;			/* each training pair's weight, mean 1 */
	float	   *pair_weight;	/* a block's pairs: positives' weights, 1 for negatives */
	float	   *ones;			/* input values */
	DmfTriples	implicit_validation;	/* held-out positives and sampled negatives */
	DmfCsr		positives;		/* every known interaction: not a negative */

	/* the schedule */
	double		lr;
	long		step;			/* Adam steps so far */
	int			since_best;		/* epochs since the best validation RMSE */
	int			drops_done;		/* plateau cuts of the learning rate */
	double		epochs_seconds; /* all epochs so far, for the time budget */
	double		factors_seconds;	/* the last pass over every row's factors */

	/* DMF-D's second phase: training through the smooth quantizer */
	bool		quantizing;
	double		lambda;
	DmfQuantizer quant;
	double	   *bounds;
	double	   *best_bounds;
	double	   *uniform;
	double	   *bgrad;
	double	   *bm;
	double	   *bv;
} Training;

/*
 * One minibatch: block blk's users and items forward, the loss, backward
 * and one Adam step per branch.  Returns the block's sum of squared errors
 * (rating scale); *n_pairs gets its count of pairs.
 */
double		dmf_train_block(Training *t, int blk, int64_t *n_pairs);

/*
 * The alternating training (train_alternating.c): its buffers, for the
 * groups t->gu and t->gi; one epoch, both phases, over the groups the
 * caller shuffled (returns the sum of squared errors, *n_pairs its pairs:
 * each rating twice); and the end.
 */
void		dmf_alternating_init(Training *t);
double		dmf_alternating_epoch(Training *t, int64_t *n_pairs);
void		dmf_alternating_free(Training *t);

#endif
