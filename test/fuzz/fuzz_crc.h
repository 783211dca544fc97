/*
 * fuzz_crc.h
 *	  Re-sealing model bytes for the fuzz harness: recompute the checksums
 *	  (see src/core/model_format.h: the page checksums of format version 2,
 *	  the payload CRC32C field and the header CRC32C), so that mutated bytes
 *	  get past the checksums and reach the structural validation behind them.
 */
#ifndef DMF_FUZZ_CRC_H
#define DMF_FUZZ_CRC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "port/pg_crc32c.h"

#include "model_format.h"

/* header field offsets, as documented in src/core/model_format.h */
#define FUZZ_H_TOTAL_SIZE 24
#define FUZZ_H_PAYLOAD_CRC 32
#define FUZZ_H_HEADER_CRC 36
#define FUZZ_H_VERSION 4
#define FUZZ_H_PAGE_SIZE 88
#define FUZZ_H_N_PAGES 92

static inline uint32_t
fuzz_crc32c(const uint8_t *p, size_t n)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, p, n);
	FIN_CRC32C(crc);
	return (uint32_t) crc;
}

/*
 * Format version 2 or later with a usable page layout: rewrites the page checksums at
 * the end and returns the CRC of them for the header; else returns the CRC
 * of everything after the header (version 1's payload CRC).
 */
static inline uint32_t
fuzz_fix_pages(uint8_t *buf, size_t len)
{
	uint16_t	version;
	uint32_t	page,
				n_pages;
	size_t		body_end;

	memcpy(&version, buf + FUZZ_H_VERSION, 2);
	memcpy(&page, buf + FUZZ_H_PAGE_SIZE, 4);
	memcpy(&n_pages, buf + FUZZ_H_N_PAGES, 4);
	if (version < 2 || page == 0 || n_pages == 0 ||
		(uint64_t) n_pages * 4 > len - DMF_HEADER_SIZE)
		return fuzz_crc32c(buf + DMF_HEADER_SIZE, len - DMF_HEADER_SIZE);
	body_end = len - (size_t) n_pages * 4;
	for (uint64_t k = 0; k < n_pages; k++)
	{
		uint64_t	start = DMF_HEADER_SIZE + k * page;
		uint64_t	end = start + page < body_end ? start + page : body_end;
		uint32_t	v = start < end ? fuzz_crc32c(buf + start, end - start) : 0;

		memcpy(buf + body_end + 4 * k, &v, 4);
	}
	return fuzz_crc32c(buf + body_end, (size_t) n_pages * 4);
}

/*
 * Rewrites the checksums of buf[0..len) in place: the page checksums (version
 * 2) and the payload CRC field, then the header CRC over the header without
 * its own field.  With set_total, the total size field becomes len first.  Does
 * nothing to a buffer shorter than the header.
 */
static inline void
fuzz_fix_crcs(uint8_t *buf, size_t len, int set_total)
{
	pg_crc32c	crc;
	uint32_t	v;

	if (len < DMF_HEADER_SIZE)
		return;
	if (set_total)
	{
		uint64_t	total = (uint64_t) len;

		memcpy(buf + FUZZ_H_TOTAL_SIZE, &total, sizeof(total));
	}

	v = fuzz_fix_pages(buf, len);
	memcpy(buf + FUZZ_H_PAYLOAD_CRC, &v, sizeof(v));

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf, FUZZ_H_HEADER_CRC);
	COMP_CRC32C(crc, buf + FUZZ_H_HEADER_CRC + 4,
				DMF_HEADER_SIZE - FUZZ_H_HEADER_CRC - 4);
	FIN_CRC32C(crc);
	v = (uint32_t) crc;
	memcpy(buf + FUZZ_H_HEADER_CRC, &v, sizeof(v));
}

/*
 * Variants of a version 2 or 3 model v (len bytes) for the seed corpus, in a new
 * malloc'd buffer (NULL if v has no usable page layout), sealed:
 * fuzz_repage cuts the same body into pages of another size; fuzz_as_v1
 * writes it in format version 1 (one payload checksum, no pages), as
 * builds before version 2 wrote their models.
 */
static inline uint8_t *
fuzz_repage(const uint8_t *v, size_t len, uint32_t page, size_t *out_len)
{
	uint32_t	n_pages;
	size_t		body_end;
	uint64_t	new_pages;
	uint8_t    *out;

	memcpy(&n_pages, v + FUZZ_H_N_PAGES, 4);
	if (len < DMF_HEADER_SIZE || (uint64_t) n_pages * 4 >= len - DMF_HEADER_SIZE || page == 0)
		return NULL;
	body_end = len - (size_t) n_pages * 4;
	new_pages = (body_end - DMF_HEADER_SIZE + page - 1) / page;
	*out_len = body_end + 4 * new_pages;
	out = calloc(1, *out_len);
	if (out == NULL)
		return NULL;
	memcpy(out, v, body_end);
	memcpy(out + FUZZ_H_PAGE_SIZE, &page, 4);
	n_pages = (uint32_t) new_pages;
	memcpy(out + FUZZ_H_N_PAGES, &n_pages, 4);
	fuzz_fix_crcs(out, *out_len, 1);
	return out;
}

static inline uint8_t *
fuzz_as_v1(const uint8_t *v, size_t len, size_t *out_len)
{
	uint32_t	n_pages;
	uint16_t	one = 1;
	uint8_t    *out;

	memcpy(&n_pages, v + FUZZ_H_N_PAGES, 4);
	if (len < DMF_HEADER_SIZE || (uint64_t) n_pages * 4 >= len - DMF_HEADER_SIZE)
		return NULL;
	*out_len = len - (size_t) n_pages * 4;
	out = malloc(*out_len);
	if (out == NULL)
		return NULL;
	memcpy(out, v, *out_len);
	memcpy(out + FUZZ_H_VERSION, &one, 2);
	memset(out + FUZZ_H_PAGE_SIZE, 0, 8);	/* reserved in version 1 */
	fuzz_fix_crcs(out, *out_len, 1);
	return out;
}

#endif
