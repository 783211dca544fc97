/*
 * gen_ratings.c
 *	  A deterministic MovieLens-shaped ratings generator for perf.sh.
 *
 *	  gen_ratings USERS ITEMS RATINGS [SEED]  >  user_id<TAB>item_id<TAB>rating lines
 *
 * MovieLens-10M is 69,878 users x 10,677 items, 10M ratings, at least 20
 * ratings per user (median about 70, mean 143, a few thousand at most) and
 * a heavy head of popular items.  So:
 *   - item popularity is Zipf-like: the item of popularity rank r is drawn
 *     with weight (r + offset)^-1.3, ranks shuffled over the item ids;
 *   - user activity is 20 + a log-normal (sigma 1.36: the median / mean
 *     ratio of ML-10M), scaled to the requested number of ratings and
 *     capped at 70% of the items;
 *   - a user's items are distinct draws by popularity (alias table, with
 *     rejection of repeats: the tail keeps enough mass for that to be fast);
 *   - rating = round(3.5 + b_u + b_i + <p_u, q_i> + noise) clamped to 1..5,
 *     rank 8, popular items rated a little higher: the spread of MovieLens
 *     (mean ~3.5, sd ~1.1).
 * At 70,000 x 10,000 x 10M: median user 70 ratings, largest 7,000; most
 * rated item about 50,000 ratings, least about 70 (ML-10M: 34,864 and 1;
 * the capped heavy users fill the tail here).
 * Everything comes from one splitmix64 stream seeded by SEED: the same
 * arguments give the same file (with glibc's libm; another libm could round
 * a rare rating the other way).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANK 8
#define ZIPF_EXPONENT 1.3
#define MIN_ACTIVITY 20
#define ACTIVITY_SIGMA 1.36
#define MAX_ACTIVITY_SHARE 0.7

static uint64_t rng_state;

static uint64_t
next_u64(void)
{
	uint64_t	z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* uniform in (0, 1) */
static double
uniform(void)
{
	return ((double) (next_u64() >> 11) + 0.5) / 9007199254740992.0;
}

static double
normal(void)
{
	return sqrt(-2.0 * log(uniform())) * cos(2.0 * M_PI * uniform());
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "gen_ratings: out of memory\n");
		exit(1);
	}
	return p;
}

int
main(int argc, char **argv)
{
	long		nu,
				ni,
				target;
	uint64_t	seed = 1;
	double	   *weight,
			   *prob,
			   *activity,
			   *bu,
			   *bi,
			   *p,
			   *q;
	long	   *alias,
			   *small,
			   *large,
			   *rank_item,
			   *count,
			   *mark;
	long		ns = 0,
				nl = 0,
				min_activity,
				cap;
	double		offset,
				sum_w = 0.0,
				sum_a = 0.0,
				mu,
				factor_sd;
	static char buf[1 << 20];

	if (argc < 4 || argc > 5)
	{
		fprintf(stderr, "usage: gen_ratings USERS ITEMS RATINGS [SEED]\n");
		return 2;
	}
	nu = atol(argv[1]);
	ni = atol(argv[2]);
	target = atol(argv[3]);
	if (argc == 5)
		seed = strtoull(argv[4], NULL, 10);
	if (nu < 2 || ni < 2 || target < nu)
	{
		fprintf(stderr, "gen_ratings: need USERS >= 2, ITEMS >= 2, RATINGS >= USERS\n");
		return 2;
	}
	rng_state = seed;
	setvbuf(stdout, buf, _IOFBF, sizeof(buf));

	/* popularity: rank r (0-based) of a random permutation of the items */
	rank_item = xmalloc(sizeof(long) * ni);
	for (long k = 0; k < ni; k++)
		rank_item[k] = k;
	for (long k = ni - 1; k > 0; k--)
	{
		long		j = (long) (next_u64() % (uint64_t) (k + 1));
		long		t = rank_item[k];

		rank_item[k] = rank_item[j];
		rank_item[j] = t;
	}
	/* ML-10M's head: the offset grows with the catalogue (20 for 10,000 items) */
	offset = fmax(1.0, 20.0 * (double) ni / 10000.0);
	weight = xmalloc(sizeof(double) * ni);
	for (long r = 0; r < ni; r++)
	{
		weight[r] = pow((double) r + 1.0 + offset, -ZIPF_EXPONENT);
		sum_w += weight[r];
	}

	/* Vose's alias table over ranks */
	prob = xmalloc(sizeof(double) * ni);
	alias = xmalloc(sizeof(long) * ni);
	small = xmalloc(sizeof(long) * ni);
	large = xmalloc(sizeof(long) * ni);
	for (long r = 0; r < ni; r++)
	{
		prob[r] = weight[r] * (double) ni / sum_w;
		alias[r] = r;
		if (prob[r] < 1.0)
			small[ns++] = r;
		else
			large[nl++] = r;
	}
	while (ns > 0 && nl > 0)
	{
		long		s = small[--ns];
		long		l = large[nl - 1];

		alias[s] = l;
		prob[l] -= 1.0 - prob[s];
		if (prob[l] < 1.0)
		{
			nl--;
			small[ns++] = l;
		}
	}
	while (nl > 0)
		prob[large[--nl]] = 1.0;
	while (ns > 0)
		prob[small[--ns]] = 1.0;

	/* activity: MIN + log-normal, scaled to the target, capped */
	min_activity = MIN_ACTIVITY;
	if (min_activity * nu > target / 2)
		min_activity = target / (2 * nu) > 1 ? target / (2 * nu) : 1;
	cap = (long) (MAX_ACTIVITY_SHARE * (double) ni);
	if (cap < min_activity)
		cap = min_activity < ni ? min_activity : ni;
	activity = xmalloc(sizeof(double) * nu);
	for (long u = 0; u < nu; u++)
	{
		activity[u] = exp(ACTIVITY_SIGMA * normal());
		sum_a += activity[u];
	}
	count = xmalloc(sizeof(long) * nu);
	for (long u = 0; u < nu; u++)
	{
		double		extra = activity[u] * (double) (target - min_activity * nu) / sum_a;
		long		n = min_activity + (long) (extra + 0.5);

		count[u] = n > cap ? cap : n;
	}

	/* taste: biases and rank-RANK factors with <p, q> of sd 0.7 */
	factor_sd = pow(0.49 / RANK, 0.25);
	bu = xmalloc(sizeof(double) * nu);
	bi = xmalloc(sizeof(double) * ni);
	p = xmalloc(sizeof(double) * nu * RANK);
	q = xmalloc(sizeof(double) * ni * RANK);
	for (long u = 0; u < nu; u++)
	{
		bu[u] = 0.4 * normal();
		for (int k = 0; k < RANK; k++)
			p[u * RANK + k] = factor_sd * normal();
	}
	for (long r = 0; r < ni; r++)
	{
		long		i = rank_item[r];

		bi[i] = 0.5 * normal() + 0.3 * (0.5 - (double) r / (double) ni);
		for (int k = 0; k < RANK; k++)
			q[i * RANK + k] = factor_sd * normal();
	}

	/* each user's distinct items; mark[i] == u + 1 when u has rated i */
	mark = xmalloc(sizeof(long) * ni);
	memset(mark, 0, sizeof(long) * ni);
	mu = 3.5;
	for (long u = 0; u < nu; u++)
	{
		for (long n = 0; n < count[u];)
		{
			long		r = (long) (next_u64() % (uint64_t) ni);
			long		i;
			double		x;
			long		rating;

			if (uniform() >= prob[r])
				r = alias[r];
			i = rank_item[r];
			if (mark[i] == u + 1)
				continue;
			mark[i] = u + 1;
			n++;
			x = mu + bu[u] + bi[i] + 0.6 * normal();
			for (int k = 0; k < RANK; k++)
				x += p[u * RANK + k] * q[i * RANK + k];
			rating = lround(x);
			rating = rating < 1 ? 1 : rating > 5 ? 5 : rating;
			printf("%ld\t%ld\t%ld\n", u + 1, i + 1, rating);
		}
	}
	if (fflush(stdout) != 0)
	{
		perror("gen_ratings: write");
		return 1;
	}
	return 0;
}
