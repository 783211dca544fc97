/*
 * helper_thread.c
 *	  The helper threads of a training or a fold-in (see helper_thread.h).
 */
#include "platform.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "helper_thread.h"

struct DmfHelper
{
	pthread_t	thread;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	void		(*job) (void *);
	void	   *arg;
	bool		busy;
	bool		quit;
	DmfHelper  *next;			/* in the list of running helpers */
};

/* Running helpers, so that an ERROR path can stop them all. */
static DmfHelper *running = NULL;

static void *
helper_main(void *arg)
{
	DmfHelper  *h = (DmfHelper *) arg;

	pthread_mutex_lock(&h->mutex);
	for (;;)
	{
		while (!h->busy && !h->quit)
			pthread_cond_wait(&h->cond, &h->mutex);
		if (h->quit)
			break;
		pthread_mutex_unlock(&h->mutex);
		h->job(h->arg);
		pthread_mutex_lock(&h->mutex);
		h->busy = false;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->mutex);
	return NULL;
}

DmfHelper *
dmf_helper_start(void)
{
	sigset_t	all,
				old;

	/*
	 * Not on the stack nor in a memory context: an ERROR unwinds the stack
	 * and frees the context, and the helper must still find its mutex when
	 * it is told to quit.
	 */
	DmfHelper  *h = calloc(1, sizeof(DmfHelper));

	if (h == NULL)
		return NULL;
	pthread_mutex_init(&h->mutex, NULL);
	pthread_cond_init(&h->cond, NULL);
	/* the new thread inherits this mask: every signal blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&h->thread, NULL, helper_main, h) != 0)
	{
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->mutex);
		free(h);
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	h->next = running;
	running = h;
	return h;
}

void
dmf_helper_run(DmfHelper *h, void (*job) (void *), void *arg)
{
	pthread_mutex_lock(&h->mutex);
	h->job = job;
	h->arg = arg;
	h->busy = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mutex);
}

void
dmf_helper_wait(DmfHelper *h)
{
	pthread_mutex_lock(&h->mutex);
	while (h->busy)
		pthread_cond_wait(&h->cond, &h->mutex);
	pthread_mutex_unlock(&h->mutex);
}

bool
dmf_helper_wait_for(DmfHelper *h, int ms)
{
	struct timespec until;
	bool		done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long) ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&h->mutex);
	while (h->busy)
		if (pthread_cond_timedwait(&h->cond, &h->mutex, &until) == ETIMEDOUT)
			break;
	done = !h->busy;
	pthread_mutex_unlock(&h->mutex);
	return done;
}

void
dmf_helper_stop(DmfHelper *h)
{
	DmfHelper **link = &running;

	pthread_mutex_lock(&h->mutex);
	while (h->busy)
		pthread_cond_wait(&h->cond, &h->mutex);
	h->quit = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mutex);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mutex);
	while (*link != NULL && *link != h)
		link = &(*link)->next;
	if (*link == h)
		*link = h->next;
	free(h);
}

static void dmf_teams_stop_all(void);

void
dmf_helpers_stop_all(void)
{
	/* a team's helpers run until their team tells them to quit */
	dmf_teams_stop_all();
	while (running != NULL)
		dmf_helper_stop(running);
}

/*
 * A team: its helpers, and the run under way.  A run publishes its tasks by
 * setting claim to (its generation << 32) | 0; a thread claims the next task
 * with a compare-and-swap that fails once the generation has moved on, so a
 * helper that wakes late never runs a task of another run.  The caller waits
 * until every task of the run is done (done == n_tasks), not for helpers that
 * claimed none.  Between runs the helpers spin a little before they sleep:
 * the next run usually comes within microseconds, and waking a sleeping
 * thread costs more than that.
 */
typedef struct TeamMember
{
	DmfTeam    *team;
	int			worker;
} TeamMember;

/*
 * A run's job.  Runs alternate between two of these: a helper that read the
 * claim of run g just as it ended checks the task it would claim against
 * run g's count, which the caller does not touch while it prepares run g + 1.
 */
typedef struct TeamRun
{
	DmfTeamJob	job;
	void	   *arg;
	int			n_tasks;
} TeamRun;

struct DmfTeam
{
	int			size;			/* threads, the caller's included */
	DmfHelper **helpers;		/* size - 1 */
	TeamMember *members;		/* size */
	TeamRun		runs[2];		/* run g is runs[g % 2] */
	uint32_t	generation;		/* of the last run; the caller's */
	uint64_t	claim;			/* generation << 32 | next task (atomic) */
	int			done;			/* tasks of the run done (atomic) */
	int			quit;			/* (atomic) */
	int			spins;			/* TEAM_SPINS, or 0 with more threads than cores */
	pthread_mutex_t mutex;
	pthread_cond_t wake;		/* a run started, or quit */
	pthread_cond_t finished;	/* the run's last task is done */
	int			sleepers;		/* helpers waiting on wake (under mutex) */
	int			caller_waiting; /* (under mutex) */
	DmfTeam    *next_team;		/* in the list of running teams */
};

/* Running teams, so that an ERROR path can stop them. */
static DmfTeam *running_teams = NULL;

/*
 * Spins of a thread waiting for the next run or for the run's end.  With
 * more threads than cores a spinning thread would take the core of one
 * with work: then they sleep at once.
 */
#define TEAM_SPINS 4000

static inline void
team_relax(int spins)
{
	/* with more threads than cores, let the others run */
	if (spins % 64 == 63)
		sched_yield();
#if defined(__x86_64__) || defined(__i386__)
	else
		__builtin_ia32_pause();
#endif
}

static inline uint32_t
team_generation(DmfTeam *team)
{
	return (uint32_t) (__atomic_load_n(&team->claim, __ATOMIC_ACQUIRE) >> 32);
}

/* Runs tasks of run gen until none is left to claim. */
static void
team_tasks(DmfTeam *team, uint32_t gen, int worker)
{
	const TeamRun *run = &team->runs[gen % 2];

	for (;;)
	{
		uint64_t	v = __atomic_load_n(&team->claim, __ATOMIC_ACQUIRE);
		int			task;
		int			n;

		do
		{
			if ((uint32_t) (v >> 32) != gen)
				return;
			task = (int) (uint32_t) v;
			/* atomic: a thread late by two runs reads it as it is rewritten (its claim fails) */
			if (task >= __atomic_load_n(&run->n_tasks, __ATOMIC_RELAXED))
				return;
		} while (!__atomic_compare_exchange_n(&team->claim, &v, v + 1, false,
											  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
		/* the run lasts until this task is done: read its count before */
		n = __atomic_load_n(&run->n_tasks, __ATOMIC_RELAXED);
		run->job(run->arg, task, worker);
		if (__atomic_add_fetch(&team->done, 1, __ATOMIC_ACQ_REL) == n)
		{
			pthread_mutex_lock(&team->mutex);
			if (team->caller_waiting)
				pthread_cond_broadcast(&team->finished);
			pthread_mutex_unlock(&team->mutex);
		}
	}
}

/* A helper's whole job: the team's runs, until it quits. */
static void
team_loop(void *arg)
{
	TeamMember *m = (TeamMember *) arg;
	DmfTeam    *team = m->team;
	uint32_t	seen = 0;

	for (;;)
	{
		uint32_t	gen;
		int			spins = 0;

		while ((gen = team_generation(team)) == seen &&
			   !__atomic_load_n(&team->quit, __ATOMIC_ACQUIRE))
		{
			if (spins++ < team->spins)
			{
				team_relax(spins);
				continue;
			}
			pthread_mutex_lock(&team->mutex);
			team->sleepers++;
			while (team_generation(team) == seen &&
				   !__atomic_load_n(&team->quit, __ATOMIC_ACQUIRE))
				pthread_cond_wait(&team->wake, &team->mutex);
			team->sleepers--;
			pthread_mutex_unlock(&team->mutex);
		}
		if (__atomic_load_n(&team->quit, __ATOMIC_ACQUIRE))
			return;
		seen = gen;
		team_tasks(team, gen, m->worker);
	}
}

DmfTeam *
dmf_team_start(int threads)
{
	DmfTeam    *team;

	if (threads <= 1)
		return NULL;

	/*
	 * Not in a memory context, as the helpers: dmf_helpers_stop_all stops
	 * and frees it after an ERROR.
	 */
	team = calloc(1, sizeof(DmfTeam));
	if (team == NULL)
		return NULL;
	team->helpers = calloc(threads, sizeof(DmfHelper *));
	team->members = calloc(threads, sizeof(TeamMember));
	if (team->helpers == NULL || team->members == NULL)
	{
		free(team->helpers);
		free(team->members);
		free(team);
		return NULL;
	}
	pthread_mutex_init(&team->mutex, NULL);
	pthread_cond_init(&team->wake, NULL);
	pthread_cond_init(&team->finished, NULL);
	{
		long		cores = sysconf(_SC_NPROCESSORS_ONLN);

		team->spins = cores > 0 && threads <= cores ? TEAM_SPINS : 0;
	}
	team->size = 1;
	for (int k = 0; k < threads; k++)
	{
		team->members[k].team = team;
		team->members[k].worker = k;
	}
	team->next_team = running_teams;
	running_teams = team;
	for (int k = 1; k < threads; k++)
	{
		DmfHelper  *h = dmf_helper_start();

		if (h == NULL)
			break;
		team->helpers[team->size - 1] = h;
		dmf_helper_run(h, team_loop, &team->members[team->size]);
		team->size++;
	}
	return team;
}

int
dmf_team_size(const DmfTeam *team)
{
	return team ? team->size : 1;
}

void
dmf_team_run(DmfTeam *team, DmfTeamJob job, void *arg, int n_tasks)
{
	dmf_team_run_with(team, job, arg, n_tasks, NULL, NULL);
}

void
dmf_team_run_with(DmfTeam *team, DmfTeamJob job, void *arg, int n_tasks,
				  void (*first) (void *), void *first_arg)
{
	int			spins = 0;

	if (team == NULL || team->size == 1 || n_tasks <= 1)
	{
		if (first)
			first(first_arg);
		for (int task = 0; task < n_tasks; task++)
			job(arg, task, 0);
		return;
	}
	team->generation++;
	team->runs[team->generation % 2].job = job;
	team->runs[team->generation % 2].arg = arg;
	__atomic_store_n(&team->runs[team->generation % 2].n_tasks, n_tasks, __ATOMIC_RELAXED);
	__atomic_store_n(&team->done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&team->claim, (uint64_t) team->generation << 32, __ATOMIC_RELEASE);
	pthread_mutex_lock(&team->mutex);
	if (team->sleepers > 0)
		pthread_cond_broadcast(&team->wake);
	pthread_mutex_unlock(&team->mutex);

	if (first)
		first(first_arg);
	team_tasks(team, team->generation, 0);

	while (__atomic_load_n(&team->done, __ATOMIC_ACQUIRE) < n_tasks)
	{
		if (spins++ < team->spins)
		{
			team_relax(spins);
			continue;
		}
		pthread_mutex_lock(&team->mutex);
		team->caller_waiting = 1;
		while (__atomic_load_n(&team->done, __ATOMIC_ACQUIRE) < n_tasks)
			pthread_cond_wait(&team->finished, &team->mutex);
		team->caller_waiting = 0;
		pthread_mutex_unlock(&team->mutex);
	}
}

void
dmf_team_stop(DmfTeam *team)
{
	DmfTeam   **link = &running_teams;

	if (team == NULL)
		return;
	pthread_mutex_lock(&team->mutex);
	__atomic_store_n(&team->quit, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&team->wake);
	pthread_mutex_unlock(&team->mutex);
	for (int k = 0; k < team->size - 1; k++)
		dmf_helper_stop(team->helpers[k]);
	while (*link != NULL && *link != team)
		link = &(*link)->next_team;
	if (*link == team)
		*link = team->next_team;
	pthread_cond_destroy(&team->finished);
	pthread_cond_destroy(&team->wake);
	pthread_mutex_destroy(&team->mutex);
	free(team->members);
	free(team->helpers);
	free(team);
}

static void
dmf_teams_stop_all(void)
{
	while (running_teams != NULL)
		dmf_team_stop(running_teams);
}
