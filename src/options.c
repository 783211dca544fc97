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

#define MAX_LEVELS 1024
#define MAX_EPOCHS 100000
#define MAX_BATCH (1 << 24)
#define MAX_THREADS 64

typedef enum OptionType
{
	OPT_INT,					/* an int field */
	OPT_FLOAT,					/* a double field */
	OPT_BOOL,					/* a bool field */
	OPT_STRING,					/* a char * field */
	OPT_LAYERS,					/* hidden layer widths */
	OPT_NUMBERS,				/* the rating levels */
	OPT_SEED,					/* a uint64 field, written as an integer */
	OPT_CHOICE					/* an int field, written as one of names */
} OptionType;

/* names of the values of the choice options, by their numeric value */
const char *const dmf_input_encoding_names[2] = {"offset", "centered"};	/* DmfInputEncoding */
const char *const dmf_row_scale_names[3] = {"sqrt", "none", "mean"};	/* DmfRowScale */
static const char *const storage_names[] = {"auto", "float32", "bfloat16"};	/* DmfStorage */
const char *const dmf_feedback_names[2] = {"explicit", "implicit"};	/* DmfFeedback */
static const char *const schedule_names[] = {"alternating", "blocks"};	/* DmfSchedule */
/* DmfFoldInTraining */
static const char *const fold_in_training_names[] = {"auto", "none", "users", "items", "both"};

/*
 * Every option of dmf_train, once: its name, type, where its value goes,
 * its range and its default, as JSON.  The defaults are what dmf_train
 * does with '{}', parsed and checked like any options; the training ones
 * were chosen on a validation split of MovieLens-1M (test/bench/search.sh,
 * docs/bench/search.md).  The README's table of options is checked against
 * this one (test/t/070_layout.sh).
 */
typedef struct OptionSpec
{
	const char *name;
	OptionType	type;
	size_t		offset;			/* of the value in DmfOptions */
	double		min;			/* numbers (and widths of layers) */
	double		max;
	bool		min_inclusive;	/* floats: whether min itself is allowed */
	const char *default_json;	/* NULL: none (from the data, or unset) */
	const char *const *names;	/* OPT_CHOICE: the values' names */
	int			n_names;
} OptionSpec;

#define TRAIN(field) offsetof(DmfOptions, train.field)
#define OPTION(field) offsetof(DmfOptions, field)
#define CHOICES(names) names, lengthof(names)
#define NO_CHOICES NULL, 0

static const OptionSpec option_specs[] = {
	{"layers", OPT_LAYERS, TRAIN(n_user_hidden), 1, DMF_MAX_WIDTH, true, "[256]", NO_CHOICES},
	{"user_layers", OPT_LAYERS, TRAIN(n_user_hidden), 1, DMF_MAX_WIDTH, true, NULL, NO_CHOICES},
	{"item_layers", OPT_LAYERS, TRAIN(n_item_hidden), 1, DMF_MAX_WIDTH, true, NULL, NO_CHOICES},
	{"dim", OPT_INT, TRAIN(dim), 1, DMF_MAX_DIM, true, "128", NO_CHOICES},
	{"activation", OPT_CHOICE, TRAIN(activation), 0, 0, true, "\"relu\"",
	dmf_activation_names, DMF_ACT_COUNT},
	{"epochs", OPT_INT, TRAIN(epochs), 1, MAX_EPOCHS, true, "80", NO_CHOICES},
	{"schedule", OPT_CHOICE, TRAIN(schedule), 0, 0, true, "\"alternating\"", CHOICES(schedule_names)},
	/* 0: automatic, see dmf_resolve_batch_size */
	{"batch_size", OPT_INT, TRAIN(batch_size), 0, MAX_BATCH, true, "0", NO_CHOICES},
	{"learning_rate", OPT_FLOAT, TRAIN(learning_rate), 0.0, 10.0, false, "0.003", NO_CHOICES},
	{"learning_rate_decay", OPT_FLOAT, TRAIN(learning_rate_decay), 0.0, 1.0, false, "1", NO_CHOICES},
	/* patience and plateau_drops: blocks and DMF-D keep 6 and 1, a warm start 2 and 1, see dmf_parse_options */
	{"plateau_drops", OPT_INT, TRAIN(plateau_drops), 0, 100, true, "2", NO_CHOICES},
	{"plateau_factor", OPT_FLOAT, TRAIN(plateau_factor), 0.0, 1.0, false, "0.3", NO_CHOICES},
	{"l2", OPT_FLOAT, TRAIN(l2), 0.0, 1e3, true, "0", NO_CHOICES},
	{"dropout", OPT_FLOAT, TRAIN(dropout), 0.0, 0.99, true, "0.2", NO_CHOICES},
	{"input_dropout", OPT_FLOAT, TRAIN(input_dropout), 0.0, 0.99, true, "0", NO_CHOICES},
	{"validation", OPT_STRING, OPTION(validation), 0, 0, true, NULL, NO_CHOICES},
	{"validation_fraction", OPT_FLOAT, OPTION(validation_fraction), 0.0, 0.5, true, "0.05", NO_CHOICES},
	{"patience", OPT_INT, TRAIN(patience), 1, MAX_EPOCHS, true, "3", NO_CHOICES},
	/* at most 2^53: the seed is echoed as a JSON number */
	{"seed", OPT_SEED, TRAIN(seed), 0, 9007199254740992.0, true, "42", NO_CHOICES},
	/* 0: all cores */
	{"threads", OPT_INT, OPTION(threads), 0, MAX_THREADS, true, "0", NO_CHOICES},
	{"time_limit", OPT_FLOAT, OPTION(time_limit), 0.0, 1e8, false, NULL, NO_CHOICES},
	{"rating_min", OPT_FLOAT, TRAIN(rating_min), -1e15, 1e15, true, NULL, NO_CHOICES},
	{"rating_max", OPT_FLOAT, TRAIN(rating_max), -1e15, 1e15, true, NULL, NO_CHOICES},
	{"verbose", OPT_BOOL, OPTION(verbose), 0, 0, true, "false", NO_CHOICES},
	{"storage", OPT_CHOICE, OPTION(storage), 0, 0, true, "\"auto\"", CHOICES(storage_names)},
	{"input_encoding", OPT_CHOICE, TRAIN(input_encoding), 0, 0, true, "\"offset\"",
	CHOICES(dmf_input_encoding_names)},
	{"row_scale", OPT_CHOICE, TRAIN(row_scale), 0, 0, true, "\"sqrt\"",
	CHOICES(dmf_row_scale_names)},
	{"fold_in_steps", OPT_INT, TRAIN(fold_in_steps), 0, 10000, true, "25", NO_CHOICES},
	{"fold_in_rate", OPT_FLOAT, TRAIN(fold_in_rate), 0.0, 100.0, false, "0.3", NO_CHOICES},
	{"fold_in_training", OPT_CHOICE, TRAIN(fold_in_training), 0, 0, true, "\"auto\"",
	CHOICES(fold_in_training_names)},
	{"feedback", OPT_CHOICE, TRAIN(feedback), 0, 0, true, "\"explicit\"", CHOICES(dmf_feedback_names)},
	{"negatives", OPT_INT, TRAIN(negatives), 1, 100, true, "4", NO_CHOICES},
	{"discrete", OPT_BOOL, TRAIN(discrete), 0, 0, true, "false", NO_CHOICES},
	{"levels", OPT_NUMBERS, 0, 0, 0, true, NULL, NO_CHOICES},
	{"lambda_start", OPT_FLOAT, TRAIN(lambda_start), 0.0, 1e6, false, "5", NO_CHOICES},
	{"lambda_growth", OPT_FLOAT, TRAIN(lambda_growth), 1.0, 100.0, true, "1.3", NO_CHOICES},
	{"lambda_max", OPT_FLOAT, TRAIN(lambda_max), 0.0, 1e6, false, "100", NO_CHOICES},
	{"boundary_l2", OPT_FLOAT, TRAIN(boundary_l2), 0.0, 1e6, true, "0.1", NO_CHOICES},
};

#define N_OPTIONS lengthof(option_specs)

static const char *const type_names[] = {
	"an integer", "a number", "a boolean", "a string", "an array of integers",
	"an array of numbers", "an integer", "a string"
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

/* A field of o, by the spec's offset. */
#define FIELD(o, spec, type) ((type *) ((char *) (o) + (spec)->offset))

/* The widths array that goes with a layers option's count field. */
static int *
layer_widths(DmfOptions *o, const OptionSpec *spec)
{
	return spec->offset == TRAIN(n_user_hidden) ? o->train.user_hidden : o->train.item_hidden;
}

static const OptionSpec *
find_option(const char *key)
{
	for (int k = 0; k < (int) N_OPTIONS; k++)
		if (strcmp(key, option_specs[k].name) == 0)
			return &option_specs[k];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown option \"%s\"", key),
			 errhint("Valid options are: %s.", valid_keys())));
	return NULL;				/* keep the compiler quiet */
}

/* Sets the option spec names to the JSON value v, checked. */
static void
set_option(DmfOptions *o, const OptionSpec *spec, JsonbValue *v)
{
	const char *key = spec->name;

	if (spec->type == OPT_LAYERS || spec->type == OPT_NUMBERS)
	{
		if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
			wrong_type(key, spec->type);
	}
	else if (v->type == jbvNull)
		wrong_type(key, spec->type);

	switch (spec->type)
	{
		case OPT_INT:
			*FIELD(o, spec, int) = (int) int_value(key, v, (int64) spec->min, (int64) spec->max);
			break;
		case OPT_SEED:
			*FIELD(o, spec, uint64) = (uint64) int_value(key, v, (int64) spec->min, (int64) spec->max);
			break;
		case OPT_FLOAT:
			*FIELD(o, spec, double) = float_value(key, v, spec->min, spec->max, spec->min_inclusive);
			break;
		case OPT_BOOL:
			if (v->type != jbvBool)
				wrong_type(key, OPT_BOOL);
			*FIELD(o, spec, bool) = v->val.boolean;
			break;
		case OPT_STRING:
			*FIELD(o, spec, char *) = string_value(key, v);
			break;
		case OPT_CHOICE:
			*FIELD(o, spec, int) = choice_value(key, v, spec->names, spec->n_names);
			break;
		case OPT_LAYERS:
			layers_value(key, v->val.binary.data, FIELD(o, spec, int), layer_widths(o, spec));
			break;
		case OPT_NUMBERS:
			levels_value(key, v->val.binary.data, o);
			break;
	}
}

/* Sets every option of the object json; given[k] tells which were. */
static void
set_options(DmfOptions *o, Jsonb *json, bool *given)
{
	JsonbIterator *it = JsonbIteratorInit(&json->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const OptionSpec *spec;
		JsonbValue	val;

		if (tok != WJB_KEY)
			continue;
		spec = find_option(pnstrdup(v.val.string.val, v.val.string.len));
		tok = JsonbIteratorNext(&it, &val, true);
		Assert(tok == WJB_VALUE);
		set_option(o, spec, &val);
		given[spec - option_specs] = true;
	}
}

/* The defaults of the table, as one JSON object. */
static Jsonb *
default_options(void)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (int k = 0; k < (int) N_OPTIONS; k++)
		if (option_specs[k].default_json)
			appendStringInfo(&s, "%s\"%s\": %s", s.len > 1 ? ", " : "",
							 option_specs[k].name, option_specs[k].default_json);
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

static bool
was_given(const bool *given, const char *name)
{
	return given[find_option(name) - option_specs];
}

void
dmf_parse_options(Jsonb *json, bool warm_start, DmfOptions *o)
{
	DmfTrainConfig *c = &o->train;
	bool		defaults[N_OPTIONS] = {false};
	bool		given[N_OPTIONS] = {false};
	double		default_fraction;

	memset(o, 0, sizeof(*o));
	set_options(o, default_options(), defaults);
	/* "layers" sets the user branch; by default the item branch is the same */
	c->n_item_hidden = c->n_user_hidden;
	memcpy(c->item_hidden, c->user_hidden, sizeof(c->item_hidden));
	default_fraction = o->validation_fraction;

	if (!JB_ROOT_IS_OBJECT(json))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("Pass options like '{\"epochs\": 20, \"dim\": 64}'.")));
	set_options(o, json, given);
	o->rating_min_set = was_given(given, "rating_min");
	o->rating_max_set = was_given(given, "rating_max");

	if (was_given(given, "layers") &&
		(was_given(given, "user_layers") || was_given(given, "item_layers")))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"layers\" cannot be combined with \"user_layers\" or \"item_layers\""),
				 errhint("Use \"layers\" for both branches, or set each branch with \"user_layers\" and \"item_layers\".")));
	if (was_given(given, "layers"))
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
	if (c->feedback == DMF_FEEDBACK_IMPLICIT)
	{
		/* options about rating values have nothing to act on */
		static const char *const rating_options[] = {
			"rating_min", "rating_max", "levels", "discrete", "input_encoding",
			"fold_in_steps", "fold_in_rate", "fold_in_training",
			"lambda_start", "lambda_growth", "lambda_max"
		};

		for (int k = 0; k < lengthof(rating_options); k++)
			if (was_given(given, rating_options[k]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" does not apply to \"feedback\": \"implicit\"",
								rating_options[k]),
						 errdetail("Implicit feedback has interactions, not rating values."),
						 errhint("Leave \"%s\" out, or train on ratings with \"feedback\": \"explicit\".",
								 rating_options[k])));
		/*
		 * Chosen on validation (docs/bench/implicit.md): dropout slows
		 * implicit training more than it regularises, and twice the step
		 * size reaches in 60 epochs what the default reaches in 80.
		 */
		if (!was_given(given, "dropout"))
			c->dropout = 0.0;
		if (!was_given(given, "learning_rate"))
			c->learning_rate = 0.006;
		if (!was_given(given, "epochs"))
			c->epochs = 60;
		/* sampled negatives are drawn per block */
		if (was_given(given, "schedule") && c->schedule != DMF_SCHEDULE_BLOCKS)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("option \"schedule\": \"alternating\" does not support \"feedback\": \"implicit\""),
					 errhint("Leave \"schedule\" out or set it to \"blocks\" for implicit feedback.")));
		c->schedule = DMF_SCHEDULE_BLOCKS;
		c->rating_min = 0.0;
		c->rating_max = 1.0;
		o->rating_min_set = o->rating_max_set = true;
		c->fold_in_steps = 0;
		c->fold_in_training = DMF_FOLD_TRAINING_NONE;
	}
	else if (was_given(given, "negatives"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"negatives\" applies only to \"feedback\": \"implicit\""),
				 errhint("Add \"feedback\": \"implicit\" to train on interactions.")));
	/*
	 * When validation stalls: the alternating schedule cuts the step after
	 * three epochs, twice, which ends 17% sooner at the same validation RMSE;
	 * the blocks keep the rule they were tuned with, and DMF-D too, whose
	 * quantizer ends 0.001 worse with the shorter one (docs/bench/search.md,
	 * seventh round).
	 */
	if (c->schedule == DMF_SCHEDULE_BLOCKS || c->discrete)
	{
		if (!was_given(given, "patience"))
			c->patience = 6;
		if (!was_given(given, "plateau_drops"))
			c->plateau_drops = 1;
	}

	/*
	 * From a trained model (init) the alternating schedule is near a good
	 * solution after a few epochs: two stalled epochs and one cut end it at
	 * the same validation RMSE as the full rule in 16 epochs against 21
	 * (docs/bench/search.md, eighth round).
	 */
	else if (warm_start)
	{
		if (!was_given(given, "patience"))
			c->patience = 2;
		if (!was_given(given, "plateau_drops"))
			c->plateau_drops = 1;
	}
	if (o->validation && o->validation_fraction != default_fraction)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"validation\" cannot be combined with \"validation_fraction\""),
				 errhint("Name a validation table, or hold out a fraction of the training rows, not both.")));
}

static void
append_layers(StringInfo out, int n, const int *w)
{
	appendStringInfoChar(out, '[');
	for (int k = 0; k < n; k++)
		appendStringInfo(out, "%s%d", k > 0 ? ", " : "", w[k]);
	appendStringInfoChar(out, ']');
}

/* Appends one option's value as JSON, as training used it. */
static void
append_option(StringInfo out, const DmfOptions *o, const OptionSpec *spec)
{
	const DmfTrainConfig *c = &o->train;

	switch (spec->type)
	{
		case OPT_INT:
			appendStringInfo(out, "%d", *FIELD(o, spec, const int));
			break;
		case OPT_SEED:
			appendStringInfo(out, UINT64_FORMAT, *FIELD(o, spec, const uint64));
			break;
		case OPT_FLOAT:
			/* held out: none when a validation relation is named */
			if (spec->offset == OPTION(validation_fraction) && o->validation)
				appendStringInfoString(out, float8out_internal(0.0));
			else if (spec->offset == OPTION(time_limit) && o->time_limit == 0.0)
				appendStringInfoString(out, "null");
			else
				appendStringInfoString(out, float8out_internal(*FIELD(o, spec, const double)));
			break;
		case OPT_BOOL:
			appendStringInfoString(out, *FIELD(o, spec, const bool) ? "true" : "false");
			break;
		case OPT_STRING:
			if (*FIELD(o, spec, char *const))
				escape_json(out, *FIELD(o, spec, char *const));
			else
				appendStringInfoString(out, "null");
			break;
		case OPT_CHOICE:
			appendStringInfo(out, "\"%s\"", spec->names[*FIELD(o, spec, const int)]);
			break;
		case OPT_LAYERS:
			append_layers(out, *FIELD(o, spec, const int),
						  layer_widths(unconstify(DmfOptions *, o), spec));
			break;
		case OPT_NUMBERS:
			/* the levels training used: given, or found in the data */
			if (c->n_levels == 0)
			{
				appendStringInfoString(out, "null");
				break;
			}
			appendStringInfoChar(out, '[');
			for (int k = 0; k < c->n_levels; k++)
				appendStringInfo(out, "%s%s", k > 0 ? ", " : "", float8out_internal(c->levels[k]));
			appendStringInfoChar(out, ']');
			break;
	}
}

void
dmf_options_to_json(const DmfOptions *o, StringInfo out)
{
	bool		first = true;

	appendStringInfoChar(out, '{');
	for (int k = 0; k < (int) N_OPTIONS; k++)
	{
		const OptionSpec *spec = &option_specs[k];

		/* each branch's widths are echoed on their own */
		if (strcmp(spec->name, "layers") == 0)
			continue;
		/* sampled negatives exist only with implicit feedback */
		if (strcmp(spec->name, "negatives") == 0 && o->train.feedback != DMF_FEEDBACK_IMPLICIT)
			continue;
		appendStringInfo(out, "%s\"%s\": ", first ? "" : ", ", spec->name);
		append_option(out, o, spec);
		first = false;
	}
	appendStringInfoChar(out, '}');
}

/*
 * batch_size 0 (the default), alternating schedule: minibatches of
 * AUTO_ALTERNATING_BATCH ratings.  Blocks: blocks of AUTO_BATCH ratings, but at most
 * about AUTO_MAX_BLOCKS blocks per epoch on large data and at least
 * AUTO_MIN_BLOCKS on small data.  An epoch embeds every row once per block
 * of the other side and takes one Adam step over all weights per block, so
 * with a fixed block size its cost would grow with the square of the data;
 * a bounded number of blocks keeps it linear.  Small data still gets enough
 * steps per epoch.
 */
#define AUTO_BATCH 8192
#define AUTO_ALTERNATING_BATCH 2048
#define AUTO_MAX_BLOCKS 100
#define AUTO_MIN_BLOCKS 16

void
dmf_resolve_batch_size(DmfTrainConfig *c, int64 n_train)
{
	int64		size;

	if (c->batch_size > 0)
		return;
	if (c->schedule == DMF_SCHEDULE_ALTERNATING)
	{
		/*
		 * A minibatch costs what its rows cost (a lazy step over the inputs
		 * it reaches), so its size needs no bound for large data; small data
		 * still gets AUTO_MIN_BLOCKS steps a phase.  Chosen on validation
		 * (docs/bench/search.md, sixth round).
		 */
		size = Min(AUTO_ALTERNATING_BATCH, n_train / AUTO_MIN_BLOCKS);
		c->batch_size = (int) Min(Max(size, 1), MAX_BATCH);
		return;
	}
	size = Min(AUTO_BATCH, n_train / AUTO_MIN_BLOCKS);
	size = Max(size, (n_train + AUTO_MAX_BLOCKS - 1) / AUTO_MAX_BLOCKS);
	c->batch_size = (int) Min(Max(size, 1), MAX_BATCH);
}
