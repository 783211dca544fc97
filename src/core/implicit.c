/*
 * implicit.c
 *	  Implicit feedback's weights, negative sampling and loss (implicit.h).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "implicit.h"

/* Draws before a user is taken to have interacted with the whole pool. */
#define NEGATIVE_DRAWS 8

void
dmf_implicit_weights(const DmfTriples *t, float *out)
{
	double		sum = 0.0;
	double		scale;

	for (int64_t k = 0; k < t->n; k++)
		sum += t->rating[k];
	scale = t->n > 0 && sum > 0.0 ? (double) t->n / sum : 1.0;
	for (int64_t k = 0; k < t->n; k++)
		out[k] = (float) (t->rating[k] * scale);
}

DmfTriples
dmf_implicit_ones(const DmfTriples *t, float *ones)
{
	DmfTriples	v = *t;

	for (int64_t k = 0; k < t->n; k++)
		ones[k] = 1.0f;
	v.rating = ones;
	return v;
}

/* Whether row u of m (columns ascending) holds column c. */
static bool
row_has(const DmfCsr *m, int32_t u, int32_t c)
{
	return dmf_sorted_has(m->col + m->rowptr[u], m->rowptr[u + 1] - m->rowptr[u], c);
}

int32_t
dmf_sample_negative(DmfRng *rng, const DmfCsr *positives, int32_t u,
					const int32_t *pool, int32_t pool_step, int32_t pool_n)
{
	for (int d = 0; d < NEGATIVE_DRAWS; d++)
	{
		int32_t		j = pool ? pool[(size_t) dmf_rng_below(rng, (uint32_t) pool_n) * pool_step]
			: (int32_t) dmf_rng_below(rng, (uint32_t) pool_n);

		if (!row_has(positives, u, j))
			return j;
	}
	return -1;
}

void
dmf_implicit_positives(const DmfTriples *const *parts, int n_parts, int32_t n_users,
					   int32_t n_items, DmfCsr *out)
{
	int64_t		n = 0,
				ignored;
	int32_t    *rows,
			   *cols;
	float	   *ones;

	for (int p = 0; p < n_parts; p++)
		n += parts[p]->n;
	rows = dmf_alloc(sizeof(int32_t) * (size_t) (n + 1));
	cols = dmf_alloc(sizeof(int32_t) * (size_t) (n + 1));
	ones = dmf_alloc(sizeof(float) * (size_t) (n + 1));
	n = 0;
	for (int p = 0; p < n_parts; p++)
		for (int64_t k = 0; k < parts[p]->n; k++, n++)
		{
			rows[n] = parts[p]->user[k];
			cols[n] = parts[p]->item[k];
			ones[n] = 1.0f;
		}
	/* a pair in two parts is there twice: harmless for membership */
	dmf_csr_build(out, n_users, n_items, n, rows, cols, ones, &ignored, NULL);
	dmf_free(rows);
	dmf_free(cols);
	dmf_free(ones);
}

void
dmf_implicit_validation(const DmfTriples *held, const DmfCsr *positives, int32_t n_items,
						int negatives, uint64_t seed, DmfTriples *out)
{
	size_t		cap = (size_t) held->n * (1 + negatives) + 1;
	DmfRng		rng;

	dmf_rng_seed(&rng, seed ^ UINT64_C(0x5DEECE66D));
	out->user = dmf_alloc(sizeof(int32_t) * cap);
	out->item = dmf_alloc(sizeof(int32_t) * cap);
	out->rating = dmf_alloc(sizeof(float) * cap);
	out->n = 0;
	for (int64_t k = 0; k < held->n; k++)
	{
		int32_t		u = held->user[k];

		out->user[out->n] = u;
		out->item[out->n] = held->item[k];
		out->rating[out->n++] = 1.0f;
		for (int s = 0; s < negatives; s++)
		{
			int32_t		j = dmf_sample_negative(&rng, positives, u, NULL, 1, n_items);

			if (j < 0)
				continue;
			out->user[out->n] = u;
			out->item[out->n] = j;
			out->rating[out->n++] = 0.0f;
		}
		if ((k & 0xFFFF) == 0)
			dmf_check_interrupts();
	}
}

double
dmf_implicit_loss(double c, int positive, double w, double *dloss_dcos)
{
	double		p = dmf_implicit_score(c);
	double		y = positive ? 1.0 : 0.0;

	/* d/dc of -w (y log p + (1 - y) log(1 - p)) for p = sigmoid(s (c - m)) */
	*dloss_dcos = w * DMF_IMPLICIT_SLOPE * (p - y);
	return (p - y) * (p - y);
}
