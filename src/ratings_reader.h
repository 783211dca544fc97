/*
 * ratings_reader.h
 *	  Reads (user, item, rating) rows from a table or view with the caller's
 *	  privileges, and maps ids to dense indices.
 */
#ifndef DMF_RATINGS_READER_H
#define DMF_RATINGS_READER_H

#include "postgres.h"

typedef struct DmfRatingColumns
{
	Oid			relid;
	const char *user_column;
	const char *item_column;
	const char *rating_column;	/* NULL: every row is 1 (implicit feedback) */
} DmfRatingColumns;

typedef struct DmfRawRatings
{
	int64		n;
	int64	   *user;
	int64	   *item;
	double	   *rating;
	int64		skipped_nulls;	/* rows with a NULL id or rating */
} DmfRawRatings;

/*
 * Called once per fetched batch with the rows that have no NULL (n of them)
 * and the count of rows skipped for a NULL id or rating.  It runs while
 * connected to SPI: what it pallocs in CurrentMemoryContext dies with the scan.
 * It returns whether the scan goes on: false ends it early.
 */
typedef bool (*DmfRatingSink) (void *arg, const int64 *user, const int64 *item,
							   const double *rating, int n, int skipped_nulls);

/* A rating as read: two ids and the value. */
#define DMF_RAW_ROW_BYTES (2 * sizeof(int64) + sizeof(double))

/* The rows of a scan's batch, and the most its arrays hold. */
#define DMF_SCAN_BATCH_ROWS 50000
#define DMF_SCAN_BATCH_BYTES (DMF_SCAN_BATCH_ROWS * DMF_RAW_ROW_BYTES)

/*
 * Streams every row of the relation to sink, in batches of at most
 * batch_rows rows (0: the default): memory does not grow with the relation.
 * NaN or infinite ratings are an ERROR.
 */
void		dmf_scan_ratings(const DmfRatingColumns *cols, DmfRatingSink sink,
							 void *arg, int batch_rows);

/* The same, the rows in order of user id (sorted by the server). */
void		dmf_scan_ratings_by_user(const DmfRatingColumns *cols, DmfRatingSink sink,
									 void *arg, int batch_rows);

/* The rows of one user (an index on the user column serves the query). */
void		dmf_scan_user_ratings(const DmfRatingColumns *cols, int64 user_id,
								  DmfRatingSink sink, void *arg);

/*
 * Reading under dmf.max_memory (memory_budget.h): the arrays of rows grow
 * only as far as the budget allows, and only while the whole work, for
 * those rows of a single user and item, would fit.  Past that the rest of
 * the relation is only counted, and the ERROR's hint names what the whole
 * work would need: need(need_arg, rows, users, items) for the relation's
 * rows and its distinct users and items (counted by the server).
 */
typedef struct DmfReadBudget
{
	uint64		(*need) (void *need_arg, int64 rows, int64 users, int64 items);
	void	   *need_arg;
	const char *operation;		/* "training", for the message */
} DmfReadBudget;

/*
 * Reads every row of the relation within budget.  Rows with
 * a NULL id or rating are skipped and counted; NaN or infinite ratings are
 * an ERROR.
 */
void		dmf_read_ratings(const DmfRatingColumns *cols, DmfRawRatings *out,
							 const DmfReadBudget *budget);

/*
 * The relation's rows without a NULL and their distinct users and items,
 * counted by the server (its sorts spill to disk under work_mem), with the
 * same privileges and quoting as a scan.
 */
void		dmf_count_ratings(const DmfRatingColumns *cols, int64 *rows,
							  int64 *users, int64 *items);

/* NOTICE of the rows skipped for a NULL user, item or rating (if any). */
void		dmf_report_skipped_nulls(int64 skipped, const char *relname);

/*
 * ERROR at the first rating outside [lo, hi] (range_name: how the message
 * calls the range, e.g. "the model's range ", or "").
 */
void		dmf_check_rating_range(const DmfRawRatings *r, const DmfRatingColumns *cols,
								   const char *relname, double lo, double hi,
								   const char *range_name, const char *hint);

/* Implicit feedback: ERROR at the first weight that is not above 0. */
void		dmf_check_weights(const DmfRawRatings *r, const DmfRatingColumns *cols,
							  const char *relname);

/* ERROR: the relation has n_duplicates (user, item) pairs rated twice. */
void		dmf_report_duplicates(const DmfRatingColumns *cols, const char *relname,
								  int64 n_duplicates, int64 user, int64 item,
								  const char *hint) pg_attribute_noreturn();


/* Sorted distinct values of ids[0..n); their count (ERROR past 2^31 - 1). */
int32		dmf_distinct_ids(const int64 *ids, int64 n, int64 **out);

/* The relation's name, quoted and schema-qualified, for messages and SQL. */
char	   *dmf_relation_name(Oid relid);

#endif
