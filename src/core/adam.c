/*
 * adam.c
 *	  Adam's update of a branch's parameters, vectorised per CPU.
 */
#include "platform.h"

#include <math.h>

#include "adam.h"

void
dmf_adam_alloc(DmfAdam *a, size_t n)
{
	a->grad = dmf_alloc0(sizeof(float) * n);
	a->m = dmf_alloc0(sizeof(float) * n);
	a->v = dmf_alloc0(sizeof(float) * n);
}

/* Adam's update of n parameters; the gradient is consumed (zeroed). */
DMF_INLINE void
adam_update_impl(float *params, float *grad, float *mom1, float *mom2,
				 size_t n, float c1, float b1, float b2, float eps)
{
	for (size_t k = 0; k < n; k++)
	{
		float		g = grad[k];
		float		m = b1 * mom1[k] + (1.0f - b1) * g;
		float		v = b2 * mom2[k] + (1.0f - b2) * g * g;

		mom1[k] = m;
		mom2[k] = v;
		params[k] -= c1 * m / (sqrtf(v) + eps);
		grad[k] = 0.0f;
	}
}

DMF_INLINE void
add_decay_impl(float *grad, const float *params, size_t n, float decay)
{
	for (size_t k = 0; k < n; k++)
		grad[k] += decay * params[k];
}

DMF_KERNEL(adam_update,
		   (float *params, float *grad, float *mom1, float *mom2, size_t n,
			float c1, float b1, float b2, float eps),
		   (params, grad, mom1, mom2, n, c1, b1, b2, eps))

DMF_KERNEL(add_decay,
		   (float *grad, const float *params, size_t n, float decay),
		   (grad, params, n, decay))

void
dmf_adam_free(DmfAdam *a)
{
	dmf_free(a->grad);
	dmf_free(a->m);
	dmf_free(a->v);
}

void
dmf_adam_begin(DmfAdamStep *s, DmfBranch *b, DmfAdam *a, double lr, double l2, long t)
{
	s->b = b;
	s->a = a;
	s->c1 = (float) (lr * sqrt(1.0 - pow(DMF_ADAM_BETA2, (double) t)) /
					 (1.0 - pow(DMF_ADAM_BETA1, (double) t)));
	s->decay = l2 > 0.0 ? (float) (2.0 * l2) : 0.0f;
}

/* Parameters of a task of the team's steps: a multiple of any vector width. */
#define ADAM_TASK_PARAMS 32768

/*
 * Parameters k0 .. k1 - 1: the weights' decay, then the update, each
 * parameter as in dmf_adam_step.
 */
static void
step_range(DmfBranch *b, DmfAdam *a, size_t k0, size_t k1, float c1, float decay)
{
	if (decay != 0.0f)
		for (int l = 0; l < b->n_layers; l++)
		{
			size_t		lo = b->w_off[l];
			size_t		hi = lo + (size_t) b->sizes[l] * b->sizes[l + 1];

			lo = lo > k0 ? lo : k0;
			hi = hi < k1 ? hi : k1;
			if (lo < hi)
				DMF_CALL(add_decay, (a->grad + lo, b->params + lo, hi - lo, decay));
		}
	DMF_CALL(adam_update, (b->params + k0, a->grad + k0, a->m + k0, a->v + k0, k1 - k0,
						   c1, (float) DMF_ADAM_BETA1, (float) DMF_ADAM_BETA2,
						   (float) DMF_ADAM_EPS));
}

void
dmf_adam_step(DmfBranch *b, DmfAdam *a, double lr, double l2, long t)
{
	DmfAdamStep s;

	dmf_adam_begin(&s, b, a, lr, l2, t);
	step_range(b, a, 0, b->n_params, s.c1, s.decay);
}

static void
adam_task(void *arg, int task, int worker)
{
	const DmfAdamStep *s = (const DmfAdamStep *) arg;
	size_t		k0 = (size_t) task * ADAM_TASK_PARAMS;
	size_t		k1 = s->b->n_params - k0 < ADAM_TASK_PARAMS ? s->b->n_params : k0 + ADAM_TASK_PARAMS;

	step_range(s->b, s->a, k0, k1, s->c1, s->decay);
}

void
dmf_adam_step_team(DmfBranch *b, DmfAdam *a, double lr, double l2, long t, DmfTeam *team)
{
	DmfAdamStep s;

	dmf_adam_begin(&s, b, a, lr, l2, t);
	dmf_team_run(team, adam_task, &s,
				 (int) ((b->n_params + ADAM_TASK_PARAMS - 1) / ADAM_TASK_PARAMS));
}

/*
 * The lazy step (the alternating training): the first layer's rows
 * (inputs) a minibatch did not reach keep their weights and moments; the
 * rows it did, and every other parameter, take Adam's step.  A large
 * table's minibatch reaches few of its inputs, and a step over all of
 * them would cost far more than the minibatch.
 */
void
dmf_adam_step_touched_rows(const DmfAdamStep *s, uint8_t *touched, int32_t r0, int32_t r1)
{
	int			width = s->b->sizes[1];

	for (int32_t r = r0; r < r1; r++)
	{
		size_t		k = s->b->w_off[0] + (size_t) r * width;

		if (!touched[r])
			continue;
		touched[r] = 0;
		step_range(s->b, s->a, k, k + width, s->c1, s->decay);
	}
}

static void
past_first_layer_task(void *arg, int task, int worker)
{
	const DmfAdamStep *s = (const DmfAdamStep *) arg;
	size_t		k0 = s->b->b_off[0] + (size_t) task * ADAM_TASK_PARAMS;
	size_t		k1 = s->b->n_params - k0 < ADAM_TASK_PARAMS ? s->b->n_params : k0 + ADAM_TASK_PARAMS;

	step_range(s->b, s->a, k0, k1, s->c1, s->decay);
}

void
dmf_adam_step_past_first_layer(DmfAdamStep *s, DmfTeam *team)
{
	size_t		rest = s->b->n_params - s->b->b_off[0];

	dmf_team_run(team, past_first_layer_task, s,
				 (int) ((rest + ADAM_TASK_PARAMS - 1) / ADAM_TASK_PARAMS));
}
