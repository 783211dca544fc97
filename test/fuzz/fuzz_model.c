/*
 * fuzz_model.c
 *	  libFuzzer harness for the model decoder (src/core/model_format.c).
 *
 * Input: one mode byte, then the model bytes.
 *
 *   mode bit 0  recompute the header and payload CRC32C of the bytes before
 *               decoding, so mutations reach the structural checks behind
 *               the checksums (random bytes almost never pass them)
 *   mode bit 1  with bit 0: also set the header's total size to the length
 *
 * Every input goes through dmf_model_peek (on the unaligned, exactly sized
 * input, as a TOAST slice would be) and dmf_model_decode (on an aligned,
 * exactly sized copy).  When decoding succeeds, the harness reads every
 * id, input position, factor, anchor, weight, metadata byte, level and
 * boundary the model points to (AddressSanitizer catches a pointer past
 * the buffer), checks that those arrays and the fold-in section lie in the
 * payload without overlapping, checks the invariants the SQL functions rely
 * on (every weight, factor, anchor, level, boundary and lambda a finite
 * number), runs both branches forward on a one-row input and refines the result
 * with fold-in against the other side's anchors (as the factor aggregates
 * do, with at most FUZZ_FOLD_IN_STEPS steps to stay fast), runs the
 * quantizer on a few ratings, and checks that re-encoding the decoded model
 * gives bytes that decode to the same model.
 *
 * The lazy reading of src/model_cache.c (header, page checksums, section
 * table, ids and levels, then blocks of factor rows) runs on every input
 * too, on a copy holding only the pages it read (the rest uninitialised and
 * poisoned for ASan), and where the full decode accepts a model the lazy one
 * must agree with it.
 *
 * Any violated invariant calls abort(), which libFuzzer reports as a crash.
 */
#include "postgres_fe.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "fold_in.h"
#include "model_format.h"
#include "network.h"
#include "quantizer.h"
#include "sparse.h"

#include "fuzz_crc.h"

#define MODE_FIX_CRC 0x01
#define MODE_FIX_TOTAL 0x02

/* fold-in steps the harness runs at most, whatever the model says */
#define FUZZ_FOLD_IN_STEPS 5

/* the core's wall clock lives in train.c, which is not linked here */
__attribute__((weak)) double
dmf_now_seconds(void)
{
	return 0.0;
}

/* keeps the sums alive so the reads are not optimised away */
static volatile double sink;

/* what the inputs came to, printed at exit */
static uint64_t n_inputs,
			n_decoded,
			n_corrupt,
			n_version,
			n_fold_in_runs,
			n_fold_in_nonfinite;

static void __attribute__((destructor))
report_counts(void)
{
	if (n_inputs > 0)
		fprintf(stderr, "fuzz_model: %llu inputs: %llu decoded, %llu corrupt, %llu other version; "
				"fold-in on %llu factors, %llu of them non-finite afterwards\n",
				(unsigned long long) n_inputs, (unsigned long long) n_decoded,
				(unsigned long long) n_corrupt, (unsigned long long) n_version,
				(unsigned long long) n_fold_in_runs,
				(unsigned long long) n_fold_in_nonfinite);
}

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "invariant violated: %s: ", #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
			abort(); \
		} \
	} while (0)

/* What dmf_recommend relies on: per user, ascending positions of items. */
static void
check_rated(const DmfModel *m)
{
	if (m->rated_offsets == NULL)
		return;
	CHECK(m->rated_offsets[0] == 0, "rated offsets start at %lld",
		  (long long) m->rated_offsets[0]);
	for (int32_t u = 0; u < m->users.n; u++)
	{
		CHECK(m->rated_offsets[u + 1] >= m->rated_offsets[u], "rated offsets of user %d", (int) u);
		for (int64_t k = m->rated_offsets[u]; k < m->rated_offsets[u + 1]; k++)
			CHECK(m->rated_items[k] >= 0 && m->rated_items[k] < m->items.n &&
				  (k == m->rated_offsets[u] || m->rated_items[k] > m->rated_items[k - 1]),
				  "rated item %d of user %d", (int) m->rated_items[k], (int) u);
	}
}

static double
touch_side(const DmfSide *s, int32_t dim)
{
	double		sum = 0.0;

	for (int32_t k = 0; k < s->n; k++)
	{
		sum += (double) s->ids[k];
		sum += (double) s->input[k];
	}
	for (size_t k = 0; k < (size_t) s->n * (size_t) dim; k++)
	{
		CHECK(isfinite(s->factors[k]), "factor value %zu is %g", k, s->factors[k]);
		sum += (double) s->factors[k];
	}
	for (size_t k = 0; k < (size_t) s->n_train * (size_t) dim; k++)
	{
		CHECK(isfinite(s->anchors[k]), "anchor value %zu is %g", k, s->anchors[k]);
		sum += (double) s->anchors[k];
	}
	return sum;
}

static void
check_side(const DmfSide *s, const char *name)
{
	int64_t		with_input = 0;

	CHECK(s->n >= s->n_train && s->n_train >= 1, "%s: n %d n_train %d",
		  name, (int) s->n, (int) s->n_train);
	for (int32_t k = 0; k < s->n; k++)
	{
		CHECK(k == 0 || s->ids[k] > s->ids[k - 1], "%s ids at %d", name, (int) k);
		CHECK(s->input[k] == -1 || (s->input[k] >= 0 && s->input[k] < s->n_train),
			  "%s input %d at %d", name, (int) s->input[k], (int) k);
		if (s->input[k] >= 0)
			with_input++;
		/* the lookup the SQL functions use finds every stored id */
		CHECK(dmf_side_find(s, s->ids[k]) == k, "%s lookup of id at %d", name, (int) k);
	}
	CHECK(with_input == s->n_train, "%s: %lld inputs, n_train %d", name,
		  (long long) with_input, (int) s->n_train);
}

static double
touch_branch(const DmfBranch *b, int32_t input, int32_t dim, const char *name)
{
	double		sum = 0.0;

	CHECK(b->n_layers >= 1 && b->n_layers <= DMF_MAX_LAYERS, "%s layers %d",
		  name, b->n_layers);
	CHECK(b->sizes[0] == input && b->sizes[b->n_layers] == dim,
		  "%s maps %d to %d, expected %d to %d", name, b->sizes[0],
		  b->sizes[b->n_layers], (int) input, (int) dim);
	for (int l = 0; l < b->n_layers; l++)
	{
		CHECK(b->sizes[l + 1] >= 1 && b->sizes[l + 1] <= DMF_MAX_WIDTH,
			  "%s width %d", name, b->sizes[l + 1]);
		CHECK(b->w_off[l] + (size_t) b->sizes[l] * b->sizes[l + 1] == b->b_off[l] &&
			  b->b_off[l] + (size_t) b->sizes[l + 1] <= b->n_params,
			  "%s layer %d offsets", name, l);
	}
	for (size_t k = 0; k < b->n_params; k++)
	{
		CHECK(isfinite(b->params[k]), "%s weight %zu is %g", name, k, b->params[k]);
		sum += (double) b->params[k];
	}
	return sum;
}

/*
 * The factor of a one-row input with a rating at the first and the last
 * input position, as dmf_refresh and the factor aggregates compute it:
 * the branch forward, then fold-in against the anchors of the other side
 * (whose training entities are the branch's input positions).  Fold-in
 * also runs on a fixed unit vector with at least one step, so the anchors
 * the row points to are read even when the branch gives a zero factor or
 * the model has no fold-in steps.
 */
static double
forward_one(const DmfModel *m, const DmfBranch *b, const float *anchors)
{
	DmfBranchWork w;
	DmfCsr		x;
	int64_t		rowptr[2];
	int32_t		col[2];
	float		val[2];
	int32_t		row = 0;
	float	   *out;
	float	   *unit;
	int			dim = b->sizes[b->n_layers];
	int			steps = m->fold_in_steps < FUZZ_FOLD_IN_STEPS ?
		m->fold_in_steps : FUZZ_FOLD_IN_STEPS;
	bool		was_zero = true;
	double		sum = 0.0;

	x.nrows = 1;
	x.ncols = b->sizes[0];
	x.rowptr = rowptr;
	x.col = col;
	x.val = val;
	col[0] = 0;
	val[0] = (float) m->rating_min;
	x.nnz = 1;
	if (b->sizes[0] > 1)
	{
		col[1] = b->sizes[0] - 1;
		val[1] = (float) m->rating_max;
		x.nnz = 2;
	}
	rowptr[0] = 0;
	rowptr[1] = x.nnz;

	out = malloc(sizeof(float) * (size_t) dim);
	unit = calloc((size_t) dim, sizeof(float));
	CHECK(out != NULL && unit != NULL, "out of memory");
	dmf_branch_work_alloc(&w, b, 1, false);
	dmf_branch_factors(b, &w, &x, &row, 1, out);
	dmf_branch_work_free(&w, b);
	for (int j = 0; j < dim; j++)
		was_zero = was_zero && out[j] == 0.0f;
	dmf_fold_in(&x, out, anchors, dim, steps, m->fold_in_rate,
				m->rating_min, m->rating_max);
	/* a zero factor means "no factor": fold-in leaves it alone */
	for (int j = 0; j < dim; j++)
	{
		CHECK(!was_zero || out[j] == 0.0f, "fold-in changed a zero factor");
		sum += (double) out[j];
	}

	unit[0] = 1.0f;
	dmf_fold_in(&x, unit, anchors, dim, steps > 0 ? steps : 1, m->fold_in_rate,
				m->rating_min, m->rating_max);
	/*
	 * Counted, not an invariant: fuzzed anchors (say 1e30) overflow a step,
	 * and fold-in then stops with a factor that is not finite.
	 */
	{
		bool		finite = true;

		for (int j = 0; j < dim; j++)
		{
			finite = finite && isfinite(unit[j]);
			sum += (double) unit[j];
		}
		n_fold_in_runs++;
		if (!finite)
			n_fold_in_nonfinite++;
	}
	free(unit);
	free(out);
	return sum;
}

/* The section table entry of a kind in a decoded model: true if present. */
static bool
find_section(const uint8_t *buf, uint32_t kind, uint64_t *off, uint64_t *len)
{
	uint32_t	n;

	memcpy(&n, buf + 68, 4);	/* number of sections, see model_format.h */
	for (uint32_t k = 0; k < n; k++)
	{
		const uint8_t *e = buf + DMF_HEADER_SIZE + (size_t) k * DMF_SECTION_ENTRY_SIZE;
		uint32_t	kk;

		memcpy(&kk, e, 4);
		if (kk == kind)
		{
			memcpy(off, e + 8, 8);
			memcpy(len, e + 16, 8);
			return true;
		}
	}
	return false;
}

typedef struct Range
{
	const uint8_t *start;
	size_t		len;
	const char *what;
} Range;

static int
range_cmp(const void *a, const void *b)
{
	const Range *x = a,
			   *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sorted, r[0..n) lie within [lo, hi) and no two overlap. */
static void
check_disjoint(Range *r, int n, const uint8_t *lo, const uint8_t *hi, const char *where)
{
	qsort(r, n, sizeof(Range), range_cmp);
	for (int k = 0; k < n; k++)
	{
		CHECK(r[k].start >= lo && r[k].start <= hi && r[k].len <= (size_t) (hi - r[k].start),
			  "%s (%zu bytes) outside %s", r[k].what, r[k].len, where);
		CHECK(k == 0 || r[k - 1].start + r[k - 1].len <= r[k].start,
			  "%s overlaps %s", r[k - 1].what, r[k].what);
	}
}

/*
 * Everything the model points to lies in the payload of buf[0..len) and no
 * two arrays overlap: a length check that is too loose shows up here even
 * when the read it allows stays inside the buffer.  A compact model's
 * widened arrays lie in its own allocation instead, without overlap, and
 * the sections they come from lie in the payload as the others do.
 */
static void
check_ranges(const DmfModel *m, const uint8_t *buf, size_t len)
{
	Range		r[DMF_SECTION_KIND_END + 4];
	Range		w[DMF_SECTION_KIND_END];
	int			n = 0;
	int			nw = 0;
	uint64_t	fold_off,
				fold_len;
	bool		bf16 = (m->flags & DMF_FLAG_BFLOAT16) != 0;

#define ADD(p, bytes, name) \
	do { \
		if ((bytes) > 0) \
		{ \
			r[n].start = (const uint8_t *) (p); \
			r[n].len = (bytes); \
			r[n].what = (name); \
			n++; \
		} \
	} while (0)
	/* count floats of section kind at p: stored in buf, or widened from 2 bytes each */
#define ADD_FLOATS(p, count, kind, name) \
	do { \
		if (!bf16) \
			ADD(p, 4 * (size_t) (count), name); \
		else if ((count) > 0) \
		{ \
			uint64_t	off_, len_; \
			CHECK(find_section(buf, kind, &off_, &len_) && len_ == 2 * (uint64_t) (count), \
				  "%s: section of %llu bytes", name, (unsigned long long) len_); \
			ADD(buf + off_, (size_t) len_, name); \
			w[nw].start = (const uint8_t *) (p); \
			w[nw].len = 4 * (size_t) (count); \
			w[nw].what = name; \
			nw++; \
		} \
	} while (0)

	ADD(m->meta, m->meta_len, "meta");
	ADD(m->users.ids, 8 * (size_t) m->users.n, "user ids");
	ADD(m->users.input, 4 * (size_t) m->users.n, "user input");
	ADD_FLOATS(m->users.factors, (size_t) m->users.n * m->dim, DMF_SECTION_USER_FACTORS, "user factors");
	ADD(m->items.ids, 8 * (size_t) m->items.n, "item ids");
	ADD(m->items.input, 4 * (size_t) m->items.n, "item input");
	ADD_FLOATS(m->items.factors, (size_t) m->items.n * m->dim, DMF_SECTION_ITEM_FACTORS, "item factors");
	ADD_FLOATS(m->users.anchors, (size_t) m->users.n_train * m->dim, DMF_SECTION_USER_ANCHORS,
			   "user anchors");
	ADD_FLOATS(m->items.anchors, (size_t) m->items.n_train * m->dim, DMF_SECTION_ITEM_ANCHORS,
			   "item anchors");
	if (m->rated_offsets != NULL)
	{
		ADD(m->rated_offsets, 8 * ((size_t) m->users.n + 1), "rated offsets");
		if (!(m->flags & DMF_FLAG_RATED_U16))
			ADD(m->rated_items, 4 * (size_t) m->rated_offsets[m->users.n], "rated items");
		else if (m->rated_offsets[m->users.n] > 0)
		{
			/* 16-bit positions right after the offsets, widened */
			ADD((const uint8_t *) (m->rated_offsets + m->users.n + 1),
				2 * (size_t) m->rated_offsets[m->users.n], "rated items");
			w[nw].start = (const uint8_t *) m->rated_items;
			w[nw].len = 4 * (size_t) m->rated_offsets[m->users.n];
			w[nw].what = "rated items";
			nw++;
		}
	}
	ADD_FLOATS(m->user_branch.params, m->user_branch.n_params, DMF_SECTION_USER_WEIGHTS,
			   "user weights");
	ADD_FLOATS(m->item_branch.params, m->item_branch.n_params, DMF_SECTION_ITEM_WEIGHTS,
			   "item weights");
	if (m->n_levels > 0)
	{
		/* n_levels and lambda, the levels, the boundaries: one section */
		CHECK(m->boundaries == m->levels + m->n_levels, "boundaries follow the levels");
		ADD((const uint8_t *) m->levels - 16, 16 + 8 * (2 * (size_t) m->n_levels + 1),
			"quantizer");
	}
	/* the model keeps the fold-in values, not a pointer: find the section */
	CHECK(find_section(buf, DMF_SECTION_FOLD_IN, &fold_off, &fold_len),
		  "decoded model without a fold-in section");
	CHECK(fold_len == 16 && fold_off <= len && fold_len <= len - fold_off,
		  "fold-in section of %llu bytes at %llu in %zu",
		  (unsigned long long) fold_len, (unsigned long long) fold_off, len);
	{
		double		steps,
					rate;

		memcpy(&steps, buf + fold_off, 8);
		memcpy(&rate, buf + fold_off + 8, 8);
		CHECK(steps == (double) m->fold_in_steps &&
			  memcmp(&rate, &m->fold_in_rate, 8) == 0,
			  "fold-in values %g %g decoded as %d %g", steps, rate,
			  (int) m->fold_in_steps, m->fold_in_rate);
	}
	ADD(buf + fold_off, (size_t) fold_len, "fold-in");
#undef ADD_FLOATS
#undef ADD

	check_disjoint(r, n, buf + DMF_HEADER_SIZE, buf + len, "the payload");
	CHECK((nw > 0) == (m->widened != NULL), "widened memory without widened arrays");
	if (nw > 0)
	{
		/* ASan reports a widened array past the allocation when touch_model reads it */
		check_disjoint(w, nw, (const uint8_t *) m->widened, (const uint8_t *) UINTPTR_MAX,
					   "the widened memory");
	}
}

static double
touch_model(const DmfModel *m)
{
	double		sum = 0.0;

	CHECK(m->dim >= 1 && m->dim <= DMF_MAX_DIM, "dim %d", (int) m->dim);
	CHECK(isfinite(m->rating_min) && isfinite(m->rating_max) &&
		  m->rating_min < m->rating_max, "rating range");
	CHECK((m->flags & ~DMF_KNOWN_FLAGS) == 0, "flags 0x%x", (unsigned) m->flags);
	CHECK(m->fold_in_steps >= 0 && m->fold_in_steps <= DMF_MAX_FOLD_IN_STEPS,
		  "fold-in steps %d", (int) m->fold_in_steps);
	CHECK(isfinite(m->fold_in_rate) && m->fold_in_rate >= 0.0 && m->fold_in_rate <= 100.0,
		  "fold-in rate %g", m->fold_in_rate);
	sum += (double) m->fold_in_steps + m->fold_in_rate;

	check_side(&m->users, "user");
	check_side(&m->items, "item");
	check_rated(m);
	sum += touch_side(&m->users, m->dim);
	sum += touch_side(&m->items, m->dim);

	/* the user branch reads rows over the training items, and vice versa */
	sum += touch_branch(&m->user_branch, m->items.n_train, m->dim, "user branch");
	sum += touch_branch(&m->item_branch, m->users.n_train, m->dim, "item branch");

	for (uint32_t k = 0; k < m->meta_len; k++)
		sum += (double) (unsigned char) m->meta[k];

	if (m->n_levels > 0)
	{
		CHECK(m->n_levels >= 2 && m->n_levels <= DMF_MAX_LEVELS, "levels %d",
			  (int) m->n_levels);
		CHECK(isfinite(m->lambda) && m->lambda >= 0.0, "lambda %g", m->lambda);
		sum += m->lambda;
		for (int32_t k = 0; k < m->n_levels; k++)
		{
			CHECK(isfinite(m->levels[k]) && (k == 0 || m->levels[k] > m->levels[k - 1]),
				  "level %d", (int) k);
			sum += m->levels[k];
		}
		for (int32_t k = 0; k <= m->n_levels; k++)
		{
			CHECK(isfinite(m->boundaries[k]) &&
				  (k == 0 || m->boundaries[k] >= m->boundaries[k - 1]),
				  "boundary %d", (int) k);
			sum += m->boundaries[k];
		}
		/* what dmf_predict_discrete does with a prediction */
		{
			DmfQuantizer q;
			double		mid = 0.5 * m->rating_min + 0.5 * m->rating_max;

			q.n_levels = m->n_levels;
			q.step = m->levels[1] - m->levels[0];
			q.levels = m->levels;
			q.boundaries = m->boundaries;
			q.lambda = m->lambda;
			sum += dmf_quantize(&q, m->rating_min);
			sum += dmf_quantize(&q, mid);
			sum += dmf_quantize(&q, m->rating_max);
		}
	}
	else
		CHECK((m->flags & DMF_FLAG_DISCRETE) == 0, "discrete model without levels");

	/* the user branch's positions are training items: their anchors */
	sum += forward_one(m, &m->user_branch, m->items.anchors);
	sum += forward_one(m, &m->item_branch, m->users.anchors);
	return sum;
}

/* The decoded model survives encode -> decode unchanged. */
static void
check_roundtrip(const DmfModel *m)
{
	uint64_t	size = dmf_model_encoded_size(m);
	uint8_t    *buf;
	DmfModel	again;
	char		detail[256];
	DmfDecodeStatus st;

	CHECK(size >= DMF_HEADER_SIZE && size < ((uint64_t) 1 << 32), "encoded size %llu",
		  (unsigned long long) size);
	buf = malloc((size_t) size);
	CHECK(buf != NULL, "out of memory");
	dmf_model_encode(m, buf, size);
	st = dmf_model_decode(buf, (size_t) size, &again, detail, sizeof(detail));
	CHECK(st == DMF_DECODE_OK, "re-encoded model does not decode: %s", detail);
	CHECK(again.dim == m->dim && again.flags == m->flags &&
		  again.users.n == m->users.n && again.items.n == m->items.n &&
		  again.users.n_train == m->users.n_train &&
		  again.items.n_train == m->items.n_train &&
		  again.n_levels == m->n_levels && again.meta_len == m->meta_len &&
		  again.fold_in_steps == m->fold_in_steps &&
		  memcmp(&again.fold_in_rate, &m->fold_in_rate, 8) == 0 &&
		  memcmp(&again.rating_min, &m->rating_min, 8) == 0 &&
		  memcmp(&again.rating_max, &m->rating_max, 8) == 0 &&
		  again.user_branch.activation == m->user_branch.activation &&
		  again.user_branch.n_params == m->user_branch.n_params &&
		  again.item_branch.n_params == m->item_branch.n_params &&
		  memcmp(again.model_id, m->model_id, 16) == 0,
		  "re-encoded model differs");
	CHECK(memcmp(again.users.ids, m->users.ids, 8 * (size_t) m->users.n) == 0 &&
		  memcmp(again.items.ids, m->items.ids, 8 * (size_t) m->items.n) == 0 &&
		  memcmp(again.users.input, m->users.input, 4 * (size_t) m->users.n) == 0 &&
		  memcmp(again.items.input, m->items.input, 4 * (size_t) m->items.n) == 0 &&
		  memcmp(again.users.factors, m->users.factors,
				 4 * (size_t) m->users.n * m->dim) == 0 &&
		  memcmp(again.items.factors, m->items.factors,
				 4 * (size_t) m->items.n * m->dim) == 0 &&
		  memcmp(again.users.anchors, m->users.anchors,
				 4 * (size_t) m->users.n_train * m->dim) == 0 &&
		  memcmp(again.items.anchors, m->items.anchors,
				 4 * (size_t) m->items.n_train * m->dim) == 0 &&
		  memcmp(again.user_branch.params, m->user_branch.params,
				 4 * m->user_branch.n_params) == 0 &&
		  memcmp(again.item_branch.params, m->item_branch.params,
				 4 * m->item_branch.n_params) == 0 &&
		  (m->meta_len == 0 || memcmp(again.meta, m->meta, m->meta_len) == 0) &&
		  ((m->rated_offsets == NULL && again.rated_offsets == NULL) ||
		   (m->rated_offsets != NULL && again.rated_offsets != NULL &&
			memcmp(again.rated_offsets, m->rated_offsets, 8 * ((size_t) m->users.n + 1)) == 0 &&
			memcmp(again.rated_items, m->rated_items,
				   4 * (size_t) m->rated_offsets[m->users.n]) == 0)) &&
		  (m->n_levels == 0 ||
		   (memcmp(&again.lambda, &m->lambda, 8) == 0 &&
			memcmp(again.levels, m->levels, 8 * (size_t) m->n_levels) == 0 &&
			memcmp(again.boundaries, m->boundaries, 8 * ((size_t) m->n_levels + 1)) == 0)),
		  "re-encoded model bytes differ");
	free(again.widened);
	free(buf);
}

/*
 * The lazy reader of src/model_cache.c, replayed on a copy that holds only
 * the pages it has read: the rest is never written (valgrind sees reads of
 * it) and, under ASan, poisoned, so a step that touches a page it did not
 * read is reported.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void) 0)
#define UNPOISON(p, n) ((void) 0)
#endif

#define LAZY_FACTOR_BLOCK_ROWS 64	/* FACTOR_BLOCK_ROWS of model_cache.c */

typedef struct LazyCopy
{
	uint8_t    *dst;
	const uint8_t *src;
	const DmfModel *peeked;
	uint64_t	total;
	uint64_t	body_end;
} LazyCopy;

/* read_range: the pages over [from, to) copied and checked; false if one fails */
static bool
lazy_read(LazyCopy *c, uint64_t from, uint64_t to)
{
	uint64_t	page = c->peeked->page_size;

	CHECK(from >= DMF_HEADER_SIZE && to <= c->body_end, "lazy read outside the body");
	if (from >= to)
		return true;
	for (uint64_t k = (from - DMF_HEADER_SIZE) / page; k <= (to - 1 - DMF_HEADER_SIZE) / page; k++)
	{
		uint64_t	start = DMF_HEADER_SIZE + k * page;
		uint64_t	end = start + page < c->body_end ? start + page : c->body_end;

		UNPOISON(c->dst + start, end - start);
		memcpy(c->dst + start, c->src + start, end - start);
		if (!dmf_model_page_ok(c->peeked, c->total, c->dst, c->dst + c->body_end, (uint32_t) k))
			return false;
	}
	return true;
}

/*
 * dmf_access_factor's block of rows around row k of a factor section, as
 * floats; false if a page or a value fails.  *row_k gets row k.
 */
static bool
lazy_factor_block(LazyCopy *c, const DmfSectionRef *sec, int32_t n, int32_t k, float *row_k)
{
	uint64_t	dim = (uint64_t) c->peeked->dim;
	uint64_t	row = dmf_factor_row_bytes(c->peeked);
	uint64_t	first = (uint64_t) (k / LAZY_FACTOR_BLOCK_ROWS) * LAZY_FACTOR_BLOCK_ROWS;
	uint64_t	rows = (uint64_t) n - first < LAZY_FACTOR_BLOCK_ROWS ? (uint64_t) n - first
		: LAZY_FACTOR_BLOCK_ROWS;
	uint64_t	from = sec->offset + first * row;
	float	   *block;
	bool		ok;

	if (!lazy_read(c, from, from + rows * row))
		return false;
	block = malloc(sizeof(float) * rows * dim);
	CHECK(block != NULL, "out of memory");
	dmf_factor_values_read(c->peeked, c->dst + from, block, rows * dim);
	ok = dmf_factor_values_ok(block, rows * dim);
	memcpy(row_k, block + (k - first) * dim, sizeof(float) * dim);
	free(block);
	return ok;
}

/*
 * The lazy reader's steps on buf: they must read only pages they fetched,
 * and agree with a full decode (full, when ok) about ids and levels.
 */
static void
check_lazy(const uint8_t *buf, size_t len, const DmfModel *full, bool ok)
{
	DmfModel	m;
	DmfSectionRef sec[DMF_SECTION_KIND_END];
	uint64_t	total;
	uint32_t	crc;
	LazyCopy	c;
	bool		good;
	float	   *user_rows,
			   *item_rows;

	if (dmf_model_peek(buf, len, &m, &total, &crc, NULL, 0) != DMF_DECODE_OK ||
		m.version < 2 || total != len)
	{
		CHECK(!ok || m.version < 2, "a decodable version 2 model fails the lazy peek");
		return;
	}
	c.src = buf;
	c.peeked = &m;
	c.total = total;
	c.body_end = dmf_model_body_end(&m, total);
	CHECK(c.body_end > DMF_HEADER_SIZE && c.body_end <= total, "body end");
	c.dst = malloc(len);		/* never cleared: unread pages stay uninitialised */
	CHECK(c.dst != NULL, "out of memory");
	POISON(c.dst, len);
	UNPOISON(c.dst, DMF_HEADER_SIZE);
	memcpy(c.dst, buf, DMF_HEADER_SIZE);
	UNPOISON(c.dst + c.body_end, total - c.body_end);
	memcpy(c.dst + c.body_end, buf + c.body_end, total - c.body_end);

	good = dmf_model_page_table_ok(&m, c.dst + c.body_end, crc) &&
		lazy_read(&c, DMF_HEADER_SIZE,
				  c.body_end < DMF_HEADER_SIZE + DMF_MAX_SECTIONS * DMF_SECTION_ENTRY_SIZE ?
				  c.body_end : DMF_HEADER_SIZE + DMF_MAX_SECTIONS * DMF_SECTION_ENTRY_SIZE) &&
		dmf_model_read_sections(c.dst, &m, total, sec, NULL, 0) == DMF_DECODE_OK;
	for (int kind = DMF_SECTION_USER_IDS; good && kind <= DMF_SECTION_QUANTIZER; kind++)
		if ((kind == DMF_SECTION_USER_IDS || kind == DMF_SECTION_ITEM_IDS ||
			 kind == DMF_SECTION_QUANTIZER) && sec[kind].present)
			good = lazy_read(&c, sec[kind].offset, sec[kind].offset + sec[kind].length);
	good = good && dmf_model_decode_ids(c.dst, sec, &m, NULL, 0) == DMF_DECODE_OK;
	/* the first and the last factor of each side, as predictions read them */
	user_rows = malloc(sizeof(float) * 2 * (size_t) (m.dim > 0 ? m.dim : 1));
	item_rows = malloc(sizeof(float) * 2 * (size_t) (m.dim > 0 ? m.dim : 1));
	CHECK(user_rows != NULL && item_rows != NULL, "out of memory");
	if (good && m.users.n > 0)
		good = lazy_factor_block(&c, &sec[DMF_SECTION_USER_FACTORS], m.users.n, 0, user_rows) &&
			lazy_factor_block(&c, &sec[DMF_SECTION_USER_FACTORS], m.users.n, m.users.n - 1,
							  user_rows + m.dim);
	if (good && m.items.n > 0)
		good = lazy_factor_block(&c, &sec[DMF_SECTION_ITEM_FACTORS], m.items.n, 0, item_rows) &&
			lazy_factor_block(&c, &sec[DMF_SECTION_ITEM_FACTORS], m.items.n, m.items.n - 1,
							  item_rows + m.dim);
	CHECK(good || !ok, "a decodable model fails the lazy reader");
	if (good && ok)
	{
		size_t		row = sizeof(float) * (size_t) m.dim;

		CHECK(m.users.n == full->users.n && m.items.n == full->items.n &&
			  memcmp(m.users.ids, full->users.ids, 8 * (size_t) m.users.n) == 0 &&
			  memcmp(m.items.ids, full->items.ids, 8 * (size_t) m.items.n) == 0 &&
			  m.n_levels == full->n_levels && m.flags == full->flags,
			  "the lazy decode disagrees with the full one");
		CHECK((m.users.n == 0 ||
			   (memcmp(user_rows, full->users.factors, row) == 0 &&
				memcmp(user_rows + m.dim, full->users.factors + (size_t) (m.users.n - 1) * m.dim,
					   row) == 0)) &&
			  (m.items.n == 0 ||
			   (memcmp(item_rows, full->items.factors, row) == 0 &&
				memcmp(item_rows + m.dim, full->items.factors + (size_t) (m.items.n - 1) * m.dim,
					   row) == 0)),
			  "the lazy factors are not the full decode's");
	}
	free(user_rows);
	free(item_rows);
	UNPOISON(c.dst, len);
	free(c.dst);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		mode;
	const uint8_t *body;
	size_t		len;
	uint8_t    *buf;
	DmfModel	m;
	uint64_t	total = 0;
	uint32_t	crc = 0;
	char		detail[256];
	DmfDecodeStatus st;

	if (size < 1)
		return 0;
	n_inputs++;
	mode = data[0];
	body = data + 1;
	len = size - 1;

	/* the header alone, unaligned, as the cache peeks at a value */
	detail[0] = '\0';
	st = dmf_model_peek(body, len, &m, &total, &crc, detail, sizeof(detail));
	CHECK(st == DMF_DECODE_OK || st == DMF_DECODE_CORRUPT || st == DMF_DECODE_VERSION,
		  "peek status %d", (int) st);
	CHECK(strlen(detail) < sizeof(detail), "detail");

	/* an exactly sized copy: malloc is 16-byte aligned, ASan sees its end */
	buf = malloc(len > 0 ? len : 1);
	CHECK(buf != NULL, "out of memory");
	if (len > 0)
		memcpy(buf, body, len);
	if (mode & MODE_FIX_CRC)
		fuzz_fix_crcs(buf, len, (mode & MODE_FIX_TOTAL) != 0);

	/* a misaligned buffer is refused, not read */
	if (len > 0 && ((uintptr_t) body & 7) != 0)
		CHECK(dmf_model_decode(body, len, &m, detail, sizeof(detail)) != DMF_DECODE_OK,
			  "misaligned buffer accepted");

	detail[0] = '\0';
	st = dmf_model_decode(buf, len, &m, detail, sizeof(detail));
	CHECK(strlen(detail) < sizeof(detail), "detail");
	if (st == DMF_DECODE_OK)
	{
		uint64_t	peek_total;

		free(m.widened);
		/* what the cache checks before decoding agrees with the decoder */
		CHECK(dmf_model_peek(buf, len, &m, &peek_total, &crc, NULL, 0) == DMF_DECODE_OK &&
			  peek_total == len && dmf_model_checksums_ok(buf, len, &m, crc),
			  "decoded model fails the cache's checks");
		CHECK(dmf_model_decode(buf, len, &m, NULL, 0) == DMF_DECODE_OK, "decode again");
		check_ranges(&m, buf, len);
		sink = touch_model(&m);
		check_roundtrip(&m);
		check_lazy(buf, len, &m, true);
		free(m.widened);
		n_decoded++;
	}
	else
	{
		check_lazy(buf, len, &m, false);
		CHECK(st == DMF_DECODE_CORRUPT || st == DMF_DECODE_VERSION,
			  "decode status %d", (int) st);
		if (st == DMF_DECODE_CORRUPT)
			n_corrupt++;
		else
			n_version++;
	}
	free(buf);
	return 0;
}
