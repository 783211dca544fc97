/*
 * adam.h
 *	  The optimizer of a training: Adam over a branch's parameters.
 */
#ifndef DMF_ADAM_H
#define DMF_ADAM_H

#include <stddef.h>
#include <stdint.h>

#include "helper_thread.h"
#include "network.h"

#define DMF_ADAM_BETA1 0.9
#define DMF_ADAM_BETA2 0.999
#define DMF_ADAM_EPS 1e-8

/* A branch's gradient and Adam's two moments, n_params floats each. */
typedef struct DmfAdam
{
	float	   *grad;
	float	   *m;
	float	   *v;
} DmfAdam;

void		dmf_adam_alloc(DmfAdam *a, size_t n);
void		dmf_adam_free(DmfAdam *a);

/*
 * One Adam step (step number t, from 1) on a branch, consuming the
 * gradient.  L2 (the paper's gamma ||W||^2) is part of the loss, so its
 * gradient 2 gamma W joins the data gradient; biases are not penalised.
 */
void		dmf_adam_step(DmfBranch *b, DmfAdam *a, double lr, double l2, long t);

/* The same, in tasks of a fixed size of parameters on team: the same bits. */
void		dmf_adam_step_team(DmfBranch *b, DmfAdam *a, double lr, double l2, long t,
							   DmfTeam *team);

/* One step's constants: its bias-corrected size and the weights' decay. */
typedef struct DmfAdamStep
{
	DmfBranch  *b;
	DmfAdam    *a;
	float		c1;				/* the step size, bias-corrected */
	float		decay;			/* 2 l2; 0: none */
} DmfAdamStep;

void		dmf_adam_begin(DmfAdamStep *s, DmfBranch *b, DmfAdam *a, double lr, double l2,
						   long t);

/*
 * The lazy step (the alternating training): Adam's step for the first
 * layer's rows a minibatch reached and every other parameter; the other
 * rows keep their weights and moments.  In parts, so that each range of
 * rows can step as soon as its gradient is whole (grouped.h), while those
 * rows are still in cache: begin, then each range of rows once, then the
 * rest.  Each parameter takes the step dmf_adam_step gives it, in any order.
 */

/* the first layer's rows r0 .. r1 - 1 marked in touched (cleared here) */
void		dmf_adam_step_touched_rows(const DmfAdamStep *s, uint8_t *touched, int32_t r0,
									   int32_t r1);

/* every parameter from the first layer's bias on */
void		dmf_adam_step_past_first_layer(DmfAdamStep *s, DmfTeam *team);

#endif
