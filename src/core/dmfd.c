/*
 * dmfd.c
 *	  DMF-D's quantizer during training: the Adam step of its boundaries and
 *	  their final calibration (see train.c for the phase that uses them).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "adam.h"
#include "dmfd.h"
#include "encoding.h"
#include "quantizer.h"

/*
 * DMF-D's boundaries were learned on the branch's factors; predictions use
 * the stored factors (fold-in included where fold_choice.h keeps it),
 * whose values spread differently.  So the boundaries are finally set
 * where the hard quantizer's squared error on the validation ratings is
 * least, with the factors as they will be predicted from (training inputs
 * only: no validation rating among them).
 */
void
dmf_calibrate_boundaries(const DmfTrainConfig *cfg, const DmfTriples *val,
						 double *predictions, double *bounds)
{
	double	   *r = dmf_alloc(sizeof(double) * (size_t) val->n);

	for (int64_t k = 0; k < val->n; k++)
		r[k] = val->rating[k];
	dmf_fit_boundaries(predictions, r, val->n, cfg->levels, cfg->n_levels, bounds);
	dmf_free(r);
}

/*
 * Adam step on the quantizer's inner boundaries, with the pull towards the
 * uniform quantizer (gamma2 ||b - b~||^2); each b_v then stays within
 * [I_v, I_{v+1}], which also keeps the boundaries sorted.
 */
void
dmf_boundary_step(const DmfTrainConfig *cfg, double *b, const double *uniform,
			  double *grad, double *m, double *v, double lr, long t)
{
	double		c1 = lr * sqrt(1.0 - pow(DMF_ADAM_BETA2, (double) t)) /
		(1.0 - pow(DMF_ADAM_BETA1, (double) t));

	for (int k = 1; k < cfg->n_levels; k++)
	{
		double		g = grad[k] + 2.0 * cfg->boundary_l2 * (b[k] - uniform[k]);

		m[k] = DMF_ADAM_BETA1 * m[k] + (1.0 - DMF_ADAM_BETA1) * g;
		v[k] = DMF_ADAM_BETA2 * v[k] + (1.0 - DMF_ADAM_BETA2) * g * g;
		b[k] -= c1 * m[k] / (sqrt(v[k]) + DMF_ADAM_EPS);
		if (b[k] < cfg->levels[k - 1])
			b[k] = cfg->levels[k - 1];
		if (b[k] > cfg->levels[k])
			b[k] = cfg->levels[k];
		grad[k] = 0.0;
	}
}
