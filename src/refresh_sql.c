/*
 * refresh_sql.c
 *	  dmf_refresh: every factor of a model recomputed from a ratings
 *	  relation through the trained branches, without retraining (the
 *	  paper's areas II, III and IV).
 *
 * A user's input is its ratings of the model's training items (the input
 * size of the user branch is fixed by training); ratings of items that
 * arrived later do not enter it.  Likewise an item's input is the ratings
 * of the training users.  A new user with no rating of a training item has
 * no factor and is left out; a training user the relation gives no usable
 * row keeps the factor it had.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "dmf.h"
#include "memory_budget.h"
#include "encoding.h"
#include "fold_in.h"
#include "model_cache.h"
#include "model_format.h"
#include "options.h"
#include "platform.h"
#include "prepare.h"
#include "progress.h"
#include "ratings_reader.h"
#include "score.h"
#include "sparse.h"

/* ---- dmf_refresh ---- */

/*
 * The most a refresh holds per rating, while it builds the inputs of the
 * second branch: the row as read (24 bytes), its two positions (8), who
 * rated what (8), both branches' input triples (24), the first branch's
 * rows (8), the second's (8) and the place of each entry while they are
 * sorted (8).  Afterwards only who rated what and the rows stay (24).
 */
#define REFRESH_BYTES_PER_ROW 88

static float *
palloc0_anchors(int32 n, int dim)
{
	return dmf_budget_alloc(sizeof(float) * ((size_t) n * dim + 1), MCXT_ALLOC_ZERO);
}

/*
 * Sorted union of the training ids of a side and the ids in the table;
 * stored_out[k] is where entity k sits in the model, or -1 if new.
 */
static int32
merge_ids(const DmfSide *s, const int64 *table_ids, int32 n_table,
		  int64 **ids_out, int32 **input_out, int32 **stored_out)
{
	int64	   *ids = dmf_budget_alloc(sizeof(int64) * ((size_t) s->n_train + n_table + 1), 0);
	int32	   *input = dmf_budget_alloc(sizeof(int32) * ((size_t) s->n_train + n_table + 1), 0);
	int32	   *stored = dmf_budget_alloc(sizeof(int32) * ((size_t) s->n_train + n_table + 1), 0);
	int32		a = 0,
				b = 0,
				n = 0;

	/* both lists ascending; model entities added by earlier refreshes drop out */
	while (a < s->n || b < n_table)
	{
		if (a < s->n && s->input[a] < 0)
		{
			a++;
			continue;
		}
		if (b >= n_table || (a < s->n && s->ids[a] < table_ids[b]))
		{
			ids[n] = s->ids[a];
			stored[n] = a;
			input[n++] = s->input[a++];
		}
		else if (a >= s->n || table_ids[b] < s->ids[a])
		{
			ids[n] = table_ids[b++];
			stored[n] = -1;
			input[n++] = -1;
		}
		else
		{
			ids[n] = s->ids[a];
			stored[n] = a;
			input[n++] = s->input[a++];
			b++;
		}
	}
	*ids_out = ids;
	*input_out = input;
	*stored_out = stored;
	return n;
}

/*
 * Training entities the relation gives no usable row (no rating of a
 * training entity of the other side) keep the factor and anchor they had:
 * a refresh from a relation that lacks some training users must not take
 * their predictions away.
 */
static void
keep_stored_factors(const DmfSide *s, int dim, const DmfCsr *x, const int32 *input,
					const int32 *stored, int32 n, float *factors, float *anchors)
{
	for (int32 k = 0; k < n; k++)
	{
		if (input[k] < 0 || x->rowptr[k + 1] > x->rowptr[k])
			continue;
		memcpy(factors + (size_t) k * dim, s->factors + (size_t) stored[k] * dim,
			   sizeof(float) * dim);
		memcpy(anchors + (size_t) input[k] * dim, s->anchors + (size_t) input[k] * dim,
			   sizeof(float) * dim);
	}
}

/*
 * Keeps the training entities and the new ones that got a factor; the
 * others (no rating of a training entity) are dropped.  Returns the count;
 * new_index[k] is where entity k went, or -1.
 */
static int32
compact_side(int64 *ids, int32 *input, float *factors, int32 n, int dim,
			 int32 *added, int32 *new_index)
{
	int32		out = 0;

	*added = 0;
	for (int32 k = 0; k < n; k++)
	{
		const float *f = factors + (size_t) k * dim;

		new_index[k] = -1;
		if (input[k] < 0 && dmf_factor_is_zero(f, dim))
			continue;
		new_index[k] = out;
		if (input[k] < 0)
			(*added)++;
		ids[out] = ids[k];
		input[out] = input[k];
		if (out != k)
			memmove(factors + (size_t) out * dim, f, sizeof(float) * dim);
		out++;
	}
	return out;
}

/*
 * The rated items of the kept users, as item positions after compaction
 * (order is kept, so each list stays ascending): from the relation, or for
 * a training user the relation does not have, the model's list, so that
 * dmf_recommend still leaves out what such a user rated.
 */
static void
compact_rated(const DmfModel *m, const DmfCsr *pairs, const int32 *user_index,
			  const int32 *ustored, const int32 *item_index, const int32 *istored,
			  int32 n_items_merged, int32 n_users, int64 **offsets_out, int32 **items_out)
{
	int64		stored_nnz = m->rated_offsets ? m->rated_offsets[m->users.n] : 0;
	int64	   *offsets = dmf_budget_alloc(sizeof(int64) * ((size_t) n_users + 1), 0);
	int32	   *items = dmf_budget_alloc(sizeof(int32) * (pairs->nnz + stored_nnz + 1), 0);
	int32	   *stored_to_new = NULL;
	int64		nnz = 0;

	if (m->rated_offsets)
	{
		stored_to_new = dmf_budget_alloc(sizeof(int32) * ((size_t) m->items.n + 1), 0);
		for (int32 k = 0; k < m->items.n; k++)
			stored_to_new[k] = -1;
		for (int32 k = 0; k < n_items_merged; k++)
			if (istored[k] >= 0)
				stored_to_new[istored[k]] = item_index[k];
	}
	offsets[0] = 0;
	for (int32 r = 0; r < pairs->nrows; r++)
	{
		if (user_index[r] < 0)
			continue;
		if (pairs->rowptr[r + 1] == pairs->rowptr[r] && ustored[r] >= 0 && stored_to_new)
		{
			for (int64 k = m->rated_offsets[ustored[r]]; k < m->rated_offsets[ustored[r] + 1]; k++)
				if (stored_to_new[m->rated_items[k]] >= 0)
					items[nnz++] = stored_to_new[m->rated_items[k]];
		}
		else
			for (int64 k = pairs->rowptr[r]; k < pairs->rowptr[r + 1]; k++)
				if (item_index[pairs->col[k]] >= 0)
					items[nnz++] = item_index[pairs->col[k]];
		offsets[user_index[r] + 1] = nnz;
	}
	*offsets_out = offsets;
	*items_out = items;
}

/*
 * Bytes a refresh needs besides the rows it read: factors and ids of every
 * entity, the anchors, a chunk of each branch's activations and the new
 * model twice (encoded, then copied into the result).
 */
static uint64
refresh_memory_estimate(const DmfModel *m, int32 nu, int32 ni)
{
	uint64		dim = (uint64) m->dim;
	uint64		entities = (uint64) nu + ni;
	uint64		added = entities > (uint64) m->users.n + m->items.n ?
		entities - m->users.n - m->items.n : 0;
	uint64		widths = 0;

	for (int side = 0; side < 2; side++)
	{
		const DmfBranch *b = side == 0 ? &m->user_branch : &m->item_branch;

		for (int l = 1; l <= b->n_layers; l++)
			widths += (uint64) b->sizes[l];
	}
	return entities * (dim * sizeof(float) + sizeof(int64) + 3 * sizeof(int32))
		+ ((uint64) m->users.n_train + m->items.n_train) * dim * sizeof(float)
		+ (uint64) DMF_FACTOR_CHUNK * widths * 3 * sizeof(float)
		+ 2 * (dmf_model_encoded_size(m) + added * (2 * dim * sizeof(float) + 16));
}

/* What a refusal while reading names: rows ratings of users and items, none known. */
static uint64
refresh_need(void *arg, int64 rows, int64 users, int64 items)
{
	const DmfModel *m = (const DmfModel *) arg;

	return (uint64) rows * REFRESH_BYTES_PER_ROW +
		refresh_memory_estimate(m, (int32) Min(m->users.n + users, PG_INT32_MAX),
								(int32) Min(m->items.n + items, PG_INT32_MAX));
}

static char *
refreshed_meta(const DmfModel *m, int32 users_added, int32 items_added,
			   int64 rows, int64 skipped)
{
	Datum		meta = DirectFunctionCall1(jsonb_in,
										   CStringGetDatum(pnstrdup(m->meta, m->meta_len)));
	Jsonb	   *jb = DatumGetJsonbP(meta);
	JsonbValue	key;
	int64		refreshes = 0;
	StringInfoData s;

	/* the count so far */
	key.type = jbvString;
	key.val.string.val = "refreshes";
	key.val.string.len = strlen("refreshes");
	if (JB_ROOT_IS_OBJECT(jb))
	{
		JsonbValue *v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &key);

		if (v && v->type == jbvNumeric)
		{
			bool		bad = false;

			bad = !dmf_numeric_to_int64(v->val.numeric, &refreshes);
			if (bad || refreshes < 0 || refreshes == PG_INT64_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("the model's refresh count is not a count dmf can add to"),
						 errdetail("Its metadata says \"refreshes\": %s.",
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric)))),
						 errhint("Pass a value returned by dmf_train or dmf_refresh, unchanged.")));
		}
	}

	initStringInfo(&s);
	appendStringInfo(&s, "{\"refreshes\": " INT64_FORMAT ", \"users_added\": %d, \"items_added\": %d, "
					 "\"refresh_rows\": " INT64_FORMAT ", \"refresh_skipped_null_rows\": " INT64_FORMAT
					 ", \"refreshed_at\": ",
					 refreshes + 1, users_added, items_added, rows, skipped);
	dmf_append_utc_now(&s);
	appendStringInfoChar(&s, '}');
	meta = DirectFunctionCall2(jsonb_concat, meta,
							   DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
	return DatumGetCString(DirectFunctionCall1(jsonb_out, meta));
}

/* One side (users or items) of a refresh. */
typedef struct RefreshSide
{
	int32		n;				/* merged entities; after compaction, kept ones */
	int32		n_merged;
	int64	   *ids;			/* training ids and the relation's, ascending */
	int32	   *input;			/* training input position, or -1 */
	int32	   *stored;			/* index in the model, or -1 */
	int32	   *kept;			/* merged index -> kept index, or -1 */
	DmfCsr		x;				/* rows over the other side's training entities */
	float	   *factors;
	float	   *anchors;		/* by training input position */
	int32		added;			/* kept entities the model did not have */
} RefreshSide;

/* Everything a refresh builds, step by step. */
typedef struct Refresh
{
	const DmfModel *m;
	DmfRatingColumns cols;
	char	   *rel;
	DmfMemoryBudget *budget;
	DmfRawRatings raw;
	int32	   *ru;				/* each rating's merged user and item */
	int32	   *ri;
	DmfCsr		pairs;			/* merged users x merged items of every rating */
	RefreshSide users;
	RefreshSide items;
} Refresh;

/* Reads the relation within dmf.max_memory; every rating in the model's range. */
static void
refresh_read(Refresh *r)
{
	const DmfModel *m = r->m;
	DmfRawRatings *raw = &r->raw;

	DmfReadBudget read_budget = {refresh_need, (void *) m, "refreshing the model"};

	r->rel = dmf_relation_name(r->cols.relid);
	dmf_read_ratings(&r->cols, raw, &read_budget);
	dmf_report_skipped_nulls(raw->skipped_nulls, r->rel);
	if (m->flags & DMF_FLAG_IMPLICIT)
	{
		if (r->cols.rating_column)
			dmf_check_weights(raw, &r->cols, r->rel);
	}
	else
		dmf_check_rating_range(raw, &r->cols, r->rel, m->rating_min, m->rating_max,
							   "the model's range ",
							   "Filter the rows out with a view, or retrain the model on the new scale.");
}

/*
 * The entities of the new model (the training ones and the relation's),
 * checked against dmf.max_memory, and each rating's place among them: one
 * rating per (user, item) pair.
 */
static void
refresh_merge(Refresh *r)
{
	const DmfModel *m = r->m;
	DmfRawRatings *raw = &r->raw;
	int64	   *table_ids;
	int32		n_table;
	int64		dup = 0,
				n_dup;
	uint64		need;
	float	   *ones;

	n_table = dmf_distinct_ids(raw->user, raw->n, &table_ids);
	r->users.n = merge_ids(&m->users, table_ids, n_table, &r->users.ids,
						   &r->users.input, &r->users.stored);
	n_table = dmf_distinct_ids(raw->item, raw->n, &table_ids);
	r->items.n = merge_ids(&m->items, table_ids, n_table, &r->items.ids,
						   &r->items.input, &r->items.stored);
	r->users.n_merged = r->users.n;
	r->items.n_merged = r->items.n;

	need = (uint64) raw->n * REFRESH_BYTES_PER_ROW +
		refresh_memory_estimate(m, r->users.n, r->items.n);
	if (!dmf_budget_expect(r->budget, need))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("refreshing the model would need about %s of memory, more than dmf.max_memory (%s)",
						dmf_pretty_bytes(need), dmf_pretty_bytes(dmf_max_memory_bytes())),
				 errdetail("%d users and %d items, factors of %d.", r->users.n, r->items.n, m->dim),
				 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
						 dmf_pretty_bytes_setting(need))));

	r->ru = dmf_budget_alloc(sizeof(int32) * (raw->n + 1), 0);
	r->ri = dmf_budget_alloc(sizeof(int32) * (raw->n + 1), 0);
	for (int64 k = 0; k < raw->n; k++)
	{
		r->ru[k] = dmf_find_id(r->users.ids, r->users.n, raw->user[k]);
		r->ri[k] = dmf_find_id(r->items.ids, r->items.n, raw->item[k]);
		if ((k & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	if (m->flags & DMF_FLAG_IMPLICIT)
	{
		/* interactions: a pair once, whatever its weight, as in training */
		raw->n = dmf_merge_pairs(raw->n, r->users.n, r->items.n, raw->user, raw->item,
								 r->ru, r->ri, raw->rating);
		for (int64 k = 0; k < raw->n; k++)
			raw->rating[k] = 1.0;
	}
	ones = dmf_budget_alloc(sizeof(float) * (raw->n + 1), 0);
	for (int64 k = 0; k < raw->n; k++)
		ones[k] = 1.0f;
	n_dup = dmf_csr_build(&r->pairs, r->users.n, r->items.n, raw->n, r->ru, r->ri, ones, &dup, NULL);
	if (n_dup > 0)
		dmf_report_duplicates(&r->cols, r->rel, n_dup, raw->user[dup], raw->item[dup],
							  "Refresh from a view with one rating per pair.");
	pfree(ones);
}

/* User rows over the training items, item rows over the training users. */
static void
refresh_inputs(Refresh *r)
{
	const DmfModel *m = r->m;
	int64		n = r->raw.n;
	int32	   *rows_u = dmf_budget_alloc(sizeof(int32) * (n + 1), 0);
	int32	   *cols_u = dmf_budget_alloc(sizeof(int32) * (n + 1), 0);
	float	   *vals_u = dmf_budget_alloc(sizeof(float) * (n + 1), 0);
	int32	   *rows_i = dmf_budget_alloc(sizeof(int32) * (n + 1), 0);
	int32	   *cols_i = dmf_budget_alloc(sizeof(int32) * (n + 1), 0);
	float	   *vals_i = dmf_budget_alloc(sizeof(float) * (n + 1), 0);
	int64		nnz_u = 0,
				nnz_i = 0;

	for (int64 k = 0; k < n; k++)
	{
		float		x = (float) dmf_to_working(&m->scale, r->raw.rating[k]);
		int32		u = r->ru[k],
					i = r->ri[k];

		if (r->items.input[i] >= 0)
		{
			rows_u[nnz_u] = u;
			cols_u[nnz_u] = r->items.input[i];
			vals_u[nnz_u++] = x;
		}
		if (r->users.input[u] >= 0)
		{
			rows_i[nnz_i] = i;
			cols_i[nnz_i] = r->users.input[u];
			vals_i[nnz_i++] = x;
		}
	}
	dmf_csr_build(&r->users.x, r->users.n, m->items.n_train, nnz_u, rows_u, cols_u, vals_u, NULL, NULL);
	pfree(rows_u);
	pfree(cols_u);
	pfree(vals_u);
	dmf_csr_build(&r->items.x, r->items.n, m->users.n_train, nnz_i, rows_i, cols_i, vals_i, NULL, NULL);
	pfree(rows_i);
	pfree(cols_i);
	pfree(vals_i);
	/* from here on the rows as read are only counted */
	pfree(r->raw.user);
	pfree(r->raw.item);
	pfree(r->raw.rating);
	r->raw.user = r->raw.item = NULL;
	r->raw.rating = NULL;
	pfree(r->ru);
	pfree(r->ri);
	r->ru = r->ri = NULL;
}

/* A side's factors through its branch, and its anchors from them. */
static void
side_factors(RefreshSide *s, const DmfBranch *b, int32 n_train, int dim)
{
	s->factors = dmf_budget_alloc(sizeof(float) * (size_t) s->n * dim, 0);
	dmf_branch_factors_of_rows(b, &s->x, s->factors);
	/* anchors: the branch factors of the training entities, by position */
	s->anchors = palloc0_anchors(n_train, dim);
	for (int32 k = 0; k < s->n; k++)
		if (s->input[k] >= 0)
			memcpy(s->anchors + (size_t) s->input[k] * dim, s->factors + (size_t) k * dim,
				   sizeof(float) * dim);
}

/* Every factor: a batched forward pass per branch, then fold-in. */
static void
refresh_factors(Refresh *r)
{
	const DmfModel *m = r->m;

	side_factors(&r->users, &m->user_branch, m->users.n_train, m->dim);
	side_factors(&r->items, &m->item_branch, m->items.n_train, m->dim);
	{
		/* a refresh, like a training, uses the machine's cores (two at most) */
		DmfFoldInSide sides[2] = {
			{&r->users.x, r->users.factors, r->items.anchors, r->users.input,
			(m->flags & DMF_FLAG_TRAINED_USERS_UNFOLDED) != 0},
			{&r->items.x, r->items.factors, r->users.anchors, r->items.input,
			(m->flags & DMF_FLAG_TRAINED_ITEMS_UNFOLDED) != 0}
		};

		dmf_fold_in_sides(sides, 2, m->dim, m->fold_in_steps, m->fold_in_rate,
						  0.0, m->scale.working_max, Min(dmf_resolve_threads(0), 2));
	}
	dmf_check_factors_finite(r->users.factors, (size_t) r->users.n * m->dim, "user");
	dmf_check_factors_finite(r->items.factors, (size_t) r->items.n * m->dim, "item");
	keep_stored_factors(&m->users, m->dim, &r->users.x, r->users.input, r->users.stored,
						r->users.n, r->users.factors, r->users.anchors);
	keep_stored_factors(&m->items, m->dim, &r->items.x, r->items.input, r->items.stored,
						r->items.n, r->items.factors, r->items.anchors);
}

/* The refreshed model: the kept entities, who rated what, the metadata. */
static bytea *
refresh_model(Refresh *r, MemoryContext result_cxt)
{
	const DmfModel *m = r->m;
	RefreshSide *us = &r->users,
			   *is = &r->items;
	DmfModel	out;
	int64	   *rated_offsets;
	int32	   *rated_items;
	char	   *meta;

	us->kept = dmf_budget_alloc(sizeof(int32) * ((size_t) us->n + 1), 0);
	is->kept = dmf_budget_alloc(sizeof(int32) * ((size_t) is->n + 1), 0);
	us->n = compact_side(us->ids, us->input, us->factors, us->n, m->dim, &us->added, us->kept);
	is->n = compact_side(is->ids, is->input, is->factors, is->n, m->dim, &is->added, is->kept);
	compact_rated(m, &r->pairs, us->kept, us->stored, is->kept, is->stored, is->n_merged,
				  us->n, &rated_offsets, &rated_items);
	meta = refreshed_meta(m, us->added, is->added, r->raw.n, r->raw.skipped_nulls);

	out = *m;
	dmf_new_model_id(out.model_id);
	out.users.n = us->n;
	out.users.ids = us->ids;
	out.users.input = us->input;
	out.users.factors = us->factors;
	out.users.anchors = us->anchors;
	out.items.n = is->n;
	out.items.ids = is->ids;
	out.items.input = is->input;
	out.items.factors = is->factors;
	out.items.anchors = is->anchors;
	/* the cached model's id indexes do not describe the new ids */
	out.users.index = out.items.index = NULL;
	out.meta = meta;
	out.meta_len = strlen(meta);
	out.rated_offsets = rated_offsets;
	out.rated_items = rated_items;
	return dmf_model_to_bytea(&out, result_cxt);
}

PG_FUNCTION_INFO_V1(dmf_refresh);
Datum
dmf_refresh(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	Refresh		r;
	bytea	   *volatile result = NULL;

	/* rating_column may be NULL for a model of implicit feedback */
	static const char *const args[] = {
		"model", "ratings", "user_column", "item_column", NULL
	};

	dmf_require_args(fcinfo, "dmf_refresh", args, lengthof(args));

	memset(&r, 0, sizeof(r));
	/* the model is the cache's: the budget is the refresh's own work */
	r.m = dmf_model_arg(fcinfo, 0);
	r.budget = dmf_budget_begin("refreshing the model", "dmf refresh");
	/* reading the table may run other dmf calls (a view); keep the model */
	dmf_model_pin(dmf_model_ref(r.m), dmf_budget_context(r.budget));
	r.cols.relid = PG_GETARG_OID(1);
	r.cols.user_column = NameStr(*PG_GETARG_NAME(2));
	r.cols.item_column = NameStr(*PG_GETARG_NAME(3));
	r.cols.rating_column = dmf_rating_column_arg(fcinfo, 4, "dmf_refresh",
												 (r.m->flags & DMF_FLAG_IMPLICIT) != 0);

	/* the row of dmf_progress goes however the refresh ends */
	dmf_progress_begin(DMF_PROGRESS_REFRESH, dmf_relation_name(r.cols.relid));
	PG_TRY();
	{
		refresh_read(&r);
		refresh_merge(&r);
		refresh_inputs(&r);
		dmf_progress_phase(DMF_PHASE_FOLD_IN);
		refresh_factors(&r);
		dmf_progress_phase(DMF_PHASE_ENCODING);
		result = refresh_model(&r, caller);
	}
	PG_FINALLY();
	{
		dmf_progress_end();
	}
	PG_END_TRY();

	dmf_budget_end(r.budget);
	PG_RETURN_BYTEA_P(result);
}
