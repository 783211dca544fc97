/*
 * model_bytes.c
 *	  The model values dmf returns, made one way: a fresh random id,
 *	  metadata pieces (JSON numbers, timestamps), the size check, and a
 *	  decode of the bytes before they are handed out.
 */
#include "postgres.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dmf.h"
#include "memory_budget.h"
#include "model_format.h"
#include "score.h"

/* A JSON number, or null for NaN/infinity (which JSON cannot hold). */
void
dmf_append_json_number(StringInfo out, double v)
{
	if (isfinite(v))
		appendStringInfoString(out, float8out_internal(v));
	else
		appendStringInfoString(out, "null");
}

void
dmf_append_utc_now(StringInfo out)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(GetCurrentTimestamp(), NULL, &tm, &fsec, NULL, NULL) == 0)
		appendStringInfo(out, "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"",
						 tm.tm_year, tm.tm_mon, tm.tm_mday,
						 tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		appendStringInfoString(out, "null");
}

void
dmf_new_model_id(uint8 *id)
{
	if (!pg_strong_random(id, 16))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random model id")));
}

bytea *
dmf_model_to_bytea(const DmfModel *m, MemoryContext result_cxt)
{
	uint64		size = dmf_model_encoded_size(m);
	uint8	   *aligned;
	DmfModel	check;
	char		detail[256];
	bytea	   *out;

	if (size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the model would be %s, more than the 1 GB a bytea can hold",
						dmf_pretty_bytes(size)),
				 (m->flags & DMF_FLAG_BFLOAT16) ?
				 errhint("Use narrower \"layers\" or a smaller \"dim\".") :
				 errhint("Train with \"storage\": \"bfloat16\" (half the size), or use narrower \"layers\" or a smaller \"dim\".")));
	/* the decoder reads 8-byte aligned bytes; a varlena's data is not */
	aligned = dmf_budget_alloc(size, 0);
	dmf_model_encode(m, aligned, size);

	/* never hand out a model that dmf itself would refuse to read */
	if (dmf_model_decode(aligned, size, &check, detail, sizeof(detail)) != DMF_DECODE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the new dmf model is not valid"),
				 errdetail("%s", detail),
				 errhint("The weights it came from may be corrupt or diverged: retrain the model.")));
	if (check.widened != NULL)
		pfree(check.widened);

	/* the result lives in the caller's context, but while aligned does too */
	dmf_budget_charge(VARHDRSZ + size);
	out = MemoryContextAllocExtended(result_cxt, VARHDRSZ + size, MCXT_ALLOC_HUGE);
	SET_VARSIZE(out, VARHDRSZ + size);
	memcpy(VARDATA(out), aligned, size);
	pfree(aligned);
	return out;
}

/* ERROR if a branch gave a factor that is not a finite number. */
void
dmf_check_factors_finite(const float *f, size_t n, const char *side)
{
	if (!dmf_all_finite(f, n))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the model's %s branch gives factors that are not finite numbers", side),
				 errdetail("Its weights are too large for the ratings given: the model is corrupt or its training diverged."),
				 errhint("Retrain the model.")));
}
