/*
 * test_numeric.c
 *	  Unit tests of the numeric core, outside the server: gradients of a
 *	  branch against finite differences, the quantizers, CSR building,
 *	  fold-in and the vector dot product.
 *
 * Built with -DDMF_STANDALONE by test/t/001_unit.sh.
 */
#include "platform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "encoding.h"
#include "fold_in.h"
#include "grouped.h"
#include "helper_thread.h"
#include "levels.h"
#include "implicit.h"
#include "model_format.h"
#include "prepare.h"
#include "network.h"
#include "quantizer.h"
#include "rng.h"
#include "score.h"
#include "sparse.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond, ...) \
	do { \
		if (cond) passed++; \
		else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
	} while (0)

double
dmf_now_seconds(void)
{
	return 0.0;
}

/* loss = sum(out .* R): its gradient with respect to out is R */
static double
branch_loss(const DmfBranch *b, DmfBranchWork *w, const DmfCsr *x,
			const int32_t *rows, int nb, const uint8_t *skip, const float *R)
{
	int			dim = b->sizes[b->n_layers];
	const float *out = dmf_branch_forward(b, w, x, rows, nb, skip, 0.0f, NULL);
	double		loss = 0.0;

	for (int k = 0; k < nb * dim; k++)
		loss += (double) out[k] * R[k];
	return loss;
}

static void
test_branch_gradient(DmfActivation act, int encoding, int row_scale)
{
	enum {NROWS = 6, NCOLS = 9, NNZ = 25};
	int			sizes[4] = {NCOLS, 7, 5, 4};
	int32_t		r[NNZ], c[NNZ];
	float		v[NNZ];
	DmfCsr		x;
	DmfBranch	b;
	DmfBranchWork w;
	DmfRng		rng;
	int32_t		rows[NROWS] = {0, 1, 2, 3, 4, 5};
	uint8_t		skip[NNZ];
	float		R[NROWS * 4];
	float	   *grad;
	int64_t		dup = 0;
	int			bad = 0;
	double		worst = 0.0;

	dmf_rng_seed(&rng, 1234 + act * 10 + encoding);
	/* distinct (row, col) pairs: a simple pattern */
	for (int k = 0; k < NNZ; k++)
	{
		r[k] = k % NROWS;
		c[k] = (k * 5 + k / NROWS) % NCOLS;
		v[k] = 1.0f + (float) dmf_rng_below(&rng, 5);
	}
	CHECK(dmf_csr_build(&x, NROWS, NCOLS, NNZ, r, c, v, &dup, NULL) == 0,
		  "pattern has duplicates");
	for (int k = 0; k < NNZ; k++)
		skip[k] = (k % 7) == 3;		/* some entries hidden, as a block does */

	dmf_branch_layout(&b, 3, sizes, act);
	b.coding.encoding = encoding;
	b.coding.row_scale = row_scale;
	b.coding.rating_min = 1.0;
	b.coding.rating_max = 5.0;
	dmf_branch_init(&b, &rng);
	/* biases away from zero so relu units are not all on a kink */
	for (int l = 0; l < b.n_layers; l++)
		for (int j = 0; j < b.sizes[l + 1]; j++)
			b.params[b.b_off[l] + j] = (float) (0.3 * dmf_rng_normal(&rng));
	for (int k = 0; k < NROWS * 4; k++)
		R[k] = (float) dmf_rng_normal(&rng);

	dmf_branch_work_alloc(&w, &b, NROWS, false);
	grad = dmf_alloc0(sizeof(float) * b.n_params);
	branch_loss(&b, &w, &x, rows, NROWS, skip, R);
	{
		float		dout[NROWS * 4];

		memcpy(dout, R, sizeof(dout));
		dmf_branch_backward(&b, &w, &x, rows, NROWS, skip, dout, grad);
	}

	for (size_t p = 0; p < b.n_params; p++)
	{
		float		keep = b.params[p];
		double		h = 1e-3,
					lp,
					lm,
					num,
					err;

		b.params[p] = keep + (float) h;
		lp = branch_loss(&b, &w, &x, rows, NROWS, skip, R);
		b.params[p] = keep - (float) h;
		lm = branch_loss(&b, &w, &x, rows, NROWS, skip, R);
		b.params[p] = keep;
		num = (lp - lm) / (2 * h);
		err = fabs(num - grad[p]) / fmax(1e-2, fabs(num) + fabs(grad[p]));
		if (err > worst)
			worst = err;
		if (err > 5e-2)
			bad++;
	}
	/* relu kinks can break a few finite differences; a wrong formula breaks many */
	CHECK(bad <= (act == DMF_ACT_RELU ? 3 : 0),
		  "activation %s encoding %d row_scale %d: %d of %zu gradients off (worst %.3g)",
		  dmf_activation_names[act], encoding, row_scale, bad, b.n_params, worst);
	dmf_free(grad);
	dmf_branch_work_free(&w, &b);
	dmf_free(b.params);
	dmf_csr_free(&x);
}

static void
test_skip_equals_absent(void)
{
	/* a hidden entry must act exactly as if the rating were not there */
	int32_t		r1[4] = {0, 0, 0, 1}, c1[4] = {0, 1, 2, 1};
	float		v1[4] = {5, 1, 3, 2};
	int32_t		r2[3] = {0, 0, 1}, c2[3] = {0, 2, 1};
	float		v2[3] = {5, 3, 2};
	uint8_t		skip[4] = {0, 1, 0, 0};
	int			sizes[3] = {3, 4, 2};
	DmfCsr		a, b;
	DmfBranch	br;
	DmfBranchWork w;
	DmfRng		rng;
	int32_t		rows[2] = {0, 1};
	float		out_a[4], out_b[4];
	int64_t		dup;

	dmf_rng_seed(&rng, 7);
	dmf_csr_build(&a, 2, 3, 4, r1, c1, v1, &dup, NULL);
	dmf_csr_build(&b, 2, 3, 3, r2, c2, v2, &dup, NULL);
	for (int enc = 0; enc < 2; enc++)
	{
		dmf_branch_layout(&br, 2, sizes, DMF_ACT_TANH);
		br.coding.encoding = enc;
		br.coding.rating_min = 1;
		br.coding.rating_max = 5;
		dmf_branch_init(&br, &rng);
		dmf_branch_work_alloc(&w, &br, 2, false);
		memcpy(out_a, dmf_branch_forward(&br, &w, &a, rows, 2, skip, 0, NULL), sizeof(out_a));
		memcpy(out_b, dmf_branch_forward(&br, &w, &b, rows, 2, NULL, 0, NULL), sizeof(out_b));
		CHECK(memcmp(out_a, out_b, sizeof(out_a)) == 0,
			  "encoding %d: a skipped entry differs from an absent one", enc);
		dmf_branch_work_free(&w, &br);
		dmf_free(br.params);
	}
	dmf_csr_free(&a);
	dmf_csr_free(&b);
}

static bool
any_nonfinite(const float *v, int n)
{
	for (int k = 0; k < n; k++)
		if (!isfinite(v[k]))
			return true;
	return false;
}

/*
 * Normalising never turns a NaN or an infinity into a zero or a unit
 * vector (the callers' finiteness checks must see it), while a row of
 * length zero still becomes the zero "no factor" and others unit length.
 */
static void
test_normalize_nonfinite(void)
{
	enum {DIM = 4};
	float		m[5 * DIM] = {
		3, 0, 4, 0,				/* length 5 */
		0, 0, 0, 0,				/* no factor */
		1, NAN, 2, 3,			/* one NaN */
		NAN, NAN, NAN, NAN,		/* all NaN: its sum of squares is NaN too */
		1, INFINITY, 0, 0		/* an infinity */
	};
	int32_t		r[2] = {0, 0}, c[2] = {0, 2};
	float		v[2] = {4, 2};
	int			sizes[3] = {3, 4, DIM};
	DmfCsr		x;
	DmfBranch	b;
	DmfBranchWork w;
	DmfRng		rng;
	int32_t		row = 0;
	float		out[DIM];
	int64_t		dup;

	dmf_normalize_rows(m, 5, DIM);
	CHECK(fabsf(m[0] - 0.6f) < 1e-6f && fabsf(m[2] - 0.8f) < 1e-6f, "a row of length 5");
	CHECK(m[4] == 0 && m[5] == 0 && m[6] == 0 && m[7] == 0, "a zero row stays zero");
	CHECK(any_nonfinite(m + 2 * DIM, DIM), "a row with one NaN was made finite");
	CHECK(any_nonfinite(m + 3 * DIM, DIM), "a row of NaN was made finite (zeroed)");
	CHECK(any_nonfinite(m + 4 * DIM, DIM), "a row with an infinity was made finite");

	/*
	 * Through a branch: a NaN weight of the first layer feeds a ReLU, which
	 * must pass the NaN on rather than cut it to 0 (the output would then be
	 * the last layer's bias, a factor out of nothing); likewise a NaN bias of
	 * the last layer, and every weight NaN (the forgery of issue 26).
	 */
	dmf_rng_seed(&rng, 11);
	dmf_csr_build(&x, 1, 3, 2, r, c, v, &dup, NULL);
	for (int kind = 0; kind < 4; kind++)
	{
		for (int act = 0; act < DMF_ACT_COUNT; act++)
		{
			dmf_branch_layout(&b, 2, sizes, (DmfActivation) act);
			b.coding.rating_min = 1;
			b.coding.rating_max = 5;
			dmf_branch_init(&b, &rng);
			if (kind == 0)
				b.params[b.w_off[0]] = NAN;		/* W0[0][0]: the input at column 0 */
			else if (kind == 1)
				b.params[b.b_off[0] + 1] = NAN;	/* a hidden unit's bias */
			else if (kind == 2)
				b.params[b.b_off[1] + 2] = NAN;	/* an output's bias */
			else
				for (size_t k = 0; k < b.n_params; k++)
					b.params[k] = NAN;
			dmf_branch_work_alloc(&w, &b, 1, false);
			dmf_branch_factors(&b, &w, &x, &row, 1, out);
			CHECK(any_nonfinite(out, DIM), "activation %s, NaN weight case %d: the factor is finite",
				  dmf_activation_names[act], kind);
			dmf_branch_work_free(&w, &b);
			dmf_free(b.params);
		}
	}
	dmf_csr_free(&x);
}

/*
 * The sparse kernels against a plain double-precision reference, at widths
 * below, at and above their register chunk (128 floats) with a remainder,
 * with a skipped entry and an empty row.
 */
static void
test_sparse_kernels(void)
{
	enum
	{
		ROWS = 5, COLS = 9
	};
	static const int widths[] = {7, 128, 200, 256};
	int32_t		r[ROWS * COLS],
				c[ROWS * COLS];
	float		v[ROWS * COLS];
	int64_t		n = 0,
				dup;
	DmfCsr		x;
	uint8_t		skip[ROWS * COLS] = {0};
	int32_t		rows[3] = {3, 0, 2};	/* row 2 is empty */
	DmfInputCoding coding = {0, 0, 1.0, 5.0};

	for (int i = 0; i < ROWS; i++)
		for (int j = 0; j < COLS; j++)
			if (i != 2 && (i * 7 + j * 3) % 4 != 0)
			{
				r[n] = i;
				c[n] = j;
				v[n] = (float) (1 + (i + 2 * j) % 5);
				n++;
			}
	CHECK(dmf_csr_build(&x, ROWS, COLS, n, r, c, v, &dup, NULL) == 0, "kernel rows");
	skip[x.rowptr[3] + 1] = 1;
	for (int t = 0; t < (int) (sizeof(widths) / sizeof(widths[0])); t++)
	{
		int			width = widths[t];
		float	   *W = dmf_alloc(sizeof(float) * COLS * width);
		float	   *bias = dmf_alloc(sizeof(float) * width);
		float	   *out = dmf_alloc(sizeof(float) * 3 * width);
		float	   *dW = dmf_alloc0(sizeof(float) * COLS * width);
		float		scale[3],
					enc_a[3],
					enc_c[3];
		double		worst_f = 0.0,
					worst_b = 0.0;

		for (int k = 0; k < COLS * width; k++)
			W[k] = sinf(k * 0.37f);
		for (int j = 0; j < width; j++)
			bias[j] = 0.01f * j;
		dmf_sparse_forward(&x, rows, 3, skip, &coding, W, bias, width, out, scale, enc_a, enc_c);
		dmf_sparse_backward(&x, rows, 3, skip, scale, enc_a, enc_c, out, width, dW);
		for (int q = 0; q < 3; q++)
			for (int j = 0; j < width; j++)
			{
				double		want = 0.0;

				for (int64_t k = x.rowptr[rows[q]]; k < x.rowptr[rows[q] + 1]; k++)
					if (!skip[k])
						want += ((double) enc_a[q] * x.val[k] + enc_c[q]) * W[x.col[k] * width + j];
				want = want * scale[q] + bias[j];
				worst_f = fmax(worst_f, fabs(out[q * width + j] - want));
			}
		for (int col = 0; col < COLS; col++)
			for (int j = 0; j < width; j++)
			{
				double		want = 0.0;

				for (int q = 0; q < 3; q++)
					for (int64_t k = x.rowptr[rows[q]]; k < x.rowptr[rows[q] + 1]; k++)
						if (!skip[k] && x.col[k] == col)
							want += (double) scale[q] * (enc_a[q] * x.val[k] + enc_c[q]) * out[q * width + j];
				worst_b = fmax(worst_b, fabs(dW[col * width + j] - want));
			}
		CHECK(scale[2] == 0.0f, "width %d: an empty row has scale %g", width, scale[2]);
		CHECK(worst_f < 1e-4, "width %d: forward off by %g", width, worst_f);
		CHECK(worst_b < 1e-4, "width %d: backward off by %g", width, worst_b);
		dmf_free(W);
		dmf_free(bias);
		dmf_free(out);
		dmf_free(dW);
	}
	dmf_csr_free(&x);
}

/* Two branches of the same layout, parameters zeroed, each with Adam's state. */
static void
twin_branches(int *sizes, DmfBranch *x, DmfBranch *y, DmfAdam *ax, DmfAdam *ay)
{
	CHECK(dmf_branch_layout(x, 2, sizes, DMF_ACT_RELU), "layout");
	*y = *x;
	x->params = dmf_alloc0(sizeof(float) * x->n_params);
	y->params = dmf_alloc0(sizeof(float) * x->n_params);
	dmf_adam_alloc(ax, x->n_params);
	dmf_adam_alloc(ay, x->n_params);
}

static void
twin_branches_free(DmfBranch *x, DmfBranch *y, DmfAdam *ax, DmfAdam *ay)
{
	dmf_adam_free(ax);
	dmf_adam_free(ay);
	dmf_free(x->params);
	dmf_free(y->params);
}

/*
 * The backward with Adam's step in its tasks (vr->adam) gives the bits of
 * the plain backward followed by the lazy step of the touched rows.
 */
static void
adam_in_backward(DmfVirtualRows *vr, const uint8_t *skip, int width, uint8_t *touched)
{
	int			n_cols = vr->gx->x.ncols;
	int			sizes[3] = {n_cols, width, 2};
	DmfBranch	fused,
				later;
	DmfAdam		fa,
				la;
	DmfAdamStep step;
	bool		same = true,
				cleared = true;

	twin_branches(sizes, &fused, &later, &fa, &la);
	for (size_t k = 0; k < fused.n_params; k++)
		fused.params[k] = later.params[k] = sinf(0.11f * (float) k);

	memset(touched, 0, n_cols);
	for (int task = 0; task < DMF_GROUPED_TASKS; task++)
		dmf_grouped_backward(vr, task, skip, width, la.grad + later.w_off[0]);
	dmf_adam_begin(&step, &later, &la, 0.01, 0.001, 2);
	dmf_adam_step_touched_rows(&step, touched, 0, n_cols);

	dmf_adam_begin(&step, &fused, &fa, 0.01, 0.001, 2);
	vr->adam = &step;
	for (int task = 0; task < DMF_GROUPED_TASKS; task++)
		dmf_grouped_backward(vr, task, skip, width, fa.grad + fused.w_off[0]);
	vr->adam = NULL;

	for (size_t k = 0; k < fused.b_off[0]; k++)
		same &= fused.params[k] == later.params[k] && fa.m[k] == la.m[k] &&
			fa.v[k] == la.v[k] && fa.grad[k] == la.grad[k];
	for (int c = 0; c < n_cols; c++)
		cleared &= touched[c] == 0;
	CHECK(same, "width %d: Adam in the backward's tasks gives the bits of the step after it", width);
	CHECK(cleared, "width %d: the backward's step clears the marks", width);
	twin_branches_free(&fused, &later, &fa, &la);
}

/*
 * The grouped first layer (grouped.h) against the plain one: a virtual row
 * (r, g) is row r with group g's entries skipped, forward (summed whole in
 * the pass, or from cached totals) and backward (every virtual row's
 * gradient, the entries of each group getting the other groups' terms),
 * for both encodings, widths with and without a partial chunk, and input
 * dropout's marks.
 */
static void
test_grouped_layer(void)
{
	enum
	{
		ROWS = 6, COLS = 41, G = 3
	};
	static const int widths[] = {8, 128, 200};
	int32_t		r[ROWS * COLS],
				c[ROWS * COLS],
				group_of_col[COLS];
	float		v[ROWS * COLS];
	int64_t		n = 0,
				dup;
	DmfCsr		x;
	DmfGroupedCsr gx;
	uint8_t		skip[ROWS * COLS],
				gskip[ROWS * COLS];

	for (int i = 0; i < ROWS; i++)
		for (int j = 0; j < COLS; j++)
			/* row 4 has only group 0's columns, row 5 none */
			if (i != 5 && (i * 5 + j * 3) % 4 != 0 && (i != 4 || (j * 7) % G == 0))
			{
				r[n] = i;
				c[n] = j;
				v[n] = (float) (1 + (i + 2 * j) % 5);
				n++;
			}
	for (int j = 0; j < COLS; j++)
		group_of_col[j] = (j * 7) % G;
	CHECK(dmf_csr_build(&x, ROWS, COLS, n, r, c, v, &dup, NULL) == 0, "grouped rows");
	/* input dropout's marks: the same entries in both layouts */
	memset(gskip, 0, sizeof(gskip));
	for (int64_t k = 0; k < x.nnz; k++)
		if (k % 5 == 2)
			gskip[k] = 1;
	for (int enc = 0; enc < 2; enc++)
	{
		DmfInputCoding coding = {enc, DMF_ROW_SCALE_SQRT, 1.0, 5.0};

		/* offset inputs are encoded into val (grouped.h), centred ones are not */
		dmf_grouped_alloc(&gx, &x, G, &coding);
		dmf_grouped_fill(&gx, &x, group_of_col, 0, ROWS);
		CHECK(gx.encoded == (enc == DMF_INPUT_OFFSET), "enc %d: encoded in val", enc);
		for (int rr = 0; rr < ROWS; rr++)
			for (int64_t k = x.rowptr[rr]; k < x.rowptr[rr + 1]; k++)
				CHECK(k == x.rowptr[rr] ||
					  group_of_col[gx.x.col[k - 1]] < group_of_col[gx.x.col[k]] ||
					  (group_of_col[gx.x.col[k - 1]] == group_of_col[gx.x.col[k]] &&
					   gx.x.col[k - 1] < gx.x.col[k]), "row %d regrouped in order", rr);
		for (int t = 0; t < (int) (sizeof(widths) / sizeof(widths[0])); t++)
		{
			int			width = widths[t];
			DmfVirtualRows vr;
			int32_t		vrow[ROWS * G],
						vgroup[ROWS * G],
						starts[ROWS * G + 1];
			float	   *W = dmf_alloc(sizeof(float) * COLS * width);
			float	   *bias = dmf_alloc(sizeof(float) * width);
			float	   *out = dmf_alloc(sizeof(float) * ROWS * G * width);
			float	   *want = dmf_alloc(sizeof(float) * width);
			float	   *dout = dmf_alloc(sizeof(float) * ROWS * G * width);
			float	   *dW = dmf_alloc0(sizeof(float) * COLS * width);
			double	   *dW_want = calloc((size_t) COLS * width, sizeof(double));
			float	   *totals = dmf_alloc(sizeof(float) * ROWS * DMF_TOTALS_STRIDE(width));
			float		scale[ROWS * G],
						enc_a[ROWS * G],
						enc_c[ROWS * G],
						s1,
						a1,
						c1;
			uint8_t		touched[COLS] = {0};
			double		worst_f = 0.0,
						worst_t = 0.0,
						worst_b = 0.0;
			int			nv = 0;

			for (int k = 0; k < COLS * width; k++)
				W[k] = sinf(k * 0.37f);
			for (int j = 0; j < width; j++)
				bias[j] = 0.01f * j;
			memset(&vr, 0, sizeof(vr));
			vr.gx = &gx;
			vr.row = vrow;
			vr.group = vgroup;
			vr.task_start = starts;
			vr.scratch = dmf_alloc(sizeof(float) * DMF_GROUPED_SCRATCH(G, width));
			vr.dsum = dmf_alloc(sizeof(float) * ROWS * G * 2 * width);
			vr.runs = dmf_alloc(sizeof(int64_t) * ROWS * G * (DMF_GROUPED_TASKS + 1));
			vr.touched = touched;
			/* the virtual rows of every group a row holds, one task per row */
			for (int rr = 0; rr < ROWS; rr++)
			{
				const int64_t *seg = gx.seg + rr * (G + 1);

				starts[vr.n_tasks++] = nv;
				for (int g = 0; g < G; g++)
					if (seg[g] < seg[g + 1])
					{
						vrow[nv] = rr;
						vgroup[nv] = g;
						nv++;
					}
			}
			starts[vr.n_tasks] = nv;
			vr.nv = nv;
			for (int task = 0; task < vr.n_tasks; task++)
				dmf_grouped_forward(&vr, task, gskip, &coding, W, bias, width, out, scale,
									enc_a, enc_c, vr.scratch);
			for (int q = 0; q < nv; q++)
			{
				/* the plain layer over the row with group vgroup[q] skipped */
				for (int64_t k = x.rowptr[vrow[q]]; k < x.rowptr[vrow[q] + 1]; k++)
				{
					/* gskip marks gx's entries: find this column there */
					int64_t		gk = x.rowptr[vrow[q]];

					while (gx.x.col[gk] != x.col[k])
						gk++;
					skip[k] = gskip[gk] || group_of_col[x.col[k]] == vgroup[q];
				}
				dmf_sparse_forward(&x, &vrow[q], 1, skip, &coding, W, bias, width, want,
								   &s1, &a1, &c1);
				CHECK(fabsf(s1 - scale[q]) < 1e-6f &&
					  (gx.encoded || fabsf(c1 - enc_c[q]) < 1e-5f),
					  "enc %d width %d: virtual row %d's scale and encoding", enc, width, q);
				for (int j = 0; j < width; j++)
					worst_f = fmax(worst_f, fabs(out[q * width + j] - want[j]));
				for (int j = 0; j < width; j++)
					dout[q * width + j] = cosf(0.3f * (q * width + j));
				for (int64_t k = x.rowptr[vrow[q]]; k < x.rowptr[vrow[q] + 1]; k++)
					if (!skip[k])
						for (int j = 0; j < width; j++)
							dW_want[x.col[k] * width + j] += (double) s1 * (a1 * x.val[k] + c1) *
								dout[q * width + j];
			}
			for (int task = 0; task < vr.n_tasks; task++)
				dmf_grouped_dsum(&vr, task, scale, enc_a, enc_c, dout, width);
			for (int task = 0; task < DMF_GROUPED_TASKS; task++)
				dmf_grouped_backward(&vr, task, gskip, width, dW);
			for (int k = 0; k < COLS * width; k++)
				worst_b = fmax(worst_b, fabs(dW[k] - dW_want[k]));
			for (int col = 0; col < COLS; col++)
			{
				bool		held = false;

				for (int q = 0; q < nv; q++)
					for (int64_t k = x.rowptr[vrow[q]]; k < x.rowptr[vrow[q] + 1]; k++)
						held |= x.col[k] == col && !gskip[k] && nv > 0;
				CHECK(!held || touched[col], "enc %d width %d: column %d marked", enc, width, col);
			}
			adam_in_backward(&vr, gskip, width, touched);

			/* the cached totals (every entry kept), each row without group 1 */
			dmf_grouped_totals(&gx, 0, ROWS, W, width, totals);
			vr.totals = totals;
			for (int rr = 0; rr < ROWS; rr++)
			{
				vrow[rr] = rr;
				vgroup[rr] = 1;
				starts[rr] = rr;
			}
			starts[ROWS] = ROWS;
			vr.nv = vr.n_tasks = ROWS;
			for (int task = 0; task < ROWS; task++)
				dmf_grouped_forward(&vr, task, NULL, &coding, W, bias, width, out, scale,
									enc_a, enc_c, vr.scratch);
			for (int rr = 0; rr < ROWS; rr++)
			{
				for (int64_t k = x.rowptr[rr]; k < x.rowptr[rr + 1]; k++)
					skip[k] = group_of_col[x.col[k]] == 1;
				dmf_sparse_forward(&x, &vrow[rr], 1, skip, &coding, W, bias, width, want,
								   &s1, &a1, &c1);
				CHECK(fabsf(s1 - scale[rr]) < 1e-6f, "enc %d width %d: row %d's scale from totals", enc, width, rr);
				for (int j = 0; j < width; j++)
					worst_t = fmax(worst_t, fabs(out[rr * width + j] - want[j]));
			}
			CHECK(worst_f < 1e-4, "enc %d width %d: grouped forward off by %g", enc, width, worst_f);
			CHECK(worst_t < 1e-4, "enc %d width %d: forward from totals off by %g", enc, width, worst_t);
			CHECK(worst_b < 1e-3, "enc %d width %d: grouped backward off by %g", enc, width, worst_b);
			dmf_free(vr.scratch);
			dmf_free(vr.dsum);
			dmf_free(vr.runs);
			dmf_free(W);
			dmf_free(bias);
			dmf_free(out);
			dmf_free(want);
			dmf_free(dout);
			dmf_free(dW);
			dmf_free(totals);
			free(dW_want);
		}
		dmf_grouped_free(&gx);
	}
	dmf_csr_free(&x);
}

/*
 * The lazy Adam step: rows of the first layer not marked keep their
 * weights and moments; marked rows and the rest step as in dmf_adam_step.
 */
static void
test_adam_lazy(void)
{
	DmfBranch	b,
				ref;
	DmfAdam		a,
				ar;
	DmfAdamStep step;
	int			sizes[3] = {4, 8, 2};
	uint8_t		touched[4] = {0, 1, 0, 1};

	twin_branches(sizes, &b, &ref, &a, &ar);
	for (size_t k = 0; k < b.n_params; k++)
	{
		b.params[k] = ref.params[k] = 0.1f * (float) k;
		/* gradients on marked rows and past the first layer's weights */
		if (k >= b.b_off[0] || touched[k / 8])
			a.grad[k] = ar.grad[k] = 0.05f * (float) (k % 7) - 0.1f;
	}
	dmf_adam_begin(&step, &b, &a, 0.01, 0.001, 3);
	dmf_adam_step_touched_rows(&step, touched, 0, 2);
	dmf_adam_step_touched_rows(&step, touched, 2, 4);
	dmf_adam_step_past_first_layer(&step, NULL);
	dmf_adam_step(&ref, &ar, 0.01, 0.001, 3);
	for (size_t k = 0; k < b.n_params; k++)
	{
		bool		lazy_kept = k < b.b_off[0] && !(k / 8 == 1 || k / 8 == 3);

		if (lazy_kept)
			CHECK(b.params[k] == 0.1f * (float) k && a.m[k] == 0.0f,
				  "unmarked row's parameter %zu kept", k);
		else
			CHECK(b.params[k] == ref.params[k] && a.m[k] == ar.m[k] && a.v[k] == ar.v[k],
				  "parameter %zu steps as in dmf_adam_step", k);
	}
	CHECK(touched[1] == 0 && touched[3] == 0, "the marks are cleared");
	twin_branches_free(&b, &ref, &a, &ar);
}

static void
test_csr(void)
{
	int32_t		r[5] = {1, 0, 1, 0, 1}, c[5] = {2, 1, 0, 0, 2};
	float		v[5] = {1, 2, 3, 4, 5};
	int64_t		pos[5];
	int64_t		dup = -1;
	DmfCsr		m;

	CHECK(dmf_csr_build(&m, 2, 3, 5, r, c, v, &dup, pos) == 1, "one duplicate expected");
	CHECK(dup == 4 || dup == 0, "duplicate index %lld", (long long) dup);
	CHECK(m.rowptr[0] == 0 && m.rowptr[1] == 2 && m.rowptr[2] == 5, "row pointers");
	CHECK(m.col[0] == 0 && m.col[1] == 1 && m.col[2] == 0, "columns sorted within rows");
	for (int k = 0; k < 5; k++)
		CHECK(m.val[pos[k]] == v[k], "position of triple %d", k);
	dmf_csr_free(&m);
}

/* ---- the sort the core shares (sort_template.h) and CSR rows ---- */

typedef struct KeyIndex
{
	int32_t		key;
	int32_t		index;			/* where it was before the sort */
} KeyIndex;

static inline void
swap_key_index(KeyIndex *a, int64_t i, int64_t j)
{
	KeyIndex	t = a[i];

	a[i] = a[j];
	a[j] = t;
}

#define SORT_NAME sort_key_index
#define SORT_CTX KeyIndex *
#define SORT_LESS(a, i, j) ((a)[i].key < (a)[j].key || \
							((a)[i].key == (a)[j].key && (a)[i].index < (a)[j].index))
#define SORT_SWAP(a, i, j) swap_key_index((a), (i), (j))
#include "sort_template.h"

/* Whether a[0..n) is a sorted permutation of what it was (key(i) of each index i). */
static bool
sorted_permutation(const KeyIndex *a, int n, int32_t (*key) (int32_t))
{
	char	   *seen = calloc(n > 0 ? n : 1, 1);
	bool		ok = true;

	for (int k = 0; k < n && ok; k++)
	{
		ok = a[k].index >= 0 && a[k].index < n && !seen[a[k].index] &&
			a[k].key == key(a[k].index) &&
			(k == 0 || a[k - 1].key < a[k].key ||
			 (a[k - 1].key == a[k].key && a[k - 1].index < a[k].index));
		if (ok)
			seen[a[k].index] = 1;
	}
	free(seen);
	return ok;
}

static uint64_t key_seed;
static int32_t key_mod;

static int32_t
key_random(int32_t i)
{
	return (int32_t) (dmf_mix64(key_seed ^ (uint64_t) i) % (uint64_t) key_mod);
}

static int32_t
key_ascending(int32_t i)
{
	return i;
}

static int32_t
key_descending(int32_t i)
{
	return -i;
}

static int32_t
key_organ_pipe(int32_t i)
{
	return i < key_mod ? i : 2 * key_mod - i;
}

static void
test_sort(void)
{
	static const int sizes[] = {0, 1, 2, 3, 16, 17, 100, 1000, 30000};
	int32_t		(*keys[]) (int32_t) = {key_random, key_ascending, key_descending, key_organ_pipe};
	KeyIndex   *a = malloc(sizeof(KeyIndex) * 30000);

	for (int s = 0; s < (int) (sizeof(sizes) / sizeof(sizes[0])); s++)
		for (int f = 0; f < 4; f++)
			for (int mod = 1; mod <= 1 << 20; mod *= 64)
			{
				int			n = sizes[s];
				int64_t		work = 0;

				key_seed = (uint64_t) (s * 31 + f * 7 + mod);
				key_mod = f == 3 ? n / 2 : mod;
				for (int k = 0; k < n; k++)
					a[k] = (KeyIndex) {keys[f](k), k};
				sort_key_index(a, n, &work);
				CHECK(sorted_permutation(a, n, keys[f]), "sort of %d keys (kind %d, modulo %d)", n, f, mod);
				/* heapsort, which takes over from a quicksort split too often */
				for (int k = 0; k < n; k++)
					a[k] = (KeyIndex) {keys[f](k), k};
				sort_key_index_heapsort(a, 0, n, &work);
				CHECK(sorted_permutation(a, n, keys[f]), "heapsort of %d keys (kind %d, modulo %d)", n, f, mod);
			}
	free(a);
}

/* The triples of the reference CSR: by row, then column, then their order. */
static const int32_t *ref_rows;
static const int32_t *ref_cols;

static int
cmp_triple(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	if (ref_rows[x] != ref_rows[y])
		return ref_rows[x] < ref_rows[y] ? -1 : 1;
	if (ref_cols[x] != ref_cols[y])
		return ref_cols[x] < ref_cols[y] ? -1 : 1;
	return (x > y) - (x < y);
}

/*
 * CSR rows against a reference, on random rows with duplicates, rows in
 * and against column order, and one row of 2^18 entries: the build must
 * not take time quadratic in a row's length.
 */
static void
test_csr_rows(void)
{
	enum
	{
		ROWS = 200, COLS = 100000, LONG_ROW = 7, LONG = 1 << 18
	};
	int64_t		n = 0,
				cap = LONG + ROWS * 300;
	int32_t    *r = malloc(sizeof(int32_t) * cap);
	int32_t    *c = malloc(sizeof(int32_t) * cap);
	float	   *v = malloc(sizeof(float) * cap);
	int64_t    *pos = malloc(sizeof(int64_t) * cap);
	int64_t    *ref = malloc(sizeof(int64_t) * cap);
	int64_t		dup = -1,
				ref_dup = -1,
				ref_dups = 0,
				dups,
				bad = 0;
	DmfRng		rng;
	DmfCsr		m;
	clock_t		t0;
	double		seconds,
				short_seconds;

	dmf_rng_seed(&rng, 26);
	for (int32_t row = 0; row < ROWS; row++)
	{
		int			len = row == LONG_ROW ? LONG : (int) dmf_rng_below(&rng, 300);
		/* short rows over few columns: many duplicates; some in order or against it */
		uint32_t	span = row == LONG_ROW ? COLS : 1 + dmf_rng_below(&rng, 400);

		for (int k = 0; k < len; k++)
		{
			r[n] = row;
			c[n] = row % 10 == 1 ? k % COLS : row % 10 == 2 ? (COLS - 1 - k) % COLS
				: (int32_t) dmf_rng_below(&rng, span);
			v[n] = (float) n;
			n++;
		}
	}
	/* the rows' triples interleaved, as a table's are */
	for (int64_t k = n - 1; k > 0; k--)
	{
		int64_t		j = (int64_t) (dmf_rng_next(&rng) % (uint64_t) (k + 1));
		int32_t		tr = r[k],
					tc = c[k];
		float		tv = v[k];

		r[k] = r[j];
		c[k] = c[j];
		v[k] = v[j];
		r[j] = tr;
		c[j] = tc;
		v[j] = tv;
	}

	t0 = clock();
	dups = dmf_csr_build(&m, ROWS, COLS, n, r, c, v, &dup, pos);
	seconds = (double) (clock() - t0) / CLOCKS_PER_SEC;

	for (int64_t k = 0; k < n; k++)
		ref[k] = k;
	ref_rows = r;
	ref_cols = c;
	qsort(ref, n, sizeof(int64_t), cmp_triple);
	for (int64_t p = 0; p < n; p++)
	{
		int64_t		k = ref[p];

		if (m.col[p] != c[k] || m.val[p] != v[k] || pos[k] != p)
			bad++;
		if (p > 0 && r[ref[p - 1]] == r[k] && c[ref[p - 1]] == c[k])
		{
			if (ref_dups == 0)
				ref_dup = k;
			ref_dups++;
		}
	}
	CHECK(bad == 0, "%lld of %lld entries differ from the reference", (long long) bad, (long long) n);
	CHECK(dups == ref_dups && dup == ref_dup, "duplicates %lld (triple %lld), expected %lld (triple %lld)",
		  (long long) dups, (long long) dup, (long long) ref_dups, (long long) ref_dup);
	{
		int64_t		count[ROWS] = {0};
		int32_t		wrong = 0;

		for (int64_t k = 0; k < n; k++)
			count[r[k]]++;
		for (int32_t row = 0; row < ROWS; row++)
			wrong += m.rowptr[row + 1] - m.rowptr[row] != count[row];
		CHECK(m.rowptr[0] == 0 && wrong == 0, "%d rows have the wrong length", wrong);
	}
	dmf_csr_free(&m);

	/*
	 * O(L log L): about as long as the same entries in rows of a few
	 * hundred.  (The insertion sort it replaced took three thousand times
	 * as long, two minutes here.)
	 */
	for (int64_t k = 0; k < n; k++)
		if (r[k] == LONG_ROW)
			r[k] = ROWS + (int32_t) (k % 1024);
	t0 = clock();
	dmf_csr_build(&m, ROWS + 1024, COLS, n, r, c, v, &dup, NULL);
	short_seconds = (double) (clock() - t0) / CLOCKS_PER_SEC;
	CHECK(seconds < 20 * short_seconds + 0.1,
		  "building %lld entries with a row of %d took %.3f s, in short rows %.3f s",
		  (long long) n, LONG, seconds, short_seconds);
	printf("CSR of %lld entries: with a row of %d %.3f s, in short rows %.3f s\n",
		   (long long) n, LONG, seconds, short_seconds);
	dmf_csr_free(&m);
	free(r);
	free(c);
	free(v);
	free(pos);
	free(ref);
}

static void
test_quantizer(void)
{
	double		levels[5] = {1, 2, 3, 4, 5};
	double		b[6];
	DmfQuantizer q;

	dmf_uniform_boundaries(levels, 5, b);
	q.n_levels = 5;
	q.step = 1;
	q.levels = levels;
	q.boundaries = b;
	q.lambda = 1;
	CHECK(b[1] == 1.5 && b[4] == 4.5, "uniform boundaries are midpoints");
	CHECK(dmf_quantize(&q, 0.2) == 1 && dmf_quantize(&q, 1.49) == 1 &&
		  dmf_quantize(&q, 1.5) == 2 && dmf_quantize(&q, 4.51) == 5 &&
		  dmf_quantize(&q, 7) == 5, "hard quantizer");
	CHECK(dmf_round_to_level(&q, 3.4) == 3 && dmf_round_to_level(&q, -3) == 1 &&
		  dmf_round_to_level(&q, 9) == 5, "rounding, clamped");

	/* G tends to Q as lambda grows, away from the boundaries */
	{
		double		worst = 0.0;

		q.lambda = 500;
		for (double x = 1.0; x <= 5.0; x += 0.01)
		{
			double		dx, db;
			int			v;
			double		g = dmf_quantize_smooth(&q, x, &dx, &db, &v);

			if (fabs(x - floor(x) - 0.5) > 0.02)
				worst = fmax(worst, fabs(g - dmf_quantize(&q, x)));
		}
		CHECK(worst < 1e-3, "G far from Q at lambda 500: %g", worst);
	}
	/* dG/dx and dG/db against finite differences, inside an interval */
	q.lambda = 3;
	for (double x = 1.1; x < 4.9; x += 0.37)
	{
		double		dx, db, dx2, db2, h = 1e-6;
		int			v, v2;
		double		g = dmf_quantize_smooth(&q, x, &dx, &db, &v);
		double		gp = dmf_quantize_smooth(&q, x + h, &dx2, &db2, &v2);

		if (v2 != v)
			continue;
		CHECK(fabs((gp - g) / h - dx) < 1e-4, "dG/dx at %g", x);
		b[v] += h;
		gp = dmf_quantize_smooth(&q, x, &dx2, &db2, &v2);
		b[v] -= h;
		CHECK(fabs((gp - g) / h - db) < 1e-4, "dG/db at %g", x);
	}
}

static void
test_fit_boundaries(void)
{
	double		levels[5] = {1, 2, 3, 4, 5};
	double		b[6];
	double		x[7] = {3.1, 3.3, 3.2, 3.7, 3.6, 1.2, 4.9};
	double		r[7] = {3, 4, 3, 4, 4, 1, 5};

	dmf_uniform_boundaries(levels, 5, b);
	dmf_fit_boundaries(x, r, 7, levels, 5, b);
	/* between 3.2 (a 3) and 3.3 (a 4): the midpoint */
	CHECK(fabs(b[3] - 3.25) < 1e-12, "fitted boundary %g, expected 3.25", b[3]);
	CHECK(b[1] >= 1 && b[1] <= 2 && b[2] >= 2 && b[2] <= 3 && b[4] >= 4 && b[4] <= 5,
		  "boundaries stay within their intervals");
}

/* dmf_dot against a double-precision sum, at lengths around the lanes */
static void
test_dot(void)
{
	float		a[67],
				b[67];

	for (int k = 0; k < 67; k++)
	{
		a[k] = sinf(k * 0.37f);
		b[k] = cosf(k * 0.11f) - 0.2f;
	}
	for (int n = 0; n <= 67; n += (n < 20 ? 1 : 7))
	{
		double		want = 0.0;

		for (int k = 0; k < n; k++)
			want += (double) a[k] * b[k];
		CHECK(fabs(dmf_dot(a, b, n) - want) < 1e-5, "dot of length %d: %g, expected %g",
			  n, dmf_dot(a, b, n), want);
	}
}

/*
 * Fold-in: the result does not depend on the number of threads, factors
 * stay unit vectors, zero factors and empty rows are left alone, and the
 * fit to the row improves.
 */
static void
test_fold_in(void)
{
	enum
	{
		ROWS = 300, COLS = 40, DIM = 12
	};
	int32_t		r[ROWS * 8],
				c[ROWS * 8];
	float		v[ROWS * 8];
	float		anchors[COLS * DIM],
				one[ROWS * DIM],
				two[ROWS * DIM],
				start[ROWS * DIM];
	int64_t		n = 0,
				dup;
	DmfCsr		x;
	DmfRng		rng;
	double		before = 0.0,
				after = 0.0;

	dmf_rng_seed(&rng, 5);
	for (int k = 0; k < COLS; k++)
	{
		double		ss = 0.0;

		for (int j = 0; j < DIM; j++)
		{
			anchors[k * DIM + j] = (float) dmf_rng_normal(&rng);
			ss += anchors[k * DIM + j] * anchors[k * DIM + j];
		}
		for (int j = 0; j < DIM; j++)
			anchors[k * DIM + j] /= (float) sqrt(ss);
	}
	for (int i = 0; i < ROWS; i++)
	{
		double		ss = 0.0;

		/* row 7 is empty */
		for (int e = 0; e < 8 && i != 7; e++, n++)
		{
			r[n] = i;
			c[n] = (i * 7 + e * 5) % COLS;
			v[n] = (float) (1 + (i + e) % 5);
		}
		for (int j = 0; j < DIM; j++)
		{
			start[i * DIM + j] = (float) dmf_rng_normal(&rng);
			ss += start[i * DIM + j] * start[i * DIM + j];
		}
		for (int j = 0; j < DIM; j++)
			start[i * DIM + j] = i == 11 ? 0.0f : start[i * DIM + j] / (float) sqrt(ss);
	}
	CHECK(dmf_csr_build(&x, ROWS, COLS, n, r, c, v, &dup, NULL) == 0, "fold-in rows");
	memcpy(one, start, sizeof(start));
	memcpy(two, start, sizeof(start));
	{
		DmfFoldInSide side1 = {&x, one, anchors, NULL, false};
		DmfFoldInSide side2 = {&x, two, anchors, NULL, false};

		dmf_fold_in_sides(&side1, 1, DIM, 10, 0.3, 1.0, 5.0, 1);
		dmf_fold_in_sides(&side2, 1, DIM, 10, 0.3, 1.0, 5.0, 2);
	}
	CHECK(memcmp(one, two, sizeof(one)) == 0, "fold-in depends on the number of threads");
	CHECK(memcmp(one + 7 * DIM, start + 7 * DIM, sizeof(float) * DIM) == 0, "empty row changed");
	CHECK(memcmp(one + 11 * DIM, start + 11 * DIM, sizeof(float) * DIM) == 0, "zero factor changed");
	for (int i = 0; i < ROWS; i++)
	{
		double		ss = 0.0;

		if (i == 7 || i == 11)
			continue;
		for (int j = 0; j < DIM; j++)
			ss += (double) one[i * DIM + j] * one[i * DIM + j];
		CHECK(fabs(ss - 1.0) < 1e-5, "row %d: |u|^2 = %g after fold-in", i, ss);
		for (int64_t k = x.rowptr[i]; k < x.rowptr[i + 1]; k++)
		{
			double		t = (x.val[k] - 3.0) / 2.0;

			before += pow(dmf_dot(start + i * DIM, anchors + x.col[k] * DIM, DIM) - t, 2);
			after += pow(dmf_dot(one + i * DIM, anchors + x.col[k] * DIM, DIM) - t, 2);
		}
	}
	CHECK(after < 0.5 * before, "fold-in fit %g, before %g", after, before);
	dmf_csr_free(&x);
}

/*
 * Interrupts as the server raises them (platform.h with DMF_TEST_INTERRUPTS):
 * one comes after a given number of looks, and processing it does not
 * ERROR (as for a request to log memory contexts), so the work goes on.
 * Only the backend's thread looks.
 */
static int	looks_before_interrupt = -1;	/* -1: none comes */
static bool interrupt_raised = false;
static int	interrupts_processed = 0;

bool
dmf_test_interrupt_pending(void)
{
	if (looks_before_interrupt >= 0 && looks_before_interrupt-- == 0)
		interrupt_raised = true;
	return interrupt_raised;
}

void
dmf_test_check_interrupts(void)
{
	if (interrupt_raised)
		interrupts_processed++;
	interrupt_raised = false;
}

/*
 * An interrupt that comes while the helper folds rows in pauses both
 * threads; the backend's thread processes it and carries on alone with
 * the rest of both threads' rows, some of them half done: the factors are
 * the same as without it, wherever it came.
 */
static void
test_fold_in_pause(void)
{
	enum
	{
		ROWS = 130, COLS = 200, DIM = 32, LEN = 40, STEPS = 1000
	};
	static int32_t r[ROWS * LEN],
				c[ROWS * LEN];
	static float v[ROWS * LEN],
				anchors[COLS * DIM],
				start[ROWS * DIM],
				alone[ROWS * DIM],
				paused[ROWS * DIM];
	int64_t		n = 0,
				dup;
	int			processed = 0,
				differ = 0;
	DmfCsr		x;
	DmfRng		rng;
	DmfFoldInSide side = {&x, NULL, anchors, NULL, false};

	dmf_rng_seed(&rng, 26);
	for (int k = 0; k < COLS * DIM; k++)
		anchors[k] = (float) dmf_rng_normal(&rng);
	dmf_normalize_rows(anchors, COLS, DIM);
	for (int i = 0; i < ROWS * DIM; i++)
		start[i] = (float) dmf_rng_normal(&rng);
	dmf_normalize_rows(start, ROWS, DIM);
	/* 4 rows at the start of each chunk of 64 have ratings, the others none */
	for (int i = 0; i < ROWS; i++)
		for (int e = 0; e < LEN && i % 64 < 4; e++, n++)
		{
			r[n] = i;
			c[n] = (i * 13 + e * 5) % COLS;
			v[n] = (float) (1 + (i + e) % 5);
		}
	CHECK(dmf_csr_build(&x, ROWS, COLS, n, r, c, v, &dup, NULL) == 0, "fold-in rows");
	memcpy(alone, start, sizeof(start));
	side.factors = alone;
	dmf_fold_in_sides(&side, 1, DIM, STEPS, 0.3, 1.0, 5.0, 1);

	/* a row has 3 slices of steps: interrupts come between rows and inside them */
	for (int looks = 0; looks < 200; looks += 1 + looks / 8)
	{
		memcpy(paused, start, sizeof(start));
		side.factors = paused;
		looks_before_interrupt = looks;
		interrupts_processed = 0;
		dmf_fold_in_sides(&side, 1, DIM, STEPS, 0.3, 1.0, 5.0, 2);
		processed += interrupts_processed;
		differ += memcmp(alone, paused, sizeof(alone)) != 0;
	}
	looks_before_interrupt = -1;
	interrupt_raised = false;
	CHECK(differ == 0, "%d fold-ins with an interrupt differ from one without", differ);
	CHECK(processed > 0, "no interrupt came while rows were folded in");
	dmf_csr_free(&x);
}

static void
add_one(void *arg)
{
	int		   *n = (int *) arg;

	(*n)++;
}

/* The helper thread runs what it is given, and stops, one by one or all. */
static void
test_helper_thread(void)
{
	DmfHelper  *a = dmf_helper_start();
	DmfHelper  *b = dmf_helper_start();
	int			na = 0,
				nb = 0;

	CHECK(a != NULL && b != NULL, "helper threads did not start");
	if (a == NULL || b == NULL)
		return;
	for (int k = 0; k < 100; k++)
	{
		dmf_helper_run(a, add_one, &na);
		dmf_helper_run(b, add_one, &nb);
		dmf_helper_wait(a);
		dmf_helper_wait(b);
	}
	CHECK(na == 100 && nb == 100, "jobs run: %d and %d of 100", na, nb);
	dmf_helper_stop(a);
	dmf_helper_run(b, add_one, &nb);
	dmf_helpers_stop_all();		/* waits for b's job, then stops it */
	CHECK(nb == 101, "the last job before stop_all ran: %d", nb);
	dmf_helpers_stop_all();		/* nothing left: a no-op */
}

/* Predictions from factors: the cosine on the rating scale, NULL for none. */
static void
test_score(void)
{
	DmfModel	m;
	float		u[3] = {1, 0, 0},
				v[3] = {0.6f, 0.8f, 0},
				zero[3] = {0, 0, 0};
	double		r = 0.0;

	memset(&m, 0, sizeof(m));
	m.dim = 3;
	m.rating_min = 1;
	m.rating_max = 5;
	CHECK(dmf_score_factors(&m, u, v, &r) && fabs(r - (3 + 0.6 * 2)) < 1e-6,
		  "score %g, expected 4.2", r);
	CHECK(dmf_score_factors(&m, u, u, &r) && r == 5.0, "cosine 1 is the top rating: %g", r);
	CHECK(!dmf_score_factors(&m, u, zero, &r), "a zero factor has no score");
	CHECK(dmf_factor_is_zero(zero, 3) && !dmf_factor_is_zero(v, 3), "zero factors");
	CHECK(dmf_all_finite(v, 3), "finite factor");
	v[1] = NAN;
	CHECK(!dmf_all_finite(v, 3), "a NaN is not finite");
}

/* The working scale: exact shifts, powers of two, and ranges it refuses. */
static void
test_working_scale(void)
{
	DmfRatingScale s;

	CHECK(dmf_rating_scale_init(&s, 1, 5) && s.factor == 1.0 && s.working_max == 4.0,
		  "1..5: factor %g, max %g", s.factor, s.working_max);
	CHECK(dmf_to_working(&s, 3) == 2.0 && dmf_from_working(&s, 2.0) == 3.0, "1..5 round trip");
	CHECK(dmf_rating_scale_init(&s, 100000001, 100000005) &&
		  dmf_to_working(&s, 100000004) == 3.0, "a shift by 1e8 is exact");
	CHECK(dmf_rating_scale_init(&s, 1e-300, 5e-300) &&
		  s.working_max >= 1.0 && s.working_max < 2.0 &&
		  fabs(dmf_to_working(&s, 3e-300) / s.working_max - 0.5) < 1e-12,
		  "tiny ratings: max %g", s.working_max);
	CHECK(!dmf_rating_scale_init(&s, -1.7e308, 1.7e308), "an infinite width is refused");
	CHECK(!dmf_rating_scale_init(&s, 0, 1e-310), "a subnormal width is refused");
	CHECK(!dmf_rating_scale_init(&s, 2, 2) && !dmf_rating_scale_init(&s, 3, 2),
		  "an empty range is refused");
	CHECK(!dmf_rating_scale_init(&s, NAN, 2), "NaN is refused");
}

/* Adam moves a parameter against its gradient, by about the learning rate. */
static void
test_adam(void)
{
	DmfBranch	b;
	DmfAdam		a;
	int			sizes[2] = {2, 1};
	float		before;

	memset(&b, 0, sizeof(b));
	CHECK(dmf_branch_layout(&b, 1, sizes, DMF_ACT_RELU), "layout");
	b.params = dmf_alloc0(sizeof(float) * b.n_params);
	dmf_adam_alloc(&a, b.n_params);
	b.params[0] = 1.0f;
	before = b.params[0];
	a.grad[0] = 0.5f;
	dmf_adam_step(&b, &a, 0.01, 0.0, 1);
	CHECK(fabs((before - b.params[0]) - 0.01) < 1e-5, "first step moved %g, expected 0.01",
		  before - b.params[0]);
	CHECK(a.grad[0] == 0.0f, "the gradient is consumed");
	dmf_adam_free(&a);
	dmf_free(b.params);
}

/* The rating levels: integers, a half-star grid, none, and what is refused. */
static void
test_levels(void)
{
	double		stars[] = {1, 2, 5, 3, 4, 2};
	double		halves[] = {0.5, 1.5, 5, 3.5, 2};
	double		continuous[] = {1, 1.7, 3.14, 5};
	double		given[] = {2, 3, 4};
	const double *lv;
	int			n;
	int64_t		bad = -1;

	CHECK(dmf_resolve_levels(stars, 6, 1, 5, NULL, 0, true, &lv, &n, &bad) == DMF_LEVELS_OK &&
		  n == 5 && lv[0] == 1 && lv[4] == 5, "integer ratings: %d levels", n);
	dmf_free((void *) lv);
	CHECK(dmf_resolve_levels(halves, 5, 0.5, 5, NULL, 0, true, &lv, &n, &bad) == DMF_LEVELS_OK &&
		  n == 10 && lv[1] == 1.0, "half stars: %d levels", n);
	dmf_free((void *) lv);
	CHECK(dmf_resolve_levels(continuous, 4, 1, 5, NULL, 0, false, &lv, &n, &bad) == DMF_LEVELS_OK &&
		  n == 0, "continuous ratings: %d levels", n);
	CHECK(dmf_resolve_levels(continuous, 4, 1, 5, NULL, 0, true, &lv, &n, &bad) == DMF_LEVELS_NONE,
		  "discrete without levels is refused");
	CHECK(dmf_resolve_levels(stars, 6, 1, 5, given, 3, false, &lv, &n, &bad) == DMF_LEVELS_OK &&
		  lv == given && n == 3, "given levels are used");
	CHECK(dmf_resolve_levels(stars, 6, 2.5, 5, given, 3, false, &lv, &n, &bad) == DMF_LEVELS_OUTSIDE_RANGE,
		  "given levels outside the scale are refused");
	CHECK(dmf_resolve_levels(stars, 6, 1, 5, given, 3, true, &lv, &n, &bad) == DMF_LEVELS_RATING_OFF &&
		  bad == 0, "rating 1 is on none of 2, 3, 4 (bad %lld)", (long long) bad);
}

/* Dense ids, and a hold-out that depends on the rows, not their order. */
static void
test_prepare(void)
{
	enum
	{
		N = 2000
	};
	static int64_t users[N],
				items[N],
				rank[N],
				rank_rev[N],
				users_rev[N],
				items_rev[N];
	static int32_t u[N],
				i[N],
				u_rev[N],
				i_rev[N];
	static double ratings[N],
				ratings_rev[N];
	int64_t    *uid,
			   *iid;
	int64_t		nu,
				ni;
	DmfRatingScale scale;
	DmfTriples	train,
				held,
				train_rev,
				held_rev;

	for (int k = 0; k < N; k++)
	{
		users[k] = 1000 + (k % 97) * 3;
		items[k] = k / 97;
		ratings[k] = 1 + k % 5;
		rank[k] = k;			/* row k's place in the order training uses */
	}
	nu = dmf_sorted_distinct(users, N, &uid);
	ni = dmf_sorted_distinct(items, N, &iid);
	CHECK(nu == 97 && ni == (N - 1) / 97 + 1, "distinct ids %lld and %lld", (long long) nu, (long long) ni);
	CHECK(dmf_find_id(uid, (int32_t) nu, 1003) == 1 && dmf_find_id(uid, (int32_t) nu, 1001) == -1,
		  "positions of ids");
	dmf_map_ids(users, N, uid, (int32_t) nu, u);
	dmf_map_ids(items, N, iid, (int32_t) ni, i);
	dmf_rating_scale_init(&scale, 1, 5);
	dmf_split_holdout(N, users, items, u, i, ratings, &scale, rank, 7, 0.1, &train, &held);
	CHECK(held.n > N / 20 && held.n < N / 5, "held out %lld of %d at 10%%", (long long) held.n, N);
	CHECK(train.rating[0] >= 0 && train.rating[0] <= 4, "ratings enter on the working scale");

	/* the same rows read backwards: the same split */
	for (int k = 0; k < N; k++)
	{
		users_rev[k] = users[N - 1 - k];
		items_rev[k] = items[N - 1 - k];
		ratings_rev[k] = ratings[N - 1 - k];
		u_rev[k] = u[N - 1 - k];
		i_rev[k] = i[N - 1 - k];
		rank_rev[k] = rank[N - 1 - k];
	}
	dmf_split_holdout(N, users_rev, items_rev, u_rev, i_rev, ratings_rev, &scale, rank_rev, 7, 0.1,
					  &train_rev, &held_rev);
	CHECK(train_rev.n == train.n &&
		  memcmp(train_rev.user, train.user, sizeof(int32_t) * N) == 0 &&
		  memcmp(train_rev.item, train.item, sizeof(int32_t) * N) == 0 &&
		  memcmp(train_rev.rating, train.rating, sizeof(float) * N) == 0,
		  "the split depends on the rows, not the order they were read in");
	dmf_free(uid);
	dmf_free(iid);
	dmf_free(train.user);
	dmf_free(train.item);
	dmf_free(train.rating);
	dmf_free(train_rev.user);
	dmf_free(train_rev.item);
	dmf_free(train_rev.rating);
}

/*
 * Implicit feedback: repeated pairs merge into one of the summed weight in
 * (user, item) order; a sampled negative is never a positive; the log
 * loss's derivative matches a finite difference of the loss.
 */
static void
test_implicit(void)
{
	int64_t		uid[] = {30, 10, 30, 20, 10, 30};
	int64_t		iid[] = {7, 8, 7, 7, 8, 9};
	int32_t		u[] = {2, 0, 2, 1, 0, 2};
	int32_t		i[] = {0, 1, 0, 0, 1, 2};
	double		w[] = {1, 2, 3, 4, 5, 6};
	int64_t		n = dmf_merge_pairs(6, 3, 3, uid, iid, u, i, w);
	int32_t		ru[] = {0, 0, 0, 1};
	int32_t		ri[] = {0, 2, 3, 1};
	float		ones[] = {1, 1, 1, 1};
	DmfTriples	t = {4, ru, ri, ones};
	const DmfTriples *parts[1] = {&t};
	DmfCsr		rows,
				cols;
	int64_t		dup;
	DmfRng		rng;
	bool		never_positive = true;

	CHECK(n == 4, "4 distinct pairs, got %lld", (long long) n);
	CHECK(u[0] == 0 && i[0] == 1 && w[0] == 7.0 && uid[0] == 10 && iid[0] == 8, "pair (10, 8) weighs 2 + 5");
	CHECK(u[1] == 1 && i[1] == 0 && w[1] == 4.0, "pair (20, 7) weighs 4");
	CHECK(u[2] == 2 && i[2] == 0 && w[2] == 4.0, "pair (30, 7) weighs 1 + 3");
	CHECK(u[3] == 2 && i[3] == 2 && w[3] == 6.0 && uid[3] == 30 && iid[3] == 9, "pair (30, 9) weighs 6");

	/* user 0 interacted with items 0, 2, 3 of 5: negatives are 1 or 4 */
	dmf_build_inputs(parts, 1, 2, 5, 0, 0.0, 1.0, &rows, &cols, &dup, NULL, NULL);
	dmf_rng_seed(&rng, 9);
	for (int k = 0; k < 1000; k++)
	{
		int32_t		j = dmf_sample_negative(&rng, &rows, 0, NULL, 1, 5);

		never_positive = never_positive && (j == 1 || j == 4 || j == -1);
	}
	CHECK(never_positive, "a sampled negative is an item the user has not interacted with");
	dmf_csr_free(&rows);
	dmf_csr_free(&cols);

	for (double c = -0.9; c < 1.0; c += 0.3)
		for (int positive = 0; positive < 2; positive++)
		{
			double		h = 1e-6,
						d;
			double		lp = positive ? -log(dmf_implicit_score(c + h)) : -log(1 - dmf_implicit_score(c + h));
			double		lm = positive ? -log(dmf_implicit_score(c - h)) : -log(1 - dmf_implicit_score(c - h));

			dmf_implicit_loss(c, positive, 2.0, &d);
			CHECK(fabs(d - 2.0 * (lp - lm) / (2 * h)) < 1e-4 * (1 + fabs(d)),
				  "log loss derivative at cos %g (positive %d): %g", c, positive, d);
		}
	CHECK(dmf_implicit_score(0.5) == 0.5 && dmf_implicit_score(1.0) > 0.99 &&
		  dmf_implicit_score(0.0) < 0.01, "the score is 1/2 at the midpoint, near 0 at right angles");
}

int
main(void)
{
	for (int act = 0; act < DMF_ACT_COUNT; act++)
		for (int enc = 0; enc < 2; enc++)
			test_branch_gradient((DmfActivation) act, enc, 0);
	test_branch_gradient(DMF_ACT_TANH, 0, 1);
	test_branch_gradient(DMF_ACT_TANH, 1, 2);
	test_skip_equals_absent();
	test_normalize_nonfinite();
	test_sparse_kernels();
	test_grouped_layer();
	test_csr();
	test_sort();
	test_csr_rows();
	test_quantizer();
	test_fit_boundaries();
	test_dot();
	test_fold_in();
	test_fold_in_pause();
	test_helper_thread();
	test_score();
	test_working_scale();
	test_adam();
	test_adam_lazy();
	test_levels();
	test_prepare();
	test_implicit();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
