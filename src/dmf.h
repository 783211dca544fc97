/*
 * dmf.h
 *	  Settings and constants shared by the SQL-callable parts of dmf.
 */
#ifndef DMF_H
#define DMF_H

#define DMF_VERSION "0.1.0"

extern int	dmf_max_memory_kb;

struct DmfModel;
struct StringInfoData;

/* A continuous prediction through the model's quantizer (ERROR if none). */
extern double dmf_model_quantize(const struct DmfModel *m, double rating);

/* Appends the current time as a quoted ISO 8601 UTC string (JSON). */
extern void dmf_append_utc_now(struct StringInfoData *out);

/* Prediction on the rating scale from two factors; false if either is zero. */
extern bool dmf_score_factors(const struct DmfModel *m, const float *u,
							  const float *v, double *rating);

#endif
