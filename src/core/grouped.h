/*
 * grouped.h
 *	  The sparse first layer over rows with one group of their inputs hidden.
 *
 * The alternating training (train_alternating.c) hides from a row the
 * inputs that are targets of the pairs it predicts.  The other side's
 * entities are cut into groups, and row r "without group g" is a virtual
 * row (r, g).  Its first layer is the row's whole sum minus its sum over
 * group g, so one pass over a row's entries gives the first layer of all
 * its virtual rows, and one pass back gives their gradients: a row costs
 * one encoding, not one per group.
 *
 * The inputs are encoded as in sparse.h: input = a * val + c, with a and c
 * (and the scale s) those of the virtual row's kept entries, so a virtual
 * row's output is the same as dmf_sparse_forward's over the row with group
 * g skipped, up to the order of the float additions.
 */
#ifndef DMF_GROUPED_H
#define DMF_GROUPED_H

#include <stdbool.h>
#include <stdint.h>

#include "sparse.h"

/* A CSR whose rows hold their entries by group of their column. */
typedef struct DmfGroupedCsr
{
	DmfCsr		x;				/* within a group, ascending columns */
	DmfInputCoding coding;
	/*
	 * With the offset encoding an input does not depend on its row: val
	 * holds a * rating + c, and the sums of W (the "c" part) are left out.
	 */
	bool		encoded;
	int			n_groups;
	/* row r's group g: entries seg[r * (n_groups + 1) + g] .. [... + g + 1) */
	int64_t    *seg;
} DmfGroupedCsr;

void		dmf_grouped_alloc(DmfGroupedCsr *gx, const DmfCsr *x, int n_groups,
							  const DmfInputCoding *coding);
void		dmf_grouped_free(DmfGroupedCsr *gx);

/* Regroups rows [r0, r1) of x (the CSR gx was allocated for) by group_of_col. */
void		dmf_grouped_fill(DmfGroupedCsr *gx, const DmfCsr *x, const int32_t *group_of_col,
							 int32_t r0, int32_t r1);

/*
 * The virtual rows of one pass, with what its tasks need.  A task takes
 * whole real rows (a row's virtual rows are consecutive): the cut is fixed
 * by the rows, never by the number of threads.
 */
typedef struct DmfVirtualRows
{
	const DmfGroupedCsr *gx;
	int			nv;
	int32_t    *row;			/* each virtual row's row of gx */
	int32_t    *group;			/* and its hidden group */
	int			n_tasks;
	int32_t    *task_start;		/* n_tasks + 1 virtual rows */

	/*
	 * Rows whose weights stay fixed over several passes (the frozen side)
	 * keep their whole sums: totals[r * DMF_TOTALS_STRIDE(width)], set by
	 * dmf_grouped_totals; NULL to sum each row whole in the pass.
	 */
	const float *totals;
	float	   *scratch;		/* per worker: DMF_GROUPED_SCRATCH(n_groups, width) */
	float	   *dsum;			/* backward: nv x 2 width */
	int64_t    *runs;			/* backward: nv x (DMF_GROUPED_TASKS + 1) */
	uint8_t    *touched;		/* backward: inputs (rows of W) a gradient reached */

	/*
	 * backward: each task then takes Adam's step over the touched rows of
	 * its range, whose gradient it alone wrote (adam.h); NULL: the caller
	 * steps them
	 */
	const struct DmfAdamStep *adam;
} DmfVirtualRows;

/* Tasks of the backward pass: equal ranges of W's rows (the inputs). */
#define DMF_GROUPED_TASKS 32

/* A row's totals: its sums of val * W and of W, its kept count and sum of val. */
#define DMF_TOTALS_STRIDE(width) (2 * (size_t) (width) + 2)
#define DMF_GROUPED_SCRATCH(n_groups, width) (((size_t) (n_groups) + 1) * DMF_TOTALS_STRIDE(width))

/* totals of rows [r0, r1) of gx: every entry kept */
void		dmf_grouped_totals(const DmfGroupedCsr *gx, int32_t r0, int32_t r1,
							   const float *W, int width, float *totals);

/*
 * out[v] = bias + s_v (a_v sum + c_v sum_W) over the kept entries of
 * virtual rows of task `task`, with scale, enc_a and enc_c per virtual row
 * as dmf_sparse_forward writes them.  scratch: this worker's.
 */
void		dmf_grouped_forward(const DmfVirtualRows *vr, int task, const uint8_t *skip,
								const DmfInputCoding *coding, const float *W,
								const float *bias, int width, float *out, float *scale,
								float *enc_a, float *enc_c, float *scratch);

/*
 * Backward, part 1, the virtual rows of task `task`: what the entries of
 * each virtual row's hidden group get from the row's other virtual rows,
 * into vr->dsum (the gradient over val, then the constant), and where
 * those entries cross into each task of part 2 (vr->runs).
 */
void		dmf_grouped_dsum(const DmfVirtualRows *vr, int task, const float *scale,
							 const float *enc_a, const float *enc_c, const float *dout,
							 int width);

/*
 * Backward, part 2, task `task` of DMF_GROUPED_TASKS: dW[col] += val *
 * dsum + dsum' over the kept entries with columns in the task's range,
 * every virtual row in order (so the ranges split between threads give the
 * bits of one call); marks vr->touched[col], and with vr->adam steps the
 * range's touched rows of W and clears their marks.
 */
void		dmf_grouped_backward(const DmfVirtualRows *vr, int task, const uint8_t *skip,
								 int width, float *dW);

#endif
