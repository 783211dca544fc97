/*
 * train_sql.c
 *	  dmf_train: a ratings relation in, a model out.
 *
 * Reads the relation (ratings_reader.c), settles the rating scale and
 * levels, maps ids to dense indices, holds out the validation rows, checks
 * the memory the training will need, runs the core's training (train.c)
 * on the working scale, and encodes the result with its metadata.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/varlena.h"

#include "blas.h"
#include "dmf.h"
#include "encoding.h"
#include "helper_thread.h"
#include "levels.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "prepare.h"
#include "model_format.h"
#include "options.h"
#include "platform.h"
#include "progress.h"
#include "quantizer.h"
#include "ratings_reader.h"
#include "rng.h"
#include "score.h"
#include "train.h"
#include "warm_start.h"

/* ---- dmf_train ---- */

#define TRAIN_RANGE_HINT \
	"Set the options \"rating_min\" and \"rating_max\" to the scale of the ratings, or filter the rows out with a view."

/*
 * The rating levels (levels.h): from the option "levels", else from the
 * data.  Continuous ratings have no levels, which only DMF-D (option
 * "discrete") requires.
 */
static void
resolve_levels(DmfOptions *o, const DmfRawRatings *raw, const char *column,
			   const char *rel)
{
	DmfTrainConfig *c = &o->train;
	double		lo = c->rating_min,
				hi = c->rating_max;
	int64		bad = 0;

	switch (dmf_resolve_levels(raw->rating, raw->n, lo, hi, o->levels, o->n_levels,
							   c->discrete, &c->levels, &c->n_levels, &bad))
	{
		case DMF_LEVELS_OK:
			break;
		case DMF_LEVELS_OUTSIDE_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"levels\" must lie within the rating range [%g, %g]", lo, hi),
					 errhint("Set \"rating_min\" and \"rating_max\" to include the levels.")));
			break;
		case DMF_LEVELS_NONE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ratings in column \"%s\" of %s are not on equally spaced levels", column, rel),
					 errhint("Name the levels with the option \"levels\", e.g. [1, 2, 3, 4, 5].")));
			break;
		case DMF_LEVELS_RATING_OFF:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rating column \"%s\" of %s holds %g, which is not one of the levels",
							column, rel, raw->rating[bad]),
					 errdetail("The levels go from %g to %g by %g.",
							   c->levels[0], c->levels[c->n_levels - 1],
							   c->levels[1] - c->levels[0]),
					 errhint("Round the ratings to the levels in a view, or set the option \"levels\".")));
			break;
	}
}

/* Everything dmf_train learns about its data before training. */
typedef struct TrainInput
{
	DmfRawRatings raw;
	DmfRatingScale scale;		/* how ratings enter the core (encoding.h) */
	int64	   *user_ids;
	int64	   *item_ids;
	int32		n_users;
	int32		n_items;
	DmfTrainSet set;
	DmfCsr		rated;			/* users x items of every row, for the model */
	int64		validation_unknown;	/* validation rows with unknown ids */
	int64		merged_rows;	/* implicit: rows merged into an earlier pair */
	DmfMemoryBudget *budget;	/* dmf.max_memory */
	double		load_seconds;
} TrainInput;

/* The training rows and the held-out ones (prepare.h). */
static void
split_triples(TrainInput *in, const DmfOptions *o, int32 *u, int32 *i,
			  const int64 *rank)
{
	DmfTrainSet *set = &in->set;
	/* a validation relation replaces the held-out rows */
	double		fraction = o->validation == NULL ? o->validation_fraction : 0.0;

	dmf_split_holdout(in->raw.n, in->raw.user, in->raw.item, u, i, in->raw.rating, &in->scale,
					  rank, o->train.seed, fraction, &set->train, &set->extra_input);
	if (o->validation == NULL)
		set->validation = set->extra_input;
}

/* The relation the option "validation" names, read-locked. */
static Oid
validation_relid(const DmfOptions *o)
{
	List	   *names = stringToQualifiedNameList(o->validation);
	Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList(names),
										 AccessShareLock, false);

	/*
	 * An unqualified name finds pg_temp first, where another role can put a
	 * view that calls its own functions: in a SECURITY DEFINER function the
	 * option would then run that role's code as the definer.  A temporary
	 * relation must be named as one.
	 */
	if (list_length(names) == 1 && isAnyTempNamespace(get_rel_namespace(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"validation\" names \"%s\", which is found as a temporary relation",
						o->validation),
				 errdetail("An unqualified name is looked up in the session's temporary schema first."),
				 errhint("Qualify the name with its schema, e.g. \"public.%s\", or \"pg_temp.%s\" for the temporary relation.",
						 o->validation, o->validation)));
	return relid;
}

#define RAW_ROW_BYTES DMF_RAW_ROW_BYTES

static uint64 training_need(const DmfOptions *o, int64 rows, int64 train_rows,
							int64 users, int64 items);
static void check_memory(DmfOptions *o, const TrainInput *in, DmfMemoryBudget *budget);

/* What a refusal while reading names: the training of what the read would hold. */
typedef struct ReadNeed
{
	const DmfOptions *options;
	const DmfRatingColumns *cols;
	int64		rows_held;		/* training rows already read */
	int32		users;			/* with rows_held: their users and items */
	int32		items;
} ReadNeed;

static uint64
read_need(void *arg, int64 rows, int64 users, int64 items)
{
	const ReadNeed *r = (const ReadNeed *) arg;
	int64		validation_rows = 0;

	if (r->rows_held > 0)		/* the validation relation: known ids only */
		return training_need(r->options, r->rows_held + rows, r->rows_held, r->users, r->items);
	if (r->options->validation)
	{
		/* the validation relation will be read too */
		DmfRatingColumns vcols = *r->cols;
		int64		vusers,
					vitems;

		vcols.relid = validation_relid(r->options);
		dmf_count_ratings(&vcols, &validation_rows, &vusers, &vitems);
	}
	return training_need(r->options, rows + validation_rows, rows, users, items);
}

static void
read_validation_table(TrainInput *in, const DmfOptions *o,
					  const DmfRatingColumns *cols)
{
	Oid			relid = validation_relid(o);
	DmfRatingColumns vcols = *cols;
	DmfRawRatings v;
	int32	   *u,
			   *i;
	DmfTriples *t = &in->set.validation;
	ReadNeed	need = {o, cols, in->raw.n, in->n_users, in->n_items};
	DmfReadBudget read_budget = {read_need, &need, "training"};

	vcols.relid = relid;
	dmf_read_ratings(&vcols, &v, &read_budget);
	if (o->train.feedback == DMF_FEEDBACK_IMPLICIT)
	{
		if (cols->rating_column)
			dmf_check_weights(&v, cols, dmf_relation_name(relid));
	}
	else
		dmf_check_rating_range(&v, cols, dmf_relation_name(relid), o->train.rating_min,
							   o->train.rating_max, "", TRAIN_RANGE_HINT);
	u = dmf_budget_alloc(sizeof(int32) * (v.n + 1), 0);
	i = dmf_budget_alloc(sizeof(int32) * (v.n + 1), 0);
	dmf_map_ids(v.user, v.n, in->user_ids, in->n_users, u);
	dmf_map_ids(v.item, v.n, in->item_ids, in->n_items, i);
	t->user = u;
	t->item = i;
	t->rating = dmf_budget_alloc(sizeof(float) * (v.n + 1), 0);
	t->n = 0;
	for (int64 k = 0; k < v.n; k++)
	{
		/* a validation rating can only be predicted for known ids */
		if (u[k] < 0 || i[k] < 0)
		{
			in->validation_unknown++;
			continue;
		}
		t->user[t->n] = u[k];
		t->item[t->n] = i[k];
		t->rating[t->n] = (float) dmf_to_working(&in->scale, v.rating[k]);
		t->n++;
	}
	if (t->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("validation relation %s has no rating of a known user and item",
						dmf_relation_name(relid)),
				 errhint("Validation rows must be ratings of users and items that also appear in the training relation.")));
	pfree(v.user);
	pfree(v.item);
	pfree(v.rating);
}

/*
 * Implicit feedback: repeated interactions are one pair of the summed
 * weight, and the weights are scaled to mean 1 (in double: the core holds
 * them as floats).
 */
static void
merge_interactions(TrainInput *in, int32 *u, int32 *i, const char *rel)
{
	DmfRawRatings *raw = &in->raw;
	int64		n_rows = raw->n;
	double		mean = 0.0;

	raw->n = dmf_merge_pairs(n_rows, in->n_users, in->n_items, raw->user, raw->item,
							 u, i, raw->rating);
	in->merged_rows = n_rows - raw->n;
	for (int64 k = 0; k < raw->n; k++)
		if (!isfinite(raw->rating[k]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the weights of user " INT64_FORMAT " and item " INT64_FORMAT " in %s add up to more than a double holds",
							raw->user[k], raw->item[k], rel),
					 errhint("Scale the weights down in a view.")));
	for (int64 k = 0; k < raw->n; k++)
		mean += (raw->rating[k] - mean) / (double) (k + 1);
	for (int64 k = 0; k < raw->n; k++)
		raw->rating[k] /= mean;
}

static void
load_training_input(TrainInput *in, DmfOptions *o, const DmfRatingColumns *cols,
					DmfMemoryBudget *budget)
{
	double		t0 = dmf_now_seconds();
	char	   *rel = dmf_relation_name(cols->relid);
	DmfRawRatings *raw = &in->raw;
	int32	   *u,
			   *i;
	int64	   *rank;			/* each row's place in (user, item) order */

	ReadNeed	need = {o, cols, 0, 0, 0};
	DmfReadBudget read_budget = {read_need, &need, "training"};

	memset(in, 0, sizeof(*in));
	dmf_read_ratings(cols, raw, &read_budget);
	dmf_report_skipped_nulls(raw->skipped_nulls, rel);
	if (raw->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation %s has no ratings to train on", rel),
				 raw->skipped_nulls > 0 ?
				 errdetail("All " INT64_FORMAT " rows have a NULL user, item or rating.",
						   raw->skipped_nulls) : 0));

	if (o->train.feedback == DMF_FEEDBACK_IMPLICIT)
	{
		/* weights, not ratings; scores on [0, 1] */
		if (cols->rating_column)
			dmf_check_weights(raw, cols, rel);
		if (!dmf_rating_scale_init(&in->scale, 0.0, 1.0))
			elog(ERROR, "the scale [0, 1] cannot be represented");
	}
	else
	{
		/* the rating scale: from the options, else from the data */
		double		lo = raw->rating[0],
					hi = raw->rating[0];

		for (int64 k = 1; k < raw->n; k++)
		{
			if (raw->rating[k] < lo)
				lo = raw->rating[k];
			if (raw->rating[k] > hi)
				hi = raw->rating[k];
		}
		if (!o->rating_min_set)
			o->train.rating_min = lo;
		if (!o->rating_max_set)
			o->train.rating_max = hi;
		if (!(o->train.rating_min < o->train.rating_max))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("all ratings in column \"%s\" of %s are %g",
							cols->rating_column, rel, lo),
					 errhint("Set the options \"rating_min\" and \"rating_max\" to the rating scale.")));
		if (!dmf_rating_scale_init(&in->scale, o->train.rating_min, o->train.rating_max))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the rating range [%g, %g] of column \"%s\" of %s cannot be represented",
							o->train.rating_min, o->train.rating_max, cols->rating_column, rel),
					 isfinite(o->train.rating_max - o->train.rating_min) ?
					 errdetail("Its width, %g, is below the smallest normal double, %g.",
							   o->train.rating_max - o->train.rating_min, DBL_MIN) :
					 errdetail("Its width is beyond the largest double."),
					 errhint("Rescale the ratings in a view, e.g. to [1, 5].")));
		dmf_check_rating_range(raw, cols, rel, o->train.rating_min, o->train.rating_max,
							   "", TRAIN_RANGE_HINT);
		resolve_levels(o, raw, cols->rating_column, rel);
	}

	in->n_users = dmf_distinct_ids(raw->user, raw->n, &in->user_ids);
	in->n_items = dmf_distinct_ids(raw->item, raw->n, &in->item_ids);
	if (in->n_users < 2 || in->n_items < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation %s has %d distinct users and %d distinct items",
						rel, in->n_users, in->n_items),
				 errdetail("Matrix factorization needs at least two users and two items.")));
	/* the shapes are known: refuse now, not after the arrays below */
	check_memory(o, in, budget);

	u = dmf_budget_alloc(sizeof(int32) * raw->n, 0);
	i = dmf_budget_alloc(sizeof(int32) * raw->n, 0);
	dmf_map_ids(raw->user, raw->n, in->user_ids, in->n_users, u);
	dmf_map_ids(raw->item, raw->n, in->item_ids, in->n_items, i);
	if (o->train.feedback == DMF_FEEDBACK_IMPLICIT)
		merge_interactions(in, u, i, rel);

	/* one rating per (user, item): anything else has no single target */
	{
		DmfTriples	all = {raw->n, u, i, NULL};
		const DmfTriples *parts[1] = {&all};
		DmfCsr		b;
		int64		dup = 0;
		int64		n_dup;

		all.rating = dmf_budget_alloc(sizeof(float) * raw->n, 0);
		for (int64 k = 0; k < raw->n; k++)
			all.rating[k] = (float) dmf_to_working(&in->scale, raw->rating[k]);
		rank = dmf_budget_alloc(sizeof(int64) * (raw->n + 1), 0);
		n_dup = dmf_build_inputs(parts, 1, in->n_users, in->n_items, 0,
								 0.0, in->scale.working_max,
								 &in->rated, &b, &dup, rank, NULL);
		if (n_dup > 0)
			dmf_report_duplicates(cols, rel, n_dup, raw->user[dup], raw->item[dup],
								  "Train on a view with one rating per pair, e.g. SELECT DISTINCT ON (user, item) ... ORDER BY user, item, time DESC.");
		/* the user rows are what the model keeps of who rated what */
		dmf_csr_free(&b);
		pfree(all.rating);
	}

	in->set.n_users = in->n_users;
	in->set.n_items = in->n_items;
	split_triples(in, o, u, i, rank);
	pfree(rank);
	pfree(u);
	pfree(i);
	/* the rows as read are in the triples now: only their count is kept */
	pfree(raw->user);
	pfree(raw->item);
	pfree(raw->rating);
	raw->user = raw->item = NULL;
	raw->rating = NULL;
	if (o->validation)
		read_validation_table(in, o, cols);
	if (in->set.train.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("no training rows are left after holding out the validation rows"),
				 errhint("Lower \"validation_fraction\" or name a \"validation\" relation.")));
	in->load_seconds = dmf_now_seconds() - t0;
}

/* Weights of a branch: input -> hidden... -> dim, each layer W and b. */
static uint64
branch_params(int input, const int *hidden, int n_hidden, int dim)
{
	uint64		n = 0;
	uint64		from = (uint64) input;

	for (int l = 0; l <= n_hidden; l++)
	{
		uint64		to = (uint64) (l < n_hidden ? hidden[l] : dim);

		n += from * to + to;
		from = to;
	}
	return n;
}

/*
 * The size of the model dmf_train would return, from the shapes alone: a
 * model that cannot be a bytea is refused before hours of training, not
 * after.  Metadata (options, per-epoch history) is bounded by 1 MB here.
 */
static uint64
model_bytes_estimate(const DmfOptions *o, int64 users, int64 items, int64 rows, bool bfloat16)
{
	uint64		dim = (uint64) o->train.dim;
	uint64		fb = bfloat16 ? 2 : 4;
	/* as model_encode.c stores who rated what */
	uint64		rated_width = bfloat16 && items <= 65536 ? 2 : 4;

	return fb * branch_params(items, o->train.user_hidden, o->train.n_user_hidden, o->train.dim)
		+ fb * branch_params(users, o->train.item_hidden, o->train.n_item_hidden, o->train.dim)
		+ ((uint64) users + items) * (8 + 4 + 2 * fb * dim)	/* ids, inputs, factors, anchors */
		+ 8 * ((uint64) users + 1) + rated_width * (uint64) rows	/* who rated what */
		+ 1024 * 1024;
}

/*
 * The most a training holds at once, for rows ratings (train_rows of them
 * trained on) of users and items: the most of its three phases.
 *   loading: per rating, the row as read (24 bytes), its dense ids (8), its
 *     value (4), its place in (user, item) order (8), both orientations
 *     (16) and the places of one while it is sorted (8); ids of each
 *     entity twice (16)
 *   training: the core's (dmf_train_memory_estimate), with who rated what
 *     (8 per rating) and the ids (8 per entity) kept for the model, the
 *     triples the core is given (12 per rating) and the places of the
 *     entries while its inputs are sorted (24 per rating): the core's
 *     estimate counts its own arrays only
 * Measured peaks stay within it (test/t/032_memory_cap.sh prints both).
 *   encoding: the weights and factors trained, who rated what, and the
 *     model twice (encoded, and the bytea returned), with for bfloat16 its
 *     weights widened to float by the check that decodes it
 */
static uint64
training_need(const DmfOptions *o, int64 rows, int64 train_rows, int64 users, int64 items)
{
	DmfTrainConfig c = o->train;
	bool		bfloat16 = o->storage == DMF_STORAGE_BFLOAT16;
	uint64		entities = (uint64) users + items;
	uint64		kept = (uint64) rows * sizeof(int32) + entities * sizeof(int64) +
		((uint64) users + 1) * sizeof(int64);
	uint64		float32_model = model_bytes_estimate(o, users, items, rows, false);
	uint64		loading,
				training,
				encoding;

	dmf_resolve_batch_size(&c, train_rows);
	if (o->storage == DMF_STORAGE_AUTO && float32_model > MaxAllocSize - VARHDRSZ)
		bfloat16 = true;
	loading = (uint64) rows * 68 + entities * 16;
	training = dmf_train_memory_estimate(&c, (int32) Min(users, PG_INT32_MAX),
										 (int32) Min(items, PG_INT32_MAX), train_rows, rows)
		+ kept + (uint64) rows * (sizeof(int32) + 12 + 24);
	encoding = kept + float32_model +
		2 * model_bytes_estimate(o, users, items, rows, bfloat16) +
		(bfloat16 ? float32_model : 0);
	return Max(loading, Max(training, encoding)) + 1024 * 1024;
}

/*
 * Refuses a training that would not fit dmf.max_memory or whose model
 * would not fit a bytea, before it starts; resolves "storage": "auto".
 */
static void
check_memory(DmfOptions *o, const TrainInput *in, DmfMemoryBudget *budget)
{
	/* before the split (no training rows yet), every row counts as trained on */
	int64		train_rows = in->set.train.n > 0 ? in->set.train.n : in->raw.n;
	int64		validation_read = o->validation ? in->set.validation.n : 0;
	uint64		need = training_need(o, in->raw.n + validation_read, train_rows,
									 in->n_users, in->n_items);
	uint64		float32_size = model_bytes_estimate(o, in->n_users, in->n_items, in->raw.n, false);
	uint64		size;

	if (!dmf_budget_expect(budget, need))
	{
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training would need about %s of memory, more than dmf.max_memory (%s)",
						dmf_pretty_bytes(need), dmf_pretty_bytes(dmf_max_memory_bytes())),
				 errdetail("%d users, %d items, first layers of %d and %d units.",
						   in->n_users, in->n_items,
						   o->train.n_user_hidden > 0 ? o->train.user_hidden[0] : o->train.dim,
						   o->train.n_item_hidden > 0 ? o->train.item_hidden[0] : o->train.dim),
				 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s'), or use narrower \"layers\".",
						 dmf_pretty_bytes_setting(need))));
	}
	if (o->storage == DMF_STORAGE_AUTO)
	{
		o->storage = float32_size <= MaxAllocSize - VARHDRSZ ? DMF_STORAGE_FLOAT32
			: DMF_STORAGE_BFLOAT16;
		if (o->storage == DMF_STORAGE_BFLOAT16)
			ereport(NOTICE,
					(errmsg("the model will store its weights and factors as bfloat16"),
					 errdetail("In float32 it would be about %s, more than the 1 GB a bytea can hold.",
							   dmf_pretty_bytes(float32_size))));
	}
	size = o->storage == DMF_STORAGE_BFLOAT16 ?
		model_bytes_estimate(o, in->n_users, in->n_items, in->raw.n, true) : float32_size;
	if (size > MaxAllocSize - VARHDRSZ)
	{
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the model would be about %s, more than the 1 GB a bytea can hold",
						dmf_pretty_bytes(size)),
				 errdetail("%d users, %d items, first layers of %d and %d units, factors of %d, %s storage.",
						   in->n_users, in->n_items,
						   o->train.n_user_hidden > 0 ? o->train.user_hidden[0] : o->train.dim,
						   o->train.n_item_hidden > 0 ? o->train.item_hidden[0] : o->train.dim,
						   o->train.dim,
						   o->storage == DMF_STORAGE_BFLOAT16 ? "bfloat16" : "float32"),
				 errhint(o->storage == DMF_STORAGE_BFLOAT16 ?
						 "Use narrower \"layers\": the first layers hold (users + items) x width weights." :
						 "Use \"storage\": \"bfloat16\" (half the size), or narrower \"layers\".")));
	}
}

/* DmfStopReason, as dmf_info reports it */
static const char *const stop_reason_names[] = {"early_stopping", "epochs", "time_limit"};

static void
append_meta(StringInfo meta, const DmfOptions *o, const TrainInput *in,
			const DmfTrainResult *res, int threads)
{
	double		epoch_seconds = 0.0;

	for (int e = 0; e < res->epochs_run; e++)
		epoch_seconds += res->history[e].seconds;

	appendStringInfoString(meta, "{\"options\": ");
	dmf_options_to_json(o, meta);
	appendStringInfo(meta, ", \"threads_used\": %d", threads);
	appendStringInfo(meta, ", \"rows\": " INT64_FORMAT, in->raw.n);
	if (o->train.feedback == DMF_FEEDBACK_IMPLICIT)
		appendStringInfo(meta, ", \"merged_rows\": " INT64_FORMAT, in->merged_rows);
	appendStringInfo(meta, ", \"skipped_null_rows\": " INT64_FORMAT, in->raw.skipped_nulls);
	appendStringInfo(meta, ", \"train_rows\": " INT64_FORMAT, in->set.train.n);
	appendStringInfo(meta, ", \"validation_rows\": " INT64_FORMAT, in->set.validation.n);
	appendStringInfo(meta, ", \"epochs_run\": %d", res->epochs_run);
	appendStringInfo(meta, ", \"best_epoch\": %d", res->best_epoch);
	appendStringInfo(meta, ", \"stop_reason\": \"%s\"", stop_reason_names[res->stop_reason]);
	appendStringInfoString(meta, ", \"mean_validation_rmse\": ");
	dmf_append_json_number(meta, res->mean_validation_rmse);
	appendStringInfoString(meta, ", \"best_validation_rmse\": ");
	dmf_append_json_number(meta, res->best_validation_rmse);
	appendStringInfoString(meta, ", \"train_rmse\": ");
	dmf_append_json_number(meta, res->final_train_rmse);
	/* validation RMSE (factors of the training inputs) by which training entities get fold-in */
	{
		static const char *const names[4] = {"none", "users", "items", "both"};

		appendStringInfoString(meta, ", \"fold_in_validation_rmse\": {");
		for (int c = 0; c < 4; c++)
		{
			appendStringInfo(meta, "%s\"%s\": ", c > 0 ? ", " : "", names[c]);
			dmf_append_json_number(meta, res->fold_choice.validation_rmse[c]);
		}
		appendStringInfoChar(meta, '}');
	}
	appendStringInfoString(meta, ", \"load_seconds\": ");
	dmf_append_json_number(meta, in->load_seconds);
	appendStringInfoString(meta, ", \"training_seconds\": ");
	dmf_append_json_number(meta, res->seconds);
	appendStringInfoString(meta, ", \"finish_seconds\": ");
	dmf_append_json_number(meta, res->finish_seconds);
	appendStringInfoString(meta, ", \"seconds_per_epoch\": ");
	dmf_append_json_number(meta, res->epochs_run > 0 ? epoch_seconds / res->epochs_run : NAN);
	appendStringInfoString(meta, ", \"history\": [");
	for (int e = 0; e < res->epochs_run; e++)
	{
		const DmfEpochStats *s = &res->history[e];

		appendStringInfo(meta, "%s{\"epoch\": %d, \"train_rmse\": ", e > 0 ? ", " : "", s->epoch);
		dmf_append_json_number(meta, s->train_rmse);
		appendStringInfoString(meta, ", \"validation_rmse\": ");
		dmf_append_json_number(meta, s->validation_rmse);
		appendStringInfoString(meta, ", \"seconds\": ");
		dmf_append_json_number(meta, s->seconds);
		appendStringInfoString(meta, ", \"learning_rate\": ");
		dmf_append_json_number(meta, s->learning_rate);
		appendStringInfoChar(meta, '}');
	}
	appendStringInfoString(meta, "], \"created_at\": ");
	dmf_append_utc_now(meta);
	appendStringInfo(meta, ", \"refreshes\": 0, \"users_added\": 0, \"items_added\": 0, \"dmf_version\": \"%s\"}",
					 DMF_VERSION);
}

static bytea *
encode_trained_model(const DmfOptions *o, const TrainInput *in,
					 const DmfTrainResult *res, int threads,
					 MemoryContext result_cxt)
{
	DmfModel	m;
	StringInfoData meta;
	int32	   *user_input = palloc(sizeof(int32) * in->n_users);
	int32	   *item_input = palloc(sizeof(int32) * in->n_items);

	for (int32 k = 0; k < in->n_users; k++)
		user_input[k] = k;
	for (int32 k = 0; k < in->n_items; k++)
		item_input[k] = k;

	initStringInfo(&meta);
	append_meta(&meta, o, in, res, threads);

	memset(&m, 0, sizeof(m));
	dmf_new_model_id(m.model_id);
	m.dim = o->train.dim;
	m.rating_min = o->train.rating_min;
	m.rating_max = o->train.rating_max;
	m.users.n = m.users.n_train = in->n_users;
	m.users.ids = in->user_ids;
	m.users.input = user_input;
	m.users.factors = res->user_factors;
	m.users.anchors = res->user_anchors;
	m.items.n = m.items.n_train = in->n_items;
	m.items.ids = in->item_ids;
	m.items.input = item_input;
	m.items.factors = res->item_factors;
	m.items.anchors = res->item_anchors;
	m.fold_in_steps = o->train.fold_in_steps;
	m.fold_in_rate = o->train.fold_in_rate;
	m.user_branch = res->user_branch;
	m.item_branch = res->item_branch;
	m.meta = meta.data;
	m.meta_len = meta.len;
	m.rated_offsets = in->rated.rowptr;
	m.rated_items = in->rated.col;
	if (o->train.n_levels >= 2)
	{
		double	   *uniform = palloc(sizeof(double) * (o->train.n_levels + 1));

		dmf_uniform_boundaries(o->train.levels, o->train.n_levels, uniform);
		m.n_levels = o->train.n_levels;
		m.levels = o->train.levels;
		/* a plain model rounds: the uniform quantizer */
		m.boundaries = o->train.discrete ? res->boundaries : uniform;
		m.lambda = o->train.discrete ? res->lambda : 0.0;
	}
	if (o->train.discrete)
		m.flags |= DMF_FLAG_DISCRETE;
	if (!res->fold_choice.users)
		m.flags |= DMF_FLAG_TRAINED_USERS_UNFOLDED;
	if (!res->fold_choice.items)
		m.flags |= DMF_FLAG_TRAINED_ITEMS_UNFOLDED;
	if (o->train.input_encoding == DMF_INPUT_CENTERED)
		m.flags |= DMF_FLAG_CENTERED_INPUT;
	if (o->train.row_scale == DMF_ROW_SCALE_NONE)
		m.flags |= DMF_FLAG_ROW_SCALE_ONE;
	else if (o->train.row_scale == DMF_ROW_SCALE_MEAN)
		m.flags |= DMF_FLAG_ROW_SCALE_MEAN;
	if (o->storage == DMF_STORAGE_BFLOAT16)
		m.flags |= DMF_FLAG_BFLOAT16;
	if (o->train.feedback == DMF_FEEDBACK_IMPLICIT)
		m.flags |= DMF_FLAG_IMPLICIT;

	return dmf_model_to_bytea(&m, result_cxt);
}

/* The training configuration for the core: ratings on the working scale. */
static DmfTrainConfig
working_config(const DmfTrainConfig *c, const DmfRatingScale *scale)
{
	DmfTrainConfig w = *c;

	w.rating_min = 0.0;
	w.rating_max = scale->working_max;
	if (c->n_levels > 0)
	{
		double	   *levels = palloc(sizeof(double) * c->n_levels);

		for (int k = 0; k < c->n_levels; k++)
			levels[k] = dmf_to_working(scale, c->levels[k]);
		w.levels = levels;
	}
	return w;
}

/* The result's errors and quantizer back on the rating scale. */
static void
result_to_rating_scale(DmfTrainResult *res, const DmfTrainConfig *core,
					   const DmfRatingScale *scale)
{
	res->mean_validation_rmse /= scale->factor;
	res->best_validation_rmse /= scale->factor;
	res->final_train_rmse /= scale->factor;
	for (int c = 0; c < 4; c++)
		res->fold_choice.validation_rmse[c] /= scale->factor;
	for (int e = 0; e < res->epochs_run; e++)
	{
		res->history[e].train_rmse /= scale->factor;
		res->history[e].validation_rmse /= scale->factor;
		res->history[e].lambda *= scale->factor;
	}
	if (res->boundaries)
		for (int k = 0; k <= core->n_levels; k++)
			res->boundaries[k] = dmf_from_working(scale, res->boundaries[k]);
	res->lambda *= scale->factor;
}

/* A training whose numbers overflowed is an ERROR, never a stored model. */
static void
check_result_finite(const DmfTrainResult *res, const DmfTrainConfig *core,
					int32 n_users, int32 n_items)
{
	size_t		dim = core->dim;

	if (isfinite(res->final_train_rmse) &&
		dmf_all_finite(res->user_branch.params, res->user_branch.n_params) &&
		dmf_all_finite(res->item_branch.params, res->item_branch.n_params) &&
		dmf_all_finite(res->user_factors, (size_t) n_users * dim) &&
		dmf_all_finite(res->item_factors, (size_t) n_items * dim) &&
		dmf_all_finite(res->user_anchors, (size_t) n_users * dim) &&
		dmf_all_finite(res->item_anchors, (size_t) n_items * dim))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("training diverged: its weights are no longer finite numbers"),
			 errdetail("The training RMSE after %d epochs is %g.",
					   res->epochs_run, res->final_train_rmse),
			 errhint("Lower \"learning_rate\", or check the ratings for extreme values.")));
}

/*
 * The training of dmf_train once its arguments are checked: the rows read,
 * the network trained, the model encoded in the caller's context.
 */
static bytea *
train_relation(const DmfRatingColumns *cols, DmfOptions *opts, const DmfModel *init,
			   double called_at, MemoryContext caller)
{
	DmfMemoryBudget *budget;
	TrainInput	in;
	DmfTrainConfig core;		/* opts->train on the working scale */
	DmfEpochReport report = {0};
	DmfTrainResult res;
	bytea	   *model;
	int			threads;

	/* before the memory estimates: each thread has buffers of its own */
	threads = dmf_resolve_threads(opts->threads);
	opts->train.threads = threads;

	/* everything the training allocates dies with this context */
	budget = dmf_budget_begin("training", "dmf training");
	if (init)
	{
		dmf_warm_start_check(init, opts);
		/* reading the table may run other dmf calls (a view); keep the model */
		dmf_model_pin(dmf_model_ref(init), dmf_budget_context(budget));
	}

	load_training_input(&in, opts, cols, budget);
	dmf_resolve_batch_size(&opts->train, in.set.train.n);
	check_memory(opts, &in, budget);

	core = working_config(&opts->train, &in.scale);
	if (init)
		core.init = dmf_warm_start_map(init, &opts->train, &in.scale, in.user_ids, in.n_users,
									   in.item_ids, in.n_items);
	/* the budget counts from the call: reading the rows spends it too */
	core.deadline = opts->time_limit > 0.0 ? called_at + opts->time_limit : 0.0;
	report.verbose = opts->verbose;
	report.epochs = opts->train.epochs;
	report.discrete = opts->train.discrete;
	report.rating_factor = in.scale.factor;
	core.on_epoch = dmf_report_epoch;
	core.on_finish = dmf_report_finish;
	core.on_epoch_arg = &report;

	/* loads OpenBLAS before the training starts its threads */
	dmf_blas_set_threads(threads);
	dmf_progress_phase(DMF_PHASE_TRAINING);
	PG_TRY();
	{
		dmf_train_model(&core, &in.set, &res);
	}
	PG_FINALLY();
	{
		/* an ERROR must not leave a helper thread on freed memory */
		dmf_helpers_stop_all();
		/* outside training, one BLAS thread: never compete with other backends */
		dmf_blas_release_threads();
	}
	PG_END_TRY();

	dmf_progress_phase(DMF_PHASE_ENCODING);
	check_result_finite(&res, &core, in.n_users, in.n_items);
	result_to_rating_scale(&res, &core, &in.scale);
	model = encode_trained_model(opts, &in, &res, threads, caller);
	dmf_budget_end(budget);
	return model;
}

PG_FUNCTION_INFO_V1(dmf_train);
Datum
dmf_train(PG_FUNCTION_ARGS)
{
	double		called_at = dmf_now_seconds();
	MemoryContext caller = CurrentMemoryContext;
	DmfRatingColumns cols;
	DmfOptions	opts;
	bytea	   *volatile model = NULL;
	const DmfModel *init = NULL;

	/* rating_column may be NULL: implicit feedback; init (since 0.7.0) too */
	static const char *const args[] = {
		"ratings", "user_column", "item_column", NULL, "options", NULL
	};

	dmf_require_args(fcinfo, "dmf_train", args, Min(PG_NARGS(), lengthof(args)));
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
		init = dmf_model_arg(fcinfo, 5);
	cols.relid = PG_GETARG_OID(0);
	cols.user_column = NameStr(*PG_GETARG_NAME(1));
	cols.item_column = NameStr(*PG_GETARG_NAME(2));
	dmf_parse_options(PG_GETARG_JSONB_P(4), init != NULL, &opts);
	cols.rating_column = dmf_rating_column_arg(fcinfo, 3, "dmf_train",
											   opts.train.feedback == DMF_FEEDBACK_IMPLICIT);

	/* the row of dmf_progress goes however the training ends */
	dmf_progress_begin(DMF_PROGRESS_TRAIN, dmf_relation_name(cols.relid));
	PG_TRY();
	{
		model = train_relation(&cols, &opts, init, called_at, caller);
	}
	PG_FINALLY();
	{
		dmf_progress_end();
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(model);
}
