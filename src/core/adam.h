/*
 * adam.h
 *	  The optimizer of a training: Adam over a branch's parameters.
 */
#ifndef DMF_ADAM_H
#define DMF_ADAM_H

#include <stddef.h>

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

/*
 * Adam's step for the first layer's rows marked in touched (sizes[0]
 * flags, cleared here) and every other parameter; the other rows of the
 * first layer keep their weights and moments.
 */
void		dmf_adam_step_lazy(DmfBranch *b, DmfAdam *a, double lr, double l2, long t,
							   DmfTeam *team, uint8_t *touched);

#endif
