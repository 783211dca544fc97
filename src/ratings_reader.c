/*
 * ratings_reader.c
 *	  One pass over a ratings relation through a SPI cursor.
 *
 * The query is built from the relation's OID and the column names, every
 * identifier quoted, and runs with the caller's privileges: a table the
 * caller cannot read fails with the usual permission error.  Its casts name
 * their types with their schema: an unqualified type name is looked up in
 * pg_temp first, where another role's domain (with a CHECK that runs that
 * role's code under our caller's identity) could stand in for int8.  What
 * the cursor returns is checked to be int8, int8, float8 before any Datum
 * is read as one.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "dmf.h"
#include "memory_budget.h"
#include "prepare.h"
#include "progress.h"
#include "ratings_reader.h"

#define FETCH_ROWS DMF_SCAN_BATCH_ROWS
#define RAW_ROW_BYTES DMF_RAW_ROW_BYTES

char *
dmf_relation_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);
	char	   *nsp;

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	nsp = get_namespace_name(get_rel_namespace(relid));
	return quote_qualified_identifier(nsp, rel);
}

static void scan_ratings(const DmfRatingColumns *cols, DmfRatingSink sink,
						 void *arg, int batch_rows, bool by_user,
						 const int64 *only_user);

/* Checks that the column exists and has one of the accepted types. */
static void
check_column(Oid relid, const char *column, const char *role, bool numeric_ok)
{
	AttrNumber	att = get_attnum(relid, column);
	Oid			type;

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" does not exist in relation %s",
						column, dmf_relation_name(relid)),
				 errhint("Name the %s column with the %s_column argument.",
						 role, role)));
	type = getBaseType(get_atttype(relid, att));
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return;
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			if (numeric_ok)
				return;
			break;
		default:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("%s column \"%s\" has type %s", role, column,
					format_type_be(get_atttype(relid, att))),
			 numeric_ok ?
			 errhint("Ratings must be of a numeric type (smallint, integer, bigint, real, double precision or numeric).") :
			 errhint("Ids must be of an integer type (smallint, integer or bigint); map other keys to integers in a view.")));
}

/* ERROR unless the cursor's columns are what the query asked for. */
static void
check_result_types(TupleDesc desc, const char *relname)
{
	static const Oid expected[3] = {INT8OID, INT8OID, FLOAT8OID};

	if (desc->natts != 3)
		elog(ERROR, "reading %s returned %d columns, not 3", relname, desc->natts);
	for (int c = 0; c < 3; c++)
		if (SPI_gettypeid(desc, c + 1) != expected[c])
			elog(ERROR, "reading %s returned column %d of type %s, not %s",
				 relname, c + 1, format_type_be(SPI_gettypeid(desc, c + 1)),
				 format_type_be(expected[c]));
}

void
dmf_scan_ratings(const DmfRatingColumns *cols, DmfRatingSink sink, void *arg,
				 int batch_rows)
{
	scan_ratings(cols, sink, arg, batch_rows, false, NULL);
}

void
dmf_scan_ratings_by_user(const DmfRatingColumns *cols, DmfRatingSink sink, void *arg,
						 int batch_rows)
{
	scan_ratings(cols, sink, arg, batch_rows, true, NULL);
}

void
dmf_scan_user_ratings(const DmfRatingColumns *cols, int64 user_id, DmfRatingSink sink,
					  void *arg)
{
	scan_ratings(cols, sink, arg, 0, false, &user_id);
}

static void
scan_ratings(const DmfRatingColumns *cols, DmfRatingSink sink, void *arg,
			 int batch_rows, bool by_user, const int64 *only_user)
{
	StringInfoData sql;
	SPIPlanPtr	plan;
	Portal		portal;
	char	   *relname = dmf_relation_name(cols->relid);
	int			fetch = batch_rows > 0 ? Min(batch_rows, FETCH_ROWS) : FETCH_ROWS;
	int64	   *user;
	int64	   *item;
	double	   *rating;
	Oid			user_param_type = INT8OID;
	Datum		user_param = only_user ? Int64GetDatum(*only_user) : (Datum) 0;

	/* under a small dmf.max_memory, small batches: a quarter of what is left */
	fetch = (int) Min(fetch, Max(1024, dmf_budget_room(RAW_ROW_BYTES) / 4));
	user = dmf_budget_alloc(sizeof(int64) * fetch, 0);
	item = dmf_budget_alloc(sizeof(int64) * fetch, 0);
	rating = dmf_budget_alloc(sizeof(double) * fetch, 0);

	check_column(cols->relid, cols->user_column, "user", false);
	check_column(cols->relid, cols->item_column, "item", false);
	if (cols->rating_column)
		check_column(cols->relid, cols->rating_column, "rating", true);

	/* without a rating column (implicit feedback) every row weighs 1 */
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s::pg_catalog.int8, %s::pg_catalog.int8, %s::pg_catalog.float8 FROM %s",
					 quote_identifier(cols->user_column),
					 quote_identifier(cols->item_column),
					 cols->rating_column ? quote_identifier(cols->rating_column) : "1",
					 relname);
	/* the column itself is compared, so that an index on it serves */
	if (only_user)
		appendStringInfo(&sql, " WHERE %s OPERATOR(pg_catalog.=) $1",
						 quote_identifier(cols->user_column));
	if (by_user)
		appendStringInfoString(&sql, " ORDER BY 1");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql.data, only_user ? 1 : 0, &user_param_type);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, only_user ? &user_param : NULL, NULL, true);

	for (;;)
	{
		SPITupleTable *tt;
		uint64		got;
		int			n = 0,
					nulls = 0;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, fetch);
		got = SPI_processed;
		tt = SPI_tuptable;
		if (got == 0)
			break;
		check_result_types(tt->tupdesc, relname);

		for (uint64 r = 0; r < got; r++)
		{
			HeapTuple	tup = tt->vals[r];
			bool		nu,
						ni,
						nr;
			Datum		u = SPI_getbinval(tup, tt->tupdesc, 1, &nu);
			Datum		i = SPI_getbinval(tup, tt->tupdesc, 2, &ni);
			Datum		x = SPI_getbinval(tup, tt->tupdesc, 3, &nr);
			double		v;

			if (nu || ni || nr)
			{
				nulls++;
				continue;
			}
			v = DatumGetFloat8(x);
			if (!isfinite(v))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("rating column \"%s\" of %s holds %s",
								cols->rating_column, relname,
								isnan(v) ? "NaN" : "an infinite value"),
						 errdetail("User " INT64_FORMAT ", item " INT64_FORMAT ".",
								   DatumGetInt64(u), DatumGetInt64(i)),
						 errhint("Filter such rows out with a view.")));
			user[n] = DatumGetInt64(u);
			item[n] = DatumGetInt64(i);
			rating[n] = v;
			n++;
		}
		SPI_freetuptable(tt);
		if (!sink(arg, user, item, rating, n, nulls))
			break;
	}
	SPI_cursor_close(portal);
	SPI_finish();
	pfree(sql.data);
	pfree(user);
	pfree(item);
	pfree(rating);
}

typedef struct CollectState
{
	DmfRawRatings *out;
	int64		cap;
	const DmfReadBudget *budget;
	const char *relname;
	int64		not_held;		/* rows of the batch the budget could not hold */
	MemoryContext cxt;			/* where the rows are held (not SPI's) */
} CollectState;

/*
 * Room for n rows more, within the budget: the arrays double, or grow to
 * what fits, or not at all (false).
 */
static bool
grow_rows(CollectState *st, int n)
{
	DmfRawRatings *out = st->out;
	int64		want = out->n + n;
	int64		cap = st->cap;

	if (want <= cap)
		return true;

	/*
	 * Hold no more rows than the whole work could take with the fewest
	 * users and items: past that, the refusal names what it needs.
	 */
	if (st->budget->need(st->budget->need_arg, want, 1, 1) > dmf_budget_cap_now())
		return false;
	cap = dmf_budget_grow_capacity(st->cap, want, RAW_ROW_BYTES, 3);
	if (cap < want)
		return false;
	out->user = dmf_budget_realloc(out->user, sizeof(int64) * st->cap, sizeof(int64) * cap);
	out->item = dmf_budget_realloc(out->item, sizeof(int64) * st->cap, sizeof(int64) * cap);
	out->rating = dmf_budget_realloc(out->rating, sizeof(double) * st->cap, sizeof(double) * cap);
	st->cap = cap;
	return true;
}

static bool
collect_rows(void *arg, const int64 *user, const int64 *item,
			 const double *rating, int n, int skipped_nulls)
{
	CollectState *st = arg;
	DmfRawRatings *out = st->out;
	MemoryContext spi = MemoryContextSwitchTo(st->cxt);

	out->skipped_nulls += skipped_nulls;
	if (!grow_rows(st, n))
		st->not_held = n;		/* over the cap: the server counts the rest */
	else
	{
		memcpy(out->user + out->n, user, sizeof(int64) * n);
		memcpy(out->item + out->n, item, sizeof(int64) * n);
		memcpy(out->rating + out->n, rating, sizeof(double) * n);
		out->n += n;
		dmf_progress_rows_read(n);
	}
	MemoryContextSwitchTo(spi);
	return st->not_held == 0;
}

void
dmf_count_ratings(const DmfRatingColumns *cols, int64 *rows, int64 *users, int64 *items)
{
	StringInfoData sql;
	const char *u = quote_identifier(cols->user_column);
	const char *i = quote_identifier(cols->item_column);
	bool		isnull;
	int64	   *out[3] = {rows, users, items};

	check_column(cols->relid, cols->user_column, "user", false);
	check_column(cols->relid, cols->item_column, "item", false);
	if (cols->rating_column)
		check_column(cols->relid, cols->rating_column, "rating", true);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.count(*), pg_catalog.count(DISTINCT %s::pg_catalog.int8), "
					 "pg_catalog.count(DISTINCT %s::pg_catalog.int8) FROM %s WHERE %s IS NOT NULL AND %s IS NOT NULL",
					 u, i, dmf_relation_name(cols->relid), u, i);
	if (cols->rating_column)
		appendStringInfo(&sql, " AND %s IS NOT NULL", quote_identifier(cols->rating_column));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT || SPI_processed != 1 ||
		SPI_tuptable->tupdesc->natts != 3)
		elog(ERROR, "could not count the rows of %s", dmf_relation_name(cols->relid));
	for (int c = 0; c < 3; c++)
	{
		if (SPI_gettypeid(SPI_tuptable->tupdesc, c + 1) != INT8OID)
			elog(ERROR, "counting the rows of %s returned a column of type %s, not bigint",
				 dmf_relation_name(cols->relid),
				 format_type_be(SPI_gettypeid(SPI_tuptable->tupdesc, c + 1)));
		*out[c] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											  c + 1, &isnull));
	}
	SPI_finish();
}

/*
 * ERROR: the relation's rows do not fit.  The hint names what the whole
 * work would need for the relation's rows, users and items, on top of what
 * the budget held before the rows.
 */
static void
refuse_rows(CollectState *st, const DmfRatingColumns *cols)
{
	const DmfReadBudget *b = st->budget;
	int64		rows,
				users,
				items;
	uint64		need;

	dmf_count_ratings(cols, &rows, &users, &items);
	rows = Max(rows, st->out->n + st->not_held);
	need = DMF_SCAN_BATCH_BYTES + b->need(b->need_arg, rows, Max(users, 1), Max(items, 1));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s would need more than dmf.max_memory (%s)",
					b->operation, dmf_pretty_bytes(dmf_budget_cap_now())),
			 errdetail("%s has " INT64_FORMAT " ratings of " INT64_FORMAT " users and " INT64_FORMAT " items; " INT64_FORMAT " of them fit.",
					   st->relname, rows, users, items, st->out->n),
			 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
					 dmf_pretty_bytes_setting(need))));
}

void
dmf_read_ratings(const DmfRatingColumns *cols, DmfRawRatings *out,
				 const DmfReadBudget *budget)
{
	CollectState st;

	Assert(budget != NULL && budget->need != NULL);
	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	st.out = out;
	st.cap = 1;
	st.budget = budget;
	st.relname = dmf_relation_name(cols->relid);
	st.cxt = CurrentMemoryContext;
	out->user = palloc(sizeof(int64) * st.cap);
	out->item = palloc(sizeof(int64) * st.cap);
	out->rating = palloc(sizeof(double) * st.cap);
	dmf_scan_ratings(cols, collect_rows, &st, 0);
	if (st.not_held > 0)
		refuse_rows(&st, cols);
	/* give back what the last growth took beyond the rows */
	if (st.cap > out->n + 1024)
	{
		out->user = repalloc_huge(out->user, sizeof(int64) * Max(out->n, 1));
		out->item = repalloc_huge(out->item, sizeof(int64) * Max(out->n, 1));
		out->rating = repalloc_huge(out->rating, sizeof(double) * Max(out->n, 1));
	}
}

int32
dmf_distinct_ids(const int64 *ids, int64 n, int64 **out)
{
	int64		m = dmf_sorted_distinct(ids, n, out);

	if (m > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct ids: " INT64_FORMAT, m)));
	/* the distinct ids only: a table's users are often far fewer than its rows */
	*out = repalloc_huge(*out, sizeof(int64) * Max(m, 1));
	return (int32) m;
}

/* ---- the problems of a ratings relation, reported one way ---- */

void
dmf_report_skipped_nulls(int64 skipped, const char *relname)
{
	if (skipped > 0)
		ereport(NOTICE,
				(errmsg("skipped " INT64_FORMAT " rows of %s with a NULL user, item or rating",
						skipped, relname)));
}

void
dmf_check_rating_range(const DmfRawRatings *r, const DmfRatingColumns *cols,
					   const char *relname, double lo, double hi,
					   const char *range_name, const char *hint)
{
	for (int64 k = 0; k < r->n; k++)
		if (r->rating[k] < lo || r->rating[k] > hi)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("rating column \"%s\" of %s holds %g, outside %s[%g, %g]",
							cols->rating_column, relname, r->rating[k], range_name, lo, hi),
					 errdetail("User " INT64_FORMAT ", item " INT64_FORMAT ".",
							   r->user[k], r->item[k]),
					 errhint("%s", hint)));
}

void
dmf_check_weights(const DmfRawRatings *r, const DmfRatingColumns *cols,
				  const char *relname)
{
	for (int64 k = 0; k < r->n; k++)
		if (!(r->rating[k] > 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("weight column \"%s\" of %s holds %g, and implicit feedback needs weights above 0",
							cols->rating_column, relname, r->rating[k]),
					 errdetail("User " INT64_FORMAT ", item " INT64_FORMAT ".",
							   r->user[k], r->item[k]),
					 errhint("Filter such rows out with a view, or pass NULL as rating_column to count every row as one interaction.")));
}

void
dmf_report_duplicates(const DmfRatingColumns *cols, const char *relname,
					  int64 n_duplicates, int64 user, int64 item, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_CARDINALITY_VIOLATION),
			 errmsg("relation %s has " INT64_FORMAT " duplicate (%s, %s) pairs",
					relname, n_duplicates, cols->user_column, cols->item_column),
			 errdetail("User " INT64_FORMAT " rated item " INT64_FORMAT " more than once.",
					   user, item),
			 errhint("%s", hint)));
}
