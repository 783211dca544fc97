/*
 * dmf.h
 *	  What the server layer's files share: settings, the model values dmf
 *	  returns, and helpers of the SQL-callable functions.
 */
#ifndef DMF_H
#define DMF_H

#include "postgres.h"

#include "fmgr.h"

/* DMF_VERSION comes from dmf.control, through the Makefile */
#ifndef DMF_VERSION
#error "DMF_VERSION is not defined: build with the Makefile"
#endif

struct ArrayType;
struct DmfModel;
struct DmfSide;
struct StringInfoData;

/* ---- module.c: settings ---- */

/*
 * dmf.max_memory in bytes, the cap of a training or refresh; ERROR if the
 * value the user set was rejected (set before the library was loaded).
 */
extern uint64 dmf_max_memory_bytes(void);

/* "10 MB": a size for messages */
extern char *dmf_pretty_bytes(uint64 bytes);
/* The same rounded up: a setting that a hint suggests must be enough */
extern char *dmf_pretty_bytes_setting(uint64 bytes);

/*
 * Threads for a training: the option's number, or every core for 0, at most
 * dmf.max_threads.
 */
extern int	dmf_resolve_threads(int threads);

/*
 * ERROR naming the first of the call's arguments 0..n-1 that is NULL
 * (names: the SQL names of the arguments; a NULL name: may be NULL).
 */
extern void dmf_require_args(FunctionCallInfo fcinfo, const char *function,
							 const char *const *names, int n);

/* Argument argno as k, how many rows to return; ERROR if negative. */
extern int32 dmf_k_arg(FunctionCallInfo fcinfo, int argno, const char *what);

/*
 * The positions on side of the ids in a bigint[] argument, ascending and
 * distinct; NULLs and ids the model does not know are skipped.
 */
extern int32 *dmf_id_array_positions(struct ArrayType *a, const struct DmfSide *side,
									 const char *argument, int32 *n_out);

extern int	dmf_cmp_int32(const void *a, const void *b);
extern int	dmf_cmp_int64(const void *a, const void *b);

/*
 * ERROR (feature not supported) unless the model records the items each
 * user rated (builds before 0.2.0 did not): why says what needs them.
 */
extern void dmf_require_rated_items(const struct DmfModel *m, const char *why,
									const char *hint);

/*
 * The rating_column argument: NULL, only with implicit feedback, means
 * every row is one interaction; otherwise NULL is an ERROR.
 */
extern const char *dmf_rating_column_arg(FunctionCallInfo fcinfo, int argno,
										 const char *function, bool implicit);

/* ---- model_bytes.c: the model values dmf returns ---- */

/*
 * The model's bytes as a bytea in result_cxt; ERROR if too large for one,
 * or if they would not decode (dmf never returns a model it cannot read).
 */
extern bytea *dmf_model_to_bytea(const struct DmfModel *m, MemoryContext result_cxt);

/* A new random 128-bit model id. */
extern void dmf_new_model_id(uint8 *id);

/* Appends a JSON number, or null for NaN and infinities. */
extern void dmf_append_json_number(struct StringInfoData *out, double v);

/* Appends the current time as a quoted ISO 8601 UTC string (JSON). */
extern void dmf_append_utc_now(struct StringInfoData *out);

/* ERROR (data corrupted) if a branch gave factors that are not finite. */
extern void dmf_check_factors_finite(const float *f, size_t n, const char *side);

/* ---- predict_sql.c ---- */

/* A continuous prediction through the model's quantizer (ERROR if none). */
extern double dmf_model_quantize(const struct DmfModel *m, double rating);

/* A factor as a real[] value. */
extern struct ArrayType *dmf_factor_array(const float *f, int dim);

/*
 * A real[] argument as a factor of the model; ERROR unless it is 1-D,
 * NULL-free and of dim elements (which: "user" or "item"; other_len: the
 * size of the other factor, for the message).
 */
extern const float *dmf_factor_arg(struct ArrayType *a, const char *which,
								   int other_len, int dim);

/* ---- recommend.c: the ranking the serving functions share ---- */

/*
 * Rows of one side's factors to rank against a factor u: every row, or
 * only the positions only[0..n_only) (ascending); either way leaving out
 * exclude[0..n_exclude) (ascending) and rows without a factor.
 */
typedef struct DmfRanking
{
	const float *factors;		/* n x dim */
	int32		n;
	int			dim;
	bool		unit_rows;		/* rows are unit vectors (float32 storage) */
	const int32 *exclude;
	int64		n_exclude;
	const int32 *only;			/* NULL: every row */
	int32		n_only;
} DmfRanking;

/* How many rows a ranking ranks at most: top needs room for min(k, this). */
static inline int32
dmf_ranking_rows(const DmfRanking *r)
{
	return r->only ? r->n_only : r->n;
}

/* A ranking of every row of one side of the model, nothing excluded. */
extern DmfRanking dmf_ranking_of(const struct DmfModel *m, bool user_side);

/*
 * The positions of the best k rows by cosine with u, best first, ties to
 * the lower position (= id), into top[0..min(k, dmf_ranking_rows)); returns
 * their count.  The order is that of the cosine in double dmf_predict
 * computes: every row takes one sgemv and the exact cosine of the rows near
 * the k-th; given rows, the exact cosine of each.
 */
extern int32 dmf_top_k(const DmfRanking *r, const float *u, int32 k, int32 *top);

/* dmf_recommend's ranking of the items for the unit factor u. */
extern int32 dmf_top_k_items(const struct DmfModel *m, const float *u, int32 k,
							 const int32 *exclude, int64 n_exclude, int32 *top);

/* ---- popularity.c ---- */

/*
 * The k items (among only[0..n_only) if only is not NULL, without
 * exclude[0..n_exclude), both ascending) most users of the model have in
 * their row, into the caller's tuplestore as (item_id, users), or
 * (item_id, NULL) without with_users.
 */
extern void dmf_emit_popular_items(FunctionCallInfo fcinfo, const struct DmfModel *m,
								   int32 k, const int32 *only, int32 n_only,
								   const int32 *exclude, int64 n_exclude,
								   bool with_users);

#endif
