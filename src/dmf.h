/*
 * dmf.h
 *	  Settings and constants shared by the SQL-callable parts of dmf.
 */
#ifndef DMF_H
#define DMF_H

#define DMF_VERSION "0.2.1"

extern int	dmf_max_memory_kb;

/*
 * dmf.max_memory in bytes, the cap of a training or refresh; ERROR if the
 * value the user set was rejected (set before the library was loaded).
 */
extern uint64 dmf_max_memory_bytes(void);

struct ArrayType;
struct DmfModel;
struct StringInfoData;

/* A continuous prediction through the model's quantizer (ERROR if none). */
extern double dmf_model_quantize(const struct DmfModel *m, double rating);

/*
 * The model's bytes as a bytea in result_cxt; ERROR if too large for one,
 * or if they would not decode (dmf never returns a model it cannot read).
 */
extern bytea *dmf_model_to_bytea(const struct DmfModel *m, MemoryContext result_cxt);

/* Appends the current time as a quoted ISO 8601 UTC string (JSON). */
extern void dmf_append_utc_now(struct StringInfoData *out);

/* Threads for a training: the option's number, or all cores (at most 64) for 0. */
extern int	dmf_resolve_threads(int threads);

/* Prediction on the rating scale from two factors; false if either is zero. */
extern bool dmf_score_factors(const struct DmfModel *m, const float *u,
							  const float *v, double *rating);

/* True if the factor is all zeros: the model has no factor for it. */
extern bool dmf_factor_is_zero(const float *f, int dim);

/* The prediction for two ids; false if the model has no factor for either. */
extern bool dmf_predict_ids(const struct DmfModel *m, int64 user_id,
							int64 item_id, double *rating);

/*
 * A real[] argument as a factor of the model; ERROR unless it is 1-D,
 * NULL-free and of dim elements (which: "user" or "item"; other_len: the
 * size of the other factor, for the message).
 */
extern const float *dmf_factor_arg(struct ArrayType *a, const char *which,
								   int other_len, int dim);

#endif
