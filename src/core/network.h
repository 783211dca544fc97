/*
 * network.h
 *	  One branch of the DMF model: a multilayer perceptron whose first layer
 *	  is sparse (a rating row or column) and whose other layers are dense.
 *
 * A branch maps an input row X_i (a user's ratings over the training items,
 * or an item's ratings by the training users) to a latent factor of size
 * dim.  Hidden layers use the branch's activation; the last layer is
 * linear, as in the paper.  Dense products go through dmf_sgemm (blas.h).
 */
#ifndef DMF_NETWORK_H
#define DMF_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grouped.h"
#include "helper_thread.h"
#include "rng.h"
#include "sparse.h"

#define DMF_MAX_LAYERS 8		/* weight layers per branch */
#define DMF_MAX_WIDTH 65536		/* units per layer */
#define DMF_MAX_DIM 4096		/* latent factor size */

typedef enum DmfActivation
{
	DMF_ACT_RELU = 0,
	DMF_ACT_TANH = 1,
	DMF_ACT_SIGMOID = 2,
	DMF_ACT_LINEAR = 3,
	DMF_ACT_COUNT
} DmfActivation;

extern const char *const dmf_activation_names[DMF_ACT_COUNT];

typedef struct DmfBranch
{
	DmfInputCoding coding;		/* how raw input ratings are encoded */
	int			n_layers;		/* weight layers: hidden layers + 1 */
	int			sizes[DMF_MAX_LAYERS + 1];	/* sizes[0] input, last = dim */
	DmfActivation activation;
	size_t		w_off[DMF_MAX_LAYERS];	/* W_l: sizes[l] x sizes[l+1] */
	size_t		b_off[DMF_MAX_LAYERS];	/* b_l: sizes[l+1] */
	size_t		n_params;
	float	   *params;
} DmfBranch;

/* Scratch for a forward/backward pass over up to max_rows inputs. */
typedef struct DmfBranchWork
{
	int			max_rows;
	int			max_width;
	float	   *pre[DMF_MAX_LAYERS];	/* pre-activations */
	float	   *act[DMF_MAX_LAYERS];	/* outputs (after dropout) */
	float	   *mask[DMF_MAX_LAYERS];	/* dropout masks, NULL when off */
	float	   *dpre;			/* gradient buffers, rows x max_width */
	float	   *dact;
	float	   *scale;			/* per-row input scale of the sparse layer */
	float	   *enc_a;			/* per-row input encoding */
	float	   *enc_c;

	/*
	 * Training's passes (in_tasks) run in fixed tasks on team (which may be
	 * NULL: the tasks in order on this thread): the sparse layer by rows
	 * forward and by rows of its weights (inputs) backward, the dense
	 * layers by rows.  The tasks do not depend on the team's size, and each computes
	 * its outputs alone, so the passes give the same bits on any number of
	 * threads (OpenBLAS's results depend on how a product is split, so the
	 * split is fixed).  Off (zeroed by dmf_branch_work_alloc), a pass is
	 * one call per layer on this thread.
	 */
	bool		in_tasks;
	DmfTeam    *team;
	int64_t    *runs;			/* each row's entries by task of the sparse backward */

	/*
	 * Set (by the alternating training), the passes' rows are these
	 * virtual rows (grouped.h), in tasks only; x, rows and nb are ignored
	 * by the sparse layer, and nb must be vrows->nv.
	 */
	const DmfVirtualRows *vrows;
} DmfBranchWork;

/* Tasks of the sparse layer's backward pass: equal ranges of its inputs (dW's rows). */
#define DMF_SPARSE_TASKS 32

/*
 * Sets the layout (offsets, n_params) from n_layers and sizes; params is
 * left NULL.  Returns false if the shape is not valid.
 */
bool		dmf_branch_layout(DmfBranch *b, int n_layers, const int *sizes,
							  DmfActivation activation);
/* Allocates params and fills them with a scaled normal initialisation. */
void		dmf_branch_init(DmfBranch *b, DmfRng *rng);

/*
 * A trained branch's weights into b (a warm start), which has the same
 * shape but for its inputs: every layer but the first as they are, the
 * first layer's row r from row rows[r] of from's, or left as it is for -1.
 */
void		dmf_branch_copy_weights(DmfBranch *b, const DmfBranch *from, const int32_t *rows);

void		dmf_branch_work_alloc(DmfBranchWork *w, const DmfBranch *b,
								  int max_rows, bool dropout);
void		dmf_branch_work_free(DmfBranchWork *w, const DmfBranch *b);

/*
 * Training's passes for w: in tasks on team (NULL: on this thread), hidden
 * units dropped with a random stream per row.
 */
void		dmf_branch_work_tasks(DmfBranchWork *w, DmfTeam *team);

/*
 * Forward pass over rows[0..nb) of x, skipping the entries of x flagged in
 * skip (may be NULL).  With dropout_rate > 0 (training only), hidden
 * units are dropped using rng.  Returns the nb x dim output, which lives
 * in w.
 */
const float *dmf_branch_forward(const DmfBranch *b, DmfBranchWork *w,
								const DmfCsr *x, const int32_t *rows, int nb,
								const uint8_t *skip,
								float dropout_rate, DmfRng *rng);

/*
 * Backward pass for the last forward pass: dout is the nb x dim gradient
 * of the loss with respect to the output; parameter gradients are added
 * into grad (n_params floats).  dout may be overwritten.
 */
void		dmf_branch_backward(const DmfBranch *b, DmfBranchWork *w,
								const DmfCsr *x, const int32_t *rows, int nb,
								const uint8_t *skip,
								float *dout, float *grad);

/*
 * Latent factors of rows[0..nb) with all inputs kept, scaled to unit
 * length (so a prediction is a dot product).  A row with no input gets the
 * zero vector: its factor is unknown.  out is nb x dim.
 */
void		dmf_branch_factors(const DmfBranch *b, DmfBranchWork *w,
							   const DmfCsr *x, const int32_t *rows, int nb,
							   float *out);

/* Rows a factor pass runs through a branch at once, outside training. */
#define DMF_FACTOR_CHUNK 1024

/*
 * Scales each row of m (nb x dim) to unit length; a row of length (almost)
 * zero becomes zero, the "no factor" of a row without input.  A row holding
 * a NaN or an infinity is left as it is: never a zero or a unit vector, so
 * the caller's finiteness check sees it.
 */
void		dmf_normalize_rows(float *m, int nb, int dim);

#endif
