/*
 * model_cache.c
 *	  Decode each model once per backend.
 *
 * One backend serves many roles (SET ROLE, SECURITY DEFINER functions,
 * connection pools), so the cache must never answer for a value with
 * another value's decoding.  It answers only on proof that the bytes are
 * the ones it decoded: the same TOAST pointer (a stored value never changes
 * under it), or a full comparison with the cached bytes.  A header match
 * or a checksum match is no proof: CRC32C collisions are easy to make.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "common/cryptohash.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "nodes/primnodes.h"
#include "utils/memutils.h"

#include "model_cache.h"

#define CACHE_ENTRIES 8
#define TOAST_KEYS_PER_ENTRY 4

/* What identifies an out-of-line value without reading it. */
typedef struct ToastKey
{
	Oid			toastrelid;
	Oid			valueid;
	int32		rawsize;
	uint32		extinfo;
} ToastKey;

typedef struct CacheEntry
{
	bool		used;
	uint64		last_use;
	uint8		model_id[16];
	uint64		total_size;
	uint32		payload_crc;
	uint8		header[DMF_HEADER_SIZE];
	uint64		generation;		/* changes when the slot is reused */
	int			pins;			/* aggregate states using this model */
	uint8	   *bytes;			/* the aligned model bytes */
	ToastKey	toast[TOAST_KEYS_PER_ENTRY];
	int			n_toast;
	MemoryContext cxt;			/* holds the bytes the model points into */
	bool		has_digest;
	uint8		digest[DMF_MODEL_DIGEST_LEN];	/* SHA-256 of bytes, once asked */
	DmfModel	model;
} CacheEntry;

static CacheEntry cache[CACHE_ENTRIES];
static uint64 use_clock = 0;
static uint64 generation_clock = 0;
static MemoryContext cache_cxt = NULL;

static void
report_decode_error(DmfDecodeStatus status, const char *detail)
{
	if (status == DMF_DECODE_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported dmf model format version"),
				 errdetail("%s", detail),
				 errhint("Retrain the model with this version of dmf.")));
	if (status != DMF_DECODE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid dmf model"),
				 errdetail("%s", detail),
				 errhint("Pass a value returned by dmf_train or dmf_refresh, unchanged.")));
}

void
dmf_model_decode_or_error(const uint8_t *buf, size_t len, DmfModel *m)
{
	char		detail[256];
	DmfDecodeStatus status = dmf_model_decode(buf, len, m, detail, sizeof(detail));

	report_decode_error(status, detail);
}

static bool
toast_key_of(struct varlena *v, ToastKey *key)
{
	struct varatt_external ext;

	if (!VARATT_IS_EXTERNAL_ONDISK(v))
		return false;
	VARATT_EXTERNAL_GET_POINTER(ext, v);
	memset(key, 0, sizeof(*key));
	key->toastrelid = ext.va_toastrelid;
	key->valueid = ext.va_valueid;
	key->rawsize = ext.va_rawsize;
	key->extinfo = ext.va_extinfo;
	return true;
}

/* The metadata section must be a JSON object in the database encoding. */
static bool
meta_is_json_object(const char *meta, uint32 len)
{
	JsonLexContext *lex;
	uint32		k = 0;

	while (k < len && (meta[k] == ' ' || meta[k] == '\n' || meta[k] == '\t' || meta[k] == '\r'))
		k++;
	if (k == len || meta[k] != '{')
		return false;
	if (memchr(meta, '\0', len) != NULL || !pg_verifymbstr(meta, (int) len, true))
		return false;
	lex = makeJsonLexContextCstringLen(unconstify(char *, meta), (int) len,
									   GetDatabaseEncoding(), true);
	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

static CacheEntry *
find_by_toast(const ToastKey *key)
{
	for (int e = 0; e < CACHE_ENTRIES; e++)
	{
		if (!cache[e].used)
			continue;
		for (int k = 0; k < cache[e].n_toast; k++)
			if (memcmp(&cache[e].toast[k], key, sizeof(*key)) == 0)
				return &cache[e];
	}
	return NULL;
}

/*
 * The entry whose bytes are exactly data[0..len).  Entries may share a
 * header (a forged payload with a colliding checksum, a re-sealed header):
 * each is compared whole, and a different value gets its own entry.
 */
static CacheEntry *
find_by_bytes(const uint8 *data, Size len)
{
	for (int e = 0; e < CACHE_ENTRIES; e++)
		if (cache[e].used && cache[e].total_size == len &&
			memcmp(cache[e].header, data, DMF_HEADER_SIZE) == 0 &&
			memcmp(cache[e].bytes, data, len) == 0)
			return &cache[e];
	return NULL;
}

static void
remember_toast(CacheEntry *e, const ToastKey *key)
{
	if (e->n_toast < TOAST_KEYS_PER_ENTRY)
		e->toast[e->n_toast++] = *key;
	else
	{
		memmove(&e->toast[0], &e->toast[1], sizeof(ToastKey) * (TOAST_KEYS_PER_ENTRY - 1));
		e->toast[TOAST_KEYS_PER_ENTRY - 1] = *key;
	}
}

static CacheEntry *
victim(void)
{
	CacheEntry *best = NULL;

	for (int e = 0; e < CACHE_ENTRIES; e++)
	{
		if (!cache[e].used)
			return &cache[e];
		if (cache[e].pins > 0)
			continue;
		if (best == NULL || cache[e].last_use < best->last_use)
			best = &cache[e];
	}
	if (best == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct dmf models in use at once"),
				 errdetail("Aggregates of one query hold %d models.", CACHE_ENTRIES),
				 errhint("Compute factors for fewer models per query.")));
	return best;
}

/* Gives a cached side a direct id index when its ids are dense. */
static void
add_side_index(DmfSide *s, MemoryContext cxt)
{
	int64		len = dmf_side_index_len(s);

	if (len > 0)
		dmf_side_index_build(s, MemoryContextAllocExtended(cxt, sizeof(int32) * len,
														   MCXT_ALLOC_HUGE));
}

static const DmfModel *
use_entry(CacheEntry *e)
{
	e->last_use = ++use_clock;
	return &e->model;
}

const DmfModel *
dmf_model_from_datum(Datum datum)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(datum);
	ToastKey	key;
	bool		has_key = toast_key_of(raw, &key);
	CacheEntry *e;
	DmfModel	peek;
	uint64		total;
	uint32		crc;
	char		detail[256];
	DmfDecodeStatus status;
	struct varlena *full;
	const uint8 *data;
	Size		len;
	MemoryContext cxt;
	uint8	   *bytes;

	/* a stored value cannot change under its TOAST pointer */
	if (has_key && (e = find_by_toast(&key)) != NULL)
		return use_entry(e);

	full = pg_detoast_datum_packed(raw);
	data = (const uint8 *) VARDATA_ANY(full);
	len = VARSIZE_ANY_EXHDR(full);

	status = dmf_model_peek(data, len, &peek, &total, &crc, detail, sizeof(detail));
	report_decode_error(status, detail);
	if (total != len)
		report_decode_error(DMF_DECODE_CORRUPT,
							psprintf("The model has %zu bytes but its header says " UINT64_FORMAT ".",
									 (size_t) len, total));

	/* bytes identical to validated ones need no checksum or validation */
	e = find_by_bytes(data, len);
	if (e == NULL)
	{
		/* a new model: copy it aligned, validate it whole, keep it */
		DmfModel	m;
		CacheEntry *slot;

		if (dmf_model_payload_crc(data, len) != crc)
			report_decode_error(DMF_DECODE_CORRUPT, "The payload checksum does not match.");
		slot = victim();		/* may ERROR: before allocating */

		if (cache_cxt == NULL)
			cache_cxt = AllocSetContextCreate(TopMemoryContext, "dmf model cache",
											  ALLOCSET_SMALL_SIZES);
		cxt = AllocSetContextCreate(cache_cxt, "dmf model", ALLOCSET_DEFAULT_SIZES);
		/* palloc returns MAXALIGNed (8-byte) memory, as the decoder needs */
		bytes = MemoryContextAllocExtended(cxt, len > 0 ? len : 1, MCXT_ALLOC_HUGE);
		memcpy(bytes, data, len);
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			status = dmf_model_decode(bytes, len, &m, detail, sizeof(detail));
			MemoryContextSwitchTo(old);
		}
		if (status == DMF_DECODE_OK && !meta_is_json_object(m.meta, m.meta_len))
		{
			status = DMF_DECODE_CORRUPT;
			snprintf(detail, sizeof(detail), "The metadata is not a JSON object.");
		}
		if (status != DMF_DECODE_OK)
		{
			MemoryContextDelete(cxt);
			report_decode_error(status, detail);
		}

		e = slot;
		if (e->used)
			MemoryContextDelete(e->cxt);
		memset(e, 0, sizeof(*e));
		e->used = true;
		e->generation = ++generation_clock;
		e->cxt = cxt;
		e->model = m;
		add_side_index(&e->model.users, cxt);
		add_side_index(&e->model.items, cxt);
		e->bytes = bytes;
		memcpy(e->model_id, m.model_id, 16);
		e->total_size = total;
		e->payload_crc = crc;
		memcpy(e->header, data, DMF_HEADER_SIZE);
	}
	if (has_key)
		remember_toast(e, &key);
	if ((Pointer) full != (Pointer) raw)
		pfree(full);
	return use_entry(e);
}

/*
 * A call site whose model argument is a constant of the plan (a literal, or
 * a parameter a custom plan inlined) passes the same value, at the same
 * address, for as long as the call site lives: the address is then proof
 * enough.  Nothing else is: a parameter of a generic plan, or a PL/pgSQL
 * variable, can change between calls of one call site.
 */
typedef struct ConstArgMemo
{
	int			argno;
	Pointer		ptr;
	int			entry;
	uint64		generation;
} ConstArgMemo;

static bool
arg_is_const(FunctionCallInfo fcinfo, int argno)
{
	Node	   *expr;
	List	   *args;

	if (fcinfo->context && IsA(fcinfo->context, AggState))
	{
		/* a transition function's argument n is the aggregate's n - 1 */
		Aggref	   *aggref = AggGetAggref(fcinfo);

		if (aggref == NULL || argno < 1 || argno > list_length(aggref->args))
			return false;
		return IsA(list_nth_node(TargetEntry, aggref->args, argno - 1)->expr, Const);
	}
	expr = fcinfo->flinfo ? fcinfo->flinfo->fn_expr : NULL;
	if (expr == NULL || !IsA(expr, FuncExpr))
		return false;
	args = ((FuncExpr *) expr)->args;
	return argno < list_length(args) && IsA(list_nth(args, argno), Const);
}

const DmfModel *
dmf_model_arg(FunctionCallInfo fcinfo, int argno)
{
	Datum		datum = PG_GETARG_DATUM(argno);
	ConstArgMemo *memo = (ConstArgMemo *) fcinfo->flinfo->fn_extra;
	const DmfModel *m;
	CacheEntry *e;

	if (memo && memo->argno == argno && memo->ptr == DatumGetPointer(datum) &&
		cache[memo->entry].used && cache[memo->entry].generation == memo->generation)
		return use_entry(&cache[memo->entry]);
	m = dmf_model_from_datum(datum);
	if (!arg_is_const(fcinfo, argno))
		return m;
	e = (CacheEntry *) ((char *) m - offsetof(CacheEntry, model));
	if (memo == NULL)
		memo = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ConstArgMemo));
	memo->argno = argno;
	memo->ptr = DatumGetPointer(datum);
	memo->entry = (int) (e - cache);
	memo->generation = e->generation;
	return m;
}

DmfModelRef
dmf_model_ref(const DmfModel *m)
{
	CacheEntry *e = (CacheEntry *) ((char *) m - offsetof(CacheEntry, model));
	DmfModelRef ref;

	Assert(e >= cache && e < cache + CACHE_ENTRIES);
	ref.slot = (int) (e - cache);
	ref.generation = e->generation;
	return ref;
}

static CacheEntry *
entry_of(DmfModelRef ref)
{
	if (ref.slot < 0 || ref.slot >= CACHE_ENTRIES)
		return NULL;
	if (!cache[ref.slot].used || cache[ref.slot].generation != ref.generation)
		return NULL;
	return &cache[ref.slot];
}

typedef struct PinRelease
{
	MemoryContextCallback cb;
	DmfModelRef ref;
} PinRelease;

static void
release_pin(void *arg)
{
	PinRelease *p = (PinRelease *) arg;
	CacheEntry *e = entry_of(p->ref);

	if (e && e->pins > 0)
		e->pins--;
}

void
dmf_model_pin(DmfModelRef ref, MemoryContext owner)
{
	CacheEntry *e = entry_of(ref);
	PinRelease *p;

	if (e == NULL)
		elog(ERROR, "dmf model cache entry %d is gone", ref.slot);
	p = MemoryContextAlloc(owner, sizeof(PinRelease));
	p->ref = ref;
	p->cb.func = release_pin;
	p->cb.arg = p;
	MemoryContextRegisterResetCallback(owner, &p->cb);
	e->pins++;
}

const DmfModel *
dmf_model_deref(DmfModelRef ref)
{
	CacheEntry *e = entry_of(ref);

	return e ? use_entry(e) : NULL;
}

void
dmf_model_identity(DmfModelRef ref, uint8 *header)
{
	CacheEntry *e = entry_of(ref);

	if (e == NULL)
		elog(ERROR, "dmf model cache entry %d is gone", ref.slot);
	memcpy(header, e->header, DMF_HEADER_SIZE);
}

void
dmf_bytes_digest(const uint8 *data, Size len, uint8 *digest)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, data, len) < 0 ||
		pg_cryptohash_final(ctx, digest, DMF_MODEL_DIGEST_LEN) < 0)
		elog(ERROR, "could not compute a SHA-256 digest: %s",
			 ctx ? pg_cryptohash_error(ctx) : "out of memory");
	pg_cryptohash_free(ctx);
}

static const uint8 *
entry_digest(CacheEntry *e)
{
	if (!e->has_digest)
	{
		dmf_bytes_digest(e->bytes, e->total_size, e->digest);
		e->has_digest = true;
	}
	return e->digest;
}

void
dmf_model_digest(DmfModelRef ref, uint8 *digest)
{
	CacheEntry *e = entry_of(ref);

	if (e == NULL)
		elog(ERROR, "dmf model cache entry %d is gone", ref.slot);
	memcpy(digest, entry_digest(e), DMF_MODEL_DIGEST_LEN);
}

const DmfModel *
dmf_model_find_digest(const uint8 *digest)
{
	for (int e = 0; e < CACHE_ENTRIES; e++)
		if (cache[e].used &&
			memcmp(entry_digest(&cache[e]), digest, DMF_MODEL_DIGEST_LEN) == 0)
			return use_entry(&cache[e]);
	return NULL;
}

bool
dmf_model_stored_out_of_line(DmfModelRef ref)
{
	CacheEntry *e = entry_of(ref);

	return e != NULL && e->n_toast > 0;
}

bytea *
dmf_model_shippable(DmfModelRef ref)
{
	CacheEntry *e = entry_of(ref);
	bytea	   *out;

	if (e == NULL)
		elog(ERROR, "dmf model cache entry %d is gone", ref.slot);
	if (e->n_toast > 0)
	{
		/* rebuild the TOAST pointer: any backend of this database can follow it */
		const ToastKey *k = &e->toast[e->n_toast - 1];
		struct varatt_external ext;

		ext.va_rawsize = k->rawsize;
		ext.va_extinfo = k->extinfo;
		ext.va_valueid = k->valueid;
		ext.va_toastrelid = k->toastrelid;
		out = palloc(VARHDRSZ_EXTERNAL + sizeof(ext));
		SET_VARTAG_EXTERNAL(out, VARTAG_ONDISK);
		memcpy(VARDATA_EXTERNAL(out), &ext, sizeof(ext));
		return out;
	}
	out = palloc_extended(VARHDRSZ + e->total_size, MCXT_ALLOC_HUGE);
	SET_VARSIZE(out, VARHDRSZ + e->total_size);
	memcpy(VARDATA(out), e->bytes, e->total_size);
	return out;
}
