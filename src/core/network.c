/*
 * network.c
 *	  Forward and backward passes of one branch (sparse layer + dense MLP).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "blas.h"
#include "network.h"

const char *const dmf_activation_names[DMF_ACT_COUNT] = {
	"relu", "tanh", "sigmoid", "linear"
};

bool
dmf_branch_layout(DmfBranch *b, int n_layers, const int *sizes,
				  DmfActivation activation)
{
	size_t		off = 0;

	if (n_layers < 1 || n_layers > DMF_MAX_LAYERS)
		return false;
	if ((int) activation < 0 || activation >= DMF_ACT_COUNT)
		return false;
	memset(b, 0, sizeof(*b));
	b->coding.encoding = 0;
	b->coding.rating_min = 0.0;
	b->coding.rating_max = 1.0;
	b->n_layers = n_layers;
	b->activation = activation;
	for (int l = 0; l <= n_layers; l++)
	{
		/* the input layer may be wide (one unit per user); others not */
		if (sizes[l] < 1 || (l > 0 && sizes[l] > DMF_MAX_WIDTH))
			return false;
		b->sizes[l] = sizes[l];
	}
	for (int l = 0; l < n_layers; l++)
	{
		b->w_off[l] = off;
		off += (size_t) sizes[l] * (size_t) sizes[l + 1];
		b->b_off[l] = off;
		off += (size_t) sizes[l + 1];
	}
	b->n_params = off;
	return true;
}

void
dmf_branch_init(DmfBranch *b, DmfRng *rng)
{
	float		gain = b->activation == DMF_ACT_RELU ? 2.0f : 1.0f;

	b->params = dmf_alloc0(sizeof(float) * b->n_params);
	for (int l = 0; l < b->n_layers; l++)
	{
		/*
		 * The sparse layer divides by sqrt(kept inputs), so each unit sees
		 * an input of unit scale whatever the row's length: fan-in 1.
		 */
		float		fan_in = l == 0 ? 1.0f : (float) b->sizes[l];
		float		g = (l == b->n_layers - 1) ? 1.0f : gain;
		float		sd = sqrtf(g / fan_in);
		float	   *W = b->params + b->w_off[l];
		size_t		n = (size_t) b->sizes[l] * b->sizes[l + 1];

		for (size_t k = 0; k < n; k++)
		{
			W[k] = (float) (dmf_rng_normal(rng) * sd);
			if ((k & 0xFFFFF) == 0)
				dmf_check_interrupts();
		}
		/* biases start at zero */
	}
}

/* A warm start: from's weights into b, the first layer's rows mapped */
void
dmf_branch_copy_weights(DmfBranch *b, const DmfBranch *from, const int32_t *rows)
{
	int			width = b->sizes[1];

	for (int r = 0; r < b->sizes[0]; r++)
		if (rows[r] >= 0)
			memcpy(b->params + b->w_off[0] + (size_t) r * width,
				   from->params + from->w_off[0] + (size_t) rows[r] * width,
				   sizeof(float) * width);
	memcpy(b->params + b->b_off[0], from->params + from->b_off[0], sizeof(float) * width);
	if (b->n_layers > 1)
		memcpy(b->params + b->w_off[1], from->params + from->w_off[1],
			   sizeof(float) * (b->n_params - b->w_off[1]));
}

void
dmf_branch_work_alloc(DmfBranchWork *w, const DmfBranch *b, int max_rows,
					  bool dropout)
{
	int			maxw = 1;

	memset(w, 0, sizeof(*w));
	w->max_rows = max_rows;
	for (int l = 1; l <= b->n_layers; l++)
		if (b->sizes[l] > maxw)
			maxw = b->sizes[l];
	w->max_width = maxw;
	for (int l = 0; l < b->n_layers; l++)
	{
		size_t		n = (size_t) max_rows * b->sizes[l + 1];
		bool		hidden = l < b->n_layers - 1;

		w->pre[l] = dmf_alloc(sizeof(float) * n);
		/* the linear last layer's output is its pre-activation */
		w->act[l] = hidden ? dmf_alloc(sizeof(float) * n) : w->pre[l];
		w->mask[l] = (hidden && dropout) ? dmf_alloc(sizeof(float) * n) : NULL;
	}
	w->dpre = dmf_alloc(sizeof(float) * (size_t) max_rows * maxw);
	w->dact = dmf_alloc(sizeof(float) * (size_t) max_rows * maxw);
	w->scale = dmf_alloc(sizeof(float) * (size_t) max_rows);
	w->enc_a = dmf_alloc(sizeof(float) * (size_t) max_rows);
	w->enc_c = dmf_alloc(sizeof(float) * (size_t) max_rows);
}

void
dmf_branch_work_tasks(DmfBranchWork *w, DmfTeam *team)
{
	w->in_tasks = true;
	w->team = team;
	w->runs = dmf_alloc(sizeof(int64_t) * (size_t) w->max_rows * (DMF_SPARSE_TASKS + 1));
}

void
dmf_branch_work_free(DmfBranchWork *w, const DmfBranch *b)
{
	for (int l = 0; l < b->n_layers; l++)
	{
		if (w->act[l] != w->pre[l])
			dmf_free(w->act[l]);
		dmf_free(w->pre[l]);
		if (w->mask[l])
			dmf_free(w->mask[l]);
	}
	dmf_free(w->dpre);
	dmf_free(w->dact);
	dmf_free(w->scale);
	dmf_free(w->enc_a);
	dmf_free(w->enc_c);
	if (w->runs)
		dmf_free(w->runs);
	memset(w, 0, sizeof(*w));
}

static void
activate(DmfActivation f, const float *pre, float *out, size_t n)
{
	switch (f)
	{
		case DMF_ACT_RELU:
			for (size_t k = 0; k < n; k++)
				out[k] = pre[k] <= 0.0f ? 0.0f : pre[k];	/* NaN stays NaN */
			break;
		case DMF_ACT_TANH:
			for (size_t k = 0; k < n; k++)
				out[k] = tanhf(pre[k]);
			break;
		case DMF_ACT_SIGMOID:
			for (size_t k = 0; k < n; k++)
				out[k] = 1.0f / (1.0f + expf(-pre[k]));
			break;
		case DMF_ACT_LINEAR:
		default:
			if (out != pre)
				memcpy(out, pre, sizeof(float) * n);
			break;
	}
}

/* d *= f'(pre), elementwise */
static void
activation_backward(DmfActivation f, const float *pre, float *d, size_t n)
{
	switch (f)
	{
		case DMF_ACT_RELU:
			/* a select, not a branch: it vectorises */
			for (size_t k = 0; k < n; k++)
				d[k] = pre[k] <= 0.0f ? 0.0f : d[k];
			break;
		case DMF_ACT_TANH:
			for (size_t k = 0; k < n; k++)
			{
				float		t = tanhf(pre[k]);

				d[k] *= 1.0f - t * t;
			}
			break;
		case DMF_ACT_SIGMOID:
			for (size_t k = 0; k < n; k++)
			{
				float		s = 1.0f / (1.0f + expf(-pre[k]));

				d[k] *= s * (1.0f - s);
			}
			break;
		case DMF_ACT_LINEAR:
		default:
			break;
	}
}

static void
add_bias(float *m, const float *bias, int nb, int width)
{
	for (int r = 0; r < nb; r++)
	{
		float	   *row = m + (size_t) r * width;

		for (int j = 0; j < width; j++)
			row[j] += bias[j];
	}
}

static void
add_column_sums(const float *m, int nb, int width, float *acc)
{
	for (int r = 0; r < nb; r++)
	{
		const float *row = m + (size_t) r * width;

		for (int j = 0; j < width; j++)
			acc[j] += row[j];
	}
}

/*
 * Dropout's mask of n units: 1 / keep for a unit kept, 0 for one dropped,
 * each unit kept with probability keep = 1 - rate (to 1 / 65536): four
 * units from each 64-bit draw of rng, in order.
 */
static void
dropout_mask(DmfRng *rng, float rate, float *mask, size_t n)
{
	float		keep = 1.0f - rate;
	float		inv = 1.0f / keep;
	uint32_t	threshold = (uint32_t) (keep * 65536.0f + 0.5f);

	for (size_t k = 0; k < n; k += 4)
	{
		uint64_t	bits = dmf_rng_next(rng);

		for (size_t q = 0; q < 4 && k + q < n; q++)
			mask[k + q] = ((bits >> (16 * q)) & 0xFFFF) < threshold ? inv : 0.0f;
	}
}

/*
 * Dropout's masks of rows r0 .. r0 + n - 1 of a hidden layer of `width`
 * units, each row from a stream of its own seeded by the pass's seed and
 * the row: the tasks of a pass draw their rows' masks side by side, and a
 * mask depends on the row, never on the task or thread that drew it.
 */
static void
row_masks(uint64_t seed, float rate, float *mask, int r0, int n, int width)
{
	for (int r = r0; r < r0 + n; r++)
	{
		DmfRng		row_rng;

		dmf_rng_seed(&row_rng, seed + (uint64_t) r * UINT64_C(0x9E3779B97F4A7C15));
		dropout_mask(&row_rng, rate, mask + (size_t) r * width, (size_t) width);
	}
}

/*
 * Training's passes in tasks (DmfBranchWork.in_tasks).  The sizes are
 * fixed: they decide the bits of the dense products, never the number of
 * threads.  (The sparse layer's bits do not depend on its tasks.)
 */
#define SPARSE_TASK_ROWS 8		/* rows of a task of the sparse layer, forward */
#define DENSE_TASK_ROWS 32		/* rows (of the output, of dW) of a dense task */

typedef struct PassTasks
{
	const DmfBranch *b;
	DmfBranchWork *w;
	const DmfCsr *x;
	const int32_t *rows;
	int			nb;
	const uint8_t *skip;
	int			l;				/* the layer */
	float		dropout;		/* forward: the rate of hidden units dropped */
	uint64_t	mask_seed;		/* forward: the seed of this layer's masks (row_masks) */
	int			n_dw;			/* backward: tasks of dW come first */
	const float *dpre;
	float	   *grad;
} PassTasks;

static inline int
n_chunks(int n, int size)
{
	return (n + size - 1) / size;
}

/* Forward, layer l, rows of one task: the product, the bias, the activation. */
static void
forward_task(void *arg, int task, int worker)
{
	const PassTasks *p = (const PassTasks *) arg;
	const DmfBranch *b = p->b;
	DmfBranchWork *w = p->w;
	int			l = p->l;
	int			in = b->sizes[l];
	int			out = b->sizes[l + 1];
	const float *W = b->params + b->w_off[l];
	const float *bias = b->params + b->b_off[l];
	int			size = l == 0 ? SPARSE_TASK_ROWS : DENSE_TASK_ROWS;
	int			r0 = task * size;
	int			n = p->nb - r0 < size ? p->nb - r0 : size;
	float	   *pre = w->pre[l] + (size_t) r0 * out;

	if (l == 0 && w->vrows)
	{
		const DmfVirtualRows *vr = w->vrows;

		dmf_grouped_forward(vr, task, p->skip, &b->coding, W, bias, out, w->pre[0],
							w->scale, w->enc_a, w->enc_c,
							vr->scratch + DMF_GROUPED_SCRATCH(vr->gx->n_groups, out) * worker);
		r0 = vr->task_start[task];
		n = vr->task_start[task + 1] - r0;
		pre = w->pre[0] + (size_t) r0 * out;
	}
	else if (l == 0)
	{
		dmf_sparse_forward(p->x, p->rows + r0, n, p->skip, &b->coding, W, bias, out,
						   pre, w->scale + r0, w->enc_a + r0, w->enc_c + r0);
		/* where the backward pass's tasks start in each row */
		dmf_csr_runs(p->x, p->rows + r0, n, DMF_SPARSE_TASKS,
					 w->runs + (size_t) r0 * (DMF_SPARSE_TASKS + 1));
	}
	else
	{
		float	   *a = w->act[l - 1] + (size_t) r0 * in;
		const float *m = w->mask[l - 1];

		/* the previous layer's dropout, on these rows */
		if (m)
		{
			m += (size_t) r0 * in;
			for (size_t k = 0; k < (size_t) n * in; k++)
				a[k] *= m[k];
		}
		dmf_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
				  n, out, in, 1.0f, a, in, W, out,
				  0.0f, pre, out);
		add_bias(pre, bias, n, out);
	}
	if (l < b->n_layers - 1)
	{
		activate(b->activation, pre, w->act[l] + (size_t) r0 * out, (size_t) n * out);
		/* this layer's dropout, which the next layer's tasks apply to their rows */
		if (w->mask[l] && p->dropout > 0.0f)
			row_masks(p->mask_seed, p->dropout, w->mask[l], r0, n, out);
		else if (w->mask[l])
			for (size_t k = (size_t) r0 * out; k < (size_t) (r0 + n) * out; k++)
				w->mask[l][k] = 1.0f;
	}
}

/*
 * Backward, layer l: the first n_dw tasks take rows of dW_l += A^T dpre,
 * the others rows of dA = dpre W_l^T and their way back through dropout
 * and the activation; layer 0 (sparse): ranges of dW_0's rows (inputs).
 */
static void
backward_task(void *arg, int task, int worker)
{
	const PassTasks *p = (const PassTasks *) arg;
	const DmfBranch *b = p->b;
	DmfBranchWork *w = p->w;
	int			l = p->l;
	int			in = b->sizes[l];
	int			out = b->sizes[l + 1];
	const float *W = b->params + b->w_off[l];
	float	   *gW = p->grad + b->w_off[l];

	if (l == 0 && w->vrows)
	{
		if (p->n_dw)			/* the first part: each virtual row's sums */
			dmf_grouped_dsum(w->vrows, task, w->scale, w->enc_a, w->enc_c, p->dpre, out);
		else
			dmf_grouped_backward(w->vrows, task, p->skip, out, gW);
	}
	else if (l == 0)
		dmf_sparse_backward_runs(p->x, p->rows, p->nb, p->skip, w->scale, w->enc_a,
								 w->enc_c, p->dpre, out, w->runs + task,
								 DMF_SPARSE_TASKS + 1, gW);
	else if (task < p->n_dw)
	{
		int			i0 = task * DENSE_TASK_ROWS;
		int			n = in - i0 < DENSE_TASK_ROWS ? in - i0 : DENSE_TASK_ROWS;

		dmf_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
				  n, out, p->nb, 1.0f, w->act[l - 1] + i0, in, p->dpre, out,
				  1.0f, gW + (size_t) i0 * out, out);
	}
	else
	{
		int			r0 = (task - p->n_dw) * DENSE_TASK_ROWS;
		int			n = p->nb - r0 < DENSE_TASK_ROWS ? p->nb - r0 : DENSE_TASK_ROWS;
		size_t		off = (size_t) r0 * in;
		size_t		len = (size_t) n * in;

		dmf_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
				  n, in, out, 1.0f, p->dpre + (size_t) r0 * out, out, W, out,
				  0.0f, w->dact + off, in);
		if (w->mask[l - 1])
			for (size_t k = 0; k < len; k++)
				w->dact[off + k] *= w->mask[l - 1][off + k];
		activation_backward(b->activation, w->pre[l - 1] + off, w->dact + off, len);
	}
}

const float *
dmf_branch_forward(const DmfBranch *b, DmfBranchWork *w, const DmfCsr *x,
				   const int32_t *rows, int nb, const uint8_t *skip,
				   float dropout_rate, DmfRng *rng)
{
	int			L = b->n_layers;

	for (int l = 0; l < L; l++)
	{
		int			in = b->sizes[l];
		int			out = b->sizes[l + 1];
		const float *W = b->params + b->w_off[l];
		const float *bias = b->params + b->b_off[l];
		size_t		n = (size_t) nb * out;

		uint64_t	mask_seed = 0;

		/* one draw of the training's stream per masked layer, in order */
		if (l < L - 1 && w->mask[l] && dropout_rate > 0.0f)
			mask_seed = dmf_rng_next(rng);
		if (w->in_tasks)
		{
			PassTasks	p = {.b = b, .w = w, .x = x, .rows = rows, .nb = nb, .skip = skip, .l = l,
			.dropout = dropout_rate, .mask_seed = mask_seed};

			dmf_team_run(w->team, forward_task, &p,
						 l == 0 && w->vrows ? w->vrows->n_tasks :
						 n_chunks(nb, l == 0 ? SPARSE_TASK_ROWS : DENSE_TASK_ROWS));
			continue;
		}
		if (l == 0)
			dmf_sparse_forward(x, rows, nb, skip, &b->coding, W, bias, out,
							   w->pre[0], w->scale, w->enc_a, w->enc_c);
		else
		{
			memset(w->pre[l], 0, sizeof(float) * n);
			dmf_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
					  nb, out, in, 1.0f, w->act[l - 1], in, W, out,
					  0.0f, w->pre[l], out);
			add_bias(w->pre[l], bias, nb, out);
		}

		if (l < L - 1)
		{
			activate(b->activation, w->pre[l], w->act[l], n);
			if (w->mask[l] && dropout_rate > 0.0f)
			{
				row_masks(mask_seed, dropout_rate, w->mask[l], 0, nb, out);
				for (size_t k = 0; k < n; k++)
					w->act[l][k] *= w->mask[l][k];
			}
			else if (w->mask[l])
			{
				for (size_t k = 0; k < n; k++)
					w->mask[l][k] = 1.0f;
			}
		}
	}
	return w->act[L - 1];
}

void
dmf_branch_backward(const DmfBranch *b, DmfBranchWork *w, const DmfCsr *x,
					const int32_t *rows, int nb, const uint8_t *skip,
					float *dout, float *grad)
{
	int			L = b->n_layers;
	float	   *dpre = dout;	/* last layer is linear */

	for (int l = L - 1; l >= 0; l--)
	{
		int			in = b->sizes[l];
		int			out = b->sizes[l + 1];
		const float *W = b->params + b->w_off[l];
		float	   *gW = grad + b->w_off[l];
		float	   *gb = grad + b->b_off[l];

		add_column_sums(dpre, nb, out, gb);
		if (w->in_tasks)
		{
			PassTasks	p = {.b = b, .w = w, .x = x, .rows = rows, .nb = nb, .skip = skip, .l = l};

			p.dpre = dpre;
			p.grad = grad;
			if (l == 0)
			{
				if (w->vrows)
				{
					/* n_dw flags the first part (grouped.h) */
					p.n_dw = 1;
					dmf_team_run(w->team, backward_task, &p, w->vrows->n_tasks);
					p.n_dw = 0;
					dmf_team_run(w->team, backward_task, &p, DMF_GROUPED_TASKS);
					break;
				}
				dmf_team_run(w->team, backward_task, &p, DMF_SPARSE_TASKS);
				break;
			}
			p.n_dw = n_chunks(in, DENSE_TASK_ROWS);
			dmf_team_run(w->team, backward_task, &p, p.n_dw + n_chunks(nb, DENSE_TASK_ROWS));
			/* dact becomes the next dpre; swap buffers */
			{
				float	   *t = w->dpre;

				w->dpre = w->dact;
				w->dact = t;
			}
			dpre = w->dpre;
			continue;
		}
		if (l == 0)
		{
			dmf_sparse_backward(x, rows, nb, skip, w->scale, w->enc_a, w->enc_c,
								dpre, out, gW);
			break;
		}
		/* dW_l += A_{l-1}^T dpre */
		dmf_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
				  in, out, nb, 1.0f, w->act[l - 1], in, dpre, out,
				  1.0f, gW, out);
		/* dA_{l-1} = dpre W_l^T */
		dmf_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
				  nb, in, out, 1.0f, dpre, out, W, out,
				  0.0f, w->dact, in);
		{
			size_t		n = (size_t) nb * in;

			if (w->mask[l - 1])
				for (size_t k = 0; k < n; k++)
					w->dact[k] *= w->mask[l - 1][k];
			activation_backward(b->activation, w->pre[l - 1], w->dact, n);
			/* dact becomes the next dpre; swap buffers */
			{
				float	   *t = w->dpre;

				w->dpre = w->dact;
				w->dact = t;
			}
			dpre = w->dpre;
		}
	}
}

void
dmf_normalize_rows(float *m, int nb, int dim)
{
	for (int r = 0; r < nb; r++)
	{
		float	   *row = m + (size_t) r * dim;
		double		ss = 0.0;

		for (int j = 0; j < dim; j++)
			ss += (double) row[j] * row[j];
		if (!isfinite(ss))
			continue;			/* left as it is, for the caller's finiteness check */
		if (ss > 1e-24)
		{
			float		inv = (float) (1.0 / sqrt(ss));

			for (int j = 0; j < dim; j++)
				row[j] *= inv;
		}
		else
			memset(row, 0, sizeof(float) * dim);
	}
}

void
dmf_branch_factors(const DmfBranch *b, DmfBranchWork *w, const DmfCsr *x,
				   const int32_t *rows, int nb, float *out)
{
	int			dim = b->sizes[b->n_layers];

	for (int start = 0; start < nb; start += w->max_rows)
	{
		int			n = nb - start < w->max_rows ? nb - start : w->max_rows;
		const float *u;

		dmf_check_interrupts();
		u = dmf_branch_forward(b, w, x, rows + start, n, NULL, 0.0f, NULL);
		memcpy(out + (size_t) start * dim, u, sizeof(float) * (size_t) n * dim);
		/* a row without input has no factor, not the bias vector */
		for (int r = 0; r < n; r++)
			if (w->scale[r] == 0.0f)
				memset(out + (size_t) (start + r) * dim, 0, sizeof(float) * dim);
	}
	dmf_normalize_rows(out, nb, dim);
}
