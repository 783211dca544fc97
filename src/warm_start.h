/*
 * warm_start.h
 *	  dmf_train's init: a trained model to start from (warm_start.c).
 */
#ifndef DMF_WARM_START_H
#define DMF_WARM_START_H

#include "postgres.h"

#include "encoding.h"
#include "model_format.h"
#include "options.h"
#include "train.h"

/*
 * Before reading the rows: ERROR unless the options that shape the network
 * are the model's; the rating scale becomes the model's unless given.
 */
extern void dmf_warm_start_check(const DmfModel *m, DmfOptions *o);

/*
 * Once the ids are known: the model's weights for the training (c on the
 * rating scale), pointing into m, which must outlive the training.
 */
extern DmfWarmStart *dmf_warm_start_map(const DmfModel *m, const DmfTrainConfig *c,
										const DmfRatingScale *scale,
										const int64 *user_ids, int32 n_users,
										const int64 *item_ids, int32 n_items);

#endif
