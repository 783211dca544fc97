/*
 * model_format.c
 *	  Decode, with full validation, the model bytes (model_encode.c writes
 *	  them).
 *
 * This file must never read outside the buffer it is given, whatever the
 * buffer holds: it is the one place where bytes from a user's table turn
 * into pointers.  Every size is checked in 64-bit arithmetic against the
 * length before use.  It is built into the fuzz harness as it is.
 */
#ifdef DMF_STANDALONE
#include "postgres_fe.h"
#endif
#include "platform.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bfloat16.h"
#include "model_layout.h"

#ifdef WORDS_BIGENDIAN
#error "the dmf model format is little-endian; big-endian hosts are not supported"
#endif


/* an implicit model (implicit.h) never folds in, quantizes or centres */
#define IMPLICIT_EXCLUDES (DMF_FLAG_DISCRETE | DMF_FLAG_CENTERED_INPUT)
#define IMPLICIT_REQUIRES (DMF_FLAG_TRAINED_USERS_UNFOLDED | DMF_FLAG_TRAINED_ITEMS_UNFOLDED)

static DmfDecodeStatus
fail(DmfDecodeStatus status, char *detail, size_t detail_len,
	 const char *fmt,...)
{
	va_list		ap;

	if (detail && detail_len > 0)
	{
		va_start(ap, fmt);
		vsnprintf(detail, detail_len, fmt, ap);
		va_end(ap);
	}
	return status;
}

/* version 1: one checksum over everything after the header */
static uint32_t
payload_crc(const uint8_t *buf, uint64_t total)
{
	return crc32c_of(buf + DMF_HEADER_SIZE, total - DMF_HEADER_SIZE);
}

uint64_t
dmf_model_body_end(const DmfModel *peeked, uint64_t total)
{
	return total - 4 * (uint64_t) peeked->n_pages;
}

bool
dmf_model_page_table_ok(const DmfModel *peeked, const uint8_t *table, uint32_t crc)
{
	return crc32c_of(table, 4 * (uint64_t) peeked->n_pages) == crc;
}

bool
dmf_model_page_ok(const DmfModel *peeked, uint64_t total, const uint8_t *buf,
				  const uint8_t *table, uint32_t k)
{
	uint64_t	body_end = dmf_model_body_end(peeked, total);
	uint64_t	start = DMF_HEADER_SIZE + (uint64_t) k * peeked->page_size;
	uint64_t	end = start + peeked->page_size;

	if (k >= peeked->n_pages)
		return false;
	if (end > body_end)
		end = body_end;
	return crc32c_of(buf + start, end - start) == get_u32(table + 4 * (uint64_t) k);
}

bool
dmf_model_checksums_ok(const uint8_t *buf, size_t len, const DmfModel *peeked,
					   uint32_t crc)
{
	const uint8_t *table;

	if (peeked->version == 1)
		return payload_crc(buf, len) == crc;
	table = buf + dmf_model_body_end(peeked, len);
	if (!dmf_model_page_table_ok(peeked, table, crc))
		return false;
	for (uint32_t k = 0; k < peeked->n_pages; k++)
		if (!dmf_model_page_ok(peeked, len, buf, table, k))
			return false;
	return true;
}

DmfDecodeStatus
dmf_model_peek(const uint8_t *buf, size_t len, DmfModel *m,
			   uint64_t *total_size, uint32_t *crc_out,
			   char *detail, size_t detail_len)
{
	uint16_t	version;
	int32_t		act;

	memset(m, 0, sizeof(*m));
	if (len < 8 || memcmp(buf + H_MAGIC, DMF_MAGIC, 4) != 0)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The value does not start with the dmf model signature.");
	version = get_u16(buf + H_VERSION);
	if (version < DMF_FORMAT_VERSION_MIN || version > DMF_FORMAT_VERSION)
		return fail(DMF_DECODE_VERSION, detail, detail_len,
					"The model has format version %u; this build of dmf reads versions %d to %d.",
					(unsigned) version, DMF_FORMAT_VERSION_MIN, DMF_FORMAT_VERSION);
	if (len < DMF_HEADER_SIZE)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The model is truncated: %zu bytes, less than its %d-byte header.",
					len, DMF_HEADER_SIZE);
	if (get_u16(buf + H_HEADER_SIZE) != DMF_HEADER_SIZE)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The header size is %u, expected %d.",
					(unsigned) get_u16(buf + H_HEADER_SIZE), DMF_HEADER_SIZE);
	if (get_u32(buf + H_HEADER_CRC) != header_crc(buf))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The header checksum does not match.");

	m->version = version;
	memcpy(m->model_id, buf + H_MODEL_ID, 16);
	m->flags = get_u32(buf + H_FLAGS);
	m->dim = (int32_t) get_u32(buf + H_DIM);
	act = (int32_t) get_u32(buf + H_ACTIVATION);
	m->users.n = (int32_t) get_u32(buf + H_N_USERS);
	m->items.n = (int32_t) get_u32(buf + H_N_ITEMS);
	m->users.n_train = (int32_t) get_u32(buf + H_N_TRAIN_USERS);
	m->items.n_train = (int32_t) get_u32(buf + H_N_TRAIN_ITEMS);
	m->rating_min = get_f64(buf + H_RATING_MIN);
	m->rating_max = get_f64(buf + H_RATING_MAX);
	m->user_branch.activation = (DmfActivation) act;
	m->item_branch.activation = (DmfActivation) act;
	*total_size = get_u64(buf + H_TOTAL_SIZE);
	if (crc_out)
		*crc_out = get_u32(buf + H_PAYLOAD_CRC);

	if (version >= 2)
	{
		m->page_size = get_u32(buf + H_PAGE_SIZE);
		m->n_pages = get_u32(buf + H_N_PAGES);
	}

	/* the header checksum passed, so these would be encoder bugs; check anyway */
	for (int k = version >= 2 ? H_RESERVED : H_RESERVED_V1; k < DMF_HEADER_SIZE; k++)
		if (buf[k] != 0)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Reserved header byte %d is not zero.", k);
	/* version 3 is exactly the bfloat16 models: one encoding per model */
	if ((m->flags & ~DMF_KNOWN_FLAGS) != 0 ||
		(version < 3 && (m->flags & DMF_VERSION_3_FLAGS) != 0) ||
		(version < 2 && (m->flags & DMF_FLAG_IMPLICIT) != 0) ||
		(version >= 3 && !(m->flags & DMF_FLAG_BFLOAT16)) ||
		((m->flags & DMF_FLAG_ROW_SCALE_ONE) && (m->flags & DMF_FLAG_ROW_SCALE_MEAN)) ||
		((m->flags & DMF_FLAG_IMPLICIT) && (m->flags & IMPLICIT_EXCLUDES) != 0) ||
		((m->flags & DMF_FLAG_IMPLICIT) && (m->flags & IMPLICIT_REQUIRES) != IMPLICIT_REQUIRES))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"Unknown flags 0x%x.", (unsigned) m->flags);
	if (m->dim < 1 || m->dim > DMF_MAX_DIM)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The factor size %d is out of range.", (int) m->dim);
	if (act < 0 || act >= DMF_ACT_COUNT)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"Unknown activation %d.", (int) act);
	if (m->users.n_train < 1 || m->items.n_train < 1 ||
		m->users.n < m->users.n_train || m->items.n < m->items.n_train)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"Inconsistent user or item counts.");
	if (!dmf_rating_scale_init(&m->scale, m->rating_min, m->rating_max) ||
		((m->flags & DMF_FLAG_IMPLICIT) && (m->rating_min != 0.0 || m->rating_max != 1.0)))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The rating range is not valid.");
	if (*total_size < DMF_HEADER_SIZE)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The total size %llu is smaller than the header.",
					(unsigned long long) *total_size);
	if (version >= 2)
	{
		uint64_t	p = m->page_size;
		uint64_t	body;

		/* N pages of P bytes cover the body exactly: the last one is not empty */
		if (p < DMF_MIN_PAGE_SIZE || p > DMF_MAX_PAGE_SIZE || (p & (p - 1)) != 0 ||
			m->n_pages < 1 ||
			4 * (uint64_t) m->n_pages > *total_size - DMF_HEADER_SIZE)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The page layout (%u pages of %u bytes) is not valid.",
						(unsigned) m->n_pages, (unsigned) m->page_size);
		body = dmf_model_body_end(m, *total_size) - DMF_HEADER_SIZE;
		if (body == 0 || body % 8 != 0 || (body + p - 1) / p != m->n_pages)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The page layout (%u pages of %u bytes) does not match the size.",
						(unsigned) m->n_pages, (unsigned) m->page_size);
	}
	return DMF_DECODE_OK;
}

/* Checks a section's length against count * elem_size without overflow. */
static bool
section_has(const DmfSectionRef *s, uint64_t count, uint64_t elem_size)
{
	if (!s->present)
		return false;
	if (elem_size != 0 && count > UINT64_MAX / elem_size)
		return false;
	return s->length == count * elem_size;
}

/*
 * The n floats of a section whose size is checked: in place when stored as
 * float32, else widened at *widened, which moves past them.
 */
static float *
floats_of(const uint8_t *buf, const DmfSectionRef *sec, uint64_t n, uint32_t flags,
		  float **widened)
{
	float	   *out;

	if (!(flags & DMF_FLAG_BFLOAT16))
		return (float *) (buf + sec->offset);
	out = *widened;
	dmf_bfloat16_widen(buf + sec->offset, out, n);
	*widened += n;
	return out;
}

/* The first of v[0..n) that is not a finite number, or n. */
static uint64_t
first_nonfinite(const float *v, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		if (!isfinite(v[k]))
			return k;
	return n;
}

static DmfDecodeStatus
decode_shape(const uint8_t *buf, const DmfSectionRef *shape,
			 const DmfSectionRef *weights, int32_t input, int32_t dim,
			 DmfActivation act, uint32_t flags, float **widened, DmfBranch *b,
			 const char *side, char *detail, size_t detail_len)
{
	int32_t		layers;
	int			sizes[DMF_MAX_LAYERS + 1];

	if (!shape->present || shape->length < 4)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s branch shape is missing.", side);
	layers = (int32_t) get_u32(buf + shape->offset);
	if (layers < 1 || layers > DMF_MAX_LAYERS ||
		!section_has(shape, (uint64_t) layers + 2, 4))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s branch shape is not valid.", side);
	for (int l = 0; l <= layers; l++)
		sizes[l] = (int32_t) get_u32(buf + shape->offset + 4 + 4 * (uint64_t) l);
	if (sizes[0] != input || sizes[layers] != dim)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s branch maps %d inputs to %d outputs, expected %d to %d.",
					side, sizes[0], sizes[layers], (int) input, (int) dim);
	if (!dmf_branch_layout(b, layers, sizes, act))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s branch has a layer width out of range.", side);
	if (!section_has(weights, b->n_params, dmf_float_bytes(flags)))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s branch weights have %llu bytes, expected %llu.",
					side, (unsigned long long) weights->length,
					(unsigned long long) (b->n_params * dmf_float_bytes(flags)));
	b->params = floats_of(buf, weights, b->n_params, flags, widened);

	/* a NaN weight would give NaN factors, an infinite one overflows: forged */
	{
		uint64_t	bad = first_nonfinite(b->params, b->n_params);

		if (bad < b->n_params)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Weight %llu of the %s branch is %s; every weight must be a finite number.",
						(unsigned long long) bad, side,
						isnan(b->params[bad]) ? "NaN" : "infinite");
	}
	return DMF_DECODE_OK;
}

bool
dmf_factor_values_ok(const float *v, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		if (!(v[k] >= -1.001f && v[k] <= 1.001f))
			return false;		/* also false for NaN */
	return true;
}

uint64_t
dmf_factor_row_bytes(const DmfModel *peeked)
{
	return (uint64_t) peeked->dim * dmf_float_bytes(peeked->flags);
}

void
dmf_factor_values_read(const DmfModel *peeked, const uint8_t *src, float *dst, uint64_t n)
{
	if (peeked->flags & DMF_FLAG_BFLOAT16)
		dmf_bfloat16_widen(src, dst, n);
	else
		memcpy(dst, src, n * sizeof(float));
}

int64_t
dmf_side_index_len(const DmfSide *s)
{
	uint64_t	span;

	if (s->n <= 0)
		return 0;
	/* ids ascend, so the unsigned difference is the span even across 0 */
	span = (uint64_t) s->ids[s->n - 1] - (uint64_t) s->ids[0] + 1;
	if (span == 0 || span > 2 * (uint64_t) s->n + 1024)
		return 0;
	return (int64_t) span;
}

void
dmf_side_index_build(DmfSide *s, int32_t *index)
{
	int64_t		len = dmf_side_index_len(s);

	for (int64_t k = 0; k < len; k++)
		index[k] = -1;
	for (int32_t k = 0; k < s->n; k++)
		index[(uint64_t) s->ids[k] - (uint64_t) s->ids[0]] = k;
	s->index = index;
	s->index_lo = s->ids[0];
	s->index_len = len;
}

/* A side's section sizes against its counts, and its ids strictly ascending. */
static DmfDecodeStatus
decode_side_ids(const uint8_t *buf, const DmfSectionRef *ids, const DmfSectionRef *input,
				const DmfSectionRef *factors, const DmfSectionRef *anchors, int32_t dim,
				uint32_t flags, DmfSide *s, const char *side, char *detail, size_t detail_len)
{
	uint64_t	fb = dmf_float_bytes(flags);

	if (!section_has(ids, (uint64_t) s->n, 8) ||
		!section_has(input, (uint64_t) s->n, 4) ||
		!section_has(factors, (uint64_t) s->n * (uint64_t) dim, fb) ||
		!section_has(anchors, (uint64_t) s->n_train * (uint64_t) dim, fb))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s sections do not match %d %ss of size %d.",
					side, (int) s->n, side, (int) dim);
	s->ids = (const int64_t *) (buf + ids->offset);
	for (int32_t k = 1; k < s->n; k++)
		if (s->ids[k] <= s->ids[k - 1])
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The %s ids are not strictly ascending at position %d.",
						side, (int) k);
	return DMF_DECODE_OK;
}

static DmfDecodeStatus
decode_side(const uint8_t *buf, const DmfSectionRef *ids, const DmfSectionRef *input,
			const DmfSectionRef *factors, const DmfSectionRef *anchors, int32_t dim,
			uint32_t flags, float **widened, DmfSide *s, const char *side,
			char *detail, size_t detail_len)
{
	uint8_t    *seen;
	int64_t		n_inputs = 0;
	DmfDecodeStatus status;

	status = decode_side_ids(buf, ids, input, factors, anchors, dim, flags, s, side,
							 detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;
	s->input = (const int32_t *) (buf + input->offset);
	s->factors = floats_of(buf, factors, (uint64_t) s->n * dim, flags, widened);
	s->anchors = floats_of(buf, anchors, (uint64_t) s->n_train * dim, flags, widened);

	/* factors and anchors are unit vectors or zero: anything else is forged */
	if (!dmf_factor_values_ok(s->factors, (uint64_t) s->n * dim) ||
		!dmf_factor_values_ok(s->anchors, (uint64_t) s->n_train * dim))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The %s factors are not unit vectors.", side);

	/* input positions: each training entity exactly once */
	seen = dmf_alloc0((size_t) s->n_train);
	for (int32_t k = 0; k < s->n; k++)
	{
		int32_t		pos = s->input[k];

		if (pos == -1)
			continue;
		if (pos < 0 || pos >= s->n_train || seen[pos])
		{
			status = fail(DMF_DECODE_CORRUPT, detail, detail_len,
						  "The %s input positions are not a permutation.", side);
			break;
		}
		seen[pos] = 1;
		n_inputs++;
	}
	dmf_free(seen);
	if (status == DMF_DECODE_OK && n_inputs != s->n_train)
		status = fail(DMF_DECODE_CORRUPT, detail, detail_len,
					  "%lld %ss have input positions, expected %d.",
					  (long long) n_inputs, side, (int) s->n_train);
	return status;
}

/* USER_RATED: offsets over the users, item indices ascending per user */
static DmfDecodeStatus
decode_rated(const uint8_t *buf, const DmfSectionRef *sec, DmfModel *m, int32_t *widened,
			 char *detail, size_t detail_len)
{
	uint64_t	offsets_len = ((uint64_t) m->users.n + 1) * 8;
	uint64_t	width = (m->flags & DMF_FLAG_RATED_U16) ? 2 : 4;
	uint64_t	nnz;
	const int64_t *off;
	const int32_t *items;

	if (sec->length < offsets_len || (sec->length - offsets_len) % width != 0)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The rated-items section has the wrong size.");
	nnz = (sec->length - offsets_len) / width;
	off = (const int64_t *) (buf + sec->offset);
	if (width == 4)
		items = (const int32_t *) (buf + sec->offset + offsets_len);
	else
	{
		for (uint64_t k = 0; k < nnz; k++)
			widened[k] = get_u16(buf + sec->offset + offsets_len + 2 * k);
		items = widened;
	}
	if (off[0] != 0 || (uint64_t) off[m->users.n] != nnz)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The rated-items offsets do not match the section size.");
	/* all offsets first: with off[0] = 0 and off[n] = nnz, ascending keeps them in range */
	for (int32_t u = 0; u < m->users.n; u++)
		if (off[u + 1] < off[u])
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The rated-items offsets are not ascending.");
	for (int32_t u = 0; u < m->users.n; u++)
	{
		for (int64_t k = off[u]; k < off[u + 1]; k++)
			if (items[k] < 0 || items[k] >= m->items.n ||
				(k > off[u] && items[k] <= items[k - 1]))
				return fail(DMF_DECODE_CORRUPT, detail, detail_len,
							"The rated items of user %d are not ascending item positions.",
							(int) u);
	}
	m->rated_offsets = off;
	m->rated_items = items;
	return DMF_DECODE_OK;
}

/* The section table: kinds known and unique, sections in order, inside the model. */
DmfDecodeStatus
dmf_model_read_sections(const uint8_t *buf, const DmfModel *peeked, uint64_t total,
						DmfSectionRef sec[DMF_SECTION_KIND_END],
						char *detail, size_t detail_len)
{
	uint32_t	n_sections = get_u32(buf + H_N_SECTIONS);
	uint64_t	table_end;
	uint64_t	prev_end;

	/* sections lie in the body, before the page checksums of version 2 */
	total = dmf_model_body_end(peeked, total);

	if (n_sections < 1 || n_sections > DMF_MAX_SECTIONS)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The section count %u is out of range.", (unsigned) n_sections);
	table_end = DMF_HEADER_SIZE + (uint64_t) n_sections * DMF_SECTION_ENTRY_SIZE;
	if (table_end > total)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The section table runs past the end of the model.");

	memset(sec, 0, sizeof(DmfSectionRef) * DMF_SECTION_KIND_END);
	prev_end = table_end;
	for (uint32_t k = 0; k < n_sections; k++)
	{
		const uint8_t *e = buf + DMF_HEADER_SIZE + (uint64_t) k * DMF_SECTION_ENTRY_SIZE;
		uint32_t	kind = get_u32(e);
		uint64_t	off = get_u64(e + 8);
		uint64_t	slen = get_u64(e + 16);

		if (kind < 1 || kind >= DMF_SECTION_KIND_END || get_u32(e + 4) != 0)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Section %u has unknown kind %u.", (unsigned) k, (unsigned) kind);
		if (sec[kind].present)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Section kind %u appears twice.", (unsigned) kind);
		if (off < prev_end || off % 8 != 0 || off > total || slen > total - off)
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Section %u (kind %u) lies outside the model or overlaps another.",
						(unsigned) k, (unsigned) kind);
		sec[kind].present = true;
		sec[kind].offset = off;
		sec[kind].length = slen;
		prev_end = off + slen;
	}
	return DMF_DECODE_OK;
}

/* DMF-D's quantizer: levels ascending, boundaries sorted, every value finite, lambda >= 0. */
static DmfDecodeStatus
decode_quantizer(const uint8_t *buf, const DmfSectionRef *q, DmfModel *m,
				 char *detail, size_t detail_len)
{
	double		nl;

	if (q->length < 16)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The quantizer section is truncated.");
	nl = get_f64(buf + q->offset);
	if (!(nl >= 2 && nl <= DMF_MAX_LEVELS) || nl != floor(nl) ||
		!section_has(q, 2 + 2 * (uint64_t) nl + 1, 8))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The quantizer section is not valid.");
	m->n_levels = (int32_t) nl;
	m->lambda = get_f64(buf + q->offset + 8);
	m->levels = (const double *) (buf + q->offset + 16);
	m->boundaries = m->levels + m->n_levels;
	if (isnan(m->lambda) || isinf(m->lambda))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The quantizer's lambda is %s; it must be a finite number, at least 0.",
					isnan(m->lambda) ? "NaN" : "infinite");
	if (m->lambda < 0)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The quantizer's lambda is %g; it must be a finite number, at least 0.",
					m->lambda);
	for (int k = 0; k < m->n_levels; k++)
	{
		if (!isfinite(m->levels[k]))
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Quantizer level %d is not a finite number.", k);
		if (k > 0 && m->levels[k] <= m->levels[k - 1])
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The quantizer levels are not ascending.");
	}
	for (int k = 0; k <= m->n_levels; k++)
	{
		if (!isfinite(m->boundaries[k]))
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"Quantizer boundary %d is not a finite number.", k);
		if (k > 0 && m->boundaries[k] < m->boundaries[k - 1])
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The quantizer boundaries are not ascending.");
	}
	return DMF_DECODE_OK;
}

/* The quantizer: optional, but a discrete model must have one. */
static DmfDecodeStatus
decode_levels(const uint8_t *buf, const DmfSectionRef *sec, DmfModel *m,
			  char *detail, size_t detail_len)
{
	m->n_levels = 0;
	if (sec[DMF_SECTION_QUANTIZER].present && (m->flags & DMF_FLAG_IMPLICIT))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"An implicit model has a quantizer section.");
	if (sec[DMF_SECTION_QUANTIZER].present)
		return decode_quantizer(buf, &sec[DMF_SECTION_QUANTIZER], m, detail, detail_len);
	if (m->flags & DMF_FLAG_DISCRETE)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"A discrete model has no quantizer section.");
	return DMF_DECODE_OK;
}

/* The fold-in settings. */
static DmfDecodeStatus
decode_fold_in(const uint8_t *buf, const DmfSectionRef *sec, DmfModel *m,
			   char *detail, size_t detail_len)
{
	if (!section_has(&sec[DMF_SECTION_FOLD_IN], 2, 8))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The fold-in section is missing or has the wrong size.");
	{
		double		steps = get_f64(buf + sec[DMF_SECTION_FOLD_IN].offset);

		m->fold_in_rate = get_f64(buf + sec[DMF_SECTION_FOLD_IN].offset + 8);
		if (!(steps >= 0 && steps <= DMF_MAX_FOLD_IN_STEPS) || steps != floor(steps) ||
			!(m->fold_in_rate >= 0 && m->fold_in_rate <= 100) ||
			((m->flags & DMF_FLAG_IMPLICIT) && steps != 0))
			return fail(DMF_DECODE_CORRUPT, detail, detail_len,
						"The fold-in settings are out of range.");
		m->fold_in_steps = (int32_t) steps;
	}
	return DMF_DECODE_OK;
}

DmfDecodeStatus
dmf_model_decode_ids(const uint8_t *buf, const DmfSectionRef sec[DMF_SECTION_KIND_END],
					 DmfModel *m, char *detail, size_t detail_len)
{
	DmfDecodeStatus status;

	status = decode_side_ids(buf, &sec[DMF_SECTION_USER_IDS], &sec[DMF_SECTION_USER_INPUT],
							 &sec[DMF_SECTION_USER_FACTORS], &sec[DMF_SECTION_USER_ANCHORS],
							 m->dim, m->flags, &m->users, "user", detail, detail_len);
	if (status == DMF_DECODE_OK)
		status = decode_side_ids(buf, &sec[DMF_SECTION_ITEM_IDS], &sec[DMF_SECTION_ITEM_INPUT],
								 &sec[DMF_SECTION_ITEM_FACTORS], &sec[DMF_SECTION_ITEM_ANCHORS],
								 m->dim, m->flags, &m->items, "item", detail, detail_len);
	if (status == DMF_DECODE_OK)
		status = decode_levels(buf, sec, m, detail, detail_len);
	return status;
}

/*
 * Bytes the widened copies of a model's compact sections take: a bound
 * from the section lengths (each within the buffer), before their exact
 * sizes are checked.
 */
static uint64_t
widened_bytes(const DmfSectionRef sec[DMF_SECTION_KIND_END], uint32_t flags)
{
	static const DmfSectionKind float_kinds[] = {
		DMF_SECTION_USER_FACTORS, DMF_SECTION_ITEM_FACTORS,
		DMF_SECTION_USER_ANCHORS, DMF_SECTION_ITEM_ANCHORS,
		DMF_SECTION_USER_WEIGHTS, DMF_SECTION_ITEM_WEIGHTS
	};
	uint64_t	n = 0;

	if (flags & DMF_FLAG_BFLOAT16)
		for (int k = 0; k < (int) (sizeof(float_kinds) / sizeof(float_kinds[0])); k++)
			n += 2 * sec[float_kinds[k]].length;
	if (flags & DMF_FLAG_RATED_U16)
		n += 2 * sec[DMF_SECTION_USER_RATED].length;
	return n;
}

static DmfDecodeStatus
decode_whole(const uint8_t *buf, size_t len, DmfModel *m,
			 char *detail, size_t detail_len)
{
	DmfDecodeStatus status;
	uint64_t	total;
	uint32_t	crc;
	DmfSectionRef	sec[DMF_SECTION_KIND_END];
	float	   *widened;

	if (((uintptr_t) buf & 7) != 0)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The model buffer is not aligned.");
	status = dmf_model_peek(buf, len, m, &total, &crc, detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;
	if (total != (uint64_t) len)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The model has %zu bytes but its header says %llu.",
					len, (unsigned long long) total);
	if (!dmf_model_checksums_ok(buf, len, m, crc))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The payload checksum does not match.");

	status = dmf_model_read_sections(buf, m, total, sec, detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;
	if (widened_bytes(sec, m->flags) > 0)
		m->widened = dmf_alloc(widened_bytes(sec, m->flags));
	widened = m->widened;

	/* metadata: JSON text, checked by the caller's JSON parser */
	if (!sec[DMF_SECTION_META].present ||
		sec[DMF_SECTION_META].length > UINT32_MAX)
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The metadata section is missing.");
	m->meta = (const char *) (buf + sec[DMF_SECTION_META].offset);
	m->meta_len = (uint32_t) sec[DMF_SECTION_META].length;

	status = decode_side(buf, &sec[DMF_SECTION_USER_IDS], &sec[DMF_SECTION_USER_INPUT],
						 &sec[DMF_SECTION_USER_FACTORS], &sec[DMF_SECTION_USER_ANCHORS],
						 m->dim, m->flags, &widened, &m->users, "user", detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;
	status = decode_side(buf, &sec[DMF_SECTION_ITEM_IDS], &sec[DMF_SECTION_ITEM_INPUT],
						 &sec[DMF_SECTION_ITEM_FACTORS], &sec[DMF_SECTION_ITEM_ANCHORS],
						 m->dim, m->flags, &widened, &m->items, "item", detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;

	/* the user branch reads rows over training items, and vice versa */
	status = decode_shape(buf, &sec[DMF_SECTION_USER_SHAPE], &sec[DMF_SECTION_USER_WEIGHTS],
						  m->items.n_train, m->dim, m->user_branch.activation,
						  m->flags, &widened, &m->user_branch, "user", detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;
	status = decode_shape(buf, &sec[DMF_SECTION_ITEM_SHAPE], &sec[DMF_SECTION_ITEM_WEIGHTS],
						  m->users.n_train, m->dim, m->item_branch.activation,
						  m->flags, &widened, &m->item_branch, "item", detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;

	/* the branches read ratings on the working scale (encoding.h) */
	{
		DmfInputCoding coding = {
			(m->flags & DMF_FLAG_CENTERED_INPUT) ? DMF_INPUT_CENTERED : DMF_INPUT_OFFSET,
			(m->flags & DMF_FLAG_ROW_SCALE_ONE) ? DMF_ROW_SCALE_NONE :
			(m->flags & DMF_FLAG_ROW_SCALE_MEAN) ? DMF_ROW_SCALE_MEAN : DMF_ROW_SCALE_SQRT,
			0.0, m->scale.working_max
		};

		m->user_branch.coding = coding;
		m->item_branch.coding = coding;
	}

	status = decode_fold_in(buf, sec, m, detail, detail_len);
	if (status == DMF_DECODE_OK)
		status = decode_levels(buf, sec, m, detail, detail_len);
	if (status != DMF_DECODE_OK)
		return status;

	m->rated_offsets = NULL;
	m->rated_items = NULL;
	/* as the encoder chooses it: 16-bit positions whenever they fit */
	if (((m->flags & DMF_FLAG_RATED_U16) != 0) !=
		((m->flags & DMF_FLAG_BFLOAT16) && sec[DMF_SECTION_USER_RATED].present &&
		 m->items.n <= 65536))
		return fail(DMF_DECODE_CORRUPT, detail, detail_len,
					"The rated-items width does not match the model.");
	if (sec[DMF_SECTION_USER_RATED].present)
		return decode_rated(buf, &sec[DMF_SECTION_USER_RATED], m, (int32_t *) widened,
							detail, detail_len);
	return DMF_DECODE_OK;
}

DmfDecodeStatus
dmf_model_decode(const uint8_t *buf, size_t len, DmfModel *m,
				 char *detail, size_t detail_len)
{
	DmfDecodeStatus status;

	m->widened = NULL;
	status = decode_whole(buf, len, m, detail, detail_len);
	if (status != DMF_DECODE_OK && m->widened != NULL)
	{
		dmf_free(m->widened);
		m->widened = NULL;
	}
	return status;
}
