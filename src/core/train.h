/*
 * train.h
 *	  The training loop of DMF: minibatch Adam over blocks of the rating
 *	  matrix, early stopping on validation RMSE.  Plain C, no server types.
 */
#ifndef DMF_TRAIN_H
#define DMF_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "network.h"

/* Ratings as index triples; indices refer to the model's sorted id maps. */
typedef struct DmfTriples
{
	int64_t		n;
	int32_t    *user;
	int32_t    *item;
	float	   *rating;			/* on the rating scale */
} DmfTriples;

/*
 * What the ratings are (the option "feedback").  Implicit data has only
 * interactions: a pair present is a positive with a weight, the pairs a
 * training samples among the absent ones are negatives.
 */
typedef enum DmfFeedback
{
	DMF_FEEDBACK_EXPLICIT = 0,
	DMF_FEEDBACK_IMPLICIT
} DmfFeedback;

/* The most threads a training uses (the option "threads" and dmf.max_threads stop there). */
#define DMF_MAX_THREADS 64

typedef struct DmfEpochStats
{
	int			epoch;			/* 1-based */
	double		train_rmse;		/* rating scale, over the epoch's blocks */
	double		validation_rmse;	/* rating scale; NaN without validation */
	double		seconds;
	double		learning_rate;
	double		lambda;			/* DMF-D slope; 0 otherwise */
	double		budget_left;	/* seconds to the deadline at the epoch's end; NaN: none */
} DmfEpochStats;

/*
 * How an epoch goes through the ratings (the option "schedule"): blocks of
 * a user group x an item group, both branches learning together
 * (train_block.c), or the branches in turn against each other's fixed
 * factors, each row encoded once a phase (train_alternating.c).
 */
typedef enum DmfSchedule
{
	DMF_SCHEDULE_ALTERNATING = 0,
	DMF_SCHEDULE_BLOCKS = 1
} DmfSchedule;

/*
 * A warm start (dmf_train's init): a trained model's weights to start
 * from.  Its branches have the training's shape but for the first layer's
 * rows, which are mapped: the user branch's row of each item of this
 * training (-1: an item the model did not know, which keeps its fresh
 * weights), the item branch's row of each user.
 */
typedef struct DmfWarmStart
{
	const DmfBranch *user_branch;
	const DmfBranch *item_branch;
	const int32_t *user_branch_rows;	/* n_items entries */
	const int32_t *item_branch_rows;	/* n_users entries */
	const double *boundaries;	/* DMF-D: n_levels + 1 to start from, or NULL */
} DmfWarmStart;

typedef struct DmfTrainConfig
{
	int			n_user_hidden;
	int			user_hidden[DMF_MAX_LAYERS - 1];
	int			n_item_hidden;
	int			item_hidden[DMF_MAX_LAYERS - 1];
	int			dim;
	DmfActivation activation;
	int			epochs;
	int			schedule;		/* DmfSchedule */
	int			batch_size;		/* ratings per block on average, or per minibatch (> 0) */
	int			patience;
	double		learning_rate;
	double		learning_rate_decay;	/* multiplied in after each epoch */
	int			plateau_drops;	/* times the rate is cut when validation stalls */
	double		plateau_factor; /* the cut: lr *= plateau_factor */
	double		l2;
	double		dropout;		/* hidden units */
	double		input_dropout;	/* input ratings of a row */
	uint64_t	seed;
	double		rating_min;
	double		rating_max;
	int			threads;		/* threads of the training's team (helper_thread.h) */

	/*
	 * The time budget (option "time_limit"): dmf_now_seconds() by which the
	 * whole training, its finish included, should be done; 0: none.  No
	 * epoch starts that would not end, with the finish, by then; the first
	 * always runs.
	 */
	double		deadline;

	const DmfWarmStart *init;	/* NULL: fresh weights */
	int			fold_in_steps;	/* see fold_in.h */
	double		fold_in_rate;
	int			fold_in_training;	/* DmfFoldInTraining */
	int			input_encoding; /* DmfInputEncoding */
	int			row_scale;		/* DmfRowScale */

	/*
	 * Implicit feedback: triples hold weights (> 0) instead of ratings, the
	 * range is [0, 1], an interaction enters its rows as a rating of 1, and
	 * the loss is the log loss of the score (implicit.h) on positives and on
	 * "negatives" sampled absent pairs per positive.
	 */
	int			feedback;		/* DmfFeedback */
	int			negatives;

	/* DMF-D: train through the smooth quantizer (paper section 3) */
	bool		discrete;
	int			n_levels;		/* equally spaced levels, ascending */
	const double *levels;
	double		lambda_start;	/* sigmoid slope of the first epoch */
	double		lambda_growth;	/* multiplied in after each epoch */
	double		lambda_max;
	double		boundary_l2;	/* gamma2: pull towards uniform boundaries */

	/* called after every epoch, e.g. to print progress, and when the epochs end; may be NULL */
	void		(*on_epoch) (void *arg, const DmfEpochStats *stats);
	void		(*on_finish) (void *arg);
	void	   *on_epoch_arg;
} DmfTrainConfig;

typedef struct DmfTrainSet
{
	int32_t		n_users;
	int32_t		n_items;
	DmfTriples	train;			/* targets (implicit: weights), and the inputs while training */
	DmfTriples	validation;		/* early stopping; may be empty */
	DmfTriples	extra_input;	/* also fed to the final factors */
} DmfTrainSet;

/* Which training entities get fold-in: chosen on validation, or fixed. */
typedef enum DmfFoldInTraining
{
	DMF_FOLD_TRAINING_AUTO = 0,
	DMF_FOLD_TRAINING_NONE,
	DMF_FOLD_TRAINING_USERS,
	DMF_FOLD_TRAINING_ITEMS,
	DMF_FOLD_TRAINING_BOTH
} DmfFoldInTraining;

/* Which training entities get fold-in (fold_choice.h). */
typedef struct DmfFoldChoice
{
	bool		users;			/* fold in training users */
	bool		items;			/* fold in training items */
	/* validation RMSE, rating scale, by users + 2 * items; NaN: not measured */
	double		validation_rmse[4];
} DmfFoldChoice;

/* Why the epochs ended. */
typedef enum DmfStopReason
{
	DMF_STOP_EARLY_STOPPING = 0,	/* validation stalled */
	DMF_STOP_EPOCHS,			/* the option "epochs" */
	DMF_STOP_TIME_LIMIT			/* the option "time_limit" */
} DmfStopReason;

typedef struct DmfTrainResult
{
	DmfBranch	user_branch;
	DmfBranch	item_branch;
	float	   *user_factors;	/* n_users x dim, unit length or zero */
	float	   *item_factors;	/* n_items x dim */
	float	   *user_anchors;	/* branch factors before fold-in */
	float	   *item_anchors;
	int			epochs_run;
	int			best_epoch;
	DmfStopReason stop_reason;
	double		mean_validation_rmse;	/* of the global mean predictor */
	double		best_validation_rmse;
	double		final_train_rmse;
	DmfEpochStats *history;		/* epochs_run entries */
	DmfFoldChoice fold_choice;	/* which training entities got fold-in */
	double	   *boundaries;		/* DMF-D: n_levels + 1, learned; else NULL */
	double		lambda;			/* DMF-D: slope of the kept epoch */
	double		seconds;
	double		finish_seconds; /* of those, after the epochs: fold-in, every factor */
} DmfTrainResult;

/* Bytes the training will allocate, to refuse before allocating. */
uint64_t	dmf_train_memory_estimate(const DmfTrainConfig *cfg,
									  int32_t n_users, int32_t n_items,
									  int64_t n_train, int64_t n_input);

void		dmf_train_model(const DmfTrainConfig *cfg, const DmfTrainSet *data,
							DmfTrainResult *result);


#endif
