/*
 * options.h
 *	  The options of dmf_train (a jsonb object): defaults, validation, and
 *	  their echo into the model's metadata.  One place for every option.
 */
#ifndef DMF_OPTIONS_H
#define DMF_OPTIONS_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "train.h"

/* How a model stores its weights and factors (the "storage" option). */
typedef enum DmfStorage
{
	DMF_STORAGE_AUTO = 0,		/* float32 if the model fits a bytea, else bfloat16 */
	DMF_STORAGE_FLOAT32,
	DMF_STORAGE_BFLOAT16
} DmfStorage;

typedef struct DmfOptions
{
	DmfTrainConfig train;		/* what the numeric core needs */
	char	   *validation;		/* relation name for early stopping, or NULL */
	double		validation_fraction;
	int			threads;
	double		time_limit;		/* seconds from the call, 0: none */
	int			storage;		/* DmfStorage */
	bool		verbose;
	bool		rating_min_set;
	bool		rating_max_set;
	int			n_levels;		/* levels given as an option, else 0 */
	double	   *levels;
} DmfOptions;

/* the names of the values of some choice options, by their numeric value */
extern const char *const dmf_input_encoding_names[2];
extern const char *const dmf_row_scale_names[3];
extern const char *const dmf_feedback_names[2];

/*
 * Fills opts from the defaults and the given object; ERROR on a bad option.
 * warm_start: dmf_train has an init model, whose stopping rule is shorter.
 */
void		dmf_parse_options(Jsonb *json, bool warm_start, DmfOptions *opts);

/* Resolves batch_size 0 (automatic) for n_train training ratings. */
void		dmf_resolve_batch_size(DmfTrainConfig *c, int64 n_train);

/*
 * The value of a numeric that is an integer exactly and fits int64 (a
 * fraction of zeros, as in 64.0, is allowed); false otherwise.
 */
bool		dmf_numeric_to_int64(Numeric num, int64 *out);

/* Appends the resolved options as a JSON object. */
void		dmf_options_to_json(const DmfOptions *opts, StringInfo out);

#endif
