/*
 * prepare.c
 *	  From the rows of a ratings table to a training set (see prepare.h).
 */
#include "platform.h"

#include <string.h>

#include "prepare.h"
#include "rng.h"

static inline void
swap_int64(int64_t *a, int64_t i, int64_t j)
{
	int64_t		t = a[i];

	a[i] = a[j];
	a[j] = t;
}

#define SORT_NAME sort_int64
#define SORT_CTX int64_t *
#define SORT_LESS(a, i, j) ((a)[i] < (a)[j])
#define SORT_SWAP(a, i, j) swap_int64((a), (i), (j))
#include "sort_template.h"

int64_t
dmf_sorted_distinct(const int64_t *ids, int64_t n, int64_t **out)
{
	int64_t    *s = dmf_alloc(sizeof(int64_t) * (size_t) (n > 0 ? n : 1));
	int64_t		m = 0;
	int64_t		work = 0;

	memcpy(s, ids, sizeof(int64_t) * n);
	/* in place, and a cancel stops it: qsort may take seconds on 10^8 ids */
	sort_int64(s, n, &work);
	for (int64_t k = 0; k < n; k++)
		if (m == 0 || s[m - 1] != s[k])
			s[m++] = s[k];
	*out = s;
	return m;
}

int32_t
dmf_find_id(const int64_t *sorted, int32_t n, int64_t id)
{
	int32_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (sorted[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < n && sorted[lo] == id) ? lo : -1;
}

void
dmf_map_ids(const int64_t *raw, int64_t n, const int64_t *sorted, int32_t n_sorted,
			int32_t *out)
{
	for (int64_t k = 0; k < n; k++)
	{
		out[k] = dmf_find_id(sorted, n_sorted, raw[k]);
		if ((k & 0xFFFF) == 0)
			dmf_check_interrupts();
	}
}

void
dmf_split_holdout(int64_t n, const int64_t *user_id, const int64_t *item_id,
				  const int32_t *u, const int32_t *i, const double *ratings,
				  const DmfRatingScale *scale, const int64_t *rank,
				  uint64_t seed, double fraction,
				  DmfTriples *train, DmfTriples *held)
{
	int64_t    *by_rank = dmf_alloc(sizeof(int64_t) * (size_t) (n + 1));
	uint64_t	threshold = (uint64_t) (fraction * 18446744073709551615.0);
	int64_t		t = 0,
				h = n;

	for (int64_t k = 0; k < n; k++)
		by_rank[rank[k]] = k;

	/* training rows first, held-out rows at the end of the same arrays */
	train->user = dmf_alloc(sizeof(int32_t) * (size_t) n);
	train->item = dmf_alloc(sizeof(int32_t) * (size_t) n);
	train->rating = dmf_alloc(sizeof(float) * (size_t) n);
	for (int64_t r = 0; r < n; r++)
	{
		int64_t		k = by_rank[r];
		uint64_t	hsh = dmf_mix64(dmf_mix64(seed ^ (uint64_t) user_id[k]) ^
									(uint64_t) item_id[k]);
		bool		is_held = fraction > 0 && hsh < threshold;
		int64_t		pos = is_held ? --h : t++;

		train->user[pos] = u[k];
		train->item[pos] = i[k];
		train->rating[pos] = (float) dmf_to_working(scale, ratings[k]);
		if ((r & 0xFFFFF) == 0)
			dmf_check_interrupts();
	}
	train->n = t;
	held->n = n - t;
	held->user = train->user + t;
	held->item = train->item + t;
	held->rating = train->rating + t;
	dmf_free(by_rank);
}

int64_t
dmf_build_inputs(const DmfTriples *const *parts, int n_parts,
				 int32_t n_users, int32_t n_items, int encoding,
				 double rating_min, double rating_max,
				 DmfCsr *user_rows, DmfCsr *item_rows, int64_t *dup_index,
				 int64_t *user_pos, int64_t *item_pos)
{
	int64_t		n = 0,
				pos = 0,
				dups;
	int32_t    *u;
	int32_t    *i;
	float	   *x;

	for (int p = 0; p < n_parts; p++)
		n += parts[p]->n;
	u = dmf_alloc(sizeof(int32_t) * (size_t) (n + 1));
	i = dmf_alloc(sizeof(int32_t) * (size_t) (n + 1));
	x = dmf_alloc(sizeof(float) * (size_t) (n + 1));
	for (int p = 0; p < n_parts; p++)
	{
		const DmfTriples *t = parts[p];

		for (int64_t k = 0; k < t->n; k++, pos++)
		{
			u[pos] = t->user[k];
			i[pos] = t->item[k];
			x[pos] = t->rating[k];
		}
	}
	dups = dmf_csr_build(user_rows, n_users, n_items, n, u, i, x, dup_index,
						 user_pos);
	if (dups == 0)
		dmf_csr_build(item_rows, n_items, n_users, n, i, u, x, NULL, item_pos);
	else
		memset(item_rows, 0, sizeof(*item_rows));
	dmf_free(u);
	dmf_free(i);
	dmf_free(x);
	return dups;
}

/* Moves a[order[r]] to a[r] for r < n (tmp: n elements of width bytes). */
static void
permute(void *a, size_t width, const int64_t *order, int64_t n, void *tmp)
{
	for (int64_t r = 0; r < n; r++)
	{
		memcpy((char *) tmp + r * width, (char *) a + order[r] * width, width);
		if ((r & 0xFFFFF) == 0)
			dmf_check_interrupts();
	}
	memcpy(a, tmp, width * (size_t) n);
}

int64_t
dmf_merge_pairs(int64_t n, int32_t n_users, int32_t n_items, int64_t *user_id,
				int64_t *item_id, int32_t *u, int32_t *i, double *w)
{
	int64_t    *by_item = dmf_alloc(sizeof(int64_t) * (size_t) (n + 1));
	int64_t    *order = dmf_alloc0(sizeof(int64_t) * (size_t) (n + 1));
	int32_t		nmax = n_users > n_items ? n_users : n_items;
	int64_t    *count = dmf_alloc0(sizeof(int64_t) * ((size_t) nmax + 1));
	void	   *tmp = dmf_alloc(sizeof(int64_t) * (size_t) (n + 1));
	int64_t		m = 0;

	/* (user, item) order: a counting sort by item, then a stable one by user */
	for (int64_t k = 0; k < n; k++)
		count[i[k] + 1]++;
	for (int32_t c = 0; c < n_items; c++)
		count[c + 1] += count[c];
	for (int64_t k = 0; k < n; k++)
		by_item[count[i[k]]++] = k;
	memset(count, 0, sizeof(int64_t) * ((size_t) nmax + 1));
	for (int64_t k = 0; k < n; k++)
		count[u[k] + 1]++;
	for (int32_t c = 0; c < n_users; c++)
		count[c + 1] += count[c];
	for (int64_t r = 0; r < n; r++)
		order[count[u[by_item[r]]]++] = by_item[r];
	dmf_free(by_item);
	dmf_free(count);

	permute(user_id, sizeof(int64_t), order, n, tmp);
	permute(item_id, sizeof(int64_t), order, n, tmp);
	permute(u, sizeof(int32_t), order, n, tmp);
	permute(i, sizeof(int32_t), order, n, tmp);
	permute(w, sizeof(double), order, n, tmp);
	dmf_free(order);
	dmf_free(tmp);

	for (int64_t k = 0; k < n; k++)
	{
		if (m > 0 && u[m - 1] == u[k] && i[m - 1] == i[k])
		{
			w[m - 1] += w[k];
			continue;
		}
		user_id[m] = user_id[k];
		item_id[m] = item_id[k];
		u[m] = u[k];
		i[m] = i[k];
		w[m] = w[k];
		m++;
	}
	return m;
}
