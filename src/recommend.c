/*
 * recommend.c
 *	  dmf_recommend: the k items with the highest predicted rating for a
 *	  user, or for a factor (a user added after training).
 *
 * One sgemv scores every item against the user's factor (stored factors
 * are unit vectors, so the dot product is the cosine the prediction is a
 * monotone function of); a min-heap of k candidates keeps the best while
 * the scores are scanned once, so a call costs O(items * dim + items log k)
 * and never sorts all items.  The k kept are returned best first, each
 * with its prediction computed exactly as dmf_predict does.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "blas.h"
#include "dmf.h"
#include "model_cache.h"
#include "model_format.h"
#include "score.h"

typedef struct Candidate
{
	float		score;
	int32		item;			/* position in the model's items */
} Candidate;

/* Ranked first: the higher score, then the lower item id (= position). */
static inline bool
ranks_before(Candidate a, Candidate b)
{
	return a.score > b.score || (a.score == b.score && a.item < b.item);
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

static int
cmp_ranked(const void *a, const void *b)
{
	Candidate	x = *(const Candidate *) a;
	Candidate	y = *(const Candidate *) b;

	return ranks_before(x, y) ? -1 : ranks_before(y, x) ? 1 : 0;
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

int32
dmf_top_k_items(const DmfModel *m, const float *u, int32 k, const int32 *exclude,
				int64 n_exclude, int32 *top)
{
	int32		n_items = m->items.n;
	float	   *scores;
	Candidate  *heap;
	int			n_heap = 0;
	int32		n_top = 0;
	int64		e = 0;

	if (k > n_items)
		k = n_items;
	if (k == 0)
		return 0;

	scores = palloc_extended(sizeof(float) * (size_t) n_items, MCXT_ALLOC_HUGE);
	heap = palloc(sizeof(Candidate) * k);
	dmf_sgemv(CblasRowMajor, CblasNoTrans, n_items, m->dim, 1.0f,
			  m->items.factors, m->dim, u, 1, 0.0f, scores, 1);

	for (int32 i = 0; i < n_items; i++)
	{
		Candidate	c = {scores[i], i};

		while (e < n_exclude && exclude[e] < i)
			e++;
		if (e < n_exclude && exclude[e] == i)
			continue;
		if (!isfinite(c.score))
			continue;
		if (n_heap == k && !ranks_before(c, heap[0]))
			continue;
		/* a dot product of exactly 0 may be an item without a factor */
		if (c.score == 0.0f && dmf_factor_is_zero(m->items.factors + (size_t) i * m->dim, m->dim))
			continue;
		if (n_heap < k)
		{
			heap[n_heap] = c;
			sift_up(heap, n_heap++);
		}
		else
		{
			heap[0] = c;
			sift_down(heap, n_heap, 0);
		}
	}

	qsort(heap, n_heap, sizeof(Candidate), cmp_ranked);
	for (int j = 0; j < n_heap; j++)
		top[n_top++] = heap[j].item;
	pfree(scores);
	pfree(heap);
	return n_top;
}

/*
 * The best k items for the unit factor u, leaving out the item positions
 * in exclude[0..n_exclude) (ascending), into the caller's tuplestore.
 */
static void
emit_top_k(FunctionCallInfo fcinfo, const DmfModel *m, const float *u, int32 k,
		   const int32 *exclude, int64 n_exclude)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32	   *top = palloc(sizeof(int32) * (k > 0 ? k : 1));
	int32		n_top = dmf_top_k_items(m, u, k, exclude, n_exclude, top);

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

static int32
k_arg(FunctionCallInfo fcinfo, int n)
{
	int32		k = PG_GETARG_INT32(n);

	if (k < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must not be negative: %d", k),
				 errhint("k is how many items to recommend.")));
	return k;
}

/*
 * dmf_recommend(model, user_id, k, exclude_rated): a user of the model
 * (trained, or added by dmf_refresh); no rows for a user without a factor.
 */
PG_FUNCTION_INFO_V1(dmf_recommend);
Datum
dmf_recommend(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	int32		k,
				u;
	bool		exclude_rated;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	k = k_arg(fcinfo, 2);
	exclude_rated = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);

	if (exclude_rated && m->rated_offsets == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this dmf model does not record which items its users rated"),
				 errdetail("It was written by a build of dmf that did not store them."),
				 errhint("Refresh it with dmf_refresh, or pass exclude_rated => false.")));

	u = dmf_side_find(&m->users, PG_GETARG_INT64(1));
	if (u < 0 || dmf_factor_is_zero(m->users.factors + (size_t) u * m->dim, m->dim))
		PG_RETURN_NULL();

	work = AllocSetContextCreate(CurrentMemoryContext, "dmf_recommend",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	if (exclude_rated)
		emit_top_k(fcinfo, m, m->users.factors + (size_t) u * m->dim, k,
				   m->rated_items + m->rated_offsets[u],
				   m->rated_offsets[u + 1] - m->rated_offsets[u]);
	else
		emit_top_k(fcinfo, m, m->users.factors + (size_t) u * m->dim, k, NULL, 0);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}

/*
 * dmf_recommend(model, user_factor, k, exclude): for a factor, e.g. of a
 * user added after training (dmf_user_factor); exclude lists item ids to
 * leave out, typically the ones the factor was computed from.
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
	int64		n_exclude = 0;
	double		norm = 0.0;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	given = dmf_factor_arg(PG_GETARG_ARRAYTYPE_P(1), "user", m->dim, m->dim);
	k = k_arg(fcinfo, 2);

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
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(3);
		Datum	   *ids;
		bool	   *nulls;
		int			n;

		if (ARR_NDIM(a) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("exclude must be a one-dimensional bigint[]")));
		deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &ids, &nulls, &n);
		exclude = palloc(sizeof(int32) * (n + 1));
		for (int j = 0; j < n; j++)
		{
			int32		pos;

			if (nulls[j])
				continue;
			pos = dmf_side_find(&m->items, DatumGetInt64(ids[j]));
			if (pos >= 0)
				exclude[n_exclude++] = pos;
		}
		qsort(exclude, n_exclude, sizeof(int32), cmp_int32);
	}
	emit_top_k(fcinfo, m, u, k, exclude, n_exclude);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}
