/*
 * model_cache.h
 *	  A backend-local cache of decoded models.
 *
 * A model is megabytes; a query calling dmf_predict on a million rows
 * passes the same model a million times.  The cache recognises a model it
 * has decoded from its header (model id, size and payload checksum), or,
 * for a value stored out of line, from its TOAST pointer alone, so a call
 * costs a lookup, not a detoast and a validation.
 */
#ifndef DMF_MODEL_CACHE_H
#define DMF_MODEL_CACHE_H

#include "postgres.h"

#include "fmgr.h"

#include "model_format.h"

/*
 * The decoded, validated model held in datum.  ERROR if it is not a valid
 * model.  The result stays valid until the next call into the cache.
 */
const DmfModel *dmf_model_from_datum(Datum datum);

/* Decodes and validates the model bytes, without the cache (ERROR if bad). */
void		dmf_model_decode_or_error(const uint8_t *buf, size_t len, DmfModel *m);

#endif
