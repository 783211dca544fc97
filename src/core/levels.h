/*
 * levels.h
 *	  The rating levels of a ratings table: given, or found in the data.
 */
#ifndef DMF_LEVELS_H
#define DMF_LEVELS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum DmfLevelsStatus
{
	DMF_LEVELS_OK = 0,
	DMF_LEVELS_OUTSIDE_RANGE,	/* given levels beyond [lo, hi] */
	DMF_LEVELS_NONE,			/* discrete, but the ratings are on no grid */
	DMF_LEVELS_RATING_OFF		/* discrete, and rating *bad is on no level */
} DmfLevelsStatus;

/*
 * The levels of ratings[0..n) on the scale [lo, hi]: the given ones
 * (n_given > 0), else the integers from lo to hi when every rating is an
 * integer, else the grid the ratings lie on (e.g. 0.5 to 5 by 0.5), else
 * none (*n_levels = 0: continuous ratings).  With discrete, levels are
 * required and every rating must sit on one.  *levels is allocated, or
 * given when given.
 */
DmfLevelsStatus dmf_resolve_levels(const double *ratings, int64_t n, double lo, double hi,
								   const double *given, int n_given, bool discrete,
								   const double **levels, int *n_levels, int64_t *bad);

#endif
