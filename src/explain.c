/*
 * explain.c
 *	  dmf_explain: which of a user's own ratings support a prediction most.
 *
 * The influence of one rating is the prediction for the item from the
 * user's whole row minus the prediction from the row without that rating,
 * each row mapped to a factor through the user branch and fold-in exactly
 * as dmf_refresh and dmf_user_factor map a row.  It costs a pass of the
 * branch (and fold-in) per rating: O(n^2 * width) for n ratings, a few
 * milliseconds for a typical user of MovieLens, seconds for thousands.
 *
 * The row comes from a ratings relation when one is given: the ratings as
 * they are now.  Without one, a model of implicit feedback uses what it
 * stores of the user (every interaction weighs 1); a model of ratings
 * stores which items a user rated, not the ratings, so it needs the
 * relation.  Only items in the branch's input (the training items) can
 * have an influence; the others are not listed.  An interaction's rating
 * is 1, as it enters the branch, whatever its weight.
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
#include "encoding.h"
#include "fold_in.h"
#include "model_cache.h"
#include "model_format.h"
#include "ratings_reader.h"
#include "score.h"
#include "sparse.h"

/* One rating of the user's row. */
typedef struct RowEntry
{
	int64		item_id;
	double		rating;			/* as given */
	int32		input;			/* position in the user branch's input */
	float		working;		/* on the working scale (encoding.h) */
	double		influence;
	bool		has_influence;	/* false: without it the row is empty */
} RowEntry;

typedef struct UserRow
{
	const DmfModel *m;
	int64		user_id;
	RowEntry   *entries;
	int32		n;
	int32		cap;
	int64		not_held;		/* rows past dmf.max_memory, counted for the hint */
	DmfMemoryBudget *budget;
} UserRow;

static void
add_entry(UserRow *row, int64 item_id, double rating)
{
	const DmfModel *m = row->m;
	int32		k = dmf_side_find(&m->items, item_id);

	if (m->flags & DMF_FLAG_IMPLICIT)
	{
		if (!(rating > 0.0) || isinf(rating))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("weight %g of user " INT64_FORMAT "'s interaction with item " INT64_FORMAT
							" is not a finite number above 0", rating, row->user_id, item_id)));
	}
	else if (rating < m->rating_min || rating > m->rating_max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("rating %g of user " INT64_FORMAT " for item " INT64_FORMAT
						" is outside the model's range [%g, %g]",
						rating, row->user_id, item_id, m->rating_min, m->rating_max)));
	if (k < 0 || m->items.input[k] < 0)
		return;					/* not an input of the branch */
	if (row->not_held > 0)
	{
		row->not_held++;
		return;
	}
	if (row->n == row->cap)
	{
		int32		cap = (int32) Min(dmf_budget_grow_capacity(row->cap, row->cap + 1,
															   sizeof(RowEntry), 1),
									  PG_INT32_MAX);

		if (cap == row->cap)
		{
			row->not_held = 1;
			return;
		}
		row->entries = dmf_budget_realloc(row->entries, sizeof(RowEntry) * row->cap,
										  sizeof(RowEntry) * cap);
		row->cap = cap;
	}
	row->entries[row->n].item_id = item_id;
	/* an interaction enters as 1 whatever its weight */
	row->entries[row->n].rating = (m->flags & DMF_FLAG_IMPLICIT) ? 1.0 : rating;
	row->entries[row->n].input = m->items.input[k];
	/* an interaction is 1, as in training */
	row->entries[row->n].working =
		(float) dmf_to_working(&m->scale, (m->flags & DMF_FLAG_IMPLICIT) ? 1.0 : rating);
	row->entries[row->n].has_influence = false;
	row->n++;
}

static bool
add_rows(void *arg, const int64 *user, const int64 *item, const double *rating,
		 int n, int skipped_nulls)
{
	UserRow    *row = (UserRow *) arg;
	/* called inside SPI: the row is the budget's */
	MemoryContext spi = MemoryContextSwitchTo(dmf_budget_context(row->budget));

	for (int r = 0; r < n; r++)
		add_entry(row, item[r], rating[r]);
	MemoryContextSwitchTo(spi);
	return true;
}

static int
cmp_entry_input(const void *a, const void *b)
{
	const RowEntry *x = (const RowEntry *) a;
	const RowEntry *y = (const RowEntry *) b;

	return (x->input > y->input) - (x->input < y->input);
}

/* The most influential first (rows without an influence last), then item id. */
static int
cmp_entry_influence(const void *a, const void *b)
{
	const RowEntry *x = (const RowEntry *) a;
	const RowEntry *y = (const RowEntry *) b;

	if (x->has_influence != y->has_influence)
		return x->has_influence ? -1 : 1;
	if (x->has_influence && x->influence != y->influence)
		return x->influence > y->influence ? -1 : 1;
	return (x->item_id > y->item_id) - (x->item_id < y->item_id);
}

/*
 * The prediction for the item factor v from the row without entry skip
 * (-1: the whole row); false if that row is empty.
 */
static bool
predict_from_row(const DmfModel *m, DmfBranchWork *w, const UserRow *row, int32 skip,
				 const float *v, float *f, double *prediction)
{
	int32		n = 0,
				zero = 0;
	int32	   *rows = dmf_budget_alloc(sizeof(int32) * (row->n + 1), MCXT_ALLOC_ZERO);
	int32	   *cols = dmf_budget_alloc(sizeof(int32) * (row->n + 1), 0);
	float	   *vals = dmf_budget_alloc(sizeof(float) * (row->n + 1), 0);
	DmfCsr		x;
	bool		ok;

	for (int32 j = 0; j < row->n; j++)
		if (j != skip)
		{
			cols[n] = row->entries[j].input;
			vals[n] = row->entries[j].working;
			n++;
		}
	if (dmf_csr_build(&x, 1, m->items.n_train, n, rows, cols, vals, NULL, NULL) > 0)
		elog(ERROR, "dmf_explain: an item appears twice in a row");
	dmf_branch_factors(&m->user_branch, w, &x, &zero, 1, f);
	dmf_fold_in(&x, f, m->items.anchors, m->dim, m->fold_in_steps, m->fold_in_rate,
				0.0, m->scale.working_max);
	dmf_csr_free(&x);
	dmf_check_factors_finite(f, m->dim, "user");
	ok = dmf_score_factors(m, f, v, prediction);
	pfree(rows);
	pfree(cols);
	pfree(vals);
	return ok;
}

/*
 * dmf_explain(model, user_id, item_id, k, ratings, user_column, item_column,
 * rating_column) -> (item_id, rating, influence)
 */
PG_FUNCTION_INFO_V1(dmf_explain);
Datum
dmf_explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const DmfModel *m;
	UserRow		row;
	int32		k,
				i,
				kept;
	const float *v;
	float	   *f;
	double		full;
	DmfBranchWork w;
	DmfMemoryBudget *budget;

	InitMaterializedSRF(fcinfo, 0);
	for (int a = 0; a < 4; a++)
		if (PG_ARGISNULL(a))
			PG_RETURN_NULL();
	m = dmf_model_arg(fcinfo, 0);
	k = dmf_k_arg(fcinfo, 3, "ratings");
	i = dmf_side_find(&m->items, PG_GETARG_INT64(2));
	if (i < 0 || dmf_factor_is_zero(m->items.factors + (size_t) i * m->dim, m->dim))
		PG_RETURN_NULL();		/* no prediction to explain */
	v = m->items.factors + (size_t) i * m->dim;

	budget = dmf_budget_begin("dmf_explain", "dmf_explain");
	/* a relation may be a view that calls dmf functions: keep the model */
	dmf_model_pin(dmf_model_ref(m), dmf_budget_context(budget));
	memset(&row, 0, sizeof(row));
	row.m = m;
	row.budget = budget;
	row.user_id = PG_GETARG_INT64(1);
	row.cap = 64;
	row.entries = palloc(sizeof(RowEntry) * row.cap);

	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		DmfRatingColumns cols;
		static const char *const args[] = {
			"model", "user_id", "item_id", "k", "ratings",
			"user_column", "item_column", NULL
		};

		dmf_require_args(fcinfo, "dmf_explain", args, lengthof(args));
		cols.relid = PG_GETARG_OID(4);
		cols.user_column = NameStr(*PG_GETARG_NAME(5));
		cols.item_column = NameStr(*PG_GETARG_NAME(6));
		cols.rating_column = dmf_rating_column_arg(fcinfo, 7, "dmf_explain",
												   (m->flags & DMF_FLAG_IMPLICIT) != 0);
		dmf_scan_user_ratings(&cols, row.user_id, add_rows, &row);
	}
	else if (m->flags & DMF_FLAG_IMPLICIT)
	{
		int32		u = dmf_side_find(&m->users, row.user_id);

		dmf_require_rated_items(m, "Without a relation, the user's row is what the model records.",
								"Pass the interactions: dmf_explain(model, user, item, k, ratings => ...).");
		if (u >= 0)
			for (int64 e = m->rated_offsets[u]; e < m->rated_offsets[u + 1]; e++)
				add_entry(&row, m->items.ids[m->rated_items[e]], 1.0);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dmf_explain needs the user's ratings for a model of ratings"),
				 errdetail("The model stores which items a user rated, not the ratings."),
				 errhint("Pass the ratings relation: dmf_explain(model, user, item, k, ratings => 'ratings').")));

	if (row.not_held > 0)
	{
		/*
		 * every row (the array may be copied as it grows: twice), a batch of
		 * them, the leave-one-out rows of the influences
		 */
		uint64		need = dmf_budget_peak(budget) + DMF_SCAN_BATCH_BYTES +
			sizeof(RowEntry) * (uint64) (2 * (row.n + row.not_held) - row.cap) +
			32 * (uint64) Min(row.n + row.not_held, m->items.n_train) + 256 * 1024;

		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the rows of user " INT64_FORMAT " would need more than dmf.max_memory (%s)",
						row.user_id, dmf_pretty_bytes(dmf_max_memory_bytes())),
				 errdetail("The user has " INT64_FORMAT " rows; %d of them fit.",
						   row.n + row.not_held, row.n),
				 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s'), or check that user_column names the column of user ids.",
						 dmf_pretty_bytes_setting(need + need / 4))));
	}

	/* a row holds each item once: repeated interactions are one, as in training */
	qsort(row.entries, row.n, sizeof(RowEntry), cmp_entry_input);
	kept = 0;
	for (int32 j = 0; j < row.n; j++)
	{
		if (kept > 0 && row.entries[kept - 1].input == row.entries[j].input)
		{
			if (!(m->flags & DMF_FLAG_IMPLICIT))
				ereport(ERROR,
						(errcode(ERRCODE_CARDINALITY_VIOLATION),
						 errmsg("user " INT64_FORMAT " rated item " INT64_FORMAT " more than once",
								row.user_id, row.entries[j].item_id),
						 errhint("Pass a relation with one rating per pair.")));
			continue;
		}
		row.entries[kept++] = row.entries[j];
	}
	row.n = kept;

	f = palloc(sizeof(float) * m->dim);
	dmf_branch_work_alloc(&w, &m->user_branch, 1, false);
	if (row.n > 0 && predict_from_row(m, &w, &row, -1, v, f, &full))
	{
		for (int32 j = 0; j < row.n; j++)
		{
			double		without;

			CHECK_FOR_INTERRUPTS();
			if (predict_from_row(m, &w, &row, j, v, f, &without))
			{
				row.entries[j].influence = full - without;
				row.entries[j].has_influence = true;
			}
		}
		qsort(row.entries, row.n, sizeof(RowEntry), cmp_entry_influence);
		for (int32 j = 0; j < Min(k, row.n); j++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, !row.entries[j].has_influence};

			values[0] = Int64GetDatum(row.entries[j].item_id);
			values[1] = Float8GetDatum(row.entries[j].rating);
			values[2] = Float8GetDatum(row.entries[j].influence);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	dmf_branch_work_free(&w, &m->user_branch);
	dmf_budget_end(budget);
	PG_RETURN_NULL();
}
