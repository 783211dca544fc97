/*
 * forge_collision.c
 *	  Forges a model B that carries model A's header byte for byte (id, size,
 *	  checksums) but another payload, for test/t/022_cache_identity.sh: a
 *	  cache that trusts the header and the checksums to recognise a model it
 *	  decoded takes one for the other.
 *
 *	  forge_collision A_FILE B_FILE
 *
 * A_FILE holds the raw model bytes (no varlena header).  B differs from A in
 *   - ITEM_FACTORS and ITEM_ANCHORS: their rows rotated by one, so every item
 *     has another item's unit factor (predictions, recommendations and the
 *     fold-in of the factor aggregates all change) and B still decodes; in
 *     version 2 a page with fewer than N_FREE floats keeps A's bytes;
 *   - a few low mantissa bits of other floats, chosen so that every checksum
 *     comes out as A's: in format version 1 the payload CRC32C (bits of user
 *     weights), in version 2 the CRC32C of each page that changed (bits of
 *     floats in that page), so that the page checksums stay A's too.
 *     CRC32C is affine over GF(2): flipping a set of bits changes the CRC by
 *     the XOR of what each bit changes it by alone, so the bits are the
 *     solution of a 32 x N linear system.
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
#define H_VERSION 4
#define H_PAGE_SIZE 88
#define H_N_PAGES 92
#define N_FREE 8				/* floats whose low byte is free: 64 bits */

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

/*
 * Flips low bits of the N_FREE floats at cand[] (byte offsets inside
 * [start, start + n)) so that the CRC32C of b[start, start + n) becomes
 * want.  The exponents are left alone, so a finite float stays finite and
 * changes by at most 2^-15 relative.  Returns the number of bits flipped.
 */
static int
force_crc(uint8_t *b, size_t start, size_t n, const uint64_t *cand, uint32_t want)
{
	uint32_t	delta[N_FREE * 8];
	uint32_t	basis_crc[32];
	uint64_t	basis_mask[32];
	bool		basis_set[32] = {false};
	uint32_t	have,
				rest;
	uint64_t	flips = 0;

	for (int j = 0; j < N_FREE; j++)
	{
		float		w;

		if (cand[j] < start || cand[j] + sizeof(float) > start + n)
			die("free float %d lies outside the region", j);
		memcpy(&w, b + cand[j], sizeof(w));
		if (!isfinite(w))
			die("free float %d is not finite", j);
	}

	/* what each free bit alone does to the CRC (affine: XOR the base out) */
	have = fuzz_crc32c(b + start, n);
	for (int c = 0; c < N_FREE * 8; c++)
	{
		uint8_t    *p = b + cand[c / 8];

		*p ^= (uint8_t) (1u << (c % 8));
		delta[c] = fuzz_crc32c(b + start, n) ^ have;
		*p ^= (uint8_t) (1u << (c % 8));
	}

	/*
	 * Gaussian elimination over GF(2): basis_crc[k] has its highest set bit
	 * at k, and basis_mask[k] says which free bits XOR to it.
	 */
	for (int c = 0; c < N_FREE * 8; c++)
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
			die("the free bits do not span the CRC (bit %d): choose other floats", k);
		rest ^= basis_crc[k];
		flips ^= basis_mask[k];
	}
	for (int c = 0; c < N_FREE * 8; c++)
		if (flips & (UINT64_C(1) << c))
			b[cand[c / 8]] ^= (uint8_t) (1u << (c % 8));
	if (fuzz_crc32c(b + start, n) != want)
		die("the forced CRC %08x is not %08x", (unsigned) fuzz_crc32c(b + start, n),
			(unsigned) want);
	for (int j = 0; j < N_FREE; j++)
	{
		float		w;

		memcpy(&w, b + cand[j], sizeof(w));
		if (!isfinite(w))
			die("forced float %d is not finite", j);
	}
	return __builtin_popcountll(flips);
}

/* Version 1: the payload CRC, through bits of weights spread over the user branch. */
static int
force_v1(uint8_t *b, size_t len, uint32_t want)
{
	uint64_t	w_off,
				w_len,
				n_weights;
	uint64_t	cand[N_FREE];

	find_section(b, len, DMF_SECTION_USER_WEIGHTS, "USER_WEIGHTS", &w_off, &w_len);
	n_weights = w_len / sizeof(float);
	if (n_weights < N_FREE)
		die("the user branch has only %llu weights", (unsigned long long) n_weights);
	for (int j = 0; j < N_FREE; j++)
		cand[j] = w_off + (uint64_t) j * (n_weights / N_FREE) * sizeof(float);
	return force_crc(b, DMF_HEADER_SIZE, len - DMF_HEADER_SIZE, cand, want);
}

/*
 * Version 2: each page of B that differs from A's gets A's page CRC back,
 * through bits of floats in that page (factors, anchors or weights), so
 * that the page checksums and the header stay A's.
 */
static int
force_v2(const uint8_t *a, uint8_t *b, size_t len)
{
	static const uint32_t float_kinds[] = {
		DMF_SECTION_USER_FACTORS, DMF_SECTION_ITEM_FACTORS, DMF_SECTION_USER_ANCHORS,
		DMF_SECTION_ITEM_ANCHORS, DMF_SECTION_USER_WEIGHTS, DMF_SECTION_ITEM_WEIGHTS
	};
	uint64_t	page = get_u32(a + H_PAGE_SIZE);
	uint64_t	n_pages = get_u32(a + H_N_PAGES);
	uint64_t	body_end = len - 4 * n_pages;
	int			flips = 0;

	if (page == 0 || n_pages == 0 || 4 * n_pages > len - DMF_HEADER_SIZE)
		die("the page layout is not valid");
	for (uint64_t k = 0; k < n_pages; k++)
	{
		uint64_t	start = DMF_HEADER_SIZE + k * page;
		uint64_t	end = start + page < body_end ? start + page : body_end;
		uint64_t	floats[N_FREE * 64];
		int			n_floats = 0;
		uint64_t	cand[N_FREE];

		if (memcmp(a + start, b + start, end - start) == 0)
			continue;
		/* the floats of this page, in order, at most N_FREE * 64 of them */
		for (size_t s = 0; s < sizeof(float_kinds) / sizeof(float_kinds[0]); s++)
		{
			uint64_t	off,
						slen,
						p;

			find_section(b, len, float_kinds[s], "float", &off, &slen);
			p = start > off ? off + ((start - off + 3) / 4) * 4 : off;
			for (; p + 4 <= off + slen && p + 4 <= end && n_floats < N_FREE * 64; p += 4)
				floats[n_floats++] = p;
		}
		if (n_floats < N_FREE)
		{
			/*
			 * A page with the tail of a rotated section and few floats
			 * (where it falls moves with the metadata's length): it keeps
			 * A's bytes, and B differs in the other pages.
			 */
			memcpy(b + start, a + start, end - start);
			continue;
		}
		for (int j = 0; j < N_FREE; j++)
			cand[j] = floats[(uint64_t) j * n_floats / N_FREE];
		flips += force_crc(b, start, end - start, cand, get_u32(a + body_end + 4 * k));
	}
	return flips;
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
	uint16_t	version;
	uint32_t	want;
	int			flips;

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
	memcpy(&version, a + H_VERSION, 2);
	if (version == 1 && fuzz_crc32c(a + DMF_HEADER_SIZE, len - DMF_HEADER_SIZE) != want)
		die("model A's own payload CRC does not match its header");
	if (version != 1 && version != 2)
		die("format version %u is not known here", (unsigned) version);
	memcpy(&dim, a + H_DIM, 4);
	if (dim < 1)
		die("bad factor size %d", (int) dim);

	memcpy(b, a, len);
	rotate_rows(b, len, DMF_SECTION_ITEM_FACTORS, "ITEM_FACTORS", dim);
	rotate_rows(b, len, DMF_SECTION_ITEM_ANCHORS, "ITEM_ANCHORS", dim);
	if (memcmp(a, b, len) == 0)
		die("rotating the item rows changed nothing (all rows equal?)");
	flips = version == 1 ? force_v1(b, len, want) : force_v2(a, b, len);

	/* the checks the cache relies on must all pass on B, and B must differ */
	if (memcmp(a, b, DMF_HEADER_SIZE) != 0)
		die("the header changed");
	if (version == 2 && memcmp(a + len - 4 * (size_t) get_u32(a + H_N_PAGES),
							   b + len - 4 * (size_t) get_u32(a + H_N_PAGES),
							   4 * (size_t) get_u32(a + H_N_PAGES)) != 0)
		die("the page checksums changed");
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
		printf("forged %zu bytes (format version %u): header identical, checksums forced "
			   "with %d bit flips, %zu payload bytes differ\n",
			   len, (unsigned) version, flips, differ);
	}
	free(a);
	free(b);
	return 0;
}
