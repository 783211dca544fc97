/*
 * sgemm_bench.c
 *	  OpenBLAS cblas_sgemm at given shapes, for perf.sh's epoch-throughput
 *	  comparison: the dense layers of an epoch are these calls.
 *
 *	  sgemm_bench THREADS SECONDS < shapes  >  CSV
 *
 * Each input line: label transa transb M N K beta calls (row-major, as the
 * extension calls it; trans N or T; calls = how many an epoch makes, only
 * copied to the output), or label A P calls: the Adam update of P
 * parameters as src/core/train.c does it (in one thread whatever THREADS; for AVX-512 or
 * AVX2 when the CPU has them, as the extension's kernels are).  Each runs 5
 * batches of about SECONDS / 5 after a warm-up call; the median batch gives
 * the time per call, so a burst of load from other processes moves it less
 * than a mean would.
 * Output: label,threads,transa,transb,m,n,k,calls,seconds_per_call,gflops
 * (Adam: transa A, m = P, gflops counting 10 operations a parameter) and a
 * comment line with OpenBLAS's build and the core it picked.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCHES 5

/* src/core/adam.c's adam_update_impl, with its constants */
static inline __attribute__((always_inline)) void
adam_impl(float *params, float *grad, float *mom1, float *mom2, size_t n, float c1)
{
	const float b1 = 0.9f,
				b2 = 0.999f,
				eps = 1e-8f;

	for (size_t k = 0; k < n; k++)
	{
		float		g = grad[k];
		float		m = b1 * mom1[k] + (1.0f - b1) * g;
		float		v = b2 * mom2[k] + (1.0f - b2) * g * g;

		mom1[k] = m;
		mom2[k] = v;
		params[k] -= c1 * m / (sqrtf(v) + eps);
		grad[k] = 0.0f;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void
adam_avx512(float *p, float *g, float *m, float *v, size_t n, float c1)
{
	adam_impl(p, g, m, v, n, c1);
}
__attribute__((target("avx2,fma"))) static void
adam_avx2(float *p, float *g, float *m, float *v, size_t n, float c1)
{
	adam_impl(p, g, m, v, n, c1);
}
#endif
static void
adam_generic(float *p, float *g, float *m, float *v, size_t n, float c1)
{
	adam_impl(p, g, m, v, n, c1);
}

typedef void (*adam_fn) (float *, float *, float *, float *, size_t, float);

static adam_fn
adam_pick(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return adam_avx512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return adam_avx2;
#endif
	return adam_generic;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static float *
filled(size_t n)
{
	float	   *p = malloc(sizeof(float) * (n ? n : 1));

	if (p == NULL)
	{
		fprintf(stderr, "sgemm_bench: out of memory\n");
		exit(1);
	}
	/* small values: no overflow however often C accumulates */
	for (size_t k = 0; k < n; k++)
		p[k] = (float) ((k * 2654435761u) % 1000) * 1e-4f - 0.05f;
	return p;
}

int
main(int argc, char **argv)
{
	int			threads;
	double		seconds;
	char		line[512];

	if (argc != 3)
	{
		fprintf(stderr, "usage: sgemm_bench THREADS SECONDS < shapes\n");
		return 2;
	}
	threads = atoi(argv[1]);
	seconds = atof(argv[2]);
	if (threads < 1 || seconds <= 0.0)
	{
		fprintf(stderr, "sgemm_bench: THREADS >= 1 and SECONDS > 0\n");
		return 2;
	}
	openblas_set_num_threads(threads);
	printf("# %s; core %s; threads %d\n", openblas_get_config(),
		   openblas_get_corename(), threads);
	printf("label,threads,transa,transb,m,n,k,calls,seconds_per_call,gflops\n");

	while (fgets(line, sizeof(line), stdin))
	{
		char		label[128],
					ta,
					tb;
		long		m,
					n,
					k;
		double		beta,
					calls,
					per_call[BATCHES];
		float	   *a,
				   *b,
				   *c;
		int			lda,
					ldb,
					reps = 1;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%127s %c %ld %lf", label, &ta, &m, &calls) == 4 && ta == 'A')
		{
			adam_fn		adam = adam_pick();
			float	   *p = filled((size_t) m),
					   *g = filled((size_t) m),
					   *m1 = filled((size_t) m),
					   *m2 = filled((size_t) m);
			double		t0 = now(),
						one;

			for (long j = 0; j < m; j++)
				m2[j] = fabsf(m2[j]);
			adam(p, g, m1, m2, (size_t) m, 1e-4f);
			one = now() - t0;
			reps = one > 0.0 ? (int) (seconds / BATCHES / one) + 1 : 1;
			for (int bt = 0; bt < BATCHES; bt++)
			{
				t0 = now();
				for (int r = 0; r < reps; r++)
					adam(p, g, m1, m2, (size_t) m, 1e-4f);
				per_call[bt] = (now() - t0) / reps;
			}
			qsort(per_call, BATCHES, sizeof(double), cmp_double);
			printf("%s,%d,A,-,%ld,1,1,%.0f,%.9g,%.4f\n", label, threads, m, calls,
				   per_call[BATCHES / 2], 10.0 * m / per_call[BATCHES / 2] * 1e-9);
			fflush(stdout);
			free(p);
			free(g);
			free(m1);
			free(m2);
			continue;
		}
		if (sscanf(line, "%127s %c %c %ld %ld %ld %lf %lf", label, &ta, &tb,
				   &m, &n, &k, &beta, &calls) != 8 || m < 1 || n < 1 || k < 1)
		{
			fprintf(stderr, "sgemm_bench: bad shape line: %s", line);
			return 2;
		}
		a = filled((size_t) m * k);
		b = filled((size_t) k * n);
		c = filled((size_t) m * n);
		lda = ta == 'T' ? (int) m : (int) k;
		ldb = tb == 'T' ? (int) k : (int) n;

#define CALL() cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, \
						   tb == 'T' ? CblasTrans : CblasNoTrans, (int) m, (int) n, \
						   (int) k, 1.0f, a, lda, b, ldb, (float) beta, c, (int) n)

		/* warm-up, and how many calls make a batch */
		{
			double		t0 = now(),
						one;

			CALL();
			one = now() - t0;
			if (one > 0.0)
				reps = (int) (seconds / BATCHES / one) + 1;
			if (reps > 1000000)
				reps = 1000000;
		}
		for (int bt = 0; bt < BATCHES; bt++)
		{
			double		t0 = now();

			for (int r = 0; r < reps; r++)
				CALL();
			per_call[bt] = (now() - t0) / reps;
		}
		qsort(per_call, BATCHES, sizeof(double), cmp_double);
		printf("%s,%d,%c,%c,%ld,%ld,%ld,%.0f,%.9g,%.4f\n", label, threads, ta, tb,
			   m, n, k, calls, per_call[BATCHES / 2],
			   2.0 * m * n * k / per_call[BATCHES / 2] * 1e-9);
		fflush(stdout);
		free(a);
		free(b);
		free(c);
	}
	return 0;
}
