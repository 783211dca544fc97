/*
 * recommend.c
 *	  dmf_recommend: the k items with the highest predicted rating for a
 *	  user, or for a factor (a user added after training); and the ranking
 *	  the serving functions share (dmf_top_k).
 *
 * One sgemv scores every item against the user's factor (stored factors
 * are unit vectors, so the dot product is the cosine the prediction is a
 * monotone function of); a min-heap of k candidates keeps the best while
 * the scores are scanned once, so a call costs O(items * dim + items log k)
 * and never sorts all items.  The k kept are returned best first, each
 * with its prediction computed exactly as dmf_predict does.
 *
 * Given candidates, only those items are scored, each by the cosine in
 * double that dmf_predict computes, so they come back in dmf_predict's
 * order; a call costs O(candidates * dim).
 *
 * A user without a factor gets nothing, or with cold_start the items most
 * users of the model interacted with (popularity.c).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "blas.h"
#include "dmf.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "model_format.h"
#include "score.h"

typedef struct Candidate
{
	double		score;
	int32		row;			/* position in the ranked side */
} Candidate;

/* Ranked first: the higher score, then the lower position (= id). */
static inline bool
ranks_before(Candidate a, Candidate b)
{
	return a.score > b.score || (a.score == b.score && a.row < b.row);
}

static inline void
swap_candidates(Candidate *heap, int a, int b)
{
	Candidate	tmp = heap[a];

	heap[a] = heap[b];
	heap[b] = tmp;
}

/* Restores the heap below slot k; the root is the candidate ranked last. */
static void
sift_down(Candidate *heap, int n, int k)
{
	for (;;)
	{
		int			child = 2 * k + 1;

		if (child >= n)
			return;
		if (child + 1 < n && ranks_before(heap[child], heap[child + 1]))
			child++;
		if (!ranks_before(heap[k], heap[child]))
			return;
		swap_candidates(heap, k, child);
		k = child;
	}
}

static void
sift_up(Candidate *heap, int k)
{
	while (k > 0)
	{
		int			parent = (k - 1) / 2;

		if (!ranks_before(heap[parent], heap[k]))
			return;
		swap_candidates(heap, k, parent);
		k = parent;
	}
}

/* the best first: k may be as large as the catalogue, so a cancel stops it */
#define SORT_NAME sort_ranked
#define SORT_CTX Candidate *
#define SORT_LESS(heap, i, j) ranks_before((heap)[i], (heap)[j])
#define SORT_SWAP(heap, i, j) swap_candidates((heap), (i), (j))
#include "sort_template.h"

/* rows scored between interrupt checks */
#define ROWS_PER_CHECK 65536

DmfRanking
dmf_ranking_of(const DmfModel *m, bool user_side)
{
	DmfRanking	r;
	const DmfSide *side = dmf_model_side(m, user_side);

	memset(&r, 0, sizeof(r));
	r.factors = side->factors;
	r.n = side->n;
	r.dim = m->dim;
	r.unit_rows = !(m->flags & DMF_FLAG_BFLOAT16);
	return r;
}

/* Offers c to the heap of the best k so far (the root: the one ranked last). */
static inline void
heap_offer(Candidate *heap, int *n_heap, int k, Candidate c)
{
	if (*n_heap < k)
	{
		heap[*n_heap] = c;
		sift_up(heap, (*n_heap)++);
	}
	else if (ranks_before(c, heap[0]))
	{
		heap[0] = c;
		sift_down(heap, *n_heap, 0);
	}
}

/* Whether row is in exclude, advancing *e (rows come in ascending order). */
static inline bool
excluded(const DmfRanking *r, int32 row, int64 *e)
{
	while (*e < r->n_exclude && r->exclude[*e] < row)
		(*e)++;
	return *e < r->n_exclude && r->exclude[*e] == row;
}

/*
 * Float dot products (one sgemv) find the best k approximately; every row
 * within rounding of the k-th is then scored by the cosine in double that
 * dmf_predict computes, and the k best of those are the answer.  So the
 * order is exactly dmf_predict's, at the cost of a few extra cosines.
 */
static int
top_k_all_rows(const DmfRanking *r, const float *u, int32 k, Candidate *heap)
{
	float	   *approx = dmf_budget_alloc(sizeof(float) * (size_t) r->n, 0);
	double		u_norm = 0.0,
				margin,
				threshold;
	int			n_heap = 0;
	int64		e = 0;

	dmf_sgemv(CblasRowMajor, CblasNoTrans, r->n, r->dim, 1.0f,
			  r->factors, r->dim, u, 1, 0.0f, approx, 1);
	for (int d = 0; d < r->dim; d++)
		u_norm += (double) u[d] * u[d];
	u_norm = sqrt(u_norm);

	for (int32 row = 0; row < r->n; row++)
	{
		const float *f = r->factors + (size_t) row * r->dim;
		Candidate	c = {0.0, row};

		if (row % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		if (excluded(r, row, &e))
		{
			approx[row] = NAN;
			continue;
		}
		if (!r->unit_rows && approx[row] != 0.0f)
		{
			/* compact factors are unit vectors only to their precision */
			double		norm = 0.0;

			for (int d = 0; d < r->dim; d++)
				norm += (double) f[d] * f[d];
			approx[row] = (float) (approx[row] / sqrt(norm));
		}
		/* a dot product of exactly 0 may be a row without a factor */
		if (!isfinite(approx[row]) ||
			(approx[row] == 0.0f && dmf_factor_is_zero(f, r->dim)))
		{
			approx[row] = NAN;
			continue;
		}
		c.score = approx[row];
		heap_offer(heap, &n_heap, k, c);
	}

	/*
	 * A float dot product of d terms is within about d * 2^-24 * |u| of the
	 * exact one; 1e-4 * |u| is a wide margin for any d dmf trains.
	 */
	margin = 1e-4 * u_norm;
	threshold = n_heap == k ? heap[0].score - margin : -INFINITY;
	n_heap = 0;
	for (int32 row = 0; row < r->n; row++)
	{
		Candidate	c = {0.0, row};

		if (row % ROWS_PER_CHECK == 0)
			CHECK_FOR_INTERRUPTS();
		if (!(approx[row] >= threshold))
			continue;			/* also the rows left out above (NaN) */
		if (!dmf_factor_cosine(u, r->factors + (size_t) row * r->dim, r->dim, &c.score))
			continue;
		heap_offer(heap, &n_heap, k, c);
	}
	pfree(approx);
	return n_heap;
}

int32
dmf_top_k(const DmfRanking *r, const float *u, int32 k, int32 *top)
{
	Candidate  *heap;
	int			n_heap = 0;
	int64		e = 0;
	int64_t		work = 0;

	k = Min(k, dmf_ranking_rows(r));
	if (k <= 0)
		return 0;
	heap = dmf_budget_alloc(sizeof(Candidate) * k, 0);
	if (r->only == NULL)
		n_heap = top_k_all_rows(r, u, k, heap);
	else
		for (int32 j = 0; j < r->n_only; j++)
		{
			Candidate	c = {0.0, r->only[j]};

			if (j % ROWS_PER_CHECK == 0)
				CHECK_FOR_INTERRUPTS();
			if (excluded(r, c.row, &e))
				continue;
			if (!dmf_factor_cosine(u, r->factors + (size_t) c.row * r->dim, r->dim, &c.score))
				continue;		/* no factor */
			heap_offer(heap, &n_heap, k, c);
		}

	sort_ranked(heap, n_heap, &work);
	for (int j = 0; j < n_heap; j++)
		top[j] = heap[j].row;
	pfree(heap);
	return n_heap;
}

int32
dmf_top_k_items(const DmfModel *m, const float *u, int32 k, const int32 *exclude,
				int64 n_exclude, int32 *top)
{
	DmfRanking	r = dmf_ranking_of(m, false);

	r.exclude = exclude;
	r.n_exclude = n_exclude;

	return dmf_top_k(&r, u, k, top);
}

/*
 * The best k items for the unit factor u, leaving out the item positions
 * in exclude[0..n_exclude) (ascending), among the candidates only[0..n_only)
 * if only is not NULL, into the caller's tuplestore.
 */
static void
emit_top_k(FunctionCallInfo fcinfo, const DmfModel *m, const float *u, int32 k,
		   const int32 *exclude, int64 n_exclude, const int32 *only, int32 n_only)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DmfRanking	r = dmf_ranking_of(m, false);
	int32	   *top;
	int32		n_top;

	r.exclude = exclude;
	r.n_exclude = n_exclude;
	r.only = only;
	r.n_only = n_only;
	top = palloc(sizeof(int32) * Max(Min(k, dmf_ranking_rows(&r)), 1));
	n_top = dmf_top_k(&r, u, k, top);
	for (int j = 0; j < n_top; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		double		rating;

		if (!dmf_score_factors(m, u, m->items.factors + (size_t) top[j] * m->dim,
							   &rating))
			continue;
		values[0] = Int64GetDatum(m->items.ids[top[j]]);
		values[1] = Float8GetDatum(rating);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* The candidates argument (NULL or absent: every item), as positions. */
static int32 *
candidates_arg(FunctionCallInfo fcinfo, int argno, const DmfModel *m, int32 *n_only)
{
	*n_only = 0;
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return dmf_id_array_positions(PG_GETARG_ARRAYTYPE_P(argno), &m->items,
								  "candidates", n_only);
}

/*
 * dmf_recommend(model, user_id, k, exclude_rated, candidates, cold_start):
 * a user of the model (trained, or added by dmf_refresh).  A user without
 * a factor gets no rows, or with cold_start the most popular items, with
 * a NULL score: they are not a prediction.
 */
PG_FUNCTION_INFO_V1(dmf_recommend);
Datum
dmf_recommend(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	int32		k,
				u;
	bool		exclude_rated,
				cold_start;
	int32	   *only;
	int32		n_only;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	k = dmf_k_arg(fcinfo, 2, "items");
	exclude_rated = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
	cold_start = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);

	if (exclude_rated)
		dmf_require_rated_items(m, "It was written by a build of dmf that did not store them.",
								"Refresh it with dmf_refresh, or pass exclude_rated => false.");

	work = AllocSetContextCreate(CurrentMemoryContext, "dmf_recommend",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	only = candidates_arg(fcinfo, 4, m, &n_only);
	u = dmf_side_find(&m->users, PG_GETARG_INT64(1));
	if (u < 0 || dmf_factor_is_zero(m->users.factors + (size_t) u * m->dim, m->dim))
	{
		/* a stored user without a factor may still have rated items */
		if (cold_start && u >= 0 && exclude_rated)
			dmf_emit_popular_items(fcinfo, m, k, only, n_only,
								   m->rated_items + m->rated_offsets[u],
								   m->rated_offsets[u + 1] - m->rated_offsets[u], false);
		else if (cold_start)
			dmf_emit_popular_items(fcinfo, m, k, only, n_only, NULL, 0, false);
	}
	else if (exclude_rated)
		emit_top_k(fcinfo, m, m->users.factors + (size_t) u * m->dim, k,
				   m->rated_items + m->rated_offsets[u],
				   m->rated_offsets[u + 1] - m->rated_offsets[u], only, n_only);
	else
		emit_top_k(fcinfo, m, m->users.factors + (size_t) u * m->dim, k, NULL, 0,
				   only, n_only);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}

/*
 * dmf_recommend(model, user_factor, k, exclude, candidates): for a factor,
 * e.g. of a user added after training (dmf_user_factor); exclude lists
 * item ids to leave out, typically the ones the factor was computed from.
 */
PG_FUNCTION_INFO_V1(dmf_recommend_factor);
Datum
dmf_recommend_factor(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	const float *given;
	float	   *u;
	int32		k;
	int32	   *exclude = NULL;
	int32		n_exclude = 0;
	int32	   *only;
	int32		n_only;
	double		norm = 0.0;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	given = dmf_factor_arg(PG_GETARG_ARRAYTYPE_P(1), "user", m->dim, m->dim);
	k = dmf_k_arg(fcinfo, 2, "items");

	work = AllocSetContextCreate(CurrentMemoryContext, "dmf_recommend",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);

	/* scores are cosines: the factor's length does not matter */
	u = palloc(sizeof(float) * m->dim);
	for (int j = 0; j < m->dim; j++)
		norm += (double) given[j] * given[j];
	norm = sqrt(norm);
	if (!(norm > 0.0) || !isfinite(norm))
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(work);
		PG_RETURN_NULL();
	}
	for (int j = 0; j < m->dim; j++)
		u[j] = (float) (given[j] / norm);

	if (!PG_ARGISNULL(3))
		exclude = dmf_id_array_positions(PG_GETARG_ARRAYTYPE_P(3), &m->items,
										 "exclude", &n_exclude);
	only = candidates_arg(fcinfo, 4, m, &n_only);
	emit_top_k(fcinfo, m, u, k, exclude, n_exclude, only, n_only);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}
