/*
 * implicit_baselines.c
 *	  The yardsticks of the implicit-feedback benchmark (implicit.sh):
 *	  popularity, and BPR matrix factorisation (Rendle et al. 2009) by SGD
 *	  with early stopping on the validation hold-out.
 *
 *	  implicit_baselines DIR [--dim 64] [--lr 0.01] [--reg 0.005]
 *	                         [--epochs 300] [--patience 10] [--seed 1]
 *
 * DIR holds tab-separated user/item files: train.tsv (the interactions to
 * learn from), val.tsv and test.tsv (one held-out item per user), and
 * val_neg.tsv and test_neg.tsv (per user the 99 items it never interacted
 * with to rank the held-out one among).  Prints, for each method, the
 * sampled protocol's HR@10 and NDCG@10 on val and test, and the full
 * ranking's metrics at 10 on test: every item ranked, the user's training
 * items left out, ties to the lower item id (as dmf_evaluate_ranking).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K_AT 10

typedef struct Pairs
{
	int64_t		n;
	int64_t    *u;				/* raw ids, then dense positions */
	int64_t    *i;
} Pairs;

static void
die(const char *msg, const char *arg)
{
	fprintf(stderr, "implicit_baselines: %s%s\n", msg, arg ? arg : "");
	exit(1);
}

static void
read_pairs(const char *dir, const char *name, Pairs *p)
{
	char		path[4096];
	FILE	   *f;
	int64_t		cap = 1024,
				a,
				b;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(f = fopen(path, "r")))
		die("cannot open ", path);
	p->n = 0;
	p->u = malloc(sizeof(int64_t) * cap);
	p->i = malloc(sizeof(int64_t) * cap);
	while (fscanf(f, "%ld\t%ld", &a, &b) == 2)
	{
		if (p->n == cap)
		{
			cap *= 2;
			p->u = realloc(p->u, sizeof(int64_t) * cap);
			p->i = realloc(p->i, sizeof(int64_t) * cap);
		}
		p->u[p->n] = a;
		p->i[p->n++] = b;
	}
	fclose(f);
}

static int
cmp64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* sorted distinct ids of a and b */
static int64_t
distinct(const int64_t *a, int64_t na, int64_t **out)
{
	int64_t    *s = malloc(sizeof(int64_t) * (na + 1));
	int64_t		m = 0;

	memcpy(s, a, sizeof(int64_t) * na);
	qsort(s, na, sizeof(int64_t), cmp64);
	for (int64_t k = 0; k < na; k++)
		if (m == 0 || s[m - 1] != s[k])
			s[m++] = s[k];
	*out = s;
	return m;
}

static int64_t
find(const int64_t *s, int64_t n, int64_t id)
{
	int64_t		lo = 0,
				hi = n;

	while (lo < hi)
	{
		int64_t		mid = (lo + hi) / 2;

		if (s[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && s[lo] == id ? lo : -1;
}

/* ids to positions; rows with an id the training data lacks get -1 */
static void
densify(Pairs *p, const int64_t *users, int64_t nu, const int64_t *items, int64_t ni)
{
	for (int64_t k = 0; k < p->n; k++)
	{
		p->u[k] = find(users, nu, p->u[k]);
		p->i[k] = find(items, ni, p->i[k]);
	}
}

/* users x items of the training pairs, items ascending per user */
typedef struct Rows
{
	int64_t    *start;
	int64_t    *item;
} Rows;

static Rows
rows_of(const Pairs *p, int64_t nu)
{
	Rows		r;
	int64_t    *fill = calloc(nu + 1, sizeof(int64_t));

	r.start = calloc(nu + 1, sizeof(int64_t));
	r.item = malloc(sizeof(int64_t) * (p->n + 1));
	for (int64_t k = 0; k < p->n; k++)
		r.start[p->u[k] + 1]++;
	for (int64_t u = 0; u < nu; u++)
		r.start[u + 1] += r.start[u];
	memcpy(fill, r.start, sizeof(int64_t) * (nu + 1));
	for (int64_t k = 0; k < p->n; k++)
		r.item[fill[p->u[k]]++] = p->i[k];
	for (int64_t u = 0; u < nu; u++)
		qsort(r.item + r.start[u], r.start[u + 1] - r.start[u], sizeof(int64_t), cmp64);
	free(fill);
	return r;
}

static int
has(const Rows *r, int64_t u, int64_t i)
{
	int64_t		lo = r->start[u],
				hi = r->start[u + 1];

	while (lo < hi)
	{
		int64_t		mid = (lo + hi) / 2;

		if (r->item[mid] < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->start[u + 1] && r->item[lo] == i;
}

/* xorshift64*: the seeded random numbers of the SGD */
static uint64_t rng_state;

static uint64_t
rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

/* a scorer: the model's score of (u, i) */
typedef struct Model
{
	int			dim;
	int64_t		nu,
				ni;
	float	   *p;				/* nu x dim */
	float	   *q;				/* ni x dim */
	float	   *b;				/* ni item biases */
	const double *popularity;	/* non-NULL: the popularity baseline */
} Model;

static double
score(const Model *m, int64_t u, int64_t i)
{
	double		s;

	if (m->popularity)
		return m->popularity[i];
	s = m->b[i];
	for (int d = 0; d < m->dim; d++)
		s += (double) m->p[u * m->dim + d] * m->q[i * m->dim + d];
	return s;
}

/*
 * The sampled protocol: the held-out item against its user's 99
 * negatives; rank = 1 + the negatives ranked before it (a higher score, or
 * the same score and a lower item id).  Users whose held-out item is in no
 * training row are left out.
 */
static void
sampled(const Model *m, const Pairs *held, const Pairs *neg, double *hr, double *ndcg)
{
	int64_t		users = 0,
				k = 0;

	*hr = *ndcg = 0.0;
	for (int64_t h = 0; h < held->n; h++)
	{
		int64_t		u = held->u[h];
		double		s;
		int			rank = 1;

		if (u < 0 || held->i[h] < 0)
			continue;
		s = score(m, u, held->i[h]);
		while (k < neg->n && neg->u[k] < u)
			k++;
		for (int64_t j = k; j < neg->n && neg->u[j] == u; j++)
		{
			double		x;

			if (neg->i[j] < 0)
				continue;
			x = score(m, u, neg->i[j]);
			/* a tie goes to the lower item id, as in dmf_recommend */
			if (x > s || (x == s && neg->i[j] < held->i[h]))
				rank++;
		}
		users++;
		if (rank <= K_AT)
		{
			*hr += 1.0;
			*ndcg += 1.0 / log2(rank + 1.0);
		}
	}
	*hr /= users;
	*ndcg /= users;
}

/*
 * The full ranking at 10 of every item but the user's training items, ties
 * to the lower item position; one relevant item per user (the held-out).
 * hit rate = recall, precision = hits / 10, map = 1 / rank of a hit.
 */
static void
full_ranking(const Model *m, const Rows *train, const Pairs *held, double *out)
{
	int64_t		users = 0;
	double	   *s = malloc(sizeof(double) * m->ni);

	memset(out, 0, sizeof(double) * 5);
	for (int64_t h = 0; h < held->n; h++)
	{
		int64_t		u = held->u[h],
					t = held->i[h];
		int			rank = 1;

		if (u < 0)
			continue;
		users++;
		if (t < 0 || has(train, u, t))
			continue;
		for (int64_t i = 0; i < m->ni; i++)
			s[i] = score(m, u, i);
		for (int64_t i = 0; i < m->ni && rank <= K_AT; i++)
			if (i != t && !has(train, u, i) && (s[i] > s[t] || (s[i] == s[t] && i < t)))
				rank++;
		if (rank <= K_AT)
		{
			out[0] += 1.0;
			out[1] += 1.0 / K_AT;
			out[2] += 1.0;
			out[3] += 1.0 / log2(rank + 1.0);
			out[4] += 1.0 / rank;
		}
	}
	for (int c = 0; c < 5; c++)
		out[c] /= users;
	free(s);
}

static void
report(const char *method, const Model *m, const Rows *train, const Pairs *val,
	   const Pairs *val_neg, const Pairs *test, const Pairs *test_neg, double seconds,
	   int epochs)
{
	double		vhr,
				vndcg,
				thr,
				tndcg,
				full[5];

	sampled(m, val, val_neg, &vhr, &vndcg);
	sampled(m, test, test_neg, &thr, &tndcg);
	full_ranking(m, train, test, full);
	printf("%s\tval_hr10=%.4f\tval_ndcg10=%.4f\ttest_hr10=%.4f\ttest_ndcg10=%.4f\t"
		   "full_hit_rate=%.4f\tfull_precision=%.4f\tfull_recall=%.4f\tfull_ndcg=%.4f\tfull_map=%.4f\t"
		   "seconds=%.2f\tepochs=%d\n",
		   method, vhr, vndcg, thr, tndcg, full[0], full[1], full[2], full[3], full[4],
		   seconds, epochs);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	const char *dir;
	int			dim = 64,
				max_epochs = 300,
				patience = 10;
	double		lr = 0.01,
				reg = 0.005;
	Pairs		train,
				val,
				val_neg,
				test,
				test_neg;
	int64_t    *users,
			   *items,
				nu,
				ni;
	Rows		rows;
	double	   *popularity;
	Model		m;
	float	   *best_p,
			   *best_q,
			   *best_b;
	double		best = -1.0,
				t0;
	int			best_epoch = 0,
				epoch;

	if (argc < 2)
		die("usage: implicit_baselines DIR [--dim N] [--lr X] [--reg X] [--epochs N] [--patience N] [--seed N]", NULL);
	dir = argv[1];
	rng_state = 1;
	for (int a = 2; a + 1 < argc; a += 2)
	{
		if (strcmp(argv[a], "--dim") == 0)
			dim = atoi(argv[a + 1]);
		else if (strcmp(argv[a], "--lr") == 0)
			lr = atof(argv[a + 1]);
		else if (strcmp(argv[a], "--reg") == 0)
			reg = atof(argv[a + 1]);
		else if (strcmp(argv[a], "--epochs") == 0)
			max_epochs = atoi(argv[a + 1]);
		else if (strcmp(argv[a], "--patience") == 0)
			patience = atoi(argv[a + 1]);
		else if (strcmp(argv[a], "--seed") == 0)
			rng_state = (uint64_t) atoll(argv[a + 1]) * UINT64_C(0x9E3779B97F4A7C15) + 1;
		else
			die("unknown option ", argv[a]);
	}

	read_pairs(dir, "train.tsv", &train);
	read_pairs(dir, "val.tsv", &val);
	read_pairs(dir, "val_neg.tsv", &val_neg);
	read_pairs(dir, "test.tsv", &test);
	read_pairs(dir, "test_neg.tsv", &test_neg);
	nu = distinct(train.u, train.n, &users);
	ni = distinct(train.i, train.n, &items);
	densify(&train, users, nu, items, ni);
	densify(&val, users, nu, items, ni);
	densify(&val_neg, users, nu, items, ni);
	densify(&test, users, nu, items, ni);
	densify(&test_neg, users, nu, items, ni);
	rows = rows_of(&train, nu);

	/* popularity: interactions per item in the training data */
	popularity = calloc(ni, sizeof(double));
	for (int64_t k = 0; k < train.n; k++)
		popularity[train.i[k]] += 1.0;
	memset(&m, 0, sizeof(m));
	m.nu = nu;
	m.ni = ni;
	m.popularity = popularity;
	report("popularity", &m, &rows, &val, &val_neg, &test, &test_neg, 0.0, 0);

	/* BPR-MF: p_u . (q_i - q_j) + b_i - b_j, by SGD over sampled triples */
	m.popularity = NULL;
	m.dim = dim;
	m.p = malloc(sizeof(float) * nu * dim);
	m.q = malloc(sizeof(float) * ni * dim);
	m.b = calloc(ni, sizeof(float));
	best_p = malloc(sizeof(float) * nu * dim);
	best_q = malloc(sizeof(float) * ni * dim);
	best_b = malloc(sizeof(float) * ni);
	for (int64_t k = 0; k < nu * dim; k++)
		m.p[k] = (float) (((double) (rnd() >> 11) / 9007199254740992.0 - 0.5) * 0.02);
	for (int64_t k = 0; k < ni * dim; k++)
		m.q[k] = (float) (((double) (rnd() >> 11) / 9007199254740992.0 - 0.5) * 0.02);

	t0 = now();
	for (epoch = 1; epoch <= max_epochs; epoch++)
	{
		double		hr,
					ndcg;

		for (int64_t s = 0; s < train.n; s++)
		{
			int64_t		k = (int64_t) (rnd() % (uint64_t) train.n);
			int64_t		u = train.u[k],
						i = train.i[k],
						j;
			float	   *pu = m.p + u * dim,
					   *qi = m.q + i * dim,
					   *qj;
			double		x,
						g;

			do
				j = (int64_t) (rnd() % (uint64_t) ni);
			while (has(&rows, u, j));
			qj = m.q + j * dim;
			x = m.b[i] - m.b[j];
			for (int d = 0; d < dim; d++)
				x += (double) pu[d] * (qi[d] - qj[d]);
			g = 1.0 / (1.0 + exp(x));	/* sigmoid(-x) */
			m.b[i] += (float) (lr * (g - reg * m.b[i]));
			m.b[j] += (float) (lr * (-g - reg * m.b[j]));
			for (int d = 0; d < dim; d++)
			{
				float		pd = pu[d];

				pu[d] += (float) (lr * (g * (qi[d] - qj[d]) - reg * pd));
				qi[d] += (float) (lr * (g * pd - reg * qi[d]));
				qj[d] += (float) (lr * (-g * pd - reg * qj[d]));
			}
		}
		sampled(&m, &val, &val_neg, &hr, &ndcg);
		fprintf(stderr, "bpr epoch %d: val HR@10 %.4f NDCG@10 %.4f\n", epoch, hr, ndcg);
		if (ndcg > best)
		{
			best = ndcg;
			best_epoch = epoch;
			memcpy(best_p, m.p, sizeof(float) * nu * dim);
			memcpy(best_q, m.q, sizeof(float) * ni * dim);
			memcpy(best_b, m.b, sizeof(float) * ni);
		}
		else if (epoch - best_epoch >= patience)
			break;
	}
	memcpy(m.p, best_p, sizeof(float) * nu * dim);
	memcpy(m.q, best_q, sizeof(float) * ni * dim);
	memcpy(m.b, best_b, sizeof(float) * ni);
	report("bpr", &m, &rows, &val, &val_neg, &test, &test_neg, now() - t0, best_epoch);
	return 0;
}
