/*
 * block_sides.h
 *	  The two sides of a block of the rating matrix during training: each
 *	  side (the block's users through the user branch, its items through the
 *	  item branch) runs its forward pass, then its backward pass and Adam
 *	  step.  The sides run one after the other, each on every thread of the
 *	  training's team.
 */
#ifndef DMF_BLOCK_SIDES_H
#define DMF_BLOCK_SIDES_H

#include <stdint.h>

#include "adam.h"
#include "helper_thread.h"
#include "network.h"
#include "rng.h"
#include "train.h"

/*
 * One side of a block: its branch, inputs and buffers, and its own random
 * stream (input dropout draws on the calling thread in order, dropout one
 * seed a layer for its per-row streams):
 * the result does not depend on the number of threads.
 */
typedef struct SideTask
{
	DmfBranch  *branch;
	DmfBranchWork *work;
	DmfAdam	   *adam;
	DmfTeam    *team;			/* Adam's step; the passes use work->team */
	const DmfCsr *x;
	const int32_t *rows;
	int			nb;
	uint8_t    *skip;
	DmfRng		rng;
	double		input_dropout;
	float		dropout;
	const float *out;			/* forward: nb x dim */
	float	   *norm;			/* forward: |out| per row */
	float	   *dout;			/* backward: gradient of the loss */
	double		lr;
	double		l2;
	long		step;
} SideTask;

void		dmf_side_task_init(SideTask *t, const DmfTrainConfig *cfg, DmfBranch *branch,
							   DmfBranchWork *work, DmfAdam *adam, const DmfCsr *x,
							   uint8_t *skip, float *norm, DmfRng *seeder);

/* The side's rows through its branch (input dropout, dropout): out, norm. */
void		dmf_side_forward(SideTask *t);

/* Back through the branch from dout, then one Adam step. */
void		dmf_side_backward(SideTask *t);

/* Clears the skip marks of the rows' inputs. */
void		dmf_clear_marks(const DmfCsr *x, const int32_t *rows, int nb, uint8_t *skip);

#endif
