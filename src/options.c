/*
 * options.c
 *	  Parsing and validation of dmf_train's options.
 */
#include "postgres.h"

#include <errno.h>
#include <math.h>

#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "options.h"

/*
 * The defaults: what dmf_train does with '{}'.  The training ones were
 * chosen on a validation split of MovieLens-1M (test/bench/search.sh,
 * docs/bench/search.md).
 */
#define DEFAULT_HIDDEN 256
#define DEFAULT_DIM 128
#define DEFAULT_EPOCHS 80
#define DEFAULT_BATCH 0			/* auto: see dmf_resolve_batch_size */
#define DEFAULT_LR 0.003
#define DEFAULT_LR_DECAY 1.0
#define DEFAULT_PLATEAU_DROPS 1
#define DEFAULT_PLATEAU_FACTOR 0.3
#define DEFAULT_L2 0.0
#define DEFAULT_DROPOUT 0.2
#define DEFAULT_PATIENCE 6
#define DEFAULT_SEED 42
#define DEFAULT_VALIDATION_FRACTION 0.05

#define DEFAULT_FOLD_IN_STEPS 25
#define DEFAULT_FOLD_IN_RATE 0.3
#define DEFAULT_LAMBDA_START 5.0
#define DEFAULT_LAMBDA_GROWTH 1.3
#define DEFAULT_LAMBDA_MAX 100.0
#define DEFAULT_BOUNDARY_L2 0.1

#define MAX_LEVELS 1024
#define MAX_EPOCHS 100000
#define MAX_BATCH (1 << 24)
#define MAX_THREADS 64

typedef enum OptionType
{
	OPT_INT,
	OPT_FLOAT,
	OPT_BOOL,
	OPT_STRING,
	OPT_LAYERS,
	OPT_NUMBERS
} OptionType;

typedef struct OptionSpec
{
	const char *name;
	OptionType	type;
} OptionSpec;

static const OptionSpec option_specs[] = {
	{"layers", OPT_LAYERS},
	{"user_layers", OPT_LAYERS},
	{"item_layers", OPT_LAYERS},
	{"dim", OPT_INT},
	{"activation", OPT_STRING},
	{"epochs", OPT_INT},
	{"batch_size", OPT_INT},
	{"learning_rate", OPT_FLOAT},
	{"learning_rate_decay", OPT_FLOAT},
	{"plateau_drops", OPT_INT},
	{"plateau_factor", OPT_FLOAT},
	{"l2", OPT_FLOAT},
	{"dropout", OPT_FLOAT},
	{"input_dropout", OPT_FLOAT},
	{"validation", OPT_STRING},
	{"validation_fraction", OPT_FLOAT},
	{"patience", OPT_INT},
	{"seed", OPT_INT},
	{"threads", OPT_INT},
	{"rating_min", OPT_FLOAT},
	{"rating_max", OPT_FLOAT},
	{"verbose", OPT_BOOL},
	{"input_encoding", OPT_STRING},
	{"row_scale", OPT_STRING},
	{"fold_in_steps", OPT_INT},
	{"fold_in_rate", OPT_FLOAT},
	{"discrete", OPT_BOOL},
	{"levels", OPT_NUMBERS},
	{"lambda_start", OPT_FLOAT},
	{"lambda_growth", OPT_FLOAT},
	{"lambda_max", OPT_FLOAT},
	{"boundary_l2", OPT_FLOAT},
};

#define N_OPTIONS lengthof(option_specs)

static const char *const type_names[] = {
	"an integer", "a number", "a boolean", "a string", "an array of integers",
	"an array of numbers"
};

static char *
valid_keys(void)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int k = 0; k < (int) N_OPTIONS; k++)
		appendStringInfo(&s, "%s%s", k > 0 ? ", " : "", option_specs[k].name);
	return s.data;
}

static void
wrong_type(const char *key, OptionType type)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be %s", key, type_names[type])));
}

static double
numeric_value(const char *key, JsonbValue *v, OptionType type)
{
	double		d;

	if (v->type != jbvNumeric)
		wrong_type(key, type);
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
										   NumericGetDatum(v->val.numeric)));
	if (!isfinite(d))
		wrong_type(key, type);
	return d;
}

bool
dmf_numeric_to_int64(Numeric num, int64 *out)
{
	/* numeric's text is digits, an optional point and digits: no exponent */
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));
	char	   *end;
	int64		v;

	errno = 0;
	v = strtoi64(text, &end, 10);
	if (errno != 0 || end == text)
		return false;
	if (*end == '.')
		while (*++end == '0')
			;
	if (*end != '\0')
		return false;
	*out = v;
	return true;
}

/*
 * An integer option: the JSON number must be an integer exactly (64.0 is,
 * 64.0000000000000001 is not), compared in range without a detour through
 * double, which would take 9007199254740993 for 2^53.
 */
static int64
int_value(const char *key, JsonbValue *v, int64 min, int64 max)
{
	int64		i;
	char	   *given;

	if (v->type != jbvNumeric)
		wrong_type(key, OPT_INT);
	given = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (!dmf_numeric_to_int64(v->val.numeric, &i))
	{
		const char *point = strchr(given, '.');

		/* not integral (a fraction, NaN), rather than out of range */
		if (strcmp(given, "NaN") == 0 ||
			(point != NULL && strspn(point + 1, "0") != strlen(point + 1)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be an integer", key),
					 errdetail("The value given is %s.", given)));
		i = given[0] == '-' ? PG_INT64_MIN : PG_INT64_MAX;	/* beyond int64 */
		if (strlen(given) > 24)
			given = psprintf("%.20s... (%d digits)", given, (int) strlen(given));
	}
	if (i < min || i > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between " INT64_FORMAT " and " INT64_FORMAT,
						key, min, max),
				 errdetail("The value given is %s.", given)));
	return i;
}

static double
float_value(const char *key, JsonbValue *v, double min, double max,
			bool min_inclusive)
{
	double		d = numeric_value(key, v, OPT_FLOAT);

	if ((min_inclusive ? d < min : d <= min) || d > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be %s %g and at most %g",
						key, min_inclusive ? "at least" : "greater than", min, max),
				 errdetail("The value given is %g.", d)));
	return d;
}

static char *
string_value(const char *key, JsonbValue *v)
{
	if (v->type != jbvString)
		wrong_type(key, OPT_STRING);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* names of the values of the string options, by their numeric value */
static const char *const input_encoding_names[] = {"offset", "centered"};	/* DmfInputEncoding */
static const char *const row_scale_names[] = {"sqrt", "none", "mean"};	/* DmfInputCoding */

/* The position of a string option's value among its names; ERROR if none. */
static int
choice_value(const char *key, JsonbValue *v, const char *const *names, int n)
{
	char	   *name = string_value(key, v);
	StringInfoData hint;

	for (int k = 0; k < n; k++)
		if (strcmp(name, names[k]) == 0)
			return k;
	initStringInfo(&hint);
	for (int k = 0; k < n; k++)
		appendStringInfo(&hint, "%s%s", k == 0 ? "" : k == n - 1 ? " or " : ", ", names[k]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" has unknown value \"%s\"", key, name),
			 errhint("Use %s.", hint.data)));
	return -1;					/* keep the compiler quiet */
}

/* Reads an array of hidden-layer widths (may be empty: no hidden layer). */
static void
layers_value(const char *key, JsonbContainer *container, int *n, int *widths)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			count = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (count >= DMF_MAX_LAYERS - 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" has more than %d hidden layers",
							key, DMF_MAX_LAYERS - 1)));
		widths[count++] = (int) int_value(key, &v, 1, DMF_MAX_WIDTH);
	}
	*n = count;
}

/* Reads an array of numbers: the rating levels of DMF-D. */
static void
levels_value(const char *key, JsonbContainer *container, DmfOptions *o)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;
	double	   *levels = palloc(sizeof(double) * MAX_LEVELS);

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (n >= MAX_LEVELS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" has more than %d levels", key, MAX_LEVELS)));
		levels[n++] = numeric_value(key, &v, OPT_NUMBERS);
	}
	if (n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" needs at least two levels", key)));
	for (int k = 1; k < n; k++)
	{
		double		step = levels[1] - levels[0];

		if (!(levels[k] > levels[k - 1]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be in ascending order", key),
					 errdetail("Level %d (%g) follows %g.", k + 1, levels[k], levels[k - 1])));
		if (fabs((levels[k] - levels[k - 1]) - step) > 1e-9 * Max(1.0, fabs(step)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be equally spaced", key),
					 errdetail("The first step is %g, but %g follows %g.",
							   step, levels[k], levels[k - 1])));
	}
	o->n_levels = n;
	o->levels = levels;
}

void
dmf_parse_options(Jsonb *json, DmfOptions *o)
{
	DmfTrainConfig *c = &o->train;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		layers_set = false,
				user_layers_set = false,
				item_layers_set = false;

	memset(o, 0, sizeof(*o));
	c->n_user_hidden = c->n_item_hidden = 1;
	c->user_hidden[0] = c->item_hidden[0] = DEFAULT_HIDDEN;
	c->dim = DEFAULT_DIM;
	c->activation = DMF_ACT_RELU;
	c->epochs = DEFAULT_EPOCHS;
	c->batch_size = DEFAULT_BATCH;
	c->learning_rate = DEFAULT_LR;
	c->learning_rate_decay = DEFAULT_LR_DECAY;
	c->plateau_drops = DEFAULT_PLATEAU_DROPS;
	c->plateau_factor = DEFAULT_PLATEAU_FACTOR;
	c->l2 = DEFAULT_L2;
	c->dropout = DEFAULT_DROPOUT;
	c->patience = DEFAULT_PATIENCE;
	c->seed = DEFAULT_SEED;
	o->validation_fraction = DEFAULT_VALIDATION_FRACTION;
	o->threads = 0;				/* all cores */
	o->verbose = false;
	c->discrete = false;
	c->fold_in_steps = DEFAULT_FOLD_IN_STEPS;
	c->fold_in_rate = DEFAULT_FOLD_IN_RATE;
	c->lambda_start = DEFAULT_LAMBDA_START;
	c->lambda_growth = DEFAULT_LAMBDA_GROWTH;
	c->lambda_max = DEFAULT_LAMBDA_MAX;
	c->boundary_l2 = DEFAULT_BOUNDARY_L2;

	if (!JB_ROOT_IS_OBJECT(json))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("Pass options like '{\"epochs\": 20, \"dim\": 64}'.")));

	it = JsonbIteratorInit(&json->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		const OptionSpec *spec = NULL;
		JsonbValue	val;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		for (int k = 0; k < (int) N_OPTIONS; k++)
			if (strcmp(key, option_specs[k].name) == 0)
				spec = &option_specs[k];
		if (spec == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\"", key),
					 errhint("Valid options are: %s.", valid_keys())));

		tok = JsonbIteratorNext(&it, &val, true);
		Assert(tok == WJB_VALUE);
		if (spec->type == OPT_LAYERS || spec->type == OPT_NUMBERS)
		{
			if (val.type != jbvBinary ||
				!JsonContainerIsArray(val.val.binary.data))
				wrong_type(key, spec->type);
		}
		else if (val.type == jbvNull)
			wrong_type(key, spec->type);

		if (strcmp(key, "layers") == 0)
		{
			layers_value(key, val.val.binary.data, &c->n_user_hidden, c->user_hidden);
			layers_set = true;
		}
		else if (strcmp(key, "user_layers") == 0)
		{
			layers_value(key, val.val.binary.data, &c->n_user_hidden, c->user_hidden);
			user_layers_set = true;
		}
		else if (strcmp(key, "item_layers") == 0)
		{
			layers_value(key, val.val.binary.data, &c->n_item_hidden, c->item_hidden);
			item_layers_set = true;
		}
		else if (strcmp(key, "dim") == 0)
			c->dim = (int) int_value(key, &val, 1, DMF_MAX_DIM);
		else if (strcmp(key, "activation") == 0)
			c->activation = (DmfActivation) choice_value(key, &val, dmf_activation_names,
														 DMF_ACT_COUNT);
		else if (strcmp(key, "input_encoding") == 0)
			c->input_encoding = choice_value(key, &val, input_encoding_names,
											 lengthof(input_encoding_names));
		else if (strcmp(key, "row_scale") == 0)
			c->row_scale = choice_value(key, &val, row_scale_names,
										lengthof(row_scale_names));
		else if (strcmp(key, "epochs") == 0)
			c->epochs = (int) int_value(key, &val, 1, MAX_EPOCHS);
		else if (strcmp(key, "batch_size") == 0)
			c->batch_size = (int) int_value(key, &val, 0, MAX_BATCH);
		else if (strcmp(key, "learning_rate") == 0)
			c->learning_rate = float_value(key, &val, 0.0, 10.0, false);
		else if (strcmp(key, "learning_rate_decay") == 0)
			c->learning_rate_decay = float_value(key, &val, 0.0, 1.0, false);
		else if (strcmp(key, "plateau_drops") == 0)
			c->plateau_drops = (int) int_value(key, &val, 0, 100);
		else if (strcmp(key, "plateau_factor") == 0)
			c->plateau_factor = float_value(key, &val, 0.0, 1.0, false);
		else if (strcmp(key, "l2") == 0)
			c->l2 = float_value(key, &val, 0.0, 1e3, true);
		else if (strcmp(key, "dropout") == 0)
		{
			c->dropout = float_value(key, &val, 0.0, 0.99, true);
		}
		else if (strcmp(key, "fold_in_steps") == 0)
			c->fold_in_steps = (int) int_value(key, &val, 0, 10000);
		else if (strcmp(key, "fold_in_rate") == 0)
			c->fold_in_rate = float_value(key, &val, 0.0, 100.0, false);
		else if (strcmp(key, "input_dropout") == 0)
			c->input_dropout = float_value(key, &val, 0.0, 0.99, true);
		else if (strcmp(key, "validation") == 0)
			o->validation = string_value(key, &val);
		else if (strcmp(key, "validation_fraction") == 0)
			o->validation_fraction = float_value(key, &val, 0.0, 0.5, true);
		else if (strcmp(key, "patience") == 0)
			c->patience = (int) int_value(key, &val, 1, MAX_EPOCHS);
		else if (strcmp(key, "seed") == 0)
			c->seed = (uint64) int_value(key, &val, 0, INT64CONST(9007199254740992));
		else if (strcmp(key, "threads") == 0)
			o->threads = (int) int_value(key, &val, 0, MAX_THREADS);
		else if (strcmp(key, "rating_min") == 0)
		{
			c->rating_min = float_value(key, &val, -1e15, 1e15, true);
			o->rating_min_set = true;
		}
		else if (strcmp(key, "rating_max") == 0)
		{
			c->rating_max = float_value(key, &val, -1e15, 1e15, true);
			o->rating_max_set = true;
		}
		else if (strcmp(key, "verbose") == 0 || strcmp(key, "discrete") == 0)
		{
			if (val.type != jbvBool)
				wrong_type(key, OPT_BOOL);
			if (key[0] == 'v')
				o->verbose = val.val.boolean;
			else
				c->discrete = val.val.boolean;
		}
		else if (strcmp(key, "levels") == 0)
			levels_value(key, val.val.binary.data, o);
		else if (strcmp(key, "lambda_start") == 0)
			c->lambda_start = float_value(key, &val, 0.0, 1e6, false);
		else if (strcmp(key, "lambda_growth") == 0)
			c->lambda_growth = float_value(key, &val, 1.0, 100.0, true);
		else if (strcmp(key, "lambda_max") == 0)
			c->lambda_max = float_value(key, &val, 0.0, 1e6, false);
		else if (strcmp(key, "boundary_l2") == 0)
			c->boundary_l2 = float_value(key, &val, 0.0, 1e6, true);
	}

	if (layers_set && (user_layers_set || item_layers_set))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"layers\" cannot be combined with \"user_layers\" or \"item_layers\""),
				 errhint("Use \"layers\" for both branches, or set each branch with \"user_layers\" and \"item_layers\".")));
	if (layers_set)
	{
		c->n_item_hidden = c->n_user_hidden;
		memcpy(c->item_hidden, c->user_hidden, sizeof(c->item_hidden));
	}
	if (o->rating_min_set && o->rating_max_set && !(c->rating_min < c->rating_max))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"rating_min\" must be less than \"rating_max\""),
				 errdetail("rating_min is %g and rating_max is %g.",
						   c->rating_min, c->rating_max)));
	if (c->lambda_start > c->lambda_max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"lambda_start\" must not exceed \"lambda_max\""),
				 errdetail("lambda_start is %g and lambda_max is %g.",
						   c->lambda_start, c->lambda_max)));
	if (o->validation && o->validation_fraction != DEFAULT_VALIDATION_FRACTION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"validation\" cannot be combined with \"validation_fraction\""),
				 errhint("Name a validation table, or hold out a fraction of the training rows, not both.")));
}

static void
append_layers(StringInfo out, const char *key, int n, const int *w)
{
	appendStringInfo(out, "\"%s\": [", key);
	for (int k = 0; k < n; k++)
		appendStringInfo(out, "%s%d", k > 0 ? ", " : "", w[k]);
	appendStringInfoString(out, "]");
}

void
dmf_options_to_json(const DmfOptions *o, StringInfo out)
{
	const DmfTrainConfig *c = &o->train;

	appendStringInfoChar(out, '{');
	append_layers(out, "user_layers", c->n_user_hidden, c->user_hidden);
	appendStringInfoString(out, ", ");
	append_layers(out, "item_layers", c->n_item_hidden, c->item_hidden);
	appendStringInfo(out, ", \"dim\": %d", c->dim);
	appendStringInfo(out, ", \"activation\": \"%s\"", dmf_activation_names[c->activation]);
	appendStringInfo(out, ", \"epochs\": %d", c->epochs);
	appendStringInfo(out, ", \"batch_size\": %d", c->batch_size);
	appendStringInfo(out, ", \"learning_rate\": %s", float8out_internal(c->learning_rate));
	appendStringInfo(out, ", \"learning_rate_decay\": %s", float8out_internal(c->learning_rate_decay));
	appendStringInfo(out, ", \"plateau_drops\": %d", c->plateau_drops);
	appendStringInfo(out, ", \"plateau_factor\": %s", float8out_internal(c->plateau_factor));
	appendStringInfo(out, ", \"l2\": %s", float8out_internal(c->l2));
	appendStringInfo(out, ", \"dropout\": %s", float8out_internal(c->dropout));
	appendStringInfo(out, ", \"input_dropout\": %s", float8out_internal(c->input_dropout));
	appendStringInfoString(out, ", \"validation\": ");
	if (o->validation)
		escape_json(out, o->validation);
	else
		appendStringInfoString(out, "null");
	appendStringInfo(out, ", \"validation_fraction\": %s",
					 float8out_internal(o->validation ? 0.0 : o->validation_fraction));
	appendStringInfo(out, ", \"patience\": %d", c->patience);
	appendStringInfo(out, ", \"seed\": " UINT64_FORMAT, (uint64) c->seed);
	appendStringInfo(out, ", \"threads\": %d", o->threads);
	appendStringInfo(out, ", \"rating_min\": %s", float8out_internal(c->rating_min));
	appendStringInfo(out, ", \"rating_max\": %s", float8out_internal(c->rating_max));
	appendStringInfo(out, ", \"verbose\": %s", o->verbose ? "true" : "false");
	appendStringInfo(out, ", \"fold_in_steps\": %d", c->fold_in_steps);
	appendStringInfo(out, ", \"fold_in_rate\": %s", float8out_internal(c->fold_in_rate));
	appendStringInfo(out, ", \"input_encoding\": \"%s\"", input_encoding_names[c->input_encoding]);
	appendStringInfo(out, ", \"row_scale\": \"%s\"", row_scale_names[c->row_scale]);
	appendStringInfo(out, ", \"discrete\": %s", c->discrete ? "true" : "false");
	appendStringInfoString(out, ", \"levels\": ");
	if (c->n_levels > 0)
	{
		appendStringInfoChar(out, '[');
		for (int k = 0; k < c->n_levels; k++)
			appendStringInfo(out, "%s%s", k > 0 ? ", " : "", float8out_internal(c->levels[k]));
		appendStringInfoChar(out, ']');
	}
	else
		appendStringInfoString(out, "null");
	appendStringInfo(out, ", \"lambda_start\": %s", float8out_internal(c->lambda_start));
	appendStringInfo(out, ", \"lambda_growth\": %s", float8out_internal(c->lambda_growth));
	appendStringInfo(out, ", \"lambda_max\": %s", float8out_internal(c->lambda_max));
	appendStringInfo(out, ", \"boundary_l2\": %s", float8out_internal(c->boundary_l2));
	appendStringInfoChar(out, '}');
}

/*
 * batch_size 0 (the default): blocks of AUTO_BATCH ratings, but at most
 * about AUTO_MAX_BLOCKS blocks per epoch on large data and at least
 * AUTO_MIN_BLOCKS on small data.  An epoch embeds every row once per block
 * of the other side and takes one Adam step over all weights per block, so
 * with a fixed block size its cost would grow with the square of the data;
 * a bounded number of blocks keeps it linear.  Small data still gets enough
 * steps per epoch.
 */
#define AUTO_BATCH 8192
#define AUTO_MAX_BLOCKS 100
#define AUTO_MIN_BLOCKS 16

void
dmf_resolve_batch_size(DmfTrainConfig *c, int64 n_train)
{
	int64		size;

	if (c->batch_size > 0)
		return;
	size = Min(AUTO_BATCH, n_train / AUTO_MIN_BLOCKS);
	size = Max(size, (n_train + AUTO_MAX_BLOCKS - 1) / AUTO_MAX_BLOCKS);
	c->batch_size = (int) Min(Max(size, 1), MAX_BATCH);
}
