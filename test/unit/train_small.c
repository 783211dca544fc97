/*
 * train_small.c
 *	  Small trainings outside the server, for valgrind (test/t/016_valgrind.sh):
 *	  a plain model with dropout, two dense layers, a validation set, extra
 *	  inputs and a team of two threads; the same with training
 *	  users left unfolded; then DMF-D with centred inputs, rows scaled by
 *	  their length and boundary calibration.  Every
 *	  buffer is its own malloc (DMF_STANDALONE), so valgrind sees its ends
 *	  and which bytes were written.
 *
 * Exits non-zero if a result is not finite, the boundaries are unsorted or
 * the fold-in choice is not the best of the four (or not the option's).
 */
#include "platform.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "encoding.h"
#include "helper_thread.h"
#include "rng.h"
#include "train.h"

enum {USERS = 40, ITEMS = 30};

static int	failed = 0;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
	} while (0)

static void
add(DmfTriples *t, int32_t u, int32_t i, float r)
{
	t->user[t->n] = u;
	t->item[t->n] = i;
	t->rating[t->n] = r;
	t->n++;
}

static void
alloc_triples(DmfTriples *t, int64_t cap)
{
	t->n = 0;
	t->user = dmf_alloc(sizeof(int32_t) * cap);
	t->item = dmf_alloc(sizeof(int32_t) * cap);
	t->rating = dmf_alloc(sizeof(float) * cap);
}

static void
free_triples(DmfTriples *t)
{
	dmf_free(t->user);
	dmf_free(t->item);
	dmf_free(t->rating);
}

/* A rank-2 taste model, 1..5 stars, about 40% observed; split 8:1:1. */
static void
make_data(DmfTrainSet *d)
{
	DmfRng		rng;

	dmf_rng_seed(&rng, 11);
	memset(d, 0, sizeof(*d));
	d->n_users = USERS;
	d->n_items = ITEMS;
	alloc_triples(&d->train, USERS * ITEMS);
	alloc_triples(&d->validation, USERS * ITEMS);
	alloc_triples(&d->extra_input, USERS * ITEMS);
	for (int32_t u = 0; u < USERS; u++)
		for (int32_t i = 0; i < ITEMS; i++)
		{
			double		x = 3.0 + 1.5 * (sin(u * 1.3) * cos(i * 0.7) + cos(u * 0.4) * sin(i * 1.1));
			float		r = (float) fmax(1.0, fmin(5.0, round(x)));
			double		p = dmf_rng_uniform(&rng);

			if (p < 0.32)
				add(&d->train, u, i, r);
			else if (p < 0.36)
				add(&d->validation, u, i, r);
			else if (p < 0.40)
				add(&d->extra_input, u, i, r);
		}
}

/*
 * The fold-in choice: "auto" keeps the combination with the lowest validation
 * RMSE (folding in on a tie); a side left unfolded keeps its branch factors,
 * which are its anchors.
 */
static void
check_fold_choice(const char *name, const DmfTrainConfig *cfg, const DmfTrainResult *res)
{
	const DmfFoldChoice *c = &res->fold_choice;
	int			chosen = (c->users ? 1 : 0) + (c->items ? 2 : 0);

	for (int k = 0; k < 4; k++)
		CHECK(isfinite(c->validation_rmse[k]), "%s: fold-in RMSE %d not measured", name, k);
	if (cfg->fold_in_training == DMF_FOLD_TRAINING_AUTO)
		for (int k = 0; k < 4; k++)
			CHECK(c->validation_rmse[chosen] < c->validation_rmse[k] ||
				  (c->validation_rmse[chosen] == c->validation_rmse[k] && chosen >= k),
				  "%s: fold-in choice %d is not the best (%d: %g < %g)", name, chosen, k,
				  c->validation_rmse[k], c->validation_rmse[chosen]);
	else
		CHECK(chosen == cfg->fold_in_training - DMF_FOLD_TRAINING_NONE,
			  "%s: fold-in choice %d, the option asked for %d", name, chosen,
			  cfg->fold_in_training - DMF_FOLD_TRAINING_NONE);
	if (!c->users)
		CHECK(memcmp(res->user_factors, res->user_anchors, sizeof(float) * USERS * cfg->dim) == 0,
			  "%s: unfolded user factors differ from their branch factors", name);
	if (!c->items)
		CHECK(memcmp(res->item_factors, res->item_anchors, sizeof(float) * ITEMS * cfg->dim) == 0,
			  "%s: unfolded item factors differ from their branch factors", name);
}

static void
check_result(const char *name, const DmfTrainConfig *cfg, const DmfTrainResult *res)
{
	double		sum = 0.0;

	for (int k = 0; k < USERS * cfg->dim; k++)
		sum += res->user_factors[k] + res->user_anchors[k];
	for (int k = 0; k < ITEMS * cfg->dim; k++)
		sum += res->item_factors[k] + res->item_anchors[k];
	for (size_t k = 0; k < res->user_branch.n_params; k++)
		sum += res->user_branch.params[k];
	for (size_t k = 0; k < res->item_branch.n_params; k++)
		sum += res->item_branch.params[k];
	CHECK(isfinite(sum), "%s: non-finite factors or weights", name);
	CHECK(res->epochs_run >= 1 && isfinite(res->final_train_rmse), "%s: %d epochs, train RMSE %g",
		  name, res->epochs_run, res->final_train_rmse);
	check_fold_choice(name, cfg, res);
	if (res->boundaries)
		for (int v = 0; v < cfg->n_levels; v++)
			CHECK(res->boundaries[v] <= res->boundaries[v + 1], "%s: boundary %d unsorted", name, v);
	printf("%s: %d epochs, train RMSE %.4f, best validation RMSE %.4f\n", name,
		   res->epochs_run, res->final_train_rmse, res->best_validation_rmse);
}

static void
free_result(DmfTrainResult *res)
{
	dmf_free(res->user_branch.params);
	dmf_free(res->item_branch.params);
	dmf_free(res->user_factors);
	dmf_free(res->item_factors);
	dmf_free(res->user_anchors);
	dmf_free(res->item_anchors);
	dmf_free(res->history);
	if (res->boundaries)
		dmf_free(res->boundaries);
}

int
main(void)
{
	static const double levels[5] = {1, 2, 3, 4, 5};
	DmfTrainSet data;
	DmfTrainConfig cfg;
	DmfTrainResult res;

	make_data(&data);

	memset(&cfg, 0, sizeof(cfg));
	cfg.n_user_hidden = cfg.n_item_hidden = 2;
	cfg.user_hidden[0] = cfg.item_hidden[0] = 16;
	cfg.user_hidden[1] = cfg.item_hidden[1] = 8;
	cfg.dim = 4;
	cfg.activation = DMF_ACT_RELU;
	cfg.epochs = 3;
	cfg.batch_size = 64;
	cfg.patience = 3;
	cfg.learning_rate = 0.01;
	cfg.learning_rate_decay = 0.9;
	cfg.l2 = 1e-4;
	cfg.dropout = 0.1;
	cfg.input_dropout = 0.1;
	cfg.seed = 1;
	cfg.rating_min = 1;
	cfg.rating_max = 5;
	cfg.threads = 2;
	cfg.fold_in_steps = 5;
	cfg.fold_in_rate = 0.3;
	cfg.input_encoding = DMF_INPUT_OFFSET;
	cfg.row_scale = 0;
	dmf_train_model(&cfg, &data, &res);
	check_result("plain", &cfg, &res);
	free_result(&res);

	/* the same training, training users left unfolded */
	cfg.fold_in_training = DMF_FOLD_TRAINING_ITEMS;
	dmf_train_model(&cfg, &data, &res);
	check_result("items folded in", &cfg, &res);
	free_result(&res);
	cfg.fold_in_training = DMF_FOLD_TRAINING_AUTO;

	/* the blocks of 0.6.0 instead of the alternating schedule */
	cfg.schedule = DMF_SCHEDULE_BLOCKS;
	dmf_train_model(&cfg, &data, &res);
	check_result("blocks", &cfg, &res);
	free_result(&res);
	cfg.schedule = DMF_SCHEDULE_ALTERNATING;

	cfg.n_user_hidden = cfg.n_item_hidden = 1;
	cfg.activation = DMF_ACT_TANH;
	cfg.epochs = 4;
	cfg.dropout = 0;
	cfg.input_dropout = 0;
	cfg.threads = 1;
	cfg.input_encoding = DMF_INPUT_CENTERED;
	cfg.row_scale = 2;
	cfg.discrete = true;
	cfg.n_levels = 5;
	cfg.levels = levels;
	cfg.lambda_start = 5;
	cfg.lambda_growth = 1.3;
	cfg.lambda_max = 100;
	cfg.boundary_l2 = 0.1;
	dmf_train_model(&cfg, &data, &res);
	check_result("discrete", &cfg, &res);
	free_result(&res);

	/* implicit feedback: the ratings are weights, the pairs interactions */
	cfg.discrete = false;
	cfg.n_levels = 0;
	cfg.levels = NULL;
	cfg.rating_min = 0;
	cfg.rating_max = 1;
	cfg.input_encoding = DMF_INPUT_OFFSET;
	cfg.fold_in_steps = 0;
	cfg.fold_in_training = DMF_FOLD_TRAINING_NONE;
	cfg.feedback = DMF_FEEDBACK_IMPLICIT;
	cfg.negatives = 3;
	cfg.threads = 2;
	cfg.epochs = 12;
	dmf_train_model(&cfg, &data, &res);
	CHECK(!res.fold_choice.users && !res.fold_choice.items &&
		  memcmp(res.user_factors, res.user_anchors, sizeof(float) * USERS * cfg.dim) == 0 &&
		  memcmp(res.item_factors, res.item_anchors, sizeof(float) * ITEMS * cfg.dim) == 0,
		  "implicit: the factors are the branches', without fold-in");
	CHECK(res.best_validation_rmse < res.history[0].validation_rmse,
		  "implicit: validation %g, no better than after the first epoch (%g)",
		  res.best_validation_rmse, res.history[0].validation_rmse);
	printf("implicit: %d epochs, train RMSE %.4f, best validation RMSE %.4f (mean %.4f)\n",
		   res.epochs_run, res.final_train_rmse, res.best_validation_rmse, res.mean_validation_rmse);
	free_result(&res);

	free_triples(&data.train);
	free_triples(&data.validation);
	free_triples(&data.extra_input);
	dmf_helpers_stop_all();
	printf("%s\n", failed == 0 ? "ok" : "FAILED");
	return failed == 0 ? 0 : 1;
}
