/*
 * gen_seeds.c
 *	  Writes a seed corpus for fuzz_model: small valid models made with
 *	  dmf_model_encode from synthetic branches, ids, factors, anchors and
 *	  fold-in settings.
 *
 *	  gen_seeds DIR
 *
 * Each model is written three times, with the harness's mode byte 0 (raw),
 * 1 (recompute the CRCs) and 3 (also the total size) in front, and so are
 * four variants of it: cut into pages of the smallest size a reader accepts
 * (several pages in a small seed), in format version 1, which this build
 * still reads, and stored in bfloat16 (format version 3), in both page
 * sizes.  Every model is
 * decoded back before it is written: a seed that does not decode is an
 * encoder bug (or a reader that lost version 1), and the generator fails.
 * Copies with a NaN or infinite weight or a NaN lambda (float32 and
 * bfloat16) are written too, with the CRCs recomputed: the decoder must
 * refuse each, or the generator fails.
 */
#include "postgres_fe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "bfloat16.h"
#include "fuzz_crc.h"
#include "model_format.h"
#include "network.h"
#include "rng.h"

/* the core's wall clock lives in train.c, which is not linked here */
__attribute__((weak)) double
dmf_now_seconds(void)
{
	return 0.0;
}

typedef struct SeedSpec
{
	const char *name;
	int32_t		users;			/* with a factor */
	int32_t		train_users;	/* the first train_users have inputs */
	int32_t		items;
	int32_t		train_items;
	int32_t		dim;
	int			hidden[3];		/* hidden widths, 0-terminated */
	DmfActivation act;
	uint32_t	flags;
	int			n_levels;		/* 0: no quantizer */
	int32_t		fold_in_steps;	/* 0 .. DMF_MAX_FOLD_IN_STEPS */
	double		fold_in_rate;	/* 0 .. 100 */
	const char *meta;
} SeedSpec;

static const SeedSpec specs[] = {
	{"tiny", 3, 3, 2, 2, 1, {0}, DMF_ACT_LINEAR, 0, 0, 0, 0.0, "{}"},
	{"plain", 6, 5, 4, 4, 3, {4, 0}, DMF_ACT_RELU, 0, 0, 25, 0.3,
	"{\"options\": {\"layers\": [4], \"dim\": 3}}"},
	{"levels", 5, 5, 6, 4, 2, {3, 0}, DMF_ACT_TANH, 0, 5, 1, 100.0,
	"{\"options\": {\"layers\": [3]}, \"metrics\": {\"rmse\": 0.9}}"},
	{"discrete", 7, 4, 5, 5, 4, {5, 3, 0}, DMF_ACT_SIGMOID,
		DMF_FLAG_DISCRETE | DMF_FLAG_CENTERED_INPUT, 3, DMF_MAX_FOLD_IN_STEPS, 0.01,
	"{\"discrete\": true}"},
	{"empty-meta", 4, 2, 3, 3, 2, {2, 0}, DMF_ACT_RELU, DMF_FLAG_CENTERED_INPUT, 2,
		3, 0.0, ""},
	{"implicit", 6, 5, 5, 4, 3, {4, 0}, DMF_ACT_RELU,
		DMF_FLAG_IMPLICIT | DMF_FLAG_TRAINED_USERS_UNFOLDED | DMF_FLAG_TRAINED_ITEMS_UNFOLDED,
		0, 0, 0.3, "{\"feedback\": \"implicit\"}"},
};

static void *
xalloc(size_t n)
{
	void	   *p = calloc(1, n ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "gen_seeds: out of memory\n");
		exit(1);
	}
	return p;
}

/* n unit vectors of size dim in f (n x dim) */
static void
unit_rows(float *f, int32_t n, int32_t dim, DmfRng *rng)
{
	for (int32_t k = 0; k < n; k++)
	{
		double		ss = 0.0;

		for (int j = 0; j < dim; j++)
		{
			f[(size_t) k * dim + j] = (float) dmf_rng_normal(rng);
			ss += (double) f[(size_t) k * dim + j] * f[(size_t) k * dim + j];
		}
		for (int j = 0; j < dim; j++)
			f[(size_t) k * dim + j] /= (float) sqrt(ss);
	}
}

static void
make_side(DmfSide *s, int32_t n, int32_t n_train, int32_t dim, DmfRng *rng,
		  int64_t id_base)
{
	int64_t    *ids = xalloc(sizeof(int64_t) * n);
	int32_t    *input = xalloc(sizeof(int32_t) * n);
	float	   *f = xalloc(sizeof(float) * (size_t) n * dim);
	float	   *anchors = xalloc(sizeof(float) * (size_t) n_train * dim);
	int32_t    *perm = xalloc(sizeof(int32_t) * n_train);
	int64_t		id = id_base;

	for (int32_t k = 0; k < n_train; k++)
		perm[k] = k;
	dmf_rng_shuffle(rng, perm, n_train);
	for (int32_t k = 0; k < n; k++)
	{
		id += 1 + (int64_t) dmf_rng_below(rng, 1000);
		ids[k] = id;
		input[k] = -1;
	}
	/* training entities at random places among the ids, in random order */
	for (int32_t k = 0, placed = 0; k < n && placed < n_train; k++)
		if (n - k <= n_train - placed || dmf_rng_below(rng, 2) == 0)
			input[k] = perm[placed++];
	unit_rows(f, n, dim, rng);
	/* the last added entity has no factor: the zero vector */
	if (n > n_train)
		memset(f + (size_t) (n - 1) * dim, 0, sizeof(float) * dim);
	/* anchors by input position: unit vectors, the last one zero when n_train > 2 */
	unit_rows(anchors, n_train, dim, rng);
	if (n_train > 2)
		memset(anchors + (size_t) (n_train - 1) * dim, 0, sizeof(float) * dim);
	free(perm);
	s->n = n;
	s->n_train = n_train;
	s->ids = ids;
	s->input = input;
	s->factors = f;
	s->anchors = anchors;
}

static void
make_branch(DmfBranch *b, int32_t input, int32_t dim, const int *hidden,
			DmfActivation act, DmfRng *rng)
{
	int			sizes[DMF_MAX_LAYERS + 1];
	int			layers = 0;

	sizes[0] = input;
	while (hidden[layers] > 0)
	{
		sizes[layers + 1] = hidden[layers];
		layers++;
	}
	sizes[++layers] = dim;
	if (!dmf_branch_layout(b, layers, sizes, act))
	{
		fprintf(stderr, "gen_seeds: bad branch layout\n");
		exit(1);
	}
	dmf_branch_init(b, rng);
}

static void
write_seed(const char *dir, const char *name, int mode, const uint8_t *bytes,
		   uint64_t size)
{
	char		path[4096];
	FILE	   *f;
	uint8_t		m = (uint8_t) mode;

	snprintf(path, sizeof(path), "%s/seed-%s-mode%d", dir, name, mode);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(&m, 1, 1, f) != 1 ||
		fwrite(bytes, 1, (size_t) size, f) != size || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

/* What make_side and make_branch allocated for m. */
static void
free_sides_and_branches(DmfModel *m)
{
	free((void *) m->users.ids);
	free((void *) m->users.input);
	free((void *) m->users.factors);
	free((void *) m->users.anchors);
	free((void *) m->items.ids);
	free((void *) m->items.input);
	free((void *) m->items.factors);
	free((void *) m->items.anchors);
	free(m->user_branch.params);
	free(m->item_branch.params);
}

/*
 * The width of who-rated-what in bfloat16 models at the boundary: 16-bit
 * item positions up to 65,536 items, 32-bit beyond, each read back exactly
 * (too large for a seed: checked here, not written).
 */
static bool
rated_width_ok(int32_t n_items, bool want_u16)
{
	static const int no_hidden[] = {0};
	DmfRng		rng;
	DmfModel	m,
				back;
	int64_t		offsets[3] = {0, 2, 3};
	int32_t		items[3] = {0, n_items - 1, n_items / 2};
	uint64_t	size;
	uint8_t    *bytes;
	char		detail[256];
	bool		ok;

	dmf_rng_seed(&rng, 7);
	memset(&m, 0, sizeof(m));
	m.flags = DMF_FLAG_BFLOAT16;
	m.dim = 1;
	m.rating_min = 1.0;
	m.rating_max = 5.0;
	m.meta = "{}";
	m.meta_len = 2;
	make_side(&m.users, 2, 2, 1, &rng, 0);
	make_side(&m.items, n_items, 2, 1, &rng, 0);
	make_branch(&m.user_branch, 2, 1, no_hidden, DMF_ACT_LINEAR, &rng);
	make_branch(&m.item_branch, 2, 1, no_hidden, DMF_ACT_LINEAR, &rng);
	m.rated_offsets = offsets;
	m.rated_items = items;
	size = dmf_model_encoded_size(&m);
	bytes = xalloc((size_t) size);
	dmf_model_encode(&m, bytes, size);
	ok = dmf_model_decode(bytes, (size_t) size, &back, detail, sizeof(detail)) == DMF_DECODE_OK;
	if (!ok)
		fprintf(stderr, "gen_seeds: %d items: %s\n", (int) n_items, detail);
	ok = ok && ((back.flags & DMF_FLAG_RATED_U16) != 0) == want_u16 &&
		back.rated_offsets[2] == 3 && memcmp(back.rated_items, items, sizeof(items)) == 0;
	free(back.widened);			/* NULL after a failed decode */
	free(bytes);
	free_sides_and_branches(&m);
	return ok;
}

/*
 * m with one value made non-finite, as a forger who re-seals the checksums
 * would write it, in float32 and in bfloat16: a NaN user weight (the first
 * one), a NaN bias (the item branch's last parameter), an infinite user
 * weight and a NaN lambda.  Each must be refused as corrupt (false if one
 * decodes), and is written as a seed, so that the fuzzer starts next to
 * values the decoder must refuse.  m comes back unchanged.
 */
static bool
nonfinite_refused(const char *dir, const SeedSpec *sp, DmfModel *m, int *written)
{
	static const char *const what[] = {
		"nan_user_weight", "nan_item_bias", "inf_user_weight", "nan_lambda"
	};

	for (int c = 0; c < 4; c++)
	{
		float	   *p = c == 1 ? &m->item_branch.params[m->item_branch.n_params - 1]
			: &m->user_branch.params[0];
		float		keep = *p;
		double		keep_lambda = m->lambda;

		if (c == 3 && m->n_levels == 0)
			continue;
		if (c == 3)
			m->lambda = NAN;
		else
			*p = c == 2 ? INFINITY : NAN;
		for (int compact = 0; compact < 2; compact++)
		{
			uint64_t	size;
			uint8_t    *bytes;
			DmfModel	back;
			char		detail[256],
						name[128];
			DmfDecodeStatus st;

			if (compact)
				m->flags |= DMF_FLAG_BFLOAT16;
			size = dmf_model_encoded_size(m);
			bytes = xalloc((size_t) size);
			dmf_model_encode(m, bytes, size);
			m->flags &= ~DMF_FLAG_BFLOAT16;
			st = dmf_model_decode(bytes, (size_t) size, &back, detail, sizeof(detail));
			if (st != DMF_DECODE_CORRUPT)
			{
				fprintf(stderr, "gen_seeds: seed %s with a %s%s was not refused as corrupt\n",
						sp->name, what[c], compact ? " (bfloat16)" : "");
				if (st == DMF_DECODE_OK)
					free(back.widened);
				free(bytes);
				return false;
			}
			snprintf(name, sizeof(name), "%s_%s%s", sp->name, what[c], compact ? "_bfloat16" : "");
			write_seed(dir, name, 1, bytes, size);
			(*written)++;
			free(bytes);
		}
		*p = keep;
		m->lambda = keep_lambda;
	}
	return true;
}

int
main(int argc, char **argv)
{
	int			written = 0;
	int			multi_page = 0; /* small-page variants with more than one page */

	if (argc != 2)
	{
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++)
	{
		const SeedSpec *sp = &specs[s];
		DmfRng		rng;
		DmfModel	m;
		DmfModel	back;
		uint64_t	size,
					size16;
		uint8_t    *bytes,
				   *bytes16;
		double	   *levels = NULL,
				   *bounds = NULL;
		int64_t    *rated_offsets;
		int32_t    *rated_items;
		char		detail[256];

		dmf_rng_seed(&rng, 1000 + s);
		memset(&m, 0, sizeof(m));
		m.version = DMF_FORMAT_VERSION;
		for (int k = 0; k < 16; k++)
			m.model_id[k] = (uint8_t) dmf_rng_below(&rng, 256);
		m.flags = sp->flags;
		m.dim = sp->dim;
		/* an implicit model scores on [0, 1] */
		m.rating_min = (sp->flags & DMF_FLAG_IMPLICIT) ? 0.0 : 1.0;
		m.rating_max = (sp->flags & DMF_FLAG_IMPLICIT) ? 1.0 :
			sp->n_levels > 0 ? (double) sp->n_levels : 5.0;
		make_side(&m.users, sp->users, sp->train_users, sp->dim, &rng, -50);
		make_side(&m.items, sp->items, sp->train_items, sp->dim, &rng, 7);
		make_branch(&m.user_branch, sp->train_items, sp->dim, sp->hidden, sp->act, &rng);
		make_branch(&m.item_branch, sp->train_users, sp->dim, sp->hidden, sp->act, &rng);
		m.fold_in_steps = sp->fold_in_steps;
		m.fold_in_rate = sp->fold_in_rate;
		m.meta = sp->meta;
		m.meta_len = (uint32_t) strlen(sp->meta);
		/* who rated what: user u rated every item i with (u + i) % 3 == 0 */
		rated_offsets = xalloc(sizeof(int64_t) * ((size_t) m.users.n + 1));
		rated_items = xalloc(sizeof(int32_t) * ((size_t) m.users.n * m.items.n + 1));
		rated_offsets[0] = 0;
		for (int32_t u = 0, nnz = 0; u < m.users.n; u++)
		{
			for (int32_t i = 0; i < m.items.n; i++)
				if ((u + i) % 3 == 0)
					rated_items[nnz++] = i;
			rated_offsets[u + 1] = nnz;
		}
		m.rated_offsets = rated_offsets;
		m.rated_items = rated_items;
		if (sp->n_levels > 0)
		{
			levels = xalloc(sizeof(double) * sp->n_levels);
			bounds = xalloc(sizeof(double) * (sp->n_levels + 1));
			for (int k = 0; k < sp->n_levels; k++)
				levels[k] = 1.0 + k;
			bounds[0] = 0.5;
			for (int k = 1; k <= sp->n_levels; k++)
				bounds[k] = 0.5 + k;
			m.n_levels = sp->n_levels;
			m.lambda = 10.0;
			m.levels = levels;
			m.boundaries = bounds;
		}

		size = dmf_model_encoded_size(&m);
		bytes = xalloc((size_t) size);
		dmf_model_encode(&m, bytes, size);
		if (dmf_model_decode(bytes, (size_t) size, &back, detail, sizeof(detail)) != DMF_DECODE_OK)
		{
			fprintf(stderr, "gen_seeds: seed %s does not decode: %s\n", sp->name, detail);
			return 1;
		}
		if (back.fold_in_steps != m.fold_in_steps || back.fold_in_rate != m.fold_in_rate ||
			memcmp(back.users.anchors, m.users.anchors,
				   sizeof(float) * (size_t) m.users.n_train * m.dim) != 0 ||
			memcmp(back.items.anchors, m.items.anchors,
				   sizeof(float) * (size_t) m.items.n_train * m.dim) != 0 ||
			back.rated_offsets == NULL ||
			memcmp(back.rated_offsets, rated_offsets, sizeof(int64_t) * ((size_t) m.users.n + 1)) != 0 ||
			memcmp(back.rated_items, rated_items, sizeof(int32_t) * (size_t) rated_offsets[m.users.n]) != 0)
		{
			fprintf(stderr, "gen_seeds: seed %s decodes to other anchors, fold-in settings or rated items\n",
					sp->name);
			return 1;
		}
		free(back.widened);
		/* the same model in bfloat16 (format version 3), then the variants */
		m.flags |= DMF_FLAG_BFLOAT16;
		size16 = dmf_model_encoded_size(&m);
		bytes16 = xalloc((size_t) size16);
		dmf_model_encode(&m, bytes16, size16);
		m.flags &= ~DMF_FLAG_BFLOAT16;
		for (int variant = 0; variant < 5; variant++)
		{
			static const char *const suffix[] = {
				"", "_small_pages", "_v1", "_bfloat16", "_bfloat16_small_pages"
			};
			static const int version[] = {2, 2, 1, 3, 3};
			bool		compact = variant >= 3;
			const uint8_t *from = compact ? bytes16 : bytes;
			size_t		from_len = (size_t) (compact ? size16 : size);
			char		name[128];
			size_t		vlen = from_len;
			uint8_t    *v = variant == 0 || variant == 3 ? (uint8_t *) from :
				variant == 2 ? fuzz_as_v1(from, from_len, &vlen) :
				fuzz_repage(from, from_len, DMF_MIN_PAGE_SIZE, &vlen);
			bool		good;

			/* implicit models came after format 1: as one, it must be refused */
			if (variant == 2 && (sp->flags & DMF_FLAG_IMPLICIT))
			{
				DmfDecodeStatus st = v == NULL ? DMF_DECODE_OK :
					dmf_model_decode(v, vlen, &back, detail, sizeof(detail));

				free(v);
				if (st != DMF_DECODE_CORRUPT)
				{
					fprintf(stderr, "gen_seeds: seed %s as format 1 was not refused as corrupt\n",
							sp->name);
					return 1;
				}
				continue;
			}
			good = v != NULL &&
				dmf_model_decode(v, vlen, &back, detail, sizeof(detail)) == DMF_DECODE_OK;

			/* factors come back exactly, or rounded to bfloat16 */
			good = good && back.version == version[variant] && back.users.n == m.users.n &&
				back.rated_offsets != NULL &&
				memcmp(back.rated_items, rated_items,
					   sizeof(int32_t) * (size_t) rated_offsets[m.users.n]) == 0;
			for (size_t k = 0; good && k < (size_t) m.items.n * m.dim; k++)
				good = back.items.factors[k] == (compact ?
												 dmf_bfloat16_to_float(dmf_bfloat16_from_float(m.items.factors[k])) :
												 m.items.factors[k]);
			if (v != NULL)
				free(back.widened);
			if (!good)
			{
				fprintf(stderr, "gen_seeds: variant %s of seed %s does not decode to it: %s\n",
						suffix[variant], sp->name, v == NULL ? "not made" : detail);
				if (v != from)
					free(v);
				return 1;
			}
			if ((variant == 1 || variant == 4) && back.n_pages > 1)
				multi_page++;
			snprintf(name, sizeof(name), "%s%s", sp->name, suffix[variant]);
			write_seed(argv[1], name, 0, v, vlen);
			write_seed(argv[1], name, 1, v, vlen);
			write_seed(argv[1], name, 3, v, vlen);
			written += 3;
			if (v != from)
				free(v);
		}
		free(bytes16);
		if (!nonfinite_refused(argv[1], sp, &m, &written))
			return 1;

		free(bytes);
		free(levels);
		free(bounds);
		free(rated_offsets);
		free(rated_items);
		free_sides_and_branches(&m);
	}
	if (!rated_width_ok(65536, true) || !rated_width_ok(65537, false))
	{
		fprintf(stderr, "gen_seeds: a bfloat16 model's rated items do not come back at the 65,536-item boundary\n");
		return 1;
	}
	if (multi_page == 0)
	{
		fprintf(stderr, "gen_seeds: no seed spans several pages: page arithmetic goes unfuzzed\n");
		return 1;
	}
	printf("%d seeds written to %s (%d models over several pages)\n", written, argv[1], multi_page);
	return 0;
}
