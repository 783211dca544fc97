/*
 * predict_sql.c
 *	  Using a model: predictions for two ids (dmf_predict and its discrete
 *	  form), from two factors (dmf_score), the stored factors, and what the
 *	  model says of itself (dmf_info).
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "model_cache.h"
#include "model_format.h"
#include "quantizer.h"
#include "score.h"

/*
 * The prediction for the user and item ids of arguments 1 and 2; false if
 * the model has no factor for either.  Reads only the two factors of a
 * model stored out of line (dmf_model_arg_lazy).
 */
static bool
predict_args(FunctionCallInfo fcinfo, const DmfModel **model, double *rating)
{
	DmfModelAccess access;
	const DmfModel *m = dmf_model_arg_lazy(fcinfo, 0, &access);
	int32		u = dmf_side_find(&m->users, PG_GETARG_INT64(1));
	int32		i;

	*model = m;
	if (u < 0)
		return false;
	i = dmf_side_find(&m->items, PG_GETARG_INT64(2));
	if (i < 0)
		return false;
	return dmf_score_factors(m, dmf_access_factor(&access, true, u),
							 dmf_access_factor(&access, false, i), rating);
}

PG_FUNCTION_INFO_V1(dmf_predict);
Datum
dmf_predict(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	double		r;

	if (!predict_args(fcinfo, &m, &r))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(r);
}

/* The model's quantizer; ERROR if it has no rating levels. */
static DmfQuantizer
model_quantizer(const DmfModel *m)
{
	DmfQuantizer q;

	if (m->flags & DMF_FLAG_IMPLICIT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this dmf model was trained on implicit feedback, which has no rating levels"),
				 errhint("Use dmf_predict for its preference score.")));
	if (m->n_levels < 2)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this dmf model has no rating levels"),
				 errdetail("Its training ratings were not on equally spaced levels."),
				 errhint("Retrain with the option \"levels\", e.g. '{\"levels\": [1, 2, 3, 4, 5]}'.")));
	q.n_levels = m->n_levels;
	q.step = m->levels[1] - m->levels[0];
	q.levels = m->levels;
	q.boundaries = m->boundaries;
	q.lambda = m->lambda;
	return q;
}

PG_FUNCTION_INFO_V1(dmf_predict_discrete);
Datum
dmf_predict_discrete(PG_FUNCTION_ARGS)
{
	const DmfModel *m;
	double		r;
	bool		known = predict_args(fcinfo, &m, &r);
	DmfQuantizer q = model_quantizer(m);	/* an ERROR even for unknown ids */

	if (!known)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(dmf_quantize(&q, r));
}

/* Quantizes a continuous prediction with the model's quantizer. */
double
dmf_model_quantize(const DmfModel *m, double rating)
{
	DmfQuantizer q = model_quantizer(m);

	return dmf_quantize(&q, rating);
}

ArrayType *
dmf_factor_array(const float *f, int dim)
{
	Datum	   *elems = palloc(sizeof(Datum) * dim);

	for (int j = 0; j < dim; j++)
		elems[j] = Float4GetDatum(f[j]);
	return construct_array(elems, dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

/* ---- stored factors and scores ---- */

static Datum
stored_factor(FunctionCallInfo fcinfo, bool user_side)
{
	DmfModelAccess access;
	const DmfModel *m = dmf_model_arg_lazy(fcinfo, 0, &access);
	int32		k = dmf_side_find(dmf_model_side(m, user_side), PG_GETARG_INT64(1));
	const float *f;

	if (k < 0)
		PG_RETURN_NULL();
	f = dmf_access_factor(&access, user_side, k);
	if (dmf_factor_is_zero(f, m->dim))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(dmf_factor_array(f, m->dim));
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

/*
 * Every stored factor of a side, (id, factor), ids ascending: what
 * dmf_user_factor / dmf_item_factor return for each id, in one scan.
 * Entities without a factor are left out, as those functions return NULL.
 */
static Datum
stored_factors(FunctionCallInfo fcinfo, bool user_side)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const DmfModel *m;
	const DmfSide *side;
	MemoryContext per_row,
				old;

	InitMaterializedSRF(fcinfo, 0);
	m = dmf_model_arg(fcinfo, 0);
	side = dmf_model_side(m, user_side);
	per_row = AllocSetContextCreate(CurrentMemoryContext, "dmf factors",
									ALLOCSET_SMALL_SIZES);
	for (int32 k = 0; k < side->n; k++)
	{
		const float *f = side->factors + (size_t) k * m->dim;
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (dmf_factor_is_zero(f, m->dim))
			continue;
		if ((k & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(per_row);
		values[0] = Int64GetDatum(side->ids[k]);
		values[1] = PointerGetDatum(dmf_factor_array(f, m->dim));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(per_row);
	}
	MemoryContextDelete(per_row);
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(dmf_user_factors);
Datum
dmf_user_factors(PG_FUNCTION_ARGS)
{
	return stored_factors(fcinfo, true);
}

PG_FUNCTION_INFO_V1(dmf_item_factors);
Datum
dmf_item_factors(PG_FUNCTION_ARGS)
{
	return stored_factors(fcinfo, false);
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

static void
append_doubles(StringInfo s, const char *key, const double *v, int n)
{
	appendStringInfo(s, ", \"%s\": [", key);
	for (int k = 0; k < n; k++)
	{
		if (k > 0)
			appendStringInfoString(s, ", ");
		dmf_append_json_number(s, v[k]);
	}
	appendStringInfoChar(s, ']');
}

static void
append_shape(StringInfo s, const char *key, const DmfBranch *b)
{
	appendStringInfo(s, ", \"%s\": [", key);
	for (int l = 0; l <= b->n_layers; l++)
		appendStringInfo(s, "%s%d", l > 0 ? ", " : "", b->sizes[l]);
	appendStringInfoChar(s, ']');
}

PG_FUNCTION_INFO_V1(dmf_info);
Datum
dmf_info(PG_FUNCTION_ARGS)
{
	const DmfModel *m = dmf_model_arg(fcinfo, 0);
	StringInfoData s;
	Datum		facts;
	Datum		meta;
	char		id[33];

	for (int k = 0; k < 16; k++)
		snprintf(id + 2 * k, 3, "%02x", m->model_id[k]);

	initStringInfo(&s);
	appendStringInfo(&s, "{\"format_version\": %d, \"model_id\": \"%s\"", m->version, id);
	appendStringInfo(&s, ", \"size_bytes\": " INT64_FORMAT,
					 (int64) toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ);
	appendStringInfo(&s, ", \"users\": %d, \"items\": %d", m->users.n, m->items.n);
	appendStringInfo(&s, ", \"training_users\": %d, \"training_items\": %d",
					 m->users.n_train, m->items.n_train);
	/* what dmf_recommend's exclude_rated can leave out (null: not stored) */
	if (m->rated_offsets != NULL)
		appendStringInfo(&s, ", \"rated_pairs\": " INT64_FORMAT,
						 (int64) m->rated_offsets[m->users.n]);
	else
		appendStringInfoString(&s, ", \"rated_pairs\": null");
	appendStringInfo(&s, ", \"dim\": %d, \"activation\": \"%s\"", m->dim,
					 dmf_activation_names[m->user_branch.activation]);
	append_shape(&s, "user_branch", &m->user_branch);
	append_shape(&s, "item_branch", &m->item_branch);
	appendStringInfo(&s, ", \"fold_in_steps\": %d, \"fold_in_rate\": ", m->fold_in_steps);
	dmf_append_json_number(&s, m->fold_in_rate);
	appendStringInfo(&s, ", \"fold_in_training_users\": %s, \"fold_in_training_items\": %s",
					 (m->flags & DMF_FLAG_TRAINED_USERS_UNFOLDED) ? "false" : "true",
					 (m->flags & DMF_FLAG_TRAINED_ITEMS_UNFOLDED) ? "false" : "true");
	appendStringInfoString(&s, ", \"rating_min\": ");
	dmf_append_json_number(&s, m->rating_min);
	appendStringInfoString(&s, ", \"rating_max\": ");
	dmf_append_json_number(&s, m->rating_max);
	appendStringInfo(&s, ", \"storage\": \"%s\"",
					 (m->flags & DMF_FLAG_BFLOAT16) ? "bfloat16" : "float32");
	appendStringInfo(&s, ", \"feedback\": \"%s\"",
					 (m->flags & DMF_FLAG_IMPLICIT) ? "implicit" : "explicit");
	appendStringInfo(&s, ", \"discrete\": %s", (m->flags & DMF_FLAG_DISCRETE) ? "true" : "false");
	if (m->n_levels >= 2)
	{
		append_doubles(&s, "levels", m->levels, m->n_levels);
		/* the inner boundaries b_1 .. b_{d-1}; b_0 and b_d are unbounded */
		append_doubles(&s, "boundaries", m->boundaries + 1, m->n_levels - 1);
		appendStringInfoString(&s, ", \"lambda\": ");
		dmf_append_json_number(&s, m->lambda);
	}
	else
		appendStringInfoString(&s, ", \"levels\": null");
	appendStringInfoChar(&s, '}');

	facts = DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data));
	meta = DirectFunctionCall1(jsonb_in,
							   CStringGetDatum(pnstrdup(m->meta, m->meta_len)));
	/* the header's facts win over anything in the metadata */
	PG_RETURN_DATUM(DirectFunctionCall2(jsonb_concat, meta, facts));
}
