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
dmf_adam_step(DmfBranch *b, DmfAdam *a, double lr, double l2, long t)
{
	float		c1 = (float) (lr * sqrt(1.0 - pow(DMF_ADAM_BETA2, (double) t)) /
							  (1.0 - pow(DMF_ADAM_BETA1, (double) t)));

	if (l2 > 0.0)
		for (int l = 0; l < b->n_layers; l++)
			DMF_CALL(add_decay, (a->grad + b->w_off[l], b->params + b->w_off[l],
								 (size_t) b->sizes[l] * b->sizes[l + 1],
								 (float) (2.0 * l2)));
	DMF_CALL(adam_update, (b->params, a->grad, a->m, a->v, b->n_params, c1,
						   (float) DMF_ADAM_BETA1, (float) DMF_ADAM_BETA2,
						   (float) DMF_ADAM_EPS));
}

/* Parameters of a task of dmf_adam_step_team: a multiple of any vector width. */
#define ADAM_TASK_PARAMS 32768

typedef struct AdamTasks
{
	DmfBranch  *b;
	DmfAdam    *a;
	float		c1;
	float		decay;			/* 0: none */
} AdamTasks;

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

static void
adam_task(void *arg, int task, int worker)
{
	const AdamTasks *p = (const AdamTasks *) arg;
	size_t		k0 = (size_t) task * ADAM_TASK_PARAMS;
	size_t		k1 = p->b->n_params - k0 < ADAM_TASK_PARAMS ? p->b->n_params : k0 + ADAM_TASK_PARAMS;

	step_range(p->b, p->a, k0, k1, p->c1, p->decay);
}

void
dmf_adam_step_team(DmfBranch *b, DmfAdam *a, double lr, double l2, long t, DmfTeam *team)
{
	AdamTasks	p;

	p.b = b;
	p.a = a;
	p.c1 = (float) (lr * sqrt(1.0 - pow(DMF_ADAM_BETA2, (double) t)) /
					(1.0 - pow(DMF_ADAM_BETA1, (double) t)));
	p.decay = l2 > 0.0 ? (float) (2.0 * l2) : 0.0f;
	dmf_team_run(team, adam_task, &p,
				 (int) ((b->n_params + ADAM_TASK_PARAMS - 1) / ADAM_TASK_PARAMS));
}

/*
 * The lazy step (the alternating training): the first layer's rows
 * (inputs) a minibatch did not reach keep their weights and moments; the
 * rows it did, and every other parameter, take Adam's step.  A large
 * table's minibatch reaches few of its inputs, and a step over all of
 * them would cost far more than the minibatch.
 */
typedef struct LazyAdamTasks
{
	AdamTasks	adam;
	uint8_t    *touched;
	int			rows_per_task;
	int			first_layer_tasks;
} LazyAdamTasks;

static void
lazy_adam_task(void *arg, int task, int worker)
{
	const LazyAdamTasks *p = (const LazyAdamTasks *) arg;
	DmfBranch  *b = p->adam.b;
	DmfAdam    *a = p->adam.a;
	int			width = b->sizes[1];

	if (task < p->first_layer_tasks)
	{
		int			r0 = task * p->rows_per_task;
		int			r1 = b->sizes[0] - r0 < p->rows_per_task ? b->sizes[0] : r0 + p->rows_per_task;

		for (int r = r0; r < r1; r++)
		{
			size_t		k = b->w_off[0] + (size_t) r * width;

			if (!p->touched[r])
				continue;
			p->touched[r] = 0;
			step_range(b, a, k, k + width, p->adam.c1, p->adam.decay);
		}
		return;
	}
	{
		/* the rest, from the first layer's bias on, as dmf_adam_step_team */
		size_t		k0 = b->b_off[0] + (size_t) (task - p->first_layer_tasks) * ADAM_TASK_PARAMS;
		size_t		k1 = b->n_params - k0 < ADAM_TASK_PARAMS ? b->n_params : k0 + ADAM_TASK_PARAMS;

		step_range(b, a, k0, k1, p->adam.c1, p->adam.decay);
	}
}

void
dmf_adam_step_lazy(DmfBranch *b, DmfAdam *a, double lr, double l2, long t, DmfTeam *team,
				   uint8_t *touched)
{
	LazyAdamTasks p;
	size_t		rest = b->n_params - b->b_off[0];

	p.adam.b = b;
	p.adam.a = a;
	p.adam.c1 = (float) (lr * sqrt(1.0 - pow(DMF_ADAM_BETA2, (double) t)) /
						 (1.0 - pow(DMF_ADAM_BETA1, (double) t)));
	p.adam.decay = l2 > 0.0 ? (float) (2.0 * l2) : 0.0f;
	p.touched = touched;
	p.rows_per_task = ADAM_TASK_PARAMS / b->sizes[1] > 0 ? ADAM_TASK_PARAMS / b->sizes[1] : 1;
	p.first_layer_tasks = (b->sizes[0] + p.rows_per_task - 1) / p.rows_per_task;
	dmf_team_run(team, lazy_adam_task, &p,
				 p.first_layer_tasks + (int) ((rest + ADAM_TASK_PARAMS - 1) / ADAM_TASK_PARAMS));
}
