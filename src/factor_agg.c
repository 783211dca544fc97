/*
 * factor_agg.c
 *	  dmf_user_factor(model, item_id, rating) and dmf_item_factor(model,
 *	  user_id, rating): a factor from ratings that exist only in a query,
 *	  through the trained branch and fold-in, as dmf_refresh computes it.
 *	  Parallel safe: partial states are combined, serialized and
 *	  deserialized (see dmf_factor_serialize for how a state names its
 *	  model).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "nodes/execnodes.h"
#include "nodes/nodeFuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "memory_budget.h"
#include "encoding.h"
#include "fold_in.h"
#include "model_cache.h"
#include "model_format.h"
#include "score.h"
#include "sparse.h"

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

/* Bytes of a state's pairs, and what its final function adds per pair. */
#define STATE_PAIR_BYTES (sizeof(int32) + sizeof(float))
#define FINAL_PAIR_BYTES (3 * sizeof(int32) + sizeof(float) + sizeof(int32) + sizeof(float) + sizeof(int64))

static int	cmp_pair_pos(const void *a, const void *b);

/*
 * What a group of n_max pairs needs at most: its state and its final
 * function's work, with room for the branch's buffers of one row.
 */
static uint64
group_need(int64 n_max)
{
	return (uint64) n_max * (2 * STATE_PAIR_BYTES + FINAL_PAIR_BYTES) + 256 * 1024;
}

/* ERROR: the group rates the entity at input position pos twice. */
static void
report_repeated(const FactorState *st, const DmfModel *m, int32 pos)
{
	const DmfSide *other = dmf_model_side(m, !st->user_side);
	int64		id = 0;

	for (int32 k = 0; k < other->n; k++)
		if (other->input[k] == pos)
			id = other->ids[k];
	ereport(ERROR,
			(errcode(ERRCODE_CARDINALITY_VIOLATION),
			 errmsg("%s " INT64_FORMAT " appears more than once in one group of %s",
					st->user_side ? "item" : "user", id,
					st->user_side ? "dmf_user_factor" : "dmf_item_factor"),
			 errhint("Aggregate one rating per pair.")));
}

/*
 * Sorts the state's pairs and drops repeats: an implicit model's repeated
 * interactions are one; a rating model's repeated pair is an ERROR.
 */
static void
state_compact(FactorState *st)
{
	const DmfModel *m = dmf_model_deref(st->ref);
	int32		kept = 0;
	struct
	{
		int32		pos;
		float		val;
	}		   *pairs = palloc(sizeof(*pairs) * st->n);

	for (int32 k = 0; k < st->n; k++)
	{
		pairs[k].pos = st->pos[k];
		pairs[k].val = st->val[k];
	}
	qsort(pairs, st->n, sizeof(*pairs), cmp_pair_pos);
	for (int32 k = 0; k < st->n; k++)
	{
		if (kept > 0 && pairs[kept - 1].pos == pairs[k].pos)
		{
			if (m->flags & DMF_FLAG_IMPLICIT)
				continue;
			report_repeated(st, m, pairs[k].pos);
		}
		pairs[kept++] = pairs[k];
	}
	for (int32 k = 0; k < kept; k++)
	{
		st->pos[k] = pairs[k].pos;
		st->val[k] = pairs[k].val;
	}
	pfree(pairs);
	st->n = kept;
}

/*
 * A state grows while the group's need stays within dmf.max_memory; at
 * that size it holds each input at most once, so it is compacted, and it
 * is an ERROR once compacting no longer leaves a quarter of it free.
 */
static void
state_add(FactorState *st, MemoryContext aggcxt, int32 pos, float val)
{
	if (st->n == st->cap)
	{
		if (group_need(2 * (int64) st->cap) <= dmf_max_memory_bytes() && st->cap < PG_INT32_MAX / 2)
		{
			st->cap *= 2;
			st->pos = repalloc_huge(st->pos, sizeof(int32) * st->cap);
			st->val = repalloc_huge(st->val, sizeof(float) * st->cap);
		}
		else
		{
			const DmfModel *m = dmf_model_deref(st->ref);
			int32		n_inputs = dmf_model_side(m, !st->user_side)->n_train;

			state_compact(st);
			if (st->n > st->cap / 4 * 3)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("one group of %s needs more than dmf.max_memory (%s)",
								st->user_side ? "dmf_user_factor" : "dmf_item_factor",
								dmf_pretty_bytes(dmf_max_memory_bytes())),
						 errdetail("It holds %d distinct %s of the model's %d.", st->n,
								   st->user_side ? "items" : "users", n_inputs),
						 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
								 dmf_pretty_bytes_setting(group_need(4 * (int64) n_inputs)))));
		}
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
	if (m->flags & DMF_FLAG_IMPLICIT)
	{
		/* an interaction: its weight only has to be one */
		if (!(rating > 0.0) || isinf(rating))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("weight %g of an interaction is not a finite number above 0", rating),
					 errhint("Pass 1 for each interaction of a model trained on implicit feedback.")));
		rating = 1.0;
	}
	else if (isnan(rating) || rating < m->rating_min || rating > m->rating_max)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("rating %g is outside the model's range [%g, %g]",
						rating, m->rating_min, m->rating_max)));

	/* the input is over the other side's training entities */
	other = dmf_model_side(m, !user_side);
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

		if (pos < 0 || pos >= dmf_model_side(m, !user_side)->n_train)
			elog(ERROR, "invalid input position in a dmf factor aggregate state");
		state_add(st, aggcxt, pos, val);
	}
	PG_RETURN_POINTER(st);
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/* pairs (int32 position first) by position */
static int
cmp_pair_pos(const void *a, const void *b)
{
	return cmp_int32(a, b);
}

PG_FUNCTION_INFO_V1(dmf_factor_final);
Datum
dmf_factor_final(PG_FUNCTION_ARGS)
{
	FactorState *st = PG_ARGISNULL(0) ? NULL : (FactorState *) PG_GETARG_POINTER(0);
	MemoryContext caller = CurrentMemoryContext;
	DmfMemoryBudget *budget;
	const DmfModel *m;
	const DmfBranch *b;
	DmfCsr		x;
	int32		row = 0;
	float	   *f;
	ArrayType  *result;

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();			/* no rating of a training entity */
	m = dmf_model_deref(st->ref);
	if (m == NULL)
		elog(ERROR, "dmf model of an aggregate state left the cache");
	b = dmf_model_branch(m, st->user_side);

	budget = dmf_budget_begin(st->user_side ? "dmf_user_factor" : "dmf_item_factor",
							  "dmf factor final");
	dmf_budget_hold_outside(budget, STATE_PAIR_BYTES * (Size) st->cap);
	(void) dmf_budget_expect(budget, group_need(st->n));
	{
		int32	   *rows = dmf_budget_alloc(sizeof(int32) * st->n, MCXT_ALLOC_ZERO);
		int32	   *cols = dmf_budget_alloc(sizeof(int32) * st->n, 0);
		float	   *vals = dmf_budget_alloc(sizeof(float) * st->n, 0);
		int64		dup = 0;
		int32		n_entries = st->n;

		for (int32 k = 0; k < st->n; k++)
		{
			cols[k] = st->pos[k];
			vals[k] = st->val[k];
		}
		if (m->flags & DMF_FLAG_IMPLICIT)
		{
			/* repeated interactions are one, as in training (values are all 1) */
			n_entries = 0;
			qsort(cols, st->n, sizeof(int32), cmp_int32);
			for (int32 k = 0; k < st->n; k++)
				if (n_entries == 0 || cols[n_entries - 1] != cols[k])
					cols[n_entries++] = cols[k];
		}
		if (dmf_csr_build(&x, 1, dmf_model_side(m, !st->user_side)->n_train, n_entries,
						  rows, cols, vals, &dup, NULL) > 0)
			report_repeated(st, m, cols[dup]);
	}
	f = palloc(sizeof(float) * m->dim);
	{
		DmfBranchWork w;

		dmf_branch_work_alloc(&w, b, 1, false);
		dmf_branch_factors(b, &w, &x, &row, 1, f);
		dmf_branch_work_free(&w, b);
		dmf_fold_in(&x, f, dmf_model_side(m, !st->user_side)->anchors, m->dim,
					m->fold_in_steps, m->fold_in_rate, 0.0, m->scale.working_max);
	}
	dmf_csr_free(&x);
	dmf_check_factors_finite(f, m->dim, st->user_side ? "user" : "item");
	MemoryContextSwitchTo(caller);
	result = dmf_factor_is_zero(f, m->dim) ? NULL : dmf_factor_array(f, m->dim);
	dmf_budget_end(budget);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(result);
}
