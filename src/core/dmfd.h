/*
 * dmfd.h
 *	  DMF-D's quantizer during training.
 */
#ifndef DMF_DMFD_H
#define DMF_DMFD_H

#include <stdint.h>

#include "network.h"
#include "train.h"

/*
 * Adam step on the quantizer's inner boundaries b (gradient in grad, zeroed
 * after), with the pull towards the uniform quantizer; each b_v stays
 * within [I_v, I_{v+1}].
 */
void		dmf_boundary_step(const DmfTrainConfig *cfg, double *b, const double *uniform,
							  double *grad, double *m, double *v, double lr, long t);

/*
 * Sets the boundaries where the hard quantizer's squared error on the
 * validation ratings val is least, given their predictions (rating scale)
 * from the factors as they will be stored (see fold_choice.h).
 */
void		dmf_calibrate_boundaries(const DmfTrainConfig *cfg, const DmfTriples *val,
									 double *predictions, double *bounds);

#endif
