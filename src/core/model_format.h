/*
 * model_format.h
 *	  The on-disk format of a trained model (the bytea dmf_train returns).
 *
 * Layout, all little-endian, every section 8-byte aligned:
 *
 *   header (128 bytes)
 *     0  char[4]  magic "DMFM"
 *     4  uint16   format version (DMF_FORMAT_VERSION)
 *     6  uint16   header size (128)
 *     8  uint8[16] model id: random at training and at each refresh, so a
 *                 backend can recognise a model it already decoded from
 *                 this header alone
 *    24  uint64   total size of the model in bytes
 *    32  uint32   version 1: CRC32C of bytes [header size, total size);
 *                 versions 2, 3: CRC32C of the page checksums (below)
 *    36  uint32   CRC32C of the header without this field
 *    40  uint32   flags (DMF_FLAG_*)
 *    44  int32    dim, the latent factor size d
 *    48  int32    activation (DmfActivation)
 *    52  int32    users with a factor
 *    56  int32    items with a factor
 *    60  int32    training users: the input size of the item branch
 *    64  int32    training items: the input size of the user branch
 *    68  uint32   number of sections
 *    72  float64  rating_min
 *    80  float64  rating_max
 *    88  version 2 on: uint32 page size P, a power of two (DMF_PAGE_SIZE)
 *    92  version 2 on: uint32 number of pages N
 *    88  (version 1), 96 (versions 2, 3): reserved, zero
 *   section table: per section {uint32 kind, uint32 zero, uint64 offset,
 *                  uint64 length}, offsets ascending, no overlap
 *   sections (DmfSectionKind), each exactly once unless optional:
 *     META          UTF-8 JSON: options, metrics, history (free length)
 *     USER_IDS      int64[users], strictly ascending
 *     USER_INPUT    int32[users]: the user's input position in the item
 *                   branch, or -1 for users added after training
 *     USER_FACTORS  float[users x dim], unit length, or zero if unknown
 *     ITEM_IDS, ITEM_INPUT, ITEM_FACTORS: the same for items
 *     USER_ANCHORS  float[training users x dim]: the user branch's factors
 *                   of the training users, by input position, which fold-in
 *                   fits new item factors against (see fold_in.h)
 *     ITEM_ANCHORS  the same for the training items
 *     FOLD_IN       float64 steps, rate
 *     USER_SHAPE    int32[1 + layers + 1]: layers, then the widths from
 *                   the input to dim
 *     USER_WEIGHTS  float[]: W0 b0 W1 b1 ... (W_l is in x out, row-major),
 *                   every one finite
 *     ITEM_SHAPE, ITEM_WEIGHTS: the same for the item branch
 *     QUANTIZER     optional: float64 n_levels, lambda (finite, >= 0),
 *                   levels[n_levels], boundaries[n_levels + 1] (finite)
 *     USER_RATED    optional: the items each user rated in the data the
 *                   factors came from (training or the last refresh), for
 *                   recommendations that leave them out: int64[users + 1]
 *                   offsets, then int32[offsets[users]] item indices
 *                   (positions in ITEM_IDS), strictly ascending per user;
 *                   uint16 instead with DMF_FLAG_RATED_U16
 *   "float" is float32, or bfloat16 (bfloat16.h) with DMF_FLAG_BFLOAT16.
 *   Version 3 is version 2 with those two flags allowed; an encoder writes
 *   version 2 for a float32 model, so that older readers read it.
 *   Versions 2 and 3, after the last section: uint32[N] page checksums.  The
 *   bytes from the header to the checksums (the body) are cut into pages of
 *   P bytes, the last one shorter; checksum k is the CRC32C of page k.
 *
 * Decoding validates every field and size against the length and the
 * checksums; it never reads outside the buffer.  A decoded model holds
 * floats and 32-bit item positions: a decode widens compact sections into
 * memory of its own (DmfModel.widened).  Version 2 lets a reader
 * check the pieces it reads one page at a time (model_cache.c reads only
 * what a prediction needs); a full decode still checks every page.
 */
#ifndef DMF_MODEL_FORMAT_H
#define DMF_MODEL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encoding.h"
#include "network.h"

#define DMF_MAGIC "DMFM"
#define DMF_FORMAT_VERSION 3		/* the newest this build writes */
#define DMF_FORMAT_VERSION_MIN 1	/* the oldest it reads */
#define DMF_PAGE_SIZE 32768			/* what it writes; any power of two */
#define DMF_MIN_PAGE_SIZE 1024		/* in this range is read */
#define DMF_MAX_PAGE_SIZE (1 << 20)
#define DMF_HEADER_SIZE 128
#define DMF_SECTION_ENTRY_SIZE 24
#define DMF_MAX_SECTIONS 32
#define DMF_MAX_LEVELS 1024
#define DMF_MAX_FOLD_IN_STEPS 10000

#define DMF_FLAG_DISCRETE 0x0001	/* trained as DMF-D */
#define DMF_FLAG_CENTERED_INPUT 0x0002	/* inputs centred per row */
#define DMF_FLAG_ROW_SCALE_ONE 0x0004	/* rows not scaled by their length */
#define DMF_FLAG_ROW_SCALE_MEAN 0x0008	/* rows scaled by 1/length */
/* training users (items) keep their branch factor: no fold-in (fold_choice.h) */
#define DMF_FLAG_TRAINED_USERS_UNFOLDED 0x0010
#define DMF_FLAG_TRAINED_ITEMS_UNFOLDED 0x0020
/* version 3: compact storage (the encoder sets RATED_U16 itself) */
#define DMF_FLAG_BFLOAT16 0x0040	/* factors, anchors, weights in bfloat16 */
#define DMF_FLAG_RATED_U16 0x0080	/* USER_RATED's item positions in 16 bits */
#define DMF_FLAG_IMPLICIT 0x0100	/* trained on interactions (implicit.h) */
#define DMF_KNOWN_FLAGS (DMF_FLAG_DISCRETE | DMF_FLAG_CENTERED_INPUT | \
						 DMF_FLAG_ROW_SCALE_ONE | DMF_FLAG_ROW_SCALE_MEAN | \
						 DMF_FLAG_TRAINED_USERS_UNFOLDED | DMF_FLAG_TRAINED_ITEMS_UNFOLDED | \
						 DMF_FLAG_BFLOAT16 | DMF_FLAG_RATED_U16 | DMF_FLAG_IMPLICIT)
#define DMF_VERSION_3_FLAGS (DMF_FLAG_BFLOAT16 | DMF_FLAG_RATED_U16)

typedef enum DmfSectionKind
{
	DMF_SECTION_META = 1,
	DMF_SECTION_USER_IDS,
	DMF_SECTION_USER_INPUT,
	DMF_SECTION_USER_FACTORS,
	DMF_SECTION_ITEM_IDS,
	DMF_SECTION_ITEM_INPUT,
	DMF_SECTION_ITEM_FACTORS,
	DMF_SECTION_USER_SHAPE,
	DMF_SECTION_USER_WEIGHTS,
	DMF_SECTION_ITEM_SHAPE,
	DMF_SECTION_ITEM_WEIGHTS,
	DMF_SECTION_QUANTIZER,
	DMF_SECTION_USER_ANCHORS,
	DMF_SECTION_ITEM_ANCHORS,
	DMF_SECTION_FOLD_IN,
	DMF_SECTION_USER_RATED,
	DMF_SECTION_KIND_END
} DmfSectionKind;

/* One side (users or items) of a model. */
typedef struct DmfSide
{
	int32_t		n;				/* entities with a factor */
	int32_t		n_train;		/* entities in the other branch's input */
	const int64_t *ids;			/* ascending */
	const int32_t *input;		/* input position or -1 */
	const float *factors;		/* n x dim */
	const float *anchors;		/* n_train x dim, by input position */

	/*
	 * Optional direct index over the id range, set by the model cache when
	 * the ids are dense (serial keys): index[id - index_lo] is the entity or
	 * -1.  A lookup is then one load instead of a binary search.
	 */
	const int32_t *index;
	int64_t		index_lo;
	int64_t		index_len;
} DmfSide;

typedef struct DmfModel
{
	uint16_t	version;
	uint32_t	page_size;		/* version 2; 0 in version 1 */
	uint32_t	n_pages;
	uint8_t		model_id[16];
	uint32_t	flags;
	int32_t		dim;
	double		rating_min;
	double		rating_max;
	DmfRatingScale scale;		/* from rating_min/max: how ratings enter the branches */
	DmfSide		users;
	DmfSide		items;
	DmfBranch	user_branch;	/* params point into the model bytes */
	DmfBranch	item_branch;
	int32_t		fold_in_steps;
	double		fold_in_rate;
	const char *meta;			/* JSON, not NUL-terminated */
	uint32_t	meta_len;
	int32_t		n_levels;		/* 0: no quantizer section */
	double		lambda;
	const double *levels;
	const double *boundaries;
	/* USER_RATED; rated_offsets is NULL when the section is absent */
	const int64_t *rated_offsets;	/* users.n + 1 */
	const int32_t *rated_items;
	/*
	 * What dmf_model_decode allocated (dmf_alloc) for widened sections, or
	 * NULL: the caller frees it, or lets its memory context go.
	 */
	void	   *widened;
} DmfModel;

typedef enum DmfDecodeStatus
{
	DMF_DECODE_OK = 0,
	DMF_DECODE_CORRUPT,			/* not a model, truncated, inconsistent */
	DMF_DECODE_VERSION			/* a format version this build cannot read */
} DmfDecodeStatus;

/*
 * Checks the fixed header of buf[0..len) (len may be just the header, e.g.
 * a slice of a toasted value): magic, version, header checksum.  Fills
 * version, model_id, flags and the sizes; *total_size gets the size the
 * whole model claims.
 */
DmfDecodeStatus dmf_model_peek(const uint8_t *buf, size_t len,
							   DmfModel *m, uint64_t *total_size,
							   uint32_t *payload_crc,
							   char *detail, size_t detail_len);

/*
 * Validates buf[0..len) entirely and fills m with pointers into buf, and
 * into m->widened for the sections stored compact.  buf must be 8-byte
 * aligned and must outlive m.
 */
DmfDecodeStatus dmf_model_decode(const uint8_t *buf, size_t len, DmfModel *m,
								 char *detail, size_t detail_len);

/*
 * Whether the checksums of the whole model buf[0..len) hold (peeked from its
 * header by dmf_model_peek, whose payload_crc goes in crc).
 */
bool		dmf_model_checksums_ok(const uint8_t *buf, size_t len,
								   const DmfModel *peeked, uint32_t crc);

/*
 * Reading a version 2 model piece by piece (model_cache.c).  After
 * dmf_model_peek: the page checksums lie at [dmf_model_body_end, total);
 * page k covers [header + k P, min(header + (k + 1) P, body end)).
 */
uint64_t	dmf_model_body_end(const DmfModel *peeked, uint64_t total);
/* The checksums (4 N bytes, unaligned) against the header's crc. */
bool		dmf_model_page_table_ok(const DmfModel *peeked, const uint8_t *table,
									uint32_t crc);
/* Page k of buf (at least that page is present) against its checksum. */
bool		dmf_model_page_ok(const DmfModel *peeked, uint64_t total,
							  const uint8_t *buf, const uint8_t *table, uint32_t k);

/* Where a section lies in the model bytes. */
typedef struct DmfSectionRef
{
	bool		present;
	uint64_t	offset;
	uint64_t	length;
} DmfSectionRef;

/*
 * The section table of buf, which must hold at least the header and the
 * table (N entries from the header's count), checked as a full decode does.
 */
DmfDecodeStatus dmf_model_read_sections(const uint8_t *buf, const DmfModel *peeked,
										uint64_t total,
										DmfSectionRef sec[DMF_SECTION_KIND_END],
										char *detail, size_t detail_len);

/*
 * What a prediction needs besides factors, with buf holding the header and
 * the USER_IDS, ITEM_IDS and QUANTIZER sections: fills m (from the peek)
 * with validated ids and quantizer.  Factors, anchors, input positions,
 * weights, rated items, fold-in settings and metadata are left unset.
 */
DmfDecodeStatus dmf_model_decode_ids(const uint8_t *buf,
									 const DmfSectionRef sec[DMF_SECTION_KIND_END],
									 DmfModel *m, char *detail, size_t detail_len);

/* Whether n floats of a factor section are as a full decode accepts them. */
bool		dmf_factor_values_ok(const float *v, uint64_t n);

/* Bytes per stored factor row of a (peeked) model. */
uint64_t	dmf_factor_row_bytes(const DmfModel *peeked);
/* n stored factor values at src (as the flags of peeked say) as floats. */
void		dmf_factor_values_read(const DmfModel *peeked, const uint8_t *src,
								   float *dst, uint64_t n);

/* Exact size of the encoding of m (every field of m set, ids etc.). */
uint64_t	dmf_model_encoded_size(const DmfModel *m);

/* Writes m into dst (size bytes, from dmf_model_encoded_size). */
void		dmf_model_encode(const DmfModel *m, uint8_t *dst, uint64_t size);

/*
 * Entries of a direct index for s (0 when its ids are too sparse for one:
 * the index costs at most 4 bytes per id of the range, which is kept within
 * twice the entities plus a page).
 */
int64_t		dmf_side_index_len(const DmfSide *s);
/* Fills index (dmf_side_index_len entries) and attaches it to s. */
void		dmf_side_index_build(DmfSide *s, int32_t *index);

/* Index of id in a side, or -1. */
static inline int32_t
dmf_side_find(const DmfSide *s, int64_t id)
{
	int32_t		lo = 0,
				hi = s->n;

	if (s->index != NULL)
	{
		/* unsigned: ids below index_lo wrap to large offsets */
		uint64_t	off = (uint64_t) id - (uint64_t) s->index_lo;

		return off < (uint64_t) s->index_len ? s->index[off] : -1;
	}

	while (lo < hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (s->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < s->n && s->ids[lo] == id) ? lo : -1;
}

#endif
