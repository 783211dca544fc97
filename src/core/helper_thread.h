/*
 * helper_thread.h
 *	  Threads beside the backend's: one helper, for the work a fold-in splits
 *	  in two, and a team of helpers, for the work a training splits in tasks.
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

/* Stops every helper and team still running (after an ERROR; a no-op otherwise). */
void		dmf_helpers_stop_all(void);

/*
 * A team: the calling thread and threads - 1 helpers run job(arg, task,
 * worker) for every task of 0 .. n_tasks - 1, each task once.  Tasks are
 * claimed from a shared counter, so any thread may run any task; a job
 * must write only its task's outputs (worker, 0 for the calling thread and
 * 1 .. threads - 1 for the helpers, only picks scratch memory), so that
 * results never depend on which thread ran which task.  Jobs follow the
 * helpers' rules above: no call into the server.  The calling thread may
 * process interrupts between runs.
 */
typedef struct DmfTeam DmfTeam;
typedef void (*DmfTeamJob) (void *arg, int task, int worker);

/*
 * A team of threads threads in all (the caller's included), or NULL when
 * threads <= 1 (or when it could not be allocated); fewer helpers when some
 * could not start.  Not in a memory context: dmf_team_stop frees it, and
 * dmf_helpers_stop_all stops and frees every team still running.
 */
DmfTeam    *dmf_team_start(int threads);

/* Threads of the team, the caller's included: 1 for NULL. */
int			dmf_team_size(const DmfTeam *team);

/* Runs every task and returns when all have ended; team NULL: in order, here. */
void		dmf_team_run(DmfTeam *team, DmfTeamJob job, void *arg, int n_tasks);

/*
 * The same, the calling thread running first(first_arg) (work of its own,
 * which no task depends on) before it joins the tasks.
 */
void		dmf_team_run_with(DmfTeam *team, DmfTeamJob job, void *arg, int n_tasks,
							  void (*first) (void *), void *first_arg);

/* Stops the team's helpers and frees it; NULL is a no-op. */
void		dmf_team_stop(DmfTeam *team);

#endif
