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
 *
 * A model stored out of line, uncompressed and in format version 2 can be
 * read lazily (dmf_model_arg_lazy): a prediction in a fresh backend reads
 * the header, the page checksums, the section table, the ids and the pages
 * of the two factors it needs, not the whole value, and checks each page
 * against its checksum before any byte of it is used.  Any other use of
 * the model reads the rest and validates it whole, as a first full read
 * would (dmf_model_from_datum).
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
/* a lazily read model checks its factors in blocks of this many rows */
#define FACTOR_BLOCK_ROWS 64
/* and reads at most this many bytes per TOAST slice, to bound its memory */
#define MAX_SLICE_BYTES (8 << 20)

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

	/*
	 * Whether the model is entirely read and validated.  Until then (a lazy
	 * read) only the header, the ids and the settings in model are set,
	 * bytes holds the pages read so far and only dmf_access_factor reads
	 * factors.
	 */
	bool		complete;
	uint8	   *page_table;		/* the page checksums, checked */
	uint8	   *page_read;		/* per page: read and checked */
	DmfSectionRef sections[DMF_SECTION_KIND_END];
	uint8	   *factor_block_ok[2]; /* users, items: per FACTOR_BLOCK_ROWS rows */
	uint64		factor_row_bytes;	/* of a stored factor: dim x 4 or x 2 */
	float	   *lazy_factors[2];	/* bfloat16 models: the blocks read, widened */
	/* non-empty: found corrupt while read lazily; no call gets an answer again */
	char		rejected[256];
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
		if (cache[e].used && cache[e].complete && cache[e].total_size == len &&
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

/* ---- lazy reading of version 2 models stored out of line ---- */

/*
 * An ERROR for a model found corrupt; an entry already in the cache, some
 * of which may have answered calls, answers none again (dmf_model_arg_lazy,
 * dmf_model_from_datum).
 */
static void
reject(CacheEntry *e, const char *detail)
{
	if (e->used)
		strlcpy(e->rejected, detail, sizeof(e->rejected));
	report_decode_error(DMF_DECODE_CORRUPT, detail);
}

static void
report_if_rejected(const CacheEntry *e)
{
	if (e->rejected[0] != '\0')
		report_decode_error(DMF_DECODE_CORRUPT, e->rejected);
}

/*
 * Reads bytes [from, to) of the body of e's model from source, a TOAST
 * pointer to it: every page in the range not read yet, each checked against
 * its checksum before it counts as read.
 */
static void
read_range(CacheEntry *e, struct varlena *source, uint64 from, uint64 to)
{
	uint64		body_end = dmf_model_body_end(&e->model, e->total_size);
	uint64		page = e->model.page_size;
	uint32		max_run = (uint32) Max(1, MAX_SLICE_BYTES / page);
	uint32		first,
				last;

	Assert(from >= DMF_HEADER_SIZE && to <= body_end);
	if (from >= to)
		return;
	first = (uint32) ((from - DMF_HEADER_SIZE) / page);
	last = (uint32) ((to - 1 - DMF_HEADER_SIZE) / page);
	for (uint32 k = first; k <= last;)
	{
		uint32		run_end = k;
		uint64		start,
					end;
		struct varlena *slice;

		if (e->page_read[k])
		{
			k++;
			continue;
		}
		while (run_end < last && run_end - k + 1 < max_run && !e->page_read[run_end + 1])
			run_end++;
		start = DMF_HEADER_SIZE + (uint64) k * page;
		end = Min(DMF_HEADER_SIZE + ((uint64) run_end + 1) * page, body_end);
		slice = detoast_attr_slice(source, (int32) start, (int32) (end - start));
		if (VARSIZE_ANY_EXHDR(slice) != end - start)
			reject(e, "The model is shorter than its header says.");
		memcpy(e->bytes + start, VARDATA_ANY(slice), end - start);
		pfree(slice);
		for (uint32 j = k; j <= run_end; j++)
		{
			if (!dmf_model_page_ok(&e->model, e->total_size, e->bytes, e->page_table, j))
				reject(e, psprintf("The checksum of page %u does not match.", j));
			e->page_read[j] = 1;
		}
		k = run_end + 1;
	}
}

static void
read_section(CacheEntry *e, struct varlena *source, DmfSectionKind kind)
{
	const DmfSectionRef *s = &e->sections[kind];

	if (s->present)
		read_range(e, source, s->offset, s->offset + s->length);
}

/*
 * A new entry for the model behind source (a TOAST pointer to an
 * uncompressed value) with only what a prediction needs besides factors:
 * header, page checksums, section table, ids and quantizer, each checked.
 * NULL if the model is in format version 1, which has one checksum over
 * everything and is read whole.
 */
static CacheEntry *
lazy_entry(struct varlena *source, const ToastKey *key)
{
	struct varlena *head = detoast_attr_slice(source, 0, DMF_HEADER_SIZE);
	CacheEntry	fresh;
	CacheEntry *slot;
	DmfModel	peek;
	uint64		total,
				body_end;
	uint32		crc;
	char		detail[256];
	DmfDecodeStatus status;
	MemoryContext cxt;
	struct varlena *table;

	status = dmf_model_peek((const uint8 *) VARDATA_ANY(head), VARSIZE_ANY_EXHDR(head),
							&peek, &total, &crc, detail, sizeof(detail));
	report_decode_error(status, detail);
	if (peek.version < 2)
		return NULL;
	if (total != (uint64) key->rawsize - VARHDRSZ)
		report_decode_error(DMF_DECODE_CORRUPT,
							psprintf("The model has %zu bytes but its header says " UINT64_FORMAT ".",
									 (size_t) key->rawsize - VARHDRSZ, total));
	slot = victim();			/* may ERROR: before allocating */

	/* under the query's context until complete, so that an ERROR frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "dmf model", ALLOCSET_DEFAULT_SIZES);
	memset(&fresh, 0, sizeof(fresh));
	fresh.cxt = cxt;
	fresh.total_size = total;
	fresh.payload_crc = crc;
	fresh.model = peek;
	/* the whole size, but only the pages read are ever touched */
	fresh.bytes = MemoryContextAllocExtended(cxt, total, MCXT_ALLOC_HUGE);
	memcpy(fresh.bytes, VARDATA_ANY(head), DMF_HEADER_SIZE);
	memcpy(fresh.header, VARDATA_ANY(head), DMF_HEADER_SIZE);

	body_end = dmf_model_body_end(&peek, total);
	table = detoast_attr_slice(source, (int32) body_end, (int32) (total - body_end));
	if (VARSIZE_ANY_EXHDR(table) != total - body_end ||
		!dmf_model_page_table_ok(&peek, (const uint8 *) VARDATA_ANY(table), crc))
		report_decode_error(DMF_DECODE_CORRUPT, "The payload checksum does not match.");
	fresh.page_table = MemoryContextAlloc(cxt, total - body_end);
	memcpy(fresh.page_table, VARDATA_ANY(table), total - body_end);
	fresh.page_read = MemoryContextAllocZero(cxt, peek.n_pages);

	/* the section table, then the sections a prediction needs */
	read_range(&fresh, source, DMF_HEADER_SIZE,
			   Min(body_end, DMF_HEADER_SIZE + (uint64) DMF_MAX_SECTIONS * DMF_SECTION_ENTRY_SIZE));
	status = dmf_model_read_sections(fresh.bytes, &peek, total, fresh.sections,
									 detail, sizeof(detail));
	report_decode_error(status, detail);
	read_section(&fresh, source, DMF_SECTION_USER_IDS);
	read_section(&fresh, source, DMF_SECTION_ITEM_IDS);
	read_section(&fresh, source, DMF_SECTION_QUANTIZER);
	status = dmf_model_decode_ids(fresh.bytes, fresh.sections, &fresh.model,
								  detail, sizeof(detail));
	report_decode_error(status, detail);
	add_side_index(&fresh.model.users, cxt);
	add_side_index(&fresh.model.items, cxt);
	fresh.factor_block_ok[0] =
		MemoryContextAllocZero(cxt, fresh.model.users.n / FACTOR_BLOCK_ROWS + 1);
	fresh.factor_block_ok[1] =
		MemoryContextAllocZero(cxt, fresh.model.items.n / FACTOR_BLOCK_ROWS + 1);
	fresh.factor_row_bytes = dmf_factor_row_bytes(&peek);
	if (fresh.factor_row_bytes != (uint64) peek.dim * sizeof(float))
	{
		/* whole sides, of which only the blocks read are ever touched */
		for (int side = 0; side < 2; side++)
			fresh.lazy_factors[side] =
				MemoryContextAllocExtended(cxt, sizeof(float) * peek.dim *
										   (Size) Max(1, side == 0 ? fresh.model.users.n
													  : fresh.model.items.n),
										   MCXT_ALLOC_HUGE);
	}

	/* install it */
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "dmf model cache",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextSetParent(cxt, cache_cxt);
	if (slot->used)
		MemoryContextDelete(slot->cxt);
	*slot = fresh;
	slot->used = true;
	slot->generation = ++generation_clock;
	memcpy(slot->model_id, peek.model_id, 16);
	remember_toast(slot, key);
	return slot;
}

/*
 * Reads the rest of a lazily read model from source and validates it whole,
 * as a first full read does; the pointers handed out so far stay valid.
 */
static void
complete_entry(CacheEntry *e, struct varlena *source)
{
	DmfModel	m;
	DmfDecodeStatus status;
	char		detail[256];
	MemoryContext old;

	read_range(e, source, DMF_HEADER_SIZE, dmf_model_body_end(&e->model, e->total_size));
	memcpy(e->bytes + dmf_model_body_end(&e->model, e->total_size), e->page_table,
		   4 * (uint64) e->model.n_pages);
	old = MemoryContextSwitchTo(e->cxt);
	status = dmf_model_decode(e->bytes, e->total_size, &m, detail, sizeof(detail));
	MemoryContextSwitchTo(old);
	if (status == DMF_DECODE_OK && !meta_is_json_object(m.meta, m.meta_len))
	{
		status = DMF_DECODE_CORRUPT;
		snprintf(detail, sizeof(detail), "The metadata is not a JSON object.");
	}
	if (status != DMF_DECODE_OK)
	{
		if (m.widened != NULL)	/* decoded, but the metadata is bad */
			pfree(m.widened);
		reject(e, detail);
	}
	/* the ids are the ones already indexed */
	m.users.index = e->model.users.index;
	m.users.index_lo = e->model.users.index_lo;
	m.users.index_len = e->model.users.index_len;
	m.items.index = e->model.items.index;
	m.items.index_lo = e->model.items.index_lo;
	m.items.index_len = e->model.items.index_len;
	e->model = m;
	e->complete = true;
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
	{
		report_if_rejected(e);
		if (!e->complete)
			complete_entry(e, raw);
		return use_entry(e);
	}

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

		if (!dmf_model_checksums_ok(data, len, &peek, crc))
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
		e->complete = true;
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
		cache[memo->entry].used && cache[memo->entry].generation == memo->generation &&
		cache[memo->entry].complete)
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
		if (cache[e].used && cache[e].complete &&
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

/* ---- single factors of a model, read lazily ---- */

/* Whether the value a TOAST key names is stored compressed. */
static bool
key_is_compressed(const ToastKey *key)
{
	struct varatt_external ext;

	ext.va_rawsize = key->rawsize;
	ext.va_extinfo = key->extinfo;
	return VARATT_EXTERNAL_IS_COMPRESSED(ext);
}

const DmfModel *
dmf_model_arg_lazy(FunctionCallInfo fcinfo, int argno, DmfModelAccess *access)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno));
	ToastKey	key;
	CacheEntry *e = NULL;

	/* a compressed value has no slices cheaper than the whole */
	if (toast_key_of(raw, &key) && !key_is_compressed(&key))
	{
		e = find_by_toast(&key);
		if (e != NULL)
			report_if_rejected(e);
		else
			e = lazy_entry(raw, &key);
	}
	if (e == NULL)
	{
		const DmfModel *m = dmf_model_arg(fcinfo, argno);

		e = (CacheEntry *) ((char *) m - offsetof(CacheEntry, model));
	}
	access->slot = (int) (e - cache);
	access->generation = e->generation;
	access->source = raw;
	return use_entry(e);
}

const float *
dmf_access_factor(const DmfModelAccess *access, bool user_side, int32 k)
{
	CacheEntry *e = &cache[access->slot];
	const DmfSide *s = user_side ? &e->model.users : &e->model.items;
	const DmfSectionRef *sec;
	uint8	   *ok;
	uint64		row = e->factor_row_bytes;
	float	   *widened = e->lazy_factors[user_side ? 0 : 1];

	if (!e->used || e->generation != access->generation)
		elog(ERROR, "dmf model cache entry %d is gone", access->slot);
	Assert(k >= 0 && k < s->n);
	if (e->complete)
		return s->factors + (size_t) k * e->model.dim;
	sec = &e->sections[user_side ? DMF_SECTION_USER_FACTORS : DMF_SECTION_ITEM_FACTORS];
	ok = &e->factor_block_ok[user_side ? 0 : 1][k / FACTOR_BLOCK_ROWS];
	if (!*ok)
	{
		uint64		first = (uint64) (k / FACTOR_BLOCK_ROWS) * FACTOR_BLOCK_ROWS;
		uint64		rows = Min((uint64) FACTOR_BLOCK_ROWS, (uint64) s->n - first);
		uint64		from = sec->offset + first * row;

		read_range(e, access->source, from, from + rows * row);
		if (widened != NULL)
			dmf_factor_values_read(&e->model, e->bytes + from, widened + first * e->model.dim,
								   rows * e->model.dim);
		if (!dmf_factor_values_ok(widened != NULL ? widened + first * e->model.dim
								  : (const float *) (e->bytes + from),
								  rows * e->model.dim))
			reject(e, psprintf("The %s factors are not unit vectors.",
							   user_side ? "user" : "item"));
		*ok = 1;
	}
	if (widened != NULL)
		return widened + (size_t) k * e->model.dim;
	return (const float *) (e->bytes + sec->offset + (uint64) k * row);
}
