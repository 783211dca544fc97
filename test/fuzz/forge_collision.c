/*
 * forge_collision.c
 *	  Forges a model B that carries model A's header byte for byte (id, size,
 *	  payload CRC32C, header CRC32C) but another payload, for
 *	  test/t/022_cache_identity.sh: a cache that trusts the header and the
 *	  payload checksum to recognise a model it decoded takes one for the other.
 *
 *	  forge_collision A_FILE B_FILE
 *
 * A_FILE holds the raw model bytes (no varlena header).  B differs from A in
 *   - ITEM_FACTORS and ITEM_ANCHORS: their rows rotated by one, so every item
 *     has another item's unit factor (predictions, recommendations and the
 *     fold-in of the factor aggregates all change) and B still decodes;
 *   - a few low mantissa bits of USER_WEIGHTS, chosen so that the payload
 *     CRC32C comes out equal to A's.  CRC32C is affine over GF(2): flipping
 *     a set of bits changes the CRC by the XOR of what each bit changes it by
 *     alone, so the bits are the solution of a 32 x N linear system.
 * The header is not touched at all, so its own CRC stays valid.
 */
#include "postgres_fe.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_crc.h"			/* pg_crc32c, the header offsets */

/* header offsets not in fuzz_crc.h, as documented in model_format.h */
#define H_DIM 44
#define H_N_SECTIONS 68
#define N_WEIGHTS 8				/* weights whose low byte is free: 64 bits */

static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "forge_collision: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t	v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t	v;

	memcpy(&v, p, 8);
	return v;
}

/* The same CRC the decoder checks: over [header, len). */
static uint32_t
payload_crc(const uint8_t *buf, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf + DMF_HEADER_SIZE, len - DMF_HEADER_SIZE);
	FIN_CRC32C(crc);
	return (uint32_t) crc;
}

/* A section through the table documented in model_format.h. */
static void
find_section(const uint8_t *buf, size_t len, uint32_t kind, const char *name,
			 uint64_t *off, uint64_t *slen)
{
	uint32_t	n = get_u32(buf + H_N_SECTIONS);

	if (n < 1 || n > DMF_MAX_SECTIONS ||
		DMF_HEADER_SIZE + (uint64_t) n * DMF_SECTION_ENTRY_SIZE > len)
		die("the section table is not valid (%u sections)", (unsigned) n);
	for (uint32_t k = 0; k < n; k++)
	{
		const uint8_t *e = buf + DMF_HEADER_SIZE + (uint64_t) k * DMF_SECTION_ENTRY_SIZE;

		if (get_u32(e) != kind)
			continue;
		*off = get_u64(e + 8);
		*slen = get_u64(e + 16);
		if (*off < DMF_HEADER_SIZE || *off > len || *slen > len - *off)
			die("section %s lies outside the model", name);
		return;
	}
	die("the model has no %s section", name);
}

/* Rotates the rows of a float32 [rows x dim] section by one. */
static void
rotate_rows(uint8_t *buf, size_t len, uint32_t kind, const char *name, int32_t dim)
{
	uint64_t	off,
				slen,
				row = (uint64_t) dim * sizeof(float);
	uint8_t    *first;

	find_section(buf, len, kind, name, &off, &slen);
	if (slen % row != 0 || slen / row < 2)
		die("section %s is not at least two rows of %d floats", name, (int) dim);
	/* a rotation keeps every row a unit vector (or zero): B still decodes */
	first = malloc(row);
	if (first == NULL)
		die("out of memory");
	memcpy(first, buf + off, row);
	memmove(buf + off, buf + off + row, slen - row);
	memcpy(buf + off + slen - row, first, row);
	free(first);
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	uint8_t    *a,
			   *b;
	long		flen;
	size_t		len;
	int32_t		dim;
	uint32_t	want,
				have;
	uint64_t	w_off,
				w_len,
				n_weights;
	uint64_t	cand_byte[N_WEIGHTS];
	uint32_t	delta[N_WEIGHTS * 8];
	uint32_t	basis_crc[32];
	uint64_t	basis_mask[32];
	bool		basis_set[32] = {false};
	uint32_t	rest;
	uint64_t	flips = 0;

	if (argc != 3)
		die("usage: forge_collision A_FILE B_FILE");

	f = fopen(argv[1], "rb");
	if (f == NULL)
		die("cannot open %s: %s", argv[1], strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (flen = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		die("cannot size %s", argv[1]);
	len = (size_t) flen;
	if (len < DMF_HEADER_SIZE)
		die("%s has %zu bytes, less than a model header", argv[1], len);
	a = malloc(len);
	b = malloc(len);
	if (a == NULL || b == NULL)
		die("out of memory");
	if (fread(a, 1, len, f) != len)
		die("cannot read %s", argv[1]);
	fclose(f);

	if (memcmp(a, DMF_MAGIC, 4) != 0)
		die("%s is not a dmf model (no magic)", argv[1]);
	if (get_u64(a + FUZZ_H_TOTAL_SIZE) != len)
		die("the header's total size is not the file's %zu bytes", len);
	want = get_u32(a + FUZZ_H_PAYLOAD_CRC);
	if (payload_crc(a, len) != want)
		die("model A's own payload CRC does not match its header");
	memcpy(&dim, a + H_DIM, 4);
	if (dim < 1)
		die("bad factor size %d", (int) dim);

	memcpy(b, a, len);
	rotate_rows(b, len, DMF_SECTION_ITEM_FACTORS, "ITEM_FACTORS", dim);
	rotate_rows(b, len, DMF_SECTION_ITEM_ANCHORS, "ITEM_ANCHORS", dim);
	if (memcmp(a, b, len) == 0)
		die("rotating the item rows changed nothing (all rows equal?)");

	/*
	 * Free bits: the lowest mantissa byte of N_WEIGHTS weights spread over
	 * the user branch.  The exponent is left alone, so a finite weight stays
	 * finite, and the change is at most 2^-15 relative.
	 */
	find_section(b, len, DMF_SECTION_USER_WEIGHTS, "USER_WEIGHTS", &w_off, &w_len);
	n_weights = w_len / sizeof(float);
	if (n_weights < N_WEIGHTS)
		die("the user branch has only %llu weights", (unsigned long long) n_weights);
	for (int j = 0; j < N_WEIGHTS; j++)
	{
		float		w;

		cand_byte[j] = w_off + (uint64_t) j * (n_weights / N_WEIGHTS) * sizeof(float);
		memcpy(&w, b + cand_byte[j], sizeof(w));
		if (!isfinite(w))
			die("user weight %d is not finite", j);
	}

	/* what each free bit alone does to the CRC (affine: XOR the base out) */
	have = payload_crc(b, len);
	for (int c = 0; c < N_WEIGHTS * 8; c++)
	{
		uint8_t    *p = b + cand_byte[c / 8];

		*p ^= (uint8_t) (1u << (c % 8));
		delta[c] = payload_crc(b, len) ^ have;
		*p ^= (uint8_t) (1u << (c % 8));
	}

	/*
	 * Gaussian elimination over GF(2): basis_crc[k] has its highest set bit
	 * at k, and basis_mask[k] says which free bits XOR to it.
	 */
	for (int c = 0; c < N_WEIGHTS * 8; c++)
	{
		uint32_t	v = delta[c];
		uint64_t	m = UINT64_C(1) << c;

		for (int k = 31; k >= 0 && v != 0; k--)
		{
			if (!(v & (UINT32_C(1) << k)))
				continue;
			if (!basis_set[k])
			{
				basis_set[k] = true;
				basis_crc[k] = v;
				basis_mask[k] = m;
				break;
			}
			v ^= basis_crc[k];
			m ^= basis_mask[k];
		}
	}
	rest = have ^ want;
	for (int k = 31; k >= 0; k--)
	{
		if (!(rest & (UINT32_C(1) << k)))
			continue;
		if (!basis_set[k])
			die("the free bits do not span the CRC (bit %d): choose other weights", k);
		rest ^= basis_crc[k];
		flips ^= basis_mask[k];
	}
	for (int c = 0; c < N_WEIGHTS * 8; c++)
		if (flips & (UINT64_C(1) << c))
			b[cand_byte[c / 8]] ^= (uint8_t) (1u << (c % 8));

	/* the checks the cache relies on must all pass on B, and B must differ */
	for (int j = 0; j < N_WEIGHTS; j++)
	{
		float		w;

		memcpy(&w, b + cand_byte[j], sizeof(w));
		if (!isfinite(w))
			die("forced user weight %d is not finite", j);
	}
	if (memcmp(a, b, DMF_HEADER_SIZE) != 0)
		die("the header changed");
	if (payload_crc(b, len) != get_u32(b + FUZZ_H_PAYLOAD_CRC))
		die("the forced payload CRC %08x is not the header's %08x",
			(unsigned) payload_crc(b, len), (unsigned) want);
	if (memcmp(a + DMF_HEADER_SIZE, b + DMF_HEADER_SIZE, len - DMF_HEADER_SIZE) == 0)
		die("the payload of B equals A's");

	f = fopen(argv[2], "wb");
	if (f == NULL)
		die("cannot create %s: %s", argv[2], strerror(errno));
	if (fwrite(b, 1, len, f) != len || fclose(f) != 0)
		die("cannot write %s", argv[2]);

	{
		size_t		differ = 0;

		for (size_t k = DMF_HEADER_SIZE; k < len; k++)
			differ += a[k] != b[k];
		printf("forged %zu bytes: header identical, payload CRC32C %08x forced with %d bit flips, "
			   "%zu payload bytes differ\n",
			   len, (unsigned) want, __builtin_popcountll(flips), differ);
	}
	free(a);
	free(b);
	return 0;
}
