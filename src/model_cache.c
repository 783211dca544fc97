/*
 * model_cache.c
 *	  Decode each model once per backend.
 */
#include "postgres.h"

#include "access/detoast.h"
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
	ToastKey	toast[TOAST_KEYS_PER_ENTRY];
	int			n_toast;
	MemoryContext cxt;			/* holds the bytes the model points into */
	DmfModel	model;
} CacheEntry;

static CacheEntry cache[CACHE_ENTRIES];
static uint64 use_clock = 0;
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

static CacheEntry *
find_by_header(const uint8 *id, uint64 total, uint32 crc)
{
	for (int e = 0; e < CACHE_ENTRIES; e++)
		if (cache[e].used && cache[e].total_size == total &&
			cache[e].payload_crc == crc &&
			memcmp(cache[e].model_id, id, 16) == 0)
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
	CacheEntry *best = &cache[0];

	for (int e = 0; e < CACHE_ENTRIES; e++)
	{
		if (!cache[e].used)
			return &cache[e];
		if (cache[e].last_use < best->last_use)
			best = &cache[e];
	}
	return best;
}

const DmfModel *
dmf_model_from_datum(Datum datum)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(datum);
	ToastKey	key;
	bool		has_key = toast_key_of(raw, &key);
	CacheEntry *e = NULL;
	DmfModel	peek;
	uint64		total;
	uint32		crc;
	char		detail[256];
	DmfDecodeStatus status;
	struct varlena *full;
	Size		len;
	MemoryContext cxt;
	uint8	   *bytes;

	if (has_key && (e = find_by_toast(&key)) != NULL)
	{
		e->last_use = ++use_clock;
		return &e->model;
	}

	/* the header alone tells whether we know this model */
	{
		struct varlena *head = pg_detoast_datum_slice(raw, 0, DMF_HEADER_SIZE);

		status = dmf_model_peek((const uint8 *) VARDATA_ANY(head),
								VARSIZE_ANY_EXHDR(head), &peek, &total, &crc,
								detail, sizeof(detail));
		if ((Pointer) head != (Pointer) raw)
			pfree(head);
	}
	if (status == DMF_DECODE_OK)
		e = find_by_header(peek.model_id, total, crc);
	if (e != NULL)
	{
		if (has_key)
			remember_toast(e, &key);
		e->last_use = ++use_clock;
		return &e->model;
	}
	report_decode_error(status, detail);

	/* a new model: read it whole, align it, validate it, keep it */
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "dmf model cache",
										  ALLOCSET_SMALL_SIZES);
	full = pg_detoast_datum_packed(raw);
	len = VARSIZE_ANY_EXHDR(full);
	cxt = AllocSetContextCreate(cache_cxt, "dmf model", ALLOCSET_DEFAULT_SIZES);
	/* palloc returns MAXALIGNed (8-byte) memory, as the decoder needs */
	bytes = MemoryContextAllocExtended(cxt, len > 0 ? len : 1, MCXT_ALLOC_HUGE);
	memcpy(bytes, VARDATA_ANY(full), len);
	if ((Pointer) full != (Pointer) raw)
		pfree(full);

	{
		DmfModel	m;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		status = dmf_model_decode(bytes, len, &m, detail, sizeof(detail));
		MemoryContextSwitchTo(old);
		if (status != DMF_DECODE_OK)
		{
			MemoryContextDelete(cxt);
			report_decode_error(status, detail);
		}

		e = victim();
		if (e->used)
			MemoryContextDelete(e->cxt);
		memset(e, 0, sizeof(*e));
		e->used = true;
		e->cxt = cxt;
		e->model = m;
		memcpy(e->model_id, m.model_id, 16);
		e->total_size = total;
		e->payload_crc = crc;
		if (has_key)
			remember_toast(e, &key);
		e->last_use = ++use_clock;
	}
	return &e->model;
}
