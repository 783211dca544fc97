/*
 * fuzz_crc.h
 *	  Re-sealing model bytes for the fuzz harness: recompute the two CRC32C
 *	  fields of the header (see src/core/model_format.h), so that mutated bytes
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

/*
 * Rewrites the checksums of buf[0..len) in place: the payload CRC over
 * [header, len), then the header CRC over the header without its own
 * field.  With set_total, the total size field becomes len first.  Does
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

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf + DMF_HEADER_SIZE, len - DMF_HEADER_SIZE);
	FIN_CRC32C(crc);
	v = (uint32_t) crc;
	memcpy(buf + FUZZ_H_PAYLOAD_CRC, &v, sizeof(v));

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf, FUZZ_H_HEADER_CRC);
	COMP_CRC32C(crc, buf + FUZZ_H_HEADER_CRC + 4,
				DMF_HEADER_SIZE - FUZZ_H_HEADER_CRC - 4);
	FIN_CRC32C(crc);
	v = (uint32_t) crc;
	memcpy(buf + FUZZ_H_HEADER_CRC, &v, sizeof(v));
}

#endif
