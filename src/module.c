/*
 * module.c
 *	  The dmf library: module magic, settings (and the shared memory of
 *	  progress.c when preloaded), the thread count of a
 *	  training or refresh, and small helpers of the SQL functions (the check
 *	  of their arguments, sizes in messages).
 */
#include "postgres.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "model_format.h"
#include "progress.h"

PG_MODULE_MAGIC;

/* dmf.max_memory, in kB: the most a training or refresh may allocate */
static int	dmf_max_memory_kb = 1024 * 1024;
#define MAX_MEMORY_MIN_KB 1024

/*
 * A value of dmf.max_memory set before this library was loaded (SET in a
 * session that had not called dmf yet) is only checked when the library
 * defines the setting.  PostgreSQL then rejects a bad one with a WARNING and
 * keeps the default: a cap the user did not ask for.  The rejected text is
 * kept here, and training refuses to run while the setting still has its
 * default, that is until a valid value is set (a SET LOCAL only for its
 * transaction).
 */
static char *max_memory_rejected = NULL;

/* dmf.max_threads: the most threads one training uses */
static int	dmf_max_threads = 8;
#define MAX_THREADS_LIMIT 64

/* the columns of pg_settings that GetConfigOptionByNum fills; 8 is "source" */
#define PG_SETTINGS_COLUMNS 17

/* Whether dmf.max_memory has its built-in default (pg_settings' source). */
static bool
max_memory_is_default(void)
{
	const char *values[PG_SETTINGS_COLUMNS];
	bool		noshow;
	int			n = GetNumConfigOptions();

	for (int k = 0; k < n; k++)
	{
		GetConfigOptionByNum(k, values, &noshow);
		if (values[0] != NULL && strcmp(values[0], "dmf.max_memory") == 0)
			return values[8] != NULL && strcmp(values[8], "default") == 0;
	}
	return true;
}

void		_PG_init(void);

void
_PG_init(void)
{
	const char *preset = GetConfigOption("dmf.max_memory", true, false);
	char	   *preset_copy = preset ? MemoryContextStrdup(TopMemoryContext, preset) : NULL;

	DefineCustomIntVariable("dmf.max_memory",
							"Largest amount of memory one dmf_train or dmf_refresh call may use.",
							"Checked as the ratings are read and again before training allocates.",
							&dmf_max_memory_kb,
							1024 * 1024,
							MAX_MEMORY_MIN_KB,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dmf.max_threads",
							"Most threads one dmf_train call uses.",
							"Caps the option \"threads\", and its default (0: every core).",
							&dmf_max_threads,
							8,
							1,
							MAX_THREADS_LIMIT,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("dmf.log_progress",
							 "Logs each epoch of dmf_train at LOG level.",
							 "For trainings that nobody watches, e.g. run by pg_cron; the view dmf_progress shows the running ones.",
							 &dmf_log_progress,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	if (process_shared_preload_libraries_in_progress)
		dmf_progress_preload();
	if (preset_copy != NULL)
	{
		int			kb;

		if (!parse_int(preset_copy, &kb, GUC_UNIT_KB, NULL) || kb < MAX_MEMORY_MIN_KB)
			max_memory_rejected = preset_copy;
	}
	MarkGUCPrefixReserved("dmf");
}

uint64
dmf_max_memory_bytes(void)
{
	if (max_memory_rejected != NULL && max_memory_is_default())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dmf.max_memory was set to \"%s\" before dmf was loaded, which is not a valid value",
						max_memory_rejected),
				 errdetail("PostgreSQL ignored the value and kept the default of 1GB."),
				 errhint("Set dmf.max_memory again, to at least 1MB (e.g. SET dmf.max_memory = '2GB').")));
	return (uint64) dmf_max_memory_kb * 1024;
}

int
dmf_resolve_threads(int threads)
{
	long		cores = sysconf(_SC_NPROCESSORS_ONLN);

	if (threads <= 0)
		threads = cores > 0 ? (int) Min(cores, MAX_THREADS_LIMIT) : 1;
	return Min(threads, dmf_max_threads);
}

void
dmf_require_args(FunctionCallInfo fcinfo, const char *function,
				 const char *const *names, int n)
{
	for (int a = 0; a < n; a++)
		if (names[a] != NULL && PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" of %s must not be NULL", names[a], function),
					 strcmp(names[a], "options") == 0 ?
					 errhint("Pass '{}' for the defaults.") : 0));
}

const char *
dmf_rating_column_arg(FunctionCallInfo fcinfo, int argno, const char *function,
					  bool implicit)
{
	if (!PG_ARGISNULL(argno))
		return NameStr(*PG_GETARG_NAME(argno));
	if (!implicit)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"rating_column\" of %s must not be NULL", function),
				 errdetail("Only implicit feedback has rows without a rating."),
				 errhint("Name the rating column, or train on interactions with the option \"feedback\": \"implicit\".")));
	return NULL;
}

char *
dmf_pretty_bytes_setting(uint64 bytes)
{
	uint64		unit = bytes >= (uint64) 10 * 1024 * 1024 * 1024 ? (uint64) 1 << 30 :
		bytes >= (uint64) 10 * 1024 * 1024 ? (uint64) 1 << 20 : (uint64) 1 << 10;

	return dmf_pretty_bytes((bytes + unit - 1) / unit * unit);
}

char *
dmf_pretty_bytes(uint64 bytes)
{
	if (bytes >= (uint64) 10 * 1024 * 1024 * 1024)
		return psprintf(UINT64_FORMAT " GB", bytes >> 30);
	if (bytes >= (uint64) 10 * 1024 * 1024)
		return psprintf(UINT64_FORMAT " MB", bytes >> 20);
	return psprintf(UINT64_FORMAT " kB", bytes >> 10);
}

int
dmf_cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

int
dmf_cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

int32
dmf_k_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	int32		k = PG_GETARG_INT32(argno);

	if (k < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must not be negative: %d", k),
				 errhint("k is how many %s to return.", what)));
	return k;
}

int32 *
dmf_id_array_positions(ArrayType *a, const DmfSide *side, const char *argument,
					   int32 *n_out)
{
	Datum	   *ids;
	bool	   *nulls;
	int			n;
	int32	   *pos;
	int32		n_pos = 0;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional bigint[]", argument)));
	if (ARR_ELEMTYPE(a) != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be a bigint[]", argument)));
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &ids, &nulls, &n);
	pos = palloc(sizeof(int32) * (n + 1));
	for (int j = 0; j < n; j++)
	{
		int32		p;

		if (nulls[j])
			continue;
		p = dmf_side_find(side, DatumGetInt64(ids[j]));
		if (p >= 0)
			pos[n_pos++] = p;
	}
	qsort(pos, n_pos, sizeof(int32), dmf_cmp_int32);
	/* an id given twice is ranked once */
	if (n_pos > 1)
	{
		int32		kept = 1;

		for (int32 j = 1; j < n_pos; j++)
			if (pos[j] != pos[kept - 1])
				pos[kept++] = pos[j];
		n_pos = kept;
	}
	*n_out = n_pos;
	return pos;
}

void
dmf_require_rated_items(const DmfModel *m, const char *why, const char *hint)
{
	if (m->rated_offsets == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("this dmf model does not record which items its users rated"),
				 errdetail("%s", why),
				 errhint("%s", hint)));
}
