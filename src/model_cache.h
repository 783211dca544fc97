/*
 * model_cache.h
 *	  A backend-local cache of decoded models.
 *
 * A model is megabytes; a query calling dmf_predict on a million rows
 * passes the same model a million times.  The cache recognises a model it
 * has decoded only on proof that the bytes are the same: for a value stored
 * out of line, its TOAST pointer (a call costs a lookup), else a comparison
 * of every byte with the cached copy (a memcmp, still far cheaper than a
 * detoast, a checksum and a validation).
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

/*
 * dmf_model_from_datum for argument argno of a call: the same, and when the
 * argument is a constant of the plan, later calls of the call site cost a
 * comparison of addresses.
 */
const DmfModel *dmf_model_arg(FunctionCallInfo fcinfo, int argno);

/*
 * For calls that read single factors (dmf_predict and the like): the model
 * of argument argno, read lazily when it is stored out of line in format
 * version 2 (see model_cache.c), else as dmf_model_arg reads it.  Its ids,
 * counts, rating range and quantizer are set; its factors are read only
 * through dmf_access_factor, with the access filled here, within the call.
 * Nothing else of the model may be used.
 */
typedef struct DmfModelAccess
{
	int			slot;
	uint64		generation;		/* of the slot's entry */
	struct varlena *source;		/* the argument: where further pages come from */
} DmfModelAccess;

const DmfModel *dmf_model_arg_lazy(FunctionCallInfo fcinfo, int argno,
								   DmfModelAccess *access);
/* Factor k (an index from dmf_side_find) of the users or the items. */
const float *dmf_access_factor(const DmfModelAccess *access, bool user_side, int32 k);

/*
 * A reference to a cached model that survives across calls, for aggregate
 * states: pinned, the model is not evicted until the owner context is
 * reset or deleted.
 */
typedef struct DmfModelRef
{
	int			slot;
	uint64		generation;
} DmfModelRef;

DmfModelRef dmf_model_ref(const DmfModel *m);
void		dmf_model_pin(DmfModelRef ref, MemoryContext owner);
/* The model, or NULL if it is no longer cached. */
const DmfModel *dmf_model_deref(DmfModelRef ref);
/* The model's header (DMF_HEADER_SIZE bytes): its id, not a proof of identity. */
void		dmf_model_identity(DmfModelRef ref, uint8 *header);
/*
 * A datum another process can read the model from: its TOAST pointer when
 * it came from a table, else a copy of its bytes.
 */
bytea	   *dmf_model_shippable(DmfModelRef ref);
/* Whether the model has been seen as a value stored out of line. */
bool		dmf_model_stored_out_of_line(DmfModelRef ref);

/*
 * SHA-256 of a model's bytes: an identity another process can check
 * without the bytes (computed once per cached model, when first asked).
 * dmf_model_find_digest answers only for a cached model with that digest.
 */
#define DMF_MODEL_DIGEST_LEN 32
void		dmf_bytes_digest(const uint8 *data, Size len, uint8 *digest);
void		dmf_model_digest(DmfModelRef ref, uint8 *digest);
const DmfModel *dmf_model_find_digest(const uint8 *digest);

/* Decodes and validates model bytes without the cache (ERROR if bad). */
void		dmf_model_decode_or_error(const uint8_t *buf, size_t len, DmfModel *m);

#endif
