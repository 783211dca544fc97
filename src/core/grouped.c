/*
 * grouped.c
 *	  The sparse first layer over virtual rows (see grouped.h).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "adam.h"
#include "encoding.h"
#include "grouped.h"

void
dmf_grouped_alloc(DmfGroupedCsr *gx, const DmfCsr *x, int n_groups, const DmfInputCoding *coding)
{
	memset(gx, 0, sizeof(*gx));
	gx->coding = *coding;
	/* an offset input does not depend on the row: encode it once */
	gx->encoded = coding->encoding == DMF_INPUT_OFFSET;
	gx->x.nrows = x->nrows;
	gx->x.ncols = x->ncols;
	gx->x.nnz = x->nnz;
	gx->x.rowptr = x->rowptr;	/* shared: the rows do not move */
	gx->x.col = dmf_alloc(sizeof(int32_t) * (size_t) (x->nnz + 1));
	gx->x.val = dmf_alloc(sizeof(float) * (size_t) (x->nnz + 1));
	gx->n_groups = n_groups;
	gx->seg = dmf_alloc(sizeof(int64_t) * ((size_t) x->nrows * (n_groups + 1) + 1));
}

void
dmf_grouped_free(DmfGroupedCsr *gx)
{
	dmf_free(gx->x.col);
	dmf_free(gx->x.val);
	dmf_free(gx->seg);
	memset(gx, 0, sizeof(*gx));
}

void
dmf_grouped_fill(DmfGroupedCsr *gx, const DmfCsr *x, const int32_t *group_of_col,
				 int32_t r0, int32_t r1)
{
	int			G = gx->n_groups;
	float		a = 1.0f,
				c = 0.0f;

	if (gx->encoded)
		dmf_input_coefficients(gx->coding.encoding, gx->coding.rating_min,
							   gx->coding.rating_max, 0.0, &a, &c);

	for (int32_t r = r0; r < r1; r++)
	{
		int64_t    *seg = gx->seg + (size_t) r * (G + 1);
		int64_t		lo = x->rowptr[r],
					hi = x->rowptr[r + 1];

		/* a counting sort of the row by group; stable, so columns ascend */
		memset(seg, 0, sizeof(int64_t) * (G + 1));
		for (int64_t k = lo; k < hi; k++)
			seg[group_of_col[x->col[k]] + 1]++;
		seg[0] = lo;
		for (int g = 0; g < G; g++)
			seg[g + 1] += seg[g];
		for (int64_t k = lo; k < hi; k++)
		{
			int64_t		to = seg[group_of_col[x->col[k]]]++;

			gx->x.col[to] = x->col[k];
			gx->x.val[to] = gx->encoded ? a * x->val[k] + c : x->val[k];
		}
		/* seg[g] now ends group g: shift back to the starts */
		for (int g = G; g > 0; g--)
			seg[g] = seg[g - 1];
		seg[0] = lo;
	}
}

/*
 * The width in chunks of GROUPED_VECTORS vectors of `lanes` floats held in
 * registers, as in sparse.c: every element adds the same terms in the same
 * order as one at a time.
 */
#define GROUPED_VECTORS 8

/*
 * sums[0 .. width) = sum of val W[col], sums[width .. 2 width) = sum of
 * W[col] over the kept entries lo .. hi - 1; then their count and sum of val.
 */
DMF_INLINE void
sums_impl(int lanes, bool with_w, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
		  const float *W, int width, float *sums)
{
	int			chunk = GROUPED_VECTORS * lanes;
	int			j0 = 0;
	double		count = 0.0,
				vsum = 0.0;

	for (; j0 + chunk <= width; j0 += chunk)
	{
		if (lanes == 16)
		{
			DmfFloat16	a[GROUPED_VECTORS],
						c[GROUPED_VECTORS];

			memset(a, 0, sizeof(a));
			memset(c, 0, sizeof(c));
			for (int64_t k = lo; k < hi; k++)
			{
				const float *w = W + (size_t) x->col[k] * width + j0;
				float		v = x->val[k];

				if (skip && skip[k])
					continue;
				for (int q = 0; q < GROUPED_VECTORS; q++)
				{
					DmfFloat16	wq;

					memcpy(&wq, w + 16 * q, sizeof(wq));
					a[q] += v * wq;
					if (with_w)
						c[q] += wq;
				}
			}
			memcpy(sums + j0, a, sizeof(a));
			if (with_w)
				memcpy(sums + width + j0, c, sizeof(c));
		}
		else
		{
			DmfFloat8	a[GROUPED_VECTORS],
						c[GROUPED_VECTORS];

			memset(a, 0, sizeof(a));
			memset(c, 0, sizeof(c));
			for (int64_t k = lo; k < hi; k++)
			{
				const float *w = W + (size_t) x->col[k] * width + j0;
				float		v = x->val[k];

				if (skip && skip[k])
					continue;
				for (int q = 0; q < GROUPED_VECTORS; q++)
				{
					DmfFloat8	wq;

					memcpy(&wq, w + 8 * q, sizeof(wq));
					a[q] += v * wq;
					if (with_w)
						c[q] += wq;
				}
			}
			memcpy(sums + j0, a, sizeof(a));
			if (with_w)
				memcpy(sums + width + j0, c, sizeof(c));
		}
	}
	if (j0 < width)
	{
		/* the rest of the width, element by element */
		memset(sums + j0, 0, sizeof(float) * (width - j0));
		if (with_w)
			memset(sums + width + j0, 0, sizeof(float) * (width - j0));
		for (int64_t k = lo; k < hi; k++)
		{
			const float *w = W + (size_t) x->col[k] * width;

			if (skip && skip[k])
				continue;
			for (int j = j0; j < width; j++)
			{
				sums[j] += x->val[k] * w[j];
				if (with_w)
					sums[width + j] += w[j];
			}
		}
	}
	for (int64_t k = lo; k < hi; k++)
		if (!(skip && skip[k]))
		{
			count += 1.0;
			vsum += x->val[k];
		}
	sums[2 * width] = (float) count;
	sums[2 * width + 1] = (float) vsum;
}

DMF_INLINE void
entry_sums_impl(int lanes, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
				const float *W, int width, float *sums)
{
	sums_impl(lanes, true, x, lo, hi, skip, W, width, sums);
}

/* the same without the sum of W (inputs encoded in val) */
DMF_INLINE void
entry_val_sums_impl(int lanes, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
					const float *W, int width, float *sums)
{
	sums_impl(lanes, false, x, lo, hi, skip, W, width, sums);
}

DMF_KERNEL_LANES(entry_val_sums,
				 (const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
				  const float *W, int width, float *sums),
				 (x, lo, hi, skip, W, width, sums))

DMF_KERNEL_LANES(entry_sums,
				 (const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
				  const float *W, int width, float *sums),
				 (x, lo, hi, skip, W, width, sums))

/* dW[col] += val E + F over the kept entries lo .. hi - 1 */
DMF_INLINE void
grads_impl(int lanes, bool with_f, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
		   const float *E, const float *F, int width, float *dW, uint8_t *touched)
{
	int			chunk = GROUPED_VECTORS * lanes;
	int			j0 = 0;

	for (; j0 + chunk <= width; j0 += chunk)
	{
		if (lanes == 16)
		{
			DmfFloat16	e[GROUPED_VECTORS],
						f[GROUPED_VECTORS];

			memcpy(e, E + j0, sizeof(e));
			if (with_f)
				memcpy(f, F + j0, sizeof(f));
			else
				memset(f, 0, sizeof(f));
			for (int64_t k = lo; k < hi; k++)
			{
				float	   *g = dW + (size_t) x->col[k] * width + j0;
				float		v = x->val[k];

				if (skip && skip[k])
					continue;
				for (int q = 0; q < GROUPED_VECTORS; q++)
				{
					DmfFloat16	gq;

					memcpy(&gq, g + 16 * q, sizeof(gq));
					gq += with_f ? v * e[q] + f[q] : v * e[q];
					memcpy(g + 16 * q, &gq, sizeof(gq));
				}
			}
		}
		else
		{
			DmfFloat8	e[GROUPED_VECTORS],
						f[GROUPED_VECTORS];

			memcpy(e, E + j0, sizeof(e));
			if (with_f)
				memcpy(f, F + j0, sizeof(f));
			else
				memset(f, 0, sizeof(f));
			for (int64_t k = lo; k < hi; k++)
			{
				float	   *g = dW + (size_t) x->col[k] * width + j0;
				float		v = x->val[k];

				if (skip && skip[k])
					continue;
				for (int q = 0; q < GROUPED_VECTORS; q++)
				{
					DmfFloat8	gq;

					memcpy(&gq, g + 8 * q, sizeof(gq));
					gq += with_f ? v * e[q] + f[q] : v * e[q];
					memcpy(g + 8 * q, &gq, sizeof(gq));
				}
			}
		}
	}
	for (int64_t k = lo; k < hi; k++)
	{
		float	   *g = dW + (size_t) x->col[k] * width;

		if (skip && skip[k])
			continue;
		for (int j = j0; j < width; j++)
			g[j] += with_f ? x->val[k] * E[j] + F[j] : x->val[k] * E[j];
		if (touched)
			touched[x->col[k]] = 1;
	}
}

DMF_INLINE void
entry_grads_impl(int lanes, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
				 const float *E, const float *F, int width, float *dW, uint8_t *touched)
{
	grads_impl(lanes, true, x, lo, hi, skip, E, F, width, dW, touched);
}

/* dW[col] += val E (inputs encoded in val) */
DMF_INLINE void
entry_val_grads_impl(int lanes, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
					 const float *E, const float *F, int width, float *dW, uint8_t *touched)
{
	grads_impl(lanes, false, x, lo, hi, skip, E, F, width, dW, touched);
}

DMF_KERNEL_LANES(entry_val_grads,
				 (const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
				  const float *E, const float *F, int width, float *dW, uint8_t *touched),
				 (x, lo, hi, skip, E, F, width, dW, touched))

DMF_KERNEL_LANES(entry_grads,
				 (const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
				  const float *E, const float *F, int width, float *dW, uint8_t *touched),
				 (x, lo, hi, skip, E, F, width, dW, touched))

/* entries lo .. hi - 1's sums (grouped.h): of val W, and of W unless val holds the inputs */
static inline void
group_sums(const DmfGroupedCsr *gx, int64_t lo, int64_t hi, const uint8_t *skip,
		   const float *W, int width, float *sums)
{
	if (gx->encoded)
		DMF_CALL(entry_val_sums, (&gx->x, lo, hi, skip, W, width, sums));
	else
		DMF_CALL(entry_sums, (&gx->x, lo, hi, skip, W, width, sums));
}

void
dmf_grouped_totals(const DmfGroupedCsr *gx, int32_t r0, int32_t r1,
				   const float *W, int width, float *totals)
{
	for (int32_t r = r0; r < r1; r++)
		group_sums(gx, gx->x.rowptr[r], gx->x.rowptr[r + 1], NULL, W, width,
				   totals + (size_t) r * DMF_TOTALS_STRIDE(width));
}

/* o = bias + s (a (total - hidden) + c (total_W - hidden_W)) */
DMF_INLINE void
combine_impl(float *restrict o, const float *total, const float *hidden, int width,
			 float s, float a, float c, const float *bias)
{
	for (int j = 0; j < width; j++)
		o[j] = s * (a * (total[j] - hidden[j]) + c * (total[width + j] - hidden[width + j])) +
			bias[j];
}

DMF_KERNEL(combine,
		   (float *restrict o, const float *total, const float *hidden, int width,
			float s, float a, float c, const float *bias),
		   (o, total, hidden, width, s, a, c, bias))

/* o = bias + s (total - hidden), the inputs encoded in val */
DMF_INLINE void
combine_val_impl(float *restrict o, const float *total, const float *hidden, int width,
				 float s, const float *bias)
{
	for (int j = 0; j < width; j++)
		o[j] = s * (total[j] - hidden[j]) + bias[j];
}

DMF_KERNEL(combine_val,
		   (float *restrict o, const float *total, const float *hidden, int width,
			float s, const float *bias),
		   (o, total, hidden, width, s, bias))

/* E[0 .. 2 width) += (sa d, sc d) */
DMF_INLINE void
dsum_add_impl(float *restrict E, const float *d, int width, float sa, float sc)
{
	for (int j = 0; j < width; j++)
	{
		E[j] += sa * d[j];
		E[width + j] += sc * d[j];
	}
}

/* Ev = E - (sa d, sc d) */
DMF_INLINE void
dsum_less_impl(float *Ev, const float *E, const float *d, int width, float sa, float sc)
{
	for (int j = 0; j < width; j++)
	{
		Ev[j] = E[j] - sa * d[j];
		Ev[width + j] = E[width + j] - sc * d[j];
	}
}

DMF_KERNEL(dsum_add,
		   (float *restrict E, const float *d, int width, float sa, float sc),
		   (E, d, width, sa, sc))
DMF_KERNEL(dsum_less,
		   (float *Ev, const float *E, const float *d, int width, float sa, float sc),
		   (Ev, E, d, width, sa, sc))

static inline const int64_t *
row_seg(const DmfGroupedCsr *gx, int32_t r)
{
	return gx->seg + (size_t) r * (gx->n_groups + 1);
}

/*
 * Row r's sums: those of each group with a virtual row into scratch, and
 * the whole row's, the sum of all its groups in order, after them.
 */
static void
row_group_sums(const DmfVirtualRows *vr, int v0, const uint8_t *skip,
			   const float *W, int width, float *scratch)
{
	const DmfGroupedCsr *gx = vr->gx;
	const int64_t *seg = row_seg(gx, vr->row[v0]);
	size_t		stride = DMF_TOTALS_STRIDE(width);
	float	   *total = scratch + (size_t) gx->n_groups * stride;

	memset(total, 0, sizeof(float) * stride);
	for (int g = 0; g < gx->n_groups; g++)
	{
		float	   *s = scratch + (size_t) g * stride;

		if (seg[g] == seg[g + 1])
			continue;
		group_sums(gx, seg[g], seg[g + 1], skip, W, width, s);
		for (size_t j = 0; j < (gx->encoded ? (size_t) width : 2 * (size_t) width); j++)
			total[j] += s[j];
		total[2 * width] += s[2 * width];
		total[2 * width + 1] += s[2 * width + 1];
	}
}

void
dmf_grouped_forward(const DmfVirtualRows *vr, int task, const uint8_t *skip,
					const DmfInputCoding *coding, const float *W,
					const float *bias, int width, float *out, float *scale,
					float *enc_a, float *enc_c, float *scratch)
{
	const DmfGroupedCsr *gx = vr->gx;
	size_t		stride = DMF_TOTALS_STRIDE(width);
	int			v_end = vr->task_start[task + 1];

	for (int v0 = vr->task_start[task]; v0 < v_end;)
	{
		int32_t		r = vr->row[v0];
		int			v1 = v0;
		const float *total;

		while (v1 < v_end && vr->row[v1] == r)
			v1++;
		if (vr->totals)
			total = vr->totals + (size_t) r * stride;
		else
		{
			row_group_sums(vr, v0, skip, W, width, scratch);
			total = scratch + (size_t) gx->n_groups * stride;
		}
		for (int v = v0; v < v1; v++)
		{
			int			g = vr->group[v];
			const int64_t *seg = row_seg(gx, r);
			float	   *hidden = scratch + (size_t) (g < 0 ? 0 : g) * stride;
			float	   *o = out + (size_t) v * width;
			double		kept;
			float		s,
						a,
						c;

			if (g < 0 || seg[g] == seg[g + 1])
				memset(hidden, 0, sizeof(float) * stride);
			else if (vr->totals)
				group_sums(gx, seg[g], seg[g + 1], skip, W, width, hidden);
			kept = (double) total[2 * width] - hidden[2 * width];
			if (gx->encoded)
			{
				/* val holds the input itself */
				a = 1.0f;
				c = 0.0f;
			}
			else
				dmf_input_coefficients(coding->encoding, coding->rating_min, coding->rating_max,
									   kept > 0.0 ? ((double) total[2 * width + 1] -
													 hidden[2 * width + 1]) / kept : 0.0,
									   &a, &c);
			if (kept <= 0.0)
				s = 0.0f;
			else if (coding->row_scale == DMF_ROW_SCALE_NONE)
				s = 1.0f;
			else if (coding->row_scale == DMF_ROW_SCALE_MEAN)
				s = (float) (1.0 / kept);
			else
				s = (float) (1.0 / sqrt(kept));
			scale[v] = s;
			enc_a[v] = a;
			enc_c[v] = c;
			if (gx->encoded)
				DMF_CALL(combine_val, (o, total, hidden, width, s, bias));
			else
				DMF_CALL(combine, (o, total, hidden, width, s, a, c, bias));
		}
		v0 = v1;
	}
}

/* the first column (row of W) of backward task `task`'s range */
static int32_t
task_first_column(const DmfGroupedCsr *gx, int task)
{
	return (int32_t) ((int64_t) gx->x.ncols * task / DMF_GROUPED_TASKS);
}

void
dmf_grouped_dsum(const DmfVirtualRows *vr, int task, const float *scale,
				 const float *enc_a, const float *enc_c, const float *dout, int width)
{
	int			v_end = vr->task_start[task + 1];

	for (int v0 = vr->task_start[task]; v0 < v_end;)
	{
		int			v1 = v0;

		while (v1 < v_end && vr->row[v1] == vr->row[v0])
			v1++;
		/* the row's sums over all its virtual rows, in the first's place */
		{
			float	   *E = vr->dsum + (size_t) v0 * 2 * width;

			memset(E, 0, sizeof(float) * 2 * width);
			for (int v = v0; v < v1; v++)
			{
				DMF_CALL(dsum_add, (E, dout + (size_t) v * width, width,
									scale[v] * enc_a[v], scale[v] * enc_c[v]));
			}
			/* each virtual row: all but its own */
			for (int v = v1 - 1; v >= v0; v--)
			{
				DMF_CALL(dsum_less, (vr->dsum + (size_t) v * 2 * width, E,
									 dout + (size_t) v * width, width,
									 scale[v] * enc_a[v], scale[v] * enc_c[v]));
			}
		}
		v0 = v1;
	}
	/* where each virtual row's hidden group crosses into each task of dW's rows */
	for (int v = vr->task_start[task]; v < v_end; v++)
	{
		const int64_t *seg = row_seg(vr->gx, vr->row[v]);
		int64_t		k = seg[vr->group[v]],
					hi = seg[vr->group[v] + 1];
		int64_t    *runs = vr->runs + (size_t) v * (DMF_GROUPED_TASKS + 1);

		runs[0] = k;
		for (int t = 1; t < DMF_GROUPED_TASKS; t++)
		{
			int32_t		bound = task_first_column(vr->gx, t);

			while (k < hi && vr->gx->x.col[k] < bound)
				k++;
			runs[t] = k;
		}
		runs[DMF_GROUPED_TASKS] = hi;
	}
}

void
dmf_grouped_backward(const DmfVirtualRows *vr, int task, const uint8_t *skip, int width,
					 float *dW)
{
	const DmfGroupedCsr *gx = vr->gx;

	for (int v = 0; v < vr->nv; v++)
	{
		const int64_t *runs = vr->runs + (size_t) v * (DMF_GROUPED_TASKS + 1);
		int64_t		lo = runs[task],
					hi = runs[task + 1];
		const float *E = vr->dsum + (size_t) v * 2 * width;

		if (lo < hi)
		{
			if (gx->encoded)
				DMF_CALL(entry_val_grads, (&gx->x, lo, hi, skip, E, NULL, width, dW, vr->touched));
			else
				DMF_CALL(entry_grads, (&gx->x, lo, hi, skip, E, E + width, width, dW, vr->touched));
		}
	}
	if (vr->adam)
		dmf_adam_step_touched_rows(vr->adam, vr->touched, task_first_column(gx, task),
								   task_first_column(gx, task + 1));
}
