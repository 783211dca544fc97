/*
 * extend.c
 *	  Users and items that arrive after training (the paper's areas II, III
 *	  and IV): their factors come from their rating rows and columns through
 *	  the trained branches, without retraining.
 *
 *	  dmf_refresh           recomputes every factor from a ratings relation
 *	  dmf_user_factor(...)  aggregates: a factor from ratings in a query
 *	  dmf_item_factor(...)
 *	  dmf_user_factor(m,id) stored factors
 *	  dmf_score             a prediction from two factors
 *
 * A user's input is its ratings of the model's training items (the input
 * size of the user branch is fixed by training); ratings of items that
 * arrived later do not enter it.  Likewise an item's input is the ratings
 * of the training users.  A user with no rating of a training item has no
 * factor: NULL, never a made-up number.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "nodes/nodeFuncs.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "dmf.h"
#include "encoding.h"
#include "fold_in.h"
#include "model_cache.h"
#include "model_format.h"
#include "options.h"
#include "platform.h"
#include "ratings_reader.h"
#include "sparse.h"

#define FACTOR_CHUNK 1024

/* ---- shared helpers ---- */

/* A zero factor stands for "no factor" (an entity without ratings). */
bool
dmf_factor_is_zero(const float *f, int dim)
{
	for (int j = 0; j < dim; j++)
		if (f[j] != 0.0f)
			return false;
	return true;
}

static ArrayType *
factor_array(const float *f, int dim)
{
	Datum	   *elems = palloc(sizeof(Datum) * dim);

	for (int j = 0; j < dim; j++)
		elems[j] = Float4GetDatum(f[j]);
	return construct_array(elems, dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

/* The factors of a model side: its own branch maps rows over the other side. */
static const DmfBranch *
branch_of(const DmfModel *m, bool user_side)
{
	return user_side ? &m->user_branch : &m->item_branch;
}

static const DmfSide *
side_of(const DmfModel *m, bool user_side)
{
	return user_side ? &m->users : &m->items;
}

/* ---- stored factors and scores ---- */

static Datum
stored_factor(FunctionCallInfo fcinfo, bool user_side)
{
	const DmfModel *m = dmf_model_arg(fcinfo, 0);
	const DmfSide *s = side_of(m, user_side);
	int32		k = dmf_side_find(s, PG_GETARG_INT64(1));
	const float *f;

	if (k < 0)
		PG_RETURN_NULL();
	f = s->factors + (size_t) k * m->dim;
	if (dmf_factor_is_zero(f, m->dim))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(factor_array(f, m->dim));
}

PG_FUNCTION_INFO_V1(dmf_user_factor_stored);
Datum
dmf_user_factor_stored(PG_FUNCTION_ARGS)
{
	return stored_factor(fcinfo, true);
}

PG_FUNCTION_INFO_V1(dmf_item_factor_stored);
Datum
dmf_item_factor_stored(PG_FUNCTION_ARGS)
{
	return stored_factor(fcinfo, false);
}

/* Reads a real[] factor; ERROR unless it is 1-D, NULL-free and of size dim. */
const float *
dmf_factor_arg(ArrayType *a, const char *which, int other_len, int dim)
{
	int			n;

	if (ARR_NDIM(a) > 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s factor must be a one-dimensional real[] without NULLs", which)));
	n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if (n != dim)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s factor has %d elements but the model's factors have %d",
						which, n, dim),
				 errdetail("The user factor has %d elements and the item factor %d.",
						   strcmp(which, "user") == 0 ? n : other_len,
						   strcmp(which, "user") == 0 ? other_len : n),
				 errhint("Use factors of this model, from dmf_user_factor and dmf_item_factor.")));
	return (const float *) ARR_DATA_PTR(a);
}

/*
 * The three sums of a cosine, in double.  Eight lanes of partial sums make
 * the order of the additions explicit, so the loop runs as vector
 * instructions without reassociating anything (one chain of dependent
 * double adds is what made a prediction slow), and every instruction set
 * adds in the same order.
 */
typedef float DmfFloat8 __attribute__((vector_size(32)));
typedef double DmfDouble8 __attribute__((vector_size(64)));

DMF_INLINE void
cosine_sums_impl(const float *u, const float *v, int dim, double *sums)
{
	DmfDouble8	uu = {0},
				vv = {0},
				uv = {0};
	double		tail_uu = 0.0,
				tail_vv = 0.0,
				tail_uv = 0.0;
	int			j = 0;

	for (; j + 8 <= dim; j += 8)
	{
		DmfFloat8	uf,
					vf;
		DmfDouble8	a,
					b;

		memcpy(&uf, u + j, sizeof(uf));
		memcpy(&vf, v + j, sizeof(vf));
		a = __builtin_convertvector(uf, DmfDouble8);
		b = __builtin_convertvector(vf, DmfDouble8);
		uu += a * a;
		vv += b * b;
		uv += a * b;
	}
	for (; j < dim; j++)
	{
		tail_uu += (double) u[j] * u[j];
		tail_vv += (double) v[j] * v[j];
		tail_uv += (double) u[j] * v[j];
	}
	sums[0] = tail_uu;
	sums[1] = tail_vv;
	sums[2] = tail_uv;
	for (int l = 0; l < 8; l++)
	{
		sums[0] += uu[l];
		sums[1] += vv[l];
		sums[2] += uv[l];
	}
}

DMF_KERNEL(cosine_sums,
		   (const float *u, const float *v, int dim, double *sums),
		   (u, v, dim, sums))

/* Cosine of two factors, or false if either is zero (no factor). */
static bool
factor_cosine(const float *u, const float *v, int dim, double *cosine)
{
	double		sums[3];

	DMF_CALL(cosine_sums, (u, v, dim, sums));
	if (sums[0] <= 0.0 || sums[1] <= 0.0 || !isfinite(sums[2]))
		return false;
	*cosine = sums[2] / sqrt(sums[0] * sums[1]);
	return true;
}

/* Prediction on the rating scale from two factors; false if no factor. */
bool
dmf_score_factors(const DmfModel *m, const float *u, const float *v, double *rating)
{
	double		c;

	if (!factor_cosine(u, v, m->dim, &c))
		return false;
	*rating = dmf_unscale_prediction(c, m->rating_min, m->rating_max);
	return true;
}

/*
 * The model and the prediction from the factor arguments of dmf_score and
 * dmf_score_discrete; false if either factor is zero (no factor).
 */
static bool
score_args(FunctionCallInfo fcinfo, const DmfModel **model, double *rating)
{
	const DmfModel *m = dmf_model_arg(fcinfo, 0);
	ArrayType  *ua = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *va = PG_GETARG_ARRAYTYPE_P(2);
	int			un = ArrayGetNItems(ARR_NDIM(ua), ARR_DIMS(ua));
	int			vn = ArrayGetNItems(ARR_NDIM(va), ARR_DIMS(va));
	const float *u = dmf_factor_arg(ua, "user", vn, m->dim);
	const float *v = dmf_factor_arg(va, "item", un, m->dim);

	*model = m;
	return dmf_score_factors(m, u, v, rating);
}

PG_FUNCTION_INFO_V1(dmf_score);
Datum
dmf_score(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	double		r;

	if (!score_args(fcinfo, &m, &r))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(r);
}

PG_FUNCTION_INFO_V1(dmf_score_discrete);
Datum
dmf_score_discrete(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	double		r;

	if (!score_args(fcinfo, &m, &r))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(dmf_model_quantize(m, r));
}

/* ---- factors from inputs ---- */

/*
 * Factors of the rows of x (inputs over the other side's training
 * entities) through a branch, unit length, or zero for empty rows.
 */
static void
factors_of_rows(const DmfBranch *b, const DmfCsr *x, float *out)
{
	DmfBranchWork w;
	int32	   *rows = palloc(sizeof(int32) * (x->nrows > 0 ? x->nrows : 1));

	for (int32 r = 0; r < x->nrows; r++)
		rows[r] = r;
	dmf_branch_work_alloc(&w, b, FACTOR_CHUNK, false);
	dmf_branch_factors(b, &w, x, rows, x->nrows, out);
	dmf_branch_work_free(&w, b);
	pfree(rows);
}

/* ---- dmf_refresh ---- */

/*
 * The least a refresh needs per rating: the row as read, its two positions,
 * who rated what and the inputs of both branches.
 */
#define REFRESH_BYTES_PER_ROW \
	(2 * sizeof(int64) + sizeof(double) + 2 * sizeof(int32) + \
	 3 * (sizeof(int32) + sizeof(float)))

static float *
palloc0_anchors(int32 n, int dim)
{
	return palloc_extended(sizeof(float) * ((size_t) n * dim + 1),
						   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

/*
 * Sorted union of the training ids of a side and the ids in the table;
 * stored_out[k] is where entity k sits in the model, or -1 if new.
 */
static int32
merge_ids(const DmfSide *s, const int64 *table_ids, int32 n_table,
		  int64 **ids_out, int32 **input_out, int32 **stored_out)
{
	int64	   *ids = palloc_extended(sizeof(int64) * ((size_t) s->n_train + n_table + 1), MCXT_ALLOC_HUGE);
	int32	   *input = palloc_extended(sizeof(int32) * ((size_t) s->n_train + n_table + 1), MCXT_ALLOC_HUGE);
	int32	   *stored = palloc_extended(sizeof(int32) * ((size_t) s->n_train + n_table + 1), MCXT_ALLOC_HUGE);
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

/* ERROR if a branch gave a factor that is not a finite number. */
static void
check_factors_finite(const float *f, size_t n, const char *side)
{
	for (size_t k = 0; k < n; k++)
		if (!isfinite(f[k]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the model's %s branch gives factors that are not finite numbers", side),
					 errdetail("Its weights are too large for the ratings given: the model is corrupt or its training diverged."),
					 errhint("Retrain the model.")));
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
	int64	   *offsets = palloc_extended(sizeof(int64) * ((size_t) n_users + 1), MCXT_ALLOC_HUGE);
	int32	   *items = palloc_extended(sizeof(int32) * (pairs->nnz + stored_nnz + 1), MCXT_ALLOC_HUGE);
	int32	   *stored_to_new = NULL;
	int64		nnz = 0;

	if (m->rated_offsets)
	{
		stored_to_new = palloc_extended(sizeof(int32) * ((size_t) m->items.n + 1), MCXT_ALLOC_HUGE);
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
		+ (uint64) FACTOR_CHUNK * widths * 3 * sizeof(float)
		+ 2 * (dmf_model_encoded_size(m) + added * (2 * dim * sizeof(float) + 16));
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

PG_FUNCTION_INFO_V1(dmf_refresh);
Datum
dmf_refresh(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext work;
	const DmfModel *m;
	DmfRatingColumns cols;
	DmfRawRatings raw;
	char	   *rel;
	int64	   *tu,
			   *ti;
	int32		ntu,
				nti,
				nu,
				ni,
				ni_merged,
				users_added,
				items_added;
	int64	   *uids,
			   *iids;
	int32	   *uinput,
			   *iinput,
			   *ustored,
			   *istored,
			   *ru,
			   *ri,
			   *rows_u,
			   *cols_u,
			   *user_index,
			   *item_index,
			   *rated_items,
			   *rows_i,
			   *cols_i;
	float	   *vals_u,
			   *vals_i,
			   *ufac,
			   *ifac,
			   *uanch,
			   *ianch;
	int64	   *rated_offsets;
	int64		nnz_u = 0,
				nnz_i = 0,
				dup = 0;
	DmfCsr		xu,
				xi,
				pairs;
	DmfModel	out;
	DmfReadBudget budget;
	bytea	   *result;
	char	   *meta;

	for (int a = 0; a < 5; a++)
		if (PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of dmf_refresh must not be NULL", a + 1)));

	work = AllocSetContextCreate(caller, "dmf refresh", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(work);

	m = dmf_model_arg(fcinfo, 0);
	/* reading the table may run other dmf calls (a view); keep the model */
	dmf_model_pin(dmf_model_ref(m), work);

	cols.relid = PG_GETARG_OID(1);
	cols.user_column = NameStr(*PG_GETARG_NAME(2));
	cols.item_column = NameStr(*PG_GETARG_NAME(3));
	cols.rating_column = NameStr(*PG_GETARG_NAME(4));
	rel = dmf_relation_name(cols.relid);
	budget.max_bytes = dmf_max_memory_bytes();
	budget.bytes_per_row = REFRESH_BYTES_PER_ROW;
	budget.rows_held = 0;
	budget.operation = "refreshing the model";
	dmf_read_ratings(&cols, &raw, &budget);
	if (raw.skipped_nulls > 0)
		ereport(NOTICE,
				(errmsg("skipped " INT64_FORMAT " rows of %s with a NULL user, item or rating",
						raw.skipped_nulls, rel)));
	for (int64 k = 0; k < raw.n; k++)
		if (raw.rating[k] < m->rating_min || raw.rating[k] > m->rating_max)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("rating column \"%s\" of %s holds %g, outside the model's range [%g, %g]",
							cols.rating_column, rel, raw.rating[k], m->rating_min, m->rating_max),
					 errdetail("User " INT64_FORMAT ", item " INT64_FORMAT ".", raw.user[k], raw.item[k]),
					 errhint("Filter the rows out with a view, or retrain the model on the new scale.")));

	ntu = dmf_distinct_ids(raw.user, raw.n, &tu);
	nti = dmf_distinct_ids(raw.item, raw.n, &ti);
	nu = merge_ids(&m->users, tu, ntu, &uids, &uinput, &ustored);
	ni = merge_ids(&m->items, ti, nti, &iids, &iinput, &istored);
	{
		uint64		need = (uint64) raw.n * REFRESH_BYTES_PER_ROW +
			refresh_memory_estimate(m, nu, ni);

		if (need > budget.max_bytes)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("refreshing the model would need about %s of memory, more than dmf.max_memory (%s)",
							dmf_pretty_bytes(need), dmf_pretty_bytes(budget.max_bytes)),
					 errdetail("%d users and %d items, factors of %d.", nu, ni, m->dim),
					 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
							 dmf_pretty_bytes(need))));
	}

	/* each rating by its row in the merged lists; one rating per pair */
	ru = palloc_extended(sizeof(int32) * (raw.n + 1), MCXT_ALLOC_HUGE);
	ri = palloc_extended(sizeof(int32) * (raw.n + 1), MCXT_ALLOC_HUGE);
	for (int64 k = 0; k < raw.n; k++)
	{
		ru[k] = dmf_find_id(uids, nu, raw.user[k]);
		ri[k] = dmf_find_id(iids, ni, raw.item[k]);
		if ((k & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	{
		float	   *ones = palloc_extended(sizeof(float) * (raw.n + 1), MCXT_ALLOC_HUGE);

		for (int64 k = 0; k < raw.n; k++)
			ones[k] = 1.0f;
		if (dmf_csr_build(&pairs, nu, ni, raw.n, ru, ri, ones, &dup, NULL) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_CARDINALITY_VIOLATION),
					 errmsg("relation %s has duplicate (%s, %s) pairs", rel,
							cols.user_column, cols.item_column),
					 errdetail("User " INT64_FORMAT " rated item " INT64_FORMAT " more than once.",
							   raw.user[dup], raw.item[dup]),
					 errhint("Refresh from a view with one rating per pair.")));
		pfree(ones);
	}

	/* user rows over the training items, item rows over the training users */
	rows_u = palloc_extended(sizeof(int32) * (raw.n + 1), MCXT_ALLOC_HUGE);
	cols_u = palloc_extended(sizeof(int32) * (raw.n + 1), MCXT_ALLOC_HUGE);
	vals_u = palloc_extended(sizeof(float) * (raw.n + 1), MCXT_ALLOC_HUGE);
	rows_i = palloc_extended(sizeof(int32) * (raw.n + 1), MCXT_ALLOC_HUGE);
	cols_i = palloc_extended(sizeof(int32) * (raw.n + 1), MCXT_ALLOC_HUGE);
	vals_i = palloc_extended(sizeof(float) * (raw.n + 1), MCXT_ALLOC_HUGE);
	for (int64 k = 0; k < raw.n; k++)
	{
		float		x = (float) dmf_to_working(&m->scale, raw.rating[k]);

		if (iinput[ri[k]] >= 0)
		{
			rows_u[nnz_u] = ru[k];
			cols_u[nnz_u] = iinput[ri[k]];
			vals_u[nnz_u++] = x;
		}
		if (uinput[ru[k]] >= 0)
		{
			rows_i[nnz_i] = ri[k];
			cols_i[nnz_i] = uinput[ru[k]];
			vals_i[nnz_i++] = x;
		}
	}
	dmf_csr_build(&xu, nu, m->items.n_train, nnz_u, rows_u, cols_u, vals_u, NULL, NULL);
	dmf_csr_build(&xi, ni, m->users.n_train, nnz_i, rows_i, cols_i, vals_i, NULL, NULL);

	/* one batched forward pass per branch */
	ufac = palloc_extended(sizeof(float) * (size_t) nu * m->dim, MCXT_ALLOC_HUGE);
	ifac = palloc_extended(sizeof(float) * (size_t) ni * m->dim, MCXT_ALLOC_HUGE);
	factors_of_rows(&m->user_branch, &xu, ufac);
	factors_of_rows(&m->item_branch, &xi, ifac);

	/* anchors: the branch factors of the training entities, by position */
	uanch = palloc0_anchors(m->users.n_train, m->dim);
	ianch = palloc0_anchors(m->items.n_train, m->dim);
	for (int32 k = 0; k < nu; k++)
		if (uinput[k] >= 0)
			memcpy(uanch + (size_t) uinput[k] * m->dim, ufac + (size_t) k * m->dim,
				   sizeof(float) * m->dim);
	for (int32 k = 0; k < ni; k++)
		if (iinput[k] >= 0)
			memcpy(ianch + (size_t) iinput[k] * m->dim, ifac + (size_t) k * m->dim,
				   sizeof(float) * m->dim);
	{
		/* a refresh, like a training, uses the machine's cores (two at most) */
		DmfFoldInSide sides[2] = {{&xu, ufac, ianch}, {&xi, ifac, uanch}};

		dmf_fold_in_sides(sides, 2, m->dim, m->fold_in_steps, m->fold_in_rate,
						  0.0, m->scale.working_max, Min(dmf_resolve_threads(0), 2));
	}
	check_factors_finite(ufac, (size_t) nu * m->dim, "user");
	check_factors_finite(ifac, (size_t) ni * m->dim, "item");
	keep_stored_factors(&m->users, m->dim, &xu, uinput, ustored, nu, ufac, uanch);
	keep_stored_factors(&m->items, m->dim, &xi, iinput, istored, ni, ifac, ianch);
	user_index = palloc_extended(sizeof(int32) * ((size_t) nu + 1), MCXT_ALLOC_HUGE);
	item_index = palloc_extended(sizeof(int32) * ((size_t) ni + 1), MCXT_ALLOC_HUGE);
	ni_merged = ni;
	nu = compact_side(uids, uinput, ufac, nu, m->dim, &users_added, user_index);
	ni = compact_side(iids, iinput, ifac, ni, m->dim, &items_added, item_index);
	compact_rated(m, &pairs, user_index, ustored, item_index, istored, ni_merged, nu,
				  &rated_offsets, &rated_items);

	meta = refreshed_meta(m, users_added, items_added, raw.n, raw.skipped_nulls);

	out = *m;
	if (!pg_strong_random(out.model_id, sizeof(out.model_id)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random model id")));
	out.users.n = nu;
	out.users.ids = uids;
	out.users.input = uinput;
	out.users.factors = ufac;
	out.items.n = ni;
	out.items.ids = iids;
	out.items.input = iinput;
	out.items.factors = ifac;
	out.users.anchors = uanch;
	out.items.anchors = ianch;
	/* the cached model's id indexes do not describe the new ids */
	out.users.index = out.items.index = NULL;
	out.meta = meta;
	out.meta_len = strlen(meta);
	out.rated_offsets = rated_offsets;
	out.rated_items = rated_items;

	result = dmf_model_to_bytea(&out, caller);

	MemoryContextSwitchTo(caller);
	MemoryContextDelete(work);
	PG_RETURN_BYTEA_P(result);
}

/* ---- aggregates: a factor from ratings inside a query ---- */

typedef struct FactorState
{
	DmfModelRef ref;
	bool		user_side;		/* a user's factor from its item ratings */
	int32		n;
	int32		cap;
	int32	   *pos;			/* input positions (training entities) */
	float	   *val;			/* ratings on the working scale (encoding.h) */
	bool		model_in_plan;	/* the model argument is a constant or a parameter */
} FactorState;

static FactorState *
new_state(MemoryContext aggcxt, DmfModelRef ref, bool user_side, int32 cap)
{
	FactorState *st = MemoryContextAllocZero(aggcxt, sizeof(FactorState));

	st->ref = ref;
	st->user_side = user_side;
	st->cap = cap > 8 ? cap : 8;
	st->pos = MemoryContextAlloc(aggcxt, sizeof(int32) * st->cap);
	st->val = MemoryContextAlloc(aggcxt, sizeof(float) * st->cap);
	dmf_model_pin(ref, aggcxt);
	return st;
}

static void
state_add(FactorState *st, MemoryContext aggcxt, int32 pos, float val)
{
	if (st->n == st->cap)
	{
		st->cap *= 2;
		st->pos = repalloc_huge(st->pos, sizeof(int32) * st->cap);
		st->val = repalloc_huge(st->val, sizeof(float) * st->cap);
	}
	st->pos[st->n] = pos;
	st->val[st->n] = val;
	st->n++;
}

/*
 * Whether the aggregate's model argument is a constant or a parameter of
 * the query: a value the leader of a parallel plan holds too, so partial
 * states can name it by digest instead of carrying it (see serialize).
 */
static bool
model_arg_in_plan(FunctionCallInfo fcinfo)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	TargetEntry *arg;

	if (aggref == NULL || aggref->args == NIL)
		return false;
	arg = linitial_node(TargetEntry, aggref->args);
	return IsA(arg->expr, Const) || IsA(arg->expr, Param);
}

static Datum
factor_step(FunctionCallInfo fcinfo, bool user_side)
{
	MemoryContext aggcxt;
	FactorState *st = PG_ARGISNULL(0) ? NULL : (FactorState *) PG_GETARG_POINTER(0);
	const DmfModel *m;
	DmfModelRef ref;
	const DmfSide *other;
	int32		k;
	double		rating;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dmf factor aggregate called in non-aggregate context");
	/* a row without a model, id or rating contributes nothing */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_POINTER(st);

	m = dmf_model_arg(fcinfo, 1);
	ref = dmf_model_ref(m);
	if (st == NULL)
	{
		st = new_state(aggcxt, ref, user_side, 16);
		st->model_in_plan = model_arg_in_plan(fcinfo);
	}
	else if (st->ref.slot != ref.slot || st->ref.generation != ref.generation)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s got two different models in one group",
						user_side ? "dmf_user_factor" : "dmf_item_factor"),
				 errhint("Group by the model too, or pass one model per group.")));

	rating = PG_GETARG_FLOAT8(3);
	if (isnan(rating) || rating < m->rating_min || rating > m->rating_max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("rating %g is outside the model's range [%g, %g]",
						rating, m->rating_min, m->rating_max)));

	/* the input is over the other side's training entities */
	other = side_of(m, !user_side);
	k = dmf_side_find(other, PG_GETARG_INT64(2));
	if (k >= 0 && other->input[k] >= 0)
		state_add(st, aggcxt, other->input[k], (float) dmf_to_working(&m->scale, rating));
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dmf_user_factor_step);
Datum
dmf_user_factor_step(PG_FUNCTION_ARGS)
{
	return factor_step(fcinfo, true);
}

PG_FUNCTION_INFO_V1(dmf_item_factor_step);
Datum
dmf_item_factor_step(PG_FUNCTION_ARGS)
{
	return factor_step(fcinfo, false);
}

PG_FUNCTION_INFO_V1(dmf_factor_combine);
Datum
dmf_factor_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FactorState *a = PG_ARGISNULL(0) ? NULL : (FactorState *) PG_GETARG_POINTER(0);
	FactorState *b = PG_ARGISNULL(1) ? NULL : (FactorState *) PG_GETARG_POINTER(1);

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dmf factor aggregate called in non-aggregate context");
	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
	{
		a = new_state(aggcxt, b->ref, b->user_side, b->n);
		a->model_in_plan = b->model_in_plan;
	}
	else if (a->ref.slot != b->ref.slot || a->ref.generation != b->ref.generation)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a dmf factor aggregate got two different models in one group")));
	for (int32 k = 0; k < b->n; k++)
		state_add(a, aggcxt, b->pos[k], b->val[k]);
	PG_RETURN_POINTER(a);
}

/*
 * Serialized state: side, model header, pairs, then how the receiving
 * process finds the model:
 *
 *   MODEL_TOAST   the TOAST pointer of the stored model (any backend of the
 *                 database can follow it)
 *   MODEL_DIGEST  the SHA-256 of a model that is a constant or a parameter
 *                 of the query: the leader holds the same value, and finds
 *                 it in its cache or its plan by digest
 *   MODEL_BYTES   a copy of the model, for one computed in the query
 *
 * A partial state per group used to carry the whole model when it was not
 * stored out of line: megabytes per group through the workers' queues.
 */
#define MODEL_TOAST 0
#define MODEL_DIGEST 1
#define MODEL_BYTES 2

PG_FUNCTION_INFO_V1(dmf_factor_serialize);
Datum
dmf_factor_serialize(PG_FUNCTION_ARGS)
{
	FactorState *st = (FactorState *) PG_GETARG_POINTER(0);
	StringInfoData buf;
	uint8		header[DMF_HEADER_SIZE];

	dmf_model_identity(st->ref, header);
	pq_begintypsend(&buf);
	pq_sendbyte(&buf, st->user_side ? 1 : 0);
	pq_sendbytes(&buf, (char *) header, DMF_HEADER_SIZE);
	pq_sendint32(&buf, st->n);
	for (int32 k = 0; k < st->n; k++)
	{
		pq_sendint32(&buf, st->pos[k]);
		pq_sendfloat4(&buf, st->val[k]);
	}
	if (!dmf_model_stored_out_of_line(st->ref) && st->model_in_plan)
	{
		uint8		digest[DMF_MODEL_DIGEST_LEN];

		dmf_model_digest(st->ref, digest);
		pq_sendbyte(&buf, MODEL_DIGEST);
		pq_sendbytes(&buf, (char *) digest, DMF_MODEL_DIGEST_LEN);
	}
	else
	{
		bytea	   *model = dmf_model_shippable(st->ref);

		pq_sendbyte(&buf, VARATT_IS_EXTERNAL(model) ? MODEL_TOAST : MODEL_BYTES);
		pq_sendint32(&buf, VARSIZE_ANY(model));
		pq_sendbytes(&buf, (char *) model, VARSIZE_ANY(model));
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Context of the search of a plan for a model value by its digest. */
typedef struct PlanModelSearch
{
	const uint8 *digest;
	EState	   *estate;
	Datum		found;
	bool		has_found;
} PlanModelSearch;

static void
try_model_value(PlanModelSearch *search, Datum value)
{
	struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(value));
	uint8		digest[DMF_MODEL_DIGEST_LEN];

	if (search->has_found)
		return;
	dmf_bytes_digest((const uint8 *) VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v), digest);
	if (memcmp(digest, search->digest, DMF_MODEL_DIGEST_LEN) == 0)
	{
		search->found = PointerGetDatum(v);
		search->has_found = true;
	}
}

/* An aggregate argument that is a bytea constant or an evaluated parameter. */
static bool
model_value_walker(Node *node, PlanModelSearch *search)
{
	if (node == NULL || search->has_found)
		return search->has_found;
	if (IsA(node, Const))
	{
		Const	   *c = (Const *) node;

		if (c->consttype == BYTEAOID && !c->constisnull)
			try_model_value(search, c->constvalue);
		return false;
	}
	if (IsA(node, Param))
	{
		Param	   *p = (Param *) node;
		EState	   *es = search->estate;

		if (p->paramtype != BYTEAOID)
			return false;
		if (p->paramkind == PARAM_EXTERN && es->es_param_list_info != NULL &&
			p->paramid > 0 && p->paramid <= es->es_param_list_info->numParams)
		{
			ParamListInfo pl = es->es_param_list_info;
			ParamExternData workspace;
			ParamExternData *prm = pl->paramFetch ?
				pl->paramFetch(pl, p->paramid, false, &workspace) :
				&pl->params[p->paramid - 1];

			if (prm && prm->ptype == BYTEAOID && !prm->isnull)
				try_model_value(search, prm->value);
		}
		else if (p->paramkind == PARAM_EXEC && es->es_param_exec_vals != NULL &&
				 p->paramid >= 0 &&
				 p->paramid < list_length(es->es_plannedstmt->paramExecTypes))
		{
			ParamExecData *prm = &es->es_param_exec_vals[p->paramid];

			/* only a value the leader has computed already */
			if (prm->execPlan == NULL && !prm->isnull)
				try_model_value(search, prm->value);
		}
		return false;
	}
	return expression_tree_walker(node, model_value_walker, search);
}

static bool
plan_model_walker(PlanState *ps, PlanModelSearch *search)
{
	if (ps == NULL || search->has_found)
		return search->has_found;
	model_value_walker((Node *) ps->plan->targetlist, search);
	model_value_walker((Node *) ps->plan->qual, search);
	if (search->has_found)
		return true;
	return planstate_tree_walker(ps, plan_model_walker, search);
}

/*
 * The model a partial state names by digest: from the cache (the leader
 * used it itself), else from the constants and parameters of the plan the
 * leader runs, which the workers' model came from.  The digest is checked
 * against the bytes either way.
 */
static const DmfModel *
model_by_digest(FunctionCallInfo fcinfo, const uint8 *digest)
{
	const DmfModel *m = dmf_model_find_digest(digest);
	PlanModelSearch search;
	AggState   *agg;

	if (m != NULL)
		return m;
	if (fcinfo->context == NULL || !IsA(fcinfo->context, AggState))
		elog(ERROR, "dmf factor aggregate state names a model by digest outside an aggregate");
	agg = (AggState *) fcinfo->context;
	memset(&search, 0, sizeof(search));
	search.digest = digest;
	search.estate = agg->ss.ps.state;
	plan_model_walker((PlanState *) agg, &search);
	if (!search.has_found)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("the model of a parallel dmf factor aggregate is not in this plan"),
				 errhint("Read the model from a table in the query, or SET max_parallel_workers_per_gather = 0.")));
	return dmf_model_from_datum(search.found);
}

PG_FUNCTION_INFO_V1(dmf_factor_deserialize);
Datum
dmf_factor_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *bytes = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	StringInfoData buf;
	bool		user_side;
	uint8		header[DMF_HEADER_SIZE];
	int32		n,
				pairs_at;
	int			how;
	const DmfModel *m;
	FactorState *st;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dmf factor aggregate called in non-aggregate context");
	buf.data = VARDATA_ANY(bytes);
	buf.len = VARSIZE_ANY_EXHDR(bytes);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	user_side = pq_getmsgbyte(&buf) != 0;
	pq_copymsgbytes(&buf, (char *) header, DMF_HEADER_SIZE);
	n = pq_getmsgint(&buf, 4);
	if (n < 0 || (int64) n * 8 > buf.len - buf.cursor)
		elog(ERROR, "invalid dmf factor aggregate state");

	/* the model travels after the pairs: find it first */
	pairs_at = buf.cursor;
	buf.cursor += n * 8;
	how = pq_getmsgbyte(&buf);
	if (how == MODEL_DIGEST)
		m = model_by_digest(fcinfo, (const uint8 *) pq_getmsgbytes(&buf, DMF_MODEL_DIGEST_LEN));
	else if (how == MODEL_TOAST || how == MODEL_BYTES)
	{
		int32		mlen = pq_getmsgint(&buf, 4);
		const char *model;

		if (mlen < VARHDRSZ_EXTERNAL || mlen > buf.len - buf.cursor)
			elog(ERROR, "invalid dmf factor aggregate state");
		model = pq_getmsgbytes(&buf, mlen);
		/* the shipped value, not the header, says which model: see model_cache.c */
		m = dmf_model_from_datum(PointerGetDatum(model));
	}
	else
		elog(ERROR, "invalid dmf factor aggregate state");
	pq_getmsgend(&buf);
	buf.cursor = pairs_at;
	{
		uint8		found[DMF_HEADER_SIZE];

		dmf_model_identity(dmf_model_ref(m), found);
		if (memcmp(found, header, DMF_HEADER_SIZE) != 0)
			elog(ERROR, "dmf factor aggregate state names another model");
	}
	st = new_state(aggcxt, dmf_model_ref(m), user_side, n);
	st->model_in_plan = how == MODEL_DIGEST;
	for (int32 k = 0; k < n; k++)
	{
		int32		pos = pq_getmsgint(&buf, 4);
		float		val = pq_getmsgfloat4(&buf);

		if (pos < 0 || pos >= side_of(m, !user_side)->n_train)
			elog(ERROR, "invalid input position in a dmf factor aggregate state");
		state_add(st, aggcxt, pos, val);
	}
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(dmf_factor_final);
Datum
dmf_factor_final(PG_FUNCTION_ARGS)
{
	FactorState *st = PG_ARGISNULL(0) ? NULL : (FactorState *) PG_GETARG_POINTER(0);
	const DmfModel *m;
	const DmfBranch *b;
	DmfCsr		x;
	int32		row = 0;
	float	   *f;

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();			/* no rating of a training entity */
	m = dmf_model_deref(st->ref);
	if (m == NULL)
		elog(ERROR, "dmf model of an aggregate state left the cache");
	b = branch_of(m, st->user_side);

	{
		int32	   *rows = palloc0(sizeof(int32) * st->n);
		int32	   *cols = palloc(sizeof(int32) * st->n);
		float	   *vals = palloc(sizeof(float) * st->n);
		int64		dup = 0;

		for (int32 k = 0; k < st->n; k++)
		{
			cols[k] = st->pos[k];
			vals[k] = st->val[k];
		}
		if (dmf_csr_build(&x, 1, side_of(m, !st->user_side)->n_train, st->n,
						  rows, cols, vals, &dup, NULL) > 0)
		{
			const DmfSide *other = side_of(m, !st->user_side);
			int64		id = 0;

			for (int32 k = 0; k < other->n; k++)
				if (other->input[k] == cols[dup])
					id = other->ids[k];
			ereport(ERROR,
					(errcode(ERRCODE_CARDINALITY_VIOLATION),
					 errmsg("%s " INT64_FORMAT " appears more than once in one group of %s",
							st->user_side ? "item" : "user", id,
							st->user_side ? "dmf_user_factor" : "dmf_item_factor"),
					 errhint("Aggregate one rating per pair.")));
		}
	}
	f = palloc(sizeof(float) * m->dim);
	{
		DmfBranchWork w;

		dmf_branch_work_alloc(&w, b, 1, false);
		dmf_branch_factors(b, &w, &x, &row, 1, f);
		dmf_branch_work_free(&w, b);
		dmf_fold_in(&x, f, side_of(m, !st->user_side)->anchors, m->dim,
					m->fold_in_steps, m->fold_in_rate, 0.0, m->scale.working_max);
	}
	dmf_csr_free(&x);
	check_factors_finite(f, m->dim, st->user_side ? "user" : "item");
	if (dmf_factor_is_zero(f, m->dim))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(factor_array(f, m->dim));
}
