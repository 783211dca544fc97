/*
 * popularity.c
 *	  The items most users of a model interacted with: what a user without
 *	  a factor can be served (dmf_popular_items, dmf_recommend's cold_start).
 *
 * An item's popularity is how many of the model's users have it in their
 * row: the rated items the model stores for its users (USER_RATED, written
 * at training and by each refresh), so it always describes the data the
 * factors came from.  Counting costs one pass over those lists, O(ratings);
 * the counts of the last model counted are kept for the backend's next
 * calls with the same decoded model (the model cache's generation proves
 * it is the same), so a call then costs a sort of the items.  Nothing is
 * read from the ratings table.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "model_cache.h"
#include "model_format.h"
#include "score.h"

typedef struct PopularItem
{
	int64		users;
	int32		item;			/* position in the model's items */
} PopularItem;

/* More users first, then the lower item id (= position). */
static int
cmp_popular(const void *a, const void *b)
{
	const PopularItem *x = (const PopularItem *) a;
	const PopularItem *y = (const PopularItem *) b;

	if (x->users != y->users)
		return x->users > y->users ? -1 : 1;
	return (x->item > y->item) - (x->item < y->item);
}

/* The counts of the model whose cache entry has generation counted_generation. */
static uint64 counted_generation = 0;
static int64 *counted_users = NULL;

/* How many of the model's users have each item in their row, by item position. */
static const int64 *
item_users(const DmfModel *m)
{
	DmfModelRef ref = dmf_model_ref(m);
	int64		nnz = m->rated_offsets[m->users.n];
	int64	   *users;

	if (counted_users != NULL && counted_generation == ref.generation)
		return counted_users;
	if (counted_users != NULL)
		pfree(counted_users);
	counted_users = NULL;		/* until the new counts are complete */
	users = MemoryContextAllocExtended(TopMemoryContext,
									   sizeof(int64) * ((size_t) m->items.n + 1),
									   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int64 e = 0; e < nnz; e++)
		users[m->rated_items[e]]++;
	counted_generation = ref.generation;
	counted_users = users;
	return users;
}

void
dmf_emit_popular_items(FunctionCallInfo fcinfo, const DmfModel *m, int32 k,
					   const int32 *only, int32 n_only, const int32 *exclude,
					   int64 n_exclude, bool with_users)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const int64 *users;
	PopularItem *ranked;
	int32		n_ranked = 0;
	int32		n_rows = only ? n_only : m->items.n;
	int64		e = 0;

	dmf_require_rated_items(m, "Popularity is counted from those items.",
							"Refresh it with dmf_refresh first.");
	users = item_users(m);

	ranked = palloc_extended(sizeof(PopularItem) * ((size_t) n_rows + 1), MCXT_ALLOC_HUGE);
	for (int32 j = 0; j < n_rows; j++)
	{
		int32		item = only ? only[j] : j;

		while (e < n_exclude && exclude[e] < item)
			e++;
		if (e < n_exclude && exclude[e] == item)
			continue;
		/* an item without a factor is not one the model can serve */
		if (dmf_factor_is_zero(m->items.factors + (size_t) item * m->dim, m->dim))
			continue;
		ranked[n_ranked].users = users[item];
		ranked[n_ranked].item = item;
		n_ranked++;
	}
	qsort(ranked, n_ranked, sizeof(PopularItem), cmp_popular);

	for (int32 j = 0; j < Min(k, n_ranked); j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, !with_users};

		values[0] = Int64GetDatum(m->items.ids[ranked[j].item]);
		values[1] = with_users ? Int64GetDatum(ranked[j].users) : (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * dmf_popular_items(model, k, candidates) -> (item_id, users): the k items
 * (among the candidates, if given) most users of the model have in their
 * row, most first, ties by item id.
 */
PG_FUNCTION_INFO_V1(dmf_popular_items);
Datum
dmf_popular_items(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	int32		k;
	int32	   *only = NULL;
	int32		n_only = 0;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	k = dmf_k_arg(fcinfo, 1, "items");
	work = AllocSetContextCreate(CurrentMemoryContext, "dmf_popular_items",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	if (!PG_ARGISNULL(2))
		only = dmf_id_array_positions(PG_GETARG_ARRAYTYPE_P(2), &m->items,
									  "candidates", &n_only);
	dmf_emit_popular_items(fcinfo, m, k, only, n_only, NULL, 0, true);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}
