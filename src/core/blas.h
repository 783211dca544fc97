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
 * OpenBLAS starts its pool threads inside whatever call finds them missing
 * (loading, openblas_set_num_threads, or a multithreaded sgemm after the
 * pool was shut down), and a thread inherits the signal mask of the thread
 * that created it.  A pool thread with signals unblocked could run the
 * backend's handlers (cancel, timeouts, die) off the backend's thread, so
 * every call that may create one runs with all signals blocked.
 *
 * Call BLAS through these macros, never cblas_* or openblas_* directly: the
 * build fails if dmf.so has an undefined OpenBLAS symbol, which could not be
 * resolved at load time.  Standalone builds (unit tests, fuzzing) link
 * OpenBLAS and call it directly.
 */
#ifndef DMF_BLAS_H
#define DMF_BLAS_H

#include <cblas.h>
#include <signal.h>

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

/*
 * While a pool of more than one thread is asked for, a BLAS call may start
 * threads: block signals around it (they are handled right after).
 */
extern bool dmf_blas_multithreaded;
void		dmf_block_signals(sigset_t *saved);
void		dmf_restore_signals(const sigset_t *saved);

#define DMF_BLAS_CALL(fn, ...) \
	do { \
		const DmfBlas *dmf_blas_ = dmf_blas(); \
		if (dmf_blas_multithreaded) \
		{ \
			sigset_t	dmf_saved_; \
			dmf_block_signals(&dmf_saved_); \
			dmf_blas_->fn(__VA_ARGS__); \
			dmf_restore_signals(&dmf_saved_); \
		} \
		else \
			dmf_blas_->fn(__VA_ARGS__); \
	} while (0)

#define dmf_sgemm(...) DMF_BLAS_CALL(sgemm, __VA_ARGS__)
#define dmf_sgemv(...) DMF_BLAS_CALL(sgemv, __VA_ARGS__)

/* Threads of the BLAS calls that follow (a training's). */
void		dmf_blas_set_threads(int threads);

/* Back to one thread, with the pool's other threads stopped. */
void		dmf_blas_release_threads(void);

#endif

#endif							/* DMF_BLAS_H */
