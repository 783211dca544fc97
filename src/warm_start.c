/*
 * warm_start.c
 *	  dmf_train's init: a trained model to start from.
 *
 * The options that shape the network must be the model's (an ERROR names
 * the first that is not); the rating scale is the model's unless given,
 * and must then agree.  The model's first-layer rows are mapped to the
 * training's ids: a user or item the model knew starts where it was, a new
 * one from fresh weights, and one that left is dropped.
 */
#include "postgres.h"

#include "dmf.h"
#include "memory_budget.h"
#include "options.h"
#include "warm_start.h"

#define INIT_HINT "Give \"layers\" (or \"user_layers\" and \"item_layers\"), \"dim\", \"activation\", \"input_encoding\", \"row_scale\", \"feedback\" and the rating scale as dmf_info(init)->'options' has them, or train without init."

static void
differs(const char *option, const char *given, const char *model)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" differs from the init model's", option),
			 errdetail("The options give %s; the init model was trained with %s.", given, model),
			 errhint(INIT_HINT)));
}

static char *
widths_text(int n, const int *widths)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int k = 0; k < n; k++)
		appendStringInfo(&s, "%s%d", k > 0 ? ", " : "", widths[k]);
	appendStringInfoChar(&s, ']');
	return s.data;
}

/* The hidden widths of a branch: given, against the model's. */
static void
check_layers(const char *option, int n_given, const int *given, const DmfBranch *b)
{
	int			n_model = b->n_layers - 1;

	if (n_given == n_model && memcmp(given, b->sizes + 1, sizeof(int) * n_model) == 0)
		return;
	differs(option, widths_text(n_given, given), widths_text(n_model, b->sizes + 1));
}

static void
check_choice(const char *option, int given, int model, const char *const *names)
{
	if (given != model)
		differs(option, psprintf("\"%s\"", names[given]), psprintf("\"%s\"", names[model]));
}

static void
check_bound(const char *option, bool set, double *given, double model)
{
	if (!set)
		*given = model;
	else if (*given != model)
		differs(option, psprintf("%g", *given), psprintf("%g", model));
}

void
dmf_warm_start_check(const DmfModel *m, DmfOptions *o)
{
	DmfTrainConfig *c = &o->train;
	bool		implicit = (m->flags & DMF_FLAG_IMPLICIT) != 0;
	check_choice("feedback", c->feedback, implicit ? DMF_FEEDBACK_IMPLICIT : DMF_FEEDBACK_EXPLICIT,
				 dmf_feedback_names);
	if (c->n_user_hidden == c->n_item_hidden &&
		memcmp(c->user_hidden, c->item_hidden, sizeof(int) * c->n_user_hidden) == 0)
	{
		check_layers("layers", c->n_user_hidden, c->user_hidden, &m->user_branch);
		check_layers("layers", c->n_item_hidden, c->item_hidden, &m->item_branch);
	}
	else
	{
		check_layers("user_layers", c->n_user_hidden, c->user_hidden, &m->user_branch);
		check_layers("item_layers", c->n_item_hidden, c->item_hidden, &m->item_branch);
	}
	if (c->dim != m->dim)
		differs("dim", psprintf("%d", c->dim), psprintf("%d", m->dim));
	check_choice("activation", c->activation, m->user_branch.activation, dmf_activation_names);
	check_choice("input_encoding", c->input_encoding, m->user_branch.coding.encoding,
				 dmf_input_encoding_names);
	check_choice("row_scale", c->row_scale, m->user_branch.coding.row_scale,
				 dmf_row_scale_names);
	/* the weights learned this scale: ratings outside it are refused as usual */
	check_bound("rating_min", o->rating_min_set, &c->rating_min, m->rating_min);
	check_bound("rating_max", o->rating_max_set, &c->rating_max, m->rating_max);
	o->rating_min_set = o->rating_max_set = true;
}

/* For each id of the training, the other branch's first-layer row of the model's entity. */
static int32 *
map_rows(const DmfSide *side, const int64 *ids, int32 n)
{
	int32	   *rows = dmf_budget_alloc(sizeof(int32) * Max(n, 1), 0);

	for (int32 k = 0; k < n; k++)
	{
		int32		e = dmf_side_find(side, ids[k]);

		rows[k] = e >= 0 ? side->input[e] : -1;
	}
	return rows;
}

DmfWarmStart *
dmf_warm_start_map(const DmfModel *m, const DmfTrainConfig *c, const DmfRatingScale *scale,
				   const int64 *user_ids, int32 n_users, const int64 *item_ids, int32 n_items)
{
	DmfWarmStart *w = palloc0(sizeof(DmfWarmStart));

	w->user_branch = &m->user_branch;
	w->item_branch = &m->item_branch;
	w->user_branch_rows = map_rows(&m->items, item_ids, n_items);
	w->item_branch_rows = map_rows(&m->users, user_ids, n_users);

	/* DMF-D from DMF-D on the same levels: its boundaries, on the working scale */
	if (c->discrete && (m->flags & DMF_FLAG_DISCRETE) && m->n_levels == c->n_levels &&
		memcmp(m->levels, c->levels, sizeof(double) * c->n_levels) == 0)
	{
		double	   *b = palloc(sizeof(double) * (c->n_levels + 1));

		/* the inner ones between their levels, as the quantizer's steps assume */
		for (int k = 0; k <= c->n_levels; k++)
		{
			double		v = m->boundaries[k];

			if (k > 0 && k < c->n_levels)
				v = Min(Max(v, c->levels[k - 1]), c->levels[k]);
			b[k] = dmf_to_working(scale, v);
		}
		w->boundaries = b;
	}
	return w;
}
