/*
 * sort_template.h
 *	  An in-place sort that a cancel can stop, written once for any layout.
 *
 * Introsort: quicksort around the median of three, heapsort for a range
 * split too often (so O(n log n) whatever the input), insertion sort for
 * short ranges.  Elements move only by swaps of two, so it sorts parallel
 * arrays as well as an array of structs, and needs no memory.  It is not
 * stable: where equal elements must keep their order, make the order total
 * (break ties by their position before the sort).
 *
 * Every SORT_CHECK_EVERY elements of work it calls dmf_check_interrupts(),
 * so it runs on the backend's thread only.  The count of work goes through
 * the caller's *work, so that many short sorts in a row check too.
 *
 * Define before including it:
 *   SORT_NAME            the function, static void SORT_NAME(SORT_CTX c,
 *                        int64_t n, int64_t *work), sorting elements [0, n)
 *   SORT_CTX             the type of its context, which the macros read
 *   SORT_LESS(c, i, j)   whether element i goes before element j
 *   SORT_SWAP(c, i, j)   exchanges elements i and j
 * They are undefined at the end, so the file can be included again.
 */
#include <stdint.h>

#include "platform.h"

#ifndef SORT_CHECK_EVERY
#define SORT_CHECK_EVERY (INT64_C(1) << 20)
/* ranges this short are sorted by insertion */
#define SORT_SHORT 16
#define SORT_NAME_JOIN_(a, b) a##_##b
#define SORT_NAME_JOIN(a, b) SORT_NAME_JOIN_(a, b)
#endif

#define SORT_FN(part) SORT_NAME_JOIN(SORT_NAME, part)

/* Counts n elements of work; checks for interrupts now and then. */
static inline void
SORT_FN(work) (int64_t *work, int64_t n)
{
	*work += n;
	if (*work >= SORT_CHECK_EVERY)
	{
		*work = 0;
		dmf_check_interrupts();
	}
}

static void
SORT_FN(insertion) (SORT_CTX c, int64_t lo, int64_t hi)
{
	for (int64_t i = lo + 1; i < hi; i++)
		for (int64_t j = i; j > lo && SORT_LESS(c, j, j - 1); j--)
			SORT_SWAP(c, j, j - 1);
}

/* Restores the max-heap of the n elements from lo below its element root. */
static void
SORT_FN(sift) (SORT_CTX c, int64_t lo, int64_t root, int64_t n)
{
	for (;;)
	{
		int64_t		child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && SORT_LESS(c, lo + child, lo + child + 1))
			child++;
		if (!SORT_LESS(c, lo + root, lo + child))
			return;
		SORT_SWAP(c, lo + root, lo + child);
		root = child;
	}
}

static void
SORT_FN(heapsort) (SORT_CTX c, int64_t lo, int64_t hi, int64_t *work)
{
	int64_t		n = hi - lo;
	int			depth = 1;

	for (int64_t m = n; m > 1; m >>= 1)
		depth++;
	for (int64_t k = n / 2; k-- > 0;)
	{
		SORT_FN(sift) (c, lo, k, n);
		SORT_FN(work) (work, depth);
	}
	for (int64_t end = n - 1; end > 0; end--)
	{
		SORT_SWAP(c, lo, lo + end);
		SORT_FN(sift) (c, lo, 0, end);
		SORT_FN(work) (work, depth);
	}
}

static void
SORT_FN(range) (SORT_CTX c, int64_t lo, int64_t hi, int depth, int64_t *work)
{
	while (hi - lo > SORT_SHORT)
	{
		int64_t		mid = lo + (hi - lo) / 2;
		int64_t		i = lo,
					j = hi;

		if (depth-- == 0)
		{
			SORT_FN(heapsort) (c, lo, hi, work);
			return;
		}
		SORT_FN(work) (work, hi - lo);

		/* the median of the first, middle and last element to lo: the pivot */
		if (SORT_LESS(c, mid, lo))
			SORT_SWAP(c, mid, lo);
		if (SORT_LESS(c, hi - 1, mid))
		{
			SORT_SWAP(c, hi - 1, mid);
			if (SORT_LESS(c, mid, lo))
				SORT_SWAP(c, mid, lo);
		}
		SORT_SWAP(c, lo, mid);

		/* below the pivot to its left, above it to its right; equal ones on both sides */
		for (;;)
		{
			do
				i++;
			while (i < hi && SORT_LESS(c, i, lo));
			do
				j--;
			while (SORT_LESS(c, lo, j));
			if (i >= j)
				break;
			SORT_SWAP(c, i, j);
		}
		SORT_SWAP(c, lo, j);

		/* the shorter side first, by recursion: the stack stays O(log n) deep */
		if (j - lo < hi - j - 1)
		{
			SORT_FN(range) (c, lo, j, depth, work);
			lo = j + 1;
		}
		else
		{
			SORT_FN(range) (c, j + 1, hi, depth, work);
			hi = j;
		}
	}
	SORT_FN(work) (work, hi - lo);
	SORT_FN(insertion) (c, lo, hi);
}

static void
SORT_NAME(SORT_CTX c, int64_t n, int64_t *work)
{
	int			depth = 0;

	/* 2 log2(n) splits at most before heapsort takes over */
	for (int64_t m = n; m > 1; m >>= 1)
		depth += 2;
	SORT_FN(range) (c, 0, n, depth, work);
}

#undef SORT_FN
#undef SORT_NAME
#undef SORT_CTX
#undef SORT_LESS
#undef SORT_SWAP
