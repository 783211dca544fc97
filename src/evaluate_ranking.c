/*
 * evaluate_ranking.c
 *	  dmf_evaluate_ranking: how well a model ranks held-out interactions.
 *
 * The held-out relation is read in order of user (the server sorts it).
 * For each user the model has a factor for, the items are ranked exactly
 * as dmf_recommend(model, user, k) ranks them, over every item the model
 * knows except those the user has in the model's data, and the user's
 * distinct held-out items are the relevant ones.  The metrics at k are
 * averaged over those users:
 *   hit_rate   1 if any relevant item is in the top k
 *   precision  hits / k
 *   recall     hits / relevant items
 *   ndcg       sum over hits of 1 / log2(rank + 1), over its best value
 *   map        the mean of precision at each hit's rank, over min(relevant, k)
 * With a rating column and min_rating, only the held-out rows rated at
 * least min_rating are relevant (for explicit models: "liked"), and users
 * without such a row are not counted; the rest are still ranked.
 * Memory holds one user's held-out items at a time, within dmf.max_memory.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "model_format.h"
#include "prepare.h"
#include "ratings_reader.h"
#include "score.h"

typedef struct RankingSums
{
	const DmfModel *m;
	DmfMemoryBudget *budget;
	int32		k;
	int32	   *top;			/* k item positions */
	bool		has_min_rating;
	double		min_rating;		/* rows rated below are not relevant */
	int64		user;			/* the user whose rows are being collected */
	bool		have_user;
	int64	   *items;			/* that user's held-out item ids */
	int64		n_items;
	int64		cap;
	int64		not_held;		/* that user's rows past dmf.max_memory */
	/* sums over the users evaluated */
	int64		users;
	int64		skipped_users;	/* no factor in the model */
	int64		skipped_nulls;	/* rows with a NULL user or item */
	double		hits,
				precision,
				recall,
				ndcg,
				ap;
} RankingSums;

/* The metrics of the collected user, added to the sums. */
static void
finish_user(RankingSums *s)
{
	const DmfModel *m = s->m;
	int32		u = dmf_side_find(&m->users, s->user);
	int64		relevant = 0;
	int32		n_top;
	int			hits = 0;
	double		dcg = 0.0,
				idcg = 0.0,
				ap = 0.0;

	if (s->not_held > 0)
	{
		/*
		 * all the user's items (the array may be copied as it grows: twice),
		 * a batch of rows, the scores of every item
		 */
		uint64		need = dmf_budget_peak(s->budget) + DMF_SCAN_BATCH_BYTES +
			sizeof(int64) * (uint64) (2 * (s->n_items + s->not_held) - s->cap) +
			sizeof(float) * (uint64) m->items.n;

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the held-out rows of user " INT64_FORMAT " need more than dmf.max_memory (%s)",
						s->user, dmf_pretty_bytes(dmf_max_memory_bytes())),
				 errdetail("The user has " INT64_FORMAT " held-out rows; " INT64_FORMAT " of them fit.",
						   s->n_items + s->not_held, s->n_items),
				 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
						 dmf_pretty_bytes_setting(need + need / 8))));
	}
	if (u < 0 || dmf_factor_is_zero(m->users.factors + (size_t) u * m->dim, m->dim))
	{
		s->skipped_users++;
		return;
	}
	/* the distinct held-out items (fewer than 2^31: they were read into memory) */
	qsort(s->items, s->n_items, sizeof(int64), dmf_cmp_int64);
	for (int64 j = 0; j < s->n_items; j++)
		if (relevant == 0 || s->items[relevant - 1] != s->items[j])
			s->items[relevant++] = s->items[j];

	n_top = dmf_top_k_items(m, m->users.factors + (size_t) u * m->dim, s->k,
							m->rated_items + m->rated_offsets[u],
							m->rated_offsets[u + 1] - m->rated_offsets[u], s->top);
	for (int32 r = 0; r < n_top; r++)
		if (dmf_find_id(s->items, (int32) relevant, m->items.ids[s->top[r]]) >= 0)
		{
			hits++;
			dcg += 1.0 / log2(r + 2.0);
			ap += (double) hits / (r + 1.0);
		}
	for (int64 r = 0; r < Min(relevant, (int64) s->k); r++)
		idcg += 1.0 / log2(r + 2.0);

	s->users++;
	s->hits += hits > 0 ? 1.0 : 0.0;
	s->precision += (double) hits / s->k;
	s->recall += (double) hits / relevant;
	s->ndcg += dcg / idcg;
	s->ap += ap / Min(relevant, (int64) s->k);
}

static bool
add_rows(void *arg, const int64 *user, const int64 *item, const double *weight,
		 int n, int skipped_nulls)
{
	RankingSums *s = (RankingSums *) arg;
	/* called inside SPI: what the ranking allocates is the budget's */
	MemoryContext spi = MemoryContextSwitchTo(dmf_budget_context(s->budget));

	s->skipped_nulls += skipped_nulls;
	for (int r = 0; r < n; r++)
	{
		if (s->has_min_rating && !(weight[r] >= s->min_rating))
			continue;
		if (s->have_user && user[r] != s->user)
		{
			finish_user(s);
			s->n_items = 0;
		}
		if (s->not_held > 0)
		{
			/* over the cap: count the user's other rows, for the hint */
			s->not_held++;
			continue;
		}
		if (!s->have_user || user[r] != s->user)
		{
			s->user = user[r];
			s->have_user = true;
			CHECK_FOR_INTERRUPTS();
		}
		if (s->n_items == PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("user " INT64_FORMAT " has more than %d held-out rows", s->user, PG_INT32_MAX)));
		if (s->n_items == s->cap)
		{
			int64		cap = dmf_budget_grow_capacity(s->cap, s->cap + 1, sizeof(int64), 1);

			if (cap == s->cap)
			{
				s->not_held = 1;
				continue;
			}
			s->items = dmf_budget_realloc(s->items, sizeof(int64) * s->cap, sizeof(int64) * cap);
			s->cap = cap;
		}
		s->items[s->n_items++] = item[r];
	}
	MemoryContextSwitchTo(spi);
	return true;
}

PG_FUNCTION_INFO_V1(dmf_evaluate_ranking);
Datum
dmf_evaluate_ranking(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old = CurrentMemoryContext;
	DmfMemoryBudget *budget;
	DmfRatingColumns cols;
	RankingSums s;
	Datum		values[6];
	bool		nulls[6] = {false, true, true, true, true, true};
	static const char *const args[] = {
		"model", "heldout", "user_column", "item_column", "k", NULL, NULL
	};

	InitMaterializedSRF(fcinfo, 0);
	dmf_require_args(fcinfo, "dmf_evaluate_ranking", args, Min(PG_NARGS(), lengthof(args)));

	memset(&s, 0, sizeof(s));
	s.m = dmf_model_arg(fcinfo, 0);
	/* the model is the cache's: the budget is the ranking's own work */
	budget = dmf_budget_begin("dmf_evaluate_ranking", "dmf_evaluate_ranking");
	s.budget = budget;
	/* the relation may be a view that calls dmf functions: keep the model */
	dmf_model_pin(dmf_model_ref(s.m), dmf_budget_context(budget));
	s.k = PG_GETARG_INT32(4);
	if (s.k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1: %d", s.k),
				 errhint("k is the length of the ranked list the metrics look at.")));
	dmf_require_rated_items(s.m, "A ranking leaves those items out, as dmf_recommend does.",
							"Refresh it with dmf_refresh first.");
	s.top = dmf_budget_alloc(sizeof(int32) * Min(s.k, Max(s.m->items.n, 1)), 0);
	s.cap = 64;
	s.items = palloc(sizeof(int64) * s.cap);

	cols.relid = PG_GETARG_OID(1);
	cols.user_column = NameStr(*PG_GETARG_NAME(2));
	cols.item_column = NameStr(*PG_GETARG_NAME(3));
	cols.rating_column = NULL;
	if (PG_NARGS() > 6 && !PG_ARGISNULL(6))
	{
		s.has_min_rating = true;
		s.min_rating = PG_GETARG_FLOAT8(6);
		if (PG_ARGISNULL(5))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("min_rating needs a rating_column"),
					 errhint("Name the column of the held-out ratings that min_rating applies to.")));
		if (isnan(s.min_rating))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("min_rating must be a number")));
	}
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
	{
		if (!s.has_min_rating)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rating_column needs a min_rating"),
					 errhint("Held-out rows rated at least min_rating are the relevant ones; "
							 "without min_rating every row is.")));
		cols.rating_column = NameStr(*PG_GETARG_NAME(5));
	}
	dmf_scan_ratings_by_user(&cols, add_rows, &s, 0);
	if (s.have_user)
		finish_user(&s);
	dmf_report_skipped_nulls(s.skipped_nulls, dmf_relation_name(cols.relid));
	if (s.skipped_users > 0)
		ereport(NOTICE,
				(errmsg("skipped " INT64_FORMAT " users of %s that the model has no factor for",
						s.skipped_users, dmf_relation_name(cols.relid)),
				 errhint("Add them to the model with dmf_refresh to rank items for them.")));

	values[0] = Int64GetDatum(s.users);
	if (s.users > 0)
	{
		values[1] = Float8GetDatum(s.hits / s.users);
		values[2] = Float8GetDatum(s.precision / s.users);
		values[3] = Float8GetDatum(s.recall / s.users);
		values[4] = Float8GetDatum(s.ndcg / s.users);
		values[5] = Float8GetDatum(s.ap / s.users);
		for (int c = 1; c < 6; c++)
			nulls[c] = false;
	}
	MemoryContextSwitchTo(old);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	dmf_budget_end(budget);
	PG_RETURN_NULL();
}
