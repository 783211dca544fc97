/*
 * similar.c
 *	  Rankings around one entity's factor: dmf_similar_items and
 *	  dmf_similar_users (the same side, by cosine) and dmf_recommend_users
 *	  (the users with the highest prediction for an item: targeting).
 *
 * Each is one sgemv over the ranked side and a heap of k (dmf_top_k), as
 * dmf_recommend: O(n * dim + n log k) for n users or items.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "model_cache.h"
#include "model_format.h"
#include "score.h"
#include "sparse.h"

/* The factor of id on a side, or NULL if the model has none for it. */
static const float *
factor_of(const DmfModel *m, bool user_side, int64 id, int32 *pos)
{
	const DmfSide *side = dmf_model_side(m, user_side);
	const float *f;

	*pos = dmf_side_find(side, id);
	if (*pos < 0)
		return NULL;
	f = side->factors + (size_t) *pos * m->dim;
	return dmf_factor_is_zero(f, m->dim) ? NULL : f;
}

/* (id, cosine) of the k entities of a side most similar to one of them. */
static Datum
similar(FunctionCallInfo fcinfo, bool user_side)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const DmfModel *m;
	const float *f;
	int32		pos,
				k,
				n_top;
	int32	   *top;
	DmfRanking	r;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	k = dmf_k_arg(fcinfo, 2, user_side ? "users" : "items");
	f = factor_of(m, user_side, PG_GETARG_INT64(1), &pos);
	if (f == NULL)
		PG_RETURN_NULL();

	work = AllocSetContextCreate(CurrentMemoryContext, "dmf_similar",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	r = dmf_ranking_of(m, user_side);
	r.exclude = &pos;			/* itself */
	r.n_exclude = 1;
	top = palloc(sizeof(int32) * Max(Min(k, dmf_ranking_rows(&r)), 1));
	n_top = dmf_top_k(&r, f, k, top);
	for (int32 j = 0; j < n_top; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		double		cosine;

		if (!dmf_factor_cosine(f, r.factors + (size_t) top[j] * m->dim, m->dim, &cosine))
			continue;
		values[0] = Int64GetDatum(dmf_model_side(m, user_side)->ids[top[j]]);
		values[1] = Float8GetDatum(cosine);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}

/* dmf_similar_items(model, item_id, k) -> (item_id, similarity) */
PG_FUNCTION_INFO_V1(dmf_similar_items);
Datum
dmf_similar_items(PG_FUNCTION_ARGS)
{
	return similar(fcinfo, false);
}

/* dmf_similar_users(model, user_id, k) -> (user_id, similarity) */
PG_FUNCTION_INFO_V1(dmf_similar_users);
Datum
dmf_similar_users(PG_FUNCTION_ARGS)
{
	return similar(fcinfo, true);
}

/* The users (ascending positions) whose stored rated items include item. */
static int32 *
users_who_rated(const DmfModel *m, int32 item, int64 *n_out)
{
	int32	   *users = palloc_extended(sizeof(int32) * ((size_t) m->users.n + 1),
										MCXT_ALLOC_HUGE);
	int64		n = 0;

	/* each user's list is ascending */
	for (int32 u = 0; u < m->users.n; u++)
	{
		if (u % 65536 == 0)
			CHECK_FOR_INTERRUPTS();
		if (dmf_sorted_has(m->rated_items + m->rated_offsets[u],
						   m->rated_offsets[u + 1] - m->rated_offsets[u], item))
			users[n++] = u;
	}
	*n_out = n;
	return users;
}

/*
 * dmf_recommend_users(model, item_id, k, exclude_rated) -> (user_id, score):
 * the users with the highest prediction for the item, best first, each
 * score as dmf_predict computes it; with exclude_rated, users who have
 * the item in the model's data are left out.
 */
PG_FUNCTION_INFO_V1(dmf_recommend_users);
Datum
dmf_recommend_users(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const DmfModel *m;
	const float *f;
	int32		pos,
				k,
				n_top;
	bool		exclude_rated;
	int32	   *top;
	DmfRanking	r;
	MemoryContext work,
				old;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	k = dmf_k_arg(fcinfo, 2, "users");
	exclude_rated = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
	if (exclude_rated)
		dmf_require_rated_items(m, "It was written by a build of dmf that did not store them.",
								"Refresh it with dmf_refresh, or pass exclude_rated => false.");
	f = factor_of(m, false, PG_GETARG_INT64(1), &pos);
	if (f == NULL)
		PG_RETURN_NULL();

	work = AllocSetContextCreate(CurrentMemoryContext, "dmf_recommend_users",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	r = dmf_ranking_of(m, true);
	if (exclude_rated)
		r.exclude = users_who_rated(m, pos, &r.n_exclude);
	top = palloc(sizeof(int32) * Max(Min(k, dmf_ranking_rows(&r)), 1));
	n_top = dmf_top_k(&r, f, k, top);
	for (int32 j = 0; j < n_top; j++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		double		score;

		if (!dmf_score_factors(m, r.factors + (size_t) top[j] * m->dim, f, &score))
			continue;
		values[0] = Int64GetDatum(m->users.ids[top[j]]);
		values[1] = Float8GetDatum(score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	PG_RETURN_NULL();
}
