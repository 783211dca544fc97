/*
 * blas.c
 *	  Loads OpenBLAS on first use in a backend (see blas.h for why).
 */
#include "postgres.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "blas.h"

/* the soname -lopenblas links against; Debian's alternatives pick the build */
#ifndef DMF_OPENBLAS_LIBRARY
#define DMF_OPENBLAS_LIBRARY "libopenblas.so.0"
#endif

static DmfBlas blas;
static bool blas_loaded = false;
bool		dmf_blas_multithreaded = false;

void
dmf_block_signals(sigset_t *saved)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
}

void
dmf_restore_signals(const sigset_t *saved)
{
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static void *
blas_symbol(void *lib, const char *name, bool required)
{
	void	   *p = dlsym(lib, name);

	if (p == NULL && required)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("OpenBLAS library \"%s\" has no function %s", DMF_OPENBLAS_LIBRARY, name)));
	return p;
}

/*
 * The kernels to ask OpenBLAS for, or NULL to let it detect them.  A
 * DYNAMIC_ARCH build picks kernels by CPU model, and a model newer than the
 * build falls back to its oldest x86-64 kernels (OpenBLAS 0.3.21 runs
 * Prescott's SSE3 kernels on recent AVX-512 Xeons: 21 against 117 GFLOP/s
 * for our sgemm shapes).  The instruction set says what is safe to run.
 */
static const char *
coretype_for_cpu(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
		__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
#endif
	return NULL;
}

/* Sets name=value (unless value is NULL) until env_restore. */
typedef struct EnvOverride
{
	const char *name;
	char	   *saved;			/* strdup'ed old value, or NULL if unset */
	bool		set;
} EnvOverride;

static void
env_override(EnvOverride *o, const char *name, const char *value)
{
	const char *old = value ? getenv(name) : NULL;

	o->name = name;
	o->saved = old ? strdup(old) : NULL;
	o->set = value != NULL;
	if (o->set)
		setenv(name, value, 1);
}

static void
env_restore(EnvOverride *o)
{
	if (!o->set)
		return;
	if (o->saved)
		setenv(o->name, o->saved, 1);
	else
		unsetenv(o->name);
	free(o->saved);
}

static void
blas_load(void)
{
	EnvOverride threads,
				coretype;
	void	   *lib;
	sigset_t	saved;

	/*
	 * OpenBLAS starts its pool while loading, with OPENBLAS_NUM_THREADS
	 * threads (else one per core): start it with none but this one.  Its
	 * kernels are chosen while loading too: unless the server's environment
	 * names them (OPENBLAS_CORETYPE), ask for the ones this CPU's
	 * instruction set runs best.  The environment is put back afterwards.
	 */
	env_override(&threads, "OPENBLAS_NUM_THREADS", "1");
	env_override(&coretype, "OPENBLAS_CORETYPE",
				 getenv("OPENBLAS_CORETYPE") ? NULL : coretype_for_cpu());
	dmf_block_signals(&saved);
	lib = dlopen(DMF_OPENBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	dmf_restore_signals(&saved);
	env_restore(&coretype);
	env_restore(&threads);
	if (lib == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("could not load OpenBLAS: %s", dlerror()),
				 errhint("Install OpenBLAS (Debian: apt-get install libopenblas0).")));

	blas.sgemm = blas_symbol(lib, "cblas_sgemm", true);
	blas.sgemv = blas_symbol(lib, "cblas_sgemv", true);
	blas.set_num_threads = blas_symbol(lib, "openblas_set_num_threads", true);
	/* exported by the pthread build (its fork handler); absent elsewhere */
	blas.shutdown_threads = blas_symbol(lib, "blas_thread_shutdown_", false);
	blas_loaded = true;
}

const DmfBlas *
dmf_blas(void)
{
	if (unlikely(!blas_loaded))
		blas_load();
	return &blas;
}

void
dmf_blas_set_threads(int threads)
{
	const DmfBlas *b = dmf_blas();
	sigset_t	saved;

	dmf_block_signals(&saved);
	b->set_num_threads(threads);
	dmf_restore_signals(&saved);
	dmf_blas_multithreaded = threads > 1;
}

void
dmf_blas_release_threads(void)
{
	sigset_t	saved;

	if (!blas_loaded)
		return;
	dmf_block_signals(&saved);
	blas.set_num_threads(1);
	/* stopped threads are started again by the next multithreaded call */
	if (blas.shutdown_threads)
		blas.shutdown_threads();
	dmf_restore_signals(&saved);
	dmf_blas_multithreaded = false;
}
