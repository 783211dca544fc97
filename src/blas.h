/*
 * blas.h
 *	  The BLAS calls of dmf: dmf_sgemm and dmf_sgemv (cblas_sgemm and
 *	  cblas_sgemv's arguments), and the number of OpenBLAS threads.
 *
 * In the server, dmf.so does not link OpenBLAS but loads it on first use
 * (blas.c).  Linked, OpenBLAS's constructor would start its thread pool in
 * every process that loads dmf: in the postmaster when dmf is in
 * shared_preload_libraries (a process that forks every backend must stay
 * single-threaded), and in every backend, for all cores, before it has
 * called anything.  Loaded here, the pool starts with no extra thread; only
 * a training asks for more, and gives them back when it ends.
 *
 * Call BLAS through these macros, never cblas_* or openblas_* directly: the
 * build fails if dmf.so has an undefined OpenBLAS symbol, which could not be
 * resolved at load time.  Standalone builds (unit tests, fuzzing) link
 * OpenBLAS and call it directly.
 */
#ifndef DMF_BLAS_H
#define DMF_BLAS_H

#include <cblas.h>

#ifdef DMF_STANDALONE

#define dmf_sgemm cblas_sgemm
#define dmf_sgemv cblas_sgemv
#define dmf_blas_set_threads(n) openblas_set_num_threads(n)
#define dmf_blas_release_threads() openblas_set_num_threads(1)

#else

typedef struct DmfBlas
{
	__typeof__(cblas_sgemm) *sgemm;
	__typeof__(cblas_sgemv) *sgemv;
	__typeof__(openblas_set_num_threads) *set_num_threads;
	int			(*shutdown_threads) (void); /* may be NULL */
} DmfBlas;

/*
 * The loaded library; loads it on the first call, an ERROR if it cannot.
 * Load it (dmf_blas_set_threads does) before starting threads that use it.
 */
const DmfBlas *dmf_blas(void);

#define dmf_sgemm(...) (dmf_blas()->sgemm(__VA_ARGS__))
#define dmf_sgemv(...) (dmf_blas()->sgemv(__VA_ARGS__))

/* Threads of the BLAS calls that follow (a training's). */
void		dmf_blas_set_threads(int threads);

/* Back to one thread, with the pool's other threads stopped. */
void		dmf_blas_release_threads(void);

#endif

#endif							/* DMF_BLAS_H */
