/*
 * levels.c
 *	  The rating levels of a ratings table (see levels.h).
 */
#include "platform.h"

#include <math.h>
#include <string.h>

#include "levels.h"

/* the most levels a grid found in the data may have */
#define MAX_DEFAULT_LEVELS 1024

static inline void
swap_double(double *a, int64_t i, int64_t j)
{
	double		t = a[i];

	a[i] = a[j];
	a[j] = t;
}

/* ratings are finite: < is a total order */
#define SORT_NAME sort_double
#define SORT_CTX double *
#define SORT_LESS(a, i, j) ((a)[i] < (a)[j])
#define SORT_SWAP(a, i, j) swap_double((a), (i), (j))
#include "sort_template.h"

/* The step of the grid all ratings lie on, from lo to hi; 0 if none. */
static double
grid_step(const double *ratings, int64_t n, double lo, double hi)
{
	bool		integral = lo == floor(lo) && hi == floor(hi) && hi - lo < MAX_DEFAULT_LEVELS;
	double		step = 0.0;
	double	   *v;
	int64_t		m = 0;
	int64_t		work = 0;

	for (int64_t k = 0; k < n && integral; k++)
		integral = ratings[k] == floor(ratings[k]);
	if (integral)
		return 1.0;

	/* the smallest gap between distinct ratings, if all sit on its grid */
	v = dmf_alloc(sizeof(double) * (size_t) (n + 1));
	memcpy(v, ratings, sizeof(double) * n);
	sort_double(v, n, &work);
	for (int64_t k = 0; k < n; k++)
		if (m == 0 || v[k] != v[m - 1])
			v[m++] = v[k];
	for (int64_t k = 1; k < m; k++)
		if (step == 0.0 || v[k] - v[k - 1] < step)
			step = v[k] - v[k - 1];
	if (step > 0.0 && (hi - lo) / step < MAX_DEFAULT_LEVELS)
	{
		for (int64_t k = 0; k < m && step > 0.0; k++)
		{
			double		pos = (v[k] - lo) / step;

			if (fabs(pos - round(pos)) > 1e-6)
				step = 0.0;
		}
		if (fabs((hi - lo) / step - round((hi - lo) / step)) > 1e-6)
			step = 0.0;
	}
	else
		step = 0.0;
	dmf_free(v);
	return step;
}

DmfLevelsStatus
dmf_resolve_levels(const double *ratings, int64_t n, double lo, double hi,
				   const double *given, int n_given, bool discrete,
				   const double **levels, int *n_levels, int64_t *bad)
{
	double		step;

	*levels = NULL;
	*n_levels = 0;
	if (n_given > 0)
	{
		if (given[0] < lo || given[n_given - 1] > hi)
			return DMF_LEVELS_OUTSIDE_RANGE;
		*levels = given;
		*n_levels = n_given;
	}
	else if ((step = grid_step(ratings, n, lo, hi)) > 0.0)
	{
		int			count = (int) round((hi - lo) / step) + 1;
		double	   *grid = dmf_alloc(sizeof(double) * count);

		for (int k = 0; k < count; k++)
			grid[k] = lo + k * step;
		*levels = grid;
		*n_levels = count;
	}

	if (!discrete)
		return DMF_LEVELS_OK;
	if (*n_levels < 2)
		return DMF_LEVELS_NONE;
	step = (*levels)[1] - (*levels)[0];
	for (int64_t k = 0; k < n; k++)
	{
		double		pos = (ratings[k] - (*levels)[0]) / step;

		if (fabs(pos - round(pos)) > 1e-6 || pos < -1e-6 || round(pos) > *n_levels - 1)
		{
			*bad = k;
			return DMF_LEVELS_RATING_OFF;
		}
	}
	return DMF_LEVELS_OK;
}
