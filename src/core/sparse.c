/*
 * sparse.c
 *	  CSR construction and the sparse x dense kernels of the first layer.
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "encoding.h"
#include "sparse.h"

/*
 * A row's entries while it is sorted: by column, and equal columns in the
 * order of the triples (their origin ascends as they arrive), so that the
 * order is total and the unstable sort gives what a stable one would.
 */
typedef struct CsrRow
{
	int32_t    *col;
	float	   *val;
	int64_t    *origin;
} CsrRow;

static inline void
csr_row_swap(const CsrRow *r, int64_t i, int64_t j)
{
	int32_t		c = r->col[i];
	float		v = r->val[i];
	int64_t		o = r->origin[i];

	r->col[i] = r->col[j];
	r->val[i] = r->val[j];
	r->origin[i] = r->origin[j];
	r->col[j] = c;
	r->val[j] = v;
	r->origin[j] = o;
}

#define SORT_NAME csr_row_sort
#define SORT_CTX const CsrRow *
#define SORT_LESS(r, i, j) \
	((r)->col[i] < (r)->col[j] || ((r)->col[i] == (r)->col[j] && (r)->origin[i] < (r)->origin[j]))
#define SORT_SWAP(r, i, j) csr_row_swap((r), (i), (j))
#include "sort_template.h"

int64_t
dmf_csr_build(DmfCsr *m, int32_t nrows, int32_t ncols, int64_t n,
			  const int32_t *rows, const int32_t *cols, const float *vals,
			  int64_t *dup_index, int64_t *position)
{
	int64_t    *next;
	int64_t    *origin;
	int64_t		dups = 0;
	int64_t		work = 0;

	m->nrows = nrows;
	m->ncols = ncols;
	m->nnz = n;
	m->rowptr = dmf_alloc0(sizeof(int64_t) * ((size_t) nrows + 1));
	m->col = dmf_alloc(sizeof(int32_t) * (size_t) (n > 0 ? n : 1));
	m->val = dmf_alloc(sizeof(float) * (size_t) (n > 0 ? n : 1));
	origin = dmf_alloc(sizeof(int64_t) * (size_t) (n > 0 ? n : 1));

	/* counting sort by row */
	for (int64_t k = 0; k < n; k++)
		m->rowptr[rows[k] + 1]++;
	for (int32_t r = 0; r < nrows; r++)
		m->rowptr[r + 1] += m->rowptr[r];
	next = dmf_alloc(sizeof(int64_t) * ((size_t) nrows + 1));
	memcpy(next, m->rowptr, sizeof(int64_t) * ((size_t) nrows + 1));
	for (int64_t k = 0; k < n; k++)
	{
		int64_t		pos = next[rows[k]]++;

		if ((k & 0xFFFFF) == 0)
			dmf_check_interrupts();
		m->col[pos] = cols[k];
		m->val[pos] = vals[k];
		origin[pos] = k;
	}
	dmf_free(next);

	/*
	 * Each row by column, in O(L log L) for a row of L entries: an item
	 * rated by a million users makes a row of a million.  The sort checks
	 * for interrupts as it goes, over all rows.
	 */
	for (int32_t r = 0; r < nrows; r++)
	{
		int64_t		lo = m->rowptr[r];
		int64_t		hi = m->rowptr[r + 1];
		CsrRow		row = {m->col + lo, m->val + lo, origin + lo};

		csr_row_sort(&row, hi - lo, &work);
		for (int64_t a = lo + 1; a < hi; a++)
		{
			if (m->col[a] == m->col[a - 1])
			{
				if (dups == 0 && dup_index)
					*dup_index = origin[a];
				dups++;
			}
		}
	}
	if (position)
		for (int64_t k = 0; k < n; k++)
			position[origin[k]] = k;
	dmf_free(origin);
	return dups;
}

void
dmf_csr_free(DmfCsr *m)
{
	if (m->rowptr)
		dmf_free(m->rowptr);
	if (m->col)
		dmf_free(m->col);
	if (m->val)
		dmf_free(m->val);
	memset(m, 0, sizeof(*m));
}

/*
 * The width of the first layer goes in chunks of SPARSE_VECTORS vectors of
 * `lanes` floats held in registers (16 lanes with AVX-512, 8 with AVX2 or
 * less: DMF_KERNEL_LANES): the forward pass sums a row's output chunk in
 * registers over all the row's entries instead of loading and storing it
 * at each entry, and the backward pass keeps the row's gradient chunk in
 * registers while it adds it to each entry's row of dW.  Every element
 * adds the same terms in the same order as one at a time, so the results
 * are the same to the bit whatever the width.
 */
#define SPARSE_VECTORS 8

/* o[0 .. SPARSE_VECTORS * lanes) = sum over the kept entries of (a val + c) W[col, j0 ..] */
DMF_INLINE void
forward_chunk(int lanes, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
			  float a, float c, const float *W, int width, int j0, float *o)
{
	if (lanes == 16)
	{
		DmfFloat16	acc[SPARSE_VECTORS];

		memset(acc, 0, sizeof(acc));
		for (int64_t k = lo; k < hi; k++)
		{
			const float *w = W + (size_t) x->col[k] * width + j0;
			float		v = a * x->val[k] + c;

			if (skip && skip[k])
				continue;
			for (int q = 0; q < SPARSE_VECTORS; q++)
			{
				DmfFloat16	wq;

				memcpy(&wq, w + 16 * q, sizeof(wq));
				acc[q] += v * wq;
			}
		}
		memcpy(o, acc, sizeof(acc));
	}
	else
	{
		DmfFloat8	acc[SPARSE_VECTORS];

		memset(acc, 0, sizeof(acc));
		for (int64_t k = lo; k < hi; k++)
		{
			const float *w = W + (size_t) x->col[k] * width + j0;
			float		v = a * x->val[k] + c;

			if (skip && skip[k])
				continue;
			for (int q = 0; q < SPARSE_VECTORS; q++)
			{
				DmfFloat8	wq;

				memcpy(&wq, w + 8 * q, sizeof(wq));
				acc[q] += v * wq;
			}
		}
		memcpy(o, acc, sizeof(acc));
	}
}

/* dW[col, j0 .. + SPARSE_VECTORS * lanes) += s (a val + c) d over the kept entries */
DMF_INLINE void
backward_chunk(int lanes, const DmfCsr *x, int64_t lo, int64_t hi, const uint8_t *skip,
			   float s, float a, float c, const float *d, int width, int j0, float *dW)
{
	if (lanes == 16)
	{
		DmfFloat16	dq[SPARSE_VECTORS];

		memcpy(dq, d, sizeof(dq));
		for (int64_t k = lo; k < hi; k++)
		{
			float	   *g = dW + (size_t) x->col[k] * width + j0;
			float		v = s * (a * x->val[k] + c);

			if (skip && skip[k])
				continue;
			for (int q = 0; q < SPARSE_VECTORS; q++)
			{
				DmfFloat16	gq;

				memcpy(&gq, g + 16 * q, sizeof(gq));
				gq += v * dq[q];
				memcpy(g + 16 * q, &gq, sizeof(gq));
			}
		}
	}
	else
	{
		DmfFloat8	dq[SPARSE_VECTORS];

		memcpy(dq, d, sizeof(dq));
		for (int64_t k = lo; k < hi; k++)
		{
			float	   *g = dW + (size_t) x->col[k] * width + j0;
			float		v = s * (a * x->val[k] + c);

			if (skip && skip[k])
				continue;
			for (int q = 0; q < SPARSE_VECTORS; q++)
			{
				DmfFloat8	gq;

				memcpy(&gq, g + 8 * q, sizeof(gq));
				gq += v * dq[q];
				memcpy(g + 8 * q, &gq, sizeof(gq));
			}
		}
	}
}

DMF_INLINE void
sparse_forward_impl(int lanes, const DmfCsr *x, const int32_t *rows, int nb,
					const uint8_t *skip, const DmfInputCoding *coding,
					const float *W, const float *bias, int width, float *out,
					float *scale, float *enc_a, float *enc_c)
{
	int			chunk = SPARSE_VECTORS * lanes;

	for (int r = 0; r < nb; r++)
	{
		int32_t		row = rows[r];
		int64_t		lo = x->rowptr[row];
		int64_t		hi = x->rowptr[row + 1];
		float	   *restrict o = out + (size_t) r * width;
		int64_t		kept = 0;
		int			j0;
		double		sum = 0.0;
		float		s,
					a,
					c;

		/* the row's kept entries: their count, and their mean if centered */
		for (int64_t k = lo; k < hi; k++)
		{
			if (skip && skip[k])
				continue;
			sum += x->val[k];
			kept++;
		}
		dmf_input_coefficients(coding->encoding, coding->rating_min,
							   coding->rating_max,
							   kept > 0 ? sum / (double) kept : 0.0, &a, &c);
		if (kept == 0)
			s = 0.0f;
		else if (coding->row_scale == DMF_ROW_SCALE_NONE)
			s = 1.0f;
		else if (coding->row_scale == DMF_ROW_SCALE_MEAN)
			s = 1.0f / (float) kept;
		else
			s = 1.0f / sqrtf((float) kept);
		scale[r] = s;
		enc_a[r] = a;
		enc_c[r] = c;

		for (j0 = 0; j0 + chunk <= width; j0 += chunk)
			forward_chunk(lanes, x, lo, hi, skip, a, c, W, width, j0, o + j0);
		if (j0 < width)
		{
			/* the rest of the width, element by element */
			memset(o + j0, 0, sizeof(float) * (width - j0));
			for (int64_t k = lo; k < hi; k++)
			{
				const float *restrict w;
				float		v;

				if (skip && skip[k])
					continue;
				w = W + (size_t) x->col[k] * width;
				v = a * x->val[k] + c;
				for (int j = j0; j < width; j++)
					o[j] += v * w[j];
			}
		}
		for (int j = 0; j < width; j++)
			o[j] = o[j] * s + bias[j];
	}
}

/*
 * Row r's entries: all of them, or with runs != NULL the entries
 * runs[r * stride] .. runs[r * stride + 1] - 1.
 */
DMF_INLINE void
sparse_backward_impl(int lanes, const DmfCsr *x, const int32_t *rows, int nb,
					 const uint8_t *skip, const float *scale,
					 const float *enc_a, const float *enc_c,
					 const float *dout, int width, const int64_t *runs, int stride,
					 float *dW)
{
	int			chunk = SPARSE_VECTORS * lanes;

	for (int r = 0; r < nb; r++)
	{
		int32_t		row = rows[r];
		int64_t		lo = x->rowptr[row];
		int64_t		hi = x->rowptr[row + 1];
		const float *restrict d = dout + (size_t) r * width;
		float		s = scale[r];
		int			j0;

		if (s == 0.0f)
			continue;
		if (runs)
		{
			lo = runs[(size_t) r * stride];
			hi = runs[(size_t) r * stride + 1];
			if (lo == hi)
				continue;
		}
		for (j0 = 0; j0 + chunk <= width; j0 += chunk)
			backward_chunk(lanes, x, lo, hi, skip, s, enc_a[r], enc_c[r], d + j0,
						   width, j0, dW);
		for (int64_t k = lo; k < hi && j0 < width; k++)
		{
			float	   *restrict g;
			float		v;

			/* the rest of the width, element by element */
			if (skip && skip[k])
				continue;
			g = dW + (size_t) x->col[k] * width;
			v = s * (enc_a[r] * x->val[k] + enc_c[r]);
			for (int j = j0; j < width; j++)
				g[j] += v * d[j];
		}
	}
}

DMF_KERNEL_LANES(sparse_forward,
				 (const DmfCsr *x, const int32_t *rows, int nb, const uint8_t *skip,
				  const DmfInputCoding *coding, const float *W, const float *bias,
				  int width, float *out, float *scale, float *enc_a, float *enc_c),
				 (x, rows, nb, skip, coding, W, bias, width, out, scale, enc_a, enc_c))

DMF_KERNEL_LANES(sparse_backward,
				 (const DmfCsr *x, const int32_t *rows, int nb, const uint8_t *skip,
				  const float *scale, const float *enc_a, const float *enc_c,
				  const float *dout, int width, const int64_t *runs, int stride, float *dW),
				 (x, rows, nb, skip, scale, enc_a, enc_c, dout, width, runs, stride, dW))

void
dmf_sparse_forward(const DmfCsr *x, const int32_t *rows, int nb,
				   const uint8_t *skip, const DmfInputCoding *coding,
				   const float *W, const float *bias, int width, float *out,
				   float *scale, float *enc_a, float *enc_c)
{
	DMF_CALL(sparse_forward, (x, rows, nb, skip, coding, W, bias, width, out,
							  scale, enc_a, enc_c));
}

void
dmf_sparse_backward(const DmfCsr *x, const int32_t *rows, int nb,
					const uint8_t *skip, const float *scale,
					const float *enc_a, const float *enc_c,
					const float *dout, int width, float *dW)
{
	DMF_CALL(sparse_backward, (x, rows, nb, skip, scale, enc_a, enc_c, dout,
							   width, NULL, 0, dW));
}

void
dmf_sparse_backward_runs(const DmfCsr *x, const int32_t *rows, int nb,
						 const uint8_t *skip, const float *scale,
						 const float *enc_a, const float *enc_c,
						 const float *dout, int width, const int64_t *runs,
						 int stride, float *dW)
{
	DMF_CALL(sparse_backward, (x, rows, nb, skip, scale, enc_a, enc_c, dout,
							   width, runs, stride, dW));
}

void
dmf_csr_runs(const DmfCsr *x, const int32_t *rows, int nb, int n_runs, int64_t *runs)
{
	for (int r = 0; r < nb; r++)
	{
		int64_t		k = x->rowptr[rows[r]];
		int64_t		hi = x->rowptr[rows[r] + 1];
		int64_t    *out = runs + (size_t) r * (n_runs + 1);

		out[0] = k;
		for (int t = 1; t < n_runs; t++)
		{
			int32_t		bound = (int32_t) ((int64_t) x->ncols * t / n_runs);

			while (k < hi && x->col[k] < bound)
				k++;
			out[t] = k;
		}
		out[n_runs] = hi;
	}
}
