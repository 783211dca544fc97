/*
 * sparse.h
 *	  Compressed sparse rows (CSR) for rating matrices, and the sparse first
 *	  layer of a branch.
 *
 * A user's input is a row of the rating matrix, an item's input a column:
 * we keep the matrix once as CSR (user rows) and once transposed (item
 * rows).  The first layer multiplies such sparse rows by a dense weight
 * matrix, so an epoch costs O(nnz * width) and never O(users * items).
 */
#ifndef DMF_SPARSE_H
#define DMF_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Whether the ascending a[0..n) holds v (a binary search). */
static inline bool
dmf_sorted_has(const int32_t *a, int64_t n, int32_t v)
{
	int64_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		int64_t		mid = lo + (hi - lo) / 2;

		if (a[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a[lo] == v;
}

typedef struct DmfCsr
{
	int32_t		nrows;
	int32_t		ncols;
	int64_t		nnz;
	int64_t    *rowptr;			/* nrows + 1 offsets into col/val */
	int32_t    *col;			/* column of each entry, ascending per row */
	float	   *val;			/* encoded input value of each entry */
} DmfCsr;

/*
 * Build from coordinate triples: each row ascending by column, equal
 * columns in the order of their triples, in O(L log L) for a row of L.
 * Returns the number of duplicate (row, col) pairs; when non-zero,
 * *dup_index is one offending triple (the second of the first pair of the
 * first row that has one).  If position is not NULL, position[k] is where
 * triple k went.  Checks for interrupts: on the backend's thread only.
 */
int64_t		dmf_csr_build(DmfCsr *m, int32_t nrows, int32_t ncols, int64_t n,
						  const int32_t *rows, const int32_t *cols,
						  const float *vals, int64_t *dup_index,
						  int64_t *position);
void		dmf_csr_free(DmfCsr *m);

/* How a row's encoded inputs are scaled, by the count of its kept entries. */
typedef enum DmfRowScale
{
	DMF_ROW_SCALE_SQRT = 0,		/* 1 / sqrt(kept) */
	DMF_ROW_SCALE_NONE = 1,		/* 1 */
	DMF_ROW_SCALE_MEAN = 2		/* 1 / kept */
} DmfRowScale;

/*
 * How raw ratings become inputs (see encoding.h): input = a_r * rating + c_r
 * for row r, a_r and c_r fixed by the encoding, the rating range and, when
 * centered, the mean of the row's kept entries.
 */
typedef struct DmfInputCoding
{
	int			encoding;		/* DmfInputEncoding */
	int			row_scale;		/* DmfRowScale */
	double		rating_min;
	double		rating_max;
} DmfInputCoding;

/*
 * out[r, :] = bias + s_r * sum over kept entries k of row rows[r]:
 *             (a_r val_k + c_r) * W[col_k, :]
 * where an entry is kept unless skip != NULL && skip[k] (k indexes the
 * entries of x), s_r = 1 / sqrt(kept entries) (0 when none is kept), and
 * a_r, c_r encode the raw ratings in val (DmfInputCoding).  s_r, a_r, c_r
 * are written to scale[r], enc_a[r], enc_c[r] for the backward pass.
 * W is ncols x width, row-major; out is nb x width.
 */
void		dmf_sparse_forward(const DmfCsr *x, const int32_t *rows, int nb,
							   const uint8_t *skip, const DmfInputCoding *coding,
							   const float *W, const float *bias, int width,
							   float *out, float *scale, float *enc_a,
							   float *enc_c);

/* dW[col_k, :] += s_r (a_r val_k + c_r) dout[r, :] over the kept entries. */
void		dmf_sparse_backward(const DmfCsr *x, const int32_t *rows, int nb,
								const uint8_t *skip, const float *scale,
								const float *enc_a, const float *enc_c,
								const float *dout, int width, float *dW);

/*
 * The runs of rows[0..nb): the columns of x cut into n_runs equal ranges,
 * runs[r * (n_runs + 1) + t] is the first entry of row rows[r] in range t
 * or after it (the entries of a row ascend by column).
 */
void		dmf_csr_runs(const DmfCsr *x, const int32_t *rows, int nb, int n_runs,
						 int64_t *runs);

/*
 * dmf_sparse_backward over the entries runs[r * stride] ..
 * runs[r * stride + 1] - 1 of each row (one range of x's columns, i.e. of
 * dW's rows, from dmf_csr_runs), the rows in the same order: each element
 * of dW adds the same terms in the same order, so ranges split between
 * threads give the bits of one call.
 */
void		dmf_sparse_backward_runs(const DmfCsr *x, const int32_t *rows, int nb,
									 const uint8_t *skip, const float *scale,
									 const float *enc_a, const float *enc_c,
									 const float *dout, int width, const int64_t *runs,
									 int stride, float *dW);

#endif
