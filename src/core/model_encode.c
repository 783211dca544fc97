/*
 * model_encode.c
 *	  Writes a model in the format of model_format.h.
 *
 * Float sections (factors, anchors, weights) are written as float32, or as
 * bfloat16 when the model's flags ask for compact storage (format version
 * 3, which also stores who rated what in 16-bit item positions when there
 * are at most 65,536 items).  A float32 model is written in version 2, so
 * that builds from 0.3.0 on read it.
 */
#ifdef DMF_STANDALONE
#include "postgres_fe.h"
#endif
#include "platform.h"

#include <string.h>

#include "bfloat16.h"
#include "model_layout.h"

typedef struct PlannedSection
{
	uint32_t	kind;
	const void *data;
	uint64_t	length;
	uint64_t	n_floats;		/* > 0: data is that many floats, written as stored */
	int32_t		shape[DMF_MAX_LAYERS + 2];	/* for shape sections */
} PlannedSection;

static uint64_t
align8(uint64_t x)
{
	return (x + 7) & ~(uint64_t) 7;
}

/* The version and flags the header of m's encoding carries. */
static uint16_t
version_of(const DmfModel *m)
{
	return (m->flags & DMF_FLAG_BFLOAT16) ? 3 : 2;
}

static uint32_t
flags_of(const DmfModel *m)
{
	uint32_t	flags = m->flags & ~DMF_FLAG_RATED_U16;

	if (version_of(m) >= 3 && m->rated_offsets != NULL && m->items.n <= 65536)
		flags |= DMF_FLAG_RATED_U16;
	return flags;
}

static int
plan_sections(const DmfModel *m, PlannedSection *ps)
{
	int			n = 0;
	const DmfBranch *br[2] = {&m->user_branch, &m->item_branch};
	uint32_t	flags = flags_of(m);
	uint64_t	fb = dmf_float_bytes(flags);
	uint64_t	dim = (uint64_t) m->dim;

	memset(ps, 0, sizeof(PlannedSection) * DMF_MAX_SECTIONS);
#define PLAN(k, ptr, len) \
	do { ps[n].kind = (k); ps[n].data = (ptr); ps[n].length = (len); n++; } while (0)
#define PLAN_FLOATS(k, ptr, count) \
	do { ps[n].n_floats = (count); PLAN(k, ptr, (count) * fb); } while (0)

	PLAN(DMF_SECTION_META, m->meta, m->meta_len);
	PLAN(DMF_SECTION_USER_IDS, m->users.ids, (uint64_t) m->users.n * 8);
	PLAN(DMF_SECTION_USER_INPUT, m->users.input, (uint64_t) m->users.n * 4);
	PLAN_FLOATS(DMF_SECTION_USER_FACTORS, m->users.factors, (uint64_t) m->users.n * dim);
	PLAN(DMF_SECTION_ITEM_IDS, m->items.ids, (uint64_t) m->items.n * 8);
	PLAN(DMF_SECTION_ITEM_INPUT, m->items.input, (uint64_t) m->items.n * 4);
	PLAN_FLOATS(DMF_SECTION_ITEM_FACTORS, m->items.factors, (uint64_t) m->items.n * dim);
	PLAN_FLOATS(DMF_SECTION_USER_ANCHORS, m->users.anchors, (uint64_t) m->users.n_train * dim);
	PLAN_FLOATS(DMF_SECTION_ITEM_ANCHORS, m->items.anchors, (uint64_t) m->items.n_train * dim);
	PLAN(DMF_SECTION_FOLD_IN, NULL, 16);
	if (m->rated_offsets != NULL)
		PLAN(DMF_SECTION_USER_RATED, NULL,
			 ((uint64_t) m->users.n + 1) * 8 +
			 (uint64_t) m->rated_offsets[m->users.n] * ((flags & DMF_FLAG_RATED_U16) ? 2 : 4));
	for (int s = 0; s < 2; s++)
	{
		const DmfBranch *b = br[s];

		ps[n].shape[0] = b->n_layers;
		for (int l = 0; l <= b->n_layers; l++)
			ps[n].shape[l + 1] = b->sizes[l];
		PLAN(s == 0 ? DMF_SECTION_USER_SHAPE : DMF_SECTION_ITEM_SHAPE, NULL,
			 (uint64_t) (b->n_layers + 2) * 4);
		PLAN_FLOATS(s == 0 ? DMF_SECTION_USER_WEIGHTS : DMF_SECTION_ITEM_WEIGHTS,
					b->params, (uint64_t) b->n_params);
	}
	if (m->n_levels > 0)
		PLAN(DMF_SECTION_QUANTIZER, NULL, (uint64_t) (2 + 2 * m->n_levels + 1) * 8);
#undef PLAN_FLOATS
#undef PLAN
	return n;
}

/* USER_RATED: the offsets, then the item positions in 16 or 32 bits. */
static void
write_rated(const DmfModel *m, bool narrow, uint8_t *p)
{
	uint64_t	offsets_len = ((uint64_t) m->users.n + 1) * 8;
	uint64_t	nnz = (uint64_t) m->rated_offsets[m->users.n];

	memcpy(p, m->rated_offsets, offsets_len);
	p += offsets_len;
	if (!narrow)
		memcpy(p, m->rated_items, nnz * 4);
	else
		for (uint64_t k = 0; k < nnz; k++)
			put_u16(p + 2 * k, (uint16_t) m->rated_items[k]);
}

/* The end of the body: the header, the section table and the sections. */
static uint64_t
body_end_of(const PlannedSection *ps, int n)
{
	uint64_t	off = align8(DMF_HEADER_SIZE + (uint64_t) n * DMF_SECTION_ENTRY_SIZE);

	for (int k = 0; k < n; k++)
		off = align8(off + ps[k].length);
	return off;
}

static uint64_t
pages_of(uint64_t body_end)
{
	return (body_end - DMF_HEADER_SIZE + DMF_PAGE_SIZE - 1) / DMF_PAGE_SIZE;
}

uint64_t
dmf_model_encoded_size(const DmfModel *m)
{
	PlannedSection ps[DMF_MAX_SECTIONS];
	uint64_t	body_end = body_end_of(ps, plan_sections(m, ps));

	return body_end + 4 * pages_of(body_end);
}

void
dmf_model_encode(const DmfModel *m, uint8_t *dst, uint64_t size)
{
	PlannedSection ps[DMF_MAX_SECTIONS];
	int			n = plan_sections(m, ps);
	uint64_t	off = align8(DMF_HEADER_SIZE + (uint64_t) n * DMF_SECTION_ENTRY_SIZE);
	uint64_t	body_end = body_end_of(ps, n);
	uint64_t	n_pages = pages_of(body_end);

	memset(dst, 0, size);
	memcpy(dst + H_MAGIC, DMF_MAGIC, 4);
	put_u16(dst + H_VERSION, version_of(m));
	put_u16(dst + H_HEADER_SIZE, DMF_HEADER_SIZE);
	memcpy(dst + H_MODEL_ID, m->model_id, 16);
	put_u64(dst + H_TOTAL_SIZE, size);
	put_u32(dst + H_FLAGS, flags_of(m));
	put_u32(dst + H_DIM, (uint32_t) m->dim);
	put_u32(dst + H_ACTIVATION, (uint32_t) m->user_branch.activation);
	put_u32(dst + H_N_USERS, (uint32_t) m->users.n);
	put_u32(dst + H_N_ITEMS, (uint32_t) m->items.n);
	put_u32(dst + H_N_TRAIN_USERS, (uint32_t) m->users.n_train);
	put_u32(dst + H_N_TRAIN_ITEMS, (uint32_t) m->items.n_train);
	put_u32(dst + H_N_SECTIONS, (uint32_t) n);
	put_f64(dst + H_RATING_MIN, m->rating_min);
	put_f64(dst + H_RATING_MAX, m->rating_max);
	put_u32(dst + H_PAGE_SIZE, DMF_PAGE_SIZE);
	put_u32(dst + H_N_PAGES, (uint32_t) n_pages);

	for (int k = 0; k < n; k++)
	{
		uint8_t    *e = dst + DMF_HEADER_SIZE + (uint64_t) k * DMF_SECTION_ENTRY_SIZE;
		uint8_t    *p = dst + off;

		put_u32(e, ps[k].kind);
		put_u64(e + 8, off);
		put_u64(e + 16, ps[k].length);
		if (ps[k].kind == DMF_SECTION_USER_SHAPE || ps[k].kind == DMF_SECTION_ITEM_SHAPE)
		{
			for (uint64_t j = 0; j < ps[k].length / 4; j++)
				put_u32(p + 4 * j, (uint32_t) ps[k].shape[j]);
		}
		else if (ps[k].kind == DMF_SECTION_FOLD_IN)
		{
			put_f64(p, (double) m->fold_in_steps);
			put_f64(p + 8, m->fold_in_rate);
		}
		else if (ps[k].kind == DMF_SECTION_QUANTIZER)
		{
			put_f64(p, (double) m->n_levels);
			put_f64(p + 8, m->lambda);
			memcpy(p + 16, m->levels, sizeof(double) * m->n_levels);
			memcpy(p + 16 + 8 * (uint64_t) m->n_levels, m->boundaries,
				   sizeof(double) * (m->n_levels + 1));
		}
		else if (ps[k].kind == DMF_SECTION_USER_RATED)
			write_rated(m, (flags_of(m) & DMF_FLAG_RATED_U16) != 0, p);
		else if (ps[k].n_floats > 0 && (m->flags & DMF_FLAG_BFLOAT16))
			dmf_bfloat16_narrow(ps[k].data, p, ps[k].n_floats);
		else if (ps[k].length > 0)
			memcpy(p, ps[k].data, ps[k].length);
		off = align8(off + ps[k].length);
	}
	for (uint64_t k = 0; k < n_pages; k++)
	{
		uint64_t	start = DMF_HEADER_SIZE + k * DMF_PAGE_SIZE;
		uint64_t	len = body_end - start < DMF_PAGE_SIZE ? body_end - start : DMF_PAGE_SIZE;

		put_u32(dst + body_end + 4 * k, crc32c_of(dst + start, len));
	}
	put_u32(dst + H_PAYLOAD_CRC, crc32c_of(dst + body_end, 4 * n_pages));
	put_u32(dst + H_HEADER_CRC, header_crc(dst));
}
