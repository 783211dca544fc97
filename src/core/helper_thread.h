/*
 * helper_thread.h
 *	  One thread beside the backend's, for the work a training or a fold-in
 *	  splits in two.
 *
 * A helper never calls into the server (no palloc, no ereport, no
 * interrupt check) and runs with every signal blocked: signals stay with
 * the backend's thread, which handles them.  The caller may only process
 * an interrupt (which can ERROR and free the memory a helper works on)
 * while no job runs, and an ERROR path must call dmf_helpers_stop_all()
 * before the memory the jobs used is freed.
 */
#ifndef DMF_HELPER_THREAD_H
#define DMF_HELPER_THREAD_H

#include <stdbool.h>

typedef struct DmfHelper DmfHelper;

/* A new idle helper, or NULL if no thread could be started (then do the work yourself). */
DmfHelper  *dmf_helper_start(void);

/* Starts job(arg) on the helper (which must be idle). */
void		dmf_helper_run(DmfHelper *h, void (*job) (void *), void *arg);

/* Waits until the helper's job has ended. */
void		dmf_helper_wait(DmfHelper *h);

/*
 * Waits at most ms milliseconds for the helper's job to end; whether it
 * has.  A caller that may process interrupts waits with this, looking
 * for one in between.
 */
bool		dmf_helper_wait_for(DmfHelper *h, int ms);

/* Waits for the helper's job, then ends the thread and frees h. */
void		dmf_helper_stop(DmfHelper *h);

/* Stops every helper still running (after an ERROR; a no-op otherwise). */
void		dmf_helpers_stop_all(void);

#endif
