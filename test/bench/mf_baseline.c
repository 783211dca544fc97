/*
 * mf_baseline.c
 *	  The yardstick of the benchmark: a biased matrix factorisation
 *	  r = mu + b_u + b_i + p_u . q_i, trained by SGD over shuffled ratings
 *	  with early stopping on the validation ratings, and for the P2
 *	  protocol new users and items folded in by ridge regression against
 *	  the frozen factors of the other side.  Every accuracy claim of dmf is
 *	  "dmf vs this, on the same split".
 *
 *	  mf_baseline --train F --val F --test F --out F [--fold F]
 *	              [--dim K] [--lr A] [--reg L] [--init S] [--fold-reg L]
 *	              [--epochs N] [--patience N] [--seed S] [--min R] [--max R]
 *
 * Files are tab-separated "user item rating" lines (as COPY writes them).
 * --fold: ratings the model may see of users and items it was not trained
 * with (P2: the train ratings of every area); a new user's row is its
 * ratings of trained items, a new item's column the ratings trained users
 * gave it, as the protocol gives DMF.  --out gets "user item prediction"
 * for every test line, clamped to [--min, --max].  A summary line goes to
 * standard output: epochs, seconds, the best validation RMSE.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Ratings
{
	int64_t		n;
	int64_t		cap;
	int64_t    *user;
	int64_t    *item;
	double	   *rating;
} Ratings;

/* ids -> dense indices: a sorted id list */
typedef struct Ids
{
	int64_t		n;
	int64_t    *id;
} Ids;

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "mf_baseline: out of memory\n");
		exit(1);
	}
	return p;
}

static void
read_ratings(const char *path, Ratings *r)
{
	FILE	   *f = fopen(path, "r");
	long long	u,
				i;
	double		x;

	if (f == NULL)
	{
		perror(path);
		exit(1);
	}
	memset(r, 0, sizeof(*r));
	while (fscanf(f, "%lld\t%lld\t%lf%*[^\n]", &u, &i, &x) == 3)
	{
		if (r->n == r->cap)
		{
			r->cap = r->cap ? 2 * r->cap : 4096;
			r->user = realloc(r->user, sizeof(int64_t) * r->cap);
			r->item = realloc(r->item, sizeof(int64_t) * r->cap);
			r->rating = realloc(r->rating, sizeof(double) * r->cap);
			if (!r->user || !r->item || !r->rating)
			{
				fprintf(stderr, "mf_baseline: out of memory\n");
				exit(1);
			}
		}
		r->user[r->n] = u;
		r->item[r->n] = i;
		r->rating[r->n] = x;
		r->n++;
	}
	fclose(f);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

static void
ids_of(const int64_t *v, int64_t n, Ids *ids)
{
	int64_t		m = 0;

	ids->id = xmalloc(sizeof(int64_t) * n);
	memcpy(ids->id, v, sizeof(int64_t) * n);
	qsort(ids->id, n, sizeof(int64_t), cmp_i64);
	for (int64_t k = 0; k < n; k++)
		if (m == 0 || ids->id[m - 1] != ids->id[k])
			ids->id[m++] = ids->id[k];
	ids->n = m;
}

static int64_t
find(const Ids *ids, int64_t id)
{
	int64_t		lo = 0,
				hi = ids->n;

	while (lo < hi)
	{
		int64_t		mid = lo + (hi - lo) / 2;

		if (ids->id[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ids->n && ids->id[lo] == id ? lo : -1;
}

/* xorshift64*: the same shuffles and initial factors on every machine */
static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static double
rng_normal(void)
{
	double		a = ((rng_next() >> 11) + 0.5) / 9007199254740992.0;
	double		b = ((rng_next() >> 11) + 0.5) / 9007199254740992.0;

	return sqrt(-2.0 * log(a)) * cos(2.0 * M_PI * b);
}

typedef struct Model
{
	int			dim;
	double		mu;
	Ids			users;
	Ids			items;
	double	   *bu;
	double	   *bi;
	double	   *p;				/* users.n x dim, then folded-in users */
	double	   *q;
	int64_t		n_users;		/* with the folded-in ones */
	int64_t		n_items;
	Ids			new_users;		/* ids folded in, in p after the trained ones */
	Ids			new_items;
} Model;

static double
dot(const double *a, const double *b, int n)
{
	double		s = 0.0;

	for (int k = 0; k < n; k++)
		s += a[k] * b[k];
	return s;
}

/* RMSE of the model on ratings whose user and item it knows */
static double
rmse_on(const Model *m, const Ratings *r)
{
	double		se = 0.0;
	int64_t		n = 0;

	for (int64_t k = 0; k < r->n; k++)
	{
		int64_t		u = find(&m->users, r->user[k]),
					i = find(&m->items, r->item[k]);
		double		e;

		if (u < 0 || i < 0)
			continue;
		e = r->rating[k] - (m->mu + m->bu[u] + m->bi[i] + dot(m->p + u * m->dim, m->q + i * m->dim, m->dim));
		se += e * e;
		n++;
	}
	return n > 0 ? sqrt(se / n) : NAN;
}

/*
 * Solves (A + reg I) x = b for a symmetric positive definite A (n x n, row
 * major; overwritten) by Cholesky.
 */
static void
ridge_solve(double *A, double *b, int n, double reg, double *x)
{
	for (int k = 0; k < n; k++)
		A[k * n + k] += reg;
	for (int j = 0; j < n; j++)
	{
		double		s = A[j * n + j];

		for (int k = 0; k < j; k++)
			s -= A[j * n + k] * A[j * n + k];
		A[j * n + j] = sqrt(s > 1e-12 ? s : 1e-12);
		for (int i = j + 1; i < n; i++)
		{
			double		t = A[i * n + j];

			for (int k = 0; k < j; k++)
				t -= A[i * n + k] * A[j * n + k];
			A[i * n + j] = t / A[j * n + j];
		}
	}
	for (int i = 0; i < n; i++)
	{
		double		t = b[i];

		for (int k = 0; k < i; k++)
			t -= A[i * n + k] * x[k];
		x[i] = t / A[i * n + i];
	}
	for (int i = n - 1; i >= 0; i--)
	{
		double		t = x[i];

		for (int k = i + 1; k < n; k++)
			t -= A[k * n + i] * x[k];
		x[i] = t / A[i * n + i];
	}
}

/* fold rows sorted by the id being folded in */
static const int64_t *sort_key;

static int
cmp_by_key(const void *a, const void *b)
{
	int64_t		x = sort_key[*(const int64_t *) a],
				y = sort_key[*(const int64_t *) b];

	return (x > y) - (x < y);
}

/*
 * Fold-in of the entities of one side (users: by_user) that the model was
 * not trained with: [b, f] by ridge regression of r - mu - b_other on
 * [1, f_other] over their ratings of trained entities of the other side.
 */
static void
fold_in(Model *m, const Ratings *fold, int by_user, double reg)
{
	int			d = m->dim + 1;
	const Ids  *own = by_user ? &m->users : &m->items;
	const Ids  *other = by_user ? &m->items : &m->users;
	const int64_t *own_id = by_user ? fold->user : fold->item;
	const int64_t *other_id = by_user ? fold->item : fold->user;
	int64_t    *rows = xmalloc(sizeof(int64_t) * (fold->n + 1));
	int64_t    *cand = xmalloc(sizeof(int64_t) * (fold->n + 1));
	int64_t		nr = 0;
	Ids		   *added = by_user ? &m->new_users : &m->new_items;
	double	   *A = xmalloc(sizeof(double) * d * d);
	double	   *b = xmalloc(sizeof(double) * d);
	double	   *x = xmalloc(sizeof(double) * d);
	double	   *row = xmalloc(sizeof(double) * d);
	int64_t		base = own->n;
	double	   *bias;
	double	   *fac;

	for (int64_t k = 0; k < fold->n; k++)
		if (find(own, own_id[k]) < 0 && find(other, other_id[k]) >= 0)
		{
			cand[nr] = own_id[k];
			rows[nr++] = k;
		}
	ids_of(cand, nr, added);
	sort_key = own_id;
	qsort(rows, nr, sizeof(int64_t), cmp_by_key);
	if (by_user)
	{
		m->bu = realloc(m->bu, sizeof(double) * (base + added->n + 1));
		m->p = realloc(m->p, sizeof(double) * (base + added->n + 1) * m->dim);
		bias = m->bu;
		fac = m->p;
	}
	else
	{
		m->bi = realloc(m->bi, sizeof(double) * (base + added->n + 1));
		m->q = realloc(m->q, sizeof(double) * (base + added->n + 1) * m->dim);
		bias = m->bi;
		fac = m->q;
	}
	for (int64_t a = 0, r = 0; a < added->n; a++)
	{
		memset(A, 0, sizeof(double) * d * d);
		memset(b, 0, sizeof(double) * d);
		for (; r < nr && own_id[rows[r]] == added->id[a]; r++)
		{
			int64_t		k = rows[r];
			int64_t		o = find(other, other_id[k]);
			double		target = fold->rating[k] - m->mu - (by_user ? m->bi[o] : m->bu[o]);

			row[0] = 1.0;
			memcpy(row + 1, (by_user ? m->q : m->p) + o * m->dim, sizeof(double) * m->dim);
			for (int i = 0; i < d; i++)
			{
				b[i] += row[i] * target;
				for (int j = 0; j < d; j++)
					A[i * d + j] += row[i] * row[j];
			}
		}
		ridge_solve(A, b, d, reg, x);
		bias[base + a] = x[0];
		memcpy(fac + (base + a) * m->dim, x + 1, sizeof(double) * m->dim);
	}
	if (by_user)
		m->n_users = base + added->n;
	else
		m->n_items = base + added->n;
	free(rows);
	free(cand);
	free(A);
	free(b);
	free(x);
	free(row);
}

static int64_t
index_of(const Ids *trained, const Ids *added, int64_t id)
{
	int64_t		k = find(trained, id);

	if (k >= 0)
		return k;
	k = find(added, id);
	return k >= 0 ? trained->n + k : -1;
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
	const char *train_path = NULL,
			   *val_path = NULL,
			   *test_path = NULL,
			   *out_path = NULL,
			   *fold_path = NULL;
	int			dim = 100,
				max_epochs = 200,
				patience = 3;
	double		lr = 0.005,
				reg = 0.05,
				init = 0.1,
				fold_reg = 15.0,
				rmin = 1.0,
				rmax = 5.0;
	Ratings		train,
				val,
				test,
				fold;
	Model		m;
	int64_t    *order,
			   *tu,
			   *ti;
	double	   *best_bu,
			   *best_bi,
			   *best_p,
			   *best_q;
	double		best = INFINITY,
				t0;
	int			since_best = 0,
				epochs = 0,
				best_epoch = 0;
	FILE	   *out;

	for (int a = 1; a + 1 < argc; a += 2)
	{
		if (!strcmp(argv[a], "--train"))
			train_path = argv[a + 1];
		else if (!strcmp(argv[a], "--val"))
			val_path = argv[a + 1];
		else if (!strcmp(argv[a], "--test"))
			test_path = argv[a + 1];
		else if (!strcmp(argv[a], "--out"))
			out_path = argv[a + 1];
		else if (!strcmp(argv[a], "--fold"))
			fold_path = argv[a + 1];
		else if (!strcmp(argv[a], "--dim"))
			dim = atoi(argv[a + 1]);
		else if (!strcmp(argv[a], "--lr"))
			lr = atof(argv[a + 1]);
		else if (!strcmp(argv[a], "--reg"))
			reg = atof(argv[a + 1]);
		else if (!strcmp(argv[a], "--init"))
			init = atof(argv[a + 1]);
		else if (!strcmp(argv[a], "--fold-reg"))
			fold_reg = atof(argv[a + 1]);
		else if (!strcmp(argv[a], "--epochs"))
			max_epochs = atoi(argv[a + 1]);
		else if (!strcmp(argv[a], "--patience"))
			patience = atoi(argv[a + 1]);
		else if (!strcmp(argv[a], "--seed"))
			rng_state ^= (uint64_t) strtoull(argv[a + 1], NULL, 10) * 0x9E3779B97F4A7C15ULL;
		else if (!strcmp(argv[a], "--min"))
			rmin = atof(argv[a + 1]);
		else if (!strcmp(argv[a], "--max"))
			rmax = atof(argv[a + 1]);
		else
		{
			fprintf(stderr, "mf_baseline: unknown argument %s\n", argv[a]);
			return 2;
		}
	}
	if (!train_path || !val_path || !test_path || !out_path || dim < 1)
	{
		fprintf(stderr, "usage: mf_baseline --train F --val F --test F --out F [--fold F] [--dim K] ...\n");
		return 2;
	}
	read_ratings(train_path, &train);
	read_ratings(val_path, &val);
	read_ratings(test_path, &test);
	if (train.n == 0)
	{
		fprintf(stderr, "mf_baseline: no training ratings\n");
		return 1;
	}

	t0 = now();
	memset(&m, 0, sizeof(m));
	m.dim = dim;
	ids_of(train.user, train.n, &m.users);
	ids_of(train.item, train.n, &m.items);
	m.n_users = m.users.n;
	m.n_items = m.items.n;
	m.bu = calloc(m.users.n + 1, sizeof(double));
	m.bi = calloc(m.items.n + 1, sizeof(double));
	m.p = xmalloc(sizeof(double) * m.users.n * dim);
	m.q = xmalloc(sizeof(double) * m.items.n * dim);
	for (int64_t k = 0; k < m.users.n * dim; k++)
		m.p[k] = init * rng_normal();
	for (int64_t k = 0; k < m.items.n * dim; k++)
		m.q[k] = init * rng_normal();
	for (int64_t k = 0; k < train.n; k++)
		m.mu += train.rating[k];
	m.mu /= (double) train.n;
	best_bu = xmalloc(sizeof(double) * (m.users.n + 1));
	best_bi = xmalloc(sizeof(double) * (m.items.n + 1));
	best_p = xmalloc(sizeof(double) * m.users.n * dim);
	best_q = xmalloc(sizeof(double) * m.items.n * dim);
	order = xmalloc(sizeof(int64_t) * train.n);
	tu = xmalloc(sizeof(int64_t) * train.n);
	ti = xmalloc(sizeof(int64_t) * train.n);
	for (int64_t k = 0; k < train.n; k++)
	{
		order[k] = k;
		tu[k] = find(&m.users, train.user[k]);
		ti[k] = find(&m.items, train.item[k]);
	}

	while (epochs < max_epochs)
	{
		double		v;

		for (int64_t k = train.n - 1; k > 0; k--)
		{
			int64_t		j = (int64_t) (rng_next() % (uint64_t) (k + 1));
			int64_t		t = order[k];

			order[k] = order[j];
			order[j] = t;
		}
		for (int64_t s = 0; s < train.n; s++)
		{
			int64_t		k = order[s],
						u = tu[k],
						i = ti[k];
			double	   *pu = m.p + u * dim,
					   *qi = m.q + i * dim;
			double		e = train.rating[k] - (m.mu + m.bu[u] + m.bi[i] + dot(pu, qi, dim));

			m.bu[u] += lr * (e - reg * m.bu[u]);
			m.bi[i] += lr * (e - reg * m.bi[i]);
			for (int f = 0; f < dim; f++)
			{
				double		pf = pu[f];

				pu[f] += lr * (e * qi[f] - reg * pf);
				qi[f] += lr * (e * pf - reg * qi[f]);
			}
		}
		epochs++;
		v = rmse_on(&m, &val);
		if (v < best || isnan(best))
		{
			best = v;
			best_epoch = epochs;
			since_best = 0;
			memcpy(best_bu, m.bu, sizeof(double) * m.users.n);
			memcpy(best_bi, m.bi, sizeof(double) * m.items.n);
			memcpy(best_p, m.p, sizeof(double) * m.users.n * dim);
			memcpy(best_q, m.q, sizeof(double) * m.items.n * dim);
		}
		else if (++since_best >= patience)
			break;
		if (isnan(v))
			break;				/* no validation rating of a known pair */
	}
	if (best_epoch > 0)
	{
		memcpy(m.bu, best_bu, sizeof(double) * m.users.n);
		memcpy(m.bi, best_bi, sizeof(double) * m.items.n);
		memcpy(m.p, best_p, sizeof(double) * m.users.n * dim);
		memcpy(m.q, best_q, sizeof(double) * m.items.n * dim);
	}
	if (fold_path)
	{
		read_ratings(fold_path, &fold);
		fold_in(&m, &fold, 1, fold_reg);
		fold_in(&m, &fold, 0, fold_reg);
	}

	out = fopen(out_path, "w");
	if (out == NULL)
	{
		perror(out_path);
		return 1;
	}
	for (int64_t k = 0; k < test.n; k++)
	{
		int64_t		u = index_of(&m.users, &m.new_users, test.user[k]);
		int64_t		i = index_of(&m.items, &m.new_items, test.item[k]);
		double		p = m.mu + (u >= 0 ? m.bu[u] : 0.0) + (i >= 0 ? m.bi[i] : 0.0);

		if (u >= 0 && i >= 0)
			p += dot(m.p + u * dim, m.q + i * dim, dim);
		p = p < rmin ? rmin : p > rmax ? rmax : p;
		fprintf(out, "%lld\t%lld\t%.17g\n", (long long) test.user[k],
				(long long) test.item[k], p);
	}
	fclose(out);
	printf("epochs %d best_epoch %d seconds %.3f validation_rmse %.6f users %lld items %lld folded_users %lld folded_items %lld\n",
		   epochs, best_epoch, now() - t0, best, (long long) m.users.n, (long long) m.items.n,
		   (long long) m.new_users.n, (long long) m.new_items.n);
	return 0;
}
