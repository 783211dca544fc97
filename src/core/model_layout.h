/*
 * model_layout.h
 *	  Byte-level helpers shared by the model decoder (model_format.c) and
 *	  encoder (model_encode.c): header field offsets, little-endian loads
 *	  and stores, checksums, and the element sizes a model's flags choose.
 *	  Private to those two files; model_format.h is the format itself.
 */
#ifndef DMF_MODEL_LAYOUT_H
#define DMF_MODEL_LAYOUT_H

#include <stdint.h>
#include <string.h>

#include "port/pg_crc32c.h"

#include "model_format.h"

/* field offsets in the header */
#define H_MAGIC 0
#define H_VERSION 4
#define H_HEADER_SIZE 6
#define H_MODEL_ID 8
#define H_TOTAL_SIZE 24
#define H_PAYLOAD_CRC 32
#define H_HEADER_CRC 36
#define H_FLAGS 40
#define H_DIM 44
#define H_ACTIVATION 48
#define H_N_USERS 52
#define H_N_ITEMS 56
#define H_N_TRAIN_USERS 60
#define H_N_TRAIN_ITEMS 64
#define H_N_SECTIONS 68
#define H_RATING_MIN 72
#define H_RATING_MAX 80
#define H_PAGE_SIZE 88			/* version 2 */
#define H_N_PAGES 92			/* version 2 */
#define H_RESERVED_V1 88
#define H_RESERVED 96

static inline uint16_t
get_u16(const uint8_t *p)
{
	uint16_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t
get_u32(const uint8_t *p)
{
	uint32_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t
get_u64(const uint8_t *p)
{
	uint64_t	v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline double
get_f64(const uint8_t *p)
{
	double		v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void
put_u16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void
put_f64(uint8_t *p, double v)
{
	memcpy(p, &v, sizeof(v));
}

static inline uint32_t
header_crc(const uint8_t *h)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, h, H_HEADER_CRC);
	COMP_CRC32C(crc, h + H_HEADER_CRC + 4, DMF_HEADER_SIZE - H_HEADER_CRC - 4);
	FIN_CRC32C(crc);
	return (uint32_t) crc;
}

static inline uint32_t
crc32c_of(const uint8_t *p, uint64_t n)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, p, (size_t) n);
	FIN_CRC32C(crc);
	return (uint32_t) crc;
}

/* Bytes per value of the factor, anchor and weight sections. */
static inline uint64_t
dmf_float_bytes(uint32_t flags)
{
	return (flags & DMF_FLAG_BFLOAT16) ? 2 : 4;
}

#endif
