/*
 * blas.c
 *	  Loads OpenBLAS on first use in a backend (see blas.h for why).
 */
#include "postgres.h"

#include <dlfcn.h>
#include <stdlib.h>

#include "blas.h"

/* the soname -lopenblas links against; Debian's alternatives pick the build */
#ifndef DMF_OPENBLAS_LIBRARY
#define DMF_OPENBLAS_LIBRARY "libopenblas.so.0"
#endif

static DmfBlas blas;
static bool blas_loaded = false;

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

static void
blas_load(void)
{
	const char *env = getenv("OPENBLAS_NUM_THREADS");
	char	   *saved = env ? strdup(env) : NULL;
	void	   *lib;

	/*
	 * OpenBLAS starts its pool while loading, with OPENBLAS_NUM_THREADS
	 * threads (else one per core): start it with none but this one.  The
	 * variable is put back so the backend's environment is unchanged.
	 */
	setenv("OPENBLAS_NUM_THREADS", "1", 1);
	lib = dlopen(DMF_OPENBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (saved)
	{
		setenv("OPENBLAS_NUM_THREADS", saved, 1);
		free(saved);
	}
	else
		unsetenv("OPENBLAS_NUM_THREADS");
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
	dmf_blas()->set_num_threads(threads);
}

void
dmf_blas_release_threads(void)
{
	if (!blas_loaded)
		return;
	blas.set_num_threads(1);
	/* stopped threads are started again by the next multithreaded call */
	if (blas.shutdown_threads)
		blas.shutdown_threads();
}
