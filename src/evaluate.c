/*
 * evaluate.c
 *	  dmf_evaluate: how well a model predicts a held-out ratings relation,
 *	  in one call.
 *
 * The relation is streamed in batches (memory does not grow with it) and
 * read with the caller's privileges.  Errors are over the rows the model
 * can predict (both ids have a factor): "covered" says how many that is.
 * Errors may be of any size a double holds (ratings near 1e-300 or 1e300):
 * squares are summed as scale^2 * ssq, as the BLAS's nrm2 does, and the
 * absolute errors as a running mean, so neither underflows nor overflows.
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
#include "score.h"
#include "ratings_reader.h"

/* sqrt(sum of x^2 / n) of the values added, without forming x^2 */
typedef struct RootMeanSquare
{
	double		scale;			/* the largest |x| so far */
	double		ssq;			/* sum of (x / scale)^2 */
} RootMeanSquare;

static void
rms_add(RootMeanSquare *r, double x)
{
	double		a = fabs(x);

	if (a == 0.0)
		return;
	if (a > r->scale)
	{
		r->ssq = 1.0 + r->ssq * (r->scale / a) * (r->scale / a);
		r->scale = a;
	}
	else
		r->ssq += (a / r->scale) * (a / r->scale);
}

static double
rms_value(const RootMeanSquare *r, int64 n)
{
	return r->scale * sqrt(r->ssq / n);
}

typedef struct EvalSums
{
	const DmfModel *m;
	bool		discrete;		/* the model has rating levels */
	int64		n;
	int64		covered;
	int64		skipped_nulls;
	RootMeanSquare sq;
	double		abs;			/* running means of |error| */
	RootMeanSquare sq_discrete;
	double		abs_discrete;
} EvalSums;

static bool
add_rows(void *arg, const int64 *user, const int64 *item, const double *rating,
		 int n, int skipped_nulls)
{
	EvalSums   *s = arg;

	s->skipped_nulls += skipped_nulls;
	s->n += n;
	for (int k = 0; k < n; k++)
	{
		double		p,
					e;

		if (!dmf_predict_ids(s->m, user[k], item[k], &p))
			continue;
		s->covered++;
		e = p - rating[k];
		rms_add(&s->sq, e);
		s->abs += (fabs(e) - s->abs) / s->covered;
		if (s->discrete)
		{
			e = dmf_model_quantize(s->m, p) - rating[k];
			rms_add(&s->sq_discrete, e);
			s->abs_discrete += (fabs(e) - s->abs_discrete) / s->covered;
		}
	}
	return true;
}

PG_FUNCTION_INFO_V1(dmf_evaluate);
Datum
dmf_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old = CurrentMemoryContext;
	DmfMemoryBudget *budget;
	DmfRatingColumns cols;
	EvalSums	s;
	Datum		values[6];
	bool		nulls[6] = {false, false, true, true, true, true};
	static const char *const args[] = {
		"model", "ratings", "user_column", "item_column", "rating_column"
	};

	InitMaterializedSRF(fcinfo, 0);
	dmf_require_args(fcinfo, "dmf_evaluate", args, lengthof(args));

	memset(&s, 0, sizeof(s));
	s.m = dmf_model_arg(fcinfo, 0);
	/* the model is the cache's; rows are streamed: little grows here */
	budget = dmf_budget_begin("dmf_evaluate", "dmf_evaluate");
	/* the relation may be a view that calls dmf functions: keep the model */
	dmf_model_pin(dmf_model_ref(s.m), dmf_budget_context(budget));
	s.discrete = s.m->n_levels >= 2;
	if (s.m->flags & DMF_FLAG_IMPLICIT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("dmf_evaluate measures rating errors, and this dmf model was trained on implicit feedback"),
				 errhint("Measure its ranking with dmf_evaluate_ranking.")));

	cols.relid = PG_GETARG_OID(1);
	cols.user_column = NameStr(*PG_GETARG_NAME(2));
	cols.item_column = NameStr(*PG_GETARG_NAME(3));
	cols.rating_column = NameStr(*PG_GETARG_NAME(4));
	dmf_scan_ratings(&cols, add_rows, &s, 0);
	dmf_report_skipped_nulls(s.skipped_nulls, dmf_relation_name(cols.relid));

	values[0] = Int64GetDatum(s.n);
	values[1] = Int64GetDatum(s.covered);
	if (s.covered > 0)
	{
		values[2] = Float8GetDatum(rms_value(&s.sq, s.covered));
		values[3] = Float8GetDatum(s.abs);
		nulls[2] = nulls[3] = false;
		if (s.discrete)
		{
			values[4] = Float8GetDatum(rms_value(&s.sq_discrete, s.covered));
			values[5] = Float8GetDatum(s.abs_discrete);
			nulls[4] = nulls[5] = false;
		}
	}
	MemoryContextSwitchTo(old);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	dmf_budget_end(budget);
	PG_RETURN_NULL();
}
